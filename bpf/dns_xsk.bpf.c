// SPDX-License-Identifier: Apache-2.0
/*
 * veil-dns's AF_XDP path: XDP on the interface named by xdp_interface.
 * IPv4/IPv6 UDP to one of the server's listen addresses and port, without
 * IPv4 options, fragments or IPv6 extension headers, goes to the AF_XDP
 * socket of the frame's queue (the XSK worker answers it); everything else
 * (ARP, ND, TCP, fragments, other addresses) passes to the kernel, as does
 * a query whose queue has no socket (the daemon's UDP socket answers it).
 */
#include "lib/common.h"
#include "../controlplane/dns/frame.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* queue index -> AF_XDP socket */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} dns_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct dns_listen_key);
	__type(value, __u32);
} dns_listen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_xdp_stats);
} dns_xdp_stats SEC(".maps");

/* the longest frame a UMEM frame holds (set before load) */
const volatile __u32 frame_max = 2048;

SEC("xdp")
int dns_xsk(struct xdp_md *ctx)
{
	void *data = XDP_DATA(ctx), *data_end = XDP_DATA_END(ctx);
	struct dns_frame f;
	struct dns_listen_key k = { 0 };
	__u32 zero = 0;
	struct dns_xdp_stats *st = bpf_map_lookup_elem(&dns_xdp_stats, &zero);
	int rc;

	if (!st)
		return XDP_PASS;
	rc = dns_frame_parse(data, data_end, &f);
	if (rc != DNS_FRAME_OK && rc != DNS_FRAME_BAD_LEN) {
		if (rc > 0 && rc < DNS_FRAME_NRC)
			st->pass[rc]++;
		return XDP_PASS;
	}
	__builtin_memcpy(k.addr, f.daddr, 16);
	k.port = f.dport;
	if (!bpf_map_lookup_elem(&dns_listen, &k)) {
		st->not_ours++;
		return XDP_PASS;
	}
	if ((__u32)((__u8 *)data_end - (__u8 *)data) > frame_max) {
		st->too_big++;
		return XDP_PASS;
	}
	/* a queue without a socket: XDP_PASS, the kernel's socket answers */
	if (bpf_redirect_map(&dns_xsks, ctx->rx_queue_index, XDP_PASS) != XDP_REDIRECT) {
		st->no_socket++;
		return XDP_PASS;
	}
	st->redirected++;
	return XDP_REDIRECT;
}
