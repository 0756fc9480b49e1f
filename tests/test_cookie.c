// SPDX-License-Identifier: Apache-2.0
/* SipHash, the SYN cookie layout, the fleet secret's derivation, and the
 * TCP options the cookie encodes (the common blocks read without the walk). */
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "testlib.h"
#include "veil.h"
#include "veil/cookie.h"
#include "veil/pkt.h"
#include "veil/gw.h"

static uint64_t sip_ref(size_t len)
{
	__u64 key[2], w[4] = { 0 };
	uint8_t k[16], *m = (uint8_t *)w;
	for (int i = 0; i < 16; i++) k[i] = i;
	memcpy(key, k, 16);
	for (size_t i = 0; i < len; i++) m[i] = i;
	return vm_siphash(key, w, len);
}

/* Vectors from the SipHash paper (key 00..0f, message 00..len-1). */
static void siphash_reference_vectors(void)
{
	CHECK(sip_ref(0) == 0x726fdb47dd0e0e31ULL, "len 0: %016llx", (unsigned long long)sip_ref(0));
	CHECK(sip_ref(1) == 0x74f839c593dc67fdULL, "len 1: %016llx", (unsigned long long)sip_ref(1));
	CHECK(sip_ref(15) == 0xa129ca6149be45e5ULL, "len 15: %016llx", (unsigned long long)sip_ref(15));
}

/* A test key: every part of it from the two words (the IPv6 form's keys
 * other than the IPv4 one's). */
static struct vm_cookie_key mk_key(__u64 a, __u64 b)
{
	struct vm_cookie_key k = { .sip = { a, b }, .sip6 = { a ^ 0x5555555555555555ULL, b * 3 + 1 } };
	for (int i = 0; i < 8; i++)
		k.nh6[i] = (__u32)((a >> (i * 8)) * 0x9e3779b1u + b * (i + 1));
	return k;
}

static struct vm_cookie_in tuple(void)
{
	struct vm_cookie_in in = { .sport = htons(50000), .dport = htons(443), .client_isn = 0xdeadbeef };
	vm_addr_parse("198.18.0.2", in.saddr);
	vm_addr_parse("198.18.100.1", in.daddr);
	return in;
}

static void cookie_round_trip(void)
{
	const struct vm_cookie_key k = mk_key(1, 2), ko = mk_key(1, 3), *key = &k, *other = &ko;
	struct vm_cookie_opts o = { .mss = 1460, .wscale = 7, .sack_ok = 1, .ts_ok = 1 }, d;
	struct vm_cookie_in in = tuple(), chk;
	__u32 t = 1000000, c = vm_cookie_make(key, &in, t, &o);

	chk = tuple();
	CHECK(vm_cookie_check_key(key, &chk, c, t), "same window");
	chk = tuple();
	CHECK(vm_cookie_check_key(key, &chk, c, t + 1), "next window");
	chk = tuple();
	CHECK(!vm_cookie_check_key(key, &chk, c, t + 2), "two windows later must fail");
	chk = tuple();
	CHECK(!vm_cookie_check_key(other, &chk, c, t), "other key");
	chk = tuple();
	chk.sport = htons(50001);
	CHECK(!vm_cookie_check_key(key, &chk, c, t), "other port");
	chk = tuple();
	chk.daddr[15] ^= 1;
	CHECK(!vm_cookie_check_key(key, &chk, c, t), "other VIP");
	chk = tuple();
	CHECK(!vm_cookie_check_key(key, &chk, c ^ 0x10, t), "flipped TS bit must break the MAC");
	vm_cookie_decode(c, in.client_isn, &d);
	CHECK(d.mss == 1440 && d.wscale == 7 && d.sack_ok && d.ts_ok, "decode: mss %u ws %u", d.mss, d.wscale);
	o = (struct vm_cookie_opts){ .mss = 600, .wscale = 0xff };
	c = vm_cookie_make(key, &in, t, &o);
	vm_cookie_decode(c, in.client_isn, &d);
	CHECK(d.mss == 536 && d.wscale == 0xff && !d.sack_ok && !d.ts_ok, "decode without options");
}

