/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway programs' side of the packet library (include/veil/gw.h):
 * per-CPU scratch, and the functions the verifier checks once (cookies, the
 * route lookup of a parsed hello), shared by gw_ingress (XDP) and gw_asm (TC). */
#ifndef VEIL_BPF_GW_LOGIC_H
#define VEIL_BPF_GW_LOGIC_H

#include "gw_maps.h"
#include "veil/gw.h"   /* struct vm_gw_times */

/* A CPU's view of TAI's offset from the monotonic clock, and the TAI it
 * read at the last tick it saw (gw_tai_ns). */
struct gw_clock {
	__u64 at;                 /* coarse monotonic ns when off was taken */
	__u64 off;                /* TAI - monotonic, ns */
	__u64 jif;                /* jiffies when tai was read */
	__u64 tai;                /* TAI then (0: not yet) */
	/* What a SYN-ACK derives from tai (vm_gw_syn_times: three divisions,
	 * ~10 ns of a SYN), kept while it holds (gw_syn_times) */
	__u64 tjif;               /* jif when derived (0: not yet) */
	__u32 twin;               /* gw_config.cookie_window_s then */
	struct vm_gw_times t;
};

/* A CPU's copy of a VIP it looked up, valid while vips_gen is unchanged:
 * a SYN or a cookie ACK then needs no hash lookup of the 20-byte key
 * (~15 ns of a SYN's ~75 over XDP_TX).  A gateway has few VIPs. */
#define GW_VIP_CACHE 4            /* entries per CPU, direct-mapped */

struct gw_vip_copy {
	struct vip_key key;
	struct vip_val val;
	__u32 gen;                /* vips_gen when taken; 0: empty */
};

/* A CPU's copy of a node's next hop, valid while next_hops_gen is
 * unchanged: a new flow (a first hello) takes its next hop from here, not
 * from a hash lookup of the 16-byte address.  A gateway has few nodes. */
#define GW_NH_CACHE 4             /* entries per CPU, direct-mapped */

struct gw_nh_copy {
	__u8 node[16];
	struct next_hop_val nh;
	__u32 gen;                /* next_hops_gen when taken; 0: empty */
};

struct gw_scratch {
	struct gw_flow_gate gate;
	struct gw_clock clock;
	struct gw_vip_copy vipc[GW_VIP_CACHE];
	struct gw_nh_copy nhc[GW_NH_CACHE];
	__u8 buf[VM_HELLO_BUF];
	struct vm_hello hello;
	struct route_key wkey;
	struct flow_val flow;
	__u8 optbuf[VM_OPT_BUF];
	struct vm_hello_state hst;
	struct vm_tcpopt_state ost;
	struct vm_name_walk nw;
	struct route_hkey hk;
	__u32 wlen;
	__u32 pad_wlen;
	__u8 frame[160];          /* headers built for emission */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_scratch);
} gw_scratch SEC(".maps");

/* next_hops' generation (0: never written, no copies kept). */
VM_INLINE __u32 gw_next_hops_gen(void)
{
	__u32 zero = 0, *g = bpf_map_lookup_elem(&next_hops_gen, &zero);

	return g ? *g : 0;
}

/* The next hop the daemon keeps for node (next_hops): from this CPU's copy
 * while next_hops has not changed since it was taken (gen, read before),
 * else looked up and copied.  s NULL or gen 0: no copies.  NULL: the daemon
 * has not resolved the node (the FIB's turn).  gw_ingress (a new flow's)
 * and gw_asm (a reassembled hello's). */
VM_INLINE const struct next_hop_val *gw_next_hop(struct gw_scratch *s, const __u8 *node, __u32 gen)
{
	const struct next_hop_val *nh;
	struct gw_nh_copy *c = 0;

	if (gen && s) {
		c = &s->nhc[(node[15] ^ node[11] ^ node[7]) & (GW_NH_CACHE - 1)];
		if (c->gen == gen && vm_addr_eq(c->node, node))
			return &c->nh;
	}
	nh = bpf_map_lookup_elem(&next_hops, node);
	if (nh && c) {
		VM_UNROLL
		for (int i = 0; i < 4; i++)   /* words: clang copies a __u8[16] byte by byte */
			((vm_u32a *)c->node)[i] = ((const vm_u32a *)node)[i];
		c->nh = *nh;
		c->gen = gen;     /* read before the lookup: a change meanwhile moves it again */
	}
	return nh;
}

/* A route by name: the 64-bit hash of the name as key, the name compared
 * once (few values live across the calls: the stack is shared with
 * gw_asm's).  include/veil/gw_hello.h's lookup; rctx is the scratch. */
VM_INLINE int vm_env_route(void *rctx, const char *name, __u32 len, __u64 hash, struct flow_val *f)
{
	struct gw_scratch *s = rctx;
	struct route_ent *e;
	__u64 bit;
	__u32 i;

	vm_route_bit_at(hash, &i, &bit);
	if (!gw_route_bits_have(i, bit))
		return -1;
	s->hk.hash = hash;
	e = bpf_map_lookup_elem(&routes, &s->hk);
	if (!e || !vm_name_eq_in(&s->nw, e->name, name, len & (VM_NAME_MAX - 1)))
		return -1;
	f->handoff.vm_id_be = bpf_htonl(e->val.vm_id);
	f->node_family = e->val.node_family;
	__builtin_memcpy(f->node, e->val.node, 16);
	return 0;
}

