#!/usr/bin/env bash
# Operating kube-annex, against the real API server: `kube-annex status`
# and `explain` over the root-only control socket on the seed Services
# (selector-less with hand-made Endpoints, named ports, no endpoints,
# headless, ExternalName), /healthz, /livez and /metrics (checked with
# promtool while the daemon runs), zero CPU when idle, conflicts with the
# host's routes and addresses (warning in the log, status and a metric),
# watch staleness (API server hung, then stopped: /healthz 503 with the
# reason, 200 again when it is back), the change log, and the exit codes of
# status (healthy 0, degraded 1, not running 3, no permission 4).
#
# /healthz going 503 is tested through the API server (hung and stopped);
# a failing nftables commit is not provoked here.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces, nftables)" >&2; exit 77; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export KA_PREFIX=${KA_PREFIX:-kaop}
export KA_IN_NS_EXEC=0
# shellcheck source=../env/lib.sh
source "$top/tests/env/lib.sh"
BIN=${KUBE_ANNEX_BIN:-$top/build/kube-annex}
ka_pid=""

if ! command -v promtool >/dev/null; then
	"$top/scripts/install-deps.sh" test >&2 || true
fi
command -v promtool >/dev/null || { echo "FAIL: promtool missing (Debian package prometheus)" >&2; exit 1; }

finish() {
	local rc=$?
	if [ -n "$ka_pid" ] && kill -0 "$ka_pid" 2>/dev/null; then
		kill -TERM "$ka_pid"; wait "$ka_pid" 2>/dev/null || true
	fi
	[ $rc -eq 0 ] || tail -40 "$KA_STATE/kube-annex.log" 2>/dev/null || true
	ka_env_down
	exit $rc
}
trap finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

SOCK= # set after ka_env_up
ka() { $KA_IN_HOST "$BIN" "$1" --control-socket "$SOCK" "${@:2}"; }
# run CMD...; sets $out and $rc
run() { rc=0; out=$("$@" 2>&1) || rc=$?; }
http() { $KA_IN_HOST curl -s --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:10256$1"; }
code() { http "$1" | tail -1; }
metrics() { $KA_IN_HOST curl -sf --max-time 5 http://127.0.0.1:10256/metrics; }
metric() { metrics | awk -v m="$1" '$1 == m { print $2 }'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
connect() { $KA_IN_HOST curl -s --max-time 2 "http://$1/" 2>/dev/null || true; }
start_kube_annex() {
	$KA_IN_HOST "$BIN" --kubeconfig "$KA_KUBECONFIG" --control-socket "$SOCK" --dns=off "$@" \
		</dev/null >>"$KA_STATE/kube-annex.log" 2>&1 &
	ka_pid=$!
}
stop_kube_annex() { kill -TERM "$ka_pid"; wait "$ka_pid" || true; ka_pid=""; }

ka_env_up
SOCK=$KA_STATE/run/control

ka_kubectl create namespace shop >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
# The seed scenarios: a Service without a selector and its hand-made
# Endpoints; two named ports; a Service nobody serves; a headless one; an
# ExternalName; and session affinity.
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
---
apiVersion: v1
kind: Service
metadata: {name: myservice, namespace: shop}
spec:
  ports:
  - {name: visit-port, port: 9999, protocol: TCP}
  - {name: test-port, port: 8888, protocol: TCP}
---
apiVersion: v1
kind: Endpoints
metadata: {name: myservice, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.12}, {ip: 10.244.0.13}]
  ports:
  - {name: visit-port, port: 80, protocol: TCP}
  - {name: test-port, port: 443, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: shop}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: headless, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.13}]
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: shop}
spec:
  type: ExternalName
  externalName: db.example.com
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: shop}
spec:
  sessionAffinity: ClientIP
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: sticky, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.11}]
  ports: [{name: http, port: 8080}]
EOF
web=$(ka_kubectl -n shop get service web -o jsonpath='{.spec.clusterIP}')

# --- not running ------------------------------------------------------------
run ka status
[ $rc -eq 3 ] || fail "status without a daemon: exit $rc, want 3: $out"
grep -q "not running" <<<"$out" || fail "status without a daemon says: $out"
ok "status without a daemon: exit 3, 'not running'"

