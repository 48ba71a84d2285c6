#!/usr/bin/env bash
# Gateway mode and masquerading, against the real API server with real
# traffic. A third namespace, ${KA_PREFIX}-lan, is a legacy box that cannot
# run kube-annex: its only route is via the host namespace.
#
#   ${P}-lan 10.98.0.2 fd00:98::2 --veth-- lan0 10.98.0.1 fd00:98::1 ${P}-host
#                                                 (10.99.0.2, fd00:99::2)
#
# The router ${P}-net has no route to 10.98.0.0/24: a pod can answer the
# lan box only if the host masquerades its connection. Checks:
#   - the host's own connections reach the pod with the host's real address
#     (10.99.0.2 / fd00:99::2), with gateway mode off and on;
#   - --gateway while the host does not forward: warned at start, in status;
#   - without gateway mode (forwarding on) the lan box times out: its packet
#     leaves by the host's default route to the router, whose "unreachable"
#     answer has no route back;
#   - with gateway mode (turned on by a reload) it reaches the ClusterIP over
#     IPv4 and IPv6, the pod sees the host's address, a Service without
#     endpoints is refused at once, an unknown port too;
#   - a reload with gateway: false removes the prerouting chain again.
set -euo pipefail

export KA_PREFIX=${KA_PREFIX:-kagw}
source "$(dirname "$0")/common.sh"
LAN_NS=$KA_PREFIX-lan
LAN_IP=10.98.0.2
LAN_IP6=fd00:98::2
LAN_GW=10.98.0.1
LAN_GW6=fd00:98::1
root_rules_before=$(nft list ruleset 2>/dev/null | md5sum)

# Ours, not lib.sh's: deleting the namespace deletes both veth ends.
e2e_cleanup() {
	if ip netns list | cut -d' ' -f1 | grep -qx "$LAN_NS"; then
		ip netns delete "$LAN_NS"
	fi
}
IN_LAN="nsenter --net=/run/netns/$LAN_NS"
# curl URL from the host or the lan box: prints the answer, or nothing
host_get() { $KA_IN_HOST curl -s --max-time 2 "$1" 2>/dev/null || true; }
lan_get() { $IN_LAN curl -s --max-time 2 "$1" 2>/dev/null || true; }
# curl from the lan box: "EXIT MS" (curl's exit status, time taken)
lan_try() {
	local t0 rc=0
	t0=$(now_ms)
	$IN_LAN curl -s --max-time 2 "$1" >/dev/null 2>&1 || rc=$?
	echo "$rc $(($(now_ms) - t0))"
}
cip() { ka_kubectl -n gw get service "$1" -o jsonpath="{.spec.clusterIPs[${2:-0}]}"; }
forwarding() { # 0|1, in the host namespace only
	_ka_sysctls "$KA_HOST_NS" net.ipv4.ip_forward="$1" net.ipv6.conf.all.forwarding="$1"
}
CONF=$KA_STATE/gateway.yaml
SOCK=$KA_STATE/control
write_config() { # true|false
	cat >"$CONF" <<EOF
gateway: $1
dns: off
control-socket: $SOCK
service-cidr: [$KA_SERVICE_CIDR, "$KA_SERVICE_CIDR6"]
EOF
}
# --reload PID sends SIGHUP and waits for the daemon's answer. "plain": a
# shell of the same cgroup sends a plain kill -HUP, as an operator would from
# the terminal kube-annex runs in; it gets no answer, and must survive.
reload() { # true|false [plain]: rewrite the file, reload, wait for the change
	local out
	write_config "$1"
	if [ "${2:-}" = plain ]; then
		out=$(bash -c 'kill -HUP "$1" && sleep 0.5 && echo alive' _ "$ka_pid" 2>&1) || true
		[ "$out" = alive ] || fail "the shell that sent kill -HUP did not survive: '$out'"
	else
		"$BIN" --reload "$ka_pid" || fail "kube-annex --reload $ka_pid failed"
	fi
	if [ "$1" = true ]; then
		ka_wait_for '$KA_IN_HOST nft list chain ip6 kube-annex nat-prerouting >/dev/null 2>&1' 15 \
			"gateway chains after reload"
	else
		ka_wait_for '! $KA_IN_HOST nft list chain ip kube-annex nat-prerouting >/dev/null 2>&1 &&
			! $KA_IN_HOST nft list chain ip6 kube-annex nat-prerouting >/dev/null 2>&1' 15 \
			"gateway chains gone after reload"
	fi
	# Services are staged again after the rebuild.
	ka_wait_for 'host_nft ip6 | contains "gw/web:http"' 15 "Services programmed after reload"
}
status() { $KA_IN_HOST "$BIN" status --control-socket "$SOCK" 2>&1 || true; }

