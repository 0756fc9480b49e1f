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
 * hello, hello_asm and asm_early are LRU maps, an entry older than
 * VM_ASM_TIMEOUT_NS is dropped when next touched.
 */
#include "lib/gw_logic.h"
#include "veil/geneve.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TC_ACT_OK   0
#define TC_ACT_SHOT 2

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct asm_early);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} asm_early SEC(".maps");

/* Zeroed values to create entries from, and the de-recording state. */
struct asm_tmp {
	struct asm_val zero;
	struct asm_early early;
	__u32 r, out, have;
	int rc;
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

#define MASK (VM_ASM_BYTES - 1)

struct walk {
	struct asm_val *a;
	struct asm_tmp *t;
	__u8 *flat;
};

/* Grows a->have over the kept segments (VM_ASM_SEGS passes of VM_ASM_SEGS). */
static long contig_step(__u32 j, void *ctx)
{
	struct walk *w = ctx;
	struct asm_val *a = w->a;
	__u64 i = j % VM_ASM_SEGS;

	VM_BARRIER_VAR(i);            /* keep the bound check clang would drop */
	if (i >= VM_ASM_SEGS || i >= a->nseg)
		return 0;
	struct asm_seg *sg = &a->seg[i];
	if (sg->off <= a->have && sg->off + sg->len > a->have)
		a->have = sg->off + sg->len;
	return 0;
}

/* Copies one TLS record's body from the contiguous payload to flat[]. */
static long derec_step(__u32 k, void *ctx)
{
	struct walk *w = ctx;
	struct asm_val *a = w->a;
	struct asm_tmp *t = w->t;
	__u64 r = t->r, have = t->have, rlen, n;

	if (r + 5 > have)
		return 1;
	r &= MASK;
	if (a->payload[r] != 0x16) {
		t->rc = -1;
		return 1;
	}
	rlen = ((__u64)a->payload[(r + 3) & MASK] << 8) | a->payload[(r + 4) & MASK];
	n = have - t->r - 5;          /* 64-bit all along: the bound below holds for the call */
	if (n > rlen)
		n = rlen;
	if (n > VM_HELLO_BUF)
		return 1;
	__u64 o = t->out & (VM_HELLO_BUF - 1);
	if (n && bpf_probe_read_kernel(&w->flat[o], n, &a->payload[(r + 5) & MASK]))
		return 1;
	t->out += n;
	t->r += 5 + rlen;
	return n < rlen; /* a record still incomplete: stop */
}

VM_INLINE int store_seg(struct __sk_buff *skb, struct asm_val *a, const struct vm_pkt *p, __u32 off)
{
	__u64 n = a->nseg;
	__u32 hlen = p->l3_len + p->tcp_len, plen = p->payload_len;

	VM_BARRIER_VAR(n);           /* the bound must be on the register that indexes */
	if (n >= VM_ASM_SEGS || hlen < 40 || hlen > VM_ASM_HDR || plen > VM_ASM_SEG_MAX ||
	    off + plen > VM_ASM_BYTES)
		return -1;
	struct asm_seg *sg = &a->seg[n];
	if (bpf_skb_load_bytes(skb, ETH_HLEN, sg->hdr, hlen))
		return -1;
	VM_BARRIER_VAR(off);
	if (plen && bpf_skb_load_bytes(skb, p->l4_off + p->tcp_len, &a->payload[off & MASK], plen))
		return -1;
	sg->off = off;
	sg->len = plen;
	sg->hlen = hlen;
	a->nseg = n + 1;
	return 0;
}

/* Moves an early segment (kept before the first one) into the hello. */
VM_INLINE void merge_early(struct asm_val *a, const struct flow_key *k, struct gw_stats *st)
{
	struct asm_early *e = bpf_map_lookup_elem(&asm_early, k);
	__u64 n = a->nseg;
	__u32 off;

	if (!e)
		return;
	VM_BARRIER_VAR(n);
	off = e->seq - (a->client_isn + 1);
	if (e->ack == a->cookie_isn + 1 && n < VM_ASM_SEGS && off < VM_ASM_BYTES &&
	    e->len <= VM_ASM_SEG_MAX && off + e->len <= VM_ASM_BYTES && e->hlen >= 40 && e->hlen <= VM_ASM_HDR) {
		struct asm_seg *sg = &a->seg[n];
		__u32 len = e->len, hlen = e->hlen;
		VM_BARRIER_VAR(off);
		if (!bpf_probe_read_kernel(sg->hdr, hlen, e->hdr) &&
		    !bpf_probe_read_kernel(&a->payload[off & MASK], len, e->payload)) {
			sg->off = off;
			sg->len = len;
			sg->hlen = hlen;
			a->nseg = n + 1;
		}
	}
	bpf_map_delete_elem(&asm_early, k);
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
			       proto_inner & 0xffff, &f->handoff, sport);
}

