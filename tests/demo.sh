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

finish() {
	[ -n "$ka_pid" ] && kill -TERM "$ka_pid" 2>/dev/null && wait "$ka_pid" 2>/dev/null
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

say "Starting kube-annex on the legacy host (namespace $KA_HOST_NS) as the least-privilege ServiceAccount"
$KA_IN_HOST "$BIN" --kubeconfig "$KA_KUBECONFIG" </dev/null >"$KA_STATE/kube-annex.log" 2>&1 &
ka_pid=$!
web=$(ka_kubectl -n shop get service web -o jsonpath='{.spec.clusterIP}')
my=$(ka_kubectl -n shop get service myservice -o jsonpath='{.spec.clusterIP}')
for _ in $(seq 150); do
	ka_in_host nft list table ip kube-annex 2>/dev/null | contains "shop/myservice" && break
	sleep 0.1
done
sed 's/^/  kube-annex: /' "$KA_STATE/kube-annex.log"

say "The host's rules"
run ka_in_host nft list table ip kube-annex

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
run ka_in_host nft list tables
if ka_in_host nft list table ip kube-annex >/dev/null 2>&1; then
	echo "table ip kube-annex is still there: that is a bug" >&2
	exit 1
fi
echo "(no kube-annex table left)"
