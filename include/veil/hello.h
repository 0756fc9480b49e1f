/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS ClientHello parser: finds server_name.  One copy, compiled into the
 * BPF programs, the userspace tests, the fuzzers and the DPDK path.
 *
 * It reads from a buffer of VM_HELLO_BUF bytes (a per-CPU map value in BPF)
 * holding the first `have` bytes of the TCP payload; every index is masked to
 * the buffer so the verifier can see each read is in bounds, and every read is
 * checked against `have` first so the mask never changes a result.
 *
 * Lengths are checked against the structure they belong to (record, handshake,
 * extensions block, extension), so a hello with inconsistent lengths is
 * MALFORMED, and one that continues past `have` is PARTIAL unless the name was
 * already found in the bytes we hold.
 */
#ifndef VEIL_HELLO_H
#define VEIL_HELLO_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "wire.h"

#ifndef VM_INLINE
#define VM_INLINE static inline __attribute__((always_inline))
#endif

#define VM_HELLO_BUF      VM_ASM_BYTES    /* power of two */
#define VM_HELLO_MAX_EXT  128             /* extensions walked at most */

/* ---------- TLS, as far as the gateway reads and writes it (RFC 8446) ---------- */
#define VM_TLS_REC_HLEN      5       /* record header: type(1) version(2) length(2) */
#define VM_TLS_REC_LEN_OFF   3       /* its length field */
#define VM_TLS_CT_ALERT      0x15    /* record content types */
#define VM_TLS_CT_HANDSHAKE  0x16
#define VM_TLS_VERSION_MAJOR 3       /* every TLS version is 3.x (3.1 = TLS 1.0 ... 3.4 = TLS 1.3) */
#define VM_TLS_MINOR_MAX     4
#define VM_TLS_MINOR_TLS10   1       /* a ClientHello record's legacy version: 3.1 */
#define VM_TLS_MINOR_TLS12   3       /* what we send (our alert): 3.3 */
#define VM_TLS_MAX_RECORD    16384   /* plaintext bytes of one record at most */
#define VM_TLS_MAX_CIPHERTEXT (VM_TLS_MAX_RECORD + 256)  /* a record's length at most (5.2) */

#define VM_TLS_HS_HLEN       4       /* handshake header: msg_type(1) length(3) */
#define VM_TLS_HS_CLIENT_HELLO 1
#define VM_TLS_HELLO_OFF     (VM_TLS_REC_HLEN + VM_TLS_HS_HLEN)  /* the hello's body in its first record */
#define VM_TLS_HELLO_FIXED   34      /* legacy_version(2) random(32) */
#define VM_TLS_HELLO_MIN     38      /* a body with every vector empty */
#define VM_TLS_HELLO_MAX     65536   /* longer hellos are refused as malformed */
#define VM_TLS_SESSION_ID_MAX 32

#define VM_TLS_EXT_HLEN      4       /* extension header: type(2) length(2) */
#define VM_TLS_EXT_SERVER_NAME 0     /* RFC 6066 */
#define VM_TLS_EXT_ALPN      16      /* RFC 7301 */
#define VM_TLS_EXT_ECH       0xfe0d  /* encrypted_client_hello (draft-ietf-tls-esni) */
#define VM_TLS_SNI_HLEN      5       /* server_name: list length(2) name_type(1) name length(2) */
#define VM_TLS_SNI_HOST_NAME 0       /* name_type */

#define VM_DNS_NAME_MAX      253     /* a host name's length at most */
#define VM_DNS_LABEL_MAX     63

