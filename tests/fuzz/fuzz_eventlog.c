// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: what a validator parses from a VM and from its own disk before
 * trusting it, protocol v2: the TCG event log replay, the AK's TPM2B_PUBLIC
 * and the reference document (its parser called directly, as the signature
 * check passes it on).  First byte picks the parser.  No per-input setup, so
 * a long run reaches 1e7 executions.  Nothing may crash or read past the
 * input; every refusal has a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "keys/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *ak;
	static struct vm_evlog lg;
	char why[256] = "";

	if (!ak)
		ak = EVP_EC_gen("P-256");
	if (size < 1)
		return 0;
	uint8_t *in = malloc(size - 1 ? size - 1 : 1);   /* exactly the input: ASan sees a read past */
	memcpy(in, data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		if (vm_evlog_replay(in, size - 1, &lg, why, sizeof(why)) && !why[0])
			abort();
		break;
	case 1: {
		uint8_t name[34];
		if (vm_ak_check(in, size - 1, ak, name, NULL, why, sizeof(why)) == 0)
			abort();   /* a key nobody made in a TPM matched */
		if (!why[0])
			abort();
		break;
	}
	case 2: {
		static struct vm_policy p;
		if (vm_policy_parse((const char *)in, size - 1, &p, why, sizeof(why)) && !why[0])
			abort();
		break;
	}
	}
	free(in);
	return 0;
}
