#!/usr/bin/env bash
# Self-healing and restarts, against the real API server with real traffic:
# someone runs `nft flush ruleset`, deletes our table or one of its
# elements -> the rules are back within a second; unrelated ruleset changes
# are left alone; a restart with --keep-rules loses no new connection.
set -euo pipefail

export KA_PREFIX=${KA_PREFIX:-kaheal}
source "$(dirname "$0")/common.sh"
loop_pid=""

e2e_cleanup() {
	if [ -n "$loop_pid" ] && kill "$loop_pid" 2>/dev/null; then wait "$loop_pid" 2>/dev/null || true; fi
}
connect() { $KA_IN_HOST curl -s --max-time 2 "http://$1/" 2>/dev/null || true; }
restorations() { grep -c "changed from outside" "$KA_STATE/kube-annex.log" || true; }

# Time (ms) until CONDITION holds, polled every 10 ms, at most 5 s.
time_until() {
	local t0 deadline
	t0=$(now_ms); deadline=$((t0 + 5000))
	while [ "$(now_ms)" -lt $deadline ]; do
		if eval "$1"; then echo $(($(now_ms) - t0)); return 0; fi
		sleep 0.01
	done
	return 1
}

ka_env_up
ka_kubectl create namespace shop >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.11}, {ip: 10.244.0.12}]
  ports: [{name: http, port: 8080, protocol: TCP}]
EOF
cip=$(ka_kubectl -n shop get service web -o jsonpath='{.spec.clusterIP}')
start_kube_annex --keep-rules
ka_wait_for '[ -n "$(connect "$cip:80")" ]' 30 "ClusterIP reachable"
ok "ClusterIP $cip:80 reachable"

# --- outside changes are undone --------------------------------------------
$KA_IN_HOST nft flush ruleset
flush_ms=$(time_until 'host_nft | contains 10.244.0.12') || fail "table not restored after nft flush ruleset"
[ -n "$(connect "$cip:80")" ] || fail "ClusterIP unreachable after restoring"
ok "nft flush ruleset: table restored in ${flush_ms} ms, ClusterIP reachable"

$KA_IN_HOST nft delete table ip kube-annex
ms=$(time_until 'host_nft >/dev/null') || fail "table not restored after nft delete table"
ok "nft delete table ip kube-annex: restored in ${ms} ms"

$KA_IN_HOST nft delete element ip kube-annex service-ips "{ $cip . tcp . 80 }"
ms=$(time_until "host_nft | contains '$cip . tcp . 80'") || fail "deleted element not restored"
[ -n "$(connect "$cip:80")" ] || fail "ClusterIP unreachable after restoring an element"
ok "nft delete element service-ips: restored in ${ms} ms"

before=$(restorations)
$KA_IN_HOST nft add table ip someone-else
$KA_IN_HOST nft add chain ip someone-else c
sleep 0.5
[ "$(restorations)" = "$before" ] || fail "an unrelated table made kube-annex rebuild its own"
$KA_IN_HOST nft delete table ip someone-else
ok "changes to other tables are left alone (restorations: $before)"

# --- restart without disruption -------------------------------------------
# A new connection every 20 ms across kill -TERM + start.
(
	fails=0 total=0
	end=$(($(now_ms) + 6000))
	while [ "$(now_ms)" -lt $end ]; do
		total=$((total + 1))
		[ -n "$($KA_IN_HOST curl -s --max-time 1 "http://$cip/" 2>/dev/null)" ] ||
			{ fails=$((fails + 1)); echo "fail at $(now_ms)"; }
		sleep 0.02
	done
	echo "total=$total fails=$fails"
) </dev/null >"$KA_STATE/restart-loop.log" 2>&1 &
loop_pid=$!
sleep 1.5
# "table ip kube-annex { # handle N": a table created again gets a new one
handle_before=$($KA_IN_HOST nft -a list table ip kube-annex | sed -n 1p)
kill -TERM "$ka_pid"; wait "$ka_pid" || fail "kube-annex --keep-rules exited non-zero"
host_nft >/dev/null || fail "--keep-rules: table gone after SIGTERM"
start_kube_annex
wait "$loop_pid"; loop_pid=""
result=$(tail -1 "$KA_STATE/restart-loop.log")
grep -q "fails=0" <<<"$result" || fail "connections failed during the restart: $(cat "$KA_STATE/restart-loop.log")"
ka_wait_for 'grep -c "Programmed" "$KA_STATE/kube-annex.log" | contains 2' 30 "second instance ready"
ok "restart with --keep-rules: no new connection failed ($result)"
handle_after=$($KA_IN_HOST nft -a list table ip kube-annex | sed -n 1p)
[ "$handle_before" = "$handle_after" ] ||
	fail "the restart replaced the table instead of adopting it ($handle_before -> $handle_after)"
ok "the second instance adopted the table in place ($handle_after)"

# --- a plain stop removes everything ---------------------------------------
kill -TERM "$ka_pid"; wait "$ka_pid" || fail "kube-annex exited non-zero"; ka_pid=""
host_nft >/dev/null && fail "table left after SIGTERM without --keep-rules"
ok "SIGTERM without --keep-rules removes the tables"
echo "RESULT restore_flush_ms=$flush_ms restorations=$(restorations)"
