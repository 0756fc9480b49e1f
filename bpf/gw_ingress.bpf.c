// SPDX-License-Identifier: Apache-2.0
/*
 * Gateway ingress (client-facing interface).  Delayed binding:
 *   SYN to a VIP          -> SYN-ACK with a SYN-cookie ISN, XDP_TX, no state
 *   ACK, valid cookie     -> dropped (nothing to do until data arrives)
 *   first data (hello)    -> SNI -> route -> flow entry -> Geneve + handoff to the node
 *   hello without the name-> XDP_PASS to gw_asm (TC), which reassembles
 *   known flow            -> Geneve to the node, no parse
 *   unknown name / no SNI -> refused at once (RST or TLS unrecognized_name)
 *   not for a VIP         -> XDP_PASS, untouched
 *
 * The logic is the packet library's (vm_gw_ingress, include/veil/gw_path.h),
 * the same code the DPDK fast path runs; this file is its XDP environment:
 * the maps, the clock, the frame's resizing and the next hop.
 */
#include "lib/gw_logic.h"
#include "lib/mesh.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct vm_gw_env {
	struct xdp_md *ctx;
	struct gw_scratch *s;     /* looked up on a flow miss (vm_env_secret) */
	struct gw_stats *st;      /* this CPU's counters (the flow gate reads bad_cookie) */
};

#define VM_V_DROP XDP_DROP
#define VM_V_PASS XDP_PASS
#define VM_V_TX   XDP_TX
/* The cookie's check and the SYN-ACK's MAC (gw_path.h's default) inline,
 * not through global functions (gw_logic.h's gw_cookie_ok, gw_asm's): on a
 * host whose returns go through a mitigation thunk (AMD's Safe RET) a
 * BPF-to-BPF call and return cost ~8 ns, a quarter of a SYN's or a cookie
 * ACK's path (veil-bench-micro, 3 alternations, 2026-12-07: syn +35-37 ->
 * +26-29, syn_v6 +38-40 -> +29-30, cookie_ack +34-37 -> +27-28).  The
 * verifier then walks them on every path that reaches them: 171k -> 266k
 * instructions processed, of the 1M it allows. */
#define VM_GW_COOKIE_OK(sec, p, isn, cookie, tnow) vm_gw_cookie_ok((sec), (p), (isn), (cookie), (tnow))
#define VM_GW_SYN_TIMES(e, cfg, t) gw_syn_times((e)->s ? &(e)->s->clock : 0, (cfg), (t))

VM_INLINE void *vm_env_data(struct vm_gw_env *e) { return XDP_DATA(e->ctx); }
VM_INLINE void *vm_env_data_end(struct vm_gw_env *e) { return XDP_DATA_END(e->ctx); }
VM_INLINE void *vm_env_loadctx(struct vm_gw_env *e) { return e->ctx; }
VM_INLINE __u32 vm_env_ifindex(struct vm_gw_env *e) { return e->ctx->ingress_ifindex; }
/* TAI at the last tick (gw_tai_ns): the scratch is there whenever the
 * secret is, which every path that reads the clock has looked up. */
VM_INLINE __u64 vm_env_tai_ns(struct vm_gw_env *e) { return gw_tai_ns(e->s ? &e->s->clock : 0); }
VM_INLINE __u64 vm_env_coarse_ns(struct vm_gw_env *e) { return bpf_ktime_get_coarse_ns(); }

VM_INLINE int vm_env_resize(struct vm_gw_env *e, __u32 len)
{
	int delta = (int)len - (int)(XDP_DATA_END(e->ctx) - XDP_DATA(e->ctx));
	return delta ? bpf_xdp_adjust_tail(e->ctx, delta) : 0;
}

VM_INLINE int vm_env_push(struct vm_gw_env *e, __u32 n) { return bpf_xdp_adjust_head(e->ctx, -(int)n); }
VM_INLINE int vm_env_pull(struct vm_gw_env *e, __u32 n) { return bpf_xdp_adjust_head(e->ctx, (int)n); }

VM_INLINE const struct gw_config *vm_env_cfg(struct vm_gw_env *e)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&gw_config, &zero);
}

VM_INLINE struct cookie_secret *vm_env_secret(struct vm_gw_env *e)
{
	__u32 zero = 0;
	if (!e->s)
		e->s = bpf_map_lookup_elem(&gw_scratch, &zero);
	if (!e->s)
		return NULL;
	return bpf_map_lookup_elem(&cookie_secret, &zero);
}

/* The VIP from this CPU's copy (gw_vip_get). */
VM_INLINE const struct vip_val *vm_env_vip(struct vm_gw_env *e, const struct vip_key *k)
{
	__u32 zero = 0;

	if (!e->s)
		e->s = bpf_map_lookup_elem(&gw_scratch, &zero);
	return gw_vip_get(e->s, k);
}

VM_INLINE const struct flow_seed *vm_env_flow_seed(struct vm_gw_env *e) { return gw_flow_seed(); }

/* This CPU's flow gate (in its scratch), NULL without the scratch or the
 * counters it reads. */
VM_INLINE struct gw_flow_gate *vm_env_gate(struct vm_gw_env *e)
{
	__u32 zero = 0;

	if (!e->s)
		e->s = bpf_map_lookup_elem(&gw_scratch, &zero);
	return e->s && e->st ? &e->s->gate : 0;
}

/* The flow of key k, the packet's one lookup: this CPU's gate ticked
 * (struct gw_flow_gate, VM_FLOW_GATE_* in wire.h).  Under an ACK flood (the
 * gate on) unknown tuples stop at the filter; otherwise the map is asked
 * at once, sparing a found flow (and a hello, whose flow's put reads the
 * bucket anyway) the filter's line.  The scratch kept in a register, not
 * in e (vm_env_gate): the established path ~1.5 ns faster. */
