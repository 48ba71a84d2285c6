/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the kube-annex tables look like on the wire.
 *
 * Every object is built the way nft 1.0.6 builds the same object from its
 * own syntax (checked with `nft --debug=netlink,mnl` and by dumping what
 * the kernel stores), so that `nft list table` prints it as nft syntax
 * (typeof maps, comments) and the listing loads again with `nft -f`:
 *
 *   - the same expressions and registers in every rule;
 *   - the same set key/data types and lengths;
 *   - the same set user data: byte orders, the "typeof" description of
 *     key and data, comments;
 *   - element and rule comments as nft's udata TLVs.
 *
 * Tables, chains, sets and rules are libnftnl objects. Elements, which are
 * the bulk of every commit, are written straight into the message with
 * libmnl: no allocation per element, and many elements per message.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/rtnetlink.h>

#include "nft/nft-private.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_table *, nftnl_table_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_chain *, nftnl_chain_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set *, nftnl_set_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free);

static inline void nftnl_udata_buf_freep(struct nftnl_udata_buf **p)
{
	if (*p)
		nftnl_udata_buf_free(*p);
}

#define NFT_USERDATA_MAXLEN 256 /* the kernel's bound on udata */

/*
 * nft's own numbering, as it appears inside set user data. nft must read
 * what any earlier version wrote, so these do not change.
 */
enum {
	/* datatypes (enum datatypes) */
	NFT_TYPE_INTEGER = 4,
	NFT_TYPE_IPADDR = 7,
	NFT_TYPE_IP6ADDR = 8,
	NFT_TYPE_INET_PROTOCOL = 12,
	NFT_TYPE_INET_SERVICE = 13,
	NFT_TYPE_BITS = 6, /* concat types: (a << 6) | b */
	/* enum byteorder */
	NFT_BYTEORDER_INVALID = 0,
	NFT_BYTEORDER_BIG_ENDIAN = 2,
	/* enum expr_types */
	NFT_EXPR_PAYLOAD = 7,
	NFT_EXPR_META = 9,
	NFT_EXPR_CONCAT = 13,
	NFT_EXPR_NUMGEN = 23,
	/* enum proto_desc_id, and header field indexes within them */
	NFT_DESC_TH = 11,
	NFT_DESC_IP = 12,
	NFT_DESC_IP6 = 13,
	NFT_IPHDR_SADDR = 11,
	NFT_IPHDR_DADDR = 12,
	NFT_IP6HDR_SADDR = 8,
	NFT_IP6HDR_DADDR = 9,
	NFT_THDR_DPORT = 2,
};

/* What differs between the ip and ip6 tables. Registers are the ones nft
 * allocates for the same expressions. */
struct family_layout {
	uint32_t nfproto;
	const char *name;
	uint32_t addr_len;
	uint32_t addr_type;
	uint32_t daddr_offset;
	uint32_t daddr_desc;
	uint32_t daddr_field;
	uint32_t saddr_field;
	uint32_t reg_l4proto;
	uint32_t reg_dport;
	uint32_t reg_numgen;
	uint32_t reg_nat_proto; /* where the lookup leaves the port */
	/* ip saddr . ip daddr . meta l4proto . th dport, from NFT_REG_1 */
	uint32_t reg_client_daddr;
	uint32_t reg_client_l4proto;
	uint32_t reg_client_dport;
	uint8_t reject_code;    /* ICMP(v6) port unreachable */
};

static const struct family_layout layouts[_NFT_FAMILY_MAX] = {
	[NFT_FAMILY_IP] = {
		.nfproto = NFPROTO_IPV4,
		.name = "ip",
		.addr_len = 4,
		.addr_type = NFT_TYPE_IPADDR,
		.daddr_offset = 16,
		.daddr_desc = NFT_DESC_IP,
		.daddr_field = NFT_IPHDR_DADDR,
		.saddr_field = NFT_IPHDR_SADDR,
		.reg_l4proto = NFT_REG32_01,
		.reg_dport = NFT_REG32_02,
		.reg_numgen = NFT_REG32_03,
		.reg_nat_proto = NFT_REG32_01,
		.reg_client_daddr = NFT_REG32_01,
		.reg_client_l4proto = NFT_REG32_02,
		.reg_client_dport = NFT_REG32_03,
		.reject_code = 3,
	},
	[NFT_FAMILY_IP6] = {
		.nfproto = NFPROTO_IPV6,
		.name = "ip6",
		.addr_len = 16,
		.addr_type = NFT_TYPE_IP6ADDR,
		.daddr_offset = 24,
		.daddr_desc = NFT_DESC_IP6,
		.daddr_field = NFT_IP6HDR_DADDR,
		.saddr_field = NFT_IP6HDR_SADDR,
		.reg_l4proto = NFT_REG_2,
		.reg_dport = NFT_REG32_05,
		.reg_numgen = NFT_REG32_06,
		.reg_nat_proto = NFT_REG_2,
		.reg_client_daddr = NFT_REG_2,
		.reg_client_l4proto = NFT_REG_3,
		.reg_client_dport = NFT_REG32_09,
		.reject_code = 4,
	},
};

static const char *const set_names[_NFT_SET_KIND_MAX] = {
	[NFT_SET_SERVICES] = "service-ips",
	[NFT_SET_NO_ENDPOINTS] = "no-endpoint-services",
	[NFT_SET_CLUSTER_IPS] = "cluster-ips",
	[NFT_SET_BACKENDS] = "backends",
	[NFT_SET_ENDPOINTS] = "endpoint",
	[NFT_SET_CLIENTS] = "endpoint-clients",
};

int nft_family_nfproto(enum nft_family f)
{
	return layouts[f].nfproto;
}

const char *nft_family_name(enum nft_family f)
{
	return layouts[f].name;
}

const char *nft_set_kind_name(enum nft_set_kind kind)
{
	return set_names[kind];
}

void nft_set_name(enum nft_set_kind kind, uint32_t n, char *buf, size_t len)
{
	switch (kind) {
	case NFT_SET_BACKENDS:
		snprintf(buf, len, "backends-%u", n);
		break;
	case NFT_SET_ENDPOINTS:
		snprintf(buf, len, "endpoint-%u", n);
		break;
	case NFT_SET_CLIENTS:
		snprintf(buf, len, "endpoint-%u-clients", n);
		break;
	default:
		snprintf(buf, len, "%s", set_names[kind]);
		break;
	}
}

/* Unique within a batch; lets the kernel find sets created in it by id as
 * well as by name, as nft does. */
static uint32_t set_id(enum nft_family f, enum nft_set_kind kind, uint32_t n)
{
	uint32_t id;

	switch (kind) {
	case NFT_SET_BACKENDS:
		id = 0x10 + n;
		break;
	case NFT_SET_ENDPOINTS:
		id = 0x100000 + n;
		break;
	case NFT_SET_CLIENTS:
		id = 0x200000 + n;
		break;
	default:
		id = (uint32_t)kind;
		break;
	}
	return 1 + ((uint32_t)f << 24) + id;
}

