/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for kube/ decoders: Service, EndpointSlice (v1, v1beta1) and
 * core/v1 Endpoints, from objects in the exact shape the API server serves
 * (tests/data/objects/), and malformed variants of them.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "kube/internal.h"
#include "kube/kube.h"

/* ---- helpers ------------------------------------------------------------- */

static const char *data_dir(void)
{
	const char *d = getenv("KUBE_ANNEX_TEST_DATA");

	return d ? d : "tests/data";
}

static cJSON *load(const char *name)
{
	char path[512], *buf;
	cJSON *j;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/objects/%s", data_dir(), name);
	f = fopen(path, "re");
	if (!f)
		fail_msg("cannot open %s (run from the source tree or set KUBE_ANNEX_TEST_DATA)",
			 path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	j = cJSON_Parse(buf);
	free(buf);
	assert_non_null(j);
	return j;
}

/*
 * Set (or, with json NULL, delete) the member at path, e.g.
 * "spec.ports[1].port" or "metadata.labels.{kubernetes.io/service-name}";
 * missing objects on the way are created.
 */
static void set_at(cJSON *root, const char *path, const char *json)
{
	char key[256];
	cJSON *parent = root, *next;
	const char *p = path;
	int index = -1;
	size_t n;

	for (;;) {
		index = -1;
		if (*p == '{') {
			n = strcspn(++p, "}");
			memcpy(key, p, n);
			key[n] = '\0';
			p += n + 1;
		} else {
			n = strcspn(p, ".[");
			memcpy(key, p, n);
			key[n] = '\0';
			p += n;
		}
		if (*p == '[') {
			index = atoi(p + 1);
			p = strchr(p, ']') + 1;
		}
		if (*p == '\0')
			break;
		next = cJSON_GetObjectItemCaseSensitive(parent, key);
		if (!next)
			next = cJSON_AddObjectToObject(parent, key);
		if (index >= 0)
			next = cJSON_GetArrayItem(next, index);
		assert_non_null(next);
		parent = next;
		p++; /* '.' */
	}
	if (index >= 0) {
		parent = cJSON_GetObjectItemCaseSensitive(parent, key);
		assert_non_null(parent);
		if (json)
			assert_true(cJSON_ReplaceItemInArray(parent, index, cJSON_Parse(json)));
		else
			cJSON_DeleteItemFromArray(parent, index);
	} else if (json) {
		cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
		cJSON_AddItemToObject(parent, key, cJSON_Parse(json));
	} else {
		cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
	}
}

/* "[{"name": "p1", "port": 1}, ...]": n valid, distinct Service ports. */
static char *distinct_ports(size_t n)
{
	char *s = malloc(n * 32 + 3), *p = s;

	assert_non_null(s);
	*p++ = '[';
	for (size_t i = 1; i <= n; i++)
		p += sprintf(p, "%s{\"name\":\"p%zu\",\"port\":%zu}", i > 1 ? "," : "", i, i);
	*p++ = ']';
	*p = '\0';
	return s;
}

/* "[<item>, <item>, ...]" with n copies of item. */
static char *repeat_array(const char *item, size_t n)
{
	size_t len = strlen(item) + 2, i;
	char *s = malloc(n * len + 3), *p = s;

	assert_non_null(s);
	*p++ = '[';
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", item);
	*p++ = ']';
	*p = '\0';
	return s;
}

static struct kube_ip ip(const char *s)
{
	struct kube_ip a;

	assert_int_equal(kube_ip_parse(s, &a), 0);
	return a;
}

static void assert_ip(const struct kube_ip *got, const char *want)
{
	char buf[INET6_ADDRSTRLEN];
	struct kube_ip w = ip(want);

	if (!kube_ip_equal(got, &w))
		fail_msg("address %s, expected %s", kube_ip_format(got, buf, sizeof(buf)), want);
}

/* 1970-based seconds of a UTC date, for expected trigger times. */
static uint64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };

	return (uint64_t)timegm(&tm) * USEC_PER_SEC;
}

static struct kube_service *service_ok(const char *file)
{
	cJSON *j = load(file);
	struct kube_service *s = NULL;
	char *error = (char *)"unset";

	if (kube_service_decode(j, &s, &error) < 0)
		fail_msg("%s: %s", file, error);
	assert_null(error);
	cJSON_Delete(j);
	return s;
}

static struct kube_endpoint_slice *slice_ok(const char *file)
{
	cJSON *j = load(file);
	struct kube_endpoint_slice *s = NULL;
	char *error = (char *)"unset";

	if (kube_endpoint_slice_decode(j, &s, &error) < 0)
		fail_msg("%s: %s", file, error);
	assert_null(error);
	cJSON_Delete(j);
	return s;
}

static void assert_endpoint(const struct kube_endpoint *e, const char *addr, bool ready,
			    bool serving, bool terminating, const char *node, const char *zone)
{
	assert_ip(&e->addr, addr);
	assert_int_equal(e->ready, ready);
	assert_int_equal(e->serving, serving);
	assert_int_equal(e->terminating, terminating);
	if (node)
		assert_string_equal(e->node_name, node);
	else
		assert_null(e->node_name);
	if (zone)
		assert_string_equal(e->zone, zone);
	else
		assert_null(e->zone);
}

static void assert_eport(const struct kube_endpoint_port *p, const char *name, int proto,
			 unsigned port)
{
	assert_string_equal(p->name, name);
	assert_int_equal(p->protocol, proto);
	assert_int_equal(p->port, port);
}

static void assert_sport(const struct kube_service_port *p, const char *name, int proto,
			 unsigned port, unsigned node_port, const char *target)
{
	assert_string_equal(p->name, name);
	assert_int_equal(p->protocol, proto);
	assert_int_equal(p->port, port);
	assert_int_equal(p->node_port, node_port);
	if (target)
		assert_string_equal(p->target_port, target);
	else
		assert_null(p->target_port);
}

/* ---- addresses, protocols, times ----------------------------------------- */

