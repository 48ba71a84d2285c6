/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for conntrack/'s plan: which UDP conntrack entries go. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "conntrack/conntrack.h"
#include "lib/util.h"

/* ---- builders ------------------------------------------------------------ */

static struct kube_ip ip(const char *s)
{
	struct kube_ip a;

	assert_int_equal(kube_ip_parse(s, &a), 0);
	return a;
}

static struct model_key key(const char *vip, int protocol, uint16_t port)
{
	return (struct model_key){ .vip = ip(vip), .protocol = protocol, .port = port };
}

/* An entry that load-balances over "ip,port" endpoints (NULL-terminated);
 * none: it rejects. Free with entry_free(). */
static struct model_entry *entry(const struct model_key *k, const char *comment, ...)
{
	struct model_entry *e = calloc(1, sizeof(*e));
	const char *s;
	va_list ap;

	e->vip = k->vip;
	e->protocol = k->protocol;
	e->port = k->port;
	snprintf(e->comment, sizeof(e->comment), "%s", comment);
	e->backends = calloc(8, sizeof(*e->backends));
	va_start(ap, comment);
	while ((s = va_arg(ap, const char *))) {
		char addr[64];
		unsigned port;

		assert_int_equal(sscanf(s, "%63[^,],%u", addr, &port), 2);
		e->backends[e->n_backends++] = (struct model_backend){ ip(addr), (uint16_t)port };
	}
	va_end(ap);
	e->verdict = e->n_backends ? MODEL_FORWARD : MODEL_REJECT;
	return e;
}

static void entry_free(struct model_entry *e)
{
	free(e->backends);
	free(e);
}

/* Would the UDP (or protocol) flow client -> vip:port, answered by
 * reply:rport, be deleted? */
static bool doomed(struct ct_plan *p, int protocol, const char *vip, uint16_t port,
		   const char *reply, uint16_t rport)
{
	struct ct_flow f = {
		.protocol = protocol,
		.orig_dst = ip(vip),
		.orig_dport = port,
		.reply_src = ip(reply),
		.reply_sport = rport,
	};

	return ct_plan_match(p, &f) != NULL;
}

static struct ct_plan *plan(void)
{
	struct ct_plan *p;

	assert_int_equal(ct_plan_new(&p), 0);
	return p;
}

/* ---- tests --------------------------------------------------------------- */

static void test_lost_endpoint(void **state)
{
	struct ct_plan *p = plan();
	struct model_key k = key("10.96.0.10", IPPROTO_UDP, 53);
	struct model_entry *before = entry(&k, "kube-system/dns:dns", "10.244.0.11,8080",
					   "10.244.0.12,8080", NULL);
	struct model_entry *after = entry(&k, "kube-system/dns:dns", "10.244.0.12,8080", NULL);

	assert_int_equal(ct_plan_note(p, &k, before, after), 0);
	assert_int_equal(ct_plan_finish(p), 1);
	/* to the endpoint that left: deleted; to the one that stays: kept */
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.10", 53, "10.244.0.11", 8080));
	assert_false(doomed(p, IPPROTO_UDP, "10.96.0.10", 53, "10.244.0.12", 8080));
	/* same address, another target port: not an endpoint of this key */
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.10", 53, "10.244.0.12", 9090));
	/* never translated (answered by the VIP itself): deleted too */
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.10", 53, "10.96.0.10", 53));
	/* other VIPs, ports and protocols are none of its business */
	assert_false(doomed(p, IPPROTO_UDP, "10.96.0.11", 53, "10.244.0.11", 8080));
	assert_false(doomed(p, IPPROTO_UDP, "10.96.0.10", 54, "10.244.0.11", 8080));
	assert_false(doomed(p, IPPROTO_TCP, "10.96.0.10", 53, "10.244.0.11", 8080));
	assert_false(doomed(p, IPPROTO_SCTP, "10.96.0.10", 53, "10.244.0.11", 8080));
	entry_free(before);
	entry_free(after);
	ct_plan_free(p);
}

