// SPDX-License-Identifier: Apache-2.0
/*
 * Protocol v2 (docs/attestation.md): firmware-rooted evidence.  The TCG event
 * log replay, the registry-signed policy, the AK's TPM2B_PUBLIC checks, the
 * holder's whole verdict (pure: no I/O, no clock, fuzzed), and shares boxed to
 * the VM's ephemeral X25519 key.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include "attest.h"

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -1)

#define EV_NO_ACTION 0x00000003u

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

/* ---------- the TCG PC Client crypto-agile event log ---------- */

int vm_evlog_replay(const uint8_t *log, size_t len, struct vm_evlog *out, char *why, size_t whylen)
{
	struct { uint16_t alg, size; } algs[8];
	uint32_t nalg;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	if (len > VM_EVLOG_MAX)
		return WHY("event log: larger than %u bytes", VM_EVLOG_MAX);
	/* the first event: SHA1 format, carrying the Spec ID event */
	if (len < 32)
		return WHY("event log: too short");
	uint32_t esz = le32(log + 28);
	if (le32(log + 4) != EV_NO_ACTION || esz < 29 || esz > len - 32 ||
	    memcmp(log + 32, "Spec ID Event03\0", 16))
		return WHY("event log: not a crypto-agile log (no Spec ID Event03)");
	const uint8_t *sp = log + 32;
	nalg = le32(sp + 24);
	if (nalg < 1 || nalg > 8 || 28 + 4 * (size_t)nalg + 1 > esz)
		return WHY("event log: bad digest list in the Spec ID event");
	int have256 = 0;
	for (uint32_t i = 0; i < nalg; i++) {
		algs[i].alg = le16(sp + 28 + 4 * i);
		algs[i].size = le16(sp + 30 + 4 * i);
		if (algs[i].size == 0 || algs[i].size > 64)
			return WHY("event log: digest size %u", algs[i].size);
		if (algs[i].alg == TPM2_ALG_SHA256) {
			if (algs[i].size != 32)
				return WHY("event log: sha256 with size %u", algs[i].size);
			have256 = 1;
		}
	}
	if (!have256)
		return WHY("event log: no sha256 bank");
	off = 32 + esz;
	while (off < len) {
		if (len - off < 12)
			return WHY("event log: truncated at byte %zu", off);
		uint32_t pcr = le32(log + off), type = le32(log + off + 4), cnt = le32(log + off + 8);
		const uint8_t *d256 = NULL;
		off += 12;
		if (pcr > 23 || cnt < 1 || cnt > nalg)
			return WHY("event log: event %u: PCR %u or %u digests", out->events + 1, pcr, cnt);
		for (uint32_t i = 0; i < cnt; i++) {
			if (len - off < 2)
				return WHY("event log: truncated at byte %zu", off);
			uint16_t alg = le16(log + off);
			int k = -1;
			for (uint32_t a = 0; a < nalg; a++)
				if (algs[a].alg == alg)
					k = a;
			if (k < 0 || len - off - 2 < algs[k].size)
				return WHY("event log: event %u: unknown or truncated digest", out->events + 1);
			if (alg == TPM2_ALG_SHA256)
				d256 = log + off + 2;
			off += 2 + algs[k].size;
		}
		if (len - off < 4)
			return WHY("event log: truncated at byte %zu", off);
		uint32_t dsz = le32(log + off);
		off += 4;
		if (dsz > len - off)
			return WHY("event log: event %u: data runs past the end", out->events + 1);
		const uint8_t *data = log + off;
		off += dsz;
		if (type == EV_NO_ACTION) {
			/* StartupLocality sets PCR 0's initial value; nothing else is extended */
			if (pcr == 0 && dsz == 17 && !memcmp(data, "StartupLocality\0", 16))
				out->pcr[0][31] = data[16];
			continue;
		}
		if (!d256)
			return WHY("event log: event %u has no sha256 digest", out->events + 1);
		uint8_t buf[64];
		memcpy(buf, out->pcr[pcr], 32);
		memcpy(buf + 32, d256, 32);
		vm_sha256(buf, 64, out->pcr[pcr]);
		if (pcr == 9) {
			if (out->npcr9 >= VM_PCR9_MAX)
				return WHY("event log: more than %d PCR 9 events", VM_PCR9_MAX);
			memcpy(out->pcr9[out->npcr9], d256, 32);
			out->pcr9_type[out->npcr9++] = type;
		}
		if (++out->events > 100000)
			return WHY("event log: too many events");
	}
	return 0;
}

