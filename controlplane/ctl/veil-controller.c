// SPDX-License-Identifier: Apache-2.0
/*
 * veil-controller: the inventory of nodes, orders and peers, the order driver
 * and the HTTP/JSON API (docs/api.yaml) over TLS 1.3.
 *
 * All state is in the store (docs/store.md).  The controller keeps a view fed
 * by watches (snapshot, then changes) and writes with compare-and-set on the
 * revision it read; the driver is level-triggered: every tick it looks at each
 * open order as the store has it and takes the next step, so a controller that
 * restarts resumes every order where it was.  Records that tell another
 * machine to act (builds, vms, routes, dns) are sealed with the controller's
 * Ed25519 key, gen = the revision of the order record they derive from.
 *
 * Threads: the event loop (API, long polls, metrics), the driver, and the
 * store's watcher threads; the view is under one mutex and its objects are
 * never changed in place (a change replaces the object).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/httpd.h"
#include "common/daemon.h"
#include "ctl/ctl.h"
#include "keys/attest.h"
#include "keys/ek.h"
#include "store/store.h"

#define MAX_VALIDATORS 16
#define MAX_PARKED 4096
#define RATE_SLOTS 4096

/* ---------- configuration ---------- */

struct config {
	char listen[96], cert[256], key[256], metrics[96], store[512], store_creds[256], signing[256], registry[256];
	char admin_token_file[256], pidfile[256], vm_net4[48], vm_net6[64], tpm_vendor_ca[256], tpm_vendor_crl[256];
	char validators[MAX_VALIDATORS][200];
	int nvalidators, validators_t, replicas;
	int challenge_ttl_s;
	int node_timeout_s, state_timeout_s, schedule_timeout_s, ready_timeout_s, tick_ms, max_attempts, store_timeout_ms;
};

static struct config cfg;
static const char *config_path;

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int net_ok(const char *s, int af)
{
	char a[64];
	unsigned char b[16];
	int len;
	const char *sl = strchr(s, '/');
	if (!sl || (size_t)(sl - s) >= sizeof(a) || parse_int(sl + 1, 8, af == AF_INET ? 30 : 120, &len))
		return 0;
	snprintf(a, sizeof(a), "%.*s", (int)(sl - s), s);
	return inet_pton(af, a, b) == 1;
}

static int load_config(const char *path, struct config *c, char *err, size_t len)
{
	char line[1024], *w[4], *save;
	int ln = 0;
	FILE *f = fopen(path, "re");
	memset(c, 0, sizeof(*c));
	c->node_timeout_s = 15;
	c->state_timeout_s = 600;
	c->schedule_timeout_s = 60;
	c->ready_timeout_s = 300;
	c->tick_ms = 200;
	c->max_attempts = 3;
	c->validators_t = 2;
	c->replicas = 1;
	c->store_timeout_ms = 2000;
	c->challenge_ttl_s = 60;
	snprintf(c->vm_net4, sizeof(c->vm_net4), "198.19.0.0/16");
	snprintf(c->vm_net6, sizeof(c->vm_net6), "2001:db8:ffff::/64");
	if (!f)
		return snprintf(err, len, "%s: %s", path, strerror(errno)), -1;
	while (fgets(line, sizeof(line), f)) {
		int n = 0;
		ln++;
		if (!strchr(line, '\n') && !feof(f)) {
			fclose(f);
			return snprintf(err, len, "%s:%d: line longer than %zu bytes", path, ln, sizeof(line) - 2), -1;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 4; t = strtok_r(NULL, " \t\r\n", &save))
			w[n++] = t;
		if (!n)
			continue;
		const char *bad = NULL;
#define S1(k, dst)                                                                           \
	else if (!strcmp(w[0], k)) {                                                         \
		if (n != 2 || strlen(w[1]) >= sizeof(dst))                                   \
			bad = "takes one value";                                             \
		else                                                                         \
			snprintf(dst, sizeof(dst), "%s", w[1]);                              \
	}
#define I1(k, dst, lo, hi)                                                                   \
	else if (!strcmp(w[0], k)) {                                                         \
		if (n != 2 || parse_int(w[1], lo, hi, &dst))                                 \
			bad = "takes one number in " #lo ".." #hi;                           \
	}
		if (0) {
		}
		S1("listen", c->listen)
		S1("cert", c->cert)
		S1("key", c->key)
		S1("metrics", c->metrics)
		S1("store", c->store)
		S1("store_creds", c->store_creds)
		S1("signing_key", c->signing)
		S1("registry_pub", c->registry)
		S1("admin_token_file", c->admin_token_file)
		S1("pidfile", c->pidfile)
		S1("vm_net4", c->vm_net4)
		S1("vm_net6", c->vm_net6)
		S1("tpm_vendor_ca", c->tpm_vendor_ca)
		S1("tpm_vendor_crl", c->tpm_vendor_crl)
		I1("node_challenge_ttl_s", c->challenge_ttl_s, 5, 600)
		I1("store_replicas", c->replicas, 1, 5)
		I1("store_timeout_ms", c->store_timeout_ms, 100, 60000)
		I1("node_timeout_s", c->node_timeout_s, 1, 3600)
		I1("state_timeout_s", c->state_timeout_s, 5, 86400)
		I1("schedule_timeout_s", c->schedule_timeout_s, 1, 86400)
		I1("ready_timeout_s", c->ready_timeout_s, 5, 3600)
		I1("tick_ms", c->tick_ms, 10, 10000)
		I1("max_attempts", c->max_attempts, 1, 20)
		I1("validators_t", c->validators_t, 2, MAX_VALIDATORS)
		else if (!strcmp(w[0], "validator")) {
			/* ADDR:PORT, as the registry splits keys to and the initrd dials */
			if (n != 2 || strlen(w[1]) >= sizeof(c->validators[0]) || !strchr(w[1], ':') ||
			    strspn(w[1], "0123456789abcdef.:[]") != strlen(w[1]))
				bad = "takes one numeric ADDR:PORT";
			else if (c->nvalidators == MAX_VALIDATORS)
				bad = "too many validators";
			else
				snprintf(c->validators[c->nvalidators++], sizeof(c->validators[0]), "%s", w[1]);
		} else
			bad = "is not a setting";
		if (bad) {
			fclose(f);
			return snprintf(err, len, "%s:%d: '%s' %s", path, ln, w[0], bad), -1;
		}
	}
	fclose(f);
	if (!c->listen[0] || !c->cert[0] || !c->key[0] || !c->store[0] || !c->signing[0] || !c->registry[0] ||
	    !c->admin_token_file[0])
		return snprintf(err, len, "%s: listen, cert, key, store, signing_key, registry_pub and admin_token_file are "
				"required", path), -1;
	if (!net_ok(c->vm_net4, AF_INET) || !net_ok(c->vm_net6, AF_INET6))
		return snprintf(err, len, "%s: vm_net4/vm_net6 must be ADDR/LEN (IPv4 /8../30, IPv6 /8../120)", path), -1;
	if (c->nvalidators < 2)
		return snprintf(err, len, "%s: at least two 'validator ADDR:PORT' lines (a disk key is split t of n, t >= 2)",
				path), -1;
	if (c->validators_t > c->nvalidators)
		return snprintf(err, len, "%s: validators_t %d is more than the %d validators", path, c->validators_t,
				c->nvalidators), -1;
	return 0;
}

static int key_file_private(const char *path, char *err, size_t len)
{
	struct stat sb;
	if (stat(path, &sb))
		return snprintf(err, len, "%s: %s", path, strerror(errno)), -1;
	if (sb.st_mode & 077)
		return snprintf(err, len, "%s: mode %03o: a secret must be readable by its owner only (chmod 600)", path,
				sb.st_mode & 0777), -1;
	return 0;
}

/* ---------- helpers ---------- */

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = 0;
}

static void sha256_hex(const void *d, size_t n, char out[65])
{
	uint8_t h[32];
	SHA256(d, n, h);
	hex(h, 32, out);
}

static void rand_hex(size_t bytes, char *out)
{
	uint8_t b[32];
	if (RAND_bytes(b, (int)bytes) != 1)
		abort();   /* no randomness: never hand out a guessable id or secret */
	hex(b, bytes, out);
	OPENSSL_cleanse(b, sizeof(b));
}

static void rfc3339(time_t t, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
												: NULL;
}
static int64_t jint(json_object *o, const char *k, int64_t dflt)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
											     : dflt;
}
static int jbool(json_object *o, const char *k)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}
static const char *js(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}
static json_object *jcopy(json_object *o)
{
	json_object *c = NULL;
	json_object_deep_copy(o, &c, NULL);
	return c;
}

/* ---------- metrics ---------- */

static const char *const STATES[] = { "requested", "scheduled", "building", "launching", "attesting",
				      "ready", "closed", "failed", "cancelled", NULL };
static struct {
	uint64_t http[6];   /* 2xx..5xx by first digit; [0] unused */
	uint64_t orders_created, idem_replays, transitions[9], conflicts, store_errors, rejected_sig, rejected_replay,
		rate_limited, auth_refused, reloads_ok, reloads_bad, nodes_down, reschedules, long_polls;
	uint64_t node_attested, node_refused[7];   /* by enum nodereg_refusal */
	time_t started;
} M;
static pthread_mutex_t mlock = PTHREAD_MUTEX_INITIALIZER;
#define COUNT(x) do { pthread_mutex_lock(&mlock); (x)++; pthread_mutex_unlock(&mlock); } while (0)

static int state_idx(const char *s)
{
	for (int i = 0; s && STATES[i]; i++)
		if (!strcmp(s, STATES[i]))
			return i;
	return -1;
}
static int is_final(const char *s)
{
	return s && (!strcmp(s, "failed") || !strcmp(s, "cancelled"));
}

/* ---------- the view ---------- */

/* A bucket's current keys: key -> {"rev":N,"v":value}.  Values are replaced,
 * never changed in place, so a reader may hold a reference (json_object_get)
 * after the lock is dropped. */
struct bucket {
	const char *name;
	vs_kv *kv;
	json_object *map;
	int signed_by;          /* 0 plain, 1 registry key, 2 the node's key */
	struct vs_gens *gens;
	vs_watcher *w;
	int synced;
};
enum { B_ORDERS, B_NODES, B_TOKENS, B_PEERS, B_CATALOG, B_BUILDSTATUS, B_VMSTATUS, B_HEARTBEATS, B_NWATCHED,
       B_BUILDS = B_NWATCHED, B_VMS, B_ROUTES, B_DNS, B_REGKEYS, B_IDEM, B_ALL };
static struct bucket B[B_ALL] = {
	[B_ORDERS] = { "orders" }, [B_NODES] = { "nodes" }, [B_TOKENS] = { "tokens" }, [B_PEERS] = { "peers" },
	[B_CATALOG] = { "catalog", .signed_by = 1 }, [B_BUILDSTATUS] = { "buildstatus", .signed_by = 1 },
	[B_VMSTATUS] = { "vmstatus", .signed_by = 2 }, [B_HEARTBEATS] = { "heartbeats", .signed_by = 2 },
	[B_BUILDS] = { "builds" }, [B_VMS] = { "vms" }, [B_ROUTES] = { "routes" }, [B_DNS] = { "dns" },
	[B_REGKEYS] = { "regkeys" }, [B_IDEM] = { "idem" },
};
static pthread_mutex_t vlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t vcond = PTHREAD_COND_INITIALIZER;
static vs_store *store;
static EVP_PKEY *sign_key, *registry_pub;

/* Node keys and liveness, beside the node records (which are plain JSON). */
struct nodekey {
	char id[65];
	char kid[17];
	EVP_PKEY *pub;
	time_t last_seen;       /* the newest verified heartbeat's ts, or our start (grace) */
	time_t last_hb;         /* the newest verified heartbeat's ts, only */
};
static struct nodekey *nkeys;
static int nnkeys, capnkeys;
static time_t started_at;


/* Call with vlock held. */
static struct nodekey *nodekey_by_id(const char *id)
{
	for (int i = 0; i < nnkeys; i++)
		if (!strcmp(nkeys[i].id, id))
			return &nkeys[i];
	return NULL;
}

static void kid_of(const uint8_t pub[32], char kid[17])
{
	uint8_t h[32];
	SHA256(pub, 32, h);
	hex(h, 8, kid);
}

/* Call with vlock held: the node's key from its record. */
static void nodekey_learn(const char *id, json_object *rec)
{
	const char *p64 = jstr(rec, "node_pub");
	uint8_t raw[48];
	if (!p64 || strlen(p64) != 44 || EVP_DecodeBlock(raw, (const unsigned char *)p64, 44) != 33)
		return;
	struct nodekey *k = nodekey_by_id(id);
	if (!k) {
		if (nnkeys == capnkeys) {
			int nc = capnkeys ? 2 * capnkeys : 16;
			struct nodekey *nk = realloc(nkeys, nc * sizeof(*nk));
			if (!nk)
				return;
			nkeys = nk;
			capnkeys = nc;
		}
		k = &nkeys[nnkeys++];
		memset(k, 0, sizeof(*k));
		snprintf(k->id, sizeof(k->id), "%s", id);
		k->last_seen = started_at;   /* a restarted controller gives every node one timeout of grace */
	}
	EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
	if (!pub)
		return;
	EVP_PKEY_free(k->pub);
	k->pub = pub;
	kid_of(raw, k->kid);
}

/* Call with vlock held.  Returns a new reference or NULL. */
static json_object *view_get(int b, const char *key, uint64_t *rev)
{
	json_object *e, *v;
	if (!B[b].map || !json_object_object_get_ex(B[b].map, key, &e) || !json_object_object_get_ex(e, "v", &v))
		return NULL;
	if (rev)
		*rev = (uint64_t)jint(e, "rev", 0);
	return json_object_get(v);
}

/* Call with vlock held.  Takes v's reference.  Applies only a newer revision. */
static void view_set(int b, const char *key, json_object *v, uint64_t rev)
{
	json_object *e;
	if (json_object_object_get_ex(B[b].map, key, &e) && (uint64_t)jint(e, "rev", 0) >= rev) {
		json_object_put(v);
		return;
	}
	e = json_object_new_object();
	json_object_object_add(e, "rev", json_object_new_int64((int64_t)rev));
	json_object_object_add(e, "v", v);
	json_object_object_add(B[b].map, key, e);
	if (b == B_NODES)
		nodekey_learn(key, v);
	pthread_cond_broadcast(&vcond);
}

static void view_del(int b, const char *key, uint64_t rev)
{
	json_object *e;
	if (json_object_object_get_ex(B[b].map, key, &e) && (uint64_t)jint(e, "rev", 0) < rev)
		json_object_object_del(B[b].map, key);
	pthread_cond_broadcast(&vcond);
}

/* Envelope "kid" without trusting anything else in it. */
static int env_kid(const char *env, char kid[17])
{
	json_object *j = json_tokener_parse(env);
	const char *k = jstr(j, "kid");
	int ok = k && strlen(k) == 16;
	if (ok)
		memcpy(kid, k, 17);
	json_object_put(j);
	return ok ? 0 : -1;
}

