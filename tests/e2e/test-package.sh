#!/usr/bin/env bash
# The package, installed and driven the way an operator does it (README,
# "Installing on a host"), in a Debian bookworm booted with systemd as
# PID 1 (tests/env/boot.sh) on the test network of a real Kubernetes 1.20
# control plane (tests/env/lib.sh):
#
#   make deb (lintian clean); apt install ./kube-annex_*.deb - offline, its
#   dependencies already in the root; the unit is skipped without a
#   kubeconfig; kubectl apply -f /usr/share/kube-annex/rbac.yaml and
#   /usr/share/kube-annex/make-kubeconfig.sh --out /etc/kube-annex/kubeconfig;
#   kube-annex --check-config; systemctl enable --now kube-annex.
#
# Then, as a user would check: STATUS line; a ClusterIP and a cluster name
# from inside the host; the table; `systemd-analyze verify` and the
# security exposure; reload (config change applied, no connection lost, a
# bad config refused); kill -9 and a SIGSTOPped daemon (watchdog) restarted
# with the rules intact; restart and a package upgrade losing no
# connection; a broken kubeconfig failing the unit once, not in a loop;
# stop and purge leaving no table, no files and the resolver as before.
set -euo pipefail

skip() { echo "SKIP: $*" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (namespaces, mounts, nftables)"
grep -qw cgroup2 /proc/filesystems || skip "kernel without cgroup2 (systemd needs it)"
grep -qw cgroup /proc/filesystems || skip "kernel without cgroup v1 (named systemd hierarchy)"
unshare --cgroup true 2>/dev/null || skip "kernel without cgroup namespaces"
unshare -n sh -c 'ip link add t0 type dummy 2>/dev/null || ip link add t0 type ifb' 2>/dev/null ||
	skip "kernel has neither the dummy nor the ifb link type"

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export KA_PREFIX=${KA_PREFIX:-kapkg}
export KA_IN_NS_EXEC=0
# shellcheck source=../env/lib.sh
source "$top/tests/env/lib.sh"
# shellcheck source=../env/boot.sh
source "$top/tests/env/boot.sh"
command -v dnsmasq >/dev/null || "$top/scripts/install-deps.sh" test >&2 ||
	{ echo "FAIL: cannot install dnsmasq" >&2; exit 1; }

T0=$EPOCHREALTIME
CLUSTER_DNS_IP=10.244.0.13 # pod3
EXTERNAL_IP=192.0.2.50
version=$(cat "$top/VERSION")
deb_name=kube-annex_${version}_$(dpkg --print-architecture).deb
loop_pid=

finish() {
	local rc=$?
	set +e
	loop_stop >/dev/null 2>&1
	if [ $rc -ne 0 ] && [ -n "$KA_BOOT_PID" ]; then
		echo "--- systemctl status kube-annex"
		ka_boot_run systemctl status --no-pager -n 0 kube-annex
		echo "--- journal of kube-annex.service (last 50 lines)"
		ka_boot_run journalctl -o short-monotonic --no-pager -u kube-annex | tail -50
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
trap 'echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2' ERR

fail() { echo -e "FAIL: $*" >&2; exit 1; }
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
prop() { in_host systemctl show -P "$1" kube-annex; }
main_pid() { prop MainPID; }
table_handle() { in_host nft -a list table ip kube-annex 2>/dev/null | sed -n '1s/.*# handle \([0-9]*\).*/\1/p'; }
no_tables() { ! grep -q kube-annex <<<"$(in_host nft list tables 2>/dev/null)"; }
services() { in_host nft list map ip kube-annex service-ips 2>&1; }
link_dns() { in_host resolvectl dns kube-annex0 2>/dev/null | sed 's/^Link [0-9]* ([^)]*): *//' | awk '{print $1}'; }
resolver_state() {
	in_host sh -c 'resolvectl status --no-pager; cat /run/systemd/resolve/resolv.conf;
		cat /run/systemd/resolve/stub-resolv.conf; ip -o link show | cut -d" " -f2;
		readlink /etc/resolv.conf; sha256sum </etc/resolv.conf'
}
journal_since() { in_host journalctl --no-pager -o cat -u kube-annex --since "@$1"; }

# Connections to the ClusterIP from inside the host, 50 a second, until
# loop_stop; it prints "attempts failures".
loop_start() {
	in_host rm -f /run/loop.stop
	in_host sh -c 'n=0; f=0; while [ ! -e /run/loop.stop ]; do
		n=$((n + 1)); curl -s --max-time 1 "http://$1/" | grep -q "^pod[12] 8080" || f=$((f + 1))
		sleep 0.02; done; echo "$n $f"' sh "$cip" >"$KA_STATE/loop.out" &
	loop_pid=$!
}
loop_stop() {
	[ -n "$loop_pid" ] || return 0
	in_host touch /run/loop.stop
	wait "$loop_pid" || true
	loop_pid=
	cat "$KA_STATE/loop.out"
}
# loop_stop, failing on any failed connection; sets loop_n.
loop_check() { # WHAT
	local n f
	loop_stop >/dev/null
	read -r n f <"$KA_STATE/loop.out" || true
	[ "${n:-0}" -gt 5 ] || fail "$1: the connection loop did not run ($n attempts)"
	[ "$f" -eq 0 ] || fail "$1: $f of $n connections to $cip failed"
	loop_n=$n
}

# ---------------------------------------------------------------- the package

t=$EPOCHREALTIME
make -C "$top" --no-print-directory deb >"$top/build/test-package-deb.log" 2>&1 ||
	{ tail -30 "$top/build/test-package-deb.log"; fail "make deb failed"; }
deb=$top/build/deb/$deb_name
[ -f "$deb" ] || fail "make deb made no $deb_name"
deb_s=$(_ka_since "$t")
ok "make deb: $deb_name, lintian clean, in $deb_s s"

# ---------------------------------------------------------------- the cluster

ka_env_up || fail "the test environment did not come up (logs: $KA_STATE.failed)"
ka_kubectl create namespace shop >/dev/null
ka_kubectl apply -f - >/dev/null <<EOF
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
metadata: {name: ext, namespace: shop}
spec:
  externalIPs: [$EXTERNAL_IP]
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: ext, namespace: shop}
subsets:
- addresses: [{ip: 10.244.0.11}]
  ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: kube-dns, namespace: kube-system}
