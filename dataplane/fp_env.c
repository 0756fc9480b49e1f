// SPDX-License-Identifier: Apache-2.0
/* The gateway in userspace, on packet buffers: the environment the packet
 * library (include/veil/gw_path.h, gw_asm.h, gw_ret.h) runs in here, as the
 * XDP and TC programs are its environment in the kernel.  What is here is
 * what differs by nature: the tables (flows, reassembly, routes, VIPs,
 * neighbours) and how a frame grows, shrinks and leaves; the decisions, the
 * bytes and the counters are the library's.  See fastpath.h. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "fastpath.h"
#include "veil/cookie.h"
#include "veil/flowkey.h"
#include "veil/hello.h"
#include "veil/pkt.h"
#include "veil/route.h"

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

#define ETH_HLEN VM_ETH_HLEN


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

#if defined(__x86_64__)
/* crc32 is SSE4.2's: DPDK builds for it (-march=corei7), but libveil also
 * serves veilctl replay and the tests, built for plain x86-64.  Asked once;
 * the tables live in one process, so one choice holds for all of them. */
int vm_fp_has_crc32;
__attribute__((constructor)) static void fp_cpu_probe(void)
{
	__builtin_cpu_init();
	vm_fp_has_crc32 = __builtin_cpu_supports("sse4.2");
}
#endif

static void *heap_zalloc(size_t size, size_t align, void *arg)
{
	void *p = aligned_alloc(align, (size + align - 1) & ~(align - 1));
	if (p)
		memset(p, 0, size);
	return p;
}

static void heap_free(void *p, void *arg)
{
	free(p);
}

const struct vm_fp_mem vm_fp_heap = { heap_zalloc, heap_free, NULL };

/* The flows' key seed, one per process: every lcore's tables and the
 * steering between them key flows alike.  Random at the first
 * vm_fp_init_mem unless set before (the tests take the kernel's). */
static struct flow_seed fp_seed;

void vm_fp_seed_set(const struct flow_seed *s)
{
	fp_seed = *s;
}

const struct flow_seed *vm_fp_seed(void)
{
	return &fp_seed;
}

int vm_fp_init_mem(struct vm_fp *fp, uint32_t flows_cap, uint32_t hellos_cap, const struct vm_fp_mem *mem)
{
	uint32_t cap = 1024, acap = 64;
	if (!fp_seed.k[0] && !fp_seed.k[1]) {
		if (getrandom(fp_seed.k, sizeof(fp_seed.k), 0) != sizeof(fp_seed.k) ||
		    getrandom(&fp_seed.mul, sizeof(fp_seed.mul), 0) != sizeof(fp_seed.mul))
			return -1;
		fp_seed.fold = VM_FLOW_FOLD;
	}
	memset(fp, 0, sizeof(*fp));
	fp->mem = mem ? *mem : vm_fp_heap;
	while (cap < flows_cap)
		cap <<= 1;
	fp->flows_cap = cap;
	fp->flows = fp->mem.zalloc((size_t)cap * sizeof(*fp->flows), VM_FP_ALIGN, fp->mem.arg);
	while (acap < (hellos_cap ? hellos_cap : VM_FP_ASM_MAX) && acap < (1u << VM_ASM_SLOTS_BITS_MAX))
		acap <<= 1;
	fp->asm_cap = acap;
	fp->asm_tab = fp->mem.zalloc((size_t)acap * sizeof(*fp->asm_tab), VM_FP_ALIGN, fp->mem.arg);
	fp->early_tab = fp->mem.zalloc((size_t)acap * sizeof(*fp->early_tab), VM_FP_ALIGN, fp->mem.arg);
	fp->tomb_tab = fp->mem.zalloc((size_t)acap * sizeof(*fp->tomb_tab), VM_FP_ALIGN, fp->mem.arg);
	/* 16 bits a flow slot in each half, as flow_bits has for 131072 flows */
	fp->bits_log2 = 10;
	while (fp->bits_log2 < VM_FLOW_BITS_IDX_MAX && (4u << fp->bits_log2) < cap)
		fp->bits_log2++;
	fp->bits = fp->mem.zalloc(sizeof(*fp->bits) << fp->bits_log2, VM_FP_ALIGN, fp->mem.arg);
	fp->bits_clear_at = 1u << fp->bits_log2;   /* zeroed: nothing to clear before the first pass */
	if (fp->flows && fp->asm_tab && fp->early_tab && fp->tomb_tab && fp->bits)
		return 0;
	vm_fp_free(fp);
	return -1;
}

int vm_fp_init(struct vm_fp *fp, uint32_t flows_cap)
{
	return vm_fp_init_mem(fp, flows_cap, 0, NULL);
}

