// SPDX-License-Identifier: Apache-2.0
/*
 * veil-dns's pure parts without a network: the range tables (overrides
 * painted, ranges relabelled and merged, lookups and ECS scopes) and the
 * query path on the fixture zone (tests/fixtures/dns-test.conf).
 */
#include <unistd.h>
#include "testlib.h"
#include "dns/coalesce.h"
#include "dns/dns.h"
#include "dns/memo.h"

static struct dns_snap *snap;

static uint32_t ip4(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return ntohl(a.s_addr);
}

static void geo_ranges_and_scopes(void)
{
	struct geo_tab4 t = { 0 };
	int scope;
	/* A: 198.18.0.0/24, B: 198.18.1.0/24, a gap, then A at 198.18.4.0/23 (only the
	 * benchmarking range, as everywhere in the tests) */
	geo_paint4(&t, ip4("198.18.0.0"), ip4("198.18.0.255"), 1);
	geo_paint4(&t, ip4("198.18.1.0"), ip4("198.18.1.255"), 2);
	geo_paint4(&t, ip4("198.18.4.0"), ip4("198.18.5.255"), 1);
	CHECK(geo_find4(&t, ip4("198.18.0.9"), &scope) == 1 && scope == 24, "A /24, got scope %d", scope);
	CHECK(geo_find4(&t, ip4("198.18.5.1"), &scope) == 1 && scope == 23, "A /23, got scope %d", scope);
	CHECK(geo_find4(&t, ip4("198.18.2.1"), &scope) == GEO_NONE, "gap");
	/* an override inside B splits it */
	geo_paint4(&t, ip4("198.18.1.128"), ip4("198.18.1.128"), 3);
	CHECK(geo_find4(&t, ip4("198.18.1.128"), &scope) == 3 && scope == 32, "override /32, scope %d", scope);
	CHECK(geo_find4(&t, ip4("198.18.1.7"), &scope) == 2 && scope == 25, "B left of the override /25, scope %d", scope);
	/* A and B lead to the same answer: merged, so a wider scope */
	uint32_t map[4] = { 0, 7, 7, 8 };
	geo_relabel4(&t, map, 4, 9);
	CHECK(geo_find4(&t, ip4("198.18.0.9"), &scope) == 7 && scope == 24, "merged A+B left half /24, scope %d", scope);
	CHECK(geo_find4(&t, ip4("198.18.2.1"), &scope) == 9, "gap relabelled to none");
	CHECK(geo_find4(&t, ip4("0.0.0.1"), &scope) == 9 && geo_find4(&t, ip4("255.255.255.255"), &scope) == 9,
	      "the table covers everything after relabelling");
	for (size_t i = 1; i < t.n; i++)
		CHECK(t.r[i].lo == t.r[i - 1].hi + 1 && t.r[i].id != t.r[i - 1].id, "range %zu not merged or not adjacent", i);
	geo_free4(&t);
}

static int ask(const char *name, int type, const char *ecs, int family, const char *client, struct dns_result *r,
	       ldns_pkt **ans)
{
	static uint8_t buf[65536];
	ldns_pkt *q = NULL;
	uint8_t *w = NULL;
	size_t n;
	ldns_pkt_query_new_frm_str(&q, name, (ldns_rr_type)type, LDNS_RR_CLASS_IN, 0);
	ldns_pkt_set_id(q, 4242);
	ldns_pkt_set_edns_udp_size(q, 1232);
	if (ecs) {
		char a[64];
		int plen;
		uint8_t d[20] = { 0 }, addr[16] = { 0 };
		sscanf(ecs, "%63[^/]/%d", a, &plen);
		int v6 = strchr(a, ':') != NULL;
		inet_pton(v6 ? AF_INET6 : AF_INET, a, addr);
		d[1] = v6 ? 2 : 1;
		d[2] = (uint8_t)plen;
		memcpy(d + 4, addr, (size_t)(plen + 7) / 8);
		ldns_edns_option_list *l = ldns_edns_option_list_new();
		ldns_edns_option_list_push(l, ldns_edns_new_from_data(8, 4 + (size_t)(plen + 7) / 8, d));
		ldns_pkt_set_edns_option_list(q, l);
	}
	ldns_pkt2wire(&w, q, &n);
	ldns_pkt_free(q);
	struct dns_query dq = { .pkt = w, .len = n, .family = family, .now = 1796000000u };
	inet_pton(family, client, dq.addr);
	r->buf = buf;
	int rc = dns_answer(snap, &dq, r);
	free(w);
	*ans = NULL;
	if (!rc)
		ldns_wire2pkt(ans, r->buf, r->len);
	return rc;
}

