#!/usr/bin/env bash
# Proves the test environment itself (tests/env/lib.sh): the namespaces
# route, the pods answer, the real API server serves kube-annex's
# least-privilege identity, the EndpointSlice mirroring controller turns a
# selector-less Service + Endpoints into a discovery.k8s.io/v1beta1
# EndpointSlice, kube-apiserver can be stopped and restarted, and teardown
# leaves nothing behind - in particular the root network namespace is
# exactly as before.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=env-smoke

fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
ok() { echo "$me: ok: $*"; }

if [ "$(id -u)" -ne 0 ]; then
	echo "$me: SKIP: needs root (network namespaces)"
	exit 77
fi

root_snapshot() {
	{
		ip addr
		ip route
		ip -6 route
		ip rule
		ip -6 rule
		nft list ruleset
	} 2>&1 | sed -E 's/(valid|preferred)_lft [0-9]+sec/\1_lft N/g'
}
before=$(root_snapshot)

export KA_PREFIX=${KA_PREFIX:-kasmoke}
# shellcheck source=../env/lib.sh
source "$here/../env/lib.sh"
# Read all input before matching: with pipefail, "producer | grep -q" fails
# whenever grep exits before the producer has written everything.
contains() { local in; in=$(cat); grep -q "$@" <<<"$in"; }
trap 'ka_env_down >/dev/null 2>&1' EXIT

t0=$EPOCHREALTIME
ka_env_up || fail "ka_env_up failed (see messages above)"
echo "$me: ka_env_up took $(_ka_since "$t0") s"

# -- the network: host reaches pods directly, but not the Service CIDR
i=0
for ip in $KA_POD_IPS; do
	i=$((i + 1))
	got=$(ka_in_host curl -sS --max-time 5 "http://$ip:8080/") ||
		fail "host cannot reach pod$i at $ip:8080 over HTTP"
	[ "$got" = "pod$i 8080" ] || fail "pod$i at $ip:8080 answered '$got'"
done
ok "host reaches pod1..3 over IPv4 (HTTP)"
got=$(ka_in_host socat -T2 - TCP:10.244.0.11:8080 </dev/null) ||
	fail "raw TCP from host to 10.244.0.11:8080 failed"
[ "$got" = "pod1 8080" ] || fail "raw TCP to 10.244.0.11:8080 got '$got'"
i=0
for ip in $KA_POD_IP6S; do
	i=$((i + 1))
	got=$(ka_in_host curl -sS --max-time 5 -g "http://[$ip]:80/") ||
		fail "host cannot reach pod$i at [$ip]:80"
	[ "$got" = "pod$i 80" ] || fail "pod$i at [$ip]:80 answered '$got'"
done
ok "host reaches pod1..3 over IPv6"
got=$(echo ping | ka_in_host socat -T2 - UDP:10.244.0.12:8080) || fail "UDP to pod2 failed"
[ "$got" = "pod2 8080" ] || fail "UDP to pod2 got '$got'"
got=$(echo ping | ka_in_host socat -T2 - "UDP6:[fd00:244::13]:8080") || fail "UDP6 to pod3 failed"
[ "$got" = "pod3 8080" ] || fail "UDP6 to pod3 got '$got'"
ok "UDP over IPv4 and IPv6"
if ka_in_host curl -sS --max-time 3 -o /dev/null "http://10.96.0.1:443/" 2>/dev/null; then
	fail "host reaches the Service CIDR without kube-annex"
fi
ok "Service CIDR is unreachable from the host without kube-annex"