static void on_entry(void *arg, const struct vs_entry *e)
{
	int b = (int)(intptr_t)arg;
	pthread_mutex_lock(&vlock);
	if (e->op == VS_OP_DEL) {
		view_del(b, e->key, e->rev);
		if (B[b].gens)
			vs_gen_forget(B[b].gens, e->key);
		pthread_mutex_unlock(&vlock);
		return;
	}
	json_object *v = NULL;
	if (!B[b].signed_by) {
		v = json_tokener_parse(e->val);
	} else {
		EVP_PKEY *pub = NULL;
		char kid[17];
		struct nodekey *nk = NULL;
		if (B[b].signed_by == 1)
			pub = registry_pub;
		else if (env_kid(e->val, kid) == 0)
			for (int i = 0; i < nnkeys && !pub; i++)
				if (!strcmp(nkeys[i].kid, kid))
					nk = &nkeys[i], pub = nk->pub;
		char *body = NULL;
		uint64_t gen = 0;
		int rc = pub ? vs_open(pub, B[b].name, e->key, e->val, e->len, &body, &gen) : VS_BADSIG;
		if (rc == VS_OK && vs_gen_check(B[b].gens, e->key, gen) != VS_OK)
			rc = VS_REPLAY;
		if (rc == VS_OK) {
			v = json_tokener_parse(body);
			/* a node speaks only for itself */
			const char *who = jstr(v, "node");
			if (nk && (!who || strcmp(who, nk->id) || (b == B_HEARTBEATS && strcmp(e->key, nk->id)))) {
				json_object_put(v);
				v = NULL;
				rc = VS_BADSIG;
			}
			if (v && b == B_HEARTBEATS) {
				time_t ts = (time_t)jint(v, "ts", 0), now = time(NULL);
				if (ts > now)
					ts = now;
				if (ts > nk->last_seen)
					nk->last_seen = ts;
				if (ts > nk->last_hb)
					nk->last_hb = ts;

			}
		}
		free(body);
		if (rc == VS_REPLAY) {
			/* the envelope we hold, seen again after a watch restart, is not news;
			 * an older one is a replay */
			json_object *have = view_get(b, e->key, NULL);
			if (!have || (uint64_t)jint(have, "gen", 0) != gen) {
				COUNT(M.rejected_replay);
				vm_log("event=store_rejected bucket=%s key=%s reason=replay gen=%" PRIu64, B[b].name, e->key, gen);
			}
			json_object_put(have);
		} else if (rc != VS_OK) {
			COUNT(M.rejected_sig);
			/* a node that has not registered yet heartbeats anyway: counted, logged once a minute */
			static time_t last_unknown;
			if (pub || time(NULL) - last_unknown >= 60) {
				if (!pub)
					last_unknown = time(NULL);
				vm_log("event=store_rejected bucket=%s key=%s reason=%s", B[b].name, e->key,
				      !pub ? "unknown_key" : rc == VS_BADSIG ? "signature" : vs_strerror(rc));
			}
		}
	}
	if (v)
		view_set(b, e->key, v, e->rev);
	pthread_mutex_unlock(&vlock);
}

static void on_synced(void *arg)
{
	pthread_mutex_lock(&vlock);
	B[(int)(intptr_t)arg].synced = 1;
	pthread_cond_broadcast(&vcond);
	pthread_mutex_unlock(&vlock);
}

/* ---------- audit ---------- */

/* A publish that fails (a store election) is kept and retried by the driver;
 * the stream drops the copy of one that was stored after all (msgid). */
struct pending_audit {
	struct pending_audit *next;
	char kind[16], msgid[128];
	char *json;
};
static struct pending_audit *audit_q;
static int audit_qlen;
static pthread_mutex_t alock = PTHREAD_MUTEX_INITIALIZER;

static void audit_pub(const char *kind, const char *json, const char *msgid)
{
	if (vs_audit(store, kind, json, msgid) == VS_OK)
		return;
	pthread_mutex_lock(&alock);
	struct pending_audit *a = audit_qlen < 100000 ? calloc(1, sizeof(*a)) : NULL;
	if (a && (a->json = strdup(json))) {
		snprintf(a->kind, sizeof(a->kind), "%s", kind);
		snprintf(a->msgid, sizeof(a->msgid), "%s", msgid);
		a->next = audit_q;
		audit_q = a;
		audit_qlen++;
	} else {
		free(a);
		vm_log("event=audit_lost kind=%s id=%s reason=\"queue full\"", kind, msgid);
	}
	pthread_mutex_unlock(&alock);
}

static void audit_flush(void)
{
	pthread_mutex_lock(&alock);
	struct pending_audit *q = audit_q;
	audit_q = NULL;
	audit_qlen = 0;
	pthread_mutex_unlock(&alock);
	while (q) {
		struct pending_audit *n = q->next;
		audit_pub(q->kind, q->json, q->msgid);   /* back in the queue if it fails again */
		free(q->json);
		free(q);
		q = n;
	}
}

static void audit_order(json_object *o, const char *state, const char *reason, int64_t seq)
{
	json_object *a = json_object_new_object();
	char ts[32], msgid[120];
	rfc3339(time(NULL), ts);
	json_object_object_add(a, "order", json_object_new_string(jstr(o, "id")));
	json_object_object_add(a, "storefront", json_object_new_string(jstr(o, "storefront") ?: ""));
	json_object_object_add(a, "state", json_object_new_string(state));
	if (reason)
		json_object_object_add(a, "reason", json_object_new_string(reason));
	if (jstr(o, "node"))
		json_object_object_add(a, "node", json_object_new_string(jstr(o, "node")));
	json_object_object_add(a, "seq", json_object_new_int64(seq));
	json_object_object_add(a, "ts", json_object_new_string(ts));
	snprintf(msgid, sizeof(msgid), "order.%s.%" PRId64, jstr(o, "id"), seq);
	audit_pub("order", js(a), msgid);
	json_object_put(a);
}

static void audit_kind(const char *kind, const char *msgid, json_object *a)
{
	char ts[32];
	rfc3339(time(NULL), ts);
	json_object_object_add(a, "ts", json_object_new_string(ts));
	audit_pub(kind, js(a), msgid);
	json_object_put(a);
}

/* ---------- order records ---------- */

/* A new version of o (a deep copy) in state st, with its history entry. */
static json_object *order_next(json_object *o, const char *st, const char *reason)
{
	json_object *n = jcopy(o), *h;
	char ts[32];
	time_t now = time(NULL);
	rfc3339(now, ts);
	if (st && strcmp(st, jstr(o, "state"))) {
		json_object_object_add(n, "state", json_object_new_string(st));
		json_object_object_add(n, "state_since", json_object_new_int64(now));
		json_object_object_add(n, "reason", reason ? json_object_new_string(reason) : NULL);
		if (!json_object_object_get_ex(n, "history", &h)) {
			h = json_object_new_array();
			json_object_object_add(n, "history", h);
		}
		json_object *ev = json_object_new_object();
		json_object_object_add(ev, "seq", json_object_new_int64((int64_t)json_object_array_length(h) + 1));
		json_object_object_add(ev, "state", json_object_new_string(st));
		json_object_object_add(ev, "ts", json_object_new_string(ts));
		if (reason)
			json_object_object_add(ev, "reason", json_object_new_string(reason));
		json_object_array_add(h, ev);
	}
	json_object_object_add(n, "updated", json_object_new_string(ts));
	return n;
}

/* CAS-writes n over the order at rev; on success the view has it and the
 * transition is audited.  Takes n.  VS_* code. */
static int order_write(json_object *n, uint64_t rev, uint64_t *newrev)
{
	const char *id = jstr(n, "id");
	size_t len;
	const char *s = json_object_to_json_string_length(n, JSON_C_TO_STRING_PLAIN, &len);
	uint64_t nr = 0;
	int rc = rev ? vs_update(B[B_ORDERS].kv, id, s, len, rev, &nr) : vs_create(B[B_ORDERS].kv, id, s, len, &nr);
	if (rc == VS_OK) {
		json_object *h;
		char idc[80];
		snprintf(idc, sizeof(idc), "%s", id);
		json_object_get(n);
		pthread_mutex_lock(&vlock);
		view_set(B_ORDERS, idc, n, nr);
		pthread_mutex_unlock(&vlock);
		if (newrev)
			*newrev = nr;
		/* audit the newest history entry if this write made it */
		if (json_object_object_get_ex(n, "history", &h) && json_object_array_length(h)) {
			json_object *ev = json_object_array_get_idx(h, json_object_array_length(h) - 1);
			if ((time_t)jint(n, "state_since", 0) >= time(NULL) - 1 && !strcmp(jstr(ev, "state"), jstr(n, "state"))) {
				int si = state_idx(jstr(n, "state"));
				if (si >= 0)
					COUNT(M.transitions[si]);
				if (rev)
					audit_order(n, jstr(n, "state"), jstr(n, "reason"), jint(ev, "seq", 0));
			}
		}
	} else if (rc == VS_CONFLICT) {
		COUNT(M.conflicts);
	} else {
		COUNT(M.store_errors);
	}
	json_object_put(n);
	return rc;
}

/* ---------- signed records ---------- */

/* Seals body for bucket/key and writes it: create, or update over whatever
 * version is there (the controller is these keys' only writer). */
static int seal_write(int b, const char *key, json_object *body)
{
	char *env = NULL;
	size_t blen;
	const char *bs = json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN, &blen);
	int rc = vs_seal(sign_key, B[b].name, key, bs, blen, &env);
	if (rc != VS_OK)
		return rc;
	for (int tries = 0; tries < 3; tries++) {
		char *old = NULL;
		size_t ol;
		uint64_t rev = 0;
		rc = vs_get(B[b].kv, key, &old, &ol, &rev);
		if (rc == VS_OK && ol == strlen(env) && !memcmp(old, env, ol)) {
			free(old);
			break;   /* already there (a retried step) */
		}
		free(old);
		if (rc == VS_NOTFOUND)
			rc = vs_create(B[b].kv, key, env, strlen(env), NULL);
		else if (rc == VS_OK)
			rc = vs_update(B[b].kv, key, env, strlen(env), rev, NULL);
		if (rc != VS_EXISTS && rc != VS_CONFLICT)
			break;
	}
	free(env);
	if (rc != VS_OK)
		COUNT(M.store_errors);
	return rc;
}

static int kv_delete(int b, const char *key)
{
	int rc = vs_delete(B[b].kv, key);
	return rc == VS_NOTFOUND ? VS_OK : rc;
}

/* ---------- VM addresses ---------- */

/* The VM's internal addresses: the vm_num-th host of vm_net4/vm_net6 (after
 * the gateway, .1).  vm_num is unique (a store revision); a /16 wraps after
 * 65533 VMs, so the network must be sized for the VMs alive at once. */
static void vm_addrs(uint64_t num, char *a4, size_t l4, char *g4, size_t lg4, char *a6, size_t l6, char *g6, size_t lg6)
{
	char net[64];
	int len;
	struct in_addr in;
	struct in6_addr in6;
	const char *sl = strchr(cfg.vm_net4, '/');
	snprintf(net, sizeof(net), "%.*s", (int)(sl - cfg.vm_net4), cfg.vm_net4);
	len = atoi(sl + 1);
	inet_pton(AF_INET, net, &in);
	uint32_t base = ntohl(in.s_addr) & (len ? ~0u << (32 - len) : 0), size = 1u << (32 - len);
	uint32_t host = 2 + (uint32_t)(num % (size - 3));
	in.s_addr = htonl(base + host);
	inet_ntop(AF_INET, &in, net, sizeof(net));
	snprintf(a4, l4, "%s/%d", net, len);
	in.s_addr = htonl(base + 1);
	inet_ntop(AF_INET, &in, g4, (socklen_t)lg4);

	sl = strchr(cfg.vm_net6, '/');
	snprintf(net, sizeof(net), "%.*s", (int)(sl - cfg.vm_net6), cfg.vm_net6);
	len = atoi(sl + 1);
	inet_pton(AF_INET6, net, &in6);
	uint64_t lo = 0;
	for (int i = 8; i < 16; i++)
		lo = lo << 8 | in6.s6_addr[i];
	uint64_t hostbits = len >= 64 ? 128 - len : 64;
	uint64_t mask = hostbits >= 64 ? ~0ull : ((1ull << hostbits) - 1);
	uint64_t span = mask - 2;
	uint64_t g = (lo & ~mask) | 1, a = (lo & ~mask) | (2 + num % span);
	for (int i = 15; i >= 8; i--, a >>= 8)
		in6.s6_addr[i] = (uint8_t)a;
	inet_ntop(AF_INET6, &in6, net, sizeof(net));
	snprintf(a6, l6, "%s/%d", net, len);
	for (int i = 15; i >= 8; i--, g >>= 8)
		in6.s6_addr[i] = (uint8_t)g;
	inet_ntop(AF_INET6, &in6, g6, (socklen_t)lg6);
}

/* ---------- the order driver ---------- */

static volatile sig_atomic_t stopping;

/* Nodes as the scheduler sees them, with what open orders commit on them.
 * Call with vlock held. */
static struct ctl_node *sched_nodes(int *count)
{
	int n = json_object_object_length(B[B_NODES].map), i = 0;
	struct ctl_node *t = calloc(n ? n : 1, sizeof(*t));
	time_t now = time(NULL);
	json_object_object_foreach(B[B_NODES].map, id, e) {
		json_object *v, *res, *g;
		if (!t || !json_object_object_get_ex(e, "v", &v))
			continue;
		struct ctl_node *x = &t[i++];
		snprintf(x->id, sizeof(x->id), "%s", id);
		struct nodekey *k = nodekey_by_id(id);
		x->up = jstr(v, "state") && !strcmp(jstr(v, "state"), "up") && k;
		(void)now;
		json_object_object_get_ex(v, "resources", &res);
		x->cpu = (int)jint(res, "cpu", 0);
		x->ram_mb = (int)jint(res, "ram_mb", 0);
		x->disk_gb = (int)jint(res, "disk_gb", 0);
		if (json_object_object_get_ex(res, "gpus", &g) && json_object_is_type(g, json_type_array))
			for (size_t j = 0; j < json_object_array_length(g) && x->ngpus < CTL_MAX_GPUS; j++)
				snprintf(x->gpus[x->ngpus++], sizeof(x->gpus[0]), "%s",
					 json_object_get_string(json_object_array_get_idx(g, j)));
		x->cc = 0;
		if (json_object_object_get_ex(v, "cc", &g) && json_object_is_type(g, json_type_array))
			for (size_t j = 0; j < json_object_array_length(g); j++)
				x->cc |= ctl_cc_parse(json_object_get_string(json_object_array_get_idx(g, j)) ?: "");
	}
	/* every order placed and not finished holds its share */
	json_object_object_foreach(B[B_ORDERS].map, oid, oe) {
		json_object *o, *ga;
		(void)oid;
		if (!t || !json_object_object_get_ex(oe, "v", &o) || !jstr(o, "node") || is_final(jstr(o, "state")))
			continue;
		for (int j = 0; j < i; j++)
			if (!strcmp(t[j].id, jstr(o, "node"))) {
				t[j].used_cpu += (int)jint(o, "cpu", 0);
				t[j].used_ram += (int)jint(o, "ram_mb", 0);
				t[j].used_disk += (int)jint(o, "disk_gb", 0);
				t[j].vms++;
				if (json_object_object_get_ex(o, "gpu_addrs", &ga))
					for (size_t q = 0; q < json_object_array_length(ga); q++)
						for (int r = 0; r < t[j].ngpus; r++)
							if (!strcmp(t[j].gpus[r], json_object_get_string(json_object_array_get_idx(ga, q)) ?: ""))
								t[j].gpu_used |= 1u << r;
			}
	}
	*count = i;
	return t;
}

static int node_is_up(const char *id)
{
	pthread_mutex_lock(&vlock);
	json_object *n = view_get(B_NODES, id, NULL);
	struct nodekey *k = nodekey_by_id(id);
	/* the record's state is check_nodes' judgement (it waits out store stalls) */
	int up = n && jstr(n, "state") && !strcmp(jstr(n, "state"), "up") && k;
	json_object_put(n);
	pthread_mutex_unlock(&vlock);
	return up;
}

static void vm_key(json_object *o, const char *node, char *key, size_t len)
{
	snprintf(key, len, "%s.%s", node ? node : jstr(o, "node"), jstr(o, "vm_id"));
}

/* The signed delete for the VM on node (when a spec was written there). */
static int vm_delete(json_object *o, const char *node, uint64_t gen)
{
	char key[200];
	vm_key(o, node, key, sizeof(key));
	char *old = NULL;
	size_t ol;
	int rc = vs_get(B[B_VMS].kv, key, &old, &ol, NULL);
	free(old);
	if (rc == VS_NOTFOUND)
		return VS_OK;
	if (rc != VS_OK)
		return rc;
	json_object *b = json_object_new_object();
	json_object_object_add(b, "vm_id", json_object_new_string(jstr(o, "vm_id")));
	json_object_object_add(b, "node", json_object_new_string(node ? node : jstr(o, "node")));
	json_object_object_add(b, "order", json_object_new_string(jstr(o, "id")));
	json_object_object_add(b, "gen", json_object_new_int64((int64_t)gen));
	json_object_object_add(b, "op", json_object_new_string("delete"));
	rc = seal_write(B_VMS, key, b);
	json_object_put(b);
	return rc;
}

