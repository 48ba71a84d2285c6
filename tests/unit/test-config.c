/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for the settings: the configuration file, the command line,
 * their order, and every error message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "agent/config.h"
#include "agent/service.h"

static char tmpdir[] = "/tmp/test-config-XXXXXX";

static char *mfree_test(char *p)
{
	free(p);
	return NULL;
}

static struct config *parse_ok(const char *text)
{
	struct config *c = config_new();
	char *error = NULL;

	assert_non_null(c);
	if (config_parse(c, "/etc/kube-annex/config.yaml", text, strlen(text), &error) < 0)
		fail_msg("unexpected error: %s", error);
	assert_null(error);
	return c;
}

/* The error for text, which must be an error starting with want. */
static void parse_fails(const char *text, size_t len, int want_r, const char *want)
{
	_cleanup_(config_freep) struct config *c = config_new();
	_cleanup_(freep) char *error = NULL;
	int r;

	assert_non_null(c);
	r = config_parse(c, "/etc/kube-annex/config.yaml", text, len, &error);
	assert_int_equal(r, want_r);
	assert_non_null(error);
	if (strncmp(error, want, strlen(want)) != 0)
		fail_msg("error '%s' does not start with '%s'", error, want);
}

#define FAILS(text, want) parse_fails(text, strlen(text), -EINVAL, want)

static void test_defaults(void **state)
{
	_cleanup_(config_freep) struct config *c = parse_ok("");
	struct resolv_options o;

	assert_null(c->kubeconfig);
	assert_null(c->context);
	assert_false(c->keep_rules);
	assert_int_equal(c->min_sync_interval_usec, 5 * USEC_PER_MSEC);
	assert_null(c->zone);
	assert_true(c->external_ips);
	assert_false(c->gateway);
	assert_false(c->verbose);
	config_dns_options(c, &o);
	assert_null(o.mode);
	assert_null(o.cluster_domain);
	assert_null(o.service);
	assert_null(o.addresses);
	assert_null(o.link_addresses);
}

static void test_comments_only(void **state)
{
	config_free(parse_ok("# kube-annex settings\n\n# zone: a\n"));
	config_free(parse_ok("---\n"));
	config_free(parse_ok("~\n"));
	config_free(parse_ok("---\n...\n"));
}

static void test_every_key(void **state)
{
	_cleanup_(config_freep) struct config *c = parse_ok(
		"kubeconfig: /etc/kube-annex/other\n"
		"context: prod\n"
		"keep-rules: true\n"
		"zone: zone-a\n"
		"external-ips: false\n"
		"gateway: true\n"
		"min-sync-interval: 250\n"
		"dns: resolved\n"
		"cluster-domain: corp.example\n"
		"dns-service: dns/coredns\n"
		"dns-address: [10.96.0.10, 'fd00:96::a']\n"
		"dns-link-address: 169.254.53.54,fd00:53::53\n"
		"verbose: yes\n");

	assert_string_equal(c->kubeconfig, "/etc/kube-annex/other");
	assert_string_equal(c->context, "prod");
	assert_true(c->keep_rules);
	assert_string_equal(c->zone, "zone-a");
	assert_false(c->external_ips);
	assert_true(c->gateway);
	assert_int_equal(c->min_sync_interval_usec, 250 * USEC_PER_MSEC);
	assert_string_equal(c->dns_mode, "resolved");
	assert_string_equal(c->cluster_domain, "corp.example");
	assert_string_equal(c->dns_service, "dns/coredns");
	assert_string_equal(c->dns_addresses, "10.96.0.10,fd00:96::a");
	assert_string_equal(c->dns_link_addresses, "169.254.53.54,fd00:53::53");
	assert_true(c->verbose);
}

