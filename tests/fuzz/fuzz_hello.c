// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: the ClientHello parser's userspace build.  Reads of bytes past
 * the input would change results, so the rest of the buffer is poisoned
 * (ASan) and every OK must carry a valid lowercase host name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sanitizer/asan_interface.h>
#include "veil/hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf;
	struct vm_hello h;
	struct vm_hello_state st;

	if (!buf)
		buf = malloc(VM_HELLO_BUF);
	if (size > VM_HELLO_BUF)
		size = VM_HELLO_BUF;
	ASAN_UNPOISON_MEMORY_REGION(buf, VM_HELLO_BUF);
	memcpy(buf, data, size);
	ASAN_POISON_MEMORY_REGION(buf + size, VM_HELLO_BUF - size);
	memset(&h, 0, sizeof(h));
	int rc = vm_hello_parse(buf, size, &h, &st);
	if (rc < 0 || rc >= VM_HELLO__COUNT)
		abort();
	if (rc == VM_HELLO_OK) {
		if (h.name_len < 1 || h.name_len > 253 || strlen(h.name) != h.name_len)
			abort();
		for (size_t i = 0; i < h.name_len; i++) {
			char c = h.name[i];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
				abort();
		}
		if (h.name[0] == '.' || h.name[h.name_len - 1] == '.' || strstr(h.name, ".."))
			abort();
	}
	return 0;
}
