// SPDX-License-Identifier: Apache-2.0
/* mapcount PINNED_MAP...: prints the number of entries in each map (for the
 * flood tests: a map of 20 KB values is too big to dump as JSON). */
#include <stdio.h>
#include <stdlib.h>
#include <bpf/bpf.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		int fd = bpf_obj_get(argv[i]);
		unsigned char key[512], next[512];
		long n = 0;
		void *prev = NULL;
		if (fd < 0) {
			fprintf(stderr, "mapcount: %s: cannot open\n", argv[i]);
			return 1;
		}
		while (!bpf_map_get_next_key(fd, prev, next)) {
			n++;
			__builtin_memcpy(key, next, sizeof(key));
			prev = key;
		}
		printf("%ld\n", n);
	}
	return 0;
}
