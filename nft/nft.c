/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The committed copy and the diff.
 *
 * Every key (VIP . protocol . port) has a record holding what is committed
 * for it and, while staged, what is desired. A commit walks only the staged
 * records, turns each difference into element deletes and adds on the sets
 * it touches (service-ips, no-endpoint-services, cluster-ips, backends-N),
 * creates the chain and map of any endpoint count N newly in use, and sends
 * it in transactions of at most TRANSACTION_MAX_ELEMS elements. Only after
 * the kernel has acknowledged every message of every transaction does the
 * desired state become the committed one.
 *
 * A large commit (a cold start, a restart after many changes) is split so
 * that the nfnetlink mutex, which every other ruleset change on the host
 * waits for, is never held for long. The split never lets a packet see a
 * state that is neither old nor new for its Service: the skeleton (tables,
 * fixed chains and sets, new groups' chains and maps) comes first; then
 * every transaction carries whole VIPs, that is every key of a VIP with
 * all of its backends-N slots, its service-ips or no-endpoint-services
 * element and its cluster-ips element. So between two transactions the
 * tables hold, VIP by VIP, either what was committed or what is desired,
 * and are always consistent: a run that stops between two is adopted by
 * the next one like any other.
 *
 * Tables are handled per family, in one of these ways at the next commit:
 *
 *   - adopted (the first commit after nft_new()): a table a previous run
 *     left is read back (adopt.c) and, if it is exactly what this version
 *     creates, taken as the committed copy, so that only the differences
 *     from what is staged are sent and nothing that did not change is
 *     disturbed. Keys it holds that are not staged are removed: the first
 *     commit leaves exactly what was staged, as a rebuild would.
 *   - created: no table exists (a first start, `nft flush ruleset`): it is
 *     created and loaded in as many transactions as needed. Nothing worked
 *     before, so Services appearing one transaction after another is what
 *     a cold start is.
 *   - replaced: a table exists that we cannot take over (another layout, an
 *     edit, or after nft_reset(): a failed commit or self-healing) and is
 *     replaced in ONE transaction, however large, so that packets see either
 *     the old table or the new one. Splitting this would leave every Service
 *     not yet reloaded without rules for the length of the load; holding the
 *     lock for the rebuild of a large table is the lesser harm, and it only
 *     happens after something went wrong.
 *
 * Backends keep their slot (the numgen value that picks them, or the
 * endpoint-N map of a key with session affinity) when they stay, so one
 * endpoint replaced is one element deleted and one added, whatever the
 * model's order.
 *
 * Session affinity (a key with a timeout): the key goes to chain
 * affinity-N-T instead of lb-N, and its backends to maps endpoint-0 ..
 * endpoint-(N-1), one per slot, shared by all such keys. A client's pin is
 * the slot it was sent to, kept by the kernel in set endpoint-S-clients
 * with the timeout; so a pin can only ever lead to a backend the key has
 * now, and no pin needs cleaning when backends change. See ruleset.c.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <uthash.h>
#include <utlist.h>

#include "lib/log.h"
#include "nft/nft-private.h"
#include "nft/nft.h"

/*
 * A group (chain lb-N and map backends-N) that no key uses any more is
 * deleted by a later commit, at least this long after the one that emptied
 * it, in a transaction of its own: before Linux 6.2 a chain's use count
 * drops only some time after the last map element pointing at it is gone,
 * and deleting the chain earlier fails with EBUSY.
 */
#define GROUP_GC_DELAY_USEC (1 * USEC_PER_SEC)

/*
 * Elements (adds and deletes, counted generously: record_cost()) per
 * transaction of a split commit. The nfnetlink mutex, which every other
 * ruleset change on the host waits for, is held for the whole transaction,
 * and the kernel takes 1.5 to 2 us per element. Measured on the project's
 * 2-core machine (kernel 6.18), loading 60,000 Services x 10 endpoints:
 * 16384 -> longest transaction 50 ms, 1.5 s in all; 32768 -> 50-100 ms,
 * 1.15-1.5 s; 65536 -> 120 ms, 1.1-1.3 s. Below that every transaction
 * still pays for re-validating all service-ips elements.
 */
#define TRANSACTION_MAX_ELEMS 32768u

struct state {
	enum nft_kind kind;
	char *comment; /* sanitized, "" when none */
	struct model_backend *backends; /* slot i is picked by numgen value i */
	uint32_t n_backends;
	uint32_t affinity_timeout_sec; /* 0: none; only with NFT_KIND_FORWARD */
};

struct record {
	struct nft_key key;
	struct state committed;
	struct state *desired; /* non-NULL while staged */
	struct record *prev, *next; /* staged list */
	UT_hash_handle hh;
};

/* A VIP with at least one committed key: an element of cluster-ips. */
struct vip {
	struct nft_key key; /* protocol and port zero */
	uint32_t refs;
	int32_t delta;
	bool touched;
	struct vip *next_touched;
	UT_hash_handle hh;
};

struct elem_list {
	struct nft_elem *del;
	size_t n_del, cap_del;
	struct nft_elem *add;
	size_t n_add, cap_add;
};

struct group_key {
	uint32_t family;
	uint32_t kind; /* enum nft_group_kind */
	uint32_t n;
	uint32_t timeout;
};

/* Keys with n backends share chain lb-n and map backends-n; keys with
 * session affinity share slots and affinity chains (nft-private.h). */
struct group {
	struct group_key key;
	uint32_t users;
	int64_t delta;
	bool in_kernel;
	bool create;           /* created by the batch being built */
	uint64_t empty_since;  /* CLOCK_MONOTONIC usec, 0 while used */
	struct elem_list elems; /* backends-n / endpoint-n changes of the batch being built */
	bool touched;
	struct group *next_touched;
	UT_hash_handle hh;
};

/* What the next commit does with a family's table. */
enum table_state {
	TABLE_READY,   /* holds the committed copy */
	TABLE_ADOPT,   /* unknown: read it back and take it over if we can */
	TABLE_PROBE,   /* unknown: replace it if it exists, else create it */
	TABLE_CREATE,  /* absent: create, and load in bounded transactions */
	TABLE_REPLACE, /* replace in one transaction with everything in it */
};

struct nft {
	struct mnl_socket *nl;
	uint32_t seq;
	enum table_state tables[_NFT_FAMILY_MAX];
	bool adopt; /* no commit since nft_new(): the next one adopts */
	bool gateway;
	/* resolv/: masquerade these sources after DNAT (nft_set_masquerade_sources) */
	uint8_t masq_addr[_NFT_FAMILY_MAX][16];
	bool masq[_NFT_FAMILY_MAX];
	struct nft_cidr cidrs[NFT_MAX_SERVICE_CIDRS]; /* nft_set_service_cidrs */
	size_t n_cidrs;

	struct record *records; /* by key */
	struct record *staged;
	struct vip *vips;
	struct group *groups;

	/* the batch being built */
	struct elem_list sets[_NFT_FAMILY_MAX][NFT_SET_BACKENDS];
	struct vip *touched_vips;
	struct group *touched_groups;

	size_t n_entries;
	size_t n_backends;
	size_t n_groups;
	size_t n_adopted;
	uint64_t commits;
	uint64_t messages_last;
	uint64_t transactions_last;
	uint64_t transaction_usec_max_last;
	uint64_t transactions_total;
};

/* ---- states ------------------------------------------------------------- */

static void state_done(struct state *s)
{
	free(s->comment);
	free(s->backends);
	*s = (struct state){};
}

static struct state *state_free(struct state *s)
{
	if (s) {
		state_done(s);
		free(s);
	}
	return NULL;
}

static inline void state_freep(struct state **s)
{
	state_free(*s);
}

/* Comments are printed inside double quotes by nft; keep the listing
 * parseable whatever the API server sent. */
static char *comment_dup(const char *s)
{
	size_t len = strnlen(s, MODEL_COMMENT_MAX - 1);
	char *c = malloc(len + 1);

	if (!c)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		c[i] = (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') ? '_' : (char)ch;
	}
	c[len] = 0;
	return c;
}

static int backend_cmp(const void *a, const void *b)
{
	const struct model_backend *x = a, *y = b;
	int r;

	assert(x && y);

	if (x->addr.family != y->addr.family)
		return x->addr.family < y->addr.family ? -1 : 1;
	r = memcmp(x->addr.bytes, y->addr.bytes, sizeof(x->addr.bytes));
	if (r)
		return r;
	return (int)x->port - (int)y->port;
}

static int family_of(int af, enum nft_family *ret)
{
	switch (af) {
	case AF_INET:
		*ret = NFT_FAMILY_IP;
		return 0;
	case AF_INET6:
		*ret = NFT_FAMILY_IP6;
		return 0;
	default:
		return -EAFNOSUPPORT;
	}
}

static int backends_copy(const struct nft_key *key, const struct model_entry *e,
			 struct state *s)
{
	if (e->n_backends > NFT_MAX_BACKENDS)
		return -E2BIG;
	s->backends = calloc(e->n_backends, sizeof(*s->backends));
	if (!s->backends)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_backends; i++) {
		const struct model_backend *from = &e->backends[i];
		struct model_backend *to = &s->backends[i];
		enum nft_family f;

		if (family_of(from->addr.family, &f) < 0 || f != key->family || from->port == 0)
			return -EINVAL;
		/* Only the address's own bytes: the rest stays zero, so
		 * backends compare with memcmp. */
		to->addr.family = from->addr.family;
		memcpy(to->addr.bytes, from->addr.bytes, f == NFT_FAMILY_IP ? 4 : 16);
		to->port = from->port;
	}
	s->n_backends = (uint32_t)e->n_backends;
	return 0;
}

