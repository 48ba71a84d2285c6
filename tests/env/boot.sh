# shellcheck shell=bash
# A Debian bookworm host booted with real systemd as PID 1, inside
# namespaces on this machine: systemd, journald, D-Bus and systemd-resolved
# run as on a real host, in a network namespace of the test's choosing.
#
#   source tests/env/boot.sh
#   ka_boot_root                      # build the cached root once (minutes)
#   ka_boot_up NAME /run/netns/NS     # copy the root, boot it; sets KA_BOOT_PID
#                                     # (calls ka_boot_prepare ROOT first, if defined)
#   ka_boot_run CMD...                # run CMD inside (all its namespaces, its root)
#   ka_boot_down                      # power off, remove the copy; idempotent
#
#   tests/env/boot.sh build           # only build (or check) the cached root
#
# The root is debootstrapped once from the machine's own configured Debian
# mirror (read from /etc/apt at run time) into $KA_BOOT_CACHE, default
# /var/cache/kube-annex-test/bookworm-root, and rebuilt only when missing
# or when the package list below changes. The root keeps no apt sources.
#
# Each boot gets a writable copy (an overlay over the cached root when the
# kernel has overlayfs, else cp -a) and its own PID, mount, UTS, IPC and
# cgroup namespaces, joined to an existing network namespace:
#
#   nsenter --net=NS unshare --pid --fork --mount --uts --ipc --cgroup
#     mount: root bind, proc, sysfs, tmpfs /run /tmp /sys/fs/cgroup,
#            cgroup2 at /sys/fs/cgroup/unified, named "systemd" v1 hierarchy
#            at /sys/fs/cgroup/systemd, rbind /dev
#     container=kube-annex-test chroot ROOT /lib/systemd/systemd --system
#
# Before unsharing, the boot moves itself into fresh cgroups
# (kube-annex-test-PREFIX-NAME) in the machine's cgroup2 and name=systemd
# hierarchies; the cgroup namespace makes them the container's root, so
# the booted systemd never sees or touches the machine's other cgroups.
# ka_boot_down removes them.
#
# The booted host has no route to the package mirror: everything it needs
# is in the root before boot (KA_BOOT_PACKAGES).

KA_BOOT_CACHE=${KA_BOOT_CACHE:-/var/cache/kube-annex-test/bookworm-root}
KA_BOOT_SUITE=bookworm
# systemd and resolved under test; the runtime libraries of build/kube-annex
# (the Depends of its .deb, which apt then finds installed: the booted host
# has no mirror); tools the tests run inside (getent is in libc-bin, chattr
# in e2fsprogs).
KA_BOOT_PACKAGES="systemd systemd-resolved dbus iproute2 nftables libc-bin netbase curl e2fsprogs
	libcurl4 libcjson1 libyaml-0-2 libnftnl11 libmnl0 libsystemd0 libmicrohttpd12
	libnetfilter-conntrack3 network-manager dnsmasq-base libpam-systemd"
# Set by ka_boot_up; kept when this file is sourced again.
KA_BOOT_PID=${KA_BOOT_PID:-}
KA_BOOT_NAME=${KA_BOOT_NAME:-}
KA_BOOT_DIR=${KA_BOOT_DIR:-}
KA_BOOT_ROOT=${KA_BOOT_ROOT:-}

_ka_boot_log() { echo "boot: $*" >&2; }

# The first plain Debian archive URI of this machine's apt configuration
# (deb822 .sources first, then sources.list); never the security archive.
_ka_boot_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk '
			/^[ \t]*$/ { if (uri != "" && types ~ /(^| )deb( |$)/ && uri !~ /security/) { print uri; exit } uri = ""; types = ""; next }
			/^Types:/ { types = $0; sub(/^Types:[ \t]*/, "", types) }
			/^URIs:/ { uri = $2 }
			END { if (uri != "" && types ~ /(^| )deb( |$)/ && uri !~ /security/) print uri }' "$f" | head -1)
		[ -n "$uri" ] && { echo "$uri"; return 0; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } break } }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return 0; }
	done
	return 1
}

_ka_boot_stamp() { echo "$KA_BOOT_SUITE $KA_BOOT_PACKAGES" | tr -s ' \t\n' ' '; }

