/* SPDX-License-Identifier: Apache-2.0 */
/* libveil: the userspace side of the data plane.  Loading the BPF programs
 * (skeletons, pinned maps, libxdp/TC attach), the config files, and the map
 * helpers the daemons, tools and tests share. */
#ifndef VEIL_LIB_H
#define VEIL_LIB_H

#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <linux/types.h>
#include "veil/wire.h"

#define VM_PIN_ROOT_DEFAULT "/sys/fs/bpf/veilmesh"

struct xdp_program;
struct gw_ingress;
struct gw_return;
struct gw_asm;
struct node_mesh;
struct node_vm;

/* ---------- logging, command line, signals, pidfile (common/daemon.h) ---------- */
#include "common/daemon.h"
/* Routes libbpf's and libxdp's messages through vm_log (debug only if verbose). */
void vm_lib_logging(bool verbose);

/* ---------- addresses ---------- */
/* Parses an IPv4 or IPv6 literal into 16 bytes (IPv4-mapped); returns the
 * family (VM_AF_INET / VM_AF_INET6) or 0. */
int vm_addr_parse(const char *s, __u8 out[16]);
/* A 16-byte address (IPv4 mapped) hashed for a table of the daemons' own
 * (the next hops' index in the DPDK path, the sets of neigh.c): an IPv4
 * address's first three words are the same for all, so the last one's bits
 * are spread over the word by the multiply; take a slot from the top bits. */
static inline uint32_t vm_addr_hash(const __u8 a[16])
{
	uint32_t w[4];

	__builtin_memcpy(w, a, 16);
	return (w[0] ^ w[1] * 0x85ebca6bu ^ w[2] * 0xc2b2ae35u ^ w[3]) * 0x9e3779b1u;
}
/* An IPv4 address in the data plane's 16-byte form (::ffff:a.b.c.d). */
static inline int vm_addr_is_v4(const __u8 a[16])
{
	static const __u8 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return !__builtin_memcmp(a, mapped, 12);
}
const char *vm_addr_str(const __u8 a[16], char *buf, size_t len);
int vm_mac_parse(const char *s, __u8 out[6]);
int vm_if_mac(const char *ifname, __u8 out[6]);

/* ---------- config files ---------- */
#define VM_CFG_MAX_ROUTES 4096
#define VM_CFG_MAX_VIPS   64
#define VM_CFG_MAX_VMS    256

struct vm_cfg_route {
	struct route_key key;
	struct route_val val;
	int line;                 /* where the config file said it */
};

struct vm_cfg_vip {
	struct vip_key key;
	struct vip_val val;
};

struct vm_cfg_vm {
	__u32 id;
	char ifname[32];
	struct vm_val val;
};

struct vm_gw_cfg {
	char path[256];
	char pin_root[256];
	char client_if[32];
	char mesh_if[32];
	char secret_file[256];
	char metrics[64];         /* ADDR:PORT for Prometheus text, or "off" */
	char control[108];        /* unix socket for veilctl */
	__u32 rotate_s;
	__u32 flows_max;
	__u32 hellos_max;         /* hello_asm's slots, a power of two (veil-gw-dpdk: split among its workers) */
	int secret_line, client_if_line, mesh_if_line;  /* where the file set them (0: not set) */
	struct gw_config dp;
	int nroutes, nvips;
	struct vm_cfg_route *routes;
	struct vm_cfg_vip vips[VM_CFG_MAX_VIPS];
	char store_urls[512];     /* "store nats://...": routes also from the cluster store */
	char store_pub[256];      /* "store_pub FILE": the controller's Ed25519 public key */
	int store_pub_line;
	char store_gens[256];     /* "store_gens FILE": last gen per route key, kept across restarts */
};

struct vm_node_cfg {
	char path[256];
	char pin_root[256];
	char mesh_if[32];
	char metrics[64];
	char control[108];
	__u32 conns_max;
	struct node_config dp;
	int nvms;
	struct vm_cfg_vm vms[VM_CFG_MAX_VMS];
};

/* Parse a config file; on error write "file:line: reason" to err and return
 * -1 without side effects. */