void vm_fp_free(struct vm_fp *fp)
{
	if (fp->mem.free) {
		fp->mem.free(fp->flows, fp->mem.arg);
		fp->mem.free(fp->asm_tab, fp->mem.arg);
		fp->mem.free(fp->early_tab, fp->mem.arg);
		fp->mem.free(fp->tomb_tab, fp->mem.arg);
		fp->mem.free(fp->bits, fp->mem.arg);
	}
	fp->flows = NULL;
	fp->asm_tab = NULL;
	fp->early_tab = NULL;
	fp->tomb_tab = NULL;
	fp->bits = NULL;
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
		uint32_t h = (uint32_t)vm_route_hash(nm) & (cap - 1);
		while (t[h].key.name[0])
			h = (h + 1) & (cap - 1);
		t[h] = g->routes[i];
	}
	memset(c->wild_lens, 0, sizeof(c->wild_lens));
	for (int i = 0; i < g->nroutes; i++) {
		__u32 w;
		__u64 bit;
		if (vm_route_wild_bit(g->routes[i].key.name, &w, &bit))
			c->wild_lens[w] |= bit;
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
	vm_fp_conf_neigh_set(c, NULL, 0);
}

int vm_fp_conf_neigh_set(struct vm_fp_conf *c, const struct vm_fp_neigh *nb, int n)
{
	struct vm_fp_neigh *t = NULL;
	uint16_t *idx = NULL;
	uint32_t cap = 0;
	int k = 0;

	_Static_assert(VM_FP_MAX_NEIGH < 65535, "neigh_idx holds an entry's index + 1 in 16 bits");
	if (n < 0 || n > VM_FP_MAX_NEIGH)
		return -1;
	if (n) {
		cap = 16;
		while (cap < 2 * (uint32_t)n)
			cap <<= 1;
		t = calloc((size_t)n, sizeof(*t));
		idx = calloc(cap, sizeof(*idx));
		if (!t || !idx) {
			free(t);
			free(idx);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			uint32_t h = vm_fp_neigh_slot(nb[i].addr, cap);
			while (idx[h] && memcmp(t[idx[h] - 1].addr, nb[i].addr, 16))
				h = (h + 1) & (cap - 1);
			if (idx[h])
				continue;   /* given before: that one holds */
			t[k] = nb[i];
			idx[h] = (uint16_t)++k;
		}
	}
	static uint32_t gens;
	uint32_t g;
	while (!(g = __atomic_add_fetch(&gens, 1, __ATOMIC_RELAXED)))
		;
	free(c->neigh);
	free(c->neigh_idx);
	c->neigh = t;
	c->neigh_idx = idx;
	c->neigh_cap = cap;
	c->nneigh = k;
	c->nh_gen = g;
	return 0;
}

/* The table is open addressing on the name's vm_route_hash, the routes
 * map's key in BPF: the hello's parse makes it as it writes the name, so a
 * hello's lookup hashes nothing more. */
static const struct route_val *conf_route(const struct vm_fp_conf *c, const char *name, uint32_t len, uint64_t hash)
{
	if (!c->routes)
		return NULL;
	uint32_t h = (uint32_t)hash & (c->routes_cap - 1);
	while (c->routes[h].key.name[0]) {
		/* names are NUL-padded to VM_NAME_MAX: the key is the len-byte
		 * name when its len-th byte is its end and its byte before that
		 * is not (a hello's name may hold NULs: a route's name followed
		 * by some is not that route, as in BPF, where the key's hash
		 * takes the length) */
		const char *k = c->routes[h].key.name;
		if (len && k[len - 1] && !memcmp(k, name, len) && (len >= VM_NAME_MAX || !k[len]))
			return &c->routes[h].val;
		h = (h + 1) & (c->routes_cap - 1);
	}
	return NULL;
}

const struct route_val *vm_fp_conf_route(const struct vm_fp_conf *c, const char *name)
{
	return conf_route(c, name, (uint32_t)strnlen(name, VM_NAME_MAX), vm_route_hash(name));
}

#define PROBE 8
/* The probe window's slots from the first-th on. */
static void *slot_find_from(struct vm_fp *fp, void *tab, size_t stride, uint32_t cap, const struct flow_key *k,
			    uint32_t h, int first)
{
	for (int i = first; i < PROBE; i++) {
		struct vm_fp_slot *f = (struct vm_fp_slot *)((uint8_t *)tab + stride * ((h + i) & (cap - 1)));
		if (f->used && vm_flow_key_eq(&f->key, k)) {
			f->last_used = ++fp->tick;
			return f;
		}
	}
	return NULL;
}

static void *slot_find(struct vm_fp *fp, void *tab, size_t stride, uint32_t cap, const struct flow_key *k)
{
	return slot_find_from(fp, tab, stride, cap, k, vm_fp_hash_key(k), 0);
}

/* The flow filter (struct vm_fp): key k's entry and bits. */
static inline struct flow_bits_val *bits_of(const struct vm_fp *fp, const struct flow_key *k, __u64 *bits)
{
	__u32 i;

	vm_flow_bits_at_n(k, fp->bits_log2, &i, bits);
	return &fp->bits[i];
}

