/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kube-annex0 link, over rtnetlink with libmnl (sd-netlink is not
 * public libsystemd API; no exec of ip).
 *
 * systemd-resolved only uses a link that is UP with a carrier and has an
 * address of global scope (resolved-link.c: link_relevant), so the link
 * gets exactly one such address per family, set before it goes up. A
 * dummy link is what distribution kernels offer; kernels built without it
 * get an ifb, which behaves the same here (UP, LOWER_UP, drops whatever it
 * is given).
 *
 * Requests are one-shot and rare (start, stop, cleanup): a blocking socket
 * with a receive timeout, so a request can never hang the daemon.
 */
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>

#include "resolv/internal.h"
#include "lib/netlink.h"

#define RTNL_TIMEOUT_SEC 2
#define RTNL_BUF_SIZE 32768
#define REQ_BUF_SIZE 1024
#define EXTACK_MAX 256

typedef int (*rtnl_data_fn)(const struct nlmsghdr *nlh, void *userdata);

static inline void mnl_socket_closep(struct mnl_socket **nl)
{
	if (*nl)
		mnl_socket_close(*nl);
}

static int rtnl_open(struct mnl_socket **ret)
{
	struct timeval tv = { .tv_sec = RTNL_TIMEOUT_SEC };
	struct mnl_socket *nl;
	int r;

	r = netlink_open(NETLINK_ROUTE, 0, &nl);
	if (r < 0)
		return r;
	if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		mnl_socket_close(nl);
		return r;
	}
	*ret = nl;
	return 0;
}

/* The kernel's extended ACK text of an error message, if any. */
static void extack_text(const struct nlmsghdr *nlh, char *buf, size_t len)
{
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	size_t off = sizeof(*err);

	buf[0] = 0;
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += err->msg.nlmsg_len - sizeof(struct nlmsghdr);
	if (MNL_ALIGN(off) + sizeof(struct nlmsghdr) >= nlh->nlmsg_len)
		return;
	mnl_attr_for_each(attr, nlh, MNL_ALIGN(off)) {
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
			snprintf(buf, len, "%s", mnl_attr_get_str(attr));
			return;
		}
	}
}

/*
 * Send one request with NLM_F_ACK and read until its acknowledgement (or,
 * for a dump, NLMSG_DONE), handing data messages to fn.
 */
static int rtnl_talk(struct nlmsghdr *req, rtnl_data_fn fn, void *userdata, char **ret_error)
{
	_cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
	_cleanup_(freep) char *buf = NULL;
	char extack[EXTACK_MAX];
	uint32_t portid, seq;
	int r;

	r = rtnl_open(&nl);
	if (r < 0) {
		if (ret_error)
			*ret_error = strdup_printf("opening an rtnetlink socket: %s", strerror(-r));
		return r;
	}
	portid = mnl_socket_get_portid(nl);
	seq = (uint32_t)time(NULL);
	req->nlmsg_seq = seq;
	req->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (mnl_socket_sendto(nl, req, req->nlmsg_len) < 0)
		return -errno;
	buf = malloc(RTNL_BUF_SIZE);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, RTNL_BUF_SIZE);
		const struct nlmsghdr *nlh;
		int left;

		if (n < 0) {
			r = errno == EAGAIN ? -ETIMEDOUT : -errno;
			if (ret_error)
				*ret_error = strdup_printf("no answer from the kernel: %s", strerror(-r));
			return r;
		}
		left = (int)n;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != portid)
				continue;
			if (nlh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);

				if (err->error == 0)
					return 0;
				extack_text(nlh, extack, sizeof(extack));
				if (ret_error)
					*ret_error = strdup_printf("%s%s%s", strerror(-err->error),
								   *extack ? ": " : "", extack);
				return err->error;
			}
			if (fn) {
				r = fn(nlh, userdata);
				if (r < 0)
					return r;
			}
		}
	}
}

/* ---- links -------------------------------------------------------------- */

struct link_info {
	int ifindex;
	char kind[16];
};

static int link_info_cb(const struct nlmsghdr *nlh, void *userdata)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	struct link_info *info = userdata;
	const struct nlattr *attr, *nested;

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return 0;
	info->ifindex = ifi->ifi_index;
	mnl_attr_for_each(attr, nlh, sizeof(*ifi)) {
		if (mnl_attr_get_type(attr) != IFLA_LINKINFO)
			continue;
		mnl_attr_for_each_nested(nested, attr)
			if (mnl_attr_get_type(nested) == IFLA_INFO_KIND &&
			    mnl_attr_validate(nested, MNL_TYPE_STRING) >= 0)
				snprintf(info->kind, sizeof(info->kind), "%.*s",
					 (int)mnl_attr_get_payload_len(nested),
					 (const char *)mnl_attr_get_payload(nested));
	}
	return 0;
}

/* 0 and info filled, or -ENODEV. */
static int link_get(const char *name, struct link_info *info, char **ret_error)
{
	char buf[REQ_BUF_SIZE] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	*info = (struct link_info){};
	nlh->nlmsg_type = RTM_GETLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return rtnl_talk(nlh, link_info_cb, info, ret_error);
}

static int link_create(const char *name, const char *kind, char **ret_error)
{
	char buf[REQ_BUF_SIZE] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct nlattr *linkinfo;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
	mnl_attr_nest_end(nlh, linkinfo);
	return rtnl_talk(nlh, NULL, NULL, ret_error);
}

/* No IPv6 link-local address: the link carries exactly the addresses we
 * give it. Best effort (IPv6 may be disabled). */
