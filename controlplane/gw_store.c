// SPDX-License-Identifier: Apache-2.0
/*
 * veil-gw fed from the cluster store (docs/store.md, bucket `routes`).
 *
 * The watcher's thread keeps a table of the store's routes: each entry is a
 * signed envelope (the controller's key; vs_open) whose gen must grow per
 * key (vs_gen_check), else it is dropped and counted.  Until the snapshot is
 * complete nothing is written; then the maps are made equal to the file's
 * routes plus the store's in one vm_gw_sync().  After that every change is
 * one map write (vm_gw_route_set/unset), so a route's latency does not grow
 * with the number of routes.  A name the file routes too stays the file's
 * (the operator's local override) and is counted as shadowed.
 *
 * A watcher that reconnects delivers the whole current state again, delete
 * markers included: entries at a revision we hold are re-deliveries (not
 * replays, not counted), newer ones are changes we missed and apply.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "gw_store.h"
#include "store/store.h"

/* ---------- a name -> index table (open addressing, backward-shift delete) ---------- */

struct ntab {
	int *slot; /* index + 1; 0 = empty */
	size_t cap;
	const char *(*name)(void *ctx, int idx);
	void *ctx;
};

static uint64_t hname(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ^ (h >> 29);
}

static int ntab_grow(struct ntab *t, size_t want)
{
	size_t cap = 64;
	while (cap < want * 2)
		cap <<= 1;
	if (cap <= t->cap)
		return 0;
	int *ns = calloc(cap, sizeof(*ns)), *old = t->slot;
	size_t ocap = t->cap;
	if (!ns)
		return -1;
	t->slot = ns;
	t->cap = cap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i]) {
			size_t j = hname(t->name(t->ctx, old[i] - 1)) & (cap - 1);
			while (ns[j])
				j = (j + 1) & (cap - 1);
			ns[j] = old[i];
		}
	free(old);
	return 0;
}

/* The slot holding name, or the empty slot where it would go. */
static size_t ntab_pos(const struct ntab *t, const char *name)
{
	size_t j = hname(name) & (t->cap - 1);
	while (t->slot[j] && strcmp(t->name(t->ctx, t->slot[j] - 1), name))
		j = (j + 1) & (t->cap - 1);
	return j;
}

static int ntab_find(const struct ntab *t, const char *name)
{
	if (!t->cap)
		return -1;
	size_t j = ntab_pos(t, name);
	return t->slot[j] ? t->slot[j] - 1 : -1;
}

static void ntab_set(struct ntab *t, const char *name, int idx)
{
	t->slot[ntab_pos(t, name)] = idx + 1;
}

static void ntab_del(struct ntab *t, const char *name)
{
	if (!t->cap)
		return;
	size_t i = ntab_pos(t, name), m = t->cap - 1;
	if (!t->slot[i])
		return;
	t->slot[i] = 0;
	for (size_t j = (i + 1) & m; t->slot[j]; j = (j + 1) & m) {
		size_t home = hname(t->name(t->ctx, t->slot[j] - 1)) & m;
		/* move j back into the hole when its home is not in (i, j] */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			t->slot[i] = t->slot[j];
			t->slot[j] = 0;
			i = j;
		}
	}
}

/* ---------- the store's routes ---------- */

struct sroute {
	struct vm_cfg_route r;
	uint64_t rev;
};

struct gw_store {
	pthread_mutex_t mu;
	vs_store *st;
	vs_kv *kv;
	vs_watcher *w;
	EVP_PKEY *pub;
	struct vs_gens *gens;
	struct vm_gw *g;

	struct vm_gw_cfg base;    /* the file: vips, settings, its routes */
	struct ntab files;        /* base.routes by name */
	struct sroute *rt;
	int n, cap;
	struct ntab idx;          /* rt by name */
	__u8 (*nodes)[16];        /* distinct node addresses seen */
	int nnodes, nodes_cap;

	bool synced;
	uint64_t max_rev, redelivered;
	atomic_int neigh_due;
	uint64_t applied, deleted, rej_sig, rej_replay, rej_body, map_errors, syncs;
	int shadowed;
	char urls[512];
};

static const char *rt_name(void *ctx, int i)
{
	return ((struct gw_store *)ctx)->rt[i].r.key.name;
}

