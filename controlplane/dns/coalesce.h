/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Paced reads (adaptive coalescing) for veil-dns's UDP and AF_XDP workers.
 *
 * A worker that wakes for every query or two spends most of its CPU on the
 * wake-up and the receive and send calls, not on the answers.  Waiting a
 * little after a read lets queries gather, so one wake-up serves many; but
 * every query that arrives during the wait is answered that much later.
 * A fixed wait (250 us) bought the CPU and cost p99 when the client was not
 * the bottleneck.
 *
 * Here a worker under heavy load paces its reads instead: after a read
 * it reads again when `target` more queries should be there, by the
 * recent arrival rate:
 *   - gap = the mean time between queries, a moving average over reads
 *     (the time since the previous read / the queries this read took);
 *   - a read that filled the worker's whole batch: no wait (more are
 *     queued already);
 *   - a rate that would gather fewer than DNS_COALESCE_MIN_RATE queries
 *     in max_ns: no wait (a lightly or moderately loaded server answers
 *     at once, so its latency is that of a server that never waits);
 *   - else the next read at target * gap after this one, at most max_ns
 *     after it (the answers of this read go out first).
 * Under heavy load each wake-up so serves about `target` queries, and no
 * query waits more than target gaps; the per-wake-up cost (the wake-up,
 * the receive and send calls) falls as 1/batch while the added latency
 * grows with it: the default target (6) kept the p99 of a server that
 * never waits (tools/bench_dns.sh: p99 as gdnsd's; 8 and 12 raised it)
 * and takes most of the gain.  With the default max (250 us) the waits
 * begin at 16 queries per 250 us, 64k queries/s per worker.
 */
#ifndef VEIL_DNS_COALESCE_H
#define VEIL_DNS_COALESCE_H
#include <errno.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <time.h>

/* the moving average's weight of a new sample: 1/2^DNS_COALESCE_EWMA_SHIFT */
#define DNS_COALESCE_EWMA_SHIFT 3
/* the queries the rate must bring in max_ns for a wait to be worth it */
#define DNS_COALESCE_MIN_RATE 16
/* a gap longer than this is an idle period, not a rate: it resets the average */
#define DNS_COALESCE_IDLE_NS 10000000ull

struct dns_coalesce {
	uint64_t last_ns; /* when the previous read returned (0: none yet) */
	uint64_t gap_ns;  /* the mean time between queries (0: unknown) */
	uint32_t target;  /* the batch a wait should gather (0, 1: never wait) */
	uint32_t full;    /* the worker's whole batch: a read this big never waits */
	uint64_t max_ns;  /* the longest wait (0: never wait) */
};

static inline uint64_t dns_coalesce_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void dns_coalesce_init(struct dns_coalesce *c, uint32_t target, uint64_t max_ns, uint32_t full)
{
	*c = (struct dns_coalesce){ .target = target, .max_ns = max_ns, .full = full };
}

/* A read at time now took n queries (n >= 1): how long after now the
 * next read should be (0: at once, or block). */
static inline uint64_t dns_coalesce_wait(struct dns_coalesce *c, uint32_t n, uint64_t now)
{
	if (!n)
		return 0;
	uint64_t since = c->last_ns && now > c->last_ns ? now - c->last_ns : 0;
	c->last_ns = now;
	if (c->target < 2 || !c->max_ns)
		return 0;
	if (!since || since >= DNS_COALESCE_IDLE_NS) {
		c->gap_ns = 0; /* after an idle period: no rate known yet */
		return 0;
	}
	uint64_t g = since / n;
	if (!c->gap_ns)
		c->gap_ns = g;
	else if (g >= c->gap_ns)
		c->gap_ns += (g - c->gap_ns) >> DNS_COALESCE_EWMA_SHIFT;
	else
		c->gap_ns -= (c->gap_ns - g) >> DNS_COALESCE_EWMA_SHIFT;
	if (n >= c->full || !c->gap_ns || c->max_ns / c->gap_ns < DNS_COALESCE_MIN_RATE)
		return 0;
	uint64_t w = (uint64_t)c->target * c->gap_ns;
	return w < c->max_ns ? w : c->max_ns;
}

/* A worker thread that coalesces: its sleeps end when asked, not up to
 * the default 50 us of timer slack later (a wait of 40 us would be 90). */
static inline void dns_coalesce_thread(void)
{
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
}

/* Sleeps until the monotonic time at (ns); at once if that has passed. */
static inline void dns_coalesce_sleep_until(uint64_t at)
{
	struct timespec ts = { (time_t)(at / 1000000000ull), (long)(at % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

#endif
