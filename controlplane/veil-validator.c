// SPDX-License-Identifier: Apache-2.0
/*
 * veil-validator: verifies a VM's remote attestation and releases this
 * validator's share of its disk key to holders of a valid token.
 *
 *   POST /v1/register   (the image registry, body signed with its key)
 *                       {vm, share, refs{kernel,initrd,cmdline,config}, pcrs{"0".."7"}, ak_pub}
 *   POST /v1/challenge  {vm}                      -> {nonce}
 *   POST /v1/attest     {vm, nonce, attest, sig, hashes{...}, time} -> {token}
 *   POST /v1/share      {vm, token}               -> {share}
 *
 * TLS 1.3 only.  Shares are sealed at rest (AES-256-GCM, storage key).  Every
 * registration, attestation, release and refusal goes into the hash-chained
 * audit log; no key or share is ever logged.  docs/attestation.md.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "keys/attest.h"
#include "keys/shamir.h"

#define MAX_POOL 32
#define MAX_NONCES 4096
#define MAX_BODY 65536

static struct {
	char id[64], listen[96], cert[256], key[256], signing[256], storage_file[256], state[256], registry[256];
	char pool_id[MAX_POOL][64], pool_file[MAX_POOL][256];
	int npool;
	long token_ttl, nonce_ttl;
} cfg = { .token_ttl = 60, .nonce_ttl = 60 };

static EVP_PKEY *sign_key, *registry_pub, *pool_keys[MAX_POOL];
static const char *pool_ids[MAX_POOL];
static uint8_t storage_key[32];
static char audit_path[300];
static volatile sig_atomic_t stop;

static struct {
	char vm[VM_VMID_MAX + 1];
	uint8_t nonce[VM_NONCE_LEN];
	long exp;
	int used;
} nonces[MAX_NONCES];

static void logev(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logev(const char *fmt, ...)
{
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s veil-validator[%s]: ", ts, cfg.id);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int vm_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > VM_VMID_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_'))
			return 0;
	return 1;
}

/* ---------- config ---------- */

static int load_config(const char *path, char *err, size_t len)
{
	char line[600], *w[4], *save;
	int ln = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return snprintf(err, len, "%s: %s", path, strerror(errno)), -1;
	while (fgets(line, sizeof(line), f)) {
		int n = 0;
		ln++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 4; t = strtok_r(NULL, " \t\r\n", &save))
			w[n++] = t;
		if (!n)
			continue;
#define S1(k, dst) else if (!strcmp(w[0], k) && n == 2) snprintf(dst, sizeof(dst), "%s", w[1])
		if (0) {
		}
		S1("id", cfg.id);
		S1("listen", cfg.listen);
		S1("cert", cfg.cert);
		S1("key", cfg.key);
		S1("signing_key", cfg.signing);
		S1("storage_key_file", cfg.storage_file);
		S1("state_dir", cfg.state);
		S1("registry_pub", cfg.registry);
		else if (!strcmp(w[0], "token_ttl_s") && n == 2 && atol(w[1]) > 0)
			cfg.token_ttl = atol(w[1]);
		else if (!strcmp(w[0], "nonce_ttl_s") && n == 2 && atol(w[1]) > 0)
			cfg.nonce_ttl = atol(w[1]);
		else if (!strcmp(w[0], "pool") && n == 3 && cfg.npool < MAX_POOL) {
			snprintf(cfg.pool_id[cfg.npool], 64, "%s", w[1]);
			snprintf(cfg.pool_file[cfg.npool], 256, "%s", w[2]);
			cfg.npool++;
		} else {
			fclose(f);
			return snprintf(err, len, "%s:%d: unknown or malformed setting '%s'", path, ln, w[0]), -1;
		}
	}
	fclose(f);
	if (!cfg.id[0] || !cfg.listen[0] || !cfg.cert[0] || !cfg.key[0] || !cfg.signing[0] || !cfg.storage_file[0] ||
	    !cfg.state[0] || !cfg.registry[0] || !cfg.npool)
		return snprintf(err, len, "%s: id, listen, cert, key, signing_key, storage_key_file, state_dir, "
				"registry_pub and at least one pool line are required", path), -1;
	return 0;
}

/* ---------- answers ---------- */

struct reply {
	int status;
	char body[8192];
};

static void refuse(struct reply *r, int status, const char *event, const char *vm, const char *reason)
{
	r->status = status;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(reason));
	snprintf(r->body, sizeof(r->body), "%s", json_object_to_json_string(o));
	json_object_put(o);
	vm_audit(audit_path, event, vm ? vm : "", "refused", reason);
	logev("event=%s vm=%s result=refused reason=\"%s\"", event, vm ? vm : "-", reason);
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
											    : NULL;
}

