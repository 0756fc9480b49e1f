// SPDX-License-Identifier: Apache-2.0
/*
 * Node VM egress: TC ingress on a VM's host-side interface, so it sees what
 * the VM sends.  For a mesh flow:
 *   the VM's SYN-ACK       -> record the deltas, answer with the ACK that
 *                             carries the kept ClientHello (back to the VM)
 *   everything afterwards  -> seq/TSval/window into the client's view,
 *                             VM -> VIP, Geneve to the gateway that owns the flow
 * Other traffic is left to the kernel.  TC (not XDP) because the VM hands us
 * GSO and checksum-offloaded skbs, and the hello must grow a small packet.
 */
#include "lib/node_maps.h"
#include "veil/geneve.h"
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TC_ACT_OK       0
#define TC_ACT_SHOT     2
#define TC_ACT_REDIRECT 7

/* A per-CPU direct-mapped cache of conn_rev's copies in front of the hash
 * map: an established connection's VM packet is sent with the copy in its
 * slot (vm_conn_rev_slot of its conn_rev key) without a hash lookup.
 *
 * When a cached copy may be used.  A copy E in slot i was taken from
 * conn_rev's entry H under key rk, the one the lookup found after
 * conn_rev_gen[i] was read (rgen), and only when H passed the test the
 * hash-map path sends with (its view, ESTABLISHED, conn_gen's slot of its
 * conns key equal to its gen).  E is used for a packet only while
 * conn_rev_gen[i] still equals E.rgen, E names the packet's view, is
 * ESTABLISHED, conn_gen's slot of E.conn equals E.gen, and the packet has
 * no FIN or RST (rev_cached_ok).  Every write to a conn_rev entry, by a
 * program or from userspace, moves conn_rev_gen's slot of its key after
 * the write (node_mesh's conn_rev_put, every conn_forget, vm_via_conns's
 * refresh, the sweeper's and the loader's vm_node_rev_moved).  So while
 * the slot stands, conn_rev under rk still holds H: the hash-map path would
 * find H, make the same checks on the same bytes (E = H; the view, state
 * and gen checks above are its own, conn_gen included: a conns entry made
 * under E's key since moves that slot, as before) and send with H the same
 * packet.  What no writer announces is the LRU pushing H out (only when
 * conn_rev is full, on another insert): the hash-map path then passes the
 * packet, while a CPU's copy keeps sending until its slot moves or its
 * conns key's conn_gen slot does (a new connection under the conns key or
 * on the view, the connection's RST or replacement, its sweep): as the copy
 * does today for a connection whose conns entry the LRU pushed out.
 *
 * Per CPU, no lock: a slot is written and read only by node_vm on its own
 * CPU, and TC runs in softirq, never re-entered on a CPU (node_scratch
 * rests on the same).  Not pinned: a load starts with an empty cache. */
struct conn_rev_cached {
	struct conn_rev_val v;    /* the copy (v.state 0: empty) */
	__u32 rgen;               /* conn_rev_gen[slot] read before the lookup that found v */
	__u32 gi;                 /* vm_conn_gen_idx(&v.conn): its conn_gen slot, not hashed again per hit */
	__u32 pad[2];             /* 128 bytes: two cache lines */
};
_Static_assert(sizeof(struct conn_rev_cached) == 128, "conn_rev_cached");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VM_REV_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct conn_rev_cached);
} conn_rev_cache SEC(".maps");

VM_INLINE __u32 csum_add32(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	return (__u32)s;
}

/* Adds to the difference sum for a 4-byte change (odd: at an odd offset),
 * unfolded: one's-complement sums count modulo 0xffff, where a 32-bit word
 * is worth the sum of its two 16-bit halves (2^16 = 1) and a word whose
 * bytes sit at an odd offset its value times 2^8 (its 16-bit words' bytes
 * swap), so whoever takes the total folds once (vm_csum_fold: a positive
 * sum folds to the same 16 bits however it was grouped).  Three
 * instructions instead of a fold per change. */
VM_INLINE void diff4(__u64 *sum, __u32 from, __u32 to, int odd)
{
	*sum += ((__u64)(__u32)~from + to) << (odd ? 8 : 0);
}

VM_INLINE int load_opts(struct __sk_buff *skb, __u32 off, __u32 len, struct node_scratch *s,
			struct vm_tcpopts *o)
{
	if (len > VM_TCP_OPT_MAX)
		return -1;
	if (len > 0 && bpf_skb_load_bytes(skb, off, s->optbuf, len))
		return -1;
	return vm_tcpopt_parse(s->optbuf, len, o, &s->ost);
}

/* Adds delta to a big-endian 32-bit value in map memory and fixes the full
 * checksum at *check. */
VM_INLINE void buf_add32(__u8 *p, __u32 delta, __u16 *check, int odd)
{
	__u32 old, new;

	__builtin_memcpy(&old, p, 4);
	new = bpf_htonl(bpf_ntohl(old) + delta);
	__builtin_memcpy(p, &new, 4);
	vm_csum_replace4_at(check, old, new, odd);
}

/* Translates a kept hello segment (map memory) into the VM's view:
 * destination the VM, ack into the VM's sequence space, TSecr into its clock.
 * A global function, verified once rather than once per kept segment. */
__attribute__((noinline)) int xlate_kept(struct hello_val *h, struct conn_val *c, __u32 family,
					 struct node_scratch *s)
{
	if (!h || !c || !s)
		return -1;
	__u32 len = h->len, l3 = VM_L3_HLEN(family);
	__u8 *d = h->data;
	__u8 *tcp = d + (l3 & VM_L3_HLEN_MASK);
	__u16 *check = (__u16 *)(tcp + VM_TCP_CHECK_OFF);
	__u32 doff = (tcp[VM_TCP_DOFF_OFF] >> 4) * 4;

