/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's behaviour in userspace, on plain packet buffers: what the
 * DPDK fast path runs per packet.  The logic is the packet library's
 * (include/veil/gw_path.h, gw_asm.h, gw_ret.h: the same code gw_ingress,
 * gw_asm and gw_return are built from); this API gives it its tables and
 * frames.  tests/test_fastpath.c runs both on the same inputs and requires
 * byte-identical output and counters (docs/wire-formats.md lists the fields
 * free to differ).
 *
 * Hellos that need reassembly (name past the first segment, records split)
 * are reassembled at once, in the call (in the kernel gw_asm does it in TC
 * behind XDP): kept, ACKed, parsed once whole, then every kept segment goes
 * to the node through the emit callback.  The DPDK application around it
 * (EAL, ports, lcores, telemetry) is dataplane/dpdk/.
 */
#ifndef VEIL_FASTPATH_H
#define VEIL_FASTPATH_H

#include <stddef.h>
#include <stdint.h>
#include "veil.h"
#include "veil/hello.h"
#include "veil/pkt.h"     /* VM_ETH_HLEN, VM_IPPROTO_TCP (vm_fp_hint_ahead) */
#include "veil/flowkey.h" /* vm_flow_bits_at_n (vm_fp_bits_prefetch) */

#define VM_FP_MAX_ROUTES 65536
/* Next hops a generation holds: as many as the XDP gateway's next_hops map. */
#define VM_FP_MAX_NEIGH  VM_NEXT_HOPS_MAX

enum vm_fp_verdict {
	VM_FP_DROP = 0,
	VM_FP_PASS,       /* not ours: to the host stack */
	VM_FP_TX,         /* back out of the port it came in on */
	VM_FP_FWD,        /* out of *out_port */
};

/* What the kernel FIB and neighbour table give XDP: the next hop towards
 * an underlay address, and the port it is on. */
struct vm_fp_neigh {
	uint8_t addr[16];
	uint8_t mac[6];
	uint16_t port;
	uint32_t mtu;        /* the IP MTU towards it (its interface's); 0: VM_FP_MTU_DEFAULT */
};
#define VM_FP_MTU_DEFAULT 1500

/* The IP MTU towards nb: its interface's, or VM_FP_MTU_DEFAULT when unknown. */
static inline uint32_t vm_fp_neigh_mtu(const struct vm_fp_neigh *nb)
{
	return nb->mtu ? nb->mtu : VM_FP_MTU_DEFAULT;
}
/* The reassembly sends kept segments only over a mesh that takes this much
 * (gw_asm's ASM_FIB_TOT_LEN, Ethernet's MTU): below it, VM_SEND_FAIL. */
#define VM_FP_ASM_MTU_MIN 1500

/* Every table of the fast path: open addressing on a flow key (12 bytes,
 * include/veil/flowkey.h; the values keep the tuple), the least
 * recently used entry of an 8-slot probe window evicted when it is full. */
struct vm_fp_slot {
	struct flow_key key;
	uint64_t last_used;
	uint8_t used;
	/* flows only: the TAI second the sweep (vm_fp_sweep) first found the
	 * flow closed or reset, 0 when it has not; in the slot's padding */
	uint32_t swept_s;
};
_Static_assert(sizeof(struct vm_fp_slot) == 32, "the sweep's stamp lives in the slot's padding");

/* The tables start on a cache line.  Their entries are not padded to one:
 * measured, 64-byte entries (192 bytes with the former 40-byte key) gained nothing
 * on established packets and cost the hello path ~6% (its eviction scans
 * more memory). */
#define VM_FP_ALIGN 64
struct vm_fp_flow {
	struct vm_fp_slot s;
	struct flow_val val;
};

/* A ClientHello being reassembled (as gw_asm's hello_asm), and a segment
 * that came before its hello's first one (asm_early). */
