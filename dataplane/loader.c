// SPDX-License-Identifier: Apache-2.0
/* Loading and attaching the veilmesh BPF programs. */
#include <errno.h>
#include <net/if.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "veil.h"
#include "veil/flowkey.h"
#include "gw_ingress.skel.h"
#include "gw_return.skel.h"
#include "gw_asm.skel.h"
#include "node_mesh.skel.h"
#include "node_vm.skel.h"

static bool lib_verbose;
/* While a call whose failure is an expected condition runs (a clsact qdisc
 * that is already there, a TC filter that is already gone), the kernel
 * messages that say so are not news: the caller handles the error code.
 * Anything else the call prints still gets through. */
static const char *const *lib_expected;

/* libbpf and libxdp speak through here: warnings become log events, their
 * chatter about sections and the dispatcher fallback only with --verbose. */
static int lib_print(const char *origin, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	for (const char *const *e = lib_expected; e && *e && !lib_verbose; e++)
		if (strstr(line, *e))
			return 0;
	if (!lib_verbose && (strstr(line, "skipping unrecognized") || strstr(line, "dispatcher") ||
			     strstr(line, "xdp_pass") || strstr(line, "ulimit") ||
			     strstr(line, "Falling back") || strstr(line, "No XDP dispatcher")))
		return 0;
	vm_log("event=%s message=\"%s\"", origin, line);
	return 0;
}

static int libbpf_cb(enum libbpf_print_level lvl, const char *fmt, va_list ap)
{
	if (lvl == LIBBPF_DEBUG && !lib_verbose)
		return 0;
	return lib_print("libbpf", fmt, ap);
}

static int libxdp_cb(enum libxdp_print_level lvl, const char *fmt, va_list ap)
{
	if (lvl == LIBXDP_DEBUG && !lib_verbose)
		return 0;
	return lib_print("libxdp", fmt, ap);
}

void vm_lib_logging(bool verbose)
{
	lib_verbose = verbose;
	libbpf_set_print(libbpf_cb);
	libxdp_set_print(libxdp_cb);
}

static int mkdir_p(const char *path)
{
	char tmp[256];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0700) && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* ---------- libxdp attach with replacement of an older copy ---------- */

static int xdp_attach_replacing(struct xdp_program *prog, int ifindex, const char *name,
				bool skb_mode)
{
	enum xdp_attach_mode mode = skb_mode ? XDP_MODE_SKB : XDP_MODE_NATIVE;
	__u32 old_ids[8];
	int nold = 0, err;
	struct xdp_multiprog *mp;

	mp = xdp_multiprog__get_from_ifindex(ifindex);
	if (!libxdp_get_error(mp) && mp) {
		for (struct xdp_program *p = xdp_multiprog__next_prog(NULL, mp); p && nold < 8;
		     p = xdp_multiprog__next_prog(p, mp))
			if (!strcmp(xdp_program__name(p), name))
				old_ids[nold++] = xdp_program__id(p);
		if (xdp_multiprog__is_legacy(mp)) {
			struct xdp_program *m = xdp_multiprog__main_prog(mp);
			if (m && !strcmp(xdp_program__name(m), name))
				old_ids[nold++] = xdp_program__id(m);
		}
		xdp_multiprog__close(mp);
	}
	err = xdp_program__attach(prog, ifindex, mode, 0);
	if (err == -EBUSY && nold) {
		/* No dispatcher (libxdp's compatibility check fails on some
		 * kernels): one program per interface, so take the old one off
		 * first.  Packets in the gap of a few microseconds see no program;
		 * the flows are in the pinned maps. */
		for (int i = 0; i < nold; i++) {
			struct xdp_program *old = xdp_program__from_id(old_ids[i]);
			if (libxdp_get_error(old))
				continue;
			xdp_program__detach(old, ifindex, XDP_MODE_UNSPEC, 0);
			xdp_program__close(old);
			vm_log("event=replaced_old ifindex=%d prog_id=%u", ifindex, old_ids[i]);
		}
		return xdp_program__attach(prog, ifindex, mode, 0);
	}
	if (err)
		return err;
	for (int i = 0; i < nold; i++) {
		struct xdp_program *old = xdp_program__from_id(old_ids[i]);
		if (libxdp_get_error(old))
			continue;
		if (xdp_program__detach(old, ifindex, mode, 0))
			vm_log("event=detach_old_failed ifindex=%d prog_id=%u", ifindex, old_ids[i]);
		else
			vm_log("event=replaced_old ifindex=%d prog_id=%u", ifindex, old_ids[i]);
		xdp_program__close(old);
	}
	return 0;
}

static struct xdp_program *xdp_prog_from_obj(struct bpf_object *obj, const char *name)
{
	DECLARE_LIBXDP_OPTS(xdp_program_opts, o, .obj = obj, .prog_name = name);
	struct xdp_program *p = xdp_program__create(&o);

	if (libxdp_get_error(p))
		return NULL;
	return p;
}

/* GRO would merge a hello's segments before gw_asm sees them (and the
 * merged packet no longer fits the mesh): the client side runs without it.
 * Everything for a VIP is handled in XDP before GRO anyway. */
static int gro_off(const char *ifname)
{
	struct ethtool_value ev = { .cmd = ETHTOOL_GGRO };
	struct ifreq ifr = { .ifr_data = (void *)&ev };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (!ioctl(fd, SIOCETHTOOL, &ifr) && ev.data) {
		ev.cmd = ETHTOOL_SGRO;
		ev.data = 0;
		rc = ioctl(fd, SIOCETHTOOL, &ifr) ? -errno : 0;
		if (!rc)
			vm_log("event=gro_off ifname=%s reason=\"hello reassembly needs the client's segments as sent\"", ifname);
	}
	close(fd);
	return rc;
}

/* ---------- TC attach (clsact ingress, our own handle) ---------- */

static int tc_attach(int ifindex, int prog_fd)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 0x7e11, .priority = 1, .prog_fd = prog_fd,
			    .flags = BPF_TC_F_REPLACE);
	static const char *const clsact_there[] = { "Exclusivity flag on", NULL };
	lib_expected = clsact_there;
	int err = bpf_tc_hook_create(&hook);
	lib_expected = NULL;

	if (err && err != -EEXIST)
		return err;
	return bpf_tc_attach(&hook, &opts);
}