/* The refusal: record alert, version 3.3, length 2, fatal(2) unrecognized_name(112) */
#define VM_TLS_ALERT_BODY_LEN 2      /* level(1) description(1) */
#define VM_TLS_ALERT_FATAL   2
#define VM_TLS_ALERT_UNRECOGNIZED_NAME 112
#define VM_TLS_ALERT_LEN 7           /* the whole record */
#define VM_TLS_ALERT_W0 0x00030315u  /* bytes 15 03 03 00 as a little-endian word */
#define VM_TLS_ALERT_W1 0x00700202u  /* bytes 02 02 70 00 */
_Static_assert(VM_TLS_ALERT_LEN == VM_TLS_REC_HLEN + VM_TLS_ALERT_BODY_LEN, "alert record");
_Static_assert(VM_TLS_ALERT_W0 == (VM_TLS_CT_ALERT | VM_TLS_VERSION_MAJOR << 8 | VM_TLS_MINOR_TLS12 << 16) &&
	       VM_TLS_ALERT_W1 == (VM_TLS_ALERT_BODY_LEN | VM_TLS_ALERT_FATAL << 8 |
				   VM_TLS_ALERT_UNRECOGNIZED_NAME << 16), "alert words");

/* Writes the alert record (VM_TLS_ALERT_LEN bytes) at a. */
VM_INLINE void vm_tls_alert_write(__u8 *a)
{
	a[0] = VM_TLS_CT_ALERT;
	a[1] = VM_TLS_VERSION_MAJOR;
	a[2] = VM_TLS_MINOR_TLS12;
	a[3] = 0;                         /* length, big-endian */
	a[4] = VM_TLS_ALERT_BODY_LEN;
	a[5] = VM_TLS_ALERT_FATAL;
	a[6] = VM_TLS_ALERT_UNRECOGNIZED_NAME;
}

enum vm_hello_status {
	VM_HELLO_OK = 0,
	VM_HELLO_NOT_TLS,        /* not a TLS handshake record */
	VM_HELLO_NOT_HELLO,      /* a handshake, but not a ClientHello */
	VM_HELLO_PARTIAL,        /* the name lies past the bytes we hold */
	VM_HELLO_MALFORMED,      /* lengths or fields are inconsistent */
	VM_HELLO_NO_SNI,         /* a complete hello without server_name */
	VM_HELLO_BAD_NAME,       /* server_name is not a valid host name */
	VM_HELLO__COUNT,
};

#define VM_HELLO_F_ECH       0x01  /* encrypted_client_hello present: name is the outer one */
#define VM_HELLO_F_ALPN      0x02
#define VM_HELLO_F_INCOMPLETE 0x04 /* the name was found but the hello continues */
#define VM_HELLO_F_MULTIREC  0x08  /* the handshake message spans several records */

struct vm_hello {
	__u32 name_len;
	__u32 flags;
	__u32 hello_len;          /* bytes of the whole handshake message, header included */
	__u32 pad;
	__u64 name_hash;          /* the routes map's key of name (vm_name_hash, route.h) */
	char name[VM_NAME_MAX];   /* lowercase, zero padded: usable as a route key */
};

#define VM_HB(buf, i) ((__u32)(buf)[(i) & (VM_HELLO_BUF - 1)])
#define VM_HB16(buf, i) ((VM_HB(buf, i) << 8) | VM_HB(buf, (i) + 1))

/* Bounded loops: bpf_loop() in BPF (the verifier checks the body once, not
 * once per iteration), a plain loop elsewhere.  fn returns 1 to stop. */
#ifdef __bpf__
#define VM_LOOP(n, fn, ctx) bpf_loop((n), (fn), (ctx), 0)
#define VM_CALLBACK static __attribute__((noinline))
/* A step of a loop inlined into its callback, so that one call does two
 * or four (VM_STEP2, VM_STEP4): each bpf_loop iteration is a call and a
 * return, which on a host whose returns go through a mitigation thunk
 * (AMD's Safe RET) costs as much as a step's work. */
