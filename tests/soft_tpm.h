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

#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "keys/attest.h"
#include "keys/ek.h"

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

/* ---------- the endorsement key, its vendor, credential activation ---------- */

/* A "vendor" CA (self-signed P-256) and an RSA-2048 EK certified by it. */
struct soft_ek {
	EVP_PKEY *key;
	uint8_t der[2048];
	int derlen;
};

static inline X509 *soft_cert(EVP_PKEY *subject, EVP_PKEY *issuer_key, X509 *issuer, const char *cn, int ca, long serial)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
	X509_set_pubkey(x, subject);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, ca ? "critical,keyCertSign" : "critical,keyEncipherment");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	X509_sign(x, issuer_key, EVP_sha256());
	return x;
}

/* writes the CA's certificate (PEM) to path; *ca and *cakey for soft_ek_new */
static inline int soft_vendor_new(const char *path, X509 **ca, EVP_PKEY **cakey)
{
	*cakey = EVP_EC_gen("P-256");
	*ca = *cakey ? soft_cert(*cakey, *cakey, NULL, "soft TPM vendor", 1, 1) : NULL;
	FILE *f = *ca ? fopen(path, "w") : NULL;
	int ok = f && PEM_write_X509(f, *ca) == 1;
	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

static inline int soft_ek_new(struct soft_ek *ek, X509 *ca, EVP_PKEY *cakey, long serial)
{
	ek->key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	X509 *x = ek->key ? soft_cert(ek->key, cakey, ca, "soft TPM EK", 0, serial) : NULL;
	uint8_t *p = ek->der;
	ek->derlen = x && i2d_X509(x, NULL) <= (int)sizeof(ek->der) ? i2d_X509(x, &p) : -1;
	X509_free(x);
	return ek->derlen > 0 ? 0 : -1;
}

/* TPM2_ActivateCredential as the TPM does it (Part 1 sec. 24): the seed with
 * the EK's private key, the HMAC over encIdentity || name checked, then the
 * credential decrypted.  0, or -1 as the TPM would refuse. */
static inline int soft_activate(EVP_PKEY *ek, const uint8_t *name, size_t nl, const uint8_t *blob, size_t bl,
				const uint8_t *sec, size_t sl, uint8_t *out, size_t *outlen)
{
	uint8_t seed[256], sym[16], hkey[32], mac[32], plain[64], iv[16] = { 0 };
	size_t seedl = sizeof(seed), ml = 0;

	if (bl < 2 + 2 + 32 + 3 || sl < 2 || ((size_t)blob[0] << 8 | blob[1]) != bl - 2 || blob[2] != 0 || blob[3] != 32 ||
	    ((size_t)sec[0] << 8 | sec[1]) != sl - 2)
		return -1;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(ek, NULL);
	char *label = OPENSSL_malloc(9);
	memcpy(label, "IDENTITY", 9);
	int ok = pc && EVP_PKEY_decrypt_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) == 1 &&
		 EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1 &&
		 EVP_PKEY_CTX_set0_rsa_oaep_label(pc, label, 9) == 1;
	if (!ok)
		OPENSSL_free(label);
	ok = ok && EVP_PKEY_decrypt(pc, seed, &seedl, sec + 2, sl - 2) == 1 && seedl == 32;
	EVP_PKEY_CTX_free(pc);
	if (!ok)
		return -1;
	const uint8_t *enc = blob + 36;
	size_t el = bl - 36;
	if (el > sizeof(plain))
		return -1;
	vm_kdfa_sha256(seed, 32, "INTEGRITY", NULL, 0, NULL, 0, hkey, 256);
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *mc = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM prm[] = { OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_construct_end() };
	ok = mc && EVP_MAC_init(mc, hkey, 32, prm) == 1 && EVP_MAC_update(mc, enc, el) == 1 &&
	     EVP_MAC_update(mc, name, nl) == 1 && EVP_MAC_final(mc, mac, &ml, 32) == 1 && ml == 32 &&
	     !CRYPTO_memcmp(mac, blob + 4, 32);
	EVP_MAC_CTX_free(mc);
	EVP_MAC_free(m);
	if (!ok)
		return -1;   /* TPM_RC_INTEGRITY: another name, or altered */
	vm_kdfa_sha256(seed, 32, "STORAGE", name, nl, NULL, 0, sym, 128);
	EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0;
	ok = cc && EVP_DecryptInit_ex(cc, EVP_aes_128_cfb(), NULL, sym, iv) == 1 &&
	     EVP_DecryptUpdate(cc, plain, &n1, enc, el) == 1 && EVP_DecryptFinal_ex(cc, plain + n1, &n2) == 1;
	EVP_CIPHER_CTX_free(cc);
	if (!ok || (size_t)(n1 + n2) != el || ((size_t)plain[0] << 8 | plain[1]) != el - 2)
		return -1;
	memcpy(out, plain + 2, el - 2);
	*outlen = el - 2;
	return 0;
}

/* the AK's name (nameAlg || sha256(TPMT_PUBLIC)) */
static inline void soft_ak_name(const struct soft_ak *ak, uint8_t name[34])
{
	name[0] = 0;
	name[1] = 0x0b;
	soft_sha256(ak->pub + 2, ak->publen - 2, name + 2);
}

#endif
