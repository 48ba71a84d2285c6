/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench/conn: a minimal HTTP server and a new-connection-per-request load
 * generator, both single-threaded epoll loops, for the connection-rate rows
 * of make bench.
 *
 *   conn serve PORT
 *       answers every request with a short "200 OK" and waits for the
 *       client to close.
 *   conn client IP PORT SECONDS CONCURRENCY
 *       keeps CONCURRENCY connections in flight, each: connect(), send a
 *       GET, read the whole answer, close with a reset; a new one replaces
 *       it. Closing with a reset leaves no TIME_WAIT on either side: with
 *       10^4 connections a second the client reuses its ports within
 *       seconds, and a server-side TIME_WAIT of an earlier connection (to
 *       the pod IP, say, whose TCP timestamps have another offset than
 *       those to the ClusterIP) would refuse the new SYN and cost a 1 s
 *       retransmission: a property of the benchmark, not of the path. Prints
 *       "key value" lines: completed connections per second, connect()
 *       latency (SYN sent -> established, i.e. the first packet's round
 *       trip through the DNAT) and whole-request latency percentiles,
 *       errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_CONC 4096
#define MAX_SAMPLES (8u << 20)

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
static const char request[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int die(const char *what)
{
	fprintf(stderr, "conn: %s: %s\n", what, strerror(errno));
	return 1;
}

/* ---- server ------------------------------------------------------------- */

static int serve(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct epoll_event ev, evs[MAX_EVENTS];
	int one = 1, lfd, ep;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return die("bind");
	if (listen(lfd, 4096) < 0)
		return die("listen");
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return die("epoll_create1");
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = lfd };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("conn: serving on port %d\n", port);
	fflush(stdout);

	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return die("epoll_wait");
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			/* The request fits one segment: answer it; the client
			 * closes once it has the answer. */
			char buf[2048];
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r < 0 && errno == EAGAIN)
				continue;
			if (r > 0 && write(fd, response, sizeof(response) - 1) == sizeof(response) - 1)
				continue;
			close(fd); /* EOF, reset or error */
		}
	}
}

/* ---- client ------------------------------------------------------------- */

struct conn {
	int fd;
	int state; /* 0 free, 1 connecting, 2 reading */
	size_t got;
	uint64_t t_start;
};

struct samples {
	uint64_t *v;
	size_t n;
};

static void sample(struct samples *s, uint64_t ns)
{
	if (s->n < MAX_SAMPLES)
		s->v[s->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(struct samples *s, double p)
{
	size_t i;

	if (!s->n)
		return 0;
	i = (size_t)(p * (double)(s->n - 1) + 0.5);
	return (double)s->v[i] / 1000.0;
}

struct client {
	int ep;
	struct sockaddr_in dst;
	struct conn conns[MAX_CONC];
	struct samples connect_lat, req_lat;
	unsigned long done, errors;
	bool measuring;
};

static int start_conn(struct client *c, int slot)
{
	struct conn *k = &c->conns[slot];
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)slot };
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	k->fd = fd;
	k->state = 1;
	k->got = 0;
	k->t_start = now_ns();
	if (connect(fd, (struct sockaddr *)&c->dst, sizeof(c->dst)) < 0 && errno != EINPROGRESS) {
		int r = -errno;

		close(fd);
		k->state = 0;
		return r;
	}
	epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static void finish_conn(struct client *c, int slot, bool ok)
{
	struct conn *k = &c->conns[slot];
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	close(k->fd);
	k->state = 0;
	if (!c->measuring)
		return;
	if (ok) {
		c->done++;
		sample(&c->req_lat, now_ns() - k->t_start);
	} else {
		c->errors++;
	}
}

static void on_event(struct client *c, int slot, uint32_t events)
{
	struct conn *k = &c->conns[slot];

	if (k->state == 1) {
		int err = 0;
		socklen_t len = sizeof(err);
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)slot };

		getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & (EPOLLERR | EPOLLHUP))) {
			finish_conn(c, slot, false);
			return;
		}
		if (c->measuring)
			sample(&c->connect_lat, now_ns() - k->t_start);
		if (write(k->fd, request, sizeof(request) - 1) < 0) {
			finish_conn(c, slot, false);
			return;
		}
		k->state = 2;
		epoll_ctl(c->ep, EPOLL_CTL_MOD, k->fd, &ev);
		return;
	}
	for (;;) {
		char buf[4096];
		ssize_t r = read(k->fd, buf, sizeof(buf));

		if (r > 0) {
			k->got += (size_t)r;
			if (k->got >= sizeof(response) - 1) {
				finish_conn(c, slot, true);
				return;
			}
			continue;
		}
		if (r < 0 && errno == EAGAIN)
			return;
		finish_conn(c, slot, false); /* closed before the whole answer */
		return;
	}
}

static int client(const char *ip, int port, double seconds, int conc)
{
	static struct client c;
	struct epoll_event evs[MAX_EVENTS];
	uint64_t warm_end, end, t_meas = 0;

	if (conc < 1 || conc > MAX_CONC)
		conc = 1;
	c.dst = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, ip, &c.dst.sin_addr) != 1) {
		fprintf(stderr, "conn: bad address %s\n", ip);
		return 2;
	}
	c.connect_lat.v = malloc(MAX_SAMPLES * sizeof(uint64_t));
	c.req_lat.v = malloc(MAX_SAMPLES * sizeof(uint64_t));
	c.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!c.connect_lat.v || !c.req_lat.v || c.ep < 0)
		return die("setup");

	/* 0.3 s of warm-up (caches, conntrack, ARP) that is not counted. */
	warm_end = now_ns() + 300000000u;
	end = warm_end + (uint64_t)(seconds * 1e9);
	for (int i = 0; i < conc; i++)
		if (start_conn(&c, i) < 0)
			return die("connect");
	for (;;) {
		uint64_t now = now_ns();
		int n;

		if (!c.measuring && now >= warm_end) {
			c.measuring = true;
			t_meas = now;
		}
		if (now >= end)
			break;
		n = epoll_wait(c.ep, evs, MAX_EVENTS, 100);
		if (n < 0 && errno != EINTR)
			return die("epoll_wait");
		for (int i = 0; i < n; i++) {
			int slot = (int)evs[i].data.u32;

			on_event(&c, slot, evs[i].events);
			if (c.conns[slot].state == 0 && start_conn(&c, slot) < 0 && c.measuring)
				c.errors++;
		}
	}
	double elapsed = (double)(now_ns() - t_meas) / 1e9;

	qsort(c.connect_lat.v, c.connect_lat.n, sizeof(uint64_t), cmp_u64);
	qsort(c.req_lat.v, c.req_lat.n, sizeof(uint64_t), cmp_u64);
	printf("conns %lu\nerrors %lu\nseconds %.3f\nrate %.1f\n"
	       "connect_p50_us %.1f\nconnect_p99_us %.1f\nrequest_p50_us %.1f\nrequest_p99_us %.1f\n",
	       c.done, c.errors, elapsed, (double)c.done / elapsed, pct_us(&c.connect_lat, 0.5),
	       pct_us(&c.connect_lat, 0.99), pct_us(&c.req_lat, 0.5), pct_us(&c.req_lat, 0.99));
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve(atoi(argv[2]));
	if (argc == 6 && strcmp(argv[1], "client") == 0)
		return client(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: %s serve PORT | client IP PORT SECONDS CONCURRENCY\n", argv[0]);
	return 2;
}
