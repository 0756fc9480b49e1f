/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The route of a parsed ClientHello, written once: the exact name, then the
 * one-label wildcard.  The includer defines the lookup first:
 *   int vm_env_route(void *rctx, const char *name, __u32 len, __u64 hash, struct flow_val *f)
 *        0 with the route's VM (handoff.vm_id_be) and node set in f, or -1; hash is the
 *        name's routes map key (vm_name_hash), made as the name was written
 * (the routes map by the name's hash in BPF, the configuration's table in
 * userspace).
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
 * VM_GW_NO_ROUTE); h->hello_len is the parsed hello's length. */
VM_INLINE int vm_gw_route_hello(void *rctx, __u8 *buf, __u32 len, struct vm_hello *h, struct vm_hello_state *hst,
				char *wname, struct flow_val *f)
{
	__u64 whash = 0;
	__u32 wlen;
	int rc;

	__builtin_memset(h->name, 0, sizeof(h->name));
	h->hello_len = 0;
	rc = vm_hello_parse(buf, len, h, hst);
	if (rc != VM_HELLO_OK)
		return rc;
	__builtin_memset(f, 0, sizeof(*f));
	if (vm_env_route(rctx, h->name, h->name_len & (VM_NAME_MAX - 1), h->name_hash, f)) {
		/* in words: clang stores a char buffer of unknown alignment
		 * byte by byte (256 stores) */
		VM_UNROLL
		for (__u32 i = 0; i < VM_NAME_MAX / 8; i++)
			vm_name_word_put(wname, i, 0);
		wlen = vm_wildcard_key(h, wname, &whash) & (VM_NAME_MAX - 1);
		if (!wlen || vm_env_route(rctx, wname, wlen, whash, f))
			return VM_GW_NO_ROUTE;
	}
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
