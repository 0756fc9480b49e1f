/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the veilmesh BPF programs: header parsing over a cursor,
 * checksums, TCP options.  Everything here is BPF-only; what userspace also
 * needs lives in include/veil/. */
#ifndef VEIL_BPF_COMMON_H
#define VEIL_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VM_INLINE static __always_inline
#include "veil/wire.h"
#include "veil/cookie.h"
#include "veil/hello.h"

#define ETH_HLEN      14
#define ETH_P_IP      0x0800
#define ETH_P_IPV6    0x86DD
#define IPPROTO_TCP_  6
#define IPPROTO_UDP_  17
#define AF_INET_      2
#define AF_INET6_     10

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

#define VM_TCP_REPLY_HLEN 40

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
#define XDP_DATA_END(ctx) vm_xdp_data_end(ctx)     /* SYN-ACK and replayed SYN: 20 + 20 bytes of options */

/* The parsed headers of one IP/TCP packet at a known offset. */
struct vm_pkt {
	__u8 family;              /* VM_AF_INET / VM_AF_INET6 */
	__u8 flags;               /* TCP flags byte */
	__u16 l3_len;             /* 20 or 40 */
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

enum vm_parse_rc {
	VM_PARSE_OK = 0,
	VM_PARSE_NOT_IP,          /* not IPv4/IPv6 */
	VM_PARSE_NOT_TCP,
	VM_PARSE_TRUNCATED,
	VM_PARSE_IP_OPTIONS,      /* IPv4 options / IPv6 extension headers */
	VM_PARSE_FRAGMENT,
};

VM_INLINE void vm_addr_set4(__u8 *dst, __be32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

VM_INLINE int vm_addr_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
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
 * (values as they sit in the packet). */
VM_INLINE void vm_csum_replace4(__u16 *check, __u32 from, __u32 to)
{
	__u64 s = (__u16)~*check;
	s += (~from & 0xffff) + (~from >> 16) + (to & 0xffff) + (to >> 16);
	*check = ~vm_csum_fold(s);
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
	const __u32 *f = (const __u32 *)from, *t = (const __u32 *)to;
	for (int i = 0; i < 4; i++)
		vm_csum_replace4(check, f[i], t[i]);
}

/* Unfolded sum of the TCP pseudo header. */
VM_INLINE __u64 vm_pseudo_sum(__u8 family, const __u8 *saddr, const __u8 *daddr, __u32 l4_len)
{
	__u64 s = 0;
	const __u32 *a = (const __u32 *)saddr, *b = (const __u32 *)daddr;

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
	s += bpf_htonl(l4_len);
	s += bpf_htonl(IPPROTO_TCP_);
	return s;
}

VM_INLINE __u16 vm_ip4_csum(struct iphdr *ip)
{
	__u64 s = 0;
	__u16 *w = (__u16 *)ip;

	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	return ~vm_csum_fold(s);
}

/* ---------- parsing ---------- */

/* Parses the IP and TCP headers at l3_off (ETH_P_* in proto).  The headers
 * must lie in [data, data_end); pkt_len is the whole packet's length (an skb
 * may hold its payload outside the linear part). */
VM_INLINE int vm_parse_ip_tcp(void *data, void *data_end, __u32 pkt_len, __u32 l3_off, __u16 proto,
			      struct vm_pkt *p)
{
	struct tcphdr *tcp;
	__u32 ip_total;

	if (l3_off > 512)
		return VM_PARSE_TRUNCATED;
	p->l3_off = l3_off;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l3_off;
		if ((void *)(ip + 1) > data_end)
			return VM_PARSE_TRUNCATED;
		if (ip->protocol != IPPROTO_TCP_)
			return VM_PARSE_NOT_TCP;
		if (ip->ihl != 5)
			return ip->ihl < 5 ? VM_PARSE_TRUNCATED : VM_PARSE_IP_OPTIONS;
		if (ip->frag_off & bpf_htons(0x3fff))
			return VM_PARSE_FRAGMENT;
		p->family = VM_AF_INET;
		p->l3_len = 20;
		vm_addr_set4(p->saddr, ip->saddr);
		vm_addr_set4(p->daddr, ip->daddr);
		ip_total = bpf_ntohs(ip->tot_len);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l3_off;
		if ((void *)(ip6 + 1) > data_end)
			return VM_PARSE_TRUNCATED;
		if (ip6->nexthdr != IPPROTO_TCP_) {
			/* Anything but TCP straight after the fixed header: extension
			 * headers are not ours to walk on the fast path. */
			switch (ip6->nexthdr) {
			case 0: case 43: case 44: case 60:
				return VM_PARSE_IP_OPTIONS;
			}
			return VM_PARSE_NOT_TCP;
		}
		p->family = VM_AF_INET6;
		p->l3_len = 40;
		__builtin_memcpy(p->saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr, &ip6->daddr, 16);
		ip_total = 40 + bpf_ntohs(ip6->payload_len);
	} else {
		return VM_PARSE_NOT_IP;
	}
	p->l4_off = l3_off + p->l3_len;
	tcp = data + p->l4_off;
	if ((void *)(tcp + 1) > data_end)
		return VM_PARSE_TRUNCATED;
	p->sport = tcp->source;   /* known from here on, so a caller can tell */
	p->dport = tcp->dest;     /* whether a broken packet was for a VIP */
	p->tcp_len = tcp->doff * 4;
	if (p->tcp_len < 20)
		return VM_PARSE_TRUNCATED;
	/* Trust the IP length, not the frame (Ethernet padding). */
	if (ip_total < p->l3_len + p->tcp_len || l3_off + ip_total > pkt_len)
		return VM_PARSE_TRUNCATED;
	p->payload_len = ip_total - p->l3_len - p->tcp_len;
	p->seq = bpf_ntohl(tcp->seq);
	p->ack = bpf_ntohl(tcp->ack_seq);
	p->flags = ((__u8 *)tcp)[13];
	return VM_PARSE_OK;
}

/* ---------- TCP options ---------- */

struct vm_tcpopts {
	__u16 mss;                /* 0 when absent */
	__u8 wscale;              /* 0xff when absent */
	__u8 sack_ok;
	__u8 ts_ok;
	__u8 ts_off;              /* offsets inside the option block */
	__u8 sack_off;
	__u8 sack_len;            /* bytes of SACK blocks (multiple of 8) */
	__u32 tsval;              /* host order */
	__u32 tsecr;
};

#define VM_OPT_BUF 64

/* Loop state in map memory (see vm_hello_state for why). */
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

static __attribute__((noinline)) long vm_tcpopt_step(__u32 n, void *ctx)
{
	struct vm_tcpopt_walk *w = ctx;
	struct vm_tcpopt_state *st = w->st;
	const __u8 *opt = w->opt;
	struct vm_tcpopts *o = &st->o;
	__u32 i = st->i, kind, olen;

	if (i >= st->len || i >= 40)
		return 1;
	kind = opt[i & (VM_OPT_BUF - 1)];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		st->i = i + 1;
		return 0;
	}
	if (i + 1 >= st->len) {
		st->rc = -1;
		return 1;
	}
	olen = opt[(i + 1) & (VM_OPT_BUF - 1)];
	if (olen < 2 || i + olen > st->len) {
		st->rc = -1;
		return 1;
	}
	if (kind == 2 && olen == 4) {
		o->mss = (opt[(i + 2) & 63] << 8) | opt[(i + 3) & 63];
	} else if (kind == 3 && olen == 3) {
		__u8 ws = opt[(i + 2) & 63];
		o->wscale = ws > 14 ? 14 : ws;
	} else if (kind == 4 && olen == 2) {
		o->sack_ok = 1;
	} else if (kind == 5 && olen >= 10 && ((olen - 2) % 8) == 0) {
		o->sack_off = i + 2;
		o->sack_len = olen - 2;
	} else if (kind == 8 && olen == 10) {
		o->ts_ok = 1;
		o->ts_off = i + 2;
		o->tsval = ((__u32)opt[(i + 2) & 63] << 24) | ((__u32)opt[(i + 3) & 63] << 16) |
			   ((__u32)opt[(i + 4) & 63] << 8) | opt[(i + 5) & 63];
		o->tsecr = ((__u32)opt[(i + 6) & 63] << 24) | ((__u32)opt[(i + 7) & 63] << 16) |
			   ((__u32)opt[(i + 8) & 63] << 8) | opt[(i + 9) & 63];
	}
	st->i = i + olen;
	return 0;
}

