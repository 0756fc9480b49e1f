// SPDX-License-Identifier: Apache-2.0
/* Baselines for the micro benchmark: the least an XDP program that answers a
 * packet can do (swap MACs, XDP_TX), and the least a TC program can do.
 *
 * BPF_PROG_TEST_RUN does not give a program a fresh copy of its input on
 * every repetition: in live-frames mode a page comes back with the bytes the
 * previous run wrote (only the data pointers are reset), in plain repeat mode
 * the same buffer is run again as it was left.  A program that rewrites its
 * packet (encapsulation, SYN-ACK in place) would be timed on its own output.
 * restore_xdp puts the original frame back (from bench_frame) and tail-calls
 * the program under test (bench_xdp[0]); the benchmark measures
 * each case through them next to the baseline through them on the same
 * frame, so the restore costs the same on both sides and cancels. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "veil/wire.h"   /* the routes map's key, value and size, for route_floor_xdp */
#include "veil/hello.h"  /* the name's routes key hash and SWAR lowercase, for sni_floor_xdp */
#include "veil/flowkey.h" /* the flow filter's entry and bits of a key, for filter_floor_xdp */
#include "veil/pkt.h"     /* checksum updates, for vm_path_floor_tc */
#include "bench_slots.h" /* bench_flow_key and _val; the slot table of slot_*_xdp */

#define BENCH_FRAME_MAX 2048

struct bench_frame {
	__u32 len;
	__u32 tail;               /* the program shortens the frame at its tail (a reply) */
	__u8 b[BENCH_FRAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_frame);
} bench_frame SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_xdp SEC(".maps");

/* restore failures, by reason: a run that did not reach the target */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} bench_fail SEC(".maps");

/* Distinct inputs in one plain-repeat call (burst mode): run i of the call
 * gets frame bench_ring_next++ of bench_ring, all of one length.  A state-
 * changing path (a first hello makes a flow) is timed over a burst as a
 * gateway's NAPI poll runs it, not one syscall per packet: with PTI and no
 * PCID every kernel entry flushes the TLB, so a run per syscall also pays
 * page walks for the program's code, stack, scratch and configuration,
 * which a burst finds warm. */
#define BENCH_RING 2048
#define BENCH_RING_FRAME 1024

struct bench_ring_frame {
	__u32 len;
	__u8 b[BENCH_RING_FRAME];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BENCH_RING);
	__type(key, __u32);
	__type(value, struct bench_ring_frame);
} bench_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_ring_next SEC(".maps");

static __always_inline void bench_failed(__u32 why)
{
	__u64 *c = bpf_map_lookup_elem(&bench_fail, &why);
	if (c)
		__sync_fetch_and_add(c, 1);
}

SEC("xdp")
int base_xdp_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 tmp[6];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, tmp, 6);
	return XDP_TX;
}

/* On the veth that carries the TC live case's frames: with an XDP program
 * of its own a veth takes frames in NAPI batches and hands the stack skbs
 * with XDP_PACKET_HEADROOM (an AF_PACKET frame has 2 bytes of headroom,
 * which no tap gives: tun reserves NET_SKB_PAD). */
