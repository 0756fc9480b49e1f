// SPDX-License-Identifier: Apache-2.0
/*
 * veil-agent --register URL: the node joins the network only after its TPM
 * attests (docs/agent.md, docs/api.yaml):
 *
 *   1. the EK certificate from the TPM's NV index (RSA, 0x01c00002), the EK
 *      (TCG default template) and a restricted ECDSA P-256 AK are made in the
 *      TPM, and a fresh Ed25519 node key in memory;
 *   2. POST /v1/nodes/register {key, ek_cert (+ intermediates), ak,
 *      node_pub, resources, scan, ...}: the controller checks the EK chain
 *      to the TPM vendor's CA and the AK's attributes and answers with a
 *      credential for the AK's name, encrypted to the EK, and a nonce;
 *   3. TPM2_ActivateCredential (PolicySecret on the endorsement hierarchy)
 *      recovers the credential only if the AK lives beside that EK; the AK
 *      quotes sha256(nonce || node public key);
 *   4. POST /v1/nodes/{id}/activate {secret, attest, sig}: the node is up,
 *      attested, its id the sha256 of its EK;
 *   5. the node key goes to a 0600 file and the config's store: section
 *      gets node_id and node_signing_key.
 *
 * The registration key and the credential are wiped after use and never
 * printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "agent.h"
#include "register.h"
#include "keys/attest.h"
#include "keys/ek.h"
#include "keys/tpm.h"

#define SAY(...) (fprintf(stderr, "veil-agent: register: " __VA_ARGS__), fputc('\n', stderr))

/* The config's text without its store: block (into rest), and that block's
 * lines other than node_id and node_signing_key (into store). */
