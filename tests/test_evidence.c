// SPDX-License-Identifier: Apache-2.0
/* Protocol v2's verifier as a pure function (docs/attestation.md): event-log
 * replay, the registry-signed policy, the AK's attributes and name, quotes
 * bound to the nonce and the VM's ephemeral key, shares boxed to that key and
 * sealed at rest with AAD, the key commitment, the signed audit log.  Quotes
 * come from tests/soft_tpm.h (a software AK), so every refusal can be made
 * on purpose. */
#include <fcntl.h>
#include <unistd.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "testlib.h"
#include "soft_tpm.h"
#include "keys/attest.h"

static const char cmdline[] = "console=ttyS0 root=/dev/mapper/root";
static const char initrd[] = "an initrd\n";
static EVP_PKEY *registry;
static struct soft_ak ak;
static struct vm_policy pol, pol_ek_only;
static EVP_PKEY *akpub;
static const uint8_t ekid[32] = { 0xe4, 0x1d };   /* the recorded EK (its id; the chain is ek_* below) */

static void hex(const uint8_t *b, char *out)
{
	vm_hex(b, 32, out);
}

/* the registry's document for the reference boot */
static int make_policy_ak(int t, const char *vm, int with_ak, struct vm_policy *p, char *doc, size_t cap,
			  uint8_t sig[64])
{
	struct soft_log l;
	char p0[65], p7[65], c9[65], i9[65], pem[1024] = "", cm[65], ek[65];
	uint8_t d[32], commit[32] = { 7 };
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(b, ak.key);
	int pl = BIO_read(b, pem, sizeof(pem) - 1);
	BIO_free(b);
	pem[pl > 0 ? pl : 0] = 0;
	soft_log_boot(&l, cmdline, initrd, strlen(initrd), 1);
	hex(l.pcr[0], p0);
	hex(l.pcr[7], p7);
	vm_cmdline_digest(cmdline, strlen(cmdline), d);
	hex(d, c9);
	soft_sha256(initrd, strlen(initrd), d);
	hex(d, i9);
	hex(commit, cm);
	hex(ekid, ek);
	char esc[2048];
	size_t e = 0;
	for (char *c = pem; *c && e < sizeof(esc) - 3; c++) {
		if (*c == '\n') {
			esc[e++] = '\\';
			esc[e++] = 'n';
		} else
			esc[e++] = *c;
	}
	esc[e] = 0;
	snprintf(doc, cap, "{\"v\":2,\"vm\":\"%s\",\"epoch\":42,\"t\":%d,\"n\":3,\"pcr0\":\"%s\",\"pcr7\":\"%s\","
		 "\"pcr9\":[\"%s\",\"%s\"],\"commit\":\"%s\",\"ek\":\"%s\"%s%s%s}", vm, t, p0, p7, c9, i9, cm, ek,
		 with_ak ? ",\"ak_pub\":\"" : "", with_ak ? esc : "", with_ak ? "\"" : "");
	size_t sl = 64;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestSignInit(md, NULL, NULL, NULL, registry);
	EVP_DigestSign(md, sig, &sl, (uint8_t *)doc, strlen(doc));
	EVP_MD_CTX_free(md);
	char why[256];
	return vm_policy_load(doc, strlen(doc), sig, 64, registry, p, why, sizeof(why));
}

static int make_policy(int t, const char *vm, struct vm_policy *p, char *doc, size_t cap, uint8_t sig[64])
{
	return make_policy_ak(t, vm, 1, p, doc, cap, sig);
}

static void setup(void)
{
	char doc[4096];
	uint8_t sig[64];
	registry = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	soft_ak_new(&ak, SOFT_AK_ATTRS);
	akpub = ak.key;
	make_policy(2, "order-7", &pol, doc, sizeof(doc), sig);
	make_policy_ak(2, "order-7", 0, &pol_ek_only, doc, sizeof(doc), sig);
}

