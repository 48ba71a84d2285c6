#!/usr/bin/env bash
# make bench: kube-annex's performance figures on this machine, in one run,
# side by side with nft -f of kube-proxy's nftables layouts and with the
# real kube-proxy 1.20 (iptables mode). A benchmark, not a test: nothing
# here passes or fails on a figure.
#
#   make bench                       10,000 Services x 10 endpoints
#   BENCH_QUICK=1 make bench         1,000 Services, shorter phases
#   BENCH_SERVICES=N make bench      another scale
#
# Phases (each prints "bench: ..." progress on stderr):
#   1. cold programming in private namespaces: bench/nft-cold (kube-annex's
#      nft module linked in, model filled in memory) vs nft -f of the
#      kube-proxy 1.36 and <=1.35 rulesets from gen-kube-proxy-ruleset.py;
#   2. the real test environment (tests/env/lib.sh, prefix kabench), a
#      C HTTP server in pod1, Service bench/web -> pod1:80;
#   3. kube-annex with 2 Services: connection rate, ClusterIP vs pod IP;
#   4. N Services x 10 endpoints created through the API server
#      (selector-less Services + Endpoints, mirrored into EndpointSlices);
#   5. kube-annex start to ready, memory, idle CPU, connection rate, and
#      endpoint-change latency over BENCH_CHANGES changes;
#   6. kube-proxy 1.20 --proxy-mode=iptables in a namespace of its own:
#      start to first sync, idle CPU, endpoint-change latency;
#   7. the table, on stdout and in bench/results.md.
# Everything is torn down at the end and on failure. Only namespaces made
# here (kabench-*) are touched, never the root network namespace.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces, nftables)" >&2; exit 1; }
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
T_START=$EPOCHREALTIME

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	SERVICES=${BENCH_SERVICES:-1000}
	CHANGES=${BENCH_CHANGES:-300}
	IDLE=${BENCH_IDLE_SECONDS:-10}
	KP_CHANGES=${BENCH_KP_CHANGES:-10}
	RESULTS=${BENCH_RESULTS:-$BUILD/bench/results-quick.md}
else
	SERVICES=${BENCH_SERVICES:-10000}
	CHANGES=${BENCH_CHANGES:-1000}
	IDLE=${BENCH_IDLE_SECONDS:-30}
	KP_CHANGES=${BENCH_KP_CHANGES:-20}
	RESULTS=${BENCH_RESULTS:-bench/results.md}
fi
ENDPOINTS=10
CHANGE_INTERVAL=${BENCH_CHANGE_INTERVAL:-0.03} # s between two endpoint changes
KP_INTERVAL=${BENCH_KP_INTERVAL:-1}
KP_IDLE=${BENCH_KP_IDLE_SECONDS:-$IDLE}
KP_IPTABLES=${BENCH_KP_IPTABLES:-legacy} # legacy | nft
CONN_SECONDS=${BENCH_CONN_SECONDS:-1}
CONN_ROUNDS=${BENCH_CONN_ROUNDS:-10}
CONN_CONC=${BENCH_CONN_CONCURRENCY:-4}