static int write_file(const char *path, const void *data, size_t len)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -1;
	chmod(tmp, 0600);
	int ok = fwrite(data, 1, len, f) == len;
	ok &= fclose(f) == 0;
	return ok && !rename(tmp, path) ? 0 : -1;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = malloc(MAX_BODY + 1);
	*len = fread(buf, 1, MAX_BODY, f);
	buf[*len] = 0;
	fclose(f);
	return buf;
}

static void do_register(const char *body, const char *sig_b64, struct reply *r)
{
	uint8_t sig[80], wire[VM_SHARE_MAX], sealed[VM_SHARE_MAX + 64];
	struct vm_share sh;
	const char *why;
	char path[512];

	int sl = sig_b64 ? vm_b64_decode(sig_b64, sig, sizeof(sig)) : -1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = sl == 64 && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, registry_pub) == 1 &&
		 EVP_DigestVerify(md, sig, 64, (const uint8_t *)body, strlen(body)) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return refuse(r, 403, "register", NULL, "registration not signed by the image registry");
	json_object *j = json_tokener_parse(body);
	const char *vm = j ? jstr(j, "vm") : NULL, *share = j ? jstr(j, "share") : NULL;
	json_object *refs = NULL, *pcrs = NULL;
	if (!j || !vm_id_ok(vm) || !share || !json_object_object_get_ex(j, "refs", &refs) ||
	    !json_object_object_get_ex(j, "pcrs", &pcrs) || !jstr(j, "ak_pub")) {
		json_object_put(j);
		return refuse(r, 400, "register", vm_id_ok(vm) ? vm : NULL, "registration: fields missing or bad VM id");
	}
	int wl = vm_b64_decode(share, wire, sizeof(wire));
	if (wl < 0 || vm_share_decode(wire, wl, &sh, &why) || strcmp(sh.vmid, vm) || vm_share_verify(&sh, registry_pub)) {
		OPENSSL_cleanse(wire, sizeof(wire));
		vm_share_wipe(&sh);
		json_object_put(j);
		return refuse(r, 400, "register", vm, "registration: the share is malformed, for another VM, or not the registry's");
	}
	int sealed_len = vm_seal(storage_key, wire, wl, sealed, sizeof(sealed));
	OPENSSL_cleanse(wire, sizeof(wire));
	vm_share_wipe(&sh);
	/* the reference values, without the share */
	json_object_object_del(j, "share");
	snprintf(path, sizeof(path), "%s/%s.ref.json", cfg.state, vm);
	const char *refjson = json_object_to_json_string(j);
	int rc = write_file(path, refjson, strlen(refjson));
	snprintf(path, sizeof(path), "%s/%s.share", cfg.state, vm);
	rc |= sealed_len < 0 || write_file(path, sealed, sealed_len);
	snprintf(path, sizeof(path), "%s/%s.tpm", cfg.state, vm);
	unlink(path);
	json_object_put(j);
	if (rc)
		return refuse(r, 500, "register", vm, "cannot store the registration");
	vm_audit(audit_path, "register", vm, "ok", "");
	logev("event=register vm=%s result=ok", vm);
	r->status = 200;
	snprintf(r->body, sizeof(r->body), "{\"ok\":true}");
}

static void do_challenge(json_object *j, struct reply *r)
{
	const char *vm = jstr(j, "vm");
	char path[512], hx[2 * VM_NONCE_LEN + 1];
	struct stat sb;
	long now = time(NULL);
	int slot = -1;

	snprintf(path, sizeof(path), "%s/%s.ref.json", cfg.state, vm_id_ok(vm) ? vm : "-");
	if (!vm_id_ok(vm) || stat(path, &sb))
		return refuse(r, 404, "challenge", vm_id_ok(vm) ? vm : NULL, "unknown VM");
	for (int i = 0; i < MAX_NONCES && slot < 0; i++)
		if (!nonces[i].vm[0] || nonces[i].used || nonces[i].exp < now)
			slot = i;
	if (slot < 0)
		return refuse(r, 503, "challenge", vm, "too many open challenges");
	snprintf(nonces[slot].vm, sizeof(nonces[slot].vm), "%s", vm);
	RAND_bytes(nonces[slot].nonce, VM_NONCE_LEN);
	nonces[slot].exp = now + cfg.nonce_ttl;
	nonces[slot].used = 0;
	vm_hex(nonces[slot].nonce, VM_NONCE_LEN, hx);
	r->status = 200;
	snprintf(r->body, sizeof(r->body), "{\"nonce\":\"%s\",\"expires_in\":%ld}", hx, cfg.nonce_ttl);
}