# --- running: status -----------------------------------------------------------
start_kube_annex --service-cidr "$KA_SERVICE_CIDR,$KA_SERVICE_CIDR6"
ka_wait_for '[ "$(code /healthz)" = 200 ]' 30 "/healthz 200"
ok "/healthz 200 after the first sync"
[ "$(stat -c '%a %U' "$SOCK")" = "600 root" ] || fail "control socket is $(stat -c '%a %U' "$SOCK")"
run $KA_IN_HOST setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" status --control-socket "$SOCK"
[ $rc -eq 4 ] || fail "status as nobody: exit $rc, want 4: $out"
ok "control socket is 0600 root; another user gets exit 4 ($out)"

run ka status
[ $rc -eq 0 ] || fail "status: exit $rc, want 0:\n$out"
echo "$out" | sed 's/^/  | /'
grep -q ": healthy$" <<<"$out" || fail "status does not say healthy"
grep -q "7 known, 5 proxied" <<<"$out" || fail "status counts are wrong"
grep -q "1 ExternalName (DNS only), 1 headless (DNS only), 1 without usable endpoints" <<<"$out" ||
	fail "status does not explain the Services not forwarded"
grep -q "Service: *watching" <<<"$out" && grep -q "EndpointSlice: *watching" <<<"$out" ||
	fail "status does not show both watches"
grep -q "DNS: *off" <<<"$out" || fail "status does not show DNS off"
run ka status --json
[ $rc -eq 0 ] || fail "status --json: exit $rc"
[ "$(json 'd["health"]["status"], d["api"]["connected"], d["services"]["known"], d["services"]["not_forwarded"]["no_endpoints"], d["datapath"]["last_sync"]["ok"], d["dns"]["mode"]' <<<"$out")" = \
	"healthy True 7 1 True off" ] || fail "status --json: $out"
ok "status and status --json on the seed Services (exit 0)"

# --- explain --------------------------------------------------------------------
run ka explain shop/web
[ $rc -eq 0 ] || fail "explain shop/web: exit $rc:\n$out"
echo "$out" | sed 's/^/  | /'
grep -q "Service shop/web (ClusterIP): reachable" <<<"$out" || fail "explain shop/web: not reachable?"
grep -q "\"shop/web:http\": forward to 10.244.0.11:8080, 10.244.0.12:8080; programmed" <<<"$out" ||
	fail "explain shop/web: datapath entry missing"
[ "$(grep -c 'ready .* in use *route: via' <<<"$out")" = 2 ] || fail "explain shop/web: endpoints not in use"
run ka explain --json shop/myservice
[ "$(json '[d["reachable"], len(d["entries"]), all(e["programmed"]["verdict"] == "forward" for e in d["entries"]), all(e["in_use"] for e in d["endpoints"])]' <<<"$out")" = \
	"[True, 2, True, True]" ] || fail "explain --json shop/myservice: $out"
ok "explain of reachable Services: entries programmed, endpoints in use, routes"

run ka explain shop/empty
[ $rc -eq 1 ] || fail "explain shop/empty: exit $rc"
grep -q "NOT reachable" <<<"$out" && grep -q "no usable endpoint" <<<"$out" && grep -q ": reject; programmed" <<<"$out" ||
	fail "explain shop/empty:\n$out"
echo "$out" | sed 's/^/  | /'
run ka explain shop/headless
[ $rc -eq 1 ] && grep -q "not proxied: headless" <<<"$out" && grep -q "10.244.0.13 .*route: via" <<<"$out" ||
	fail "explain shop/headless (exit $rc):\n$out"
run ka explain shop/legacy
[ $rc -eq 1 ] && grep -q "ExternalName" <<<"$out" && grep -q "CNAME db.example.com" <<<"$out" ||
	fail "explain shop/legacy (exit $rc):\n$out"
run ka explain shop/nope
[ $rc -eq 1 ] && grep -q "no Service shop/nope is known" <<<"$out" || fail "explain shop/nope (exit $rc): $out"
ok "explain of unreachable Services says why: no endpoints, headless, ExternalName, unknown"

run ka explain shop/sticky
grep -q "ClientIP (timeout 10800 s; clients pinned)" <<<"$out" || fail "explain shop/sticky: $out"
ok "explain shows session affinity, pinned in the datapath"

