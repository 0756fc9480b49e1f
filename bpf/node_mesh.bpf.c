// SPDX-License-Identifier: Apache-2.0
/*
 * Node mesh ingress (underlay interface).  Geneve from a gateway:
 *   with a handoff option, new flow -> keep the ClientHello, replay the
 *                                      client's SYN to the VM (client's address
 *                                      and ISN, MSS clamped for the mesh)
 *   established flow               -> translate (ack, SACK, TSecr, VIP -> VM)
 *                                      and send to the VM
 * The VM's SYN-ACK and everything it sends afterwards is node_vm's.
 */
#include "lib/node_maps.h"
#include "lib/mesh.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The inner TCP header's offset masked for the verifier (at most Ethernet +
 * IPv6 after the decapsulation). */
#define L4_OFF_MASK 0x7f

VM_INLINE int load_tcpopts(struct xdp_md *ctx, const struct vm_pkt *p, struct node_scratch *s,
			   struct vm_tcpopts *o)
{
	__u32 len = p->tcp_len - VM_TCP_HLEN;

	if (vm_xdp_tcpopts_common(ctx, p, o))
		return 0;
	if (len > VM_TCP_OPT_MAX)
		return -1;
	if (len > 0 && bpf_xdp_load_bytes(ctx, p->l4_off + VM_TCP_HLEN, s->optbuf, len))
		return -1;
	return vm_tcpopt_parse(s->optbuf, len, o, &s->ost);
}

/* The unfolded one's-complement difference of a 4-byte change (16-bit
 * terms: a dozen of them add up in 64 bits without a carry lost). */
VM_INLINE __u64 csum_terms4(__u32 from, __u32 to)
{
	return (~from & 0xffff) + (~from >> 16) + (to & 0xffff) + (to >> 16);
}

/* Folds the summed differences d into the checksum at check. */
VM_INLINE void csum_fold_in(__u16 *check, __u64 d)
{
	*check = ~vm_csum_fold((__u16)~*check + d);
}

/* Adds delta to the 32-bit big-endian value at p (a TCP field at an odd or
 * even offset in the header) and its checksum difference to *d (folded
 * and byte-swapped at an odd offset, whose words the checksum sees
 * swapped). */
VM_INLINE void add32(__u8 *p, __u32 delta, __u64 *d, int odd)
{
	__u32 old, new;

	__builtin_memcpy(&old, p, 4);
	new = bpf_htonl(bpf_ntohl(old) + delta);
	__builtin_memcpy(p, &new, 4);
	*d += odd ? vm_csum_diff4(old, new, 1) : csum_terms4(old, new);
}

/* Client -> VM translation of an established flow's packet (inner IP at
 * ETH_HLEN): destination VIP -> VM, ack and SACK edges into the VM's sequence
 * space, TSecr into the VM's clock.  The client's own numbers are kept.
 * The TCP checksum's differences are summed and folded into it once. */
VM_INLINE int xlate_to_vm(struct xdp_md *ctx, const struct vm_pkt *p, const struct conn_val *c,
			  struct node_scratch *s)
{
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	struct vm_tcpopts o;
	struct tcphdr *tcp;
	__u16 *check;
	__u64 d = 0;
	__u8 *opt;

	if (p->family == VM_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;
		tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > data_end)
			return -1;
		__be32 old = ip->daddr, new;
		__builtin_memcpy(&new, c->vm + VM_ADDR4_OFF, 4);
		vm_csum_replace4(&ip->check, old, new);
		d += csum_terms4(old, new);
		ip->daddr = new;
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > data_end)
			return -1;
		const vm_u32a *f = (const vm_u32a *)&ip6->daddr, *t = (const vm_u32a *)c->vm;