#define VM_STEP static __always_inline
/* Hides what clang knows of x, so a mask it would drop stays for the verifier. */
#define VM_BARRIER_VAR(x) asm volatile("" : "+r"(x))
#else
#define VM_BARRIER_VAR(x) ((void)0)
#define VM_LOOP(n, fn, ctx) ({ for (__u32 _i = 0; _i < (__u32)(n); _i++) if (fn(_i, ctx)) break; 0; })
#define VM_CALLBACK static
#define VM_STEP static inline
#endif
/* name2(i, ctx): steps fn(2i) and fn(2i + 1), stopping where fn says; a
 * loop of n steps (n even) is then VM_LOOP(n / 2, name2, ctx); name4 the
 * same four at a time (n a multiple of 4).  Four where the step has few
 * branches: a name of up to 32 bytes in one call, a browser's hello's
 * extensions in four or five.  vm_hello_check_step, whose branches the
 * verifier follows apart, takes two: with four the gateway's programs
 * took 1.5x the instructions to verify (gw_asm 584k of the 1M limit)
 * for ~30 ns more on hello_no_route (docs/perf-log.md). */
#define VM_STEP2(name2, fn) \
	VM_CALLBACK long name2(__u32 i, void *ctx) { return fn(2 * i, ctx) || fn(2 * i + 1, ctx); }
#define VM_STEP4(name4, fn) \
	VM_CALLBACK long name4(__u32 i, void *ctx) \
	{ return fn(4 * i, ctx) || fn(4 * i + 1, ctx) || fn(4 * i + 2, ctx) || fn(4 * i + 3, ctx); }

/* The routes map's key of a name (include/veil/route.h): a 64-bit hash of
 * the zero-padded name's words 0 .. len/8, eight bytes at a time.  Here so
 * that the parser and the wildcard key hash each word as they write it. */
VM_INLINE __u64 vm_name_hash_seed(__u32 len) { return 0x9e3779b97f4a7c15ULL ^ len; }

VM_INLINE __u64 vm_name_hash_word(__u64 h, __u64 x)
{
	h ^= x;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 32);
}

VM_INLINE __u64 vm_name_hash_final(__u64 h)
{
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 29);
}

/* The walk's changing state.  In BPF it lives in map memory, whose contents
 * the verifier does not track, so the loop body is verified once instead of
 * once per value of the cursor; elsewhere it is a local. */
struct vm_hello_state {
	__u32 have, end, off, label;
	__u32 sni_off, sni_len, seen_sni;
	int rc;                   /* -1: still walking */
	__u64 hash;               /* the name's words hashed so far */
};

struct vm_hello_walk {
	const __u8 *buf;
	struct vm_hello *out;
	struct vm_hello_state *st;
};

#define VM_B8(c) (0x0101010101010101ULL * (__u64)(c))

/* 0x80 in each byte of x (bytes below 0x80) that equals c. */
VM_INLINE __u64 vm_swar_eq(__u64 x, __u8 c)
{
	__u64 t = x ^ VM_B8(c);
	return ~(((t & VM_B8(0x7f)) + VM_B8(0x7f)) | t) & VM_B8(0x80);
}

/* 0x80 in each byte of x (bytes below 0x80) in [lo, hi]. */
VM_INLINE __u64 vm_swar_in(__u64 x, __u8 lo, __u8 hi)
{
	return (x + VM_B8(0x80 - lo)) & ~(x + VM_B8(0x80 - hi - 1)) & VM_B8(0x80);
}

/* The byte index (0..7) of the lowest / highest 0x80 flag in m (m != 0). */
VM_INLINE __u32 vm_swar_first(__u64 m)
{
	__u32 i = 0;
	m &= -m;
	if (m >> 32) { i += 4; m >>= 32; }
	if (m >> 16) { i += 2; m >>= 16; }
	if (m >> 8) i += 1;
	return i;
}

VM_INLINE __u32 vm_swar_last(__u64 m)
{
	__u32 i = 0;
	if (m >> 32) { i += 4; m >>= 32; }
	if (m >> 16) { i += 2; m >>= 16; }
	if (m >> 8) i += 1;
	return i;
}

