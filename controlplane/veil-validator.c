// SPDX-License-Identifier: Apache-2.0
/*
 * veil-validator: one holder of a VM's disk-key shares.  It releases its share
 * only on its own verification of the VM's firmware-rooted evidence, boxed to
 * the key the VM's initrd generated for that boot (protocol v2,
 * docs/attestation.md).
 *
 *   POST /v1/register   (the image registry, body signed with its key)
 *                       {vm, refs, refs_sig, share}
 *   POST /v1/challenge  {vm}                                   -> {nonce, expires_in}
 *   POST /v1/attest     {vm, nonce, pub, ak, attest, sig, eventlog}
 *                                          -> {box, refs, refs_sig, epoch, validator}
 *   POST /v1/share      (v1 bearer tokens)                     -> 410
 *
 * HTTPS through libevent (evhttp over bufferevent_openssl, TLS 1.3 only), a
 * worker thread per core on SO_REUSEPORT sockets, header/body limits and
 * idle deadlines.  Shares sealed at rest (AES-256-GCM, AAD vm|epoch|holder),
 * reference values verified against the registry's signature on every load,
 * every event in the signed, hash-chained audit log; no key or share is ever
 * logged.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "common/daemon.h"
#include "keys/attest.h"
#include "keys/ek.h"
#include "keys/shamir.h"

#define MAX_NONCES 4096
#define MAX_NONCES_PER_VM 8
#define MAX_BODY (2 * VM_EVLOG_MAX)     /* base64 of the largest event log, and the rest */
#define MAX_HEADERS 8192
#define MAX_WORKERS 64

struct vcfg {
	char id[64], listen[96], cert[256], key[256], signing[256], storage_file[256], state[256], registry[256],
		ek_ca[256], ek_crl[256], pidfile[256], metrics[96];
	long nonce_ttl;
	int workers, idle_s, audit_sync_ms, request_s;
};
#define VCFG_DEFAULTS { .nonce_ttl = 60, .idle_s = 5, .request_s = 10 }
static struct vcfg cfg = VCFG_DEFAULTS;

static EVP_PKEY *sign_key, *registry_pub;
static struct vm_ek_ca *ek_ca;   /* the TPM vendor's CA */
static uint8_t storage_key[32];
static struct vm_audit_log *audit;
static pthread_mutex_t nonce_lock = PTHREAD_MUTEX_INITIALIZER, tpm_lock = PTHREAD_MUTEX_INITIALIZER,
		       reg_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
	char vm[VM_VMID_MAX + 1];
	uint8_t nonce[VM_NONCE_LEN];   /* bytes 0-1: the slot (big-endian), so an answer finds it at once */
	uint32_t vmh;                  /* hash of vm, to skip other VMs' slots without a strcmp */
	long exp;
	int used;
	uint8_t ek[32];         /* the EK the credential was made to */
	uint8_t ak_name[34];    /* and the AK it was made for */
	uint8_t cred[32];       /* what activating it gives */
} nonces[MAX_NONCES];
/* What a challenge scans (every slot, for a free one and the VM's open
 * count): 16 bytes a slot, 64 KiB in all, not the 200-byte entries above */
static struct {
	long exp;
	uint32_t vmh;
	uint32_t live;   /* issued and not used (expiry aside): its issue number (nonce_seq), 0 when not */
} nonce_hot[MAX_NONCES];
/* Challenges issued, in order (under nonce_lock; 0 skipped): which of a
 * VM's open challenges is the oldest, where their expiry times (seconds)
 * are equal, as a burst's are. */
static uint32_t nonce_seq;


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

/* Reads path into *c (the defaults first); the running config is another
 * struct, so a reload that fails changes nothing. */
static int load_config(const char *path, struct vcfg *c, char *err, size_t len)
{
	char line[600], *w[4], *save;
	int ln = 0;
	FILE *f = fopen(path, "re");

	*c = (struct vcfg)VCFG_DEFAULTS;
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
		S1("id", c->id);
		S1("listen", c->listen);
		S1("cert", c->cert);
		S1("key", c->key);
		S1("signing_key", c->signing);
		S1("storage_key_file", c->storage_file);
		S1("state_dir", c->state);
		S1("registry_pub", c->registry);
		S1("ek_ca", c->ek_ca);
		S1("ek_crl", c->ek_crl);
		S1("pidfile", c->pidfile);
		S1("metrics", c->metrics);
		else if (!strcmp(w[0], "nonce_ttl_s") && n == 2 && atol(w[1]) > 0)
			c->nonce_ttl = atol(w[1]);
		else if (!strcmp(w[0], "workers") && n == 2 && atoi(w[1]) > 0 && atoi(w[1]) <= MAX_WORKERS)
			c->workers = atoi(w[1]);
		else if (!strcmp(w[0], "idle_timeout_s") && n == 2 && atoi(w[1]) > 0)
			c->idle_s = atoi(w[1]);
		else if (!strcmp(w[0], "request_timeout_s") && n == 2 && atoi(w[1]) > 0)
			c->request_s = atoi(w[1]);
		else if (!strcmp(w[0], "audit_sync_ms") && n == 2 && atoi(w[1]) >= 0)
			c->audit_sync_ms = atoi(w[1]);
		/* v1 settings, without effect since tokens are gone */
		else if ((!strcmp(w[0], "pool") && n == 3) || (!strcmp(w[0], "token_ttl_s") && n == 2))
			;
		else {
			fclose(f);
			return snprintf(err, len, "%s:%d: unknown or malformed setting '%s'", path, ln, w[0]), -1;
		}
	}
	fclose(f);
	if (!c->id[0] || !c->listen[0] || !c->cert[0] || !c->key[0] || !c->signing[0] || !c->storage_file[0] ||
	    !c->state[0] || !c->registry[0] || !c->ek_ca[0])
		return snprintf(err, len, "%s: id, listen, cert, key, signing_key, storage_key_file, state_dir, "
				"registry_pub and ek_ca are required", path), -1;
	if (!vm_id_ok(c->id))
		return snprintf(err, len, "%s: id must be [a-z0-9._-], at most 64", path), -1;
	return 0;
}

/* ---------- answers ---------- */

/* what /metrics counts (atomics: every worker thread answers) */
static uint64_t n_registered, n_released, n_refused, n_superseded;

struct reply {
	int status;
	char body[16384];
};

static void refuse(struct reply *r, int status, const char *event, const char *vm, const char *reason)
{
	r->status = status;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(reason));
	snprintf(r->body, sizeof(r->body), "%s", json_object_to_json_string(o));
	json_object_put(o);
	__atomic_add_fetch(&n_refused, 1, __ATOMIC_RELAXED);
	if (audit)
		vm_audit_append(audit, event, vm ? vm : "", "refused", reason);
	vm_log("event=%s vm=%s result=refused reason=\"%s\"", event, vm ? vm : "-", reason);
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
	snprintf(tmp, sizeof(tmp), "%s.tmp%lu", path, (unsigned long)pthread_self());
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -1;
	fchmod(fileno(f), 0600);
	int ok = fwrite(data, 1, len, f) == len;
	ok &= fflush(f) == 0 && fdatasync(fileno(f)) == 0;
	ok &= fclose(f) == 0;
	return ok && !rename(tmp, path) ? 0 : -1;
}