#pragma unroll
		for (int i = 0; i < 4; i++)
			d += csum_terms4(f[i], t[i]);
		__builtin_memcpy(&ip6->daddr, c->vm, 16);
	}
	if (p->flags & TCP_ACK)
		add32((__u8 *)&tcp->ack_seq, -c->seq_delta, &d, 0);
	if (p->tcp_len <= VM_TCP_HLEN) {
		csum_fold_in(&tcp->check, d);
		return 0;
	}
	/* options that cannot be walked (one cut short, or longer than the
	 * block): the packet is dropped (mesh_malformed), not sent on with
	 * them untranslated; a TCP stack reads the options before the broken
	 * one, whose TSecr and SACK edges would reach the VM in the gateway's
	 * spaces */
	if (load_tcpopts(ctx, p, s, &o) < 0)
		return -1;
	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	opt = data + (p->l4_off & L4_OFF_MASK) + VM_TCP_HLEN;
	if ((void *)opt > data_end)
		return -1;
	/* the TCP checksum field sits at a fixed offset before opt */
	check = (__u16 *)(opt - (VM_TCP_HLEN - VM_TCP_CHECK_OFF));
	if ((void *)(check + 1) > data_end)
		return -1;
	if (o.ts_ok) {
		__u8 *e = opt + (o.ts_off & VM_OPT_OFF_MASK) + 4;   /* TSecr, after TSval */
		if ((void *)e + 4 > data_end)
			return -1;
		add32(e, -c->ts_delta, &d, o.ts_off & 1);
	}
#pragma unroll
	for (int j = 0; j < 2 * VM_SACK_BLOCKS_MAX; j++) {   /* each block's two edges */
		if (j * 4 < o.sack_len) {
			__u8 *e = opt + (o.sack_off & VM_OPT_OFF_MASK) + j * 4;
			if ((void *)e + 4 > data_end)
				return -1;
			add32(e, -c->seq_delta, &d, o.sack_off & 1);
		}
	}
	csum_fold_in(check, d);
	return 0;
}

/* Turns the ClientHello packet (inner IP at ETH_HLEN) into the client's SYN
 * towards the VM. */
VM_INLINE int make_syn(struct xdp_md *ctx, const struct vm_pkt *p, const struct conn_val *c,
		       const struct vm_handoff *ho, __u32 client_tsval, __u16 clamp)
{
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	int delta = (int)(ETH_HLEN + p->l3_len + VM_TCP_REPLY_HLEN) - (int)(data_end - data);
	struct tcphdr *tcp;
	__u16 mss = bpf_ntohs(ho->mss_be);
	__u32 win;

	if (mss > clamp)
		mss = clamp;
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return -1;
	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	if (p->family == VM_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;
		tcp = (void *)(ip + 1);
		if ((void *)tcp + VM_TCP_REPLY_HLEN > data_end)
			return -1;
		__builtin_memcpy(&ip->daddr, c->vm + VM_ADDR4_OFF, 4);
		ip->tot_len = bpf_htons(VM_IP4_HLEN + VM_TCP_REPLY_HLEN);
		ip->ttl = VM_IP_TTL;
		ip->check = vm_ip4_csum(ip);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		tcp = (void *)(ip6 + 1);
		if ((void *)tcp + VM_TCP_REPLY_HLEN > data_end)
			return -1;
		__builtin_memcpy(&ip6->daddr, c->vm, 16);
		ip6->payload_len = bpf_htons(VM_TCP_REPLY_HLEN);
		ip6->hop_limit = VM_IP_TTL;
	}
	win = bpf_ntohs(tcp->window);
	if (ho->client_wscale != VM_WSCALE_NONE)
		win <<= (ho->client_wscale & VM_TCP_WSCALE_MASK);
	tcp->seq = bpf_htonl(c->client_isn);
	tcp->ack_seq = 0;
	((__u8 *)tcp)[VM_TCP_DOFF_OFF] = (VM_TCP_REPLY_HLEN / 4) << 4;
	((__u8 *)tcp)[VM_TCP_FLAGS_OFF] = TCP_SYN;
	tcp->window = bpf_htons(win > VM_TCP_WIN_MAX ? VM_TCP_WIN_MAX : win);
	tcp->urg_ptr = 0;
	vm_tcpopt_write_syn((__u8 *)(tcp + 1), mss, !!(ho->flags & VM_HO_SACK_OK),
			    !!(ho->flags & VM_HO_TS_OK), client_tsval, 0, ho->client_wscale);
	tcp->check = vm_tcp_csum_hdr40(tcp, p->family, p->saddr, c->vm);
	return 0;
}

