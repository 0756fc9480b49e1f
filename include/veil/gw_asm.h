/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's ClientHello reassembly, written once (docs/reassembly.md):
 * what gw_ingress hands over (a hello whose name is not in its first
 * segment, a hello split across TLS records, a segment that came before the
 * first) is kept whole, headers and payload; each new segment extends the
 * contiguous prefix, whose records are joined into one and parsed; once the
 * name is there the flow is created and every kept segment goes to the node
 * in Geneve with the handoff option.  bpf/gw_asm.bpf.c (TC behind XDP) and
 * the fast path (dataplane/fp_env.c) are its environments.
 *
 * Hooks, besides those of include/veil/gw_path.h the reassembly also uses
 * (VM_V_DROP, VM_GW_COOKIE_OK, VM_GW_SYN_TIMES (optional), vm_env_tai_ns, vm_env_coarse_ns,
 * vm_env_ifindex, vm_env_flow_get, vm_env_flow_put, vm_env_flow_tmp,
 * vm_env_tcpopts, vm_env_loadctx and VM_LOAD_BYTES):
 *   __u64 vm_env_asm_ns(e)                 the clock that ages held hellos
 *   struct asm_val *vm_env_asm_get(e, k), *vm_env_asm_new(e, k)   (NULL: full)
 *                                          new: the entry already there for k, or one
 *                                          whose family, nseg, have and routed are 0
 *                                          (its segments and payload need not be zero:
 *                                          only what nseg and have cover is read)
 *   void vm_env_asm_del(e, k, struct asm_val *)
 *   struct asm_early *vm_env_early_get(e, k)
 *   void vm_env_early_del(e, k, struct asm_early *)
 *   struct asm_early *vm_env_early_tmp(e, k), int vm_env_early_put(e, k, struct asm_early *)
 *   struct asm_tomb *vm_env_tomb_get(e, k), void vm_env_tomb_del(e, k, struct asm_tomb *)
 *                                          a hello that lost bytes we ACKed to newer
 *                                          ones (the env makes them: vm_asm_tomb_make)
 *   __u8 *vm_env_flat(e)                   2 * VM_HELLO_BUF bytes for the joined records
 *   struct vm_asm_walk_state *vm_env_walk(e)   the joining's state
 *   int vm_env_asm_route(e, __u8 *flat, __u32 len, struct flow_val *f, __u32 *hello_len)
 *                                          routes the joined hello (vm_gw_route_hello)
 *   __u8 *vm_env_reply_buf(e, void **end)  the frame's head to build a reply on
 *                                          (in place, or a copy)
 *   int vm_env_reply_send(e, __u8 *b, __u32 len)   the reply out: the verdict
 *   int vm_env_emit_route(e, family, const __u8 *src, const __u8 *node, int *why)
 *                                          the next hop of the node (VM_SEND_*)
 *   int vm_env_emit_seg(e, const struct flow_val *, const __u8 *src, __u32 proto_inner,
 *                       __u16 sport, const struct asm_seg *, const struct asm_val *, int in_place)
 *                                          one kept segment to the node: as a packet of
 *                                          its own (0), or (in_place) as the packet in
 *                                          hand, rewritten: the verdict; -1 on failure
 */
#ifndef VEIL_GW_ASM_H
#define VEIL_GW_ASM_H

#include "gw.h"
#include "gw_hello.h"
#include "geneve.h"

#ifndef VM_GW_SYN_TIMES
#define VM_GW_SYN_TIMES(e, cfg, t) VM_GW_SYN_TIMES_AT_TAI(e, cfg, t)
#endif

#define VM_ASM_MASK (VM_ASM_BYTES - 1)
#define VM_ASM_RECORDS 32             /* TLS records joined into one at most */

#define VM_ASM_REPLY_RST   1
#define VM_ASM_REPLY_ALERT 2
#define VM_ASM_REPLY_ACK   3
/* TCP bytes of a reply, written and summed whole: the header, NOP NOP TS
 * and the alert, zero-padded. */
#define VM_ASM_REPLY_TCP   40
_Static_assert(VM_TCP_HLEN + VM_TCPOLEN_TS_ALIGNED + VM_TLS_ALERT_LEN <= VM_ASM_REPLY_TCP, "reply room");

