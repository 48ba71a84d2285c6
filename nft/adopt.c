/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reading back a table a previous run left behind (kube-annex --keep-rules,
 * then a restart or an upgrade), so that the first commit can converge it
 * in place instead of replacing it.
 *
 * The table, its chains, sets and rules are dumped (GETTABLE, GETCHAIN,
 * GETSET, GETRULE) and parsed with libnftnl. The table is taken over only
 * if it is exactly what this version creates: the caller builds, into a
 * batch that is never sent, the messages that would create the table with
 * the groups found in it, and every chain, rule and set is compared with
 * what those messages say, attribute by attribute. Anything else (an older
 * or newer layout, a rule someone added, a changed priority, an element
 * with a timeout or a verdict we never write) and the caller replaces the
 * table instead.
 *
 * Elements: service-ips, no-endpoint-services and cluster-ips are dumped
 * (GETSETELEM); the backends-N slots the service-ips elements lead to are
 * looked up (GETSETELEM with the keys), see lookup_backends(). They are
 * handed to the caller one netlink message at a time, never all held in
 * memory.
 *
 * Every reply carries the ruleset generation it was read from; a table
 * that changes while it is read is read again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "nft/nft-private.h"

#define READ_TIMEOUT_MSEC 5000
#define READ_BUF_SIZE 65536
#define REQUEST_SIZE 512 /* a header and a table or set name */
/* Backend slots looked up per request: each answer is a message of its own,
 * allocated at a page's size, and all of them wait in the receive buffer. */
#define LOOKUPS_PER_REQUEST_MAX 512u
#define LOOKUP_REPLY_TRUESIZE 8192u
#define LOOKUP_RCVBUF (LOOKUPS_PER_REQUEST_MAX * LOOKUP_REPLY_TRUESIZE)
#define LOOKUP_REQUEST_SIZE (LOOKUPS_PER_REQUEST_MAX * 64u)
/* Chains and sets besides the groups' (base chains, reject-chain, the
 * three fixed sets), with room for what later versions may add. */
#define MAX_FIXED_OBJECTS 64u
/* Chains or sets: the groups' (lb-N and affinity-N-T chains; backends-N,
 * endpoint-N and endpoint-N-clients) and the fixed ones. */
#define MAX_OBJECTS (2 * NFT_ADOPT_MAX_GROUPS + 2 * NFT_MAX_AFFINITY_BACKENDS + MAX_FIXED_OBJECTS)
/* An affinity-N-T chain has 2N + 1 rules. */
#define MAX_RULES_PER_CHAIN (2 * NFT_MAX_AFFINITY_BACKENDS + 64u)
#define MAX_RULES (4 * MAX_OBJECTS + 32768u)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_table *, nftnl_table_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set *, nftnl_set_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_expr_iter *, nftnl_expr_iter_destroy);

/* Objects of one table, in the order they were listed. */
struct objects {
	struct nftnl_table *table;
	struct nftnl_chain **chains;
	size_t n_chains;
	struct nftnl_set **sets;
	size_t n_sets;
	struct nftnl_rule **rules;
	size_t n_rules;
	bool too_many;
	bool unparsable; /* something libnftnl could not parse: not ours */
};

struct reader {
	struct mnl_socket *nl;
	enum nft_family family;
	uint32_t portid;
	uint32_t seq;
	uint16_t genid;    /* low 16 bits of the ruleset generation */
	bool genid_known;
	bool changed;      /* a reply came from another generation */
	int error;         /* set by a callback that stopped the read */
	size_t lookups_per_request;
	char *reason;
	size_t reason_len;
	char *buf;
};

_printf_(2, 3) static int differ(struct reader *rd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rd->reason, rd->reason_len, fmt, ap);
	va_end(ap);
	return NFT_TABLE_DIFFERENT;
}

static void objects_done(struct objects *o)
{
	if (o->table)
		nftnl_table_free(o->table);
	for (size_t i = 0; i < o->n_chains; i++)
		nftnl_chain_free(o->chains[i]);
	for (size_t i = 0; i < o->n_sets; i++)
		nftnl_set_free(o->sets[i]);
	for (size_t i = 0; i < o->n_rules; i++)
		nftnl_rule_free(o->rules[i]);
	free(o->chains);
	free(o->sets);
	free(o->rules);
	*o = (struct objects){};
}

/* Append p to the array v of len pointers: 0 or -ENOMEM. */
#define PUSH(v, len, p)                                                      \
	({                                                                   \
		__typeof__(v) _nv = reallocarray((v), (len) + 1, sizeof(*_nv)); \
		if (_nv) {                                                   \
			_nv[(len)++] = (p);                                  \
			(v) = _nv;                                           \
		}                                                            \
		_nv ? 0 : -ENOMEM;                                           \
	})

/* ---- requests ----------------------------------------------------------- */

/* As many as the receive buffer we get holds. */
static size_t lookups_per_request(int fd)
{
	int size = (int)LOOKUP_RCVBUF, got = 0;
	socklen_t sl = sizeof(got);
	size_t n;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &sl) < 0 || got <= 0)
		return 16;
	/* the kernel reports twice what it was asked, and counts overhead */
	n = (size_t)got / 2 / LOOKUP_REPLY_TRUESIZE;
	return n < 16 ? 16 : n > LOOKUPS_PER_REQUEST_MAX ? LOOKUPS_PER_REQUEST_MAX : n;
}

static int reader_open(struct reader *rd, enum nft_family f, char *reason, size_t reason_len)
{
	*rd = (struct reader){ .family = f, .reason = reason, .reason_len = reason_len };
	rd->buf = malloc(READ_BUF_SIZE);
	if (!rd->buf)
		return -ENOMEM;
	rd->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!rd->nl)
		return -errno;
	if (mnl_socket_bind(rd->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return -errno;
	rd->portid = mnl_socket_get_portid(rd->nl);
	rd->lookups_per_request = lookups_per_request(mnl_socket_get_fd(rd->nl));
	rd->seq = (uint32_t)now_usec(CLOCK_MONOTONIC);
	return 0;
}

static void reader_close(struct reader *rd)
{
	if (rd->nl)
		mnl_socket_close(rd->nl);
	free(rd->buf);
	rd->nl = NULL;
	rd->buf = NULL;
}

/* libmnl leaves attribute padding unwritten: start from zeroes, so that
 * no stale bytes reach the kernel. */
static struct nlmsghdr *request_start(struct reader *rd, char *buf, size_t size, uint16_t type,
				      uint16_t flags)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *g;

	memset(buf, 0, size);
	nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++rd->seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = (uint8_t)nft_family_nfproto(rd->family);
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	return nlh;
}

