#!/usr/bin/env bash
# Build the real Kubernetes control plane used by the tests from Debian's
# `kubernetes` source package (1.20.2, vendor tree included) and cache the
# binaries outside the repository. Rebuilds only when a binary is missing.
#
# The deb-src entry is derived at run time from the machine's own apt
# sources, in a private apt state directory: the host's apt configuration
# is never changed.
set -euo pipefail

CACHE=${KUBE_ANNEX_K8S_CACHE:-/var/cache/kube-annex-test/k8s}
BINS=(kube-apiserver kube-controller-manager kube-proxy kubectl)

have_all() {
	local b
	for b in "${BINS[@]}"; do [ -x "$CACHE/bin/$b" ] || return 1; done
}
have_all && exit 0

here=$(cd "$(dirname "$0")/../.." && pwd)
"$here/scripts/install-deps.sh" test
for p in golang-github-modern-go-reflect2-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done

work="$CACHE/src"
rm -rf "$work"
mkdir -p "$work/apt/sources.list.d" "$work/apt/lists/partial" "$CACHE/bin"

# deb-src twins of every enabled deb source on this machine.
{
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		sed -e 's/^Types:.*/Types: deb-src/' "$f"
		echo
	done
} >"$work/apt/sources.list.d/src.sources"
if [ -f /etc/apt/sources.list ]; then
	sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >"$work/apt/sources.list.d/src.list"
fi
aptopt=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
	-o "Dir::State::Lists=$work/apt/lists" -o "APT::Sandbox::User=root")
echo "build-k8s: fetching Debian's kubernetes source package"
apt-get "${aptopt[@]}" update -qq
(cd "$work" && apt-get "${aptopt[@]}" source -qq --download-only kubernetes >/dev/null &&
	dpkg-source -x --no-check kubernetes_*.dsc k8s >/dev/null)

src="$work/k8s"
# kubernetes 1.20 vendors reflect2 1.0.1, which makes the apiserver panic
# under Go >= 1.18 when JSON-encoding maps; use Debian's 1.0.2 instead.
r2=/usr/share/gocode/src/github.com/modern-go/reflect2
find "$src/vendor/github.com/modern-go/reflect2" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) -delete
cp "$r2"/*.go "$src/vendor/github.com/modern-go/reflect2/"
cp "$r2"/*.s "$src/vendor/github.com/modern-go/reflect2/" 2>/dev/null || true

export GOPATH="$src/.go" GO111MODULE=off GOFLAGS=-mod=vendor GOCACHE="$CACHE/gocache"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$src" "$GOPATH/src/k8s.io/kubernetes"
echo "build-k8s: building ${BINS[*]} (takes a few minutes)"
(cd "$GOPATH/src/k8s.io/kubernetes" &&
	make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-proxy cmd/kubectl" \
		KUBE_BUILD_PLATFORMS=linux/amd64 >"$CACHE/build.log" 2>&1) || {
	tail -40 "$CACHE/build.log" >&2
	exit 1
}
for b in "${BINS[@]}"; do
	install -m 0755 "$src/_output/local/bin/linux/amd64/$b" "$CACHE/bin/$b" 2>/dev/null ||
		install -m 0755 "$(find "$src/_output" -type f -name "$b" | head -1)" "$CACHE/bin/$b"
done
rm -rf "$work"
echo "build-k8s: binaries in $CACHE/bin"
