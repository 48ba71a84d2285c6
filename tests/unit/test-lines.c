/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for kube_lines_*: framing of newline-delimited watch streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kube/kube.h"
#include "lib/util.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

struct collected {
	char *all;   /* lines joined with '|' */
	size_t len;
	size_t n;
	int fail_at; /* return -EIO for this line (1-based), 0: never */
};

static int collect(const char *line, size_t len, void *userdata)
{
	struct collected *c = userdata;

	/* Lines are NUL-terminated and never contain the terminator. */
	assert_int_equal(line[len], '\0');
	assert_int_equal(strlen(line), len);
	assert_null(memchr(line, '\n', len));
	assert_true(len > 0);
	if (len > 0)
		assert_true(line[len - 1] != '\r');
	c->n++;
	if ((int)c->n == c->fail_at)
		return -EIO;
	c->all = realloc(c->all, c->len + len + 2);
	assert_non_null(c->all);
	if (c->len)
		c->all[c->len++] = '|';
	memcpy(c->all + c->len, line, len);
	c->len += len;
	c->all[c->len] = '\0';
	return 0;
}

static void collected_reset(struct collected *c)
{
	free(c->all);
	*c = (struct collected){};
}

static const char stream[] = "{\"type\":\"ADDED\"}\n"
			     "\n"
			     "{\"type\":\"MODIFIED\",\"object\":{}}\r\n"
			     "\r\n"
			     "x\n"
			     "{\"type\":\"BOOKMARK\"}\n"
			     "tail-without-newline";
static const char expected[] =
	"{\"type\":\"ADDED\"}|{\"type\":\"MODIFIED\",\"object\":{}}|x|{\"type\":\"BOOKMARK\"}";

/* Every way of cutting the stream in three pieces gives the same lines. */
static void test_every_split(void **state)
{
	size_t n = sizeof(stream) - 1, i, j;
	struct collected c = {};
	struct kube_lines l;

	for (i = 0; i <= n; i++) {
		for (j = i; j <= n; j++) {
			kube_lines_init(&l, 64);
			assert_int_equal(kube_lines_feed(&l, stream, i, collect, &c), 0);
			assert_int_equal(kube_lines_feed(&l, stream + i, j - i, collect, &c), 0);
			assert_int_equal(kube_lines_feed(&l, stream + j, n - j, collect, &c), 0);
			if (!c.all || !streq(c.all, expected))
				fail_msg("split at %zu,%zu: got \"%s\"", i, j, c.all);
			/* the unterminated tail is held back */
			assert_int_equal(l.len, strlen("tail-without-newline"));
			collected_reset(&c);
			kube_lines_reset(&l);
		}
	}
}

static void test_byte_by_byte(void **state)
{
	size_t n = sizeof(stream) - 1, i;
	struct collected c = {};
	struct kube_lines l;

	kube_lines_init(&l, 64);
	for (i = 0; i < n; i++)
		assert_int_equal(kube_lines_feed(&l, stream + i, 1, collect, &c), 0);
	assert_string_equal(c.all, expected);
	assert_int_equal(c.n, 4);
	/* finishing the tail delivers it */
	assert_int_equal(kube_lines_feed(&l, "\n", 1, collect, &c), 0);
	assert_int_equal(c.n, 5);
	assert_int_equal(l.len, 0);
	collected_reset(&c);
	kube_lines_reset(&l);
}

static void test_many_lines_per_read(void **state)
{
	struct collected c = {};
	struct kube_lines l;
	char *buf, *p;
	size_t i;

	buf = malloc(10000 * 8);
	assert_non_null(buf);
	for (i = 0, p = buf; i < 10000; i++)
		p += sprintf(p, "%05zu\n", i);
	kube_lines_init(&l, 16);
	assert_int_equal(kube_lines_feed(&l, buf, (size_t)(p - buf), collect, &c), 0);
	assert_int_equal(c.n, 10000);
	assert_int_equal(strncmp(c.all, "00000|00001|", 12), 0);
	assert_string_equal(c.all + c.len - 5, "09999");
	/* the buffer holds one line at most, never the whole read */
	assert_true(l.cap <= 4096);
	free(buf);
	collected_reset(&c);
	kube_lines_reset(&l);
}

