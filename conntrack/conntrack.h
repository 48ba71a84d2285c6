/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * conntrack/: UDP conntrack hygiene. The first datagram of a UDP flow to a
 * Service picks an endpoint (DNAT) and conntrack remembers the choice; as
 * long as the client keeps sending (DNS, statsd, syslog from a fixed
 * port), the entry never expires and every datagram follows it, also after
 * the endpoint has left. So, after each sync, the UDP entries of every
 * VIP . port that lost an endpoint are deleted unless their reply source
 * is one of the endpoints the VIP . port has now; the next datagram then
 * picks again. A VIP . port that got its first endpoint is looked at too:
 * flows that went to the VIP itself before it was programmed would
 * otherwise never be translated.
 *
 * A plan collects, while a sync stages its changes, what to look at (pure,
 * no I/O, unit-tested); ct_plan_execute() asks the kernel for the UDP
 * entries and deletes those the plan matches.
 */

#include "model/model.h"

struct ct_plan;
/* One VIP . port of a plan. */
struct ct_target;

int ct_plan_new(struct ct_plan **ret);
struct ct_plan *ct_plan_free(struct ct_plan *p);

/*
 * A change of one key, as the datapath gets it: before is what is committed
 * (NULL: nothing), after what is staged now (NULL: the key goes away). Only
 * UDP keys are kept (other keys: 0 without effect). The first note of a key
 * since the last ct_plan_clear() fixes its "before", later ones replace its
 * "after": a key removed and added again in one sync, or changed by syncs
 * whose commit failed, counts once, from what the kernel held. 0 or -ENOMEM.
 */
int ct_plan_note(struct ct_plan *p, const struct model_key *key, const struct model_entry *before,
		 const struct model_entry *after);

/* Keep only the keys that lost an endpoint, or got their first one (only
 * entries that load-balance have endpoints); returns how many are left. */
size_t ct_plan_finish(struct ct_plan *p);
/* Forget every key (after the plan was executed). */
void ct_plan_clear(struct ct_plan *p);

/* How many keys of family (AF_INET, AF_INET6) the plan holds; when it is
 * exactly one, that key into *ret_only (may be NULL). */
size_t ct_plan_keys(const struct ct_plan *p, int family, struct model_key *ret_only);

/* A conntrack entry as the plan looks at it. */
struct ct_flow {
	int protocol;              /* IPPROTO_*, of the original direction */
	struct kube_ip orig_dst;   /* where the client sent it: the VIP */
	uint16_t orig_dport;       /* host order */
	struct kube_ip reply_src;  /* who answers: the endpoint after DNAT */
	uint16_t reply_sport;
};

/*
 * The target a flow must be deleted for, or NULL: a UDP flow to a VIP . port
 * of the plan whose reply source (address and port) is none of the key's
 * endpoints now. Entries to other VIPs, ports or protocols are never
 * matched.
 */
struct ct_target *ct_plan_match(struct ct_plan *p, const struct ct_flow *flow);
/* Count one deleted entry for t (for the log and the metrics); an
 * execution starts with every count at zero (ct_plan_reset_counts()). */
void ct_target_deleted(struct ct_target *t);
void ct_plan_reset_counts(struct ct_plan *p);

/* Every key of the plan with its comment ("namespace/name:port", from the
 * entry) and how many of its entries the last execution deleted. */
typedef void (*ct_plan_fn)(const struct model_key *key, const char *comment, uint64_t deleted,
			   void *userdata);
void ct_plan_foreach(const struct ct_plan *p, ct_plan_fn fn, void *userdata);

/*
 * Execution: per family with keys in the plan, one dump of the kernel's
 * conntrack table (filtered there to UDP, and to the VIP's port when the
 * family has one key), then the matched entries deleted by tuple and id
 * (an entry that came back meanwhile is not touched). Blocks while it runs.
 * Measured on a 2-core machine, kernel 6.18: a dump walks the whole
 * conntrack hash whatever it holds, ~11 ms for 262,144 buckets; then about
 * 5 us per entry returned and 5 us per entry deleted. Bounded per family
 * by CT_MAX_EXAMINED entries read and CT_MAX_DELETED deleted (~110 ms at
 * most); beyond that truncated is set, and executing the plan again
 * continues.
 */
#define CT_MAX_EXAMINED 16384u
#define CT_MAX_DELETED 4096u

struct ct_result {
	uint64_t examined; /* entries the kernel returned */
	uint64_t deleted;
	uint64_t vanished; /* matched, but gone before they could be deleted */
	bool truncated;
	uint64_t usec;     /* how long it blocked */
};

/* 0, or -errno with *ret_error naming the step (kernel's extended ACK text
 * included); ret counts what was done either way. */
int ct_plan_execute(struct ct_plan *p, struct ct_result *ret, char **ret_error);
