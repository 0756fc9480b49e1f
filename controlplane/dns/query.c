// SPDX-License-Identifier: Apache-2.0
/*
 * veil-dns query path: (query bytes, client address, snapshot, time) ->
 * answer bytes, parsed and built with ldns.  No state, no I/O: the fuzzer
 * and the benchmark call it alone.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "veil/cookie.h"

#define OPT_ECS 8
#define OPT_COOKIE 10
#define RCODE_BADVERS 16

struct ctx {
	const struct dns_snap *s;
	const struct dns_query *q;
	struct dns_result *r;
	ldns_pkt *in, *out;
	int edns, udp;
	/* ECS */
	int ecs, ecs_fam, ecs_src;
	uint8_t ecs_addr[16];
	int scope;
	/* cookies */
	int cookie;
	uint8_t cookie_client[8];
};

static ldns_pkt *reply_new(const struct ctx *c, uint16_t id, int rcode)
{
	ldns_pkt *p = ldns_pkt_new();
	if (!p)
		return NULL;
	ldns_pkt_set_id(p, id);
	ldns_pkt_set_qr(p, 1);
	ldns_pkt_set_opcode(p, LDNS_PACKET_QUERY);
	ldns_pkt_set_rcode(p, (uint8_t)(rcode & 15));
	return p;
}

static void server_cookie(const struct ctx *c, uint32_t ts, uint8_t out[16])
{
	uint64_t w[5] = { 0 };
	uint8_t *b = (uint8_t *)w;
	memcpy(b, c->cookie_client, 8);
	b[8] = 1; /* version */
	b[12] = (uint8_t)(ts >> 24); b[13] = (uint8_t)(ts >> 16); b[14] = (uint8_t)(ts >> 8); b[15] = (uint8_t)ts;
	memcpy(b + 16, c->q->addr, 16);
	uint64_t h = vm_siphash((const __u64 *)c->s->cookie_key, (const vm_u64a *)w, 32);
	memcpy(out, b + 8, 8);
	memcpy(out + 8, &h, 8);
}

/* EDNS on the way out: our buffer size, DO echoed, ECS and cookie options. */
static int add_edns(struct ctx *c, ldns_pkt *p, int rcode)
{
	if (!c->edns)
		return 0;
	ldns_pkt_set_edns_udp_size(p, (uint16_t)c->s->cfg.udp_max);
	ldns_pkt_set_edns_version(p, 0);
	ldns_pkt_set_edns_extended_rcode(p, (uint8_t)(rcode >> 4));
	if (c->in && ldns_pkt_edns_do(c->in))
		ldns_pkt_set_edns_do(p, 1);
	if (!c->ecs && !c->cookie)
		return 0;
	ldns_edns_option_list *l = ldns_edns_option_list_new();
	if (!l)
		return -1;
	if (c->ecs) {
		uint8_t d[20];
		size_t n = (size_t)(c->ecs_src + 7) / 8;
		d[0] = 0;
		d[1] = (uint8_t)c->ecs_fam;
		d[2] = (uint8_t)c->ecs_src;
		d[3] = (uint8_t)c->scope;
		memcpy(d + 4, c->ecs_addr, n);
		ldns_edns_option *o = ldns_edns_new_from_data(OPT_ECS, 4 + n, d);
		if (!o || !ldns_edns_option_list_push(l, o))
			goto fail;
	}
	if (c->cookie) {
		uint8_t d[24];
		memcpy(d, c->cookie_client, 8);
		server_cookie(c, c->q->now, d + 8);
		ldns_edns_option *o = ldns_edns_new_from_data(OPT_COOKIE, 24, d);
		if (!o || !ldns_edns_option_list_push(l, o))
			goto fail;
		c->r->flags |= DNS_F_COOKIE;
	}
	ldns_pkt_set_edns_option_list(p, l);
	return 0;
fail:
	ldns_edns_option_list_deep_free(l);
	return -1;
}