SEC("xdp")
int base_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int base_tc(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

/* The frame's length as it stands, the two pointers subtracted in 64 bits
 * (the verifier refuses pointer arithmetic in 32: without the barrier
 * clang folds the length into the later subtraction as 32-bit adds). */
static __always_inline __u32 frame_len(struct xdp_md *ctx)
{
	__u64 span = (__u64)((void *)(long)ctx->data_end - (void *)(long)ctx->data);

	asm volatile("" : "+r"(span));
	return (__u32)span;
}

SEC("xdp")
int restore_xdp(struct xdp_md *ctx)
{
	__u32 k = 0, len, have;
	struct bench_frame *f = bpf_map_lookup_elem(&bench_frame, &k);

	if (!f)
		return XDP_ABORTED;
	len = f->len;
	have = frame_len(ctx);
	/* plain repeat mode leaves the pointers where the last run put them:
	 * move back the end the program moved (the head, or for a reply that
	 * shortens the frame, the tail).  The call is made on every run, by 0
	 * where nothing moved: the baseline (XDP_TX moves nothing) then pays
	 * the same helper call as a program that moved the head, and the
	 * subtraction leaves the program's own work.  Until 2026-12-07 the
	 * call was skipped where nothing had moved, so a program that pushes
	 * or pulls a header (every path to a node or a client) was charged
	 * the undo of its move as well: one more helper call, ~8-10 ns on
	 * the AMD host with Safe RET, in plain repeat mode only (live mode
	 * hands each run a fresh frame: nothing to undo on either side). */
	if (!f->tail && bpf_xdp_adjust_head(ctx, (int)have - (int)len)) {
		bench_failed(0);
		return XDP_ABORTED;
	}
	if (f->tail && bpf_xdp_adjust_tail(ctx, (int)len - (int)have)) {
		bench_failed(3);
		return XDP_ABORTED;
	}
	if (len == 0 || len > BENCH_FRAME_MAX || bpf_xdp_store_bytes(ctx, 0, f->b, len)) {
		bench_failed(1);
		return XDP_ABORTED;
	}
	bpf_tail_call(ctx, &bench_xdp, 0);
	bench_failed(2);
	return XDP_ABORTED;
}

/* restore_xdp's work with the next frame of the ring: the baseline and the
 * program under test run behind it alike, so the copy cancels. */
SEC("xdp")
int ring_xdp(struct xdp_md *ctx)
{
	__u32 k = 0, len, have, i, *next = bpf_map_lookup_elem(&bench_ring_next, &k);
	struct bench_ring_frame *f;

	if (!next) {
		bench_failed(4);
		return XDP_ABORTED;
	}
	i = *next;
	*next = i + 1;
	f = bpf_map_lookup_elem(&bench_ring, &i);
	if (!f) {
		bench_failed(4);
		return XDP_ABORTED;
	}
	len = f->len;
	have = frame_len(ctx);
	/* on every run, by 0 where nothing moved (restore_xdp says why) */
	if (bpf_xdp_adjust_head(ctx, (int)have - (int)len)) {
		bench_failed(0);
		return XDP_ABORTED;
	}
	if (len == 0 || len > BENCH_RING_FRAME || bpf_xdp_store_bytes(ctx, 0, f->b, len)) {
		bench_failed(1);
		return XDP_ABORTED;
	}
	bpf_tail_call(ctx, &bench_xdp, 0);
	bench_failed(2);
	return XDP_ABORTED;
}

/* The floor of established_many: the least a gateway does with a packet of
 * one of many connections, on the same ring of frames.  The flow found by
 * its 12-byte key (an IPv4 client's addresses and ports as they lie in the
 * packet, as the gateway's flow_key holds them) in an LRU hash of the
 * gateway's flows map's size, fill and value size; a word of the value read
 * and one written (the gateway reads its node and writes cli_nxt), the MACs
 * swapped, XDP_TX.  bench_hits counts the flows found: every run must find
 * one.  max_entries is set to the benchmark's --flows before load. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct bench_flow_key);
	__type(value, struct bench_flow_val);
} bench_flows SEC(".maps");

/* Runs of a floor program that did the floor's work: every run must.  Per
 * CPU: a plain add (an atomic one would cost the floors a locked
 * instruction the paths they bound do not pay). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bench_hits SEC(".maps");

static __always_inline void bench_hit(void)
{
	__u32 zero = 0;
	__u64 *hits = bpf_map_lookup_elem(&bench_hits, &zero);
	if (hits)
		*hits += 1;
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 tmp[6];
	__builtin_memcpy(tmp, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, tmp, 6);
}

/* An XDP floor's end once its work is done: counted, the frame answered
 * as XDP_TX answers it (eth: checked to lie in the packet). */
static __always_inline int floor_done(struct ethhdr *eth)
{
	bench_hit();
	swap_macs(eth);
	return XDP_TX;
}

/* The 12-byte flow key of an IPv4 client's segment (addresses, then
 * ports, as they lie from offset 14 + 12) into k, once Ethernet, IPv4 and
 * TCP headers are known to lie in the frame; the frame, or NULL. */
static __always_inline void *floor_key(struct xdp_md *ctx, struct bench_flow_key *k)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;

	if (data + 14 + 20 + 20 > data_end)
		return NULL;
	__builtin_memcpy(k, data + 14 + 12, sizeof(*k));
	return data;
}

