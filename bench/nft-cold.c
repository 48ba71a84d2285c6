/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench/nft-cold: kube-annex's datapath module alone, model already in
 * memory. Fills model_entry values for SERVICES Services x ENDPOINTS
 * endpoints (the same Services bench/gen-kube-proxy-ruleset.py writes) and
 * times nft_stage() + nft_commit() until the kernel has committed them, in
 * a private network namespace of its own (never the caller's).
 *
 *   nft-cold SERVICES ENDPOINTS [REPS] [CHANGES] [DUMP_FILE]
 *
 * Measures, each on a fresh namespace for the cold load:
 *   cold     first commit of everything (creates the tables), REPS times;
 *   change   one endpoint of one Service replaced, stage + commit, CHANGES
 *            times (different Services), with everything programmed;
 *   restart  a new nft handle (what a restarted kube-annex has) with the
 *            full table already in the kernel: its first commit (which
 *            adopts an identical table), then, after nft_reset(), a
 *            commit that replaces the full table in one transaction.
 * Prints "key value" lines for bench/run.sh. DUMP_FILE: write
 * `nft list table ip kube-annex` there at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/util.h"
#include "model/model.h"
#include "nft/nft.h"

struct cpu_mark {
	uint64_t wall, user, sys;
};

static uint64_t tv_usec(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * USEC_PER_SEC + (uint64_t)tv->tv_usec;
}

static void cpu_mark(struct cpu_mark *m)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	m->wall = now_usec(CLOCK_MONOTONIC);
	m->user = tv_usec(&ru.ru_utime);
	m->sys = tv_usec(&ru.ru_stime);
}

static double ms(uint64_t usec)
{
	return (double)usec / USEC_PER_MSEC;
}

static struct kube_ip ipv4(uint32_t host_order)
{
	struct kube_ip ip = { .family = AF_INET };

	ip.v4.s_addr = htonl(host_order);
	return ip;
}

#define VIP_BASE 0x0a600100u /* 10.96.1.0 */
#define EP_BASE 0x0af40010u  /* 10.244.0.16 */
#define EP_NEW_BASE 0x0afa0000u /* 10.250.0.0: replacement endpoints */

struct bench {
	size_t services, endpoints;
	struct model_key *keys;
	struct model_entry *entries;
};

static int bench_fill(struct bench *b)
{
	b->keys = calloc(b->services, sizeof(*b->keys));
	b->entries = calloc(b->services, sizeof(*b->entries));
	if (!b->keys || !b->entries)
		return -ENOMEM;
	for (size_t i = 0; i < b->services; i++) {
		struct model_entry *e = &b->entries[i];

		b->keys[i] = (struct model_key){ .vip = ipv4(VIP_BASE + (uint32_t)i),
						 .protocol = IPPROTO_TCP, .port = 80 };
		e->vip = b->keys[i].vip;
		e->protocol = IPPROTO_TCP;
		e->port = 80;
		e->verdict = MODEL_FORWARD;
		snprintf(e->comment, sizeof(e->comment), "bench-%02zu/svc-%05zu:http", i % 100, i);
		e->backends = calloc(b->endpoints, sizeof(*e->backends));
		if (!e->backends)
			return -ENOMEM;
		e->n_backends = b->endpoints;
		for (size_t j = 0; j < b->endpoints; j++)
			e->backends[j] = (struct model_backend){
				.addr = ipv4(EP_BASE + (uint32_t)(i * b->endpoints + j)), .port = 8080 };
	}
	return 0;
}

static int stage_all(struct bench *b, struct nft *n)
{
	for (size_t i = 0; i < b->services; i++) {
		int r = nft_stage(n, &b->keys[i], &b->entries[i]);

		if (r < 0) {
			fprintf(stderr, "nft_stage %s: %s\n", b->entries[i].comment, strerror(-r));
			return r;
		}
	}
	return 0;
}

static int commit(struct nft *n, const char *what)
{
	_cleanup_(freep) char *error = NULL;
	int r = nft_commit(n, &error);

	if (r < 0)
		fprintf(stderr, "nft_commit (%s): %s: %s\n", what, strerror(-r), error ?: "");
	return r;
}