static void link_no_ipv6_ll(int ifindex)
{
	char buf[REQ_BUF_SIZE] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct nlattr *spec, *af;

	nlh->nlmsg_type = RTM_NEWLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
	af = mnl_attr_nest_start(nlh, AF_INET6);
	mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
	mnl_attr_nest_end(nlh, af);
	mnl_attr_nest_end(nlh, spec);
	(void)rtnl_talk(nlh, NULL, NULL, NULL);
}

int resolv_link_set_up(int ifindex, char **ret_error)
{
	char buf[REQ_BUF_SIZE] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = RTM_NEWLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	return rtnl_talk(nlh, NULL, NULL, ret_error);
}

int resolv_link_delete(const char *name, char **ret_error)
{
	char buf[REQ_BUF_SIZE] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	int r;

	nlh->nlmsg_type = RTM_DELLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	r = rtnl_talk(nlh, NULL, NULL, ret_error);
	if (r == -ENODEV && ret_error) {
		free(*ret_error);
		*ret_error = NULL;
	}
	return r == -ENODEV ? 0 : r;
}

/* ---- addresses ---------------------------------------------------------- */

static void addr_msg(struct nlmsghdr *nlh, uint16_t type, int ifindex, const struct kube_ip *a)
{
	struct ifaddrmsg *ifa;
	size_t len = a->family == AF_INET ? 4 : 16;

	nlh->nlmsg_type = type;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)a->family;
	ifa->ifa_prefixlen = (uint8_t)(len * 8);
	ifa->ifa_scope = RT_SCOPE_UNIVERSE; /* resolved ignores link-scope addresses */
	ifa->ifa_index = (uint32_t)ifindex;
	if (a->family == AF_INET6)
		ifa->ifa_flags = IFA_F_NODAD;
	mnl_attr_put(nlh, IFA_LOCAL, len, a->bytes);
	mnl_attr_put(nlh, IFA_ADDRESS, len, a->bytes);
}

static int addr_change(uint16_t type, int ifindex, const struct kube_ip *a, char **ret_error)
{
	char buf[REQ_BUF_SIZE] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	addr_msg(nlh, type, ifindex, a);
	if (type == RTM_NEWADDR)
		nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	return rtnl_talk(nlh, NULL, NULL, ret_error);
}

struct addr_list {
	int ifindex;
	struct kube_ip addrs[16];
	size_t n;
};

static int addr_list_cb(const struct nlmsghdr *nlh, void *userdata)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct addr_list *l = userdata;
	const struct nlattr *attr;

	if (nlh->nlmsg_type != RTM_NEWADDR || (int)ifa->ifa_index != l->ifindex ||
	    ifa->ifa_scope == RT_SCOPE_LINK || l->n == ARRAY_SIZE(l->addrs))
		return 0;
	mnl_attr_for_each(attr, nlh, sizeof(*ifa)) {
		size_t len = mnl_attr_get_payload_len(attr);

		if (mnl_attr_get_type(attr) != IFA_LOCAL && mnl_attr_get_type(attr) != IFA_ADDRESS)
			continue;
		if ((ifa->ifa_family == AF_INET && len == 4) ||
		    (ifa->ifa_family == AF_INET6 && len == 16)) {
			l->addrs[l->n] = (struct kube_ip){ .family = ifa->ifa_family };
			memcpy(l->addrs[l->n].bytes, mnl_attr_get_payload(attr), len);
			l->n++;
			break;
		}
	}
	return 0;
}

/* Make addrs the link's only addresses of global scope. */
static int addrs_sync(int ifindex, const struct kube_ip *addrs, size_t n, char **ret_error)
{
	char buf[REQ_BUF_SIZE] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct addr_list have = { .ifindex = ifindex };
	struct ifaddrmsg *ifa;
	int r;

	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_DUMP;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_UNSPEC;
	r = rtnl_talk(nlh, addr_list_cb, &have, ret_error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < have.n; i++) {
		bool wanted = false;

		for (size_t j = 0; j < n; j++)
			wanted = wanted || kube_ip_equal(&have.addrs[i], &addrs[j]);
		if (!wanted && (r = addr_change(RTM_DELADDR, ifindex, &have.addrs[i], ret_error)) < 0)
			return r;
	}
	for (size_t j = 0; j < n; j++) {
		r = addr_change(RTM_NEWADDR, ifindex, &addrs[j], ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}

int resolv_link_ensure(const char *name, const struct kube_ip *addrs, size_t n_addrs,
		       int *ret_ifindex, const char **ret_kind, char **ret_error)
{
	static const char *const kinds[] = { "dummy", "ifb" };
	struct link_info info;
	const char *kind = NULL;
	int r;

	if (ret_error)
		*ret_error = NULL;
	r = link_get(name, &info, ret_error);
	if (r == -ENODEV) {
		/* "Unknown device type" is EOPNOTSUPP: that driver is missing. */
		for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
			if (ret_error) {
				free(*ret_error);
				*ret_error = NULL;
			}
			kind = kinds[i];
			r = link_create(name, kind, ret_error);
			if (r != -EOPNOTSUPP)
				break;
		}
		if (r >= 0)
			r = link_get(name, &info, ret_error);
		if (r >= 0)
			link_no_ipv6_ll(info.ifindex);
	} else if (r >= 0) {
		/* Ours from an earlier run (--keep-rules, a crash): reuse it. */
		for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
			if (streq(info.kind, kinds[i]))
				kind = kinds[i];
		if (!kind) {
			if (ret_error)
				*ret_error = strdup_printf("a link named %s of kind '%s' exists and is "
							   "not kube-annex's",
							   name, info.kind);
			return -EEXIST;
		}
	}
	if (r < 0)
		return r;
	r = addrs_sync(info.ifindex, addrs, n_addrs, ret_error);
	if (r < 0)
		return r;
	*ret_ifindex = info.ifindex;
	*ret_kind = kind;
	return 0;
}
