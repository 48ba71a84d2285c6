#!/usr/bin/env bash
# Write a kubeconfig for kube-annex's read-only ServiceAccount.
#
# Run by an operator who has kubectl access to the cluster, after
# `kubectl apply -f rbac.yaml`. The only object this script creates is,
# if missing, a Secret of type kubernetes.io/service-account-token named
# SERVICE-ACCOUNT-token (kube-annex-token), annotated for that ServiceAccount; the
# cluster's token controller fills it with a long-lived token and the
# cluster CA. This works on Kubernetes 1.20 and on 1.24+, where no token
# Secret is created for a ServiceAccount automatically.
#
# The kubeconfig holds: the API server URL (from the current kubectl
# context, or --server), the CA from the Secret (embedded, or written to
# --ca-file-out), and the token. It is written atomically with mode 0600.
set -euo pipefail

prog=${0##*/}
kubectl=kubectl
admin_kubeconfig=
context=
server=
out=
namespace=kube-annex
service_account=kube-annex
secret=
ca_file_out=
timeout=60

usage() {
	cat <<EOF
usage: $prog --out FILE [options]

  --out FILE            kubeconfig to write (mode 0600, replaced atomically)
  --kubectl PATH        kubectl binary (default: kubectl from PATH)
  --kubeconfig FILE     admin kubeconfig used to talk to the cluster
                        (default: kubectl's own, i.e. \$KUBECONFIG or ~/.kube/config)
  --context NAME        context of the admin kubeconfig (default: current)
  --server URL          API server URL written into FILE (default: the server
                        of the admin context; set this when the host reaches
                        the API server under another address)
  --namespace NS        namespace of the ServiceAccount (default: kube-annex)
  --service-account SA  ServiceAccount name (default: kube-annex)
  --ca-file-out PATH    write the cluster CA to PATH and reference it from FILE
                        instead of embedding it; a relative PATH is relative to
                        FILE's directory (kubectl semantics) and stays relative
                        in FILE
  --timeout SECONDS     how long to wait for the token (default: 60)
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	opt=$1
	case "$opt" in
	-h | --help) usage; exit 0 ;;
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
	esac
	case "$opt" in
	--out | --kubectl | --kubeconfig | --context | --server | --namespace | \
		--service-account | --ca-file-out | --timeout)
		[ $# -ge 2 ] || die "$opt needs a value"
		val=$2
		shift 2
		;;
	*) echo "$prog: unknown option: $opt" >&2; usage >&2; exit 2 ;;
	esac
	case "$opt" in
	--out) out=$val ;;
	--kubectl) kubectl=$val ;;
	--kubeconfig) admin_kubeconfig=$val ;;
	--context) context=$val ;;
	--server) server=$val ;;
	--namespace) namespace=$val ;;
	--service-account) service_account=$val ;;
	--ca-file-out) ca_file_out=$val ;;
	--timeout) timeout=$val ;;
	esac
done
[ -n "$out" ] || { usage >&2; exit 2; }
# One token Secret per ServiceAccount: kube-annex-token for the default.
secret=$service_account-token
case "$timeout" in '' | *[!0-9]*) die "--timeout wants whole seconds" ;; esac
command -v "$kubectl" >/dev/null || die "kubectl not found: $kubectl (use --kubectl)"

k() {
	"$kubectl" ${admin_kubeconfig:+--kubeconfig="$admin_kubeconfig"} \
		${context:+--context="$context"} "$@"
}

k get serviceaccount "$service_account" -n "$namespace" -o name >/dev/null ||
	die "ServiceAccount $namespace/$service_account not found; apply rbac.yaml first"

# The Secret, created only if missing. An existing one must be ours.
if ! k get secret "$secret" -n "$namespace" -o name >/dev/null 2>&1; then
	manifest="apiVersion: v1
kind: Secret
metadata:
  name: $secret
  namespace: $namespace
  annotations:
    kubernetes.io/service-account.name: $service_account
  labels:
    app.kubernetes.io/name: kube-annex
type: kubernetes.io/service-account-token"
	if printf '%s\n' "$manifest" | k create -f - >/dev/null; then
		echo "$prog: created Secret $namespace/$secret" >&2
	else
		# Lost a race with another run? Then the Secret exists now.
		k get secret "$secret" -n "$namespace" -o name >/dev/null ||
			die "cannot create Secret $namespace/$secret"
	fi
fi
owner=$(k get secret "$secret" -n "$namespace" \
	-o jsonpath='{.type} {.metadata.annotations.kubernetes\.io/service-account\.name}')
[ "$owner" = "kubernetes.io/service-account-token $service_account" ] ||
	die "Secret $namespace/$secret exists but is not a service-account token for $service_account (type and owner: '$owner')"

# The token controller fills the Secret asynchronously.
token_b64=
deadline=$((SECONDS + timeout))
while :; do
	token_b64=$(k get secret "$secret" -n "$namespace" -o jsonpath='{.data.token}')
	[ -n "$token_b64" ] && break
	[ "$SECONDS" -lt "$deadline" ] ||
		die "Secret $namespace/$secret got no token within ${timeout}s; is the cluster's token controller running (kube-controller-manager --service-account-private-key-file)?"
	sleep 0.2
done
ca_b64=$(k get secret "$secret" -n "$namespace" -o jsonpath='{.data.ca\.crt}')
[ -n "$ca_b64" ] || die "Secret $namespace/$secret has no ca.crt"
token=$(printf '%s' "$token_b64" | base64 -d)
[ -n "$token" ] || die "Secret $namespace/$secret holds an undecodable token"

if [ -z "$server" ]; then
	server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
	[ -n "$server" ] || die "cannot tell the API server URL from the kubectl context; use --server"
fi

out_dir=$(dirname -- "$out")
mkdir -p -- "$out_dir"
tmp=$(mktemp -- "$out.XXXXXX") # mode 0600
trap 'rm -f -- "$tmp" ${ca_tmp:+"$ca_tmp"}' EXIT

if [ -n "$ca_file_out" ]; then
	case "$ca_file_out" in
	/*) ca_path=$ca_file_out ;;
	*) ca_path=$out_dir/$ca_file_out ;;
	esac
	mkdir -p -- "$(dirname -- "$ca_path")"
	ca_tmp=$(mktemp -- "$ca_path.XXXXXX")
	printf '%s' "$ca_b64" | base64 -d >"$ca_tmp"
	chmod 0644 "$ca_tmp"
	mv -f -- "$ca_tmp" "$ca_path"
	ca_tmp=
	ca_line="certificate-authority: \"$ca_file_out\""
else
	ca_line="certificate-authority-data: $ca_b64"
fi

cat >"$tmp" <<EOF
# kube-annex kubeconfig for ServiceAccount $namespace/$service_account
# (token from Secret $namespace/$secret), written by $prog.
apiVersion: v1
kind: Config
clusters:
- name: kube-annex
  cluster:
    server: "$server"
    $ca_line
users:
- name: kube-annex
  user:
    token: "$token"
contexts:
- name: kube-annex
  context:
    cluster: kube-annex
    user: kube-annex
current-context: kube-annex
EOF
chmod 0600 "$tmp"
mv -f -- "$tmp" "$out"
echo "$prog: wrote $out (server $server)" >&2
