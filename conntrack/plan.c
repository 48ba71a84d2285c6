/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Which UDP conntrack entries to delete after a sync: pure bookkeeping of
 * the keys that changed, and the match of one entry against them.
 */
#include <netinet/in.h>
#include <sys/socket.h>
#include <uthash.h>

#include "conntrack/conntrack.h"
#include "lib/util.h"

/* VIP . port of one family; memcmp()-able (no padding), the hash key. */
struct ct_key {
	uint8_t family; /* AF_INET, AF_INET6 */
	uint8_t zero;
	uint16_t port;
	uint8_t addr[16]; /* 4 significant bytes for AF_INET, rest zero */
};

/* An endpoint address . port, memcmp()-able, kept sorted. */
struct ct_endpoint {
	uint8_t addr[16];
	uint16_t port;
};

struct ct_target {
	struct ct_key key;
	char comment[MODEL_COMMENT_MAX];
	struct ct_endpoint *before; /* what the kernel held when first noted */
	size_t n_before;
	struct ct_endpoint *after;  /* what it holds after the sync */
	size_t n_after;
	uint64_t deleted;
	UT_hash_handle hh;
};

struct ct_plan {
	struct ct_target *targets;
};

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool key_make(int family, const uint8_t *addr, uint16_t port, struct ct_key *ret)
{
	if (family != AF_INET && family != AF_INET6)
		return false;
	*ret = (struct ct_key){ .family = (uint8_t)family, .port = port };
	memcpy(ret->addr, addr, addr_len(family));
	return true;
}

static int endpoint_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct ct_endpoint));
}

/* The endpoints an entry sends to, sorted, without duplicates; none unless
 * it load-balances. */
static int endpoints_of(const struct model_entry *e, int family, struct ct_endpoint **ret,
			size_t *ret_n)
{
	struct ct_endpoint *v;
	size_t n = 0, m = 0;

	*ret = NULL;
	*ret_n = 0;
	if (!e || e->verdict != MODEL_FORWARD || e->n_backends == 0)
		return 0;
	v = calloc(e->n_backends, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_backends; i++) {
		if (e->backends[i].addr.family != family)
			continue;
		memcpy(v[n].addr, e->backends[i].addr.bytes, addr_len(family));
		v[n].port = e->backends[i].port;
		n++;
	}
	qsort(v, n, sizeof(*v), endpoint_cmp);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || endpoint_cmp(&v[m - 1], &v[i]) != 0)
			v[m++] = v[i];
	*ret = v;
	*ret_n = m;
	return 0;
}

static bool endpoint_in(const struct ct_endpoint *v, size_t n, const struct ct_endpoint *e)
{
	return n > 0 && bsearch(e, v, n, sizeof(*v), endpoint_cmp);
}

int ct_plan_new(struct ct_plan **ret)
{
	struct ct_plan *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

static void target_free(struct ct_plan *p, struct ct_target *t)
{
	HASH_DEL(p->targets, t);
	free(t->before);
	free(t->after);
	free(t);
}

void ct_plan_clear(struct ct_plan *p)
{
	struct ct_target *t, *tmp;

	HASH_ITER(hh, p->targets, t, tmp)
		target_free(p, t);
}

struct ct_plan *ct_plan_free(struct ct_plan *p)
{
	if (!p)
		return NULL;
	ct_plan_clear(p);
	free(p);
	return NULL;
}

int ct_plan_note(struct ct_plan *p, const struct model_key *key, const struct model_entry *before,
		 const struct model_entry *after)
{
	_cleanup_(freep) struct ct_endpoint *ends = NULL;
	const struct model_entry *named = after ? after : before;
	struct ct_target *t;
	struct ct_key k;
	size_t n;
	int r;

	if (key->protocol != IPPROTO_UDP || !key_make(key->vip.family, key->vip.bytes, key->port, &k))
		return 0;
	r = endpoints_of(after, key->vip.family, &ends, &n);
	if (r < 0)
		return r;
	HASH_FIND(hh, p->targets, &k, sizeof(k), t);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		r = endpoints_of(before, key->vip.family, &t->before, &t->n_before);
		if (r < 0) {
			free(t);
			return r;
		}
		t->key = k;
		HASH_ADD(hh, p->targets, key, sizeof(t->key), t);
	}
	free(t->after);
	t->after = TAKE_PTR(ends);
	t->n_after = n;
	if (named && named->comment[0])
		snprintf(t->comment, sizeof(t->comment), "%s", named->comment);
	return 0;
}

static bool target_needed(const struct ct_target *t)
{
	if (t->n_before == 0)
		return t->n_after > 0;
	for (size_t i = 0; i < t->n_before; i++)
		if (!endpoint_in(t->after, t->n_after, &t->before[i]))
			return true;
	return false;
}

size_t ct_plan_finish(struct ct_plan *p)
{
	struct ct_target *t, *tmp;

	HASH_ITER(hh, p->targets, t, tmp)
		if (!target_needed(t))
			target_free(p, t);
	return HASH_COUNT(p->targets);
}

size_t ct_plan_keys(const struct ct_plan *p, int family, struct model_key *ret_only)
{
	const struct ct_target *t, *tmp, *only = NULL;
	size_t n = 0;

	HASH_ITER(hh, p->targets, t, tmp)
		if (t->key.family == family) {
			only = t;
			n++;
		}
	if (n == 1 && ret_only) {
		*ret_only = (struct model_key){ .vip.family = family, .protocol = IPPROTO_UDP,
						.port = only->key.port };
		memcpy(ret_only->vip.bytes, only->key.addr, addr_len(family));
	}
	return n;
}

struct ct_target *ct_plan_match(struct ct_plan *p, const struct ct_flow *flow)
{
	struct ct_endpoint reply = { .port = flow->reply_sport };
	struct ct_target *t;
	struct ct_key k;

	if (flow->protocol != IPPROTO_UDP ||
	    !key_make(flow->orig_dst.family, flow->orig_dst.bytes, flow->orig_dport, &k))
		return NULL;
	HASH_FIND(hh, p->targets, &k, sizeof(k), t);
	if (!t)
		return NULL;
	/* No NAT between families here: another family's reply is no
	 * endpoint of ours. */
	if (flow->reply_src.family == flow->orig_dst.family) {
		memcpy(reply.addr, flow->reply_src.bytes, addr_len(flow->reply_src.family));
		if (endpoint_in(t->after, t->n_after, &reply))
			return NULL;
	}
	return t;
}

void ct_target_deleted(struct ct_target *t)
{
	t->deleted++;
}

void ct_plan_reset_counts(struct ct_plan *p)
{
	struct ct_target *t, *tmp;

	HASH_ITER(hh, p->targets, t, tmp)
		t->deleted = 0;
}

void ct_plan_foreach(const struct ct_plan *p, ct_plan_fn fn, void *userdata)
{
	const struct ct_target *t, *tmp;

	HASH_ITER(hh, p->targets, t, tmp) {
		struct model_key key = { .vip.family = t->key.family, .protocol = IPPROTO_UDP,
					 .port = t->key.port };

		memcpy(key.vip.bytes, t->key.addr, addr_len(t->key.family));
		fn(&key, t->comment, t->deleted, userdata);
	}
}