/* Word i (0..31) of a name buffer (VM_NAME_MAX bytes, zero from the name's
 * end on): BPF reads and writes it with one load or store (the mask keeps
 * the offset provably inside the buffer whatever clang makes of a loop), C
 * through memcpy. */
VM_INLINE __u64 vm_name_word(const char *name, __u32 i)
{
	i &= VM_NAME_MAX / 8 - 1;
#ifdef __bpf__
	return *(const __u64 *)(name + i * 8);
#else
	__u64 w;
	__builtin_memcpy(&w, name + i * 8, 8);
	return w;
#endif
}

VM_INLINE void vm_name_word_put(char *name, __u32 i, __u64 x)
{
	i &= VM_NAME_MAX / 8 - 1;
#ifdef __bpf__
	*(__u64 *)(name + i * 8) = x;
#else
	__builtin_memcpy(name + i * 8, &x, 8);
#endif
}

/* Eight characters of the host name at buf[sni_off + 8k], lowercased into
 * word k of out->name with zeros past the name's end (so the word holding
 * the end, or the zero word after a name of 8n bytes, carries the
 * terminating zero the route key's hash reads), and hashed.  Not judged
 * here: vm_hello_name_check does that, when it matters (vm_hello_parse;
 * vm_gw_route_hello only for a name no route has).  A byte above 0x7f may
 * upset its neighbours' lowercasing (vm_swar_in's carry), but it stays
 * above 0x7f, so the name is bad whatever else the word says. */
VM_STEP long vm_hello_name_step(__u32 k, void *ctx)
{
	struct vm_hello_walk *w = ctx;
	struct vm_hello_state *st = w->st;
	__u32 len = st->sni_len, off = st->sni_off + k * 8, base = k * 8, n;
	__u64 x = 0, bytes;

	if (base > len || len > VM_DNS_NAME_MAX)
		return 1;
	n = len - base < 8 ? len - base : 8;
	bytes = n == 8 ? ~0ULL : (1ULL << (8 * n)) - 1;    /* the name's bytes */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (off + 8 <= st->have) {
		/* the eight bytes held: one load (bytes past the name masked
		 * off), not eight; have <= VM_HELLO_BUF, so the mask, there
		 * for the verifier, changes nothing */
		__u32 o = off & (VM_HELLO_BUF - 1);
		VM_BARRIER_VAR(o);
		if (o <= VM_HELLO_BUF - 8) {
#ifdef __bpf__
			x = *(const __u64 *)(w->buf + o);
#else
			__builtin_memcpy(&x, w->buf + o, 8);
#endif
			x &= bytes;
		}
	} else
#endif
	{
		VM_UNROLL
		for (__u32 b = 0; b < 8; b++)
			if (b < n)
				x |= (__u64)VM_HB(w->buf, off + b) << (8 * b);
	}
	x |= vm_swar_in(x, 'A', 'Z') >> 2;            /* lowercase: 0x80 >> 2 = 0x20 */
	st->hash = vm_name_hash_word(st->hash, x);
	VM_BARRIER_VAR(k);
	vm_name_word_put(w->out->name, k, x);
	return base + 8 > len;        /* this word held the end */
}
VM_STEP4(vm_hello_name_step4, vm_hello_name_step)

/* Judges word k of the name vm_hello_name_step wrote (lowercased): LDH
 * labels of 1..63 bytes, the word's bytes judged together (SWAR), not one
 * by one; the label the word leaves open carried in st->label. */
