#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Drive the test API server for make bench (run inside the control-plane
namespace; admin client certificate from the environment's PKI).

  k8s-load.py --pki DIR --server URL create --services N --endpoints E [--threads T]
      namespaces bench-00..99, then selector-less Services bench-KK/svc-NNNNN
      (port 80 "http" -> 8080) and their Endpoints objects (E addresses,
      the same ones bench/gen-kube-proxy-ruleset.py uses), in parallel
      over keep-alive connections. The endpointslicemirroring controller
      turns each Endpoints object into an EndpointSlice.
  ... web --ip IP --port P
      Service bench/web (port 80 -> P) with one endpoint IP:P.
  ... node --name NAME --ip IP
      a Node object for kube-proxy (InternalIP IP).
  ... count-slices
      prints the number of EndpointSlices in the cluster.
  ... churn --services N --endpoints E --count K --interval S [--log FILE]
      K endpoint changes, one every S seconds: Endpoints svc-i gets
      its last address replaced (a different Service each time) and
      endpoints.kubernetes.io/last-change-trigger-time set to the time of
      the change. Each line of FILE: "k wall_time_ns service".
"""
import argparse
import http.client
import ipaddress
import json
import ssl
import sys
import threading
import time
import urllib.parse

NS = "bench"  # bench/web lives here


def ns_of(i):
    """Services are spread over 100 namespaces, as in a real cluster; all in
    one namespace, 1.20's mirroring controller (a label-selector scan of the
    namespace's slices per sync) slows down quadratically."""
    return f"bench-{i % 100:02d}"


class Api:
    def __init__(self, server, pki):
        u = urllib.parse.urlparse(server)
        self.host, self.port = u.hostname, u.port or 443
        self.ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
        self.ctx.load_cert_chain(f"{pki}/admin.crt", f"{pki}/admin.key")
        self.conn = None

    def request(self, method, path, body=None, ctype="application/json", ok=(200, 201)):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(5):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                                            timeout=60)
                self.conn.request(method, path, body=data, headers={"Content-Type": ctype})
                r = self.conn.getresponse()
                payload = r.read()
            except (OSError, http.client.HTTPException):
                self.conn = None
                time.sleep(0.2 * (attempt + 1))
                continue
            if r.status in ok:
                return json.loads(payload) if payload else None
            if r.status == 409 and method == "POST":
                return None  # already there: a re-run
            if r.status == 429 or r.status >= 500:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: {payload[:300]!r}")
        raise RuntimeError(f"{method} {path}: giving up")


def endpoint_ip(i, j, e):
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.244.0.0")) + 16 + i * e + j))


def service(name, port=80, target=8080, ns=NS):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": port, "targetPort": target,
                                "protocol": "TCP"}]}}