run ka explain "$web:80"
[ $rc -eq 0 ] && grep -q "Address $web port 80: a Service address (reachable)" <<<"$out" &&
	grep -q "Service shop/web" <<<"$out" || fail "explain $web:80 (exit $rc):\n$out"
run ka explain "$web:81"
[ $rc -eq 1 ] && grep -q "port 81 is not a port of this Service" <<<"$out" || fail "explain $web:81 (exit $rc):\n$out"
run ka explain 10.244.0.12
grep -q "not a Service address" <<<"$out" && grep -q "endpoint of: shop/myservice, shop/web" <<<"$out" ||
	fail "explain 10.244.0.12:\n$out"
run ka explain 10.96.255.254
[ $rc -eq 1 ] && grep -q "inside the Service CIDR $KA_SERVICE_CIDR, but no Service has it" <<<"$out" ||
	fail "explain of an unallocated ClusterIP (exit $rc):\n$out"
ok "explain of VIP:port, a wrong port, an endpoint address, an unallocated ClusterIP"

# The host's resolver of this test namespace has no DNS server it can
# reach: fail fast.
run env RES_OPTIONS="timeout:1 attempts:1" $KA_IN_HOST "$BIN" explain --control-socket "$SOCK" web.shop.svc.cluster.local
[ $rc -eq 1 ] && grep -q "no cluster DNS path" <<<"$out" && grep -q "The name belongs to:" <<<"$out" &&
	grep -q "Service shop/web (ClusterIP): reachable" <<<"$out" || fail "explain of a DNS name (exit $rc):\n$out"
echo "$out" | sed 's/^/  | /' | head -8
run ka explain localhost
[ $rc -eq 0 ] && grep -q "returned 127.0.0.1" <<<"$out" || fail "explain localhost (exit $rc):\n$out"
run ka explain "bad query"
[ $rc -eq 2 ] || fail "explain of a bad query: exit $rc"
ok "explain of DNS names: --dns=off has no cluster DNS path; the resolver's answer is shown"

# --- HTTP --------------------------------------------------------------------------
[ "$(code /livez)" = 200 ] || fail "/livez"
[ "$(code /nope)" = 404 ] || fail "/nope is not 404"
metrics >"$KA_STATE/metrics.txt" || fail "cannot scrape /metrics"
promtool check metrics <"$KA_STATE/metrics.txt" || fail "promtool check metrics failed"
for m in 'kubeannex_services 7' 'kubeannex_healthy 1' \
	'kubeannex_services_not_proxied{reason="headless"} 1' \
	'kubeannex_services_not_proxied{reason="external_name"} 1' \
	'kubeannex_services_not_proxied{reason="no_endpoints"} 1' \
	'kubeannex_services_programmed{ip_family="IPv4"} 5' \
	'kubeannex_endpoints_programmed{ip_family="IPv4"} 8' \
	'kubeannex_sync_full_proxy_rules_duration_seconds_count 1' \
	'kubeannex_dns_mode{mode="off"} 1' 'kubeannex_watch_up{resource="services"} 1' \
	'kubeannex_build_info{version="'"$(cat "$top/VERSION")"'"} 1'; do
	grep -qxF "$m" "$KA_STATE/metrics.txt" || fail "/metrics lacks '$m'"
done
ok "/livez 200, /metrics passes promtool check metrics ($(grep -c '^# TYPE' "$KA_STATE/metrics.txt") metrics)"

# --- the change log, and a partial sync ---------------------------------------------
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: added, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: added, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.11}]
  ports: [{name: http, port: 8080}]
EOF
ka_wait_for 'grep -q "Service shop/added: endpoints in use 0 -> 1" "$KA_STATE/kube-annex.log"' 10 "endpoints log line"
grep -q "Service shop/added added: ClusterIP .*, ports 80/tcp" "$KA_STATE/kube-annex.log" || fail "no 'added' log line"
ka_kubectl -n shop delete service added >/dev/null
ka_wait_for 'grep -q "Service shop/added removed" "$KA_STATE/kube-annex.log"' 10 "removed log line"
[ "$(metric kubeannex_sync_partial_proxy_rules_duration_seconds_count)" -ge 1 ] || fail "no partial sync counted"
for _ in 1 2 3 4 5; do connect "$web" >/dev/null; done
! grep -q "$KA_HOST_IP" "$KA_STATE/kube-annex.log" || fail "the log mentions connections"
ok "one log line per Service added / endpoints changed / removed, none per connection"