static char *read_file(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = malloc(max + 1);
	*len = buf ? fread(buf, 1, max, f) : 0;
	if (buf)
		buf[*len] = 0;
	fclose(f);
	return buf;
}

/* The stored policy of a VM, its registry signature checked on every load. */
static int load_policy(const char *vm, struct vm_policy *p, char **doc, char *sig64, size_t sigcap, char *why,
		       size_t whylen)
{
	char path[512];
	size_t dl = 0, sl = 0;
	uint8_t sig[80];

	snprintf(path, sizeof(path), "%s/%s.refs", cfg.state, vm);
	char *d = read_file(path, 16384, &dl);
	snprintf(path, sizeof(path), "%s/%s.refs.sig", cfg.state, vm);
	char *s = read_file(path, 200, &sl);
	int rc = -1;
	if (!d || !s)
		snprintf(why, whylen, "unknown VM (no reference values)");
	else {
		s[strcspn(s, "\r\n")] = 0;
		int n = vm_b64_decode(s, sig, sizeof(sig));
		if (!vm_policy_load(d, dl, sig, n < 0 ? 0 : n, registry_pub, p, why, whylen)) {
			if (strcmp(p->vm, vm))
				snprintf(why, whylen, "reference values: stored for another VM");
			else
				rc = 0;
		}
	}
	if (!rc && sig64)
		snprintf(sig64, sigcap, "%s", s);
	if (!rc && doc)
		*doc = d;
	else
		free(d);
	free(s);
	return rc;
}

/* Verified policies, kept while their files are unchanged (device, inode,
 * size, mtime of both): the signature check and the parsing happen once per
 * registration, not once per attestation.  A file edited on disk changes its
 * stat and is verified again. */
#define PCACHE 256
static struct pcache {
	char vm[VM_VMID_MAX + 1];
	struct stat ref, sig;
	struct vm_policy pol;
	EVP_PKEY *ak;           /* the registered AK, or NULL (bound by credential activation only) */
	char *doc, sig64[200];  /* doc != NULL: the entry holds a verified policy */
	uint8_t akname[34];     /* the last AK that activated a credential for this VM, */
	EVP_PKEY *akkey;        /* as an OpenSSL key (building one costs more than a quote check) */
	/* With the state directory watched (state_watch), what was read from it
	 * holds while no change to the slot's files was seen: gen moves on every
	 * change, and a copy read at generation g is good while gen == g. */
	unsigned gen, pol_gen, share_gen, tpm_gen;
	uint8_t *share;         /* the sealed share file, as stored (encrypted) */
	size_t share_len;
	int tpm_known;          /* the .tpm file: 0 unread, 1 read (absent: tpm_absent) */
	int tpm_absent;
	unsigned long tpm_reset, tpm_restart;
} pcache[PCACHE];
static pthread_mutex_t pcache_lock = PTHREAD_MUTEX_INITIALIZER;
/* inotify on the state directory (or -1: every request stat()s the files and
 * reads the share and TPM counts from disk) */
static int state_watch = -1;
static int watching;   /* 1 while the watch holds (atomic) */

static struct pcache *pcache_slot(const char *vm)
{
	unsigned h = 5381;
	for (const char *c = vm; *c; c++)
		h = h * 33 + (unsigned char)*c;
	return &pcache[h % PCACHE];
}

/* The AK named by the credential, as a key: from the cache, or built from
 * the TPM2B_PUBLIC sent (and kept).  NULL: let the verdict say what is wrong. */
static EVP_PKEY *ak_cached(const char *vm, const uint8_t name[34], const uint8_t *pub, size_t len)
{
	struct pcache *e = pcache_slot(vm);
	EVP_PKEY *k = NULL;
	uint8_t n[34];
	char why[8];

	pthread_mutex_lock(&pcache_lock);
	if (e->akkey && !strcmp(e->vm, vm) && !memcmp(e->akname, name, 34)) {
		EVP_PKEY_up_ref(e->akkey);
		k = e->akkey;
	}
	pthread_mutex_unlock(&pcache_lock);
	if (k || vm_ak_check(pub, len, NULL, n, &k, why, sizeof(why)))
		return k;
	if (memcmp(n, name, 34)) {
		EVP_PKEY_free(k);
		return NULL;
	}
	pthread_mutex_lock(&pcache_lock);
	if (!strcmp(e->vm, vm)) {
		EVP_PKEY_free(e->akkey);
		EVP_PKEY_up_ref(k);
		e->akkey = k;
		memcpy(e->akname, name, 34);
	}
	pthread_mutex_unlock(&pcache_lock);
	return k;
}

/* under pcache_lock */
static void pcache_drop_share(struct pcache *e)
{
	if (e->share) {
		OPENSSL_cleanse(e->share, e->share_len);
		free(e->share);
	}
	e->share = NULL;
	e->share_len = 0;
}

/* under pcache_lock */
static void pcache_forget_files(struct pcache *e)
{
	pcache_drop_share(e);
	e->tpm_known = 0;
}

/* A change to VM's files (seen by the watch, or made by a registration):
 * what the cache holds for it is read again at its next use. */
static void pcache_changed(const char *vm)
{
	pthread_mutex_lock(&pcache_lock);
	if (vm)
		pcache_slot(vm)->gen++;
	else
		for (int i = 0; i < PCACHE; i++)
			pcache[i].gen++;
	pthread_mutex_unlock(&pcache_lock);
}

/* The VM's sealed share (as stored, encrypted under the storage key): from
 * the cache while its file is unchanged, else from the file. */
