/* SPDX-License-Identifier: Apache-2.0 */
/*
 * veilmesh wire formats and map layouts, shared by the BPF programs, the
 * daemons, the tools and the tests.  Byte layouts are described in
 * docs/wire-formats.md; change both together.
 *
 * Conventions: every address is 16 bytes; IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d) so one key type serves both families (the gateway's
 * 12-byte flow key excepted: struct flow_key).  Fields named
 * *_be are in network byte order, everything else in host order.
 */
#ifndef VEIL_WIRE_H
#define VEIL_WIRE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define VM_NAME_MAX        256   /* route key size; names are at most 253 */
#define VM_GENEVE_PORT     6081
#define VM_GENEVE_PROTO_IP4 0x0800
#define VM_GENEVE_PROTO_IP6 0x86DD
/* Geneve option class from the experimental range (RFC 8926 section 8). */
#define VM_OPT_CLASS       0xFFF0
#define VM_OPT_HANDOFF     0x01
/* A client RST the gateway judged to be one the VM's TCP takes (at the
 * client's sequence or at the VM's last ACK): no body.  The node marks its
 * connection for the sweep on it as on its own rule (VM_FIN_RST). */
#define VM_OPT_RST_TAKEN   0x02
#define VM_RST_TAKEN_OPT_LEN 4  /* the option header alone */
#define VM_HELLO_STORE     2048  /* bytes of one kept hello segment (IP packet) at a node */
#define VM_ASM_SEGS        32    /* segments of one ClientHello kept (16 KB in 536-byte segments) */
#define VM_ASM_BYTES       16384 /* ClientHello bytes reassembled at most (power of two) */
#define VM_ASM_HDR         128   /* IP + TCP header bytes kept per segment */
#define VM_ASM_SEG_MAX     2048  /* payload bytes of one segment at most */

#define VM_AF_INET  4
#define VM_AF_INET6 6
#define VM_ADDR4_OFF 12          /* the IPv4 address in an IPv4-mapped one (::ffff:a.b.c.d) */

/* A header as it lies in a frame.  Past the 14-byte Ethernet header
 * every header starts 2 bytes from a 4-byte boundary, so in C (the DPDK
 * gateway, replay, the tests) a header struct says it may be only 2-byte
 * aligned, as DPDK's own do (__rte_packed __rte_aligned(2)): a 4-byte field
 * read through it is then an unaligned load, the same instruction on
 * x86-64 and arm64, and no longer undefined (UBSan's alignment check runs
 * in fuzz_fastpath).  Not in BPF, whose loads from the packet may be
 * unaligned where the CPU allows it and where a struct of lower alignment
 * would make clang split every word into bytes.  The fields lie where
 * they are: no struct that holds one of these moves. */
#ifdef __bpf__
#define VM_WIRE_HDR
#else
#define VM_WIRE_HDR __attribute__((packed, aligned(2)))
#endif

/* ---------- Geneve (RFC 8926) ---------- */
struct vm_geneve {
	__u8 ver_optlen;          /* version (2 bits) | option length in 4-byte words (6 bits) */
	__u8 flags;               /* O | C | reserved */
	__be16 proto;             /* inner protocol: 0x0800 or 0x86DD (no inner Ethernet) */
	__u8 vni[3];
	__u8 reserved;
} VM_WIRE_HDR;

struct vm_geneve_opt {
	__be16 opt_class;
	__u8 type;
	__u8 len;                 /* low 5 bits: body length in 4-byte words */
} VM_WIRE_HDR;

/* Handoff option body (class VM_OPT_CLASS, type VM_OPT_HANDOFF): everything the
 * node needs to replay the client's SYN to the VM and translate afterwards. */
#define VM_HO_SACK_OK 0x01
#define VM_HO_TS_OK   0x02
#define VM_WSCALE_NONE 0xff
struct vm_handoff {
	__be32 vm_id_be;
	__be32 client_isn_be;     /* the client's ISN (the ClientHello has seq = isn + 1) */
	__be32 cookie_isn_be;     /* the ISN of the gateway's SYN-ACK (the SYN cookie) */
	__be32 gw_tsval_be;       /* TSval the gateway sent in the SYN-ACK (0 without TS) */
	__be16 mss_be;            /* the client's MSS, as decoded from the cookie */
	__u8 client_wscale;       /* VM_WSCALE_NONE when the client sent no window scale */
	__u8 gw_wscale;           /* the window scale the gateway announced */
	__u8 flags;               /* VM_HO_* */
	__u8 pad[3];
} VM_WIRE_HDR;

#define VM_HANDOFF_OPT_LEN (sizeof(struct vm_geneve_opt) + sizeof(struct vm_handoff))

/* ---------- gateway maps ---------- */

/* A route's name as the config gives it: an exact name ("shop.example.test")
 * or a one-label wildcard ("*.apps.example.test"), lowercase, zero padded. */
struct route_key {
	char name[VM_NAME_MAX];
};

struct route_val {
	__u32 vm_id;
	__u8 node_family;         /* VM_AF_INET or VM_AF_INET6: the node's underlay address */
	__u8 pad[3];
	__u8 node[16];
};

/* The routes map: keyed by the 64-bit hash of the zero-padded name
 * (vm_name_hash, include/veil/route.h), the name itself in the value and
 * compared once after the lookup; a 256-byte key cost ~145 ns per lookup.
 * Sized for 100,000+ routes fed from the cluster store, allocated as used. */
#define VM_ROUTES_MAX 262144
struct route_hkey {
	__u64 hash;
};

struct route_ent {
	struct route_val val;
	char name[VM_NAME_MAX];
};

