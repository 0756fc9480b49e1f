/* SPDX-License-Identifier: Apache-2.0 */
/* A small test harness: CHECK() records failures, each test prints one
 * "PASS name" or "FAIL name: why" line; tests/run.sh counts them.  Also
 * packet builders and checksum verification for the BPF tests. */
#ifndef VEIL_TESTLIB_H
#define VEIL_TESTLIB_H

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>

static int t_failed_here __attribute__((unused)), t_pass __attribute__((unused)), t_fail;
static char t_why[512] __attribute__((unused));

#define CHECK(cond, ...) do {                                                        \
	if (!(cond)) {                                                               \
		if (!t_failed_here) {                                                \
			int _n = snprintf(t_why, sizeof(t_why), "%s:%d: ", __FILE__, __LINE__); \
			snprintf(t_why + _n, sizeof(t_why) - _n, __VA_ARGS__);       \
		}                                                                    \
		t_failed_here = 1;                                                   \
	}                                                                            \
} while (0)

#define RUN(fn) do {                                                                 \
	t_failed_here = 0;                                                           \
	fn();                                                                        \
	if (t_failed_here) { t_fail++; printf("FAIL %s: %s\n", #fn, t_why); }        \
	else { t_pass++; printf("PASS %s\n", #fn); }                                 \
	fflush(stdout);                                                              \
} while (0)

static inline int t_done(void)
{
	return t_fail ? 1 : 0;
}

/* ---------- packets ---------- */

#define T_FIN 0x01
#define T_SYN 0x02
#define T_RST 0x04
#define T_PSH 0x08
#define T_ACK 0x10

struct t_pkt {
	int v6;
	uint8_t smac[6], dmac[6];
	uint8_t src[16], dst[16];  /* v4: first 4 bytes */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t window;
	const uint8_t *opts;       /* raw TCP options (multiple of 4) */
	int optlen;
	const uint8_t *payload;
	int plen;
};

static inline uint32_t t_sum(const void *p, size_t n, uint32_t s)
{
	const uint8_t *b = p;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (b[i] << 8) | b[i + 1];
	if (n & 1)
		s += b[n - 1] << 8;
	return s;
}

static inline uint16_t t_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

/* The L4 checksum over pseudo header + segment; 0 when the stored one is right. */
static inline uint16_t t_l4_verify(int v6, const uint8_t *l3, const uint8_t *l4, size_t l4len, uint8_t proto)
{
	uint32_t s = 0;
	if (v6) {
		s = t_sum(l3 + 8, 32, 0);
	} else {
		s = t_sum(l3 + 12, 8, 0);
	}
	s += proto + (uint32_t)l4len;
	s = t_sum(l4, l4len, s);
	return t_fold(s);
}

static inline size_t t_build(const struct t_pkt *p, uint8_t *out)
{
	size_t l3 = p->v6 ? 40 : 20, tcpl = 20 + p->optlen, n = 14 + l3 + tcpl + p->plen;
	uint8_t *ip = out + 14, *tcp = ip + l3;

	memset(out, 0, n);
	memcpy(out, p->dmac, 6);
	memcpy(out + 6, p->smac, 6);
	out[12] = p->v6 ? 0x86 : 0x08;
	out[13] = p->v6 ? 0xdd : 0x00;
	if (p->v6) {
		ip[0] = 0x60;
		ip[4] = (tcpl + p->plen) >> 8;
		ip[5] = (tcpl + p->plen) & 0xff;
		ip[6] = 6;
		ip[7] = 64;
		memcpy(ip + 8, p->src, 16);
		memcpy(ip + 24, p->dst, 16);
	} else {
		ip[0] = 0x45;
		ip[2] = (l3 + tcpl + p->plen) >> 8;
		ip[3] = (l3 + tcpl + p->plen) & 0xff;
		ip[6] = 0x40;
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, p->src, 4);
		memcpy(ip + 16, p->dst, 4);
		uint16_t c = t_fold(t_sum(ip, 20, 0));
		ip[10] = c >> 8;
		ip[11] = c & 0xff;
	}
	tcp[0] = p->sport >> 8; tcp[1] = p->sport;
	tcp[2] = p->dport >> 8; tcp[3] = p->dport;
	uint32_t v = htonl(p->seq); memcpy(tcp + 4, &v, 4);
	v = htonl(p->ack); memcpy(tcp + 8, &v, 4);
	tcp[12] = (tcpl / 4) << 4;
	tcp[13] = p->flags;
	tcp[14] = p->window >> 8; tcp[15] = p->window & 0xff;
	if (p->optlen)
		memcpy(tcp + 20, p->opts, p->optlen);
	if (p->plen)
		memcpy(tcp + tcpl, p->payload, p->plen);
	uint16_t c = t_l4_verify(p->v6, ip, tcp, tcpl + p->plen, 6);
	tcp[16] = c >> 8;
	tcp[17] = c & 0xff;
	return n;
}

static inline uint32_t t_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint16_t t_be16(const uint8_t *p)
{
	return (p[0] << 8) | p[1];
}

static inline void t_hexdump(const char *what, const uint8_t *p, size_t n)
{
	fprintf(stderr, "%s (%zu bytes):", what, n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", p[i]);
	fputc('\n', stderr);
}

/* Reads a whole file (test fixtures). */
static inline uint8_t *t_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	if (buf && fread(buf, 1, n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}


/* ---------- a hello builder ---------- */
struct hb {
	uint8_t b[20000];
	size_t n, ext_start;
};

static inline void put(struct hb *h, const void *p, size_t n) { memcpy(h->b + h->n, p, n); h->n += n; }
static inline void put8(struct hb *h, unsigned v) { h->b[h->n++] = v; }
static inline void put16(struct hb *h, unsigned v) { put8(h, v >> 8); put8(h, v); }

static inline void hb_begin(struct hb *h)
{
	uint8_t random[32] = { 1, 2, 3 };
	h->n = 0;
	put8(h, 0x16); put16(h, 0x0301); put16(h, 0);          /* record, length later */
	put8(h, 1); put8(h, 0); put16(h, 0);                   /* handshake, length later */
	put16(h, 0x0303); put(h, random, 32);
	put8(h, 32); for (int i = 0; i < 32; i++) put8(h, i); /* session id */
	put16(h, 6); put16(h, 0x1301); put16(h, 0x1302); put16(h, 0xcaca); /* suites incl. GREASE */
	put8(h, 1); put8(h, 0);
	put16(h, 0);                                           /* extensions length later */
	h->ext_start = h->n;
}

static inline void hb_ext(struct hb *h, unsigned type, const void *data, size_t n)
{
	put16(h, type); put16(h, n); if (n) put(h, data, n);
}

static inline void hb_sni(struct hb *h, const char *name)
{
	size_t l = strlen(name);
	put16(h, 0); put16(h, l + 5); put16(h, l + 3); put8(h, 0); put16(h, l); put(h, name, l);
}

static inline size_t hb_end(struct hb *h)
{
	size_t ext = h->n - h->ext_start, hs = h->n - 9, rec = h->n - 5;
	h->b[h->ext_start - 2] = ext >> 8; h->b[h->ext_start - 1] = ext;
	h->b[6] = hs >> 16; h->b[7] = hs >> 8; h->b[8] = hs;
	h->b[3] = rec >> 8; h->b[4] = rec;
	return h->n;
}

/* Re-cuts a single-record hello into records of at most frag bytes of
 * handshake data each (as TLS allows and OpenSSL's max_send_fragment does). */
static inline size_t hb_split_records(const uint8_t *in, size_t n, size_t frag, uint8_t *out)
{
	size_t body = n - 5, o = 0;
	for (size_t i = 0; i < body; i += frag) {
		size_t l = body - i < frag ? body - i : frag;
		out[o++] = 0x16; out[o++] = 3; out[o++] = 1; out[o++] = l >> 8; out[o++] = l;
		memcpy(out + o, in + 5 + i, l);
		o += l;
	}
	return o;
}

/* A browser-shaped hello of about size bytes with the name after a big key
 * share, so the name sits past the first segment. */
static inline size_t hb_browser(struct hb *h, const char *name, size_t size)
{
	static uint8_t zeros[16384];
	uint8_t alpn[] = { 0, 12, 2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
	hb_begin(h);
	hb_ext(h, 0x0a0a, NULL, 0);
	hb_ext(h, 0x0010, alpn, sizeof(alpn));
	size_t base = h->n + 4 + 9 + strlen(name) + 4;
	hb_ext(h, 0x0033, zeros, size > base ? size - base : 1);
	hb_sni(h, name);
	return hb_end(h);
}

#endif
