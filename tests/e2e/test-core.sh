#!/usr/bin/env bash
# Core end-to-end test: a real kube-apiserver + controller-manager, kube-annex
# in a "legacy host" namespace under the least-privilege identity, real
# servers in pod namespaces, real traffic. Asserts what a user would check:
# connections to ClusterIP:port reach the right pods, `nft list table`
# shows the Service, changes arrive within a second, rules survive an API
# outage, and --cleanup leaves nothing behind.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces, nftables)" >&2; exit 77; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export KA_PREFIX=${KA_PREFIX:-kacore}
# shellcheck source=../env/lib.sh
source "$top/tests/env/lib.sh"
# Read all input before matching: with pipefail, "producer | grep -q" fails
# whenever grep exits before the producer has written everything.
contains() { local in; in=$(cat); grep -q "$@" <<<"$in"; }

BIN=${KUBE_ANNEX_BIN:-$top/build/kube-annex}
# Never let lib.sh guess whether to exec: commands run as children, and
# kube-annex is started with the plain nsenter prefix so $! is its PID.
export KA_IN_NS_EXEC=0
ka_pid=""
root_rules_before=$(nft list ruleset 2>/dev/null | md5sum)

finish() {
	local rc=$?
	if [ -n "$ka_pid" ] && kill -0 "$ka_pid" 2>/dev/null; then
		kill -TERM "$ka_pid" 2>/dev/null || true
		wait "$ka_pid" 2>/dev/null || true
	fi
	if [ $rc -ne 0 ] && [ -f "${KA_STATE:-/nonexistent}/kube-annex.log" ]; then
		echo "--- kube-annex log (last 40 lines)"
		tail -40 "$KA_STATE/kube-annex.log"
	fi
	ka_env_down
	exit $rc
}
trap finish EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# ms since the epoch, for change-latency measurements
now_ms() { date +%s%3N; }

host_nft() { ka_in_host nft list table ip kube-annex 2>/dev/null; }

# Connect from the host namespace; prints the pod server's answer.
connect() { ka_in_host curl -s --max-time 2 "http://$1/" 2>/dev/null || true; }

# Poll "$@" (a shell condition) every 20 ms for up to $timeout seconds.
poll() {
	local timeout=$1; shift
	local deadline=$(($(now_ms) + timeout * 1000))
	while [ "$(now_ms)" -lt $deadline ]; do
		if eval "$@"; then return 0; fi
		sleep 0.02
	done
	return 1
}

start_kube_annex() {
	$KA_IN_HOST "$BIN" --kubeconfig "$1" "${@:2}" </dev/null >>"$KA_STATE/kube-annex.log" 2>&1 &
	ka_pid=$!
}

stop_kube_annex() {
	kill -TERM "$ka_pid"
	local rc=0
	wait "$ka_pid" || rc=$?
	ka_pid=""
	return $rc
}

ka_env_up

# --- bad configuration: exit 2 with the file named ------------------------
rc=0; out=$("$BIN" --kubeconfig /nonexistent/kubeconfig 2>&1) || rc=$?
[ $rc -eq 2 ] || fail "missing kubeconfig: exit $rc, want 2"
grep -q "/nonexistent/kubeconfig" <<<"$out" || fail "missing kubeconfig: message does not name the file: $out"
printf 'apiVersion: v1\nkind: Config\ncurrent-context: nope\n' >"$KA_STATE/bad.kubeconfig"
rc=0; out=$("$BIN" --kubeconfig "$KA_STATE/bad.kubeconfig" 2>&1) || rc=$?
[ $rc -eq 2 ] || fail "bad kubeconfig: exit $rc, want 2"
grep -q "bad.kubeconfig" <<<"$out" && grep -q "nope" <<<"$out" ||
	fail "bad kubeconfig: message does not name file and context: $out"
rc=0; "$BIN" --no-such-flag >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "unknown flag: exit $rc, want 2"
ok "bad kubeconfig / usage exit 2 naming the file and key"


# --- the seed scenario: selector-less Service + hand-made Endpoints ---------
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
- addresses: [{ip: 10.244.0.11}]
  ports: [{name: http, port: 8080, protocol: TCP}]
EOF
cip=$(ka_kubectl -n shop get service web -o jsonpath='{.spec.clusterIP}')
[ -n "$cip" ] || fail "no ClusterIP allocated"

t0=$(now_ms)
start_kube_annex "$KA_KUBECONFIG" -v
poll 30 '[ "$(connect "$cip:80")" = "pod1 8080" ]' ||
	fail "connection to $cip:80 from the host did not reach pod1"
ok "host reaches ClusterIP $cip:80 -> pod1 ($(($(now_ms) - t0)) ms after start)"
first_sync=$(sed -n 's/.*Programmed.* \([0-9]*\) ms after start.*/\1/p' "$KA_STATE/kube-annex.log" | head -1)
echo "  first sync: ${first_sync:-?} ms after start (log)"