static void tc_detach(int ifindex)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 0x7e11, .priority = 1);
	static const char *const filter_gone[] = { "Cannot find specified filter chain",
						   "Filter with specified priority/protocol not found", NULL };

	lib_expected = filter_gone;
	bpf_tc_detach(&hook, &opts);
	lib_expected = NULL;
}

/* ---------- gateway ---------- */

int vm_gw_open(struct vm_gw *g, const char *pin_root, __u32 flows_max, __u32 hellos_max)
{
	int err;

	memset(g, 0, sizeof(*g));
	snprintf(g->pin_root, sizeof(g->pin_root), "%s", pin_root ? pin_root : VM_PIN_ROOT_DEFAULT);
	err = mkdir_p(g->pin_root);
	if (err)
		return err;
	LIBBPF_OPTS(bpf_object_open_opts, o, .pin_root_path = g->pin_root);
	g->ing = gw_ingress__open_opts(&o);
	g->ret = gw_return__open_opts(&o);
	g->as = gw_asm__open_opts(&o);
	if (!g->ing || !g->ret || !g->as)
		return -errno ? -errno : -EINVAL;
	/* the flow table's buckets for flows_max flows, in all three
	 * programs (the map and the count they place keys by) */
	__u32 nb = vm_flows_buckets_for(flows_max ? flows_max : VM_FT_FLOWS_DEFAULT);
	bpf_map__set_max_entries(g->ing->maps.flows, nb);
	bpf_map__set_max_entries(g->ret->maps.flows, nb);
	bpf_map__set_max_entries(g->as->maps.flows, nb);
	g->ing->rodata->gw_flow_buckets = nb;
	g->ret->rodata->gw_flow_buckets = nb;
	g->as->rodata->gw_flow_buckets = nb;
	if (hellos_max) {
		__u32 bits = (__u32)__builtin_ctz(hellos_max);
		if ((hellos_max & (hellos_max - 1)) || bits < VM_ASM_SLOTS_BITS_MIN || bits > VM_ASM_SLOTS_BITS_MAX)
			return -EINVAL;
		bpf_map__set_max_entries(g->ing->maps.hello_asm, hellos_max);
		bpf_map__set_max_entries(g->ret->maps.hello_asm, hellos_max);
		bpf_map__set_max_entries(g->as->maps.hello_asm, hellos_max);
		g->ret->rodata->gw_asm_bits = bits;
		g->as->rodata->gw_asm_bits = bits;
	}
	/* pins an upgrade or a new flows_max cannot reuse: replaced, and said.
	 * gw_asm's hello table: a hello's index is any slot of its bucket, and
	 * the load re-places one found outside it (flow_seed_init), so a
	 * smaller table takes the hellos past its end in free slots. */
	static const char *const gw_slot_maps[] = { "hello_asm", NULL };
	g->kept.slot_maps = gw_slot_maps;
	if ((err = vm_pins_refresh(g->ing->obj, &g->kept)) < 0 || (err = vm_pins_refresh(g->ret->obj, &g->kept)) < 0 ||
	    (err = vm_pins_refresh(g->as->obj, &g->kept)) < 0)
		return err;
	return 0;
}

/* Moves every IPv6 entry of a map keyed by struct flow_key (values of
 * vsize bytes holding the connection's tuple at the offsets given) to the
 * key seed s and the programs' fold give it: all of them read, removed,
 * then written back under their new keys (so one entry's new key never
 * meets another's old one).  *lost counts those whose new key was taken.
 * Returns the entries moved, or -errno. */
static int rekey_map(int fd, size_t vsize, size_t fam_off, size_t cli_off, size_t vip_off,
		     const struct flow_seed *s, int *lost)
{
	struct flow_key *keys = NULL, k, nk;
	size_t n = 0, cap = 0, m = 0;
	__u8 *vals = NULL, *v;
	int err = 0;

	while (!bpf_map_get_next_key(fd, n ? &keys[n - 1] : NULL, &k)) {
		if (n == cap) {
			struct flow_key *x = realloc(keys, (cap = cap ? 2 * cap : 1024) * sizeof(*keys));
			if (!x) {
				err = -ENOMEM;
				goto out;
			}
			keys = x;
		}
		keys[n++] = k;
	}
	vals = malloc(n ? n * vsize : 1);
	if (!vals) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		v = vals + m * vsize;
		if (bpf_map_lookup_elem(fd, &keys[i], v) || v[fam_off] != VM_AF_INET6)
			continue;
		vm_flow_key_make(VM_AF_INET6, v + cli_off, v + vip_off, keys[i].client_port_be, keys[i].vip_port_be,
				 s, &nk);
		if (!memcmp(&nk, &keys[i], sizeof(nk)))
			continue;       /* already where the programs look */
		keys[m++] = keys[i];
	}
	for (size_t i = 0; i < m; i++)
		bpf_map_delete_elem(fd, &keys[i]);
	for (size_t i = 0; i < m; i++) {
		v = vals + i * vsize;
		vm_flow_key_make(VM_AF_INET6, v + cli_off, v + vip_off, keys[i].client_port_be, keys[i].vip_port_be,
				 s, &nk);
		if (bpf_map_update_elem(fd, &nk, v, BPF_NOEXIST))
			(*lost)++;
	}
	err = (int)m;
out:
	free(keys);
	free(vals);
	return err;
}

/* Newest hello first (first_ns descending), of the hellos held[] (arg). */
static int asm_newer_first(const void *x, const void *y, void *arg)
{
	const struct asm_val *held = arg;
	__u64 a = held[*(const __u32 *)x].first_ns, b = held[*(const __u32 *)y].first_ns;

	return a < b ? 1 : a > b ? -1 : 0;
}

/* gw_asm's hello_asm array: every held hello moved to the bucket seed s
 * gives it (vm_asm_bucket, whose multiplier the seed holds), an IPv6 one
 * under its new key: all read, their slots freed, then each written to a
 * free slot of its bucket, the newest first (so one hello's new slot never
 * meets another's old one, and where a bucket cannot hold them all the
 * oldest are the ones dropped, as the programs would drop them).  *lost
 * counts those.  Returns the hellos moved, or -errno. */