	if (len < l3 + VM_TCP_HLEN || len > VM_HELLO_STORE)
		return -1;
	if (family == VM_AF_INET) {
		__u32 old, new;
		__builtin_memcpy(&old, d + VM_IP4_DADDR_OFF, 4);
		__builtin_memcpy(&new, c->vm + VM_ADDR4_OFF, 4);
		vm_csum_replace4((__u16 *)(d + VM_IP4_CHECK_OFF), old, new);
		vm_csum_replace4(check, old, new);
		__builtin_memcpy(d + VM_IP4_DADDR_OFF, &new, 4);
	} else {
		vm_csum_replace16(check, d + VM_IP6_DADDR_OFF, c->vm);
		__builtin_memcpy(d + VM_IP6_DADDR_OFF, c->vm, 16);
	}
	buf_add32(tcp + VM_TCP_ACK_OFF, -c->seq_delta, check, 0);   /* ack: cookie + 1 -> VM ISN + 1 */
	if (doff > VM_TCP_HLEN && doff <= VM_TCP_HLEN + VM_TCP_OPT_MAX) {
		struct vm_tcpopts ho;
		__builtin_memcpy(s->optbuf, tcp + VM_TCP_HLEN, VM_TCP_OPT_MAX);
		if (vm_tcpopt_parse(s->optbuf, doff - VM_TCP_HLEN, &ho, &s->ost) == 0 && ho.ts_ok)
			buf_add32(tcp + VM_TCP_HLEN + (ho.ts_off & VM_OPT_OFF_MASK) + 4, -c->ts_delta, check, ho.ts_off & 1);
	}
	return 0;
}

/* Sends kept segment idx to the VM (a clone of skb), translated; deletes it.
 * 0 sent, 1 nothing kept under idx, -1 failed.  Global: verified once. */
__attribute__((noinline)) int send_kept(struct __sk_buff *skb, struct flow_key *ck, struct conn_val *c,
					struct node_scratch *s, __u32 idx)
{
	struct hello_key hk = {};
	struct hello_val *h;
	__u32 len;

	if (!skb || !ck || !c || !s)
		return -1;
	hk.conn = *ck;
	hk.idx = idx;
	h = bpf_map_lookup_elem(&hellos, &hk);
	if (!h)
		return 1;
	len = h->len;
	if (len > VM_HELLO_STORE || len < VM_IP_TCP_MIN || xlate_kept(h, c, s->family, s))
		return 1;
	if (bpf_skb_change_tail(skb, ETH_HLEN + len, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, h->data, len, 0) ||
	    bpf_skb_store_bytes(skb, 0, s->eth, VM_ETH_MACS_LEN, 0) ||
	    bpf_clone_redirect(skb, skb->ifindex, 0))
		return -1;
	bpf_map_delete_elem(&hellos, &hk);
	return 0;
}

/* Sends every kept segment; returns how many went out.  Global. */
__attribute__((noinline)) int send_all_kept(struct __sk_buff *skb, struct flow_key *ck, struct conn_val *c,
					    struct node_scratch *s)
{
	int sent = 0;

	if (!skb || !ck || !c || !s)
		return 0;
	for (__u32 i = 0; i < VM_ASM_SEGS; i++) {
		if (i >= c->nseg)
			break;
		int rc = send_kept(skb, ck, c, s, i);
		if (rc < 0)
			break;
		sent += rc == 0;
	}
	return sent;
}

/* The VM answered the replayed SYN: complete the handshake with the ACK that
 * carries the ClientHello, translated into the VM's view; every further kept
 * hello segment follows (one clone each). */
VM_INLINE int answer_synack(struct __sk_buff *skb, const struct vm_pkt *p, const struct flow_key *ck,
			    struct conn_val *c, struct node_scratch *s, struct node_stats *st)
{
	struct vm_tcpopts o;
	__u8 macs[VM_ETH_MACS_LEN];
	int sent = 0;

	if (load_opts(skb, p->l4_off + VM_TCP_HLEN, p->tcp_len - VM_TCP_HLEN, s, &o) < 0 ||
	    bpf_skb_load_bytes(skb, 0, macs, VM_ETH_MACS_LEN)) {
		NODE_COUNT(st, vm_synack_bad);
		return TC_ACT_SHOT;
	}
	c->vm_isn = p->seq;
	c->seq_delta = c->cookie_isn - p->seq;
	c->ts_delta = o.ts_ok ? c->gw_tsval - o.tsval : 0;
	c->vm_wscale = o.wscale;
	if (!o.ts_ok)
		c->flags &= ~VM_HO_TS_OK;
	__builtin_memcpy(s->eth, macs + VM_ETH_ALEN, VM_ETH_ALEN);   /* to the VM */
	__builtin_memcpy(s->eth + VM_ETH_ALEN, macs, VM_ETH_ALEN);   /* from us */
	s->family = p->family;

	sent = send_all_kept(skb, (struct flow_key *)ck, c, s);
	if (st && sent > 0)
		st->hello_seg_sent += sent;
	if (!sent) {
		NODE_COUNT(st, vm_synack_bad);
		return TC_ACT_SHOT;
	}
	c->state = VM_CONN_ESTABLISHED;
	NODE_COUNT(st, vm_synack);
	return TC_ACT_SHOT;   /* the SYN-ACK itself ends here; its clones went out */
}

/* A VM packet of a mesh flow that cannot be translated (headers out of
 * reach, checksum helpers refused): counted, dropped. */
VM_INLINE int vm_bad(struct node_stats *st)
{
	NODE_COUNT(st, vm_malformed);
	return TC_ACT_SHOT;
}

/* The VM answered the replayed SYN with something else (a challenge ACK, a
 * FIN or a SYN-ACK for another ISN): it still holds an earlier connection on
 * this tuple, one whose end was lost.  As the client's TCP would in SYN-SENT
 * (RFC 793), answer <SEQ=SEG.ACK><CTL=RST>: the stale socket goes, and the
 * SYN replayed when the client resends its hello is accepted. */