VM_INLINE int to_vm(struct xdp_md *ctx, __u32 ifindex, const __u8 *vm_mac, const __u8 *host_mac,
		    struct node_stats *st)
{
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end) {
		NODE_COUNT(st, mesh_malformed);
		return XDP_DROP;
	}
	__builtin_memcpy(eth->h_dest, vm_mac, 6);
	__builtin_memcpy(eth->h_source, host_mac, 6);
	return bpf_redirect(ifindex, 0);
}

/* Keeps this hello segment (the inner IP packet) as hellos[k, idx]. */
VM_INLINE int keep_segment(struct xdp_md *ctx, const struct vm_pkt *p, const struct flow_key *k, __u32 idx,
			   struct node_scratch *s, struct node_stats *st)
{
	struct hello_key hk = { .conn = *k, .idx = idx };
	__u32 len = p->l3_len + p->tcp_len + p->payload_len;

	if (len > VM_HELLO_STORE) {
		NODE_COUNT(st, hello_too_big);
		return -1;
	}
	s->hello.len = len;
	if (len < VM_IP_TCP_MIN || bpf_xdp_load_bytes(ctx, ETH_HLEN, s->hello.data, len)) {
		NODE_COUNT(st, mesh_malformed);
		return -1;
	}
	if (bpf_map_update_elem(&hellos, &hk, &s->hello, BPF_ANY)) {
		NODE_COUNT(st, hello_store_full);
		return -1;
	}
	return 0;
}

/* A connection whose VM is not on this node (never was, or is gone: its
 * order failed or was deleted and veil-node's table no longer has it), or
 * which the node does not have (no_conn): the client's segment is answered
 * with a RST, sent back through the mesh to the gateway it came from, which
 * forwards it to the client and retires the flow (gw_return).  The client
 * learns at once instead of retransmitting into nothing until its TCP
 * gives up.  Made in place: the inner packet becomes the RST from the VIP
 * (vm_reply_l3_write: the addresses as the client's segment has them, not
 * yet translated), at the client's ACK with the segment's end
 * acknowledged, as the gateway refuses a hello (vm_gw_refuse; the client
 * takes it: RFC 5961, at its RCV.NXT); then the outer headers, addressed
 * back to where the Geneve packet came from.  A RST is not answered. */
VM_INLINE int reset_client(struct xdp_md *ctx, const struct vm_pkt *p, const struct vm_mesh_in *m,
			   const struct node_config *cfg, struct node_stats *st)
{
	__u32 inner = p->l3_len + VM_TCP_HLEN, push = vm_geneve_push_len(m->ofamily, VM_GNV_NO_OPT);
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	int delta = (int)(ETH_HLEN + inner) - (int)(data_end - data);
	struct vm_tcp *tcp;
	struct ethhdr *eth;

	if (p->flags & TCP_RST)
		return XDP_DROP;
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		goto fail;
	tcp = vm_reply_l3_write(XDP_DATA(ctx), XDP_DATA_END(ctx), p, VM_TCP_HLEN);
	if (!tcp)
		goto fail;
	vm_tcp_ports_swap(tcp);
	vm_tcp_bare_write(tcp, p, (p->flags & TCP_ACK) ? p->ack : 0, vm_tcp_seg_end(p), TCP_RST | TCP_ACK,
			  VM_TCP_HLEN, 0);
	if (bpf_xdp_adjust_head(ctx, -(int)push))
		goto fail;
	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end ||
	    vm_geneve_write(data, data_end, m->ofamily, m->ofamily == VM_AF_INET ? cfg->underlay4 : cfg->underlay6,
			    m->osrc, p->family == VM_AF_INET ? VM_GENEVE_PROTO_IP4 : VM_GENEVE_PROTO_IP6, inner,
			    VM_GNV_NO_OPT, NULL, vm_flow_port(p->saddr, p->daddr, p->sport, p->dport)))
		goto fail;
	__builtin_memcpy(eth->h_dest, m->peer_mac, 6);
	__builtin_memcpy(eth->h_source, m->our_mac, 6);
	NODE_COUNT(st, reset_sent);
	return XDP_TX;
