/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the pure parts of agent/operate: address and query
 * parsing, the route table, conflict detection over a model and a host
 * view, Prometheus text, and the text renderers of status and explain.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "agent/operate.h"
#include "lib/util.h"
#include "model/model.h"

static struct kube_ip ip(const char *s)
{
	struct kube_ip a;

	assert_int_equal(kube_ip_parse(s, &a), 0);
	return a;
}

/* ---- --metrics-address ------------------------------------------------------ */

static void test_parse_address(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	bool off;

	assert_int_equal(operate_parse_address("127.0.0.1:10256", &ss, &off), 0);
	assert_false(off);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 10256);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(operate_parse_address("[::1]:9100", &ss, &off), 0);
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 9100);
	assert_int_equal(operate_parse_address("0.0.0.0:1", &ss, &off), 0);
	assert_int_equal(operate_parse_address("off", &ss, &off), 0);
	assert_true(off);

	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+80",
		"127.0.0.1:80x", "::1:80", "[::1]", "[::1]80", "[127.0.0.1]:80", "localhost:80",
		":80", "[]:80", "1.2.3:80",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(operate_parse_address(bad[i], &ss, &off), -EINVAL);
	assert_int_equal(operate_parse_address(NULL, &ss, &off), -EINVAL);
}

/* ---- explain queries --------------------------------------------------------- */

