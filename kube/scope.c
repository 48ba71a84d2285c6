/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Scope selection (pure): which namespaces and which Services are imported,
 * checked at start-up, and the watches that follow from it with their URLs.
 *
 * A label selector is checked here for its syntax only, loosely after
 * Kubernetes' own grammar (k8s.io/apimachinery labels.Parse): the API
 * server applies it. The point is a clear message at start-up rather than
 * an HTTP 400 in a retry loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/internal.h"
#include "kube/kube.h"
#include "kube/scope.h"
#include "lib/util.h"

#define LABEL_NAME_MAX 63u
#define LABEL_PREFIX_MAX 253u

/* ---- names ----------------------------------------------------------------- */

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A namespace name: an RFC 1123 label (lower case, digits, '-'). */
static bool namespace_valid(const char *s, size_t len)
{
	if (len == 0 || len > LABEL_NAME_MAX || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* The name part of a label key, or a label value when non-empty. */
static bool label_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > LABEL_NAME_MAX || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* The prefix of a label key: a DNS subdomain. */
static bool label_prefix_valid(const char *s, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > LABEL_PREFIX_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (!namespace_valid(s + start, i - start))
			return false;
		start = i + 1;
	}
	return true;
}

static bool label_key_valid(const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);

	if (!slash)
		return label_name_valid(s, len);
	return label_prefix_valid(s, (size_t)(slash - s)) &&
	       label_name_valid(slash + 1, len - (size_t)(slash - s) - 1);
}

static bool label_value_valid(const char *s, size_t len)
{
	return len == 0 || label_name_valid(s, len);
}

int kube_namespaces_check(const char *list, char **ret_error)
{
	size_t n = 0;

	*ret_error = NULL;
	for (const char *p = list;; p++) {
		size_t len = strcspn(p, ",");

		if (!namespace_valid(p, len)) {
			*ret_error = strdup_printf("'%.*s' is not a namespace name (lower-case letters, "
						   "digits and '-', at most %u)",
						   (int)(len > 80 ? 80 : len), p, LABEL_NAME_MAX);
			return -EINVAL;
		}
		for (const char *q = list; q < p; q += strcspn(q, ",") + 1)
			if (strcspn(q, ",") == len && !strncmp(q, p, len)) {
				*ret_error = strdup_printf("namespace '%.*s' is given twice", (int)len, p);
				return -EINVAL;
			}
		if (++n > KUBE_MAX_NAMESPACES) {
			*ret_error = strdup_printf("more than %u namespaces", KUBE_MAX_NAMESPACES);
			return -EINVAL;
		}
		p += len;
		if (!*p)
			return 0;
	}
}

/* ---- label selectors ------------------------------------------------------- */

struct lexer {
	const char *s;
	size_t at;
	char **error;
};

static int selector_error(struct lexer *l, const char *fmt, ...) _printf_(2, 3);
static int selector_error(struct lexer *l, const char *fmt, ...)
{
	_cleanup_(freep) char *msg = NULL;
	char quoted[KUBE_QUOTE_MAX + 4];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	for (char *m = msg; *m; m++)
		if ((unsigned char)*m < 0x20 || *m == 0x7f)
			*m = '?';
	*l->error = strdup_printf("'%s': %s", kube_quote(l->s, quoted, sizeof(quoted)), msg);
	return -EINVAL;
}

static void skip_space(struct lexer *l)
{
	while (l->s[l->at] == ' ' || l->s[l->at] == '\t')
		l->at++;
}

/* A key or a value: everything up to a space or an operator character. */
static size_t word(struct lexer *l, const char **ret)
{
	size_t start;

	skip_space(l);
	start = l->at;
	while (l->s[l->at] && !strchr(" \t,=!()<>", l->s[l->at]))
		l->at++;
	*ret = l->s + start;
	return l->at - start;
}

static bool keyword(const char *w, size_t len, const char *kw)
{
	return len == strlen(kw) && !strncmp(w, kw, len);
}