static const char *file_name(void *ctx, int i)
{
	return ((struct gw_store *)ctx)->base.routes[i].key.name;
}

static void note_node(struct gw_store *s, const __u8 node[16])
{
	for (int i = 0; i < s->nnodes; i++)
		if (!memcmp(s->nodes[i], node, 16))
			return;
	if (s->nnodes == s->nodes_cap) {
		int nc = s->nodes_cap ? 2 * s->nodes_cap : 64;
		void *p = realloc(s->nodes, nc * sizeof(*s->nodes));
		if (!p)
			return;
		s->nodes = p;
		s->nodes_cap = nc;
	}
	memcpy(s->nodes[s->nnodes++], node, 16);
	atomic_store(&s->neigh_due, 1);
}

/* The body of a routes envelope -> r; -1 with the reason. */
static int parse_route(const struct gw_store *s, const char *key, const char *body, struct vm_cfg_route *r,
		       char *why, size_t len)
{
	char kname[VM_NAME_MAX];
	json_object *o = json_tokener_parse(body), *v;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(why, len, "body is not a JSON object");
		goto out;
	}
	if (vs_key_name(key, kname, sizeof(kname)) || !vm_route_name_ok(kname)) {
		snprintf(why, len, "key is not a route name");
		goto out;
	}
	if (!json_object_object_get_ex(o, "name", &v) || !json_object_is_type(v, json_type_string)) {
		snprintf(why, len, "no name");
		goto out;
	}
	char bname[VM_NAME_MAX];
	if (vs_name_key(json_object_get_string(v), bname, sizeof(bname)) || vs_key_name(bname, bname, sizeof(bname)) ||
	    strcmp(bname, kname)) {
		snprintf(why, len, "name does not match the key");
		goto out;
	}
	strcpy(r->key.name, kname);
	if (!json_object_object_get_ex(o, "vm_id", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 1 || json_object_get_int64(v) > 0xffffffffll) {
		snprintf(why, len, "vm_id is not a number in 1..4294967295");
		goto out;
	}
	r->val.vm_id = (__u32)json_object_get_int64(v);
	/* the node's underlay address of a family this gateway speaks */
	static const char *const fam_key[2] = { "node4", "node6" };
	bool have[2] = { s->base.dp.has_underlay4, s->base.dp.has_underlay6 };
	for (int f = 0; f < 2 && !r->val.node_family; f++) {
		if (!have[f] || !json_object_object_get_ex(o, fam_key[f], &v) || !json_object_is_type(v, json_type_string) ||
		    !json_object_get_string_len(v))
			continue;
		int fam = vm_addr_parse(json_object_get_string(v), r->val.node);
		if (fam != (f ? VM_AF_INET6 : VM_AF_INET)) {
			snprintf(why, len, "%s is not an IPv%d address", fam_key[f], f ? 6 : 4);
			goto out;
		}
		r->val.node_family = fam;
	}
	if (!r->val.node_family) {
		snprintf(why, len, "no node4/node6 of a family this gateway has an underlay for");
		goto out;
	}
	rc = 0;
out:
	json_object_put(o);
	return rc;
}

static int grow_rt(struct gw_store *s)
{
	if (s->n < s->cap)
		return 0;
	int nc = s->cap ? 2 * s->cap : 1024;
	void *p = realloc(s->rt, (size_t)nc * sizeof(*s->rt));
	if (!p)
		return -1;
	s->rt = p;
	s->cap = nc;
	return ntab_grow(&s->idx, (size_t)nc);
}

static void rt_remove(struct gw_store *s, int i)
{
	ntab_del(&s->idx, s->rt[i].r.key.name);
	if (i != s->n - 1) {
		s->rt[i] = s->rt[s->n - 1];
		ntab_set(&s->idx, s->rt[i].r.key.name, i);
	}
	s->n--;
}