VM_INLINE int reset_stale(struct __sk_buff *skb, const struct vm_pkt *p, struct node_scratch *s,
			  struct node_stats *st)
{
	__u8 *b = s->hello.data, mac[6];
	__u32 l3 = p->l3_len;
	__u64 sum;

	if (p->flags & TCP_RST)
		return vm_bad(st);
	if (l3 == VM_IP4_HLEN) {
		if (bpf_skb_load_bytes(skb, 0, b, ETH_HLEN + VM_IP4_HLEN + VM_TCP_HLEN))
			return vm_bad(st);
		struct iphdr *ip = (struct iphdr *)(b + ETH_HLEN);
		__be32 a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		ip->tos = 0;
		ip->tot_len = bpf_htons(VM_IP4_HLEN + VM_TCP_HLEN);
		ip->id = 0;
		ip->frag_off = bpf_htons(VM_IP4_DF);
		ip->ttl = VM_IP_TTL;
		ip->check = vm_ip4_csum(ip);
	} else if (l3 == VM_IP6_HLEN) {
		if (bpf_skb_load_bytes(skb, 0, b, ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN))
			return vm_bad(st);
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(b + ETH_HLEN);
		struct in6_addr a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		*(__u32 *)ip6 = bpf_htonl(VM_IP6_VER_WORD);
		ip6->payload_len = bpf_htons(VM_TCP_HLEN);
		ip6->hop_limit = VM_IP_TTL;
	} else {
		return vm_bad(st);
	}
	__builtin_memcpy(mac, b, VM_ETH_ALEN);
	__builtin_memcpy(b, b + VM_ETH_ALEN, VM_ETH_ALEN);
	__builtin_memcpy(b + VM_ETH_ALEN, mac, VM_ETH_ALEN);
	/* l3 masked with the two lengths' bits: unchanged, and bounded for the verifier */
	struct tcphdr *t = (struct tcphdr *)(b + ETH_HLEN + (l3 & (VM_IP4_HLEN | VM_IP6_HLEN)));
	__be16 port = t->source;
	t->source = t->dest;
	t->dest = port;
	t->seq = bpf_htonl(p->ack);
	t->ack_seq = 0;
	((__u8 *)t)[VM_TCP_DOFF_OFF] = (VM_TCP_HLEN / 4) << 4;
	((__u8 *)t)[VM_TCP_FLAGS_OFF] = TCP_RST;
	t->window = 0;
	t->urg_ptr = 0;
	t->check = 0;
	sum = vm_pseudo_sum(p->family, p->daddr, p->saddr, VM_TCP_HLEN);
	for (int i = 0; i < VM_TCP_HLEN / 4; i++)
		sum += ((__u32 *)t)[i];
	t->check = ~vm_csum_fold(sum);
	if (l3 == VM_IP4_HLEN) {
		if (bpf_skb_change_tail(skb, ETH_HLEN + VM_IP4_HLEN + VM_TCP_HLEN, 0) ||
		    bpf_skb_store_bytes(skb, 0, b, ETH_HLEN + VM_IP4_HLEN + VM_TCP_HLEN, 0))
			return vm_bad(st);
	} else {
		if (bpf_skb_change_tail(skb, ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN, 0) ||
		    bpf_skb_store_bytes(skb, 0, b, ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN, 0))
			return vm_bad(st);
	}
	NODE_COUNT(st, vm_stale_reset);
	return bpf_redirect(skb->ifindex, 0);
}

/* The TCP header's offset masked for the verifier (Ethernet + IPv6 at most). */
#define L4_OFF_MASK 0x7f

/* The common option blocks (vm_tcpopt_common) read in the packet itself,
 * when they are in its linear part, without copying them out first
 * (bpf_skb_load_bytes).  1 when p's block is one of them, with *o as the
 * walk leaves it; 0: walk it. */
VM_INLINE int tcpopts_common(struct __sk_buff *skb, const struct vm_pkt *p, struct vm_tcpopts *o)
{
	const __u8 *opt = (const __u8 *)(long)skb->data + (p->l4_off & L4_OFF_MASK) + VM_TCP_HLEN;
	void *end = (void *)(long)skb->data_end;

	if (p->tcp_len == VM_TCP_HLEN + VM_TCPOLEN_TS_ALIGNED)
		return (void *)(opt + VM_TCPOLEN_TS_ALIGNED) <= end &&
		       vm_tcpopt_common(opt, VM_TCPOLEN_TS_ALIGNED, o);
	return 0;
}

/* The kernel's skb->ip_summed (include/linux/skbuff.h). */
#define CHECKSUM_NONE        0
#define CHECKSUM_UNNECESSARY 1
#define CHECKSUM_COMPLETE    2
#define CHECKSUM_PARTIAL     3

extern void *bpf_cast_to_kern_ctx(void *) __ksym;

/* The TCP checksum at *check (offset csum_off) after changes whose
 * one's-complement differences are pseudo (pseudo-header: addresses) and
 * l4 (the TCP header itself), as bpf_l4_csum_replace would make it: once
 * with BPF_F_PSEUDO_HDR and pseudo, once with l4.  That helper's arithmetic
 * depends on how the skb carries its checksum (net/core/utils.c,
 * inet_proto_csum_replace_by_diff): checksum-offloaded (CHECKSUM_PARTIAL),
 * the field holds the pseudo-header's sum, not complemented, and takes the
 * pseudo difference alone; not offloaded (NONE, UNNECESSARY), the field is
 * the complemented sum and takes both, in one fold with the same result
 * (0xffff0000 is the helper's ~csum_unfold: never a zero sum, so never the
 * other zero).  CHECKSUM_COMPLETE (skb->csum to keep in step too): the
 * helpers, as before.  In place the two helper calls' ~20 ns a packet go
 * (node_vm_live).  bpf_cast_to_kern_ctx: a kfunc since Linux 6.3. */
