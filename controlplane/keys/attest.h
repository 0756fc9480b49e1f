/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Remote attestation pieces shared by the validator, the registry and the
 * attestation client: TPM2 quote verification (tpm2-tss unmarshalling,
 * OpenSSL signatures), the expected PCR digest from reference hashes, signed
 * tokens, shares sealed at rest, the hash-chained audit log, and a small
 * HTTPS (TLS 1.3 only) request/response layer.  docs/attestation.md.
 */
#ifndef VEIL_ATTEST_H
#define VEIL_ATTEST_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define VM_NONCE_LEN    32
#define VM_MEASURE_PCR  9           /* where the client extends the measured files */
#define VM_REF_NAMES    { "kernel", "initrd", "cmdline", "config", "disk" }
#define VM_REF_COUNT    5
/* "disk" is the LUKS2 header region: the first 16 MiB of the image (metadata
 * and keyslots; the data begins there with cryptsetup's defaults). */
#define VM_DISK_HEADER_BYTES (16u << 20)
#define VM_PCR_MASK     0x000002ffu /* PCRs 0-7 and 9 are quoted */

/* The reference values the registry records for a VM. */
struct vm_refs {
	uint8_t hash[VM_REF_COUNT][32];   /* sha256 of kernel, initrd, cmdline, config, disk header */
	uint8_t pcr[24][32];              /* expected values of the quoted PCRs (sha256 bank) */
};

/* sha256 of a file, or of its first limit bytes (0: all of it). */
int vm_sha256_file(const char *path, uint64_t limit, uint8_t out[32]);
/* PCR 9 after extending it, from zero, with each reference hash in order. */
void vm_refs_pcr9(const struct vm_refs *r, uint8_t out[32]);
/* The same from what the firmware left in PCR 9 (a real VM: the EFI stub's
 * command-line and initrd events); start and out may be the same. */
void vm_refs_pcr9_from(const struct vm_refs *r, const uint8_t start[32], uint8_t out[32]);
/* sha256 over the concatenated expected values of the PCRs in VM_PCR_MASK. */
void vm_refs_pcr_digest(const struct vm_refs *r, uint8_t out[32]);

struct vm_quote_info {
	uint64_t clock;
	uint32_t reset_count, restart_count;
	int safe;
};

/* Verifies a TPM2 quote: structure, magic, type, nonce, PCR selection and
 * digest, and the AK's ECDSA signature.  0, or -1 with the reason in why. */
int vm_quote_verify(const uint8_t *attest, size_t alen, const uint8_t *sig, size_t slen, EVP_PKEY *ak,
		    const uint8_t *nonce, size_t nlen, const uint8_t pcr_digest[32], struct vm_quote_info *info,
		    char *why, size_t whylen);

/* Tokens: base64url(payload JSON) "." base64url(Ed25519 signature). */
int vm_token_make(EVP_PKEY *key, const char *issuer, const char *vm, const uint8_t *nonce, long exp,
		  char *out, size_t cap);
/* Checks the signature against any of the pool's keys and the expiry; fills
 * vm and issuer.  0, or -1 with the reason. */
int vm_token_check(const char *tok, EVP_PKEY *const *pool, const char *const *ids, int npool, long now,
		   char *vm, size_t vmlen, char *issuer, size_t isslen, char *why, size_t whylen);

/* AES-256-GCM sealing of data at rest under a 32-byte key. */
int vm_seal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t *out, size_t cap);
int vm_unseal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* The append-only, hash-chained audit log: one JSON object a line, each
 * carrying the sha256 of the previous line. */
int vm_audit(const char *path, const char *event, const char *vm, const char *result, const char *reason);
/* Verifies the whole chain; returns the number of lines, or -1 at a break. */
long vm_audit_verify(const char *path, char *why, size_t whylen);

/* base64 (standard, for JSON bodies) */
int vm_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap);
int vm_b64_decode(const char *in, uint8_t *out, size_t cap);
void vm_hex(const uint8_t *in, size_t len, char *out);
int vm_unhex(const char *in, uint8_t *out, size_t len);

/* PEM keys */
EVP_PKEY *vm_load_pub(const char *path);
EVP_PKEY *vm_load_priv(const char *path);

/* HTTPS: a TLS 1.3-only client request; returns the HTTP status or -1, body in resp. */
int vm_https_post(const char *host, int port, const char *cafile, const char *path, const char *body,
		  const char *extra_header, char *resp, size_t cap, char *why, size_t whylen);

#endif