OUT=$BUILD/bench/out
PY=/usr/bin/python3
CONN=$BUILD/bench/conn
KA_BIN=$BUILD/kube-annex
mkdir -p "$OUT"
rm -rf "${OUT:?}"/*
VALUES=$OUT/values
: >"$VALUES"

export KA_PREFIX=${KA_PREFIX:-kabench} KA_POD_PORTS="" KA_DUAL_STACK=0 KA_IN_NS_EXEC=0
# shellcheck source=tests/env/lib.sh
source "$top/tests/env/lib.sh"
KP_NS=$KA_PREFIX-kproxy
KP_IP=10.99.0.3

# The controller-manager of lib.sh, with client rate limits lifted: at its
# defaults (20 QPS) mirroring 10,000 Endpoints objects takes minutes.
_ka_controller_manager() {
	local d=$KA_STATE/pki
	_ka_daemon kube-controller-manager "$KA_CP_NS" "$KA_K8S_BIN/kube-controller-manager" \
		--kubeconfig="$KA_ADMIN_KUBECONFIG" \
		--service-account-private-key-file="$d/sa.key" --root-ca-file="$d/ca.crt" \
		--leader-elect=false --port=0 --secure-port=0 \
		--controllers=serviceaccount-token,serviceaccount,endpointslicemirroring,namespace,garbagecollector \
		--kube-api-qps=5000 --kube-api-burst=5000 --mirroring-concurrent-service-endpoint-syncs=10 \
		--v=1
}

log() { echo "bench: $*" >&2; }
val() { echo "$1 ${*:2}" >>"$VALUES"; }
now() { echo "$EPOCHREALTIME"; }
ms_since() { echo $(((${EPOCHREALTIME/./} - ${1/./}) / 1000)); }

# ---- processes we start: PID + start time, stopped by PID only ----------

declare -A PIDS=()
track() { PIDS[$1]="$2 $(_ka_starttime "$2")"; }
stop() { # NAME [SIGNAL]
	local p=${PIDS[$1]:-} pid start i
	[ -n "$p" ] || return 0
	read -r pid start <<<"$p"
	unset "PIDS[$1]"
	_ka_alive "$pid" "$start" || { wait "$pid" 2>/dev/null || true; return 0; }
	kill "-${2:-TERM}" "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		_ka_alive "$pid" "$start" || break
		sleep 0.1
	done
	_ka_alive "$pid" "$start" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	for n in "${!PIDS[@]}"; do stop "$n"; done
	[ -e "/run/netns/$KP_NS" ] && ip netns delete "$KP_NS"
	ka_env_down >/dev/null 2>&1 || ka_env_down
	[ $rc -ne 0 ] && log "failed (exit $rc); logs in $OUT"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- machine --------------------------------------------------------------

machine_info() {
	val services "$SERVICES"
	val endpoints "$ENDPOINTS"
	val date "$(date -u '+%Y-%m-%d %H:%M UTC')"
	val cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	val cores "$(nproc)"
	val memory "$(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo)"
	val kernel "$(uname -r)"
	val nft "$(nft --version | awk '{print $2}')"
	val libnftnl "$(pkg-config --modversion libnftnl 2>/dev/null || echo '?')"
	val libmnl "$(pkg-config --modversion libmnl 2>/dev/null || echo '?')"
	val iptables_version "$(iptables-legacy --version 2>/dev/null | awk '{print $2}')"
	val version "$("$KA_BIN" --version 2>/dev/null | awk '{print $2}') ($(git describe --always --dirty 2>/dev/null || echo '?'))"
	val k8s_version "$("$KA_K8S_BIN/kube-proxy" --version 2>/dev/null | awk '{print $2}')"
	val load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
	val command "$([ "$QUICK" = 1 ] && echo "BENCH_QUICK=1 ")make bench$([ -n "${BENCH_SERVICES:-}" ] && echo " BENCH_SERVICES=$SERVICES")"
	val idle_seconds "$IDLE"
	val conn_seconds "$CONN_SECONDS"
	val conn_rounds "$CONN_ROUNDS"
	val conn_concurrency "$CONN_CONC"
	val kp_iptables "$KP_IPTABLES"
	val kp_churn_interval "$KP_INTERVAL"
}

# ---- 1. cold programming ---------------------------------------------------

# Load FILE with nft -f in a fresh network namespace; prints milliseconds.
# The table is deleted afterwards (not timed) so that the namespace's
# teardown does not burn CPU behind the next measurement.
nft_load_ms() { # FILE TABLE
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -n bash -c 't0=${EPOCHREALTIME/./}; nft -f "$1" >&2 || exit 1
		echo $(((${EPOCHREALTIME/./} - t0) / 1000)); nft delete table ip "$2"' _ "$1" "$2"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

phase_cold() {
	local sizes=1000 n f k t reps
	[ "$SERVICES" != 1000 ] && sizes="1000 $SERVICES"
	val cold_sizes "$sizes"
	for n in $sizes; do
		reps=3
		log "cold: kube-annex nft module, $n x $ENDPOINTS ($reps times, 1000 changes, restart)"
		"$BUILD/bench/nft-cold" "$n" "$ENDPOINTS" "$reps" 1000 "$OUT/ka-$n.nft" >"$OUT/nft-cold-$n.txt"
		local all="" sys="" stage=""
		for ((k = 0; k < reps; k++)); do
			all+="$(awk -v k="cold${k}_total_ms" '$1 == k {print $2}' "$OUT/nft-cold-$n.txt") "
			sys+="$(awk -v k="cold${k}_sys_ms" '$1 == k {print $2}' "$OUT/nft-cold-$n.txt") "
			stage+="$(awk -v k="cold${k}_stage_ms" '$1 == k {print $2}' "$OUT/nft-cold-$n.txt") "
		done
		val "ka_cold_${n}_ms" "$(echo "$all" | median)"
		val "ka_cold_${n}_all" "$(echo "$all" | xargs printf '%.0f ' | sed 's/ $//')"
		val "ka_cold_${n}_reps" "$reps"
		val "ka_cold_${n}_sys_ms" "$(echo "$sys" | median)"
		val "ka_cold_${n}_stage_ms" "$(echo "$stage" | median)"
		awk -v n="$n" '/^change_/ {sub("change_", ""); print "ka_change_" n "_" $1, $2}
			$1 == "restart_total_ms" {print "ka_restart_" n "_ms", $2}
			$1 == "replace_total_ms" {print "ka_replace_" n "_ms", $2}' \
			"$OUT/nft-cold-$n.txt" >>"$VALUES"
		for f in 1.36 1.35; do
			"$PY" bench/gen-kube-proxy-ruleset.py --style "$f" --services "$n" \
				--endpoints "$ENDPOINTS" >"$OUT/kube-proxy-$f-$n.nft"
			log "cold: nft -f of the kube-proxy $f ruleset, $n x $ENDPOINTS" \
				"($(wc -l <"$OUT/kube-proxy-$f-$n.nft") commands)"
			t=$(nft_load_ms "$OUT/kube-proxy-$f-$n.nft" kube-proxy)
			val "nftf_${f/./}_${n}_ms" "$t"
			log "  $t ms"
			rm -f "$OUT/kube-proxy-$f-$n.nft"
		done
		log "cold: nft -f of kube-annex's own listing, $n x $ENDPOINTS"
		val "nftf_ka_${n}_ms" "$(nft_load_ms "$OUT/ka-$n.nft" kube-annex)"
	done
}

# ---- 2. environment ----------------------------------------------------------

api() { nsenter --net="/run/netns/$KA_CP_NS" "$PY" bench/k8s-load.py --pki "$KA_STATE/pki" \
	--server "$KA_APISERVER" "$@"; }

phase_env() {
	local t
	log "environment: control plane and namespaces ($KA_PREFIX-*)"
	t=$(now)
	ka_env_up
	val env_up_ms "$(ms_since "$t")"
	nsenter --net="/run/netns/$KA_PREFIX-pod1" "$CONN" serve 80 </dev/null >"$OUT/conn-server.log" 2>&1 &
	track server $!
	WEB_IP=$(api web --ip "${KA_POD_IPS%% *}" --port 80)
	POD_IP=${KA_POD_IPS%% *}
	log "Service bench/web: $WEB_IP:80 -> $POD_IP:80"
}

# ---- kube-annex ------------------------------------------------------------

# Timestamp each stderr line as it arrives (the log has none of its own).
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }

KA_LAUNCH=
start_kube_annex() { # LOG ARGS...
	local logf=$1
	shift
	: >"$logf"
	KA_LAUNCH=$(now)
	$KA_IN_HOST "$KA_BIN" --kubeconfig "$KA_KUBECONFIG" "$@" </dev/null 2> >(stamp >>"$logf") &
	track kube-annex $!
	KA_PID=$!
}

wait_log() { # FILE REGEX TIMEOUT_S [PID]
	local end=$((EPOCHSECONDS + $3))
	while [ "$EPOCHSECONDS" -lt "$end" ]; do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		[ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null && { log "process $4 exited; see $1"; return 1; }
		sleep 0.05
	done
	log "timed out after $3 s waiting for /$2/ in $1"
	return 1
}

# Wait until FILE has not grown for QUIET_S seconds (at most MAX_S).
wait_quiet() { # FILE QUIET_S MAX_S
	local end=$((EPOCHSECONDS + $3)) size last=-1 since=$EPOCHSECONDS
	while [ "$EPOCHSECONDS" -lt "$end" ]; do
		size=$(stat -c %s "$1")
		if [ "$size" != "$last" ]; then
			last=$size
			since=$EPOCHSECONDS
		elif [ $((EPOCHSECONDS - since)) -ge "$2" ]; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

proc_cpu_ms() { # PID [children] -> utime+stime (+cutime+cstime) in ms
	local stat
	read -r stat <"/proc/$1/stat"
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- "${2:-}" $stat
	local t=$((${13} + ${14}))
	[ "$1" = children ] && t=$((t + ${15} + ${16}))
	echo $((t * 1000 / $(getconf CLK_TCK)))
}
proc_status() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# ---- 5. connections ----------------------------------------------------------

# conn_series STATE: CONN_ROUNDS rounds of (pod IP direct, ClusterIP) at
# concurrency CONN_CONC, then one latency run of each at concurrency 1.
conn_series() {
	local st=$1 r tgt ip rates_direct="" rates_cip="" f
	for ((r = 1; r <= CONN_ROUNDS; r++)); do
		for tgt in direct cip; do
			ip=$POD_IP
			[ $tgt = cip ] && ip=$WEB_IP
			f=$OUT/conn-$st-$tgt-$r.txt
			$KA_IN_HOST "$CONN" client "$ip" 80 "$CONN_SECONDS" "$CONN_CONC" >"$f"
			if [ $tgt = direct ]; then rates_direct+="$(awk '$1 == "rate" {print $2}' "$f") "
			else rates_cip+="$(awk '$1 == "rate" {print $2}' "$f") "; fi
			[ "$(awk '$1 == "errors" {print $2}' "$f")" = 0 ] ||
				log "  $tgt: $(awk '$1 == "errors" {print $2}' "$f") failed connections"
		done
	done
	val "conn_${st}_direct_rate" "$(echo "$rates_direct" | median)"
	val "conn_${st}_cip_rate" "$(echo "$rates_cip" | median)"
	val "conn_${st}_direct_rates" "$(echo "$rates_direct" | xargs printf '%.0f ' | sed 's/ $//')"
	val "conn_${st}_cip_rates" "$(echo "$rates_cip" | xargs printf '%.0f ' | sed 's/ $//')"
	# ClusterIP relative to the pod IP measured right before it, per round:
	# what other load on the machine does to both cancels out.
	val "conn_${st}_cip_vs_direct" "$(paste -d' ' <(echo "$rates_cip" | tr ' ' '\n' | grep .) \
		<(echo "$rates_direct" | tr ' ' '\n' | grep .) | awk '{print $1 / $2}' | median)"
	for tgt in direct cip; do
		ip=$POD_IP
		[ $tgt = cip ] && ip=$WEB_IP
		f=$OUT/conn-$st-$tgt-lat.txt
		$KA_IN_HOST "$CONN" client "$ip" 80 "$CONN_SECONDS" 1 >"$f"
		val "conn_${st}_${tgt}_lat_p50_us" "$(awk '$1 == "connect_p50_us" {print $2}' "$f")"
		val "conn_${st}_${tgt}_lat_p99_us" "$(awk '$1 == "connect_p99_us" {print $2}' "$f")"
	done
	log "  pod IP $(echo "$rates_direct" | median)/s, ClusterIP $(echo "$rates_cip" | median)/s"
}

phase_small() {
	log "kube-annex with bench/web and kubernetes only: connection rate"
	start_kube_annex "$OUT/kube-annex-small.log"
	wait_log "$OUT/kube-annex-small.log" "Programmed" 60 "$KA_PID"
	$KA_IN_HOST "$CONN" client "$WEB_IP" 80 0.2 1 >/dev/null ||
		{ log "no connection through the ClusterIP"; return 1; }
	val conn_small_services "$(sed -n 's/.*Programmed \([0-9]*\) of.*/\1/p' "$OUT/kube-annex-small.log")"
	val ka_small_rss_kb "$(proc_status "$KA_PID" VmRSS)"
	conn_series 1
	stop kube-annex
}

