#!/usr/bin/env bash
# Build kube-annex's Debian or RPM package from a copy of the source tree
# and check it: lintian (no errors, no warnings) or rpmlint (no errors).
#
#   scripts/package.sh deb [BUILD]   -> BUILD/deb/kube-annex_<version>_<arch>.deb
#   scripts/package.sh rpm [BUILD]   -> BUILD/rpm/RPMS/<arch>/kube-annex-<version>-1.<arch>.rpm
#                                       BUILD/rpm/SRPMS/kube-annex-<version>-1.src.rpm
#
# The copy keeps the tree clean (dpkg-buildpackage writes into debian/ and
# next to the source). Logs: BUILD/<kind>/build.log, BUILD/<kind>/lint.log.
set -euo pipefail

kind=${1:-}
build=${2:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
case "$build" in /*) ;; *) build=$top/$build ;; esac
version=$(cat "$top/VERSION")
out=$build/$kind
src=$out/kube-annex-$version
t0=$(date +%s%N)

say() { echo "package: $*"; }
die() { echo "package: $*" >&2; exit 1; }
elapsed() { echo "$((($(date +%s%N) - t0) / 100000000))" | sed 's/\(.\)$/.\1/'; }

copy_tree() {
	rm -rf "$out"
	mkdir -p "$src"
	tar -C "$top" --exclude=./.git --exclude="./${build#"$top"/}" --exclude=./build \
		--exclude=__pycache__ -cf - . | tar -C "$src" -xf -
}

build_deb() {
	local arch deb changes
	arch=$(dpkg --print-architecture)
	[ "$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)" = "$version" ] ||
		die "debian/changelog's version is not VERSION ($version)"
	copy_tree
	say "dpkg-buildpackage in $src (log: $out/build.log)"
	if ! (cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$out/build.log" 2>&1; then
		tail -40 "$out/build.log" >&2
		die "dpkg-buildpackage failed"
	fi
	deb=$out/kube-annex_${version}_$arch.deb
	changes=$out/kube-annex_${version}_$arch.changes
	[ -f "$deb" ] || die "no $deb"
	say "lintian (log: $out/lint.log)"
	if ! lintian --fail-on error,warning --info "$changes" >"$out/lint.log" 2>&1; then
		cat "$out/lint.log" >&2
		die "lintian found errors or warnings"
	fi
	grep -v '^N:' "$out/lint.log" | grep -E '^[EWIP]:' || true
	say "$deb ($(du -k "$deb" | cut -f1) KiB) built and checked in $(elapsed) s"
}

build_rpm() {
	local load=() rpms summary
	grep -q "^Version: *$version\$" "$top/kube-annex.spec" ||
		die "kube-annex.spec's Version is not VERSION ($version)"
	copy_tree
	mkdir -p "$out/SOURCES" "$out/SPECS"
	tar -C "$out" -czf "$out/SOURCES/kube-annex-$version.tar.gz" "kube-annex-$version"
	cp "$top/kube-annex.spec" "$out/SPECS/"
	# Debian's rpm has no systemd-rpm-macros.
	[ "$(rpm --eval '%{?systemd_post:yes}')" = yes ] || load=(--load "$top/rpm/macros.systemd")
	# rpm's brp-* scripts (man page compression) are bash scripts that
	# start with #!/bin/sh, which is dash on Debian: run them with bash.
	if [ "$(readlink -f /bin/sh)" != "$(readlink -f /bin/bash)" ]; then
		rpm --eval '%{__os_install_post}' | awk 'NF {
			sub(/^[ \t]*/, ""); lines[++n] = "bash " $0 }
			END { print "%__os_install_post \\"; for (i = 1; i <= n; i++)
				print "    " lines[i] (i < n ? " \\" : "") }' >"$out/macros.brp-bash"
		load+=(--load "$out/macros.brp-bash")
	fi
	say "rpmbuild in $out (log: $out/build.log)"
	# --nodeps: the build dependencies are Debian packages here, which
	# rpm's database does not know; there is no debuginfo tooling either.
	# rpm's helper scripts (brp-compress) need bash; Debian's /bin/sh is dash.
	if ! rpmbuild "${load[@]}" -ba --nodeps --define "_topdir $out" \
		--define "_buildshell /bin/bash" --define "debug_package %{nil}" \
		"$out/SPECS/kube-annex.spec" >"$out/build.log" 2>&1; then
		tail -40 "$out/build.log" >&2
		die "rpmbuild failed"
	fi
	rpms=("$out"/RPMS/*/kube-annex-"$version"-*.rpm "$out"/SRPMS/kube-annex-"$version"-*.src.rpm)
	[ -f "${rpms[0]}" ] || die "no binary RPM in $out/RPMS"
	say "rpmlint (log: $out/lint.log)"
	rpmlint -r "$top/rpm/kube-annex.rpmlintrc" "$out/SPECS/kube-annex.spec" "${rpms[@]}" \
		>"$out/lint.log" 2>&1 || true
	summary=$(grep -E '[0-9]+ errors?, [0-9]+ warnings?' "$out/lint.log" | tail -1)
	[ -n "$summary" ] || { cat "$out/lint.log" >&2; die "rpmlint did not run"; }
	grep -E '^[^ ]+: [EW]: ' "$out/lint.log" || true
	if ! grep -qE '(^| )0 errors' <<<"$summary"; then
		die "rpmlint found errors: $summary"
	fi
	say "${rpms[0]} ($(du -k "${rpms[0]}" | cut -f1) KiB) built in $(elapsed) s; rpmlint: $summary"
}

case "$kind" in
deb) build_deb ;;
rpm) build_rpm ;;
*) echo "usage: $0 deb|rpm [BUILD]" >&2; exit 2 ;;
esac
