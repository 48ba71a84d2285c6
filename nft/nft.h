/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * nft/: the datapath. Owns the tables "ip kube-annex" and "ip6 kube-annex",
 * keeps an in-memory copy of what is committed in them, and turns desired
 * entries into one atomic nfnetlink batch of element/chain changes per
 * commit, built with libnftnl and sent with libmnl (no exec of nft).
 *
 * Layout (per family; "ip" shown):
 *
 *   table ip kube-annex {
 *     map service-ips { type ipv4_addr . inet_proto . inet_service : verdict }
 *         element: 10.96.5.5 . tcp . 80 comment "shop/web:http" : goto lb-3
 *     map backends-3 { typeof ip daddr . meta l4proto . th dport
 *                             . numgen random mod 3 : ip daddr . th dport }
 *         elements: 10.96.5.5 . tcp . 80 . 0 : 10.244.1.7 . 8080, ...
 *     chain lb-3 { dnat ip addr . port to ip daddr . meta l4proto
 *                  . th dport . numgen random mod 3 map @backends-3 }
 *     chain nat-output { type nat hook output priority dstnat;
 *                        ip daddr . meta l4proto . th dport vmap @service-ips }
 *     map no-endpoint-services { type ipv4_addr . inet_proto . inet_service
 *                                : verdict }
 *         element: 10.96.5.6 . tcp . 80 comment "shop/db:sql" : goto reject-chain
 *                  (MODEL_REJECT, or MODEL_FORWARD without backends; MODEL_DROP
 *                  gives ": drop")
 *     set cluster-ips { type ipv4_addr }       every VIP with a key
 *     chain reject-chain { reject }
 *     chain filter-output { type filter hook output priority filter;
 *         ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services
 *         ct state new ip daddr @cluster-ips reject
 *         ct state new ip daddr 10.96.0.0/16 drop }   per service CIDR, if any
 *
 *     keys with session affinity (timeout T) instead of lb-N and backends-N:
 *     element of service-ips: 10.96.5.7 . tcp . 80 : goto affinity-3-10800
 *     map endpoint-1 { typeof ip daddr . meta l4proto . th dport
 *                      : ip daddr . th dport }        one map per slot
 *         element: 10.96.5.7 . tcp . 80 : 10.244.1.8 . 8080
 *     set endpoint-1-clients { typeof ip saddr . ip daddr . meta l4proto
 *                              . th dport; size 65536; flags dynamic,timeout }
 *     chain affinity-3-10800 {
 *         <client> @endpoint-S-clients update @endpoint-S-clients
 *             { <client> timeout 3h } dnat ip to ip daddr . meta l4proto
 *             . th dport map @endpoint-S                      (S = 0, 1, 2)
 *         numgen random mod 3 0 update ... map @endpoint-0
 *         numgen random mod 2 0 update ... map @endpoint-1
 *         update ... map @endpoint-2
 *         dnat ip to ... map @endpoint-0 }         (a pin set is full)
 *     where <client> is ip saddr . ip daddr . meta l4proto . th dport.
 *   }
 *
 * plus, when the host is a gateway (nft_set_gateway), nat-prerouting and
 * filter-forward with the rules of nat-output and filter-output, and
 *     chain nat-postrouting { type nat hook postrouting priority srcnat;
 *         ct status dnat ct original ip daddr @cluster-ips
 *             fib saddr type != local masquerade }
 * (what other machines route through it leaves with its address; its own
 * connections keep their source).
 *
 * Services are grouped by endpoint count N: one chain and one map per
 * distinct N, not per Service, which keeps kernel commits small; those with
 * session affinity by slot (one map and set each) and by N and T (a
 * chain). A backend keeps its slot (numgen value) while N stays the same
 * (with affinity: while it stays and the slot exists), so replacing one
 * endpoint is one element deleted and one added. A group no key uses any
 * more is deleted by a later commit, at least a second after (older kernels
 * release the chain late), in a transaction of its own.
 */

#include "model/model.h"

struct nft;

int nft_new(struct nft **ret);
struct nft *nft_free(struct nft *n);

/*
 * Stage the desired state of one key: entry NULL removes it. Nothing is sent
 * until nft_commit(). Staging the same state as committed costs nothing.
 * A key or entry the datapath cannot program is refused and leaves what was
 * staged for that key alone: -EAFNOSUPPORT, -EPROTONOSUPPORT (not TCP, UDP
 * or SCTP), -EINVAL (port 0, unknown verdict, a backend of the other family
 * or with port 0), -E2BIG (more than 65536 backends). Log it and go on.
 *
 * Session affinity (entry->affinity_timeout_sec > 0) is programmed for up
 * to NFT_MAX_AFFINITY_BACKENDS backends; with more, the key is staged
 * without it and 1 is returned (worth a log line). Otherwise 0.
 */
#define NFT_MAX_AFFINITY_BACKENDS 256u
int nft_stage(struct nft *n, const struct model_key *key, const struct model_entry *entry);

/*
 * Send everything staged; returns when the kernel has committed all of it.
 * Usually that is one atomic transaction. A large commit is split into
 * transactions of a bounded size, each carrying whole VIPs (all their keys,
 * backends and cluster-ips element), so that the nfnetlink lock is never
 * held for long and each Service goes from its old state to its new one at
 * once.
 *
 * The first commit after nft_new() makes the tables hold exactly what is
 * staged. A table a previous run left (--keep-rules) that is exactly what
 * this version and configuration create is adopted: only the differences
 * are sent, and keys it holds that were not staged are removed. Otherwise
 * it is replaced in one transaction (packets see either the old table or
 * the new one), and a missing one is created, in as many transactions as
 * needed. After nft_reset() the tables are rebuilt that way too (replaced
 * whole if they exist, created if not), never adopted.
 *
 * On failure returns -errno, puts the kernel's extended ACK text (if any)
 * in *ret_error, and forgets the committed copy: the caller must stage
 * everything again (model_mark_all_dirty) and retry. Transactions before
 * the failed one stay committed.
 */
