// SPDX-License-Identifier: Apache-2.0
/* The DPDK gateway's packet path (see dp.h): per packet, the packet library
 * the XDP programs are built from (vm_fp_*, dataplane/fp_env.c); around it
 * bursts, the hand-over of packets to the worker that owns their flow, and
 * the swap of config generations.  Nothing here allocates per packet. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memory.h>
#include <rte_prefetch.h>

#include "dp.h"

struct vm_dp vm_dp = { .exc = { VM_DP_NO_PORT, VM_DP_NO_PORT }, .sweep_most = VM_DP_SWEEP_MOST };

const char *const vm_dp_stat_names[] = {
#define X(n) #n,
	VM_DP_STATS(X)
#undef X
};

static uint64_t tai_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_TAI, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void tx_dropped(struct rte_mbuf **pkts, uint16_t n, void *arg)
{
	struct vm_dp_worker *w = arg;
	w->d.tx_dropped += n;
	w->tx_unsent += n;    /* taken off tx at the end of the poll */
	rte_pktmbuf_free_bulk(pkts, n);
}

static inline int role_of(uint16_t port)
{
	return port == vm_dp.port[0] ? 0 : 1;
}

/* The tx buffer of a port: 0 client, 1 mesh, 2 and 3 their exception ports. */
static inline int txb_of(uint16_t port)
{
	return port == vm_dp.port[0] ? 0 : port == vm_dp.port[1] ? 1 : port == vm_dp.exc[0] ? 2 : 3;
}

/* A packet the packet library cannot take: counted, freed. */
static __rte_noinline void refuse(struct vm_dp_worker *w, struct rte_mbuf *m)
{
	if (m->nb_segs != 1)
		w->d.multiseg++;
	else
		w->d.no_room++;
	rte_pktmbuf_free(m);
}

/* One packet of port in (role 0 client, 1 mesh) through the packet
 * library; 1 when it went into a tx buffer, an exception port's too (the
 * caller counts tx). */
static inline int handle(struct vm_dp_worker *w, struct rte_mbuf *m, uint16_t in, int role, uint64_t now,
			 const struct vm_fp_hint *hint)
{
	uint16_t out = in;

	if (unlikely(m->nb_segs != 1 || rte_pktmbuf_headroom(m) < VM_DP_HEADROOM ||
		     rte_pktmbuf_tailroom(m) < VM_DP_TAILROOM)) {
		refuse(w, m);
		return 0;
	}
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
	uint32_t len = m->data_len;
	enum vm_fp_verdict v = role == 0 ? vm_fp_ingress_hint(&w->fp, in, &p, &len, now, &out, hint)
					 : vm_fp_return_hint(&w->fp, in, &p, &len, &out, hint);
	if (likely(v == VM_FP_FWD || v == VM_FP_TX)) {
		m->data_off = (uint16_t)(p - (uint8_t *)m->buf_addr);
		m->data_len = (uint16_t)len;
		m->pkt_len = len;
		m->ol_flags = 0;
		rte_eth_tx_buffer(out, w->q, w->txb[txb_of(out)], m);
		return 1;
	}
	if (v == VM_FP_PASS) {
		/* Not the gateway's: to the kernel through the exception port;
		 * without one (af_packet vdevs) the kernel has its own copy. */
		w->d.passed++;
		if (vm_dp.exc[role] != VM_DP_NO_PORT) {
			w->d.to_kernel++;
			rte_eth_tx_buffer(vm_dp.exc[role], w->q, w->txb[2 + role], m);
			return 1;
		}
	} else {
		w->d.dropped++;
	}
	rte_pktmbuf_free(m);
	return 0;
}

/* The time of a poll's packets: CLOCK_TAI (a vDSO call, kvm-clock's in a
 * VM) once the TSC says VM_DP_CLOCK_US have passed, else the last one. */
static inline uint64_t worker_now(struct vm_dp_worker *w)
{
	uint64_t t = rte_rdtsc();

	if (unlikely(t - w->clk_tsc >= w->clk_period)) {
		w->clk_ns = tai_ns();
		w->clk_tsc = t;
	}
	return w->clk_ns;
}

