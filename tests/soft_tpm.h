/* SPDX-License-Identifier: Apache-2.0 */
/* A software stand-in for the TPM and the firmware, for unit tests, fuzz seeds
 * and the validator benchmark: an ECDSA P-256 "AK" as a TPM2B_PUBLIC, TCG
 * crypto-agile event logs as OVMF + the EFI stub write them, and quotes
 * (TPMS_ATTEST + TPMT_SIGNATURE) marshalled by tpm2-tss and signed by
 * OpenSSL.  Nothing here is trusted by the code under test: it only makes
 * bytes shaped like a TPM's. */
#ifndef VEIL_SOFT_TPM_H
#define VEIL_SOFT_TPM_H

#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include "keys/attest.h"

struct soft_ak {
	EVP_PKEY *key;
	uint8_t pub[sizeof(TPM2B_PUBLIC)];   /* marshalled TPM2B_PUBLIC */
	size_t publen;
	uint8_t qn[34];                      /* qualified name as a primary of the endorsement hierarchy */
};

static inline void soft_sha256(const void *in, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	EVP_Digest(in, len, out, &n, EVP_sha256(), NULL);
}

static inline int soft_ak_new(struct soft_ak *ak, TPMA_OBJECT attrs)
{
	BIGNUM *x = NULL, *y = NULL;
	TPM2B_PUBLIC tp = { .publicArea = {
		.type = TPM2_ALG_ECC, .nameAlg = TPM2_ALG_SHA256, .objectAttributes = attrs,
		.parameters.eccDetail = { .symmetric = { .algorithm = TPM2_ALG_NULL },
					  .scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
					  .curveID = TPM2_ECC_NIST_P256, .kdf = { .scheme = TPM2_ALG_NULL } } } };

	ak->key = EVP_EC_gen("P-256");
	if (!ak->key || EVP_PKEY_get_bn_param(ak->key, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(ak->key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1)
		return -1;
	tp.publicArea.unique.ecc.x.size = 32;
	tp.publicArea.unique.ecc.y.size = 32;
	BN_bn2binpad(x, tp.publicArea.unique.ecc.x.buffer, 32);
	BN_bn2binpad(y, tp.publicArea.unique.ecc.y.buffer, 32);
	BN_free(x);
	BN_free(y);
	ak->publen = 0;
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&tp, ak->pub, sizeof(ak->pub), &ak->publen) != TSS2_RC_SUCCESS)
		return -1;
	uint8_t name[34], qb[38] = { 0x40, 0, 0, 0x0b };
	name[0] = 0;
	name[1] = 0x0b;
	soft_sha256(ak->pub + 2, ak->publen - 2, name + 2);
	memcpy(qb + 4, name, 34);
	ak->qn[0] = 0;
	ak->qn[1] = 0x0b;
	soft_sha256(qb, sizeof(qb), ak->qn + 2);
	return 0;
}

#define SOFT_AK_ATTRS (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | \
		       TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_NODA)

/* ---------- event logs ---------- */

struct soft_log {
	uint8_t buf[8192];
	size_t len;
	uint8_t pcr[24][32];
};

static inline void soft_put(struct soft_log *l, const void *p, size_t n)
{
	if (l->len + n <= sizeof(l->buf)) {
		memcpy(l->buf + l->len, p, n);
		l->len += n;
	}
}

static inline void soft_le32(struct soft_log *l, uint32_t v)
{
	uint8_t b[4] = { v, v >> 8, v >> 16, v >> 24 };
	soft_put(l, b, 4);
}

static inline void soft_event(struct soft_log *l, uint32_t pcr, uint32_t type, const void *digested, size_t dn,
			      const void *data, size_t n)
{
	uint8_t d[32], buf[64];
	soft_sha256(digested, dn, d);
	soft_le32(l, pcr);
	soft_le32(l, type);
	soft_le32(l, 1);
	soft_put(l, (uint8_t[]){ 0x0b, 0x00 }, 2);
	soft_put(l, d, 32);
	soft_le32(l, n);
	soft_put(l, data, n);
	memcpy(buf, l->pcr[pcr], 32);
	memcpy(buf + 32, d, 32);
	soft_sha256(buf, 64, l->pcr[pcr]);
}

/* firmware, Secure Boot variables, separators, and (pcr9) the EFI stub's
 * command line and initrd events */
