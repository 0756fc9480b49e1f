// SPDX-License-Identifier: Apache-2.0
/*
 * veil-dns's AF_XDP answer path: the XDP program on xdp_interface, one
 * AF_XDP socket and UMEM per queue, and the XSK worker.
 *
 * A UMEM frame goes round: fill ring -> RX ring (a query) -> the answer is
 * written into the same frame -> TX ring -> completion ring -> fill ring.  A
 * frame without an answer goes straight back to the fill ring.  All frames
 * start in the fill ring, which is as large as the UMEM, so a frame handed
 * back always finds room there.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_xdp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include "veil.h"
#include "dns/coalesce.h"
#include "dns/xsk.h"
#include "dns_xsk.skel.h"

#define NFRAMES 2048              /* per queue: 8 MB of UMEM */
#define FRAME XSK_UMEM__DEFAULT_FRAME_SIZE
#define RING 1024                 /* RX and TX descriptors */
#define XBATCH 64
#define MAX_QUEUES 64
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif

struct dns_xsk_q {
	struct dns_xdp *x;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	uint8_t *area;
	uint32_t queue;
	uint32_t in_flight;        /* frames on the TX ring or not yet completed */
	uint32_t budget;           /* frames the kernel sends per sendto() (copy mode) */
	int fd;
};

struct dns_xdp {
	char ifname[IF_NAMESIZE];
	int ifindex;
	enum xdp_attach_mode mode;
	uint32_t mtu;
	int zerocopy;
	struct dns_xsk *skel;
	struct xdp_program *prog;
	int attached;
	int nq;
	struct dns_xsk_q q[MAX_QUEUES];
	int nlisten;
	uint8_t laddr[DNS_MAX_LISTEN][16]; /* IPv4 as IPv4-mapped */
	int lfd[DNS_MAX_LISTEN];
	uint64_t coalesce_max_ns; /* coalesce.h, as the UDP workers */
	uint32_t coalesce_batch;
};

static int to_mapped(const char *s, uint8_t a[16])
{
	memset(a, 0, 16);
	if (inet_pton(AF_INET, s, a + VM_ADDR4_OFF) == 1) {
		a[10] = a[11] = 0xff;
		return 0;
	}
	return inet_pton(AF_INET6, s, a) == 1 ? 0 : -1;
}

/* A copy of the program left by a daemon that did not stop cleanly: off
 * first (its sockets are gone, so it only passed packets). */
static void detach_stale(int ifindex)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
	uint32_t ids[8];
	int n = 0;

	if (libxdp_get_error(mp) || !mp)
		return;
	for (struct xdp_program *p = xdp_multiprog__next_prog(NULL, mp); p && n < 8; p = xdp_multiprog__next_prog(p, mp))
		if (!strcmp(xdp_program__name(p), "dns_xsk"))
			ids[n++] = xdp_program__id(p);
	if (xdp_multiprog__is_legacy(mp)) {
		struct xdp_program *m = xdp_multiprog__main_prog(mp);
		if (m && !strcmp(xdp_program__name(m), "dns_xsk") && n < 8)
			ids[n++] = xdp_program__id(m);
	}
	enum xdp_attach_mode mode = xdp_multiprog__attach_mode(mp);
	xdp_multiprog__close(mp);
	for (int i = 0; i < n; i++) {
		struct xdp_program *old = xdp_program__from_id(ids[i]);
		if (libxdp_get_error(old))
			continue;
		if (!xdp_program__detach(old, ifindex, mode, 0))
			vm_log("event=xdp_stale_detached ifindex=%d prog_id=%u", ifindex, ids[i]);
		xdp_program__close(old);
	}
}

