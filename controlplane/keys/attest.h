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
#define VM_PCR_MASK     0x000002ffu /* v1: PCRs 0-7 and 9 were quoted */
#define VM_POLICY_MASK  0x00000281u /* v2: PCRs 0, 7 and 9 (firmware, SecureBoot, EFI stub) */
#define VM_PCR9_MAX     8           /* EFI-stub events in PCR 9 a policy may name */
#define VM_EVLOG_MAX    (1u << 20)  /* bytes of event log a validator reads */

/* The reference values the registry records for a VM. */
struct vm_refs {
	uint8_t hash[VM_REF_COUNT][32];   /* sha256 of kernel, initrd, cmdline, config, disk header */
	uint8_t pcr[24][32];              /* expected values of the quoted PCRs (sha256 bank) */
};

/* sha256 of a buffer, with the digest fetched once per process (OpenSSL 3
 * looks EVP_sha256() up on every digest otherwise). */
void vm_sha256(const uint8_t *in, size_t len, uint8_t out[32]);
/* sha256 of a file, or of its first limit bytes (0: all of it). */
int vm_sha256_file(const char *path, uint64_t limit, uint8_t out[32]);
/* PCR 9 after extending it, from zero, with each reference hash in order. */
void vm_refs_pcr9(const struct vm_refs *r, uint8_t out[32]);
/* sha256 over the concatenated expected values of the PCRs in VM_PCR_MASK. */
void vm_refs_pcr_digest(const struct vm_refs *r, uint8_t out[32]);

struct vm_quote_info {
	uint64_t clock;
	uint32_t reset_count, restart_count;
	int safe;
};

/* Verifies a TPM2 quote: structure, magic, type, qualifying data (extra),
 * PCR selection (exactly mask, sha256 bank) and digest, and the AK's
 * ECDSA signature.  signer, when not NULL, is the AK's name (34 bytes) the
 * quote must carry as qualifiedSigner.  0, or -1 with the reason in why. */
int vm_quote_verify_mask(const uint8_t *attest, size_t alen, const uint8_t *sig, size_t slen, EVP_PKEY *ak,
			 const uint8_t *extra, size_t elen, uint32_t mask, const uint8_t pcr_digest[32],
			 const uint8_t *signer, struct vm_quote_info *info, char *why, size_t whylen);
/* v1 form: mask VM_PCR_MASK, no signer check. */
int vm_quote_verify(const uint8_t *attest, size_t alen, const uint8_t *sig, size_t slen, EVP_PKEY *ak,
		    const uint8_t *nonce, size_t nlen, const uint8_t pcr_digest[32], struct vm_quote_info *info,
		    char *why, size_t whylen);

/* ---------- protocol v2: firmware-rooted evidence ---------- */

/* A TCG PC Client crypto-agile event log, replayed (sha256 bank). */
struct vm_evlog {
	uint8_t pcr[24][32];            /* replayed values */
	uint32_t events;                /* events replayed */
	int npcr9;                      /* PCR 9 events, in order */
	uint8_t pcr9[VM_PCR9_MAX][32];
	uint32_t pcr9_type[VM_PCR9_MAX];
};
/* 0, or -1 with the reason (malformed, no sha256 bank, too many PCR 9 events). */
int vm_evlog_replay(const uint8_t *log, size_t len, struct vm_evlog *out, char *why, size_t whylen);

/* The EFI stub's PCR 9 digest of a kernel command line:
 * sha256(UTF-16LE(cmdline + " initrd=initrd") + 2 zero bytes); cmdline is
 * taken as bytes (ASCII expected), without a trailing newline. */
void vm_cmdline_digest(const char *cmdline, size_t len, uint8_t out[32]);
/* Quote qualifying data: sha256(nonce || ephemeral X25519 public key). */
void vm_qualifying(const uint8_t nonce[VM_NONCE_LEN], const uint8_t pub[32], uint8_t out[32]);
/* Key commitment: sha256("veilmesh key commitment v1" || vm || epoch(be64) || key). */
void vm_key_commit(const char *vm, uint64_t epoch, const uint8_t *key, size_t klen, uint8_t out[32]);

/* The registry-signed reference document of one VM and key epoch. */
struct vm_policy {
	char vm[65];
	uint64_t epoch;
	int t, n;
	uint8_t pcr0[32], pcr7[32];
	int npcr9;
	uint8_t pcr9[VM_PCR9_MAX][32];
	uint8_t commit[32];
	uint8_t ek[32];                 /* the VM's TPM: sha256 of its EK's SubjectPublicKeyInfo (keys/ek.h) */
	char ak_pem[1024];              /* optional: a registered AK ("" when bound by credential activation only) */
};
/* Checks the registry's Ed25519 signature over the document's bytes, then
 * parses it.  0, or -1 with the reason. */
int vm_policy_load(const char *doc, size_t len, const uint8_t *sig, size_t siglen, EVP_PKEY *registry,
		   struct vm_policy *p, char *why, size_t whylen);
