/* SPDX-License-Identifier: Apache-2.0 */
/* Geneve mesh encapsulation for XDP: push outer headers, pick the next hop
 * with the FIB, and parse/strip them on the way in.  Layout: docs/wire-formats.md */
#ifndef VEIL_BPF_MESH_H
#define VEIL_BPF_MESH_H

#include "common.h"

#define VM_GENEVE_HLEN 8
#define VM_UDP_HLEN    8

/* Pushes Ethernet(MACs unset)/outer IP/UDP/Geneve[/handoff option] in front
 * of the inner IP packet that follows the current Ethernet header. */
VM_INLINE int vm_xdp_encap(struct xdp_md *ctx, __u8 ofamily, const __u8 *osrc, const __u8 *odst,
			   __u8 ifamily, const struct vm_handoff *ho, __u16 sport)
{
	__u32 ol3 = ofamily == VM_AF_INET ? 20 : 40;
	__u32 optlen = ho ? VM_HANDOFF_OPT_LEN : 0;
	__u32 push = ol3 + VM_UDP_HLEN + VM_GENEVE_HLEN + optlen;
	__u32 inner_len;
	void *data, *data_end;
	struct ethhdr *eth;
	struct udphdr *udp;
	struct vm_geneve *g;

	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	inner_len = (__u32)(data_end - data) - ETH_HLEN;
	if (bpf_xdp_adjust_head(ctx, -(int)push))
		return -1;
	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	eth = data;
	if ((void *)eth + ETH_HLEN + 20 + VM_UDP_HLEN + VM_GENEVE_HLEN > data_end)
		return -1;

	if (ofamily == VM_AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);
		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0;
		ip->tot_len = bpf_htons(push + inner_len);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000); /* DF: the mesh MTU is planned, never fragmented */
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP_;
		__builtin_memcpy(&ip->saddr, osrc + 12, 4);
		__builtin_memcpy(&ip->daddr, odst + 12, 4);
		ip->check = vm_ip4_csum(ip);
		udp = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) + VM_UDP_HLEN + VM_GENEVE_HLEN > data_end)
			return -1;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__u32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(push - 40 + inner_len);
		ip6->nexthdr = IPPROTO_UDP_;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, osrc, 16);
		__builtin_memcpy(&ip6->daddr, odst, 16);
		udp = (void *)(ip6 + 1);
	}
	if ((void *)(udp + 1) + VM_GENEVE_HLEN > data_end)
		return -1;
	udp->source = bpf_htons(sport);
	udp->dest = bpf_htons(VM_GENEVE_PORT);
	udp->len = bpf_htons(push - ol3 + inner_len);
	udp->check = 0; /* zero UDP checksum for tunnels: RFC 6935/6936 */
	g = (void *)(udp + 1);
	g->ver_optlen = optlen / 4;
	g->flags = 0;
	g->proto = bpf_htons(ifamily == VM_AF_INET ? VM_GENEVE_PROTO_IP4 : VM_GENEVE_PROTO_IP6);
	g->vni[0] = g->vni[1] = g->vni[2] = 0;
	g->reserved = 0;
	if (ho) {
		struct vm_geneve_opt *o = (void *)(g + 1);
		if ((void *)(o + 1) + sizeof(*ho) > data_end)
			return -1;
		o->opt_class = bpf_htons(VM_OPT_CLASS);
		o->type = VM_OPT_HANDOFF;
		o->len = sizeof(*ho) / 4;
		__builtin_memcpy((void *)(o + 1), ho, sizeof(*ho));
	}
	return 0;
}

/* Fills in the MACs for the outer destination from the FIB and returns the
 * XDP verdict; *why is 0 on success, else the failing fib return code. */
