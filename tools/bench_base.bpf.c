// SPDX-License-Identifier: Apache-2.0
/* Baselines for the micro benchmark: the least an XDP program that answers a
 * packet can do (swap MACs, XDP_TX), and the least a TC program can do. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

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

SEC("tc")
int base_tc(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "GPL";