static int rekey_asm(int fd, __u32 bits, const struct flow_seed *s, int *lost)
{
	const __u32 slots = 1u << bits;
	struct asm_val *held = NULL, *z = NULL;
	__u32 *from = NULL, *order = NULL, n = 0, cap = 0, first;
	__u8 *taken = NULL;
	int err = 0;

	/* held[] grows with the hellos found (a slot is 22.3 KiB, the table
	 * up to 16384 of them, most often nearly all free) */
	from = malloc(slots * sizeof(*from));
	order = malloc(slots * sizeof(*order));
	taken = calloc(slots, 1);
	z = calloc(1, sizeof(*z));
	if (!from || !order || !taken || !z) {
		err = -ENOMEM;
		goto out;
	}
	for (__u32 i = 0; i < slots; i++) {
		if (n == cap) {
			struct asm_val *x = realloc(held, (size_t)(cap = cap ? 2 * cap : 16) * sizeof(*held));
			if (!x) {
				err = -ENOMEM;
				goto out;
			}
			held = x;
		}
		if (bpf_map_lookup_elem(fd, &i, &held[n])) {
			err = -errno;
			goto out;
		}
		if (held[n].owner)
			from[n++] = i;
	}
	for (__u32 j = 0; j < n; j++)
		if (bpf_map_update_elem(fd, &from[j], z, BPF_ANY)) {
			err = -errno;
			goto out;
		}
	for (__u32 j = 0; j < n; j++)
		order[j] = j;
	qsort_r(order, n, sizeof(*order), asm_newer_first, held);
	for (__u32 j = 0; j < n; j++) {
		struct asm_val *v = &held[order[j]];
		struct flow_key nk = v->key;
		__u64 o;
		if (v->family == VM_AF_INET6)
			vm_flow_key_make(VM_AF_INET6, v->client, v->vip, v->key.client_port_be, v->key.vip_port_be, s,
					 &nk);
		vm_asm_bucket(&nk, s, bits, &first, &o);
		__u32 w = 0;
		while (w < VM_ASM_WAYS && taken[first + w])
			w++;
		__u32 to = first + w;
		if (w == VM_ASM_WAYS) {
			(*lost)++;
			continue;
		}
		v->key = nk;
		v->owner = o;
		if (bpf_map_update_elem(fd, &to, v, BPF_ANY)) {
			(*lost)++;
			continue;
		}
		taken[to] = 1;
	}
	err = (int)n;
out:
	free(held);
	free(from);
	free(order);
	free(taken);
	free(z);
	return err;
}

/* How many held hellos of gw_asm's hello_asm sit outside the bucket seed s
 * gives them (the layout before 2026-12-06 had two scattered slots a
 * connection), or -errno. */
static int asm_misplaced(int fd, __u32 bits, const struct flow_seed *s)
{
	struct asm_val *v = malloc(sizeof(*v));
	int n = 0;

	if (!v)
		return -ENOMEM;
	for (__u32 i = 0; i < 1u << bits; i++) {
		__u32 first;
		__u64 o;

		if (bpf_map_lookup_elem(fd, &i, v)) {
			n = -errno;
			break;
		}
		if (!v->owner)
			continue;
		vm_asm_bucket(&v->key, s, bits, &first, &o);
		if (i - first >= VM_ASM_WAYS || v->owner != o)
			n++;
	}
	free(v);
	return n;
}

#define REKEY(fd, type, s, lost) \
	rekey_map((fd), sizeof(type), offsetof(type, family), offsetof(type, client), offsetof(type, vip), (s), (lost))

/* A seed for the programs' fold: NH's key drawn when fresh (else kept:
 * an older fold's entries are re-keyed under it), the multiplier (which
 * fold 2 had not) drawn anew, the fold recorded. */
static int seed_renew(struct flow_seed *s, int fresh)
{
	if ((fresh && getrandom(s->k, sizeof(s->k), 0) != sizeof(s->k)) ||
	    getrandom(&s->mul, sizeof(s->mul), 0) != sizeof(s->mul))
		return -1;
	s->fold = VM_FLOW_FOLD;
	s->pad = 0;
	return 0;
}

/* The flows' key seed: the pinned map's when it has one (a restart or an
 * upgrade keeps the flows it keyed), else a new random one.  A seed or a
 * fold that changed under live flows would orphan their IPv6 entries, so
 * when either does (a new seed map beside kept flows, or entries keyed by
 * an older fold: flow_seed.fold) those are re-keyed from the tuples they
 * hold first, and the seed and fold recorded after.  Entries the programs
 * still running make meanwhile keep the old key (a connection begun in
 * the moment of the upgrade). */
static int flow_seed_init(struct vm_gw *g)
{
	int fd = bpf_map__fd(g->as->maps.flow_seed);  /* gw_asm loads first on every path */
	struct flow_seed s;
	__u32 zero = 0;
	int fresh, moved = 0, lost = 0, r;
	__u32 abits = g->as->rodata->gw_asm_bits;

	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, &zero, &s))
		return -errno;
	/* the flow table, placed under the seed it holds now (mapped once;
	 * a load again only reads the seed) */
	r = g->ft.b ? vm_flows_seed(&g->ft, fd) : vm_flows_open(&g->ft, bpf_map__fd(g->as->maps.flows), fd);
	if (r < 0)
		return r;
	fresh = !s.k[0] && !s.k[1];
	if (!fresh && s.fold == VM_FLOW_FOLD) {
		/* the seed stays; held hellos of an older slot layout move */
		int afd = bpf_map__fd(g->as->maps.hello_asm);
		if ((r = asm_misplaced(afd, abits, &s)) <= 0 || (r = rekey_asm(afd, abits, &s, &lost)) < 0)
			return r;
		vm_log("event=hello_asm_placed moved=%d lost=%d reason=\"held hellos outside their bucket (a table of another size copied in, or placed by a build whose buckets differ)\"",
		       r, lost);
		return 0;
	}
	if (seed_renew(&s, fresh))
		return -EIO;
	if ((r = vm_flows_reseed(&g->ft, &s, &lost)) < 0)
		return r;
	moved += r;
	if ((r = rekey_asm(bpf_map__fd(g->as->maps.hello_asm), abits, &s, &lost)) < 0)
		return r;
	moved += r;
	if ((r = REKEY(bpf_map__fd(g->as->maps.asm_early), struct asm_early, &s, &lost)) < 0)
		return r;
	moved += r;
	if ((r = REKEY(bpf_map__fd(g->as->maps.asm_lost), struct asm_tomb, &s, &lost)) < 0)
		return r;
	moved += r;
	if (moved)
		vm_log("event=flows_rekeyed moved=%d lost=%d reason=\"%s\"", moved, lost,
		       fresh ? "a new flow_seed beside kept IPv6 entries" : "entries keyed by an older fold");
	return bpf_map_update_elem(fd, &zero, &s, BPF_ANY) ? -errno : 0;
}

