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
 *   }
 *
 * Services are grouped by endpoint count N: one chain and one map per
 * distinct N, not per Service, which keeps kernel commits small.
 */

#include "model/model.h"

struct nft;

int nft_new(struct nft **ret);
struct nft *nft_free(struct nft *n);

/*
 * Stage the desired state of one key: entry NULL removes it. Nothing is sent
 * until nft_commit(). Staging the same state as committed costs nothing.
 */
int nft_stage(struct nft *n, const struct model_key *key, const struct model_entry *entry);

/*
 * Send everything staged as one atomic batch. The first commit after
 * nft_new() or nft_reset() (re)creates both tables from scratch in the same
 * transaction, so packets see either the old ruleset or the new one.
 * On failure returns -errno, puts the kernel's extended ACK text (if any)
 * in *ret_error, and forgets the committed copy: the caller must stage
 * everything again (model_mark_all_dirty) and retry.
 */
int nft_commit(struct nft *n, char **ret_error);
bool nft_pending(const struct nft *n);

/* Forget the committed copy; the next commit rebuilds the tables. */
void nft_reset(struct nft *n);

/* Delete both tables if present. Idempotent; needs no other state. */
int nft_cleanup(char **ret_error);

struct nft_stats {
	size_t entries;      /* keys committed */
	size_t backends;     /* backend elements committed */
	size_t groups;       /* distinct endpoint counts with a chain and map */
	uint64_t commits;
	uint64_t messages_last; /* netlink messages in the last commit */
};
void nft_get_stats(const struct nft *n, struct nft_stats *ret);