/* 1 when programmed without session affinity (too many backends). */
static int state_from_entry(const struct nft_key *key, const struct model_entry *e,
			    struct state *s)
{
	int r;

	switch (e->verdict) {
	case MODEL_FORWARD:
		/* Nothing to forward to: fail fast instead. */
		s->kind = e->n_backends > 0 ? NFT_KIND_FORWARD : NFT_KIND_REJECT;
		break;
	case MODEL_REJECT:
		s->kind = NFT_KIND_REJECT;
		break;
	case MODEL_DROP:
		s->kind = NFT_KIND_DROP;
		break;
	default:
		return -EINVAL;
	}
	s->comment = comment_dup(e->comment);
	if (!s->comment)
		return -ENOMEM;
	if (s->kind != NFT_KIND_FORWARD)
		return 0;
	r = backends_copy(key, e, s);
	if (r < 0)
		return r;
	/* Affinity only matters where there is a choice to remember. */
	if (e->affinity_timeout_sec > 0 && s->n_backends > NFT_MAX_AFFINITY_BACKENDS)
		return 1;
	s->affinity_timeout_sec = e->affinity_timeout_sec;
	return 0;
}

static bool sticky(const struct state *s)
{
	return s->kind == NFT_KIND_FORWARD && s->affinity_timeout_sec > 0;
}

static bool plain(const struct state *s)
{
	return s->kind == NFT_KIND_FORWARD && s->affinity_timeout_sec == 0;
}

static bool state_equal(const struct state *a, const struct state *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == NFT_KIND_NONE)
		return true;
	if (!streq(a->comment, b->comment) || a->n_backends != b->n_backends ||
	    a->affinity_timeout_sec != b->affinity_timeout_sec)
		return false;
	for (uint32_t i = 0; i < a->n_backends; i++)
		if (backend_cmp(&a->backends[i], &b->backends[i]) != 0)
			return false;
	return true;
}

/*
 * Reorder desired's backends so that every backend also committed keeps its
 * slot; new ones fill the slots of those that left. When the endpoint count
 * changes only with session affinity, where a slot is what clients are
 * pinned to (those of a slot that no longer exists pick again); otherwise
 * everything moves to another map anyway.
 */
static int keep_slots(const struct state *committed, struct state *desired)
{
	_cleanup_(freep) struct model_backend *sorted = NULL;
	_cleanup_(freep) bool *used = NULL, *kept = NULL;
	uint32_t n = desired->n_backends, next = 0, both;

	if (committed->kind != NFT_KIND_FORWARD || desired->kind != NFT_KIND_FORWARD ||
	    (committed->n_backends != n && !(sticky(committed) && sticky(desired))))
		return 0;
	both = n < committed->n_backends ? n : committed->n_backends;
	sorted = malloc(n * sizeof(*sorted));
	used = calloc(n, sizeof(*used));
	kept = calloc(n, sizeof(*kept));
	if (!sorted || !used || !kept)
		return -ENOMEM;
	memcpy(sorted, desired->backends, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), backend_cmp);

	for (uint32_t i = 0; i < both; i++) {
		const struct model_backend *p;

		p = bsearch(&committed->backends[i], sorted, n, sizeof(*sorted), backend_cmp);
		if (p && !used[p - sorted]) {
			used[p - sorted] = true;
			kept[i] = true;
			desired->backends[i] = *p;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		if (kept[i])
			continue;
		while (used[next])
			next++;
		used[next] = true;
		desired->backends[i] = sorted[next];
	}
	return 0;
}

/* ---- records ------------------------------------------------------------ */

static int key_from_model(const struct model_key *mk, struct nft_key *ret)
{
	struct nft_key k = {};
	enum nft_family f;
	int r;

	r = family_of(mk->vip.family, &f);
	if (r < 0)
		return r;
	switch (mk->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		break;
	default:
		return -EPROTONOSUPPORT;
	}
	if (mk->port == 0)
		return -EINVAL;
	k.family = (uint8_t)f;
	k.protocol = (uint8_t)mk->protocol;
	k.port = mk->port;
	memcpy(k.addr, mk->vip.bytes, f == NFT_FAMILY_IP ? 4 : 16);
	*ret = k;
	return 0;
}

static void record_unstage(struct nft *n, struct record *rec)
{
	if (!rec->desired)
		return;
	rec->desired = state_free(rec->desired);
	DL_DELETE(n->staged, rec);
}

/* A record that is neither committed nor staged has no reason to exist. */
static void record_drop_if_unused(struct nft *n, struct record *rec)
{
	if (rec->desired || rec->committed.kind != NFT_KIND_NONE)
		return;
	HASH_DEL(n->records, rec);
	state_done(&rec->committed);
	free(rec);
}

int nft_stage(struct nft *n, const struct model_key *mkey, const struct model_entry *entry)
{
	_cleanup_(state_freep) struct state *desired = NULL;
	struct record *rec;
	struct nft_key key;
	int r, capped = 0;

	r = key_from_model(mkey, &key);
	if (r < 0)
		return r;
	desired = calloc(1, sizeof(*desired));
	if (!desired)
		return -ENOMEM;
	if (entry) {
		r = state_from_entry(&key, entry, desired);
		if (r < 0)
			return r;
		capped = r;
	}

	HASH_FIND(hh, n->records, &key, sizeof(key), rec);
	if (!rec) {
		if (desired->kind == NFT_KIND_NONE)
			return 0;
		rec = calloc(1, sizeof(*rec));
		if (!rec)
			return -ENOMEM;
		rec->key = key;
		HASH_ADD(hh, n->records, key, sizeof(rec->key), rec);
	}
	r = keep_slots(&rec->committed, desired);
	if (r < 0)
		return r;

	if (state_equal(&rec->committed, desired)) {
		record_unstage(n, rec);
		record_drop_if_unused(n, rec);
		return capped;
	}
	if (rec->desired)
		state_free(rec->desired);
	else
		DL_APPEND(n->staged, rec);
	rec->desired = TAKE_PTR(desired);
	return capped;
}

