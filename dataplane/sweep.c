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

/* One pass when `every` seconds have gone by; returns the entries retired. */
long vm_sweep_run(struct vm_sweep *s, time_t now)
{
	uint8_t key[64], next[64], val[1024];
	uint8_t *closed = NULL, *gone = NULL;
	size_t nclosed = 0, cap = 0, ngone = 0, gcap = 0;
	long retired = 0;
	void *prev = NULL;

	if (s->fd < 0 || s->key_size > sizeof(key) || s->val_size > sizeof(val) || s->fin_off >= s->val_size)
		return 0;
	if (s->last && now - s->last < (time_t)s->every)
		return 0;
	s->last = now;
	g_ksize = s->key_size;
	if (s->on_pass)
		s->on_pass(s->arg);
	/* Walk first, delete after: deleting under get_next_key restarts the walk. */
	while (bpf_map_get_next_key(s->fd, prev, next) == 0) {
		memcpy(key, next, s->key_size);
		prev = key;
		if (s->on_key)
			s->on_key(s->arg, key);
		if (bpf_map_lookup_elem(s->fd, key, val) || !vm_fin_retired(val[s->fin_off]))
			continue;
		int was = s->nseen && bsearch(key, s->seen, s->nseen, s->key_size, cmp_g);
		if (push(was ? &gone : &closed, was ? &ngone : &nclosed, was ? &gcap : &cap, key, s->key_size))
			break;
	}
	for (size_t i = 0; i < ngone; i++) {
		uint8_t *k = gone + i * s->key_size;
		/* still closed (not replaced by a new connection since the walk) */
		if (bpf_map_lookup_elem(s->fd, k, val) || !vm_fin_retired(val[s->fin_off]))
			continue;
		if (s->on_retire)
			s->on_retire(s->arg, k, val);
		if (bpf_map_delete_elem(s->fd, k) == 0)
			retired++;
	}
	free(gone);
	if (nclosed)
		qsort(closed, nclosed, s->key_size, cmp_g);
	free(s->seen);
	s->seen = closed;
	s->nseen = nclosed;
	s->cap = cap;
	s->retired += retired;
	return retired;
}