/* 0 when no flow of key k can be in the table. */
static inline int flow_maybe(const struct vm_fp *fp, const struct flow_key *k)
{
	__u64 m;
	const struct flow_bits_val *b = bits_of(fp, k, &m);

	return vm_flow_bits_either(b, m);
}

/* The flow of key k (hashed to h): its first slot, then, if the filter
 * lets it be there, the rest of the window. */
static inline struct vm_fp_flow *flow_find_h(struct vm_fp *fp, const struct flow_key *k, uint32_t h)
{
	struct vm_fp_flow *f = &fp->flows[h & (fp->flows_cap - 1)];

	if (f->s.used && vm_flow_key_eq(&f->s.key, k)) {
		f->s.last_used = ++fp->tick;
		return f;
	}
	if (!flow_maybe(fp, k))
		return NULL;
	return slot_find_from(fp, fp->flows, sizeof(*fp->flows), fp->flows_cap, k, h, 1);
}

/* The slot key k would take: its own, a free one, else the least recently
 * used of the probe window (whose entry slot_take then drops). */
static void *slot_victim(void *tab, size_t stride, uint32_t cap, const struct flow_key *k)
{
	uint32_t h = vm_fp_hash_key(k);
	struct vm_fp_slot *victim = NULL;
	for (int i = 0; i < PROBE; i++) {
		struct vm_fp_slot *f = (struct vm_fp_slot *)((uint8_t *)tab + stride * ((h + i) & (cap - 1)));
		if (!f->used || vm_flow_key_eq(&f->key, k)) {
			victim = f;
			break;
		}
		if (!victim || f->last_used < victim->last_used)
			victim = f;
	}
	return victim;
}

/* Slot victim (slot_victim's) made key k's.  The caller fills the value. */
static void *slot_take(struct vm_fp *fp, struct vm_fp_slot *victim, const struct flow_key *k, uint32_t *count)
{
	if (!victim->used && count)
		(*count)++;
	if (!victim->used || !vm_flow_key_eq(&victim->key, k))
		victim->swept_s = 0;
	victim->key = *k;
	victim->used = 1;
	victim->last_used = ++fp->tick;
	return victim;
}

/* Insert or replace; a full probe window evicts its least recently used.
 * The caller fills the value. */
static void *slot_put(struct vm_fp *fp, void *tab, size_t stride, uint32_t cap, const struct flow_key *k,
		      uint32_t *count)
{
	return slot_take(fp, slot_victim(tab, stride, cap, k), k, count);
}

static struct vm_fp_flow *flow_find(struct vm_fp *fp, const struct flow_key *k)
{
	return flow_find_h(fp, k, vm_fp_hash_key(k));
}

static struct vm_fp_flow *flow_put(struct vm_fp *fp, const struct flow_key *k, const struct flow_val *v)
{
	struct vm_fp_flow *f = slot_put(fp, fp->flows, sizeof(*fp->flows), fp->flows_cap, k, &fp->nflows);
	__u64 m;
	struct flow_bits_val *b = bits_of(fp, k, &m);

	b->half[0] |= m;
	b->half[1] |= m;
	f->val = *v;
	return f;
}

uint32_t vm_fp_flow_hash(const struct flow_key *k)
{
	return vm_fp_hash_key(k);
}

int vm_fp_hint_of(int ret, const uint8_t *pkt, uint32_t len, struct vm_fp_hint *h)
{
	if (ret ? vm_fp_return_key(pkt, len, &h->key) : vm_fp_ingress_key(pkt, len, &h->key))
		return -1;
	h->hash = vm_fp_hash_key(&h->key);
	return 0;
}

uint32_t vm_fp_flow_count(const struct vm_fp *fp)
{
	return __atomic_load_n(&fp->nflows, __ATOMIC_RELAXED);
}

void vm_fp_tuple_key(const struct flow_tuple *t, struct flow_key *k)
{
	vm_flow_key_tuple(t, &fp_seed, k);
}

int vm_fp_flow_drop(struct vm_fp *fp, const struct flow_tuple *t)
{
	struct flow_key k;
	vm_flow_key_tuple(t, &fp_seed, &k);
	struct vm_fp_flow *f = flow_find(fp, &k);
	if (!f || !VM_FLOW_IS(&f->val, t->family, t->client, t->vip))
		return -1;
	f->s.used = 0;
	fp->nflows--;
	return 0;
}