/* Every reply must come from the same ruleset generation. */
static bool same_generation(struct reader *rd, const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
	uint16_t id;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*g)) {
		rd->error = -EBADMSG;
		return false;
	}
	id = ntohs(g->res_id);
	if (!rd->genid_known) {
		rd->genid = id;
		rd->genid_known = true;
	}
	if (id != rd->genid)
		rd->changed = true;
	return !rd->changed;
}

/* Send the request and run cb on every reply until the dump ends or the
 * acknowledgement arrives. */
static int request_run(struct reader *rd, const struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	int fd = mnl_socket_get_fd(rd->nl);

	if (mnl_socket_sendto(rd->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t len = recv(fd, rd->buf, READ_BUF_SIZE, 0);
		int r;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = poll(&pfd, 1, READ_TIMEOUT_MSEC);
			if (r < 0 && errno != EINTR)
				return -errno;
			if (r == 0)
				return -ETIMEDOUT;
			continue;
		}
		rd->error = 0;
		r = mnl_cb_run(rd->buf, (size_t)len, nlh->nlmsg_seq, rd->portid, cb, data);
		if (rd->error)
			return rd->error;
		if (rd->changed || (r < 0 && errno == EINTR)) /* NLM_F_DUMP_INTR */
			return -EAGAIN;
		if (r < 0)
			return -errno;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

/* ---- objects ------------------------------------------------------------ */

struct collect {
	struct reader *rd;
	struct objects *o;
};

static int get_table_cb(const struct nlmsghdr *nlh, void *data)
{
	struct collect *c = data;
	struct nftnl_table *t;

	if (!same_generation(c->rd, nlh))
		return MNL_CB_STOP;
	if (c->o->table)
		return MNL_CB_OK;
	t = nftnl_table_alloc();
	if (!t) {
		c->rd->error = -ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_table_nlmsg_parse(nlh, t) < 0)
		c->o->unparsable = true;
	c->o->table = t;
	return MNL_CB_OK;
}

/* 1: the table exists (its object in o->table when o is given), 0: not. */
static int read_table(struct reader *rd, struct objects *o)
{
	char buf[REQUEST_SIZE];
	struct objects none = {};
	struct collect c = { rd, o ?: &none };
	struct nlmsghdr *nlh = request_start(rd, buf, sizeof(buf), NFT_MSG_GETTABLE, NLM_F_ACK);
	int r;

	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NFT_TABLE_NAME);
	r = request_run(rd, nlh, get_table_cb, &c);
	objects_done(&none);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

static bool in_our_table(const char *table)
{
	return table && streq(table, NFT_TABLE_NAME);
}

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct collect *c = data;
	struct nftnl_chain *ch;

	if (!same_generation(c->rd, nlh))
		return MNL_CB_STOP;
	ch = nftnl_chain_alloc();
	if (!ch)
		goto oom;
	if (nftnl_chain_nlmsg_parse(nlh, ch) < 0 || !nftnl_chain_is_set(ch, NFTNL_CHAIN_NAME))
		c->o->unparsable = true;
	if (!in_our_table(nftnl_chain_get_str(ch, NFTNL_CHAIN_TABLE))) {
		nftnl_chain_free(ch);
		return MNL_CB_OK;
	}
	if (c->o->n_chains >= MAX_OBJECTS) {
		c->o->too_many = true;
		nftnl_chain_free(ch);
		return MNL_CB_OK;
	}
	if (PUSH(c->o->chains, c->o->n_chains, ch) < 0) {
		nftnl_chain_free(ch);
		goto oom;
	}
	return MNL_CB_OK;
oom:
	c->rd->error = -ENOMEM;
	return MNL_CB_ERROR;
}

static int set_cb(const struct nlmsghdr *nlh, void *data)
{
	struct collect *c = data;
	struct nftnl_set *s;

	if (!same_generation(c->rd, nlh))
		return MNL_CB_STOP;
	s = nftnl_set_alloc();
	if (!s)
		goto oom;
	if (nftnl_set_nlmsg_parse(nlh, s) < 0 || !nftnl_set_is_set(s, NFTNL_SET_NAME))
		c->o->unparsable = true;
	if (!in_our_table(nftnl_set_get_str(s, NFTNL_SET_TABLE))) {
		nftnl_set_free(s);
		return MNL_CB_OK;
	}
	if (c->o->n_sets >= MAX_OBJECTS) {
		c->o->too_many = true;
		nftnl_set_free(s);
		return MNL_CB_OK;
	}
	if (PUSH(c->o->sets, c->o->n_sets, s) < 0) {
		nftnl_set_free(s);
		goto oom;
	}
	return MNL_CB_OK;
oom:
	c->rd->error = -ENOMEM;
	return MNL_CB_ERROR;
}

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct collect *c = data;
	struct nftnl_rule *rule;

	if (!same_generation(c->rd, nlh))
		return MNL_CB_STOP;
	rule = nftnl_rule_alloc();
	if (!rule)
		goto oom;
	/* A rule with an expression libnftnl does not know fails here:
	 * it must not go unnoticed. */
	if (nftnl_rule_nlmsg_parse(nlh, rule) < 0 || !nftnl_rule_is_set(rule, NFTNL_RULE_CHAIN))
		c->o->unparsable = true;
	if (!in_our_table(nftnl_rule_get_str(rule, NFTNL_RULE_TABLE))) {
		nftnl_rule_free(rule);
		return MNL_CB_OK;
	}
	if (c->o->n_rules >= MAX_RULES) {
		c->o->too_many = true;
		nftnl_rule_free(rule);
		return MNL_CB_OK;
	}
	if (PUSH(c->o->rules, c->o->n_rules, rule) < 0) {
		nftnl_rule_free(rule);
		goto oom;
	}
	return MNL_CB_OK;
oom:
	c->rd->error = -ENOMEM;
	return MNL_CB_ERROR;
}

