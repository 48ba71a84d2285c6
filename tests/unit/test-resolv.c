/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for resolv/: resolv.conf parsing and rendering, marker and
 * stub detection, nsswitch.conf, domains, options, the fail-fast REFUSED
 * answer, and direct mode's file handling in a temporary directory
 * (regular file, symlink, another writer, a restart).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "lib/util.h"
#include "resolv/internal.h"
#include "resolv/resolv.h"

static struct resolv_conf *parse_ok(const char *text)
{
	struct resolv_conf *c = NULL;
	char *error = NULL;

	assert_int_equal(resolv_conf_parse(text, strlen(text), &c, &error), 0);
	assert_null(error);
	assert_non_null(c);
	return c;
}

static int parse_err(const char *text, size_t len, char **ret_error)
{
	struct resolv_conf *c = NULL;
	int r = resolv_conf_parse(text, len, &c, ret_error);

	assert_null(c);
	return r;
}

static void test_parse(void **state)
{
	struct resolv_conf *c = parse_ok("# comment\n"
					 "; another\n"
					 "nameserver 192.0.2.1\r\n"
					 "  nameserver\tfd00::1  # trailing\n"
					 "nameserver fe80::1%eth0\n"
					 "domain first.example\n"
					 "search a.example b.example\n"
					 "options ndots:2\n"
					 "options rotate edns0\n"
					 "sortlist 130.155.160.0/255.255.240.0\n"
					 "nameserver\n"
					 "\n"
					 "lookup file bind");

	assert_int_equal(c->n_nameservers, 3);
	assert_string_equal(c->nameservers[0], "192.0.2.1");
	assert_string_equal(c->nameservers[1], "fd00::1");
	assert_string_equal(c->nameservers[2], "fe80::1%eth0");
	/* the last of search/domain wins, as in glibc */
	assert_int_equal(c->n_search, 2);
	assert_string_equal(c->search[0], "a.example");
	assert_string_equal(c->search[1], "b.example");
	assert_int_equal(c->n_options, 3);
	assert_string_equal(c->options[1], "rotate");
	assert_int_equal(c->n_other, 2);
	assert_string_equal(c->other[0], "sortlist 130.155.160.0/255.255.240.0");
	assert_string_equal(c->other[1], "lookup file bind");
	assert_false(c->ours);
	resolv_conf_free(c);

	c = parse_ok("");
	assert_int_equal(c->n_nameservers, 0);
	resolv_conf_free(c);
}

static void test_parse_errors(void **state)
{
	char big[RESOLV_CONF_MAX_SIZE + 2];
	char *error = NULL, *many = NULL;
	size_t len = 0;

	assert_int_equal(parse_err("nameserver 10.0.0.1\nnameserver not-an-ip\n", 41, &error),
			 -EINVAL);
	assert_non_null(strstr(error, "line 2"));
	assert_non_null(strstr(error, "not-an-ip"));
	free(error);

	assert_int_equal(parse_err("nameserver 1.2.3.4\0x", 20, &error), -EINVAL);
	assert_non_null(strstr(error, "NUL"));
	free(error);

	assert_int_equal(parse_err("nameserver fe80::1%\n", 20, NULL), -EINVAL);

	memset(big, '#', sizeof(big));
	assert_int_equal(parse_err(big, sizeof(big), &error), -EFBIG);
	free(error);

	for (unsigned i = 0; i <= RESOLV_CONF_MAX_ITEMS; i++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "options o%u\n", i);

		many = realloc(many, len + (size_t)n + 1);
		assert_non_null(many);
		memcpy(many + len, line, (size_t)n + 1);
		len += (size_t)n;
	}
	assert_int_equal(parse_err(many, len, &error), -E2BIG);
	assert_non_null(strstr(error, "more than"));
	free(error);
	free(many);
}

static void test_marker(void **state)
{
	static const char ours[] = RESOLV_MARKER ": cluster DNS first\nnameserver 10.96.0.10\n";
	static const char late[] = "nameserver 10.0.0.1\n" RESOLV_MARKER "\n";
	static const char indented[] = "# other\n  " RESOLV_MARKER "\nnameserver 1.1.1.1\n";
	struct resolv_conf *c;

	assert_true(resolv_conf_is_ours(ours, strlen(ours)));
	/* only the leading comment lines count */
	assert_false(resolv_conf_is_ours(late, strlen(late)));
	assert_false(resolv_conf_is_ours("", 0));
	assert_false(resolv_conf_is_ours(indented, strlen(indented)));
	c = parse_ok(ours);
	assert_true(c->ours);
	resolv_conf_free(c);
	c = parse_ok(late);
	assert_false(c->ours);
	resolv_conf_free(c);
}

