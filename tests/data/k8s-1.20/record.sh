#!/usr/bin/env bash
# Re-record the objects in this directory from the real Kubernetes 1.20.2
# control plane of tests/env/lib.sh (needs root). Every file is what that
# API server serves: `kubectl get -o json` of single objects, raw LIST and
# watch bodies from curl, discovery documents with their HTTP status.
# See README.md for the list.
set -euo pipefail

out=$(cd "$(dirname "$0")" && pwd)
export KA_PREFIX=${KA_PREFIX:-karec}
# shellcheck source=../../env/lib.sh
source "$out/../../env/lib.sh"
trap 'ka_env_down >/dev/null 2>&1' EXIT

# kubectl get -o json NAME -> FILE (pretty, as kubectl prints it)
save() { # FILE KUBECTL-GET-ARGS...
	local f=$1
	shift
	ka_kubectl get -o json "$@" >"$out/$f"
	echo "record: $f"
}

apply() { ka_kubectl apply -f - >/dev/null; }

# Raw API requests as admin. The API server pretty-prints JSON for user
# agents that look like curl or a browser; a daemon gets compact JSON, so
# record with a neutral user agent.
api() { ka_api_curl -A kube-annex-record "$@"; }

# --- First, a Service as a 1.20 cluster without the IPv6DualStack gate
# (the default in 1.20) serves it: no ipFamilies / ipFamilyPolicy.
KA_DUAL_STACK=0 KA_POD_PORTS='' ka_env_up
apply <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: https
    port: 443
    targetPort: 8443
EOF
save service-clusterip-named-ports.no-dualstack-gate.json service -n shop web
ka_env_down >/dev/null

# --- The rest with the environment's default: IPv6DualStack on.
KA_DUAL_STACK=1 ka_env_up
apply <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: https
    port: 443
    targetPort: 8443
---
# The seed example: a selector-less Service with hand-made Endpoints
# (two addresses, two named ports), mirrored into an EndpointSlice.
apiVersion: v1
kind: Service
metadata:
  name: external-service-1
  namespace: default
spec:
  type: ClusterIP
  ports:
  - name: visit-port
    port: 9999
  - name: test-port
    port: 8888
---
apiVersion: v1
kind: Endpoints
metadata:
  name: external-service-1
  namespace: default
subsets:
- addresses:
  - ip: 10.244.0.11
  - ip: 10.244.0.12
  ports:
  - name: visit-port
    port: 80
  - name: test-port
    port: 443
---
apiVersion: v1
kind: Service
metadata:
  name: my-linkedin-headless-service
  namespace: default
spec:
  clusterIP: None
  selector:
    company: LinkedIn
  ports:
  - port: 12121
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: external-service-3
  namespace: default
spec:
  type: ExternalName
  externalName: cn.bing.com
---
# Dual-stack: one Service, two ClusterIPs; IPv6 Endpoints mirror into an
# EndpointSlice of addressType IPv6.
apiVersion: v1
kind: Service
metadata:
  name: web6
  namespace: shop
spec:
  ipFamilyPolicy: PreferDualStack
  ipFamilies: [IPv4, IPv6]
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Endpoints
metadata:
  name: web6
  namespace: shop
subsets:
- addresses:
  - ip: fd00:244::11
  - ip: fd00:244::12
  ports:
  - name: http
    port: 8080
EOF

slice_of() { # NAMESPACE SERVICE -> name of its (single) EndpointSlice
	local i name
	for ((i = 0; i < 100; i++)); do
		name=$(ka_kubectl get endpointslices.v1beta1.discovery.k8s.io -n "$1" \
			-l "kubernetes.io/service-name=$2" -o jsonpath='{.items[*].metadata.name}')
		[ -n "$name" ] && { echo "$name"; return 0; }
		sleep 0.1
	done
	echo "record: no EndpointSlice for $1/$2" >&2
	return 1
}
es=$(slice_of default external-service-1)
es6=$(slice_of shop web6)
sleep 1 # let the mirroring controller settle (no further updates)

save service-clusterip-named-ports.json service -n shop web
save service-selectorless.json service external-service-1
save endpoints-two-addresses-named-ports.json endpoints external-service-1
save endpointslice-mirrored-v1beta1.json endpointslices.v1beta1.discovery.k8s.io "$es"
save service-headless.json service my-linkedin-headless-service
save service-externalname.json service external-service-3
save service-dualstack.json service -n shop web6
save endpointslice-mirrored-ipv6-v1beta1.json endpointslices.v1beta1.discovery.k8s.io -n shop "$es6"

