/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Conflicts between the cluster's addresses and this host's networking,
 * which would otherwise fail silently:
 *
 *   host_address         a ClusterIP, external or load-balancer IP is also an
 *                        address of this host;
 *   route                a ClusterIP lies inside a route of the main table
 *                        other than the default route (a VPN, a LAN that
 *                        overlaps the Service CIDR): the Service's ports
 *                        are DNATed, anything else to it leaves that way, and
 *                        a machine there with that address is unreachable;
 *   nameserver           one of the host's own nameservers is a Service's
 *                        address: DNS queries to it are DNATed;
 *   unroutable_endpoint  the host has no route to an endpoint (no covering
 *                        route, or an unreachable/blackhole/prohibit one).
 *
 * Checked at start and again (at most once a second) after Services or
 * endpoints change and after the host's addresses or routes change
 * (rtnetlink notifications). Each new conflict is a warning in the log;
 * all of them are in `status` and in the metric kubeannex_conflicts.
 * Only the main routing table is consulted (not policy rules); explain
 * asks the kernel for the real route of one address.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdarg.h>
#include <systemd/sd-event.h>
#include <uthash.h>

#include "agent/agent.h"
#include "agent/operate.h"
#include "lib/log.h"
#include "lib/netlink.h"

#define CHECK_DELAY_USEC (1 * USEC_PER_SEC)
#define LOG_MAX_LINES 10u
#define NL_BUFFER_SIZE (64u * 1024u)
#define MAX_HOST_ADDRESSES 4096u
#define MAX_NAMESERVERS 16u

/* ---- pure: prefixes and the route table ---------------------------------- */

static size_t ip_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

