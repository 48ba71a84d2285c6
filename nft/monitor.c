/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Self-healing: listen to nftables' netlink notifications and tell the
 * caller when someone else touched our tables (`nft flush ruleset`, a
 * firewall reload, a stray `nft delete element`), so the desired state can
 * be restored at once instead of at the next Service change.
 *
 * Every notification carries the netlink port id of the socket whose
 * transaction caused it; ours come from the commit socket and are ignored.
 * Each transaction ends with a NEWGEN notification carrying the ruleset's
 * generation id; a periodic GETGEN compares the kernel's current id with
 * the last one announced to us, which catches notifications lost to a full
 * socket buffer or never delivered.
 *
 * Our own large commits overflow the socket buffer: the kernel sends a
 * notification for every element (a few dozen per message), 100,000
 * elements are ~10 MB of them, and nothing reads them until the commit
 * is over. Lost notifications are not a reason to rebuild by themselves:
 * every transaction moves the generation on by exactly one, so if the
 * generation moved on since we last read everything by exactly as many
 * transactions as we committed in the meantime, all of them were ours.
 * Otherwise someone else's went missing among them, and we must assume
 * the worst.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "lib/log.h"
#include "nft/nft-private.h"
#include "nft/nft.h"

#define MONITOR_RCVBUF (4u << 20)

struct nft_monitor {
	const struct nft *nft;
	struct mnl_socket *nl;
	uint32_t own_portid;
	uint32_t genid;   /* last generation announced to us */
	bool genid_known;
	/* When everything up to generation synced_genid had been read, we
	 * had committed synced_own transactions. */
	bool synced;
	uint32_t synced_genid;
	uint64_t synced_own;
};

static int current_genid(uint32_t *ret);
static void synced_at(struct nft_monitor *m, uint32_t genid);

int nft_monitor_new(const struct nft *n, struct nft_monitor **ret)
{
	struct nft_monitor *m;
	int group = NFNLGRP_NFTABLES, size = (int)MONITOR_RCVBUF, r;
	uint32_t genid = 0;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->nft = n;
	m->own_portid = nft_portid(n);
	m->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!m->nl) {
		r = -errno;
		free(m);
		return r;
	}
	if (mnl_socket_bind(m->nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_setsockopt(m->nl, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0) {
		r = -errno;
		nft_monitor_free(m);
		return r;
	}
	/* Room for the usual bursts; large commits of ours overflow it
	 * anyway (see above). */
	if (setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUFFORCE, &size,
		       sizeof(size)) < 0)
		(void)setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUF, &size,
				 sizeof(size));
	/* Subscribed first: whatever changes from now on is announced. */
	r = current_genid(&genid);
	if (r >= 0)
		synced_at(m, genid);
	*ret = m;
	return 0;
}

struct nft_monitor *nft_monitor_free(struct nft_monitor *m)
{
	if (!m)
		return NULL;
	if (m->nl)
		mnl_socket_close(m->nl);
	free(m);
	return NULL;
}

int nft_monitor_fd(const struct nft_monitor *m)
{
	return mnl_socket_get_fd(m->nl);
}

static int gen_attr(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == NFTA_GEN_ID && mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
		*(const struct nlattr **)data = a;
	return MNL_CB_OK;
}

static uint32_t parse_genid(const struct nlmsghdr *nlh, bool *ret_ok)
{
	const struct nlattr *id = NULL;

	mnl_attr_parse(nlh, sizeof(struct nfgenmsg), gen_attr, &id);
	*ret_ok = id != NULL;
	return id ? ntohl(mnl_attr_get_u32(id)) : 0;
}

/* Attribute 1 is the table name in every object message (NFTA_TABLE_NAME,
 * NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, ...). */
static int table_attr(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == 1 && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
		*(const char **)data = mnl_attr_get_str(a);
	return MNL_CB_OK;
}

static bool about_our_table(const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
	const char *table = NULL;

	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*g)))
		return false;
	if (g->nfgen_family != NFPROTO_IPV4 && g->nfgen_family != NFPROTO_IPV6)
		return false;
	mnl_attr_parse(nlh, sizeof(*g), table_attr, &table);
	return table && streq(table, NFT_TABLE_NAME);
}

