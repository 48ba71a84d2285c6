/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for model/: joins of Services and endpoint sources. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "lib/util.h"
#include "model/model.h"

/* ---- builders ------------------------------------------------------------ */

static struct kube_ip ip(const char *s)
{
	struct kube_ip a;

	assert_int_equal(kube_ip_parse(s, &a), 0);
	return a;
}

/* ports: "name/proto/port" items, NULL-terminated */
static struct kube_service *service(const char *ns, const char *name, const char *vip, ...)
{
	struct kube_service *s = calloc(1, sizeof(*s));
	const char *p;
	va_list ap;

	s->namespace = strdup(ns);
	s->name = strdup(name);
	if (vip) {
		s->cluster_ips = calloc(1, sizeof(*s->cluster_ips));
		s->cluster_ips[0] = ip(vip);
		s->n_cluster_ips = 1;
	}
	va_start(ap, vip);
	while ((p = va_arg(ap, const char *))) {
		char pname[64], proto[8];
		unsigned port;

		assert_int_equal(sscanf(p, "%63[^/]/%7[^/]/%u", pname, proto, &port), 3);
		s->ports = realloc(s->ports, (s->n_ports + 1) * sizeof(*s->ports));
		s->ports[s->n_ports++] = (struct kube_service_port){
			.name = strdup(streq(pname, "-") ? "" : pname),
			.protocol = kube_protocol_parse(proto),
			.port = (uint16_t)port,
		};
	}
	va_end(ap);
	return s;
}

/* endpoints: "ip" (ready), "ip!" (not ready), "ip~" (serving+terminating) */
static struct kube_endpoint_slice *slice(const char *ns, const char *name, const char *svc,
					 int family, const char *port_name, unsigned port, ...)
{
	struct kube_endpoint_slice *s = calloc(1, sizeof(*s));
	const char *e;
	va_list ap;

	s->namespace = strdup(ns);
	s->name = strdup(name);
	s->service_name = svc ? strdup(svc) : NULL;
	s->family = family;
	s->ports = calloc(1, sizeof(*s->ports));
	s->ports[0] = (struct kube_endpoint_port){ .name = strdup(port_name),
						   .protocol = IPPROTO_TCP,
						   .port = (uint16_t)port };
	s->n_ports = 1;
	va_start(ap, port);
	while ((e = va_arg(ap, const char *))) {
		char addr[64];
		size_t len = strlen(e);
		char flag = e[len - 1];
		struct kube_endpoint *ep;

		snprintf(addr, sizeof(addr), "%.*s", (int)(flag == '!' || flag == '~' ? len - 1 : len),
			 e);
		s->endpoints = realloc(s->endpoints, (s->n_endpoints + 1) * sizeof(*s->endpoints));
		ep = &s->endpoints[s->n_endpoints++];
		*ep = (struct kube_endpoint){ .addr = ip(addr) };
		ep->ready = flag != '!' && flag != '~';
		ep->serving = flag != '!';
		ep->terminating = flag == '~';
	}
	va_end(ap);
	return s;
}

static void set_one(struct model *m, struct kube_endpoint_slice *s)
{
	struct kube_endpoint_slice **v = calloc(1, sizeof(*v));
	char ns[64], name[64];

	v[0] = s;
	snprintf(ns, sizeof(ns), "%s", s->namespace);
	snprintf(name, sizeof(name), "%s", s->name);
	assert_int_equal(model_endpoints_set(m, ns, name, v, 1), 0);
}

/* ---- change capture -------------------------------------------------------- */

struct change {
	char key[96];
	bool removed;
	enum model_verdict verdict;
	char comment[MODEL_COMMENT_MAX];
	char backends[512];
	size_t n_backends;
};

struct changes {
	struct change v[32];
	size_t n;
	bool saw_add_before_remove;
};

static void fmt_key(const struct model_key *k, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	snprintf(buf, len, "%s.%s.%u", kube_ip_format(&k->vip, a, sizeof(a)),
		 kube_protocol_name(k->protocol), k->port);
}

static int capture(const struct model_key *key, const struct model_entry *e, void *userdata)
{
	struct changes *c = userdata;
	struct change *ch = &c->v[c->n++];

	assert_true(c->n <= 32);
	fmt_key(key, ch->key, sizeof(ch->key));
	ch->removed = !e;
	if (!e) {
		for (size_t i = 0; i + 1 < c->n; i++)
			if (!c->v[i].removed)
				c->saw_add_before_remove = true;
		return 0;
	}
	ch->verdict = e->verdict;
	snprintf(ch->comment, sizeof(ch->comment), "%s", e->comment);
	ch->n_backends = e->n_backends;
	for (size_t i = 0; i < e->n_backends; i++) {
		char a[INET6_ADDRSTRLEN], b[80];

		snprintf(b, sizeof(b), "%s%s:%u", i ? "," : "",
			 kube_ip_format(&e->backends[i].addr, a, sizeof(a)), e->backends[i].port);
		strncat(ch->backends, b, sizeof(ch->backends) - strlen(ch->backends) - 1);
	}
	return 0;
}

