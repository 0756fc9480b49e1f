/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's packet logic, written once: the client-facing ingress
 * (delayed binding: SYN cookie, ClientHello -> route -> flow, established
 * flows into Geneve, refusals) and the mesh-facing return path.  The XDP
 * programs (bpf/gw_ingress.bpf.c, bpf/gw_return.bpf.c) and the userspace
 * fast path the DPDK gateway runs (dataplane/fp_env.c) are adapters around
 * vm_gw_ingress() here and vm_gw_return() (include/veil/gw_ret.h): same
 * decisions, same bytes, same counters, by construction.
 *
 * The environment stays behind hooks the includer defines before including
 * this header (static inline functions, and a struct vm_gw_env of its own):
 *
 *   VM_V_DROP, VM_V_PASS, VM_V_TX      its verdicts (XDP_* / VM_FP_*)
 *   VM_GW_COOKIE_OK(sec, p, cisn, isn, t)  vm_gw_cookie_ok, or a wrapper the
 *                                      verifier checks once (BPF)
 *   VM_GW_COOKIE_MAC(sec, p, t, low)   optional: vm_gw_cookie_mac under
 *                                      the current key, or such a wrapper
 *                                      (BPF: its stack apart from the caller's)
 *   VM_GW_SYN_TIMES(e, cfg, t)         optional: vm_gw_syn_times at
 *                                      vm_env_tai_ns(e), or the same values
 *                                      kept while that TAI is (BPF: per tick)
 *   void *vm_env_data(e), *vm_env_data_end(e)   the frame, read again after
 *                                      every resize
 *   int vm_env_resize(e, len)          the frame to len bytes (a reply)
 *   int vm_env_push(e, n), vm_env_pull(e, n)   n bytes more / fewer in front
 *   __u32 vm_env_ifindex(e)            the port the frame came in on
 *   __u64 vm_env_tai_ns(e), vm_env_coarse_ns(e)  clocks: TAI (cookies,
 *                                      our TSval; may trail by a clock tick,
 *                                      as the DPDK path's per-burst time does)
 *                                      and a coarse one that only ages entries
 *   const struct gw_config *vm_env_cfg(e)
 *   struct cookie_secret *vm_env_secret(e)   NULL: not ready (no_config)
 *   const struct vip_val *vm_env_vip(e, const struct vip_key *)
 *   const struct flow_seed *vm_env_flow_seed(e)   the key's seed (asked for
 *                                      IPv6 only; NULL: the zero key)
 *   struct flow_val *vm_env_flow_get(e, const struct flow_key *)   the entry
 *                                      under a key, whoever's (the callers
 *                                      compare its tuple)
 *   int vm_env_flow_put(e, const struct flow_key *, const struct flow_val *)
 *                                      a new entry where the caller found
 *                                      none: 0, VM_FLOW_PUT_TAKEN if one
 *                                      came meanwhile (not replaced), or
 *                                      another negative value: full
 *   void vm_env_flow_soon(e, const struct flow_key *)   a flow under the
 *                                      key will likely be put soon (a hello):
 *                                      start fetching what the put writes,
 *                                      waiting for nothing
 *   struct flow_val *vm_env_flow_gate_get(e, const struct flow_key *)
 *                                      vm_env_flow_get for the packet's one
 *                                      lookup here: this CPU's (worker's)
 *                                      flow gate ticked first (vm_gw_gate_tick)
 *   struct gw_flow_gate *vm_env_gate(e)   that gate, or NULL: never a flood
 *   void vm_env_flow_del(e, const struct flow_key *, struct flow_val *)
 *   struct flow_val *vm_env_flow_tmp(e)   room to build a new flow in
 *   int vm_env_tcpopts(e, const struct vm_pkt *, struct vm_tcpopts *)
 *   int vm_env_hello_route(e, const struct vm_pkt *, struct flow_val *f, __u32 *hello_len)
 *                                      loads the payload's first bytes, routes
 *                                      the hello (vm_gw_route_hello): VM_HELLO_OK
 *                                      with f's route, the reason, or -1 (unloadable)
 *   int vm_env_mesh_send(e, struct flow_val *f, family, const __u8 *src, int *why)
 *                                      the next hop's MACs towards f->node and
 *                                      the verdict (f's cached next hop may be
 *                                      refreshed); why: VM_SEND_*
 *   int vm_env_to_asm(e, const struct vm_pkt *, const struct flow_key *,
 *                     const struct vip_val *)   the reassembly's turn (gw_asm)
 *
 * and vm_env_route for include/veil/gw_hello.h.
 */