static void test_stub(void **state)
{
	struct resolv_conf *c;

	c = parse_ok("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n");
	assert_true(resolv_conf_only_stub(c));
	resolv_conf_free(c);
	c = parse_ok("nameserver 127.0.0.53\nnameserver 127.0.0.54\n");
	assert_true(resolv_conf_only_stub(c));
	resolv_conf_free(c);
	c = parse_ok("nameserver 127.0.0.53\nnameserver 192.0.2.1\n");
	assert_false(resolv_conf_only_stub(c));
	resolv_conf_free(c);
	c = parse_ok("# no servers\n");
	assert_false(resolv_conf_only_stub(c));
	resolv_conf_free(c);
}

static char *render(const char *original, const char *servers_csv, const char *domain)
{
	struct kube_ip servers[4];
	struct resolv_conf *c = parse_ok(original);
	char *copy = strdup(servers_csv), *save = NULL, *out = NULL;
	size_t n = 0;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		assert_int_equal(kube_ip_parse(t, &servers[n++]), 0);
	assert_int_equal(resolv_conf_render(c, servers, n, domain, "/etc/resolv.conf.pre-kube-annex",
					    &out),
			 0);
	resolv_conf_free(c);
	free(copy);
	return out;
}

static void test_render(void **state)
{
	static const char expected[] =
		RESOLV_MARKER ": cluster DNS first, then this host's own servers.\n"
		"# The original file is kept as /etc/resolv.conf.pre-kube-annex and is put back when\n"
		"# kube-annex stops (or by `kube-annex --cleanup`). Edits here are lost then.\n"
		"nameserver 10.96.0.10\n"
		"nameserver 192.0.2.1\n"
		"nameserver 192.0.2.2\n"
		"search svc.cluster.local cluster.local example.com\n"
		"options edns0 timeout:1 attempts:2\n"
		"sortlist 10.0.0.0/255.0.0.0\n";
	char *out = render("# plain\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
			   "search example.com cluster.local\noptions edns0\n"
			   "sortlist 10.0.0.0/255.0.0.0\n",
			   "10.96.0.10", "cluster.local");
	struct resolv_conf *c;

	assert_string_equal(out, expected);
	/* It parses back as ours, cluster DNS first. */
	c = parse_ok(out);
	assert_true(c->ours);
	assert_true(resolv_conf_is_ours(out, strlen(out)));
	assert_string_equal(c->nameservers[0], "10.96.0.10");
	resolv_conf_free(c);
	free(out);
}

static void test_render_edges(void **state)
{
	struct resolv_conf *c;
	struct kube_ip ip;
	char *out;

	/* Duplicates and resolved's stub dropped, rotate dropped, the host's
	 * own timeout/attempts kept, a 4th server flagged. */
	out = render("nameserver 127.0.0.53\nnameserver 10.96.0.10\nnameserver 192.0.2.1\n"
		     "nameserver 192.0.2.2\nnameserver 192.0.2.3\noptions rotate timeout:3 attempts:5\n",
		     "10.96.0.10,fd00:96::a", "Corp.Example");
	assert_non_null(strstr(out, "nameserver 10.96.0.10\nnameserver fd00:96::a\n"
				    "nameserver 192.0.2.1\n# glibc uses the first 3 nameservers only\n"
				    "nameserver 192.0.2.2\nnameserver 192.0.2.3\n"));
	assert_null(strstr(out, "127.0.0.53"));
	assert_null(strstr(out, "rotate"));
	assert_non_null(strstr(out, "\noptions timeout:3 attempts:5\n"));
	assert_non_null(strstr(out, "\nsearch svc.Corp.Example Corp.Example\n"));
	c = parse_ok(out);
	assert_int_equal(c->n_nameservers, 5);
	resolv_conf_free(c);
	free(out);

	c = parse_ok("nameserver 192.0.2.1\n");
	assert_int_equal(kube_ip_parse("10.96.0.10", &ip), 0);
	assert_int_equal(resolv_conf_render(c, &ip, 0, "cluster.local", "/b", &out), -EINVAL);
	assert_int_equal(resolv_conf_render(c, &ip, 1, ".cluster.local", "/b", &out), -EINVAL);
	resolv_conf_free(c);
}

