/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * core/v1 Service -> struct kube_service. Pure.
 */
#include <inttypes.h>

#include "kube/internal.h"

#define AFFINITY_TIMEOUT_DEFAULT 10800u /* seconds, as the API server defaults it */
#define AFFINITY_TIMEOUT_MAX 86400u     /* the API's own limit */

struct kube_service *kube_service_free(struct kube_service *s)
{
	size_t i;

	if (!s)
		return NULL;
	for (i = 0; i < s->n_ports; i++) {
		free(s->ports[i].name);
		free(s->ports[i].target_port);
	}
	free(s->ports);
	free(s->cluster_ips);
	free(s->external_ips);
	free(s->lb_ips);
	free(s->namespace);
	free(s->name);
	free(s->resource_version);
	free(s->proxy_name);
	free(s->external_name);
	free(s);
	return NULL;
}

static int string_at(const cJSON *e, const char *path, const char **ret, char **error)
{
	if (!cJSON_IsString(e) || !e->valuestring)
		return decode_error(error, path, NULL, "not a string");
	*ret = e->valuestring;
	return 0;
}

static int service_decode_labels(const cJSON *meta, struct kube_service *s, char **error)
{
	const cJSON *labels;
	int r;

	r = json_object(meta, "metadata", "labels", &labels, error);
	if (r <= 0)
		return r;
	r = json_name(labels, "metadata.labels", "service.kubernetes.io/service-proxy-name", true,
		      &s->proxy_name, error);
	if (r < 0)
		return r;
	s->headless_label = json_member(labels, "service.kubernetes.io/headless") != NULL;
	return 0;
}

static int service_decode_type(const cJSON *spec, struct kube_service *s, char **error)
{
	static const struct {
		const char *name;
		enum kube_service_type type;
	} types[] = {
		{ "ClusterIP", KUBE_SERVICE_CLUSTER_IP },
		{ "NodePort", KUBE_SERVICE_NODE_PORT },
		{ "LoadBalancer", KUBE_SERVICE_LOAD_BALANCER },
		{ "ExternalName", KUBE_SERVICE_EXTERNAL_NAME },
	};
	char q[KUBE_QUOTE_MAX + 4];
	const char *t = NULL;
	size_t i;
	int r;

	s->type = KUBE_SERVICE_CLUSTER_IP;
	r = json_string(spec, "spec", "type", &t, error);
	if (r <= 0 || !*t)
		return r < 0 ? r : 0;
	for (i = 0; i < ARRAY_SIZE(types); i++)
		if (streq(t, types[i].name)) {
			s->type = types[i].type;
			return 0;
		}
	return decode_error(error, "spec", "type",
			    "\"%s\" is not ClusterIP, NodePort, LoadBalancer or ExternalName",
			    kube_quote(t, q, sizeof(q)));
}

/* Decode one address onto the end of an address list (bounded by the
 * callers' array limits). */
static int push_ip(const char *ip, const char *path, const char *key, struct kube_ip **v,
		   size_t *n, char **error)
{
	struct kube_ip a, *nv;
	int r;

	if (*n >= KUBE_MAX_IPS)
		return decode_error(error, path, key, "more than %u addresses", KUBE_MAX_IPS);
	r = decode_ip(ip, 0, path, key, &a, error);
	if (r < 0)
		return r;
	nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = a;
	*v = nv;
	return 0;
}

/* One clusterIP value: "None" makes the Service headless, "" is nothing. */
static int service_add_cluster_ip(struct kube_service *s, const char *ip, const char *path,
				  const char *key, char **error)
{
	if (!*ip)
		return 0;
	if (streq(ip, "None")) {
		s->headless = true;
		return 0;
	}
	return push_ip(ip, path, key, &s->cluster_ips, &s->n_cluster_ips, error);
}

/* spec.clusterIPs (dual-stack API servers) or else spec.clusterIP. */
static int service_decode_cluster_ips(const cJSON *spec, struct kube_service *s, char **error)
{
	char path[DECODE_PATH_MAX];
	const char *ip = NULL;
	const cJSON *ips, *e;
	size_t n, i = 0;
	int r;

	r = json_array(spec, "spec", "clusterIPs", KUBE_MAX_IPS, &ips, &n, error);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(e, ips) {
		decode_path(path, sizeof(path), "spec", "clusterIPs", i++);
		r = string_at(e, path, &ip, error);
		if (r >= 0)
			r = service_add_cluster_ip(s, ip, path, NULL, error);
		if (r < 0)
			return r;
	}
	if (n > 0)
		return 0;
	r = json_string(spec, "spec", "clusterIP", &ip, error);
	if (r <= 0)
		return r;
	return service_add_cluster_ip(s, ip, "spec", "clusterIP", error);
}