static int has_addr(ldns_pkt *p, const char *want)
{
	ldns_rr_list *l = ldns_pkt_answer(p);
	for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++) {
		char *s = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(l, i), 0));
		int eq = s && !strcmp(s, want);
		free(s);
		if (eq)
			return 1;
	}
	return 0;
}

static int ecs_scope(ldns_pkt *p)
{
	ldns_edns_option_list *l = ldns_pkt_edns_get_option_list(p);
	for (size_t i = 0; l && i < ldns_edns_option_list_get_count(l); i++) {
		ldns_edns_option *o = ldns_edns_option_list_get_option(l, i);
		if (ldns_edns_get_code(o) == 8)
			return ldns_edns_get_data(o)[3];
	}
	return -1;
}

static void nearest_by_ecs_and_resolver(void)
{
	struct dns_result r;
	ldns_pkt *p;
	/* 81.1.0.0/16 is DE in the fixture: fra and fra2 (both in DE, tied) */
	CHECK(!ask("vm1.veil.test", LDNS_RR_TYPE_A, "81.169.10.0/24", AF_INET, "198.51.100.1", &r, &p) && p, "answer");
	CHECK(p && ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR && ldns_pkt_ancount(p) == 2, "two answers");
	CHECK(p && has_addr(p, "198.18.1.1") && has_addr(p, "198.18.7.1"), "fra and fra2");
	CHECK(p && ecs_scope(p) > 0 && ecs_scope(p) <= 24, "scope %d", p ? ecs_scope(p) : -1);
	CHECK(r.flags & DNS_F_ECS, "ECS flagged");
	ldns_pkt_free(p);
	/* AAAA: fra2 has no IPv6, so fra then par */
	CHECK(!ask("vm1.veil.test", LDNS_RR_TYPE_AAAA, "81.169.10.0/24", AF_INET, "198.51.100.1", &r, &p) && p, "answer");
	CHECK(p && has_addr(p, "2001:db8:1::1") && has_addr(p, "2001:db8:2::1"), "fra and par over v6");
	ldns_pkt_free(p);
	/* the resolver's address: 198.18/15 is overridden to DE */
	CHECK(!ask("x.apps.veil.test", LDNS_RR_TYPE_A, NULL, AF_INET, "198.18.54.2", &r, &p) && p, "answer");
	CHECK(p && has_addr(p, "198.18.1.1") && ecs_scope(p) == -1, "fra, no ECS in the answer");
	ldns_pkt_free(p);
	/* v6 resolver in 2001:db8::/32, overridden to Tokyo's coordinates */
	CHECK(!ask("vm2.veil.test", LDNS_RR_TYPE_AAAA, NULL, AF_INET6, "2001:db8:54::2", &r, &p) && p, "answer");
	CHECK(p && has_addr(p, "2001:db8:5::1"), "tyo");
	CHECK(p && !has_addr(p, "2001:db8:6::1"), "syd is down");
	ldns_pkt_free(p);
}

