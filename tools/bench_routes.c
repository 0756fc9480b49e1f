// SPDX-License-Identifier: Apache-2.0
/*
 * veil-bench-routes: the time from a route written to the store (bucket
 * routes, a sealed envelope as the controller writes it) to its entry in a
 * running veil-gw's pinned routes map, with many routes in the store.
 *
 *   veil-bench-routes --store URLS --key CONTROLLER_PRIVKEY --map PINNED_ROUTES
 *                     --node4 ADDR [--routes 100000] [--samples 400] [--gw-pid PID]
 *
 * 1. writes --routes routes (r<i>.bench.veil.test) and waits until the map
 *    holds them (or as many as it can: the load's time and rate are reported);
 * 2. --samples times, alternately a new route and a changed VM id of an
 *    existing one: the time from the put's start to the lookup that sees it
 *    (the map polled every 20 us);
 * 3. the gateway's memory (VmRSS, VmHWM of --gw-pid) and the map's memlock.
 * Prints one JSON object.
 */
#include <getopt.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "veil/wire.h"
#include "store/store.h"
#include "veil.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int put_route(vs_kv *kv, EVP_PKEY *k, const char *name, uint32_t vm_id, uint64_t gen, const char *node4)
{
	char body[512], key[300], *env = NULL;
	int n = snprintf(body, sizeof(body),
			 "{\"name\":\"%s\",\"gen\":%llu,\"vm_id\":%u,\"node\":\"bench-node\",\"node4\":\"%s\",\"node6\":null}",
			 name, (unsigned long long)gen, vm_id, node4);
	if (vs_name_key(name, key, sizeof(key)) || vs_seal(k, "routes", key, body, (size_t)n, &env))
		return -1;
	int rc = vs_put(kv, key, env, strlen(env), NULL);
	free(env);
	return rc;
}