static int routes_write(json_object *o, uint64_t gen)
{
	char key[CTL_NAME_MAX + 2];
	const char *name = jstr(o, "hostname");
	if (vs_name_key(name, key, sizeof(key)))
		return VS_ERR;
	pthread_mutex_lock(&vlock);
	json_object *n = view_get(B_NODES, jstr(o, "node"), NULL);
	pthread_mutex_unlock(&vlock);
	json_object *r = json_object_new_object();
	json_object_object_add(r, "name", json_object_new_string(name));
	json_object_object_add(r, "gen", json_object_new_int64((int64_t)gen));
	json_object_object_add(r, "vm_id", json_object_new_int64(jint(o, "vm_num", 0)));
	json_object_object_add(r, "node", json_object_new_string(jstr(o, "node")));
	json_object_object_add(r, "node4", jstr(n, "underlay4") ? json_object_new_string(jstr(n, "underlay4")) : NULL);
	json_object_object_add(r, "node6", jstr(n, "underlay6") ? json_object_new_string(jstr(n, "underlay6")) : NULL);
	json_object_put(n);
	int rc = seal_write(B_ROUTES, key, r);
	json_object_put(r);
	if (rc != VS_OK)
		return rc;
	json_object *d = json_object_new_object();
	json_object_object_add(d, "name", json_object_new_string(name));
	json_object_object_add(d, "gen", json_object_new_int64((int64_t)gen));
	json_object_object_add(d, "vm_id", json_object_new_int64(jint(o, "vm_num", 0)));
	rc = seal_write(B_DNS, key, d);
	json_object_put(d);
	return rc;
}

static int routes_delete(json_object *o)
{
	char key[CTL_NAME_MAX + 2];
	if (vs_name_key(jstr(o, "hostname"), key, sizeof(key)))
		return VS_ERR;
	int rc = kv_delete(B_DNS, key);
	return rc == VS_OK ? kv_delete(B_ROUTES, key) : rc;
}

/* Everything the order made elsewhere goes: the VM, its routes and name. */
static int teardown(json_object *o, uint64_t gen)
{
	int rc = VS_OK;
	if (jbool(o, "routed") || !strcmp(jstr(o, "state"), "ready") || !strcmp(jstr(o, "state"), "closed"))
		rc = routes_delete(o);
	if (rc == VS_OK && jstr(o, "node"))
		rc = vm_delete(o, NULL, gen);
	return rc;
}

static json_object *build_body(json_object *o, uint64_t gen)
{
	json_object *b = json_object_new_object(), *v;
	json_object_object_add(b, "vm_id", json_object_new_string(jstr(o, "vm_id")));
	json_object_object_add(b, "order", json_object_new_string(jstr(o, "id")));
	json_object_object_add(b, "gen", json_object_new_int64((int64_t)gen));
	json_object_object_add(b, "image", json_object_new_string(jstr(o, "image")));
	json_object_object_add(b, "hostname", json_object_new_string(jstr(o, "hostname")));
	json_object_object_add(b, "ssh_keys", json_object_object_get_ex(o, "ssh_keys", &v) ? jcopy(v) : json_object_new_array());
	json_object_object_add(b, "user_data", json_object_new_string(jstr(o, "user_data") ?: ""));
	json_object *va = json_object_new_array();
	for (int i = 0; i < cfg.nvalidators; i++)
		json_object_array_add(va, json_object_new_string(cfg.validators[i]));
	json_object_object_add(b, "validators", va);
	json_object_object_add(b, "t", json_object_new_int(cfg.validators_t));
	/* the registry measures the command line the agent boots, which carries these */
	static const char *const addrs[] = { "addr4", "gateway4", "addr6", "gateway6" };
	for (int i = 0; i < 4; i++)
		if (jstr(o, addrs[i]))
			json_object_object_add(b, addrs[i], json_object_new_string(jstr(o, addrs[i])));
	return b;
}

static json_object *vm_body(json_object *o, json_object *bs, uint64_t gen)
{
	json_object *b = json_object_new_object(), *spec = json_object_new_object(), *x, *ga;
	char mem[32];
	json_object_object_add(b, "vm_id", json_object_new_string(jstr(o, "vm_id")));
	json_object_object_add(b, "node", json_object_new_string(jstr(o, "node")));
	json_object_object_add(b, "order", json_object_new_string(jstr(o, "id")));
	json_object_object_add(b, "gen", json_object_new_int64((int64_t)gen));
	json_object_object_add(b, "op", json_object_new_string("run"));
	json_object_object_add(spec, "id", json_object_new_string(jstr(o, "vm_id")));
	json_object_object_add(spec, "vcpus", json_object_new_int64(jint(o, "cpu", 1)));
	snprintf(mem, sizeof(mem), "%" PRId64 "mb", jint(o, "ram_mb", 256));
	json_object_object_add(spec, "memory", json_object_new_string(mem));
	x = json_object_new_object();
	json_object_object_add(x, "url", json_object_new_string(jstr(bs, "disk_url") ?: ""));
	json_object_object_add(x, "sha256", json_object_new_string(jstr(bs, "disk_sha256") ?: ""));
	json_object_object_add(x, "format", json_object_new_string("raw"));
	json_object_object_add(spec, "disk", x);
	x = json_object_new_object();
	json_object_object_add(x, "kernel", json_object_new_string(jstr(bs, "kernel_url") ?: ""));
	json_object_object_add(x, "kernel_sha256", json_object_new_string(jstr(bs, "kernel_sha256") ?: ""));
	json_object_object_add(x, "initrd", json_object_new_string(jstr(bs, "initrd_url") ?: ""));
	json_object_object_add(x, "initrd_sha256", json_object_new_string(jstr(bs, "initrd_sha256") ?: ""));
	json_object_object_add(x, "cmdline", json_object_new_string(jstr(bs, "cmdline") ?: ""));
	json_object_object_add(x, "firmware", json_object_new_string("efi"));
	json_object_object_add(spec, "boot", x);
	json_object_object_add(spec, "tpm", json_object_new_boolean(1));
	json_object_object_add(spec, "attest", json_object_new_boolean(1));   /* efi + vTPM + the registry's initrd */
	json_object_object_add(spec, "confidential", json_object_new_string(jstr(o, "cc") ?: "none"));
	json_object_object_add(spec, "gpus", json_object_object_get_ex(o, "gpu_addrs", &ga) ? jcopy(ga) : json_object_new_array());
	x = json_object_new_object();
	json_object_object_add(x, "ipv4", json_object_new_string(jstr(o, "addr4") ?: ""));
	json_object_object_add(x, "gateway4", json_object_new_string(jstr(o, "gateway4") ?: ""));
	json_object_object_add(x, "ipv6", json_object_new_string(jstr(o, "addr6") ?: ""));
	json_object_object_add(x, "gateway6", json_object_new_string(jstr(o, "gateway6") ?: ""));
	json_object_object_add(spec, "network", x);
	json_object_object_add(spec, "ready_timeout", json_object_new_int(cfg.ready_timeout_s));
	json_object_object_add(spec, "port", json_object_new_int(443));
	json_object_object_add(spec, "vm_id", json_object_new_int64(jint(o, "vm_num", 0)));
	json_object_object_add(b, "spec", spec);
	return b;
}

/* While the store elects a leader every step fails, every tick: the log gets
 * at most 20 such lines a second (the metrics count them all). */
static int driver_error_due(void)
{
	static time_t sec;
	static int n;
	time_t now = time(NULL);
	if (now != sec) {
		sec = now;
		n = 0;
	}
	return ++n <= 20;
}

/* One step of one order.  o is the record at rev (a reference we own). */
static void drive(json_object *o, uint64_t rev, struct ctl_node *nodes, int nn)
{
	const char *st = jstr(o, "state"), *id = jstr(o, "id");
	time_t now = time(NULL), since = (time_t)jint(o, "state_since", now);
	int rc = VS_OK;
	char why[256];
	json_object *n = NULL;

	if (!st || !id)
		return;
	if (jbool(o, "cancel") && !is_final(st)) {
		if ((rc = teardown(o, rev)) == VS_OK) {
			n = order_next(o, "cancelled", "cancelled by the client");
			json_object_object_add(n, "routed", json_object_new_boolean(0));
		}
	} else if (!strcmp(st, "failed")) {
		if (!jbool(o, "cleaned") && (rc = teardown(o, rev)) == VS_OK) {
			n = order_next(o, NULL, NULL);
			json_object_object_add(n, "cleaned", json_object_new_boolean(1));
			json_object_object_add(n, "routed", json_object_new_boolean(0));
		}
	} else if (!strcmp(st, "cancelled")) {
		return;
	} else if (!strcmp(st, "requested")) {
		struct ctl_want w = { .cpu = (int)jint(o, "cpu", 1), .ram_mb = (int)jint(o, "ram_mb", 256),
				      .disk_gb = (int)jint(o, "disk_gb", 1), .gpus = (int)jint(o, "gpus", 0),
				      .cc = ctl_cc_parse(jstr(o, "cc") ?: "none") };
		json_object *ex;
		int pick = -1, gidx[CTL_MAX_GPUS];
		/* nodes that failed this order are not picked again */
		struct ctl_node *tmp = malloc((nn ? nn : 1) * sizeof(*tmp));
		if (!tmp)
			return;
		memcpy(tmp, nodes, nn * sizeof(*tmp));
		if (json_object_object_get_ex(o, "excluded", &ex))
			for (int i = 0; i < nn; i++)
				for (size_t j = 0; j < json_object_array_length(ex); j++)
					if (!strcmp(tmp[i].id, json_object_get_string(json_object_array_get_idx(ex, j)) ?: ""))
						tmp[i].up = 0;
		pick = ctl_pick(tmp, nn, &w, why, sizeof(why));
		free(tmp);
		if (pick < 0) {
			if (now - since >= cfg.schedule_timeout_s)
				n = order_next(o, "failed", why);
		} else {
			ctl_commit(&nodes[pick], &w, gidx);
			uint64_t num = jint(o, "vm_num", 0) ? (uint64_t)jint(o, "vm_num", 0) : rev;
			char a4[96], g4[64], a6[96], g6[80];
			vm_addrs(num, a4, sizeof(a4), g4, sizeof(g4), a6, sizeof(a6), g6, sizeof(g6));
			n = order_next(o, "scheduled", NULL);
			json_object_object_add(n, "node", json_object_new_string(nodes[pick].id));
			json_object_object_add(n, "vm_num", json_object_new_int64((int64_t)num));
			json_object_object_add(n, "addr4", json_object_new_string(a4));
			json_object_object_add(n, "gateway4", json_object_new_string(g4));
			json_object_object_add(n, "addr6", json_object_new_string(a6));
			json_object_object_add(n, "gateway6", json_object_new_string(g6));
			json_object *ga = json_object_new_array();
			for (int i = 0; i < w.gpus; i++)
				json_object_array_add(ga, json_object_new_string(nodes[pick].gpus[gidx[i]]));
			json_object_object_add(n, "gpu_addrs", ga);
		}
	} else if (!strcmp(st, "scheduled")) {
		json_object *b = build_body(o, rev);
		rc = seal_write(B_BUILDS, jstr(o, "vm_id"), b);
		json_object_put(b);
		if (rc == VS_OK)
			n = order_next(o, "building", NULL);
	} else if (!strcmp(st, "building")) {
		pthread_mutex_lock(&vlock);
		json_object *bs = view_get(B_BUILDSTATUS, jstr(o, "vm_id"), NULL);
		pthread_mutex_unlock(&vlock);
		const char *bst = jstr(bs, "state");
		if (bst && !strcmp(bst, "failed")) {
			snprintf(why, sizeof(why), "build failed: %s", jstr(bs, "reason") ?: "no reason given");
			n = order_next(o, "failed", why);
		} else if (bst && !strcmp(bst, "done")) {
			if (!node_is_up(jstr(o, "node"))) {
				n = NULL;   /* the launch check below reschedules */
				goto launch_checks;
			}
			char key[200];
			json_object *vb = vm_body(o, bs, rev);
			vm_key(o, NULL, key, sizeof(key));
			rc = seal_write(B_VMS, key, vb);
			json_object_put(vb);
			if (rc == VS_OK)
				n = order_next(o, "launching", NULL);
		} else if (now - since >= cfg.state_timeout_s) {
			snprintf(why, sizeof(why), "timeout: no build after %d s", cfg.state_timeout_s);
			n = order_next(o, "failed", why);
		}
		json_object_put(bs);
	} else if (!strcmp(st, "launching") || !strcmp(st, "attesting") || !strcmp(st, "ready") || !strcmp(st, "closed")) {
launch_checks:;
		pthread_mutex_lock(&vlock);
		json_object *vs = view_get(B_VMSTATUS, jstr(o, "vm_id"), NULL);
		pthread_mutex_unlock(&vlock);
		/* a report from another node (an earlier placement) is not about this one */
		if (vs && (!jstr(vs, "node") || strcmp(jstr(vs, "node"), jstr(o, "node")))) {
			json_object_put(vs);
			vs = NULL;
		}
		const char *vst = jstr(vs, "state");
		int up = node_is_up(jstr(o, "node"));
		st = jstr(o, "state");
		if (!up && (!strcmp(st, "closed") || !strcmp(st, "ready"))) {
			/* the VM is unreachable: its name and routes go, the order stays */
			if (jbool(o, "routed") && (rc = routes_delete(o)) == VS_OK) {
				n = order_next(o, NULL, NULL);
				json_object_object_add(n, "routed", json_object_new_boolean(0));
				vm_log("event=routes_withdrawn order=%s node=%s name=%s", id, jstr(o, "node"), jstr(o, "hostname"));
			}
		} else if (!up) {
			/* the node died before the VM was up: place the order again */
			const char *old = jstr(o, "node");
			int attempts = (int)jint(o, "attempts", 0) + 1;
			if ((rc = vm_delete(o, NULL, rev)) == VS_OK) {
				COUNT(M.reschedules);
				if (attempts >= cfg.max_attempts) {
					snprintf(why, sizeof(why), "node %.16s went down during launch, %d attempts", old, attempts);
					n = order_next(o, "failed", why);
				} else {
					snprintf(why, sizeof(why), "node %.16s went down; rescheduled", old);
					n = order_next(o, "requested", why);
					json_object *ex, *na = json_object_new_array();
					if (json_object_object_get_ex(o, "excluded", &ex))
						for (size_t j = 0; j < json_object_array_length(ex); j++)
							json_object_array_add(na, jcopy(json_object_array_get_idx(ex, j)));
					json_object_array_add(na, json_object_new_string(old));
					json_object_object_add(n, "excluded", na);
					json_object_object_add(n, "node", NULL);
					json_object_object_add(n, "gpu_addrs", json_object_new_array());
				}
				json_object_object_add(n, "attempts", json_object_new_int(attempts));
				vm_log("event=reschedule order=%s node=%s attempts=%d", id, old, attempts);
			}
		} else if (vst && (!strcmp(vst, "failed") || !strcmp(vst, "deleted"))) {
			snprintf(why, sizeof(why), "vm %s: %s", vst, jstr(vs, "reason") ?: "no reason given");
			n = order_next(o, "failed", why);
		} else if (!strcmp(st, "building")) {
			/* node up again before the spec was written: next tick writes it */
		} else if (!strcmp(st, "launching") && vst && !strcmp(vst, "attesting")) {
			n = order_next(o, "attesting", NULL);
		} else if ((!strcmp(st, "launching") || !strcmp(st, "attesting")) && vst && !strcmp(vst, "ready")) {
			n = order_next(o, "ready", NULL);
		} else if (!strcmp(st, "ready")) {
			if ((rc = routes_write(o, rev)) == VS_OK) {
				n = order_next(o, "closed", NULL);
				json_object_object_add(n, "routed", json_object_new_boolean(1));
			}
		} else if (!strcmp(st, "closed")) {
			if (!jbool(o, "routed") && vst && !strcmp(vst, "ready") && (rc = routes_write(o, rev)) == VS_OK) {
				n = order_next(o, NULL, NULL);
				json_object_object_add(n, "routed", json_object_new_boolean(1));
				vm_log("event=routes_restored order=%s node=%s", id, jstr(o, "node"));
			}
		} else if (now - since >= cfg.state_timeout_s) {
			snprintf(why, sizeof(why), "timeout: no %s report after %d s", !strcmp(st, "launching") ? "attesting" : "ready",
				 cfg.state_timeout_s);
			n = order_next(o, "failed", why);
		}
		json_object_put(vs);
	}
	if (rc != VS_OK && rc != VS_CONFLICT && driver_error_due())
		vm_log("event=driver_error order=%s state=%s reason=\"%s\"", id, st, vs_strerror(rc));
	if (n) {
		const char *to = jstr(n, "state");
		char tos[16];
		snprintf(tos, sizeof(tos), "%s", to);
		int changed = strcmp(tos, st);
		rc = order_write(n, rev, NULL);
		if (rc == VS_OK && changed)
			vm_log("event=order order=%s state=%s", id, tos);
		else if (rc != VS_OK && rc != VS_CONFLICT && driver_error_due())
			vm_log("event=driver_error order=%s state=%s write=\"%s\"", id, st, vs_strerror(rc));
	}
}

