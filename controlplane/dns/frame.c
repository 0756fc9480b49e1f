// SPDX-License-Identifier: Apache-2.0
/*
 * The XSK worker's frames (userspace side of frame.h): the query frame's
 * checks the kernel would have made, the query as the query path takes it,
 * and the answer frame (MACs, addresses and ports swapped, lengths, IPv4
 * header checksum, UDP checksum).  No I/O: the fuzzer runs it as is.
 */
#include <string.h>
#include <sys/socket.h>

#include "dns/xsk.h"

/* One's-complement sum of len bytes, unfolded (words as they lie in memory). */
static uint64_t sum_bytes(const uint8_t *p, size_t len, uint64_t s)
{
	uint32_t w;
	for (; len >= 4; p += 4, len -= 4) {
		memcpy(&w, p, 4);
		s += w;
	}
	if (len >= 2) {
		uint16_t h;
		memcpy(&h, p, 2);
		s += h;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint16_t h = 0;
		memcpy(&h, p, 1); /* the odd byte, padded with zero (RFC 1071) */
		s += h;
	}
	return s;
}

static uint16_t fold(uint64_t s)
{
	return vm_csum_fold(s);
}

/* The pseudo header's sum (RFC 768 / 8200), UDP. */
static uint64_t pseudo(int family, const uint8_t *saddr, const uint8_t *daddr, uint32_t ulen)
{
	uint64_t s = 0;
	if (family == VM_AF_INET) {
		s = sum_bytes(saddr + VM_ADDR4_OFF, 4, s);
		s = sum_bytes(daddr + VM_ADDR4_OFF, 4, s);
	} else {
		s = sum_bytes(saddr, 16, s);
		s = sum_bytes(daddr, 16, s);
	}
	s += vm_htonl(ulen);
	s += vm_htonl(VM_IPPROTO_UDP);
	return s;
}

int dns_frame_check(const uint8_t *frame, const struct dns_frame *f)
{
	if (f->family == VM_AF_INET)
		/* a right header sums to 0xffff with its checksum in */
		return fold(sum_bytes(frame + VM_ETH_HLEN, VM_IP4_HLEN, 0)) == 0xffff ? 0 : XSK_DROP_BAD_CSUM;
	/* IPv6 UDP without a checksum is not allowed (RFC 8200 8.1) */
	return f->udp_check ? 0 : XSK_DROP_BAD_CSUM;
}

int dns_frame_udp_csum_ok(const uint8_t *frame, const struct dns_frame *f)
{
	uint32_t ulen = (uint32_t)f->payload_len + VM_UDP_HLEN;
	if (f->family == VM_AF_INET && !f->udp_check)
		return 1; /* IPv4: no checksum sent */
	uint64_t s = pseudo(f->family, f->saddr, f->daddr, ulen);
	s = sum_bytes(frame + VM_ETH_HLEN + f->l3_len, ulen, s);
	return fold(s) == 0xffff;
}

void dns_frame_query(const struct dns_frame *f, const uint8_t *frame, uint32_t now, struct dns_query *q)
{
	memset(q, 0, sizeof(*q));
	q->pkt = frame + f->payload_off;
	q->len = f->payload_len;
	q->now = now;
	if (f->family == VM_AF_INET) {
		q->family = AF_INET;
		memcpy(q->addr, f->saddr + VM_ADDR4_OFF, 4);
	} else {
		/* as the UDP path sees a v4-mapped source: an IPv4 client */
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (!memcmp(f->saddr, mapped, 12)) {
			q->family = AF_INET;
			memcpy(q->addr, f->saddr + VM_ADDR4_OFF, 4);
		} else {
			q->family = AF_INET6;
			memcpy(q->addr, f->saddr, 16);
		}
	}
}

size_t dns_frame_reply(uint8_t *out, size_t room, const struct dns_frame *f, const uint8_t *msg, size_t len)
{
	size_t hl = VM_ETH_HLEN + (size_t)f->l3_len + VM_UDP_HLEN;
	uint32_t ulen = (uint32_t)(len + VM_UDP_HLEN);
	if (hl + len > room || len > 65535 - VM_IP6_HLEN - VM_UDP_HLEN)
		return 0;
	struct vm_eth eth;
	memcpy(eth.dst, f->src_mac, 6);
	memcpy(eth.src, f->dst_mac, 6);
	struct vm_udp udp = { .source = f->dport, .dest = f->sport, .len = vm_htons((uint16_t)ulen), .check = 0 };
	/* the message first: f may describe a frame out overlaps (only its
	 * copied fields are read from here on) */
	memmove(out + hl, msg, len);
	if (f->family == VM_AF_INET) {
		eth.proto = vm_htons(VM_ETH_P_IP);
		struct vm_ip4 ip = { .ver_ihl = VM_IP4_VER_IHL, .tot_len = vm_htons((uint16_t)(VM_IP4_HLEN + ulen)),
				     .frag_off = vm_htons(VM_IP4_DF), .ttl = VM_IP_TTL, .protocol = VM_IPPROTO_UDP };
		memcpy(&ip.saddr, f->daddr + VM_ADDR4_OFF, 4);
		memcpy(&ip.daddr, f->saddr + VM_ADDR4_OFF, 4);
		ip.check = vm_ip4_csum(&ip);
		memcpy(out + VM_ETH_HLEN, &ip, sizeof(ip));
	} else {
		eth.proto = vm_htons(VM_ETH_P_IPV6);
		struct vm_ip6 ip6 = { .ver_tc_fl = vm_htonl(VM_IP6_VER_WORD), .payload_len = vm_htons((uint16_t)ulen),
				      .nexthdr = VM_IPPROTO_UDP, .hop_limit = VM_IP_TTL };
		memcpy(ip6.saddr, f->daddr, 16);
		memcpy(ip6.daddr, f->saddr, 16);
		memcpy(out + VM_ETH_HLEN, &ip6, sizeof(ip6));
	}
	memcpy(out, &eth, sizeof(eth));
	uint64_t s = pseudo(f->family, f->daddr, f->saddr, ulen);
	s = sum_bytes((const uint8_t *)&udp, sizeof(udp), s);
	s = sum_bytes(out + hl, len, s);
	udp.check = (uint16_t)~fold(s);
	if (!udp.check)
		udp.check = 0xffff; /* 0 means "none" (IPv4) or is invalid (IPv6) */
	memcpy(out + VM_ETH_HLEN + f->l3_len, &udp, sizeof(udp));
	return hl + len;
}
