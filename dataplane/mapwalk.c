// SPDX-License-Identifier: Apache-2.0
/*
 * A hash map's entry count from the kernel's own (bpf/map_walk.bpf.c's
 * iterator over the host's maps, read through the file descriptor
 * bpf_iter_create gives): one read for every map, where counting from here
 * takes a get_next_key call per entry (0.5 s for a full flows map, on every
 * status request and metrics scrape).  Where the iterator cannot load (a
 * kernel before 6.6 keeps no count; no CAP_BPF), vm_map_count walks the
 * keys as before.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "veil.h"
#include "map_walk.skel.h"

/* map_counts' record (struct walk_count in bpf/map_walk.bpf.c) */
struct vm_walk_count {
	__u32 id;
	__u32 pad;
	__s64 n;
};

/* The process's copy of the program, loaded and attached at the first
 * use; NULL when it could not be. */
static struct map_walk *g_walk;
static struct bpf_link *g_counts, *g_asm;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_asm_lock = PTHREAD_MUTEX_INITIALIZER;   /* asm_want is one word */

/* libbpf's messages off while a load that may fail is tried: the caller
 * falls back quietly. */
static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static void walk_init(void)
{
	libbpf_print_fn_t old = libbpf_set_print(quiet);
	struct map_walk *w = map_walk__open_and_load();

	if (w && !(g_counts = bpf_program__attach_iter(w->progs.map_counts, NULL))) {
		map_walk__destroy(w);
		w = NULL;
	}
	if (w)
		g_asm = bpf_program__attach_iter(w->progs.asm_counts, NULL);   /* NULL: the copying count */
	g_walk = w;
	libbpf_set_print(old);
}

/* The count an iterator (link) wrote for map_id, reading its records to
 * their end (a read may end within one: the rest comes with the next); -1
 * when it cannot run or map_id is not among them. */
static long walk_read(struct bpf_link *link, __u32 map_id)
{
	uint8_t buf[16384];
	size_t have = 0;
	long n = -1;
	int fd;

	if (!link || (fd = bpf_iter_create(bpf_link__fd(link))) < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - have);
		size_t off = 0;
		struct vm_walk_count c;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			return r < 0 || have ? -1 : n;   /* a record cut short: not this format */
		}
		have += (size_t)r;
		for (; off + sizeof(c) <= have; off += sizeof(c)) {
			memcpy(&c, buf + off, sizeof(c));
			if (c.id == map_id)
				n = c.n < 0 ? 0 : (long)c.n;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
}

/* The count map_counts wrote for map_id. */
long vm_walk_count(__u32 map_id)
{
	pthread_once(&g_once, walk_init);
	return walk_read(g_counts, map_id);
}

/* The slots of gw_asm's hello_asm (map_id) that hold a hello, as asm_counts
 * read them; -1 when it cannot run. */
long vm_walk_asm_count(__u32 map_id)
{
	long n;

	pthread_once(&g_once, walk_init);
	if (!g_asm || !g_walk->bss)
		return -1;
	pthread_mutex_lock(&g_asm_lock);
	g_walk->bss->asm_want = map_id;
	n = walk_read(g_asm, map_id);
	g_walk->bss->asm_want = 0;
	pthread_mutex_unlock(&g_asm_lock);
	return n;
}

#ifndef ENOTSUPP
#define ENOTSUPP 524   /* the kernel's, for calls a map type lacks */
#endif
int vm_map_each_batch(int fd, size_t ksize, size_t vsize, __u32 batch,
		      int (*fn)(void *arg, const void *keys, const void *vals, __u32 n), void *arg)
{
	__u8 *keys = malloc((size_t)batch * ksize), *vals = malloc((size_t)batch * vsize);
	__u64 in = 0, out = 0;   /* a hash map's batch position: its bucket, 4 bytes */
	bool first = true, end = false;
	int rc = 1;

	if (!keys || !vals || !batch) {
		rc = batch ? -ENOMEM : -EINVAL;
		goto done;
	}
	while (!end) {
		__u32 n = batch;
		int r = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, vals, &n, NULL);

		if (r && errno == ENOENT)
			end = true;     /* the last entries, if any, are in this batch */
		else if (r) {
			rc = first && (errno == EINVAL || errno == ENOTSUPP || errno == EOPNOTSUPP) ? 0 : -errno;
			goto done;
		}
		first = false;
		in = out;
		if (n && (r = fn(arg, keys, vals, n)) < 0) {
			rc = r;
			goto done;
		}
	}
done:
	free(keys);
	free(vals);
	return rc;
}