ka_env_up
[ "${KA_DUAL_STACK:-1}" = 1 ] || fail "the environment has no dual-stack Service CIDR"

# --- the legacy box: routes only via the host namespace --------------------
ip netns add "$LAN_NS"
_ka_sysctls "$LAN_NS" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
	net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
ip -n "$KA_HOST_NS" link add lan0 type veth peer name eth0 netns "$LAN_NS"
ip -n "$KA_HOST_NS" -batch - <<EOF
addr add $LAN_GW/24 dev lan0
addr add $LAN_GW6/64 dev lan0 nodad
link set lan0 up
EOF
ip -n "$LAN_NS" -batch - <<EOF
link set lo up
addr add $LAN_IP/24 dev eth0
addr add $LAN_IP6/64 dev eth0 nodad
link set eth0 up
route add default via $LAN_GW
route add default via $LAN_GW6
EOF
forwarding 0
# Nothing listens on the host's port 9: "refused" (curl exit 7) proves the link.
ka_wait_for '[ "$(lan_try "http://$LAN_GW:9/" | cut -d" " -f1)" = 7 ] &&
	[ "$(lan_try "http://[$LAN_GW6]:9/" | cut -d" " -f1)" = 7 ]' 10 "the lan box reaching the host"

ka_kubectl create namespace gw >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: gw}
spec:
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: gw}
subsets:
- addresses: [{ip: 10.244.0.11}, {ip: "fd00:244::12"}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: gw}
spec:
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{name: http, port: 80}]
EOF
web4=$(cip web 0); web6=$(cip web 1); empty4=$(cip empty 0); empty6=$(cip empty 1)
[[ $web6 == *:* && $empty6 == *:* ]] || fail "dual-stack Services got no IPv6 ClusterIP"

# --- gateway mode on, but the host does not forward --------------------------
write_config true
$KA_IN_HOST "$BIN" --kubeconfig "$KA_KUBECONFIG" --config "$CONF" </dev/null \
	>>"$KA_STATE/kube-annex.log" 2>&1 &
ka_pid=$!
ka_wait_for 'host_nft ip6 | contains "gw/web:http"' 30 "Services programmed"
grep -q "Gateway mode is on, but this host does not forward IPv4 (net.ipv4.ip_forward = 0)" \
	"$KA_STATE/kube-annex.log" || fail "no warning at start about IPv4 forwarding being off"
grep -q "does not forward IPv6 (net.ipv6.conf.all.forwarding = 0)" "$KA_STATE/kube-annex.log" ||
	fail "no warning at start about IPv6 forwarding being off"
out=$(status)
contains "gateway mode: on, also for connections routed through this host (this host forwards NOT IPv4, NOT IPv6)" <<<"$out" ||
	fail "status does not show gateway mode without forwarding:\n$out"
contains "gateway mode: this host does not forward IPv4 (net.ipv4.ip_forward = 0)" <<<"$out" ||
	fail "status has no warning about forwarding:\n$out"
contains ": degraded" <<<"$out" || fail "status is not degraded with forwarding off:\n$out"
ok "--gateway without forwarding: warned at start (IPv4 and IPv6), status degraded with the sysctl named"

# --- off by reload (a plain kill -HUP): the gateway chains go ---------------------
reload false plain
for f in ip ip6; do
	if host_nft $f | contains "chain nat-prerouting\|chain filter-forward\|fib saddr"; then
		fail "gateway: false left gateway rules in $f kube-annex"
	fi
done
status | contains "gateway mode: off (this host's own connections only)" || fail "status does not show gateway mode off"
ok "reload by a plain kill -HUP (the sending shell lives) with gateway: false: nat-prerouting, filter-forward and the masquerade rule are gone (ip, ip6)"

