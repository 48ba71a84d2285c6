/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Executing a plan over ctnetlink: libmnl for the socket and the messages,
 * libnetfilter_conntrack to read entries and to write tuples.
 *
 * One dump per family that has keys in the plan. libnetfilter_conntrack
 * 1.0.9 can only filter dumps by mark, status and family, so the request
 * carries the kernel's own tuple filter (CTA_FILTER, Linux >= 5.8): UDP
 * only, and with one key in the family also its port and, for IPv4, its
 * address. (Not the IPv6 address: the kernel's IPv6 comparison in that
 * filter is inverted up to at least 6.18, it would return every entry but
 * the wanted ones.) Older kernels ignore the attribute and send all of the
 * family's entries; either way every entry is matched here again, and the
 * kernel's filter only saves copying.
 *
 * Matched entries are deleted after the dump (the socket cannot take
 * requests while it dumps), by original tuple, zone and id, many requests
 * per sendmsg(); ctnetlink handles them one by one, acknowledging each.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>

#include "conntrack/conntrack.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/netlink.h"

/* The kernel answers from within sendmsg() and recvmsg(); waiting is only
 * for a socket that is stuck. */
#define WAIT_MSEC 2000
#define BUF_SIZE 65536u
#define DELETE_BATCH 128u
#define EXTACK_MAX 256

/* CTA_FILTER_ORIG_FLAGS bits: the kernel's (net/netfilter/nf_internals.h),
 * netlink ABI since 5.8 but not in the uapi headers. */
#define FILTER_IP_DST (1u << 1)
#define FILTER_PROTO_NUM (1u << 3)
#define FILTER_PROTO_DST_PORT (1u << 5)

/* An entry to delete: its original tuple, zone and id. */
struct doomed {
	struct ct_target *target;
	uint8_t src[16], dst[16];
	uint16_t sport, dport; /* network order */
	uint16_t zone;
	bool has_zone, has_id;
	uint32_t id;
};

struct run {
	struct mnl_socket *nl;
	uint32_t seq;
	struct ct_plan *plan;
	struct ct_result *res;
	char *buf;
	struct doomed *doomed; /* grows up to CT_MAX_DELETED */
	size_t n_doomed, cap_doomed;
	uint64_t examined; /* this family */
	int family;
	bool truncated;
};

static const char *family_name(int family)
{
	return family == AF_INET ? "IPv4" : "IPv6";
}

static int socket_open(struct mnl_socket **ret)
{
	return netlink_open(NETLINK_NETFILTER, SOCK_NONBLOCK, ret);
}

/* One datagram into r->buf: its length, or -errno (-ETIMEDOUT when the
 * kernel does not answer). */
static ssize_t receive(struct run *r)
{
	uint64_t deadline = now_usec(CLOCK_MONOTONIC) + WAIT_MSEC * USEC_PER_MSEC;
	int fd = mnl_socket_get_fd(r->nl);

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t len = recv(fd, r->buf, BUF_SIZE, 0);
		uint64_t now;

		if (len >= 0)
			return len;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno; /* ENOBUFS: messages were lost */
		now = now_usec(CLOCK_MONOTONIC);
		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)((deadline - now) / USEC_PER_MSEC) + 1) < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_buf(struct run *r, const void *buf, size_t len)
{
	ssize_t sent;

	do
		sent = mnl_socket_sendto(r->nl, buf, len);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -errno;
	return (size_t)sent == len ? 0 : -EIO;
}

/* The error of an NLMSG_ERROR message, and the kernel's text if any. */
static int error_of(const struct nlmsghdr *nlh, char *extack, size_t len)
{
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	size_t off = sizeof(*err);

	extack[0] = 0;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*err))
		return -EBADMSG;
	if (err->error >= 0 || !(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return err->error;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += err->msg.nlmsg_len - sizeof(struct nlmsghdr);
	off = MNL_ALIGN(off);
	if (off >= mnl_nlmsg_get_payload_len(nlh))
		return err->error;
	mnl_attr_for_each(attr, nlh, off)
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
			snprintf(extack, len, "%s", mnl_attr_get_str(attr));
	return err->error;
}

static struct nlmsghdr *request_start(struct run *r, void *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++r->seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)r->family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	return nlh;
}