# Build the cached root unless it is there and made from the same list.
ka_boot_root() {
	local stamp tmp mirror t0=$EPOCHREALTIME pkgs
	stamp=$(_ka_boot_stamp)
	if [ -f "$KA_BOOT_CACHE/.kube-annex-root" ] &&
		[ "$(cat "$KA_BOOT_CACHE/.kube-annex-root")" = "$stamp" ]; then
		return 0
	fi
	[ "$(id -u)" = 0 ] || { _ka_boot_log "building the root needs root"; return 1; }
	command -v debootstrap >/dev/null || {
		_ka_boot_log "installing debootstrap"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			debootstrap >/dev/null || return 1
	}
	mirror=$(_ka_boot_mirror) || { _ka_boot_log "no Debian mirror in /etc/apt"; return 1; }
	tmp=$KA_BOOT_CACHE.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$(dirname "$KA_BOOT_CACHE")"
	pkgs=$(echo "$KA_BOOT_PACKAGES" | tr -s ' \t\n' ',')
	_ka_boot_log "debootstrapping $KA_BOOT_SUITE into $KA_BOOT_CACHE (once; log in $tmp.log)"
	if ! debootstrap --variant=minbase --include="${pkgs%,}" "$KA_BOOT_SUITE" "$tmp" "$mirror" \
		>"$tmp.log" 2>&1; then
		_ka_boot_log "debootstrap failed; last lines of $tmp.log:"
		tail -20 "$tmp.log" >&2
		rm -rf "$tmp"
		return 1
	fi
	# The booted host has no route to the mirror and must not learn it.
	rm -f "$tmp/etc/apt/sources.list" "$tmp"/etc/apt/sources.list.d/*
	rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/archives/*.deb
	# A quiet, deterministic boot: no getty, a fixed machine id per copy.
	rm -f "$tmp"/etc/systemd/system/getty.target.wants/* \
		"$tmp"/etc/systemd/system/multi-user.target.wants/e2scrub_reap.service
	# NetworkManager (test-dns-nm.sh; libpam-systemd satisfies its polkitd)
	# runs only where a test enables it. udev never runs: its trigger would
	# replay the machine's device events from inside.
	rm -f "$tmp"/etc/systemd/system/multi-user.target.wants/NetworkManager.service \
		"$tmp"/etc/systemd/system/network-online.target.wants/NetworkManager-wait-online.service
	local u
	for u in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
		systemd-udev-trigger.service systemd-udev-settle.service; do
		ln -sf /dev/null "$tmp/etc/systemd/system/$u"
	done
	: >"$tmp/etc/machine-id"
	echo "$stamp" >"$tmp/.kube-annex-root"
	rm -rf "$KA_BOOT_CACHE"
	mv "$tmp" "$KA_BOOT_CACHE"
	rm -f "$tmp.log"
	_ka_boot_log "root ready in $(_ka_boot_since "$t0") s"
}

_ka_boot_since() {
	local now=${EPOCHREALTIME/./} then=${1/./}
	local ms=$(((now - then) / 1000))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

_ka_boot_cgroups() { # NAME -> the two cgroup directories (unique per KA_PREFIX)
	local id=kube-annex-test-${KA_PREFIX:-boot}-$1
	echo "/sys/fs/cgroup/unified/$id /sys/fs/cgroup/systemd/$id"
}

# Boot a copy of the root as NAME in the network namespace NETNS (a path
# such as /run/netns/ka-host). State lives in ${KA_STATE:-/run/kube-annex-test}/boot-NAME.
ka_boot_up() {
	local name=$1 netns=$2 t0=$EPOCHREALTIME cg state
	[ -e "$netns" ] || { _ka_boot_log "no network namespace $netns"; return 1; }
	ka_boot_root || return 1
	state=${KA_STATE:-/run/kube-annex-test}/boot-$name
	KA_BOOT_NAME=$name
	KA_BOOT_DIR=$state
	KA_BOOT_ROOT=$state/root
	_ka_boot_teardown_dir # leftovers of a crashed run
	mkdir -p "$state/root" "$state/upper" "$state/work"
	if ! mount -t overlay "kube-annex-test-$name" \
		-o "lowerdir=$KA_BOOT_CACHE,upperdir=$state/upper,workdir=$state/work" "$state/root" 2>/dev/null; then
		cp -a "$KA_BOOT_CACHE/." "$state/root/" || return 1
	fi
	systemd-id128 new 2>/dev/null >"$state/root/etc/machine-id" ||
		tr -d '-' </proc/sys/kernel/random/uuid >"$state/root/etc/machine-id"
	echo "$name" >"$state/root/etc/hostname"
	# The caller's additions to this copy, before it boots.
	if declare -F ka_boot_prepare >/dev/null; then
		ka_boot_prepare "$state/root" || { _ka_boot_log "ka_boot_prepare failed"; return 1; }
	fi

	for cg in $(_ka_boot_cgroups "$name"); do
		mkdir -p "$cg" || { _ka_boot_log "cannot create cgroup $cg"; return 1; }
	done
	# The mounts happen in the new mount namespace only; the script runs
	# as PID 1 of the new PID namespace and execs systemd in its place.
	cat >"$state/init.sh" <<'EOF'
set -e
R=$1
mount --make-rprivate /
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount -t tmpfs -o mode=755 tmpfs "$R/sys/fs/cgroup"
mkdir -p "$R/sys/fs/cgroup/unified" "$R/sys/fs/cgroup/systemd"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup/unified"
mount -t cgroup -o none,name=systemd cgroup "$R/sys/fs/cgroup/systemd"
mount --rbind /dev "$R/dev"
export container=kube-annex-test
exec chroot "$R" /lib/systemd/systemd --system --log-target=console --show-status=no
EOF
	# A subshell that enters the cgroups, then becomes the namespace
	# holder; unshare --fork makes init.sh PID 1 inside.
	(
		for cg in $(_ka_boot_cgroups "$name"); do echo "$BASHPID" >"$cg/cgroup.procs"; done
		exec nsenter --net="$netns" unshare --pid --fork --mount --uts --ipc --cgroup \
			--kill-child=SIGKILL sh "$state/init.sh" "$state/root"
	) </dev/null >"$state/console.log" 2>&1 &
	echo $! >"$state/unshare.pid"
	# PID 1 of the new namespace: the child of unshare.
	local i pid=
	for ((i = 0; i < 100; i++)); do
		pid=$(cat "/proc/$(cat "$state/unshare.pid")/task/"*/children 2>/dev/null | awk '{print $1; exit}')
		[ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != "$(readlink /proc/self/exe)" ] &&
			grep -q systemd "/proc/$pid/comm" 2>/dev/null && break
		pid=
		sleep 0.05
	done
	[ -n "$pid" ] || { _ka_boot_log "systemd did not start; console:"; tail -20 "$state/console.log" >&2; return 1; }
	KA_BOOT_PID=$pid
	echo "$pid" >"$state/systemd.pid"
	local st=
	for ((i = 0; i < 600; i++)); do
		st=$(ka_boot_run systemctl is-system-running 2>/dev/null) || true
		case "$st" in running | degraded) break ;; esac
		kill -0 "$pid" 2>/dev/null || { _ka_boot_log "systemd exited while booting; console:"; tail -30 "$state/console.log" >&2; return 1; }
		sleep 0.1
	done
	case "$st" in
	running) ;;
	degraded) _ka_boot_log "booted degraded: $(ka_boot_run systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')" ;;
	*) _ka_boot_log "boot did not finish (state '$st'); console:"; tail -30 "$state/console.log" >&2; return 1 ;;
	esac
	_ka_boot_log "$name booted in $(_ka_boot_since "$t0") s (systemd PID $pid)"
}

