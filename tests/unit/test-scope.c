/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for scope selection: namespace lists, label selector syntax,
 * the watches a scope needs and their URLs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/kube.h"
#include "kube/scope.h"
#include "lib/util.h"

static void selector_ok(const char *s)
{
	char *error = NULL;

	if (kube_label_selector_check(s, &error) < 0)
		fail_msg("'%s' refused: %s", s, error);
	assert_null(error);
}

static void selector_bad(const char *s, const char *message)
{
	char *error = NULL;

	assert_int_equal(kube_label_selector_check(s, &error), -EINVAL);
	assert_non_null(error);
	if (!strstr(error, message))
		fail_msg("'%s': got '%s', expected it to contain '%s'", s, error, message);
	free(error);
}

static void test_label_selectors(void **state)
{
	selector_ok("app=web");
	selector_ok("app==web");
	selector_ok("app!=web");
	selector_ok("app");
	selector_ok("!legacy");
	selector_ok("app=");
	selector_ok("example.com/expose-to=legacy-hosts");
	selector_ok(" app = web , tier in (a, b),!legacy,env notin (dev)");
	selector_ok("tier in (a,)");
	selector_ok("replicas>3,replicas<10");
	selector_ok("a_b.c-d=E_f.G-9");

	selector_bad("", "a label key is missing");
	selector_bad("app=web,", "a label key is missing");
	selector_bad("-app=web", "'-app' is not a label key");
	selector_bad("App.Example.com/x=y", "'App.Example.com/x' is not a label key");
	selector_bad("app=we b", "',' expected at position 8");
	selector_bad("app=-web", "'-web' is not a label value");
	selector_bad("app in (a,b", "',' or ')' expected in the values of 'app'");
	selector_bad("app in a", "'(' expected after 'in'/'notin' for 'app'");
	selector_bad("app in ()", "the set of values of 'app' is empty");
	selector_bad("app in ( )", "the set of values of 'app' is empty");
	selector_bad("app !web", "'!=' expected after 'app'");
	selector_bad("app>x", "'<' and '>' need a whole number");
	selector_bad("app is web", "unexpected 'is' after 'app'");
	selector_bad("app=web\n", "'app=web?'");
	{
		char long_sel[KUBE_MAX_SELECTOR_LEN + 2];

		memset(long_sel, 'a', sizeof(long_sel) - 1);
		long_sel[sizeof(long_sel) - 1] = 0;
		selector_bad(long_sel, "longer than 1024 characters");
	}
	{
		/* name parts are at most 63 long */
		char key[70];

		memset(key, 'k', 64);
		strcpy(key + 64, "=v");
		selector_bad(key, "is not a label key");
	}
}

static void test_namespaces(void **state)
{
	char *error = NULL;
	char many[KUBE_MAX_NAMESPACES * 4 + 8] = "";

	assert_int_equal(kube_namespaces_check("a", &error), 0);
	assert_int_equal(kube_namespaces_check("shop,kube-system,a1", &error), 0);
	assert_int_equal(kube_namespaces_check("Shop", &error), -EINVAL);
	assert_string_equal(error, "'Shop' is not a namespace name (lower-case letters, digits and "
				   "'-', at most 63)");
	free(error);
	assert_int_equal(kube_namespaces_check("a,,b", &error), -EINVAL);
	assert_non_null(strstr(error, "'' is not a namespace name"));
	free(error);
	assert_int_equal(kube_namespaces_check("a,b,a", &error), -EINVAL);
	assert_string_equal(error, "namespace 'a' is given twice");
	free(error);
	assert_int_equal(kube_namespaces_check("-a", &error), -EINVAL);
	free(error);
	for (unsigned i = 0; i <= KUBE_MAX_NAMESPACES; i++)
		sprintf(many + strlen(many), "%sn%u", i ? "," : "", i);
	assert_int_equal(kube_namespaces_check(many, &error), -EINVAL);
	assert_string_equal(error, "more than 64 namespaces");
	free(error);
}

/* The URLs of a scope's watches, for a LIST's first page. */
static char *urls(const struct kube_scope *s, enum kube_endpoints_api api)
{
	struct kube_watch_spec *v = NULL;
	size_t n = 0;
	char *out = strdup(""), *u, *t;

	assert_int_equal(kube_scope_watches(s, &v, &n), 0);
	for (size_t i = 0; i < n; i++) {
		u = kube_watch_url("https://k", &v[i], api, "limit=500");
		assert_non_null(u);
		t = strdup_printf("%s%s\n", out, u);
		free(u);
		free(out);
		out = t;
	}
	kube_watch_specs_free(v, n);
	return out;
}

static void expect_urls(const struct kube_scope *s, enum kube_endpoints_api api,
			const char *expected)
{
	char *got = urls(s, api);

	assert_string_equal(got, expected);
	free(got);
}