bool ip_in_prefix(const struct kube_ip *addr, const struct kube_ip *prefix, unsigned len)
{
	unsigned bytes = len / 8, bits = len % 8;

	if (addr->family != prefix->family || len > ip_len(addr->family) * 8)
		return false;
	if (memcmp(addr->bytes, prefix->bytes, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	return ((addr->bytes[bytes] ^ prefix->bytes[bytes]) & (uint8_t)(0xff << (8 - bits))) == 0;
}

static struct kube_ip ip_mask(const struct kube_ip *addr, unsigned len)
{
	struct kube_ip m = { .family = addr->family };
	unsigned bytes = len / 8, bits = len % 8;

	memcpy(m.bytes, addr->bytes, bytes);
	if (bits)
		m.bytes[bytes] = addr->bytes[bytes] & (uint8_t)(0xff << (8 - bits));
	return m;
}

struct route_key {
	uint8_t family; /* 4 or 6 */
	uint8_t len;
	uint8_t bytes[16];
};

struct route_entry {
	struct route_key key;
	const struct host_route *route;
	UT_hash_handle hh;
};

struct route_table {
	struct route_entry *entries; /* array; also the hash's elements */
	struct route_entry *hash;
	struct host_route *routes;
	size_t n;
	/* prefix lengths present, longest first, per family (v4, v6) */
	uint8_t lens[2][129];
	size_t n_lens[2];
};

static struct route_key route_key_of(const struct kube_ip *addr, unsigned len)
{
	struct kube_ip m = ip_mask(addr, len);
	struct route_key k = { .family = addr->family == AF_INET ? 4 : 6, .len = (uint8_t)len };

	memcpy(k.bytes, m.bytes, sizeof(k.bytes));
	return k;
}

struct route_table *route_table_free(struct route_table *t)
{
	if (!t)
		return NULL;
	HASH_CLEAR(hh, t->hash);
	free(t->entries);
	free(t->routes);
	free(t);
	return NULL;
}

static int route_rank(unsigned type)
{
	/* Of two routes for one prefix (other metrics), prefer a usable one. */
	return type == RTN_UNICAST || type == RTN_LOCAL ? 0 : 1;
}

int route_table_new(const struct host_route *routes, size_t n, struct route_table **ret)
{
	struct route_table *t;
	bool seen[2][129] = {};

	if (n > CONFLICTS_MAX_ROUTES)
		return -E2BIG;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->routes = calloc(n ? n : 1, sizeof(*t->routes));
	t->entries = calloc(n ? n : 1, sizeof(*t->entries));
	if (!t->routes || !t->entries) {
		route_table_free(t);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct host_route *r = &routes[i];
		int fi = r->dst.family == AF_INET6;
		struct route_entry *e = &t->entries[t->n], *old;

		if ((r->dst.family != AF_INET && r->dst.family != AF_INET6) ||
		    r->prefixlen > ip_len(r->dst.family) * 8)
			continue;
		t->routes[t->n] = *r;
		t->routes[t->n].dst = ip_mask(&r->dst, r->prefixlen);
		e->key = route_key_of(&r->dst, r->prefixlen);
		e->route = &t->routes[t->n];
		HASH_FIND(hh, t->hash, &e->key, sizeof(e->key), old);
		if (old) {
			if (route_rank(r->type) < route_rank(old->route->type))
				old->route = e->route;
			t->n++;
			continue;
		}
		HASH_ADD(hh, t->hash, key, sizeof(e->key), e);
		t->n++;
		seen[fi][r->prefixlen] = true;
	}
	for (int fi = 0; fi < 2; fi++)
		for (int len = 128; len >= 0; len--)
			if (seen[fi][len])
				t->lens[fi][t->n_lens[fi]++] = (uint8_t)len;
	*ret = t;
	return 0;
}

const struct host_route *route_table_lookup(const struct route_table *t,
					    const struct kube_ip *addr)
{
	int fi = addr->family == AF_INET6;

	if (addr->family != AF_INET && addr->family != AF_INET6)
		return NULL;
	for (size_t i = 0; i < t->n_lens[fi]; i++) {
		struct route_key k = route_key_of(addr, t->lens[fi][i]);
		struct route_entry *e;

		HASH_FIND(hh, t->hash, &k, sizeof(k), e);
		if (e)
			return e->route;
	}
	return NULL;
}

static const char *route_type_name(unsigned type)
{
	switch (type) {
	case RTN_UNREACHABLE:
		return "unreachable";
	case RTN_BLACKHOLE:
		return "blackhole";
	case RTN_PROHIBIT:
		return "prohibit";
	case RTN_THROW:
		return "throw";
	case RTN_LOCAL:
		return "local";
	default:
		return NULL;
	}
}

void host_route_format(const struct host_route *r, char *buf, size_t len)
{
	char dst[INET6_ADDRSTRLEN] = "", gw[INET6_ADDRSTRLEN] = "";
	const char *type = route_type_name(r->type);
	size_t o = 0;

	if (r->prefixlen == 0)
		o += (size_t)snprintf(buf, len, "%s%sdefault", type ? type : "", type ? " " : "");
	else
		o += (size_t)snprintf(buf, len, "%s%s%s/%u", type ? type : "", type ? " " : "",
				      kube_ip_format(&r->dst, dst, sizeof(dst)), r->prefixlen);
	if (o < len && r->gateway.family)
		o += (size_t)snprintf(buf + o, len - o, " via %s",
				      kube_ip_format(&r->gateway, gw, sizeof(gw)));
	if (o < len && r->ifname[0])
		snprintf(buf + o, len - o, " dev %s", r->ifname);
}

static bool route_usable(const struct host_route *r)
{
	return r && (r->type == RTN_UNICAST || r->type == RTN_LOCAL);
}

/* ---- pure: the check ------------------------------------------------------ */

struct compute {
	const struct model *model;
	const struct host_view *host;
	struct conflict *v;
	size_t n;
	size_t more;
	int error;
};

static struct conflict *already(const struct compute *c, const char *kind,
				 const struct kube_ip *addr, unsigned prefixlen)
{
	for (size_t i = 0; i < c->n; i++)
		if (streq(c->v[i].kind, kind) && kube_ip_equal(&c->v[i].addr, addr) &&
		    c->v[i].prefixlen == prefixlen)
			return &c->v[i];
	return NULL;
}

static void add(struct compute *c, const char *kind, const struct kube_ip *addr,
		const struct kube_service *svc, const char *fmt, ...) _printf_(5, 6);

static void add(struct compute *c, const char *kind, const struct kube_ip *addr,
		const struct kube_service *svc, const char *fmt, ...)
{
	unsigned full = (unsigned)ip_len(addr->family) * 8;
	struct conflict *x;
	va_list ap;

	if (already(c, kind, addr, full))
		return;
	if (c->n == CONFLICTS_MAX) {
		c->more++;
		return;
	}
	x = &c->v[c->n++];
	*x = (struct conflict){ .addr = *addr, .prefixlen = full, .count = 1 };
	snprintf(x->kind, sizeof(x->kind), "%s", kind);
	if (svc)
		snprintf(x->service, sizeof(x->service), "%s/%s", svc->namespace, svc->name);
	va_start(ap, fmt);
	vsnprintf(x->message, sizeof(x->message), fmt, ap);
	va_end(ap);
}

static struct conflict *route_conflict(struct compute *c, const struct host_route *r)
{
	struct conflict *x = already(c, "route", &r->dst, r->prefixlen);

	if (x)
		return x;
	if (c->n == CONFLICTS_MAX) {
		c->more++;
		return NULL;
	}
	x = &c->v[c->n++];
	*x = (struct conflict){ .addr = r->dst, .prefixlen = r->prefixlen };
	snprintf(x->kind, sizeof(x->kind), "route");
	host_route_format(r, x->route, sizeof(x->route));
	return x;
}

/* --service-cidr against the host's addresses, routes and nameservers. */
static void check_cidrs(struct compute *c)
{
	const struct host_view *h = c->host;
	char cidr[64], a[INET6_ADDRSTRLEN];

	for (size_t k = 0; k < h->n_service_cidrs; k++) {
		const struct host_address *s = &h->service_cidrs[k];

		snprintf(cidr, sizeof(cidr), "%s/%u", kube_ip_format(&s->addr, a, sizeof(a)),
			 s->prefixlen);
		for (size_t i = 0; i < h->n_addrs; i++)
			if (ip_in_prefix(&h->addrs[i].addr, &s->addr, s->prefixlen))
				add(c, "host_address", &h->addrs[i].addr, NULL,
				    "address %s/%u of this host (%s) is inside the Service CIDR %s: "
				    "connections to it on a Service's ports go to that Service, and "
				    "the host's own traffic to it may be dropped as an unallocated "
				    "ClusterIP",
				    kube_ip_format(&h->addrs[i].addr, a, sizeof(a)), h->addrs[i].prefixlen,
				    h->addrs[i].ifname, cidr);
		for (size_t i = 0; i < h->n_nameservers; i++)
			if (ip_in_prefix(&h->nameservers[i], &s->addr, s->prefixlen))
				add(c, "nameserver", &h->nameservers[i], NULL,
				    "nameserver %s of this host is inside the Service CIDR %s: its "
				    "queries are DNATed if it is a Service's address, dropped if not",
				    kube_ip_format(&h->nameservers[i], a, sizeof(a)), cidr);
		for (size_t i = 0; h->routes && i < h->routes->n; i++) {
			const struct host_route *r = &h->routes->routes[i];
			struct conflict *x;

			/* Inside the CIDR, or around it and the route its addresses
			 * take (not overridden by a more specific one). */
			if (r->prefixlen == 0 || r->type != RTN_UNICAST ||
			    !(ip_in_prefix(&r->dst, &s->addr, s->prefixlen) ||
			      (ip_in_prefix(&s->addr, &r->dst, r->prefixlen) &&
			       route_table_lookup(h->routes, &s->addr) == r)))
				continue;
			x = route_conflict(c, r);
			if (x && !x->cidr[0])
				snprintf(x->cidr, sizeof(x->cidr), "%s", cidr);
		}
	}
}

/* One conflict per route, however many ClusterIPs it covers (a VPN route
 * over the whole Service CIDR is one problem); the message is written once
 * all are counted (finish_routes). */
static void check_route(struct compute *c, const struct kube_service *svc, const struct kube_ip *vip)
{
	const struct host_route *r = route_table_lookup(c->host->routes, vip);
	char a[INET6_ADDRSTRLEN];
	struct conflict *x;
	size_t len;

	/* unreachable, blackhole, prohibit: traffic that is not DNATed fails
	 * fast, which is what a host should do with the Service CIDR. */
	if (!r || r->prefixlen == 0 || r->type != RTN_UNICAST)
		return;
	x = route_conflict(c, r);
	if (!x)
		return;
	if (!x->service[0])
		snprintf(x->service, sizeof(x->service), "%s/%s", svc->namespace, svc->name);
	if (x->count++ < 3) {
		len = strlen(x->examples);
		snprintf(x->examples + len, sizeof(x->examples) - len, "%s%s/%s %s", len ? ", " : "",
			 svc->namespace, svc->name, kube_ip_format(vip, a, sizeof(a)));
	}
}

static void finish_routes(struct compute *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct conflict *x = &c->v[i];

		if (!streq(x->kind, "route"))
			continue;
		if (x->cidr[0] && x->count == 0) {
			snprintf(x->message, sizeof(x->message),
				 "this host's route %s overlaps the Service CIDR %s: traffic to its "
				 "addresses that is not DNATed follows the route, and machines there "
				 "with Service CIDR addresses are unreachable from this host",
				 x->route, x->cidr);
			continue;
		}
		snprintf(x->message, sizeof(x->message),
			 "this host's route %s%s%s%s covers %zu ClusterIP%s (%s%s): the Service CIDR "
			 "overlaps a network the host reaches; Service ports are still DNATed, but "
			 "other traffic to those addresses follows the route, and machines there "
			 "with them are unreachable from this host",
			 x->route, x->cidr[0] ? " (overlapping the Service CIDR " : "",
			 x->cidr[0] ? x->cidr : "", x->cidr[0] ? ")" : "", x->count,
			 x->count == 1 ? "" : "s", x->examples,
			 x->count > 3 ? ", ..." : "");
	}
}

static void check_vip(struct compute *c, const struct kube_service *svc, const struct kube_ip *vip,
		      const char *what)
{
	const struct host_view *h = c->host;
	char a[INET6_ADDRSTRLEN];

	kube_ip_format(vip, a, sizeof(a));
	for (size_t i = 0; i < h->n_addrs; i++)
		if (kube_ip_equal(&h->addrs[i].addr, vip))
			add(c, "host_address", vip, svc,
			    "%s %s of Service %s/%s is also an address of this host (%s): "
			    "connections to its Service ports go to the Service, not to this host",
			    what, a, svc->namespace, svc->name, h->addrs[i].ifname);
	for (size_t i = 0; i < h->n_nameservers; i++)
		if (kube_ip_equal(&h->nameservers[i], vip))
			add(c, "nameserver", vip, svc,
			    "nameserver %s of this host is the %s of Service %s/%s: DNS queries to "
			    "it on the Service's ports are DNATed to the Service's endpoints",
			    a, what, svc->namespace, svc->name);
	if (h->routes && streq(what, "ClusterIP"))
		check_route(c, svc, vip);
}

struct endpoint_walk {
	struct compute *c;
	const struct kube_service *svc;
};

static int check_slice(const struct kube_endpoint_slice *sl, void *userdata)
{
	struct endpoint_walk *w = userdata;
	struct compute *c = w->c;
	char a[INET6_ADDRSTRLEN], route[160];

	for (size_t i = 0; i < sl->n_endpoints; i++) {
		const struct kube_endpoint *ep = &sl->endpoints[i];
		const struct host_route *r;

		if (!ep->ready && !ep->serving)
			continue;
		r = route_table_lookup(c->host->routes, &ep->addr);
		if (route_usable(r))
			continue;
		kube_ip_format(&ep->addr, a, sizeof(a));
		if (r)
			host_route_format(r, route, sizeof(route));
		add(c, "unroutable_endpoint", &ep->addr, w->svc,
		    "endpoint %s of Service %s/%s: this host has no route to it (%s); "
		    "connections sent there fail",
		    a, w->svc->namespace, w->svc->name, r ? route : "no route covers it");
	}
	return 0;
}

static int check_service(const struct kube_service *svc, void *userdata)
{
	struct compute *c = userdata;

	for (size_t i = 0; i < svc->n_cluster_ips; i++)
		check_vip(c, svc, &svc->cluster_ips[i], "ClusterIP");
	for (size_t i = 0; i < svc->n_external_ips; i++)
		check_vip(c, svc, &svc->external_ips[i], "external IP");
	for (size_t i = 0; i < svc->n_lb_ips; i++)
		check_vip(c, svc, &svc->lb_ips[i], "load-balancer IP");
	if (c->host->routes && svc->type != KUBE_SERVICE_EXTERNAL_NAME) {
		struct endpoint_walk w = { c, svc };

		return model_service_slices(c->model, svc->namespace, svc->name, check_slice, &w);
	}
	return 0;
}

int conflicts_compute(const struct model *m, const struct host_view *h, struct conflict **ret,
		      size_t *ret_n, size_t *ret_more)
{
	struct compute c = { .model = m, .host = h };
	int r;

	c.v = calloc(CONFLICTS_MAX, sizeof(*c.v));
	if (!c.v)
		return -ENOMEM;
	/* Services first: what names a Service is the more useful message. */
	r = model_foreach_service(m, check_service, &c);
	if (r < 0) {
		free(c.v);
		return r;
	}
	check_cidrs(&c);
	finish_routes(&c);
	*ret = c.v;
	*ret_n = c.n;
	*ret_more = c.more;
	return 0;
}

/* ---- rtnetlink: addresses, routes, one route lookup ------------------------ */

static int nl_open(struct mnl_socket **ret)
{
	return netlink_open(NETLINK_ROUTE, 0, ret);
}

static void nl_closep(struct mnl_socket **nl)
{
	if (*nl)
		mnl_socket_close(*nl);
}

/* Send one request and run cb over every answer (a dump, or one reply). */
static int nl_talk(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	_cleanup_(freep) char *buf = malloc(NL_BUFFER_SIZE);
	uint32_t seq = nlh->nlmsg_seq, portid = mnl_socket_get_portid(nl);
	ssize_t n;
	int r;

	if (!buf)
		return -ENOMEM;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		n = mnl_socket_recvfrom(nl, buf, NL_BUFFER_SIZE);
		if (n < 0)
			return -errno;
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (r < 0)
			return -errno;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

static bool attr_ip(const struct nlattr *a, int family, struct kube_ip *ret)
{
	size_t len = ip_len(family);

	if (!a || mnl_attr_get_payload_len(a) < len)
		return false;
	*ret = (struct kube_ip){ .family = family };
	memcpy(ret->bytes, mnl_attr_get_payload(a), len);
	return true;
}

struct dump {
	void *v;
	size_t n, cap, size, max;
	bool truncated;
};

static void *dump_push(struct dump *d)
{
	if (d->n == d->max) {
		d->truncated = true;
		return NULL;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		void *v = reallocarray(d->v, cap, d->size);

		if (!v)
			return NULL;
		d->v = v;
		d->cap = cap;
	}
	return memset((char *)d->v + d->n++ * d->size, 0, d->size);
}

static int on_addr(const struct nlmsghdr *nlh, void *data)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct nlattr *tb[IFA_MAX + 1] = {};
	const struct nlattr *attr;
	struct host_address *a;
	struct kube_ip ip;

	if (nlh->nlmsg_type != RTM_NEWADDR || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*ifa)) {
		unsigned t = mnl_attr_get_type(attr);

		if (t <= IFA_MAX)
			tb[t] = (struct nlattr *)attr;
	}
	if (!attr_ip(tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS], ifa->ifa_family, &ip))
		return MNL_CB_OK;
	a = dump_push(data);
	if (!a)
		return MNL_CB_OK;
	a->addr = ip;
	a->prefixlen = ifa->ifa_prefixlen;
	if (!if_indextoname(ifa->ifa_index, a->ifname))
		snprintf(a->ifname, sizeof(a->ifname), "if%u", ifa->ifa_index);
	return MNL_CB_OK;
}