ka_pod_start pod2 9000/tcp || fail "ka_pod_start pod2 9000/tcp failed"
got=$(ka_in_host curl -sS --max-time 5 http://10.244.0.12:9000/) || fail "extra podserver unreachable"
[ "$got" = "pod2 9000" ] || fail "extra podserver answered '$got'"
ok "ka_pod_start"

# "ka_in_host CMD &": $! is CMD itself, inside the host namespace, and
# ka_env_down stops it.
ka_in_host sleep 600 >/dev/null 2>&1 &
bg=$!
sleep 0.2
[ "$(cat "/proc/$bg/comm" 2>/dev/null)" = sleep ] || fail "\$! of 'ka_in_host sleep 600 &' is not sleep"
[ "$(readlink "/proc/$bg/ns/net")" = "net:[$(stat -L -c %i "/run/netns/$KA_HOST_NS")]" ] ||
	fail "'ka_in_host sleep 600 &' does not run in $KA_HOST_NS"
ok "ka_in_host CMD & gives CMD's own PID"

# -- kube-annex's identity
[ "$(stat -c %a "$KA_KUBECONFIG")" = 600 ] || fail "$KA_KUBECONFIG is not mode 0600"
grep -q '^    certificate-authority: "ca.crt"$' "$KA_KUBECONFIG" ||
	fail "$KA_KUBECONFIG does not reference its CA as the relative file ca.crt"
ka_kubectl_annex get services -A >/dev/null || fail "kube-annex identity cannot list services"
ka_kubectl_annex get endpoints -A >/dev/null || fail "kube-annex identity cannot list endpoints"
ka_kubectl_annex get endpointslices.discovery.k8s.io -A >/dev/null ||
	fail "kube-annex identity cannot list endpointslices"
err=$(ka_kubectl_annex get secrets -n kube-annex 2>&1) && fail "kube-annex identity can read secrets"
grep -q Forbidden <<<"$err" || fail "reading secrets failed, but not as Forbidden: $err"
for verb in "create services" "delete endpointslices.discovery.k8s.io" "list pods" "watch secrets"; do
	# shellcheck disable=SC2086
	[ "$(ka_kubectl_annex auth can-i $verb -A 2>/dev/null)" = no ] ||
		fail "kube-annex identity may '$verb'"
done
ok "kube-annex identity: reads services/endpoints/endpointslices, nothing else"

# -- the seed scenario: selector-less Service + hand-made Endpoints
ka_kubectl apply -f - >/dev/null <<'EOF' || fail "kubectl apply of the selector-less Service failed"
apiVersion: v1
kind: Service
metadata:
  name: smoke-external
  namespace: default
spec:
  ports:
  - name: web
    port: 80
---
apiVersion: v1
kind: Endpoints
metadata:
  name: smoke-external
  namespace: default
subsets:
- addresses:
  - ip: 10.244.0.11
  ports:
  - name: web
    port: 8080
EOF
slices="/apis/discovery.k8s.io/v1beta1/namespaces/default/endpointslices?labelSelector=kubernetes.io/service-name=smoke-external"
ka_wait_for "ka_kubectl get --raw '$slices' | contains 10.244.0.11" 30 \
	"a mirrored EndpointSlice for default/smoke-external" || fail "no mirrored EndpointSlice"
ka_kubectl get --raw "$slices" | "$KA_PYTHON" -c '
import json, sys
lst = json.load(sys.stdin)
assert len(lst["items"]) == 1, "want one slice, got %d" % len(lst["items"])
s = lst["items"][0]
assert lst["apiVersion"] == "discovery.k8s.io/v1beta1", lst["apiVersion"]
assert s["metadata"]["labels"]["kubernetes.io/service-name"] == "smoke-external"
assert s["metadata"]["labels"].get("endpointslice.kubernetes.io/managed-by") == \
	"endpointslicemirroring-controller.k8s.io", s["metadata"]["labels"]
assert s["addressType"] == "IPv4"
assert [e["addresses"] for e in s["endpoints"]] == [["10.244.0.11"]], s["endpoints"]
assert s["ports"] == [{"name": "web", "protocol": "TCP", "port": 8080}], s["ports"]
' || fail "the mirrored EndpointSlice is not as expected"
ok "selector-less Service + Endpoints yield a mirrored discovery.k8s.io/v1beta1 EndpointSlice"

# -- stopping and restarting only the API server
t=$EPOCHREALTIME
ka_apiserver_stop || fail "ka_apiserver_stop failed"
ka_api_curl -fsS --max-time 2 /readyz >/dev/null 2>&1 && fail "API server still answers after ka_apiserver_stop"
ka_in_ns cp curl -fsS --max-time 1 http://127.0.0.1:2379/health >/dev/null || fail "etcd died with the API server"
ka_apiserver_start || fail "ka_apiserver_start failed"
ka_kubectl_annex get services -n default smoke-external >/dev/null ||
	fail "kube-annex identity does not work after the API server restart"
ok "API server stop/start in $(_ka_since "$t") s"

# -- teardown leaves nothing
pids=$(cat "$KA_STATE"/pids/*.pid "$KA_STATE"/pids/*.list 2>/dev/null | cut -d' ' -f1 | sort -u)
nss=$(_ka_our_netns)
[ "$(echo "$nss" | wc -w)" = 6 ] || fail "expected 6 namespaces before teardown, got: $nss"
t=$EPOCHREALTIME
ka_env_down || fail "ka_env_down reported a problem"
echo "$me: ka_env_down took $(_ka_since "$t") s"
trap - EXIT
left=$(ip netns list | cut -d' ' -f1 | grep -x -e "$KA_PREFIX-net" -e "$KA_PREFIX-cp" \
	-e "$KA_PREFIX-host" -e "$KA_PREFIX-pod[0-9]*")
[ -z "$left" ] || fail "namespaces left after ka_env_down: $left"
for pid in $pids; do
	state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || continue
	[ "$state" = Z ] && continue # exited, not yet reaped by its new parent
	fail "process $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) survived ka_env_down"
done
[ ! -e "$KA_STATE" ] || fail "state dir $KA_STATE left behind"
after=$(root_snapshot)
if [ "$before" != "$after" ]; then
	diff <(echo "$before") <(echo "$after") >&2
	fail "the root network namespace changed (addresses, routes, rules or nftables)"
fi
ok "teardown: no namespaces, no processes, no state, root namespace unchanged"
echo "$me: PASS"