/* Copies n bytes that the verifier cannot bound statically. */
#ifdef __bpf__
#define VM_COPY(dst, n, src) bpf_probe_read_kernel((dst), (n), (src))
#else
#define VM_COPY(dst, n, src) (__builtin_memcpy((dst), (src), (n)), 0)
#endif

/* Copies n bytes from offset off of the size-byte array base (the bytes
 * must lie within it: -1 otherwise).  In BPF through a dynptr over the
 * array: the kernel's memcpy, where bpf_probe_read_kernel copies a word at
 * a time with a fault check on each (~10% of gw_asm's time went to joining
 * a hello's records that way). */
#ifdef __bpf__
#define VM_COPY_AT(dst, n, base, size, off) ({                                  \
	struct bpf_dynptr vm_cp_d_;                                              \
	bpf_dynptr_from_mem((base), (size), 0, &vm_cp_d_) ? -1 :                 \
		(bpf_dynptr_read((dst), (n), &vm_cp_d_, (off), 0) ? -1 : 0);     \
})
#else
#define VM_COPY_AT(dst, n, base, size, off)                                      \
	((__u64)(off) + (n) > (size) ? -1 : (__builtin_memcpy((dst), (const __u8 *)(base) + (off), (n)), 0))
#endif


struct vm_asm_walk {
	struct asm_val *a;
	struct vm_asm_walk_state *t;
	__u8 *flat;
};

/* One step of growing a->have over the kept segments: passes over the
 * nseg segments until one adds nothing.  Every pass but the last grows the
 * prefix by a segment at least, so (VM_ASM_SEGS + 1) passes of
 * (VM_ASM_SEGS + 1) steps (a segment each, and the pass's end) always reach
 * the end; segments in order take two passes. */
VM_CALLBACK long vm_asm_contig_step(__u32 j, void *ctx)
{
	struct vm_asm_walk *w = ctx;
	struct asm_val *a = w->a;
	struct vm_asm_walk_state *t = w->t;
	__u64 i = t->seg;

	VM_BARRIER_VAR(i);            /* keep the bound check clang would drop */
	if (i >= VM_ASM_SEGS || i >= a->nseg) {
		if (!t->grew)
			return 1;     /* a pass without growth: the prefix is whole */
		t->grew = 0;
		t->seg = 0;
		return 0;
	}
	t->seg = i + 1;
	struct asm_seg *sg = &a->seg[i];
	if (sg->off <= a->have && sg->off + sg->len > a->have) {
		a->have = sg->off + sg->len;
		t->grew = 1;
	}
	return 0;
}

/* Copies one TLS record's body from the contiguous payload to flat[]. */
VM_CALLBACK long vm_asm_derec_step(__u32 k, void *ctx)
{
	struct vm_asm_walk *w = ctx;
	struct asm_val *a = w->a;
	struct vm_asm_walk_state *t = w->t;
	__u64 r = t->r, have = t->have, rlen, n;

	if (r + VM_TLS_REC_HLEN > have)
		return 1;
	r &= VM_ASM_MASK;
	if (a->payload[r] != VM_TLS_CT_HANDSHAKE) {
		t->rc = -1;
		return 1;
	}
	rlen = ((__u64)a->payload[(r + VM_TLS_REC_LEN_OFF) & VM_ASM_MASK] << 8) |
	       a->payload[(r + VM_TLS_REC_LEN_OFF + 1) & VM_ASM_MASK];
	n = have - t->r - VM_TLS_REC_HLEN; /* 64-bit all along: the bound below holds for the call */
	if (n > rlen)
		n = rlen;
	if (n > VM_HELLO_BUF)
		return 1;
	__u64 o = t->out & (VM_HELLO_BUF - 1);
	if (n && VM_COPY_AT(&w->flat[o], n, a->payload, sizeof(a->payload), (r + VM_TLS_REC_HLEN) & VM_ASM_MASK))
		return 1;
	t->out += n;
	t->r += VM_TLS_REC_HLEN + rlen;
	return n < rlen; /* a record still incomplete: stop */
}

