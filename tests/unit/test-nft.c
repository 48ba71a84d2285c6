/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nft/ against the real kernel, in a private network namespace, checked the
 * way a user would: `nft list table ip kube-annex`, and whether that
 * listing loads again with `nft -f`.
 *
 * Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for unshare) and the nft
 * binary; exits 77 with a reason otherwise.
 *
 * KUBE_ANNEX_NFT_BENCH=SERVICESxENDPOINTS (e.g. 10000x10) also times a
 * cold commit and single changes and prints the figures (no assertions;
 * build without sanitizers for meaningful numbers).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "lib/log.h"
#include "nft/nft.h"

#define MAX_BACKENDS 64

struct svc {
	struct model_key key;
	struct model_entry entry;
	struct model_backend backends[MAX_BACKENDS];
};

/* ---- helpers ------------------------------------------------------------ */

static void ip_parse(const char *s, struct kube_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	ip->family = strchr(s, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(ip->family, s, ip->bytes), 1);
}

static void svc_init(struct svc *s, const char *vip, int proto, uint16_t port,
		     enum model_verdict verdict, const char *comment)
{
	memset(s, 0, sizeof(*s));
	ip_parse(vip, &s->key.vip);
	s->key.protocol = proto;
	s->key.port = port;
	s->entry.vip = s->key.vip;
	s->entry.protocol = proto;
	s->entry.port = port;
	s->entry.verdict = verdict;
	snprintf(s->entry.comment, sizeof(s->entry.comment), "%s", comment);
}

static void svc_backend(struct svc *s, const char *addr, uint16_t port)
{
	struct model_backend *b = &s->backends[s->entry.n_backends++];

	assert_true(s->entry.n_backends <= MAX_BACKENDS);
	ip_parse(addr, &b->addr);
	b->port = port;
}

/* "10.244.1." + 1..count, port 8080 */
static void svc_backends(struct svc *s, const char *prefix, size_t count)
{
	char buf[64];

	for (size_t i = 1; i <= count; i++) {
		snprintf(buf, sizeof(buf), "%s%zu", prefix, i);
		svc_backend(s, buf, 8080);
	}
}

static int svc_stage(struct nft *n, struct svc *s)
{
	s->entry.backends = s->backends;
	return nft_stage(n, &s->key, &s->entry);
}

static int svc_unstage(struct nft *n, struct svc *s)
{
	return nft_stage(n, &s->key, NULL);
}

static void commit_ok(struct nft *n)
{
	char *error = NULL;
	int r = nft_commit(n, &error);

	if (r < 0)
		fail_msg("nft_commit: %s", error ?: strerror(-r));
	assert_null(error);
}

static uint64_t messages_last(struct nft *n)
{
	struct nft_stats st;

	nft_get_stats(n, &st);
	return st.messages_last;
}

static char *run(const char *cmd, int *ret_status)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f, *p;
	char buf[4096];
	size_t r;
	int status;

	f = open_memstream(&out, &len);
	assert_non_null(f);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((r = fread(buf, 1, sizeof(buf), p)) > 0)
		fwrite(buf, 1, r, f);
	status = pclose(p);
	fclose(f);
	if (ret_status)
		*ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return out;
}

/* The table as `nft list table` prints it, whitespace runs folded to one
 * space so that line wrapping does not matter. */
static char *listing(const char *family)
{
	char cmd[128];
	char *out, *w;
	int status;

	snprintf(cmd, sizeof(cmd), "nft list table %s kube-annex 2>&1", family);
	out = run(cmd, &status);
	if (status != 0)
		fail_msg("%s failed: %s", cmd, out);
	w = out;
	for (const char *r = out; *r; r++) {
		bool space = *r == ' ' || *r == '\t' || *r == '\n';

		if (space && (w == out || w[-1] == ' '))
			continue;
		*w++ = space ? ' ' : *r;
	}
	*w = 0;
	return out;
}

/* From "header {" to its closing brace; "" when absent. */
static char *block(const char *text, const char *header)
{
	const char *start = strstr(text, header), *p;
	int depth = 0;

	if (!start)
		return strdup("");
	for (p = start; *p; p++) {
		if (*p == '{')
			depth++;
		else if (*p == '}' && --depth == 0)
			return strndup(start, p - start + 1);
	}
	return strdup(start);
}

/* The whole text goes to stderr: cmocka cuts long failure messages. */
#define assert_contains(hay, needle)                                                  \
	do {                                                                          \
		if (!strstr((hay), (needle))) {                                       \
			fprintf(stderr, "%s\n", (hay));                               \
			fail_msg("missing \"%s\" in the text above", (needle));       \
		}                                                                     \
	} while (0)