#ifndef VEIL_GW_PATH_H
#define VEIL_GW_PATH_H

#include "gw.h"
#include "gw_hello.h"
#include "geneve.h"

#ifndef VM_GW_COOKIE_MAC
#define VM_GW_COOKIE_MAC(sec, p, tcount, low) vm_gw_cookie_mac(&(sec)->cur, (p), (tcount), (low))
#endif
#ifndef VM_GW_SYN_TIMES
#define VM_GW_SYN_TIMES(e, cfg, t) VM_GW_SYN_TIMES_AT_TAI(e, cfg, t)
#endif

/* ---------- answers to the client, in place ---------- */

/* Resizes the frame to Ethernet + l3 + l4_len and makes it the start of an
 * answer to p (vm_reply_l3_write).  Returns the TCP header, with at least
 * 20 bytes before the frame's end, or NULL. */
VM_INLINE struct vm_tcp *vm_gw_reply_l3(struct vm_gw_env *e, const struct vm_pkt *p, __u32 l4_len)
{
	if (vm_env_resize(e, VM_ETH_HLEN + p->l3_len + l4_len))
		return 0;
	return vm_reply_l3_write(vm_env_data(e), vm_env_data_end(e), p, l4_len);
}

/* vm_gw_reply_l3, and the ports swapped. */
VM_INLINE struct vm_tcp *vm_gw_reply_prepare(struct vm_gw_env *e, const struct vm_pkt *p, __u32 l4_len)
{
	struct vm_tcp *tcp = vm_gw_reply_l3(e, p, l4_len);

	if (tcp)
		vm_tcp_ports_swap(tcp);
	return tcp;
}

/* The SYN-ACK whose ISN is the SYN cookie: no state kept. */
VM_INLINE int vm_gw_synack(struct vm_gw_env *e, const struct vm_pkt *p, struct gw_stats *st,
			   const struct gw_config *cfg, const struct cookie_secret *sec)
{
	struct vm_tcpopts o;
	struct vm_cookie_opts co;
	struct vm_tcp *tcp;
	struct vm_gw_times tm;
	__u32 cookie, low;
	__u16 mss;

	if (vm_env_tcpopts(e, p, &o) < 0 || p->payload_len || (p->flags & (VM_TCP_ACK | VM_TCP_RST | VM_TCP_FIN))) {
		VM_GW_COUNT(st, malformed);
		return VM_V_DROP;
	}
	co.mss = o.mss ? o.mss : VM_TCP_MSS_DEFAULT;
	co.wscale = o.wscale;
	co.sack_ok = o.sack_ok;
	co.ts_ok = o.ts_ok;
	VM_GW_SYN_TIMES(e, cfg, &tm);   /* one clock read: the cookie's window and our TSval */
	/* vm_cookie_make's steps, the MAC through the hook */
	low = vm_cookie_low(&sec->cur, tm.tnow, &co);
	cookie = vm_cookie_isn(VM_GW_COOKIE_MAC(sec, p, tm.tnow, low), low, p->seq);
	mss = p->family == VM_AF_INET ? cfg->mss4 : cfg->mss6;

	tcp = vm_gw_reply_l3(e, p, VM_TCP_REPLY_HLEN);
	if (!tcp) {
		VM_GW_COUNT(st, reply_fail);
		return VM_V_DROP;
	}
	if ((void *)tcp + VM_TCP_REPLY_HLEN > vm_env_data_end(e)) {
		VM_GW_COUNT(st, reply_fail);
		return VM_V_DROP;
	}
	/* The whole header as ten words, stored once each and summed for the
	 * checksum as they are (no read-back): our port and theirs, ISN =
	 * cookie, their ISN + 1, data offset, SYN|ACK, window, checksum 0, urgent
	 * 0, the options. */
	{
		vm_u32a *tw = (vm_u32a *)tcp;
		__u64 s = vm_pseudo_sum(p->family, p->daddr, p->saddr, VM_TCP_REPLY_HLEN);
		__u32 w;

		w = (__u32)(__u16)p->dport | (__u32)(__u16)p->sport << 16;
		tw[0] = w;
		s += w;
		w = vm_htonl(cookie);
		tw[1] = w;
		s += w;
		w = vm_htonl(p->seq + 1);
		tw[2] = w;
		s += w;
		w = VM_W32((VM_TCP_REPLY_HLEN / 4) << 4, VM_TCP_SYN | VM_TCP_ACK, 0, 0) |
		    (__u32)vm_htons(VM_TCP_WIN_MAX) << 16;
		tw[3] = w;
		s += w;
		s += vm_tcpopt_write_syn((__u8 *)(tcp + 1), mss, o.sack_ok, o.ts_ok, tm.tsval, o.tsval,
					 o.wscale != VM_WSCALE_NONE ? cfg->wscale : VM_WSCALE_NONE);
		tw[4] = (__u16)~vm_csum_fold(s);   /* check, then urg_ptr 0 */
	}
	VM_GW_COUNT(st, syn_cookie_sent);
	return VM_V_TX;
}