/* file + store routes into the maps; called with mu held */
static int full_sync(struct gw_store *s, int *changes)
{
	struct vm_gw_cfg m = s->base;
	m.routes = malloc(((size_t)s->base.nroutes + (size_t)s->n + 1) * sizeof(*m.routes));
	if (!m.routes)
		return -ENOMEM;
	memcpy(m.routes, s->base.routes, (size_t)s->base.nroutes * sizeof(*m.routes));
	m.nroutes = s->base.nroutes;
	int shadowed = 0;
	for (int i = 0; i < s->n; i++) {
		if (ntab_find(&s->files, s->rt[i].r.key.name) >= 0) {
			shadowed++;
			continue;
		}
		m.routes[m.nroutes++] = s->rt[i].r;
	}
	int rc = vm_gw_sync(s->g, &m, changes);
	free(m.routes);
	s->shadowed = shadowed;
	s->syncs++;
	return rc;
}

static void on_entry(void *arg, const struct vs_entry *e)
{
	struct gw_store *s = arg;
	char name[VM_NAME_MAX], why[200] = "";

	if (vs_key_name(e->key, name, sizeof(name))) {
		pthread_mutex_lock(&s->mu);
		s->rej_body++;
		pthread_mutex_unlock(&s->mu);
		vm_log("event=store_rejected bucket=routes reason=body detail=\"key is not a route name\"");
		return;
	}
	pthread_mutex_lock(&s->mu);
	int i = ntab_find(&s->idx, name);
	if (s->synced && e->rev <= s->max_rev)
		s->redelivered++; /* the watcher started over after a lost connection */
	if (e->rev > s->max_rev)
		s->max_rev = e->rev;
	if (i >= 0 && e->rev <= s->rt[i].rev) { /* delivered again: nothing new */
		pthread_mutex_unlock(&s->mu);
		return;
	}
	bool live = s->synced;
	if (e->op == VS_OP_DEL) {
		vs_gen_deleted(s->gens, e->key);   /* its last envelope put back is a replay, restart or not */
		if (i >= 0) {
			rt_remove(s, i);
			s->deleted++;
			bool shadow = ntab_find(&s->files, name) >= 0;
			s->shadowed -= shadow;
			int rc = live && !shadow ? vm_gw_route_unset(s->g, name) : 0;
			if (rc)
				s->map_errors++;
			if (live)
				vm_log("event=store_route op=del name=%s rev=%llu%s", name, (unsigned long long)e->rev,
				       rc ? " map_error=yes" : "");
		}
		pthread_mutex_unlock(&s->mu);
		return;
	}
	char *body = NULL;
	uint64_t gen = 0;
	int rc = vs_open(s->pub, "routes", e->key, e->val, e->len, &body, &gen);
	struct vm_cfg_route r;
	const char *reason = NULL;
	if (rc == VS_BADSIG || rc != VS_OK) {
		reason = "signature";
		s->rej_sig++;
		snprintf(why, sizeof(why), "%s", vs_strerror(rc));
	} else if (parse_route(s, e->key, body, &r, why, sizeof(why))) {
		reason = "body";
		s->rej_body++;
	} else if (vs_gen_check(s->gens, e->key, gen) != VS_OK) {
		reason = "replay";
		s->rej_replay++;
		snprintf(why, sizeof(why), "gen %llu is not above the last one applied", (unsigned long long)gen);
	}
	free(body);
	if (reason) {
		uint64_t total = reason[0] == 's' ? s->rej_sig : reason[0] == 'b' ? s->rej_body : s->rej_replay;
		pthread_mutex_unlock(&s->mu);
		vm_log("event=store_rejected bucket=routes key=%s rev=%llu reason=%s detail=\"%s\" total=%llu", e->key,
		       (unsigned long long)e->rev, reason, why, (unsigned long long)total);
		return;
	}
	bool shadow = ntab_find(&s->files, name) >= 0;
	if (i < 0) {
		if (grow_rt(s)) {
			s->map_errors++;
			pthread_mutex_unlock(&s->mu);
			vm_log("event=store_error reason=\"out of memory for route %s\"", name);
			return;
		}
		i = s->n++;
		s->rt[i].r = r;
		ntab_set(&s->idx, name, i);
		s->shadowed += shadow;
	}
	s->rt[i].r = r;
	s->rt[i].rev = e->rev;
	s->applied++;
	note_node(s, r.val.node);
	int mrc = live && !shadow ? vm_gw_route_set(s->g, &r) : 0;
	if (mrc)
		s->map_errors++;
	pthread_mutex_unlock(&s->mu);
	if (live) {
		char a[64];
		vm_log("event=store_route op=put name=%s vm_id=%u node=%s gen=%llu rev=%llu%s%s", name, r.val.vm_id,
		       vm_addr_str(r.val.node, a, sizeof(a)), (unsigned long long)gen, (unsigned long long)e->rev,
		       shadow ? " shadowed_by_file=yes" : "", mrc ? " map_error=yes" : "");
	}
}