static int on_route(const struct nlmsghdr *nlh, void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct nlattr *tb[RTA_MAX + 1] = {};
	const struct nlattr *attr;
	struct host_route *r;
	uint32_t table;

	if (nlh->nlmsg_type != RTM_NEWROUTE ||
	    (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6))
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*rtm)) {
		unsigned t = mnl_attr_get_type(attr);

		if (t <= RTA_MAX)
			tb[t] = (struct nlattr *)attr;
	}
	table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
	if (table != RT_TABLE_MAIN)
		return MNL_CB_OK;
	switch (rtm->rtm_type) {
	case RTN_UNICAST:
	case RTN_UNREACHABLE:
	case RTN_BLACKHOLE:
	case RTN_PROHIBIT:
	case RTN_THROW:
		break;
	default:
		return MNL_CB_OK;
	}
	r = dump_push(data);
	if (!r)
		return MNL_CB_OK;
	r->dst.family = rtm->rtm_family;
	if (tb[RTA_DST])
		attr_ip(tb[RTA_DST], rtm->rtm_family, &r->dst);
	r->prefixlen = rtm->rtm_dst_len;
	r->type = rtm->rtm_type;
	if (tb[RTA_GATEWAY])
		attr_ip(tb[RTA_GATEWAY], rtm->rtm_family, &r->gateway);
	if (tb[RTA_OIF] && !if_indextoname(mnl_attr_get_u32(tb[RTA_OIF]), r->ifname))
		snprintf(r->ifname, sizeof(r->ifname), "if%u", mnl_attr_get_u32(tb[RTA_OIF]));
	return MNL_CB_OK;
}