void nft_affinity_chain_name(uint32_t n, uint32_t timeout, char *buf, size_t len)
{
	snprintf(buf, len, "affinity-%u-%u", n, timeout);
}

static uint32_t concat_type(const uint32_t *types, size_t n)
{
	uint32_t t = 0;

	for (size_t i = 0; i < n; i++)
		t = (t << NFT_TYPE_BITS) | types[i];
	return t;
}

/* ---- messages ----------------------------------------------------------- */

static int msg_end(struct nft_batch *b, uint16_t type, enum nft_family f, const char *object)
{
	struct nft_msg_info info = { .type = type, .family = f };

	snprintf(info.object, sizeof(info.object), "%s", object ?: "");
	return nft_batch_msg_end(b, &info);
}

static int table_msg(struct nft_batch *b, enum nft_family f, uint16_t type, uint16_t flags,
		     bool with_comment)
{
	_cleanup_(nftnl_table_freep) struct nftnl_table *t = NULL;
	_cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *ud = NULL;
	struct nlmsghdr *nlh;

	t = nftnl_table_alloc();
	if (!t)
		return -ENOMEM;
	if (nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFT_TABLE_NAME) < 0)
		return -ENOMEM;
	if (type == NFT_MSG_NEWTABLE)
		nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
	if (with_comment) {
		ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
		if (!ud || !nftnl_udata_put_strz(ud, NFTNL_UDATA_TABLE_COMMENT, NFT_TABLE_COMMENT))
			return -ENOMEM;
		if (nftnl_table_set_data(t, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(ud),
					 nftnl_udata_buf_len(ud)) < 0)
			return -ENOMEM;
	}
	nlh = nft_batch_msg_start(b, type, f, flags);
	if (!nlh)
		return -ENOMEM;
	nftnl_table_nlmsg_build_payload(nlh, t);
	return msg_end(b, type, f, NULL);
}

int nft_rs_table_replace(struct nft_batch *b, enum nft_family f)
{
	int r;

	/* Create-if-missing first, so that the delete cannot fail with
	 * ENOENT; all three are one transaction, so packets see either the
	 * old table or the new one. */
	r = table_msg(b, f, NFT_MSG_NEWTABLE, NLM_F_CREATE, false);
	if (r < 0)
		return r;
	r = table_msg(b, f, NFT_MSG_DELTABLE, 0, false);
	if (r < 0)
		return r;
	return table_msg(b, f, NFT_MSG_NEWTABLE, NLM_F_CREATE, true);
}

int nft_rs_table_delete(struct nft_batch *b, enum nft_family f)
{
	int r;

	r = table_msg(b, f, NFT_MSG_NEWTABLE, NLM_F_CREATE, false);
	if (r < 0)
		return r;
	return table_msg(b, f, NFT_MSG_DELTABLE, 0, false);
}

/* ---- chains ------------------------------------------------------------- */

/* Hook priorities nft calls dstnat and filter. */
#define PRIO_DSTNAT (-100)
#define PRIO_FILTER 0
#define PRIO_SRCNAT 100

struct chain_hook {
	const char *type;
	uint32_t hooknum;
	int32_t priority;
};

static int chain_msg(struct nft_batch *b, enum nft_family f, uint16_t type, const char *name,
		     const struct chain_hook *hook)
{
	_cleanup_(nftnl_chain_freep) struct nftnl_chain *c = NULL;
	struct nlmsghdr *nlh;

	c = nftnl_chain_alloc();
	if (!c)
		return -ENOMEM;
	if (nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFT_TABLE_NAME) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0)
		return -ENOMEM;
	if (hook) {
		if (nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, hook->type) < 0)
			return -ENOMEM;
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook->hooknum);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, hook->priority);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	nlh = nft_batch_msg_start(b, type, f, type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0);
	if (!nlh)
		return -ENOMEM;
	nftnl_chain_nlmsg_build_payload(nlh, c);
	return msg_end(b, type, f, name);
}

/* ---- rules -------------------------------------------------------------- */

struct rule_builder {
	struct nftnl_rule *rule;
	const struct family_layout *fl;
	bool oom;
};

static struct nftnl_expr *rb_expr(struct rule_builder *rb, const char *name)
{
	struct nftnl_expr *e;

	if (rb->oom)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		rb->oom = true;
		return NULL;
	}
	nftnl_rule_add_expr(rb->rule, e);
	return e;
}

static void x_payload(struct rule_builder *rb, uint32_t base, uint32_t offset, uint32_t len,
		      uint32_t dreg)
{
	struct nftnl_expr *e = rb_expr(rb, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
}

static void x_meta(struct rule_builder *rb, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = rb_expr(rb, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
}

/* dreg < 0: a plain membership test. */
static void x_lookup(struct rule_builder *rb, enum nft_family f, enum nft_set_kind kind,
		     uint32_t n, int dreg)
{
	struct nftnl_expr *e = rb_expr(rb, "lookup");
	char name[32];

	if (!e)
		return;
	nft_set_name(kind, n, name, sizeof(name));
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	if (dreg >= 0)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, dreg);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, name) < 0)
		rb->oom = true;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id(f, kind, n));
}

/* ip daddr . meta l4proto . th dport, from NFT_REG_1 on. */
static void x_service_key(struct rule_builder *rb)
{
	x_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, rb->fl->daddr_offset, rb->fl->addr_len,
		  NFT_REG_1);
	x_meta(rb, NFT_META_L4PROTO, rb->fl->reg_l4proto);
	x_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, rb->fl->reg_dport);
}

static void x_numgen_random(struct rule_builder *rb, uint32_t mod, uint32_t dreg)
{
	struct nftnl_expr *e = rb_expr(rb, "numgen");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS, mod);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_OFFSET, 0);
}

static void x_cmp(struct rule_builder *rb, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
}

/* ip saddr . ip daddr . meta l4proto . th dport, from NFT_REG_1 on: a
 * client of a Service port. */
static void x_client_key(struct rule_builder *rb)
{
	x_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, rb->fl->daddr_offset - rb->fl->addr_len,
		  rb->fl->addr_len, NFT_REG_1);
	x_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, rb->fl->daddr_offset, rb->fl->addr_len,
		  rb->fl->reg_client_daddr);
	x_meta(rb, NFT_META_L4PROTO, rb->fl->reg_client_l4proto);
	x_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, rb->fl->reg_client_dport);
}

/* update @endpoint-<slot>-clients { <client key> timeout <seconds>s } */
static void x_pin(struct rule_builder *rb, enum nft_family f, uint32_t slot, uint32_t timeout)
{
	struct nftnl_expr *e;
	char name[32];

	x_client_key(rb);
	e = rb_expr(rb, "dynset");
	if (!e)
		return;
	nft_set_name(NFT_SET_CLIENTS, slot, name, sizeof(name));
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
	nftnl_expr_set_u64(e, NFTNL_EXPR_DYNSET_TIMEOUT, (uint64_t)timeout * 1000);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, name) < 0)
		rb->oom = true;
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SET_ID, set_id(f, NFT_SET_CLIENTS, slot));
}

