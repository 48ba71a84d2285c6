#!/usr/bin/env bash
# Install the Debian packages kube-annex needs to build and test.
# Idempotent: only missing packages are installed, and apt is not touched
# at all when everything is present.
set -euo pipefail

build_pkgs=(gcc make pkg-config
	libcurl4-openssl-dev libcjson-dev libyaml-dev libnftnl-dev libmnl-dev
	libnetfilter-conntrack-dev libsystemd-dev libmicrohttpd-dev uthash-dev)
test_pkgs=(libcmocka-dev nftables iproute2 etcd-server golang-go rsync
	dpkg-dev curl openssl conntrack python3 socat valgrind clang
	debootstrap dnsmasq-base # booted Debian root, DNS stand-ins (tests/e2e/test-dns.sh)
	prometheus) # promtool check metrics (tests/e2e/test-operate.sh)

want=("${build_pkgs[@]}")
case "${1:-build}" in
build) ;;
test|all) want+=("${test_pkgs[@]}") ;;
analyze) want+=(clang clang-tools) ;;
# libFuzzer harnesses (tests/fuzz): clang and its fuzzer/sanitizer runtimes
fuzz) want+=(clang libclang-rt-dev) ;;
# make bench: the test environment plus iptables for the real kube-proxy
bench) want+=("${test_pkgs[@]}" iptables) ;;
# make deb: debhelper (dh_installsystemd), lintian for the package check
deb) want+=(dpkg-dev debhelper lintian) ;;
# make rpm: Debian's rpmbuild and rpmlint
rpm) want+=(rpm rpmlint) ;;
*) echo "usage: $0 [build|test|analyze|fuzz|bench|deb|rpm]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]} (run as root to install)" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