static uint8_t *share_read(const char *vm, size_t *len)
{
	char path[512];
	struct pcache *e = pcache_slot(vm);
	int w = __atomic_load_n(&watching, __ATOMIC_ACQUIRE);
	uint8_t *out = NULL;
	unsigned g;

	pthread_mutex_lock(&pcache_lock);
	g = e->gen;
	if (w && e->share && e->share_gen == g && !strcmp(e->vm, vm) && (out = malloc(e->share_len))) {
		memcpy(out, e->share, e->share_len);
		*len = e->share_len;
	}
	pthread_mutex_unlock(&pcache_lock);
	if (out)
		return out;
	snprintf(path, sizeof(path), "%s/%s.share", cfg.state, vm);
	out = (uint8_t *)read_file(path, VM_SHARE_MAX + 64, len);
	if (!out || !w)
		return out;
	pthread_mutex_lock(&pcache_lock);
	if (!strcmp(e->vm, vm) && e->gen == g) {   /* the entry is this VM's (its policy was loaded) */
		uint8_t *c = malloc(*len);
		if (c) {
			pcache_drop_share(e);
			memcpy(c, out, *len);
			e->share = c;
			e->share_len = *len;
			e->share_gen = g;
		}
	}
	pthread_mutex_unlock(&pcache_lock);
	return out;
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void state_drain(void);
static int load_policy_cached(const char *vm, struct vm_policy *p, EVP_PKEY **ak, char **doc, char *sig64,
			      size_t sigcap, char *why, size_t whylen)
{
	char path[512];
	struct stat rs, ss;
	struct pcache *e = pcache_slot(vm);

	/* whatever changed before this request began is seen by it: the watch's
	 * pending events are taken now (one read, EAGAIN when there are none),
	 * not only when the event loop next looks */
	if (__atomic_load_n(&watching, __ATOMIC_ACQUIRE))
		state_drain();
	int w = __atomic_load_n(&watching, __ATOMIC_ACQUIRE), st = 0;
	unsigned g = 0;
	memset(&rs, 0, sizeof(rs));
	memset(&ss, 0, sizeof(ss));
	if (!w) {
		snprintf(path, sizeof(path), "%s/%s.refs", cfg.state, vm);
		st = stat(path, &rs);
		snprintf(path, sizeof(path), "%s/%s.refs.sig", cfg.state, vm);
		st |= stat(path, &ss);
	}
	if (!st) {
		pthread_mutex_lock(&pcache_lock);
		g = e->gen;
		if (e->doc && !strcmp(e->vm, vm) &&
		    (w ? e->pol_gen == g : same_file(&e->ref, &rs) && same_file(&e->sig, &ss))) {
			*p = e->pol;
			if (e->ak)
				EVP_PKEY_up_ref(e->ak);
			*ak = e->ak;
			*doc = strdup(e->doc);
			snprintf(sig64, sigcap, "%s", e->sig64);
			pthread_mutex_unlock(&pcache_lock);
			return *doc ? 0 : -1;
		}
		pthread_mutex_unlock(&pcache_lock);
	}
	if (load_policy(vm, p, doc, sig64, sigcap, why, whylen))
		return -1;
	*ak = NULL;
	if (p->ak_pem[0]) {
		BIO *b = BIO_new_mem_buf(p->ak_pem, -1);
		*ak = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		if (!*ak) {
			free(*doc);
			*doc = NULL;
			snprintf(why, whylen, "reference values: the registered AK is not a public key");
			return -1;
		}
	}
	if (!st) {
		pthread_mutex_lock(&pcache_lock);
		EVP_PKEY_free(e->ak);
		free(e->doc);
		if (strcmp(e->vm, vm)) {   /* another VM's entry: its AK, share and counts go too */
			EVP_PKEY_free(e->akkey);
			e->akkey = NULL;
			pcache_forget_files(e);
		}
		snprintf(e->vm, sizeof(e->vm), "%s", vm);
		e->ref = rs;
		e->sig = ss;
		e->pol_gen = w ? g : e->gen - 1;   /* read at g: good while nothing changed since */
		e->pol = *p;
		if (*ak)
			EVP_PKEY_up_ref(*ak);
		e->ak = *ak;
		e->doc = strdup(*doc);
		snprintf(e->sig64, sizeof(e->sig64), "%s", sig64);
		pthread_mutex_unlock(&pcache_lock);
	}
	return 0;
}

static void do_register(const char *body, const char *sig_b64, struct reply *r)
{
	uint8_t sig[80], rsig[80], wire[VM_SHARE_MAX], sealed[VM_SHARE_MAX + 64];
	struct vm_share sh;
	struct vm_policy pol, old;
	const char *why;
	char path[512], reason[256], aad[200], vm[VM_VMID_MAX + 1] = "";

	memset(&sh, 0, sizeof(sh));
	int sl = sig_b64 ? vm_b64_decode(sig_b64, sig, sizeof(sig)) : -1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = sl == 64 && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, registry_pub) == 1 &&
		 EVP_DigestVerify(md, sig, 64, (const uint8_t *)body, strlen(body)) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return refuse(r, 403, "register", NULL, "registration not signed by the image registry");
	json_object *j = json_tokener_parse(body);
	const char *jvm = j ? jstr(j, "vm") : NULL, *share = j ? jstr(j, "share") : NULL;
	const char *refs = j ? jstr(j, "refs") : NULL, *refs_sig = j ? jstr(j, "refs_sig") : NULL;
	if (jvm && vm_id_ok(jvm))
		snprintf(vm, sizeof(vm), "%s", jvm);   /* ours: j is freed before we log */
	if (!j || !vm[0] || !share || !refs || !refs_sig) {
		json_object_put(j);
		return refuse(r, 400, "register", vm[0] ? vm : NULL,
			      "registration: vm, refs, refs_sig and share required (protocol v2)");
	}
	int rl = vm_b64_decode(refs_sig, rsig, sizeof(rsig));
	if (vm_policy_load(refs, strlen(refs), rsig, rl < 0 ? 0 : rl, registry_pub, &pol, reason, sizeof(reason))) {
		json_object_put(j);
		return refuse(r, 400, "register", vm, reason);
	}
	if (strcmp(pol.vm, vm)) {
		json_object_put(j);
		return refuse(r, 400, "register", vm, "registration: reference values for another VM");
	}
	int wl = vm_b64_decode(share, wire, sizeof(wire));
	if (wl < 0 || vm_share_decode(wire, wl, &sh, &why) || strcmp(sh.vmid, vm) || vm_share_verify(&sh, registry_pub) ||
	    sh.t != pol.t || sh.n != pol.n) {
		OPENSSL_cleanse(wire, sizeof(wire));
		vm_share_wipe(&sh);
		json_object_put(j);
		return refuse(r, 400, "register", vm, "registration: the share is malformed, for another VM or threshold, "
				   "or not the registry's");
	}
	vm_share_wipe(&sh);
	pthread_mutex_lock(&reg_lock);
	if (!load_policy(vm, &old, NULL, NULL, 0, reason, sizeof(reason)) && pol.epoch <= old.epoch) {
		pthread_mutex_unlock(&reg_lock);
		OPENSSL_cleanse(wire, sizeof(wire));
		json_object_put(j);
		snprintf(reason, sizeof(reason), "registration: epoch %llu is not newer than the one held (%llu): replayed?",
			 (unsigned long long)pol.epoch, (unsigned long long)old.epoch);
		return refuse(r, 409, "register", vm, reason);
	}
	vm_share_aad(vm, pol.epoch, cfg.id, aad, sizeof(aad));
	int sealed_len = vm_seal_aad(storage_key, aad, wire, wl, sealed, sizeof(sealed));
	OPENSSL_cleanse(wire, sizeof(wire));
	snprintf(path, sizeof(path), "%s/%s.share", cfg.state, vm);
	int rc = sealed_len < 0 || write_file(path, sealed, sealed_len);
	snprintf(path, sizeof(path), "%s/%s.refs.sig", cfg.state, vm);
	rc |= write_file(path, refs_sig, strlen(refs_sig));
	snprintf(path, sizeof(path), "%s/%s.refs", cfg.state, vm);
	rc |= write_file(path, refs, strlen(refs));
	snprintf(path, sizeof(path), "%s/%s.tpm", cfg.state, vm);
	unlink(path);
	pcache_changed(vm);   /* now, not when the watch reports it */
	pthread_mutex_unlock(&reg_lock);
	json_object_put(j);
	if (rc)
		return refuse(r, 500, "register", vm, "cannot store the registration");
	char note[64];
	snprintf(note, sizeof(note), "epoch %llu", (unsigned long long)pol.epoch);
	if (audit)
		vm_audit_append(audit, "register", vm, "ok", note);
	__atomic_add_fetch(&n_registered, 1, __ATOMIC_RELAXED);
	vm_log("event=register vm=%s result=ok epoch=%llu", vm, (unsigned long long)pol.epoch);
	r->status = 200;
	snprintf(r->body, sizeof(r->body), "{\"ok\":true,\"epoch\":%llu}", (unsigned long long)pol.epoch);
}