static int dump(struct mnl_socket *nl, uint16_t type, int family, mnl_cb_t cb, struct dump *d)
{
	char buf[8192];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = (uint32_t)now_usec(CLOCK_MONOTONIC);
	if (type == RTM_GETROUTE) {
		struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

		rtm->rtm_family = (uint8_t)family;
	} else {
		struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

		ifa->ifa_family = (uint8_t)family;
	}
	return nl_talk(nl, nlh, cb, d);
}

struct lookup {
	struct host_route route;
	bool found;
	bool local;
};

static int on_lookup(const struct nlmsghdr *nlh, void *data)
{
	struct lookup *l = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct nlattr *tb[RTA_MAX + 1] = {};
	const struct nlattr *attr;

	if (nlh->nlmsg_type != RTM_NEWROUTE)
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*rtm)) {
		unsigned t = mnl_attr_get_type(attr);

		if (t <= RTA_MAX)
			tb[t] = (struct nlattr *)attr;
	}
	l->found = true;
	l->route.type = rtm->rtm_type;
	if (tb[RTA_GATEWAY])
		attr_ip(tb[RTA_GATEWAY], rtm->rtm_family, &l->route.gateway);
	if (tb[RTA_OIF] && !if_indextoname(mnl_attr_get_u32(tb[RTA_OIF]), l->route.ifname))
		snprintf(l->route.ifname, sizeof(l->route.ifname), "if%u",
			 mnl_attr_get_u32(tb[RTA_OIF]));
	return MNL_CB_STOP;
}

