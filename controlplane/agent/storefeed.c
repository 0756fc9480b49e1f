// SPDX-License-Identifier: Apache-2.0
/*
 * veil-agent fed from the cluster store (docs/store.md, docs/agent.md).
 *
 * Orders: bucket `vms`, keys <node_id>.<vm_id>, each an envelope signed by
 * the controller: {"vm_id","node","order","gen","op":"run"|"delete","spec"}.
 * The watch (filter <node_id>.*, behind its marker key) runs on its own
 * thread; every envelope is verified (vs_open with the controller's key),
 * bound to this node and to its key's vm_id, and its gen must be above the
 * last one applied for that key (vs_gen_check), else it is dropped and
 * counted.  A watcher that reconnects delivers everything again: an entry at
 * a revision already seen is a re-delivery, not a replay.  A plain KV delete
 * is not an order (only the controller's signed op "delete" tears a VM
 * down): it is counted and ignored.
 *
 * Reports: vmstatus/<vm_id> and heartbeats/<node_id>, sealed with the node's
 * key; their gen is the agent's own counter, persisted in blocks under the
 * state directory so it keeps growing across restarts.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "daemon.h"
#include "storefeed.h"
#include "store/store.h"

#define FEED_MAX 256
#define GEN_BLOCK 1000

struct entry {
	char vm_id[33];
	uint64_t rev;
	bool run;                 /* wanted (op run) */
	struct ag_feed_vm vm;
};

struct ag_feed {
	pthread_mutex_t mu;
	vs_store *st;
	vs_kv *vms, *status, *beats;
	vs_watcher *w;
	EVP_PKEY *ctl, *node;
	struct vs_gens *gens;
	char node_id[80], prefix[96], gen_path[600];
	uint64_t gen_next, gen_reserved;
	struct entry e[FEED_MAX];
	int n;
	bool synced;
	uint64_t version;
	uint64_t rej_sig, rej_replay, rej_body, rej_spec, rej_delete, rej_full;
};

/* ---------- the reports' gen: a persisted counter, reserved in blocks ---------- */

static int gen_reserve(struct ag_feed *f, uint64_t upto)
{
	char tmp[700];
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->gen_path);
	FILE *o = fopen(tmp, "w");
	if (!o)
		return -1;
	fprintf(o, "%llu\n", (unsigned long long)upto);
	int ok = fflush(o) == 0 && fsync(fileno(o)) == 0;
	ok &= fclose(o) == 0;
	if (!ok || rename(tmp, f->gen_path))
		return -1;
	f->gen_reserved = upto;
	return 0;
}

static uint64_t gen_take(struct ag_feed *f)
{
	if (f->gen_next > f->gen_reserved && gen_reserve(f, f->gen_reserved + GEN_BLOCK))
		ag_log("event=store_warning reason=\"cannot persist the report counter %s: %s\"", f->gen_path,
		     strerror(errno));
	return f->gen_next++;
}

/* ---------- orders ---------- */

static struct entry *find(struct ag_feed *f, const char *vm_id)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->e[i].vm_id, vm_id))
			return &f->e[i];
	return NULL;
}

static void warn_spec(const char *msg)
{
	ag_log("event=spec_warning source=store reason=\"%s\"", msg);
}

static void reject(struct ag_feed *f, uint64_t *counter, const char *key, uint64_t rev, const char *reason,
		   const char *why)
{
	(*counter)++;
	ag_log("event=store_rejected bucket=vms key=%s rev=%llu reason=%s detail=\"%s\" total=%llu", key,
	     (unsigned long long)rev, reason, why, (unsigned long long)*counter);
}