/* GET with NLM_F_DUMP; filtered in the kernel unless plain. */
static void dump_request(struct run *r, const struct model_key *only, bool plain)
{
	struct nlmsghdr *nlh;
	struct nlattr *tuple, *nest;
	uint32_t flags = FILTER_PROTO_NUM;

	memset(r->buf, 0, MNL_SOCKET_BUFFER_SIZE);
	nlh = request_start(r, r->buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP);
	if (plain)
		return;
	tuple = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
	if (only && r->family == AF_INET) {
		nest = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
		mnl_attr_put(nlh, CTA_IP_V4_DST, 4, only->vip.bytes);
		mnl_attr_nest_end(nlh, nest);
		flags |= FILTER_IP_DST;
	}
	nest = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_UDP);
	if (only) {
		mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(only->port));
		flags |= FILTER_PROTO_DST_PORT;
	}
	mnl_attr_nest_end(nlh, nest);
	mnl_attr_nest_end(nlh, tuple);
	nest = mnl_attr_nest_start(nlh, CTA_FILTER);
	mnl_attr_put_u32(nlh, CTA_FILTER_ORIG_FLAGS, flags);
	mnl_attr_put_u32(nlh, CTA_FILTER_REPLY_FLAGS, 0);
	mnl_attr_nest_end(nlh, nest);
}

static void ip_get(const struct nf_conntrack *ct, int family, int attr4, int attr6,
		   struct kube_ip *ret)
{
	*ret = (struct kube_ip){ .family = family };
	if (family == AF_INET)
		memcpy(ret->bytes, nfct_get_attr(ct, attr4), 4);
	else
		memcpy(ret->bytes, nfct_get_attr(ct, attr6), 16);
}

static inline void nfct_destroyp(struct nf_conntrack **ct)
{
	if (*ct)
		nfct_destroy(*ct);
}

/* One entry of the dump: matched against the plan, kept if doomed. A
 * fresh object each time: parsing leaves alone what an entry lacks. */
static int dumped(struct run *r, const struct nlmsghdr *nlh)
{
	_cleanup_(nfct_destroyp) struct nf_conntrack *ct = nfct_new();
	struct ct_target *t;
	struct ct_flow flow;
	struct doomed *d;
	int v4 = r->family == AF_INET;

	if (!ct)
		return -ENOMEM;
	r->examined++;
	r->res->examined++;
	if (nfct_nlmsg_parse(nlh, ct) < 0 || nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO) != r->family ||
	    nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO) != IPPROTO_UDP ||
	    !nfct_attr_is_set(ct, v4 ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST) ||
	    !nfct_attr_is_set(ct, v4 ? ATTR_REPL_IPV4_SRC : ATTR_REPL_IPV6_SRC) ||
	    !nfct_attr_is_set(ct, ATTR_ORIG_PORT_DST) || !nfct_attr_is_set(ct, ATTR_REPL_PORT_SRC))
		return 0;
	flow.protocol = IPPROTO_UDP;
	ip_get(ct, r->family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, &flow.orig_dst);
	flow.orig_dport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST));
	ip_get(ct, r->family, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, &flow.reply_src);
	flow.reply_sport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
	t = ct_plan_match(r->plan, &flow);
	if (!t)
		return 0;
	if (r->n_doomed == CT_MAX_DELETED) {
		r->truncated = true;
		return 0;
	}
	if (r->n_doomed == r->cap_doomed) {
		size_t cap = r->cap_doomed ? r->cap_doomed * 2 : 64;
		struct doomed *v = reallocarray(r->doomed, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->doomed = v;
		r->cap_doomed = cap;
	}
	d = &r->doomed[r->n_doomed++];
	*d = (struct doomed){ .target = t };
	memcpy(d->src, nfct_get_attr(ct, v4 ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC), v4 ? 4 : 16);
	memcpy(d->dst, flow.orig_dst.bytes, v4 ? 4 : 16);
	d->sport = nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC);
	d->dport = nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST);
	d->has_zone = nfct_attr_is_set(ct, ATTR_ZONE) > 0;
	d->zone = d->has_zone ? nfct_get_attr_u16(ct, ATTR_ZONE) : 0;
	d->has_id = nfct_attr_is_set(ct, ATTR_ID) > 0;
	d->id = d->has_id ? nfct_get_attr_u32(ct, ATTR_ID) : 0;
	return 0;
}

