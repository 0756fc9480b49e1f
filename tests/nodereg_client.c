// SPDX-License-Identifier: Apache-2.0
/*
 * A TEST DRIVER for tests/nodereg.sh: the node side of registration with a
 * real TPM (swtpm, through keys/tpm.h, as veil-agent --register does), made
 * to misbehave in one way per run so the controller's refusals can be seen:
 *
 *   nodereg_client STEP,... HOST PORT CA TCTI REGKEY REGKEY-BOUND CHAIN-PEM OUTDIR
 *   STEP: ok | wrong-secret | replay | ak-unrestricted | other-node-key | late | bound-key
 *   (late: activates 6 s after the challenge, past a 5 s node_challenge_ttl_s;
 *   bound-key: registers with REGKEY-BOUND, a key another node used)
 *
 * One EK and AK per run (RSA key generation is slow on a loaded machine).
 * Writes OUTDIR/<step>-<request>.status and .json for every request
 * (register, activate, activate2) for the schema check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "keys/attest.h"
#include "keys/ek.h"
#include "keys/tpm.h"

static const char *outdir;
static char resp[65536];

static int post(const char *host, int port, const char *ca, const char *path, const char *body, const char *step)
{
	char why[256], fn[512];
	int st = vm_https_post(host, port, ca, path, body, NULL, resp, sizeof(resp), why, sizeof(why));
	snprintf(fn, sizeof(fn), "%s/%s.status", outdir, step);
	FILE *f = fopen(fn, "w");
	fprintf(f, "%d %s\n", st, path);
	fclose(f);
	snprintf(fn, sizeof(fn), "%s/%s.json", outdir, step);
	f = fopen(fn, "w");
	fputs(st < 0 ? why : resp, f);
	fclose(f);
	return st;
}

/* One registration attempt with this TPM's EK and AK, misbehaving as step says. */
static void attempt(const char *step, const char *host, int port, const char *ca, const char *regkey, const char *pem,
		    ESYS_CONTEXT *ctx, ESYS_TR ek, ESYS_TR ak, const TPM2B_PUBLIC *akpub_in)
{
	char name[64];
	TPM2B_PUBLIC akpub = *akpub_in;
	if (!strcmp(step, "ak-unrestricted"))
		akpub.publicArea.objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
	uint8_t akb[sizeof(TPM2B_PUBLIC)], np[32], other[32];
	size_t akl = 0, npl = 32;
	char ak64[1400], np64[48];
	Tss2_MU_TPM2B_PUBLIC_Marshal(&akpub, akb, sizeof(akb), &akl);
	EVP_PKEY *node = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY_get_raw_public_key(node, np, &npl);
	EVP_PKEY_free(node);
	vm_b64_encode(akb, akl, ak64, sizeof(ak64));
	vm_b64_encode(np, 32, np64, sizeof(np64));
	json_object *j = json_object_new_object(), *res = json_object_new_object();
	json_object_object_add(j, "key", json_object_new_string(regkey));
	json_object_object_add(j, "ek_cert", json_object_new_string(pem));
	json_object_object_add(j, "ak", json_object_new_string(ak64));
	json_object_object_add(j, "node_pub", json_object_new_string(np64));
	json_object_object_add(j, "underlay4", json_object_new_string("198.18.1.20"));
	json_object_object_add(j, "location", json_object_new_string("DE"));
	json_object_object_add(res, "cpu", json_object_new_int(1));
	json_object_object_add(res, "ram_mb", json_object_new_int(256));
	json_object_object_add(res, "disk_gb", json_object_new_int(1));
	json_object_object_add(j, "resources", res);
	json_object_object_add(j, "scan", json_object_new_object());
	snprintf(name, sizeof(name), "%s-register", step);
	int st = post(host, port, ca, "/v1/nodes/register", json_object_to_json_string(j), name);
	json_object_put(j);
	if (st != 202)
		return;   /* the refusal is the result */
	j = json_tokener_parse(resp);
	json_object *v;
	uint8_t blob[512], sec[600], nonce[32], cred[32], qd[32], quoted[1024], sigb[512];
	char id[65] = "";
	int bl = -1, sl = -1;
	if (json_object_object_get_ex(j, "id", &v))
		snprintf(id, sizeof(id), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(j, "credential", &v))
		bl = vm_b64_decode(json_object_get_string(v), blob, sizeof(blob));
	if (json_object_object_get_ex(j, "secret", &v))
		sl = vm_b64_decode(json_object_get_string(v), sec, sizeof(sec));
	int bad = !json_object_object_get_ex(j, "nonce", &v) || vm_unhex(json_object_get_string(v), nonce, 32) || bl < 0 ||
		  sl < 0;
	json_object_put(j);
	if (bad) {
		fprintf(stderr, "%s: bad challenge\n", step);
		return;
	}
	TSS2_RC trc;
	if (vm_tpm_activate(ctx, ak, ek, blob, bl, sec, sl, cred, &trc)) {
		fprintf(stderr, "%s: activation in the TPM failed 0x%x\n", step, trc);
		return;
	}
	if (!strcmp(step, "wrong-secret"))
		cred[5] ^= 1;
	if (!strcmp(step, "other-node-key")) {   /* the quote commits to a key the controller was not given */
		EVP_PKEY *o = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		npl = 32;
		EVP_PKEY_get_raw_public_key(o, other, &npl);
		EVP_PKEY_free(o);
		vm_qualifying(nonce, other, qd);
	} else {
		vm_qualifying(nonce, np, qd);
	}
	size_t ql = 0, sgl = 0;
	if (vm_tpm_quote(ctx, ak, qd, 0, quoted, sizeof(quoted), &ql, sigb, sizeof(sigb), &sgl)) {
		fprintf(stderr, "%s: quote failed\n", step);
		return;
	}
	char credhex[65], q64[1400], s64[720], body[4096], path[128];
	vm_hex(cred, 32, credhex);
	vm_b64_encode(quoted, ql, q64, sizeof(q64));
	vm_b64_encode(sigb, sgl, s64, sizeof(s64));
	snprintf(body, sizeof(body), "{\"secret\":\"%s\",\"attest\":\"%s\",\"sig\":\"%s\"}", credhex, q64, s64);
	snprintf(path, sizeof(path), "/v1/nodes/%s/activate", id);
	if (!strcmp(step, "late"))
		sleep(6);
	snprintf(name, sizeof(name), "%s-activate", step);
	post(host, port, ca, path, body, name);
	if (!strcmp(step, "replay") || !strcmp(step, "wrong-secret")) {   /* the same body again */
		snprintf(name, sizeof(name), "%s-activate2", step);
		post(host, port, ca, path, body, name);
	}
}