/* The order's body -> vm; -1 with the reason (bad body), -2 (a bad spec). */
static int parse_order(struct ag_feed *f, const char *vm_id, const char *body, bool *run, struct ag_feed_vm *vm,
		       char *why, size_t len)
{
	json_object *o = json_tokener_parse(body), *v, *spec;
	int rc = -1;

	memset(vm, 0, sizeof(*vm));
	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(why, len, "body is not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(o, "vm_id", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), vm_id)) {
		snprintf(why, len, "vm_id is not the key's (%s)", vm_id);
		goto out;
	}
	if (!json_object_object_get_ex(o, "node", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), f->node_id)) {
		snprintf(why, len, "node is not this node (%s)", f->node_id);
		goto out;
	}
	if (json_object_object_get_ex(o, "order", &v) && json_object_is_type(v, json_type_string))
		snprintf(vm->order, sizeof(vm->order), "%s", json_object_get_string(v));
	if (!json_object_object_get_ex(o, "op", &v) || !json_object_is_type(v, json_type_string) ||
	    (strcmp(json_object_get_string(v), "run") && strcmp(json_object_get_string(v), "delete"))) {
		snprintf(why, len, "op must be \"run\" or \"delete\"");
		goto out;
	}
	*run = !strcmp(json_object_get_string(v), "run");
	if (!*run) {
		rc = 0;
		goto out;
	}
	if (!json_object_object_get_ex(o, "spec", &spec) || !json_object_is_type(spec, json_type_object)) {
		snprintf(why, len, "op run without a spec object");
		goto out;
	}
	/* the spec's id is the key's vm_id: filled in when absent, refused when another */
	if (json_object_object_get_ex(spec, "id", &v)) {
		if (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), vm_id)) {
			snprintf(why, len, "spec id is not the key's vm_id %s", vm_id);
			rc = -2;
			goto out;
		}
	} else {
		json_object_object_add(spec, "id", json_object_new_string(vm_id));
	}
	char name[160];
	snprintf(name, sizeof(name), "vms/%s.%s", f->node_id, vm_id);
	const char *text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (ag_spec_parse(name, text, strlen(text), &vm->spec, warn_spec, why, len)) {
		rc = -2;
		goto out;
	}
	rc = 0;
out:
	json_object_put(o);
	return rc;
}