fail:
	NODE_COUNT(st, encap_fail);
	return XDP_DROP;
}

/* A handoff for a new connection: record it, keep the segment, replay the
 * client's SYN to the VM. */
VM_INLINE int handoff_new(struct xdp_md *ctx, const struct vm_pkt *p, const struct vm_mesh_in *m,
			  const struct flow_key *k, const struct node_config *cfg,
			  struct node_scratch *s, struct node_stats *st)
{
	struct conn_val *c = &s->conn;
	struct conn_rev_key rk;
	struct vm_tcpopts o;
	struct vm_val *vm;
	__u32 vm_id = bpf_ntohl(m->ho.vm_id_be);

	vm = bpf_map_lookup_elem(&vms, &vm_id);
	if (!vm || (p->family == VM_AF_INET ? !vm->has4 : !vm->has6)) {
		NODE_COUNT(st, handoff_no_vm);
		return reset_client(ctx, p, m, cfg, st);
	}
	if (load_tcpopts(ctx, p, s, &o) < 0) {
		NODE_COUNT(st, mesh_malformed);
		return XDP_DROP;
	}
	__builtin_memset(c, 0, sizeof(*c));
	c->state = VM_CONN_SYN_SENT;
	c->vm_id = vm_id;
	c->client_isn = bpf_ntohl(m->ho.client_isn_be);
	c->cookie_isn = bpf_ntohl(m->ho.cookie_isn_be);
	c->gw_tsval = bpf_ntohl(m->ho.gw_tsval_be);
	c->mss = bpf_ntohs(m->ho.mss_be);
	c->client_wscale = m->ho.client_wscale;
	c->gw_wscale = m->ho.gw_wscale;
	c->vm_wscale = VM_WSCALE_NONE;
	c->flags = m->ho.flags;
	c->gw_family = m->ofamily;
	__builtin_memcpy(c->gw, m->osrc, 16);
	__builtin_memcpy(c->gw_mac, m->peer_mac, 6);
	__builtin_memcpy(c->mesh_mac, m->our_mac, 6);
	c->mesh_ifindex = ctx->ingress_ifindex;
	__builtin_memcpy(c->vm, p->family == VM_AF_INET ? vm->addr4 : vm->addr6, 16);
	VM_FLOW_TUPLE_SET(c, p->family, p->saddr, p->daddr);
	c->mesh_sport = vm_flow_port(p->saddr, p->daddr, p->sport, p->dport);
	c->created_ns = bpf_ktime_get_ns();
	c->cli_nxt = c->client_isn + 1;
	vm_cli_at(&c->cli_nxt, vm_tcp_seg_end(p));   /* its FIN counts, as at the gateway */
	if (p->seq - (c->client_isn + 1) >= VM_ASM_BYTES) {
		NODE_COUNT(st, mesh_malformed);
		return XDP_DROP;
	}
	c->nseg = 1;
	c->seg_seq[0] = p->seq;
	if (keep_segment(ctx, p, k, 0, s, st))
		return XDP_DROP;
	conn_rev_key_of(k, c, &rk);
	/* conn_gen first: from here on no conn_rev copy made before this
	 * entry under k (an older connection's, which the LRU may have
	 * pushed out of conns) is used without a look at conns */
	vm_conn_rev_val_make(k, c, conn_gen_move(k), &s->rev);
	/* BPF_NOEXIST: an entry another CPU put under this key since our
	 * lookup (a colliding connection's) is never replaced */
	long err = conn_new(k, c);
	if (err == VM_FLOW_PUT_TAKEN) {
		NODE_COUNT(st, conn_collision);
		return XDP_DROP;
	}
	if (err) {
		NODE_COUNT(st, conn_full);
		return XDP_DROP;
	}
	/* conn_rev's key is folded too: a live connection's entry under it
	 * (its VM view's fold met ours) stays, and this one is not made */
	err = conn_rev_put(&rk, k, c, &s->rev);
	if (err) {
		if (err == -1)
			NODE_COUNT(st, conn_collision);
		else
			NODE_COUNT(st, conn_full);
		hellos_forget((struct flow_key *)k, 1);
		conn_del(k);
		return XDP_DROP;
	}
	if (make_syn(ctx, p, c, &m->ho, o.tsval, p->family == VM_AF_INET ? cfg->mss4 : cfg->mss6)) {
		NODE_COUNT(st, mesh_malformed);
		return XDP_DROP;
	}
	NODE_COUNT(st, handoff_replayed);
	return to_vm(ctx, vm->ifindex, vm->vm_mac, vm->host_mac, st);
}

