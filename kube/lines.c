/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Framing of newline-delimited watch streams.
 *
 * Invariant between calls: buf holds the start of one incomplete line and no
 * '\n'. New data is therefore searched once, with memchr, and never again:
 * a multi-megabyte line arriving in small reads costs O(size) in total.
 * Every line is copied into buf so that fn always gets a NUL-terminated
 * string; buf never holds more than one line, so it stays within max.
 */
#include "kube/kube.h"
#include "lib/util.h"

/* Buffers larger than this are released once their line is consumed. */
#define KUBE_LINES_KEEP (1u << 20)

void kube_lines_init(struct kube_lines *l, size_t max)
{
	*l = (struct kube_lines){ .max = max };
}

void kube_lines_reset(struct kube_lines *l)
{
	free(l->buf);
	l->buf = NULL;
	l->len = 0;
	l->cap = 0;
}

/* The longest partial line worth keeping: max, plus a '\r' that may turn out
 * to be part of the terminator. */
static size_t lines_limit(const struct kube_lines *l)
{
	return l->max == SIZE_MAX ? SIZE_MAX : l->max + 1;
}

static int lines_append(struct kube_lines *l, const char *data, size_t len)
{
	size_t want, cap;
	char *p;

	if (len > lines_limit(l) - l->len)
		return -EMSGSIZE;
	want = l->len + len + 1; /* + NUL */
	if (want > l->cap) {
		cap = l->cap ? l->cap : 4096;
		while (cap < want)
			cap = cap > SIZE_MAX / 2 ? want : cap * 2;
		p = realloc(l->buf, cap);
		if (!p)
			return -ENOMEM;
		l->buf = p;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, data, len);
	l->len += len;
	l->buf[l->len] = '\0';
	/* Only a '\r' may still be cut off: fail as soon as it cannot be. */
	if (l->len > l->max && l->buf[l->len - 1] != '\r')
		return -EMSGSIZE;
	return 0;
}

/* buf holds one complete line without its '\n': hand it out, then empty
 * buf. */
static int lines_emit(struct kube_lines *l, kube_line_fn fn, void *userdata)
{
	size_t len = l->len;
	int r = 0;

	if (len > 0 && l->buf[len - 1] == '\r')
		l->buf[--len] = '\0';
	if (len > l->max)
		return -EMSGSIZE;
	if (len > 0)
		r = fn(l->buf, len, userdata);
	l->len = 0;
	if (l->cap > KUBE_LINES_KEEP)
		kube_lines_reset(l);
	return r < 0 ? r : 0;
}

int kube_lines_feed(struct kube_lines *l, const char *data, size_t len, kube_line_fn fn,
		    void *userdata)
{
	const char *nl;
	size_t n;
	int r;

	while (len > 0) {
		nl = memchr(data, '\n', len);
		n = nl ? (size_t)(nl - data) : len;
		r = lines_append(l, data, n);
		if (r >= 0 && nl)
			r = lines_emit(l, fn, userdata);
		if (r < 0) {
			/* The stream is out of step: drop what is left. */
			kube_lines_reset(l);
			return r;
		}
		if (!nl)
			break;
		data = nl + 1;
		len -= n + 1;
	}
	return 0;
}