/* The MAC's input, byte for byte as docs/wire-formats.md draws it, hashed
 * by the reference SipHash: an IPv4 connection's 15 bytes under the key's
 * sip; an IPv6 one's 15 under sip6, the first 8 the NH fold of its
 * addresses, computed here from the doc's formula with 64-bit arithmetic
 * written out.  So a change of either form (every gateway of a fleet must
 * agree) fails here.  An IPv6 tuple with one IPv4-mapped address is the
 * IPv6 form. */
static __u32 mac_by_the_doc(const struct vm_cookie_key *key, const struct vm_cookie_in *in, int v4)
{
	__u64 w[2] = { 0 };
	uint8_t *m = (uint8_t *)w;
	size_t n = 0;
	uint8_t opt = (uint8_t)in->low;          /* the low eight bits: mss, sack, ts, wscale */
	__u16 tc = (__u16)in->tcount;            /* the time counter's low 16 bits, host order */
	if (v4) {
		memcpy(m, in->saddr + 12, 4); memcpy(m + 4, in->daddr + 12, 4); n = 8;
	} else {
		uint8_t a[32];
		uint32_t x[8];
		uint64_t nh = 0;
		memcpy(a, in->saddr, 16); memcpy(a + 16, in->daddr, 16);
		for (int i = 0; i < 8; i++)      /* each word's bytes little-endian */
			x[i] = a[4 * i] | (uint32_t)a[4 * i + 1] << 8 | (uint32_t)a[4 * i + 2] << 16 |
			       (uint32_t)a[4 * i + 3] << 24;
		for (int i = 0; i < 4; i++)
			nh += (uint64_t)(uint32_t)(x[2 * i] + key->nh6[2 * i]) * (uint32_t)(x[2 * i + 1] + key->nh6[2 * i + 1]);
		for (int i = 0; i < 8; i++)
			m[i] = (uint8_t)(nh >> (8 * i));
		n = 8;
	}
	memcpy(m + n, &in->sport, 2); memcpy(m + n + 2, &in->dport, 2);
	m[n + 4] = opt;
	memcpy(m + n + 5, &tc, 2);
	n += 7;
	CHECK(n == 15, "message length %zu", n);
	return (__u32)(vm_siphash(v4 ? key->sip : key->sip6, w, (__u32)n) >> 42);
}

