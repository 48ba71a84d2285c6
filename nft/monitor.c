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
 */
#include <arpa/inet.h>
#include <errno.h>
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
	struct mnl_socket *nl;
	uint32_t own_portid;
	uint32_t genid;   /* last generation announced to us */
	bool genid_known;
};

int nft_monitor_new(const struct nft *n, struct nft_monitor **ret)
{
	struct nft_monitor *m;
	int group = NFNLGRP_NFTABLES, size = (int)MONITOR_RCVBUF, r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
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
	/* A burst of our own element changes must not overflow the buffer. */
	if (setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUFFORCE, &size,
		       sizeof(size)) < 0)
		(void)setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUF, &size,
				 sizeof(size));
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

		if (ok) {
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

int nft_monitor_process(struct nft_monitor *m)
{
	char buf[65536];
	bool tampered = false;

	for (;;) {
		ssize_t got = mnl_socket_recvfrom(m->nl, buf, sizeof(buf));
		int len = (int)got;

		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			if (errno == ENOBUFS) {
				/* Notifications were dropped: assume the worst. */
				log_debug("nft: monitor lost notifications (ENOBUFS)");
				tampered = true;
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
	if (!m->genid_known) {
		m->genid = now;
		m->genid_known = true;
		return 0;
	}
	if (now != m->genid) {
		log_debug("nft: ruleset generation %u, last announced %u: notifications missed",
			  now, m->genid);
		m->genid = now;
		return 1;
	}
	return 0;
}
