// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: the key-share parser (what validators read from the registry
 * and clients read from validators).  Anything it accepts must encode back
 * to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "keys/shamir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_share s;
	uint8_t back[VM_SHARE_MAX];
	const char *why = NULL;

	if (vm_share_decode(data, size, &s, &why) == 0) {
		int n = vm_share_encode(&s, back, sizeof(back));
		if (n < 0 || (size_t)n != size || memcmp(back, data, size))
			abort();
	} else if (!why) {
		abort();
	}
	return 0;
}