static int split_config(const char *path, char **rest, char **store, int *has_urls, int *has_ctl)
{
	FILE *f = fopen(path, "re");
	char line[2048];
	size_t rl = 0, sl = 0;
	FILE *r = open_memstream(rest, &rl), *s = open_memstream(store, &sl);
	int in = 0;

	*has_urls = *has_ctl = 0;
	if (!f) {
		fclose(r);
		fclose(s);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "store:", 6)) {
			in = 1;
			continue;
		}
		if (in && line[0] != ' ' && line[0] != '\t' && line[0] != '\n' && line[0] != '#')
			in = 0;
		if (!in) {
			fputs(line, r);
			continue;
		}
		const char *k = line + strspn(line, " \t");
		if (!strncmp(k, "node_id:", 8) || !strncmp(k, "node_signing_key:", 17))
			continue;
		*has_urls |= !strncmp(k, "urls:", 5);
		*has_ctl |= !strncmp(k, "controller_pub:", 15);
		fputs(line, s);
	}
	fclose(f);
	fclose(r);
	fclose(s);
	return 0;
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	int ok = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
	close(fd);
	if (!ok || rename(tmp, path)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int split_url(const char *url, char *host, size_t hl, int *port)
{
	if (strncmp(url, "https://", 8))
		return -1;
	const char *h = url + 8, *end = h + strcspn(h, "/");
	const char *c = NULL;
	if (*h == '[') {   /* [v6]:port */
		const char *rb = memchr(h, ']', end - h);
		if (!rb || rb[1] != ':')
			return -1;
		snprintf(host, hl, "%.*s", (int)(rb - h - 1), h + 1);
		c = rb + 1;
	} else {
		c = memchr(h, ':', end - h);
		if (!c)
			return -1;
		snprintf(host, hl, "%.*s", (int)(c - h), h);
	}
	*port = atoi(c + 1);
	return *port > 0 && *port < 65536 ? 0 : -1;
}

int ag_register(const struct ag_reg_opts *o, const char *cfgpath, const struct ag_scan *scan, const char *scan_json)
{
	char host[64], why[512], *rest = NULL, *storeblk = NULL, keypath[600];
	int port, has_urls, has_ctl, rc = 1;
	struct ag_cfg *cfg = calloc(1, sizeof(*cfg));
	ESYS_CONTEXT *ctx = NULL;
	TSS2_TCTI_CONTEXT *tcti = NULL;
	EVP_PKEY *node = NULL;
	TPM2B_PUBLIC *akpub = NULL;
	ESYS_TR ak = ESYS_TR_NONE, ek = ESYS_TR_NONE;
	char *body = NULL, *resp = NULL, *pem = NULL, regkey[256] = "";
	json_object *j = NULL;

	if (!cfg || !o->tcti || split_url(o->url, host, sizeof(host), &port)) {
		SAY("needs --register https://ADDR:PORT and --tcti CONF (e.g. device:/dev/tpmrm0)");
		free(cfg);
		return 2;
	}
	/* the config without its store: block must load (resources, node_key) */
	if (split_config(cfgpath, &rest, &storeblk, &has_urls, &has_ctl)) {
		SAY("%s: %s", cfgpath, strerror(errno));
		goto out;
	}
	if ((!has_urls && !o->store_urls) || (!has_ctl && !o->controller_pub)) {
		SAY("%s: the store: section needs urls and controller_pub: give --store and --controller-pub, or write "
		    "them in the config first", cfgpath);
		rc = 2;
		goto out;
	}
	{
		char tmp[600];
		snprintf(tmp, sizeof(tmp), "%s.check%d", cfgpath, (int)getpid());
		int bad = write_file(tmp, rest, strlen(rest), 0600) || ag_cfg_load(tmp, cfg, NULL, why, sizeof(why));
		unlink(tmp);
		if (bad) {
			SAY("%s: %s", cfgpath, why);
			rc = 2;
			goto out;
		}
	}
	if (ag_check_resources(cfg, scan, why, sizeof(why))) {
		SAY("%s", why);
		rc = 2;
		goto out;
	}
	snprintf(regkey, sizeof(regkey), "%s", o->regkey ? o->regkey : cfg->node_key);
	if (o->key_out) {
		snprintf(keypath, sizeof(keypath), "%s", o->key_out);
	} else {
		const char *sl = strrchr(cfgpath, '/');
		snprintf(keypath, sizeof(keypath), "%.*snode.key", sl ? (int)(sl - cfgpath + 1) : 0, cfgpath);
	}

	/* 1. the TPM: EK certificate, EK, AK; the node key */
	if (!(ctx = vm_tpm_open(o->tcti, &tcti, why, sizeof(why)))) {
		SAY("%s", why);
		goto out;
	}
	uint8_t der[VM_EK_CERT_MAX];
	int dl = vm_tpm_read_nv_cert(ctx, VM_EK_NV_RSA2048, der, sizeof(der));
	const uint8_t *dp = der;
	X509 *x = dl > 0 ? d2i_X509(NULL, &dp, dl) : NULL;
	if (!x) {
		SAY("no EK certificate in the TPM's NV index 0x%08x", VM_EK_NV_RSA2048);
		goto out;
	}
	size_t pl = 0;
	FILE *m = open_memstream(&pem, &pl);
	PEM_write_X509(m, x);
	X509_free(x);
	if (o->ek_chain) {   /* the vendor's intermediates, as the TPM's owner got them */
		FILE *c = fopen(o->ek_chain, "re");
		char buf[4096];
		size_t n;
		if (!c) {
			fclose(m);
			SAY("--ek-chain %s: %s", o->ek_chain, strerror(errno));
			goto out;
		}
		while ((n = fread(buf, 1, sizeof(buf), c)) > 0)
			fwrite(buf, 1, n, m);
		fclose(c);
	}
	fclose(m);
	TSS2_RC trc;
	if ((trc = vm_tpm_create_ek(ctx, &ek)) || (trc = vm_tpm_create_ak(ctx, &ak, &akpub))) {
		SAY("cannot create the %s in the TPM (0x%x)", ek == ESYS_TR_NONE ? "EK" : "AK", trc);
		goto out;
	}
	uint8_t akb[sizeof(TPM2B_PUBLIC)], nodepub[32];
	size_t akl = 0, npl = 32;
	char ak64[2 * sizeof(TPM2B_PUBLIC)], np64[48];
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(akpub, akb, sizeof(akb), &akl) != TSS2_RC_SUCCESS ||
	    !(node = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) || EVP_PKEY_get_raw_public_key(node, nodepub, &npl) != 1) {
		SAY("cannot marshal the AK or make the node key");
		goto out;
	}
	vm_b64_encode(akb, akl, ak64, sizeof(ak64));
	vm_b64_encode(nodepub, 32, np64, sizeof(np64));

	/* 2. register: the controller answers with a challenge */
	j = json_object_new_object();
	json_object *res = json_object_new_object(), *g = json_object_new_array();
	json_object_object_add(j, "key", json_object_new_string(regkey));
	json_object_object_add(j, "ek_cert", json_object_new_string(pem));
	json_object_object_add(j, "ak", json_object_new_string(ak64));
	json_object_object_add(j, "node_pub", json_object_new_string(np64));
	if (o->name)
		json_object_object_add(j, "name", json_object_new_string(o->name));
	if (o->underlay4)
		json_object_object_add(j, "underlay4", json_object_new_string(o->underlay4));
	if (o->underlay6)
		json_object_object_add(j, "underlay6", json_object_new_string(o->underlay6));
	json_object_object_add(j, "location", json_object_new_string(o->location ? o->location : ""));
	json_object_object_add(res, "cpu", json_object_new_int(cfg->cpu ? cfg->cpu : scan->cpus));
	json_object_object_add(res, "ram_mb", json_object_new_int64((int64_t)((cfg->ram ? cfg->ram : scan->mem_total) >> 20)));
	json_object_object_add(res, "disk_gb", json_object_new_int64((int64_t)((cfg->disk ? cfg->disk : scan->disk_free) >> 30)));
	for (int i = 0; i < cfg->ngpus; i++)
		json_object_array_add(g, json_object_new_string(cfg->gpus[i]));
	json_object_object_add(res, "gpus", g);
	json_object_object_add(j, "resources", res);
	json_object *sj = json_tokener_parse(scan_json);
	json_object_object_add(j, "scan", sj ? sj : json_object_new_object());
	body = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object *kj;   /* the key's copy inside the request tree */
	if (json_object_object_get_ex(j, "key", &kj))
		OPENSSL_cleanse((char *)json_object_get_string(kj), strlen(json_object_get_string(kj)));
	json_object_put(j);
	j = NULL;
	OPENSSL_cleanse(regkey, sizeof(regkey));
	resp = malloc(65536);
	if (!body || !resp)
		goto out;
	int st = vm_https_post(host, port, o->ca, "/v1/nodes/register", body, NULL, resp, 65536, why, sizeof(why));
	OPENSSL_cleanse(body, strlen(body));
	free(body);
	body = NULL;
	j = st == 202 ? json_tokener_parse(resp) : NULL;
	json_object *v;
	char id[65] = "", nonce_hex[2 * VM_NONCE_LEN + 1] = "";
	uint8_t blob[512], sec[600], nonce[VM_NONCE_LEN], cred[32];
	int bl = -1, secl = -1;
	if (j && json_object_object_get_ex(j, "id", &v))
		snprintf(id, sizeof(id), "%s", json_object_get_string(v));
	if (j && json_object_object_get_ex(j, "nonce", &v))
		snprintf(nonce_hex, sizeof(nonce_hex), "%s", json_object_get_string(v));
	if (j && json_object_object_get_ex(j, "credential", &v))
		bl = vm_b64_decode(json_object_get_string(v), blob, sizeof(blob));
	if (j && json_object_object_get_ex(j, "secret", &v))
		secl = vm_b64_decode(json_object_get_string(v), sec, sizeof(sec));
	if (strlen(id) != 64 || vm_unhex(nonce_hex, nonce, VM_NONCE_LEN) || bl <= 0 || secl <= 0) {
		SAY("refused by the controller (%d): %s", st, st < 0 ? why : resp);
		goto out;
	}
	json_object_put(j);
	j = NULL;

	/* 3. only the TPM of that EK, holding that AK, recovers the credential */
	if (vm_tpm_activate(ctx, ak, ek, blob, bl, sec, secl, cred, &trc)) {
		SAY("the TPM does not activate the credential (0x%x)", trc);
		goto out;
	}
	uint8_t qd[32], quoted[1024], sigb[512];
	size_t ql = 0, sgl = 0;
	vm_qualifying(nonce, nodepub, qd);
	if ((trc = vm_tpm_quote(ctx, ak, qd, 0, quoted, sizeof(quoted), &ql, sigb, sizeof(sigb), &sgl))) {
		OPENSSL_cleanse(cred, sizeof(cred));
		SAY("TPM quote failed (0x%x)", trc);
		goto out;
	}
	char credhex[65], q64[1400], s64[720], path[128];
	vm_hex(cred, 32, credhex);
	OPENSSL_cleanse(cred, sizeof(cred));
	vm_b64_encode(quoted, ql, q64, sizeof(q64));
	vm_b64_encode(sigb, sgl, s64, sizeof(s64));
	if (asprintf(&body, "{\"secret\":\"%s\",\"attest\":\"%s\",\"sig\":\"%s\"}", credhex, q64, s64) < 0)
		body = NULL;
	OPENSSL_cleanse(credhex, sizeof(credhex));
	if (!body)
		goto out;
	/* 4. activate */
	snprintf(path, sizeof(path), "/v1/nodes/%s/activate", id);
	st = vm_https_post(host, port, o->ca, path, body, NULL, resp, 65536, why, sizeof(why));
	OPENSSL_cleanse(body, strlen(body));
	j = st == 200 ? json_tokener_parse(resp) : NULL;
	if (!j || !json_object_object_get_ex(j, "attested", &v) || !json_object_get_boolean(v)) {
		SAY("activation refused by the controller (%d): %s", st, st < 0 ? why : resp);
		goto out;
	}

	/* 5. the node key and the config */
	char *kp = NULL;
	size_t kpl = 0;
	m = open_memstream(&kp, &kpl);
	int kok = PEM_write_PrivateKey(m, node, NULL, NULL, 0, NULL, NULL) == 1;
	fclose(m);
	kok = kok && write_file(keypath, kp, kpl, 0600) == 0;
	OPENSSL_cleanse(kp, kpl);
	free(kp);
	if (!kok) {
		SAY("%s: cannot write the node key: %s", keypath, strerror(errno));
		goto out;
	}
	char *out = NULL;
	size_t outl = 0;
	m = open_memstream(&out, &outl);
	fputs(rest, m);
	if (rest[0] && rest[strlen(rest) - 1] != '\n')
		fputc('\n', m);
	fputs("store:\n", m);
	if (o->store_urls)
		fprintf(m, "  urls: %s\n", o->store_urls);
	if (o->controller_pub)
		fprintf(m, "  controller_pub: %s\n", o->controller_pub);
	/* what the store: block held, but for what this run replaces */
	char *save, *blk = strdup(storeblk);
	for (char *l = strtok_r(blk, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		const char *k = l + strspn(l, " \t");
		if ((o->store_urls && !strncmp(k, "urls:", 5)) || (o->controller_pub && !strncmp(k, "controller_pub:", 15)))
			continue;
		fprintf(m, "%s\n", l);
	}
	free(blk);
	fprintf(m, "  node_id: %s              # sha256 of the TPM's EK (veil-agent --register)\n", id);
	fprintf(m, "  node_signing_key: %s\n", keypath);
	fclose(m);
	struct stat sb;
	int wok = write_file(cfgpath, out, strlen(out), stat(cfgpath, &sb) ? 0600 : (sb.st_mode & 0777)) == 0;
	free(out);
	if (!wok || ag_cfg_load(cfgpath, cfg, NULL, why, sizeof(why))) {
		SAY("%s: %s", cfgpath, wok ? why : strerror(errno));
		goto out;
	}
	fprintf(stderr, "veil-agent: registered: node %s attested and up; %s updated (store.node_id, "
		"store.node_signing_key %s)\n", id, cfgpath, keypath);
	printf("%s\n", id);
	rc = 0;
out:
	if (cfg)
		OPENSSL_cleanse(cfg->node_key, sizeof(cfg->node_key));
	OPENSSL_cleanse(regkey, sizeof(regkey));
	json_object_put(j);
	free(body);
	free(resp);
	free(pem);
	free(rest);
	free(storeblk);
	free(cfg);
	Esys_Free(akpub);
	EVP_PKEY_free(node);
	if (ctx) {
		if (ak != ESYS_TR_NONE)
			Esys_FlushContext(ctx, ak);
		if (ek != ESYS_TR_NONE)
			Esys_FlushContext(ctx, ek);
	}
	vm_tpm_close(&ctx, &tcti);
	return rc;
}
