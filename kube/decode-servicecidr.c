/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * networking.k8s.io ServiceCIDR -> struct kube_service_cidr, and the union
 * of several. Pure.
 */
#include <stdlib.h>

#include "kube/internal.h"

struct kube_service_cidr *kube_service_cidr_free(struct kube_service_cidr *s)
{
	if (!s)
		return NULL;
	free(s->name);
	free(s);
	return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_service_cidr *, kube_service_cidr_free);

static int decode_cidrs(const cJSON *spec, struct kube_service_cidr *s, char **error)
{
	char path[DECODE_PATH_MAX], q[KUBE_QUOTE_MAX + 4];
	const cJSON *cidrs, *e;
	size_t n = 0;
	int r;

	r = json_array(spec, "spec", "cidrs", KUBE_MAX_CIDRS, &cidrs, &n, error);
	if (r < 0)
		return r;
	if (n == 0)
		return decode_error(error, "spec", "cidrs", "empty or not set");
	cJSON_ArrayForEach(e, cidrs) {
		decode_path(path, sizeof(path), "spec", "cidrs", s->n_cidrs);
		if (!cJSON_IsString(e) || !e->valuestring)
			return decode_error(error, path, NULL, "not a string");
		if (kube_cidr_parse(e->valuestring, &s->cidrs[s->n_cidrs], NULL) < 0)
			return decode_error(error, path, NULL,
					    "\"%s\" is not a network with its host bits zero",
					    kube_quote(e->valuestring, q, sizeof(q)));
		s->n_cidrs++;
	}
	return 0;
}

static int service_cidr_decode(const cJSON *obj, struct kube_service_cidr *s, char **error)
{
	const cJSON *spec;
	int r;

	r = decode_meta(obj, NULL, &s->name, error);
	if (r < 0)
		return r;
	r = json_object(obj, "", "spec", &spec, error);
	if (r < 0)
		return r;
	if (r == 0)
		return decode_error(error, NULL, "spec", "not set");
	return decode_cidrs(spec, s, error);
}

int kube_service_cidr_decode(const cJSON *obj, struct kube_service_cidr **ret, char **ret_error)
{
	_cleanup_(kube_service_cidr_freep) struct kube_service_cidr *s = NULL;
	_cleanup_(freep) char *error = NULL;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return decode_finish(-ENOMEM, &error, ret_error);
	r = service_cidr_decode(obj, s, &error);
	if (r >= 0)
		*ret = TAKE_PTR(s);
	return decode_finish(r, &error, ret_error);
}

static int cidr_compare(const struct kube_cidr *a, const struct kube_cidr *b)
{
	int r;

	if (a->addr.family != b->addr.family)
		return a->addr.family == AF_INET ? -1 : 1;
	r = memcmp(a->addr.bytes, b->addr.bytes, a->addr.family == AF_INET ? 4 : 16);
	if (r)
		return r;
	return a->prefix < b->prefix ? -1 : a->prefix > b->prefix;
}

int kube_service_cidrs_union(struct kube_service_cidr *const *v, size_t n, struct kube_cidr *ret,
			     size_t max, size_t *ret_n)
{
	size_t k = 0;
	bool over = false;

	/* Insertion into a sorted, bounded array: n * KUBE_MAX_CIDRS * max
	 * steps at most, and both are small. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; v[i] && j < v[i]->n_cidrs && j < KUBE_MAX_CIDRS; j++) {
			const struct kube_cidr *c = &v[i]->cidrs[j];
			size_t at = 0;
			int cmp = 1;

			while (at < k && (cmp = cidr_compare(&ret[at], c)) < 0)
				at++;
			if (at < k && cmp == 0)
				continue;
			if (k == max) {
				over = true;
				if (at == k)
					continue;
				k--; /* the largest falls out */
			}
			memmove(&ret[at + 1], &ret[at], (k - at) * sizeof(*ret));
			ret[at] = *c;
			k++;
		}
	*ret_n = k;
	return over ? -E2BIG : 0;
}