SEC("xdp")
int lookup_xdp(struct xdp_md *ctx)
{
	struct bench_flow_key k;
	struct bench_flow_val *v;
	void *data = floor_key(ctx, &k);

	if (!data)
		return XDP_DROP;
	v = bpf_map_lookup_elem(&bench_flows, &k);
	if (!v)
		return XDP_DROP;
	v->w[35] = v->w[3] + 1;
	return floor_done(data);
}

/* The floor of ack_many: the least a gateway does with an ACK flood's ACK
 * (a spoofed client's tuple, no flow) before it can drop it: find out that
 * no flow has its tuple, reading one entry of a filter in front of the flow
 * table.  The entry and bits of the 12-byte key as gw_ingress takes them
 * (vm_flow_bits_at: the same hash, a filter of flow_bits' size, so the
 * same spread over the same 512 KB), both halves tested; the filter here
 * is empty, so every run finds no flow and counts.  No parse, no gate, no
 * cookie, no flows map; the frame goes back with its MACs swapped (the
 * gateway drops it).  On ack_many's ring, in burst mode. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VM_FLOW_BITS_ENTRIES);
	__type(key, __u32);
	__type(value, struct flow_bits_val);
} bench_bits SEC(".maps");

_Static_assert(sizeof(struct bench_flow_key) == sizeof(struct flow_key), "bench_flow_key is a flow_key");

SEC("xdp")
int filter_floor_xdp(struct xdp_md *ctx)
{
	struct flow_key k;
	struct flow_bits_val *b;
	__u64 bits;
	__u32 i;
	void *data = floor_key(ctx, (struct bench_flow_key *)&k);

	if (!data)
		return XDP_DROP;
	vm_flow_bits_at(&k, &i, &bits);
	b = bpf_map_lookup_elem(&bench_bits, &i);
	if (!b || vm_flow_bits_either(b, bits))
		return XDP_DROP;
	return floor_done(data);
}

/* The floors of the paths that route a ClientHello.  Not gateway paths:
 * each does one thing that any program on that path must do, in the same
 * mode and on the same frames as the path's case, so that what the thing
 * alone costs stands next to the path's ratio to XDP_TX.
 *
 * route_floor_xdp (hello_no_route's frame, plain repeat): a name's route
 * looked up in a map of the gateway's routes map's type, flags, size, key
 * and value (a 64-bit name hash; the map holds as many routes as the
 * benchmark's gateway), the key taken from the frame so the lookup cannot
 * be hoisted; no parse, no hash of a name, no compare.  It finds none, as
 * hello_no_route finds none.  Then the MACs swapped, XDP_TX. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VM_ROUTES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct route_hkey);
	__type(value, struct route_ent);
} bench_routes SEC(".maps");

SEC("xdp")
int route_floor_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct route_hkey k;

	if (data + 14 + 20 + 20 + sizeof(k) > data_end)
		return XDP_DROP;
	__builtin_memcpy(&k, data + 14 + 20 + 20, sizeof(k));
	if (bpf_map_lookup_elem(&bench_routes, &k))
		return XDP_DROP;
	return floor_done(data);
}

/* insert_floor_xdp (hello_first_burst's ring of first hellos, burst mode):
 * a new connection's flow inserted into an LRU hash of the gateway's flows
 * map's size, fill, key and value size (bench_flows, as lookup_xdp's),
 * under its 12-byte key from the packet; the value copied from a zeroed
 * one, not built.  Each run's key is new (the round's are removed after
 * it, untimed, as for hello_first_burst). */
