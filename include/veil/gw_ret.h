/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's return path, written once (see include/veil/gw_path.h for
 * the ingress and the idea).  Hooks the includer defines first, as there:
 *   VM_V_DROP, VM_V_PASS; vm_env_data, vm_env_data_end, vm_env_pull,
 *   vm_env_cfg, vm_env_flow_seed, vm_env_flow_get, vm_env_flow_del, and
 *   void vm_env_held_drop(e, const struct flow_key *)  the held hello's copy
 *   int vm_env_redirect(e, __u32 ifindex)   the verdict: to the client's port
 *   VM_LOAD_BYTES, and void *vm_env_loadctx(e) the context it takes
 *   (include/veil/geneve.h)
 */
#ifndef VEIL_GW_RET_H
#define VEIL_GW_RET_H

#include "gw.h"
#include "geneve.h"

/* ---------- gw_return: the mesh-facing side ---------- */

/* Geneve from a node carrying a VM's packet for a flow we own: decapsulated
 * and sent to the client from the VIP, through the L2 neighbour recorded
 * when the flow was created.  Everything else is the host's. */
VM_INLINE int vm_gw_return(struct vm_gw_env *e, struct gw_stats *st)
{
	struct vm_mesh_in m = {};
	const struct gw_config *cfg;
	struct vm_pkt p = {};
	struct flow_key k VM_KEY_ALIGNED;   /* stored as words (vm_flow_key_make) */
	struct flow_val *f;
	struct vm_eth *eth;
	void *data, *data_end;
	int rc;

	cfg = vm_env_cfg(e);
	if (!cfg) {
		VM_GW_COUNT(st, ret_pass);
		return VM_V_PASS;
	}
	rc = vm_mesh_parse(vm_env_loadctx(e), vm_env_data(e), vm_env_data_end(e), cfg->underlay4, cfg->has_underlay4,
			   cfg->underlay6, cfg->has_underlay6, &m);
	if (rc == VM_MESH_NOT_OURS) {
		VM_GW_COUNT(st, ret_pass);
		return VM_V_PASS;
	}
	if (rc != VM_MESH_OK || vm_env_pull(e, m.strip & VM_MESH_STRIP_MASK)) {
		VM_GW_COUNT(st, ret_malformed);
		return VM_V_DROP;
	}
	data = vm_env_data(e);
	data_end = vm_env_data_end(e);
	eth = data;
	if ((void *)(eth + 1) > data_end) {
		VM_GW_COUNT(st, ret_malformed);
		return VM_V_DROP;
	}
	eth->proto = vm_htons(m.ifamily == VM_AF_INET ? VM_ETH_P_IP : VM_ETH_P_IPV6);
	if (vm_parse_ip_tcp(data, data_end, (__u32)((__u8 *)data_end - (__u8 *)data), VM_ETH_HLEN, eth->proto,
			    &p) != VM_PARSE_OK) {
		VM_GW_COUNT(st, ret_malformed);
		return VM_V_DROP;
	}
	/* The VM's packet goes VIP -> client: the flow is keyed by the client. */
	vm_flow_key_rev(&p, p.family == VM_AF_INET ? 0 : vm_env_flow_seed(e), &k);
	f = vm_env_flow_get(e, &k);
	if (!f) {
		VM_GW_COUNT(st, ret_no_flow);
		return VM_V_DROP;
	}
	if (!VM_FLOW_IS(f, p.family, p.daddr, p.saddr)) {
		/* another connection's flow under this key: not this packet's client */
		VM_GW_COUNT(st, flow_collision);
		return VM_V_DROP;
	}
	__u32 ifindex = f->client_ifindex;
	__builtin_memcpy(eth->dst, f->client_mac, 6);
	__builtin_memcpy(eth->src, f->vip_mac, 6);
	/* The VM acknowledges the whole hello: the gateway's copy is no longer
	 * needed (the ack is in the client's space: the node keeps it so). */
	if (f->held_len && (p.flags & VM_TCP_ACK)) {
		__u32 got = p.ack - (f->client_isn + 1), held = f->held_len & VM_HELD_LEN_MASK;
		if (got >= held && got <= VM_ASM_BYTES + VM_ASM_SEG_MAX) {
			if (!(f->held_len & VM_HELD_LOST)) {
				vm_env_held_drop(e, &k);
				VM_GW_COUNT(st, held_released);
			}
			f->held_len = 0;
		} else if ((f->held_len & VM_HELD_LOST) && got < held && vm_gw_held_dup(f, &p)) {
			/* The copy is gone and the VM still lacks hello bytes
			 * after the client's retransmissions reached it: nobody
			 * has them (the client had our ACK), so the connection
			 * cannot complete.  The VM's ACK goes on as a RST at its
			 * sequence, the client's next expected (a TLS server
			 * sends nothing before the whole hello). */
			if (vm_tcp_to_rst(data, data_end, &p)) {
				VM_GW_COUNT(st, ret_malformed);
				return VM_V_DROP;
			}
			vm_env_flow_del(e, &k, f);
			VM_GW_COUNT(st, held_lost_reset);
			VM_GW_COUNT(st, ret_forwarded);
			return vm_env_redirect(e, ifindex);
		}
	}
	if (p.flags & VM_TCP_RST) {
		vm_env_flow_del(e, &k, f);
		VM_GW_COUNT(st, flow_reset);
	} else {
		/* The VM sends after its client's RST marked the flow: it kept
		 * the connection (a challenge ACK, RFC 5961), or the segment
		 * crossed the RST, which the client's TCP then answers with
		 * a RST at its sequence again: the mark follows the last word. */
		if (f->fin & VM_FIN_RST) {
			f->fin &= ~VM_FIN_RST;
			VM_GW_COUNT(st, rst_refused);
		}
		/* where the VM's TCP stands in the client's sequence: a
		 * client RST there is one it takes (written only when it
		 * moves: a download's segments all carry the same) */
		if ((p.flags & VM_TCP_ACK) && f->vm_ack != p.ack)
			f->vm_ack = p.ack;
		if ((p.flags & VM_TCP_FIN) && vm_fin_seen(&f->fin, VM_FIN_VM))
			VM_GW_COUNT(st, flow_closed);
	}
	VM_GW_COUNT(st, ret_forwarded);
	return vm_env_redirect(e, ifindex);
}

#endif /* VEIL_GW_RET_H */