/* Before a node is called down: its heartbeat read from the store itself, not
 * from the watch, which stalls while the store elects a leader or we
 * reconnect.  1 = the store answered and the newest verified heartbeat is
 * older than the timeout; 0 = fresh, or the store did not answer (judge later). */
static int heartbeat_stale(const char *id, time_t now)
{
	char *env = NULL, *body = NULL;
	size_t len;
	uint64_t gen;
	int rc = vs_get(B[B_HEARTBEATS].kv, id, &env, &len, NULL);
	if (rc == VS_NOTFOUND)
		return 1;
	if (rc != VS_OK)
		return 0;
	pthread_mutex_lock(&vlock);
	struct nodekey *nk = nodekey_by_id(id);
	EVP_PKEY *pub = nk ? nk->pub : NULL;
	if (pub)
		EVP_PKEY_up_ref(pub);
	pthread_mutex_unlock(&vlock);
	rc = pub ? vs_open(pub, "heartbeats", id, env, len, &body, &gen) : VS_BADSIG;
	EVP_PKEY_free(pub);
	free(env);
	if (rc != VS_OK) {
		free(body);
		return 1;
	}
	json_object *b = json_tokener_parse(body);
	free(body);
	time_t ts = (time_t)jint(b, "ts", 0);
	json_object_put(b);
	if (now - ts <= cfg.node_timeout_s) {
		pthread_mutex_lock(&vlock);
		if ((nk = nodekey_by_id(id)) && ts <= now) {
			if (ts > nk->last_seen)
				nk->last_seen = ts;
			if (ts > nk->last_hb)
				nk->last_hb = ts;
		}
		pthread_mutex_unlock(&vlock);
		return 0;
	}
	return 1;
}

/* Node liveness: up -> down when heartbeats stop, back up when they return. */
static void check_nodes(void)
{
	time_t now = time(NULL);
	pthread_mutex_lock(&vlock);
	int n = json_object_object_length(B[B_NODES].map), k = 0;
	struct {
		char id[65];
		int up;
		uint64_t rev;
		json_object *v;
	} *t = calloc(n ? n : 1, sizeof(*t));
	json_object_object_foreach(B[B_NODES].map, id, e) {
		json_object *v;
		struct nodekey *nk = nodekey_by_id(id);
		if (!t || !json_object_object_get_ex(e, "v", &v) || !nk)
			continue;
		snprintf(t[k].id, sizeof(t[k].id), "%s", id);
		/* down needs silence past the grace a restart gives; up needs a real heartbeat */
		const char *cur = jstr(v, "state") ?: "";
		if (!strcmp(cur, "up"))
			t[k].up = now - nk->last_seen <= cfg.node_timeout_s;
		else
			t[k].up = nk->last_hb && now - nk->last_hb <= cfg.node_timeout_s;
		t[k].rev = (uint64_t)jint(e, "rev", 0);
		t[k].v = json_object_get(v);
		k++;
	}
	pthread_mutex_unlock(&vlock);
	for (int i = 0; i < k; i++) {
		const char *st = jstr(t[i].v, "state");
		const char *want = t[i].up ? "up" : "down";
		if (st && strcmp(st, want) && !t[i].up && strcmp(st, "joining") && !heartbeat_stale(t[i].id, now))
			want = st;   /* the watch lagged (a store election), the node did not */
		if (st && strcmp(st, want) && !(t[i].up == 0 && !strcmp(st, "joining"))) {
			json_object *nv = jcopy(t[i].v);
			char ts[32];
			rfc3339(now, ts);
			json_object_object_add(nv, "state", json_object_new_string(want));
			json_object_object_add(nv, "last_seen", json_object_new_string(ts));
			size_t len;
			const char *s = json_object_to_json_string_length(nv, JSON_C_TO_STRING_PLAIN, &len);
			uint64_t nr;
			if (vs_update(B[B_NODES].kv, t[i].id, s, len, t[i].rev, &nr) == VS_OK) {
				pthread_mutex_lock(&vlock);
				view_set(B_NODES, t[i].id, json_object_get(nv), nr);
				json_object *peer = view_get(B_PEERS, "", NULL);
				json_object_put(peer);
				pthread_mutex_unlock(&vlock);
				char pk[80], msgid[120];
				snprintf(pk, sizeof(pk), "node.%s", t[i].id);
				json_object *p = json_object_new_object();
				json_object_object_add(p, "kind", json_object_new_string("node"));
				json_object_object_add(p, "id", json_object_new_string(t[i].id));
				json_object_object_add(p, "underlay4", jstr(nv, "underlay4") ? json_object_new_string(jstr(nv, "underlay4")) : NULL);
				json_object_object_add(p, "underlay6", jstr(nv, "underlay6") ? json_object_new_string(jstr(nv, "underlay6")) : NULL);
				json_object_object_add(p, "public4", NULL);
				json_object_object_add(p, "public6", NULL);
				json_object_object_add(p, "location", json_object_new_string(jstr(nv, "location") ?: ""));
				json_object_object_add(p, "health", json_object_new_string(want));
				json_object_object_add(p, "ts", json_object_new_string(ts));
				s = json_object_to_json_string_length(p, JSON_C_TO_STRING_PLAIN, &len);
				vs_put(B[B_PEERS].kv, pk, s, len, NULL);
				json_object_put(p);
				if (!t[i].up)
					COUNT(M.nodes_down);
				vm_log("event=node node=%s state=%s", t[i].id, want);
				json_object *a = json_object_new_object();
				json_object_object_add(a, "node", json_object_new_string(t[i].id));
				json_object_object_add(a, "state", json_object_new_string(want));
				snprintf(msgid, sizeof(msgid), "node.%s.%" PRIu64, t[i].id, nr);
				audit_kind("node", msgid, a);
			}
			json_object_put(nv);
		}
		json_object_put(t[i].v);
	}
	free(t);
}

static void *driver_main(void *arg)
{
	while (!stopping) {
		struct timespec ts = { cfg.tick_ms / 1000, (long)(cfg.tick_ms % 1000) * 1000000L };
		check_nodes();
		audit_flush();
		pthread_mutex_lock(&vlock);
		int nn = 0, no = json_object_object_length(B[B_ORDERS].map), k = 0;
		struct ctl_node *nodes = sched_nodes(&nn);
		struct {
			json_object *o;
			uint64_t rev;
		} *todo = calloc(no ? no : 1, sizeof(*todo));
		json_object_object_foreach(B[B_ORDERS].map, id, e) {
			json_object *o;
			(void)id;
			if (!todo || !json_object_object_get_ex(e, "v", &o))
				continue;
			const char *st = jstr(o, "state");
			if (!st || !strcmp(st, "cancelled") || (!strcmp(st, "failed") && jbool(o, "cleaned")))
				continue;
			todo[k].o = json_object_get(o);
			todo[k].rev = (uint64_t)jint(e, "rev", 0);
			k++;
		}
		pthread_mutex_unlock(&vlock);
		for (int i = 0; i < k; i++) {
			if (!stopping && nodes)
				drive(todo[i].o, todo[i].rev, nodes, nn);
			json_object_put(todo[i].o);
		}
		free(todo);
		free(nodes);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* ---------- the API ---------- */

struct caller {
	char id[40], storefront[64];
	int scopes;
};

static struct {
	char id[40];
	double tokens;
	struct timespec last;
} rates[RATE_SLOTS];

static int rate_ok(const struct caller *c, int rate)
{
	unsigned h = 5381;
	for (const char *p = c->id; *p; p++)
		h = h * 33 + (unsigned char)*p;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (int i = 0; i < 8; i++) {
		int s = (int)((h + (unsigned)i) % RATE_SLOTS);
		if (!rates[s].id[0] || !strcmp(rates[s].id, c->id)) {
			if (!rates[s].id[0]) {
				snprintf(rates[s].id, sizeof(rates[s].id), "%s", c->id);
				rates[s].tokens = rate;
				rates[s].last = now;
			}
			double dt = (double)(now.tv_sec - rates[s].last.tv_sec) + (now.tv_nsec - rates[s].last.tv_nsec) / 1e9;
			rates[s].last = now;
			rates[s].tokens += dt * rate;
			if (rates[s].tokens > rate)
				rates[s].tokens = rate;   /* a burst of one second's worth */
			if (rates[s].tokens < 1)
				return 0;
			rates[s].tokens -= 1;
			return 1;
		}
	}
	return 1;   /* table full: not limited rather than refused */
}

static void reply_json(struct evhttp_request *req, int status, json_object *o)
{
	size_t n;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
	COUNT(M.http[status / 100 < 6 ? status / 100 : 5]);
	httpd_send(req, status, NULL, s, n);
}

static void reply_err(struct evhttp_request *req, int status, const char *code, const char *msg)
{
	COUNT(M.http[status / 100 < 6 ? status / 100 : 5]);
	httpd_error(req, status, code, msg);
}

static void reply_cerr(struct evhttp_request *req, const struct ctl_err *e)
{
	reply_err(req, e->status, e->code, e->msg);
}

/* Bearer token -> caller.  0, or -1 after a 401/403/429 was sent. */
static int authorize(struct evhttp_request *req, int need, struct caller *c)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	char hash[65];
	if (!h || strncmp(h, "Bearer ", 7) || strlen(h + 7) < 16 || strlen(h + 7) > 200) {
		COUNT(M.auth_refused);
		reply_err(req, 401, "unauthorized", "an API token is required (Authorization: Bearer ...)");
		return -1;
	}
	sha256_hex(h + 7, strlen(h + 7), hash);
	pthread_mutex_lock(&vlock);
	json_object *t = view_get(B_TOKENS, hash, NULL);
	pthread_mutex_unlock(&vlock);
	if (!t) {
		COUNT(M.auth_refused);
		reply_err(req, 401, "unauthorized", "unknown API token");
		return -1;
	}
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", jstr(t, "id") ?: "?");
	snprintf(c->storefront, sizeof(c->storefront), "%s", jstr(t, "storefront") ?: "");
	json_object *sc;
	if (json_object_object_get_ex(t, "scopes", &sc))
		for (size_t i = 0; i < json_object_array_length(sc); i++) {
			const char *s = json_object_get_string(json_object_array_get_idx(sc, i)) ?: "";
			c->scopes |= !strcmp(s, "order") ? CTL_SCOPE_ORDER : !strcmp(s, "read") ? CTL_SCOPE_READ
									: !strcmp(s, "admin") ? CTL_SCOPE_ADMIN : 0;
		}
	int rate = (int)jint(t, "rate", 20);
	json_object_put(t);
	if (c->scopes & CTL_SCOPE_ADMIN)
		c->scopes |= CTL_SCOPE_ORDER | CTL_SCOPE_READ;
	if (!(c->scopes & need)) {
		COUNT(M.auth_refused);
		reply_err(req, 403, "forbidden", "the token lacks the scope this needs");
		return -1;
	}
	if (!rate_ok(c, rate)) {
		COUNT(M.rate_limited);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		reply_err(req, 429, "rate_limited", "too many requests for this token");
		return -1;
	}
	return 0;
}

static json_object *read_body(struct evhttp_request *req, struct ctl_err *e)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > CTL_MAX_BODY) {
		e->status = 413;
		snprintf(e->code, sizeof(e->code), "too_large");
		snprintf(e->msg, sizeof(e->msg), "request body over %d bytes", CTL_MAX_BODY);
		return NULL;
	}
	char *b = malloc(len + 1);
	if (!b) {
		e->status = 503;
		snprintf(e->code, sizeof(e->code), "no_memory");
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		return NULL;
	}
	evbuffer_copyout(in, b, len);
	b[len] = 0;
	json_object *j = ctl_parse_body(b, len, e);
	OPENSSL_cleanse(b, len);   /* may hold a registration key */
	free(b);
	return j;
}

/* The Order as the API shows it: the record without the user's script. */
static json_object *order_view(json_object *o, uint64_t rev)
{
	json_object *v = jcopy(o);
	const char *ud = jstr(o, "user_data");
	json_object_object_del(v, "user_data");
	json_object_object_del(v, "cancel");
	json_object_object_del(v, "cleaned");
	json_object_object_del(v, "excluded");
	json_object_object_del(v, "state_since");
	json_object_object_add(v, "user_data_bytes", json_object_new_int((int)(ud ? strlen(ud) : 0)));
	json_object_object_add(v, "cancel_requested", json_object_new_boolean(jbool(o, "cancel")));
	json_object_object_add(v, "revision", json_object_new_int64((int64_t)rev));
	return v;
}

static void reply_order(struct evhttp_request *req, int status, json_object *o, uint64_t rev)
{
	char etag[32];
	snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", rev);
	evhttp_add_header(evhttp_request_get_output_headers(req), "ETag", etag);
	json_object *v = order_view(o, rev);
	reply_json(req, status, v);
	json_object_put(v);
}

static int store_failed(struct evhttp_request *req, int rc)
{
	COUNT(M.store_errors);
	reply_err(req, 503, "store_unavailable", rc == VS_UNKNOWN ? "the store did not answer in time; retry with the "
								      "same Idempotency-Key" : "the store refused the write; retry");
	return -1;
}

/* Looks an order up in the view, else in the store (a write the watch has not
 * delivered yet).  New reference or NULL. */
static json_object *order_lookup(const char *id, uint64_t *rev)
{
	pthread_mutex_lock(&vlock);
	json_object *o = view_get(B_ORDERS, id, rev);
	pthread_mutex_unlock(&vlock);
	if (o)
		return o;
	char *val = NULL;
	size_t len;
	if (vs_get(B[B_ORDERS].kv, id, &val, &len, rev) != VS_OK)
		return NULL;
	o = json_tokener_parse(val);
	free(val);
	if (o) {
		pthread_mutex_lock(&vlock);
		view_set(B_ORDERS, id, json_object_get(o), *rev);
		pthread_mutex_unlock(&vlock);
	}
	return o;
}

static int visible(const struct caller *c, json_object *o)
{
	return (c->scopes & CTL_SCOPE_ADMIN) || !strcmp(jstr(o, "storefront") ?: "", c->storefront);
}

/* The hostname is held by another order that is not finished. */
static int name_taken(const char *name, const char *except)
{
	int taken = 0;
	pthread_mutex_lock(&vlock);
	json_object_object_foreach(B[B_ORDERS].map, id, e) {
		json_object *o;
		if (json_object_object_get_ex(e, "v", &o) && !is_final(jstr(o, "state")) && jstr(o, "hostname") &&
		    !strcmp(jstr(o, "hostname"), name) && (!except || strcmp(id, except)))
			taken = 1;
	}
	pthread_mutex_unlock(&vlock);
	return taken;
}

