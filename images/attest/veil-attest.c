// SPDX-License-Identifier: Apache-2.0
/*
 * veil-attest: the VM side of disk unlock, for the initrd.
 *
 *   veil-attest ak-pub --tcti CONF --out FILE
 *       create (or recreate: it is a primary key) the VM's attestation key in
 *       the TPM and write its public half, for the registry to register
 *   veil-attest unlock --tcti CONF --vm ID --t N --validators ADDR:PORT,... --ca FILE
 *                      --registry-pub FILE --key-out PATH|- [--eventlog FILE]
 *                      [--deadline SECONDS] [--no-cap]
 *       protocol v2 (docs/attestation.md): an ephemeral X25519 key for this
 *       boot; to each validator in random order: challenge, TPM2 quote of
 *       PCRs 0, 7, 9 over sha256(nonce || ephemeral key), the firmware's event
 *       log (default /sys/kernel/security/tpm0/binary_bios_measurements);
 *       each validator verifies on its own and answers with its share boxed
 *       to the ephemeral key.  t shares of the newest epoch, each the
 *       registry's, rebuild the key, which is checked against the registry's
 *       commitment before it is written to --key-out (a pipe, or a file on
 *       tmpfs, mode 0600); a bad share is named and others tried.  Then the
 *       PCRs are capped (unless --no-cap).  --measure NAME=PATH (v1) is
 *       accepted and ignored: the initrd measures nothing itself.
 *   veil-attest cap --tcti CONF
 *       extend a separator into PCRs 0, 7 and 9: no quote after this one
 *       satisfies any validator (run before switch_root).
 *
 * It fails closed: any doubt (or the deadline, default 120 s) and it writes
 * nothing and exits non-zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
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
#include "keys/ek.h"
#include "keys/shamir.h"
#include "keys/tpm.h"

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
	char why[160];
	ESYS_CONTEXT *ctx = vm_tpm_open(conf, tcti, why, sizeof(why));
	if (!ctx)
		die("%s", why);
	return ctx;
}

/* The attestation key and the endorsement key (keys/tpm.h). */
static ESYS_TR create_ak(ESYS_CONTEXT *ctx, TPM2B_PUBLIC **pub)
{
	ESYS_TR h;
	if (vm_tpm_create_ak(ctx, &h, pub) != TSS2_RC_SUCCESS)
		die("cannot create the attestation key");
	return h;
}