/* Sends every kept segment to the node, each in Geneve with the handoff option. */
VM_INLINE int emit_all(struct __sk_buff *skb, const struct vm_pkt *p, struct asm_val *a, struct flow_val *f,
		       const struct gw_config *cfg, struct gw_scratch *s, struct gw_stats *st)
{
	struct bpf_fib_lookup fib = {};
	const __u8 *src;
	__u32 ol3, hdrlen;
	__u8 *h = s->frame;

	if (f->node_family == VM_AF_INET) {
		if (!cfg->has_underlay4) {
			GW_COUNT(st, no_config);
			return -1;
		}
		src = cfg->underlay4;
		ol3 = 20;
		fib.family = AF_INET_;
		__builtin_memcpy(&fib.ipv4_src, src + 12, 4);
		__builtin_memcpy(&fib.ipv4_dst, f->node + 12, 4);
	} else {
		if (!cfg->has_underlay6) {
			GW_COUNT(st, no_config);
			return -1;
		}
		src = cfg->underlay6;
		ol3 = 40;
		fib.family = AF_INET6_;
		__builtin_memcpy(fib.ipv6_src, src, 16);
		__builtin_memcpy(fib.ipv6_dst, f->node, 16);
	}
	fib.ifindex = skb->ingress_ifindex;
	fib.l4_protocol = IPPROTO_UDP_;
	fib.tot_len = 1500;
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
			GW_COUNT(st, no_neigh);
		else
			GW_COUNT(st, fib_fail);
		return -1;
	}
	hdrlen = ETH_HLEN + ol3 + 8 + 8 + VM_HANDOFF_OPT_LEN;
	__u16 sport = vm_flow_port(p->saddr, p->daddr, p->sport, p->dport);  /* as gw_ingress */

	for (__u32 i = 0; i < VM_ASM_SEGS; i++) {
		if (i >= a->nseg)
			break;
		struct asm_seg *sg = &a->seg[i];
		__u32 hl = sg->hlen, pl = sg->len, inner = hl + pl, so = sg->off;
		VM_BARRIER_VAR(so);
		if (hl < 40 || hl > VM_ASM_HDR || pl > VM_ASM_SEG_MAX) {
			GW_COUNT(st, malformed);
			return -1;
		}

		/* Ethernet, then the mesh headers (include/veil/geneve.h) */
		__builtin_memcpy(h, fib.dmac, 6);
		__builtin_memcpy(h + 6, fib.smac, 6);
		if (asm_geneve_write(h, f, src,
				     ((sg->hdr[0] >> 4) == 6 ? VM_GENEVE_PROTO_IP6 : VM_GENEVE_PROTO_IP4) << 16 | inner,
				     sport)) {
			GW_COUNT(st, encap_fail);
			return -1;
		}

		if (bpf_skb_change_tail(skb, hdrlen + inner, 0) ||
		    bpf_skb_store_bytes(skb, 0, h, hdrlen & 0xff, 0) ||
		    bpf_skb_store_bytes(skb, hdrlen, sg->hdr, hl, 0) ||
		    (pl && bpf_skb_store_bytes(skb, hdrlen + hl, &a->payload[so & MASK], pl, 0))) {
			GW_COUNT(st, encap_fail);
			return -1;
		}
		if (bpf_clone_redirect(skb, fib.ifindex, 0)) {
			GW_COUNT(st, encap_fail);
			return -1;
		}
		GW_COUNT(st, asm_sent);
	}
	return 0;
}

