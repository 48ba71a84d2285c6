/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * discovery.k8s.io/v1 and v1beta1 EndpointSlice, and core/v1 Endpoints,
 * -> struct kube_endpoint_slice. Pure.
 *
 * One decoder serves both EndpointSlice versions: v1beta1 keeps the zone
 * and (before 1.20) the node name in a "topology" map, v1 has "zone" and
 * "nodeName" fields; the fields win when both are present. List items
 * carry no apiVersion, so the decoder does not look at it.
 */
#include <sys/socket.h>

#include "kube/internal.h"

void kube_endpoint_port_done(struct kube_endpoint_port *p)
{
	free(p->name);
	p->name = NULL;
}

void kube_endpoint_done(struct kube_endpoint *e)
{
	size_t i;

	for (i = 0; i < e->n_hint_zones; i++)
		free(e->hint_zones[i]);
	free(e->hint_zones);
	free(e->node_name);
	free(e->zone);
	*e = (struct kube_endpoint){};
}

static void slice_done(struct kube_endpoint_slice *s)
{
	size_t i;

	for (i = 0; i < s->n_ports; i++)
		kube_endpoint_port_done(&s->ports[i]);
	free(s->ports);
	for (i = 0; i < s->n_endpoints; i++)
		kube_endpoint_done(&s->endpoints[i]);
	free(s->endpoints);
	free(s->namespace);
	free(s->name);
	free(s->service_name);
	*s = (struct kube_endpoint_slice){};
}

struct kube_endpoint_slice *kube_endpoint_slice_free(struct kube_endpoint_slice *s)
{
	if (!s)
		return NULL;
	slice_done(s);
	free(s);
	return NULL;
}

void kube_endpoint_slices_free(struct kube_endpoint_slice **v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++)
		kube_endpoint_slice_free(v[i]);
	free(v);
}

int decode_endpoint_port(const cJSON *j, const char *path, struct kube_endpoint_port *p,
			 char **error)
{
	uint64_t port = 0;
	int r;

	r = decode_port_identity(j, path, &p->name, &p->protocol, error);
	if (r < 0)
		return r;
	/* Unset (or 0) is legal and means "ignore this port". */
	r = json_uint(j, path, "port", 0, 65535, &port, error);
	if (r < 0)
		return r;
	p->port = (uint16_t)port;
	return 0;
}

/* <path>.ports[] of a slice or of an Endpoints subset. */
static int decode_endpoint_ports(const cJSON *obj, const char *path, struct kube_endpoint_slice *s,
				 char **error)
{
	char p[DECODE_PATH_MAX];
	const cJSON *ports, *e;
	size_t n, i = 0;
	int r;

	r = json_array(obj, path, "ports", KUBE_MAX_PORTS, &ports, &n, error);
	if (r <= 0 || n == 0)
		return r < 0 ? r : 0;
	s->ports = calloc(n, sizeof(*s->ports));
	if (!s->ports)
		return -ENOMEM;
	s->n_ports = n; /* zeroed entries free cleanly */
	cJSON_ArrayForEach(e, ports) {
		decode_path(p, sizeof(p), path, "ports", i);
		r = decode_endpoint_port(e, p, &s->ports[i], error);
		if (r >= 0)
			r = decode_unique_port_name(p, &s->ports[0].name, sizeof(s->ports[0]), i, error);
		if (r < 0)
			return r;
		i++;
	}
	return 0;
}

/* addressType: IPv4, IPv6 or FQDN (family 0). */
static int slice_decode_address_type(const cJSON *obj, struct kube_endpoint_slice *s,
				     char **error)
{
	char q[KUBE_QUOTE_MAX + 4];
	const char *t = NULL;
	int r;

	r = json_string(obj, "", "addressType", &t, error);
	if (r < 0)
		return r;
	if (r == 0)
		return decode_error(error, NULL, "addressType", "not set");
	if (streq(t, "IPv4"))
		s->family = AF_INET;
	else if (streq(t, "IPv6"))
		s->family = AF_INET6;
	else if (streq(t, "FQDN"))
		s->family = 0;
	else
		return decode_error(error, NULL, "addressType", "\"%s\" is not IPv4, IPv6 or FQDN",
				    kube_quote(t, q, sizeof(q)));
	return 0;
}

/* addresses[0]: the only one kube-proxy uses; the rest are fungible. */
static int slice_decode_address(const cJSON *j, const char *path, int family,
				struct kube_endpoint *e, char **error)
{
	char p[DECODE_PATH_MAX];
	const cJSON *addrs;

