/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a client is: IP ranges -> a location class, as sorted disjoint ranges
 * searched by bisection, one table per family.  The base tables come from
 * tor-geoipdb (/usr/share/tor/geoip, geoip6: "start,end,CC"); operator
 * overrides by prefix are painted over them; the snapshot then relabels each
 * range with the answer it leads to and merges neighbours with the same
 * answer, so the ECS scope a lookup returns is the widest aligned prefix the
 * decision really depends on.
 */
#ifndef VEIL_DNS_GEO_H
#define VEIL_DNS_GEO_H
#include <stddef.h>
#include <stdint.h>

typedef unsigned __int128 geo_u128;

#define GEO_NONE 0xffffu /* no location known */

struct geo_r4 { uint32_t lo, hi; uint32_t id; };
struct geo_r6 { geo_u128 lo, hi; uint32_t id; };

/* One family's table: disjoint, sorted by lo; gaps mean GEO_NONE. */
struct geo_tab4 { struct geo_r4 *r; size_t n, cap; };
struct geo_tab6 { struct geo_r6 *r; size_t n, cap; };

/* Country codes as ids: 'A'..'Z' pairs -> 0..675; GEO_NONE for "??". */
static inline uint32_t geo_cc_id(const char *cc)
{
	if (cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z')
		return GEO_NONE;
	return (uint32_t)(cc[0] - 'A') * 26 + (uint32_t)(cc[1] - 'A');
}
#define GEO_NCC (26 * 26)

/* Loads a tor-geoipdb file; returns 0, or -1 with err set (file:line: why). */
int geo_load4(const char *path, struct geo_tab4 *t, char *err, size_t len);
int geo_load6(const char *path, struct geo_tab6 *t, char *err, size_t len);
int geo_copy4(struct geo_tab4 *dst, const struct geo_tab4 *src);
int geo_copy6(struct geo_tab6 *dst, const struct geo_tab6 *src);
void geo_free4(struct geo_tab4 *t);
void geo_free6(struct geo_tab6 *t);

/* Paints [lo, hi] with id over what is there (overrides). */
int geo_paint4(struct geo_tab4 *t, uint32_t lo, uint32_t hi, uint32_t id);
int geo_paint6(struct geo_tab6 *t, geo_u128 lo, geo_u128 hi, uint32_t id);

/* Replaces each id by map[id] (GEO_NONE stays unless map has it at
 * index nmap-1 convention: map_none) and merges equal neighbours, gaps
 * included (a gap gets map_none). */
int geo_relabel4(struct geo_tab4 *t, const uint32_t *map, size_t nmap, uint32_t map_none);
int geo_relabel6(struct geo_tab6 *t, const uint32_t *map, size_t nmap, uint32_t map_none);

/* The id for addr and the shortest prefix length whose aligned block around
 * addr has that same id throughout (gaps count as GEO_NONE ranges). */
uint32_t geo_find4(const struct geo_tab4 *t, uint32_t addr, int *scope);
uint32_t geo_find6(const struct geo_tab6 *t, geo_u128 addr, int *scope);

geo_u128 geo_u128_from(const uint8_t b[16]);
void geo_u128_to(geo_u128 v, uint8_t b[16]);

/* Country centroids (centroids.inc): 0 and lat/lon, or -1 if unknown. */
int geo_centroid(uint32_t cc_id, double *lat, double *lon);
/* Great-circle distance in km. */
double geo_km(double lat1, double lon1, double lat2, double lon2);
#endif