VM_INLINE int tcp_csum_fix(struct __sk_buff *skb, __u8 summed, __u16 *check, __u32 csum_off, __u64 pseudo,
			    __u64 l4)
{
	if (summed == CHECKSUM_PARTIAL) {
		*check = vm_csum_fold((__u64)*check + pseudo);
		return 0;
	}
	if (summed != CHECKSUM_COMPLETE) {
		*check = ~vm_csum_fold(0xffff0000ull + (__u16)~*check + pseudo + l4);
		return 0;
	}
	if (bpf_l4_csum_replace(skb, csum_off, 0, csum_add32(pseudo), BPF_F_PSEUDO_HDR) ||
	    bpf_l4_csum_replace(skb, csum_off, 0, csum_add32(l4), 0))
		return -1;
	return 0;
}

/* Opens push bytes in front of the inner IP header for the outer headers.
 * bpf_skb_adjust_room (BPF_ADJ_ROOM_MAC, flags: the encapsulation's) opens
 * them after the Ethernet header, moving it, and marks the skb
 * encapsulated: inner header offsets, the tunnel's GSO type (the segments
 * of a GSO packet then each get their outer headers), the outer family as
 * skb->protocol; a CHECKSUM_UNNECESSARY mark is dropped.  A packet that
 * needs none of that, not GSO, of the mesh's own family (same), whose
 * checksum is CHECKSUM_NONE or CHECKSUM_PARTIAL (csum_start counts from
 * the buffer's head: the push moves nothing of it), and not cloned (which
 * bpf_skb_change_head would copy), takes bpf_skb_change_head: the room
 * opens at the front, before the old Ethernet header, which the outer
 * headers then cover; the network header stays the inner IP one, the MAC
 * header's length grows by push (a driver offloading the checksum starts
 * at csum_start).  ~17 ns less per VM packet in node_vm_live (bpf_skb_adjust_room's
 * encapsulation bookkeeping and the Ethernet header's move).  0, or the
 * helper's error. */
VM_INLINE long push_room(struct __sk_buff *skb, struct sk_buff *k, __u8 summed, __u32 push, int same,
			 __u64 flags)
{
	if (same && (summed == CHECKSUM_NONE || summed == CHECKSUM_PARTIAL) && !skb->gso_size &&
	    !BPF_CORE_READ_BITFIELD(k, cloned))
		return bpf_skb_change_head(skb, push, 0);
	return bpf_skb_adjust_room(skb, push, BPF_ADJ_ROOM_MAC, flags);
}

/* Window: the VM's units -> the units the gateway announced (its
 * difference into *l4diff). */
VM_INLINE void xlate_window(struct tcphdr *tcp, const struct conn_rev_val *c, __u64 *l4diff)
{
	if (c->vm_wscale == c->gw_wscale)
		return;
	__u32 vs = c->vm_wscale == VM_WSCALE_NONE ? 0 : c->vm_wscale & VM_TCP_WSCALE_MASK;
	__u32 gs = c->gw_wscale == VM_WSCALE_NONE ? 0 : c->gw_wscale & VM_TCP_WSCALE_MASK;
	__u32 w = ((__u32)bpf_ntohs(tcp->window) << vs) >> gs;
	__u16 oldw = tcp->window, neww = bpf_htons(w > VM_TCP_WIN_MAX ? VM_TCP_WIN_MAX : w);
	*l4diff += (__u16)~oldw + (__u32)neww;  /* an aligned 16-bit word */
	tcp->window = neww;
}

/* Encapsulates a translated VM packet (inner_family: its IP's) for the
 * gateway of connection c and redirects it to the mesh: room for the outer
 * headers, which are then written in place (include/veil/geneve.h), the
 * MACs too: every byte in front of the inner IP header is ours, so where
 * the room opens does not matter (push_room).  k and summed: the skb's
 * kernel side and how it carries its checksum. */
VM_INLINE int encap_to_gw(struct __sk_buff *skb, struct sk_buff *k, __u8 summed, __u8 inner_family,
			  const struct conn_rev_val *c, const struct node_config *cfg, struct node_stats *st)
{
	__u32 ol3 = VM_L3_HLEN(c->gw_family);
	__u32 push = ol3 + VM_UDP_HLEN + VM_GENEVE_HLEN;
	__u32 inner_len = skb->len - ETH_HLEN;
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
		      (c->gw_family == VM_AF_INET ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV6);
	__u16 sport = c->mesh_sport;
	void *data, *data_end;
	struct ethhdr *eth;

	if (push_room(skb, k, summed, push, c->gw_family == inner_family, flags)) {
		NODE_COUNT(st, encap_fail);
		return TC_ACT_SHOT;
	}
	if (c->gw_family == VM_AF_INET ? !cfg->has_underlay4 : !cfg->has_underlay6) {
		NODE_COUNT(st, no_config);
		return TC_ACT_SHOT;
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end ||
	    vm_geneve_write(data, data_end, c->gw_family, c->gw_family == VM_AF_INET ? cfg->underlay4 : cfg->underlay6,
			    c->gw, inner_family == VM_AF_INET ? VM_GENEVE_PROTO_IP4 : VM_GENEVE_PROTO_IP6, inner_len,
			    VM_GNV_NO_OPT, NULL, sport)) {
		NODE_COUNT(st, encap_fail);
		return TC_ACT_SHOT;
	}
	__builtin_memcpy(eth->h_dest, c->gw_mac, VM_ETH_ALEN);
	__builtin_memcpy(eth->h_source, c->mesh_mac, VM_ETH_ALEN);
	NODE_COUNT(st, fwd_to_gw);
	return bpf_redirect(c->mesh_ifindex, 0);
}