	addrs = json_member(j, "addresses");
	if (!addrs)
		return decode_error(error, path, "addresses", "not set");
	if (!cJSON_IsArray(addrs))
		return decode_error(error, path, "addresses", "not an array");
	if (!addrs->child)
		return decode_error(error, path, "addresses", "empty");
	decode_path(p, sizeof(p), path, "addresses", 0);
	if (!cJSON_IsString(addrs->child) || !addrs->child->valuestring)
		return decode_error(error, p, NULL, "not a string");
	return decode_ip(addrs->child->valuestring, family, p, NULL, &e->addr, error);
}

/* ready: nil means true; serving: nil means ready; terminating: nil means
 * false (see kube.h). */
static int slice_decode_conditions(const cJSON *j, const char *path, struct kube_endpoint *e,
				   char **error)
{
	char p[DECODE_PATH_MAX];
	const cJSON *cond;
	int r, serving_set;

	e->ready = true;
	e->terminating = false;
	r = json_object(j, path, "conditions", &cond, error);
	if (r <= 0) {
		e->serving = e->ready;
		return r;
	}
	decode_join(p, sizeof(p), path, "conditions");
	r = json_bool(cond, p, "ready", &e->ready, error);
	if (r < 0)
		return r;
	serving_set = json_bool(cond, p, "serving", &e->serving, error);
	if (serving_set < 0)
		return serving_set;
	if (serving_set == 0)
		e->serving = e->ready;
	r = json_bool(cond, p, "terminating", &e->terminating, error);
	return r < 0 ? r : 0;
}

/* nodeName and zone fields (v1), else the v1beta1 topology map. */
static int slice_decode_topology(const cJSON *j, const char *path, struct kube_endpoint *e,
				 char **error)
{
	char p[DECODE_PATH_MAX];
	const cJSON *topology;
	int r;

	r = json_name(j, path, "nodeName", false, &e->node_name, error);
	if (r >= 0)
		r = json_name(j, path, "zone", false, &e->zone, error);
	if (r >= 0)
		r = json_object(j, path, "topology", &topology, error);
	if (r <= 0)
		return r;
	decode_join(p, sizeof(p), path, "topology");
	if (!e->node_name)
		r = json_name(topology, p, "kubernetes.io/hostname", false, &e->node_name, error);
	if (r >= 0 && !e->zone)
		r = json_name(topology, p, "topology.kubernetes.io/zone", false, &e->zone, error);
	return r < 0 ? r : 0;
}

static int slice_decode_hints(const cJSON *j, const char *path, struct kube_endpoint *e,
			      char **error)
{
	char p[DECODE_PATH_MAX], zp[DECODE_PATH_MAX];
	const cJSON *hints, *zones, *z;
	size_t n, i = 0;
	int r;

	r = json_object(j, path, "hints", &hints, error);
	if (r <= 0)
		return r;
	decode_join(p, sizeof(p), path, "hints");
	r = json_array(hints, p, "forZones", KUBE_MAX_HINTS, &zones, &n, error);
	if (r <= 0 || n == 0)
		return r < 0 ? r : 0;
	e->hint_zones = calloc(n, sizeof(*e->hint_zones));
	if (!e->hint_zones)
		return -ENOMEM;
	e->n_hint_zones = n;
	cJSON_ArrayForEach(z, zones) {
		decode_path(zp, sizeof(zp), p, "forZones", i);
		if (!cJSON_IsObject(z))
			return decode_error(error, zp, NULL, "not an object");
		r = json_name(z, zp, "name", false, &e->hint_zones[i++], error);
		if (r < 0)
			return r;
		if (r == 0)
			return decode_error(error, zp, "name", "not set");
	}
	e->has_hints = true;
	return 0;
}

static int slice_decode_endpoint(const cJSON *j, const char *path, int family,
				 struct kube_endpoint *e, char **error)
{
	int r;

	if (!cJSON_IsObject(j))
		return decode_error(error, path, NULL, "not an object");
	r = slice_decode_address(j, path, family, e, error);
	if (r >= 0)
		r = slice_decode_conditions(j, path, e, error);
	if (r >= 0)
		r = slice_decode_topology(j, path, e, error);
	if (r >= 0)
		r = slice_decode_hints(j, path, e, error);
	return r < 0 ? r : 0;
}