/* Wire out: our packet, or, when it does not fit, the same with TC and no
 * records (the question and EDNS stay). */
static int emit(struct ctx *c, ldns_pkt *p, int rcode)
{
	uint8_t *w = NULL;
	size_t n = 0;
	size_t max = c->q->tcp ? 65535 : (size_t)c->udp;

	ldns_pkt_set_rcode(p, (uint8_t)(rcode & 15));
	if (add_edns(c, p, rcode) || ldns_pkt2wire(&w, p, &n) != LDNS_STATUS_OK)
		goto nomem;
	if (n > max) {
		free(w);
		w = NULL;
		ldns_rr_list_deep_free(ldns_pkt_answer(p));
		ldns_rr_list_deep_free(ldns_pkt_authority(p));
		ldns_rr_list_deep_free(ldns_pkt_additional(p));
		ldns_pkt_set_answer(p, ldns_rr_list_new());
		ldns_pkt_set_authority(p, ldns_rr_list_new());
		ldns_pkt_set_additional(p, ldns_rr_list_new());
		ldns_pkt_set_ancount(p, 0);
		ldns_pkt_set_nscount(p, 0);
		ldns_pkt_set_arcount(p, 0);
		ldns_pkt_set_tc(p, 1);
		c->r->flags |= DNS_F_TC;
		c->r->ngw = 0;
		if (ldns_pkt2wire(&w, p, &n) != LDNS_STATUS_OK || n > max)
			goto nomem;
	}
	memcpy(c->r->buf, w, n);
	c->r->len = n;
	c->r->rcode = rcode;
	free(w);
	ldns_pkt_free(p);
	return 0;
nomem:
	free(w);
	ldns_pkt_free(p);
	c->r->drop = DNS_DROP_NOMEM;
	return -1;
}

/* An answer that carries only a header (and the question when we have it). */
static int error_reply(struct ctx *c, uint16_t id, int rcode)
{
	ldns_pkt *p = reply_new(c, id, rcode);
	if (!p) {
		c->r->drop = DNS_DROP_NOMEM;
		return -1;
	}
	if (c->in) {
		ldns_pkt_set_rd(p, ldns_pkt_rd(c->in));
		ldns_pkt_set_cd(p, ldns_pkt_cd(c->in));
		ldns_pkt_set_opcode(p, ldns_pkt_get_opcode(c->in));
		if (ldns_pkt_qdcount(c->in) == 1) {
			ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(c->in), 0)));
		}
	}
	return emit(c, p, rcode);
}

/* Reads the query's EDNS options.  Returns 0, or an rcode to answer with. */
static int read_options(struct ctx *c)
{
	ldns_edns_option_list *l;
	size_t n;
	int seen_ecs = 0, seen_cookie = 0;

	if (!ldns_pkt_edns_data(c->in))
		return 0;
	l = ldns_pkt_edns_get_option_list(c->in);
	if (!l)
		return LDNS_RCODE_FORMERR; /* options that do not parse */
	n = ldns_edns_option_list_get_count(l);
	for (size_t i = 0; i < n; i++) {
		ldns_edns_option *o = ldns_edns_option_list_get_option(l, i);
		size_t len = ldns_edns_get_size(o);
		const uint8_t *d = ldns_edns_get_data(o);
		switch (ldns_edns_get_code(o)) {
		case OPT_ECS: {
			if (seen_ecs++ || len < 4)
				return LDNS_RCODE_FORMERR;
			int fam = d[0] << 8 | d[1], src = d[2], scope = d[3];
			int bits = fam == 1 ? 32 : fam == 2 ? 128 : -1;
			size_t need = (size_t)(src + 7) / 8;
			if (bits < 0 || src > bits || scope != 0 || len - 4 != need)
				return LDNS_RCODE_FORMERR;
			if (src % 8 && (d[4 + need - 1] & (0xff >> (src % 8))))
				return LDNS_RCODE_FORMERR; /* bits set past the prefix */
			c->ecs = 1;
			c->ecs_fam = fam;
			c->ecs_src = src;
			memset(c->ecs_addr, 0, sizeof(c->ecs_addr));
			memcpy(c->ecs_addr, d + 4, need);
			break;
		}
		case OPT_COOKIE:
			if (seen_cookie++ || !(len == 8 || (len >= 16 && len <= 40)))
				return LDNS_RCODE_FORMERR;
			c->cookie = 1;
			memcpy(c->cookie_client, d, 8);
			if (len == 24 && d[8] == 1) {
				uint32_t ts = (uint32_t)d[12] << 24 | (uint32_t)d[13] << 16 | (uint32_t)d[14] << 8 | d[15];
				uint8_t want[16];
				int32_t age = (int32_t)(c->q->now - ts);
				server_cookie(c, ts, want);
				if (age >= -300 && age <= 3600 && !memcmp(want, d + 8, 16))
					c->r->flags |= DNS_F_COOKIE_OK;
			}
			break;
		default:
			break; /* unknown options are ignored (RFC 6891 6.1.2) */
		}
	}
	return 0;
}

