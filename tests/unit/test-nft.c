/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nft/ against the real kernel, in a private network namespace, checked the
 * way a user would: `nft list table ip kube-annex`, and whether that
 * listing loads again with `nft -f`.
 *
 * Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for unshare) and the nft
 * binary; exits 77 with a reason otherwise.
 *
 * KUBE_ANNEX_NFT_BENCH=SERVICESxENDPOINTS (e.g. 10000x10) instead times a
 * cold commit (and its longest transaction), a restart that adopts the
 * table, single changes, and a rebuild after nft_reset(), and prints the
 * figures (no assertions; build without sanitizers for meaningful numbers).
 * KUBE_ANNEX_NFT_BENCH_AFFINITY=N gives N of the Services session affinity
 * (evenly spread) and also times changes to those.
 * TEST_DEBUG=1 shows nft/'s debug log.
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

#define MAX_BACKENDS 320

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

/* `nft -a list table`: with the handles, which change when a table or
 * anything in it is created again. */
static char *listing_handles(const char *family)
{
	char cmd[128];
	int status;
	char *out;

	snprintf(cmd, sizeof(cmd), "nft -a list table %s kube-annex 2>&1", family);
	out = run(cmd, &status);
	if (status != 0)
		fail_msg("%s failed: %s", cmd, out);
	return out;
}

/* The table's own handle, from "table ip kube-annex { # handle 7". */
static unsigned table_handle(const char *family)
{
	char *l = listing_handles(family), *p = strstr(l, "# handle ");
	unsigned h = 0;

	assert_non_null(p);
	h = (unsigned)strtoul(p + strlen("# handle "), NULL, 10);
	free(l);
	return h;
}

/* Like canonical(), each item prefixed with the set, map or chain it is
 * in, so that an element in the wrong map does not compare equal. */
static char *canonical_blocks(const char *text)
{
	char header[128] = "", **items = NULL, *out = NULL;
	const char *start = text;
	size_t n = 0, len = 0;
	int depth = 0;
	FILE *f;

	for (const char *p = text;; p++) {
		char c = *p;
		size_t l;

		if (c != '{' && c != '}' && c != ',' && c != '\0')
			continue;
		while (start < p && (*start == ' ' || *start == '\n' || *start == '\t'))
			start++;
		l = (size_t)(p - start);
		while (l > 0 && (start[l - 1] == ' ' || start[l - 1] == '\n' || start[l - 1] == '\t'))
			l--;
		if (c == '{' && ++depth == 2)
			snprintf(header, sizeof(header), "%.*s", (int)l, start);
		if (l > 0) {
			items = reallocarray(items, n + 1, sizeof(*items));
			assert_non_null(items);
			assert_true(asprintf(&items[n++], "%s| %.*s", header, (int)l, start) > 0);
		}
		if (c == '}' && depth-- == 2)
			header[0] = 0;
		if (!c)
			break;
		start = p + 1;
	}
	qsort(items, n, sizeof(*items), line_cmp);
	f = open_memstream(&out, &len);
	assert_non_null(f);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s\n", items[i]);
		free(items[i]);
	}
	fclose(f);
	free(items);
	return out;
}

static void assert_same_items(const char *a, const char *b)
{
	char *ca = canonical_blocks(a), *cb = canonical_blocks(b);

	if (strcmp(ca, cb) != 0) {
		fprintf(stderr, "--- expected\n%s\n--- got\n%s\n", a, b);
		fail_msg("listings differ");
	}
	free(ca);
	free(cb);
}