static void test_ip(void **state)
{
	char buf[INET6_ADDRSTRLEN];
	struct kube_ip a, b;

	assert_int_equal(kube_ip_parse("10.0.0.1", &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(kube_ip_format(&a, buf, sizeof(buf)), "10.0.0.1");
	assert_int_equal(kube_ip_parse("fd00:10:96::5", &b), 0);
	assert_int_equal(b.family, AF_INET6);
	assert_string_equal(kube_ip_format(&b, buf, sizeof(buf)), "fd00:10:96::5");
	assert_false(kube_ip_equal(&a, &b));

	/* Go (and so the API server) treats v4-mapped addresses as IPv4. */
	assert_int_equal(kube_ip_parse("::ffff:10.0.0.1", &b), 0);
	assert_int_equal(b.family, AF_INET);
	assert_true(kube_ip_equal(&a, &b));

	assert_int_equal(kube_ip_parse("10.0.0.999", &a), -EINVAL);
	assert_int_equal(kube_ip_parse("", &a), -EINVAL);
	assert_int_equal(kube_ip_parse("fe80::1%eth0", &a), -EINVAL);
	assert_int_equal(kube_ip_parse("10.0.0.1/24", &a), -EINVAL);
	assert_int_equal(kube_ip_parse(" 10.0.0.1", &a), -EINVAL);
	assert_int_equal(kube_ip_parse(NULL, &a), -EINVAL);
	assert_string_equal(kube_ip_format(&(struct kube_ip){}, buf, sizeof(buf)), "?");
}

static void test_protocol(void **state)
{
	assert_int_equal(kube_protocol_parse(NULL), IPPROTO_TCP);
	assert_int_equal(kube_protocol_parse("TCP"), IPPROTO_TCP);
	assert_int_equal(kube_protocol_parse("UDP"), IPPROTO_UDP);
	assert_int_equal(kube_protocol_parse("SCTP"), IPPROTO_SCTP);
	assert_int_equal(kube_protocol_parse("tcp"), -EINVAL);
	assert_int_equal(kube_protocol_parse(""), -EINVAL);
	assert_string_equal(kube_protocol_name(IPPROTO_TCP), "tcp");
	assert_string_equal(kube_protocol_name(IPPROTO_UDP), "udp");
	assert_string_equal(kube_protocol_name(IPPROTO_SCTP), "sctp");
	assert_string_equal(kube_protocol_name(0), "unknown");
}

static void test_rfc3339(void **state)
{
	uint64_t t;

	assert_int_equal(parse_rfc3339("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(parse_rfc3339("2024-05-01T10:00:05Z", &t), 0);
	assert_int_equal(t, utc(2024, 5, 1, 10, 0, 5));
	assert_int_equal(parse_rfc3339("2024-02-29T23:59:59.5Z", &t), 0);
	assert_int_equal(t, utc(2024, 2, 29, 23, 59, 59) + 500000);
	assert_int_equal(parse_rfc3339("2025-02-11T08:20:41.187254321Z", &t), 0);
	assert_int_equal(t, utc(2025, 2, 11, 8, 20, 41) + 187254);
	assert_int_equal(parse_rfc3339("2025-02-11T10:20:41+02:00", &t), 0);
	assert_int_equal(t, utc(2025, 2, 11, 8, 20, 41));
	assert_int_equal(parse_rfc3339("2025-02-11t05:50:41.1-02:30", &t), 0);
	assert_int_equal(t, utc(2025, 2, 11, 8, 20, 41) + 100000);

	assert_int_equal(parse_rfc3339("2025-02-11T08:20:41", &t), -EINVAL);
	assert_int_equal(parse_rfc3339("2025-02-11 08:20:41Z", &t), -EINVAL);
	assert_int_equal(parse_rfc3339("2025-13-11T08:20:41Z", &t), -EINVAL);
	assert_int_equal(parse_rfc3339("2025-02-11T08:20:41.Z", &t), -EINVAL);
	assert_int_equal(parse_rfc3339("2025-02-11T08:20:41Zjunk", &t), -EINVAL);
	assert_int_equal(parse_rfc3339("1969-12-31T23:59:59Z", &t), -EINVAL);
	assert_int_equal(parse_rfc3339("", &t), -EINVAL);
	assert_int_equal(parse_rfc3339("2025-0", &t), -EINVAL);
}

/* ---- Services ------------------------------------------------------------- */

/* The seed: a selector-less Service with two named ports. */
static void test_service_seed(void **state)
{
	struct kube_service *s = service_ok("service-seed-external-service-1.json");

	assert_string_equal(s->namespace, "default");
	assert_string_equal(s->name, "external-service-1");
	assert_string_equal(s->resource_version, "48213");
	assert_int_equal(s->type, KUBE_SERVICE_CLUSTER_IP);
	assert_false(s->headless);
	assert_int_equal(s->n_cluster_ips, 1);
	assert_ip(&s->cluster_ips[0], "10.96.120.31");
	assert_int_equal(s->n_ports, 2);
	assert_sport(&s->ports[0], "visit-port", IPPROTO_TCP, 9999, 0, "9999");
	assert_sport(&s->ports[1], "test-port", IPPROTO_TCP, 8888, 0, "8888");
	assert_int_equal(s->n_external_ips, 0);
	assert_int_equal(s->n_lb_ips, 0);
	assert_false(s->affinity_client_ip);
	assert_int_equal(s->affinity_timeout_sec, 0);
	assert_false(s->internal_traffic_local);
	assert_false(s->external_traffic_local);
	assert_false(s->prefer_close);
	assert_null(s->proxy_name);
	assert_false(s->headless_label);
	assert_null(s->external_name);
	kube_service_free(s);
}

static void test_service_dualstack_named_ports(void **state)
{
	struct kube_service *s = service_ok("service-web-dualstack.json");

	assert_string_equal(s->namespace, "shop");
	assert_string_equal(s->name, "web");
	assert_int_equal(s->n_cluster_ips, 2);
	assert_ip(&s->cluster_ips[0], "10.96.5.5");
	assert_ip(&s->cluster_ips[1], "fd00:10:96::5");
	assert_int_equal(s->n_ports, 3);
	assert_sport(&s->ports[0], "http", IPPROTO_TCP, 80, 0, "http");
	assert_sport(&s->ports[1], "https", IPPROTO_TCP, 443, 0, "8443");
	assert_sport(&s->ports[2], "stats", IPPROTO_UDP, 9153, 0, "stats-udp");
	assert_true(s->prefer_close);
	assert_false(s->internal_traffic_local);
	kube_service_free(s);
}

static void test_service_headless(void **state)
{
	struct kube_service *s = service_ok("service-headless.json");

	assert_true(s->headless);
	assert_true(s->headless_label);
	assert_int_equal(s->n_cluster_ips, 0);
	assert_int_equal(s->n_ports, 1);
	assert_sport(&s->ports[0], "", IPPROTO_TCP, 80, 0, "8080");
	kube_service_free(s);
}

static void test_service_external_name(void **state)
{
	struct kube_service *s = service_ok("service-externalname.json");

	assert_int_equal(s->type, KUBE_SERVICE_EXTERNAL_NAME);
	assert_string_equal(s->external_name, "api.example.com");
	assert_int_equal(s->n_cluster_ips, 0);
	assert_false(s->headless);
	kube_service_free(s);
}

static void test_service_load_balancer(void **state)
{
	struct kube_service *s = service_ok("service-loadbalancer.json");

	assert_int_equal(s->type, KUBE_SERVICE_LOAD_BALANCER);
	assert_int_equal(s->n_ports, 2);
	assert_sport(&s->ports[0], "https", IPPROTO_TCP, 443, 31443, "https");
	assert_sport(&s->ports[1], "quic", IPPROTO_UDP, 443, 31443, "quic");
	assert_int_equal(s->n_external_ips, 1);
	assert_ip(&s->external_ips[0], "192.0.2.50");
	/* ipMode Proxy and the hostname-only entry are left out */
	assert_int_equal(s->n_lb_ips, 2);
	assert_ip(&s->lb_ips[0], "203.0.113.10");
	assert_ip(&s->lb_ips[1], "203.0.113.12");
	assert_true(s->affinity_client_ip);
	assert_int_equal(s->affinity_timeout_sec, 3600);
	assert_true(s->external_traffic_local);
	assert_true(s->internal_traffic_local);
	assert_false(s->prefer_close);
	kube_service_free(s);
}

static struct kube_service *service_mutated(const char *file, const char *path, const char *json)
{
	cJSON *j = load(file);
	struct kube_service *s = NULL;
	char *error = NULL;

	set_at(j, path, json);
	if (kube_service_decode(j, &s, &error) < 0)
		fail_msg("%s with %s=%s: %s", file, path, json, error);
	cJSON_Delete(j);
	return s;
}

static void test_service_variants(void **state)
{
	const char *seed = "service-seed-external-service-1.json";
	struct kube_service *s;

	/* ClientIP without a config gets the API's default timeout */
	s = service_mutated(seed, "spec.sessionAffinity", "\"ClientIP\"");
	assert_true(s->affinity_client_ip);
	assert_int_equal(s->affinity_timeout_sec, 10800);
	kube_service_free(s);

	/* A pre-dual-stack server: clusterIP only */
	s = service_mutated(seed, "spec.clusterIPs", NULL);
	assert_int_equal(s->n_cluster_ips, 1);
	assert_ip(&s->cluster_ips[0], "10.96.120.31");
	kube_service_free(s);

	/* headless by clusterIP alone */
	s = service_mutated("service-headless.json", "spec.clusterIPs", NULL);
	assert_true(s->headless);
	kube_service_free(s);

	s = service_mutated(seed, "metadata.labels.{service.kubernetes.io/service-proxy-name}",
			    "\"other-proxy\"");
	assert_string_equal(s->proxy_name, "other-proxy");
	kube_service_free(s);

	s = service_mutated(seed, "spec.trafficDistribution", "\"PreferSameZone\"");
	assert_true(s->prefer_close);
	kube_service_free(s);

	s = service_mutated(seed, "spec.trafficDistribution", "\"PreferSameNode\"");
	assert_false(s->prefer_close);
	kube_service_free(s);

	/* Type defaults to ClusterIP; NodePort is read */
	s = service_mutated(seed, "spec.type", NULL);
	assert_int_equal(s->type, KUBE_SERVICE_CLUSTER_IP);
	kube_service_free(s);
	s = service_mutated(seed, "spec.type", "\"NodePort\"");
	assert_int_equal(s->type, KUBE_SERVICE_NODE_PORT);
	kube_service_free(s);

	/* Defaults: protocol TCP, no name, no targetPort */
	s = service_mutated(seed, "spec.ports[0]", "{\"port\": 53}");
	assert_sport(&s->ports[0], "", IPPROTO_TCP, 53, 0, NULL);
	kube_service_free(s);

	/* JSON null is the same as absent */
	s = service_mutated(seed, "spec.ports[0].targetPort", "null");
	assert_null(s->ports[0].target_port);
	kube_service_free(s);

	/* No status at all, an empty ingress list */
	s = service_mutated(seed, "status", NULL);
	assert_int_equal(s->n_lb_ips, 0);
	kube_service_free(s);
	s = service_mutated(seed, "status.loadBalancer.ingress", "[]");
	assert_int_equal(s->n_lb_ips, 0);
	kube_service_free(s);

	/* resourceVersion is optional */
	s = service_mutated(seed, "metadata.resourceVersion", NULL);
	assert_null(s->resource_version);
	kube_service_free(s);

	/* A headless Service with no ports at all */
	s = service_mutated("service-headless.json", "spec.ports", NULL);
	assert_int_equal(s->n_ports, 0);
	assert_null(s->ports);
	kube_service_free(s);
}

struct bad_case {
	const char *file;
	const char *path;
	const char *json; /* NULL deletes */
	const char *error;
};

static const struct bad_case bad_services[] = {
	{ "service-web-dualstack.json", "spec.ports[1].port", "70000",
	  "spec.ports[1].port: 70000 is out of range" },
	{ "service-web-dualstack.json", "spec.ports[0].port", NULL, "spec.ports[0].port: not set" },
	{ "service-web-dualstack.json", "spec.ports[0].port", "0",
	  "spec.ports[0].port: 0 is out of range" },
	{ "service-web-dualstack.json", "spec.ports[0].port", "\"80\"",
	  "spec.ports[0].port: not a number" },
	{ "service-web-dualstack.json", "spec.ports[0].port", "80.5",
	  "spec.ports[0].port: 80.5 is not an integer" },
	{ "service-web-dualstack.json", "spec.ports[0].port", "1e300",
	  "spec.ports[0].port: 1e+300 is out of range" },
	{ "service-web-dualstack.json", "spec.ports[2].protocol", "\"ICMP\"",
	  "spec.ports[2].protocol: \"ICMP\" is not TCP, UDP or SCTP" },
	{ "service-web-dualstack.json", "spec.ports[1].targetPort", "65536",
	  "spec.ports[1].targetPort: 65536 is out of range" },
	{ "service-web-dualstack.json", "spec.ports[1].targetPort", "true",
	  "spec.ports[1].targetPort: not a number or a string" },
	{ "service-web-dualstack.json", "spec.ports[1].targetPort", "\"no way\"",
	  "spec.ports[1].targetPort: \"no way\" is not a valid name" },
	{ "service-web-dualstack.json", "spec.ports[0].nodePort", "-1",
	  "spec.ports[0].nodePort: -1 is out of range" },
	{ "service-web-dualstack.json", "spec.ports[0].name", "5",
	  "spec.ports[0].name: not a string" },
	{ "service-web-dualstack.json", "spec.ports[0].name", "\"ht\\ntp\"",
	  "spec.ports[0].name: \"ht?tp\" is not a valid name" },
	{ "service-web-dualstack.json", "spec.ports[2].name", "\"http\"",
	  "spec.ports[2].name: \"http\" is also the name of ports[0]" },
	{ "service-web-dualstack.json", "spec.ports[1].port", "80",
	  "spec.ports[1].port: 80/tcp is also ports[0]" },
	{ "service-web-dualstack.json", "spec.ports[1].name", NULL, NULL },
	{ "service-web-dualstack.json", "spec.ports[0]", "\"http\"", "spec.ports[0]: not an object" },
	{ "service-web-dualstack.json", "spec.ports", "{}", "spec.ports: not an array" },
	{ "service-web-dualstack.json", "spec.clusterIPs[1]", "\"fd00::zz\"",
	  "spec.clusterIPs[1]: \"fd00::zz\" is not an IP address" },
	{ "service-web-dualstack.json", "spec.clusterIPs[0]", "17",
	  "spec.clusterIPs[0]: not a string" },
	{ "service-web-dualstack.json", "spec.clusterIPs", "\"10.96.5.5\"",
	  "spec.clusterIPs: not an array" },
	{ "service-seed-external-service-1.json", "spec.clusterIPs", "[]", NULL },
	{ "service-web-dualstack.json", "spec.type", "\"Weird\"",
	  "spec.type: \"Weird\" is not ClusterIP, NodePort, LoadBalancer or ExternalName" },
	{ "service-web-dualstack.json", "spec.externalIPs", "[\"192.0.2.1\", \"nope\"]",
	  "spec.externalIPs[1]: \"nope\" is not an IP address" },
	{ "service-loadbalancer.json", "status.loadBalancer.ingress[0].ip", "\"x\"",
	  "status.loadBalancer.ingress[0].ip: \"x\" is not an IP address" },
	{ "service-loadbalancer.json", "status.loadBalancer.ingress[1]", "[]",
	  "status.loadBalancer.ingress[1]: not an object" },
	{ "service-loadbalancer.json", "status.loadBalancer", "\"up\"",
	  "status.loadBalancer: not an object" },
	{ "service-loadbalancer.json", "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "0",
	  "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is out of range" },
	{ "service-loadbalancer.json", "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
	  "86401", "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 is out of range" },
	{ "service-loadbalancer.json", "spec.sessionAffinityConfig.clientIP", "7",
	  "spec.sessionAffinityConfig.clientIP: not an object" },
	{ "service-loadbalancer.json", "spec.externalTrafficPolicy", "1",
	  "spec.externalTrafficPolicy: not a string" },
	{ "service-externalname.json", "spec.externalName", "\"bad name.example.com\"",
	  "spec.externalName: \"bad name.example.com\" is not a valid name" },
	{ "service-web-dualstack.json", "metadata.name", NULL, "metadata.name: not set" },
	{ "service-web-dualstack.json", "metadata.namespace", "\"\"", "metadata.namespace: not set" },
	{ "service-web-dualstack.json", "metadata.name", "\"a b\"",
	  "metadata.name: \"a b\" is not a valid name" },
	{ "service-web-dualstack.json", "metadata.name", "[]", "metadata.name: not a string" },
	{ "service-web-dualstack.json", "metadata", NULL, "metadata: not set" },
	{ "service-web-dualstack.json", "metadata", "\"web\"", "metadata: not an object" },
	{ "service-web-dualstack.json", "metadata.labels", "[]", "metadata.labels: not an object" },
	{ "service-web-dualstack.json", "spec", NULL, "spec: not set" },
};

static void check_bad(const struct bad_case *c,
		      int (*decode)(const cJSON *obj, char **error))
{
	cJSON *j = load(c->file);
	char *error = NULL;
	int r;

	set_at(j, c->path, c->json);
	r = decode(j, &error);
	if (!c->error) {
		if (r < 0)
			fail_msg("%s with %s=%s: unexpected error %s", c->file, c->path, c->json, error);
	} else {
		if (r != -EINVAL)
			fail_msg("%s with %s=%s: decoded (%d), expected \"%s\"", c->file, c->path,
				 c->json, r, c->error);
		assert_non_null(error);
		if (!streq(error, c->error))
			fail_msg("%s with %s=%s:\n  got      \"%s\"\n  expected \"%s\"", c->file,
				 c->path, c->json, error, c->error);
	}
	free(error);
	cJSON_Delete(j);
}

static int decode_service(const cJSON *obj, char **error)
{
	struct kube_service *s = NULL;
	int r = kube_service_decode(obj, &s, error);

	assert_true(r < 0 ? !s : !!s);
	kube_service_free(s);
	return r;
}

static void test_service_bad(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_services); i++)
		check_bad(&bad_services[i], decode_service);
}

static void test_service_bad_bounds(void **state)
{
	struct kube_service *s = NULL;
	char name[KUBE_MAX_NAME_LEN + 4], *ports, *ips, *error = NULL;
	cJSON *j;

	j = load("service-web-dualstack.json");
	ports = repeat_array("{\"port\": 80}", KUBE_MAX_PORTS + 1);
	set_at(j, "spec.ports", ports);
	assert_int_equal(kube_service_decode(j, &s, &error), -EINVAL);
	assert_string_equal(error, "spec.ports: more than 1024 entries");
	free(error);
	free(ports);
	cJSON_Delete(j);

	j = load("service-web-dualstack.json");
	ports = distinct_ports(KUBE_MAX_PORTS);
	set_at(j, "spec.ports", ports);
	assert_int_equal(kube_service_decode(j, &s, NULL), 0);
	assert_int_equal(s->n_ports, KUBE_MAX_PORTS);
	s = kube_service_free(s);
	free(ports);
	cJSON_Delete(j);

	j = load("service-web-dualstack.json");
	ips = repeat_array("\"192.0.2.1\"", KUBE_MAX_IPS + 1);
	set_at(j, "spec.externalIPs", ips);
	assert_int_equal(kube_service_decode(j, &s, &error), -EINVAL);
	assert_string_equal(error, "spec.externalIPs: more than 16 entries");
	free(error);
	free(ips);
	cJSON_Delete(j);

	/* names: 253 bytes are fine, 254 are not */
	j = load("service-web-dualstack.json");
	memset(name, 'a', sizeof(name));
	name[0] = '"';
	name[KUBE_MAX_NAME_LEN + 1] = '"';
	name[KUBE_MAX_NAME_LEN + 2] = '\0';
	set_at(j, "metadata.name", name);
	assert_int_equal(kube_service_decode(j, &s, NULL), 0);
	assert_int_equal(strlen(s->name), KUBE_MAX_NAME_LEN);
	s = kube_service_free(s);
	name[KUBE_MAX_NAME_LEN + 1] = 'a';
	name[KUBE_MAX_NAME_LEN + 2] = '"';
	name[KUBE_MAX_NAME_LEN + 3] = '\0';
	set_at(j, "metadata.name", name);
	assert_int_equal(kube_service_decode(j, &s, &error), -EINVAL);
	assert_non_null(strstr(error, "metadata.name: \"aaaa"));
	assert_non_null(strstr(error, "...\" is not a valid name"));
	free(error);
	cJSON_Delete(j);
}

static void test_not_objects(void **state)
{
	static const char *const docs[] = { "[]", "null", "\"Service\"", "42" };
	struct kube_endpoint_slice *es = NULL, **v = NULL;
	struct kube_service *s = NULL;
	char *error = NULL;
	size_t i, n = 0;
	cJSON *j;

	for (i = 0; i < ARRAY_SIZE(docs); i++) {
		j = cJSON_Parse(docs[i]);
		assert_int_equal(kube_service_decode(j, &s, &error), -EINVAL);
		assert_string_equal(error, "not a JSON object");
		free(error);
		assert_int_equal(kube_endpoint_slice_decode(j, &es, &error), -EINVAL);
		assert_string_equal(error, "not a JSON object");
		free(error);
		assert_int_equal(kube_endpoints_decode(j, &v, &n, &error), -EINVAL);
		assert_string_equal(error, "not a JSON object");
		free(error);
		/* without an error pointer: still no leak */
		assert_int_equal(kube_service_decode(j, &s, NULL), -EINVAL);
		cJSON_Delete(j);
	}
	assert_int_equal(kube_service_decode(NULL, &s, NULL), -EINVAL);
	assert_null(kube_meta_string(NULL, "name"));
}

static void test_meta_string(void **state)
{
	cJSON *j = load("endpointslice-v1-web-ipv4.json");

	assert_string_equal(kube_meta_string(j, "namespace"), "shop");
	assert_string_equal(kube_meta_string(j, "name"), "web-8xk2p");
	assert_string_equal(kube_meta_string(j, "resourceVersion"), "731988");
	assert_null(kube_meta_string(j, "generation")); /* a number */
	assert_null(kube_meta_string(j, "nope"));
	set_at(j, "metadata", "[]");
	assert_null(kube_meta_string(j, "name"));
	cJSON_Delete(j);
}

/* ---- EndpointSlices --------------------------------------------------------- */

static void test_slice_v1(void **state)
{
	struct kube_endpoint_slice *s = slice_ok("endpointslice-v1-web-ipv4.json");
	const struct kube_endpoint *e;

	assert_string_equal(s->namespace, "shop");
	assert_string_equal(s->name, "web-8xk2p");
	assert_string_equal(s->service_name, "web");
	assert_int_equal(s->family, AF_INET);
	assert_int_equal(s->trigger_time_usec, utc(2025, 2, 11, 8, 20, 41) + 187254);
	assert_int_equal(s->n_ports, 3);
	assert_eport(&s->ports[0], "http", IPPROTO_TCP, 8080);
	assert_eport(&s->ports[1], "https", IPPROTO_TCP, 8443);
	assert_eport(&s->ports[2], "stats", IPPROTO_UDP, 9153);
	assert_int_equal(s->n_endpoints, 4);

	e = &s->endpoints[0];
	assert_endpoint(e, "10.244.1.7", true, true, false, "node-a1", "eu-west-1a");
	assert_true(e->has_hints);
	assert_int_equal(e->n_hint_zones, 1);
	assert_string_equal(e->hint_zones[0], "eu-west-1a");
	assert_endpoint(&s->endpoints[1], "10.244.2.12", true, true, false, "node-b1", "eu-west-1b");
	/* terminating, still serving */
	e = &s->endpoints[2];
	assert_endpoint(e, "10.244.2.9", false, true, true, "node-b1", "eu-west-1b");
	assert_false(e->has_hints);
	assert_int_equal(e->n_hint_zones, 0);
	assert_endpoint(&s->endpoints[3], "10.244.3.4", false, false, false, "node-c1", "eu-west-1c");
	kube_endpoint_slice_free(s);
}

static void test_slice_v1_ipv6(void **state)
{
	struct kube_endpoint_slice *s = slice_ok("endpointslice-v1-web-ipv6.json");

	assert_int_equal(s->family, AF_INET6);
	assert_string_equal(s->service_name, "web");
	/* "+02:00" offset */
	assert_int_equal(s->trigger_time_usec, utc(2025, 2, 11, 8, 20, 41));
	assert_int_equal(s->n_endpoints, 2);
	assert_endpoint(&s->endpoints[0], "fd00:10:244:1::7", true, true, false, "node-a1",
			"eu-west-1a");
	assert_endpoint(&s->endpoints[1], "fd00:10:244:2::c", true, true, false, "node-b1",
			"eu-west-1b");
	assert_int_equal(s->n_ports, 3);
	kube_endpoint_slice_free(s);
}

static void test_slice_v1beta1(void **state)
{
	struct kube_endpoint_slice *s = slice_ok("endpointslice-v1beta1-web-topology.json");

	assert_int_equal(s->family, AF_INET);
	assert_int_equal(s->trigger_time_usec, utc(2024, 5, 1, 10, 3, 40));
	assert_int_equal(s->n_ports, 1);
	assert_eport(&s->ports[0], "http", IPPROTO_TCP, 8080);
	assert_int_equal(s->n_endpoints, 3);
	/* node and zone from the topology map */
	assert_endpoint(&s->endpoints[0], "10.244.1.7", true, true, false, "node-a1", "eu-west-1a");
	/* serving unset: follows ready */
	assert_endpoint(&s->endpoints[1], "10.244.2.3", false, false, false, "node-b1",
			"eu-west-1b");
	/* 1.20's nodeName field */
	assert_endpoint(&s->endpoints[2], "10.244.3.8", true, true, false, "node-c1", "eu-west-1c");
	kube_endpoint_slice_free(s);
}

/* The seed in 1.20: the mirroring controller's copy of the Endpoints. */
static void test_slice_v1beta1_mirrored_seed(void **state)
{
	struct kube_endpoint_slice *s = slice_ok("endpointslice-v1beta1-seed-mirrored.json");

	assert_string_equal(s->namespace, "default");
	assert_string_equal(s->name, "external-service-1-7sd2k");
	assert_string_equal(s->service_name, "external-service-1");
	assert_int_equal(s->family, AF_INET);
	assert_int_equal(s->trigger_time_usec, utc(2024, 5, 1, 10, 0, 5));
	assert_int_equal(s->n_ports, 2);
	assert_eport(&s->ports[0], "visit-port", IPPROTO_TCP, 80);
	assert_eport(&s->ports[1], "test-port", IPPROTO_TCP, 443);
	assert_int_equal(s->n_endpoints, 2);
	assert_endpoint(&s->endpoints[0], "180.101.49.11", true, true, false, NULL, NULL);
	assert_endpoint(&s->endpoints[1], "202.89.233.100", true, true, false, NULL, NULL);
	kube_endpoint_slice_free(s);
}

static void test_slice_fqdn_and_empty(void **state)
{
	struct kube_endpoint_slice *s = slice_ok("endpointslice-v1-fqdn.json");

	assert_int_equal(s->family, 0);
	assert_string_equal(s->service_name, "legacy-db");
	assert_int_equal(s->n_endpoints, 0);
	assert_null(s->endpoints);
	assert_int_equal(s->n_ports, 0);
	assert_int_equal(s->trigger_time_usec, 0);
	kube_endpoint_slice_free(s);

	/* "endpoints": null, "ports": null, as served for an empty slice */
	s = slice_ok("endpointslice-v1-empty.json");
	assert_int_equal(s->family, AF_INET);
	assert_int_equal(s->n_endpoints, 0);
	assert_int_equal(s->n_ports, 0);
	kube_endpoint_slice_free(s);
}

static struct kube_endpoint_slice *slice_mutated(const char *file, const char *path,
						 const char *json)
{
	struct kube_endpoint_slice *s = NULL;
	cJSON *j = load(file);
	char *error = NULL;

	set_at(j, path, json);
	if (kube_endpoint_slice_decode(j, &s, &error) < 0)
		fail_msg("%s with %s=%s: %s", file, path, json, error);
	cJSON_Delete(j);
	return s;
}

static void test_slice_variants(void **state)
{
	const char *v1 = "endpointslice-v1-web-ipv4.json";
	const char *beta = "endpointslice-v1beta1-web-topology.json";
	struct kube_endpoint_slice *s;

	/* no conditions: ready and serving */
	s = slice_mutated(v1, "endpoints[3].conditions", NULL);
	assert_endpoint(&s->endpoints[3], "10.244.3.4", true, true, false, "node-c1", "eu-west-1c");
	kube_endpoint_slice_free(s);

	/* ready unset, terminating */
	s = slice_mutated(v1, "endpoints[2].conditions", "{\"terminating\": true}");
	assert_endpoint(&s->endpoints[2], "10.244.2.9", true, true, true, "node-b1", "eu-west-1b");
	kube_endpoint_slice_free(s);

	/* fields win over the v1beta1 topology map */
	s = slice_mutated(beta, "endpoints[2].topology.{kubernetes.io/hostname}", "\"elsewhere\"");
	assert_string_equal(s->endpoints[2].node_name, "node-c1");
	kube_endpoint_slice_free(s);
	s = slice_mutated(beta, "endpoints[0].zone", "\"zone-x\"");
	assert_string_equal(s->endpoints[0].zone, "zone-x");
	kube_endpoint_slice_free(s);

	/* unnamed port, port unset (ignored later, but kept), protocol default */
	s = slice_mutated(v1, "ports[1]", "{}");
	assert_eport(&s->ports[1], "", IPPROTO_TCP, 0);
	kube_endpoint_slice_free(s);
	s = slice_mutated(v1, "ports[1]", "{\"name\": null, \"port\": null, \"protocol\": \"SCTP\"}");
	assert_eport(&s->ports[1], "", IPPROTO_SCTP, 0);
	kube_endpoint_slice_free(s);

	/* only addresses[0] counts */
	s = slice_mutated(v1, "endpoints[0].addresses", "[\"10.244.1.70\", \"not-checked\"]");
	assert_ip(&s->endpoints[0].addr, "10.244.1.70");
	kube_endpoint_slice_free(s);

	/* no service-name label, no labels at all */
	s = slice_mutated(v1, "metadata.labels.{kubernetes.io/service-name}", NULL);
	assert_null(s->service_name);
	kube_endpoint_slice_free(s);
	s = slice_mutated(v1, "metadata.labels", NULL);
	assert_null(s->service_name);
	kube_endpoint_slice_free(s);

	/* a bad trigger time only loses the metric */
	s = slice_mutated(v1, "metadata.annotations.{endpoints.kubernetes.io/last-change-trigger-time}",
			  "\"yesterday\"");
	assert_int_equal(s->trigger_time_usec, 0);
	kube_endpoint_slice_free(s);

	/* empty hints, as written when hints are being removed */
	s = slice_mutated(v1, "endpoints[0].hints", "{}");
	assert_false(s->endpoints[0].has_hints);
	kube_endpoint_slice_free(s);
	s = slice_mutated(v1, "endpoints[0].hints.forZones", "[{\"name\":\"a\"},{\"name\":\"b\"}]");
	assert_int_equal(s->endpoints[0].n_hint_zones, 2);
	assert_string_equal(s->endpoints[0].hint_zones[1], "b");
	kube_endpoint_slice_free(s);
}

static const struct bad_case bad_slices[] = {
	{ "endpointslice-v1-web-ipv4.json", "ports[1].name", "\"http\"",
	  "ports[1].name: \"http\" is also the name of ports[0]" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[3].addresses[0]", "\"10.0.0.999\"",
	  "endpoints[3].addresses[0]: \"10.0.0.999\" is not an IPv4 address" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[1].addresses[0]", "\"fd00::1\"",
	  "endpoints[1].addresses[0]: \"fd00::1\" is not an IPv4 address" },
	{ "endpointslice-v1-web-ipv6.json", "endpoints[1].addresses[0]", "\"10.0.0.1\"",
	  "endpoints[1].addresses[0]: \"10.0.0.1\" is not an IPv6 address" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].addresses[0]", "5",
	  "endpoints[0].addresses[0]: not a string" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].addresses", "[]",
	  "endpoints[0].addresses: empty" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].addresses", NULL,
	  "endpoints[0].addresses: not set" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].addresses", "\"10.0.0.1\"",
	  "endpoints[0].addresses: not an array" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[2]", "\"10.0.0.1\"",
	  "endpoints[2]: not an object" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints", "{}", "endpoints: not an array" },
	{ "endpointslice-v1-web-ipv4.json", "addressType", "\"IPv5\"",
	  "addressType: \"IPv5\" is not IPv4, IPv6 or FQDN" },
	{ "endpointslice-v1-web-ipv4.json", "addressType", NULL, "addressType: not set" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[2].conditions.ready", "\"yes\"",
	  "endpoints[2].conditions.ready: not a boolean" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[2].conditions.serving", "1",
	  "endpoints[2].conditions.serving: not a boolean" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[2].conditions.terminating", "[]",
	  "endpoints[2].conditions.terminating: not a boolean" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[2].conditions", "true",
	  "endpoints[2].conditions: not an object" },
	{ "endpointslice-v1-web-ipv4.json", "ports[0].port", "65536",
	  "ports[0].port: 65536 is out of range" },
	{ "endpointslice-v1-web-ipv4.json", "ports[0].port", "-80",
	  "ports[0].port: -80 is out of range" },
	{ "endpointslice-v1-web-ipv4.json", "ports[2].protocol", "\"udp\"",
	  "ports[2].protocol: \"udp\" is not TCP, UDP or SCTP" },
	{ "endpointslice-v1-web-ipv4.json", "ports[2].name", "\"\\u0007\"",
	  "ports[2].name: \"?\" is not a valid name" },
	{ "endpointslice-v1-web-ipv4.json", "ports", "\"http\"", "ports: not an array" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].hints.forZones[0].name", NULL,
	  "endpoints[0].hints.forZones[0].name: not set" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].hints.forZones[0]", "\"a\"",
	  "endpoints[0].hints.forZones[0]: not an object" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].hints", "[]",
	  "endpoints[0].hints: not an object" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].nodeName", "7",
	  "endpoints[0].nodeName: not a string" },
	{ "endpointslice-v1-web-ipv4.json", "endpoints[0].zone", "\"eu west\"",
	  "endpoints[0].zone: \"eu west\" is not a valid name" },
	{ "endpointslice-v1beta1-web-topology.json", "endpoints[1].topology", "\"x\"",
	  "endpoints[1].topology: not an object" },
	{ "endpointslice-v1beta1-web-topology.json",
	  "endpoints[1].topology.{topology.kubernetes.io/zone}", "3",
	  "endpoints[1].topology.topology.kubernetes.io/zone: not a string" },
	{ "endpointslice-v1-web-ipv4.json", "metadata.labels.{kubernetes.io/service-name}",
	  "\"bad name\"", "metadata.labels.kubernetes.io/service-name: \"bad name\" is not a valid name" },
	{ "endpointslice-v1-web-ipv4.json", "metadata.namespace", NULL,
	  "metadata.namespace: not set" },
	/* FQDN slices are not looked into */
	{ "endpointslice-v1-fqdn.json", "endpoints[0].addresses[0]", "\"not/an/fqdn\"", NULL },
};

