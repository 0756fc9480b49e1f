// SPDX-License-Identifier: Apache-2.0
/* mapcount PINNED_MAP...: prints the number of entries in each map (for the
 * flood tests: a map of 20 KB values is too big to dump as JSON); for
 * gw_asm's hello_asm, an array, the slots that hold a hello (vm_map_count).
 *
 * mapcount --empty PINNED_ARRAY: writes zeros to every slot of an array map
 * and prints how many slots held something; for hello_asm, every hello gone
 * as an eviction by newer ones would leave it, without their tombstones
 * (tests/reliability.sh held_lost_*).
 *
 * mapcount --flow-put PIN_DIR CLIENT PORT VIP PORT: puts a flow of that
 * tuple (its other bytes 0x11) into the gateway's flow table PIN_DIR/flows,
 * keyed and placed under PIN_DIR/flow_seed as the programs would
 * (tests/ops.sh resized_maps_copied). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "veil.h"
#include "veil/flowkey.h"

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

static int flow_put(char **a)
{
	char p1[512], p2[512];
	struct vm_flows t;
	struct flow_tuple tu = { 0 };
	struct flow_key k;
	struct flow_val v;
	int f1 = vm_addr_parse(a[1], tu.client), f2 = vm_addr_parse(a[3], tu.vip), rc, ffd, sfd;

	snprintf(p1, sizeof(p1), "%s/flows", a[0]);
	snprintf(p2, sizeof(p2), "%s/flow_seed", a[0]);
	ffd = bpf_obj_get(p1);
	sfd = bpf_obj_get(p2);
	rc = !f1 || f1 != f2 || vm_flows_open(&t, ffd, sfd);
	if (sfd >= 0)
		close(sfd);      /* the table keeps what it needs: its mapping and the seed read */
	if (rc) {
		if (ffd >= 0)
			close(ffd);
		fprintf(stderr, "mapcount: %s: no flow table and seed, or bad addresses\n", a[0]);
		return 1;
	}
	tu.family = f1;
	tu.client_port_be = htons(atoi(a[2]));
	tu.vip_port_be = htons(atoi(a[4]));
	vm_flow_key_tuple(&tu, &t.seed, &k);
	memset(&v, 0x11, sizeof(v));
	VM_FLOW_TUPLE_SET(&v, tu.family, tu.client, tu.vip);
	rc = vm_flows_put(&t, &k, &v, 0);
	vm_flows_close(&t);
	close(ffd);
	if (rc) {
		fprintf(stderr, "mapcount: flow put: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 7 && !strcmp(argv[1], "--flow-put"))
		return flow_put(argv + 2);
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
