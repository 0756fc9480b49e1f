// SPDX-License-Identifier: Apache-2.0
/*
 * veil-dns: the cluster store feed (see feed.h, docs/store.md).
 *
 * Two watches, each snapshot then changes, on the store library's threads:
 *   dns   key vs_name_key(name), value a signed envelope whose body is
 *         {"name","gen","vm_id"}: opened with the controller's key (bad
 *         signature, a key moved from elsewhere: refused), its gen must be
 *         above the last applied for that key (else a replay: refused), the
 *         body's name must be the key's.  Delete = the name goes.
 *   peers key gw.<id>, plain JSON {"kind":"gateway","id","public4","public6",
 *         "location","health"}: the gateway's client-facing addresses, where it
 *         is, up or down.  node.<id> records are not ours.
 * An entry is applied only when its store revision is above the one held
 * (a watcher that restarts after a lost connection delivers every key again,
 * deletions as delete markers).  When a snapshot completes (synced), keys
 * held here that it did not deliver are gone from the store and dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <json-c/json.h>

#include "veil.h"
#include "dns/feed.h"
#include "store/store.h"

enum { R_BADSIG, R_REPLAY, R_BADREC, R_N };
static const char *const reason_names[R_N] = { "bad_signature", "replay", "bad_record" };

struct fname {
	char key[256];
	char name[256];
	uint64_t rev, gen;
	unsigned seen;
};

#define FEED_MAX_GW 256
struct fgw {
	char key[64];
	struct dns_gw g;
	uint64_t rev;
	unsigned seen;
};

struct bucket_state {
	unsigned epoch;          /* deliveries since the last synced() carry it */
	int synced;
	uint64_t applied;
};

struct dns_feed {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t th;
	atomic_int stop;
	char urls[512], creds[256];
	EVP_PKEY *pub;
	struct vs_gens *gens;
	vs_store *st;
	vs_kv *kv[2];
	vs_watcher *w[2];
	struct bucket_state b[2];     /* 0 dns, 1 peers */
	void *names;                  /* tsearch tree of struct fname */
	size_t nnames;
	struct fgw gw[FEED_MAX_GW];
	int ngw;
	uint64_t version;
	uint64_t rejected[R_N];
	uint64_t connects, connect_failures;
	char last_err[256];
};

static int fname_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fname *)a)->key, ((const struct fname *)b)->key);
}

static void changed(struct dns_feed *f, int b)
{
	f->version++;
	f->b[b].applied++;
}

static void reject(struct dns_feed *f, int why, const char *bucket, const char *key, const char *detail)
{
	f->rejected[why]++;
	vm_log("event=store_rejected bucket=%s key=%s reason=%s detail=\"%s\"", bucket, key, reason_names[why], detail);
}

/* ---------- bucket dns: signed VM names ---------- */