static int value_list(struct lexer *l, const char *key, size_t key_len)
{
	size_t n = 0, first_len = 0;

	skip_space(l);
	if (l->s[l->at] != '(')
		return selector_error(l, "'(' expected after 'in'/'notin' for '%.*s'", (int)key_len,
				      key);
	l->at++;
	for (;;) {
		const char *v;
		size_t len = word(l, &v);

		if (!label_value_valid(v, len))
			return selector_error(l, "'%.*s' is not a label value (for '%.*s')", (int)len,
					      v, (int)key_len, key);
		if (n++ == 0)
			first_len = len;
		skip_space(l);
		if (l->s[l->at] == ',') {
			l->at++;
			continue;
		}
		if (l->s[l->at] == ')') {
			l->at++;
			break;
		}
		return selector_error(l, "',' or ')' expected in the values of '%.*s'", (int)key_len,
				      key);
	}
	if (n == 1 && first_len == 0)
		return selector_error(l, "the set of values of '%.*s' is empty", (int)key_len, key);
	return 0;
}

/* One requirement: "!key", "key", "key=v", "key==v", "key!=v", "key in (..)",
 * "key notin (..)", "key>N", "key<N". */
static int requirement(struct lexer *l)
{
	const char *key, *v;
	size_t key_len, len;
	bool negated = false;

	skip_space(l);
	if (l->s[l->at] == '!') {
		negated = true;
		l->at++;
	}
	key_len = word(l, &key);
	if (key_len == 0)
		return selector_error(l, "a label key is missing at position %zu", l->at + 1);
	if (!label_key_valid(key, key_len))
		return selector_error(l, "'%.*s' is not a label key ([prefix/]name, name at most %u "
					 "of letters, digits, '-', '_', '.')",
				      (int)key_len, key, LABEL_NAME_MAX);
	skip_space(l);
	if (negated || !l->s[l->at] || l->s[l->at] == ',')
		return 0;
	if (l->s[l->at] == '=' || l->s[l->at] == '!') {
		if (l->s[l->at] == '!' && l->s[l->at + 1] != '=')
			return selector_error(l, "'!=' expected after '%.*s'", (int)key_len, key);
		l->at++;
		if (l->s[l->at] == '=')
			l->at++;
		len = word(l, &v);
		if (!label_value_valid(v, len))
			return selector_error(l, "'%.*s' is not a label value (for '%.*s')", (int)len,
					      v, (int)key_len, key);
		return 0;
	}
	if (l->s[l->at] == '<' || l->s[l->at] == '>') {
		l->at++;
		len = word(l, &v);
		if (len == 0 || len > 18 || strspn(v, "0123456789") < len)
			return selector_error(l, "'<' and '>' need a whole number (for '%.*s')",
					      (int)key_len, key);
		return 0;
	}
	len = word(l, &v);
	if (keyword(v, len, "in") || keyword(v, len, "notin"))
		return value_list(l, key, key_len);
	return selector_error(l, "unexpected '%.*s' after '%.*s' (expected ',', '=', '==', '!=', "
				 "'in', 'notin', '<' or '>')",
			      (int)(len ? len : 1), len ? v : l->s + l->at, (int)key_len, key);
}

int kube_label_selector_check(const char *selector, char **ret_error)
{
	struct lexer l = { .s = selector, .error = ret_error };
	int r;

	*ret_error = NULL;
	if (strlen(selector) > KUBE_MAX_SELECTOR_LEN) {
		*ret_error = strdup_printf("longer than %u characters", KUBE_MAX_SELECTOR_LEN);
		return -EINVAL;
	}
	for (;;) {
		r = requirement(&l);
		if (r < 0)
			return r;
		skip_space(&l);
		if (!selector[l.at])
			return 0;
		if (selector[l.at] != ',')
			return selector_error(&l, "',' expected at position %zu", l.at + 1);
		l.at++;
	}
}

/* ---- the scope -------------------------------------------------------------- */