#define VM_FP_ASM_MAX 1024      /* each table's slots unless hellos_max says (vm_fp_init_mem) */
struct vm_fp_asm {
	struct vm_fp_slot s;
	struct asm_val a;
};
struct vm_fp_early {
	struct vm_fp_slot s;
	struct asm_early e;
};
/* ... and a hello that lost bytes the gateway ACKed (gw_asm's asm_lost). */
struct vm_fp_tomb {
	struct vm_fp_slot s;
	struct asm_tomb t;
};

/* Where the fast path sends the extra packets of one input (a reassembled
 * hello goes to the node as all its kept segments). */
typedef void (*vm_fp_emit_fn)(void *arg, uint16_t port, const uint8_t *frame, uint32_t len);

/* One generation of what the control plane gives the fast path: built off
 * to the side, then read-only while any lcore may still use it (the DPDK
 * application swaps whole generations; see dataplane/dpdk/). */
struct vm_fp_conf {
	struct gw_config cfg;
	struct cookie_secret sec;
	struct vm_cfg_route *routes;   /* open addressing on the name, >= 2x the routes */
	uint32_t routes_cap;           /* power of two */
	uint64_t wild_lens[VM_ROUTE_WILD_WORDS];   /* bit n: a wildcard route's name is n bytes */
	struct vm_cfg_vip vips[VM_CFG_MAX_VIPS];
	int nvips;
	/* the next hops (vm_fp_conf_neigh_set): nneigh entries, found by the
	 * node's address through neigh_idx, open addressing over neigh_cap
	 * slots (a power of two, >= 2x the entries) holding an entry's index
	 * + 1, 0 when free */
	struct vm_fp_neigh *neigh;
	uint16_t *neigh_idx;
	uint32_t neigh_cap;
	int nneigh;
	/* this set of next hops' number, never 0 once set, different for
	 * every set: a flow keeps a copy of its node's next hop (flow_val.nh)
	 * while its nh_gen is this, as XDP's flows keep theirs while
	 * next_hops_gen holds */
	uint32_t nh_gen;
	uint8_t port_mac[8][6];        /* our MAC on each port */
};

/* Where the tables' memory comes from: zeroed, aligned to align (a power of
 * two).  The DPDK application gives hugepage memory (rte_zmalloc); by
 * default the C heap. */
struct vm_fp_mem {
	void *(*zalloc)(size_t size, size_t align, void *arg);
	void (*free)(void *p, void *arg);
	void *arg;
};
/* The C heap's (aligned_alloc), the default. */
extern const struct vm_fp_mem vm_fp_heap;

/* What one lcore owns: its flows and its counters. */
struct vm_fp {
	const struct vm_fp_conf *c;
	struct vm_fp_flow *flows;      /* open addressing, LRU-ish eviction within a probe window */
	uint32_t flows_cap;            /* power of two */
	uint64_t tick;
	uint32_t nflows;               /* flows in use */
	struct gw_stats st;
	struct gw_flow_gate gate;      /* the XDP gateway's per-CPU gate (vm_env_gate), ticked as there */
	struct vm_fp_asm *asm_tab;     /* asm_cap each */
	struct vm_fp_early *early_tab;
	struct vm_fp_tomb *tomb_tab;
	uint32_t asm_cap;              /* power of two */
	vm_fp_emit_fn emit;            /* NULL: a reassembled hello cannot be sent (encap_fail) */
	void *emit_arg;
	uint32_t hello_len;               /* the last parsed hello's length (vm_hello.hello_len) */
	uint8_t flat[2 * VM_HELLO_BUF];   /* a reassembled hello, its records joined */
	uint8_t frame[VM_ASM_HDR + 128 + VM_ASM_SEG_MAX];
	struct vm_fp_mem mem;             /* where the tables came from */
	uint32_t sweep_at;                /* the next slot vm_fp_sweep looks at */
	uint64_t retired;                 /* flows it has retired */
	/* A filter in front of flows, as veil-gw's flow_bits (include/veil/
	 * wire.h): four bits per key (vm_flow_bits_at_n) in two halves, set in
	 * both by every flow put; a lookup whose key's first slot is not its
	 * flow probes the rest of the window only when either half holds all
	 * its bits (an ACK flood on unknown tuples: one line instead of eight
	 * slots).  vm_fp_sweep rebuilds one half a pass over the table:
	 * cleared (a share a call, before it looks at any slot), then the bits
	 * of every flow it keeps; the other half covers the flows meanwhile. */
	struct flow_bits_val *bits;
	uint32_t bits_log2;               /* 2^bits_log2 entries: a quarter of flows_cap, 1024 to 2^20 */
	uint32_t bits_clear_at;           /* entries of the half being rebuilt cleared so far */
	uint64_t bits_rebuilt;            /* halves rebuilt; the one this pass rebuilds: its low bit */
};