uint32_t vm_fp_sweep(struct vm_fp *fp, uint64_t now_ns, uint32_t n)
{
	uint32_t now_s = (uint32_t)(now_ns / 1000000000ULL), retired = 0;

	if (!now_s)
		now_s = 1;   /* 0 is "not seen closed" */
	if (n > fp->flows_cap)
		n = fp->flows_cap;
	/* the half this pass rebuilds is cleared first, a share a call: an
	 * entry holds four slots' bits, so 4n entries are as many lines as n
	 * slots' first ones */
	uint32_t nbits = 1u << fp->bits_log2, clear = 4 * n, half = fp->bits_rebuilt & 1;
	if (fp->bits_clear_at < nbits) {
		uint32_t end = nbits - fp->bits_clear_at > clear ? fp->bits_clear_at + clear : nbits;
		for (uint32_t j = fp->bits_clear_at; j < end; j++)
			fp->bits[j].half[half] = 0;
		fp->bits_clear_at = end;
		if (end < nbits)
			return 0;   /* no slot looked at before its bits can go in */
	}
	for (uint32_t i = 0; i < n; i++) {
		struct vm_fp_flow *f = &fp->flows[fp->sweep_at];

		fp->sweep_at = (fp->sweep_at + 1) & (fp->flows_cap - 1);
		if (f->s.used) {
			if (!vm_fin_retired(f->val.fin)) {
				f->s.swept_s = 0;   /* live again: the VM kept a reset connection */
			} else if (!f->s.swept_s) {
				f->s.swept_s = now_s;
			} else if (now_s - f->s.swept_s >= VM_SWEEP_EVERY_S) {
				f->s.used = 0;
				fp->nflows--;
				retired++;
			}
			if (f->s.used) {
				__u64 m;
				bits_of(fp, &f->s.key, &m)->half[half] |= m;
			}
		}
		if (!fp->sweep_at) {
			/* a pass done: its half holds every flow; the other's turn */
			fp->bits_rebuilt++;
			fp->bits_clear_at = 0;
			break;   /* the next call clears it before it looks further */
		}
	}
	fp->retired += retired;
	return retired;
}

/* ---------- the mesh ---------- */

/* Ethernet, outer IP, UDP, Geneve (and the handoff option) in front of an
 * inner IP packet of inner bytes, at f; returns the bytes written. */
static uint32_t write_encap(struct vm_fp *fp, uint8_t *f, const struct vm_fp_neigh *nb, const struct flow_val *fv,
			    uint16_t sport, uint16_t proto, uint32_t inner, int opt)
{
	int v4 = fv->node_family == VM_AF_INET;
	uint32_t push = vm_geneve_push_len(fv->node_family, opt);

	memcpy(f, nb->mac, 6);
	memcpy(f + 6, fp->c->port_mac[nb->port & 7], 6);
	/* the buffer holds them: the caller made room for push bytes */
	vm_geneve_write(f, f + ETH_HLEN + push, fv->node_family, v4 ? fp->c->cfg.underlay4 : fp->c->cfg.underlay6,
			fv->node, proto, inner, opt, &fv->handoff, sport);
	return ETH_HLEN + push;
}

/* ---------- the hello: route, flow (include/veil/gw_hello.h, gw.h) ---------- */

/* The packet library's route lookup: the configuration's table by name. */
static inline int vm_env_route(void *rctx, const char *name, __u32 len, __u64 hash, struct flow_val *f)
{
	const struct route_val *r = conf_route(((struct vm_fp *)rctx)->c, name, len, hash);
	if (!r)
		return -1;
	f->handoff.vm_id_be = htonl(r->vm_id);
	f->node_family = r->node_family;
	memcpy(f->node, r->node, 16);
	return 0;
}

/* Whether a wildcard route's name is len bytes long: a hello whose
 * wildcard key no route could have is refused without making it, as in
 * XDP (route_bits). */
static inline int vm_env_wild_len(void *rctx, __u32 len)
{
	__u64 bit;
	__u32 w;

	vm_route_wild_at(len, &w, &bit);
	return !!(((struct vm_fp *)rctx)->c->wild_lens[w] & bit);
}
#include "veil/gw_hello.h"

/* Parses the hello in buf[0, len) (the packet's payload, or the joined
 * records in fp->flat) and finds its route into *v (its VM and node);
 * VM_HELLO_OK, or the reason.  The parser reads no byte at or past len
 * (fuzz_hello poisons them), so its masked offsets (VM_HB) never reach
 * past the buffer however short it is. */
static int route_hello(struct vm_fp *fp, __u8 *buf, uint32_t len, struct flow_val *v)
{
	struct vm_hello h;
	struct vm_hello_state hs;
	char wk[VM_NAME_MAX];

	memset(&h, 0, sizeof(h));
	int rc = vm_gw_route_hello(fp, buf, len, &h, &hs, wk, v);
	fp->hello_len = h.hello_len;
	return rc;
}

/* ---------- gw_ingress, gw_asm and gw_return: the packet library's, in this environment ---------- */

/* What the library's hooks work on: one packet of one lcore. */
struct vm_gw_env {
	struct vm_fp *fp;
	uint8_t **pkt;
	uint32_t *len;
	uint16_t in_port;
	uint16_t *out_port;
	uint64_t tai_ns;
	struct fp_frame fr;       /* what VM_LOAD_BYTES reads */
	struct flow_val tmp;      /* a new flow, before it goes into the table */
	struct vm_asm_walk_state walk;
	uint8_t tmp_ready, walk_ready;   /* cleared once this packet (above) */
	const struct vm_fp_neigh *nb;  /* the node's next hop, for the reassembly's segments */
	const struct vm_fp_hint *hint; /* the packet's flow, hashed ahead, or NULL */
};