# --- zero CPU when idle ------------------------------------------------------------------
sleep 1
t0=$(awk '{print $14 + $15}' "/proc/$ka_pid/stat")
sleep 10
t1=$(awk '{print $14 + $15}' "/proc/$ka_pid/stat")
[ $((t1 - t0)) -le 1 ] || fail "kube-annex used $((t1 - t0)) clock ticks in 10 idle seconds"
ok "idle for 10 s: $((t1 - t0)) clock ticks of CPU"

# --- conflicts ------------------------------------------------------------------------------
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: mine, namespace: shop}
spec:
  clusterIP: 10.96.77.77
  ports: [{name: http, port: 80}]
EOF
ip -n "$KA_HOST_NS" route add "$KA_SERVICE_CIDR" via "$KA_ROUTER_IP"   # a "VPN" covering the Service CIDR
ip -n "$KA_HOST_NS" route add unreachable 10.244.0.13/32            # an endpoint the host cannot reach
ip -n "$KA_HOST_NS" addr add 10.96.77.77/32 dev lo                  # a ClusterIP that is the host's own
ip -n "$KA_HOST_NS" addr add 10.96.250.1/24 dev eth0                # a LAN inside the Service CIDR
ka_wait_for '[ "$(metric "kubeannex_conflicts{kind=\"host_address\"}")" = 2 ]' 10 "host_address conflict metric"
[ "$(metric 'kubeannex_conflicts{kind="route"}')" = 2 ] || fail "route conflicts: $(metric 'kubeannex_conflicts{kind="route"}')"
[ "$(metric 'kubeannex_conflicts{kind="unroutable_endpoint"}')" = 1 ] || fail "unroutable endpoint conflict missing"
grep -q "^<4>Conflict: this host.s route $KA_SERVICE_CIDR via $KA_ROUTER_IP dev eth0 (overlapping the Service CIDR $KA_SERVICE_CIDR) covers [0-9]* ClusterIPs" \
	"$KA_STATE/kube-annex.log" || fail "no route conflict warning in the log"
grep -q "^<4>Conflict: endpoint 10.244.0.13 of Service shop/.*no route" "$KA_STATE/kube-annex.log" ||
	fail "no unroutable endpoint warning in the log"
grep -q "^<4>Conflict: ClusterIP 10.96.77.77 of Service shop/mine is also an address of this host (lo)" \
	"$KA_STATE/kube-annex.log" || fail "no host address warning in the log"
grep -q "^<4>Conflict: address 10.96.250.1/24 of this host (eth0) is inside the Service CIDR $KA_SERVICE_CIDR" \
	"$KA_STATE/kube-annex.log" || fail "no 'address inside the Service CIDR' warning in the log"
grep -q "^<4>Conflict: this host's route 10.96.250.0/24 dev eth0 overlaps the Service CIDR $KA_SERVICE_CIDR" \
	"$KA_STATE/kube-annex.log" || fail "no 'route inside the Service CIDR' warning in the log"
run ka status
[ $rc -eq 1 ] || fail "status with conflicts: exit $rc, want 1"
grep -q ": degraded$" <<<"$out" && grep -q "conflict: ClusterIP 10.96.77.77" <<<"$out" || fail "status:\n$out"
[ "$(code /healthz)" = 200 ] || fail "conflicts must not fail /healthz"
run ka explain shop/myservice
grep -q "10.244.0.13 .*route: .*unreachable\|10.244.0.13 .*route: no route" <<<"$out" && grep -q "Note: .*no route from this host" <<<"$out" ||
	fail "explain does not show the unroutable endpoint:\n$out"
[ "$(connect "$web")" != "" ] || fail "the conflicting route broke the Service"
ok "conflicts (route over the Service CIDR, a LAN inside it, unreachable endpoint, ClusterIP on the host): log, status exit 1, metric"
ip -n "$KA_HOST_NS" route del "$KA_SERVICE_CIDR" via "$KA_ROUTER_IP"
ip -n "$KA_HOST_NS" route del unreachable 10.244.0.13/32
ip -n "$KA_HOST_NS" addr del 10.96.77.77/32 dev lo
ip -n "$KA_HOST_NS" addr del 10.96.250.1/24 dev eth0
ka_wait_for '[ "$(metric "kubeannex_conflicts{kind=\"route\"}")" = 0 ]' 10 "conflicts gone"
grep -q "Conflict resolved: this host's route $KA_SERVICE_CIDR" "$KA_STATE/kube-annex.log" || fail "no 'Conflict resolved' line"
run ka status
[ $rc -eq 0 ] || fail "status after the conflicts are gone: exit $rc:\n$out"
ok "conflicts resolved: logged, status exit 0 again"

