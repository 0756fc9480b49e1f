/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Geneve mesh encapsulation (docs/wire-formats.md), written and read in one
 * place for every sender and receiver: the gateway's XDP and TC programs,
 * the node's TC program and the userspace fast path.
 *
 * Reading the options needs the environment's byte loader: the includer
 * defines VM_LOAD_BYTES(ctx, off, dst, len) (0 on success) before including
 * this header when it uses vm_mesh_parse (bpf_xdp_load_bytes in XDP, a
 * bounded copy in userspace).
 */
#ifndef VEIL_GENEVE_H
#define VEIL_GENEVE_H

#include "pkt.h"

/* Geneve header fields (RFC 8926 3.4) */
#define VM_GENEVE_VER_SHIFT    6      /* ver_optlen: version in the top two bits (0) */
#define VM_GENEVE_OPTLEN_MASK  0x3f   /* ver_optlen: the options' length in 4-byte words */
#define VM_GENEVE_OPT_LEN_MASK 0x1f   /* an option's len: its body in 4-byte words */
#define VM_GENEVE_OPTS_MAX     4      /* options walked at most: we only ever send one */
/* Bounds vm_mesh_in.strip for the verifier (it is at most 40 + 8 + 8 + 63 * 4). */
#define VM_MESH_STRIP_MASK     0x3ff

/* The one option a mesh packet carries, if any (vm_geneve_write's opt). */
#define VM_GNV_NO_OPT     0
#define VM_GNV_HANDOFF    1   /* the handoff option (ho) */
#define VM_GNV_RST_TAKEN  2   /* the RST verdict, no body */

VM_INLINE __u32 vm_geneve_opt_len(int opt)
{
	return opt == VM_GNV_HANDOFF ? VM_HANDOFF_OPT_LEN : opt == VM_GNV_RST_TAKEN ? VM_RST_TAKEN_OPT_LEN : 0;
}

/* Bytes of outer IP + UDP + Geneve [+ option] for an outer family. */
VM_INLINE __u32 vm_geneve_push_len(__u8 ofamily, int opt)
{
	return VM_L3_HLEN(ofamily) + VM_UDP_HLEN + VM_GENEVE_HLEN + vm_geneve_opt_len(opt);
}

/* Word i of an outer address (osrc, odst: 16 bytes, IPv4 mapped), read from
 * a 4-byte aligned place (every caller's: struct gw_config, node_config,
 * flow_val, conn_val), and copied into the packet whatever its alignment.
 * In BPF one 32-bit load and store each (packet stores need no alignment on
 * the hosts the programs run on): clang copies a __u8 array it cannot prove
 * aligned byte by byte, a load and a store per byte.  Elsewhere memcpy,
 * which compilers make one load whatever the alignment. */
#ifdef __bpf__
typedef __u32 __attribute__((may_alias, aligned(4))) vm_gnv_u32;
typedef __u64 __attribute__((may_alias, aligned(8))) vm_gnv_u64;
#define VM_GNV_W32(p, i) (((const vm_gnv_u32 *)(p))[i])
#define VM_GNV_COPY32(dst, src, i) (((vm_gnv_u32 *)(dst))[i] = VM_GNV_W32((src), (i)))
#define VM_GNV_ST64(dst, v) (*(vm_gnv_u64 *)(void *)(dst) = (v))
#define VM_GNV_ST32(dst, v) (*(vm_gnv_u32 *)(void *)(dst) = (v))
#else
#define VM_GNV_COPY32(dst, src, i) __builtin_memcpy((__u8 *)(dst) + 4 * (i), (const __u8 *)(src) + 4 * (i), 4)
#define VM_GNV_ST64(dst, v) do { __u64 v_ = (v); __builtin_memcpy((dst), &v_, 8); } while (0)
#define VM_GNV_ST32(dst, v) do { __u32 v_ = (v); __builtin_memcpy((dst), &v_, 4); } while (0)
#endif
/* vm_geneve_write stores its headers as whole 64- and 32-bit words composed
 * in registers (one store each instead of one per field: ~1 ns of every
 * established packet, veil-bench-micro): the words' bytes as a
 * little-endian host stores them. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "vm_geneve_write composes little-endian words");

/* Writes the Ethernet type, outer IP, UDP, Geneve and its option (opt:
 * VM_GNV_*; the handoff option's body is *ho) of a mesh packet starting at
 * eth, whose inner IP packet (inner_proto: VM_GENEVE_PROTO_*) of inner_len
 * bytes follows them; the MACs are the caller's.  osrc and odst at 4-byte
 * aligned places (VM_GNV_COPY32).
 * Every write is bounded by end.  0, or -1 when the headers would not fit
 * before end. */
