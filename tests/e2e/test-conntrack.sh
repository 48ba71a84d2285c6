#!/usr/bin/env bash
# UDP conntrack hygiene, against the real API server with real traffic.
# A UDP client in the host sends a datagram every 20 ms from one fixed
# source port, so its conntrack entry never expires and keeps every
# datagram on the endpoint the first one picked. When that endpoint dies
# and leaves the Service, kube-annex deletes the entry and the next
# datagram reaches a live endpoint (without the cleanup the client is
# black-holed for as long as it keeps sending). The same over IPv6; a
# Service scaled to zero stops answering at once (no flow stays pinned to
# an endpoint it no longer has), and answers again when an endpoint
# returns. A flow of another Service to the same pods keeps its entry.
set -euo pipefail

command -v conntrack >/dev/null || { echo "SKIP: needs the conntrack tool (package conntrack)" >&2; exit 77; }

export KA_PREFIX=${KA_PREFIX:-kact}
# 8080/udp for ct/echo, whose endpoints die; 9090/udp for ct/side, which stays.
export KA_POD_PORTS="8080/udp 9090/udp"
source "$(dirname "$0")/common.sh"
clients=()

e2e_cleanup() {
	local pid
	for pid in "${clients[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${clients[@]}"; do wait "$pid" 2>/dev/null || true; done
}
cip() { ka_kubectl -n ct get service echo -o jsonpath="{.spec.clusterIPs[${1:-0}]}"; }
# The Endpoints of ct/echo: pods by number (both of their addresses); none:
# no endpoints at all.
endpoints() {
	local n list="" subsets="[]"
	for n in "$@"; do list+="{ip: 10.244.0.1$n}, {ip: \"fd00:244::1$n\"}, "; done
	[ -z "$list" ] ||
		subsets="[{addresses: [${list%, }], ports: [{name: udp, port: 8080, protocol: UDP}]}]"
	ka_kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Endpoints
metadata: {name: echo, namespace: ct}
subsets: $subsets
EOF
}
# Pod N's UDP server dies (its datagrams are dropped); the pod stays.
kill_udp() {
	ka_in_ns "pod$1" nft -f - <<'EOF'
table inet kact-dead {
	chain input { type filter hook input priority 0; udp dport 8080 drop; }
}
EOF
}

# A client that sends "ping" every 20 ms from SPORT to VIP:PORT and writes
# each answer as "<unix ms> <podN>" to FILE. Unconnected: ICMP errors
# (rejects while there are no endpoints) do not stop it.
client_py=$KA_STATE/udp-client.py
start_client() { # VIP PORT SPORT FILE; sets client_pid
	: >"$4"
	$KA_IN_HOST "$KA_PYTHON" "$client_py" "$@" </dev/null 2>>"$KA_STATE/udp-client.err" &
	client_pid=$!
	clients+=("$client_pid")
}
# The first answer in FILE after T (unix ms), from POD if given: "<ms> <pod>".
first_after() { awk -v t="$2" -v p="${3:-}" '$1 > t && (p == "" || $2 == p) { print; exit }' "$1"; }
answers_after() { awk -v t="$2" '$1 > t' "$1" | wc -l; }
pods_after() { awk -v t="$2" '$1 > t { print $2 }' "$1" | sort -u | tr '\n' ' '; }
# The reply source of the host's UDP entries to Service port PORT (family 4|6).
ct_replies() { # FAMILY PORT
	$KA_IN_HOST conntrack -L -f "ipv$1" -p udp --orig-port-dst "$2" 2>/dev/null |
		awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^src=/ && ++n == 2) print substr($i, 5) }'
}
ct_id() { # SPORT: the id of the host's UDP entry from that source port
	$KA_IN_HOST conntrack -L -p udp --orig-port-src "$1" -o id 2>/dev/null | grep -o 'id=[0-9]*'
}
deleted_total() {
	$KA_IN_HOST curl -s --max-time 2 http://127.0.0.1:10256/metrics |
		awk '$1 == "kubeannex_conntrack_entries_deleted_total" { print $2 }'
}

ka_env_up
[ "${KA_DUAL_STACK:-1}" = 1 ] || fail "the environment has no dual-stack Service CIDR"
cat >"$client_py" <<'EOF'
import select, socket, sys, time
vip, port, sport, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
family = socket.AF_INET6 if ":" in vip else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))
out = open(path, "a", buffering=1)
due = 0.0
while True:
    now = time.monotonic()
    if now >= due:
        try:
            s.sendto(b"ping", (vip, port))
        except OSError:
            pass
        due = now + 0.02
    if select.select([s], [], [], max(0.0, due - time.monotonic()))[0]:
        try:
            data = s.recv(256)
        except OSError:
            continue
        out.write("%d %s\n" % (int(time.time() * 1000), data.decode(errors="replace").split()[0]))