VM_STEP long vm_hello_check_step(__u32 k, void *ctx)
{
	struct vm_hello_walk *w = ctx;
	struct vm_hello_state *st = w->st;
	__u32 len = st->sni_len, base = k * 8, n, label = st->label;
	__u64 x, m, ok, dots, bad;

	if (base >= len || len > VM_DNS_NAME_MAX)
		return 1;
	n = len - base < 8 ? len - base : 8;
	m = VM_B8(0x80) & (n == 8 ? ~0ULL : (1ULL << (8 * n)) - 1);
	x = vm_name_word(w->out->name, k);
	bad = x & m;                                  /* not ASCII */
	dots = vm_swar_eq(x, '.') & m;
	ok = vm_swar_in(x, 'a', 'z') | vm_swar_in(x, '0', '9') | vm_swar_eq(x, '-') | dots;
	bad |= ~ok & m;
	bad |= dots & (dots << 8);                    /* an empty label inside the word */
	if (!dots) {
		label += n;
	} else {
		__u32 f = vm_swar_first(dots);
		bad |= label + f == 0 || label + f > VM_DNS_LABEL_MAX;  /* the label the word ends */
		label = n - 1 - vm_swar_last(dots);
	}
	bad |= label > VM_DNS_LABEL_MAX;
	if (bad) {
		st->rc = VM_HELLO_BAD_NAME;
		return 1;
	}
	st->label = label;
	return base + 8 >= len;       /* this word held the end */
}
VM_STEP2(vm_hello_check_step2, vm_hello_check_step)

/* The name at sni_off lowercased into out->name and hashed (its routes map
 * key in out->name_hash), not judged: VM_HELLO_OK, or VM_HELLO_BAD_NAME for
 * a length no host name has. */
VM_INLINE int vm_hello_copy_name(struct vm_hello_walk *w)
{
	struct vm_hello_state *st = w->st;

	if (st->sni_len == 0 || st->sni_len > VM_DNS_NAME_MAX)
		return VM_HELLO_BAD_NAME;
	st->hash = vm_name_hash_seed(st->sni_len);
	VM_LOOP(VM_NAME_MAX / 32, vm_hello_name_step4, w);
	w->out->name_len = st->sni_len;
	w->out->name_hash = vm_name_hash_final(st->hash);
	return VM_HELLO_OK;
}

/* Whether out->name (as vm_hello_scan left it: lowercased, name_len bytes)
 * is a host name: VM_HELLO_OK, or VM_HELLO_BAD_NAME (a byte outside
 * [a-z0-9.-] once lowercased, an empty label or one over 63 bytes, a dot
 * at either end).  st: scratch for the walk. */
VM_INLINE int vm_hello_name_check(struct vm_hello *out, struct vm_hello_state *st)
{
	struct vm_hello_walk w = { .out = out, .st = st };

	st->sni_len = out->name_len;
	if (st->sni_len == 0 || st->sni_len > VM_DNS_NAME_MAX)
		return VM_HELLO_BAD_NAME;
	st->rc = -1;
	st->label = 0;
	VM_LOOP(VM_NAME_MAX / 16, vm_hello_check_step2, &w);
	if (st->rc != -1)
		return st->rc;
	if (st->label == 0)
		return VM_HELLO_BAD_NAME;   /* empty last label or trailing dot */
	return VM_HELLO_OK;
}

/* The big-endian 32-bit word at buf[i], i + 4 <= have (the caller checks):
 * one load, not four.  have <= VM_HELLO_BUF, so the mask, there for the
 * verifier, changes nothing. */
VM_INLINE __u32 vm_hb32(const __u8 *buf, __u32 i)
{
	__u32 o = i & (VM_HELLO_BUF - 1), x;

	VM_BARRIER_VAR(o);
	if (o > VM_HELLO_BUF - 4)
		return 0;
#ifdef __bpf__
	x = *(const __u32 *)(buf + o);
#else
	__builtin_memcpy(&x, buf + o, 4);
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	x = __builtin_bswap32(x);
#endif
	return x;
}