static void test_nothing_lost(void **state)
{
	struct ct_plan *p = plan();
	struct model_key k = key("10.96.0.10", IPPROTO_UDP, 53);
	struct model_entry *before = entry(&k, "a/b:dns", "10.244.0.11,8080", NULL);
	struct model_entry *grown = entry(&k, "a/b:dns", "10.244.0.12,8080", "10.244.0.11,8080",
					  NULL);

	/* an endpoint added, the other kept (in another order): nothing to do */
	assert_int_equal(ct_plan_note(p, &k, before, grown), 0);
	assert_int_equal(ct_plan_finish(p), 0);
	assert_false(doomed(p, IPPROTO_UDP, "10.96.0.10", 53, "10.96.0.10", 53));
	/* the same, staged again unchanged */
	assert_int_equal(ct_plan_note(p, &k, before, before), 0);
	assert_int_equal(ct_plan_finish(p), 0);
	entry_free(before);
	entry_free(grown);
	ct_plan_free(p);
}

static void test_service_gone_and_scaled_to_zero(void **state)
{
	struct ct_plan *p = plan();
	struct model_key gone = key("10.96.0.20", IPPROTO_UDP, 8125);
	struct model_key zero = key("10.96.0.21", IPPROTO_UDP, 8125);
	struct model_entry *b1 = entry(&gone, "m/statsd:8125", "10.244.0.11,8125", NULL);
	struct model_entry *b2 = entry(&zero, "m/other:8125", "10.244.0.11,8125", NULL);
	struct model_entry *rejecting = entry(&zero, "m/other:8125", NULL);

	assert_int_equal(ct_plan_note(p, &gone, b1, NULL), 0);
	assert_int_equal(ct_plan_note(p, &zero, b2, rejecting), 0);
	assert_int_equal(ct_plan_finish(p), 2);
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.20", 8125, "10.244.0.11", 8125));
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.21", 8125, "10.244.0.11", 8125));
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.21", 8125, "10.244.0.12", 8125));
	entry_free(b1);
	entry_free(b2);
	entry_free(rejecting);
	ct_plan_free(p);
}

static void test_first_endpoint(void **state)
{
	struct ct_plan *p = plan();
	struct model_key k = key("10.96.0.30", IPPROTO_UDP, 514);
	struct model_entry *rejecting = entry(&k, "l/syslog:514", NULL);
	struct model_entry *up = entry(&k, "l/syslog:514", "10.244.0.13,514", NULL);

	/* a rejecting key that stays rejecting: nothing */
	assert_int_equal(ct_plan_note(p, &k, NULL, rejecting), 0);
	assert_int_equal(ct_plan_finish(p), 0);
	/* its first endpoint: flows that never got translated go */
	assert_int_equal(ct_plan_note(p, &k, rejecting, up), 0);
	assert_int_equal(ct_plan_finish(p), 1);
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.30", 514, "10.96.0.30", 514));
	assert_false(doomed(p, IPPROTO_UDP, "10.96.0.30", 514, "10.244.0.13", 514));
	entry_free(rejecting);
	entry_free(up);
	ct_plan_free(p);
}

static void test_only_udp_noted(void **state)
{
	struct ct_plan *p = plan();
	struct model_key k = key("10.96.0.10", IPPROTO_TCP, 53);
	struct model_entry *before = entry(&k, "a/b:dns-tcp", "10.244.0.11,8080", NULL);

	assert_int_equal(ct_plan_note(p, &k, before, NULL), 0);
	assert_int_equal(ct_plan_finish(p), 0);
	assert_false(doomed(p, IPPROTO_TCP, "10.96.0.10", 53, "10.244.0.11", 8080));
	assert_false(doomed(p, IPPROTO_UDP, "10.96.0.10", 53, "10.244.0.11", 8080));
	entry_free(before);
	ct_plan_free(p);
}

/* The first note fixes "before": a key removed and re-added in one sync,
 * or changed again by a retry after a failed commit (the datapath then
 * reports nothing committed), is judged against what the kernel held. */
static void test_notes_add_up(void **state)
{
	struct ct_plan *p = plan();
	struct model_key k = key("10.96.0.10", IPPROTO_UDP, 53);
	struct model_entry *before = entry(&k, "a/b:dns", "10.244.0.11,8080", "10.244.0.12,8080",
					   NULL);
	struct model_entry *later = entry(&k, "a/b:dns", "10.244.0.12,8080", "10.244.0.13,8080",
					  NULL);

	assert_int_equal(ct_plan_note(p, &k, before, NULL), 0);
	assert_int_equal(ct_plan_note(p, &k, NULL, later), 0);
	assert_int_equal(ct_plan_finish(p), 1);
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.10", 53, "10.244.0.11", 8080));
	assert_false(doomed(p, IPPROTO_UDP, "10.96.0.10", 53, "10.244.0.13", 8080));
	/* the endpoint comes back before the cleanup ran: nothing to do */
	assert_int_equal(ct_plan_note(p, &k, NULL, before), 0);
	assert_int_equal(ct_plan_finish(p), 0);
	entry_free(before);
	entry_free(later);
	ct_plan_free(p);
}