# Write stdin to PATH inside the booted host (through its own root, never
# the machine's).
ka_boot_write() { # PATH [MODE]
	ka_boot_run sh -c 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"' sh "$1" "${2:-0644}"
}

# Run CMD inside the booted host: every namespace of its PID 1, its root
# and working directory.
ka_boot_run() {
	[ -n "$KA_BOOT_PID" ] || { _ka_boot_log "nothing booted"; return 1; }
	nsenter -t "$KA_BOOT_PID" -a -r -w env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		TERM=dumb SYSTEMD_COLORS=0 SYSTEMD_PAGER= "$@"
}

_ka_boot_teardown_dir() {
	local state=$KA_BOOT_DIR cg d
	[ -n "$state" ] || return 0
	if mountpoint -q "$state/root" 2>/dev/null; then
		umount "$state/root" || umount -l "$state/root"
	fi
	for cg in $(_ka_boot_cgroups "$KA_BOOT_NAME"); do
		[ -d "$cg" ] || continue
		# Depth first: the booted systemd's own cgroups, then ours.
		find "$cg" -depth -type d 2>/dev/null | while read -r d; do rmdir "$d" 2>/dev/null; done
		[ -d "$cg" ] && _ka_boot_log "cgroup $cg not removed (processes left?)"
	done
	case "$state" in
	/*/boot-*) rm -rf -- "$state" ;;
	esac
}

# Power off (systemd exits when it is done), SIGKILL after 10 s.
ka_boot_down() {
	local pid=$KA_BOOT_PID holder i rc=0
	[ -n "$KA_BOOT_DIR" ] || return 0
	holder=$(cat "$KA_BOOT_DIR/unshare.pid" 2>/dev/null)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		# SIGRTMIN+4: poweroff, for systemd in a container.
		kill -s RTMIN+4 "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			_ka_boot_log "$KA_BOOT_NAME did not power off in 10 s; killing it"
			kill -KILL "$pid" 2>/dev/null
			rc=1
		fi
	fi
	if [ -n "$holder" ]; then
		for ((i = 0; i < 50; i++)); do
			kill -0 "$holder" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$holder" 2>/dev/null
		wait "$holder" 2>/dev/null
	fi
	_ka_boot_teardown_dir
	KA_BOOT_PID='' KA_BOOT_DIR='' KA_BOOT_ROOT=''
	return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	case "${1:-}" in
	build) ka_boot_root ;;
	mirror) _ka_boot_mirror ;;
	*) echo "usage: $0 build|mirror (or source it)" >&2; exit 2 ;;
	esac
fi