static int decode_slice(const cJSON *obj, char **error)
{
	struct kube_endpoint_slice *s = NULL;
	int r = kube_endpoint_slice_decode(obj, &s, error);

	assert_true(r < 0 ? !s : !!s);
	kube_endpoint_slice_free(s);
	return r;
}

static void test_slice_bad(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_slices); i++)
		check_bad(&bad_slices[i], decode_slice);
}

static void test_slice_bad_bounds(void **state)
{
	struct kube_endpoint_slice *s = NULL;
	char *list, *error = NULL;
	cJSON *j;

	j = load("endpointslice-v1-web-ipv4.json");
	list = repeat_array("{\"addresses\": [\"10.0.0.1\"]}", KUBE_MAX_ENDPOINTS + 1);
	set_at(j, "endpoints", list);
	assert_int_equal(kube_endpoint_slice_decode(j, &s, &error), -EINVAL);
	assert_string_equal(error, "endpoints: more than 10000 entries");
	free(error);
	free(list);
	cJSON_Delete(j);

	j = load("endpointslice-v1-web-ipv4.json");
	list = repeat_array("{\"addresses\": [\"10.0.0.1\"]}", KUBE_MAX_ENDPOINTS);
	set_at(j, "endpoints", list);
	assert_int_equal(kube_endpoint_slice_decode(j, &s, NULL), 0);
	assert_int_equal(s->n_endpoints, KUBE_MAX_ENDPOINTS);
	s = kube_endpoint_slice_free(s);
	free(list);
	/* a failure in the last entry frees all the others */
	set_at(j, "endpoints[9999].addresses[0]", "\"::1\"");
	assert_int_equal(kube_endpoint_slice_decode(j, &s, &error), -EINVAL);
	assert_string_equal(error, "endpoints[9999].addresses[0]: \"::1\" is not an IPv4 address");
	free(error);
	cJSON_Delete(j);

	j = load("endpointslice-v1-web-ipv4.json");
	list = repeat_array("{\"port\": 1}", KUBE_MAX_PORTS + 1);
	set_at(j, "ports", list);
	assert_int_equal(kube_endpoint_slice_decode(j, &s, &error), -EINVAL);
	assert_string_equal(error, "ports: more than 1024 entries");
	free(error);
	free(list);
	cJSON_Delete(j);

	j = load("endpointslice-v1-web-ipv4.json");
	list = repeat_array("{\"name\": \"z\"}", KUBE_MAX_HINTS + 1);
	set_at(j, "endpoints[1].hints.forZones", list);
	assert_int_equal(kube_endpoint_slice_decode(j, &s, &error), -EINVAL);
	assert_string_equal(error, "endpoints[1].hints.forZones: more than 16 entries");
	free(error);
	free(list);
	cJSON_Delete(j);
}