/* hello_asm_tags made to agree with the slots' owner words: after the
 * copies and moves above, or the first load of a build with the tags
 * beside a table a build before them kept. */
static int asm_tags_init(struct vm_gw *g)
{
	int n = vm_asm_tags_sync(bpf_map__fd(g->as->maps.hello_asm), bpf_map__fd(g->as->maps.hello_asm_tags));

	if (n > 0)
		vm_log("event=hello_asm_tags_synced changed=%d reason=\"tags that did not match their slots' owner words (a table copied, moved or kept by an older build)\"",
		       n);
	return n < 0 ? n : 0;
}

/* Every word of one half of flow_bits set to v, a store each (the
 * programs' ORs meanwhile are atomic; a store may overwrite one). */
static void bits_fill(struct flow_bits_val *b, int half, __u64 v)
{
	for (__u32 i = 0; i < VM_FLOW_BITS_ENTRIES; i++)
		__atomic_store_n(&b[i].half[half & 1], v, __ATOMIC_RELAXED);
}

/* An mmapable array map's len bytes mapped once into *mem (kept across
 * the loads of one vm_gw). */
static int map_mapped(struct bpf_map *m, size_t len, void **mem)
{
	int fd = bpf_map__fd(m);
	void *p;

	if (fd < 0)
		return fd;
	if (!*mem) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			return -errno;
		*mem = p;
	}
	return 0;
}

/* flow_bits mapped, every bit set: until veil-gw's sweep has rebuilt
 * both halves from the flows map (a kept one, after a restart) nothing
 * is filtered. */
static int flow_bits_init(struct vm_gw *g)
{
	void *p = g->bits;
	int err = map_mapped(g->as->maps.flow_bits, VM_FLOW_BITS_ENTRIES * sizeof(struct flow_bits_val), &p);

	if (err)
		return err;
	g->bits = p;
	bits_fill(g->bits, 0, ~0ULL);
	bits_fill(g->bits, 1, ~0ULL);
	return 0;
}

/* route_bits mapped and made exact from the routes map (a kept one: a
 * restart, an upgrade from a build without the filter, a table copied
 * into a new size) before any program of this load runs; the programs of
 * a load before, which may read it meanwhile, see a route's bit set
 * throughout.  gw_asm's map: vm_gw_attach loads gw_asm first. */
static int route_bits_init(struct vm_gw *g)
{
	void *p = g->rbits;
	int err = map_mapped(g->as->maps.route_bits, VM_ROUTE_BITS_WORDS * sizeof(__u64), &p);

	if (err)
		return err;
	g->rbits = p;
	err = vm_gw_route_bits_rebuild(g);
	if (err < 0)
		return err;
	g->rbits_loaded = err;
	return 0;
}

void vm_flow_bits_clear(struct flow_bits_val *b, int half)
{
	bits_fill(b, half, 0);
	/* before the walk that refills it: a program that set a new flow's
	 * bits just before the clear overwrote them has put the flow in the
	 * map by then (microseconds after its bits), so the walk finds it */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	usleep(VM_FLOW_BITS_SETTLE_US);
}

void vm_flow_bits_add(struct flow_bits_val *b, int half, const struct flow_key *k)
{
	__u64 bits;
	__u32 i;

	vm_flow_bits_at(k, &i, &bits);
	__atomic_fetch_or(&b[i].half[half & 1], bits, __ATOMIC_RELAXED);
}

__u64 vm_flow_bits_set_count(const struct flow_bits_val *b, __u32 n)
{
	__u64 set = 0;

	for (__u32 i = 0; i < n; i++)
		set += __builtin_popcountll(__atomic_load_n(&b[i].half[0], __ATOMIC_RELAXED) |
					    __atomic_load_n(&b[i].half[1], __ATOMIC_RELAXED));
	return set;
}

struct bits_half {
	struct flow_bits_val *b;
	int half;
};

static int bits_add_flow(void *arg, const struct flow_key *k, const void *v)
{
	struct bits_half *h = arg;

	vm_flow_bits_add(h->b, h->half, k);
	return 0;
}

int vm_flow_bits_rebuild(struct flow_bits_val *b, const struct vm_flows *ft)
{
	for (int half = 0; half < 2; half++) {
		struct bits_half h = { b, half };

		vm_flow_bits_clear(b, half);
		vm_flows_walk(ft, bits_add_flow, &h);
	}
	return 0;
}

struct vm_flows *vm_gw_flows(struct vm_gw *g)
{
	return g->ft.b ? &g->ft : NULL;
}

int vm_gw_load(struct vm_gw *g)
{
	int err = gw_ingress__load(g->ing);

	if (!err)
		err = gw_return__load(g->ret);
	if (!err)
		err = gw_asm__load(g->as);
	if (!err) {
		/* maps a new size or flags replaced: their entries first, so
		 * the seed's re-keying and the filter see them */
		vm_pins_migrate(&g->kept);
		vm_pins_kept_close(&g->kept);
		err = flow_seed_init(g);
	}
	if (!err)
		err = asm_tags_init(g);
	if (!err)
		err = flow_bits_init(g);
	if (!err)
		err = route_bits_init(g);
	return err;
}