/* Walks the option block opt[0, len) (len <= 40; opt has VM_OPT_BUF bytes)
 * into *o, using st (map memory) for the walk. */
VM_INLINE int vm_tcpopt_parse(const __u8 *opt, __u32 len, struct vm_tcpopts *o,
			      struct vm_tcpopt_state *st)
{
	struct vm_tcpopt_walk w = { .opt = opt, .st = st };

	st->len = len;
	st->i = 0;
	st->rc = 0;
	st->o.mss = 0;
	st->o.wscale = 0xff;
	st->o.sack_ok = st->o.ts_ok = 0;
	st->o.ts_off = st->o.sack_off = st->o.sack_len = 0;
	st->o.tsval = st->o.tsecr = 0;
	if (len)
		bpf_loop(40, vm_tcpopt_step, &w, 0);
	*o = st->o;
	return st->rc;
}

/* Writes the fixed 20-byte option block of a SYN or SYN-ACK:
 *   MSS(4) | SACK_PERM(2) or NOP NOP | TS(10) or 10 NOP | NOP | WS(3) or 3 NOP */
VM_INLINE void vm_tcpopt_write_syn(__u8 *o, __u16 mss, __u8 sack_ok, __u8 ts_ok, __u32 tsval,
				   __u32 tsecr, __u8 wscale)
{
	__u32 tv = bpf_htonl(tsval), te = bpf_htonl(tsecr);

	o[0] = 2; o[1] = 4; o[2] = mss >> 8; o[3] = mss & 0xff;
	if (sack_ok) { o[4] = 4; o[5] = 2; } else { o[4] = 1; o[5] = 1; }
	if (ts_ok) {
		o[6] = 8; o[7] = 10;
		__builtin_memcpy(o + 8, &tv, 4);
		__builtin_memcpy(o + 12, &te, 4);
	} else {
		__builtin_memset(o + 6, 1, 10);
	}
	o[16] = 1;
	if (wscale != 0xff) { o[17] = 3; o[18] = 3; o[19] = wscale; }
	else { o[17] = 1; o[18] = 1; o[19] = 1; }
}

/* Full TCP checksum of a header of exactly VM_TCP_REPLY_HLEN bytes with no
 * payload (the replies we build). */
VM_INLINE __u16 vm_tcp_csum_hdr40(struct tcphdr *tcp, __u8 family, const __u8 *saddr,
				  const __u8 *daddr)
{
	__u64 s = vm_pseudo_sum(family, saddr, daddr, VM_TCP_REPLY_HLEN);
	__u32 *w = (__u32 *)tcp;

	tcp->check = 0;
#pragma unroll
	for (int i = 0; i < VM_TCP_REPLY_HLEN / 4; i++)
		s += w[i];
	return ~vm_csum_fold(s);
}

#endif /* VEIL_BPF_COMMON_H */