static inline void soft_log_boot(struct soft_log *l, const char *cmdline, const void *initrd, size_t ilen, int pcr9)
{
	static const char spec[] = "Spec ID Event03";
	memset(l, 0, sizeof(*l));
	soft_le32(l, 0);
	soft_le32(l, 3);
	soft_put(l, (uint8_t[20]){ 0 }, 20);
	soft_le32(l, 33);
	soft_put(l, spec, 16);
	soft_put(l, (uint8_t[]){ 0, 0, 0, 0, 0, 2, 0, 2, 1, 0, 0, 0, 0x0b, 0x00, 32, 0, 0 }, 17);
	soft_event(l, 0, 0x8, "OVMF (soft)", 11, "OVMF (soft)", 11);
	soft_event(l, 7, 0x80000001, "SecureBoot=0", 12, "SecureBoot=0", 12);
	for (int p = 0; p < 8; p++)
		soft_event(l, p, 0x4, "\0\0\0\0", 4, "\0\0\0\0", 4);
	if (pcr9) {
		uint8_t u[2 * 4096 + 32];
		size_t n = 0, cl = strlen(cmdline);
		static const char tail[] = " initrd=initrd";
		for (size_t i = 0; i < cl + sizeof(tail) - 1 && n + 4 < sizeof(u); i++) {
			u[n++] = i < cl ? cmdline[i] : tail[i - cl];
			u[n++] = 0;
		}
		u[n++] = 0;
		u[n++] = 0;
		soft_event(l, 9, 0x6, u, n, u, n);
		soft_event(l, 9, 0x6, initrd, ilen, "Linux initrd", 12);
	}
}

/* ---------- quotes ---------- */

struct soft_quote {
	uint8_t attest[1024], sig[256];
	size_t alen, slen;
};

/* A quote of PCRs in mask (sha256) whose digest is over the given values. */
static inline int soft_quote_make(const struct soft_ak *ak, uint8_t pcr[24][32], uint32_t mask, const uint8_t *qd,
				  size_t qdlen, const uint8_t *signer, struct soft_quote *q)
{
	TPMS_ATTEST a;
	uint8_t cat[24 * 32];
	size_t n = 0;

	memset(&a, 0, sizeof(a));
	a.magic = TPM2_GENERATED_VALUE;
	a.type = TPM2_ST_ATTEST_QUOTE;
	a.qualifiedSigner.size = 34;
	memcpy(a.qualifiedSigner.name, signer ? signer : ak->qn, 34);
	a.extraData.size = qdlen;
	memcpy(a.extraData.buffer, qd, qdlen);
	a.clockInfo.clock = 1000;
	a.clockInfo.resetCount = 1;
	a.clockInfo.safe = 1;
	a.attested.quote.pcrSelect.count = 1;
	a.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA256;
	a.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 3;
	for (int i = 0; i < 3; i++)
		a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[i] = mask >> (8 * i);
	for (int p = 0; p < 24; p++)
		if (mask & (1u << p)) {
			memcpy(cat + n, pcr[p], 32);
			n += 32;
		}
	a.attested.quote.pcrDigest.size = 32;
	soft_sha256(cat, n, a.attested.quote.pcrDigest.buffer);
	q->alen = 0;
	if (Tss2_MU_TPMS_ATTEST_Marshal(&a, q->attest, sizeof(q->attest), &q->alen) != TSS2_RC_SUCCESS)
		return -1;
	uint8_t der[80];
	size_t dl = sizeof(der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ak->key) == 1 &&
		 EVP_DigestSign(md, der, &dl, q->attest, q->alen) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return -1;
	const uint8_t *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, dl);
	if (!es)
		return -1;
	TPMT_SIGNATURE s = { .sigAlg = TPM2_ALG_ECDSA, .signature.ecdsa = { .hash = TPM2_ALG_SHA256 } };
	s.signature.ecdsa.signatureR.size = 32;
	s.signature.ecdsa.signatureS.size = 32;
	BN_bn2binpad(ECDSA_SIG_get0_r(es), s.signature.ecdsa.signatureR.buffer, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(es), s.signature.ecdsa.signatureS.buffer, 32);
	ECDSA_SIG_free(es);
	q->slen = 0;
	return Tss2_MU_TPMT_SIGNATURE_Marshal(&s, q->sig, sizeof(q->sig), &q->slen) == TSS2_RC_SUCCESS ? 0 : -1;
}

#endif