/* dnat ip addr . port to <address in NFT_REG_1, port after it> */
static void x_dnat_concat(struct rule_builder *rb)
{
	struct nftnl_expr *e = rb_expr(rb, "nat");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, rb->fl->nfproto);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, rb->fl->reg_nat_proto);
}

/* ct <key> & mask != 0, for the bit fields ct state and ct status */
static void x_ct_bits(struct rule_builder *rb, uint32_t key, uint32_t mask)
{
	uint32_t zero = 0;
	struct nftnl_expr *e;

	e = rb_expr(rb, "ct");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);

	e = rb_expr(rb, "bitwise");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));

	x_cmp(rb, NFT_CMP_NEQ, &zero, sizeof(zero));
}

/* ct state new */
static void x_ct_state_new(struct rule_builder *rb)
{
	x_ct_bits(rb, NFT_CT_STATE, 1u << 3 /* NF_CT_STATE_BIT(IP_CT_NEW) */);
}

/* ct status dnat */
static void x_ct_status_dnat(struct rule_builder *rb)
{
	x_ct_bits(rb, NFT_CT_STATUS, 1u << 5 /* IPS_DST_NAT_BIT */);
}

static void x_reject(struct rule_builder *rb)
{
	struct nftnl_expr *e = rb_expr(rb, "reject");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH);
	nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, rb->fl->reject_code);
}

/* goto <chain> */
static void x_goto(struct rule_builder *rb, const char *chain)
{
	struct nftnl_expr *e = rb_expr(rb, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)NFT_GOTO);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain) < 0)
		rb->oom = true;
}

/* meta l4proto tcp reject with tcp reset */
static void x_reject_tcp(struct rule_builder *rb)
{
	const uint8_t tcp = IPPROTO_TCP;
	struct nftnl_expr *e;

	x_meta(rb, NFT_META_L4PROTO, NFT_REG_1);
	x_cmp(rb, NFT_CMP_EQ, &tcp, sizeof(tcp));
	e = rb_expr(rb, "reject");
	if (!e)
		return;
	/* no code: the kernel neither needs nor lists one for a reset */
	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
}

static int rule_begin(struct rule_builder *rb, enum nft_family f, const char *chain)
{
	*rb = (struct rule_builder){ .fl = &layouts[f] };
	rb->rule = nftnl_rule_alloc();
	if (!rb->rule)
		return -ENOMEM;
	if (nftnl_rule_set_str(rb->rule, NFTNL_RULE_TABLE, NFT_TABLE_NAME) < 0 ||
	    nftnl_rule_set_str(rb->rule, NFTNL_RULE_CHAIN, chain) < 0)
		rb->oom = true;
	return 0;
}

static int rule_commit(struct nft_batch *b, enum nft_family f, struct rule_builder *rb,
		       const char *chain, const char *comment)
{
	_cleanup_(nftnl_rule_freep) struct nftnl_rule *rule = TAKE_PTR(rb->rule);
	_cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *ud = NULL;
	struct nlmsghdr *nlh;

	if (rb->oom)
		return -ENOMEM;
	if (comment) {
		ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
		if (!ud || !nftnl_udata_put_strz(ud, NFTNL_UDATA_RULE_COMMENT, comment))
			return -ENOMEM;
		nftnl_rule_set_data(rule, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud),
				    nftnl_udata_buf_len(ud));
	}
	nlh = nft_batch_msg_start(b, NFT_MSG_NEWRULE, f, NLM_F_CREATE | NLM_F_APPEND);
	if (!nlh)
		return -ENOMEM;
	nftnl_rule_nlmsg_build_payload(nlh, rule);
	return msg_end(b, NFT_MSG_NEWRULE, f, chain);
}

/* <chain>: ip daddr . meta l4proto . th dport vmap @service-ips */
static int rule_dispatch(struct nft_batch *b, enum nft_family f, const char *chain)
{
	struct rule_builder rb;
	int r;

	r = rule_begin(&rb, f, chain);
	if (r < 0)
		return r;
	x_service_key(&rb);
	x_lookup(&rb, f, NFT_SET_SERVICES, 0, NFT_REG_VERDICT);
	return rule_commit(b, f, &rb, chain, NULL);
}

/* <chain>: ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services */
static int rule_no_endpoints(struct nft_batch *b, enum nft_family f, const char *chain)
{
	struct rule_builder rb;
	int r;

	r = rule_begin(&rb, f, chain);
	if (r < 0)
		return r;
	x_ct_state_new(&rb);
	x_service_key(&rb);
	x_lookup(&rb, f, NFT_SET_NO_ENDPOINTS, 0, NFT_REG_VERDICT);
	return rule_commit(b, f, &rb, chain, NULL);
}

/* <chain>: ct state new ip daddr @cluster-ips goto reject-chain */
static int rule_unknown_ports(struct nft_batch *b, enum nft_family f, const char *chain)
{
	struct rule_builder rb;
	int r;

	r = rule_begin(&rb, f, chain);
	if (r < 0)
		return r;
	x_ct_state_new(&rb);
	x_payload(&rb, NFT_PAYLOAD_NETWORK_HEADER, rb.fl->daddr_offset, rb.fl->addr_len,
		  NFT_REG_1);
	x_lookup(&rb, f, NFT_SET_CLUSTER_IPS, 0, -1);
	x_goto(&rb, "reject-chain");
	return rule_commit(b, f, &rb, chain, "reject traffic to unknown ports of ClusterIPs");
}

static int rule_reject(struct nft_batch *b, enum nft_family f, const char *chain)
{
	struct rule_builder rb;
	int r;

	r = rule_begin(&rb, f, chain);
	if (r < 0)
		return r;
	x_reject(&rb);
	return rule_commit(b, f, &rb, chain, NULL);
}

/* A TCP client gets a reset, not ICMP: a connect() from this host fails
 * at once either way over IPv4, but over IPv6 Linux acts only on the
 * port-unreachable of the SYN's retransmit, a second later. */
static int rule_reject_tcp(struct nft_batch *b, enum nft_family f, const char *chain)
{
	struct rule_builder rb;
	int r;

	r = rule_begin(&rb, f, chain);
	if (r < 0)
		return r;
	x_reject_tcp(&rb);
	return rule_commit(b, f, &rb, chain, NULL);
}

/* lb-N: dnat ip addr . port to ip daddr . meta l4proto . th dport
 *       . numgen random mod N map @backends-N */
static int rule_lb(struct nft_batch *b, enum nft_family f, uint32_t n, const char *chain)
{
	struct rule_builder rb;
	int r;

	r = rule_begin(&rb, f, chain);
	if (r < 0)
		return r;
	x_service_key(&rb);
	x_numgen_random(&rb, n, rb.fl->reg_numgen);
	x_lookup(&rb, f, NFT_SET_BACKENDS, n, NFT_REG_1);
	x_dnat_concat(&rb);
	return rule_commit(b, f, &rb, chain, NULL);
}