int vm_fp_init(struct vm_fp *fp, uint32_t flows_cap);
/* The same with the tables in mem's memory (NULL: the C heap) and room for
 * hellos_cap hellos being reassembled (rounded up to a power of two, at
 * least 64; 0: VM_FP_ASM_MAX). */
int vm_fp_init_mem(struct vm_fp *fp, uint32_t flows_cap, uint32_t hellos_cap, const struct vm_fp_mem *mem);
void vm_fp_free(struct vm_fp *fp);
/* Number of flows in use (another thread may read it). */
uint32_t vm_fp_flow_count(const struct vm_fp *fp);
/* Drops one flow, named by its tuple; 0 if it was there, -1 if not. */
int vm_fp_flow_drop(struct vm_fp *fp, const struct flow_tuple *t);
/* Retires closed flows, as veil-gw's sweep does the flows map's
 * (dataplane/sweep.c): a flow found closed (FIN both ways) or reset at
 * its client's sequence (VM_FIN_RST) by two looks at least VM_SWEEP_EVERY_S
 * apart, and so at every look between, is deleted; the VM sending again
 * clears a reset's mark, a new connection on the tuple the stamp.  Each
 * call looks at n slots (at most the table) from where the last one
 * stopped; a DPDK worker calls it between bursts, n its clock's share of
 * VM_SWEEP_EVERY_S (vm_dp_poll).  now_ns: TAI.  Returns the flows retired
 * (also added to ->retired).  Rebuilds the flow filter as it goes (struct
 * vm_fp): a call that finds a half to clear clears up to 4n of its entries
 * first and looks at no slot until the half is clear; a call stops where
 * a pass ends. */
uint32_t vm_fp_sweep(struct vm_fp *fp, uint64_t now_ns, uint32_t n);
/* The flows' key seed (struct flow_seed): one per process, random at the
 * first vm_fp_init unless set before; set it only while no flow exists. */
void vm_fp_seed_set(const struct flow_seed *s);
const struct flow_seed *vm_fp_seed(void);
/* The key a tuple has under that seed (vm_fp_flow_hash of it: its lcore). */
void vm_fp_tuple_key(const struct flow_tuple *t, struct flow_key *k);

/* Routes, VIPs and data-plane settings as the gateway's config file says;
 * replaces those of *c (secret, neighbours and port MACs are kept).  The
 * route table is sized to the config.  -1 on allocation failure, *c intact. */
int vm_fp_conf_set(struct vm_fp_conf *c, const struct vm_gw_cfg *g);
void vm_fp_conf_free(struct vm_fp_conf *c);
/* Replaces c's next hops with the n of nb (an address given twice: its
 * first entry; n 0 frees them), under a new nh_gen: the flows take their
 * copies again.  -1 when n is over VM_FP_MAX_NEIGH or on allocation
 * failure, *c intact.  A next hop changed in place is not seen by a flow
 * that copied it: set them again. */
int vm_fp_conf_neigh_set(struct vm_fp_conf *c, const struct vm_fp_neigh *nb, int n);
/* The first slot of a node's address (16 bytes, IPv4 mapped) in a next-hop
 * index of cap slots (a power of two, >= 2): vm_addr_hash's top bits. */
