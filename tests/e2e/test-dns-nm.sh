#!/usr/bin/env bash
# Cluster DNS on a NetworkManager host, with real systemd and a real
# NetworkManager 1.42 (Debian bookworm) managing the host's interface.
#
# The test network and the cluster DNS are those of test-dns.sh: the real
# API server, a dnsmasq in pod3 behind kube-system/kube-dns, an "upstream"
# dnsmasq on the router. The booted host's eth0 is left unconfigured and
# NetworkManager brings it up from a keyfile profile (static addresses,
# DNS server = the upstream, search domain corp.test), as on a real host;
# NetworkManager sees /sys read-only, as in any container, so it does not
# wait for udev (which never runs in the booted root).
#
# A: systemd-resolved + NetworkManager (dns=systemd-resolved, as on Ubuntu):
#    auto picks resolved mode; NetworkManager reloading or reactivating its
#    connection leaves kube-annex0 alone; stop restores resolvectl status.
# B: NetworkManager without resolved (purged), writing /etc/resolv.conf
#    itself (dns=default): auto touches nothing and names
#    --dns=networkmanager; that mode (and --dns=direct, which hands over to
#    it) turns NetworkManager's dnsmasq plugin on and sends only the cluster
#    domain to the cluster DNS; kube-dns recreated is followed; stop, and
#    kill -9 + --cleanup, leave NetworkManager's configuration, its DNS mode
#    and /etc/resolv.conf byte for byte as before; with NetworkManager
#    already running dnsmasq, auto adds just one file; NetworkManager
#    stopped, hung, or a foreign file at kube-annex's path: said, nothing
#    left behind.
set -euo pipefail

