#!/usr/bin/env bash
# Cluster DNS on the host, with real systemd and real systemd-resolved.
#
# A Debian bookworm root boots with systemd as PID 1 in the test network's
# "host" namespace (tests/env/boot.sh); its resolved uses an "upstream"
# dnsmasq on the router for everything. The cluster DNS is a dnsmasq in
# pod3 behind a real kube-system/kube-dns Service with hand-made Endpoints
# in the real API server; it knows web.shop.svc.cluster.local (the real
# ClusterIP of shop/web -> pod1:8080). kube-annex (build/kube-annex, copied
# into the root) runs there as a systemd unit against the API server.
#
# Checked as a user would: resolvectl query, getent hosts and curl by name,
# answers over UDP in milliseconds (counters at the cluster DNS), upstream
# names never reaching the cluster DNS, kube-dns recreated with a new IP,
# resolved restarted, the cluster DNS unreachable, stop and kill -9 +
# --cleanup restoring `resolvectl status` and /etc/resolv.conf exactly,
# auto mode on a host without resolved, and direct mode on a plain
# resolv.conf (rewrite, restore, other writers, bind mount, chattr +i,
# unparseable file).
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
export KA_PREFIX=${KA_PREFIX:-kadns}
export KA_IN_NS_EXEC=0
# shellcheck source=../env/lib.sh
source "$top/tests/env/lib.sh"
# shellcheck source=../env/boot.sh
source "$top/tests/env/boot.sh"
BIN=${KUBE_ANNEX_BIN:-$top/build/kube-annex}
[ -x "$BIN" ] || { echo "FAIL: $BIN missing (make)" >&2; exit 1; }
command -v dnsmasq >/dev/null || "$top/scripts/install-deps.sh" test >&2 || { echo "FAIL: cannot install dnsmasq" >&2; exit 1; }

T0=$EPOCHREALTIME
UPSTREAM_IP=$KA_ROUTER_IP        # the router also serves DNS to the host
CLUSTER_DNS_POD=pod3
CLUSTER_DNS_IP=10.244.0.13
EXTERNAL_NAME=example.test
EXTERNAL_IP=192.0.2.10
unit_n=0
unit=""

