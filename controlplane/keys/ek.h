/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A TPM's endorsement key (EK): its certificate checked against the TPM
 * vendor's CA, its identity, and TPM2_MakeCredential to it, so that a
 * verifier learns that an attestation key (AK) lives in the same TPM as the
 * certified EK (credential activation, TPM 2.0 Part 1 sec. 24).  Pure
 * OpenSSL: no TPM and no tpm2-tss needed on the verifier's side.
 *
 * Used by the validators (docs/attestation.md) and meant for node
 * registration (node id = vm_ek_id of the node TPM's EK).
 */
#ifndef VEIL_EK_H
#define VEIL_EK_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

/* NV indices where the TPM manufacturer (or swtpm_setup) stores EK
 * certificates (TCG EK Credential Profile 2.0, sec. 2.2.1.4). */
#define VM_EK_NV_RSA2048 0x01c00002u
#define VM_EK_NV_ECCP256 0x01c0000au
#define VM_EK_CERT_MAX   4096

/* The vendor CA: trust anchors (self-signed certificates) and intermediates,
 * all PEM in one file.  vm_ek_verify results are cached per certificate. */
struct vm_ek_ca;
struct vm_ek_ca *vm_ek_ca_load(const char *pem_path, char *why, size_t whylen);
void vm_ek_ca_free(struct vm_ek_ca *ca);

/* The vendor's certificate revocation lists (PEM, one file, one or more):
 * from then on an EK certificate needs a current CRL from its issuer and is
 * refused when that CRL revokes it, or when the CRL is past its next update
 * (fail closed: renew the file).  Call before the first vm_ek_verify.
 * 0, or -1 with the reason. */
int vm_ek_ca_load_crl(struct vm_ek_ca *ca, const char *pem_path, char *why, size_t whylen);

/* Checks that a DER EK certificate chains to the CA (signatures, validity
 * times, CA constraints) and that its key is RSA-2048 (the EK template the
 * validators make credentials for).  On success *ek (when not NULL) gets a
 * reference to the key (EVP_PKEY_free it) and id the EK's identity.
 * Thread-safe; 0, or -1 with the reason. */
int vm_ek_verify(struct vm_ek_ca *ca, const uint8_t *der, size_t len, EVP_PKEY **ek, uint8_t id[32], char *why,
		 size_t whylen);

/* The same for a PEM text: the EK certificate first, then at most
 * VM_EK_CHAIN_MAX - 1 intermediates (untrusted: they only help build a path
 * to the CA file's anchors).  0, or -1 with the reason. */
#define VM_EK_CHAIN_MAX 4
int vm_ek_verify_pem(struct vm_ek_ca *ca, const char *pem, size_t pemlen, EVP_PKEY **ek, uint8_t id[32], char *why,
		     size_t whylen);

/* The EK's identity (and a node's id): sha256 of its SubjectPublicKeyInfo DER
 * (`openssl pkey -pubin -outform DER | sha256sum`).  0 or -1. */
int vm_ek_id(EVP_PKEY *ek, uint8_t id[32]);

/* TPM2_MakeCredential, as the TPM would do it with only the EK's public
 * part loaded: the credential (1..32 bytes) for the object named name
 * (nameAlg || digest, e.g. the AK's 34-byte name), protected to the EK
 * (RSA-2048, nameAlg sha256, AES-128-CFB: the TCG default EK template):
 *   seed        random, 32 bytes; secret = RSA-OAEP-SHA256(seed, label "IDENTITY\0")
 *   symKey      KDFa(sha256, seed, "STORAGE", name, -, 128)
 *   encIdentity AES-128-CFB(symKey, IV 0, TPM2B_DIGEST(credential))
 *   hmacKey     KDFa(sha256, seed, "INTEGRITY", -, -, 256)
 *   blob        TPM2B_ID_OBJECT: TPM2B(HMAC(hmacKey, encIdentity || name)) || encIdentity
 * Writes blob and secret marshalled (TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET,
 * with their size fields) and their lengths.  0 or -1. */
int vm_make_credential(EVP_PKEY *ek, const uint8_t *name, size_t namelen, const uint8_t *cred, size_t credlen,
		       uint8_t *blob, size_t blobcap, size_t *bloblen, uint8_t *secret, size_t secretcap,
		       size_t *secretlen);

/* KDFa of TPM 2.0 Part 1 sec. 11.4.10.2 with sha256 (label without its NUL;
 * the NUL is added as the specification wants). */
void vm_kdfa_sha256(const uint8_t *key, size_t keylen, const char *label, const uint8_t *u, size_t ulen,
		    const uint8_t *v, size_t vlen, uint8_t *out, size_t bits);

#endif
