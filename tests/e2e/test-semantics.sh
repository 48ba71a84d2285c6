#!/usr/bin/env bash
# Service semantics on the off-cluster host, against the real API server
# with real traffic: named multi-port Services (the seed example), UDP,
# dual-stack / IPv6, fast failure for Services without endpoints and for
# unknown ports, external IPs and load-balancer ingress IPs (and the switch
# that turns them off), Services that are not proxied (headless,
# ExternalName, the service-proxy-name label, removed live), the fallback to
# serving+terminating endpoints, SCTP (rules always; traffic where the kernel
# has SCTP sockets). The API server runs with the alpha gate
# EndpointSliceTerminatingCondition: without it 1.20 drops the serving and
# terminating conditions of an EndpointSlice on write. (internalTrafficPolicy,
# topology hints and ipMode are newer than this 1.20 server: test-faults.sh
# covers them with v1 objects.)
set -euo pipefail

export KA_PREFIX=${KA_PREFIX:-kasem}
export KA_FEATURE_GATES=EndpointSliceTerminatingCondition=true
source "$(dirname "$0")/common.sh"
t_start=$EPOCHREALTIME
skipped=()

no_endpoint_map() { $KA_IN_HOST nft list map ip kube-annex no-endpoint-services 2>/dev/null; }
# one UDP datagram from the host; prints the answer
udp() { $KA_IN_HOST socat -T1 - "UDP:$1" <<<"ping" 2>/dev/null || true; }
cip() { ka_kubectl -n sem get service "$1" -o jsonpath="{.spec.clusterIPs[${2:-0}]}"; }
# N answers from http://$1/, sorted and counted: "12 pod1 8080" lines joined by ", "
spread() {
	local i
	for ((i = 0; i < $2; i++)); do get "$1"; done | sort | uniq -c | sed 's/^ *//' | paste -sd, - | sed 's/,/, /g'
}
# curl exit code and milliseconds for a connection to http://$1/: "RC MS"
refused() {
	local t0 rc=0
	t0=$(now_ms)
	$KA_IN_HOST curl -s --max-time 5 "http://$1/" >/dev/null 2>&1 || rc=$?
	echo "$rc $(($(now_ms) - t0))"
}
# A hand-made EndpointSlice for the selector-less Service sem/term (kept by
# the API server as written: no controller manages it).
term_slice() { # "IP READY SERVING TERMINATING"...
	local e ip ready serving terminating
	{
		cat <<-EOF
		apiVersion: discovery.k8s.io/v1beta1
		kind: EndpointSlice
		metadata:
		  name: term-1
		  namespace: sem
		  labels: {kubernetes.io/service-name: term, endpointslice.kubernetes.io/managed-by: kube-annex-test}
		addressType: IPv4
		ports: [{name: http, port: 8080, protocol: TCP}]
		endpoints:
		EOF
		for e in "$@"; do
			read -r ip ready serving terminating <<<"$e"
			echo "- {addresses: [$ip], conditions: {ready: $ready, serving: $serving, terminating: $terminating}}"
		done
	} | ka_kubectl apply -f - >/dev/null
}

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
metadata: {name: term, namespace: sem}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: other
  namespace: sem
  labels: {service.kubernetes.io/service-proxy-name: other-proxy}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: other, namespace: sem}