#define assert_not_contains(hay, needle)                                              \
	do {                                                                          \
		if (strstr((hay), (needle))) {                                        \
			fprintf(stderr, "%s\n", (hay));                               \
			fail_msg("unexpected \"%s\" in the text above", (needle));    \
		}                                                                     \
	} while (0)

static void assert_block_contains(const char *text, const char *header, const char *needle)
{
	char *b = block(text, header);

	assert_contains(b, needle);
	free(b);
}

static void assert_block_lacks(const char *text, const char *header, const char *needle)
{
	char *b = block(text, header);

	assert_not_contains(b, needle);
	free(b);
}

static size_t count(const char *hay, const char *needle)
{
	const char *p = hay, *end = hay + strlen(hay);
	size_t c = 0, len = strlen(needle);

	/* memmem: strstr would rescan the whole haystack under ASan */
	while ((p = memmem(p, end - p, needle, len))) {
		c++;
		p++;
	}
	return c;
}

static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A listing as a sorted list of its items (elements, statements, lines):
 * the order in which nft prints set elements is the hash's. */
static char *canonical(const char *text)
{
	char *copy = strdup(text), *save = NULL, *tok, *out = NULL;
	char **items = NULL;
	size_t n = 0, len = 0;
	FILE *f;

	assert_non_null(copy);
	for (tok = strtok_r(copy, ",{}\n", &save); tok; tok = strtok_r(NULL, ",{}\n", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (!*tok)
			continue;
		items = reallocarray(items, n + 1, sizeof(*items));
		assert_non_null(items);
		items[n++] = tok;
	}
	qsort(items, n, sizeof(*items), line_cmp);
	f = open_memstream(&out, &len);
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", items[i]);
	fclose(f);
	free(items);
	free(copy);
	return out;
}

static bool table_exists(const char *family)
{
	char cmd[128];
	int status;

	snprintf(cmd, sizeof(cmd), "nft list table %s kube-annex >/dev/null 2>&1", family);
	free(run(cmd, &status));
	return status == 0;
}

/* Nothing nft could not turn back into its own syntax: no raw payload
 * (@nh,...), no bracketed unknown expressions, no bare hex data. */
static void assert_clean_listing(const char *l)
{
	static const char *const bad[] = { "@nh,", "@th,", "@ll,", "@ih,", "[",
					   "unknown expression", "invalid", "0x" };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_not_contains(l, bad[i]);
}

/* ---- fixtures ----------------------------------------------------------- */

static int setup(void **state)
{
	struct nft *n = NULL;

	if (nft_cleanup(NULL) < 0 || nft_new(&n) < 0)
		return -1;
	*state = n;
	return 0;
}

static int teardown(void **state)
{
	nft_free(*state);
	return nft_cleanup(NULL) < 0 ? -1 : 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_layout(void **state)
{
	struct nft *n = *state;
	struct svc one, three, four, rej, drop, empty, sctp, six;
	struct nft_stats st;
	char *l4, *l6;

	svc_init(&one, "10.96.0.1", IPPROTO_TCP, 443, MODEL_FORWARD, "default/kubernetes:https");
	svc_backend(&one, "192.168.1.10", 6443);
	svc_init(&three, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&three, "10.244.1.", 3);
	svc_init(&four, "10.96.0.10", IPPROTO_UDP, 53, MODEL_FORWARD, "kube-system/kube-dns:dns");
	svc_backends(&four, "10.244.2.", 4);
	svc_init(&rej, "10.96.7.7", IPPROTO_TCP, 8080, MODEL_REJECT, "shop/cart:http");
	svc_init(&drop, "10.96.7.8", IPPROTO_TCP, 80, MODEL_DROP, "shop/local:http");
	svc_init(&empty, "10.96.7.9", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/empty:http");
	svc_init(&sctp, "10.96.7.10", IPPROTO_SCTP, 9999, MODEL_FORWARD, "shop/sig:sctp");
	svc_backend(&sctp, "10.244.3.1", 9999);
	svc_init(&six, "fd00:96::5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&six, "fd00:244::", 3);

	assert_true(nft_pending(n));
	assert_int_equal(svc_stage(n, &one), 0);
	assert_int_equal(svc_stage(n, &three), 0);
	assert_int_equal(svc_stage(n, &four), 0);
	assert_int_equal(svc_stage(n, &rej), 0);
	assert_int_equal(svc_stage(n, &drop), 0);
	assert_int_equal(svc_stage(n, &empty), 0);
	assert_int_equal(svc_stage(n, &sctp), 0);
	assert_int_equal(svc_stage(n, &six), 0);
	commit_ok(n);
	assert_false(nft_pending(n));

	nft_get_stats(n, &st);
	assert_int_equal(st.entries, 8);
	assert_int_equal(st.backends, 1 + 3 + 4 + 1 + 3);
	assert_int_equal(st.groups, 4); /* ip: 1, 3, 4; ip6: 3 */
	assert_int_equal(st.commits, 1);

	l4 = listing("ip");
	assert_clean_listing(l4);
	assert_contains(l4, "comment \"rules for kube-annex\"");
	assert_block_contains(l4, "map service-ips {",
			      "type ipv4_addr . inet_proto . inet_service : verdict");
	assert_block_contains(l4, "map service-ips {",
			      "10.96.0.1 . tcp . 443 comment \"default/kubernetes:https\" : goto lb-1");
	assert_block_contains(l4, "map service-ips {",
			      "10.96.5.5 . tcp . 80 comment \"shop/web:http\" : goto lb-3");
	assert_block_contains(l4, "map service-ips {",
			      "10.96.0.10 . udp . 53 comment \"kube-system/kube-dns:dns\" : goto lb-4");
	assert_block_contains(l4, "map service-ips {",
			      "10.96.7.10 . sctp . 9999 comment \"shop/sig:sctp\" : goto lb-1");
	assert_block_lacks(l4, "map service-ips {", "10.96.7.7");

	assert_block_contains(l4, "map backends-3 {",
			      "typeof ip daddr . meta l4proto . th dport . numgen random mod 3 "
			      ": ip daddr . th dport");
	assert_block_contains(l4, "map backends-3 {", "10.96.5.5 . tcp . 80 . 0 : 10.244.1.1 . 8080");
	assert_block_contains(l4, "map backends-3 {", "10.96.5.5 . tcp . 80 . 1 : 10.244.1.2 . 8080");
	assert_block_contains(l4, "map backends-3 {", "10.96.5.5 . tcp . 80 . 2 : 10.244.1.3 . 8080");
	assert_block_contains(l4, "map backends-4 {", "10.96.0.10 . udp . 53 . 3 : 10.244.2.4 . 8080");
	assert_block_contains(l4, "map backends-1 {",
			      "10.96.0.1 . tcp . 443 . 0 : 192.168.1.10 . 6443");
	assert_block_contains(l4, "map backends-1 {", "10.96.7.10 . sctp . 9999 . 0 : 10.244.3.1 . 9999");
	assert_block_contains(l4, "chain lb-3 {",
			      "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 "
			      "map @backends-3");
	assert_block_contains(l4, "chain lb-4 {", "numgen random mod 4 map @backends-4");

	assert_block_contains(l4, "map no-endpoint-services {",
			      "10.96.7.7 . tcp . 8080 comment \"shop/cart:http\" : goto reject-chain");
	assert_block_contains(l4, "map no-endpoint-services {",
			      "10.96.7.8 . tcp . 80 comment \"shop/local:http\" : drop");
	assert_block_contains(l4, "map no-endpoint-services {",
			      "10.96.7.9 . tcp . 80 comment \"shop/empty:http\" : goto reject-chain");
	assert_block_contains(l4, "chain reject-chain {", "reject");

	for (const char *vip = "10.96.0.1\00010.96.5.5\00010.96.0.10\00010.96.7.7\000"
			       "10.96.7.8\00010.96.7.9\00010.96.7.10\0";
	     *vip; vip += strlen(vip) + 1)
		assert_block_contains(l4, "set cluster-ips {", vip);

	assert_block_contains(l4, "chain nat-output {", "type nat hook output priority -100;");
	assert_block_contains(l4, "chain nat-output {",
			      "ip daddr . meta l4proto . th dport vmap @service-ips");
	assert_block_contains(l4, "chain filter-output {",
			      "type filter hook output priority filter;");
	assert_block_contains(l4, "chain filter-output {",
			      "ct state new ip daddr . meta l4proto . th dport vmap "
			      "@no-endpoint-services");
	assert_block_contains(l4, "chain filter-output {",
			      "ct state new ip daddr @cluster-ips reject comment "
			      "\"reject traffic to unknown ports of ClusterIPs\"");
	assert_not_contains(l4, "fd00");
	/* Not a gateway by default. */
	assert_not_contains(l4, "nat-prerouting");

	l6 = listing("ip6");
	assert_clean_listing(l6);
	assert_block_contains(l6, "map service-ips {",
			      "type ipv6_addr . inet_proto . inet_service : verdict");
	assert_block_contains(l6, "map service-ips {",
			      "fd00:96::5 . tcp . 80 comment \"shop/web:http\" : goto lb-3");
	assert_block_contains(l6, "map backends-3 {",
			      "typeof ip6 daddr . meta l4proto . th dport . numgen random mod 3 "
			      ": ip6 daddr . th dport");
	assert_block_contains(l6, "map backends-3 {", "fd00:96::5 . tcp . 80 . 2 : fd00:244::3 . 8080");
	assert_block_contains(l6, "chain lb-3 {", "dnat ip6 to ip6 daddr");
	assert_block_contains(l6, "set cluster-ips {", "fd00:96::5");
	assert_block_contains(l6, "chain nat-output {",
			      "ip6 daddr . meta l4proto . th dport vmap @service-ips");
	assert_not_contains(l6, "10.96.");
	free(l4);
	free(l6);
}

static void test_empty_tables(void **state)
{
	struct nft *n = *state;
	char *l;

	assert_true(nft_pending(n));
	commit_ok(n);
	assert_false(nft_pending(n));
	l = listing("ip");
	assert_contains(l, "map service-ips {");
	assert_contains(l, "chain nat-output {");
	assert_not_contains(l, "backends-");
	free(l);
	assert_true(table_exists("ip6"));
}

static void test_backend_change(void **state)
{
	struct nft *n = *state;
	struct svc s;
	char *l;

	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "10.244.1.", 3);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);

	/* .2 leaves, .4 comes: the model's sorted order would shift .3, but
	 * slots stay put, so only slot 1 changes: one delete, one add. */
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backend(&s, "10.244.1.1", 8080);
	svc_backend(&s, "10.244.1.3", 8080);
	svc_backend(&s, "10.244.1.4", 8080);
	assert_int_equal(svc_stage(n, &s), 0);
	assert_true(nft_pending(n));
	commit_ok(n);
	assert_int_equal(messages_last(n), 4); /* begin, delete, add, end */

	l = listing("ip");
	assert_block_contains(l, "map backends-3 {", "10.96.5.5 . tcp . 80 . 0 : 10.244.1.1 . 8080");
	assert_block_contains(l, "map backends-3 {", "10.96.5.5 . tcp . 80 . 1 : 10.244.1.4 . 8080");
	assert_block_contains(l, "map backends-3 {", "10.96.5.5 . tcp . 80 . 2 : 10.244.1.3 . 8080");
	assert_block_lacks(l, "map backends-3 {", "10.244.1.2 ");
	free(l);

	/* A port change is a backend change too. */
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backend(&s, "10.244.1.1", 8080);
	svc_backend(&s, "10.244.1.3", 9090);
	svc_backend(&s, "10.244.1.4", 8080);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	assert_int_equal(messages_last(n), 4);
	l = listing("ip");
	assert_block_contains(l, "map backends-3 {", "10.96.5.5 . tcp . 80 . 2 : 10.244.1.3 . 9090");
	free(l);
}

static void test_identical(void **state)
{
	struct nft *n = *state;
	struct nft_stats st;
	struct svc s, t;

	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "10.244.1.", 5);
	svc_init(&t, "10.96.5.6", IPPROTO_UDP, 53, MODEL_REJECT, "shop/dns:dns");
	assert_int_equal(svc_stage(n, &s), 0);
	assert_int_equal(svc_stage(n, &t), 0);
	commit_ok(n);
	nft_get_stats(n, &st);

	/* Same state again, backends in another order: nothing to do. */
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	for (int i = 5; i >= 1; i--) {
		char a[32];

		snprintf(a, sizeof(a), "10.244.1.%d", i);
		svc_backend(&s, a, 8080);
	}
	assert_int_equal(svc_stage(n, &s), 0);
	assert_int_equal(svc_stage(n, &t), 0);
	assert_false(nft_pending(n));
	commit_ok(n);
	assert_int_equal(messages_last(n), 0);

	/* A change staged and then undone before the commit: nothing either. */
	svc_backends(&t, "10.244.9.", 1);
	t.entry.verdict = MODEL_FORWARD;
	assert_int_equal(svc_stage(n, &t), 0);
	assert_true(nft_pending(n));
	svc_init(&t, "10.96.5.6", IPPROTO_UDP, 53, MODEL_REJECT, "shop/dns:dns");
	assert_int_equal(svc_stage(n, &t), 0);
	assert_false(nft_pending(n));
	/* Removing a key that was never committed: nothing. */
	svc_init(&t, "10.96.9.9", IPPROTO_TCP, 1, MODEL_FORWARD, "");
	assert_int_equal(svc_unstage(n, &t), 0);
	assert_false(nft_pending(n));
	commit_ok(n);
	assert_int_equal(messages_last(n), 0);
	nft_get_stats(n, &st);
	assert_int_equal(st.commits, 1);
}

static void test_three_to_four(void **state)
{
	struct nft *n = *state;
	struct nft_stats st;
	struct svc s, other;
	char *l;

	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "10.244.1.", 3);
	svc_init(&other, "10.96.5.6", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/api:http");
	svc_backends(&other, "10.244.2.", 2);
	assert_int_equal(svc_stage(n, &s), 0);
	assert_int_equal(svc_stage(n, &other), 0);
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_int_equal(st.groups, 2);

	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "10.244.1.", 4);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_int_equal(st.commits, 2);
	assert_int_equal(st.backends, 4 + 2);
	/* begin; map, chain, rule of group 4; delete service element and 3
	 * backends; add 4 backends and the service element; end */
	assert_int_equal(st.messages_last, 9);

	l = listing("ip");
	assert_block_contains(l, "map service-ips {",
			      "10.96.5.5 . tcp . 80 comment \"shop/web:http\" : goto lb-4");
	assert_block_lacks(l, "map service-ips {", "goto lb-3");
	for (int i = 0; i < 4; i++) {
		char e[96];

		snprintf(e, sizeof(e), "10.96.5.5 . tcp . 80 . %d : 10.244.1.%d . 8080", i, i + 1);
		assert_block_contains(l, "map backends-4 {", e);
	}
	/* Group 3 is empty but stays until a later commit. */
	assert_contains(l, "map backends-3 {");
	assert_block_lacks(l, "map backends-3 {", "10.96.5.5");
	assert_contains(l, "chain lb-3 {");
	assert_int_equal(st.groups, 3);
	free(l);

	/* A commit soon after leaves it; one a while later removes it, while
	 * groups in use stay. */
	svc_init(&other, "10.96.5.6", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/api:http");
	svc_backend(&other, "10.244.2.1", 8080);
	svc_backend(&other, "10.244.2.9", 8080);
	assert_int_equal(svc_stage(n, &other), 0);
	commit_ok(n);
	l = listing("ip");
	assert_contains(l, "chain lb-3 {");
	free(l);

	usleep(1100 * 1000);
	assert_false(nft_pending(n)); /* idle: no commit is asked for */
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_int_equal(st.groups, 2);
	l = listing("ip");
	assert_not_contains(l, "backends-3");
	assert_not_contains(l, "lb-3");
	assert_contains(l, "chain lb-4 {");
	assert_contains(l, "chain lb-2 {");
	assert_block_contains(l, "map backends-2 {", "10.96.5.6 . tcp . 80 . 1 : 10.244.2.9 . 8080");
	free(l);

	/* And 4 -> 3 brings group 3 back. */
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "10.244.1.", 3);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map service-ips {",
			      "10.96.5.5 . tcp . 80 comment \"shop/web:http\" : goto lb-3");
	assert_block_contains(l, "map backends-3 {", "10.96.5.5 . tcp . 80 . 2 : 10.244.1.3 . 8080");
	free(l);
}

