// SPDX-License-Identifier: Apache-2.0
/*
 * Retiring closed flows.  The programs mark a flow (gateway `flows`) or a
 * connection (node `conns`) closed when both ends have sent a FIN; it stays
 * translated for a while, as TIME_WAIT does, so last ACKs and retransmitted
 * FINs still reach their end, and a new connection on the same tuple
 * replaces it at once.  The daemon then retires it: an entry found closed on
 * two passes at least `every` seconds apart is deleted.  So is an entry
 * whose client sent a RST at its sequence (VM_FIN_RST) and whose VM has not
 * sent anything since (which clears the mark: it kept the connection).  A
 * RST from the VM needs no sweep: the programs forget those entries
 * themselves.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "veil.h"

/* qsort and bsearch take no context: the key size of the pass under way. */
static uint32_t g_ksize;
static int cmp_g(const void *a, const void *b) { return memcmp(a, b, g_ksize); }

int vm_sweep_init(struct vm_sweep *s, int fd, uint32_t key_size, uint32_t val_size, uint32_t fin_off,
		  unsigned every_s)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->key_size = key_size;
	s->val_size = val_size;
	s->fin_off = fin_off;
	s->every = every_s ? every_s : VM_SWEEP_EVERY_S;
	return 0;
}

void vm_sweep_free(struct vm_sweep *s)
{
	free(s->seen);
	s->seen = NULL;
	s->nseen = s->cap = 0;
}

static int push(uint8_t **v, size_t *n, size_t *cap, const void *key, uint32_t ks)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 256;
		uint8_t *p = realloc(*v, nc * ks);
		if (!p)
			return -1;
		*v = p;
		*cap = nc;
	}
	memcpy(*v + *n * ks, key, ks);
	(*n)++;
	return 0;
}

/* One pass's lists: the keys closed now and not at the last pass, and
 * those closed at both (to retire). */
struct pass {
	struct vm_sweep *s;
	uint8_t *closed, *gone;
	size_t nclosed, cap, ngone, gcap;
	int full;   /* out of memory: the rest of the walk is not listed */
	uint64_t entries;
};

static void pass_key(struct pass *p, const uint8_t *key, uint8_t fin)
{
	struct vm_sweep *s = p->s;
	int was;

	p->entries++;
	if (s->on_key)
		s->on_key(s->arg, key);
	if (p->full || !vm_fin_retired(fin))
		return;
	was = s->nseen && bsearch(key, s->seen, s->nseen, s->key_size, cmp_g);
	if (push(was ? &p->gone : &p->closed, was ? &p->ngone : &p->nclosed, was ? &p->gcap : &p->cap, key,
		 s->key_size))
		p->full = 1;
}

/* The walk in batches (BPF_MAP_LOOKUP_BATCH, keys and values, up to
 * VM_SWEEP_BATCH entries a call): the kernel steps through the buckets
 * with a cursor of its own, so a key deleted meanwhile (by the programs,
 * the LRU) does not send it back to the start.  A full flows map (262,144):
 * 70-100 ms a pass, where the get_next_key walk below took 1.0-1.4 s
 * (veil-bench-maps).
 * -1: refused part way or from the start (the caller walks again below). */
static int walk_batch(struct vm_sweep *s, struct pass *p)
{
	uint8_t *keys = malloc((size_t)VM_SWEEP_BATCH * s->key_size);
	uint8_t *vals = malloc((size_t)VM_SWEEP_BATCH * s->val_size);
	__u64 cursor = 0;   /* the kernel's, opaque (a bucket's index for hash maps) */
	void *in = NULL;
	int err, rc = 0;

	if (!keys || !vals) {
		rc = -1;
		goto out;
	}
	do {
		__u32 n = VM_SWEEP_BATCH;
		LIBBPF_OPTS(bpf_map_batch_opts, o);

		err = bpf_map_lookup_batch(s->fd, in, &cursor, keys, vals, &n, &o);
		if (err && errno != ENOENT) {   /* ENOENT: the last batch, n entries in it */
			rc = -1;
			break;
		}
		for (__u32 i = 0; i < n && !p->full; i++)
			pass_key(p, keys + (size_t)i * s->key_size, vals[(size_t)i * s->val_size + s->fin_off]);
		in = &cursor;
	} while (!err && !p->full);
out:
	free(keys);
	free(vals);
	return rc;
}

/* The walk from user space, a bpf() call for each key and each value,
 * where the kernel refuses batches (before Linux 5.6).  Deleting under
 * get_next_key restarts it (and so does the programs' deleting the key it
 * stands on): walk first, delete after. */
