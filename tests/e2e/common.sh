# Shared by the e2e tests that run kube-annex in the "legacy host" namespace
# of tests/env/lib.sh. A test sets KA_PREFIX (and any other KA_* knob of
# lib.sh), then:
#
#   source "$(dirname "$0")/common.sh"
#
# which skips without root, brings in lib.sh and gives:
#   top BIN          the source tree, the kube-annex binary under test
#   fail ok          "FAIL: ..." (exit 1) / "ok - ..." lines
#   contains ARGS    grep -q on all of stdin (with pipefail, "producer |
#                    grep -q" fails whenever grep exits before the producer
#                    has written everything)
#   now_ms           wall clock in milliseconds
#   host_nft [FAM]   nft list table FAM kube-annex in the host namespace
#                    (default ip; fails when there is none)
#   get HOST[:PORT]  curl http://HOST[:PORT]/ from the host; the answer or ""
#   start_kube_annex ARGS...  kube-annex in the host namespace, in the
#                    background, logging to $KA_STATE/kube-annex.log; its
#                    kubeconfig is $KA_KUBECONFIG unless ARGS name another
#   stop_kube_annex  SIGTERM and wait; fails the test on a non-zero exit
# and an EXIT trap that runs the test's own e2e_cleanup (when it defines
# one), stops kube-annex, prints the log's tail on failure and tears the
# environment down.
# shellcheck shell=bash

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces, nftables)" >&2; exit 77; }

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export KA_IN_NS_EXEC=0
# shellcheck source=../env/lib.sh
source "$top/tests/env/lib.sh"
BIN=${KUBE_ANNEX_BIN:-$top/build/kube-annex}
ka_pid=""

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
contains() { local in; in=$(cat); grep -q "$@" <<<"$in"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
host_nft() { $KA_IN_HOST nft list table "${1:-ip}" kube-annex 2>/dev/null; }
get() { $KA_IN_HOST curl -s --max-time 2 "http://$1/" 2>/dev/null || true; }

start_kube_annex() {
	local kubeconfig=(--kubeconfig "$KA_KUBECONFIG")
	case " $* " in *" --kubeconfig "*) kubeconfig=() ;; esac
	$KA_IN_HOST "$BIN" "${kubeconfig[@]}" "$@" </dev/null >>"$KA_STATE/kube-annex.log" 2>&1 &
	ka_pid=$!
}
stop_kube_annex() {
	local rc=0
	kill -TERM "$ka_pid"
	wait "$ka_pid" || rc=$?
	ka_pid=""
	[ $rc -eq 0 ] || fail "kube-annex exited with status $rc on SIGTERM"
}

_e2e_finish() {
	local rc=$?
	if declare -F e2e_cleanup >/dev/null; then e2e_cleanup || rc=1; fi
	if [ -n "$ka_pid" ] && kill -0 "$ka_pid" 2>/dev/null; then
		kill -TERM "$ka_pid"; wait "$ka_pid" 2>/dev/null || true
	fi
	[ $rc -eq 0 ] || tail -30 "$KA_STATE/kube-annex.log" 2>/dev/null || true
	ka_env_down
	exit $rc
}
trap _e2e_finish EXIT