static int dump(struct reader *rd, struct objects *o, uint16_t type, uint16_t table_attr,
		mnl_cb_t cb)
{
	char buf[REQUEST_SIZE];
	struct collect c = { rd, o };
	struct nlmsghdr *nlh = request_start(rd, buf, sizeof(buf), type, NLM_F_DUMP);

	/* Sets and rules can be dumped for one table; chains cannot, and
	 * are filtered here like the rest. */
	if (table_attr)
		mnl_attr_put_strz(nlh, table_attr, NFT_TABLE_NAME);
	return request_run(rd, nlh, cb, &c);
}

/* 0 when the table is absent, 1 when read into o. */
static int read_objects(struct reader *rd, struct objects *o)
{
	int r;

	r = read_table(rd, o);
	if (r <= 0)
		return r;
	r = dump(rd, o, NFT_MSG_GETCHAIN, 0, chain_cb);
	if (r >= 0)
		r = dump(rd, o, NFT_MSG_GETSET, NFTA_SET_TABLE, set_cb);
	if (r >= 0)
		r = dump(rd, o, NFT_MSG_GETRULE, NFTA_RULE_TABLE, rule_cb);
	return r < 0 ? r : 1;
}

/* ---- what this version creates ------------------------------------------ */

/* A decimal number as "%u" prints it, min <= value <= max; *end after it. */
static bool parse_u32(const char *p, uint32_t min, uint32_t max, const char **end,
		      uint32_t *ret)
{
	uint64_t v = 0;

	if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > max)
			return false;
	}
	if (v < min)
		return false;
	*end = p;
	*ret = (uint32_t)v;
	return true;
}

/* "backends-N" / "lb-N" / "endpoint-N" with N as printed by "%u", within
 * [min, max]. */
static bool parse_group(const char *name, const char *prefix, uint32_t min, uint32_t max,
			uint32_t *ret)
{
	size_t len = strlen(prefix);
	const char *end;

	return strncmp(name, prefix, len) == 0 && parse_u32(name + len, min, max, &end, ret) &&
	       *end == 0;
}

/* "affinity-N-T" */
static bool parse_affinity(const char *name, uint32_t *ret_n, uint32_t *ret_timeout)
{
	const char *p;

	return strncmp(name, "affinity-", 9) == 0 &&
	       parse_u32(name + 9, 1, NFT_MAX_AFFINITY_BACKENDS, &p, ret_n) && *p == '-' &&
	       parse_u32(p + 1, 1, UINT32_MAX, &p, ret_timeout) && *p == 0;
}

/* A group a table holds (enum nft_group_kind). */
struct found {
	uint32_t kind, n, timeout;
};

static int found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return x->timeout < y->timeout ? -1 : x->timeout > y->timeout;
}

/* The groups whose objects are in the table, sorted: LB and SLOT by their
 * maps (backends-N, endpoint-N), AFFINITY by their chains. */
static int find_groups(const struct objects *o, struct found **ret, size_t *ret_n)
{
	_cleanup_(freep) struct found *groups = NULL;
	size_t n = 0;

	groups = calloc(o->n_sets + o->n_chains + 1, sizeof(*groups));
	if (!groups)
		return -ENOMEM;
	for (size_t i = 0; i < o->n_sets; i++) {
		const char *name = nftnl_set_get_str(o->sets[i], NFTNL_SET_NAME);
		uint32_t g;

		if (parse_group(name, "backends-", 1, NFT_MAX_BACKENDS, &g))
			groups[n++] = (struct found){ NFT_GROUP_LB, g, 0 };
		else if (parse_group(name, "endpoint-", 0, NFT_MAX_AFFINITY_BACKENDS - 1, &g))
			groups[n++] = (struct found){ NFT_GROUP_SLOT, g, 0 };
	}
	for (size_t i = 0; i < o->n_chains; i++) {
		uint32_t g, timeout;

		if (parse_affinity(nftnl_chain_get_str(o->chains[i], NFTNL_CHAIN_NAME), &g, &timeout))
			groups[n++] = (struct found){ NFT_GROUP_AFFINITY, g, timeout };
	}
	qsort(groups, n, sizeof(*groups), found_cmp);
	*ret = TAKE_PTR(groups);
	*ret_n = n;
	return 0;
}