static void pure_and_deterministic(void)
{
	struct dns_result r;
	ldns_pkt *p;
	uint8_t a[2048];
	size_t n;
	ask("vm2.veil.test", LDNS_RR_TYPE_A, "8.8.8.0/24", AF_INET, "198.51.100.1", &r, &p);
	n = r.len;
	memcpy(a, r.buf, n);
	ldns_pkt_free(p);
	ask("vm2.veil.test", LDNS_RR_TYPE_A, "8.8.8.0/24", AF_INET, "198.51.100.1", &r, &p);
	CHECK(r.len == n && !memcmp(a, r.buf, n), "same input, same bytes");
	CHECK(p && has_addr(p, "198.18.3.1"), "8.8.8.0/24 is US: nyc");
	ldns_pkt_free(p);
}

static void names_and_bad_input(void)
{
	struct dns_result r;
	ldns_pkt *p;
	ask("a.b.apps.veil.test", LDNS_RR_TYPE_A, NULL, AF_INET, "198.18.54.2", &r, &p);
	CHECK(p && ldns_pkt_get_rcode(p) == LDNS_RCODE_NXDOMAIN && ldns_pkt_nscount(p) == 1, "NXDOMAIN + SOA");
	ldns_pkt_free(p);
	ask("apps.veil.test", LDNS_RR_TYPE_A, NULL, AF_INET, "198.18.54.2", &r, &p);
	CHECK(p && ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR && !ldns_pkt_ancount(p) && ldns_pkt_nscount(p) == 1,
	      "empty non-terminal: NODATA + SOA");
	ldns_pkt_free(p);
	uint8_t shortq[5] = { 1, 2, 3, 4, 5 };
	struct dns_query q = { .pkt = shortq, .len = 5, .family = AF_INET };
	uint8_t buf[65536];
	r.buf = buf;
	CHECK(dns_answer(snap, &q, &r) == -1 && r.drop == DNS_DROP_SHORT, "short header dropped");
	uint8_t loop[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1 };
	q.pkt = loop;
	q.len = sizeof(loop);
	CHECK(dns_answer(snap, &q, &r) == 0 && (r.buf[3] & 15) == LDNS_RCODE_FORMERR, "compression loop: FORMERR");
}

/* A well-formed query for vm1.veil.test A (ID 0xbeef, EDNS when opt), and
 * the same bytes bent: each bent shape must get FORMERR with its ID. */
static size_t good_query(uint8_t *b, int opt)
{
	static const uint8_t q[] = { 0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
				     3, 'v', 'm', '1', 4, 'v', 'e', 'i', 'l', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1 };
	static const uint8_t o[] = { 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0 }; /* root, OPT, 1232, rdlen 0 */
	memcpy(b, q, sizeof(q));
	if (!opt)
		return sizeof(q);
	b[11] = 1;
	memcpy(b + sizeof(q), o, sizeof(o));
	return sizeof(q) + sizeof(o);
}

static int rcode_of(const uint8_t *pkt, size_t len, struct dns_result *r)
{
	struct dns_query q = { .pkt = pkt, .len = len, .family = AF_INET, .addr = { 198, 18, 54, 2 } };
	if (dns_answer(snap, &q, r) || r->len < 12 || r->buf[0] != 0xbe || r->buf[1] != 0xef || !(r->buf[2] & 0x80))
		return -1;
	return r->rcode;
}