bool kube_scope_has_namespace(const struct kube_scope *s, const char *ns)
{
	size_t len = strlen(ns);

	if (!s->namespaces)
		return true;
	for (const char *p = s->namespaces; *p;) {
		size_t n = strcspn(p, ",");

		if (n == len && !strncmp(p, ns, len))
			return true;
		p += n;
		p += *p == ',';
	}
	return false;
}

/* The cluster DNS Service's namespace and name, or false. */
static bool dns_service(const struct kube_scope *s, char *ns, size_t ns_size, const char **name)
{
	const char *slash = s->dns_service ? strchr(s->dns_service, '/') : NULL;

	if (!slash || slash == s->dns_service || !slash[1] ||
	    (size_t)(slash - s->dns_service) >= ns_size)
		return false;
	memcpy(ns, s->dns_service, (size_t)(slash - s->dns_service));
	ns[slash - s->dns_service] = 0;
	*name = slash + 1;
	return true;
}

enum kube_scope_verdict kube_scope_service(const struct kube_scope *s, const char *ns,
					   const char *name)
{
	char dns_ns[KUBE_MAX_NAME_LEN + 1];
	const char *dns_name;

	if (dns_service(s, dns_ns, sizeof(dns_ns), &dns_name) && streq(ns, dns_ns) &&
	    streq(name, dns_name))
		return KUBE_SCOPE_IN;
	if (!kube_scope_has_namespace(s, ns))
		return KUBE_SCOPE_OUT_NAMESPACE;
	return s->label_selector ? KUBE_SCOPE_IF_SELECTED : KUBE_SCOPE_IN;
}

static int spec_add(struct kube_watch_spec **v, size_t *n, enum kube_kind kind, const char *ns,
		    size_t ns_len, const char *selector, const char *service_name)
{
	struct kube_watch_spec *w = &(*v)[(*n)++];

	*w = (struct kube_watch_spec){ .kind = kind };
	if ((ns && !(w->namespace = strndup(ns, ns_len))) ||
	    (selector && !(w->label_selector = strdup(selector))) ||
	    (service_name && !(w->service_name = strdup(service_name))))
		return -ENOMEM;
	return 0;
}

void kube_watch_specs_free(struct kube_watch_spec *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		kube_watch_spec_done(&v[i]);
	free(v);
}

void kube_watch_spec_done(struct kube_watch_spec *w)
{
	free(w->namespace);
	free(w->label_selector);
	free(w->service_name);
	*w = (struct kube_watch_spec){};
}

