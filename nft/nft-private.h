/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Private to nft/: shared between nft.c (committed copy, diffing),
 * ruleset.c (what the objects and elements look like on the wire) and
 * netlink.c (batches, the socket, acknowledgements).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"
#include "model/model.h"
#include "nft/nft.h"

struct mnl_socket;
struct nft;
struct nlmsghdr;

#define NFT_TABLE_NAME "kube-annex"
#define NFT_TABLE_COMMENT "rules for kube-annex"

/* Bound on one key's backends: numgen and the element count stay sane. */
#define NFT_MAX_BACKENDS 65536u
/* Pins per slot (set endpoint-N-clients) of keys with session affinity
 * (NFT_MAX_AFFINITY_BACKENDS slots at most, see nft.h): a bound on kernel
 * memory. A new client whose slot's set is full goes to another slot, or
 * to slot 0, without a pin until old pins expire. */
#define NFT_AFFINITY_CLIENTS_MAX 65536u

enum nft_family {
	NFT_FAMILY_IP,
	NFT_FAMILY_IP6,
	_NFT_FAMILY_MAX,
};

/* The element-bearing sets and maps of one table. */
enum nft_set_kind {
	NFT_SET_SERVICES,     /* service-ips: VIP . proto . port : goto lb-N */
	NFT_SET_NO_ENDPOINTS, /* no-endpoint-services: ... : goto reject-chain | drop */
	NFT_SET_CLUSTER_IPS,  /* cluster-ips: VIP */
	NFT_SET_BACKENDS,     /* backends-N: VIP . proto . port . i : addr . port */
	NFT_SET_ENDPOINTS,    /* endpoint-N: VIP . proto . port : addr . port (slot N) */
	NFT_SET_CLIENTS,      /* endpoint-N-clients: client . VIP . proto . port, dynamic */
	_NFT_SET_KIND_MAX,
};

/*
 * What a Service's key shares with others of its kind, created while some
 * key needs it and deleted (later) when none does:
 *   - LB n: map backends-n and chain lb-n, for keys with n endpoints and no
 *     session affinity;
 *   - SLOT n: map endpoint-n and set endpoint-n-clients, for keys with
 *     session affinity and more than n endpoints (slot n is their n-th);
 *   - AFFINITY n, timeout: chain affinity-n-timeout, for keys with session
 *     affinity, n endpoints and that timeout (seconds).
 */
enum nft_group_kind {
	NFT_GROUP_LB,
	NFT_GROUP_SLOT,
	NFT_GROUP_AFFINITY,
	_NFT_GROUP_KIND_MAX,
};

enum nft_kind {
	NFT_KIND_NONE,    /* not present */
	NFT_KIND_FORWARD, /* load-balance over n_backends > 0 */
	NFT_KIND_REJECT,
	NFT_KIND_DROP,
};

/* A VIP . protocol . port; memcmp()-able (no padding), used as hash key. */
struct nft_key {
	uint8_t family;   /* enum nft_family */
	uint8_t protocol; /* IPPROTO_TCP / UDP / SCTP */
	uint16_t port;    /* host order */
	uint8_t addr[16]; /* 4 significant bytes for ip, rest zero */
};

/* One element to add or delete; pointers stay valid for the whole commit. */
struct nft_elem {
	const struct nft_key *key;
	uint32_t index;                      /* backends-N: slot */
	const struct model_backend *backend; /* backends-N: value (adds) */
	enum nft_kind kind;                  /* services/no-endpoints: value */
	uint32_t n;                          /* NFT_KIND_FORWARD: goto lb-n, or */
	uint32_t timeout;                    /* goto affinity-n-timeout when > 0 */
	const char *comment;                 /* element comment, or NULL */
};

/* A --service-cidr: traffic to unallocated addresses in it is dropped. */
struct nft_cidr {
	uint8_t family; /* enum nft_family */
	uint8_t prefix; /* 1 ..= 32 or 128 */
	uint8_t addr[16]; /* host bits zero */
};

/* ---- netlink.c ---------------------------------------------------------- */