static void test_removal(void **state)
{
	struct nft *n = *state;
	struct nft_stats st;
	struct svc http, https, rej;
	char *l;

	svc_init(&http, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&http, "10.244.1.", 2);
	svc_init(&https, "10.96.5.5", IPPROTO_TCP, 443, MODEL_FORWARD, "shop/web:https");
	svc_backends(&https, "10.244.1.", 2);
	svc_init(&rej, "10.96.5.6", IPPROTO_TCP, 80, MODEL_REJECT, "shop/gone:http");
	assert_int_equal(svc_stage(n, &http), 0);
	assert_int_equal(svc_stage(n, &https), 0);
	assert_int_equal(svc_stage(n, &rej), 0);
	commit_ok(n);

	/* One port of two: the VIP stays a ClusterIP. */
	assert_int_equal(svc_unstage(n, &http), 0);
	assert_int_equal(svc_unstage(n, &rej), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_lacks(l, "map service-ips {", "tcp . 80 ");
	assert_block_contains(l, "map service-ips {", "10.96.5.5 . tcp . 443");
	assert_block_lacks(l, "map backends-2 {", "tcp . 80 ");
	assert_block_contains(l, "map backends-2 {", "10.96.5.5 . tcp . 443 . 1 : 10.244.1.2 . 8080");
	assert_block_lacks(l, "map no-endpoint-services {", "10.96.5.6");
	assert_block_contains(l, "set cluster-ips {", "10.96.5.5");
	assert_block_lacks(l, "set cluster-ips {", "10.96.5.6");
	free(l);

	assert_int_equal(svc_unstage(n, &https), 0);
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.backends, 0);
	l = listing("ip");
	assert_not_contains(l, "10.96.5.5");
	assert_not_contains(l, "10.244.");
	free(l);
}

