#!/usr/bin/env bash
# Session affinity (ClientIP with timeoutSeconds) and the Service CIDR drop,
# against the real API server with real traffic: repeated connections from
# the host stick to one endpoint (IPv4 and IPv6) while those to a Service
# without affinity spread; a pin expires after its timeout; a client pinned
# to an endpoint that is removed never reaches it again; pins survive a
# restart that adopts the table. With --service-cidr, a connection to an
# unallocated address of the Service CIDR is dropped (it times out, where
# the network would have refused it) while allocated ClusterIPs still
# answer, or refuse unknown ports.
set -euo pipefail

export KA_PREFIX=${KA_PREFIX:-kaaff}
source "$(dirname "$0")/common.sh"

# N connections; prints the distinct answers, one per line, with counts
many() { for _ in $(seq "$2"); do get "$1"; done | sort | uniq -c; }
cip() { ka_kubectl -n aff get service "$1" -o jsonpath="{.spec.clusterIPs[${2:-0}]}"; }
endpoints() { # NAME PORT ADDRESS...
	local name=$1 port=$2 a list=
	shift 2
	for a in "$@"; do list+="{ip: \"$a\"}, "; done
	ka_kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Endpoints
metadata: {name: $name, namespace: aff}
subsets:
- addresses: [${list%, }]
  ports: [{name: http, port: $port, protocol: TCP}]
EOF
}

ka_env_up
[ "${KA_DUAL_STACK:-1}" = 1 ] || fail "the environment has no dual-stack Service CIDR"
ka_kubectl create namespace aff >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: aff}
spec:
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  sessionAffinity: ClientIP
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: short, namespace: aff}
spec:
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 3}}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: spread, namespace: aff}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
EOF
endpoints sticky 8080 10.244.0.11 10.244.0.12 10.244.0.13 fd00:244::11 fd00:244::12 fd00:244::13
endpoints short 8080 10.244.0.11 10.244.0.12 10.244.0.13
endpoints spread 8080 10.244.0.11 10.244.0.12 10.244.0.13
sticky=$(cip sticky 0); sticky6=$(cip sticky 1); short=$(cip short); spread=$(cip spread)
[[ $sticky6 == *:* ]] || fail "dual-stack Service got no IPv6 ClusterIP ($sticky6)"

start_kube_annex -v --keep-rules --service-cidr "$KA_SERVICE_CIDR,$KA_SERVICE_CIDR6"
ka_wait_for 'host_nft ip | contains "aff/short:http\" : goto affinity-3-3"' 30 \
	"aff/short (timeoutSeconds 3) going to chain affinity-3-3"
ka_wait_for 'host_nft ip | contains "aff/sticky:http\" : goto affinity-3-10800"' 30 \
	"aff/sticky (default timeout 10800 s) going to chain affinity-3-10800"
ka_wait_for 'host_nft ip6 | contains "aff/sticky:http\" : goto affinity-3-10800"' 30 \
	"aff/sticky over IPv6 going to chain affinity-3-10800"
ka_wait_for 'host_nft ip | contains "aff/spread:http\" : goto lb-3"' 30 "aff/spread going to lb-3"

# --- without affinity connections spread; with it they stick ---------------
seen=$(many "$spread:80" 24)
[ "$(wc -l <<<"$seen")" -ge 2 ] || fail "24 connections to aff/spread all reached one pod: $seen"
ok "no affinity: 24 connections spread over $(wc -l <<<"$seen") pods ($(echo $seen))"

seen=$(many "$sticky:80" 24)
[ "$(wc -l <<<"$seen")" -eq 1 ] && [[ $seen == *" 24 pod"* ]] ||
	fail "24 connections to aff/sticky ($sticky) did not all reach one pod: $seen"
pinned=$(awk '{print $2}' <<<"$seen")
ok "ClientIP affinity: 24 connections to $sticky:80 all reached $pinned"
host_nft ip | grep -A8 "set endpoint-.-clients" | contains "$KA_HOST_IP . $sticky . tcp . 80 " ||
	fail "no pin for $KA_HOST_IP . $sticky . tcp . 80 in the endpoint-N-clients sets"
ok "the pin is listed: $(host_nft ip | grep -o "$KA_HOST_IP . $sticky . tcp . 80 [^,}]*" | head -1)"

seen6=$(many "[$sticky6]:80" 24)
[ "$(wc -l <<<"$seen6")" -eq 1 ] && [[ $seen6 == *" 24 pod"* ]] ||
	fail "24 connections to aff/sticky over IPv6 ($sticky6) did not all reach one pod: $seen6"
ok "ClientIP affinity over IPv6: 24 connections to [$sticky6]:80 all reached $(awk '{print $2}' <<<"$seen6")"

# --- the pin expires after timeoutSeconds (3 s) -----------------------------
# Each round: a burst that must stick, then 3.5 s of silence. After the
# timeout the next connection picks again (1 in 3: the same pod), so a
# different pod shows up within a few rounds.
first="" other="" rounds=0
while [ $rounds -lt 8 ] && [ -z "$other" ]; do
	rounds=$((rounds + 1))
	seen=$(many "$short:80" 8)
	[ "$(wc -l <<<"$seen")" -eq 1 ] || fail "aff/short round $rounds: 8 quick connections spread: $seen"
	pod=$(awk '{print $2}' <<<"$seen")
	if [ -z "$first" ]; then first=$pod; elif [ "$pod" != "$first" ]; then other=$pod; fi
	ka_wait_for '! host_nft ip | contains "$KA_HOST_IP . $short . tcp . 80 "' 5 "pin expired" ||
		fail "the pin of $KA_HOST_IP for $short:80 outlived its 3 s timeout"
	sleep 0.5
