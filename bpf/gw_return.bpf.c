// SPDX-License-Identifier: Apache-2.0
/*
 * Gateway return path (mesh-facing interface): Geneve from a node carrying a
 * VM's packet for a flow we own is decapsulated and sent to the client from
 * the VIP, using the L2 neighbour recorded when the flow was created.
 * Everything else is handed to the kernel.
 */
#include "lib/gw_maps.h"
#include "lib/mesh.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int gw_return(struct xdp_md *ctx)
{
	struct gw_stats *st = gw_stats_get();
	struct vm_mesh_in m = {};
	struct gw_config *cfg;
	struct vm_pkt p = {};
	struct flow_key k = {};
	struct flow_val *f;
	struct ethhdr *eth;
	void *data, *data_end;
	__u32 zero = 0;
	int rc;

	cfg = bpf_map_lookup_elem(&gw_config, &zero);
	if (!cfg) {
		GW_COUNT(st, ret_pass);
		return XDP_PASS;
	}
	rc = vm_xdp_mesh_take(ctx, cfg->underlay4, cfg->has_underlay4, cfg->underlay6, cfg->has_underlay6,
			      &m, &p);
	if (rc == VM_MESH_NOT_OURS) {
		GW_COUNT(st, ret_pass);
		return XDP_PASS;
	}
	if (rc != VM_MESH_OK) {
		GW_COUNT(st, ret_malformed);
		return XDP_DROP;
	}
	data = XDP_DATA(ctx);
	data_end = XDP_DATA_END(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end) {
		GW_COUNT(st, ret_malformed);
		return XDP_DROP;
	}
	/* The VM's packet goes VIP -> client: the flow is keyed by the client. */
	__builtin_memcpy(k.client, p.daddr, 16);
	__builtin_memcpy(k.vip, p.saddr, 16);
	k.client_port_be = p.dport;
	k.vip_port_be = p.sport;
	k.family = p.family;
	f = bpf_map_lookup_elem(&flows, &k);
	if (!f) {
		GW_COUNT(st, ret_no_flow);
		return XDP_DROP;
	}
	/* The VM acknowledges the whole hello: the gateway's copy is no longer
	 * needed (the ack is in the client's space: the node keeps it so). */
	if (f->held_len && (p.flags & TCP_ACK) && p.ack - (f->client_isn + 1) >= f->held_len &&
	    p.ack - (f->client_isn + 1) <= VM_ASM_BYTES + VM_ASM_SEG_MAX) {
		f->held_len = 0;
		bpf_map_delete_elem(&hello_asm, &k);
		GW_COUNT(st, held_released);
	}
	__u32 ifindex = f->client_ifindex;
	__builtin_memcpy(eth->h_dest, f->client_mac, 6);
	__builtin_memcpy(eth->h_source, f->vip_mac, 6);
	if (p.flags & TCP_RST) {
		bpf_map_delete_elem(&flows, &k);
		GW_COUNT(st, flow_reset);
	} else if ((p.flags & TCP_FIN) && vm_fin_seen(&f->fin, VM_FIN_VM)) {
		GW_COUNT(st, flow_closed);
	}
	GW_COUNT(st, ret_forwarded);
	return bpf_redirect(ifindex, 0);
}
