/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fail-fast responder: a tiny DNS server on kube-annex0's address that
 * answers every query with REFUSED. systemd-resolved lists it after the
 * cluster DNS on kube-annex0.
 *
 * Why: when the cluster DNS is unreachable (no endpoints: rejected; a dead
 * pod: ICMP port unreachable; a partition: no answer), resolved ends the
 * transaction as "all attempts failed", and its stub on 127.0.0.53 turns
 * that into *no reply*, on purpose, so that glibc clients wait out their
 * own timeouts: 5 s per try, 20-40 s per lookup. With a second server that
 * answers at once, resolved switches to it after the first failure, gets
 * REFUSED, has tried every server, and hands REFUSED to the client: the
 * lookup fails in milliseconds. REFUSED also makes resolved switch servers
 * again on the next query (resolved-dns-transaction.c), so the cluster DNS
 * is back in use as soon as it answers; the responder never answers a name
 * outside the cluster domain, because only the cluster domain is routed to
 * kube-annex0.
 *
 * Only queries from this host's link address are answered (resolved sends
 * from it); anything else is dropped.
 */
#include <netinet/in.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "resolv/internal.h"

#define PACKETS_PER_WAKEUP 64

/* ---- the sockets -------------------------------------------------------- */

struct responder_socket {
	int fd;
	sd_event_source *source;
	struct kube_ip addr;
};

struct resolv_responder {
	struct responder_socket sockets[2];
	size_t n;
};

static bool from_addr(const struct sockaddr_storage *ss, const struct kube_ip *want)
{
	if (ss->ss_family == AF_INET && want->family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)ss)->sin_addr, want->bytes, 4) == 0;
	if (ss->ss_family == AF_INET6 && want->family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, want->bytes, 16) == 0;
	return false;
}

static int on_query(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	const struct responder_socket *sock = userdata;
	uint8_t query[512], reply[512 + 11];

	for (unsigned i = 0; i < PACKETS_PER_WAKEUP; i++) {
		struct sockaddr_storage from = {};
		socklen_t from_len = sizeof(from);
		size_t reply_len;
		ssize_t n;

		n = recvfrom(fd, query, sizeof(query), MSG_TRUNC, (struct sockaddr *)&from, &from_len);
		if (n < 0)
			break;
		if ((size_t)n > sizeof(query) || !from_addr(&from, &sock->addr) ||
		    resolv_refused_reply(query, (size_t)n, reply, sizeof(reply), &reply_len) < 0)
			continue;
		(void)sendto(fd, reply, reply_len, MSG_DONTWAIT, (struct sockaddr *)&from, from_len);
	}
	return 0;
}

static int socket_open(sd_event *event, struct responder_socket *sock, char **ret_error)
{
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa = {};
	socklen_t sa_len;
	int one = 1, r;

	if (sock->addr.family == AF_INET) {
		sa.in.sin_family = AF_INET;
		sa.in.sin_port = htons(53);
		memcpy(&sa.in.sin_addr, sock->addr.bytes, 4);
		sa_len = sizeof(sa.in);
	} else {
		sa.in6.sin6_family = AF_INET6;
		sa.in6.sin6_port = htons(53);
		memcpy(&sa.in6.sin6_addr, sock->addr.bytes, 16);
		sa_len = sizeof(sa.in6);
	}
	sock->fd = socket(sock->addr.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sock->fd < 0)
		return -errno;
	/* The address may still be on its way onto the link. */
	if (sock->addr.family == AF_INET)
		(void)setsockopt(sock->fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	else
		(void)setsockopt(sock->fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
	if (bind(sock->fd, (struct sockaddr *)&sa, sa_len) < 0) {
		r = -errno;
		if (ret_error)
			*ret_error = strdup_printf("binding port 53 of the link address: %s",
						   strerror(-r));
		return r;
	}
	return sd_event_add_io(event, &sock->source, sock->fd, EPOLLIN, on_query, sock);
}

struct resolv_responder *resolv_responder_free(struct resolv_responder *rr)
{
	if (!rr)
		return NULL;
	for (size_t i = 0; i < rr->n; i++) {
		sd_event_source_disable_unref(rr->sockets[i].source);
		if (rr->sockets[i].fd >= 0)
			close(rr->sockets[i].fd);
	}
	free(rr);
	return NULL;
}

int resolv_responder_new(sd_event *event, const struct kube_ip *addrs, size_t n,
			 struct resolv_responder **ret, char **ret_error)
{
	struct resolv_responder *rr;
	int r;

	if (n > ARRAY_SIZE(rr->sockets))
		return -EINVAL;
	rr = calloc(1, sizeof(*rr));
	if (!rr)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rr->sockets[i] = (struct responder_socket){ .fd = -1, .addr = addrs[i] };
		rr->n++;
		r = socket_open(event, &rr->sockets[i], ret_error);
		if (r < 0) {
			resolv_responder_free(rr);
			return r;
		}
	}
	*ret = rr;
	return 0;
}
