/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SYN cookies keyed by the gateway fleet's secret (SipHash-2-4), so that any
 * gateway of a group validates any other's cookie.  Layout of the 32-bit
 * cookie, the ISN we send less the client's ISN (docs/wire-formats.md):
 *
 *   31            10  9   8  7   6 5    4    3      0
 *   +---------------+---+---+-----+----+----+--------+
 *   |  MAC (22 bits)| k | t | mss |sack| ts | wscale |
 *   +---------------+---+---+-----+----+----+--------+
 *
 * k is the key's selector bit (vm_cookie_kbit: the current and the
 * previous epoch's keys differ in it), so that a check computes one MAC,
 * under the key that made the cookie, not one under each; t is the low bit
 * of the time counter (TAI seconds / window; a cookie is valid in its own
 * window and the next, which one bit tells apart), mss an
 * index into vm_cookie_mss[], wscale 15 means "no window scale".  The MAC
 * covers the 4-tuple, the time counter and the eight option bits, so none of
 * the encoded options can be forged (vm_cookie_mac).  The ISN sent is these
 * 32 bits plus the client's ISN (as Linux's cookies add it): the client's ISN
 * is bound by the sum, not hashed, which keeps the MAC's message within
 * SipHash's two compressions.  An IPv6 connection's addresses are first
 * folded into 8 bytes by NH under a key of the epoch's (vm_cookie_nh6).
 */
#ifndef VEIL_COOKIE_H
#define VEIL_COOKIE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "wire.h"    /* VM_WSCALE_NONE */

#ifndef VM_INLINE
#define VM_INLINE static inline __attribute__((always_inline))
#endif

#define VM_COOKIE_WS_NONE 15
#define VM_COOKIE_WS_MAX  14      /* window scales carried (RFC 7323's largest); more: none */
#define VM_COOKIE_MAX_AGE 1       /* windows a cookie stays valid after the one it was made in */

/* The fields of the cookie, as drawn above */
#define VM_COOKIE_LOW_BITS   10   /* k, t, mss, sack, ts, wscale */
#define VM_COOKIE_LOW_MASK   0x3ff
#define VM_COOKIE_MAC_BITS   22   /* the top bits of the SipHash */
#define VM_COOKIE_K_SHIFT    9    /* the key's selector bit (vm_cookie_kbit) */
#define VM_COOKIE_T_SHIFT    8
#define VM_COOKIE_T_MASK     1    /* the time counter's low bit */
#define VM_COOKIE_MSS_SHIFT  6
#define VM_COOKIE_MSS_MASK   3    /* an index into vm_cookie_mss() */
#define VM_COOKIE_SACK_SHIFT 5
#define VM_COOKIE_TS_SHIFT   4
#define VM_COOKIE_WS_MASK    15
#define VM_COOKIE_OPT_MASK   0xff /* the bits below t: mss, sack, ts, wscale */

/* The MAC covers the time counter's low VM_COOKIE_TC_BITS bits.  A cookie
 * could only come back to life after 2^16 windows, and no key lives that
 * long: a key is used for two rotation periods (current, then previous), at
 * most 2 * VM_COOKIE_ROTATE_S_MAX seconds, and a window is at least
 * VM_COOKIE_WINDOW_S_MIN seconds (dataplane/config.c refuses a
 * configuration outside these bounds). */
#define VM_COOKIE_TC_BITS        16
#define VM_COOKIE_TC_MASK        0xffff
#define VM_COOKIE_WINDOW_S_MIN   8
#define VM_COOKIE_WINDOW_S_MAX   600
#define VM_COOKIE_ROTATE_S_MIN   60
#define VM_COOKIE_ROTATE_S_MAX   86400
_Static_assert(2ULL * VM_COOKIE_ROTATE_S_MAX / VM_COOKIE_WINDOW_S_MIN < (1ULL << VM_COOKIE_TC_BITS),
	       "a cookie key must not outlive the MAC's time counter");