/* How a rule of chain affinity-N-T chooses its slot. */
enum pick {
	PICK_PINNED,   /* the client is pinned to the slot */
	PICK_RANDOM,   /* numgen random mod <mod> == 0 */
	PICK_LAST,     /* no condition: the last slot */
	PICK_FALLBACK, /* no condition and no pin (a pin set is full) */
};

/*
 * One rule of affinity-N-T:
 *   [<client> @endpoint-S-clients | numgen random mod M 0]
 *   [update @endpoint-S-clients { <client> timeout T }]
 *   dnat ip to ip daddr . meta l4proto . th dport map @endpoint-S
 * where <client> is ip saddr . ip daddr . meta l4proto . th dport.
 */
static int rule_affinity(struct nft_batch *b, enum nft_family f, const char *chain,
			 enum pick how, uint32_t slot, uint32_t mod, uint32_t timeout)
{
	static const uint32_t zero = 0;
	struct rule_builder rb;
	int r;

	r = rule_begin(&rb, f, chain);
	if (r < 0)
		return r;
	if (how == PICK_PINNED) {
		x_client_key(&rb);
		x_lookup(&rb, f, NFT_SET_CLIENTS, slot, -1);
	} else if (how == PICK_RANDOM) {
		x_numgen_random(&rb, mod, NFT_REG_1);
		x_cmp(&rb, NFT_CMP_EQ, &zero, sizeof(zero));
	}
	if (how != PICK_FALLBACK)
		x_pin(&rb, f, slot, timeout);
	x_service_key(&rb);
	x_lookup(&rb, f, NFT_SET_ENDPOINTS, slot, NFT_REG_1);
	x_dnat_concat(&rb);
	return rule_commit(b, f, &rb, chain, NULL);
}

/*
 * Session affinity for keys with n endpoints and a timeout: a client
 * pinned to one of the n slots goes there again and its pin is refreshed;
 * any other client picks a slot at random (1/n each, as kube-proxy's
 * iptables mode does: 1/n, then 1/(n-1) of the rest...), is pinned to it
 * and goes there. The endpoint in a slot comes from map endpoint-<slot>,
 * so a pin always leads to an endpoint the Service has now: when one
 * leaves, its slot is given to another or the slot is no longer checked.
 */
static int rules_affinity(struct nft_batch *b, enum nft_family f, uint32_t n, uint32_t timeout,
			  const char *chain)
{
	int r = 0;

	for (uint32_t i = 0; i < n && n > 1 && r >= 0; i++)
		r = rule_affinity(b, f, chain, PICK_PINNED, i, 0, timeout);
	for (uint32_t i = 0; i + 1 < n && r >= 0; i++)
		r = rule_affinity(b, f, chain, PICK_RANDOM, i, n - i, timeout);
	if (r >= 0)
		r = rule_affinity(b, f, chain, PICK_LAST, n - 1, 0, timeout);
	if (r >= 0)
		r = rule_affinity(b, f, chain, PICK_FALLBACK, 0, 0, timeout);
	return r;
}

/* <chain>: ct state new ip daddr <cidr> drop comment "..." the way nft
 * matches a prefix: a byte-aligned one compares its bytes only, any other
 * is masked first. */
static int rule_service_cidr(struct nft_batch *b, enum nft_family f, const char *chain,
			     const struct nft_cidr *c)
{
	uint8_t mask[16] = {}, zero[16] = {};
	struct rule_builder rb;
	struct nftnl_expr *e;
	uint32_t len;
	int r;

	r = rule_begin(&rb, f, chain);
	if (r < 0)
		return r;
	x_ct_state_new(&rb);
	len = c->prefix % 8 == 0 ? c->prefix / 8u : rb.fl->addr_len;
	x_payload(&rb, NFT_PAYLOAD_NETWORK_HEADER, rb.fl->daddr_offset, len, NFT_REG_1);
	if (c->prefix % 8 != 0) {
		for (uint32_t bit = 0; bit < c->prefix; bit++)
			mask[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
		e = rb_expr(&rb, "bitwise");
		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
			nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
			nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
			nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
			nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
		}
	}
	x_cmp(&rb, NFT_CMP_EQ, c->addr, len);
	e = rb_expr(&rb, "immediate");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
	}
	return rule_commit(b, f, &rb, chain, "Drop traffic to unallocated ClusterIPs");
}

/* ---- sets and maps ------------------------------------------------------ */

/* One member of a "typeof" concatenation as nft describes it: expression
 * type and up to three u32 properties (payload: header, field; meta: key;
 * numgen: type, modulus, offset). */
struct typeof_item {
	uint32_t etype;
	uint32_t props[3];
	size_t n_props;
};

enum {
	UD_CONCAT_SUB_TYPE = 0,
	UD_CONCAT_SUB_DATA = 1,
};

static void udata_typeof(struct nftnl_udata_buf *ud, uint8_t type,
			 const struct typeof_item *items, size_t n)
{
	struct nftnl_udata *outer, *data;

	outer = nftnl_udata_nest_start(ud, type);
	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_TYPEOF_EXPR, NFT_EXPR_CONCAT);
	data = nftnl_udata_nest_start(ud, NFTNL_UDATA_SET_TYPEOF_DATA);
	for (size_t i = 0; i < n; i++) {
		struct nftnl_udata *member, *props;

		member = nftnl_udata_nest_start(ud, (uint8_t)i);
		nftnl_udata_put_u32(ud, UD_CONCAT_SUB_TYPE, items[i].etype);
		props = nftnl_udata_nest_start(ud, UD_CONCAT_SUB_DATA);
		for (size_t j = 0; j < items[i].n_props; j++)
			nftnl_udata_put_u32(ud, (uint8_t)j, items[i].props[j]);
		nftnl_udata_nest_end(ud, props);
		nftnl_udata_nest_end(ud, member);
	}
	nftnl_udata_nest_end(ud, data);
	nftnl_udata_nest_end(ud, outer);
}

/* map backends-N { typeof ip daddr . meta l4proto . th dport
 *                   . numgen random mod N : ip daddr . th dport }, and
 * without the numgen member map endpoint-N (numgen_mod 0). */
static void udata_backends(struct nftnl_udata_buf *ud, const struct family_layout *fl,
			   uint32_t numgen_mod)
{
	const struct typeof_item daddr = { NFT_EXPR_PAYLOAD,
					   { fl->daddr_desc, fl->daddr_field }, 2 };
	const struct typeof_item dport = { NFT_EXPR_PAYLOAD, { NFT_DESC_TH, NFT_THDR_DPORT }, 2 };
	const struct typeof_item key[] = {
		daddr,
		{ NFT_EXPR_META, { NFT_META_L4PROTO }, 1 },
		dport,
		{ NFT_EXPR_NUMGEN, { NFT_NG_RANDOM, numgen_mod, 0 }, 3 },
	};
	const struct typeof_item data[] = { daddr, dport };

	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, NFT_BYTEORDER_INVALID);
	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_DATABYTEORDER, NFT_BYTEORDER_INVALID);
	udata_typeof(ud, NFTNL_UDATA_SET_KEY_TYPEOF, key, ARRAY_SIZE(key) - (numgen_mod == 0));
	udata_typeof(ud, NFTNL_UDATA_SET_DATA_TYPEOF, data, ARRAY_SIZE(data));
	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_DATA_INTERVAL, 0);
}