static void on_entry(void *arg, const struct vs_entry *e)
{
	struct ag_feed *f = arg;
	char why[1024] = "";
	const char *vm_id = e->key + strlen(f->prefix);

	if (strncmp(e->key, f->prefix, strlen(f->prefix)) || !*vm_id || strlen(vm_id) > 32 ||
	    strspn(vm_id, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(vm_id)) {
		pthread_mutex_lock(&f->mu);
		reject(f, &f->rej_body, e->key, e->rev, "body", "key is not <node_id>.<vm_id> with a valid vm_id");
		pthread_mutex_unlock(&f->mu);
		return;
	}
	pthread_mutex_lock(&f->mu);
	struct entry *en = find(f, vm_id);
	if (en && e->rev <= en->rev) { /* delivered again after a reconnect */
		pthread_mutex_unlock(&f->mu);
		return;
	}
	if (e->op == VS_OP_DEL) {
		reject(f, &f->rej_delete, e->key, e->rev, "unsigned_delete",
		       "a KV delete is not an order: only the controller's signed op delete removes a VM");
		if (en)
			en->rev = e->rev;
		pthread_mutex_unlock(&f->mu);
		return;
	}
	char *body = NULL;
	uint64_t gen = 0;
	int rc = vs_open(f->ctl, "vms", e->key, e->val, e->len, &body, &gen);
	if (rc != VS_OK) {
		reject(f, &f->rej_sig, e->key, e->rev, "signature", vs_strerror(rc));
		pthread_mutex_unlock(&f->mu);
		free(body);
		return;
	}
	static struct ag_feed_vm vm;
	bool run = false;
	int prc = parse_order(f, vm_id, body, &run, &vm, why, sizeof(why));
	free(body);
	if (prc == -1) {
		reject(f, &f->rej_body, e->key, e->rev, "body", why);
		pthread_mutex_unlock(&f->mu);
		return;
	}
	if (vs_gen_check(f->gens, e->key, gen) != VS_OK) {
		snprintf(why, sizeof(why), "gen %llu is not above the last one applied", (unsigned long long)gen);
		reject(f, &f->rej_replay, e->key, e->rev, "replay", why);
		pthread_mutex_unlock(&f->mu);
		return;
	}
	if (prc == -2) { /* genuine, but not a spec this agent can run: the controller hears why */
		reject(f, &f->rej_spec, e->key, e->rev, "spec", why);
		pthread_mutex_unlock(&f->mu);
		char reason[1100];
		snprintf(reason, sizeof(reason), "spec refused: %s", why);
		ag_feed_status(f, vm_id, "failed", reason, "", "");
		return;
	}
	if (!en) {
		if (f->n == FEED_MAX) {
			reject(f, &f->rej_full, e->key, e->rev, "full", "more VM orders than the agent holds");
			pthread_mutex_unlock(&f->mu);
			return;
		}
		en = &f->e[f->n++];
		memset(en, 0, sizeof(*en));
		snprintf(en->vm_id, sizeof(en->vm_id), "%s", vm_id);
	}
	en->rev = e->rev;
	en->run = run;
	if (run) {
		en->vm = vm;
		en->vm.gen = gen;
	} else {
		en->vm.gen = gen;
	}
	f->version++;
	bool synced = f->synced;
	pthread_mutex_unlock(&f->mu);
	if (synced)
		ag_log("event=store_order vm=%s op=%s gen=%llu rev=%llu%s%s", vm_id, run ? "run" : "delete",
		     (unsigned long long)gen, (unsigned long long)e->rev, vm.order[0] ? " order=" : "", vm.order);
}

static void on_synced(void *arg)
{
	struct ag_feed *f = arg;
	pthread_mutex_lock(&f->mu);
	f->synced = true;
	f->version++;
	int run = 0;
	for (int i = 0; i < f->n; i++)
		run += f->e[i].run;
	pthread_mutex_unlock(&f->mu);
	ag_log("event=store_synced bucket=vms prefix=%s* wanted=%d", f->prefix, run);
}

struct ag_feed *ag_feed_start(const struct ag_cfg *c, const char *state_dir, char *err, size_t errlen)
{
	struct ag_feed *f = calloc(1, sizeof(*f));
	char why[512] = "";
	if (!f)
		return NULL;
	pthread_mutex_init(&f->mu, NULL);
	snprintf(f->node_id, sizeof(f->node_id), "%s", c->node_id);
	snprintf(f->prefix, sizeof(f->prefix), "%s.", c->node_id);
	snprintf(f->gen_path, sizeof(f->gen_path), "%s/store-gen", state_dir);
	if (!(f->ctl = vs_load_key(c->controller_pub, 0, why, sizeof(why))) ||
	    !(f->node = vs_load_key(c->node_signing_key, 1, why, sizeof(why)))) {
		snprintf(err, errlen, "%s: store: %s", c->path, why);
		goto fail;
	}
	/* the reports' gen continues above anything an earlier run may have used */
	FILE *g = fopen(f->gen_path, "r");
	unsigned long long r = 0;
	if (g) {
		if (fscanf(g, "%llu", &r) != 1)
			r = 0;
		fclose(g);
	}
	f->gen_next = r + 1;
	f->gen_reserved = r;
	if (gen_reserve(f, r + GEN_BLOCK)) {
		snprintf(err, errlen, "%s: %s", f->gen_path, strerror(errno));
		goto fail;
	}
	/* the last gen applied per VM key, kept across restarts: an older order
	 * put back in the store while the agent was down is still a replay */
	char gpath[700];
	snprintf(gpath, sizeof(gpath), "%s/store-vms.gens", state_dir);
	if (!(f->gens = vs_gens_open(gpath, why, sizeof(why)))) {
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	struct vs_opts o = { .urls = c->store_urls, .creds = c->store_creds[0] ? c->store_creds : NULL,
			     .name = "veil-agent", .replicas = 1 };
	int rc = vs_connect(&f->st, &o, why, sizeof(why));
	if (rc == VS_OK)
		rc = vs_bucket(f->st, "vms", 1, &f->vms, why, sizeof(why));
	if (rc == VS_OK)
		rc = vs_bucket(f->st, "vmstatus", 1, &f->status, why, sizeof(why));
	if (rc == VS_OK)
		rc = vs_bucket(f->st, "heartbeats", 1, &f->beats, why, sizeof(why));
	if (rc == VS_OK) { /* never watch a prefix without a key: its marker first (docs/store.md) */
		char mk[128];
		snprintf(mk, sizeof(mk), "%s__", f->prefix);
		int mrc = vs_create(f->vms, mk, "{}", 2, NULL);
		if (mrc != VS_OK && mrc != VS_EXISTS) {
			rc = mrc;
			snprintf(why, sizeof(why), "marker key %s: %s", mk, vs_strerror(mrc));
		}
	}
	if (rc == VS_OK) {
		char filter[128];
		snprintf(filter, sizeof(filter), "%s*", f->prefix);
		rc = vs_watch(f->vms, filter, on_entry, on_synced, f, &f->w, why, sizeof(why));
	}
	if (rc != VS_OK) {
		snprintf(err, errlen, "store %s: %s", c->store_urls, why[0] ? why : vs_strerror(rc));
		goto fail;
	}
	return f;
fail:
	ag_feed_stop(f);
	return NULL;
}

void ag_feed_stop(struct ag_feed *f)
{
	if (!f)
		return;
	vs_watch_stop(f->w);
	vs_kv_close(f->vms);
	vs_kv_close(f->status);
	vs_kv_close(f->beats);
	vs_close(f->st);
	if (f->gens)
		vs_gens_free(f->gens);
	EVP_PKEY_free(f->ctl);
	EVP_PKEY_free(f->node); /* OpenSSL wipes the private key's memory */
	pthread_mutex_destroy(&f->mu);
	free(f);
}

bool ag_feed_synced(struct ag_feed *f)
{
	pthread_mutex_lock(&f->mu);
	bool s = f->synced;
	pthread_mutex_unlock(&f->mu);
	return s;
}

uint64_t ag_feed_version(struct ag_feed *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t v = f->version;
	pthread_mutex_unlock(&f->mu);
	return v;
}

struct ag_feed_vm *ag_feed_wanted(struct ag_feed *f, int *n, uint64_t *version)
{
	pthread_mutex_lock(&f->mu);
	struct ag_feed_vm *out = calloc((size_t)f->n + 1, sizeof(*out));
	*n = 0;
	for (int i = 0; out && i < f->n; i++)
		if (f->e[i].run)
			out[(*n)++] = f->e[i].vm;
	if (version)
		*version = f->version;
	pthread_mutex_unlock(&f->mu);
	return out;
}

static int put_sealed(struct ag_feed *f, vs_kv *kv, const char *bucket, const char *key, json_object *o)
{
	pthread_mutex_lock(&f->mu);
	uint64_t gen = gen_take(f);
	pthread_mutex_unlock(&f->mu);
	json_object_object_add(o, "gen", json_object_new_int64((int64_t)gen));
	json_object_object_add(o, "ts", json_object_new_int64((int64_t)time(NULL)));
	const char *body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *env = NULL;
	int rc = vs_seal(f->node, bucket, key, body, strlen(body), &env);
	if (rc == VS_OK)
		rc = vs_put(kv, key, env, strlen(env), NULL);
	free(env);
	return rc == VS_OK ? 0 : -1;
}

int ag_feed_status(struct ag_feed *f, const char *vm_id, const char *state, const char *reason, const char *addr4,
		   const char *addr6)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "vm_id", json_object_new_string(vm_id));
	json_object_object_add(o, "node", json_object_new_string(f->node_id));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "reason", json_object_new_string(reason ? reason : ""));
	json_object_object_add(o, "addr4", json_object_new_string(addr4 ? addr4 : ""));
	json_object_object_add(o, "addr6", json_object_new_string(addr6 ? addr6 : ""));
	int rc = put_sealed(f, f->status, "vmstatus", vm_id, o);
	json_object_put(o);
	if (rc)
		ag_log("event=store_report_failed bucket=vmstatus vm=%s state=%s", vm_id, state);
	return rc;
}

