// SPDX-License-Identifier: Apache-2.0
/* IP ranges -> location class (see geo.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo.h"

geo_u128 geo_u128_from(const uint8_t b[16])
{
	geo_u128 v = 0;
	for (int i = 0; i < 16; i++)
		v = (v << 8) | b[i];
	return v;
}

void geo_u128_to(geo_u128 v, uint8_t b[16])
{
	for (int i = 15; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

#define GROW(t) do { \
	if ((t)->n == (t)->cap) { \
		size_t nc = (t)->cap ? (t)->cap * 2 : 1024; \
		void *nr = realloc((t)->r, nc * sizeof(*(t)->r)); \
		if (!nr) return -1; \
		(t)->r = nr; (t)->cap = nc; \
	} } while (0)

static int push4(struct geo_tab4 *t, uint32_t lo, uint32_t hi, uint32_t id)
{
	GROW(t);
	t->r[t->n++] = (struct geo_r4){ lo, hi, id };
	return 0;
}

static int push6(struct geo_tab6 *t, geo_u128 lo, geo_u128 hi, uint32_t id)
{
	GROW(t);
	t->r[t->n++] = (struct geo_r6){ lo, hi, id };
	return 0;
}

int geo_load4(const char *path, struct geo_tab4 *t, char *err, size_t len)
{
	char line[256];
	int ln = 0;
	FILE *f = fopen(path, "re");

	memset(t, 0, sizeof(*t));
	if (!f) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char cc[3];
		ln++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%lu,%lu,%2s", &lo, &hi, cc) != 3 || lo > hi || hi > 0xffffffffUL ||
		    (t->n && lo <= t->r[t->n - 1].hi)) {
			snprintf(err, len, "%s:%d: not a sorted \"start,end,CC\" line", path, ln);
			goto fail;
		}
		uint32_t id = geo_cc_id(cc);
		if (id == GEO_NONE)
			continue;
		if (t->n && t->r[t->n - 1].id == id && t->r[t->n - 1].hi + 1 == lo)
			t->r[t->n - 1].hi = (uint32_t)hi;
		else if (push4(t, (uint32_t)lo, (uint32_t)hi, id)) {
			snprintf(err, len, "%s: out of memory", path);
			goto fail;
		}
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	geo_free4(t);
	return -1;
}

int geo_load6(const char *path, struct geo_tab6 *t, char *err, size_t len)
{
	char line[256];
	int ln = 0;
	FILE *f = fopen(path, "re");

	memset(t, 0, sizeof(*t));
	if (!f) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *a = line, *b, *c;
		uint8_t x[16], y[16];
		ln++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		b = strchr(a, ',');
		c = b ? strchr(b + 1, ',') : NULL;
		if (!c) {
			snprintf(err, len, "%s:%d: not a \"start,end,CC\" line", path, ln);
			goto fail;
		}
		*b++ = 0;
		*c++ = 0;
		if (inet_pton(AF_INET6, a, x) != 1 || inet_pton(AF_INET6, b, y) != 1) {
			snprintf(err, len, "%s:%d: bad IPv6 address", path, ln);
			goto fail;
		}
		geo_u128 lo = geo_u128_from(x), hi = geo_u128_from(y);
		if (lo > hi || (t->n && lo <= t->r[t->n - 1].hi)) {
			snprintf(err, len, "%s:%d: ranges not sorted", path, ln);
			goto fail;
		}
		uint32_t id = geo_cc_id(c);
		if (id == GEO_NONE)
			continue;
		if (t->n && t->r[t->n - 1].id == id && t->r[t->n - 1].hi + 1 == lo)
			t->r[t->n - 1].hi = hi;
		else if (push6(t, lo, hi, id)) {
			snprintf(err, len, "%s: out of memory", path);
			goto fail;
		}
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	geo_free6(t);
	return -1;
}

int geo_copy4(struct geo_tab4 *d, const struct geo_tab4 *s)
{
	d->n = s->n;
	d->cap = s->n ? s->n : 1;
	d->r = malloc(d->cap * sizeof(*d->r));
	if (!d->r)
		return -1;
	if (s->n)
		memcpy(d->r, s->r, s->n * sizeof(*d->r));
	return 0;
}

int geo_copy6(struct geo_tab6 *d, const struct geo_tab6 *s)
{
	d->n = s->n;
	d->cap = s->n ? s->n : 1;
	d->r = malloc(d->cap * sizeof(*d->r));
	if (!d->r)
		return -1;
	if (s->n)
		memcpy(d->r, s->r, s->n * sizeof(*d->r));
	return 0;
}

void geo_free4(struct geo_tab4 *t)
{
	free(t->r);
	memset(t, 0, sizeof(*t));
}

void geo_free6(struct geo_tab6 *t)
{
	free(t->r);
	memset(t, 0, sizeof(*t));
}

/* Painting: a new table made of what lies left of [lo,hi], the piece, what
 * lies right.  O(n) per override, and there are few. */