/* targetPort is an IntOrString: keep it as written, "8080" or "http". */
static int service_decode_target_port(const cJSON *j, const char *path, char **ret, char **error)
{
	const cJSON *t = json_member(j, "targetPort");
	uint64_t v = 0;
	int r;

	if (!t)
		return 0;
	if (cJSON_IsString(t))
		return json_name(j, path, "targetPort", false, ret, error);
	if (!cJSON_IsNumber(t))
		return decode_error(error, path, "targetPort", "not a number or a string");
	r = json_uint(j, path, "targetPort", 0, 65535, &v, error);
	if (r <= 0 || v == 0)
		return r < 0 ? r : 0;
	*ret = strdup_printf("%" PRIu64, v);
	return *ret ? 0 : -ENOMEM;
}

static int service_decode_port(const cJSON *j, const char *path, struct kube_service_port *p,
			       char **error)
{
	uint64_t v = 0;
	int r;

	r = decode_port_identity(j, path, &p->name, &p->protocol, error);
	if (r < 0)
		return r;
	r = json_uint(j, path, "port", 1, 65535, &v, error);
	if (r < 0)
		return r;
	if (r == 0)
		return decode_error(error, path, "port", "not set");
	p->port = (uint16_t)v;
	v = 0;
	r = json_uint(j, path, "nodePort", 0, 65535, &v, error);
	if (r < 0)
		return r;
	p->node_port = (uint16_t)v;
	return service_decode_target_port(j, path, &p->target_port, error);
}

/* The API server refuses two entries with the same port and protocol: the
 * datapath could only keep one of them. */
static int service_port_unique(const struct kube_service *s, const char *path, size_t i,
			       char **error)
{
	const struct kube_service_port *p = &s->ports[i];

	for (size_t k = 0; k < i; k++)
		if (s->ports[k].port == p->port && s->ports[k].protocol == p->protocol)
			return decode_error(error, path, "port", "%u/%s is also ports[%zu]", p->port,
					    kube_protocol_name(p->protocol), k);
	return 0;
}

static int service_decode_ports(const cJSON *spec, struct kube_service *s, char **error)
{
	char path[DECODE_PATH_MAX];
	const cJSON *ports, *e;
	size_t n, i = 0;
	int r;

	r = json_array(spec, "spec", "ports", KUBE_MAX_PORTS, &ports, &n, error);
	if (r <= 0 || n == 0)
		return r < 0 ? r : 0;
	s->ports = calloc(n, sizeof(*s->ports));
	if (!s->ports)
		return -ENOMEM;
	/* Entries are zeroed: counting them all now lets kube_service_free()
	 * clean up a half-decoded list. */
	s->n_ports = n;
	cJSON_ArrayForEach(e, ports) {
		decode_path(path, sizeof(path), "spec", "ports", i);
		r = service_decode_port(e, path, &s->ports[i], error);
		if (r >= 0)
			r = decode_unique_port_name(path, &s->ports[0].name, sizeof(s->ports[0]), i,
						    error);
		if (r >= 0)
			r = service_port_unique(s, path, i, error);
		if (r < 0)
			return r;
		i++;
	}
	return 0;
}

static int service_decode_external_ips(const cJSON *spec, struct kube_service *s, char **error)
{
	char path[DECODE_PATH_MAX];
	const cJSON *ips, *e;
	const char *ip = NULL;
	size_t n, i = 0;
	int r;

	r = json_array(spec, "spec", "externalIPs", KUBE_MAX_IPS, &ips, &n, error);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(e, ips) {
		decode_path(path, sizeof(path), "spec", "externalIPs", i++);
		r = string_at(e, path, &ip, error);
		if (r >= 0)
			r = push_ip(ip, path, NULL, &s->external_ips, &s->n_external_ips, error);
		if (r < 0)
			return r;
	}
	return 0;
}

/* One status.loadBalancer.ingress[] entry. Hostname-only entries and those
 * with ipMode Proxy (the load balancer proxies, its VIP must not be
 * short-circuited: KEP-1860) are skipped. */
static int service_decode_ingress(const cJSON *j, const char *path, struct kube_service *s,
				  char **error)
{
	const char *ip = NULL, *mode = NULL;
	int r;

	if (!cJSON_IsObject(j))
		return decode_error(error, path, NULL, "not an object");
	r = json_string(j, path, "ipMode", &mode, error);
	if (r < 0)
		return r;
	r = json_string(j, path, "ip", &ip, error);
	if (r <= 0 || !*ip || (mode && streq(mode, "Proxy")))
		return r < 0 ? r : 0;
	return push_ip(ip, path, "ip", &s->lb_ips, &s->n_lb_ips, error);
}