int vm_gw_attach(struct vm_gw *g, const char *client_if, const char *mesh_if, bool skb_mode)
{
	int err;

	g->if_client = if_nametoindex(client_if);
	g->if_mesh = if_nametoindex(mesh_if);
	if (!g->if_client || !g->if_mesh)
		return -ENODEV;
	if (gro_off(client_if))
		vm_log("event=warning reason=\"cannot turn GRO off on %s: multi-segment hellos may fail\"", client_if);
	/* TC first: libxdp loads the XDP objects itself. */
	err = gw_asm__load(g->as);
	if (!err) {
		vm_pins_migrate(&g->kept);   /* gw_asm's maps (flows, hello_asm, ...) before the seed's re-keying */
		err = flow_seed_init(g);
	}
	if (!err)
		err = asm_tags_init(g);
	if (!err)
		err = flow_bits_init(g);
	if (!err)
		err = route_bits_init(g);
	if (!err)
		err = tc_attach(g->if_client, bpf_program__fd(g->as->progs.gw_asm));
	if (err)
		return err;
	/* Again, now that the gw_asm replaced (of a build before the tags, at
	 * an upgrade) claims no more slots: a hello it took between the sync
	 * above and the attach has a tag too. */
	if (asm_tags_init(g))
		vm_log("event=warning reason=\"hello_asm_tags not synced after the attach\"");
	g->xp_ing = xdp_prog_from_obj(g->ing->obj, "gw_ingress");
	g->xp_ret = xdp_prog_from_obj(g->ret->obj, "gw_return");
	if (!g->xp_ing || !g->xp_ret)
		return -EINVAL;
	err = xdp_attach_replacing(g->xp_ing, g->if_client, "gw_ingress", skb_mode);
	if (err)
		return err;
	if (g->if_mesh == g->if_client) {
		/* One-armed gateway: both programs on one interface, chained by libxdp. */
		xdp_program__set_run_prio(g->xp_ret, 10);
	}
	err = xdp_attach_replacing(g->xp_ret, g->if_mesh, "gw_return", skb_mode);
	if (err) {
		xdp_program__detach(g->xp_ing, g->if_client, skb_mode ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
		return err;
	}
	/* the XDP objects' own maps, made as libxdp loaded them */
	vm_pins_migrate(&g->kept);
	vm_pins_kept_close(&g->kept);
	return 0;
}

void vm_gw_detach(struct vm_gw *g)
{
	if (g->if_client)
		tc_detach(g->if_client);
	if (g->xp_ing && g->if_client)
		xdp_program__detach(g->xp_ing, g->if_client, XDP_MODE_UNSPEC, 0);
	if (g->xp_ret && g->if_mesh)
		xdp_program__detach(g->xp_ret, g->if_mesh, XDP_MODE_UNSPEC, 0);
}

void vm_gw_close(struct vm_gw *g)
{
	/* libxdp programs made from a skeleton's object do not own it */
	if (g->xp_ing)
		xdp_program__close(g->xp_ing);
	if (g->xp_ret)
		xdp_program__close(g->xp_ret);
	if (g->bits)
		munmap(g->bits, VM_FLOW_BITS_ENTRIES * sizeof(struct flow_bits_val));
	if (g->rbits)
		munmap(g->rbits, VM_ROUTE_BITS_WORDS * sizeof(__u64));
	vm_flows_close(&g->ft);
	vm_pins_kept_close(&g->kept);
	gw_ingress__destroy(g->ing);
	gw_return__destroy(g->ret);
	gw_asm__destroy(g->as);
	memset(g, 0, sizeof(*g));
}

int vm_gw_gates_off(struct vm_gw *g)
{
	int sfd = vm_gw_map_fd(g, "gw_scratch"), tfd = vm_gw_map_fd(g, "gw_stats"), ncpu = libbpf_num_possible_cpus();
	struct bpf_map_info info = { 0 }, tinfo = { 0 };
	__u32 len = sizeof(info), tlen = sizeof(tinfo), zero = 0;
	uint8_t *s, *t;
	int rc;

	if (sfd < 0 || tfd < 0 || ncpu <= 0)
		return -ENOENT;
	if (bpf_obj_get_info_by_fd(sfd, &info, &len) || bpf_obj_get_info_by_fd(tfd, &tinfo, &tlen))
		return -errno;
	/* the gate is gw_scratch's first field (bpf/lib/gw_logic.h); the
	 * counters at the map's own stride, as percpu_sum (config.c) reads
	 * them: a gw_stats pinned by another build may be longer or shorter */
	if (info.value_size < sizeof(struct gw_flow_gate) ||
	    tinfo.value_size < offsetof(struct gw_stats, bad_cookie) + sizeof(__u64))
		return -EINVAL;
	size_t sstride = (info.value_size + 7) & ~(size_t)7, tstride = (tinfo.value_size + 7) & ~(size_t)7;
	s = calloc((size_t)ncpu, sstride);
	t = calloc((size_t)ncpu, tstride);
	rc = !s || !t ? -ENOMEM : bpf_map_lookup_elem(sfd, &zero, s) || bpf_map_lookup_elem(tfd, &zero, t) ? -errno : 0;
	for (int c = 0; !rc && c < ncpu; c++) {
		struct gw_flow_gate gate = { .bad_at = ((const struct gw_stats *)(t + (size_t)c * tstride))->bad_cookie };
		memcpy(s + (size_t)c * sstride, &gate, sizeof(gate));
	}
	if (!rc && bpf_map_update_elem(sfd, &zero, s, BPF_ANY))
		rc = -errno;
	free(s);
	free(t);
	return rc;
}

int vm_gw_map_fd(struct vm_gw *g, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(g->ing->obj, name);
	int fd = m ? bpf_map__fd(m) : -ENOENT;

	/* gw_asm's, where gw_ingress has none or is not loaded yet:
	 * vm_gw_attach loads gw_asm first, libxdp gw_ingress later (the maps
	 * both have are the same pinned ones) */
	if (fd < 0 && g->as && (m = bpf_object__find_map_by_name(g->as->obj, name)) && bpf_map__fd(m) >= 0)
		fd = bpf_map__fd(m);
	return fd;
}

/* ---------- node ---------- */

/* conns as main at 09866c4 (and every build before) pinned it: keyed by
 * the whole tuple (struct conn_key, 40 bytes), its value without the tuple
 * (struct conn_val up to vm[], then created_ns, nseg, seg_seq).  The fields
 * of struct conn_val before client must stay as they were for the copy in
 * old_conns_put. */
struct conn_val_v1 {
	__u8 head[offsetof(struct conn_val, client)];
	__u64 created_ns;
	__u32 nseg;
	__u32 seg_seq[VM_ASM_SEGS];
};
_Static_assert(sizeof(struct conn_val_v1) == 232 && offsetof(struct conn_val_v1, created_ns) == 88,
	       "struct conn_val_v1 is the layout main pinned");
struct old_conn {
	struct conn_key k;
	struct conn_val_v1 v;
};

/* Reads the established connections of a pinned conns of the older layout
 * (the tuple as its key) before that pin is replaced, so the load can put
 * them back under the 12-byte key (conn_seed_init).  Connections still
 * waiting for the VM's SYN-ACK are left: their kept hello segments are in
 * the old hellos, which goes; the client's retransmitted hello makes them
 * again. */
static void old_conns_read(struct vm_node *n)
{
	char path[300];
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	struct conn_key k, cur, *prev = NULL;
	struct old_conn *v = NULL;
	size_t cap = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/conns", n->pin_root);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.key_size != sizeof(struct conn_key) ||
	    info.value_size != sizeof(struct conn_val_v1)) {
		close(fd);
		return;
	}
	while (!bpf_map_get_next_key(fd, prev, &k)) {
		cur = k;
		prev = &cur;
		if (n->nold_conns == cap) {
			struct old_conn *x = realloc(v, (cap = cap ? 2 * cap : 1024) * sizeof(*v));
			if (!x)
				break;
			v = x;
		}
		if (bpf_map_lookup_elem(fd, &cur, &v[n->nold_conns].v) ||
		    ((struct conn_val *)&v[n->nold_conns].v)->state != VM_CONN_ESTABLISHED)
			continue;
		v[n->nold_conns++].k = cur;
	}
	close(fd);
	n->old_conns = v;
}