_Static_assert(VM_COOKIE_MAX_AGE <= VM_COOKIE_T_MASK, "t must tell apart the windows a cookie is valid in");

/* The four MSS values a cookie can carry (a function, not a table: BPF
 * objects then need no .rodata). */
VM_INLINE __u16 vm_cookie_mss(__u32 idx)
{
	switch (idx & VM_COOKIE_MSS_MASK) {
	case 0: return 536;
	case 1: return 1220;
	case 2: return 1380;
	default: return 1440;
	}
}

struct vm_cookie_opts {
	__u16 mss;
	__u8 wscale;              /* VM_WSCALE_NONE when absent */
	__u8 sack_ok;
	__u8 ts_ok;
};

/* The tuple the MAC covers, IPv4 addresses IPv4-mapped (vm_cookie_mac). */
struct vm_cookie_in {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 client_isn;
	__u32 tcount;
	__u32 low;                /* the ten option/time bits */
} __attribute__((aligned(4)));   /* read in 32-bit words (vm_cookie_rd32) */

#define VM_ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))
#define VM_SIPROUND(v0, v1, v2, v3) do {                                  \
	v0 += v1; v1 = VM_ROTL(v1, 13); v1 ^= v0; v0 = VM_ROTL(v0, 32);       \
	v2 += v3; v3 = VM_ROTL(v3, 16); v3 ^= v2;                             \
	v0 += v3; v3 = VM_ROTL(v3, 21); v3 ^= v0;                             \
	v2 += v1; v1 = VM_ROTL(v1, 17); v1 ^= v2; v2 = VM_ROTL(v2, 32);       \
} while (0)

/* SipHash-2-4 (Aumasson & Bernstein) over LEN bytes held little-endian in
 * w[], zero-padded past len to a whole word.  LEN is a constant at every
 * call, so the compiler unrolls the rounds (the BPF JIT has no rotate: each
 * round is ~30 instructions, a third of a SYN's cost before this). */
#define VM_SIPHASH_2_4(out, key, w, LEN) do {                               \
	__u64 v0_ = 0x736f6d6570736575ULL ^ (key)[0];                          \
	__u64 v1_ = 0x646f72616e646f6dULL ^ (key)[1];                          \
	__u64 v2_ = 0x6c7967656e657261ULL ^ (key)[0];                          \
	__u64 v3_ = 0x7465646279746573ULL ^ (key)[1];                          \
	__u64 b_ = ((__u64)(LEN)) << 56;                                       \
	for (__u32 i_ = 0; i_ < (LEN) / 8; i_++) {                             \
		__u64 m_ = (w)[i_];                                            \
		v3_ ^= m_;                                                     \
		VM_SIPROUND(v0_, v1_, v2_, v3_);                               \
		VM_SIPROUND(v0_, v1_, v2_, v3_);                               \
		v0_ ^= m_;                                                     \
	}                                                                      \
	if ((LEN) & 7)                                                         \
		b_ |= (w)[(LEN) / 8];                                          \
	v3_ ^= b_;                                                             \
	VM_SIPROUND(v0_, v1_, v2_, v3_);                                       \
	VM_SIPROUND(v0_, v1_, v2_, v3_);                                       \
	v0_ ^= b_;                                                             \
	v2_ ^= 0xff;                                                           \
	VM_SIPROUND(v0_, v1_, v2_, v3_);                                       \
	VM_SIPROUND(v0_, v1_, v2_, v3_);                                       \
	VM_SIPROUND(v0_, v1_, v2_, v3_);                                       \
	VM_SIPROUND(v0_, v1_, v2_, v3_);                                       \
	(out) = v0_ ^ v1_ ^ v2_ ^ v3_;                                         \
} while (0)

/* Words read out of other types: may_alias keeps the compiler from
 * reordering them against the stores that filled them. */
typedef __u64 __attribute__((may_alias)) vm_u64a;