/* A bare segment back to the client (no options): the refusal (TLS fatal
 * unrecognized_name alert with FIN, or RST, per the VIP's setting), or the
 * ACK of a FIN that closes a refused connection. */
VM_INLINE int vm_gw_reply_bare(struct vm_gw_env *e, const struct vm_pkt *p, __u32 seq, __u32 ack, __u8 flags,
			       int alert, struct gw_stats *st)
{
	__u32 plen = alert ? VM_TLS_ALERT_LEN : 0;
	struct vm_tcp *tcp = vm_gw_reply_prepare(e, p, VM_TCP_HLEN + plen);
	__u64 s = 0;   /* the payload's sum */

	if (!tcp) {
		VM_GW_COUNT(st, reply_fail);
		return VM_V_DROP;
	}
	if (alert) {
		if ((void *)tcp + VM_TCP_HLEN + VM_TLS_ALERT_LEN > vm_env_data_end(e)) {
			VM_GW_COUNT(st, reply_fail);
			return VM_V_DROP;
		}
		vm_tls_alert_write((__u8 *)tcp + VM_TCP_HLEN);
		s = VM_TLS_ALERT_W0 + VM_TLS_ALERT_W1; /* little-endian hosts, as everywhere else here */
	}
	vm_tcp_bare_write(tcp, p, seq, ack, flags, VM_TCP_HLEN + plen, s);
	return VM_V_TX;
}

/* Refuses a connection whose first data we will not route.  The alert
 * carries our FIN: the client's FIN that follows is answered statelessly. */
VM_INLINE int vm_gw_refuse(struct vm_gw_env *e, const struct vm_pkt *p, const struct vip_val *vip,
			   struct gw_stats *st)
{
	__u32 ack = vm_tcp_seg_end(p);

	if (vip->refuse == VM_REFUSE_ALERT) {
		VM_GW_COUNT(st, refused_alert);
		return vm_gw_reply_bare(e, p, p->ack, ack, VM_TCP_ACK | VM_TCP_PSH | VM_TCP_FIN, 1, st);
	}
	VM_GW_COUNT(st, refused_rst);
	return vm_gw_reply_bare(e, p, p->ack, ack, VM_TCP_RST | VM_TCP_ACK, 0, st);
}

/* ---------- to the node ---------- */

/* The packet into Geneve (with the option asked for: VM_GNV_*) and out
 * towards the flow's node. */
VM_INLINE int vm_gw_forward(struct vm_gw_env *e, const struct vm_pkt *p, struct flow_val *f,
			    int opt, const struct gw_config *cfg, struct gw_stats *st)
{
	const __u8 *src;
	void *data, *data_end;
	__u32 inner_len;
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
	data = vm_env_data(e);
	data_end = vm_env_data_end(e);
	inner_len = (__u32)((__u8 *)data_end - (__u8 *)data) - VM_ETH_HLEN;
	if (vm_env_push(e, vm_geneve_push_len(fam, opt)) ||
	    vm_geneve_write(vm_env_data(e), vm_env_data_end(e), fam, src, f->node,
			    p->family == VM_AF_INET ? VM_GENEVE_PROTO_IP4 : VM_GENEVE_PROTO_IP6, inner_len, opt,
			    &f->handoff, f->mesh_sport)) {
		VM_GW_COUNT(st, encap_fail);
		return VM_V_DROP;
	}
	verdict = vm_env_mesh_send(e, f, fam, src, &why);
	if (why == VM_SEND_NO_NEIGH)
		VM_GW_COUNT(st, no_neigh);
	else if (why == VM_SEND_MTU)
		VM_GW_COUNT(st, mesh_mtu);
	else if (why)
		VM_GW_COUNT(st, fib_fail);
	return verdict;
nocfg:
	VM_GW_COUNT(st, no_config);
	return VM_V_DROP;
}