/* Answers the client from TC, built in s->frame and sent back out of the
 * interface it came in on: a refusal (RST, or the TLS alert with FIN), or an
 * ACK for the hello bytes we hold.  tsval/tsecr: with want_ts, a timestamp
 * option as the client negotiated it. */
#define REPLY_RST   1
#define REPLY_ALERT 2
#define REPLY_ACK   3
VM_INLINE int reply_tc(struct __sk_buff *skb, const struct vm_pkt *p, int kind, __u32 ack, int want_ts,
		       __u32 tsval, __u32 tsecr, struct gw_scratch *s, struct gw_stats *st)
{
	__u8 *b = s->frame;
	__u32 l3 = p->l3_len, plen = kind == REPLY_ALERT ? 7 : 0, olen = want_ts ? 12 : 0;
	__u32 tot = ETH_HLEN + l3 + 20 + olen + plen;
	__u64 sum;

	if ((l3 != 20 && l3 != 40) ||
	    (bpf_skb_load_bytes(skb, 0, b, ETH_HLEN + 40) && bpf_skb_load_bytes(skb, 0, b, ETH_HLEN + 20))) {
		GW_COUNT(st, reply_fail);
		return TC_ACT_SHOT;
	}
	__u8 mac[6];
	__builtin_memcpy(mac, b, 6);
	__builtin_memcpy(b, b + 6, 6);
	__builtin_memcpy(b + 6, mac, 6);
	struct tcphdr *t;
	if (l3 == 20) {
		struct iphdr *ip = (struct iphdr *)(b + ETH_HLEN);
		__builtin_memcpy(&ip->saddr, p->daddr + 12, 4);
		__builtin_memcpy(&ip->daddr, p->saddr + 12, 4);
		ip->tos = 0;
		ip->tot_len = bpf_htons(20 + 20 + olen + plen);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000);
		ip->ttl = 64;
		ip->check = vm_ip4_csum(ip);
		t = (struct tcphdr *)(b + ETH_HLEN + 20);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(b + ETH_HLEN);
		__builtin_memcpy(&ip6->saddr, p->daddr, 16);
		__builtin_memcpy(&ip6->daddr, p->saddr, 16);
		*(__u32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(20 + olen + plen);
		ip6->hop_limit = 64;
		t = (struct tcphdr *)(b + ETH_HLEN + 40);
	}
	__builtin_memset(t, 0, 40);
	t->source = p->dport;
	t->dest = p->sport;
	t->seq = bpf_htonl(p->ack);
	t->ack_seq = bpf_htonl(ack);
	((__u8 *)t)[12] = ((20 + olen) / 4) << 4;
	((__u8 *)t)[13] = kind == REPLY_ALERT ? (TCP_ACK | TCP_PSH | TCP_FIN) :
			  kind == REPLY_RST ? (TCP_RST | TCP_ACK) : TCP_ACK;
	t->window = kind == REPLY_RST ? 0 : bpf_htons(65535);
	__u8 *o = (__u8 *)t + 20;
	if (want_ts) {
		__u32 v = bpf_htonl(tsval), e = bpf_htonl(tsecr);
		o[0] = 1; o[1] = 1; o[2] = 8; o[3] = 10;
		__builtin_memcpy(o + 4, &v, 4);
		__builtin_memcpy(o + 8, &e, 4);
		o += 12;
	}
	if (kind == REPLY_ALERT) {
		o[0] = 0x15; o[1] = 3; o[2] = 3; o[3] = 0; o[4] = 2; o[5] = 2; o[6] = 112;
	}
	sum = vm_pseudo_sum(p->family, p->daddr, p->saddr, 20 + olen + plen);
	for (int i = 0; i < 10; i++)   /* 40 bytes: header, options, zero-padded alert */
		sum += ((__u32 *)t)[i];
	t->check = ~vm_csum_fold(sum);
	if (bpf_skb_change_tail(skb, tot, 0) || bpf_skb_store_bytes(skb, 0, b, tot & 0x7f, 0)) {
		GW_COUNT(st, reply_fail);
		return TC_ACT_SHOT;
	}
	return bpf_redirect(skb->ifindex, 0);
}