subsets:
- addresses: [{ip: 10.244.0.13}]
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: sem}
spec:
  type: LoadBalancer
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: lb, namespace: sem}
subsets:
- addresses: [{ip: 10.244.0.11}]
  ports: [{name: http, port: 8080}]
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
term=$(cip term); other=$(cip other); lb=$(cip lb)
[[ $dual6 == *:* ]] || fail "dual-stack Service got no IPv6 ClusterIP ($dual6)"
# Only pod1, and only serving+terminating (a pod shutting down gracefully).
term_slice "10.244.0.11 false true true"
kept=$(ka_kubectl -n sem get endpointslice term-1 -o jsonpath='{.endpoints[0].conditions}')
[[ $kept == *'"serving":true'* && $kept == *'"terminating":true'* ]] ||
	fail "the API server dropped serving/terminating of sem/term-1 (EndpointSliceTerminatingCondition off?): $kept"

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
no_endpoint_map | contains "sem/empty:http" ||
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
t0=$(now_ms); rc=0
$KA_IN_HOST curl -s --max-time 5 "http://[$dual6]:1234/" >/dev/null 2>&1 || rc=$?
dt6=$(($(now_ms) - t0))
[ $rc -eq 7 ] && [ $dt6 -lt 1000 ] || fail "unknown port on an IPv6 ClusterIP: curl exit $rc after ${dt6} ms"
ok "no endpoints: refused in ${dt} ms; unknown port of a ClusterIP: refused in ${dt2} ms (IPv6: ${dt6} ms, a TCP reset)"

# --- external IPs: DNATed locally like a ClusterIP --------------------------
[ "$(get 192.0.2.50:80)" = "pod2 8080" ] || fail "external IP 192.0.2.50:80 did not reach pod2"
ok "externalIP 192.0.2.50:80 -> pod2 (cluster-wide endpoints for the host's own traffic)"

# --- terminating endpoints: kube-proxy's fallback ----------------------------
seen=$(spread "$term:80" 8)
[ "$seen" = "8 pod1 8080" ] ||
	fail "sem/term with only a serving+terminating endpoint (pod1) should reach it, saw: ${seen:-nothing}"
ok "terminating fallback: no ready endpoint, the serving+terminating one is used ($seen; server kept $kept)"
term_slice "10.244.0.11 false true true" "10.244.0.12 true true false"
ka_wait_for '[ "$(get "$term:80")" = "pod2 8080" ]' 10 "ready endpoint of sem/term in use"
seen=$(spread "$term:80" 16)
[ "$seen" = "16 pod2 8080" ] || fail "sem/term with a ready endpoint should use only it (pod2), saw: $seen"
ok "terminating fallback: once an endpoint is ready only it is used ($seen)"
term_slice "10.244.0.11 false false true" "10.244.0.12 false false false"
ka_wait_for 'no_endpoint_map | contains "sem/term:http"' 10 "sem/term in no-endpoint-services"
read -r rc dt <<<"$(refused "$term")"
[ "$rc" -eq 7 ] && [ "$dt" -lt 1000 ] ||
	fail "sem/term with no serving endpoint: curl exit $rc after ${dt} ms, want 7 (refused) at once"
ok "no serving endpoint (ready=false, serving=false): refused in ${dt} ms"

# --- not proxied, with the reason -------------------------------------------
grep -q "sem/headless: not proxied: headless" "$KA_STATE/kube-annex.log" || fail "headless not reported"
grep -q "sem/alias: not proxied: ExternalName" "$KA_STATE/kube-annex.log" || fail "ExternalName not reported"
host_nft ip | contains "sem/headless\|sem/alias" && fail "headless/ExternalName Service in the table"
ok "headless and ExternalName Services: not proxied, reason logged"

# --- service.kubernetes.io/service-proxy-name: another proxy's Service --------
grep -q "sem/other: not proxied: label service.kubernetes.io/service-proxy-name" "$KA_STATE/kube-annex.log" ||
	fail "sem/other (service-proxy-name label) not reported as not proxied"
host_nft ip | contains "sem/other\|$other " && fail "sem/other (service-proxy-name label) is in the table"
[ -z "$(get "$other:80")" ] || fail "sem/other (service-proxy-name label) answers through its ClusterIP"
ka_kubectl -n sem label service other service.kubernetes.io/service-proxy-name- >/dev/null
ka_wait_for '[ "$(get "$other:80")" = "pod3 80" ]' 10 "sem/other reachable once its label is removed"
host_nft ip | contains "sem/other:http" || fail "sem/other not in the table after its label was removed"
ok "service-proxy-name label: not proxied, reason logged, not in the table; label removed live -> $other:80 reaches pod3"

