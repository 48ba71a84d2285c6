/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A fixed-bucket latency histogram (microseconds), cumulative like a
 * Prometheus histogram: bucket i counts observations <= bounds[i].
 * Pure, no allocation; the bounds span 100 us .. 60 s.
 */

#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_BUCKETS 20

struct histogram {
	uint64_t counts[HISTOGRAM_BUCKETS + 1]; /* last: above every bound (+Inf) */
	uint64_t count;
	uint64_t sum_usec;
};

/* Upper bound of bucket i in microseconds (i < HISTOGRAM_BUCKETS). */
uint64_t histogram_bound(size_t i);
void histogram_add(struct histogram *h, uint64_t usec);
/* Observations <= histogram_bound(i) (cumulative). */
uint64_t histogram_cumulative(const struct histogram *h, size_t i);
/* Upper bound of the bucket holding quantile q (0..1); UINT64_MAX when it
 * is above every bound, 0 when empty. */
uint64_t histogram_quantile(const struct histogram *h, double q);