/* Parse the messages of a batch that is never sent. */
static int expected_objects(struct nft_batch *b, struct objects *o)
{
	for (size_t i = 0; i < nft_batch_count(b); i++) {
		const struct nft_msg_info *m = nft_batch_msg(b, i);
		void *obj = NULL;
		int r = -ENOMEM;

		switch (m->type) {
		case NFT_MSG_NEWTABLE:
			/* the last one is the table as created */
			if (o->table)
				nftnl_table_free(o->table);
			o->table = nftnl_table_alloc();
			if (o->table && nftnl_table_nlmsg_parse(m->nlh, o->table) >= 0)
				r = 0;
			break;
		case NFT_MSG_NEWCHAIN:
			obj = nftnl_chain_alloc();
			if (obj && nftnl_chain_nlmsg_parse(m->nlh, obj) >= 0)
				r = PUSH(o->chains, o->n_chains, obj);
			if (r < 0 && obj)
				nftnl_chain_free(obj);
			break;
		case NFT_MSG_NEWSET:
			obj = nftnl_set_alloc();
			if (obj && nftnl_set_nlmsg_parse(m->nlh, obj) >= 0)
				r = PUSH(o->sets, o->n_sets, obj);
			if (r < 0 && obj)
				nftnl_set_free(obj);
			break;
		case NFT_MSG_NEWRULE:
			obj = nftnl_rule_alloc();
			if (obj && nftnl_rule_nlmsg_parse(m->nlh, obj) >= 0)
				r = PUSH(o->rules, o->n_rules, obj);
			if (r < 0 && obj)
				nftnl_rule_free(obj);
			break;
		default:
			r = 0; /* DELTABLE */
			break;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- comparing ---------------------------------------------------------- */

static bool data_equal(const void *a, uint32_t alen, const void *b, uint32_t blen)
{
	if (!a || !b)
		return a == b;
	return alen == blen && memcmp(a, b, alen) == 0;
}

#define ATTR_EQUAL(type, x, y, attr)                                                   \
	({                                                                             \
		uint32_t _la = 0, _lb = 0;                                             \
		const void *_a = nftnl_##type##_is_set(x, attr) ?                      \
			nftnl_##type##_get_data(x, attr, &_la) : NULL;                  \
		const void *_b = nftnl_##type##_is_set(y, attr) ?                      \
			nftnl_##type##_get_data(y, attr, &_lb) : NULL;                  \
		data_equal(_a, _la, _b, _lb);                                          \
	})

static int compare_table(struct reader *rd, const struct nftnl_table *want,
			 const struct nftnl_table *have)
{
	/* Flags: dormant or owned by another process would be a different
	 * table; the comment says whose it is. */
	if (nftnl_table_get_u32(want, NFTNL_TABLE_FLAGS) != nftnl_table_get_u32(have, NFTNL_TABLE_FLAGS))
		return differ(rd, "table flags 0x%x", nftnl_table_get_u32(have, NFTNL_TABLE_FLAGS));
	if (!ATTR_EQUAL(table, want, have, NFTNL_TABLE_USERDATA))
		return differ(rd, "table comment differs");
	return 0;
}

static struct nftnl_chain *chain_named(const struct objects *o, const char *name)
{
	for (size_t i = 0; i < o->n_chains; i++)
		if (streq(nftnl_chain_get_str(o->chains[i], NFTNL_CHAIN_NAME), name))
			return o->chains[i];
	return NULL;
}

static int compare_chains(struct reader *rd, const struct objects *want, const struct objects *have)
{
	static const uint16_t attrs[] = { NFTNL_CHAIN_HOOKNUM, NFTNL_CHAIN_PRIO, NFTNL_CHAIN_POLICY,
					  NFTNL_CHAIN_TYPE,    NFTNL_CHAIN_DEV,  NFTNL_CHAIN_USERDATA };
	static const char *const names[] = { "hook", "priority", "policy",
					     "type", "device", "comment" };

	for (size_t i = 0; i < have->n_chains; i++) {
		const struct nftnl_chain *h = have->chains[i];
		const char *name = nftnl_chain_get_str(h, NFTNL_CHAIN_NAME);
		const struct nftnl_chain *w = chain_named(want, name);

		if (!w)
			return differ(rd, "chain %s is not ours", name);
		for (size_t j = 0; j < ARRAY_SIZE(attrs); j++)
			if (!ATTR_EQUAL(chain, w, h, attrs[j]))
				return differ(rd, "chain %s: %s differs", name, names[j]);
		if (nftnl_chain_is_set(h, NFTNL_CHAIN_DEVICES))
			return differ(rd, "chain %s has devices", name);
		/* The kernel marks base chains; anything else (offload,
		 * binding) is not ours. */
		if (nftnl_chain_get_u32(h, NFTNL_CHAIN_FLAGS) & ~(uint32_t)NFT_CHAIN_BASE)
			return differ(rd, "chain %s has flags 0x%x", name,
				      nftnl_chain_get_u32(h, NFTNL_CHAIN_FLAGS));
	}
	/* Names are unique in a table: equal counts mean every expected
	 * chain was found. */
	if (have->n_chains != want->n_chains)
		return differ(rd, "%zu chains instead of %zu", have->n_chains, want->n_chains);
	return 0;
}

static struct nftnl_set *set_named(const struct objects *o, const char *name)
{
	for (size_t i = 0; i < o->n_sets; i++)
		if (streq(nftnl_set_get_str(o->sets[i], NFTNL_SET_NAME), name))
			return o->sets[i];
	return NULL;
}

static int compare_sets(struct reader *rd, const struct objects *want, const struct objects *have)
{
	static const uint16_t attrs[] = {
		NFTNL_SET_FLAGS,       NFTNL_SET_KEY_TYPE,   NFTNL_SET_KEY_LEN,
		NFTNL_SET_DATA_TYPE,   NFTNL_SET_DATA_LEN,   NFTNL_SET_OBJ_TYPE,
		NFTNL_SET_POLICY,      NFTNL_SET_DESC_SIZE,  NFTNL_SET_TIMEOUT,
		NFTNL_SET_GC_INTERVAL, NFTNL_SET_USERDATA,   NFTNL_SET_DESC_CONCAT,
	};
	static const char *const names[] = {
		"flags",       "key type",  "key length",
		"data type",   "data length", "object type",
		"policy",      "size",      "timeout",
		"gc interval", "user data (typeof, comment)", "concatenation",
	};

	for (size_t i = 0; i < have->n_sets; i++) {
		const struct nftnl_set *h = have->sets[i];
		const char *name = nftnl_set_get_str(h, NFTNL_SET_NAME);
		const struct nftnl_set *w = set_named(want, name);

		if (!w)
			return differ(rd, "set %s is not ours", name);
		for (size_t j = 0; j < ARRAY_SIZE(attrs); j++) {
			/* nft sends 0 as a verdict's length; the kernel
			 * reports the size of its own verdict struct. */
			if (attrs[j] == NFTNL_SET_DATA_LEN &&
			    nftnl_set_get_u32(w, NFTNL_SET_DATA_TYPE) == NFT_DATA_VERDICT)
				continue;
			/* ... and leaves out flags that are zero. */
			if (attrs[j] == NFTNL_SET_FLAGS) {
				if (nftnl_set_get_u32(w, attrs[j]) != nftnl_set_get_u32(h, attrs[j]))
					return differ(rd, "set %s has flags 0x%x", name,
						      nftnl_set_get_u32(h, attrs[j]));
				continue;
			}
			if (!ATTR_EQUAL(set, w, h, attrs[j]))
				return differ(rd, "set %s: %s differs", name, names[j]);
		}
		if (nftnl_set_is_set(h, NFTNL_SET_EXPR) || nftnl_set_is_set(h, NFTNL_SET_EXPRESSIONS))
			return differ(rd, "set %s has expressions", name);
	}
	if (have->n_sets != want->n_sets)
		return differ(rd, "%zu sets instead of %zu", have->n_sets, want->n_sets);
	return 0;
}

/*
 * An attribute only one side has. The kernel reports a few that nft never
 * sends, at values implied by what it sent; nft sends a set id the kernel
 * only uses within the transaction.
 */
static bool expr_attr_implied(const char *name, uint16_t type, const struct nftnl_expr *have,
			      bool in_kernel)
{
	if (!in_kernel)
		return (streq(name, "lookup") && type == NFTNL_EXPR_LOOKUP_SET_ID) ||
		       (streq(name, "dynset") && type == NFTNL_EXPR_DYNSET_SET_ID);
	if (streq(name, "lookup"))
		return type == NFTNL_EXPR_LOOKUP_FLAGS &&
		       nftnl_expr_get_u32(have, NFTNL_EXPR_LOOKUP_FLAGS) == 0;
	if (streq(name, "dynset"))
		return type == NFTNL_EXPR_DYNSET_FLAGS &&
		       nftnl_expr_get_u32(have, NFTNL_EXPR_DYNSET_FLAGS) == 0;
	if (streq(name, "bitwise"))
		return type == NFTNL_EXPR_BITWISE_OP &&
		       nftnl_expr_get_u32(have, NFTNL_EXPR_BITWISE_OP) == NFT_BITWISE_BOOL;
	if (streq(name, "nat")) {
		switch (type) {
		case NFTNL_EXPR_NAT_REG_ADDR_MAX:
			return nftnl_expr_get_u32(have, NFTNL_EXPR_NAT_REG_ADDR_MAX) ==
			       nftnl_expr_get_u32(have, NFTNL_EXPR_NAT_REG_ADDR_MIN);
		case NFTNL_EXPR_NAT_REG_PROTO_MAX:
			return nftnl_expr_get_u32(have, NFTNL_EXPR_NAT_REG_PROTO_MAX) ==
			       nftnl_expr_get_u32(have, NFTNL_EXPR_NAT_REG_PROTO_MIN);
		case NFTNL_EXPR_NAT_FLAGS:
			/* what the registers imply: an address and a port */
			return (nftnl_expr_get_u32(have, NFTNL_EXPR_NAT_FLAGS) &
				~(uint32_t)(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED)) == 0;
		}
	}
	return false;
}

/* Expression attributes are numbered from NFTNL_EXPR_BASE; is_set keeps
 * them in a 32-bit mask. */
#define EXPR_ATTR_LAST 31

static int compare_expr(struct reader *rd, const struct nftnl_expr *w, const struct nftnl_expr *h,
			const char *chain, size_t rule, size_t idx)
{
	const char *name = nftnl_expr_get_str(w, NFTNL_EXPR_NAME);

	if (!streq(name, nftnl_expr_get_str(h, NFTNL_EXPR_NAME)))
		return differ(rd, "chain %s rule %zu: expression %zu is %s, not %s", chain, rule, idx,
			      nftnl_expr_get_str(h, NFTNL_EXPR_NAME), name);
	for (uint16_t t = NFTNL_EXPR_BASE; t <= EXPR_ATTR_LAST; t++) {
		bool in_w = nftnl_expr_is_set(w, t), in_h = nftnl_expr_is_set(h, t);
		const void *a, *b;
		uint32_t la = 0, lb = 0;

		if (!in_w && !in_h)
			continue;
		if (in_w != in_h) {
			if (expr_attr_implied(name, t, in_h ? h : w, in_h))
				continue;
			return differ(rd, "chain %s rule %zu: %s attribute %u %s", chain, rule, name,
				      t, in_h ? "added" : "missing");
		}
		a = nftnl_expr_get(w, t, &la);
		b = nftnl_expr_get(h, t, &lb);
		if (!data_equal(a, la, b, lb))
			return differ(rd, "chain %s rule %zu: %s attribute %u differs", chain, rule,
				      name, t);
	}
	return 0;
}

static int compare_rule(struct reader *rd, const struct nftnl_rule *w, const struct nftnl_rule *h,
			const char *chain, size_t idx)
{
	_cleanup_(nftnl_expr_iter_destroyp) struct nftnl_expr_iter *iw = NULL;
	_cleanup_(nftnl_expr_iter_destroyp) struct nftnl_expr_iter *ih = NULL;
	struct nftnl_expr *ew, *eh;
	size_t i = 0;
	int r;

	if (!ATTR_EQUAL(rule, w, h, NFTNL_RULE_USERDATA))
		return differ(rd, "chain %s rule %zu: comment differs", chain, idx);
	if (nftnl_rule_is_set(h, NFTNL_RULE_COMPAT_PROTO) ||
	    nftnl_rule_is_set(h, NFTNL_RULE_COMPAT_FLAGS))
		return differ(rd, "chain %s rule %zu: xtables compat", chain, idx);
	iw = nftnl_expr_iter_create(w);
	ih = nftnl_expr_iter_create(h);
	if (!iw || !ih)
		return -ENOMEM;
	for (;; i++) {
		ew = nftnl_expr_iter_next(iw);
		eh = nftnl_expr_iter_next(ih);
		if (!ew || !eh)
			break;
		r = compare_expr(rd, ew, eh, chain, idx, i);
		if (r != 0)
			return r;
	}
	if (ew || eh)
		return differ(rd, "chain %s rule %zu: %s expressions", chain, idx,
			      ew ? "fewer" : "more");
	return 0;
}

/* Rules of one chain, in order. */
static size_t rules_of(const struct objects *o, const char *chain,
		       const struct nftnl_rule **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < o->n_rules; i++) {
		if (!streq(nftnl_rule_get_str(o->rules[i], NFTNL_RULE_CHAIN), chain))
			continue;
		if (n < max)
			out[n] = o->rules[i];
		n++;
	}
	return n;
}

static int compare_rules(struct reader *rd, const struct objects *want, const struct objects *have)
{
	const struct nftnl_rule *w[MAX_RULES_PER_CHAIN], *h[MAX_RULES_PER_CHAIN];

	/* Every chain of have is one of want's (compare_chains). */
	for (size_t i = 0; i < want->n_chains; i++) {
		const char *chain = nftnl_chain_get_str(want->chains[i], NFTNL_CHAIN_NAME);
		size_t nw = rules_of(want, chain, w, ARRAY_SIZE(w));
		size_t nh = rules_of(have, chain, h, ARRAY_SIZE(h));
		int r;

		if (nw > ARRAY_SIZE(w))
			return -E2BIG; /* our own layout: cannot happen */
		if (nh != nw)
			return differ(rd, "chain %s has %zu rules instead of %zu", chain, nh, nw);
		for (size_t j = 0; j < nw; j++) {
			r = compare_rule(rd, w[j], h[j], chain, j);
			if (r != 0)
				return r;
		}
	}
	if (have->n_rules != want->n_rules)
		return differ(rd, "%zu rules instead of %zu", have->n_rules, want->n_rules);
	return 0;
}

static int compare(struct reader *rd, const struct objects *have, const struct found *groups,
		   size_t n_groups, nft_skeleton_fn skeleton, void *skeleton_data)
{
	_cleanup_(objects_done) struct objects want = {};
	struct nft_batch *b = NULL;
	int r;

	r = nft_batch_new(0, &b);
	if (r < 0)
		return r;
	r = skeleton(b, rd->family, skeleton_data);
	/* sorted by kind: the slots before the affinity chains using them */
	for (size_t i = 0; i < n_groups && r >= 0; i++)
		r = nft_rs_group_add(b, rd->family, groups[i].kind, groups[i].n, groups[i].timeout);
	if (r >= 0)
		r = expected_objects(b, &want);
	nft_batch_free(b);
	if (r < 0)
		return r;
	if (!want.table)
		return -EINVAL;
	r = compare_table(rd, want.table, have->table);
	if (r == 0)
		r = compare_sets(rd, &want, have);
	if (r == 0)
		r = compare_chains(rd, &want, have);
	if (r == 0)
		r = compare_rules(rd, &want, have);
	return r;
}

/* ---- elements ----------------------------------------------------------- */

/* The keys service-ips sends to one lb-N, whose slots are looked up in
 * backends-N; or the keys with session affinity and more than N backends,
 * looked up in endpoint-N. */
struct key_list {
	struct nft_key *keys;
	size_t count, cap;
};

struct elem_reader {
	struct reader *rd;
	enum nft_set_kind kind;
	uint32_t n;              /* backends-N, endpoint-N */
	const struct found *groups; /* sorted */
	size_t n_groups;
	struct key_list *keys;   /* per LB and SLOT group */
	const struct nft_table_sink *sink;
	void *userdata;
	size_t count;            /* elements read so far, all sets */
	int result;              /* of the element last handled */
};

static int key_list_push(struct key_list *l, const struct nft_key *key)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct nft_key *k = reallocarray(l->keys, cap, sizeof(*k));

		if (!k)
			return -ENOMEM;
		l->keys = k;
		l->cap = cap;
	}
	l->keys[l->count++] = *key;
	return 0;
}