/* Whether a wildcard route's name may be len bytes long (route_bits). */
VM_INLINE int vm_env_wild_len(void *rctx, __u32 len)
{
	__u64 bit;
	__u32 i;

	vm_route_wild_at(len, &i, &bit);
	return gw_route_bits_have(i, bit);
}

#include "veil/gw_hello.h"

/* TAI at the last tick: the coarse monotonic clock plus TAI's offset from
 * the monotonic clock, which each CPU takes again every second.  A fine
 * read (bpf_ktime_get_tai_ns) costs ~35 ns on a kvm-clock, a coarse one ~5:
 * the fine read was a fifth of a SYN's cost.  TAI and the monotonic clock
 * are slewed alike, so the offset moves only when the clock is set, which
 * this sees within the second.  The value trails TAI by at most a tick
 * (1/CONFIG_HZ: 4 ms at 250), less than gateways' clocks differ anyway: a
 * cookie's window turns up to a tick later, and our TSval (ms) advances a
 * tick at a time (RFC 7323 asks for 1 ms to 1 s per tick).  The coarse
 * clock moves only at a tick, when jiffies does: within one tick the CPU
 * answers with the value it read at the tick's first packet (jiffies is one
 * load: the verifier inlines bpf_jiffies64; the coarse read is a call).
 * c NULL: the fine clock. */
VM_INLINE __u64 gw_tai_ns(struct gw_clock *c)
{
	__u64 now, m0, t, m1, j;

	if (!c)
		return bpf_ktime_get_tai_ns();
	j = bpf_jiffies64();
	if (j == c->jif && c->tai)
		return c->tai;
	now = bpf_ktime_get_coarse_ns();
	if (now - c->at >= VM_NS_PER_S) {
		m0 = bpf_ktime_get_ns();
		t = bpf_ktime_get_tai_ns();
		m1 = bpf_ktime_get_ns();
		c->off = t - m0 - (m1 - m0) / 2;
		c->at = now;
	}
	c->jif = j;
	c->tai = now + c->off;
	return c->tai;
}

/* vm_gw_syn_times at gw_tai_ns(c): within a tick, and while the cookie
 * window is unchanged, the values derived at the tick's first SYN (the
 * same TAI, so the same values).  c NULL: derived from the fine clock. */
VM_INLINE void gw_syn_times(struct gw_clock *c, const struct gw_config *cfg, struct vm_gw_times *t)
{
	__u32 win = cfg->cookie_window_s;

	if (c && bpf_jiffies64() == c->tjif && win == c->twin) {
		*t = c->t;
		return;
	}
	vm_gw_syn_times(cfg, gw_tai_ns(c), t);
	if (c) {
		c->t = *t;
		c->twin = win;
		c->tjif = c->jif;   /* the tick tai belongs to */
	}
}

/* The VIP of key k from this CPU's copy in s (s->vipc) while vips has not
 * changed since it was taken (vips_gen), else from vips, copied.  Not a
 * VIP: NULL, and no copy.  gw_ingress and gw_asm each keep theirs (a
 * per-CPU array each): a copy's hit spares the vips map's bucket. */
VM_INLINE const struct vip_val *gw_vip_get(struct gw_scratch *s, const struct vip_key *k)
{
	__u32 zero = 0, *genp = bpf_map_lookup_elem(&vips_gen, &zero), gen, slot;
	const struct vip_val *v;
	struct gw_vip_copy *c;

	if (!s || !genp || !(gen = *genp))
		return bpf_map_lookup_elem(&vips, k);
	slot = (k->addr[15] ^ k->addr[11] ^ (__u8)k->port_be ^ (__u8)(k->port_be >> 8)) & (GW_VIP_CACHE - 1);
	c = &s->vipc[slot];
	if (c->gen == gen && vm_vip_key_eq(&c->key, k))
		return &c->val;
	v = bpf_map_lookup_elem(&vips, k);
	if (v) {
		c->key = *k;
		c->val = *v;
		c->gen = gen;   /* read before the lookup: a change meanwhile moves it again */
	}
	return v;
}

/* Checks a cookie against the current and the previous secret.  A global
 * function: verified once, not once per path of the caller (gw_asm's;
 * gw_ingress takes vm_gw_cookie_ok and the SYN-ACK's MAC inline, where a
 * call costs what the check does: bpf/gw_ingress.bpf.c). */
__attribute__((noinline)) int gw_cookie_ok(struct cookie_secret *sec, const struct vm_pkt *p, __u32 client_isn,
					   __u32 cookie, __u32 tnow)
{
	if (!sec || !p)
		return 0;
	return vm_gw_cookie_ok(sec, p, client_isn, cookie, tnow);
}

/* The parser's window: s->buf, or gw_asm's joined records (asm_flat). */
struct gw_hello_win {
	__u8 b[VM_HELLO_BUF];
};

/* Parses the hello in w (s->buf, or where gw_asm joined its records) and
 * finds its route (vm_gw_route_hello).  Returns VM_HELLO_OK with the route
 * in s->flow, or the reason to refuse (VM_HELLO_* or VM_GW_NO_ROUTE).
 * Global: verified once. */
__attribute__((noinline)) int gw_route_hello(struct gw_scratch *s, struct gw_hello_win *w, __u32 len)
{
	if (!s || !w)
		return VM_HELLO_MALFORMED;
	return vm_gw_route_hello(s, w->b, len, &s->hello, &s->hst, s->wkey.name, &s->flow);
}

#endif