static json_object *new_order(const char *id, const struct caller *c, const struct ctl_order_req *r)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array(), *h = json_object_new_array(), *ev;
	char ts[32], vm[40];
	time_t now = time(NULL);
	rfc3339(now, ts);
	snprintf(vm, sizeof(vm), "vm-%s", id + 4);
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "storefront", json_object_new_string(c->storefront));
	json_object_object_add(o, "token", json_object_new_string(c->id));
	json_object_object_add(o, "state", json_object_new_string("requested"));
	json_object_object_add(o, "reason", NULL);
	json_object_object_add(o, "image", json_object_new_string(r->image));
	json_object_object_add(o, "hostname", json_object_new_string(r->hostname));
	json_object_object_add(o, "cpu", json_object_new_int(r->cpu));
	json_object_object_add(o, "ram_mb", json_object_new_int(r->ram_mb));
	json_object_object_add(o, "disk_gb", json_object_new_int(r->disk_gb));
	json_object_object_add(o, "gpus", json_object_new_int(r->gpus));
	json_object_object_add(o, "cc", json_object_new_string(ctl_cc_name(r->cc)));
	for (int i = 0; i < r->nssh; i++)
		json_object_array_add(a, json_object_new_string(r->ssh_keys[i]));
	json_object_object_add(o, "ssh_keys", a);
	json_object_object_add(o, "user_data", r->user_data ? json_object_new_string(r->user_data) : NULL);
	json_object_object_add(o, "vm_id", json_object_new_string(vm));
	json_object_object_add(o, "vm_num", json_object_new_int(0));
	json_object_object_add(o, "node", NULL);
	json_object_object_add(o, "gpu_addrs", json_object_new_array());
	json_object_object_add(o, "addr4", NULL);
	json_object_object_add(o, "addr6", NULL);
	json_object_object_add(o, "attempts", json_object_new_int(0));
	json_object_object_add(o, "routed", json_object_new_boolean(0));
	json_object_object_add(o, "created", json_object_new_string(ts));
	json_object_object_add(o, "updated", json_object_new_string(ts));
	json_object_object_add(o, "state_since", json_object_new_int64(now));
	ev = json_object_new_object();
	json_object_object_add(ev, "seq", json_object_new_int(1));
	json_object_object_add(ev, "state", json_object_new_string("requested"));
	json_object_object_add(ev, "ts", json_object_new_string(ts));
	json_object_array_add(h, ev);
	json_object_object_add(o, "history", h);
	return o;
}

static void api_create_order(struct evhttp_request *req, const struct caller *c)
{
	struct ctl_err e = { 0 };
	struct ctl_order_req r;
	const char *ikey = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
	json_object *j = read_body(req, &e);
	if (!j) {
		reply_cerr(req, &e);
		return;
	}
	if (ctl_order_req(j, &r, &e)) {
		json_object_put(j);
		reply_cerr(req, &e);
		return;
	}
	/* the request as the client meant it, for the idempotency check */
	char bodyhash[65], id[40], ik[200];
	const char *canon = js(j);
	sha256_hex(canon, strlen(canon), bodyhash);
	json_object_put(j);
	if (ikey && (!ikey[0] || strlen(ikey) > 200)) {
		ctl_order_req_free(&r);
		reply_err(req, 400, "bad_header", "Idempotency-Key must be 1..200 characters");
		return;
	}
	snprintf(id, sizeof(id), "ord-");
	rand_hex(8, id + 4);
	if (ikey) {
		char kh[65];
		sha256_hex(ikey, strlen(ikey), kh);
		snprintf(ik, sizeof(ik), "%s.%s", c->id, kh);
		json_object *rec = json_object_new_object();
		json_object_object_add(rec, "order", json_object_new_string(id));
		json_object_object_add(rec, "body_sha256", json_object_new_string(bodyhash));
		int rc = vs_create(B[B_IDEM].kv, ik, js(rec), strlen(js(rec)), NULL);
		json_object_put(rec);
		if (rc == VS_EXISTS || rc == VS_UNKNOWN) {
			char *val = NULL;
			size_t len;
			if ((rc = vs_get(B[B_IDEM].kv, ik, &val, &len, NULL)) != VS_OK) {
				ctl_order_req_free(&r);
				free(val);
				store_failed(req, rc);
				return;
			}
			json_object *prev = json_tokener_parse(val);
			free(val);
			const char *pid = jstr(prev, "order"), *ph = jstr(prev, "body_sha256");
			if (!pid || !ph || strcmp(ph, bodyhash)) {
				json_object_put(prev);
				ctl_order_req_free(&r);
				reply_err(req, 422, "idempotency_mismatch", "this Idempotency-Key was used for another request");
				return;
			}
			uint64_t orev = 0;
			json_object *o = order_lookup(pid, &orev);
			if (o) {   /* the same request again: the same order */
				COUNT(M.idem_replays);
				reply_order(req, 200, o, orev);
				json_object_put(o);
				json_object_put(prev);
				ctl_order_req_free(&r);
				return;
			}
			/* the first attempt stopped between the two writes: finish it */
			snprintf(id, sizeof(id), "%s", pid);
			json_object_put(prev);
		} else if (rc != VS_OK) {
			ctl_order_req_free(&r);
			store_failed(req, rc);
			return;
		}
	}
	if (name_taken(r.hostname, id)) {
		ctl_order_req_free(&r);
		reply_err(req, 409, "name_taken", "another open order has this hostname");
		return;
	}
	{   /* the image must be in the registry's catalogue */
		char ck[140], *at = strchr(r.image, '@');
		snprintf(ck, sizeof(ck), "%.*s.%s", (int)(at - r.image), r.image, at + 1);
		for (char *p = ck + (at - r.image) + 1; *p; p++)
			if (*p == '.')
				*p = '_';
		pthread_mutex_lock(&vlock);
		json_object *img = view_get(B_CATALOG, ck, NULL);
		pthread_mutex_unlock(&vlock);
		if (!img) {
			ctl_order_req_free(&r);
			reply_err(req, 422, "unknown_image", "no such image in the catalogue (GET /v1/images)");
			return;
		}
		json_object_put(img);
	}
	json_object *o = new_order(id, c, &r);
	ctl_order_req_free(&r);
	uint64_t rev = 0;
	int rc = order_write(json_object_get(o), 0, &rev);
	if (rc == VS_EXISTS || rc == VS_UNKNOWN) {
		json_object *have = order_lookup(id, &rev);
		if (have) {
			reply_order(req, 201, have, rev);
			json_object_put(have);
			json_object_put(o);
			return;
		}
	}
	if (rc != VS_OK) {
		json_object_put(o);
		store_failed(req, rc);
		return;
	}
	COUNT(M.orders_created);
	audit_order(o, "requested", NULL, 1);
	vm_log("event=order order=%s state=requested storefront=%s image=%s", id, c->storefront, jstr(o, "image"));
	char loc[80];
	snprintf(loc, sizeof(loc), "/v1/orders/%s", id);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
	reply_order(req, 201, o, rev);
	json_object_put(o);
}

static const char *query_param(struct evkeyvalq *q, const char *k)
{
	return evhttp_find_header(q, k);
}

static void api_list_orders(struct evhttp_request *req, const struct caller *c, struct evkeyvalq *q)
{
	const char *stf = query_param(q, "state"), *sf = query_param(q, "storefront");
	if (stf && state_idx(stf) < 0) {
		reply_err(req, 400, "bad_query", "state must be one of the order states");
		return;
	}
	json_object *arr = json_object_new_array();
	pthread_mutex_lock(&vlock);
	json_object_object_foreach(B[B_ORDERS].map, id, e) {
		json_object *o;
		(void)id;
		if (!json_object_object_get_ex(e, "v", &o) || !visible(c, o) || (stf && strcmp(stf, jstr(o, "state") ?: "")) ||
		    (sf && strcmp(sf, jstr(o, "storefront") ?: "")))
			continue;
		json_object_array_add(arr, order_view(o, (uint64_t)jint(e, "rev", 0)));
	}
	pthread_mutex_unlock(&vlock);
	json_object *r = json_object_new_object();
	json_object_object_add(r, "orders", arr);
	reply_json(req, 200, r);
	json_object_put(r);
}

static int id_ok(const char *s, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(s, prefix, pl) || strlen(s) != pl + 16)
		return 0;
	for (const char *p = s + pl; *p; p++)
		if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
			return 0;
	return 1;
}

static void api_cancel(struct evhttp_request *req, const struct caller *c, const char *id)
{
	const char *im = evhttp_find_header(evhttp_request_get_input_headers(req), "If-Match");
	uint64_t want = 0;
	if (im) {
		char *end;
		const char *p = im[0] == '"' ? im + 1 : im;
		errno = 0;
		want = strtoull(p, &end, 10);
		if (errno || end == p || (*end && strcmp(end, im[0] == '"' ? "\"" : ""))) {
			reply_err(req, 400, "bad_header", "If-Match takes the order's revision (its ETag)");
			return;
		}
	}
	for (int tries = 0; tries < 5; tries++) {
		uint64_t rev = 0;
		json_object *o = order_lookup(id, &rev);
		if (!o || !visible(c, o)) {
			json_object_put(o);
			reply_err(req, 404, "not_found", "no such order");
			return;
		}
		if (want && want != rev) {
			json_object_put(o);
			reply_err(req, 412, "revision_conflict", "the order changed since that revision; read it again");
			return;
		}
		if (is_final(jstr(o, "state"))) {
			json_object_put(o);
			reply_err(req, 409, "already_final", "the order is already failed or cancelled");
			return;
		}
		if (jbool(o, "cancel")) {
			reply_order(req, 202, o, rev);
			json_object_put(o);
			return;
		}
		json_object *n = order_next(o, NULL, NULL);
		json_object_object_add(n, "cancel", json_object_new_boolean(1));
		json_object_put(o);
		uint64_t nr = 0;
		json_object_get(n);
		int rc = order_write(n, rev, &nr);
		if (rc == VS_OK) {
			vm_log("event=cancel order=%s storefront=%s", id, c->storefront);
			reply_order(req, 202, n, nr);
			json_object_put(n);
			return;
		}
		json_object_put(n);
		if (rc != VS_CONFLICT || want) {
			if (rc == VS_CONFLICT)
				reply_err(req, 412, "revision_conflict", "the order changed since that revision; read it again");
			else
				store_failed(req, rc);
			return;
		}
	}
	reply_err(req, 409, "busy", "the order kept changing; retry");
}

/* Long polls: GET /v1/orders/{id}/events?after=N&wait=S */
struct parked {
	struct evhttp_request *req;
	char id[80];
	int64_t after;
	time_t deadline;
	int used;
	int sse;            /* a server-sent event stream: chunks until the order is final */
};
static struct parked parked[MAX_PARKED];

static json_object *events_after(json_object *o, int64_t after)
{
	json_object *h, *arr = json_object_new_array();
	if (json_object_object_get_ex(o, "history", &h))
		for (size_t i = 0; i < json_object_array_length(h); i++) {
			json_object *ev = json_object_array_get_idx(h, i);
			if (jint(ev, "seq", 0) > after) {
				json_object *x = jcopy(ev);
				json_object_object_add(x, "order", json_object_new_string(jstr(o, "id")));
				json_object_array_add(arr, x);
			}
		}
	return arr;
}

static void reply_events(struct evhttp_request *req, json_object *o, int64_t after)
{
	json_object *r = json_object_new_object(), *ev = events_after(o, after);
	int64_t next = after;
	for (size_t i = 0; i < json_object_array_length(ev); i++)
		next = jint(json_object_array_get_idx(ev, i), "seq", next);
	json_object_object_add(r, "events", ev);
	json_object_object_add(r, "next", json_object_new_int64(next));
	json_object_object_add(r, "state", json_object_new_string(jstr(o, "state")));
	reply_json(req, 200, r);
	json_object_put(r);
}

static void parked_closed(struct evhttp_connection *conn, void *arg)
{
	struct parked *p = arg;
	p->used = 0;   /* the client went away; libevent frees the request */
}

/* SSE: one event per state change, id = its seq (a client that reconnects
 * sends Last-Event-ID and gets the ones after it). */
static int sse_send(struct parked *p, json_object *o)
{
	json_object *ev = events_after(o, p->after);
	struct evbuffer *b = evbuffer_new();
	int n = (int)json_object_array_length(ev);
	for (int i = 0; b && i < n; i++) {
		json_object *e = json_object_array_get_idx(ev, i);
		evbuffer_add_printf(b, "id: %" PRId64 "\nevent: state\ndata: %s\n\n", jint(e, "seq", 0), js(e));
		p->after = jint(e, "seq", p->after);
	}
	if (b && n)
		evhttp_send_reply_chunk(p->req, b);
	if (b)
		evbuffer_free(b);
	json_object_put(ev);
	return n;
}

static void poll_parked(evutil_socket_t fd, short ev, void *arg)
{
	time_t now = time(NULL);
	for (int i = 0; i < MAX_PARKED; i++) {
		struct parked *p = &parked[i];
		if (!p->used)
			continue;
		pthread_mutex_lock(&vlock);
		json_object *o = view_get(B_ORDERS, p->id, NULL);
		pthread_mutex_unlock(&vlock);
		json_object *h;
		int64_t last = 0;
		if (o && json_object_object_get_ex(o, "history", &h))
			last = (int64_t)json_object_array_length(h);
		if (p->sse) {
			if (o && last > p->after)
				sse_send(p, o);
			const char *st = jstr(o, "state");
			if (!o || is_final(st) || (st && !strcmp(st, "closed")) || now >= p->deadline || stopping) {
				struct evhttp_connection *conn = evhttp_request_get_connection(p->req);
				if (conn)
					evhttp_connection_set_closecb(conn, NULL, NULL);
				p->used = 0;
				evhttp_send_reply_end(p->req);
			}
		} else if (!o || last > p->after || now >= p->deadline || stopping) {
			struct evhttp_connection *conn = evhttp_request_get_connection(p->req);
			if (conn)
				evhttp_connection_set_closecb(conn, NULL, NULL);
			p->used = 0;
			if (o)
				reply_events(p->req, o, p->after);
			else
				reply_err(p->req, 404, "not_found", "no such order");
		}
		json_object_put(o);
	}
}

static void api_events(struct evhttp_request *req, const struct caller *c, const char *id, struct evkeyvalq *q)
{
	int after = 0, wait = 0;
	const char *a = query_param(q, "after"), *w = query_param(q, "wait");
	if ((a && parse_int(a, 0, 1 << 30, &after)) || (w && parse_int(w, 0, 60, &wait))) {
		reply_err(req, 400, "bad_query", "after takes an event number, wait 0..60 seconds");
		return;
	}
	uint64_t rev;
	json_object *o = order_lookup(id, &rev), *h;
	if (!o || !visible(c, o)) {
		json_object_put(o);
		reply_err(req, 404, "not_found", "no such order");
		return;
	}
	int64_t last = json_object_object_get_ex(o, "history", &h) ? (int64_t)json_object_array_length(h) : 0;
	const char *accept = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
	if (accept && strstr(accept, "text/event-stream")) {
		const char *lei = evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
		int from = after;
		if (lei && parse_int(lei, 0, 1 << 30, &from)) {
			json_object_put(o);
			reply_err(req, 400, "bad_header", "Last-Event-ID takes an event number");
			return;
		}
		for (int i = 0; i < MAX_PARKED; i++)
			if (!parked[i].used) {
				struct parked *p = &parked[i];
				*p = (struct parked){ .req = req, .after = from, .deadline = time(NULL) + 3600, .used = 1, .sse = 1 };
				snprintf(p->id, sizeof(p->id), "%s", id);
				struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
				evhttp_add_header(oh, "Content-Type", "text/event-stream");
				evhttp_add_header(oh, "Cache-Control", "no-cache");
				COUNT(M.http[2]);
				evhttp_send_reply_start(req, 200, "OK");
				evhttp_connection_set_closecb(evhttp_request_get_connection(req), parked_closed, p);
				sse_send(p, o);
				COUNT(M.long_polls);
				json_object_put(o);
				return;   /* poll_parked sends the rest and ends the stream at a final state */
			}
		json_object_put(o);
		reply_err(req, 503, "busy", "too many open event streams");
		return;
	}
	if (last > after || !wait) {
		reply_events(req, o, after);
		json_object_put(o);
		return;
	}
	json_object_put(o);
	for (int i = 0; i < MAX_PARKED; i++)
		if (!parked[i].used) {
			parked[i] = (struct parked){ .req = req, .after = after, .deadline = time(NULL) + wait, .used = 1 };
			snprintf(parked[i].id, sizeof(parked[i].id), "%s", id);
			evhttp_connection_set_closecb(evhttp_request_get_connection(req), parked_closed, &parked[i]);
			COUNT(M.long_polls);
			return;
		}
	reply_err(req, 503, "busy", "too many waiting requests; poll without wait");
}