void vm_cmdline_digest(const char *cmdline, size_t len, uint8_t out[32])
{
	static const char tail[] = " initrd=initrd";
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int ol = 32;
	uint8_t u[2] = { 0, 0 };

	while (len && (cmdline[len - 1] == '\n' || cmdline[len - 1] == '\r'))
		len--;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (size_t i = 0; i < len + sizeof(tail) - 1; i++) {
		u[0] = i < len ? (uint8_t)cmdline[i] : (uint8_t)tail[i - len];
		EVP_DigestUpdate(md, u, 2);
	}
	u[0] = 0;
	EVP_DigestUpdate(md, u, 2);
	EVP_DigestFinal_ex(md, out, &ol);
	EVP_MD_CTX_free(md);
}

void vm_qualifying(const uint8_t nonce[VM_NONCE_LEN], const uint8_t pub[32], uint8_t out[32])
{
	uint8_t b[VM_NONCE_LEN + 32];
	memcpy(b, nonce, VM_NONCE_LEN);
	memcpy(b + VM_NONCE_LEN, pub, 32);
	vm_sha256(b, sizeof(b), out);
}

void vm_key_commit(const char *vm, uint64_t epoch, const uint8_t *key, size_t klen, uint8_t out[32])
{
	static const char tag[] = "veilmesh key commitment v1";
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int ol = 32;
	uint8_t e[8];

	for (int i = 0; i < 8; i++)
		e[i] = epoch >> (56 - 8 * i);
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, tag, sizeof(tag));
	EVP_DigestUpdate(md, vm, strlen(vm) + 1);
	EVP_DigestUpdate(md, e, 8);
	EVP_DigestUpdate(md, key, klen);
	EVP_DigestFinal_ex(md, out, &ol);
	EVP_MD_CTX_free(md);
}

void vm_share_aad(const char *vm, uint64_t epoch, const char *holder, char *out, size_t cap)
{
	snprintf(out, cap, "%s|%llu|%s", vm, (unsigned long long)epoch, holder);
}

/* ---------- the registry-signed policy ---------- */

static int hex32(json_object *o, const char *k, uint8_t out[32])
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) &&
		       !vm_unhex(json_object_get_string(v), out, 32) ? 0 : -1;
}

int vm_policy_load(const char *doc, size_t len, const uint8_t *sig, size_t siglen, EVP_PKEY *registry,
		   struct vm_policy *p, char *why, size_t whylen)
{
	memset(p, 0, sizeof(*p));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = siglen == 64 && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, registry) == 1 &&
		 EVP_DigestVerify(md, sig, 64, (const uint8_t *)doc, len) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return WHY("reference values: not signed by the image registry (altered?)");
	return vm_policy_parse(doc, len, p, why, whylen);
}