int main(int argc, char **argv)
{
	if (argc != 10) {
		fprintf(stderr, "usage: nodereg_client STEP,... HOST PORT CA TCTI REGKEY REGKEY-BOUND CHAIN-PEM OUTDIR\n");
		return 2;
	}
	const char *host = argv[2], *ca = argv[4], *tcti = argv[5];
	int port = atoi(argv[3]);
	char why[256], steps[256];
	outdir = argv[9];
	TSS2_TCTI_CONTEXT *tc;
	ESYS_CONTEXT *ctx = vm_tpm_open(tcti, &tc, why, sizeof(why));
	if (!ctx)
		return fprintf(stderr, "%s\n", why), 1;
	uint8_t der[VM_EK_CERT_MAX];
	int dl = vm_tpm_read_nv_cert(ctx, VM_EK_NV_RSA2048, der, sizeof(der));
	const uint8_t *dp = der;
	X509 *x = dl > 0 ? d2i_X509(NULL, &dp, dl) : NULL;
	if (!x)
		return fprintf(stderr, "no EK certificate\n"), 1;
	char *pem = NULL;
	size_t pl = 0;
	FILE *m = open_memstream(&pem, &pl);
	PEM_write_X509(m, x);
	X509_free(x);
	FILE *c = fopen(argv[8], "r");
	char buf[8192];
	size_t n;
	while (c && (n = fread(buf, 1, sizeof(buf), c)) > 0)
		fwrite(buf, 1, n, m);
	if (c)
		fclose(c);
	fclose(m);
	ESYS_TR ek = ESYS_TR_NONE, ak = ESYS_TR_NONE;
	TPM2B_PUBLIC *akpub = NULL;
	int rc = 0;
	if (vm_tpm_create_ek(ctx, &ek) || vm_tpm_create_ak(ctx, &ak, &akpub)) {
		fprintf(stderr, "cannot create EK/AK\n");
		rc = 1;
	} else {
		char *save;
		snprintf(steps, sizeof(steps), "%s", argv[1]);
		for (char *s = strtok_r(steps, ",", &save); s; s = strtok_r(NULL, ",", &save))
			attempt(s, host, port, ca, !strcmp(s, "bound-key") ? argv[7] : argv[6], pem, ctx, ek, ak, akpub);
	}
	Esys_Free(akpub);
	if (ak != ESYS_TR_NONE)
		Esys_FlushContext(ctx, ak);
	if (ek != ESYS_TR_NONE)
		Esys_FlushContext(ctx, ek);
	vm_tpm_close(&ctx, &tc);
	free(pem);
	return rc;
}