# --- SIGTERM: the socket goes away -----------------------------------------------------------
stop_kube_annex
[ ! -e "$SOCK" ] || fail "control socket left behind"
run ka status
[ $rc -eq 3 ] || fail "status after stop: exit $rc"
ok "after SIGTERM the socket is gone and status exits 3"

# --- staleness: a hung and a stopped API server ---------------------------------------------
# A short bound for the test (the default is 420 s, above the server's
# 4-6 minute watch timeouts, since an idle cluster may send nothing else).
export KUBE_ANNEX_WATCH_STALE_SECONDS=5
start_kube_annex --metrics-address 127.0.0.1:10256
unset KUBE_ANNEX_WATCH_STALE_SECONDS
ka_wait_for '[ "$(code /healthz)" = 200 ]' 30 "/healthz 200 (second run)"
ka_apiserver_pause
t0=$EPOCHSECONDS
ka_wait_for '[ "$(code /healthz)" = 503 ]' 30 "/healthz 503 with a hung API server"
reason=$(http /healthz | head -1)
grep -q "watch is stale" <<<"$reason" || fail "503 reason: $reason"
grep -q "nothing from the API server for 5 s: reconnecting" "$KA_STATE/kube-annex.log" || fail "no stale reconnect logged"
[ "$(metric 'kubeannex_watch_stale_reconnects_total{resource="services"}')" -ge 1 ] || fail "stale reconnects not counted"
run ka status
[ $rc -eq 1 ] && grep -q "unhealthy: .*watch is stale" <<<"$out" || fail "status with a hung API server (exit $rc):\n$out"
ok "hung API server: /healthz 503 after $((EPOCHSECONDS - t0)) s ($reason)"
ka_apiserver_resume
ka_wait_for '[ "$(code /healthz)" = 200 ]' 30 "/healthz 200 after the API server resumed"
ok "API server resumed: /healthz 200"

ka_apiserver_stop
t0=$EPOCHSECONDS
ka_wait_for '[ "$(code /healthz)" = 503 ]' 30 "/healthz 503 with the API server stopped"
reason=$(http /healthz | head -1)
grep -q "no answer from the API server" <<<"$reason" || fail "503 reason: $reason"
[ "$(metric 'kubeannex_api_errors_total{code="<error>"}')" -ge 1 ] || fail "API errors not counted"
[ "$(metric kubeannex_healthy)" = 0 ] || fail "kubeannex_healthy is not 0"
[ "$(connect "$web")" != "" ] || fail "rules stopped working while the API server is down"
metrics | promtool check metrics || fail "promtool check metrics (API server down)"
ok "API server stopped: /healthz 503 after $((EPOCHSECONDS - t0)) s ($reason); rules keep working"
ka_apiserver_start
ka_wait_for '[ "$(code /healthz)" = 200 ]' 40 "/healthz 200 after the API server came back"
ok "API server back: /healthz 200"
stop_kube_annex

# --- metrics off -----------------------------------------------------------------------------
start_kube_annex --metrics-address off
ka_wait_for 'ka status >/dev/null' 30 "status (metrics off)"
run ka status
grep -q "Metrics: *off" <<<"$out" || fail "status does not say metrics off"
[ "$(code /healthz)" = 000 ] || fail "something listens on 10256 with --metrics-address off"
stop_kube_annex
ok "--metrics-address off: nothing listens, status says so"

