/* SPDX-License-Identifier: Apache-2.0 */
/*
 * veil-dns's workers, as the daemon (veil-dns.c: UDP and TCP) and the AF_XDP
 * path (xsk.c) share them: one query function (answer(): the memo, then
 * dns_answer()), one rate limiter, one set of counters, one way to hold the
 * current snapshot.
 */
#ifndef VEIL_DNS_SERVER_H
#define VEIL_DNS_SERVER_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dns/dns.h"
#include "dns/frame.h"
#include "dns/memo.h"

#define MAX_WORKERS 256
#define MEMO_SLOTS 4096
#define NQT 8
#define GW_SLOTS 1024

/* Why the XSK worker dropped a frame without an answer (beyond the query
 * path's own drops): the parse outcomes, then these. */
enum {
	XSK_DROP_BAD_CSUM = DNS_FRAME_NRC, /* IPv4 header checksum wrong, IPv6 UDP checksum 0 */
	XSK_DROP_TX_FULL,         /* no room in the TX ring */
	XSK_DROP_NRC
};

struct counters {
	uint64_t q[NQT][24];
	uint64_t gw[GW_SLOTS];
	uint64_t ecs, tc, cookies, cookies_ok, cache_hits, rrl_dropped, rrl_slipped;
	uint64_t drop_short, drop_response, drop_nomem;
	uint64_t udp, tcp, batches, gso_sends;
	uint64_t coalesce_waits, coalesce_wait_ns; /* coalesce.h: the waits after small batches */
	/* the XSK worker */
	uint64_t xsk_rx, xsk_tx, xsk_batches, xsk_kicks, xsk_socket_sends;
	uint64_t xsk_drop[XSK_DROP_NRC];
};

struct rrl_ent { uint64_t key; uint32_t sec; uint32_t count; };
#define RRL_SLOTS 16384

struct dns_xsk_q;

struct worker {
	_Atomic(struct dns_snap *) hazard;
	pthread_t th;
	int fd;                   /* UDP socket, or -1 for the TCP and XSK workers */
	struct dns_xsk_q *xq;     /* the XSK worker's socket and UMEM */
	int xqid;                 /* and its queue */
	struct counters cnt;
	struct dns_memo memo;     /* memo.h; memo.set NULL: off */
	struct rrl_ent *rrl;
	uint32_t slip;
	uint8_t buf[65536];
};

extern atomic_int stopping;
/* the snapshot a worker answers from, until release() */
struct dns_snap *hold(struct worker *w);
void release(struct worker *w);
/* the answer (memo, else dns_answer()), its counting, UDP rate limiting */
int answer(struct worker *w, const struct dns_snap *s, struct dns_query *q, struct dns_result *r);
void count(struct worker *w, const struct dns_snap *s, const struct dns_result *r);
int rrl_allow(struct worker *w, const struct dns_snap *s, const struct dns_query *q, struct dns_result *r);
#endif