static void malformed_queries_formerr(void)
{
	uint8_t b[600], out[65536];
	struct dns_result r = { .buf = out };
	size_t n;

	n = good_query(b, 0);
	CHECK(rcode_of(b, n, &r) == LDNS_RCODE_NOERROR, "the plain query is answered, rcode %d", r.rcode);
	n = good_query(b, 1);
	CHECK(rcode_of(b, n, &r) == LDNS_RCODE_NOERROR, "the EDNS query is answered, rcode %d", r.rcode);
	/* trailing bytes after the question, after the OPT record, a single
	 * zero byte, and 400 of them */
	n = good_query(b, 0);
	b[n] = 0xaa;
	CHECK(rcode_of(b, n + 1, &r) == LDNS_RCODE_FORMERR, "one junk byte after the question: rcode %d", r.rcode);
	memset(b + n, 0, 400);
	CHECK(rcode_of(b, n + 400, &r) == LDNS_RCODE_FORMERR, "400 zero bytes after the question: rcode %d", r.rcode);
	n = good_query(b, 1);
	memcpy(b + n, "junk", 4);
	CHECK(rcode_of(b, n + 4, &r) == LDNS_RCODE_FORMERR, "junk after the OPT record: rcode %d", r.rcode);
	/* OPT in the answer section (ANCOUNT 1, ARCOUNT 0) */
	n = good_query(b, 1);
	b[7] = 1;
	b[11] = 0;
	CHECK(rcode_of(b, n, &r) == LDNS_RCODE_FORMERR, "OPT in the answer section: rcode %d", r.rcode);
	/* OPT owned by a name other than the root */
	n = good_query(b, 0);
	static const uint8_t badopt[] = { 1, 'x', 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0 };
	memcpy(b + n, badopt, sizeof(badopt));
	b[11] = 1;
	CHECK(rcode_of(b, n + sizeof(badopt), &r) == LDNS_RCODE_FORMERR, "OPT not owned by the root: rcode %d", r.rcode);
	/* a count that promises a record that is not there */
	n = good_query(b, 0);
	b[11] = 1;
	CHECK(rcode_of(b, n, &r) == LDNS_RCODE_FORMERR, "ARCOUNT 1 with no record: rcode %d", r.rcode);
	/* the same over TCP */
	n = good_query(b, 0);
	b[n] = 0;
	struct dns_query q = { .pkt = b, .len = n + 1, .family = AF_INET, .tcp = 1 };
	CHECK(!dns_answer(snap, &q, &r) && r.rcode == LDNS_RCODE_FORMERR, "trailing byte over TCP: rcode %d", r.rcode);
}

/* What the store feed relies on: names from the store checked against the
 * zone, the file's config copied and grown with them, a snapshot built from
 * the merge answering the new names. */
static void store_merge_helpers(void)
{
	char n[256], err[512];
	CHECK(!dns_vm_name(&snap->cfg, "Svc1.Veil.Test.", n, sizeof(n)) && !strcmp(n, "svc1.veil.test"), "absolute name: %s", n);
	CHECK(!dns_vm_name(&snap->cfg, "*.shop.veil.test", n, sizeof(n)) && !strcmp(n, "*.shop.veil.test"), "wildcard");
	CHECK(dns_vm_name(&snap->cfg, "veil.test", n, sizeof(n)), "the apex is not a VM name");
	CHECK(dns_vm_name(&snap->cfg, "x.other.test", n, sizeof(n)), "another zone's name");
	CHECK(dns_vm_name(&snap->cfg, "a..veil.test", n, sizeof(n)) && dns_vm_name(&snap->cfg, "a b.veil.test", n, sizeof(n)) &&
	      dns_vm_name(&snap->cfg, "x.*.veil.test", n, sizeof(n)) && dns_vm_name(&snap->cfg, "", n, sizeof(n)),
	      "bad labels refused");
	double lat, lon;
	CHECK(!dns_parse_loc("DE", &lat, &lon) && !dns_parse_loc("52.37,4.90", &lat, &lon) && lat > 52 && lat < 53 &&
	      dns_parse_loc("ZZ", &lat, &lon) && dns_parse_loc("91,0", &lat, &lon), "locations");
	struct dns_cfg c;
	CHECK(!dns_cfg_copy(&c, &snap->cfg) && c.nvm == snap->cfg.nvm && c.vm != snap->cfg.vm, "deep copy");
	for (int i = 0; i < 300; i++) {
		snprintf(n, sizeof(n), "store%d.veil.test", i);
		CHECK(!dns_cfg_add_vm(&c, n), "add %d", i);
	}
	CHECK(c.nvm == snap->cfg.nvm + 300 && !strcmp(c.vm[c.nvm - 1], "store299.veil.test"), "grown to %d", c.nvm);
	uint64_t key[2] = { 1, 2 };
	struct dns_snap *s2 = dns_snap_build(&c, snap->serial, snap->cfg.hash ^ 1, key, err, sizeof(err));
	CHECK(s2 && s2->serial > snap->serial, "merged snapshot built, serial moved: %.200s", s2 ? "" : err);
	if (s2) {
		struct dns_snap *keep = snap;
		struct dns_result r;
		ldns_pkt *p;
		snap = s2;
		ask("store123.veil.test", LDNS_RR_TYPE_A, NULL, AF_INET, "198.18.54.2", &r, &p);
		CHECK(p && ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR && has_addr(p, "198.18.1.1"), "a merged name answered");
		ldns_pkt_free(p);
		ask("vm1.veil.test", LDNS_RR_TYPE_A, NULL, AF_INET, "198.18.54.2", &r, &p);
		CHECK(p && ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR, "the file's name still answered");
		ldns_pkt_free(p);
		snap = keep;
		dns_snap_free(s2);
	}
}