static struct changes flush(struct model *m)
{
	struct changes c = { 0 };

	assert_int_equal(model_flush_changes(m, capture, &c), 0);
	assert_false(model_has_dirty(m));
	return c;
}

static const struct change *find(const struct changes *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (streq(c->v[i].key, key))
			return &c->v[i];
	return NULL;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_join_ready_endpoints(void **state)
{
	struct model *m;
	struct changes c;
	const struct change *ch;
	struct model_stats st;

	assert_int_equal(model_new(&m), 0);
	model_service_set(m, service("shop", "web", "10.96.5.5", "http/TCP/80", NULL));
	set_one(m, slice("shop", "web-abc", "web", AF_INET, "http", 8080, "10.244.1.8",
			 "10.244.1.7", "10.244.1.9!", NULL));
	c = flush(m);
	assert_int_equal(c.n, 1);
	ch = find(&c, "10.96.5.5.tcp.80");
	assert_non_null(ch);
	assert_int_equal(ch->verdict, MODEL_FORWARD);
	assert_string_equal(ch->comment, "shop/web:http");
	/* sorted, the not-ready one left out */
	assert_string_equal(ch->backends, "10.244.1.7:8080,10.244.1.8:8080");
	model_get_stats(m, &st);
	assert_int_equal(st.services, 1);
	assert_int_equal(st.services_proxied, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.endpoints, 2);
	/* nothing changed: nothing reported */
	c = flush(m);
	assert_int_equal(c.n, 0);
	model_free(m);
}

static void test_slice_before_service_and_delete(void **state)
{
	struct model *m;
	struct changes c;

	assert_int_equal(model_new(&m), 0);
	set_one(m, slice("shop", "web-abc", "web", AF_INET, "", 8080, "10.244.1.7", NULL));
	c = flush(m);
	assert_int_equal(c.n, 0);
	model_service_set(m, service("shop", "web", "10.96.5.5", "-/TCP/80", NULL));
	c = flush(m);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.v[0].comment, "shop/web:80");
	assert_string_equal(c.v[0].backends, "10.244.1.7:8080");

	model_endpoints_delete(m, "shop", "web-abc");
	c = flush(m);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.v[0].verdict, MODEL_REJECT);
	assert_int_equal(c.v[0].n_backends, 0);

	model_service_delete(m, "shop", "web");
	c = flush(m);
	assert_int_equal(c.n, 1);
	assert_true(c.v[0].removed);
	assert_string_equal(c.v[0].key, "10.96.5.5.tcp.80");
	c = flush(m);
	assert_int_equal(c.n, 0);
	model_free(m);
}

/* The seed example: named ports map to different target ports. */
static void test_named_ports_endpoints_object(void **state)
{
	struct kube_endpoint_slice **v = calloc(2, sizeof(*v));
	struct model *m;
	struct changes c;

	assert_int_equal(model_new(&m), 0);
	model_service_set(m, service("default", "myservice", "10.96.0.50", "visit-port/TCP/9999",
				     "test-port/TCP/8888", NULL));
	v[0] = slice("default", "myservice", "myservice", AF_INET, "visit-port", 80, "10.0.0.2",
		     "10.0.0.3", NULL);
	v[1] = slice("default", "myservice", "myservice", AF_INET, "test-port", 443, "10.0.0.2",
		     "10.0.0.3", NULL);
	assert_int_equal(model_endpoints_set(m, "default", "myservice", v, 2), 0);
	c = flush(m);
	assert_int_equal(c.n, 2);
	assert_string_equal(find(&c, "10.96.0.50.tcp.9999")->backends, "10.0.0.2:80,10.0.0.3:80");
	assert_string_equal(find(&c, "10.96.0.50.tcp.8888")->backends,
			    "10.0.0.2:443,10.0.0.3:443");
	model_free(m);
}