/* ---- core/v1 Endpoints ---------------------------------------------------- */

static void endpoints_ok(const char *file, struct kube_endpoint_slice ***ret, size_t *ret_n)
{
	cJSON *j = load(file);
	char *error = (char *)"unset";

	if (kube_endpoints_decode(j, ret, ret_n, &error) < 0)
		fail_msg("%s: %s", file, error);
	assert_null(error);
	cJSON_Delete(j);
}

static void assert_slice_head(const struct kube_endpoint_slice *s, const char *ns,
			      const char *name, int family, size_t n_ports, size_t n_endpoints)
{
	assert_string_equal(s->namespace, ns);
	assert_string_equal(s->name, name);
	assert_string_equal(s->service_name, name);
	assert_int_equal(s->family, family);
	assert_int_equal(s->n_ports, n_ports);
	assert_int_equal(s->n_endpoints, n_endpoints);
}

/* The seed: hand-made Endpoints for the selector-less Service. */
static void test_endpoints_seed(void **state)
{
	struct kube_endpoint_slice **v;
	size_t n;

	endpoints_ok("endpoints-seed-external-service-1.json", &v, &n);
	assert_int_equal(n, 1);
	assert_slice_head(v[0], "default", "external-service-1", AF_INET, 2, 2);
	assert_eport(&v[0]->ports[0], "visit-port", IPPROTO_TCP, 80);
	assert_eport(&v[0]->ports[1], "test-port", IPPROTO_TCP, 443);
	assert_endpoint(&v[0]->endpoints[0], "180.101.49.11", true, true, false, NULL, NULL);
	assert_endpoint(&v[0]->endpoints[1], "202.89.233.100", true, true, false, NULL, NULL);
	assert_int_equal(v[0]->trigger_time_usec, 0);
	kube_endpoint_slices_free(v, n);
}