# --- the host's own connections keep its address ----------------------------
[ "$(host_get "http://$web4/client")" = "pod1 8080 $KA_HOST_IP" ] ||
	fail "host -> $web4: want 'pod1 8080 $KA_HOST_IP', got '$(host_get "http://$web4/client")'"
[ "$(host_get "http://[$web6]/client")" = "pod2 8080 $KA_HOST_IP6" ] ||
	fail "host -> [$web6]: want 'pod2 8080 $KA_HOST_IP6', got '$(host_get "http://[$web6]/client")'"
ok "host -> ClusterIP: the pods see the host's own address ($KA_HOST_IP, $KA_HOST_IP6)"

# --- forwarding on, gateway mode off: the lan box times out ---------------------
forwarding 1
read -r rc4 ms4 <<<"$(lan_try "http://$web4/")"
read -r rc6 ms6 <<<"$(lan_try "http://[$web6]/")"
[ "$rc4" = 28 ] && [ "$rc6" = 28 ] ||
	fail "lan box -> ClusterIP without gateway mode: curl exit $rc4 / $rc6, want 28 (timeout)"
ok "without gateway mode, the lan box times out on $web4 and [$web6] (curl exit 28 after ${ms4} / ${ms6} ms)"

# --- gateway mode on by reload --------------------------------------------------
reload true
for f in ip ip6; do
	host_nft $f | contains "chain nat-prerouting" || fail "$f: no nat-prerouting chain"
	host_nft $f | contains "fib saddr type != local masquerade" || fail "$f: no masquerade rule"
done
got=$(lan_get "http://$web4/client")
[ "$got" = "pod1 8080 $KA_HOST_IP" ] || fail "lan box -> $web4: want 'pod1 8080 $KA_HOST_IP', got '$got'"
got=$(lan_get "http://[$web6]/client")
[ "$got" = "pod2 8080 $KA_HOST_IP6" ] || fail "lan box -> [$web6]: want 'pod2 8080 $KA_HOST_IP6', got '$got'"
ok "gateway mode: the lan box reaches $web4 and [$web6]; the pods see the host ($KA_HOST_IP, $KA_HOST_IP6), not $LAN_IP"

# TCP gets a reset, in both families: over IPv6, Linux gives up on an ICMPv6
# "port unreachable" only when it answers the SYN's retransmission, a second
# later. "At once" here means before that retransmission.
read -r rc4 ms4 <<<"$(lan_try "http://$empty4/")"
read -r rc6 ms6 <<<"$(lan_try "http://[$empty6]/")"
[ "$rc4" = 7 ] && [ "$rc6" = 7 ] ||
	fail "lan box -> Service without endpoints: curl exit $rc4 / $rc6, want 7 (refused)"
[ "$ms4" -lt 1000 ] && [ "$ms6" -lt 1000 ] || fail "no-endpoint rejection took $ms4 / $ms6 ms"
t0=$(now_ms); rc=0
$KA_IN_HOST curl -s --max-time 2 "http://[$empty6]/" >/dev/null 2>&1 || rc=$?
msh=$(($(now_ms) - t0))
[ $rc = 7 ] && [ $msh -lt 1000 ] || fail "host -> [$empty6]: curl exit $rc after $msh ms, want 7 at once"
read -r rcp msp <<<"$(lan_try "http://$web4:1234/")"
[ "$rcp" = 7 ] && [ "$msp" -lt 1000 ] || fail "lan box -> unknown port of $web4: curl exit $rcp after $msp ms"
ok "gateway mode: no endpoints refused in $ms4 / $ms6 ms (IPv4 / IPv6; the host's own IPv6: $msh ms), an unknown port in $msp ms"
host_nft ip | contains "ip daddr 10.96.0.0/16 drop" || fail "no unallocated-ClusterIP drop rule"
host_nft ip | grep -A8 "chain filter-forward" | contains "10.96.0.0/16 drop" ||
	fail "filter-forward lacks the unallocated-ClusterIP drop"

[ "$(host_get "http://$web4/client")" = "pod1 8080 $KA_HOST_IP" ] ||
	fail "gateway mode: host -> $web4 not from $KA_HOST_IP: '$(host_get "http://$web4/client")'"
[ "$(host_get "http://[$web6]/client")" = "pod2 8080 $KA_HOST_IP6" ] ||
	fail "gateway mode: host -> [$web6] not from $KA_HOST_IP6"
ok "gateway mode: the host's own connections still arrive from $KA_HOST_IP / $KA_HOST_IP6"

out=$(status)
contains "gateway mode: on, also for connections routed through this host (this host forwards IPv4, IPv6)" <<<"$out" ||
	fail "status does not show gateway mode with forwarding:\n$out"
if contains "does not forward" <<<"$out"; then fail "status still warns about forwarding:\n$out"; fi
$KA_IN_HOST "$BIN" explain --control-socket "$SOCK" gw/web 2>&1 |
	contains "gateway mode: also for machines routing through this host" || fail "explain does not mention gateway mode"
ok "status: gateway mode on, forwarding IPv4 and IPv6, no warning; explain mentions it"

# --- and off again ---------------------------------------------------------------
reload false
read -r rc4 ms4 <<<"$(lan_try "http://$web4/")"
[ "$rc4" = 28 ] || fail "after gateway: false the lan box still gets curl exit $rc4 from $web4"
ok "reload with gateway: false: prerouting chain gone, the lan box times out again"

[ "$(nft list ruleset 2>/dev/null | md5sum)" = "$root_rules_before" ] ||
	fail "the root namespace's nftables ruleset changed"
ok "root namespace ruleset untouched"
