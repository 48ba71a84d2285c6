#!/usr/bin/env bash
# Run every e2e test (each one brings up and tears down its own real
# environment). Needs root; without it each test reports SKIP.
set -u
here=$(cd "$(dirname "$0")" && pwd)
fail=0 skip=0 n=0
for t in "$here"/env-smoke.sh "$here"/test-*.sh; do
	[ -f "$t" ] || continue
	n=$((n + 1))
	echo "=== e2e: $(basename "$t")"
	start=$(date +%s)
	bash "$t"
	rc=$?
	case $rc in
	0) echo "=== PASS $(basename "$t") ($(($(date +%s) - start)) s)" ;;
	77) skip=$((skip + 1)); echo "=== SKIP $(basename "$t")" ;;
	*) fail=$((fail + 1)); echo "=== FAIL $(basename "$t") (exit $rc)" ;;
	esac
done
echo "e2e: $n tests, $fail failed, $skip skipped"
[ $fail -eq 0 ] || exit 1
if [ $skip -ne 0 ] && [ -n "${CI:-}" ]; then
	echo "e2e: skips are not allowed under CI" >&2
	exit 1
fi
