# shellcheck shell=bash disable=SC2034 # KA_* are for the sourcing script
# kube-annex test environment: a real Kubernetes 1.20 control plane and a
# routed IPv4+IPv6 network of namespaces, all on this machine.
#
#   source tests/env/lib.sh
#   trap ka_env_down EXIT
#   ka_env_up || exit 1
#   ka_kubectl apply -f my-service.yaml
#   ka_in_host build/kube-annex --kubeconfig "$KA_KUBECONFIG" &   # $! is kube-annex
#   ka_in_host curl -s http://10.96.0.10/
#
# Topology (namespace names carry $KA_PREFIX, default "ka"):
#
#   ${P}-cp   10.99.0.1  fd00:99::1  ─┐                  ┌─ ${P}-pod1 10.244.0.11 fd00:244::11
#   ${P}-host 10.99.0.2  fd00:99::2  ─┤ br-hosts ${P}-net br-pods ├─ ${P}-pod2 10.244.0.12 fd00:244::12
#                                     │ .254 ::fe         .1 ::1  └─ ${P}-pod3 10.244.0.13 fd00:244::13
#   The router ${P}-net forwards between the two LANs and answers
#   "unreachable" for the Service CIDRs 10.96.0.0/16 and fd00:96::/112, so the
#   host reaches a ClusterIP only through kube-annex's DNAT.
#
#   ${P}-cp runs etcd (127.0.0.1:2379), kube-apiserver (:6443, all
#   addresses) and kube-controller-manager. Every pod namespace runs
#   podserver.py on $KA_POD_PORTS (answers "podN <port>").
#
# Functions (all return non-zero with a message on stderr on failure):
#   ka_env_up               create everything; exports the KA_* results below
#   ka_env_down             idempotent teardown of everything recorded
#   ka_env_load             load the KA_* results of an environment that is up
#   ka_kubectl ARGS...      kubectl as cluster-admin (runs in ${P}-cp)
#   ka_kubectl_annex ARGS...  kubectl as the kube-annex identity (runs in ${P}-host)
#   ka_api_curl ARGS... PATH  curl the API server as admin, e.g. ka_api_curl -s /readyz
#   ka_in_host CMD...       run CMD in ${P}-host; see the note below
#   ka_in_ns NS CMD...      same, for any namespace (full name or net|cp|host|podN)
#   ka_pod_start POD PORTS...  start another podserver in POD (pod1|pod2|pod3);
#                           sets KA_LAST_PID
#   ka_track PID            have ka_env_down stop PID (a process a test started)
#   ka_apiserver_stop [--kill]  stop kube-apiserver only (etcd, controller-manager
#                           stay): SIGTERM - it stops listening at once - then,
#                           as its graceful shutdown waits ~60 s for watchers, a
#                           second SIGTERM (immediate exit) after 0.5 s;
#                           --kill: SIGKILL, a crash
#   ka_apiserver_start      start it again with the same flags, wait for /readyz
#   ka_apiserver_pause / ka_apiserver_resume   SIGSTOP / SIGCONT it (hung server)
#   ka_wait_for 'CMD' [TIMEOUT_S] [WHAT]   poll CMD (eval'd) every 0.1 s
#
# ka_in_host / ka_in_ns run CMD as a child, except in a background job:
# "ka_in_host CMD &" *execs* CMD in place (nsenter enters the namespace
# without forking), so $! is CMD's own PID, and records that PID for
# ka_env_down. A background job is recognised as a subshell of the shell
# that sourced lib.sh whose stdin is /dev/null (bash gives background jobs
# /dev/null). So "ka_in_host CMD <file &" does not exec (its $! is a
# subshell), and in a subshell "( ...; ka_in_host CMD; more ) </dev/null"
# nothing after ka_in_host would run. KA_IN_NS_EXEC=1/0 forces the choice;
# "$KA_IN_HOST CMD" is a plain nsenter prefix that always execs.
#
# Results (exported, and saved in $KA_STATE/env):
#   KA_APISERVER (https://10.99.0.1:6443), KA_APISERVER6, KA_ADMIN_KUBECONFIG,
#   KA_KUBECONFIG (kube-annex's least-privilege identity, made by
#   deploy/make-kubeconfig.sh; CA in a file next to it, referenced relatively),
#   KA_CA_CERT, KA_KUBECTL, KA_NET_NS KA_CP_NS KA_HOST_NS KA_POD_NSS,
#   KA_CP_IP KA_CP_IP6 KA_HOST_IP KA_HOST_IP6 KA_ROUTER_IP KA_ROUTER_IP6,
#   KA_POD_IPS KA_POD_IP6S (space separated, pod1 first), KA_POD_GW KA_POD_GW6,
#   KA_SERVICE_CIDR KA_SERVICE_CIDR6 KA_DUAL_STACK, KA_IN_HOST, KA_STATE.
#
# Settings (environment, before ka_env_up):
#   KA_PREFIX      namespace/state prefix (default ka)
#   KA_STATE       state dir (default /run/kube-annex-test/$KA_PREFIX)
#   KA_POD_PORTS   podserver ports in every pod (default "80 443 8080 8080/udp";
#                  empty: none)
#   KA_DUAL_STACK  1 (default): IPv6DualStack gate, Service CIDRs
#                  10.96.0.0/16,fd00:96::/112; 0: IPv4 Service CIDR only
#   KA_FEATURE_GATES  extra feature gates for kube-apiserver and
#                  kube-controller-manager, comma separated, e.g.
#                  EndpointSliceTerminatingCondition=true (default: none)
#   KA_APISERVER_EXTRA_ARGS  extra kube-apiserver flags, one per word, e.g.
#                  --runtime-config=discovery.k8s.io/v1beta1=false
#   KA_KCM_CONTROLLERS  kube-controller-manager --controllers (default:
#                  serviceaccount-token,serviceaccount,endpoint,endpointslice,
#                  endpointslicemirroring,namespace,garbagecollector)
#   KA_WAIT        seconds to wait for each daemon (default 60)
#   KUBE_ANNEX_K8S_CACHE  where build-k8s.sh caches binaries
#
# Nothing here touches the root network namespace: links are created
# inside the namespaces, sysctls are set only inside them.

