// SPDX-License-Identifier: Apache-2.0
/*
 * Gateway return path (mesh-facing interface): Geneve from a node carrying a
 * VM's packet for a flow we own is decapsulated and sent to the client from
 * the VIP, using the L2 neighbour recorded when the flow was created.
 * Everything else is handed to the kernel.
 *
 * The logic is the packet library's (vm_gw_return, include/veil/gw_ret.h),
 * as the DPDK fast path runs it; this file is its XDP environment.
 */
#include "lib/gw_maps.h"
#include "lib/mesh.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct vm_gw_env {
	struct xdp_md *ctx;
};

#define VM_V_DROP XDP_DROP
#define VM_V_PASS XDP_PASS

VM_INLINE void *vm_env_data(struct vm_gw_env *e) { return XDP_DATA(e->ctx); }
VM_INLINE void *vm_env_data_end(struct vm_gw_env *e) { return XDP_DATA_END(e->ctx); }
VM_INLINE void *vm_env_loadctx(struct vm_gw_env *e) { return e->ctx; }
VM_INLINE int vm_env_pull(struct vm_gw_env *e, __u32 n) { return bpf_xdp_adjust_head(e->ctx, (int)n); }

VM_INLINE const struct gw_config *vm_env_cfg(struct vm_gw_env *e)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&gw_config, &zero);
}

VM_INLINE const struct flow_seed *vm_env_flow_seed(struct vm_gw_env *e) { return gw_flow_seed(); }

VM_INLINE struct flow_val *vm_env_flow_get(struct vm_gw_env *e, const struct flow_key *k)
{
	return gw_flow_get(k);
}

VM_INLINE void vm_env_flow_del(struct vm_gw_env *e, const struct flow_key *k, struct flow_val *f)
{
	gw_flow_del(k);
}

/* The held hello (gw_asm's hello_asm entry) is no longer needed. */
VM_INLINE void vm_env_held_drop(struct vm_gw_env *e, const struct flow_key *k)
{
	gw_asm_drop(k);
}

VM_INLINE int vm_env_redirect(struct vm_gw_env *e, __u32 ifindex)
{
	return bpf_redirect(ifindex, 0);
}

#include "veil/gw_ret.h"

SEC("xdp")
int gw_return(struct xdp_md *ctx)
{
	struct vm_gw_env e = { .ctx = ctx };

	return vm_gw_return(&e, gw_stats_get());
}