static bool nss(const char *text)
{
	return resolv_nsswitch_resolve_first(text, strlen(text));
}

static void test_nsswitch(void **state)
{
	assert_true(nss("passwd: files\nhosts: files resolve [!UNAVAIL=return] dns myhostname\n"));
	assert_true(nss("hosts:resolve dns\n"));
	assert_false(nss("hosts: files dns\n"));
	assert_false(nss("hosts: files dns resolve\n"));
	assert_false(nss("hosts: files mdns4_minimal [NOTFOUND=return] dns\n"));
	assert_false(nss("# hosts: files resolve\nhosts: files dns\n"));
	/* the last hosts: line wins */
	assert_false(nss("hosts: resolve\nhosts: files dns\n"));
	assert_true(nss("hosts: dns\nhosts: files resolve\n"));
	assert_false(nss(""));
}

static void test_domain(void **state)
{
	char label64[80], long_domain[300];

	assert_int_equal(resolv_domain_check("cluster.local"), 0);
	assert_int_equal(resolv_domain_check("k8s"), 0);
	assert_int_equal(resolv_domain_check("my-cluster.example_1.org"), 0);
	assert_int_equal(resolv_domain_check(""), -EINVAL);
	assert_int_equal(resolv_domain_check(NULL), -EINVAL);
	assert_int_equal(resolv_domain_check("cluster.local."), -EINVAL);
	assert_int_equal(resolv_domain_check(".local"), -EINVAL);
	assert_int_equal(resolv_domain_check("a..b"), -EINVAL);
	assert_int_equal(resolv_domain_check("clu ster"), -EINVAL);
	assert_int_equal(resolv_domain_check("~cluster.local"), -EINVAL);
	memset(label64, 'a', 64);
	label64[64] = 0;
	assert_int_equal(resolv_domain_check(label64), -EINVAL);
	label64[63] = 0;
	assert_int_equal(resolv_domain_check(label64), 0);
	for (size_t i = 0; i < 254; i++)
		long_domain[i] = i % 2 ? '.' : 'a';
	long_domain[254] = 0;
	assert_int_equal(resolv_domain_check(long_domain), -EINVAL);
}

static void check_options(const struct resolv_options *o, int want, const char *in_error)
{
	char *error = NULL;

	assert_int_equal(resolv_options_check(o, &error), want);
	if (in_error) {
		assert_non_null(error);
		assert_non_null(strstr(error, in_error));
	} else {
		assert_null(error);
	}
	free(error);
}

static void test_options(void **state)
{
	check_options(&(struct resolv_options){}, 0, NULL);
	check_options(&(struct resolv_options){ .mode = "resolved", .cluster_domain = "k8s.local",
						.service = "dns/coredns",
						.addresses = "10.96.0.10,fd00::a",
						.link_addresses = "169.254.20.10,fd00:53::53" },
		      0, NULL);
	check_options(&(struct resolv_options){ .mode = "nope" }, -EINVAL, "--dns=nope");
	check_options(&(struct resolv_options){ .cluster_domain = "a..b" }, -EINVAL,
		      "--cluster-domain");
	check_options(&(struct resolv_options){ .service = "kube-dns" }, -EINVAL, "NAMESPACE/NAME");
	check_options(&(struct resolv_options){ .service = "a/b/c" }, -EINVAL, "--dns-service");
	check_options(&(struct resolv_options){ .service = "/b" }, -EINVAL, "--dns-service");
	check_options(&(struct resolv_options){ .addresses = "10.96.0.300" }, -EINVAL,
		      "--dns-address");
	check_options(&(struct resolv_options){ .addresses = "" }, -EINVAL, "--dns-address");
	check_options(&(struct resolv_options){ .link_addresses = "169.254.1.1,169.254.1.2" },
		      -EINVAL, "one IPv4");
	assert_string_equal(resolv_mode_to_string(RESOLV_MODE_DIRECT), "direct");
	check_options(&(struct resolv_options){ .mode = "networkmanager" }, 0, NULL);
	assert_string_equal(resolv_mode_to_string(RESOLV_MODE_NETWORKMANAGER), "networkmanager");
}

