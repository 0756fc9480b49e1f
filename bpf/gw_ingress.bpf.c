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
 */
#include "lib/gw_logic.h"
#include "lib/mesh.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* TLS record: alert, version 3.3, length 2, fatal(2) unrecognized_name(112) */
#define TLS_ALERT_LEN 7
#define TLS_ALERT_W0 0x00030315u  /* bytes 15 03 03 00 as a little-endian word */
#define TLS_ALERT_W1 0x00700202u  /* bytes 02 02 70 00 */

VM_INLINE int load_tcpopts(struct xdp_md *ctx, const struct vm_pkt *p, struct vm_tcpopts *o)
{
	__u32 zero = 0, len = p->tcp_len - 20;
	struct gw_scratch *s = bpf_map_lookup_elem(&gw_scratch, &zero);

	if (!s || len > 40)
		return -1;
	if (len > 0 && bpf_xdp_load_bytes(ctx, p->l4_off + 20, s->optbuf, len))
		return -1;
	return vm_tcpopt_parse(s->optbuf, len, o, &s->ost);
}

/* Resizes the packet to eth + l3 + l4_len and swaps the L2/L3/L4 addresses,
 * leaving pointers to the rewritten headers. Returns the TCP header or NULL. */
VM_INLINE struct tcphdr *reply_prepare(struct xdp_md *ctx, const struct vm_pkt *p, __u32 l4_len)
{
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	int delta = (int)(ETH_HLEN + p->l3_len + l4_len) - (int)(data_end - data);
	struct ethhdr *eth;
	struct tcphdr *tcp;
	__u8 mac[6];
	__be16 port;

	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return NULL;
	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return NULL;
	__builtin_memcpy(mac, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	if (p->family == VM_AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return NULL;
		__be32 a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		ip->tos = 0;
		ip->tot_len = bpf_htons(20 + l4_len);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000);
		ip->ttl = 64;
		ip->check = vm_ip4_csum(ip);
		tcp = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct in6_addr a;
		if ((void *)(ip6 + 1) > data_end)
			return NULL;
		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		*(__u32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(l4_len);
		ip6->hop_limit = 64;
		tcp = (void *)(ip6 + 1);
	}
	if ((void *)tcp + 20 > data_end)
		return NULL;
	port = tcp->source;
	tcp->source = tcp->dest;
	tcp->dest = port;
	return tcp;
}

VM_INLINE int send_synack(struct xdp_md *ctx, const struct vm_pkt *p, struct gw_stats *st,
			  const struct gw_config *cfg, const struct cookie_secret *sec)
{
	struct vm_tcpopts o;
	struct vm_cookie_opts co;
	struct vm_cookie_in cin = {};
	struct tcphdr *tcp;
	__u32 cookie, tnow, tsval;
	__u64 tai;
	__u16 mss;

	if (load_tcpopts(ctx, p, &o) < 0 || p->payload_len || (p->flags & (TCP_ACK | TCP_RST | TCP_FIN))) {
		GW_COUNT(st, malformed);
		return XDP_DROP;
	}
	co.mss = o.mss ? o.mss : 536;
	co.wscale = o.wscale;
	co.sack_ok = o.sack_ok;
	co.ts_ok = o.ts_ok;
	__builtin_memcpy(cin.saddr, p->saddr, 16);
	__builtin_memcpy(cin.daddr, p->daddr, 16);
	cin.sport = p->sport;
	cin.dport = p->dport;
	cin.client_isn = p->seq;
	tai = bpf_ktime_get_tai_ns();   /* one clock read: the cookie's window and our TSval */
	tnow = gw_cookie_tnow_at(cfg, tai);
	cookie = vm_cookie_make(sec->cur, &cin, tnow, &co);
	tsval = (__u32)(tai / 1000000ULL);
	mss = p->family == VM_AF_INET ? cfg->mss4 : cfg->mss6;

	tcp = reply_prepare(ctx, p, VM_TCP_REPLY_HLEN);
	if (!tcp) {
		GW_COUNT(st, reply_fail);
		return XDP_DROP;
	}
	void *data_end = XDP_DATA_END(ctx);
	if ((void *)tcp + VM_TCP_REPLY_HLEN > data_end) {
		GW_COUNT(st, reply_fail);
		return XDP_DROP;
	}
	tcp->seq = bpf_htonl(cookie);
	tcp->ack_seq = bpf_htonl(p->seq + 1);
	((__u8 *)tcp)[12] = (VM_TCP_REPLY_HLEN / 4) << 4;
	((__u8 *)tcp)[13] = TCP_SYN | TCP_ACK;
	tcp->window = bpf_htons(65535);
	tcp->urg_ptr = 0;
	vm_tcpopt_write_syn((__u8 *)(tcp + 1), mss, o.sack_ok, o.ts_ok, tsval, o.tsval,
			    o.wscale != 0xff ? cfg->wscale : 0xff);
	tcp->check = vm_tcp_csum_hdr40(tcp, p->family, p->daddr, p->saddr);
	GW_COUNT(st, syn_cookie_sent);
	return XDP_TX;
}

/* A bare segment back to the client (no options): the refusal (TLS fatal
 * unrecognized_name alert with FIN, or RST, per the VIP's setting), or the
 * ACK of a FIN that closes a refused connection. */
VM_INLINE int reply_bare(struct xdp_md *ctx, const struct vm_pkt *p, __u32 seq, __u32 ack, __u8 flags,
			 int alert, struct gw_stats *st)
{
	__u32 plen = alert ? TLS_ALERT_LEN : 0;
	struct tcphdr *tcp = reply_prepare(ctx, p, 20 + plen);
	void *data_end = XDP_DATA_END(ctx);
	__u64 s;

	if (!tcp) {
		GW_COUNT(st, reply_fail);
		return XDP_DROP;
	}
	tcp->seq = bpf_htonl(seq);
	tcp->ack_seq = bpf_htonl(ack);
	((__u8 *)tcp)[12] = 5 << 4;
	((__u8 *)tcp)[13] = flags;
	tcp->window = (flags & TCP_RST) ? 0 : bpf_htons(65535);
	tcp->urg_ptr = 0;
	tcp->check = 0;
	s = vm_pseudo_sum(p->family, p->daddr, p->saddr, 20 + plen);
	if (alert) {
		if ((void *)tcp + 20 + TLS_ALERT_LEN > data_end) {
			GW_COUNT(st, reply_fail);
			return XDP_DROP;
		}
		__u8 *a = (__u8 *)tcp + 20;
		a[0] = 0x15; a[1] = 0x03; a[2] = 0x03; a[3] = 0x00;
		a[4] = 0x02; a[5] = 0x02; a[6] = 0x70;
		s += TLS_ALERT_W0 + TLS_ALERT_W1; /* little-endian hosts, as everywhere else here */
	}
#pragma unroll
	for (int i = 0; i < 5; i++)
		s += ((__u32 *)tcp)[i];
	tcp->check = ~vm_csum_fold(s);
	return XDP_TX;
}

/* Refuses a connection whose first data we will not route.  The alert
 * carries our FIN: the client's FIN that follows is answered statelessly. */
VM_INLINE int refuse(struct xdp_md *ctx, const struct vm_pkt *p, const struct vip_val *vip,
		     struct gw_stats *st)
{
	__u32 ack = p->seq + p->payload_len + ((p->flags & TCP_FIN) ? 1 : 0);

	if (vip->refuse == VM_REFUSE_ALERT) {
		GW_COUNT(st, refused_alert);
		return reply_bare(ctx, p, p->ack, ack, TCP_ACK | TCP_PSH | TCP_FIN, 1, st);
	}
	GW_COUNT(st, refused_rst);
	return reply_bare(ctx, p, p->ack, ack, TCP_RST | TCP_ACK, 0, st);
}

VM_INLINE int forward(struct xdp_md *ctx, const struct vm_pkt *p, const struct flow_val *f,
		      int with_handoff, const struct gw_config *cfg, struct gw_stats *st)
{
	const struct next_hop_val *nh;
	const __u8 *src;
	int why, verdict;
	__u8 fam = f->node_family;

	if (fam == VM_AF_INET) {
		if (!cfg->has_underlay4)
			goto nocfg;
		src = cfg->underlay4;
	} else {
		if (!cfg->has_underlay6)
			goto nocfg;
		src = cfg->underlay6;
	}
	if (vm_xdp_encap(ctx, fam, src, f->node, p->family, with_handoff ? &f->handoff : NULL,
			 vm_flow_port(p->saddr, p->daddr, p->sport, p->dport))) {
		GW_COUNT(st, encap_fail);
		return XDP_DROP;
	}
	/* the next hop the daemon keeps; the FIB only for a node it has not */
	nh = bpf_map_lookup_elem(&next_hops, f->node);
	if (nh)
		verdict = vm_xdp_hop_send(ctx, nh, &why);
	else
		verdict = vm_xdp_fib_send(ctx, fam, src, f->node, &why);
	if (why == BPF_FIB_LKUP_RET_NO_NEIGH)
		GW_COUNT(st, no_neigh);
	else if (why == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		GW_COUNT(st, mesh_mtu);
	else if (why)
		GW_COUNT(st, fib_fail);
	return verdict;
nocfg:
	GW_COUNT(st, no_config);
	return XDP_DROP;
}

/* First data on a connection we hold only as a cookie: the ClientHello.
 * Returns 1 when the flow was created (forward with handoff), 0 to refuse,
 * -1 to drop. */
VM_INLINE int hello_to_flow(struct xdp_md *ctx, const struct vm_pkt *p, struct gw_scratch *s,
			    const struct gw_config *cfg, struct gw_stats *st)
{
	__u32 len = p->payload_len, cookie = p->ack - 1;
	struct vm_tcpopts o;
	struct flow_key k;
	struct ethhdr *eth;
	int rc;

	if (len > VM_HELLO_BUF)
		len = VM_HELLO_BUF;
	if (len < 1 || bpf_xdp_load_bytes(ctx, p->l4_off + p->tcp_len, s->buf, len)) {
		GW_COUNT(st, malformed);
		return -1;
	}
	rc = gw_route_hello(s, len);
	switch (rc) {
	case VM_HELLO_OK:
		break;
	case VM_HELLO_NO_SNI:
		GW_COUNT(st, no_sni);
		return 0;
	case VM_HELLO_BAD_NAME:
		if (gw_hello_cut(s, p->payload_len))
			goto partial;
		GW_COUNT(st, bad_name);
		return 0;
	case VM_HELLO_PARTIAL:
	partial:
		/* The name is not in this segment (or the hello spans records):
		 * the TC program behind us reassembles. */
		GW_COUNT(st, hello_partial);
		return 2;
	case GW_NO_ROUTE:
		if (gw_hello_cut(s, p->payload_len))
			goto partial;
		GW_COUNT(st, no_route);
		return 0;
	default:
		GW_COUNT(st, parse_error);
		return 0;
	}
	if (load_tcpopts(ctx, p, &o) < 0) {
		GW_COUNT(st, malformed);
		return -1;
	}
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end) {
		GW_COUNT(st, malformed);
		return -1;
	}
	struct flow_val *f = &s->flow;
	gw_flow_init(f, p->seq - 1, cookie, &o, cfg, eth->h_source, eth->h_dest, ctx->ingress_ifindex);
	flow_key_of(p, &k);
	if (bpf_map_update_elem(&flows, &k, f, BPF_ANY)) {
		GW_COUNT(st, flow_full);
		return -1;
	}
	GW_COUNT(st, hello_routed);
	return 1;
}

SEC("xdp")
int gw_ingress(struct xdp_md *ctx)
{
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	struct gw_stats *st = gw_stats_get();
	struct ethhdr *eth = data;
	struct vm_pkt p = {};
	struct vip_key vk = {};
	struct vip_val *vip;
	struct flow_key k;
	struct flow_val *f;
	struct gw_config *cfg;
	struct cookie_secret *sec;
	struct gw_scratch *s;
	__u32 zero = 0;
	int rc, handoff = 0;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	rc = vm_parse_ip_tcp(data, data_end, (__u32)(data_end - data), ETH_HLEN, eth->h_proto, &p);
	if (rc == VM_PARSE_NOT_IP || rc == VM_PARSE_NOT_TCP) {
		GW_COUNT(st, pass_not_tcp);
		return XDP_PASS;
	}
	if (rc != VM_PARSE_OK) {
		/* Drop only what is addressed to a VIP; the kernel judges the rest. */
		if (rc == VM_PARSE_TRUNCATED && p.family && p.dport) {
			__builtin_memcpy(vk.addr, p.daddr, 16);
			vk.port_be = p.dport;
			vk.family = p.family;
			if (bpf_map_lookup_elem(&vips, &vk)) {
				GW_COUNT(st, malformed);
				return XDP_DROP;
			}
		} else if (rc == VM_PARSE_FRAGMENT) {
			GW_COUNT(st, fragment);
		} else if (rc == VM_PARSE_IP_OPTIONS) {
			GW_COUNT(st, ip_options);
		}
		return XDP_PASS;
	}
	/* An established packet needs its flow and the underlay address, no
	 * more: the flow first, the VIP and the rest only on a miss (a flow
	 * outlives its VIP as it outlives its route, until it closes or ages). */
	flow_key_of(&p, &k);
	f = bpf_map_lookup_elem(&flows, &k);
	if (f && (p.flags & (TCP_SYN | TCP_ACK)) != TCP_SYN) {
		cfg = bpf_map_lookup_elem(&gw_config, &zero);
		if (!cfg) {
			GW_COUNT(st, no_config);
			return XDP_DROP;
		}
		if (p.flags & TCP_RST) {
			rc = forward(ctx, &p, f, 0, cfg, st);
			bpf_map_delete_elem(&flows, &k);
			GW_COUNT(st, flow_reset);
			return rc;
		}
		/* Hello bytes the gateway ACKed itself come again: the client
		 * retransmits because the VM has not acknowledged the whole hello,
		 * so the node may lack a segment.  gw_asm sends every held one. */
		if (f->held_len && p.payload_len && p.seq - (f->client_isn + 1) < f->held_len) {
			GW_COUNT(st, hello_retransmit);
			return XDP_PASS;
		}
		if ((p.flags & TCP_FIN) && vm_fin_seen(&f->fin, VM_FIN_CLIENT))
			GW_COUNT(st, flow_closed);
		/* Data in the hello's range carries the handoff option: the node
		 * keeps hello segments until the VM answers its SYN. */
		handoff = p.payload_len && p.seq - (f->client_isn + 1) < VM_ASM_BYTES;
		if (p.payload_len && p.seq == f->client_isn + 1)
			GW_COUNT(st, hello_retransmit);
		else
			GW_COUNT(st, fwd_established);
		return forward(ctx, &p, f, handoff, cfg, st);
	}

	__builtin_memcpy(vk.addr, p.daddr, 16);
	vk.port_be = p.dport;
	vk.family = p.family;
	vip = bpf_map_lookup_elem(&vips, &vk);
	if (!vip) {
		GW_COUNT(st, pass_not_vip);
		return XDP_PASS;
	}
	cfg = bpf_map_lookup_elem(&gw_config, &zero);
	sec = bpf_map_lookup_elem(&cookie_secret, &zero);
	s = bpf_map_lookup_elem(&gw_scratch, &zero);
	if (!cfg || !sec || !sec->epoch || !s) {
		GW_COUNT(st, no_config);
		return XDP_DROP;
	}
	if (f) {
		/* A new connection on the tuple of an old one. */
		bpf_map_delete_elem(&flows, &k);
		return send_synack(ctx, &p, st, cfg, sec);
	}

	if (p.flags & TCP_RST) {
		GW_COUNT(st, rst_no_flow);
		return XDP_DROP;
	}
	if ((p.flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return send_synack(ctx, &p, st, cfg, sec);
	if ((p.flags & (TCP_SYN | TCP_ACK)) != TCP_ACK) {
		GW_COUNT(st, bad_cookie);
		return XDP_DROP;
	}
	{
		struct vm_cookie_in cin = {};
		__u32 tnow = gw_cookie_tnow(cfg);

		__builtin_memcpy(cin.saddr, p.saddr, 16);
		__builtin_memcpy(cin.daddr, p.daddr, 16);
		cin.sport = p.sport;
		cin.dport = p.dport;
		cin.client_isn = p.seq - 1;
		if (!gw_cookie_ok(sec, &cin, p.ack - 1, tnow)) {
			/* A later segment of a hello being reassembled (its seq is
			 * not the ISN + 1 the cookie covers), or one that overtook
			 * the first: gw_asm (TC) judges it. */
			if (p.payload_len) {
				GW_COUNT(st, asm_handed);
				return XDP_PASS;
			}
			/* The client closing a connection we refused (our FIN
			 * came with the alert): ACK its FIN so it does not sit in
			 * LAST-ACK.  One packet for one, as any TCP stack answers. */
			if (p.flags & TCP_FIN) {
				GW_COUNT(st, fin_answered);
				return reply_bare(ctx, &p, p.ack, p.seq + 1, TCP_ACK, 0, st);
			}
			GW_COUNT(st, bad_cookie);
			return XDP_DROP;
		}
	}
	if (!p.payload_len) {
		GW_COUNT(st, cookie_ack);
		return XDP_DROP;
	}
	rc = hello_to_flow(ctx, &p, s, cfg, st);
	if (rc < 0)
		return XDP_DROP;
	if (rc == 2)
		return XDP_PASS;   /* to gw_asm (TC): reassembly */
	if (rc == 0)
		return refuse(ctx, &p, vip, st);
	return forward(ctx, &p, &s->flow, 1, cfg, st);
}