static void test_endpoints_dualstack(void **state)
{
	struct kube_endpoint_slice **v;
	uint64_t t = utc(2025, 2, 11, 8, 20, 41);
	size_t n, i;

	endpoints_ok("endpoints-dualstack-notready.json", &v, &n);
	assert_int_equal(n, 3);
	/* subset 0, IPv4: ready first, then not ready */
	assert_slice_head(v[0], "shop", "web", AF_INET, 2, 2);
	assert_eport(&v[0]->ports[0], "http", IPPROTO_TCP, 8080);
	assert_eport(&v[0]->ports[1], "https", IPPROTO_TCP, 8443);
	assert_endpoint(&v[0]->endpoints[0], "10.244.1.7", true, true, false, "node-a1", NULL);
	assert_endpoint(&v[0]->endpoints[1], "10.244.3.4", false, false, false, "node-c1", NULL);
	/* subset 0, IPv6, same ports */
	assert_slice_head(v[1], "shop", "web", AF_INET6, 2, 1);
	assert_eport(&v[1]->ports[1], "https", IPPROTO_TCP, 8443);
	assert_endpoint(&v[1]->endpoints[0], "fd00:10:244:1::7", true, true, false, "node-a1",
			NULL);
	/* subset 1 */
	assert_slice_head(v[2], "shop", "web", AF_INET, 1, 1);
	assert_eport(&v[2]->ports[0], "stats", IPPROTO_UDP, 9153);
	assert_endpoint(&v[2]->endpoints[0], "10.244.2.12", true, true, false, "node-b1", NULL);
	for (i = 0; i < n; i++)
		assert_int_equal(v[i]->trigger_time_usec, t);
	kube_endpoint_slices_free(v, n);
}