static void cookie_mac_layout(void)
{
	const struct vm_cookie_key k = mk_key(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL), *key = &k;
	struct vm_cookie_in in = tuple();
	in.tcount = 27572000;
	in.low = 0x2d7;
	CHECK(vm_cookie_mac(key, &in) == mac_by_the_doc(key, &in, 1), "IPv4: 15-byte form");
	/* the ISN: the 32 bits of the layout plus the client's ISN */
	struct vm_cookie_opts o = { .mss = 1460, .wscale = 7, .sack_ok = 1, .ts_ok = 1 };
	struct vm_cookie_in mk = tuple();
	__u32 isn = vm_cookie_make(key, &mk, in.tcount, &o);
	CHECK(isn == (((mac_by_the_doc(key, &mk, 1) << 10) | mk.low) + mk.client_isn), "IPv4: the ISN's layout");
	vm_addr_parse("2001:db8::2", in.saddr);
	vm_addr_parse("2001:db8:100::1", in.daddr);
	CHECK(vm_cookie_mac(key, &in) == mac_by_the_doc(key, &in, 0), "IPv6: 15-byte form, NH fold");
	struct vm_cookie_in mixed = tuple();
	mixed.tcount = in.tcount;
	mixed.low = in.low;
	vm_addr_parse("2001:db8:100::1", mixed.daddr);
	CHECK(vm_cookie_mac(key, &mixed) == mac_by_the_doc(key, &mixed, 0), "one mapped address: IPv6 form");
	/* the forms' keys are their own: the IPv4 form's SipHash key moves
	 * only IPv4 MACs, the IPv6 form's two keys only IPv6 ones */
	struct vm_cookie_key k2 = k;
	struct vm_cookie_in v4 = tuple();
	v4.tcount = in.tcount;
	v4.low = in.low;
	__u32 m4 = vm_cookie_mac(key, &v4), m6 = vm_cookie_mac(key, &in);
	k2.sip[1] ^= 1;
	CHECK(vm_cookie_mac(&k2, &v4) != m4 && vm_cookie_mac(&k2, &in) == m6, "sip: the IPv4 form's alone");
	k2 = k; k2.sip6[0] ^= 1;
	CHECK(vm_cookie_mac(&k2, &v4) == m4 && vm_cookie_mac(&k2, &in) != m6, "sip6: the IPv6 form's alone");
	k2 = k; k2.nh6[5] ^= 0x100;
	CHECK(vm_cookie_mac(&k2, &v4) == m4 && vm_cookie_mac(&k2, &in) != m6, "nh6: the IPv6 form's alone");
	/* every IPv6 address byte is covered: one flipped moves the MAC */
	int same6 = 0;
	for (int i = 0; i < 32; i++) {
		struct vm_cookie_in b6 = in;
		(i < 16 ? b6.saddr : b6.daddr)[i & 15] ^= (uint8_t)(1u << (i & 7));
		same6 += vm_cookie_mac(key, &b6) == m6;
	}
	CHECK(same6 == 0, "%d of 32 one-bit address changes keep the IPv6 MAC", same6);
	/* every field is covered: flip one bit of each, the MAC moves (22 bits:
	 * a chance miss is 1 in 4M per field) */
	struct vm_cookie_in a = tuple();
	a.tcount = 99; a.low = 0x155;
	__u32 m0 = vm_cookie_mac(key, &a);
	struct vm_cookie_in b;
	b = a; b.saddr[15] ^= 1; CHECK(vm_cookie_mac(key, &b) != m0, "client address");
	b = a; b.daddr[12] ^= 0x80; CHECK(vm_cookie_mac(key, &b) != m0, "VIP");
	b = a; b.sport ^= 1; CHECK(vm_cookie_mac(key, &b) != m0, "client port");
	b = a; b.dport ^= 0x100; CHECK(vm_cookie_mac(key, &b) != m0, "VIP port");
	b = a; b.tcount ^= 0x8000u; CHECK(vm_cookie_mac(key, &b) != m0, "time counter");
	b = a; b.low ^= 0x80; CHECK(vm_cookie_mac(key, &b) != m0, "option bits");
	/* not hashed: the time counter past its 16 bits (no key lives 2^16
	 * windows), the t bits (the counter's own), the client's ISN (added) */
	b = a; b.tcount ^= 0x10000u; CHECK(vm_cookie_mac(key, &b) == m0, "time counter above 16 bits");
	b = a; b.client_isn ^= 0x80000000u; CHECK(vm_cookie_mac(key, &b) == m0, "client ISN");
	/* yet a cookie is bound to the client's ISN: made for one, it fails
	 * for another (the sum moves the low bits or the MAC) */
	struct vm_cookie_in c1 = tuple(), chk;
	__u32 c = vm_cookie_make(key, &c1, 5000, &o), bad = 0;
	for (__u32 d = 1; d < 4096; d++) {
		chk = tuple();
		chk.client_isn += d;
		bad += vm_cookie_check_key(key, &chk, c, 5000);
		chk = tuple();
		chk.client_isn -= d;
		bad += vm_cookie_check_key(key, &chk, c, 5000);
	}
	CHECK(bad == 0, "a cookie valid for %u other client ISNs", bad);
}

/* The gateway's MAC and check work from the parsed packet (vm_gw_cookie_mac,
 * vm_gw_cookie_ok: no copy of the tuple, the form from the parser's
 * family): the same MAC as vm_cookie_mac over the tuple, for IPv4, IPv6 and
 * an IPv6 packet whose addresses are both IPv4-mapped (the short form, as
 * vm_cookie_mac judges it); and the same verdicts as vm_cookie_check_key. */