int vm_policy_parse(const char *doc, size_t len, struct vm_policy *p, char *why, size_t whylen)
{
	json_object *j, *v, *a;

	memset(p, 0, sizeof(*p));
	json_tokener *tk = json_tokener_new();
	j = tk ? json_tokener_parse_ex(tk, doc, len) : NULL;
	json_tokener_free(tk);
	if (!j || !json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		return WHY("reference values: not a JSON object");
	}
	int rc = -1;
	const char *vm = json_object_object_get_ex(j, "vm", &v) && json_object_is_type(v, json_type_string)
				 ? json_object_get_string(v) : NULL;
	if (!json_object_object_get_ex(j, "v", &v) || json_object_get_int(v) != 2)
		snprintf(why, whylen, "reference values: not version 2");
	else if (!vm || strlen(vm) >= sizeof(p->vm))
		snprintf(why, whylen, "reference values: no VM id");
	else if (!json_object_object_get_ex(j, "epoch", &v) || json_object_get_int64(v) <= 0)
		snprintf(why, whylen, "reference values: no epoch");
	else if (hex32(j, "pcr0", p->pcr0) || hex32(j, "pcr7", p->pcr7) || hex32(j, "commit", p->commit))
		snprintf(why, whylen, "reference values: pcr0, pcr7 or commit missing or malformed");
	else if (hex32(j, "ek", p->ek))
		snprintf(why, whylen, "reference values: no EK recorded for this VM (ek: 64 hex digits)");
	else if (!json_object_object_get_ex(j, "pcr9", &a) || !json_object_is_type(a, json_type_array) ||
		 json_object_array_length(a) < 1 || json_object_array_length(a) > VM_PCR9_MAX)
		snprintf(why, whylen, "reference values: pcr9 must list 1..%d event digests", VM_PCR9_MAX);
	else {
		snprintf(p->vm, sizeof(p->vm), "%s", vm);
		p->epoch = json_object_get_int64(json_object_object_get(j, "epoch"));
		p->t = json_object_get_int(json_object_object_get(j, "t"));
		p->n = json_object_get_int(json_object_object_get(j, "n"));
		p->npcr9 = json_object_array_length(a);
		rc = 0;
		for (int i = 0; i < p->npcr9 && !rc; i++) {
			json_object *e = json_object_array_get_idx(a, i);
			if (!json_object_is_type(e, json_type_string) || vm_unhex(json_object_get_string(e), p->pcr9[i], 32))
				rc = WHY("reference values: pcr9[%d] malformed", i);
		}
		const char *pem = json_object_object_get_ex(j, "ak_pub", &v) && json_object_is_type(v, json_type_string)
					  ? json_object_get_string(v) : NULL;
		if (!rc && pem && strlen(pem) >= sizeof(p->ak_pem))
			rc = WHY("reference values: ak_pub too long");
		else if (!rc && pem)
			snprintf(p->ak_pem, sizeof(p->ak_pem), "%s", pem);
		if (!rc && (p->t < 2 || p->n < p->t || p->n > 255))
			rc = WHY("reference values: t = %d of n = %d (t >= 2 required)", p->t, p->n);
	}
	json_object_put(j);
	return rc;
}

/* ---------- the AK ---------- */

/* The ECC point of a TPM2B_PUBLIC as an OpenSSL P-256 key. */
static EVP_PKEY *ecc_pkey(const TPMS_ECC_POINT *p)
{
	uint8_t pt[65];
	EVP_PKEY *k = NULL;
	OSSL_PARAM prm[3];

	if (p->x.size > 32 || p->y.size > 32)
		return NULL;
	memset(pt, 0, sizeof(pt));
	pt[0] = 4;
	memcpy(pt + 1 + 32 - p->x.size, p->x.buffer, p->x.size);
	memcpy(pt + 33 + 32 - p->y.size, p->y.buffer, p->y.size);
	prm[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
	prm[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt));
	prm[2] = OSSL_PARAM_construct_end();
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!pc || EVP_PKEY_fromdata_init(pc) != 1 || EVP_PKEY_fromdata(pc, &k, EVP_PKEY_PUBLIC_KEY, prm) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(pc);
	return k;
}

