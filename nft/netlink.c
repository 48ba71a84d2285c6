/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nfnetlink transactions: a batch (BATCH_BEGIN, messages, BATCH_END) built
 * in libnftnl's paged buffer, sent with one sendmsg() over several iovecs,
 * and every message's acknowledgement read back.
 *
 * Every message carries NLM_F_ACK. A batch holds a few hundred messages at
 * most (elements are packed many per message), so the acknowledgements are
 * cheap, and they tell apart "committed", "this message failed" and "the
 * kernel never got to it". nfnetlink processes a batch synchronously inside
 * sendmsg(), so all replies are queued by the time it returns.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include "lib/log.h"
#include "nft/nft-private.h"
#include "lib/netlink.h"

/*
 * A message may run past the end of a page by up to the overrun before it
 * is moved to a fresh page. The largest message is one element list (a
 * nest of at most 64 KiB), its headers, and one element written past the
 * limit before it is taken back.
 */
#define BATCH_PAGE_SIZE (256u * 1024)
#define BATCH_PAGE_OVERRUN (128u * 1024)

#define RCVBUF_MIN (1u << 20)
#define RCVBUF_PER_MSG 2048u /* an ack skb's truesize, with room to spare */
#define ACK_WAIT_MSEC 2000
#define EXTACK_MAX 512
#define REPLY_BUF_SIZE 32768

struct nft_batch {
	struct nftnl_batch *pages;
	uint32_t first_seq; /* BATCH_BEGIN */
	uint32_t seq;       /* the next message's */
	bool closed;
	struct nft_msg_info *msgs;
	size_t n_msgs;
	size_t cap_msgs;
	int batch_error; /* the kernel refused the batch as a whole */
	char *batch_extack;
};

int nft_socket_open(struct mnl_socket **ret)
{
	return netlink_open(NETLINK_NETFILTER, SOCK_NONBLOCK, ret);
}

void nft_socket_close(struct mnl_socket *nl)
{
	if (nl)
		mnl_socket_close(nl);
}

/*
 * libmnl 1.0.4 leaves attribute padding unwritten and libnftnl's pages come
 * from malloc(): zero each page when it starts, so no stale heap bytes
 * reach the kernel (and valgrind stays quiet). A page switch copies the
 * message that overflowed to the new page first; zero what follows it.
 */
static void zero_rest_of_page(struct nft_batch *b)
{
	size_t used = (size_t)nftnl_batch_buffer_len(b->pages);
	size_t page = BATCH_PAGE_SIZE + BATCH_PAGE_OVERRUN;

	if (used < page)
		memset(nftnl_batch_buffer(b->pages), 0, page - used);
}

static int batch_update(struct nft_batch *b)
{
	int pages = nftnl_batch_iovec_len(b->pages);

	if (nftnl_batch_update(b->pages) < 0)
		return -ENOMEM;
	if (nftnl_batch_iovec_len(b->pages) != pages)
		zero_rest_of_page(b);
	return 0;
}

int nft_batch_new(uint32_t first_seq, struct nft_batch **ret)
{
	struct nft_batch *b;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->pages = nftnl_batch_alloc(BATCH_PAGE_SIZE, BATCH_PAGE_OVERRUN);
	if (!b->pages) {
		free(b);
		return -ENOMEM;
	}
	b->first_seq = first_seq;
	zero_rest_of_page(b);
	nftnl_batch_begin(nftnl_batch_buffer(b->pages), first_seq);
	if (batch_update(b) < 0) {
		nft_batch_free(b);
		return -ENOMEM;
	}
	b->seq = first_seq + 1;
	*ret = b;
	return 0;
}

struct nft_batch *nft_batch_free(struct nft_batch *b)
{
	if (!b)
		return NULL;
	for (size_t i = 0; i < b->n_msgs; i++)
		free(b->msgs[i].extack);
	free(b->msgs);
	free(b->batch_extack);
	if (b->pages)
		nftnl_batch_free(b->pages);
	free(b);
	return NULL;
}

struct nlmsghdr *nft_batch_msg_start(struct nft_batch *b, uint16_t type, enum nft_family family,
				     uint16_t flags)
{
	if (b->closed)
		return NULL;
	return nftnl_nlmsg_build_hdr(nftnl_batch_buffer(b->pages), type,
				     nft_family_nfproto(family), flags | NLM_F_ACK, b->seq);
}