static void cookie_from_packet(void)
{
	struct cookie_secret sec = { .cur = mk_key(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL), .prev = mk_key(5, 6), .has_prev = 1 };
	const char *addrs[][2] = { { "198.18.0.2", "198.18.100.1" }, { "2001:db8::2", "2001:db8:100::1" },
				   { "::ffff:198.18.0.2", "::ffff:198.18.100.1" }, { "198.18.0.2", "2001:db8::9" } };
	unsigned seed = 11;
	for (int a = 0; a < 4; a++) {
		for (int i = 0; i < 2000; i++) {
			struct vm_pkt p = { .family = a == 0 ? VM_AF_INET : VM_AF_INET6 };
			struct vm_cookie_in in = { 0 };
			vm_addr_parse(addrs[a][0], p.saddr);
			vm_addr_parse(addrs[a][1], p.daddr);
			p.saddr[15] ^= (__u8)i;
			p.sport = (__be16)rand_r(&seed);
			p.dport = (__be16)rand_r(&seed);
			memcpy(in.saddr, p.saddr, 16);
			memcpy(in.daddr, p.daddr, 16);
			in.sport = p.sport;
			in.dport = p.dport;
			in.client_isn = (__u32)rand_r(&seed) << 1 ^ (__u32)rand_r(&seed);
			in.tcount = 27572000 + (i & 3);
			in.low = (__u32)rand_r(&seed) & VM_COOKIE_LOW_MASK;
			__u32 m = vm_gw_cookie_mac(&sec.cur, &p, in.tcount, in.low);
			if (m != vm_cookie_mac(&sec.cur, &in)) {
				CHECK(0, "%s: the packet's MAC differs from the tuple's (run %d)", addrs[a][1], i);
				return;
			}
			/* a cookie made for the tuple; checked from the packet, and
			 * for a forged one, as the tuple's checker does */
			struct vm_cookie_opts o = { .mss = 1460, .wscale = i & 15, .sack_ok = i & 1, .ts_ok = 1 };
			__u32 c = vm_cookie_make(&sec.cur, &in, in.tcount, &o), tnow = in.tcount + (i & 1);
			__u32 forged = c ^ (1u << (10 + i % 22));
			struct vm_cookie_in chk = in;
			int ok = vm_gw_cookie_ok(&sec, &p, in.client_isn, c, tnow);
			int bad = vm_gw_cookie_ok(&sec, &p, in.client_isn, forged, tnow);
			int other_isn = vm_gw_cookie_ok(&sec, &p, in.client_isn + 1, c, tnow);
			if (!ok || bad != vm_cookie_check_key(&sec.cur, &chk, forged, tnow) || other_isn) {
				CHECK(0, "%s: check from the packet: valid %d forged %d other ISN %d (run %d)", addrs[a][1], ok,
				      bad, other_isn, i);
				return;
			}
			/* made under the previous key: valid only while it is kept */
			c = vm_cookie_make(&sec.prev, &in, in.tcount, &o);
			sec.has_prev = 0;
			int without = vm_gw_cookie_ok(&sec, &p, in.client_isn, c, tnow);
			sec.has_prev = 1;
			if (without || !vm_gw_cookie_ok(&sec, &p, in.client_isn, c, tnow)) {
				CHECK(0, "%s: previous key: %d without it, valid with it expected (run %d)", addrs[a][1],
				      without, i);
				return;
			}
			/* its selector bit turned: the current key's MAC, which fails */
			if (vm_gw_cookie_ok(&sec, &p, in.client_isn, c ^ (1u << VM_COOKIE_K_SHIFT), tnow)) {
				CHECK(0, "%s: a cookie naming the other key validated (run %d)", addrs[a][1], i);
				return;
			}
		}
	}
	/* too old: two windows on, none of the times it names is near */
	struct vm_pkt p = { .family = VM_AF_INET, .sport = 1, .dport = 2 };
	struct vm_cookie_in in = { .sport = 1, .dport = 2, .client_isn = 9 };
	struct vm_cookie_opts o = { .mss = 1460, .wscale = 7 };
	vm_addr_parse("198.18.0.2", p.saddr);
	vm_addr_parse("198.18.100.1", p.daddr);
	memcpy(in.saddr, p.saddr, 16);
	memcpy(in.daddr, p.daddr, 16);
	__u32 c = vm_cookie_make(&sec.cur, &in, 1000, &o);
	CHECK(vm_gw_cookie_ok(&sec, &p, 9, c, 1001) && !vm_gw_cookie_ok(&sec, &p, 9, c, 1002) &&
	      !vm_gw_cookie_ok(&sec, &p, 9, c, 999), "windows: valid in its own and the next only");
	/* keys that share the selector bit (not vm_secret_derive's): both are
	 * tried, as before the bit */
	struct cookie_secret same = sec;
	same.prev = mk_key(4, 6);
	CHECK(vm_cookie_kbit(&same.prev) == vm_cookie_kbit(&same.cur), "mk_key(4, 6) shares the bit");
	c = vm_cookie_make(&same.prev, &in, 1000, &o);
	CHECK(vm_gw_cookie_ok(&same, &p, 9, c, 1000) && !vm_gw_cookie_ok(&sec, &p, 9, c, 1000),
	      "keys sharing the selector bit: the previous one's cookie valid");
}