int vm_ak_check(const uint8_t *pub, size_t len, EVP_PKEY *want, uint8_t name[34], EVP_PKEY **key, char *why,
		size_t whylen)
{
	TPM2B_PUBLIC tp;
	size_t off = 0;
	const TPMA_OBJECT need = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
				 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;

	memset(&tp, 0, sizeof(tp));
	if (len < 2 || Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, len, &off, &tp) != TSS2_RC_SUCCESS || off != len)
		return WHY("attestation key: not a TPM2B_PUBLIC");
	const TPMT_PUBLIC *t = &tp.publicArea;
	if (t->type != TPM2_ALG_ECC || t->nameAlg != TPM2_ALG_SHA256 || t->parameters.eccDetail.curveID != TPM2_ECC_NIST_P256)
		return WHY("attestation key: not an ECC P-256 key with a sha256 name");
	if ((t->objectAttributes & need) != need || (t->objectAttributes & TPMA_OBJECT_DECRYPT))
		return WHY("attestation key: attributes %08x lack fixedTPM, fixedParent, sensitiveDataOrigin, restricted "
			   "or sign (or allow decrypt)", t->objectAttributes);
	if (t->parameters.eccDetail.scheme.scheme != TPM2_ALG_ECDSA ||
	    t->parameters.eccDetail.scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256)
		return WHY("attestation key: scheme is not ECDSA/SHA256");
	const TPMS_ECC_POINT *pt = &t->unique.ecc;
	BIGNUM *x = NULL, *y = NULL;
	char grp[32] = "";
	int ok = !want;
	if (want && pt->x.size <= 32 && pt->y.size <= 32 &&
	    EVP_PKEY_get_utf8_string_param(want, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof(grp), NULL) == 1 &&
	    !strcmp(grp, "prime256v1") && EVP_PKEY_get_bn_param(want, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
	    EVP_PKEY_get_bn_param(want, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1) {
		BIGNUM *gx = BN_bin2bn(pt->x.buffer, pt->x.size, NULL), *gy = BN_bin2bn(pt->y.buffer, pt->y.size, NULL);
		ok = gx && gy && !BN_cmp(gx, x) && !BN_cmp(gy, y);
		BN_free(gx);
		BN_free(gy);
	}
	BN_free(x);
	BN_free(y);
	if (!ok)
		return WHY("attestation key: not the one registered for this VM");
	if (key && !(*key = ecc_pkey(pt)))
		return WHY("attestation key: not a point of P-256");
	/* name = nameAlg || vm_sha256(TPMT_PUBLIC as marshalled) */
	name[0] = TPM2_ALG_SHA256 >> 8;
	name[1] = TPM2_ALG_SHA256 & 0xff;
	vm_sha256(pub + 2, len - 2, name + 2);
	return 0;
}

/* ---------- the holder's verdict ---------- */

int vm_evidence_verify(const struct vm_policy *p, EVP_PKEY *ak, const struct vm_evidence *e,
		       struct vm_quote_info *qi, char *why, size_t whylen)
{
	struct vm_evlog *lg;
	uint8_t name[34], qd[32], digest[32], buf[96];
	EVP_PKEY *mine = NULL;
	int rc = -1;

	/* the AK lives in the TPM of the recorded EK: it activated the credential
	 * made for this AK's name (the EK itself was checked when it was made) */
	if (!e->cred_name || !e->cred_want || !e->cred_got || e->cred_want_len < 16 ||
	    e->cred_got_len != e->cred_want_len || CRYPTO_memcmp(e->cred_want, e->cred_got, e->cred_want_len))
		return WHY("credential: not activated (no proof that the AK is in the TPM of this VM's EK)");
	if (vm_ak_check(e->ak, e->aklen, ak, name, ak ? NULL : &mine, why, whylen))
		return -1;
	if (CRYPTO_memcmp(name, e->cred_name, 34)) {
		EVP_PKEY_free(mine);
		return WHY("credential: made for another AK than the one quoting");
	}
	if (!ak)
		ak = mine;
	if (!(lg = malloc(sizeof(*lg)))) {
		EVP_PKEY_free(mine);
		return WHY("out of memory");
	}
	if (vm_evlog_replay(e->evlog, e->evlen, lg, why, whylen))
		goto out;
	/* what firmware measured must be what the registry signed: cheap checks first */
	if (CRYPTO_memcmp(lg->pcr[0], p->pcr0, 32)) {
		(void)WHY("event log: PCR 0 (firmware) differs from the reference");
		goto out;
	}
	if (CRYPTO_memcmp(lg->pcr[7], p->pcr7, 32)) {
		(void)WHY("event log: PCR 7 (Secure Boot state) differs from the reference");
		goto out;
	}
	if (lg->npcr9 != p->npcr9) {
		(void)WHY("event log: %d PCR 9 events, the reference has %d (kernel command line / initrd)", lg->npcr9,
		    p->npcr9);
		goto out;
	}
	for (int i = 0; i < p->npcr9; i++)
		if (CRYPTO_memcmp(lg->pcr9[i], p->pcr9[i], 32)) {
			(void)WHY("event log: PCR 9 event %d (%s) differs from the reference", i + 1,
			    i == 0 ? "kernel command line" : "initrd");
			goto out;
		}
	/* the TPM must have signed exactly what the log replays to, for our nonce and this key */
	memcpy(buf, lg->pcr[0], 32);
	memcpy(buf + 32, lg->pcr[7], 32);
	memcpy(buf + 64, lg->pcr[9], 32);
	vm_sha256(buf, sizeof(buf), digest);
	vm_qualifying(e->nonce, e->pub, qd);
	/* the quote names its signer by qualified name: for a primary of the
	 * endorsement hierarchy, nameAlg || vm_sha256(TPM_RH_ENDORSEMENT || name) */
	uint8_t qn[34], qb[4 + 34] = { 0x40, 0x00, 0x00, 0x0b };
	memcpy(qb + 4, name, 34);
	qn[0] = name[0];
	qn[1] = name[1];
	vm_sha256(qb, sizeof(qb), qn + 2);
	if (vm_quote_verify_mask(e->attest, e->alen, e->sig, e->slen, ak, qd, 32, VM_POLICY_MASK, digest, qn, qi, why,
				 whylen))
		goto out;
	rc = 0;
out:
	EVP_PKEY_free(mine);
	free(lg);
	return rc;
}

/* ---------- shares boxed to the VM's ephemeral key ---------- */

/* Algorithms fetched once per process: OpenSSL 3 looks each one up by name
 * on every implicit use (EVP_aes_256_gcm(), EVP_PKEY_HKDF, "X25519"). */
static EVP_KDF *box_hkdf;
static EVP_CIPHER *box_gcm;
static pthread_once_t box_once = PTHREAD_ONCE_INIT;
static void box_fetch(void)
{
	box_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	box_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static int box_keys(EVP_PKEY *mine, EVP_PKEY *peer, const uint8_t nonce[VM_NONCE_LEN], const uint8_t vmpub[32],
		    const uint8_t epub[32], uint8_t okm[44])
{
	uint8_t shared[32], info[17 + 64];
	size_t sl = sizeof(shared);
	int ok;

	pthread_once(&box_once, box_fetch);
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
	ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
	     EVP_PKEY_derive(c, shared, &sl) == 1 && sl == 32;
	EVP_PKEY_CTX_free(c);
	if (!ok || !box_hkdf)
		return -1;
	memcpy(info, "veilmesh share v2", 17);
	memcpy(info + 17, vmpub, 32);
	memcpy(info + 49, epub, 32);
	OSSL_PARAM prm[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, shared, 32),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)nonce, VM_NONCE_LEN),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof(info)),
		OSSL_PARAM_construct_end(),
	};
	EVP_KDF_CTX *k = EVP_KDF_CTX_new(box_hkdf);
	ok = k && EVP_KDF_derive(k, okm, 44, prm) == 1;
	EVP_KDF_CTX_free(k);
	OPENSSL_cleanse(shared, sizeof(shared));
	return ok ? 0 : -1;
}

