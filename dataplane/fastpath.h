/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's behaviour in userspace, on plain packet buffers: what the
 * DPDK fast path runs per packet.  Same wire formats, same cookie, same
 * ClientHello parser (include/veil), same routes, same outcome counters as
 * gw_ingress / gw_return; tests/test_fastpath.c runs both on the same inputs
 * and requires byte-identical output (docs/wire-formats.md lists the fields
 * free to differ).
 *
 * Not here yet: multi-segment hello reassembly (a hello whose name is past
 * the first segment goes to the host stack, counted hello_partial; later
 * segments with no flow likewise, counted asm_handed), and the DPDK
 * application around it (EAL, ports, bursts, telemetry).
 */
#ifndef VEIL_FASTPATH_H
#define VEIL_FASTPATH_H

#include <stdint.h>
#include "veil.h"

#define VM_FP_MAX_ROUTES 65536
#define VM_FP_MAX_NEIGH  64

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
};

struct vm_fp_flow {
	struct flow_key key;
	struct flow_val val;
	uint64_t last_used;
	uint8_t used;
};

struct vm_fp {
	struct gw_config cfg;
	struct cookie_secret sec;
	struct vm_cfg_route *routes;   /* open addressing on the name, 2x capacity */
	uint32_t routes_cap;
	struct vm_cfg_vip vips[VM_CFG_MAX_VIPS];
	int nvips;
	struct vm_fp_neigh neigh[VM_FP_MAX_NEIGH];
	int nneigh;
	uint8_t port_mac[8][6];        /* our MAC on each port */
	struct vm_fp_flow *flows;      /* open addressing, LRU-ish eviction within a probe window */
	uint32_t flows_cap;            /* power of two */
	uint64_t tick;
	struct gw_stats st;
};

int vm_fp_init(struct vm_fp *fp, uint32_t flows_cap);
void vm_fp_free(struct vm_fp *fp);
/* Routes and VIPs as the gateway's config file says (replaces them). */
int vm_fp_set_routes(struct vm_fp *fp, const struct vm_gw_cfg *c);

/* Processes one packet in place.  *pkt may move back by up to 128 bytes
 * (encapsulation): the buffer must have that much headroom before it, and
 * room after it for a reply of up to 100 bytes.  Time in TAI nanoseconds. */
enum vm_fp_verdict vm_fp_ingress(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				 uint64_t tai_ns, uint16_t *out_port);
enum vm_fp_verdict vm_fp_return(struct vm_fp *fp, uint16_t in_port, uint8_t **pkt, uint32_t *len,
				uint16_t *out_port);

#endif