int nft_batch_msg_end(struct nft_batch *b, const struct nft_msg_info *info)
{
	const struct nlmsghdr *nlh = nftnl_batch_buffer(b->pages);
	uint32_t len = nlh->nlmsg_len;
	struct nft_msg_info *m;

	if (b->n_msgs == b->cap_msgs) {
		size_t cap = b->cap_msgs ? b->cap_msgs * 2 : 64;

		m = reallocarray(b->msgs, cap, sizeof(*m));
		if (!m)
			return -ENOMEM;
		b->msgs = m;
		b->cap_msgs = cap;
	}
	if (batch_update(b) < 0)
		return -ENOMEM;
	m = &b->msgs[b->n_msgs++];
	*m = *info;
	/* The message may have moved to a new page; it ends where the next
	 * one will start either way. */
	m->nlh = (const struct nlmsghdr *)((const char *)nftnl_batch_buffer(b->pages) - len);
	m->acked = false;
	m->error = 0;
	m->extack = NULL;
	m->bad_offset = 0;
	b->seq++;
	return 0;
}

size_t nft_batch_count(const struct nft_batch *b)
{
	return b->n_msgs;
}

const struct nft_msg_info *nft_batch_msg(const struct nft_batch *b, size_t i)
{
	return i < b->n_msgs ? &b->msgs[i] : NULL;
}

uint32_t nft_batch_next_seq(const struct nft_batch *b)
{
	return b->seq + 1;
}

/* Grow a socket buffer to at least size; the kernel doubles what we ask. */
static int socket_buffer_ensure(int fd, int force_opt, int opt, size_t size)
{
	int cur = 0, want;
	socklen_t sl = sizeof(cur);

	if (size > INT32_MAX / 2)
		return -EMSGSIZE;
	if (getsockopt(fd, SOL_SOCKET, opt, &cur, &sl) == 0 && (size_t)cur >= size)
		return 0;
	want = (int)size;
	if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof(want)) == 0)
		return 0;
	/* Without CAP_NET_ADMIN this is capped by [wr]mem_max. */
	if (setsockopt(fd, SOL_SOCKET, opt, &want, sizeof(want)) < 0)
		return -errno;
	return 0;
}

static int batch_close(struct nft_batch *b)
{
	if (b->closed)
		return 0;
	nftnl_batch_end(nftnl_batch_buffer(b->pages), b->seq);
	if (batch_update(b) < 0)
		return -ENOMEM;
	b->closed = true;
	return 0;
}

static int batch_sendmsg(struct nft_batch *b, struct mnl_socket *nl)
{
	struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
	int fd = mnl_socket_get_fd(nl);
	_cleanup_(freep) struct iovec *iov = NULL;
	struct msghdr msg = {};
	size_t total = 0;
	ssize_t sent;
	int n_iov, r;

	n_iov = nftnl_batch_iovec_len(b->pages);
	iov = calloc(n_iov, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	nftnl_batch_iovec(b->pages, iov, n_iov);
	for (int i = 0; i < n_iov; i++)
		total += iov[i].iov_len;

	/* netlink refuses a datagram larger than the send buffer. */
	r = socket_buffer_ensure(fd, SO_SNDBUFFORCE, SO_SNDBUF, total + 4096);
	if (r < 0)
		return r;
	r = socket_buffer_ensure(fd, SO_RCVBUFFORCE, SO_RCVBUF,
				 RCVBUF_MIN + b->n_msgs * RCVBUF_PER_MSG);
	if (r < 0)
		log_debug("nft: cannot grow receive buffer: %s", strerror(-r));

	msg.msg_name = &snl;
	msg.msg_namelen = sizeof(snl);
	msg.msg_iov = iov;
	msg.msg_iovlen = n_iov;
	do
		sent = sendmsg(fd, &msg, 0);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -errno;
	if ((size_t)sent != total)
		return -EIO;
	log_debug("nft: sent batch of %zu messages, %zu bytes in %d iovecs", b->n_msgs + 2,
		  total, n_iov);
	return 0;
}

struct extack {
	const char *msg;
	uint32_t offs;
};

static int extack_attr_cb(const struct nlattr *attr, void *data)
{
	struct extack *ea = data;

	switch (mnl_attr_get_type(attr)) {
	case NLMSGERR_ATTR_MSG:
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
			ea->msg = mnl_attr_get_str(attr);
		break;
	case NLMSGERR_ATTR_OFFS:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
			ea->offs = mnl_attr_get_u32(attr);
		break;
	}
	return MNL_CB_OK;
}

static void parse_extack(const struct nlmsghdr *nlh, const struct nlmsgerr *err,
			 struct extack *ret)
{
	size_t off = sizeof(*err);

	*ret = (struct extack){};
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		if (err->msg.nlmsg_len < sizeof(struct nlmsghdr))
			return;
		off += err->msg.nlmsg_len - sizeof(struct nlmsghdr);
	}
	off = MNL_ALIGN(off);
	if (off > mnl_nlmsg_get_payload_len(nlh))
		return;
	mnl_attr_parse(nlh, off, extack_attr_cb, ret);
}

