#!/usr/bin/env bash
# Scope selection against the real API server, with real traffic:
# --namespaces under an identity that has only namespaced permissions
# (deploy/rbac-namespaced.yaml), the same identity failing clearly without
# --namespaces (HTTP 403 naming the resource: least privilege), the cluster
# DNS Service imported through its narrow watch although kube-system is out
# of scope, --label-selector applied by a reload and followed live when a
# Service's labels change, and the DNS Service pointed at by the resolver
# (direct mode, on a private copy of /etc).
set -euo pipefail

export KA_PREFIX=${KA_PREFIX:-kascope}
source "$(dirname "$0")/common.sh"
udp() { $KA_IN_HOST socat -T1 - "UDP:$1" <<<"ping" 2>/dev/null || true; }
cip() { ka_kubectl -n "$1" get service "$2" -o jsonpath='{.spec.clusterIP}'; }
log_lines() { wc -l <"$KA_STATE/kube-annex.log"; }
SOCK=$KA_STATE/control.sock
CONF=$KA_STATE/scope.yaml
ka() { $KA_IN_HOST "$BIN" "$1" --control-socket "$SOCK" "${@:2}"; }
start_kube_annex() {
	$KA_IN_HOST "$BIN" --kubeconfig "$NS_KUBECONFIG" --control-socket "$SOCK" "$@" \
		</dev/null >>"$KA_STATE/kube-annex.log" 2>&1 &
	ka_pid=$!
}
stop_kube_annex() { kill -TERM "$ka_pid"; wait "$ka_pid" || true; ka_pid=""; }
# Wait for a reload to finish ("Reload complete" after line $1 of the log).
wait_reload() {
	ka_wait_for "tail -n +$(($1 + 1)) '$KA_STATE/kube-annex.log' | contains 'Reload complete'" 20 \
		"reload complete"
}