/* First data on a connection we hold only as a cookie: the ClientHello.
 * Returns 1 when the flow was created (forward with handoff; the flow in
 * *fo), 0 to refuse, 2 for the reassembly, -1 to drop.  taken: p's key
 * holds another connection's flow, which a new one must not replace: the
 * hello is refused (the client may come again from another port). */
VM_INLINE int vm_gw_hello_to_flow(struct vm_gw_env *e, const struct vm_pkt *p, const struct flow_key *k,
				  int taken, const struct gw_config *cfg, struct gw_stats *st, struct flow_val **fo)
{
	__u32 cookie = p->ack - 1, hello_len = 0;
	struct flow_val *f = vm_env_flow_tmp(e);
	struct vm_tcpopts o;
	struct vm_eth *eth;
	int rc;

	if (taken)
		return 0;
	if (!f) {
		VM_GW_COUNT(st, malformed);
		return -1;
	}
	rc = vm_env_hello_route(e, p, f, &hello_len);
	switch (rc) {
	case VM_HELLO_OK:
		break;
	case VM_HELLO_NO_SNI:
		VM_GW_COUNT(st, no_sni);
		return 0;
	case VM_HELLO_BAD_NAME:
		if (vm_gw_hello_cut(hello_len, p->payload_len))
			goto partial;
		VM_GW_COUNT(st, bad_name);
		return 0;
	case VM_HELLO_PARTIAL:
	partial:
		/* The name is not in this segment (or the hello spans records):
		 * the reassembly behind us takes it. */
		VM_GW_COUNT(st, hello_partial);
		return 2;
	case VM_GW_NO_ROUTE:
		if (vm_gw_hello_cut(hello_len, p->payload_len))
			goto partial;
		VM_GW_COUNT(st, no_route);
		return 0;
	case -1:
		VM_GW_COUNT(st, malformed);
		return -1;
	default:
		VM_GW_COUNT(st, parse_error);
		return 0;
	}
	if (vm_env_tcpopts(e, p, &o) < 0) {
		VM_GW_COUNT(st, malformed);
		return -1;
	}
	eth = vm_env_data(e);
	if ((void *)(eth + 1) > vm_env_data_end(e)) {
		VM_GW_COUNT(st, malformed);
		return -1;
	}
	vm_gw_flow_init(f, p, p->seq - 1, cookie, &o, cfg, eth->src, eth->dst, vm_env_ifindex(e),
			vm_env_coarse_ns(e), vm_flow_port(p->saddr, p->daddr, p->sport, p->dport));
	rc = vm_env_flow_put(e, k, f);
	if (rc) {
		/* taken meanwhile: a colliding connection's hello on another CPU */
		VM_GW_COUNT_FLOW_PUT(st, rc);
		return -1;
	}
	VM_GW_COUNT(st, hello_routed);
	*fo = f;
	return 1;
}

/* ---------- gw_ingress: the client-facing side ---------- */

/* What a packet with no flow of its own needs: its VIP, the config and
 * the secret, and not to be a RST (with no flow, nothing to reset).  -1
 * when so; otherwise the verdict (the reason counted). */
VM_INLINE int vm_gw_no_flow_ready(struct vm_gw_env *e, const struct vm_pkt *p, struct gw_stats *st,
				  const struct vip_val **vip, const struct gw_config **cfg,
				  struct cookie_secret **sec)
{
	struct vip_key vk = {};

	vm_vip_key_of(p, &vk);
	*vip = vm_env_vip(e, &vk);
	if (!*vip) {
		VM_GW_COUNT(st, pass_not_vip);
		return VM_V_PASS;
	}
	*cfg = vm_env_cfg(e);
	*sec = vm_env_secret(e);
	if (!*cfg || !*sec || !(*sec)->epoch) {
		VM_GW_COUNT(st, no_config);
		return VM_V_DROP;
	}
	if (p->flags & VM_TCP_RST) {
		VM_GW_COUNT(st, rst_no_flow);
		return VM_V_DROP;
	}
	return -1;
}

/* 1 when p's payload starts as a TLS handshake record (type, major
 * version): a hello's first segment, as a connection's later data does by
 * a chance of 1 in 2^16. */
