#!/usr/bin/env bash
# Fault-injection end-to-end test: kube-annex against a small fake API server
# (tests/fake-apiserver/fake_apiserver.py), for what a real kube-apiserver
# cannot be made to do on demand - 410 Gone, watches cut mid-event, events in
# tiny chunks, oversized events, malformed objects, slow or absent responses -
# and for discovery.k8s.io/v1, which the real 1.20 test server lacks.
#
# Everything runs in one private network namespace: the fake server listens
# on 127.0.0.1:6443 there, kube-annex programs that namespace's nftables.
# Assertions are what a user would check: `nft list table ip kube-annex`, the
# log, the exit status; and, where the request itself is the point, the fake
# server's request log.
#
# Runs of kube-annex (each against a fresh fake server):
#   main      v1 discovery and use (a), nothing programmed before both LISTs
#             (d), pagination over 1200 Services (c), malformed objects in
#             LIST and WATCH (i), ERROR 410 (e), HTTP 410 (f), watch cut
#             mid-event + bookmarks (g), events in 3-byte chunks, a multi-MB
#             event, a 17 MiB event and a 17 MiB object in a LIST page (h),
#             tokenFile rotation, API server gone mid-run (j), SIGTERM (k)
#   fallback  v1+v1beta1 404 -> core Endpoints (b); v1 404 -> v1beta1
#   down      API server not there at start (j)
#   extras    a proxy's 502 page on a watch; watches that end at once
#   token     tokenFile not there yet at start
#   v1 fields what the 1.20 server cannot store, with real traffic to
#             servers on this namespace's own addresses: topology hints with
#             --zone (used, and the fallbacks to all endpoints), without
#             --zone; load-balancer ingress with ipMode VIP vs Proxy; a
#             Service without a ClusterIP
#   scope     --namespaces a,b: namespaced URLs only; a 410 in namespace a
#             relists a alone and deletes only what a lost
#   cidrs     ServiceCIDR objects (networking.k8s.io/v1, which 1.20 lacks):
#             discovered range -> drop rule, an unallocated address in it
#             times out while a ClusterIP answers; added/deleted live;
#             --service-cidr overrides; a 403 on them blocks nothing
#
# Environment: KUBE_ANNEX_BIN (default build/kube-annex), KAFAULT_KEEP=1 keeps
# the state directory (logs, per-run request logs) for inspection.
#
# poll conditions are single-quoted on purpose: they are eval'd on each try.
# shellcheck disable=SC2016
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces, nftables)" >&2; exit 77; }
for c in ip nsenter nft curl python3; do
	command -v "$c" >/dev/null || { echo "SKIP: $c not installed (scripts/install-deps.sh test)" >&2; exit 77; }
done

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BIN=${KUBE_ANNEX_BIN:-$top/build/kube-annex}
FAKE=$top/tests/fake-apiserver/fake_apiserver.py
PYTHON=${KA_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
[ -x "$BIN" ] || { echo "FAIL: $BIN is not built (run make)" >&2; exit 1; }

NS=kafault-$$
PORT=6443
STATE=$(mktemp -d /tmp/kafault.XXXXXX)
CTL=$STATE/ctl.sock
TOKEN_FILE=$STATE/token
KUBECONFIG_FILE=$STATE/kubeconfig
FAKE_LOG=$STATE/fake.log
KA_LOG=$STATE/kube-annex.log
ka_pid=""
fake_pid=""
backend_pid=""
unalloc_pid=""
t_start=${EPOCHREALTIME/./}

finish() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ $rc -ne 0 ]; then
		echo "--- kube-annex log ($KA_LOG, last 40 lines)"
		tail -40 "$KA_LOG" 2>/dev/null | cut -c1-300
		if [ -S "$CTL" ]; then
			echo "--- fake API server request log (last 20)"
			ctl_get /requests 2>/dev/null | tail -20 | cut -c1-300
		fi
		echo "--- fake API server log (last 10 lines)"
		tail -10 "$FAKE_LOG" 2>/dev/null
	fi
	stop_pid "$ka_pid"
	stop_pid "$fake_pid"
	stop_pid "$backend_pid"
	stop_pid "$unalloc_pid"
	if [ -e "/run/netns/$NS" ]; then
		local left
		left=$(ip netns pids "$NS" 2>/dev/null | tr '\n' ' ')
		[ -z "$left" ] || echo "warning: processes left in $NS (not ours to kill): $left" >&2
		ip netns delete "$NS" || rc=1
	fi
	if [ -n "${KAFAULT_KEEP:-}" ]; then
		echo "state kept in $STATE (KAFAULT_KEEP)"
	else
		case "$STATE" in /tmp/kafault.*) rm -rf -- "$STATE" ;; esac
	fi
	exit $rc
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# TERM a process we started (then KILL after 5 s) and reap it.
stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# poll TIMEOUT_S 'shell condition': true as soon as the condition holds;
# false at the timeout or as soon as a running kube-annex has died.
poll() {
	local timeout=$1 cond=$2 deadline
	deadline=$(($(now_ms) + timeout * 1000))
	while [ "$(now_ms)" -lt $deadline ]; do
		if eval "$cond"; then return 0; fi
		if [ -n "$ka_pid" ] && ! kill -0 "$ka_pid" 2>/dev/null; then
			echo "kube-annex (pid $ka_pid) is no longer running" >&2
			return 1
		fi
		sleep 0.05
	done
	eval "$cond"
}

in_ns() { nsenter --net="/run/netns/$NS" "$@"; }
table() { in_ns nft list table ip kube-annex 2>/dev/null; }
has_table() { in_ns nft list table ip kube-annex >/dev/null 2>&1; }
# How many elements of map NAME carry a comment starting with PREFIX.
count_in_map() { in_ns nft list map ip kube-annex "$1" 2>/dev/null | grep -o -F "comment \"$2" | wc -l; }
# The table contains every fixed string given.
table_has() {
	local t s
	t=$(table) || return 1
	for s in "$@"; do grep -q -F -- "$s" <<<"$t" || return 1; done
}
table_lacks() {
	local t s
	t=$(table) || return 1
	for s in "$@"; do grep -q -F -- "$s" <<<"$t" && return 1; done
	return 0
}

