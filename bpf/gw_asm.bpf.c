// SPDX-License-Identifier: Apache-2.0
/*
 * Gateway ClientHello reassembly: TC ingress on the client-facing interface,
 * behind gw_ingress.  gw_ingress hands over (XDP_PASS) the data segments it
 * cannot route alone: a hello whose name is not in its first segment, a hello
 * split across TLS records, and segments that arrive before the first one.
 *
 * Segments are kept whole (headers and payload) in hello_asm.  Each new one
 * extends the contiguous prefix; the prefix, with record headers removed, goes
 * through the same parser as in XDP.  Once the name is there the flow is
 * created and every kept segment is sent to the node, unmodified, each in
 * Geneve with the handoff option (bpf_clone_redirect: one packet in, several
 * out).  Segments still to come find the flow in gw_ingress.
 *
 * Bounds (docs/reassembly.md): VM_ASM_SEGS segments and VM_ASM_BYTES bytes per
 * hello; hello_asm is an array of VM_ASM_SLOTS slots (any of a bucket of
 * VM_ASM_WAYS may hold a given connection: bpf/lib/gw_maps.h), asm_early an
 * LRU map; an entry older than
 * VM_ASM_TIMEOUT_NS is dropped when next touched.
 *
 * The logic is the packet library's (vm_gw_asm_in, include/veil/gw_asm.h),
 * the same code the DPDK fast path runs; this file is its TC environment.
 */
#include "lib/gw_logic.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TC_ACT_OK   0
#define TC_ACT_SHOT 2

/* Lengths masked for the verifier: a reply (at most Ethernet + IPv6 +
 * VM_ASM_REPLY_TCP) and the mesh headers in front of a kept segment. */
#define ASM_REPLY_LEN_MASK 0x7f
#define ASM_HDR_LEN_MASK   0xff
/* The packet length the FIB checks against the route's MTU: any a node
 * must take (Ethernet's). */
#define ASM_FIB_TOT_LEN    1500

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct asm_early);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} asm_early SEC(".maps");

/* Hellos being reassembled that lost bytes the gateway ACKed to newer ones
 * (struct asm_tomb): their next segment is refused. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct asm_tomb);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} asm_lost SEC(".maps");

/* An early segment being made, and the de-recording state. */
struct asm_tmp {
	struct asm_early early;
	struct vm_asm_walk_state w;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct asm_tmp);
} asm_tmp SEC(".maps");

/* The de-recorded hello needs room past VM_HELLO_BUF for the masked copy. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[2 * VM_HELLO_BUF]);
} asm_flat SEC(".maps");

struct vm_gw_env {
	struct __sk_buff *skb;
	struct gw_scratch *s;
	struct asm_tmp *t;
	__u8 *flat;
	__u32 ifindex;            /* the node's next hop (vm_env_emit_route) */
	__u32 asm_way;            /* the hello's slot in its bucket, as found or claimed last */
	__u8 dmac[6];
	__u8 smac[6];
};

#define VM_V_DROP TC_ACT_SHOT
#define VM_GW_COOKIE_OK(sec, p, isn, cookie, tnow) gw_cookie_ok((sec), (p), (isn), (cookie), (tnow))
#define VM_GW_SYN_TIMES(e, cfg, t) gw_syn_times((e)->s ? &(e)->s->clock : 0, (cfg), (t))
#define VM_LOAD_BYTES(ctx, off, dst, len) bpf_skb_load_bytes((ctx), (off), (dst), (len))
#include "veil/geneve.h"

VM_INLINE void *vm_env_loadctx(struct vm_gw_env *e) { return e->skb; }
VM_INLINE __u32 vm_env_ifindex(struct vm_gw_env *e) { return e->skb->ingress_ifindex; }
VM_INLINE __u64 vm_env_tai_ns(struct vm_gw_env *e) { return gw_tai_ns(e->s ? &e->s->clock : 0); }
VM_INLINE __u64 vm_env_coarse_ns(struct vm_gw_env *e) { return bpf_ktime_get_coarse_ns(); }
/* Ages held hellos (a 5 s timeout, the oldest of a bucket): the coarse
 * clock, a load, where bpf_ktime_get_ns reads the clocksource (a
 * paravirtual clock's page on a VM). */
