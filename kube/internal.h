/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Private to kube/: typed access to cJSON members that reports the field
 * path on error, and the pieces the decoders share.
 *
 * Conventions: "path" is the JSON path of the object that holds "key"
 * ("" at the top, "spec.ports[1]" further down); error messages read
 * "<path>.<key>: <what is wrong>". Members that are absent or JSON null are
 * "unset". Getters return 1 when the member is set, 0 when it is not
 * (leaving the default in *ret) and -EINVAL (with *error set) when it has
 * the wrong type or value.
 */

#include <cjson/cJSON.h>

#include "kube/kube.h"
#include "lib/util.h"

#define DECODE_PATH_MAX 256
/* Quoted values in messages are cut to this many bytes. */
#define KUBE_QUOTE_MAX 80

/* Copy s into buf for an error message: cut to KUBE_QUOTE_MAX bytes,
 * non-printable bytes replaced by '?'. Returns buf. */
const char *kube_quote(const char *s, char *buf, size_t size);

/* Whether s is usable as a Kubernetes name, zone, label value, port name:
 * 1..max printable ASCII bytes, no space, quote or backslash. */
bool kube_name_valid(const char *s, size_t max);

/* Set *error (unless already set) to "<path>.<key>: <fmt...>"; path and key
 * may be NULL or "". decode_error() evaluates to -EINVAL (a macro, so that
 * the static analyzer sees the value: it does not follow variadic calls). */
void decode_error_set(char **error, const char *path, const char *key, const char *fmt, ...)
	_printf_(4, 5);
#define decode_error(error, path, key, ...) \
	(decode_error_set((error), (path), (key), __VA_ARGS__), -EINVAL)
/* Hand the outcome of an internal decode to the public caller: on failure
 * make sure there is a message; ret_error gets it (or NULL on success). */
int decode_finish(int r, char **error, char **ret_error);
/* "<path>.<key>" into buf. */
const char *decode_join(char *buf, size_t size, const char *path, const char *key);
/* "<path>.<key>[<i>]" into buf. */
const char *decode_path(char *buf, size_t size, const char *path, const char *key, size_t i);

const cJSON *json_member(const cJSON *obj, const char *key);
int json_object(const cJSON *obj, const char *path, const char *key, const cJSON **ret,
		char **error);
/* An array with at most max elements; *ret_n is its size (0 when unset). */
int json_array(const cJSON *obj, const char *path, const char *key, size_t max,
	       const cJSON **ret, size_t *ret_n, char **error);
int json_string(const cJSON *obj, const char *path, const char *key, const char **ret,
		char **error);
/* A string that passes kube_name_valid(); copied into *ret. "" counts as
 * unset unless allow_empty, in which case it is copied too. */
int json_name(const cJSON *obj, const char *path, const char *key, bool allow_empty,
	      char **ret, char **error);
int json_bool(const cJSON *obj, const char *path, const char *key, bool *ret, char **error);
/* An integer in [min, max]. */
int json_uint(const cJSON *obj, const char *path, const char *key, uint64_t min, uint64_t max,
	      uint64_t *ret, char **error);
/* "TCP", "UDP", "SCTP"; unset means TCP. */
int json_protocol(const cJSON *obj, const char *path, const char *key, int *ret, char **error);
/* What names a port in a Service or a slice: an object with an optional
 * "name" (unset: "", copied into *ret_name) and "protocol". */
int decode_port_identity(const cJSON *obj, const char *path, char **ret_name, int *ret_protocol,
			 char **error);
/* Fails when names[i] (a port name) was already used by an earlier entry
 * of <path>.ports; names are NULL-free. */
int decode_unique_port_name(const char *path, char *const *names, size_t stride, size_t i,
			    char **error);
/* A textual address; family 0 accepts both. */
int decode_ip(const char *s, int family, const char *path, const char *key, struct kube_ip *ret,
	      char **error);

/* metadata.namespace and metadata.name, both required (ret_namespace NULL:
 * a cluster-scoped object, whose namespace is not looked at). */
int decode_meta(const cJSON *obj, char **ret_namespace, char **ret_name, char **error);
/* metadata.<map>.<key> as a string, or NULL. */
const char *decode_meta_map_string(const cJSON *obj, const char *map, const char *key);
/* An RFC 3339 time ("2024-05-01T10:00:00.123456Z", "...+02:00") as
 * CLOCK_REALTIME usec. 0 or -EINVAL. */
int parse_rfc3339(const char *s, uint64_t *ret);
/* The endpoints.kubernetes.io/last-change-trigger-time annotation; 0 when
 * absent or unparseable (it only feeds a latency metric, as in kube-proxy). */
uint64_t decode_trigger_time(const cJSON *obj);

int decode_endpoint_port(const cJSON *j, const char *path, struct kube_endpoint_port *ret,
			 char **error);
void kube_endpoint_port_done(struct kube_endpoint_port *p);
void kube_endpoint_done(struct kube_endpoint *e);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_service *, kube_service_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_endpoint_slice *, kube_endpoint_slice_free);