_KA_MAIN_PID=$BASHPID # the shell that sourced us; see ka_in_ns
KA_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KA_K8S_BIN=${KUBE_ANNEX_K8S_CACHE:-/var/cache/kube-annex-test/k8s}/bin
KA_KUBECTL=$KA_K8S_BIN/kubectl

KA_CP_IP=10.99.0.1
KA_CP_IP6=fd00:99::1
KA_HOST_IP=10.99.0.2
KA_HOST_IP6=fd00:99::2
KA_ROUTER_IP=10.99.0.254
KA_ROUTER_IP6=fd00:99::fe
KA_POD_GW=10.244.0.1
KA_POD_GW6=fd00:244::1
KA_POD_IPS="10.244.0.11 10.244.0.12 10.244.0.13"
KA_POD_IP6S="fd00:244::11 fd00:244::12 fd00:244::13"
KA_SERVICE_CIDR=10.96.0.0/16
KA_SERVICE_CIDR6=fd00:96::/112
KA_APISERVER=https://$KA_CP_IP:6443
KA_APISERVER6=https://[$KA_CP_IP6]:6443

_ka_vars() {
	KA_PREFIX=${KA_PREFIX:-ka}
	# A KA_STATE we derived from an earlier prefix follows the prefix.
	if [ -z "${KA_STATE:-}" ] || [ "${_KA_STATE_AUTO:-}" = "$KA_STATE" ]; then
		KA_STATE=/run/kube-annex-test/$KA_PREFIX
		_KA_STATE_AUTO=$KA_STATE
	fi
	KA_NET_NS=$KA_PREFIX-net
	KA_CP_NS=$KA_PREFIX-cp
	KA_HOST_NS=$KA_PREFIX-host
	KA_POD_NSS="$KA_PREFIX-pod1 $KA_PREFIX-pod2 $KA_PREFIX-pod3"
	KA_IN_HOST="nsenter --net=/run/netns/$KA_HOST_NS"
	KA_ADMIN_KUBECONFIG=$KA_STATE/admin.kubeconfig
	KA_KUBECONFIG=$KA_STATE/kube-annex/kubeconfig
	KA_CA_CERT=$KA_STATE/pki/ca.crt
	KA_POD_PORTS=${KA_POD_PORTS-80 443 8080 8080/udp}
	KA_DUAL_STACK=${KA_DUAL_STACK:-1}
	KA_WAIT=${KA_WAIT:-60}
	KA_PYTHON=${KA_PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}
}
_ka_vars

_ka_log() { echo "ka: $*" >&2; }

# Seconds since $1 (an $EPOCHREALTIME), one decimal.
_ka_since() {
	local now=${EPOCHREALTIME/./} then=${1/./}
	local ms=$(((now - then) / 1000))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# Start time of a process (field 22 of /proc/PID/stat), "" if gone.
_ka_starttime() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo "${20}"
}