static void test_parse_query(void **state)
{
	struct explain_query q;

	assert_int_equal(explain_parse_query("shop/web", &q), 0);
	assert_int_equal(q.kind, EXPLAIN_SERVICE);
	assert_string_equal(q.ns, "shop");
	assert_string_equal(q.name, "web");

	assert_int_equal(explain_parse_query("10.96.0.10", &q), 0);
	assert_int_equal(q.kind, EXPLAIN_ADDRESS);
	assert_string_equal(q.addr, "10.96.0.10");
	assert_int_equal(q.port, 0);

	assert_int_equal(explain_parse_query("10.96.0.10:53/udp", &q), 0);
	assert_int_equal(q.kind, EXPLAIN_ADDRESS);
	assert_int_equal(q.port, 53);
	assert_int_equal(q.protocol, IPPROTO_UDP);
	assert_int_equal(explain_parse_query("10.96.0.10:80/TCP", &q), 0);
	assert_int_equal(q.protocol, IPPROTO_TCP);

	assert_int_equal(explain_parse_query("fd00:96::a", &q), 0);
	assert_int_equal(q.kind, EXPLAIN_ADDRESS);
	assert_int_equal(q.port, 0);
	assert_int_equal(explain_parse_query("[fd00:96::a]:8080", &q), 0);
	assert_string_equal(q.addr, "fd00:96::a");
	assert_int_equal(q.port, 8080);

	assert_int_equal(explain_parse_query("web.shop.svc.cluster.local", &q), 0);
	assert_int_equal(q.kind, EXPLAIN_NAME);
	assert_string_equal(q.name, "web.shop.svc.cluster.local");
	assert_int_equal(explain_parse_query("web", &q), 0);
	assert_int_equal(q.kind, EXPLAIN_NAME);

	static const char *const bad[] = {
		"", "a/b/c", "/web", "shop/", "10.96.0.10:0", "10.96.0.10:70000", "10.96.0.10:80/icmp",
		"[fd00::1", "[fd00::1]:", "[nope]:80", "web shop", "web\n", "host:80", "ns/na:me",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(explain_parse_query(bad[i], &q), -EINVAL);
}

/* ---- routes --------------------------------------------------------------------- */

static struct host_route route(const char *dst, unsigned len, unsigned type, const char *dev,
			       const char *gw)
{
	struct host_route r = { .dst = ip(dst), .prefixlen = len, .type = type };

	snprintf(r.ifname, sizeof(r.ifname), "%s", dev ? dev : "");
	if (gw)
		r.gateway = ip(gw);
	return r;
}

static void test_prefix(void **state)
{
	struct kube_ip a = ip("10.96.5.5"), p = ip("10.96.0.0"), six = ip("fd00:96::5");

	assert_true(ip_in_prefix(&a, &p, 16));
	assert_true(ip_in_prefix(&a, &p, 13));
	assert_false(ip_in_prefix(&a, &p, 24));
	assert_true(ip_in_prefix(&a, &a, 32));
	assert_true(ip_in_prefix(&a, &p, 0));
	assert_false(ip_in_prefix(&a, &p, 33));
	assert_false(ip_in_prefix(&six, &p, 0)); /* other family */
	p = ip("fd00:96::");
	assert_true(ip_in_prefix(&six, &p, 112));
	assert_true(ip_in_prefix(&six, &p, 121));
	assert_false(ip_in_prefix(&six, &p, 128));
}

static void test_route_table(void **state)
{
	struct host_route routes[] = {
		route("0.0.0.0", 0, RTN_UNICAST, "eth0", "10.99.0.254"),
		route("10.99.0.0", 24, RTN_UNICAST, "eth0", NULL),
		route("10.96.0.0", 12, RTN_UNICAST, "tun0", "10.8.0.1"),
		route("10.96.7.1", 16, RTN_UNICAST, "tun1", NULL), /* not masked in the input */
		route("10.244.0.13", 32, RTN_UNREACHABLE, NULL, NULL),
		route("fd00:99::", 64, RTN_UNICAST, "eth0", NULL),
	};
	struct route_table *t = NULL;
	struct kube_ip a;
	const struct host_route *r;
	char buf[128];

	assert_int_equal(route_table_new(routes, ARRAY_SIZE(routes), &t), 0);
	a = ip("10.96.5.5");
	r = route_table_lookup(t, &a);
	assert_non_null(r);
	assert_string_equal(r->ifname, "tun1");
	host_route_format(r, buf, sizeof(buf));
	assert_string_equal(buf, "10.96.0.0/16 dev tun1");
	a = ip("10.97.0.1");
	r = route_table_lookup(t, &a);
	assert_string_equal(r->ifname, "tun0");
	host_route_format(r, buf, sizeof(buf));
	assert_string_equal(buf, "10.96.0.0/12 via 10.8.0.1 dev tun0");
	a = ip("8.8.8.8");
	r = route_table_lookup(t, &a);
	assert_int_equal(r->prefixlen, 0);
	host_route_format(r, buf, sizeof(buf));
	assert_string_equal(buf, "default via 10.99.0.254 dev eth0");
	a = ip("10.244.0.13");
	r = route_table_lookup(t, &a);
	assert_int_equal(r->type, RTN_UNREACHABLE);
	host_route_format(r, buf, sizeof(buf));
	assert_string_equal(buf, "unreachable 10.244.0.13/32");
	a = ip("fd00:99::7");
	assert_string_equal(route_table_lookup(t, &a)->ifname, "eth0");
	a = ip("fd00:1::1"); /* no IPv6 default route */
	assert_null(route_table_lookup(t, &a));
	route_table_free(t);

	assert_int_equal(route_table_new(NULL, 0, &t), 0);
	a = ip("10.0.0.1");
	assert_null(route_table_lookup(t, &a));
	route_table_free(t);
}

/* ---- conflicts -------------------------------------------------------------------- */

static struct kube_service *service(const char *ns, const char *name, const char *vip)
{
	struct kube_service *s = calloc(1, sizeof(*s));

	s->namespace = strdup(ns);
	s->name = strdup(name);
	s->cluster_ips = calloc(1, sizeof(*s->cluster_ips));
	s->cluster_ips[0] = ip(vip);
	s->n_cluster_ips = 1;
	s->ports = calloc(1, sizeof(*s->ports));
	s->ports[0] = (struct kube_service_port){ .name = strdup("http"), .protocol = IPPROTO_TCP,
						  .port = 80 };
	s->n_ports = 1;
	return s;
}

static struct kube_endpoint_slice **one_slice(const char *ns, const char *svc, const char *addr)
{
	struct kube_endpoint_slice **v = calloc(1, sizeof(*v)), *s = calloc(1, sizeof(*s));

	s->namespace = strdup(ns);
	s->name = strdup_printf("%s-x", svc);
	s->service_name = strdup(svc);
	s->family = AF_INET;
	s->ports = calloc(1, sizeof(*s->ports));
	s->ports[0] = (struct kube_endpoint_port){ .name = strdup("http"), .protocol = IPPROTO_TCP,
						   .port = 8080 };
	s->n_ports = 1;
	s->endpoints = calloc(1, sizeof(*s->endpoints));
	s->endpoints[0] = (struct kube_endpoint){ .addr = ip(addr), .ready = true, .serving = true };
	s->n_endpoints = 1;
	v[0] = s;
	return v;
}

static const struct conflict *find(const struct conflict *v, size_t n, const char *kind,
				   const char *addr)
{
	struct kube_ip a = ip(addr);

	for (size_t i = 0; i < n; i++)
		if (streq(v[i].kind, kind) && kube_ip_equal(&v[i].addr, &a))
			return &v[i];
	return NULL;
}

static void test_conflicts(void **state)
{
	struct model *m = NULL;
	struct host_route routes[] = {
		route("0.0.0.0", 0, RTN_UNICAST, "eth0", "10.99.0.254"),
		route("10.96.200.0", 24, RTN_UNICAST, "tun0", NULL),
		route("10.244.0.13", 32, RTN_UNREACHABLE, NULL, NULL),
	};
	struct host_address addrs[] = {
		{ .addr = ip("10.99.0.2"), .prefixlen = 24, .ifname = "eth0" },
		{ .addr = ip("10.96.77.77"), .prefixlen = 32, .ifname = "lo" },
	};
	struct kube_ip ns[] = { ip("10.96.0.10"), ip("192.0.2.53") };
	struct route_table *t = NULL;
	struct conflict *v = NULL;
	size_t n = 0, more = 0;
	const struct conflict *c;

	assert_int_equal(model_new(&m), 0);
	assert_int_equal(model_service_set(m, service("shop", "web", "10.96.5.5")), 0);
	assert_int_equal(model_service_set(m, service("shop", "vpn", "10.96.200.9")), 0);
	assert_int_equal(model_service_set(m, service("shop", "mine", "10.96.77.77")), 0);
	assert_int_equal(model_service_set(m, service("kube-system", "kube-dns", "10.96.0.10")), 0);
	assert_int_equal(model_endpoints_set(m, "shop", "web-x", one_slice("shop", "web",
									    "10.244.0.11"), 1), 0);
	assert_int_equal(model_endpoints_set(m, "shop", "vpn-x", one_slice("shop", "vpn",
									    "10.244.0.13"), 1), 0);
	assert_int_equal(route_table_new(routes, ARRAY_SIZE(routes), &t), 0);

	struct host_view h = { .addrs = addrs, .n_addrs = ARRAY_SIZE(addrs), .routes = t,
			       .nameservers = ns, .n_nameservers = ARRAY_SIZE(ns) };
	assert_int_equal(conflicts_compute(m, &h, &v, &n, &more), 0);
	assert_int_equal(n, 4);
	assert_int_equal(more, 0);
	c = find(v, n, "route", "10.96.200.0");
	assert_non_null(c);
	assert_int_equal(c->prefixlen, 24);
	assert_int_equal(c->count, 1);
	assert_string_equal(c->service, "shop/vpn");
	assert_non_null(strstr(c->message, "route 10.96.200.0/24 dev tun0 covers 1 ClusterIP "
					   "(shop/vpn 10.96.200.9)"));
	c = find(v, n, "host_address", "10.96.77.77");
	assert_non_null(c);
	assert_non_null(strstr(c->message, "(lo)"));
	c = find(v, n, "nameserver", "10.96.0.10");
	assert_non_null(c);
	assert_string_equal(c->service, "kube-system/kube-dns");
	c = find(v, n, "unroutable_endpoint", "10.244.0.13");
	assert_non_null(c);
	assert_non_null(strstr(c->message, "unreachable 10.244.0.13/32"));
	assert_null(find(v, n, "route", "10.96.5.5")); /* only the default route covers it */
	assert_int_equal(n, 4);
	free(v);

	/* One route over the whole Service CIDR is one conflict. */
	struct host_route vpn[] = { route("10.96.0.0", 16, RTN_UNICAST, "tun0", "10.8.0.1"),
				    route("0.0.0.0", 0, RTN_UNICAST, "eth0", "10.99.0.254") };
	struct route_table *t2 = NULL;

	assert_int_equal(route_table_new(vpn, ARRAY_SIZE(vpn), &t2), 0);
	h.routes = t2;
	h.n_addrs = 0;
	h.n_nameservers = 0;
	assert_int_equal(conflicts_compute(m, &h, &v, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].count, 4);
	assert_non_null(strstr(v[0].message, "covers 4 ClusterIPs ("));
	assert_non_null(strstr(v[0].message, ", ...)"));
	free(v);
	route_table_free(t2);
	h.n_addrs = ARRAY_SIZE(addrs);
	h.n_nameservers = ARRAY_SIZE(ns);

	/* --service-cidr: host addresses, routes and nameservers inside it. */
	struct host_address cidr[] = { { .addr = ip("10.96.0.0"), .prefixlen = 16 } };
	struct host_address lan[] = { { .addr = ip("10.96.250.1"), .prefixlen = 24, .ifname = "eth1" } };
	struct kube_ip ns2[] = { ip("10.96.9.9") };
	struct host_route r2[] = { route("0.0.0.0", 0, RTN_UNICAST, "eth0", "10.99.0.254"),
				   route("10.96.250.0", 24, RTN_UNICAST, "eth1", NULL),
				   route("10.0.0.0", 8, RTN_UNICAST, "tun0", "10.8.0.1"),
				   route("10.96.0.0", 16, RTN_UNREACHABLE, NULL, NULL) };
	struct host_view h2 = { .addrs = lan, .n_addrs = 1, .nameservers = ns2, .n_nameservers = 1,
				.service_cidrs = cidr, .n_service_cidrs = 1 };

	assert_int_equal(route_table_new(r2, ARRAY_SIZE(r2), &t2), 0);
	h2.routes = t2;
	assert_int_equal(conflicts_compute(m, &h2, &v, &n, &more), 0);
	c = find(v, n, "host_address", "10.96.250.1");
	assert_non_null(c);
	assert_non_null(strstr(c->message, "inside the Service CIDR 10.96.0.0/16"));
	c = find(v, n, "nameserver", "10.96.9.9");
	assert_non_null(c);
	c = find(v, n, "route", "10.96.250.0");
	assert_non_null(c);
	assert_int_equal(c->count, 0); /* no ClusterIP in it, but inside the CIDR */
	assert_non_null(strstr(c->message, "route 10.96.250.0/24 dev eth1 overlaps the Service "
					   "CIDR 10.96.0.0/16"));
	/* 10/8 via tun0 is overridden by the unreachable /16, which protects */
	assert_null(find(v, n, "route", "10.0.0.0"));
	assert_null(find(v, n, "route", "10.96.0.0"));
	free(v);
	route_table_free(t2);

	/* Without the unreachable route, 10/8 carries the CIDR and its ClusterIPs. */
	assert_int_equal(route_table_new(r2, ARRAY_SIZE(r2) - 1, &t2), 0);
	h2.routes = t2;
	assert_int_equal(conflicts_compute(m, &h2, &v, &n, &more), 0);
	c = find(v, n, "route", "10.0.0.0");
	assert_non_null(c);
	assert_non_null(strstr(c->message, "route 10.0.0.0/8 via 10.8.0.1 dev tun0 (overlapping "
					   "the Service CIDR 10.96.0.0/16) covers 4 ClusterIPs"));
	free(v);
	route_table_free(t2);

	/* Without a route table only addresses and nameservers are checked. */
	h.routes = NULL;
	assert_int_equal(conflicts_compute(m, &h, &v, &n, &more), 0);
	assert_int_equal(n, 2);
	free(v);
	route_table_free(t);
	model_free(m);
}

/* ---- Prometheus text ---------------------------------------------------------------- */

static char *capture(void (*fn)(FILE *f, void *ud), void *ud)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	fn(f, ud);
	fclose(f);
	return buf;
}