/* VM -> client: our view into the client's, then Geneve to the gateway.
 * The headers are written in place (the IPv4 header checksum too: it is
 * never offloaded), the TCP checksum as the skb carries it (tcp_csum_fix:
 * a checksum-offloaded packet's field holds only the pseudo-header's sum). */
VM_INLINE int to_gateway(struct __sk_buff *skb, const struct vm_pkt *p, const struct conn_rev_val *c,
			 const struct node_config *cfg, struct node_scratch *s, struct node_stats *st)
{
	void *data, *data_end;
	struct tcphdr *tcp;
	struct vm_tcpopts o;
	__u64 l4diff = 0, l4pseudo = 0;
	__u32 csum_off = p->l4_off + VM_TCP_CHECK_OFF;
	int have_opts = 0;

	o.ts_off = 0;   /* set on every path: the compiler may compute the TS shift before have_opts decides */
	o.ts_ok = 0;    /* and may read ts_ok before it (a stack slot another variable held: the verifier refuses) */
	if (p->tcp_len > VM_TCP_HLEN) {
		/* options that cannot be walked (one cut short, or longer than
		 * the block) are dropped, not sent on untranslated: a TCP stack
		 * reads the options before the broken one, whose timestamps and
		 * SACK edges would reach the client in the VM's spaces */
		if (!tcpopts_common(skb, p, &o) &&
		    load_opts(skb, p->l4_off + VM_TCP_HLEN, p->tcp_len - VM_TCP_HLEN, s, &o) < 0)
			return vm_bad(st);
		have_opts = 1;
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	/* the headers into the linear part, unless they are there already */
	if (data + (p->l4_off & L4_OFF_MASK) + p->tcp_len > data_end) {
		if (bpf_skb_pull_data(skb, p->l4_off + p->tcp_len))
			return vm_bad(st);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	if (p->family == VM_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			return vm_bad(st);
		__u32 old = ip->saddr, new;
		__builtin_memcpy(&new, c->vip + VM_ADDR4_OFF, 4);
		vm_csum_replace4(&ip->check, old, new);
		diff4(&l4pseudo, old, new, 0);
		ip->saddr = new;
		tcp = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		if ((void *)(ip6 + 1) > data_end)
			return vm_bad(st);
		__u32 *a = (__u32 *)&ip6->saddr;
		const __u32 *v = (const __u32 *)c->vip;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			diff4(&l4pseudo, a[i], v[i], 0);
			a[i] = v[i];
		}
		tcp = (void *)(ip6 + 1);
	}
	if ((void *)(tcp + 1) > data_end)
		return vm_bad(st);
	{
		__u32 old = tcp->seq, new = bpf_htonl(bpf_ntohl(old) + c->seq_delta);
		diff4(&l4diff, old, new, 0);
		tcp->seq = new;
	}
	xlate_window(tcp, c, &l4diff);
	if (have_opts && o.ts_ok) {
		__u8 *e = (__u8 *)tcp + VM_TCP_HLEN + (o.ts_off & VM_OPT_OFF_MASK);
		if ((void *)e + 4 > data_end)
			return vm_bad(st);
		__u32 old, new;
		__builtin_memcpy(&old, e, 4);
		new = bpf_htonl(bpf_ntohl(old) + c->ts_delta);
		diff4(&l4diff, old, new, o.ts_off & 1);
		__builtin_memcpy(e, &new, 4);
	}
	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
	__u8 summed = BPF_CORE_READ_BITFIELD(k, ip_summed);

	if (tcp_csum_fix(skb, summed, &tcp->check, csum_off, l4pseudo, l4diff))
		return vm_bad(st);
	return encap_to_gw(skb, k, summed, p->family, c, cfg, st);
}

/* 1 when the conns entry c (under key k) is the connection the VM's packet
 * p names: a conn_rev entry left by an entry the LRU pushed out may point
 * at a key another connection took since (the same IPv4 tuple routed to
 * another VM, or an IPv6 fold that met).  Inlined: as a global function
 * its call and the arguments' spills cost more than the compare. */
VM_INLINE int conn_is_vm_view(const struct conn_val *c, const struct flow_key *k, const struct vm_pkt *p)
{
	return c->family == p->family && k->client_port_be == p->dport && k->vip_port_be == p->sport &&
	       vm_addr_eq(c->client, p->daddr) && vm_addr_eq(c->vm, p->saddr);
}

/* The same for conn_rev's copy v (its key folds IPv6 addresses: another
 * view's fold may meet this one's), against a packet of family from
 * vm:vm_port to client:client_port (addresses 16 bytes: a vm_pkt's, or an
 * IPv6 header's where the packet has them). */
VM_INLINE int rev_is_view(const struct conn_rev_val *v, __u8 family, const __u8 *vm, const __u8 *client,
			  __be16 vm_port, __be16 client_port)
{
	return v->family == family && v->conn.client_port_be == client_port && v->conn.vip_port_be == vm_port &&
	       vm_addr_eq(v->client, client) && vm_addr_eq(v->vm, vm);
}

/* rev_is_view for the view the VM's packet p names. */
VM_INLINE int rev_is_vm_view(const struct conn_rev_val *v, const struct vm_pkt *p)
{
	return rev_is_view(v, p->family, p->saddr, p->daddr, p->sport, p->dport);
}

/* conn_rev's value copied in 8-byte words (14 loads and stores, not 28:
 * clang copies the 4-byte aligned struct 4 bytes at a time); a hash map's
 * values and an array's sit at multiples of 8. */
typedef __u64 __attribute__((may_alias, aligned(8))) rev_u64;
_Static_assert(sizeof(struct conn_rev_val) % 8 == 0, "conn_rev_val in 8-byte words");

VM_INLINE void rev_copy(struct conn_rev_val *to, const struct conn_rev_val *from)
{
	rev_u64 *t = (rev_u64 *)to;
	const rev_u64 *f = (const rev_u64 *)from;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*to) / 8); i++)
		t[i] = f[i];
}