static void test_reject_forward(void **state)
{
	struct nft *n = *state;
	struct svc s;
	char *l;

	/* No endpoints yet: reject. */
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map no-endpoint-services {",
			      "10.96.5.5 . tcp . 80 comment \"shop/web:http\" : goto reject-chain");
	assert_block_lacks(l, "map service-ips {", "10.96.5.5");
	free(l);

	/* Endpoints arrive. */
	svc_backends(&s, "10.244.1.", 1);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_lacks(l, "map no-endpoint-services {", "10.96.5.5");
	assert_block_contains(l, "map service-ips {",
			      "10.96.5.5 . tcp . 80 comment \"shop/web:http\" : goto lb-1");
	assert_block_contains(l, "set cluster-ips {", "10.96.5.5");
	free(l);

	/* Policy drop; then a comment change alone replaces the element. */
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_DROP, "shop/web:http");
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_DROP, "shop/web:\"quoted\"\n");
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map no-endpoint-services {",
			      "10.96.5.5 . tcp . 80 comment \"shop/web:_quoted__\" : drop");
	assert_block_lacks(l, "map service-ips {", "10.96.5.5");
	assert_block_lacks(l, "map backends-1 {", "10.96.5.5");
	free(l);
}

static void test_reparse(void **state)
{
	struct nft *n = *state;
	char path[] = "/tmp/test-nft-XXXXXX";
	struct svc s[4];
	char cmd[256], *before, *after, *out;
	int fd, status;

	svc_init(&s[0], "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s[0], "10.244.1.", 3);
	svc_init(&s[1], "10.96.5.6", IPPROTO_UDP, 53, MODEL_REJECT, "shop/dns:dns");
	svc_init(&s[2], "fd00::5", IPPROTO_SCTP, 7, MODEL_FORWARD, "shop/s:sctp");
	svc_backends(&s[2], "fd01::", 2);
	svc_init(&s[3], "fd00::6", IPPROTO_TCP, 80, MODEL_DROP, "shop/d:http");
	nft_set_gateway(n, true);
	for (size_t i = 0; i < ARRAY_SIZE(s); i++)
		assert_int_equal(svc_stage(n, &s[i]), 0);
	commit_ok(n);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd),
		 "nft list table ip kube-annex > %s && nft list table ip6 kube-annex >> %s", path,
		 path);
	free(run(cmd, &status));
	assert_int_equal(status, 0);
	before = run("nft list ruleset", NULL);
	assert_contains(before, "chain nat-prerouting");
	assert_contains(before, "chain filter-forward");

	/* What nft printed loads back into an empty ruleset, identically. */
	assert_int_equal(nft_cleanup(NULL), 0);
	snprintf(cmd, sizeof(cmd), "nft -c -f %s 2>&1", path);
	out = run(cmd, &status);
	if (status != 0)
		fail_msg("nft -c -f of the listing: %s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "nft -f %s 2>&1", path);
	out = run(cmd, &status);
	if (status != 0)
		fail_msg("nft -f of the listing: %s", out);
	free(out);
	after = run("nft list ruleset", NULL);
	{
		char *a = canonical(before), *b = canonical(after);

		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	unlink(path);
	free(before);
	free(after);
}

static void test_external_delete(void **state)
{
	struct nft *n = *state;
	struct svc s;
	char *error = NULL, *l;
	int r;

	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "10.244.1.", 3);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);

	/* Somebody removes our table behind our back. */
	free(run("nft delete table ip kube-annex", &r));
	assert_int_equal(r, 0);
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "10.244.2.", 3);
	assert_int_equal(svc_stage(n, &s), 0);
	r = nft_commit(n, &error);
	assert_int_equal(r, -ENOENT);
	assert_non_null(error);
	assert_contains(error, "ip kube-annex");
	assert_contains(error, "backends-3");
	free(error);
	/* The committed copy is gone: the next commit rebuilds. */
	assert_true(nft_pending(n));

	nft_reset(n);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map service-ips {",
			      "10.96.5.5 . tcp . 80 comment \"shop/web:http\" : goto lb-3");
	assert_block_contains(l, "map backends-3 {", "10.96.5.5 . tcp . 80 . 2 : 10.244.2.3 . 8080");
	assert_block_contains(l, "set cluster-ips {", "10.96.5.5");
	free(l);
}