/* conn_rev's key for a connection (its conns key k, the seed s that keyed
 * conns): as node_mesh files it (conn_rev_key_of, bpf/lib/node_maps.h). */
static void conn_rev_of(const struct conn_val *c, const struct flow_key *k, const struct flow_seed *s,
			struct conn_rev_key *r)
{
	vm_conn_rev_key_make(c->family, c->vm, c->client, k->vip_port_be, k->client_port_be, s, r);
}

/* An array map keeps each value at a multiple of 8 bytes (the kernel
 * rounds the value size up): slot i's __u32 at 8 * i in the mapping. */
#define REV_GEN_STRIDE 8
#define REV_GEN_BYTES  (VM_REV_CACHE_SLOTS * REV_GEN_STRIDE)

/* conn_rev_gen mapped (BPF_F_MMAPABLE), so a move is an atomic add as the
 * programs' are: a read and a write through the syscall could undo a
 * program's move made between them. */
static __u32 *rev_gen_mem(struct vm_node *n)
{
	int fd;
	void *p;

	if (n->rev_gen)
		return n->rev_gen;
	fd = n->vm ? bpf_map__fd(n->vm->maps.conn_rev_gen) : -1;
	if (fd < 0)
		return NULL;
	p = mmap(NULL, REV_GEN_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		vm_log("event=conn_rev_gen_unmapped reason=\"%s\"", strerror(errno));
		return NULL;
	}
	n->rev_gen = p;
	return n->rev_gen;
}

void vm_node_rev_moved(struct vm_node *n, const struct conn_rev_key *r)
{
	__u32 *g = rev_gen_mem(n);

	if (!g)
		return;
	for (__u32 i = r ? vm_conn_rev_slot(r) : 0; i < VM_REV_CACHE_SLOTS; i++) {
		__atomic_fetch_add((__u32 *)((char *)g + (size_t)i * REV_GEN_STRIDE), 1, __ATOMIC_SEQ_CST);
		if (r)
			break;
	}
}

void vm_node_conn_rev_forget(struct vm_node *n, const struct flow_key *k, const struct conn_val *c)
{
	int rev = bpf_map__fd(n->vm->maps.conn_rev), seed = bpf_map__fd(n->vm->maps.conn_seed);
	struct flow_seed s;
	struct conn_rev_key r;
	struct conn_rev_val v;
	__u32 zero = 0;

	if (rev < 0 || seed < 0 || bpf_map_lookup_elem(seed, &zero, &s))
		return;
	conn_rev_of(c, k, &s, &r);
	if (!bpf_map_lookup_elem(rev, &r, &v) && vm_flow_key_eq(&v.conn, k))
		bpf_map_delete_elem(rev, &r);
	vm_node_rev_moved(n, &r);   /* after the delete, and as conn_forget: whether or not it was there */
}

/* Files connection c (conns key k) in conn_rev as node_mesh does
 * (conn_rev_put), its copy checked against conns now (conn_gen's slot as
 * it stands): over an entry of the same VM view whole only when c is the
 * newer (the VM has one connection on a tuple); an entry of another view
 * whose key met c's (an IPv6 fold) stays.  0 filed or left to the newer,
 * -1 not filed (the caller removes c from conns). */
static int conn_rev_file(const struct vm_flows *ct, int rev, int gen, const struct conn_rev_key *r,
			 const struct flow_key *k, const struct conn_val *c)
{
	struct conn_rev_val v, ov;
	struct conn_val c2;
	__u32 g = 0, i = vm_conn_gen_idx(k);

	if (gen >= 0 && bpf_map_lookup_elem(gen, &i, &g))
		g = 0;
	vm_conn_rev_val_make(k, c, g, &v);
	if (!bpf_map_update_elem(rev, r, &v, BPF_NOEXIST))
		return 0;
	if (bpf_map_lookup_elem(rev, r, &ov) || vm_flow_key_eq(&ov.conn, k) ||
	    vm_flows_get(ct, &ov.conn, &c2))
		return bpf_map_update_elem(rev, r, &v, BPF_ANY) ? -1 : 0;   /* stale, or c's own */
	if (c2.family != c->family || memcmp(c2.vm, c->vm, 16) || memcmp(c2.client, c->client, 16))
		return -1;
	if (c->created_ns > c2.created_ns && bpf_map_update_elem(rev, r, &v, BPF_ANY))
		return -1;
	return 0;
}

/* 1 when the pinned conn_rev (if any) has a layout the programs no longer
 * use: the 40-byte key of the builds before the 12-byte one, or the conns
 * key alone as its value (the builds before the copy, struct
 * conn_rev_val).  vm_pins_refresh replaces it, and the load rebuilds it
 * from conns (conn_seed_init), whose connections would otherwise no
 * longer hear from their VMs.  *why: which. */
static int conn_rev_is_old(const char *pin_root, const char **why)
{
	char path[300];
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	int fd, old = 0;

	snprintf(path, sizeof(path), "%s/conn_rev", pin_root);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
		if (info.key_size == sizeof(struct conn_rev_key_v1)) {
			old = 1;
			*why = "conn_rev of the 40-byte key: rebuilt from conns under the 12-byte key";
		} else if (info.value_size == sizeof(struct flow_key)) {
			old = 1;
			*why = "conn_rev of the conns key alone: rebuilt from conns with the VM -> client copy";
		}
	}
	close(fd);
	return old;
}

/* Writes the connections old_conns_read kept into the new conns and
 * conn_rev (the seed s already drawn). */
