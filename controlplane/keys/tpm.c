// SPDX-License-Identifier: Apache-2.0
/*
 * ESYS helpers shared by veil-attest and veil-agent --register
 * (controlplane/keys/tpm.h).
 */
#include <stdio.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <tss2/tss2_mu.h>

#include "tpm.h"

ESYS_CONTEXT *vm_tpm_open(const char *conf, TSS2_TCTI_CONTEXT **tcti, char *why, size_t whylen)
{
	ESYS_CONTEXT *ctx = NULL;

	*tcti = NULL;
	if (Tss2_TctiLdr_Initialize(conf, tcti) != TSS2_RC_SUCCESS) {
		snprintf(why, whylen, "cannot reach the TPM at '%s'", conf);
		return NULL;
	}
	if (Esys_Initialize(&ctx, *tcti, NULL) != TSS2_RC_SUCCESS) {
		Tss2_TctiLdr_Finalize(tcti);
		snprintf(why, whylen, "cannot initialise the TPM context");
		return NULL;
	}
	TSS2_RC rc = Esys_Startup(ctx, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
		vm_tpm_close(&ctx, tcti);
		snprintf(why, whylen, "TPM startup failed: 0x%x", rc);
		return NULL;
	}
	return ctx;
}

void vm_tpm_close(ESYS_CONTEXT **ctx, TSS2_TCTI_CONTEXT **tcti)
{
	if (ctx && *ctx)
		Esys_Finalize(ctx);
	if (tcti && *tcti)
		Tss2_TctiLdr_Finalize(tcti);
}

TSS2_RC vm_tpm_create_ak(ESYS_CONTEXT *ctx, ESYS_TR *h, TPM2B_PUBLIC **pub)
{
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_PUBLIC tmpl = {
		.publicArea = {
			.type = TPM2_ALG_ECC,
			.nameAlg = TPM2_ALG_SHA256,
			/* NODA: an empty-auth key must not count towards, or be
			 * stopped by, dictionary-attack lockout */
			.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
					    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
					    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_NODA,
			.parameters.eccDetail = {
				.symmetric = { .algorithm = TPM2_ALG_NULL },
				.scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
				.curveID = TPM2_ECC_NIST_P256,
				.kdf = { .scheme = TPM2_ALG_NULL },
			},
		},
	};
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION none = { 0 };

	return Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
				  &outside, &none, h, pub, NULL, NULL, NULL);
}

TSS2_RC vm_tpm_create_ek(ESYS_CONTEXT *ctx, ESYS_TR *h)
{
	/* PolicySecret(TPM_RH_ENDORSEMENT): the EK's use needs the
	 * endorsement hierarchy's authorisation */
	static const uint8_t policy_a[32] = { 0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
					      0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
					      0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa };
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_PUBLIC tmpl = {
		.publicArea = {
			.type = TPM2_ALG_RSA,
			.nameAlg = TPM2_ALG_SHA256,
			.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
					    TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
			.authPolicy = { .size = 32 },
			.parameters.rsaDetail = {
				.symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
				.scheme = { .scheme = TPM2_ALG_NULL },
				.keyBits = 2048,
				.exponent = 0,
			},
			.unique.rsa = { .size = 256 },
		},
	};
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION none = { 0 };

	memcpy(tmpl.publicArea.authPolicy.buffer, policy_a, 32);
	return Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
				  &outside, &none, h, NULL, NULL, NULL, NULL);
}

int vm_tpm_read_nv_cert(ESYS_CONTEXT *ctx, uint32_t index, uint8_t *out, size_t cap)
{
	ESYS_TR nv;
	TPM2B_NV_PUBLIC *np = NULL;
	size_t len = 0;

	if (Esys_TR_FromTPMPublic(ctx, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv) != TSS2_RC_SUCCESS)
		return -1;
	if (Esys_NV_ReadPublic(ctx, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &np, NULL) != TSS2_RC_SUCCESS)
		return -1;
	size_t total = np->nvPublic.dataSize;
	Esys_Free(np);
	if (total > cap)
		return -1;
	while (len < total) {
		TPM2B_MAX_NV_BUFFER *d = NULL;
		uint16_t n = total - len > 512 ? 512 : total - len;
		if (Esys_NV_Read(ctx, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, len, &d) !=
		    TSS2_RC_SUCCESS)
			return -1;
		if (d->size > total - len) {
			Esys_Free(d);
			return -1;
		}
		memcpy(out + len, d->buffer, d->size);
		len += d->size;
		int short_read = d->size == 0;
		Esys_Free(d);
		if (short_read)
			return -1;
	}
	/* the NV area may be larger than the DER certificate in it */
	if (len >= 4 && out[0] == 0x30 && out[1] == 0x82) {
		size_t der = 4 + ((size_t)out[2] << 8 | out[3]);
		if (der <= len)
			len = der;
	}
	return (int)len;
}

