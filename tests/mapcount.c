// SPDX-License-Identifier: Apache-2.0
/* mapcount PINNED_MAP...: prints the number of entries in each map (for the
 * flood tests: a map of 20 KB values is too big to dump as JSON); for
 * gw_asm's hello_asm, an array, the slots that hold a hello (vm_map_count). */
#include <stdio.h>
#include <stdlib.h>
#include <bpf/bpf.h>
#include "veil.h"

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		int fd = bpf_obj_get(argv[i]);
		long n;
		if (fd < 0) {
			fprintf(stderr, "mapcount: %s: cannot open\n", argv[i]);
			return 1;
		}
		n = vm_map_count(fd);
		printf("%ld\n", n);
	}
	return 0;
}