/* Read the dump to its end (or to CT_MAX_EXAMINED entries). */
static int dump_read(struct run *r, uint32_t seq, char *extack, size_t extack_len)
{
	for (;;) {
		ssize_t len = receive(r);
		const struct nlmsghdr *nlh;
		int left;

		if (len < 0)
			return (int)len;
		left = (int)len;
		for (nlh = (const struct nlmsghdr *)r->buf; mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			if (nlh->nlmsg_seq != seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nlh->nlmsg_type == NLMSG_ERROR)
				return error_of(nlh, extack, extack_len) ?: -EBADMSG;
			if (r->examined >= CT_MAX_EXAMINED) {
				/* Closing the socket ends the dump. */
				r->truncated = true;
				return 0;
			}
			if (NFNL_MSG_TYPE(nlh->nlmsg_type) == IPCTNL_MSG_CT_NEW &&
			    dumped(r, nlh) < 0)
				return -ENOMEM;
		}
	}
}

static int dump_family(struct run *r, const struct model_key *only, bool plain, char *extack,
		       size_t extack_len)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)r->buf;
	int q;

	dump_request(r, only, plain);
	q = send_buf(r, r->buf, nlh->nlmsg_len);
	if (q < 0)
		return q;
	return dump_read(r, r->seq, extack, extack_len);
}

/* A DELETE for d at buf; returns its length, or 0 when out of memory. */
static size_t delete_request(struct run *r, void *buf, const struct doomed *d)
{
	_cleanup_(nfct_destroyp) struct nf_conntrack *ct = nfct_new();
	struct nlmsghdr *nlh;
	int v4 = r->family == AF_INET;

	if (!ct)
		return 0;
	nlh = request_start(r, buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK);
	nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, (uint8_t)r->family);
	nfct_set_attr(ct, v4 ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC, d->src);
	nfct_set_attr(ct, v4 ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST, d->dst);
	nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, IPPROTO_UDP);
	nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, d->sport);
	nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, d->dport);
	if (d->has_zone)
		nfct_set_attr_u16(ct, ATTR_ZONE, d->zone);
	if (nfct_nlmsg_build(nlh, ct) < 0)
		return 0;
	/* nfct_nlmsg_build() leaves the id out; with it, an entry that was
	 * created again meanwhile with the same tuple stays. */
	if (d->has_id)
		mnl_attr_put_u32(nlh, CTA_ID, htonl(d->id));
	return nlh->nlmsg_len;
}

/* Send one batch of deletions and collect every acknowledgement. */
static int delete_batch(struct run *r, const struct doomed *v, size_t n, char *extack,
			size_t extack_len)
{
	uint32_t first;
	size_t len = 0, acked = 0;
	int q, failed = 0;

	memset(r->buf, 0, BUF_SIZE);
	first = r->seq + 1;
	for (size_t i = 0; i < n; i++) {
		size_t l = delete_request(r, r->buf + len, &v[i]);

		if (l == 0)
			return -ENOMEM;
		len += l;
	}
	q = send_buf(r, r->buf, len);
	if (q < 0)
		return q;
	while (acked < n) {
		ssize_t got = receive(r);
		const struct nlmsghdr *nlh;
		int left;

		if (got < 0)
			return (int)got;
		left = (int)got;
		for (nlh = (const struct nlmsghdr *)r->buf; mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			uint32_t i = nlh->nlmsg_seq - first;
			char text[EXTACK_MAX];

			if (nlh->nlmsg_type != NLMSG_ERROR || i >= n)
				continue;
			acked++;
			q = error_of(nlh, text, sizeof(text));
			if (q == 0) {
				ct_target_deleted(v[i].target);
				r->res->deleted++;
			} else if (q == -ENOENT) {
				r->res->vanished++;
			} else if (!failed) {
				failed = q;
				snprintf(extack, extack_len, "%s", text);
			}
		}
	}
	return failed;
}

