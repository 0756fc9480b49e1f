/* SPDX-License-Identifier: Apache-2.0 */
/* What every veilmesh BPF program includes: the packet library
 * (include/veil/pkt.h: headers, parsing, checksums, TCP options; shared with
 * the userspace fast path) and the XDP context's packet bounds. */
#ifndef VEIL_BPF_COMMON_H
#define VEIL_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VM_INLINE static __always_inline
#include "veil/wire.h"
#include "veil/cookie.h"
#include "veil/hello.h"

#include "veil/pkt.h"

/* The kernel's names for what include/veil/pkt.h defines, as the programs use them. */
#define ETH_HLEN      VM_ETH_HLEN
#define ETH_P_IP      VM_ETH_P_IP
#define ETH_P_IPV6    VM_ETH_P_IPV6
#define IPPROTO_TCP_  VM_IPPROTO_TCP
#define IPPROTO_UDP_  VM_IPPROTO_UDP
#define AF_INET_      2
#define AF_INET6_     10

#define TCP_FIN VM_TCP_FIN
#define TCP_SYN VM_TCP_SYN
#define TCP_RST VM_TCP_RST
#define TCP_PSH VM_TCP_PSH
#define TCP_ACK VM_TCP_ACK

/* Packet bounds, read straight from the context each time (clang may
 * otherwise keep ctx+4 in a register, which the verifier rejects). */
static __always_inline void *vm_xdp_data(struct xdp_md *ctx)
{
	void *p;
	asm volatile("%0 = *(u32 *)(%1 + 0)" : "=r"(p) : "r"(ctx));
	return p;
}

static __always_inline void *vm_xdp_data_end(struct xdp_md *ctx)
{
	void *p;
	asm volatile("%0 = *(u32 *)(%1 + 4)" : "=r"(p) : "r"(ctx));
	return p;
}
#define XDP_DATA(ctx)     vm_xdp_data(ctx)
#define XDP_DATA_END(ctx) vm_xdp_data_end(ctx)

/* The TCP header's offset masked for the verifier (Ethernet + IPv6 at most). */
#define VM_XDP_L4_OFF_MASK 0x7f

/* The common option blocks (vm_tcpopt_common) read in the frame itself,
 * without copying them out first (bpf_xdp_load_bytes: ~7 ns).  1 when p's
 * block is one of them, with *o as the walk leaves it; 0: walk it. */
VM_INLINE int vm_xdp_tcpopts_common(struct xdp_md *ctx, const struct vm_pkt *p, struct vm_tcpopts *o)
{
	const __u8 *opt = (const __u8 *)XDP_DATA(ctx) + (p->l4_off & VM_XDP_L4_OFF_MASK) + VM_TCP_HLEN;
	void *end = XDP_DATA_END(ctx);

	if (p->tcp_len == VM_TCP_HLEN + VM_TCPOLEN_SYN)
		return (void *)(opt + VM_TCPOLEN_SYN) <= end && vm_tcpopt_common(opt, VM_TCPOLEN_SYN, o);
	if (p->tcp_len == VM_TCP_HLEN + VM_TCPOLEN_TS_ALIGNED)
		return (void *)(opt + VM_TCPOLEN_TS_ALIGNED) <= end &&
		       vm_tcpopt_common(opt, VM_TCPOLEN_TS_ALIGNED, o);
	return 0;
}

#endif /* VEIL_BPF_COMMON_H */