/* Once per clock reading: the share of the flow table that the time since
 * the last share is of VM_SWEEP_EVERY_S (at least a slot, at most
 * vm_dp.sweep_most), so the whole table is looked at about once a period. */
static __rte_noinline void sweep_share(struct vm_dp_worker *w)
{
	const uint64_t every_ns = (uint64_t)VM_SWEEP_EVERY_S * 1000000000ULL;
	uint64_t since = w->swept_ns && w->clk_ns > w->swept_ns ? w->clk_ns - w->swept_ns : 0;
	uint64_t n = since >= every_ns ? w->fp.flows_cap : w->fp.flows_cap * since / every_ns + 1;

	w->swept_ns = w->clk_ns;
	vm_fp_sweep(&w->fp, w->clk_ns, n < vm_dp.sweep_most ? (uint32_t)n : vm_dp.sweep_most);
}

int vm_dp_poll(struct vm_dp_worker *w)
{
	/* up to a burst from each of the two ports may belong to one owner */
	struct rte_mbuf *pkts[VM_DP_BURST], *steer[VM_DP_MAX_WORKERS][2 * VM_DP_BURST];
	unsigned int nsteer[VM_DP_MAX_WORKERS] = { 0 };
	struct vm_fp_hint hint[VM_DP_BURST];
	uint8_t hnone[VM_DP_BURST];
	uint64_t now = worker_now(w);
	uint64_t g = atomic_load_explicit(&vm_dp.gen, memory_order_acquire);
	int seen = 0;
	uint64_t tx = 0;

	if (g != atomic_load_explicit(&w->seen_gen, memory_order_relaxed)) {
		w->fp.c = atomic_load_explicit(&vm_dp.conf, memory_order_acquire);
		atomic_store_explicit(&w->seen_gen, g, memory_order_release);
	}
	for (int r = 0; r < 2; r++) {
		uint16_t in = vm_dp.port[r];
		uint16_t n = rte_eth_rx_burst(in, w->q, pkts, VM_DP_BURST);
		uint16_t own[VM_DP_BURST];
		if (!n)
			continue;
		w->d.rx += n;
		seen += n;
		if (vm_dp.nw == 1) {
			/* No owner to find; the burst's client packets' flows
			 * first all the same: each one's key hashed and its
			 * flow slot on its way to the cache while the others
			 * are looked at (the library then takes the hash as its
			 * own).  Not the nodes' packets: their key is behind the
			 * Geneve headers, which the library would parse twice,
			 * and the bench has no return case to weigh that by. */
			/* under an ACK flood (the worker's flow gate on: a
			 * quarter of its last window's judged lookups failed
			 * their cookie)
			 * the flow filter's lines too: most of the burst will
			 * want them */
			int flood = !r && w->fp.gate.on;
			for (uint16_t i = 0; i < n; i++) {
				pkts[i]->port = in;   /* not every PMD sets it */
				hnone[i] = r || vm_fp_hint_ahead(&w->fp, r, rte_pktmbuf_mtod(pkts[i], const uint8_t *),
								pkts[i]->data_len, &hint[i]);
				if (flood && !hnone[i])
					vm_fp_bits_prefetch(&w->fp, &hint[i]);
			}
			for (uint16_t i = 0; i < n; i++)
				tx += handle(w, pkts[i], in, r, now, hnone[i] ? NULL : &hint[i]);
			continue;
		}
		/* The whole burst's flows first: the owner of each packet, and
		 * the flow slots of this worker's ones on their way to the
		 * cache while the others are looked at. */
		for (uint16_t i = 0; i < n; i++) {
			pkts[i]->port = in;
			if (vm_fp_hint_of(r, rte_pktmbuf_mtod(pkts[i], const uint8_t *), pkts[i]->data_len, &hint[i])) {
				own[i] = w->q;
				hnone[i] = 1;
				continue;
			}
			hnone[i] = 0;
			own[i] = hint[i].hash % (unsigned int)vm_dp.nw;
			if (own[i] == w->q)
				vm_fp_flow_prefetch(&w->fp, hint[i].hash);
		}
		for (uint16_t i = 0; i < n; i++) {
			if (own[i] == w->q)
				tx += handle(w, pkts[i], in, r, now, hnone[i] ? NULL : &hint[i]);
			else
				steer[own[i]][nsteer[own[i]]++] = pkts[i];
		}
	}
	for (int o = 0; o < vm_dp.nw; o++) {
		if (!nsteer[o])
			continue;
		unsigned int sent = rte_ring_enqueue_burst(vm_dp.w[o]->inbox, (void **)steer[o], nsteer[o], NULL);
		w->d.steered_out += sent;
		if (sent < nsteer[o]) {
			w->d.steer_dropped += nsteer[o] - sent;
			rte_pktmbuf_free_bulk(steer[o] + sent, nsteer[o] - sent);
		}
	}
	/* what the kernel sends through the exception ports, out as it is */
	for (int r = 0; r < 2; r++) {
		if (vm_dp.exc[r] == VM_DP_NO_PORT)
			continue;
		uint16_t n = rte_eth_rx_burst(vm_dp.exc[r], w->q, pkts, VM_DP_BURST);
		w->d.from_kernel += n;
		seen += n;
		tx += n;
		for (uint16_t i = 0; i < n; i++)
			rte_eth_tx_buffer(vm_dp.port[r], w->q, w->txb[r], pkts[i]);
	}
	if (w->inbox) {
		unsigned int n = rte_ring_dequeue_burst(w->inbox, (void **)pkts, VM_DP_BURST, NULL);
		w->d.steered_in += n;
		seen += n;
		for (unsigned int i = 0; i < n; i++)
			tx += handle(w, pkts[i], pkts[i]->port, role_of(pkts[i]->port), now, NULL);
	}
	for (int r = 0; r < 2; r++) {
		rte_eth_tx_buffer_flush(vm_dp.port[r], w->q, w->txb[r]);
		if (vm_dp.exc[r] != VM_DP_NO_PORT)
			rte_eth_tx_buffer_flush(vm_dp.exc[r], w->q, w->txb[2 + r]);
	}
	/* tx once per poll: what went into the buffers (every port's, the
	 * exception ports' too) less what they could not send (tx_dropped),
	 * in one store */
	w->d.tx += tx - w->tx_unsent;
	w->tx_unsent = 0;

	if (unlikely(w->clk_ns != w->swept_ns) && vm_dp.sweep_most)
		sweep_share(w);

	int req = atomic_load_explicit(&w->drop_req, memory_order_acquire);
	if (req == 1) {
		w->drop_found = vm_fp_flow_drop(&w->fp, &w->drop_tuple) == 0;
		atomic_store_explicit(&w->drop_req, 2, memory_order_release);
	}
	return seen;
}