/* Forging: across many tuples, a random cookie almost never validates. */
static void cookie_forgery_rate(void)
{
	const struct vm_cookie_key k = mk_key(0x1111, 0x2222), *key = &k;
	unsigned seed = 7, hits = 0;
	for (int i = 0; i < 200000; i++) {
		struct vm_cookie_in in = tuple();
		if (i & 1) {   /* IPv6 tuples too: the NH fold's form */
			vm_addr_parse("2001:db8::2", in.saddr);
			vm_addr_parse("2001:db8:100::1", in.daddr);
			in.saddr[8 + (i >> 1) % 8] = (uint8_t)rand_r(&seed);
		}
		in.client_isn = rand_r(&seed);
		if (vm_cookie_check_key(key, &in, (uint32_t)rand_r(&seed) << 1 ^ rand_r(&seed), 5000))
			hits++;
	}
	/* 22-bit MAC, two windows of which one matches the time bits: ~1/4M each */
	CHECK(hits < 5, "%u forged cookies accepted in 200000", hits);
}

static void secret_derivation(void)
{
	uint8_t master[32], other[32];
	struct cookie_secret a, b, c;
	for (int i = 0; i < 32; i++) { master[i] = i; other[i] = i ^ 0x80; }
	vm_secret_derive(master, 32, 36000, 3600, &a);
	vm_secret_derive(master, 32, 36000 + 3599, 3600, &b);
	CHECK(!memcmp(&a, &b, sizeof(a)), "same epoch, same keys (every gateway agrees)");
	vm_secret_derive(master, 32, 36000 + 3600, 3600, &c);
	CHECK(c.epoch == a.epoch + 1 && !memcmp(&c.prev, &a.cur, sizeof(a.cur)) && memcmp(&c.cur, &a.cur, sizeof(a.cur)),
	      "rotation keeps the previous key");
	vm_secret_derive(other, 32, 36000, 3600, &b);
	CHECK(memcmp(b.cur.sip, a.cur.sip, 16) && memcmp(b.cur.sip6, a.cur.sip6, 16) &&
	      memcmp(b.cur.nh6, a.cur.nh6, 32), "another master, other keys");
	/* The keys by the doc (docs/wire-formats.md): the IPv4 form's as it was
	 * before the IPv6 form had keys of its own (IPv4 cookies outlive the
	 * upgrade), the IPv6 form's from HMAC-SHA512 under its own label. */
	uint8_t msg[24], mac[64];
	unsigned int ml = sizeof(mac);
	memcpy(msg, "veilmesh-cookie-", 16);
	for (int i = 0; i < 8; i++) msg[16 + i] = (uint8_t)(a.epoch >> (56 - 8 * i));
	HMAC(EVP_sha256(), master, 32, msg, sizeof(msg), mac, &ml);
	mac[0] = (uint8_t)((mac[0] & ~1u) | (a.epoch & 1));   /* the selector bit: the epoch's parity */
	CHECK(!memcmp(a.cur.sip, mac, 16), "IPv4 form's key: HMAC-SHA256(master, \"veilmesh-cookie-\" epoch), its "
	      "lowest bit the epoch's parity");
	CHECK(vm_cookie_kbit(&a.cur) == (a.epoch & 1) && vm_cookie_kbit(&c.cur) == (c.epoch & 1) &&
	      vm_cookie_kbit(&a.prev) != vm_cookie_kbit(&a.cur), "the current and previous keys' selector bits differ");
	memcpy(msg, "veilmesh-cookie6", 16);
	HMAC(EVP_sha512(), master, 32, msg, sizeof(msg), mac, &ml);
	CHECK(!memcmp(a.cur.sip6, mac, 16) && !memcmp(a.cur.nh6, mac + 16, 32),
	      "IPv6 form's keys: HMAC-SHA512(master, \"veilmesh-cookie6\" epoch)");
}