static size_t addr_len(enum nft_family f)
{
	return f == NFT_FAMILY_IP ? 4 : 16;
}

static bool zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* The key as key_encode() in ruleset.c lays it out. */
static int decode_key(struct elem_reader *er, struct nftnl_set_elem *e, struct nft_key *key,
		      uint32_t *slot)
{
	size_t alen = addr_len(er->rd->family), want;
	const uint8_t *k;
	uint32_t len = 0;
	uint16_t port;

	want = alen + (er->kind == NFT_SET_CLUSTER_IPS ? 0 : er->kind == NFT_SET_BACKENDS ? 12 : 8);
	*slot = er->n; /* endpoint-N: the set's */
	k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
	if (!k || len != want)
		return differ(er->rd, "%s: element key of %u bytes", nft_set_kind_name(er->kind), len);
	memset(key, 0, sizeof(*key));
	key->family = (uint8_t)er->rd->family;
	memcpy(key->addr, k, alen);
	if (er->kind == NFT_SET_CLUSTER_IPS)
		return 0;
	if (!zero(k + alen + 1, 3) || !zero(k + alen + 6, 2))
		return differ(er->rd, "%s: element key padding", nft_set_kind_name(er->kind));
	key->protocol = k[alen];
	memcpy(&port, k + alen + 4, sizeof(port));
	key->port = ntohs(port);
	if (er->kind == NFT_SET_BACKENDS)
		memcpy(slot, k + alen + 8, sizeof(*slot));
	return 0;
}