static const struct dns_name *find_name(const struct dns_snap *s, const char *key)
{
	size_t a = 0, b = s->nnames;
	while (a < b) {
		size_t m = a + (b - a) / 2;
		int d = strcmp(key, s->names[m].key);
		if (!d)
			return &s->names[m];
		if (d < 0)
			b = m;
		else
			a = m + 1;
	}
	return NULL;
}

static uint64_t mix(const uint8_t *b, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

/* The gateways for an address query: the class of the client's location,
 * the first N, a tie at the edge spread by a hash of the client's block. */
static int pick(struct ctx *c, int fam6, uint8_t *out)
{
	const struct dns_snap *s = c->s;
	int cf, scope;
	uint8_t a[16] = { 0 };
	uint32_t k;

	if (c->ecs && c->ecs_src > 0) {
		cf = c->ecs_fam == 2;
		memcpy(a, c->ecs_addr, 16);
	} else {
		cf = c->q->family == AF_INET6;
		memcpy(a, c->q->addr, cf ? 16 : 4);
	}
	if (cf)
		k = geo_find6(&s->t6[fam6], geo_u128_from(a), &scope);
	else {
		uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
		k = geo_find4(&s->t4[fam6], v, &scope);
	}
	if (k >= s->nclasses[fam6])
		return 0;
	const struct dns_class *cl = &s->classes[fam6][k];
	int want = s->cfg.answers;
	/* a tie across the N-th place is spread over clients by their /24
	 * (v4) or /56 (v6): then the decision used those bits too, and the ECS
	 * scope says so */
	int spread = want < cl->n && cl->group[want] == cl->group[want - 1];
	int bits = cf ? 128 : 32;
	if (c->ecs && c->ecs_src > 0) {
		int sb = cf ? 56 : 24;
		if (sb > c->ecs_src)
			sb = c->ecs_src;
		if (spread && scope < sb)
			scope = sb;
		c->scope = scope;
		c->r->flags |= DNS_F_ECS;
	} else {
		scope = spread ? (cf ? 56 : 24) : 0;
	}
	for (int i = 0; i < 16; i++) {
		int b = scope - i * 8;
		a[i] &= i * 8 >= bits ? 0 : b >= 8 ? 0xff : b <= 0 ? 0 : (uint8_t)(0xff << (8 - b));
	}
	uint64_t h = mix(a, 16) ^ (uint64_t)scope;
	int n = 0;
	for (int i = 0; i < cl->n && n < want;) {
		int j = i;
		while (j < cl->n && cl->group[j] == cl->group[i])
			j++;
		int size = j - i;
		if (n + size <= want) {
			for (int x = i; x < j; x++)
				out[n++] = cl->gw[x];
		} else {
			int off = (int)(h % (uint64_t)size);
			while (n < want)
				out[n++] = cl->gw[i + off++ % size];
		}
		i = j;
	}
	return n;
}

static ldns_rr *rr_new(ldns_rr_type t, const ldns_rdf *owner, uint32_t ttl, ldns_rdf *rd)
{
	ldns_rr *rr = ldns_rr_new();
	if (!rr)
		return NULL;
	ldns_rr_set_type(rr, t);
	ldns_rr_set_owner(rr, ldns_rdf_clone(owner));
	ldns_rr_set_ttl(rr, ttl);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	if (rd && !ldns_rr_push_rdf(rr, rd)) {
		ldns_rr_free(rr);
		return NULL;
	}
	return rr;
}

static void add_soa_authority(const struct ctx *c, ldns_pkt *p)
{
	ldns_rr *soa = ldns_rr_clone(c->s->soa);
	uint32_t min = c->s->cfg.soa_minimum;
	if (ldns_rr_ttl(soa) > min)
		ldns_rr_set_ttl(soa, min);
	ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, soa);
}