/* One extension at w->off.  Sets rc to a final status and stops, or moves on. */
VM_STEP long vm_hello_ext_step(__u32 i, void *ctx)
{
	struct vm_hello_walk *w = ctx;
	struct vm_hello_state *st = w->st;
	__u32 type, elen, off = st->off, n;

	if (off >= st->end)
		return 1;
	if (off + VM_TLS_EXT_HLEN > st->end) {
		st->rc = VM_HELLO_MALFORMED;
		return 1;
	}
	if (off + VM_TLS_EXT_HLEN > st->have) {
		st->rc = VM_HELLO_PARTIAL;
		return 1;
	}
	type = vm_hb32(w->buf, off);          /* type and length in one load */
	elen = type & 0xffff;
	type >>= 16;
	off += VM_TLS_EXT_HLEN;
	if (off + elen > st->end) {
		st->rc = VM_HELLO_MALFORMED;
		return 1;
	}
	if (type == VM_TLS_EXT_SERVER_NAME) {
		if (st->seen_sni || elen < VM_TLS_SNI_HLEN) {
			st->rc = VM_HELLO_MALFORMED;
			return 1;
		}
		st->seen_sni = 1;
		if (off + elen > st->have) {
			st->rc = VM_HELLO_PARTIAL;
			return 1;
		}
		n = VM_HB16(w->buf, off + 3);
		if (VM_HB16(w->buf, off) != elen - 2 || VM_HB(w->buf, off + 2) != VM_TLS_SNI_HOST_NAME ||
		    n + VM_TLS_SNI_HLEN != elen) {
			st->rc = VM_HELLO_MALFORMED;  /* exactly one host_name entry */
			return 1;
		}
		st->sni_off = off + VM_TLS_SNI_HLEN;
		st->sni_len = n;
	} else if (type == VM_TLS_EXT_ECH) {
		w->out->flags |= VM_HELLO_F_ECH;
	} else if (type == VM_TLS_EXT_ALPN) {
		w->out->flags |= VM_HELLO_F_ALPN;
	}
	st->off = off + elen;
	return 0;
}
VM_STEP4(vm_hello_ext_step4, vm_hello_ext_step)

/* Walks the ClientHello at the start of buf (have bytes valid) to its
 * server_name, as vm_hello_parse, but leaves the name unjudged: VM_HELLO_OK
 * for any name of 1..253 bytes, lowercased into out->name and hashed.  The
 * words of out->name past the one holding the name's end are left as they
 * were; st is scratch for the walk. */
VM_INLINE int vm_hello_scan(const __u8 *buf, __u32 have, struct vm_hello *out,
			    struct vm_hello_state *st)
{
	struct vm_hello_walk w = { .buf = buf, .out = out, .st = st };
	__u32 off, rlen, hlen, n;

	st->sni_off = st->sni_len = st->seen_sni = 0;   /* label: vm_hello_name_check sets it */

	out->name_len = 0;
	out->flags = 0;
	out->hello_len = 0;
	if (have > VM_HELLO_BUF)
		have = VM_HELLO_BUF;
	st->have = have;
	if (have < 1)
		return VM_HELLO_PARTIAL;
	if (VM_HB(buf, 0) != VM_TLS_CT_HANDSHAKE)
		return VM_HELLO_NOT_TLS;
	if (have < 3)
		return VM_HELLO_PARTIAL;
	if (VM_HB(buf, 1) != VM_TLS_VERSION_MAJOR || VM_HB(buf, 2) > VM_TLS_MINOR_MAX)
		return VM_HELLO_NOT_TLS;
	if (have < VM_TLS_HELLO_OFF)
		return VM_HELLO_PARTIAL;
	rlen = VM_HB16(buf, VM_TLS_REC_LEN_OFF);
	if (rlen < VM_TLS_HS_HLEN || rlen > VM_TLS_MAX_CIPHERTEXT)
		return VM_HELLO_MALFORMED;
	if (VM_HB(buf, VM_TLS_REC_HLEN) != VM_TLS_HS_CLIENT_HELLO)
		return VM_HELLO_NOT_HELLO;
	hlen = (VM_HB(buf, VM_TLS_REC_HLEN + 1) << 16) | VM_HB16(buf, VM_TLS_REC_HLEN + 2);
	if (hlen < VM_TLS_HELLO_MIN || hlen > VM_TLS_HELLO_MAX)
		return VM_HELLO_MALFORMED;
	out->hello_len = hlen + VM_TLS_HS_HLEN;
	if (hlen + VM_TLS_HS_HLEN > rlen) {
		/* Record headers interleave with the message: reassembly's job. */
		out->flags |= VM_HELLO_F_MULTIREC;
		return VM_HELLO_PARTIAL;
	}
	st->end = VM_TLS_HELLO_OFF + hlen;