static void do_attest(json_object *j, struct reply *r)
{
	static const char *names[] = VM_REF_NAMES;
	const char *vm = jstr(j, "vm"), *nonce_hex = jstr(j, "nonce"), *att = jstr(j, "attest"), *sig = jstr(j, "sig");
	json_object *hashes, *tv, *ref = NULL, *refs, *pcrs;
	uint8_t nonce[VM_NONCE_LEN], attest[4096], sigb[1024];
	struct vm_refs rv = { 0 };
	char path[512], why[256], tok[1400];
	long now = time(NULL);
	size_t len;

	if (!vm_id_ok(vm) || !nonce_hex || !att || !sig || !json_object_object_get_ex(j, "hashes", &hashes) ||
	    !json_object_object_get_ex(j, "time", &tv))
		return refuse(r, 400, "attest", vm_id_ok(vm) ? vm : NULL, "evidence: fields missing");
	/* the nonce: ours, for this VM, fresh, once */
	int found = -1;
	if (!vm_unhex(nonce_hex, nonce, VM_NONCE_LEN))
		for (int i = 0; i < MAX_NONCES && found < 0; i++)
			if (!strcmp(nonces[i].vm, vm) && !CRYPTO_memcmp(nonces[i].nonce, nonce, VM_NONCE_LEN))
				found = i;
	if (found < 0 || nonces[found].used || nonces[found].exp < now)
		return refuse(r, 403, "attest", vm, "nonce unknown, already used or expired");
	nonces[found].used = 1;
	long t = json_object_get_int64(tv);
	if (labs(now - t) > 300)
		return refuse(r, 403, "attest", vm, "evidence time differs from ours by more than 300 s");
	snprintf(path, sizeof(path), "%s/%s.ref.json", cfg.state, vm);
	char *rj = read_file(path, &len);
	if (!rj || !(ref = json_tokener_parse(rj)) || !json_object_object_get_ex(ref, "refs", &refs) ||
	    !json_object_object_get_ex(ref, "pcrs", &pcrs)) {
		free(rj);
		json_object_put(ref);
		return refuse(r, 404, "attest", vm, "no reference values for this VM");
	}
	free(rj);
	char reason[128] = "";
	for (int i = 0; i < VM_REF_COUNT && !reason[0]; i++) {
		const char *want = jstr(refs, names[i]), *got = jstr(hashes, names[i]);
		uint8_t g[32];
		if (!want || vm_unhex(want, rv.hash[i], 32))
			snprintf(reason, sizeof(reason), "reference for %s missing", names[i]);
		else if (!got || vm_unhex(got, g, 32) || CRYPTO_memcmp(g, rv.hash[i], 32))
			snprintf(reason, sizeof(reason), "%s hash differs from the reference", names[i]);
	}
	for (int p = 0; p < 24 && !reason[0]; p++) {
		char k[4];
		snprintf(k, sizeof(k), "%d", p);
		const char *hv = jstr(pcrs, k);
		if (hv && vm_unhex(hv, rv.pcr[p], 32))
			snprintf(reason, sizeof(reason), "reference PCR %d malformed", p);
	}
	EVP_PKEY *ak = NULL;
	if (!reason[0]) {
		const char *pem = jstr(ref, "ak_pub");
		BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
		ak = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		if (!ak)
			snprintf(reason, sizeof(reason), "no attestation key registered for this VM");
	}
	json_object_put(ref);
	if (reason[0]) {
		EVP_PKEY_free(ak);
		return refuse(r, 403, "attest", vm, reason);
	}
	/* a registered "9" is PCR 9 as the firmware hands it over (zero without firmware) */
	vm_refs_pcr9_from(&rv, rv.pcr[VM_MEASURE_PCR], rv.pcr[VM_MEASURE_PCR]);
	uint8_t digest[32];
	vm_refs_pcr_digest(&rv, digest);
	int al = vm_b64_decode(att, attest, sizeof(attest)), sl = vm_b64_decode(sig, sigb, sizeof(sigb));
	struct vm_quote_info qi;
	int rc = al > 0 && sl > 0 ? vm_quote_verify(attest, al, sigb, sl, ak, nonce, VM_NONCE_LEN, digest, &qi, why, sizeof(why))
				 : (snprintf(why, sizeof(why), "evidence: bad base64"), -1);
	EVP_PKEY_free(ak);
	if (rc)
		return refuse(r, 403, "attest", vm, why);
	/* the TPM's reset and restart counts never go back */
	snprintf(path, sizeof(path), "%s/%s.tpm", cfg.state, vm);
	unsigned long lr = 0, ls = 0;
	FILE *f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%lu %lu", &lr, &ls) != 2)
			lr = ls = 0;
		fclose(f);
	}
	if (qi.reset_count < lr || (qi.reset_count == lr && qi.restart_count < ls))
		return refuse(r, 403, "attest", vm, "TPM reset/restart count went backwards (replayed or rolled-back state)");
	char tpm[64];
	snprintf(tpm, sizeof(tpm), "%u %u\n", qi.reset_count, qi.restart_count);
	write_file(path, tpm, strlen(tpm));
	if (vm_token_make(sign_key, cfg.id, vm, nonce, now + cfg.token_ttl, tok, sizeof(tok)))
		return refuse(r, 500, "attest", vm, "cannot sign a token");
	vm_audit(audit_path, "attest", vm, "ok", "");
	logev("event=attest vm=%s result=ok reset_count=%u", vm, qi.reset_count);
	r->status = 200;
	snprintf(r->body, sizeof(r->body), "{\"token\":\"%s\",\"expires_in\":%ld}", tok, cfg.token_ttl);
}

