// SPDX-License-Identifier: Apache-2.0
/* What the data-plane daemons' answers share: the runtime file veilctl finds
 * them by, map counts for status and /metrics, and their command line.  The
 * control socket and the metrics endpoint themselves are the skeleton's
 * (controlplane/common/daemon.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "veil.h"

/* ---------- runtime file ---------- */

int vm_runtime_write(const char *daemon, const char *control, const char *config, const char *pin_root,
		     const char *metrics, char *out, size_t outlen)
{
	char tmp[300], *abs_config = realpath(config, NULL);
	FILE *f;

	/* named after the socket (one per daemon by construction: a second
	 * daemon on a socket is refused), so daemons that share a folder, as
	 * the lab's do, each have their own */
	if (control && control[0] && strcmp(control, "off")) {
		size_t n = strlen(control);
		if (n > 5 && !strcmp(control + n - 5, ".sock"))
			n -= 5;
		snprintf(out, outlen, "%.*s.json", (int)n, control);
	} else {
		mkdir(VM_RUN_DIR_DEFAULT, 0755);
		snprintf(out, outlen, "%s/%s.json", VM_RUN_DIR_DEFAULT, daemon);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	f = fopen(tmp, "we");
	if (!f) {
		free(abs_config);
		return -1;
	}
	fprintf(f, "{\"daemon\": ");
	vm_json_str(f, daemon);
	fprintf(f, ", \"pid\": %d, \"config\": ", getpid());
	vm_json_str(f, abs_config ? abs_config : config);
	fputs(", \"pin_root\": ", f);
	vm_json_str(f, pin_root ? pin_root : "");
	fputs(", \"control_socket\": ", f);
	vm_json_str(f, control ? control : "off");
	fputs(", \"metrics\": ", f);
	vm_json_str(f, metrics ? metrics : "off");
	fputs("}\n", f);
	free(abs_config);
	if (fclose(f) || rename(tmp, out)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

void vm_runtime_remove(const char *path)
{
	if (path && path[0])
		unlink(path);
}

/* ---------- shared pieces of the answers ---------- */

/* A BPF_F_MMAPABLE array of values of value_size bytes (fd) mapped, its
 * entries in *n and the mapping's length in *len; NULL when fd is not one. */
static void *array_map(int fd, __u32 value_size, bool writable, __u32 *n, size_t *len)
{
	struct bpf_map_info info = { 0 };
	__u32 ilen = sizeof(info);
	long page = sysconf(_SC_PAGESIZE);
	void *a;

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &ilen) || info.type != BPF_MAP_TYPE_ARRAY ||
	    info.value_size != value_size || !(info.map_flags & BPF_F_MMAPABLE))
		return NULL;
	*len = ((size_t)info.max_entries * value_size + (size_t)page - 1) & ~((size_t)page - 1);
	a = mmap(NULL, *len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
	if (a == MAP_FAILED)
		return NULL;
	*n = info.max_entries;
	return a;
}

struct asm_val *vm_asm_map(int fd, __u32 *slots, size_t *len, bool writable)
{
	return array_map(fd, sizeof(struct asm_val), writable, slots, len);
}

void vm_asm_unmap(struct asm_val *a, size_t len)
{
	if (a)
		munmap(a, len);
}

struct asm_tags *vm_asm_tags_map(int fd, __u32 *buckets, size_t *len)
{
	return array_map(fd, sizeof(struct asm_tags), true, buckets, len);
}

/* Each slot copied out for its owner word, its tag swapped right after:
 * 4.8 ms at 1024 slots, 76 at 16384 (best of 5), once a load.  Through a
 * fresh mapping of the table it took 12.5 and 137 (the first touch of
 * each page). */
int vm_asm_tags_sync(int asm_fd, int tags_fd)
{
	struct bpf_map_info info = { 0 };
	__u32 ilen = sizeof(info), buckets = 0;
	size_t tlen = 0;
	struct asm_tags *t = vm_asm_tags_map(tags_fd, &buckets, &tlen);
	struct asm_val *v = malloc(sizeof(*v));
	int n = 0;

	if (!t || !v || asm_fd < 0 || bpf_obj_get_info_by_fd(asm_fd, &info, &ilen) ||
	    info.value_size != sizeof(struct asm_val)) {
		n = -EINVAL;
		goto out;
	}
	for (__u32 i = 0; i < info.max_entries && i / VM_ASM_WAYS < buckets; i++) {
		__u64 *w = &t[i / VM_ASM_WAYS].w[i % VM_ASM_WAYS], seen;

		if (bpf_map_lookup_elem(asm_fd, &i, v)) {
			n = -errno;
			goto out;
		}
		seen = __atomic_load_n(w, __ATOMIC_ACQUIRE);
		if (seen != v->owner &&
		    __atomic_compare_exchange_n(w, &seen, v->owner, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			n++;
	}
out:
	free(v);
	if (t)
		munmap(t, tlen);
	return n;
}

/* The slots of gw_asm's hello_asm array (struct asm_val) that hold a
 * hello: their owner word is not 0.  Read in the kernel by a BPF iterator
 * (vm_walk_asm_count: 8 bytes a slot); where it cannot load, each slot
 * copied out (the whole array, 23 MB: ~3.4 ms; 59 ms at 16384 slots).
 * Reading the owner words through a mapping made for the count
 * (vm_asm_map) is slower past 1024 slots (a fresh mapping's first touch of
 * each page: 15.6 against 7.1 ms at 2048, 104 against 59 at 16384), and a
 * mapping kept between counts (0.14 ms) would add the whole table to the
 * daemon's RSS. */
static long asm_slots_held(int fd, __u32 id, __u32 slots)
{
	long n = vm_walk_asm_count(id);

	if (n >= 0)
		return n;
	struct asm_val *v = malloc(sizeof(*v));
	n = 0;
	if (!v)
		return -1;
	for (__u32 i = 0; i < slots; i++)
		if (!bpf_map_lookup_elem(fd, &i, v) && v->owner)
			n++;
	free(v);
	return n;
}

static int hash_type(__u32 type)
{
	return type == BPF_MAP_TYPE_HASH || type == BPF_MAP_TYPE_LRU_HASH || type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

long vm_map_count_keys(int fd)
{
	__u8 key[512], next[512];
	void *prev = NULL;
	long n = 0;

	if (fd < 0)
		return -1;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		n++;
		memcpy(key, next, sizeof(key));
		prev = key;
	}
	return n;
}

/* The flow tables this process keeps mapped (veil-gw's flows, veil-node's
 * conns), which vm_map_count reads where they are: mapping 66-117 MB again
 * for each count faults in a page for every three buckets (veil-bench-maps:
 * 6.7 ms a count of 49152 buckets mapped again, 1.8 where they are). */
static const struct vm_flows *counted_in_place[4];

void vm_map_count_mapped(const struct vm_flows *t)
{
	for (size_t i = 0; t && i < sizeof(counted_in_place) / sizeof(counted_in_place[0]); i++)
		if (!counted_in_place[i] || counted_in_place[i] == t) {
			counted_in_place[i] = t;
			return;
		}
}

static const struct vm_flows *mapped_table(__u32 id)
{
	for (size_t i = 0; i < sizeof(counted_in_place) / sizeof(counted_in_place[0]); i++) {
		const struct vm_flows *t = counted_in_place[i];
		if (t && t->b && t->id == id)
			return t;
	}
	return NULL;
}

/* Entries in a map: a hash map's keys (the kernel's count, else a
 * get_next_key walk); for gw_asm's hello_asm, an array whose every index
 * exists, the slots in use; a flow table's slots held, read where this
 * process keeps it mapped (vm_map_count_mapped) or mapped for the count. */
long vm_map_count(int fd)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	long n;

	if (fd < 0)
		return -1;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
		if (info.type == BPF_MAP_TYPE_ARRAY && info.value_size == sizeof(struct asm_val))
			return asm_slots_held(fd, info.id, info.max_entries);
		if (vm_flows_is_table(&info)) {
			const struct vm_flows *m = mapped_table(info.id);
			struct vm_flows t;
			if (m)
				return vm_flows_count(m);
			if (vm_flows_open(&t, fd, -1))
				return -1;
			n = vm_flows_count(&t);
			vm_flows_close(&t);
			return n;
		}
		if (hash_type(info.type) && (n = vm_walk_count(info.id)) >= 0)
			return n;
	}
	return vm_map_count_keys(fd);
}

long vm_map_capacity(int fd)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return -1;
	if (vm_flows_is_table(&info))
		return (long)info.max_entries * VM_FT_WAYS;   /* a flow table: its slots */
	return info.max_entries;
}

void vm_metrics_maps(FILE *out, const char *const *names, const int *fds, int n)
{
	fputs("# HELP veilmesh_map_entries Entries in a pinned map.\n# TYPE veilmesh_map_entries gauge\n", out);
	for (int i = 0; i < n; i++)
		fprintf(out, "veilmesh_map_entries{map=\"%s\"} %ld\n", names[i], vm_map_count(fds[i]));
	fputs("# HELP veilmesh_map_capacity Maximum entries of a pinned map.\n# TYPE veilmesh_map_capacity gauge\n", out);
	for (int i = 0; i < n; i++)
		fprintf(out, "veilmesh_map_capacity{map=\"%s\"} %ld\n", names[i], vm_map_capacity(fds[i]));
}

/* The data-plane daemons' command line (common/daemon.h): the common options
 * plus -s/--skb-mode, -k/--keep-attached and -v/--verbose, which also lets
 * libbpf's and libxdp's debug messages through. */
int vm_daemon_args(int argc, char **argv, struct vm_daemon_opts *o, void (*usage)(FILE *), int *code)
{
	const struct vm_daemon_cli cli = { .usage = usage, .flags = VM_OPT_VERBOSE | VM_OPT_ATTACH };

	if (vm_daemon_parse(argc, argv, &cli, o, code))
		return -1;
	vm_lib_logging(o->verbose);
	return 0;
}