static int delete_doomed(struct run *r, char *extack, size_t extack_len)
{
	int failed = 0;

	for (size_t i = 0; i < r->n_doomed; i += DELETE_BATCH) {
		size_t n = r->n_doomed - i < DELETE_BATCH ? r->n_doomed - i : DELETE_BATCH;
		int q = delete_batch(r, r->doomed + i, n, extack, extack_len);

		if (q < 0) {
			failed = q;
			break;
		}
	}
	r->n_doomed = 0;
	return failed;
}

static char *describe(int family, const char *what, int q, const char *extack)
{
	return strdup_printf("%s %s conntrack entries: %s%s%s%s", what, family_name(family),
			     strerror(-q), extack[0] ? " (" : "", extack, extack[0] ? ")" : "");
}

/* Dump, then delete; a dump that fails half way still deletes what it found. */
static int clean_family(struct run *r, char **ret_error)
{
	char extack[EXTACK_MAX] = "";
	struct model_key only;
	size_t keys = ct_plan_keys(r->plan, r->family, &only);
	int q, d;

	r->examined = 0;
	q = dump_family(r, keys == 1 ? &only : NULL, false, extack, sizeof(extack));
	if ((q == -EOPNOTSUPP || q == -EINVAL) && r->examined == 0) {
		log_debug("conntrack: the kernel refused a filtered dump (%s), dumping all %s "
			  "entries", strerror(-q), family_name(r->family));
		/* A fresh socket: the refused dump may have left replies. */
		mnl_socket_close(r->nl);
		r->nl = NULL;
		q = socket_open(&r->nl);
		if (q >= 0)
			q = dump_family(r, NULL, true, extack, sizeof(extack));
	}
	if (q < 0 && ret_error && !*ret_error)
		*ret_error = describe(r->family, "dumping", q, extack);
	if (r->truncated) {
		/* The dump may still be running on this socket. */
		mnl_socket_close(r->nl);
		r->nl = NULL;
		d = socket_open(&r->nl);
		if (d < 0)
			return q < 0 ? q : d;
	}
	extack[0] = 0;
	d = delete_doomed(r, extack, sizeof(extack));
	if (d < 0 && ret_error && !*ret_error)
		*ret_error = describe(r->family, "deleting", d, extack);
	return q < 0 ? q : d;
}

int ct_plan_execute(struct ct_plan *p, struct ct_result *ret, char **ret_error)
{
	static const int families[] = { AF_INET, AF_INET6 };
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);
	struct run r = { .plan = p, .res = ret };
	int q = 0, failed = 0;

	*ret = (struct ct_result){};
	ct_plan_reset_counts(p);
	if (ret_error)
		*ret_error = NULL;
	r.buf = malloc(BUF_SIZE);
	if (!r.buf)
		q = -ENOMEM;
	if (q >= 0)
		q = socket_open(&r.nl);
	if (q < 0 && ret_error)
		*ret_error = strdup_printf("opening a ctnetlink socket: %s", strerror(-q));
	for (size_t i = 0; q >= 0 && i < ARRAY_SIZE(families); i++) {
		if (ct_plan_keys(p, families[i], NULL) == 0)
			continue;
		r.family = families[i];
		r.truncated = false;
		q = clean_family(&r, ret_error);
		ret->truncated |= r.truncated;
		if (q < 0 && !failed)
			failed = q;
		/* The other family may still work. */
		if (q < 0 && r.nl)
			q = 0;
	}
	if (r.nl)
		mnl_socket_close(r.nl);
	free(r.doomed);
	free(r.buf);
	ret->usec = now_usec(CLOCK_MONOTONIC) - t0;
	return failed ? failed : q;
}