/* evidence for a boot with these files, optionally broken in one way */
enum how { GOOD, CMDLINE_BYTE, INITRD_BYTE, HAND_PCR9, LOG_LIES, OTHER_PUB, OTHER_SIGNER, PCRS_0_7, NOT_RESTRICTED,
	   DECRYPT, OTHER_AK, CRED_WRONG, CRED_NONE, CRED_OTHER_AK, GOOD_EK_ONLY, OTHER_AK_EK_ONLY };
static int verify(enum how how, char *why, size_t whylen)
{
	struct soft_log l, tpm;
	struct soft_quote q;
	struct soft_ak other;
	const struct soft_ak *a = &ak;
	uint8_t nonce[32], pub[32], qd[32];
	struct vm_quote_info qi;

	RAND_bytes(nonce, 32);
	RAND_bytes(pub, 32);
	soft_log_boot(&l, how == CMDLINE_BYTE ? "console=ttyS0 root=/dev/mapper/roou" : cmdline,
		      how == INITRD_BYTE ? "an initrc\n" : initrd, strlen(initrd), how != HAND_PCR9);
	tpm = l;
	if (how == HAND_PCR9) {   /* PCR 9 extended by hand, the log has no PCR 9 events */
		struct soft_log good;
		soft_log_boot(&good, cmdline, initrd, strlen(initrd), 1);
		memcpy(tpm.pcr[9], good.pcr[9], 32);
	}
	if (how == LOG_LIES)      /* the TPM saw another initrd than the log says */
		soft_log_boot(&tpm, cmdline, "an initrc\n", strlen(initrd), 1);
	if (how == NOT_RESTRICTED || how == DECRYPT || how == OTHER_AK || how == OTHER_AK_EK_ONLY) {
		soft_ak_new(&other, how == NOT_RESTRICTED ? SOFT_AK_ATTRS & ~TPMA_OBJECT_RESTRICTED
			    : how == DECRYPT ? SOFT_AK_ATTRS | TPMA_OBJECT_DECRYPT : SOFT_AK_ATTRS);
		if (how != OTHER_AK && how != OTHER_AK_EK_ONLY) {   /* same key, other attributes */
			EVP_PKEY_free(other.key);
			other.key = ak.key;
			TPM2B_PUBLIC tp;
			size_t off = 0;
			memset(&tp, 0, sizeof(tp));
			Tss2_MU_TPM2B_PUBLIC_Unmarshal(ak.pub, ak.publen, &off, &tp);
			tp.publicArea.objectAttributes = how == NOT_RESTRICTED ? SOFT_AK_ATTRS & ~TPMA_OBJECT_RESTRICTED
										 : SOFT_AK_ATTRS | TPMA_OBJECT_DECRYPT;
			other.publen = 0;
			Tss2_MU_TPM2B_PUBLIC_Marshal(&tp, other.pub, sizeof(other.pub), &other.publen);
		}
		a = &other;
	}
	vm_qualifying(nonce, how == OTHER_PUB ? (uint8_t[32]){ 1 } : pub, qd);
	soft_quote_make(a, tpm.pcr, how == PCRS_0_7 ? VM_PCR_MASK : VM_POLICY_MASK, qd, 32,
			how == OTHER_SIGNER ? (uint8_t[34]){ 0, 0x0b, 9 } : NULL, &q);
	/* the credential: made for the AK that quotes (or, OTHER_AK_EK_ONLY, for
	 * the VM's AK while another one quotes), activated or not */
	uint8_t name[34], want[32], got[32];
	soft_ak_name(how == CRED_OTHER_AK || how == OTHER_AK_EK_ONLY ? &ak : a, name);
	if (how == CRED_OTHER_AK)
		name[5] ^= 1;
	RAND_bytes(want, 32);
	memcpy(got, want, 32);
	if (how == CRED_WRONG)
		got[0] ^= 1;
	struct vm_evidence e = { .nonce = nonce, .pub = pub, .ak = a->pub, .aklen = a->publen, .attest = q.attest,
				 .alen = q.alen, .sig = q.sig, .slen = q.slen, .evlog = l.buf, .evlen = l.len,
				 .cred_name = name, .cred_want = want, .cred_want_len = 32,
				 .cred_got = how == CRED_NONE ? NULL : got, .cred_got_len = how == CRED_NONE ? 0 : 32 };
	int ek_only = how == GOOD_EK_ONLY || how == OTHER_AK_EK_ONLY;
	int rc = vm_evidence_verify(ek_only ? &pol_ek_only : &pol, ek_only ? NULL : akpub, &e, &qi, why, whylen);
	if (how == OTHER_AK || how == OTHER_AK_EK_ONLY)
		EVP_PKEY_free(other.key);
	return rc;
}