/* Index of a group, or SIZE_MAX. */
static size_t group_index(const struct elem_reader *er, enum nft_group_kind kind, uint32_t n,
			  uint32_t timeout)
{
	const struct found key = { kind, n, timeout };
	const struct found *p = bsearch(&key, er->groups, er->n_groups, sizeof(key), found_cmp);

	return p ? (size_t)(p - er->groups) : SIZE_MAX;
}

static int decode_verdict(struct elem_reader *er, struct nftnl_set_elem *e,
			  enum nft_kind *kind, uint32_t *n, uint32_t *timeout)
{
	uint32_t code = nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT);
	const char *chain = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN) ?
		nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN) : NULL;
	bool services = er->kind == NFT_SET_SERVICES;

	*n = 0;
	*timeout = 0;
	if (!nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT))
		return differ(er->rd, "%s: element without verdict", nft_set_kind_name(er->kind));
	if (code == (uint32_t)NFT_GOTO && chain && services &&
	    parse_group(chain, "lb-", 1, NFT_MAX_BACKENDS, n) &&
	    group_index(er, NFT_GROUP_LB, *n, 0) != SIZE_MAX) {
		*kind = NFT_KIND_FORWARD;
		return 0;
	}
	if (code == (uint32_t)NFT_GOTO && chain && services && parse_affinity(chain, n, timeout) &&
	    group_index(er, NFT_GROUP_AFFINITY, *n, *timeout) != SIZE_MAX) {
		*kind = NFT_KIND_FORWARD;
		return 0;
	}
	if (code == (uint32_t)NFT_GOTO && chain && !services && streq(chain, "reject-chain")) {
		*kind = NFT_KIND_REJECT;
		return 0;
	}
	if (code == NF_DROP && !chain && !services) {
		*kind = NFT_KIND_DROP;
		return 0;
	}
	return differ(er->rd, "%s: element verdict %d%s%s", nft_set_kind_name(er->kind), (int)code,
		      chain ? " to " : "", chain ?: "");
}

/* An element comment as put_comment() in ruleset.c (and nft) stores it:
 * one NUL-terminated TLV, or nothing. */
static int decode_comment(struct elem_reader *er, struct nftnl_set_elem *e, char *buf,
			  size_t len)
{
	const uint8_t *ud;
	uint32_t ulen = 0;

	*buf = 0;
	if (!nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_USERDATA))
		return 0;
	ud = nftnl_set_elem_get(e, NFTNL_SET_ELEM_USERDATA, &ulen);
	if (!ud || ulen < 3 || ud[0] != NFTNL_UDATA_SET_ELEM_COMMENT || ud[1] != ulen - 2 ||
	    ud[ulen - 1] != 0 || strlen((const char *)ud + 2) != ulen - 3 || ulen - 2 > len)
		return differ(er->rd, "%s: element user data", nft_set_kind_name(er->kind));
	memcpy(buf, ud + 2, ulen - 2);
	return 0;
}

