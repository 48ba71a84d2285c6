#!/usr/bin/env bash
# Service semantics on the off-cluster host, against the real API server
# with real traffic: named multi-port Services (the seed example), UDP,
# dual-stack / IPv6, fast failure for Services without endpoints and for
# unknown ports, external IPs (and the switch that turns them off), Services
# that are not proxied, SCTP rule generation. (internalTrafficPolicy is newer
# than this 1.20 server: test-faults.sh covers it with v1 objects.)
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces, nftables)" >&2; exit 77; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export KA_PREFIX=${KA_PREFIX:-kasem}
export KA_IN_NS_EXEC=0
source "$top/tests/env/lib.sh"
# Read all input before matching: with pipefail, "producer | grep -q" fails
# whenever grep exits before the producer has written everything.
contains() { local in; in=$(cat); grep -q "$@" <<<"$in"; }
BIN=${KUBE_ANNEX_BIN:-$top/build/kube-annex}
ka_pid=""

finish() {
	local rc=$?
	if [ -n "$ka_pid" ] && kill -0 "$ka_pid" 2>/dev/null; then
		kill -TERM "$ka_pid"; wait "$ka_pid" 2>/dev/null || true
	fi
	[ $rc -eq 0 ] || tail -30 "$KA_STATE/kube-annex.log" 2>/dev/null || true
	ka_env_down
	exit $rc
}
trap finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
host_nft() { $KA_IN_HOST nft list table "$1" kube-annex 2>/dev/null; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# curl from the host; prints the answer ("podN port") or nothing
get() { $KA_IN_HOST curl -s --max-time 2 "http://$1/" 2>/dev/null || true; }
# one UDP datagram from the host; prints the answer
udp() { $KA_IN_HOST socat -T1 - "UDP:$1" <<<"ping" 2>/dev/null || true; }
cip() { ka_kubectl -n sem get service "$1" -o jsonpath="{.spec.clusterIPs[${2:-0}]}"; }
start_kube_annex() {
	$KA_IN_HOST "$BIN" --kubeconfig "$KA_KUBECONFIG" "$@" </dev/null >>"$KA_STATE/kube-annex.log" 2>&1 &
	ka_pid=$!
}
stop_kube_annex() { kill -TERM "$ka_pid"; wait "$ka_pid" || true; ka_pid=""; }

ka_env_up
[ "${KA_DUAL_STACK:-1}" = 1 ] || fail "the environment has no dual-stack Service CIDR"
ka_kubectl create namespace sem >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
# The seed example: two named ports, each to its own target port on both
# addresses.
apiVersion: v1
kind: Service
metadata: {name: seed, namespace: sem}
spec:
  ports:
  - {name: visit-port, port: 9999, protocol: TCP}
  - {name: test-port, port: 8888, protocol: TCP}
---
apiVersion: v1
kind: Endpoints
metadata: {name: seed, namespace: sem}
subsets:
- addresses: [{ip: 10.244.0.11}, {ip: 10.244.0.12}]
  ports:
  - {name: visit-port, port: 80, protocol: TCP}
  - {name: test-port, port: 443, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: sem}
spec:
  ports: [{name: dns, port: 53, targetPort: 8080, protocol: UDP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: dns, namespace: sem}
subsets:
- addresses: [{ip: 10.244.0.13}]
  ports: [{name: dns, port: 8080, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: sem}
spec:
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: dual, namespace: sem}
subsets:
- addresses: [{ip: 10.244.0.11}, {ip: "fd00:244::12"}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: sem}
spec:
  ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: sem}
spec:
  externalIPs: [192.0.2.50]
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: local, namespace: sem}
subsets:
- addresses: [{ip: 10.244.0.12}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: sem}
spec:
  clusterIP: None
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: sem}
spec:
  type: ExternalName
  externalName: example.org