static void dns_entry(struct dns_feed *f, const struct vs_entry *e)
{
	struct fname k, *n;
	void **slot;

	if (strlen(e->key) >= sizeof(k.key))
		return reject(f, R_BADREC, e->bucket, "(long)", "key too long");
	snprintf(k.key, sizeof(k.key), "%s", e->key);
	slot = tfind(&k, &f->names, fname_cmp);
	n = slot ? *slot : NULL;
	if (e->op == VS_OP_DEL) {
		if (n && e->rev > n->rev) {
			tdelete(n, &f->names, fname_cmp);
			free(n);
			f->nnames--;
			changed(f, 0);
		}
		/* the key's last gen is kept: an old envelope put back later is
		 * still a replay (after a restart too, with store_gens) */
		vs_gen_deleted(f->gens, e->key);
		return;
	}
	if (n && e->rev <= n->rev) {
		n->seen = f->b[0].epoch; /* delivered again (a new snapshot): held */
		return;
	}
	char *body = NULL;
	uint64_t gen = 0;
	int rc = vs_open(f->pub, "dns", e->key, e->val, e->len, &body, &gen);
	if (rc != VS_OK) {
		if (n)
			n->seen = f->b[0].epoch; /* what was applied stays */
		return reject(f, R_BADSIG, e->bucket, e->key, vs_strerror(rc));
	}
	char keyname[256], want[256], got[256];
	json_object *j = json_tokener_parse(body), *v;
	const char *bn = j && json_object_object_get_ex(j, "name", &v) && json_object_is_type(v, json_type_string) ?
		json_object_get_string(v) : NULL;
	size_t bl = bn ? strlen(bn) : 0;
	int ok = bn && bl && bl < sizeof(got) && !vs_key_name(e->key, keyname, sizeof(keyname));
	if (ok) {
		snprintf(got, sizeof(got), "%.*s", (int)(bl - (bn[bl - 1] == '.')), bn);
		for (char *p = got; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		snprintf(want, sizeof(want), "%s", keyname);
		ok = !strcmp(got, want);
	}
	json_object_put(j);
	free(body);
	if (!ok) {
		if (n)
			n->seen = f->b[0].epoch;
		return reject(f, R_BADREC, e->bucket, e->key, "body name missing or not the key's name");
	}
	/* only now: a forged or bad envelope must not advance the key's gen */
	if (vs_gen_check(f->gens, e->key, gen) != VS_OK) {
		if (n)
			n->seen = f->b[0].epoch;
		char d[64];
		snprintf(d, sizeof(d), "gen %llu not above the last applied", (unsigned long long)gen);
		return reject(f, R_REPLAY, e->bucket, e->key, d);
	}
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n)
			return;
		snprintf(n->key, sizeof(n->key), "%s", e->key);
		if (!tsearch(n, &f->names, fname_cmp)) {
			free(n);
			return;
		}
		f->nnames++;
	}
	snprintf(n->name, sizeof(n->name), "%s", got);
	n->rev = e->rev;
	n->gen = gen;
	n->seen = f->b[0].epoch;
	changed(f, 0);
}

/* ---------- bucket peers: gateways ---------- */