static json_object *vm_of(json_object *o)
{
	json_object *v = json_object_new_object(), *vs;
	pthread_mutex_lock(&vlock);
	vs = view_get(B_VMSTATUS, jstr(o, "vm_id"), NULL);
	pthread_mutex_unlock(&vlock);
	json_object_object_add(v, "vm_id", json_object_new_string(jstr(o, "vm_id")));
	json_object_object_add(v, "order", json_object_new_string(jstr(o, "id")));
	json_object_object_add(v, "storefront", json_object_new_string(jstr(o, "storefront") ?: ""));
	json_object_object_add(v, "hostname", json_object_new_string(jstr(o, "hostname")));
	json_object_object_add(v, "node", jstr(o, "node") ? json_object_new_string(jstr(o, "node")) : NULL);
	json_object_object_add(v, "vm_num", json_object_new_int64(jint(o, "vm_num", 0)));
	json_object_object_add(v, "order_state", json_object_new_string(jstr(o, "state")));
	const char *vst = vs && jstr(vs, "node") && jstr(o, "node") && !strcmp(jstr(vs, "node"), jstr(o, "node")) ? jstr(vs, "state") : NULL;
	json_object_object_add(v, "state", vst ? json_object_new_string(vst) : NULL);
	json_object_object_add(v, "addr4", jstr(o, "addr4") ? json_object_new_string(jstr(o, "addr4")) : NULL);
	json_object_object_add(v, "addr6", jstr(o, "addr6") ? json_object_new_string(jstr(o, "addr6")) : NULL);
	json_object_object_add(v, "routed", json_object_new_boolean(jbool(o, "routed")));
	json_object_put(vs);
	return v;
}

/* vm-HEX -> ord-HEX */
static int vm_order_id(const char *vm, char *id, size_t len)
{
	if (!id_ok(vm, "vm-"))
		return -1;
	snprintf(id, len, "ord-%.16s", vm + 3);
	return 0;
}

static void api_vms(struct evhttp_request *req, const struct caller *c)
{
	json_object *arr = json_object_new_array();
	pthread_mutex_lock(&vlock);
	int n = json_object_object_length(B[B_ORDERS].map), k = 0;
	json_object **os = calloc(n ? n : 1, sizeof(*os));
	json_object_object_foreach(B[B_ORDERS].map, id, e) {
		json_object *o;
		(void)id;
		if (os && json_object_object_get_ex(e, "v", &o) && visible(c, o) && jstr(o, "node") && !is_final(jstr(o, "state")))
			os[k++] = json_object_get(o);
	}
	pthread_mutex_unlock(&vlock);
	for (int i = 0; i < k; i++) {
		json_object_array_add(arr, vm_of(os[i]));
		json_object_put(os[i]);
	}
	free(os);
	json_object *r = json_object_new_object();
	json_object_object_add(r, "vms", arr);
	reply_json(req, 200, r);
	json_object_put(r);
}

static void api_list_bucket(struct evhttp_request *req, int b, const char *field, int nodes)
{
	json_object *arr = json_object_new_array();
	pthread_mutex_lock(&vlock);
	json_object_object_foreach(B[b].map, k, e) {
		json_object *v;
		(void)k;
		if (!json_object_object_get_ex(e, "v", &v))
			continue;
		json_object *x = jcopy(v);
		if (nodes) {
			json_object_object_del(x, "scan");
			struct nodekey *nk = nodekey_by_id(k);
			char ts[32];
			if (nk) {
				rfc3339(nk->last_seen, ts);
				json_object_object_add(x, "last_heartbeat", json_object_new_string(ts));
			}
		}
		json_object_array_add(arr, x);
	}
	pthread_mutex_unlock(&vlock);
	json_object *r = json_object_new_object();
	json_object_object_add(r, field, arr);
	reply_json(req, 200, r);
	json_object_put(r);
}

static void api_regkey(struct evhttp_request *req, const struct caller *c)
{
	char key[80], hash[65], id[24], ts[32];
	snprintf(key, sizeof(key), "vreg_");
	rand_hex(24, key + 5);
	snprintf(id, sizeof(id), "rk-");
	rand_hex(8, id + 3);
	sha256_hex(key, strlen(key), hash);
	rfc3339(time(NULL), ts);
	json_object *rec = json_object_new_object();
	json_object_object_add(rec, "id", json_object_new_string(id));
	json_object_object_add(rec, "created", json_object_new_string(ts));
	json_object_object_add(rec, "node", NULL);
	int rc = vs_create(B[B_REGKEYS].kv, hash, js(rec), strlen(js(rec)), NULL);
	if (rc != VS_OK) {
		json_object_put(rec);
		OPENSSL_cleanse(key, sizeof(key));
		store_failed(req, rc);
		return;
	}
	json_object_object_add(rec, "key", json_object_new_string(key));
	OPENSSL_cleanse(key, sizeof(key));
	vm_log("event=regkey id=%s by=%s", id, c->id);
	reply_json(req, 201, rec);
	json_object_put(rec);
}

/* ---------- node registration: credential activation (docs/api.yaml) ---------- */

/* Why a registration or an activation was refused (counted, by reason). */
enum nodereg_refusal { NR_EK_CHAIN, NR_AK, NR_NO_CHALLENGE, NR_SECRET, NR_QUOTE, NR_UNATTESTED, NR_FULL, NR_N };
static const char *const NR_NAMES[NR_N] = { "ek_chain", "ak_attributes", "no_challenge", "wrong_secret", "quote",
					     "attestation_required", "challenges_full" };
static struct vm_ek_ca *vendor_ca;

/* A challenge waiting for its activation: one per node (EK), at most
 * MAX_CHALLENGES, each good for one attempt within cfg.challenge_ttl_s. */
#define MAX_CHALLENGES 256
struct challenge {
	char id[65];                  /* the node id: sha256 of the EK's SubjectPublicKeyInfo */
	char kh[65];                  /* the registration key's hash */
	uint8_t nonce[VM_NONCE_LEN], cred[32], ak_name[34], node_pub[32];
	EVP_PKEY *ak;
	json_object *rec;             /* the node record written on success */
	time_t expires;
};
static struct challenge chal[MAX_CHALLENGES];
static pthread_mutex_t chlock = PTHREAD_MUTEX_INITIALIZER;

static void refuse_node(struct evhttp_request *req, enum nodereg_refusal r, int status, const char *code,
			const char *node, const char *msg)
{
	COUNT(M.node_refused[r]);
	vm_log("event=node_refused node=%s reason=%s detail=\"%s\"", node ? node : "-", NR_NAMES[r], msg);
	reply_err(req, status, code, msg);
}

/* Call with chlock held. */
static void chal_clear(struct challenge *c)
{
	EVP_PKEY_free(c->ak);
	json_object_put(c->rec);
	OPENSSL_cleanse(c, sizeof(*c));
}

/* The node record a registration writes. */
static json_object *node_record(const struct ctl_register_req *r, const char *nid, const char *ts, int attested)
{
	json_object *rec = json_object_new_object(), *res = json_object_new_object(), *g = json_object_new_array(),
		    *cc = json_object_new_array();
	char pub64[48];
	EVP_EncodeBlock((unsigned char *)pub64, r->node_pub, 32);
	json_object_object_add(rec, "id", json_object_new_string(nid));
	/* unnamed nodes are called by the first 12 digits of their id */
	json_object_object_add(rec, "name", r->name[0] ? json_object_new_string(r->name) : json_object_new_string_len(nid, 12));
	json_object_object_add(rec, "state", json_object_new_string(attested ? "up" : "joining"));
	json_object_object_add(rec, "ek_sha256", json_object_new_string(nid));
	json_object_object_add(rec, "node_pub", json_object_new_string(pub64));
	json_object_object_add(rec, "underlay4", r->underlay4[0] ? json_object_new_string(r->underlay4) : NULL);
	json_object_object_add(rec, "underlay6", r->underlay6[0] ? json_object_new_string(r->underlay6) : NULL);
	json_object_object_add(rec, "location", json_object_new_string(r->location));
	json_object_object_add(res, "cpu", json_object_new_int(r->cpu));
	json_object_object_add(res, "ram_mb", json_object_new_int(r->ram_mb));
	json_object_object_add(res, "disk_gb", json_object_new_int(r->disk_gb));
	for (int i = 0; i < r->ngpus; i++)
		json_object_array_add(g, json_object_new_string(r->gpus[i]));
	json_object_object_add(res, "gpus", g);
	json_object_object_add(rec, "resources", res);
	for (int m = CC_NONE; m <= CC_TDX; m <<= 1)
		if (r->cc & m)
			json_object_array_add(cc, json_object_new_string(ctl_cc_name(m)));
	json_object_object_add(rec, "cc", cc);
	json_object_object_add(rec, "scan", jcopy(r->scan));
	json_object_object_add(rec, "attested", json_object_new_boolean(attested));
	json_object_object_add(rec, "joined", json_object_new_string(ts));
	json_object_object_add(rec, "last_seen", json_object_new_string(ts));
	return rec;
}

/* The registration key by hash: a new reference and its revision, or NULL
 * after a 403/503 was sent.  A key serves one node (EK) only. */
static json_object *regkey_for(struct evhttp_request *req, const char *kh, const char *nid, uint64_t *krev)
{
	char *val = NULL;
	size_t vl;
	int rc = vs_get(B[B_REGKEYS].kv, kh, &val, &vl, krev);
	json_object *rk = rc == VS_OK ? json_tokener_parse(val) : NULL;
	free(val);
	if (!rk) {
		if (rc == VS_OK || rc == VS_NOTFOUND) {
			COUNT(M.auth_refused);
			reply_err(req, 403, "bad_registration_key", "unknown registration key");
		} else {
			store_failed(req, rc);
		}
		return NULL;
	}
	const char *used = jstr(rk, "node");
	if (used && strcmp(used, nid)) {
		COUNT(M.auth_refused);
		reply_err(req, 403, "bad_registration_key", "this registration key was used by another node");
		json_object_put(rk);
		return NULL;
	}
	return rk;
}

/* Writes the node record (create, or update: a node that registers again
 * keeps its id and VMs) and marks the key used; the view, audit and log.
 * 200/201, or 0 after an error reply. */
static int node_store(struct evhttp_request *req, json_object *rec, const char *nid, const char *kh, json_object *rk,
		      uint64_t krev)
{
	uint64_t nrev = 0, orev = 0;
	char *oldv = NULL;
	size_t ovl;
	int status = 201;
	int rc = vs_get(B[B_NODES].kv, nid, &oldv, &ovl, &orev);
	free(oldv);
	if (rc == VS_OK) {
		status = 200;
		rc = vs_update(B[B_NODES].kv, nid, js(rec), strlen(js(rec)), orev, &nrev);
	} else if (rc == VS_NOTFOUND) {
		rc = vs_create(B[B_NODES].kv, nid, js(rec), strlen(js(rec)), &nrev);
	}
	if (rc == VS_OK && !jstr(rk, "node")) {
		json_object *nk = jcopy(rk);
		json_object_object_add(nk, "node", json_object_new_string(nid));
		rc = vs_update(B[B_REGKEYS].kv, kh, js(nk), strlen(js(nk)), krev, NULL);
		json_object_put(nk);
	}
	if (rc != VS_OK) {
		if (rc == VS_CONFLICT || rc == VS_EXISTS)
			reply_err(req, 409, "conflict", "the node or key changed meanwhile; register again");
		else
			store_failed(req, rc);
		return 0;
	}
	const char *state = jstr(rec, "state");
	pthread_mutex_lock(&vlock);
	view_set(B_NODES, nid, json_object_get(rec), nrev);
	struct nodekey *k = nodekey_by_id(nid);
	if (k && !strcmp(state, "up"))
		k->last_seen = time(NULL);   /* attested now: one node timeout to send its first heartbeat */
	pthread_mutex_unlock(&vlock);
	char msgid[120];
	json_object *a = json_object_new_object();
	json_object_object_add(a, "node", json_object_new_string(nid));
	json_object_object_add(a, "state", json_object_new_string(state));
	json_object_object_add(a, "attested", json_object_new_boolean(jbool(rec, "attested")));
	json_object_object_add(a, "regkey", json_object_new_string(jstr(rk, "id") ?: ""));
	snprintf(msgid, sizeof(msgid), "node.%s.%" PRIu64, nid, nrev);
	audit_kind("node", msgid, a);
	json_object *res;
	json_object_object_get_ex(rec, "resources", &res);
	vm_log("event=node_registered node=%s name=%s cpu=%d ram_mb=%d disk_gb=%d ek=%s", nid, jstr(rec, "name"),
	      (int)jint(res, "cpu", 0), (int)jint(res, "ram_mb", 0), (int)jint(res, "disk_gb", 0),
	      jbool(rec, "attested") ? "attested" : "presented");
	return status;
}

/* Step 1 with ek_cert + ak: the EK chains to the vendor CA, the AK is a
 * restricted signing key fixed to its TPM; a credential for the AK's name,
 * to the EK, and a nonce.  202 with the challenge. */
static void register_attested(struct evhttp_request *req, const struct ctl_register_req *r, const char *kh)
{
	char why[256], nid[65], ts[32];
	uint8_t id[32], blob[256], sec[300];
	size_t bl = 0, sl = 0;
	EVP_PKEY *ek = NULL, *ak = NULL;
	struct challenge c;

	memset(&c, 0, sizeof(c));
	if (vm_ek_verify_pem(vendor_ca, r->ek_pem, strlen(r->ek_pem), &ek, id, why, sizeof(why))) {
		refuse_node(req, NR_EK_CHAIN, 422, "ek_not_trusted", NULL, why);
		return;
	}
	hex(id, 32, nid);
	if (vm_ak_check(r->ak, r->ak_len, NULL, c.ak_name, &ak, why, sizeof(why))) {
		EVP_PKEY_free(ek);
		refuse_node(req, NR_AK, 422, "bad_ak", nid, why);
		return;
	}
	uint64_t krev = 0;
	json_object *rk = regkey_for(req, kh, nid, &krev);
	if (!rk) {
		EVP_PKEY_free(ek);
		EVP_PKEY_free(ak);
		return;
	}
	json_object_put(rk);
	if (RAND_bytes(c.cred, 32) != 1 || RAND_bytes(c.nonce, VM_NONCE_LEN) != 1 ||
	    vm_make_credential(ek, c.ak_name, 34, c.cred, 32, blob, sizeof(blob), &bl, sec, sizeof(sec), &sl)) {
		EVP_PKEY_free(ek);
		EVP_PKEY_free(ak);
		OPENSSL_cleanse(&c, sizeof(c));
		reply_err(req, 503, "no_credential", "cannot make a credential now");
		return;
	}
	EVP_PKEY_free(ek);
	rfc3339(time(NULL), ts);
	snprintf(c.id, sizeof(c.id), "%s", nid);
	snprintf(c.kh, sizeof(c.kh), "%s", kh);
	memcpy(c.node_pub, r->node_pub, 32);
	c.ak = ak;
	c.rec = node_record(r, nid, ts, 1);
	time_t now = time(NULL);
	c.expires = now + cfg.challenge_ttl_s;
	/* this node's slot (a new registration replaces its challenge), else a free or expired one */
	struct challenge *slot = NULL;
	pthread_mutex_lock(&chlock);
	for (int i = 0; i < MAX_CHALLENGES && !slot; i++)
		if (!strcmp(chal[i].id, nid))
			slot = &chal[i];
	for (int i = 0; i < MAX_CHALLENGES && !slot; i++)
		if (!chal[i].id[0] || chal[i].expires < now)
			slot = &chal[i];
	if (slot) {
		chal_clear(slot);
		*slot = c;   /* takes ak and rec */
	}
	pthread_mutex_unlock(&chlock);
	if (!slot) {
		EVP_PKEY_free(c.ak);
		json_object_put(c.rec);
		OPENSSL_cleanse(&c, sizeof(c));
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
		refuse_node(req, NR_FULL, 503, "busy", nid, "too many registrations waiting for activation; retry");
		return;
	}
	char b64b[400], b64s[420], nhex[2 * VM_NONCE_LEN + 1];
	vm_b64_encode(blob, bl, b64b, sizeof(b64b));
	vm_b64_encode(sec, sl, b64s, sizeof(b64s));
	vm_hex(c.nonce, VM_NONCE_LEN, nhex);
	OPENSSL_cleanse(&c, sizeof(c));
	json_object *out = json_object_new_object();
	json_object_object_add(out, "id", json_object_new_string(nid));
	json_object_object_add(out, "state", json_object_new_string("joining"));
	json_object_object_add(out, "attested", json_object_new_boolean(0));
	json_object_object_add(out, "credential", json_object_new_string(b64b));
	json_object_object_add(out, "secret", json_object_new_string(b64s));
	json_object_object_add(out, "nonce", json_object_new_string(nhex));
	json_object_object_add(out, "expires_in_s", json_object_new_int(cfg.challenge_ttl_s));
	vm_log("event=node_challenged node=%s expires_in_s=%d", nid, cfg.challenge_ttl_s);
	reply_json(req, 202, out);
	json_object_put(out);
}