# --- structured fields for the journal -------------------------------------------------------
# stderr connected to "the journal": $JOURNAL_STREAM names it, and a
# datagram socket at /run/systemd/journal/socket (in a private mount
# namespace, over a tmpfs) stands in for journald.
jlog=$KA_STATE/journal.datagrams
: >"$KA_STATE/journal.stderr"
stream=$(stat -c '%d:%i' "$KA_STATE/journal.stderr")
unshare -m --propagation private bash -c '
	mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal || exit 1
	socat -u UNIX-RECV:/run/systemd/journal/socket "OPEN:$1,creat,append" &
	echo $! >"$2"
	for _ in $(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
	JOURNAL_STREAM=$3 exec nsenter --net="/run/netns/$4" "$5" --kubeconfig "$6" \
		--control-socket "$7" --dns=off' \
	_ "$jlog" "$KA_STATE/socat.pid" "$stream" "$KA_HOST_NS" "$BIN" "$KA_KUBECONFIG" "$SOCK" \
	</dev/null >>"$KA_STATE/journal.stderr" 2>&1 &
ka_pid=$!
ka_wait_for '[ "$(code /healthz)" = 200 ]' 30 "/healthz 200 (journal run)"
ka_kubectl apply -f - >/dev/null <<'EOF2'
apiVersion: v1
kind: Service
metadata: {name: journaled, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
EOF2
ka_wait_for 'grep -q "^KUBE_ANNEX_SERVICE=shop/journaled$" "$jlog"' 10 "a structured journal entry"
grep -q "^MESSAGE=Service shop/journaled added: ClusterIP .*, ports 80/tcp$" "$jlog" &&
	grep -q "^KUBE_ANNEX_CHANGE=added$" "$jlog" && grep -q "^PRIORITY=6$" "$jlog" ||
	fail "journal entry lacks fields:\n$(cat "$jlog")"
! grep -q "Service shop/journaled added" "$KA_STATE/journal.stderr" || fail "the entry went to stderr as well"
stop_kube_annex
kill "$(cat "$KA_STATE/socat.pid")" 2>/dev/null || true
ka_kubectl -n shop delete service journaled >/dev/null
ok "with \$JOURNAL_STREAM, change lines go to the journal with KUBE_ANNEX_SERVICE / KUBE_ANNEX_CHANGE fields"

# --- the same requests under valgrind: no memory errors, no leaks -------------------------
if command -v valgrind >/dev/null; then
	$KA_IN_HOST valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no \
		--log-file="$KA_STATE/valgrind.log" \
		"$BIN" --kubeconfig "$KA_KUBECONFIG" --control-socket "$SOCK" --dns=off \
		</dev/null >>"$KA_STATE/kube-annex.log" 2>&1 &
	ka_pid=$!
	ka_wait_for '[ "$(code /healthz)" = 200 ]' 60 "/healthz 200 under valgrind"
	for q in shop/web shop/empty shop/headless shop/legacy shop/nope "$web:80" "$web:81" 10.244.0.12; do
		ka explain "$q" >/dev/null || true
		ka explain --json "$q" >/dev/null || true
	done
	env RES_OPTIONS="timeout:1 attempts:1" $KA_IN_HOST "$BIN" explain --control-socket "$SOCK" \
		web.shop.svc.cluster.local >/dev/null || true
	ka status >/dev/null && ka status --json >/dev/null || fail "status under valgrind"
	ip -n "$KA_HOST_NS" route add unreachable 10.244.0.13/32
	ka_wait_for '[ "$(metric "kubeannex_conflicts{kind=\"unroutable_endpoint\"}")" = 1 ]' 20 "conflict under valgrind"
	ka status >/dev/null || true
	ip -n "$KA_HOST_NS" route del unreachable 10.244.0.13/32
	ka_wait_for '[ "$(metric "kubeannex_conflicts{kind=\"unroutable_endpoint\"}")" = 0 ]' 20 "conflict gone under valgrind"
	metrics | promtool check metrics >/dev/null || fail "promtool under valgrind"
	code /livez >/dev/null
	kill -TERM "$ka_pid"
	rc=0; wait "$ka_pid" || rc=$?
	ka_pid=""
	[ $rc -eq 0 ] || { cat "$KA_STATE/valgrind.log"; fail "kube-annex under valgrind exited $rc"; }
	[ ! -s "$KA_STATE/valgrind.log" ] || { cat "$KA_STATE/valgrind.log"; fail "valgrind reported problems"; }
	ok "status, explain, metrics and conflicts under valgrind: no memory errors, no leaks"
else
	fail "valgrind is not installed (scripts/install-deps.sh test)"
fi