static void test_values(void **state)
{
	struct config *c;

	/* Booleans in YAML's usual spellings; quoted numbers; an empty value
	 * or null is the default; a relative kubeconfig is next to the file. */
	c = parse_ok("keep-rules: True\nexternal-ips: off\nmin-sync-interval: \"0\"\n"
		     "zone:\ncontext: ~\ndns: null\nkubeconfig: kc\ndns-address: []\n");
	assert_true(c->keep_rules);
	assert_false(c->external_ips);
	assert_int_equal(c->min_sync_interval_usec, 0);
	assert_null(c->zone);
	assert_null(c->context);
	assert_null(c->dns_mode);
	assert_string_equal(c->kubeconfig, "/etc/kube-annex/kc");
	assert_null(c->dns_addresses);
	config_free(c);

	c = parse_ok("min-sync-interval: 60000\nexternal-ips:\nzone: ''\n");
	assert_int_equal(c->min_sync_interval_usec, 60000 * USEC_PER_MSEC);
	assert_true(c->external_ips);
	assert_null(c->zone);
	config_free(c);

	/* A flow mapping is the same document. */
	c = parse_ok("{zone: b, keep-rules: false}");
	assert_string_equal(c->zone, "b");
	config_free(c);
}

static void test_errors(void **state)
{
	FAILS("zonee: a\n", "/etc/kube-annex/config.yaml:1: unknown key 'zonee' (value 'a')");
	FAILS("zone: a\nzonee:\n  x: 1\n", "/etc/kube-annex/config.yaml:2: unknown key 'zonee'; ");
	FAILS("no-external-ips: true\n", "/etc/kube-annex/config.yaml:1: unknown key 'no-external-ips'");
	FAILS("zone: a\nzone: b\n", "/etc/kube-annex/config.yaml:2: zone: given twice (first on line 1)");
	FAILS("keep-rules: maybe\n", "/etc/kube-annex/config.yaml:1: keep-rules: 'maybe' is not true or false");
	FAILS("keep-rules: 1\n", "/etc/kube-annex/config.yaml:1: keep-rules: '1' is not true or false");
	FAILS("min-sync-interval: 60001\n",
	      "/etc/kube-annex/config.yaml:1: min-sync-interval: '60001' is not a number of "
	      "milliseconds between 0 and 60000");
	FAILS("min-sync-interval: -1\n", "/etc/kube-annex/config.yaml:1: min-sync-interval: '-1' is not");
	FAILS("min-sync-interval: 5ms\n", "/etc/kube-annex/config.yaml:1: min-sync-interval: '5ms' is not");
	FAILS("min-sync-interval: 99999999999999999999999\n", "/etc/kube-annex/config.yaml:1: min-sync-interval: '9");
	FAILS("dns: maybe\n", "/etc/kube-annex/config.yaml:1: dns: 'maybe': expected auto, resolved, direct, networkmanager or off");
	FAILS("cluster-domain: -bad-.\n", "/etc/kube-annex/config.yaml:1: cluster-domain: '-bad-.': not a DNS domain");
	FAILS("dns-service: kube-dns\n", "/etc/kube-annex/config.yaml:1: dns-service: 'kube-dns': expected NAMESPACE/NAME");
	FAILS("dns-address: [10.96.0.10, nope]\n",
	      "/etc/kube-annex/config.yaml:1: dns-address: '10.96.0.10,nope': expected IP[,IP...]");
	FAILS("dns-link-address: 169.254.53.53,169.254.53.54\n",
	      "/etc/kube-annex/config.yaml:1: dns-link-address: '169.254.53.53,169.254.53.54': "
	      "expected one IPv4 and/or one IPv6 address");
	FAILS("dns-address: [[10.0.0.1]]\n", "/etc/kube-annex/config.yaml:1: dns-address: list items must be addresses");
	FAILS("dns-address: ['']\n", "/etc/kube-annex/config.yaml:1: dns-address: empty list item");
	FAILS("dns-address: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\n",
	      "/etc/kube-annex/config.yaml:1: dns-address: more than 16 items");
	{
		/* namespaces take more items: up to 64 */
		char text[1024] = "namespaces: [";

		for (int i = 0; i < 64; i++)
			sprintf(text + strlen(text), "%sn%d", i ? ", " : "", i);
		strcat(text, "]\n");
		_cleanup_(config_freep) struct config *c = parse_ok(text);
		assert_non_null(strstr(c->namespaces, "n0,n1,n2,"));
		strcpy(text + strlen(text) - 2, ", n64]\n");
		FAILS(text, "/etc/kube-annex/config.yaml:1: namespaces: more than 64 items");
	}
	FAILS("dns-address: {a: b}\n",
	      "/etc/kube-annex/config.yaml:1: dns-address: expected an address or a list of addresses, not a mapping");
	FAILS("zone: [a]\n", "/etc/kube-annex/config.yaml:1: zone: expected a single value, not a list");
	FAILS("zone: {a: b}\n", "/etc/kube-annex/config.yaml:1: zone: expected a single value, not a mapping");
	FAILS("context: \"a\\0b\"\n", "/etc/kube-annex/config.yaml:1: context: the value contains a NUL character");
	FAILS("[a, b]\n", "/etc/kube-annex/config.yaml:1: expected settings as 'key: value' lines");
	FAILS("zone\n", "/etc/kube-annex/config.yaml:1: expected settings as 'key: value' lines");
	FAILS("? [a]\n: b\n", "/etc/kube-annex/config.yaml:1: keys must be setting names");
	FAILS("zone: a\n---\nzone: b\n", "/etc/kube-annex/config.yaml: more than one YAML document");
	FAILS("zone: \"a\n", "/etc/kube-annex/config.yaml:2: not valid YAML: ");
	FAILS("\nnamespaces: [shop, Billing]\n",
	      "/etc/kube-annex/config.yaml:2: namespaces: 'Billing' is not a namespace name "
	      "(lower-case letters, digits and '-', at most 63)");
	FAILS("namespaces: [a, a]\n", "/etc/kube-annex/config.yaml:1: namespaces: namespace 'a' is given twice");
	FAILS("namespaces: [[a]]\n", "/etc/kube-annex/config.yaml:1: namespaces: list items must be namespace names");
	FAILS("namespaces: {a: b}\n",
	      "/etc/kube-annex/config.yaml:1: namespaces: expected a list of namespace names, not a mapping");
	FAILS("label-selector: 'tier in (web'\n",
	      "/etc/kube-annex/config.yaml:1: label-selector: 'tier in (web': ',' or ')' expected "
	      "in the values of 'tier'");
	FAILS("label-selector: [a]\n", "/etc/kube-annex/config.yaml:1: label-selector: expected a single value, not a list");
	FAILS("zone: a\n  b: c\n", "/etc/kube-annex/config.yaml:2: not valid YAML: ");
	FAILS("\tzone: a\n", "/etc/kube-annex/config.yaml:1: not valid YAML: ");
}