static struct bench_flow_val zero_flow;

SEC("xdp")
int insert_floor_xdp(struct xdp_md *ctx)
{
	struct bench_flow_key k;
	void *data = floor_key(ctx, &k);

	if (!data)
		return XDP_DROP;
	if (bpf_map_update_elem(&bench_flows, &k, &zero_flow, BPF_NOEXIST))
		return XDP_DROP;
	return floor_done(data);
}

/* encap_floor_tc (node_vm_live's frames through the veth, TC ingress): the
 * least a node's encapsulation to the gateway does with a VM's IPv4 packet
 * in TC: the room for the outer headers opened with bpf_skb_change_head
 * (as node_vm opens it for such a packet), a prebuilt outer Ethernet, IPv4,
 * UDP and Geneve header copied over it and the old Ethernet header, its
 * two lengths and the IPv4 checksum patched, the packet redirected to the
 * sink (bench_sink[0], set before the case).  No parse, no connection, no
 * translation. */
#define ENCAP_PUSH (20 + 8 + 8)      /* outer IPv4, UDP, Geneve; the outer Ethernet covers the inner one */
#define ENCAP_HDR (14 + ENCAP_PUSH)

struct encap_hdr {
	__u8 b[ENCAP_HDR];
	__u8 pad[64 - ENCAP_HDR];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct encap_hdr);
} bench_encap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_sink SEC(".maps");

/* The prebuilt header h over the room just opened at data (ENCAP_HDR
 * bytes, checked to lie in the packet), for an inner packet of inner
 * bytes: its two lengths and the IPv4 checksum patched; v6: the Geneve
 * protocol says IPv6. */
static __always_inline void encap_write(void *data, const struct encap_hdr *h, __u32 inner, const int v6)
{
	__builtin_memcpy(data, h->b, ENCAP_HDR);
	struct iphdr *ip = data + 14;
	struct udphdr *udp = data + 14 + 20;
	__u32 sum = (__u16)~ip->check + (__u16)bpf_htons(20 + 8 + 8 + inner);   /* prebuilt with tot_len 0 */
	ip->tot_len = bpf_htons(20 + 8 + 8 + inner);
	udp->len = bpf_htons(8 + 8 + inner);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = ~(__u16)(sum + (sum >> 16));
	if (v6)
		*(__u16 *)(data + 14 + 20 + 8 + 2) = bpf_htons(VM_GENEVE_PROTO_IP6);
}

/* encap_floor_tc's work, for it and the vm_path_floor programs: the
 * room, the header, the lengths and checksum, counted, redirected.  v6:
 * the inner packet is IPv6 (a constant per caller), so the outer IPv4
 * header changes the skb's family: the room is opened as node_vm opens it
 * then, with bpf_skb_adjust_room (the skb's protocol becomes the outer
 * one), and the Geneve protocol says IPv6. */
static __always_inline int encap_floor_do(struct __sk_buff *skb, const int v6)
{
	__u32 zero = 0, *sink = bpf_map_lookup_elem(&bench_sink, &zero);
	struct encap_hdr *h = bpf_map_lookup_elem(&bench_encap, &zero);
	__u32 inner = skb->len - 14;
	void *data, *data_end;

	if (!sink || !h)
		return 2; /* TC_ACT_SHOT */
	if (v6 ? bpf_skb_adjust_room(skb, ENCAP_PUSH, BPF_ADJ_ROOM_MAC,
				     BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP)
	       : bpf_skb_change_head(skb, ENCAP_PUSH, 0))
		return 2;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + ENCAP_HDR > data_end)
		return 2;
	encap_write(data, h, inner, v6);
	bench_hit();
	return bpf_redirect(*sink, 0);
}