static void test_ipv6(void **state)
{
	struct ct_plan *p = plan();
	struct model_key k6 = key("fd00:96::5", IPPROTO_UDP, 53);
	struct model_key k4 = key("10.96.0.5", IPPROTO_UDP, 53);
	struct model_entry *b6 = entry(&k6, "a/b:dns", "fd00:244::11,8080", "fd00:244::12,8080", NULL);
	struct model_entry *a6 = entry(&k6, "a/b:dns", "fd00:244::12,8080", NULL);
	struct model_entry *b4 = entry(&k4, "a/b:dns", "10.244.0.11,8080", NULL);
	struct model_key only;

	assert_int_equal(ct_plan_note(p, &k6, b6, a6), 0);
	assert_int_equal(ct_plan_note(p, &k4, b4, NULL), 0);
	assert_int_equal(ct_plan_finish(p), 2);
	assert_true(doomed(p, IPPROTO_UDP, "fd00:96::5", 53, "fd00:244::11", 8080));
	assert_false(doomed(p, IPPROTO_UDP, "fd00:96::5", 53, "fd00:244::12", 8080));
	assert_false(doomed(p, IPPROTO_UDP, "fd00:96::6", 53, "fd00:244::11", 8080));
	assert_false(doomed(p, IPPROTO_UDP, "fd00:96::5", 54, "fd00:244::11", 8080));
	/* the IPv4 key went away: its flows go, whoever answers them */
	assert_true(doomed(p, IPPROTO_UDP, "10.96.0.5", 53, "10.244.0.12", 8080));
	assert_int_equal(ct_plan_keys(p, AF_INET6, &only), 1);
	assert_true(kube_ip_equal(&only.vip, &k6.vip));
	assert_int_equal(only.port, 53);
	assert_int_equal(only.protocol, IPPROTO_UDP);
	assert_int_equal(ct_plan_keys(p, AF_INET, NULL), 1);
	entry_free(b6);
	entry_free(a6);
	entry_free(b4);
	ct_plan_free(p);
}

struct seen {
	char text[256];
};

static void collect(const struct model_key *k, const char *comment, uint64_t deleted,
		    void *userdata)
{
	struct seen *s = userdata;
	char vip[INET6_ADDRSTRLEN];
	size_t len = strlen(s->text);

	snprintf(s->text + len, sizeof(s->text) - len, "%s %s:%u %" PRIu64 ";", comment,
		 kube_ip_format(&k->vip, vip, sizeof(vip)), k->port, deleted);
}

static void test_counts_and_clear(void **state)
{
	struct ct_plan *p = plan();
	struct model_key k = key("10.96.0.10", IPPROTO_UDP, 53);
	struct model_entry *before = entry(&k, "kube-system/dns:dns", "10.244.0.11,8080", NULL);
	struct ct_flow f = { IPPROTO_UDP, ip("10.96.0.10"), 53, ip("10.244.0.11"), 8080 };
	struct seen s = {};
	struct ct_target *t;

	assert_int_equal(ct_plan_note(p, &k, before, NULL), 0);
	assert_int_equal(ct_plan_finish(p), 1);
	t = ct_plan_match(p, &f);
	assert_non_null(t);
	ct_target_deleted(t);
	ct_target_deleted(t);
	ct_plan_foreach(p, collect, &s);
	/* a removed key keeps the name it had */
	assert_string_equal(s.text, "kube-system/dns:dns 10.96.0.10:53 2;");
	ct_plan_reset_counts(p);
	s.text[0] = 0;
	ct_plan_foreach(p, collect, &s);
	assert_string_equal(s.text, "kube-system/dns:dns 10.96.0.10:53 0;");
	ct_plan_clear(p);
	assert_int_equal(ct_plan_finish(p), 0);
	assert_null(ct_plan_match(p, &f));
	entry_free(before);
	ct_plan_free(p);
	assert_null(ct_plan_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lost_endpoint),
		cmocka_unit_test(test_nothing_lost),
		cmocka_unit_test(test_service_gone_and_scaled_to_zero),
		cmocka_unit_test(test_first_endpoint),
		cmocka_unit_test(test_only_udp_noted),
		cmocka_unit_test(test_notes_add_up),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_counts_and_clear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