/* A handoff while the VM has not answered yet: a further hello segment is
 * kept; the first one again means our SYN may be lost: replay it. */
VM_INLINE int handoff_more(struct xdp_md *ctx, const struct vm_pkt *p, const struct vm_mesh_in *m,
			   const struct flow_key *k, struct conn_val *c, const struct node_config *cfg,
			   struct node_scratch *s, struct node_stats *st)
{
	__u32 n = c->nseg;

	for (__u32 i = 0; i < VM_ASM_SEGS; i++) {
		if (i >= n)
			break;
		if (c->seg_seq[i] != p->seq)
			continue;
		if (p->seq != c->client_isn + 1) {
			NODE_COUNT(st, hello_seg_dup);
			return XDP_DROP;
		}
		struct vm_tcpopts o;
		struct vm_val *vm = bpf_map_lookup_elem(&vms, &c->vm_id);
		if (!vm) {
			/* gone before it answered our SYN */
			NODE_COUNT(st, handoff_no_vm);
			conn_forget(k, c);
			return reset_client(ctx, p, m, cfg, st);
		}
		if (load_tcpopts(ctx, p, s, &o) < 0 ||
		    make_syn(ctx, p, c, &m->ho, o.tsval, p->family == VM_AF_INET ? cfg->mss4 : cfg->mss6)) {
			NODE_COUNT(st, mesh_malformed);
			return XDP_DROP;
		}
		NODE_COUNT(st, handoff_again);
		return to_vm(ctx, vm->ifindex, vm->vm_mac, vm->host_mac, st);
	}
	if (n >= VM_ASM_SEGS || p->seq - (c->client_isn + 1) >= VM_ASM_BYTES) {
		NODE_COUNT(st, hello_too_big);
		return XDP_DROP;
	}
	if (keep_segment(ctx, p, k, n, s, st))
		return XDP_DROP;
	__u64 idx = n;
	VM_BARRIER_VAR(idx);
	if (idx >= VM_ASM_SEGS)
		return XDP_DROP;
	c->seg_seq[idx] = p->seq;
	c->nseg = n + 1;
	vm_cli_at(&c->cli_nxt, vm_tcp_seg_end(p));   /* its FIN counts, as at the gateway */
	NODE_COUNT(st, hello_seg_stored);
	return XDP_DROP;
}

