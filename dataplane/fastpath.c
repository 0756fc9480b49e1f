// SPDX-License-Identifier: Apache-2.0
/* The gateway in userspace: gw_ingress and gw_return on packet buffers.
 * Every step mirrors the BPF code (bpf/gw_ingress.bpf.c, bpf/lib/ headers) so the
 * bytes out are the same; see fastpath.h. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"
#include "veil/cookie.h"
#include "veil/hello.h"
#include "veil/pkt.h"

/* The packet library reads Geneve options through the environment's byte
 * loader: here a bounded copy out of the frame. */
struct fp_frame {
	const uint8_t *p;
	uint32_t len;
};

static inline int fp_load(void *ctx, uint32_t off, void *dst, uint32_t n)
{
	const struct fp_frame *fr = ctx;
	if (off > fr->len || n > fr->len - off)
		return -1;
	memcpy(dst, fr->p + off, n);
	return 0;
}
#define VM_LOAD_BYTES(ctx, off, dst, len) fp_load((ctx), (off), (dst), (len))
#include "veil/geneve.h"

#define ETH_HLEN 14
#define T_FIN 0x01
#define T_SYN 0x02
#define T_RST 0x04
#define T_PSH 0x08
#define T_ACK 0x10

/* ---------- checksums (the same sums the BPF code computes) ---------- */

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (p[i] << 8) | p[i + 1];
	if (n & 1)
		s += p[n - 1] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint16_t get16(const uint8_t *p) { return (p[0] << 8) | p[1]; }

static void ip4_csum(uint8_t *ip)
{
	ip[10] = ip[11] = 0;
	put16(ip + 10, fold(sum16(ip, 20, 0)));
}

static void tcp_csum(uint8_t *ip, int v6, uint8_t *tcp, size_t l4len)
{
	uint32_t s = v6 ? sum16(ip + 8, 32, 0) : sum16(ip + 12, 8, 0);
	s += 6 + (uint32_t)l4len;
	tcp[16] = tcp[17] = 0;
	put16(tcp + 16, fold(sum16(tcp, l4len, s)));
}

/* ---------- parsing (include/veil/pkt.h, as in BPF) ---------- */

static int parse_ip_tcp(const uint8_t *f, uint32_t len, uint32_t l3, struct vm_pkt *p)
{
	__be16 et;

	memset(p, 0, sizeof(*p));
	memcpy(&et, f + 12, 2);
	return vm_parse_ip_tcp((void *)f, (void *)(f + len), len, l3, et, p);
}

/* The option block o[0, len) (len <= 40, inside the frame). */
static int parse_opts(const uint8_t *o, int len, struct vm_tcpopts *r)
{
	struct vm_tcpopt_state st;
	return vm_tcpopt_parse(o, (uint32_t)len, r, &st);
}

/* ---------- tables ---------- */

static void key_of(const struct vm_pkt *p, int reverse, struct flow_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->client, reverse ? p->daddr : p->saddr, 16);
	memcpy(k->vip, reverse ? p->saddr : p->daddr, 16);
	k->client_port_be = reverse ? p->dport : p->sport;
	k->vip_port_be = reverse ? p->sport : p->dport;
	k->family = p->family;
}


/* A flow key (40 bytes, five words) mixed a word at a time: the per-packet
 * hash of every table and of the lcore hand-over. */
