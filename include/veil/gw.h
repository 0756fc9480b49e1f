/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's decisions that need no packet access, written once: flow
 * and VIP keys, the SYN cookie's window and check, the route of a parsed
 * ClientHello (include/veil/gw_hello.h), a new flow's handoff.  The packet
 * paths around them are include/veil/gw_path.h and gw_ret.h.
 */
#ifndef VEIL_GW_H
#define VEIL_GW_H

#include "pkt.h"
#include "cookie.h"
#include "hello.h"
#include "flowkey.h"

#define VM_GW_COUNT(st, field) do { if (st) (st)->field++; } while (0)

/* vm_env_flow_put's answer when another entry holds the key (-EEXIST) */
#define VM_FLOW_PUT_TAKEN (-17)
#define VM_GW_COUNT_FLOW_PUT(st, rc) do {                  \
	if ((rc) == VM_FLOW_PUT_TAKEN)                     \
		VM_GW_COUNT(st, flow_collision);           \
	else                                               \
		VM_GW_COUNT(st, flow_full);                \
} while (0)

#define VM_NS_PER_S   1000000000ULL
#define VM_NS_PER_TS  1000000ULL  /* our TCP timestamps tick in milliseconds */
#define VM_COOKIE_WINDOW_S_DEFAULT 64  /* gw_config.cookie_window_s when 0 */

/* One more flow lookup in g's window; the lookup that ends a window is
 * the next one's first, and the gate is on through it if ACKs with no
 * flow failed their cookie for at least one lookup in
 * VM_FLOW_GATE_BAD_SHARE of those the window judged (all of them with the
 * gate off, its probes with it on: VM_FLOW_GATE_* in wire.h), off
 * otherwise. */
VM_INLINE void vm_gw_gate_tick(struct gw_flow_gate *g, const struct gw_stats *st)
{
	if (!g || !st || ++g->seen < VM_FLOW_GATE_WINDOW)
		return;
	g->on = (st->bad_cookie - g->bad_at) * VM_FLOW_GATE_BAD_SHARE >=
		(g->on ? VM_FLOW_GATE_PROBES : VM_FLOW_GATE_WINDOW);
	g->bad_at = st->bad_cookie;
	g->seen = 0;
}

/* 1 when a bare ACK with no flow goes unjudged: the gate on and this
 * lookup past the window's probes. */
VM_INLINE int vm_gw_gate_unjudged(const struct gw_flow_gate *g)
{
	return g && g->on && g->seen >= VM_FLOW_GATE_PROBES;
}

/* vm_env_mesh_send's why */
enum { VM_SEND_OK = 0, VM_SEND_NO_NEIGH, VM_SEND_MTU, VM_SEND_FAIL };

/* The reassembly's joining state (include/veil/gw_asm.h): map memory in
 * BPF, see vm_hello_state. */
struct vm_asm_walk_state {
	__u32 r, out, have;
	int rc;
	__u32 seg, grew;          /* the contiguous prefix's pass: next segment, growth seen */
};

/* The flow key of a packet from the client (seed: the gateway's
 * flow_seed, read only for IPv6; k: VM_KEY_ALIGNED). */
VM_INLINE void vm_flow_key_of(const struct vm_pkt *p, const struct flow_seed *s, struct flow_key *k)
{
	vm_flow_key_make(p->family, p->saddr, p->daddr, p->sport, p->dport, s, k);
}

/* The flow of a return packet (VIP -> client): keyed by the client
 * (k: VM_KEY_ALIGNED). */
VM_INLINE void vm_flow_key_rev(const struct vm_pkt *p, const struct flow_seed *s, struct flow_key *k)
{
	vm_flow_key_make(p->family, p->daddr, p->saddr, p->dport, p->sport, s, k);
}

/* 1 when the entry v (flow_val, asm_val, asm_early) found under the key of
 * p (client -> VIP) is p's connection's. */
#define VM_FLOW_OF(v, p) VM_FLOW_IS((v), (p)->family, (p)->saddr, (p)->daddr)