/* The client's timestamps, to answer with them. */
VM_INLINE int client_ts(struct __sk_buff *skb, const struct vm_pkt *p, struct gw_scratch *s,
			struct vm_tcpopts *o)
{
	__u32 optlen = p->tcp_len - 20;

	if (optlen > 40 || (optlen && bpf_skb_load_bytes(skb, p->l4_off + 20, s->optbuf, optlen)))
		return -1;
	return vm_tcpopt_parse(s->optbuf, optlen, o, &s->ost);
}

SEC("tc")
int gw_asm(struct __sk_buff *skb)
{
	struct gw_stats *st = gw_stats_get();
	struct vm_pkt p = {};
	struct vip_key vk = {};
	struct vip_val *vip;
	struct flow_key k;
	struct gw_config *cfg;
	struct cookie_secret *sec;
	struct gw_scratch *s;
	struct asm_tmp *t;
	struct asm_val *a;
	struct flow_val *f;
	void *data, *data_end;
	__u32 zero = 0, off;
	__u8 *flat;
	int rc, fresh = 0;

	if (bpf_skb_pull_data(skb, ETH_HLEN + 40 + 60) && skb->len >= ETH_HLEN + 40 + 60)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN > data_end)
		return TC_ACT_OK;
	if (vm_parse_ip_tcp(data, data_end, skb->len, ETH_HLEN, ((struct ethhdr *)data)->h_proto, &p))
		return TC_ACT_OK;
	__builtin_memcpy(vk.addr, p.daddr, 16);
	vk.port_be = p.dport;
	vk.family = p.family;
	vip = bpf_map_lookup_elem(&vips, &vk);
	if (!vip)
		return TC_ACT_OK;             /* not ours: the kernel's */
	cfg = bpf_map_lookup_elem(&gw_config, &zero);
	sec = bpf_map_lookup_elem(&cookie_secret, &zero);
	s = bpf_map_lookup_elem(&gw_scratch, &zero);
	t = bpf_map_lookup_elem(&asm_tmp, &zero);
	flat = bpf_map_lookup_elem(&asm_flat, &zero);
	if (!cfg || !sec || !s || !t || !flat) {
		GW_COUNT(st, no_config);
		return TC_ACT_SHOT;
	}
	if (!p.payload_len || (p.flags & (TCP_SYN | TCP_RST))) {
		GW_COUNT(st, malformed);       /* XDP hands over only data */
		return TC_ACT_SHOT;
	}
	flow_key_of(&p, &k);
	f = bpf_map_lookup_elem(&flows, &k);
	if (f) {
		a = bpf_map_lookup_elem(&hello_asm, &k);
		if (f->held_len && a && a->routed && a->client_isn == f->client_isn) {
			/* The client resends hello bytes we ACKed: the node may
			 * lack one of them.  Send it every held segment again;
			 * the copy lasts until the VM acknowledges the hello. */
			GW_COUNT(st, hello_resent);
			emit_all(skb, &p, a, f, cfg, s, st);
			return TC_ACT_SHOT;
		}
		if (f->held_len) {
			/* evicted from the LRU: what the node lacks is lost */
			GW_COUNT(st, held_lost);
			f->held_len = 0;
			return TC_ACT_SHOT;
		}
		/* routed while this segment was on its way: it travels with the
		 * handoff option from gw_ingress when the client sends it again */
		GW_COUNT(st, asm_late);
		return TC_ACT_SHOT;
	}

	a = bpf_map_lookup_elem(&hello_asm, &k);
	if (a && a->routed) {
		/* held for a flow that has since gone (RST, a new SYN) */
		bpf_map_delete_elem(&hello_asm, &k);
		a = NULL;
	}
	if (a && bpf_ktime_get_ns() - a->first_ns > VM_ASM_TIMEOUT_NS) {
		GW_COUNT(st, asm_timeout);
		bpf_map_delete_elem(&hello_asm, &k);
		a = NULL;
	}
	if (!a) {
		struct vm_cookie_in cin = {};
		__builtin_memcpy(cin.saddr, p.saddr, 16);
		__builtin_memcpy(cin.daddr, p.daddr, 16);
		cin.sport = p.sport;
		cin.dport = p.dport;
		cin.client_isn = p.seq - 1;
		if (!gw_cookie_ok(sec, &cin, p.ack - 1, gw_cookie_tnow(cfg))) {
			/* Maybe a later segment that overtook the first: keep it
			 * (one per flow, LRU) until the first one vouches for it. */
			struct asm_early *e = &t->early;
			__u32 hl = p.l3_len + p.tcp_len, pl = p.payload_len;
			if (hl < 40 || hl > VM_ASM_HDR || pl < 1 || pl > VM_ASM_SEG_MAX) {
				GW_COUNT(st, asm_overflow);
				return TC_ACT_SHOT;
			}
			if (bpf_skb_load_bytes(skb, ETH_HLEN, e->hdr, hl) ||
			    bpf_skb_load_bytes(skb, p.l4_off + p.tcp_len, e->payload, pl)) {
				GW_COUNT(st, malformed);
				return TC_ACT_SHOT;
			}
			e->seq = p.seq;
			e->ack = p.ack;
			e->len = pl;
			e->hlen = hl;
			e->seen_ns = bpf_ktime_get_ns();
			bpf_map_update_elem(&asm_early, &k, e, BPF_ANY);
			GW_COUNT(st, asm_early);
			return TC_ACT_SHOT;
		}
		bpf_map_update_elem(&hello_asm, &k, &t->zero, BPF_NOEXIST);
		a = bpf_map_lookup_elem(&hello_asm, &k);
		if (!a) {
			GW_COUNT(st, asm_full);
			return TC_ACT_SHOT;
		}
		a->client_isn = p.seq - 1;
		a->cookie_isn = p.ack - 1;
		a->first_ns = bpf_ktime_get_ns();
		a->nseg = 0;
		a->have = 0;
		a->routed = 0;
		fresh = 1;
	} else if (p.ack != a->cookie_isn + 1) {
		GW_COUNT(st, bad_cookie);
		return TC_ACT_SHOT;
	}

	off = p.seq - (a->client_isn + 1);
	for (__u32 i = 0; i < VM_ASM_SEGS; i++) {
		if (i >= a->nseg)
			break;
		if (a->seg[i].off == off) {
			/* the client resends: our ACK was lost; say it again */
			GW_COUNT(st, asm_dup);
			struct vm_tcpopts o;
			if (a->have && client_ts(skb, &p, s, &o) == 0)
				return reply_tc(skb, &p, REPLY_ACK, a->client_isn + 1 + a->have, o.ts_ok,
						o.tsecr, o.tsval, s, st);
			return TC_ACT_SHOT;
		}
	}
	if (store_seg(skb, a, &p, off)) {
		/* Beyond what we reassemble: refuse now rather than leave the
		 * client waiting for an answer that cannot come. */
		__u32 ack = a->client_isn + 1 + a->have;
		GW_COUNT(st, asm_overflow);
		GW_COUNT(st, refused_rst);
		bpf_map_delete_elem(&hello_asm, &k);
		return reply_tc(skb, &p, REPLY_RST, ack, 0, 0, 0, s, st);
	}
	if (fresh)
		merge_early(a, &k, st);

	/* The contiguous prefix, its records flattened into one, parsed. */
	struct walk w = { .a = a, .t = t, .flat = flat };
	bpf_loop(VM_ASM_SEGS * VM_ASM_SEGS, contig_step, &w, 0);
	t->have = a->have;
	t->r = 0;
	t->out = 5;
	t->rc = 0;
	bpf_loop(32, derec_step, &w, 0);
	if (t->rc < 0 || t->have < 1) {
		rc = VM_HELLO_NOT_TLS;
	} else {
		__u32 body = t->out - 5, rl = body > VM_TLS_MAX_RECORD + 256 ? VM_TLS_MAX_RECORD + 256 : body;
		flat[0] = 0x16;
		flat[1] = 3;
		flat[2] = 1;
		flat[3] = rl >> 8;
		flat[4] = rl & 0xff;
		if (bpf_probe_read_kernel(s->buf, VM_HELLO_BUF, flat)) {
			GW_COUNT(st, malformed);
			return TC_ACT_SHOT;
		}
		/* The joined record claims only the bytes held, so a hello
		 * still incomplete parses as partial whatever its name: a
		 * refusal waits for the whole hello and acknowledges all of it. */
		rc = gw_route_hello(s, t->out > VM_HELLO_BUF ? VM_HELLO_BUF : t->out);
	}
	if (rc == VM_HELLO_PARTIAL) {
		/* Acknowledge what we hold, as the server the client believes we
		 * are: a hello longer than the client's initial window (about 10
		 * segments) needs ACKs to keep coming.  Our TSval is the one the
		 * client echoes, so it never goes backwards for the VM's later. */
		GW_COUNT(st, asm_stored);
		struct vm_tcpopts o;
		if (a->have && client_ts(skb, &p, s, &o) == 0)
			return reply_tc(skb, &p, REPLY_ACK, a->client_isn + 1 + a->have, o.ts_ok, o.tsecr,
					o.tsval, s, st);
		return TC_ACT_SHOT;
	}
	if (rc != VM_HELLO_OK) {
		switch (rc) {
		case VM_HELLO_NO_SNI: GW_COUNT(st, no_sni); break;
		case VM_HELLO_BAD_NAME: GW_COUNT(st, bad_name); break;
		case GW_NO_ROUTE: GW_COUNT(st, no_route); break;
		default: GW_COUNT(st, parse_error); break;
		}
		__u32 ack = a->client_isn + 1 + a->have;
		bpf_map_delete_elem(&hello_asm, &k);
		if (vip->refuse == VM_REFUSE_ALERT) {
			GW_COUNT(st, refused_alert);
			return reply_tc(skb, &p, REPLY_ALERT, ack, 0, 0, 0, s, st);
		}
		GW_COUNT(st, refused_rst);
		return reply_tc(skb, &p, REPLY_RST, ack, 0, 0, 0, s, st);
	}

	/* Routed: the flow, then every kept segment to the node.  We ACKed all
	 * but the last segment ourselves, so the segments stay held (routed)
	 * until the VM acknowledges the hello (gw_return): a copy lost on the
	 * way to the node is resent when the client retransmits the last one,
	 * which only the VM acknowledges. */
	struct vm_tcpopts o;
	__u8 macs[12];
	if (client_ts(skb, &p, s, &o) < 0 || bpf_skb_load_bytes(skb, 0, macs, 12)) {
		GW_COUNT(st, malformed);
		return TC_ACT_SHOT;
	}
	gw_flow_init(&s->flow, a->client_isn, a->cookie_isn, &o, cfg, macs + 6, macs, skb->ingress_ifindex);
	s->flow.held_len = a->have;
	a->routed = 1;
	a->first_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&flows, &k, &s->flow, BPF_ANY)) {
		GW_COUNT(st, flow_full);
		bpf_map_delete_elem(&hello_asm, &k);
		return TC_ACT_SHOT;
	}
	GW_COUNT(st, asm_routed);
	GW_COUNT(st, hello_routed);
	emit_all(skb, &p, a, &s->flow, cfg, s, st);
	return TC_ACT_SHOT;
}