/* base64 field into a fresh buffer; -1 when absent or malformed */
static int b64_field(json_object *j, const char *k, size_t max, uint8_t **out)
{
	const char *s = jstr(j, k);
	*out = NULL;
	if (!s || strlen(s) > 4 * (max / 3 + 1))
		return -1;
	*out = malloc(strlen(s) / 4 * 3 + 4);
	int n = *out ? vm_b64_decode(s, *out, strlen(s) / 4 * 3 + 3) : -1;
	if (n < 0 || (size_t)n > max) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return n;
}

/* The challenge: a nonce, and a credential made to the VM's EK (checked
 * against the vendor's CA and the EK recorded for the VM) for the AK the
 * client names; only that TPM can activate it (keys/ek.h). */
static void do_challenge(json_object *j, struct reply *r)
{
	const char *vm = jstr(j, "vm");
	char hx[2 * VM_NONCE_LEN + 1], why[256], sig64[200], *doc = NULL;
	uint8_t *ekc = NULL, *akb = NULL, id[32], name[34], cred[32], blob[256], sec[600];
	size_t bl = 0, secl = 0;
	struct vm_policy pol;
	EVP_PKEY *ek = NULL, *regak = NULL;
	long now = time(NULL);
	int slot = -1, open_for_vm = 0;

	if (!vm_id_ok(vm))
		return refuse(r, 404, "challenge", NULL, "unknown VM");
	if (load_policy_cached(vm, &pol, &regak, &doc, sig64, sizeof(sig64), why, sizeof(why)))
		return refuse(r, 404, "challenge", vm, why);
	free(doc);
	int el = b64_field(j, "ek_cert", VM_EK_CERT_MAX, &ekc), al = b64_field(j, "ak", 1024, &akb);
	if (el < 0 || al < 0) {
		refuse(r, 400, "challenge", vm, "challenge: ek_cert (DER) and ak (TPM2B_PUBLIC), base64, required");
		goto out;
	}
	if (vm_ek_verify(ek_ca, ekc, el, &ek, id, why, sizeof(why))) {
		refuse(r, 403, "challenge", vm, why);
		goto out;
	}
	if (CRYPTO_memcmp(id, pol.ek, 32)) {
		refuse(r, 403, "challenge", vm, "EK: not the one recorded for this VM (another TPM)");
		goto out;
	}
	if (vm_ak_check(akb, al, regak, name, NULL, why, sizeof(why))) {
		refuse(r, 403, "challenge", vm, why);
		goto out;
	}
	if (RAND_bytes(cred, sizeof(cred)) != 1 ||
	    vm_make_credential(ek, name, sizeof(name), cred, sizeof(cred), blob, sizeof(blob), &bl, sec, sizeof(sec), &secl)) {
		refuse(r, 500, "challenge", vm, "cannot make the credential");
		goto out;
	}
	uint32_t vmh = 2166136261u;
	for (const char *c = vm; *c; c++)
		vmh = (vmh ^ (unsigned char)*c) * 16777619u;
	/* A VM holds at most MAX_NONCES_PER_VM open challenges, so no VM fills
	 * the table; at the bound its newest challenge takes the place of its
	 * oldest.  Refusing instead (as before) let anyone holding the VM's EK
	 * certificate and AK, both public, keep it from attesting with 8
	 * requests a nonce_ttl_s, and let a booting VM whose answers were lost
	 * (a validator shedding load) lock itself out for as long. */
	int oldest = -1;
	pthread_mutex_lock(&nonce_lock);
	for (int i = 0; i < MAX_NONCES; i++) {
		int live = nonce_hot[i].live && nonce_hot[i].exp >= now;
		if (live && nonce_hot[i].vmh == vmh && !strcmp(nonces[i].vm, vm)) {
			open_for_vm++;
			if (oldest < 0 || (int32_t)(nonce_hot[i].live - nonce_hot[oldest].live) < 0)
				oldest = i;
		}
		if (!live && slot < 0)
			slot = i;
	}
	if (open_for_vm >= MAX_NONCES_PER_VM) {
		slot = oldest;
		OPENSSL_cleanse(nonces[slot].cred, sizeof(nonces[slot].cred));
		__atomic_add_fetch(&n_superseded, 1, __ATOMIC_RELAXED);
	} else if (slot < 0) {
		pthread_mutex_unlock(&nonce_lock);
		refuse(r, 429, "challenge", vm, "too many open challenges");
		goto out;
	}
	if (RAND_bytes(nonces[slot].nonce, VM_NONCE_LEN) != 1) {
		nonces[slot].vm[0] = 0;
		nonce_hot[slot].live = 0;
		pthread_mutex_unlock(&nonce_lock);
		refuse(r, 500, "challenge", vm, "no randomness");
		goto out;
	}
	nonces[slot].nonce[0] = slot >> 8;
	nonces[slot].nonce[1] = slot & 0xff;
	nonces[slot].vmh = vmh;
	snprintf(nonces[slot].vm, sizeof(nonces[slot].vm), "%s", vm);
	nonces[slot].exp = now + cfg.nonce_ttl;
	nonces[slot].used = 0;
	nonce_hot[slot].exp = nonces[slot].exp;
	nonce_hot[slot].vmh = vmh;
	if (!++nonce_seq)
		++nonce_seq;
	nonce_hot[slot].live = nonce_seq;
	memcpy(nonces[slot].ek, id, 32);
	memcpy(nonces[slot].ak_name, name, 34);
	memcpy(nonces[slot].cred, cred, 32);
	vm_hex(nonces[slot].nonce, VM_NONCE_LEN, hx);
	pthread_mutex_unlock(&nonce_lock);
	char b1[400], b2[900];
	vm_b64_encode(blob, bl, b1, sizeof(b1));
	vm_b64_encode(sec, secl, b2, sizeof(b2));
	r->status = 200;
	snprintf(r->body, sizeof(r->body), "{\"nonce\":\"%s\",\"expires_in\":%ld,\"credential\":\"%s\",\"secret\":\"%s\"}",
		 hx, cfg.nonce_ttl, b1, b2);
out:
	OPENSSL_cleanse(cred, sizeof(cred));
	EVP_PKEY_free(ek);
	EVP_PKEY_free(regak);
	free(ekc);
	free(akb);
}

/* The TPM's reset and restart counts never go back: compared with the last
 * ones seen for the VM (cached, or its .tpm file), recorded when they move.
 * 1: they went back (replayed evidence or rolled-back TPM state). */
static int tpm_went_back(const char *vm, unsigned reset, unsigned restart)
{
	char path[512], line[64];
	struct pcache *e = pcache_slot(vm);
	int w = __atomic_load_n(&watching, __ATOMIC_ACQUIRE), have = 0, known = 0;
	unsigned long lr = 0, ls = 0;
	unsigned g;

	pthread_mutex_lock(&tpm_lock);
	pthread_mutex_lock(&pcache_lock);
	g = e->gen;
	if (w && e->tpm_known && e->tpm_gen == g && !strcmp(e->vm, vm)) {
		known = 1;
		have = !e->tpm_absent;
		lr = e->tpm_reset;
		ls = e->tpm_restart;
	}
	pthread_mutex_unlock(&pcache_lock);
	snprintf(path, sizeof(path), "%s/%s.tpm", cfg.state, vm);
	if (!known) {
		FILE *f = fopen(path, "re");
		if (f) {
			have = 1;
			if (fscanf(f, "%lu %lu", &lr, &ls) != 2)
				lr = ls = 0;
			fclose(f);
		}
	}
	int back = reset < lr || (reset == lr && restart < ls);
	if (!back && (reset != lr || restart != ls || !have)) {
		snprintf(line, sizeof(line), "%u %u\n", reset, restart);
		if (!write_file(path, line, strlen(line))) {
			lr = reset;
			ls = restart;
			have = 1;
		}
	}
	if (w) {
		pthread_mutex_lock(&pcache_lock);
		if (!strcmp(e->vm, vm) && e->gen == g) {
			e->tpm_known = 1;
			e->tpm_absent = !have;
			e->tpm_reset = lr;
			e->tpm_restart = ls;
			e->tpm_gen = g;
		}
		pthread_mutex_unlock(&pcache_lock);
	}
	pthread_mutex_unlock(&tpm_lock);
	return back;
}