#define VM_V_DROP VM_FP_DROP
#define VM_V_PASS VM_FP_PASS
#define VM_V_TX   VM_FP_TX
#define VM_GW_COOKIE_OK(sec, p, isn, cookie, tnow) vm_gw_cookie_ok((sec), (p), (isn), (cookie), (tnow))

static inline void *vm_env_data(struct vm_gw_env *e) { return *e->pkt; }
static inline void *vm_env_data_end(struct vm_gw_env *e) { return *e->pkt + *e->len; }
static inline void *vm_env_loadctx(struct vm_gw_env *e)
{
	e->fr.p = *e->pkt;
	e->fr.len = *e->len;
	return &e->fr;
}
static inline __u32 vm_env_ifindex(struct vm_gw_env *e) { return e->in_port; }
/* one clock for all: the caller's time of the burst */
static inline __u64 vm_env_tai_ns(struct vm_gw_env *e) { return e->tai_ns; }
static inline __u64 vm_env_coarse_ns(struct vm_gw_env *e) { return e->tai_ns; }

/* A reply fits: the buffer has room for 100 bytes past the frame (fastpath.h). */
static inline int vm_env_resize(struct vm_gw_env *e, __u32 len)
{
	*e->len = len;
	return 0;
}

/* Encapsulation: the buffer has 128 bytes of headroom (fastpath.h). */
static inline int vm_env_push(struct vm_gw_env *e, __u32 n)
{
	*e->pkt -= n;
	*e->len += n;
	return 0;
}

static inline int vm_env_pull(struct vm_gw_env *e, __u32 n)
{
	if (n > *e->len)
		return -1;
	*e->pkt += n;
	*e->len -= n;
	return 0;
}

static inline const struct gw_config *vm_env_cfg(struct vm_gw_env *e) { return &e->fp->c->cfg; }

static inline struct cookie_secret *vm_env_secret(struct vm_gw_env *e)
{
	return (struct cookie_secret *)&e->fp->c->sec;
}

static inline const struct vip_val *vm_env_vip(struct vm_gw_env *e, const struct vip_key *k)
{
	const struct vm_fp_conf *c = e->fp->c;
	for (int i = 0; i < c->nvips; i++)
		if (c->vips[i].key.family == k->family && c->vips[i].key.port_be == k->port_be &&
		    !memcmp(c->vips[i].key.addr, k->addr, 16))
			return &c->vips[i].val;
	return NULL;
}

static inline const struct flow_seed *vm_env_flow_seed(struct vm_gw_env *e) { return &fp_seed; }

static inline struct flow_val *vm_env_flow_get(struct vm_gw_env *e, const struct flow_key *k)
{
	/* the burst hashed this packet's key already (vm_fp_hint_of) */
	uint32_t h = e->hint && vm_flow_key_eq(&e->hint->key, k) ? e->hint->hash : vm_fp_hash_key(k);
	struct vm_fp_flow *fl = flow_find_h(e->fp, k, h);
	return fl ? &fl->val : NULL;
}

/* This fast path's (a DPDK worker's) flow gate: whether a bare ACK with no
 * flow is dropped unjudged (include/veil/gw_path.h), and the worker's
 * burst prefetches the filter's lines (dp.c).  The lookups here look at the
 * filter after the first slot whatever it says. */
static inline struct gw_flow_gate *vm_env_gate(struct vm_gw_env *e) { return &e->fp->gate; }

/* vm_gw_ingress's lookup: the gate ticked, as gw_ingress's */
static inline struct flow_val *vm_env_flow_gate_get(struct vm_gw_env *e, const struct flow_key *k)
{
	vm_gw_gate_tick(&e->fp->gate, &e->fp->st);
	return vm_env_flow_get(e, k);
}

/* A hello's flow will be put after its parse: the filter's word it sets
 * is fetched meanwhile (gw_ingress's vm_env_flow_soon). */
static inline void vm_env_flow_soon(struct vm_gw_env *e, const struct flow_key *k)
{
	__u64 m;

	__builtin_prefetch(bits_of(e->fp, k, &m), 1);
}

static inline int vm_env_flow_put(struct vm_gw_env *e, const struct flow_key *k, const struct flow_val *v)
{
	flow_put(e->fp, k, v);
	return 0;
}

static inline void vm_env_flow_del(struct vm_gw_env *e, const struct flow_key *k, struct flow_val *f)
{
	struct vm_fp_flow *fl = (struct vm_fp_flow *)((uint8_t *)f - offsetof(struct vm_fp_flow, val));
	fl->s.used = 0;
	e->fp->nflows--;
}

/* tmp and walk are cleared when a packet first asks for them (the library
 * asks for tmp again to finish the flow it routed), not for every packet */
