/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * model/: the cluster as the host needs it. Stores Services and their
 * endpoint sources (EndpointSlices or Endpoints) keyed by namespace/name,
 * joins them, and computes the desired service table:
 *
 *     VIP . protocol . port  ->  verdict, [endpoint ip:port, ...]
 *
 * Pure: no I/O. Changes mark the affected Services dirty; the caller asks
 * for the entries of dirty Services and hands them to the datapath.
 */

#include "kube/kube.h"

#define MODEL_COMMENT_MAX 128

enum model_verdict {
	MODEL_FORWARD,  /* load-balance over backends */
	MODEL_REJECT,   /* no usable endpoints: fail fast */
	MODEL_DROP,     /* policy says drop (e.g. internalTrafficPolicy Local) */
};

struct model_backend {
	struct kube_ip addr;
	uint16_t port;
};

/* One VIP . proto . port of one Service. */
struct model_entry {
	struct kube_ip vip;
	int protocol;
	uint16_t port;
	enum model_verdict verdict;
	char comment[MODEL_COMMENT_MAX]; /* "namespace/name:portname" */
	struct model_backend *backends;  /* sorted, no duplicates */
	size_t n_backends;
	uint32_t affinity_timeout_sec;   /* 0: no session affinity */
};

struct model;

int model_new(struct model **ret);
struct model *model_free(struct model *m);

/* Ownership of svc passes to the model (also on failure). */
int model_service_set(struct model *m, struct kube_service *svc);
void model_service_delete(struct model *m, const char *ns, const char *name);

/* One endpoint source (an EndpointSlice, or an Endpoints object made of n
 * slices). Ownership of slices and of the array passes to the model. */
int model_endpoints_set(struct model *m, const char *ns, const char *name,
			struct kube_endpoint_slice **slices, size_t n);
void model_endpoints_delete(struct model *m, const char *ns, const char *name);

/* Mark every Service dirty (after a failed commit or a datapath reset). */
void model_mark_all_dirty(struct model *m);
bool model_has_dirty(const struct model *m);

/*
 * Report the changes since the last call: for each dirty Service, every
 * entry it now has (fn with entry set) and every key it no longer has
 * (fn with entry NULL; key is set). Entries are valid only during fn.
 * Dirty marks are cleared when fn never returned an error.
 */
struct model_key {
	struct kube_ip vip;
	int protocol;
	uint16_t port;
};
typedef int (*model_change_fn)(const struct model_key *key, const struct model_entry *entry,
			       void *userdata);
int model_flush_changes(struct model *m, model_change_fn fn, void *userdata);

struct model_stats {
	size_t services;          /* Services known */
	size_t services_proxied;  /* with at least one entry */
	size_t entries;           /* VIP.proto.port entries */
	size_t endpoints;         /* backends over all entries */
	uint64_t newest_trigger_usec; /* newest trigger time among dirty changes */
};
void model_get_stats(const struct model *m, struct model_stats *ret);

/* Why a Service is not proxied, or NULL when it is. */
const char *model_service_skip_reason(const struct kube_service *svc);

/*
 * What an operator should know about how this host treats svc, or NULL:
 * "not proxied: <reason>", or a policy this host cannot honour the way a
 * node would (internalTrafficPolicy Local: no endpoint is ever local here).
 * A string literal: it stays valid after svc is gone.
 */
const char *model_service_note(const struct kube_service *svc);

/* The stored Service, or NULL. Valid until the next change of the model. */
const struct kube_service *model_service_get(const struct model *m, const char *ns,
					     const char *name);

/*
 * Host settings that change the desired table; changing one marks every
 * Service dirty.
 *  - external: also DNAT spec.externalIPs and load-balancer ingress IPs
 *    locally, as kube-proxy does for clients inside the cluster (default on);
 *  - zone: this host's topology zone, for topology-aware hints (NULL: none).
 */
int model_set_external(struct model *m, bool external);
int model_set_zone(struct model *m, const char *zone);

/*
 * Read-only views for status, explain and conflict checks; nothing here
 * changes the model. A callback's negative return stops the walk and is
 * returned.
 */
typedef int (*model_service_fn)(const struct kube_service *svc, void *userdata);
int model_foreach_service(const struct model *m, model_service_fn fn, void *userdata);
/* The entries Service ns/name has now, computed as a flush would (fn with
 * entry set); 0 without calls when it is unknown or not proxied. */
int model_service_entries(const struct model *m, const char *ns, const char *name,
			  model_change_fn fn, void *userdata);
/* The endpoint slices whose service-name is ns/name (also before the
 * Service itself is known). */
typedef int (*model_slice_fn)(const struct kube_endpoint_slice *slice, void *userdata);
int model_service_slices(const struct model *m, const char *ns, const char *name,
			 model_slice_fn fn, void *userdata);

/*
 * Told about every Service a successful flush reported, right after it:
 * key "namespace/name", the Service, and the distinct endpoint addresses
 * its entries use, before and after (deleted Services are not reported).
 * For the log; fn must not change the model.
 */
typedef void (*model_flushed_fn)(const char *key, const struct kube_service *svc,
				 size_t addresses_before, size_t addresses_after, void *userdata);
void model_set_flushed_callback(struct model *m, model_flushed_fn fn, void *userdata);