static uint32_t hash_key(const struct flow_key *k)
{
	uint64_t w[5], h = 0x9e3779b97f4a7c15ULL;
	_Static_assert(sizeof(*k) == sizeof(w), "flow key is five words");
	memcpy(w, k, sizeof(w));
	for (int i = 0; i < 5; i++) {
		h ^= w[i];
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	h *= 0xc4ceb9fe1a85ec53ULL;
	return (uint32_t)(h ^ (h >> 29));
}

static uint32_t hash_bytes(const void *k, size_t n)
{
	const uint8_t *p = k;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

int vm_fp_init(struct vm_fp *fp, uint32_t flows_cap)
{
	uint32_t cap = 1024;
	memset(fp, 0, sizeof(*fp));
	while (cap < flows_cap)
		cap <<= 1;
	fp->flows_cap = cap;
	fp->flows = calloc(cap, sizeof(*fp->flows));
	fp->asm_tab = calloc(VM_FP_ASM_MAX, sizeof(*fp->asm_tab));
	fp->early_tab = calloc(VM_FP_ASM_MAX, sizeof(*fp->early_tab));
	if (fp->flows && fp->asm_tab && fp->early_tab)
		return 0;
	vm_fp_free(fp);
	return -1;
}

void vm_fp_free(struct vm_fp *fp)
{
	free(fp->flows);
	free(fp->asm_tab);
	free(fp->early_tab);
	fp->flows = NULL;
	fp->asm_tab = NULL;
	fp->early_tab = NULL;
}

int vm_fp_conf_set(struct vm_fp_conf *c, const struct vm_gw_cfg *g)
{
	uint32_t cap = 16;
	while (cap < 2 * (uint32_t)g->nroutes)
		cap <<= 1;
	struct vm_cfg_route *t = calloc(cap, sizeof(*t));
	if (!t)
		return -1;
	for (int i = 0; i < g->nroutes; i++) {
		const char *nm = g->routes[i].key.name;
		uint32_t h = hash_bytes(nm, strnlen(nm, VM_NAME_MAX)) & (cap - 1);
		while (t[h].key.name[0])
			h = (h + 1) & (cap - 1);
		t[h] = g->routes[i];
	}
	free(c->routes);
	c->routes = t;
	c->routes_cap = cap;
	memcpy(c->vips, g->vips, sizeof(c->vips));
	c->nvips = g->nvips;
	c->cfg = g->dp;
	return 0;
}

void vm_fp_conf_free(struct vm_fp_conf *c)
{
	free(c->routes);
	c->routes = NULL;
	c->routes_cap = 0;
}

const struct route_val *vm_fp_conf_route(const struct vm_fp_conf *c, const char *name)
{
	if (!c->routes)
		return NULL;
	/* names are NUL-padded to VM_NAME_MAX: the bytes up to the NUL say it all */
	uint32_t h = hash_bytes(name, strnlen(name, VM_NAME_MAX)) & (c->routes_cap - 1);
	while (c->routes[h].key.name[0]) {
		if (!strncmp(c->routes[h].key.name, name, VM_NAME_MAX))
			return &c->routes[h].val;
		h = (h + 1) & (c->routes_cap - 1);
	}
	return NULL;
}

static const struct route_val *route_get(struct vm_fp *fp, const char *name)
{
	return vm_fp_conf_route(fp->c, name);
}

static const struct vip_val *vip_get(struct vm_fp *fp, const struct vm_pkt *p)
{
	for (int i = 0; i < fp->c->nvips; i++)
		if (fp->c->vips[i].key.family == p->family && fp->c->vips[i].key.port_be == p->dport &&
		    !memcmp(fp->c->vips[i].key.addr, p->daddr, 16))
			return &fp->c->vips[i].val;
	return NULL;
}

#define PROBE 8
static void *slot_find(struct vm_fp *fp, void *tab, size_t stride, uint32_t cap, const struct flow_key *k)
{
	uint32_t h = hash_key(k);
	for (int i = 0; i < PROBE; i++) {
		struct vm_fp_slot *f = (struct vm_fp_slot *)((uint8_t *)tab + stride * ((h + i) & (cap - 1)));
		if (f->used && !memcmp(&f->key, k, sizeof(*k))) {
			f->last_used = ++fp->tick;
			return f;
		}
	}
	return NULL;
}

/* Insert or replace; a full probe window evicts its least recently used.
 * The caller fills the value. */
static void *slot_put(struct vm_fp *fp, void *tab, size_t stride, uint32_t cap, const struct flow_key *k,
		      uint32_t *count)
{
	uint32_t h = hash_key(k);
	struct vm_fp_slot *victim = NULL;
	for (int i = 0; i < PROBE; i++) {
		struct vm_fp_slot *f = (struct vm_fp_slot *)((uint8_t *)tab + stride * ((h + i) & (cap - 1)));
		if (!f->used || !memcmp(&f->key, k, sizeof(*k))) {
			victim = f;
			break;
		}
		if (!victim || f->last_used < victim->last_used)
			victim = f;
	}
	if (!victim->used && count)
		(*count)++;
	victim->key = *k;
	victim->used = 1;
	victim->last_used = ++fp->tick;
	return victim;
}

static struct vm_fp_flow *flow_find(struct vm_fp *fp, const struct flow_key *k)
{
	return slot_find(fp, fp->flows, sizeof(*fp->flows), fp->flows_cap, k);
}

static struct vm_fp_flow *flow_put(struct vm_fp *fp, const struct flow_key *k, const struct flow_val *v)
{
	struct vm_fp_flow *f = slot_put(fp, fp->flows, sizeof(*fp->flows), fp->flows_cap, k, &fp->nflows);
	f->val = *v;
	return f;
}

uint32_t vm_fp_flow_hash(const struct flow_key *k)
{
	return hash_key(k);
}

uint32_t vm_fp_flow_count(const struct vm_fp *fp)
{
	return __atomic_load_n(&fp->nflows, __ATOMIC_RELAXED);
}

int vm_fp_flow_drop(struct vm_fp *fp, const struct flow_key *k)
{
	struct vm_fp_flow *f = flow_find(fp, k);
	if (!f)
		return -1;
	f->s.used = 0;
	fp->nflows--;
	return 0;
}

static const struct vm_fp_neigh *neigh_get(struct vm_fp *fp, const uint8_t *addr)
{
	for (int i = 0; i < fp->c->nneigh; i++)
		if (!memcmp(fp->c->neigh[i].addr, addr, 16))
			return &fp->c->neigh[i];
	return NULL;
}

/* The cookie's time counter (as gw_cookie_tnow in bpf/lib/gw_logic.h). */
static uint32_t cookie_now(const struct vm_fp *fp, uint64_t tai_ns)
{
	return (uint32_t)(tai_ns / 1000000000ULL) / (fp->c->cfg.cookie_window_s ? fp->c->cfg.cookie_window_s : 64);
}

/* ---------- replies (as reply_prepare, send_synack and refuse in BPF) ---------- */

/* A fatal TLS alert, unrecognized_name (RFC 6066), in a TLS 1.2 record. */
static const uint8_t TLS_ALERT[7] = { 0x15, 3, 3, 0, 2, 2, 112 };

static uint8_t *reply_prepare(uint8_t *f, uint32_t *len, const struct vm_pkt *p, uint32_t l4_len)
{
	uint8_t mac[6], *ip = f + ETH_HLEN, *t;
	memcpy(mac, f, 6);
	memcpy(f, f + 6, 6);
	memcpy(f + 6, mac, 6);
	if (p->family == VM_AF_INET) {
		uint8_t a[4];
		memcpy(a, ip + 12, 4);
		memcpy(ip + 12, ip + 16, 4);
		memcpy(ip + 16, a, 4);
		ip[1] = 0;
		put16(ip + 2, 20 + l4_len);
		put16(ip + 4, 0);
		put16(ip + 6, 0x4000);
		ip[8] = 64;
		ip4_csum(ip);
	} else {
		uint8_t a[16];
		memcpy(a, ip + 8, 16);
		memcpy(ip + 8, ip + 24, 16);
		memcpy(ip + 24, a, 16);
		put32(ip, 0x60000000);
		put16(ip + 4, l4_len);
		ip[7] = 64;
	}
	t = ip + p->l3_len;
	uint8_t port[2];
	memcpy(port, t, 2);
	memcpy(t, t + 2, 2);
	memcpy(t + 2, port, 2);
	*len = ETH_HLEN + p->l3_len + l4_len;
	return t;
}

static enum vm_fp_verdict synack(struct vm_fp *fp, uint8_t *f, uint32_t *len, const struct vm_pkt *p, uint64_t tai_ns)
{
	struct vm_tcpopts o;
	struct vm_cookie_opts co;
	struct vm_cookie_in cin = { 0 };

	if (parse_opts(f + p->l4_off + 20, p->tcp_len - 20, &o) < 0 || p->payload_len ||
	    (p->flags & (T_ACK | T_RST | T_FIN))) {
		fp->st.malformed++;
		return VM_FP_DROP;
	}
	co.mss = o.mss ? o.mss : 536;
	co.wscale = o.wscale;
	co.sack_ok = o.sack_ok;
	co.ts_ok = o.ts_ok;
	memcpy(cin.saddr, p->saddr, 16);
	memcpy(cin.daddr, p->daddr, 16);
	cin.sport = p->sport;
	cin.dport = p->dport;
	cin.client_isn = p->seq;
	uint32_t tnow = cookie_now(fp, tai_ns);
	uint32_t cookie = vm_cookie_make(fp->c->sec.cur, &cin, tnow, &co);
	uint32_t tsval = (uint32_t)(tai_ns / 1000000ULL);
	uint16_t mss = p->family == VM_AF_INET ? fp->c->cfg.mss4 : fp->c->cfg.mss6;
	uint8_t *t = reply_prepare(f, len, p, 40), *op = t + 20;
	put32(t + 4, cookie);
	put32(t + 8, p->seq + 1);
	t[12] = 10 << 4;
	t[13] = T_SYN | T_ACK;
	put16(t + 14, 65535);
	put16(t + 18, 0);
	/* MSS | SACK_PERM or NOP NOP | TS or 10 NOP | NOP | WS or 3 NOP */
	op[0] = 2; op[1] = 4; put16(op + 2, mss);
	if (o.sack_ok) { op[4] = 4; op[5] = 2; } else { op[4] = op[5] = 1; }
	if (o.ts_ok) { op[6] = 8; op[7] = 10; put32(op + 8, tsval); put32(op + 12, o.tsval); }
	else memset(op + 6, 1, 10);
	op[16] = 1;
	if (o.wscale != 0xff) { op[17] = 3; op[18] = 3; op[19] = fp->c->cfg.wscale; }
	else { op[17] = op[18] = op[19] = 1; }
	tcp_csum(f + ETH_HLEN, p->family == VM_AF_INET6, t, 40);
	fp->st.syn_cookie_sent++;
	return VM_FP_TX;
}

/* A bare segment to the client (as reply_bare): a refusal, or the ACK of a
 * FIN that closes a refused connection. */
static enum vm_fp_verdict reply_bare(uint8_t *f, uint32_t *len, const struct vm_pkt *p, uint32_t seq, uint32_t ack,
				     uint8_t flags, int alert)
{
	uint32_t plen = alert ? 7 : 0;
	uint8_t *t = reply_prepare(f, len, p, 20 + plen);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, (flags & T_RST) ? 0 : 65535);
	put16(t + 18, 0);
	if (alert)
		memcpy(t + 20, TLS_ALERT, 7);
	tcp_csum(f + ETH_HLEN, p->family == VM_AF_INET6, t, 20 + plen);
	return VM_FP_TX;
}

static enum vm_fp_verdict refuse(struct vm_fp *fp, uint8_t *f, uint32_t *len, const struct vm_pkt *p,
				 const struct vip_val *vip)
{
	uint32_t ack = p->seq + p->payload_len + ((p->flags & T_FIN) ? 1 : 0);

	if (vip->refuse == VM_REFUSE_ALERT) {
		fp->st.refused_alert++;
		return reply_bare(f, len, p, p->ack, ack, T_ACK | T_PSH | T_FIN, 1);
	}
	fp->st.refused_rst++;
	return reply_bare(f, len, p, p->ack, ack, T_RST | T_ACK, 0);
}

/* ---------- the mesh (as vm_xdp_encap and vm_xdp_fib_send) ---------- */

/* Ethernet, outer IP, UDP, Geneve (and the handoff option) in front of an
 * inner IP packet of inner bytes, at f; returns the bytes written. */
static uint32_t write_encap(struct vm_fp *fp, uint8_t *f, const struct vm_fp_neigh *nb, const struct flow_val *fv,
			    uint16_t sport, uint16_t proto, uint32_t inner, int with_handoff)
{
	int v4 = fv->node_family == VM_AF_INET;
	uint32_t push = vm_geneve_push_len(fv->node_family, with_handoff);

	memcpy(f, nb->mac, 6);
	memcpy(f + 6, fp->c->port_mac[nb->port & 7], 6);
	/* the buffer holds them: the caller made room for push bytes */
	vm_geneve_write(f, f + ETH_HLEN + push, fv->node_family, v4 ? fp->c->cfg.underlay4 : fp->c->cfg.underlay6,
			fv->node, proto, inner, with_handoff ? &fv->handoff : NULL, sport);
	return ETH_HLEN + push;
}

static enum vm_fp_verdict forward(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				  const struct vm_pkt *p, const struct flow_val *fv, int with_handoff,
				  uint16_t *out_port)
{
	int v4 = fv->node_family == VM_AF_INET;
	uint32_t push = (v4 ? 20 : 40) + 16 + (with_handoff ? VM_HANDOFF_OPT_LEN : 0);
	uint32_t inner = *len - ETH_HLEN;

	if (v4 ? !fp->c->cfg.has_underlay4 : !fp->c->cfg.has_underlay6) {
		fp->st.no_config++;
		return VM_FP_DROP;
	}
	const struct vm_fp_neigh *nb = neigh_get(fp, fv->node);
	if (nb && ETH_HLEN + push + inner > 1514) {   /* the FIB's MTU check */
		fp->st.mesh_mtu++;
		return VM_FP_DROP;
	}
	if (!nb) {
		fp->st.no_neigh++;
		return VM_FP_DROP;
	}
	*pkt -= push;
	write_encap(fp, *pkt, nb, fv, vm_flow_port(p->saddr, p->daddr, p->sport, p->dport),
		    p->family == VM_AF_INET ? VM_GENEVE_PROTO_IP4 : VM_GENEVE_PROTO_IP6, inner, with_handoff);
	*len += push;
	*out_port = nb->port;
	return nb->port == in_port ? VM_FP_TX : VM_FP_FWD;
}

/* ---------- the hello: route, flow (as gw_route_hello, gw_flow_init) ---------- */

#define FP_NO_ROUTE 100
/* Parses the hello in fp->hello_buf and finds its route: the exact name,
 * then the one-label wildcard.  VM_HELLO_OK with *r, or the reason. */
static int route_hello(struct vm_fp *fp, uint32_t len, const struct route_val **r)
{
	struct vm_hello h;
	struct vm_hello_state hs;

	memset(&h, 0, sizeof(h));
	int rc = vm_hello_parse(fp->hello_buf, len, &h, &hs);
	fp->hello_len = h.hello_len;
	if (rc != VM_HELLO_OK)
		return rc;
	*r = route_get(fp, h.name);
	if (!*r) {
		char wk[VM_NAME_MAX] = { 0 };
		if (vm_wildcard_key(&h, wk))
			*r = route_get(fp, wk);
	}
	return *r ? VM_HELLO_OK : FP_NO_ROUTE;
}

/* Refused by its name but not whole in have bytes (as gw_hello_cut). */
static int hello_cut(const struct vm_fp *fp, int rc, uint32_t have)
{
	return (rc == VM_HELLO_BAD_NAME || rc == FP_NO_ROUTE) && fp->hello_len && 5 + fp->hello_len > have;
}

static void count_refusal(struct vm_fp *fp, int rc)
{
	switch (rc) {
	case VM_HELLO_NO_SNI: fp->st.no_sni++; break;
	case VM_HELLO_BAD_NAME: fp->st.bad_name++; break;
	case FP_NO_ROUTE: fp->st.no_route++; break;
	default: fp->st.parse_error++; break;
	}
}

static void flow_init(struct vm_fp *fp, struct flow_val *v, const struct route_val *r, uint32_t client_isn,
		      uint32_t cookie, const struct vm_tcpopts *o, const uint8_t *client_mac, const uint8_t *vip_mac,
		      uint16_t port, uint64_t tai_ns)
{
	struct vm_cookie_opts co;

	vm_cookie_decode(cookie, &co);
	memset(v, 0, sizeof(*v));
	v->vm_id = r->vm_id;
	v->node_family = r->node_family;
	memcpy(v->node, r->node, 16);
	v->client_isn = client_isn;
	v->handoff.vm_id_be = htonl(v->vm_id);
	v->handoff.client_isn_be = htonl(client_isn);
	v->handoff.cookie_isn_be = htonl(cookie);
	v->handoff.gw_tsval_be = htonl(co.ts_ok && o->ts_ok ? o->tsecr : 0);
	v->handoff.mss_be = htons(co.mss);
	v->handoff.client_wscale = co.wscale;
	v->handoff.gw_wscale = co.wscale != 0xff ? fp->c->cfg.wscale : 0xff;
	v->handoff.flags = (co.sack_ok ? VM_HO_SACK_OK : 0) | (co.ts_ok && o->ts_ok ? VM_HO_TS_OK : 0);
	memcpy(v->client_mac, client_mac, 6);
	memcpy(v->vip_mac, vip_mac, 6);
	v->client_ifindex = port;
	v->created_ns = tai_ns;
}

static int cookie_valid(struct vm_fp *fp, const struct vm_pkt *p, uint32_t cookie, uint64_t tai_ns)
{
	struct vm_cookie_in cin = { 0 };
	uint32_t tnow = cookie_now(fp, tai_ns);

	memcpy(cin.saddr, p->saddr, 16);
	memcpy(cin.daddr, p->daddr, 16);
	cin.sport = p->sport;
	cin.dport = p->dport;
	cin.client_isn = p->seq - 1;
	return vm_cookie_check_key(fp->c->sec.cur, &cin, cookie, tnow) ||
	       (fp->c->sec.has_prev && vm_cookie_check_key(fp->c->sec.prev, &cin, cookie, tnow));
}

/* ---------- hello reassembly (as bpf/gw_asm.bpf.c) ---------- */

#define ASM_MASK (VM_ASM_BYTES - 1)
#define REPLY_RST   1
#define REPLY_ALERT 2
#define REPLY_ACK   3

/* An answer to the client, in place (as reply_tc): a refusal, or an ACK
 * for the hello bytes held.  With want_ts, a timestamp option. */
static enum vm_fp_verdict reply_asm(uint8_t *f, uint32_t *len, const struct vm_pkt *p, int kind, uint32_t ack,
				    int want_ts, uint32_t tsval, uint32_t tsecr)
{
	uint32_t plen = kind == REPLY_ALERT ? 7 : 0, olen = want_ts ? 12 : 0;
	uint8_t *t = reply_prepare(f, len, p, 20 + olen + plen);

	memset(t + 4, 0, 36);              /* ports stay, swapped */
	put32(t + 4, p->ack);
	put32(t + 8, ack);
	t[12] = ((20 + olen) / 4) << 4;
	t[13] = kind == REPLY_ALERT ? (T_ACK | T_PSH | T_FIN) : kind == REPLY_RST ? (T_RST | T_ACK) : T_ACK;
	put16(t + 14, kind == REPLY_RST ? 0 : 65535);
	uint8_t *o = t + 20;
	if (want_ts) {
		o[0] = 1; o[1] = 1; o[2] = 8; o[3] = 10;
		put32(o + 4, tsval);
		put32(o + 8, tsecr);
		o += 12;
	}
	if (kind == REPLY_ALERT) {
		memcpy(o, TLS_ALERT, 7);
	}
	tcp_csum(f + ETH_HLEN, p->family == VM_AF_INET6, t, 20 + olen + plen);
	return VM_FP_TX;
}

/* ACKs what is held, if anything is and the client's options parse. */
static enum vm_fp_verdict ack_held(uint8_t *f, uint32_t *len, const struct vm_pkt *p, const struct asm_val *a)
{
	struct vm_tcpopts o;
	if (!a->have || parse_opts(f + p->l4_off + 20, p->tcp_len - 20, &o) < 0)
		return VM_FP_DROP;
	return reply_asm(f, len, p, REPLY_ACK, a->client_isn + 1 + a->have, o.ts_ok, o.tsecr, o.tsval);
}

static int store_seg(struct asm_val *a, const uint8_t *f, const struct vm_pkt *p, uint32_t off)
{
	uint32_t n = a->nseg, hlen = p->l3_len + p->tcp_len, plen = p->payload_len;

	if (n >= VM_ASM_SEGS || hlen < 40 || hlen > VM_ASM_HDR || plen > VM_ASM_SEG_MAX ||
	    off + plen > VM_ASM_BYTES)
		return -1;
	struct asm_seg *sg = &a->seg[n];
	memcpy(sg->hdr, f + ETH_HLEN, hlen);
	memcpy(&a->payload[off & ASM_MASK], f + p->l4_off + p->tcp_len, plen);
	sg->off = off;
	sg->len = plen;
	sg->hlen = hlen;
	a->nseg = n + 1;
	return 0;
}

static void merge_early(struct vm_fp *fp, struct asm_val *a, const struct flow_key *k)
{
	struct vm_fp_early *ee = slot_find(fp, fp->early_tab, sizeof(*fp->early_tab), VM_FP_ASM_MAX, k);
	if (!ee)
		return;
	const struct asm_early *e = &ee->e;
	uint32_t n = a->nseg, off = e->seq - (a->client_isn + 1);
	if (e->ack == a->cookie_isn + 1 && n < VM_ASM_SEGS && off < VM_ASM_BYTES && e->len <= VM_ASM_SEG_MAX &&
	    off + e->len <= VM_ASM_BYTES && e->hlen >= 40 && e->hlen <= VM_ASM_HDR) {
		struct asm_seg *sg = &a->seg[n];
		memcpy(sg->hdr, e->hdr, e->hlen);
		memcpy(&a->payload[off & ASM_MASK], e->payload, e->len);
		sg->off = off;
		sg->len = e->len;
		sg->hlen = e->hlen;
		a->nseg = n + 1;
	}
	ee->s.used = 0;
}

/* The contiguous prefix, its TLS records joined into one in fp->flat;
 * returns its length with the record header, or -1 when it is not TLS. */
static int flatten(struct vm_fp *fp, struct asm_val *a)
{
	for (uint32_t j = 0; j < VM_ASM_SEGS * VM_ASM_SEGS; j++) {
		const struct asm_seg *sg = &a->seg[j % VM_ASM_SEGS];
		if (j % VM_ASM_SEGS < a->nseg && sg->off <= a->have && sg->off + sg->len > a->have)
			a->have = sg->off + sg->len;
	}
	uint64_t r = 0, have = a->have, out = 5;
	for (int k = 0; k < 32; k++) {
		if (r + 5 > have)
			break;
		uint64_t rm = r & ASM_MASK;
		if (a->payload[rm] != 0x16)
			return -1;
		uint64_t rlen = ((uint64_t)a->payload[(rm + 3) & ASM_MASK] << 8) | a->payload[(rm + 4) & ASM_MASK];
		uint64_t n = have - r - 5;
		if (n > rlen)
			n = rlen;
		if (n > VM_HELLO_BUF)
			break;
		memcpy(&fp->flat[out & (VM_HELLO_BUF - 1)], &a->payload[(rm + 5) & ASM_MASK], n);
		out += n;
		r += 5 + rlen;
		if (n < rlen)
			break;
	}
	if (have < 1)
		return -1;
	uint32_t body = out - 5, rl = body > VM_TLS_MAX_RECORD + 256 ? VM_TLS_MAX_RECORD + 256 : body;
	fp->flat[0] = 0x16;
	fp->flat[1] = 3;
	fp->flat[2] = 1;
	fp->flat[3] = rl >> 8;
	fp->flat[4] = rl & 0xff;
	return (int)out;
}

/* Every kept segment to the node, each in Geneve with the handoff option. */
static void emit_all(struct vm_fp *fp, const struct vm_pkt *p, const struct asm_val *a, const struct flow_val *fv)
{
	int v4 = fv->node_family == VM_AF_INET;

	if (v4 ? !fp->c->cfg.has_underlay4 : !fp->c->cfg.has_underlay6)
		return;
	const struct vm_fp_neigh *nb = neigh_get(fp, fv->node);
	if (!nb) {
		fp->st.no_neigh++;
		return;
	}
	uint16_t sport = vm_flow_port(p->saddr, p->daddr, p->sport, p->dport);
	for (uint32_t i = 0; i < a->nseg && i < VM_ASM_SEGS; i++) {
		const struct asm_seg *sg = &a->seg[i];
		if (sg->hlen < 40 || sg->hlen > VM_ASM_HDR || sg->len > VM_ASM_SEG_MAX)
			return;
		uint32_t inner = sg->hlen + sg->len;
		uint16_t proto = (sg->hdr[0] >> 4) == 6 ? VM_GENEVE_PROTO_IP6 : VM_GENEVE_PROTO_IP4;
		uint32_t hdrlen = write_encap(fp, fp->frame, nb, fv, sport, proto, inner, 1);
		memcpy(fp->frame + hdrlen, sg->hdr, sg->hlen);
		memcpy(fp->frame + hdrlen + sg->hlen, &a->payload[sg->off & ASM_MASK], sg->len);
		if (!fp->emit) {
			fp->st.encap_fail++;
			return;
		}
		fp->emit(fp->emit_arg, nb->port, fp->frame, hdrlen + inner);
		fp->st.asm_sent++;
	}
}

/* A data segment XDP would hand to gw_asm: a hello that needs more than its
 * first segment, or a segment with no flow whose cookie does not check (a
 * later segment, possibly before the first). */
static enum vm_fp_verdict asm_in(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				 const struct vm_pkt *p, const struct vip_val *vip, const struct flow_key *k, uint64_t tai_ns)
{
	uint8_t *f = *pkt;
	int fresh = 0;

	if (!p->payload_len || (p->flags & (T_SYN | T_RST))) {
		fp->st.malformed++;
		return VM_FP_DROP;
	}
	struct vm_fp_flow *fl = flow_find(fp, k);
	struct vm_fp_asm *as = slot_find(fp, fp->asm_tab, sizeof(*fp->asm_tab), VM_FP_ASM_MAX, k);
	if (fl) {
		if (fl->val.held_len && as && as->a.routed && as->a.client_isn == fl->val.client_isn) {
			/* held hello bytes come again: every held segment to the node */
			fp->st.hello_resent++;
			emit_all(fp, p, &as->a, &fl->val);
			return VM_FP_DROP;
		}
		if (fl->val.held_len) {
			fp->st.held_lost++;
			fl->val.held_len = 0;
			return VM_FP_DROP;
		}
		fp->st.asm_late++;
		return VM_FP_DROP;
	}
	if (as && as->a.routed) {
		as->s.used = 0;
		as = NULL;
	}
	if (as && tai_ns - as->a.first_ns > VM_ASM_TIMEOUT_NS) {
		fp->st.asm_timeout++;
		as->s.used = 0;
		as = NULL;
	}
	if (!as) {
		if (!cookie_valid(fp, p, p->ack - 1, tai_ns)) {
			/* maybe a later segment that overtook the first: one per flow */
			uint32_t hl = p->l3_len + p->tcp_len, pl = p->payload_len;
			if (hl < 40 || hl > VM_ASM_HDR || pl < 1 || pl > VM_ASM_SEG_MAX) {
				fp->st.asm_overflow++;
				return VM_FP_DROP;
			}
			struct vm_fp_early *ee = slot_put(fp, fp->early_tab, sizeof(*fp->early_tab), VM_FP_ASM_MAX, k, NULL);
			memcpy(ee->e.hdr, f + ETH_HLEN, hl);
			memcpy(ee->e.payload, f + p->l4_off + p->tcp_len, pl);
			ee->e.seq = p->seq;
			ee->e.ack = p->ack;
			ee->e.len = pl;
			ee->e.hlen = hl;
			ee->e.seen_ns = tai_ns;
			fp->st.asm_early++;
			return VM_FP_DROP;
		}
		as = slot_put(fp, fp->asm_tab, sizeof(*fp->asm_tab), VM_FP_ASM_MAX, k, NULL);
		as->a.client_isn = p->seq - 1;
		as->a.cookie_isn = p->ack - 1;
		as->a.first_ns = tai_ns;
		as->a.nseg = 0;
		as->a.have = 0;
		as->a.routed = 0;
		fresh = 1;
	} else if (p->ack != as->a.cookie_isn + 1) {
		fp->st.bad_cookie++;
		return VM_FP_DROP;
	}
	struct asm_val *a = &as->a;
	uint32_t off = p->seq - (a->client_isn + 1);
	for (uint32_t i = 0; i < a->nseg && i < VM_ASM_SEGS; i++)
		if (a->seg[i].off == off) {
			/* the client resends: our ACK was lost; say it again */
			fp->st.asm_dup++;
			return ack_held(f, len, p, a);
		}
	if (store_seg(a, f, p, off)) {
		uint32_t ack = a->client_isn + 1 + a->have;
		fp->st.asm_overflow++;
		fp->st.refused_rst++;
		as->s.used = 0;
		return reply_asm(f, len, p, REPLY_RST, ack, 0, 0, 0);
	}
	if (fresh)
		merge_early(fp, a, k);

	int out = flatten(fp, a), rc;
	const struct route_val *r = NULL;
	if (out < 0) {
		rc = VM_HELLO_NOT_TLS;
	} else {
		memcpy(fp->hello_buf, fp->flat, VM_HELLO_BUF);
		rc = route_hello(fp, out > VM_HELLO_BUF ? VM_HELLO_BUF : (uint32_t)out, &r);
	}
	if (rc == VM_HELLO_PARTIAL) {
		fp->st.asm_stored++;
		return ack_held(f, len, p, a);
	}
	if (rc != VM_HELLO_OK) {
		count_refusal(fp, rc);
		uint32_t ack = a->client_isn + 1 + a->have;
		as->s.used = 0;
		if (vip->refuse == VM_REFUSE_ALERT) {
			fp->st.refused_alert++;
			return reply_asm(f, len, p, REPLY_ALERT, ack, 0, 0, 0);
		}
		fp->st.refused_rst++;
		return reply_asm(f, len, p, REPLY_RST, ack, 0, 0, 0);
	}
	/* routed: the flow, then every kept segment to the node */
	struct vm_tcpopts o;
	if (parse_opts(f + p->l4_off + 20, p->tcp_len - 20, &o) < 0) {
		fp->st.malformed++;
		return VM_FP_DROP;
	}
	struct flow_val v;
	flow_init(fp, &v, r, a->client_isn, a->cookie_isn, &o, f + 6, f, in_port, tai_ns);
	v.held_len = a->have;
	a->routed = 1;
	a->first_ns = tai_ns;
	fl = flow_put(fp, k, &v);
	fp->st.asm_routed++;
	fp->st.hello_routed++;
	emit_all(fp, p, a, &fl->val);
	return VM_FP_DROP;
}

/* ---------- gw_ingress ---------- */

enum vm_fp_verdict vm_fp_ingress(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				 uint64_t tai_ns, uint16_t *out_port)
{
	uint8_t *f = *pkt;
	struct vm_pkt p;
	struct flow_key k;

	*out_port = in_port;
	if (*len < ETH_HLEN)
		return VM_FP_PASS;
	int rc = parse_ip_tcp(f, *len, ETH_HLEN, &p);
	if (rc == VM_PARSE_NOT_IP || rc == VM_PARSE_NOT_TCP) {
		fp->st.pass_not_tcp++;
		return VM_FP_PASS;
	}
	if (rc != VM_PARSE_OK) {
		if (rc == VM_PARSE_TRUNCATED && p.family && p.dport && vip_get(fp, &p)) {
			fp->st.malformed++;
			return VM_FP_DROP;
		}
		if (rc == VM_PARSE_FRAGMENT)
			fp->st.fragment++;
		else if (rc == VM_PARSE_IP_OPTIONS)
			fp->st.ip_options++;
		return VM_FP_PASS;
	}
	/* the flow first, the VIP and the rest only on a miss (as gw_ingress) */
	key_of(&p, 0, &k);
	struct vm_fp_flow *fl = flow_find(fp, &k);
	if (fl && (p.flags & (T_SYN | T_ACK)) != T_SYN) {
		if (p.flags & T_RST) {
			enum vm_fp_verdict v = forward(fp, in_port, pkt, len, &p, &fl->val, 0, out_port);
			fl->s.used = 0;
			fp->nflows--;
			fp->st.flow_reset++;
			return v;
		}
		if (fl->val.held_len && p.payload_len && p.seq - (fl->val.client_isn + 1) < fl->val.held_len) {
			fp->st.hello_retransmit++;
			/* gw_asm's turn: a VIP gone meanwhile leaves it to the kernel */
			const struct vip_val *hv = vip_get(fp, &p);
			if (!hv)
				return VM_FP_PASS;
			return asm_in(fp, in_port, pkt, len, &p, hv, &k, tai_ns);
		}
		if ((p.flags & T_FIN) && vm_fin_seen(&fl->val.fin, VM_FIN_CLIENT))
			fp->st.flow_closed++;
		int handoff = p.payload_len && p.seq - (fl->val.client_isn + 1) < VM_ASM_BYTES;
		if (p.payload_len && p.seq == fl->val.client_isn + 1)
			fp->st.hello_retransmit++;
		else
			fp->st.fwd_established++;
		return forward(fp, in_port, pkt, len, &p, &fl->val, handoff, out_port);
	}
	const struct vip_val *vip = vip_get(fp, &p);
	if (!vip) {
		fp->st.pass_not_vip++;
		return VM_FP_PASS;
	}
	if (!fp->c->sec.epoch) {
		fp->st.no_config++;
		return VM_FP_DROP;
	}
	if (fl) {
		/* a new connection on the tuple of an old one */
		fl->s.used = 0;
		fp->nflows--;
		return synack(fp, f, len, &p, tai_ns);
	}
	if (p.flags & T_RST) {
		fp->st.rst_no_flow++;
		return VM_FP_DROP;
	}
	if ((p.flags & (T_SYN | T_ACK)) == T_SYN)
		return synack(fp, f, len, &p, tai_ns);
	if ((p.flags & (T_SYN | T_ACK)) != T_ACK) {
		fp->st.bad_cookie++;
		return VM_FP_DROP;
	}
	uint32_t cookie = p.ack - 1;
	if (!cookie_valid(fp, &p, cookie, tai_ns)) {
		if (p.payload_len) {
			/* a later hello segment, or one that came before the first */
			fp->st.asm_handed++;
			return asm_in(fp, in_port, pkt, len, &p, vip, &k, tai_ns);
		}
		if (p.flags & T_FIN) {
			fp->st.fin_answered++;
			return reply_bare(f, len, &p, p.ack, p.seq + 1, T_ACK, 0);
		}
		fp->st.bad_cookie++;
		return VM_FP_DROP;
	}
	if (!p.payload_len) {
		fp->st.cookie_ack++;
		return VM_FP_DROP;
	}

	/* the ClientHello */
	uint32_t hl = p.payload_len > VM_HELLO_BUF ? VM_HELLO_BUF : p.payload_len;
	memcpy(fp->hello_buf, f + p.l4_off + p.tcp_len, hl);
	const struct route_val *r = NULL;
	int hrc = route_hello(fp, hl, &r);
	if (hrc == VM_HELLO_PARTIAL || hello_cut(fp, hrc, p.payload_len)) {
		fp->st.hello_partial++;
		return asm_in(fp, in_port, pkt, len, &p, vip, &k, tai_ns);
	}
	if (hrc != VM_HELLO_OK) {
		count_refusal(fp, hrc);
		return refuse(fp, f, len, &p, vip);
	}
	struct vm_tcpopts o;
	if (parse_opts(f + p.l4_off + 20, p.tcp_len - 20, &o) < 0) {
		fp->st.malformed++;
		return VM_FP_DROP;
	}
	struct flow_val v;
	flow_init(fp, &v, r, p.seq - 1, cookie, &o, f + 6, f, in_port, tai_ns);
	fl = flow_put(fp, &k, &v);
	fp->st.hello_routed++;
	return forward(fp, in_port, pkt, len, &p, &fl->val, 1, out_port);
}

/* ---------- gw_return ---------- */

enum vm_fp_verdict vm_fp_return(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				uint16_t *out_port)
{
	uint8_t *f = *pkt;
	uint32_t n = *len;
	struct fp_frame fr = { f, n };
	struct vm_mesh_in m;

	memset(&m, 0, sizeof(m));
	int mrc = vm_mesh_parse(&fr, f, f + n, fp->c->cfg.underlay4, fp->c->cfg.has_underlay4,
				fp->c->cfg.underlay6, fp->c->cfg.has_underlay6, &m);
	if (mrc == VM_MESH_NOT_OURS)
		goto pass;
	if (mrc != VM_MESH_OK) {
		fp->st.ret_malformed++;
		return VM_FP_DROP;
	}
	uint32_t strip = m.strip;
	uint8_t *nf = f + strip;
	put16(nf + 12, m.ifamily == VM_AF_INET ? 0x0800 : 0x86dd);
	struct vm_pkt p;
	if (parse_ip_tcp(nf, n - strip, ETH_HLEN, &p) != VM_PARSE_OK) {
		fp->st.ret_malformed++;
		return VM_FP_DROP;
	}
	struct flow_key k;
	key_of(&p, 1, &k);
	struct vm_fp_flow *fl = flow_find(fp, &k);
	if (!fl) {
		fp->st.ret_no_flow++;
		return VM_FP_DROP;
	}
	struct flow_val *v = &fl->val;
	uint32_t acked = p.ack - (v->client_isn + 1);
	if (v->held_len && (p.flags & T_ACK) && acked >= v->held_len && acked <= VM_ASM_BYTES + VM_ASM_SEG_MAX) {
		v->held_len = 0;
		struct vm_fp_asm *as = slot_find(fp, fp->asm_tab, sizeof(*fp->asm_tab), VM_FP_ASM_MAX, &k);
		if (as)
			as->s.used = 0;
		fp->st.held_released++;
	}
	memcpy(nf, v->client_mac, 6);
	memcpy(nf + 6, v->vip_mac, 6);
	*pkt = nf;
	*len = n - strip;
	*out_port = v->client_ifindex;
	if (p.flags & T_RST) {
		fl->s.used = 0;
		fp->nflows--;
		fp->st.flow_reset++;
	} else if ((p.flags & T_FIN) && vm_fin_seen(&v->fin, VM_FIN_VM)) {
		fp->st.flow_closed++;
	}
	fp->st.ret_forwarded++;
	return VM_FP_FWD;
pass:
	fp->st.ret_pass++;
	return VM_FP_PASS;
}

/* ---------- which flow a packet belongs to (lcore steering) ---------- */

int vm_fp_ingress_key(const uint8_t *f, uint32_t len, struct flow_key *k)
{
	struct vm_pkt p;
	if (len < ETH_HLEN || parse_ip_tcp(f, len, ETH_HLEN, &p) != VM_PARSE_OK)
		return -1;
	key_of(&p, 0, k);
	return 0;
}

int vm_fp_return_key(const uint8_t *f, uint32_t n, struct flow_key *k)
{
	uint8_t inner[ETH_HLEN + 60];
	uint32_t ol3;
	struct vm_pkt p;

	if (n < ETH_HLEN + 20)
		return -1;
	const uint8_t *ip = f + ETH_HLEN;
	uint16_t et = get16(f + 12);
	if (et == 0x0800 && ip[9] == 17 && (ip[0] & 15) == 5)
		ol3 = 20;
	else if (et == 0x86dd && n >= ETH_HLEN + 40 && ip[6] == 17)
		ol3 = 40;
	else
		return -1;
	if (n < ETH_HLEN + ol3 + 16 || get16(ip + ol3 + 2) != VM_GENEVE_PORT)
		return -1;
	const uint8_t *g = ip + ol3 + 8;
	uint16_t proto = get16(g + 2);
	uint32_t strip = ol3 + 16 + (g[0] & 0x3f) * 4;
	if (proto != VM_GENEVE_PROTO_IP4 && proto != VM_GENEVE_PROTO_IP6)
		return -1;
	/* the inner IP and TCP headers, behind a made-up Ethernet header */
	uint32_t have = n - ETH_HLEN - strip < sizeof(inner) - ETH_HLEN ? n - ETH_HLEN - strip : sizeof(inner) - ETH_HLEN;
	if (ETH_HLEN + strip >= n)
		return -1;
	memset(inner, 0, ETH_HLEN);
	put16(inner + 12, proto == VM_GENEVE_PROTO_IP4 ? 0x0800 : 0x86dd);
	memcpy(inner + ETH_HLEN, f + ETH_HLEN + strip, have);
	if (parse_ip_tcp(inner, ETH_HLEN + have, ETH_HLEN, &p) != VM_PARSE_OK && p.family == 0)
		return -1;
	if (!p.sport && !p.dport)
		return -1;
	key_of(&p, 1, k);
	return 0;
}