static void do_attest(json_object *j, struct reply *r)
{
	const char *vm = jstr(j, "vm"), *nonce_hex = jstr(j, "nonce"), *pub_hex = jstr(j, "pub");
	uint8_t nonce[VM_NONCE_LEN], pub[32], *ak = NULL, *att = NULL, *sig = NULL, *evl = NULL;
	uint8_t wire[VM_SHARE_MAX], boxed[VM_SHARE_MAX + 64];
	uint8_t slot_ek[32], slot_name[34], slot_cred[32] = { 0 }, got_cred[32] = { 0 };
	char why[256], aad[200], sig64[200], *doc = NULL;
	struct vm_policy pol;
	struct vm_quote_info qi;
	long now = time(NULL);
	size_t len;

	if (!vm_id_ok(vm))
		return refuse(r, 400, "attest", NULL, "evidence: bad or missing VM id");
	if (!nonce_hex || vm_unhex(nonce_hex, nonce, VM_NONCE_LEN) || !pub_hex || vm_unhex(pub_hex, pub, 32))
		return refuse(r, 400, "attest", vm, "evidence: nonce and pub (hex) required (protocol v2)");
	/* the nonce: ours, for this VM, fresh, once */
	int found = -1;
	pthread_mutex_lock(&nonce_lock);
	int i = nonce[0] << 8 | nonce[1];   /* the slot the challenge wrote it in; the other 30 bytes are random */
	if (i < MAX_NONCES && nonces[i].vm[0] && !strcmp(nonces[i].vm, vm) &&
	    !CRYPTO_memcmp(nonces[i].nonce, nonce, VM_NONCE_LEN))
		found = i;
	int stale = found < 0 || nonces[found].used || nonces[found].exp < now;
	if (found >= 0) {
		nonces[found].used = 1;
		nonce_hot[found].live = 0;
		memcpy(slot_ek, nonces[found].ek, 32);
		memcpy(slot_name, nonces[found].ak_name, 34);
		memcpy(slot_cred, nonces[found].cred, 32);
		OPENSSL_cleanse(nonces[found].cred, 32);
	}
	pthread_mutex_unlock(&nonce_lock);
	if (stale)
		return refuse(r, 403, "attest", vm, "nonce unknown, already used or expired");
	const char *cred_hex = jstr(j, "cred");
	int have_cred = cred_hex && !vm_unhex(cred_hex, got_cred, 32);
	int akl = b64_field(j, "ak", 1024, &ak), al = b64_field(j, "attest", 4096, &att);
	int sl = b64_field(j, "sig", 1024, &sig), el = b64_field(j, "eventlog", VM_EVLOG_MAX, &evl);
	EVP_PKEY *akp = NULL;
	if (akl < 0 || al < 0 || sl < 0 || el < 0) {
		refuse(r, 400, "attest", vm, "evidence: ak, attest, sig and eventlog (base64) required");
		goto out;
	}
	if (load_policy_cached(vm, &pol, &akp, &doc, sig64, sizeof(sig64), why, sizeof(why))) {
		refuse(r, 403, "attest", vm, why);
		goto out;
	}
	if (CRYPTO_memcmp(slot_ek, pol.ek, 32)) {
		refuse(r, 403, "attest", vm, "EK: the VM's recorded EK changed since the challenge");
		goto out;
	}
	if (!akp)   /* no registered AK: the one the credential was made for */
		akp = ak_cached(vm, slot_name, ak, akl);
	struct vm_evidence ev = { .nonce = nonce, .pub = pub, .ak = ak, .aklen = akl, .attest = att, .alen = al,
				  .sig = sig, .slen = sl, .evlog = evl, .evlen = el, .cred_name = slot_name,
				  .cred_want = slot_cred, .cred_want_len = 32, .cred_got = have_cred ? got_cred : NULL,
				  .cred_got_len = have_cred ? 32 : 0 };
	int vr = vm_evidence_verify(&pol, akp, &ev, &qi, why, sizeof(why));
	OPENSSL_cleanse(slot_cred, sizeof(slot_cred));
	if (vr) {
		refuse(r, 403, "attest", vm, why);
		goto out;
	}
	/* the TPM's reset and restart counts never go back */
	int back = tpm_went_back(vm, qi.reset_count, qi.restart_count);
	if (back) {
		refuse(r, 403, "attest", vm, "TPM reset/restart count went backwards (replayed or rolled-back state)");
		goto out;
	}
	/* the share: sealed for this VM, this epoch and this holder only */
	uint8_t *sealed = share_read(vm, &len);
	vm_share_aad(vm, pol.epoch, cfg.id, aad, sizeof(aad));
	int wl = sealed ? vm_unseal_aad(storage_key, aad, sealed, len, wire, sizeof(wire)) : -1;
	free(sealed);
	if (wl < 0) {
		refuse(r, 404, "release", vm, "no share stored for this VM and epoch (or it does not unseal here)");
		goto out;
	}
	int bl = vm_box_seal(pub, nonce, aad, wire, wl, boxed, sizeof(boxed));
	OPENSSL_cleanse(wire, sizeof(wire));
	char b64[2 * sizeof(boxed)];
	if (bl < 0 || vm_b64_encode(boxed, bl, b64, sizeof(b64)) < 0) {
		refuse(r, 500, "release", vm, "cannot box the share");
		goto out;
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "box", json_object_new_string(b64));
	json_object_object_add(o, "refs", json_object_new_string(doc));
	json_object_object_add(o, "refs_sig", json_object_new_string(sig64));
	json_object_object_add(o, "epoch", json_object_new_int64(pol.epoch));
	json_object_object_add(o, "validator", json_object_new_string(cfg.id));
	const char *js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(js) < sizeof(r->body)) {
		snprintf(r->body, sizeof(r->body), "%s", js);
		r->status = 200;
	}
	json_object_put(o);
	if (r->status != 200) {
		refuse(r, 500, "release", vm, "answer too large");
		goto out;
	}
	char note[64];
	snprintf(note, sizeof(note), "epoch %llu reset_count %u", (unsigned long long)pol.epoch, qi.reset_count);
	if (audit)
		vm_audit_append(audit, "release", vm, "ok", note);
	__atomic_add_fetch(&n_released, 1, __ATOMIC_RELAXED);
	vm_log("event=release vm=%s result=ok epoch=%llu reset_count=%u", vm, (unsigned long long)pol.epoch, qi.reset_count);