static inline struct flow_val *vm_env_flow_tmp(struct vm_gw_env *e)
{
	if (!e->tmp_ready) {
		memset(&e->tmp, 0, sizeof(e->tmp));
		e->tmp_ready = 1;
	}
	return &e->tmp;
}

static inline int vm_env_tcpopts(struct vm_gw_env *e, const struct vm_pkt *p, struct vm_tcpopts *o)
{
	return parse_opts(*e->pkt + p->l4_off + 20, p->tcp_len - 20, o);
}

static inline int vm_env_hello_route(struct vm_gw_env *e, const struct vm_pkt *p, struct flow_val *f,
				     __u32 *hello_len)
{
	struct vm_fp *fp = e->fp;
	uint32_t hl = p->payload_len > VM_HELLO_BUF ? VM_HELLO_BUF : p->payload_len;

	/* parsed where it lies: a copy out first made hellos ~1.09x slower
	 * (the DPDK bench's hello case, 6 rounds: 1.04-1.16) */
	int rc = route_hello(fp, *e->pkt + p->l4_off + p->tcp_len, hl, f);
	*hello_len = fp->hello_len;
	return rc;
}

/* The next hop from the neighbours the control plane gives (the kernel's
 * FIB and neighbour table for XDP), with the FIB's MTU check. */
static inline int vm_env_mesh_send(struct vm_gw_env *e, struct flow_val *f, __u8 fam, const __u8 *src, int *why)
{
	const struct vm_fp_conf *c = e->fp->c;

	/* The flow's copy of its node's next hop while the set it was taken
	 * from holds (as XDP's flows keep theirs: bpf/gw_ingress.bpf.c), the
	 * set's index only when it moved: per packet no lookup, the copy on
	 * the flow's own lines.  The port as the ifindex, the MTU resolved. */
	if (!c->nh_gen || f->nh_gen != c->nh_gen) {
		const struct vm_fp_neigh *nb = vm_fp_conf_neigh(c, f->node);
		if (!nb) {
			*why = VM_SEND_NO_NEIGH;
			return VM_FP_DROP;
		}
		f->nh.ifindex = nb->port;
		f->nh.mtu = vm_fp_neigh_mtu(nb);
		memcpy(f->nh.dmac, nb->mac, 6);
		memcpy(f->nh.smac, c->port_mac[nb->port & 7], 6);
		f->nh_gen = c->nh_gen;
	}
	/* as the XDP gateway's next-hop check (bpf/lib/mesh.h): the frame's
	 * IP packet against the interface's MTU */
	if (*e->len - ETH_HLEN > f->nh.mtu) {
		*why = VM_SEND_MTU;
		return VM_FP_DROP;
	}
	*why = VM_SEND_OK;
	memcpy(*e->pkt, f->nh.dmac, 6);
	memcpy(*e->pkt + 6, f->nh.smac, 6);
	*e->out_port = (uint16_t)f->nh.ifindex;
	return *e->out_port == e->in_port ? VM_FP_TX : VM_FP_FWD;
}

/* ---------- hello reassembly (include/veil/gw_asm.h): its tables here ---------- */

static inline __u64 vm_env_asm_ns(struct vm_gw_env *e) { return e->tai_ns; }

static inline struct asm_val *vm_env_asm_get(struct vm_gw_env *e, const struct flow_key *k)
{
	struct vm_fp_asm *as = slot_find(e->fp, e->fp->asm_tab, sizeof(*e->fp->asm_tab), e->fp->asm_cap, k);
	return as ? &as->a : NULL;
}

/* The entry k has, else a slot of its probe window (free, or the least
 * recently used one, whose hello is dropped), its header made a new
 * hello's: a reused slot kept its last holder's tuple, which gw_asm.h
 * would take for another CPU's colliding connection (until 2026-12-05 a
 * full table refused every new hello so: asm_table_full_same). */
static inline struct asm_val *vm_env_asm_new(struct vm_gw_env *e, const struct flow_key *k)
{
	struct vm_fp_asm *as = slot_find(e->fp, e->fp->asm_tab, sizeof(*e->fp->asm_tab), e->fp->asm_cap, k);

	if (as)
		return &as->a;
	as = slot_victim(e->fp->asm_tab, sizeof(*e->fp->asm_tab), e->fp->asm_cap, k);
	if (as->s.used && !vm_flow_key_eq(&as->s.key, k)) {
		/* the hello dropped: its tombstone when it cannot complete */
		struct vm_fp_tomb *t = slot_victim(e->fp->tomb_tab, sizeof(*e->fp->tomb_tab), e->fp->asm_cap,
						   &as->s.key);
		if (vm_asm_tomb_make(&t->t, &as->a, e->tai_ns))
			slot_take(e->fp, &t->s, &as->s.key, NULL);
	}
	as = slot_take(e->fp, &as->s, k, NULL);
	as->a.family = 0;
	as->a.nseg = 0;
	as->a.have = 0;
	as->a.routed = 0;
	return &as->a;
}