static void test_limits(void **state)
{
	size_t big = CONFIG_MAX_SIZE + 1;
	_cleanup_(freep) char *text = malloc(big + 1);
	_cleanup_(freep) char *value = NULL;

	assert_non_null(text);
	memset(text, '#', big);
	text[big] = 0;
	parse_fails(text, big, -EFBIG, "/etc/kube-annex/config.yaml: larger than 65536 bytes");

	value = malloc(5000 + 16);
	assert_non_null(value);
	strcpy(value, "context: ");
	memset(value + 9, 'a', 5000);
	value[5009] = 0;
	FAILS(value, "/etc/kube-annex/config.yaml:1: context: value longer than 4096 characters");
	value[9 + 300] = 0;
	FAILS(value, "/etc/kube-annex/config.yaml:1: context: 'aaaaaaaa");
}

static char **make_argv(int *ret_argc, ...)
{
	static char *argv[32];
	va_list ap;
	int n = 0;

	argv[n++] = (char *)"kube-annex";
	va_start(ap, ret_argc);
	for (char *s; (s = va_arg(ap, char *));)
		argv[n++] = s;
	va_end(ap);
	argv[n] = NULL;
	*ret_argc = n;
	return argv;
}

static const char *write_config(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_argv_over_file(void **state)
{
	const char *path = write_config("c.yaml", "zone: from-file\nmin-sync-interval: 7\n"
					"dns: off\nexternal-ips: true\ngateway: false\n");
	struct config_args a;
	_cleanup_(config_freep) struct config *c = NULL;
	_cleanup_(freep) char *error = NULL, *read = NULL;
	int argc;
	char **argv = make_argv(&argc, "--config", path, "--zone", "from-argv", "--no-external-ips",
				"-v", "--dns=resolved", "--gateway", NULL);

	assert_int_equal(config_parse_argv(argc, argv, &a, &error), 0);
	assert_int_equal(a.action, CONFIG_ACTION_RUN);
	assert_int_equal(config_load(&a, &c, &read, &error), 0);
	assert_string_equal(read, path);
	assert_string_equal(c->zone, "from-argv");
	assert_int_equal(c->min_sync_interval_usec, 7 * USEC_PER_MSEC);
	assert_false(c->external_ips);
	assert_true(c->verbose);
	assert_true(c->gateway);
	assert_string_equal(c->dns_mode, "resolved");
	config_args_done(&a);
}

static void test_scope_settings(void **state)
{
	const char *path = write_config("scope.yaml", "namespaces: [shop, billing]\n"
					"label-selector: expose-to=legacy\n");
	struct config_args a;
	_cleanup_(config_freep) struct config *c = NULL, *d = NULL;
	_cleanup_(freep) char *error = NULL, *diff = NULL;
	int argc;
	char **argv = make_argv(&argc, "--config", path, NULL);

	assert_int_equal(config_parse_argv(argc, argv, &a, &error), 0);
	assert_int_equal(config_load(&a, &c, NULL, &error), 0);
	assert_string_equal(c->namespaces, "shop,billing");
	assert_string_equal(c->label_selector, "expose-to=legacy");
	config_args_done(&a);

	/* the command line wins; a reload tells what changed */
	argv = make_argv(&argc, "--config", path, "--namespaces", "a,b", "--label-selector",
			 "tier in (web, api),!legacy", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), 0);
	assert_int_equal(config_load(&a, &d, NULL, &error), 0);
	assert_string_equal(d->namespaces, "a,b");
	assert_string_equal(d->label_selector, "tier in (web, api),!legacy");
	diff = config_diff(c, d);
	assert_string_equal(diff, "namespaces, label-selector");
	config_args_done(&a);

	argv = make_argv(&argc, "--namespaces", "a,,b", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), -EINVAL);
	assert_string_equal(error, "--namespaces: '' is not a namespace name (lower-case letters, "
				   "digits and '-', at most 63)");
	error = mfree_test(error);
	argv = make_argv(&argc, "--label-selector", "app=", "--label-selector", "=x", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), -EINVAL);
	assert_string_equal(error, "--label-selector: '=x': a label key is missing at position 1");
}