/* set endpoint-N-clients { typeof ip saddr . ip daddr . meta l4proto
 *                          . th dport } */
static void udata_clients(struct nftnl_udata_buf *ud, const struct family_layout *fl)
{
	const struct typeof_item key[] = {
		{ NFT_EXPR_PAYLOAD, { fl->daddr_desc, fl->saddr_field }, 2 },
		{ NFT_EXPR_PAYLOAD, { fl->daddr_desc, fl->daddr_field }, 2 },
		{ NFT_EXPR_META, { NFT_META_L4PROTO }, 1 },
		{ NFT_EXPR_PAYLOAD, { NFT_DESC_TH, NFT_THDR_DPORT }, 2 },
	};

	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, NFT_BYTEORDER_INVALID);
	udata_typeof(ud, NFTNL_UDATA_SET_KEY_TYPEOF, key, ARRAY_SIZE(key));
}

/* map ... { type ipv4_addr . inet_proto . inet_service : verdict }: nft
 * 1.0.6 records an (empty) concatenation for the key. */
static void udata_verdict_map(struct nftnl_udata_buf *ud)
{
	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, NFT_BYTEORDER_INVALID);
	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_DATABYTEORDER, NFT_BYTEORDER_INVALID);
	udata_typeof(ud, NFTNL_UDATA_SET_KEY_TYPEOF, NULL, 0);
	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_DATA_INTERVAL, 0);
}

struct set_spec {
	enum nft_set_kind kind;
	uint32_t n;
	uint32_t flags;
	uint32_t key_type, key_len;
	uint32_t data_type, data_len;
	uint32_t size; /* 0: none */
	const char *comment;
};

static int set_udata(struct nftnl_set *s, const struct set_spec *spec,
		     const struct family_layout *fl)
{
	_cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *ud = NULL;

	ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
	if (!ud)
		return -ENOMEM;
	switch (spec->kind) {
	case NFT_SET_SERVICES:
	case NFT_SET_NO_ENDPOINTS:
		udata_verdict_map(ud);
		break;
	case NFT_SET_CLUSTER_IPS:
		nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, NFT_BYTEORDER_BIG_ENDIAN);
		break;
	case NFT_SET_BACKENDS:
		udata_backends(ud, fl, spec->n);
		break;
	case NFT_SET_ENDPOINTS:
		udata_backends(ud, fl, 0);
		break;
	case NFT_SET_CLIENTS:
		udata_clients(ud, fl);
		break;
	default:
		return -EINVAL;
	}
	if (spec->comment && !nftnl_udata_put_strz(ud, NFTNL_UDATA_SET_COMMENT, spec->comment))
		return -ENOBUFS;
	return nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
				  nftnl_udata_buf_len(ud));
}

static int set_add(struct nft_batch *b, enum nft_family f, const struct set_spec *spec)
{
	_cleanup_(nftnl_set_freep) struct nftnl_set *s = NULL;
	const struct family_layout *fl = &layouts[f];
	struct nlmsghdr *nlh;
	char name[32];
	int r;

	nft_set_name(spec->kind, spec->n, name, sizeof(name));
	s = nftnl_set_alloc();
	if (!s)
		return -ENOMEM;
	if (nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_TABLE_NAME) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0)
		return -ENOMEM;
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, spec->flags);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, spec->key_type);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, spec->key_len);
	if (spec->flags & NFT_SET_MAP) {
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, spec->data_type);
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, spec->data_len);
	}
	if (spec->size)
		nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, spec->size);
	nftnl_set_set_u32(s, NFTNL_SET_ID, set_id(f, spec->kind, spec->n));
	r = set_udata(s, spec, fl);
	if (r < 0)
		return r;
	nlh = nft_batch_msg_start(b, NFT_MSG_NEWSET, f, NLM_F_CREATE);
	if (!nlh)
		return -ENOMEM;
	nftnl_set_nlmsg_build_payload(nlh, s);
	return msg_end(b, NFT_MSG_NEWSET, f, name);
}

static int set_delete(struct nft_batch *b, enum nft_family f, enum nft_set_kind kind,
		      uint32_t n)
{
	_cleanup_(nftnl_set_freep) struct nftnl_set *s = NULL;
	struct nlmsghdr *nlh;
	char name[32];

	nft_set_name(kind, n, name, sizeof(name));
	s = nftnl_set_alloc();
	if (!s)
		return -ENOMEM;
	if (nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_TABLE_NAME) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0)
		return -ENOMEM;
	nlh = nft_batch_msg_start(b, NFT_MSG_DELSET, f, 0);
	if (!nlh)
		return -ENOMEM;
	nftnl_set_nlmsg_build_payload(nlh, s);
	return msg_end(b, NFT_MSG_DELSET, f, name);
}

/* VIP . proto . port */
static uint32_t service_key_type(const struct family_layout *fl)
{
	const uint32_t t[] = { fl->addr_type, NFT_TYPE_INET_PROTOCOL, NFT_TYPE_INET_SERVICE };

	return concat_type(t, ARRAY_SIZE(t));
}

