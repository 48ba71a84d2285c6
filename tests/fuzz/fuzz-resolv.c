/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for resolv/'s parsers: resolv.conf (parse, render,
 * parse the rendering again), nsswitch.conf, and the fail-fast responder's
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
	(void)resolv_nsswitch_resolve_first(text, size);
	if (!c)
		return;
	assert(!c->ours || resolv_conf_is_ours(text, size));
	(void)resolv_conf_only_stub(c);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_conf((const char *)data, size);
	check_refused(data, size);
	return 0;
}