static void on_synced(void *arg)
{
	struct gw_store *s = arg;
	int changes = 0;

	pthread_mutex_lock(&s->mu);
	s->synced = true;
	int rc = full_sync(s, &changes);
	int n = s->n, shadowed = s->shadowed;
	if (rc)
		s->map_errors++;
	pthread_mutex_unlock(&s->mu);
	vm_log("event=store_synced bucket=routes routes=%d shadowed=%d changes=%d%s%s", n, shadowed,
	       changes, rc ? " error=" : "", rc ? strerror(-rc) : "");
}

static int copy_base(struct gw_store *s, const struct vm_gw_cfg *c)
{
	struct vm_cfg_route *nr = malloc(((size_t)c->nroutes + 1) * sizeof(*nr));
	if (!nr)
		return -1;
	memcpy(nr, c->routes, (size_t)c->nroutes * sizeof(*nr));
	free(s->base.routes);
	s->base = *c;
	s->base.routes = nr;
	free(s->files.slot);
	s->files.slot = NULL;
	s->files.cap = 0;
	if (ntab_grow(&s->files, (size_t)c->nroutes + 1))
		return -1;
	for (int i = 0; i < c->nroutes; i++) {
		ntab_set(&s->files, c->routes[i].key.name, i);
		note_node(s, c->routes[i].val.node);
	}
	return 0;
}

struct gw_store *gw_store_start(struct vm_gw *g, const struct vm_gw_cfg *c, char *err, size_t errlen)
{
	struct gw_store *s = calloc(1, sizeof(*s));
	char why[512] = "";