static inline uint32_t vm_fp_neigh_slot(const uint8_t *addr, uint32_t cap)
{
	return vm_addr_hash(addr) >> (32 - __builtin_ctz(cap));
}
/* The next hop c holds for a node's address (16 bytes, IPv4 mapped), or
 * NULL: the packet path's, for a flow's first packet after a new set of
 * next hops (the flow keeps a copy: nh_gen) and for the reassembly's sends. */
static inline const struct vm_fp_neigh *vm_fp_conf_neigh(const struct vm_fp_conf *c, const uint8_t *addr)
{
	uint32_t m = c->neigh_cap - 1;

	if (!c->neigh_cap)
		return NULL;
	for (uint32_t i = vm_fp_neigh_slot(addr, c->neigh_cap), n = 0; n <= m; i = (i + 1) & m, n++) {
		uint16_t e = c->neigh_idx[i];
		if (!e)
			return NULL;
		if (!__builtin_memcmp(c->neigh[e - 1].addr, addr, 16))
			return &c->neigh[e - 1];
	}
	return NULL;
}
/* The route a generation holds for an exact name (NUL-padded), or NULL. */
const struct route_val *vm_fp_conf_route(const struct vm_fp_conf *c, const char *name);
/* The flow table's hash of a key: the DPDK application splits flows among
 * its lcores by it. */
uint32_t vm_fp_flow_hash(const struct flow_key *k);
/* A flow key (12 bytes: the two address words, the two ports) hashed: the
 * per-packet hash of every table and of the lcore hand-over.  Read field by
 * field, not as loads of the key's memory: the key was just written in 4-
 * and 2-byte pieces, and a wider load of it waits for those stores to
 * retire (store forwarding fails): measured, a quarter of the established
 * path's samples sat on that load's first multiply.
 * On x86-64 with SSE4.2 two CRC32C steps (the instruction DPDK's rte_hash
 * uses; every CPU DPDK runs on has it): the key -> hash -> slot chain is the established
 * path's longest (perf: a third of vm_fp_ingress_hint's samples on the hash
 * and the slot's first load), and crc32 is 3 cycles a step against three
 * chained multiplies and their shifts: 100-130 TSC cycles less a 32-packet
 * poll (docs/dpdk.md).  Unkeyed, as the multiplies were (an IPv4 key is the
 * addresses themselves): a colliding key still only shares a probe window,
 * the key compare and tuple check decide.  Elsewhere the multiplies. */
_Static_assert(sizeof(struct flow_key) == 12, "vm_fp_hash_key mixes a 12-byte key");
#if defined(__x86_64__)
/* 1 when the CPU has crc32 (SSE4.2's): DPDK builds for it (-march=corei7),
 * but libveil also serves veilctl replay and the tests, built for plain
 * x86-64.  Asked once at start (fp_env.c). */
extern int vm_fp_has_crc32;
#endif

static inline uint32_t vm_fp_hash_key(const struct flow_key *k)
{
	uint64_t a = (uint64_t)k->client_word | (uint64_t)k->vip_word << 32;
	uint32_t b = (uint32_t)k->client_port_be | (uint32_t)k->vip_port_be << 16;
#if defined(__x86_64__)
	if (__builtin_expect(vm_fp_has_crc32, 1)) {
		uint64_t c = 0x9e3779b9u;

		__asm__("crc32q %1, %0" : "+r"(c) : "r"(a));
		__asm__("crc32l %1, %k0" : "+r"(c) : "r"(b));
		return (uint32_t)c;
	}
#endif
	uint64_t h = 0x9e3779b97f4a7c15ULL;

	h ^= a;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 32;
	h ^= b;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 32;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return (uint32_t)(h ^ (h >> 29));
}

/* Brings the first slot a key of this hash probes towards the cache (all
 * of its cache lines): what a burst does for all its packets before
 * processing the first. */