/* route_bits: the gateway's filter in front of the routes map, so that a
 * hello whose name no route has (a flood of made-up names) is refused
 * without the hash map's lookups and without making the wildcard key.
 * Words 0-3: bit n set when a wildcard route's name ("*." + suffix) may be
 * n bytes long.  The rest: one bit per route key (vm_route_bit_at, the
 * key's hash).  libveil sets a route's bits before it writes the route and
 * leaves them when a route goes; a full sync and every load make them
 * exact (veil-gw, under one lock: one writer).  A set bit only means "look
 * the map up": a stale one costs the lookup it spares. */
#define VM_ROUTE_WILD_WORDS 4                     /* VM_NAME_MAX bits */
#define VM_ROUTE_BITS_LOG   20                    /* 2^20 key bits: 128 KB */
#define VM_ROUTE_BITS_WORDS (VM_ROUTE_WILD_WORDS + (1u << VM_ROUTE_BITS_LOG) / 64)

/* next_hops: how the gateway reaches a node's underlay address without a
 * FIB lookup per packet (~23 ns), kept by the daemon from the kernel's
 * routes and neighbours (dataplane/neigh.c) and refreshed every second; a
 * node not in it goes through bpf_fib_lookup as before. */
#define VM_NEXT_HOPS_MAX 4096
struct next_hop_key {
	__u8 addr[16];            /* the node's underlay address */
};

struct next_hop_val {
	__u32 ifindex;            /* out of this interface */
	__u32 mtu;                /* its MTU: a longer packet counts mesh_mtu, as the FIB says */
	__u8 dmac[6];             /* the next hop's MAC */
	__u8 smac[6];             /* ours on ifindex */
};

struct vip_key {
	__u8 addr[16];
	__be16 port_be;
	__u8 family;
	__u8 pad;
};

#define VM_REFUSE_RST   0
#define VM_REFUSE_ALERT 1
struct vip_val {
	__u32 refuse;             /* VM_REFUSE_*: how an unknown name is refused */
};

/* The flows map's key: 12 bytes (a 40-byte key cost ~25 ns per lookup in
 * the kernel's hash).  IPv4: the addresses themselves, exact.  IPv6: the
 * client's 16-byte address folded to 32 bits by a keyed hash
 * (vm_addr_fold, include/veil/flowkey.h) under the gateway's flow_seed,
 * the VIP's by an unkeyed one (vm_vip_fold: VIPs are ours, not chosen by
 * senders).  A fold can collide, and an IPv6 key can equal an IPv4 one:
 * the value holds the whole tuple and every lookup compares it
 * (vm_flow_is), so a packet is never served with another connection's
 * entry.  hello_asm and asm_early use the same key and keep the tuple the
 * same way. */
struct flow_key {
	__be32 client_word;       /* IPv4: the client's address; IPv6: its fold */
	__be32 vip_word;          /* IPv4: the VIP; IPv6: its (unkeyed) fold */
	__be16 client_port_be;
	__be16 vip_port_be;
};

/* flow_seed: one entry, the fold's key.  Chosen at random by the loader
 * when the map is new (zero) and kept in the pinned map after that: a
 * restart or upgrade that reuses the pinned flows keeps the seed that keyed
 * them.  fold: the fold (VM_FLOW_FOLD, include/veil/flowkey.h) the entries
 * were keyed with; when it is not the programs', or the seed is new while
 * pinned entries live, the loader re-keys their IPv6 entries from the
 * tuples they hold before it records seed and fold.  k: NH's key (four
 * 32-bit words); mul: the multiplier that takes NH's 64 bits to 32
 * (used odd: mul | 1), drawn with the fold that brought it (3). */
struct flow_seed {
	__u64 k[2];
	__u32 fold;
	__u32 pad;
	__u64 mul;
};

/* A connection as an operator names it (veilctl flows drop): what a
 * flow_key stands for. */
struct flow_tuple {
	__u8 client[16];
	__u8 vip[16];
	__be16 client_port_be;
	__be16 vip_port_be;
	__u8 family;
	__u8 pad[3];
};

/* flow_val.fin (and conn_val.fin): which ends have sent a FIN. */
#define VM_FIN_CLIENT 0x01
#define VM_FIN_VM     0x02
#define VM_FIN_BOTH   (VM_FIN_CLIENT | VM_FIN_VM)
/* 0x04 marked a gateway flow whose tuple a SYN had come for, until
 * 2026-12-04 (a SYN now looks up no flow: vm_gw_seq_foreign); a flow kept
 * from then may carry it, and nothing reads it. */
/* A gateway flow or node connection whose client sent a RST at its
 * sequence (cli_nxt; at the gateway also at the VM's last ACK, vm_ack),
 * the RST the VM's TCP takes (RFC 5961) unless data of the client's is
 * still on its way: the entry stays, as a closed one does,
 * and the sweep retires it (vm_fin_retired) unless the VM sends again
 * first, which says it kept the connection and clears the mark (gw_return,
 * node_vm: rst_refused).  A RST from the VM ends the connection at once. */
#define VM_FIN_RST    0x08
/* flow_val.held_len: the gateway's copy of a held hello was lost (evicted
 * or aged) before the VM acknowledged it all; the low bits keep the
 * hello's length.  What the node lacks, if anything, nobody has: the
 * client will not send bytes the gateway ACKed.  So the VM's ACKs are
 * watched at gw_return: one that covers the hello clears the mark; pure
 * ACKs below its end that repeat the VM's last one (what its TCP sends for
 * each retransmission of the client's that reaches it while it lacks an
 * earlier segment) are counted in held_dups, and the VM_HELD_LOST_DUPS-th
 * goes to the client as a RST (held_lost_reset) instead of leaving the
 * connection to hang until the client gives up.  While the VM says
 * nothing at all, gw_ingress counts the client's retransmissions instead
 * (VM_HELD_LOST_QUIET). */
