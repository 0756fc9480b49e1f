// SPDX-License-Identifier: Apache-2.0
/*
 * veil-dns: the authoritative GeoDNS server.  Answers each VM name with the
 * gateways nearest to the client (EDNS Client Subnet when present, else the
 * resolver), healthy ones only.  The zone is an immutable snapshot built
 * from the config file and swapped whole on SIGHUP or when the file changes;
 * UDP workers hold it through a hazard pointer, so a swap drops no query and
 * the old snapshot is freed once no worker holds it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "veil.h"
#include "dns/coalesce.h"
#include "dns/dns.h"
#include "dns/feed.h"
#include "dns/server.h"
#include "dns/xsk.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: veil-dns --config FILE [options]\n"
		"\n"
		"The veilmesh GeoDNS server: answers A/AAAA for VM names with the N nearest\n"
		"healthy gateways to the client (EDNS Client Subnet, else the resolver).\n"
		"\n"
		"  -c, --config FILE     config file (see docs/veil-dns.conf.example)\n"
		"  -n, --check           check the config file (and the geoip files) and exit\n"
		"  -v, --verbose         log every reload's details\n"
		"      --pidfile FILE    write the pid to FILE while running (removed at exit;\n"
		"                        overrides the config's pidfile)\n"
		"  -h, --help            this text\n"
		"\n"
		"Signals: SIGHUP reloads the config (so does any change to the file; a bad\n"
		"file changes nothing), SIGTERM/SIGINT exit.  With 'store' in the config, VM\n"
		"names and gateways also come from the cluster store (NATS JetStream buckets\n"
		"dns and peers, watched; changes apply live).  Metrics: http://ADDR:PORT/metrics\n"
		"('metrics' in the config, default 127.0.0.1:9433).\n"
		"Exit codes: 0 ok, 1 runtime failure (sockets), 2 bad usage or config.\n");
}

/* ---------- the current snapshot ---------- */

static _Atomic(struct dns_snap *) cur;

static const char *const qt_names[NQT] = { "A", "AAAA", "NS", "SOA", "ANY", "CNAME", "other", "none" };
static int qt_index(int t)
{
	switch (t) {
	case LDNS_RR_TYPE_A: return 0;
	case LDNS_RR_TYPE_AAAA: return 1;
	case LDNS_RR_TYPE_NS: return 2;
	case LDNS_RR_TYPE_SOA: return 3;
	case LDNS_RR_TYPE_ANY: return 4;
	case LDNS_RR_TYPE_CNAME: return 5;
	case -1: return 7;
	default: return 6;
	}
}

/* Answers are counted per gateway name: gateways come and go (file, store),
 * so each name gets a stable slot for the process's life. */
static char gw_slot_name[GW_SLOTS][32];
static int gw_slots;

static struct worker *workers[MAX_WORKERS];
static int nworkers;
atomic_int stopping;

struct dns_snap *hold(struct worker *w)
{
	struct dns_snap *s;
	do {
		s = atomic_load(&cur);
		atomic_store(&w->hazard, s);
	} while (s != atomic_load(&cur));
	return s;
}

void release(struct worker *w)
{
	atomic_store(&w->hazard, NULL);
}

/* Swap in a new snapshot; free the old one when no worker holds it. */
static void publish(struct dns_snap *s)
{
	struct dns_snap *old = atomic_exchange(&cur, s);
	if (!old)
		return;
	for (int i = 0; i < nworkers; i++)
		while (atomic_load(&workers[i]->hazard) == old)
			usleep(100);
	dns_snap_free(old);
}

void count(struct worker *w, const struct dns_snap *s, const struct dns_result *r)
{
	struct counters *c = &w->cnt;
	if (!r->len) {
		if (r->drop == DNS_DROP_SHORT) c->drop_short++;
		else if (r->drop == DNS_DROP_RESPONSE) c->drop_response++;
		else c->drop_nomem++;
		return;
	}
	c->q[qt_index(r->qtype)][r->rcode < 24 ? r->rcode : 23]++;
	for (int i = 0; i < r->ngw; i++)
		c->gw[s->cfg.gw[r->gw[i]].slot]++;
	if (r->flags & DNS_F_ECS) c->ecs++;
	if (r->flags & DNS_F_TC) c->tc++;
	if (r->flags & DNS_F_COOKIE) c->cookies++;
	if (r->flags & DNS_F_COOKIE_OK) c->cookies_ok++;
}