static int lookup_vm(int fd, const char *name, uint32_t *vm_id)
{
	struct route_val v;
	if (vm_gw_route_get(fd, name, &v))   /* keyed by the name's hash, the name compared */
		return -1;
	*vm_id = v.vm_id;
	return 0;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	if (!n)
		return -1;
	int i = (int)ceil(p / 100.0 * n) - 1;
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static long status_kb(int pid, const char *field)
{
	char p[64], line[256];
	long v = -1;
	snprintf(p, sizeof(p), "/proc/%d/status", pid);
	FILE *f = fopen(p, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, strlen(field)))
			v = strtol(line + strlen(field) + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static long memlock(int fd)
{
	char p[64], line[256];
	long v = -1;
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(p, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "memlock:", 8))
			v = strtol(line + 8, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store", 1, 0, 's' }, { "key", 1, 0, 'k' }, { "map", 1, 0, 'm' }, { "node4", 1, 0, '4' },
		{ "routes", 1, 0, 'n' }, { "samples", 1, 0, 'S' }, { "gw-pid", 1, 0, 'p' }, { "help", 0, 0, 'h' }, { 0 } };
	const char *urls = NULL, *keyf = NULL, *mapf = NULL, *node4 = NULL;
	int nroutes = 100000, samples = 400, pid = 0, o;
	char err[512] = "";

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
		switch (o) {
		case 's': urls = optarg; break;
		case 'k': keyf = optarg; break;
		case 'm': mapf = optarg; break;
		case '4': node4 = optarg; break;
		case 'n': nroutes = atoi(optarg); break;
		case 'S': samples = atoi(optarg); break;
		case 'p': pid = atoi(optarg); break;
		case 'h':
			printf("usage: veil-bench-routes --store URLS --key PRIVKEY --map PINNED_ROUTES --node4 ADDR [--routes N]\n"
			       "                         [--samples N] [--gw-pid PID]\n"
			       "Writes N routes into the cluster store and times each sampled write until veil-gw's pinned\n"
			       "routes map holds it (p50/p99, JSON; tools/bench_routes.sh runs it).\n");
			return 0;
		default: return 2;
		}
	if (!urls || !keyf || !mapf || !node4 || nroutes < 1 || samples < 2) {
		fprintf(stderr, "usage: veil-bench-routes --store URLS --key PRIVKEY --map PINNED_ROUTES --node4 ADDR "
				"[--routes N] [--samples N] [--gw-pid PID]\n");
		return 2;
	}
	EVP_PKEY *k = vs_load_key(keyf, 1, err, sizeof(err));
	int fd = bpf_obj_get(mapf);
	vs_store *s = NULL;
	vs_kv *kv = NULL;
	struct vs_opts so = { .urls = urls, .name = "veil-bench-routes", .replicas = 1, .timeout_ms = 10000 };
	if (!k || fd < 0 || vs_connect(&s, &so, err, sizeof(err)) || vs_bucket(s, "routes", 1, &kv, err, sizeof(err))) {
		fprintf(stderr, "veil-bench-routes: %s\n", fd < 0 ? "cannot open the pinned map" : err);
		return 1;
	}
	struct bpf_map_info info = { 0 };
	__u32 il = sizeof(info);
	bpf_obj_get_info_by_fd(fd, &info, &il);
	long before = vm_map_count(fd);

	/* 1. the load */
	double t0 = now();
	char name[128];
	int failed = 0;
	for (int i = 0; i < nroutes; i++) {
		snprintf(name, sizeof(name), "r%d.bench.veil.test", i);
		if (put_route(kv, k, name, (uint32_t)i + 1, 1, node4))
			failed++;
	}
	double t_put = now() - t0;
	long want = before + nroutes - failed, have = 0, last = -1;
	double last_t = now();
	while ((have = vm_map_count(fd)) < want && now() - last_t < 30) {
		if (have != last) {
			last = have;
			last_t = now();
		}
		usleep(100000);
	}
	double t_load = now() - t0;
	fprintf(stderr, "veil-bench-routes: %d routes put in %.1f s (%d failed), map holds %ld of %ld after %.1f s\n",
		nroutes, t_put, failed, have, want, t_load);

	/* 2. samples: new routes and changed ones, one at a time */
	double *add = calloc(samples, sizeof(double)), *upd = calloc(samples, sizeof(double));
	double *putl = calloc(samples, sizeof(double));
	int nput = 0;
	int nadd = 0, nupd = 0, lost = 0;
	/* a full map takes no new route: then only changes, of routes it holds
	 * (the first ones written; the gateway applies them in order) */
	bool full = have >= (long)info.max_entries - 1;
	int in_map = full ? (int)(have - before - 1) : nroutes;
	if (full)
		fprintf(stderr, "veil-bench-routes: the map is full (%u entries): timing changes only\n", info.max_entries);
	srand(42);
	for (int j = 0; j < samples; j++) {
		bool is_add = !full && j % 2 == 0;
		uint32_t vm = 5000000 + j, got = 0;
		if (is_add)
			snprintf(name, sizeof(name), "new%d.bench.veil.test", j);
		else
			snprintf(name, sizeof(name), "r%d.bench.veil.test", rand() % (in_map > 0 ? in_map : 1));
		double s0 = now();
		if (put_route(kv, k, name, vm, 2 + (uint64_t)j, node4)) {
			lost++;
			continue;
		}
		putl[nput++] = (now() - s0) * 1e3; /* the store's share: the put acknowledged */
		struct timespec tiny = { 0, 20000 };
		while (!(lookup_vm(fd, name, &got) == 0 && got == vm) && now() - s0 < 5)
			nanosleep(&tiny, NULL);
		double dt = (now() - s0) * 1e3;
		if (got != vm) {
			lost++;
			continue;
		}
		if (is_add)
			add[nadd++] = dt;
		else
			upd[nupd++] = dt;
	}
	qsort(add, nadd, sizeof(double), cmpd);
	qsort(putl, nput, sizeof(double), cmpd);
	qsort(upd, nupd, sizeof(double), cmpd);
	double *all = calloc(nadd + nupd + 1, sizeof(double));
	memcpy(all, add, nadd * sizeof(double));
	memcpy(all + nadd, upd, nupd * sizeof(double));
	qsort(all, nadd + nupd, sizeof(double), cmpd);

	printf("{\"routes_in_store\": %d, \"routes_in_map\": %ld, \"map_capacity\": %u, \"put_s\": %.2f, "
	       "\"load_to_map_s\": %.2f, \"map_full\": %s, \"samples\": %d, \"lost\": %d, "
	       "\"write_to_map_ms\": {\"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f}, "
	       "\"put_acked_ms\": {\"p50\": %.3f, \"p99\": %.3f}, \"add_ms\": {\"p50\": %.3f, \"p99\": %.3f}, \"update_ms\": {\"p50\": %.3f, \"p99\": %.3f}, "
	       "\"gw_rss_kb\": %ld, \"gw_hwm_kb\": %ld, \"map_memlock_bytes\": %ld}\n",
	       nroutes, vm_map_count(fd), info.max_entries, t_put, t_load, full ? "true" : "false", nadd + nupd, lost, pct(all, nadd + nupd, 50),
	       pct(all, nadd + nupd, 99), nadd + nupd ? all[nadd + nupd - 1] : -1, pct(putl, nput, 50), pct(putl, nput, 99), pct(add, nadd, 50), pct(add, nadd, 99),
	       pct(upd, nupd, 50), pct(upd, nupd, 99), pid ? status_kb(pid, "VmRSS:") : -1,
	       pid ? status_kb(pid, "VmHWM:") : -1, memlock(fd));
	free(add);
	free(putl);
	free(upd);
	free(all);
	vs_kv_close(kv);
	vs_close(s);
	EVP_PKEY_free(k);
	return lost > samples / 10 ? 1 : 0;
}