SEC("xdp")
int node_mesh(struct xdp_md *ctx)
{
	struct node_stats *st = node_stats_get();
	struct node_scratch *s = node_scratch_get();
	struct vm_mesh_in m = {};
	struct node_config *cfg;
	struct vm_pkt p = {};
	struct flow_key k VM_KEY_ALIGNED;   /* stored as words (vm_flow_key_make) */
	struct conn_val *c;
	struct vm_val *vm;
	__u32 zero = 0, *gen;
	int rc, other;

	cfg = bpf_map_lookup_elem(&node_config, &zero);
	if (!cfg || !s) {
		NODE_COUNT(st, no_config);
		return XDP_PASS;
	}
	rc = vm_xdp_mesh_take(ctx, cfg->underlay4, cfg->has_underlay4, cfg->underlay6, cfg->has_underlay6,
			      &m, &p);
	if (rc == VM_MESH_NOT_OURS) {
		NODE_COUNT(st, pass_not_mesh);
		return XDP_PASS;
	}
	if (rc != VM_MESH_OK) {
		NODE_COUNT(st, mesh_malformed);
		return XDP_DROP;
	}
	conn_key_make(p.family, p.saddr, p.daddr, p.sport, p.dport, &k);
	c = conn_of(&k, p.family, p.saddr, p.daddr, &other);
	if (other) {
		/* Another connection's entry under this key (a fold that met):
		 * neither used nor replaced; this connection gets none. */
		NODE_COUNT(st, conn_collision);
		return XDP_DROP;
	}
	if (m.has_handoff && c && bpf_ntohl(m.ho.client_isn_be) != c->client_isn) {
		/* The client reuses the tuple of an earlier connection (its
		 * port after TIME_WAIT, or a NAT's): a new connection, as the
		 * gateway saw with its new SYN.  The VM judges the SYN as Linux
		 * does for TIME_WAIT (RFC 6191): the client's ISN and clock moved on. */
		NODE_COUNT(st, conn_replaced);
		conn_forget(&k, c);
		c = NULL;
	}
	if (m.has_handoff && !c)
		return handoff_new(ctx, &p, &m, &k, cfg, s, st);
	if (m.has_handoff && c->state == VM_CONN_SYN_SENT)
		return handoff_more(ctx, &p, &m, &k, c, cfg, s, st);
	if (!c) {
		/* Beyond the hello's 16 KB (every packet before carries the
		 * handoff) and no connection: lost here (swept idle, evicted
		 * from a full table, the node's state gone), so the VM cannot
		 * be reached either.  Reset, as a TCP answers a segment of a
		 * connection it does not have (RFC 793), rather than let the
		 * client retransmit into nothing. */
		NODE_COUNT(st, no_conn);
		return reset_client(ctx, &p, &m, cfg, st);
	}
	if (c->state != VM_CONN_ESTABLISHED) {
		NODE_COUNT(st, early_data);
		return XDP_DROP;
	}
	gen = bpf_map_lookup_elem(&vms_gen, &zero);
	if (!gen || !*gen || c->vm_gen != *gen) {
		/* vms changed since this connection's copy (or it has none) */
		__u32 g = gen ? *gen : 0;
		vm = bpf_map_lookup_elem(&vms, &c->vm_id);
		if (!vm) {
			NODE_COUNT(st, handoff_no_vm);
			conn_forget(&k, c);
			return reset_client(ctx, &p, &m, cfg, st);
		}
		c->vm_ifindex = vm->ifindex;
		__builtin_memcpy(c->vm_mac, vm->vm_mac, 6);
		__builtin_memcpy(c->host_mac, vm->host_mac, 6);
		c->vm_gen = g;
	}
	if (xlate_to_vm(ctx, &p, c, s)) {
		NODE_COUNT(st, mesh_malformed);
		return XDP_DROP;
	}
	rc = to_vm(ctx, c->vm_ifindex, c->vm_mac, c->host_mac, st);
	if (rc != XDP_REDIRECT)
		return rc;
	if (p.flags & TCP_RST) {
		/* The VM's TCP judges a client's RST (RFC 5961: taken at its
		 * RCV.NXT, a challenge ACK otherwise), so the connection stays.
		 * One the VM takes marks it: the sweep retires it unless the
		 * VM sends again (node_vm clears the mark; the conn_gen slot
		 * moved so that the VM's next packet reads conns).  That is
		 * the client's own at its sequence, or one the gateway judged
		 * so (VM_OPT_RST_TAKEN: it also knows the VM's last ACK,
		 * which node_vm's cached path does not write here). */
		NODE_COUNT(st, client_rst);
		if (m.rst_taken || (c->cli_nxt && p.seq == c->cli_nxt)) {
			c->fin |= VM_FIN_RST;
			conn_gen_move(&k);
		}
	} else {
		if (p.payload_len || (p.flags & TCP_FIN))
			vm_cli_at(&c->cli_nxt, vm_tcp_seg_end(&p));
		if ((p.flags & TCP_FIN) && vm_fin_seen(&c->fin, VM_FIN_CLIENT))
			NODE_COUNT(st, conn_closed);
	}
	NODE_COUNT(st, fwd_to_vm);
	return rc;
}