VM_INLINE __u64 vm_env_asm_ns(struct vm_gw_env *e) { return bpf_ktime_get_coarse_ns(); }

/* The flow's place from a global function (verified once: the lookup's
 * paths inline made this program's verification pass the verifier's
 * million instructions), its slot taken here. */
__attribute__((noinline)) long gw_asm_flow_at(const struct flow_key *k)
{
	struct vm_ft_place pl;

	if (!k)
		return -1;
	return vm_ft_index(0, k, gw_flow_seed(), gw_flow_buckets, sizeof(struct flow_val), &pl);
}

VM_INLINE struct flow_val *vm_env_flow_get(struct vm_gw_env *e, const struct flow_key *k)
{
	long at = gw_asm_flow_at(k);
	struct vm_ft_head *b;
	struct vm_ft_slot *sl;

	if (at < 0)
		return 0;
	b = gw_flow_bucket((__u32)(at / VM_FT_WAYS));
	if (!b)
		return 0;
	sl = vm_ft_slot_at(b, (__u32)at, sizeof(struct flow_val));
	sl->ref = 1;
	return vm_ft_val(sl);
}

VM_INLINE int vm_env_flow_put(struct vm_gw_env *e, const struct flow_key *k, const struct flow_val *v)
{
	/* never over an entry: the caller found none just before, and one
	 * there now is another CPU's flow for a colliding connection; the
	 * filter's bit before the entry (gw_ingress looks up only behind it) */
	gw_flow_bits_set(k);
	return gw_flow_new(k, v);
}

VM_INLINE struct flow_val *vm_env_flow_tmp(struct vm_gw_env *e) { return &e->s->flow; }

/* The client's options (its timestamps, to answer with them). */
VM_INLINE int vm_env_tcpopts(struct vm_gw_env *e, const struct vm_pkt *p, struct vm_tcpopts *o)
{
	__u32 optlen = p->tcp_len - VM_TCP_HLEN;
	struct gw_scratch *s = e->s;

	if (optlen > VM_TCP_OPT_MAX ||
	    (optlen && bpf_skb_load_bytes(e->skb, p->l4_off + VM_TCP_HLEN, s->optbuf, optlen)))
		return -1;
	return vm_tcpopt_parse(s->optbuf, optlen, o, &s->ost);
}

VM_INLINE struct asm_val *vm_env_asm_get(struct vm_gw_env *e, const struct flow_key *k)
{
	return gw_asm_find_way(k, &e->asm_way);
}

VM_INLINE struct asm_val *vm_env_asm_new(struct vm_gw_env *e, const struct flow_key *k)
{
	struct flow_key gone;
	struct asm_tomb tomb;
	int lost = 0;
	struct asm_val *v = gw_asm_claim(k, bpf_ktime_get_coarse_ns(), &tomb, &gone, &lost, &e->asm_way);

	if (v && lost)
		bpf_map_update_elem(&asm_lost, &gone, &tomb, BPF_ANY);
	return v;
}

VM_INLINE struct asm_tomb *vm_env_tomb_get(struct vm_gw_env *e, const struct flow_key *k)
{
	return bpf_map_lookup_elem(&asm_lost, k);
}

VM_INLINE void vm_env_tomb_del(struct vm_gw_env *e, const struct flow_key *k, struct asm_tomb *t)
{
	bpf_map_delete_elem(&asm_lost, k);
}

VM_INLINE void vm_env_asm_del(struct vm_gw_env *e, const struct flow_key *k, struct asm_val *a)
{
	gw_asm_free_way(k, a, e->asm_way);
}

VM_INLINE struct asm_early *vm_env_early_get(struct vm_gw_env *e, const struct flow_key *k)
{
	return bpf_map_lookup_elem(&asm_early, k);
}

VM_INLINE void vm_env_early_del(struct vm_gw_env *e, const struct flow_key *k, struct asm_early *ea)
{
	bpf_map_delete_elem(&asm_early, k);
}

VM_INLINE struct asm_early *vm_env_early_tmp(struct vm_gw_env *e, const struct flow_key *k)
{
	return &e->t->early;
}

VM_INLINE int vm_env_early_put(struct vm_gw_env *e, const struct flow_key *k, struct asm_early *ea)
{
	return bpf_map_update_elem(&asm_early, k, ea, BPF_ANY);
}