static void evidence_verdicts(void)
{
	char why[256];
	static const struct { enum how how; const char *reason; } cases[] = {
		{ CMDLINE_BYTE, "PCR 9 event 1 (kernel command line) differs" },
		{ INITRD_BYTE, "PCR 9 event 2 (initrd) differs" },
		{ HAND_PCR9, "0 PCR 9 events" },
		{ LOG_LIES, "quoted PCRs differ" },
		{ OTHER_PUB, "not over the nonce" },
		{ OTHER_SIGNER, "signed by another key" },
		{ PCRS_0_7, "PCRs 0002ff quoted" },
		{ NOT_RESTRICTED, "attributes" },
		{ DECRYPT, "attributes" },
		{ OTHER_AK, "not the one registered" },
		{ CRED_WRONG, "credential: not activated" },
		{ CRED_NONE, "credential: not activated" },
		{ CRED_OTHER_AK, "credential: made for another AK" },
		{ OTHER_AK_EK_ONLY, "credential: made for another AK" },
	};
	CHECK(verify(GOOD, why, sizeof(why)) == 0, "the reference boot refused: %s", why);
	CHECK(verify(GOOD_EK_ONLY, why, sizeof(why)) == 0, "the reference boot, AK bound by activation only, refused: %s",
	      why);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = 0;
		int rc = verify(cases[i].how, why, sizeof(why));
		CHECK(rc == -1 && strstr(why, cases[i].reason), "case %zu: rc %d, '%s' (expected '%s')", i, rc, why,
		      cases[i].reason);
	}
}

static void cmdline_digest_known_answer(void)
{
	/* computed independently by tests/attest/mkevlog.py (Python's UTF-16LE) */
	uint8_t d[32];
	char hx[65];
	vm_cmdline_digest("console=ttyS0 root=/dev/mapper/root\n", 36, d);
	vm_hex(d, 32, hx);
	CHECK(!strcmp(hx, "ad72e26f772d7e90bc234bf3a026dcfca2396ca858a4962d48e85fa762a40f91"), "got %s", hx);
}

static void policy_signed_and_sane(void)
{
	char doc[4096], why[256];
	uint8_t sig[64];
	struct vm_policy p;
	CHECK(make_policy(2, "order-7", &p, doc, sizeof(doc), sig) == 0, "a good policy refused");
	doc[20] ^= 1;
	CHECK(vm_policy_load(doc, strlen(doc), sig, 64, registry, &p, why, sizeof(why)) == -1 &&
	      strstr(why, "not signed"), "an edited policy accepted: %s", why);
	CHECK(make_policy(1, "order-7", &p, doc, sizeof(doc), sig) == -1, "t = 1 accepted");
	CHECK(vm_policy_load("{}", 2, sig, 64, registry, &p, why, sizeof(why)) == -1, "unsigned {} accepted");
}

