// SPDX-License-Identifier: Apache-2.0
/*
 * EK certificates against the vendor CA, and TPM2_MakeCredential in OpenSSL
 * (controlplane/keys/ek.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "attest.h"
#include "ek.h"

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -1)
#define EK_CACHE 1024

static time_t asn1_time(const ASN1_TIME *t);

struct ek_cached {
	uint8_t der_hash[32];
	uint8_t id[32];
	time_t not_after;
	EVP_PKEY *key;
};

struct vm_ek_ca {
	X509_STORE *store;
	STACK_OF(X509) *chain;      /* intermediates, untrusted */
	time_t crl_next;            /* with CRLs: the earliest nextUpdate (a verdict is not kept past it) */
	pthread_mutex_t lock;
	struct ek_cached cache[EK_CACHE];
};

struct vm_ek_ca *vm_ek_ca_load(const char *pem_path, char *why, size_t whylen)
{
	FILE *f = fopen(pem_path, "re");
	X509 *x;
	int anchors = 0;

	if (!f)
		return snprintf(why, whylen, "%s: cannot read the vendor CA", pem_path), NULL;
	struct vm_ek_ca *ca = calloc(1, sizeof(*ca));
	if (!ca || !(ca->store = X509_STORE_new()) || !(ca->chain = sk_X509_new_null())) {
		fclose(f);
		vm_ek_ca_free(ca);
		return snprintf(why, whylen, "out of memory"), NULL;
	}
	pthread_mutex_init(&ca->lock, NULL);
	while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
		/* self-signed: an anchor; anything else: an intermediate the
		 * chain may go through (vendors publish them beside the root) */
		if (X509_check_issued(x, x) == X509_V_OK) {
			X509_STORE_add_cert(ca->store, x);
			anchors++;
			X509_free(x);
		} else {
			sk_X509_push(ca->chain, x);
		}
	}
	ERR_clear_error();
	fclose(f);
	if (!anchors) {
		vm_ek_ca_free(ca);
		return snprintf(why, whylen, "%s: no self-signed (root) certificate in the vendor CA file", pem_path), NULL;
	}
	return ca;
}

int vm_ek_ca_load_crl(struct vm_ek_ca *ca, const char *pem_path, char *why, size_t whylen)
{
	FILE *f = fopen(pem_path, "re");
	X509_CRL *crl;
	int n = 0;

	if (!f)
		return WHY("%s: cannot read the vendor CRL", pem_path);
	while ((crl = PEM_read_X509_CRL(f, NULL, NULL, NULL))) {
		const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
		time_t t = nu ? asn1_time(nu) : 0;
		if (!nu || !t) {
			X509_CRL_free(crl);
			fclose(f);
			return WHY("%s: a CRL without a next update time (it would never go stale)", pem_path);
		}
		if (!ca->crl_next || t < ca->crl_next)
			ca->crl_next = t;
		X509_STORE_add_crl(ca->store, crl);
		X509_CRL_free(crl);
		n++;
	}
	ERR_clear_error();
	fclose(f);
	if (!n)
		return WHY("%s: no PEM CRL in the file", pem_path);
	/* the EK certificate's issuer must have a current CRL in the file */
	X509_STORE_set_flags(ca->store, X509_V_FLAG_CRL_CHECK);
	pthread_mutex_lock(&ca->lock);
	for (int i = 0; i < EK_CACHE; i++) {   /* verdicts reached without the CRLs go */
		EVP_PKEY_free(ca->cache[i].key);
		ca->cache[i].key = NULL;
	}
	pthread_mutex_unlock(&ca->lock);
	return 0;
}

void vm_ek_ca_free(struct vm_ek_ca *ca)
{
	if (!ca)
		return;
	X509_STORE_free(ca->store);
	sk_X509_pop_free(ca->chain, X509_free);
	for (int i = 0; i < EK_CACHE; i++)
		EVP_PKEY_free(ca->cache[i].key);
	pthread_mutex_destroy(&ca->lock);
	free(ca);
}