int ag_feed_heartbeat(struct ag_feed *f, const char *vms_json, int free_cpu, uint64_t free_ram_mb,
		      uint64_t free_disk_gb)
{
	json_object *o = json_object_new_object(), *fr = json_object_new_object();
	json_object *vms = json_tokener_parse(vms_json);
	json_object_object_add(o, "node", json_object_new_string(f->node_id));
	json_object_object_add(o, "vms", vms ? vms : json_object_new_object());
	json_object_object_add(fr, "cpu", json_object_new_int(free_cpu));
	json_object_object_add(fr, "ram_mb", json_object_new_int64((int64_t)free_ram_mb));
	json_object_object_add(fr, "disk_gb", json_object_new_int64((int64_t)free_disk_gb));
	json_object_object_add(o, "free", fr);
	int rc = put_sealed(f, f->beats, "heartbeats", f->node_id, o);
	json_object_put(o);
	return rc;
}

void ag_feed_counts(struct ag_feed *f, char *buf, size_t len)
{
	pthread_mutex_lock(&f->mu);
	snprintf(buf, len, "signature=%llu replay=%llu body=%llu spec=%llu unsigned_delete=%llu full=%llu",
		 (unsigned long long)f->rej_sig, (unsigned long long)f->rej_replay, (unsigned long long)f->rej_body,
		 (unsigned long long)f->rej_spec, (unsigned long long)f->rej_delete, (unsigned long long)f->rej_full);
	pthread_mutex_unlock(&f->mu);
}