static void do_share(json_object *j, struct reply *r)
{
	const char *vm = jstr(j, "vm"), *tok = jstr(j, "token");
	char tvm[VM_VMID_MAX + 1], iss[64], why[256], path[512], b64[VM_SHARE_MAX * 2];
	uint8_t wire[VM_SHARE_MAX];
	size_t len;

	if (!vm_id_ok(vm) || !tok)
		return refuse(r, 400, "release", vm_id_ok(vm) ? vm : NULL, "fields missing");
	if (vm_token_check(tok, pool_keys, pool_ids, cfg.npool, time(NULL), tvm, sizeof(tvm), iss, sizeof(iss), why,
			   sizeof(why)))
		return refuse(r, 403, "release", vm, why);
	if (strcmp(tvm, vm))
		return refuse(r, 403, "release", vm, "token is for another VM");
	snprintf(path, sizeof(path), "%s/%s.share", cfg.state, vm);
	char *sealed = read_file(path, &len);
	int wl = sealed ? vm_unseal(storage_key, (uint8_t *)sealed, len, wire, sizeof(wire)) : -1;
	free(sealed);
	if (wl < 0)
		return refuse(r, 404, "release", vm, "no share stored for this VM (or it does not unseal)");
	vm_b64_encode(wire, wl, b64, sizeof(b64));
	OPENSSL_cleanse(wire, sizeof(wire));
	r->status = 200;
	snprintf(r->body, sizeof(r->body), "{\"share\":\"%s\",\"validator\":\"%s\"}", b64, cfg.id);
	OPENSSL_cleanse(b64, sizeof(b64));
	char note[96];
	snprintf(note, sizeof(note), "token issued by %s", iss);
	vm_audit(audit_path, "release", vm, "ok", note);
	logev("event=release vm=%s result=ok token_issuer=%s", vm, iss);
}

/* ---------- HTTPS server ---------- */

static void serve(SSL *ssl)
{
	char *req = malloc(MAX_BODY + 8192), *hdr_end;
	size_t got = 0, need = 0;
	struct reply rep = { .status = 400 };

	for (;;) {
		int n = SSL_read(ssl, req + got, MAX_BODY + 8191 - got);
		if (n <= 0)
			break;
		got += n;
		req[got] = 0;
		hdr_end = strstr(req, "\r\n\r\n");
		if (hdr_end) {
			char *cl = strcasestr(req, "\r\nContent-Length:");
			long clen = cl ? atol(cl + 17) : 0;
			if (clen < 0 || clen > MAX_BODY) {
				refuse(&rep, 413, "request", NULL, "request body too large");
				goto answer;
			}
			need = (hdr_end - req) + 4 + clen;
			if (got >= need)
				break;
		}
		if (got >= MAX_BODY + 8191) {
			refuse(&rep, 413, "request", NULL, "request too large");
			goto answer;
		}
	}
	req[got] = 0;
	hdr_end = strstr(req, "\r\n\r\n");
	if (!hdr_end || got < need) {
		refuse(&rep, 400, "request", NULL, "incomplete HTTP request");
		goto answer;
	}
	char *body = hdr_end + 4, path[64] = "";
	*hdr_end = 0;
	if (sscanf(req, "POST %63s HTTP/1.1", path) != 1) {
		refuse(&rep, 405, "request", NULL, "only POST");
		goto answer;
	}
	if (!strcmp(path, "/v1/register")) {
		char *h = strcasestr(req, "\r\nX-Veil-Signature:"), sig[200] = "";
		if (h)
			sscanf(h + 19, " %199s", sig);
		do_register(body, sig[0] ? sig : NULL, &rep);
		goto answer;
	}
	json_object *j = json_tokener_parse(body);
	if (!j || !json_object_is_type(j, json_type_object))
		refuse(&rep, 400, "request", NULL, "body is not a JSON object");
	else if (!strcmp(path, "/v1/challenge"))
		do_challenge(j, &rep);
	else if (!strcmp(path, "/v1/attest"))
		do_attest(j, &rep);
	else if (!strcmp(path, "/v1/share"))
		do_share(j, &rep);
	else
		refuse(&rep, 404, "request", NULL, "no such endpoint");
	json_object_put(j);
answer:;
	char head[200];
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
			  "Connection: close\r\n\r\n", rep.status, rep.status == 200 ? "OK" : "Refused", strlen(rep.body));
	SSL_write(ssl, head, hl);
	SSL_write(ssl, rep.body, strlen(rep.body));
	OPENSSL_cleanse(rep.body, sizeof(rep.body));
	OPENSSL_cleanse(req, got);
	free(req);
}