static void test_terminating_fallback_and_family(void **state)
{
	struct model *m;
	struct changes c;

	assert_int_equal(model_new(&m), 0);
	model_service_set(m, service("a", "s", "10.96.0.1", "p/TCP/80", NULL));
	set_one(m, slice("a", "s-1", "s", AF_INET, "p", 80, "10.0.0.1~", "10.0.0.2!", NULL));
	set_one(m, slice("a", "s-2", "s", AF_INET6, "p", 80, "fd00::1", NULL));
	c = flush(m);
	assert_int_equal(c.n, 1);
	/* no ready IPv4 endpoint: the serving+terminating one is used; the
	 * IPv6 endpoint never is for an IPv4 VIP */
	assert_string_equal(c.v[0].backends, "10.0.0.1:80");
	set_one(m, slice("a", "s-3", "s", AF_INET, "p", 80, "10.0.0.3", NULL));
	c = flush(m);
	assert_string_equal(c.v[0].backends, "10.0.0.3:80");
	model_free(m);
}

static void test_skipped_and_policy(void **state)
{
	struct kube_service *headless = service("a", "h", NULL, "p/TCP/80", NULL);
	struct kube_service *local = service("a", "l", "10.96.0.9", "p/UDP/53", NULL);
	struct model *m;
	struct changes c;

	headless->headless = true;
	local->internal_traffic_local = true;
	assert_string_equal(model_service_skip_reason(headless), "headless Service (DNS only)");
	assert_int_equal(model_new(&m), 0);
	model_service_set(m, headless);
	model_service_set(m, local);
	set_one(m, slice("a", "l-1", "l", AF_INET, "p", 53, "10.0.0.1", NULL));
	c = flush(m);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.v[0].key, "10.96.0.9.udp.53");
	assert_int_equal(c.v[0].verdict, MODEL_DROP);
	model_free(m);
}

/* A ClusterIP moving from a deleted Service to a new one in one flush must
 * end up pointing at the new Service: removals are reported first. */
static void test_vip_reuse_order(void **state)
{
	struct model *m;
	struct changes c;

	assert_int_equal(model_new(&m), 0);
	model_service_set(m, service("a", "old", "10.96.0.7", "p/TCP/80", NULL));
	flush(m);
	model_service_delete(m, "a", "old");
	model_service_set(m, service("a", "new", "10.96.0.7", "p/TCP/80", NULL));
	c = flush(m);
	assert_int_equal(c.n, 2);
	assert_true(c.v[0].removed);
	assert_false(c.v[1].removed);
	assert_string_equal(c.v[1].comment, "a/new:p");
	model_free(m);
}

static void test_port_change_removes_old_key(void **state)
{
	struct model *m;
	struct changes c;

	assert_int_equal(model_new(&m), 0);
	model_service_set(m, service("a", "s", "10.96.0.1", "p/TCP/80", NULL));
	flush(m);
	model_service_set(m, service("a", "s", "10.96.0.1", "p/TCP/81", NULL));
	c = flush(m);
	assert_int_equal(c.n, 2);
	assert_true(find(&c, "10.96.0.1.tcp.80")->removed);
	assert_false(find(&c, "10.96.0.1.tcp.81")->removed);
	model_mark_all_dirty(m);
	c = flush(m);
	assert_int_equal(c.n, 1);
	model_free(m);
}

static void hint(struct kube_endpoint_slice *sl, size_t i, const char *zone)
{
	struct kube_endpoint *ep = &sl->endpoints[i];

	ep->hint_zones = realloc(ep->hint_zones, (ep->n_hint_zones + 1) * sizeof(char *));
	ep->hint_zones[ep->n_hint_zones++] = strdup(zone);
	ep->has_hints = true;
}

static void test_external_ips(void **state)
{
	struct kube_service *svc = service("a", "s", "10.96.0.1", "p/TCP/80", NULL);
	struct model *m;
	struct changes c;

	svc->external_ips = calloc(2, sizeof(*svc->external_ips));
	svc->lb_ips = calloc(1, sizeof(*svc->lb_ips));
	svc->external_ips[0] = ip("192.0.2.10");
	svc->external_ips[1] = ip("10.96.0.1"); /* same as the ClusterIP: once */
	svc->n_external_ips = 2;
	svc->lb_ips[0] = ip("198.51.100.7");
	svc->n_lb_ips = 1;
	svc->internal_traffic_local = true;
	assert_int_equal(model_new(&m), 0);
	model_service_set(m, svc);
	set_one(m, slice("a", "s-1", "s", AF_INET, "p", 8080, "10.0.0.1", NULL));
	c = flush(m);
	assert_int_equal(c.n, 3);
	/* iTP Local drops ClusterIP traffic; the host's own traffic to external
	 * and load-balancer IPs goes to the cluster-wide endpoints */
	assert_int_equal(find(&c, "10.96.0.1.tcp.80")->verdict, MODEL_DROP);
	assert_string_equal(find(&c, "192.0.2.10.tcp.80")->backends, "10.0.0.1:8080");
	assert_string_equal(find(&c, "198.51.100.7.tcp.80")->backends, "10.0.0.1:8080");
	assert_non_null(strstr(model_service_note(svc), "internalTrafficPolicy Local"));

	/* switched off: only the ClusterIP stays */
	model_set_external(m, false);
	c = flush(m);
	assert_int_equal(c.n, 3);
	assert_true(find(&c, "192.0.2.10.tcp.80")->removed);
	assert_true(find(&c, "198.51.100.7.tcp.80")->removed);
	model_free(m);
}