VM_INLINE struct flow_val *vm_env_flow_gate_get(struct vm_gw_env *e, const struct flow_key *k)
{
	__u32 zero = 0, on = 1;   /* without its scratch or counters: always */
	struct gw_scratch *s = e->s ? e->s : bpf_map_lookup_elem(&gw_scratch, &zero);

	if (s && e->st) {
		vm_gw_gate_tick(&s->gate, e->st);
		on = s->gate.on;
	}
	if (on && !gw_flow_maybe(k))
		return 0;
	return gw_flow_get(k);
}

/* A hello's flow will be put after its parse, and the put's first write
 * is the filter's word (gw_flow_bits_set), a line as cold as the flows
 * map's bucket.  The word is loaded now and nothing waits for the value
 * (the empty asm keeps the load), so its miss runs beside the lookup's
 * rather than stalling the put's atomic OR after the parse: hello_first_burst
 * -100 ns (6 alternations: +640-674 against +673-805 over XDP_TX),
 * hello_first -55 to -90; a hello without a route pays ~4 ns for nothing. */
VM_INLINE void vm_env_flow_soon(struct vm_gw_env *e, const struct flow_key *k)
{
	gw_flow_bits_touch(k);
}

VM_INLINE int vm_env_flow_put(struct vm_gw_env *e, const struct flow_key *k, const struct flow_val *v)
{
	/* never over an entry: the caller found none just before, and one
	 * there now is another CPU's flow for a colliding connection; the
	 * filter's bit before the entry, so no packet finds it unset */
	gw_flow_bits_set(k);
	return gw_flow_new(k, v);
}

VM_INLINE void vm_env_flow_del(struct vm_gw_env *e, const struct flow_key *k, struct flow_val *f)
{
	gw_flow_del(k);
}

VM_INLINE struct flow_val *vm_env_flow_tmp(struct vm_gw_env *e)
{
	return e->s ? &e->s->flow : NULL;
}

VM_INLINE int vm_env_tcpopts(struct vm_gw_env *e, const struct vm_pkt *p, struct vm_tcpopts *o)
{
	__u32 zero = 0, len = p->tcp_len - VM_TCP_HLEN;
	struct gw_scratch *s;

	if (vm_xdp_tcpopts_common(e->ctx, p, o))
		return 0;
	s = bpf_map_lookup_elem(&gw_scratch, &zero);   /* the walk's room: only off the common blocks */
	if (!s || len > VM_TCP_OPT_MAX)
		return -1;
	if (len > 0 && bpf_xdp_load_bytes(e->ctx, p->l4_off + VM_TCP_HLEN, s->optbuf, len))
		return -1;
	return vm_tcpopt_parse(s->optbuf, len, o, &s->ost);
}

/* The hello's first bytes into the scratch, routed by gw_route_hello (a
 * global function: verified once). */
VM_INLINE int vm_env_hello_route(struct vm_gw_env *e, const struct vm_pkt *p, struct flow_val *f,
				 __u32 *hello_len)
{
	struct gw_scratch *s = e->s;
	__u32 len = p->payload_len;
	int rc;

	if (!s)
		return -1;
	if (len > VM_HELLO_BUF)
		len = VM_HELLO_BUF;
	if (len < 1 || bpf_xdp_load_bytes(e->ctx, p->l4_off + p->tcp_len, s->buf, len))
		return -1;
	rc = gw_route_hello(s, (struct gw_hello_win *)s->buf, len);
	*hello_len = s->hello.hello_len;
	return rc;
}

/* The next hop the daemon keeps, as the flow copied it while next_hops has
 * not changed since (one array read instead of a hash lookup per packet),
 * else as this CPU copied it for the node while next_hops has not changed
 * (a new flow: the scratch is there on every path that makes one), else
 * from next_hops; the FIB only for a node the daemon has not resolved. */
VM_INLINE int vm_env_mesh_send(struct vm_gw_env *e, struct flow_val *f, __u8 fam, const __u8 *src, int *why)
{
	const struct next_hop_val *nh;
	__u32 gen = gw_next_hops_gen();
	int rc, verdict;

	if (gen && f->nh_gen == gen) {
		nh = &f->nh;
	} else {
		nh = gw_next_hop(e->s, f->node, gen);
		if (nh && gen) {
			f->nh = *nh;   /* racing writers copy the same bytes */
			f->nh_gen = gen;
		}
	}
	if (nh)
		verdict = vm_xdp_hop_send(e->ctx, nh, &rc);
	else
		verdict = vm_xdp_fib_send(e->ctx, fam, src, f->node, &rc);
	*why = rc == 0 ? VM_SEND_OK : rc == BPF_FIB_LKUP_RET_NO_NEIGH ? VM_SEND_NO_NEIGH :
	       rc == BPF_FIB_LKUP_RET_FRAG_NEEDED ? VM_SEND_MTU : VM_SEND_FAIL;
	return verdict;
}

/* Reassembly is gw_asm's, in TC behind us: the kernel hands it the frame. */
VM_INLINE int vm_env_to_asm(struct vm_gw_env *e, const struct vm_pkt *p, const struct flow_key *k,
			    const struct vip_val *vip)
{
	return XDP_PASS;
}

#include "veil/gw_path.h"

SEC("xdp")
int gw_ingress(struct xdp_md *ctx)
{
	struct vm_gw_env e = { .ctx = ctx, .st = gw_stats_get() };

	return vm_gw_ingress(&e, e.st);
}
