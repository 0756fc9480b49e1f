// SPDX-License-Identifier: Apache-2.0
/* Per VM, one nftables table in the node's namespace, built with libnftnl
 * and sent in one batch over libmnl (deleting the table removes it all):
 *
 *   table inet veil_<tap> {
 *     chain fwd  { type filter hook forward priority 0;
 *                  oifname <tap> ct state established,related accept
 *                  oifname <tap> drop }          # only replies get in by the kernel;
 *                                                # the mesh's hand-overs come by XDP
 *     chain post { type nat hook postrouting priority 100;
 *                  iifname <tap> oifname != <tap> masquerade }   # the VM's egress
 *   }
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <net/if.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "vmm.h"

static void add_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
}

static void add_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	nftnl_rule_add_expr(r, e);
}

static void add_ifname(struct nftnl_rule *r, uint32_t key, uint32_t op, const char *name)
{
	char buf[IFNAMSIZ] = { 0 };
	snprintf(buf, sizeof(buf), "%s", name);
	add_meta(r, key);
	add_cmp(r, op, buf, sizeof(buf));
}

static void add_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, verdict);
	nftnl_rule_add_expr(r, e);
}

static void add_ct_established(struct nftnl_rule *r)
{
	/* ct state & (established | related) != 0 */
	uint32_t mask = 2 | 4, zero = 0;
	struct nftnl_expr *e = nftnl_expr_alloc("ct");
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
	e = nftnl_expr_alloc("bitwise");
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
	nftnl_rule_add_expr(r, e);
	add_cmp(r, NFT_CMP_NEQ, &zero, sizeof(zero));
}

static struct nftnl_rule *rule(const char *table, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

static struct nftnl_chain *base_chain(const char *table, const char *name, const char *type, uint32_t hook,
				      int32_t prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	return c;
}

/* Sends the batch in buf and reads every answer; the first error wins. */
static int send_batch(struct mnl_nlmsg_batch *b, uint32_t first_seq, uint32_t last_seq, int ignore, char *err,
		      size_t errlen)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "nftables: netlink: %s", strerror(errno));
		if (nl)
			mnl_socket_close(nl);
		return -1;
	}
	int rc = 0;
	if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0) {
		snprintf(err, errlen, "nftables: send: %s", strerror(errno));
		rc = -1;
	}
	/* one answer per message (ACK or error); an error ends the batch */
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t want = last_seq - first_seq + 1, got = 0;
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (!rc && got < want) {
		int n = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n <= 0) {
			snprintf(err, errlen, "nftables: receive: %s", n ? strerror(errno) : "no answer");
			rc = -1;
			break;
		}
		for (struct nlmsghdr *m = (struct nlmsghdr *)buf; mnl_nlmsg_ok(m, n); m = mnl_nlmsg_next(m, &n)) {
			if (m->nlmsg_type != NLMSG_ERROR)
				continue;
			got++;
			int e = -((struct nlmsgerr *)mnl_nlmsg_get_payload(m))->error;
			if (e && e != ignore) {
				snprintf(err, errlen, "nftables: message %u of the batch: %s", m->nlmsg_seq - first_seq + 1,
					 strerror(e));
				rc = -1;
				break;
			}
			if (e)
				got = want; /* the ignored error ends the batch */
		}
	}
	mnl_socket_close(nl);
	return rc;
}

static void table_name(const char *tap, char *out, size_t len)
{
	snprintf(out, len, "veil_%s", tap);
}

int ag_nft_vm_del(const char *tap, char *err, size_t errlen)
{
	char tname[64], buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = (uint32_t)time(NULL), first;
	table_name(tap, tname, sizeof(tname));
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, sizeof(buf));
	nftnl_batch_begin(mnl_nlmsg_batch_current(b), seq++);
	mnl_nlmsg_batch_next(b);
	first = seq;
	struct nftnl_table *t = nftnl_table_alloc();
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, tname);
	struct nlmsghdr *h = nftnl_table_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_DELTABLE, NFPROTO_INET,
							 NLM_F_ACK, seq++);
	nftnl_table_nlmsg_build_payload(h, t);
	nftnl_table_free(t);
	mnl_nlmsg_batch_next(b);
	nftnl_batch_end(mnl_nlmsg_batch_current(b), seq);
	mnl_nlmsg_batch_next(b);
	int rc = send_batch(b, first, first, ENOENT, err, errlen);
	mnl_nlmsg_batch_stop(b);
	return rc;
}

int ag_nft_vm_add(const char *tap, char *err, size_t errlen)
{
	char tname[64];
	static char buf[1 << 16];
	uint32_t seq = (uint32_t)time(NULL) ^ 0x5a5a0000, first;
	table_name(tap, tname, sizeof(tname));
	ag_nft_vm_del(tap, err, errlen); /* start clean (an agent restart mid-launch) */

	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, sizeof(buf));
	nftnl_batch_begin(mnl_nlmsg_batch_current(b), seq++);
	mnl_nlmsg_batch_next(b);
	first = seq;

	struct nftnl_table *t = nftnl_table_alloc();
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, tname);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	struct nlmsghdr *h = nftnl_table_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWTABLE, NFPROTO_INET,
							 NLM_F_CREATE | NLM_F_ACK, seq++);
	nftnl_table_nlmsg_build_payload(h, t);
	nftnl_table_free(t);
	mnl_nlmsg_batch_next(b);

	struct nftnl_chain *chains[2] = {
		base_chain(tname, "fwd", "filter", NF_INET_FORWARD, 0),
		base_chain(tname, "post", "nat", NF_INET_POST_ROUTING, 100),
	};
	for (int i = 0; i < 2; i++) {
		h = nftnl_chain_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWCHAIN, NFPROTO_INET,
						NLM_F_CREATE | NLM_F_ACK, seq++);
		nftnl_chain_nlmsg_build_payload(h, chains[i]);
		nftnl_chain_free(chains[i]);
		mnl_nlmsg_batch_next(b);
	}

	struct nftnl_rule *rules[3];
	rules[0] = rule(tname, "fwd");
	add_ifname(rules[0], NFT_META_OIFNAME, NFT_CMP_EQ, tap);
	add_ct_established(rules[0]);
	add_verdict(rules[0], NF_ACCEPT);
	rules[1] = rule(tname, "fwd");
	add_ifname(rules[1], NFT_META_OIFNAME, NFT_CMP_EQ, tap);
	add_verdict(rules[1], NF_DROP);
	rules[2] = rule(tname, "post");
	add_ifname(rules[2], NFT_META_IIFNAME, NFT_CMP_EQ, tap);
	add_ifname(rules[2], NFT_META_OIFNAME, NFT_CMP_NEQ, tap);
	nftnl_rule_add_expr(rules[2], nftnl_expr_alloc("masq"));
	for (int i = 0; i < 3; i++) {
		h = nftnl_rule_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWRULE, NFPROTO_INET,
					       NLM_F_APPEND | NLM_F_CREATE | NLM_F_ACK, seq++);
		nftnl_rule_nlmsg_build_payload(h, rules[i]);
		nftnl_rule_free(rules[i]);
		mnl_nlmsg_batch_next(b);
	}
	uint32_t last = seq - 1;
	nftnl_batch_end(mnl_nlmsg_batch_current(b), seq);
	mnl_nlmsg_batch_next(b);
	err[0] = 0;
	int rc = send_batch(b, first, last, 0, err, errlen);
	mnl_nlmsg_batch_stop(b);
	return rc;
}