static void to_query(struct dns_query *q, const struct sockaddr_storage *ss)
{
	memset(q->addr, 0, 16);
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			q->family = AF_INET;
			memcpy(q->addr, &a->sin6_addr.s6_addr[12], 4);
		} else {
			q->family = AF_INET6;
			memcpy(q->addr, &a->sin6_addr, 16);
		}
	} else {
		q->family = AF_INET;
		memcpy(q->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

static uint64_t fnv(const uint8_t *b, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* The answer for one query: from the worker's memo of the snapshot's
 * answers (the query path is a pure function, so an answer depends only on
 * the query bytes after the ID, the client address, the transport and the
 * snapshot), else computed.  Answers with cookies depend on the time too
 * and are never kept. */
int answer(struct worker *w, const struct dns_snap *s, struct dns_query *q, struct dns_result *r)
{
	uint8_t key[MEMO_KEY];
	size_t klen = 0;
	uint64_t h = 0;
	int memo = w->memo.set && q->len >= 12 && q->len - 2 + 17 <= MEMO_KEY && !q->tcp;

	if (memo) {
		memcpy(key, q->pkt + 2, q->len - 2);
		klen = q->len - 2;
		key[klen++] = (uint8_t)q->family;
		memcpy(key + klen, q->addr, 16);
		klen += 16;
		h = dns_memo_hash(key, klen);
		const struct memo_ent *e = dns_memo_find(&w->memo, s->gen, h, key, klen);
		if (e) {
			memcpy(r->buf, e->ans, e->alen);
			r->buf[0] = q->pkt[0];
			r->buf[1] = q->pkt[1];
			r->len = e->alen;
			r->qtype = e->qtype;
			r->rcode = e->rcode;
			r->flags = e->flags;
			r->drop = 0;
			r->ngw = e->ngw;
			memcpy(r->gw, e->gw, e->ngw);
			w->cnt.cache_hits++;
			return 0;
		}
	}
	int rc = dns_answer(s, q, r);
	if (memo && !rc && !(r->flags & DNS_F_COOKIE) && r->len <= MEMO_ANS && r->ngw <= 8) {
		struct memo_ent *e = dns_memo_put(&w->memo, s->gen, h, key, klen);
		e->alen = (uint16_t)r->len;
		memcpy(e->ans, r->buf, r->len);
		e->qtype = (int16_t)r->qtype;
		e->rcode = (uint8_t)r->rcode;
		e->flags = r->flags;
		e->ngw = (uint8_t)r->ngw;
		memcpy(e->gw, r->gw, r->ngw);
	}
	return rc;
}

/* Response rate limiting (UDP): answers per second per client network
 * (/24, /56) and rcode; over the limit, every slip-th is sent truncated (a
 * real client retries over TCP), the others dropped.  A client that returns
 * a valid server cookie is not limited. */
int rrl_allow(struct worker *w, const struct dns_snap *s, const struct dns_query *q, struct dns_result *r)
{
	if (!s->cfg.rrl_rate || (r->flags & DNS_F_COOKIE_OK))
		return 1;
	uint8_t k[18] = { 0 };
	memcpy(k, q->addr, q->family == AF_INET ? 3 : 7);
	k[16] = (uint8_t)r->rcode;
	k[17] = (uint8_t)(r->ngw ? 1 : 0);
	uint64_t key = fnv(k, sizeof(k), 0xcbf29ce484222325ULL) | 1;
	struct rrl_ent *e = &w->rrl[key & (RRL_SLOTS - 1)];
	uint32_t now = (uint32_t)time(NULL);
	if (e->key != key || e->sec != now) {
		e->key = key;
		e->sec = now;
		e->count = 0;
	}
	if (++e->count <= (uint32_t)s->cfg.rrl_rate)
		return 1;
	if (s->cfg.rrl_slip && ++w->slip % (uint32_t)s->cfg.rrl_slip == 0 && r->len >= 12) {
		/* slip: header only, TC set, counts zeroed (keeps the ID and flags) */
		r->buf[2] |= 0x02;
		memset(r->buf + 4, 0, 8);
		r->len = 12;
		w->cnt.rrl_slipped++;
		return 1;
	}
	w->cnt.rrl_dropped++;
	return 0;
}

#define BATCH 64
/* Paced reads (coalesce.h): under heavy load, after a read short of the
 * batch, the worker reads again when udp_coalesce_batch more queries
 * should be there by the recent arrival rate (at most udp_coalesce_us
 * later), so one wake-up and one receive and send call serve them all; an
 * idle or lightly loaded server blocks in recvmmsg and answers the first
 * query at once. */
static uint64_t coalesce_max_ns;
static uint32_t coalesce_batch;
/* UDP GSO: answers of one batch to the same client address and port with
 * the same length leave as one UDP_SEGMENT send (one trip through the
 * stack, segmented at the end).  Off after the first send the kernel
 * refuses, or with udp_gso off. */
static int use_gso;
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static void *udp_worker(void *arg)
{
	struct worker *w = arg;
	static __thread uint8_t in[BATCH][4096];
	static __thread uint8_t out[BATCH][4096]; /* udp_size is at most 4096 */
	struct mmsghdr msg[BATCH], rep[BATCH];
	struct iovec iov[BATCH], oiov[BATCH];
	struct sockaddr_storage from[BATCH];
	union { char b[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } ctl[BATCH];
	int alen[BATCH], afrom[BATCH];
	uint8_t taken[BATCH];
	struct dns_result r;
	int gso = use_gso;
	struct dns_coalesce co;

	dns_coalesce_init(&co, coalesce_batch, coalesce_max_ns, BATCH);
	dns_coalesce_thread();
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ in[i], sizeof(in[i]) };
		msg[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	while (!atomic_load(&stopping)) {
		for (int i = 0; i < BATCH; i++)
			msg[i].msg_hdr.msg_namelen = sizeof(from[i]);
		int n = recvmmsg(w->fd, msg, BATCH, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;
		uint64_t t_read = dns_coalesce_now(), wait = dns_coalesce_wait(&co, (uint32_t)n, t_read);
		w->cnt.batches++;
		struct dns_snap *s = hold(w);
		uint32_t now = (uint32_t)time(NULL);
		int m = 0;
		for (int i = 0; i < n; i++) {
			struct dns_query q = { .pkt = in[i], .len = msg[i].msg_len, .now = now };
			to_query(&q, &from[i]);
			w->cnt.udp++;
			r.buf = out[m]; /* a UDP answer is at most udp_size (<= 4096) bytes */
			answer(w, s, &q, &r);
			count(w, s, &r);
			if (!r.len || !rrl_allow(w, s, &q, &r) || r.len > sizeof(out[0]))
				continue;
			alen[m] = (int)r.len;
			afrom[m] = i;
			m++;
		}
		release(w);
		/* one message per answer, or per group of same-length answers to
		 * one client when GSO is on */
		int nm = 0, ni = 0;
		memset(taken, 0, (size_t)m);
		for (int a = 0; a < m; a++) {
			if (taken[a])
				continue;
			struct msghdr *h = &rep[nm].msg_hdr;
			const struct msghdr *q = &msg[afrom[a]].msg_hdr;
			int first = ni, cnt = 1;
			oiov[ni++] = (struct iovec){ out[a], (size_t)alen[a] };
			for (int b = a + 1; gso && b < m && cnt < 64; b++) {
				const struct msghdr *qb = &msg[afrom[b]].msg_hdr;
				if (taken[b] || alen[b] != alen[a] || qb->msg_namelen != q->msg_namelen ||
				    memcmp(qb->msg_name, q->msg_name, q->msg_namelen))
					continue;
				taken[b] = 1;
				oiov[ni++] = (struct iovec){ out[b], (size_t)alen[b] };
				cnt++;
			}
			*h = (struct msghdr){ .msg_name = q->msg_name, .msg_namelen = q->msg_namelen, .msg_iov = &oiov[first],
					      .msg_iovlen = (size_t)cnt };
			if (cnt > 1) {
				h->msg_control = ctl[nm].b;
				h->msg_controllen = sizeof(ctl[nm].b);
				struct cmsghdr *c = CMSG_FIRSTHDR(h);
				c->cmsg_level = IPPROTO_UDP;
				c->cmsg_type = UDP_SEGMENT;
				c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
				uint16_t seg = (uint16_t)alen[a];
				memcpy(CMSG_DATA(c), &seg, sizeof(seg));
				w->cnt.gso_sends++;
			}
			nm++;
		}
		for (int sent = 0; sent < nm;) {
			int k = sendmmsg(w->fd, rep + sent, (unsigned)(nm - sent), 0);
			if (k < 0 && gso && rep[sent].msg_hdr.msg_controllen && errno != EAGAIN && errno != EINTR) {
				/* the path cannot segment (no checksum offload, old
				 * kernel): this group one by one, GSO off for good */
				gso = 0;
				vm_log("event=udp_gso_off reason=\"%s\"", strerror(errno));
				struct msghdr g = rep[sent].msg_hdr;
				for (size_t x = 0; x < g.msg_iovlen; x++) {
					struct msghdr one = { .msg_name = g.msg_name, .msg_namelen = g.msg_namelen,
							      .msg_iov = &g.msg_iov[x], .msg_iovlen = 1 };
					sendmsg(w->fd, &one, 0);
				}
				sent++;
				continue;
			}
			if (k <= 0)
				break;
			sent += k;
		}
		if (wait) {
			w->cnt.coalesce_waits++;
			w->cnt.coalesce_wait_ns += wait;
			dns_coalesce_sleep_until(t_read + wait);
		}
	}
	return NULL;
}

/* TCP: up to 64 connections, two-byte length framing, idle ones closed
 * after 10 s; a query that does not fit the frame closes the connection. */
#define TCP_CONNS 64
struct tconn { int fd; size_t have; time_t last; uint8_t b[2 + 65535]; };
static int tcp_fds[DNS_MAX_LISTEN];
static int ntcp;

static void *tcp_worker(void *arg)
{
	struct worker *w = arg;
	struct tconn *c = calloc(TCP_CONNS, sizeof(*c));
	struct pollfd p[DNS_MAX_LISTEN + TCP_CONNS];
	struct dns_result r;
	r.buf = w->buf;
	if (!c)
		return NULL;
	for (int i = 0; i < TCP_CONNS; i++)
		c[i].fd = -1;
	while (!atomic_load(&stopping)) {
		int np = 0;
		for (int i = 0; i < ntcp; i++)
			p[np++] = (struct pollfd){ tcp_fds[i], POLLIN, 0 };
		for (int i = 0; i < TCP_CONNS; i++)
			p[np++] = (struct pollfd){ c[i].fd, POLLIN, 0 };
		if (poll(p, (nfds_t)np, 500) < 0)
			continue;
		time_t now = time(NULL);
		for (int i = 0; i < ntcp; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int fd = accept4(tcp_fds[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			int slot = -1;
			for (int j = 0; j < TCP_CONNS && slot < 0; j++)
				if (c[j].fd < 0)
					slot = j;
			if (slot < 0) { /* full: the oldest goes */
				slot = 0;
				for (int j = 1; j < TCP_CONNS; j++)
					if (c[j].last < c[slot].last)
						slot = j;
				close(c[slot].fd);
			}
			c[slot].fd = fd;
			c[slot].have = 0;
			c[slot].last = now;
			w->cnt.tcp++;
		}
		for (int j = 0; j < TCP_CONNS; j++) {
			struct tconn *t = &c[j];
			if (t->fd < 0)
				continue;
			if (!(p[ntcp + j].revents & (POLLIN | POLLHUP | POLLERR))) {
				if (now - t->last > 10) {
					close(t->fd);
					t->fd = -1;
				}
				continue;
			}
			ssize_t got = read(t->fd, t->b + t->have, sizeof(t->b) - t->have);
			if (got <= 0) {
				if (got < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				close(t->fd);
				t->fd = -1;
				continue;
			}
			t->have += (size_t)got;
			t->last = now;
			while (t->have >= 2) {
				size_t len = (size_t)t->b[0] << 8 | t->b[1];
				if (t->have < 2 + len)
					break;
				struct sockaddr_storage ss;
				socklen_t sl = sizeof(ss);
				getpeername(t->fd, (struct sockaddr *)&ss, &sl);
				struct dns_query q = { .pkt = t->b + 2, .len = len, .tcp = 1, .now = (uint32_t)now };
				to_query(&q, &ss);
				struct dns_snap *s = hold(w);
				answer(w, s, &q, &r);
				count(w, s, &r);
				release(w);
				if (r.len) {
					uint8_t hdr[2] = { (uint8_t)(r.len >> 8), (uint8_t)r.len };
					struct iovec v[2] = { { hdr, 2 }, { r.buf, r.len } };
					struct msghdr mh = { .msg_iov = v, .msg_iovlen = 2 };
					int fl = fcntl(t->fd, F_GETFL);
					fcntl(t->fd, F_SETFL, fl & ~O_NONBLOCK);
					struct timeval tv = { .tv_sec = 2 };
					setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
					ssize_t sent = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
					fcntl(t->fd, F_SETFL, fl);
					if (sent != (ssize_t)(r.len + 2)) {
						close(t->fd);
						t->fd = -1;
						break;
					}
				}
				memmove(t->b, t->b + 2 + len, t->have - 2 - len);
				t->have -= 2 + len;
			}
		}
	}
	for (int j = 0; j < TCP_CONNS; j++)
		if (c[j].fd >= 0)
			close(c[j].fd);
	free(c);
	return NULL;
}

static int open_sock(const char *addr, int type, char *err, size_t len)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int one = 1, fd;
	struct sockaddr_in *a4 = (void *)&ss;
	struct sockaddr_in6 *a6 = (void *)&ss;

	if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(53);
		sl = sizeof(*a4);
	} else {
		inet_pton(AF_INET6, addr, &a6->sin6_addr);
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(53);
		sl = sizeof(*a6);
	}
	const char *port = getenv("VEIL_DNS_PORT"); /* tests and benchmarks */
	if (port)
		a4->sin_port = htons((uint16_t)atoi(port)); /* same offset in both */
	fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto bad;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (type == SOCK_DGRAM) {
		int sz = 4 << 20;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		struct timeval tv = { .tv_usec = 200000 }; /* workers notice a stop */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) || (type == SOCK_STREAM && listen(fd, 128)))
		goto bad;
	if (type == SOCK_STREAM)
		fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
bad:
	snprintf(err, len, "%s %s: %s", type == SOCK_DGRAM ? "udp" : "tcp", addr, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ---------- metrics ---------- */
static uint64_t reloads_ok, reloads_bad, started;
static struct dns_feed *feed;
static struct dns_xdp *xdp;

/* Gives each gateway of a new snapshot its counter slot (by name). */
static void assign_slots(struct dns_snap *s)
{
	for (int g = 0; g < s->cfg.ngw; g++) {
		int i;
		for (i = 0; i < gw_slots && strcmp(gw_slot_name[i], s->cfg.gw[g].name); i++)
			;
		if (i == gw_slots) {
			if (gw_slots == GW_SLOTS - 1) {
				i = GW_SLOTS - 1; /* full: the rest share the last slot */
				snprintf(gw_slot_name[i], sizeof(gw_slot_name[i]), "_other");
			} else {
				snprintf(gw_slot_name[i], sizeof(gw_slot_name[i]), "%s", s->cfg.gw[g].name);
				gw_slots++;
			}
		}
		s->cfg.gw[g].slot = (uint16_t)i;
	}
}

static void metrics(void *arg, FILE *out)
{
	struct counters t = { 0 };
	for (int i = 0; i < nworkers; i++) {
		const struct counters *c = &workers[i]->cnt;
		for (int a = 0; a < NQT; a++)
			for (int b = 0; b < 24; b++)
				t.q[a][b] += __atomic_load_n(&c->q[a][b], __ATOMIC_RELAXED);
		for (int g = 0; g < gw_slots; g++)
			t.gw[g] += __atomic_load_n(&c->gw[g], __ATOMIC_RELAXED);
#define S(f) t.f += __atomic_load_n(&c->f, __ATOMIC_RELAXED)
		S(ecs); S(tc); S(cookies); S(cookies_ok); S(cache_hits); S(rrl_dropped); S(rrl_slipped);
		S(drop_short); S(drop_response); S(drop_nomem); S(udp); S(tcp); S(batches); S(gso_sends);
		S(coalesce_waits); S(coalesce_wait_ns);
		S(xsk_rx); S(xsk_tx); S(xsk_batches); S(xsk_kicks); S(xsk_socket_sends);
		for (int d = 0; d < XSK_DROP_NRC; d++)
			S(xsk_drop[d]);
#undef S
	}
	fputs("# HELP veildns_queries_total Queries answered, by query type and rcode.\n"
	      "# TYPE veildns_queries_total counter\n", out);
	for (int a = 0; a < NQT; a++)
		for (int b = 0; b < 24; b++)
			if (t.q[a][b]) {
				const char *rn = ldns_lookup_by_id(ldns_rcodes, b) ? ldns_lookup_by_id(ldns_rcodes, b)->name : NULL;
				if (b == 16)
					rn = "BADVERS";
				if (rn)
					fprintf(out, "veildns_queries_total{qtype=\"%s\",rcode=\"%s\"} %llu\n", qt_names[a], rn,
						(unsigned long long)t.q[a][b]);
				else
					fprintf(out, "veildns_queries_total{qtype=\"%s\",rcode=\"%d\"} %llu\n", qt_names[a], b,
						(unsigned long long)t.q[a][b]);
			}
	/* metrics are written on the main thread, the only one that swaps */
	const struct dns_snap *s = atomic_load(&cur);
	fputs("# HELP veildns_answers_total Address records answered, by gateway.\n"
	      "# TYPE veildns_answers_total counter\n", out);
	for (int g = 0; g < gw_slots; g++)
		fprintf(out, "veildns_answers_total{gateway=\"%s\"} %llu\n", gw_slot_name[g], (unsigned long long)t.gw[g]);
	fputs("# HELP veildns_gateway_up Gateway health as served (file or store; 1 up, 0 down).\n"
	      "# TYPE veildns_gateway_up gauge\n", out);
	for (int g = 0; g < s->cfg.ngw; g++)
		fprintf(out, "veildns_gateway_up{gateway=\"%s\"} %d\n", s->cfg.gw[g].name, s->cfg.gw[g].up);
	fprintf(out,
		"# HELP veildns_ecs_total Answers decided by an EDNS Client Subnet option.\n"
		"# TYPE veildns_ecs_total counter\nveildns_ecs_total %llu\n"
		"# HELP veildns_truncated_total UDP answers sent truncated (TC).\n"
		"# TYPE veildns_truncated_total counter\nveildns_truncated_total %llu\n"
		"# HELP veildns_cookies_total Answers with a DNS cookie; valid: the client's server cookie was ours.\n"
		"# TYPE veildns_cookies_total counter\nveildns_cookies_total %llu\nveildns_cookies_valid_total %llu\n"
		"# HELP veildns_cache_hits_total Answers served from a worker's memo of the snapshot's answers.\n"
		"# TYPE veildns_cache_hits_total counter\nveildns_cache_hits_total %llu\n"
		"# HELP veildns_rrl_total Answers rate limited (dropped or slipped as truncated).\n"
		"# TYPE veildns_rrl_total counter\n"
		"veildns_rrl_total{action=\"dropped\"} %llu\nveildns_rrl_total{action=\"slipped\"} %llu\n"
		"# HELP veildns_dropped_total Queries that got no answer at all, by reason.\n"
		"# TYPE veildns_dropped_total counter\n"
		"veildns_dropped_total{reason=\"short\"} %llu\nveildns_dropped_total{reason=\"response\"} %llu\n"
		"veildns_dropped_total{reason=\"nomem\"} %llu\n"
		"# HELP veildns_received_total Queries received, by transport (TCP: connections).\n"
		"# TYPE veildns_received_total counter\n"
		"veildns_received_total{transport=\"udp\"} %llu\nveildns_received_total{transport=\"xsk\"} %llu\n"
		"veildns_connections_total{transport=\"tcp\"} %llu\n"
		"# HELP veildns_udp_batches_total UDP receive calls that returned queries (queries / batches = batch size).\n"
		"# TYPE veildns_udp_batches_total counter\nveildns_udp_batches_total %llu\n"
		"# HELP veildns_udp_gso_sends_total UDP sends that carried several answers to one client (UDP GSO).\n"
		"# TYPE veildns_udp_gso_sends_total counter\nveildns_udp_gso_sends_total %llu\n"
		"# HELP veildns_coalesce_waits_total Waits after a small batch so that queries gather (UDP and XSK workers).\n"
		"# TYPE veildns_coalesce_waits_total counter\nveildns_coalesce_waits_total %llu\n"
		"# HELP veildns_coalesce_wait_seconds_total Their length in all.\n"
		"# TYPE veildns_coalesce_wait_seconds_total counter\nveildns_coalesce_wait_seconds_total %.6f\n"
		"# HELP veildns_zone_serial The SOA serial being served.\n"
		"# TYPE veildns_zone_serial gauge\nveildns_zone_serial %u\n"
		"# HELP veildns_zone_names Names in the zone (VMs, wildcards, apex, name servers, empty non-terminals).\n"
		"# TYPE veildns_zone_names gauge\nveildns_zone_names %zu\n",
		(unsigned long long)t.ecs, (unsigned long long)t.tc, (unsigned long long)t.cookies,
		(unsigned long long)t.cookies_ok, (unsigned long long)t.cache_hits, (unsigned long long)t.rrl_dropped,
		(unsigned long long)t.rrl_slipped, (unsigned long long)t.drop_short, (unsigned long long)t.drop_response,
		(unsigned long long)t.drop_nomem, (unsigned long long)t.udp, (unsigned long long)t.xsk_rx,
		(unsigned long long)t.tcp,
		(unsigned long long)t.batches, (unsigned long long)t.gso_sends,
		(unsigned long long)t.coalesce_waits, (double)t.coalesce_wait_ns / 1e9, s->serial,
		s->nnames);
	if (xdp) {
		static const char *const why[XSK_DROP_NRC] = { "ok", "not_ip", "not_udp", "ip_options", "fragment",
							       "short", "bad_length", "bad_checksum", "tx_full" };
		fprintf(out,
			"# HELP veildns_xsk_frames_total Frames the XSK workers received (queries) and sent (answers).\n"
			"# TYPE veildns_xsk_frames_total counter\n"
			"veildns_xsk_frames_total{dir=\"rx\"} %llu\nveildns_xsk_frames_total{dir=\"tx\"} %llu\n"
			"# HELP veildns_xsk_batches_total RX ring reads that returned frames (frames / batches = batch size).\n"
			"# TYPE veildns_xsk_batches_total counter\nveildns_xsk_batches_total %llu\n"
			"# HELP veildns_xsk_kicks_total sendto() calls that told the kernel to send the TX ring.\n"
			"# TYPE veildns_xsk_kicks_total counter\nveildns_xsk_kicks_total %llu\n"
			"# HELP veildns_xsk_socket_sends_total Answers too big for a frame or the link, sent by the UDP socket.\n"
			"# TYPE veildns_xsk_socket_sends_total counter\nveildns_xsk_socket_sends_total %llu\n"
			"# HELP veildns_xsk_dropped_total Frames the XSK workers dropped before the query path, by reason.\n"
			"# TYPE veildns_xsk_dropped_total counter\n",
			(unsigned long long)t.xsk_rx, (unsigned long long)t.xsk_tx, (unsigned long long)t.xsk_batches,
			(unsigned long long)t.xsk_kicks, (unsigned long long)t.xsk_socket_sends);
		for (int d = 1; d < XSK_DROP_NRC; d++)
			fprintf(out, "veildns_xsk_dropped_total{reason=\"%s\"} %llu\n", why[d],
				(unsigned long long)t.xsk_drop[d]);
		fputs("# HELP veildns_xsk_queue_frames_total The same frames by queue (one XSK worker each).\n"
		      "# TYPE veildns_xsk_queue_frames_total counter\n", out);
		for (int i = 0; i < nworkers; i++) {
			const struct worker *w = workers[i];
			if (!w->xq)
				continue;
			fprintf(out, "veildns_xsk_queue_frames_total{queue=\"%d\",dir=\"rx\"} %llu\n"
				     "veildns_xsk_queue_frames_total{queue=\"%d\",dir=\"tx\"} %llu\n",
				w->xqid, (unsigned long long)__atomic_load_n(&w->cnt.xsk_rx, __ATOMIC_RELAXED),
				w->xqid, (unsigned long long)__atomic_load_n(&w->cnt.xsk_tx, __ATOMIC_RELAXED));
		}
		dns_xdp_metrics(xdp, out);
	}
	if (feed)
		dns_feed_metrics(feed, out);
	vm_metrics_daemon(out, reloads_ok, reloads_bad, started);
}

/* ---------- main ---------- */

/* The program off the interface first (queries go to the kernel's sockets
 * from then on), then the workers, then the AF_XDP sockets. */
static void stop_workers(void)
{
	dns_xdp_detach(xdp);
	atomic_store(&stopping, 1);
	for (int i = 0; i < nworkers; i++)
		pthread_join(workers[i]->th, NULL);
	dns_xdp_close(xdp);
	xdp = NULL;
}

/* A snapshot from the file's config (kept: a store change rebuilds from it)
 * and the store's state. */
static struct dns_snap *build(const struct dns_cfg *file, const struct dns_snap *prev, const uint64_t key[2], char *err,
			      size_t len)
{
	struct dns_cfg c;
	if (dns_cfg_copy(&c, file) || (feed && dns_feed_merge(feed, &c))) {
		dns_cfg_free(&c);
		snprintf(err, len, "out of memory");
		return NULL;
	}
	if (!c.ngw) {
		dns_cfg_free(&c);
		snprintf(err, len, "no gateway in the file or the store");
		return NULL;
	}
	struct dns_snap *s = dns_snap_build(&c, prev ? prev->serial : 0, prev ? prev->cfg.hash : 0, key, err, len);
	if (s)
		assign_slots(s);
	return s;
}

static int read_key(const char *path, uint64_t key[2], char *err, size_t len)
{
	if (!path[0]) {
		if (getrandom(key, 16, 0) != 16) {
			snprintf(err, len, "getrandom: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	FILE *f = fopen(path, "re");
	char hex[128] = "";
	uint8_t b[16];
	if (!f || !fgets(hex, sizeof(hex), f)) {
		snprintf(err, len, "%s: %s", path, f ? "empty" : strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	for (int i = 0; i < 16; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &b[i]) != 1) {
			snprintf(err, len, "%s:1: want at least 32 hex digits", path);
			return -1;
		}
	memcpy(key, b, 16);
	return 0;
}

int main(int argc, char **argv)
{
	const struct vm_daemon_cli cli = { .usage = usage, .flags = VM_OPT_VERBOSE };
	struct vm_daemon_opts opt;
	char err[512];
	uint64_t key[2];
	int code;

	vm_prog_name = "veil-dns";
	if (vm_daemon_parse(argc, argv, &cli, &opt, &code))
		return code;
	const char *path = opt.config;
	bool check = opt.check, verbose = opt.verbose;
	struct dns_cfg c0;
	if (dns_cfg_load(path, &c0, err, sizeof(err))) {
		fprintf(stderr, "veil-dns: %s\n", err);
		return 2;
	}
	if (read_key(c0.cookie_secret_file, key, err, sizeof(err))) {
		fprintf(stderr, "veil-dns: %s\n", err);
		dns_cfg_free(&c0);
		return 2;
	}
	if (c0.store[0] && dns_feed_check(&c0, err, sizeof(err))) {
		fprintf(stderr, "veil-dns: %s: store_pub: %s\n", path, err);
		dns_cfg_free(&c0);
		return 2;
	}
	/* the file's config, kept for rebuilds when the store changes */
	struct dns_cfg file;
	if (dns_cfg_copy(&file, &c0)) {
		fprintf(stderr, "veil-dns: out of memory\n");
		return 1;
	}
	if (c0.store[0] && !check) {
		/* the store's snapshot before the first answer, so a restart
		 * never answers NXDOMAIN for a name the store has */
		if (!(feed = dns_feed_start(&c0, err, sizeof(err)))) {
			fprintf(stderr, "veil-dns: %s: store: %s\n", path, err);
			return 2;
		}
		if (!dns_feed_synced(feed, (int)c0.store_wait * 1000))
			vm_log("event=store_not_synced waited_s=%u note=\"serving the file's names; the store's apply when it answers\"",
			       c0.store_wait);
	}
	uint64_t feed_ver = feed ? dns_feed_version(feed) : 0;
	struct dns_snap *s;
	if (check) {
		s = dns_snap_build(&c0, 0, 0, key, err, sizeof(err));
	} else {
		s = build(&file, NULL, key, err, sizeof(err));
		dns_cfg_free(&c0);
	}
	if (!s) {
		fprintf(stderr, "veil-dns: %s: %s\n", path, err);
		return 2;
	}
	if (check) {
		printf("%s: ok (zone %s, %d gateways, %d VM names, %zu answer classes v4 / %zu v6, serial %u%s)\n", path,
		       s->cfg.zone, s->cfg.ngw, s->cfg.nvm, s->nclasses[0], s->nclasses[1], s->serial,
		       s->cfg.store[0] ? "; more from the store" : "");
		dns_snap_free(s);
		dns_cfg_free(&file);
		return 0;
	}
	atomic_store(&cur, s);
	started = (uint64_t)time(NULL);

	/* sockets: per listen address, one UDP socket per thread (SO_REUSEPORT)
	 * and one TCP listener */
	int first_udp[DNS_MAX_LISTEN];
	for (int i = 0; i < s->cfg.nlisten; i++) {
		int fd = open_sock(s->cfg.listen[i], SOCK_STREAM, err, sizeof(err));
		if (fd < 0) {
			vm_log("event=error what=listen reason=\"%s\"", err);
			return 1;
		}
		tcp_fds[ntcp++] = fd;
		for (int t = 0; t < s->cfg.threads && nworkers < MAX_WORKERS - 1; t++) {
			int u = open_sock(s->cfg.listen[i], SOCK_DGRAM, err, sizeof(err));
			if (u < 0) {
				vm_log("event=error what=listen reason=\"%s\"", err);
				return 1;
			}
			if (!t)
				first_udp[i] = u;
			struct worker *w = calloc(1, sizeof(*w));
			if (!w)
				return 1;
			w->fd = u;
			/* VEIL_DNS_NOCACHE=1: every answer computed (benchmarks) */
			if (!getenv("VEIL_DNS_NOCACHE"))
				dns_memo_init(&w->memo, MEMO_SLOTS); /* no memory: off */
			w->rrl = calloc(RRL_SLOTS, sizeof(*w->rrl));
			workers[nworkers++] = w;
		}
	}
	coalesce_max_ns = (uint64_t)s->cfg.udp_coalesce_us * 1000;
	coalesce_batch = s->cfg.udp_coalesce_batch;
	use_gso = s->cfg.udp_gso;
	struct worker *tw = calloc(1, sizeof(*tw));
	if (!tw)
		return 1;
	tw->fd = -1;
	workers[nworkers++] = tw;
	/* the AF_XDP path: its program passes what it does not take to the
	 * sockets above, which are open by now */
	char xdp_desc[256] = "xdp_interface=off";
	if (s->cfg.xdp_interface[0]) {
		vm_lib_logging(verbose);
		const char *port = getenv("VEIL_DNS_PORT");
		if (!(xdp = dns_xdp_open(&s->cfg, port ? (uint16_t)atoi(port) : 53, first_udp, err, sizeof(err)))) {
			vm_log("event=error what=xdp reason=\"%s\"", err);
			return 1;
		}
		dns_xdp_describe(xdp, xdp_desc, sizeof(xdp_desc));
		for (int i = 0; i < dns_xdp_queues(xdp) && nworkers < MAX_WORKERS; i++) {
			struct worker *w = calloc(1, sizeof(*w));
			if (!w)
				return 1;
			w->fd = -1;
			w->xq = dns_xdp_queue(xdp, i);
			w->xqid = i;
			if (!getenv("VEIL_DNS_NOCACHE"))
				dns_memo_init(&w->memo, MEMO_SLOTS); /* no memory: off */
			w->rrl = calloc(RRL_SLOTS, sizeof(*w->rrl));
			workers[nworkers++] = w;
		}
	}
	for (int i = 0; i < nworkers; i++)
		pthread_create(&workers[i]->th, NULL, workers[i]->xq ? xsk_worker : workers[i]->fd >= 0 ? udp_worker : tcp_worker,
			       workers[i]);

	struct vm_ctl ctl;
	if (vm_ctl_open(&ctl, "off", s->cfg.metrics, err, sizeof(err))) {
		vm_log("event=error what=metrics reason=\"%s\"", err);
		stop_workers();
		return 1;
	}
	/* --pidfile, else the config's pidfile; removed at exit */
	if (vm_daemon_pidfile(opt.pidfile ? opt.pidfile : s->cfg.pidfile, err, sizeof(err))) {
		vm_log("event=error what=pidfile reason=\"%s\"", err);
		vm_ctl_close(&ctl);
		stop_workers();
		return 1;
	}
	vm_log("event=started zone=%s serial=%u gateways=%d vms=%d listen=%d udp_workers=%d metrics=%s store=%s %s",
	       s->cfg.zone, s->serial, s->cfg.ngw, s->cfg.nvm, s->cfg.nlisten, s->cfg.nlisten * s->cfg.threads,
	       s->cfg.metrics, s->cfg.store[0] ? s->cfg.store : "off", xdp_desc);
	vm_daemon_signals();

	struct stat st0;
	if (stat(path, &st0))
		memset(&st0, 0, sizeof(st0));
	while (!vm_stop_sig) {
		vm_ctl_poll(&ctl, 250, NULL, metrics, NULL);
		struct stat st;
		int changed = !stat(path, &st) && (st.st_mtim.tv_sec != st0.st_mtim.tv_sec ||
						   st.st_mtim.tv_nsec != st0.st_mtim.tv_nsec || st.st_size != st0.st_size ||
						   st.st_ino != st0.st_ino);
		uint64_t fv = feed ? dns_feed_version(feed) : 0;
		if (!vm_reload && !changed && fv == feed_ver)
			continue;
		const char *why = vm_reload ? "sighup" : changed ? "file_changed" : "store_changed";
		struct dns_snap *old = atomic_load(&cur);
		struct dns_snap *n;
		if (vm_reload || changed) {
			vm_reload = 0;
			st0 = st;
			struct dns_cfg c;
			if (dns_cfg_load(path, &c, err, sizeof(err))) {
				reloads_bad++;
				vm_log("event=reload_rejected why=%s reason=\"%s\"", why, err);
				continue;
			}
			feed_ver = fv;
			n = build(&c, old, key, err, sizeof(err));
			if (n) {
				dns_cfg_free(&file);
				file = c;
			} else {
				dns_cfg_free(&c);
			}
		} else {
			feed_ver = fv;
			n = build(&file, old, key, err, sizeof(err));
		}
		if (!n) {
			reloads_bad++;
			vm_log("event=reload_rejected why=%s reason=\"%s\"", why, err);
			continue;
		}
		if (strcmp(n->cfg.zone, old->cfg.zone) || n->cfg.nlisten != old->cfg.nlisten ||
		    memcmp(n->cfg.listen, old->cfg.listen, sizeof(n->cfg.listen)) || n->cfg.threads != old->cfg.threads ||
		    strcmp(n->cfg.metrics, old->cfg.metrics) || strcmp(n->cfg.store, old->cfg.store) ||
		    strcmp(n->cfg.store_pub, old->cfg.store_pub) || strcmp(n->cfg.xdp_interface, old->cfg.xdp_interface) ||
		    n->cfg.xdp_queues != old->cfg.xdp_queues || n->cfg.xdp_skb != old->cfg.xdp_skb)
			vm_log("event=reload_note reason=\"listen, threads, metrics, store and xdp settings change only with a restart\"");
		uint32_t serial = n->serial;
		int up = 0;
		for (int g = 0; g < n->cfg.ngw; g++)
			up += n->cfg.gw[g].up;
		publish(n);
		reloads_ok++;
		vm_log("event=reloaded why=%s serial=%u gateways=%d up=%d vms=%d classes_v4=%zu classes_v6=%zu", why, serial,
		       n->cfg.ngw, up, n->cfg.nvm, n->nclasses[0], n->nclasses[1]);
		(void)verbose;
	}
	stop_workers();
	vm_ctl_close(&ctl);
	dns_feed_stop(feed);
	dns_cfg_free(&file);
	vm_log("event=stopped signal=%d", (int)vm_stop_sig);
	dns_snap_free(atomic_load(&cur));
	return 0;
}
