#!/usr/bin/env bash
# `make demo`: a real control plane in namespaces, example Services, and
# kube-annex running on a "legacy host" namespace, shown at work. Everything
# is torn down at the end (also on failure or Ctrl-C).
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (network namespaces, nftables)" >&2; exit 1; }

top=$(cd "$(dirname "$0")/.." && pwd)
export KA_PREFIX=${KA_PREFIX:-kademo}
source "$top/tests/env/lib.sh"
# Read all input before matching: with pipefail, "producer | grep -q" fails
# whenever grep exits before the producer has written everything.
contains() { local in; in=$(cat); grep -q "$@" <<<"$in"; }
BIN=$top/build/kube-annex
export KA_IN_NS_EXEC=0
ka_pid=""

dns_pid=""
finish() {
	[ -n "$ka_pid" ] && kill -TERM "$ka_pid" 2>/dev/null && wait "$ka_pid" 2>/dev/null
	[ -n "$dns_pid" ] && kill -TERM "$dns_pid" 2>/dev/null && wait "$dns_pid" 2>/dev/null
	ka_env_down
}
trap finish EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Bringing up etcd, kube-apiserver and kube-controller-manager (Kubernetes 1.20, built from Debian's source package)"
ka_env_up

say "Applying example Services (selector-less, hand-made Endpoints)"
ka_kubectl apply -f "$top/deploy/examples/demo.yaml"
ka_kubectl -n shop get services,endpoints

web=$(ka_kubectl -n shop get service web -o jsonpath='{.spec.clusterIP}')

say "A stand-in cluster DNS (dnsmasq in pod3) behind kube-system/kube-dns"
ka_kubectl apply -f - <<EOF2
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
- addresses: [{ip: 10.244.0.13}]
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
EOF2
nsenter --net="/run/netns/$KA_PREFIX-pod3" dnsmasq -k --no-resolv --no-hosts --port 53 \
	--listen-address 10.244.0.13 --bind-interfaces \
	--host-record="web.shop.svc.cluster.local,$web" </dev/null >"$KA_STATE/dnsmasq.log" 2>&1 &
dns_pid=$!

# The legacy host gets a private copy of /etc (a mount namespace of its
# own): kube-annex's opt-in direct mode rewrites its resolv.conf (and keeps
# a backup next to it) and restores it on stop; the machine's own /etc is
# never touched.
mkdir -p "$KA_STATE/host-etc"
cp -a /etc/. "$KA_STATE/host-etc/"
say "Starting kube-annex on the legacy host (namespace $KA_HOST_NS) as the least-privilege ServiceAccount"
unshare --mount --propagation private sh -c \
	'mount --bind "$0" /etc && exec nsenter --net="/run/netns/$1" "$2" --kubeconfig "$3" --dns=direct' \
	"$KA_STATE/host-etc" "$KA_HOST_NS" "$BIN" "$KA_KUBECONFIG" \
	</dev/null >"$KA_STATE/kube-annex.log" 2>&1 &
ka_pid=$!
# Run a command on the legacy host: its network and its resolv.conf.
on_host() { nsenter -t "$ka_pid" -m -n "$@"; }
my=$(ka_kubectl -n shop get service myservice -o jsonpath='{.spec.clusterIP}')
for _ in $(seq 150); do
	ka_in_host nft list table ip kube-annex 2>/dev/null | contains "shop/myservice" && break
	sleep 0.1
done
sed 's/^/  kube-annex: /' "$KA_STATE/kube-annex.log"

say "The host's rules"
run ka_in_host nft list table ip kube-annex

say "The host's resolver: cluster names through the cluster DNS, the rest as before"
run on_host cat /etc/resolv.conf
run on_host getent hosts web.shop.svc.cluster.local
run on_host curl -s --max-time 2 http://web.shop.svc.cluster.local/

say "Connections from the host to ClusterIPs"
for i in 1 2 3 4; do run ka_in_host curl -s --max-time 2 "http://$web/"; done
run ka_in_host curl -s --max-time 2 "http://$my:9999/"
run ka_in_host curl -s --max-time 2 "http://$my:8888/"

say "Scaling: removing 10.244.0.11 from shop/web"
ka_kubectl -n shop patch endpoints web --type=json \
	-p '[{"op":"remove","path":"/subsets/0/addresses/0"}]' >/dev/null
sleep 0.5
for i in 1 2 3; do run ka_in_host curl -s --max-time 2 "http://$web/"; done

say "Stopping kube-annex: the host is left as it was"
kill -TERM "$ka_pid"; wait "$ka_pid" || true; ka_pid=""
cmp -s /etc/resolv.conf "$KA_STATE/host-etc/resolv.conf" && [ ! -e "$KA_STATE/host-etc/resolv.conf.pre-kube-annex" ] &&
	echo "(the legacy host's resolv.conf is restored byte for byte, no backup left)" ||
	{ echo "the legacy host's resolv.conf was not restored: that is a bug" >&2; exit 1; }
run ka_in_host nft list tables
if ka_in_host nft list table ip kube-annex >/dev/null 2>&1; then
	echo "table ip kube-annex is still there: that is a bug" >&2
	exit 1
fi
echo "(no kube-annex table left)"