/* SipHash-2-4 for any length below 64 (DNS cookies, tests). */
VM_INLINE __u64 vm_siphash(const __u64 key[2], const vm_u64a *w, __u32 len)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ key[0];
	__u64 v1 = 0x646f72616e646f6dULL ^ key[1];
	__u64 v2 = 0x6c7967656e657261ULL ^ key[0];
	__u64 v3 = 0x7465646279746573ULL ^ key[1];
	__u32 full = len >> 3;
	__u64 b = ((__u64)len) << 56;

	for (__u32 i = 0; i < 8 && i < full; i++) {
		__u64 m = w[i];
		v3 ^= m;
		VM_SIPROUND(v0, v1, v2, v3);
		VM_SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	if (len & 7)
		b |= w[full & 7];
	v3 ^= b;
	VM_SIPROUND(v0, v1, v2, v3);
	VM_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	VM_SIPROUND(v0, v1, v2, v3);
	VM_SIPROUND(v0, v1, v2, v3);
	VM_SIPROUND(v0, v1, v2, v3);
	VM_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The bytes the MAC covers (docs/wire-formats.md), as little-endian words,
 * 15 bytes in both forms, so two compressions of SipHash-2-4:
 *   both addresses IPv4-mapped (an IPv4 connection), under the key's sip:
 *     client address (4), VIP (4), client port (2), VIP port (2), the eight
 *     option bits (1), the time counter's low 16 bits (2);
 *   otherwise (IPv6), under the key's sip6: the NH fold of the two
 *     addresses (8, vm_cookie_nh6), then the same 7.
 * The two forms are hashed under independent keys, so neither's MAC says
 * anything of the other's. */
#define VM_COOKIE_MSG4_LEN 15
#define VM_COOKIE_MSG6_LEN 15

/* The addresses are read as the 32-bit words they were written as (the
 * parser, the copy into vm_cookie_in): a wider load of narrower stores waits
 * for them to reach the cache, and a byte-wise copy (what clang makes of
 * memcpy from a u8 pointer for BPF) costs 8 loads a word. */
typedef __u32 __attribute__((may_alias)) vm_cookie_u32;

VM_INLINE __u32 vm_cookie_rd32(const __u8 *b)
{
	return *(const vm_cookie_u32 *)b;
}

VM_INLINE int vm_cookie_v4mapped(const __u8 *a)
{
	/* bytes 0 0 0xff 0xff, as a little-endian load of them gives them */
	return (vm_cookie_rd32(a) | vm_cookie_rd32(a + 4)) == 0 && vm_cookie_rd32(a + 8) == 0xffff0000u;
}

/* The message's last word (7 bytes), the same for both forms: the ports,
 * the eight option bits of low, the time counter's low 16 bits. */
VM_INLINE __u64 vm_cookie_tail(__be16 sport, __be16 dport, __u32 tcount, __u32 low)
{
	return (__u64)(__u16)sport | (__u64)(__u16)dport << 16 | (__u64)(low & VM_COOKIE_OPT_MASK) << 32 |
	       (__u64)(tcount & VM_COOKIE_TC_MASK) << 40;
}

/* The MAC of an IPv4 connection from its addresses (the 32-bit words as
 * they lie in the packet) and the tail above: 15 bytes under the key's sip. */
VM_INLINE __u32 vm_cookie_mac4(const __u64 key[2], __u32 saddr, __u32 daddr, __u64 tail)
{
	__u64 w[2], h;

	w[0] = (__u64)saddr | (__u64)daddr << 32;
	w[1] = tail;
	VM_SIPHASH_2_4(h, key, w, VM_COOKIE_MSG4_LEN);
	return (__u32)(h >> (64 - VM_COOKIE_MAC_BITS));
}

/* NH (the universal hash of UMAC: Black, Halevi, Krawczyk, Krovetz and
 * Rogaway, 1999) of an IPv6 connection's addresses, client then VIP, as
 * eight 32-bit words (each little-endian, as vm_cookie_rd32 reads it):
 *   sum over i < 4 of ((m[2i] + k[2i]) mod 2^32) * ((m[2i+1] + k[2i+1]) mod 2^32),
 * mod 2^64.  Under a random key two different address pairs fold to the
 * same value with probability at most 2^-32, and the fold is only ever seen
 * through SipHash (hash, then a PRF: UMAC's construction), so a forger
 * gains from it no more than that 2^-32 a try, next to the 2^-22 of
 * guessing the MAC itself.  Four multiplies instead of the three SipHash
 * compressions the 32 address bytes took (~11 ns of an IPv6 SYN). */
VM_INLINE __u64 vm_cookie_nh6(const __u32 k[8], const __u8 *saddr, const __u8 *daddr)
{
	return (__u64)(__u32)(vm_cookie_rd32(saddr) + k[0]) * (__u32)(vm_cookie_rd32(saddr + 4) + k[1]) +
	       (__u64)(__u32)(vm_cookie_rd32(saddr + 8) + k[2]) * (__u32)(vm_cookie_rd32(saddr + 12) + k[3]) +
	       (__u64)(__u32)(vm_cookie_rd32(daddr) + k[4]) * (__u32)(vm_cookie_rd32(daddr + 4) + k[5]) +
	       (__u64)(__u32)(vm_cookie_rd32(daddr + 8) + k[6]) * (__u32)(vm_cookie_rd32(daddr + 12) + k[7]);
}

/* The MAC of an IPv6 connection (16-byte addresses, 4-byte aligned): the
 * NH fold and the tail, 15 bytes under sip6. */
VM_INLINE __u32 vm_cookie_mac6(const struct vm_cookie_key *key, const __u8 *saddr, const __u8 *daddr, __u64 tail)
{
	__u64 w[2], h;

	w[0] = vm_cookie_nh6(key->nh6, saddr, daddr);
	w[1] = tail;
	VM_SIPHASH_2_4(h, key->sip6, w, VM_COOKIE_MSG6_LEN);
	return (__u32)(h >> (64 - VM_COOKIE_MAC_BITS));
}

/* Either form, by the addresses: both IPv4-mapped is an IPv4 connection. */
VM_INLINE __u32 vm_cookie_mac_of(const struct vm_cookie_key *key, const __u8 *saddr, const __u8 *daddr, __u64 tail)
{
	if (vm_cookie_v4mapped(saddr) && vm_cookie_v4mapped(daddr))
		return vm_cookie_mac4(key->sip, vm_cookie_rd32(saddr + 12), vm_cookie_rd32(daddr + 12), tail);
	return vm_cookie_mac6(key, saddr, daddr, tail);
}

/* The MAC of in's tuple, time counter and low bits (its client ISN is not
 * hashed: vm_cookie_isn adds it). */
VM_INLINE __u32 vm_cookie_mac(const struct vm_cookie_key *key, const struct vm_cookie_in *in)
{
	return vm_cookie_mac_of(key, in->saddr, in->daddr, vm_cookie_tail(in->sport, in->dport, in->tcount, in->low));
}

/* A key's selector bit, carried in the cookies made under it (k): the
 * low bit of its IPv4 SipHash key, which vm_secret_derive sets to the
 * epoch's parity, so that the current key and the previous one differ in
 * it on every gateway of a fleet.  A check computes the MAC under the key
 * whose bit the cookie names; keys that share the bit (not derived so)
 * are both tried, as before the bit. */
VM_INLINE __u32 vm_cookie_kbit(const struct vm_cookie_key *key)
{
	return (__u32)key->sip[0] & 1;
}

/* The ISN we send: the 32 bits drawn above plus the client's ISN. */
VM_INLINE __u32 vm_cookie_isn(__u32 mac, __u32 low, __u32 client_isn)
{
	return ((mac << VM_COOKIE_LOW_BITS) | (low & VM_COOKIE_LOW_MASK)) + client_isn;
}

/* The cookie's ten low bits: the key's selector bit, the time counter's low
 * bit, the options. */
VM_INLINE __u32 vm_cookie_low(const struct vm_cookie_key *key, __u32 tcount, const struct vm_cookie_opts *o)
{
	__u32 mss_idx = 0;

	for (int i = VM_COOKIE_MSS_MASK; i > 0; i--) {
		if (o->mss >= vm_cookie_mss(i)) {
			mss_idx = i;
			break;
		}
	}
	__u32 ws = o->wscale > VM_COOKIE_WS_MAX ? VM_COOKIE_WS_NONE : o->wscale;
	return vm_cookie_kbit(key) << VM_COOKIE_K_SHIFT | ((tcount & VM_COOKIE_T_MASK) << VM_COOKIE_T_SHIFT) |
	       (mss_idx << VM_COOKIE_MSS_SHIFT) |
	       ((o->sack_ok ? 1u : 0u) << VM_COOKIE_SACK_SHIFT) | ((o->ts_ok ? 1u : 0u) << VM_COOKIE_TS_SHIFT) | ws;
}

/* Builds the cookie ISN for in (whose low and tcount fields it fills). */
VM_INLINE __u32 vm_cookie_make(const struct vm_cookie_key *key, struct vm_cookie_in *in, __u32 tcount,
			       const struct vm_cookie_opts *o)
{
	in->tcount = tcount;
	in->low = vm_cookie_low(key, tcount, o);
	return vm_cookie_isn(vm_cookie_mac(key, in), in->low, in->client_isn);
}

/* The options a cookie ISN we sent carries, the client's ISN being
 * client_isn (the ACK's seq - 1). */
VM_INLINE void vm_cookie_decode(__u32 isn, __u32 client_isn, struct vm_cookie_opts *o)
{
	__u32 cookie = isn - client_isn, ws = cookie & VM_COOKIE_WS_MASK;

	o->mss = vm_cookie_mss(cookie >> VM_COOKIE_MSS_SHIFT);
	o->sack_ok = (cookie >> VM_COOKIE_SACK_SHIFT) & 1;
	o->ts_ok = (cookie >> VM_COOKIE_TS_SHIFT) & 1;
	o->wscale = ws == VM_COOKIE_WS_NONE ? VM_WSCALE_NONE : (__u8)ws;
}

/* The time counter a cookie (the ISN we sent less the client's ISN) was
 * made in, when that is the current window or one of the VM_COOKIE_MAX_AGE
 * before it (its low bit names it; an older cookie is taken for a newer
 * window's, and its MAC fails). */
VM_INLINE int vm_cookie_tcount(__u32 cookie, __u32 tnow, __u32 *t)
{
	__u32 tl = (cookie >> VM_COOKIE_T_SHIFT) & VM_COOKIE_T_MASK;

	for (__u32 age = 0; age <= VM_COOKIE_MAX_AGE; age++) {
		if (((tnow - age) & VM_COOKIE_T_MASK) == tl) {
			*t = tnow - age;
			return 1;
		}
	}
	return 0;
}

/* Checks a cookie ISN against one key for the current window and the
 * previous VM_COOKIE_MAX_AGE ones.  in carries the tuple and client ISN. */
VM_INLINE int vm_cookie_check_key(const struct vm_cookie_key *key, struct vm_cookie_in *in, __u32 isn, __u32 tnow)
{
	__u32 t, cookie = isn - in->client_isn;

	if (((cookie >> VM_COOKIE_K_SHIFT) & 1) != vm_cookie_kbit(key) || !vm_cookie_tcount(cookie, tnow, &t))
		return 0;
	in->tcount = t;
	in->low = cookie & VM_COOKIE_LOW_MASK;
	return vm_cookie_mac(key, in) == (cookie >> VM_COOKIE_LOW_BITS);
}

#endif /* VEIL_COOKIE_H */
