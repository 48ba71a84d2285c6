/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Addresses and protocols as the Kubernetes API writes them.
 */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "kube/kube.h"
#include "lib/util.h"

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int kube_ip_parse(const char *s, struct kube_ip *ret)
{
	struct kube_ip ip = {};

	if (!s || !ret)
		return -EINVAL;

	if (inet_pton(AF_INET, s, &ip.v4) == 1) {
		ip.family = AF_INET;
	} else if (inet_pton(AF_INET6, s, &ip.v6) == 1) {
		ip.family = AF_INET6;
		/* Go's net.ParseIP, which the API server validates with, treats
		 * "::ffff:a.b.c.d" as IPv4: do the same. */
		if (memcmp(ip.bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
			memmove(ip.bytes, ip.bytes + 12, 4);
			memset(ip.bytes + 4, 0, 12);
			ip.family = AF_INET;
		}
	} else {
		return -EINVAL;
	}

	*ret = ip;
	return 0;
}

const char *kube_ip_format(const struct kube_ip *ip, char *buf, size_t len)
{
	if (!buf || len == 0)
		return "";
	if (!ip || (ip->family != AF_INET && ip->family != AF_INET6) ||
	    !inet_ntop(ip->family, ip->bytes, buf, len > UINT32_MAX ? UINT32_MAX : (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

bool kube_ip_equal(const struct kube_ip *a, const struct kube_ip *b)
{
	if (a->family != b->family)
		return false;
	return memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

int kube_protocol_parse(const char *s)
{
	if (!s || streq(s, "TCP"))
		return IPPROTO_TCP;
	if (streq(s, "UDP"))
		return IPPROTO_UDP;
	if (streq(s, "SCTP"))
		return IPPROTO_SCTP;
	return -EINVAL;
}

const char *kube_protocol_name(int proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_SCTP:
		return "sctp";
	default:
		return "unknown";
	}
}