# --- load-balancer ingress IPs (status subresource, as a cloud controller) ----
[ -z "$(get 192.0.2.60:80)" ] || fail "192.0.2.60 answers before it is the load-balancer IP of sem/lb"
ka_api_curl -fsS -X PATCH -H "Content-Type: application/merge-patch+json" \
	-d '{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.60"}]}}}' \
	/api/v1/namespaces/sem/services/lb/status >/dev/null || fail "PATCH of sem/lb's status failed"
[ "$(ka_kubectl -n sem get service lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}')" = 192.0.2.60 ] ||
	fail "the API server did not keep sem/lb's load-balancer ingress"
ka_wait_for '[ "$(get 192.0.2.60:80)" = "pod1 8080" ]' 10 "load-balancer IP 192.0.2.60 of sem/lb"
host_nft ip | contains "192.0.2.60 . tcp . 80 comment \"sem/lb:http\"" || fail "no service-ips element for 192.0.2.60"
[ "$(get "$lb:80")" = "pod1 8080" ] || fail "sem/lb's ClusterIP $lb does not reach pod1"
ok "load-balancer ingress IP 192.0.2.60:80 (set live on status) -> pod1; ClusterIP $lb too"

# --- SCTP: rules are generated; traffic where the kernel has SCTP sockets ----
host_nft ip | contains "$stream . sctp . 7777" || fail "no SCTP element for sem/stream"
ok "SCTP Service programmed ($stream . sctp . 7777)"
if $KA_IN_HOST "$KA_PYTHON" -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)' 2>/dev/null; then
	# A one-to-one SCTP server in pod3 (podserver.py speaks TCP/UDP only)
	# and a client on the host through the ClusterIP.
	KA_IN_NS_EXEC=1 ka_in_ns pod3 "$KA_PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.recv(64); c.sendall(b"pod3 7777/sctp\n"); c.close()
' </dev/null >"$KA_STATE/sctp-server.log" 2>&1 &
	ka_wait_for 'grep -q ready "$KA_STATE/sctp-server.log"' 10 "SCTP server in pod3"
	got=$($KA_IN_HOST "$KA_PYTHON" -c '
import socket, sys
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
c.settimeout(3); c.connect((sys.argv[1], 7777)); c.sendall(b"ping\n")
print(c.recv(64).decode().strip())
' "$stream" 2>&1) || true
	[ "$got" = "pod3 7777/sctp" ] || fail "SCTP to $stream:7777 did not reach pod3: ${got:-nothing}"
	ok "SCTP traffic: $stream:7777 -> pod3 ($got)"
else
	skipped+=("SCTP traffic (this kernel refuses SCTP sockets: EPROTONOSUPPORT, no CONFIG_IP_SCTP)")
	echo "SKIP (sub-check): SCTP traffic: this kernel refuses SCTP sockets (EPROTONOSUPPORT); rule generation checked"
fi

# --- --no-external-ips ------------------------------------------------------
stop_kube_annex
start_kube_annex --no-external-ips
ka_wait_for '[ "$(get "$seed:9999" | cut -c1-3)" = pod ]' 30 "restart with --no-external-ips"
host_nft ip | contains "192.0.2.50\|192.0.2.60" && fail "--no-external-ips: external or load-balancer IP still programmed"
[ -z "$(get 192.0.2.60:80)$(get 192.0.2.50:80)" ] || fail "--no-external-ips: 192.0.2.60 or 192.0.2.50 still answers"
[ "$(get "$lb:80")" = "pod1 8080" ] || fail "--no-external-ips: sem/lb's ClusterIP no longer reaches pod1"
ok "--no-external-ips: external IP 192.0.2.50 and load-balancer IP 192.0.2.60 not programmed, unreachable; ClusterIPs still work"

echo "RESULT semantics_runtime_s=$(_ka_since "$t_start") skipped_subchecks=${#skipped[@]}"
for s in "${skipped[@]}"; do echo "skipped sub-check: $s"; done