# True if PID runs and is the process recorded with START (not a reused
# PID, not a zombie).
_ka_alive() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- "$2" $stat
	[ "$2" != Z ] && [ "$1" = "${21}" ]
}

_ka_record() { # NAME PID
	mkdir -p "$KA_STATE/pids"
	echo "$2 $(_ka_starttime "$2")" >"$KA_STATE/pids/$1.pid"
}

ka_track() {
	local pid=$1 start
	start=$(_ka_starttime "$pid") || { _ka_log "ka_track: no process $pid"; return 1; }
	mkdir -p "$KA_STATE/pids"
	echo "$pid $start" >>"$KA_STATE/pids/tracked.list"
}

# Stop the processes listed in the given pid files: SIGTERM; kube-apiserver,
# whose graceful shutdown waits a long time for its watchers, gets a second
# SIGTERM (= exit now) after $KA_APISERVER_GRACE_MS (default 500) ms;
# SIGKILL for whatever still runs after $KA_KILL_TIMEOUT (default 5) seconds.
# Only recorded PIDs whose start time still matches are touched; our own
# children are reaped.
_ka_stop_pidfiles() {
	local f pid start live=() p stat reterm=() t0=${EPOCHREALTIME/./}
	for f in "$@"; do
		[ -f "$f" ] || continue
		while read -r pid start _; do
			{ [ -n "$pid" ] && _ka_alive "$pid" "$start"; } || continue
			live+=("$pid:$start")
			[ "${f##*/}" = kube-apiserver.pid ] && reterm+=("$pid")
		done <"$f"
	done
	[ ${#live[@]} -gt 0 ] || return 0
	for p in "${live[@]}"; do kill -TERM "${p%%:*}" 2>/dev/null; kill -CONT "${p%%:*}" 2>/dev/null; done
	local grace_us=$((${KA_APISERVER_GRACE_MS:-500} * 1000)) kill_us=$((${KA_KILL_TIMEOUT:-5} * 1000000))
	local signal=TERM elapsed
	while :; do
		local left=()
		for p in "${live[@]}"; do
			_ka_alive "${p%%:*}" "${p#*:}" && left+=("$p")
		done
		live=("${left[@]}")
		[ ${#live[@]} -eq 0 ] && break
		elapsed=$((${EPOCHREALTIME/./} - t0))
		if [ ${#reterm[@]} -gt 0 ] && [ "$elapsed" -ge "$grace_us" ]; then
			kill -TERM "${reterm[@]}" 2>/dev/null
			reterm=()
		fi
		if [ "$signal" = TERM ] && [ "$elapsed" -ge "$kill_us" ]; then
			_ka_log "still running ${KA_KILL_TIMEOUT:-5}s after SIGTERM, sending SIGKILL: ${live[*]%%:*}"
			for p in "${live[@]}"; do kill -KILL "${p%%:*}" 2>/dev/null; done
			signal=KILL
		elif [ "$signal" = KILL ] && [ "$elapsed" -ge $((kill_us + 2000000)) ]; then
			_ka_log "could not stop: ${live[*]%%:*}"
			return 1
		fi
		sleep 0.02
	done
	for f in "$@"; do
		[ -f "$f" ] || continue
		while read -r pid _; do
			[ -n "$pid" ] || continue
			read -r stat 2>/dev/null <"/proc/$pid/stat" || continue
			stat=${stat##*) }
			[ "${stat:0:1}" = Z ] && wait "$pid" 2>/dev/null
		done <"$f"
	done
	return 0
}

_ka_our_netns() {
	local n
	for n in $(ip netns list 2>/dev/null | cut -d' ' -f1); do
		case "$n" in
		"$KA_PREFIX"-net | "$KA_PREFIX"-cp | "$KA_PREFIX"-host | "$KA_PREFIX"-pod[0-9]*) echo "$n" ;;
		esac
	done
}

# Another live run owns $KA_STATE (the same KA_PREFIX): say who, return 0.
_ka_owned_by_other() {
	local pid start
	read -r pid start 2>/dev/null <"$KA_STATE/owner" || return 1
	[ "$pid" != "$$" ] && _ka_alive "$pid" "$start" || return 1
	_ka_log "the environment $KA_PREFIX belongs to another run (PID $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)); set another KA_PREFIX to run both"
}

ka_env_down() {
	_ka_vars
	local t0=$EPOCHREALTIME rc=0 ns pids
	# Never tear down a live environment of another run.
	if _ka_owned_by_other; then
		return 1
	fi
	if [ -d "$KA_STATE/pids" ]; then
		_ka_stop_pidfiles "$KA_STATE"/pids/* || rc=1
	fi
	for ns in $(_ka_our_netns); do
		pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
		if [ -n "$pids" ]; then
			_ka_log "ka_env_down: processes not started through lib.sh are still in $ns (not killed): $pids"
			rc=1
		fi
		ip netns delete "$ns" 2>/dev/null || { _ka_log "ka_env_down: cannot delete namespace $ns"; rc=1; }
	done
	case "$KA_STATE" in
	/*/*) rm -rf -- "$KA_STATE" ;;
	*) _ka_log "ka_env_down: refusing to remove state dir '$KA_STATE'"; rc=1 ;;
	esac
	[ -n "${_KA_QUIET:-}" ] || _ka_log "ka_env_down: done in $(_ka_since "$t0") s"
	return $rc
}

ka_env_load() {
	_ka_vars
	[ -f "$KA_STATE/env" ] || { _ka_log "no environment at $KA_STATE (run ka_env_up)"; return 1; }
	# shellcheck disable=SC1091
	source "$KA_STATE/env"
}

_ka_ns_name() {
	case "$1" in
	net | cp | host | pod[0-9]*) echo "$KA_PREFIX-$1" ;;
	*) echo "$1" ;;
	esac
}

ka_in_ns() {
	local ns
	ns=$(_ka_ns_name "$1")
	shift
	[ -e "/run/netns/$ns" ] || { _ka_log "no network namespace $ns"; return 1; }
	if [ "${KA_IN_NS_EXEC:-}" = 1 ] || { [ -z "${KA_IN_NS_EXEC:-}" ] &&
		[ "$BASHPID" != "$_KA_MAIN_PID" ] && [ /dev/stdin -ef /dev/null ]; }; then
		# A background job (bash gives it /dev/null as stdin): become CMD,
		# so that $! is CMD's PID.
		local me=$BASHPID
		[ -d "$KA_STATE/pids" ] && echo "$me $(_ka_starttime "$me")" >>"$KA_STATE/pids/adhoc.list"
		exec nsenter --net="/run/netns/$ns" "$@"
	fi
	nsenter --net="/run/netns/$ns" "$@"
}

ka_in_host() { ka_in_ns "$KA_HOST_NS" "$@"; }

ka_kubectl() {
	nsenter --net="/run/netns/$KA_CP_NS" "$KA_KUBECTL" --kubeconfig="$KA_ADMIN_KUBECONFIG" \
		--cache-dir="$KA_STATE/kubectl-cache" "$@"
}

ka_kubectl_annex() {
	nsenter --net="/run/netns/$KA_HOST_NS" "$KA_KUBECTL" --kubeconfig="$KA_KUBECONFIG" \
		--cache-dir="$KA_STATE/kubectl-cache-annex" "$@"
}

ka_api_curl() {
	local path=${*: -1}
	nsenter --net="/run/netns/$KA_CP_NS" curl --cacert "$KA_CA_CERT" \
		--cert "$KA_STATE/pki/admin.crt" --key "$KA_STATE/pki/admin.key" \
		"${@:1:$#-1}" "$KA_APISERVER$path"
}

ka_wait_for() {
	local cmd=$1 timeout=${2:-$KA_WAIT} what=${3:-$1}
	local end=$((EPOCHSECONDS + timeout))
	while :; do
		eval "$cmd" >/dev/null 2>&1 && return 0
		[ "$EPOCHSECONDS" -lt "$end" ] || break
		sleep 0.1
	done
	_ka_log "timed out after ${timeout}s waiting for: $what"
	return 1
}

# _ka_daemon NAME NS CMD...: start CMD in NS, its own PID recorded, output
# appended to $KA_STATE/NAME.log.
_ka_daemon() {
	local name=$1 ns=$2
	shift 2
	nsenter --net="/run/netns/$ns" "$@" </dev/null >>"$KA_STATE/$name.log" 2>&1 &
	_ka_record "$name" $!
}

# Fail with the tail of a daemon's log.
_ka_fail_log() { # NAME MESSAGE
	_ka_log "$2; see $KA_STATE/$1.log, which ends with:"
	tail -n 15 "$KA_STATE/$1.log" 2>/dev/null | sed 's/^/    /' >&2
	return 1
}

_ka_pid_of() { # NAME -> pid if alive
	local pid start
	read -r pid start _ 2>/dev/null <"$KA_STATE/pids/$1.pid" || return 1
	_ka_alive "$pid" "$start" && echo "$pid"
}

# Fail if a control-plane daemon that was started has exited, or if the
# shell that called ka_env_up is gone.
_ka_check_daemons() { # WAITING-FOR
	local d
	# shellcheck disable=SC2086
	if [ -n "${_KA_CALLER:-}" ] && ! _ka_alive $_KA_CALLER; then
		_ka_log "the shell that called ka_env_up exited; giving up"
		return 1
	fi
	for d in etcd kube-apiserver kube-controller-manager; do
		[ -f "$KA_STATE/pids/$d.pid" ] && ! _ka_pid_of "$d" >/dev/null &&
			{ _ka_fail_log "$d" "$d exited while waiting for $1"; return 1; }
	done
	return 0
}

# Wait until CMD succeeds while daemon NAME and the control-plane daemons
# started before it stay alive.
_ka_wait_daemon() { # NAME TIMEOUT WHAT CMD...
	local name=$1 timeout=$2 what=$3
	shift 3
	local end=$((EPOCHSECONDS + timeout))
	while [ "$EPOCHSECONDS" -lt "$end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		_ka_pid_of "$name" >/dev/null || { _ka_fail_log "$name" "$name exited before $what"; return 1; }
		_ka_check_daemons "$name $what" || return 1
		sleep 0.05
	done
	_ka_fail_log "$name" "$name: no $what after ${timeout}s"
}

ka_pod_start() {
	local pod=$1 ns n name pid i
	shift
	[ $# -gt 0 ] || { _ka_log "usage: ka_pod_start POD PORT[/tcp|/udp]..."; return 2; }
	ns=$(_ka_ns_name "$pod")
	pod=${ns#"$KA_PREFIX"-}
	[ -e "/run/netns/$ns" ] || { _ka_log "ka_pod_start: no namespace $ns"; return 1; }
	for ((n = 1; ; n++)); do
		name=podserver-$pod-$n
		[ -e "$KA_STATE/pids/$name.pid" ] || break
	done
	_ka_daemon "$name" "$ns" "$KA_PYTHON" "$KA_SRC/tests/env/podserver.py" "$pod" "$@"
	_ka_wait_daemon "$name" 10 "ready line" grep -q "^podserver $pod ready" "$KA_STATE/$name.log" ||
		return 1
	KA_LAST_PID=$(_ka_pid_of "$name")
}

_ka_readyz() {
	ka_api_curl -fsS --max-time 2 /readyz
}

ka_apiserver_start() {
	local args t0=$EPOCHREALTIME
	if _ka_pid_of kube-apiserver >/dev/null; then return 0; fi
	[ -f "$KA_STATE/kube-apiserver.args" ] || { _ka_log "no environment at $KA_STATE"; return 1; }
	mapfile -t args <"$KA_STATE/kube-apiserver.args"
	echo "=== ka_apiserver_start $(date -Is)" >>"$KA_STATE/kube-apiserver.log"
	_ka_daemon kube-apiserver "$KA_CP_NS" "$KA_K8S_BIN/kube-apiserver" "${args[@]}"
	_ka_wait_daemon kube-apiserver "$KA_WAIT" "/readyz" _ka_readyz || return 1
	[ -n "${_KA_QUIET:-}" ] || _ka_log "kube-apiserver ready in $(_ka_since "$t0") s"
}

ka_apiserver_stop() { # [--kill]
	local pid
	[ -f "$KA_STATE/pids/kube-apiserver.pid" ] || return 0
	if [ "${1:-}" = --kill ]; then
		pid=$(_ka_pid_of kube-apiserver) && kill -KILL "$pid"
	fi
	_ka_stop_pidfiles "$KA_STATE/pids/kube-apiserver.pid" || return 1
	rm -f "$KA_STATE/pids/kube-apiserver.pid"
	echo "=== ka_apiserver_stop $(date -Is)" >>"$KA_STATE/kube-apiserver.log"
}

ka_apiserver_pause() {
	local pid
	pid=$(_ka_pid_of kube-apiserver) || { _ka_log "kube-apiserver is not running"; return 1; }
	kill -STOP "$pid"
}

ka_apiserver_resume() {
	local pid
	pid=$(_ka_pid_of kube-apiserver) || { _ka_log "kube-apiserver is not running"; return 1; }
	kill -CONT "$pid"
}

# ---------------------------------------------------------------- setup

_ka_prereqs() {
	[ "$(id -u)" = 0 ] || { _ka_log "ka_env_up needs root (network namespaces)"; return 1; }
	local c missing=
	for c in ip nsenter openssl curl etcd socat conntrack nft "$KA_PYTHON"; do
		command -v "$c" >/dev/null || missing+=" $c"
	done
	if [ -n "$missing" ]; then
		_ka_log "installing test dependencies (missing:$missing)"
		"$KA_SRC/scripts/install-deps.sh" test >&2 || return 1
	fi
	local b
	for b in kube-apiserver kube-controller-manager kubectl; do
		[ -x "$KA_K8S_BIN/$b" ] && continue
		_ka_log "building Kubernetes binaries (once; a few minutes)"
		"$KA_SRC/tests/env/build-k8s.sh" >&2 || { _ka_log "build-k8s.sh failed"; return 1; }
		break
	done
}

# Set net.* sysctls inside NS only: /proc/sys/net belongs to the network
# namespace of the process that opens it. (No sysctl(8): procps is not
# always installed.)
_ka_sysctls() { # NS KEY=VALUE...
	local ns=$1 kv script=
	shift
	for kv in "$@"; do
		script+="echo ${kv#*=} >/proc/sys/$(echo "${kv%%=*}" | tr . /) && "
	done
	nsenter --net="/run/netns/$ns" sh -c "${script}:"
}

_ka_net_up() {
	local ns i leaf
	for ns in "$KA_NET_NS" "$KA_CP_NS" "$KA_HOST_NS" $KA_POD_NSS; do
		ip netns add "$ns"
		# New links in these namespaces skip IPv6 DAD and ignore RAs.
		# ICMP errors are not rate-limited (default: about 1/s per peer
		# after a burst), so "unreachable" and "port unreachable" answers
		# are immediate and tests do not depend on timing.
		_ka_sysctls "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.all.accept_ra=0 \
			net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
	done
	_ka_sysctls "$KA_NET_NS" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv6.conf.default.forwarding=1

	{
		echo "link set lo up"
		echo "link add br-hosts type bridge mcast_snooping 0"
		echo "link add br-pods type bridge mcast_snooping 0"
		echo "addr add $KA_ROUTER_IP/24 dev br-hosts"
		echo "addr add $KA_ROUTER_IP6/64 dev br-hosts nodad"
		echo "addr add $KA_POD_GW/24 dev br-pods"
		echo "addr add $KA_POD_GW6/64 dev br-pods nodad"
		echo "link set br-hosts up"
		echo "link set br-pods up"
		for leaf in cp host; do
			echo "link add v-$leaf type veth peer name eth0 netns $KA_PREFIX-$leaf"
			echo "link set v-$leaf master br-hosts up"
		done
		for i in 1 2 3; do
			echo "link add v-pod$i type veth peer name eth0 netns $KA_PREFIX-pod$i"
			echo "link set v-pod$i master br-pods up"
		done
		echo "route add unreachable $KA_SERVICE_CIDR"
		echo "route add unreachable $KA_SERVICE_CIDR6"
	} | ip -n "$KA_NET_NS" -batch - || return 1

	_ka_leaf() { # NS IP4 IP6 GW4 GW6 PREFIXLEN4
		printf '%s\n' "link set lo up" "addr add $2/$6 dev eth0" "addr add $3/64 dev eth0 nodad" \
			"link set eth0 up" "route add default via $4" "route add default via $5" |
			ip -n "$1" -batch -
	}
	_ka_leaf "$KA_CP_NS" "$KA_CP_IP" "$KA_CP_IP6" "$KA_ROUTER_IP" "$KA_ROUTER_IP6" 24 || return 1
	_ka_leaf "$KA_HOST_NS" "$KA_HOST_IP" "$KA_HOST_IP6" "$KA_ROUTER_IP" "$KA_ROUTER_IP6" 24 || return 1
	local ips ip6s
	read -r -a ips <<<"$KA_POD_IPS"
	read -r -a ip6s <<<"$KA_POD_IP6S"
	for i in 1 2 3; do
		_ka_leaf "$KA_PREFIX-pod$i" "${ips[i - 1]}" "${ip6s[i - 1]}" "$KA_POD_GW" "$KA_POD_GW6" 24 || return 1
	done
}

_ka_pki() {
	local d=$KA_STATE/pki
	mkdir -p "$d"
	cat >"$d/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = @alt
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[alt]
DNS.1 = kubernetes
DNS.2 = kubernetes.default
DNS.3 = kubernetes.default.svc
DNS.4 = kubernetes.default.svc.cluster.local
DNS.5 = localhost
IP.1 = $KA_CP_IP
IP.2 = $KA_CP_IP6
IP.3 = 127.0.0.1
IP.4 = ::1
IP.5 = 10.96.0.1
IP.6 = fd00:96::1
EOF
	local k
	for k in ca apiserver admin sa; do
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$k.key" 2>/dev/null || return 1
	done
	openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub" || return 1
	openssl req -x509 -new -config "$d/openssl.cnf" -extensions ca -key "$d/ca.key" \
		-subj "/CN=kube-annex-test-ca" -days 3650 -out "$d/ca.crt" || return 1
	_ka_cert() { # NAME SUBJECT EXT
		openssl req -new -config "$d/openssl.cnf" -key "$d/$1.key" -subj "$2" |
			openssl x509 -req -CA "$d/ca.crt" -CAkey "$d/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
				-days 825 -extfile "$d/openssl.cnf" -extensions "$3" -out "$d/$1.crt" 2>/dev/null
	}
	_ka_cert apiserver "/CN=kube-apiserver" server || return 1
	_ka_cert admin "/O=system:masters/CN=kube-annex-test-admin" client || return 1
	chmod 0600 "$d"/*.key

	cat >"$KA_ADMIN_KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kube-annex-test
  cluster:
    server: $KA_APISERVER
    certificate-authority: $d/ca.crt
users:
- name: admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
contexts:
- name: admin
  context:
    cluster: kube-annex-test
    user: admin
current-context: admin
EOF
	chmod 0600 "$KA_ADMIN_KUBECONFIG"
}

_ka_etcd() {
	_ka_daemon etcd "$KA_CP_NS" etcd --name=ka --data-dir="$KA_STATE/etcd" \
		--listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
		--listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
		--initial-cluster=ka=http://127.0.0.1:2380 --initial-cluster-state=new \
		--logger=zap --log-outputs=stderr
	_ka_wait_daemon etcd "$KA_WAIT" "health" \
		nsenter --net="/run/netns/$KA_CP_NS" curl -fsS --max-time 1 http://127.0.0.1:2379/health
}

# --feature-gates=... for both daemons: IPv6DualStack with a dual-stack
# Service CIDR, then $KA_FEATURE_GATES; nothing when both are empty.
_ka_feature_gates() {
	local g=
	[ "$KA_DUAL_STACK" = 1 ] && g=IPv6DualStack=true
	[ -n "${KA_FEATURE_GATES:-}" ] && g=${g:+$g,}$KA_FEATURE_GATES
	[ -z "$g" ] || echo "--feature-gates=$g"
}

_ka_apiserver() {
	local d=$KA_STATE/pki cidr=$KA_SERVICE_CIDR gates=() extra=()
	[ "$KA_DUAL_STACK" = 1 ] && cidr=$KA_SERVICE_CIDR,$KA_SERVICE_CIDR6
	mapfile -t gates < <(_ka_feature_gates)
	read -r -a extra <<<"${KA_APISERVER_EXTRA_ARGS:-}"
	printf '%s\n' \
		--etcd-servers=http://127.0.0.1:2379 \
		--bind-address=:: --secure-port=6443 --insecure-port=0 \
		--advertise-address="$KA_CP_IP" \
		--tls-cert-file="$d/apiserver.crt" --tls-private-key-file="$d/apiserver.key" \
		--client-ca-file="$d/ca.crt" \
		--service-account-key-file="$d/sa.pub" \
		--service-account-signing-key-file="$d/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--authorization-mode=Node,RBAC \
		--service-cluster-ip-range="$cidr" "${gates[@]}" \
		--cert-dir="$d" --profiling=false --v=1 "${extra[@]}" \
		>"$KA_STATE/kube-apiserver.args"
	_KA_QUIET=1 ka_apiserver_start
}

_ka_controller_manager() {
	local d=$KA_STATE/pki gates=()
	mapfile -t gates < <(_ka_feature_gates)
	_ka_daemon kube-controller-manager "$KA_CP_NS" "$KA_K8S_BIN/kube-controller-manager" \
		--kubeconfig="$KA_ADMIN_KUBECONFIG" \
		--service-account-private-key-file="$d/sa.key" --root-ca-file="$d/ca.crt" \
		--leader-elect=false --port=0 --secure-port=0 \
		--controllers="${KA_KCM_CONTROLLERS:-serviceaccount-token,serviceaccount,endpoint,endpointslice,endpointslicemirroring,namespace,garbagecollector}" \
		"${gates[@]}" --v=1
}

# kube-annex's identity, made the way an operator makes it.
_ka_annex_identity() {
	ka_kubectl apply -f "$KA_SRC/deploy/rbac.yaml" >"$KA_STATE/rbac-apply.log" 2>&1 ||
		{ _ka_fail_log rbac-apply "kubectl apply -f deploy/rbac.yaml failed"; return 1; }
	nsenter --net="/run/netns/$KA_CP_NS" "$KA_SRC/deploy/make-kubeconfig.sh" \
		--kubectl "$KA_KUBECTL" --kubeconfig "$KA_ADMIN_KUBECONFIG" \
		--out "$KA_KUBECONFIG" --ca-file-out ca.crt --timeout "$KA_WAIT" \
		</dev/null >"$KA_STATE/make-kubeconfig.log" 2>&1 &
	local mk=$!
	while [ -e "/proc/$mk" ] && ! [ "$(cut -d' ' -f3 "/proc/$mk/stat" 2>/dev/null)" = Z ]; do
		_ka_check_daemons "deploy/make-kubeconfig.sh" || { kill "$mk" 2>/dev/null; wait "$mk" || :; return 1; }
		sleep 0.05
	done
	wait "$mk" || { _ka_fail_log make-kubeconfig "deploy/make-kubeconfig.sh failed"; return 1; }
}

_ka_write_env() {
	local v
	for v in KA_PREFIX KA_STATE KA_APISERVER KA_APISERVER6 KA_ADMIN_KUBECONFIG KA_KUBECONFIG \
		KA_CA_CERT KA_KUBECTL KA_K8S_BIN KA_NET_NS KA_CP_NS KA_HOST_NS KA_POD_NSS KA_IN_HOST \
		KA_CP_IP KA_CP_IP6 KA_HOST_IP KA_HOST_IP6 KA_ROUTER_IP KA_ROUTER_IP6 KA_POD_GW KA_POD_GW6 \
		KA_POD_IPS KA_POD_IP6S KA_SERVICE_CIDR KA_SERVICE_CIDR6 KA_DUAL_STACK KA_POD_PORTS; do
		printf 'export %s=%q\n' "$v" "${!v}"
	done >"$KA_STATE/env"
}

_ka_env_up_body() {
	local t0=$EPOCHREALTIME t times=() pod
	trap '[[ $BASH_COMMAND == return* ]] || _ka_log "ka_env_up: failed at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
	_ka_prereqs
	if _ka_owned_by_other; then return 1; fi
	_KA_QUIET=1 ka_env_down || true # leftovers of a crashed run
	rm -rf "$KA_STATE.failed"
	mkdir -p "$KA_STATE/pids"
	chmod 0700 "$KA_STATE"
	echo "$$ $(_ka_starttime $$)" >"$KA_STATE/owner"
	t=$EPOCHREALTIME
	_ka_net_up
	times+=("network $(_ka_since "$t")")
	t=$EPOCHREALTIME
	_ka_pki
	times+=("pki $(_ka_since "$t")")
	t=$EPOCHREALTIME
	_ka_etcd
	times+=("etcd $(_ka_since "$t")")
	t=$EPOCHREALTIME
	_ka_apiserver
	times+=("kube-apiserver $(_ka_since "$t")")
	t=$EPOCHREALTIME
	_ka_controller_manager
	if [ -n "$KA_POD_PORTS" ]; then
		for pod in $KA_POD_NSS; do
			# shellcheck disable=SC2086
			ka_pod_start "$pod" $KA_POD_PORTS
		done
	fi
	times+=("pods $(_ka_since "$t")")
	t=$EPOCHREALTIME
	_ka_annex_identity
	times+=("rbac+kubeconfig $(_ka_since "$t")")
	_ka_write_env
	_ka_log "ka_env_up: up in $(_ka_since "$t0") s ($(IFS=,; t="${times[*]}"; echo "${t//,/, }")); state in $KA_STATE"
}

_ka_env_up_failed() {
	rm -rf "$KA_STATE.failed"
	mkdir -p "$KA_STATE.failed"
	cp "$KA_STATE"/*.log "$KA_STATE.failed/" 2>/dev/null
	_ka_log "ka_env_up: failed; tearing down (logs kept in $KA_STATE.failed)"
	ka_env_down
}

# The work happens in a subshell with errexit; it tears down by itself on
# failure, also when the calling shell dies meanwhile (checked while it
# waits for daemons), so an interrupted ka_env_up leaves nothing behind.
ka_env_up() {
	_ka_vars
	local had_e=0 rc caller=$BASHPID caller_start
	caller_start=$(_ka_starttime "$caller")
	case $- in *e*) had_e=1 ;; esac
	set +e
	(
		_KA_CALLER="$caller $caller_start"
		trap '[ $? -eq 0 ] || _ka_env_up_failed' EXIT
		set -eEuo pipefail
		_ka_env_up_body
	)
	rc=$?
	[ $had_e = 1 ] && set -e
	[ $rc -eq 0 ] || return 1
	ka_env_load
}