VM_INLINE int vm_xdp_fib_send(struct xdp_md *ctx, __u8 ofamily, const __u8 *osrc, const __u8 *odst,
			      int *why)
{
	struct bpf_fib_lookup fib = {};
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	struct ethhdr *eth = data;
	int rc;

	if ((void *)(eth + 1) > data_end) {
		*why = -1;
		return XDP_DROP;
	}
	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = IPPROTO_UDP_;
	fib.tot_len = (__u16)(data_end - data) - ETH_HLEN;
	if (ofamily == VM_AF_INET) {
		fib.family = AF_INET_;
		__builtin_memcpy(&fib.ipv4_src, osrc + 12, 4);
		__builtin_memcpy(&fib.ipv4_dst, odst + 12, 4);
	} else {
		fib.family = AF_INET6_;
		__builtin_memcpy(fib.ipv6_src, osrc, 16);
		__builtin_memcpy(fib.ipv6_dst, odst, 16);
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		*why = rc;
		return XDP_DROP;
	}
	*why = 0;
	__builtin_memcpy(eth->h_dest, fib.dmac, 6);
	__builtin_memcpy(eth->h_source, fib.smac, 6);
	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib.ifindex, 0);
}

/* The same as vm_xdp_fib_send, from a next hop the daemon keeps (no FIB
 * lookup): MACs, the interface, and the MTU check the FIB would make. */
VM_INLINE int vm_xdp_hop_send(struct xdp_md *ctx, const struct next_hop_val *nh, int *why)
{
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end) {
		*why = -1;
		return XDP_DROP;
	}
	if ((__u32)(data_end - data) - ETH_HLEN > nh->mtu) {
		*why = BPF_FIB_LKUP_RET_FRAG_NEEDED;
		return XDP_DROP;
	}
	*why = 0;
	__builtin_memcpy(eth->h_dest, nh->dmac, 6);
	__builtin_memcpy(eth->h_source, nh->smac, 6);
	if (nh->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(nh->ifindex, 0);
}

/* What the outer headers of a mesh packet told us. */
struct vm_mesh_in {
	__u8 ofamily;
	__u8 ifamily;
	__u8 has_handoff;
	__u8 pad;
	__u32 strip;              /* bytes between the outer Ethernet header and the inner IP */
	__u8 osrc[16];
	__u8 peer_mac[6];         /* the L2 neighbour the packet came from */
	__u8 our_mac[6];
	struct vm_handoff ho;
};

enum { VM_MESH_OK = 0, VM_MESH_NOT_OURS, VM_MESH_MALFORMED };

/* Recognises Geneve on VM_GENEVE_PORT addressed to one of our underlay
 * addresses and reads the handoff option if present. */
