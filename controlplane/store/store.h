/* The cluster store: NATS JetStream key-value buckets through libnats, and
 * the signed envelopes other machines act on.  Schema and rules: docs/store.md.
 *
 * Every call returns VS_OK or a negative VS_* code; err (may be NULL) gets a
 * line that says what failed.  Thread-safe: one vs_store is shared by all
 * threads of a daemon (libnats connections are). */
#ifndef VEIL_STORE_H
#define VEIL_STORE_H
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

enum {
	VS_OK = 0,
	VS_ERR = -1,         /* bad argument, protocol error */
	VS_NOTFOUND = -2,    /* no such key (or deleted) */
	VS_EXISTS = -3,      /* vs_create: the key is there */
	VS_CONFLICT = -4,    /* vs_update: the revision moved (stale write refused) */
	VS_UNKNOWN = -5,     /* timed out: the write may or may not be stored; re-read */
	VS_BADSIG = -6,      /* vs_open: bad envelope or signature */
	VS_REPLAY = -7,      /* vs_open: gen not above the last one applied */
};

typedef struct vs_store vs_store;
typedef struct vs_kv vs_kv;
typedef struct vs_watcher vs_watcher;

struct vs_opts {
	const char *urls;      /* "nats://198.18.0.1:4222,nats://..." */
	const char *creds;     /* NATS credentials file or NULL */
	const char *name;      /* connection name shown by the server */
	int replicas;          /* for buckets this process creates: 1 or 3 */
	int timeout_ms;        /* per request; 0 = 2000 */
};

int vs_connect(vs_store **out, const struct vs_opts *o, char *err, size_t errlen);
void vs_close(vs_store *s);
/* Opens a bucket, creating it (history 1, the store's replicas) when create is set and it is missing. */
int vs_bucket(vs_store *s, const char *bucket, int create, vs_kv **out, char *err, size_t errlen);
void vs_kv_close(vs_kv *kv);

/* *val is malloc'ed and NUL-terminated (len excludes the NUL); free() it. */
int vs_get(vs_kv *kv, const char *key, char **val, size_t *len, uint64_t *rev);
int vs_put(vs_kv *kv, const char *key, const void *val, size_t len, uint64_t *rev);
int vs_create(vs_kv *kv, const char *key, const void *val, size_t len, uint64_t *rev);
int vs_update(vs_kv *kv, const char *key, const void *val, size_t len, uint64_t last, uint64_t *rev);
int vs_delete(vs_kv *kv, const char *key);
/* Lists the current keys (marker keys "*.__" left out); *keys is a malloc'ed
 * array of malloc'ed strings: vs_free_keys(). */
int vs_keys(vs_kv *kv, char ***keys, int *n);
void vs_free_keys(char **keys, int n);

enum { VS_OP_PUT = 1, VS_OP_DEL = 2 };
struct vs_entry {
	const char *bucket, *key;
	const char *val;       /* NUL-terminated; NULL on delete */
	size_t len;
	uint64_t rev;
	int op;
};
/* Snapshot then watch: fn for every current key, then synced() once, then
 * every change, in revision order, on the watcher's own thread.  filter is a
 * NATS subject filter within the bucket ("node1.*") or NULL for all keys: a
 * filtered prefix must hold a marker key first (docs/store.md).  Marker keys
 * are not delivered.  If the connection drops, the watcher starts again with
 * a new snapshot (fn sees every key again; apply by revision). */
typedef void (*vs_watch_fn)(void *arg, const struct vs_entry *e);
int vs_watch(vs_kv *kv, const char *filter, vs_watch_fn fn, void (*synced)(void *arg), void *arg,
	     vs_watcher **out, char *err, size_t errlen);
void vs_watch_stop(vs_watcher *w);

/* Audit: publishes json on veil.audit.<kind> in stream AUDIT (created when
 * missing), deduplicated by msgid. */
int vs_audit(vs_store *s, const char *kind, const char *json, const char *msgid);

/* Signed envelopes.  Ed25519 keys as EVP_PKEY (PEM files: vs_load_key). */
EVP_PKEY *vs_load_key(const char *path, int private_key, char *err, size_t errlen);
/* *out: malloc'ed envelope JSON. */
int vs_seal(EVP_PKEY *priv, const char *bucket, const char *key, const char *body, size_t bodylen, char **out);
/* Checks the signature with pub (kid must match) and returns the body
 * (malloc'ed, NUL-terminated) and its "gen".  Replay checking is the
 * caller's (it knows the last gen it applied): see vs_gen_check. */
int vs_open(EVP_PKEY *pub, const char *bucket, const char *key, const char *env, size_t envlen,
	    char **body, uint64_t *gen);
/* A small table of the last gen applied per key: returns VS_OK and records
 * gen if it is above the last one for key, VS_REPLAY otherwise. */
struct vs_gens;
struct vs_gens *vs_gens_new(void);
int vs_gen_check(struct vs_gens *g, const char *key, uint64_t gen);
void vs_gen_forget(struct vs_gens *g, const char *key);   /* in memory only */
/* The key was deleted in the store: its gen stays (an old envelope put back
 * is still a replay), and after a restart even its last gen is one. */
void vs_gen_deleted(struct vs_gens *g, const char *key);
/* The same table kept in a file across restarts (a consumer that restarts
 * still refuses an envelope older than the last one it applied, and the
 * last one itself for a key deleted since; the snapshot's re-delivery of a
 * live key's last envelope is taken once): loads PATH
 * if it exists, then appends every gen vs_gen_check accepts ("GEN KEY" a
 * line, flushed before it returns), compacting the file when it grows to
 * four times the keys.  A torn last line is dropped; any other malformed line
 * fails the open (err says file:line).  NULL on error. */
struct vs_gens *vs_gens_open(const char *path, char *err, size_t errlen);
void vs_gens_free(struct vs_gens *g);

/* DNS name <-> key: lower case, no final dot, a leading '*' as '='.  Returns
 * -1 if the name has a character a key cannot hold or does not fit. */
int vs_name_key(const char *name, char *key, size_t keylen);
int vs_key_name(const char *key, char *name, size_t namelen);

const char *vs_strerror(int rc);
#endif