int vm_gw_cfg_load(const char *path, struct vm_gw_cfg *c, char *err, size_t errlen);
void vm_gw_cfg_free(struct vm_gw_cfg *c);
int vm_node_cfg_load(const char *path, struct vm_node_cfg *c, char *err, size_t errlen);
int vm_hostport_ok(const char *s);
/* Route names: lowercase host names, optionally "*." + a name. */
int vm_route_name_ok(const char *name);
/* veilctl's route changes, as edits of the config file: "add"|"replace"
 * NAME VM_ID NODE, or "del" NAME.  The edited file is checked in full
 * before it atomically replaces the old one; -1 with the reason in err. */
int vm_gw_cfg_edit_route(const char *config, const char *op, char **w, int n, char *err, size_t errlen);

/* What the daemons check beyond the file's syntax, at --check, start and
 * reload: the cookie secret (vm_secret_check) and, with ifaces, that the
 * interfaces exist; "file:line: reason" in err. */
int vm_gw_cfg_check_host(const struct vm_gw_cfg *c, bool ifaces, char *err, size_t errlen);

/* ---------- cookie secret ---------- */
/* Reads the fleet's master secret (hex, >= 16 bytes) from path. */
int vm_secret_read(const char *path, __u8 *key, size_t *len, char *err, size_t errlen);
/* The daemons' view of the secret file: there, a regular file, readable by
 * its owner alone, and a valid secret (vm_secret_read).  Nothing of the
 * secret reaches err. */
int vm_secret_check(const char *path, char *err, size_t errlen);
/* Derives the map value for a TAI time: the epoch's key and the previous one. */
void vm_secret_derive(const __u8 *master, size_t len, __u64 tai_s, __u32 rotate_s,
		      struct cookie_secret *out);
__u64 vm_tai_seconds(void);

/* ---------- next hops to the nodes (dataplane/neigh.c) ---------- */
struct vm_next_hop {
	__u8 node[16];            /* a route's node address */
	__u8 hop[16];             /* the next hop the kernel's route gives (or the node) */
	char dev[32];
	__u32 ifindex;
	__u8 mac[6];
	__u8 resolved;
	__u8 managed;             /* the kernel keeps the entry resolved (NTF_EXT_MANAGED) */
	__u16 state;              /* NUD_* of the neighbour entry */
	__u32 mtu;                /* dev's MTU when the route was read; 0 if unknown */
};
/* The next hop of every distinct node in the config, from the kernel's
 * routes (RTM_GETROUTE), at most max (a warning says how many nodes were
 * past it); with manage, each not managed or permanent already becomes a
 * "managed" neighbour entry that the kernel keeps resolved, and out[]
 * comes back resolved as vm_neigh_resolve leaves it.  Returns how many. */
int vm_next_hops(const struct vm_gw_cfg *c, struct vm_next_hop *out, int max, bool manage);
/* Fills mac/resolved from the kernel's neighbour table (rtnetlink dump);
 * returns how many resolved, -1 on a netlink error. */
int vm_neigh_resolve(struct vm_next_hop *hops, int n);
/* Tells the gateways when to ask the nodes' routes again (vm_next_hops):
 * a netlink socket subscribed to the kernel's route and link changes
 * (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK: a route added,
 * moved or removed, an interface down or its MTU changed). */
struct vm_route_watch {
	void *nl;                 /* struct mnl_socket *, NULL when not open */
};
/* 0, or -1 with errno (the caller then asks every time: changed says 1). */
int vm_route_watch_open(struct vm_route_watch *w);
/* 1 when routes or links changed since the last call, or the socket lost
 * messages (its buffer overflowed), or it is not open; else 0.  Reads
 * what is queued, never waits. */
int vm_route_watch_changed(struct vm_route_watch *w);
void vm_route_watch_close(struct vm_route_watch *w);
struct vm_gw;
/* The gateway's next_hops map made equal to the resolved hops (with the
 * interface's MAC and MTU), unresolved ones removed (XDP then asks the FIB
 * and counts no_neigh).  Returns the number of changes, or -errno. */