static void test_max(void **state)
{
	struct collected c = {};
	struct kube_lines l;

	/* exactly max is fine, with "\n" or "\r\n" */
	kube_lines_init(&l, 4);
	assert_int_equal(kube_lines_feed(&l, "abcd\nefgh\r\n", 11, collect, &c), 0);
	assert_string_equal(c.all, "abcd|efgh");
	collected_reset(&c);

	/* one more, in one read: the line before it still arrives */
	assert_int_equal(kube_lines_feed(&l, "ok\nabcde\nlater\n", 15, collect, &c), -EMSGSIZE);
	assert_string_equal(c.all, "ok");
	assert_int_equal(c.n, 1);
	/* the framer resets itself; a reset by the caller is harmless */
	assert_int_equal(l.len, 0);
	kube_lines_reset(&l);
	collected_reset(&c);

	/* too long across reads, no newline yet: detected early */
	assert_int_equal(kube_lines_feed(&l, "abc", 3, collect, &c), 0);
	assert_int_equal(kube_lines_feed(&l, "de", 2, collect, &c), -EMSGSIZE);
	assert_int_equal(c.n, 0);
	kube_lines_reset(&l);

	/* a trailing '\r' may still be the terminator... */
	assert_int_equal(kube_lines_feed(&l, "abcd\r", 5, collect, &c), 0);
	assert_int_equal(kube_lines_feed(&l, "\n", 1, collect, &c), 0);
	assert_string_equal(c.all, "abcd");
	collected_reset(&c);
	/* ...or not */
	assert_int_equal(kube_lines_feed(&l, "abcd\r", 5, collect, &c), 0);
	assert_int_equal(kube_lines_feed(&l, "x", 1, collect, &c), -EMSGSIZE);
	kube_lines_reset(&l);
	assert_int_equal(kube_lines_feed(&l, "abcd\r\r\n", 7, collect, &c), -EMSGSIZE);
	kube_lines_reset(&l);

	/* usable again after reset */
	assert_int_equal(kube_lines_feed(&l, "fine\n", 5, collect, &c), 0);
	assert_string_equal(c.all, "fine");
	collected_reset(&c);
	kube_lines_reset(&l);
}

static void test_callback_error(void **state)
{
	struct collected c = { .fail_at = 2 };
	struct kube_lines l;

	kube_lines_init(&l, 64);
	assert_int_equal(kube_lines_feed(&l, "a\nb\nc\npartial", 13, collect, &c), -EIO);
	assert_string_equal(c.all, "a");
	assert_int_equal(c.n, 2);
	/* the rest of that read is dropped: the stream is out of step */
	assert_int_equal(l.len, 0);
	c.fail_at = 0;
	assert_int_equal(kube_lines_feed(&l, "d\n", 2, collect, &c), 0);
	assert_string_equal(c.all, "a|d");
	collected_reset(&c);
	kube_lines_reset(&l);
}

static void test_empty_and_blank(void **state)
{
	struct collected c = {};
	struct kube_lines l;

	kube_lines_init(&l, 8);
	assert_int_equal(kube_lines_feed(&l, "", 0, collect, &c), 0);
	assert_int_equal(kube_lines_feed(&l, NULL, 0, collect, &c), 0);
	assert_int_equal(kube_lines_feed(&l, "\n\n\r\n\n", 5, collect, &c), 0);
	assert_int_equal(c.n, 0);
	/* a lone '\r' in the middle of a line is data */
	assert_int_equal(kube_lines_feed(&l, "a\rb\n", 4, collect, &c), 0);
	assert_string_equal(c.all, "a\rb");
	collected_reset(&c);
	kube_lines_reset(&l);
	kube_lines_reset(&l);
}

/* A 4 MiB line in 1000-byte reads, then one in 3-byte reads: linear time
 * (a rescan per read would take minutes here), and the big buffer is let
 * go once the line is consumed. */
static void test_large_line_small_reads(void **state)
{
	const size_t big = 4u << 20;
	struct collected c = {};
	struct kube_lines l;
	size_t i, step;
	char *buf;

	buf = malloc(big + 1);
	assert_non_null(buf);
	memset(buf, 'x', big);
	buf[0] = '{';
	buf[big - 1] = '}';
	buf[big] = '\n';
	kube_lines_init(&l, KUBE_MAX_EVENT_SIZE);
	for (step = 1000; step >= 3; step = step == 1000 ? 3 : 0) {
		for (i = 0; i < big + 1; i += step)
			assert_int_equal(kube_lines_feed(&l, buf + i, MIN(step, big + 1 - i), collect,
							 &c), 0);
		assert_int_equal(c.len, big);
		assert_int_equal(memcmp(c.all, buf, big), 0);
		assert_int_equal(l.len, 0);
		assert_int_equal(l.cap, 0);
		collected_reset(&c);
	}
	free(buf);
	kube_lines_reset(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_many_lines_per_read),
		cmocka_unit_test(test_max),
		cmocka_unit_test(test_callback_error),
		cmocka_unit_test(test_empty_and_blank),
		cmocka_unit_test(test_large_line_small_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
