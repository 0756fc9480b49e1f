/* SPDX-License-Identifier: Apache-2.0 */
/*
 * veil-dns's AF_XDP path: the Ethernet/IP/UDP frame of a query, parsed by one
 * function that the XDP program (bpf/dns_xsk.bpf.c: redirect or pass) and the
 * XSK worker (xsk.c: what to answer whom) both compile, and the structs the
 * program and the daemon share (its maps' keys and values).  Header-only, on
 * include/veil/pkt.h's header layouts; no libc.
 */
#ifndef VEIL_DNS_FRAME_H
#define VEIL_DNS_FRAME_H

#include "veil/pkt.h"

/* The outcome of a parse; anything but OK means "not for the XSK worker":
 * the XDP program passes it to the kernel, the worker counts and drops it. */
enum dns_frame_rc {
	DNS_FRAME_OK = 0,
	DNS_FRAME_NOT_IP,         /* not IPv4/IPv6 (ARP, VLAN, ...) or a bad IP version */
	DNS_FRAME_NOT_UDP,
	DNS_FRAME_OPTIONS,        /* IPv4 options, IPv6 extension headers */
	DNS_FRAME_FRAGMENT,
	DNS_FRAME_SHORT,          /* the headers do not fit the frame */
	DNS_FRAME_BAD_LEN,        /* IP or UDP length disagrees with the frame (ports known) */
	DNS_FRAME_NRC
};

struct dns_frame {
	__u8 family;              /* VM_AF_INET / VM_AF_INET6 */
	__u8 l3_len;              /* VM_IP4_HLEN / VM_IP6_HLEN */
	__u16 payload_off;        /* the DNS message: offset in the frame and length */
	__u16 payload_len;
	__u8 dst_mac[6], src_mac[6];
	__u8 saddr[16], daddr[16]; /* IPv4 as IPv4-mapped (vm_addr_set4) */
	__be16 sport, dport;
	__u16 udp_check;          /* as received */
};

/* Parses the frame in [data, data_end).  The ports and addresses are set
 * from DNS_FRAME_BAD_LEN on (the XDP program hands such a frame for one of
 * our addresses to the worker, which counts it as the kernel would).  The IP
 * length is trusted over the frame's (Ethernet padding), a UDP length short
 * of the IP payload trims it (as the kernel does); longer is bad. */
VM_INLINE int dns_frame_parse(const void *data, const void *data_end, struct dns_frame *f)
{
	const struct vm_eth *eth = data;
	const struct vm_udp *udp;
	__u32 pkt_len, ip_total, ulen;

	if ((const void *)(eth + 1) > data_end)
		return DNS_FRAME_SHORT;
	pkt_len = (__u32)((const __u8 *)data_end - (const __u8 *)data);
	if (eth->proto == vm_htons(VM_ETH_P_IP)) {
		const struct vm_ip4 *ip = (const void *)(eth + 1);
		if ((const void *)(ip + 1) > data_end)
			return DNS_FRAME_SHORT;
		if ((ip->ver_ihl >> 4) != 4)
			return DNS_FRAME_NOT_IP;
		if (ip->protocol != VM_IPPROTO_UDP)
			return DNS_FRAME_NOT_UDP;
		if ((ip->ver_ihl & VM_IP4_IHL_MASK) != VM_IP4_IHL)
			return (ip->ver_ihl & VM_IP4_IHL_MASK) < VM_IP4_IHL ? DNS_FRAME_SHORT : DNS_FRAME_OPTIONS;
		if (ip->frag_off & vm_htons(VM_IP4_FRAG_MASK))
			return DNS_FRAME_FRAGMENT;
		udp = (const void *)(ip + 1);
		if ((const void *)(udp + 1) > data_end)
			return DNS_FRAME_SHORT;
		f->family = VM_AF_INET;
		f->l3_len = VM_IP4_HLEN;
		vm_addr_set4(f->saddr, ip->saddr);
		vm_addr_set4(f->daddr, ip->daddr);
		ip_total = vm_ntohs(ip->tot_len);
	} else if (eth->proto == vm_htons(VM_ETH_P_IPV6)) {
		const struct vm_ip6 *ip6 = (const void *)(eth + 1);
		if ((const void *)(ip6 + 1) > data_end)
			return DNS_FRAME_SHORT;
		if ((ip6->ver_tc_fl & vm_htonl(0xf0000000)) != vm_htonl(VM_IP6_VER_WORD))
			return DNS_FRAME_NOT_IP;
		if (ip6->nexthdr != VM_IPPROTO_UDP) {
			switch (ip6->nexthdr) {
			case VM_IPPROTO_HOPOPTS: case VM_IPPROTO_ROUTING:
			case VM_IPPROTO_FRAGMENT: case VM_IPPROTO_DSTOPTS:
				return DNS_FRAME_OPTIONS;
			}
			return DNS_FRAME_NOT_UDP;
		}
		udp = (const void *)(ip6 + 1);
		if ((const void *)(udp + 1) > data_end)
			return DNS_FRAME_SHORT;
		f->family = VM_AF_INET6;
		f->l3_len = VM_IP6_HLEN;
		__builtin_memcpy(f->saddr, ip6->saddr, 16);
		__builtin_memcpy(f->daddr, ip6->daddr, 16);
		ip_total = VM_IP6_HLEN + vm_ntohs(ip6->payload_len);
	} else {
		return DNS_FRAME_NOT_IP;
	}
	__builtin_memcpy(f->dst_mac, eth->dst, 6);
	__builtin_memcpy(f->src_mac, eth->src, 6);
	f->sport = udp->source;
	f->dport = udp->dest;
	f->udp_check = udp->check;
	ulen = vm_ntohs(udp->len);
	if (ip_total < (__u32)f->l3_len + VM_UDP_HLEN || VM_ETH_HLEN + ip_total > pkt_len)
		return DNS_FRAME_BAD_LEN;
	if (ulen < VM_UDP_HLEN || ulen > ip_total - f->l3_len)
		return DNS_FRAME_BAD_LEN;
	f->payload_off = (__u16)(VM_ETH_HLEN + f->l3_len + VM_UDP_HLEN);
	f->payload_len = (__u16)(ulen - VM_UDP_HLEN);
	return DNS_FRAME_OK;
}

/* ---------- what the XDP program and the daemon share ---------- */

/* dns_listen: the addresses (and port) the server answers on; the program
 * redirects only UDP to these.  Value: the listen line's index. */
struct dns_listen_key {
	__u8 addr[16];            /* IPv4 as IPv4-mapped */
	__be16 port;
	__u16 pad;
};

/* dns_xdp_stats (per CPU): what the program did with each frame. */
struct dns_xdp_stats {
	__u64 redirected;         /* to the XSK worker of the frame's queue */
	__u64 no_socket;          /* for us, but no socket on that queue: passed */
	__u64 not_ours;           /* IP/UDP to another address or port: passed */
	__u64 too_big;            /* larger than a UMEM frame: passed */
	__u64 pass[DNS_FRAME_NRC]; /* passed by parse outcome (not IP, fragments, ...) */
};
#endif