static void walk_keys(struct vm_sweep *s, struct pass *p)
{
	uint8_t key[VM_SWEEP_KEY_MAX], next[VM_SWEEP_KEY_MAX], val[VM_SWEEP_VAL_MAX];
	void *prev = NULL;

	while (!p->full && bpf_map_get_next_key(s->fd, prev, next) == 0) {
		memcpy(key, next, s->key_size);
		prev = key;
		if (bpf_map_lookup_elem(s->fd, key, val)) {
			if (s->on_key)
				s->on_key(s->arg, key);
			p->entries++;
			continue;
		}
		pass_key(p, key, val[s->fin_off]);
	}
}

/* A flow table (the gateway's flows, the node's conns), walked in place
 * (flowtab.c): a mapped array, no bpf() call per entry. */
static int ft_key(void *arg, const struct flow_key *k, const void *v)
{
	struct pass *p = arg;

	pass_key(p, (const uint8_t *)k, ((const uint8_t *)v)[p->s->fin_off]);
	return p->full;
}

static int entry_get(struct vm_sweep *s, const void *key, void *val)
{
	return s->ft ? vm_flows_get(s->ft, key, val) : bpf_map_lookup_elem(s->fd, key, val);
}

static int entry_del(struct vm_sweep *s, const void *key)
{
	return s->ft ? vm_flows_del((struct vm_flows *)s->ft, key) : bpf_map_delete_elem(s->fd, key);
}

/* One pass when `every` seconds have gone by; returns the entries retired. */
long vm_sweep_run(struct vm_sweep *s, time_t now)
{
	uint8_t val[VM_SWEEP_VAL_MAX];
	struct timespec t0, t1;
	struct pass p;
	long retired = 0;

	if ((s->fd < 0 && !s->ft) || s->key_size > VM_SWEEP_KEY_MAX || s->val_size > sizeof(val) || s->fin_off >= s->val_size)
		return 0;
	if (s->last && now - s->last < (time_t)s->every)
		return 0;
	s->last = now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	g_ksize = s->key_size;
	if (s->on_pass)
		s->on_pass(s->arg);
	memset(&p, 0, sizeof(p));
	p.s = s;
	if (s->ft)
		vm_flows_walk(s->ft, ft_key, &p);
	else if (s->keys_only || walk_batch(s, &p)) {
		/* the lists again from the start (on_key has seen some keys twice: harmless) */
		free(p.closed);
		free(p.gone);
		memset(&p, 0, sizeof(p));
		p.s = s;
		walk_keys(s, &p);
	}
	for (size_t i = 0; i < p.ngone; i++) {
		uint8_t *k = p.gone + i * s->key_size;
		/* still closed (not replaced by a new connection since the walk) */
		if (entry_get(s, k, val) || !vm_fin_retired(val[s->fin_off]))
			continue;
		if (s->on_retire)
			s->on_retire(s->arg, k, val);
		if (entry_del(s, k) == 0)
			retired++;
	}
	free(p.gone);
	if (p.nclosed)
		qsort(p.closed, p.nclosed, s->key_size, cmp_g);
	free(s->seen);
	s->seen = p.closed;
	s->nseen = p.nclosed;
	s->cap = p.cap;
	s->retired += retired;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s->passes++;
	s->last_entries = p.entries;
	s->last_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return retired;
}

void vm_sweep_metrics(FILE *out, const struct vm_sweep *s, const char *what)
{
	fprintf(out, "# HELP veilmesh_%s_sweep_passes_total Passes of the sweep over the table.\n"
		     "# TYPE veilmesh_%s_sweep_passes_total counter\nveilmesh_%s_sweep_passes_total %llu\n",
		what, what, what, (unsigned long long)s->passes);
	fprintf(out, "# HELP veilmesh_%s_sweep_last_entries Entries the last pass walked.\n"
		     "# TYPE veilmesh_%s_sweep_last_entries gauge\nveilmesh_%s_sweep_last_entries %llu\n",
		what, what, what, (unsigned long long)s->last_entries);
	fprintf(out, "# HELP veilmesh_%s_sweep_last_seconds How long the last pass took (the daemon's loop waits).\n"
		     "# TYPE veilmesh_%s_sweep_last_seconds gauge\nveilmesh_%s_sweep_last_seconds %.6f\n",
		what, what, what, s->last_s);
}

void vm_sweep_status(FILE *out, const struct vm_sweep *s)
{
	fprintf(out, "{\"every_s\": %u, \"passes\": %llu, \"last_entries\": %llu, \"last_s\": %.6f, \"retired\": %llu}",
		s->every, (unsigned long long)s->passes, (unsigned long long)s->last_entries, s->last_s,
		(unsigned long long)s->retired);
}