int vm_gw_next_hops_sync(struct vm_gw *g, const struct vm_next_hop *hops, int n);
/* Moves next_hops_gen (when changed, or when it is still 0) after a change
 * to next_hops: the flows' copies of their next hop are taken again.
 * vm_gw_next_hops_sync calls it; any other writer of next_hops must. */
int vm_gw_next_hops_moved(struct vm_gw *g, bool changed);
/* The same for vips and vips_gen (each CPU's copies of the VIPs it saw):
 * vm_gw_sync calls it; any other writer of vips must. */
int vm_gw_vips_moved(struct vm_gw *g, bool changed);
/* a one-entry generation map moved on after a change (never to 0) or written first */
int vm_gen_move(int fd, int changed);

/* ---------- gateway data plane ---------- */
/* Pinned maps replaced by a new size or flags (vm_pins_refresh). */
#define VM_PINS_KEPT_MAX 16
/* The largest value of any kind (a copy's buffer: vm_flows_walk, pins.c). */
#define VM_FT_VALUE_MAX 512

/* A flow table's kind (flowtab.c): its values' bytes and where a value
 * holds the connection's family and addresses (a re-seeding makes IPv6
 * keys again from them). */
struct vm_ft_kind {
	const char *name;         /* the map's */
	const char *seed;         /* the map of the seed that places its keys, pinned beside it */
	__u32 vs;
	__u32 family_off, client_off, vip_off;
};

/* A flow table mapped (flowtab.c, below): the gateway's flows or the
 * node's conns, told apart by their buckets' size. */
struct vm_flows {
	int fd;
	__u32 id;                 /* the map's id */
	__u32 nb;                 /* buckets */
	__u32 vs;                 /* a value's bytes */
	size_t bsz;               /* a bucket's bytes */
	void *b;
	size_t len;
	struct flow_seed seed;
	const struct vm_ft_kind *kind;
};

struct vm_pins_kept {
	int n;
	/* the caller's: names of arrays whose entries may sit at any index
	 * (a table of slots: a smaller copy takes the entries past its end
	 * in free indices), NULL-terminated; NULL: none */
	const char *const *slot_maps;
	struct {
		int fd;
		char path[300];
		char name[32];
		bool slots;      /* one of slot_maps: its entries may move to any index */
		bool flows;      /* the flow table: its flows put where the new one places them */
	} e[VM_PINS_KEPT_MAX];
};

struct vm_gw {
	struct gw_ingress *ing;
	struct gw_return *ret;
	struct gw_asm *as;        /* TC reassembly behind gw_ingress */
	struct xdp_program *xp_ing, *xp_ret;
	int if_client, if_mesh;
	char pin_root[256];
	struct flow_bits_val *bits; /* flow_bits, mapped (VM_FLOW_BITS_ENTRIES) once loaded */
	__u64 *rbits;               /* route_bits, mapped (VM_ROUTE_BITS_WORDS) once loaded */
	int rbits_loaded;           /* the routes the load made route_bits from (the pinned ones) */
	struct vm_pins_kept kept;   /* maps replaced by a new size or flags, copied at the load */
	struct vm_flows ft;         /* the flows map, mapped once loaded */
};

/* The flows map's filter (flow_bits, include/veil/wire.h), as mapped by
 * vm_gw_load / vm_gw_attach (which set every bit: nothing filtered).
 * Clears one half; sets a key's bits in one half; and both halves rebuilt
 * in turn from what the flows map at flows_fd holds (the tools and tests:
 * veil-gw rebuilds a half per sweep pass).  Each safe while the programs
 * run: a half being rebuilt is covered by the other, and a flow made
 * meanwhile sets its bits in both.
 * The clear waits VM_FLOW_BITS_SETTLE_US after it, for the walk that
 * refills the half: a program that set a new flow's bits just before the
 * clear overwrote it has put the flow in the map by then, so the walk
 * finds it.  Without the wait a flow could be missing from the half being
 * cleared and, at the next pass, from the other one for a walk's length. */
#define VM_FLOW_BITS_SETTLE_US 1000
void vm_flow_bits_clear(struct flow_bits_val *b, int half);
void vm_flow_bits_add(struct flow_bits_val *b, int half, const struct flow_key *k);
int vm_flow_bits_rebuild(struct flow_bits_val *b, const struct vm_flows *ft);
/* Bits set in either half of a filter's n entries (read while the
 * programs or a worker write it): the fill gauges' count. */