static void on_sig(int s)
{
	stop = 1;
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	char err[512];
	int o;

	while ((o = getopt(argc, argv, "c:h")) != -1) {
		if (o == 'c')
			config = optarg;
		else {
			fprintf(o == 'h' ? stdout : stderr,
				"usage: veil-validator -c CONFIG\n"
				"Verifies VMs' TPM attestation and releases key shares to holders of valid tokens;\n"
				"settings in docs/veil-validator.conf.example. Exit codes: 0 stopped, 1 runtime, 2 config.\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (!config || load_config(config, err, sizeof(err))) {
		fprintf(stderr, "veil-validator: %s\n", config ? err : "-c CONFIG is required");
		return 2;
	}
	size_t kl = 0;
	{
		FILE *f = fopen(cfg.storage_file, "re");
		char hx[80] = "";
		if (f) {
			if (!fgets(hx, sizeof(hx), f))
				hx[0] = 0;
			fclose(f);
		}
		hx[strcspn(hx, "\r\n")] = 0;
		kl = vm_unhex(hx, storage_key, 32) ? 0 : 32;
		OPENSSL_cleanse(hx, sizeof(hx));
	}
	sign_key = vm_load_priv(cfg.signing);
	registry_pub = vm_load_pub(cfg.registry);
	for (int i = 0; i < cfg.npool; i++) {
		pool_keys[i] = vm_load_pub(cfg.pool_file[i]);
		pool_ids[i] = cfg.pool_id[i];
		if (!pool_keys[i]) {
			fprintf(stderr, "veil-validator: %s: cannot read pool key %s\n", config, cfg.pool_file[i]);
			return 2;
		}
	}
	if (kl != 32 || !sign_key || !registry_pub) {
		fprintf(stderr, "veil-validator: %s: storage key (64 hex digits), signing key or registry key unreadable\n",
			config);
		return 2;
	}
	mkdir(cfg.state, 0700);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.log", cfg.state);

	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg.key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "veil-validator: %s: cannot use TLS certificate/key\n", config);
		return 2;
	}
	char host[64];
	const char *c = strrchr(cfg.listen, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(c ? c - cfg.listen : 0), cfg.listen);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE }, *ai;
	if (!c || getaddrinfo(host, c + 1, &hints, &ai)) {
		fprintf(stderr, "veil-validator: %s: listen takes ADDR:PORT\n", config);
		return 2;
	}
	int one = 1, lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, 64)) {
		fprintf(stderr, "veil-validator: listen %s: %s\n", cfg.listen, strerror(errno));
		return 1;
	}
	freeaddrinfo(ai);
	struct sigaction sa = { .sa_handler = on_sig };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	logev("event=started listen=%s pool=%d state=%s", cfg.listen, cfg.npool, cfg.state);
	while (!stop) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct timeval tv = { .tv_sec = 2 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		SSL *ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1) {
			serve(ssl);
			/* let a client that is still sending (an oversized request we
			 * refused early) read our answer: close our side, then drain,
			 * bounded, instead of resetting the connection */
			SSL_shutdown(ssl);
			char junk[4096];
			for (int drained = 0; drained < (1 << 20);) {
				int n = SSL_read(ssl, junk, sizeof(junk));
				if (n <= 0)
					break;
				drained += n;
			}
		} else {
			logev("event=tls_refused reason=\"%s\"", ERR_reason_error_string(ERR_get_error()));
		}
		ERR_clear_error();
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	logev("event=stopped");
	OPENSSL_cleanse(storage_key, sizeof(storage_key));
	return 0;
}