/* A daemon restart: a new instance replaces the old table in one go. */
static void test_restart(void **state)
{
	struct nft *n = *state, *m = NULL;
	struct svc old, cur;
	char *l;

	svc_init(&old, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/old:http");
	svc_backends(&old, "10.244.1.", 7);
	assert_int_equal(svc_stage(n, &old), 0);
	commit_ok(n);

	assert_int_equal(nft_new(&m), 0);
	svc_init(&cur, "10.96.5.6", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/new:http");
	svc_backends(&cur, "10.244.2.", 2);
	assert_int_equal(svc_stage(m, &cur), 0);
	commit_ok(m);
	nft_free(m);

	l = listing("ip");
	assert_not_contains(l, "10.96.5.5");
	assert_not_contains(l, "lb-7");
	assert_block_contains(l, "map backends-2 {", "10.96.5.6 . tcp . 80 . 1 : 10.244.2.2 . 8080");
	free(l);
}

static void test_cleanup_twice(void **state)
{
	struct nft *n = *state;
	char *error = NULL;
	struct svc s;

	svc_init(&s, "fd00::5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "fd01::", 2);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	assert_true(table_exists("ip"));
	assert_true(table_exists("ip6"));

	assert_int_equal(nft_cleanup(&error), 0);
	assert_null(error);
	assert_false(table_exists("ip"));
	assert_false(table_exists("ip6"));
	assert_int_equal(nft_cleanup(&error), 0);
	assert_null(error);
}

static void test_invalid(void **state)
{
	struct nft *n = *state;
	struct svc s;

	svc_init(&s, "10.96.5.5", IPPROTO_ICMP, 80, MODEL_FORWARD, "x");
	assert_int_equal(svc_stage(n, &s), -EPROTONOSUPPORT);
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 0, MODEL_FORWARD, "x");
	assert_int_equal(svc_stage(n, &s), -EINVAL);
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "x");
	s.key.vip.family = AF_UNSPEC;
	assert_int_equal(svc_stage(n, &s), -EAFNOSUPPORT);
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "x");
	svc_backend(&s, "fd00::1", 80); /* wrong family */
	assert_int_equal(svc_stage(n, &s), -EINVAL);
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "x");
	svc_backend(&s, "10.0.0.1", 0);
	assert_int_equal(svc_stage(n, &s), -EINVAL);
	commit_ok(n);
	{
		char *l = listing("ip");

		assert_not_contains(l, "10.96.5.5");
		free(l);
	}
}