static char *extack_dup(const char *s)
{
	return s && *s ? strndup(s, EXTACK_MAX) : NULL;
}

static void handle_error_msg(struct nft_batch *b, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
	uint32_t seq = nlh->nlmsg_seq;
	struct nft_msg_info *m;
	struct extack ea;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*err))
		return;
	parse_extack(nlh, err, &ea);
	if (seq == b->first_seq || seq == b->seq) {
		/* BATCH_BEGIN or END: the whole transaction (commit-time
		 * validation, allocation failure, malformed batch). */
		if (err->error < 0 && !b->batch_error) {
			b->batch_error = err->error;
			b->batch_extack = extack_dup(ea.msg);
		}
		return;
	}
	if (seq <= b->first_seq || seq - b->first_seq - 1 >= b->n_msgs)
		return; /* not ours: a leftover from an earlier batch */
	m = &b->msgs[seq - b->first_seq - 1];
	m->acked = true;
	if (err->error < 0 && !m->error) {
		m->error = err->error;
		m->extack = extack_dup(ea.msg);
		m->bad_offset = ea.offs;
	}
}

static bool batch_complete(const struct nft_batch *b)
{
	if (b->batch_error)
		return true;
	for (size_t i = 0; i < b->n_msgs; i++)
		if (!b->msgs[i].acked)
			return false;
	return true;
}

static int read_replies(struct nft_batch *b, struct mnl_socket *nl)
{
	_cleanup_(freep) char *buf = NULL;
	uint64_t deadline = now_usec(CLOCK_MONOTONIC) + ACK_WAIT_MSEC * USEC_PER_MSEC;
	int fd = mnl_socket_get_fd(nl);

	buf = malloc(REPLY_BUF_SIZE);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t len = recv(fd, buf, REPLY_BUF_SIZE, 0);
		const struct nlmsghdr *nlh;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now;

		if (len < 0 && errno == EINTR)
			continue;
		if (len < 0 && errno != EAGAIN)
			return -errno; /* ENOBUFS: replies were lost */
		if (len >= 0) {
			int left = (int)len;

			for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, left);
			     nlh = mnl_nlmsg_next(nlh, &left))
				if (nlh->nlmsg_type == NLMSG_ERROR)
					handle_error_msg(b, nlh);
			continue;
		}
		/* Drained. Normally everything has arrived by now. */
		if (batch_complete(b))
			return 0;
		now = now_usec(CLOCK_MONOTONIC);
		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)((deadline - now) / USEC_PER_MSEC) + 1) < 0 &&
		    errno != EINTR)
			return -errno;
	}
}

static char *describe_failure(const struct nft_msg_info *m)
{
	char what[512];
	size_t idx = SIZE_MAX;

	if (m->bad_offset && m->elems)
		idx = nft_rs_elem_at(m->nlh, m->bad_offset);
	nft_rs_describe(m, idx, what, sizeof(what));
	if (m->extack)
		return strdup_printf("%s: %s (%s)", what, strerror(-m->error), m->extack);
	return strdup_printf("%s: %s", what, strerror(-m->error));
}

/* The first failed message names the failure; later ones often follow
 * from it. */
static int batch_result(const struct nft_batch *b, char **ret_error)
{
	for (size_t i = 0; i < b->n_msgs; i++) {
		const struct nft_msg_info *m = &b->msgs[i];

		if (!m->error)
			continue;
		if (ret_error)
			*ret_error = describe_failure(m);
		return m->error;
	}
	if (b->batch_error) {
		const char *ea = b->batch_extack;

		if (ret_error)
			*ret_error = strdup_printf("commit of %zu messages: %s%s%s%s", b->n_msgs,
						   strerror(-b->batch_error), ea ? " (" : "",
						   ea ?: "", ea ? ")" : "");
		return b->batch_error;
	}
	return 0;
}

int nft_batch_send(struct nft_batch *b, struct mnl_socket *nl, char **ret_error)
{
	int r;

	r = batch_close(b);
	if (r < 0)
		goto fail;
	r = batch_sendmsg(b, nl);
	if (r < 0)
		goto fail;
	r = read_replies(b, nl);
	if (r < 0)
		goto fail;
	return batch_result(b, ret_error);
fail:
	if (ret_error)
		*ret_error = strdup_printf("nftables transaction of %zu messages: %s", b->n_msgs,
					   strerror(-r));
	return r;
}