/* The contiguous prefix, its TLS records joined into one in flat (a record
 * header claiming only the bytes held, so a hello still incomplete parses
 * as partial).  Returns the joined length with its header, or -1 when the
 * prefix is not TLS. */
VM_INLINE int vm_asm_flatten(struct asm_val *a, struct vm_asm_walk_state *t, __u8 *flat)
{
	struct vm_asm_walk w = { .a = a, .t = t, .flat = flat };

	t->seg = 0;
	t->grew = 0;
	VM_LOOP((VM_ASM_SEGS + 1) * (VM_ASM_SEGS + 1), vm_asm_contig_step, &w);
	t->have = a->have;
	t->r = 0;
	t->out = VM_TLS_REC_HLEN;
	t->rc = 0;
	VM_LOOP(VM_ASM_RECORDS, vm_asm_derec_step, &w);
	if (t->rc < 0 || t->have < 1)
		return -1;
	__u32 body = t->out - VM_TLS_REC_HLEN, rl = body > VM_TLS_MAX_CIPHERTEXT ? VM_TLS_MAX_CIPHERTEXT : body;
	flat[0] = VM_TLS_CT_HANDSHAKE;
	flat[1] = VM_TLS_VERSION_MAJOR;
	flat[2] = VM_TLS_MINOR_TLS10;
	flat[VM_TLS_REC_LEN_OFF] = rl >> 8;
	flat[VM_TLS_REC_LEN_OFF + 1] = rl & 0xff;
	return (int)t->out;
}

/* Keeps a segment: its IP and TCP headers and its payload at off. */
VM_INLINE int vm_asm_store_seg(void *lctx, struct asm_val *a, const struct vm_pkt *p, __u32 off)
{
	__u64 n = a->nseg;
	__u32 hlen = p->l3_len + p->tcp_len, plen = p->payload_len;

	VM_BARRIER_VAR(n);           /* the bound must be on the register that indexes */
	if (n >= VM_ASM_SEGS || hlen < VM_IP_TCP_MIN || hlen > VM_ASM_HDR || plen > VM_ASM_SEG_MAX ||
	    off + plen > VM_ASM_BYTES)
		return -1;
	struct asm_seg *sg = &a->seg[n];
	if (VM_LOAD_BYTES(lctx, VM_ETH_HLEN, sg->hdr, hlen))
		return -1;
	VM_BARRIER_VAR(off);
	if (plen && VM_LOAD_BYTES(lctx, p->l4_off + p->tcp_len, &a->payload[off & VM_ASM_MASK], plen))
		return -1;
	sg->off = off;
	sg->len = plen;
	sg->hlen = hlen;
	a->nseg = n + 1;
	return 0;
}

/* Moves an early segment (kept before the first one) into the hello. */
VM_INLINE void vm_asm_merge_early(struct asm_val *a, const struct asm_early *e)
{
	__u64 n = a->nseg;
	__u32 off;

	VM_BARRIER_VAR(n);
	off = e->seq - (a->client_isn + 1);
	if (e->ack == a->cookie_isn + 1 && n < VM_ASM_SEGS && off < VM_ASM_BYTES &&
	    e->len <= VM_ASM_SEG_MAX && off + e->len <= VM_ASM_BYTES && e->hlen >= VM_IP_TCP_MIN &&
	    e->hlen <= VM_ASM_HDR) {
		struct asm_seg *sg = &a->seg[n];
		__u32 len = e->len, hlen = e->hlen;
		VM_BARRIER_VAR(off);
		if (!VM_COPY(sg->hdr, hlen, e->hdr) &&
		    !VM_COPY(&a->payload[off & VM_ASM_MASK], len, e->payload)) {
			sg->off = off;
			sg->len = len;
			sg->hlen = hlen;
			a->nseg = n + 1;
		}
	}
}

/* Writes an answer to the client over the frame's head at b (its Ethernet,
 * IP and TCP headers as received): a refusal (RST, or the TLS alert with
 * FIN), or an ACK for the hello bytes held; with want_ts, a timestamp
 * option as the client negotiated it.  Returns the frame's new length, or 0
 * when it does not fit before end. */