	if (!s)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	s->g = g;
	s->idx.name = rt_name;
	s->idx.ctx = s;
	s->files.name = file_name;
	s->files.ctx = s;
	snprintf(s->urls, sizeof(s->urls), "%s", c->store_urls);
	s->pub = vs_load_key(c->store_pub, 0, why, sizeof(why));
	if (!s->pub) {
		snprintf(err, errlen, "%s:%d: store_pub %s: %s", c->path, c->store_pub_line, c->store_pub, why);
		goto fail;
	}
	if (c->store_gens[0] && !(s->gens = vs_gens_open(c->store_gens, why, sizeof(why)))) {
		snprintf(err, errlen, "%s: store_gens: %s", c->path, why);
		goto fail;
	}
	if (!s->gens)
		s->gens = vs_gens_new();
	if (!s->gens || copy_base(s, c) || ntab_grow(&s->idx, 1024)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	struct vs_opts o = { .urls = c->store_urls, .name = "veil-gw", .replicas = 1 };
	int rc = vs_connect(&s->st, &o, why, sizeof(why));
	if (rc == VS_OK)
		rc = vs_bucket(s->st, "routes", 1, &s->kv, why, sizeof(why));
	if (rc == VS_OK)
		rc = vs_watch(s->kv, NULL, on_entry, on_synced, s, &s->w, why, sizeof(why));
	if (rc != VS_OK) {
		snprintf(err, errlen, "store %s: %s", c->store_urls, why[0] ? why : vs_strerror(rc));
		goto fail;
	}
	return s;
fail:
	gw_store_stop(s);
	return NULL;
}

void gw_store_stop(struct gw_store *s)
{
	if (!s)
		return;
	if (s->w)
		vs_watch_stop(s->w);
	if (s->kv)
		vs_kv_close(s->kv);
	if (s->st)
		vs_close(s->st);
	if (s->gens)
		vs_gens_free(s->gens);
	EVP_PKEY_free(s->pub);
	free(s->base.routes);
	free(s->files.slot);
	free(s->idx.slot);
	free(s->rt);
	free(s->nodes);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int gw_store_reload(struct gw_store *s, const struct vm_gw_cfg *c, int *changes)
{
	pthread_mutex_lock(&s->mu);
	int rc = copy_base(s, c) ? -ENOMEM : 0;
	if (!rc)
		rc = s->synced ? full_sync(s, changes) : vm_gw_sync(s->g, c, changes);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void gw_store_poll(struct gw_store *s)
{
	if (!atomic_exchange(&s->neigh_due, 0))
		return;
	/* one route per distinct node: vm_next_hops makes each a managed neighbour */
	pthread_mutex_lock(&s->mu);
	int n = s->nnodes;
	struct vm_gw_cfg tmp = s->base;
	tmp.routes = calloc((size_t)n + 1, sizeof(*tmp.routes));
	for (int i = 0; tmp.routes && i < n; i++)
		memcpy(tmp.routes[i].val.node, s->nodes[i], 16);
	pthread_mutex_unlock(&s->mu);
	if (!tmp.routes)
		return;
	tmp.nroutes = n;
	struct vm_next_hop *hops = calloc((size_t)n + 1, sizeof(*hops));
	if (hops)
		vm_next_hops(&tmp, hops, n, true);
	free(hops);
	free(tmp.routes);
}

int gw_store_routes(struct gw_store *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void gw_store_metrics(struct gw_store *s, FILE *out)
{
	pthread_mutex_lock(&s->mu);
	fprintf(out,
		"# HELP veilmesh_gw_store_routes Routes held from the store's bucket routes.\n"
		"# TYPE veilmesh_gw_store_routes gauge\nveilmesh_gw_store_routes %d\n"
		"# HELP veilmesh_gw_store_routes_shadowed Store routes the config file also routes (the file's win).\n"
		"# TYPE veilmesh_gw_store_routes_shadowed gauge\nveilmesh_gw_store_routes_shadowed %d\n"
		"# HELP veilmesh_gw_store_synced 1 once the store's snapshot is in the maps.\n"
		"# TYPE veilmesh_gw_store_synced gauge\nveilmesh_gw_store_synced %d\n"
		"# HELP veilmesh_gw_store_applied_total Route envelopes verified and applied.\n"
		"# TYPE veilmesh_gw_store_applied_total counter\nveilmesh_gw_store_applied_total %llu\n"
		"# HELP veilmesh_gw_store_deleted_total Routes deleted in the store.\n"
		"# TYPE veilmesh_gw_store_deleted_total counter\nveilmesh_gw_store_deleted_total %llu\n"
		"# HELP store_rejected_total Store entries dropped, by reason (docs/store.md).\n"
		"# TYPE store_rejected_total counter\n"
		"store_rejected_total{bucket=\"routes\",reason=\"signature\"} %llu\n"
		"store_rejected_total{bucket=\"routes\",reason=\"replay\"} %llu\n"
		"store_rejected_total{bucket=\"routes\",reason=\"body\"} %llu\n"
		"# HELP veilmesh_gw_store_map_errors_total Route map writes that failed.\n"
		"# TYPE veilmesh_gw_store_map_errors_total counter\nveilmesh_gw_store_map_errors_total %llu\n",
		s->n, s->shadowed, s->synced ? 1 : 0, (unsigned long long)s->applied, (unsigned long long)s->deleted,
		(unsigned long long)s->rej_sig, (unsigned long long)s->rej_replay, (unsigned long long)s->rej_body,
		(unsigned long long)s->map_errors);
	pthread_mutex_unlock(&s->mu);
}

void gw_store_status(struct gw_store *s, FILE *out)
{
	pthread_mutex_lock(&s->mu);
	fprintf(out, "{\"urls\": ");
	vm_json_str(out, s->urls);
	fprintf(out, ", \"synced\": %s, \"routes\": %d, \"shadowed\": %d, \"applied\": %llu, \"deleted\": %llu, "
		     "\"rejected\": {\"signature\": %llu, \"replay\": %llu, \"body\": %llu}, \"full_syncs\": %llu, "
		     "\"redelivered\": %llu, \"map_errors\": %llu}",
		s->synced ? "true" : "false", s->n, s->shadowed, (unsigned long long)s->applied,
		(unsigned long long)s->deleted, (unsigned long long)s->rej_sig, (unsigned long long)s->rej_replay,
		(unsigned long long)s->rej_body, (unsigned long long)s->syncs, (unsigned long long)s->redelivered,
		(unsigned long long)s->map_errors);
	pthread_mutex_unlock(&s->mu);
}