/* coalesce.h: `reads` reads of n queries, step apart from *t on; the
 * last one's wait */
static uint64_t coalesce_steady(struct dns_coalesce *c, uint64_t *t, uint64_t step, uint32_t n, int reads)
{
	uint64_t w = 0;
	for (int i = 0; i < reads; i++) {
		*t += step;
		w = dns_coalesce_wait(c, n, *t);
	}
	return w;
}

/* coalesce.h: the wait after a read, from the recent arrival rate (times
 * are given, so the arithmetic is checked exactly) */
static void coalescing_follows_the_rate(void)
{
	struct dns_coalesce c;
	const uint64_t us = 1000, max = 250 * us;
	uint64_t t = 1000000000ull, w = 0;

	/* a first read, and the first after an idle period: no wait */
	dns_coalesce_init(&c, 64, max, 64);
	CHECK(dns_coalesce_wait(&c, 1, t) == 0, "first read waited");
	t += 20000 * us;
	CHECK(dns_coalesce_wait(&c, 1, t) == 0 && c.gap_ns == 0, "read after 20 ms idle waited, gap %llu",
	      (unsigned long long)c.gap_ns);
	/* 100k queries/s (10 us apart), reads of 2: the gap settles on 10 us and
	 * every read waits for the batch, capped at max */
	w = coalesce_steady(&c, &t, 20 * us, 2, 10);
	CHECK(c.gap_ns == 10 * us, "gap %llu, want 10 us", (unsigned long long)c.gap_ns);
	CHECK(w == max, "wait %llu at 100k/s, want the cap", (unsigned long long)w);
	/* a full batch: no wait */
	t += 640 * us;
	CHECK(dns_coalesce_wait(&c, 64, t) == 0, "full batch waited");
	/* target 8 at the same rate: the next read 8 gaps after this one, 80 us */
	dns_coalesce_init(&c, 8, max, 64);
	dns_coalesce_wait(&c, 1, t);
	w = coalesce_steady(&c, &t, 20 * us, 2, 10);
	CHECK(w == 80 * us, "wait %llu, want 80 us", (unsigned long long)w);
	/* a read of more than the target but short of the whole batch waits
	 * too (the pace holds); a whole batch does not */
	t += 80 * us;
	CHECK(dns_coalesce_wait(&c, 8, t) == 80 * us, "read of 8 did not wait 80 us");
	t += 640 * us;
	CHECK(dns_coalesce_wait(&c, 64, t) == 0, "whole batch waited");
	/* 30k queries/s (33 us apart): 250 us gathers 7, fewer than
	 * DNS_COALESCE_MIN_RATE (16), so no wait */
	dns_coalesce_init(&c, 64, max, 64);
	dns_coalesce_wait(&c, 1, t);
	w = coalesce_steady(&c, &t, 33 * us, 1, 40);
	CHECK(w == 0 && c.gap_ns == 33 * us, "30k/s: wait %llu gap %llu", (unsigned long long)w,
	      (unsigned long long)c.gap_ns);
	/* the rate rises to 80k/s (12.5 us): 20 per 250 us, so it waits; the
	 * average moves an eighth of the way each read */
	int reads = 0;
	for (w = 0; !w && reads < 100; reads++) {
		t += 25 * us;
		w = dns_coalesce_wait(&c, 2, t);
	}
	CHECK(w == max && reads > 3 && reads < 30, "80k/s: wait %llu after %d reads", (unsigned long long)w, reads);
	/* off: target 0 or 1 never waits, max 0 never waits */
	for (uint32_t target = 0; target < 2; target++) {
		dns_coalesce_init(&c, target, max, 64);
		dns_coalesce_wait(&c, 1, t);
		CHECK(dns_coalesce_wait(&c, 1, t + 1000) == 0, "target %u waited", target);
	}
	dns_coalesce_init(&c, 64, 0, 64);
	dns_coalesce_wait(&c, 1, t);
	CHECK(dns_coalesce_wait(&c, 1, t + 1000) == 0, "max 0 waited");
	/* a clock that does not move, or a read of 0: no wait, no division by 0 */
	dns_coalesce_init(&c, 64, max, 64);
	dns_coalesce_wait(&c, 3, t);
	CHECK(dns_coalesce_wait(&c, 3, t) == 0 && dns_coalesce_wait(&c, 0, t + 5) == 0, "still clock waited");
}