static void old_conns_put(struct vm_node *n, const struct flow_seed *s)
{
	struct old_conn *o = n->old_conns;
	int rev = bpf_map__fd(n->vm->maps.conn_rev);
	int gen = bpf_map__fd(n->vm->maps.conn_gen), moved = 0, lost = 0;

	for (size_t i = 0; i < n->nold_conns; i++) {
		struct conn_val c;
		struct flow_key k;
		struct conn_rev_key r;

		memset(&c, 0, sizeof(c));
		memcpy(&c, o[i].v.head, sizeof(o[i].v.head));
		VM_FLOW_TUPLE_SET(&c, o[i].k.family, o[i].k.client, o[i].k.vip);
		c.mesh_sport = vm_flow_port(o[i].k.client, o[i].k.vip, o[i].k.client_port_be, o[i].k.vip_port_be);
		c.created_ns = o[i].v.created_ns;
		c.nseg = o[i].v.nseg;
		memcpy(c.seg_seq, o[i].v.seg_seq, sizeof(c.seg_seq));
		vm_flow_key_make(c.family, c.client, c.vip, o[i].k.client_port_be, o[i].k.vip_port_be, s, &k);
		conn_rev_of(&c, &k, s, &r);
		if (vm_flows_put(&n->ct, &k, &c, 0))
			lost++;
		else if (conn_rev_file(&n->ct, rev, gen, &r, &k, &c)) {
			/* another moved connection's VM view folded to r */
			vm_flows_del(&n->ct, &k);
			lost++;
		}
		else
			moved++;
	}
	if (n->nold_conns)
		vm_log("event=conns_migrated moved=%d lost=%d reason=\"conns of the 40-byte key: moved under the 12-byte key\"",
		       moved, lost);
	free(n->old_conns);
	n->old_conns = NULL;
	n->nold_conns = 0;
}

int vm_node_open(struct vm_node *n, const char *pin_root, __u32 conns_max)
{
	int err;

	memset(n, 0, sizeof(*n));
	snprintf(n->pin_root, sizeof(n->pin_root), "%s", pin_root ? pin_root : VM_PIN_ROOT_DEFAULT);
	err = mkdir_p(n->pin_root);
	if (err)
		return err;
	LIBBPF_OPTS(bpf_object_open_opts, o, .pin_root_path = n->pin_root);
	n->mesh = node_mesh__open_opts(&o);
	n->vm = node_vm__open_opts(&o);
	if (!n->mesh || !n->vm)
		return -errno ? -errno : -EINVAL;
	if (conns_max) {
		/* conns: a flow table's buckets for conns_max connections */
		__u32 nb = vm_flows_buckets_for(conns_max);

		bpf_map__set_max_entries(n->mesh->maps.conns, nb);
		bpf_map__set_max_entries(n->vm->maps.conns, nb);
		n->mesh->rodata->node_conn_buckets = nb;
		n->vm->rodata->node_conn_buckets = nb;
		bpf_map__set_max_entries(n->mesh->maps.conn_rev, conns_max);
		bpf_map__set_max_entries(n->vm->maps.conn_rev, conns_max);
	}
	old_conns_read(n);
	n->conn_rev_old = conn_rev_is_old(n->pin_root, &n->conn_rev_why);
	if ((err = vm_pins_refresh(n->mesh->obj, &n->kept)) < 0 || (err = vm_pins_refresh(n->vm->obj, &n->kept)) < 0)
		return err;
	return 0;
}

/* conn_rev again from conns (each connection's VM view -> its key, under
 * the seed s that keys conns), after conns entries moved to new keys or
 * conn_rev was replaced: every entry removed, then one per connection.
 * Two connections whose VM views fold to one key (IPv6): the first keeps
 * it, the other is dropped from conns as node_mesh would have refused it
 * (*lost); of two with one view whole the newer has it (conn_rev_file).
 * Returns the connections filed (or left to a newer one). */
struct rev_rebuild {
	const struct vm_flows *ct;
	int rev, gen, made;
	const struct flow_seed *s;
	struct flow_key *drop;
	size_t ndrop, cap;
};

static int rev_rebuild_one(void *arg, const struct flow_key *k, const void *v)
{
	struct rev_rebuild *b = arg;
	const struct conn_val *c = v;
	struct conn_rev_key r;

	conn_rev_of(c, k, b->s, &r);
	if (!conn_rev_file(b->ct, b->rev, b->gen, &r, k, c)) {
		b->made++;
		return 0;
	}
	if (b->ndrop == b->cap) {
		size_t nc = b->cap ? 2 * b->cap : 64;
		struct flow_key *x = realloc(b->drop, nc * sizeof(*x));
		if (!x)
			return 0;   /* cap unchanged: the next one tries again */
		b->drop = x;
		b->cap = nc;
	}
	b->drop[b->ndrop++] = *k;
	return 0;
}

static int conn_rev_rebuild(struct vm_flows *ct, int rev, int gen, const struct flow_seed *s, int *lost)
{
	struct rev_rebuild b = { .ct = ct, .rev = rev, .gen = gen, .s = s };
	struct conn_rev_key r;

	while (!bpf_map_get_next_key(rev, NULL, &r))
		if (bpf_map_delete_elem(rev, &r))
			break;
	vm_flows_walk(ct, rev_rebuild_one, &b);
	for (size_t i = 0; i < b.ndrop; i++)
		vm_flows_del(ct, &b.drop[i]);
	*lost += (int)b.ndrop;
	free(b.drop);
	return b.made;
}

/* conn_rev of an older layout was replaced by an empty one (vm_node_open):
 * filled from conns, and said. */
static void conn_rev_old_put(struct vm_node *n, const struct flow_seed *s)
{
	int lost = 0, made;

	if (!n->conn_rev_old)
		return;
	n->conn_rev_old = 0;
	made = conn_rev_rebuild(&n->ct, bpf_map__fd(n->vm->maps.conn_rev), bpf_map__fd(n->vm->maps.conn_gen), s,
				&lost);
	vm_log("event=conn_rev_rebuilt moved=%d lost=%d reason=\"%s\"", made, lost, n->conn_rev_why);
}

/* The conns key seed, as flow_seed_init does the gateway's: the pinned
 * map's when it has one (a restart or an upgrade that keeps conns keeps
 * the seed that keyed them), else a new random one; when the seed is new
 * beside kept entries or they were keyed by another fold, their IPv6
 * entries move under the keys the programs now make (conn_rev follows). */
