/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway programs' side of the packet library (include/veil/gw.h):
 * per-CPU scratch, and the functions the verifier checks once (cookies, the
 * route lookup of a parsed hello), shared by gw_ingress (XDP) and gw_asm (TC). */
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

/* A route by name: the 64-bit hash of the name as key, the name compared
 * once (few values live across the calls: the stack is shared with
 * gw_asm's).  include/veil/gw_hello.h's lookup; rctx is the scratch. */
VM_INLINE int vm_env_route(void *rctx, const char *name, __u32 len, struct flow_val *f)
{
	struct gw_scratch *s = rctx;
	struct route_ent *e;

	s->hk.hash = vm_name_hash_in(&s->nw, name, len);
	e = bpf_map_lookup_elem(&routes, &s->hk);
	if (!e || !vm_name_eq_in(&s->nw, e->name, name, len & (VM_NAME_MAX - 1)))
		return -1;
	f->vm_id = e->val.vm_id;
	f->node_family = e->val.node_family;
	__builtin_memcpy(f->node, e->val.node, 16);
	return 0;
}

#include "veil/gw_hello.h"

/* Checks a cookie against the current and the previous secret.  A global
 * function: verified once, not once per path of the caller. */
__attribute__((noinline)) int gw_cookie_ok(struct cookie_secret *sec, struct vm_cookie_in *cin,
					   __u32 cookie, __u32 tnow)
{
	if (!sec || !cin)
		return 0;
	return vm_gw_cookie_ok(sec, cin, cookie, tnow);
}

/* Parses the hello in s->buf and finds its route (vm_gw_route_hello).
 * Returns VM_HELLO_OK with the route in s->flow, or the reason to refuse
 * (VM_HELLO_* or VM_GW_NO_ROUTE).  Global: verified once. */
__attribute__((noinline)) int gw_route_hello(struct gw_scratch *s, __u32 len)
{
	if (!s)
		return VM_HELLO_MALFORMED;
	return vm_gw_route_hello(s, s->buf, len, &s->hello, &s->hst, s->wkey.name, &s->flow);
}

#endif