static int decode_endpoints(const cJSON *obj, char **error)
{
	struct kube_endpoint_slice **v = NULL;
	size_t n = 0;
	int r = kube_endpoints_decode(obj, &v, &n, error);

	kube_endpoint_slices_free(v, n);
	return r;
}

static const struct bad_case bad_endpoints[] = {
	{ "endpoints-dualstack-notready.json", "subsets[0].addresses[1].ip", "\"fd00::zz\"",
	  "subsets[0].addresses[1].ip: \"fd00::zz\" is not an IP address" },
	{ "endpoints-dualstack-notready.json", "subsets[0].notReadyAddresses[0].ip", NULL,
	  "subsets[0].notReadyAddresses[0].ip: not set" },
	{ "endpoints-dualstack-notready.json", "subsets[0].notReadyAddresses[0]", "\"10.0.0.1\"",
	  "subsets[0].notReadyAddresses[0]: not an object" },
	{ "endpoints-dualstack-notready.json", "subsets[1].ports[0].port", "70000",
	  "subsets[1].ports[0].port: 70000 is out of range" },
	{ "endpoints-dualstack-notready.json", "subsets[1].ports[0].protocol", "\"HTTP\"",
	  "subsets[1].ports[0].protocol: \"HTTP\" is not TCP, UDP or SCTP" },
	{ "endpoints-dualstack-notready.json", "subsets[1].addresses[0].nodeName", "\"a/b c\"",
	  "subsets[1].addresses[0].nodeName: \"a/b c\" is not a valid name" },
	{ "endpoints-dualstack-notready.json", "subsets[1]", "3", "subsets[1]: not an object" },
	{ "endpoints-dualstack-notready.json", "subsets", "{}", "subsets: not an array" },
	{ "endpoints-dualstack-notready.json", "subsets[0].addresses", "{}",
	  "subsets[0].addresses: not an array" },
	{ "endpoints-dualstack-notready.json", "metadata.name", NULL, "metadata.name: not set" },
};