__u64 vm_flow_bits_set_count(const struct flow_bits_val *b, __u32 n);

/* Removes, with a log line saying what changed, each map pinned for obj
 * (opened, not loaded) whose type, key, value, size or flags the object's
 * map no longer has, so that the load pins a new one instead of failing;
 * returns how many, or -errno when a stale pin cannot be removed.  One
 * whose type, key and value stay (only its size or flags changed) is kept
 * open in kept (may be NULL) and vm_pins_migrate, once the new map is
 * pinned, copies what it holds into it (event=pinned_map_copied: entries
 * moved, and lost when the new one is smaller) and closes it; one not
 * copied by then is closed by vm_pins_kept_close. */
struct bpf_object;
int vm_pins_refresh(struct bpf_object *obj, struct vm_pins_kept *kept);
/* Copies each kept map whose path holds a new map now; returns how many. */
int vm_pins_migrate(struct vm_pins_kept *kept);
void vm_pins_kept_close(struct vm_pins_kept *kept);
/* Opens both programs with maps pinned under pin_root (reused if present;
 * one whose layout changed is replaced: vm_pins_refresh); flows_max and
 * hellos_max (a power of two, VM_ASM_SLOTS_BITS_MIN..MAX) size the flows
 * and hello_asm maps, 0: the programs' own sizes. */
int vm_gw_open(struct vm_gw *g, const char *pin_root, __u32 flows_max, __u32 hellos_max);
/* Loads without attaching (tests: BPF_PROG_TEST_RUN). */
int vm_gw_load(struct vm_gw *g);
/* Loads and attaches through libxdp; replaces a veilmesh program left
 * attached by a previous run without a gap. */
int vm_gw_attach(struct vm_gw *g, const char *client_if, const char *mesh_if, bool skb_mode);
void vm_gw_detach(struct vm_gw *g);
void vm_gw_close(struct vm_gw *g);
int vm_gw_map_fd(struct vm_gw *g, const char *name);
/* Every CPU's flow gate (struct gw_flow_gate, gw_ingress's per-CPU
 * scratch) off, its window begun now: for the benchmarks and tests that
 * need a flood's gate gone before their next case.  0 or -errno. */
int vm_gw_gates_off(struct vm_gw *g);
/* Makes routes and vips equal to the config (only differences are written). */
/* Makes the maps match c: routes (any number up to VM_ROUTES_MAX; c->routes
 * may be an array of the caller's beyond VM_CFG_MAX_ROUTES), VIPs, settings.
 * -EEXIST (and a log line) when two names share a 64-bit hash. */
int vm_gw_sync(struct vm_gw *g, const struct vm_gw_cfg *c, int *changes);

/* One route in the routes map, by name: the key is vm_route_hash(name),
 * the value the route and its name (struct route_ent).  The put sets the
 * route's bits in route_bits first (the programs look a name up only where
 * its bits are set); the removal leaves them (a stale bit costs a lookup).
 * route_bits is made exact by vm_gw_sync and at every load, and by
 * vm_gw_route_bits_rebuild, from what the routes map holds (after writes
 * that did not go through vm_gw_route_put: a copy, a test's; it returns the
 * routes it found, or -errno).  One writer at a time (veil-gw writes under
 * its store's lock). */
__u64 vm_route_hash(const char *name);
int vm_gw_route_put(struct vm_gw *g, const char *name, const struct route_val *v);
int vm_gw_route_get(int fd, const char *name, struct route_val *v);
int vm_gw_route_del(int fd, const char *name);
int vm_gw_route_bits_rebuild(struct vm_gw *g);
/* The same, on a loaded gateway, for the store's changes between full syncs:
 * the entry vm_gw_sync writes for that route; removing an absent route is
 * not an error. */
int vm_gw_route_set(struct vm_gw *g, const struct vm_cfg_route *r);
int vm_gw_route_unset(struct vm_gw *g, const char *name);
/* The routes map's entries as routes (malloc'ed). */
int vm_gw_routes_read(struct vm_gw *g, struct vm_cfg_route **out, int *n);
int vm_gw_stats_read(int fd, struct gw_stats *sum);