/* Files conn_rev's entry rv, which passed the test of a copy that decides
 * alone (ESTABLISHED, its gen equal to gi's conn_gen slot), in cache slot e
 * under rgen, the slot's generation as read before the lookup that found
 * rv (see conn_rev_cache). */
VM_INLINE void rev_cache_fill(struct conn_rev_cached *e, const struct conn_rev_val *rv, __u32 rgen, __u32 gi)
{
	rev_copy(&e->v, rv);
	e->rgen = rgen;
	e->gi = gi;
}

/* 1 when cached copy e may be sent with for p (the slot's generation now
 * rgen, p without FIN and RST): see conn_rev_cache. */
VM_INLINE int rev_cached_ok(const struct conn_rev_cached *e, const struct vm_pkt *p, __u32 rgen)
{
	__u32 gi = e->gi, *g;

	if (e->rgen != rgen || e->v.state != VM_CONN_ESTABLISHED || !rev_is_vm_view(&e->v, p))
		return 0;
	g = bpf_map_lookup_elem(&conn_gen, &gi);
	return g && *g == e->v.gen;
}

/* What node_vm's fast path (vm_fast) takes: the segments a Linux VM sends
 * on an established connection, IPv4 without options or IPv6 without
 * extension headers, TCP with the timestamp block alone (NOP NOP TS, RFC
 * 7323 appendix A), headers in the linear part. */
#define FAST_TCP_LEN (VM_TCP_HLEN + VM_TCPOLEN_TS_ALIGNED)
#define FAST_DOFF    (FAST_TCP_LEN / 4)
#define FAST_TSVAL   4   /* TSval's offset in the block, after NOP NOP kind len */

/* 1 when conn_rev's entry v is the view of an IPv4 packet from vm:vm_port
 * to client:client_port: rev_is_vm_view against that packet's vm_pkt,
 * whose addresses are IPv4-mapped (vm_addr_set4), on the words. */
VM_INLINE int rev_is_view4(const struct conn_rev_val *v, __be32 vm, __be32 client, __be16 vm_port,
			   __be16 client_port)
{
	const __u32 mapped = bpf_htonl(0xffff);   /* the mapped prefix's third word */

	return v->family == VM_AF_INET && v->conn.client_port_be == client_port && v->conn.vip_port_be == vm_port &&
	       VM_FK_W32(v->client, 3) == client && VM_FK_W32(v->vm, 3) == vm &&
	       (VM_FK_W32(v->client, 0) | VM_FK_W32(v->client, 1) | VM_FK_W32(v->vm, 0) | VM_FK_W32(v->vm, 1)) == 0 &&
	       VM_FK_W32(v->client, 2) == mapped && VM_FK_W32(v->vm, 2) == mapped;
}

/* node_vm's fast path, for the packet shape above (v6: its IP version, a
 * constant at each call), with no FIN or RST, of an established
 * connection.  It decides as the general path does for such a packet
 * (node_vm below: vm_parse_ip_tcp's checks; the cached copy if it may be
 * used, else conn_rev's entry when it alone decides, which then fills the
 * slot; to_gateway's translation; the same encapsulation), without the
 * general parser, the scratch, the option walk's generality or copies of
 * the addresses:
 *   - the parser's checks: IPv4's version 4 and ihl 5, not a fragment;
 *     IPv6's version 6 and TCP straight after the fixed header; the IP
 *     length covers the headers and lies within the packet;
 *   - an IPv4 cached copy's view compared on the addresses' IPv4 words: a
 *     slot holds a copy of family IPv4 only after rev_is_vm_view (or
 *     rev_is_view4) matched it with an IPv4 packet's view, whose addresses
 *     are IPv4-mapped, so its first 12 bytes are the mapped prefix.
 * Whatever else (no conn_rev entry, another view's, one conns must decide)
 * goes the general way.  1 with *verdict set when it took the packet; 0:
 * the general path decides, from the start (nothing but the slot was
 * written, and the slot as the general path would have written it). */