/* The parser behind the signature check (for the fuzzer: never trust an
 * unsigned document). */
int vm_policy_parse(const char *doc, size_t len, struct vm_policy *p, char *why, size_t whylen);

/* The AK's TPM2B_PUBLIC (marshalled): ECC P-256, fixedTPM, fixedParent,
 * sensitiveDataOrigin, restricted, sign, not decrypt, nameAlg sha256, and,
 * when want is not NULL, the same point as want.  Fills name (nameAlg ||
 * sha256(TPMT_PUBLIC)) and, when key is not NULL, *key with the AK as an
 * OpenSSL key (EVP_PKEY_free it). */
int vm_ak_check(const uint8_t *pub, size_t len, EVP_PKEY *want, uint8_t name[34], EVP_PKEY **key, char *why,
		size_t whylen);

/* The whole verdict of a holder: quote + AK + event log against the policy.
 * Pure: no I/O, no clock.  0, or -1 with the reason. */
struct vm_evidence {
	const uint8_t *nonce;           /* VM_NONCE_LEN, the holder's own */
	const uint8_t *pub;             /* 32, the VM's ephemeral X25519 key */
	const uint8_t *ak; size_t aklen;
	const uint8_t *attest; size_t alen;
	const uint8_t *sig; size_t slen;
	const uint8_t *evlog; size_t evlen;
	/* credential activation (keys/ek.h): the AK name the holder's credential
	 * was made for (34 bytes), the credential, and what the client proved */
	const uint8_t *cred_name;
	const uint8_t *cred_want; size_t cred_want_len;
	const uint8_t *cred_got; size_t cred_got_len;
};
/* ak: the registered AK, or NULL (the AK in the evidence, bound to the
 * recorded EK by credential activation, is then the one checked). */
int vm_evidence_verify(const struct vm_policy *p, EVP_PKEY *ak, const struct vm_evidence *e,
		       struct vm_quote_info *qi, char *why, size_t whylen);

/* A share boxed to the VM's ephemeral key: E(32) || AES-256-GCM ct || tag(16);
 * key and IV from HKDF-SHA256(salt nonce, X25519(e, pub), "veilmesh share v2"
 * || pub || E); AAD = vm "|" epoch "|" holder.  Return the length or -1. */
int vm_box_seal(const uint8_t pub[32], const uint8_t nonce[VM_NONCE_LEN], const char *aad, const uint8_t *in,
		size_t len, uint8_t *out, size_t cap);
int vm_box_open(EVP_PKEY *priv, const uint8_t nonce[VM_NONCE_LEN], const char *aad, const uint8_t *in, size_t len,
		uint8_t *out, size_t cap);
/* "vm|epoch|holder", the AAD of boxes and of shares at rest. */
void vm_share_aad(const char *vm, uint64_t epoch, const char *holder, char *out, size_t cap);

/* Tokens: base64url(payload JSON) "." base64url(Ed25519 signature). */
int vm_token_make(EVP_PKEY *key, const char *issuer, const char *vm, const uint8_t *nonce, long exp,
		  char *out, size_t cap);
/* Checks the signature against any of the pool's keys and the expiry; fills
 * vm and issuer.  0, or -1 with the reason. */
int vm_token_check(const char *tok, EVP_PKEY *const *pool, const char *const *ids, int npool, long now,
		   char *vm, size_t vmlen, char *issuer, size_t isslen, char *why, size_t whylen);

/* AES-256-GCM sealing of data at rest under a 32-byte key, with
 * additional authenticated data (NULL: none). */
int vm_seal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t *out, size_t cap);
int vm_unseal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t *out, size_t cap);
int vm_seal_aad(const uint8_t key[32], const char *aad, const uint8_t *in, size_t len, uint8_t *out, size_t cap);
int vm_unseal_aad(const uint8_t key[32], const char *aad, const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* The append-only, hash-chained audit log: one JSON object a line, each
 * carrying the sha256 of the previous line and, when a signing key is
 * given, the Ed25519 signature over its own hash.  vm_audit_open reads the
 * tail once; appends are O(1) and fdatasync'ed; thread-safe. */
struct vm_audit_log;
struct vm_audit_log *vm_audit_open(const char *path, EVP_PKEY *signer);
int vm_audit_append(struct vm_audit_log *l, const char *event, const char *vm, const char *result, const char *reason);
void vm_audit_close(struct vm_audit_log *l);
/* Group commit: appends return at once and a thread fdatasyncs the log every
 * ms milliseconds when something was appended (the default is one
 * fdatasync per append). */
int vm_audit_group_sync(struct vm_audit_log *l, int ms);
/* v1 form: opens, appends, closes (unsigned). */
int vm_audit(const char *path, const char *event, const char *vm, const char *result, const char *reason);
/* Verifies the whole chain (and signatures when pub is given); returns the
 * number of lines, or -1 at a break. */
long vm_audit_verify(const char *path, char *why, size_t whylen);
long vm_audit_verify_signed(const char *path, EVP_PKEY *pub, char *why, size_t whylen);

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