ka_env_up
ka_kubectl create namespace a >/dev/null
ka_kubectl create namespace b >/dev/null
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: a}
subsets:
- addresses: [{ip: 10.244.0.11}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: a, labels: {expose-to: legacy}}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: api, namespace: a}
subsets:
- addresses: [{ip: 10.244.0.12}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: b, labels: {expose-to: legacy}}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: other, namespace: b}
subsets:
- addresses: [{ip: 10.244.0.13}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  ports: [{name: dns, port: 53, targetPort: 8080, protocol: UDP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: kube-dns, namespace: kube-system}
subsets:
- addresses: [{ip: 10.244.0.13}]
  ports: [{name: dns, port: 8080, protocol: UDP}]
EOF
web=$(cip a web); api=$(cip a api); other=$(cip b other); dns=$(cip kube-system kube-dns)

# --- an identity with namespaced permissions only ---------------------------
# deploy/rbac-namespaced.yaml for namespace a (its example namespace is
# "shop"), with its own ServiceAccount: the environment's kube-annex
# ServiceAccount is bound cluster-wide by rbac.yaml.
sed -e 's/^  namespace: shop$/  namespace: a/' \
	-e '/^kind: ServiceAccount$/,/^---$/s/^  name: kube-annex$/  name: kube-annex-ns/' \
	-e 's/^    name: kube-annex$/    name: kube-annex-ns/' \
	"$top/deploy/rbac-namespaced.yaml" >"$KA_STATE/rbac-namespaced.yaml"
grep -q "name: kube-annex-ns" "$KA_STATE/rbac-namespaced.yaml" || fail "could not adapt rbac-namespaced.yaml"
ka_kubectl apply -f "$KA_STATE/rbac-namespaced.yaml" >/dev/null
NS_KUBECONFIG=$KA_STATE/ns-identity/kubeconfig
nsenter --net="/run/netns/$KA_CP_NS" "$top/deploy/make-kubeconfig.sh" --kubectl "$KA_KUBECTL" \
	--kubeconfig "$KA_ADMIN_KUBECONFIG" --service-account kube-annex-ns --out "$NS_KUBECONFIG" \
	--ca-file-out ca.crt --timeout "$KA_WAIT" </dev/null >"$KA_STATE/make-kubeconfig-ns.log" 2>&1 ||
	fail "make-kubeconfig.sh --service-account kube-annex-ns failed: $(cat "$KA_STATE/make-kubeconfig-ns.log")"
sa=system:serviceaccount:kube-annex:kube-annex-ns
[ "$(ka_kubectl auth can-i list services -n a --as "$sa" 2>/dev/null)" = yes ] &&
	[ "$(ka_kubectl auth can-i list services -n b --as "$sa" 2>/dev/null)" = no ] &&
	[ "$(ka_kubectl auth can-i list services --all-namespaces --as "$sa" 2>/dev/null)" = no ] ||
	fail "the namespaced identity should list Services in a only"
ok "identity $sa: Services, Endpoints, EndpointSlices of namespace a and kube-system/kube-dns only"

# --- without --namespaces: 403, said clearly, nothing programmed -------------
start_kube_annex
ka_wait_for 'grep -q "listing Service failed: HTTP 403" "$KA_STATE/kube-annex.log"' 20 "a 403 on the Service list"
line=$(grep -m1 "listing Service failed: HTTP 403" "$KA_STATE/kube-annex.log")
[[ $line == *'cannot list resource \"services\"'* || $line == *'cannot list resource "services"'* ]] ||
	fail "the 403 does not name the resource: $line"
[[ $line == *"needs --namespaces"* ]] || fail "the 403 does not point at --namespaces: $line"
host_nft | contains "a/web" && fail "something was programmed without permission"
stop_kube_annex
ok "without --namespaces: ${line#*<4>}"

# --- --namespaces a: imported, reachable; b absent; no 403 -------------------
printf 'namespaces: [a]\n' >"$CONF"
: >"$KA_STATE/kube-annex.log"
t0=$(now_ms)
start_kube_annex --config "$CONF" -v
ka_wait_for 'host_nft | contains "a/web:http"' 30 "a/web programmed"
t_ready=$(($(now_ms) - t0))
[ "$(get "$web")" = "pod1 8080" ] || fail "a/web $web:80 did not reach pod1:8080"
[ "$(get "$api")" = "pod2 8080" ] || fail "a/api $api:80 did not reach pod2:8080"
table=$(host_nft)
contains "b/other\|$other " <<<"$table" && fail "b/other ($other) is in the table"
[ -z "$(get "$other")" ] || fail "b/other $other:80 answered from the host"
contains "kube-system/kube-dns:dns" <<<"$table" || fail "the cluster DNS Service is not in the table"
[ "$(udp "$dns:53")" = "pod3 8080" ] || fail "UDP to kube-dns $dns:53 did not reach pod3"
grep -q " 403\|HTTP 403" "$KA_STATE/kube-annex.log" && fail "403 in the log with --namespaces a"
grep -q "Importing the Services of namespaces a, and the cluster DNS Service kube-system/kube-dns" \
	"$KA_STATE/kube-annex.log" || fail "the scope is not logged"
ok "--namespaces a: a/web, a/api reachable (first sync ${t_ready} ms after start), b/other absent, kube-dns $dns DNATed (narrow watch), no 403"

rc=0; out=$(ka status) || rc=$?
echo "$out" | sed -n '/^API server/,/^  API errors/p'
contains "scope: Services of namespaces a; always the cluster DNS Service kube-system/kube-dns" <<<"$out" ||
	fail "status does not show the scope"
contains "Service (namespace a): *watching" <<<"$out" && contains "Service (kube-system/kube-dns only): *watching" <<<"$out" &&
	contains "EndpointSlice (kube-system/kube-dns only): *watching" <<<"$out" ||
	fail "status does not show one watching line per scope"
rc=0; out=$(ka explain b/other) || rc=$?
[ $rc -eq 1 ] && contains "not imported: namespace b is not among the namespaces kube-annex watches (--namespaces a)" <<<"$out" ||
	fail "explain b/other (exit $rc) does not say why: $out"
ok "status shows the scope and each watch; explain b/other: not imported, namespace b not watched"

# Live: a new Service in a appears, one in b does not.
ka_kubectl -n a create service clusterip late --tcp=80:8080 >/dev/null
ka_kubectl -n b create service clusterip late --tcp=80:8080 >/dev/null
ka_wait_for 'host_nft | contains "a/late:80-8080"' 10 "a/late programmed"
sleep 0.5
host_nft | contains "b/late" && fail "b/late was programmed"
ok "a Service created in a appears live, one in b does not"

# --- reload: a label selector -------------------------------------------------
printf 'namespaces: [a]\nlabel-selector: expose-to in (legacy, all)\n' >"$CONF"
n=$(log_lines)
"$BIN" --reload "$ka_pid" || fail "the reload was refused"
wait_reload "$n" || fail "reload with a label selector did not complete"
table=$(host_nft)
contains "a/api:http" <<<"$table" || fail "selector: a/api (expose-to=legacy) went missing"
contains "a/web:http\|a/late" <<<"$table" && fail "selector: a/web or a/late (no label) still programmed"
contains "kube-system/kube-dns:dns" <<<"$table" || fail "selector: the cluster DNS Service went missing"
[ "$(get "$api")" = "pod2 8080" ] || fail "a/api unreachable after the reload"
ok "reload to --label-selector 'expose-to in (legacy, all)': a/api stays, a/web and a/late go, kube-dns stays"

# Labels changed with kubectl: followed live both ways.
t0=$(now_ms)
ka_kubectl -n a label service web expose-to=all >/dev/null
ka_wait_for 'host_nft | contains "a/web:http"' 10 "a/web labelled: programmed"
t_in=$(($(now_ms) - t0))
[ "$(get "$web")" = "pod1 8080" ] || fail "a/web unreachable after labelling it"
t0=$(now_ms)
ka_kubectl -n a label service api expose-to- >/dev/null
ka_wait_for '! host_nft | contains "a/api:http"' 10 "a/api unlabelled: removed"
t_out=$(($(now_ms) - t0))
rc=0; out=$(ka explain a/api) || rc=$?
contains "only Services whose labels match --label-selector 'expose-to in (legacy, all)'" <<<"$out" ||
	fail "explain a/api does not mention the selector: $out"
ok "kubectl label: a/web appears in ${t_in} ms, a/api (label removed) disappears in ${t_out} ms"

# --- reload back to no selector: everything of a again -----------------------
printf 'namespaces: [a]\n' >"$CONF"
n=$(log_lines)
"$BIN" --reload "$ka_pid" || fail "the reload was refused"
wait_reload "$n" || fail "reload without a selector did not complete"
table=$(host_nft)
for s in a/web:http a/api:http a/late:80-8080 kube-system/kube-dns:dns; do
	contains "$s" <<<"$table" || fail "after the reload without selector: $s missing"
done
grep -q " 403\|HTTP 403" "$KA_STATE/kube-annex.log" && fail "403 in the log"
# Objects still wanted are never dropped across scope changes, so nothing
# is removed and added back, and the DNS Service (held by its own watch
# while the selector left it out) never went away.
grep -q "Service kube-system/kube-dns removed\|Service a/api removed.*\n.*Service a/api removed" \
	"$KA_STATE/kube-annex.log" && fail "kube-dns was removed during the scope changes"
[ "$(grep -c "Service a/api removed" "$KA_STATE/kube-annex.log")" = 1 ] ||
	fail "a/api should be removed exactly once (its label removed)"
grep "Reloading:\|Reload complete\|Importing\|removed$\|added:" "$KA_STATE/kube-annex.log" | sed 's/^/  log: /'
stop_kube_annex
ok "reload without the selector: a/web, a/api, a/late and kube-dns programmed; no 403 in the whole run"

# --- the resolver follows the DNS Service outside the scope -----------------
# direct mode on a private copy of /etc (a mount namespace of its own), as
# tests/demo.sh does: the machine's own /etc is never touched.
mkdir -p "$KA_STATE/host-etc"
cp -a /etc/. "$KA_STATE/host-etc/"
unshare --mount --propagation private sh -c \
	'mount --bind "$0" /etc && exec nsenter --net="/run/netns/$1" "$2" --kubeconfig "$3" --control-socket "$4" --namespaces a --dns=direct' \
	"$KA_STATE/host-etc" "$KA_HOST_NS" "$BIN" "$NS_KUBECONFIG" "$SOCK" \
	</dev/null >>"$KA_STATE/kube-annex.log" 2>&1 &
ka_pid=$!
ka_wait_for 'nsenter -t "$ka_pid" -m cat /etc/resolv.conf | grep -m1 "^nameserver" | contains "nameserver $dns$"' 20 \
	"resolv.conf pointing at kube-dns" || fail "direct mode: resolv.conf does not name $dns first"
out=$(ka status) || true
contains "DNS: *direct: names in ~cluster.local -> $dns (kube-system/kube-dns)" <<<"$out" ||
	fail "status does not show the cluster DNS address: $(grep DNS: <<<"$out")"
stop_kube_annex
cmp -s /etc/resolv.conf "$KA_STATE/host-etc/resolv.conf" || fail "the private resolv.conf was not restored"
ok "--namespaces a --dns=direct: the host's resolver uses kube-dns $dns (kube-system not in scope)"

echo "PASS: scope selection"