#define VM_HELD_LOST      0x8000
#define VM_HELD_LEN_MASK  (VM_HELD_LOST - 1)
#define VM_HELD_LOST_DUPS 2
/* With the VM silent since the hello went to its node (vm_ack 0): no
 * segment of the hello has reached a VM that answers.  The node starts the
 * VM's connection with whichever segment comes first, so the client's
 * retransmissions, which go to the node, would have; a VM that is only
 * slow to answer its SYN would still get every segment the node keeps.
 * So the count is of the client's retransmissions of hello bytes after
 * the loss, and the bar higher: with the client's doubling timeout the
 * 4th comes seconds after the loss (tests/reliability.sh held_lost_silent:
 * the client reset 3.4 s after it began). */
#define VM_HELD_LOST_QUIET 4
_Static_assert(VM_ASM_BYTES <= VM_HELD_LEN_MASK, "a held hello's length fits beside the lost mark");
struct flow_val {
	/* The ACK of the VM's last segment through the gateway: its TCP's
	 * RCV.NXT as far as the gateway has seen.  A client RST at it is one
	 * the VM takes, as one at cli_nxt is: it marks the flow (VM_FIN_RST).
	 * 0: none seen yet.  Until 2026-12-05 this word held the VM's id,
	 * which handoff.vm_id_be carries as well: a flow kept from a build
	 * before holds that until the VM's next segment. */
	__u32 vm_ack;
	__u32 client_isn;
	__u8 node_family;
	__u8 fin;                 /* VM_FIN_*: both set = closed, the tuple free for a new SYN */
	__u16 held_len;           /* hello bytes the gateway ACKed and holds in hello_asm until
	                           * the VM acknowledges them (0: none): resent on loss; with
	                           * VM_HELD_LOST, the copy is gone (below) */
	__u8 node[16];
	struct vm_handoff handoff; /* sent again with a retransmitted ClientHello */
	__u8 client_mac[6];       /* L2 next hop towards the client (return path) */
	__u8 vip_mac[6];          /* our MAC on the client-facing interface */
	__u32 client_ifindex;
	__u64 created_ns;
	/* Per packet, computed once: the outer UDP source port (vm_flow_port
	 * of the client's tuple), and the node's next hop copied from
	 * next_hops, valid while nh_gen equals the map's generation
	 * (next_hops_gen; 0: none cached). */
	__u16 mesh_sport;
	__u8 family;              /* the connection's: VM_AF_INET or VM_AF_INET6 (checked per lookup) */
	/* With held_len's VM_HELD_LOST: the VM's ACKs since, below the
	 * hello's end and repeating its last one (vm_ack).  Was padding
	 * (nh_pad, always 0) until 2026-12-06. */
	__u8 held_dups;
	__u32 nh_gen;
	struct next_hop_val nh;
	/* The connection's addresses (the key holds the ports, and for IPv6
	 * only folds of these): compared after every IPv6 lookup. */
	__u8 client[16];
	__u8 vip[16];
	/* The client's next sequence number as far as the gateway has seen:
	 * the furthest seq + payload (+ FIN) of its packets, from the hello
	 * on.  A lower bound of the client's SND.NXT; a client RST is
	 * forwarded only near it (VM_RST_WINDOW), so a blind RST must guess
	 * the sequence number as well as the port, and it marks the flow for
	 * retiring (VM_FIN_RST) only at it.  0: not known (a flow made by a
	 * build before it), any RST forwarded and marking.  In
	 * what was the struct's tail padding: the value's size is unchanged
	 * and a pinned flows map is kept across the upgrade. */
	__u32 cli_nxt;
};
_Static_assert(sizeof(struct flow_val) == 144, "flows' value size: a pinned map of another size is replaced");

/* The gateway's flow table, the flows map, and the node's conns: arrays of
 * buckets of VM_FT_WAYS slots (include/veil/flowtab.h says how keys are
 * placed, found, put and freed).  A bucket is a line of tags (struct
 * vm_ft_head), then its slots, each a struct vm_ft_slot and the value;
 * each table's own bucket type names the fields for bpftool. */
#define VM_FT_WAYS 8
#define VM_FT_BUSY 2u             /* even: never a key's tag */

struct vm_ft_head {
	__u32 tag[VM_FT_WAYS];    /* 0 free, VM_FT_BUSY being written, else the key's tag */
	__u32 spill;              /* keys whose home this is, in their second bucket */
	__u32 moves;              /* its keys' moves between buckets: under way (low 16 bits), done (high) */
	__u32 pad[6];             /* the tag line is one cache line */
};

struct vm_ft_slot {
	struct flow_key key;
	__u8 ref;                 /* a lookup found it since its bucket's last eviction */
	__u8 spilled;             /* in its second bucket: its home's spill counts it */
	__u16 pad;
	/* the value follows (8-byte aligned: copied in 8-byte words) */
} __attribute__((aligned(8)));
_Static_assert(sizeof(struct vm_ft_head) == 64 && sizeof(struct vm_ft_slot) == 16, "vm_ft_head, vm_ft_slot");

/* A table's own slot and bucket types, of values `struct val`: the map's
 * value type, so that bpftool prints the fields (the code reads them as
 * vm_ft_head and vm_ft_slot, whose layout they repeat). */