static void evlog_never_reads_past(void)
{
	struct soft_log l;
	struct vm_evlog *out = malloc(sizeof(*out));
	char why[256];
	int ok = 0, bad = 0;
	soft_log_boot(&l, cmdline, initrd, strlen(initrd), 1);
	for (size_t n = 0; n <= l.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);   /* exactly n bytes: ASan sees a read past */
		memcpy(copy, l.buf, n);
		if (vm_evlog_replay(copy, n, out, why, sizeof(why)) == 0)
			ok++;
		else if (!why[0])
			bad++;
		free(copy);
	}
	CHECK(vm_evlog_replay(l.buf, l.len, out, why, sizeof(why)) == 0 && out->npcr9 == 2, "the whole log: %s", why);
	CHECK(!memcmp(out->pcr[9], l.pcr[9], 32), "PCR 9 replayed wrong");
	CHECK(bad == 0, "%d refusals without a reason", bad);
	CHECK(ok >= 1, "no prefix accepted");
	free(out);
}

static void box_bound_to_key_nonce_and_aad(void)
{
	EVP_PKEY *vmkey = EVP_PKEY_Q_keygen(NULL, NULL, "X25519"), *other = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	uint8_t pub[32], nonce[32], n2[32], box[200], out[200], secret[100];
	size_t pl = 32;
	char aad[128];
	EVP_PKEY_get_raw_public_key(vmkey, pub, &pl);
	RAND_bytes(nonce, 32);
	memcpy(n2, nonce, 32);
	n2[0] ^= 1;
	RAND_bytes(secret, sizeof(secret));
	vm_share_aad("order-7", 42, "v1", aad, sizeof(aad));
	int bl = vm_box_seal(pub, nonce, aad, secret, sizeof(secret), box, sizeof(box));
	CHECK(bl == (int)sizeof(secret) + 48, "box length %d", bl);
	CHECK(vm_box_open(vmkey, nonce, aad, box, bl, out, sizeof(out)) == (int)sizeof(secret) &&
	      !memcmp(out, secret, sizeof(secret)), "does not open with the VM's key");
	CHECK(vm_box_open(other, nonce, aad, box, bl, out, sizeof(out)) == -1, "opens with another key");
	CHECK(vm_box_open(vmkey, n2, aad, box, bl, out, sizeof(out)) == -1, "opens with another nonce");
	CHECK(vm_box_open(vmkey, nonce, "order-8|42|v1", box, bl, out, sizeof(out)) == -1, "opens for another VM");
	CHECK(vm_box_open(vmkey, nonce, "order-7|41|v1", box, bl, out, sizeof(out)) == -1, "opens for another epoch");
	box[40] ^= 1;
	CHECK(vm_box_open(vmkey, nonce, aad, box, bl, out, sizeof(out)) == -1, "opens altered");
	EVP_PKEY_free(vmkey);
	EVP_PKEY_free(other);
}

static void sealed_at_rest_with_aad(void)
{
	uint8_t key[32], in[50], sealed[100], out[100];
	RAND_bytes(key, 32);
	RAND_bytes(in, sizeof(in));
	int n = vm_seal_aad(key, "order-7|42|v1", in, sizeof(in), sealed, sizeof(sealed));
	CHECK(n == (int)sizeof(in) + 28, "seal %d", n);
	CHECK(vm_unseal_aad(key, "order-7|42|v1", sealed, n, out, sizeof(out)) == (int)sizeof(in), "does not unseal");
	CHECK(vm_unseal_aad(key, "order-8|42|v1", sealed, n, out, sizeof(out)) == -1, "a share swapped to another VM unseals");
	CHECK(vm_unseal_aad(key, "order-7|42|v2", sealed, n, out, sizeof(out)) == -1, "unseals for another holder");
	CHECK(vm_unseal_aad(key, "order-7|43|v1", sealed, n, out, sizeof(out)) == -1, "unseals for another epoch");
}