static int base_sets(struct nft_batch *b, enum nft_family f)
{
	const struct family_layout *fl = &layouts[f];
	const struct set_spec specs[] = {
		{
			.kind = NFT_SET_SERVICES,
			.flags = NFT_SET_MAP,
			.key_type = service_key_type(fl),
			.key_len = fl->addr_len + 8,
			.data_type = NFT_DATA_VERDICT,
			.comment = "ClusterIP, ExternalIP and LoadBalancer IP traffic",
		},
		{
			.kind = NFT_SET_NO_ENDPOINTS,
			.flags = NFT_SET_MAP,
			.key_type = service_key_type(fl),
			.key_len = fl->addr_len + 8,
			.data_type = NFT_DATA_VERDICT,
			.comment = "vmap to drop or reject packets to services with no endpoints",
		},
		{
			.kind = NFT_SET_CLUSTER_IPS,
			.key_type = fl->addr_type,
			.key_len = fl->addr_len,
			.comment = "Active ClusterIPs",
		},
	};
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(specs); i++) {
		r = set_add(b, f, &specs[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* <chain>: the reject and drop rules after DNAT */
static int rules_filter(struct nft_batch *b, enum nft_family f, const char *chain,
			const struct nft_cidr *cidrs, size_t n_cidrs)
{
	int r;

	r = rule_no_endpoints(b, f, chain);
	if (r >= 0)
		r = rule_unknown_ports(b, f, chain);
	for (size_t i = 0; i < n_cidrs && r >= 0; i++)
		if (cidrs[i].family == f)
			r = rule_service_cidr(b, f, chain, &cidrs[i]);
	return r;
}

int nft_rs_base(struct nft_batch *b, enum nft_family f, bool gateway,
		const struct nft_cidr *cidrs, size_t n_cidrs)
{
	static const struct chain_hook nat_output = { "nat", NF_INET_LOCAL_OUT, PRIO_DSTNAT };
	static const struct chain_hook nat_prerouting = { "nat", NF_INET_PRE_ROUTING, PRIO_DSTNAT };
	static const struct chain_hook filter_output = { "filter", NF_INET_LOCAL_OUT, PRIO_FILTER };
	static const struct chain_hook filter_forward = { "filter", NF_INET_FORWARD, PRIO_FILTER };
	int r;

	r = base_sets(b, f);
	if (r < 0)
		return r;

	r = chain_msg(b, f, NFT_MSG_NEWCHAIN, "reject-chain", NULL);
	if (r >= 0)
		r = rule_reject_tcp(b, f, "reject-chain");
	if (r >= 0)
		r = rule_reject(b, f, "reject-chain");

	/* DNAT of locally originated traffic. After it, whatever still goes
	 * to a VIP has no endpoint: reject it (reject is not allowed in
	 * prerouting on old kernels, hence the filter chains). */
	if (r >= 0)
		r = chain_msg(b, f, NFT_MSG_NEWCHAIN, "nat-output", &nat_output);
	if (r >= 0)
		r = rule_dispatch(b, f, "nat-output");
	if (r >= 0)
		r = chain_msg(b, f, NFT_MSG_NEWCHAIN, "filter-output", &filter_output);
	if (r >= 0)
		r = rules_filter(b, f, "filter-output", cidrs, n_cidrs);
	if (r < 0 || !gateway)
		return r;

	/* The same for traffic routed through the host. */
	r = chain_msg(b, f, NFT_MSG_NEWCHAIN, "nat-prerouting", &nat_prerouting);
	if (r >= 0)
		r = rule_dispatch(b, f, "nat-prerouting");
	if (r >= 0)
		r = chain_msg(b, f, NFT_MSG_NEWCHAIN, "filter-forward", &filter_forward);
	if (r >= 0)
		r = rules_filter(b, f, "filter-forward", cidrs, n_cidrs);
	return r;
}

/* ---- nat-postrouting: masquerade after DNAT ----------------------------- */

/* ip saddr <addr> ct status dnat masquerade */
static int rule_masquerade_link(struct nft_batch *b, enum nft_family f, const uint8_t *addr)
{
	struct rule_builder rb;
	int r;

	r = rule_begin(&rb, f, "nat-postrouting");
	if (r < 0)
		return r;
	/* saddr: 4 bytes at 12 (ip), 16 bytes at 8 (ip6) */
	x_payload(&rb, NFT_PAYLOAD_NETWORK_HEADER, rb.fl->daddr_offset - rb.fl->addr_len,
		  rb.fl->addr_len, NFT_REG_1);
	x_cmp(&rb, NFT_CMP_EQ, addr, rb.fl->addr_len);
	x_ct_status_dnat(&rb);
	rb_expr(&rb, "masq");
	return rule_commit(b, f, &rb, "nat-postrouting",
			   "cluster DNS queries from the kube-annex0 link");
}

/*
 * ct status dnat ct original ip daddr @cluster-ips fib saddr type != local
 *     masquerade
 * A connection another machine routes through this host to a Service
 * address: the endpoint must answer to this host, which undoes the DNAT
 * (the cluster has no route back to that machine). The original
 * destination limits it to our own DNAT (not a container runtime's port
 * forwarding); a local source address leaves this host's own connections
 * alone, so that endpoints see its real address.
 */
static int rule_masquerade_routed(struct nft_batch *b, enum nft_family f)
{
	uint32_t local = RTN_LOCAL;
	struct rule_builder rb;
	struct nftnl_expr *e;
	int r;

	r = rule_begin(&rb, f, "nat-postrouting");
	if (r < 0)
		return r;
	x_ct_status_dnat(&rb);
	e = rb_expr(&rb, "ct");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY,
				   f == NFT_FAMILY_IP ? NFT_CT_DST_IP : NFT_CT_DST_IP6);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
		nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, IP_CT_DIR_ORIGINAL);
	}
	x_lookup(&rb, f, NFT_SET_CLUSTER_IPS, 0, -1);
	e = rb_expr(&rb, "fib");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_SADDR);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
	}
	x_cmp(&rb, NFT_CMP_NEQ, &local, sizeof(local));
	rb_expr(&rb, "masq");
	return rule_commit(b, f, &rb, "nat-postrouting",
			   "traffic routed through this host to a Service");
}

int nft_rs_postrouting(struct nft_batch *b, enum nft_family f, bool gateway,
		       const uint8_t *link_addr)
{
	static const struct chain_hook nat_postrouting = { "nat", NF_INET_POST_ROUTING,
							   PRIO_SRCNAT };
	int r = 0;

	if (!gateway && !link_addr)
		return 0;
	r = chain_msg(b, f, NFT_MSG_NEWCHAIN, "nat-postrouting", &nat_postrouting);
	if (r >= 0 && link_addr)
		r = rule_masquerade_link(b, f, link_addr);
	if (r >= 0 && gateway)
		r = rule_masquerade_routed(b, f);
	return r;
}

/* ---- endpoint-count groups ---------------------------------------------- */

static int lb_add(struct nft_batch *b, enum nft_family f, uint32_t n)
{
	const struct family_layout *fl = &layouts[f];
	const uint32_t key_types[] = { fl->addr_type, NFT_TYPE_INET_PROTOCOL,
				       NFT_TYPE_INET_SERVICE, NFT_TYPE_INTEGER };
	const uint32_t data_types[] = { fl->addr_type, NFT_TYPE_INET_SERVICE };
	const struct set_spec spec = {
		.kind = NFT_SET_BACKENDS,
		.n = n,
		.flags = NFT_SET_MAP,
		.key_type = concat_type(key_types, ARRAY_SIZE(key_types)),
		.key_len = fl->addr_len + 12,
		.data_type = concat_type(data_types, ARRAY_SIZE(data_types)),
		.data_len = fl->addr_len + 4,
	};
	char chain[32];
	int r;

	snprintf(chain, sizeof(chain), "lb-%u", n);
	r = set_add(b, f, &spec);
	if (r < 0)
		return r;
	r = chain_msg(b, f, NFT_MSG_NEWCHAIN, chain, NULL);
	if (r < 0)
		return r;
	return rule_lb(b, f, n, chain);
}

/* Map endpoint-N (slot N of every key with session affinity) and set
 * endpoint-N-clients (who is pinned to it, until when). */