	off = VM_TLS_HELLO_OFF;               /* legacy_version, random */
	if (have < off + VM_TLS_HELLO_FIXED + 1)
		return VM_HELLO_PARTIAL;
	if (VM_HB(buf, off) != VM_TLS_VERSION_MAJOR)
		return VM_HELLO_MALFORMED;
	off += VM_TLS_HELLO_FIXED;
	n = VM_HB(buf, off);                  /* legacy_session_id */
	if (n > VM_TLS_SESSION_ID_MAX)
		return VM_HELLO_MALFORMED;
	off += 1 + n;
	if (off + 2 > st->end)
		return VM_HELLO_MALFORMED;
	if (off + 2 > have)
		return VM_HELLO_PARTIAL;
	n = VM_HB16(buf, off);                /* cipher_suites */
	if (n < 2 || (n & 1))
		return VM_HELLO_MALFORMED;
	off += 2 + n;
	if (off + 1 > st->end)
		return VM_HELLO_MALFORMED;
	if (off + 1 > have)
		return VM_HELLO_PARTIAL;
	n = VM_HB(buf, off);                  /* legacy_compression_methods */
	if (n < 1)
		return VM_HELLO_MALFORMED;
	off += 1 + n;
	if (off == st->end)
		return VM_HELLO_NO_SNI;           /* no extensions at all */
	if (off + 2 > st->end)
		return VM_HELLO_MALFORMED;
	if (off + 2 > have)
		return VM_HELLO_PARTIAL;
	if (off + 2 + VM_HB16(buf, off) != st->end)
		return VM_HELLO_MALFORMED;
	st->off = off + 2;

	st->rc = -1;
	VM_LOOP(VM_HELLO_MAX_EXT / 4, vm_hello_ext_step4, &w);
	if (st->rc == VM_HELLO_MALFORMED)
		return VM_HELLO_MALFORMED;
	if (st->rc == VM_HELLO_PARTIAL) {
		if (!st->sni_len)
			return VM_HELLO_PARTIAL;
		out->flags |= VM_HELLO_F_INCOMPLETE; /* the name is here, the rest follows */
		return vm_hello_copy_name(&w);
	}
	if (st->off < st->end)
		return VM_HELLO_MALFORMED;        /* more extensions than any real hello */
	if (!st->seen_sni)
		return st->end > have ? VM_HELLO_PARTIAL : VM_HELLO_NO_SNI;
	if (st->end > have)
		out->flags |= VM_HELLO_F_INCOMPLETE;
	return vm_hello_copy_name(&w);
}

/* Parses the ClientHello at the start of buf (have bytes valid) and judges
 * its name (vm_hello_name_check).  out->name must be zeroed by the caller
 * when used as a map key; st is scratch for the walk. */
VM_INLINE int vm_hello_parse(const __u8 *buf, __u32 have, struct vm_hello *out,
			     struct vm_hello_state *st)
{
	int rc = vm_hello_scan(buf, have, out, st);

	return rc == VM_HELLO_OK ? vm_hello_name_check(out, st) : rc;
}

