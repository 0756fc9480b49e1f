// SPDX-License-Identifier: Apache-2.0
/* mapcount PINNED_MAP...: prints the number of entries in each map (for the
 * flood tests: a map of 20 KB values is too big to dump as JSON); for
 * gw_asm's hello_asm, an array, the slots that hold a hello (vm_map_count).
 *
 * mapcount --empty PINNED_ARRAY: writes zeros to every slot of an array map
 * and prints how many slots held something; for hello_asm, every hello gone
 * as an eviction by newer ones would leave it, without their tombstones
 * (tests/reliability.sh held_lost_*). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "veil.h"

static int empty(const char *path)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path);
	long held = 0;

	memset(&info, 0, sizeof(info));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "mapcount: %s: cannot open\n", path);
		return 1;
	}
	if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4) {
		fprintf(stderr, "mapcount: %s: not an array map\n", path);
		return 1;
	}
	held = vm_map_count(fd);
	unsigned char *zero = calloc(1, info.value_size);
	if (!zero) {
		fprintf(stderr, "mapcount: out of memory\n");
		return 1;
	}
	for (__u32 i = 0; i < info.max_entries; i++)
		if (bpf_map_update_elem(fd, &i, zero, BPF_ANY)) {
			fprintf(stderr, "mapcount: %s: slot %u: cannot write\n", path, i);
			free(zero);
			return 1;
		}
	free(zero);
	printf("%ld\n", held);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--empty"))
		return empty(argv[2]);
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