static void test_endpoints_bad(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_endpoints); i++)
		check_bad(&bad_endpoints[i], decode_endpoints);
}

static void test_endpoints_edges(void **state)
{
	struct kube_endpoint_slice **v = (void *)1;
	char *list, *error = NULL;
	size_t n = 99;
	cJSON *j;

	/* no subsets (how an Endpoints without addresses is served) */
	j = load("endpoints-seed-external-service-1.json");
	set_at(j, "subsets", NULL);
	assert_int_equal(kube_endpoints_decode(j, &v, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	cJSON_Delete(j);

	/* a subset with ports only */
	j = load("endpoints-seed-external-service-1.json");
	set_at(j, "subsets[0].addresses", NULL);
	assert_int_equal(kube_endpoints_decode(j, &v, &n, NULL), 0);
	assert_int_equal(n, 0);
	cJSON_Delete(j);

	/* the address bound counts over all subsets */
	j = load("endpoints-seed-external-service-1.json");
	list = repeat_array("{\"ip\": \"10.0.0.1\"}", KUBE_MAX_ENDPOINTS - 1);
	set_at(j, "subsets[0].notReadyAddresses", list);
	assert_int_equal(kube_endpoints_decode(j, &v, &n, &error), -EINVAL);
	assert_string_equal(error, "subsets: more than 10000 addresses");
	free(error);
	set_at(j, "subsets[0].addresses", "[]");
	assert_int_equal(kube_endpoints_decode(j, &v, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0]->n_endpoints, KUBE_MAX_ENDPOINTS - 1);
	assert_false(v[0]->endpoints[0].ready);
	kube_endpoint_slices_free(v, n);
	free(list);
	cJSON_Delete(j);
}

/* ---- objects recorded from a real API server ----------------------------- */

static int decode_kind(const char *kind, const cJSON *obj, char **error)
{
	if (streq(kind, "Service"))
		return decode_service(obj, error);
	if (streq(kind, "EndpointSlice"))
		return decode_slice(obj, error);
	return decode_endpoints(obj, error);
}

/* Every Service, EndpointSlice and Endpoints object (or list of them)
 * recorded from the real 1.20 control plane in tests/data/k8s-1.20/
 * decodes. The recordings belong to the e2e environment: only their kinds
 * are relied on here, not their values. */
/* ---- ServiceCIDR --------------------------------------------------------- */

static void assert_cidr(const struct kube_cidr *c, const char *addr, unsigned prefix)
{
	char buf[INET6_ADDRSTRLEN];

	assert_string_equal(kube_ip_format(&c->addr, buf, sizeof(buf)), addr);
	assert_int_equal(c->prefix, prefix);
}

static void test_service_cidr(void **state)
{
	cJSON *j = load("servicecidr-v1-kubernetes.json");
	struct kube_service_cidr *s = NULL;
	char *error = NULL;

	assert_int_equal(kube_service_cidr_decode(j, &s, &error), 0);
	assert_null(error);
	assert_string_equal(s->name, "kubernetes");
	assert_int_equal(s->n_cidrs, 2);
	assert_cidr(&s->cidrs[0], "10.96.0.0", 16);
	assert_cidr(&s->cidrs[1], "fd00:10:96::", 112);
	kube_service_cidr_free(s);

	/* being deleted: still decoded, still counted */
	cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "deletionTimestamp",
				"2025-05-03T10:00:00Z");
	assert_int_equal(kube_service_cidr_decode(j, &s, &error), 0);
	assert_int_equal(s->n_cidrs, 2);
	assert_cidr(&s->cidrs[0], "10.96.0.0", 16);
	kube_service_cidr_free(s);
	cJSON_Delete(j);
}

static void expect_bad_cidr(const char *json, const char *message)
{
	cJSON *j = cJSON_Parse(json);
	struct kube_service_cidr *s = NULL;
	char *error = NULL;

	assert_non_null(j);
	assert_int_equal(kube_service_cidr_decode(j, &s, &error), -EINVAL);
	assert_null(s);
	assert_non_null(error);
	if (!strstr(error, message))
		fail_msg("%s: got \"%s\", expected \"%s\"", json, error, message);
	free(error);
	cJSON_Delete(j);
}

static void test_service_cidr_bad(void **state)
{
	expect_bad_cidr("[]", "not a JSON object");
	expect_bad_cidr("{\"spec\":{\"cidrs\":[\"10.0.0.0/8\"]}}", "metadata: not set");
	expect_bad_cidr("{\"metadata\":{\"name\":\"a\"}}", "spec: not set");
	expect_bad_cidr("{\"metadata\":{\"name\":\"a\"},\"spec\":{}}", "spec.cidrs: empty or not set");
	expect_bad_cidr("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"cidrs\":\"10.0.0.0/8\"}}",
			"spec.cidrs: not an array");
	expect_bad_cidr("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"cidrs\":[1]}}",
			"spec.cidrs[0]: not a string");
	expect_bad_cidr("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"cidrs\":[\"10.0.0.0/8\","
			"\"10.96.0.1/16\"]}}",
			"spec.cidrs[1]: \"10.96.0.1/16\" is not a network with its host bits zero");
	expect_bad_cidr("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"cidrs\":[\"a\",\"b\",\"c\",\"d\","
			"\"e\"]}}",
			"spec.cidrs: more than 4 entries");
	expect_bad_cidr("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"cidrs\":[\"0.0.0.0/0\"]}}",
			"is not a network");
}

static void test_cidr_parse(void **state)
{
	static const char *const bad[] = { "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1",
					   "10.0.0.0/08", "10.0.0.0/8x", "10.0.0.1/24",
					   "fd00::/129", "fd00::1/64", "/8", "x/8", "10.0.0.0/0" };
	struct kube_cidr c;

	assert_int_equal(kube_cidr_parse("10.96.0.0/12", &c, NULL), 0);
	assert_cidr(&c, "10.96.0.0", 12);
	assert_int_equal(kube_cidr_parse("10.96.0.1/32", &c, NULL), 0);
	assert_int_equal(kube_cidr_parse("fd00::/108", &c, NULL), 0);
	assert_cidr(&c, "fd00::", 108);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (kube_cidr_parse(bad[i], &c, NULL) != -EINVAL)
			fail_msg("%s accepted", bad[i]);
}

static struct kube_service_cidr *cidr_object(const char *a, const char *b)
{
	struct kube_service_cidr *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	assert_int_equal(kube_cidr_parse(a, &s->cidrs[s->n_cidrs++], NULL), 0);
	if (b)
		assert_int_equal(kube_cidr_parse(b, &s->cidrs[s->n_cidrs++], NULL), 0);
	return s;
}

static void test_service_cidrs_union(void **state)
{
	struct kube_service_cidr *v[4] = {
		cidr_object("fd00::/108", "10.96.0.0/16"),
		NULL,
		cidr_object("10.96.0.0/16", "10.100.0.0/16"),
		cidr_object("10.0.0.0/24", "fd00::/108"),
	};
	struct kube_cidr u[8];
	size_t n = 99;

	assert_int_equal(kube_service_cidrs_union(v, 0, u, ARRAY_SIZE(u), &n), 0);
	assert_int_equal(n, 0);
	/* distinct, IPv4 first, sorted */
	assert_int_equal(kube_service_cidrs_union(v, 4, u, ARRAY_SIZE(u), &n), 0);
	assert_int_equal(n, 4);
	assert_cidr(&u[0], "10.0.0.0", 24);
	assert_cidr(&u[1], "10.96.0.0", 16);
	assert_cidr(&u[2], "10.100.0.0", 16);
	assert_cidr(&u[3], "fd00::", 108);
	/* the order of the objects does not matter */
	assert_int_equal(kube_service_cidrs_union(&v[2], 2, u, ARRAY_SIZE(u), &n), 0);
	assert_int_equal(n, 4);
	assert_cidr(&u[0], "10.0.0.0", 24);
	assert_cidr(&u[3], "fd00::", 108);
	/* bounded: the smallest stay, -E2BIG says some are left out */
	assert_int_equal(kube_service_cidrs_union(v, 4, u, 2, &n), -E2BIG);
	assert_int_equal(n, 2);
	assert_cidr(&u[0], "10.0.0.0", 24);
	assert_cidr(&u[1], "10.96.0.0", 16);
	assert_int_equal(kube_service_cidrs_union(v, 4, u, 0, &n), -E2BIG);
	assert_int_equal(n, 0);
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		kube_service_cidr_free(v[i]);
}

static void test_recorded_objects(void **state)
{
	static const char *const kinds[] = { "Service", "EndpointSlice", "Endpoints" };
	char dir[512], name[600], kind[32];
	const cJSON *items, *item;
	size_t i, decoded = 0;
	struct dirent *de;
	char *error;
	cJSON *j;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/k8s-1.20", data_dir());
	d = opendir(dir);
	if (!d) {
		print_message("no recordings in %s, nothing to check\n", dir);
		return;
	}
	while ((de = readdir(d))) {
		const char *k;

		if (!strstr(de->d_name, ".json") || strstr(de->d_name, ".jsonl"))
			continue;
		snprintf(name, sizeof(name), "../k8s-1.20/%s", de->d_name);
		j = load(name);
		k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "kind"));
		for (i = 0; k && i < ARRAY_SIZE(kinds); i++) {
			snprintf(kind, sizeof(kind), "%sList", kinds[i]);
			if (streq(k, kind))
				items = cJSON_GetObjectItemCaseSensitive(j, "items");
			else if (streq(k, kinds[i]))
				items = NULL;
			else
				continue;
			/* a list's items, or the object itself */
			for (item = items ? items->child : j; item; item = items ? item->next : NULL) {
				error = NULL;
				if (decode_kind(kinds[i], item, &error) < 0)
					fail_msg("%s: %s %s: %s", de->d_name, kinds[i],
						 kube_meta_string(item, "name"), error);
				decoded++;
			}
		}
		cJSON_Delete(j);
	}
	closedir(d);
	print_message("%zu recorded objects decoded\n", decoded);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ip),
		cmocka_unit_test(test_protocol),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_service_seed),
		cmocka_unit_test(test_service_dualstack_named_ports),
		cmocka_unit_test(test_service_headless),
		cmocka_unit_test(test_service_external_name),
		cmocka_unit_test(test_service_load_balancer),
		cmocka_unit_test(test_service_variants),
		cmocka_unit_test(test_service_bad),
		cmocka_unit_test(test_service_bad_bounds),
		cmocka_unit_test(test_not_objects),
		cmocka_unit_test(test_meta_string),
		cmocka_unit_test(test_slice_v1),
		cmocka_unit_test(test_slice_v1_ipv6),
		cmocka_unit_test(test_slice_v1beta1),
		cmocka_unit_test(test_slice_v1beta1_mirrored_seed),
		cmocka_unit_test(test_slice_fqdn_and_empty),
		cmocka_unit_test(test_slice_variants),
		cmocka_unit_test(test_slice_bad),
		cmocka_unit_test(test_slice_bad_bounds),
		cmocka_unit_test(test_endpoints_seed),
		cmocka_unit_test(test_endpoints_dualstack),
		cmocka_unit_test(test_endpoints_bad),
		cmocka_unit_test(test_endpoints_edges),
		cmocka_unit_test(test_service_cidr),
		cmocka_unit_test(test_service_cidr_bad),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_service_cidrs_union),
		cmocka_unit_test(test_recorded_objects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