/* ---------- node data plane ---------- */
struct vm_node {
	struct node_mesh *mesh;
	struct node_vm *vm;
	struct xdp_program *xp_mesh;
	int if_mesh;
	int tc_ifs[VM_CFG_MAX_VMS];
	int ntc;
	char pin_root[256];
	void *old_conns;          /* conns of a pinned map of the older layout, moved at load */
	size_t nold_conns;
	int conn_rev_old;         /* conn_rev was pinned with an older layout: rebuilt from conns at load */
	const char *conn_rev_why; /* which (the log's reason) */
	__u32 *rev_gen;           /* conn_rev_gen, mapped (vm_node_rev_moved) */
	struct vm_pins_kept kept; /* maps replaced by a new size or flags, copied at the load */
	struct vm_flows ct;       /* conns, a flow table, mapped once loaded */
};

int vm_node_open(struct vm_node *n, const char *pin_root, __u32 conns_max);
/* vms_gen moved on after a change to vms (or written first): see node_maps.h. */
int vm_node_vms_changed(struct vm_node *n, int changed);
int vm_node_load(struct vm_node *n);
/* Removes connection c's conn_rev entry (c under conns key k) when it still
 * names k, as conn_forget does in BPF. */
void vm_node_conn_rev_forget(struct vm_node *n, const struct flow_key *k, const struct conn_val *c);
/* After a write to conn_rev from userspace: conn_rev_gen's slot of key r
 * moved on (NULL: every slot), so no node_vm cached copy of what was
 * there is used again (bpf/node_vm.bpf.c, conn_rev_cache). */
void vm_node_rev_moved(struct vm_node *n, const struct conn_rev_key *r);
int vm_node_attach(struct vm_node *n, const struct vm_node_cfg *c, bool skb_mode);
/* On reload: the TC program onto VM interfaces new to the table (a tap the
 * node agent just made), and forgotten for those that left it. */
int vm_node_attach_vms(struct vm_node *n, const struct vm_node_cfg *c, int *attached);
void vm_node_detach(struct vm_node *n);
void vm_node_close(struct vm_node *n);
int vm_node_map_fd(struct vm_node *n, const char *name);
int vm_node_sync(struct vm_node *n, const struct vm_node_cfg *c, int *changes);
int vm_node_stats_read(int fd, struct node_stats *sum);

/* ---------- runtime file: how veilctl finds a running daemon ---------- */
/* A daemon writes its control socket's path with .json for .sock
 * (/run/veilmesh/veil-gw.json by default; /run/veilmesh/DAEMON.json when
 * the socket is off): {"daemon", "pid", "config", "pin_root",
 * "control_socket", "metrics"}.  Written atomically at start, removed at
 * stop; veilctl trusts one only while its pid is alive and is that daemon.
 * Returns 0 with the path in out. */
#define VM_RUN_DIR_DEFAULT "/run/veilmesh"
int vm_runtime_write(const char *daemon, const char *control, const char *config, const char *pin_root,
		     const char *metrics, char *out, size_t outlen);
void vm_runtime_remove(const char *path);

/* ---------- map helpers for the answers (dataplane/ctl.c; the control socket
 * and the metrics endpoint are the skeleton's: common/daemon.h) ---------- */
long vm_map_count(int fd);
/* A flow table this process keeps mapped, for vm_map_count to read there
 * (by its map's id, while t->b is set); at most 4 a process. */
void vm_map_count_mapped(const struct vm_flows *t);
/* A map's keys counted one get_next_key call at a time (keys of 512 bytes
 * at most): what vm_map_count falls back to, and the benchmarks' baseline. */
long vm_map_count_keys(int fd);
/* A hash map's entries handed to fn by the batch calls (BPF_MAP_LOOKUP_BATCH),
 * up to batch at a time: its keys (ksize bytes each) and values (vsize)
 * side by side.  1 when every entry went to fn, 0 when the kernel has no
 * batch calls for the map (walk it key by key), a negative errno, or fn's
 * negative answer (which ends the walk). */
