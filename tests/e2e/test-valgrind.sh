#!/usr/bin/env bash
# The daemon's normal lifecycle under valgrind against the real API server:
# start, first sync, endpoint changes, a Service deleted, SIGTERM; with
# session affinity and --service-cidr. Any memory error or definite/indirect
# leak fails the test.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces, nftables)" >&2; exit 77; }
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed (scripts/install-deps.sh test)" >&2; exit 77; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export KA_PREFIX=${KA_PREFIX:-kavg}
export KA_IN_NS_EXEC=0
source "$top/tests/env/lib.sh"
# Read all input before matching: with pipefail, "producer | grep -q" fails
# whenever grep exits before the producer has written everything.
contains() { local in; in=$(cat); grep -q "$@" <<<"$in"; }
BIN=${KUBE_ANNEX_BIN:-$top/build/kube-annex}
ka_pid=""

finish() {
	local rc=$?
	if [ -n "$ka_pid" ] && kill -0 "$ka_pid" 2>/dev/null; then
		kill -TERM "$ka_pid"; wait "$ka_pid" 2>/dev/null || true
	fi
	[ $rc -eq 0 ] || cp "$KA_STATE/valgrind.log" /tmp/valgrind-last.log 2>/dev/null || true
	ka_env_down
	exit $rc
}
trap finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
host_nft() { $KA_IN_HOST nft list table ip kube-annex 2>/dev/null; }

endpoints() { # ADDRESSES...
	local a=""
	for ip in "$@"; do a+="{ip: $ip},"; done
	ka_kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
- addresses: [${a%,}]
  ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 8080, protocol: UDP}]
EOF
}

ka_env_up
ka_kubectl create namespace shop >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
# In the second namespace, so that both retired Service watches know something.
apiVersion: v1
kind: Service
metadata: {name: other, namespace: kube-system}
spec:
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  sessionAffinity: ClientIP
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: dns, port: 53, targetPort: 8080, protocol: UDP}
EOF
endpoints 10.244.0.11

# Namespace scope, gateway mode and the Service CIDR: their code paths too.
CONF=$KA_STATE/valgrind.yaml
conf="namespaces: [shop, kube-system]
gateway: true
service-cidr: $KA_SERVICE_CIDR"
printf '%s\n' "$conf" >"$CONF"
$KA_IN_HOST valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no \
	--log-file="$KA_STATE/valgrind.log" \
	"$BIN" --kubeconfig "$KA_KUBECONFIG" --config "$CONF" -v \
	</dev/null >"$KA_STATE/kube-annex.log" 2>&1 &
ka_pid=$!
ka_wait_for 'host_nft | contains 10.244.0.11' 60 "first sync under valgrind"
# A reload to a label selector nothing matches retires both namespaces'
# Service watches for new ones (the Service goes); a reload back restores it.
printf '%s\nlabel-selector: tier=none\n' "$conf" >"$CONF"
"$BIN" --reload "$ka_pid" || fail "reload to a label selector failed"
ka_wait_for '! host_nft | contains shop/web && ! host_nft | contains kube-system/other' 60 \
	"Services gone with the selector"
printf '%s\n' "$conf" >"$CONF"
"$BIN" --reload "$ka_pid" || fail "reload back failed"
ka_wait_for 'host_nft | contains 10.244.0.11' 60 "Service back without the selector"
# A UDP flow whose endpoint is replaced below: its conntrack entry goes.
vip=$(ka_kubectl -n shop get service web -o jsonpath='{.spec.clusterIP}')
[ -n "$($KA_IN_HOST socat -T1 - "UDP:$vip:53" <<<ping 2>/dev/null)" ] || fail "no UDP answer from $vip:53"
endpoints 10.244.0.11 10.244.0.12
ka_wait_for 'host_nft | contains 10.244.0.12' 30 "endpoint added"
endpoints 10.244.0.13
ka_wait_for '! host_nft | contains 10.244.0.11' 30 "endpoint replaced"
ka_wait_for 'grep -q "Deleted 1 stale UDP conntrack entry of Service shop/web:dns" "$KA_STATE/kube-annex.log"' \
	30 "conntrack cleanup" || fail "the UDP flow's conntrack entry was not deleted"
ka_kubectl -n shop delete service web >/dev/null
ka_wait_for '! host_nft | contains shop/web' 30 "Service deleted"
kill -TERM "$ka_pid"
rc=0; wait "$ka_pid" || rc=$?
ka_pid=""
[ $rc -eq 0 ] || fail "kube-annex under valgrind exited $rc (99 = memory errors or leaks)"
[ ! -s "$KA_STATE/valgrind.log" ] || { cat "$KA_STATE/valgrind.log"; fail "valgrind reported problems"; }
ok "start, sync, reloads (scope), changes, conntrack cleanup, delete, SIGTERM under valgrind: no memory errors, no leaks"