VM_INLINE int vm_gw_opens_handshake(const struct vm_pkt *p, const void *data, const void *data_end)
{
	const __u8 *pl = (const __u8 *)data + (p->l4_off & VM_L4_OFF_MASK) + (p->tcp_len & VM_TCP_HLEN_MASK);

	if (!p->payload_len || (const void *)(pl + 2) > data_end)
		return 0;
	return pl[0] == VM_TLS_CT_HANDSHAKE && pl[1] == VM_TLS_VERSION_MAJOR;
}

/* Whether p, an ACK on flow f's tuple, has the shape of a new handshake's
 * ACK on a reused tuple rather than of f's connection's segment (the
 * cookie then decides, vm_gw_ingress):
 *   - its sequence is not where f's client stands: more than
 *     VM_RST_WINDOW from cli_nxt, or, on a closed flow (FIN both ways) or
 *     one its client reset (VM_FIN_RST), anything but its last ACK or RST
 *     (cli_nxt) and its FIN again (cli_nxt - 1);
 *     a new connection's ISN is random, so it is far from them but for a
 *     chance of 2^17 in 2^32 (that handshake then fails, as its client's
 *     ACK reaches the old connection);
 *   - and it carries nothing, or a TLS handshake record's start (the
 *     hello): a live connection's segment from far back (a retransmission
 *     in a window above 64 KB) carries data, and starts so by a chance
 *     of 1 in 2^16, so a live connection is taken for a new one with a
 *     chance of 2^-16 times the cookie's 2^-21 for such a segment.
 * A flow of an older build (cli_nxt 0: its sequence unknown) is never
 * taken for another. */
VM_INLINE int vm_gw_seq_foreign(const struct flow_val *f, const struct vm_pkt *p, const void *data,
				const void *data_end)
{
	__u32 d = p->seq - f->cli_nxt;

	if (!f->cli_nxt)
		return 0;
	if (vm_fin_retired(f->fin) ? d == 0 || d == (__u32)-1 : vm_gw_cli_near(f, p->seq))
		return 0;
	if (!p->payload_len)
		return 1;
	return vm_gw_opens_handshake(p, data, data_end);
}

