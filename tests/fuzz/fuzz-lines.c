/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for watch-stream framing, checked against a plain
 * reference splitter. Input: byte 0 = max line length, byte 1 = seed for
 * the read sizes, byte 2 = line at which the callback fails (0: never),
 * then the stream.
 */
#include "../../lib/log.c"
#include "../../kube/lines.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
	char *buf;
	size_t len;
	size_t n;
	size_t fail_at;
};

static void out_add(struct out *o, const char *line, size_t len)
{
	o->buf = realloc(o->buf, o->len + len + 1);
	assert(o->buf);
	memcpy(o->buf + o->len, line, len);
	o->len += len;
	o->buf[o->len++] = '\n';
}

static int collect(const char *line, size_t len, void *userdata)
{
	struct out *o = userdata;

	assert(len > 0 && line[len] == '\0' && !memchr(line, '\n', len));
	if (++o->n == o->fail_at)
		return -EIO;
	out_add(o, line, len);
	return 0;
}

/* The expected lines and the expected return value. */
static int reference(const char *p, size_t size, size_t max, struct out *o)
{
	const char *nl;
	size_t len, raw;

	for (;;) {
		nl = memchr(p, '\n', size);
		raw = nl ? (size_t)(nl - p) : size;
		len = raw > 0 && p[raw - 1] == '\r' ? raw - 1 : raw;
		if (len > max)
			return -EMSGSIZE;
		if (!nl)
			return 0;
		if (len > 0 && ++o->n == o->fail_at)
			return -EIO;
		if (len > 0)
			out_add(o, p, len);
		size -= raw + 1;
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out got = {}, want = {};
	struct kube_lines l;
	uint32_t seed;
	size_t max, step, i;
	int r = 0, r_want;

	if (size < 3)
		return 0;
	max = data[0];
	seed = data[1] | 1u;
	got.fail_at = want.fail_at = data[2];
	data += 3;
	size -= 3;

	kube_lines_init(&l, max);
	for (i = 0; i < size && r >= 0; i += step) {
		seed = seed * 1103515245u + 12345u;
		step = 1 + (seed >> 16) % 37;
		if (step > size - i)
			step = size - i;
		r = kube_lines_feed(&l, (const char *)data + i, step, collect, &got);
		assert(l.len <= max + 1 && l.cap <= max + 2 + 4096);
	}
	r_want = reference((const char *)data, size, max, &want);
	assert(r == r_want);
	assert(got.len == want.len && (got.len == 0 || memcmp(got.buf, want.buf, got.len) == 0));
	free(got.buf);
	free(want.buf);
	kube_lines_reset(&l);
	return 0;
}