static inline void vm_fp_flow_prefetch(const struct vm_fp *fp, uint32_t hash)
{
	const struct vm_fp_flow *f = &fp->flows[hash & (fp->flows_cap - 1)];

	__builtin_prefetch(f, 1, 3);
	__builtin_prefetch((const uint8_t *)f + 64, 1, 3);
	__builtin_prefetch((const uint8_t *)f + 128, 1, 3);
	__builtin_prefetch((const uint8_t *)f + sizeof(*f) - 1, 1, 3);
}

/* Processes one packet in place; may also emit further packets (above).  *pkt may move back by up to 128 bytes
 * (encapsulation): the buffer must have that much headroom before it, and
 * room after it for a reply of up to 100 bytes.  Time in TAI nanoseconds. */
enum vm_fp_verdict vm_fp_ingress(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				 uint64_t tai_ns, uint16_t *out_port);
enum vm_fp_verdict vm_fp_return(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				uint16_t *out_port);

/* A packet's flow looked at ahead (a burst's first pass): its key and the
 * flow table's hash of it.  The processing functions given it do not hash
 * the key again when it is the one they look up. */
struct vm_fp_hint {
	struct flow_key key;
	uint32_t hash;
};
/* The hint of an ingress (ret 0) or return (ret 1) packet: 0, or -1 when
 * it has no flow. */
int vm_fp_hint_of(int ret, const uint8_t *pkt, uint32_t len, struct vm_fp_hint *h);
/* A burst's first pass with one lcore: the packet's hint (vm_fp_hint_of)
 * and its flow slot prefetched.  A client's IPv4 TCP packet without IP
 * options, the common one, is read at fixed offsets: its key is its
 * addresses and ports as they lie in the packet (the library's own key
 * decides whether a hint is used, so an odd packet taken here costs a
 * prefetch and nothing else).  0, or -1 when the packet has no flow. */
static inline int vm_fp_hint_ahead(const struct vm_fp *fp, int ret, const uint8_t *pkt, uint32_t len,
				   struct vm_fp_hint *h)
{
	if (!ret && len >= VM_ETH_HLEN + 20 + 20 && pkt[12] == 0x08 && pkt[13] == 0x00 && pkt[14] == 0x45 &&
	    pkt[VM_ETH_HLEN + 9] == VM_IPPROTO_TCP) {
		if (vm_tcp_syn_only(pkt[VM_ETH_HLEN + 20 + 13]))
			return -1;   /* a SYN: no flow to look up */
		__builtin_memcpy(&h->key, pkt + VM_ETH_HLEN + 12, sizeof(h->key));
		h->hash = vm_fp_hash_key(&h->key);
	} else if (vm_fp_hint_of(ret, pkt, len, h)) {
		return -1;
	}
	vm_fp_flow_prefetch(fp, h->hash);
	return 0;
}
/* The flow filter's line of a hinted key on its way to the cache: wanted
 * when the key's first slot is not its flow (an ACK flood's unknown
 * tuples), not by an established packet found there. */
static inline void vm_fp_bits_prefetch(const struct vm_fp *fp, const struct vm_fp_hint *h)
{
	__u32 i;
	__u64 m;

	vm_flow_bits_at_n(&h->key, fp->bits_log2, &i, &m);
	__builtin_prefetch(&fp->bits[i], 0, 3);
}
enum vm_fp_verdict vm_fp_ingress_hint(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				      uint64_t tai_ns, uint16_t *out_port, const struct vm_fp_hint *hint);
enum vm_fp_verdict vm_fp_return_hint(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				     uint16_t *out_port, const struct vm_fp_hint *hint);

/* The flow a packet belongs to, without processing it: an ingress packet's
 * (client -> VIP) or a return packet's inner one (Geneve from a node).
 * 0 and *k filled, or -1 when the packet has no flow (the processing
 * functions then decide alone).  A client's SYN has its key: with several
 * workers it goes to its flow's owner as every packet does. */
int vm_fp_ingress_key(const uint8_t *pkt, uint32_t len, struct flow_key *k);
int vm_fp_return_key(const uint8_t *pkt, uint32_t len, struct flow_key *k);

#endif