static int gcm(int enc, const uint8_t okm[44], const char *aad, const uint8_t *in, size_t len, uint8_t *out,
	       uint8_t tag[16])
{
	pthread_once(&box_once, box_fetch);
	EVP_CIPHER_CTX *c = box_gcm ? EVP_CIPHER_CTX_new() : NULL;
	int n = 0, f = 0, a;
	int ok = c && EVP_CipherInit_ex(c, box_gcm, NULL, okm, okm + 32, enc) == 1 &&
		 EVP_CipherUpdate(c, NULL, &a, (const uint8_t *)aad, strlen(aad)) == 1 &&
		 (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1) &&
		 EVP_CipherUpdate(c, out, &n, in, len) == 1 && EVP_CipherFinal_ex(c, out + n, &f) == 1 &&
		 (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1);
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int vm_box_seal(const uint8_t pub[32], const uint8_t nonce[VM_NONCE_LEN], const char *aad, const uint8_t *in,
		size_t len, uint8_t *out, size_t cap)
{
	uint8_t okm[44];
	size_t el = 32;
	int rc = -1;

	if (cap < len + 48)
		return -1;
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, 32);
	EVP_PKEY *e = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	if (peer && e && EVP_PKEY_get_raw_public_key(e, out, &el) == 1 && el == 32 &&
	    !box_keys(e, peer, nonce, pub, out, okm) && !gcm(1, okm, aad, in, len, out + 32, out + 32 + len))
		rc = (int)(len + 48);
	OPENSSL_cleanse(okm, sizeof(okm));
	EVP_PKEY_free(peer);
	EVP_PKEY_free(e);
	return rc;
}

int vm_box_open(EVP_PKEY *priv, const uint8_t nonce[VM_NONCE_LEN], const char *aad, const uint8_t *in, size_t len,
		uint8_t *out, size_t cap)
{
	uint8_t okm[44], mypub[32], tag[16];
	size_t ml = 32;
	int rc = -1;

	if (len < 48 || cap < len - 48 || EVP_PKEY_get_raw_public_key(priv, mypub, &ml) != 1)
		return -1;
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, in, 32);
	memcpy(tag, in + len - 16, 16);
	if (peer && !box_keys(priv, peer, nonce, mypub, in, okm) && !gcm(0, okm, aad, in + 32, len - 48, out, tag))
		rc = (int)(len - 48);
	else
		OPENSSL_cleanse(out, len - 48);
	OPENSSL_cleanse(okm, sizeof(okm));
	EVP_PKEY_free(peer);
	return rc;
}