int vm_ek_id(EVP_PKEY *ek, uint8_t id[32])
{
	uint8_t *der = NULL;
	int n = i2d_PUBKEY(ek, &der);
	if (n <= 0)
		return -1;
	vm_sha256(der, n, id);
	OPENSSL_free(der);
	return 0;
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

static int ek_verify(struct vm_ek_ca *ca, const uint8_t *der, size_t len, STACK_OF(X509) *extra, EVP_PKEY **ek,
		     uint8_t id[32], char *why, size_t whylen);

int vm_ek_verify(struct vm_ek_ca *ca, const uint8_t *der, size_t len, EVP_PKEY **ek, uint8_t id[32], char *why,
		 size_t whylen)
{
	return ek_verify(ca, der, len, NULL, ek, id, why, whylen);
}

int vm_ek_verify_pem(struct vm_ek_ca *ca, const char *pem, size_t pemlen, EVP_PKEY **ek, uint8_t id[32], char *why,
		     size_t whylen)
{
	BIO *b = pemlen <= 65536 ? BIO_new_mem_buf(pem, (int)pemlen) : NULL;
	STACK_OF(X509) *extra = sk_X509_new_null();
	uint8_t *der = NULL;
	int dl = -1, n = 0, rc;
	X509 *x;

	if (ek)
		*ek = NULL;
	while (b && extra && n <= VM_EK_CHAIN_MAX && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		if (!n++) {
			dl = i2d_X509(x, &der);
			X509_free(x);
		} else {
			sk_X509_push(extra, x);
		}
	}
	BIO_free(b);
	ERR_clear_error();
	if (dl <= 0 || n > VM_EK_CHAIN_MAX)
		rc = WHY("EK certificate: not the certificate and at most %d intermediates, PEM", VM_EK_CHAIN_MAX - 1);
	else
		rc = ek_verify(ca, der, dl, extra, ek, id, why, whylen);
	OPENSSL_free(der);
	sk_X509_pop_free(extra, X509_free);
	return rc;
}

static int ek_verify(struct vm_ek_ca *ca, const uint8_t *der, size_t len, STACK_OF(X509) *extra, EVP_PKEY **ek,
		     uint8_t id[32], char *why, size_t whylen)
{
	uint8_t h[32];
	time_t now = time(NULL);

	if (ek)
		*ek = NULL;
	if (!ca)
		return WHY("EK certificate: no TPM vendor CA configured");
	if (!len || len > VM_EK_CERT_MAX)
		return WHY("EK certificate: %zu bytes", len);
	vm_sha256(der, len, h);
	struct ek_cached *c = &ca->cache[(h[0] | h[1] << 8) % EK_CACHE];
	pthread_mutex_lock(&ca->lock);
	if (c->key && !memcmp(c->der_hash, h, 32) && now <= c->not_after) {
		memcpy(id, c->id, 32);
		if (ek) {
			EVP_PKEY_up_ref(c->key);
			*ek = c->key;
		}
		pthread_mutex_unlock(&ca->lock);
		return 0;
	}
	pthread_mutex_unlock(&ca->lock);

	const uint8_t *p = der;
	X509 *x = d2i_X509(NULL, &p, len);
	if (!x || p != der + len) {
		X509_free(x);
		ERR_clear_error();
		return WHY("EK certificate: not one DER X.509 certificate");
	}
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = ca->chain, *both = NULL;
	int rc = -1;
	if (extra && sk_X509_num(extra)) {
		/* intermediates the TPM's owner sent beside the certificate: only a
		 * path to one of the CA file's anchors makes any of them count */
		both = sk_X509_dup(ca->chain);
		for (int i = 0; both && i < sk_X509_num(extra); i++)
			sk_X509_push(both, sk_X509_value(extra, i));
		untrusted = both;
	}
	if (!sc || !untrusted || X509_STORE_CTX_init(sc, ca->store, x, untrusted) != 1) {
		(void)WHY("out of memory");
		goto out;
	}
	if (X509_verify_cert(sc) != 1) {
		int e = X509_STORE_CTX_get_error(sc);
		if (e == X509_V_ERR_CERT_REVOKED)
			(void)WHY("EK certificate: revoked by the TPM vendor (CRL)");
		else if (e == X509_V_ERR_CRL_HAS_EXPIRED || e == X509_V_ERR_UNABLE_TO_GET_CRL)
			(void)WHY("EK certificate: no current CRL from its issuer (%s): refused until the CRL is renewed",
				  X509_verify_cert_error_string(e));
		else
			(void)WHY("EK certificate: does not chain to the TPM vendor's CA (%s)", X509_verify_cert_error_string(e));
		goto out;
	}
	EVP_PKEY *k = X509_get0_pubkey(x);
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k) != 2048) {
		(void)WHY("EK certificate: the key is not RSA-2048 (the EK credentials are made for)");
		goto out;
	}
	if (vm_ek_id(k, id)) {
		(void)WHY("EK certificate: cannot encode the key");
		goto out;
	}
	rc = 0;
	EVP_PKEY_up_ref(k);
	if (ek) {
		EVP_PKEY_up_ref(k);
		*ek = k;
	}
	pthread_mutex_lock(&ca->lock);
	EVP_PKEY_free(c->key);
	c->key = k;
	memcpy(c->der_hash, h, 32);
	memcpy(c->id, id, 32);
	c->not_after = asn1_time(X509_get0_notAfter(x));
	if (ca->crl_next && ca->crl_next < c->not_after)   /* a verdict lasts no longer than the CRL it used */
		c->not_after = ca->crl_next;
	pthread_mutex_unlock(&ca->lock);