finish() {
	local rc=$?
	set +e
	if [ $rc -ne 0 ] && [ -n "$KA_BOOT_PID" ]; then
		echo "--- kube-annex units' journal (last 40 lines)"
		ka_boot_run journalctl -o short-monotonic --no-pager -u 'kube-annex*' | tail -40
		echo "--- resolvectl status"
		ka_boot_run resolvectl status
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

# Run inside the booted host.
in_host() { ka_boot_run "$@"; }
# "ms output" of a command run inside (timed there, not across nsenter).
timed() {
	in_host sh -c 'a=$(date +%s%N); out=$("$@" 2>&1); rc=$?; b=$(date +%s%N);
		echo "$(((b - a) / 1000000)) $(echo "$out" | tr "\n" " ")"; exit $rc' sh "$@"
}
rc_hash() { in_host sh -c 'readlink /etc/resolv.conf; stat -c %F:%a /etc/resolv.conf; sha256sum </etc/resolv.conf'; }
resolver_state() {
	# Everything a user would compare: resolved's view, the stub and
	# uplink files, resolv.conf (symlink target and bytes), the links.
	in_host sh -c 'resolvectl status --no-pager; cat /run/systemd/resolve/resolv.conf;
		cat /run/systemd/resolve/stub-resolv.conf; ip -o link show | cut -d" " -f2'
	rc_hash
}

# kube-annex as a transient systemd unit (Type=notify: started = synced).
start_ka() { # ARGS...
	unit_n=$((unit_n + 1))
	unit=kube-annex-$unit_n
	in_host systemd-run --quiet --unit="$unit" -p Type=notify -p CollectMode=inactive-or-failed \
		-p TimeoutStartSec=30 /usr/local/sbin/kube-annex "$@" ||
		fail "systemd-run $unit failed"
}
ka_log() { in_host journalctl --no-pager -o cat -u "$1"; }
ka_active() { in_host systemctl is-active --quiet "$unit"; }

# kube-annex0's first DNS server (the cluster DNS; the second is
# kube-annex's own fail-fast responder on the link address).
link_dns() { in_host resolvectl dns kube-annex0 2>/dev/null | sed 's/^Link [0-9]* ([^)]*): *//' | awk '{print $1}'; }

# Counters of DNS packets reaching the cluster DNS pod, by transport.
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

# The cluster DNS: knows the cluster domain only, logs every query.
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
	--address="/$EXTERNAL_NAME/$EXTERNAL_IP" >/dev/null

# The booted host: resolved as its resolver (Debian's default symlink to
# the stub), the upstream as its DNS server, kube-annex and its identity.
ka_boot_prepare() {
	local root=$1
	mkdir -p "$root/etc/systemd/resolved.conf.d" "$root/etc/kube-annex" "$root/usr/local/sbin"
	printf '[Resolve]\nDNS=%s\n' "$UPSTREAM_IP" >"$root/etc/systemd/resolved.conf.d/upstream.conf"
	install -m 0755 "$BIN" "$root/usr/local/sbin/kube-annex"
	install -m 0600 "$KA_KUBECONFIG" "$root/etc/kube-annex/kubeconfig"
	install -m 0644 "$(dirname "$KA_KUBECONFIG")/ca.crt" "$root/etc/kube-annex/ca.crt"
}
ka_boot_up host "/run/netns/$KA_HOST_NS" || fail "the host did not boot"
in_host resolvectl query "$EXTERNAL_NAME" >/dev/null || fail "upstream DNS not working before kube-annex"
[ "$(in_host readlink /etc/resolv.conf)" = ../run/systemd/resolve/stub-resolv.conf ] ||
	fail "the booted host's resolv.conf is not resolved's stub"
before=$(resolver_state)
ok "host booted with systemd-resolved (stub), upstream $UPSTREAM_IP; cluster DNS $dns_ip -> $CLUSTER_DNS_IP"

# ---------------------------------------------------------------- resolved mode

start_ka --service-cidr="$KA_SERVICE_CIDR,$KA_SERVICE_CIDR6"
poll 5 '[ "$(link_dns)" = "$dns_ip" ]' || fail "kube-annex0 never got DNS server $dns_ip"
grep -q "DNS mode resolved (auto)" <<<"$(ka_log "$unit" 2>&1)" || fail "auto did not pick resolved"
status=$(in_host resolvectl status kube-annex0)
grep -q "DNS Domain: ~cluster.local" <<<"$status" || fail "no routing domain ~cluster.local:\n$status"
grep -q "DNS Servers: $dns_ip 169.254.53.53$" <<<"$status" || fail "not the cluster DNS, then the responder:\n$status"
grep -q -- "-DefaultRoute" <<<"$status" && grep -q -- "-LLMNR" <<<"$status" && grep -q -- "-mDNS" <<<"$status" ||
	fail "kube-annex0 is a default route or has LLMNR/mDNS on:\n$status"
chain=$(in_host nft list chain ip kube-annex nat-postrouting 2>&1) || true
grep -q "ip saddr 169.254.53.53 ct status dnat masquerade" <<<"$chain" ||
	fail "no masquerade rule for kube-annex0's address: $chain"
in_host nft list table ip kube-annex >"$KA_STATE/listing.nft"
unshare -n nft -c -f "$KA_STATE/listing.nft" || fail "nft cannot parse the listing with nat-postrouting"
ok "auto -> resolved: kube-annex0 with DNS $dns_ip, ~cluster.local, DefaultRoute/LLMNR/mDNS off, masquerade rule"

read -r udp0 tcp0 < <(dns_counters)
in_host resolvectl flush-caches
out=$(timed resolvectl query web.shop.svc.cluster.local) || fail "resolvectl query failed: $out"
q_ms=${out%% *}
grep -q "web.shop.svc.cluster.local: $cip" <<<"$out" || fail "resolvectl query: $out"
in_host resolvectl flush-caches
out=$(timed getent hosts web.shop.svc.cluster.local) || fail "getent hosts failed: $out"
g_ms=${out%% *}
[ "$(echo "${out#* }" | awk '{print $1}')" = "$cip" ] || fail "getent hosts: $out"
read -r udp1 tcp1 < <(dns_counters)
[ "$q_ms" -lt 500 ] && [ "$g_ms" -lt 500 ] || fail "slow answers: resolvectl ${q_ms} ms, getent ${g_ms} ms"
[ "$udp1" -gt "$udp0" ] && [ "$tcp1" -eq "$tcp0" ] ||
	fail "not plain UDP: udp $udp0->$udp1, tcp $tcp0->$tcp1 packets at the cluster DNS"
ok "resolvectl query ${q_ms} ms, getent hosts ${g_ms} ms -> $cip; $((udp1 - udp0)) UDP, 0 TCP packets at the cluster DNS"

# --service-cidr: reverse lookups of ClusterIPs go to the cluster DNS too
# (dnsmasq's --host-record answers the PTR), other reverse zones do not.
grep -q "~96.10.in-addr.arpa" <<<"$status" && grep -q "0.0.6.9.0.0.0.0.d.f.ip6.arpa" <<<"$status" ||
	fail "no reverse zones of the Service CIDRs on kube-annex0:\n$status"
in_host resolvectl flush-caches
out=$(timed resolvectl query "$cip") || fail "reverse lookup of $cip failed: $out"
grep -q "web.shop.svc.cluster.local" <<<"$out" || fail "reverse lookup of $cip: $out"
grep -q "96.10.in-addr.arpa" "$KA_STATE/upstream-dns.log" && fail "a Service CIDR reverse lookup leaked to the upstream"
ok "reverse zones ~96.10.in-addr.arpa and the IPv6 one: $cip -> web.shop.svc.cluster.local in ${out%% *} ms, via the cluster DNS"

out=$(in_host curl -s --max-time 3 http://web.shop.svc.cluster.local/) || true
[ "$out" = "pod1 8080" ] || fail "curl http://web.shop.svc.cluster.local/ answered '$out'"
ok "curl http://web.shop.svc.cluster.local/ reaches pod1"

in_host resolvectl flush-caches
out=$(timed resolvectl query "$EXTERNAL_NAME") || fail "external name failed: $out"
x_ms=${out%% *}
grep -q "$EXTERNAL_IP" <<<"$out" || fail "external name: $out"
out=$(in_host getent hosts "$EXTERNAL_NAME") || fail "getent external failed"
grep -q "$EXTERNAL_IP" <<<"$out" || fail "getent external: $out"
grep -q "$EXTERNAL_NAME" "$KA_STATE/cluster-dns.log" && fail "the cluster DNS saw a query for $EXTERNAL_NAME"
grep -q "query.*$EXTERNAL_NAME" "$KA_STATE/upstream-dns.log" || fail "the upstream never saw $EXTERNAL_NAME"
grep -q "cluster.local" "$KA_STATE/upstream-dns.log" && fail "a cluster name leaked to the upstream"
ok "$EXTERNAL_NAME via the upstream (${x_ms} ms), never at the cluster DNS; no cluster name at the upstream"

# --- kube-dns recreated with a new ClusterIP: followed ---------------------
ka_kubectl -n kube-system delete service kube-dns >/dev/null
kube_dns_apply "$CLUSTER_DNS_IP"
new_ip=$(ka_kubectl -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
[ "$new_ip" != "$dns_ip" ] || fail "the recreated Service got the same ClusterIP"
t=$(now_ms)
poll 5 '[ "$(link_dns)" = "$new_ip" ]' || fail "kube-annex0 still has $(link_dns), not $new_ip"
follow_ms=$(($(now_ms) - t))
in_host resolvectl flush-caches
poll 5 'in_host getent hosts web.shop.svc.cluster.local >/dev/null' ||
	fail "cluster name does not resolve through the new ClusterIP $new_ip"
ok "kube-dns recreated $dns_ip -> $new_ip: followed in ${follow_ms} ms, names resolve"
dns_ip=$new_ip

# --- resolved restarted: applied again -------------------------------------
in_host systemctl restart systemd-resolved
poll 5 '[ "$(link_dns)" = "$dns_ip" ]' || fail "settings not back after resolved restarted"
grep -q "~cluster.local" <<<"$(in_host resolvectl status kube-annex0 2>&1)" || fail "routing domain lost after restart"
grep -q "systemd-resolved (re)started" <<<"$(ka_log "$unit" 2>&1)" || fail "no log of the re-apply"
poll 5 'in_host getent hosts web.shop.svc.cluster.local >/dev/null' || fail "no resolution after resolved restart"
ok "systemd-resolved restarted: kube-annex0 settings applied again"

# --- a kube-dns without ClusterIP: said, nothing changed --------------------
ka_kubectl -n kube-system delete service kube-dns >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  clusterIP: None
  ports: [{name: dns, port: 53, protocol: UDP}]
EOF
poll 5 'grep -q "kube-system/kube-dns has no ClusterIP" <<<"$(ka_log "$unit" 2>&1)"' ||
	fail "a headless kube-dns was not reported"
[ "$(link_dns)" = "$dns_ip" ] || fail "a headless kube-dns changed kube-annex0's server"
ka_active || fail "kube-annex exited over a headless kube-dns"
ka_kubectl -n kube-system delete service kube-dns >/dev/null
kube_dns_apply "$CLUSTER_DNS_IP"
dns_ip=$(ka_kubectl -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
poll 5 '[ "$(link_dns)" = "$dns_ip" ]' || fail "kube-dns back with a ClusterIP not followed"
ok "kube-dns without ClusterIP: reported, DNS kept as it was; followed again when it has one"

# --- resolved hangs: calls time out, reported, applied once it answers ------
in_host systemctl kill -s STOP systemd-resolved
ka_kubectl -n kube-system delete service kube-dns >/dev/null
kube_dns_apply "$CLUSTER_DNS_IP"
dns_ip=$(ka_kubectl -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
poll 10 'grep -q "systemd-resolved refused the settings of kube-annex0: .*time" <<<"$(ka_log "$unit" 2>&1)"' ||
	{ in_host systemctl kill -s CONT systemd-resolved; fail "a hung resolved was not reported"; }
ka_active || { in_host systemctl kill -s CONT systemd-resolved; fail "kube-annex exited over a hung resolved"; }
grep -q "$dns_ip" <<<"$(in_host nft list map ip kube-annex service-ips 2>&1)" ||
	{ in_host systemctl kill -s CONT systemd-resolved; fail "datapath not updated while resolved hangs"; }
in_host systemctl kill -s CONT systemd-resolved
t=$(now_ms)
poll 40 '[ "$(link_dns)" = "$dns_ip" ]' || fail "settings not applied after resolved answered again"
ok "resolved hung: timeouts reported, datapath kept working, applied $(($(now_ms) - t)) ms after it answered again"

# --- the cluster DNS unreachable: cluster names fail fast, others fine ------
kube_dns_apply "" # no endpoints: kube-annex rejects
poll 5 'grep -Eq "$dns_ip . (udp|17) . 53" <<<"$(in_host nft list map ip kube-annex no-endpoint-services 2>&1)"' ||
	fail "kube-dns without endpoints not rejected"
in_host resolvectl flush-caches
out=$(timed getent hosts web.shop.svc.cluster.local) && fail "cluster name resolved without a cluster DNS: $out"
f_ms=${out%% *}
[ "$f_ms" -lt 1000 ] || fail "cluster name failed slowly: ${f_ms} ms"
out=$(timed getent hosts "$EXTERNAL_NAME") || fail "external name broken while the cluster DNS is down"
ok "kube-dns without endpoints: cluster name fails in ${f_ms} ms, $EXTERNAL_NAME still in ${out%% *} ms"
kube_dns_apply "$CLUSTER_DNS_IP"
kill "$cluster_dns_pid" # the pod's server gone, its endpoint still listed
wait "$cluster_dns_pid" 2>/dev/null || true
in_host resolvectl flush-caches
poll 5 'grep -Eq "$dns_ip . (udp|17) . 53" <<<"$(in_host nft list map ip kube-annex service-ips 2>&1)"' || fail "endpoints not back"
out=$(timed getent hosts web.shop.svc.cluster.local) && fail "resolved with the cluster DNS server down: $out"
f2_ms=${out%% *}
[ "$f2_ms" -lt 1000 ] || fail "cluster name failed slowly with the server down: ${f2_ms} ms"
out=$(timed getent hosts "$EXTERNAL_NAME") || fail "external name broken while the cluster DNS server is down"
ok "cluster DNS server down: cluster name fails in ${f2_ms} ms, $EXTERNAL_NAME still in ${out%% *} ms"
cluster_dns_pid=$(start_dnsmasq "$CLUSTER_DNS_POD" cluster-dns --listen-address="$CLUSTER_DNS_IP" \
	--local=/cluster.local/ --host-record="web.shop.svc.cluster.local,$cip")
t=$(now_ms)
poll 10 'in_host getent hosts web.shop.svc.cluster.local >/dev/null' ||
	fail "cluster names did not come back with the cluster DNS"
ok "cluster DNS back: names resolve again after $(($(now_ms) - t)) ms (the responder does not stick)"

# --- stop: everything as before --------------------------------------------
in_host systemctl stop "$unit"
after=$(resolver_state)
[ "$after" = "$before" ] || fail "resolver state after stop differs:\n$(diff <(echo "$before") <(echo "$after"))"
grep -q kube-annex <<<"$(in_host nft list tables 2>&1)" && fail "tables left after stop"
ok "stop: resolvectl status, resolv.conf, stub/uplink files identical; kube-annex0 and tables gone"

# --- kill -9, then --cleanup: the same --------------------------------------
start_ka
poll 5 '[ "$(link_dns)" = "$dns_ip" ]' || fail "second start: kube-annex0 not configured"
in_host systemctl kill -s KILL "$unit"
poll 5 '! ka_active' || fail "kube-annex survived SIGKILL"
[ "$(link_dns)" = "$dns_ip" ] || fail "kube-annex0 vanished with the process (expected it left behind)"
out=$(in_host /usr/local/sbin/kube-annex --cleanup 2>&1) || fail "--cleanup failed: $out"
grep -q "Deleted link kube-annex0" <<<"$out" || fail "--cleanup did not report the link: $out"
after=$(resolver_state)
[ "$after" = "$before" ] || fail "resolver state after --cleanup differs:\n$(diff <(echo "$before") <(echo "$after"))"
in_host /usr/local/sbin/kube-annex --cleanup >/dev/null 2>&1 || fail "second --cleanup failed"
[ "$(resolver_state)" = "$before" ] || fail "second --cleanup changed something"
ok "kill -9 + --cleanup (twice): resolver state identical to before"

# --- two link addresses (IPv4 + IPv6): both masqueraded, both responders ----
start_ka --dns-link-address=169.254.53.53,fd00:53::53
poll 5 '[ "$(link_dns)" = "$dns_ip" ]' || fail "dual-address link not configured"
servers=$(in_host resolvectl dns kube-annex0)
grep -q "$dns_ip 169.254.53.53 fd00:53::53" <<<"$servers" || fail "dual-address servers: $servers"
chain=$(in_host nft list chain ip6 kube-annex nat-postrouting 2>&1) || true
grep -q "ip6 saddr fd00:53::53 ct status dnat masquerade" <<<"$chain" || fail "no ip6 masquerade: $chain"
in_host nft list table ip6 kube-annex >"$KA_STATE/listing6.nft"
unshare -n nft -c -f "$KA_STATE/listing6.nft" || fail "nft cannot parse the ip6 listing"
in_host resolvectl flush-caches
in_host getent hosts web.shop.svc.cluster.local >/dev/null || fail "dual-address link: no resolution"
in_host systemctl stop "$unit"
[ "$(resolver_state)" = "$before" ] || fail "resolver state after the dual-address run differs"
ok "--dns-link-address IPv4+IPv6: both on kube-annex0, both masqueraded, both responders; restored on stop"

# ---------------------------------------------------------------- without resolved

in_host systemctl disable --quiet --now systemd-resolved
in_host systemctl mask --quiet systemd-resolved
start_ka
sleep 0.3
log=$(ka_log "$unit")
grep -q "Cluster DNS not configured: systemd-resolved is not available" <<<"$log" ||
	fail "auto without resolved did not say why:\n$log"
grep -q -- "--dns=direct" <<<"$log" || fail "auto without resolved did not name a remedy"
in_host ip link show kube-annex0 >/dev/null 2>&1 && fail "auto without resolved created kube-annex0"
[ "$(in_host readlink /etc/resolv.conf)" = ../run/systemd/resolve/stub-resolv.conf ] ||
	fail "auto without resolved touched resolv.conf"
in_host systemctl stop "$unit"
ok "auto without resolved: nothing touched; says why and what to do"

# ---------------------------------------------------------------- direct mode

# A plain host: resolv.conf a regular file pointing at the upstream.
plain=$'# plain resolv.conf\nnameserver '"$UPSTREAM_IP"$'\nsearch example.test\noptions edns0\n'
printf '%s' "$plain" | ka_boot_write /etc/resolv.conf.new
in_host mv -f /etc/resolv.conf.new /etc/resolv.conf
in_host chmod 0644 /etc/resolv.conf
plain_state=$(rc_hash)
start_ka --dns=direct
grep -q "^# Generated by kube-annex" <<<"$(in_host head -1 /etc/resolv.conf 2>&1)" || fail "direct: no marker"
rc=$(in_host cat /etc/resolv.conf)
[ "$(grep -m1 ^nameserver <<<"$rc")" = "nameserver $dns_ip" ] || fail "direct: cluster DNS not first:\n$rc"
grep -q "^nameserver $UPSTREAM_IP" <<<"$rc" || fail "direct: original server dropped:\n$rc"
grep -q "^search svc.cluster.local cluster.local example.test$" <<<"$rc" || fail "direct: search:\n$rc"
[ "$(in_host cat /etc/resolv.conf.pre-kube-annex)" = "$(printf '%s' "$plain")" ] || fail "direct: backup differs"
out=$(timed getent hosts web.shop.svc.cluster.local) || fail "direct: cluster name: $out"
grep -q "$cip" <<<"$out" || fail "direct: cluster name: $out"
out2=$(timed getent hosts "$EXTERNAL_NAME") || fail "direct: external name: $out2"
ok "direct: cluster DNS first, originals kept, search added; cluster name ${out%% *} ms, $EXTERNAL_NAME ${out2%% *} ms"
in_host systemctl stop "$unit"
[ "$(rc_hash)" = "$plain_state" ] || fail "direct: resolv.conf not restored byte for byte"
in_host test -e /etc/resolv.conf.pre-kube-annex && fail "direct: backup left behind"
ok "direct: stop restores resolv.conf byte for byte (mode too), no backup left"

# Another writer (a DHCP hook) replaces the file while kube-annex runs.
start_ka --dns=direct
dhcp=$'nameserver 10.99.0.253\nnameserver '"$UPSTREAM_IP"$'\n'
printf '%s' "$dhcp" | ka_boot_write /etc/resolv.conf.dhcp
in_host mv -f /etc/resolv.conf.dhcp /etc/resolv.conf
poll 5 'in_host grep -q "^# Generated by kube-annex" /etc/resolv.conf' || fail "direct: other writer not noticed"
in_host grep -q "^nameserver 10.99.0.253" /etc/resolv.conf || fail "direct: the new server was not kept"
grep -q "Another program rewrote" <<<"$(ka_log "$unit" 2>&1)" || fail "direct: no log about the other writer"
in_host systemctl stop "$unit"
[ "$(in_host cat /etc/resolv.conf)" = "$(printf '%s' "$dhcp")" ] || fail "direct: stop did not restore the other writer's file"
ok "direct: another writer's file is taken as the original, cluster DNS put first again, theirs restored on stop"

# kill -9, someone else rewrites, --cleanup keeps theirs.
start_ka --dns=direct
in_host systemctl kill -s KILL "$unit"
poll 5 '! ka_active' || fail "kube-annex survived SIGKILL"
printf '%s' "$plain" | ka_boot_write /etc/resolv.conf.other
in_host mv -f /etc/resolv.conf.other /etc/resolv.conf
in_host /usr/local/sbin/kube-annex --cleanup >/dev/null 2>&1 || fail "--cleanup failed"
[ "$(rc_hash)" = "$plain_state" ] || fail "--cleanup touched a file that is no longer ours"
in_host test -e /etc/resolv.conf.pre-kube-annex && fail "--cleanup left the stale backup"
ok "direct: after kill -9 and another writer, --cleanup keeps theirs and drops the stale backup"

# A bind-mounted resolv.conf (containers, ProtectSystem=): rewritten in place.
printf '%s' "$plain" | ka_boot_write /run/bind-resolv.conf
in_host mount --bind /run/bind-resolv.conf /etc/resolv.conf
start_ka --dns=direct
grep -q "in place" <<<"$(ka_log "$unit" 2>&1)" || fail "direct on a bind mount: not written in place"
in_host grep -q "^nameserver $dns_ip" /run/bind-resolv.conf || fail "direct on a bind mount: file not rewritten"
in_host systemctl stop "$unit"
[ "$(in_host cat /etc/resolv.conf)" = "$(printf '%s' "$plain")" ] || fail "direct on a bind mount: not restored"
in_host umount /etc/resolv.conf
ok "direct on a bind-mounted resolv.conf: rewritten and restored in place"

# Bad input: an immutable file, an unparseable file. Nothing changes.
if in_host chattr +i /etc/resolv.conf 2>/dev/null; then
	start_ka --dns=direct
	grep -q "immutable" <<<"$(ka_log "$unit" 2>&1)" || fail "chattr +i: no message"
	in_host systemctl stop "$unit"
	in_host chattr -i /etc/resolv.conf
	[ "$(rc_hash)" = "$plain_state" ] || fail "chattr +i: file changed"
	ok "direct: an immutable resolv.conf is refused with a message and left alone"
else
	echo "note: chattr +i unsupported on this root's file system; immutable case not run"
fi
printf 'nameserver not-an-address\n' | ka_boot_write /etc/resolv.conf.bad
in_host mv -f /etc/resolv.conf.bad /etc/resolv.conf
bad=$(rc_hash)
start_ka --dns=direct
grep -q "not an IP address" <<<"$(ka_log "$unit" 2>&1)" || fail "unparseable resolv.conf: no message"
in_host test -e /etc/resolv.conf.pre-kube-annex && fail "unparseable resolv.conf: a backup was made"
ka_active || fail "kube-annex exited over an unparseable resolv.conf"
grep -q "$cip" <<<"$(in_host nft list map ip kube-annex service-ips 2>&1)" || fail "datapath not working meanwhile"
in_host systemctl stop "$unit"
[ "$(rc_hash)" = "$bad" ] || fail "unparseable resolv.conf was changed"
ok "direct: an unparseable resolv.conf is refused with a message, nothing changed, datapath works"

# A sanitizer build (KUBE_ANNEX_BIN) reports into the journal.
journal=$(in_host journalctl --no-pager -o cat -u 'kube-annex-*')
grep -q "Sanitizer" <<<"$journal" && fail "sanitizer report:\n$(grep -A20 Sanitizer <<<"$journal" | head -60)"

echo "RESULT resolvectl_ms=$q_ms getent_ms=$g_ms external_ms=$x_ms follow_ms=$follow_ms fail_fast_ms=$f_ms,$f2_ms total_s=$(_ka_since "$T0")"