out:
	OPENSSL_cleanse(slot_cred, sizeof(slot_cred));
	OPENSSL_cleanse(got_cred, sizeof(got_cred));
	EVP_PKEY_free(akp);
	free(ak);
	free(att);
	free(sig);
	free(evl);
	free(doc);
}

/* One request, whatever the transport: (path, body, signature header) ->
 * reply.  Pure apart from the state directory; fuzzed. */
static void handle(const char *path, const char *body, size_t blen, const char *sighdr, struct reply *rep)
{
	rep->status = 400;
	rep->body[0] = 0;
	if (strlen(body) != blen)
		return refuse(rep, 400, "request", NULL, "body holds a NUL byte");
	for (size_t i = 0; i < blen; i++) {
		unsigned char c = body[i];
		if (c >= 0x7f || (c < 0x20 && c != '\n' && c != '\r' && c != '\t'))
			return refuse(rep, 400, "request", NULL, "body holds non-ASCII or control bytes");
	}
	if (!strcmp(path, "/v1/register"))
		return do_register(body, sighdr, rep);
	if (!strcmp(path, "/v1/share"))
		return refuse(rep, 410, "release", NULL, "bearer tokens are no longer honoured: each holder verifies "
				    "the evidence itself (POST /v1/attest, protocol v2)");
	json_tokener *tk = json_tokener_new();
	json_object *j = tk ? json_tokener_parse_ex(tk, body, blen) : NULL;
	if (tk && json_tokener_get_error(tk) != json_tokener_success) {
		json_object_put(j);
		j = NULL;
	}
	json_tokener_free(tk);
	if (!j || !json_object_is_type(j, json_type_object))
		refuse(rep, 400, "request", NULL, "body is not a JSON object");
	else if (!strcmp(path, "/v1/challenge"))
		do_challenge(j, rep);
	else if (!strcmp(path, "/v1/attest"))
		do_attest(j, rep);
	else
		refuse(rep, 404, "request", NULL, "no such endpoint");
	json_object_put(j);
}

/* ---------- HTTPS: libevent ---------- */

static SSL_CTX *tls;

/* The whole-request deadline (request_timeout_s): from the connection's
 * accept, then from each answer, the next request must be read whole within
 * it, however slowly its bytes trickle in (the idle timeout alone restarts
 * with every byte).  A timer per connection; when it fires, the socket is
 * shut down and evhttp closes the connection as for a client that left.  It
 * is ex_data of the connection's SSL and freed with it (the SSL goes when the
 * bufferevent is finalised, after its socket is closed), so the timer never
 * outlives the connection and the socket it shuts is never another's. */
struct deadline {
	struct event *ev;
	struct bufferevent *bev;
};
static int deadline_idx = -1;

/* The deadline lives as long as the connection's SSL: freed with it, however
 * the connection ends (answered, closed by the client half-way, idle, cut),
 * so an abandoned connection gives its descriptor back at once. */
static void deadline_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct deadline *d = ptr;
	if (d) {
		event_free(d->ev);
		free(d);
	}
}

static void on_deadline(evutil_socket_t s, short what, void *arg)
{
	struct deadline *d = arg;
	evutil_socket_t fd = bufferevent_getfd(d->bev);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);   /* evhttp sees the end and closes (and frees d with the SSL) */
}

/* a request was read whole: the next one gets a fresh deadline */
static void deadline_next(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct deadline *d = ssl ? SSL_get_ex_data(ssl, deadline_idx) : NULL;
	if (!d)
		return;
	struct timeval tv = { .tv_sec = cfg.request_s };
	evtimer_add(d->ev, &tv);
}

static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(tls);
	struct bufferevent *bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
									BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	struct deadline *d = calloc(1, sizeof(*d));
	if (d && (d->ev = evtimer_new(base, on_deadline, d)) && SSL_set_ex_data(ssl, deadline_idx, d) == 1) {
		struct timeval tv = { .tv_sec = cfg.request_s };
		d->bev = bev;   /* no reference: d goes before bev does */
		evtimer_add(d->ev, &tv);
	} else {   /* no deadline, still served: the idle timeout holds */
		if (d && d->ev)
			event_free(d->ev);
		free(d);
	}
	return bev;
}

static void send_reply(struct evhttp_request *req, struct reply *rep)
{
	struct evbuffer *out = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evbuffer_add(out, rep->body, strlen(rep->body));
	/* headers and body in one chain: one TLS record and one write() for the
	 * whole answer (bufferevent_openssl writes each chain separately); the
	 * connection is looked up first: without one, send_reply frees req */
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	evhttp_send_reply(req, rep->status, rep->status == 200 ? "OK" : "Refused", out);
	evbuffer_free(out);
	if (bev)
		evbuffer_pullup(bufferevent_get_output(bev), -1);
	OPENSSL_cleanse(rep->body, sizeof(rep->body));
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct reply *rep = malloc(sizeof(*rep));
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t blen = evbuffer_get_length(in);

	deadline_next(req);
	if (!rep) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	rep->status = 400;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		refuse(rep, 405, "request", NULL, "only POST");
	} else {
		char *body = malloc(blen + 1);
		if (!body) {
			refuse(rep, 500, "request", NULL, "out of memory");
		} else {
			evbuffer_remove(in, body, blen);
			body[blen] = 0;
			char path[64];
			snprintf(path, sizeof(path), "%s", uri ? uri : "");
			handle(path, body, blen, evhttp_find_header(evhttp_request_get_input_headers(req), "X-Veil-Signature"),
			       rep);
			OPENSSL_cleanse(body, blen);
			free(body);
		}
	}
	send_reply(req, rep);
	free(rep);
}

/* NAME.refs, NAME.refs.sig, NAME.share, NAME.tpm -> NAME (0), else -1 */
static int state_file_vm(const char *name, char vm[VM_VMID_MAX + 1])
{
	static const char *const sfx[] = { ".refs", ".refs.sig", ".share", ".tpm" };
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t l = strlen(sfx[i]);
		if (n > l && n - l <= VM_VMID_MAX && !strcmp(name + n - l, sfx[i])) {
			memcpy(vm, name, n - l);
			vm[n - l] = 0;
			return 0;
		}
	}
	return -1;
}

/* The state directory changed: the VM whose file it was is read again at its
 * next use; a lost event (queue overflow) drops every entry; a watch that
 * went away (directory moved or removed) turns caching off. */
static void state_drain(void)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	char vm[VM_VMID_MAX + 1];
	ssize_t n;

	while ((n = read(state_watch, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p + sizeof(struct inotify_event) <= buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
				if (__atomic_exchange_n(&watching, 0, __ATOMIC_ACQ_REL))
					vm_log("event=state_watch result=lost dir=%s (files are checked on every request)", cfg.state);
				pcache_changed(NULL);
			} else if (ev->mask & IN_Q_OVERFLOW) {
				pcache_changed(NULL);
			} else if (ev->len && !state_file_vm(ev->name, vm)) {
				pcache_changed(vm);
			}
		}
	}
}

static void on_state_change(evutil_socket_t fd, short what, void *arg)
{
	state_drain();
}

struct worker {
	pthread_t th;
	struct event_base *base;
	struct evhttp *http;
	int fd;
};
static struct worker workers[MAX_WORKERS];
static int nworkers;