#define PAINT(T, R, PUSH, t, lo, hi, id) do { \
	T nt = { 0 }; \
	int done = 0; \
	for (size_t i = 0; i < (t)->n; i++) { \
		R r = (t)->r[i]; \
		if (r.hi < (lo)) { if (PUSH(&nt, r.lo, r.hi, r.id)) goto oom; continue; } \
		if (!done && r.lo > (hi)) { if (PUSH(&nt, lo, hi, id)) goto oom; done = 1; } \
		if (r.lo > (hi)) { if (PUSH(&nt, r.lo, r.hi, r.id)) goto oom; continue; } \
		if (r.lo < (lo) && PUSH(&nt, r.lo, (lo) - 1, r.id)) goto oom; \
		if (!done) { if (PUSH(&nt, lo, hi, id)) goto oom; done = 1; } \
		if (r.hi > (hi) && PUSH(&nt, (hi) + 1, r.hi, r.id)) goto oom; \
	} \
	if (!done && PUSH(&nt, lo, hi, id)) goto oom; \
	free((t)->r); \
	*(t) = nt; \
	return 0; \
oom: \
	free(nt.r); \
	return -1; \
} while (0)

int geo_paint4(struct geo_tab4 *t, uint32_t lo, uint32_t hi, uint32_t id)
{
	PAINT(struct geo_tab4, struct geo_r4, push4, t, lo, hi, id);
}

int geo_paint6(struct geo_tab6 *t, geo_u128 lo, geo_u128 hi, uint32_t id)
{
	PAINT(struct geo_tab6, struct geo_r6, push6, t, lo, hi, id);
}

/* Relabel and merge, turning gaps into explicit ranges so that after this the
 * table covers the whole space (lookups never miss). */
#define EMIT(PUSH, NT, LO_, HI_, ID_) do { \
	if ((NT).n && (NT).r[(NT).n - 1].id == (ID_)) (NT).r[(NT).n - 1].hi = (HI_); \
	else if (PUSH(&(NT), LO_, HI_, ID_)) goto oom; \
} while (0)
#define RELABEL(T, PUSH, t, MAXV, map, nmap, none) do { \
	T nt = { 0 }; \
	__typeof__((t)->r[0].lo) next = 0; \
	int wrapped = 0; \
	for (size_t i = 0; i < (t)->n; i++) { \
		__typeof__((t)->r[0]) r = (t)->r[i]; \
		if (r.lo > next) EMIT(PUSH, nt, next, r.lo - 1, none); \
		EMIT(PUSH, nt, r.lo, r.hi, r.id < (nmap) ? (map)[r.id] : (none)); \
		if (r.hi == (MAXV)) { wrapped = 1; break; } \
		next = r.hi + 1; \
	} \
	if (!wrapped) EMIT(PUSH, nt, next, MAXV, none); \
	free((t)->r); \
	*(t) = nt; \
	return 0; \
oom: \
	free(nt.r); \
	return -1; \
} while (0)

int geo_relabel4(struct geo_tab4 *t, const uint32_t *map, size_t nmap, uint32_t none)
{
	RELABEL(struct geo_tab4, push4, t, (uint32_t)0xffffffffu, map, nmap, none);
}

int geo_relabel6(struct geo_tab6 *t, const uint32_t *map, size_t nmap, uint32_t none)
{
	RELABEL(struct geo_tab6, push6, t, ~(geo_u128)0, map, nmap, none);
}

/* The range holding addr: the last with lo <= addr (the table covers all). */
#define FIND(t, addr, BITS, T, scope) do { \
	size_t a = 0, b = (t)->n; \
	if (!b) { *(scope) = 0; return GEO_NONE; } \
	while (b - a > 1) { \
		size_t m = a + (b - a) / 2; \
		if ((t)->r[m].lo <= (addr)) a = m; else b = m; \
	} \
	const __typeof__((t)->r[0]) *r = &(t)->r[a]; \
	if ((addr) < r->lo || (addr) > r->hi) { *(scope) = BITS; return GEO_NONE; } \
	int l = 0; \
	for (; l < BITS; l++) { \
		T host = l ? (((T)~(T)0) >> l) : (T)~(T)0; \
		if (((addr) & ~host) >= r->lo && ((addr) | host) <= r->hi) break; \
	} \
	*(scope) = l; \
	return r->id; \
} while (0)

uint32_t geo_find4(const struct geo_tab4 *t, uint32_t addr, int *scope)
{
	FIND(t, addr, 32, uint32_t, scope);
}

uint32_t geo_find6(const struct geo_tab6 *t, geo_u128 addr, int *scope)
{
	FIND(t, addr, 128, geo_u128, scope);
}

static const struct { char cc[3]; double lat, lon; } centroids[] = {
#include "centroids.inc"
};

int geo_centroid(uint32_t id, double *lat, double *lon)
{
	static float tab[GEO_NCC][2];
	static int ready;
	if (!ready) {
		for (int i = 0; i < GEO_NCC; i++)
			tab[i][0] = 1000;
		for (size_t i = 0; i < sizeof(centroids) / sizeof(centroids[0]); i++) {
			uint32_t c = geo_cc_id(centroids[i].cc);
			tab[c][0] = (float)centroids[i].lat;
			tab[c][1] = (float)centroids[i].lon;
		}
		ready = 1;
	}
	if (id >= GEO_NCC || tab[id][0] > 999)
		return -1;
	*lat = tab[id][0];
	*lon = tab[id][1];
	return 0;
}

double geo_km(double lat1, double lon1, double lat2, double lon2)
{
	const double r = M_PI / 180;
	double dlat = (lat2 - lat1) * r, dlon = (lon2 - lon1) * r;
	double a = sin(dlat / 2) * sin(dlat / 2) + cos(lat1 * r) * cos(lat2 * r) * sin(dlon / 2) * sin(dlon / 2);
	return 2 * 6371.0 * atan2(sqrt(a), sqrt(1 - a));
}
