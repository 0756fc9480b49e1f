// SPDX-License-Identifier: Apache-2.0
/*
 * veil-attest: the VM side of disk unlock, for the initrd.
 *
 *   veil-attest ak-pub --tcti CONF --out FILE
 *       create (or recreate: it is a primary key) the VM's attestation key in
 *       the TPM and write its public half, for the registry to register
 *   veil-attest unlock --tcti CONF --vm ID --t N --validators ADDR:PORT,... --ca FILE
 *                      --registry-pub FILE --measure NAME=PATH ... --key-out PATH|-
 *       measure kernel, initrd, cmdline, config and the disk's LUKS2 header
 *       region into PCR 9, attest to a
 *       validator chosen at random (fresh nonce, TPM2 quote), collect t shares
 *       with the token (trying others when one fails, checking each share's
 *       registry signature), rebuild the disk key and write it only to
 *       --key-out (a pipe, or a file on tmpfs, mode 0600).
 *
 * It fails closed: any doubt and it writes nothing and exits non-zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include "keys/attest.h"
#include "keys/shamir.h"

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "veil-attest: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static ESYS_CONTEXT *tpm_open(const char *conf, TSS2_TCTI_CONTEXT **tcti)
{
	ESYS_CONTEXT *ctx;

	if (Tss2_TctiLdr_Initialize(conf, tcti) != TSS2_RC_SUCCESS)
		die("cannot reach the TPM at '%s'", conf);
	if (Esys_Initialize(&ctx, *tcti, NULL) != TSS2_RC_SUCCESS)
		die("cannot initialise the TPM context");
	TSS2_RC rc = Esys_Startup(ctx, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE)
		die("TPM startup failed: 0x%x", rc);
	return ctx;
}

/* The attestation key: a restricted ECDSA P-256 signing primary in the
 * endorsement hierarchy (the same key every time for the same TPM). */
static ESYS_TR create_ak(ESYS_CONTEXT *ctx, TPM2B_PUBLIC **pub)
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
	ESYS_TR h;

	if (Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
			       &outside, &none, &h, pub, NULL, NULL, NULL) != TSS2_RC_SUCCESS)
		die("cannot create the attestation key");
	return h;
}

static EVP_PKEY *ak_to_pkey(const TPM2B_PUBLIC *pub)
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


struct validator {
	char host[64];
	int port;
};

