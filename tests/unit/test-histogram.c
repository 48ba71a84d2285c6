/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lib/histogram.h"

static void test_buckets_and_quantiles(void **state)
{
	struct histogram h = { 0 };

	assert_int_equal(histogram_quantile(&h, 0.99), 0);
	for (int i = 0; i < 98; i++)
		histogram_add(&h, 80); /* <= 100 us */
	histogram_add(&h, 3000);       /* <= 5 ms */
	histogram_add(&h, 120000000);  /* above every bound */
	assert_int_equal(h.count, 100);
	assert_int_equal(h.sum_usec, 98 * 80 + 3000 + 120000000ULL);
	assert_int_equal(histogram_quantile(&h, 0.5), 100);
	assert_int_equal(histogram_quantile(&h, 0.99), 5000);
	assert_true(histogram_quantile(&h, 1.0) == UINT64_MAX);
	assert_int_equal(histogram_cumulative(&h, 0), 98);
	assert_int_equal(histogram_cumulative(&h, 5), 99);
	assert_int_equal(histogram_cumulative(&h, HISTOGRAM_BUCKETS - 1), 99);
	assert_int_equal(histogram_cumulative(&h, HISTOGRAM_BUCKETS), 100);
}

static void test_bounds_increase(void **state)
{
	for (size_t i = 1; i < HISTOGRAM_BUCKETS; i++)
		assert_true(histogram_bound(i) > histogram_bound(i - 1));
	/* an observation exactly on a bound belongs to that bucket */
	struct histogram h = { 0 };
	histogram_add(&h, histogram_bound(3));
	assert_int_equal(histogram_cumulative(&h, 3), 1);
	assert_int_equal(histogram_cumulative(&h, 2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets_and_quantiles),
		cmocka_unit_test(test_bounds_increase),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
