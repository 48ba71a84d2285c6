#!/usr/bin/env bash
# The RPM: `make rpm` builds it with Debian's rpmbuild and checks it with
# rpmlint (no errors); here its file list, config files and scriptlets are
# checked as rpm reports them (rpm -qlp, --configfiles, --scripts).
set -euo pipefail

skip() { echo "SKIP: $*" >&2; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
if ! command -v rpmbuild >/dev/null || ! command -v rpmlint >/dev/null; then
	[ "$(id -u)" -eq 0 ] || skip "rpmbuild and rpmlint are not installed (root installs them)"
fi

fail() { echo -e "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

version=$(cat "$top/VERSION")
t0=$(date +%s%N)
make -C "$top" --no-print-directory rpm >"$top/build/test-rpm.log" 2>&1 ||
	{ tail -30 "$top/build/test-rpm.log"; fail "make rpm failed"; }
build_s=$(awk -v d=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.1f", d / 1e9 }')
rpm_file=$(ls "$top"/build/rpm/RPMS/*/kube-annex-"$version"-1*.rpm)
srpm=$(ls "$top"/build/rpm/SRPMS/kube-annex-"$version"-1*.src.rpm)
[ -f "$rpm_file" ] && [ -f "$srpm" ] || fail "no binary or source RPM"
grep -q ' 0 errors' "$top/build/rpm/lint.log" || fail "rpmlint: $(tail -1 "$top/build/rpm/lint.log")"
ok "make rpm: $(basename "$rpm_file") and $(basename "$srpm") in $build_s s; rpmlint: $(grep -o '[0-9]* errors, [0-9]* warnings' "$top/build/rpm/lint.log")"

expected="/etc/kube-annex
/etc/kube-annex/config.yaml
/usr/lib/systemd/system/kube-annex.service
/usr/sbin/kube-annex
/usr/share/doc/kube-annex-$version
/usr/share/doc/kube-annex-$version/README.md
/usr/share/kube-annex
/usr/share/kube-annex/dns-direct.conf
/usr/share/kube-annex/make-kubeconfig.sh
/usr/share/kube-annex/rbac-namespaced.yaml
/usr/share/kube-annex/rbac.yaml
/usr/share/licenses/kube-annex-$version
/usr/share/licenses/kube-annex-$version/COPYING
/usr/share/man/man5/kube-annex.yaml.5.gz
/usr/share/man/man8/kube-annex.8.gz"
# The build-id links rpm adds for the binary are its business.
files=$(rpm -qlp "$rpm_file" | grep -v '^/usr/lib/\.build-id' | sort)
[ "$files" = "$expected" ] || fail "file list differs:\n$(diff <(echo "$expected") <(echo "$files"))"
ok "rpm -qlp: binary, unit in %{_unitdir}, config, RBAC files, man pages, README, COPYING"

flags=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" | grep ' /etc/kube-annex/config.yaml$')
[ "$(rpm -qp --configfiles "$rpm_file")" = /etc/kube-annex/config.yaml ] && [[ "$flags" == *c*n*\ * ]] ||
	fail "config.yaml is not %config(noreplace): '$flags'"
perms=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm_file")
grep -q '^-rwxr-xr-x /usr/sbin/kube-annex$' <<<"$perms" &&
	grep -q '^-rwxr-xr-x /usr/share/kube-annex/make-kubeconfig.sh$' <<<"$perms" ||
	fail "modes:\n$perms"
ok "config.yaml is %config(noreplace); modes as installed"

scripts=$(rpm -qp --scripts "$rpm_file")
section() { awk -v s="$1" '/scriptlet/ { on = index($0, s) == 1 } on' <<<"$scripts"; }
post=$(section "postinstall scriptlet")
preun=$(section "preuninstall scriptlet")
postun=$(section "postuninstall scriptlet")
grep -q 'if \[ \$1 -eq 1 \]' <<<"$post" && grep -q 'preset kube-annex.service' <<<"$post" ||
	fail "%post is not %systemd_post:\n$post"
grep -q 'if \[ \$1 -eq 0 \]' <<<"$preun" && grep -q 'disable --now kube-annex.service' <<<"$preun" ||
	fail "%preun is not %systemd_preun:\n$preun"
grep -q '/usr/sbin/kube-annex --cleanup' <<<"$preun" || fail "%preun does not clean up:\n$preun"
grep -q 'if \[ \$1 -ge 1 \]' <<<"$postun" && grep -q 'try-restart kube-annex.service' <<<"$postun" ||
	fail "%postun is not %systemd_postun_with_restart:\n$postun"
grep -qx systemd <<<"$(rpm -qp --requires "$rpm_file")" || fail "the scriptlets do not require systemd"
ok "rpm -qp --scripts: %systemd_post (preset on install), %systemd_preun + --cleanup (removal), try-restart on upgrade"

echo "RESULT rpm_build_s=$build_s"