static int split_addr(const char *s, struct validator *v)
{
	const char *c = strrchr(s, ':');
	if (!c || c == s)
		return -1;
	snprintf(v->host, sizeof(v->host), "%.*s", (int)(c - s), s);
	v->port = atoi(c + 1);
	return v->port > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tcti", required_argument, NULL, 'T' }, { "out", required_argument, NULL, 'o' },
		{ "vm", required_argument, NULL, 'v' }, { "t", required_argument, NULL, 't' },
		{ "validators", required_argument, NULL, 'V' }, { "ca", required_argument, NULL, 'c' },
		{ "registry-pub", required_argument, NULL, 'r' }, { "measure", required_argument, NULL, 'm' },
		{ "key-out", required_argument, NULL, 'k' }, { "help", no_argument, NULL, 'h' }, { 0 }
	};
	static const char *names[] = VM_REF_NAMES;
	const char *tcti_conf = NULL, *out = NULL, *vm = NULL, *vals = NULL, *ca = NULL, *regpub = NULL, *keyout = NULL;
	const char *measure[VM_REF_COUNT] = { 0 };
	int t = 0, o;

	if (argc < 2) {
		fprintf(stderr, "usage: veil-attest ak-pub|unlock [options] (see the top of images/attest/veil-attest.c)\n");
		return 2;
	}
	const char *cmd = argv[1];
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'T': tcti_conf = optarg; break;
		case 'o': out = optarg; break;
		case 'v': vm = optarg; break;
		case 't': t = atoi(optarg); break;
		case 'V': vals = optarg; break;
		case 'c': ca = optarg; break;
		case 'r': regpub = optarg; break;
		case 'k': keyout = optarg; break;
		case 'm': {
			const char *eq = strchr(optarg, '=');
			int done = 0;
			for (int i = 0; eq && i < VM_REF_COUNT; i++)
				if (!strncmp(optarg, names[i], eq - optarg) && strlen(names[i]) == (size_t)(eq - optarg)) {
					measure[i] = eq + 1;
					done = 1;
				}
			if (!done) {
				fprintf(stderr, "veil-attest: --measure takes kernel=, initrd=, cmdline= or config=PATH\n");
				return 2;
			}
			break;
		}
		default:
			fprintf(stderr, "usage: veil-attest ak-pub|unlock [options]\n");
			return 2;
		}
	}
	if (!tcti_conf) {
		fprintf(stderr, "veil-attest: --tcti is required (e.g. swtpm:host=127.0.0.1,port=2321, or device:/dev/tpmrm0)\n");
		return 2;
	}
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *ctx;
	TPM2B_PUBLIC *pub = NULL;

	if (!strcmp(cmd, "ak-pub")) {
		if (!out)
			return fprintf(stderr, "veil-attest: ak-pub needs --out FILE\n"), 2;
		ctx = tpm_open(tcti_conf, &tcti);
		ESYS_TR h = create_ak(ctx, &pub);
		EVP_PKEY *k = ak_to_pkey(pub);
		Esys_FlushContext(ctx, h);
		FILE *f = fopen(out, "we");
		if (!k || !f || PEM_write_PUBKEY(f, k) != 1)
			die("cannot write %s", out);
		fclose(f);
		return 0;
	}
	if (strcmp(cmd, "unlock"))
		return fprintf(stderr, "veil-attest: unknown command '%s'\n", cmd), 2;
	for (int i = 0; i < VM_REF_COUNT; i++)
		if (!measure[i])
			return fprintf(stderr, "veil-attest: --measure %s=PATH is required\n", names[i]), 2;
	if (!vm || t < 1 || !vals || !ca || !regpub || !keyout)
		return fprintf(stderr, "veil-attest: unlock needs --vm, --t, --validators, --ca, --registry-pub, --key-out\n"), 2;
	struct validator v[32];
	int nv = 0;
	char vcopy[1024], *save;
	snprintf(vcopy, sizeof(vcopy), "%s", vals);
	for (char *s = strtok_r(vcopy, ",", &save); s && nv < 32; s = strtok_r(NULL, ",", &save))
		if (split_addr(s, &v[nv++]))
			return fprintf(stderr, "veil-attest: '%s' is not ADDR:PORT\n", s), 2;
	EVP_PKEY *reg = vm_load_pub(regpub);
	if (!reg)
		die("cannot read the registry key %s", regpub);

	/* 1. measure into PCR 9 */
	ctx = tpm_open(tcti_conf, &tcti);
	uint8_t hashes[VM_REF_COUNT][32];
	for (int i = 0; i < VM_REF_COUNT; i++) {
		if (vm_sha256_file(measure[i], i == 4 ? VM_DISK_HEADER_BYTES : 0, hashes[i]))
			die("cannot read %s (%s)", measure[i], names[i]);
		TPML_DIGEST_VALUES d = { .count = 1, .digests[0] = { .hashAlg = TPM2_ALG_SHA256 } };
		memcpy(d.digests[0].digest.sha256, hashes[i], 32);
		if (Esys_PCR_Extend(ctx, ESYS_TR_PCR0 + VM_MEASURE_PCR, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d) !=
		    TSS2_RC_SUCCESS)
			die("cannot extend PCR %d", VM_MEASURE_PCR);
	}
	ESYS_TR ak = create_ak(ctx, &pub);

	/* 2. attest to a validator chosen at random; others if it fails */
	char token[1600] = "", resp[16384], why[256], body[12000];
	uint8_t start;
	RAND_bytes(&start, 1);
	for (int k = 0; k < nv && !token[0]; k++) {
		struct validator *a = &v[(start + k) % nv];
		snprintf(body, sizeof(body), "{\"vm\":\"%s\"}", vm);
		int st = vm_https_post(a->host, a->port, ca, "/v1/challenge", body, NULL, resp, sizeof(resp), why, sizeof(why));
		json_object *j = st == 200 ? json_tokener_parse(resp) : NULL, *x;
		uint8_t nonce[VM_NONCE_LEN];
		if (!j || !json_object_object_get_ex(j, "nonce", &x) || vm_unhex(json_object_get_string(x), nonce, VM_NONCE_LEN)) {
			fprintf(stderr, "veil-attest: %s:%d: challenge failed: %s\n", a->host, a->port, st < 0 ? why : resp);
			json_object_put(j);
			continue;
		}
		json_object_put(j);
		TPM2B_DATA qd = { .size = VM_NONCE_LEN };
		memcpy(qd.buffer, nonce, VM_NONCE_LEN);
		TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 };
		TPML_PCR_SELECTION sel = { .count = 1, .pcrSelections[0] = { .hash = TPM2_ALG_SHA256, .sizeofSelect = 3 } };
		for (int i = 0; i < 3; i++)
			sel.pcrSelections[0].pcrSelect[i] = (VM_PCR_MASK >> (8 * i)) & 0xff;
		TPM2B_ATTEST *quoted = NULL;
		TPMT_SIGNATURE *sig = NULL;
		if (Esys_Quote(ctx, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qd, &scheme, &sel, &quoted, &sig) !=
		    TSS2_RC_SUCCESS)
			die("TPM quote failed");
		uint8_t sigb[512];
		size_t sl = 0;
		Tss2_MU_TPMT_SIGNATURE_Marshal(sig, sigb, sizeof(sigb), &sl);
		char a64[2048], s64[1024], hx[VM_REF_COUNT][65];
		vm_b64_encode(quoted->attestationData, quoted->size, a64, sizeof(a64));
		vm_b64_encode(sigb, sl, s64, sizeof(s64));
		for (int i = 0; i < VM_REF_COUNT; i++)
			vm_hex(hashes[i], 32, hx[i]);
		char nhex[2 * VM_NONCE_LEN + 1];
		vm_hex(nonce, VM_NONCE_LEN, nhex);
		snprintf(body, sizeof(body),
			 "{\"vm\":\"%s\",\"nonce\":\"%s\",\"attest\":\"%s\",\"sig\":\"%s\",\"time\":%ld,"
			 "\"hashes\":{\"kernel\":\"%s\",\"initrd\":\"%s\",\"cmdline\":\"%s\",\"config\":\"%s\","
			 "\"disk\":\"%s\"}}",
			 vm, nhex, a64, s64, (long)time(NULL), hx[0], hx[1], hx[2], hx[3], hx[4]);
		Esys_Free(quoted);
		Esys_Free(sig);
		st = vm_https_post(a->host, a->port, ca, "/v1/attest", body, NULL, resp, sizeof(resp), why, sizeof(why));
		j = st == 200 ? json_tokener_parse(resp) : NULL;
		if (j && json_object_object_get_ex(j, "token", &x))
			snprintf(token, sizeof(token), "%s", json_object_get_string(x));
		else
			fprintf(stderr, "veil-attest: %s:%d: attestation refused: %s\n", a->host, a->port, st < 0 ? why : resp);
		json_object_put(j);
	}
	Esys_FlushContext(ctx, ak);
	Esys_Finalize(&ctx);
	Tss2_TctiLdr_Finalize(&tcti);
	if (!token[0])
		die("no validator accepted the attestation: nothing unlocked");

	/* 3. t shares, each the registry's, for this VM */
	struct vm_share shares[32];
	int got = 0;
	RAND_bytes(&start, 1);
	for (int k = 0; k < nv && got < t; k++) {
		struct validator *a = &v[(start + k) % nv];
		uint8_t wire[VM_SHARE_MAX];
		const char *bad = NULL;
		snprintf(body, sizeof(body), "{\"vm\":\"%s\",\"token\":\"%s\"}", vm, token);
		int st = vm_https_post(a->host, a->port, ca, "/v1/share", body, NULL, resp, sizeof(resp), why, sizeof(why));
		json_object *j = st == 200 ? json_tokener_parse(resp) : NULL, *x;
		int wl = j && json_object_object_get_ex(j, "share", &x) ? vm_b64_decode(json_object_get_string(x), wire, sizeof(wire)) : -1;
		OPENSSL_cleanse(resp, sizeof(resp));
		json_object_put(j);
		if (wl < 0) {
			fprintf(stderr, "veil-attest: %s:%d: no share: %s\n", a->host, a->port, st < 0 ? why : "refused");
			continue;
		}
		if (vm_share_decode(wire, wl, &shares[got], &bad) || strcmp(shares[got].vmid, vm) ||
		    vm_share_verify(&shares[got], reg)) {
			fprintf(stderr, "veil-attest: %s:%d: a bad share (%s): ignored\n", a->host, a->port,
				bad ? bad : "not the registry's or for another VM");
			vm_share_wipe(&shares[got]);
		} else {
			got++;
		}
		OPENSSL_cleanse(wire, sizeof(wire));
	}
	if (got < t) {
		for (int i = 0; i < got; i++)
			vm_share_wipe(&shares[i]);
		die("%d of the %d shares needed: nothing unlocked", got, t);
	}
	uint8_t key[VM_SECRET_MAX];
	int kl = vm_shamir_combine(shares, got, key);
	for (int i = 0; i < got; i++)
		vm_share_wipe(&shares[i]);
	if (kl < 0)
		die("the shares do not combine: nothing unlocked");
	int fd = !strcmp(keyout, "-") ? dup(1) : open(keyout, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok = fd >= 0 && write(fd, key, kl) == kl;
	OPENSSL_cleanse(key, sizeof(key));
	if (fd >= 0)
		close(fd);
	if (!ok)
		die("cannot write the key to %s", keyout);
	fprintf(stderr, "veil-attest: unlocked %s with %d shares\n", vm, got);
	return 0;
}