int conflicts_route_describe(const struct kube_ip *addr, char *buf, size_t len)
{
	_cleanup_(nl_closep) struct mnl_socket *nl = NULL;
	char req[8192], gw[INET6_ADDRSTRLEN];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	struct rtmsg *rtm;
	struct lookup l = {};
	int r;

	r = nl_open(&nl);
	if (r < 0)
		return r;
	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = (uint32_t)now_usec(CLOCK_MONOTONIC);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)addr->family;
	rtm->rtm_dst_len = (uint8_t)(ip_len(addr->family) * 8);
	mnl_attr_put(nlh, RTA_DST, ip_len(addr->family), addr->bytes);
	r = nl_talk(nl, nlh, on_lookup, &l);
	if (r < 0) {
		snprintf(buf, len, "no route: %s", strerror(-r));
		return r == -ENETUNREACH || r == -EHOSTUNREACH || r == -EACCES || r == -EINVAL ?
			       0 :
			       r;
	}
	if (!l.found) {
		snprintf(buf, len, "no route");
		return 0;
	}
	if (l.route.type == RTN_LOCAL) {
		snprintf(buf, len, "local (an address of this host)");
		return 1;
	}
	if (l.route.type != RTN_UNICAST) {
		snprintf(buf, len, "%s route", route_type_name(l.route.type) ?: "unusable");
		return 0;
	}
	if (l.route.gateway.family)
		snprintf(buf, len, "via %s dev %s", kube_ip_format(&l.route.gateway, gw, sizeof(gw)),
			 l.route.ifname);
	else
		snprintf(buf, len, "dev %s (directly connected)", l.route.ifname);
	return 1;
}