/* Every record parses (ldns_wire2rr, one at a time, each freed), the
 * records end where the packet ends (trailing bytes after the last record
 * are a malformed query, not padding), and there is one OPT at most, in the
 * additional section, owned by the root (RFC 6891 6.1.1).  ldns_wire2pkt
 * leaks an OPT record when a later record fails to parse (found by
 * fuzz_dns), so it only sees packets that pass. */
static int records_ok(const uint8_t *w, size_t len)
{
	size_t pos = LDNS_HEADER_SIZE;
	unsigned n[4] = { LDNS_QDCOUNT(w), LDNS_ANCOUNT(w), LDNS_NSCOUNT(w), LDNS_ARCOUNT(w) };
	static const ldns_pkt_section sec[4] = { LDNS_SECTION_QUESTION, LDNS_SECTION_ANSWER, LDNS_SECTION_AUTHORITY,
						 LDNS_SECTION_ADDITIONAL };
	int opt = 0;
	for (int s = 0; s < 4; s++)
		for (unsigned i = 0; i < n[s]; i++) {
			ldns_rr *rr = NULL;
			if (ldns_wire2rr(&rr, w, len, &pos, sec[s]) != LDNS_STATUS_OK)
				return 0;
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_OPT) {
				const ldns_rdf *o = ldns_rr_owner(rr);
				int root = o && ldns_rdf_size(o) == 1 && ldns_rdf_data(o)[0] == 0;
				if (++opt > 1 || s != 3 || !root) {
					ldns_rr_free(rr);
					return 0;
				}
			}
			ldns_rr_free(rr);
		}
	return pos == len;
}