static int slice_decode_endpoints(const cJSON *obj, struct kube_endpoint_slice *s, char **error)
{
	char path[DECODE_PATH_MAX];
	const cJSON *eps, *e;
	size_t n, i = 0;
	int r;

	r = json_array(obj, "", "endpoints", KUBE_MAX_ENDPOINTS, &eps, &n, error);
	if (r <= 0 || n == 0)
		return r < 0 ? r : 0;
	s->endpoints = calloc(n, sizeof(*s->endpoints));
	if (!s->endpoints)
		return -ENOMEM;
	s->n_endpoints = n; /* zeroed entries free cleanly */
	cJSON_ArrayForEach(e, eps) {
		decode_path(path, sizeof(path), "", "endpoints", i);
		r = slice_decode_endpoint(e, path, s->family, &s->endpoints[i++], error);
		if (r < 0)
			return r;
	}
	return 0;
}

static int slice_decode(const cJSON *obj, struct kube_endpoint_slice *s, char **error)
{
	const cJSON *labels;
	int r;

	r = decode_meta(obj, &s->namespace, &s->name, error);
	if (r < 0)
		return r;
	r = json_object(json_member(obj, "metadata"), "metadata", "labels", &labels, error);
	if (r > 0)
		r = json_name(labels, "metadata.labels", "kubernetes.io/service-name", false,
			      &s->service_name, error);
	if (r >= 0)
		r = slice_decode_address_type(obj, s, error);
	if (r < 0)
		return r;
	s->trigger_time_usec = decode_trigger_time(obj);
	/* FQDN slices are not proxied: keep them empty. */
	if (s->family == 0)
		return 0;
	r = decode_endpoint_ports(obj, "", s, error);
	if (r >= 0)
		r = slice_decode_endpoints(obj, s, error);
	return r < 0 ? r : 0;
}

