/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shamir secret sharing over GF(2^8) (the AES field, x^8+x^4+x^3+x+1), and
 * the signed share format the registry hands to validators.
 *
 * Arithmetic is constant-time: no tables, no branches or indexes on secret
 * values.  Polynomial coefficients are drawn uniformly from all 256 values
 * (a zero is kept, not re-drawn: re-drawing would skew the distribution).
 * Share byte layout: docs/key-shares.md.
 */
#ifndef VEIL_SHAMIR_H
#define VEIL_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#define VM_SECRET_MAX   64          /* bytes of a secret (a disk key) */
#define VM_VMID_MAX     64
#define VM_SHARE_SIGLEN 64          /* Ed25519 */
#define VM_SHARE_MAX    (4 + 1 + 3 + 1 + VM_VMID_MAX + 2 + VM_SECRET_MAX + VM_SHARE_SIGLEN)

uint8_t vm_gf_mul(uint8_t a, uint8_t b);
uint8_t vm_gf_inv(uint8_t a);      /* inv(0) = 0 */

struct vm_share {
	uint8_t t, n, x;                /* threshold, number of shares, this share's x (1..n) */
	uint8_t vmid_len;
	char vmid[VM_VMID_MAX + 1];
	uint16_t len;                   /* secret length */
	uint8_t y[VM_SECRET_MAX];
	uint8_t sig[VM_SHARE_SIGLEN];   /* the registry's signature over everything above */
};

/* Splits secret into n shares, any t of which rebuild it (2 <= t <= n <= 255:
 * one holder alone must never suffice).
 * rand_fn fills a buffer with uniform random bytes (RAND_priv_bytes in
 * production; a fixed stream in known-answer tests); returns 0 or -1. */
typedef int (*vm_rand_fn)(uint8_t *buf, size_t len);
int vm_shamir_split(const uint8_t *secret, size_t len, unsigned t, unsigned n, vm_rand_fn rnd,
		    struct vm_share *shares);
/* Rebuilds the secret from k >= t shares with distinct x, all of one split
 * (same t, n, vmid, len); uses the first t.  Returns the length or -1. */
int vm_shamir_combine(const struct vm_share *shares, size_t k, uint8_t *secret);

/* Wire format (docs/key-shares.md).  encode returns the length or -1; decode
 * returns 0 or -1 with a reason, and never reads past len. */
int vm_share_encode(const struct vm_share *s, uint8_t *out, size_t cap);
int vm_share_decode(const uint8_t *in, size_t len, struct vm_share *s, const char **why);
/* The bytes the signature covers (the encoding without the signature). */
int vm_share_signed_part(const struct vm_share *s, uint8_t *out, size_t cap);

/* The registry's Ed25519 signature over a share: sign fills s->sig; verify
 * returns 0 when the share is the registry's, unaltered. */
typedef struct evp_pkey_st EVP_PKEY;
int vm_share_sign(struct vm_share *s, EVP_PKEY *key);
int vm_share_verify(const struct vm_share *s, EVP_PKEY *pub);

/* Wipes a share's secret parts. */
void vm_share_wipe(struct vm_share *s);

#endif