phase_create() {
	local t n want end
	log "creating $SERVICES Services + Endpoints through the API server"
	t=$(now)
	api create --services "$SERVICES" --endpoints "$ENDPOINTS" >"$OUT/create.txt"
	log "  $(cat "$OUT/create.txt")"
	want=$((SERVICES + 2)) # + bench/web + default/kubernetes
	end=$((EPOCHSECONDS + 300))
	while n=$(api count-slices) && [ "$n" -lt "$want" ]; do
		[ "$EPOCHSECONDS" -lt "$end" ] || { log "only $n of $want EndpointSlices after 300 s"; return 1; }
		sleep 1
	done
	val create_ms "$(ms_since "$t")"
	val create_detail "$(cat "$OUT/create.txt")"
	log "  $n EndpointSlices mirrored, $(($(ms_since "$t") / 1000)) s in all"
}

phase_kube_annex() {
	local logf=$OUT/kube-annex.log c0 c1 s0 s1 w0 w1 l0 l1 from
	log "kube-annex: start to ready with $SERVICES Services"
	start_kube_annex "$logf" -v
	wait_log "$logf" "Programmed" 180 "$KA_PID"
	val ka_rss_kb "$(proc_status "$KA_PID" VmRSS)"
	val ka_hwm_kb "$(proc_status "$KA_PID" VmHWM)"
	wait_quiet "$logf" 2 20 || log "kube-annex keeps logging after ready"
	"$PY" bench/report.py ka-start "$logf" "$KA_LAUNCH" >>"$VALUES"
	val ka_restorations "$(grep -c "restoring them" "$logf" || true)"
	log "  $(grep -o 'Programmed.*' "$logf" | head -1)"

	log "kube-annex: CPU over $IDLE s without changes"
	c0=$(proc_cpu_ms "$KA_PID")
	read -r s0 _ <"/proc/$KA_PID/schedstat"
	w0=$(($(proc_status "$KA_PID" voluntary_ctxt_switches) + $(proc_status "$KA_PID" nonvoluntary_ctxt_switches)))
	l0=$(wc -l <"$logf")
	sleep "$IDLE"
	c1=$(proc_cpu_ms "$KA_PID")
	read -r s1 _ <"/proc/$KA_PID/schedstat"
	w1=$(($(proc_status "$KA_PID" voluntary_ctxt_switches) + $(proc_status "$KA_PID" nonvoluntary_ctxt_switches)))
	l1=$(wc -l <"$logf")
	val ka_idle_cpu_ms $((c1 - c0))
	val ka_idle_sched_ms "$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.3f", (b - a) / 1e6}')"
	val ka_idle_wakeups $((w1 - w0))
	val ka_idle_loglines $((l1 - l0))
	log "  $((c1 - c0)) ms CPU, $((w1 - w0)) context switches"

	log "kube-annex: connection rate with $SERVICES Services"
	conn_series N

	log "kube-annex: $CHANGES endpoint changes, one every $CHANGE_INTERVAL s"
	from=$(wc -l <"$logf")
	api churn --services "$SERVICES" --endpoints "$ENDPOINTS" --count "$CHANGES" \
		--interval "$CHANGE_INTERVAL" --log "$OUT/churn-ka.log"
	sleep 1
	wait_quiet "$logf" 1 10 || true
	val ka_hwm_end_kb "$(proc_status "$KA_PID" VmHWM)"
	val ka_rss_end_kb "$(proc_status "$KA_PID" VmRSS)"
	"$PY" bench/report.py ka-churn "$logf" "$from" "$OUT/churn-ka.log" >>"$VALUES"
	log "  event->kernel p50 $(awk '$1 == "ka_churn_event_p50_ms" {print $2}' "$VALUES") ms," \
		"p99 $(awk '$1 == "ka_churn_event_p99_ms" {print $2}' "$VALUES") ms"
	stop kube-annex
	grep -o "Programming latency over.*" "$logf" | sed 's/^/bench:   /' >&2 || true
}