int dns_answer(const struct dns_snap *s, const struct dns_query *q, struct dns_result *r)
{
	struct ctx c = { .s = s, .q = q, .r = r, .udp = 512 };
	ldns_rr *qrr;
	ldns_rdf *qname;
	char key[512];
	int rc;

	r->len = 0;
	r->qtype = -1;
	r->rcode = 0;
	r->flags = 0;
	r->drop = DNS_DROP_NONE;
	r->ngw = 0;
	if (q->len < LDNS_HEADER_SIZE) {
		r->drop = DNS_DROP_SHORT;
		return -1;
	}
	if (LDNS_QR_WIRE(q->pkt)) {
		r->drop = DNS_DROP_RESPONSE; /* never answer an answer (loops, reflection) */
		return -1;
	}
	uint16_t id = LDNS_ID_WIRE(q->pkt);
	if (!records_ok(q->pkt, q->len) || ldns_wire2pkt(&c.in, q->pkt, q->len) != LDNS_STATUS_OK) {
		c.in = NULL;
		return error_reply(&c, id, LDNS_RCODE_FORMERR);
	}
	/* EDNS: one OPT at most (ldns keeps the last and lowers ARCOUNT for each) */
	if (ldns_pkt_edns(c.in) || ldns_pkt_edns_data(c.in) || LDNS_ARCOUNT(q->pkt) != ldns_pkt_arcount(c.in)) {
		c.edns = 1;
		r->flags |= DNS_F_EDNS;
		if (LDNS_ARCOUNT(q->pkt) - ldns_pkt_arcount(c.in) > 1) {
			rc = LDNS_RCODE_FORMERR;
			goto err;
		}
		c.udp = ldns_pkt_edns_udp_size(c.in);
		if (c.udp < 512)
			c.udp = 512;
		if (c.udp > s->cfg.udp_max)
			c.udp = s->cfg.udp_max;
		if ((rc = read_options(&c)))
			goto err;
		if (ldns_pkt_edns_version(c.in) > 0) {
			c.ecs = 0;
			rc = RCODE_BADVERS;
			goto err;
		}
	}
	if (ldns_pkt_get_opcode(c.in) != LDNS_PACKET_QUERY) {
		rc = LDNS_RCODE_NOTIMPL;
		goto err;
	}
	if (ldns_pkt_qdcount(c.in) == 0 && c.cookie) {
		rc = LDNS_RCODE_NOERROR; /* a cookie-only query (RFC 7873 5.4) */
		goto err;
	}
	if (ldns_pkt_qdcount(c.in) != 1) {
		rc = LDNS_RCODE_FORMERR;
		goto err;
	}
	qrr = ldns_rr_list_rr(ldns_pkt_question(c.in), 0);
	qname = ldns_rr_owner(qrr);
	ldns_rr_type qt = ldns_rr_get_type(qrr);
	r->qtype = qt;
	if (ldns_rr_get_class(qrr) != LDNS_RR_CLASS_IN) {
		rc = LDNS_RCODE_REFUSED;
		goto err;
	}
	if (qt == LDNS_RR_TYPE_AXFR || qt == LDNS_RR_TYPE_IXFR || qt == LDNS_RR_TYPE_OPT ||
	    qt == LDNS_RR_TYPE_MAILA || qt == LDNS_RR_TYPE_MAILB) {
		rc = qt == LDNS_RR_TYPE_OPT ? LDNS_RCODE_FORMERR : LDNS_RCODE_REFUSED;
		goto err;
	}
	/* the name, lowercase, without the final dot */
	{
		ldns_buffer *b = ldns_buffer_new(256);
		ldns_rdf *lc = ldns_rdf_clone(qname);
		if (!b || !lc) {
			ldns_buffer_free(b);
			ldns_rdf_deep_free(lc);
			r->drop = DNS_DROP_NOMEM;
			ldns_pkt_free(c.in);
			return -1;
		}
		ldns_dname2canonical(lc);
		ldns_rdf2buffer_str_dname(b, lc);
		size_t n = ldns_buffer_position(b);
		if (n >= sizeof(key))
			n = sizeof(key) - 1;
		memcpy(key, ldns_buffer_begin(b), n);
		key[n] = 0;
		if (n > 1 && key[n - 1] == '.')
			key[n - 1] = 0;
		ldns_buffer_free(b);
		ldns_rdf_deep_free(lc);
	}
	if (!ldns_dname_is_subdomain(qname, s->origin) && ldns_dname_compare(qname, s->origin)) {
		rc = LDNS_RCODE_REFUSED; /* not our zone */
		goto err;
	}
	const struct dns_name *nm = find_name(s, key);
	if (!nm) {
		/* one-label wildcard, as the gateways route: *.apps.zone covers
		 * x.apps.zone, not y.x.apps.zone */
		char *dot = strchr(key, '.');
		if (dot) {
			char wk[520];
			snprintf(wk, sizeof(wk), "*%s", dot);
			nm = find_name(s, wk);
		}
	}

	ldns_pkt *p = reply_new(&c, id, 0);
	if (!p)
		goto nomem;
	ldns_pkt_set_aa(p, 1);
	ldns_pkt_set_rd(p, ldns_pkt_rd(c.in));
	ldns_pkt_set_cd(p, ldns_pkt_cd(c.in));
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(qrr));
	uint32_t ttl = s->cfg.ttl;
	rc = LDNS_RCODE_NOERROR;
	if (!nm) {
		rc = LDNS_RCODE_NXDOMAIN;
		add_soa_authority(&c, p);
	} else if (qt == LDNS_RR_TYPE_ANY) {
		/* RFC 8482: one synthesized HINFO instead of everything */
		ldns_rr *rr = rr_new(LDNS_RR_TYPE_HINFO, qname, s->cfg.soa_ttl, NULL);
		if (rr) {
			ldns_rr_push_rdf(rr, ldns_rdf_new_frm_str(LDNS_RDF_TYPE_STR, "RFC8482"));
			ldns_rr_push_rdf(rr, ldns_rdf_new_frm_str(LDNS_RDF_TYPE_STR, ""));
			ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
		}
	} else if (nm->kind == DNS_APEX && qt == LDNS_RR_TYPE_SOA) {
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, ldns_rr_clone(s->soa));
	} else if (nm->kind == DNS_APEX && qt == LDNS_RR_TYPE_NS) {
		ldns_rr_list *l = ldns_rr_list_clone(s->nsrrs);
		ldns_pkt_push_rr_list(p, LDNS_SECTION_ANSWER, l);
		ldns_rr_list_free(l); /* the records moved, the list did not */
		for (int i = 0; i < s->cfg.nns; i++) {
			const struct dns_nshost *h = &s->cfg.ns[i];
			ldns_rdf *o = ldns_dname_new_frm_str(h->name);
			for (int j = 0; o && j < h->n4; j++)
				ldns_pkt_push_rr(p, LDNS_SECTION_ADDITIONAL, rr_new(LDNS_RR_TYPE_A, o, s->cfg.soa_ttl,
					ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, h->a4[j])));
			for (int j = 0; o && j < h->n6; j++)
				ldns_pkt_push_rr(p, LDNS_SECTION_ADDITIONAL, rr_new(LDNS_RR_TYPE_AAAA, o, s->cfg.soa_ttl,
					ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, h->a6[j])));
			ldns_rdf_deep_free(o);
		}
	} else if (nm->kind == DNS_NSHOST && (qt == LDNS_RR_TYPE_A || qt == LDNS_RR_TYPE_AAAA)) {
		const struct dns_nshost *h = &s->cfg.ns[nm->ns];
		int v6 = qt == LDNS_RR_TYPE_AAAA;
		for (int j = 0; j < (v6 ? h->n6 : h->n4); j++)
			ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr_new(qt, qname, s->cfg.soa_ttl, v6 ?
				ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, h->a6[j]) :
				ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, h->a4[j])));
		if (!(v6 ? h->n6 : h->n4))
			add_soa_authority(&c, p);
	} else if (nm->kind == DNS_VM && (qt == LDNS_RR_TYPE_A || qt == LDNS_RR_TYPE_AAAA)) {
		int v6 = qt == LDNS_RR_TYPE_AAAA;
		uint8_t gw[DNS_MAX_GW];
		int n = pick(&c, v6, gw);
		for (int i = 0; i < n; i++) {
			const struct dns_gw *g = &s->cfg.gw[gw[i]];
			ldns_rr *rr = rr_new(qt, qname, ttl, ldns_rdf_clone(v6 ? g->rd6 : g->rd4));
			if (rr)
				ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
			r->gw[r->ngw++] = gw[i];
		}
		if (!n)
			add_soa_authority(&c, p);
	} else {
		add_soa_authority(&c, p); /* NODATA */
	}
	rc = emit(&c, p, rc);
	ldns_pkt_free(c.in);
	return rc;
err:
	r->flags &= ~DNS_F_ECS;
	if (rc == LDNS_RCODE_FORMERR)
		c.ecs = 0;
	c.scope = 0;
	rc = error_reply(&c, id, rc);
	ldns_pkt_free(c.in);
	return rc;
nomem:
	r->drop = DNS_DROP_NOMEM;
	ldns_pkt_free(c.in);
	return -1;
}
