/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for the API object decoders. The input is one JSON
 * object, fed to all four decoders; whatever they accept must hold the
 * promises of kube.h (bounds, parsed addresses, names never NULL).
 *
 * The sources are included so that the whole decoder is one instrumented
 * translation unit, wireguard-tools style.
 */
#include "../../lib/log.c"
#include "../../kube/ip.c"
#include "../../kube/decode.c"
#include "../../kube/decode-service.c"
#include "../../kube/decode-endpoints.c"
#include "../../kube/decode-servicecidr.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFT_UNION_MAX 3 /* fewer than KUBE_MAX_CIDRS: the bound is exercised too */

static void check_ip(const struct kube_ip *ip)
{
	assert(ip->family == AF_INET || ip->family == AF_INET6);
}

static void check_service(const struct kube_service *s)
{
	size_t i;

	assert(s->namespace && s->name);
	assert(strlen(s->name) <= KUBE_MAX_NAME_LEN);
	assert(s->n_cluster_ips <= KUBE_MAX_IPS && s->n_external_ips <= KUBE_MAX_IPS &&
	       s->n_lb_ips <= KUBE_MAX_IPS && s->n_ports <= KUBE_MAX_PORTS);
	for (i = 0; i < s->n_cluster_ips; i++)
		check_ip(&s->cluster_ips[i]);
	for (i = 0; i < s->n_lb_ips; i++)
		check_ip(&s->lb_ips[i]);
	for (i = 0; i < s->n_ports; i++) {
		assert(s->ports[i].name);
		assert(s->ports[i].port > 0);
		assert(kube_protocol_parse(NULL) == IPPROTO_TCP);
	}
	assert(!s->affinity_client_ip || s->affinity_timeout_sec > 0);
}

static void check_slice(const struct kube_endpoint_slice *s)
{
	size_t i;

	assert(s->namespace && s->name);
	assert(s->n_ports <= KUBE_MAX_PORTS && s->n_endpoints <= KUBE_MAX_ENDPOINTS);
	for (i = 0; i < s->n_ports; i++)
		assert(s->ports[i].name);
	for (i = 0; i < s->n_endpoints; i++) {
		assert(s->endpoints[i].addr.family == s->family);
		assert(s->endpoints[i].n_hint_zones <= KUBE_MAX_HINTS);
		assert(s->endpoints[i].has_hints == (s->endpoints[i].n_hint_zones > 0));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_endpoint_slice *slice = NULL, **v = NULL;
	struct kube_service *svc = NULL;
	struct kube_service_cidr *cidr = NULL;
	char *error = NULL;
	size_t n = 0, i;
	cJSON *j;

	j = cJSON_ParseWithLength((const char *)data, size);
	if (!j)
		return 0;

	if (kube_service_decode(j, &svc, &error) >= 0) {
		assert(!error);
		check_service(svc);
		kube_service_free(svc);
	} else {
		assert(error);
		free(error);
	}
	if (kube_endpoint_slice_decode(j, &slice, NULL) >= 0) {
		check_slice(slice);
		kube_endpoint_slice_free(slice);
	}
	if (kube_endpoints_decode(j, &v, &n, &error) >= 0) {
		assert(!error && (n == 0) == !v);
		for (i = 0; i < n; i++)
			check_slice(v[i]);
		kube_endpoint_slices_free(v, n);
	} else {
		assert(error);
		free(error);
	}
	if (kube_service_cidr_decode(j, &cidr, &error) >= 0) {
		struct kube_cidr u[NFT_UNION_MAX];

		assert(!error && cidr->name && cidr->n_cidrs >= 1 && cidr->n_cidrs <= KUBE_MAX_CIDRS);
		for (i = 0; i < cidr->n_cidrs; i++) {
			check_ip(&cidr->cidrs[i].addr);
			assert(cidr->cidrs[i].prefix >= 1 &&
			       cidr->cidrs[i].prefix <= (cidr->cidrs[i].addr.family == AF_INET ? 32u : 128u));
		}
		(void)kube_service_cidrs_union(&cidr, 1, u, NFT_UNION_MAX, &n);
		assert(n <= NFT_UNION_MAX && n <= cidr->n_cidrs);
		kube_service_cidr_free(cidr);
	} else {
		assert(error);
		free(error);
	}
	(void)kube_meta_string(j, "resourceVersion");
	cJSON_Delete(j);
	return 0;
}
