/* SPDX-License-Identifier: Apache-2.0 */
/* Gateway logic shared by gw_ingress (XDP) and gw_asm (TC): cookies, the
 * route lookup for a parsed hello, and a new flow's entry. */
#ifndef VEIL_BPF_GW_LOGIC_H
#define VEIL_BPF_GW_LOGIC_H

#include "gw_maps.h"

struct gw_scratch {
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

VM_INLINE void flow_key_of(const struct vm_pkt *p, struct flow_key *k)
{
	__builtin_memcpy(k->client, p->saddr, 16);
	__builtin_memcpy(k->vip, p->daddr, 16);
	k->client_port_be = p->sport;
	k->vip_port_be = p->dport;
	k->family = p->family;
	k->pad[0] = k->pad[1] = k->pad[2] = 0;
}

/* The cookie's time counter at a TAI time (one clock read serves a
 * packet's cookie and its timestamp). */
VM_INLINE __u32 gw_cookie_tnow_at(const struct gw_config *cfg, __u64 tai_ns)
{
	__u32 s = (__u32)(tai_ns / 1000000000ULL);
	return s / (cfg->cookie_window_s ? cfg->cookie_window_s : 64);
}

VM_INLINE __u32 gw_cookie_tnow(const struct gw_config *cfg)
{
	return gw_cookie_tnow_at(cfg, bpf_ktime_get_tai_ns());
}

/* Checks a cookie against the current and the previous secret.  A global
 * function: verified once, not once per path of the caller. */
__attribute__((noinline)) int gw_cookie_ok(struct cookie_secret *sec, struct vm_cookie_in *cin,
					   __u32 cookie, __u32 tnow)
{
	if (!sec || !cin)
		return 0;
	if (vm_cookie_check_key(sec->cur, cin, cookie, tnow))
		return 1;
	if (sec->has_prev && vm_cookie_check_key(sec->prev, cin, cookie, tnow))
		return 1;
	return 0;
}

/* Parses the hello in s->buf and finds its route (exact name, then the
 * one-label wildcard).  Returns VM_HELLO_OK with the route in s->flow, or
 * the reason to refuse (VM_HELLO_* or GW_NO_ROUTE). */
#define GW_NO_ROUTE 100
__attribute__((noinline)) int gw_route_hello(struct gw_scratch *s, __u32 len)
{
	struct route_ent *e;
	int rc;

	if (!s)
		return VM_HELLO_MALFORMED;
	__builtin_memset(s->hello.name, 0, sizeof(s->hello.name));
	rc = vm_hello_parse(s->buf, len, &s->hello, &s->hst);
	if (rc != VM_HELLO_OK)
		return rc;
	/* the 64-bit hash of the name as key, the name compared once (few
	 * values live across the calls: the stack is shared with gw_asm's) */
	s->hk.hash = vm_name_hash_in(&s->nw, s->hello.name, s->hello.name_len & (VM_NAME_MAX - 1));
	e = bpf_map_lookup_elem(&routes, &s->hk);
	if (e && !vm_name_eq_in(&s->nw, e->name, s->hello.name, s->hello.name_len & (VM_NAME_MAX - 1)))
		e = 0;
	if (!e) {
		__builtin_memset(s->wkey.name, 0, sizeof(s->wkey.name));
		s->wlen = vm_wildcard_key(&s->hello, s->wkey.name) & (VM_NAME_MAX - 1);
		if (s->wlen) {
			s->hk.hash = vm_name_hash_in(&s->nw, s->wkey.name, s->wlen);
			e = bpf_map_lookup_elem(&routes, &s->hk);
			if (e && !vm_name_eq_in(&s->nw, e->name, s->wkey.name, s->wlen & (VM_NAME_MAX - 1)))
				e = 0;
		}
	}
	if (!e)
		return GW_NO_ROUTE;
	__builtin_memset(&s->flow, 0, sizeof(s->flow));
	s->flow.vm_id = e->val.vm_id;
	s->flow.node_family = e->val.node_family;
	__builtin_memcpy(s->flow.node, e->val.node, 16);
	return VM_HELLO_OK;
}

/* A hello gw_route_hello refused by its name, whose bytes do not all lie in
 * the first have (record header included): refused only once whole, so the
 * refusal acknowledges all of it and the client has nothing left to resend. */
VM_INLINE int gw_hello_cut(const struct gw_scratch *s, __u32 have)
{
	return s->hello.hello_len && 5 + s->hello.hello_len > have;
}

/* Fills a new flow (whose route gw_route_hello set) with what the node
 * needs: the handoff option, and the client's L2 neighbour for the return. */
VM_INLINE void gw_flow_init(struct flow_val *f, __u32 client_isn, __u32 cookie, const struct vm_tcpopts *o,
			    const struct gw_config *cfg, const __u8 *client_mac, const __u8 *vip_mac,
			    __u32 ifindex)
{
	struct vm_cookie_opts co;

	vm_cookie_decode(cookie, &co);
	f->client_isn = client_isn;
	f->handoff.vm_id_be = bpf_htonl(f->vm_id);
	f->handoff.client_isn_be = bpf_htonl(client_isn);
	f->handoff.cookie_isn_be = bpf_htonl(cookie);
	f->handoff.gw_tsval_be = bpf_htonl(co.ts_ok && o->ts_ok ? o->tsecr : 0);
	f->handoff.mss_be = bpf_htons(co.mss);
	f->handoff.client_wscale = co.wscale;
	f->handoff.gw_wscale = co.wscale != 0xff ? cfg->wscale : 0xff;
	f->handoff.flags = (co.sack_ok ? VM_HO_SACK_OK : 0) | (co.ts_ok && o->ts_ok ? VM_HO_TS_OK : 0);
	__builtin_memcpy(f->client_mac, client_mac, 6);
	__builtin_memcpy(f->vip_mac, vip_mac, 6);
	f->client_ifindex = ifindex;
	f->created_ns = bpf_ktime_get_coarse_ns();   /* only ages the flow: the coarse clock */
}

#endif