skip() { echo "SKIP: $*" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (namespaces, mounts, nftables)"
grep -qw cgroup2 /proc/filesystems || skip "kernel without cgroup2 (systemd needs it)"
grep -qw cgroup /proc/filesystems || skip "kernel without cgroup v1 (named systemd hierarchy)"
unshare --cgroup true 2>/dev/null || skip "kernel without cgroup namespaces"

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export KA_PREFIX=${KA_PREFIX:-kadnm}
export KA_IN_NS_EXEC=0
# shellcheck source=../env/lib.sh
source "$top/tests/env/lib.sh"
# shellcheck source=../env/boot.sh
source "$top/tests/env/boot.sh"
BIN=${KUBE_ANNEX_BIN:-$top/build/kube-annex}
[ -x "$BIN" ] || { echo "FAIL: $BIN missing (make)" >&2; exit 1; }
command -v dnsmasq >/dev/null || "$top/scripts/install-deps.sh" test >&2 || { echo "FAIL: cannot install dnsmasq" >&2; exit 1; }

T0=$EPOCHREALTIME
UPSTREAM_IP=$KA_ROUTER_IP
CLUSTER_DNS_POD=pod3
CLUSTER_DNS_IP=10.244.0.13
EXTERNAL_NAME=example.test
EXTERNAL_IP=192.0.2.10
NM_DNSMASQ_FILE=/etc/NetworkManager/dnsmasq.d/90-kube-annex.conf
NM_CONF_FILE=/run/NetworkManager/conf.d/90-kube-annex.conf
PHASE=A
unit_n=0
unit=""

finish() {
	local rc=$?
	set +e
	if [ $rc -ne 0 ] && [ -n "$KA_BOOT_PID" ]; then
		echo "--- kube-annex units' journal (last 40 lines)"
		ka_boot_run journalctl -o short-monotonic --no-pager -u 'kube-annex*' | tail -40
		echo "--- NetworkManager's journal (last 25 lines)"
		ka_boot_run journalctl -o short-monotonic --no-pager -u NetworkManager | tail -25
		echo "--- /etc/resolv.conf"
		ka_boot_run cat /etc/resolv.conf
	fi
	if [ $rc -ne 0 ] && [ "${KA_KEEP_ON_FAIL:-}" = 1 ]; then
		echo "KA_KEEP_ON_FAIL=1: left running (KA_PREFIX=$KA_PREFIX KA_BOOT_PID=$KA_BOOT_PID" \
			"KA_BOOT_DIR=$KA_BOOT_DIR KA_BOOT_NAME=$KA_BOOT_NAME)"
		exit $rc
	fi
	ka_boot_down
	ka_env_down
	exit $rc
}
trap finish EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
now_ms() { date +%s%3N; }
poll() { # TIMEOUT_S CONDITION
	local deadline=$(($(now_ms) + $1 * 1000))
	shift
	while [ "$(now_ms)" -lt $deadline ]; do
		eval "$*" && return 0
		sleep 0.05
	done
	return 1
}

in_host() { ka_boot_run "$@"; }
timed() {
	in_host sh -c 'a=$(date +%s%N); out=$("$@" 2>&1); rc=$?; b=$(date +%s%N);
		echo "$(((b - a) / 1000000)) $(echo "$out" | tr "\n" " ")"; exit $rc' sh "$@"
}
start_ka() { # ARGS...
	unit_n=$((unit_n + 1))
	unit=kube-annex-$unit_n
	in_host systemd-run --quiet --unit="$unit" -p Type=notify -p CollectMode=inactive-or-failed \
		-p TimeoutStartSec=30 /usr/local/sbin/kube-annex "$@" ||
		fail "systemd-run $unit failed"
}
ka_log() { in_host journalctl --no-pager -o cat -u "$1"; }
ka_active() { in_host systemctl is-active --quiet "$unit"; }
nm_prop() { # PROPERTY -> value of NetworkManager's DnsManager.PROPERTY
	in_host busctl get-property org.freedesktop.NetworkManager \
		/org/freedesktop/NetworkManager/DnsManager org.freedesktop.NetworkManager.DnsManager "$1" |
		sed 's/^s "\(.*\)"$/\1/'
}
# Everything a user would compare on a NetworkManager host: resolv.conf
# (symlink target, type, mode, bytes), every directory and file of
# NetworkManager's configuration (files with mode and hash), its runtime
# resolv.conf files, its DNS mode and whether its dnsmasq runs.
nm_state() {
	in_host sh -c 'readlink /etc/resolv.conf; stat -c "%F %a" /etc/resolv.conf; cat /etc/resolv.conf
		find /etc/NetworkManager /run/NetworkManager/conf.d -type d 2>/dev/null | sort
		find /etc/NetworkManager /run/NetworkManager/conf.d \( -type f -o -type l \) 2>/dev/null |
			sort | while read -r f; do echo "$f $(stat -c %a "$f") $(sha256sum <"$f")"; done
		cat /run/NetworkManager/resolv.conf /run/NetworkManager/no-stub-resolv.conf
		pidof dnsmasq >/dev/null && echo "dnsmasq runs" || echo "no dnsmasq"'
	echo "mode $(nm_prop Mode) rc-manager $(nm_prop RcManager)"
}
dns_counters() {
	ka_in_ns "$CLUSTER_DNS_POD" nft list table inet dnscount |
		awk '/udp dport 53/ { for (i = 1; i <= NF; i++) if ($i == "packets") u = $(i+1) }
		     /tcp dport 53/ { for (i = 1; i <= NF; i++) if ($i == "packets") t = $(i+1) }
		     END { print u + 0, t + 0 }'
}
kube_dns_apply() { # [ENDPOINT_IP]
	local subsets="subsets: []"
	[ -n "${1:-}" ] && subsets="subsets:
- addresses: [{ip: $1}]
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]"
	ka_kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: kube-dns, namespace: kube-system}