VM_INLINE int vm_geneve_write(void *eth_, void *end, __u8 ofamily, const __u8 *osrc, const __u8 *odst,
			      __u16 inner_proto, __u32 inner_len, int opt, const struct vm_handoff *ho, __u16 sport)
{
	struct vm_eth *eth = eth_;
	__u32 ol3 = VM_L3_HLEN(ofamily);
	__u32 optlen = vm_geneve_opt_len(opt);
	__u32 push = ol3 + VM_UDP_HLEN + VM_GENEVE_HLEN + optlen;
	struct vm_udp *udp;
	struct vm_geneve *g;

	if ((void *)(eth + 1) > end)
		return -1;
	if (ofamily == VM_AF_INET) {
		struct vm_ip4 *ip = (void *)(eth + 1);
		__u16 tot = vm_htons(push + inner_len);
		__u32 sa, da;

		if ((void *)(ip + 1) + VM_UDP_HLEN + VM_GENEVE_HLEN > end)
			return -1;
#ifdef __bpf__
		sa = VM_GNV_W32(osrc + VM_ADDR4_OFF, 0);   /* one load each (VM_GNV_COPY32) */
		da = VM_GNV_W32(odst + VM_ADDR4_OFF, 0);
#else
		__builtin_memcpy(&sa, osrc + VM_ADDR4_OFF, 4);
		__builtin_memcpy(&da, odst + VM_ADDR4_OFF, 4);
#endif
		eth->proto = vm_htons(VM_ETH_P_IP);
		/* ver_ihl, tos, tot_len, id | frag_off (DF: the mesh MTU is
		 * planned, never fragmented) */
		VM_GNV_ST64(ip, (__u64)VM_IP4_VER_IHL | (__u64)tot << 16 | (__u64)vm_htons(VM_IP4_DF) << 48);
		/* vm_ip4_csum's sum of the header's 16-bit words as they lie in
		 * memory, from the values composed rather than read back: the
		 * same bytes */
		__u16 check = ~vm_csum_fold((__u64)vm_htons(VM_IP4_VER_IHL << 8) + tot + vm_htons(VM_IP4_DF) +
					    vm_htons(VM_IP_TTL << 8 | VM_IPPROTO_UDP) + (sa & 0xffff) + (sa >> 16) +
					    (da & 0xffff) + (da >> 16));
		/* ttl, protocol, check | saddr; daddr */
		VM_GNV_ST64((__u8 *)ip + 8, (__u64)VM_IP_TTL | (__u64)VM_IPPROTO_UDP << 8 | (__u64)check << 16 |
						    (__u64)sa << 32);
		VM_GNV_ST32((__u8 *)ip + 16, da);
		udp = (void *)(ip + 1);
	} else {
		struct vm_ip6 *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) + VM_UDP_HLEN + VM_GENEVE_HLEN > end)
			return -1;
		eth->proto = vm_htons(VM_ETH_P_IPV6);
		/* ver_tc_fl | payload_len, nexthdr, hop_limit */
		VM_GNV_ST64(ip6, (__u64)vm_htonl(VM_IP6_VER_WORD) | (__u64)vm_htons(push - VM_IP6_HLEN + inner_len) << 32 |
					 (__u64)VM_IPPROTO_UDP << 48 | (__u64)VM_IP_TTL << 56);
		for (int i = 0; i < 4; i++) {
			VM_GNV_COPY32(ip6->saddr, osrc, i);
			VM_GNV_COPY32(ip6->daddr, odst, i);
		}
		udp = (void *)(ip6 + 1);
	}
	if ((void *)(udp + 1) + VM_GENEVE_HLEN > end)
		return -1;
	/* source, dest | len, check (zero for tunnels: RFC 6935/6936) */
	VM_GNV_ST64(udp, (__u64)vm_htons(sport) | (__u64)vm_htons(VM_GENEVE_PORT) << 16 |
				 (__u64)vm_htons(push - ol3 + inner_len) << 32);
	g = (void *)(udp + 1);
	/* ver_optlen, flags, proto | vni, reserved */
	VM_GNV_ST64(g, (__u64)(optlen / 4) | (__u64)vm_htons(inner_proto) << 16);
	if (opt == VM_GNV_RST_TAKEN) {
		struct vm_geneve_opt *o = (void *)(g + 1);
		if ((void *)(o + 1) > end)
			return -1;
		VM_GNV_ST32(o, (__u32)vm_htons(VM_OPT_CLASS) | (__u32)VM_OPT_RST_TAKEN << 16);
	} else if (opt == VM_GNV_HANDOFF) {
		struct vm_geneve_opt *o = (void *)(g + 1);
		if ((void *)(o + 1) + sizeof(*ho) > end)
			return -1;
		/* opt_class, type, len */
		VM_GNV_ST32(o, (__u32)vm_htons(VM_OPT_CLASS) | (__u32)VM_OPT_HANDOFF << 16 | (__u32)(sizeof(*ho) / 4) << 24);
		/* as the six 32-bit words it is (4-byte aligned in the flow):
		 * clang copies it byte by byte otherwise, 48 instructions of
		 * every packet that carries the option */
		_Static_assert(sizeof(*ho) % 4 == 0, "the handoff option is whole words");
		VM_UNROLL
		for (int i = 0; i < (int)(sizeof(*ho) / 4); i++)
			VM_GNV_COPY32(o + 1, ho, i);
	}
	return 0;
}