/* ---- networkmanager mode's files ------------------------------------------ */

static void put(const char *path, const char *text, mode_t mode);

static bool by_nm(const char *text)
{
	return resolv_conf_by_networkmanager(text, strlen(text));
}

static void test_nm_detect_conf(void **state)
{
	static const char nm[] = "# Generated by NetworkManager\nsearch example.test\n"
				 "nameserver 127.0.0.1\noptions edns0 trust-ad\n";
	struct resolv_conf *c = parse_ok(nm);

	assert_true(resolv_conf_by_networkmanager(nm, strlen(nm)));
	assert_true(resolv_conf_only_nameserver(c, "127.0.0.1"));
	assert_false(resolv_conf_only_nameserver(c, "127.0.0.53"));
	resolv_conf_free(c);
	c = parse_ok("nameserver 127.0.0.1\nnameserver 192.0.2.1\n");
	assert_false(resolv_conf_only_nameserver(c, "127.0.0.1"));
	resolv_conf_free(c);
	c = parse_ok("search example.test\n");
	assert_false(resolv_conf_only_nameserver(c, "127.0.0.1"));
	resolv_conf_free(c);
	/* Only in the leading comments, as NetworkManager writes it. */
	assert_false(by_nm("nameserver 192.0.2.1\n# Generated by NetworkManager\n"));
	assert_true(by_nm("# other\n# Generated by NetworkManager\n"));
	assert_false(by_nm("#Generated by NetworkManager\n"));
	assert_false(by_nm(""));
}

static void test_nm_render(void **state)
{
	const char *domains[] = { "cluster.local", "96.10.in-addr.arpa" };
	struct kube_ip ips[2];
	char *out = NULL;

	assert_int_equal(kube_ip_parse("10.96.0.10", &ips[0]), 0);
	assert_int_equal(kube_ip_parse("fd00:96::a", &ips[1]), 0);
	assert_int_equal(resolv_nm_render_dnsmasq(ips, 2, domains, 1, &out), 0);
	assert_true(resolv_conf_is_ours(out, strlen(out)));
	assert_non_null(strstr(out, "\nserver=/cluster.local/10.96.0.10\n"
				    "server=/cluster.local/fd00:96::a\n"));
	/* Nothing else: no option that would change other names. */
	for (const char *l = out; *l; l = strchr(l, '\n') + 1)
		assert_true(*l == '#' || strncmp(l, "server=/cluster.local/", 22) == 0);
	free(out);

	assert_int_equal(resolv_nm_render_dnsmasq(ips, 1, domains, 2, &out), 0);
	assert_non_null(strstr(out, "\nserver=/cluster.local/10.96.0.10\n"
				    "server=/96.10.in-addr.arpa/10.96.0.10\n"));
	free(out);

	assert_int_equal(resolv_nm_render_dnsmasq(ips, 0, domains, 1, &out), -EINVAL);
	assert_int_equal(resolv_nm_render_dnsmasq(ips, 1, domains, 0, &out), -EINVAL);
	domains[0] = "bad/domain";
	assert_int_equal(resolv_nm_render_dnsmasq(ips, 1, domains, 1, &out), -EINVAL);

	assert_int_equal(resolv_nm_render_conf(RESOLV_NM_DNSMASQ_PATH, &out), 0);
	assert_true(resolv_conf_is_ours(out, strlen(out)));
	assert_non_null(strstr(out, "\n[main]\ndns=dnsmasq\n"));
	assert_non_null(strstr(out, RESOLV_NM_DNSMASQ_PATH));
	free(out);
}

static void check_zones(const char *cidr, int expect, size_t n, const char *first,
			const char *last)
{
	char **zones = NULL;
	size_t n_zones = 0;

	assert_int_equal(resolv_reverse_zones(cidr, &zones, &n_zones), expect);
	if (expect == 0) {
		assert_int_equal(n_zones, n);
		assert_string_equal(zones[0], first);
		assert_string_equal(zones[n_zones - 1], last);
		for (size_t i = 0; i < n_zones; i++)
			assert_int_equal(resolv_domain_check(zones[i]), 0);
	}
	for (size_t i = 0; i < n_zones; i++)
		free(zones[i]);
	free(zones);
}