static int slot_add(struct nft_batch *b, enum nft_family f, uint32_t n)
{
	const struct family_layout *fl = &layouts[f];
	const uint32_t client_types[] = { fl->addr_type, fl->addr_type, NFT_TYPE_INET_PROTOCOL,
					  NFT_TYPE_INET_SERVICE };
	const uint32_t data_types[] = { fl->addr_type, NFT_TYPE_INET_SERVICE };
	const struct set_spec endpoints = {
		.kind = NFT_SET_ENDPOINTS,
		.n = n,
		.flags = NFT_SET_MAP,
		.key_type = service_key_type(fl),
		.key_len = fl->addr_len + 8,
		.data_type = concat_type(data_types, ARRAY_SIZE(data_types)),
		.data_len = fl->addr_len + 4,
	};
	const struct set_spec clients = {
		.kind = NFT_SET_CLIENTS,
		.n = n,
		.flags = NFT_SET_EVAL | NFT_SET_TIMEOUT,
		.key_type = concat_type(client_types, ARRAY_SIZE(client_types)),
		.key_len = 2 * fl->addr_len + 8,
		.size = NFT_AFFINITY_CLIENTS_MAX,
	};
	int r;

	r = set_add(b, f, &endpoints);
	if (r >= 0)
		r = set_add(b, f, &clients);
	return r;
}

static int affinity_add(struct nft_batch *b, enum nft_family f, uint32_t n, uint32_t timeout)
{
	char chain[32];
	int r;

	if (n == 0 || n > NFT_MAX_AFFINITY_BACKENDS || timeout == 0)
		return -EINVAL;
	nft_affinity_chain_name(n, timeout, chain, sizeof(chain));
	r = chain_msg(b, f, NFT_MSG_NEWCHAIN, chain, NULL);
	if (r < 0)
		return r;
	return rules_affinity(b, f, n, timeout, chain);
}

int nft_rs_group_add(struct nft_batch *b, enum nft_family f, enum nft_group_kind kind,
		     uint32_t n, uint32_t timeout)
{
	switch (kind) {
	case NFT_GROUP_LB:
		return lb_add(b, f, n);
	case NFT_GROUP_SLOT:
		return slot_add(b, f, n);
	case NFT_GROUP_AFFINITY:
		return affinity_add(b, f, n, timeout);
	default:
		return -EINVAL;
	}
}

static int chain_flush(struct nft_batch *b, enum nft_family f, const char *chain)
{
	_cleanup_(nftnl_rule_freep) struct nftnl_rule *rule = NULL;
	struct nlmsghdr *nlh;

	rule = nftnl_rule_alloc();
	if (!rule)
		return -ENOMEM;
	if (nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, NFT_TABLE_NAME) < 0 ||
	    nftnl_rule_set_str(rule, NFTNL_RULE_CHAIN, chain) < 0)
		return -ENOMEM;
	nlh = nft_batch_msg_start(b, NFT_MSG_DELRULE, f, 0);
	if (!nlh)
		return -ENOMEM;
	nftnl_rule_nlmsg_build_payload(nlh, rule);
	return msg_end(b, NFT_MSG_DELRULE, f, chain);
}

/* The rules hold the maps and sets, so they go first, then the chain. */
static int chain_delete(struct nft_batch *b, enum nft_family f, const char *chain)
{
	int r = chain_flush(b, f, chain);

	if (r < 0)
		return r;
	return chain_msg(b, f, NFT_MSG_DELCHAIN, chain, NULL);
}

int nft_rs_group_delete(struct nft_batch *b, enum nft_family f, enum nft_group_kind kind,
			uint32_t n, uint32_t timeout)
{
	char chain[32];
	int r;

	switch (kind) {
	case NFT_GROUP_LB:
		snprintf(chain, sizeof(chain), "lb-%u", n);
		r = chain_delete(b, f, chain);
		return r < 0 ? r : set_delete(b, f, NFT_SET_BACKENDS, n);
	case NFT_GROUP_SLOT:
		r = set_delete(b, f, NFT_SET_ENDPOINTS, n);
		return r < 0 ? r : set_delete(b, f, NFT_SET_CLIENTS, n);
	case NFT_GROUP_AFFINITY:
		nft_affinity_chain_name(n, timeout, chain, sizeof(chain));
		return chain_delete(b, f, chain);
	default:
		return -EINVAL;
	}
}

/* ---- elements ----------------------------------------------------------- */

static void put_data(struct nlmsghdr *nlh, uint16_t type, const void *data, size_t len)
{
	struct nlattr *nest = mnl_attr_nest_start(nlh, type);

	mnl_attr_put(nlh, NFTA_DATA_VALUE, len, data);
	mnl_attr_nest_end(nlh, nest);
}

static void put_verdict(struct nlmsghdr *nlh, const struct nft_elem *e)
{
	struct nlattr *data, *verdict;
	char chain[32];

	data = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_DATA);
	verdict = mnl_attr_nest_start(nlh, NFTA_DATA_VERDICT);
	if (e->kind == NFT_KIND_DROP) {
		mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE, htonl(NF_DROP));
	} else {
		if (e->kind == NFT_KIND_REJECT)
			snprintf(chain, sizeof(chain), "reject-chain");
		else if (e->timeout)
			nft_affinity_chain_name(e->n, e->timeout, chain, sizeof(chain));
		else
			snprintf(chain, sizeof(chain), "lb-%u", e->n);
		mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE, htonl((uint32_t)NFT_GOTO));
		mnl_attr_put_strz(nlh, NFTA_VERDICT_CHAIN, chain);
	}
	mnl_attr_nest_end(nlh, verdict);
	mnl_attr_nest_end(nlh, data);
}

/* An element comment, as nft stores it: one NUL-terminated TLV. */
static void put_comment(struct nlmsghdr *nlh, const char *comment)
{
	uint8_t buf[2 + 256];
	size_t len = strnlen(comment, 254);

	buf[0] = NFTNL_UDATA_SET_ELEM_COMMENT;
	buf[1] = (uint8_t)(len + 1);
	memcpy(buf + 2, comment, len);
	buf[2 + len] = 0;
	mnl_attr_put(nlh, NFTA_SET_ELEM_USERDATA, len + 3, buf);
}

/* Concatenations are laid out in 32-bit registers: each member padded. */
static size_t key_encode(const struct family_layout *fl, enum nft_set_kind kind,
			 const struct nft_elem *e, uint8_t *buf)
{
	uint16_t port = htons(e->key->port);
	size_t off = fl->addr_len;

	memcpy(buf, e->key->addr, fl->addr_len);
	if (kind == NFT_SET_CLUSTER_IPS)
		return off;
	memset(buf + off, 0, 8);
	buf[off] = e->key->protocol;
	memcpy(buf + off + 4, &port, sizeof(port));
	off += 8;
	if (kind == NFT_SET_BACKENDS) {
		/* numgen's value: host byte order */
		memcpy(buf + off, &e->index, sizeof(e->index));
		off += 4;
	}
	return off;
}

static size_t backend_encode(const struct family_layout *fl, const struct model_backend *be,
			     uint8_t *buf)
{
	uint16_t port = htons(be->port);

	memcpy(buf, be->addr.bytes, fl->addr_len);
	memset(buf + fl->addr_len, 0, 4);
	memcpy(buf + fl->addr_len, &port, sizeof(port));
	return fl->addr_len + 4;
}

static void elem_put(struct nlmsghdr *nlh, const struct family_layout *fl,
		     enum nft_set_kind kind, const struct nft_elem *e, bool del, uint16_t index)
{
	struct nlattr *nest;
	uint8_t buf[64];
	size_t len;