/* Stage everything and commit; prints PREFIX_{stage,commit,total,user,sys}_ms. */
static int program_all(struct bench *b, struct nft *n, const char *prefix)
{
	struct cpu_mark t0, t1, t2;
	struct nft_stats st;
	int r;

	cpu_mark(&t0);
	r = stage_all(b, n);
	if (r < 0)
		return r;
	cpu_mark(&t1);
	r = commit(n, prefix);
	if (r < 0)
		return r;
	cpu_mark(&t2);
	nft_get_stats(n, &st);
	if (st.entries != b->services || st.backends != b->services * b->endpoints) {
		fprintf(stderr, "%s: committed %zu entries, %zu backends; want %zu, %zu\n", prefix,
			st.entries, st.backends, b->services, b->services * b->endpoints);
		return -EIO;
	}
	printf("%s_stage_ms %.3f\n%s_commit_ms %.3f\n%s_total_ms %.3f\n%s_user_ms %.3f\n"
	       "%s_sys_ms %.3f\n%s_messages %llu\n",
	       prefix, ms(t1.wall - t0.wall), prefix, ms(t2.wall - t1.wall), prefix,
	       ms(t2.wall - t0.wall), prefix, ms(t2.user - t0.user), prefix, ms(t2.sys - t0.sys),
	       prefix, (unsigned long long)st.messages_last);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *sorted, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return sorted[i < n ? i : n - 1];
}

/* Replace the last endpoint of CHANGES different Services, one commit each. */
static int changes(struct bench *b, struct nft *n, size_t count)
{
	_cleanup_(freep) uint64_t *t = calloc(count ? count : 1, sizeof(*t));
	uint64_t sum = 0;

	if (!t)
		return -ENOMEM;
	for (size_t k = 0; k < count; k++) {
		size_t i = (k * 7919) % b->services;
		struct model_entry *e = &b->entries[i];
		uint64_t t0, t1;
		int r;

		e->backends[e->n_backends - 1].addr = ipv4(EP_NEW_BASE + (uint32_t)k);
		t0 = now_usec(CLOCK_MONOTONIC);
		r = nft_stage(n, &b->keys[i], e);
		if (r >= 0)
			r = commit(n, "change");
		t1 = now_usec(CLOCK_MONOTONIC);
		if (r < 0)
			return r;
		t[k] = t1 - t0;
		sum += t[k];
	}
	if (!count)
		return 0;
	qsort(t, count, sizeof(*t), cmp_u64);
	printf("change_count %zu\nchange_p50_ms %.3f\nchange_p99_ms %.3f\nchange_max_ms %.3f\n"
	       "change_mean_ms %.3f\n",
	       count, ms(pct(t, count, 0.50)), ms(pct(t, count, 0.99)), ms(t[count - 1]),
	       ms(sum / count));
	return 0;
}

static int new_netns(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %m\n");
		return -errno;
	}
	return 0;
}

static void drop_table(struct nft **n)
{
	_cleanup_(freep) char *error = NULL;

	*n = nft_free(*n);
	if (nft_cleanup(&error) < 0)
		fprintf(stderr, "nft_cleanup: %s\n", error ?: "");
}

int main(int argc, char **argv)
{
	struct bench b = {};
	struct nft *n = NULL;
	size_t reps, nchanges;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SERVICES ENDPOINTS [REPS] [CHANGES] [DUMP_FILE]\n", argv[0]);
		return 2;
	}
	b.services = strtoul(argv[1], NULL, 10);
	b.endpoints = strtoul(argv[2], NULL, 10);
	reps = argc > 3 ? strtoul(argv[3], NULL, 10) : 3;
	nchanges = argc > 4 ? strtoul(argv[4], NULL, 10) : 1000;
	if (!b.services || !b.endpoints || b.services > 60000 || !reps) {
		fprintf(stderr, "bad SERVICES/ENDPOINTS/REPS\n");
		return 2;
	}
	if (bench_fill(&b) < 0)
		return 1;
	printf("services %zu\nendpoints %zu\n", b.services, b.endpoints);

	for (size_t rep = 0; rep < reps; rep++) {
		char prefix[32];

		if (new_netns() < 0 || (r = nft_new(&n)) < 0)
			return 1;
		snprintf(prefix, sizeof(prefix), "cold%zu", rep);
		if (program_all(&b, n, prefix) < 0)
			return 1;
		if (rep + 1 < reps)
			drop_table(&n);
	}
	/* Everything is programmed in the last namespace: now the changes. */
	if (changes(&b, n, nchanges) < 0)
		return 1;

	/* A restarted daemon: no committed copy, the table is in the kernel. */
	n = nft_free(n);
	if ((r = nft_new(&n)) < 0)
		return 1;
	if (program_all(&b, n, "restart") < 0)
		return 1;
	nft_reset(n);
	if (program_all(&b, n, "replace") < 0)
		return 1;
	fflush(stdout);
	if (argc > 5) {
		_cleanup_(freep) char *cmd = NULL;

		if (asprintf(&cmd, "nft list table ip kube-annex > '%s'", argv[5]) < 0)
			return 1;
		if (system(cmd) != 0)
			fprintf(stderr, "could not dump the table to %s\n", argv[5]);
	}
	drop_table(&n);
	for (size_t i = 0; i < b.services; i++)
		free(b.entries[i].backends);
	free(b.entries);
	free(b.keys);
	return 0;
}
