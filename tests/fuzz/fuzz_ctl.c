// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: veil-controller's request handling (controlplane/ctl/req.c):
 * the body parser and each endpoint's checks, selected by the first byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct ctl_err e = { 0 };
	json_object *j = ctl_parse_body((const char *)data + 1, size - 1, &e);
	if (!j) {
		if (e.status < 400 || e.status > 499 || !e.msg[0])
			abort();   /* every refusal is a 4xx with a reason */
		return 0;
	}
	switch (data[0] & 7) {
	case 0: {
		struct ctl_order_req r;
		if (!ctl_order_req(j, &r, &e)) {
			if (!ctl_name_ok(r.hostname) || r.cpu < 1 || r.nssh > CTL_MAX_SSH_KEYS)
				abort();
			ctl_order_req_free(&r);
		} else if (e.status < 400 || e.status > 499) {
			abort();
		}
		break;
	}
	case 1: {
		struct ctl_register_req *r = calloc(1, sizeof(*r));
		if (ctl_register_req(j, r, &e) && (e.status < 400 || e.status > 499))
			abort();
		free(r);
		break;
	}
	case 4: {   /* a node's activation: refusals 4xx, the secret wiped on refusal */
		struct ctl_activate_req a;
		if (ctl_activate_req(j, &a, &e)) {
			static const uint8_t zero[32];
			if (e.status < 400 || e.status > 499 || memcmp(a.cred, zero, 32))
				abort();
		} else if (a.alen < 16 || a.alen > sizeof(a.attest) || a.slen < 8 || a.slen > sizeof(a.sig)) {
			abort();
		}
		break;
	}
	case 2: {
		struct ctl_token_req r;
		if (ctl_token_req(j, &r, &e) && (e.status < 400 || e.status > 499))
			abort();
		break;
	}
	default: {
		struct ctl_gateway_req r;
		if (ctl_gateway_req(j, &r, &e) && (e.status < 400 || e.status > 499))
			abort();
		break;
	}
	}
	json_object_put(j);
	return 0;
}
