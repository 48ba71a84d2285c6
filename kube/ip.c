/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Addresses and protocols as the Kubernetes API writes them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* A message for *ret_error when there is somewhere to put it; -EINVAL. */
_printf_(2, 3) static int cidr_error(char **ret_error, const char *fmt, ...)
{
	va_list ap;

	if (ret_error) {
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return -EINVAL;
}

int kube_cidr_parse(const char *s, struct kube_cidr *ret, char **ret_error)
{
	char addr[INET6_ADDRSTRLEN], net[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct kube_cidr c = {};
	struct kube_ip masked;
	unsigned long plen;
	unsigned max;
	size_t len;
	char *end;

	if (!slash)
		return cidr_error(ret_error, "'%s' is not a CIDR (ADDRESS/PREFIX)", s);
	len = (size_t)(slash - s);
	if (len < sizeof(addr)) {
		memcpy(addr, s, len);
		addr[len] = 0;
	}
	if (len >= sizeof(addr) || kube_ip_parse(addr, &c.addr) < 0)
		return cidr_error(ret_error, "'%s': '%.*s' is not an IP address", s, (int)len, s);
	max = c.addr.family == AF_INET ? 32 : 128;
	errno = 0;
	plen = strtoul(slash + 1, &end, 10);
	if (slash[1] < '0' || slash[1] > '9' || (slash[1] == '0' && slash[2]) || errno || *end ||
	    plen < 1 || plen > max)
		return cidr_error(ret_error, "'%s': the prefix length must be 1 to %u", s, max);
	c.prefix = (unsigned)plen;
	masked = c.addr;
	for (unsigned b = c.prefix; b < max; b++)
		masked.bytes[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
	if (!kube_ip_equal(&masked, &c.addr))
		return cidr_error(ret_error, "'%s' has host bits set (the network is %s/%u)", s,
				  kube_ip_format(&masked, net, sizeof(net)), c.prefix);
	*ret = c;
	return 0;
}
