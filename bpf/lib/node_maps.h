/* SPDX-License-Identifier: Apache-2.0 */
/* Node maps, shared by node_mesh (XDP, mesh-facing) and node_vm (TC, on each
 * VM's host-side interface) through pinning by name. */
#ifndef VEIL_BPF_NODE_MAPS_H
#define VEIL_BPF_NODE_MAPS_H

#include "common.h"
#include "veil/flowkey.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct vm_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vms SEC(".maps");

/* Keyed by the gateway's 12-byte flow key (include/veil/flowkey.h) under
 * conn_seed; the value holds the whole tuple, compared on every lookup
 * (conn_of).  A flow table (include/veil/flowtab.h, struct conn_bucket):
 * an array of buckets the programs search themselves, as gw's flows; the
 * loader sizes it from conns_max (vm_ft_buckets_for) and sets
 * node_conn_buckets to match; user space maps it (dataplane/flowtab.c). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_FT_BUCKETS_DEFAULT);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct conn_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conns SEC(".maps");

/* conns' buckets (the map's max_entries), set by the loader. */
const volatile __u32 node_conn_buckets = VM_FT_BUCKETS_DEFAULT;

/* The VM's view of a connection -> its conns key and a copy of what the
 * VM -> client direction needs (struct conn_rev_val, include/veil/wire.h);
 * the 12-byte key made like the conns key (struct conn_rev_key), so an
 * IPv6 fold can meet another connection's: the copy's tuple is compared
 * (rev_is_vm_view) and an insert never replaces a live connection's entry
 * (conn_rev_put). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct conn_rev_key);
	__type(value, struct conn_rev_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conn_rev SEC(".maps");

/* Moved (conn_gen_move) before node_mesh makes a conns entry under a key
 * of the slot (vm_conn_gen_idx): a conn_rev copy is used while its gen
 * equals its key's slot, i.e. while no conns entry was made under its
 * key since the copy was made or checked against conns. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_CONN_GEN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conn_gen SEC(".maps");

/* One generation per slot of node_vm's conn_rev_cache (vm_conn_rev_slot
 * of a conn_rev key), moved (conn_rev_moved: an atomic add) after every
 * write to a conn_rev entry under a key of the slot: node_mesh's insert or
 * replacement (conn_rev_put), every conn_forget, node_vm's refresh of a
 * copy (vm_via_conns), and in userspace the sweeper's and the loader's
 * (vm_node_rev_moved: through the map's mmap, an atomic add too, so no
 * move is ever lost or undone).  A cached copy is used only while its
 * slot's generation is the one read before the conn_rev lookup that gave
 * it (node_vm.bpf.c, rev_cached_ok). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_REV_CACHE_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conn_rev_gen SEC(".maps");

/* Moved by the daemon after every change to vms (never 0 once written): a
 * connection's copy of its VM's entry (conn_val.vm_gen) is valid while
 * equal, so the established path reads no vms entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vms_gen SEC(".maps");

/* The key that folds IPv6 clients into conns keys: drawn by the loader
 * when the map is new, kept with the pinned conns after that. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow_seed);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conn_seed SEC(".maps");

/* The hello segments of a connection whose SYN the VM has not answered yet
 * (idx 0..nseg-1, in arrival order); bounded by the LRU. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct hello_key);
	__type(value, struct hello_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hellos SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct node_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} node_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct node_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} node_stats SEC(".maps");

struct node_scratch {
	__u8 eth[12];             /* destination and source MAC of what we send to a VM */
	__u32 family;             /* of the connection whose kept segments go out */
	struct hello_val hello;
	struct conn_val conn;
	struct conn_rev_val rev;
	__u8 optbuf[VM_OPT_BUF];
	struct vm_tcpopt_state ost;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct node_scratch);
} node_scratch SEC(".maps");

#define NODE_COUNT(st, field) do { if (st) (st)->field++; } while (0)

VM_INLINE struct node_stats *node_stats_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&node_stats, &zero);
}

VM_INLINE struct node_scratch *node_scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&node_scratch, &zero);
}

VM_INLINE const struct flow_seed *node_conn_seed(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&conn_seed, &zero);
}