VM_INLINE __u32 vm_asm_reply_write(__u8 *b, void *end, const struct vm_pkt *p, int kind, __u32 ack, int want_ts,
				   __u32 tsval, __u32 tsecr)
{
	__u32 l3 = p->l3_len, plen = kind == VM_ASM_REPLY_ALERT ? VM_TLS_ALERT_LEN : 0;
	__u32 olen = want_ts ? VM_TCPOLEN_TS_ALIGNED : 0;
	struct vm_tcp *t;
	__u64 sum;
	__u8 mac[6];

	if ((void *)(b + VM_ETH_HLEN + VM_IP6_HLEN + VM_ASM_REPLY_TCP) > end)
		return 0;
	__builtin_memcpy(mac, b, VM_ETH_ALEN);
	__builtin_memcpy(b, b + VM_ETH_ALEN, VM_ETH_ALEN);
	__builtin_memcpy(b + VM_ETH_ALEN, mac, VM_ETH_ALEN);
	if (l3 == VM_IP4_HLEN) {
		struct vm_ip4 *ip = (struct vm_ip4 *)(b + VM_ETH_HLEN);
		__builtin_memcpy(&ip->saddr, p->daddr + VM_ADDR4_OFF, 4);
		__builtin_memcpy(&ip->daddr, p->saddr + VM_ADDR4_OFF, 4);
		ip->tos = 0;
		ip->tot_len = vm_htons(VM_IP4_HLEN + VM_TCP_HLEN + olen + plen);
		ip->id = 0;
		ip->frag_off = vm_htons(VM_IP4_DF);
		ip->ttl = VM_IP_TTL;
		ip->check = vm_ip4_csum(ip);
		t = (struct vm_tcp *)(b + VM_ETH_HLEN + VM_IP4_HLEN);
	} else {
		struct vm_ip6 *ip6 = (struct vm_ip6 *)(b + VM_ETH_HLEN);
		__builtin_memcpy(ip6->saddr, p->daddr, 16);
		__builtin_memcpy(ip6->daddr, p->saddr, 16);
		ip6->ver_tc_fl = vm_htonl(VM_IP6_VER_WORD);
		ip6->payload_len = vm_htons(VM_TCP_HLEN + olen + plen);
		ip6->hop_limit = VM_IP_TTL;
		t = (struct vm_tcp *)(b + VM_ETH_HLEN + VM_IP6_HLEN);
	}
	__builtin_memset(t, 0, VM_ASM_REPLY_TCP);
	t->source = p->dport;
	t->dest = p->sport;
	t->seq = vm_htonl(p->ack);
	t->ack_seq = vm_htonl(ack);
	t->doff_res = ((VM_TCP_HLEN + olen) / 4) << 4;
	t->flags = kind == VM_ASM_REPLY_ALERT ? (VM_TCP_ACK | VM_TCP_PSH | VM_TCP_FIN) :
		   kind == VM_ASM_REPLY_RST ? (VM_TCP_RST | VM_TCP_ACK) : VM_TCP_ACK;
	t->window = kind == VM_ASM_REPLY_RST ? 0 : vm_htons(VM_TCP_WIN_MAX);
	__u8 *o = (__u8 *)t + VM_TCP_HLEN;
	if (want_ts) {
		__u32 v = vm_htonl(tsval), e = vm_htonl(tsecr);
		o[0] = VM_TCPOPT_NOP; o[1] = VM_TCPOPT_NOP; o[2] = VM_TCPOPT_TS; o[3] = VM_TCPOLEN_TS;
		__builtin_memcpy(o + 4, &v, 4);
		__builtin_memcpy(o + 8, &e, 4);
		o += VM_TCPOLEN_TS_ALIGNED;
	}
	if (kind == VM_ASM_REPLY_ALERT)
		vm_tls_alert_write(o);
	sum = vm_pseudo_sum(p->family, p->daddr, p->saddr, VM_TCP_HLEN + olen + plen);
	for (int i = 0; i < VM_ASM_REPLY_TCP / 4; i++)
		sum += ((vm_u32a *)t)[i];
	t->check = ~vm_csum_fold(sum);
	return VM_ETH_HLEN + l3 + VM_TCP_HLEN + olen + plen;
}