static int conn_seed_init(struct vm_node *n)
{
	int fd = bpf_map__fd(n->vm->maps.conn_seed);
	int conns = bpf_map__fd(n->vm->maps.conns);
	struct flow_seed s;
	__u32 zero = 0;
	int fresh, lost = 0, r;

	if (fd < 0 || conns < 0)
		return fd < 0 ? fd : conns;
	if (bpf_map_lookup_elem(fd, &zero, &s))
		return -errno;
	/* conns, placed under the seed it holds now (mapped once; a load
	 * again only reads the seed) */
	r = n->ct.b ? vm_flows_seed(&n->ct, fd) : vm_flows_open(&n->ct, conns, fd);
	if (r < 0)
		return r;
	fresh = !s.k[0] && !s.k[1];
	if (!fresh && s.fold == VM_FLOW_FOLD) {
		old_conns_put(n, &s);
		conn_rev_old_put(n, &s);
		return 0;
	}
	if (seed_renew(&s, fresh))
		return -EIO;
	if ((r = vm_flows_reseed(&n->ct, &s, &lost)) < 0)
		return r;
	if (r) {
		conn_rev_rebuild(&n->ct, bpf_map__fd(n->vm->maps.conn_rev), bpf_map__fd(n->vm->maps.conn_gen), &s, &lost);
		vm_log("event=conns_rekeyed moved=%d lost=%d reason=\"%s\"", r, lost,
		       fresh ? "a new conn_seed beside kept IPv6 connections" : "entries keyed by an older fold");
	}
	if (bpf_map_update_elem(fd, &zero, &s, BPF_ANY))
		return -errno;
	old_conns_put(n, &s);
	conn_rev_old_put(n, &s);
	return 0;
}

/* conn_seed_init, then every conn_rev_gen slot moved: what it wrote to
 * conn_rev (a rebuild, a migration) is never hidden by a copy a running
 * node_vm cached before. */
static int conn_maps_init(struct vm_node *n)
{
	int err = conn_seed_init(n);

	if (!err)
		vm_node_rev_moved(n, NULL);
	return err;
}

int vm_node_load(struct vm_node *n)
{
	int err = node_mesh__load(n->mesh);

	if (err)
		return err;
	err = node_vm__load(n->vm);
	if (err)
		return err;
	vm_pins_migrate(&n->kept);   /* maps a new size or flags replaced (conns_max): before conn_rev's checks */
	vm_pins_kept_close(&n->kept);
	return conn_maps_init(n);
}

int vm_node_attach(struct vm_node *n, const struct vm_node_cfg *c, bool skb_mode)
{
	int err;

	n->if_mesh = if_nametoindex(c->mesh_if);
	if (!n->if_mesh)
		return -ENODEV;
	/* TC first: libxdp loads the mesh object, the TC program needs its own. */
	err = node_vm__load(n->vm);
	if (!err) {
		vm_pins_migrate(&n->kept);   /* node_vm's maps (conns, conn_rev, ...) */
		err = conn_maps_init(n);
	}
	if (err)
		return err;
	for (int i = 0; i < c->nvms; i++) {
		int ifi = c->vms[i].val.ifindex;
		int seen = 0;
		for (int j = 0; j < n->ntc; j++)
			seen |= n->tc_ifs[j] == ifi;
		if (seen)
			continue;
		err = tc_attach(ifi, bpf_program__fd(n->vm->progs.node_vm));
		if (err)
			return err;
		n->tc_ifs[n->ntc++] = ifi;
	}
	n->xp_mesh = xdp_prog_from_obj(n->mesh->obj, "node_mesh");
	if (!n->xp_mesh)
		return -EINVAL;
	err = xdp_attach_replacing(n->xp_mesh, n->if_mesh, "node_mesh", skb_mode);
	vm_pins_migrate(&n->kept);   /* node_mesh's own maps, made as libxdp loaded it */
	vm_pins_kept_close(&n->kept);
	/* An upgrade from a build whose node_mesh moved no conn_rev_gen slot:
	 * that one ran beside this node_vm until now, so every slot moves once
	 * it is replaced. */
	vm_node_rev_moved(n, NULL);
	return err;
}

int vm_node_attach_vms(struct vm_node *n, const struct vm_node_cfg *c, int *attached)
{
	int err = 0;

	*attached = 0;
	/* interfaces no longer in the table (a deleted VM's tap): forget them */
	for (int j = 0; j < n->ntc;) {
		int keep = 0;
		for (int i = 0; i < c->nvms; i++)
			keep |= (int)c->vms[i].val.ifindex == n->tc_ifs[j];
		if (keep) {
			j++;
			continue;
		}
		tc_detach(n->tc_ifs[j]);
		n->tc_ifs[j] = n->tc_ifs[--n->ntc];
	}
	for (int i = 0; i < c->nvms && !err; i++) {
		int ifi = c->vms[i].val.ifindex, seen = 0;
		for (int j = 0; j < n->ntc; j++)
			seen |= n->tc_ifs[j] == ifi;
		if (seen)
			continue;
		err = tc_attach(ifi, bpf_program__fd(n->vm->progs.node_vm));
		if (!err) {
			n->tc_ifs[n->ntc++] = ifi;
			(*attached)++;
		}
	}
	return err;
}

void vm_node_detach(struct vm_node *n)
{
	if (n->xp_mesh && n->if_mesh)
		xdp_program__detach(n->xp_mesh, n->if_mesh, XDP_MODE_UNSPEC, 0);
	for (int i = 0; i < n->ntc; i++)
		tc_detach(n->tc_ifs[i]);
	n->ntc = 0;
}

struct vm_flows *vm_node_conns(struct vm_node *n)
{
	return n->ct.b ? &n->ct : NULL;
}

void vm_node_close(struct vm_node *n)
{
	vm_flows_close(&n->ct);
	free(n->old_conns);
	vm_pins_kept_close(&n->kept);
	if (n->rev_gen)
		munmap(n->rev_gen, REV_GEN_BYTES);
	if (n->xp_mesh)
		xdp_program__close(n->xp_mesh);
	node_mesh__destroy(n->mesh);
	node_vm__destroy(n->vm);
	memset(n, 0, sizeof(*n));
}

int vm_node_map_fd(struct vm_node *n, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(n->mesh->obj, name);
	return m ? bpf_map__fd(m) : -ENOENT;
}

__u32 vm_xdp_prog_id(struct xdp_program *p)
{
	return p ? xdp_program__id(p) : 0;
}
