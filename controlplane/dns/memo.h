/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker's memo of the snapshot's answers (veil-dns.c answer()): the
 * query path is a pure function of the query bytes after the ID, the
 * client address, the transport and the snapshot, so an answer computed
 * once is copied for the same key until the snapshot changes.
 *
 * Set-associative, MEMO_WAYS entries a set: the set's tags (key hash and
 * snapshot generation of each way) fill one cache line and are read before
 * any entry, and a key's entry is compared in full only when its tag
 * matches.  With one entry a slot (direct mapped, as before), two hot keys
 * in one slot pushed each other out on every query: the benchmark's 200
 * names missed 9% of the time in 4096 slots.  A new answer goes to a way
 * that holds nothing of the current snapshot, else to the ways in turn.
 */
#ifndef VEIL_DNS_MEMO_H
#define VEIL_DNS_MEMO_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEMO_WAYS 4
#define MEMO_KEY 300  /* the key: query after the ID, family, address */
#define MEMO_ANS 1232 /* answers above this are not kept */

struct memo_ent {
	uint16_t klen, alen;
	int16_t qtype;
	uint8_t rcode, ngw;
	int flags;
	uint8_t gw[8];
	uint8_t key[MEMO_KEY];
	uint8_t ans[MEMO_ANS];
};

struct memo_set {
	uint64_t hash[MEMO_WAYS];
	uint64_t gen[MEMO_WAYS]; /* 0: empty (snapshot generations start at 1) */
} __attribute__((aligned(64)));

struct dns_memo {
	struct memo_set *set;
	struct memo_ent *ent; /* nsets * MEMO_WAYS */
	uint32_t nsets;       /* a power of two */
	uint32_t turn;        /* the next way to replace when every way is current */
};

/* The key's hash: eight bytes a step (the key is ~50 bytes). */
static inline uint64_t dns_memo_hash(const uint8_t *b, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, v;
	for (; n >= 8; b += 8, n -= 8) {
		memcpy(&v, b, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	v = 0;
	memcpy(&v, b, n);
	h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 29);
}

/* slots: entries in all, rounded down to a power of two, at least one set */
static inline int dns_memo_init(struct dns_memo *m, uint32_t slots)
{
	uint32_t n = 1;
	while (n * 2 <= slots / MEMO_WAYS)
		n *= 2;
	memset(m, 0, sizeof(*m));
	m->set = aligned_alloc(64, (size_t)n * sizeof(*m->set));
	m->ent = calloc((size_t)n * MEMO_WAYS, sizeof(*m->ent));
	if (!m->set || !m->ent) {
		free(m->set);
		free(m->ent);
		m->set = NULL;
		m->ent = NULL;
		return -1;
	}
	memset(m->set, 0, (size_t)n * sizeof(*m->set));
	m->nsets = n;
	return 0;
}

static inline void dns_memo_free(struct dns_memo *m)
{
	free(m->set);
	free(m->ent);
	memset(m, 0, sizeof(*m));
}

/* the entry that holds key (hash h) for snapshot gen, or NULL */
static inline struct memo_ent *dns_memo_find(const struct dns_memo *m, uint64_t gen, uint64_t h, const uint8_t *key,
					     size_t klen)
{
	uint32_t si = (uint32_t)h & (m->nsets - 1);
	const struct memo_set *s = &m->set[si];
	for (int i = 0; i < MEMO_WAYS; i++) {
		if (s->hash[i] != h || s->gen[i] != gen)
			continue;
		struct memo_ent *e = &m->ent[si * MEMO_WAYS + i];
		if (e->klen == klen && !memcmp(e->key, key, klen))
			return e;
	}
	return NULL;
}

/* Room for key (hash h) under snapshot gen: a way of its set, its tag
 * written; the caller fills the entry before the next find. */
static inline struct memo_ent *dns_memo_put(struct dns_memo *m, uint64_t gen, uint64_t h, const uint8_t *key,
					    size_t klen)
{
	uint32_t si = (uint32_t)h & (m->nsets - 1);
	struct memo_set *s = &m->set[si];
	int way = -1;
	for (int i = 0; i < MEMO_WAYS && way < 0; i++)
		if (s->gen[i] != gen || s->hash[i] == h)
			way = i;
	if (way < 0)
		way = (int)(m->turn++ % MEMO_WAYS);
	struct memo_ent *e = &m->ent[si * MEMO_WAYS + (uint32_t)way];
	s->hash[way] = h;
	s->gen[way] = gen;
	e->klen = (uint16_t)klen;
	memcpy(e->key, key, klen);
	return e;
}
#endif