/* Step 2: the credential the TPM recovered, and a quote by the AK over
 * sha256(nonce || node key).  One attempt per challenge. */
static void api_activate(struct evhttp_request *req, const char *nid)
{
	struct ctl_err e = { 0 };
	struct ctl_activate_req *a = calloc(1, sizeof(*a));
	json_object *j = a ? read_body(req, &e) : NULL;
	if (!a || !j || ctl_activate_req(j, a, &e)) {
		if (!a)
			reply_err(req, 503, "no_memory", "out of memory");
		else
			reply_cerr(req, &e);
		if (a)
			OPENSSL_cleanse(a, sizeof(*a));
		json_object_put(j);
		free(a);
		return;
	}
	json_object_put(j);
	struct challenge c;
	int found = 0;
	time_t now = time(NULL);
	pthread_mutex_lock(&chlock);
	for (int i = 0; i < MAX_CHALLENGES; i++)
		if (!strcmp(chal[i].id, nid)) {
			found = chal[i].expires >= now ? 1 : -1;
			c = chal[i];                         /* takes ak and rec */
			memset(&chal[i], 0, sizeof(chal[i]));  /* spent: a replay finds nothing */
			break;
		}
	pthread_mutex_unlock(&chlock);
	if (found <= 0) {
		OPENSSL_cleanse(a, sizeof(*a));
		free(a);
		if (found < 0)
			chal_clear(&c);
		refuse_node(req, NR_NO_CHALLENGE, 409, "no_challenge", nid,
			    found < 0 ? "the challenge expired: register again"
				      : "no challenge waits for this node (spent or never made): register again");
		return;
	}
	char why[256];
	uint8_t qd[32], empty[32];
	struct vm_quote_info qi;
	int credok = !CRYPTO_memcmp(a->cred, c.cred, 32);
	OPENSSL_cleanse(a->cred, sizeof(a->cred));
	if (!credok) {
		refuse_node(req, NR_SECRET, 403, "wrong_secret",  nid,
			    "the credential does not match: the AK is not in the TPM of this EK");
		goto out;
	}
	/* the quote commits to this challenge's nonce and to the node's key; no
	 * PCRs: the host's boot state is not judged here, only the key's TPM */
	vm_qualifying(c.nonce, c.node_pub, qd);
	vm_sha256(NULL, 0, empty);
	/* the signer by qualified name: the AK is a primary of the endorsement
	 * hierarchy, so nameAlg || sha256(TPM_RH_ENDORSEMENT || name) */
	uint8_t qn[34], qb[4 + 34] = { 0x40, 0x00, 0x00, 0x0b };
	memcpy(qb + 4, c.ak_name, 34);
	qn[0] = c.ak_name[0];
	qn[1] = c.ak_name[1];
	vm_sha256(qb, sizeof(qb), qn + 2);
	if (vm_quote_verify_mask(a->attest, a->alen, a->sig, a->slen, c.ak, qd, 32, 0, empty, qn, &qi, why,
				 sizeof(why))) {
		refuse_node(req, NR_QUOTE, 403, "bad_quote", nid, why);
		goto out;
	}
	uint64_t krev = 0;
	json_object *rk = regkey_for(req, c.kh, nid, &krev);
	if (!rk)
		goto out;
	int status = node_store(req, c.rec, nid, c.kh, rk, krev);
	json_object_put(rk);
	if (!status)
		goto out;
	COUNT(M.node_attested);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(nid));
	json_object_object_add(o, "state", json_object_new_string("up"));
	json_object_object_add(o, "attested", json_object_new_boolean(1));
	reply_json(req, 200, o);
	json_object_put(o);
out:
	chal_clear(&c);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

static void api_register(struct evhttp_request *req)
{
	struct ctl_err e = { 0 };
	struct ctl_register_req *r = calloc(1, sizeof(*r));
	json_object *j = r ? read_body(req, &e) : NULL;
	if (!r || !j || ctl_register_req(j, r, &e)) {
		if (!r)
			reply_err(req, 503, "no_memory", "out of memory");
		else
			reply_cerr(req, &e);
		if (r)
			OPENSSL_cleanse(r->key, sizeof(r->key));
		json_object_put(j);
		free(r);
		return;
	}
	char kh[65], nid[65], ts[32];
	sha256_hex(r->key, strlen(r->key), kh);
	OPENSSL_cleanse(r->key, sizeof(r->key));
	if (r->attest) {
		register_attested(req, r, kh);
		json_object_put(j);
		free(r);
		return;
	}
	if (vendor_ca) {
		refuse_node(req, NR_UNATTESTED, 422, "attestation_required", NULL,
			    "this controller admits nodes by credential activation only: send ek_cert and ak, not ek_pub");
		json_object_put(j);
		free(r);
		return;
	}
	/* no vendor CA configured: the EK is taken as presented (attested false) */
	sha256_hex(r->ek_der, r->ek_len, nid);
	rfc3339(time(NULL), ts);
	uint64_t krev = 0;
	json_object *rk = regkey_for(req, kh, nid, &krev);
	if (rk) {
		json_object *rec = node_record(r, nid, ts, 0);
		int status = node_store(req, rec, nid, kh, rk, krev);
		json_object_put(rec);
		if (status) {
			json_object *out = json_object_new_object();
			json_object_object_add(out, "id", json_object_new_string(nid));
			json_object_object_add(out, "state", json_object_new_string("joining"));
			json_object_object_add(out, "attested", json_object_new_boolean(0));
			reply_json(req, status, out);
			json_object_put(out);
		}
		json_object_put(rk);
	}
	json_object_put(j);
	free(r);
}

static int token_make(const char *storefront, int scopes, int rate, const char *secret, char *id_out, size_t idlen)
{
	char hash[65], id[24];
	snprintf(id, sizeof(id), "tok-");
	rand_hex(8, id + 4);
	sha256_hex(secret, strlen(secret), hash);
	json_object *rec = json_object_new_object(), *sc = json_object_new_array();
	json_object_object_add(rec, "id", json_object_new_string(id));
	json_object_object_add(rec, "storefront", json_object_new_string(storefront));
	if (scopes & CTL_SCOPE_ORDER)
		json_object_array_add(sc, json_object_new_string("order"));
	if (scopes & CTL_SCOPE_READ)
		json_object_array_add(sc, json_object_new_string("read"));
	if (scopes & CTL_SCOPE_ADMIN)
		json_object_array_add(sc, json_object_new_string("admin"));
	json_object_object_add(rec, "scopes", sc);
	json_object_object_add(rec, "rate", json_object_new_int(rate));
	uint64_t rev;
	int rc = vs_create(B[B_TOKENS].kv, hash, js(rec), strlen(js(rec)), &rev);
	if (rc == VS_OK) {
		pthread_mutex_lock(&vlock);
		view_set(B_TOKENS, hash, json_object_get(rec), rev);
		pthread_mutex_unlock(&vlock);
		snprintf(id_out, idlen, "%s", id);
	}
	json_object_put(rec);
	return rc;
}

static void api_token(struct evhttp_request *req, const struct caller *c)
{
	struct ctl_err e = { 0 };
	struct ctl_token_req r;
	json_object *j = read_body(req, &e);
	if (!j || ctl_token_req(j, &r, &e)) {
		json_object_put(j);
		reply_cerr(req, &e);
		return;
	}
	json_object_put(j);
	char secret[80], id[24];
	snprintf(secret, sizeof(secret), "vtok_");
	rand_hex(24, secret + 5);
	int rc = token_make(r.storefront, r.scopes, r.rate, secret, id, sizeof(id));
	if (rc != VS_OK) {
		OPENSSL_cleanse(secret, sizeof(secret));
		store_failed(req, rc);
		return;
	}
	json_object *out = json_object_new_object(), *sc = json_object_new_array();
	json_object_object_add(out, "id", json_object_new_string(id));
	json_object_object_add(out, "token", json_object_new_string(secret));
	OPENSSL_cleanse(secret, sizeof(secret));
	json_object_object_add(out, "storefront", json_object_new_string(r.storefront));
	if (r.scopes & CTL_SCOPE_ORDER)
		json_object_array_add(sc, json_object_new_string("order"));
	if (r.scopes & CTL_SCOPE_READ)
		json_object_array_add(sc, json_object_new_string("read"));
	if (r.scopes & CTL_SCOPE_ADMIN)
		json_object_array_add(sc, json_object_new_string("admin"));
	json_object_object_add(out, "scopes", sc);
	json_object_object_add(out, "rate", json_object_new_int(r.rate));
	{
		char msgid[80];
		json_object *a = json_object_new_object();
		json_object_object_add(a, "token", json_object_new_string(id));
		json_object_object_add(a, "storefront", json_object_new_string(r.storefront));
		json_object_object_add(a, "by", json_object_new_string(c->id));
		snprintf(msgid, sizeof(msgid), "token.%s", id);
		audit_kind("token", msgid, a);
	}
	vm_log("event=token id=%s storefront=%s by=%s", id, r.storefront, c->id);
	/* the secret is in this reply only; the store has its hash */
	size_t n;
	const char *s = json_object_to_json_string_length(out, JSON_C_TO_STRING_PLAIN, &n);
	COUNT(M.http[2]);
	httpd_send(req, 201, NULL, s, n);
	OPENSSL_cleanse((void *)s, n);
	json_object_put(out);
}

static void api_gateway(struct evhttp_request *req)
{
	struct ctl_err e = { 0 };
	struct ctl_gateway_req r;
	json_object *j = read_body(req, &e);
	if (!j || ctl_gateway_req(j, &r, &e)) {
		json_object_put(j);
		reply_cerr(req, &e);
		return;
	}
	json_object_put(j);
	char key[80], ts[32];
	snprintf(key, sizeof(key), "gw.%s", r.id);
	rfc3339(time(NULL), ts);
	json_object *p = json_object_new_object();
	json_object_object_add(p, "kind", json_object_new_string("gateway"));
	json_object_object_add(p, "id", json_object_new_string(r.id));
#define OPT(f) json_object_object_add(p, #f, r.f[0] ? json_object_new_string(r.f) : NULL)
	OPT(underlay4);
	OPT(underlay6);
	OPT(public4);
	OPT(public6);
	json_object_object_add(p, "location", json_object_new_string(r.location));
	json_object_object_add(p, "health", json_object_new_string("up"));
	json_object_object_add(p, "ts", json_object_new_string(ts));
	uint64_t rev;
	int rc = vs_put(B[B_PEERS].kv, key, js(p), strlen(js(p)), &rev);
	if (rc != VS_OK) {
		json_object_put(p);
		store_failed(req, rc);
		return;
	}
	pthread_mutex_lock(&vlock);
	view_set(B_PEERS, key, json_object_get(p), rev);
	pthread_mutex_unlock(&vlock);
	vm_log("event=gateway id=%s", r.id);
	reply_json(req, 201, p);
	json_object_put(p);
}

static void metrics_text(struct evbuffer *out);

static void on_api(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL, *query = u ? evhttp_uri_get_query(u) : NULL;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	struct evkeyvalq q;
	struct caller c;
	char seg[4][80];
	int ns = 0;

	TAILQ_INIT(&q);
	if (!path || (query && evhttp_parse_query_str(query, &q))) {
		reply_err(req, 400, "bad_request", "malformed request line or query");
		return;
	}
	/* /v1/a/b/c: at most four short segments */
	const char *p = path;
	if (strncmp(p, "/v1/", 4) && strcmp(p, "/v1")) {
		if (!strcmp(p, "/metrics") && m == EVHTTP_REQ_GET) {
			struct evbuffer *b = evbuffer_new();
			metrics_text(b);
			evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
			COUNT(M.http[2]);
			evhttp_send_reply(req, 200, "OK", b);
			evbuffer_free(b);
		} else {
			reply_err(req, 404, "not_found", "no such endpoint");
		}
		evhttp_clear_headers(&q);
		return;
	}
	p += 3;
	while (*p == '/' && ns < 4) {
		p++;
		size_t l = strcspn(p, "/");
		if (!l || l >= sizeof(seg[0]))
			break;
		memcpy(seg[ns], p, l);
		seg[ns][l] = 0;
		ns++;
		p += l;
	}
	if (*p) {
		reply_err(req, 404, "not_found", "no such endpoint");
		evhttp_clear_headers(&q);
		return;
	}
#define R(n, a) (ns == (n) && !strcmp(seg[0], a))
	int get = m == EVHTTP_REQ_GET, post = m == EVHTTP_REQ_POST, del = m == EVHTTP_REQ_DELETE;
	if (R(1, "health") && get) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "status", json_object_new_string("ok"));
		reply_json(req, 200, o);
		json_object_put(o);
	} else if (R(2, "nodes") && !strcmp(seg[1], "register") && post) {
		api_register(req);
	} else if (R(3, "nodes") && !strcmp(seg[2], "activate") && post) {
		if (strlen(seg[1]) != 64 || strspn(seg[1], "0123456789abcdef") != 64)
			reply_err(req, 404, "not_found", "no such node");
		else
			api_activate(req, seg[1]);
	} else if (R(1, "orders") && post) {
		if (!authorize(req, CTL_SCOPE_ORDER, &c))
			api_create_order(req, &c);
	} else if (R(1, "orders") && get) {
		if (!authorize(req, CTL_SCOPE_READ | CTL_SCOPE_ORDER, &c))
			api_list_orders(req, &c, &q);
	} else if ((R(2, "orders") || R(3, "orders")) && !id_ok(seg[1], "ord-")) {
		reply_err(req, 404, "not_found", "no such order");
	} else if (R(2, "orders") && get) {
		if (!authorize(req, CTL_SCOPE_READ | CTL_SCOPE_ORDER, &c)) {
			uint64_t rev;
			json_object *o = order_lookup(seg[1], &rev);
			if (!o || !visible(&c, o))
				reply_err(req, 404, "not_found", "no such order");
			else
				reply_order(req, 200, o, rev);
			json_object_put(o);
		}
	} else if ((R(2, "orders") && del) || (R(3, "orders") && !strcmp(seg[2], "cancel") && post)) {
		if (!authorize(req, CTL_SCOPE_ORDER, &c))
			api_cancel(req, &c, seg[1]);
	} else if (R(3, "orders") && !strcmp(seg[2], "events") && get) {
		if (!authorize(req, CTL_SCOPE_READ | CTL_SCOPE_ORDER, &c))
			api_events(req, &c, seg[1], &q);
	} else if (R(1, "vms") && get) {
		if (!authorize(req, CTL_SCOPE_READ | CTL_SCOPE_ORDER, &c))
			api_vms(req, &c);
	} else if (R(2, "vms") && (get || del)) {
		char oid[40];
		if (!authorize(req, get ? CTL_SCOPE_READ | CTL_SCOPE_ORDER : CTL_SCOPE_ORDER, &c)) {
			uint64_t rev;
			json_object *o = vm_order_id(seg[1], oid, sizeof(oid)) ? NULL : order_lookup(oid, &rev);
			if (!o || !visible(&c, o) || !jstr(o, "node"))
				reply_err(req, 404, "not_found", "no such VM");
			else if (del)
				api_cancel(req, &c, oid);
			else {
				json_object *v = vm_of(o);
				reply_json(req, 200, v);
				json_object_put(v);
			}
			json_object_put(o);
		}
	} else if (R(1, "images") && get) {
		if (!authorize(req, CTL_SCOPE_READ | CTL_SCOPE_ORDER, &c))
			api_list_bucket(req, B_CATALOG, "images", 0);
	} else if (R(1, "peers") && get) {
		if (!authorize(req, CTL_SCOPE_READ | CTL_SCOPE_ORDER, &c))
			api_list_bucket(req, B_PEERS, "peers", 0);
	} else if (R(2, "peers") && !strcmp(seg[1], "gateways") && post) {
		if (!authorize(req, CTL_SCOPE_ADMIN, &c))
			api_gateway(req);
	} else if (R(1, "nodes") && get) {
		if (!authorize(req, CTL_SCOPE_ADMIN, &c))
			api_list_bucket(req, B_NODES, "nodes", 1);
	} else if (R(1, "regkeys") && post) {
		if (!authorize(req, CTL_SCOPE_ADMIN, &c))
			api_regkey(req, &c);
	} else if (R(1, "tokens") && post) {
		if (!authorize(req, CTL_SCOPE_ADMIN, &c))
			api_token(req, &c);
	} else if (ns >= 1 && (!strcmp(seg[0], "orders") || !strcmp(seg[0], "vms") || !strcmp(seg[0], "images") ||
			       !strcmp(seg[0], "peers") || !strcmp(seg[0], "nodes") || !strcmp(seg[0], "regkeys") ||
			       !strcmp(seg[0], "tokens") || !strcmp(seg[0], "health"))) {
		reply_err(req, 405, "method_not_allowed", "this endpoint does not take that method");
	} else {
		reply_err(req, 404, "not_found", "no such endpoint");
	}
	evhttp_clear_headers(&q);
}