/* encap_floor_xdp (established_ack's frame, restored as the established
 * cases are): the least an XDP gateway does to send a client's segment to
 * its node, the floor of the established rows: the room for the outer
 * headers opened with bpf_xdp_adjust_head (the one helper call left on the
 * gateway's established path), encap_floor_tc's prebuilt header copied over
 * it and the old Ethernet header, its lengths and checksum patched,
 * counted, XDP_TX.  No parse, no flow, no checks, no option, no next hop. */
SEC("xdp")
int encap_floor_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct encap_hdr *h = bpf_map_lookup_elem(&bench_encap, &zero);
	__u32 inner = frame_len(ctx) - 14;
	void *data, *data_end;

	if (!h || bpf_xdp_adjust_head(ctx, -ENCAP_PUSH))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ENCAP_HDR > data_end)
		return XDP_DROP;
	encap_write(data, h, inner, 0);
	bench_hit();
	return XDP_TX;
}

SEC("tc")
int encap_floor_tc(struct __sk_buff *skb)
{
	return encap_floor_do(skb, 0);
}

/* The vm_path_floor programs' last step before the encapsulation: the
 * sequence and the timestamp (opt: the NOP NOP TS block) moved by the
 * connection's deltas, the TCP checksum (a full one) updated for them and
 * for the address words' differences already in sum. */
static __always_inline void floor_seq_ts(struct tcphdr *tcp, __u32 *opt, __u32 seq_delta, __u32 ts_delta, __u64 sum)
{
	__u32 old = tcp->seq, new = bpf_htonl(bpf_ntohl(old) + seq_delta);

	sum += (__u64)(__u32)~old + new;
	tcp->seq = new;
	old = opt[1];
	new = bpf_htonl(bpf_ntohl(old) + ts_delta);
	sum += (__u64)(__u32)~old + new;
	opt[1] = new;
	tcp->check = ~vm_csum_fold(0xffff0000ull + (__u16)~tcp->check + sum);
}

/* vm_path_floor_tc (node_vm_live's frames, tc-live): the least a node does
 * with an established connection's segment from its VM, the whole path:
 * the Ethernet, IPv4 and TCP headers read in place (IPv4 without options,
 * TCP with the timestamp block a Linux VM sends: the frame's shape
 * checked, nothing else); the connection found in one read, a slot of a
 * per-CPU array by a hash of the tuple, its tuple compared; the source
 * address made the VIP, the sequence and the timestamp moved by the
 * connection's deltas, the IPv4 checksum and the TCP one (as a full
 * checksum) updated for the three; then encap_floor_tc's work.  No
 * generation, state or view checks, no window scaling, no checksum
 * offload's cases, no FIN or RST.  A CPU's slot is filed by the first run
 * that finds it empty (every later run on that CPU finds it). */
struct vm_floor_slot {
	__u32 vm, client;          /* the tuple as the VM's packet has it */
	__u16 vm_port, client_port;
	__u32 vip;
	__u32 seq_delta, ts_delta;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VM_REV_CACHE_SLOTS);   /* node_vm's conn_rev_cache's */
	__type(key, __u32);
	__type(value, struct vm_floor_slot);
} bench_vm_slots SEC(".maps");

SEC("tc")
int vm_path_floor_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + 14;
	struct tcphdr *tcp = data + 14 + 20;
	__u32 *opt = data + 14 + 20 + 20;
	struct vm_floor_slot *s;
	__u32 i, old, new;
	__u64 sum;

	if ((void *)(opt + 3) > data_end || eth->h_proto != bpf_htons(0x0800) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_TCP || tcp->doff != 8 ||
	    opt[0] != VM_W32(VM_TCPOPT_NOP, VM_TCPOPT_NOP, VM_TCPOPT_TS, VM_TCPOLEN_TS))
		return 2;
	i = ((ip->saddr * 0x85ebca6bu) ^ ip->daddr ^ ((__u32)tcp->source << 16 | tcp->dest)) * 0x9e3779b1u >>
	    (32 - VM_REV_CACHE_BITS);
	s = bpf_map_lookup_elem(&bench_vm_slots, &i);
	if (!s)
		return 2;
	if (s->vm != ip->saddr || s->client != ip->daddr || s->vm_port != tcp->source || s->client_port != tcp->dest) {
		s->vm = ip->saddr;
		s->client = ip->daddr;
		s->vm_port = tcp->source;
		s->client_port = tcp->dest;
		s->vip = bpf_htonl(0xc6126401);   /* 198.18.100.1 */
		s->seq_delta = 1000;
		s->ts_delta = 77;
	}
	old = ip->saddr;
	new = s->vip;
	vm_csum_replace4(&ip->check, old, new);
	ip->saddr = new;
	sum = (__u64)(__u32)~old + new;
	floor_seq_ts(tcp, opt, s->seq_delta, s->ts_delta, sum);
	return encap_floor_do(skb, 0);
}