VM_INLINE int vm_asm_reply(struct vm_gw_env *e, const struct vm_pkt *p, int kind, __u32 ack, int want_ts,
			   __u32 tsval, __u32 tsecr, struct gw_stats *st)
{
	void *end;
	__u8 *b = vm_env_reply_buf(e, &end);
	__u32 tot;

	if (!b || (p->l3_len != VM_IP4_HLEN && p->l3_len != VM_IP6_HLEN) ||
	    !(tot = vm_asm_reply_write(b, end, p, kind, ack, want_ts, tsval, tsecr))) {
		VM_GW_COUNT(st, reply_fail);
		return VM_V_DROP;
	}
	return vm_env_reply_send(e, b, tot);
}

/* ACKs the hello bytes held, as the server the client believes we are (a
 * hello longer than the client's initial window needs ACKs to keep
 * coming); our TSval is the one the client echoes. */
VM_INLINE int vm_asm_ack_held(struct vm_gw_env *e, const struct vm_pkt *p, const struct asm_val *a,
			      struct gw_stats *st)
{
	struct vm_tcpopts o;

	if (a->have && vm_env_tcpopts(e, p, &o) == 0)
		return vm_asm_reply(e, p, VM_ASM_REPLY_ACK, a->client_isn + 1 + a->have, o.ts_ok, o.tsecr, o.tsval,
				    st);
	return VM_V_DROP;
}

/* 1 when kept segment sg is the packet in hand p: the same bytes of the
 * hello, and the same IP packet length (so its Geneve frame is p's frame
 * with the mesh headers in front: it fits where p is). */
VM_INLINE int vm_asm_seg_is(const struct vm_pkt *p, const struct asm_val *a, const struct asm_seg *sg)
{
	return p->seq - (a->client_isn + 1) == sg->off && p->payload_len == sg->len &&
	       (__u32)p->l3_len + p->tcp_len == sg->hlen;
}

/* Sends every kept segment to the node, each in Geneve with the handoff
 * option: the packet's verdict.  The last one goes as the packet in hand
 * when it is that packet (the usual case: the segment that completed the
 * hello), the others as packets of their own (a clone each in TC). */
VM_INLINE int vm_asm_emit_all(struct vm_gw_env *e, const struct vm_pkt *p, const struct asm_val *a,
			      const struct flow_val *f, const struct gw_config *cfg, struct gw_stats *st)
{
	const __u8 *src;
	int why;

	if (f->node_family == VM_AF_INET) {
		if (!cfg->has_underlay4) {
			VM_GW_COUNT(st, no_config);
			return -1;
		}
		src = cfg->underlay4;
	} else {
		if (!cfg->has_underlay6) {
			VM_GW_COUNT(st, no_config);
			return -1;
		}
		src = cfg->underlay6;
	}
	if (vm_env_emit_route(e, f->node_family, src, f->node, &why)) {
		if (why == VM_SEND_NO_NEIGH)
			VM_GW_COUNT(st, no_neigh);
		else
			VM_GW_COUNT(st, fib_fail);
		return VM_V_DROP;
	}
	__u16 sport = vm_flow_port(p->saddr, p->daddr, p->sport, p->dport);  /* as gw_ingress */

	for (__u32 i = 0; i < VM_ASM_SEGS; i++) {
		if (i >= a->nseg)
			break;
		const struct asm_seg *sg = &a->seg[i];
		__u32 hl = sg->hlen, pl = sg->len, inner = hl + pl;
		if (hl < VM_IP_TCP_MIN || hl > VM_ASM_HDR || pl > VM_ASM_SEG_MAX) {
			VM_GW_COUNT(st, malformed);
			return VM_V_DROP;
		}
		int in_place = i + 1 == a->nseg && vm_asm_seg_is(p, a, sg);
		int v = vm_env_emit_seg(e, f, src,
					((sg->hdr[0] >> 4) == VM_IP6_VERSION ? VM_GENEVE_PROTO_IP6 :
					 VM_GENEVE_PROTO_IP4) << 16 | inner,
					sport, sg, a, in_place);
		if (v < 0) {
			VM_GW_COUNT(st, encap_fail);
			return VM_V_DROP;
		}
		VM_GW_COUNT(st, asm_sent);
		if (in_place)
			return v;
	}
	return VM_V_DROP;
}