/* What the outer headers of a mesh packet told us. */
struct vm_mesh_in {
	__u8 ofamily;
	__u8 ifamily;
	__u8 has_handoff;
	__u8 rst_taken;           /* the gateway's VM_OPT_RST_TAKEN */
	__u32 strip;              /* bytes between the outer Ethernet header and the inner IP */
	__u8 osrc[16];
	__u8 peer_mac[6];         /* the L2 neighbour the packet came from */
	__u8 our_mac[6];
	struct vm_handoff ho;
};

enum { VM_MESH_OK = 0, VM_MESH_NOT_OURS, VM_MESH_MALFORMED };

/* The inner packet of a Geneve frame in [data, data_end), whoever it is
 * addressed to: for a receiver that must steer a frame before judging it
 * (the DPDK workers' hand-over by flow).  VM_MESH_OK with m->ofamily,
 * m->ifamily and m->strip, or VM_MESH_NOT_OURS. */
VM_INLINE int vm_geneve_locate(void *data, void *data_end, struct vm_mesh_in *m)
{
	struct vm_eth *eth = data;
	struct vm_udp *udp;
	struct vm_geneve *g;
	__u32 ol3;

	if ((void *)(eth + 1) > data_end)
		return VM_MESH_NOT_OURS;
	if (eth->proto == vm_htons(VM_ETH_P_IP)) {
		struct vm_ip4 *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end || ip->protocol != VM_IPPROTO_UDP || ip->ver_ihl != VM_IP4_VER_IHL)
			return VM_MESH_NOT_OURS;
		m->ofamily = VM_AF_INET;
		ol3 = VM_IP4_HLEN;
	} else if (eth->proto == vm_htons(VM_ETH_P_IPV6)) {
		struct vm_ip6 *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != VM_IPPROTO_UDP || (*(const __u8 *)ip6 >> 4) != 6)
			return VM_MESH_NOT_OURS;
		m->ofamily = VM_AF_INET6;
		ol3 = VM_IP6_HLEN;
	} else {
		return VM_MESH_NOT_OURS;
	}
	udp = (void *)((__u8 *)eth + VM_ETH_HLEN + ol3);
	g = (void *)(udp + 1);
	if ((void *)(g + 1) > data_end || udp->dest != vm_htons(VM_GENEVE_PORT))
		return VM_MESH_NOT_OURS;
	if (g->proto == vm_htons(VM_GENEVE_PROTO_IP4))
		m->ifamily = VM_AF_INET;
	else if (g->proto == vm_htons(VM_GENEVE_PROTO_IP6))
		m->ifamily = VM_AF_INET6;
	else
		return VM_MESH_NOT_OURS;
	m->strip = ol3 + VM_UDP_HLEN + VM_GENEVE_HLEN + (g->ver_optlen & VM_GENEVE_OPTLEN_MASK) * 4;
	return VM_MESH_OK;
}

#ifdef VM_LOAD_BYTES
/* Recognises Geneve on VM_GENEVE_PORT addressed to one of our underlay
 * addresses (a frame in [data, data_end) of len bytes, the environment's
 * ctx for VM_LOAD_BYTES) and reads the handoff option if present. */
