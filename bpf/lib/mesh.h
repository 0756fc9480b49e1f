/* SPDX-License-Identifier: Apache-2.0 */
/* Geneve mesh encapsulation for XDP: room for the outer headers, the next
 * hop (a kept one or the FIB), and stripping them on the way in.  The
 * headers are written and read by include/veil/geneve.h. */
#ifndef VEIL_BPF_MESH_H
#define VEIL_BPF_MESH_H

#include "common.h"
#define VM_LOAD_BYTES(ctx, off, dst, len) bpf_xdp_load_bytes((ctx), (off), (dst), (len))
#include "veil/geneve.h"

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
		__builtin_memcpy(&fib.ipv4_src, osrc + VM_ADDR4_OFF, 4);
		__builtin_memcpy(&fib.ipv4_dst, odst + VM_ADDR4_OFF, 4);
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

/* Recognises Geneve on VM_GENEVE_PORT addressed to one of our underlay
 * addresses and reads the handoff option if present (vm_mesh_parse). */
VM_INLINE int vm_xdp_mesh_parse(struct xdp_md *ctx, const __u8 *our4, __u8 has4, const __u8 *our6,
				__u8 has6, struct vm_mesh_in *m)
{
	return vm_mesh_parse(ctx, XDP_DATA(ctx), XDP_DATA_END(ctx), our4, has4, our6, has6, m);
}

/* Removes the outer headers, leaving an Ethernet header (MACs unset) in
 * front of the inner IP packet. */
VM_INLINE int vm_xdp_decap(struct xdp_md *ctx, const struct vm_mesh_in *m)
{
	void *data, *data_end;
	struct ethhdr *eth;

	if (bpf_xdp_adjust_head(ctx, (int)(m->strip & VM_MESH_STRIP_MASK)))
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