static int decode_backend(struct elem_reader *er, struct nftnl_set_elem *e,
			  struct model_backend *be)
{
	size_t alen = addr_len(er->rd->family);
	const uint8_t *d;
	uint32_t len = 0;
	uint16_t port;

	d = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA) ?
		nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len) : NULL;
	if (!d || len != alen + 4 || !zero(d + alen + 2, 2))
		return differ(er->rd, "%s-%u: element data of %u bytes", nft_set_kind_name(er->kind),
			      er->n, len);
	memset(be, 0, sizeof(*be));
	be->addr.family = er->rd->family == NFT_FAMILY_IP ? AF_INET : AF_INET6;
	memcpy(be->addr.bytes, d, alen);
	memcpy(&port, d + alen, sizeof(port));
	be->port = ntohs(port);
	return 0;
}

/* Attributes an element of this set may have besides its key. */
static bool elem_attr_allowed(enum nft_set_kind kind, uint16_t attr)
{
	switch (attr) {
	case NFTNL_SET_ELEM_KEY:
	case NFTNL_SET_ELEM_FLAGS: /* checked: zero */
		return true;
	case NFTNL_SET_ELEM_VERDICT:
	case NFTNL_SET_ELEM_CHAIN:
	case NFTNL_SET_ELEM_USERDATA:
		return kind == NFT_SET_SERVICES || kind == NFT_SET_NO_ENDPOINTS;
	case NFTNL_SET_ELEM_DATA:
		return kind == NFT_SET_BACKENDS || kind == NFT_SET_ENDPOINTS;
	default:
		return false;
	}
}

static int sink_result(struct elem_reader *er, int r)
{
	if (r == -ENOMEM)
		return r;
	/* The sink wrote its reason. */
	return r < 0 ? NFT_TABLE_DIFFERENT : 0;
}

/* A key going to lb-n is looked up in backends-n; one going to
 * affinity-n-T in endpoint-0 .. endpoint-(n-1). */
static int push_forward(struct elem_reader *er, const struct nft_key *key, uint32_t n,
			uint32_t timeout)
{
	int r = 0;

	if (!timeout)
		return key_list_push(&er->keys[group_index(er, NFT_GROUP_LB, n, 0)], key);
	for (uint32_t i = 0; i < n && r == 0; i++) {
		size_t g = group_index(er, NFT_GROUP_SLOT, i, 0);

		if (g == SIZE_MAX)
			return differ(er->rd, "affinity-%u-%u: no endpoint-%u", n, timeout, i);
		r = key_list_push(&er->keys[g], key);
	}
	return r;
}

static int one_elem(struct elem_reader *er, struct nftnl_set_elem *e)
{
	char comment[256];
	struct model_backend be;
	struct nft_key key;
	enum nft_kind kind = NFT_KIND_NONE;
	uint32_t slot = 0, n = 0, timeout = 0;
	int r;

	for (uint16_t a = 0; a <= NFTNL_SET_ELEM_MAX; a++)
		if (nftnl_set_elem_is_set(e, a) && !elem_attr_allowed(er->kind, a))
			return differ(er->rd, "%s: element with attribute %u",
				      nft_set_kind_name(er->kind), a);
	if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
	    nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) != 0)
		return differ(er->rd, "%s: element flags", nft_set_kind_name(er->kind));
	r = decode_key(er, e, &key, &slot);
	if (r != 0)
		return r;
	switch (er->kind) {
	case NFT_SET_SERVICES:
	case NFT_SET_NO_ENDPOINTS:
		r = decode_verdict(er, e, &kind, &n, &timeout);
		if (r == 0)
			r = decode_comment(er, e, comment, sizeof(comment));
		if (r == 0)
			r = sink_result(er, er->sink->verdict(er->userdata, &key, kind, n, timeout,
							      comment));
		if (r == 0 && kind == NFT_KIND_FORWARD)
			r = push_forward(er, &key, n, timeout);
		return r;
	case NFT_SET_BACKENDS:
	case NFT_SET_ENDPOINTS:
		if (er->kind == NFT_SET_BACKENDS && slot >= er->n)
			return differ(er->rd, "backends-%u: slot %u", er->n, slot);
		r = decode_backend(er, e, &be);
		if (r == 0)
			r = sink_result(er, er->sink->backend(er->userdata,
							      er->kind == NFT_SET_BACKENDS ?
							      NFT_GROUP_LB : NFT_GROUP_SLOT,
							      &key, slot, &be));
		return r;
	case NFT_SET_CLUSTER_IPS:
		return sink_result(er, er->sink->cluster_ip(er->userdata, &key));
	default:
		return -EINVAL;
	}
}

static int elem_foreach_cb(struct nftnl_set_elem *e, void *data)
{
	struct elem_reader *er = data;

	if (++er->count > NFT_ADOPT_MAX_ELEMS)
		er->result = differ(er->rd, "more than %u elements", NFT_ADOPT_MAX_ELEMS);
	else
		er->result = one_elem(er, e);
	return er->result != 0 ? -1 : 0;
}

static int elems_cb(const struct nlmsghdr *nlh, void *data)
{
	struct elem_reader *er = data;
	_cleanup_(nftnl_set_freep) struct nftnl_set *s = NULL;
	int r;

	if (!same_generation(er->rd, nlh))
		return MNL_CB_STOP;
	/* One message's elements at a time: a few hundred. */
	s = nftnl_set_alloc();
	if (!s) {
		r = -ENOMEM;
	} else if (nftnl_set_elems_nlmsg_parse(nlh, s) < 0) {
		r = differ(er->rd, "%s: unparsable elements", nft_set_kind_name(er->kind));
	} else {
		er->result = 0;
		nftnl_set_elem_foreach(s, elem_foreach_cb, er);
		r = er->result;
	}
	if (r == 0)
		return MNL_CB_OK;
	/* NFT_TABLE_DIFFERENT travels as a positive error. */
	er->rd->error = r;
	return MNL_CB_ERROR;
}

static int dump_elems(struct elem_reader *er, enum nft_set_kind kind)
{
	char buf[REQUEST_SIZE], name[32];
	struct nlmsghdr *nlh = request_start(er->rd, buf, sizeof(buf), NFT_MSG_GETSETELEM,
					     NLM_F_DUMP);

	nft_set_name(kind, 0, name, sizeof(name));
	er->kind = kind;
	er->n = 0;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, NFT_TABLE_NAME);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, name);
	return request_run(er->rd, nlh, elems_cb, er);
}