static int listen_socket(const struct addrinfo *ai)
{
	int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));   /* inherited by accepted sockets */
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int worker_init(struct worker *w)
{
	/* the epoll change list: libevent turns a connection's add/modify/delete
	 * of its events within one loop pass into at most one epoll_ctl (evhttp
	 * and bufferevent_openssl flip read/write interest several times per
	 * request; each flip was a system call).  Safe here: no descriptor is
	 * dup()ed while registered. */
	struct event_config *ec = event_config_new();
	if (ec)
		event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = ec ? event_base_new_with_config(ec) : NULL;
	if (ec)
		event_config_free(ec);
	if (!w->base)
		w->base = event_base_new();
	w->http = w->base ? evhttp_new(w->base) : NULL;
	if (!w->http)
		return -1;
	evhttp_set_bevcb(w->http, new_conn, NULL);
	evhttp_set_gencb(w->http, on_request, NULL);
	evhttp_set_max_headers_size(w->http, MAX_HEADERS);
	evhttp_set_max_body_size(w->http, MAX_BODY);
	evhttp_set_timeout(w->http, cfg.idle_s);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
	return evhttp_accept_socket(w->http, w->fd) ? -1 : 0;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	event_base_dispatch(w->base);
	return NULL;
}

static const char *config_path;
static uint64_t reloads_ok, reloads_rejected;

/* SIGHUP: the file read again and checked whole; what can change while
 * requests run (nonce_ttl_s, request_timeout_s) does, the rest needs a
 * restart.  A bad file changes nothing. */
static void reload(void)
{
	struct vcfg n;
	char err[512];

	if (load_config(config_path, &n, err, sizeof(err))) {
		reloads_rejected++;
		vm_log("event=reload_rejected reason=\"%s\"", err);
		return;
	}
	pthread_mutex_lock(&nonce_lock);
	cfg.nonce_ttl = n.nonce_ttl;   /* read under nonce_lock */
	pthread_mutex_unlock(&nonce_lock);
	__atomic_store_n(&cfg.request_s, n.request_s, __ATOMIC_RELAXED);
	const char *const was[] = { cfg.id, cfg.listen, cfg.cert, cfg.key, cfg.signing, cfg.storage_file, cfg.state,
				    cfg.registry, cfg.ek_ca, cfg.ek_crl, cfg.pidfile, cfg.metrics };
	const char *const now[] = { n.id, n.listen, n.cert, n.key, n.signing, n.storage_file, n.state,
				    n.registry, n.ek_ca, n.ek_crl, n.pidfile, n.metrics };
	int differs = n.workers != cfg.workers || n.idle_s != cfg.idle_s || n.audit_sync_ms != cfg.audit_sync_ms;
	for (size_t i = 0; i < sizeof(was) / sizeof(was[0]); i++)
		differs |= strcmp(was[i], now[i]) != 0;
	if (differs)
		vm_log("event=reload_note reason=\"only nonce_ttl_s and request_timeout_s change without a restart\"");
	reloads_ok++;
	vm_log("event=reloaded nonce_ttl_s=%ld request_timeout_s=%d", n.nonce_ttl, n.request_s);
}

static uint64_t started;