# ---- 6. kube-proxy -------------------------------------------------------------

kp_metric() { nsenter --net="/run/netns/$KP_NS" curl -s --max-time 5 http://127.0.0.1:10249/metrics |
	awk -v k="$1" '$1 == k {print $2}'; }

phase_kube_proxy() {
	local logf=$OUT/kube-proxy.log shim b t0 n c0 c1
	shim=$(realpath -m "$OUT/iptables-$KP_IPTABLES")
	log "kube-proxy 1.20 (iptables, $KP_IPTABLES) in $KP_NS"
	ip netns add "$KP_NS" || return 1
	ip -n "$KA_NET_NS" link add v-kproxy type veth peer name eth0 netns "$KP_NS" || return 1
	ip -n "$KA_NET_NS" link set v-kproxy master br-hosts up || return 1
	printf '%s\n' "link set lo up" "addr add $KP_IP/24 dev eth0" "link set eth0 up" \
		"route add default via $KA_ROUTER_IP" | ip -n "$KP_NS" -batch - || return 1
	# kube-proxy runs "iptables", "iptables-restore"... from PATH.
	mkdir -p "$shim"
	for b in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
		ln -sf "/usr/sbin/xtables-$KP_IPTABLES-multi" "$shim/$b"
	done
	api node --name "$KP_NS" --ip "$KP_IP" || return 1
	t0=$(now)
	PATH=$shim:$PATH nsenter --net="/run/netns/$KP_NS" "$KA_K8S_BIN/kube-proxy" \
		--kubeconfig="$KA_ADMIN_KUBECONFIG" --hostname-override="$KP_NS" --proxy-mode=iptables \
		--metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 \
		--cluster-cidr=10.244.0.0/16 --conntrack-max-per-core=0 --conntrack-min=0 \
		--conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
		--oom-score-adj=0 --v=2 --vmodule=config=4 </dev/null >"$logf" 2>&1 &
	track kube-proxy $!
	KP_PID=$!
	wait_log "$logf" "syncProxyRules took" 600 "$KP_PID" || return 1
	# The first sync is followed at once by a second (burst of 2).
	local end=$((EPOCHSECONDS + 600))
	while [ "$(grep -c "syncProxyRules took" "$logf")" -lt 2 ] && [ "$EPOCHSECONDS" -lt "$end" ]; do
		sleep 0.2
	done
	if grep -q "Sync failed" "$logf"; then
		log "kube-proxy cannot sync: $(grep -m1 -A0 "^E.*proxier" "$logf")"
		return 1
	fi
	"$PY" bench/report.py kp-syncs "$logf" >"$OUT/kp-syncs.txt"
	cat "$OUT/kp-syncs.txt" >>"$VALUES"
	val kp_ready_s "$(awk -v t0="$t0" '$1 == "kp_first_sync_end" {printf "%.3f", $2 - t0}' "$OUT/kp-syncs.txt")"
	val kp_rss_kb "$(proc_status "$KP_PID" VmRSS)"
	val kp_hwm_kb "$(proc_status "$KP_PID" VmHWM)"
	log "  first sync $(awk '$1 == "kp_first_sync_s" {print $2}' "$OUT/kp-syncs.txt") s"

	log "kube-proxy: CPU over $KP_IDLE s without changes"
	n=$(grep -c "syncProxyRules took" "$logf")
	c0=$(proc_cpu_ms "$KP_PID" children)
	sleep "$KP_IDLE"
	c1=$(proc_cpu_ms "$KP_PID" children)
	val kp_idle_cpu_ms $((c1 - c0))
	val kp_idle_syncs $(($(grep -c "syncProxyRules took" "$logf") - n))
	log "  $((c1 - c0)) ms CPU"

	log "kube-proxy: $KP_CHANGES endpoint changes, one every $KP_INTERVAL s"
	api churn --services "$SERVICES" --endpoints "$ENDPOINTS" --count "$KP_CHANGES" \
		--interval "$KP_INTERVAL" --offset 100000 --log "$OUT/churn-kp.log"
	# Done when a sync that started after the last change has finished.
	local last since
	last=$(awk 'END {printf "%.3f", $2 / 1e9}' "$OUT/churn-kp.log")
	end=$((EPOCHSECONDS + 600))
	while [ "$EPOCHSECONDS" -lt "$end" ]; do
		since=$("$PY" - "$logf" "$last" <<'EOF'
import sys
sys.path.insert(0, "bench")
import importlib.util
spec = importlib.util.spec_from_file_location("r", "bench/report.py")
r = importlib.util.module_from_spec(spec)
spec.loader.exec_module(r)
print(sum(1 for w in r.kp_sync_windows(sys.argv[1]) if w[0] > float(sys.argv[2]) + 0.2))
EOF
)
		[ "$since" -gt 0 ] && break
		sleep 0.5
	done
	"$PY" bench/report.py kp-churn "$logf" "$OUT/churn-kp.log" >>"$VALUES"
	val kp_metric_sync_count "$(kp_metric kubeproxy_sync_proxy_rules_duration_seconds_count)"
	val kp_metric_sync_sum_s "$(kp_metric kubeproxy_sync_proxy_rules_duration_seconds_sum)"
	val kp_metric_netprog_count "$(kp_metric kubeproxy_network_programming_duration_seconds_count)"
	nsenter --net="/run/netns/$KP_NS" curl -s --max-time 5 http://127.0.0.1:10249/metrics \
		>"$OUT/kube-proxy-metrics.txt" || true
	val kp_hwm_kb "$(proc_status "$KP_PID" VmHWM)"
	stop kube-proxy
	val kp_rules "$(nsenter --net="/run/netns/$KP_NS" "$shim/iptables-save" | wc -l)"
	log "  event->rules p50 $(awk '$1 == "kp_churn_event_p50_s" {print $2}' "$VALUES") s"
}

# ---- main -------------------------------------------------------------------

# A namespace of ours left by a run that was killed outright.
if [ -e "/run/netns/$KP_NS" ] && [ -z "$(ip netns pids "$KP_NS" 2>/dev/null)" ]; then
	ip netns delete "$KP_NS"
fi
machine_info
phase_cold
phase_env
phase_small
phase_create
phase_kube_annex
if [ "${BENCH_SKIP_KUBE_PROXY:-0}" != 1 ]; then
	phase_kube_proxy || log "kube-proxy phase failed; its rows stay empty (see $OUT/kube-proxy.log)"
fi
val load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
val runtime_s "$(($(ms_since "$T_START") / 1000))"
mkdir -p "$(dirname "$RESULTS")"
"$PY" bench/report.py render "$VALUES" "$RESULTS"
log "results written to $RESULTS; logs in $OUT"