int vm_dp_worker_loop(void *arg)
{
	struct vm_dp_worker *w = arg;
	unsigned int idle = 0;

	while (!vm_dp.quit) {
		if (vm_dp_poll(w)) {
			idle = 0;
		} else if (vm_dp.idle_us && ++idle > 1000) {
			usleep(vm_dp.idle_us);
		}
	}
	return 0;
}

/* The kept segments of a reassembled hello, each a new packet to the mesh. */
static void emit(void *arg, uint16_t port, const uint8_t *frame, uint32_t len)
{
	struct vm_dp_worker *w = arg;
	struct rte_mbuf *m = rte_pktmbuf_alloc(vm_dp.pool);
	char *d = m ? rte_pktmbuf_append(m, len) : NULL;

	if (!d) {
		w->d.emit_nombuf++;
		rte_pktmbuf_free(m);
		return;
	}
	memcpy(d, frame, len);
	w->d.tx++;
	rte_eth_tx_buffer(port, w->q, w->txb[txb_of(port)], m);
}

/* The workers' tables in the EAL's memory: hugepages when it has them
 * (fewer TLB misses on a large flow table), else the C heap. */
static void *dp_zalloc(size_t size, size_t align, void *arg)
{
	void *p = rte_zmalloc_socket("veil_table", size, align, (int)(intptr_t)arg);
	return p ? p : vm_fp_heap.zalloc(size, align, NULL);
}