/* A connection whose hello bytes we ACKed and no longer hold before they
 * reached the node (held_lost: a hello still being reassembled): the client
 * will not send them again, so it cannot complete.  Refused at
 * once, rather than left to hang until the client gives up: a RST at the
 * VM's next sequence (the client's ack: a TLS server sends nothing before
 * the whole hello). */
VM_INLINE int vm_asm_refuse_lost(struct vm_gw_env *e, const struct vm_pkt *p, struct gw_stats *st)
{
	VM_GW_COUNT(st, held_lost);
	VM_GW_COUNT(st, refused_rst);
	return vm_asm_reply(e, p, VM_ASM_REPLY_RST, p->seq + p->payload_len, 0, 0, 0, st);
}

/* A data segment the ingress could not route alone (p parsed, for the VIP
 * vip, flow key k): kept, ACKed, and once the name is known routed. */
VM_INLINE int vm_gw_asm_in(struct vm_gw_env *e, const struct vm_pkt *p, const struct vip_val *vip,
			   const struct flow_key *k, const struct gw_config *cfg, struct cookie_secret *sec,
			   struct gw_stats *st)
{
	struct asm_val *a;
	struct flow_val *f;
	__u32 off, hello_len = 0;
	int rc, out, fresh = 0;

	if (!p->payload_len || (p->flags & (VM_TCP_SYN | VM_TCP_RST))) {
		VM_GW_COUNT(st, malformed);       /* the ingress hands over only data */
		return VM_V_DROP;
	}
	f = vm_env_flow_get(e, k);
	if (f && !VM_FLOW_OF(f, p)) {
		/* Another connection's flow holds this key (the ingress counted
		 * the collision): this one cannot have a flow; refused. */
		VM_GW_COUNT(st, refused_rst);
		return vm_asm_reply(e, p, VM_ASM_REPLY_RST, p->seq + p->payload_len, 0, 0, 0, st);
	}
	if (f) {
		if (f->held_len & VM_HELD_LOST) {
			/* counted when the copy was found gone; the ingress no
			 * longer hands such a flow's segments over */
			VM_GW_COUNT(st, asm_late);
			return VM_V_DROP;
		}
		a = vm_env_asm_get(e, k);
		if (f->held_len && a && a->routed && a->client_isn == f->client_isn) {
			/* The client resends hello bytes we ACKed: the node may
			 * lack one of them.  Send it every held segment again;
			 * the copy lasts until the VM acknowledges the hello. */
			VM_GW_COUNT(st, hello_resent);
			return vm_asm_emit_all(e, p, a, f, cfg, st);
		}
		if (f->held_len) {
			/* Evicted before the VM acknowledged it (or released
			 * on another CPU this moment): what the node lacks, if
			 * anything, is lost.  Not refused here: the node most
			 * often has every segment (the copy is for a lost one),
			 * and the client's retransmission may be a probe.  From
			 * now on it goes as any segment of the flow, and the
			 * VM's answers to it tell (gw_return, VM_HELD_LOST). */
			VM_GW_COUNT(st, held_lost);
			f->held_len |= VM_HELD_LOST;
			f->held_dups = 0;
			return VM_V_DROP;
		}
		/* routed while this segment was on its way: it travels with the
		 * handoff option from the ingress when the client sends it again */
		VM_GW_COUNT(st, asm_late);
		return VM_V_DROP;
	}