static void test_reverse_zones(void **state)
{
	check_zones("10.96.0.0/16", 0, 1, "96.10.in-addr.arpa", "96.10.in-addr.arpa");
	check_zones("10.96.0.0/12", 0, 16, "96.10.in-addr.arpa", "111.10.in-addr.arpa");
	check_zones("10.0.0.0/8", 0, 1, "10.in-addr.arpa", "10.in-addr.arpa");
	check_zones("192.168.4.0/23", 0, 2, "4.168.192.in-addr.arpa", "5.168.192.in-addr.arpa");
	check_zones("10.96.0.10/32", 0, 1, "10.0.96.10.in-addr.arpa", "10.0.96.10.in-addr.arpa");
	check_zones("fd00:96::/112", 0, 1,
		    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa",
		    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa");
	check_zones("fd00:10:96::/110", 0, 4, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa",
		    "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa");
	check_zones("fd00::/8", 0, 1, "d.f.ip6.arpa", "d.f.ip6.arpa");
	check_zones("fc00::/7", 0, 2, "c.f.ip6.arpa", "d.f.ip6.arpa");
	/* Too many zones, host bits set, not a network. */
	check_zones("64.0.0.0/2", -E2BIG, 0, NULL, NULL);
	check_zones("10.96.0.1/16", -EINVAL, 0, NULL, NULL);
	check_zones("10.96.0.0", -EINVAL, 0, NULL, NULL);
	check_zones("10.96.0.0/0", -EINVAL, 0, NULL, NULL);
	check_zones("10.96.0.0/33", -EINVAL, 0, NULL, NULL);
	check_zones("10.96.0.0/+16", -EINVAL, 0, NULL, NULL);
	check_zones("10.96.0.0/16x", -EINVAL, 0, NULL, NULL);
	check_zones("cluster/16", -EINVAL, 0, NULL, NULL);
}

struct nm_dir {
	char path[64];
	char conf[96];
	char dnsmasq[96];
	struct resolv_nm_paths p;
	unsigned reports;
};

static void count_report(void *userdata, int priority, const char *message)
{
	struct nm_dir *d = userdata;

	d->reports++;
}

static int nm_dir_setup(void **state)
{
	struct nm_dir *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	snprintf(d->path, sizeof(d->path), "/tmp/test-resolv-nm-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->conf, sizeof(d->conf), "%s/90-kube-annex.conf", d->path);
	snprintf(d->dnsmasq, sizeof(d->dnsmasq), "%s/dnsmasq.conf", d->path);
	d->p = (struct resolv_nm_paths){ .conf = d->conf, .dnsmasq = d->dnsmasq };
	*state = d;
	return 0;
}

static int nm_dir_teardown(void **state)
{
	struct nm_dir *d = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
	free(d);
	return 0;
}

static void test_nm_remove_files(void **state)
{
	struct nm_dir *d = *state;
	struct kube_ip ip;
	const char *domains[] = { "cluster.local" };
	char *text = NULL;
	unsigned reload = 99;

	/* Nothing there: nothing to do, no reload. */
	assert_int_equal(resolv_nm_remove_files(&d->p, count_report, d, &reload), 0);
	assert_int_equal(reload, 0);

	/* Ours, written as nm.c writes them: removed; the flags they need. */
	assert_int_equal(kube_ip_parse("10.96.0.10", &ip), 0);
	assert_int_equal(resolv_nm_render_dnsmasq(&ip, 1, domains, 1, &text), 0);
	assert_int_equal(resolv_write_file(d->dnsmasq, text, 0644), 0);
	free(text);
	assert_int_equal(resolv_nm_render_conf(d->dnsmasq, &text), 0);
	assert_int_equal(resolv_write_file(d->conf, text, 0644), 0);
	free(text);
	assert_int_equal(resolv_nm_remove_files(&d->p, count_report, d, &reload), 0);
	assert_int_equal(reload, 0x5); /* CONF | DNS_FULL */
	assert_int_equal(access(d->conf, F_OK), -1);
	assert_int_equal(access(d->dnsmasq, F_OK), -1);
	assert_int_equal(d->reports, 0);

	/* Only the dnsmasq file (NetworkManager ran dnsmasq already): DNS_FULL. */
	assert_int_equal(resolv_nm_render_dnsmasq(&ip, 1, domains, 1, &text), 0);
	assert_int_equal(resolv_write_file(d->dnsmasq, text, 0644), 0);
	free(text);
	assert_int_equal(resolv_nm_remove_files(&d->p, count_report, d, &reload), 0);
	assert_int_equal(reload, 0x4);

	/* Someone else's files of those names are left alone, and said so. */
	put(d->conf, "[main]\ndns=dnsmasq\n", 0644);
	put(d->dnsmasq, "server=/corp.example/192.0.2.53\n# Generated by kube-annex\n", 0644);
	assert_int_equal(resolv_nm_remove_files(&d->p, count_report, d, &reload), 0);
	assert_int_equal(reload, 0);
	assert_int_equal(access(d->conf, F_OK), 0);
	assert_int_equal(access(d->dnsmasq, F_OK), 0);
	assert_int_equal(d->reports, 2);
}

/* ---- the REFUSED answer -------------------------------------------------- */

/* id 0x1234, RD, one question web.shop.svc.cluster.local A IN, optionally EDNS. */
static size_t build_query(uint8_t *q, bool edns)
{
	static const char *const labels[] = { "web", "shop", "svc", "cluster", "local" };
	size_t n = 12;

	memset(q, 0, 12);
	q[0] = 0x12;
	q[1] = 0x34;
	q[2] = 0x01; /* RD */
	q[5] = 1;
	q[11] = edns ? 1 : 0;
	for (size_t i = 0; i < ARRAY_SIZE(labels); i++) {
		q[n++] = (uint8_t)strlen(labels[i]);
		memcpy(q + n, labels[i], strlen(labels[i]));
		n += strlen(labels[i]);
	}
	q[n++] = 0;
	q[n++] = 0, q[n++] = 1; /* A */
	q[n++] = 0, q[n++] = 1; /* IN */
	if (edns) {
		static const uint8_t opt[] = { 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0 };

		memcpy(q + n, opt, sizeof(opt));
		n += sizeof(opt);
	}
	return n;
}

static void test_refused(void **state)
{
	uint8_t q[128], a[256];
	size_t qlen, alen;

	qlen = build_query(q, false);
	assert_int_equal(resolv_refused_reply(q, qlen, a, sizeof(a), &alen), 0);
	assert_int_equal(alen, qlen);
	assert_int_equal(a[0], 0x12);
	assert_int_equal(a[1], 0x34);
	assert_int_equal(a[2], 0x81); /* QR, RD */
	assert_int_equal(a[3] & 0x0f, 5);
	assert_int_equal(a[5], 1);
	assert_int_equal(a[7] | a[9] | a[11], 0);
	assert_memory_equal(a + 12, q + 12, qlen - 12);

	qlen = build_query(q, true);
	assert_int_equal(resolv_refused_reply(q, qlen, a, sizeof(a), &alen), 0);
	assert_int_equal(alen, qlen);
	assert_int_equal(a[11], 1);
	assert_int_equal(a[alen - 11 + 2], 41);

	/* a response, too short, too small a buffer */
	q[2] |= 0x80;
	assert_int_equal(resolv_refused_reply(q, qlen, a, sizeof(a), &alen), -EINVAL);
	assert_int_equal(resolv_refused_reply(q, 11, a, sizeof(a), &alen), -EINVAL);
	q[2] &= 0x7f;
	assert_int_equal(resolv_refused_reply(q, qlen, a, 20, &alen), -ENOBUFS);

	/* a compressed or truncated question: answered without it */
	q[12] = 0xc0;
	assert_int_equal(resolv_refused_reply(q, qlen, a, sizeof(a), &alen), 0);
	assert_int_equal(alen, 12);
	assert_int_equal(a[5], 0);
	qlen = build_query(q, false);
	assert_int_equal(resolv_refused_reply(q, qlen - 2, a, sizeof(a), &alen), 0);
	assert_int_equal(alen, 12);
}

/* ---- direct mode's files ------------------------------------------------- */

struct dir {
	char path[64];
	char conf[96];
	char backup[96];
	struct resolv_direct_paths p;
};

static int dir_setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	snprintf(d->path, sizeof(d->path), "/tmp/test-resolv-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->conf, sizeof(d->conf), "%s/resolv.conf", d->path);
	snprintf(d->backup, sizeof(d->backup), "%s/resolv.conf.pre-kube-annex", d->path);
	d->p = (struct resolv_direct_paths){ .conf = d->conf, .backup = d->backup };
	*state = d;
	return 0;
}

static int dir_teardown(void **state)
{
	struct dir *d = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
	free(d);
	return 0;
}

static void put(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static char *get(const char *path)
{
	char *text = NULL;
	size_t len;

	assert_int_equal(resolv_read_file(path, RESOLV_CONF_MAX_SIZE, &text, &len), 0);
	return text;
}

static void direct_apply(struct dir *d, const char *server)
{
	struct resolv_conf *c = NULL;
	char *orig = NULL, *out = NULL, *error = NULL;
	struct kube_ip ip;
	size_t len;

	assert_int_equal(resolv_direct_read_original(&d->p, &orig, &len, &error), 0);
	assert_int_equal(resolv_conf_parse(orig, len, &c, &error), 0);
	assert_int_equal(kube_ip_parse(server, &ip), 0);
	assert_int_equal(resolv_conf_render(c, &ip, 1, "cluster.local", d->backup, &out), 0);
	assert_int_equal(resolv_direct_write(&d->p, out, &error), 0);
	assert_null(error);
	resolv_conf_free(c);
	free(orig);
	free(out);
}

static void test_direct_file(void **state)
{
	static const char original[] = "nameserver 192.0.2.1\nsearch example.com\n";
	struct dir *d = *state;
	char *text, *error = NULL;
	bool restored;
	struct stat st;

	put(d->conf, original, 0640);
	direct_apply(d, "10.96.0.10");
	text = get(d->conf);
	assert_true(resolv_conf_is_ours(text, strlen(text)));
	assert_non_null(strstr(text, "nameserver 10.96.0.10\nnameserver 192.0.2.1\n"));
	free(text);
	text = get(d->backup);
	assert_string_equal(text, original);
	free(text);

	/* A restart (or a new ClusterIP): the backup stays the original. */
	direct_apply(d, "10.96.0.11");
	text = get(d->backup);
	assert_string_equal(text, original);
	free(text);
	text = get(d->conf);
	assert_non_null(strstr(text, "nameserver 10.96.0.11\nnameserver 192.0.2.1\n"));
	assert_null(strstr(text, "10.96.0.10"));
	free(text);

	assert_int_equal(resolv_direct_restore(&d->p, &restored, &error), 0);
	assert_true(restored);
	text = get(d->conf);
	assert_string_equal(text, original);
	free(text);
	assert_int_equal(stat(d->conf, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(access(d->backup, F_OK), -1);

	/* Idempotent. */
	assert_int_equal(resolv_direct_restore(&d->p, &restored, &error), 0);
	assert_false(restored);
}

static void test_direct_symlink(void **state)
{
	struct dir *d = *state;
	char target[128], link[256], *error = NULL;
	bool restored;
	ssize_t n;

	snprintf(target, sizeof(target), "%s/real.conf", d->path);
	put(target, "nameserver 192.0.2.9\n", 0644);
	assert_int_equal(symlink("real.conf", d->conf), 0);
	direct_apply(d, "10.96.0.10");
	/* The symlink is replaced by a file of ours; its target untouched. */
	n = readlink(d->conf, link, sizeof(link));
	assert_int_equal(n, -1);
	n = readlink(d->backup, link, sizeof(link) - 1);
	assert_int_equal(n, 9);
	link[n] = 0;
	assert_string_equal(link, "real.conf");
	assert_int_equal(resolv_direct_restore(&d->p, &restored, &error), 0);
	assert_true(restored);
	n = readlink(d->conf, link, sizeof(link) - 1);
	assert_int_equal(n, 9);
}

static void test_direct_other_writer(void **state)
{
	static const char theirs[] = "nameserver 198.51.100.1\n";
	struct dir *d = *state;
	char *text, *error = NULL;
	bool restored;

	put(d->conf, "nameserver 192.0.2.1\n", 0644);
	direct_apply(d, "10.96.0.10");
	put(d->conf, theirs, 0644);
	assert_int_equal(resolv_direct_restore(&d->p, &restored, &error), 0);
	assert_false(restored);
	text = get(d->conf);
	assert_string_equal(text, theirs);
	free(text);
	assert_int_equal(access(d->backup, F_OK), -1);

	/* Ours without the backup: refuse with a message, touch nothing. */
	direct_apply(d, "10.96.0.10");
	assert_int_equal(unlink(d->backup), 0);
	assert_int_equal(resolv_direct_restore(&d->p, &restored, &error), -ENOENT);
	assert_non_null(strstr(error, "missing"));
	free(error);
	error = NULL;
	text = NULL;
	size_t len;
	assert_int_equal(resolv_direct_read_original(&d->p, &text, &len, &error), -ENOENT);
	free(error);

	/* No file at all: nothing to do. */
	assert_int_equal(unlink(d->conf), 0);
	assert_int_equal(resolv_direct_write(&d->p, "x", &error), -ENOENT);
	free(error);
}

/* ---- the link, in a private network namespace ---------------------------- */

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "link test: %s:%d: %s\n", __FILE__,      \
				__LINE__, #cond);                              \
			_exit(1);                                              \
		}                                                              \
	} while (0)

static bool sh(const char *cmd)
{
	return system(cmd) == 0;
}

static void link_child(void)
{
	struct kube_ip a, b;
	const char *kind = NULL;
	char *error = NULL;
	int ifindex = 0, again = 0;

	CHECK(kube_ip_parse("169.254.53.53", &a) == 0);
	CHECK(kube_ip_parse("169.254.53.54", &b) == 0);
	CHECK(resolv_link_ensure("t-ka0", &a, 1, &ifindex, &kind, &error) == 0);
	CHECK(ifindex > 0 && kind && (streq(kind, "dummy") || streq(kind, "ifb")));
	CHECK(sh("ip -o addr show dev t-ka0 | grep -q 'inet 169.254.53.53/32 scope global'"));
	CHECK(!sh("ip -o addr show dev t-ka0 | grep -q inet6"));
	/* Again, with another address: the same link, only the new address. */
	CHECK(resolv_link_ensure("t-ka0", &b, 1, &again, &kind, &error) == 0);
	CHECK(again == ifindex);
	CHECK(sh("ip -o addr show dev t-ka0 | grep -q 'inet 169.254.53.54/32'"));
	CHECK(!sh("ip -o addr show dev t-ka0 | grep -q '169.254.53.53'"));
	CHECK(resolv_link_set_up(ifindex, &error) == 0);
	CHECK(sh("ip -o link show dev t-ka0 | grep -q 'UP,LOWER_UP'"));
	CHECK(resolv_link_delete("t-ka0", &error) == 0);
	CHECK(!sh("ip link show dev t-ka0 2>/dev/null"));
	CHECK(resolv_link_delete("t-ka0", &error) == 0);
	CHECK(error == NULL);
	/* Somebody else's link of that name is never taken over. */
	CHECK(sh("ip link add t-ka0 type bridge"));
	CHECK(resolv_link_ensure("t-ka0", &a, 1, &ifindex, &kind, &error) == -EEXIST);
	CHECK(error && strstr(error, "bridge"));
	_exit(0);
}

static void test_link(void **state)
{
	int status = 0;
	pid_t pid;

	if (geteuid() != 0) {
		fprintf(stderr, "test_link: needs root (a private network namespace)\n");
		skip();
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0) {
			perror("unshare(CLONE_NEWNET)");
			_exit(77);
		}
		link_child();
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_marker),
		cmocka_unit_test(test_stub),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_edges),
		cmocka_unit_test(test_nsswitch),
		cmocka_unit_test(test_domain),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_nm_detect_conf),
		cmocka_unit_test(test_nm_render),
		cmocka_unit_test(test_reverse_zones),
		cmocka_unit_test_setup_teardown(test_nm_remove_files, nm_dir_setup, nm_dir_teardown),
		cmocka_unit_test(test_link),
		cmocka_unit_test_setup_teardown(test_direct_file, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_direct_symlink, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_direct_other_writer, dir_setup, dir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