subsets:
- addresses: [{ip: $CLUSTER_DNS_IP}]
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
EOF
cip=$(ka_kubectl -n shop get service web -o jsonpath='{.spec.clusterIP}')
dns_ip=$(ka_kubectl -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
[ -n "$cip" ] && [ -n "$dns_ip" ] || fail "no ClusterIPs allocated"
# The cluster DNS: a dnsmasq in pod3 that knows the cluster domain only.
nsenter --net="/run/netns/$KA_PREFIX-pod3" dnsmasq -k --no-resolv --no-hosts --bind-interfaces \
	--listen-address="$CLUSTER_DNS_IP" --local=/cluster.local/ \
	--host-record="web.shop.svc.cluster.local,$cip" --log-facility="$KA_STATE/cluster-dns.log" \
	</dev/null >/dev/null 2>&1 &
ka_track $!
poll 5 'grep -q "started, version" "$KA_STATE/cluster-dns.log" 2>/dev/null' || fail "dnsmasq did not start"

# ---------------------------------------------------------------- the host

ka_boot_prepare() {
	mkdir -p "$1/srv"
	cp "$deb" "$1/srv/"
}
ka_boot_up host "/run/netns/$KA_HOST_NS" || fail "the host did not boot"
before=$(resolver_state)
no_tables || fail "a kube-annex table exists before the install"

# apt install: offline (no mirror), every dependency already in the root.
out=$(in_host env DEBIAN_FRONTEND=noninteractive sh -c 'cd /srv && apt-get install -y "./$1"' sh \
	"$deb_name" 2>&1) || fail "apt install failed:\n$out"
in_host systemctl is-enabled --quiet kube-annex || fail "the unit is not enabled by the install"
[ "$(prop ActiveState)" = inactive ] && [ "$(prop ConditionResult)" = no ] ||
	fail "without a kubeconfig the unit should be skipped (ConditionPathExists), state $(prop ActiveState)"
in_host systemctl is-failed --quiet kube-annex && fail "without a kubeconfig the unit failed"
out=$(in_host kube-annex --check-config 2>&1) && fail "--check-config passed without a kubeconfig: $out"
grep -q "/etc/kube-annex/kubeconfig: cannot read" <<<"$out" || fail "--check-config: $out"
for f in /usr/sbin/kube-annex /lib/systemd/system/kube-annex.service /etc/kube-annex/config.yaml \
	/usr/share/kube-annex/rbac.yaml /usr/share/kube-annex/rbac-namespaced.yaml \
	/usr/share/kube-annex/make-kubeconfig.sh \
	/usr/share/man/man8/kube-annex.8.gz /usr/share/man/man5/kube-annex.yaml.5.gz \
	/usr/share/doc/kube-annex/copyright /usr/share/doc/kube-annex/README.md.gz; do
	in_host test -e "$f" || fail "the package did not install $f"
done
ok "apt install ./$deb_name (offline); enabled, skipped without a kubeconfig (not failed)"

# The operator's steps, with the installed files (kubectl runs where the
# admin credentials are).
ka_kubectl apply -f "$KA_BOOT_ROOT/usr/share/kube-annex/rbac.yaml" >/dev/null ||
	fail "kubectl apply -f /usr/share/kube-annex/rbac.yaml failed"
nsenter --net="/run/netns/$KA_CP_NS" "$KA_BOOT_ROOT/usr/share/kube-annex/make-kubeconfig.sh" \
	--kubectl "$KA_KUBECTL" --kubeconfig "$KA_ADMIN_KUBECONFIG" \
	--out "$KA_BOOT_ROOT/etc/kube-annex/kubeconfig" >"$KA_STATE/make-kubeconfig.log" 2>&1 ||
	fail "make-kubeconfig.sh failed: $(cat "$KA_STATE/make-kubeconfig.log")"
out=$(in_host kube-annex --check-config 2>&1) || fail "--check-config: $out"
grep -q "kubeconfig: valid (context .*, API server https://$KA_CP_IP:6443" <<<"$out" ||
	fail "--check-config said: $out"

t=$(now_ms)
in_host systemctl enable --now kube-annex || fail "systemctl enable --now kube-annex failed"
start_ms=$(($(now_ms) - t))
[ "$(prop ActiveState)" = active ] || fail "not active after enable --now: $(prop ActiveState)"
# READY=1 came after the rules and the DNS settings: both are there now.
grep -q "$cip . tcp . 80" <<<"$(services)" ||
	fail "READY=1 before the rules: $cip missing right after start"
[ "$(link_dns)" = "$dns_ip" ] || fail "READY=1 before the DNS settings: kube-annex0 has '$(link_dns)'"
status=$(prop StatusText)
grep -Eq "^[0-9,]+ services, [0-9,]+ endpoints, last sync [0-9]{2}:[0-9]{2}:[0-9]{2}; DNS resolved -> $dns_ip\$" \
	<<<"$status" || fail "STATUS line: '$status'"
grep -qF "Status: \"$status\"" <<<"$(in_host systemctl status --no-pager kube-annex)" ||
	fail "systemctl status does not show the STATUS line"
ok "systemctl enable --now: active in $start_ms ms with rules and DNS; Status: \"$status\""

out=$(in_host curl -s --max-time 3 "http://$cip/") || true
[[ "$out" == pod[12]\ 8080 ]] || fail "curl http://$cip/ answered '$out'"
in_host resolvectl flush-caches
out=$(in_host getent hosts web.shop.svc.cluster.local) || fail "getent hosts web.shop.svc.cluster.local failed"
[ "$(awk '{print $1}' <<<"$out")" = "$cip" ] || fail "getent hosts: $out"
out=$(in_host curl -s --max-time 3 http://web.shop.svc.cluster.local/) || true
[[ "$out" == pod[12]\ 8080 ]] || fail "curl http://web.shop.svc.cluster.local/ answered '$out'"
listing=$(in_host nft list table ip kube-annex)
grep -q 'comment "shop/web:http"' <<<"$listing" || fail "no shop/web:http in the table:\n$listing"
grep -q "$EXTERNAL_IP . tcp . 80" <<<"$listing" || fail "externalIP $EXTERNAL_IP not programmed"
ok "curl http://$cip/ and http://web.shop.svc.cluster.local/ reach the pods; nft list table ip kube-annex shows shop/web:http"

out=$(in_host systemd-analyze verify --man=no /lib/systemd/system/kube-annex.service 2>&1) ||
	fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify is not clean:\n$out"
exposure=$(in_host systemd-analyze security --no-pager kube-annex.service |
	sed -n 's/.*Overall exposure level for kube-annex.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "no exposure figure from systemd-analyze security"
awk -v e="$exposure" 'BEGIN { exit !(e <= 3.0) }' || fail "exposure $exposure > 3.0"
ok "systemd-analyze verify clean; systemd-analyze security: exposure $exposure"

# ---------------------------------------------------------------- reload

h0=$(table_handle)
in_host sh -c 'echo "external-ips: false" >>/etc/kube-annex/config.yaml'
since=$(date +%s)
loop_start
sleep 0.3
t=$(now_ms)
in_host systemctl reload kube-annex || fail "systemctl reload failed"
reload_ms=$(($(now_ms) - t))
# The reload's READY=1 came after the relist and the sync: applied now.
grep -q "$EXTERNAL_IP" <<<"$(services)" &&
	fail "external-ips: false not applied when systemctl reload returned"
sleep 0.3
loop_check "reload"
[ "$(table_handle)" = "$h0" ] || fail "reload replaced the table ($h0 -> $(table_handle))"
log=$(journal_since "$since")
grep -q "changed: external-ips" <<<"$log" && grep -q "Reload complete" <<<"$log" || fail "reload log:\n$log"
ok "systemctl reload (external-ips: false) applied in $reload_ms ms; same table, $loop_n connections, none failed"

# A DNS setting: the host's resolver is set up again, the Services stay.
loop_start
sleep 0.2
in_host sh -c 'echo "dns: off" >>/etc/kube-annex/config.yaml'
in_host systemctl reload kube-annex || fail "systemctl reload (dns: off) failed"
in_host ip link show kube-annex0 >/dev/null 2>&1 && fail "dns: off: kube-annex0 still there after the reload"
in_host sed -i '/^dns: off$/d' /etc/kube-annex/config.yaml
in_host systemctl reload kube-annex || fail "systemctl reload (dns back to auto) failed"
[ "$(link_dns)" = "$dns_ip" ] || fail "kube-annex0 not set up again when the reload returned: '$(link_dns)'"
sleep 0.2
loop_check "reload of the DNS settings"
ok "reload with dns: off and back: kube-annex0 removed and set up again; $loop_n connections, none failed"

pid=$(main_pid)
in_host sh -c 'echo "zone: [" >>/etc/kube-annex/config.yaml'
in_host systemctl reload kube-annex 2>/dev/null && fail "systemctl reload accepted a broken config"
[ "$(main_pid)" = "$pid" ] && [ "$(prop ActiveState)" = active ] || fail "a broken config stopped the daemon"
grep -q "config.yaml:[0-9]*: not valid YAML" <<<"$(journal_since "$since")" || fail "no message naming the file"
poll 3 'grep -q "the last reload failed" <<<"$(prop StatusText)"' || fail "STATUS does not mention the failed reload"
in_host sed -i '/^zone: \[$/d' /etc/kube-annex/config.yaml
in_host systemctl reload kube-annex || fail "reload after fixing the config failed"
ok "a broken config: systemctl reload fails with file and line in the journal, the daemon keeps running"

# ---------------------------------------------------------------- failures

h0=$(table_handle)
loop_start
sleep 0.3
pid=$(main_pid)
in_host systemctl kill --kill-who=main -s KILL kube-annex
poll 3 '[ "$(prop ActiveState)" != active ]' || fail "kube-annex survived kill -9"
grep -q "$cip" <<<"$(services)" || fail "kill -9 removed the rules"
poll 15 '[ "$(prop ActiveState)" = active ] && [ "$(main_pid)" != "$pid" ]' ||
	fail "not restarted after kill -9 (state $(prop ActiveState))"
sleep 0.3
loop_check "kill -9"
[ "$(table_handle)" = "$h0" ] || fail "the restarted daemon replaced the table instead of adopting it"
ok "kill -9: restarted by systemd, table kept and adopted; $loop_n connections, none failed"

in_host mkdir -p /etc/systemd/system/kube-annex.service.d
printf '[Service]\nWatchdogSec=2s\nRestartSec=1s\n' |
	ka_boot_write /etc/systemd/system/kube-annex.service.d/test-watchdog.conf
in_host systemctl daemon-reload
in_host systemctl restart kube-annex
pid=$(main_pid)
loop_start
in_host systemctl kill --kill-who=main -s STOP kube-annex
# RestartSec=1s: the unit shows the watchdog's result for a second.
poll 10 '[ "$(prop Result)" = watchdog ]' || fail "no watchdog timeout (Result $(prop Result))"
poll 20 '[ "$(main_pid)" != "$pid" ] && [ "$(prop ActiveState)" = active ]' ||
	fail "a stopped daemon was not restarted by the watchdog"
sleep 0.3
loop_check "watchdog"
ok "kill -STOP: watchdog timeout, restarted, rules kept; $loop_n connections, none failed"

# ---------------------------------------------------------------- restart and upgrade

h0=$(table_handle)
loop_start
sleep 0.3
in_host systemctl restart kube-annex || fail "systemctl restart failed"
sleep 0.3
loop_check "restart"
[ "$(table_handle)" = "$h0" ] || fail "restart replaced the table"
ok "systemctl restart: table kept and adopted; $loop_n connections, none failed"

pid=$(main_pid)
loop_start
sleep 0.3
out=$(in_host env DEBIAN_FRONTEND=noninteractive sh -c 'cd /srv && apt-get install -y --reinstall "./$1"' \
	sh "$deb_name" 2>&1) || fail "package upgrade (reinstall) failed:\n$out"
sleep 0.3
loop_check "package upgrade"
[ "$(main_pid)" != "$pid" ] || fail "the package upgrade did not restart the daemon"
[ "$(table_handle)" = "$h0" ] || fail "the package upgrade replaced the table"
ok "package upgrade (apt install --reinstall): restarted, table kept; $loop_n connections, none failed"

# ---------------------------------------------------------------- bad kubeconfig

in_host cp /etc/kube-annex/kubeconfig /etc/kube-annex/kubeconfig.good
in_host sh -c 'echo "users: {broken" >/etc/kube-annex/kubeconfig'
in_host systemctl restart kube-annex 2>/dev/null && fail "started with a broken kubeconfig"
sleep 2
[ "$(prop ActiveState)" = failed ] || fail "a broken kubeconfig: state $(prop ActiveState), not failed"
[ "$(prop NRestarts)" = 0 ] || fail "a broken kubeconfig was restarted $(prop NRestarts) times"
grep -q "Invalid kubeconfig: /etc/kube-annex/kubeconfig" <<<"$(in_host systemctl status --no-pager kube-annex)" ||
	fail "systemctl status does not show why"
no_tables || fail "a unit failed by its configuration left its table"
in_host mv /etc/kube-annex/kubeconfig.good /etc/kube-annex/kubeconfig
in_host systemctl reset-failed kube-annex
in_host systemctl start kube-annex || fail "no start after the kubeconfig was fixed"
ok "a broken kubeconfig: the unit fails once with the message in systemctl status (no restart loop), host clean"

# ---------------------------------------------------------------- stop and purge

in_host systemctl stop kube-annex
no_tables || fail "tables left after systemctl stop"
[ "$(resolver_state)" = "$before" ] ||
	fail "resolver state after stop differs:\n$(diff <(echo "$before") <(resolver_state))"
ok "systemctl stop: no table, kube-annex0 gone, resolver exactly as before"

in_host systemctl start kube-annex
[ "$(link_dns)" = "$dns_ip" ] || fail "no DNS settings after the start before purge"
in_host rm -rf /etc/systemd/system/kube-annex.service.d # the test's own drop-in
out=$(in_host env DEBIAN_FRONTEND=noninteractive apt-get purge -y kube-annex 2>&1) ||
	fail "apt purge failed:\n$out"
no_tables || fail "tables left after apt purge"
[ "$(resolver_state)" = "$before" ] ||
	fail "resolver state after purge differs:\n$(diff <(echo "$before") <(resolver_state))"
for f in /etc/kube-annex /usr/sbin/kube-annex /lib/systemd/system/kube-annex.service /usr/share/kube-annex \
	/etc/systemd/system/multi-user.target.wants/kube-annex.service /etc/resolv.conf.pre-kube-annex; do
	in_host test -e "$f" && fail "$f left after apt purge"
done
in_host sh -c 'grep -qx kube-annex /proc/[0-9]*/comm' 2>/dev/null && fail "a kube-annex process survived the purge"
ok "apt purge: no table, no /etc/kube-annex, no unit, resolver exactly as before"

echo "RESULT deb_build_s=$deb_s start_ms=$start_ms reload_ms=$reload_ms exposure=$exposure total_s=$(_ka_since "$T0")"
