/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The packet library's ground floor: header layouts, byte order, checksums,
 * the Ethernet/IPv4/IPv6/TCP parse into one struct, and TCP options.
 * Header-only, no libc: compiled by clang -target bpf into the programs and
 * by gcc/clang into the DPDK fast path, replay and the tests, so both sides
 * compute the same bytes from the same code.
 *
 * Every read or write goes through a pointer the caller bounded against an
 * end pointer (data_end in XDP, the buffer's end in userspace): the checks
 * the verifier needs are the ones a userspace build needs too.
 */
#ifndef VEIL_PKT_H
#define VEIL_PKT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "wire.h"
#include "hello.h"   /* VM_LOOP, VM_CALLBACK */

#ifndef VM_INLINE
#define VM_INLINE static inline __attribute__((always_inline))
#endif

/* VM_UNROLL: hello.h, included above */

/* ---------- byte order (the hosts and BPF targets here are little-endian) ---------- */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define vm_htons(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define vm_htonl(x) ((__u32)__builtin_bswap32((__u32)(x)))
#else
#define vm_htons(x) ((__u16)(x))
#define vm_htonl(x) ((__u32)(x))
#endif
#define vm_ntohs(x) vm_htons(x)
#define vm_ntohl(x) vm_htonl(x)

/* ---------- header layouts (as on the wire; naturally aligned like the kernel's) ---------- */
#define VM_ETH_HLEN    14
#define VM_ETH_ALEN    6          /* one MAC address */
#define VM_ETH_MACS_LEN 12        /* destination + source MAC, the header's start */
#define VM_ETH_P_IP    0x0800
#define VM_ETH_P_IPV6  0x86DD
#define VM_IPPROTO_TCP 6
#define VM_IPPROTO_UDP 17
#define VM_UDP_HLEN    8
#define VM_GENEVE_HLEN 8

#define VM_IP4_HLEN    20         /* IPv4 header without options */
#define VM_IP4_VER_IHL 0x45       /* ver_ihl: version 4, VM_IP4_IHL words */
#define VM_IP4_IHL_MASK 0x0f      /* ver_ihl: the header length in 4-byte words */
#define VM_IP4_IHL     5          /* ... without options: less is broken, more has options */
#define VM_IP4_DF      0x4000     /* frag_off: don't fragment */
#define VM_IP4_FRAG_MASK 0x3fff   /* frag_off: more fragments | offset (nonzero: a fragment) */
#define VM_IP6_HLEN    40         /* IPv6 fixed header */
#define VM_IP6_VER_WORD 0x60000000 /* ver_tc_fl: version 6, traffic class and flow label 0 */
#define VM_IP_TTL      64         /* TTL / hop limit of the packets we build */
#define VM_L3_HLEN(family) ((family) == VM_AF_INET ? VM_IP4_HLEN : VM_IP6_HLEN)
#define VM_L3_HLEN_MASK 0x3f      /* an IP header length masked for the verifier: 20 and 40 pass */
#define VM_IP6_VERSION 6          /* the first byte's high nibble in an IPv6 header */

/* IPv6 extension headers (next header values) the fast path does not walk */
#define VM_IPPROTO_HOPOPTS  0
#define VM_IPPROTO_ROUTING  43
#define VM_IPPROTO_FRAGMENT 44
#define VM_IPPROTO_DSTOPTS  60

#define VM_TCP_HLEN    20         /* TCP header without options */
#define VM_TCP_OPT_MAX 40         /* bytes of options at most (data offset 15 words) */
#define VM_TCP_WIN_MAX 65535      /* the largest window the 16-bit field holds */
#define VM_TCP_MSS_DEFAULT 536    /* a SYN without the MSS option (RFC 9293 3.7.1) */
#define VM_TCP_WSCALE_MAX 14      /* the largest window scale shift (RFC 7323 2.3) */
#define VM_TCP_WSCALE_MASK 15     /* a shift masked for the verifier: VM_TCP_WSCALE_MAX and below pass */
#define VM_TCP_HLEN_MASK 0x3c     /* a TCP header length masked for the verifier: every doff * 4 passes */
#define VM_L4_OFF_MASK 0x7f       /* an Ethernet frame's L4 offset masked for the verifier: 14 + 20 and 14 + 40 pass */
#define VM_IP_TCP_MIN  (VM_IP4_HLEN + VM_TCP_HLEN) /* the smallest IP + TCP headers */

#define VM_TCP_FIN 0x01
#define VM_TCP_SYN 0x02
#define VM_TCP_RST 0x04
#define VM_TCP_PSH 0x08
#define VM_TCP_ACK 0x10

/* A SYN without ACK: the gateway answers it with a cookie and looks up no
 * flow for it (gw_path.h), so the one-worker DPDK first pass hints none
 * either (vm_fp_hint_ahead). */
VM_INLINE int vm_tcp_syn_only(__u8 flags)
{
	return (flags & (VM_TCP_SYN | VM_TCP_ACK)) == VM_TCP_SYN;
}

struct vm_eth {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
} VM_WIRE_HDR;

struct vm_ip4 {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
} VM_WIRE_HDR;

struct vm_ip6 {
	__be32 ver_tc_fl;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
} VM_WIRE_HDR;

struct vm_udp {
	__be16 source;
	__be16 dest;
	__be16 len;
	__u16 check;
} VM_WIRE_HDR;

struct vm_tcp {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;            /* data offset (4 bits) | reserved */
	__u8 flags;               /* VM_TCP_* */
	__be16 window;
	__u16 check;
	__be16 urg_ptr;
} VM_WIRE_HDR;

/* Field offsets, for code that reads and writes headers as bytes (kept
 * segments in map memory, the kernel's bitfield tcphdr). */
#define VM_IP4_CHECK_OFF 10
#define VM_IP4_DADDR_OFF 16
#define VM_IP6_DADDR_OFF 24
#define VM_TCP_ACK_OFF   8
#define VM_TCP_DOFF_OFF  12       /* doff_res */
#define VM_TCP_FLAGS_OFF 13
#define VM_TCP_CHECK_OFF 16
_Static_assert(__builtin_offsetof(struct vm_ip4, check) == VM_IP4_CHECK_OFF, "vm_ip4.check");
_Static_assert(__builtin_offsetof(struct vm_ip4, daddr) == VM_IP4_DADDR_OFF, "vm_ip4.daddr");
_Static_assert(__builtin_offsetof(struct vm_ip6, daddr) == VM_IP6_DADDR_OFF, "vm_ip6.daddr");
_Static_assert(__builtin_offsetof(struct vm_tcp, ack_seq) == VM_TCP_ACK_OFF, "vm_tcp.ack_seq");
_Static_assert(__builtin_offsetof(struct vm_tcp, doff_res) == VM_TCP_DOFF_OFF, "vm_tcp.doff_res");
_Static_assert(__builtin_offsetof(struct vm_tcp, flags) == VM_TCP_FLAGS_OFF, "vm_tcp.flags");
_Static_assert(__builtin_offsetof(struct vm_tcp, check) == VM_TCP_CHECK_OFF, "vm_tcp.check");
_Static_assert(sizeof(struct vm_ip4) == VM_IP4_HLEN && sizeof(struct vm_ip6) == VM_IP6_HLEN &&
	       sizeof(struct vm_tcp) == VM_TCP_HLEN && sizeof(struct vm_eth) == VM_ETH_HLEN, "header sizes");

/* TCP options: kinds and lengths (RFC 9293, 2018, 7323) */
#define VM_TCPOPT_EOL       0
#define VM_TCPOPT_NOP       1
#define VM_TCPOPT_MSS       2
#define VM_TCPOPT_WSCALE    3
#define VM_TCPOPT_SACK_PERM 4
#define VM_TCPOPT_SACK      5
#define VM_TCPOPT_TS        8
#define VM_TCPOPT_HLEN      2     /* kind and length bytes before an option's body */
#define VM_TCPOLEN_MSS       4
#define VM_TCPOLEN_WSCALE    3
#define VM_TCPOLEN_SACK_PERM 2
#define VM_TCPOLEN_TS        10
#define VM_TCPOLEN_TS_ALIGNED 12  /* NOP NOP TS */
#define VM_TCPOLEN_SACK_BLOCK 8   /* one left/right edge pair */
#define VM_SACK_BLOCKS_MAX   4    /* blocks that fit in the option space */
#define VM_TCPOLEN_SYN       20   /* our SYN / SYN-ACK option block (vm_tcpopt_write_syn) */

#define VM_TCP_REPLY_HLEN (VM_TCP_HLEN + VM_TCPOLEN_SYN) /* SYN-ACK and replayed SYN */

/* Words of a header for checksum sums: read as whatever was written there
 * (gcc's strict aliasing would otherwise move the reads before the writes).
 * In C of no alignment (a header's words lie 2 bytes off a 4-byte boundary:
 * VM_WIRE_HDR); in BPF as they are, for the reason given there. */
#ifdef __bpf__
typedef __u32 __attribute__((may_alias)) vm_u32a;
typedef __u16 __attribute__((may_alias)) vm_u16a;
#else
typedef __u32 __attribute__((may_alias, aligned(1))) vm_u32a;
typedef __u16 __attribute__((may_alias, aligned(1))) vm_u16a;
#endif

/* Four bytes as the 32-bit word a little-endian load of them gives (the
 * hosts here; as everywhere in this library). */
#define VM_W32(b0, b1, b2, b3) ((__u32)(b0) | (__u32)(b1) << 8 | (__u32)(b2) << 16 | (__u32)(b3) << 24)
#define VM_NOP4 VM_W32(VM_TCPOPT_NOP, VM_TCPOPT_NOP, VM_TCPOPT_NOP, VM_TCPOPT_NOP)

/* ---------- addresses ---------- */

/* dst: 4-byte aligned.  Whole words, so the 32-bit reads that follow (keys,
 * compares, the cookie) take them straight from the stores. */
VM_INLINE void vm_addr_set4(__u8 *dst, __be32 a)
{
	vm_u32a *w = (vm_u32a *)dst;

	w[0] = 0;
	w[1] = 0;
	w[2] = 0xffff0000u;   /* bytes 0 0 0xff 0xff on these little-endian hosts */
	w[3] = a;
}

VM_INLINE int vm_addr_eq(const __u8 *a, const __u8 *b)
{
	const vm_u32a *x = (const vm_u32a *)a, *y = (const vm_u32a *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* ---------- checksums (RFC 1071 / 1624) ---------- */

VM_INLINE __u16 vm_csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Incremental update of a checksum field for a 4-byte / 2-byte change
 * (values as they sit in the packet).  The 32-bit words are added whole:
 * modulo 0xffff a word is worth the sum of its halves, and the one fold
 * at the end takes the carries. */
VM_INLINE void vm_csum_replace4(__u16 *check, __u32 from, __u32 to)
{
	*check = ~vm_csum_fold((__u64)(__u16)~*check + (__u32)~from + to);
}

/* The one's-complement difference of a 4-byte change, as a 16-bit value to
 * add; odd: the field starts at an odd offset from the checksummed start
 * (TCP options need not be aligned), which swaps the bytes of its words. */
VM_INLINE __u16 vm_csum_diff4(__u32 from, __u32 to, int odd)
{
	__u64 s = (~from & 0xffff) + (~from >> 16) + (to & 0xffff) + (to >> 16);
	__u16 d = vm_csum_fold(s);
	return odd ? (__u16)((d >> 8) | (d << 8)) : d;
}

VM_INLINE void vm_csum_replace4_at(__u16 *check, __u32 from, __u32 to, int odd)
{
	__u64 s = (__u16)~*check;
	s += vm_csum_diff4(from, to, odd);
	*check = ~vm_csum_fold(s);
}

VM_INLINE void vm_csum_replace2(__u16 *check, __u16 from, __u16 to)
{
	__u64 s = (__u16)~*check;
	s += (__u16)~from + to;
	*check = ~vm_csum_fold(s);
}

VM_INLINE void vm_csum_replace16(__u16 *check, const __u8 *from, const __u8 *to)
{
	const vm_u32a *f = (const vm_u32a *)from, *t = (const vm_u32a *)to;
	for (int i = 0; i < 4; i++)
		vm_csum_replace4(check, f[i], t[i]);
}

/* Unfolded sum of the TCP pseudo header. */
VM_INLINE __u64 vm_pseudo_sum(__u8 family, const __u8 *saddr, const __u8 *daddr, __u32 l4_len)
{
	__u64 s = 0;
	const vm_u32a *a = (const vm_u32a *)saddr, *b = (const vm_u32a *)daddr;

	/* one term at a time: a sum of two __u32 would drop its carry */
	if (family == VM_AF_INET) {
		s += a[3];
		s += b[3];
	} else {
		for (int i = 0; i < 4; i++) {
			s += a[i];
			s += b[i];
		}
	}
	s += vm_htonl(l4_len);
	s += vm_htonl(VM_IPPROTO_TCP);
	return s;
}

/* The header checksum of a 20-byte IPv4 header (its check field zeroed). */
VM_INLINE __u16 vm_ip4_csum(void *iph)
{
	struct vm_ip4 *ip = iph;
	__u64 s = 0;
	vm_u16a *w = (vm_u16a *)ip;

	ip->check = 0;
VM_UNROLL
	for (int i = 0; i < VM_IP4_HLEN / 2; i++)
		s += w[i];
	return ~vm_csum_fold(s);
}

/* ---------- parsing: Ethernet / IPv4 / IPv6 / TCP into one struct ---------- */

/* The parsed headers of one IP/TCP packet at a known offset. */
struct vm_pkt {
	__u8 family;              /* VM_AF_INET / VM_AF_INET6 */
	__u8 flags;               /* TCP flags byte */
	__u16 l3_len;             /* VM_IP4_HLEN or VM_IP6_HLEN */
	__u16 tcp_len;            /* doff * 4 */
	__u16 payload_len;
	__u32 l3_off;             /* offsets from the start of the packet */
	__u32 l4_off;
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 seq;                /* host order */
	__u32 ack;
};

/* Where p's segment ends in its sender's sequence space: seq + payload,
 * + 1 for a FIN (what acknowledges it all, or the sender's next seq). */
VM_INLINE __u32 vm_tcp_seg_end(const struct vm_pkt *p)
{
	return p->seq + p->payload_len + ((p->flags & VM_TCP_FIN) ? 1 : 0);
}

/* p's segment (parsed from data, an Ethernet frame, its headers in
 * [data, data_end)) made a RST with its ACK at its own sequence, the
 * checksum updated: 0, or -1 if the header is not there. */
VM_INLINE int vm_tcp_to_rst(void *data, void *data_end, const struct vm_pkt *p)
{
	__u8 *tcp = (__u8 *)data + (p->l4_off & VM_L4_OFF_MASK);

	if ((void *)(tcp + VM_TCP_HLEN) > data_end)
		return -1;
	__u16 *w = (__u16 *)(tcp + 12), *check = (__u16 *)(tcp + 16);
	__u16 from = *w;
	tcp[13] = VM_TCP_RST | VM_TCP_ACK;
	vm_csum_replace2(check, from, *w);
	return 0;
}

/* ---------- answers in place ---------- */

/* The frame [data, data_end), already sized to Ethernet + p's IP header +
 * l4_len, made the start of an answer to p: the MACs and the IP addresses
 * swapped, the IP header our own (IPv4: written in whole words, its
 * checksum summed from them, no read-back).  Returns the TCP header, with
 * at least 20 bytes before data_end, or NULL. */
VM_INLINE struct vm_tcp *vm_reply_l3_write(void *data, void *data_end, const struct vm_pkt *p, __u32 l4_len)
{
	struct vm_eth *eth = data;
	struct vm_tcp *tcp;
	__u32 m0, m1;
	__u16 m2, m3;

	if ((void *)(eth + 1) > data_end)
		return 0;
	m0 = *(vm_u32a *)eth->dst;
	m2 = *(vm_u16a *)(eth->dst + 4);
	m1 = *(vm_u32a *)eth->src;
	m3 = *(vm_u16a *)(eth->src + 4);
	*(vm_u32a *)eth->dst = m1;
	*(vm_u16a *)(eth->dst + 4) = m3;
	*(vm_u32a *)eth->src = m0;
	*(vm_u16a *)(eth->src + 4) = m2;
	if (p->family == VM_AF_INET) {
		struct vm_ip4 *ip = (void *)(eth + 1);
		vm_u32a *w = (vm_u32a *)ip;
		__u32 w0, w1, w2;
		__u64 s;
		if ((void *)(ip + 1) > data_end)
			return 0;
		__be32 a = ip->saddr, b = ip->daddr;
		/* version 4, IHL 5 (the parser passes options), TOS 0; id 0, DF;
		 * TTL, TCP */
		w0 = VM_W32(0x45, 0, 0, 0) | (__u32)vm_htons(VM_IP4_HLEN + l4_len) << 16;
		w1 = (__u32)vm_htons(VM_IP4_DF) << 16;
		w2 = VM_W32(VM_IP_TTL, VM_IPPROTO_TCP, 0, 0);
		s = (__u64)w0 + w1 + w2 + a + b;
		w2 |= (__u32)(__u16)~vm_csum_fold(s) << 16;
		w[0] = w0;
		w[1] = w1;
		w[2] = w2;
		w[3] = b;
		w[4] = a;
		tcp = (void *)(ip + 1);
	} else {
		struct vm_ip6 *ip6 = (void *)(eth + 1);
		/* the addresses swapped in words (a memcpy of them is byte by
		 * byte in BPF): bytes 8-23 and 24-39 of the header */
		vm_u32a *w = (vm_u32a *)((__u8 *)data + VM_ETH_HLEN + 8);
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		VM_UNROLL
		for (int i = 0; i < 4; i++) {
			__u32 x = w[i];
			w[i] = w[4 + i];
			w[4 + i] = x;
		}
		ip6->ver_tc_fl = vm_htonl(VM_IP6_VER_WORD);
		ip6->payload_len = vm_htons(l4_len);
		ip6->hop_limit = VM_IP_TTL;
		tcp = (void *)(ip6 + 1);
	}
	if ((void *)(tcp + 1) > data_end)
		return 0;
	return tcp;
}

VM_INLINE void vm_tcp_ports_swap(struct vm_tcp *tcp)
{
	__be16 port = tcp->source;

	tcp->source = tcp->dest;
	tcp->dest = port;
}

/* A bare TCP header (no options) at tcp, its ports already the answer's:
 * seq, ack, flags, a window of 0 for a RST (VM_TCP_WIN_MAX otherwise), the
 * checksum over the pseudo header of an answer to p of l4_len bytes, this
 * header and payload_sum (the unfolded sum of what follows it). */
VM_INLINE void vm_tcp_bare_write(struct vm_tcp *tcp, const struct vm_pkt *p, __u32 seq, __u32 ack, __u8 flags,
				 __u32 l4_len, __u64 payload_sum)
{
	__u64 s;

	tcp->seq = vm_htonl(seq);
	tcp->ack_seq = vm_htonl(ack);
	tcp->doff_res = (VM_TCP_HLEN / 4) << 4;
	tcp->flags = flags;
	tcp->window = (flags & VM_TCP_RST) ? 0 : vm_htons(VM_TCP_WIN_MAX);
	tcp->urg_ptr = 0;
	tcp->check = 0;
	s = vm_pseudo_sum(p->family, p->daddr, p->saddr, l4_len) + payload_sum;
	VM_UNROLL
	for (int i = 0; i < VM_TCP_HLEN / 4; i++)
		s += ((vm_u32a *)tcp)[i];
	tcp->check = ~vm_csum_fold(s);
}

enum vm_parse_rc {
	VM_PARSE_OK = 0,
	VM_PARSE_NOT_IP,          /* not IPv4/IPv6 (an IP header of another version than the type's too) */
	VM_PARSE_NOT_TCP,
	VM_PARSE_TRUNCATED,
	VM_PARSE_IP_OPTIONS,      /* IPv4 options / IPv6 extension headers */
	VM_PARSE_FRAGMENT,
};

#define VM_L3_OFF_MAX 512         /* the IP header's offset at most: a bound the verifier sees */

/* Parses the IP and TCP headers at l3_off (VM_ETH_P_* in network order in
 * proto_be).  The headers must lie in [data, data_end); pkt_len is the whole
 * packet's length (an skb may hold its payload outside the linear part).
 * On failure p->family, ports may already be set (a caller can tell whether
 * a broken packet was for a VIP); the caller zeroes p first. */
VM_INLINE int vm_parse_ip_tcp(void *data, void *data_end, __u32 pkt_len, __u32 l3_off, __be16 proto_be,
			      struct vm_pkt *p)
{
	struct vm_tcp *tcp;
	__u32 ip_total;

	if (l3_off > VM_L3_OFF_MAX)
		return VM_PARSE_TRUNCATED;
	p->l3_off = l3_off;
	if (proto_be == vm_htons(VM_ETH_P_IP)) {
		struct vm_ip4 *ip = (void *)((__u8 *)data + l3_off);
		if ((void *)(ip + 1) > data_end)
			return VM_PARSE_TRUNCATED;
		if (ip->protocol != VM_IPPROTO_TCP)
			return VM_PARSE_NOT_TCP;
		/* the version too: a header whose version is not 4 is no IPv4
		 * header (the kernel's ip_rcv drops it), and a translation that
		 * kept it would send a VM or a client a broken packet */
		if (ip->ver_ihl != VM_IP4_VER_IHL)
			return (ip->ver_ihl >> 4) != 4 ? VM_PARSE_NOT_IP :
			       (ip->ver_ihl & VM_IP4_IHL_MASK) < VM_IP4_IHL ? VM_PARSE_TRUNCATED : VM_PARSE_IP_OPTIONS;
		if (ip->frag_off & vm_htons(VM_IP4_FRAG_MASK))
			return VM_PARSE_FRAGMENT;
		p->family = VM_AF_INET;
		p->l3_len = VM_IP4_HLEN;
		vm_addr_set4(p->saddr, ip->saddr);
		vm_addr_set4(p->daddr, ip->daddr);
		ip_total = vm_ntohs(ip->tot_len);
	} else if (proto_be == vm_htons(VM_ETH_P_IPV6)) {
		struct vm_ip6 *ip6 = (void *)((__u8 *)data + l3_off);
		if ((void *)(ip6 + 1) > data_end)
			return VM_PARSE_TRUNCATED;
		if ((*(const __u8 *)ip6 >> 4) != 6)
			return VM_PARSE_NOT_IP;
		if (ip6->nexthdr != VM_IPPROTO_TCP) {
			/* Anything but TCP straight after the fixed header: extension
			 * headers are not ours to walk on the fast path. */
			switch (ip6->nexthdr) {
			case VM_IPPROTO_HOPOPTS: case VM_IPPROTO_ROUTING:
			case VM_IPPROTO_FRAGMENT: case VM_IPPROTO_DSTOPTS:
				return VM_PARSE_IP_OPTIONS;
			}
			return VM_PARSE_NOT_TCP;
		}
		p->family = VM_AF_INET6;
		p->l3_len = VM_IP6_HLEN;
		__builtin_memcpy(p->saddr, ip6->saddr, 16);
		__builtin_memcpy(p->daddr, ip6->daddr, 16);
		ip_total = VM_IP6_HLEN + vm_ntohs(ip6->payload_len);
	} else {
		return VM_PARSE_NOT_IP;
	}
	p->l4_off = l3_off + p->l3_len;
	tcp = (void *)((__u8 *)data + p->l4_off);
	if ((void *)(tcp + 1) > data_end)
		return VM_PARSE_TRUNCATED;
	p->sport = tcp->source;   /* known from here on, so a caller can tell */
	p->dport = tcp->dest;     /* whether a broken packet was for a VIP */
	p->tcp_len = (tcp->doff_res >> 4) * 4;
	if (p->tcp_len < VM_TCP_HLEN)
		return VM_PARSE_TRUNCATED;
	/* Trust the IP length, not the frame (Ethernet padding). */
	if (ip_total < (__u32)p->l3_len + p->tcp_len || l3_off + ip_total > pkt_len)
		return VM_PARSE_TRUNCATED;
	p->payload_len = ip_total - p->l3_len - p->tcp_len;
	p->seq = vm_ntohl(tcp->seq);
	p->ack = vm_ntohl(tcp->ack_seq);
	p->flags = tcp->flags;
	return VM_PARSE_OK;
}

/* ---------- TCP options ---------- */

struct vm_tcpopts {
	__u16 mss;                /* 0 when absent */
	__u8 wscale;              /* VM_WSCALE_NONE when absent */
	__u8 sack_ok;
	__u8 ts_ok;
	__u8 ts_off;              /* offsets inside the option block */
	__u8 sack_off;
	__u8 sack_len;            /* bytes of SACK blocks (VM_TCPOLEN_SACK_BLOCK each) */
	__u32 tsval;              /* host order */
	__u32 tsecr;
};

#define VM_OPT_BUF 64             /* option buffer: a power of two above VM_TCP_OPT_MAX */
/* An offset in an option block, masked for the verifier (every real one passes). */
#define VM_OPT_OFF_MASK (VM_OPT_BUF - 1)
/* Byte i of an option buffer, the index masked. */
#define VM_OPT_AT(opt, i) ((opt)[(i) & VM_OPT_OFF_MASK])

/* Loop state (map memory in BPF: see vm_hello_state for why). */
struct vm_tcpopt_state {
	__u32 len, i;
	int rc;
	__u32 pad;
	struct vm_tcpopts o;
};

struct vm_tcpopt_walk {
	const __u8 *opt;
	struct vm_tcpopt_state *st;
};

VM_CALLBACK long vm_tcpopt_step(__u32 n, void *ctx)
{
	struct vm_tcpopt_walk *w = ctx;
	struct vm_tcpopt_state *st = w->st;
	const __u8 *opt = w->opt;
	struct vm_tcpopts *o = &st->o;
	__u32 i = st->i, kind, olen;

	if (i >= st->len || i >= VM_TCP_OPT_MAX)
		return 1;
	kind = VM_OPT_AT(opt, i);
	if (kind == VM_TCPOPT_EOL)
		return 1;
	if (kind == VM_TCPOPT_NOP) {
		st->i = i + 1;
		return 0;
	}
	if (i + 1 >= st->len) {
		st->rc = -1;
		return 1;
	}
	olen = VM_OPT_AT(opt, i + 1);
	if (olen < VM_TCPOPT_HLEN || i + olen > st->len) {
		st->rc = -1;
		return 1;
	}
	if (kind == VM_TCPOPT_MSS && olen == VM_TCPOLEN_MSS) {
		o->mss = (VM_OPT_AT(opt, i + 2) << 8) | VM_OPT_AT(opt, i + 3);
	} else if (kind == VM_TCPOPT_WSCALE && olen == VM_TCPOLEN_WSCALE) {
		__u8 ws = VM_OPT_AT(opt, i + 2);
		o->wscale = ws > VM_TCP_WSCALE_MAX ? VM_TCP_WSCALE_MAX : ws;
	} else if (kind == VM_TCPOPT_SACK_PERM && olen == VM_TCPOLEN_SACK_PERM) {
		o->sack_ok = 1;
	} else if (kind == VM_TCPOPT_SACK && olen >= VM_TCPOPT_HLEN + VM_TCPOLEN_SACK_BLOCK &&
		   ((olen - VM_TCPOPT_HLEN) % VM_TCPOLEN_SACK_BLOCK) == 0) {
		o->sack_off = i + VM_TCPOPT_HLEN;
		o->sack_len = olen - VM_TCPOPT_HLEN;
	} else if (kind == VM_TCPOPT_TS && olen == VM_TCPOLEN_TS) {
		o->ts_ok = 1;
		o->ts_off = i + VM_TCPOPT_HLEN;
		o->tsval = ((__u32)VM_OPT_AT(opt, i + 2) << 24) | ((__u32)VM_OPT_AT(opt, i + 3) << 16) |
			   ((__u32)VM_OPT_AT(opt, i + 4) << 8) | VM_OPT_AT(opt, i + 5);
		o->tsecr = ((__u32)VM_OPT_AT(opt, i + 6) << 24) | ((__u32)VM_OPT_AT(opt, i + 7) << 16) |
			   ((__u32)VM_OPT_AT(opt, i + 8) << 8) | VM_OPT_AT(opt, i + 9);
	}
	st->i = i + olen;
	return 0;
}

VM_INLINE __u32 vm_be32_at(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | b[3];
}

/* The two option blocks nearly every segment carries, as Linux (and most
 * stacks) lay them out, read without the walk:
 *   12 bytes: NOP NOP TS                      (every segment with timestamps)
 *   20 bytes: MSS SACK_PERM TS NOP WS         (a SYN)
 * 1 with *o as vm_tcpopt_step's walk leaves it, 0 for any other block (the
 * walk's).  The walk costs ~12-20 ns in BPF (a call per option). */
VM_INLINE int vm_tcpopt_common(const __u8 *opt, __u32 len, struct vm_tcpopts *o)
{
	/* read in words (bytes as a little-endian load gives them): a byte
	 * at a time was ~9 loads and compares more per SYN */
	const vm_u32a *w = (const vm_u32a *)opt;
	__u32 w0, w4, ts;                 /* ts: the word TSval is in */

	if (len == VM_TCPOLEN_TS_ALIGNED) {
		if (w[0] != VM_W32(VM_TCPOPT_NOP, VM_TCPOPT_NOP, VM_TCPOPT_TS, VM_TCPOLEN_TS))
			return 0;
		ts = 1;
		o->mss = 0;
		o->wscale = VM_WSCALE_NONE;
		o->sack_ok = 0;
	} else if (len == VM_TCPOLEN_SYN) {
		w0 = w[0];
		w4 = w[4];
		if ((w0 & 0xffff) != VM_W32(VM_TCPOPT_MSS, VM_TCPOLEN_MSS, 0, 0) ||
		    w[1] != VM_W32(VM_TCPOPT_SACK_PERM, VM_TCPOLEN_SACK_PERM, VM_TCPOPT_TS, VM_TCPOLEN_TS) ||
		    (w4 & 0xffffff) != VM_W32(VM_TCPOPT_NOP, VM_TCPOPT_WSCALE, VM_TCPOLEN_WSCALE, 0))
			return 0;
		ts = 2;
		o->mss = vm_ntohs((__u16)(w0 >> 16));
		o->wscale = (w4 >> 24) > VM_TCP_WSCALE_MAX ? VM_TCP_WSCALE_MAX : (__u8)(w4 >> 24);
		o->sack_ok = 1;
	} else {
		return 0;
	}
	o->ts_ok = 1;
	o->ts_off = ts * 4;
	o->tsval = vm_ntohl(w[ts]);
	o->tsecr = vm_ntohl(w[ts + 1]);
	o->sack_off = o->sack_len = 0;
	return 1;
}

/* Walks the option block opt[0, len) (len <= VM_TCP_OPT_MAX; opt has VM_OPT_BUF bytes)
 * into *o, using st (map memory in BPF) for the walk.  0, or -1 when an
 * option runs past the block. */
VM_INLINE int vm_tcpopt_walk(const __u8 *opt, __u32 len, struct vm_tcpopts *o,
			     struct vm_tcpopt_state *st)
{
	struct vm_tcpopt_walk w = { .opt = opt, .st = st };

	st->len = len;
	st->i = 0;
	st->rc = 0;
	st->o.mss = 0;
	st->o.wscale = VM_WSCALE_NONE;
	st->o.sack_ok = st->o.ts_ok = 0;
	st->o.ts_off = st->o.sack_off = st->o.sack_len = 0;
	st->o.tsval = st->o.tsecr = 0;
	if (len)
		VM_LOOP(VM_TCP_OPT_MAX, vm_tcpopt_step, &w);
	*o = st->o;
	return st->rc;
}

/* vm_tcpopt_walk's result, the common blocks without the walk. */
VM_INLINE int vm_tcpopt_parse(const __u8 *opt, __u32 len, struct vm_tcpopts *o,
			      struct vm_tcpopt_state *st)
{
	if (vm_tcpopt_common(opt, len, o))
		return 0;
	return vm_tcpopt_walk(opt, len, o, st);
}

/* Writes the fixed 20-byte option block of a SYN or SYN-ACK:
 *   MSS(4) | SACK_PERM(2) or NOP NOP | TS(10) or 10 NOP | NOP | WS(3) or 3 NOP */

/* Our SYN / SYN-ACK option block (VM_TCPOLEN_SYN bytes: MSS, SACK permitted
 * or NOP NOP, timestamps or NOPs, NOP, window scale or NOPs), stored in
 * whole words and summed from them for the checksum, without reading them
 * back (a word read after byte stores waits for them to reach the cache). */
/* Writes the block at o (in words) and returns the sum of its words (for
 * the TCP checksum). */
VM_INLINE __u64 vm_tcpopt_write_syn(__u8 *o, __u16 mss, __u8 sack_ok, __u8 ts_ok, __u32 tsval,
				    __u32 tsecr, __u8 wscale)
{
	vm_u32a *w = (vm_u32a *)o;
	__u32 w0, w1, w2, w3, w4;

	w0 = VM_W32(VM_TCPOPT_MSS, VM_TCPOLEN_MSS, mss >> 8, mss & 0xff);
	w1 = (sack_ok ? VM_W32(VM_TCPOPT_SACK_PERM, VM_TCPOLEN_SACK_PERM, 0, 0) :
			VM_W32(VM_TCPOPT_NOP, VM_TCPOPT_NOP, 0, 0)) |
	     (ts_ok ? VM_W32(0, 0, VM_TCPOPT_TS, VM_TCPOLEN_TS) : VM_W32(0, 0, VM_TCPOPT_NOP, VM_TCPOPT_NOP));
	w2 = ts_ok ? vm_htonl(tsval) : VM_NOP4;
	w3 = ts_ok ? vm_htonl(tsecr) : VM_NOP4;
	w4 = wscale != VM_WSCALE_NONE ? VM_W32(VM_TCPOPT_NOP, VM_TCPOPT_WSCALE, VM_TCPOLEN_WSCALE, wscale) : VM_NOP4;
	w[0] = w0;
	w[1] = w1;
	w[2] = w2;
	w[3] = w3;
	w[4] = w4;
	return (__u64)w0 + w1 + w2 + w3 + w4;
}

/* Full TCP checksum of a header of exactly VM_TCP_REPLY_HLEN bytes with no
 * payload (the replies we build). */
VM_INLINE __u16 vm_tcp_csum_hdr40(void *tcph, __u8 family, const __u8 *saddr, const __u8 *daddr)
{
	struct vm_tcp *tcp = tcph;
	__u64 s = vm_pseudo_sum(family, saddr, daddr, VM_TCP_REPLY_HLEN);
	vm_u32a *w = (vm_u32a *)tcp;

	tcp->check = 0;
VM_UNROLL
	for (int i = 0; i < VM_TCP_REPLY_HLEN / 4; i++)
		s += w[i];
	return ~vm_csum_fold(s);
}

#endif /* VEIL_PKT_H */