/* GET /metrics on 'metrics' (plain HTTP, worker 0's thread) */
static void on_metrics(struct evhttp_request *req, void *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct evbuffer *b = evbuffer_new();

	if (!f || !b) {
		if (f)
			fclose(f);
		free(text);
		evbuffer_free(b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	fprintf(f, "# HELP veilmesh_validator_requests_total Requests answered, by result.\n"
		   "# TYPE veilmesh_validator_requests_total counter\n"
		   "veilmesh_validator_requests_total{result=\"registered\"} %llu\n"
		   "veilmesh_validator_requests_total{result=\"released\"} %llu\n"
		   "veilmesh_validator_requests_total{result=\"refused\"} %llu\n",
		(unsigned long long)__atomic_load_n(&n_registered, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&n_released, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&n_refused, __ATOMIC_RELAXED));
	fprintf(f, "# HELP veilmesh_validator_challenges_superseded_total Open challenges a VM's newer one replaced (its bound reached).\n"
		   "# TYPE veilmesh_validator_challenges_superseded_total counter\n"
		   "veilmesh_validator_challenges_superseded_total %llu\n",
		(unsigned long long)__atomic_load_n(&n_superseded, __ATOMIC_RELAXED));
	vm_metrics_daemon(f, reloads_ok, reloads_rejected, started);
	fclose(f);
	evbuffer_add(b, text, len);
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* the skeleton's self-pipe (common/daemon.h): stop or reload, in worker 0's thread */
static void on_signal_fd(evutil_socket_t s, short ev, void *arg)
{
	int what = vm_daemon_signal_take();
	if (what & VM_SIG_STOP)
		for (int i = 0; i < nworkers; i++)
			event_base_loopbreak(workers[i].base);
	else if (what & VM_SIG_RELOAD)
		reload();
}

static int key_file_private(const char *path, char *err, size_t len)
{
	struct stat sb;
	if (stat(path, &sb))
		return snprintf(err, len, "%s: %s", path, strerror(errno)), -1;
	if (sb.st_mode & 077)
		return snprintf(err, len, "%s: mode %03o: a key file must be readable by its owner only (chmod 600)", path,
				sb.st_mode & 0777), -1;
	return 0;
}

#ifndef VEIL_VALIDATOR_NO_MAIN
static void usage(FILE *f)
{
	fprintf(f,
		"usage: veil-validator --config FILE [options]\n"
		"\n"
		"Holds key shares; releases one only on its own verification of a VM's firmware-rooted\n"
		"evidence, boxed to the VM's ephemeral key (docs/attestation.md).\n"
		"\n"
		"  -c, --config FILE     config file (veil-validator.conf(5), docs/veil-validator.conf.example)\n"
		"  -n, --check           check the config file and the files it names, and exit\n"
		"      --verify-audit    check the audit log's chain and signatures, and exit\n"
		"      --pidfile FILE    write the pid to FILE while running (removed at exit;\n"
		"                        overrides the config's pidfile)\n"
		"  -h, --help            this text\n"
		"\n"
		"Signals: SIGHUP reloads the config (nonce_ttl_s and request_timeout_s; a bad\n"
		"file changes nothing), SIGTERM/SIGINT stop.\n"
		"Exit codes: 0 stopped, 1 runtime failure, 2 bad usage or config.\n");
}

static int verify_audit;
static int take_opt(void *arg, int opt, const char *val)
{
	*(int *)arg = opt == 'A';
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option extra[] = { { "verify-audit", no_argument, NULL, 'A' }, { 0 } };
	const struct vm_daemon_cli cli = { .usage = usage, .extra = extra, .extra_fn = take_opt, .arg = &verify_audit };
	struct vm_daemon_opts opt;
	char err[512];
	int code;

	vm_prog_name = "veil-validator";
	if (vm_daemon_parse(argc, argv, &cli, &opt, &code))
		return code;
	const char *config = config_path = opt.config;
	if (load_config(config, &cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-validator: %s\n", err);
		return 2;
	}
	static char who[96];   /* the log lines name the holder */
	snprintf(who, sizeof(who), "veil-validator[%s]", cfg.id);
	vm_prog_name = who;
	if (key_file_private(cfg.storage_file, err, sizeof(err)) || key_file_private(cfg.signing, err, sizeof(err)) ||
	    key_file_private(cfg.key, err, sizeof(err))) {
		fprintf(stderr, "veil-validator: %s\n", err);
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
	if (!(ek_ca = vm_ek_ca_load(cfg.ek_ca, err, sizeof(err)))) {
		fprintf(stderr, "veil-validator: %s: ek_ca: %s\n", config, err);
		return 2;
	}
	if (cfg.ek_crl[0] && vm_ek_ca_load_crl(ek_ca, cfg.ek_crl, err, sizeof(err))) {
		fprintf(stderr, "veil-validator: %s: ek_crl: %s\n", config, err);
		return 2;
	}
	sign_key = vm_load_priv(cfg.signing);
	registry_pub = vm_load_pub(cfg.registry);
	if (kl != 32 || !sign_key || !registry_pub) {
		fprintf(stderr, "veil-validator: %s: storage key (64 hex digits), signing key or registry key unreadable\n",
			config);
		return 2;
	}
	if (opt.check) {   /* and the TLS pair; nothing written, nothing opened for writing */
		SSL_CTX *t = SSL_CTX_new(TLS_server_method());
		int ok = t && SSL_CTX_use_certificate_chain_file(t, cfg.cert) == 1 &&
			 SSL_CTX_use_PrivateKey_file(t, cfg.key, SSL_FILETYPE_PEM) == 1 && SSL_CTX_check_private_key(t) == 1;
		SSL_CTX_free(t);
		if (!ok) {
			fprintf(stderr, "veil-validator: %s: cannot use TLS certificate/key\n", config);
			return 2;
		}
		if (!strrchr(cfg.listen, ':')) {
			fprintf(stderr, "veil-validator: %s: listen takes ADDR:PORT\n", config);
			return 2;
		}
		printf("%s: ok (validator %s, listen %s, state_dir %s)\n", config, cfg.id, cfg.listen, cfg.state);
		return 0;
	}
	mkdir(cfg.state, 0700);
	char audit_path[300];
	snprintf(audit_path, sizeof(audit_path), "%s/audit.log", cfg.state);
	if (verify_audit) {   /* the chain and every entry's signature, with our own key's public half */
		char why[256];
		long n = vm_audit_verify_signed(audit_path, sign_key, why, sizeof(why));
		if (n < 0)
			fprintf(stderr, "veil-validator: %s: %s\n", audit_path, why);
		else
			printf("%s: %ld entries, chained and signed by %s\n", audit_path, n, cfg.id);
		return n < 0 ? 1 : 0;
	}
	if (!(audit = vm_audit_open(audit_path, sign_key)) || vm_audit_group_sync(audit, cfg.audit_sync_ms)) {
		fprintf(stderr, "veil-validator: %s: %s\n", audit_path, strerror(errno));
		return 1;
	}

	deadline_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, deadline_free);
	tls = SSL_CTX_new(TLS_server_method());
	SSL_CTX_set_min_proto_version(tls, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(tls, TLS1_3_VERSION);
	/* resumption by stateless tickets, one per connection: no server-side
	 * session cache to fill, lock and flush */
	SSL_CTX_set_session_cache_mode(tls, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(tls, 1);
	if (SSL_CTX_use_certificate_chain_file(tls, cfg.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(tls, cfg.key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "veil-validator: %s: cannot use TLS certificate/key\n", config);
		return 2;
	}
	char host[64];
	const char *c = strrchr(cfg.listen, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(c ? c - cfg.listen : 0), cfg.listen);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE }, *ai;
	if (!c || getaddrinfo(host, c + 1, &hints, &ai)) {
		fprintf(stderr, "veil-validator: %s: listen takes ADDR:PORT\n", config);
		return 2;
	}
	{   /* one descriptor per connection: as many as we are allowed */
		struct rlimit rl;
		if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
	nworkers = cfg.workers ? cfg.workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nworkers < 1)
		nworkers = 1;
	if (nworkers > MAX_WORKERS)
		nworkers = MAX_WORKERS;
	for (int i = 0; i < nworkers; i++) {
		workers[i].fd = listen_socket(ai);
		if (workers[i].fd < 0 || worker_init(&workers[i])) {
			fprintf(stderr, "veil-validator: listen %s: %s\n", cfg.listen, strerror(errno));
			return 1;
		}
	}
	freeaddrinfo(ai);
	/* what a VM's files hold is cached while the watch sees no change to them */
	struct event *sev = NULL;
	state_watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (state_watch >= 0 &&
	    inotify_add_watch(state_watch, cfg.state, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
							   IN_ATTRIB | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) >= 0 &&
	    (sev = event_new(workers[0].base, state_watch, EV_READ | EV_PERSIST, on_state_change, NULL)) &&
	    !event_add(sev, NULL))
		watching = 1;
	else
		vm_log("event=state_watch result=off dir=%s reason=\"%s\" (files are checked on every request)", cfg.state,
		      strerror(errno));
	if (vm_daemon_pidfile(opt.pidfile ? opt.pidfile : cfg.pidfile, err, sizeof(err))) {
		vm_log("event=error what=pidfile reason=\"%s\"", err);
		return 1;
	}
	vm_daemon_signals();
	struct event *ssig = event_new(workers[0].base, vm_daemon_signal_fd(), EV_READ | EV_PERSIST, on_signal_fd, NULL);
	if (!ssig || event_add(ssig, NULL)) {
		vm_log("event=error what=signals reason=\"cannot watch the signal pipe\"");
		return 1;
	}
	struct evhttp *met = NULL;
	if (cfg.metrics[0] && strcmp(cfg.metrics, "off")) {
		char mh[64];
		const char *mc = strrchr(cfg.metrics, ':');
		snprintf(mh, sizeof(mh), "%.*s", (int)(mc ? mc - cfg.metrics : 0), cfg.metrics);
		if (mh[0] == '[' && mh[strlen(mh) - 1] == ']') {
			memmove(mh, mh + 1, strlen(mh));
			mh[strlen(mh) - 1] = 0;
		}
		if (!mc || !(met = evhttp_new(workers[0].base)) || evhttp_bind_socket(met, mh, (ev_uint16_t)atoi(mc + 1))) {
			vm_log("event=error what=metrics listen=%s reason=\"%s\"", cfg.metrics, strerror(errno));
			return 1;
		}
		evhttp_set_allowed_methods(met, EVHTTP_REQ_GET);
		evhttp_set_cb(met, "/metrics", on_metrics, NULL);
	}
	started = (uint64_t)time(NULL);
	vm_log("event=started listen=%s workers=%d state=%s metrics=%s", cfg.listen, nworkers, cfg.state,
	       cfg.metrics[0] ? cfg.metrics : "off");
	for (int i = 1; i < nworkers; i++)
		pthread_create(&workers[i].th, NULL, worker_run, &workers[i]);
	worker_run(&workers[0]);
	for (int i = 1; i < nworkers; i++)
		pthread_join(workers[i].th, NULL);
	vm_log("event=stopped");
	event_free(ssig);
	if (met)
		evhttp_free(met);
	if (sev)
		event_free(sev);
	if (state_watch >= 0)
		close(state_watch);
	pthread_mutex_lock(&pcache_lock);
	for (int i = 0; i < PCACHE; i++)
		pcache_forget_files(&pcache[i]);
	pthread_mutex_unlock(&pcache_lock);
	vm_audit_close(audit);
	OPENSSL_cleanse(storage_key, sizeof(storage_key));
	return 0;
}
#endif