/* ---- the daemon side ------------------------------------------------------ */

struct conflicts {
	struct agent *agent;
	sd_event_source *timer;
	struct mnl_socket *monitor;
	sd_event_source *monitor_source;
	struct conflict *v;
	size_t n, more;
	char *note;
	uint64_t checks;
};

static void log_conflict(int level, const struct conflict *x, const char *prefix)
{
	char a[INET6_ADDRSTRLEN], kind[48], addr[80], svc[sizeof(x->service) + 24];
	const char *fields[] = { kind, addr, x->service[0] ? svc : NULL, NULL };

	snprintf(kind, sizeof(kind), "KUBE_ANNEX_CONFLICT=%s", x->kind);
	snprintf(addr, sizeof(addr), "KUBE_ANNEX_ADDRESS=%s/%u",
		 kube_ip_format(&x->addr, a, sizeof(a)), x->prefixlen);
	snprintf(svc, sizeof(svc), "KUBE_ANNEX_SERVICE=%s", x->service);
	operate_log(level, fields, "%s%s", prefix, x->message);
}

static bool same_conflict(const struct conflict *a, const struct conflict *b)
{
	return streq(a->kind, b->kind) && kube_ip_equal(&a->addr, &b->addr) &&
	       a->prefixlen == b->prefixlen;
}