/* memo.h: a key as answer() makes it (query after the ID, family, address) */
static size_t memo_key(uint8_t *k, int i, int aaaa)
{
	size_t l = 10;
	memcpy(k, "\x01\x20\0\x01\0\0\0\0\0\0", 10); /* flags, counts */
	k[l++] = (uint8_t)(i < 10 ? 3 : i < 100 ? 4 : 5);
	l += (size_t)sprintf((char *)k + l, "vm%d", i);
	memcpy(k + l, "\x04veil\x04test", 11); /* and the root label */
	l += 11;
	k[l++] = 0; /* type A or AAAA, class IN */
	k[l++] = aaaa ? 28 : 1;
	k[l++] = 0;
	k[l++] = 1;
	k[l++] = AF_INET;
	memcpy(k + l, "\xc6\x12\x37\x02\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	return l + 16;
}

/* memo.h: a working set well below the memo's size stays whole (the
 * direct-mapped memo lost keys that shared a slot), a new snapshot
 * generation finds nothing, a full set replaces a way */
static void memo_keeps_the_working_set(void)
{
	struct dns_memo m;
	uint8_t k[128];
	CHECK(dns_memo_init(&m, 4096) == 0 && m.nsets == 4096 / MEMO_WAYS, "init: %u sets", m.nsets);
	if (!m.set)
		return;
	/* the benchmark's 200 names, A and AAAA, one client, twice */
	int hits = 0, miss = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 1; i <= 100; i++)
			for (int a = 0; a < 2; a++) {
				size_t n = memo_key(k, i, a);
				uint64_t h = dns_memo_hash(k, n);
				struct memo_ent *e = dns_memo_find(&m, 1, h, k, n);
				if (e) {
					hits++;
					CHECK(e->alen == (uint16_t)(i * 2 + a), "vm%d/%d: wrong entry", i, a);
					continue;
				}
				miss++;
				e = dns_memo_put(&m, 1, h, k, n);
				e->alen = (uint16_t)(i * 2 + a);
			}
	CHECK(miss == 200 && hits == 200, "200 keys twice: %d misses, %d hits", miss, hits);
	/* another snapshot: nothing of the old one is found */
	size_t n = memo_key(k, 7, 0);
	uint64_t h = dns_memo_hash(k, n);
	CHECK(!dns_memo_find(&m, 2, h, k, n), "found under a new generation");
	/* the same hash, another key: not found */
	uint8_t k2[128];
	memcpy(k2, k, n);
	k2[n - 1] ^= 1;
	CHECK(!dns_memo_find(&m, 1, h, k2, n), "found another key with the same hash");
	/* five keys in one set (made so by their hash): four stay, the first
	 * put in the full set replaces one way, the rest are still there */
	struct dns_memo s1;
	CHECK(dns_memo_init(&s1, MEMO_WAYS) == 0 && s1.nsets == 1, "one set: %u", s1.nsets);
	if (!s1.set) {
		dns_memo_free(&m);
		return;
	}
	for (int i = 0; i < MEMO_WAYS + 1; i++) {
		n = memo_key(k, i, 0);
		dns_memo_put(&s1, 1, dns_memo_hash(k, n), k, n)->alen = (uint16_t)i;
	}
	int found = 0;
	for (int i = 0; i < MEMO_WAYS + 1; i++) {
		n = memo_key(k, i, 0);
		found += dns_memo_find(&s1, 1, dns_memo_hash(k, n), k, n) != NULL;
	}
	n = memo_key(k, MEMO_WAYS, 0);
	CHECK(found == MEMO_WAYS && dns_memo_find(&s1, 1, dns_memo_hash(k, n), k, n), "full set: %d found", found);
	/* putting a key again takes its own way, not a second one */
	n = memo_key(k, MEMO_WAYS, 0);
	dns_memo_put(&s1, 1, dns_memo_hash(k, n), k, n);
	found = 0;
	for (int i = 0; i < MEMO_WAYS + 1; i++) {
		n = memo_key(k, i, 0);
		found += dns_memo_find(&s1, 1, dns_memo_hash(k, n), k, n) != NULL;
	}
	CHECK(found == MEMO_WAYS, "after a second put: %d found", found);
	/* a stale way is taken before a current one */
	n = memo_key(k, 50, 0);
	dns_memo_put(&s1, 2, dns_memo_hash(k, n), k, n);
	found = 0;
	for (int i = 0; i < MEMO_WAYS + 1; i++) {
		n = memo_key(k, i, 0);
		found += dns_memo_find(&s1, 1, dns_memo_hash(k, n), k, n) != NULL;
	}
	CHECK(found == MEMO_WAYS - 1, "generation 2 in a set of generation 1: %d of gen 1 left", found);
	dns_memo_free(&s1);
	dns_memo_free(&m);
}