int nft_commit(struct nft *n, char **ret_error);
/* Something is staged, or the tables must be (re)built. Deleting unused
 * groups never makes a commit pending: it waits for the next one. */
bool nft_pending(const struct nft *n);

/* Forget the committed copy; the next commit rebuilds the tables (before
 * the first commit: still adopts them). */
void nft_reset(struct nft *n);

/*
 * Also DNAT, reject and masquerade traffic routed through this host (chains
 * nat-prerouting, filter-forward and a rule in nat-postrouting), for a host
 * that is the gateway to the Services for others. Forwarding itself is the
 * host's business (sysctls, other firewalls). Off by default: every base
 * chain that looks up service-ips makes the kernel re-validate all of its
 * elements whenever a Service is added or changes its endpoint count.
 * Changing it resets (nft_reset): stage everything again.
 */
void nft_set_gateway(struct nft *n, bool gateway);
bool nft_get_gateway(const struct nft *n);

/*
 * Masquerade locally originated traffic from these source addresses after
 * DNAT, in chain nat-postrouting:
 *     ip saddr 169.254.53.53 ct status dnat masquerade
 * For resolv/: systemd-resolved sends the cluster DNS queries out of the
 * kube-annex0 link, with its address as source, which the cluster cannot
 * route back. At most one address per family (-EINVAL otherwise); n_ips 0
 * for none. Changing them resets (nft_reset): stage everything again.
 */
int nft_set_masquerade_sources(struct nft *n, const struct kube_ip *ips, size_t n_ips);

/*
 * Service CIDRs: new connections to an address in one of them that no
 * Service has (not in cluster-ips) are dropped, as by kube-proxy, in chain
 * filter-output after the reject rules (and filter-forward for a gateway):
 *     ct state new ip daddr 10.96.0.0/16 drop
 *         comment "Drop traffic to unallocated ClusterIPs"
 * IPv4 and IPv6 CIDRs go to their own family's table. Changing them resets
 * (nft_reset): stage everything again. None by default.
 */
#define NFT_MAX_SERVICE_CIDRS 8u

/* "CIDR[,CIDR...]" into ret (room for NFT_MAX_SERVICE_CIDRS): 0, or -EINVAL
 * (a message in *ret_error) for anything but IPv4 or IPv6 networks with
 * their host bits zero and a prefix of at least 1, or -ENOMEM. */
int nft_service_cidrs_parse(const char *list, struct kube_cidr *ret, size_t *ret_n,
			    char **ret_error);
int nft_set_service_cidrs(struct nft *n, const struct kube_cidr *cidrs, size_t n_cidrs);
/* The Service CIDRs in effect (room for NFT_MAX_SERVICE_CIDRS); how many. */
size_t nft_get_service_cidrs(const struct nft *n, struct kube_cidr *ret);

/* Delete both tables if present. Idempotent; needs no other state. */
int nft_cleanup(char **ret_error);

/*
 * Self-healing: notifications about changes someone else makes to our
 * tables. Poll nft_monitor_fd() for EPOLLIN and call nft_monitor_process();
 * call nft_monitor_verify() now and then to catch missed notifications.
 * Both return 1 when our tables must be rebuilt (nft_reset() and stage
 * everything again), 0 when all is well, -errno on failure. Notifications
 * lost to a full buffer count as a change only if someone else's
 * transactions are among them. The monitor refers to n: free it first.
 */
struct nft_monitor;

int nft_monitor_new(const struct nft *n, struct nft_monitor **ret);
struct nft_monitor *nft_monitor_free(struct nft_monitor *m);
int nft_monitor_fd(const struct nft_monitor *m);
int nft_monitor_process(struct nft_monitor *m);
int nft_monitor_verify(struct nft_monitor *m);

struct nft_stats {
	size_t entries;      /* keys committed */
	size_t backends;     /* backend elements committed */
	size_t groups;       /* distinct endpoint counts with a chain and map */
	size_t adopted;      /* keys taken over from a previous run's tables */
	uint64_t commits;       /* nft_commit() calls that sent something */
	uint64_t messages_last; /* netlink messages the last nft_commit() sent,
				 * batch begin/end included; 0: nothing to do */
	uint64_t transactions_last;         /* transactions it took (0: none) */
	uint64_t transaction_usec_max_last; /* the longest of them, sent to acked
					     * (the nfnetlink lock is held that long) */
};
void nft_get_stats(const struct nft *n, struct nft_stats *ret);

/*
 * What is committed, key by key, as model entries (verdict, comment,
 * backends in slot order, the session affinity timeout: 0 when none, also
 * when nft_stage() left it out), for status and explain. Entries are valid
 * only during fn; fn's negative return stops the walk and is returned.
 */
int nft_foreach_committed(const struct nft *n, model_change_fn fn, void *userdata);

/*
 * The committed state of one key, as nft_foreach_committed() shows it, into
 * *ret: 1, or 0 when nothing is committed for it. Its backends point into
 * n and stay valid until the next nft_commit() or nft_reset() (staging
 * leaves the committed copy alone): what a key had before a sync.
 */
int nft_committed_entry(const struct nft *n, const struct model_key *key,
			struct model_entry *ret);