static void secret_file_checks(void)
{
	char path[] = "/tmp/veil-secret-XXXXXX", err[256];
	uint8_t k[64];
	size_t n;
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	FILE *f = fdopen(fd, "w");
	fputs("00112233445566778899aabbccddeeff\n", f);
	fclose(f);
	CHECK(vm_secret_read(path, k, &n, err, sizeof(err)) == 0 && n == 16 && k[15] == 0xff, "16-byte secret");
	f = fopen(path, "w");
	fputs("0011zz\n", f);
	fclose(f);
	CHECK(vm_secret_read(path, k, &n, err, sizeof(err)) && strstr(err, "hex"), "bad hex: %s", err);
	f = fopen(path, "w");
	fputs("0011\n", f);
	fclose(f);
	CHECK(vm_secret_read(path, k, &n, err, sizeof(err)) && strstr(err, "16 bytes"), "too short: %s", err);
	unlink(path);
	CHECK(vm_secret_read(path, k, &n, err, sizeof(err)) && strstr(err, path), "missing file: %s", err);
}

/* vm_tcpopt_common must say exactly what the walk says for the blocks it
 * takes, and leave every other block to the walk: the canonical blocks with
 * varied values, and each with every byte changed to values that matter
 * (option kinds, lengths, a large window scale). */
static int tcpopt_same(const __u8 *opt, __u32 len, int *taken)
{
	struct vm_tcpopts a, b;
	struct vm_tcpopt_state st;
	int rw = vm_tcpopt_walk(opt, len, &b, &st);

	memset(&a, 0x5a, sizeof(a));
	*taken = vm_tcpopt_common(opt, len, &a);
	if (!*taken)
		return 1;
	return rw == 0 && a.mss == b.mss && a.wscale == b.wscale && a.sack_ok == b.sack_ok && a.ts_ok == b.ts_ok &&
	       a.ts_off == b.ts_off && a.sack_off == b.sack_off && a.sack_len == b.sack_len && a.tsval == b.tsval &&
	       a.tsecr == b.tsecr;
}

static void tcpopt_common_blocks(void)
{
	static const __u8 ts12[12] = { 1, 1, 8, 10, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };
	static const __u8 syn20[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7 };
	static const __u8 vals[] = { 0, 1, 2, 3, 4, 5, 8, 10, 12, 14, 15, 20, 40, 0x80, 0xff };
	__u8 b[VM_OPT_BUF];
	int taken, n_taken = 0, n_left = 0;

	for (int which = 0; which < 2; which++) {
		const __u8 *base = which ? syn20 : ts12;
		__u32 len = which ? 20 : 12;
		memset(b, 0, sizeof(b));
		memcpy(b, base, len);
		CHECK(tcpopt_same(b, len, &taken) && taken, "the canonical %u-byte block", len);
		for (__u32 i = 0; i < len; i++)
			for (size_t v = 0; v < sizeof(vals); v++) {
				memcpy(b, base, len);
				b[i] = vals[v];
				for (__u32 l = len - 2; l <= len + 2; l++) {
					CHECK(tcpopt_same(b, l, &taken), "%u-byte block, byte %u = %u, length %u", len, i,
					      vals[v], l);
					taken ? n_taken++ : n_left++;
				}
			}
	}
	CHECK(n_taken > 0 && n_left > 0, "both kinds seen: %d taken, %d walked", n_taken, n_left);
	/* the values come through whatever they are */
	memcpy(b, syn20, 20);
	b[2] = 0x12; b[3] = 0x34; b[19] = 30;
	struct vm_tcpopts o;
	CHECK(vm_tcpopt_common(b, 20, &o) && o.mss == 0x1234 && o.wscale == VM_TCP_WSCALE_MAX && o.sack_ok &&
	      o.ts_ok && o.ts_off == 8 && o.tsval == 0x01020304 && o.tsecr == 0x05060708, "SYN values");
}

int main(void)
{
	RUN(siphash_reference_vectors);
	RUN(cookie_round_trip);
	RUN(cookie_mac_layout);
	RUN(cookie_from_packet);
	RUN(cookie_forgery_rate);
	RUN(secret_derivation);
	RUN(secret_file_checks);
	RUN(tcpopt_common_blocks);
	return t_done();
}
