#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A small fake Kubernetes API server for kube-annex's fault-injection tests.

It is used only for what a real kube-apiserver cannot be made to do on
demand: 410 Gone (as an ERROR event or as the HTTP status of a watch),
watches cut in the middle of an event, events trickling in tiny chunks,
multi-megabyte and oversized events, malformed objects, slow or refused
responses, an API server that is down - and discovery.k8s.io/v1, which the
real 1.20 test server does not serve. Everything else is tested against a
real API server.

Python 3 standard library only. Plain HTTP on 127.0.0.1:PORT (run it in a
private network namespace). Objects have the shape a real server gives them:
items of a LIST carry no kind/apiVersion, watch event objects do; LIST pages
honour limit= and hand out continue tokens; watches are newline-delimited JSON
over chunked transfer encoding, one event per chunk, with bookmarks when
allowWatchBookmarks=true; large LIST bodies are gzipped when the client
accepts it (as the real server does above 128 KiB).

Resources: services (/api/v1/services), endpointslices
(/apis/discovery.k8s.io/v1/endpointslices and .../v1beta1/endpointslices, one
store seen through two API versions), endpoints (/api/v1/endpoints),
servicecidrs (/apis/networking.k8s.io/v1/servicecidrs and .../v1beta1,
cluster-scoped, key "/NAME"; served only when the config says so, as 1.20
has none). One global resourceVersion counter, as with etcd.

The test drives it through a control API: HTTP on a unix socket (--control
PATH), so it stays reachable while the API "port" is down. Requests are JSON
bodies; answers are JSON (or text where noted). E.g.

  curl --unix-socket ctl.sock -d '{"namespace":"shop","name":"web",
       "clusterIP":"10.96.0.10","ports":[{"name":"http","port":80,
       "targetPort":8080}],"endpoints":["10.244.0.11"]}' http://fake/service

  POST /service        create/update a Service with its EndpointSlice and
                       core Endpoints (only objects whose content changed get
                       a new resourceVersion and an event). Fields:
                       namespace, name, clusterIP, ports[{name,port,
                       targetPort,protocol}], endpoints (list of IPs, or
                       {"count":N,"start":"10.200.0.1"}), notReady (list of
                       IPs), hints ({IP: [zone, ...]}: hints.forZones of
                       those endpoints), kinds (subset of services/endpointslices/
                       endpoints), mutate ({resource: {"dotted.path": value,
                       "other.path": {"$delete": true}}} applied last, to make
                       malformed objects), pad (bytes of a
                       kubectl last-applied-configuration annotation on the
                       slice and Endpoints), delivery (below).
  POST /delete-service {namespace, name, kinds?, delivery?}
  POST /apply          {resource, object, delivery?}  raw object (key from
                       metadata or from "namespace"/"name")
  POST /delete         {resource, namespace, name, delivery?}
  POST /bulk           {namespace, count, prefix, clusterIPBase, endpointBase,
                       port, targetPort}: count Services with one endpoint each
    delivery: {"mode": "normal"} (default) | {"mode": "silent"} (state only,
      no event ever: a change the client "missed") | {"mode": "cut"} (send
      the first half of the event line on open watches, then drop the
      connection; the event stays in the log and is replayed on reconnect) |
      {"mode": "trickle", "chunk": 3, "delayMs": 1} (the event in tiny HTTP
      chunks) | {"mode": "transient"} (sent to open watches only, not
      stored: for oversized events)
  POST /bookmark       {resource?}: BOOKMARK at the current resourceVersion
  POST /watch-error    {resource?, code?=410}: ERROR event with a Status,
                       then end the stream (as the real server does)
  POST /end-watches    {resource?, abort?}: end open watches (cleanly, like
                       timeoutSeconds, or abort: drop the connection)
  POST /rule           {match (regex on "METHOD path?query"), status?,
                       message?, body?, delay?, emptyWatch?, count? (default
                       1; 0 = forever)}: answer matching requests late and/or
                       with an error Status (or, with body, a text/html page
                       as a proxy would send); emptyWatch: 200 and an
                       immediately finished watch stream
  POST /clear-rules
  POST /config         {discoveryV1: 200|404, discoveryV1beta1: 200|404,
                       serviceCIDRsV1: 200|404 (default 404),
                       serviceCIDRsV1beta1: 200|404 (default 404),
                       maxPageSize: N|0, bookmarkInterval: seconds|0,
                       tokens: [..]|null (accepted bearer tokens; null = any),
                       unavailable: true|false (503 for everything)}
  POST /compact        {resource?}: forget the event log (watches from an
                       older resourceVersion get 410)
  POST /down, /up      close the API listening socket and every open
                       connection / listen again
  GET  /state          {rv, up, counts, watches}
  GET  /requests?since=N   text, one line per API request:
                       "SEQ STATUS METHOD PATH?QUERY auth=TOKEN|-"
                       (STATUS "-" while the answer is pending);
                       &format=json: the same as JSON, with times
  GET  /watches        text: "ID RESOURCE VIEW last_rv=N auth=TOKEN"
