/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DPDK gateway's packet path: workers, their queues, and how the
 * control plane's config generations reach them.  veil-gw-dpdk.c wraps it
 * in a daemon; tests/test_fastpath.c drives a worker through ring-backed
 * ports and holds its output byte-identical to the XDP programs.
 */
#ifndef VEIL_DPDK_DP_H
#define VEIL_DPDK_DP_H

#include <stdatomic.h>
#include <rte_common.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

#include "fastpath.h"

#define VM_DP_BURST       32
#define VM_DP_MAX_WORKERS 16
#define VM_DP_INBOX       4096
#define VM_DP_HEADROOM    128    /* vm_fp_*: encapsulation pushes this much at most */
#define VM_DP_TAILROOM    100    /* and a reply grows the packet this much at most */
#define VM_DP_CLOCK_US    20     /* the packets' time is at most this old */
#define VM_DP_SWEEP_MOST  1024   /* flow slots a worker's sweep looks at in one go, at most */

/* What a worker counts besides the gateway's outcome counters. */
#define VM_DP_STATS(X) \
	X(rx) X(tx) X(tx_dropped) X(steered_out) X(steered_in) X(steer_dropped) \
	X(passed) X(dropped) X(multiseg) X(no_room) X(emit_nombuf) X(to_kernel) X(from_kernel)
struct vm_dp_stats {
#define X(n) uint64_t n;
	VM_DP_STATS(X)
#undef X
};
extern const char *const vm_dp_stat_names[];
#define VM_DP_STAT_COUNT (sizeof(struct vm_dp_stats) / sizeof(uint64_t))

struct vm_dp_worker {
	struct vm_fp fp;                   /* its flows, its counters */
	unsigned int lcore;
	uint16_t q;                        /* its RX/TX queue on every port */
	struct rte_ring *inbox;            /* packets of flows it owns, from other workers */
	struct rte_eth_dev_tx_buffer *txb[4];  /* client, mesh, and their exception ports */
	_Atomic uint64_t seen_gen;
	/* the worker's clock (vm_dp_poll): CLOCK_TAI read again once the TSC
	 * says VM_DP_CLOCK_US have passed, the value kept in between */
	uint64_t clk_ns, clk_tsc, clk_period;
	uint64_t tx_unsent;                /* this poll's tx_dropped, to take off tx */
	/* requests from the control plane, answered at the next poll */
	_Atomic int drop_req;              /* flow drop: 1 asked, 2 done */
	struct flow_tuple drop_tuple;
	int drop_found;
	struct vm_dp_stats d;
	uint64_t swept_ns;                 /* the clock at its sweep's last share (vm_fp_sweep) */
} __rte_cache_aligned;

#define VM_DP_NO_PORT 0xffff
struct vm_dp {
	uint16_t port[2];                  /* client, mesh */
	/* Exception ports (a TAP each, say): what is not the gateway's goes
	 * to the kernel through them, and what the kernel sends on them goes
	 * out of the port they stand for.  VM_DP_NO_PORT: none, such packets
	 * are freed (af_packet / af_xdp copy vdevs, where the kernel has its
	 * own copy). */
	uint16_t exc[2];
	int nw;
	struct vm_dp_worker *w[VM_DP_MAX_WORKERS];
	_Atomic(struct vm_fp_conf *) conf; /* the current generation */
	_Atomic uint64_t gen;
	struct rte_mempool *pool;          /* for the packets a worker makes (reassembled hellos) */
	uint32_t idle_us;
	/* each worker retires its closed and reset flows (vm_fp_sweep) once
	 * its clock moves on, at most this many slots at a time; 0: never
	 * (the tests, which run the sweep by their own clock) */
	uint32_t sweep_most;
	volatile int quit;
};
extern struct vm_dp vm_dp;

/* A worker for queue q on lcore; with an inbox when several share flows.
 * NULL with rte_errno set. */
struct vm_dp_worker *vm_dp_worker_new(unsigned int lcore, uint16_t q, uint32_t flows, uint32_t hellos, int inbox);
void vm_dp_worker_free(struct vm_dp_worker *w);
/* One poll of the worker's queues, inbox and requests; packets seen. */
int vm_dp_poll(struct vm_dp_worker *w);
/* rte_eal_remote_launch() body: polls until vm_dp.quit. */
int vm_dp_worker_loop(void *arg);
/* Swaps in generation c; returns the old one once no running worker can
 * still be using it (the caller frees it). */
struct vm_fp_conf *vm_dp_publish(struct vm_fp_conf *c);
/* Counters summed over workers (racy reads of 64-bit words: fine). */
void vm_dp_sum(struct gw_stats *s, struct vm_dp_stats *d);

#endif