VM_INLINE int vm_vip_key_eq(const struct vip_key *a, const struct vip_key *b)
{
	/* five words (the last: port_be, family, pad), as they were written */
	const vm_u32a *x = (const vm_u32a *)a, *y = (const vm_u32a *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

/* In five 32-bit words, as vm_vip_key_eq and the VIP copies' slot read
 * them: a word read from a 16-bit and two 8-bit stores waits until they
 * reach the cache (~3 ns of a SYN: no store-to-load forwarding). */
VM_INLINE void vm_vip_key_of(const struct vm_pkt *p, struct vip_key *vk)
{
	const vm_u32a *a = (const vm_u32a *)p->daddr;
	vm_u32a *w = (vm_u32a *)vk;

	w[0] = a[0];
	w[1] = a[1];
	w[2] = a[2];
	w[3] = a[3];
	/* port_be, family, pad 0, on these little-endian hosts */
	w[4] = (__u32)(__u16)p->dport | (__u32)p->family << 16;
}

/* The cookie's time counter at a TAI time (one clock read serves a
 * packet's cookie and its timestamp). */
VM_INLINE __u32 vm_gw_cookie_tnow(const struct gw_config *cfg, __u64 tai_ns)
{
	__u32 s = (__u32)(tai_ns / VM_NS_PER_S);
	return s / (cfg->cookie_window_s ? cfg->cookie_window_s : VM_COOKIE_WINDOW_S_DEFAULT);
}

/* What a SYN-ACK takes from the clock: the cookie's time counter and our
 * TSval (ms), both from one TAI read. */
struct vm_gw_times {
	__u32 tnow;
	__u32 tsval;
};

VM_INLINE void vm_gw_syn_times(const struct gw_config *cfg, __u64 tai_ns, struct vm_gw_times *t)
{
	t->tnow = vm_gw_cookie_tnow(cfg, tai_ns);
	t->tsval = (__u32)(tai_ns / VM_NS_PER_TS);
}

/* What the hook VM_GW_SYN_TIMES(e, cfg, t) is where the environment does
 * not define it (gw_path.h, gw_asm.h): the values at vm_env_tai_ns(e). */
#define VM_GW_SYN_TIMES_AT_TAI(e, cfg, t) vm_gw_syn_times((cfg), vm_env_tai_ns(e), (t))

/* The cookie MAC of p's connection with the time counter and low bits
 * given: vm_cookie_mac's message, built from the parsed packet (an IPv4
 * packet's addresses are the words the parser wrote; no copy of the tuple,
 * no test of the form). */
VM_INLINE __u32 vm_gw_cookie_mac(const struct vm_cookie_key *key, const struct vm_pkt *p, __u32 tcount, __u32 low)
{
	__u64 tail = vm_cookie_tail(p->sport, p->dport, tcount, low);

	if (p->family == VM_AF_INET)
		return vm_cookie_mac4(key->sip, vm_cookie_rd32(p->saddr + 12), vm_cookie_rd32(p->daddr + 12), tail);
	return vm_cookie_mac_of(key, p->saddr, p->daddr, tail);
}

/* A cookie ISN (the one we gave p's connection) against the current and
 * the previous secret, for the client's ISN client_isn: one MAC, under the
 * key whose selector bit the cookie carries (vm_cookie_kbit; both where
 * the two keys share it), where an ACK flood's forged cookies took two. */
VM_INLINE int vm_gw_cookie_ok(const struct cookie_secret *sec, const struct vm_pkt *p, __u32 client_isn,
			      __u32 isn, __u32 tnow)
{
	__u32 t, cookie = isn - client_isn, low = cookie & VM_COOKIE_LOW_MASK, mac = cookie >> VM_COOKIE_LOW_BITS;
	__u32 k = (cookie >> VM_COOKIE_K_SHIFT) & 1;

	if (!vm_cookie_tcount(cookie, tnow, &t))
		return 0;
	if (k == vm_cookie_kbit(&sec->cur) && vm_gw_cookie_mac(&sec->cur, p, t, low) == mac)
		return 1;
	return sec->has_prev && k == vm_cookie_kbit(&sec->prev) && vm_gw_cookie_mac(&sec->prev, p, t, low) == mac;
}

/* Fills a new flow (whose route is set) with what the node needs: the
 * handoff option, and the client's L2 neighbour for the return; and with
 * p's tuple, which every lookup compares. */
VM_INLINE void vm_gw_flow_init(struct flow_val *f, const struct vm_pkt *p, __u32 client_isn, __u32 cookie,
			       const struct vm_tcpopts *o, const struct gw_config *cfg, const __u8 *client_mac,
			       const __u8 *vip_mac, __u32 ifindex, __u64 now_ns, __u16 mesh_sport)
{
	struct vm_cookie_opts co;

	vm_cookie_decode(cookie, client_isn, &co);
	f->vm_ack = 0;
	f->client_isn = client_isn;
	f->handoff.client_isn_be = vm_htonl(client_isn);
	f->handoff.cookie_isn_be = vm_htonl(cookie);
	f->handoff.gw_tsval_be = vm_htonl(co.ts_ok && o->ts_ok ? o->tsecr : 0);
	f->handoff.mss_be = vm_htons(co.mss);
	f->handoff.client_wscale = co.wscale;
	f->handoff.gw_wscale = co.wscale != VM_WSCALE_NONE ? cfg->wscale : VM_WSCALE_NONE;
	f->handoff.flags = (co.sack_ok ? VM_HO_SACK_OK : 0) | (co.ts_ok && o->ts_ok ? VM_HO_TS_OK : 0);
	__builtin_memcpy(f->client_mac, client_mac, 6);
	__builtin_memcpy(f->vip_mac, vip_mac, 6);
	f->client_ifindex = ifindex;
	f->created_ns = now_ns;
	f->mesh_sport = mesh_sport;
	f->held_dups = 0;
	f->nh_gen = 0;
	VM_FLOW_TUPLE_SET(f, p->family, p->saddr, p->daddr);
	f->cli_nxt = p->seq + p->payload_len;
}

/* After a lost held copy (VM_HELD_LOST): whether p, the VM's ACK below the
 * hello's end, is the VM_HELD_LOST_DUPS-th pure ACK in a row that repeats
 * its last one (vm_ack), what the VM's TCP sends each time a
 * retransmission of the client's reaches it while it lacks an earlier
 * segment.  An ACK that moves starts the count again. */
VM_INLINE int vm_gw_held_dup(struct flow_val *f, const struct vm_pkt *p)
{
	if (p->payload_len || (p->flags & (VM_TCP_SYN | VM_TCP_FIN | VM_TCP_RST)))
		return 0;
	if (p->ack != f->vm_ack) {
		f->held_dups = 0;
		return 0;
	}
	if (f->held_dups < VM_HELD_LOST_DUPS)
		f->held_dups++;
	return f->held_dups >= VM_HELD_LOST_DUPS;
}

/* The client's packet p seen: cli_nxt moved to where it ends. */
VM_INLINE void vm_gw_cli_seen(struct flow_val *f, const struct vm_pkt *p)
{
	vm_cli_at(&f->cli_nxt, vm_tcp_seg_end(p));
}

/* Whether seq lies within VM_RST_WINDOW of where the flow's client stands
 * (cli_nxt), either side. */
VM_INLINE int vm_gw_cli_near(const struct flow_val *f, __u32 seq)
{
	__u32 d = seq - f->cli_nxt;

	return d < VM_RST_WINDOW || -d < VM_RST_WINDOW;
}

/* A client RST near where the flow's sequence stands, or on a flow that
 * does not know it: taken. */
VM_INLINE int vm_gw_rst_ok(const struct flow_val *f, const struct vm_pkt *p)
{
	return !f->cli_nxt || vm_gw_cli_near(f, p->seq);
}

#endif /* VEIL_GW_H */