static void shell_ok(const char *cmd)
{
	int status;
	char *out = run(cmd, &status);

	if (status != 0)
		fail_msg("%s: %s", cmd, out);
	free(out);
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
	assert_block_contains(l4, "chain reject-chain {", "reject with tcp reset reject");

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
			      "ct state new ip daddr @cluster-ips goto reject-chain comment "
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

/* What a key holds in the kernel, before and after staging and commits. */
static void test_committed_entry(void **state)
{
	struct nft *n = *state;
	struct svc dns;
	struct model_entry e;

	svc_init(&dns, "10.96.0.10", IPPROTO_UDP, 53, MODEL_FORWARD, "kube-system/dns:dns");
	svc_backend(&dns, "10.244.0.11", 8080);
	svc_backend(&dns, "10.244.0.12", 8080);
	assert_int_equal(svc_stage(n, &dns), 0);
	assert_int_equal(nft_committed_entry(n, &dns.key, &e), 0);
	commit_ok(n);
	assert_int_equal(nft_committed_entry(n, &dns.key, &e), 1);
	assert_int_equal(e.verdict, MODEL_FORWARD);
	assert_int_equal(e.n_backends, 2);
	assert_string_equal(e.comment, "kube-system/dns:dns");

	/* staging leaves the committed copy alone */
	dns.entry.n_backends = 1;
	assert_int_equal(svc_stage(n, &dns), 0);
	assert_int_equal(nft_committed_entry(n, &dns.key, &e), 1);
	assert_int_equal(e.n_backends, 2);
	commit_ok(n);
	assert_int_equal(nft_committed_entry(n, &dns.key, &e), 1);
	assert_int_equal(e.n_backends, 1);
	assert_true(kube_ip_equal(&e.backends[0].addr, &dns.backends[0].addr));

	assert_int_equal(svc_unstage(n, &dns), 0);
	commit_ok(n);
	assert_int_equal(nft_committed_entry(n, &dns.key, &e), 0);
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
	struct svc s[6];
	struct kube_cidr c[NFT_MAX_SERVICE_CIDRS];
	char cmd[256], *before, *after, *out, *error = NULL;
	size_t n_cidrs = 0;
	int fd, status;

	svc_init(&s[0], "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s[0], "10.244.1.", 3);
	svc_init(&s[1], "10.96.5.6", IPPROTO_UDP, 53, MODEL_REJECT, "shop/dns:dns");
	svc_init(&s[2], "fd00::5", IPPROTO_SCTP, 7, MODEL_FORWARD, "shop/s:sctp");
	svc_backends(&s[2], "fd01::", 2);
	svc_init(&s[3], "fd00::6", IPPROTO_TCP, 80, MODEL_DROP, "shop/d:http");
	/* session affinity, both families */
	svc_init(&s[4], "10.96.5.7", IPPROTO_UDP, 53, MODEL_FORWARD, "shop/sticky:dns");
	svc_backends(&s[4], "10.244.2.", 4);
	s[4].entry.affinity_timeout_sec = 10800;
	svc_init(&s[5], "fd00::7", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/sticky:http");
	svc_backends(&s[5], "fd01::", 2);
	s[5].entry.affinity_timeout_sec = 60;
	assert_int_equal(nft_service_cidrs_parse("10.96.0.0/20,fd00::/112", c, &n_cidrs, &error), 0);
	assert_int_equal(nft_set_service_cidrs(n, c, n_cidrs), 0);
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
	assert_contains(before, "chain affinity-4-10800");
	assert_contains(before, "chain affinity-2-60");
	assert_contains(before, "ip daddr 10.96.0.0/20 drop");
	/* Routed connections to a Service leave with the host's address. */
	assert_contains(before, "type nat hook postrouting priority srcnat;");
	assert_contains(before, "ct status dnat ct original ip daddr @cluster-ips fib saddr type != "
				"local masquerade comment \"traffic routed through this host to a "
				"Service\"");
	assert_contains(before, "ct status dnat ct original ip6 daddr @cluster-ips fib saddr type "
				"!= local masquerade");

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

/* A daemon restart: a new instance takes the old table over and leaves
 * exactly what it staged; the old Service's group goes a second later. */
static void test_restart(void **state)
{
	struct nft *n = *state, *m = NULL;
	struct nft_stats st;
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
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.transactions_last, 1);

	l = listing("ip");
	assert_not_contains(l, "10.96.5.5");
	assert_block_contains(l, "map backends-2 {", "10.96.5.6 . tcp . 80 . 1 : 10.244.2.2 . 8080");
	assert_contains(l, "chain lb-7 {");
	free(l);

	usleep(1100 * 1000);
	commit_ok(m);
	nft_free(m);
	l = listing("ip");
	assert_not_contains(l, "lb-7");
	assert_contains(l, "chain lb-2 {");
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

/* ---- adopting a previous run's tables ------------------------------------ */

/* A bit of everything, in both families: 8 keys in ip, 2 in ip6. */
#define MIXED 10

static void mixed_state(struct svc *s)
{
	svc_init(&s[0], "10.96.0.1", IPPROTO_TCP, 443, MODEL_FORWARD, "default/kubernetes:https");
	svc_backend(&s[0], "192.168.1.10", 6443);
	svc_init(&s[1], "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s[1], "10.244.1.", 3);
	svc_init(&s[2], "10.96.5.5", IPPROTO_TCP, 443, MODEL_FORWARD, "shop/web:https");
	svc_backends(&s[2], "10.244.1.", 3);
	svc_init(&s[3], "10.96.0.10", IPPROTO_UDP, 53, MODEL_FORWARD, "kube-system/kube-dns:dns");
	svc_backends(&s[3], "10.244.2.", 4);
	svc_init(&s[4], "10.96.7.7", IPPROTO_TCP, 8080, MODEL_REJECT, "shop/cart:http");
	svc_init(&s[5], "10.96.7.8", IPPROTO_TCP, 80, MODEL_DROP, "shop/local:http");
	svc_init(&s[6], "10.96.7.10", IPPROTO_SCTP, 9999, MODEL_FORWARD, "shop/sig:sctp");
	svc_backend(&s[6], "10.244.3.1", 9999);
	svc_init(&s[7], "fd00:96::5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s[7], "fd00:244::", 3);
	svc_init(&s[8], "fd00:96::6", IPPROTO_UDP, 53, MODEL_REJECT, "shop/dns:dns");
	svc_init(&s[9], "10.96.7.11", IPPROTO_TCP, 80, MODEL_FORWARD, "");
	svc_backends(&s[9], "10.244.4.", 2);
}

static void stage_all(struct nft *n, struct svc *s, size_t count)
{
	for (size_t i = 0; i < count; i++)
		assert_int_equal(svc_stage(n, &s[i]), 0);
}

/* What a previous run left, committed by an instance of its own. */
static void previous_run(struct svc *s, size_t count)
{
	struct nft *p = NULL;

	assert_int_equal(nft_new(&p), 0);
	stage_all(p, s, count);
	commit_ok(p);
	nft_free(p);
}

static struct nft *restarted(struct svc *s, size_t count, struct nft_stats *ret)
{
	struct nft *m = NULL;

	assert_int_equal(nft_new(&m), 0);
	/* in another order than the previous run staged them */
	for (size_t i = count; i-- > 0;)
		assert_int_equal(svc_stage(m, &s[i]), 0);
	assert_true(nft_pending(m));
	commit_ok(m);
	nft_get_stats(m, ret);
	return m;
}

static void test_adopt_identical(void **state)
{
	struct nft *m;
	struct svc s[MIXED];
	struct nft_stats st;
	char *before4, *before6, *after4, *after6;

	(void)state;
	mixed_state(s);
	previous_run(s, MIXED);
	before4 = listing_handles("ip");
	before6 = listing_handles("ip6");

	/* The same state, backends in another order too. */
	for (size_t i = 0; i < 3; i++)
		s[1].backends[i].addr.v4.s_addr = htonl(0x0af40100u + 3 - (uint32_t)i);
	m = restarted(s, MIXED, &st);
	assert_int_equal(st.messages_last, 0);
	assert_int_equal(st.transactions_last, 0);
	assert_int_equal(st.commits, 0);
	assert_int_equal(st.adopted, MIXED);
	assert_int_equal(st.entries, MIXED);
	assert_int_equal(st.backends, 1 + 3 + 3 + 4 + 1 + 3 + 2);
	assert_int_equal(st.groups, 5); /* ip: 1, 2, 3, 4; ip6: 3 */
	assert_false(nft_pending(m));

	/* Not a handle changed: nothing was created again. */
	after4 = listing_handles("ip");
	after6 = listing_handles("ip6");
	assert_string_equal(before4, after4);
	assert_string_equal(before6, after6);
	commit_ok(m);
	assert_int_equal(messages_last(m), 0);
	nft_free(m);
	free(before4);
	free(before6);
	free(after4);
	free(after6);
}

/* The same changes, and what they cost, on top of a table committed by
 * this instance or adopted from another. */
#define STEPS 8

static void steps(struct nft *n, uint64_t *msgs)
{
	struct svc t;
	size_t k = 0;

	/* one backend replaced: .2 leaves, .9 comes, in slot 1 */
	svc_init(&t, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backend(&t, "10.244.1.1", 8080);
	svc_backend(&t, "10.244.1.3", 8080);
	svc_backend(&t, "10.244.1.9", 8080);
	assert_int_equal(svc_stage(n, &t), 0);
	commit_ok(n);
	msgs[k++] = messages_last(n);
	/* 3 -> 4, into a group in use */
	svc_init(&t, "10.96.5.5", IPPROTO_TCP, 443, MODEL_FORWARD, "shop/web:https");
	svc_backends(&t, "10.244.1.", 4);
	assert_int_equal(svc_stage(n, &t), 0);
	commit_ok(n);
	msgs[k++] = messages_last(n);
	/* 4 -> 5, a new group */
	svc_init(&t, "10.96.0.10", IPPROTO_UDP, 53, MODEL_FORWARD, "kube-system/kube-dns:dns");
	svc_backends(&t, "10.244.2.", 5);
	assert_int_equal(svc_stage(n, &t), 0);
	commit_ok(n);
	msgs[k++] = messages_last(n);
	/* a port removed, its VIP stays */
	svc_init(&t, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "");
	assert_int_equal(svc_unstage(n, &t), 0);
	commit_ok(n);
	msgs[k++] = messages_last(n);
	/* a VIP removed */
	svc_init(&t, "10.96.7.8", IPPROTO_TCP, 80, MODEL_DROP, "");
	assert_int_equal(svc_unstage(n, &t), 0);
	commit_ok(n);
	msgs[k++] = messages_last(n);
	/* reject -> forward */
	svc_init(&t, "10.96.7.7", IPPROTO_TCP, 8080, MODEL_FORWARD, "shop/cart:http");
	svc_backends(&t, "10.244.5.", 2);
	assert_int_equal(svc_stage(n, &t), 0);
	commit_ok(n);
	msgs[k++] = messages_last(n);
	/* forward -> reject (no endpoints left), ip6 */
	svc_init(&t, "fd00:96::5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	assert_int_equal(svc_stage(n, &t), 0);
	commit_ok(n);
	msgs[k++] = messages_last(n);
	/* a new VIP */
	svc_init(&t, "10.96.9.9", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/new:http");
	svc_backends(&t, "10.244.6.", 3);
	assert_int_equal(svc_stage(n, &t), 0);
	commit_ok(n);
	msgs[k++] = messages_last(n);
	assert_int_equal(k, STEPS);
}

static void test_adopt_then_changes(void **state)
{
	struct nft *n = *state, *m;
	struct svc s[MIXED];
	struct nft_stats st;
	uint64_t own[STEPS], adopted[STEPS];
	char *own4, *own6, *l4, *l6;

	mixed_state(s);
	stage_all(n, s, MIXED);
	commit_ok(n);
	steps(n, own);
	own4 = listing("ip");
	own6 = listing("ip6");

	assert_int_equal(nft_cleanup(NULL), 0);
	mixed_state(s);
	previous_run(s, MIXED);
	m = restarted(s, MIXED, &st);
	assert_int_equal(st.adopted, MIXED);
	steps(m, adopted);
	for (size_t i = 0; i < STEPS; i++)
		if (own[i] != adopted[i])
			fail_msg("step %zu: %" PRIu64 " messages after a commit, %" PRIu64
				 " after adopting", i, own[i], adopted[i]);
	assert_int_equal(own[0], 4); /* begin, delete, add, end */
	assert_int_equal(own[1], 6); /* service and backends out, in */
	l4 = listing("ip");
	l6 = listing("ip6");
	assert_same_items(own4, l4);
	assert_same_items(own6, l6);
	nft_free(m);
	free(own4);
	free(own6);
	free(l4);
	free(l6);
}

/* A restart that finds the cluster changed: only the differences are
 * sent, and the result is what a fresh start builds. */
static void test_adopt_differences(void **state)
{
	struct svc s[MIXED + 1], want[MIXED + 1];
	struct nft *m, *fresh = NULL;
	struct nft_stats st;
	size_t n_want = 0;
	char *l4, *l6, *f4, *f6;

	(void)state;
	mixed_state(s);
	previous_run(s, MIXED);

	mixed_state(s);
	svc_init(&s[0], "10.96.0.1", IPPROTO_TCP, 443, MODEL_FORWARD, "default/kubernetes:https");
	svc_backend(&s[0], "192.168.1.11", 6443);                    /* backend replaced */
	svc_backend(&s[1], "10.244.1.4", 8080);                      /* 3 -> 4 */
	snprintf(s[3].entry.comment, sizeof(s[3].entry.comment), "kube-system/dns:dns"); /* comment */
	svc_init(&s[4], "10.96.7.7", IPPROTO_TCP, 8080, MODEL_FORWARD, "shop/cart:http");
	svc_backends(&s[4], "10.244.5.", 2);                         /* reject -> forward */
	svc_init(&s[7], "fd00:96::5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backend(&s[7], "fd00:244::7", 80);                       /* ip6: 3 -> 1 */
	svc_init(&s[10], "10.96.9.9", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/new:http");
	svc_backends(&s[10], "10.244.6.", 3);                        /* new VIP */
	/* s[2] (a port of a VIP that stays) and s[6] (a VIP) are gone */
	for (size_t i = 0; i <= MIXED; i++)
		if (i != 2 && i != 6)
			want[n_want++] = s[i];

	m = restarted(want, n_want, &st);
	assert_int_equal(st.adopted, MIXED);
	assert_int_equal(st.entries, n_want);
	assert_int_equal(st.transactions_last, 1);
	/* A few messages per changed set, nothing for what stayed. */
	if (st.messages_last < 8 || st.messages_last > 24)
		fail_msg("%" PRIu64 " messages", st.messages_last);
	/* the groups emptied go a second later (ip6 backends-3) */
	usleep(1100 * 1000);
	commit_ok(m);
	l4 = listing("ip");
	l6 = listing("ip6");
	assert_not_contains(l6, "backends-3");
	nft_free(m);

	assert_int_equal(nft_cleanup(NULL), 0);
	assert_int_equal(nft_new(&fresh), 0);
	stage_all(fresh, want, n_want);
	commit_ok(fresh);
	f4 = listing("ip");
	f6 = listing("ip6");
	assert_same_items(f4, l4);
	assert_same_items(f6, l6);
	nft_free(fresh);
	free(l4);
	free(l6);
	free(f4);
	free(f6);
}

/* Anything this version would not have made itself: the table is
 * replaced (in one transaction), the other family still adopted. */
static void test_adopt_refused(void **state)
{
	static const char *const changes[] = {
		"nft add rule ip kube-annex nat-output counter",
		"nft insert rule ip kube-annex filter-output ip daddr 10.0.0.1 accept",
		"nft add chain ip kube-annex extra",
		"nft add set ip kube-annex extra '{ type ipv4_addr; }'",
		"nft add map ip kube-annex backends-5 '{ typeof ip daddr . meta l4proto . th dport . "
		"numgen random mod 5 : ip daddr . th dport; }'",
		"nft list table ip kube-annex | sed 's/priority -100;/priority -99;/' >/tmp/test-nft.$$"
		" && nft delete table ip kube-annex && nft -f /tmp/test-nft.$$; r=$?; "
		"rm -f /tmp/test-nft.$$; exit $r",
		"nft delete element ip kube-annex backends-3 '{ 10.96.5.5 . tcp . 80 . 1 }'",
		"nft add element ip kube-annex service-ips '{ 10.96.9.9 . tcp . 80 : goto lb-3 }'",
		"nft add element ip kube-annex no-endpoint-services '{ 10.96.5.5 . tcp . 80 : drop }'",
		"nft add element ip kube-annex cluster-ips '{ 10.1.2.3 }'",
		"nft delete element ip kube-annex cluster-ips '{ 10.96.7.8 }'",
		"nft add element ip kube-annex service-ips '{ 10.96.9.9 . tcp . 80 : accept }'",
		"nft list table ip kube-annex | sed 's/numgen random mod 3 map/numgen inc mod 3 map/'"
		" >/tmp/test-nft.$$ && nft delete table ip kube-annex && nft -f /tmp/test-nft.$$; "
		"r=$?; rm -f /tmp/test-nft.$$; exit $r",
		"nft flush chain ip kube-annex filter-output && nft add rule ip kube-annex "
		"filter-output ct state new ip daddr . meta l4proto . th dport vmap "
		"@no-endpoint-services",
	};
	struct svc s[MIXED];

	(void)state;
	mixed_state(s);
	for (size_t i = 0; i < ARRAY_SIZE(changes); i++) {
		struct nft_stats st;
		unsigned h4, h6;
		char *before, *after;
		struct nft *m;

		assert_int_equal(nft_cleanup(NULL), 0);
		previous_run(s, MIXED);
		before = listing("ip");
		h4 = table_handle("ip");
		h6 = table_handle("ip6");
		shell_ok(changes[i]);

		m = restarted(s, MIXED, &st);
		if (st.adopted != 2) /* ip6's */
			fail_msg("after \"%s\": %zu keys adopted", changes[i], st.adopted);
		assert_int_equal(st.transactions_last, 1);
		after = listing("ip");
		assert_same_items(before, after);
		assert_true(table_handle("ip") != h4);
		assert_int_equal(table_handle("ip6"), h6);
		nft_free(m);
		free(before);
		free(after);
	}
}

/* A rule deleted and put back the same is ours all the same. */
static void test_adopt_rule_put_back(void **state)
{
	struct svc s[MIXED];
	struct nft_stats st;
	struct nft *m;

	(void)state;
	mixed_state(s);
	previous_run(s, MIXED);
	shell_ok("nft flush chain ip kube-annex filter-output && "
		 "nft add rule ip kube-annex filter-output ct state new "
		 "ip daddr . meta l4proto . th dport vmap @no-endpoint-services && "
		 "nft add rule ip kube-annex filter-output ct state new ip daddr @cluster-ips goto reject-chain "
		 "comment \\\"reject traffic to unknown ports of ClusterIPs\\\"");
	m = restarted(s, MIXED, &st);
	assert_int_equal(st.adopted, MIXED);
	assert_int_equal(st.messages_last, 0);
	nft_free(m);
}

/* What nft makes of our own listing is exactly what we make: a table
 * restored with `nft -f` (here with the gateway chains) is adopted. */
static void test_adopt_nft_f(void **state)
{
	char path[] = "/tmp/test-nft-XXXXXX", cmd[256];
	struct svc s[MIXED];
	struct nft *p = NULL, *m = NULL;
	struct nft_stats st;
	char *l;
	int fd;

	(void)state;
	mixed_state(s);
	assert_int_equal(nft_new(&p), 0);
	nft_set_gateway(p, true);
	stage_all(p, s, MIXED);
	commit_ok(p);
	nft_free(p);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "nft list table ip kube-annex > %s && "
		 "nft list table ip6 kube-annex >> %s", path, path);
	shell_ok(cmd);
	assert_int_equal(nft_cleanup(NULL), 0);
	snprintf(cmd, sizeof(cmd), "nft -f %s", path);
	shell_ok(cmd);
	unlink(path);

	assert_int_equal(nft_new(&m), 0);
	/* set before the first commit: still adopts (for the gateway layout) */
	nft_set_gateway(m, true);
	stage_all(m, s, MIXED);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, MIXED);
	assert_int_equal(st.messages_last, 0);
	nft_free(m);

	/* Not a gateway any more: the layout differs, both are replaced. */
	assert_int_equal(nft_new(&m), 0);
	stage_all(m, s, MIXED);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, 0);
	l = listing("ip");
	assert_not_contains(l, "nat-prerouting");
	free(l);
	nft_free(m);
}

/* resolv/'s masquerade chain is part of what this version creates: adopted
 * when configured the same, replaced when not. */
static void test_adopt_masquerade(void **state)
{
	struct kube_ip link[2];
	struct svc s[MIXED];
	struct nft *p = NULL, *m = NULL;
	struct nft_stats st;
	char *l;

	(void)state;
	ip_parse("169.254.53.53", &link[0]);
	ip_parse("fd00:53::53", &link[1]);
	mixed_state(s);
	assert_int_equal(nft_new(&p), 0);
	assert_int_equal(nft_set_masquerade_sources(p, link, 2), 0);
	stage_all(p, s, MIXED);
	commit_ok(p);
	nft_free(p);
	l = listing("ip");
	assert_contains(l, "chain nat-postrouting {");
	free(l);

	assert_int_equal(nft_new(&m), 0);
	assert_int_equal(nft_set_masquerade_sources(m, link, 2), 0);
	stage_all(m, s, MIXED);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, MIXED);
	assert_int_equal(st.messages_last, 0);
	nft_free(m);

	/* another address: the rule differs */
	ip_parse("169.254.53.54", &link[0]);
	assert_int_equal(nft_new(&m), 0);
	assert_int_equal(nft_set_masquerade_sources(m, link, 2), 0);
	stage_all(m, s, MIXED);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, 2); /* ip6's */
	l = listing("ip");
	assert_contains(l, "169.254.53.54");
	free(l);
	nft_free(m);

	/* A gateway with the DNS link: one chain, both rules, adopted. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(nft_new(&m), 0);
		assert_int_equal(nft_set_masquerade_sources(m, link, 2), 0);
		nft_set_gateway(m, true);
		stage_all(m, s, MIXED);
		commit_ok(m);
		nft_get_stats(m, &st);
		assert_int_equal(st.adopted, i == 0 ? 0 : MIXED);
		nft_free(m);
	}
	l = listing("ip6");
	assert_block_contains(l, "chain nat-postrouting {",
			      "ip6 saddr fd00:53::53 ct status dnat masquerade comment \"cluster DNS "
			      "queries from the kube-annex0 link\" ct status dnat ct original ip6 "
			      "daddr @cluster-ips fib saddr type != local masquerade");
	free(l);
}

/* ---- session affinity and service CIDRs ---------------------------------- */

static void svc_affinity(struct svc *s, uint32_t timeout)
{
	s->entry.affinity_timeout_sec = timeout;
}

static void test_affinity_layout(void **state)
{
	struct nft *n = *state;
	struct svc web, https, six, one;
	char *l4, *l6;

	svc_init(&web, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&web, "10.244.1.", 3);
	svc_affinity(&web, 10800);
	svc_init(&https, "10.96.5.5", IPPROTO_TCP, 443, MODEL_FORWARD, "shop/plain:https");
	svc_backends(&https, "10.244.1.", 3);
	svc_init(&one, "10.96.6.6", IPPROTO_UDP, 53, MODEL_FORWARD, "shop/one:dns");
	svc_backends(&one, "10.244.2.", 1);
	svc_affinity(&one, 10800);
	svc_init(&six, "fd00:96::5", IPPROTO_SCTP, 80, MODEL_FORWARD, "shop/web:sctp");
	svc_backends(&six, "fd00:244::", 2);
	svc_affinity(&six, 3);
	assert_int_equal(svc_stage(n, &web), 0);
	assert_int_equal(svc_stage(n, &https), 0);
	assert_int_equal(svc_stage(n, &one), 0);
	assert_int_equal(svc_stage(n, &six), 0);
	commit_ok(n);

	l4 = listing("ip");
	assert_clean_listing(l4);
	assert_block_contains(l4, "map service-ips {",
			      "10.96.5.5 . tcp . 80 comment \"shop/web:http\" : goto affinity-3-10800");
	assert_block_contains(l4, "map service-ips {",
			      "10.96.5.5 . tcp . 443 comment \"shop/plain:https\" : goto lb-3");
	assert_block_contains(l4, "map service-ips {",
			      "10.96.6.6 . udp . 53 comment \"shop/one:dns\" : goto affinity-1-10800");
	/* the grouped layout is left to those without affinity */
	assert_block_lacks(l4, "map backends-3 {", "tcp . 80 ");
	assert_not_contains(l4, "backends-1");
	assert_block_contains(l4, "map endpoint-0 {",
			      "typeof ip daddr . meta l4proto . th dport : ip daddr . th dport");
	assert_block_contains(l4, "map endpoint-0 {", "10.96.5.5 . tcp . 80 : 10.244.1.1 . 8080");
	assert_block_contains(l4, "map endpoint-0 {", "10.96.6.6 . udp . 53 : 10.244.2.1 . 8080");
	assert_block_contains(l4, "map endpoint-1 {", "10.96.5.5 . tcp . 80 : 10.244.1.2 . 8080");
	assert_block_contains(l4, "map endpoint-2 {", "10.96.5.5 . tcp . 80 : 10.244.1.3 . 8080");
	assert_block_lacks(l4, "map endpoint-1 {", "10.96.6.6");
	assert_not_contains(l4, "endpoint-3");
	assert_block_contains(l4, "set endpoint-2-clients {",
			      "typeof ip saddr . ip daddr . meta l4proto . th dport size 65536 "
			      "flags dynamic,timeout");
	assert_block_contains(l4, "chain affinity-3-10800 {",
			      "ip saddr . ip daddr . meta l4proto . th dport @endpoint-2-clients "
			      "update @endpoint-2-clients { ip saddr . ip daddr . meta l4proto . "
			      "th dport timeout 3h } dnat ip to ip daddr . meta l4proto . th dport "
			      "map @endpoint-2");
	assert_block_contains(l4, "chain affinity-3-10800 {",
			      "numgen random mod 3 0 update @endpoint-0-clients");
	assert_block_contains(l4, "chain affinity-3-10800 {",
			      "numgen random mod 2 0 update @endpoint-1-clients");
	assert_block_contains(l4, "chain affinity-1-10800 {",
			      "update @endpoint-0-clients { ip saddr . ip daddr . meta l4proto . "
			      "th dport timeout 3h } dnat ip to ip daddr . meta l4proto . th dport "
			      "map @endpoint-0");
	assert_block_lacks(l4, "chain affinity-1-10800 {", "@endpoint-0-clients update");
	assert_block_lacks(l4, "chain affinity-1-10800 {", "numgen");

	l6 = listing("ip6");
	assert_clean_listing(l6);
	assert_block_contains(l6, "map service-ips {",
			      "fd00:96::5 . sctp . 80 comment \"shop/web:sctp\" : goto affinity-2-3");
	assert_block_contains(l6, "map endpoint-1 {", "fd00:96::5 . sctp . 80 : fd00:244::2 . 8080");
	assert_block_contains(l6, "chain affinity-2-3 {",
			      "ip6 saddr . ip6 daddr . meta l4proto . th dport @endpoint-0-clients "
			      "update @endpoint-0-clients { ip6 saddr . ip6 daddr . meta l4proto . "
			      "th dport timeout 3s } dnat ip6 to ip6 daddr . meta l4proto . th dport "
			      "map @endpoint-0");
	free(l4);
	free(l6);
}

/* Slots are what clients are pinned to: a backend keeps its slot while it
 * stays, whatever the count does; only what changes is sent. */
static void test_affinity_changes(void **state)
{
	struct nft *n = *state;
	struct nft_stats st;
	struct svc s;
	char *l;

	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backends(&s, "10.244.1.", 3);
	svc_affinity(&s, 10800);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);

	/* .2 leaves, .4 comes: slot 1 only */
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backend(&s, "10.244.1.1", 8080);
	svc_backend(&s, "10.244.1.3", 8080);
	svc_backend(&s, "10.244.1.4", 8080);
	svc_affinity(&s, 10800);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	assert_int_equal(messages_last(n), 4); /* begin, delete, add, end */
	l = listing("ip");
	assert_block_contains(l, "map endpoint-1 {", "10.96.5.5 . tcp . 80 : 10.244.1.4 . 8080");
	free(l);

	/* 3 -> 4: slots 0-2 stay, slot 3 and chain affinity-4-10800 appear */
	svc_backend(&s, "10.244.1.5", 8080);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map service-ips {", ": goto affinity-4-10800");
	assert_block_contains(l, "map endpoint-0 {", "10.96.5.5 . tcp . 80 : 10.244.1.1 . 8080");
	assert_block_contains(l, "map endpoint-1 {", "10.96.5.5 . tcp . 80 : 10.244.1.4 . 8080");
	assert_block_contains(l, "map endpoint-2 {", "10.96.5.5 . tcp . 80 : 10.244.1.3 . 8080");
	assert_block_contains(l, "map endpoint-3 {", "10.96.5.5 . tcp . 80 : 10.244.1.5 . 8080");
	assert_contains(l, "chain affinity-3-10800 {"); /* empty, goes later */
	free(l);

	/* 4 -> 2, .1 and .3 gone: .4 keeps slot 1, .5 moves from 3 to 0 */
	svc_init(&s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backend(&s, "10.244.1.4", 8080);
	svc_backend(&s, "10.244.1.5", 8080);
	svc_affinity(&s, 10800);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map service-ips {", ": goto affinity-2-10800");
	assert_block_contains(l, "map endpoint-0 {", "10.96.5.5 . tcp . 80 : 10.244.1.5 . 8080");
	assert_block_contains(l, "map endpoint-1 {", "10.96.5.5 . tcp . 80 : 10.244.1.4 . 8080");
	assert_block_lacks(l, "map endpoint-2 {", "10.96.5.5");
	assert_block_lacks(l, "map endpoint-3 {", "10.96.5.5");
	free(l);

	/* another timeout: only the service-ips element changes */
	svc_affinity(&s, 5);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map service-ips {", ": goto affinity-2-5");
	assert_block_contains(l, "chain affinity-2-5 {", "timeout 5s");
	free(l);

	/* affinity off: lb-2 and backends-2, as for everyone else */
	svc_affinity(&s, 0);
	assert_int_equal(svc_stage(n, &s), 0);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map service-ips {", ": goto lb-2");
	assert_block_contains(l, "map backends-2 {", "10.96.5.5 . tcp . 80 . 0 : 10.244.1.5 . 8080");
	assert_block_lacks(l, "map endpoint-0 {", "10.96.5.5");
	free(l);

	/* the unused chains, maps and sets go a second later */
	usleep(1100 * 1000);
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_int_equal(st.groups, 1);
	l = listing("ip");
	assert_not_contains(l, "affinity-");
	assert_not_contains(l, "map endpoint-");
	assert_not_contains(l, "-clients");
	assert_contains(l, "chain lb-2 {");
	free(l);
}

/* Too many backends for affinity: load-balanced without it, and said so. */
static void test_affinity_cap(void **state)
{
	struct nft *n = *state;
	struct svc *s = calloc(1, sizeof(*s));
	char *l;

	assert_non_null(s);
	svc_init(s, "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/big:http");
	for (int i = 0; i < (int)NFT_MAX_AFFINITY_BACKENDS + 1; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.244.%d.%d", i / 200, i % 200 + 1);
		svc_backend(s, a, 8080);
	}
	svc_affinity(s, 10800);
	assert_int_equal(svc_stage(n, s), 1);
	commit_ok(n);
	l = listing("ip");
	assert_block_contains(l, "map service-ips {", ": goto lb-257");
	assert_not_contains(l, "affinity-");
	free(l);
	free(s);
}

static void test_service_cidrs(void **state)
{
	struct nft *n = *state;
	struct kube_cidr c[NFT_MAX_SERVICE_CIDRS];
	static const char *const bad[] = {
		"10.96.0.0", "10.96.0.1/16", "10.96.0.0/0", "10.96.0.0/33", "fd00:96::/129",
		"x/16", "10.96.0.0/16,", "10.96.0.0/16x", "1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8,"
		"5.0.0.0/8,6.0.0.0/8,7.0.0.0/8,8.0.0.0/8,9.0.0.0/8",
	};
	char *error = NULL, *l4, *l6;
	size_t count = 0;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = nft_service_cidrs_parse(bad[i], c, &count, &error);

		if (r != -EINVAL && !(r == 0 && strchr(bad[i], ',')))
			fail_msg("\"%s\": %d", bad[i], r);
		free(error);
		error = NULL;
	}
	assert_int_equal(nft_service_cidrs_parse("10.96.0.1/16", c, &count, &error), -EINVAL);
	assert_contains(error, "10.96.0.0/16");
	free(error);
	assert_int_equal(nft_service_cidrs_parse("10.96.0.0/16,fd00:96::/112,10.112.0.0/12",
						 c, &count, &error), 0);
	assert_null(error);
	assert_int_equal(count, 3);
	assert_int_equal(nft_set_service_cidrs(n, c, count), 0);
	nft_set_gateway(n, true);
	commit_ok(n);
	l4 = listing("ip");
	l6 = listing("ip6");
	assert_clean_listing(l4);
	assert_clean_listing(l6);
	assert_block_contains(l4, "chain filter-output {",
			      "ct state new ip daddr @cluster-ips goto reject-chain comment \"reject traffic to "
			      "unknown ports of ClusterIPs\" ct state new ip daddr 10.96.0.0/16 drop "
			      "comment \"Drop traffic to unallocated ClusterIPs\" ct state new ip "
			      "daddr 10.112.0.0/12 drop comment");
	assert_block_contains(l4, "chain filter-forward {", "ip daddr 10.96.0.0/16 drop");
	assert_not_contains(l4, "fd00");
	assert_block_contains(l6, "chain filter-output {",
			      "ct state new ip6 daddr fd00:96::/112 drop comment \"Drop traffic to "
			      "unallocated ClusterIPs\"");
	assert_not_contains(l6, "10.96");
	free(l4);
	free(l6);
}

/* Affinity and service CIDRs in what a restart adopts: its own table, and
 * one nft made from our listing (so every object is exactly as nft makes
 * it); another timeout or CIDR is another layout. */
static void affinity_state(struct svc *s)
{
	mixed_state(s);
	svc_affinity(&s[1], 10800); /* 10.96.5.5 tcp 80, 3 backends */
	svc_affinity(&s[3], 30);    /* kube-dns udp 53, 4 backends */
	svc_affinity(&s[6], 10800); /* sctp, 1 backend */
	svc_affinity(&s[7], 10800); /* ip6, 3 backends */
	svc_affinity(&s[4], 10800); /* reject: no affinity to program */
}

static struct nft *new_with_cidrs(const char *cidrs)
{
	struct kube_cidr c[NFT_MAX_SERVICE_CIDRS];
	struct nft *m = NULL;
	char *error = NULL;
	size_t count = 0;

	assert_int_equal(nft_new(&m), 0);
	assert_int_equal(nft_service_cidrs_parse(cidrs, c, &count, &error), 0);
	assert_int_equal(nft_set_service_cidrs(m, c, count), 0);
	return m;
}

static void test_adopt_affinity(void **state)
{
	char path[] = "/tmp/test-nft-XXXXXX", cmd[256];
	struct svc s[MIXED];
	struct nft *p, *m;
	struct nft_stats st;
	char *before4, *before6, *after4, *after6;
	int fd;

	(void)state;
	affinity_state(s);
	p = new_with_cidrs("10.96.0.0/16,fd00:96::/112");
	stage_all(p, s, MIXED);
	commit_ok(p);
	nft_free(p);
	before4 = listing_handles("ip");
	before6 = listing_handles("ip6");
	assert_contains(before4, "affinity-3-10800");

	m = new_with_cidrs("10.96.0.0/16,fd00:96::/112");
	stage_all(m, s, MIXED);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, MIXED);
	assert_int_equal(st.messages_last, 0);
	nft_free(m);
	after4 = listing_handles("ip");
	after6 = listing_handles("ip6");
	assert_string_equal(before4, after4);
	assert_string_equal(before6, after6);
	free(before4);
	free(before6);
	free(after4);
	free(after6);

	/* through nft -f: the same */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "nft list table ip kube-annex > %s && "
		 "nft list table ip6 kube-annex >> %s", path, path);
	shell_ok(cmd);
	assert_int_equal(nft_cleanup(NULL), 0);
	snprintf(cmd, sizeof(cmd), "nft -f %s", path);
	shell_ok(cmd);
	unlink(path);
	m = new_with_cidrs("10.96.0.0/16,fd00:96::/112");
	stage_all(m, s, MIXED);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, MIXED);
	assert_int_equal(st.messages_last, 0);

	/* and then changes as usual: a backend of an affinity key replaced */
	svc_init(&s[1], "10.96.5.5", IPPROTO_TCP, 80, MODEL_FORWARD, "shop/web:http");
	svc_backend(&s[1], "10.244.1.1", 8080);
	svc_backend(&s[1], "10.244.1.9", 8080);
	svc_backend(&s[1], "10.244.1.3", 8080);
	svc_affinity(&s[1], 10800);
	assert_int_equal(svc_stage(m, &s[1]), 0);
	commit_ok(m);
	assert_int_equal(messages_last(m), 4);
	nft_free(m);

	/* another CIDR: ip replaced, ip6 adopted */
	m = new_with_cidrs("10.96.0.0/12,fd00:96::/112");
	stage_all(m, s, MIXED);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, 2);
	nft_free(m);

	/* a pin set someone removed the size of: replaced */
	shell_ok("nft list table ip kube-annex | sed 's/size 65536/size 1000/' >/tmp/test-nft.$$ && "
		 "nft delete table ip kube-annex && nft -f /tmp/test-nft.$$; r=$?; "
		 "rm -f /tmp/test-nft.$$; exit $r");
	m = new_with_cidrs("10.96.0.0/12,fd00:96::/112");
	stage_all(m, s, MIXED);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, 2);
	nft_free(m);
}

/* ---- benchmark (opt-in) ------------------------------------------------- */

static int bench_affinity_every; /* every Nth Service has affinity; 0: none */

static void bench_entry(struct svc *s, int i, int per, uint32_t gen)
{
	char vip[32];

	snprintf(vip, sizeof(vip), "10.%d.%d.%d", 96 + (i >> 16), (i >> 8) & 255, i & 255);
	svc_init(s, vip, IPPROTO_TCP, 80, MODEL_FORWARD, "some-namespace/some-service:http");
	if (bench_affinity_every && i % bench_affinity_every == 0)
		s->entry.affinity_timeout_sec = 10800;
	for (int j = 0; j < per; j++) {
		struct model_backend *b = &s->backends[s->entry.n_backends++];

		b->addr.family = AF_INET;
		b->addr.v4.s_addr = htonl(0x0b000000u + (uint32_t)i * 64 + (uint32_t)j + gen);
		b->port = 8080;
	}
}

/* A large commit is split; each transaction carries whole VIPs, so what
 * the kernel holds is complete: a second instance adopts all of it, every
 * backend slot looked up. A rebuild after nft_reset() of a table that
 * exists is one transaction; of one that is gone, split again. */
static void stage_many(struct nft *n, int services, int per)
{
	for (int i = 0; i < services; i++) {
		struct svc s;

		bench_entry(&s, i, per, 0);
		assert_int_equal(svc_stage(n, &s), 0);
	}
}

static void test_split(void **state)
{
	const int services = 20000, per = 10;
	struct nft *n = *state, *m = NULL;
	struct nft_stats st;
	char *out;
	int status;

	stage_many(n, services, per);
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_int_equal(st.entries, services);
	assert_int_equal(st.backends, services * per);
	if (st.transactions_last < 4)
		fail_msg("%" PRIu64 " transactions", st.transactions_last);
	assert_true(st.transaction_usec_max_last > 0);

	out = run("nft get element ip kube-annex backends-10 '{ 10.96.78.31 . tcp . 80 . 9 }'",
		  &status);
	assert_int_equal(status, 0);
	/* bench_entry(): 11.0.0.0 + i * 64 + j, i = 19999 */
	assert_contains(out, "10.96.78.31 . tcp . 80 . 9 : 11.19.135.201 . 8080");
	free(out);
	out = run("nft get element ip kube-annex cluster-ips '{ 10.96.78.31 }'", &status);
	assert_int_equal(status, 0);
	free(out);

	assert_int_equal(nft_new(&m), 0);
	stage_many(m, services, per);
	commit_ok(m);
	nft_get_stats(m, &st);
	assert_int_equal(st.adopted, services);
	assert_int_equal(st.messages_last, 0);
	nft_free(m);

	nft_reset(n);
	stage_many(n, services, per);
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_int_equal(st.transactions_last, 1);
	assert_int_equal(st.entries, services);

	assert_int_equal(nft_cleanup(NULL), 0);
	nft_reset(n);
	stage_many(n, services, per);
	commit_ok(n);
	nft_get_stats(n, &st);
	assert_true(st.transactions_last >= 4);
}

/* A large commit of ours overflows the monitor's socket with its own
 * element notifications: that alone is no outside change; one made while
 * the buffer is full is. */
static void test_monitor_own_burst(void **state)
{
	struct nft *n = *state;
	struct nft_monitor *m = NULL;

	assert_int_equal(nft_monitor_new(n, &m), 0);
	stage_many(n, 10000, 10);
	commit_ok(n);
	assert_int_equal(nft_monitor_process(m), 0);
	assert_int_equal(nft_monitor_verify(m), 0);

	/* again, replaced in one transaction, then someone else's change */
	nft_reset(n);
	stage_many(n, 10000, 10);
	commit_ok(n);
	shell_ok("nft add chain ip kube-annex someone-elses");
	assert_int_equal(nft_monitor_process(m), 1);
	assert_int_equal(nft_monitor_process(m), 0);
	assert_int_equal(nft_monitor_verify(m), 0);

	/* and a small one of ours is just ours */
	nft_reset(n);
	commit_ok(n);
	assert_int_equal(nft_monitor_process(m), 0);
	assert_int_equal(nft_monitor_verify(m), 0);
	nft_monitor_free(m);
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
	if (getenv("KUBE_ANNEX_NFT_BENCH_AFFINITY")) {
		int with = atoi(getenv("KUBE_ANNEX_NFT_BENCH_AFFINITY"));

		bench_affinity_every = with > 0 && with <= services ? services / with : 0;
		printf("%d of the Services with session affinity\n",
		       bench_affinity_every ? (services + bench_affinity_every - 1) /
						      bench_affinity_every : 0);
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
	printf("cold commit: %.3f s, %" PRIu64 " messages in %" PRIu64 " transactions, "
	       "longest %.1f ms\n", seconds() - t, st.messages_last, st.transactions_last,
	       st.transaction_usec_max_last / 1e3);

	/* A restart with the same state: a second instance adopts the table. */
	{
		struct nft *m;

		if (nft_new(&m) < 0)
			return 1;
		for (int i = 0; i < services; i++) {
			bench_entry(&s, i, per, 0);
			if (svc_stage(m, &s) < 0)
				return 1;
		}
		t = seconds();
		if (nft_commit(m, NULL) < 0)
			return 1;
		nft_get_stats(m, &st);
		printf("restart, same state (adopt): %.3f s, %zu keys adopted, %" PRIu64
		       " messages\n", seconds() - t, st.adopted, st.messages_last);
		nft_free(m);
	}

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

	if (bench_affinity_every) {
		int runs = 0;

		for (int k = 0; k < ITERATIONS && runs < 200; k++) {
			int i = ((k * 7919) % services) / bench_affinity_every * bench_affinity_every;

			bench_entry(&s, i, per, 0);
			s.backends[per - 1].addr.v4.s_addr = htonl(0x0d000000u + (uint32_t)k);
			if (bench_commit(n, &s, &times[runs++]) < 0)
				return 1;
		}
		nft_get_stats(n, &st);
		qsort(times, runs, sizeof(times[0]), double_cmp);
		printf("one endpoint replaced in a Service with affinity (%d runs): p50 %.3f ms, "
		       "p99 %.3f ms, %" PRIu64 " messages\n", runs, times[runs / 2] * 1e3,
		       times[runs * 99 / 100] * 1e3, st.messages_last);
		bench_entry(&s, bench_affinity_every, per + 2, 0);
		if (bench_commit(n, &s, &t) < 0)
			return 1;
		nft_get_stats(n, &st);
		printf("endpoints added to a Service with affinity, new slots and chain: %.3f ms, "
		       "%" PRIu64 " messages\n", t * 1e3, st.messages_last);
	}

	nft_reset(n);
	for (int i = 0; i < services; i++) {
		bench_entry(&s, i, per, 0);
		if (svc_stage(n, &s) < 0)
			return 1;
	}
	t = seconds();
	if (nft_commit(n, NULL) < 0)
		return 1;
	nft_get_stats(n, &st);
	printf("rebuild after nft_reset (replace the full table in one transaction): %.3f s, "
	       "%" PRIu64 " messages, transaction %.1f ms\n", seconds() - t, st.messages_last,
	       st.transaction_usec_max_last / 1e3);
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
		cmocka_unit_test_setup_teardown(test_adopt_identical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_then_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_differences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_rule_put_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_nft_f, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_masquerade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_cidrs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_affinity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_monitor_own_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_committed_entry, setup, teardown),
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
	if (getenv("TEST_DEBUG"))
		log_set_max_level(LOG_DEBUG);
	if (spec)
		return bench(spec);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
