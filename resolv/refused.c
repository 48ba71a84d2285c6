/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fail-fast responder's answer (see responder.c): REFUSED for any DNS
 * query, built from the query alone. Pure; fuzzed.
 */
#include "resolv/internal.h"

#define DNS_HEADER_SIZE 12
#define DNS_TYPE_OPT 41
#define DNS_RCODE_REFUSED 5
#define DNS_EDNS_UDP_SIZE 1232
#define MAX_NAME_WIRE 255

/* Length of the question (name + type + class) at p, or 0 if malformed.
 * No compression pointers in a question we echo. */
static size_t question_len(const uint8_t *p, size_t len)
{
	size_t off = 0;

	for (;;) {
		uint8_t l;

		if (off >= len || off > MAX_NAME_WIRE)
			return 0;
		l = p[off];
		if (l == 0)
			break;
		if (l & 0xc0)
			return 0;
		off += 1u + l;
	}
	off++;
	return off + 4 <= len ? off + 4 : 0;
}

int resolv_refused_reply(const uint8_t *query, size_t len, uint8_t *reply, size_t cap,
			 size_t *ret_len)
{
	uint16_t qdcount, arcount;
	size_t q = 0, n;
	bool opt = false;

	if (len < DNS_HEADER_SIZE || (query[2] & 0x80)) /* too short, or a response */
		return -EINVAL;
	qdcount = (uint16_t)(query[4] << 8 | query[5]);
	arcount = (uint16_t)(query[10] << 8 | query[11]);
	if (qdcount == 1)
		q = question_len(query + DNS_HEADER_SIZE, len - DNS_HEADER_SIZE);
	/* An EDNS query gets an OPT record back, or resolved would think the
	 * server lacks EDNS and degrade it: the root name, then type OPT. */
	if (q && arcount > 0 && len >= DNS_HEADER_SIZE + q + 3) {
		const uint8_t *a = query + DNS_HEADER_SIZE + q;

		opt = a[0] == 0 && a[1] == 0 && a[2] == DNS_TYPE_OPT;
	}
	n = DNS_HEADER_SIZE + q + (opt ? 11 : 0);
	if (n > cap)
		return -ENOBUFS;
	memcpy(reply, query, 2);                          /* id */
	reply[2] = (uint8_t)(0x80 | (query[2] & 0x79));  /* QR, opcode, RD */
	reply[3] = DNS_RCODE_REFUSED;
	reply[4] = 0;
	reply[5] = q ? 1 : 0;
	memset(reply + 6, 0, 6);
	if (q)
		memcpy(reply + DNS_HEADER_SIZE, query + DNS_HEADER_SIZE, q);
	if (opt) {
		uint8_t *o = reply + DNS_HEADER_SIZE + q;

		reply[11] = 1;
		memset(o, 0, 11);
		o[2] = DNS_TYPE_OPT;
		o[3] = DNS_EDNS_UDP_SIZE >> 8;
		o[4] = DNS_EDNS_UDP_SIZE & 0xff;
	}
	*ret_len = n;
	return 0;
}