int kube_endpoint_slice_decode(const struct cJSON *obj, struct kube_endpoint_slice **ret,
			       char **ret_error)
{
	_cleanup_(kube_endpoint_slice_freep) struct kube_endpoint_slice *s = NULL;
	char *error = NULL;
	int r = -ENOMEM;

	s = calloc(1, sizeof(*s));
	if (s)
		r = slice_decode(obj, s, &error);
	r = decode_finish(r, &error, ret_error);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

/* ---- core/v1 Endpoints --------------------------------------------------- */

/* subsets[].addresses[] (ready) or .notReadyAddresses[] (neither ready nor
 * serving: core/v1 has no terminating state). */
static int endpoints_decode_address(const cJSON *j, const char *path, bool ready,
				    struct kube_endpoint *e, char **error)
{
	const char *ip = NULL;
	int r;

	if (!cJSON_IsObject(j))
		return decode_error(error, path, NULL, "not an object");
	r = json_string(j, path, "ip", &ip, error);
	if (r < 0)
		return r;
	if (r == 0)
		return decode_error(error, path, "ip", "not set");
	r = decode_ip(ip, 0, path, "ip", &e->addr, error);
	if (r < 0)
		return r;
	e->ready = ready;
	e->serving = ready;
	r = json_name(j, path, "nodeName", false, &e->node_name, error);
	return r < 0 ? r : 0;
}

struct address_list {
	const char *key;
	bool ready;
	const cJSON *array;
	size_t n;
};

/* All addresses of one subset, ready ones first, into s (family 0). *total
 * counts addresses over the whole object, against KUBE_MAX_ENDPOINTS. */
static int endpoints_decode_subset(const cJSON *j, const char *path,
				   struct kube_endpoint_slice *s, size_t *total, char **error)
{
	struct address_list lists[] = {
		{ .key = "addresses", .ready = true },
		{ .key = "notReadyAddresses", .ready = false },
	};
	char p[DECODE_PATH_MAX];
	const cJSON *a;
	size_t l, i, n = 0;
	int r;

	if (!cJSON_IsObject(j))
		return decode_error(error, path, NULL, "not an object");
	for (l = 0; l < ARRAY_SIZE(lists); l++) {
		r = json_array(j, path, lists[l].key, KUBE_MAX_ENDPOINTS, &lists[l].array,
			       &lists[l].n, error);
		if (r < 0)
			return r;
		n += lists[l].n;
	}
	if (n > KUBE_MAX_ENDPOINTS - *total)
		return decode_error(error, NULL, "subsets", "more than %u addresses",
				    KUBE_MAX_ENDPOINTS);
	*total += n;
	r = decode_endpoint_ports(j, path, s, error);
	if (r < 0 || n == 0)
		return r < 0 ? r : 0;
	s->endpoints = calloc(n, sizeof(*s->endpoints));
	if (!s->endpoints)
		return -ENOMEM;
	s->n_endpoints = n;
	for (l = 0, n = 0; l < ARRAY_SIZE(lists); l++) {
		i = 0;
		cJSON_ArrayForEach(a, lists[l].array) {
			decode_path(p, sizeof(p), path, lists[l].key, i++);
			r = endpoints_decode_address(a, p, lists[l].ready, &s->endpoints[n++],
						     error);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int copy_ports(const struct kube_endpoint_slice *from, struct kube_endpoint_slice *to)
{
	size_t i;

	if (from->n_ports == 0)
		return 0;
	to->ports = calloc(from->n_ports, sizeof(*to->ports));
	if (!to->ports)
		return -ENOMEM;
	to->n_ports = from->n_ports;
	for (i = 0; i < from->n_ports; i++) {
		to->ports[i] = from->ports[i];
		to->ports[i].name = strdup(from->ports[i].name);
		if (!to->ports[i].name)
			return -ENOMEM;
	}
	return 0;
}

/* Move the endpoints of one family out of subset into a new slice named
 * after the Endpoints object; *ret stays NULL when there are none. */
static int endpoints_split(struct kube_endpoint_slice *subset, int family, const char *ns,
			   const char *name, uint64_t trigger_time,
			   struct kube_endpoint_slice **ret)
{
	_cleanup_(kube_endpoint_slice_freep) struct kube_endpoint_slice *s = NULL;
	size_t i, n = 0;

	for (i = 0; i < subset->n_endpoints; i++)
		n += subset->endpoints[i].addr.family == family;
	if (n == 0)
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->namespace = strdup(ns);
	s->name = strdup(name);
	s->service_name = strdup(name);
	s->endpoints = calloc(n, sizeof(*s->endpoints));
	if (!s->namespace || !s->name || !s->service_name || !s->endpoints)
		return -ENOMEM;
	s->family = family;
	s->trigger_time_usec = trigger_time;
	for (i = 0; i < subset->n_endpoints; i++) {
		if (subset->endpoints[i].addr.family != family)
			continue;
		/* Ownership of the strings moves with the struct. */
		s->endpoints[s->n_endpoints++] = subset->endpoints[i];
		subset->endpoints[i] = (struct kube_endpoint){};
	}
	if (copy_ports(subset, s) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(s);
	return 0;
}

struct endpoints_result {
	char *namespace;
	char *name;
	struct kube_endpoint_slice **slices;
	size_t n_slices;
};

static int endpoints_decode_one(const cJSON *j, const char *path, struct endpoints_result *res,
				uint64_t trigger_time, size_t *total, char **error)
{
	static const int families[] = { AF_INET, AF_INET6 };
	struct kube_endpoint_slice subset = {};
	size_t f;
	int r;

	r = endpoints_decode_subset(j, path, &subset, total, error);
	for (f = 0; r >= 0 && f < ARRAY_SIZE(families); f++) {
		r = endpoints_split(&subset, families[f], res->namespace, res->name, trigger_time,
				    &res->slices[res->n_slices]);
		if (r >= 0 && res->slices[res->n_slices])
			res->n_slices++;
	}
	slice_done(&subset);
	return r < 0 ? r : 0;
}

static int endpoints_decode(const cJSON *obj, struct endpoints_result *res, char **error)
{
	char path[DECODE_PATH_MAX];
	const cJSON *subsets, *j;
	size_t n, i = 0, total = 0;
	uint64_t trigger_time;
	int r;

	r = decode_meta(obj, &res->namespace, &res->name, error);
	if (r >= 0)
		r = json_array(obj, "", "subsets", KUBE_MAX_ENDPOINTS, &subsets, &n, error);
	if (r <= 0 || n == 0)
		return r < 0 ? r : 0;
	/* At most one slice per family per subset. */
	res->slices = calloc(2 * n, sizeof(*res->slices));
	if (!res->slices)
		return -ENOMEM;
	trigger_time = decode_trigger_time(obj);
	cJSON_ArrayForEach(j, subsets) {
		decode_path(path, sizeof(path), "", "subsets", i++);
		r = endpoints_decode_one(j, path, res, trigger_time, &total, error);
		if (r < 0)
			return r;
	}
	return 0;
}

int kube_endpoints_decode(const struct cJSON *obj, struct kube_endpoint_slice ***ret,
			  size_t *ret_n, char **ret_error)
{
	struct endpoints_result res = {};
	char *error = NULL;
	int r;

	r = endpoints_decode(obj, &res, &error);
	free(res.namespace);
	free(res.name);
	r = decode_finish(r, &error, ret_error);
	if (r < 0) {
		kube_endpoint_slices_free(res.slices, res.n_slices);
		return r;
	}
	if (res.n_slices == 0) {
		free(res.slices);
		res.slices = NULL;
	}
	*ret = res.slices;
	*ret_n = res.n_slices;
	return 0;
}