/* vm_path_floor_v6_tc (node_vm_live_v6's frames, tc-live): vm_path_floor_tc
 * for an IPv6 client's connection over the IPv4 mesh: the IPv6 header
 * (without extension headers) and TCP with the timestamp block read in
 * place; the slot found by a hash of the tuple, the addresses folded
 * (xor of their words); both 16-byte addresses and the ports compared; the
 * source address made the VIP (four words), the sequence and the
 * timestamp moved, the TCP checksum (a full one) updated for the six
 * words; then the encapsulation as node_vm does it for an IPv6 packet
 * going out over IPv4 (encap_floor_do, v6).  No generation, state or view
 * checks, no window scaling, no checksum offload's cases, no FIN or RST. */
struct vm_floor_slot6 {
	__u32 vm[4], client[4];    /* the tuple as the VM's packet has it */
	__u16 vm_port, client_port;
	__u32 vip[4];
	__u32 seq_delta, ts_delta;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VM_REV_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct vm_floor_slot6);
} bench_vm_slots6 SEC(".maps");

SEC("tc")
int vm_path_floor_v6_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + 14;
	struct tcphdr *tcp = data + 14 + 40;
	__u32 *opt = data + 14 + 40 + 20;
	__u32 *sa = (__u32 *)&ip6->saddr, *da = (__u32 *)&ip6->daddr;
	struct vm_floor_slot6 *s;
	__u32 i, old, new;
	__u64 sum = 0;

	if ((void *)(opt + 3) > data_end || eth->h_proto != bpf_htons(0x86dd) || ip6->nexthdr != IPPROTO_TCP ||
	    tcp->doff != 8 || opt[0] != VM_W32(VM_TCPOPT_NOP, VM_TCPOPT_NOP, VM_TCPOPT_TS, VM_TCPOLEN_TS))
		return 2;
	i = (((sa[0] ^ sa[1] ^ sa[2] ^ sa[3]) * 0x85ebca6bu) ^ da[0] ^ da[1] ^ da[2] ^ da[3] ^
	     ((__u32)tcp->source << 16 | tcp->dest)) * 0x9e3779b1u >> (32 - VM_REV_CACHE_BITS);
	s = bpf_map_lookup_elem(&bench_vm_slots6, &i);
	if (!s)
		return 2;
	if (s->vm[0] != sa[0] || s->vm[1] != sa[1] || s->vm[2] != sa[2] || s->vm[3] != sa[3] ||
	    s->client[0] != da[0] || s->client[1] != da[1] || s->client[2] != da[2] || s->client[3] != da[3] ||
	    s->vm_port != tcp->source || s->client_port != tcp->dest) {
		__builtin_memcpy(s->vm, sa, 16);
		__builtin_memcpy(s->client, da, 16);
		s->vm_port = tcp->source;
		s->client_port = tcp->dest;
		s->vip[0] = bpf_htonl(0x20010db8);   /* 2001:db8:100::1 */
		s->vip[1] = bpf_htonl(0x01000000);
		s->vip[2] = 0;
		s->vip[3] = bpf_htonl(1);
		s->seq_delta = 1000;
		s->ts_delta = 77;
	}