static void test_argv_actions_and_errors(void **state)
{
	struct config_args a;
	char *error = NULL;
	char **argv;
	int argc;

	argv = make_argv(&argc, "--cleanup", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), 0);
	assert_int_equal(a.action, CONFIG_ACTION_CLEANUP);
	config_args_done(&a);
	argv = make_argv(&argc, "--cleanup=unless-restarting", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), 0);
	assert_int_equal(a.action, CONFIG_ACTION_STOP_CLEANUP);
	config_args_done(&a);
	argv = make_argv(&argc, "--check-config", "--kubeconfig", "/x", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), 0);
	assert_int_equal(a.action, CONFIG_ACTION_CHECK);
	assert_int_equal(a.n_settings, 1);
	config_args_done(&a);
	argv = make_argv(&argc, "--reload", "123", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), 0);
	assert_int_equal(a.action, CONFIG_ACTION_RELOAD);
	assert_string_equal(a.reload_pid, "123");
	config_args_done(&a);

	argv = make_argv(&argc, "--cleanup=sometimes", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), -EINVAL);
	assert_string_equal(error, "--cleanup=sometimes: expected --cleanup or "
				   "--cleanup=unless-restarting");
	error = mfree_test(error);
	argv = make_argv(&argc, "--min-sync-interval", "x", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), -EINVAL);
	assert_string_equal(error, "--min-sync-interval: 'x' is not a number of milliseconds "
				   "between 0 and 60000");
	error = mfree_test(error);
	argv = make_argv(&argc, "--dns", "bogus", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), -EINVAL);
	assert_string_equal(error, "--dns: 'bogus': expected auto, resolved, direct, networkmanager or off");
	error = mfree_test(error);
	argv = make_argv(&argc, "extra", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), -EINVAL);
	assert_string_equal(error, "unexpected argument 'extra' (see --help)");
	error = mfree_test(error);
	argv = make_argv(&argc, "--no-such-option", NULL);
	assert_int_equal(config_parse_argv(argc, argv, &a, &error), -EINVAL);
	assert_null(error); /* getopt said it */
}