static void write_histogram(FILE *f, void *ud)
{
	prom_header(f, "x_seconds", "histogram", "help text");
	prom_histogram(f, "x_seconds", "a=\"b\"", ud);
	prom_histogram(f, "y_seconds", "", ud);
}

static void test_prometheus(void **state)
{
	struct histogram h = {};
	char buf[64], *text;

	histogram_add(&h, 150);     /* <= 250 us */
	histogram_add(&h, 2000000); /* 2 s */
	text = capture(write_histogram, &h);
	assert_non_null(strstr(text, "# HELP x_seconds help text\n# TYPE x_seconds histogram\n"));
	assert_non_null(strstr(text, "x_seconds_bucket{a=\"b\",le=\"0.0001\"} 0\n"));
	assert_non_null(strstr(text, "x_seconds_bucket{a=\"b\",le=\"0.00025\"} 1\n"));
	assert_non_null(strstr(text, "x_seconds_bucket{a=\"b\",le=\"2.5\"} 2\n"));
	assert_non_null(strstr(text, "x_seconds_bucket{a=\"b\",le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(text, "x_seconds_sum{a=\"b\"} 2.000150\n"));
	assert_non_null(strstr(text, "x_seconds_count{a=\"b\"} 2\n"));
	assert_non_null(strstr(text, "y_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(text, "y_seconds_sum 2.000150\n"));
	assert_non_null(strstr(text, "y_seconds_count 2\n"));
	free(text);

	assert_string_equal(prom_escape("a\"b\\c\nd", buf, sizeof(buf)), "a\\\"b\\\\c\\nd");
	assert_string_equal(prom_escape("abcdef", buf, 4), "ab"); /* bounded */
}

/* ---- renderers ------------------------------------------------------------------------ */

static char *render(int (*fn)(const cJSON *, FILE *), const char *json, int *ret)
{
	cJSON *doc = cJSON_Parse(json);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(doc);
	*ret = fn(doc, f);
	fclose(f);
	cJSON_Delete(doc);
	return buf;
}

static void test_status_render(void **state)
{
	static const char doc[] =
		"{\"version\":\"1.2.3\",\"pid\":42,\"uptime_seconds\":125,"
		"\"health\":{\"status\":\"degraded\",\"healthz\":200,\"reason\":\"ok\","
		"\"warnings\":[\"conflict: something\"]},"
		"\"api\":{\"server\":\"https://10.99.0.1:6443\",\"kubeconfig\":\"/k\",\"context\":\"c\","
		"\"user\":\"u\",\"endpoints_api\":\"discovery.k8s.io/v1 EndpointSlices\","
		"\"connected\":true,\"watches\":[{\"kind\":\"Services\",\"resource\":\"Service\","
		"\"state\":\"watching\",\"since_seconds\":3,\"last_data_seconds_ago\":1.5,\"lists\":1,"
		"\"relists\":0,\"watch_restarts\":2,\"stale_reconnects\":0}],"
		"\"errors\":{\"403\":2,\"no answer\":1}},"
		"\"services\":{\"known\":5,\"proxied\":3,\"not_forwarded\":{\"headless\":1},"
		"\"service_ports\":4,\"endpoints\":6,\"ipv4_services\":3,\"ipv6_services\":0},"
		"\"datapath\":{\"service_ports\":4,\"backends\":6,\"groups\":2,\"syncs\":7,"
		"\"sync_failures\":0,\"restorations\":1,\"last_sync\":{\"seconds_ago\":0.25,"
		"\"duration_seconds\":0.0004,\"ok\":true},\"gateway\":{\"enabled\":true,"
		"\"ipv4_forwarding\":true,\"ipv6_forwarding\":false}},"
		"\"dns\":{\"mode\":\"resolved\",\"domain\":\"cluster.local\","
		"\"service\":\"kube-system/kube-dns\",\"servers\":[\"10.96.0.10\"],\"configured\":true,"
		"\"link\":\"kube-annex0\"},\"metrics\":\"127.0.0.1:10256\"}";
	int r;
	char *text = render(status_render, doc, &r);

	assert_int_equal(r, OPERATE_EXIT_DEGRADED);
	assert_non_null(strstr(text, "kube-annex 1.2.3 (pid 42), up 2m 05s: degraded\n"));
	assert_non_null(strstr(text, "connected"));
	assert_non_null(strstr(text, "Service:        watching for 3.0 s, last heard 1.5 s ago"));
	assert_non_null(strstr(text, "HTTP 403 x2, no answer x1"));
	assert_non_null(strstr(text, "5 known, 3 proxied"));
	assert_non_null(strstr(text, "not forwarded: 1 headless (DNS only)"));
	assert_non_null(strstr(text, "last sync 250 ms ago, took 0.40 ms"));
	assert_non_null(strstr(text, "  gateway mode: on, also for connections routed through this "
				     "host (this host forwards IPv4, NOT IPv6)\n"));
	assert_non_null(strstr(text, "resolved: names in ~cluster.local -> 10.96.0.10 "
				     "(kube-system/kube-dns) via kube-annex0: in effect"));
	assert_non_null(strstr(text, "Warnings:     conflict: something\n"));
	free(text);

	text = render(status_render, "{\"health\":{\"status\":\"healthy\",\"reason\":\"ok\"}}", &r);
	assert_int_equal(r, OPERATE_EXIT_OK);
	assert_non_null(strstr(text, "Warnings:     none"));
	free(text);

	/* gateway off; forwarding unknown or not reported (older daemon) */
	text = render(status_render, "{\"datapath\":{\"gateway\":{\"enabled\":false}}}", &r);
	assert_non_null(strstr(text, "  gateway mode: off (this host's own connections only)\n"));
	free(text);
	text = render(status_render, "{\"datapath\":{\"gateway\":{\"enabled\":true,"
			      "\"ipv6_forwarding\":null}}}", &r);
	assert_non_null(strstr(text, "  gateway mode: on, also for connections routed through this "
				     "host\n"));
	free(text);
	text = render(status_render, "{\"datapath\":{}}", &r);
	assert_null(strstr(text, "gateway"));
	free(text);
}

static void test_explain_render(void **state)
{
	static const char svc[] =
		"{\"kind\":\"service\",\"namespace\":\"shop\",\"name\":\"empty\",\"found\":true,"
		"\"type\":\"ClusterIP\",\"cluster_ips\":[\"10.96.0.20\"],"
		"\"ports\":[{\"name\":\"http\",\"protocol\":\"tcp\",\"port\":80}],"
		"\"session_affinity\":{\"type\":\"ClientIP\",\"timeout_seconds\":10800},"
		"\"internal_traffic_policy\":\"Cluster\",\"gateway\":true,"
		"\"entries\":[{\"address\":\"10.96.0.20\",\"protocol\":\"tcp\",\"port\":80,"
		"\"name\":\"shop/empty:http\",\"verdict\":\"reject\",\"backends\":[],"
		"\"programmed\":{\"verdict\":\"reject\",\"backends\":[]},\"in_sync\":true}],"
		"\"endpoints\":[{\"address\":\"10.244.0.11\",\"ports\":[\"http 8080/tcp\"],"
		"\"ready\":false,\"serving\":false,\"terminating\":false,\"in_use\":false,"
		"\"route\":\"via 10.99.0.254 dev eth0\"}],"
		"\"endpoints_ready\":0,\"endpoints_not_ready\":1,"
		"\"reasons\":[\"1 of 1 service ports have no usable endpoint\"],\"reachable\":false}";
	int r;
	char *text = render(explain_render, svc, &r);

	assert_int_equal(r, OPERATE_EXIT_DEGRADED);
	assert_non_null(strstr(text, "Service shop/empty (ClusterIP): NOT reachable\n"));
	assert_non_null(strstr(text, "Why:  1 of 1 service ports have no usable endpoint\n"));
	assert_non_null(strstr(text, "ClientIP (timeout 10800 s; not applied"));
	assert_non_null(strstr(text, "10.96.0.20:80/tcp \"shop/empty:http\": reject; programmed\n"));
	assert_non_null(strstr(text, "Datapath (desired -> programmed in nftables; gateway mode: "
				     "also for machines routing through this host):\n"));
	assert_non_null(strstr(text, "10.244.0.11     not ready"));
	assert_non_null(strstr(text, "route: via 10.99.0.254 dev eth0"));
	free(text);

	text = render(explain_render,
		      "{\"kind\":\"name\",\"name\":\"web.shop.svc.cluster.local\","
		      "\"path\":{\"kind\":\"none\",\"description\":\"no cluster DNS path: off\"},"
		      "\"resolve_error\":\"Name or service not known\",\"addresses\":[],"
		      "\"reasons\":[\"the host's resolver did not resolve it\"],\"reachable\":false}",
		      &r);
	assert_int_equal(r, OPERATE_EXIT_DEGRADED);
	assert_non_null(strstr(text, "DNS path:   no cluster DNS path: off\n"));
	assert_non_null(strstr(text, "Resolver:   Name or service not known\n"));
	free(text);

	text = render(explain_render, "{\"error\":\"cannot parse\"}", &r);
	assert_int_equal(r, OPERATE_EXIT_USAGE);
	free(text);
	text = render(explain_render, "{\"kind\":\"ambiguous\",\"name\":\"web\","
				      "\"candidates\":[\"a/web\",\"b/web\"]}", &r);
	assert_int_equal(r, OPERATE_EXIT_USAGE);
	assert_non_null(strstr(text, "a/web, b/web"));
	free(text);
}

static void test_format_seconds(void **state)
{
	char buf[32];

	assert_string_equal(operate_format_seconds(0.0004, buf, sizeof(buf)), "0.40 ms");
	assert_string_equal(operate_format_seconds(0.0042, buf, sizeof(buf)), "4.2 ms");
	assert_string_equal(operate_format_seconds(0.25, buf, sizeof(buf)), "250 ms");
	assert_string_equal(operate_format_seconds(4.21, buf, sizeof(buf)), "4.2 s");
	assert_string_equal(operate_format_seconds(192, buf, sizeof(buf)), "3m 12s");
	assert_string_equal(operate_format_seconds(7500, buf, sizeof(buf)), "2h 05m");
	assert_string_equal(operate_format_seconds(273600, buf, sizeof(buf)), "3d 04h");
	assert_string_equal(operate_format_seconds(-1, buf, sizeof(buf)), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_address),
		cmocka_unit_test(test_parse_query),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_route_table),
		cmocka_unit_test(test_conflicts),
		cmocka_unit_test(test_prometheus),
		cmocka_unit_test(test_status_render),
		cmocka_unit_test(test_explain_render),
		cmocka_unit_test(test_format_seconds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
