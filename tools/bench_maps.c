// SPDX-License-Identifier: Apache-2.0
/*
 * veil-bench-maps: what the daemons' housekeeping of a big table costs, next
 * to the way it was done before, in the same run.
 *
 *   veil-bench-maps [--entries N] [--rounds R] [--closed PERCENT] [--json FILE]
 *
 * A flows map as veil-gw's (LRU hash, struct flow_key -> struct flow_val)
 * filled with N entries, PERCENT of them closed (FIN both ways).
 * Per round, interleaved:
 *   sweep       one pass of veil-gw's sweep (vm_sweep_run: the map read in
 *               BPF_MAP_LOOKUP_BATCH batches), and the same pass walked key
 *               by key (get_next_key and a lookup per entry: the baseline,
 *               the sweep before 2026-12-05); neither retires anything (each
 *               pass is a first look);
 *   count       vm_map_count (the kernel's count through a BPF iterator),
 *               and a get_next_key count (the baseline).
 * And the same flows in veil-gw's flow table since 2026-12-06 (an array of
 * buckets, include/veil/flowtab.h, sized for N): the sweep's pass and the
 * count as veil-gw makes them there, reading the table where the daemon
 * keeps it mapped (vm_map_count_mapped), and the count as it was made until
 * 2026-12-07, the table mapped again for each count.
 * Prints a table, and with --json the medians, minimums and maximums (ms).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "veil.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: veil-bench-maps [--entries N] [--rounds R] [--closed PERCENT] [--json FILE]\n"
		   "  the daemons' sweep pass and entry count of a flows map of N entries (default 262144),\n"
		   "  R interleaved rounds (default 5), PERCENT closed (default 10), each against the\n"
		   "  key-by-key walk it replaced\n");
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stat_of(double *v, int n)
{
	struct stat3 s;

	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	s.min = v[0];
	s.max = v[n - 1];
	s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

/* one pass as a first look: nothing seen closed before, so nothing retired */
static double sweep_pass(int fd, int keys, uint64_t *entries, const struct vm_flows *ft)
{
	struct vm_sweep s;
	double t;

	vm_sweep_init(&s, fd, sizeof(struct flow_key), sizeof(struct flow_val), offsetof(struct flow_val, fin), 1);
	s.keys_only = keys;
	s.ft = ft;
	t = now_ms();
	vm_sweep_run(&s, 1000);
	t = now_ms() - t;
	*entries = s.last_entries;
	vm_sweep_free(&s);
	return t;
}