int vm_map_each_batch(int fd, size_t ksize, size_t vsize, __u32 batch,
		      int (*fn)(void *arg, const void *keys, const void *vals, __u32 n), void *arg);
/* gw_asm's hello_asm (fd: a BPF_F_MMAPABLE array of struct asm_val)
 * mapped, its slots read (and with writable, written: the benchmarks free
 * a slot's owner word) in place; *slots and *len for vm_asm_unmap.  NULL
 * when fd is not such a map (one pinned by a build before it was
 * mappable): read it slot by slot. */
struct asm_val;
struct asm_val *vm_asm_map(int fd, __u32 *slots, size_t *len, bool writable);
void vm_asm_unmap(struct asm_val *a, size_t len);
/* gw_asm's hello_asm_tags (a BPF_F_MMAPABLE array of struct asm_tags, one
 * a bucket) mapped for reading and writing; *buckets and *len for
 * vm_asm_unmap.  NULL when fd is not such a map. */
struct asm_tags;
struct asm_tags *vm_asm_tags_map(int fd, __u32 *buckets, size_t *len);
/* Each tag of hello_asm_tags (tags_fd) made its slot's owner word in
 * hello_asm (asm_fd), a compare-and-swap a word (the programs may be
 * running): after a load, whose copies, moves or a build before the tags
 * wrote slots without them.  Returns the tags changed, or -errno. */
int vm_asm_tags_sync(int asm_fd, int tags_fd);
__u32 vm_xdp_prog_id(struct xdp_program *p);
long vm_map_capacity(int fd);
/* Prometheus text both daemons serve: each pinned map's entries and
 * capacity (the daemon counters: vm_metrics_daemon, common/daemon.h). */
void vm_metrics_maps(FILE *out, const char *const *names, const int *fds, int n);

/* Names of the counters, in struct order (for printing). */
extern const char *const vm_gw_stat_names[];
extern const int vm_gw_stat_count;
extern const char *const vm_node_stat_names[];
extern const int vm_node_stat_count;

/* ---------- the flow tables (flowtab.c) ---------- */

/* A flow table (an array of buckets, include/veil/flowtab.h: the
 * gateway's flows, of struct flow_val, or the node's conns, of struct
 * conn_val) mapped, with the seed that places its keys (flow_seed's or
 * conn_seed's entry, read at open and again by vm_flows_seed; seed_fd < 0:
 * zero).  The functions do what the programs do, on the same words: safe
 * while they run.  A value is the table's kind's (t->vs bytes). */
/* The buckets of a table for n flows (VM_FT_BUCKETS_DEFAULT for the
 * default flows_max). */
__u32 vm_flows_buckets_for(__u32 n);
/* -EINVAL when flows_fd is no flow table (an older build's hash map). */
int vm_flows_open(struct vm_flows *t, int flows_fd, int seed_fd);
struct bpf_map_info;
/* Whether a map (its info) is a flow table of a kind this build knows. */
int vm_flows_is_table(const struct bpf_map_info *info);
/* The kind of table a map of this name and bucket size is, or NULL. */
const struct vm_ft_kind *vm_flows_kind(const char *name, __u32 bucket_bytes);
int vm_flows_seed(struct vm_flows *t, int seed_fd);
void vm_flows_close(struct vm_flows *t);
/* 0 with the value copied to v (may be NULL), or -ENOENT. */
int vm_flows_get(const struct vm_flows *t, const struct flow_key *k, void *v);
/* 0; -EEXIST when k is there and !replace (replace: its value written in
 * place); -ENOSPC when the slot went to another writer.  Where both of
 * k's buckets are full a flow that carried no packet lately gives way. */
int vm_flows_put(struct vm_flows *t, const struct flow_key *k, const void *v, int replace);
int vm_flows_del(struct vm_flows *t, const struct flow_key *k);
/* Each flow copied out and handed to fn (a non-zero return stops the
 * walk); returns the flows walked. */