VM_INLINE int vm_xdp_mesh_parse(struct xdp_md *ctx, const __u8 *our4, __u8 has4, const __u8 *our6,
				__u8 has6, struct vm_mesh_in *m)
{
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	struct ethhdr *eth = data;
	struct udphdr *udp;
	struct vm_geneve *g;
	__u32 ol3, optlen;
	__u8 dst[16];

	if ((void *)(eth + 1) > data_end)
		return VM_MESH_NOT_OURS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return VM_MESH_NOT_OURS;
		if (ip->protocol != IPPROTO_UDP_ || !has4)
			return VM_MESH_NOT_OURS;
		vm_addr_set4(dst, ip->daddr);
		if (!vm_addr_eq(dst, our4))
			return VM_MESH_NOT_OURS;
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return VM_MESH_MALFORMED;
		m->ofamily = VM_AF_INET;
		vm_addr_set4(m->osrc, ip->saddr);
		ol3 = 20;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return VM_MESH_NOT_OURS;
		if (ip6->nexthdr != IPPROTO_UDP_ || !has6)
			return VM_MESH_NOT_OURS;
		__builtin_memcpy(dst, &ip6->daddr, 16);
		if (!vm_addr_eq(dst, our6))
			return VM_MESH_NOT_OURS;
		m->ofamily = VM_AF_INET6;
		__builtin_memcpy(m->osrc, &ip6->saddr, 16);
		ol3 = 40;
	} else {
		return VM_MESH_NOT_OURS;
	}
	udp = (void *)eth + ETH_HLEN + ol3;
	if ((void *)(udp + 1) > data_end)
		return VM_MESH_NOT_OURS;
	if (udp->dest != bpf_htons(VM_GENEVE_PORT))
		return VM_MESH_NOT_OURS;
	g = (void *)(udp + 1);
	if ((void *)(g + 1) > data_end)
		return VM_MESH_MALFORMED;
	if ((g->ver_optlen >> 6) != 0)
		return VM_MESH_MALFORMED;
	optlen = (g->ver_optlen & 0x3f) * 4;
	if (g->proto == bpf_htons(VM_GENEVE_PROTO_IP4))
		m->ifamily = VM_AF_INET;
	else if (g->proto == bpf_htons(VM_GENEVE_PROTO_IP6))
		m->ifamily = VM_AF_INET6;
	else
		return VM_MESH_MALFORMED;
	__builtin_memcpy(m->peer_mac, eth->h_source, 6);
	__builtin_memcpy(m->our_mac, eth->h_dest, 6);
	m->strip = ol3 + VM_UDP_HLEN + VM_GENEVE_HLEN + optlen;
	m->has_handoff = 0;

	/* Walk the options (at most 4: we only ever send one). */
	__u32 off = ETH_HLEN + ol3 + VM_UDP_HLEN + VM_GENEVE_HLEN;
	__u32 oend = off + optlen;
	for (int i = 0; i < 4; i++) {
		struct vm_geneve_opt o;
		__u32 blen;

		if (off >= oend)
			break;
		if (off + sizeof(o) > oend || bpf_xdp_load_bytes(ctx, off, &o, sizeof(o)))
			return VM_MESH_MALFORMED;
		blen = (o.len & 0x1f) * 4;
		if (off + sizeof(o) + blen > oend)
			return VM_MESH_MALFORMED;
		if (o.opt_class == bpf_htons(VM_OPT_CLASS) && o.type == VM_OPT_HANDOFF) {
			if (blen != sizeof(m->ho) ||
			    bpf_xdp_load_bytes(ctx, off + sizeof(o), &m->ho, sizeof(m->ho)))
				return VM_MESH_MALFORMED;
			m->has_handoff = 1;
		}
		off += sizeof(o) + blen;
	}
	if (off != oend)
		return VM_MESH_MALFORMED;
	if (ETH_HLEN + m->strip + 20 > (__u32)(data_end - data))
		return VM_MESH_MALFORMED;
	return VM_MESH_OK;
}

/* Removes the outer headers, leaving an Ethernet header (MACs unset) in
 * front of the inner IP packet. */
VM_INLINE int vm_xdp_decap(struct xdp_md *ctx, const struct vm_mesh_in *m)
{
	void *data, *data_end;
	struct ethhdr *eth;

	if (bpf_xdp_adjust_head(ctx, (int)(m->strip & 0x3ff)))
		return -1;
	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	eth->h_proto = bpf_htons(m->ifamily == VM_AF_INET ? ETH_P_IP : ETH_P_IPV6);
	return 0;
}

/* Takes in a mesh packet: recognised (Geneve to one of our underlay
 * addresses), stripped, and its inner IP/TCP headers parsed into p, behind a
 * fresh Ethernet header.  VM_MESH_NOT_OURS leaves the packet untouched. */
VM_INLINE int vm_xdp_mesh_take(struct xdp_md *ctx, const __u8 *our4, __u8 has4, const __u8 *our6,
			       __u8 has6, struct vm_mesh_in *m, struct vm_pkt *p)
{
	void *data, *data_end;
	struct ethhdr *eth;
	int rc = vm_xdp_mesh_parse(ctx, our4, has4, our6, has6, m);

	if (rc != VM_MESH_OK)
		return rc;
	if (vm_xdp_decap(ctx, m))
		return VM_MESH_MALFORMED;
	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end ||
	    vm_parse_ip_tcp(data, data_end, (__u32)(data_end - data), ETH_HLEN, eth->h_proto, p) != VM_PARSE_OK)
		return VM_MESH_MALFORMED;
	return VM_MESH_OK;
}

#endif /* VEIL_BPF_MESH_H */