	nest = mnl_attr_nest_start(nlh, index);
	len = key_encode(fl, kind, e, buf);
	put_data(nlh, NFTA_SET_ELEM_KEY, buf, len);
	if (!del) {
		if (kind == NFT_SET_BACKENDS || kind == NFT_SET_ENDPOINTS) {
			len = backend_encode(fl, e->backend, buf);
			put_data(nlh, NFTA_SET_ELEM_DATA, buf, len);
		} else if (kind != NFT_SET_CLUSTER_IPS) {
			put_verdict(nlh, e);
		}
		if (e->comment && *e->comment)
			put_comment(nlh, e->comment);
	}
	mnl_attr_nest_end(nlh, nest);
}

/* One message: as many elements as fit in one 64 KiB attribute nest. */
static int elems_msg(struct nft_batch *b, enum nft_family f, enum nft_set_kind kind, uint32_t n,
		     bool del, const struct nft_elem *elems, size_t count, size_t *done)
{
	const struct family_layout *fl = &layouts[f];
	uint16_t type = del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM;
	struct nft_msg_info info = { .type = type, .family = f, .set_kind = kind, .n = n };
	struct nlmsghdr *nlh;
	struct nlattr *list;
	size_t i = 0;

	nft_set_name(kind, n, info.object, sizeof(info.object));
	/* EXCL: adding what exists means our copy is wrong; fail and rebuild. */
	nlh = nft_batch_msg_start(b, type, f, del ? 0 : NLM_F_CREATE | NLM_F_EXCL);
	if (!nlh)
		return -ENOMEM;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, NFT_TABLE_NAME);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, info.object);
	mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(set_id(f, kind, n)));
	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	for (; i < count; i++) {
		uint32_t mark = nlh->nlmsg_len;

		elem_put(nlh, fl, kind, &elems[i], del, (uint16_t)(i + 1));
		if ((char *)mnl_nlmsg_get_payload_tail(nlh) - (char *)list > UINT16_MAX) {
			nlh->nlmsg_len = mark;
			break;
		}
	}
	if (i == 0)
		return -E2BIG;
	mnl_attr_nest_end(nlh, list);
	info.elems = elems;
	info.n_elems = i;
	*done = i;
	return nft_batch_msg_end(b, &info);
}

int nft_rs_elems(struct nft_batch *b, enum nft_family f, enum nft_set_kind kind, uint32_t n,
		 bool del, const struct nft_elem *elems, size_t count)
{
	size_t off = 0;

	while (off < count) {
		size_t done = 0;
		int r;

		r = elems_msg(b, f, kind, n, del, elems + off, count - off, &done);
		if (r < 0)
			return r;
		off += done;
	}
	return 0;
}

/* ---- describing failures ------------------------------------------------ */

size_t nft_rs_elem_at(const struct nlmsghdr *nlh, uint32_t off)
{
	const struct nlattr *attr, *elem;

	if (!nlh || off >= nlh->nlmsg_len)
		return SIZE_MAX;
	mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg)) {
		size_t i = 0;

		if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(elem, attr) {
			uint32_t start = (uint32_t)((const char *)elem - (const char *)nlh);

			if (off >= start && off < start + elem->nla_len)
				return i;
			i++;
		}
	}
	return SIZE_MAX;
}

static const char *proto_name(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_SCTP:
		return "sctp";
	default:
		return "?";
	}
}

static void elem_describe(const struct nft_msg_info *m, const struct nft_elem *e, char *buf,
			  size_t len)
{
	char vip[INET6_ADDRSTRLEN], be[INET6_ADDRSTRLEN];
	int af = m->family == NFT_FAMILY_IP6 ? AF_INET6 : AF_INET;
	bool add = m->type == NFT_MSG_NEWSETELEM;

	inet_ntop(af, e->key->addr, vip, sizeof(vip));
	switch (m->set_kind) {
	case NFT_SET_CLUSTER_IPS:
		snprintf(buf, len, "%s", vip);
		break;
	case NFT_SET_BACKENDS:
		if (add && e->backend) {
			inet_ntop(af, e->backend->addr.bytes, be, sizeof(be));
			snprintf(buf, len, "%s . %s . %u . %u : %s . %u", vip,
				 proto_name(e->key->protocol), e->key->port, e->index, be,
				 e->backend->port);
		} else {
			snprintf(buf, len, "%s . %s . %u . %u", vip, proto_name(e->key->protocol),
				 e->key->port, e->index);
		}
		break;
	case NFT_SET_ENDPOINTS:
		if (add && e->backend) {
			inet_ntop(af, e->backend->addr.bytes, be, sizeof(be));
			snprintf(buf, len, "%s . %s . %u : %s . %u", vip, proto_name(e->key->protocol),
				 e->key->port, be, e->backend->port);
		} else {
			snprintf(buf, len, "%s . %s . %u", vip, proto_name(e->key->protocol),
				 e->key->port);
		}
		break;
	default:
		snprintf(buf, len, "%s . %s . %u%s%s%s", vip, proto_name(e->key->protocol),
			 e->key->port, e->comment ? " comment \"" : "", e->comment ?: "",
			 e->comment ? "\"" : "");
		break;
	}
}

static const char *msg_verb(uint16_t type)
{
	switch (type) {
	case NFT_MSG_NEWTABLE:
		return "add table";
	case NFT_MSG_DELTABLE:
		return "delete table";
	case NFT_MSG_NEWCHAIN:
		return "add chain";
	case NFT_MSG_DELCHAIN:
		return "delete chain";
	case NFT_MSG_NEWSET:
		return "add set";
	case NFT_MSG_DELSET:
		return "delete set";
	case NFT_MSG_NEWRULE:
		return "add rule to chain";
	case NFT_MSG_DELRULE:
		return "flush chain";
	case NFT_MSG_NEWSETELEM:
		return "add element to";
	case NFT_MSG_DELSETELEM:
		return "delete element from";
	default:
		return "unknown operation on";
	}
}

void nft_rs_describe(const struct nft_msg_info *m, size_t elem_index, char *buf, size_t len)
{
	const char *fam = nft_family_name(m->family);
	char elem[256];

	if (m->type != NFT_MSG_NEWSETELEM && m->type != NFT_MSG_DELSETELEM) {
		snprintf(buf, len, "%s %s %s%s%s", msg_verb(m->type), fam, NFT_TABLE_NAME,
			 *m->object ? " " : "", m->object);
		return;
	}
	if (elem_index >= m->n_elems && m->n_elems == 1)
		elem_index = 0;
	if (elem_index < m->n_elems) {
		elem_describe(m, &m->elems[elem_index], elem, sizeof(elem));
		snprintf(buf, len, "%s %s %s %s { %s }", msg_verb(m->type), fam, NFT_TABLE_NAME,
			 m->object, elem);
	} else {
		snprintf(buf, len, "%s %s %s %s (one of %zu elements)", msg_verb(m->type), fam,
			 NFT_TABLE_NAME, m->object, m->n_elems);
	}
}