typedef int (*vm_flows_fn)(void *arg, const struct flow_key *k, const void *v);
long vm_flows_walk(const struct vm_flows *t, vm_flows_fn fn, void *arg);
long vm_flows_count(const struct vm_flows *t);
/* Every flow moved to where seed ns places it (IPv6 keys re-made under
 * ns); the handle's seed becomes ns.  Returns the flows put, *lost those
 * that found no room; -ENOMEM. */
int vm_flows_reseed(struct vm_flows *t, const struct flow_seed *ns, int *lost);
/* Slots and buckets that break the table's invariants (include/veil/flowtab.h:
 * placement, spilled flags, tags once a bucket, spill counts): 0 when none. */
long vm_flows_check(const struct vm_flows *t);
/* The gateway's table, mapped at its load (vm_gw_load, vm_gw_attach). */
struct vm_flows *vm_gw_flows(struct vm_gw *g);
/* The node's conns, mapped at its load (vm_node_load), or NULL. */
struct vm_flows *vm_node_conns(struct vm_node *n);
/* The clients of the established connections to VMs ids (taken out of the
 * table) sent a segment their TCP answers, which node_mesh then resets
 * (nudge.c): how many were sent; *failed, those that could not be. */
long vm_node_nudge(struct vm_node *n, const __u32 *ids, int nids, long *failed);
/* The UDP payload of one such segment (Geneve, the inner IP and TCP
 * headers, at most 68 bytes): its length. */
size_t vm_nudge_segment(const struct flow_key *k, const struct conn_val *c, __u8 *out);

/* ---------- retiring closed flows (sweep.c) ---------- */
#include <time.h>
/* How far apart the two looks that retire a closed or reset entry are
 * (veil-gw's and veil-node's sweep, veil-gw-dpdk's vm_fp_sweep). */
#define VM_SWEEP_EVERY_S 5
/* A hash map's entries by the kernel's count (Linux 6.6+; map_id: its
 * id), read by a BPF iterator (dataplane/mapwalk.c); -1 where it cannot
 * load. */
long vm_walk_count(__u32 map_id);
/* gw_asm's hello_asm (map_id): the slots holding a hello, counted in the
 * kernel by a BPF iterator (8 bytes read a slot); -1 where it cannot load. */
long vm_walk_asm_count(__u32 map_id);

#define VM_SWEEP_KEY_MAX 64     /* bytes of a swept map's key and value at most */
#define VM_SWEEP_VAL_MAX 1024
#define VM_SWEEP_BATCH   8192   /* entries a batch lookup asks for */
struct vm_sweep {
	int fd;
	const struct vm_flows *ft;              /* the gateway's flow table: walked and freed through it (fd unused) */
	uint32_t key_size, val_size, fin_off;   /* fin_off: the VM_FIN_* byte in the value */
	unsigned every;                         /* seconds between passes */
	time_t last;
	void *seen;                             /* keys closed at the last pass, sorted */
	size_t nseen, cap;
	uint64_t retired;
	int keys_only;                          /* walk key by key (veil-bench-maps' baseline) */
	/* the passes so far; the last one's entries walked and duration */
	uint64_t passes, last_entries;
	double last_s;
	/* called for each entry before it is deleted (e.g. to drop its reverse key) */
	void (*on_retire)(void *arg, const void *key, const void *val);
	/* called as a pass begins, then with every key the pass walks
	 * (veil-gw rebuilds a half of flow_bits so) */
	void (*on_pass)(void *arg);
	void (*on_key)(void *arg, const void *key);
	void *arg;
};
int vm_sweep_init(struct vm_sweep *s, int fd, uint32_t key_size, uint32_t val_size, uint32_t fin_off,
		  unsigned every_s);
/* Deletes what was closed at the previous pass and still is; at most one
 * pass per `every` seconds.  Returns the entries retired. */
long vm_sweep_run(struct vm_sweep *s, time_t now);
void vm_sweep_free(struct vm_sweep *s);
/* The sweep's metrics, veilmesh_<what>_sweep_*: passes, the last pass's
 * entries and seconds. */
void vm_sweep_metrics(FILE *out, const struct vm_sweep *s, const char *what);
/* The same as a JSON object for the daemons' status: every_s, passes,
 * last_entries, last_s, retired. */
void vm_sweep_status(FILE *out, const struct vm_sweep *s);

#endif