static void dp_free(void *p, void *arg)
{
	if (p && rte_mem_virt2memseg(p, NULL))
		rte_free(p);
	else
		vm_fp_heap.free(p, NULL);
}

struct vm_dp_worker *vm_dp_worker_new(unsigned int lcore, uint16_t q, uint32_t flows, uint32_t hellos, int inbox)
{
	int socket = rte_lcore_to_socket_id(lcore);
	struct vm_dp_worker *w = rte_zmalloc_socket("veil_worker", sizeof(*w), RTE_CACHE_LINE_SIZE, socket);
	char name[32];

	if (!w)
		goto nomem;
	const struct vm_fp_mem dp_mem = { dp_zalloc, dp_free, (void *)(intptr_t)socket };
	w->lcore = lcore;
	w->q = q;
	w->clk_period = rte_get_tsc_hz() / (1000000 / VM_DP_CLOCK_US);
	if (vm_fp_init_mem(&w->fp, flows, hellos, &dp_mem))
		goto nomem;
	w->fp.emit = emit;
	w->fp.emit_arg = w;
	if (inbox) {
		snprintf(name, sizeof(name), "veil_inbox_%u", q);
		if (!(w->inbox = rte_ring_create(name, VM_DP_INBOX, socket, RING_F_SC_DEQ)))
			goto fail;
	}
	for (int r = 0; r < 4; r++) {
		w->txb[r] = rte_zmalloc_socket("veil_txb", RTE_ETH_TX_BUFFER_SIZE(VM_DP_BURST), 0, socket);
		if (!w->txb[r])
			goto nomem;
		rte_eth_tx_buffer_init(w->txb[r], VM_DP_BURST);
		rte_eth_tx_buffer_set_err_callback(w->txb[r], tx_dropped, w);
	}
	return w;
nomem:
	rte_errno = ENOMEM;
fail:
	vm_dp_worker_free(w);
	return NULL;
}

void vm_dp_worker_free(struct vm_dp_worker *w)
{
	if (!w)
		return;
	vm_fp_free(&w->fp);
	rte_ring_free(w->inbox);
	for (int r = 0; r < 4; r++)
		rte_free(w->txb[r]);
	rte_free(w);
}

struct vm_fp_conf *vm_dp_publish(struct vm_fp_conf *c)
{
	struct vm_fp_conf *old = atomic_exchange_explicit(&vm_dp.conf, c, memory_order_acq_rel);
	uint64_t g = atomic_fetch_add_explicit(&vm_dp.gen, 1, memory_order_acq_rel) + 1;

	for (int i = 0; i < vm_dp.nw; i++) {
		struct vm_dp_worker *w = vm_dp.w[i];
		if (rte_eal_get_lcore_state(w->lcore) != RUNNING || w->lcore == rte_lcore_id())
			continue;     /* not started (it reads vm_dp.conf when it does), or ourselves */
		while (atomic_load_explicit(&w->seen_gen, memory_order_acquire) < g && !vm_dp.quit)
			rte_pause();
	}
	return old;
}

void vm_dp_sum(struct gw_stats *s, struct vm_dp_stats *d)
{
	memset(s, 0, sizeof(*s));
	memset(d, 0, sizeof(*d));
	for (int i = 0; i < vm_dp.nw; i++) {
		const uint64_t *a = (const uint64_t *)&vm_dp.w[i]->fp.st, *b = (const uint64_t *)&vm_dp.w[i]->d;
		for (size_t k = 0; k < sizeof(*s) / sizeof(uint64_t); k++)
			((uint64_t *)s)[k] += __atomic_load_n(&a[k], __ATOMIC_RELAXED);
		for (size_t k = 0; k < VM_DP_STAT_COUNT; k++)
			((uint64_t *)d)[k] += __atomic_load_n(&b[k], __ATOMIC_RELAXED);
	}
}
