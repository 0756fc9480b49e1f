/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The route of a parsed ClientHello, written once: the exact name, then the
 * one-label wildcard.  The includer defines the lookup first:
 *   int vm_env_route(void *rctx, const char *name, __u32 len, __u64 hash, struct flow_val *f)
 *        0 with the route's VM (handoff.vm_id_be) and node set in f, or -1; hash is the
 *        name's routes map key (vm_name_hash), made as the name was written
 *   int vm_env_wild_len(void *rctx, __u32 len)
 *        0 when no wildcard route's name is len bytes long (its key is then
 *        not made), else 1
 * (the routes map by the name's hash and its filter route_bits in BPF, the
 * configuration's table in userspace).
 */
#ifndef VEIL_GW_HELLO_H
#define VEIL_GW_HELLO_H

#include "gw.h"
#include "hello.h"

/* the refusal's reason when a hello parses but has no route */
#define VM_GW_NO_ROUTE 100

/* Parses the hello in buf[0, len) and finds its route: the exact name, then
 * the one-label wildcard (wname: VM_NAME_MAX bytes of room).  VM_HELLO_OK
 * with the route in f, or the reason to refuse (VM_HELLO_* or
 * VM_GW_NO_ROUTE); h->hello_len is the parsed hello's length.
 *
 * The name is judged (vm_hello_name_check) only when no route has it:
 * every route's name is a host name (vm_route_name_ok, where routes are
 * written), and the exact lookup compares the whole name, so a name some
 * route has is one, but for a wildcard route's own "*." key, which no host
 * name starts with.  A hello's name found so is one the check would pass;
 * every other name is judged before it is refused or tried as a wildcard:
 * the same answers as judging every name first, for ~4 ns less a word of
 * a routed name. */
VM_INLINE int vm_gw_route_hello(void *rctx, __u8 *buf, __u32 len, struct vm_hello *h, struct vm_hello_state *hst,
				char *wname, struct flow_val *f)
{
	struct vm_wild_walk ww;
	__u64 whash;
	__u32 wlen, last;
	int rc;

	h->hello_len = 0;
	rc = vm_hello_scan(buf, len, h, hst);
	if (rc != VM_HELLO_OK)
		return rc;
	/* The scan wrote the name's words (zero past its end); the wildcard
	 * key's copy reads one word further (vm_wild_copy), which must be
	 * zero too.  Nothing reads further: no memset of the whole buffer. */
	last = (h->name_len & (VM_NAME_MAX - 1)) / 8;
	if (last + 1 < VM_NAME_MAX / 8)
		vm_name_word_put(h->name, last + 1, 0);
	__builtin_memset(f, 0, sizeof(*f));
	if (!vm_env_route(rctx, h->name, h->name_len & (VM_NAME_MAX - 1), h->name_hash, f))
		return h->name[0] == '*' ? VM_HELLO_BAD_NAME : VM_HELLO_OK;
	rc = vm_hello_name_check(h, hst);
	if (rc != VM_HELLO_OK)
		return rc;
	/* wname needs no zeroing: the copy writes each word of the key up to
	 * the one holding its end, and the lookup reads no further */
	wlen = vm_wildcard_start(h, wname, &ww) & (VM_NAME_MAX - 1);
	if (!wlen || !vm_env_wild_len(rctx, wlen))
		return VM_GW_NO_ROUTE;
	whash = vm_wildcard_make(&ww);
	if (vm_env_route(rctx, wname, wlen, whash, f))
		return VM_GW_NO_ROUTE;
	return VM_HELLO_OK;
}

/* A hello refused by its name whose bytes do not all lie in the first have
 * (record header included): refused only once whole, so the refusal
 * acknowledges all of it and the client has nothing left to resend. */
VM_INLINE int vm_gw_hello_cut(__u32 hello_len, __u32 have)
{
	return hello_len && VM_TLS_REC_HLEN + hello_len > have;
}

#endif /* VEIL_GW_HELLO_H */