VM_INLINE int vm_fast(struct __sk_buff *skb, const struct node_config *cfg, struct node_stats *st, int *verdict,
		      const int v6)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	const __u32 l3 = v6 ? VM_IP6_HLEN : VM_IP4_HLEN;
	struct tcphdr *tcp = data + ETH_HLEN + l3;
	__u8 *opt = (__u8 *)(tcp + 1), *sa, *da;   /* sa, da: the packet's addresses */
	struct iphdr *ip = data + ETH_HLEN;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct conn_rev_cached *ce;
	struct conn_rev_val *rv;
	struct conn_rev_key rk;
	__u32 si, gi, *rg, *g, tot, rgen, zero = 0;
	__u64 l4diff = 0, l4pseudo = 0;

	if ((void *)(opt + VM_TCPOLEN_TS_ALIGNED) > data_end || ((__u8 *)tcp)[VM_TCP_DOFF_OFF] >> 4 != FAST_DOFF ||
	    *(vm_u32a *)opt != VM_W32(VM_TCPOPT_NOP, VM_TCPOPT_NOP, VM_TCPOPT_TS, VM_TCPOLEN_TS) ||
	    (((__u8 *)tcp)[VM_TCP_FLAGS_OFF] & (TCP_FIN | TCP_RST)))
		return 0;
	if (v6) {
		if (*(__u8 *)ip6 >> 4 != 6 || ip6->nexthdr != VM_IPPROTO_TCP)
			return 0;
		tot = VM_IP6_HLEN + bpf_ntohs(ip6->payload_len);
		sa = (__u8 *)&ip6->saddr;
		da = (__u8 *)&ip6->daddr;
	} else {
		if (*(__u8 *)ip != VM_IP4_VER_IHL || ip->protocol != VM_IPPROTO_TCP ||
		    (ip->frag_off & bpf_htons(VM_IP4_FRAG_MASK)))
			return 0;
		tot = bpf_ntohs(ip->tot_len);
		sa = (__u8 *)&ip->saddr;
		da = (__u8 *)&ip->daddr;
	}
	if (tot < l3 + FAST_TCP_LEN || ETH_HLEN + tot > skb->len)
		return 0;
	if (v6)
		vm_conn_rev_key_make(VM_AF_INET6, sa, da, tcp->source, tcp->dest,
				     bpf_map_lookup_elem(&conn_seed, &zero), &rk);
	else
		vm_conn_rev_key_make4(ip->saddr, ip->daddr, tcp->source, tcp->dest, &rk);
	si = vm_conn_rev_slot(&rk);
	rg = bpf_map_lookup_elem(&conn_rev_gen, &si);
	ce = bpf_map_lookup_elem(&conn_rev_cache, &si);
	if (!rg || !ce)
		return 0;
	rgen = *rg;   /* before the conn_rev lookup below, whose copy the slot may take */
	if (ce->rgen == rgen && ce->v.state == VM_CONN_ESTABLISHED &&
	    (v6 ? rev_is_view(&ce->v, VM_AF_INET6, sa, da, tcp->source, tcp->dest)
		: ce->v.family == VM_AF_INET && ce->v.conn.client_port_be == tcp->dest &&
			  ce->v.conn.vip_port_be == tcp->source &&
			  VM_FK_W32(ce->v.client, VM_ADDR4_OFF / 4) == ip->daddr &&
			  VM_FK_W32(ce->v.vm, VM_ADDR4_OFF / 4) == ip->saddr)) {
		gi = ce->gi;
		g = bpf_map_lookup_elem(&conn_gen, &gi);
		if (!g || *g != ce->v.gen)
			return 0;
	} else {
		/* the slot holds another connection's copy, or none: conn_rev's
		 * entry, when it alone decides, into the slot (as node_vm's
		 * general path takes and files it) */
		rv = bpf_map_lookup_elem(&conn_rev, &rk);
		if (!rv || !(v6 ? rev_is_view(rv, VM_AF_INET6, sa, da, tcp->source, tcp->dest)
				: rev_is_view4(rv, ip->saddr, ip->daddr, tcp->source, tcp->dest)))
			return 0;
		gi = vm_conn_gen_idx(&rv->conn);
		g = bpf_map_lookup_elem(&conn_gen, &gi);
		if (!g || *g != rv->gen || rv->state != VM_CONN_ESTABLISHED)
			return 0;
		rev_cache_fill(ce, rv, rgen, gi);
	}

	const struct conn_rev_val *c = &ce->v;
	__u32 old, new;
	if (v6) {
		__u32 *a = (__u32 *)sa;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			new = VM_FK_W32(c->vip, i);
			diff4(&l4pseudo, a[i], new, 0);
			a[i] = new;
		}
	} else {
		old = ip->saddr;
		new = VM_FK_W32(c->vip, VM_ADDR4_OFF / 4);
		vm_csum_replace4(&ip->check, old, new);
		diff4(&l4pseudo, old, new, 0);
		ip->saddr = new;
	}
	old = tcp->seq;
	new = bpf_htonl(bpf_ntohl(old) + c->seq_delta);
	diff4(&l4diff, old, new, 0);
	tcp->seq = new;
	xlate_window(tcp, c, &l4diff);
	old = *(vm_u32a *)(opt + FAST_TSVAL);
	new = bpf_htonl(bpf_ntohl(old) + c->ts_delta);
	diff4(&l4diff, old, new, 0);
	*(vm_u32a *)(opt + FAST_TSVAL) = new;

	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
	__u8 summed = BPF_CORE_READ_BITFIELD(k, ip_summed);

	if (tcp_csum_fix(skb, summed, &tcp->check, ETH_HLEN + l3 + VM_TCP_CHECK_OFF, l4pseudo, l4diff)) {
		*verdict = vm_bad(st);
		return 1;
	}
	*verdict = encap_to_gw(skb, k, summed, v6 ? VM_AF_INET6 : VM_AF_INET, c, cfg, st);
	if (*verdict == TC_ACT_REDIRECT)
		NODE_COUNT(st, vm_fast);   /* and fwd_to_gw */
	return 1;
}

/* A VM packet whose conn_rev copy alone does not decide (the connection
 * not established in it, the copy not checked against conns since a conns
 * entry was made under its key, a SYN-ACK, FIN or RST): conns decides, as
 * before the copy, and the copy takes what the SYN-ACK fixed (gen: the
 * conn_gen slot read before conns). */
