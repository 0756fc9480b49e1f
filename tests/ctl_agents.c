// SPDX-License-Identifier: Apache-2.0
/*
 * ctl_agents: a TEST DRIVER that plays the node agents and the image registry
 * through the store, with their real signed message formats (docs/store.md),
 * so tests/controller.sh can drive orders to ready without real VMs.  It is
 * not veil-agent nor veil-registry (the demo runs those): it does what they
 * report, on a timer.
 *
 *   ctl_agents --store URLS --controller-pub PEM --registry-key PEM
 *              [--image NAME@VERSION]... [--fail-image NAME]
 *              [--node ID:KEYPEM]... [--die ID:N] [--attest-ms N] [--ready-ms N] [--build-ms N]
 *              [--no-registry]
 *
 * registry: writes the catalogue entries, answers every verified builds/<vm>
 *           with buildstatus building then done (failed for --fail-image);
 * nodes:    heartbeat every second; for a verified vms/<node>.<vm> "run",
 *           vmstatus launching, attesting, ready; for "delete", deleted.
 * --die ID:N  node ID stops (no heartbeats, no reports) once it got N specs.
 * --no-registry  nodes only: a second driver beside one that is the registry
 *             (two registries answering one build race each other's
 *             buildstatus writes).
 * Prints one line per report; SIGTERM stops it.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "store/store.h"

#define MAX_NODES 16
#define MAX_JOBS 8192

static struct node {
	char id[65];
	EVP_PKEY *key;
	int die_after, specs, dead;
} nodes[MAX_NODES];
static int nnodes;
static EVP_PKEY *ctl_pub, *reg_key;
static vs_kv *kv_builds, *kv_bstat, *kv_vms, *kv_vstat, *kv_hb, *kv_cat;
static struct vs_gens *gens_builds, *gens_vms;
static char fail_image[128];
static int attest_ms = 300, ready_ms = 600, build_ms = 300;
static volatile sig_atomic_t stop;
static uint64_t gen_base;

static struct job {
	int used;
	struct timespec due;
	int kind;        /* 0 buildstatus, 1 vmstatus */
	char vm[80], node[65], state[16], reason[96], addr4[64], addr6[80];
	int ni;
} jobs[MAX_JOBS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t next_gen(void)
{
	static uint64_t g;
	pthread_mutex_lock(&lock);
	uint64_t r = gen_base + ++g;
	pthread_mutex_unlock(&lock);
	return r;
}

static void later(int ms, int kind, const char *vm, int ni, const char *state, const char *reason, const char *a4,
		  const char *a6)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	now.tv_sec += ms / 1000;
	now.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (now.tv_nsec >= 1000000000L) {
		now.tv_sec++;
		now.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&lock);
	for (int i = 0; i < MAX_JOBS; i++)
		if (!jobs[i].used) {
			struct job *j = &jobs[i];
			memset(j, 0, sizeof(*j));
			j->used = 1;
			j->due = now;
			j->kind = kind;
			j->ni = ni;
			snprintf(j->vm, sizeof(j->vm), "%s", vm);
			snprintf(j->state, sizeof(j->state), "%s", state);
			snprintf(j->reason, sizeof(j->reason), "%s", reason ? reason : "");
			snprintf(j->addr4, sizeof(j->addr4), "%s", a4 ? a4 : "");
			snprintf(j->addr6, sizeof(j->addr6), "%s", a6 ? a6 : "");
			break;
		}
	pthread_mutex_unlock(&lock);
}

static int put_sealed(vs_kv *kv, const char *bucket, EVP_PKEY *key, const char *k, json_object *body)
{
	char *env = NULL;
	const char *b = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	int rc = vs_seal(key, bucket, k, b, strlen(b), &env);
	/* through a cluster election (a put that timed out may not be stored):
	 * the real agents and registry retry too, for a minute */
	for (int tries = 0; rc == VS_OK && tries < 60; tries++) {
		rc = vs_put(kv, k, env, strlen(env), NULL);
		if (rc == VS_OK)
			break;
		usleep(300000);
		rc = tries == 59 ? VS_UNKNOWN : VS_OK;
	}
	free(env);
	return rc;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
												: NULL;
}