/* New conflicts are warnings, gone ones info; one that only changed (a
 * route covering one more ClusterIP) is not logged again. */
static void log_changes(struct conflicts *c, const struct conflict *v, size_t n, size_t more)
{
	unsigned lines = 0, skipped = 0;

	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < c->n && !seen; j++)
			seen = same_conflict(&c->v[j], &v[i]);
		if (seen)
			continue;
		if (lines++ < LOG_MAX_LINES)
			log_conflict(LOG_WARNING, &v[i], "Conflict: ");
		else
			skipped++;
	}
	if (skipped || (more && more != c->more))
		log_warning("Conflict: %u more not shown, %zu beyond the %u kept (see "
			    "kube-annex status)",
			    skipped, more, CONFLICTS_MAX);
	lines = 0;
	for (size_t j = 0; j < c->n; j++) {
		bool still = false;

		for (size_t i = 0; i < n && !still; i++)
			still = same_conflict(&c->v[j], &v[i]);
		if (!still && lines++ < LOG_MAX_LINES)
			log_conflict(LOG_INFO, &c->v[j], "Conflict resolved: ");
	}
}

static void check(struct conflicts *c)
{
	struct agent *a = c->agent;
	_cleanup_(nl_closep) struct mnl_socket *nl = NULL;
	struct dump addrs = { .size = sizeof(struct host_address), .max = MAX_HOST_ADDRESSES };
	struct dump routes = { .size = sizeof(struct host_route), .max = CONFLICTS_MAX_ROUTES };
	struct route_table *table = NULL;
	struct kube_ip ns[MAX_NAMESERVERS], keep[MAX_NAMESERVERS];
	struct kube_cidr cidrs[NFT_MAX_SERVICE_CIDRS];
	struct host_address cidr_view[NFT_MAX_SERVICE_CIDRS];
	size_t n_cidrs;
	struct resolv_status rs;
	struct conflict *v = NULL;
	size_t n = 0, more = 0, n_ns, n_keep = 0;
	struct host_view h = {};
	char *note = NULL;
	int r;

	c->checks++;
	r = nl_open(&nl);
	if (r >= 0)
		r = dump(nl, RTM_GETADDR, AF_UNSPEC, on_addr, &addrs);
	if (r >= 0)
		r = dump(nl, RTM_GETROUTE, AF_INET, on_route, &routes);
	if (r >= 0)
		r = dump(nl, RTM_GETROUTE, AF_INET6, on_route, &routes);
	if (r < 0)
		note = strdup_printf("cannot read this host's addresses and routes: %s",
				     strerror(-r));
	else if (routes.truncated)
		note = strdup_printf("more than %u routes: routes were not checked",
				     CONFLICTS_MAX_ROUTES);
	else if (route_table_new(routes.v, routes.n, &table) < 0)
		note = strdup("out of memory: routes were not checked");

	/* The cluster DNS kube-annex itself put into resolv.conf is no conflict. */
	resolv_get_status(a->resolv, &rs);
	n_ns = resolv_host_nameservers(ns, MAX_NAMESERVERS);
	for (size_t i = 0; i < n_ns; i++) {
		bool ours = false;

		for (size_t j = 0; j < rs.n_servers && !ours; j++)
			ours = kube_ip_equal(&ns[i], &rs.servers[j]);
		if (!ours)
			keep[n_keep++] = ns[i];
	}
	n_cidrs = nft_get_service_cidrs(a->nft, cidrs);
	for (size_t i = 0; i < n_cidrs; i++)
		cidr_view[i] = (struct host_address){ .addr = cidrs[i].addr,
						      .prefixlen = cidrs[i].prefix };
	h = (struct host_view){ .addrs = addrs.v, .n_addrs = addrs.n, .routes = table,
				.nameservers = keep, .n_nameservers = n_keep,
				.service_cidrs = cidr_view, .n_service_cidrs = n_cidrs };
	r = conflicts_compute(a->model, &h, &v, &n, &more);
	if (r >= 0) {
		log_changes(c, v, n, more);
		free(c->v);
		c->v = v;
		c->n = n;
		c->more = more;
	} else {
		log_warning("Cannot check for conflicts with this host's network: %s",
			    strerror(-r));
	}
	if (note && !streq_ptr(note, c->note))
		log_warning("Conflict check: %s", note);
	free(c->note);
	c->note = note;
	route_table_free(table);
	free(addrs.v);
	free(routes.v);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	check(userdata);
	return 0;
}