---
apiVersion: v1
kind: Service
metadata: {name: stream, namespace: sem}
spec:
  ports: [{name: sctp, port: 7777, targetPort: 7777, protocol: SCTP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: stream, namespace: sem}
subsets:
- addresses: [{ip: 10.244.0.13}]
  ports: [{name: sctp, port: 7777, protocol: SCTP}]
EOF
seed=$(cip seed); dns=$(cip dns); dual4=$(cip dual 0); dual6=$(cip dual 1)
empty=$(cip empty); local_ip=$(cip local); stream=$(cip stream)
[[ $dual6 == *:* ]] || fail "dual-stack Service got no IPv6 ClusterIP ($dual6)"

start_kube_annex -v
ka_wait_for 'host_nft ip | contains "sem/stream:sctp"' 30 "Services programmed"

# --- named ports, each to its own target port on both addresses -----------
for port in 9999:80 8888:443; do
	seen=$(for _ in $(seq 24); do get "$seed:${port%:*}"; done | sort -u | tr '\n' ' ')
	[ "$seen" = "pod1 ${port#*:} pod2 ${port#*:} " ] ||
		fail "sem/seed:${port%:*} should reach port ${port#*:} on pod1 and pod2, saw: $seen"
done
ok "seed example: 9999 -> :80 and 8888 -> :443 on both addresses"

# --- UDP -------------------------------------------------------------------
[ "$(udp "$dns:53")" = "pod3 8080" ] || fail "UDP to $dns:53 did not reach pod3:8080"
ok "UDP Service $dns:53 -> pod3:8080"

# --- dual-stack: each family to its own endpoints ---------------------------
[ "$(get "$dual4:80")" = "pod1 8080" ] || fail "dual-stack IPv4 $dual4:80 should reach only pod1"
[ "$(get "[$dual6]:80")" = "pod2 8080" ] || fail "dual-stack IPv6 [$dual6]:80 should reach only pod2"
host_nft ip6 | contains "sem/dual:http" || fail "ip6 kube-annex lacks sem/dual:http"
ok "dual-stack: $dual4 -> IPv4 endpoint, [$dual6] -> IPv6 endpoint (ip6 kube-annex)"

# --- no endpoints / unknown port: fail fast --------------------------------
host_nft ip | grep -A4 "map no-endpoint-services" | contains "sem/empty:http" ||
	fail "sem/empty not in no-endpoint-services"
t0=$(now_ms); rc=0
$KA_IN_HOST curl -s --max-time 5 "http://$empty/" >/dev/null 2>&1 || rc=$?
dt=$(($(now_ms) - t0))
[ $rc -eq 7 ] || fail "connection to a Service without endpoints: curl exit $rc, want 7 (refused)"
[ $dt -lt 1000 ] || fail "connection to a Service without endpoints took ${dt} ms to fail"
t0=$(now_ms); rc=0
$KA_IN_HOST curl -s --max-time 5 "http://$seed:1234/" >/dev/null 2>&1 || rc=$?
dt2=$(($(now_ms) - t0))
[ $rc -eq 7 ] && [ $dt2 -lt 1000 ] || fail "unknown port on a ClusterIP: curl exit $rc after ${dt2} ms"
ok "no endpoints: refused in ${dt} ms; unknown port of a ClusterIP: refused in ${dt2} ms"

# --- external IPs: DNATed locally like a ClusterIP --------------------------
[ "$(get 192.0.2.50:80)" = "pod2 8080" ] || fail "external IP 192.0.2.50:80 did not reach pod2"
ok "externalIP 192.0.2.50:80 -> pod2 (cluster-wide endpoints for the host's own traffic)"

# --- not proxied, with the reason -------------------------------------------
grep -q "sem/headless: not proxied: headless" "$KA_STATE/kube-annex.log" || fail "headless not reported"
grep -q "sem/alias: not proxied: ExternalName" "$KA_STATE/kube-annex.log" || fail "ExternalName not reported"
host_nft ip | contains "sem/headless\|sem/alias" && fail "headless/ExternalName Service in the table"
ok "headless and ExternalName Services: not proxied, reason logged"

# --- SCTP: rules are generated; traffic needs kernel SCTP sockets -----------
host_nft ip | contains "$stream . sctp . 7777" || fail "no SCTP element for sem/stream"
if $KA_IN_HOST python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)' 2>/dev/null; then
	echo "note: this kernel has SCTP sockets; SCTP traffic is not exercised by this test"
else
	echo "SKIP (sub-check): SCTP traffic: this kernel refuses SCTP sockets (EPROTONOSUPPORT); rule generation checked"
fi
ok "SCTP Service programmed ($stream . sctp . 7777)"

# --- --no-external-ips ------------------------------------------------------
stop_kube_annex
start_kube_annex --no-external-ips
ka_wait_for '[ "$(get "$seed:9999" | cut -c1-3)" = pod ]' 30 "restart with --no-external-ips"
host_nft ip | contains 192.0.2.50 && fail "--no-external-ips: external IP still programmed"
ok "--no-external-ips: external IPs not programmed"