static void on_build(void *arg, const struct vs_entry *e)
{
	char *body = NULL;
	uint64_t gen;
	if (e->op != VS_OP_PUT || vs_open(ctl_pub, "builds", e->key, e->val, e->len, &body, &gen) != VS_OK) {
		free(body);
		return;
	}
	if (vs_gen_check(gens_builds, e->key, gen) != VS_OK) {
		free(body);
		return;
	}
	json_object *b = json_tokener_parse(body);
	free(body);
	const char *img = jstr(b, "image");
	int bad = img && fail_image[0] && !strncmp(img, fail_image, strlen(fail_image)) && img[strlen(fail_image)] == '@';
	later(0, 0, e->key, -1, "building", NULL, NULL, NULL);
	later(build_ms, 0, e->key, -1, bad ? "failed" : "done", bad ? "test driver: image refused to build" : NULL, NULL, NULL);
	json_object_put(b);
}

static void on_vm(void *arg, const struct vs_entry *e)
{
	char *body = NULL;
	uint64_t gen;
	if (e->op != VS_OP_PUT)
		return;
	const char *dot = strchr(e->key, '.');
	int ni = -1;
	for (int i = 0; dot && i < nnodes; i++)
		if ((size_t)(dot - e->key) == strlen(nodes[i].id) && !strncmp(e->key, nodes[i].id, strlen(nodes[i].id)))
			ni = i;
	if (ni < 0 || vs_open(ctl_pub, "vms", e->key, e->val, e->len, &body, &gen) != VS_OK) {
		free(body);
		return;
	}
	if (vs_gen_check(gens_vms, e->key, gen) != VS_OK) {
		free(body);
		return;
	}
	json_object *b = json_tokener_parse(body), *spec, *net;
	free(body);
	const char *op = jstr(b, "op"), *vm = jstr(b, "vm_id");
	pthread_mutex_lock(&lock);
	int dead = nodes[ni].dead;
	if (!dead && op && !strcmp(op, "run"))
		nodes[ni].specs++;
	if (nodes[ni].die_after && nodes[ni].specs >= nodes[ni].die_after && !nodes[ni].dead) {
		nodes[ni].dead = 1;
		printf("node %s dies (test driver) after %d specs\n", nodes[ni].id, nodes[ni].specs);
		fflush(stdout);
	}
	dead = nodes[ni].dead;
	pthread_mutex_unlock(&lock);
	if (!dead && vm && op && !strcmp(op, "run")) {
		json_object_object_get_ex(b, "spec", &spec);
		json_object_object_get_ex(spec, "network", &net);
		later(0, 1, vm, ni, "launching", NULL, jstr(net, "ipv4"), jstr(net, "ipv6"));
		later(attest_ms, 1, vm, ni, "attesting", NULL, jstr(net, "ipv4"), jstr(net, "ipv6"));
		later(ready_ms, 1, vm, ni, "ready", NULL, jstr(net, "ipv4"), jstr(net, "ipv6"));
	} else if (!dead && vm && op && !strcmp(op, "delete")) {
		later(0, 1, vm, ni, "deleted", NULL, NULL, NULL);
	}
	json_object_put(b);
}