static void metrics_text(struct evbuffer *b)
{
	int bystate[9] = { 0 }, nodes[3] = { 0 };
	pthread_mutex_lock(&vlock);
	json_object_object_foreach(B[B_ORDERS].map, id, e) {
		json_object *o;
		(void)id;
		if (json_object_object_get_ex(e, "v", &o) && state_idx(jstr(o, "state")) >= 0)
			bystate[state_idx(jstr(o, "state"))]++;
	}
	json_object_object_foreach(B[B_NODES].map, nid, ne) {
		json_object *v;
		(void)nid;
		const char *s = json_object_object_get_ex(ne, "v", &v) ? jstr(v, "state") : NULL;
		if (s)
			nodes[!strcmp(s, "up") ? 0 : !strcmp(s, "down") ? 1 : 2]++;
	}
	pthread_mutex_unlock(&vlock);
	pthread_mutex_lock(&mlock);
	for (int i = 2; i < 6; i++)
		evbuffer_add_printf(b, "veil_controller_http_responses_total{class=\"%dxx\"} %" PRIu64 "\n", i, M.http[i]);
	for (int i = 0; STATES[i]; i++) {
		evbuffer_add_printf(b, "veil_controller_orders{state=\"%s\"} %d\n", STATES[i], bystate[i]);
		evbuffer_add_printf(b, "veil_controller_order_transitions_total{to=\"%s\"} %" PRIu64 "\n", STATES[i],
				    M.transitions[i]);
	}
	evbuffer_add_printf(b, "veil_controller_nodes{state=\"up\"} %d\nveil_controller_nodes{state=\"down\"} %d\n"
			       "veil_controller_nodes{state=\"joining\"} %d\n", nodes[0], nodes[1], nodes[2]);
	evbuffer_add_printf(b,
			    "veil_controller_orders_created_total %" PRIu64 "\n"
			    "veil_controller_idempotent_replays_total %" PRIu64 "\n"
			    "veil_controller_store_conflicts_total %" PRIu64 "\n"
			    "veil_controller_store_errors_total %" PRIu64 "\n"
			    "store_rejected_total{reason=\"signature\"} %" PRIu64 "\n"
			    "store_rejected_total{reason=\"replay\"} %" PRIu64 "\n"
			    "veil_controller_auth_refused_total %" PRIu64 "\n"
			    "veil_controller_rate_limited_total %" PRIu64 "\n"
			    "veil_controller_nodes_down_total %" PRIu64 "\n"
			    "veil_controller_reschedules_total %" PRIu64 "\n"
			    "veil_controller_long_polls_total %" PRIu64 "\n"
			    "veil_controller_reloads_total{result=\"ok\"} %" PRIu64 "\n"
			    "veil_controller_reloads_total{result=\"rejected\"} %" PRIu64 "\n"
			    "veil_controller_start_time_seconds %lld\n",
			    M.orders_created, M.idem_replays, M.conflicts, M.store_errors, M.rejected_sig, M.rejected_replay,
			    M.auth_refused, M.rate_limited, M.nodes_down, M.reschedules, M.long_polls, M.reloads_ok,
			    M.reloads_bad, (long long)M.started);
	{   /* the counters every daemon serves, under their common names too */
		char *t = NULL;
		size_t tl = 0;
		FILE *f = open_memstream(&t, &tl);
		if (f) {
			vm_metrics_daemon(f, M.reloads_ok, M.reloads_bad, (uint64_t)M.started);
			fclose(f);
			evbuffer_add(b, t, tl);
		}
		free(t);
	}
	evbuffer_add_printf(b, "veil_controller_nodes_attested_total %" PRIu64 "\n", M.node_attested);
	for (int i = 0; i < NR_N; i++)
		evbuffer_add_printf(b, "veil_controller_node_refused_total{reason=\"%s\"} %" PRIu64 "\n", NR_NAMES[i],
				    M.node_refused[i]);
	pthread_mutex_unlock(&mlock);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET || !uri || strcmp(uri, "/metrics")) {
		httpd_error(req, 404, "not_found", "only GET /metrics here");
		return;
	}
	struct evbuffer *b = evbuffer_new();
	metrics_text(b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* ---------- main ---------- */

static struct event_base *base;

static void reload(void)
{
	struct config n;
	char err[512];
	if (load_config(config_path, &n, err, sizeof(err))) {
		COUNT(M.reloads_bad);
		vm_log("event=reload_rejected reason=\"%s\"", err);
		return;
	}
	if (strcmp(n.listen, cfg.listen) || strcmp(n.store, cfg.store) || strcmp(n.metrics, cfg.metrics) ||
	    strcmp(n.signing, cfg.signing) || strcmp(n.cert, cfg.cert) || strcmp(n.vm_net4, cfg.vm_net4) ||
	    strcmp(n.vm_net6, cfg.vm_net6) || strcmp(n.tpm_vendor_ca, cfg.tpm_vendor_ca) ||
	    strcmp(n.tpm_vendor_crl, cfg.tpm_vendor_crl))
		vm_log("event=reload_note reason=\"listen, metrics, cert, store, signing_key, vm_net and tpm_vendor_ca/crl "
		      "change only with a restart\"");
	/* the driver reads these between ticks: plain ints and strings, swapped under the view lock */
	pthread_mutex_lock(&vlock);
	cfg.node_timeout_s = n.node_timeout_s;
	cfg.state_timeout_s = n.state_timeout_s;
	cfg.schedule_timeout_s = n.schedule_timeout_s;
	cfg.ready_timeout_s = n.ready_timeout_s;
	cfg.max_attempts = n.max_attempts;
	cfg.tick_ms = n.tick_ms;
	cfg.challenge_ttl_s = n.challenge_ttl_s;
	memcpy(cfg.validators, n.validators, sizeof(cfg.validators));
	cfg.nvalidators = n.nvalidators;
	cfg.validators_t = n.validators_t;
	pthread_mutex_unlock(&vlock);
	COUNT(M.reloads_ok);
	vm_log("event=reloaded node_timeout_s=%d state_timeout_s=%d validators=%d", cfg.node_timeout_s,
	      cfg.state_timeout_s, cfg.nvalidators);
}

/* the skeleton's self-pipe (common/daemon.h): SIGTERM/SIGINT stop, SIGHUP reloads */
static void on_signal_fd(evutil_socket_t s, short ev, void *arg)
{
	int what = vm_daemon_signal_take();
	if (what & VM_SIG_STOP) {
		stopping = 1;
		event_base_loopexit(base, NULL);
	} else if (what & VM_SIG_RELOAD) {
		reload();
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: veil-controller --config FILE [options]\n"
		   "The veilmesh controller: nodes, orders and peers in the store (NATS JetStream),\n"
		   "the order driver and the HTTP/JSON API over TLS 1.3 (docs/api.yaml).\n"
		   "  -c, --config FILE     settings (veil-controller.conf(5), docs/veil-controller.conf.example)\n"
		   "  -n, --check           check the config and its files, exit 0 or 2\n"
		   "      --pidfile FILE    write the pid to FILE while running (removed at exit;\n"
		   "                        overrides the config's pidfile)\n"
		   "  -h, --help            this text\n"
		   "Signals: SIGHUP reloads the timeouts and validators, SIGTERM/SIGINT stop.\n"
		   "Metrics: GET /metrics on 'metrics' (plain HTTP) and on the API listener.\n"
		   "Exit codes: 0 stopped, 1 runtime failure, 2 bad usage or config.  Man page: veil-controller(8).\n");
}

static int read_secret(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	if (key_file_private(path, err, errlen))
		return -1;
	FILE *f = fopen(path, "re");
	if (!f || !fgets(out, (int)cap, f)) {
		if (f)
			fclose(f);
		return snprintf(err, errlen, "%s: unreadable or empty", path), -1;
	}
	fclose(f);
	out[strcspn(out, "\r\n")] = 0;
	if (strlen(out) < 16)
		return OPENSSL_cleanse(out, cap), snprintf(err, errlen, "%s: a token of at least 16 characters", path), -1;
	return 0;
}

int main(int argc, char **argv)
{
	const struct vm_daemon_cli cli = { .usage = usage };
	struct vm_daemon_opts opt;
	char err[600];
	int code;

	vm_prog_name = "veil-controller";
	if (vm_daemon_parse(argc, argv, &cli, &opt, &code))
		return code;
	config_path = opt.config;
	bool check = opt.check;
	if (load_config(config_path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-controller: %s\n", err);
		return 2;
	}
	char admin[256];
	if (key_file_private(cfg.signing, err, sizeof(err)) || key_file_private(cfg.key, err, sizeof(err)) ||
	    read_secret(cfg.admin_token_file, admin, sizeof(admin), err, sizeof(err))) {
		fprintf(stderr, "veil-controller: %s\n", err);
		return 2;
	}
	sign_key = vs_load_key(cfg.signing, 1, err, sizeof(err));
	registry_pub = sign_key ? vs_load_key(cfg.registry, 0, err, sizeof(err)) : NULL;
	SSL_CTX *tls = registry_pub ? httpd_tls(cfg.cert, cfg.key, err, sizeof(err)) : NULL;
	if (tls && cfg.tpm_vendor_ca[0] && !(vendor_ca = vm_ek_ca_load(cfg.tpm_vendor_ca, err, sizeof(err)))) {
		SSL_CTX_free(tls);
		tls = NULL;
	}
	if (tls && cfg.tpm_vendor_crl[0] &&
	    (!vendor_ca ? snprintf(err, sizeof(err), "tpm_vendor_crl needs tpm_vendor_ca") >= 0
			: vm_ek_ca_load_crl(vendor_ca, cfg.tpm_vendor_crl, err, sizeof(err)) != 0)) {
		SSL_CTX_free(tls);
		tls = NULL;
	}
	if (!tls) {
		fprintf(stderr, "veil-controller: %s: %s\n", config_path, err);
		OPENSSL_cleanse(admin, sizeof(admin));
		return 2;
	}
	if (check) {
		OPENSSL_cleanse(admin, sizeof(admin));
		printf("%s: ok (listen %s, store %s, %d validators, nodes %s)\n", config_path, cfg.listen, cfg.store,
		       cfg.nvalidators, vendor_ca ? "admitted by TPM credential activation" : "taken as presented (no tpm_vendor_ca)");
		return 0;
	}
	started_at = M.started = time(NULL);
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();

	struct vs_opts so = { .urls = cfg.store, .creds = cfg.store_creds[0] ? cfg.store_creds : NULL,
			      .name = "veil-controller", .replicas = cfg.replicas, .timeout_ms = cfg.store_timeout_ms };
	if (vs_connect(&store, &so, err, sizeof(err))) {
		vm_log("event=error what=store reason=\"%s\"", err);
		return 1;
	}
	for (int b = 0; b < B_ALL; b++) {
		if (vs_bucket(store, B[b].name, 1, &B[b].kv, err, sizeof(err))) {
			vm_log("event=error what=bucket bucket=%s reason=\"%s\"", B[b].name, err);
			return 1;
		}
		B[b].map = json_object_new_object();
		if (B[b].signed_by)
			B[b].gens = vs_gens_new();
	}
	/* nodes first (their keys verify the reports), then the rest; each synced before the driver starts */
	for (int b = 0; b < B_NWATCHED; b++) {
		if (vs_watch(B[b].kv, NULL, on_entry, on_synced, (void *)(intptr_t)b, &B[b].w, err, sizeof(err))) {
			vm_log("event=error what=watch bucket=%s reason=\"%s\"", B[b].name, err);
			return 1;
		}
		pthread_mutex_lock(&vlock);
		while (!B[b].synced)
			pthread_cond_wait(&vcond, &vlock);
		pthread_mutex_unlock(&vlock);
	}
	{   /* the operator's token (from its file) exists, hashed */
		char hash[65], id[24];
		sha256_hex(admin, strlen(admin), hash);
		pthread_mutex_lock(&vlock);
		json_object *t = view_get(B_TOKENS, hash, NULL);
		pthread_mutex_unlock(&vlock);
		if (!t && token_make("operator", CTL_SCOPE_ADMIN | CTL_SCOPE_ORDER | CTL_SCOPE_READ, 1000, admin, id,
				     sizeof(id)) != VS_OK && !(pthread_mutex_lock(&vlock), t = view_get(B_TOKENS, hash, NULL),
							       pthread_mutex_unlock(&vlock), t)) {
			vm_log("event=error what=admin_token reason=\"cannot store it\"");
			OPENSSL_cleanse(admin, sizeof(admin));
			return 1;
		}
		json_object_put(t);
		OPENSSL_cleanse(admin, sizeof(admin));
	}
	base = event_base_new();
	struct httpd_limits lim = { .max_body = 1 << 20, .idle_s = 70 };
	struct httpd *api = httpd_new(base, cfg.listen, tls, &lim, on_api, NULL, err, sizeof(err));
	struct httpd *met = NULL;
	if (api && cfg.metrics[0])
		met = httpd_new(base, cfg.metrics, NULL, NULL, on_metrics, NULL, err, sizeof(err));
	if (!api || (cfg.metrics[0] && !met)) {
		vm_log("event=error what=listen reason=\"%s\"", err);
		return 1;
	}
	vm_daemon_signals();   /* until here SIGTERM ends the process outright, as at any start */
	struct event *ssig = event_new(base, vm_daemon_signal_fd(), EV_READ | EV_PERSIST, on_signal_fd, NULL),
		     *poll = event_new(base, -1, EV_PERSIST, poll_parked, NULL);
	struct timeval pt = { 0, 100000 };
	event_add(ssig, NULL);
	event_add(poll, &pt);
	if (vm_daemon_pidfile(opt.pidfile ? opt.pidfile : cfg.pidfile, err, sizeof(err))) {
		vm_log("event=error what=pidfile reason=\"%s\"", err);
		return 1;
	}
	pthread_t drv;
	pthread_create(&drv, NULL, driver_main, NULL);
	pthread_mutex_lock(&vlock);
	int norders = json_object_object_length(B[B_ORDERS].map), nnodes = json_object_object_length(B[B_NODES].map);
	pthread_mutex_unlock(&vlock);
	vm_log("event=started listen=%s metrics=%s store=%s orders=%d nodes=%d", cfg.listen, cfg.metrics[0] ? cfg.metrics : "-",
	      cfg.store, norders, nnodes);
	event_base_dispatch(base);
	stopping = 1;
	poll_parked(-1, 0, NULL);
	pthread_join(drv, NULL);
	for (int b = 0; b < B_NWATCHED; b++)
		vs_watch_stop(B[b].w);
	httpd_free(api);
	httpd_free(met);
	event_free(ssig);
	event_free(poll);
	event_base_free(base);
	for (int b = 0; b < B_ALL; b++) {
		vs_kv_close(B[b].kv);
		json_object_put(B[b].map);
		if (B[b].gens)
			vs_gens_free(B[b].gens);
	}
	vs_close(store);
	EVP_PKEY_free(sign_key);
	EVP_PKEY_free(registry_pub);
	vm_log("event=stopped");
	return 0;
}