VM_INLINE int vm_gw_ingress(struct vm_gw_env *e, struct gw_stats *st)
{
	void *data = vm_env_data(e), *data_end = vm_env_data_end(e);
	struct vm_eth *eth = data;
	struct vm_pkt p = {};
	struct vip_key vk = {};
	const struct vip_val *vip = 0;
	struct flow_key k VM_KEY_ALIGNED;   /* stored as words (vm_flow_key_make) */
	struct flow_val *f;
	const struct gw_config *cfg;
	struct cookie_secret *sec;
	int rc, handoff = 0, taken = 0, vouched = 0;

	if ((void *)(eth + 1) > data_end)
		return VM_V_PASS;
	rc = vm_parse_ip_tcp(data, data_end, (__u32)((__u8 *)data_end - (__u8 *)data), VM_ETH_HLEN, eth->proto, &p);
	if (rc == VM_PARSE_NOT_IP || rc == VM_PARSE_NOT_TCP) {
		VM_GW_COUNT(st, pass_not_tcp);
		return VM_V_PASS;
	}
	if (rc != VM_PARSE_OK) {
		/* Drop only what is addressed to a VIP; the kernel judges the rest. */
		if (rc == VM_PARSE_TRUNCATED && p.family && p.dport) {
			vm_vip_key_of(&p, &vk);
			if (vm_env_vip(e, &vk)) {
				VM_GW_COUNT(st, malformed);
				return VM_V_DROP;
			}
		} else if (rc == VM_PARSE_FRAGMENT) {
			VM_GW_COUNT(st, fragment);
		} else if (rc == VM_PARSE_IP_OPTIONS) {
			VM_GW_COUNT(st, ip_options);
		}
		return VM_V_PASS;
	}
	/* A SYN changes no state and looks up no flow: it is answered with a
	 * cookie whatever flow its tuple has.  A SYN flood's spoofed tuples
	 * then cost no cold bucket of the flows map each.  A live flow on the
	 * tuple learns of a new handshake from its ACK (vm_gw_seq_foreign). */
	if (vm_tcp_syn_only(p.flags)) {
		rc = vm_gw_no_flow_ready(e, &p, st, &vip, &cfg, &sec);
		if (rc >= 0)
			return rc;
		return vm_gw_synack(e, &p, st, cfg, sec);
	}
	/* An established packet needs its flow and the underlay address, no
	 * more: the flow first, the VIP and the rest only on a miss (a flow
	 * outlives its VIP as it outlives its route, until it closes or ages). */
	if (p.family == VM_AF_INET)
		vm_flow_key_of(&p, 0, &k);
	else {
		/* folded from the packet's words, not from p's copy of them (a
		 * load of what was just stored waits for the store) */
		const struct vm_ip6 *ip6 = (const void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return VM_V_PASS;   /* the parser saw it whole */
		vm_flow_key_make(VM_AF_INET6, ip6->saddr, ip6->daddr, p.sport, p.dport, vm_env_flow_seed(e), &k);
	}
	/* A segment that opens a handshake record is most likely a hello,
	 * whose flow is put once it is parsed: what the put will write is
	 * asked for now (vm_env_flow_soon), its miss beside the lookup's. */
	if (vm_gw_opens_handshake(&p, data, data_end))
		vm_env_flow_soon(e, &k);
	f = vm_env_flow_gate_get(e, &k);
	if (f && !VM_FLOW_OF(f, &p)) {
		/* Another connection's flow under this key (IPv6 folds that
		 * collide, or the other family's): never ours to use or replace. */
		VM_GW_COUNT(st, flow_collision);
		f = 0;
		taken = 1;
	}
	if (f) {
		cfg = vm_env_cfg(e);
		if (!cfg) {
			VM_GW_COUNT(st, no_config);
			return VM_V_DROP;
		}
		if (p.flags & VM_TCP_RST) {
			/* Only near the client's sequence: a blind RST (the
			 * tuple guessed) goes no further.  One near it goes to
			 * the VM, whose TCP judges it (RFC 5961: taken at its
			 * RCV.NXT, a challenge ACK otherwise); the flow stays,
			 * so a RST the VM refuses ends nothing here either.
			 * One the VM's TCP takes marks the flow: the sweep
			 * retires it unless the VM sends again (gw_return
			 * clears the mark).  That is one at the client's
			 * sequence (cli_nxt: its abort) or at the VM's last
			 * ACK (vm_ack: the client's answer to a segment of a
			 * connection it has closed carries that segment's ACK,
			 * which trails cli_nxt while client data is in flight). */
			if (!vm_gw_rst_ok(f, &p)) {
				VM_GW_COUNT(st, rst_out_of_window);
				return VM_V_DROP;
			}
			if (!f->cli_nxt || p.seq == f->cli_nxt || (f->vm_ack && p.seq == f->vm_ack)) {
				/* the node marks its connection on the verdict */
				f->fin |= VM_FIN_RST;
				VM_GW_COUNT(st, flow_reset);
				return vm_gw_forward(e, &p, f, VM_GNV_RST_TAKEN, cfg, st);
			}
			VM_GW_COUNT(st, rst_near);
			return vm_gw_forward(e, &p, f, VM_GNV_NO_OPT, cfg, st);
		}
		if (vm_gw_seq_foreign(f, &p, data, data_end)) {
			/* Not where this connection stands: a new handshake's
			 * ACK on the reused tuple (a client behind a NAT that
			 * reused the port of a connection that never closed
			 * here, or of a closed one) if its cookie checks out:
			 * the old flow goes and the packet takes the path of
			 * one without a flow.  Otherwise it is forwarded as
			 * ever, and the VM's TCP judges it. */
			struct vm_gw_times tm;
			VM_GW_COUNT(st, handshake_on_flow);
			sec = vm_env_secret(e);
			VM_GW_SYN_TIMES(e, cfg, &tm);
			if (sec && sec->epoch && VM_GW_COOKIE_OK(sec, &p, p.seq - 1, p.ack - 1, tm.tnow)) {
				vm_env_flow_del(e, &k, f);
				VM_GW_COUNT(st, flow_replaced);
				f = 0;
				vouched = 1;   /* the path of no flow need not check it again */
				goto no_flow;
			}
		}
		if (p.payload_len || (p.flags & VM_TCP_FIN))   /* a bare ACK ends where it starts */
			vm_gw_cli_seen(f, &p);
		/* Hello bytes the gateway ACKed itself come again: the client
		 * retransmits because the VM has not acknowledged the whole hello,
		 * so the node may lack a segment.  The reassembly sends every held
		 * one. */
		if (f->held_len && p.payload_len && p.seq - (f->client_isn + 1) < f->held_len) {
			if (f->held_len < VM_HELD_LOST) {
				VM_GW_COUNT(st, hello_retransmit);
				return vm_env_to_asm(e, &p, &k, 0);
			}
			/* The copy is lost (VM_HELD_LOST) and the VM has
			 * said nothing since the hello went to its node:
			 * what the node keeps, if anything, has not reached
			 * a VM that answers.  The client's retransmissions
			 * are counted (the VM's first word resets the count,
			 * gw_return) and the VM_HELD_LOST_QUIET-th refused
			 * with a RST; until then each goes on as any segment
			 * of the flow, to the node. */
			if (!f->vm_ack && ++f->held_dups >= VM_HELD_LOST_QUIET) {
				vm_env_flow_del(e, &k, f);
				VM_GW_COUNT(st, held_lost_reset);
				return vm_gw_reply_bare(e, &p, p.ack, vm_tcp_seg_end(&p), VM_TCP_RST | VM_TCP_ACK, 0, st);
			}
		}
		if ((p.flags & VM_TCP_FIN) && vm_fin_seen(&f->fin, VM_FIN_CLIENT))
			VM_GW_COUNT(st, flow_closed);
		/* Data in the hello's range carries the handoff option: the node
		 * keeps hello segments until the VM answers its SYN. */
		handoff = p.payload_len && p.seq - (f->client_isn + 1) < VM_ASM_BYTES ? VM_GNV_HANDOFF : VM_GNV_NO_OPT;
		if (p.payload_len && p.seq == f->client_isn + 1)
			VM_GW_COUNT(st, hello_retransmit);
		else
			VM_GW_COUNT(st, fwd_established);
		return vm_gw_forward(e, &p, f, handoff, cfg, st);
	}

no_flow:
	rc = vm_gw_no_flow_ready(e, &p, st, &vip, &cfg, &sec);
	if (rc >= 0)
		return rc;
	if ((p.flags & (VM_TCP_SYN | VM_TCP_ACK)) != VM_TCP_ACK) {
		VM_GW_COUNT(st, bad_cookie);
		return VM_V_DROP;
	}
	if (!vouched) {
		/* A bare ACK makes no state whatever its cookie: under a
		 * flood it goes without the MAC, but for the window's probes
		 * (VM_FLOW_GATE_* in wire.h). */
		if (!p.payload_len && !(p.flags & VM_TCP_FIN) && vm_gw_gate_unjudged(vm_env_gate(e))) {
			VM_GW_COUNT(st, ack_unjudged);
			return VM_V_DROP;
		}
		/* the cookie's time counter as the SYN-ACK takes it (BPF: kept
		 * per CPU for the tick, no divisions) */
		struct vm_gw_times tm;
		VM_GW_SYN_TIMES(e, cfg, &tm);
		__u32 tnow = tm.tnow;

		if (!VM_GW_COOKIE_OK(sec, &p, p.seq - 1, p.ack - 1, tnow)) {
			/* A later segment of a hello being reassembled (its seq is
			 * not the ISN + 1 the cookie covers), or one that overtook
			 * the first: the reassembly judges it. */
			if (p.payload_len) {
				VM_GW_COUNT(st, asm_handed);
				return vm_env_to_asm(e, &p, &k, vip);
			}
			/* The client closing a connection we refused (our FIN
			 * came with the alert): ACK its FIN so it does not sit in
			 * LAST-ACK.  One packet for one, as any TCP stack answers. */
			if (p.flags & VM_TCP_FIN) {
				VM_GW_COUNT(st, fin_answered);
				return vm_gw_reply_bare(e, &p, p.ack, p.seq + 1, VM_TCP_ACK, 0, st);
			}
			VM_GW_COUNT(st, bad_cookie);
			return VM_V_DROP;
		}
	}
	if (!p.payload_len) {
		VM_GW_COUNT(st, cookie_ack);
		return VM_V_DROP;
	}
	rc = vm_gw_hello_to_flow(e, &p, &k, taken, cfg, st, &f);
	if (rc < 0)
		return VM_V_DROP;
	if (rc == 2)
		return vm_env_to_asm(e, &p, &k, vip);
	if (rc == 0)
		return vm_gw_refuse(e, &p, vip, st);
	return vm_gw_forward(e, &p, f, VM_GNV_HANDOFF, cfg, st);
}

#endif /* VEIL_GW_PATH_H */