/* key . slot, as key_encode() in ruleset.c lays out a backends-N key; or
 * just the key, for endpoint-N (with_slot false). */
static void put_backend_key(struct nlmsghdr *nlh, enum nft_family f, const struct nft_key *key,
			    bool with_slot, uint32_t slot, uint16_t index)
{
	size_t alen = addr_len(f);
	uint16_t port = htons(key->port);
	uint8_t k[16 + 12] = {};
	struct nlattr *elem, *nest;

	memcpy(k, key->addr, alen);
	k[alen] = key->protocol;
	memcpy(k + alen + 4, &port, sizeof(port));
	memcpy(k + alen + 8, &slot, sizeof(slot));
	elem = mnl_attr_nest_start(nlh, index);
	nest = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
	mnl_attr_put(nlh, NFTA_DATA_VALUE, alen + (with_slot ? 12 : 8), k);
	mnl_attr_nest_end(nlh, nest);
	mnl_attr_nest_end(nlh, elem);
}

/*
 * The slots of backends-N the keys going to lb-N need (or the slot of
 * endpoint-N every key with affinity and more than N backends needs),
 * looked up rather than listed: the kernel lists a set in rounds that each
 * walk it from the start, which takes seconds for a few hundred thousand
 * elements, while a lookup costs the same whatever the set's size. The
 * kernel answers every element with a message of its own, so a request
 * asks for no more than the receive buffer holds; it stops at the first
 * missing one (ENOENT).
 *
 * Elements no key leads to are not looked for: no packet can reach them.
 * Should one be there (put by hand), the add that collides with it fails
 * and the caller rebuilds.
 */
static int lookup_backends(struct elem_reader *er, const struct found *g,
			   const struct key_list *keys)
{
	_cleanup_(freep) char *buf = NULL;
	size_t per_request = er->rd->lookups_per_request, i = 0;
	bool lb = g->kind == NFT_GROUP_LB;
	uint32_t slot = 0, n = lb ? g->n : 1;
	char name[32];
	int r;

	buf = malloc(LOOKUP_REQUEST_SIZE);
	if (!buf)
		return -ENOMEM;
	er->kind = lb ? NFT_SET_BACKENDS : NFT_SET_ENDPOINTS;
	er->n = g->n;
	nft_set_name(er->kind, g->n, name, sizeof(name));
	while (i < keys->count) {
		struct nlmsghdr *nlh = request_start(er->rd, buf, LOOKUP_REQUEST_SIZE,
						     NFT_MSG_GETSETELEM, NLM_F_ACK);
		struct nlattr *list;
		size_t in_request = 0;

		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, NFT_TABLE_NAME);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, name);
		list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
		for (; i < keys->count && in_request < per_request; in_request++) {
			put_backend_key(nlh, er->rd->family, &keys->keys[i], lb, slot,
					(uint16_t)(in_request + 1));
			if (++slot == n) {
				slot = 0;
				i++;
			}
		}
		mnl_attr_nest_end(nlh, list);
		r = request_run(er->rd, nlh, elems_cb, er);
		if (r == -ENOENT)
			return differ(er->rd, "%s lacks a slot of a key using it", name);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Verdict maps first: they say which backend slots must exist, and
 * cluster-ips is checked against the keys' VIPs. */
static int read_all_elems(struct reader *rd, const struct found *groups, size_t n_groups,
			  const struct nft_table_sink *sink, void *userdata)
{
	struct elem_reader er = { .rd = rd, .groups = groups, .n_groups = n_groups,
				  .sink = sink, .userdata = userdata };
	int r = 0;

	er.keys = calloc(n_groups + 1, sizeof(*er.keys));
	if (!er.keys)
		return -ENOMEM;
	for (size_t i = 0; i < n_groups && r == 0; i++)
		r = sink_result(&er, sink->group(userdata, groups[i].kind, groups[i].n,
						 groups[i].timeout));
	if (r == 0)
		r = dump_elems(&er, NFT_SET_SERVICES);
	if (r == 0)
		r = dump_elems(&er, NFT_SET_NO_ENDPOINTS);
	for (size_t i = 0; i < n_groups && r == 0; i++)
		if (groups[i].kind != NFT_GROUP_AFFINITY)
			r = lookup_backends(&er, &groups[i], &er.keys[i]);
	if (r == 0)
		r = dump_elems(&er, NFT_SET_CLUSTER_IPS);
	for (size_t i = 0; i < n_groups; i++)
		free(er.keys[i].keys);
	free(er.keys);
	return r;
}

/* ---- entry points ------------------------------------------------------- */

int nft_table_read(enum nft_family f, nft_skeleton_fn skeleton, void *skeleton_data,
		   const struct nft_table_sink *sink, void *userdata, char *reason,
		   size_t reason_len)
{
	_cleanup_(objects_done) struct objects have = {};
	_cleanup_(freep) struct found *groups = NULL;
	struct reader rd;
	size_t n_groups = 0;
	int r;

	*reason = 0;
	r = reader_open(&rd, f, reason, reason_len);
	if (r < 0)
		goto out;
	r = read_objects(&rd, &have);
	if (r <= 0)
		goto out; /* absent, or failed */
	if (have.too_many) {
		r = differ(&rd, "more chains, sets or rules than this version creates");
		goto out;
	}
	if (have.unparsable || !have.table) {
		r = differ(&rd, "an object libnftnl cannot parse");
		goto out;
	}
	r = find_groups(&have, &groups, &n_groups);
	if (r < 0)
		goto out;
	if (n_groups > 2 * NFT_ADOPT_MAX_GROUPS + NFT_MAX_AFFINITY_BACKENDS) {
		r = differ(&rd, "%zu groups", n_groups);
		goto out;
	}
	r = compare(&rd, &have, groups, n_groups, skeleton, skeleton_data);
	if (r != 0)
		goto out;
	r = read_all_elems(&rd, groups, n_groups, sink, userdata);
	if (r == 0)
		r = NFT_TABLE_READ;
out:
	reader_close(&rd);
	return r;
}

int nft_table_exists(enum nft_family f)
{
	char reason[8];
	struct reader rd;
	int r;

	r = reader_open(&rd, f, reason, sizeof(reason));
	if (r >= 0)
		r = read_table(&rd, NULL);
	reader_close(&rd);
	return r;
}