	a = vm_env_asm_get(e, k);
	if (a && a->routed) {
		/* held for a flow that has since gone (RST, a new SYN) */
		vm_env_asm_del(e, k, a);
		a = 0;
	}
	if (a && vm_env_asm_ns(e) - a->first_ns > VM_ASM_TIMEOUT_NS) {
		/* this connection's own hello, part of it ACKed: what we
		 * ACKed is gone with it and the client will not send it
		 * again, so the connection cannot complete: refused now.
		 * Its first segment again (our ACKs lost) starts it anew. */
		int dead = a->have && VM_FLOW_OF(a, p) && p->ack == a->cookie_isn + 1 && p->seq != a->client_isn + 1;
		VM_GW_COUNT(st, asm_timeout);
		vm_env_asm_del(e, k, a);
		a = 0;
		if (dead)
			return vm_asm_refuse_lost(e, p, st);
	}
	if (a && !VM_FLOW_OF(a, p)) {
		/* another connection's hello under this key, still in time */
		VM_GW_COUNT(st, flow_collision);
		return VM_V_DROP;
	}
	if (!a) {
		/* the cookie's time counter as the SYN-ACK takes it (BPF: kept
		 * per CPU for the tick, no divisions) */
		struct vm_gw_times tm;
		VM_GW_SYN_TIMES(e, cfg, &tm);
		if (!VM_GW_COOKIE_OK(sec, p, p->seq - 1, p->ack - 1, tm.tnow)) {
			/* Maybe a later segment that overtook the first: keep it
			 * (one per flow) until the first one vouches for it. */
			__u32 hl = p->l3_len + p->tcp_len, pl = p->payload_len;
			struct asm_early *ea;
			if (hl < VM_IP_TCP_MIN || hl > VM_ASM_HDR || pl < 1 || pl > VM_ASM_SEG_MAX) {
				VM_GW_COUNT(st, asm_overflow);
				return VM_V_DROP;
			}
			struct asm_tomb *tb = vm_env_tomb_get(e, k);
			if (tb && VM_FLOW_OF(tb, p) && p->ack == tb->ack &&
			    vm_env_asm_ns(e) - tb->seen_ns <= VM_ASM_TIMEOUT_NS) {
				/* this connection's hello lost its slot after we
				 * ACKed part of it (vm_asm_tomb_make): it cannot
				 * complete */
				vm_env_tomb_del(e, k, tb);
				return vm_asm_refuse_lost(e, p, st);
			}
			/* one kept for another connection under this key (a
			 * collision), still in time, stays */
			ea = vm_env_early_get(e, k);
			if (ea && !VM_FLOW_OF(ea, p) && vm_env_asm_ns(e) - ea->seen_ns <= VM_ASM_TIMEOUT_NS) {
				VM_GW_COUNT(st, flow_collision);
				return VM_V_DROP;
			}
			ea = vm_env_early_tmp(e, k);
			if (!ea || VM_LOAD_BYTES(vm_env_loadctx(e), VM_ETH_HLEN, ea->hdr, hl) ||
			    VM_LOAD_BYTES(vm_env_loadctx(e), p->l4_off + p->tcp_len, ea->payload, pl)) {
				VM_GW_COUNT(st, malformed);
				return VM_V_DROP;
			}
			VM_FLOW_TUPLE_SET(ea, p->family, p->saddr, p->daddr);
			ea->seq = p->seq;
			ea->ack = p->ack;
			ea->len = pl;
			ea->hlen = hl;
			ea->seen_ns = vm_env_asm_ns(e);
			vm_env_early_put(e, k, ea);
			VM_GW_COUNT(st, asm_early);
			return VM_V_DROP;
		}
		a = vm_env_asm_new(e, k);
		if (!a) {
			VM_GW_COUNT(st, asm_full);
			return VM_V_DROP;
		}
		if (a->family && !VM_FLOW_OF(a, p)) {
			/* another CPU made it for a colliding connection just now */
			VM_GW_COUNT(st, flow_collision);
			return VM_V_DROP;
		}
		VM_FLOW_TUPLE_SET(a, p->family, p->saddr, p->daddr);
		a->client_isn = p->seq - 1;
		a->cookie_isn = p->ack - 1;
		a->first_ns = vm_env_asm_ns(e);
		a->nseg = 0;
		a->have = 0;
		a->routed = 0;
		fresh = 1;
	} else if (p->ack != a->cookie_isn + 1) {
		VM_GW_COUNT(st, bad_cookie);
		return VM_V_DROP;
	}