out:
	X509_STORE_CTX_free(sc);
	sk_X509_free(both);   /* the certificates are the CA's and the caller's */
	X509_free(x);
	ERR_clear_error();
	return rc;
}

/* HMAC-SHA256 through EVP_MAC, fetched once (HMAC_CTX is deprecated). */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static void hmac_fetch(void)
{
	hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static EVP_MAC_CTX *hmac_new(const uint8_t *key, size_t keylen)
{
	OSSL_PARAM prm[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
			     OSSL_PARAM_construct_end() };
	pthread_once(&hmac_once, hmac_fetch);
	EVP_MAC_CTX *c = hmac_alg ? EVP_MAC_CTX_new(hmac_alg) : NULL;
	if (c && EVP_MAC_init(c, key, keylen, prm) != 1) {
		EVP_MAC_CTX_free(c);
		c = NULL;
	}
	return c;
}

void vm_kdfa_sha256(const uint8_t *key, size_t keylen, const char *label, const uint8_t *u, size_t ulen,
		    const uint8_t *v, size_t vlen, uint8_t *out, size_t bits)
{
	size_t need = (bits + 7) / 8, done = 0, bl;
	uint8_t blk[32], b[4];

	for (uint32_t i = 1; done < need; i++) {
		EVP_MAC_CTX *c = hmac_new(key, keylen);
		if (!c) {   /* no HMAC: an output nobody can match */
			RAND_bytes(out + done, need - done);
			break;
		}
		b[0] = i >> 24, b[1] = i >> 16, b[2] = i >> 8, b[3] = i;
		EVP_MAC_update(c, b, 4);
		EVP_MAC_update(c, (const uint8_t *)label, strlen(label) + 1);
		if (ulen)
			EVP_MAC_update(c, u, ulen);
		if (vlen)
			EVP_MAC_update(c, v, vlen);
		b[0] = bits >> 24, b[1] = bits >> 16, b[2] = bits >> 8, b[3] = bits;
		EVP_MAC_update(c, b, 4);
		EVP_MAC_final(c, blk, &bl, sizeof(blk));
		EVP_MAC_CTX_free(c);
		size_t n = need - done < 32 ? need - done : 32;
		memcpy(out + done, blk, n);
		done += n;
	}
	OPENSSL_cleanse(blk, sizeof(blk));
}

int vm_make_credential(EVP_PKEY *ek, const uint8_t *name, size_t namelen, const uint8_t *cred, size_t credlen,
		       uint8_t *blob, size_t blobcap, size_t *bloblen, uint8_t *secret, size_t secretcap,
		       size_t *secretlen)
{
	uint8_t seed[32], sym[16], hkey[32], plain[2 + 32], iv[16] = { 0 }, mac[32];
	size_t elen = 2 + credlen;
	int rc = -1;

	if (!ek || credlen < 1 || credlen > 32 || namelen < 2 || namelen > 66 || EVP_PKEY_get_base_id(ek) != EVP_PKEY_RSA ||
	    blobcap < 2 + 2 + 32 + elen || secretcap < 2 + (size_t)EVP_PKEY_get_size(ek))
		return -1;
	if (RAND_bytes(seed, sizeof(seed)) != 1)
		return -1;
	/* the seed, to the EK (only the TPM holding its private half reads it) */
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(ek, NULL);
	char *label = OPENSSL_malloc(9);
	size_t sl = secretcap - 2;
	if (label)
		memcpy(label, "IDENTITY", 9);
	int ok = pc && label && EVP_PKEY_encrypt_init(pc) == 1 &&
		 EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) == 1 &&
		 EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1 &&
		 EVP_PKEY_CTX_set0_rsa_oaep_label(pc, label, 9) == 1;
	if (!ok)
		OPENSSL_free(label);   /* not taken over */
	ok = ok && EVP_PKEY_encrypt(pc, secret + 2, &sl, seed, sizeof(seed)) == 1;
	EVP_PKEY_CTX_free(pc);
	if (!ok)
		goto out;
	secret[0] = sl >> 8;
	secret[1] = sl & 0xff;
	*secretlen = 2 + sl;

	/* the credential, under a key only that seed and this name give */
	vm_kdfa_sha256(seed, sizeof(seed), "STORAGE", name, namelen, NULL, 0, sym, 128);
	vm_kdfa_sha256(seed, sizeof(seed), "INTEGRITY", NULL, 0, NULL, 0, hkey, 256);
	plain[0] = credlen >> 8;
	plain[1] = credlen & 0xff;
	memcpy(plain + 2, cred, credlen);
	uint8_t *enc = blob + 2 + 2 + 32;
	EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0;
	ok = cc && EVP_EncryptInit_ex(cc, EVP_aes_128_cfb(), NULL, sym, iv) == 1 &&
	     EVP_EncryptUpdate(cc, enc, &n1, plain, elen) == 1 && EVP_EncryptFinal_ex(cc, enc + n1, &n2) == 1 &&
	     (size_t)(n1 + n2) == elen;
	EVP_CIPHER_CTX_free(cc);
	if (!ok)
		goto out;
	EVP_MAC_CTX *hc = hmac_new(hkey, 32);
	size_t ml = 0;
	ok = hc && EVP_MAC_update(hc, enc, elen) == 1 && EVP_MAC_update(hc, name, namelen) == 1 &&
	     EVP_MAC_final(hc, mac, &ml, sizeof(mac)) == 1 && ml == 32;
	EVP_MAC_CTX_free(hc);
	if (!ok)
		goto out;
	size_t inner = 2 + 32 + elen;
	blob[0] = inner >> 8;
	blob[1] = inner & 0xff;
	blob[2] = 0;
	blob[3] = 32;
	memcpy(blob + 4, mac, 32);
	*bloblen = 2 + inner;
	rc = 0;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(sym, sizeof(sym));
	OPENSSL_cleanse(hkey, sizeof(hkey));
	OPENSSL_cleanse(plain, sizeof(plain));
	return rc;
}