EOF

ka_kubectl create namespace ct >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: ct}
spec:
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{name: udp, port: 5353, targetPort: 8080, protocol: UDP}]
EOF
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: side, namespace: ct}
spec:
  ports: [{name: udp, port: 5354, targetPort: 9090, protocol: UDP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: side, namespace: ct}
subsets:
- addresses: [{ip: 10.244.0.11}, {ip: 10.244.0.12}, {ip: 10.244.0.13}]
  ports: [{name: udp, port: 9090, protocol: UDP}]
EOF
endpoints 1 2
vip=$(cip 0); vip6=$(cip 1)
side=$(ka_kubectl -n ct get service side -o jsonpath='{.spec.clusterIP}')
[[ $vip6 == *:* ]] || fail "dual-stack Service got no IPv6 ClusterIP ($vip6)"
start_kube_annex -v
ka_wait_for 'host_nft ip | contains "ct/echo:udp\" : goto lb-2"' 30 "ct/echo:udp going to lb-2" ||
	fail "ct/echo:udp was not programmed"
ka_wait_for 'host_nft ip6 | contains "ct/echo:udp\" : goto lb-2"' 30 "ct/echo:udp over IPv6" ||
	fail "ct/echo:udp was not programmed for IPv6"

ka_wait_for 'host_nft ip | contains "ct/side:udp\" : goto lb-3"' 30 "ct/side:udp going to lb-3" ||
	fail "ct/side:udp was not programmed"

# Another Service's flow to the same pods, which must keep its entry.
side_log=$KA_STATE/side.log
start_client "$side" 5354 40010 "$side_log"
ka_wait_for '[ "$(answers_after "$side_log" 0)" -ge 5 ]' 10 "answers from $side:5354" ||
	fail "no answers from ct/side ($side:5354)"
side_id=$(ct_id 40010)
[ -n "$side_id" ] || fail "no conntrack entry for the ct/side flow"
# A second flow of ct/echo, started later.
bystander=$KA_STATE/bystander.log

# --- IPv4: the pinned endpoint dies and leaves --------------------------------
log4=$KA_STATE/client4.log
start_client "$vip" 5353 40001 "$log4"
ka_wait_for '[ "$(answers_after "$log4" 0)" -ge 10 ]' 10 "answers to the IPv4 client" ||
	fail "no answers from $vip:5353 (udp)"
seen=$(pods_after "$log4" 0)
[ "$(wc -w <<<"$seen")" -eq 1 ] || fail "one flow reached several pods: $seen (no conntrack pin?)"
pinned=${seen% }
n=${pinned#pod}
other=$((3 - n))
ct_replies 4 5353 | contains -x "10.244.0.1$n" || fail "no conntrack entry $vip:5353 -> 10.244.0.1$n"
ok "a UDP client from port 40001 to $vip:5353 is pinned to $pinned ($(answers_after "$log4" 0) answers)"

t_dead=$(now_ms)
kill_udp "$n"
sleep 0.6
[ "$(answers_after "$log4" $((t_dead + 100)))" -eq 0 ] ||
	fail "$pinned still answers after its UDP server was killed"
ok "$pinned's UDP server killed: the flow is black-holed (no answer in 500 ms)"

t_removed=$(now_ms)
endpoints "$other"
kubectl_ms=$(($(now_ms) - t_removed))
ka_wait_for '[ -n "$(first_after "$log4" "$t_removed" "pod$other")" ]' 10 "answers from pod$other" ||
	fail "the client is still black-holed 10 s after $pinned left ct/echo (conntrack entry not deleted?)"
read -r t_back _ <<<"$(first_after "$log4" "$t_removed" "pod$other")"
gap4=$((t_back - t_removed))
grep -q "Deleted 1 stale UDP conntrack entry of Service ct/echo:udp ($vip:5353)" \
	"$KA_STATE/kube-annex.log" || fail "no log line for the deleted entry"
ct_replies 4 5353 | contains -x "10.244.0.1$other" || fail "no new conntrack entry to pod$other"
ct_replies 4 5353 | contains -x "10.244.0.1$n" && fail "an entry still leads to $pinned"
ok "$pinned left ct/echo: its entry was deleted, answers from pod$other ${gap4} ms after kubectl apply started ($((gap4 - kubectl_ms)) ms after it returned)"
start_client "$vip" 5353 40009 "$bystander"
ka_wait_for '[ "$(answers_after "$bystander" 0)" -ge 5 ]' 10 "bystander answers" ||
	fail "no answers for the bystander flow"

# --- IPv6: the same -----------------------------------------------------------
endpoints "$other" 3
ka_wait_for 'host_nft ip6 | contains "ct/echo:udp\" : goto lb-2"' 10 "pod3 added" ||
	fail "pod3 was not added to ct/echo"
log6=$KA_STATE/client6.log
start_client "$vip6" 5353 40002 "$log6"
ka_wait_for '[ "$(answers_after "$log6" 0)" -ge 10 ]' 10 "answers to the IPv6 client" ||
	fail "no answers from [$vip6]:5353 (udp)"
seen=$(pods_after "$log6" 0)
[ "$(wc -w <<<"$seen")" -eq 1 ] || fail "one IPv6 flow reached several pods: $seen"
pinned6=${seen% }
n6=${pinned6#pod}
live=$((other + 3 - n6))
kill_udp "$n6"
t_removed=$(now_ms)
endpoints "$live"
kubectl_ms=$(($(now_ms) - t_removed))
ka_wait_for '[ -n "$(first_after "$log6" "$t_removed" "pod$live")" ]' 10 "IPv6 answers from pod$live" ||
	fail "the IPv6 client is still black-holed 10 s after $pinned6 left ct/echo"
read -r t_back _ <<<"$(first_after "$log6" "$t_removed" "pod$live")"
gap6=$((t_back - t_removed))
grep -q "stale UDP conntrack entr.* of Service ct/echo:udp (\[$vip6\]:5353)" "$KA_STATE/kube-annex.log" ||
	fail "no log line for the deleted IPv6 entry"
ct_replies 6 5353 | contains -x "fd00:244::1$live" || fail "no new IPv6 conntrack entry to pod$live"
ok "IPv6: $pinned6 left ct/echo: answers from pod$live ${gap6} ms after kubectl apply started ($((gap6 - kubectl_ms)) ms after it returned)"
# The IPv4 clients were pinned to a pod that stayed (or followed it).
for f in "$log4" "$bystander"; do
	ka_wait_for '[ -n "$(first_after "$f" "$(($(now_ms) - 200))" "pod$live")" ]' 5 "$f via pod$live" ||
		fail "$(basename "$f"): no answers from pod$live"
done

# --- scale to zero, and back ---------------------------------------------------
t_zero=$(now_ms)
endpoints
ka_wait_for 'host_nft ip | contains "$vip . udp . 5353 comment \"ct/echo:udp\" : goto reject-chain"' 10 \
	"ct/echo without endpoints" || fail "ct/echo:udp did not become a no-endpoint service"
ka_wait_for '[ -z "$(ct_replies 4 5353)$(ct_replies 6 5353)" ]' 5 "no entries left" ||
	fail "entries to ct/echo:udp outlived its last endpoint: $(ct_replies 4 5353) $(ct_replies 6 5353)"
t_empty=$(now_ms)
sleep 0.5
for f in "$log4" "$log6" "$bystander"; do
	[ "$(answers_after "$f" $((t_empty + 100)))" -eq 0 ] ||
		fail "$(basename "$f"): still answered with no endpoints: $(pods_after "$f" "$t_empty")"
done
ok "scaled to zero: every entry of ct/echo:udp deleted $((t_empty - t_zero)) ms after the update; no answers since"

# Back with the one pod whose UDP server still runs (pod3 may be dead: the
# IPv6 flow may have been pinned to it).
t_up=$(now_ms)
endpoints "$live"
for f in "$log4" "$log6" "$bystander"; do
	ka_wait_for '[ -n "$(first_after "$f" "$t_up" "pod$live")" ]' 10 "$f via pod$live" ||
		fail "$(basename "$f"): no answers after pod$live came back"
done
gaps=""
for f in "$log4" "$log6" "$bystander"; do
	read -r t _ <<<"$(first_after "$f" "$t_up" "pod$live")"
	gaps+="$((t - t_up)) "
done
ok "pod$live back: all three flows answered again by pod$live after ${gaps% } ms"

[ "$(ct_id 40010)" = "$side_id" ] || fail "the ct/side flow's entry was replaced ($side_id -> $(ct_id 40010))"
[ "$(pods_after "$side_log" $(($(now_ms) - 300)))" != "" ] || fail "ct/side stopped answering"
ok "ct/side's flow to the same pods kept its conntrack entry ($side_id) throughout"

total=$(deleted_total)
[ -n "$total" ] && [ "$total" -ge 5 ] || fail "kubeannex_conntrack_entries_deleted_total is '$total', want >= 5"
grep -q "Failed to delete stale UDP conntrack" "$KA_STATE/kube-annex.log" && fail "a cleanup failed"
ok "kubeannex_conntrack_entries_deleted_total $total; no cleanup failed"