#pragma unroll
	for (int w = 0; w < 4; w++) {
		old = sa[w];
		new = s->vip[w];
		sum += (__u64)(__u32)~old + new;
		sa[w] = new;
	}
	floor_seq_ts(tcp, opt, s->seq_delta, s->ts_delta, sum);
	return encap_floor_do(skb, 1);
}

char LICENSE[] SEC("license") = "GPL";

/* The same two things, lookup and insert, in a flow table kept as a BPF
 * array of slots (tools/bench_slots.h: a measurement of a design, not
 * one): slot_lookup_xdp on established_many's frames as lookup_xdp,
 * slot_insert_xdp on hello_first_burst's as insert_floor_xdp, the table
 * as large as the flows map (bench_slots_n, set before load) and as full.
 * A slot found by the key's hash and a probe of up to BENCH_SLOT_PROBES
 * slots after it; a free one claimed by a compare-and-swap of its owner
 * word.  The array's lookups are inlined by the verifier: no call. */
const volatile __u32 bench_slots_n = 262144;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 262144);
	__type(key, __u32);
	__type(value, struct bench_slot);
} bench_slots SEC(".maps");

/* The probe after the first runs in an open-coded iterator (the
 * verifier checks its body once, where a bounded loop of 64 probes would
 * be walked probe by probe); the first probe, where most keys are found
 * (0.5 probes after the first on average at half full), inline. */
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

static __always_inline int slot_is(const struct bench_slot *s, __u64 h, const struct bench_flow_key *k)
{
	return s->owner == h && s->key.client == k->client && s->key.vip == k->vip &&
	       s->key.client_port == k->client_port && s->key.vip_port == k->vip_port;
}

/* What slot s is to a probe for k (hash h): 1 the one sought (claim 0:
 * holding k; claim 1: free, now claimed for h), 0 not it, -1 the probe
 * ends (claim 0: a free slot, where k would have been). */
static __always_inline int slot_take(struct bench_slot *s, __u64 h, const struct bench_flow_key *k, int claim)
{
	if (claim)
		return !s->owner && !__sync_val_compare_and_swap(&s->owner, 0, h);
	if (!s->owner)
		return -1;
	return slot_is(s, h, k);
}

/* The slot holding k (claim 0) or a free slot claimed for h (claim 1) in
 * h's probe sequence, or NULL. */
static __always_inline struct bench_slot *slot_probe(__u64 h, const struct bench_flow_key *k, __u32 n, int claim)
{
	__u32 i = bench_slot_first(h, n);
	struct bench_slot *s = bpf_map_lookup_elem(&bench_slots, &i), *got = NULL;
	struct bpf_iter_num it;
	int *p, r;

	if (!s || (r = slot_take(s, h, k, claim)) < 0)
		return NULL;
	if (r)
		return s;
	bpf_iter_num_new(&it, 1, BENCH_SLOT_PROBES);
	while ((p = bpf_iter_num_next(&it))) {
		__u32 j = i + *p;
		j = j < n ? j : j - n;
		s = bpf_map_lookup_elem(&bench_slots, &j);
		if (!s || (r = slot_take(s, h, k, claim)) < 0)
			break;
		if (r) {
			got = s;
			break;
		}
	}
	bpf_iter_num_destroy(&it);
	return got;
}

SEC("xdp")
int slot_lookup_xdp(struct xdp_md *ctx)
{
	struct bench_flow_key k;
	struct bench_slot *s;
	void *data = floor_key(ctx, &k);

	if (!data)
		return XDP_DROP;
	s = slot_probe(bench_slot_hash(&k), &k, bench_slots_n, 0);
	if (!s)
		return XDP_DROP;
	s->val.w[35] = s->val.w[3] + 1;
	return floor_done(data);
}