/* Enough elements for many messages and several batch pages. */
static void test_many(void **state)
{
	struct nft *n = *state;
	const int services = 3000, per = 10;
	struct nft_stats st;
	char *out;
	int status;

	for (int i = 0; i < services; i++) {
		struct svc s;
		char vip[32], prefix[32];

		snprintf(vip, sizeof(vip), "10.96.%d.%d", i / 250, i % 250 + 1);
		snprintf(prefix, sizeof(prefix), "10.%d.%d.", 100 + i / 250, i % 250);
		svc_init(&s, vip, IPPROTO_TCP, 80, MODEL_FORWARD, "some-namespace/some-service:http");
		svc_backends(&s, prefix, per);
		assert_int_equal(svc_stage(n, &s), 0);
	}
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_int_equal(st.entries, services);
	assert_int_equal(st.backends, services * per);
	assert_true(st.messages_last > 20);

	out = run("nft list map ip kube-annex backends-10", &status);
	assert_int_equal(status, 0);
	assert_int_equal(count(out, " : 10."), services * per);
	assert_contains(out, "10.96.11.250 . tcp . 80 . 9 : 10.111.249.10 . 8080");
	free(out);
	out = run("nft list map ip kube-annex service-ips", &status);
	assert_int_equal(status, 0);
	assert_int_equal(count(out, "goto lb-10"), services);
	free(out);
}

