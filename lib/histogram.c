/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "histogram.h"

/* Roughly x2.5 steps, the shape of kube-proxy's programming-latency buckets
 * but starting where a local nftables commit actually lands. */
static const uint64_t bounds[HISTOGRAM_BUCKETS] = {
	100,       250,       500,        1000,       2500,     5000,     10000,
	25000,     50000,     100000,     250000,     500000,   1000000,  2500000,
	5000000,   10000000,  15000000,   20000000,   30000000, 60000000,
};

uint64_t histogram_bound(size_t i)
{
	return i < HISTOGRAM_BUCKETS ? bounds[i] : UINT64_MAX;
}

void histogram_add(struct histogram *h, uint64_t usec)
{
	size_t i = 0;

	while (i < HISTOGRAM_BUCKETS && usec > bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum_usec += usec;
}

uint64_t histogram_cumulative(const struct histogram *h, size_t i)
{
	uint64_t n = 0;

	for (size_t j = 0; j <= i && j <= HISTOGRAM_BUCKETS; j++)
		n += h->counts[j];
	return n;
}

uint64_t histogram_quantile(const struct histogram *h, double q)
{
	uint64_t rank, n = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)(q * (double)h->count + 0.5);
	if (rank == 0)
		rank = 1;
	for (size_t i = 0; i <= HISTOGRAM_BUCKETS; i++) {
		n += h->counts[i];
		if (n >= rank)
			return histogram_bound(i);
	}
	return UINT64_MAX;
}