SEC("xdp")
int slot_insert_xdp(struct xdp_md *ctx)
{
	struct bench_flow_key k;
	struct bench_slot *s;
	void *data = floor_key(ctx, &k);

	if (!data)
		return XDP_DROP;
	s = slot_probe(bench_slot_hash(&k), &k, bench_slots_n, 1);
	if (!s)
		return XDP_DROP;
	s->key = k;
	__builtin_memcpy(&s->val, &zero_flow, sizeof(s->val));
	return floor_done(data);
}

/* sni_floor_xdp (hello_no_route's frame, plain repeat): the least a
 * program does to route a ClientHello by its name: walk the record
 * (record and handshake headers, version, random, session id, cipher
 * suites, compression methods) and the extensions to server_name, read
 * the name eight bytes at a time in place (no copy of the payload),
 * lowercase it and hash it as it goes, and look the hash up in the routes
 * map's like (bench_routes).  No check beyond what reading in bounds
 * needs (no length agreement, no character check, no second record, no
 * cookie, no flow), no wildcard lookup after a miss, no answer: the frame
 * goes back with its MACs swapped.  It finds no route, as hello_no_route
 * finds none. */
#define SNI_MAX_EXT 32
#define SNI_AT(o, n)                                                     \
	({                                                               \
		__u8 *__q = rec + ((o) & 0x7ff);                         \
		if ((void *)(__q + (n)) > data_end)                      \
			return XDP_DROP;                                 \
		__q;                                                     \
	})
#define SNI_B16(q) ((__u32)(q)[0] << 8 | (q)[1])

SEC("xdp")
int sni_floor_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct route_hkey k;
	__u8 *rec, *q;
	__u32 o, ext_end, nl;
	__u64 h;

	if (data + 14 + 20 + 20 > data_end)
		return XDP_DROP;
	rec = data + 14 + 20 + ((((__u8 *)data)[14 + 20 + 12] >> 4) & 0xf) * 4;
	q = SNI_AT(0, 44);                                  /* record 5, handshake 4, version 2, random 32, sid len */
	o = 44 + q[43];
	o += 2 + SNI_B16(SNI_AT(o, 2));                     /* cipher suites */
	o += 1 + SNI_AT(o, 1)[0];                           /* compression methods */
	q = SNI_AT(o, 2);
	ext_end = o + 2 + SNI_B16(q);
	o += 2;
	for (int i = 0; i < SNI_MAX_EXT; i++) {
		q = SNI_AT(o, 4);
		if (SNI_B16(q) == 0)
			break;
		o += 4 + SNI_B16(q + 2);
		if (o >= ext_end)
			return XDP_DROP;
	}
	q = SNI_AT(o, 9);                                   /* type, length, list length, name type, name length */
	if (SNI_B16(q) != 0)
		return XDP_DROP;
	nl = SNI_B16(q + 7);
	o += 9;
	h = vm_name_hash_seed(nl);
	for (__u32 i = 0; i < 256 / 8; i++) {
		if (i * 8 > nl)           /* words 0 .. nl/8, as the routes key hashes them */
			break;
		__u64 x = 0, m = nl - i * 8 >= 8 ? ~0ULL : (1ULL << (8 * (nl - i * 8))) - 1;
		q = rec + ((o + i * 8) & 0x7ff);
		if (!m) {
			/* the zero word after a name of 8n bytes */
		} else if ((void *)(q + 8) <= data_end) {
			__builtin_memcpy(&x, q, 8);
		} else {
			/* the name ends the packet: the eight bytes that end
			 * with it, shifted down (a name of 8 bytes or more) */
			__u32 r = (nl - i * 8) & 7;
			if (nl < 8)
				return XDP_DROP;
			__builtin_memcpy(&x, SNI_AT(o + nl - 8, 8), 8);
			x >>= 8 * (8 - r);
		}
		x &= m;
		x |= vm_swar_in(x, 'A', 'Z') >> 2;          /* lowercase, eight at a time */
		h = vm_name_hash_word(h, x);
	}
	k.hash = vm_name_hash_final(h);
	if (bpf_map_lookup_elem(&bench_routes, &k))
		return XDP_DROP;
	return floor_done(data);
}
