#!/usr/bin/env bash
# Run the unit-test binaries; exit status 77 from a binary means SKIP and
# must carry a reason on stderr. Any unexpected skip fails under CI.
set -u
fail=0 skip=0
for t in "$@"; do
	echo "== $t"
	"$t"
	rc=$?
	case $rc in
	0) ;;
	77) skip=$((skip + 1)); echo "SKIP: $t" ;;
	*) fail=$((fail + 1)); echo "FAIL: $t (exit $rc)" ;;
	esac
done
echo "unit: $# binaries, $fail failed, $skip skipped"
[ $fail -eq 0 ] || exit 1
if [ $skip -ne 0 ] && [ -n "${CI:-}" ]; then
	echo "unit: skips are not allowed under CI" >&2
	exit 1
fi
