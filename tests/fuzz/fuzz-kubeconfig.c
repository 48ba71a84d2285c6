/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for kubeconfig parsing (the part after reading the
 * file) and for the base64 decoder of "-data" fields.
 */
#include "../../lib/log.c"
#include "../../kube/ip.c"
#include "../../kube/decode.c" /* kube_quote() */
#include "../../kube/kubeconfig.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *base64_encode(const uint8_t *p, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t groups = (n + 2) / 3;
	char *out = malloc(groups * 4 + groups / 19 + 1), *o = out;
	size_t i;
	uint32_t v;

	assert(out);
	for (i = 0; i < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
		    (i + 2 < n ? p[i + 2] : 0);
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
		*o++ = i + 1 < n ? a[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? a[v & 63] : '=';
		if ((i / 3) % 19 == 18)
			*o++ = '\n'; /* wrapped, as base64(1) does at 76 */
	}
	*o = '\0';
	return out;
}

/* decode(encode(x)) == x, and the decoder survives x itself. */
static void check_base64(const uint8_t *data, size_t size)
{
	char *text, *out = NULL;
	size_t len;

	text = base64_encode(data, size);
	assert(base64_decode(text, &out, &len) == 0);
	assert(len == size && memcmp(out, data, size) == 0 && out[len] == '\0');
	free(out);
	free(text);

	text = strndup((const char *)data, size);
	assert(text);
	if (base64_decode(text, &out, &len) == 0) {
		assert(len <= strlen(text) / 4 * 3);
		free(out);
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_config *c = NULL;
	char *error = NULL;
	int r;

	if (size > KUBECONFIG_MAX_SIZE)
		return 0;
	check_base64(data, size);

	r = kube_config_parse("/fuzz/kubeconfig", (const char *)data, size, NULL, &c, &error);
	if (r >= 0) {
		assert(!error && c->server && c->context && c->cluster && c->user);
		assert(!c->ca_file || c->ca_file[0] == '/');
		assert(!c->token_file || c->token_file[0] == '/');
		assert(c->cert_file || c->cert_data || c->token || c->token_file || c->username);
		kube_config_free(c);
	} else {
		assert(error && strncmp(error, "/fuzz/kubeconfig: ", 18) == 0);
		free(error);
	}
	r = kube_config_parse("rel/kubeconfig", (const char *)data, size, "c", &c, NULL);
	if (r >= 0)
		kube_config_free(c);
	return 0;
}