VM_INLINE __u8 *vm_env_flat(struct vm_gw_env *e) { return e->flat; }
VM_INLINE struct vm_asm_walk_state *vm_env_walk(struct vm_gw_env *e) { return &e->t->w; }

/* The joined hello, routed where it was joined by gw_route_hello
 * (verified once). */
VM_INLINE int vm_env_asm_route(struct vm_gw_env *e, __u8 *flat, __u32 len, struct flow_val *f, __u32 *hello_len)
{
	struct gw_scratch *s = e->s;
	int rc = gw_route_hello(s, (struct gw_hello_win *)flat, len);
	*hello_len = s->hello.hello_len;
	return rc;
}

/* Replies are built in s->frame over a copy of the frame's head (its IP
 * header: IPv6's length, or IPv4's from a shorter frame), then written back
 * and sent out of the interface the frame came in on. */
VM_INLINE __u8 *vm_env_reply_buf(struct vm_gw_env *e, void **end)
{
	__u8 *b = e->s->frame;

	if (bpf_skb_load_bytes(e->skb, 0, b, ETH_HLEN + VM_IP6_HLEN) &&
	    bpf_skb_load_bytes(e->skb, 0, b, ETH_HLEN + VM_IP4_HLEN))
		return NULL;
	*end = b + sizeof(e->s->frame);
	return b;
}

VM_INLINE int vm_env_reply_send(struct vm_gw_env *e, __u8 *b, __u32 tot)
{
	if (bpf_skb_change_tail(e->skb, tot, 0) || bpf_skb_store_bytes(e->skb, 0, b, tot & ASM_REPLY_LEN_MASK, 0)) {
		GW_COUNT(gw_stats_get(), reply_fail);
		return TC_ACT_SHOT;
	}
	return bpf_redirect(e->skb->ifindex, 0);
}

/* The node's next hop: the one the daemon keeps in next_hops, through this
 * CPU's copies (gw_next_hop, as gw_ingress), with the MTU check the FIB
 * makes; the FIB only for a node the daemon has not resolved. */
VM_INLINE int vm_env_emit_route(struct vm_gw_env *e, __u8 fam, const __u8 *src, const __u8 *node, int *why)
{
	struct bpf_fib_lookup fib = {};
	const struct next_hop_val *nh;
	int rc;

	nh = gw_next_hop(e->s, node, gw_next_hops_gen());
	if (nh) {
		if (nh->mtu < ASM_FIB_TOT_LEN) {
			*why = VM_SEND_FAIL;   /* what the FIB's FRAG_NEEDED gives below */
			return -1;
		}
		e->ifindex = nh->ifindex;
		__builtin_memcpy(e->dmac, nh->dmac, 6);
		__builtin_memcpy(e->smac, nh->smac, 6);
		*why = VM_SEND_OK;
		return 0;
	}
	if (fam == VM_AF_INET) {
		fib.family = AF_INET_;
		__builtin_memcpy(&fib.ipv4_src, src + VM_ADDR4_OFF, 4);
		__builtin_memcpy(&fib.ipv4_dst, node + VM_ADDR4_OFF, 4);
	} else {
		fib.family = AF_INET6_;
		__builtin_memcpy(fib.ipv6_src, src, 16);
		__builtin_memcpy(fib.ipv6_dst, node, 16);
	}
	fib.ifindex = e->skb->ingress_ifindex;
	fib.l4_protocol = IPPROTO_UDP_;
	fib.tot_len = ASM_FIB_TOT_LEN;
	rc = bpf_fib_lookup(e->skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		*why = rc == BPF_FIB_LKUP_RET_NO_NEIGH ? VM_SEND_NO_NEIGH : VM_SEND_FAIL;
		return -1;
	}
	e->ifindex = fib.ifindex;
	__builtin_memcpy(e->dmac, fib.dmac, 6);
	__builtin_memcpy(e->smac, fib.smac, 6);
	*why = VM_SEND_OK;
	return 0;
}

/* The mesh headers, in a frame of their own: inlined, their temporaries
 * would push gw_asm's stack over the limit. */