static inline void vm_env_asm_del(struct vm_gw_env *e, const struct flow_key *k, struct asm_val *a)
{
	((struct vm_fp_asm *)((uint8_t *)a - offsetof(struct vm_fp_asm, a)))->s.used = 0;
}

static inline struct asm_early *vm_env_early_get(struct vm_gw_env *e, const struct flow_key *k)
{
	struct vm_fp_early *ee = slot_find(e->fp, e->fp->early_tab, sizeof(*e->fp->early_tab), e->fp->asm_cap, k);
	return ee ? &ee->e : NULL;
}

static inline void vm_env_early_del(struct vm_gw_env *e, const struct flow_key *k, struct asm_early *ea)
{
	((struct vm_fp_early *)((uint8_t *)ea - offsetof(struct vm_fp_early, e)))->s.used = 0;
}

static inline struct asm_tomb *vm_env_tomb_get(struct vm_gw_env *e, const struct flow_key *k)
{
	struct vm_fp_tomb *t = slot_find(e->fp, e->fp->tomb_tab, sizeof(*e->fp->tomb_tab), e->fp->asm_cap, k);
	return t ? &t->t : NULL;
}

static inline void vm_env_tomb_del(struct vm_gw_env *e, const struct flow_key *k, struct asm_tomb *t)
{
	((struct vm_fp_tomb *)((uint8_t *)t - offsetof(struct vm_fp_tomb, t)))->s.used = 0;
}

/* kept in its table slot at once: one per flow, the oldest of a full probe window evicted */
static inline struct asm_early *vm_env_early_tmp(struct vm_gw_env *e, const struct flow_key *k)
{
	struct vm_fp_early *ee = slot_put(e->fp, e->fp->early_tab, sizeof(*e->fp->early_tab), e->fp->asm_cap, k, NULL);
	return &ee->e;
}

static inline int vm_env_early_put(struct vm_gw_env *e, const struct flow_key *k, struct asm_early *ea)
{
	return 0;
}

static inline __u8 *vm_env_flat(struct vm_gw_env *e) { return e->fp->flat; }
static inline struct vm_asm_walk_state *vm_env_walk(struct vm_gw_env *e)
{
	if (!e->walk_ready) {
		memset(&e->walk, 0, sizeof(e->walk));
		e->walk_ready = 1;
	}
	return &e->walk;
}

static inline int vm_env_asm_route(struct vm_gw_env *e, __u8 *flat, __u32 len, struct flow_val *f, __u32 *hello_len)
{
	struct vm_fp *fp = e->fp;

	int rc = route_hello(fp, flat, len, f);   /* in place, as gw_asm does */
	*hello_len = fp->hello_len;
	return rc;
}

/* Replies in place: the buffer has room for 100 bytes past the frame. */
static inline __u8 *vm_env_reply_buf(struct vm_gw_env *e, void **end)
{
	*end = *e->pkt + *e->len + 100;
	return *e->pkt;
}

static inline int vm_env_reply_send(struct vm_gw_env *e, __u8 *b, __u32 len)
{
	*e->len = len;
	return VM_FP_TX;
}

static inline int vm_env_emit_route(struct vm_gw_env *e, __u8 fam, const __u8 *src, const __u8 *node, int *why)
{
	e->nb = vm_fp_conf_neigh(e->fp->c, node);
	if (!e->nb) {
		*why = VM_SEND_NO_NEIGH;
		return -1;
	}
	if (vm_fp_neigh_mtu(e->nb) < VM_FP_ASM_MTU_MIN) {
		*why = VM_SEND_FAIL;   /* as gw_asm, where the FIB says FRAG_NEEDED */
		return -1;
	}
	*why = VM_SEND_OK;
	return 0;
}

/* One kept segment to the node, through the emit callback; in_place, as
 * the packet in hand (the library asks only when the segment is that
 * packet: its frame with the mesh headers in front, which the 128 bytes
 * of headroom hold), the verdict. */
static inline int vm_env_emit_seg(struct vm_gw_env *e, const struct flow_val *f, const __u8 *src, __u32 proto_inner,
				  __u16 sport, const struct asm_seg *sg, const struct asm_val *a, int in_place)
{
	struct vm_fp *fp = e->fp;
	uint32_t inner = proto_inner & 0xffff;
	uint32_t push = vm_geneve_push_len(f->node_family, VM_GNV_HANDOFF);
	uint8_t *fr = fp->frame;

	if (in_place) {
		if (ETH_HLEN + inner > *e->len)
			return -1;   /* not the packet in hand: never asked */
		fr = *e->pkt + *e->len - inner - ETH_HLEN - push;
	}
	uint32_t hdrlen = write_encap(fp, fr, e->nb, f, sport, proto_inner >> 16, inner, VM_GNV_HANDOFF);

	memcpy(fr + hdrlen, sg->hdr, sg->hlen);
	memcpy(fr + hdrlen + sg->hlen, &a->payload[sg->off & (VM_ASM_BYTES - 1)], sg->len);
	if (in_place) {
		*e->pkt = fr;
		*e->len = hdrlen + inner;
		*e->out_port = e->nb->port;
		return e->nb->port == e->in_port ? VM_FP_TX : VM_FP_FWD;
	}
	if (!fp->emit)
		return -1;
	fp->emit(fp->emit_arg, e->nb->port, fp->frame, hdrlen + inner);
	return 0;
}