$subsets
EOF
}
kube_dns_recreate() {
	ka_kubectl -n kube-system delete service kube-dns >/dev/null
	kube_dns_apply "$CLUSTER_DNS_IP"
	dns_ip=$(ka_kubectl -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
}
dnsmasq_file_has() { in_host grep -qx "server=/cluster.local/$1" "$NM_DNSMASQ_FILE" 2>/dev/null; }
# A cluster name and an external name, as a user checks them.
check_names() { # WHAT
	local out out2
	out=$(timed getent hosts web.shop.svc.cluster.local) || fail "$1: cluster name: $out"
	[ "$(echo "${out#* }" | awk '{print $1}')" = "$cip" ] || fail "$1: cluster name: $out"
	out2=$(timed getent hosts "$EXTERNAL_NAME") || fail "$1: external name: $out2"
	grep -q "$EXTERNAL_IP" <<<"$out2" || fail "$1: external name: $out2"
	grep -q "$EXTERNAL_NAME" "$KA_STATE/cluster-dns.log" && fail "$1: the cluster DNS saw $EXTERNAL_NAME"
	# (glibc's search list makes "...cluster.local.corp.test" of a NODATA
	# answer: a corp.test name, asked upstream with or without kube-annex.)
	grep -Eq "query\[[A-Z]+\] [^ ]*cluster\.local from" "$KA_STATE/upstream-dns.log" &&
		fail "$1: a cluster name reached the upstream"
	names_ms="${out%% *}/${out2%% *}"
}

# ---------------------------------------------------------------- set up

ka_env_up || fail "the test environment did not come up (logs: $KA_STATE.failed)"
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
kube_dns_apply "$CLUSTER_DNS_IP"
cip=$(ka_kubectl -n shop get service web -o jsonpath='{.spec.clusterIP}')
dns_ip=$(ka_kubectl -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
[ -n "$cip" ] && [ -n "$dns_ip" ] || fail "no ClusterIPs allocated"

ka_in_ns "$CLUSTER_DNS_POD" nft -f - <<'EOF'
table inet dnscount {
	chain input {
		type filter hook input priority 0; policy accept;
		udp dport 53 counter
		tcp dport 53 counter
	}
}
EOF
start_dnsmasq() { # NS LOGNAME ARGS...
	local ns=$1 log=$KA_STATE/$2.log
	shift 2
	nsenter --net="/run/netns/$(_ka_ns_name "$ns")" dnsmasq -k --no-resolv --no-hosts \
		--bind-interfaces --log-queries --log-facility="$log" "$@" </dev/null >/dev/null 2>&1 &
	ka_track $!
	poll 5 'grep -q "started, version" "$log" 2>/dev/null' || fail "dnsmasq $2 did not start"
	echo $!
}
cluster_dns_pid=$(start_dnsmasq "$CLUSTER_DNS_POD" cluster-dns --listen-address="$CLUSTER_DNS_IP" \
	--local=/cluster.local/ --host-record="web.shop.svc.cluster.local,$cip")
start_dnsmasq net upstream-dns --listen-address="$UPSTREAM_IP" \
	--address="/$EXTERNAL_NAME/$EXTERNAL_IP" --local=/corp.test/ >/dev/null

# eth0 as NetworkManager finds it on a real host: there, unconfigured.
ip -n "$KA_HOST_NS" addr flush dev eth0
ip -n "$KA_HOST_NS" link set eth0 down

# The booted host: NetworkManager enabled, eth0's profile, kube-annex.
ka_boot_prepare() {
	local root=${1:?}
	mkdir -p "$root/etc/kube-annex" "$root/usr/local/sbin" \
		"$root/etc/NetworkManager/system-connections" \
		"$root/etc/systemd/system/NetworkManager.service.d"
	install -m 0755 "$BIN" "$root/usr/local/sbin/kube-annex"
	install -m 0600 "$KA_KUBECONFIG" "$root/etc/kube-annex/kubeconfig"
	install -m 0644 "$(dirname "$KA_KUBECONFIG")/ca.crt" "$root/etc/kube-annex/ca.crt"
	ln -sf /lib/systemd/system/NetworkManager.service \
		"$root/etc/systemd/system/multi-user.target.wants/NetworkManager.service"
	# A read-only /sys is NetworkManager's sign of a container: it then
	# takes devices from the kernel as they are instead of waiting for udev.
	printf '[Service]\nReadOnlyPaths=/sys\n' \
		>"$root/etc/systemd/system/NetworkManager.service.d/container.conf"
	cat >"$root/etc/NetworkManager/system-connections/uplink.nmconnection" <<EOF
[connection]
id=uplink
type=ethernet
interface-name=eth0

[ipv4]
method=manual
address1=$KA_HOST_IP/24,$KA_ROUTER_IP
dns=$UPSTREAM_IP;
dns-search=corp.test;

[ipv6]
method=manual
address1=$KA_HOST_IP6/64,$KA_ROUTER_IP6
EOF
	chmod 0600 "$root/etc/NetworkManager/system-connections/uplink.nmconnection"
	if [ "$PHASE" = B ]; then
		# A host without resolved: the package purged, as an admin would.
		dpkg --root="$root" --purge systemd-resolved >"$KA_STATE/purge.log" 2>&1 ||
			{ cat "$KA_STATE/purge.log" >&2; return 1; }
		rm -f "$root/etc/resolv.conf"
	fi
}
nm_up() { # wait for NetworkManager to have eth0 up and DNS written
	poll 30 '[ "$(in_host nmcli -g GENERAL.STATE device show eth0 2>/dev/null)" = "100 (connected)" ]' ||
		fail "NetworkManager did not bring eth0 up: $(in_host nmcli device 2>&1)"
}

# ---------------------------------------------------------------- A: resolved + NetworkManager

ka_boot_up host "/run/netns/$KA_HOST_NS" || fail "the host did not boot"
nm_up
[ "$(in_host readlink /etc/resolv.conf)" = ../run/systemd/resolve/stub-resolv.conf ] ||
	fail "A: resolv.conf is not resolved's stub"
[ "$(nm_prop Mode)" = systemd-resolved ] || fail "A: NetworkManager's DNS mode is $(nm_prop Mode)"
poll 10 'in_host resolvectl dns eth0 | grep -q "$UPSTREAM_IP"' || fail "A: NetworkManager did not give resolved eth0's DNS"
poll 10 'in_host getent hosts "$EXTERNAL_NAME" >/dev/null' || fail "A: upstream DNS not working before kube-annex"
resolved_state() { in_host sh -c 'resolvectl status --no-pager; readlink /etc/resolv.conf; cat /etc/resolv.conf'; }
before=$(resolved_state)
ok "A: NetworkManager brought eth0 up and hands its DNS ($UPSTREAM_IP, corp.test) to systemd-resolved"

start_ka
poll 5 'in_host resolvectl dns kube-annex0 2>/dev/null | grep -q "$dns_ip"' || fail "A: kube-annex0 not configured"
grep -q "DNS mode resolved (auto)" <<<"$(ka_log "$unit" 2>&1)" || fail "A: auto did not pick resolved"
check_names A
a_ms=$names_ms
in_host nmcli general reload
in_host nmcli connection up uplink >/dev/null
nm_up
sleep 0.5
in_host resolvectl dns kube-annex0 | grep -q "$dns_ip" || fail "A: NetworkManager took kube-annex0's DNS away"
in_host resolvectl domain kube-annex0 | grep -q "~cluster.local" || fail "A: NetworkManager took ~cluster.local away"
in_host resolvectl flush-caches
check_names "A after NetworkManager reloaded"
state=$(in_host nmcli -g GENERAL.STATE device show kube-annex0 2>&1) || true
ok "A: auto -> resolved; names ${a_ms} ms; NetworkManager reload + reactivation leave kube-annex0 alone (its state: $state)"
in_host systemctl stop "$unit"
after=$(resolved_state)
[ "$after" = "$before" ] || fail "A: resolver state after stop differs:\n$(diff <(echo "$before") <(echo "$after"))"
ok "A: stop restores resolvectl status and resolv.conf"
ka_boot_down || true # (not under errexit: it waits for the namespace holder)

# ---------------------------------------------------------------- B: NetworkManager alone

PHASE=B
ka_boot_up host "/run/netns/$KA_HOST_NS" || fail "the host did not boot (B)"
nm_up
rc=$(in_host cat /etc/resolv.conf)
[ "$(head -1 <<<"$rc")" = "# Generated by NetworkManager" ] && grep -qx "nameserver $UPSTREAM_IP" <<<"$rc" &&
	grep -qx "search corp.test" <<<"$rc" || fail "B: resolv.conf is not NetworkManager's:\n$rc"
[ "$(nm_prop Mode)" = default ] || fail "B: NetworkManager's DNS mode is $(nm_prop Mode)"
in_host test -L /etc/resolv.conf && fail "B: resolv.conf is a symlink"
in_host getent hosts "$EXTERNAL_NAME" >/dev/null || fail "B: upstream DNS not working before kube-annex"
# The upstream answers REFUSED for names it does not know (no servers of
# its own): glibc gives up at once; so must NetworkManager's dnsmasq.
out=$(timed getent hosts refused.example) && fail "B: refused.example resolved: $out"
refused0_ms=${out%% *}
before=$(nm_state)
ok "B: NetworkManager writes /etc/resolv.conf itself (dns=default, rc-manager $(nm_prop RcManager)), no resolved"

# --- auto: not safe without asking; says why and what to do ----------------
start_ka
sleep 0.3
log=$(ka_log "$unit")
grep -q "Cluster DNS not configured: NetworkManager writes /etc/resolv.conf" <<<"$log" ||
	fail "B: auto did not say why:\n$log"
grep -q -- "--dns=networkmanager" <<<"$log" || fail "B: auto did not name --dns=networkmanager"
in_host systemctl stop "$unit"
[ "$(nm_state)" = "$before" ] || fail "B: auto changed something:\n$(diff <(echo "$before") <(nm_state))"
ok "B: auto touches nothing, says why and names --dns=networkmanager"

# --- --dns=networkmanager ---------------------------------------------------
t=$(now_ms)
start_ka --dns=networkmanager
poll 10 'grep -q "NetworkManager.s dnsmasq: names in cluster.local go to $dns_ip" <<<"$(ka_log "$unit" 2>&1)"' ||
	fail "B: networkmanager mode not in effect:\n$(ka_log "$unit")"
apply_ms=$(($(now_ms) - t))
[ "$(nm_prop Mode)" = dnsmasq ] || fail "B: NetworkManager's DNS mode is $(nm_prop Mode)"
in_host head -1 "$NM_DNSMASQ_FILE" | grep -q "^# Generated by kube-annex" || fail "B: no marker in $NM_DNSMASQ_FILE"
dnsmasq_file_has "$dns_ip" || fail "B: $NM_DNSMASQ_FILE: $(in_host cat "$NM_DNSMASQ_FILE")"
in_host grep -qx "dns=dnsmasq" "$NM_CONF_FILE" || fail "B: $NM_CONF_FILE missing"
rc=$(in_host cat /etc/resolv.conf)
[ "$(head -1 <<<"$rc")" = "# Generated by NetworkManager" ] && grep -qx "nameserver 127.0.0.1" <<<"$rc" &&
	grep -qx "search corp.test" <<<"$rc" || fail "B: resolv.conf is not NetworkManager's dnsmasq one:\n$rc"
read -r udp0 tcp0 < <(dns_counters)
check_names B
b_ms=$names_ms
read -r udp1 tcp1 < <(dns_counters)
[ "$udp1" -gt "$udp0" ] && [ "$tcp1" -eq "$tcp0" ] || fail "B: not plain UDP: udp $udp0->$udp1, tcp $tcp0->$tcp1"
out=$(timed getent hosts refused.example) && fail "B: refused.example resolved: $out"
refused_ms=${out%% *}
[ "$refused_ms" -lt 1000 ] || fail "B: an upstream REFUSED took ${refused_ms} ms through dnsmasq (${refused0_ms} ms before)"
out=$(in_host getent hosts host.corp.test 2>&1) && fail "B: host.corp.test resolved: $out"
grep -q "query.*host.corp.test" "$KA_STATE/upstream-dns.log" || fail "B: a corp.test name did not go upstream"
out=$(in_host curl -s --max-time 3 http://web.shop.svc.cluster.local/) || true
[ "$out" = "pod1 8080" ] || fail "B: curl http://web.shop.svc.cluster.local/ answered '$out'"
ok "B: --dns=networkmanager in ${apply_ms} ms: NetworkManager runs dnsmasq, resolv.conf is still its own; cluster name/external name ${b_ms} ms (UDP), each at its own server; upstream REFUSED in ${refused_ms} ms (${refused0_ms} ms before); curl by name reaches pod1"

# --- kube-dns recreated: followed ------------------------------------------
old_ip=$dns_ip
kube_dns_recreate
[ "$dns_ip" != "$old_ip" ] || fail "B: the recreated Service got the same ClusterIP"
t=$(now_ms)
poll 5 'dnsmasq_file_has "$dns_ip"' || fail "B: $NM_DNSMASQ_FILE still has $(in_host cat "$NM_DNSMASQ_FILE")"
poll 5 'grep -q "names in cluster.local go to $dns_ip" <<<"$(ka_log "$unit" 2>&1)"' || fail "B: new IP not applied"
follow_ms=$(($(now_ms) - t))
dnsmasq_file_has "$old_ip" && fail "B: the old ClusterIP is still in $NM_DNSMASQ_FILE"
poll 5 'in_host getent hosts web.shop.svc.cluster.local >/dev/null' || fail "B: no resolution via $dns_ip"
ok "B: kube-dns recreated $old_ip -> $dns_ip: NetworkManager's dnsmasq follows in ${follow_ms} ms"

# --- the cluster DNS unreachable: other names fine --------------------------
kube_dns_apply "" # no endpoints: kube-annex rejects
poll 5 'grep -Eq "$dns_ip . (udp|17) . 53" <<<"$(in_host nft list map ip kube-annex no-endpoint-services 2>&1)"' ||
	fail "B: kube-dns without endpoints not rejected"
out=$(timed getent hosts web.shop.svc.cluster.local) && fail "B: cluster name resolved without a cluster DNS: $out"
f_ms=${out%% *}
out=$(timed getent hosts "$EXTERNAL_NAME") || fail "B: external name broken while the cluster DNS is down"
x_ms=${out%% *}
ok "B: cluster DNS unreachable: cluster name fails in ${f_ms} ms, $EXTERNAL_NAME still in ${x_ms} ms"
kube_dns_apply "$CLUSTER_DNS_IP"
poll 10 'in_host getent hosts web.shop.svc.cluster.local >/dev/null' || fail "B: cluster names did not come back"
kill "$cluster_dns_pid" # the pod's server gone, its endpoint still listed
wait "$cluster_dns_pid" 2>/dev/null || true
out=$(timed getent hosts web.shop.svc.cluster.local) && fail "B: resolved with the cluster DNS server down: $out"
f2_ms=${out%% *}
out=$(timed getent hosts "$EXTERNAL_NAME") || fail "B: external name broken while the cluster DNS server is down"
# (dnsmasq waits out the client's timeouts for a server that does not
# answer: no fail-fast here, unlike resolved mode; README says so.)
ok "B: cluster DNS server down: cluster name fails after ${f2_ms} ms (resolver timeouts), $EXTERNAL_NAME still in ${out%% *} ms"
cluster_dns_pid=$(start_dnsmasq "$CLUSTER_DNS_POD" cluster-dns --listen-address="$CLUSTER_DNS_IP" \
	--local=/cluster.local/ --host-record="web.shop.svc.cluster.local,$cip")
poll 10 'in_host getent hosts web.shop.svc.cluster.local >/dev/null' || fail "B: cluster names did not come back (server)"

# --- NetworkManager restarted: it reads the files again; kube-annex checks --
in_host systemctl restart NetworkManager
poll 10 'grep -q "NetworkManager (re)started; checking its DNS mode" <<<"$(ka_log "$unit" 2>&1)"' ||
	fail "B: NetworkManager's restart not noticed"
nm_up
poll 10 '[ "$(nm_prop Mode)" = dnsmasq ] && in_host getent hosts web.shop.svc.cluster.local >/dev/null' ||
	fail "B: no cluster names after NetworkManager restarted"
grep -q "NetworkManager's DNS mode is" <<<"$(ka_log "$unit")" && fail "B: kube-annex gave up after a restart"
ok "B: NetworkManager restarted: still dnsmasq with kube-annex's file; checked, names resolve"

# --- NetworkManager hung: Reload times out, reported, applied later ---------
in_host systemctl kill -s STOP NetworkManager
kube_dns_recreate
poll 10 'grep -q "NetworkManager: Reload: .*[Tt]ime" <<<"$(ka_log "$unit" 2>&1)"' ||
	{ in_host systemctl kill -s CONT NetworkManager; fail "B: a hung NetworkManager was not reported"; }
ka_active || { in_host systemctl kill -s CONT NetworkManager; fail "B: kube-annex exited over a hung NetworkManager"; }
grep -q "$dns_ip" <<<"$(in_host nft list map ip kube-annex service-ips 2>&1)" ||
	{ in_host systemctl kill -s CONT NetworkManager; fail "B: datapath not updated while NetworkManager hangs"; }
in_host systemctl kill -s CONT NetworkManager
t=$(now_ms)
poll 40 'grep -q "names in cluster.local go to $dns_ip" <<<"$(ka_log "$unit" 2>&1)"' ||
	fail "B: not applied after NetworkManager answered again"
poll 5 'in_host getent hosts web.shop.svc.cluster.local >/dev/null' || fail "B: no resolution after the hang"
ok "B: NetworkManager hung: Reload timed out (reported), datapath kept working, applied $(($(now_ms) - t)) ms after it answered"

# --- stop: everything as before ----------------------------------------------
in_host systemctl stop "$unit"
after=$(nm_state)
[ "$after" = "$before" ] || fail "B: state after stop differs:\n$(diff <(echo "$before") <(echo "$after"))"
grep -q "Removed kube-annex's NetworkManager DNS files" <<<"$(ka_log "$unit")" || fail "B: stop did not say what it removed"
ok "B: stop: NetworkManager's files, DNS mode (default), resolv.conf (bytes, mode, type) identical; its dnsmasq gone"

# --- --dns=direct hands over to NetworkManager --------------------------------
start_ka --dns=direct
poll 10 'grep -q "names in cluster.local go to $dns_ip" <<<"$(ka_log "$unit" 2>&1)"' || fail "B: direct: not applied"
grep -q -- "--dns=direct: NetworkManager writes /etc/resolv.conf; configuring its dnsmasq plugin" <<<"$(ka_log "$unit")" ||
	fail "B: direct did not say it works with NetworkManager"
in_host test -e /etc/resolv.conf.pre-kube-annex && fail "B: direct made a resolv.conf backup"
in_host grep -q "Generated by kube-annex" /etc/resolv.conf && fail "B: direct rewrote NetworkManager's resolv.conf"
check_names "B direct"
in_host systemctl stop "$unit"
[ "$(nm_state)" = "$before" ] || fail "B: state after direct differs:\n$(diff <(echo "$before") <(nm_state))"
ok "B: --dns=direct on NetworkManager's resolv.conf configures NetworkManager instead; stop restores it all"

# --- kill -9, then --cleanup ------------------------------------------------
start_ka --dns=networkmanager
poll 10 'grep -q "names in cluster.local go to $dns_ip" <<<"$(ka_log "$unit" 2>&1)"' || fail "B: not applied (kill -9 case)"
in_host systemctl kill -s KILL "$unit"
poll 5 '! ka_active' || fail "B: kube-annex survived SIGKILL"
in_host test -e "$NM_DNSMASQ_FILE" || fail "B: $NM_DNSMASQ_FILE vanished with the process"
[ "$(nm_prop Mode)" = dnsmasq ] || fail "B: NetworkManager left dnsmasq without a cleanup"
out=$(in_host /usr/local/sbin/kube-annex --cleanup 2>&1) || fail "B: --cleanup failed: $out"
grep -q "Removed kube-annex's NetworkManager DNS files" <<<"$out" || fail "B: --cleanup did not say so: $out"
after=$(nm_state)
[ "$after" = "$before" ] || fail "B: state after --cleanup differs:\n$(diff <(echo "$before") <(echo "$after"))"
out=$(in_host /usr/local/sbin/kube-annex --cleanup 2>&1) || fail "B: second --cleanup failed: $out"
grep -q "NetworkManager" <<<"$out" && fail "B: second --cleanup touched NetworkManager: $out"
[ "$(nm_state)" = "$before" ] || fail "B: second --cleanup changed something"
ok "B: kill -9 + --cleanup (twice): NetworkManager's configuration, DNS mode and resolv.conf identical"

# --- bad input: NetworkManager stopped; a file at our path not ours ---------
in_host systemctl stop NetworkManager
start_ka --dns=networkmanager
sleep 0.3
grep -q -- "--dns=networkmanager: the host's DNS is left alone: NetworkManager is not running" <<<"$(ka_log "$unit")" ||
	fail "B: NetworkManager stopped: no message:\n$(ka_log "$unit")"
in_host test -e "$NM_DNSMASQ_FILE" && fail "B: a file was written without NetworkManager"
in_host systemctl is-active --quiet NetworkManager && fail "B: kube-annex started NetworkManager"
in_host systemctl stop "$unit"
in_host systemctl start NetworkManager
nm_up
printf 'server=/corp.test/192.0.2.53\n' | ka_boot_write "$NM_DNSMASQ_FILE"
start_ka --dns=networkmanager
sleep 0.3
grep -q "$NM_DNSMASQ_FILE exists and is not kube-annex's" <<<"$(ka_log "$unit")" || fail "B: foreign file: no message"
in_host systemctl stop "$unit"
[ "$(in_host cat "$NM_DNSMASQ_FILE")" = "server=/corp.test/192.0.2.53" ] || fail "B: the foreign file was changed"
in_host /usr/local/sbin/kube-annex --cleanup >/dev/null 2>&1 || fail "B: --cleanup failed with a foreign file"
in_host test -e "$NM_DNSMASQ_FILE" || fail "B: --cleanup removed a file that is not kube-annex's"
in_host rm "$NM_DNSMASQ_FILE"
[ "$(nm_state)" = "$before" ] || fail "B: bad-input cases changed something:\n$(diff <(echo "$before") <(nm_state))"
ok "B: NetworkManager stopped, or someone else's file at kube-annex's path: said, nothing changed, nothing started"

# --- NetworkManager already runs dnsmasq: auto adds one file ----------------
printf '[main]\ndns=dnsmasq\n' | ka_boot_write /etc/NetworkManager/conf.d/50-dns.conf
in_host nmcli general reload conf
poll 10 '[ "$(nm_prop Mode)" = dnsmasq ] && in_host grep -qx "nameserver 127.0.0.1" /etc/resolv.conf' ||
	fail "B: NetworkManager did not switch to dnsmasq by itself"
poll 5 'in_host getent hosts "$EXTERNAL_NAME" >/dev/null' || fail "B: NetworkManager's dnsmasq does not resolve"
before2=$(nm_state)
start_ka
poll 10 'grep -q "names in cluster.local go to $dns_ip" <<<"$(ka_log "$unit" 2>&1)"' ||
	fail "B: auto with NetworkManager's dnsmasq not applied:\n$(ka_log "$unit")"
grep -q "DNS mode networkmanager (auto)" <<<"$(ka_log "$unit")" || fail "B: auto did not pick networkmanager"
in_host test -e "$NM_CONF_FILE" && fail "B: auto wrote $NM_CONF_FILE although dnsmasq already ran"
check_names "B auto"
ok "B: NetworkManager already on dnsmasq: auto adds only $NM_DNSMASQ_FILE; names ${names_ms} ms"
in_host systemctl stop "$unit"
after=$(nm_state)
[ "$after" = "$before2" ] || fail "B: state after stop differs (dnsmasq):\n$(diff <(echo "$before2") <(echo "$after"))"
ok "B: stop: NetworkManager's dnsmasq without the file, everything else identical"

journal=$(in_host journalctl --no-pager -o cat -u 'kube-annex-*')
grep -q "Sanitizer" <<<"$journal" && fail "sanitizer report:\n$(grep -A20 Sanitizer <<<"$journal" | head -60)"

echo "RESULT resolved_names_ms=$a_ms nm_apply_ms=$apply_ms nm_names_ms=$b_ms follow_ms=$follow_ms fail_ms=$f_ms,$f2_ms external_while_down_ms=$x_ms total_s=$(_ka_since "$T0")"
