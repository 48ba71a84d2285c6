/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for the configuration file parser. resolv/'s and
 * nft/'s option checks are stubbed (they have their own tests); the stubs
 * fail values with a '!' the way resolv/ words its errors.
 */
#include "../../lib/log.c"
#include "../../agent/config.c"
#include "../../kube/scope.c"
#include "../../kube/ip.c"
#include "../../kube/decode.c" /* kube_quote() */

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int resolv_options_check(const struct resolv_options *o, char **ret_error)
{
	const char *v = o->mode ?: o->cluster_domain ?: o->service ?: o->addresses ?:
			o->link_addresses;

	*ret_error = NULL;
	if (v && strchr(v, '!')) {
		*ret_error = strdup_printf("--dns=%s: rejected", v);
		return -EINVAL;
	}
	return 0;
}

int nft_service_cidrs_parse(const char *list, struct kube_cidr *ret, size_t *ret_n,
			    char **ret_error)
{
	(void)ret;
	*ret_n = 0;
	*ret_error = NULL;
	if (strchr(list, '!')) {
		*ret_error = strdup_printf("'%s': rejected", list);
		return -EINVAL;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = config_new(), *d = config_new();
	char *error = NULL, *diff;
	int r;

	assert(c && d);
	r = config_parse(c, "/fuzz/config.yaml", (const char *)data, size, &error);
	if (r >= 0) {
		assert(!error);
		assert(c->min_sync_interval_usec <= CONFIG_MAX_MIN_SYNC_INTERVAL_MS * USEC_PER_MSEC);
		assert(!c->kubeconfig || c->kubeconfig[0] == '/');
		assert(!c->zone || (*c->zone && strlen(c->zone) <= 253));
		diff = config_diff(c, d);
		free(diff);
	} else {
		assert(error && strncmp(error, "/fuzz/config.yaml", 17) == 0);
		free(error);
	}
	config_free(c);
	config_free(d);
	return 0;
}