/* Track generations; true when the notification is someone else's change
 * to one of our tables. */
static bool on_event(struct nft_monitor *m, const struct nlmsghdr *nlh)
{
	uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
	bool ok;

	if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES)
		return false;
	if (type == NFT_MSG_NEWGEN) {
		uint32_t id = parse_genid(nlh, &ok);

		/* Only forward: one announced before we first asked may
		 * still be queued. */
		if (ok && (!m->genid_known || (int32_t)(id - m->genid) > 0)) {
			m->genid = id;
			m->genid_known = true;
		}
		return false;
	}
	if (nlh->nlmsg_pid == m->own_portid || !about_our_table(nlh))
		return false;
	log_debug("nft: outside change to our table (message type %u from port %u)", type,
		  nlh->nlmsg_pid);
	return true;
}

/* Everything announced so far has been read, at generation genid. */
static void synced_at(struct nft_monitor *m, uint32_t genid)
{
	m->genid = genid;
	m->genid_known = true;
	m->synced = true;
	m->synced_genid = genid;
	m->synced_own = nft_transactions_total(m->nft);
}

/* Notifications were dropped: were they all about our own transactions? */
static bool lost_only_ours(struct nft_monitor *m)
{
	uint64_t own = nft_transactions_total(m->nft);
	uint32_t now = 0;
	bool ours;

	if (current_genid(&now) < 0)
		return false;
	ours = m->synced && (uint64_t)(uint32_t)(now - m->synced_genid) == own - m->synced_own;
	if (!ours)
		log_debug("nft: monitor lost notifications: generation %u -> %u, %" PRIu64
			  " transactions of ours", m->synced_genid, now, own - m->synced_own);
	/* Accounted for either way: the caller rebuilds if not ours. */
	synced_at(m, now);
	return ours;
}

int nft_monitor_process(struct nft_monitor *m)
{
	char buf[65536];
	bool tampered = false, lost = false;

	for (;;) {
		ssize_t got = mnl_socket_recvfrom(m->nl, buf, sizeof(buf));
		int len = (int)got;

		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			if (errno == ENOBUFS) {
				/* What is still queued is read on; what was
				 * dropped is checked below. */
				lost = true;
				continue;
			}
			return -errno;
		}
		/* Several notifications per datagram; parse them all so the
		 * generation id stays current even after a tampering hit. */
		for (const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len))
			if (on_event(m, nlh))
				tampered = true;
	}
	if (lost && !lost_only_ours(m))
		tampered = true;
	else if (!lost && !tampered && m->genid_known)
		synced_at(m, m->genid);
	return tampered;
}

struct gen_result {
	uint32_t id;
	bool ok;
};

static int gen_reply(const struct nlmsghdr *nlh, void *data)
{
	struct gen_result *res = data;

	res->id = parse_genid(nlh, &res->ok);
	return res->ok ? MNL_CB_OK : MNL_CB_ERROR;
}

/* The kernel's current ruleset generation, on a short-lived socket. */
static int current_genid(uint32_t *ret)
{
	char buf[8192];
	struct gen_result res = { 0 };
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct nfgenmsg *g;
	uint32_t seq = (uint32_t)now_usec(CLOCK_MONOTONIC), portid;
	ssize_t len;
	int r = -EIO;

	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = AF_UNSPEC;
	g->version = NFNETLINK_V0;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (len < 0) {
		r = -errno;
		goto out;
	}
	r = mnl_cb_run(buf, (size_t)len, seq, portid, gen_reply, &res) < 0 || !res.ok ? -EIO : 0;
	if (r == 0)
		*ret = res.id;
out:
	mnl_socket_close(nl);
	return r;
}

int nft_monitor_verify(struct nft_monitor *m)
{
	uint32_t now = 0;
	int r;

	/* Read what is queued first: it may announce the current generation. */
	r = nft_monitor_process(m);
	if (r != 0)
		return r;
	r = current_genid(&now);
	if (r < 0)
		return r;
	if (!m->genid_known || now == m->genid) {
		synced_at(m, now);
		return 0;
	}
	log_debug("nft: ruleset generation %u, last announced %u: notifications missed", now,
		  m->genid);
	m->genid = now;
	return 1;
}