/* What one message of a batch does, to say which operation failed. */
struct nft_msg_info {
	uint16_t type;               /* NFT_MSG_* */
	uint8_t family;              /* enum nft_family */
	uint8_t set_kind;            /* element messages: enum nft_set_kind */
	uint32_t n;                  /* backends-N / lb-N, 0 otherwise */
	char object[32];             /* chain or set name, "" for the table */
	const struct nft_elem *elems; /* element messages: first element */
	size_t n_elems;
	const struct nlmsghdr *nlh;  /* the message as sent (set by netlink.c) */
	bool acked;
	int error;                   /* 0 or -errno */
	char *extack;                /* kernel's message, or NULL */
	uint32_t bad_offset;         /* NLMSGERR_ATTR_OFFS, 0 when absent */
};

struct nft_batch;

int nft_socket_open(struct mnl_socket **ret);
/* Port id of the commit socket: notifications it caused carry it. */
uint32_t nft_portid(const struct nft *n);
/* Transactions the kernel committed for n so far: each moved the ruleset
 * generation on by one. */
uint64_t nft_transactions_total(const struct nft *n);
void nft_socket_close(struct mnl_socket *nl);

int nft_batch_new(uint32_t first_seq, struct nft_batch **ret);
struct nft_batch *nft_batch_free(struct nft_batch *b);

/*
 * Start a message of the batch; returns its header (payload follows) or
 * NULL on allocation failure. Finish it with nft_batch_msg_end(), which
 * records info for error reporting.
 */
struct nlmsghdr *nft_batch_msg_start(struct nft_batch *b, uint16_t type, enum nft_family family,
				     uint16_t flags);
int nft_batch_msg_end(struct nft_batch *b, const struct nft_msg_info *info);
size_t nft_batch_count(const struct nft_batch *b);
/* Message i (< nft_batch_count()) as recorded by nft_batch_msg_end(). */
const struct nft_msg_info *nft_batch_msg(const struct nft_batch *b, size_t i);
/* Sequence number following the last one the batch used. */
uint32_t nft_batch_next_seq(const struct nft_batch *b);

/*
 * Close the batch, send it in one sendmsg() and collect every
 * acknowledgement. 0 when the kernel committed it; otherwise -errno and,
 * when ret_error is non-NULL, a message naming the failed operation.
 */
int nft_batch_send(struct nft_batch *b, struct mnl_socket *nl, char **ret_error);

/* ---- ruleset.c ---------------------------------------------------------- */

int nft_family_nfproto(enum nft_family f);
const char *nft_family_name(enum nft_family f);
const char *nft_set_kind_name(enum nft_set_kind kind);
/* "service-ips", "backends-3", "endpoint-3", "endpoint-3-clients"... */
void nft_set_name(enum nft_set_kind kind, uint32_t n, char *buf, size_t len);
/* "affinity-3-10800": keys with session affinity, 3 endpoints, 10800 s */
void nft_affinity_chain_name(uint32_t n, uint32_t timeout, char *buf, size_t len);

/* Ensure the table exists, delete it, and create it again (empty). */
int nft_rs_table_replace(struct nft_batch *b, enum nft_family f);
/* Delete the table whether or not it exists. */
int nft_rs_table_delete(struct nft_batch *b, enum nft_family f);
/* Fixed sets, maps, chains and rules (after nft_rs_table_replace); the
 * prerouting and forward chains only for a gateway; a drop rule for each
 * of the family's service CIDRs. */
int nft_rs_base(struct nft_batch *b, enum nft_family f, bool gateway,
		const struct nft_cidr *cidrs, size_t n_cidrs);
/* Chain nat-postrouting, if there is anything to masquerade after DNAT:
 * connections from resolv/'s DNS link address (link_addr, 4 or 16 bytes by
 * family; NULL: none), and for a gateway those routed through the host. */
int nft_rs_postrouting(struct nft_batch *b, enum nft_family f, bool gateway,
		       const uint8_t *link_addr);
