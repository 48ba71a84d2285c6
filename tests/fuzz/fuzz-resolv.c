/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for resolv/'s parsers: resolv.conf (parse, render,
 * parse the rendering again), nsswitch.conf, NetworkManager's header, the
 * dnsmasq.d file for a domain from the input, and the fail-fast responder's
 * REFUSED answer to whatever arrives as a DNS query.
 */
#include "../../lib/log.c"
#include "../../kube/ip.c"
#include "../../resolv/conf.c"
#include "../../resolv/refused.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_conf(const char *text, size_t size)
{
	struct resolv_conf *c = NULL, *again = NULL;
	struct kube_ip servers[2];
	char *error = NULL, *out = NULL;
	int r;

	r = resolv_conf_parse(text, size, &c, &error);
	assert((r == 0) == (c != NULL));
	assert(r == 0 || r == -EINVAL || r == -EFBIG || r == -E2BIG || r == -ENOMEM);
	free(error);
	(void)resolv_conf_is_ours(text, size);
	(void)resolv_conf_by_networkmanager(text, size);
	(void)resolv_nsswitch_resolve_first(text, size);
	if (!c)
		return;
	assert(!c->ours || resolv_conf_is_ours(text, size));
	(void)resolv_conf_only_stub(c);
	(void)resolv_conf_only_nameserver(c, "127.0.0.1");
	assert(kube_ip_parse("10.96.0.10", &servers[0]) == 0);
	assert(kube_ip_parse("fd00:96::a", &servers[1]) == 0);
	r = resolv_conf_render(c, servers, 2, "cluster.local", "/etc/resolv.conf.pre-kube-annex",
			       &out);
	assert(r == 0 || r == -ENOMEM);
	if (r == 0) {
		/* What we write parses back, as ours, with the cluster DNS first
		 * (unless the input's own lines push it over the bounds). */
		r = resolv_conf_parse(out, strlen(out), &again, NULL);
		assert(r == 0 || r == -E2BIG || r == -EFBIG);
		if (r == 0) {
			assert(again->ours && resolv_conf_is_ours(out, strlen(out)));
			assert(again->n_nameservers >= 2);
			assert(streq(again->nameservers[0], "10.96.0.10"));
			assert(streq(again->nameservers[1], "fd00:96::a"));
		}
		resolv_conf_free(again);
		free(out);
	}
	resolv_conf_free(c);
}

static void check_refused(const uint8_t *data, size_t size)
{
	uint8_t reply[600];
	size_t len = 0;
	int r = resolv_refused_reply(data, size, reply, sizeof(reply), &len);

	if (r < 0) {
		assert(r == -EINVAL || r == -ENOBUFS);
		return;
	}
	assert(len >= 12 && len <= size + 11 && len <= sizeof(reply));
	assert(reply[0] == data[0] && reply[1] == data[1]);
	assert((reply[2] & 0x80) && (reply[3] & 0x0f) == 5);
}

/* The input's first line as the cluster domain: what passes the check
 * gives one server line per server and nothing else. */
static void check_nm_dnsmasq(const char *text, size_t size)
{
	const char *nl = memchr(text, '\n', size);
	char domain[300], *out = NULL, line[700];
	const char *domains[] = { domain };
	struct kube_ip servers[2];
	size_t len = nl ? (size_t)(nl - text) : size;
	int r;

	if (len >= sizeof(domain) || memchr(text, 0, len))
		return;
	memcpy(domain, text, len);
	domain[len] = 0;
	assert(kube_ip_parse("10.96.0.10", &servers[0]) == 0);
	assert(kube_ip_parse("fd00:96::a", &servers[1]) == 0);
	r = resolv_nm_render_dnsmasq(servers, 2, domains, 1, &out);
	assert(r == -EINVAL || r == -ENOMEM || r == 0);
	assert((r == -EINVAL) == (resolv_domain_check(domain) < 0));
	if (r < 0)
		return;
	assert(resolv_conf_is_ours(out, strlen(out)));
	snprintf(line, sizeof(line), "\nserver=/%s/10.96.0.10\nserver=/%s/fd00:96::a\n", domain,
		 domain);
	assert(strstr(out, line) && strlen(strstr(out, line)) == strlen(line));
	free(out);
}

/* The input's first line as a Service CIDR: every zone is a valid domain. */
static void check_reverse_zones(const char *text, size_t size)
{
	const char *nl = memchr(text, '\n', size);
	size_t len = nl ? (size_t)(nl - text) : size, n = 0;
	char cidr[128], **zones = NULL;
	int r;

	if (len >= sizeof(cidr) || memchr(text, 0, len))
		return;
	memcpy(cidr, text, len);
	cidr[len] = 0;
	r = resolv_reverse_zones(cidr, &zones, &n);
	assert(r == 0 || r == -EINVAL || r == -E2BIG || r == -ENOMEM);
	assert(r < 0 || (n >= 1 && n <= RESOLV_MAX_REVERSE_ZONES));
	for (size_t i = 0; i < n; i++) {
		assert(resolv_domain_check(zones[i]) == 0);
		assert(strstr(zones[i], ".in-addr.arpa") || strstr(zones[i], ".ip6.arpa") ||
		       streq(zones[i], "in-addr.arpa"));
		free(zones[i]);
	}
	free(zones);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_conf((const char *)data, size);
	check_nm_dnsmasq((const char *)data, size);
	check_reverse_zones((const char *)data, size);
	check_refused(data, size);
	return 0;
}
