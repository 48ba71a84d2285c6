#!/usr/bin/env bash
# kube-annex on a cluster without EndpointSlices, against a real API server
# with real traffic: the 1.20 kube-apiserver runs with its only EndpointSlice
# API version turned off (--runtime-config=discovery.k8s.io/v1beta1=false),
# so discovery finds no discovery.k8s.io group and kube-annex has to read
# core/v1 Endpoints. Checked: it says so in its log, named ports of an
# Endpoints object reach their own target ports, an Endpoints change reaches
# the kernel, notReadyAddresses are not used, a deleted Endpoints object
# makes the Service refuse at once. (test-faults.sh covers the same fallback
# against the fake server, down to the requests it sends.)
#
# poll conditions are single-quoted on purpose: they are eval'd on each try.
# shellcheck disable=SC2016
set -euo pipefail

export KA_PREFIX=${KA_PREFIX:-kalegacy}
export KA_APISERVER_EXTRA_ARGS=--runtime-config=discovery.k8s.io/v1beta1=false
# The EndpointSlice controllers have no API to write to.
export KA_KCM_CONTROLLERS=serviceaccount-token,serviceaccount,endpoint,namespace,garbagecollector
source "$(dirname "$0")/common.sh"
t_start=$EPOCHREALTIME

# N answers from http://$1/, counted: "12 pod1 80, 12 pod2 80"
spread() {
	local i
	for ((i = 0; i < $2; i++)); do get "$1"; done | sort | uniq -c | sed 's/^ *//' | paste -sd, - | sed 's/,/, /g'
}

ka_env_up
[ -x "$BIN" ] || fail "$BIN is not built (run make)"

# --- the API server really has no EndpointSlices -----------------------------
code=$(ka_api_curl -s -o /dev/null -w '%{http_code}' /apis/discovery.k8s.io/v1beta1)
[ "$code" = 404 ] || fail "/apis/discovery.k8s.io/v1beta1 answers $code, want 404 (runtime-config not applied?)"
ka_kubectl api-resources --api-group=discovery.k8s.io 2>&1 | contains -i endpointslice &&
	fail "the API server still lists EndpointSlices"
ok "kube-apiserver 1.20 with discovery.k8s.io/v1beta1=false: /apis/discovery.k8s.io/v1beta1 -> $code"

ka_kubectl create namespace legacy >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
# The seed example, on core Endpoints only: two named ports, each to its own
# target port.
apiVersion: v1
kind: Service
metadata: {name: web, namespace: legacy}
spec:
  ports:
  - {name: visit-port, port: 9999, protocol: TCP}
  - {name: test-port, port: 8888, protocol: TCP}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: legacy}
subsets:
- addresses: [{ip: 10.244.0.11}, {ip: 10.244.0.12}]
  ports:
  - {name: visit-port, port: 80, protocol: TCP}
  - {name: test-port, port: 443, protocol: TCP}
EOF
web=$(ka_kubectl -n legacy get service web -o jsonpath='{.spec.clusterIP}')

$KA_IN_HOST "$BIN" --kubeconfig "$KA_KUBECONFIG" -v </dev/null >>"$KA_STATE/kube-annex.log" 2>&1 &
ka_pid=$!
ka_wait_for 'host_nft | contains "legacy/web:test-port"' 30 "legacy/web programmed"
grep -q "endpoints from core/v1 Endpoints" "$KA_STATE/kube-annex.log" ||
	fail "kube-annex does not log that it uses core/v1 Endpoints"
grep -q "EndpointSlices" <<<"$(grep -i "endpoints from" "$KA_STATE/kube-annex.log")" &&
	fail "kube-annex claims to use EndpointSlices"
ok "kube-annex: $(grep -o 'endpoints from core/v1 Endpoints[^;]*' "$KA_STATE/kube-annex.log" | head -1)"

# --- named ports of an Endpoints object ---------------------------------------
seen_all=
for port in 9999:80 8888:443; do
	seen=$(spread "$web:${port%:*}" 24)
	[ "$(sed 's/[0-9]* pod/pod/g' <<<"$seen")" = "pod1 ${port#*:}, pod2 ${port#*:}" ] ||
		fail "legacy/web:${port%:*} should reach port ${port#*:} on pod1 and pod2, saw: $seen"
	seen_all+="${seen_all:+; }${port%:*}: $seen"
done
ok "named ports from core Endpoints: 9999 -> :80 and 8888 -> :443 on pod1 and pod2 ($seen_all)"

# --- an Endpoints change reaches the kernel; notReadyAddresses are not used ----
t0=$(now_ms)
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: legacy}
subsets:
- addresses: [{ip: 10.244.0.13}]
  notReadyAddresses: [{ip: 10.244.0.11}]
  ports:
  - {name: visit-port, port: 80, protocol: TCP}
  - {name: test-port, port: 443, protocol: TCP}
EOF
ka_wait_for 'host_nft | contains "10.244.0.13 . 80" && ! host_nft | contains "10.244.0.12 . 80"' 10 \
	"the Endpoints change in the kernel"
dt=$(($(now_ms) - t0))
host_nft | contains "10.244.0.11 . 80\|10.244.0.11 . 443" && fail "notReadyAddresses 10.244.0.11 programmed as a backend"
seen=$(spread "$web:9999" 16)
[ "$seen" = "16 pod3 80" ] || fail "after the change legacy/web:9999 should reach only pod3, saw: $seen"
ok "kubectl apply of Endpoints (pod3 ready, pod1 notReady): in the kernel within ${dt} ms, traffic $seen"

# --- Endpoints deleted: refused at once ---------------------------------------
ka_kubectl -n legacy delete endpoints web >/dev/null
ka_wait_for '$KA_IN_HOST nft list map ip kube-annex no-endpoint-services 2>/dev/null | contains "legacy/web:visit-port"' 10 \
	"legacy/web in no-endpoint-services"
t0=$(now_ms); rc=0
$KA_IN_HOST curl -s --max-time 5 "http://$web:9999/" >/dev/null 2>&1 || rc=$?
dt=$(($(now_ms) - t0))
[ $rc -eq 7 ] && [ $dt -lt 1000 ] || fail "legacy/web without Endpoints: curl exit $rc after ${dt} ms, want 7 at once"
ok "Endpoints deleted: legacy/web refused in ${dt} ms"

echo "RESULT legacy_runtime_s=$(_ka_since "$t_start")"