static void test_zone_hints(void **state)
{
	struct kube_endpoint_slice *sl;
	struct model *m;
	struct changes c;

	assert_int_equal(model_new(&m), 0);
	model_service_set(m, service("a", "s", "10.96.0.1", "p/TCP/80", NULL));
	sl = slice("a", "s-1", "s", AF_INET, "p", 80, "10.0.0.1", "10.0.0.2", "10.0.0.3", NULL);
	hint(sl, 0, "zone-a");
	hint(sl, 1, "zone-b");
	hint(sl, 2, "zone-a");
	set_one(m, sl);
	c = flush(m);
	assert_string_equal(c.v[0].backends, "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80");

	model_set_zone(m, "zone-a");
	c = flush(m);
	assert_string_equal(c.v[0].backends, "10.0.0.1:80,10.0.0.3:80");

	/* no endpoint hinted for our zone: all of them */
	model_set_zone(m, "zone-c");
	c = flush(m);
	assert_string_equal(c.v[0].backends, "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80");

	/* one ready endpoint without hints: hints are ignored */
	model_set_zone(m, "zone-a");
	sl = slice("a", "s-1", "s", AF_INET, "p", 80, "10.0.0.1", "10.0.0.2", NULL);
	hint(sl, 0, "zone-a");
	set_one(m, sl);
	c = flush(m);
	assert_string_equal(c.v[0].backends, "10.0.0.1:80,10.0.0.2:80");
	model_free(m);
}

static void test_service_get_and_notes(void **state)
{
	struct kube_service *ext = service("a", "e", NULL, "p/TCP/80", NULL);
	struct model *m;

	ext->type = KUBE_SERVICE_EXTERNAL_NAME;
	assert_int_equal(model_new(&m), 0);
	model_service_set(m, ext);
	model_service_set(m, service("kube-system", "kube-dns", "10.96.0.10", "dns/UDP/53", NULL));
	assert_non_null(model_service_get(m, "kube-system", "kube-dns"));
	assert_null(model_service_get(m, "kube-system", "nope"));
	assert_string_equal(model_service_note(model_service_get(m, "a", "e")),
			    "not proxied: ExternalName Service (DNS only)");
	assert_null(model_service_note(model_service_get(m, "kube-system", "kube-dns")));
	model_free(m);
}

/* A ClusterIP-type Service that is not headless but has no ClusterIP (a
 * real API server always allocates one; a broken or hand-fed one may not):
 * not proxied, with a reason, and its endpoints program nothing. */
static void test_no_cluster_ip(void **state)
{
	struct kube_service *svc = service("a", "n", NULL, "p/TCP/80", NULL);
	struct model *m;
	struct changes c;

	assert_false(svc->headless);
	assert_string_equal(model_service_skip_reason(svc), "no ClusterIP");
	assert_int_equal(model_new(&m), 0);
	model_service_set(m, svc);
	set_one(m, slice("a", "n-1", "n", AF_INET, "p", 80, "10.0.0.1", NULL));
	c = flush(m);
	assert_int_equal(c.n, 0);
	assert_string_equal(model_service_note(model_service_get(m, "a", "n")),
			    "not proxied: no ClusterIP");
	model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_join_ready_endpoints),
		cmocka_unit_test(test_slice_before_service_and_delete),
		cmocka_unit_test(test_named_ports_endpoints_object),
		cmocka_unit_test(test_terminating_fallback_and_family),
		cmocka_unit_test(test_skipped_and_policy),
		cmocka_unit_test(test_vip_reuse_order),
		cmocka_unit_test(test_port_change_removes_old_key),
		cmocka_unit_test(test_external_ips),
		cmocka_unit_test(test_zone_hints),
		cmocka_unit_test(test_service_get_and_notes),
		cmocka_unit_test(test_no_cluster_ip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