/* ---- planning a batch --------------------------------------------------- */

static struct nft_elem *elem_push(struct nft_elem **v, size_t *len, size_t *cap)
{
	if (*len == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct nft_elem *p = reallocarray(*v, c, sizeof(**v));

		if (!p)
			return NULL;
		*v = p;
		*cap = c;
	}
	(*v)[*len] = (struct nft_elem){};
	return &(*v)[(*len)++];
}

static struct nft_elem *list_del(struct elem_list *l)
{
	return elem_push(&l->del, &l->n_del, &l->cap_del);
}

static struct nft_elem *list_add(struct elem_list *l)
{
	return elem_push(&l->add, &l->n_add, &l->cap_add);
}

static void list_free(struct elem_list *l)
{
	free(l->del);
	free(l->add);
	*l = (struct elem_list){};
}

static struct group *group_find(struct nft *n, enum nft_family f, enum nft_group_kind kind,
				uint32_t count, uint32_t timeout, bool add)
{
	struct group_key key;
	struct group *g;

	/* Hashed as bytes: every byte must be defined. */
	memset(&key, 0, sizeof(key));
	key.family = f;
	key.kind = kind;
	key.n = count;
	key.timeout = timeout;

	HASH_FIND(hh, n->groups, &key, sizeof(key), g);
	if (!g && add) {
		g = calloc(1, sizeof(*g));
		if (!g)
			return NULL;
		g->key = key;
		HASH_ADD(hh, n->groups, key, sizeof(g->key), g);
	}
	return g;
}

/* The group, marked as changed by the commit being planned. */
static struct group *group_get(struct nft *n, enum nft_family f, enum nft_group_kind kind,
			       uint32_t count, uint32_t timeout)
{
	struct group *g = group_find(n, f, kind, count, timeout, true);

	if (!g)
		return NULL;
	if (!g->touched) {
		g->touched = true;
		LL_PREPEND2(n->touched_groups, g, next_touched);
	}
	return g;
}

/* The VIP of a key; created (refs 0) when add and missing, else NULL. */
static struct vip *vip_find(struct nft *n, const struct nft_key *key, bool add)
{
	struct nft_key vkey;
	struct vip *v;

	memset(&vkey, 0, sizeof(vkey));
	vkey.family = key->family;

	memcpy(vkey.addr, key->addr, sizeof(vkey.addr));
	HASH_FIND(hh, n->vips, &vkey, sizeof(vkey), v);
	if (!v && add) {
		v = calloc(1, sizeof(*v));
		if (!v)
			return NULL;
		v->key = vkey;
		HASH_ADD(hh, n->vips, key, sizeof(v->key), v);
	}
	return v;
}

static int vip_touch(struct nft *n, const struct nft_key *key, int32_t delta)
{
	struct vip *v = vip_find(n, key, true);

	if (!v)
		return -ENOMEM;
	if (!v->touched) {
		v->touched = true;
		LL_PREPEND2(n->touched_vips, v, next_touched);
	}
	v->delta += delta;
	return 0;
}

static bool in_set(const struct state *s, enum nft_set_kind set)
{
	if (set == NFT_SET_SERVICES)
		return s->kind == NFT_KIND_FORWARD;
	return s->kind == NFT_KIND_REJECT || s->kind == NFT_KIND_DROP;
}

/* service-ips or no-endpoint-services: replace the element when its
 * verdict or comment changes. */
static int plan_verdict(struct nft *n, const struct record *rec, enum nft_set_kind set)
{
	const struct state *old = &rec->committed, *new = rec->desired;
	struct elem_list *l = &n->sets[rec->key.family][set];
	bool was = in_set(old, set), is = in_set(new, set);
	struct nft_elem *e;

	if (was && is && old->kind == new->kind && old->n_backends == new->n_backends &&
	    old->affinity_timeout_sec == new->affinity_timeout_sec &&
	    streq(old->comment, new->comment))
		return 0;
	if (was) {
		e = list_del(l);
		if (!e)
			return -ENOMEM;
		e->key = &rec->key;
	}
	if (is) {
		e = list_add(l);
		if (!e)
			return -ENOMEM;
		e->key = &rec->key;
		e->kind = new->kind;
		e->n = new->n_backends;
		e->timeout = new->affinity_timeout_sec;
		e->comment = new->comment;
	}
	return 0;
}

static int push_backend(struct group *g, const struct record *rec, uint32_t slot,
			const struct model_backend *be)
{
	struct nft_elem *e = be ? list_add(&g->elems) : list_del(&g->elems);

	if (!e)
		return -ENOMEM;
	e->key = &rec->key;
	e->index = slot;
	e->backend = be;
	return 0;
}