VM_INLINE struct vm_ft_head *node_conn_bucket(__u32 i)
{
	return bpf_map_lookup_elem(&conns, &i);
}

#define VM_FT_BUCKET(ctx, i) node_conn_bucket(i)
#include "veil/flowtab.h"

/* The conns entry under key k (whoever's: the callers compare its tuple),
 * or NULL. */
VM_INLINE struct conn_val *conn_get(const struct flow_key *k)
{
	return vm_ft_get(0, k, node_conn_seed(), node_conn_buckets, sizeof(struct conn_val));
}

/* A new connection under key k: 0, VM_FLOW_PUT_TAKEN when one is there
 * (another CPU's, put meanwhile), another negative value when its slot
 * went to another writer.  A full pair of buckets gives up its least
 * recently used connection, as the LRU hash before it did when full.
 * Global functions, verified once: a new connection's and a forgotten
 * one's paths, not an established packet's. */
__attribute__((noinline)) int conn_put(const struct flow_key *k, const struct conn_val *c)
{
	struct flow_key gone;
	int rc;

	if (!k || !c)
		return -1;
	rc = vm_ft_put(0, k, c, sizeof(*c), node_conn_seed(), node_conn_buckets, &gone);
	return rc == 1 ? 0 : rc;
}

/* vm_ft_put_home, as gw_flow_put_home */
__attribute__((noinline)) int conn_put_home(const struct flow_key *k, const struct conn_val *c)
{
	if (!k || !c)
		return -1;
	return vm_ft_put_home(0, k, c, sizeof(*c), node_conn_seed(), node_conn_buckets);
}

/* A new connection (VM_FT_NEW). */
VM_INLINE int conn_new(const struct flow_key *k, const struct conn_val *c)
{
	return VM_FT_NEW(conn_put_home, conn_put, k, c);
}

__attribute__((noinline)) int conn_del(const struct flow_key *k)
{
	if (!k)
		return -1;
	return vm_ft_del(0, k, node_conn_seed(), node_conn_buckets, sizeof(struct conn_val));
}

/* The conns key of a connection (addresses as in vm_pkt: 16 bytes, 4-byte
 * aligned); the seed is read for IPv6 only. */
VM_INLINE void conn_key_make(__u8 family, const __u8 *client, const __u8 *vip, __be16 client_port_be,
			     __be16 vip_port_be, struct flow_key *k)
{
	const struct flow_seed *s = NULL;
	__u32 zero = 0;

	if (family != VM_AF_INET)
		s = bpf_map_lookup_elem(&conn_seed, &zero);
	vm_flow_key_make(family, client, vip, client_port_be, vip_port_be, s, k);
}

/* The entry under k when it is this connection's (its tuple matches):
 * NULL when there is none; *other set when k holds another's. */
VM_INLINE struct conn_val *conn_of(const struct flow_key *k, __u8 family, const __u8 *client, const __u8 *vip,
				   int *other)
{
	struct conn_val *c = conn_get(k);

	*other = 0;
	if (c && !VM_FLOW_IS(c, family, client, vip)) {
		*other = 1;
		return NULL;
	}
	return c;
}

/* conn_rev's key of connection c (its conns key k); the seed is read for
 * IPv6 only. */
VM_INLINE void conn_rev_key_of(const struct flow_key *k, const struct conn_val *c, struct conn_rev_key *r)
{
	const struct flow_seed *s = NULL;
	__u32 zero = 0;

	if (c->family != VM_AF_INET)
		s = bpf_map_lookup_elem(&conn_seed, &zero);
	vm_conn_rev_key_make(c->family, c->vm, c->client, k->vip_port_be, k->client_port_be, s, r);
}

/* The conn_gen slot of conns key k moved on (atomically: CPUs making
 * entries under keys of one slot never move it back); the value our move
 * made, for the new connection's conn_rev copy (0: no slot): the add's own
 * fetched value plus one (BPF's atomic fetch, -mcpu=v3), so exactly this
 * move's.  A value read after the add could be a later move's, made for
 * another connection under the same key, and this copy would then pass the
 * gen check although conns under its key is not its own. */