struct vm_wild_walk {
	const char *name;
	char *key;
	__u32 last;               /* find: the word holding the end; copy: the key's */
	__u32 dot;                /* the first dot's index, 0: none */
	__u32 q, r;               /* copy: the word of name[dot - 1], its bit offset */
	__u64 hash;               /* copy: the key's words hashed so far */
};

/* The first dot, a word (eight characters) at a time. */
VM_STEP long vm_wild_find_dot(__u32 i, void *ctx)
{
	struct vm_wild_walk *w = ctx;
	__u64 d;

	if (i > w->last)
		return 1;
	d = vm_swar_eq(vm_name_word(w->name, i), '.');
	if (d) {
		w->dot = i * 8 + vm_swar_first(d);
		return 1;
	}
	return 0;
}
VM_STEP4(vm_wild_find_dot4, vm_wild_find_dot)

/* Key word j: the name's bytes from dot - 1 + 8j on, the words shifted
 * into place (bytes past the name are zero, so are the key's); byte 0 is
 * the star. */
VM_STEP long vm_wild_copy(__u32 j, void *ctx)
{
	struct vm_wild_walk *w = ctx;
	__u32 q = w->q + j;
	__u64 x;

	if (j > w->last)
		return 1;
	x = vm_name_word(w->name, q);
	if (w->r)
		x = x >> w->r | (q + 1 < VM_NAME_MAX / 8 ? vm_name_word(w->name, q + 1) : 0) << (64 - w->r);
	if (j == 0)
		x = (x & ~0xffULL) | '*';
	vm_name_word_put(w->key, j, x);
	w->hash = vm_name_hash_word(w->hash, x);
	return 0;
}
VM_STEP4(vm_wild_copy4, vm_wild_copy)

/* The wildcard key for a name: "*" + everything from the first dot on
 * ("a.apps.example.test" -> "*.apps.example.test"), in two steps so that
 * the gateway can ask whether any wildcard route has that length before
 * it makes the key.  vm_wildcard_start finds the first dot and returns the
 * key's length, or 0 when the name has a single label (no wildcard
 * applies); vm_wildcard_make then writes the key into key (VM_NAME_MAX
 * bytes of room, of which the words up to the one holding the key's end
 * are written, zero past the end) and returns its routes map key
 * (vm_name_hash).  h->name must be zero past the name up to the word after
 * the one holding its end (the copy reads that far). */
VM_INLINE int vm_wildcard_start(const struct vm_hello *h, char *key, struct vm_wild_walk *w)
{
	__u32 len = h->name_len & (VM_NAME_MAX - 1);

	w->name = h->name;
	w->key = key;
	w->last = len / 8;
	w->dot = 0;
	VM_LOOP(VM_NAME_MAX / 32, vm_wild_find_dot4, w);
	if (w->dot == 0 || w->dot >= len)
		return 0;
	w->q = (w->dot - 1) / 8;
	w->r = ((w->dot - 1) & 7) * 8;
	w->last = (1 + len - w->dot) / 8;
	w->hash = vm_name_hash_seed(1 + len - w->dot);
	return (int)(1 + len - w->dot);
}

VM_INLINE __u64 vm_wildcard_make(struct vm_wild_walk *w)
{
	VM_LOOP(VM_NAME_MAX / 32, vm_wild_copy4, w);
	return vm_name_hash_final(w->hash);
}

/* Both steps: the key's length (0: none) and its hash in *hash. */
VM_INLINE int vm_wildcard_key(const struct vm_hello *h, char *key, __u64 *hash)
{
	struct vm_wild_walk w;
	int len = vm_wildcard_start(h, key, &w);

	if (len)
		*hash = vm_wildcard_make(&w);
	return len;
}

#ifndef __bpf__
static const char *const vm_hello_status_name[VM_HELLO__COUNT] = {
	"ok", "not_tls", "not_hello", "partial", "malformed", "no_sni", "bad_name",
};
#endif

#endif /* VEIL_HELLO_H */