done
[ -n "$other" ] || fail "aff/short: still $first after $rounds expiries"
ok "timeoutSeconds 3: stuck to $first, the pin expired, then stuck to $other (round $rounds)"

# --- a pinned endpoint that leaves is never reached again -------------------
pinned_ip=10.244.0.1${pinned#pod}
rest=()
for a in 10.244.0.11 10.244.0.12 10.244.0.13; do [ "$a" = "$pinned_ip" ] || rest+=("$a"); done
endpoints sticky 8080 "${rest[@]}" fd00:244::11 fd00:244::12 fd00:244::13
ka_wait_for 'host_nft ip | contains "aff/sticky:http\" : goto affinity-2-10800"' 30 "endpoint removed"
host_nft ip | grep "map endpoint-" -A6 | contains "$sticky . tcp . 80 : $pinned_ip " &&
	fail "$pinned_ip is still an endpoint of $sticky:80"
seen=$(many "$sticky:80" 24)
grep -q "$pinned" <<<"$seen" && fail "a client pinned to $pinned reached it after it left: $seen"
[ "$(wc -l <<<"$seen")" -eq 1 ] || fail "after $pinned left, 24 connections did not stick: $seen"
repinned=$(awk '{print $2}' <<<"$seen")
ok "$pinned left aff/sticky: 24 connections, none to it, all to $repinned"

# --- a restart adopts the table, pins and all -------------------------------
handle=$($KA_IN_HOST nft -a list table ip kube-annex | sed -n 1p)
stop_kube_annex
start_kube_annex -v --keep-rules --service-cidr "$KA_SERVICE_CIDR,$KA_SERVICE_CIDR6"
ka_wait_for 'grep -c "Programmed" "$KA_STATE/kube-annex.log" | grep -q 2' 30 "second instance ready"
grep -q "nft: adopted table ip kube-annex" "$KA_STATE/kube-annex.log" ||
	fail "the restart did not adopt the table: $(grep "nft: " "$KA_STATE/kube-annex.log" | tail -3)"
[ "$($KA_IN_HOST nft -a list table ip kube-annex | sed -n 1p)" = "$handle" ] ||
	fail "the restart replaced the table"
seen=$(many "$sticky:80" 12)
[ "$(awk '{print $2}' <<<"$seen")" = "$repinned" ] || fail "after the restart: $seen, pinned was $repinned"
ok "restart with --keep-rules adopted the table; still pinned to $repinned"
grep -q "changed from outside" "$KA_STATE/kube-annex.log" &&
	fail "pins added by traffic were taken for an outside change"
ok "pins added by traffic are not mistaken for outside changes"

# --- Service CIDR: unallocated addresses dropped -----------------------------
host_nft ip | contains "ip daddr 10.96.0.0/16 drop comment \"Drop traffic to unallocated ClusterIPs\"" ||
	fail "no drop rule for $KA_SERVICE_CIDR"
host_nft ip6 | contains "ip6 daddr fd00:96::/112 drop" || fail "no drop rule for $KA_SERVICE_CIDR6"
allocated=$(ka_kubectl get services -A -o jsonpath='{range .items[*]}{.spec.clusterIPs[*]} {end}')
free4=10.96.255.254 free6=fd00:96::fffe
[[ " $allocated " == *" $free4 "* || " $allocated " == *" $free6 "* ]] &&
	fail "$free4 or $free6 happens to be allocated: $allocated"
for vip in "$free4" "[$free6]"; do
	t0=$(now_ms); rc=0
	$KA_IN_HOST curl -s --max-time 2 "http://$vip:80/" >/dev/null 2>&1 || rc=$?
	dt=$(($(now_ms) - t0))
	[ $rc -eq 28 ] || fail "unallocated $vip:80: curl exit $rc after $dt ms, want 28 (timed out: dropped)"
done
ok "unallocated $free4:80 and [$free6]:80: dropped (timed out after 2 s)"
[ -n "$(get "$spread:80")" ] || fail "allocated $spread:80 no longer answers"
t0=$(now_ms); rc=0
$KA_IN_HOST curl -s --max-time 2 "http://$spread:1234/" >/dev/null 2>&1 || rc=$?
dt=$(($(now_ms) - t0))
[ $rc -eq 7 ] && [ $dt -lt 1000 ] || fail "unknown port of allocated $spread: curl exit $rc after $dt ms"
ok "allocated ClusterIPs still answer ($spread:80), and refuse unknown ports in $dt ms"

stop_kube_annex
start_kube_annex
ka_wait_for '[ -n "$(get "$spread:80")" ]' 30 "restart without --service-cidr"
rc=0
$KA_IN_HOST curl -s --max-time 2 "http://$free4:80/" >/dev/null 2>&1 || rc=$?
[ $rc -eq 7 ] || fail "without --service-cidr, $free4:80 gave curl exit $rc; the network refuses it (7)"
host_nft ip | contains "drop comment \"Drop traffic to unallocated" && fail "drop rule without --service-cidr"
ok "without --service-cidr the address is not dropped (the network refuses it: unreachable)"