void conflicts_schedule(struct conflicts *c)
{
	int enabled = SD_EVENT_OFF;

	if (!c || !c->agent->ready)
		return;
	sd_event_source_get_enabled(c->timer, &enabled);
	if (enabled != SD_EVENT_OFF)
		return;
	sd_event_source_set_time_relative(c->timer, CHECK_DELAY_USEC);
	sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
}

static int on_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct conflicts *c = userdata;
	char buf[8192];

	/* What changed does not matter: drain, then look again. */
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0 || errno == ENOBUFS)
		;
	conflicts_schedule(c);
	return 0;
}

static int monitor_open(struct conflicts *c)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	unsigned groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
			  RTMGRP_IPV6_ROUTE;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
		int r = -errno;

		mnl_socket_close(nl);
		return r;
	}
	c->monitor = nl;
	return sd_event_add_io(c->agent->event, &c->monitor_source, mnl_socket_get_fd(nl), EPOLLIN,
			       on_monitor, c);
}

int conflicts_new(struct agent *a, struct conflicts **ret)
{
	struct conflicts *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->agent = a;
	r = sd_event_add_time(a->event, &c->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC * 100,
			      on_timer, c);
	if (r < 0) {
		conflicts_free(c);
		return r;
	}
	sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
	sd_event_source_set_description(c->timer, "conflicts");
	r = monitor_open(c);
	if (r < 0)
		log_warning("Cannot follow this host's address and route changes: %s; conflicts "
			    "are checked when Services change only",
			    strerror(-r));
	*ret = c;
	return 0;
}

struct conflicts *conflicts_free(struct conflicts *c)
{
	if (!c)
		return NULL;
	sd_event_source_disable_unref(c->timer);
	sd_event_source_disable_unref(c->monitor_source);
	if (c->monitor)
		mnl_socket_close(c->monitor);
	free(c->v);
	free(c->note);
	free(c);
	return NULL;
}

static cJSON *conflict_json(const struct conflict *x)
{
	cJSON *o = cJSON_CreateObject();
	char a[INET6_ADDRSTRLEN];

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "kind", x->kind);
	cJSON_AddStringToObject(o, "address", kube_ip_format(&x->addr, a, sizeof(a)));
	if (x->prefixlen != ip_len(x->addr.family) * 8)
		cJSON_AddNumberToObject(o, "prefix_length", x->prefixlen);
	if (x->count > 1)
		cJSON_AddNumberToObject(o, "count", (double)x->count);
	if (x->service[0])
		cJSON_AddStringToObject(o, "service", x->service);
	cJSON_AddStringToObject(o, "message", x->message);
	return o;
}

cJSON *conflicts_json(const struct conflicts *c)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; c && arr && i < c->n; i++)
		cJSON_AddItemToArray(arr, conflict_json(&c->v[i]));
	return arr;
}

size_t conflicts_count(const struct conflicts *c, const char *kind)
{
	size_t n = 0;

	for (size_t i = 0; c && i < c->n; i++)
		n += streq(c->v[i].kind, kind);
	return n;
}

cJSON *conflicts_for_address(const struct conflicts *c, const struct kube_ip *addr)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; c && arr && i < c->n; i++)
		if (ip_in_prefix(addr, &c->v[i].addr, c->v[i].prefixlen))
			cJSON_AddItemToArray(arr, conflict_json(&c->v[i]));
	return arr;
}

const char *conflicts_note(const struct conflicts *c)
{
	return c ? c->note : NULL;
}

size_t conflicts_more(const struct conflicts *c)
{
	return c ? c->more : 0;
}