# Control API of the fake server (unix socket, so it works while "down").
ctl() {
	local body=${2-}
	[ -n "$body" ] || body='{}'
	curl -sS --fail-with-body --max-time 60 --unix-socket "$CTL" -d "$body" "http://fake$1"
}
ctl_get() { curl -sS --fail-with-body --max-time 10 --unix-socket "$CTL" "http://fake$1"; }
# jfield DOTTED.PATH < json
jfield() { "$PYTHON" -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v=v[int(k)] if isinstance(v,list) else v[k]
print(v)' "$1"; }
requests_seen() { ctl_get /state | jfield requests; }
# API requests after request number $1, one per line: SEQ STATUS METHOD TARGET auth=TOKEN
reqs_since() { ctl_get "/requests?since=$1"; }
# A request after number $1 matches the (basic) regex $2. (No "curl | grep -q":
# with pipefail an early grep exit fails the pipeline.)
req_seen() { local r; r=$(reqs_since "$1") && grep -q -- "$2" <<<"$r"; }
# last_rv of the open watch of resource $1 (lowest id first)
watch_rv() { local w; w=$(ctl_get /watches) && sed -n "s/.* $1 .* last_rv=\([0-9]*\).*/\1/p" <<<"$w" | sed -n 1p; }
ns_tables() { in_ns nft list tables 2>/dev/null || true; }
# Lines logged by kube-annex after line number $1 matching the ERE $2.
log_count() { tail -n +"$(($1 + 1))" "$KA_LOG" | grep -c -E -- "$2" || true; }
log_lines() { wc -l <"$KA_LOG"; }

start_fake() {
	rm -f "$CTL"
	nsenter --net="/run/netns/$NS" "$PYTHON" "$FAKE" --control "$CTL" --port $PORT "$@" \
		</dev/null >>"$FAKE_LOG" 2>&1 &
	fake_pid=$!
	poll 10 'ctl_get /state >/dev/null 2>&1' || fail "fake API server did not start (see $FAKE_LOG)"
}
fake_runs=0
stop_fake() {
	fake_runs=$((fake_runs + 1))
	ctl_get /requests >"$STATE/requests-$fake_runs.log" 2>/dev/null || true
	stop_pid "$fake_pid"
	fake_pid=""
}

start_ka() { # DESCRIPTION [KUBE-ANNEX OPTIONS...]
	echo "=== kube-annex run: $1" >>"$KA_LOG"
	shift
	ka_log_start=$(log_lines)
	nsenter --net="/run/netns/$NS" "$BIN" --kubeconfig "$KUBECONFIG_FILE" -v "$@" \
		</dev/null >>"$KA_LOG" 2>&1 &
	ka_pid=$!
}
# SIGTERM; returns kube-annex's exit status.
stop_ka() {
	local rc=0
	kill -TERM "$ka_pid"
	wait "$ka_pid" || rc=$?
	ka_pid=""
	return $rc
}
alive() { [ -n "$ka_pid" ] && kill -0 "$ka_pid" 2>/dev/null; }

svc_json() { # NS NAME CLUSTERIP ENDPOINTS_JSON [EXTRA_JSON_MEMBERS]
	printf '{"namespace":"%s","name":"%s","clusterIP":"%s","ports":[{"name":"http","port":80,"targetPort":8080}],"endpoints":%s%s}' \
		"$1" "$2" "$3" "$4" "${5:+,$5}"
}

# ---- the namespace -----------------------------------------------------------
ip netns add "$NS"
in_ns ip link set lo up
root_rules_before=$(nft list ruleset 2>/dev/null | md5sum)

printf 'tok-1\n' >"$TOKEN_FILE"
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://127.0.0.1:$PORT
users:
- name: kube-annex
  user:
    tokenFile: $TOKEN_FILE
contexts:
- name: fake
  context:
    cluster: fake
    user: kube-annex
current-context: fake
EOF

# =========================== main run (discovery.k8s.io/v1) ==================
start_fake
ctl /config '{"tokens":["tok-1"]}' >/dev/null
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11","10.244.0.12"]')" >/dev/null
ctl /service '{"namespace":"shop","name":"api","clusterIP":"10.96.0.20","ports":[{"port":8081,"targetPort":9090}],"endpoints":["10.244.0.13"]}' >/dev/null
# internalTrafficPolicy is newer than the real 1.20 test server: checked here
ctl /service "$(svc_json shop local 10.96.0.40 '["10.244.0.14"]' '"mutate":{"services":{"spec.internalTrafficPolicy":"Local"}}')" >/dev/null
ctl /bulk '{"namespace":"bulk","count":1200,"clusterIPBase":"10.97.0.0","endpointBase":"10.245.0.0"}' >/dev/null
# malformed objects served in the initial LIST
ctl /service "$(svc_json faulty bad-ip 10.96.300.7 '["10.244.1.1"]' '"kinds":["services"]')" >/dev/null
ctl /service "$(svc_json faulty bad-port 10.96.1.2 '["10.244.1.2"]' '"mutate":{"services":{"spec.ports.0.port":70000}}')" >/dev/null
ctl /service "$(svc_json faulty noname 10.96.1.3 '[]' '"kinds":["services"],"mutate":{"services":{"metadata.name":{"$delete":true}}}')" >/dev/null
ctl /service "$(svc_json faulty half 10.96.1.4 '["10.244.1.4"]')" >/dev/null
ctl /service "$(svc_json faulty half 10.96.1.4 '["10.244.1.5"]' '"kinds":["endpointslices"],"sliceName":"half-bad","mutate":{"endpointslices":{"endpoints.0.addresses.0":"10.244.1.999"}}')" >/dev/null
# d: the first EndpointSlice LIST answers 3 s late
ctl /rule '{"match":"^GET /apis/discovery\\.k8s\\.io/v1/endpointslices\\?limit=","delay":3}' >/dev/null

start_ka "main (discovery.k8s.io/v1, 1200 Services, faults)"

# --- d: nothing programmed before both kinds have listed ----------------------
poll 15 'grep -q "Initial list of Services complete" "$KA_LOG"' ||
	fail "Services were never listed"
poll 5 'req_seen 0 "- GET /apis/discovery.k8s.io/v1/endpointslices?limit=500"' ||
	fail "EndpointSlice LIST is not pending while Services are listed"
has_table && fail "table ip kube-annex exists while the EndpointSlice LIST is still pending"
grep -q "Initial list of endpoints complete" "$KA_LOG" && fail "endpoints listed during the delay"
grep -q kube-annex <<<"$(ns_tables)" && fail "a kube-annex table exists before both kinds listed"
ok "d: Services listed, EndpointSlice LIST delayed: no kube-annex table yet"
poll 20 'table_has "comment \"shop/web:http\""' || fail "table not programmed after the delayed LIST"
ok "d: table programmed once the EndpointSlice LIST arrives"

# --- a: discovery.k8s.io/v1 discovered and used --------------------------------
reqs=$(reqs_since 0)
grep -q '^[0-9]* 200 GET /apis/discovery.k8s.io/v1 ' <<<"$reqs" || fail "no discovery of /apis/discovery.k8s.io/v1"
grep -q 'GET /apis/discovery.k8s.io/v1/endpointslices?limit=500 ' <<<"$reqs" || fail "no LIST of v1 EndpointSlices"
poll 5 'req_seen 0 "200 GET /apis/discovery.k8s.io/v1/endpointslices?watch=1&allowWatchBookmarks=true&resourceVersion=[0-9]*&timeoutSeconds=[0-9]*"' ||
	fail "no WATCH of v1 EndpointSlices with bookmarks"
grep -q 'discovery.k8s.io/v1beta1\|/api/v1/endpoints' <<<"$reqs" && fail "v1beta1 or core Endpoints used although v1 is served"
grep -q 'endpoints from discovery.k8s.io/v1 EndpointSlices' "$KA_LOG" || fail "log does not say which endpoints API is used"
table_has 'comment "shop/web:http"' '10.96.0.10 . tcp . 80' '10.244.0.11 . 8080' '10.244.0.12 . 8080' ||
	fail "shop/web and its two v1 backends not in the table:\n$(table | head -40)"
table_has 'comment "shop/api:8081"' '10.96.0.20 . tcp . 8081' '10.244.0.13 . 9090' ||
	fail "shop/api (unnamed port) not in the table"
ok "a: v1 EndpointSlices discovered and used; shop/web:http -> 10.244.0.11/12:8080, shop/api:8081 -> 10.244.0.13:9090"
table | grep -A6 "map no-endpoint-services" | grep -q '10.96.0.40 . tcp . 80 comment "shop/local:http" : drop' ||
	fail "iTP Local Service shop/local not dropped via no-endpoint-services:\n$(table | grep -A6 no-endpoint)"
grep -q "Service shop/local: internalTrafficPolicy Local" "$KA_LOG" || fail "iTP Local not explained in the log"
ok "internalTrafficPolicy Local: shop/local dropped (no local endpoints off-cluster), explained in the log"

# --- token from tokenFile on every request -------------------------------------
reqs=$(reqs_since 0)
bad=$(grep -v ' auth=tok-1$' <<<"$reqs" || true)
[ -z "$bad" ] || fail "requests without the bearer token from tokenFile:\n$bad"
grep -q ' 401 ' <<<"$reqs" && fail "401 answers with the right token"
ok "bearer token from tokenFile sent on all $(wc -l <<<"$reqs") requests"

# --- c: pagination -------------------------------------------------------------
n_cont=$(grep -c 'GET /api/v1/services?limit=500&continue=' <<<"$reqs" || true)
[ "$n_cont" -eq 2 ] || fail "want 2 continue requests for 1205 Services at limit=500, saw $n_cont"
grep -q 'GET /apis/discovery.k8s.io/v1/endpointslices?limit=500&continue=' <<<"$reqs" ||
	fail "no continue request for EndpointSlices"
n=$(count_in_map service-ips bulk/)
[ "$n" -eq 1200 ] || fail "service-ips holds $n of the 1200 bulk Services"
table_has '10.97.4.176 . tcp . 80' '10.245.4.176 . 8080' || fail "last bulk Service (10.97.4.176) or its backend missing"
ok "c: 1200 Services over 3 pages (2 continue requests); all 1200 in service-ips"

# --- i (list): malformed objects in the initial LIST ---------------------------
grep -q 'Skipping Service faulty/bad-ip: .*10.96.300.7' "$KA_LOG" || fail "no log line for Service faulty/bad-ip"
grep -q 'Skipping Service faulty/bad-port: .*70000' "$KA_LOG" || fail "no log line for Service faulty/bad-port (port 70000)"
grep -q 'Skipping Service faulty/?: .*name' "$KA_LOG" || fail "no log line for the Service without a name"
grep -q 'Skipping EndpointSlice faulty/half-bad: .*10.244.1.999' "$KA_LOG" || fail "no log line for EndpointSlice faulty/half-bad"
table_has 'comment "faulty/half:http"' '10.244.1.4 . 8080' || fail "faulty/half (good slice) not programmed"
table_lacks '10.96.1.2 ' 'faulty/bad-port' '10.244.1.999' || fail "a malformed object reached the table"
alive || fail "kube-annex died"
ok "i: malformed objects in the LIST are logged by KIND ns/name and skipped; the rest is programmed"

# --- e: watch ERROR 410 -> relist reconciles a missed delete --------------------
ctl /delete-service '{"namespace":"shop","name":"api","ports":[{"port":8081}],"delivery":{"mode":"silent"}}' >/dev/null
table_has 'comment "shop/api:8081"' || fail "silent delete reached kube-annex?"
m=$(requests_seen); l=$(log_lines)
ctl /watch-error '{"code":410}' >/dev/null
poll 10 'table_lacks "comment \"shop/api:8081\"" "10.96.0.20 . tcp . 8081"' ||
	fail "Service deleted while 'disconnected' still programmed after ERROR 410"
reqs=$(reqs_since "$m")
grep -q '200 GET /api/v1/services?limit=500 ' <<<"$reqs" || fail "no Service relist after ERROR 410"
grep -q '200 GET /apis/discovery.k8s.io/v1/endpointslices?limit=500 ' <<<"$reqs" || fail "no EndpointSlice relist after ERROR 410"
[ "$(log_count "$l" 'watch: error event: too old resource version')" -ge 2 ] || fail "ERROR events not logged"
[ "$(count_in_map service-ips bulk/)" -eq 1200 ] || fail "relist lost bulk Services"
table_has 'comment "shop/web:http"' || fail "relist lost shop/web"
ok "e: ERROR 410 on both watches -> relist; Service deleted without an event is gone, the rest stays"

# --- f: HTTP 410 on watch start -> relist -----------------------------------------
ctl /service "$(svc_json shop late 10.96.0.30 '["10.244.0.21"]' '"kinds":["endpointslices","endpoints"]')" >/dev/null
ctl /service "$(svc_json shop late 10.96.0.30 '["10.244.0.21"]' '"kinds":["services"],"delivery":{"mode":"silent"}')" >/dev/null
m=$(requests_seen)
ctl /rule '{"match":"^GET /api/v1/services\\?watch=1","status":410}' >/dev/null
ctl /end-watches '{"resource":"services"}' >/dev/null
poll 10 'table_has "comment \"shop/late:http\"" "10.244.0.21 . 8080"' ||
	fail "Service added without an event not programmed after HTTP 410 + relist"
reqs=$(reqs_since "$m")
grep -q '^[0-9]* 410 GET /api/v1/services?watch=1' <<<"$reqs" || fail "the watch was not answered 410"
after410=$(sed -n '/ 410 GET \/api\/v1\/services?watch=1/,$p' <<<"$reqs")
grep -q '200 GET /api/v1/services?limit=500 ' <<<"$after410" || fail "no relist after HTTP 410:\n$reqs"
ok "f: HTTP 410 on watch start -> Service relist; Service added without an event programmed"

# --- g: watch cut mid-event -> reconnect from the last resourceVersion seen -----
# A Service-only change moves the global resourceVersion on; a BOOKMARK on the
# EndpointSlice watch carries it, so the last RV that watch saw is the bookmark's.
ctl /service "$(svc_json shop bm 10.96.0.31 '[]' '"kinds":["services"]')" >/dev/null
last_event_rv=$(watch_rv endpointslices)
bm_rv=$(ctl /bookmark '{"resource":"endpointslices"}' | jfield rv)
[ "$bm_rv" -gt "${last_event_rv:-0}" ] || fail "bookmark rv $bm_rv not newer than last event rv $last_event_rv"
poll 5 '[ "$(watch_rv endpointslices)" = "$bm_rv" ]' ||
	fail "bookmark not delivered"
m=$(requests_seen); l=$(log_lines)
cut_rv=$(ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11","10.244.0.14"]' '"kinds":["endpointslices","endpoints"],"delivery":{"mode":"cut"}')" |
	jfield endpointslices.rv)
poll 10 'req_seen "$m" "GET /apis/discovery.k8s.io/v1/endpointslices?watch=1"' ||
	fail "no reconnect after the watch was cut mid-event"
reqs=$(reqs_since "$m")
rewatch=$(grep 'GET /apis/discovery.k8s.io/v1/endpointslices?watch=1' <<<"$reqs" | sed -n 1p)
grep -q "&resourceVersion=$bm_rv&" <<<"$rewatch" ||
	fail "reconnect did not resume from the bookmark's resourceVersion $bm_rv: $rewatch"
grep -q 'endpointslices?limit=' <<<"$reqs" && fail "a cut watch caused a relist (resume expected)"
poll 10 'table_has "10.244.0.14 . 8080" && table_lacks "10.244.0.12 . 8080"' ||
	fail "the event cut mid-stream (rv $cut_rv) was not applied after the reconnect"
[ "$(log_count "$l" 'watch of EndpointSlice ended')" -ge 1 ] || fail "the cut watch was not logged"
ok "g: cut mid-event -> reconnect with resourceVersion=$bm_rv (last BOOKMARK seen), no relist, replayed event applied"

# --- h: tiny chunks, multi-MB event, oversized event ------------------------------
l=$(log_lines)
ctl /service "$(svc_json shop trickle 10.96.0.40 '["10.244.0.15"]' '"delivery":{"mode":"trickle","chunk":3,"delayMs":1}')" >/dev/null
poll 15 'table_has "comment \"shop/trickle:http\"" "10.244.0.15 . 8080"' ||
	fail "an event sent in 3-byte chunks was not applied"
[ "$(log_count "$l" 'undecodable|ended')" -eq 0 ] || fail "chunked event caused watch trouble"
ok "h: events delivered in 3-byte chunks applied"

size=$(ctl /service "$(svc_json shop big 10.96.0.50 '{"count":8000,"start":"10.200.0.1"}' '"pad":3000000')" |
	jfield endpointslices.bytes)
poll 30 '[ "$(table | grep -c -F "10.96.0.50 . tcp . 80 . ")" -eq 8000 ]' ||
	fail "Service with an 8000-endpoint slice ($size bytes) not fully programmed"
table_has '10.200.0.1 . 8080' '10.200.31.64 . 8080' || fail "first or last backend of shop/big missing"
ok "h: a $((size / 1024 / 1024)).$((size * 10 / 1024 / 1024 % 10)) MiB EndpointSlice event (8000 endpoints) applied: 8000 backends"
ctl /delete-service '{"namespace":"shop","name":"big"}' >/dev/null
poll 15 'table_lacks "comment \"shop/big:http\"" "10.200.0.1 . 8080"' || fail "shop/big not removed"

m=$(requests_seen); l=$(log_lines)
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11","10.244.0.14"]' '"kinds":["endpointslices"],"pad":17825792,"delivery":{"mode":"transient"}')" >/dev/null
poll 15 '[ "$(log_count "$l" "larger than 16777216")" -ge 1 ]' || fail "no error logged for a 17 MiB event"
poll 10 'req_seen "$m" "200 GET /apis/discovery.k8s.io/v1/endpointslices?limit=500 "' ||
	fail "no EndpointSlice relist after the oversized event"
alive || fail "kube-annex died on a 17 MiB event"
table_has 'comment "shop/web:http"' '10.244.0.14 . 8080' 'comment "shop/trickle:http"' || fail "Services lost after the oversized event"
[ "$(count_in_map service-ips bulk/)" -eq 1200 ] || fail "bulk Services lost after the oversized event"
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11","10.244.0.14","10.244.0.16"]' '"kinds":["endpointslices","endpoints"]')" >/dev/null
poll 10 'table_has "10.244.0.16 . 8080"' || fail "events no longer applied after the oversized event"
ok "h: a 17 MiB event is refused with an error, relist, no crash, all Services kept, events flow again"

# An object that makes every LIST page too large: kube-annex keeps its rules and
# keeps retrying; once the object is gone it catches up.
m=$(requests_seen); l=$(log_lines)
ctl /service "$(svc_json shop poison 10.96.0.60 '["10.244.0.17"]' '"kinds":["endpointslices"],"pad":17825792')" >/dev/null
poll 15 '[ "$(log_count "$l" "listing EndpointSlice failed: response larger than")" -ge 2 ]' ||
	fail "oversized object in the LIST not reported (twice, i.e. retried)"
alive || fail "kube-annex died on an oversized LIST page"
table_has 'comment "shop/web:http"' '10.244.0.16 . 8080' || fail "rules changed while the LIST fails"
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11","10.244.0.18"]' '"kinds":["endpointslices","endpoints"]')" >/dev/null
ctl /delete-service '{"namespace":"shop","name":"poison","kinds":["endpointslices"]}' >/dev/null
poll 20 'table_has "10.244.0.18 . 8080" && table_lacks "10.244.0.14 . 8080"' ||
	fail "did not catch up after the oversized object was deleted"
ok "h: oversized object in a LIST page: rules kept, LIST retried, caught up once it was deleted"

# --- i (watch): malformed objects arriving as events --------------------------
l=$(log_lines)
ctl /service "$(svc_json faulty w-bad-ip 10.96.999.1 '["10.244.2.1"]' '"kinds":["services"]')" >/dev/null
ctl /service "$(svc_json faulty w-bad-port 10.96.2.2 '["10.244.2.2"]' '"mutate":{"services":{"spec.ports.0.port":70000}}')" >/dev/null
ctl /service "$(svc_json faulty w-noname 10.96.2.3 '[]' '"kinds":["services"],"mutate":{"services":{"metadata.name":{"$delete":true}}}')" >/dev/null
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.2.4"]' '"kinds":["endpointslices"],"sliceName":"web-bad","mutate":{"endpointslices":{"endpoints.0.addresses.0":"10.244.0.999"}}')" >/dev/null
ctl /service "$(svc_json faulty w-good 10.96.2.5 '["10.244.2.5"]')" >/dev/null
poll 10 'table_has "comment \"faulty/w-good:http\"" "10.244.2.5 . 8080"' || fail "good Service after malformed events not programmed"
grep -q 'Skipping Service faulty/w-bad-ip: .*10.96.999.1' "$KA_LOG" || fail "no log line for Service faulty/w-bad-ip"
grep -q 'Skipping Service faulty/w-bad-port: .*70000' "$KA_LOG" || fail "no log line for Service faulty/w-bad-port"
[ "$(log_count "$l" 'Skipping Service faulty/\?: ')" -ge 1 ] || fail "no log line for the nameless Service event"
grep -q 'Skipping EndpointSlice shop/web-bad: .*10.244.0.999' "$KA_LOG" || fail "no log line for EndpointSlice shop/web-bad"
table_lacks '10.96.2.2 ' '10.244.0.999' '10.244.2.4 ' || fail "a malformed object reached the table"
table_has 'comment "shop/web:http"' '10.244.0.18 . 8080' 'comment "faulty/half:http"' || fail "Services lost after malformed events"
[ "$(count_in_map service-ips bulk/)" -eq 1200 ] || fail "bulk Services lost after malformed events"
alive || fail "kube-annex died"
ok "i: malformed objects in the watch are logged by KIND ns/name and skipped; every other Service stays"

# --- token rotation: tokenFile re-read on the next request -----------------------
printf 'tok-2\n' >"$TOKEN_FILE.new" && mv "$TOKEN_FILE.new" "$TOKEN_FILE"
ctl /config '{"tokens":["tok-2"]}' >/dev/null
m=$(requests_seen)
ctl /end-watches '{}' >/dev/null
ctl /service "$(svc_json shop rotated 10.96.0.70 '["10.244.0.19"]')" >/dev/null
poll 10 'table_has "comment \"shop/rotated:http\"" "10.244.0.19 . 8080"' || fail "no events after the token rotated"
reqs=$(reqs_since "$m")
grep -q '200 GET /api/v1/services?watch=1.* auth=tok-2$' <<<"$reqs" || fail "Service watch did not use the rotated token:\n$reqs"
grep -q '200 GET /apis/discovery.k8s.io/v1/endpointslices?watch=1.* auth=tok-2$' <<<"$reqs" ||
	fail "EndpointSlice watch did not use the rotated token:\n$reqs"
grep -q 'auth=tok-1' <<<"$reqs" && fail "old token used after the file changed:\n$reqs"
ok "tokenFile re-read: after rotation the reconnecting watches carry the new token"

# --- j (mid-run): API server goes away -> fail static, retry, catch up -----------
before=$(table | md5sum)
l=$(log_lines)
ctl /down >/dev/null
ctl /service "$(svc_json shop after-outage 10.96.0.80 '["10.244.0.20"]')" >/dev/null
poll 15 '[ "$(log_count "$l" "watch of .* ended|listing .* failed")" -ge 3 ]' ||
	fail "kube-annex does not log retries while the API server is down"
alive || fail "kube-annex exited while the API server is down"
[ "$(table | md5sum)" = "$before" ] || fail "table changed while the API server is down (fail static expected)"
ok "j: API server down mid-run: kube-annex keeps running, retries ($(log_count "$l" 'watch of .* ended|listing .* failed') log lines), table untouched"
ctl /up >/dev/null
poll 40 'table_has "comment \"shop/after-outage:http\"" "10.244.0.20 . 8080"' ||
	fail "change made during the outage not programmed after the API server returned"
ok "j: API server back: change made during the outage programmed"

# --- k: SIGTERM -> exit 0, no table ---------------------------------------------
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "kube-annex exited $rc on SIGTERM"
grep -q kube-annex <<<"$(ns_tables)" && fail "kube-annex table left after SIGTERM: $(ns_tables)"
ok "k: SIGTERM -> exit 0, tables ip/ip6 kube-annex removed"
stop_fake

# =========================== b: fallback to core/v1 Endpoints ========================
start_fake --discovery-v1 404 --discovery-v1beta1 404
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11"]')" >/dev/null
start_ka "fallback: v1 and v1beta1 discovery 404"
poll 15 'table_has "comment \"shop/web:http\"" "10.244.0.11 . 8080"' || fail "fallback: Service not programmed from core Endpoints"
reqs=$(reqs_since 0)
grep -q '404 GET /apis/discovery.k8s.io/v1 ' <<<"$reqs" || fail "fallback: v1 discovery not tried"
grep -q '404 GET /apis/discovery.k8s.io/v1beta1 ' <<<"$reqs" || fail "fallback: v1beta1 discovery not tried"
grep -q '200 GET /api/v1/endpoints?limit=500 ' <<<"$reqs" || fail "fallback: no LIST of core Endpoints"
grep -q 'endpointslices' <<<"$reqs" && fail "fallback: EndpointSlices requested although not served"
poll 5 'req_seen 0 "200 GET /api/v1/endpoints?watch=1&allowWatchBookmarks=true&resourceVersion="' ||
	fail "fallback: no WATCH of core Endpoints"
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11","10.244.0.12"]' '"notReady":["10.244.0.13"]')" >/dev/null
poll 10 'table_has "10.244.0.12 . 8080"' || fail "fallback: Endpoints watch event not applied"
table_lacks '10.244.0.13 . 8080' || fail "fallback: notReadyAddresses used as backends"
grep -q 'endpoints from core/v1 Endpoints' "$KA_LOG" || fail "fallback: log does not name core/v1 Endpoints"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "fallback: exit $rc on SIGTERM"
ok "b: v1 and v1beta1 discovery 404 -> core /api/v1/endpoints listed and watched; notReady addresses not used"
stop_fake

# v1beta1 only (as on 1.20 but in the fake's v1beta1 shape: topology map)
start_fake --discovery-v1 404
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11","10.244.0.12"]')" >/dev/null
start_ka "fallback: v1 discovery 404"
poll 15 'table_has "comment \"shop/web:http\"" "10.244.0.11 . 8080" "10.244.0.12 . 8080"' ||
	fail "v1beta1: Service not programmed"
reqs=$(reqs_since 0)
grep -q '200 GET /apis/discovery.k8s.io/v1beta1/endpointslices?limit=500 ' <<<"$reqs" || fail "v1beta1: no LIST of v1beta1 EndpointSlices"
grep -q '/api/v1/endpoints' <<<"$reqs" && fail "v1beta1: core Endpoints used although v1beta1 is served"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "v1beta1: exit $rc on SIGTERM"
ok "b: v1 discovery 404 -> discovery.k8s.io/v1beta1 EndpointSlices used"
stop_fake

# =========================== j: API server down at start ============================
start_fake --down
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11"]')" >/dev/null
start_ka "API server down at start"
poll 15 '[ "$(log_count "$ka_log_start" "API discovery at http://127.0.0.1:$PORT failed")" -ge 2 ]' ||
	fail "down at start: no repeated discovery failures logged"
alive || fail "down at start: kube-annex exited"
has_table && fail "down at start: a table was programmed without the API"
ok "j: API server down at start: kube-annex keeps running and retries ($(log_count "$ka_log_start" 'API discovery at .* failed') failures logged)"
ctl /up >/dev/null
poll 30 'table_has "comment \"shop/web:http\"" "10.244.0.11 . 8080"' ||
	fail "down at start: not programmed after the API server appeared"
ok "j: programmed once the API server appeared"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "down at start: exit $rc on SIGTERM"
stop_fake

# =========================== watch robustness extras ================================
# Not faults a real API server produces on its own, but what proxies and load
# balancers in front of one do.
start_fake
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11"]')" >/dev/null
start_ka "watch robustness"
poll 15 'table_has "comment \"shop/web:http\"" "10.244.0.11 . 8080"' || fail "extras: not programmed"
poll 5 'req_seen 0 "200 GET /api/v1/services?watch=1" && req_seen 0 "200 GET /apis/discovery.k8s.io/v1/endpointslices?watch=1"' ||
	fail "extras: watches not started"

# --- a proxy's error page on a watch: reported as such, resume (no relist) ------
m=$(requests_seen); l=$(log_lines)
page=$("$PYTHON" -c 'print("<html><head><title>502 Bad Gateway</title></head><body>" + "<p>upstream connect error</p>" * 400 + "</body></html>")')
ctl /rule "{\"match\":\"^GET /api/v1/services\\\\?watch=1\",\"status\":502,\"body\":\"$page\"}" >/dev/null
ctl /end-watches '{"resource":"services"}' >/dev/null
poll 10 '[ "$(log_count "$l" "watch of Service ended")" -ge 1 ]' || fail "502 on the Service watch not logged"
why=$(tail -n +"$((l + 1))" "$KA_LOG" | grep -m1 'watch of Service ended' || true)
grep -q '502' <<<"$why" || fail "a ${#page}-byte 502 page on a watch is reported as: $why"
poll 10 'req_seen "$m" "200 GET /api/v1/services?watch=1"' || fail "Service watch not resumed after a 502"
reqs=$(reqs_since "$m")
rv502=$(sed -n 's/.* 502 GET .*resourceVersion=\([0-9]*\).*/\1/p' <<<"$reqs")
grep -q "200 GET /api/v1/services?watch=1.*resourceVersion=$rv502&" <<<"$reqs" ||
	fail "Service watch after a 502 did not resume from resourceVersion $rv502:\n$reqs"
grep -q 'services?limit=' <<<"$reqs" && fail "a 502 on a watch caused a full relist:\n$reqs"
ok "502 error page on a watch: logged as HTTP 502, watch resumed from resourceVersion $rv502 without a relist"

# --- watches that end at once must not become a request storm ------------------
# (a proxy that closes streams, a server shutting down): client-go backs off
# after a "very short watch" with no events; so must we.
m=$(requests_seen)
ctl /rule '{"match":"^GET /apis/discovery\\.k8s\\.io/v1/endpointslices\\?watch=1","emptyWatch":true,"count":0}' >/dev/null
ctl /end-watches '{"resource":"endpointslices"}' >/dev/null
sleep 3
n=$(grep -c 'endpointslices?watch=1' <<<"$(reqs_since "$m")" || true)
ctl /clear-rules >/dev/null
alive || fail "kube-annex died"
[ "$n" -le 8 ] || fail "watches that end at once: $n watch requests in 3 s (no backoff: request storm)"
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11","10.244.0.22"]' '"kinds":["endpointslices","endpoints"]')" >/dev/null
poll 20 'table_has "10.244.0.22 . 8080"' || fail "events do not flow after the empty watches stopped"
ok "watch streams that end at once: $n requests in 3 s (backoff), events flow afterwards"

rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "extras: exit $rc on SIGTERM"
stop_fake

# =========================== tokenFile not there yet at start =======================
# (a token provisioned by another service a moment after kube-annex starts)
start_fake
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11"]')" >/dev/null
rm -f "$TOKEN_FILE"
start_ka "tokenFile missing at start"
poll 10 '[ "$(log_count "$ka_log_start" "No such file|cannot start|failed")" -ge 1 ]' ||
	fail "missing tokenFile: nothing logged"
printf 'tok-3\n' >"$TOKEN_FILE.new" && mv "$TOKEN_FILE.new" "$TOKEN_FILE"
poll 20 'table_has "comment \"shop/web:http\"" "10.244.0.11 . 8080"' ||
	fail "tokenFile created after start: never programmed (no retry after the first failure?)"
req_seen 0 ' auth=tok-3$' || fail "token from the late tokenFile not used"
ok "tokenFile missing at start: logged, retried, programmed once the file appeared"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "missing tokenFile: exit $rc on SIGTERM"
stop_fake

# =========================== v1 fields the 1.20 server cannot store ==================
# Topology hints (hints.forZones, 1.21+; trafficDistribution PreferClose,
# 1.30+, is how a newer cluster asks for them), status.loadBalancer.ingress
# [].ipMode (1.29+), and a non-headless Service without a ClusterIP (a real
# API server allocates one). The endpoints are addresses of this namespace,
# each served by a server that answers with its own address, so a
# connection shows which endpoint the DNAT chose.
backends="10.244.0.11 10.244.0.12 10.244.0.13"
for ip in $backends; do in_ns ip addr add "$ip/32" dev lo; done
# Routes for the VIPs, so that locally originated packets reach the nat
# output hook (without a route connect() fails before it); what is not
# DNATed loops back on lo and is dropped.
in_ns ip route add 10.96.0.0/16 dev lo
in_ns ip route add 192.0.2.0/24 dev lo
# shellcheck disable=SC2086 # one argument per address
nsenter --net="/run/netns/$NS" "$PYTHON" -c '
import socket, sys, threading
def serve(addr):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 8080)); s.listen(64)
    while True:
        c, _ = s.accept()
        c.recv(4096)
        body = addr + "\n"
        c.sendall(("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
        c.close()
for a in sys.argv[1:]:
    threading.Thread(target=serve, args=(a,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
' $backends </dev/null >"$STATE/backends.log" 2>&1 &
backend_pid=$!
poll 5 'grep -q ready "$STATE/backends.log"' || fail "backend servers did not start: $(cat "$STATE/backends.log")"

# The endpoint a connection to http://$1/ reaches ("" when none; what is
# not DNATed gets no answer, so a negative check waits ${2:-1} s).
reach() { in_ns curl -s --max-time "${2:-1}" "http://$1/" 2>/dev/null || true; }
# N connections to http://$1/, counted per endpoint: "12 10.244.0.11, ..."
spread() {
	local i
	for ((i = 0; i < $2; i++)); do reach "$1"; done | sort | uniq -c | sed 's/^ *//' | paste -sd, - | sed 's/,/, /g'
}
# The endpoints a spread reached, sorted, space separated.
reached() { grep -o '10\.244\.[0-9.]*' <<<"$1" | sort | paste -sd' ' -; }
# Backend addresses the table holds for VIP $1 port 80, sorted, space separated.
backends_of() { table | grep -o "$1 \. tcp \. 80 \. [0-9]* : [0-9.]* \. 8080" | sed 's/.* : \([0-9.]*\) .*/\1/' | sort | paste -sd' ' -; }
# shop/zoned (trafficDistribution PreferClose) with hints $1 ({IP: [zones]}),
# ready endpoints $2 (default: all three), not-ready ones $3 (default none).
zoned() {
	ctl /service "$(svc_json shop zoned 10.96.0.90 "${2:-[\"${backends// /\",\"}\"]}" \
		"\"hints\":$1,\"notReady\":${3:-[]},\"mutate\":{\"services\":{\"spec.trafficDistribution\":\"PreferClose\"}}")" >/dev/null
}

start_fake
zoned '{"10.244.0.11":["zone-a"],"10.244.0.12":["zone-b"],"10.244.0.13":["zone-b"]}'
ctl /service "$(svc_json shop lb 10.96.0.91 '["10.244.0.12"]' '"mutate":{"services":{"spec.type":"LoadBalancer","status.loadBalancer.ingress":[{"ip":"192.0.2.60","ipMode":"VIP"},{"ip":"192.0.2.61","ipMode":"Proxy"},{"hostname":"lb.example.com"}]}}')" >/dev/null
ctl /service "$(svc_json shop noip 10.96.0.92 '["10.244.0.13"]' '"mutate":{"services":{"spec.clusterIP":{"$delete":true},"spec.clusterIPs":{"$delete":true}}}')" >/dev/null
start_ka "v1 fields, --zone=zone-a" --zone=zone-a
poll 15 'table_has "comment \"shop/zoned:http\"" "comment \"shop/lb:http\""' || fail "v1 fields: Services not programmed"

# --- topology hints with --zone ---------------------------------------------------
[ "$(backends_of 10.96.0.90)" = 10.244.0.11 ] ||
	fail "--zone=zone-a, every endpoint hinted: want only the zone-a endpoint 10.244.0.11, table has: $(backends_of 10.96.0.90)"
seen=$(spread 10.96.0.90 12)
[ "$seen" = "12 10.244.0.11" ] || fail "--zone=zone-a: connections should all reach 10.244.0.11, saw: $seen"
ok "hints, --zone=zone-a: only the zone-a endpoint is used ($seen)"

zoned '{"10.244.0.11":["zone-a"],"10.244.0.12":["zone-b"]}'
poll 10 '[ "$(backends_of 10.96.0.90)" = "$backends" ]' ||
	fail "one endpoint without hints: want all endpoints, table has: $(backends_of 10.96.0.90)"
seen=$(spread 10.96.0.90 30)
[ "$(reached "$seen")" = "$backends" ] ||
	fail "one endpoint without hints: connections should reach all three, saw: $seen"
ok "hints, one endpoint without hints: all endpoints used ($seen)"

zoned '{"10.244.0.11":["zone-b"],"10.244.0.12":["zone-c"],"10.244.0.13":["zone-b"]}'
poll 10 '[ "$(backends_of 10.96.0.90)" = "$backends" ]' ||
	fail "no endpoint hinted for zone-a: want all endpoints, table has: $(backends_of 10.96.0.90)"
ok "hints, none for zone-a: all endpoints used ($(backends_of 10.96.0.90))"

# Only ready endpoints count (kube-proxy): an unhinted not-ready one does
# not turn hints off.
zoned '{"10.244.0.11":["zone-a"],"10.244.0.12":["zone-b"]}' '["10.244.0.11","10.244.0.12"]' '["10.244.0.13"]'
poll 10 '[ "$(backends_of 10.96.0.90)" = 10.244.0.11 ]' ||
	fail "hinted ready endpoints plus an unhinted not-ready one: want 10.244.0.11, table has: $(backends_of 10.96.0.90)"
ok "hints: an unhinted not-ready endpoint does not turn hints off (10.244.0.11 only)"

# --- load-balancer ingress: ipMode VIP is DNATed, ipMode Proxy is not ------------
table_has '192.0.2.60 . tcp . 80 comment "shop/lb:http"' || fail "LB ingress 192.0.2.60 (ipMode VIP) not programmed"
table_lacks '192.0.2.61' || fail "LB ingress 192.0.2.61 with ipMode Proxy is programmed"
[ "$(reach 192.0.2.60)" = 10.244.0.12 ] || fail "192.0.2.60 (ipMode VIP) does not reach 10.244.0.12"
[ -z "$(reach 192.0.2.61 0.3)" ] || fail "192.0.2.61 (ipMode Proxy) answers: it was short-circuited"
ok "LB ingress: 192.0.2.60 (ipMode VIP) -> 10.244.0.12; 192.0.2.61 (ipMode Proxy) and the hostname entry not programmed"

# --- a Service without a ClusterIP ------------------------------------------------
grep -q 'Service shop/noip: not proxied: no ClusterIP' "$KA_LOG" || fail "shop/noip (no ClusterIP) not reported"
table_lacks 'shop/noip' || fail "shop/noip (no ClusterIP) reached the table"
ok "a Service without a ClusterIP: not proxied, reason logged, not in the table"

# --- without --zone hints are not used --------------------------------------------
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "v1 fields: exit $rc on SIGTERM"
zoned '{"10.244.0.11":["zone-a"],"10.244.0.12":["zone-b"],"10.244.0.13":["zone-b"]}'
start_ka "v1 fields, no --zone"
poll 15 '[ "$(backends_of 10.96.0.90)" = "$backends" ]' ||
	fail "without --zone: want all endpoints, table has: $(backends_of 10.96.0.90)"
seen=$(spread 10.96.0.90 30)
[ "$(reached "$seen")" = "$backends" ] ||
	fail "without --zone: connections should reach all three, saw: $seen"
ok "hints without --zone: all endpoints used ($seen)"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "v1 fields: exit $rc on SIGTERM"
stop_fake

# =========================== ServiceCIDRs (networking.k8s.io/v1) ===================
# 10.96.0.99 is an address of this namespace with a server on port 80: it
# answers unless the drop rule stops the connection, so a timeout shows
# the rule at work (not a missing route).
in_ns ip addr add 10.96.0.99/32 dev lo
nsenter --net="/run/netns/$NS" "$PYTHON" -m http.server 80 --bind 10.96.0.99 --directory "$STATE" \
	</dev/null >"$STATE/unalloc.log" 2>&1 &
unalloc_pid=$!
cidr_apply() { # NAME CIDRS_JSON
	ctl /apply "{\"resource\":\"servicecidrs\",\"namespace\":\"\",\"object\":{\"metadata\":{\"name\":\"$1\"},\"spec\":{\"cidrs\":$2}}}" >/dev/null
}
drop_rule() { echo "ip daddr $1 drop comment \"Drop traffic to unallocated ClusterIPs\""; }
# curl's exit status for http://$1/ (28: timed out, i.e. dropped)
reach_rc() { local rc=0; in_ns curl -s -o /dev/null --max-time 1 "http://$1/" || rc=$?; echo $rc; }
poll 5 '[ "$(reach_rc 10.96.0.99)" = 0 ]' || fail "cidrs: the server on 10.96.0.99 does not answer"

start_fake
ctl /config '{"serviceCIDRsV1":200}' >/dev/null
cidr_apply kubernetes '["10.96.0.0/16","fd00:10:96::/112"]'
ctl /service "$(svc_json shop web 10.96.0.10 '["10.244.0.11"]')" >/dev/null
start_ka "cidrs: discovered" --dns=off --control-socket "$STATE/ka.sock"
poll 15 'table_has "comment \"shop/web:http\"" "$(drop_rule 10.96.0.0/16)"' ||
	fail "cidrs: no drop rule for the discovered ServiceCIDR:\n$(table | grep -i drop)"
in_ns nft list table ip6 kube-annex | grep -q -F 'ip6 daddr fd00:10:96::/112 drop' ||
	fail "cidrs: no ip6 drop rule for fd00:10:96::/112"
reqs=$(reqs_since 0)
grep -q '200 GET /apis/networking.k8s.io/v1 ' <<<"$reqs" &&
	grep -q '200 GET /apis/networking.k8s.io/v1/servicecidrs?limit=500 ' <<<"$reqs" ||
	fail "cidrs: no discovery and LIST of networking.k8s.io/v1 servicecidrs:\n$reqs"
[ "$(reach 10.96.0.10)" = 10.244.0.11 ] || fail "cidrs: ClusterIP 10.96.0.10 does not reach 10.244.0.11"
[ "$(reach_rc 10.96.0.99)" = 28 ] || fail "cidrs: unallocated 10.96.0.99 not dropped (curl exit $(reach_rc 10.96.0.99))"
st=$("$BIN" status --control-socket "$STATE/ka.sock") || true # 1: warnings (route conflicts here)
grep -q -F "Service CIDRs: 10.96.0.0/16, fd00:10:96::/112 (from ServiceCIDR objects; ServiceCIDRs from networking.k8s.io/v1)" <<<"$st" ||
	fail "cidrs: status does not say where the Service CIDRs come from:\n$st"
ok "cidrs: ServiceCIDR kubernetes (10.96.0.0/16, fd00:10:96::/112) -> drop rules; 10.96.0.10 reaches 10.244.0.11, unallocated 10.96.0.99 times out"

cidr_apply extra '["10.100.0.0/16"]'
cidr_apply broken '["10.102.0.1/16"]'
poll 10 'grep -q "Skipping ServiceCIDR broken: spec.cidrs\[0\]: \"10.102.0.1/16\" is not a network" "$KA_LOG"' ||
	fail "cidrs: malformed ServiceCIDR broken not logged by name"
poll 10 'table_has "$(drop_rule 10.96.0.0/16)" "$(drop_rule 10.100.0.0/16)"' || fail "cidrs: added ServiceCIDR extra not applied"
ctl /delete '{"resource":"servicecidrs","namespace":"","name":"kubernetes"}' >/dev/null
poll 10 'table_lacks "$(drop_rule 10.96.0.0/16)"' || fail "cidrs: deleted ServiceCIDR kubernetes still dropped"
table_has "$(drop_rule 10.100.0.0/16)" 'comment "shop/web:http"' || fail "cidrs: delete lost the other range or the Service"
table_lacks '10.102.0.' || fail "cidrs: the malformed ServiceCIDR reached the table"
[ "$(reach_rc 10.96.0.99)" = 0 ] || fail "cidrs: 10.96.0.99 still not reached once its ServiceCIDR is gone"
[ "$(reach 10.96.0.10)" = 10.244.0.11 ] || fail "cidrs: ClusterIP broken after the rebuild"
ok "cidrs: ServiceCIDR added live -> 10.100.0.0/16 dropped; a malformed one logged by name and skipped; deleted live -> 10.96.0.0/16 rule gone, 10.96.0.99 answers"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "cidrs: exit $rc on SIGTERM"

cidr_apply kubernetes '["10.96.0.0/16"]'
start_ka "cidrs: --service-cidr wins" --dns=off --service-cidr 10.101.0.0/16 --control-socket "$STATE/ka.sock"
poll 15 'table_has "comment \"shop/web:http\"" "$(drop_rule 10.101.0.0/16)"' || fail "cidrs: --service-cidr not applied"
table_lacks '10.96.0.0/16' '10.100.0.0/16' || fail "cidrs: discovered ranges used despite --service-cidr"
st=$("$BIN" status --control-socket "$STATE/ka.sock") || true # 1: warnings (route conflicts here)
grep -q -F "Service CIDRs: 10.101.0.0/16 (from --service-cidr; ServiceCIDRs from networking.k8s.io/v1)" <<<"$st" ||
	fail "cidrs: status does not say --service-cidr is in effect:\n$st"
ok "cidrs: --service-cidr 10.101.0.0/16 overrides the ServiceCIDRs"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "cidrs: exit $rc on SIGTERM"

# RBAC without the servicecidrs rule: the rest syncs, one log line says so.
ctl /rule '{"match":"^GET /apis/networking\\.k8s\\.io/v1/servicecidrs","status":403,"count":0}' >/dev/null
start_ka "cidrs: 403" --dns=off
poll 15 'table_has "comment \"shop/web:http\""' || fail "cidrs: a 403 on ServiceCIDRs blocked the first sync"
poll 5 'req_seen 0 "403 GET /apis/networking.k8s.io/v1/servicecidrs?limit=500.*" && [ "$(log_count "$ka_log_start" "ServiceCIDRs cannot be read")" -ge 1 ]' ||
	fail "cidrs: 403 not met or not logged"
sleep 2 # a few retries with backoff
[ "$(log_count "$ka_log_start" "ServiceCIDRs cannot be read")" = 1 ] || fail "cidrs: the 403 is not logged exactly once"
table_lacks 'Drop traffic to unallocated' || fail "cidrs: a drop rule without readable ServiceCIDRs"
ok "cidrs: 403 on servicecidrs: synced without them, said once in the log"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "cidrs: exit $rc on SIGTERM"
stop_fake
stop_pid "$unalloc_pid"
unalloc_pid=""
stop_pid "$backend_pid"
backend_pid=""

# =========================== scope: one namespace relists ===========================
start_fake
ctl /service "$(svc_json a web 10.96.0.10 '["10.244.0.11"]')" >/dev/null
ctl /service "$(svc_json a gone 10.96.0.11 '["10.244.0.12"]')" >/dev/null
ctl /service "$(svc_json b web 10.96.0.20 '["10.244.0.21"]')" >/dev/null
ctl /service "$(svc_json c web 10.96.0.30 '["10.244.0.31"]')" >/dev/null
start_ka "scope: --namespaces a,b" --namespaces a,b --dns=off
poll 15 'table_has "comment \"a/web:http\"" "comment \"a/gone:http\"" "comment \"b/web:http\"" "10.244.0.21 . 8080"' ||
	fail "scope: a's and b's Services not programmed"
table_lacks 'c/web' '10.96.0.30 ' || fail "scope: c/web (namespace not listed) programmed"
reqs=$(reqs_since 0)
for p in /api/v1/namespaces/a/services /api/v1/namespaces/b/services \
	/apis/discovery.k8s.io/v1/namespaces/a/endpointslices /apis/discovery.k8s.io/v1/namespaces/b/endpointslices; do
	grep -q "200 GET $p?limit=500 " <<<"$reqs" && grep -q "200 GET $p?watch=1" <<<"$reqs" ||
		fail "scope: no LIST+WATCH of $p:\n$reqs"
done
grep -q 'GET /api/v1/services\|GET /apis/discovery.k8s.io/v1/endpointslices' <<<"$reqs" &&
	fail "scope: a cluster-wide request with --namespaces:\n$reqs"
# Missed while "disconnected": a/gone and b/web deleted without events. Only
# namespace a's watch gets 410 and relists: a/gone must go; b/web stays, as
# b's watch resumes without a relist (a relist of a must not judge b's).
ctl /delete-service '{"namespace":"a","name":"gone","delivery":{"mode":"silent"}}' >/dev/null
ctl /delete-service '{"namespace":"b","name":"web","delivery":{"mode":"silent"}}' >/dev/null
m=$(requests_seen)
ctl /rule '{"match":"^GET /api/v1/namespaces/a/services\\?watch=1","status":410}' >/dev/null
ctl /end-watches '{"resource":"services"}' >/dev/null
poll 10 'table_lacks "comment \"a/gone:http\""' || fail "scope: a/gone still programmed after a's relist"
poll 5 'req_seen "$m" "200 GET /api/v1/namespaces/b/services?watch=1"' || fail "scope: b's watch not resumed"
table_has 'comment "a/web:http"' 'comment "b/web:http"' '10.244.0.21 . 8080' ||
	fail "scope: a relist of namespace a dropped another namespace's Service"
reqs=$(reqs_since "$m")
grep -q '410 GET /api/v1/namespaces/a/services?watch=1' <<<"$reqs" && grep -q '200 GET /api/v1/namespaces/a/services?limit=500 ' <<<"$reqs" ||
	fail "scope: namespace a was not relisted after 410:\n$reqs"
grep -q 'GET /api/v1/namespaces/b/services?limit=' <<<"$reqs" && fail "scope: namespace b relisted too:\n$reqs"
ok "scope: --namespaces a,b lists and watches per namespace; a 410 in a relists a alone: a/gone removed, b/web kept"
rc=0; stop_ka || rc=$?
[ $rc -eq 0 ] || fail "scope: exit $rc on SIGTERM"
stop_fake

[ "$(nft list ruleset 2>/dev/null | md5sum)" = "$root_rules_before" ] || fail "the root namespace's ruleset changed"
ok "root namespace ruleset untouched"
t_end=${EPOCHREALTIME/./}
echo "RESULT faults_runtime_s=$(((t_end - t_start) / 1000000))"