static const char *jstr(json_object *j, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(j, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* A gateway record -> g; NULL or the reason it is refused. */
static const char *gw_parse(const char *key, const char *val, struct dns_gw *g)
{
	json_object *j = json_tokener_parse(val);
	const char *why = NULL, *s;
	memset(g, 0, sizeof(*g));
	if (!j || !json_object_is_type(j, json_type_object)) {
		why = "not a JSON object";
		goto out;
	}
	if (!(s = jstr(j, "kind")) || strcmp(s, "gateway")) {
		why = "kind is not gateway";
		goto out;
	}
	s = jstr(j, "id");
	if (!s || strcmp(s, key + 3)) {
		why = "id is not the key's";
		goto out;
	}
	if (strlen(s) >= sizeof(g->name) || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(s)) {
		why = "id: lowercase letters, digits, '-', '_', at most 31";
		goto out;
	}
	snprintf(g->name, sizeof(g->name), "%s", s);
	if (!(s = jstr(j, "location")) || dns_parse_loc(s, &g->lat, &g->lon)) {
		why = "location: a country code with a known centre or LAT,LON";
		goto out;
	}
	s = jstr(j, "health");
	if (!s || (strcmp(s, "up") && strcmp(s, "down"))) {
		why = "health: up or down";
		goto out;
	}
	g->up = !strcmp(s, "up");
	if ((s = jstr(j, "public4")) && s[0]) {
		if (inet_pton(AF_INET, s, g->a4) != 1) {
			why = "public4 is not an IPv4 address";
			goto out;
		}
		g->has4 = 1;
	}
	if ((s = jstr(j, "public6")) && s[0]) {
		if (inet_pton(AF_INET6, s, g->a6) != 1) {
			why = "public6 is not an IPv6 address";
			goto out;
		}
		g->has6 = 1;
	}
	if (!g->has4 && !g->has6)
		why = "no public4 or public6 address";
out:
	json_object_put(j);
	return why;
}

static void peer_entry(struct dns_feed *f, const struct vs_entry *e)
{
	int i;
	if (strncmp(e->key, "gw.", 3))
		return; /* node.<id>: not ours */
	for (i = 0; i < f->ngw && strcmp(f->gw[i].key, e->key); i++)
		;
	struct fgw *x = i < f->ngw ? &f->gw[i] : NULL;
	if (e->op == VS_OP_DEL) {
		if (x && e->rev > x->rev) {
			*x = f->gw[--f->ngw];
			changed(f, 1);
		}
		return;
	}
	if (x && e->rev <= x->rev) {
		x->seen = f->b[1].epoch;
		return;
	}
	struct dns_gw g;
	const char *why = strlen(e->key) < sizeof(x->key) ? gw_parse(e->key, e->val, &g) : "key too long";
	if (why) {
		if (x) /* a bad record for a known gateway: it is no longer known good */
			*x = f->gw[--f->ngw], changed(f, 1);
		return reject(f, R_BADREC, e->bucket, e->key, why);
	}
	if (!x) {
		if (f->ngw == FEED_MAX_GW)
			return reject(f, R_BADREC, e->bucket, e->key, "too many gateways");
		x = &f->gw[f->ngw++];
		snprintf(x->key, sizeof(x->key), "%s", e->key);
	}
	x->g = g;
	x->rev = e->rev;
	x->seen = f->b[1].epoch;
	changed(f, 1);
}

/* ---------- watches ---------- */

static void on_entry(void *arg, const struct vs_entry *e)
{
	struct dns_feed *f = arg;
	pthread_mutex_lock(&f->lock);
	if (!strcmp(e->bucket, "dns"))
		dns_entry(f, e);
	else
		peer_entry(f, e);
	pthread_mutex_unlock(&f->lock);
}

static unsigned sweep_epoch;
static void **sweep_gone;
static size_t sweep_n;
static void sweep_walk(const void *nodep, VISIT which, void *closure)
{
	(void)closure;
	if (which != postorder && which != leaf)
		return;
	struct fname *n = *(struct fname *const *)nodep;
	if (n->seen != sweep_epoch) {
		void **g = realloc(sweep_gone, (sweep_n + 1) * sizeof(*g));
		if (g) {
			sweep_gone = g;
			sweep_gone[sweep_n++] = n;
		}
	}
}

/* A snapshot is complete: keys it did not deliver were deleted meanwhile. */
static void synced(struct dns_feed *f, int b)
{
	pthread_mutex_lock(&f->lock);
	unsigned ep = f->b[b].epoch;
	size_t gone = 0;
	if (b == 0) {
		sweep_epoch = ep;
		sweep_gone = NULL;
		sweep_n = 0;
		twalk_r(f->names, sweep_walk, NULL);
		for (size_t i = 0; i < sweep_n; i++) {
			tdelete(sweep_gone[i], &f->names, fname_cmp);
			free(sweep_gone[i]);
			f->nnames--;
		}
		gone = sweep_n;
		free(sweep_gone);
		sweep_gone = NULL;
	} else {
		for (int i = 0; i < f->ngw;)
			if (f->gw[i].seen != ep) {
				f->gw[i] = f->gw[--f->ngw];
				gone++;
			} else {
				i++;
			}
	}
	if (gone)
		changed(f, b);
	f->b[b].epoch++;
	f->b[b].synced = 1;
	vm_log("event=store_synced bucket=%s names=%zu gateways=%d dropped_stale=%zu", b ? "peers" : "dns", f->nnames,
	       f->ngw, gone);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static void synced_dns(void *arg) { synced(arg, 0); }
static void synced_peers(void *arg) { synced(arg, 1); }

static void *feed_thread(void *arg)
{
	struct dns_feed *f = arg;
	static const char *const bucket[2] = { "dns", "peers" };
	char err[256];
	int logged = 0;

	while (!atomic_load(&f->stop)) {
		if (!f->st) {
			struct vs_opts o = { .urls = f->urls, .creds = f->creds[0] ? f->creds : NULL, .name = "veil-dns" };
			if (vs_connect(&f->st, &o, err, sizeof(err)) != VS_OK) {
				f->st = NULL;
				goto retry;
			}
			f->connects++;
		}
		for (int b = 0; b < 2; b++) {
			if (!f->kv[b] && vs_bucket(f->st, bucket[b], 0, &f->kv[b], err, sizeof(err)) != VS_OK) {
				f->kv[b] = NULL;
				goto retry; /* its writer has not created it yet */
			}
			if (!f->w[b] && vs_watch(f->kv[b], NULL, on_entry, b ? synced_peers : synced_dns, f, &f->w[b], err,
						 sizeof(err)) != VS_OK) {
				f->w[b] = NULL;
				goto retry;
			}
		}
		if (logged)
			vm_log("event=store_watching urls=%s", f->urls);
		logged = 0;
		for (int i = 0; i < 10 && !atomic_load(&f->stop); i++)
			usleep(100000);
		continue;
retry:
		f->connect_failures++;
		pthread_mutex_lock(&f->lock);
		snprintf(f->last_err, sizeof(f->last_err), "%s", err);
		pthread_mutex_unlock(&f->lock);
		if (!logged++)
			vm_log("event=store_unavailable urls=%s reason=\"%s\" retry=1s", f->urls, err);
		for (int i = 0; i < 10 && !atomic_load(&f->stop); i++)
			usleep(100000);
	}
	return NULL;
}

int dns_feed_check(const struct dns_cfg *c, char *err, size_t len)
{
	EVP_PKEY *k = vs_load_key(c->store_pub, 0, err, len);
	if (!k)
		return -1;
	EVP_PKEY_free(k);
	return 0;
}

struct dns_feed *dns_feed_start(const struct dns_cfg *c, char *err, size_t len)
{
	struct dns_feed *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	snprintf(f->urls, sizeof(f->urls), "%s", c->store);
	snprintf(f->creds, sizeof(f->creds), "%s", c->store_creds);
	f->b[0].epoch = f->b[1].epoch = 1;
	char why[300] = "";
	if ((f->pub = vs_load_key(c->store_pub, 0, err, len)))
		f->gens = c->store_gens[0] ? vs_gens_open(c->store_gens, why, sizeof(why)) : vs_gens_new();
	if (!f->pub || !f->gens) {
		if (f->pub)
			snprintf(err, len, "store_gens: %s", why[0] ? why : "out of memory");
		EVP_PKEY_free(f->pub);
		free(f);
		return NULL;
	}
	if (pthread_create(&f->th, NULL, feed_thread, f)) {
		snprintf(err, len, "pthread_create: %s", strerror(errno));
		EVP_PKEY_free(f->pub);
		vs_gens_free(f->gens);
		free(f);
		return NULL;
	}
	return f;
}

static void free_name(void *p) { free(p); }

void dns_feed_stop(struct dns_feed *f)
{
	if (!f)
		return;
	atomic_store(&f->stop, 1);
	pthread_join(f->th, NULL);
	for (int b = 0; b < 2; b++) {
		if (f->w[b])
			vs_watch_stop(f->w[b]);
		if (f->kv[b])
			vs_kv_close(f->kv[b]);
	}
	if (f->st)
		vs_close(f->st);
	tdestroy(f->names, free_name);
	vs_gens_free(f->gens);
	EVP_PKEY_free(f->pub);
	free(f);
}

int dns_feed_synced(struct dns_feed *f, int ms)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->lock);
	while (!(f->b[0].synced && f->b[1].synced))
		if (pthread_cond_timedwait(&f->cond, &f->lock, &t))
			break;
	int ok = f->b[0].synced && f->b[1].synced;
	pthread_mutex_unlock(&f->lock);
	return ok;
}

uint64_t dns_feed_version(struct dns_feed *f)
{
	pthread_mutex_lock(&f->lock);
	uint64_t v = f->version;
	pthread_mutex_unlock(&f->lock);
	return v;
}

static struct dns_cfg *merge_cfg;
static int merge_err;
static size_t merge_outside;
static void merge_walk(const void *nodep, VISIT which, void *closure)
{
	(void)closure;
	if (which != postorder && which != leaf)
		return;
	const struct fname *n = *(struct fname *const *)nodep;
	char name[256];
	struct dns_cfg *c = merge_cfg;
	if (dns_vm_name(c, n->name, name, sizeof(name))) {
		merge_outside++; /* another zone's name, or not one a zone can hold */
		return;
	}
	for (int i = 0; i < c->nvm; i++)
		if (!strcmp(c->vm[i], name))
			return; /* the file has it too */
	if (dns_cfg_add_vm(c, name))
		merge_err = 1;
}

int dns_feed_merge(struct dns_feed *f, struct dns_cfg *c)
{
	int rc = 0;
	pthread_mutex_lock(&f->lock);
	/* the walk's state is global: merges happen on the main thread only */
	merge_cfg = c;
	merge_err = 0;
	merge_outside = 0;
	twalk_r(f->names, merge_walk, NULL);
	rc = merge_err ? -1 : 0;
	for (int i = 0; i < f->ngw; i++) {
		int j;
		for (j = 0; j < c->ngw && strcmp(c->gw[j].name, f->gw[i].g.name); j++)
			;
		if (j == c->ngw) {
			if (c->ngw == DNS_MAX_GW) {
				vm_log("event=store_gateway_skipped gateway=%s reason=\"more than %d gateways\"", f->gw[i].g.name,
				       DNS_MAX_GW);
				continue;
			}
			c->ngw++;
		}
		c->gw[j] = f->gw[i].g; /* the store's record wins over the file's */
	}
	c->hash = (c->hash ^ f->version) * 0x100000001b3ULL ^ (uint64_t)f->nnames;
	pthread_mutex_unlock(&f->lock);
	return rc;
}

void dns_feed_metrics(struct dns_feed *f, FILE *out)
{
	pthread_mutex_lock(&f->lock);
	fputs("# HELP veildns_store_rejected_total Store records refused, by reason.\n"
	      "# TYPE veildns_store_rejected_total counter\n", out);
	for (int r = 0; r < R_N; r++)
		fprintf(out, "veildns_store_rejected_total{reason=\"%s\"} %llu\n", reason_names[r],
			(unsigned long long)f->rejected[r]);
	fprintf(out,
		"# HELP veildns_store_applied_total Store changes applied, by bucket.\n"
		"# TYPE veildns_store_applied_total counter\n"
		"veildns_store_applied_total{bucket=\"dns\"} %llu\nveildns_store_applied_total{bucket=\"peers\"} %llu\n"
		"# HELP veildns_store_synced Whether the bucket's snapshot has been read (then it is watched).\n"
		"# TYPE veildns_store_synced gauge\n"
		"veildns_store_synced{bucket=\"dns\"} %d\nveildns_store_synced{bucket=\"peers\"} %d\n"
		"# HELP veildns_store_names VM names held from the store (inside the zone or not).\n"
		"# TYPE veildns_store_names gauge\nveildns_store_names %zu\n"
		"# HELP veildns_store_gateways Gateways held from the store.\n"
		"# TYPE veildns_store_gateways gauge\nveildns_store_gateways %d\n"
		"# HELP veildns_store_connect_failures_total Attempts to reach the store that failed (retried every second).\n"
		"# TYPE veildns_store_connect_failures_total counter\nveildns_store_connect_failures_total %llu\n",
		(unsigned long long)f->b[0].applied, (unsigned long long)f->b[1].applied, f->b[0].synced, f->b[1].synced,
		f->nnames, f->ngw, (unsigned long long)f->connect_failures);
	pthread_mutex_unlock(&f->lock);
}
