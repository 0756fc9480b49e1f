/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TPM side (tpm2-tss ESYS) of what keys/ek.h verifies: the endorsement
 * key from the TCG default template, its certificate from NV, a restricted
 * ECDSA P-256 attestation key, TPM2_ActivateCredential under a PolicySecret
 * session on the endorsement hierarchy, and quotes.  Shared by the VM's
 * attestation client (images/attest/veil-attest.c) and the node agent's
 * registration (controlplane/agent/register.c).  No function here exits.
 */
#ifndef VEIL_TPM_H
#define VEIL_TPM_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

/* Opens the TPM at a TCTI configuration (device:/dev/tpmrm0,
 * swtpm:host=127.0.0.1,port=2321, ...) and starts it up.  NULL with why. */
ESYS_CONTEXT *vm_tpm_open(const char *conf, TSS2_TCTI_CONTEXT **tcti, char *why, size_t whylen);
void vm_tpm_close(ESYS_CONTEXT **ctx, TSS2_TCTI_CONTEXT **tcti);

/* The attestation key: a restricted ECDSA P-256 signing primary in the
 * endorsement hierarchy (the same key every time for the same TPM):
 * fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted,
 * sign, noDA.  0 or the TPM's response code. */
TSS2_RC vm_tpm_create_ak(ESYS_CONTEXT *ctx, ESYS_TR *h, TPM2B_PUBLIC **pub);
/* The endorsement key from the TCG default RSA-2048 template (EK Credential
 * Profile, template L-1): the key the manufacturer's certificate is for. */
TSS2_RC vm_tpm_create_ek(ESYS_CONTEXT *ctx, ESYS_TR *h);
/* The DER certificate at an NV index (VM_EK_NV_RSA2048): its length or -1. */
int vm_tpm_read_nv_cert(ESYS_CONTEXT *ctx, uint32_t index, uint8_t *out, size_t cap);
/* TPM2_ActivateCredential of a marshalled TPM2B_ID_OBJECT and
 * TPM2B_ENCRYPTED_SECRET (keys/ek.h vm_make_credential): the 32-byte
 * credential into out.  0, or -1 with *rc the TPM's answer (0 when the
 * blobs did not even parse). */
int vm_tpm_activate(ESYS_CONTEXT *ctx, ESYS_TR ak, ESYS_TR ek, const uint8_t *blob, size_t bl, const uint8_t *sec,
		    size_t sl, uint8_t out[32], TSS2_RC *rc);
/* An ECDSA/SHA256 quote by ak of the sha256 PCRs in mask (may be 0) over
 * qualifying data qd (32 bytes): the TPMS_ATTEST and the TPMT_SIGNATURE,
 * marshalled.  0, or the TPM's response code (or 1: a buffer too small). */
TSS2_RC vm_tpm_quote(ESYS_CONTEXT *ctx, ESYS_TR ak, const uint8_t qd[32], uint32_t mask, uint8_t *attest,
		     size_t acap, size_t *alen, uint8_t *sig, size_t scap, size_t *slen);
/* The AK's public point as an OpenSSL key (EVP_PKEY_free it), or NULL. */
EVP_PKEY *vm_tpm_ak_pkey(const TPM2B_PUBLIC *pub);

#endif