VM_INLINE int vm_mesh_parse(void *ctx, void *data, void *data_end, const __u8 *our4, __u8 has4,
			    const __u8 *our6, __u8 has6, struct vm_mesh_in *m)
{
	struct vm_eth *eth = data;
	struct vm_udp *udp;
	struct vm_geneve *g;
	__u32 ol3, optlen;
	__u8 dst[16];

	if ((void *)(eth + 1) > data_end)
		return VM_MESH_NOT_OURS;
	if (eth->proto == vm_htons(VM_ETH_P_IP)) {
		struct vm_ip4 *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return VM_MESH_NOT_OURS;
		if (ip->protocol != VM_IPPROTO_UDP || !has4)
			return VM_MESH_NOT_OURS;
		vm_addr_set4(dst, ip->daddr);
		if (!vm_addr_eq(dst, our4))
			return VM_MESH_NOT_OURS;
		if (ip->ver_ihl != VM_IP4_VER_IHL || (ip->frag_off & vm_htons(VM_IP4_FRAG_MASK)))
			return VM_MESH_MALFORMED;
		m->ofamily = VM_AF_INET;
		vm_addr_set4(m->osrc, ip->saddr);
		ol3 = VM_IP4_HLEN;
	} else if (eth->proto == vm_htons(VM_ETH_P_IPV6)) {
		struct vm_ip6 *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return VM_MESH_NOT_OURS;
		if (ip6->nexthdr != VM_IPPROTO_UDP || !has6)
			return VM_MESH_NOT_OURS;
		__builtin_memcpy(dst, ip6->daddr, 16);
		if (!vm_addr_eq(dst, our6))
			return VM_MESH_NOT_OURS;
		if ((*(const __u8 *)ip6 >> 4) != 6)
			return VM_MESH_MALFORMED;
		m->ofamily = VM_AF_INET6;
		__builtin_memcpy(m->osrc, ip6->saddr, 16);
		ol3 = VM_IP6_HLEN;
	} else {
		return VM_MESH_NOT_OURS;
	}
	udp = (void *)((__u8 *)eth + VM_ETH_HLEN + ol3);
	if ((void *)(udp + 1) > data_end)
		return VM_MESH_NOT_OURS;
	if (udp->dest != vm_htons(VM_GENEVE_PORT))
		return VM_MESH_NOT_OURS;
	g = (void *)(udp + 1);
	if ((void *)(g + 1) > data_end)
		return VM_MESH_MALFORMED;
	if ((g->ver_optlen >> VM_GENEVE_VER_SHIFT) != 0)
		return VM_MESH_MALFORMED;
	optlen = (g->ver_optlen & VM_GENEVE_OPTLEN_MASK) * 4;
	if (g->proto == vm_htons(VM_GENEVE_PROTO_IP4))
		m->ifamily = VM_AF_INET;
	else if (g->proto == vm_htons(VM_GENEVE_PROTO_IP6))
		m->ifamily = VM_AF_INET6;
	else
		return VM_MESH_MALFORMED;
	__builtin_memcpy(m->peer_mac, eth->src, 6);
	__builtin_memcpy(m->our_mac, eth->dst, 6);
	m->strip = ol3 + VM_UDP_HLEN + VM_GENEVE_HLEN + optlen;
	m->has_handoff = 0;
	m->rst_taken = 0;

	/* Walk the options. */
	__u32 off = VM_ETH_HLEN + ol3 + VM_UDP_HLEN + VM_GENEVE_HLEN;
	__u32 oend = off + optlen;
	for (int i = 0; i < VM_GENEVE_OPTS_MAX; i++) {
		struct vm_geneve_opt o;
		__u32 blen;

		if (off >= oend)
			break;
		if (off + sizeof(o) > oend || VM_LOAD_BYTES(ctx, off, &o, sizeof(o)))
			return VM_MESH_MALFORMED;
		blen = (o.len & VM_GENEVE_OPT_LEN_MASK) * 4;
		if (off + sizeof(o) + blen > oend)
			return VM_MESH_MALFORMED;
		if (o.opt_class == vm_htons(VM_OPT_CLASS) && o.type == VM_OPT_HANDOFF) {
			if (blen != sizeof(m->ho) ||
			    VM_LOAD_BYTES(ctx, off + sizeof(o), &m->ho, sizeof(m->ho)))
				return VM_MESH_MALFORMED;
			m->has_handoff = 1;
		} else if (o.opt_class == vm_htons(VM_OPT_CLASS) && o.type == VM_OPT_RST_TAKEN) {
			if (blen)
				return VM_MESH_MALFORMED;
			m->rst_taken = 1;
		}
		off += sizeof(o) + blen;
	}
	if (off != oend)
		return VM_MESH_MALFORMED;
	if (VM_ETH_HLEN + m->strip + VM_IP4_HLEN > (__u32)((__u8 *)data_end - (__u8 *)data))
		return VM_MESH_MALFORMED;
	return VM_MESH_OK;
}
#endif /* VM_LOAD_BYTES */

#endif /* VEIL_GENEVE_H */