static int service_decode_lb(const cJSON *obj, struct kube_service *s, char **error)
{
	const cJSON *status, *lb, *ingress, *e;
	char path[DECODE_PATH_MAX];
	size_t n, i = 0;
	int r;

	r = json_object(obj, "", "status", &status, error);
	if (r <= 0)
		return r;
	r = json_object(status, "status", "loadBalancer", &lb, error);
	if (r <= 0)
		return r;
	r = json_array(lb, "status.loadBalancer", "ingress", KUBE_MAX_IPS, &ingress, &n, error);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(e, ingress) {
		decode_path(path, sizeof(path), "status.loadBalancer", "ingress", i++);
		r = service_decode_ingress(e, path, s, error);
		if (r < 0)
			return r;
	}
	return 0;
}

static int service_decode_affinity(const cJSON *spec, struct kube_service *s, char **error)
{
	const cJSON *config, *client_ip;
	uint64_t timeout = AFFINITY_TIMEOUT_DEFAULT;
	const char *affinity = NULL;
	int r;

	r = json_string(spec, "spec", "sessionAffinity", &affinity, error);
	if (r <= 0 || !streq(affinity, "ClientIP"))
		return r < 0 ? r : 0;
	r = json_object(spec, "spec", "sessionAffinityConfig", &config, error);
	if (r > 0)
		r = json_object(config, "spec.sessionAffinityConfig", "clientIP", &client_ip,
				error);
	if (r > 0)
		r = json_uint(client_ip, "spec.sessionAffinityConfig.clientIP", "timeoutSeconds", 1,
			      AFFINITY_TIMEOUT_MAX, &timeout, error);
	if (r < 0)
		return r;
	s->affinity_client_ip = true;
	s->affinity_timeout_sec = (uint32_t)timeout;
	return 0;
}

/* Whether spec.<key> is one of the values (NULL-terminated). */
static int spec_string_is(const cJSON *spec, const char *key, const char *const *values,
			  bool *ret, char **error)
{
	const char *v = NULL;
	int r;

	*ret = false;
	r = json_string(spec, "spec", key, &v, error);
	if (r <= 0)
		return r;
	for (; *values; values++)
		if (streq(v, *values))
			*ret = true;
	return 0;
}

static int service_decode_policies(const cJSON *spec, struct kube_service *s, char **error)
{
	static const char *const local[] = { "Local", NULL };
	static const char *const prefer_close[] = { "PreferClose", "PreferSameZone", NULL };
	int r;

	r = spec_string_is(spec, "internalTrafficPolicy", local, &s->internal_traffic_local, error);
	if (r >= 0)
		r = spec_string_is(spec, "externalTrafficPolicy", local,
				   &s->external_traffic_local, error);
	if (r >= 0)
		r = spec_string_is(spec, "trafficDistribution", prefer_close, &s->prefer_close,
				   error);
	return r;
}

static int service_decode_spec(const cJSON *spec, struct kube_service *s, char **error)
{
	int r;

	r = service_decode_type(spec, s, error);
	if (r >= 0)
		r = service_decode_cluster_ips(spec, s, error);
	if (r >= 0)
		r = service_decode_ports(spec, s, error);
	if (r >= 0)
		r = service_decode_external_ips(spec, s, error);
	if (r >= 0)
		r = service_decode_affinity(spec, s, error);
	if (r >= 0)
		r = service_decode_policies(spec, s, error);
	if (r >= 0)
		r = json_name(spec, "spec", "externalName", false, &s->external_name, error);
	return r < 0 ? r : 0;
}

static int service_decode(const cJSON *obj, struct kube_service *s, char **error)
{
	const cJSON *meta, *spec;
	int r;

	r = decode_meta(obj, &s->namespace, &s->name, error);
	if (r < 0)
		return r;
	meta = json_member(obj, "metadata");
	r = json_name(meta, "metadata", "resourceVersion", false, &s->resource_version, error);
	if (r >= 0)
		r = service_decode_labels(meta, s, error);
	if (r >= 0)
		r = json_object(obj, "", "spec", &spec, error);
	if (r == 0)
		return decode_error(error, NULL, "spec", "not set");
	if (r < 0)
		return r;
	r = service_decode_spec(spec, s, error);
	if (r >= 0)
		r = service_decode_lb(obj, s, error);
	return r < 0 ? r : 0;
}

int kube_service_decode(const struct cJSON *obj, struct kube_service **ret, char **ret_error)
{
	_cleanup_(kube_service_freep) struct kube_service *s = NULL;
	char *error = NULL;
	int r = -ENOMEM;

	s = calloc(1, sizeof(*s));
	if (s)
		r = service_decode(obj, s, &error);
	r = decode_finish(r, &error, ret_error);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}