int vm_tpm_activate(ESYS_CONTEXT *ctx, ESYS_TR ak, ESYS_TR ek, const uint8_t *blob, size_t bl, const uint8_t *sec,
		    size_t sl, uint8_t out[32], TSS2_RC *why)
{
	TPM2B_ID_OBJECT cb;
	TPM2B_ENCRYPTED_SECRET es;
	size_t o1 = 0, o2 = 0;
	TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
	ESYS_TR s;
	TPM2B_DIGEST *cert = NULL;
	int rc = -1;

	*why = 0;
	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, bl, &o1, &cb) != TSS2_RC_SUCCESS || o1 != bl ||
	    Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(sec, sl, &o2, &es) != TSS2_RC_SUCCESS || o2 != sl)
		return -1;
	if ((*why = Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
					  TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, &s)) != TSS2_RC_SUCCESS)
		return -1;
	*why = Esys_PolicySecret(ctx, ESYS_TR_RH_ENDORSEMENT, s, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, NULL, NULL,
				 NULL, 0, NULL, NULL);
	if (*why == TSS2_RC_SUCCESS)
		*why = Esys_ActivateCredential(ctx, ak, ek, ESYS_TR_PASSWORD, s, ESYS_TR_NONE, &cb, &es, &cert);
	if (*why == TSS2_RC_SUCCESS && cert->size == 32) {
		memcpy(out, cert->buffer, 32);
		rc = 0;
	}
	if (cert)
		OPENSSL_cleanse(cert->buffer, cert->size);
	Esys_Free(cert);
	Esys_FlushContext(ctx, s);
	return rc;
}

TSS2_RC vm_tpm_quote(ESYS_CONTEXT *ctx, ESYS_TR ak, const uint8_t qdig[32], uint32_t mask, uint8_t *attest,
		     size_t acap, size_t *alen, uint8_t *sigb, size_t scap, size_t *slen)
{
	TPM2B_DATA qd = { .size = 32 };
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 };
	TPML_PCR_SELECTION sel = { .count = 1, .pcrSelections[0] = { .hash = TPM2_ALG_SHA256, .sizeofSelect = 3 } };
	TPM2B_ATTEST *quoted = NULL;
	TPMT_SIGNATURE *sig = NULL;

	memcpy(qd.buffer, qdig, 32);
	for (int i = 0; i < 3; i++)
		sel.pcrSelections[0].pcrSelect[i] = (mask >> (8 * i)) & 0xff;
	TSS2_RC rc = Esys_Quote(ctx, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qd, &scheme, &sel, &quoted, &sig);
	if (rc != TSS2_RC_SUCCESS)
		return rc;
	*slen = 0;
	if (quoted->size > acap || Tss2_MU_TPMT_SIGNATURE_Marshal(sig, sigb, scap, slen) != TSS2_RC_SUCCESS) {
		rc = 1;
	} else {
		memcpy(attest, quoted->attestationData, quoted->size);
		*alen = quoted->size;
	}
	Esys_Free(quoted);
	Esys_Free(sig);
	return rc;
}

EVP_PKEY *vm_tpm_ak_pkey(const TPM2B_PUBLIC *pub)
{
	uint8_t pt[65];
	const TPMS_ECC_POINT *p = &pub->publicArea.unique.ecc;
	EVP_PKEY *k = NULL;

	if (p->x.size > 32 || p->y.size > 32)
		return NULL;
	memset(pt, 0, sizeof(pt));
	pt[0] = 4;
	memcpy(pt + 1 + 32 - p->x.size, p->x.buffer, p->x.size);
	memcpy(pt + 33 + 32 - p->y.size, p->y.buffer, p->y.size);
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
	OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt));
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (EVP_PKEY_fromdata_init(pc) != 1 || EVP_PKEY_fromdata(pc, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(pc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	return k;
}