static void test_load_files(void **state)
{
	struct config_args a = {};
	_cleanup_(freep) char *error = NULL, *read = NULL;
	struct config *c = NULL;
	char missing[600];

	/* A missing --config file is an error; a broken one names itself. */
	snprintf(missing, sizeof(missing), "%s/missing.yaml", tmpdir);
	a.config_path = missing;
	assert_int_equal(config_load(&a, &c, &read, &error), -ENOENT);
	assert_true(strstr(error, "missing.yaml: No such file or directory") != NULL);
	error = mfree_test(error);
	a.config_path = tmpdir;
	assert_int_equal(config_load(&a, &c, &read, &error), -EISDIR);
	error = mfree_test(error);
	a.config_path = write_config("bad.yaml", "zone: a\nfoo: bar\n");
	assert_int_equal(config_load(&a, &c, &read, &error), -EINVAL);
	assert_true(strstr(error, "bad.yaml:2: unknown key 'foo' (value 'bar')") != NULL);
}

static void test_kubeconfig_path(void **state)
{
	_cleanup_(config_freep) struct config *c = config_new();
	char *p, *note;

	unsetenv("KUBECONFIG");
	p = config_kubeconfig_path(c, &note);
	assert_string_equal(p, CONFIG_DEFAULT_KUBECONFIG);
	assert_null(note);
	free(p);
	setenv("KUBECONFIG", "/a:/b", 1);
	p = config_kubeconfig_path(c, &note);
	assert_string_equal(p, "/a");
	assert_non_null(note);
	free(p);
	free(note);
	c->kubeconfig = strdup("/set");
	p = config_kubeconfig_path(c, &note);
	assert_string_equal(p, "/set");
	free(p);
	unsetenv("KUBECONFIG");
}

static void test_diff(void **state)
{
	_cleanup_(config_freep) struct config *a = parse_ok("zone: a\n");
	_cleanup_(config_freep) struct config *b = parse_ok("zone: b\nverbose: true\ndns: off\n");
	_cleanup_(config_freep) struct config *c = parse_ok("zone: a\n");
	_cleanup_(freep) char *d = config_diff(a, b);

	assert_string_equal(d, "zone, dns, verbose");
	assert_null(config_diff(a, c));
}

/* The example the packages install, with every setting uncommented, is
 * valid and says the defaults. */
static void test_example(void **state)
{
	const char *src = getenv("KUBE_ANNEX_SOURCE");
	_cleanup_(freep) char *path = strdup_printf("%s/systemd/config.yaml", src ? src : ".");
	_cleanup_(freep) char *error = NULL;
	_cleanup_(config_freep) struct config *c = config_new(), *d = config_new();
	char text[8192], line[512];
	size_t len = 0, n = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		fail_msg("cannot open %s", path);
	while (fgets(line, sizeof(line), f)) {
		const char *p = line;

		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strchr(line, ':')) {
			p = line + 1; /* "#zone:" -> "zone:" */
			n++;
		}
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s", p);
		assert_true(len < sizeof(text));
	}
	fclose(f);
	assert_true(n >= 14);
	if (config_parse(c, "/etc/kube-annex/config.yaml", text, len, &error) < 0)
		fail_msg("%s", error);
	assert_string_equal(c->kubeconfig, "/etc/kube-annex/kubeconfig");
	assert_string_equal(c->dns_mode, "auto");
	assert_null(c->dns_addresses);
	/* Besides naming them, the defaults are the defaults. */
	assert_int_equal(c->min_sync_interval_usec, d->min_sync_interval_usec);
	assert_int_equal(c->external_ips, d->external_ips);
	assert_int_equal(c->keep_rules, d->keep_rules);
	assert_int_equal(c->gateway, d->gateway);
}

static void test_format(void **state)
{
	char buf[32];

	assert_string_equal(service_format_count(0, buf, sizeof(buf)), "0");
	assert_string_equal(service_format_count(312, buf, sizeof(buf)), "312");
	assert_string_equal(service_format_count(1204, buf, sizeof(buf)), "1,204");
	assert_string_equal(service_format_count(1234567, buf, sizeof(buf)), "1,234,567");
	assert_string_equal(service_format_count(1234567, buf, 4), "1,2");
	setenv("TZ", "UTC", 1);
	tzset();
	assert_string_equal(service_format_time(UINT64_C(1700000000) * USEC_PER_SEC, buf,
						sizeof(buf)), "22:13:20");
}

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_comments_only),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_argv_over_file),
		cmocka_unit_test(test_scope_settings),
		cmocka_unit_test(test_argv_actions_and_errors),
		cmocka_unit_test(test_load_files),
		cmocka_unit_test(test_kubeconfig_path),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