def endpoints(name, ips, port=8080, annotations=None, ns=NS):
    meta = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
            "subsets": [{"addresses": [{"ip": ip} for ip in ips],
                         "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}]}


def ensure_ns(api, name=NS):
    api.request("POST", "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def parallel(a, threads, fn):
    """fn(api, i) for i in range(a.services), over `threads` connections."""
    errors = []

    def worker(k):
        api = Api(a.server, a.pki)
        try:
            for i in range(k, a.services, threads):
                fn(api, i)
        except Exception as e:  # reported below, the run fails
            errors.append(str(e))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(errors[0])


def cmd_create(a):
    api = Api(a.server, a.pki)
    for k in range(min(a.services, 100)):
        ensure_ns(api, ns_of(k))
    t0 = time.monotonic()
    # Service creation serializes on the ClusterIP allocator (one etcd
    # key): few connections go faster than many.
    parallel(a, 2, lambda api, i: api.request(
        "POST", f"/api/v1/namespaces/{ns_of(i)}/services", service(f"svc-{i:05d}", ns=ns_of(i))))
    t1 = time.monotonic()
    # Then the Endpoints, which the mirroring controller turns into slices
    # as they come, one sync each. (Creating a Service and its Endpoints
    # in quick succession makes 1.20's controller sync twice before its
    # cache has the first slice, and sometimes mirror one Endpoints object
    # into two slices.)
    parallel(a, a.threads, lambda api, i: api.request(
        "POST", f"/api/v1/namespaces/{ns_of(i)}/endpoints",
        endpoints(f"svc-{i:05d}", [endpoint_ip(i, j, a.endpoints) for j in range(a.endpoints)],
                  ns=ns_of(i))))
    t2 = time.monotonic()
    print(f"created {a.services} Services in {t1 - t0:.1f} s ({a.services / (t1 - t0):.0f}/s), "
          f"{a.services} Endpoints in {t2 - t1:.1f} s ({a.services / (t2 - t1):.0f}/s)")
    return 0


def cmd_web(a):
    api = Api(a.server, a.pki)
    ensure_ns(api)
    api.request("POST", f"/api/v1/namespaces/{NS}/endpoints", endpoints("web", [a.ip], a.port))
    api.request("POST", f"/api/v1/namespaces/{NS}/services", service("web", 80, a.port))
    svc = api.request("GET", f"/api/v1/namespaces/{NS}/services/web")
    print(svc["spec"]["clusterIP"])
    return 0


def cmd_node(a):
    """A Node object for kube-proxy's --hostname-override: without one, 1.20
    retries for ~30 s before it falls back to 127.0.0.1 as its node IP."""
    Api(a.server, a.pki).request("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": a.name},
        "status": {"addresses": [{"type": "InternalIP", "address": a.ip}]}})
    return 0


def cmd_count_slices(a):
    api = Api(a.server, a.pki)
    r = api.request("GET", "/apis/discovery.k8s.io/v1beta1/endpointslices?limit=1")
    n = len(r.get("items", [])) + int(r.get("metadata", {}).get("remainingItemCount", 0) or 0)
    print(n)
    return 0


def rfc3339nano(ns):
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def cmd_churn(a):
    api = Api(a.server, a.pki)
    log = open(a.log, "w") if a.log else None
    nxt = time.monotonic()
    for k in range(a.count):
        i = (k * 7919 + a.offset) % a.services
        name = f"svc-{i:05d}"
        ips = [endpoint_ip(i, j, a.endpoints) for j in range(a.endpoints - 1)]
        ips.append(str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.250.0.0")) + a.offset + k)))
        now = time.time_ns()
        body = {"metadata": {"annotations": {
            "endpoints.kubernetes.io/last-change-trigger-time": rfc3339nano(now)}},
            "subsets": endpoints(name, ips)["subsets"]}
        api.request("PATCH", f"/api/v1/namespaces/{ns_of(i)}/endpoints/{name}", body,
                    ctype="application/merge-patch+json")
        if log:
            log.write(f"{k} {now} {ns_of(i)}/{name}\n")
        nxt += a.interval
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()
    if log:
        log.close()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pki", required=True)
    p.add_argument("--server", required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--services", type=int, required=True)
    c.add_argument("--endpoints", type=int, default=10)
    c.add_argument("--threads", type=int, default=4)
    w = sub.add_parser("web")
    w.add_argument("--ip", required=True)
    w.add_argument("--port", type=int, default=80)
    sub.add_parser("count-slices")
    nd = sub.add_parser("node")
    nd.add_argument("--name", required=True)
    nd.add_argument("--ip", required=True)
    ch = sub.add_parser("churn")
    ch.add_argument("--services", type=int, required=True)
    ch.add_argument("--endpoints", type=int, default=10)
    ch.add_argument("--count", type=int, required=True)
    ch.add_argument("--interval", type=float, default=0.03)
    ch.add_argument("--offset", type=int, default=0)
    ch.add_argument("--log")
    a = p.parse_args()
    return {"create": cmd_create, "web": cmd_web, "count-slices": cmd_count_slices, "node": cmd_node,
            "churn": cmd_churn}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
