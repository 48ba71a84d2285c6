#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the ruleset kube-proxy's nftables mode would send for the bench
Services, as the `nft -f` transaction knftables builds (one `add`/`flush`
command per line), for comparison with kube-annex's cold programming.

  gen-kube-proxy-ruleset.py --style 1.35|1.36 --services N --endpoints E

Layouts follow /work/shared/reference/kube-proxy-nftables.md:
  1.35  era B (<= v1.35): a chain per service and per endpoint,
        `numgen random mod N vmap { i : goto endpoint-... }`,
        mark-for-masquerade chain, per-endpoint hairpin rule;
  1.36  era C (v1.36): a chain per service with an anonymous
        `dnat ip addr . port to numgen random mod N map { i : addr . port }`,
        inline masquerade mark, hairpin-connections set.

The Services are the same ones bench/nft-cold.c programs through kube-annex:
Service i is bench-KK/svc-NNNNN (KK = i mod 100), ClusterIP 10.96.0.0 + 256 + i, TCP port 80
named "http", endpoints 10.244.0.0 + 16 + i*E + j, port 8080.
"""
import argparse
import base64
import hashlib
import ipaddress
import sys

T = "ip kube-proxy"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"


def vip(i):
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.96.0.0")) + 256 + i))


def endpoint(i, j, e):
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.244.0.0")) + 16 + i * e + j))


def hashed(name):
    """kube-proxy's hashAndTruncate: base32(sha256(name))[:8] + "-" + name."""
    h = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    out = h[:8] + "-" + name
    return out if len(out) <= 240 else out[:237] + "..."


def base(w, style):
    w(f'add table {T} {{ comment "rules for kube-proxy" ; }}')
    chains = [
        ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
        ("filter-output-pre-dnat", "filter", "output", -110),
        ("filter-forward", "filter", "forward", 0),
        ("filter-input", "filter", "input", 0),
        ("filter-output", "filter", "output", 0),
        ("nat-output", "nat", "output", -100),
        ("nat-postrouting", "nat", "postrouting", 100),
        ("nat-prerouting", "nat", "prerouting", -100),
    ]
    for name, typ, hook, prio in chains:
        w(f"add chain {T} {name} {{ type {typ} hook {hook} priority {prio} ; }}")
        w(f"flush chain {T} {name}")
    for name in ["firewall-check", "services", "masquerading", "reject-chain",
                 "cluster-ips-check", "service-endpoints-check", "nodeport-endpoints-check"]:
        w(f"add chain {T} {name}")
        w(f"flush chain {T} {name}")
    if style == "1.35":
        w(f"add chain {T} mark-for-masquerade")
        w(f"flush chain {T} mark-for-masquerade")
        w(f"add rule {T} mark-for-masquerade mark set mark or 0x4000")
        w(f"add rule {T} masquerading mark and 0x4000 == 0 return")
        w(f"add rule {T} masquerading mark set mark xor 0x4000")
        w(f"add rule {T} masquerading masquerade fully-random")
    else:
        w(f"add set {T} hairpin-connections {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service ; "
          f'comment "service hairpin connections" ; }}')
        w(f"add rule {T} masquerading meta mark & 0x4000 != 0 meta mark set meta mark ^ 0x4000 "
          f"masquerade fully-random")
        w(f"add rule {T} masquerading ct status dnat ip saddr . ip daddr . meta l4proto . th dport "
          f"@hairpin-connections masquerade fully-random")
    w(f'add set {T} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}')
    w(f'add set {T} nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }}')
    w(f"add map {T} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; "
      f'comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}')
    w(f'add map {T} service-nodeports {{ type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }}')
    w(f"add map {T} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; "
      f'comment "vmap to drop or reject packets to services with no endpoints" ; }}')
    w(f"add map {T} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; "
      f'comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }}')
    w(f"add map {T} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; "
      f'comment "destinations that are subject to LoadBalancerSourceRanges" ; }}')
    for c in ["filter-prerouting-pre-dnat", "filter-output-pre-dnat"]:
        w(f"add rule {T} {c} ct state new jump firewall-check")
    w(f"add rule {T} filter-input ct state new jump nodeport-endpoints-check")
    w(f"add rule {T} filter-input ct state new jump service-endpoints-check")
    for c in ["filter-forward", "filter-output"]:
        w(f"add rule {T} {c} ct state new jump service-endpoints-check")
        w(f"add rule {T} {c} ct state new jump cluster-ips-check")
    for c in ["nat-output", "nat-prerouting"]:
        w(f"add rule {T} {c} jump services")
    w(f"add rule {T} nat-postrouting jump masquerading")
    w(f"add rule {T} reject-chain reject")
    w(f"add rule {T} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips")
    w(f"add rule {T} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services")
    w(f"add rule {T} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport "
      f"vmap @no-endpoint-nodeports")
    w(f'add rule {T} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"')
    w(f'add rule {T} cluster-ips-check ip daddr {{ {SERVICE_CIDR} }} drop comment "Drop traffic to unallocated ClusterIPs"')
    if style == "1.36":
        w(f"add rule {T} services ip daddr @cluster-ips ip saddr != {CLUSTER_CIDR} meta mark set meta mark | 0x4000 "
          f'comment "masquerade clusterIP traffic from outside cluster"')
    w(f"add rule {T} services ip daddr . meta l4proto . th dport vmap @service-ips")
    w(f"add rule {T} services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports")


def service(w, style, i, e):
    svc = f"bench-{i % 100:02d}/svc-{i:05d}"
    port_name = f"{svc}/tcp/http"
    chain = "service-" + hashed(port_name)
    ip = vip(i)
    eps = [endpoint(i, j, e) for j in range(e)]
    if style == "1.35":
        # Endpoint chains first: the service chain's vmap jumps to them.
        epchains = ["endpoint-" + hashed(f"{port_name}__{a}/8080") for a in eps]
        for a, c in zip(eps, epchains):
            w(f"add chain {T} {c}")
            w(f"flush chain {T} {c}")
            w(f"add rule {T} {c} ip saddr {a} jump mark-for-masquerade")
            w(f"add rule {T} {c} meta l4proto tcp dnat to {a}:8080")
    w(f"add chain {T} {chain}")
    w(f"flush chain {T} {chain}")
    if style == "1.35":
        w(f"add rule {T} {chain} ip daddr {ip} ip saddr != {CLUSTER_CIDR} jump mark-for-masquerade")
        vmap = " , ".join(f"{j} : goto {c}" for j, c in enumerate(epchains))
        w(f"add rule {T} {chain} numgen random mod {e} vmap {{ {vmap} }}")
    else:
        m = " , ".join(f"{j} : {a} . 8080" for j, a in enumerate(eps))
        w(f"add rule {T} {chain} meta l4proto tcp dnat ip addr . port to numgen random mod {e} map {{ {m} }}")
        for a in eps:
            w(f"add element {T} hairpin-connections {{ {a} . {a} . tcp . 8080 }}")
    w(f"add element {T} cluster-ips {{ {ip} }}")
    w(f'add element {T} service-ips {{ {ip} . tcp . 80 comment "{svc}:http" : goto {chain} }}')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", choices=["1.35", "1.36"], required=True)
    p.add_argument("--services", type=int, required=True)
    p.add_argument("--endpoints", type=int, default=10)
    a = p.parse_args()
    lines = []
    w = lines.append
    base(w, a.style)
    for i in range(a.services):
        service(w, a.style, i, a.endpoints)
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