# Raw LIST bodies, as a list+watch client gets them.
api -sS /apis/discovery.k8s.io/v1beta1/endpointslices >"$out/list-endpointslices-v1beta1.json"
echo "record: list-endpointslices-v1beta1.json"
api -sS /api/v1/services >"$out/list-services.json"
echo "record: list-services.json"

# Discovery documents, with status line and headers.
api -sS -i /apis/discovery.k8s.io/v1beta1 | tr -d '\r' | grep -vi '^date:' >"$out/discovery-v1beta1.http"
api -sS -i /apis/discovery.k8s.io/v1 | tr -d '\r' | grep -vi '^date:' >"$out/discovery-v1.http"
api -sS -i /apis/discovery.k8s.io | tr -d '\r' | grep -vi '^date:' >"$out/discovery-group.http"
echo "record: discovery-v1beta1.http discovery-v1.http discovery-group.http"

# A raw watch stream: from the LIST's resourceVersion, while the seed
# Endpoints change (address added, port renamed, then deleted and created
# again). timeoutSeconds makes the server end the stream itself; bookmarks
# were asked for.
rv=$(api -sS /apis/discovery.k8s.io/v1beta1/endpointslices |
	"$KA_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])')
watch="/apis/discovery.k8s.io/v1beta1/endpointslices?watch=1&resourceVersion=$rv&allowWatchBookmarks=true&timeoutSeconds=8"
api -sS -N "$watch" >"$out/watch-endpointslices.jsonl" &
curl_pid=$!
sleep 1
ka_kubectl patch endpoints external-service-1 --type=json \
	-p '[{"op":"add","path":"/subsets/0/addresses/-","value":{"ip":"10.244.0.13"}}]' >/dev/null
sleep 1
ka_kubectl delete endpoints external-service-1 >/dev/null
sleep 1
apply <<'EOF'
apiVersion: v1
kind: Endpoints
metadata:
  name: external-service-1
  namespace: default
subsets:
- addresses:
  - ip: 10.244.0.11
  ports:
  - name: visit-port
    port: 80
EOF
wait "$curl_pid" || true
echo "record: watch-endpointslices.jsonl ($(wc -l <"$out/watch-endpointslices.jsonl") events, from resourceVersion $rv)"

# What a client gets when its resourceVersion fell out of the watch
# window. The 1.20 watch cache grows while its oldest event is younger than
# 75 s, so: note a resourceVersion, make changes, wait 80 s, make more
# changes than the cache holds, then watch from the noted version. The
# server answers 200 and one ERROR event carrying 410 Expired.
ka_kubectl apply -f - >/dev/null <<'EOF'
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: churn
  namespace: default
  labels:
    endpointslice.kubernetes.io/managed-by: record.sh
addressType: IPv4
endpoints:
- addresses: [10.244.0.11]
ports:
- name: p
  port: 1
EOF
churn() { # N: patch the churn slice N times over one HTTPS connection
	nsenter --net="/run/netns/$KA_CP_NS" "$KA_PYTHON" - "$KA_STATE/pki" "$1" "$KA_CP_IP" <<'EOF'
import http.client, json, ssl, sys
pki, n, host = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
ctx.load_cert_chain(pki + "/admin.crt", pki + "/admin.key")
c = http.client.HTTPSConnection(host, 6443, context=ctx)
for i in range(n):
    c.request("PATCH", "/apis/discovery.k8s.io/v1beta1/namespaces/default/endpointslices/churn",
              json.dumps({"ports": [{"name": "p", "port": 1 + i % 1000}]}),
              {"Content-Type": "application/merge-patch+json"})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("PATCH failed: %d" % r.status)
EOF
}
old_rv=$(api -sS /apis/discovery.k8s.io/v1beta1/endpointslices |
	"$KA_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])')
churn 300
echo "record: waiting 80 s for the watch cache to stop growing"
sleep 80
churn 1200
api -sS -N -i "/apis/discovery.k8s.io/v1beta1/endpointslices?watch=1&resourceVersion=$old_rv&timeoutSeconds=3" |
	tr -d '\r' | grep -vi '^date:' >"$out/watch-endpointslices-410.http"
grep -q '"code":410' "$out/watch-endpointslices-410.http" ||
	{ echo "record: expected a 410 ERROR event, see watch-endpointslices-410.http" >&2; exit 1; }
echo "record: watch-endpointslices-410.http"