static int plan_backends_same_group(struct nft *n, const struct record *rec)
{
	const struct state *old = &rec->committed, *new = rec->desired;
	struct group *g = group_get(n, rec->key.family, NFT_GROUP_LB, old->n_backends, 0);
	int r;

	if (!g)
		return -ENOMEM;
	for (uint32_t i = 0; i < new->n_backends; i++) {
		if (backend_cmp(&old->backends[i], &new->backends[i]) == 0)
			continue;
		r = push_backend(g, rec, i, NULL);
		if (r >= 0)
			r = push_backend(g, rec, i, &new->backends[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* backends-N of keys without session affinity */
static int plan_backends(struct nft *n, const struct record *rec)
{
	const struct state *old = &rec->committed, *new = rec->desired;
	bool was = plain(old), is = plain(new);
	struct group *g;
	int r;

	if (was && is && old->n_backends == new->n_backends)
		return plan_backends_same_group(n, rec);
	if (was) {
		g = group_get(n, rec->key.family, NFT_GROUP_LB, old->n_backends, 0);
		if (!g)
			return -ENOMEM;
		g->delta--;
		for (uint32_t i = 0; i < old->n_backends; i++) {
			r = push_backend(g, rec, i, NULL);
			if (r < 0)
				return r;
		}
	}
	if (is) {
		g = group_get(n, rec->key.family, NFT_GROUP_LB, new->n_backends, 0);
		if (!g)
			return -ENOMEM;
		g->delta++;
		for (uint32_t i = 0; i < new->n_backends; i++) {
			r = push_backend(g, rec, i, &new->backends[i]);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* endpoint-N maps and the affinity chain of keys with session affinity:
 * slot by slot, only what changes. */
static int plan_affinity(struct nft *n, const struct record *rec)
{
	const struct state *old = &rec->committed, *new = rec->desired;
	uint32_t was = sticky(old) ? old->n_backends : 0, is = sticky(new) ? new->n_backends : 0;
	enum nft_family f = rec->key.family;
	struct group *g;
	int r;

	for (uint32_t i = 0; i < was || i < is; i++) {
		bool in_old = i < was, in_new = i < is;

		if (in_old && in_new && backend_cmp(&old->backends[i], &new->backends[i]) == 0)
			continue;
		g = group_get(n, f, NFT_GROUP_SLOT, i, 0);
		if (!g)
			return -ENOMEM;
		g->delta += (int64_t)in_new - (int64_t)in_old;
		r = in_old ? push_backend(g, rec, i, NULL) : 0;
		if (r >= 0 && in_new)
			r = push_backend(g, rec, i, &new->backends[i]);
		if (r < 0)
			return r;
	}
	if (was == is && old->affinity_timeout_sec == new->affinity_timeout_sec)
		return 0;
	if (was) {
		g = group_get(n, f, NFT_GROUP_AFFINITY, was, old->affinity_timeout_sec);
		if (!g)
			return -ENOMEM;
		g->delta--;
	}
	if (is) {
		g = group_get(n, f, NFT_GROUP_AFFINITY, is, new->affinity_timeout_sec);
		if (!g)
			return -ENOMEM;
		g->delta++;
	}
	return 0;
}

static int plan_record(struct nft *n, const struct record *rec)
{
	bool was = rec->committed.kind != NFT_KIND_NONE;
	bool is = rec->desired->kind != NFT_KIND_NONE;
	int r;

	r = plan_verdict(n, rec, NFT_SET_SERVICES);
	if (r < 0)
		return r;
	r = plan_verdict(n, rec, NFT_SET_NO_ENDPOINTS);
	if (r < 0)
		return r;
	r = plan_backends(n, rec);
	if (r < 0)
		return r;
	r = plan_affinity(n, rec);
	if (r < 0)
		return r;
	if (was != is)
		return vip_touch(n, &rec->key, is ? 1 : -1);
	return 0;
}

/* cluster-ips follows the VIPs' reference counts, once every key of the
 * VIP is planned. */
static int plan_vip(struct nft *n, const struct nft_key *key)
{
	struct vip *v = vip_find(n, key, false);
	struct elem_list *l = &n->sets[key->family][NFT_SET_CLUSTER_IPS];
	struct nft_elem *e = NULL;
	int64_t after;

	if (!v || !v->touched)
		return 0;
	after = (int64_t)v->refs + v->delta;
	if (v->refs == 0 && after > 0)
		e = list_add(l);
	else if (v->refs > 0 && after == 0)
		e = list_del(l);
	else
		return 0;
	if (!e)
		return -ENOMEM;
	e->key = &v->key;
	return 0;
}

static bool same_vip(const struct record *a, const struct record *b)
{
	return a->key.family == b->key.family && memcmp(a->key.addr, b->key.addr, 16) == 0;
}

/* Every key of one VIP, and its cluster-ips element. */
static int plan_vip_records(struct nft *n, struct record *const *recs, size_t count)
{
	int r;

	for (size_t i = 0; i < count; i++) {
		r = plan_record(n, recs[i]);
		if (r < 0)
			return r;
	}
	return plan_vip(n, &recs[0]->key);
}

/* An upper bound on the elements a staged record adds or deletes. */
static size_t record_cost(const struct record *rec)
{
	const struct state *old = &rec->committed, *new = rec->desired;

	return 3 + (old->kind == NFT_KIND_FORWARD ? old->n_backends : 0) +
	       (new->kind == NFT_KIND_FORWARD ? new->n_backends : 0);
}

/* A group some key moves to that is not in the kernel yet is created
 * before any element: in the commit's first transaction. */
static int plan_groups(struct nft *n)
{
	struct record *rec;
	struct group *g;

	DL_FOREACH(n->staged, rec) {
		const struct state *s = rec->desired;
		enum nft_family f = rec->key.family;

		if (plain(s)) {
			g = group_get(n, f, NFT_GROUP_LB, s->n_backends, 0);
			if (!g)
				return -ENOMEM;
			g->create = !g->in_kernel;
		}
		if (!sticky(s))
			continue;
		g = group_get(n, f, NFT_GROUP_AFFINITY, s->n_backends, s->affinity_timeout_sec);
		if (!g)
			return -ENOMEM;
		g->create = !g->in_kernel;
		for (uint32_t i = 0; i < s->n_backends; i++) {
			g = group_get(n, f, NFT_GROUP_SLOT, i, 0);
			if (!g)
				return -ENOMEM;
			g->create = !g->in_kernel;
		}
	}
	return 0;
}

static int record_order(const void *a, const void *b)
{
	const struct record *x = *(const struct record *const *)a;
	const struct record *y = *(const struct record *const *)b;
	int r;

	if (x->key.family != y->key.family)
		return x->key.family < y->key.family ? -1 : 1;
	r = memcmp(x->key.addr, y->key.addr, sizeof(x->key.addr));
	if (r)
		return r;
	if (x->key.protocol != y->key.protocol)
		return x->key.protocol < y->key.protocol ? -1 : 1;
	return (int)x->key.port - (int)y->key.port;
}

/* The staged records, the keys of each VIP next to each other. */
static int staged_by_vip(struct nft *n, struct record ***ret, size_t *ret_count)
{
	struct record **recs, *rec;
	size_t count = 0, i = 0;

	DL_COUNT(n->staged, rec, count);
	recs = calloc(count + 1, sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	DL_FOREACH(n->staged, rec)
		recs[i++] = rec;
	qsort(recs, count, sizeof(*recs), record_order);
	*ret = recs;
	*ret_count = count;
	return 0;
}

/* Forget the batch being built; committed state is untouched. */
static void plan_clear(struct nft *n)
{
	struct group *g, *gnext;
	struct vip *v, *vnext;

	for (int f = 0; f < _NFT_FAMILY_MAX; f++)
		for (int s = 0; s < NFT_SET_BACKENDS; s++)
			list_free(&n->sets[f][s]);
	LL_FOREACH_SAFE2(n->touched_groups, g, gnext, next_touched) {
		list_free(&g->elems);
		g->delta = 0;
		g->create = false;
		g->touched = false;
		g->next_touched = NULL;
	}
	n->touched_groups = NULL;
	LL_FOREACH_SAFE2(n->touched_vips, v, vnext, next_touched) {
		v->delta = 0;
		v->touched = false;
		v->next_touched = NULL;
	}
	n->touched_vips = NULL;
}

/* ---- building and sending ----------------------------------------------- */

static int emit_list(struct nft_batch *b, enum nft_family f, enum nft_set_kind kind, uint32_t n,
		     const struct elem_list *l, bool del)
{
	return nft_rs_elems(b, f, kind, n, del, del ? l->del : l->add, del ? l->n_del : l->n_add);
}

static int emit_backends(struct nft *n, struct nft_batch *b, enum nft_family f, bool del)
{
	struct group *g;
	int r;

	LL_FOREACH2(n->touched_groups, g, next_touched) {
		if (g->key.family != (uint32_t)f || g->key.kind == NFT_GROUP_AFFINITY)
			continue;
		r = emit_list(b, f, g->key.kind == NFT_GROUP_LB ? NFT_SET_BACKENDS : NFT_SET_ENDPOINTS,
			      g->key.n, &g->elems, del);
		if (r < 0)
			return r;
	}
	return 0;
}

static int build_elems(struct nft *n, struct nft_batch *b, bool del)
{
	/* Deletes first, so that a replaced element can be added back. */
	static const enum nft_set_kind order_del[] = { NFT_SET_SERVICES, NFT_SET_NO_ENDPOINTS,
						       NFT_SET_BACKENDS, NFT_SET_CLUSTER_IPS };
	static const enum nft_set_kind order_add[] = { NFT_SET_CLUSTER_IPS, NFT_SET_BACKENDS,
						       NFT_SET_SERVICES, NFT_SET_NO_ENDPOINTS };
	const enum nft_set_kind *order = del ? order_del : order_add;
	int r;

	for (int f = 0; f < _NFT_FAMILY_MAX; f++)
		for (size_t i = 0; i < ARRAY_SIZE(order_del); i++) {
			if (order[i] == NFT_SET_BACKENDS)
				r = emit_backends(n, b, f, del);
			else
				r = emit_list(b, f, order[i], 0, &n->sets[f][order[i]], del);
			if (r < 0)
				return r;
		}
	return 0;
}

/* The element lists are emitted into one transaction; start afresh for
 * the next (keeping the memory). */
static void lists_rewind(struct nft *n)
{
	struct group *g;

	for (int f = 0; f < _NFT_FAMILY_MAX; f++)
		for (int s = 0; s < NFT_SET_BACKENDS; s++)
			n->sets[f][s].n_del = n->sets[f][s].n_add = 0;
	LL_FOREACH2(n->touched_groups, g, next_touched)
		g->elems.n_del = g->elems.n_add = 0;
}

/*
 * A family's table, created empty with everything in it but the groups, as
 * this version and configuration do it. Replacing: the table is created
 * first if missing so that deleting it cannot fail, and all of it is one
 * transaction. Also what adopt.c compares a table left behind with.
 */
static int emit_skeleton(struct nft_batch *b, enum nft_family f, void *userdata)
{
	struct nft *n = userdata;
	int r;

	r = nft_rs_table_replace(b, f);
	if (r >= 0)
		r = nft_rs_base(b, f, n->gateway, n->cidrs, n->n_cidrs);
	if (r >= 0)
		r = nft_rs_postrouting(b, f, n->gateway, n->masq[f] ? n->masq_addr[f] : NULL);
	return r;
}

static int build_skeletons(struct nft *n, struct nft_batch *b)
{
	struct group *g;
	int r;

	for (int f = 0; f < _NFT_FAMILY_MAX; f++) {
		if (n->tables[f] != TABLE_CREATE && n->tables[f] != TABLE_REPLACE)
			continue;
		r = emit_skeleton(b, f, n);
		if (r < 0)
			return r;
	}
	/* Affinity chains use the slots' maps and sets: they come last. */
	for (int pass = 0; pass < 2; pass++)
		LL_FOREACH2(n->touched_groups, g, next_touched) {
			if (!g->create || (g->key.kind == NFT_GROUP_AFFINITY) != (pass == 1))
				continue;
			r = nft_rs_group_add(b, g->key.family, g->key.kind, g->key.n, g->key.timeout);
			if (r < 0)
				return r;
		}
	return 0;
}

/* One transaction of a commit being built. */
struct txn {
	struct nft_batch *b;
	size_t elems; /* record_cost() of what is planned into it */
};

static int txn_begin(struct nft *n, struct txn *t)
{
	t->elems = 0;
	return nft_batch_new(n->seq, &t->b);
}

/* Emit the planned elements, send, and wait for every acknowledgement. */
static int txn_send(struct nft *n, struct txn *t, char **ret_error)
{
	size_t count;
	uint64_t t0, usec;
	int r;

	r = build_elems(n, t->b, true);
	if (r >= 0)
		r = build_elems(n, t->b, false);
	if (r < 0) {
		if (ret_error)
			*ret_error = strdup_printf("building the nftables batch: %s", strerror(-r));
		return r;
	}
	count = nft_batch_count(t->b);
	if (count > 0) {
		t0 = now_usec(CLOCK_MONOTONIC);
		r = nft_batch_send(t->b, n->nl, ret_error);
		usec = now_usec(CLOCK_MONOTONIC) - t0;
		n->seq = nft_batch_next_seq(t->b);
		n->messages_last += count + 2;
		n->transactions_last++;
		n->transactions_total += r >= 0;
		if (usec > n->transaction_usec_max_last)
			n->transaction_usec_max_last = usec;
	}
	t->b = nft_batch_free(t->b);
	t->elems = 0;
	lists_rewind(n);
	return r;
}

/* Plan the records of families whose table is (not) replaced, VIP by VIP,
 * starting a new transaction when the current one is full; a replaced
 * table is loaded whole in the first. */
static int build_records(struct nft *n, struct txn *t, struct record *const *recs, size_t count,
			 bool replaced, char **ret_error)
{
	size_t i = 0, j;
	int r;

	for (; i < count; i = j) {
		size_t cost = 0;
		bool atomic = n->tables[recs[i]->key.family] == TABLE_REPLACE;

		for (j = i; j < count && same_vip(recs[i], recs[j]); j++)
			cost += record_cost(recs[j]);
		if (atomic != replaced)
			continue;
		if (!atomic && t->elems > 0 && t->elems + cost > TRANSACTION_MAX_ELEMS) {
			r = txn_send(n, t, ret_error);
			if (r < 0)
				return r;
			r = txn_begin(n, t);
			if (r < 0)
				goto fail;
		}
		r = plan_vip_records(n, recs + i, j - i);
		if (r < 0)
			goto fail;
		t->elems += cost;
	}
	return 0;
fail:
	if (ret_error)
		*ret_error = strdup_printf("building the nftables batch: %s", strerror(-r));
	return r;
}

static void account(struct nft *n, const struct state *s, int sign)
{
	if (s->kind == NFT_KIND_NONE)
		return;
	n->n_entries += sign;
	if (s->kind == NFT_KIND_FORWARD)
		n->n_backends += sign * (ssize_t)s->n_backends;
}

/* The kernel took the batch: desired becomes committed. */
static void apply(struct nft *n)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	struct record *rec, *tmp;
	struct group *g;
	struct vip *v, *vnext;

	DL_FOREACH_SAFE(n->staged, rec, tmp) {
		account(n, &rec->committed, -1);
		state_done(&rec->committed);
		rec->committed = *rec->desired;
		free(rec->desired);
		rec->desired = NULL;
		DL_DELETE(n->staged, rec);
		account(n, &rec->committed, +1);
		record_drop_if_unused(n, rec);
	}
	LL_FOREACH2(n->touched_groups, g, next_touched) {
		g->users = (uint32_t)((int64_t)g->users + g->delta);
		if (g->create) {
			g->in_kernel = true;
			n->n_groups += g->key.kind == NFT_GROUP_LB;
		}
		if (g->users > 0)
			g->empty_since = 0;
		else if (!g->empty_since)
			g->empty_since = now;
	}
	LL_FOREACH_SAFE2(n->touched_vips, v, vnext, next_touched) {
		v->refs = (uint32_t)((int64_t)v->refs + v->delta);
		v->delta = 0;
		v->touched = false;
		v->next_touched = NULL;
		if (v->refs == 0) {
			assert(n->vips); /* v is in it */
			HASH_DEL(n->vips, v);
			free(v);
		}
	}
	n->touched_vips = NULL;
	plan_clear(n);
	for (int f = 0; f < _NFT_FAMILY_MAX; f++)
		n->tables[f] = TABLE_READY;
}

static void group_free_all(struct nft *n)
{
	struct group *g, *tmp;

	HASH_ITER(hh, n->groups, g, tmp) {
		HASH_DEL(n->groups, g);
		list_free(&g->elems);
		free(g);
	}
}

static bool group_collectable(const struct group *g, uint64_t now)
{
	return g->in_kernel && g->users == 0 && g->empty_since &&
	       now - g->empty_since >= GROUP_GC_DELAY_USEC;
}

/* Delete the chains and maps of groups empty long enough, in a transaction
 * of their own: if the kernel still holds a reference, only this fails,
 * and the next commit tries again. */
static void collect_groups(struct nft *n)
{
	_cleanup_(freep) char *error = NULL;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	struct nft_batch *b = NULL;
	struct group *g, *tmp;
	size_t count = 0;
	int r;

	HASH_ITER(hh, n->groups, g, tmp)
		count += group_collectable(g, now);
	if (count == 0)
		return;
	r = nft_batch_new(n->seq, &b);
	/* Affinity chains first: their rules hold the slots' maps and sets. */
	for (int pass = 0; pass < 2; pass++)
		HASH_ITER(hh, n->groups, g, tmp)
			if (r >= 0 && group_collectable(g, now) &&
			    (g->key.kind == NFT_GROUP_AFFINITY) == (pass == 0))
				r = nft_rs_group_delete(b, g->key.family, g->key.kind, g->key.n,
							g->key.timeout);
	if (r >= 0)
		r = nft_batch_send(b, n->nl, &error);
	if (b) {
		n->seq = nft_batch_next_seq(b);
		n->messages_last += nft_batch_count(b) + 2;
		n->transactions_last++;
		nft_batch_free(b);
	}
	if (r < 0) {
		log_debug("nft: deleting %zu unused groups failed, retrying later: %s", count,
			  error ?: strerror(-r));
		return;
	}
	n->transactions_total++;
	HASH_ITER(hh, n->groups, g, tmp)
		if (group_collectable(g, now)) {
			n->n_groups -= g->key.kind == NFT_GROUP_LB;
			HASH_DEL(n->groups, g);
			free(g);
		}
}

static int resolve_tables(struct nft *n);

static int commit_staged(struct nft *n, char **ret_error)
{
	_cleanup_(freep) struct record **recs = NULL;
	struct txn t = {};
	size_t count = 0;
	int r;

	r = resolve_tables(n);
	if (r >= 0)
		r = staged_by_vip(n, &recs, &count);
	if (r >= 0)
		r = plan_groups(n);
	if (r >= 0)
		r = txn_begin(n, &t);
	if (r >= 0)
		r = build_skeletons(n, t.b);
	if (r < 0) {
		if (ret_error)
			*ret_error = strdup_printf("building the nftables batch: %s", strerror(-r));
		goto out;
	}
	/* Replaced tables whole in the first transaction, then the rest. */
	r = build_records(n, &t, recs, count, true, ret_error);
	if (r >= 0)
		r = build_records(n, &t, recs, count, false, ret_error);
	if (r >= 0)
		r = txn_send(n, &t, ret_error);
	if (r < 0)
		goto out;
	if (n->transactions_last > 0) {
		log_debug("nft: committed %zu keys in %" PRIu64 " transactions of %" PRIu64
			  " messages in all, the longest %.1f ms", count, n->transactions_last,
			  n->messages_last, (double)n->transaction_usec_max_last / USEC_PER_MSEC);
		n->commits++;
	}
	apply(n);
out:
	nft_batch_free(t.b);
	plan_clear(n);
	return r;
}

int nft_commit(struct nft *n, char **ret_error)
{
	int r;

	if (ret_error)
		*ret_error = NULL;
	n->messages_last = 0;
	n->transactions_last = 0;
	n->transaction_usec_max_last = 0;
	if (nft_pending(n)) {
		r = commit_staged(n, ret_error);
		if (r < 0) {
			/* What the kernel holds is unknown now. */
			nft_reset(n);
			return r;
		}
	}
	collect_groups(n);
	return 0;
}

bool nft_pending(const struct nft *n)
{
	for (int f = 0; f < _NFT_FAMILY_MAX; f++)
		if (n->tables[f] != TABLE_READY)
			return true;
	return n->staged != NULL;
}

/* ---- adopting a previous run's tables ----------------------------------- */

/* Reading one family's table into the committed copy (struct nft_table_sink). */
struct adoption {
	struct nft *n;
	enum nft_family family;
	size_t keys;
	size_t backends, backends_expected;
	size_t vips, cluster_ips;
	size_t groups;
	char reason[256];
};

_printf_(2, 3) static int inconsistent(struct adoption *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *key_string(const struct nft_key *key, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	inet_ntop(key->family == NFT_FAMILY_IP ? AF_INET : AF_INET6, key->addr, addr, sizeof(addr));
	if (key->protocol == 0 && key->port == 0)
		snprintf(buf, len, "%s", addr);
	else
		snprintf(buf, len, "%s . %s . %u", addr,
			 key->protocol == IPPROTO_TCP ? "tcp" :
			 key->protocol == IPPROTO_UDP ? "udp" :
			 key->protocol == IPPROTO_SCTP ? "sctp" : "?", key->port);
	return buf;
}

static int adopt_group(void *userdata, enum nft_group_kind kind, uint32_t count, uint32_t timeout)
{
	struct adoption *a = userdata;
	struct group *g = group_find(a->n, a->family, kind, count, timeout, true);

	if (!g)
		return -ENOMEM;
	g->in_kernel = true;
	a->groups++;
	return 0;
}

/* The groups a key going to lb-count or affinity-count-timeout uses:
 * each gains a user. */
static int adopt_groups_of(struct adoption *a, const struct nft_key *key, uint32_t count,
			   uint32_t timeout)
{
	enum nft_family f = a->family;
	struct group *g;
	char buf[128];

	g = group_find(a->n, f, timeout ? NFT_GROUP_AFFINITY : NFT_GROUP_LB, count, timeout,
		       false);
	if (!g)
		return inconsistent(a, "%s goes to a missing chain",
				    key_string(key, buf, sizeof(buf)));
	for (uint32_t i = 0; timeout && i < count; i++)
		if (!group_find(a->n, f, NFT_GROUP_SLOT, i, 0, false))
			return inconsistent(a, "%s has no endpoint-%u",
					    key_string(key, buf, sizeof(buf)), i);
	g->users++;
	for (uint32_t i = 0; timeout && i < count; i++)
		group_find(a->n, f, NFT_GROUP_SLOT, i, 0, false)->users++;
	return 0;
}

static int adopt_verdict(void *userdata, const struct nft_key *key, enum nft_kind kind,
			 uint32_t count, uint32_t timeout, const char *comment)
{
	struct adoption *a = userdata;
	struct nft *n = a->n;
	struct record *rec;
	struct vip *v;
	char buf[128];
	int r;

	HASH_FIND(hh, n->records, key, sizeof(*key), rec);
	if (rec && rec->committed.kind != NFT_KIND_NONE)
		return inconsistent(a, "%s is in service-ips and no-endpoint-services",
				    key_string(key, buf, sizeof(buf)));
	if (kind == NFT_KIND_FORWARD) {
		r = adopt_groups_of(a, key, count, timeout);
		if (r < 0)
			return r;
	}
	v = vip_find(n, key, true);
	if (!v)
		return -ENOMEM;
	if (!rec) {
		rec = calloc(1, sizeof(*rec));
		if (!rec)
			return -ENOMEM;
		rec->key = *key;
		HASH_ADD(hh, n->records, key, sizeof(rec->key), rec);
	}
	rec->committed.comment = strdup(comment);
	if (!rec->committed.comment)
		return -ENOMEM;
	if (kind == NFT_KIND_FORWARD) {
		rec->committed.backends = calloc(count, sizeof(*rec->committed.backends));
		if (!rec->committed.backends)
			return -ENOMEM;
		rec->committed.n_backends = count;
		rec->committed.affinity_timeout_sec = timeout;
		a->backends_expected += count;
	}
	rec->committed.kind = kind;
	if (v->refs++ == 0)
		a->vips++;
	a->keys++;
	return 0;
}

static int adopt_backend(void *userdata, enum nft_group_kind kind, const struct nft_key *key,
			 uint32_t slot, const struct model_backend *be)
{
	struct adoption *a = userdata;
	struct record *rec;
	char buf[128];

	HASH_FIND(hh, a->n->records, key, sizeof(*key), rec);
	if (!rec || rec->committed.kind != NFT_KIND_FORWARD || slot >= rec->committed.n_backends ||
	    (kind == NFT_GROUP_SLOT) != sticky(&rec->committed))
		return inconsistent(a, "%s holds slot %u of %s, which does not go there",
				    kind == NFT_GROUP_SLOT ? "an endpoint map" : "a backends map",
				    slot, key_string(key, buf, sizeof(buf)));
	/* The kernel keeps (key, slot) unique: counting is enough to know
	 * every slot is filled. */
	rec->committed.backends[slot] = *be;
	a->backends++;
	return 0;
}

static int adopt_cluster_ip(void *userdata, const struct nft_key *vip)
{
	struct adoption *a = userdata;
	struct vip *v = vip_find(a->n, vip, false);
	char buf[128];

	if (!v || v->refs == 0)
		return inconsistent(a, "cluster-ips holds %s, which has no key",
				    key_string(vip, buf, sizeof(buf)));
	a->cluster_ips++;
	return 0;
}

static const struct nft_table_sink adopt_sink = {
	.group = adopt_group,
	.verdict = adopt_verdict,
	.backend = adopt_backend,
	.cluster_ip = adopt_cluster_ip,
};

/* Forget whatever an adoption of family f put in the committed copy. */
static void adopt_undo(struct nft *n, enum nft_family f)
{
	struct record *rec, *rtmp;
	struct vip *v, *vtmp;
	struct group *g, *gtmp;

	HASH_ITER(hh, n->records, rec, rtmp)
		if (rec->key.family == f) {
			state_done(&rec->committed);
			record_drop_if_unused(n, rec);
		}
	HASH_ITER(hh, n->vips, v, vtmp)
		if (v->key.family == f) {
			HASH_DEL(n->vips, v);
			free(v);
		}
	HASH_ITER(hh, n->groups, g, gtmp)
		if (g->key.family == (uint32_t)f) {
			HASH_DEL(n->groups, g);
			list_free(&g->elems);
			free(g);
		}
}

/*
 * The table is ours and consistent: it is the committed copy now. What is
 * staged becomes the difference from it; keys it holds that are not
 * staged are staged for removal.
 */
static int adopt_finish(struct adoption *a)
{
	struct nft *n = a->n;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	struct record *rec, *tmp;
	struct group *g, *gtmp;
	int r;

	HASH_ITER(hh, n->records, rec, tmp) {
		if (rec->key.family != a->family)
			continue;
		account(n, &rec->committed, +1);
		if (rec->desired) {
			r = keep_slots(&rec->committed, rec->desired);
			if (r < 0)
				return r;
			if (state_equal(&rec->committed, rec->desired))
				record_unstage(n, rec);
			continue;
		}
		rec->desired = calloc(1, sizeof(*rec->desired));
		if (!rec->desired)
			return -ENOMEM;
		DL_APPEND(n->staged, rec);
	}
	HASH_ITER(hh, n->groups, g, gtmp) {
		if (g->key.family != (uint32_t)a->family)
			continue;
		n->n_groups += g->key.kind == NFT_GROUP_LB;
		if (g->users == 0)
			g->empty_since = now;
	}
	n->n_adopted += a->keys;
	return 0;
}

static size_t staged_in(const struct nft *n, enum nft_family f)
{
	const struct record *rec;
	size_t count = 0;

	DL_FOREACH(n->staged, rec)
		count += rec->key.family == f;
	return count;
}

/* How many times a table that keeps changing while it is read is read. */
#define ADOPT_ATTEMPTS 3

/* Take family f's table over if it is ours, else say how to replace it. */
static int adopt(struct nft *n, enum nft_family f)
{
	const char *fam = nft_family_name(f);
	int r;

	for (int attempt = 1;; attempt++) {
		struct adoption a = { .n = n, .family = f };

		r = nft_table_read(f, emit_skeleton, n, &adopt_sink, &a, a.reason, sizeof(a.reason));
		if (r == NFT_TABLE_READ && a.backends != a.backends_expected)
			r = inconsistent(&a, "%zu of %zu backend slots filled", a.backends,
					 a.backends_expected);
		else if (r == NFT_TABLE_READ && a.cluster_ips != a.vips)
			r = inconsistent(&a, "cluster-ips holds %zu of %zu VIPs", a.cluster_ips,
					 a.vips);
		if (r == -EINVAL)
			r = NFT_TABLE_DIFFERENT; /* from the sink, or just above */
		if (r == NFT_TABLE_READ) {
			r = adopt_finish(&a);
			if (r < 0)
				return r;
			n->tables[f] = TABLE_READY;
			log_debug("nft: adopted table %s %s: %zu keys, %zu backends, %zu groups; "
				  "%zu keys to change", fam, NFT_TABLE_NAME, a.keys, a.backends,
				  a.groups, staged_in(n, f));
			return 0;
		}
		adopt_undo(n, f);
		if (r == -EAGAIN && attempt < ADOPT_ATTEMPTS)
			continue;
		if (r == -ENOMEM)
			return r;
		if (r == NFT_TABLE_ABSENT) {
			n->tables[f] = TABLE_CREATE;
			log_debug("nft: no table %s %s to adopt: creating it", fam, NFT_TABLE_NAME);
		} else {
			n->tables[f] = TABLE_REPLACE;
			log_debug("nft: not adopting table %s %s, replacing it: %s", fam,
				  NFT_TABLE_NAME,
				  r == NFT_TABLE_DIFFERENT ? a.reason :
				  r == -EAGAIN ? "it kept changing while read" : strerror(-r));
		}
		return 0;
	}
}

/* Decide, for each family whose table is unknown, what the commit does. */
static int resolve_tables(struct nft *n)
{
	int r;

	for (int f = 0; f < _NFT_FAMILY_MAX; f++) {
		switch (n->tables[f]) {
		case TABLE_ADOPT:
			r = adopt(n, f);
			if (r < 0)
				return r;
			break;
		case TABLE_PROBE:
			/* Unsure (it could not be checked): replacing is
			 * always right. */
			r = nft_table_exists(f);
			n->tables[f] = r == 0 ? TABLE_CREATE : TABLE_REPLACE;
			break;
		default:
			break;
		}
	}
	n->adopt = false;
	return 0;
}

void nft_reset(struct nft *n)
{
	struct record *rec, *tmp;
	struct vip *v, *vtmp;

	plan_clear(n);
	HASH_ITER(hh, n->records, rec, tmp) {
		HASH_DEL(n->records, rec);
		state_free(rec->desired);
		state_done(&rec->committed);
		free(rec);
	}
	n->staged = NULL;
	HASH_ITER(hh, n->vips, v, vtmp) {
		HASH_DEL(n->vips, v);
		free(v);
	}
	group_free_all(n);
	n->n_entries = 0;
	n->n_backends = 0;
	n->n_groups = 0;
	/* Before the first commit nothing failed: the tables a previous run
	 * left are still worth adopting (for the configuration now set). */
	for (int f = 0; f < _NFT_FAMILY_MAX; f++)
		n->tables[f] = n->adopt ? TABLE_ADOPT : TABLE_PROBE;
}

void nft_set_gateway(struct nft *n, bool gateway)
{
	if (n->gateway == gateway)
		return;
	n->gateway = gateway;
	nft_reset(n);
}

bool nft_get_gateway(const struct nft *n)
{
	return n->gateway;
}

/* ---- resolv/: masquerade of the DNS link's source address ---------------- */

int nft_set_masquerade_sources(struct nft *n, const struct kube_ip *ips, size_t n_ips)
{
	uint8_t addr[_NFT_FAMILY_MAX][16] = {};
	bool set[_NFT_FAMILY_MAX] = {};

	for (size_t i = 0; i < n_ips; i++) {
		enum nft_family f;

		if (family_of(ips[i].family, &f) < 0 || set[f])
			return -EINVAL;
		set[f] = true;
		memcpy(addr[f], ips[i].bytes, f == NFT_FAMILY_IP ? 4 : 16);
	}
	if (memcmp(set, n->masq, sizeof(set)) == 0 && memcmp(addr, n->masq_addr, sizeof(addr)) == 0)
		return 0;
	memcpy(n->masq, set, sizeof(set));
	memcpy(n->masq_addr, addr, sizeof(addr));
	nft_reset(n);
	return 0;
}

/* ---- --service-cidr ------------------------------------------------------ */

int nft_service_cidrs_parse(const char *list, struct kube_cidr *ret, size_t *ret_n,
			    char **ret_error)
{
	_cleanup_(freep) char *copy = strdup(list);
	char *save = NULL;
	size_t n = 0;
	int r;

	*ret_error = NULL;
	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == NFT_MAX_SERVICE_CIDRS) {
			*ret_error = strdup_printf("more than %u CIDRs", NFT_MAX_SERVICE_CIDRS);
			return -EINVAL;
		}
		r = kube_cidr_parse(tok, &ret[n], ret_error);
		if (r < 0)
			return r;
		n++;
	}
	*ret_n = n;
	return 0;
}

int nft_set_service_cidrs(struct nft *n, const struct kube_cidr *cidrs, size_t n_cidrs)
{
	struct nft_cidr c[NFT_MAX_SERVICE_CIDRS] = {};

	if (n_cidrs > NFT_MAX_SERVICE_CIDRS)
		return -EINVAL;
	for (size_t i = 0; i < n_cidrs; i++) {
		enum nft_family f;

		if (family_of(cidrs[i].addr.family, &f) < 0 || cidrs[i].prefix < 1 ||
		    cidrs[i].prefix > (f == NFT_FAMILY_IP ? 32u : 128u))
			return -EINVAL;
		c[i].family = (uint8_t)f;
		c[i].prefix = (uint8_t)cidrs[i].prefix;
		memcpy(c[i].addr, cidrs[i].addr.bytes, f == NFT_FAMILY_IP ? 4 : 16);
		/* host bits zero, as nft compares them */
		for (unsigned b = c[i].prefix; b < 128; b++)
			c[i].addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
	}
	if (n_cidrs == n->n_cidrs && memcmp(c, n->cidrs, n_cidrs * sizeof(c[0])) == 0)
		return 0;
	memcpy(n->cidrs, c, sizeof(c));
	n->n_cidrs = n_cidrs;
	nft_reset(n);
	return 0;
}

size_t nft_get_service_cidrs(const struct nft *n, struct kube_cidr *ret)
{
	for (size_t i = 0; i < n->n_cidrs; i++) {
		ret[i] = (struct kube_cidr){ .prefix = n->cidrs[i].prefix };
		ret[i].addr.family = n->cidrs[i].family == NFT_FAMILY_IP ? AF_INET : AF_INET6;
		memcpy(ret[i].addr.bytes, n->cidrs[i].addr, sizeof(ret[i].addr.bytes));
	}
	return n->n_cidrs;
}

int nft_new(struct nft **ret)
{
	struct nft *n;
	int r;

	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	r = nft_socket_open(&n->nl);
	if (r < 0) {
		free(n);
		return r;
	}
	n->seq = (uint32_t)time(NULL);
	n->adopt = true;
	for (int f = 0; f < _NFT_FAMILY_MAX; f++)
		n->tables[f] = TABLE_ADOPT;
	*ret = n;
	return 0;
}

uint32_t nft_portid(const struct nft *n)
{
	return mnl_socket_get_portid(n->nl);
}

uint64_t nft_transactions_total(const struct nft *n)
{
	return n->transactions_total;
}

struct nft *nft_free(struct nft *n)
{
	if (!n)
		return NULL;
	nft_reset(n);
	nft_socket_close(n->nl);
	free(n);
	return NULL;
}

void nft_get_stats(const struct nft *n, struct nft_stats *ret)
{
	*ret = (struct nft_stats){
		.entries = n->n_entries,
		.backends = n->n_backends,
		.groups = n->n_groups,
		.adopted = n->n_adopted,
		.commits = n->commits,
		.messages_last = n->messages_last,
		.transactions_last = n->transactions_last,
		.transaction_usec_max_last = n->transaction_usec_max_last,
	};
}

int nft_cleanup(char **ret_error)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = NULL;
	int r;

	if (ret_error)
		*ret_error = NULL;
	r = nft_socket_open(&nl);
	if (r < 0) {
		if (ret_error)
			*ret_error = strdup_printf("opening nfnetlink socket: %s", strerror(-r));
		return r;
	}
	/* Each delete is preceded by a create, so a missing table is no
	 * error and both go in one transaction. */
	r = nft_batch_new((uint32_t)time(NULL), &b);
	for (int f = 0; f < _NFT_FAMILY_MAX && r >= 0; f++)
		r = nft_rs_table_delete(b, f);
	if (r >= 0)
		r = nft_batch_send(b, nl, ret_error);
	else if (ret_error)
		*ret_error = strdup_printf("building the nftables batch: %s", strerror(-r));
	if (r == -ENOENT) {
		r = 0;
		if (ret_error) {
			free(*ret_error);
			*ret_error = NULL;
		}
	}
	nft_batch_free(b);
	nft_socket_close(nl);
	return r;
}

/* A record's committed state as a model entry; backends point into it. */
static void entry_from_record(const struct record *rec, struct model_key *ret_key,
			      struct model_entry *ret)
{
	const struct state *s = &rec->committed;
	struct model_key key = { .protocol = rec->key.protocol, .port = rec->key.port };
	struct model_entry e = {};

	key.vip.family = rec->key.family == NFT_FAMILY_IP ? AF_INET : AF_INET6;
	memcpy(key.vip.bytes, rec->key.addr, rec->key.family == NFT_FAMILY_IP ? 4 : 16);
	e.vip = key.vip;
	e.protocol = key.protocol;
	e.port = key.port;
	e.verdict = s->kind == NFT_KIND_FORWARD ? MODEL_FORWARD :
		    s->kind == NFT_KIND_DROP    ? MODEL_DROP :
						  MODEL_REJECT;
	snprintf(e.comment, sizeof(e.comment), "%s", s->comment ? s->comment : "");
	e.backends = s->backends;
	e.n_backends = s->n_backends;
	e.affinity_timeout_sec = s->affinity_timeout_sec;
	*ret_key = key;
	*ret = e;
}

int nft_foreach_committed(const struct nft *n, model_change_fn fn, void *userdata)
{
	const struct record *rec, *tmp;

	HASH_ITER(hh, n->records, rec, tmp) {
		struct model_key key;
		struct model_entry e;
		int r;

		if (rec->committed.kind == NFT_KIND_NONE)
			continue;
		entry_from_record(rec, &key, &e);
		r = fn(&key, &e, userdata);
		if (r < 0)
			return r;
	}
	return 0;
}

int nft_committed_entry(const struct nft *n, const struct model_key *mkey,
			struct model_entry *ret)
{
	const struct record *rec;
	struct model_key key;
	struct nft_key k;

	if (key_from_model(mkey, &k) < 0)
		return 0;
	HASH_FIND(hh, n->records, &k, sizeof(k), rec);
	if (!rec || rec->committed.kind == NFT_KIND_NONE)
		return 0;
	entry_from_record(rec, &key, ret);
	return 1;
}