table=$(host_nft)
grep -q 'comment "shop/web:http"' <<<"$table" || fail "table lacks comment shop/web:http:\n$table"
grep -q "$cip . tcp . 80" <<<"$table" || fail "table lacks service-ips element for $cip"
ok "nft list table ip kube-annex names shop/web:http"
echo "$table" | sed 's/^/  | /'

# the listing must parse back with the distribution's nft
ka_in_host nft list table ip kube-annex >"$KA_STATE/listing.nft"
# nft 1.0.6 evaluates check-mode input against the live cache, so parse
# the listing in a fresh namespace of its own.
unshare -n nft -c -f "$KA_STATE/listing.nft" || fail "nft cannot parse its own listing of our table"
ok "listing re-parses with nft -c"

# --- a second address: both used ------------------------------------------
t0=$(now_ms)
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.11}, {ip: 10.244.0.12}]
  ports: [{name: http, port: 8080, protocol: TCP}]
EOF
poll 1 'host_nft | contains 10.244.0.12' || fail "second endpoint not programmed within 1 s"
add_ms=$(($(now_ms) - t0))
seen=$(for _ in $(seq 30); do connect "$cip:80"; done | sort | uniq -c)
grep -q "pod1 8080" <<<"$seen" && grep -q "pod2 8080" <<<"$seen" ||
	fail "30 connections did not reach both pods:\n$seen"
ok "second endpoint in the kernel ${add_ms} ms after kubectl apply; both pods answer"

# --- remove one: only the other, within a second ---------------------------
t0=$(now_ms)
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.12}]
  ports: [{name: http, port: 8080, protocol: TCP}]
EOF
poll 1 '! host_nft | contains 10.244.0.11' || fail "removed endpoint still programmed after 1 s"
del_ms=$(($(now_ms) - t0))
seen=$(for _ in $(seq 10); do connect "$cip:80"; done | sort -u)
[ "$seen" = "pod2 8080" ] || fail "after removing pod1, answers were: $seen"
ok "removed endpoint gone from the kernel ${del_ms} ms after kubectl apply; only pod2 answers"

# --- API server outage: fail static, then changes flow again --------------
ka_apiserver_stop
sleep 2
[ "$(connect "$cip:80")" = "pod2 8080" ] || fail "rules stopped working while the API server is down"
kill -0 "$ka_pid" || fail "kube-annex died while the API server was down"
sleep 3
[ "$(connect "$cip:80")" = "pod2 8080" ] || fail "rules stopped working while the API server is down"
ok "API server down: existing rules keep working, kube-annex keeps running"
ka_apiserver_start
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  ports: [{port: 8081, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: api, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.11}]
  ports: [{port: 8080, protocol: TCP}]
EOF
cip2=$(ka_kubectl -n shop get service api -o jsonpath='{.spec.clusterIP}')
poll 40 '[ "$(connect "$cip2:8081")" = "pod1 8080" ]' ||
	fail "after the API server returned, a new Service never became reachable"
ok "API server back: new Service $cip2:8081 reachable"

# --- delete the Service: its rules are gone --------------------------------
ka_kubectl -n shop delete service web >/dev/null
poll 2 '! host_nft | contains "shop/web:http"' || fail "deleted Service still in the table"
ok "deleted Service removed from the table"

# --- SIGTERM: clean exit, table removed ------------------------------------
stop_kube_annex || fail "kube-annex exited non-zero on SIGTERM"
host_nft >/dev/null && fail "table ip kube-annex left behind after SIGTERM"
ok "SIGTERM: exit 0, no table left"

# --- a client-certificate identity works too -------------------------------
start_kube_annex "$KA_ADMIN_KUBECONFIG"
poll 30 '[ "$(connect "$cip2:8081")" = "pod1 8080" ]' || fail "client-certificate identity did not sync"
ok "client-certificate kubeconfig works"

# --- --keep-rules + crash-like exit, then --cleanup (twice) ----------------
kill -KILL "$ka_pid"; wait "$ka_pid" 2>/dev/null || true; ka_pid=""
host_nft >/dev/null || fail "table vanished after SIGKILL (should stay until cleanup)"
ka_in_host "$BIN" --cleanup || fail "--cleanup failed"
host_nft >/dev/null && fail "table still present after --cleanup"
ka_in_host "$BIN" --cleanup || fail "second --cleanup failed"
ka_in_host nft list tables | contains kube-annex && fail "a kube-annex table is left"
ok "--cleanup removes everything and is idempotent"

[ "$(nft list ruleset 2>/dev/null | md5sum)" = "$root_rules_before" ] ||
	fail "the root namespace's ruleset changed"
ok "root namespace ruleset untouched"
echo "RESULT first_sync_ms=${first_sync:-?} add_endpoint_ms=$add_ms remove_endpoint_ms=$del_ms"