	off = p->seq - (a->client_isn + 1);
	for (__u32 i = 0; i < VM_ASM_SEGS; i++) {
		if (i >= a->nseg)
			break;
		if (a->seg[i].off == off) {
			/* the client resends: our ACK was lost; say it again */
			VM_GW_COUNT(st, asm_dup);
			return vm_asm_ack_held(e, p, a, st);
		}
	}
	if (vm_asm_store_seg(vm_env_loadctx(e), a, p, off)) {
		/* Beyond what we reassemble: refuse now rather than leave the
		 * client waiting for an answer that cannot come. */
		__u32 ack = a->client_isn + 1 + a->have;
		VM_GW_COUNT(st, asm_overflow);
		VM_GW_COUNT(st, refused_rst);
		vm_env_asm_del(e, k, a);
		return vm_asm_reply(e, p, VM_ASM_REPLY_RST, ack, 0, 0, 0, st);
	}
	if (fresh) {
		struct asm_early *ea = vm_env_early_get(e, k);
		if (ea && VM_FLOW_OF(ea, p)) {
			vm_asm_merge_early(a, ea);
			vm_env_early_del(e, k, ea);
		}
	}

	/* The contiguous prefix, its records joined into one, parsed. */
	__u8 *flat = vm_env_flat(e);
	out = flat ? vm_asm_flatten(a, vm_env_walk(e), flat) : -1;
	if (out < 0)
		rc = VM_HELLO_NOT_TLS;
	else
		rc = vm_env_asm_route(e, flat, out > VM_HELLO_BUF ? VM_HELLO_BUF : (__u32)out, vm_env_flow_tmp(e),
				      &hello_len);
	if (rc == -1) {
		VM_GW_COUNT(st, malformed);
		return VM_V_DROP;
	}
	if (rc == VM_HELLO_PARTIAL) {
		VM_GW_COUNT(st, asm_stored);
		return vm_asm_ack_held(e, p, a, st);
	}
	if (rc != VM_HELLO_OK) {
		switch (rc) {
		case VM_HELLO_NO_SNI: VM_GW_COUNT(st, no_sni); break;
		case VM_HELLO_BAD_NAME: VM_GW_COUNT(st, bad_name); break;
		case VM_GW_NO_ROUTE: VM_GW_COUNT(st, no_route); break;
		default: VM_GW_COUNT(st, parse_error); break;
		}
		__u32 ack = a->client_isn + 1 + a->have;
		vm_env_asm_del(e, k, a);
		if (vip->refuse == VM_REFUSE_ALERT) {
			VM_GW_COUNT(st, refused_alert);
			return vm_asm_reply(e, p, VM_ASM_REPLY_ALERT, ack, 0, 0, 0, st);
		}
		VM_GW_COUNT(st, refused_rst);
		return vm_asm_reply(e, p, VM_ASM_REPLY_RST, ack, 0, 0, 0, st);
	}

	/* Routed: the flow, then every kept segment to the node.  We ACKed all
	 * but the last segment ourselves, so the segments stay held (routed)
	 * until the VM acknowledges the hello (the return path): a copy lost on
	 * the way to the node is resent when the client retransmits the last
	 * one, which only the VM acknowledges. */
	struct vm_tcpopts o;
	__u8 macs[VM_ETH_MACS_LEN];
	f = vm_env_flow_tmp(e);
	if (!f || vm_env_tcpopts(e, p, &o) < 0 || VM_LOAD_BYTES(vm_env_loadctx(e), 0, macs, VM_ETH_MACS_LEN)) {
		VM_GW_COUNT(st, malformed);
		return VM_V_DROP;
	}
	vm_gw_flow_init(f, p, a->client_isn, a->cookie_isn, &o, cfg, macs + VM_ETH_ALEN, macs, vm_env_ifindex(e),
			vm_env_coarse_ns(e), vm_flow_port(p->saddr, p->daddr, p->sport, p->dport));
	f->held_len = a->have;
	vm_cli_at(&f->cli_nxt, a->client_isn + 1 + a->have);   /* the client sent what we hold */
	a->routed = 1;
	a->first_ns = vm_env_asm_ns(e);
	int put = vm_env_flow_put(e, k, f);
	if (put) {
		VM_GW_COUNT_FLOW_PUT(st, put);
		vm_env_asm_del(e, k, a);
		return VM_V_DROP;
	}
	VM_GW_COUNT(st, asm_routed);
	VM_GW_COUNT(st, hello_routed);
	return vm_asm_emit_all(e, p, a, f, cfg, st);
}

#endif /* VEIL_GW_ASM_H */