#include "veil/gw_asm.h"

/* Reassembly (gw_asm's in the kernel) runs here at once; for a held hello
 * resent (vip NULL) a VIP gone meanwhile leaves it to the host. */
static inline int vm_env_to_asm(struct vm_gw_env *e, const struct vm_pkt *p, const struct flow_key *k,
				const struct vip_val *vip)
{
	if (!vip) {
		struct vip_key vk;
		vm_vip_key_of(p, &vk);
		vip = vm_env_vip(e, &vk);
		if (!vip)
			return VM_FP_PASS;
	}
	return vm_gw_asm_in(e, p, vip, k, &e->fp->c->cfg, vm_env_secret(e), &e->fp->st);
}

static inline void vm_env_held_drop(struct vm_gw_env *e, const struct flow_key *k)
{
	struct vm_fp_asm *as = slot_find(e->fp, e->fp->asm_tab, sizeof(*e->fp->asm_tab), e->fp->asm_cap, k);
	if (as)
		as->s.used = 0;
}

static inline int vm_env_redirect(struct vm_gw_env *e, __u32 ifindex)
{
	*e->out_port = ifindex;
	return VM_FP_FWD;
}

#include "veil/gw_path.h"
#include "veil/gw_ret.h"

/* Only the fields every packet needs: a designated initializer would clear
 * the whole environment (the flow being built, the walk state: a third of
 * the established path's time in `rep stos`). */
static inline void env_init(struct vm_gw_env *e, struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
			    uint16_t *out_port, uint64_t tai_ns)
{
	e->fp = fp;
	e->pkt = pkt;
	e->len = len;
	e->in_port = in_port;
	e->out_port = out_port;
	e->tai_ns = tai_ns;
	e->nb = NULL;
	e->hint = NULL;
	e->tmp_ready = e->walk_ready = 0;
}

enum vm_fp_verdict vm_fp_ingress_hint(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				      uint64_t tai_ns, uint16_t *out_port, const struct vm_fp_hint *hint)
{
	struct vm_gw_env e;

	env_init(&e, fp, in_port, pkt, len, out_port, tai_ns);
	e.hint = hint;
	*out_port = in_port;
	return vm_gw_ingress(&e, &fp->st);
}

enum vm_fp_verdict vm_fp_ingress(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				 uint64_t tai_ns, uint16_t *out_port)
{
	return vm_fp_ingress_hint(fp, in_port, pkt, len, tai_ns, out_port, NULL);
}

enum vm_fp_verdict vm_fp_return_hint(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				     uint16_t *out_port, const struct vm_fp_hint *hint)
{
	struct vm_gw_env e;

	env_init(&e, fp, in_port, pkt, len, out_port, 0);
	e.hint = hint;
	return vm_gw_return(&e, &fp->st);
}

enum vm_fp_verdict vm_fp_return(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				uint16_t *out_port)
{
	return vm_fp_return_hint(fp, in_port, pkt, len, out_port, NULL);
}

/* ---------- which flow a packet belongs to (lcore steering) ---------- */

int vm_fp_ingress_key(const uint8_t *f, uint32_t len, struct flow_key *k)
{
	struct vm_pkt p;
	if (len < ETH_HLEN || parse_ip_tcp(f, len, ETH_HLEN, &p) != VM_PARSE_OK)
		return -1;
	vm_flow_key_of(&p, &fp_seed, k);
	return 0;
}

int vm_fp_return_key(const uint8_t *f, uint32_t n, struct flow_key *k)
{
	struct vm_mesh_in m;
	struct vm_pkt p;

	memset(&m, 0, sizeof(m));
	memset(&p, 0, sizeof(p));
	if (vm_geneve_locate((void *)f, (void *)(f + n), &m) != VM_MESH_OK || ETH_HLEN + m.strip >= n)
		return -1;
	/* the inner headers, behind where the outer ones end (their Ethernet
	 * type is the Geneve protocol): a truncated packet still has its ports */
	if (vm_parse_ip_tcp((void *)(f + m.strip), (void *)(f + n), n - m.strip, ETH_HLEN,
			    vm_htons(m.ifamily == VM_AF_INET ? VM_ETH_P_IP : VM_ETH_P_IPV6), &p) != VM_PARSE_OK &&
	    p.family == 0)
		return -1;
	if (!p.sport && !p.dport)
		return -1;
	vm_flow_key_rev(&p, &fp_seed, k);
	return 0;
}
