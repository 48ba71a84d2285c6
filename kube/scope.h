/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Private to kube/: the watches a scope needs and their URLs (pure;
 * kube/scope.c). One watch per (kind, namespace) — or one per kind for
 * all namespaces — plus, when the cluster DNS Service is outside the
 * scope, a watch of just that Service and one of its endpoints.
 */

#include "kube/kube.h"

enum kube_endpoints_api {
	KUBE_API_UNKNOWN,
	KUBE_API_SLICES_V1,
	KUBE_API_SLICES_V1BETA1,
	KUBE_API_ENDPOINTS_V1,
};

struct kube_watch_spec {
	enum kube_kind kind;
	char *namespace;      /* NULL: all namespaces */
	char *label_selector; /* as given; NULL: none */
	char *service_name;   /* only this Service's objects, in namespace */
};

int kube_scope_watches(const struct kube_scope *s, struct kube_watch_spec **ret, size_t *ret_n);
void kube_watch_spec_done(struct kube_watch_spec *w);
void kube_watch_specs_free(struct kube_watch_spec *v, size_t n);
bool kube_watch_spec_equal(const struct kube_watch_spec *a, const struct kube_watch_spec *b);

/* "Service", "EndpointSlice", "Endpoints" */
const char *kube_watch_resource(enum kube_kind kind, enum kube_endpoints_api api);
/* "all namespaces", "namespace a, labels tier=web", "kube-system/kube-dns only" */
char *kube_watch_scope_text(const struct kube_watch_spec *w);
/* server + path + "?" + selectors + params (already escaped, "limit=500&..."). */
char *kube_watch_url(const char *server, const struct kube_watch_spec *w,
		     enum kube_endpoints_api api, const char *params);