static void json_stat(FILE *f, const char *name, struct stat3 s, int last)
{
	fprintf(f, "  \"%s\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f}%s\n", name, s.med, s.min, s.max,
		last ? "" : ",");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "entries", required_argument, 0, 'n' }, { "rounds", required_argument, 0, 'r' },
		{ "closed", required_argument, 0, 'c' },  { "json", required_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },          { 0, 0, 0, 0 },
	};
	long entries = 262144, rounds = 5, closed = 10;
	const char *json = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "n:r:c:j:h", opts, NULL)) != -1) {
		switch (o) {
		case 'n': entries = strtol(optarg, NULL, 10); break;
		case 'r': rounds = strtol(optarg, NULL, 10); break;
		case 'c': closed = strtol(optarg, NULL, 10); break;
		case 'j': json = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (entries < 1 || entries > (1L << 24) || rounds < 1 || rounds > 1000 || closed < 0 || closed > 100) {
		usage(stderr);
		return 2;
	}

	int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "bench_flows", sizeof(struct flow_key), sizeof(struct flow_val),
				(__u32)(entries + entries / 4), NULL);   /* an LRU map evicts before it is quite full */
	struct flow_val v;
	struct flow_key k;

	if (fd < 0) {
		perror("veil-bench-maps: bpf_map_create (root?)");
		return 1;
	}
	/* the flow table of veil-gw, sized for the same flows */
	struct vm_flows ft;
	int tfd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bench_table", 4, sizeof(struct flow_bucket),
				 vm_flows_buckets_for((__u32)entries),
				 &(struct bpf_map_create_opts){ .sz = sizeof(struct bpf_map_create_opts),
								.map_flags = BPF_F_MMAPABLE });
	if (tfd < 0 || vm_flows_open(&ft, tfd, -1)) {
		perror("veil-bench-maps: the flow table");
		return 1;
	}
	memset(&v, 0, sizeof(v));
	memset(&k, 0, sizeof(k));
	for (long i = 0; i < entries; i++) {
		k.client_word = (__u32)i * 2654435761u;
		k.vip_word = (__u32)(i >> 16);
		k.client_port_be = (__u16)i;
		k.vip_port_be = 443;
		v.fin = i % 100 < closed ? VM_FIN_BOTH : 0;
		if (bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST) || vm_flows_put(&ft, &k, &v, 0)) {
			perror("veil-bench-maps: filling the maps");
			return 1;
		}
	}

	double *sb = calloc((size_t)rounds, sizeof(double)), *sk = calloc((size_t)rounds, sizeof(double));
	double *cb = calloc((size_t)rounds, sizeof(double)), *ck = calloc((size_t)rounds, sizeof(double));
	double *st = calloc((size_t)rounds, sizeof(double)), *ct = calloc((size_t)rounds, sizeof(double));
	double *cm = calloc((size_t)rounds, sizeof(double));
	uint64_t eb = 0, ek = 0, et = 0;
	long nb = -1, nk = -1, nt = -1, nm = -1;

	long have = vm_map_count_keys(fd);

	if (!sb || !sk || !cb || !ck || !st || !ct || !cm)
		return 1;
	if (have != entries) {
		fprintf(stderr, "veil-bench-maps: %ld entries in the map of %ld written\n", have, entries);
		return 1;
	}
	vm_map_count(fd);   /* the iterator loaded (once a process) before the timing */
	vm_map_count_mapped(&ft);   /* as veil-gw does */
	for (long r = 0; r < rounds; r++) {
		int first = r % 2;   /* who goes first turns each round */
		for (int j = 0; j < 2; j++) {
			int keys = j ^ first;
			double t;
			if (keys)
				sk[r] = sweep_pass(fd, 1, &ek, NULL);
			else
				sb[r] = sweep_pass(fd, 0, &eb, NULL);
			t = now_ms();
			if (keys)
				nk = vm_map_count_keys(fd);
			else
				nb = vm_map_count(fd);
			(keys ? ck : cb)[r] = now_ms() - t;
		}
		st[r] = sweep_pass(-1, 0, &et, &ft);
		for (int j = 0; j < 2; j++) {
			double t = now_ms();
			if (j ^ (int)(r % 2)) {
				/* as vm_map_count counted until 2026-12-07 */
				struct vm_flows again;
				nm = vm_flows_open(&again, tfd, -1) ? -1 : vm_flows_count(&again);
				vm_flows_close(&again);
				cm[r] = now_ms() - t;
			} else {
				nt = vm_map_count(tfd);   /* where ft maps it */
				ct[r] = now_ms() - t;
			}
		}
	}
	if ((long)eb != have || (long)ek != have || nb != have || nk != have || (long)et != have || nt != have ||
	    nm != have) {
		fprintf(stderr, "veil-bench-maps: walked %llu, %llu and %llu entries, counted %ld, %ld, %ld and %ld, of %ld\n",
			(unsigned long long)eb, (unsigned long long)ek, (unsigned long long)et, nb, nk, nt, nm, have);
		return 1;
	}
	struct stat3 s_b = stat_of(sb, (int)rounds), s_k = stat_of(sk, (int)rounds);
	struct stat3 c_b = stat_of(cb, (int)rounds), c_k = stat_of(ck, (int)rounds);
	struct stat3 s_t = stat_of(st, (int)rounds), c_t = stat_of(ct, (int)rounds), c_m = stat_of(cm, (int)rounds);

	printf("%ld entries, %ld%% closed, %ld rounds (ms: median, min-max)\n", entries, closed, rounds);
	printf("sweep pass   batches %9.3f (%.3f-%.3f)   key by key %9.3f (%.3f-%.3f)   %.1fx\n", s_b.med, s_b.min,
	       s_b.max, s_k.med, s_k.min, s_k.max, s_k.med / s_b.med);
	printf("entry count  kernel  %9.3f (%.3f-%.3f)   key by key %9.3f (%.3f-%.3f)   %.0fx\n", c_b.med, c_b.min,
	       c_b.max, c_k.med, c_k.min, c_k.max, c_k.med / (c_b.med > 0 ? c_b.med : 1e-6));
	printf("flow table   sweep   %9.3f (%.3f-%.3f)   count      %9.3f (%.3f-%.3f)   (veil-gw's since 2026-12-06, mapped)\n",
	       s_t.med, s_t.min, s_t.max, c_t.med, c_t.min, c_t.max);
	printf("table count  mapped  %9.3f (%.3f-%.3f)   mapped again %7.3f (%.3f-%.3f)   %.1fx\n", c_t.med, c_t.min,
	       c_t.max, c_m.med, c_m.min, c_m.max, c_m.med / (c_t.med > 0 ? c_t.med : 1e-6));
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f) {
			perror(json);
			return 1;
		}
		fprintf(f, "{\n  \"entries\": %ld,\n  \"closed_percent\": %ld,\n  \"rounds\": %ld,\n", entries, closed,
			rounds);
		json_stat(f, "sweep_batch_ms", s_b, 0);
		json_stat(f, "sweep_keys_ms", s_k, 0);
		json_stat(f, "count_kernel_ms", c_b, 0);
		json_stat(f, "count_keys_ms", c_k, 0);
		json_stat(f, "sweep_table_ms", s_t, 0);
		json_stat(f, "count_table_ms", c_t, 0);
		json_stat(f, "count_table_again_ms", c_m, 1);
		fprintf(f, "}\n");
		fclose(f);
	}
	free(sb);
	free(sk);
	free(cb);
	free(ck);
	free(st);
	free(ct);
	free(cm);
	vm_flows_close(&ft);
	return 0;
}