VM_INLINE __u32 conn_gen_move(const struct flow_key *k)
{
	__u32 i = vm_conn_gen_idx(k), *g = bpf_map_lookup_elem(&conn_gen, &i);

	if (!g)
		return 0;
	return __sync_fetch_and_add(g, 1) + 1;
}

/* conn_rev_gen's slot of conn_rev key r moved on, after a write to the
 * entry under r: every cached copy of an entry under a key of the slot
 * stops being used (node_vm reads conn_rev again). */
VM_INLINE void conn_rev_slot_moved(__u32 i)
{
	__u32 *g = bpf_map_lookup_elem(&conn_rev_gen, &i);

	if (g)
		__sync_fetch_and_add(g, 1);
}

VM_INLINE void conn_rev_moved(const struct conn_rev_key *r)
{
	conn_rev_slot_moved(vm_conn_rev_slot(r));
}

/* Files connection c (conns key k, its conn_rev value v) under r in
 * conn_rev, never over a live connection's entry from another VM view:
 * one already there is replaced when it names k (c's conns entry was just
 * made under k: that one's is gone), when it is stale (its conns entry
 * gone, or there another connection's whose own conn_rev key is not r:
 * the LRU pushed the old one out) or names the same view whole (family, VM
 * and client addresses; the ports are r's): the VM has one connection on a
 * tuple, and the newer SYN it is given takes it over, as with the exact key
 * before the fold.  0, -1 when a live connection of another view holds r
 * (an IPv6 fold that met), -2 when the map refuses. */
VM_INLINE int conn_rev_put(const struct conn_rev_key *r, const struct flow_key *k, const struct conn_val *c,
			   const struct conn_rev_val *v)
{
	struct conn_rev_key r2;
	struct conn_rev_val *old;
	struct flow_key ok;
	struct conn_val *c2;

	if (!bpf_map_update_elem(&conn_rev, r, v, BPF_NOEXIST)) {
		conn_rev_moved(r);
		return 0;
	}
	old = bpf_map_lookup_elem(&conn_rev, r);
	if (old) {
		ok = old->conn;
		c2 = vm_flow_key_eq(&ok, k) ? NULL : conn_get(&ok);
		if (c2 && !(c2->family == c->family && vm_addr_eq(c2->vm, c->vm) && vm_addr_eq(c2->client, c->client))) {
			conn_rev_key_of(&ok, c2, &r2);
			if (r2.vm_word == r->vm_word && r2.client_word == r->client_word &&
			    r2.vm_port_be == r->vm_port_be && r2.client_port_be == r->client_port_be)
				return -1;
		}
	}
	if (bpf_map_update_elem(&conn_rev, r, v, BPF_ANY))
		return -2;
	conn_rev_moved(r);
	return 0;
}

/* Global: verified once, not inlined into every path that forgets. */
__attribute__((noinline)) int hellos_forget(struct flow_key *k, __u32 nseg)
{
	struct hello_key hk = {};

	if (!k)
		return 0;
	hk.conn = *k;
	for (__u32 i = 0; i < VM_ASM_SEGS; i++) {
		if (i >= nseg)
			break;
		hk.idx = i;
		bpf_map_delete_elem(&hellos, &hk);
	}
	return 0;
}

/* Drops connection c (under k): its conn_rev entry when it still names k
 * (an entry another connection filed after c's went stale is theirs), its
 * kept hello segments, its conns entry; then conn_rev_gen's slot of its
 * conn_rev key moves, whether or not the entry was still there (one the
 * LRU pushed out may live on as a cached copy in node_vm). */
VM_INLINE void conn_forget(const struct flow_key *k, const struct conn_val *c)
{
	struct conn_rev_key r;
	struct conn_rev_val *rv;

	conn_rev_key_of(k, c, &r);
	rv = bpf_map_lookup_elem(&conn_rev, &r);
	if (rv && vm_flow_key_eq(&rv->conn, k))
		bpf_map_delete_elem(&conn_rev, &r);
	hellos_forget((struct flow_key *)k, c->nseg);
	conn_del(k);
	conn_rev_moved(&r);
}

#endif