static void key_commitment(void)
{
	uint8_t k[32] = { 1 }, a[32], b[32];
	vm_key_commit("order-7", 42, k, 32, a);
	vm_key_commit("order-7", 42, k, 32, b);
	CHECK(!memcmp(a, b, 32), "not deterministic");
	k[31] ^= 1;
	vm_key_commit("order-7", 42, k, 32, b);
	CHECK(memcmp(a, b, 32), "a wrong key matches");
	k[31] ^= 1;
	vm_key_commit("order-7", 43, k, 32, b);
	CHECK(memcmp(a, b, 32), "another epoch matches");
	vm_key_commit("order-8", 42, k, 32, b);
	CHECK(memcmp(a, b, 32), "another VM matches");
}

static void audit_signed_o1(void)
{
	char path[] = "/tmp/veil-test-audit-XXXXXX", why[256];
	int fd = mkstemp(path);
	close(fd);
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *k2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct vm_audit_log *l = vm_audit_open(path, k);
	for (int i = 0; i < 50; i++)
		vm_audit_append(l, "attest", "order-7", "refused", i == 3 ? "a \"quoted\"\nline\xc3\xa9" : "x");
	vm_audit_close(l);
	l = vm_audit_open(path, k);   /* reopened: continues the chain */
	vm_audit_append(l, "release", "order-7", "ok", "");
	vm_audit_close(l);
	CHECK(vm_audit_verify_signed(path, k, why, sizeof(why)) == 51, "chain: %s", why);
	CHECK(vm_audit_verify_signed(path, k2, why, sizeof(why)) == -1, "another key's signatures accepted");
	FILE *f = fopen(path, "r");
	char line[4096];
	int lines = 0, raw = 0;
	while (fgets(line, sizeof(line), f)) {
		lines++;
		for (char *c = line; *c; c++)
			raw |= (unsigned char)*c >= 0x80;
	}
	fclose(f);
	CHECK(lines == 51 && !raw, "%d lines, raw non-ASCII %d (log injection)", lines, raw);
	unlink(path);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

/* The vendor's CA: its EKs pass, with their id; another CA's do not. */
static void ek_chain_to_vendor(void)
{
	char path[] = "/tmp/veil-test-vendor-XXXXXX", opath[] = "/tmp/veil-test-vendor2-XXXXXX", why[256];
	close(mkstemp(path));
	close(mkstemp(opath));
	X509 *ca, *oca;
	EVP_PKEY *cak, *ocak, *k = NULL;
	struct soft_ek ek, rogue;
	uint8_t id[32], want[32];
	CHECK(soft_vendor_new(path, &ca, &cak) == 0 && soft_vendor_new(opath, &oca, &ocak) == 0, "CA setup");
	CHECK(soft_ek_new(&ek, ca, cak, 2) == 0 && soft_ek_new(&rogue, oca, ocak, 2) == 0, "EK setup");
	struct vm_ek_ca *vc = vm_ek_ca_load(path, why, sizeof(why));
	CHECK(vc, "vendor CA: %s", why);
	if (!vc)
		return;
	CHECK(vm_ek_verify(vc, ek.der, ek.derlen, &k, id, why, sizeof(why)) == 0, "vendor's EK refused: %s", why);
	vm_ek_id(ek.key, want);
	CHECK(!memcmp(id, want, 32), "EK id is not sha256(SPKI)");
	EVP_PKEY_free(k);
	CHECK(vm_ek_verify(vc, ek.der, ek.derlen, NULL, id, why, sizeof(why)) == 0 && !memcmp(id, want, 32),
	      "cached verdict differs");
	why[0] = 0;
	CHECK(vm_ek_verify(vc, rogue.der, rogue.derlen, NULL, id, why, sizeof(why)) == -1 &&
	      strstr(why, "does not chain to the TPM vendor's CA"), "another CA's EK: '%s'", why);
	ek.der[ek.derlen - 5] ^= 1;   /* the signature altered */
	CHECK(vm_ek_verify(vc, ek.der, ek.derlen, NULL, id, why, sizeof(why)) == -1, "an altered certificate passes");
	CHECK(vm_ek_verify(vc, ek.der, 10, NULL, id, why, sizeof(why)) == -1, "10 bytes pass");
	struct vm_ek_ca *none = vm_ek_ca_load("/nonexistent", why, sizeof(why));
	CHECK(!none && why[0], "a missing CA file loads");
	vm_ek_ca_free(vc);
	unlink(path);
	unlink(opath);
	EVP_PKEY_free(ek.key);
	EVP_PKEY_free(rogue.key);
	X509_free(ca);
	X509_free(oca);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(ocak);
}

/* MakeCredential -> ActivateCredential as a TPM does it; the real TPM's round
 * trip (swtpm) is tests/attest.sh's ek_makecredential_round_trip. */
static void credential_round_trip(void)
{
	EVP_PKEY *ek = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), *ek2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	uint8_t name[34], cred[32], blob[256], sec[600], out[64];
	size_t bl, sl, ol;
	soft_ak_name(&ak, name);
	RAND_bytes(cred, 32);
	CHECK(vm_make_credential(ek, name, 34, cred, 32, blob, sizeof(blob), &bl, sec, sizeof(sec), &sl) == 0, "make");
	CHECK(bl == 2 + 2 + 32 + 34 && sl == 2 + 256, "sizes %zu %zu", bl, sl);
	CHECK(soft_activate(ek, name, 34, blob, bl, sec, sl, out, &ol) == 0 && ol == 32 && !memcmp(out, cred, 32),
	      "does not activate");
	name[33] ^= 1;
	CHECK(soft_activate(ek, name, 34, blob, bl, sec, sl, out, &ol) == -1, "activates for another name");
	name[33] ^= 1;
	CHECK(soft_activate(ek2, name, 34, blob, bl, sec, sl, out, &ol) == -1, "activates with another EK");
	blob[40] ^= 1;
	CHECK(soft_activate(ek, name, 34, blob, bl, sec, sl, out, &ol) == -1, "activates altered");
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	CHECK(vm_make_credential(ec, name, 34, cred, 32, blob, sizeof(blob), &bl, sec, sizeof(sec), &sl) == -1,
	      "made to a non-RSA key");
	CHECK(vm_make_credential(ek, name, 34, cred, 33, blob, sizeof(blob), &bl, sec, sizeof(sec), &sl) == -1,
	      "a 33-byte credential");
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ek);
	EVP_PKEY_free(ek2);
}