#define VM_FT_TYPES(slot_t, bucket_t, val_t)                                                          \
	struct slot_t {                                                                                \
		struct flow_key key;                                                                   \
		__u8 ref;        /* a lookup found it since its bucket's last eviction */              \
		__u8 spilled;    /* in its second bucket: its home's spill counts it */                \
		__u16 pad;                                                                             \
		struct val_t val;                                                                      \
	};                                                                                             \
	struct bucket_t {                                                                              \
		__u32 tag[VM_FT_WAYS]; /* 0 free, VM_FT_BUSY being written, else the key's tag */       \
		__u32 spill;           /* keys whose home this is, in their second bucket */           \
		__u32 moves;           /* its keys' moves: under way (low 16 bits), done (high) */     \
		__u32 pad[6];          /* the tag line is one cache line */                            \
		struct slot_t slot[VM_FT_WAYS];                                                        \
	};                                                                                             \
	_Static_assert(__builtin_offsetof(struct slot_t, val) == sizeof(struct vm_ft_slot) &&          \
		       __builtin_offsetof(struct bucket_t, slot) == sizeof(struct vm_ft_head) &&      \
		       sizeof(struct bucket_t) ==                                                      \
			       sizeof(struct vm_ft_head) + VM_FT_WAYS * (sizeof(struct vm_ft_slot) + sizeof(struct val_t)), \
		       #bucket_t ": the table's layout (vm_ft_head, vm_ft_slot)")

VM_FT_TYPES(flow_slot, flow_bucket, flow_val);
_Static_assert(sizeof(struct flow_bucket) == 64 + VM_FT_WAYS * 160, "flow_bucket");

/* The table of the default flows_max (262,144 flows): 49,152 buckets
 * (vm_ft_buckets_for: half again as many slots as flows). */
#define VM_FT_FLOWS_DEFAULT  262144
#define VM_FT_BUCKETS_DEFAULT 49152


/* flow_bits: the gateway's filter in front of the flows map.  Four bits
 * of one word per flow key (vm_flow_bits_at), in two halves kept side by
 * side (one cache line serves both): gw_ingress and gw_asm set a new
 * flow's bits in both, and under a flood (below) gw_ingress looks a
 * packet's flow up only when either half holds all its bits.  Bits only
 * accumulate as flows go, so veil-gw's sweep rebuilds one half a pass
 * (cleared, then the bits of every flow the map holds; the other half
 * covers the flows meanwhile), and the loader sets every bit (nothing
 * filtered) until it has.  A flood of ACKs on unknown tuples then costs a
 * line of this map instead of a cold bucket of the flows map each. */
#define VM_FLOW_BITS_IDX_BITS 15
#define VM_FLOW_BITS_ENTRIES  (1u << VM_FLOW_BITS_IDX_BITS)   /* x 64 bits x 2 halves: 512 KB */
struct flow_bits_val {
	__u64 half[2];
};

/* When gw_ingress looks at flow_bits: the filter spares a lookup that
 * finds nothing (a flood's spoofed tuple) a cold bucket of the flows map,
 * and costs one that finds its flow a line of its own, as cold as the
 * bucket when a gateway carries many connections; a hello, whose flow's
 * put reads the bucket anyway, pays the line for nothing.  So each CPU
 * counts its lookups in windows of VM_FLOW_GATE_WINDOW, and looks at the
 * filter through the window after one in which the CPU counted bad_cookie
 * (ACKs on unknown tuples whose cookie failed: a flood) for at least one
 * lookup in VM_FLOW_GATE_BAD_SHARE of those it judged, not otherwise
 * (struct gw_flow_gate, vm_gw_gate_tick in include/veil/gw.h).  The filter
 * never hides a flow the map holds that the programs made, so either way
 * a packet takes the same path.
 * Through such a window a bare ACK that finds no flow is dropped without
 * its cookie's MAC (ack_unjudged): a bare ACK makes no state, so the check
 * would only say which counter it goes to.  Only the window's first
 * VM_FLOW_GATE_PROBES lookups are judged all the same: they say whether the
 * flood goes on.  Were the unjudged counted as refused, a CPU whose lookups
 * are a quarter handshakes' last ACKs would keep its gate on after a flood
 * ends, and count those ACKs ack_unjudged instead of cookie_ack. */
#define VM_FLOW_GATE_WINDOW    64
#define VM_FLOW_GATE_BAD_SHARE 4
#define VM_FLOW_GATE_PROBES    8

/* One CPU's gate (gw_ingress: in its gw_scratch) or one DPDK worker's,
 * from vm_env_gate, ticked by vm_gw_gate_tick (include/veil/gw.h). */
struct gw_flow_gate {
	__u32 seen;               /* lookups in this window before this one (0: its first) */
	__u32 on;                 /* a flood: the filter is looked at in this window, and
	                           * bare ACKs with no flow past its probes go unjudged */
	__u64 bad_at;             /* bad_cookie when the window began */
};

/* How far from flow_val.cli_nxt a client RST's sequence number may lie to
 * be forwarded: either side, as a signed 32-bit distance.  Exactly cli_nxt
 * is what a client's own abort carries; a RST answering the VM's segment
 * carries that segment's ACK, which trails cli_nxt by what is still in
 * flight to the VM; one of data the gateway has not seen yet (reordered)
 * leads it.  A blind RST then reaches the VM with probability 2^-15 per
 * guessed port instead of 1, and there the VM's TCP takes only one at its
 * RCV.NXT (RFC 5961; it answers the others with a challenge ACK): the
 * gateway and the node keep the connection for any RST but the client's
 * own at cli_nxt (VM_FIN_RST), so a RST the VM refuses ends nothing. */
#define VM_RST_WINDOW (1u << 16)

/* hello_asm: a ClientHello being reassembled at the gateway (the name is
 * not in its first segment, or it spans TLS records).  Segments are kept
 * whole, headers and payload, and sent to the node unmodified once the name
 * is known.  Bounded: VM_ASM_SEGS segments, VM_ASM_BYTES bytes per flow,
 * a table of VM_ASM_SLOTS hellos (gw_asm's array; the DPDK path's slots)
 * that drops the oldest of a bucket (of a probe window), and
 * VM_ASM_TIMEOUT_NS of age. */
#define VM_ASM_TIMEOUT_NS (5ULL * 1000000000ULL)
/* gw_asm's hello_asm: an array of this many slots by default, in buckets of
 * VM_ASM_WAYS, any slot of one bucket may hold a given key (vm_asm_bucket,
 * include/veil/flowkey.h); powers of two.  A new hello takes a free slot
 * of its bucket, else the one whose hello began first: a live hello is
 * lost only to VM_ASM_WAYS newer ones in its bucket (docs/reassembly.md). */
#define VM_ASM_SLOTS_BITS 10
#define VM_ASM_SLOTS      (1u << VM_ASM_SLOTS_BITS)
/* hellos_max (the config): 64 to 16384 slots (1.4 to 366 MiB) */
#define VM_ASM_SLOTS_BITS_MIN 6
#define VM_ASM_SLOTS_BITS_MAX 14
#define VM_ASM_WAYS_BITS  3
#define VM_ASM_WAYS       (1u << VM_ASM_WAYS_BITS)
/* hello_asm_tags: a bucket's owner words side by side (one cache line),
 * the copy of each slot's owner word (asm_val.owner) that gw_asm reads to
 * find a hello or a free slot without touching the slots themselves (each
 * on its own pages).  The slot's word decides; the tag follows it (set
 * after a claim, cleared after a free) and the load makes the two agree
 * (vm_asm_tags_sync).  Sized for the largest table: bucket b of any
 * smaller one is entry b. */
#define VM_ASM_BUCKETS_MAX ((1u << VM_ASM_SLOTS_BITS_MAX) / VM_ASM_WAYS)
struct asm_tags {
	__u64 w[VM_ASM_WAYS];
};
struct asm_seg {
	__u32 off;                /* payload offset from the client's ISN + 1 */
	__u16 len;                /* payload bytes */
	__u8 hlen;                /* header bytes in hdr[] (IP + TCP) */
	__u8 pad;
	__u8 hdr[VM_ASM_HDR];
};

struct asm_val {
	__u8 client[16];          /* the connection's tuple (the key is folded, see flow_key) */
	__u8 vip[16];
	__u8 family;
	__u8 tpad[7];
	__u32 client_isn;
	__u32 cookie_isn;
	__u64 first_ns;
	__u32 nseg;
	__u32 have;               /* contiguous payload bytes from offset 0 */
	__u32 pad;
	__u32 routed;             /* routed: kept only to be resent until the VM ACKs it */
	/* The slot's holder where the table is gw_asm's array (VM_ASM_SLOTS,
	 * vm_asm_bucket): 0 when free, else its key's 64-bit digest (only this
	 * word is claimed atomically), and the key itself. */
	__u64 owner;
	struct flow_key key;
	__u32 kpad;
	struct asm_seg seg[VM_ASM_SEGS];
	__u8 payload[VM_ASM_BYTES + VM_ASM_SEG_MAX];
};

/* asm_early: a data segment that arrived before the hello's first one (its
 * cookie cannot be checked without the ISN the first one carries). */
struct asm_early {
	__u8 client[16];          /* the connection's tuple, as in asm_val */
	__u8 vip[16];
	__u8 family;
	__u8 tpad[7];
	__u32 seq;
	__u32 ack;
	__u64 seen_ns;
	__u16 len;
	__u8 hlen;
	__u8 pad[5];
	__u8 hdr[VM_ASM_HDR];
	__u8 payload[VM_ASM_SEG_MAX];
};

/* asm_lost: a hello being reassembled that lost bytes the gateway ACKed
 * (its slot taken by newer hellos: vm_asm_tomb_make).  The connection's
 * tuple (as in asm_val), its cookie + 1 and when; its next segment finds it
 * and is refused (gw_asm.h). */
struct asm_tomb {
	__u8 client[16];
	__u8 vip[16];
	__u8 family;
	__u8 tpad[3];
	__u32 ack;
	__u64 seen_ns;
};

/* One epoch's cookie keys (include/veil/cookie.h): the SipHash-2-4 key of
 * each form of the MAC's message, and the NH key that folds an IPv6
 * connection's two addresses into 8 bytes. */
struct vm_cookie_key {
	__u64 sip[2];             /* IPv4 form */
	__u64 sip6[2];            /* IPv6 form */
	__u32 nh6[8];             /* NH over the IPv6 addresses' eight words */
};

/* cookie_secret: one entry; the daemon writes it, the programs read it. */
struct cookie_secret {
	struct vm_cookie_key cur; /* the current epoch's keys */
	struct vm_cookie_key prev;/* the previous epoch's, valid for a grace window */
	__u64 epoch;              /* the epoch that cur belongs to */
	__u32 has_prev;
	__u32 rotate_s;           /* epoch length: cur became valid at epoch * rotate_s (TAI) */
};

/* gw_config: one entry. */
struct gw_config {
	__u8 underlay4[16];       /* source address for IPv4 mesh packets (mapped) */
	__u8 underlay6[16];       /* source address for IPv6 mesh packets */
	__u16 mss4;               /* MSS announced to IPv4 clients (mesh MTU minus overhead) */
	__u16 mss6;
	__u8 wscale;              /* window scale announced in the SYN-ACK */
	__u8 has_underlay4;
	__u8 has_underlay6;
	__u8 pad;
	__u32 cookie_window_s;    /* cookie lifetime granularity in seconds (default 64) */
};

/* Every outcome of the gateway programs, one named per-CPU counter each. */
struct gw_stats {
	__u64 pass_not_vip;       /* not for a VIP: handed to the kernel */
	__u64 pass_not_tcp;
	__u64 syn_cookie_sent;
	__u64 cookie_ack;         /* valid cookie, no payload: dropped */
	__u64 bad_cookie;
	__u64 hello_routed;
	__u64 hello_retransmit;   /* ClientHello again for a known flow: handoff re-sent */
	__u64 hello_partial;      /* ClientHello continues in a later segment or record */
	__u64 no_sni;
	__u64 bad_name;
	__u64 no_route;
	__u64 parse_error;
	__u64 refused_rst;
	__u64 refused_alert;
	__u64 fwd_established;
	__u64 malformed;          /* truncated or inconsistent headers for a VIP */
	__u64 ip_options;         /* IPv4 options or IPv6 extension headers to a VIP */
	__u64 fragment;
	__u64 rst_no_flow;
	__u64 no_neigh;           /* the node's next hop has no neighbour entry */
	__u64 fib_fail;
	__u64 encap_fail;
	__u64 ret_forwarded;      /* return path: decapsulated and sent to the client */
	__u64 ret_no_flow;
	__u64 ret_malformed;
	__u64 ret_pass;           /* not mesh traffic: handed to the kernel */
	__u64 no_config;
	__u64 asm_stored;         /* reassembly: a hello segment kept, the name not yet seen */
	__u64 asm_early;          /* reassembly: a segment kept before the hello's first one */
	__u64 asm_dup;            /* reassembly: a segment we already hold */
	__u64 asm_routed;         /* reassembly: name found, every segment sent to the node */
	__u64 asm_sent;           /* reassembly: segments sent */
	__u64 asm_timeout;        /* reassembly: a hello that did not complete in time */
	__u64 asm_overflow;       /* reassembly: beyond the segment or byte bound */
	__u64 asm_late;           /* reassembly: a segment for a flow already routed */
	__u64 asm_handed;         /* data with no flow and no valid cookie, handed to gw_asm */
	__u64 mesh_mtu;           /* encapsulated, the packet exceeds the mesh MTU (client ignored our MSS) */
	__u64 hello_resent;       /* the client resent held hello bytes: every held segment sent again */
	__u64 held_released;      /* the VM acknowledged the held hello: the copy is dropped */
	__u64 held_lost;          /* hello bytes ACKed and no longer held: a held copy gone when a resend
				     was due, or a hello being reassembled aged or evicted (refused: RST) */
	__u64 fin_answered;       /* a FIN with no flow (after a refusal) ACKed statelessly */
	__u64 flow_closed;        /* FIN seen both ways: the flow is closed, its tuple free */
	__u64 flow_reset;         /* RST forwarded: the VM's retires the flow, the client's at its
	                           * sequence (cli_nxt) or at the VM's last ACK (vm_ack) marks it
	                           * for the sweep (VM_FIN_RST) */
	__u64 flow_full;          /* the flow table refused a new entry */
	__u64 asm_full;           /* the reassembly table refused a new hello */
	__u64 reply_fail;         /* an answer to the client (SYN-ACK, ACK, refusal) could not be built */
	__u64 flow_collision;     /* a packet's flow key held another connection's entry: not served
	                           * with it (a new flow on that key is refused; a flow, hello or
	                           * early segment that another CPU put under it first is not replaced) */
	__u64 rst_out_of_window;  /* a client RST far from the flow's sequence (VM_RST_WINDOW): dropped,
	                           * the flow kept (a blind reset) */
	__u64 handshake_on_flow;  /* an ACK on a flow's tuple shaped as a new handshake's (vm_gw_seq_foreign):
	                           * its cookie checked (this slot counted syn_on_flow before 2026-12-04) */
	__u64 flow_replaced;      /* that ACK's cookie checked out: the old flow retired */
	__u64 rst_near;           /* a client RST near the flow's sequence but not at it nor at
	                           * the VM's last ACK: forwarded for the VM's TCP to judge
	                           * (RFC 5961), the flow kept */
	__u64 rst_refused;        /* the VM sent again after its client's RST: the flow's mark
	                           * (VM_FIN_RST) cleared, the connection goes on */
	__u64 held_lost_reset;    /* after its held copy was lost (held_lost), the VM still
	                           * lacked hello bytes (VM_HELD_LOST_DUPS repeated ACKs below
	                           * the hello's end) or said nothing (VM_HELD_LOST_QUIET
	                           * client retransmissions): the client reset, the flow retired */
	__u64 ack_unjudged;       /* a bare ACK with no flow under an ACK flood (the CPU's flow gate
	                           * on, past its window's probes): dropped without its cookie's
	                           * check, which would only have chosen between cookie_ack and
	                           * bad_cookie */
};

/* ---------- node maps ---------- */

/* vms: VM id -> where the VM is and what it is called on the wire. */
struct vm_val {
	__u32 ifindex;            /* host-side interface towards the VM */
	__u8 vm_mac[6];
	__u8 host_mac[6];         /* our MAC on that interface */
	__u8 addr4[16];
	__u8 addr6[16];
	__u8 has4;
	__u8 has6;
	__u16 pad;
};

/* conns: keyed by struct flow_key (the gateway's 12-byte key, IPv6 client
 * folded under the node's conn_seed), the whole tuple kept in conn_val and
 * compared on every lookup; conn_rev: keyed by the VM's view (VM address,
 * client, ports) in 12 bytes the same way (struct conn_rev_key, made by
 * vm_conn_rev_key_make), its value (struct conn_rev_val) the conns key and
 * a copy of what the VM -> client direction needs.  struct conn_key, the
 * whole tuple, was the conns key up to 09866c4: the loader reads pinned
 * entries of that layout to move them (old_conns_read, dataplane/loader.c). */
struct conn_key {
	__u8 client[16];
	__u8 vip[16];
	__be16 client_port_be;
	__be16 vip_port_be;
	__u8 family;
	__u8 pad[3];
};

/* conn_rev's key: IPv4 addresses as they are; an IPv6 client folded as in
 * the conns key (vm_addr_fold under conn_seed), an IPv6 VM address by the
 * unkeyed fold (vm_vip_fold: VM addresses are ours).  No family: a fold
 * that meets an IPv4 address, or another connection's, leads to a conns
 * entry whose tuple the VM's packet does not match (conn_is_vm_view), and
 * an insert never replaces a live connection's entry.  Up to conn_rev's
 * 40-byte key (struct conn_rev_key_v1, every build before this one) the
 * whole view was the key: the loader rebuilds conn_rev from conns when
 * it finds that layout pinned. */
struct conn_rev_key {
	__be32 vm_word;           /* IPv4: the VM's address; IPv6: its (unkeyed) fold */
	__be32 client_word;       /* IPv4: the client's address; IPv6: its fold under conn_seed */
	__be16 vm_port_be;
	__be16 client_port_be;
};

struct conn_rev_key_v1 {
	__u8 vm[16];
	__u8 client[16];
	__be16 vm_port_be;
	__be16 client_port_be;
	__u8 family;
	__u8 pad[3];
};
_Static_assert(sizeof(struct conn_rev_key) == 12 && sizeof(struct conn_rev_key_v1) == 40, "conn_rev keys");

/* conn_rev's value: the conns key of the connection and a copy of what
 * node_vm needs to send the VM's packets to the client, so an established
 * connection's VM packet reads one entry, not two.  Made by node_mesh with
 * the conns entry (vm_conn_rev_val_make); the parts the VM's SYN-ACK fixes
 * (state, deltas, the VM's window scale) copied again from conns when
 * node_vm reads conns (vm_conn_rev_val_refresh).  The copy is used only
 * while gen equals conn_gen[vm_conn_gen_idx(&conn)]: node_mesh moves that
 * slot before it makes any conns entry under a key of the slot, so a copy
 * whose conns key another connection took since (after the LRU pushed this
 * one's out) is never used: node_vm then reads conns, as it does for the
 * VM's SYN-ACK, FIN and RST.  Up to conn_rev's value of 12 bytes (the
 * conns key alone, every build before this one) the loader rebuilds
 * conn_rev from conns. */
struct conn_rev_val {
	struct flow_key conn;     /* the conns key */
	__u32 gen;                /* conn_gen's slot when filed or last checked against conns */
	__u32 seq_delta;          /* as conn_val's */
	__u32 ts_delta;
	__u32 mesh_ifindex;
	__u8 state;               /* VM_CONN_*: the copy is used when ESTABLISHED */
	__u8 family;
	__u8 gw_family;
	__u8 gw_wscale;
	__u8 vm_wscale;
	__u8 pad;
	__u16 mesh_sport;
	__u8 gw_mac[6];
	__u8 mesh_mac[6];
	__u8 gw[16];
	/* the tuple, compared on every lookup (the key folds IPv6 addresses) */
	__u8 vm[16];
	__u8 client[16];
	__u8 vip[16];
};
_Static_assert(sizeof(struct conn_rev_val) == 112, "conn_rev_val");

/* conn_gen: how many slots (a power of 2). */
#define VM_CONN_GEN_SLOTS 65536

#define VM_CONN_SYN_SENT    1
#define VM_CONN_ESTABLISHED 2
struct conn_val {
	__u32 state;
	__u32 vm_id;
	__u32 client_isn;
	__u32 cookie_isn;
	__u32 vm_isn;
	__u32 seq_delta;          /* cookie_isn - vm_isn: VM seq + delta = client's view */
	__u32 ts_delta;           /* gw_tsval - vm_tsval */
	__u32 gw_tsval;
	__u16 mss;
	__u8 client_wscale;
	__u8 gw_wscale;
	__u8 vm_wscale;
	__u8 flags;               /* VM_HO_* as negotiated with the client */
	__u8 gw_family;
	__u8 fin;                 /* VM_FIN_* seen; both: closed, still translated (last ACKs,
	                           * retransmitted FINs) until a handoff with another ISN replaces it */
	__u8 gw[16];              /* the gateway that owns the flow (outer source) */
	__u8 gw_mac[6];           /* L2 next hop towards it */
	__u8 mesh_mac[6];         /* our MAC on the mesh interface */
	__u32 mesh_ifindex;
	__u8 vm[16];              /* the VM's address for this flow's family */
	/* the connection's tuple (the key's ports are the rest): a lookup
	 * under a folded key is this connection's only when it matches */
	__u8 client[16];
	__u8 vip[16];
	__u8 family;
	__u8 pad;
	__u16 mesh_sport;         /* the outer UDP source port towards the gateway (vm_flow_port) */
	/* a copy of the VM's vms entry (where node_mesh sends), valid while
	 * vm_gen equals vms_gen (0: none yet) */
	__u32 vm_gen;
	__u32 vm_ifindex;
	__u8 vm_mac[6];
	__u8 host_mac[6];
	__u64 created_ns;
	__u32 nseg;               /* hello segments kept in hellos (idx 0..nseg-1) */
	__u32 seg_seq[VM_ASM_SEGS];
	/* The client's next sequence number as far as the node has seen (as
	 * flow_val.cli_nxt at the gateway): a client RST at it marks the
	 * connection (VM_FIN_RST), one elsewhere changes nothing.  0: not
	 * known (a connection made by a build before it).  In what was the
	 * struct's tail padding: a pinned conns map is kept across the upgrade. */
	__u32 cli_nxt;
};
_Static_assert(sizeof(struct conn_val) == 288, "conns' value size: a pinned map of another size is replaced");

/* The node's conns: a flow table (include/veil/flowtab.h) of conn_val, as
 * the gateway's flows is of flow_val; a lookup is node_mesh's and
 * node_vm's own code, not the hash map's calls into the kernel. */
VM_FT_TYPES(conn_slot, conn_bucket, conn_val);
_Static_assert(sizeof(struct conn_bucket) == 64 + VM_FT_WAYS * (16 + 288), "conn_bucket");

struct hello_key {
	struct flow_key conn;     /* the conns key */
	__u32 idx;
};

struct hello_val {
	__u32 len;                /* bytes of data[]: the inner IP packet as received */
	__u32 pad;
	__u8 data[VM_HELLO_STORE];
};

struct node_config {
	__u8 underlay4[16];
	__u8 underlay6[16];
	__u8 has_underlay4;
	__u8 has_underlay6;
	__u16 mss4;               /* MSS clamp in the replayed SYN */
	__u16 mss6;
	__u16 pad;
};

struct node_stats {
	__u64 pass_not_mesh;
	__u64 mesh_malformed;
	__u64 handoff_replayed;
	__u64 handoff_again;      /* handoff for a flow whose SYN is still unanswered */
	__u64 handoff_no_vm;
	__u64 hello_too_big;
	__u64 fwd_to_vm;
	__u64 no_conn;
	__u64 early_data;
	__u64 vm_synack;          /* the VM's SYN-ACK answered with the ClientHello */
	__u64 vm_synack_bad;
	__u64 fwd_to_gw;
	__u64 vm_pass;            /* VM traffic that is not a mesh flow */
	__u64 vm_malformed;
	__u64 encap_fail;
	__u64 no_config;
	__u64 conn_reset;         /* the VM's RST: connection state dropped */
	__u64 hello_seg_stored;   /* a further hello segment kept until the VM answers */
	__u64 hello_seg_dup;
	__u64 hello_seg_sent;     /* kept segments sent to the VM after its SYN-ACK */
	__u64 conn_replaced;      /* a handoff with a new client ISN on the tuple of an old connection */
	__u64 conn_closed;        /* FIN seen both ways */
	__u64 conn_full;          /* the connection table refused a new entry */
	__u64 hello_store_full;   /* the table of kept hello segments refused one */
	__u64 vm_stale_reset;     /* the VM answered a replayed SYN from an older connection: RST to it */
	__u64 conn_collision;     /* a packet whose folded key holds another connection's entry */
	__u64 client_rst;         /* a client's RST sent to the VM, whose TCP judges it (RFC 5961): at
	                           * the connection's cli_nxt it marks it for the sweep (VM_FIN_RST),
	                           * elsewhere it changes nothing */
	__u64 rst_refused;        /* the VM sent again after its client's RST: the mark cleared */
	__u64 vm_fast;            /* of fwd_to_gw, those node_vm's fast path sent (IPv4 without
	                           * options or IPv6 without extension headers, the timestamp
	                           * block alone, an established connection's copy); the rest
	                           * went the general way */
	__u64 reset_sent;         /* of handoff_no_vm and no_conn, the client's segments answered
	                           * with a RST through the mesh (its VM, or its connection, not
	                           * or no longer on this node) */
};

#ifndef VM_INLINE
#define VM_INLINE static inline __attribute__((always_inline))
#endif
#ifndef VM_UNROLL                 /* a loop the compiler unrolls, for clang -target bpf and gcc */
#ifdef __clang__
#define VM_UNROLL _Pragma("unroll")
#else
#define VM_UNROLL _Pragma("GCC unroll 16")
#endif
#endif

/* Records a FIN from one side of a flow or connection (VM_FIN_CLIENT or
 * VM_FIN_VM); 1 when this one closed it (both sides have now sent one). */
VM_INLINE int vm_fin_seen(__u8 *fin, __u8 side)
{
	if (*fin & side)
		return 0;
	*fin |= side;
	return (*fin & VM_FIN_BOTH) == VM_FIN_BOTH;
}

/* Whether the daemons' sweep retires an entry with this fin byte (found
 * so on two passes apart, dataplane/sweep.c): closed (a FIN both ways), or
 * reset by its client with no word from the VM since. */
VM_INLINE int vm_fin_retired(__u8 fin)
{
	return (fin & VM_FIN_BOTH) == VM_FIN_BOTH || (fin & VM_FIN_RST);
}

/* What the fin byte says of a flow or connection, for people (veilctl
 * flows and conns, veil-gw-dpdk's flows): "reset" is a client RST the
 * VM's TCP takes, awaiting the sweep unless the VM speaks again. */
VM_INLINE const char *vm_fin_name(__u8 fin)
{
	if ((fin & VM_FIN_BOTH) == VM_FIN_BOTH)
		return "closed";
	if (fin & VM_FIN_RST)
		return "reset";
	if (fin & VM_FIN_CLIENT)
		return "client_fin";
	return fin & VM_FIN_VM ? "vm_fin" : "open";
}

/* A client's next sequence number (cli_nxt) moved to nxt when that is
 * further, in sequence space. */
VM_INLINE void vm_cli_at(__u32 *cli_nxt, __u32 nxt)
{
	if ((__s32)(nxt - *cli_nxt) > 0)
		*cli_nxt = nxt;
}

/* A cheap, stable per-flow hash for the outer UDP source port (ECMP
 * entropy), over the addresses as native 32-bit words: the same in BPF
 * and in the userspace fast path.  The port lies in the dynamic range
 * (RFC 6335), VM_FLOW_PORT_BASE + 0 .. VM_FLOW_PORT_MASK. */
#define VM_FLOW_PORT_BASE 49152
#define VM_FLOW_PORT_MASK 0x3fff
VM_INLINE __u16 vm_flow_port(const __u8 *saddr, const __u8 *daddr, __be16 sport, __be16 dport)
{
	__u32 a[4], b[4], h = 0x9e3779b9;

	__builtin_memcpy(a, saddr, 16);
	__builtin_memcpy(b, daddr, 16);
	for (int i = 0; i < 4; i++) {
		h ^= a[i];
		h *= 0x85ebca6b;
		h ^= b[i];
		h *= 0xc2b2ae35;
		h ^= h >> 15;
	}
	h ^= ((__u32)sport << 16) | dport;
	h *= 0x27d4eb2d;
	h ^= h >> 16;
	return VM_FLOW_PORT_BASE + (h & VM_FLOW_PORT_MASK);
}

#endif /* VEIL_WIRE_H */