VM_INLINE int vm_via_conns(struct __sk_buff *skb, const struct vm_pkt *p, struct conn_rev_val *rv, __u32 gen,
			   __u32 slot, const struct node_config *cfg, struct node_scratch *s, struct node_stats *st)
{
	struct flow_key ck = rv->conn;
	struct conn_val *c;
	int rc;

	c = conn_get(&ck);
	/* the entry must be the connection the VM's view names (a stale
	 * conn_rev entry may point at a key another connection took since) */
	if (c && !conn_is_vm_view(c, &ck, p)) {
		NODE_COUNT(st, conn_collision);
		c = NULL;
	}
	if (!c) {
		NODE_COUNT(st, vm_pass);
		return TC_ACT_OK;
	}
	if (c->state == VM_CONN_SYN_SENT) {
		if ((p->flags & (TCP_SYN | TCP_ACK | TCP_RST)) == (TCP_SYN | TCP_ACK) &&
		    p->ack == c->client_isn + 1)
			return answer_synack(skb, p, &ck, c, s, st);
		if (p->flags & TCP_RST) {
			/* The VM refused the replayed SYN: tell the client. */
			c->seq_delta = c->cookie_isn + 1 - p->seq;
			c->state = VM_CONN_ESTABLISHED;
		} else {
			NODE_COUNT(st, vm_synack_bad);
			return reset_stale(skb, p, s, st);
		}
	}
	vm_conn_rev_val_refresh(rv, c, gen);
	conn_rev_slot_moved(slot);   /* after the write: no cached copy of what it replaced */
	if ((c->fin & VM_FIN_RST) && !(p->flags & TCP_RST)) {
		/* the VM sends after its client's RST marked the connection:
		 * it kept it (a challenge ACK), or the segment crossed the RST
		 * (which the client's TCP answers with a RST at its sequence,
		 * marking it again) */
		c->fin &= ~VM_FIN_RST;
		NODE_COUNT(st, rst_refused);
	}
	if (p->flags & TCP_RST) {
		NODE_COUNT(st, conn_reset);
		rc = to_gateway(skb, p, rv, cfg, s, st);
		conn_forget(&ck, c);
		return rc;
	}
	if ((p->flags & TCP_FIN) && vm_fin_seen(&c->fin, VM_FIN_VM))
		NODE_COUNT(st, conn_closed);
	return to_gateway(skb, p, rv, cfg, s, st);
}

/* node_vm's general path: every VM packet vm_fast does not take. */
VM_INLINE int vm_general(struct __sk_buff *skb, struct node_config *cfg, struct node_stats *st)
{
	struct node_scratch *s = node_scratch_get();
	struct vm_pkt p = {};
	const struct flow_seed *seed = NULL;
	struct conn_rev_key rk;
	struct conn_rev_val *rv;
	struct conn_rev_cached *ce;
	void *data, *data_end;
	__u32 zero = 0, gi, gen, *g, si, rgen, *rg;
	__u16 proto;
	int rc, plain;

	if (!s)
		return TC_ACT_OK;
	/* the headers into the linear part, unless they are there already
	 * (then writable too: the verifier's prologue unclones the skb) */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN > data_end) {
		if (bpf_skb_pull_data(skb, ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN) &&
		    skb->len >= ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN)
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	if (data + ETH_HLEN > data_end)
		return TC_ACT_OK;
	proto = ((struct ethhdr *)data)->h_proto;
	rc = vm_parse_ip_tcp(data, data_end, skb->len, ETH_HLEN, proto, &p);
	if (rc == VM_PARSE_TRUNCATED) {
		/* headers past the linear part: pull them and look again */
		if (bpf_skb_pull_data(skb, ETH_HLEN + VM_IP6_HLEN + VM_TCP_HLEN + VM_TCP_OPT_MAX))
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		rc = vm_parse_ip_tcp(data, data_end, skb->len, ETH_HLEN, proto, &p);
	}
	if (rc != VM_PARSE_OK) {
		NODE_COUNT(st, vm_pass);
		return TC_ACT_OK;
	}
	if (p.family != VM_AF_INET)
		seed = bpf_map_lookup_elem(&conn_seed, &zero);
	vm_conn_rev_key_make(p.family, p.saddr, p.daddr, p.sport, p.dport, seed, &rk);
	/* the cache first (conn_rev_cache); its slot's generation read before
	 * the conn_rev lookup below, whose copy the slot then takes */
	si = vm_conn_rev_slot(&rk);
	rg = bpf_map_lookup_elem(&conn_rev_gen, &si);
	ce = bpf_map_lookup_elem(&conn_rev_cache, &si);
	rgen = rg ? *rg : 0;
	plain = !(p.flags & (TCP_FIN | TCP_RST));
	if (plain && rg && ce && rev_cached_ok(ce, &p, rgen))
		return to_gateway(skb, &p, &ce->v, cfg, s, st);
	rv = bpf_map_lookup_elem(&conn_rev, &rk);
	if (!rv) {
		NODE_COUNT(st, vm_pass);
		return TC_ACT_OK;
	}
	/* the copy must be of the view the VM's packet names (the key's
	 * folds may meet another view's) */
	if (!rev_is_vm_view(rv, &p)) {
		NODE_COUNT(st, conn_collision);
		NODE_COUNT(st, vm_pass);
		return TC_ACT_OK;
	}
	gi = vm_conn_gen_idx(&rv->conn);
	g = bpf_map_lookup_elem(&conn_gen, &gi);
	gen = g ? *g : 0;
	/* One entry: the copy, while no conns entry was made under its key
	 * since it was made or checked (then conns is this connection's, or
	 * gone with no other in its place). */
	if (g && gen == rv->gen && rv->state == VM_CONN_ESTABLISHED && plain) {
		/* into the cache (the slot's generation as read before the
		 * lookup), and sent with the cached copy as a hit would be */
		if (rg && ce) {
			rev_cache_fill(ce, rv, rgen, gi);
			return to_gateway(skb, &p, &ce->v, cfg, s, st);
		}
		return to_gateway(skb, &p, rv, cfg, s, st);
	}
	return vm_via_conns(skb, &p, rv, gen, si, cfg, s, st);
}

SEC("tc")
int node_vm(struct __sk_buff *skb)
{
	struct node_stats *st = node_stats_get();
	struct node_config *cfg;
	void *data, *data_end;
	__u32 zero = 0;
	int rc;

	cfg = bpf_map_lookup_elem(&node_config, &zero);
	if (!cfg)
		return TC_ACT_OK;
	/* the fast path for IPv4 or IPv6, by the Ethernet type */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN <= data_end) {
		__u16 proto = ((struct ethhdr *)data)->h_proto;
		if (proto == bpf_htons(VM_ETH_P_IP) ? vm_fast(skb, cfg, st, &rc, 0)
		    : proto == bpf_htons(VM_ETH_P_IPV6) ? vm_fast(skb, cfg, st, &rc, 1) : 0)
			return rc;
	}
	return vm_general(skb, cfg, st);
}