static void run_job(struct job *j)
{
	json_object *b = json_object_new_object();
	json_object_object_add(b, "vm_id", json_object_new_string(j->vm));
	json_object_object_add(b, "gen", json_object_new_int64((int64_t)next_gen()));
	json_object_object_add(b, "state", json_object_new_string(j->state));
	json_object_object_add(b, "reason", j->reason[0] ? json_object_new_string(j->reason) : NULL);
	int rc;
	if (j->kind == 0) {
		char u[200];
		if (!strcmp(j->state, "done")) {
			static const char *const f[] = { "disk", "kernel", "initrd" };
			for (int i = 0; i < 3; i++) {
				char k[32], h[32];
				snprintf(u, sizeof(u), "https://registry.test/v1/blobs/%s-%s", f[i], j->vm);
				snprintf(k, sizeof(k), "%s_url", f[i]);
				snprintf(h, sizeof(h), "%s_sha256", f[i]);
				json_object_object_add(b, k, json_object_new_string(u));
				json_object_object_add(b, h, json_object_new_string(
					"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
			}
			json_object_object_add(b, "cmdline", json_object_new_string("console=ttyS0"));
			json_object_object_add(b, "refs_url", json_object_new_string("https://registry.test/v1/refs"));
		}
		rc = put_sealed(kv_bstat, "buildstatus", reg_key, j->vm, b);
	} else {
		pthread_mutex_lock(&lock);
		int dead = nodes[j->ni].dead;
		pthread_mutex_unlock(&lock);
		if (dead) {
			json_object_put(b);
			return;
		}
		json_object_object_add(b, "node", json_object_new_string(nodes[j->ni].id));
		json_object_object_add(b, "addr4", j->addr4[0] ? json_object_new_string(j->addr4) : NULL);
		json_object_object_add(b, "addr6", j->addr6[0] ? json_object_new_string(j->addr6) : NULL);
		json_object_object_add(b, "ts", json_object_new_int64(time(NULL)));
		rc = put_sealed(kv_vstat, "vmstatus", nodes[j->ni].key, j->vm, b);
	}
	printf("%s %s %s%s%s rc=%d\n", j->kind ? "vmstatus" : "buildstatus", j->vm, j->state, j->kind ? " node=" : "",
	       j->kind ? nodes[j->ni].id : "", rc);
	fflush(stdout);
	json_object_put(b);
}

static void heartbeat(int i)
{
	json_object *b = json_object_new_object(), *fr = json_object_new_object();
	json_object_object_add(b, "node", json_object_new_string(nodes[i].id));
	json_object_object_add(b, "gen", json_object_new_int64((int64_t)next_gen()));
	json_object_object_add(b, "ts", json_object_new_int64(time(NULL)));
	json_object_object_add(b, "vms", json_object_new_object());
	json_object_object_add(fr, "cpu", json_object_new_int(0));
	json_object_object_add(fr, "ram_mb", json_object_new_int(0));
	json_object_object_add(fr, "disk_gb", json_object_new_int(0));
	json_object_object_add(b, "free", fr);
	char *env = NULL;
	const char *s = json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN);
	if (vs_seal(nodes[i].key, "heartbeats", nodes[i].id, s, strlen(s), &env) == VS_OK)
		vs_put(kv_hb, nodes[i].id, env, strlen(env), NULL);   /* a lost one is replaced next second */
	free(env);
	json_object_put(b);
}

/* Heartbeats on their own thread: a report stuck in retries through an
 * election must not silence the node. */
static void *hb_main(void *arg)
{
	while (!stop) {
		for (int i = 0; i < nnodes; i++) {
			pthread_mutex_lock(&lock);
			int dead = nodes[i].dead;
			pthread_mutex_unlock(&lock);
			if (!dead)
				heartbeat(i);
		}
		sleep(1);
	}
	return NULL;
}

static void on_term(int s)
{
	stop = 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "store", 1, NULL, 's' }, { "controller-pub", 1, NULL, 'c' },
					      { "registry-key", 1, NULL, 'r' }, { "image", 1, NULL, 'i' },
					      { "fail-image", 1, NULL, 'f' }, { "node", 1, NULL, 'n' },
					      { "die", 1, NULL, 'd' }, { "attest-ms", 1, NULL, 'a' },
					      { "ready-ms", 1, NULL, 'R' }, { "build-ms", 1, NULL, 'b' },
					      { "keys", 1, NULL, 'k' }, { "forge", 1, NULL, 'F' },
					      { "no-registry", 0, NULL, 'N' }, { 0 } };
	int no_registry = 0;
	const char *forge = NULL;
	const char *list_bucket = NULL;
	const char *urls = NULL, *images[32];
	int nimages = 0, o;
	char err[300];
	struct {
		char id[65];
		int n;
	} dies[MAX_NODES];
	int ndies = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': urls = optarg; break;
		case 'c': ctl_pub = vs_load_key(optarg, 0, err, sizeof(err)); break;
		case 'r': reg_key = vs_load_key(optarg, 1, err, sizeof(err)); break;
		case 'i': if (nimages < 32) images[nimages++] = optarg; break;
		case 'f': snprintf(fail_image, sizeof(fail_image), "%s", optarg); break;
		case 'a': attest_ms = atoi(optarg); break;
		case 'R': ready_ms = atoi(optarg); break;
		case 'b': build_ms = atoi(optarg); break;
		case 'k': list_bucket = optarg; break;
		case 'F': forge = optarg; break;
		case 'N': no_registry = 1; break;
		case 'd': {
			char *c = strrchr(optarg, ':');
			if (c && ndies < MAX_NODES) {
				snprintf(dies[ndies].id, sizeof(dies[0].id), "%.*s", (int)(c - optarg), optarg);
				dies[ndies++].n = atoi(c + 1);
			}
			break;
		}
		case 'n': {
			char *c = strchr(optarg, ':');
			if (!c || nnodes == MAX_NODES || c - optarg > 64)
				return fprintf(stderr, "ctl_agents: --node ID:KEYPEM\n"), 2;
			snprintf(nodes[nnodes].id, sizeof(nodes[0].id), "%.*s", (int)(c - optarg), optarg);
			if (!(nodes[nnodes].key = vs_load_key(c + 1, 1, err, sizeof(err))))
				return fprintf(stderr, "ctl_agents: %s\n", err), 2;
			nnodes++;
			break;
		}
		default:
			fprintf(stderr, "usage: ctl_agents --store URLS --controller-pub PEM --registry-key PEM [--node ID:KEY]...\n");
			return 2;
		}
	}
	if (urls && list_bucket) {   /* --keys BUCKET: print its keys and exit */
		vs_store *ls;
		vs_kv *kv;
		char **keys;
		int n;
		struct vs_opts lo = { .urls = urls, .name = "ctl-agents-keys", .replicas = 1, .timeout_ms = 3000 };
		if (vs_connect(&ls, &lo, err, sizeof(err)) || vs_bucket(ls, list_bucket, 1, &kv, err, sizeof(err)) ||
		    vs_keys(kv, &keys, &n))
			return fprintf(stderr, "ctl_agents: %s\n", err), 1;
		for (int i = 0; i < n; i++)
			printf("%s\n", keys[i]);
		vs_free_keys(keys, n);
		vs_kv_close(kv);
		vs_close(ls);
		return 0;
	}
	if (urls && forge) {   /* --forge VM:NODE:KEYPEM:GEN: a "failed" vmstatus sealed with KEYPEM */
		char vm[80], node[80], key[300];
		unsigned long long g;
		if (sscanf(forge, "%79[^:]:%79[^:]:%299[^:]:%llu", vm, node, key, &g) != 4)
			return fprintf(stderr, "ctl_agents: --forge VM:NODE:KEYPEM:GEN\n"), 2;
		EVP_PKEY *k = vs_load_key(key, 1, err, sizeof(err));
		vs_store *fs;
		struct vs_opts fo = { .urls = urls, .name = "ctl-agents-forge", .replicas = 1, .timeout_ms = 3000 };
		if (!k || vs_connect(&fs, &fo, err, sizeof(err)) || vs_bucket(fs, "vmstatus", 1, &kv_vstat, err, sizeof(err)))
			return fprintf(stderr, "ctl_agents: %s\n", err), 1;
		json_object *b = json_object_new_object();
		json_object_object_add(b, "vm_id", json_object_new_string(vm));
		json_object_object_add(b, "node", json_object_new_string(node));
		json_object_object_add(b, "gen", json_object_new_int64((int64_t)g));
		json_object_object_add(b, "state", json_object_new_string("failed"));
		json_object_object_add(b, "reason", json_object_new_string("forged by the test"));
		json_object_object_add(b, "ts", json_object_new_int64(time(NULL)));
		int rc = put_sealed(kv_vstat, "vmstatus", k, vm, b);
		json_object_put(b);
		vs_close(fs);
		return rc == VS_OK ? 0 : 1;
	}
	if (!urls || !ctl_pub || !reg_key)
		return fprintf(stderr, "ctl_agents: --store, --controller-pub and --registry-key are required (%s)\n", err), 2;
	for (int d = 0; d < ndies; d++)
		for (int i = 0; i < nnodes; i++)
			if (!strcmp(nodes[i].id, dies[d].id))
				nodes[i].die_after = dies[d].n;
	gen_base = (uint64_t)time(NULL) * 1000;   /* grows across restarts of this driver */
	vs_store *st;
	struct vs_opts so = { .urls = urls, .name = "ctl-agents-test-driver", .replicas = 1, .timeout_ms = 3000 };
	if (vs_connect(&st, &so, err, sizeof(err)) || vs_bucket(st, "builds", 1, &kv_builds, err, sizeof(err)) ||
	    vs_bucket(st, "buildstatus", 1, &kv_bstat, err, sizeof(err)) || vs_bucket(st, "vms", 1, &kv_vms, err, sizeof(err)) ||
	    vs_bucket(st, "vmstatus", 1, &kv_vstat, err, sizeof(err)) || vs_bucket(st, "heartbeats", 1, &kv_hb, err, sizeof(err)) ||
	    vs_bucket(st, "catalog", 1, &kv_cat, err, sizeof(err)))
		return fprintf(stderr, "ctl_agents: %s\n", err), 1;
	gens_builds = vs_gens_new();
	gens_vms = vs_gens_new();
	for (int i = 0; i < nimages; i++) {
		char name[100], ver[60], key[170];
		const char *at = strchr(images[i], '@');
		if (!at)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(at - images[i]), images[i]);
		snprintf(ver, sizeof(ver), "%s", at + 1);
		snprintf(key, sizeof(key), "%s.%s", name, ver);
		for (char *p = key + strlen(name) + 1; *p; p++)
			if (*p == '.')
				*p = '_';
		json_object *c = json_object_new_object();
		json_object_object_add(c, "name", json_object_new_string(name));
		json_object_object_add(c, "version", json_object_new_string(ver));
		json_object_object_add(c, "gen", json_object_new_int64((int64_t)next_gen()));
		json_object_object_add(c, "sha256", json_object_new_string("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
		json_object_object_add(c, "maintainer", json_object_new_string("test driver <ops@example.test>"));
		json_object_object_add(c, "kernel", json_object_new_string("6.1.0"));
		json_object_object_add(c, "description", json_object_new_string("an image the test driver pretends to build"));
		if (put_sealed(kv_cat, "catalog", reg_key, key, c) != VS_OK)
			return fprintf(stderr, "ctl_agents: catalog %s: cannot write\n", key), 1;
		json_object_put(c);
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	for (int i = 0; i < nnodes; i++)
		heartbeat(i);
	vs_watcher *wb, *wv;
	wb = NULL;
	if ((!no_registry && vs_watch(kv_builds, NULL, on_build, NULL, NULL, &wb, err, sizeof(err))) ||
	    vs_watch(kv_vms, NULL, on_vm, NULL, NULL, &wv, err, sizeof(err)))
		return fprintf(stderr, "ctl_agents: %s\n", err), 1;
	printf("ready nodes=%d images=%d\n", nnodes, nimages);
	fflush(stdout);
	pthread_t hb;
	pthread_create(&hb, NULL, hb_main, NULL);
	while (!stop) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (;;) {   /* due jobs, earliest first: a VM's reports keep their order */
			struct job j;
			int best = -1;
			pthread_mutex_lock(&lock);
			for (int i = 0; i < MAX_JOBS; i++) {
				if (!jobs[i].used || jobs[i].due.tv_sec > now.tv_sec ||
				    (jobs[i].due.tv_sec == now.tv_sec && jobs[i].due.tv_nsec > now.tv_nsec))
					continue;
				if (best < 0 || jobs[i].due.tv_sec < jobs[best].due.tv_sec ||
				    (jobs[i].due.tv_sec == jobs[best].due.tv_sec && jobs[i].due.tv_nsec < jobs[best].due.tv_nsec))
					best = i;
			}
			if (best >= 0) {
				j = jobs[best];
				jobs[best].used = 0;
			}
			pthread_mutex_unlock(&lock);
			if (best < 0)
				break;
			run_job(&j);
		}
		usleep(20000);
	}
	pthread_join(hb, NULL);
	vs_watch_stop(wb);
	vs_watch_stop(wv);
	vs_close(st);
	return 0;
}