#define ASM_FRAME_LEN sizeof(((struct gw_scratch *)0)->frame)
static __attribute__((noinline)) int asm_geneve_write(__u8 *h, const struct flow_val *f, const __u8 *src,
						       __u32 proto_inner, __u16 sport)
{
	if (!h || !f || !src)
		return -1;
	return vm_geneve_write(h, h + ASM_FRAME_LEN, f->node_family, src, f->node, proto_inner >> 16,
			       proto_inner & 0xffff, VM_GNV_HANDOFF, &f->handoff, sport);
}

/* One kept segment to the node: the headers built in s->frame, the frame
 * rewritten to them and the segment, and a clone sent (one packet in,
 * several out); in_place, the skb itself redirected (the last segment:
 * one skb clone fewer). */
VM_INLINE int vm_env_emit_seg(struct vm_gw_env *e, const struct flow_val *f, const __u8 *src, __u32 proto_inner,
			      __u16 sport, const struct asm_seg *sg, const struct asm_val *a, int in_place)
{
	struct __sk_buff *skb = e->skb;
	__u8 *h = e->s->frame;
	__u32 hl = sg->hlen, pl = sg->len, so = sg->off, inner = hl + pl;
	__u32 hdrlen = ETH_HLEN + VM_L3_HLEN(f->node_family) + VM_UDP_HLEN + VM_GENEVE_HLEN + VM_HANDOFF_OPT_LEN;

	VM_BARRIER_VAR(so);
	if (hl < VM_IP_TCP_MIN || hl > VM_ASM_HDR || pl > VM_ASM_SEG_MAX)
		return -1;
	__builtin_memcpy(h, e->dmac, VM_ETH_ALEN);
	__builtin_memcpy(h + VM_ETH_ALEN, e->smac, VM_ETH_ALEN);
	if (asm_geneve_write(h, f, src, (proto_inner & 0xffff0000) | inner, sport))
		return -1;
	if (bpf_skb_change_tail(skb, hdrlen + inner, 0) ||
	    bpf_skb_store_bytes(skb, 0, h, hdrlen & ASM_HDR_LEN_MASK, 0) ||
	    bpf_skb_store_bytes(skb, hdrlen, sg->hdr, hl, 0) ||
	    (pl && bpf_skb_store_bytes(skb, hdrlen + hl, &a->payload[so & (VM_ASM_BYTES - 1)], pl, 0)))
		return -1;
	if (in_place)
		return bpf_redirect(e->ifindex, 0);
	if (bpf_clone_redirect(skb, e->ifindex, 0))
		return -1;
	return 0;
}

#include "veil/gw_asm.h"

SEC("tc")
int gw_asm(struct __sk_buff *skb)
{
	struct gw_stats *st = gw_stats_get();
	struct vm_gw_env e = { .skb = skb };
	struct vm_pkt p = {};
	struct vip_key vk = {};
	const struct vip_val *vip;
	struct flow_key k VM_KEY_ALIGNED;   /* stored as words (vm_flow_key_make) */
	struct gw_config *cfg;
	struct cookie_secret *sec;
	void *data, *data_end;
	__u32 zero = 0;

	if (bpf_skb_pull_data(skb, ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN + VM_TCP_OPT_MAX) &&
	    skb->len >= ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN + VM_TCP_OPT_MAX)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN > data_end)
		return TC_ACT_OK;
	if (vm_parse_ip_tcp(data, data_end, skb->len, ETH_HLEN, ((struct ethhdr *)data)->h_proto, &p))
		return TC_ACT_OK;
	vm_vip_key_of(&p, &vk);
	e.s = bpf_map_lookup_elem(&gw_scratch, &zero);
	vip = gw_vip_get(e.s, &vk);
	if (!vip)
		return TC_ACT_OK;             /* not ours: the kernel's */
	cfg = bpf_map_lookup_elem(&gw_config, &zero);
	sec = bpf_map_lookup_elem(&cookie_secret, &zero);
	e.t = bpf_map_lookup_elem(&asm_tmp, &zero);
	e.flat = bpf_map_lookup_elem(&asm_flat, &zero);
	if (!cfg || !sec || !e.s || !e.t || !e.flat) {
		GW_COUNT(st, no_config);
		return TC_ACT_SHOT;
	}
	vm_flow_key_of(&p, p.family == VM_AF_INET ? 0 : gw_flow_seed(), &k);
	gw_flow_bits_touch(&k);   /* the segment that completes a hello puts its flow */
	return vm_gw_asm_in(&e, &p, vip, &k, cfg, sec, st);
}