static void test_watches(void **state)
{
	/* the default: the whole cluster, one watch per kind */
	expect_urls(&(struct kube_scope){ .dns_service = "kube-system/kube-dns" },
		    KUBE_API_SLICES_V1,
		    "https://k/api/v1/services?limit=500\n"
		    "https://k/apis/discovery.k8s.io/v1/endpointslices?limit=500\n");
	/* namespaces: one per (kind, namespace); the cluster DNS outside them */
	expect_urls(&(struct kube_scope){ .namespaces = "a,b", .dns_service = "kube-system/kube-dns" },
		    KUBE_API_SLICES_V1BETA1,
		    "https://k/api/v1/namespaces/a/services?limit=500\n"
		    "https://k/api/v1/namespaces/b/services?limit=500\n"
		    "https://k/api/v1/namespaces/kube-system/services?fieldSelector=metadata.name%3Dkube-dns&limit=500\n"
		    "https://k/apis/discovery.k8s.io/v1beta1/namespaces/a/endpointslices?limit=500\n"
		    "https://k/apis/discovery.k8s.io/v1beta1/namespaces/b/endpointslices?limit=500\n"
		    "https://k/apis/discovery.k8s.io/v1beta1/namespaces/kube-system/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkube-dns&limit=500\n");
	/* the cluster DNS inside them: nothing extra */
	expect_urls(&(struct kube_scope){ .namespaces = "kube-system", .dns_service = "kube-system/kube-dns" },
		    KUBE_API_ENDPOINTS_V1,
		    "https://k/api/v1/namespaces/kube-system/services?limit=500\n"
		    "https://k/api/v1/namespaces/kube-system/endpoints?limit=500\n");
	/* legacy Endpoints: the DNS Service's by name */
	expect_urls(&(struct kube_scope){ .namespaces = "a", .dns_service = "sys/dns" },
		    KUBE_API_ENDPOINTS_V1,
		    "https://k/api/v1/namespaces/a/services?limit=500\n"
		    "https://k/api/v1/namespaces/sys/services?fieldSelector=metadata.name%3Ddns&limit=500\n"
		    "https://k/api/v1/namespaces/a/endpoints?limit=500\n"
		    "https://k/api/v1/namespaces/sys/endpoints?fieldSelector=metadata.name%3Ddns&limit=500\n");
	/* a selector: Services only, escaped; the DNS Service may not match it */
	expect_urls(&(struct kube_scope){ .label_selector = "expose-to in (legacy),!x",
					  .dns_service = "kube-system/kube-dns" },
		    KUBE_API_SLICES_V1,
		    "https://k/api/v1/services?labelSelector=expose-to%20in%20%28legacy%29%2C%21x&limit=500\n"
		    "https://k/api/v1/namespaces/kube-system/services?fieldSelector=metadata.name%3Dkube-dns&limit=500\n"
		    "https://k/apis/discovery.k8s.io/v1/endpointslices?limit=500\n");
	/* no DNS Service followed (--dns=off): nothing extra */
	expect_urls(&(struct kube_scope){ .namespaces = "a", .label_selector = "app=x" },
		    KUBE_API_SLICES_V1,
		    "https://k/api/v1/namespaces/a/services?labelSelector=app%3Dx&limit=500\n"
		    "https://k/apis/discovery.k8s.io/v1/namespaces/a/endpointslices?limit=500\n");
}

static void test_watch_text(void **state)
{
	struct kube_watch_spec w = { .kind = KUBE_KIND_SERVICE };
	char *t;

	t = kube_watch_scope_text(&w);
	assert_string_equal(t, "all namespaces");
	free(t);
	w.namespace = "a";
	w.label_selector = "app=x";
	t = kube_watch_scope_text(&w);
	assert_string_equal(t, "namespace a, labels app=x");
	free(t);
	w.label_selector = NULL;
	w.service_name = "kube-dns";
	t = kube_watch_scope_text(&w);
	assert_string_equal(t, "a/kube-dns only");
	free(t);
	assert_string_equal(kube_watch_resource(KUBE_KIND_ENDPOINTS, KUBE_API_ENDPOINTS_V1),
			    "Endpoints");
	assert_string_equal(kube_watch_resource(KUBE_KIND_ENDPOINTS, KUBE_API_SLICES_V1),
			    "EndpointSlice");
}

static void test_verdicts(void **state)
{
	struct kube_scope s = { .namespaces = "a,bb", .dns_service = "kube-system/kube-dns" };

	assert_true(kube_scope_has_namespace(&s, "bb"));
	assert_false(kube_scope_has_namespace(&s, "b"));
	assert_int_equal(kube_scope_service(&s, "a", "web"), KUBE_SCOPE_IN);
	assert_int_equal(kube_scope_service(&s, "c", "web"), KUBE_SCOPE_OUT_NAMESPACE);
	assert_int_equal(kube_scope_service(&s, "kube-system", "kube-dns"), KUBE_SCOPE_IN);
	assert_int_equal(kube_scope_service(&s, "kube-system", "other"), KUBE_SCOPE_OUT_NAMESPACE);
	s.label_selector = "app=x";
	assert_int_equal(kube_scope_service(&s, "a", "web"), KUBE_SCOPE_IF_SELECTED);
	s.namespaces = NULL;
	assert_int_equal(kube_scope_service(&s, "z", "web"), KUBE_SCOPE_IF_SELECTED);
	s.label_selector = NULL;
	assert_int_equal(kube_scope_service(&s, "z", "web"), KUBE_SCOPE_IN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_label_selectors),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_watches),
		cmocka_unit_test(test_watch_text),
		cmocka_unit_test(test_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
