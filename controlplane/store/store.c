/* The cluster store over libnats' JetStream key-value API (docs/store.md). */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <nats/nats.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

struct vs_store {
	natsConnection *nc;
	jsCtx *js;
	int replicas;
	int timeout_ms;
	int audit_ready;
	pthread_mutex_t lock;
};

struct vs_kv {
	vs_store *s;
	kvStore *kv;
	char bucket[64];
};

struct vs_watcher {
	vs_kv *kv;
	char *filter;
	vs_watch_fn fn;
	void (*synced)(void *);
	void *arg;
	pthread_t th;
	pthread_mutex_t lock;
	kvWatcher *w;
	volatile int stop;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *nerr(natsStatus st)
{
	const char *t = nats_GetLastError(NULL);
	return t && *t ? t : natsStatus_GetText(st);
}

const char *vs_strerror(int rc)
{
	switch (rc) {
	case VS_OK: return "ok";
	case VS_NOTFOUND: return "not found";
	case VS_EXISTS: return "key exists";
	case VS_CONFLICT: return "revision moved (stale write refused)";
	case VS_UNKNOWN: return "timed out: outcome unknown";
	case VS_BADSIG: return "bad envelope or signature";
	case VS_REPLAY: return "replayed or stale envelope";
	default: return "store error";
	}
}

/* libnats reports a CAS failure as NATS_ERR with the server's text. */
static int map_status(natsStatus st)
{
	if (st == NATS_OK)
		return VS_OK;
	if (st == NATS_NOT_FOUND)
		return VS_NOTFOUND;
	if (st == NATS_TIMEOUT || st == NATS_NO_RESPONDERS)
		return VS_UNKNOWN;
	const char *t = nats_GetLastError(NULL);
	if (t && (strstr(t, "wrong last sequence") || strstr(t, "10071")))
		return VS_CONFLICT;
	if (t && strstr(t, "key exists"))
		return VS_EXISTS;
	return VS_ERR;
}

int vs_connect(vs_store **out, const struct vs_opts *o, char *err, size_t errlen)
{
	natsOptions *no = NULL;
	natsStatus st;
	vs_store *s = calloc(1, sizeof(*s));
	char *urls = NULL;
	const char *list[16];
	int n = 0;

	*out = NULL;
	if (!s || !o || !o->urls || !*o->urls) {
		free(s);
		seterr(err, errlen, "store: no server URL");
		return VS_ERR;
	}
	s->replicas = o->replicas > 0 ? o->replicas : 1;
	s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
	pthread_mutex_init(&s->lock, NULL);
	urls = strdup(o->urls);
	for (char *save = NULL, *t = strtok_r(urls, ", ", &save); t && n < 16; t = strtok_r(NULL, ", ", &save))
		list[n++] = t;
	st = natsOptions_Create(&no);
	if (st == NATS_OK)
		st = natsOptions_SetServers(no, list, n);
	if (st == NATS_OK)
		st = natsOptions_SetTimeout(no, s->timeout_ms);
	if (st == NATS_OK && o->name)
		st = natsOptions_SetName(no, o->name);
	if (st == NATS_OK)
		st = natsOptions_SetMaxReconnect(no, -1);   /* forever: a daemon outlives a server restart */
	if (st == NATS_OK)
		st = natsOptions_SetReconnectWait(no, 250);
	if (st == NATS_OK)
		st = natsOptions_SetRetryOnFailedConnect(no, false, NULL, NULL);
	if (st == NATS_OK && o->creds)
		st = natsOptions_SetUserCredentialsFromFiles(no, o->creds, NULL);
	if (st == NATS_OK)
		st = natsConnection_Connect(&s->nc, no);
	if (st == NATS_OK) {
		jsOptions jo;
		jsOptions_Init(&jo);
		jo.Wait = s->timeout_ms;
		st = natsConnection_JetStream(&s->js, s->nc, &jo);
	}
	natsOptions_Destroy(no);
	if (st != NATS_OK) {
		seterr(err, errlen, "store %s: %s", o->urls, nerr(st));
		free(urls);
		vs_close(s);
		return VS_ERR;
	}
	free(urls);
	*out = s;
	return VS_OK;
}

void vs_close(vs_store *s)
{
	if (!s)
		return;
	if (s->js)
		jsCtx_Destroy(s->js);
	if (s->nc) {
		natsConnection_FlushTimeout(s->nc, 500);
		natsConnection_Destroy(s->nc);
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int vs_bucket(vs_store *s, const char *bucket, int create, vs_kv **out, char *err, size_t errlen)
{
	kvStore *kv = NULL;
	natsStatus st = js_KeyValue(&kv, s->js, bucket);

	*out = NULL;
	if (st != NATS_OK && create) {
		kvConfig kc;
		kvConfig_Init(&kc);
		kc.Bucket = bucket;
		kc.History = 1;
		kc.Replicas = s->replicas;
		kc.StorageType = js_FileStorage;
		st = js_CreateKeyValue(&kv, s->js, &kc);
		if (st != NATS_OK)   /* another process may have created it meanwhile */
			st = js_KeyValue(&kv, s->js, bucket);
	}
	if (st != NATS_OK) {
		seterr(err, errlen, "store: bucket %s: %s", bucket, nerr(st));
		return st == NATS_NOT_FOUND ? VS_NOTFOUND : VS_ERR;
	}
	vs_kv *k = calloc(1, sizeof(*k));
	if (!k) {
		kvStore_Destroy(kv);
		return VS_ERR;
	}
	k->s = s;
	k->kv = kv;
	snprintf(k->bucket, sizeof(k->bucket), "%s", bucket);
	*out = k;
	return VS_OK;
}

void vs_kv_close(vs_kv *kv)
{
	if (!kv)
		return;
	kvStore_Destroy(kv->kv);
	free(kv);
}

int vs_get(vs_kv *kv, const char *key, char **val, size_t *len, uint64_t *rev)
{
	kvEntry *e = NULL;
	natsStatus st = kvStore_Get(&e, kv->kv, key);

	if (val)
		*val = NULL;
	if (st != NATS_OK)
		return map_status(st);
	if (kvEntry_Operation(e) != kvOp_Put) {
		kvEntry_Destroy(e);
		return VS_NOTFOUND;
	}
	int n = kvEntry_ValueLen(e);
	if (val) {
		char *v = malloc((size_t)n + 1);
		if (!v) {
			kvEntry_Destroy(e);
			return VS_ERR;
		}
		memcpy(v, kvEntry_Value(e), (size_t)n);
		v[n] = 0;
		*val = v;
	}
	if (len)
		*len = (size_t)n;
	if (rev)
		*rev = kvEntry_Revision(e);
	kvEntry_Destroy(e);
	return VS_OK;
}

int vs_put(vs_kv *kv, const char *key, const void *val, size_t len, uint64_t *rev)
{
	uint64_t r = 0;
	natsStatus st = kvStore_Put(&r, kv->kv, key, val, (int)len);
	if (rev)
		*rev = r;
	return map_status(st);
}

int vs_create(vs_kv *kv, const char *key, const void *val, size_t len, uint64_t *rev)
{
	uint64_t r = 0;
	natsStatus st = kvStore_Create(&r, kv->kv, key, val, (int)len);
	if (rev)
		*rev = r;
	int rc = map_status(st);
	return rc == VS_CONFLICT ? VS_EXISTS : rc;
}

int vs_update(vs_kv *kv, const char *key, const void *val, size_t len, uint64_t last, uint64_t *rev)
{
	uint64_t r = 0;
	natsStatus st = kvStore_Update(&r, kv->kv, key, val, (int)len, last);
	if (rev)
		*rev = r;
	return map_status(st);
}

int vs_delete(vs_kv *kv, const char *key)
{
	return map_status(kvStore_Delete(kv->kv, key));
}

static int is_marker(const char *key)
{
	size_t n = strlen(key);
	return (n >= 3 && !strcmp(key + n - 3, ".__")) || !strcmp(key, "__");
}

int vs_keys(vs_kv *kv, char ***keys, int *n)
{
	kvKeysList l = {0};
	natsStatus st = kvStore_Keys(&l, kv->kv, NULL);

	*keys = NULL;
	*n = 0;
	if (st == NATS_NOT_FOUND)
		return VS_OK;   /* an empty bucket */
	if (st != NATS_OK)
		return map_status(st);
	char **out = calloc((size_t)l.Count + 1, sizeof(char *));
	if (!out) {
		kvKeysList_Destroy(&l);
		return VS_ERR;
	}
	int m = 0;
	for (int i = 0; i < l.Count; i++)
		if (!is_marker(l.Keys[i]))
			out[m++] = strdup(l.Keys[i]);
	kvKeysList_Destroy(&l);
	*keys = out;
	*n = m;
	return VS_OK;
}

void vs_free_keys(char **keys, int n)
{
	for (int i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

/* ---------- watch ---------- */

static natsStatus watch_open(struct vs_watcher *w)
{
	kvWatchOptions wo;
	kvWatcher *kw = NULL;
	natsStatus st;

	kvWatchOptions_Init(&wo);
	wo.Timeout = w->kv->s->timeout_ms;
	if (w->filter)
		st = kvStore_Watch(&kw, w->kv->kv, w->filter, &wo);
	else
		st = kvStore_WatchAll(&kw, w->kv->kv, &wo);
	if (st == NATS_OK) {
		pthread_mutex_lock(&w->lock);
		w->w = kw;
		pthread_mutex_unlock(&w->lock);
	}
	return st;
}

static void watch_close(struct vs_watcher *w)
{
	pthread_mutex_lock(&w->lock);
	kvWatcher *kw = w->w;
	w->w = NULL;
	pthread_mutex_unlock(&w->lock);
	if (kw) {
		kvWatcher_Stop(kw);
		kvWatcher_Destroy(kw);
	}
}

static void *watch_main(void *arg)
{
	struct vs_watcher *w = arg;
	int synced_once = 0;

	while (!w->stop) {
		if (!w->w && watch_open(w) != NATS_OK) {
			/* the server or the bucket is not there (yet): try again */
			for (int i = 0; i < 10 && !w->stop; i++)
				usleep(100 * 1000);
			continue;
		}
		for (;;) {
			kvEntry *e = NULL;
			natsStatus st = kvWatcher_Next(&e, w->w, 1000);
			if (w->stop)
				break;
			if (st == NATS_TIMEOUT)
				continue;
			if (st != NATS_OK) {   /* connection lost or watcher gone: a new snapshot */
				watch_close(w);
				break;
			}
			if (!e) {   /* the snapshot is complete */
				if (!synced_once && w->synced)
					w->synced(w->arg);
				synced_once = 1;
				continue;
			}
			const char *key = kvEntry_Key(e);
			if (!is_marker(key)) {
				struct vs_entry ve = {
					.bucket = w->kv->bucket,
					.key = key,
					.rev = kvEntry_Revision(e),
					.op = kvEntry_Operation(e) == kvOp_Put ? VS_OP_PUT : VS_OP_DEL,
				};
				char *v = NULL;
				if (ve.op == VS_OP_PUT) {
					int n = kvEntry_ValueLen(e);
					v = malloc((size_t)n + 1);
					if (v) {
						memcpy(v, kvEntry_Value(e), (size_t)n);
						v[n] = 0;
						ve.val = v;
						ve.len = (size_t)n;
					}
				}
				if (ve.op == VS_OP_DEL || v)
					w->fn(w->arg, &ve);
				free(v);
			}
			kvEntry_Destroy(e);
		}
	}
	watch_close(w);
	return NULL;
}

int vs_watch(vs_kv *kv, const char *filter, vs_watch_fn fn, void (*synced)(void *arg), void *arg,
	     vs_watcher **out, char *err, size_t errlen)
{
	struct vs_watcher *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (!w)
		return VS_ERR;
	w->kv = kv;
	w->filter = filter ? strdup(filter) : NULL;
	w->fn = fn;
	w->synced = synced;
	w->arg = arg;
	pthread_mutex_init(&w->lock, NULL);
	natsStatus st = watch_open(w);
	if (st != NATS_OK) {
		seterr(err, errlen, "store: watch %s%s%s: %s", kv->bucket, filter ? " " : "", filter ? filter : "", nerr(st));
		free(w->filter);
		free(w);
		return VS_ERR;
	}
	if (pthread_create(&w->th, NULL, watch_main, w)) {
		watch_close(w);
		free(w->filter);
		free(w);
		seterr(err, errlen, "store: watch thread: %s", strerror(errno));
		return VS_ERR;
	}
	*out = w;
	return VS_OK;
}

void vs_watch_stop(vs_watcher *w)
{
	if (!w)
		return;
	w->stop = 1;
	pthread_mutex_lock(&w->lock);
	if (w->w)
		kvWatcher_Stop(w->w);   /* wakes kvWatcher_Next */
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->th, NULL);
	pthread_mutex_destroy(&w->lock);
	free(w->filter);
	free(w);
}

/* ---------- audit stream ---------- */

int vs_audit(vs_store *s, const char *kind, const char *json, const char *msgid)
{
	natsStatus st = NATS_OK;
	char subj[128];

	pthread_mutex_lock(&s->lock);
	if (!s->audit_ready) {
		jsStreamInfo *si = NULL;
		st = js_GetStreamInfo(&si, s->js, "AUDIT", NULL, NULL);
		if (st != NATS_OK) {
			jsStreamConfig sc;
			const char *subjects[] = {"veil.audit.>"};
			jsStreamConfig_Init(&sc);
			sc.Name = "AUDIT";
			sc.Subjects = subjects;
			sc.SubjectsLen = 1;
			sc.Storage = js_FileStorage;
			sc.Replicas = s->replicas;
			sc.MaxAge = (int64_t)90 * 24 * 3600 * 1000000000LL;
			sc.Duplicates = (int64_t)3600 * 1000000000LL;   /* retried publishes stored once */
			st = js_AddStream(&si, s->js, &sc, NULL, NULL);
			if (st != NATS_OK)   /* created by someone else meanwhile */
				st = js_GetStreamInfo(&si, s->js, "AUDIT", NULL, NULL);
		}
		if (si)
			jsStreamInfo_Destroy(si);
		if (st == NATS_OK)
			s->audit_ready = 1;
	}
	pthread_mutex_unlock(&s->lock);
	if (st != NATS_OK)
		return map_status(st);
	snprintf(subj, sizeof(subj), "veil.audit.%s", kind);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = msgid;
	jsPubAck *ack = NULL;
	st = js_Publish(&ack, s->js, subj, json, (int)strlen(json), &po, NULL);
	if (ack)
		jsPubAck_Destroy(ack);
	return map_status(st);
}

/* ---------- signed envelopes ---------- */

static const char SIG_CTX[] = "veilmesh-store-v1";

EVP_PKEY *vs_load_key(const char *path, int private_key, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (!f) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	k = private_key ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!k) {
		seterr(err, errlen, "%s: not a PEM %s key", path, private_key ? "private" : "public");
		return NULL;
	}
	if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		seterr(err, errlen, "%s: not an Ed25519 key", path);
		return NULL;
	}
	return k;
}

static int key_id(EVP_PKEY *k, char hex[17])
{
	unsigned char raw[32], d[32];
	size_t n = sizeof(raw);

	if (EVP_PKEY_get_raw_public_key(k, raw, &n) != 1 || n != 32)
		return -1;
	SHA256(raw, n, d);
	for (int i = 0; i < 8; i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
	return 0;
}

/* the signed message: context, bucket, key, body, NUL-separated */
static unsigned char *sig_msg(const char *bucket, const char *key, const char *body, size_t bodylen, size_t *n)
{
	size_t lb = strlen(bucket), lk = strlen(key);
	size_t len = sizeof(SIG_CTX) + lb + 1 + lk + 1 + bodylen;
	unsigned char *m = malloc(len), *p = m;

	if (!m)
		return NULL;
	memcpy(p, SIG_CTX, sizeof(SIG_CTX));
	p += sizeof(SIG_CTX);
	memcpy(p, bucket, lb + 1);
	p += lb + 1;
	memcpy(p, key, lk + 1);
	p += lk + 1;
	memcpy(p, body, bodylen);
	*n = len;
	return m;
}

static char *b64(const unsigned char *d, size_t n)
{
	char *o = malloc(4 * ((n + 2) / 3) + 1);
	if (o)
		EVP_EncodeBlock((unsigned char *)o, d, (int)n);
	return o;
}

/* strict standard base64 (with padding); returns the length or -1 */
static long unb64(const char *s, unsigned char **out)
{
	size_t n = strlen(s);
	if (n == 0 || n % 4) 
		return -1;
	unsigned char *o = malloc(n / 4 * 3 + 1);
	if (!o)
		return -1;
	int r = EVP_DecodeBlock(o, (const unsigned char *)s, (int)n);
	if (r < 0) {
		free(o);
		return -1;
	}
	if (s[n - 1] == '=')
		r--;
	if (s[n - 2] == '=')
		r--;
	*out = o;
	return r;
}

int vs_seal(EVP_PKEY *priv, const char *bucket, const char *key, const char *body, size_t bodylen, char **out)
{
	char kid[17];
	unsigned char sig[64];
	size_t siglen = sizeof(sig), mlen;
	unsigned char *m;
	EVP_MD_CTX *ctx;
	int ok = 0;

	*out = NULL;
	if (key_id(priv, kid) < 0 || !(m = sig_msg(bucket, key, body, bodylen, &mlen)))
		return VS_ERR;
	ctx = EVP_MD_CTX_new();
	ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, priv) == 1 &&
	     EVP_DigestSign(ctx, sig, &siglen, m, mlen) == 1;
	EVP_MD_CTX_free(ctx);
	free(m);
	if (!ok)
		return VS_ERR;
	char *bb = b64((const unsigned char *)body, bodylen), *sb = b64(sig, siglen);
	if (!bb || !sb) {
		free(bb);
		free(sb);
		return VS_ERR;
	}
	size_t len = strlen(bb) + strlen(sb) + 96;
	char *o = malloc(len);
	if (o)
		snprintf(o, len, "{\"v\":1,\"kid\":\"%s\",\"body\":\"%s\",\"sig\":\"%s\"}", kid, bb, sb);
	free(bb);
	free(sb);
	if (!o)
		return VS_ERR;
	*out = o;
	return VS_OK;
}

int vs_open(EVP_PKEY *pub, const char *bucket, const char *key, const char *env, size_t envlen,
	    char **body, uint64_t *gen)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	json_object *o = NULL, *v, *jb = NULL;
	unsigned char *bd = NULL, *sig = NULL, *m = NULL;
	long bl = -1, sl = -1;
	size_t mlen;
	char kid[17];
	int rc = VS_BADSIG;

	*body = NULL;
	if (gen)
		*gen = 0;
	if (!tok)
		return VS_ERR;
	if (envlen > (1u << 20))
		goto out;
	o = json_tokener_parse_ex(tok, env, (int)envlen);
	if (!o || json_tokener_get_error(tok) != json_tokener_success || !json_object_is_type(o, json_type_object))
		goto out;
	if (!json_object_object_get_ex(o, "v", &v) || json_object_get_int(v) != 1)
		goto out;
	if (!json_object_object_get_ex(o, "kid", &v) || !json_object_is_type(v, json_type_string) ||
	    key_id(pub, kid) < 0 || strcmp(kid, json_object_get_string(v)))
		goto out;
	if (!json_object_object_get_ex(o, "body", &v) || !json_object_is_type(v, json_type_string) ||
	    (bl = unb64(json_object_get_string(v), &bd)) < 0)
		goto out;
	if (!json_object_object_get_ex(o, "sig", &v) || !json_object_is_type(v, json_type_string) ||
	    (sl = unb64(json_object_get_string(v), &sig)) != 64)
		goto out;
	bd[bl] = 0;
	if (strlen((char *)bd) != (size_t)bl)   /* a NUL inside the body */
		goto out;
	if (!(m = sig_msg(bucket, key, (const char *)bd, (size_t)bl, &mlen)))
		goto out;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
		 EVP_DigestVerify(ctx, sig, (size_t)sl, m, mlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		goto out;
	/* the body must be a JSON object with a numeric gen */
	jb = json_tokener_parse((const char *)bd);
	if (!jb || !json_object_is_type(jb, json_type_object) || !json_object_object_get_ex(jb, "gen", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		goto out;
	if (gen)
		*gen = (uint64_t)json_object_get_int64(v);
	*body = (char *)bd;
	bd = NULL;
	rc = VS_OK;
out:
	json_object_put(jb);
	json_object_put(o);
	json_tokener_free(tok);
	free(bd);
	free(sig);
	free(m);
	return rc;
}

/* ---------- last gen per key ---------- */

struct gen_ent {
	char *key;
	uint64_t gen;
	uint8_t deleted;    /* the key's last operation was a delete (vs_gen_deleted) */
	uint8_t restored;   /* read from the file: the same gen may come once more (the snapshot) */
};
struct vs_gens {
	struct gen_ent *e;
	size_t cap, n;
	pthread_mutex_t lock;
	/* vs_gens_open: every accepted gen appended to this file ("GEN KEY"),
	 * compacted when it holds far more lines than keys */
	FILE *log;
	char *path;
	size_t lines;
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

struct vs_gens *vs_gens_new(void)
{
	struct vs_gens *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->cap = 64;
	g->e = calloc(g->cap, sizeof(*g->e));
	if (!g->e) {
		free(g);
		return NULL;
	}
	pthread_mutex_init(&g->lock, NULL);
	return g;
}

/* open addressing with tombstone-free deletion (backward shift) */
static size_t gen_find(struct vs_gens *g, const char *key)
{
	size_t i = fnv(key) & (g->cap - 1);
	while (g->e[i].key && strcmp(g->e[i].key, key))
		i = (i + 1) & (g->cap - 1);
	return i;
}

static int gen_grow(struct vs_gens *g)
{
	struct gen_ent *old = g->e;
	size_t oc = g->cap;
	struct gen_ent *ne = calloc(oc * 2, sizeof(*ne));
	if (!ne)
		return -1;
	g->e = ne;
	g->cap = oc * 2;
	for (size_t i = 0; i < oc; i++)
		if (old[i].key)
			g->e[gen_find(g, old[i].key)] = old[i];
	free(old);
	return 0;
}

/* the table as it is, one line a key, in place of the log (under lock) */
static int gen_compact(struct vs_gens *g)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp", g->path) < 0)
		return -1;
	FILE *f = fopen(tmp, "we");
	int ok = f != NULL;
	for (size_t i = 0; ok && i < g->cap; i++)
		if (g->e[i].key)
			ok = fprintf(f, "%llu %s%s\n", (unsigned long long)g->e[i].gen, g->e[i].key,
				     g->e[i].deleted ? " -" : "") > 0;
	ok = ok && fflush(f) == 0 && fdatasync(fileno(f)) == 0;
	if (f)
		ok = (fclose(f) == 0) && ok;
	ok = ok && rename(tmp, g->path) == 0;
	if (!ok)
		unlink(tmp);
	free(tmp);
	if (!ok)
		return -1;
	if (g->log)
		fclose(g->log);
	g->log = fopen(g->path, "ae");
	g->lines = g->n;
	return g->log ? 0 : -1;
}

static int gen_check_locked(struct vs_gens *g, const char *key, uint64_t gen);

/* one line on the file (vs_gens_open), flushed before the caller goes on;
 * the file compacted when it holds far more lines than keys (under lock) */
static int gen_log_locked(struct vs_gens *g, const char *key, uint64_t gen, int deleted)
{
	if (!g->log)
		return 0;
	if (fprintf(g->log, "%llu %s%s\n", (unsigned long long)gen, key, deleted ? " -" : "") < 0 || fflush(g->log))
		return -1;
	if (++g->lines > 4 * g->n + 4096)
		gen_compact(g);
	return 0;
}

struct vs_gens *vs_gens_open(const char *path, char *err, size_t errlen)
{
	struct vs_gens *g = vs_gens_new();
	FILE *f;
	char line[512];
	long ln = 0;

	if (!g)
		return seterr(err, errlen, "out of memory"), NULL;
	if (!(g->path = strdup(path))) {
		vs_gens_free(g);
		return seterr(err, errlen, "out of memory"), NULL;
	}
	if ((f = fopen(path, "re"))) {
		while (fgets(line, sizeof(line), f)) {
			unsigned long long gen;
			char key[400], del[4] = "";
			ln++;
			/* a torn last line (a crash mid-write) is dropped; any other
			 * malformed line is an error, not a silent reset of replay state */
			int nf = sscanf(line, "%llu %399s %3s", &gen, key, del);
			if (nf < 2 || (nf == 3 && strcmp(del, "-")) || !strchr(line, '\n')) {
				if (feof(f) || !strchr(line, '\n'))
					break;
				fclose(f);
				seterr(err, errlen, "%s:%ld: not 'GEN KEY'", path, ln);
				vs_gens_free(g);
				return NULL;
			}
			if (gen_check_locked(g, key, gen) == VS_ERR) {
				fclose(f);
				seterr(err, errlen, "out of memory");
				vs_gens_free(g);
				return NULL;
			}
			size_t i = gen_find(g, key);
			if (g->e[i].key && g->e[i].gen == gen) {
				g->e[i].deleted = nf == 3;
				g->e[i].restored = 1;
			}
		}
		fclose(f);
	} else if (errno != ENOENT) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		vs_gens_free(g);
		return NULL;
	}
	if (gen_compact(g)) {
		seterr(err, errlen, "%s: cannot write: %s", path, strerror(errno));
		vs_gens_free(g);
		return NULL;
	}
	return g;
}

int vs_gen_check(struct vs_gens *g, const char *key, uint64_t gen)
{
	pthread_mutex_lock(&g->lock);
	int rc = gen_check_locked(g, key, gen);
	/* on disk before the caller applies what the gen came with: after a
	 * restart an older envelope for the key is still a replay */
	if (rc == VS_OK && gen_log_locked(g, key, gen, 0))
		rc = VS_ERR;
	pthread_mutex_unlock(&g->lock);
	return rc;
}

static int gen_check_locked(struct vs_gens *g, const char *key, uint64_t gen)
{
	int rc = VS_OK;
	if ((g->n + 1) * 2 > g->cap && gen_grow(g) < 0)
		return VS_ERR;
	size_t i = gen_find(g, key);
	if (g->e[i].key) {
		/* after a restart the snapshot brings each key's current envelope
		 * again: the gen last applied is taken once more, unless the key
		 * was deleted since (an envelope put back would resurrect it) */
		if (gen == g->e[i].gen && g->e[i].restored && !g->e[i].deleted)
			g->e[i].restored = 0;
		else if (gen <= g->e[i].gen)
			rc = VS_REPLAY;
		else {
			g->e[i].gen = gen;
			g->e[i].deleted = 0;
			g->e[i].restored = 0;
		}
	} else if ((g->e[i].key = strdup(key))) {
		g->e[i].gen = gen;
		g->e[i].deleted = 0;
		g->e[i].restored = 0;
		g->n++;
	} else {
		rc = VS_ERR;
	}
	return rc;
}

void vs_gen_deleted(struct vs_gens *g, const char *key)
{
	pthread_mutex_lock(&g->lock);
	size_t i = gen_find(g, key);
	if (g->e[i].key && !g->e[i].deleted) {
		g->e[i].deleted = 1;
		g->e[i].restored = 0;
		gen_log_locked(g, key, g->e[i].gen, 1);
	}
	pthread_mutex_unlock(&g->lock);
}

void vs_gen_forget(struct vs_gens *g, const char *key)
{
	pthread_mutex_lock(&g->lock);
	size_t i = gen_find(g, key);
	if (g->e[i].key) {
		free(g->e[i].key);
		g->e[i].key = NULL;
		g->n--;
		/* shift the following cluster back */
		size_t j = i;
		for (;;) {
			j = (j + 1) & (g->cap - 1);
			if (!g->e[j].key)
				break;
			size_t h = fnv(g->e[j].key) & (g->cap - 1);
			/* move e[j] to i if its home is not in (i, j] cyclically */
			if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
				g->e[i] = g->e[j];
				g->e[j].key = NULL;
				i = j;
			}
		}
	}
	pthread_mutex_unlock(&g->lock);
}

void vs_gens_free(struct vs_gens *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->cap; i++)
		free(g->e[i].key);
	free(g->e);
	if (g->log)
		fclose(g->log);
	free(g->path);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* ---------- names as keys ---------- */

int vs_name_key(const char *name, char *key, size_t keylen)
{
	size_t n = strlen(name), j = 0;

	if (n && name[n - 1] == '.')
		n--;
	if (n == 0 || n + 1 > keylen || n > 253)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c == '*' && i == 0 && n > 2 && name[1] == '.')
			c = '=';
		else if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return -1;
		if (c == '.' && (i == 0 || i == n - 1 || name[i - 1] == '.'))
			return -1;   /* empty label */
		key[j++] = c;
	}
	key[j] = 0;
	return 0;
}

int vs_key_name(const char *key, char *name, size_t namelen)
{
	size_t n = strlen(key);
	if (n == 0 || n + 1 > namelen)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = key[i];
		if (c == '=' && i == 0)
			c = '*';
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return -1;
		name[i] = c;
	}
	name[n] = 0;
	return 0;
}