static int open_queue(struct dns_xdp *x, struct dns_xsk_q *q, uint32_t queue, int xsks_fd, char *err, size_t len)
{
	struct xsk_umem_config uc = { .fill_size = NFRAMES, .comp_size = NFRAMES, .frame_size = FRAME,
				      .frame_headroom = 0, .flags = 0 };
	struct xsk_socket_config sc = { .rx_size = RING, .tx_size = RING,
					.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
					.bind_flags = XDP_USE_NEED_WAKEUP };
	uint32_t idx;
	int rc;

	q->x = x;
	q->queue = queue;
	q->area = mmap(NULL, (size_t)NFRAMES * FRAME, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		       -1, 0);
	if (q->area == MAP_FAILED) {
		q->area = NULL;
		snprintf(err, len, "queue %u: UMEM: %s", queue, strerror(errno));
		return -1;
	}
	rc = xsk_umem__create(&q->umem, q->area, (uint64_t)NFRAMES * FRAME, &q->fill, &q->comp, &uc);
	if (rc) {
		snprintf(err, len, "queue %u: xsk_umem__create: %s", queue, strerror(-rc));
		return -1;
	}
	rc = xsk_socket__create(&q->xsk, x->ifname, queue, q->umem, &q->rx, &q->tx, &sc);
	if (rc) {
		snprintf(err, len, "%s queue %u: AF_XDP socket: %s", x->ifname, queue, strerror(-rc));
		return -1;
	}
	q->fd = xsk_socket__fd(q->xsk);
	/* copy mode sends at most 32 frames per sendto() unless told more
	 * (Linux 6.17+; older kernels refuse the option and keep 32) */
	uint32_t budget = XBATCH;
	q->budget = setsockopt(q->fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof(budget)) ? 32 : XBATCH;
	if (xsk_ring_prod__reserve(&q->fill, NFRAMES, &idx) != NFRAMES) {
		snprintf(err, len, "queue %u: fill ring", queue);
		return -1;
	}
	for (uint32_t i = 0; i < NFRAMES; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = (uint64_t)i * FRAME;
	xsk_ring_prod__submit(&q->fill, NFRAMES);
	if (bpf_map_update_elem(xsks_fd, &queue, &q->fd, 0)) {
		snprintf(err, len, "queue %u: XSKMAP: %s", queue, strerror(errno));
		return -1;
	}
	struct xdp_options o;
	socklen_t ol = sizeof(o);
	if (!getsockopt(q->fd, SOL_XDP, XDP_OPTIONS, &o, &ol) && (o.flags & XDP_OPTIONS_ZEROCOPY))
		x->zerocopy = 1;
	return 0;
}

struct dns_xdp *dns_xdp_open(const struct dns_cfg *c, uint16_t port, const int *udp_fds, char *err, size_t len)
{
	struct dns_xdp *x = calloc(1, sizeof(*x));
	int rc;

	if (!x) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	snprintf(x->ifname, sizeof(x->ifname), "%s", c->xdp_interface);
	x->mode = c->xdp_skb ? XDP_MODE_SKB : XDP_MODE_NATIVE;
	x->coalesce_max_ns = (uint64_t)c->udp_coalesce_us * 1000;
	x->coalesce_batch = c->udp_coalesce_batch;
	x->ifindex = (int)if_nametoindex(x->ifname);
	if (!x->ifindex) {
		snprintf(err, len, "xdp_interface %s: %s", x->ifname, strerror(errno));
		goto fail;
	}
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", x->ifname);
	x->mtu = s >= 0 && !ioctl(s, SIOCGIFMTU, &ifr) ? (uint32_t)ifr.ifr_mtu : 1500;
	if (s >= 0)
		close(s);
	x->nlisten = c->nlisten;
	for (int i = 0; i < c->nlisten; i++) {
		to_mapped(c->listen[i], x->laddr[i]);
		x->lfd[i] = udp_fds[i];
	}

	if (!(x->skel = dns_xsk__open())) {
		snprintf(err, len, "dns_xsk: open: %s", strerror(errno));
		goto fail;
	}
	/* the longest frame a UMEM frame takes in: the kernel puts the data
	 * XDP_PACKET_HEADROOM (256) bytes into it */
	x->skel->rodata->frame_max = FRAME - 256;
	DECLARE_LIBXDP_OPTS(xdp_program_opts, po, .obj = x->skel->obj, .prog_name = "dns_xsk");
	x->prog = xdp_program__create(&po);
	if (libxdp_get_error(x->prog)) {
		x->prog = NULL;
		snprintf(err, len, "dns_xsk: libxdp: cannot use the program");
		goto fail;
	}
	detach_stale(x->ifindex);
	rc = xdp_program__attach(x->prog, x->ifindex, x->mode, 0);
	if (rc) {
		snprintf(err, len, "xdp_interface %s: attach (%s mode): %s", x->ifname,
			 x->mode == XDP_MODE_SKB ? "skb" : "native", strerror(-rc));
		goto fail;
	}
	x->attached = 1;
	int listen_fd = bpf_map__fd(x->skel->maps.dns_listen);
	for (int i = 0; i < c->nlisten; i++) {
		struct dns_listen_key k = { .port = htons(port) };
		uint32_t v = (uint32_t)i;
		memcpy(k.addr, x->laddr[i], 16);
		if (bpf_map_update_elem(listen_fd, &k, &v, 0)) {
			snprintf(err, len, "dns_listen: %s", strerror(errno));
			goto fail;
		}
	}
	int xsks_fd = bpf_map__fd(x->skel->maps.dns_xsks);
	for (int i = 0; i < c->xdp_queues && i < MAX_QUEUES; i++) {
		if (open_queue(x, &x->q[i], (uint32_t)i, xsks_fd, err, len))
			goto fail;
		x->nq++;
	}
	return x;
fail:
	dns_xdp_detach(x);
	dns_xdp_close(x);
	return NULL;
}

int dns_xdp_queues(const struct dns_xdp *x)
{
	return x->nq;
}

struct dns_xsk_q *dns_xdp_queue(struct dns_xdp *x, int i)
{
	return &x->q[i];
}

void dns_xdp_describe(const struct dns_xdp *x, char *buf, size_t len)
{
	snprintf(buf, len, "xdp_interface=%s ifindex=%d xdp_mode=%s queues=%d bind=%s tx_budget=%u prog_id=%u mtu=%u",
		 x->ifname, x->ifindex, x->mode == XDP_MODE_SKB ? "skb" : "native", x->nq,
		 x->zerocopy ? "zerocopy" : "copy", x->nq ? x->q[0].budget : 0, x->prog ? xdp_program__id(x->prog) : 0,
		 x->mtu);
}

void dns_xdp_detach(struct dns_xdp *x)
{
	if (!x || !x->attached)
		return;
	int rc = xdp_program__detach(x->prog, x->ifindex, x->mode, 0);
	if (rc)
		vm_log("event=xdp_detach_failed ifname=%s reason=\"%s\"", x->ifname, strerror(-rc));
	else
		vm_log("event=xdp_detached ifname=%s", x->ifname);
	x->attached = 0;
}

void dns_xdp_close(struct dns_xdp *x)
{
	if (!x)
		return;
	for (int i = 0; i < MAX_QUEUES; i++) {
		struct dns_xsk_q *q = &x->q[i];
		if (q->xsk)
			xsk_socket__delete(q->xsk);
		if (q->umem)
			xsk_umem__delete(q->umem);
		if (q->area)
			munmap(q->area, (size_t)NFRAMES * FRAME);
	}
	if (x->prog)
		xdp_program__close(x->prog);
	dns_xsk__destroy(x->skel);
	free(x);
}

void dns_xdp_metrics(struct dns_xdp *x, FILE *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct dns_xdp_stats t = { 0 };
	static const char *const why[DNS_FRAME_NRC] = { "ok", "not_ip", "not_udp", "ip_options", "fragment", "short",
							"bad_length" };

	if (ncpu > 0 && ncpu <= 1024) {
		struct dns_xdp_stats *v = calloc((size_t)ncpu, sizeof(*v));
		uint32_t zero = 0;
		if (v && !bpf_map_lookup_elem(bpf_map__fd(x->skel->maps.dns_xdp_stats), &zero, v))
			for (int c = 0; c < ncpu; c++) {
				t.redirected += v[c].redirected;
				t.no_socket += v[c].no_socket;
				t.not_ours += v[c].not_ours;
				t.too_big += v[c].too_big;
				for (int r = 0; r < DNS_FRAME_NRC; r++)
					t.pass[r] += v[c].pass[r];
			}
		free(v);
	}
	fputs("# HELP veildns_xdp_frames_total What the XDP program did with the interface's frames (pass: to the kernel).\n"
	      "# TYPE veildns_xdp_frames_total counter\n", out);
	fprintf(out, "veildns_xdp_frames_total{action=\"redirect\",reason=\"query\"} %llu\n",
		(unsigned long long)t.redirected);
	fprintf(out, "veildns_xdp_frames_total{action=\"pass\",reason=\"no_socket\"} %llu\n",
		(unsigned long long)t.no_socket);
	fprintf(out, "veildns_xdp_frames_total{action=\"pass\",reason=\"not_ours\"} %llu\n",
		(unsigned long long)t.not_ours);
	fprintf(out, "veildns_xdp_frames_total{action=\"pass\",reason=\"too_big\"} %llu\n", (unsigned long long)t.too_big);
	for (int r = 1; r < DNS_FRAME_NRC; r++)
		fprintf(out, "veildns_xdp_frames_total{action=\"pass\",reason=\"%s\"} %llu\n", why[r],
			(unsigned long long)t.pass[r]);
	struct xdp_statistics ks = { 0 };
	for (int i = 0; i < x->nq; i++) {
		struct xdp_statistics s;
		socklen_t sl = sizeof(s);
		if (getsockopt(x->q[i].fd, SOL_XDP, XDP_STATISTICS, &s, &sl))
			continue;
		ks.rx_dropped += s.rx_dropped;
		ks.rx_invalid_descs += s.rx_invalid_descs;
		ks.tx_invalid_descs += s.tx_invalid_descs;
		ks.rx_ring_full += s.rx_ring_full;
		ks.rx_fill_ring_empty_descs += s.rx_fill_ring_empty_descs;
	}
	fprintf(out,
		"# HELP veildns_xsk_kernel_dropped_total Frames the kernel could not hand to or take from the AF_XDP sockets.\n"
		"# TYPE veildns_xsk_kernel_dropped_total counter\n"
		"veildns_xsk_kernel_dropped_total{reason=\"rx_dropped\"} %llu\n"
		"veildns_xsk_kernel_dropped_total{reason=\"rx_ring_full\"} %llu\n"
		"veildns_xsk_kernel_dropped_total{reason=\"fill_ring_empty\"} %llu\n"
		"veildns_xsk_kernel_dropped_total{reason=\"rx_invalid_desc\"} %llu\n"
		"veildns_xsk_kernel_dropped_total{reason=\"tx_invalid_desc\"} %llu\n",
		(unsigned long long)ks.rx_dropped, (unsigned long long)ks.rx_ring_full,
		(unsigned long long)ks.rx_fill_ring_empty_descs, (unsigned long long)ks.rx_invalid_descs,
		(unsigned long long)ks.tx_invalid_descs);
}

/* ---------- the worker ---------- */

/* Completed TX frames back to the fill ring. */
static void reclaim(struct dns_xsk_q *q)
{
	uint32_t ic, ifl = 0;
	uint32_t n = xsk_ring_cons__peek(&q->comp, NFRAMES, &ic);
	if (!n)
		return;
	/* the fill ring holds every frame, so there is room */
	xsk_ring_prod__reserve(&q->fill, n, &ifl);
	for (uint32_t i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&q->fill, ifl + i) = *xsk_ring_cons__comp_addr(&q->comp, ic + i);
	xsk_ring_prod__submit(&q->fill, n);
	xsk_ring_cons__release(&q->comp, n);
	q->in_flight -= n;
}

static void refill(struct dns_xsk_q *q, const uint64_t *addr, uint32_t n)
{
	uint32_t ifl = 0;
	if (!n)
		return;
	xsk_ring_prod__reserve(&q->fill, n, &ifl);
	for (uint32_t i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&q->fill, ifl + i) = addr[i];
	xsk_ring_prod__submit(&q->fill, n);
}

/* The kernel sends the TX ring's frames when told (copy mode: at most
 * q->budget per call, then EAGAIN: call again). */
static void kick(struct worker *w, struct dns_xsk_q *q)
{
	if (!xsk_ring_prod__needs_wakeup(&q->tx))
		return;
	for (int i = 0; i < 16; i++) {
		w->cnt.xsk_kicks++;
		if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
			break;
		if (errno != EAGAIN && errno != EBUSY && errno != ENOBUFS && errno != EINTR)
			break;
	}
}

/* An answer that does not fit a frame or the link: through the kernel's
 * socket on the address the query came to (it fragments). */
static void send_by_socket(struct worker *w, struct dns_xsk_q *q, const struct dns_frame *f, const struct dns_result *r)
{
	const struct dns_xdp *x = q->x;
	for (int i = 0; i < x->nlisten; i++) {
		if (memcmp(x->laddr[i], f->daddr, 16))
			continue;
		struct sockaddr_storage ss = { 0 };
		socklen_t sl;
		if (f->family == VM_AF_INET) {
			struct sockaddr_in *a = (void *)&ss;
			a->sin_family = AF_INET;
			a->sin_port = f->sport;
			memcpy(&a->sin_addr, f->saddr + VM_ADDR4_OFF, 4);
			sl = sizeof(*a);
		} else {
			struct sockaddr_in6 *a = (void *)&ss;
			a->sin6_family = AF_INET6;
			a->sin6_port = f->sport;
			memcpy(&a->sin6_addr, f->saddr, 16);
			sl = sizeof(*a);
		}
		if (sendto(x->lfd[i], r->buf, r->len, MSG_DONTWAIT, (struct sockaddr *)&ss, sl) == (ssize_t)r->len)
			w->cnt.xsk_socket_sends++;
		return;
	}
}

void *xsk_worker(void *arg)
{
	struct worker *w = arg;
	struct dns_xsk_q *q = w->xq;
	struct dns_result r;
	uint64_t back[XBATCH];
	struct xdp_desc out[XBATCH];
	struct dns_coalesce co;

	dns_coalesce_init(&co, q->x->coalesce_batch, q->x->coalesce_max_ns, XBATCH);
	dns_coalesce_thread();
	while (!atomic_load(&stopping)) {
		uint32_t irx, itx;
		reclaim(q);
		uint32_t n = xsk_ring_cons__peek(&q->rx, XBATCH, &irx);
		if (!n) {
			if (q->in_flight)
				kick(w, q);
			struct pollfd p = { .fd = q->fd, .events = POLLIN };
			poll(&p, 1, q->in_flight ? 1 : 200);
			continue;
		}
		uint64_t t_read = dns_coalesce_now(), wait = dns_coalesce_wait(&co, n, t_read);
		w->cnt.xsk_batches++;
		struct dns_snap *s = hold(w);
		uint32_t now = (uint32_t)time(NULL), nback = 0, nout = 0;
		for (uint32_t i = 0; i < n; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, irx + i);
			uint64_t base = d->addr - d->addr % FRAME;
			uint8_t *pkt = xsk_umem__get_data(q->area, d->addr);
			struct dns_frame f;
			struct dns_query qq;
			w->cnt.xsk_rx++;
			int rc = d->addr % FRAME + d->len > FRAME ? DNS_FRAME_SHORT : dns_frame_parse(pkt, pkt + d->len, &f);
			if (rc == DNS_FRAME_OK)
				rc = dns_frame_check(pkt, &f);
			if (rc != DNS_FRAME_OK) {
				w->cnt.xsk_drop[rc]++;
				back[nback++] = base;
				continue;
			}
			dns_frame_query(&f, pkt, now, &qq);
			r.buf = w->buf;
			answer(w, s, &qq, &r);
			count(w, s, &r);
			if (!r.len || !rrl_allow(w, s, &qq, &r)) {
				back[nback++] = base;
				continue;
			}
			size_t hl = VM_ETH_HLEN + (size_t)f.l3_len + VM_UDP_HLEN;
			if (hl + r.len > FRAME || hl - VM_ETH_HLEN + r.len > q->x->mtu) {
				send_by_socket(w, q, &f, &r);
				back[nback++] = base;
				continue;
			}
			size_t fl = dns_frame_reply(q->area + base, FRAME, &f, r.buf, r.len);
			out[nout++] = (struct xdp_desc){ .addr = base, .len = (uint32_t)fl };
		}
		release(w);
		xsk_ring_cons__release(&q->rx, n);
		if (nout) {
			uint32_t got = xsk_ring_prod__reserve(&q->tx, nout, &itx);
			for (uint32_t i = 0; i < got; i++)
				*xsk_ring_prod__tx_desc(&q->tx, itx + i) = out[i];
			xsk_ring_prod__submit(&q->tx, got);
			q->in_flight += got;
			w->cnt.xsk_tx += got;
			for (uint32_t i = got; i < nout; i++) {
				w->cnt.xsk_drop[XSK_DROP_TX_FULL]++;
				back[nback++] = out[i].addr;
			}
			kick(w, q);
		}
		refill(q, back, nback);
		if (xsk_ring_prod__needs_wakeup(&q->fill))
			recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		if (wait) {
			w->cnt.coalesce_waits++;
			w->cnt.coalesce_wait_ns += wait;
			dns_coalesce_sleep_until(t_read + wait);
		}
	}
	return NULL;
}