int main(void)
{
	char err[512], conf[] = "/tmp/test_dns.XXXXXX";
	uint64_t key[2] = { 1, 2 };
	struct dns_cfg c;
	int fd = mkstemp(conf);
	FILE *o = fdopen(fd, "w"), *in = fopen("tests/fixtures/dns-test.conf", "re");
	while (in && fgets(err, sizeof(err), in))
		fputs(err, o);
	fprintf(o, "geoip4 tests/fixtures/dns-geoip\ngeoip6 tests/fixtures/dns-geoip6\n");
	if (in)
		fclose(in);
	fclose(o);
	if (dns_cfg_load(conf, &c, err, sizeof(err)) || !(snap = dns_snap_build(&c, 0, 0, key, err, sizeof(err)))) {
		printf("FAIL test_dns_setup: %s\n", err);
		unlink(conf);
		return 1;
	}
	unlink(conf);
	RUN(geo_ranges_and_scopes);
	RUN(nearest_by_ecs_and_resolver);
	RUN(pure_and_deterministic);
	RUN(names_and_bad_input);
	RUN(malformed_queries_formerr);
	RUN(store_merge_helpers);
	RUN(coalescing_follows_the_rate);
	RUN(memo_keeps_the_working_set);
	dns_snap_free(snap);
	return t_done();
}