/* A group's objects (enum nft_group_kind): LB n: map backends-n and chain
 * lb-n with its dnat rule; SLOT n: map endpoint-n and set
 * endpoint-n-clients; AFFINITY n, timeout: chain affinity-n-timeout with
 * its rules (the slots must exist). Deleting an AFFINITY chain releases the
 * slots its rules use: in one transaction, chains go first. */
int nft_rs_group_add(struct nft_batch *b, enum nft_family f, enum nft_group_kind kind,
		     uint32_t n, uint32_t timeout);
int nft_rs_group_delete(struct nft_batch *b, enum nft_family f, enum nft_group_kind kind,
			uint32_t n, uint32_t timeout);
/* As many NEWSETELEM / DELSETELEM messages as the elements need. */
int nft_rs_elems(struct nft_batch *b, enum nft_family f, enum nft_set_kind kind, uint32_t n,
		 bool del, const struct nft_elem *elems, size_t count);

/* Describe a failed message; elem_index < info->n_elems names one element. */
void nft_rs_describe(const struct nft_msg_info *info, size_t elem_index, char *buf, size_t len);
/* Which element of an element message holds byte offset off, or SIZE_MAX. */
size_t nft_rs_elem_at(const struct nlmsghdr *nlh, uint32_t off);

/* ---- adopt.c ------------------------------------------------------------ */

/* Bounds on a table left by a previous run before it is replaced instead of
 * taken over: groups of each kind, and elements over all its sets. */
#define NFT_ADOPT_MAX_GROUPS 4096u
#define NFT_ADOPT_MAX_ELEMS (1u << 24)

/* Builds into b what creates family f's table and everything in it but the
 * groups, exactly as this version and configuration would. */
typedef int (*nft_skeleton_fn)(struct nft_batch *b, enum nft_family f, void *userdata);

/*
 * What nft_table_read() finds, element by element: every group first, then
 * service-ips and no-endpoint-services, the backends-N and endpoint-N slots
 * the keys of service-ips lead to (each exactly once), cluster-ips. The
 * endpoint-N-clients sets are the kernel's (pins it adds and expires) and
 * are not read.
 * A callback returns 0, -ENOMEM (stops the read with it) or another
 * -errno: the table is inconsistent, the read ends with NFT_TABLE_DIFFERENT
 * (the callback writes why into the caller's reason buffer).
 */
struct nft_table_sink {
	int (*group)(void *userdata, enum nft_group_kind kind, uint32_t n, uint32_t timeout);
	/* service-ips: NFT_KIND_FORWARD to lb-n (timeout 0) or to
	 * affinity-n-timeout; no-endpoint-services: NFT_KIND_REJECT or
	 * NFT_KIND_DROP. comment "" when none. */
	int (*verdict)(void *userdata, const struct nft_key *key, enum nft_kind kind, uint32_t n,
		       uint32_t timeout, const char *comment);
	/* Slot of a key's backends: from backends-n (kind LB, slot < n) or
	 * from endpoint-slot (kind SLOT, for keys with affinity). */
	int (*backend)(void *userdata, enum nft_group_kind kind, const struct nft_key *key,
		       uint32_t slot, const struct model_backend *be);
	/* cluster-ips: protocol and port zero */
	int (*cluster_ip)(void *userdata, const struct nft_key *vip);
};

enum {
	NFT_TABLE_ABSENT,    /* no table kube-annex in the family */
	NFT_TABLE_READ,      /* exactly this version's; every element went to the sink */
	NFT_TABLE_DIFFERENT, /* something else, or inconsistent: see reason */
};

/*
 * Read family f's table kube-annex and, if its chains, rules and sets are
 * exactly what skeleton() plus the groups found (one per backends-N and
 * endpoint-N map and per affinity-N-T chain) would create,
 * hand its elements to sink. Returns NFT_TABLE_* or -errno; -EAGAIN when
 * the ruleset changed while it was read (undo what the sink did, and read
 * again).
 */
int nft_table_read(enum nft_family f, nft_skeleton_fn skeleton, void *skeleton_data,
		   const struct nft_table_sink *sink, void *userdata, char *reason,
		   size_t reason_len);
/* 1 when family f has a table kube-annex, 0 when not, or -errno. */
int nft_table_exists(enum nft_family f);