static ESYS_TR create_ek(ESYS_CONTEXT *ctx)
{
	ESYS_TR h;
	if (vm_tpm_create_ek(ctx, &h) != TSS2_RC_SUCCESS)
		die("cannot create the endorsement key");
	return h;
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

/* Extends a separator into every PCR the policy quotes. */
static int cap_pcrs(ESYS_CONTEXT *ctx)
{
	static const char sep[] = "veilmesh: disk unlocked, PCRs capped";
	TPML_DIGEST_VALUES d = { .count = 1, .digests[0] = { .hashAlg = TPM2_ALG_SHA256 } };
	unsigned int n = 32;
	EVP_Digest(sep, sizeof(sep) - 1, d.digests[0].digest.sha256, &n, EVP_sha256(), NULL);
	for (int p = 0; p < 24; p++)
		if ((VM_POLICY_MASK >> p) & 1)
			if (Esys_PCR_Extend(ctx, ESYS_TR_PCR0 + p, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d) !=
			    TSS2_RC_SUCCESS)
				return -1;
	return 0;
}

struct got {
	struct vm_share sh;
	uint64_t epoch;
	uint8_t commit[32];
	char from[96];
	int named;   /* named as serving an older epoch */
};

static void on_deadline(int s)
{
	static const char m[] = "veil-attest: deadline passed: nothing unlocked\n";
	if (write(2, m, sizeof(m) - 1) < 0)
		_exit(1);
	_exit(1);
}

/* Rebuilds from t of the k shares in g (all of one epoch) the key that
 * matches the commitment; names the shares that do not fit.  Length or -1. */
static int rebuild(struct got **g, int k, int t, const char *vm, uint8_t *key)
{
	struct vm_share sub[32];
	uint8_t c[32];

	if (k > 16)
		k = 16;
	for (uint32_t m = 0; m < (1u << k); m++) {
		if (__builtin_popcount(m) != t)
			continue;
		int n = 0;
		for (int i = 0; i < k; i++)
			if (m & (1u << i))
				sub[n++] = g[i]->sh;
		int kl = vm_shamir_combine(sub, n, key);
		OPENSSL_cleanse(sub, sizeof(sub));
		if (kl < 0)
			continue;
		vm_key_commit(vm, g[0]->epoch, key, kl, c);
		if (!CRYPTO_memcmp(c, g[0]->commit, 32)) {
			for (int i = 0; i < k; i++)
				if (!(m & (1u << i)))
					fprintf(stderr, "veil-attest: the share from %s does not fit the key's commitment: "
						"ignored\n", g[i]->from);
			return kl;
		}
		OPENSSL_cleanse(key, VM_SECRET_MAX);
		if (m == (1u << t) - 1)
			fprintf(stderr, "veil-attest: the first %d shares do not rebuild the committed key: a bad share; "
				"trying others\n", t);
	}
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tcti", required_argument, NULL, 'T' }, { "out", required_argument, NULL, 'o' },
		{ "vm", required_argument, NULL, 'v' }, { "t", required_argument, NULL, 't' },
		{ "validators", required_argument, NULL, 'V' }, { "ca", required_argument, NULL, 'c' },
		{ "registry-pub", required_argument, NULL, 'r' }, { "measure", required_argument, NULL, 'm' },
		{ "key-out", required_argument, NULL, 'k' }, { "eventlog", required_argument, NULL, 'e' },
		{ "deadline", required_argument, NULL, 'd' }, { "no-cap", no_argument, NULL, 'n' },
		{ "ek-cert", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	const char *tcti_conf = NULL, *out = NULL, *vm = NULL, *vals = NULL, *ca = NULL, *regpub = NULL, *keyout = NULL;
	const char *evpath = "/sys/kernel/security/tpm0/binary_bios_measurements", *ekpath = NULL;
	int t = 0, o, deadline = 120, nocap = 0;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: veil-attest ak-pub --tcti CONF --out FILE\n"
		       "       veil-attest unlock --tcti CONF --vm ID --t N --validators ADDR:PORT,... --ca FILE\n"
		       "                          --registry-pub FILE --key-out PATH|- [--eventlog FILE] [--deadline S] [--no-cap]\n"
		       "       veil-attest cap --tcti CONF\n"
		       "The VM side of disk unlock, run by the initrd: attests to each validator (TPM quote, event log,\n"
		       "credential activation), rebuilds the disk key from t shares, then caps the PCRs\n"
		       "(veil-attest(8), docs/attestation.md). Exit codes: 0 done, 1 refused or failed, 2 usage.\n");
		return 0;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: veil-attest ak-pub|unlock|cap [options] (veil-attest --help)\n");
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
		case 'e': evpath = optarg; break;
		case 'd': deadline = atoi(optarg); break;
		case 'n': nocap = 1; break;
		case 'E': ekpath = optarg; break;
		case 'm':
			if (!strchr(optarg, '=')) {
				fprintf(stderr, "veil-attest: --measure takes NAME=PATH (accepted and ignored since protocol v2)\n");
				return 2;
			}
			break;   /* v1: the initrd measured itself; now the firmware does */
		default:
			fprintf(stderr, "usage: veil-attest ak-pub|unlock|cap [options]\n");
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
		EVP_PKEY *k = vm_tpm_ak_pkey(pub);
		Esys_FlushContext(ctx, h);
		FILE *f = fopen(out, "we");
		if (!k || !f || PEM_write_PUBKEY(f, k) != 1)
			die("cannot write %s", out);
		fclose(f);
		return 0;
	}
	if (!strcmp(cmd, "cap")) {
		ctx = tpm_open(tcti_conf, &tcti);
		if (cap_pcrs(ctx))
			die("cannot extend the PCRs");
		Esys_Finalize(&ctx);
		Tss2_TctiLdr_Finalize(&tcti);
		fprintf(stderr, "veil-attest: PCRs 0, 7 and 9 capped\n");
		return 0;
	}
	if (strcmp(cmd, "unlock"))
		return fprintf(stderr, "veil-attest: unknown command '%s'\n", cmd), 2;
	if (!vm || t < 2 || !vals || !ca || !regpub || !keyout || deadline < 1)
		return fprintf(stderr, "veil-attest: unlock needs --vm, --t (>= 2), --validators, --ca, --registry-pub, "
				       "--key-out\n"), 2;
	struct validator v[32];
	int nv = 0;
	char vcopy[1024], *save;
	snprintf(vcopy, sizeof(vcopy), "%s", vals);
	for (char *s = strtok_r(vcopy, ",", &save); s && nv < 32; s = strtok_r(NULL, ",", &save))
		if (split_addr(s, &v[nv++]))
			return fprintf(stderr, "veil-attest: '%s' is not ADDR:PORT\n", s), 2;
	signal(SIGALRM, on_deadline);
	alarm(deadline);
	EVP_PKEY *reg = vm_load_pub(regpub);
	if (!reg)
		die("cannot read the registry key %s", regpub);

	/* 1. what the firmware measured, as it logged it */
	uint8_t *evlog = malloc(VM_EVLOG_MAX + 1);
	size_t evlen = 0;
	{
		FILE *f = fopen(evpath, "re");
		if (!f || !evlog)
			die("cannot read the event log %s (mount securityfs?)", evpath);
		evlen = fread(evlog, 1, VM_EVLOG_MAX + 1, f);
		fclose(f);
		if (evlen > VM_EVLOG_MAX)
			die("event log %s larger than %u bytes", evpath, VM_EVLOG_MAX);
	}
	char *ev64 = malloc(4 * (evlen / 3 + 1) + 1);
	if (!ev64 || vm_b64_encode(evlog, evlen, ev64, 4 * (evlen / 3 + 1) + 1) < 0)
		die("out of memory");
	free(evlog);

	/* 2. this boot's key, and the AK */
	EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	uint8_t ephpub[32];
	size_t el = 32;
	if (!eph || EVP_PKEY_get_raw_public_key(eph, ephpub, &el) != 1)
		die("cannot make an ephemeral key");
	char ephhex[65];
	vm_hex(ephpub, 32, ephhex);
	ctx = tpm_open(tcti_conf, &tcti);
	ESYS_TR ak = create_ak(ctx, &pub);
	uint8_t akb[sizeof(TPM2B_PUBLIC)];
	size_t akl = 0;
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, akb, sizeof(akb), &akl) != TSS2_RC_SUCCESS)
		die("cannot marshal the attestation key");
	char ak64[2 * sizeof(TPM2B_PUBLIC)];
	vm_b64_encode(akb, akl, ak64, sizeof(ak64));
	Esys_Free(pub);
	/* the EK and its certificate: validators make their credentials to it */
	uint8_t ekder[VM_EK_CERT_MAX];
	int ekl = -1;
	if (ekpath) {   /* a certificate kept outside the TPM (some vendors publish them online) */
		FILE *f = fopen(ekpath, "re");
		ekl = f ? (int)fread(ekder, 1, sizeof(ekder), f) : -1;
		if (f)
			fclose(f);
	} else {
		ekl = vm_tpm_read_nv_cert(ctx, VM_EK_NV_RSA2048, ekder, sizeof(ekder));
	}
	if (ekl <= 0)
		die("cannot read the EK certificate (%s)", ekpath ? ekpath : "TPM NV index 0x01c00002");
	char ek64[2 * VM_EK_CERT_MAX];
	vm_b64_encode(ekder, ekl, ek64, sizeof(ek64));
	ESYS_TR ekh = create_ek(ctx);

	/* 3. each holder judges for itself; t shares of the newest epoch */
	static struct got got[32];
	int ngot = 0, kl = -1;
	uint8_t key[VM_SECRET_MAX], start;
	char resp[32768], why[256];
	size_t blen = strlen(ev64) + 8192;
	char *body = malloc(blen);
	if (!body || RAND_bytes(&start, 1) != 1)
		die("out of memory or no randomness");
	for (int k = 0; k < nv && kl < 0; k++) {
		struct validator *a = &v[(start + k) % nv];
		char from[96];
		snprintf(from, sizeof(from), "%s:%d", a->host, a->port);
		snprintf(body, blen, "{\"vm\":\"%s\",\"ek_cert\":\"%s\",\"ak\":\"%s\"}", vm, ek64, ak64);
		int st = vm_https_post(a->host, a->port, ca, "/v1/challenge", body, NULL, resp, sizeof(resp), why, sizeof(why));
		json_object *j = st == 200 ? json_tokener_parse(resp) : NULL, *x, *y;
		uint8_t nonce[VM_NONCE_LEN], qdig[32], cblob[512], csec[600], cred[32];
		int cbl = -1, csl = -1;
		if (!j || !json_object_object_get_ex(j, "nonce", &x) || vm_unhex(json_object_get_string(x), nonce, VM_NONCE_LEN) ||
		    !json_object_object_get_ex(j, "credential", &x) || !json_object_object_get_ex(j, "secret", &y) ||
		    (cbl = vm_b64_decode(json_object_get_string(x), cblob, sizeof(cblob))) < 0 ||
		    (csl = vm_b64_decode(json_object_get_string(y), csec, sizeof(csec))) < 0) {
			fprintf(stderr, "veil-attest: %s: challenge failed: %s\n", from, st < 0 ? why : resp);
			json_object_put(j);
			continue;
		}
		json_object_put(j);
		TSS2_RC trc;
		if (vm_tpm_activate(ctx, ak, ekh, cblob, cbl, csec, csl, cred, &trc)) {
			fprintf(stderr, "veil-attest: %s: the TPM does not activate the credential (0x%x): the EK certificate "
				"sent is not this TPM's\n", from, trc);
			continue;
		}
		char credhex[65];
		vm_hex(cred, 32, credhex);
		OPENSSL_cleanse(cred, sizeof(cred));
		vm_qualifying(nonce, ephpub, qdig);
		uint8_t quoted[1024], sigb[512];
		size_t ql = 0, sl = 0;
		if (vm_tpm_quote(ctx, ak, qdig, VM_POLICY_MASK, quoted, sizeof(quoted), &ql, sigb, sizeof(sigb), &sl) !=
		    TSS2_RC_SUCCESS)
			die("TPM quote failed");
		char a64[2048], s64[1024], nhex[2 * VM_NONCE_LEN + 1];
		vm_b64_encode(quoted, ql, a64, sizeof(a64));
		vm_b64_encode(sigb, sl, s64, sizeof(s64));
		vm_hex(nonce, VM_NONCE_LEN, nhex);
		snprintf(body, blen, "{\"vm\":\"%s\",\"nonce\":\"%s\",\"pub\":\"%s\",\"ak\":\"%s\",\"attest\":\"%s\","
			 "\"sig\":\"%s\",\"eventlog\":\"%s\",\"cred\":\"%s\"}", vm, nhex, ephhex, ak64, a64, s64, ev64, credhex);
		OPENSSL_cleanse(credhex, sizeof(credhex));
		st = vm_https_post(a->host, a->port, ca, "/v1/attest", body, NULL, resp, sizeof(resp), why, sizeof(why));
		j = st == 200 ? json_tokener_parse(resp) : NULL;
		const char *box = NULL, *refs = NULL, *rsig = NULL, *vid = NULL;
		if (j && json_object_object_get_ex(j, "box", &x))
			box = json_object_get_string(x);
		if (j && json_object_object_get_ex(j, "refs", &x))
			refs = json_object_get_string(x);
		if (j && json_object_object_get_ex(j, "refs_sig", &x))
			rsig = json_object_get_string(x);
		if (j && json_object_object_get_ex(j, "validator", &x))
			vid = json_object_get_string(x);
		if (!box || !refs || !rsig || !vid) {
			fprintf(stderr, "veil-attest: %s: attestation refused: %s\n", from, st < 0 ? why : resp);
			json_object_put(j);
			continue;
		}
		/* the registry's policy, then the box, then the registry's share */
		struct vm_policy pol;
		uint8_t rs[80], boxed[VM_SHARE_MAX + 64], wire[VM_SHARE_MAX];
		char aad[200];
		const char *bad = NULL;
		int rl = vm_b64_decode(rsig, rs, sizeof(rs)), bl = vm_b64_decode(box, boxed, sizeof(boxed)), wl = -1;
		if (vm_policy_load(refs, strlen(refs), rs, rl < 0 ? 0 : rl, reg, &pol, why, sizeof(why)) || strcmp(pol.vm, vm)) {
			fprintf(stderr, "veil-attest: %s: reference values refused: %s\n", from,
				strcmp(pol.vm, vm) ? "for another VM" : why);
		} else {
			vm_share_aad(vm, pol.epoch, vid, aad, sizeof(aad));
			wl = bl < 0 ? -1 : vm_box_open(eph, nonce, aad, boxed, bl, wire, sizeof(wire));
			if (wl < 0)
				fprintf(stderr, "veil-attest: %s: the box does not open with this boot's key\n", from);
		}
		json_object_put(j);
		OPENSSL_cleanse(resp, sizeof(resp));
		if (wl < 0)
			continue;
		struct got *g = &got[ngot];
		if (vm_share_decode(wire, wl, &g->sh, &bad) || strcmp(g->sh.vmid, vm) || vm_share_verify(&g->sh, reg) ||
		    g->sh.t != pol.t) {
			fprintf(stderr, "veil-attest: %s: a bad share (%s): ignored\n", from,
				bad ? bad : "not the registry's, for another VM or threshold");
			vm_share_wipe(&g->sh);
			OPENSSL_cleanse(wire, sizeof(wire));
			continue;
		}
		OPENSSL_cleanse(wire, sizeof(wire));
		g->epoch = pol.epoch;
		g->named = 0;
		memcpy(g->commit, pol.commit, 32);
		snprintf(g->from, sizeof(g->from), "%s", from);
		ngot++;
		if (t != pol.t)
			fprintf(stderr, "veil-attest: the registry says t = %d (--t %d given): using %d\n", pol.t, t, pol.t);
		t = pol.t;
		/* the newest epoch seen rules; older shares are a holder's stale state */
		uint64_t top = 0;
		for (int i = 0; i < ngot; i++)
			if (got[i].epoch > top)
				top = got[i].epoch;
		struct got *cur[32];
		int nc = 0;
		for (int i = 0; i < ngot; i++)
			if (got[i].epoch == top)
				cur[nc++] = &got[i];
		for (int i = 0; i < ngot; i++)   /* whichever came first: each stale holder named once */
			if (got[i].epoch < top && !got[i].named) {
				fprintf(stderr, "veil-attest: %s: serves epoch %llu, older than %llu: ignored\n", got[i].from,
					(unsigned long long)got[i].epoch, (unsigned long long)top);
				got[i].named = 1;
			}
		if (nc >= t)
			kl = rebuild(cur, nc, t, vm, key);
	}
	free(body);
	free(ev64);
	for (int i = 0; i < ngot; i++)
		vm_share_wipe(&got[i].sh);
	Esys_FlushContext(ctx, ak);
	Esys_FlushContext(ctx, ekh);
	EVP_PKEY_free(eph);
	if (kl < 0) {
		Esys_Finalize(&ctx);
		Tss2_TctiLdr_Finalize(&tcti);
		die("%d share(s) collected, %d of one epoch matching the key's commitment needed: nothing unlocked", ngot, t);
	}
	int fd = !strcmp(keyout, "-") ? dup(1) : open(keyout, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok = fd >= 0 && write(fd, key, kl) == kl;
	OPENSSL_cleanse(key, sizeof(key));
	if (fd >= 0)
		close(fd);
	if (!ok) {
		unlink(keyout);
		die("cannot write the key to %s", keyout);
	}
	/* 4. nothing after us may attest as us */
	if (!nocap && cap_pcrs(ctx)) {
		if (strcmp(keyout, "-"))
			unlink(keyout);
		die("cannot cap the PCRs: key withdrawn");
	}
	Esys_Finalize(&ctx);
	Tss2_TctiLdr_Finalize(&tcti);
	alarm(0);
	fprintf(stderr, "veil-attest: unlocked %s with %d shares%s\n", vm, t, nocap ? "" : "; PCRs capped");
	return 0;
}