int kube_scope_watches(const struct kube_scope *s, struct kube_watch_spec **ret, size_t *ret_n)
{
	char dns_ns[KUBE_MAX_NAME_LEN + 1];
	const char *dns_name = NULL, *sel = s->label_selector;
	size_t n = 0, n_ns = 0;
	struct kube_watch_spec *v;
	bool dns;
	int r = 0;

	if (sel && !*sel)
		sel = NULL;
	for (const char *p = s->namespaces; p && *p; p += strcspn(p, ",") + !!p[strcspn(p, ",")])
		n_ns++;
	dns = dns_service(s, dns_ns, sizeof(dns_ns), &dns_name);
	/* per kind: one per namespace (or one for all), plus the cluster DNS */
	v = calloc(2 * (n_ns ? n_ns : 1) + 2, sizeof(*v));
	if (!v)
		return -ENOMEM;
	/* The scope's kinds; ServiceCIDRs are the client's own business. */
	for (int k = 0; k < KUBE_IMPORT_KINDS && r >= 0; k++) {
		const char *kind_sel = k == KUBE_KIND_SERVICE ? sel : NULL;

		if (!n_ns)
			r = spec_add(&v, &n, k, NULL, 0, kind_sel, NULL);
		for (const char *p = s->namespaces; p && *p && r >= 0;) {
			size_t len = strcspn(p, ",");

			r = spec_add(&v, &n, k, p, len, kind_sel, NULL);
			p += len;
			p += *p == ',';
		}
		/* The cluster DNS Service outside the scope (or perhaps not
		 * selected): a watch of just that Service and its endpoints. */
		if (r >= 0 && dns &&
		    (!kube_scope_has_namespace(s, dns_ns) || (k == KUBE_KIND_SERVICE && sel)))
			r = spec_add(&v, &n, k, dns_ns, strlen(dns_ns), NULL, dns_name);
	}
	if (r < 0) {
		kube_watch_specs_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

bool kube_watch_spec_equal(const struct kube_watch_spec *a, const struct kube_watch_spec *b)
{
	return a->kind == b->kind && streq_ptr(a->namespace, b->namespace) &&
	       streq_ptr(a->label_selector, b->label_selector) &&
	       streq_ptr(a->service_name, b->service_name);
}

const char *kube_watch_resource(enum kube_kind kind, enum kube_endpoints_api api)
{
	if (kind == KUBE_KIND_SERVICE)
		return "Service";
	if (kind == KUBE_KIND_SERVICE_CIDR)
		return "ServiceCIDR";
	return api == KUBE_API_ENDPOINTS_V1 ? "Endpoints" : "EndpointSlice";
}

char *kube_watch_scope_text(const struct kube_watch_spec *w)
{
	if (w->kind == KUBE_KIND_SERVICE_CIDR)
		return strdup("cluster");
	if (w->service_name)
		return strdup_printf("%s/%s only", w->namespace, w->service_name);
	if (w->namespace)
		return strdup_printf("namespace %s%s%s", w->namespace,
				     w->label_selector ? ", labels " : "",
				     w->label_selector ? w->label_selector : "");
	return strdup_printf("all namespaces%s%s", w->label_selector ? ", labels " : "",
			     w->label_selector ? w->label_selector : "");
}

/* Percent-encode a query value: everything but RFC 3986's unreserved set. */
static char *query_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (is_alnum((char)c) || c == '-' || c == '.' || c == '_' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = 0;
	return out;
}

char *kube_watch_url(const char *server, const struct kube_watch_spec *w,
		     enum kube_endpoints_api api, const char *params)
{
	_cleanup_(freep) char *path = NULL, *label_sel = NULL, *field_sel = NULL;
	_cleanup_(freep) char *label_q = NULL, *field_q = NULL;
	const char *base, *resource;

	if (w->kind == KUBE_KIND_SERVICE) {
		base = "/api/v1";
		resource = "services";
	} else if (api == KUBE_API_SLICES_V1 || api == KUBE_API_SLICES_V1BETA1) {
		base = api == KUBE_API_SLICES_V1 ? "/apis/discovery.k8s.io/v1" :
						   "/apis/discovery.k8s.io/v1beta1";
		resource = "endpointslices";
	} else {
		base = "/api/v1";
		resource = "endpoints";
	}
	/* Only the cluster DNS Service: by name for Services and Endpoints
	 * objects, by the service-name label_sel for EndpointSlices. */
	if (w->service_name && w->kind == KUBE_KIND_ENDPOINTS && strcmp(resource, "endpoints"))
		label_sel = strdup_printf("kubernetes.io/service-name=%s", w->service_name);
	else if (w->service_name)
		field_sel = strdup_printf("metadata.name=%s", w->service_name);
	else if (w->label_selector)
		label_sel = strdup(w->label_selector);
	if ((w->service_name || w->label_selector) && !label_sel && !field_sel)
		return NULL;
	if ((label_sel && !(label_q = query_escape(label_sel))) || (field_sel && !(field_q = query_escape(field_sel))))
		return NULL;
	if (w->namespace)
		path = strdup_printf("%s%s/namespaces/%s/%s", server, base, w->namespace, resource);
	else
		path = strdup_printf("%s%s/%s", server, base, resource);
	if (!path)
		return NULL;
	return strdup_printf("%s?%s%s%s%s%s%s", path, label_q ? "labelSelector=" : "",
			     label_q ? label_q : "", field_q ? "fieldSelector=" : "",
			     field_q ? field_q : "",
			     (label_q || field_q) && params && *params ? "&" : "",
			     params ? params : "");
}