/* ---- benchmark (opt-in) ------------------------------------------------- */

static void bench_entry(struct svc *s, int i, int per, uint32_t gen)
{
	char vip[32];

	snprintf(vip, sizeof(vip), "10.%d.%d.%d", 96 + (i >> 16), (i >> 8) & 255, i & 255);
	svc_init(s, vip, IPPROTO_TCP, 80, MODEL_FORWARD, "some-namespace/some-service:http");
	for (int j = 0; j < per; j++) {
		struct model_backend *b = &s->backends[s->entry.n_backends++];

		b->addr.family = AF_INET;
		b->addr.v4.s_addr = htonl(0x0b000000u + (uint32_t)i * 64 + (uint32_t)j + gen);
		b->port = 8080;
	}
}

static double seconds(void)
{
	return (double)now_usec(CLOCK_MONOTONIC) / 1e6;
}

static int double_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int bench_commit(struct nft *n, struct svc *s, double *ret)
{
	double t = seconds();

	if (svc_stage(n, s) < 0 || nft_commit(n, NULL) < 0)
		return -1;
	*ret = seconds() - t;
	return 0;
}

static int bench(const char *spec)
{
	enum { ITERATIONS = 1000 };
	static double times[ITERATIONS];
	int services = 0, per = 0;
	struct nft_stats st;
	struct nft *n;
	struct svc s;
	double t;

	if (sscanf(spec, "%dx%d", &services, &per) != 2 || services <= 0 || per <= 0 ||
	    services > (1 << 20) || per > MAX_BACKENDS - 1) {
		fprintf(stderr, "KUBE_ANNEX_NFT_BENCH: want SERVICESxENDPOINTS, e.g. 10000x10\n");
		return 2;
	}
	if (nft_cleanup(NULL) < 0 || nft_new(&n) < 0)
		return 1;
	t = seconds();
	for (int i = 0; i < services; i++) {
		bench_entry(&s, i, per, 0);
		if (svc_stage(n, &s) < 0)
			return 1;
	}
	printf("stage %d services x %d endpoints: %.3f s\n", services, per, seconds() - t);
	t = seconds();
	if (nft_commit(n, NULL) < 0)
		return 1;
	nft_get_stats(n, &st);
	printf("cold commit: %.3f s, %" PRIu64 " messages\n", seconds() - t, st.messages_last);

	for (int k = 0; k < ITERATIONS; k++) {
		bench_entry(&s, (k * 7919) % services, per, 0);
		s.backends[per - 1].addr.v4.s_addr = htonl(0x0c000000u + (uint32_t)k);
		if (bench_commit(n, &s, &times[k]) < 0)
			return 1;
	}
	nft_get_stats(n, &st);
	qsort(times, ITERATIONS, sizeof(times[0]), double_cmp);
	printf("one endpoint replaced, stage+commit (%d runs): p50 %.3f ms, p99 %.3f ms, "
	       "max %.3f ms, %" PRIu64 " messages\n", ITERATIONS, times[ITERATIONS / 2] * 1e3,
	       times[ITERATIONS * 99 / 100] * 1e3, times[ITERATIONS - 1] * 1e3, st.messages_last);

	bench_entry(&s, 1, per + 1, 0);
	if (bench_commit(n, &s, &t) < 0)
		return 1;
	nft_get_stats(n, &st);
	printf("endpoint added, new group %d: %.3f ms, %" PRIu64 " messages\n", per + 1, t * 1e3,
	       st.messages_last);
	for (int k = 0; k < 20; k++) {
		bench_entry(&s, 2 + k, per + 1, 0);
		if (bench_commit(n, &s, &times[k]) < 0)
			return 1;
	}
	nft_get_stats(n, &st);
	qsort(times, 20, sizeof(times[0]), double_cmp);
	printf("endpoint added, existing group (20 runs): p50 %.3f ms, max %.3f ms, %" PRIu64
	       " messages\n", times[10] * 1e3, times[19] * 1e3, st.messages_last);

	nft_reset(n);
	for (int i = 0; i < services; i++) {
		bench_entry(&s, i, per, 0);
		if (svc_stage(n, &s) < 0)
			return 1;
	}
	t = seconds();
	if (nft_commit(n, NULL) < 0)
		return 1;
	printf("restart (replace a full table): %.3f s\n", seconds() - t);
	nft_free(n);
	return nft_cleanup(NULL) < 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_three_to_four, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reject_forward, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_external_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
	};
	const char *spec = getenv("KUBE_ANNEX_NFT_BENCH");
	int status;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: test-nft needs root to program nftables in a private "
				"network namespace\n");
		return 77;
	}
	/* Never touch the host's ruleset: everything below runs in a fresh
	 * network namespace. */
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "SKIP: test-nft cannot create a network namespace: %m\n");
		return 77;
	}
	free(run("nft --version >/dev/null 2>&1", &status));
	if (status != 0) {
		fprintf(stderr, "SKIP: test-nft needs the nft binary (package nftables)\n");
		return 77;
	}
	if (spec)
		return bench(spec);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