/* KDFa against the specification's construction written out by hand:
 * HMAC(key, 00000001 || "STORAGE\0" || ctx || 00000080) for 128 bits */
static void kdfa_known_construction(void)
{
	uint8_t key[32], ctx[34], out[16], buf[4 + 8 + 34 + 4], mac[32];
	unsigned int ml = 32;
	RAND_bytes(key, 32);
	RAND_bytes(ctx, 34);
	vm_kdfa_sha256(key, 32, "STORAGE", ctx, 34, NULL, 0, out, 128);
	memcpy(buf, "\0\0\0\1STORAGE\0", 12);
	memcpy(buf + 12, ctx, 34);
	memcpy(buf + 46, "\0\0\0\x80", 4);
	HMAC(EVP_sha256(), key, 32, buf, sizeof(buf), mac, &ml);
	CHECK(!memcmp(out, mac, 16), "KDFa differs from HMAC(counter || label || 0 || context || bits)");
}

int main(void)
{
	setup();
	RUN(evidence_verdicts);
	RUN(cmdline_digest_known_answer);
	RUN(policy_signed_and_sane);
	RUN(evlog_never_reads_past);
	RUN(box_bound_to_key_nonce_and_aad);
	RUN(sealed_at_rest_with_aad);
	RUN(key_commitment);
	RUN(audit_signed_o1);
	RUN(ek_chain_to_vendor);
	RUN(credential_round_trip);
	RUN(kdfa_known_construction);
	return t_done();
}
