/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client traffic veil-fpgen writes (tools/fpgen.c), made a packet at a
 * time: the same corpus goes into the DPDK benchmark's pcaps and through
 * the equivalence test (tests/test_fastpath.c, fpgen_same), which holds the
 * C build to the BPF programs on it.
 *
 * Connection i (first + 0, 1, ...): client 198.18.(16 + (i >> 16 & 15)).(i & 255),
 * port 1024 + (i >> 8 & 255), to the VIP's port 443, ISN i * 2654435761;
 * its cookie made from the gateway's key for time window tnow (MSS 1460,
 * window scale 7, SACK, no timestamps), as the gateway's SYN-ACK would have
 * carried it.
 *   FPGEN_HELLO:       each connection's cookie-validated ClientHello
 *   FPGEN_ESTABLISHED: each its hello, then per data segments of payload
 *                      bytes (0x17, as TLS records' type), the first offset
 *                      bytes past the hello's end
 *   FPGEN_ACK:         an ACK flood: each connection's ACK with the MAC's
 *                      top bit turned in its cookie (bad_cookie)
 * interleave: the packets in turns across the connections (every hello,
 * then every first data segment, ...); otherwise a connection at a time.
 */
#ifndef VEIL_TESTS_FPGEN_H
#define VEIL_TESTS_FPGEN_H

#include "testlib.h"
#include "veil/cookie.h"

enum fpgen_kind { FPGEN_HELLO, FPGEN_ESTABLISHED, FPGEN_ACK };

struct fpgen {
	enum fpgen_kind kind;
	const struct vm_cookie_key *key;   /* the gateway's current cookie key */
	uint32_t tnow;                     /* the cookies' time window (TAI seconds / window) */
	uint8_t vip[4];                    /* an IPv4 VIP */
	uint8_t smac[6], dmac[6];
	const uint8_t *hello;              /* the ClientHello each connection sends */
	size_t hello_len;
	long flows, per, payload, offset, first;
	int interleave;
};

/* -1 for an unknown kind's name. */
static inline int fpgen_kind_of(const char *s)
{
	return !strcmp(s, "hello") ? FPGEN_HELLO : !strcmp(s, "established") ? FPGEN_ESTABLISHED
						     : !strcmp(s, "ack") ? FPGEN_ACK : -1;
}

static inline long fpgen_count(const struct fpgen *g)
{
	return g->flows * (g->kind == FPGEN_ESTABLISHED ? 1 + g->per : 1);
}

/* Packet n (0 .. fpgen_count - 1) into pkt (at least 14 + 60 + 60 + the
 * hello's or payload's bytes): its length. */
static inline size_t fpgen_packet(const struct fpgen *g, long n, uint8_t *pkt)
{
	static uint8_t data[1400];
	long npk = g->kind == FPGEN_ESTABLISHED ? 1 + g->per : 1;
	long i = g->first + (g->interleave ? n % g->flows : n / npk), k = g->interleave ? n / g->flows : n % npk;
	struct t_pkt p = { .v6 = 0, .dport = 443, .flags = T_ACK | T_PSH, .window = 502 };
	uint8_t cli[4] = { 198, 18, (uint8_t)(16 + ((i >> 16) & 0x0f)), (uint8_t)i };
	uint32_t isn = (uint32_t)(i * 2654435761u), cookie;
	struct vm_cookie_in cin = { 0 };
	struct vm_cookie_opts co = { .mss = 1460, .wscale = 7, .sack_ok = 1, .ts_ok = 0 };

	if (data[0] != 0x17)
		memset(data, 0x17, sizeof(data));
	memcpy(p.smac, g->smac, 6);
	memcpy(p.dmac, g->dmac, 6);
	memcpy(p.src, cli, 4);
	memcpy(p.dst, g->vip, 4);
	p.sport = (uint16_t)(1024 + ((i >> 8) & 0xff));
	memset(cin.saddr + 10, 0xff, 2);
	memcpy(cin.saddr + 12, p.src, 4);
	memset(cin.daddr + 10, 0xff, 2);
	memcpy(cin.daddr + 12, p.dst, 4);
	cin.sport = htons(p.sport);
	cin.dport = htons(443);
	cin.client_isn = isn;
	cookie = vm_cookie_make(g->key, &cin, g->tnow, &co);
	p.ack = cookie + 1;
	if (g->kind == FPGEN_ACK) {
		p.seq = isn + 1;
		p.ack = (cookie ^ 0x80000000u) + 1;   /* the MAC's top bit */
		p.flags = T_ACK;
	} else if (k == 0) {
		p.seq = isn + 1;
		p.payload = g->hello;
		p.plen = g->hello_len;
	} else {
		p.seq = isn + 1 + (uint32_t)g->hello_len + (uint32_t)g->offset + (uint32_t)(k - 1) * (uint32_t)g->payload;
		p.payload = data;
		p.plen = g->payload;
		p.flags = T_ACK;
	}
	return t_build(&p, pkt);
}

#endif /* VEIL_TESTS_FPGEN_H */