"""

import argparse
import base64
import bisect
import copy
import datetime
import gzip
import hashlib
import ipaddress
import json
import os
import queue
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GZIP_THRESHOLD = 128 * 1024  # as the real kube-apiserver
CREATED = "2024-05-01T10:00:00Z"

RESOURCES = {
    "services": {"kind": "Service", "apiVersion": "v1"},
    "endpointslices": {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1"},
    "endpoints": {"kind": "Endpoints", "apiVersion": "v1"},
    "servicecidrs": {"kind": "ServiceCIDR", "apiVersion": "networking.k8s.io/v1"},
}
# what POST /service and /delete-service write by default
SERVICE_KINDS = ("services", "endpointslices", "endpoints")
# resources whose objects carry the apiVersion of the path they are seen through
VIEWED = ("endpointslices", "servicecidrs")

# path regex -> (resource, view apiVersion)
ROUTES = [
    (re.compile(r"^/api/v1(?:/namespaces/([^/]+))?/services$"), "services", "v1"),
    (re.compile(r"^/apis/discovery\.k8s\.io/v1(?:/namespaces/([^/]+))?/endpointslices$"),
     "endpointslices", "discovery.k8s.io/v1"),
    (re.compile(r"^/apis/discovery\.k8s\.io/v1beta1(?:/namespaces/([^/]+))?/endpointslices$"),
     "endpointslices", "discovery.k8s.io/v1beta1"),
    (re.compile(r"^/api/v1(?:/namespaces/([^/]+))?/endpoints$"), "endpoints", "v1"),
    # cluster-scoped: no namespace group
    (re.compile(r"^/apis/networking\.k8s\.io/v1/servicecidrs$"),
     "servicecidrs", "networking.k8s.io/v1"),
    (re.compile(r"^/apis/networking\.k8s\.io/v1beta1/servicecidrs$"),
     "servicecidrs", "networking.k8s.io/v1beta1"),
]

REASONS = {
    400: ("BadRequest", "bad request"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    410: ("Expired", "too old resource version"),
    429: ("TooManyRequests", "too many requests, please try again later"),
    500: ("InternalError", "an error on the server has prevented the request from succeeding"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
}


def log(msg):
    sys.stderr.write("fake-apiserver: %s\n" % msg)
    sys.stderr.flush()


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_object(code, message=None, reason=None):
    r, m = REASONS.get(code, ("Unknown", "error"))
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message or m, "reason": reason or r, "details": {}, "code": code}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def suffix(key, n=5):
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # what generateName uses
    h = hashlib.sha1(key.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in h[:n])


def uid_for(kind, key):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-apiserver/%s/%s" % (kind, key)))


# ---- realistic objects (as stored: no kind/apiVersion) -----------------------

def make_service(ns, name, cluster_ip, ports):
    family = "IPv6" if ":" in cluster_ip else "IPv4"
    sports = []
    for p in ports:
        sp = {"protocol": p.get("protocol", "TCP"), "port": p["port"],
              "targetPort": p.get("targetPort", p["port"])}
        if p.get("name"):
            sp = {"name": p["name"], **sp}
        sports.append(sp)
    return {
        "metadata": {
            "name": name, "namespace": ns, "uid": uid_for("Service", ns + "/" + name),
            "resourceVersion": "0", "creationTimestamp": CREATED,
            "labels": {"app": name},
            "managedFields": [{
                "manager": "kubectl-client-side-apply", "operation": "Update",
                "apiVersion": "v1", "time": CREATED, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:ports": {}, "f:selector": {}, "f:type": {}}}}],
        },
        "spec": {
            "ports": sports, "selector": {"app": name}, "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip], "type": "ClusterIP", "sessionAffinity": "None",
            "ipFamilies": [family], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    }


def endpoint_ports(ports):
    out = []
    for p in ports:
        tp = p.get("targetPort", p["port"])
        ep = {"protocol": p.get("protocol", "TCP"), "port": tp if isinstance(tp, int) else p["port"]}
        ep = {"name": p.get("name", ""), **ep}
        out.append(ep)
    return out


def pod_name(svc, ip):
    return "%s-7d4b9c%s-%s" % (svc, suffix(svc, 3), suffix(ip))


def make_slice(ns, svc, slice_name, ready, not_ready, ports, hints=None):
    family = "IPv6" if any(":" in ip for ip in ready + not_ready) else "IPv4"
    eps = []
    for ip, ok in [(ip, True) for ip in ready] + [(ip, False) for ip in not_ready]:
        node = "node-%d" % (int(hashlib.sha1(ip.encode()).hexdigest(), 16) % 3 + 1)
        ep = {
            "addresses": [ip],
            "conditions": {"ready": ok, "serving": ok, "terminating": False},
            "targetRef": {"kind": "Pod", "namespace": ns, "name": pod_name(svc, ip),
                          "uid": uid_for("Pod", ns + "/" + ip)},
            "nodeName": node,
            "zone": "zone-" + node[-1],
        }
        if hints and ip in hints:
            ep["hints"] = {"forZones": [{"name": z} for z in hints[ip]]}
        eps.append(ep)
    return {
        "metadata": {
            "name": slice_name, "generateName": svc + "-", "namespace": ns,
            "uid": uid_for("EndpointSlice", ns + "/" + slice_name), "resourceVersion": "0",
            "generation": 1, "creationTimestamp": CREATED,
            "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                       "kubernetes.io/service-name": svc},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": now_rfc3339()},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc,
                                 "uid": uid_for("Service", ns + "/" + svc), "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "addressType": family,
        "endpoints": eps,
        "ports": endpoint_ports(ports),
    }


def make_endpoints(ns, svc, ready, not_ready, ports):
    def addr(ip):
        return {"ip": ip, "nodeName": "node-%d" % (int(hashlib.sha1(ip.encode()).hexdigest(), 16) % 3 + 1),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pod_name(svc, ip),
                              "uid": uid_for("Pod", ns + "/" + ip)}}
    subset = {}
    if ready:
        subset["addresses"] = [addr(ip) for ip in ready]
    if not_ready:
        subset["notReadyAddresses"] = [addr(ip) for ip in not_ready]
    if subset:
        subset["ports"] = [{"name": p["name"], "port": p["port"], "protocol": p["protocol"]}
                           if p["name"] else {"port": p["port"], "protocol": p["protocol"]}
                           for p in endpoint_ports(ports)]
    obj = {
        "metadata": {
            "name": svc, "namespace": ns, "uid": uid_for("Endpoints", ns + "/" + svc),
            "resourceVersion": "0", "creationTimestamp": CREATED, "labels": {"app": svc},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": now_rfc3339()},
        },
    }
    if subset:
        obj["subsets"] = [subset]
    return obj


def to_view(resource, view, obj):
    """The object as the given API version serves it."""
    if resource != "endpointslices" or view == "discovery.k8s.io/v1":
        return obj
    o = copy.deepcopy(obj)
    for ep in o.get("endpoints") or []:
        if not isinstance(ep, dict):
            continue
        topo = dict(ep.pop("deprecatedTopology", None) or {})
        if ep.get("nodeName"):
            topo["kubernetes.io/hostname"] = ep["nodeName"]
        zone = ep.pop("zone", None)
        if zone:
            topo["topology.kubernetes.io/zone"] = zone
        if topo:
            ep["topology"] = topo
    return o


def with_kind(resource, view, obj):
    info = RESOURCES[resource]
    o = {"kind": info["kind"], "apiVersion": view if resource in VIEWED else info["apiVersion"]}
    o.update(to_view(resource, view, obj))
    return o


def bookmark_object(resource, view, rv):
    o = {"kind": RESOURCES[resource]["kind"],
         "apiVersion": view if resource in VIEWED else RESOURCES[resource]["apiVersion"],
         "metadata": {"resourceVersion": str(rv), "creationTimestamp": None}}
    if resource == "services":
        o.update({"spec": {}, "status": {"loadBalancer": {}}})
    elif resource == "endpointslices":
        o.update({"addressType": "", "endpoints": None})
    return o


def set_path(obj, path, value):
    parts = path.split(".")
    cur = obj
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur.setdefault(p, {})
    last = parts[-1]
    if isinstance(value, dict) and value.get("$delete"):
        if isinstance(cur, list):
            del cur[int(last)]
        else:
            cur.pop(last, None)
    elif isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value


def expand_ips(spec):
    if spec is None:
        return []
    if isinstance(spec, dict):
        start = int(ipaddress.ip_address(spec["start"]))
        cls = ipaddress.IPv6Address if ":" in spec["start"] else ipaddress.IPv4Address
        return [str(cls(start + i)) for i in range(spec["count"])]
    return list(spec)


# ---- state ------------------------------------------------------------------

class Watcher:
    ids = 0

    def __init__(self, resource, view, token, start_rv):
        Watcher.ids += 1
        self.id = Watcher.ids
        self.resource = resource
        self.view = view
        self.token = token
        self.last_rv = start_rv  # last complete event (or bookmark) sent
        self.q = queue.Queue()


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.rv = 1000
        self.objects = {r: {} for r in RESOURCES}
        self.events = {r: [] for r in RESOURCES}  # (rv, type, obj)
        self.compacted = {r: 0 for r in RESOURCES}
        self.watchers = set()
        self.requests = []
        self.rules = []
        self.config = {
            "discoveryV1": args.discovery_v1, "discoveryV1beta1": args.discovery_v1beta1,
            "serviceCIDRsV1": 404, "serviceCIDRsV1beta1": 404,
            "maxPageSize": args.max_page_size, "bookmarkInterval": args.bookmark_interval,
            "tokens": None, "unavailable": False,
        }

    def next_rv(self):
        self.rv += 1
        return self.rv

    def change(self, resource, key, obj, etype, delivery):
        """Store (or delete, obj None) and deliver. Returns the new rv or None."""
        mode = (delivery or {}).get("mode", "normal")
        with self.lock:
            old = self.objects[resource].get(key)
            if obj is not None and old is not None and mode != "transient":
                a = copy.deepcopy(obj)
                b = copy.deepcopy(old)
                for x in (a, b):
                    x.get("metadata", {}).pop("resourceVersion", None)
                    x.get("metadata", {}).get("annotations", {}).pop(
                        "endpoints.kubernetes.io/last-change-trigger-time", None)
                if a == b:
                    return None  # unchanged: the real server writes nothing either
            if obj is None and old is None:
                return None
            rv = self.next_rv()
            if obj is None:
                gone = copy.deepcopy(old)
                gone.setdefault("metadata", {})["resourceVersion"] = str(rv)
                event_obj, etype = gone, "DELETED"
            else:
                obj = copy.deepcopy(obj)
                obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
                event_obj = obj
                etype = etype or ("MODIFIED" if old is not None else "ADDED")
            if mode != "transient":
                if obj is None:
                    del self.objects[resource][key]
                else:
                    self.objects[resource][key] = obj
            if mode == "silent":
                return rv
            if mode != "transient":
                self.events[resource].append((rv, etype, event_obj))
            item = {"kind": "event", "rv": rv, "type": etype, "obj": event_obj,
                    "mode": mode, "delivery": delivery or {}}
            for w in list(self.watchers):
                if w.resource == resource:
                    w.q.put(item)
            return rv

    def broadcast(self, resource, item):
        with self.lock:
            ws = [w for w in self.watchers if resource in (None, w.resource)]
            for w in ws:
                w.q.put(dict(item))
            return ws


S = None  # the State
API = {"server": None, "thread": None, "port": 0}
API_LOCK = threading.Lock()


def log_request(method, target, token):
    with S.lock:
        entry = {"seq": len(S.requests) + 1, "time": round(time.time(), 3),
                 "method": method, "target": target,
                 "auth": token or "-", "status": "-"}
        S.requests.append(entry)
        return entry


def match_rule(line):
    with S.lock:
        for r in S.rules:
            if re.search(r["match"], line):
                if r["count"] > 0:
                    r["count"] -= 1
                    if r["count"] == 0:
                        S.rules.remove(r)
                return dict(r)
    return None


# ---- the API server -----------------------------------------------------------

def quiet_handle_error(request, client_address):
    """A client that goes away mid-answer (kube-annex refusing an oversized
    body, a test's curl) is normal here; anything else is a bug: say so."""
    exc = sys.exc_info()[1]
    if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
        return
    import traceback
    log("error while handling a request:\n" + traceback.format_exc())


class APIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        quiet_handle_error(request, client_address)

    def __init__(self, *a, **kw):
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.stopping = False
        super().__init__(*a, **kw)


class APIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver/1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        # As Go's net/http (and so kube-apiserver) does: no Nagle delay
        # between a response's header and body writes.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)

    # -- responses --

    def send_json(self, code, obj, entry):
        body = obj if isinstance(obj, bytes) else dumps(obj)
        entry["status"] = code
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        if len(body) > GZIP_THRESHOLD and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body, 1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_raw(self, code, body, content_type, entry):
        entry["status"] = code
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_status(self, code, entry, message=None):
        self.send_json(code, status_object(code, message), entry)

    def chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")

    def abort(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- dispatch --

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else ("basic" if auth.startswith("Basic ") else None)
        entry = log_request("GET", self.path, token)
        rule = match_rule("GET " + self.path)
        if rule and rule.get("delay"):
            time.sleep(rule["delay"])
        if self.server.stopping:
            self.abort()
            return
        if rule and rule.get("emptyWatch"):
            entry["status"] = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.end_chunks()
            return
        if rule and rule.get("status"):
            if rule.get("body") is not None:
                return self.send_raw(rule["status"], rule["body"].encode(), "text/html", entry)
            return self.send_status(rule["status"], entry, rule.get("message"))
        with S.lock:
            cfg = dict(S.config)
        if cfg["unavailable"]:
            return self.send_status(503, entry)
        if cfg["tokens"] is not None and token not in cfg["tokens"]:
            return self.send_status(401, entry)
        path = url.path.rstrip("/") or "/"
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake",
                                        "platform": "linux/amd64"}, entry)
        if path == "/apis/discovery.k8s.io/v1":
            return self.discovery(entry, "discovery.k8s.io/v1", cfg["discoveryV1"])
        if path == "/apis/discovery.k8s.io/v1beta1":
            return self.discovery(entry, "discovery.k8s.io/v1beta1", cfg["discoveryV1beta1"])
        if path == "/apis/networking.k8s.io/v1":
            return self.discovery(entry, "networking.k8s.io/v1", cfg["serviceCIDRsV1"])
        if path == "/apis/networking.k8s.io/v1beta1":
            return self.discovery(entry, "networking.k8s.io/v1beta1", cfg["serviceCIDRsV1beta1"])
        for rx, resource, view in ROUTES:
            m = rx.match(path)
            if not m:
                continue
            if resource == "endpointslices":
                want = cfg["discoveryV1" if view.endswith("/v1") else "discoveryV1beta1"]
                if want != 200:
                    break
            if resource == "servicecidrs":
                if cfg["serviceCIDRsV1" if view.endswith("/v1") else "serviceCIDRsV1beta1"] != 200:
                    break
            ns = m.group(1) if rx.groups else None
            if query.get("watch", ["0"])[0] in ("1", "true"):
                return self.watch(entry, resource, view, ns, query, token)
            return self.list(entry, resource, view, ns, query, cfg)
        return self.send_status(404, entry)

    def discovery(self, entry, gv, code):
        if code != 200:
            return self.send_status(code, entry)
        if gv.startswith("networking.k8s.io/"):
            # what a 1.33 server lists besides (the Ingress family left out)
            return self.send_json(200, {
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": [
                    {"name": "networkpolicies", "singularName": "networkpolicy", "namespaced": True,
                     "kind": "NetworkPolicy", "verbs": ["get", "list", "watch"]},
                    {"name": "servicecidrs", "singularName": "servicecidr", "namespaced": False,
                     "kind": "ServiceCIDR",
                     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch",
                               "update", "watch"]},
                    {"name": "servicecidrs/status", "singularName": "", "namespaced": False,
                     "kind": "ServiceCIDR", "verbs": ["get", "patch", "update"]}]}, entry)
        self.send_json(200, {
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [{"name": "endpointslices", "singularName": "endpointslice",
                           "namespaced": True, "kind": "EndpointSlice",
                           "verbs": ["create", "delete", "deletecollection", "get", "list",
                                     "patch", "update", "watch"],
                           "storageVersionHash": "Nx3SIv6I0mE="}]}, entry)

    def list(self, entry, resource, view, ns, query, cfg):
        limit = int(query.get("limit", ["0"])[0] or 0)
        if cfg["maxPageSize"]:
            limit = min(limit, cfg["maxPageSize"]) if limit else cfg["maxPageSize"]
        cont = query.get("continue", [""])[0]
        with S.lock:
            keys = sorted(k for k in S.objects[resource] if ns is None or k.split("/")[0] == ns)
            start, rv = 0, S.rv
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                    rv, after = int(tok["rv"]), tok["start"].rstrip("\0")
                except (ValueError, KeyError, TypeError):
                    return self.send_status(400, entry, "continue key is not valid")
                if rv < S.compacted[resource]:
                    return self.send_status(
                        410, entry, "The provided continue parameter is too old to display a "
                        "consistent list result. You can start a new list without the continue "
                        "parameter, or use the continue token in this response to retrieve the "
                        "remainder of the results.")
                start = bisect.bisect_right(keys, after)
            end = len(keys) if not limit else min(len(keys), start + limit)
            items = [to_view(resource, view, S.objects[resource][k]) for k in keys[start:end]]
        meta = {"resourceVersion": str(rv)}
        if end < len(keys):
            meta["continue"] = base64.urlsafe_b64encode(dumps(
                {"v": "meta.k8s.io/v1", "rv": rv, "start": keys[end - 1] + "\0"})).decode().rstrip("=")
            meta["remainingItemCount"] = len(keys) - end
        kind = RESOURCES[resource]["kind"] + "List"
        api = view if resource in VIEWED else "v1"
        self.send_json(200, {"kind": kind, "apiVersion": api, "metadata": meta, "items": items}, entry)

    def watch(self, entry, resource, view, ns, query, token):
        rv_s = query.get("resourceVersion", [""])[0]
        bookmarks = query.get("allowWatchBookmarks", ["false"])[0] in ("1", "true")
        timeout = int(query.get("timeoutSeconds", ["1800"])[0] or 1800)
        with S.lock:
            try:
                rv = int(rv_s) if rv_s not in ("", "0") else S.rv
            except ValueError:
                return self.send_status(400, entry, 'invalid resource version "%s"' % rv_s)
            w = Watcher(resource, view, token, rv)
            expired = rv < S.compacted[resource]
            replay = [] if expired else [e for e in S.events[resource] if e[0] > rv]
            if not expired:
                S.watchers.add(w)
            current = S.rv
        entry["status"] = 200
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if expired:
                self.send_error_event(410, "too old resource version: %d (%d)" % (rv, current))
                self.end_chunks()
                return
            for rv_e, etype, obj in replay:
                if ns is None or obj["metadata"].get("namespace") == ns:
                    self.send_event(w, {"kind": "event", "rv": rv_e, "type": etype, "obj": obj,
                                        "mode": "normal"})
            self.watch_loop(w, ns, timeout, bookmarks)
        except OSError:
            self.close_connection = True
        finally:
            with S.lock:
                S.watchers.discard(w)

    def watch_loop(self, w, ns, timeout, bookmarks):
        deadline = time.monotonic() + timeout
        next_bookmark = None
        while True:
            interval = S.config["bookmarkInterval"]
            if bookmarks and interval and next_bookmark is None:
                next_bookmark = time.monotonic() + interval
            now = time.monotonic()
            if now >= deadline:
                self.end_chunks()
                return
            if next_bookmark is not None and now >= next_bookmark:
                self.send_bookmark(w)
                next_bookmark = None
                continue
            wait = min(0.2, deadline - now)
            try:
                item = w.q.get(timeout=wait)
            except queue.Empty:
                if self.server.stopping:
                    return self.abort()
                continue
            k = item["kind"]
            if k == "abort":
                return self.abort()
            if k == "end":
                self.end_chunks()
                return
            if k == "error":
                self.send_error_event(item["code"], item["message"])
                self.end_chunks()
                return
            if k == "bookmark":
                if bookmarks:
                    self.send_bookmark(w)
                continue
            if k == "event":
                if ns is not None and item["obj"].get("metadata", {}).get("namespace") != ns:
                    continue
                if not self.send_event(w, item):
                    return

    def send_bookmark(self, w):
        with S.lock:
            rv = S.rv
        self.chunk(dumps({"type": "BOOKMARK", "object": bookmark_object(w.resource, w.view, rv)}) + b"\n")
        w.last_rv = rv

    def send_error_event(self, code, message):
        self.chunk(dumps({"type": "ERROR", "object": status_object(code, message)}) + b"\n")

    def send_event(self, w, item):
        """False when the stream was cut."""
        line = dumps({"type": item["type"],
                      "object": with_kind(w.resource, w.view, item["obj"])}) + b"\n"
        mode = item.get("mode", "normal")
        d = item.get("delivery") or {}
        if mode == "cut":
            self.chunk(line[: len(line) // 2])
            self.abort()
            return False
        if mode == "trickle":
            n = max(1, int(d.get("chunk", 3)))
            delay = float(d.get("delayMs", 1)) / 1000.0
            for i in range(0, len(line), n):
                self.chunk(line[i:i + n])
                if delay:
                    time.sleep(delay)
        else:
            self.chunk(line)
        w.last_rv = item["rv"]
        return True


def api_up(port):
    with API_LOCK:
        if API["server"] is not None:
            return False
        srv = None
        for _ in range(50):
            try:
                srv = APIServer(("127.0.0.1", port), APIHandler)
                break
            except OSError as e:
                last = e
                time.sleep(0.1)
        if srv is None:
            raise last
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        API.update(server=srv, thread=t, port=srv.server_address[1])
        log("API listening on 127.0.0.1:%d" % API["port"])
        return True


def api_down():
    with API_LOCK:
        srv = API["server"]
        if srv is None:
            return False
        API["server"] = None
        srv.stopping = True
        srv.shutdown()
        srv.server_close()
        with srv.conns_lock:
            conns = list(srv.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        S.broadcast(None, {"kind": "abort"})
        log("API down (listening socket closed, %d connections dropped)" % len(conns))
        return True


# ---- control API ----------------------------------------------------------------

def ports_of(body):
    out = []
    for p in body.get("ports") or [{"port": 80, "targetPort": 8080}]:
        q = {"name": p.get("name", ""), "port": p["port"], "targetPort": p.get("targetPort", p["port"]),
             "protocol": p.get("protocol", "TCP")}
        out.append(q)
    return out


def service_objects(body):
    ns, name = body["namespace"], body["name"]
    ports = ports_of(body)
    ready = expand_ips(body.get("endpoints"))
    not_ready = expand_ips(body.get("notReady"))
    slice_name = body.get("sliceName") or "%s-%s" % (name, suffix(ns + "/" + name))
    objs = {
        "services": (ns + "/" + name, make_service(ns, name, body.get("clusterIP", "10.96.0.1"), ports)),
        "endpointslices": (ns + "/" + slice_name,
                           make_slice(ns, name, slice_name, ready, not_ready, ports, body.get("hints"))),
        "endpoints": (ns + "/" + name, make_endpoints(ns, name, ready, not_ready, ports)),
    }
    pad = int(body.get("pad") or 0)
    if pad:
        blob = json.dumps({"apiVersion": "v1", "kind": "Endpoints",
                           "metadata": {"name": name, "namespace": ns},
                           "padding": "x" * pad})
        for r in ("endpointslices", "endpoints"):
            objs[r][1]["metadata"].setdefault("annotations", {})[
                "kubectl.kubernetes.io/last-applied-configuration"] = blob
    for r, muts in (body.get("mutate") or {}).items():
        for path, value in muts.items():
            set_path(objs[r][1], path, value)
    return objs


def bulk(body):
    ns = body.get("namespace", "bulk")
    n = int(body["count"])
    prefix = body.get("prefix", "svc")
    cbase = int(ipaddress.ip_address(body.get("clusterIPBase", "10.97.0.0")))
    ebase = int(ipaddress.ip_address(body.get("endpointBase", "10.245.0.0")))
    for i in range(n):
        b = {"namespace": ns, "name": "%s-%04d" % (prefix, i),
             "clusterIP": str(ipaddress.IPv4Address(cbase + 1 + i)),
             "ports": [{"port": body.get("port", 80), "targetPort": body.get("targetPort", 8080)}],
             "endpoints": [str(ipaddress.IPv4Address(ebase + 1 + i))]}
        for r, (key, obj) in service_objects(b).items():
            S.change(r, key, obj, None, None)
    return {"rv": S.rv, "count": n}


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        quiet_handle_error(request, client_address)


class ControlHandler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj, text=False):
        body = obj.encode() if text else dumps(obj) + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/state":
            with S.lock:
                return self.reply(200, {
                    "rv": S.rv, "up": API["server"] is not None, "port": API["port"],
                    "counts": {r: len(o) for r, o in S.objects.items()},
                    "watches": len(S.watchers), "requests": len(S.requests)})
        if url.path == "/requests":
            since = int(q.get("since", ["0"])[0])
            if q.get("format") == ["json"]:
                with S.lock:
                    return self.reply(200, S.requests[since:])
            with S.lock:
                lines = ["%d %s %s %s auth=%s\n" % (e["seq"], e["status"], e["method"], e["target"], e["auth"])
                         for e in S.requests[since:]]
            return self.reply(200, "".join(lines), text=True)
        if url.path == "/watches":
            with S.lock:
                lines = ["%d %s %s last_rv=%d auth=%s\n" % (w.id, w.resource, w.view, w.last_rv, w.token or "-")
                         for w in sorted(S.watchers, key=lambda w: w.id)]
            return self.reply(200, "".join(lines), text=True)
        return self.reply(404, {"error": "no such control path"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
            out = self.dispatch(self.path, body)
        except (KeyError, ValueError, TypeError, IndexError) as e:
            return self.reply(400, {"error": "%s: %s" % (type(e).__name__, e)})
        if out is None:
            return self.reply(404, {"error": "no such control path"})
        self.reply(200, out)

    def dispatch(self, path, b):
        resource = b.get("resource")
        if resource is not None and resource not in RESOURCES:
            raise ValueError("unknown resource %s" % resource)
        delivery = b.get("delivery")
        if path == "/service":
            objs = service_objects(b)
            kinds = b.get("kinds") or list(SERVICE_KINDS)
            out = {}
            for r in kinds:
                key, obj = objs[r]
                out[r] = {"key": key, "rv": S.change(r, key, obj, None, delivery),
                          "bytes": len(dumps(obj))}
            return out
        if path == "/delete-service":
            objs = service_objects(b)
            out = {}
            for r in b.get("kinds") or list(SERVICE_KINDS):
                key = objs[r][0]
                out[r] = {"key": key, "rv": S.change(r, key, None, None, delivery)}
            return out
        if path == "/apply":
            obj = b["object"]
            md = obj.get("metadata", {})
            key = "%s/%s" % (b.get("namespace", md.get("namespace")), b.get("name", md.get("name")))
            return {"key": key, "rv": S.change(resource, key, obj, None, delivery)}
        if path == "/delete":
            key = "%s/%s" % (b["namespace"], b["name"])
            return {"key": key, "rv": S.change(resource, key, None, None, delivery)}
        if path == "/bulk":
            return bulk(b)
        if path == "/bookmark":
            with S.lock:
                rv = S.rv
                ws = S.broadcast(resource, {"kind": "bookmark"})
            return {"rv": rv, "watchers": [w.id for w in ws]}
        if path == "/watch-error":
            code = int(b.get("code", 410))
            with S.lock:
                msg = b.get("message") or ("too old resource version: %d (%d)" % (S.rv - 1, S.rv)
                                           if code == 410 else None)
                ws = S.broadcast(resource, {"kind": "error", "code": code, "message": msg})
            return {"watchers": [w.id for w in ws]}
        if path == "/end-watches":
            ws = S.broadcast(resource, {"kind": "abort" if b.get("abort") else "end"})
            return {"watchers": [w.id for w in ws]}
        if path == "/rule":
            rule = {"match": b["match"], "status": b.get("status"), "delay": b.get("delay"),
                    "message": b.get("message"), "body": b.get("body"),
                    "emptyWatch": bool(b.get("emptyWatch")), "count": int(b.get("count", 1))}
            re.compile(rule["match"])
            with S.lock:
                S.rules.append(rule)
            return {"rules": len(S.rules)}
        if path == "/clear-rules":
            with S.lock:
                S.rules.clear()
            return {"rules": 0}
        if path == "/config":
            with S.lock:
                for k, v in b.items():
                    if k not in S.config:
                        raise KeyError(k)
                    S.config[k] = v
                return dict(S.config)
        if path == "/compact":
            with S.lock:
                for r in ([resource] if resource else list(RESOURCES)):
                    S.compacted[r] = S.rv
                    S.events[r] = []
                return {"rv": S.rv}
        if path == "/down":
            return {"changed": api_down()}
        if path == "/up":
            return {"changed": api_up(API["port"])}
        return None


def main():
    global S
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--control", required=True, help="unix socket for the control API")
    ap.add_argument("--down", action="store_true", help="start with the API port closed")
    ap.add_argument("--discovery-v1", type=int, default=200)
    ap.add_argument("--discovery-v1beta1", type=int, default=200)
    ap.add_argument("--max-page-size", type=int, default=0)
    ap.add_argument("--bookmark-interval", type=float, default=0)
    args = ap.parse_args()
    S = State(args)
    API["port"] = args.port
    try:
        os.unlink(args.control)
    except FileNotFoundError:
        pass
    ctl = ControlServer(args.control, ControlHandler)
    if not args.down:
        api_up(args.port)
    log("control on %s" % args.control)
    try:
        ctl.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            os.unlink(args.control)
        except OSError:
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
