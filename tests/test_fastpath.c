// SPDX-License-Identifier: Apache-2.0
/*
 * The userspace gateway (the packet library over dataplane/fp_env.c, what the DPDK path runs) against
 * the XDP gateway: the same packets through gw_ingress / gw_return in
 * BPF_PROG_TEST_RUN and through vm_fp_ingress / vm_fp_return, with the same
 * config, secret, routes and neighbours.  Each case must give the same
 * verdict, the same bytes out (a SYN-ACK's TSval and so its TCP checksum are
 * the clock's and may differ) and the same counters moved.  Then thousands
 * of random mutations of those packets, held to the same rule.
 *
 * Each packet also goes through the DPDK gateway's packet path
 * (dataplane/dpdk/dp.c): into an RX ring behind a ring-backed ethdev port,
 * one worker poll (rx burst, mbuf headroom, vm_fp_*, tx buffer), out of the
 * TX ring of the port it chose; its bytes, verdict, port and counters are
 * held to the same rule.  With --hellos FILE (one TCP payload in hex a line,
 * as tshark prints ClientHellos from a capture: tests/dpdk.sh gives it the
 * lab's curl, openssl and veil-hellogen traffic) those hellos go through
 * all three as well, each over IPv4 and IPv6.  So does veil-fpgen's corpus
 * (tests/fpgen.h, what the DPDK benchmark replays), made with this test's
 * secret.
 *
 * What XDP passes on meets gw_asm (TC) as on the wire: hello reassembly is
 * compared too, its clones to the mesh read off the test interface.
 */
#include <sys/ioctl.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "bpf_env.h"
#include "frame_check.h"
#include "dp.h"
#include "fpgen.h"
#include "veil/gw.h"   /* vm_gw_cookie_tnow */

static struct vm_fp FP;
static struct vm_fp_conf CONF;
static struct vm_gw_cfg GC;
static int n_compared, n_skipped, n_hinted, n_syn_unhinted;

/* ---------- the DPDK leg: one worker on two ring-backed ports ---------- */

static char DP_PREFIX[32];          /* the EAL's runtime directory, removed at the end */
static struct vm_fp_conf DCONF;    /* CONF as the DPDK ports see it */
static struct rte_ring *RXR[2], *TXR[2];
static struct rte_mempool *POOL;
static struct vm_dp_worker *W;

/* The test namespace has one interface for everything; the DPDK worker
 * has a client port and a mesh port, both with that interface's MAC. */
static void dconf_sync(void)
{
	vm_fp_conf_neigh_set(&DCONF, NULL, 0);   /* its own next hops of the last sync */
	DCONF = CONF;                  /* shares CONF's route table, */
	DCONF.neigh = NULL;            /* not its next hops: their port differs */
	DCONF.neigh_idx = NULL;
	DCONF.neigh_cap = 0;
	DCONF.nneigh = 0;
	if (vm_fp_conf_neigh_set(&DCONF, CONF.neigh, CONF.nneigh))
		abort();
	for (int r = 0; r < 2; r++)
		memcpy(DCONF.port_mac[vm_dp.port[r] & 7], CONF.port_mac[0], 6);
	for (int i = 0; i < DCONF.nneigh; i++)
		DCONF.neigh[i].port = vm_dp.port[1];
	atomic_store(&vm_dp.conf, &DCONF);
	atomic_fetch_add(&vm_dp.gen, 1);
}

/* The packets one input made, beyond the in-place one: gw_asm's clones to
 * the mesh, the fast path's emits, everything the DPDK worker sent. */
#define MAXF 40
struct frames {
	int n;
	int port[MAXF];
	uint32_t len[MAXF];
	uint8_t buf[MAXF][2400];
};

static void frames_add(struct frames *fr, int port, const uint8_t *p, uint32_t len)
{
	if (fr->n >= MAXF || len > sizeof(fr->buf[0]))
		return;
	fr->port[fr->n] = port;
	fr->len[fr->n] = len;
	memcpy(fr->buf[fr->n++], p, len);
}

static struct frames FP_EMITS;
static void fp_emit(void *arg, uint16_t port, const uint8_t *frame, uint32_t len)
{
	frames_add(arg, port, frame, len);
}

static int CAP = -1;           /* what gw_asm's bpf_clone_redirect sends out of t0, read on t1 */
static int is_geneve(const uint8_t *f, uint32_t len)
{
	return len > 14 + 40 + 8 && ((t_be16(f + 12) == 0x0800 && f[14 + 9] == 17 && t_be16(f + 14 + 20 + 2) == VM_GENEVE_PORT) ||
				     (t_be16(f + 12) == 0x86dd && f[14 + 6] == 17 && t_be16(f + 14 + 40 + 2) == VM_GENEVE_PORT));
}

static void cap_take(int want, struct frames *fr)
{
	uint8_t f[4096];
	for (int tries = 0; fr->n < want && tries < want + 8; tries++) {
		size_t got = cap_read(CAP, f, sizeof(f));
		if (!got)
			break;
		if (is_geneve(f, got))
			frames_add(fr, 1, f, got);
	}
}

static int dp_setup(void)
{
	char *argv[] = { "test_fastpath", "--no-huge", "-m", "128", "--no-pci", "--no-shconf", "--no-telemetry",
			 "-l", "0", "--log-level", "lib.eal:error", "--file-prefix", DP_PREFIX, NULL };
	struct rte_eth_conf conf = { 0 };

	snprintf(DP_PREFIX, sizeof(DP_PREFIX), "veil-tfp-%d", (int)getpid());
	if (rte_eal_init(sizeof(argv) / sizeof(argv[0]) - 1, argv) < 0)
		return -1;
	POOL = rte_pktmbuf_pool_create("tfp", 1023, 0, 0, 4096 + RTE_PKTMBUF_HEADROOM, 0);
	if (!POOL)
		return -1;
	vm_dp.pool = POOL;
	for (int r = 0; r < 2; r++) {
		char name[32];
		snprintf(name, sizeof(name), "tfp_rx%d", r);
		RXR[r] = rte_ring_create(name, 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "tfp_tx%d", r);
		TXR[r] = rte_ring_create(name, 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "tfp_port%d", r);
		int port = RXR[r] && TXR[r] ? rte_eth_from_rings(name, &RXR[r], 1, &TXR[r], 1, 0) : -1;
		if (port < 0 || rte_eth_dev_configure(port, 1, 1, &conf) ||
		    rte_eth_rx_queue_setup(port, 0, 64, 0, NULL, POOL) || rte_eth_tx_queue_setup(port, 0, 64, 0, NULL) ||
		    rte_eth_dev_start(port))
			return -1;
		vm_dp.port[r] = port;
	}
	vm_dp.nw = 1;
	vm_dp.sweep_most = 0;   /* sweep_same runs the sweep by its own clock */
	W = vm_dp.w[0] = vm_dp_worker_new(rte_lcore_id(), 0, 4096, 0, 0);
	if (!W)
		return -1;
	FP.emit = fp_emit;
	FP.emit_arg = &FP_EMITS;
	CAP = cap_open();
	if (CAP < 0)
		return -1;
	dconf_sync();
	return 0;
}

struct dp_out {
	int kind;                  /* 'T' packets out, 'P' passed, 'D' dropped */
	struct frames fr;          /* in the order the ports were drained: client, then mesh */
};

static void dp_run(int ret, const uint8_t *in, size_t n, struct dp_out *o)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(POOL), *x;
	struct vm_dp_stats before = W->d;

	o->kind = '?';
	o->fr.n = 0;
	if (!m)
		return;
	memcpy(rte_pktmbuf_append(m, n), in, n);
	rte_ring_enqueue(RXR[ret], m);
	vm_dp_poll(W);
	for (int r = 0; r < 2; r++)
		while (rte_ring_dequeue(TXR[r], (void **)&x) == 0) {
			frames_add(&o->fr, r, rte_pktmbuf_mtod(x, uint8_t *), rte_pktmbuf_pkt_len(x));
			rte_pktmbuf_free(x);
		}
	if (o->fr.n)
		o->kind = 'T';
	else if (W->d.passed > before.passed)
		o->kind = 'P';
	else if (W->d.dropped > before.dropped)
		o->kind = 'D';
}

/* More than a clock tick at any CONFIG_HZ (the programs' TAI trails by one). */
#define CLOCK_TICK_SLACK_NS 50000000ULL

static uint64_t tai_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_TAI, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int fp_setup(void)
{
	__u32 zero = 0;
	struct ifreq ifr = { 0 };
	struct flow_seed seed;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	/* the kernel's flow seed: both sides key flows alike */
	if (bpf_map_lookup_elem(vm_gw_map_fd(&G, "flow_seed"), &zero, &seed) || (!seed.k[0] && !seed.k[1]))
		return -1;
	vm_fp_seed_set(&seed);
	if (vm_fp_init(&FP, 4096))
		return -1;
	FP.c = &CONF;
	strcpy(ifr.ifr_name, "t0");
	if (s < 0 || ioctl(s, SIOCGIFHWADDR, &ifr))
		return -1;
	close(s);
	memcpy(CONF.port_mac[0], ifr.ifr_hwaddr.sa_data, 6);

	/* the same state bpf_env.h put in the maps, read back from them */
	if (bpf_map_lookup_elem(vm_gw_map_fd(&G, "gw_config"), &zero, &GC.dp))
		return -1;
	struct cookie_secret sec[1];
	if (bpf_map_lookup_elem(vm_gw_map_fd(&G, "cookie_secret"), &zero, sec))
		return -1;
	CONF.sec = sec[0];
	GC.routes = calloc(16, sizeof(*GC.routes));
	struct route_hkey rk, nk;
	struct route_ent re;
	int fd = vm_gw_map_fd(&G, "routes"), first = 1;
	while (!bpf_map_get_next_key(fd, first ? NULL : &rk, &nk)) {
		first = 0;
		rk = nk;
		if (bpf_map_lookup_elem(fd, &rk, &re))
			continue;
		memcpy(GC.routes[GC.nroutes].key.name, re.name, VM_NAME_MAX);
		GC.routes[GC.nroutes].val = re.val;
		GC.nroutes++;
	}
	struct vip_key vk, vn;
	fd = vm_gw_map_fd(&G, "vips");
	first = 1;
	while (!bpf_map_get_next_key(fd, first ? NULL : &vk, &vn)) {
		first = 0;
		vk = vn;
		GC.vips[GC.nvips].key = vk;
		bpf_map_lookup_elem(fd, &vk, &GC.vips[GC.nvips].val);
		GC.nvips++;
	}
	vm_fp_conf_set(&CONF, &GC);
	/* the static neighbours bpf_env.h gave the kernel */
	struct vm_fp_neigh nb[2] = { 0 };
	vm_addr_parse("198.19.0.11", nb[0].addr);
	vm_addr_parse("2001:db8:ff::11", nb[1].addr);
	memcpy(nb[0].mac, NODE_MAC, 6);
	memcpy(nb[1].mac, NODE_MAC, 6);
	if (vm_fp_conf_neigh_set(&CONF, nb, 2))
		return -1;
	if (W)
		dconf_sync();
	return GC.nroutes == 2 && GC.nvips == 2 ? 0 : -1;
}

/* A route put on every side: the routes map, vm_fp's table, the DPDK
 * worker's.  0, or which of the first two failed (-1, -2). */
static int add_route(const char *name, const char *node)
{
	struct vm_cfg_route *r = &GC.routes[GC.nroutes++];
	memset(r, 0, sizeof(*r));
	strcpy(r->key.name, name);
	r->val.vm_id = 1;
	r->val.node_family = vm_addr_parse(node, r->val.node);
	int rc = vm_gw_route_put(&G, r->key.name, &r->val) ? -1 : vm_fp_conf_set(&CONF, &GC) ? -2 : 0;
	if (W)
		dconf_sync();
	return rc;
}

/* ---------- one packet through both ---------- */

struct both {
	int skip;
	__u32 xdp;                  /* XDP verdict */
	enum vm_fp_verdict fp;
	struct run r;
	uint8_t *fout;
	uint32_t flen;
	uint8_t fbuf[4096 + 256];
	struct frames xclones;      /* gw_asm's packets to the mesh */
	struct frames femits;       /* the fast path's */
	struct dp_out d;
};

#define NSTATS (sizeof(struct gw_stats) / sizeof(__u64))
#define STAT_NAMES vm_gw_stat_names   /* libveil's table, checked against struct gw_stats there */


static int verdict_same(__u32 x, enum vm_fp_verdict f)
{
	switch (x) {
	case XDP_DROP_: return f == VM_FP_DROP;
	case XDP_PASS_: return f == VM_FP_PASS;
	case XDP_TX_: return f == VM_FP_TX;
	case XDP_REDIRECT_: return f == VM_FP_FWD;
	}
	return 0;
}

/* Runs in through both; checks verdict, counters and bytes.  Returns 0 if
 * they agree, and sets b->skip when the XDP side went into reassembly. */
/* Bytes must be equal but for a SYN-ACK's TSval and so its checksum. */
static int same_bytes(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen, size_t *at)
{
	static uint8_t x[4096], y[4096];
	if (alen != blen || alen > sizeof(x)) {
		*at = 0;
		while (*at < alen && *at < blen && a[*at] == b[*at])
			(*at)++;
		return 0;
	}
	memcpy(x, a, alen);
	memcpy(y, b, blen);
	if (alen >= 14 + 20 + 40) {
		size_t l4 = 14 + (t_be16(x + 12) == 0x86dd ? 40 : 20);
		int tcp = t_be16(x + 12) == 0x86dd ? x[14 + 6] == 6 : x[14 + 9] == 6;
		if (tcp && (x[l4 + 13] & (T_SYN | T_ACK)) == (T_SYN | T_ACK) && alen == l4 + 40) {
			memset(x + l4 + 16, 0, 2); memset(y + l4 + 16, 0, 2);
			if (x[l4 + 26] == 8) { memset(x + l4 + 28, 0, 4); memset(y + l4 + 28, 0, 4); }
		}
	}
	for (*at = 0; *at < alen; (*at)++)
		if (x[*at] != y[*at])
			return 0;
	return 1;
}

/* Runs in through all three: the XDP program (and, for what it passes on,
 * gw_asm in TC, as on the wire), vm_fp, and the DPDK worker; checks verdict,
 * counters, bytes and every extra packet.  Returns 0 if they agree; sets
 * b->skip when a cookie time window turned between the runs. */
static int both_run(int ret, const uint8_t *in, size_t n, struct both *b, const char *what, int quiet)
{
	struct gw_stats xb = gw_now(), xa, fb = FP.st, db = W->fp.st;
	uint16_t port = 0xffff;
	__u64 *xbp = (__u64 *)&xb, *xap = (__u64 *)&xa, *fbp = (__u64 *)&fb, *fap = (__u64 *)&FP.st;
	__u64 *dbp = (__u64 *)&db, *dap = (__u64 *)&W->fp.st;

	memset(b, 0, offsetof(struct both, fbuf));
	b->xclones.n = b->femits.n = 0;
	/* the DPDK worker's first pass (vm_fp_hint_ahead reads a plain IPv4
	 * packet's key at fixed offsets): every packet that has a flow gets
	 * the library's own key and hash from it */
	struct vm_fp_hint h_of, h_ahead;
	if (!ret && n >= 14 + 20 + 20 && in[12] == 0x08 && in[13] == 0 && in[14] == 0x45 && in[23] == 6 &&
	    vm_tcp_syn_only(in[14 + 20 + 13])) {
		n_syn_unhinted++;   /* a SYN looks up no flow: the one-worker pass does not hint it */
		CHECK(vm_fp_hint_ahead(&FP, ret, in, (uint32_t)n, &h_ahead), "%s: vm_fp_hint_ahead hinted a SYN", what);
	} else if (!vm_fp_hint_of(ret, in, (uint32_t)n, &h_of)) {
		n_hinted++;
		CHECK(!vm_fp_hint_ahead(&FP, ret, in, (uint32_t)n, &h_ahead) && vm_flow_key_eq(&h_of.key, &h_ahead.key) &&
			      h_of.hash == h_ahead.hash,
		      "%s: vm_fp_hint_ahead's key or hash is not vm_fp_hint_of's", what);
	}
	memcpy(b->fbuf + 256, in, n);
	b->fout = b->fbuf + 256;
	b->flen = n;
	uint64_t t0 = tai_now();
	xdp_run(ret ? GW_RET : GW_ING, in, n, &b->r);
	if (!ret && !b->r.rc && b->r.verdict == XDP_PASS_ && n >= 14) {
		/* on the wire, what XDP passes meets gw_asm in TC */
		struct run tr;
		tc_run_on(GW_ASM, in, n, &tr, ifidx);
		if (!tr.rc && tr.verdict == TC_ACT_REDIRECT_)
			b->r = tr, b->r.verdict = XDP_TX_;
		else if (!tr.rc && tr.verdict == TC_ACT_SHOT_)
			b->r.verdict = XDP_DROP_;
	}
	uint64_t t1 = tai_now();
	FP_EMITS.n = 0;
	b->fp = ret ? vm_fp_return(&FP, 0, &b->fout, &b->flen, &port)
		    : vm_fp_ingress(&FP, 0, &b->fout, &b->flen, t1, &port);
	b->femits = FP_EMITS;
	dp_run(ret, in, n, &b->d);
	uint64_t t2 = tai_now();
	b->xdp = b->r.verdict;
	xa = gw_now();
	cap_take((int)(xa.asm_sent - xb.asm_sent), &b->xclones);
	/* A cookie time window that turned between the runs makes different
	 * (and all right) cookies: not a comparison. */
	uint64_t w = 1000000000ULL * (GC.dp.cookie_window_s ? GC.dp.cookie_window_s : 64);
	/* the programs' TAI trails by up to a clock tick (gw_tai_ns) */
	uint64_t t0s = t0 - CLOCK_TICK_SLACK_NS;
	if (t0s / w != t1 / w || t0s / w != t2 / w) {
		b->skip = 1;
		n_skipped++;
		return 0;
	}
	n_compared++;
	int bad = 0;
	size_t at;
#define DIFF(...) do { if (!quiet) CHECK(0, __VA_ARGS__); bad = 1; } while (0)
	if (b->r.rc || !verdict_same(b->xdp, b->fp))
		DIFF("%s: XDP verdict %u, fast path %d", what, b->xdp, b->fp);
	for (size_t i = 0; i < NSTATS; i++) {
		if (xap[i] - xbp[i] != fap[i] - fbp[i])
			DIFF("%s: counter %s moved %llu in XDP, %llu in the fast path", what, STAT_NAMES[i],
			     (unsigned long long)(xap[i] - xbp[i]), (unsigned long long)(fap[i] - fbp[i]));
		if (xap[i] - xbp[i] != dap[i] - dbp[i])
			DIFF("%s: counter %s moved %llu in XDP, %llu in the DPDK worker", what, STAT_NAMES[i],
			     (unsigned long long)(xap[i] - xbp[i]), (unsigned long long)(dap[i] - dbp[i]));
	}
	/* the extra packets: gw_asm's clones, the fast path's emits */
	if (b->xclones.n != b->femits.n)
		DIFF("%s: %d packets to the mesh from gw_asm, %d from the fast path", what, b->xclones.n, b->femits.n);
	for (int i = 0; i < b->xclones.n && i < b->femits.n; i++)
		if (!same_bytes(b->xclones.buf[i], b->xclones.len[i], b->femits.buf[i], b->femits.len[i], &at))
			DIFF("%s: reassembled segment %d differs at byte %zu (%u vs %u bytes)", what, i, at,
			     b->xclones.len[i], b->femits.len[i]);
	/* the DPDK worker: what it sent, drained port by port (the client's,
	 * then the mesh's); on a port, the clones (sent while the packet was
	 * handled), then the in-place packet; Geneve out of the mesh port,
	 * anything else the client's */
	struct frames want = { 0 };
	int out = b->xdp == XDP_TX_ || b->xdp == XDP_REDIRECT_, out_port = out && is_geneve(b->r.out, b->r.len);
	if (out && out_port == 0)
		frames_add(&want, 0, b->r.out, b->r.len);
	for (int i = 0; i < b->xclones.n; i++)
		frames_add(&want, 1, b->xclones.buf[i], b->xclones.len[i]);
	if (out && out_port == 1)
		frames_add(&want, 1, b->r.out, b->r.len);
	int dk = b->d.kind, wk = want.n ? 'T' : b->xdp == XDP_PASS_ ? 'P' : 'D';
	if (dk != wk)
		DIFF("%s: XDP verdict %u and %d clones, DPDK worker '%c'", what, b->xdp, b->xclones.n, dk);
	else if (want.n != b->d.fr.n)
		DIFF("%s: %d packets out of XDP/gw_asm, %d out of the DPDK worker", what, want.n, b->d.fr.n);
	else
		for (int i = 0; i < want.n; i++)
			if (want.port[i] != b->d.fr.port[i] ||
			    !same_bytes(want.buf[i], want.len[i], b->d.fr.buf[i], b->d.fr.len[i], &at))
				DIFF("%s: DPDK packet %d (%s port) differs from XDP's at byte %zu", what, i,
				     b->d.fr.port[i] ? "mesh" : "client", at);
	/* what XDP and gw_asm sent (the others sent the same bytes), held to
	 * the rules of a frame sent on: whole, and the packet's own segment
	 * with its checksums holding if they held coming in (frame_check.h:
	 * a shared library's bug shows in all three alike) */
	const char *rule = out ? frame_sent_ok(in, n, b->r.out, b->r.len, 1) : "";
	if (*rule)
		DIFF("%s: XDP's frame out: %s", what, rule);
	for (int i = 0; i < b->xclones.n; i++)
		if (*(rule = frame_sent_ok(in, n, b->xclones.buf[i], b->xclones.len[i], 0)))
			DIFF("%s: gw_asm's segment %d: %s", what, i, rule);
	if (bad || b->fp == VM_FP_DROP)
		return bad;
	if (b->fp != VM_FP_PASS && port != 0)
		DIFF("%s: out port %u", what, port);
	if (!same_bytes(b->r.out, b->r.len, b->fout, b->flen, &at))
		DIFF("%s: bytes differ: XDP %u bytes, fast path %u, first difference at %zu", what, b->r.len, b->flen, at);
#undef DIFF
	return bad;
}

#define SAME(in, n, what) do { struct both b_; CHECK(!both_run(0, in, n, &b_, what, 0), "%s", what); } while (0)

/* The handshake through both; the cookie must be the same. */
static uint32_t both_handshake(int v6, uint16_t sport, uint32_t isn, uint32_t *gw_ts)
{
	uint8_t in[256];
	struct both b;
	struct t_pkt p = client_pkt(v6, sport, isn, 0, T_SYN);
	p.opts = SYN_OPTS;
	p.optlen = 20;
	size_t n = t_build(&p, in);
	CHECK(!both_run(0, in, n, &b, "SYN", 0), "SYN");
	size_t l3 = v6 ? 40 : 20;
	*gw_ts = opts_of(b.r.out + 14 + l3).tsval;
	return t_be32(b.r.out + 14 + l3 + 4);
}

/* Hello h of the client's port split at cut, after the handshake run
 * through all three: its two segments into in[0] and in[1] (not run), their
 * lengths into n[0] and n[1]; the cookie. */
static uint32_t both_two_segments(uint16_t sport, uint32_t isn, const struct hb *h, size_t cut, uint8_t in[2][2000],
				  size_t n[2])
{
	uint32_t ts, cookie = both_handshake(0, sport, isn, &ts);

	n[0] = hello_pkt(0, sport, isn, cookie, ts, h->b, cut, in[0]);
	n[1] = hello_pkt(0, sport, isn + cut, cookie, ts, h->b + cut, h->n - cut, in[1]);
	return cookie;
}

/* ---------- cases ---------- */

static void syn_same(void)
{
	uint8_t in[256];
	uint32_t ts;
	both_handshake(0, 41000, 7, &ts);
	both_handshake(1, 41001, 0xfffffff0, &ts);
	struct t_pkt p = client_pkt(0, 41002, 1, 0, T_SYN);
	SAME(in, t_build(&p, in), "SYN without options");
	static const uint8_t mss_only[4] = { 2, 4, 0x02, 0x18 };
	p.opts = mss_only;
	p.optlen = 4;
	SAME(in, t_build(&p, in), "SYN with MSS only");
	p.flags = T_SYN | T_FIN;
	SAME(in, t_build(&p, in), "SYN+FIN");
}

static void cookie_acks_same(void)
{
	uint8_t in[256];
	uint32_t ts, c = both_handshake(0, 41010, 100, &ts);
	struct t_pkt p = client_pkt(0, 41010, 101, c + 1, T_ACK);
	SAME(in, t_build(&p, in), "cookie ACK");
	p.ack ^= 0x100;
	SAME(in, t_build(&p, in), "bad cookie ACK");
	p.flags = T_RST;
	SAME(in, t_build(&p, in), "RST without a flow");
	p.flags = T_FIN;
	SAME(in, t_build(&p, in), "FIN without a flow");
}

/* Every side's flow gate (include/veil/gw.h) off, its window begun now:
 * XDP's on every CPU, the fast path's and the DPDK worker's.  Each side
 * ticks its gate once per client packet, but some cases run packets
 * through one side only, so their windows drift apart; a case that needs
 * them in step starts here. */
static int gates_reset(void)
{
	FP.gate = (struct gw_flow_gate){ .bad_at = FP.st.bad_cookie };
	W->fp.gate = (struct gw_flow_gate){ .bad_at = W->fp.st.bad_cookie };
	return vm_gw_gates_off(&G);
}

/* An ACK flood (bare ACKs on unknown tuples, wrong cookies) turns every
 * side's gate on at the same packet; from then on a bare ACK that finds no
 * flow past its window's probes is dropped without its cookie's check on
 * every side (ack_unjudged), a handshake's good one too, while a FIN's
 * cookie is checked and a hello's routed; a window of a flow's packets
 * turns them off again, and a handshake's ACK is judged again
 * (cookie_ack). */
static void ack_flood_same(void)
{
	uint8_t in[1024];
	uint32_t ts, c;
	struct t_pkt p;
	size_t n;
	int bad = 0;
	struct both b;

	CHECK(!gates_reset(), "the gates reset");
	/* the gates' windows in step: two windows of a flow's packets leave
	 * every gate off, its window empty */
	c = both_handshake(0, 42200, 100, &ts);
	n = hello_pkt(0, 42200, 100, c, ts, hello_curl, hello_curl_len, in);
	SAME(in, n, "flood: a connection's hello");
	for (int i = 0; i < 2 * VM_FLOW_GATE_WINDOW - 1; i++) {
		p = client_pkt(0, 42200, 101 + hello_curl_len, c + 100, T_ACK);
		bad |= both_run(0, in, t_build(&p, in), &b, "flood: the connection's ACKs", 0);
	}
	CHECK(!bad && !FP.gate.on && !W->fp.gate.on && !FP.gate.seen && !W->fp.gate.seen, "the gates off and in step");
	struct gw_stats f0 = FP.st;
	for (int i = 0; i < 2 * VM_FLOW_GATE_WINDOW; i++) {
		p = client_pkt(0, (uint16_t)(52000 + i), 8800000 + i, 12345, T_ACK);
		bad |= both_run(0, in, t_build(&p, in), &b, "flood: a forged ACK", 0);
	}
	CHECK(!bad && FP.gate.on && W->fp.gate.on, "the flood's ACKs alike everywhere, the gates on");
	/* the lookup that ends a window is the next one's first: the gates
	 * went on at the flood's 64th ACK; from it on, each window's first
	 * VM_FLOW_GATE_PROBES are judged (the 64th to the 71st, and the
	 * 128th, which began the next window), the rest not */
	CHECK(FP.st.bad_cookie - f0.bad_cookie == VM_FLOW_GATE_WINDOW + VM_FLOW_GATE_PROBES &&
		      FP.st.ack_unjudged - f0.ack_unjudged == VM_FLOW_GATE_WINDOW - VM_FLOW_GATE_PROBES,
	      "judged (bad_cookie) %llu, unjudged %llu",
	      (unsigned long long)(FP.st.bad_cookie - f0.bad_cookie), (unsigned long long)(FP.st.ack_unjudged - f0.ack_unjudged));
	/* the rest of this window's probes */
	for (int i = 1; i < VM_FLOW_GATE_PROBES; i++) {
		p = client_pkt(0, (uint16_t)(52200 + i), 8800000 + i, 12345, T_ACK);
		bad |= both_run(0, in, t_build(&p, in), &b, "flood: a forged ACK in a probe", 0);
	}
	f0 = FP.st;
	CHECK(!bad && FP.gate.seen == VM_FLOW_GATE_PROBES - 1, "the probes done (%u)", FP.gate.seen);
	c = both_handshake(0, 42201, 200, &ts);
	p = client_pkt(0, 42201, 201, c + 1, T_ACK);
	SAME(in, t_build(&p, in), "flood: a handshake's good ACK, unjudged");
	p = client_pkt(0, 42202, 201, 12345, T_ACK | T_FIN);
	SAME(in, t_build(&p, in), "flood: a FIN with no flow, judged and answered");
	n = hello_pkt(0, 42201, 200, c, ts, hello_curl, hello_curl_len, in);
	SAME(in, n, "flood: a hello, its cookie checked, routed");
	CHECK(FP.st.ack_unjudged == f0.ack_unjudged + 1 && FP.st.cookie_ack == f0.cookie_ack &&
		      FP.st.fin_answered == f0.fin_answered + 1 && FP.st.hello_routed == f0.hello_routed + 1,
	      "unjudged %llu, cookie_ack %llu, fin_answered %llu, hello_routed %llu",
	      (unsigned long long)(FP.st.ack_unjudged - f0.ack_unjudged), (unsigned long long)(FP.st.cookie_ack - f0.cookie_ack),
	      (unsigned long long)(FP.st.fin_answered - f0.fin_answered),
	      (unsigned long long)(FP.st.hello_routed - f0.hello_routed));
	for (int i = 0; i < 2 * VM_FLOW_GATE_WINDOW; i++) {
		p = client_pkt(0, 42200, 101 + hello_curl_len, c + 100, T_ACK);
		bad |= both_run(0, in, t_build(&p, in), &b, "flood over: the connection's ACKs", 0);
	}
	CHECK(!bad && !FP.gate.on && !W->fp.gate.on, "the flood over: the gates off");
	f0 = FP.st;
	c = both_handshake(0, 42203, 300, &ts);
	p = client_pkt(0, 42203, 301, c + 1, T_ACK);
	SAME(in, t_build(&p, in), "a handshake's good ACK after the flood, judged");
	CHECK(FP.st.cookie_ack == f0.cookie_ack + 1 && FP.st.ack_unjudged == f0.ack_unjudged, "cookie_ack again");
}

static void hello_routed_same(void)
{
	uint8_t in[1024];
	uint32_t ts, c = both_handshake(0, 41020, 9000, &ts);
	size_t n = hello_pkt(0, 41020, 9000, c, ts, hello_curl, hello_curl_len, in);
	SAME(in, n, "hello over IPv4 to an IPv4 node");
	struct t_pkt p = client_pkt(0, 41020, 9000 + 1 + hello_curl_len, c + 100, T_ACK);
	SAME(in, t_build(&p, in), "established ACK");
	n = hello_pkt(0, 41020, 9000, c, ts, hello_curl, hello_curl_len, in);
	SAME(in, n, "hello retransmitted");

	/* IPv6 client, wildcard route to an IPv6 node */
	uint8_t hello[600];
	memcpy(hello, hello_curl, hello_curl_len);
	uint8_t *sni = memmem(hello, hello_curl_len, "www.veil.test", 13);
	CHECK(sni, "fixture has the name");
	if (!sni)
		return;
	memcpy(sni, "Q.apps.fp.xyz", 13);
	add_route("*.apps.fp.xyz", "2001:db8:ff::11");
	c = both_handshake(1, 41021, 77, &ts);
	n = hello_pkt(1, 41021, 77, c, ts, hello, hello_curl_len, in);
	SAME(in, n, "hello over IPv6 by a wildcard");
	/* IPv4 client to an IPv6 node */
	c = both_handshake(0, 41022, 78, &ts);
	n = hello_pkt(0, 41022, 78, c, ts, hello, hello_curl_len, in);
	SAME(in, n, "IPv4 client to an IPv6 node");
	p = client_pkt(0, 41022, 5, 0, T_SYN);
	SAME(in, t_build(&p, in), "SYN on a known flow");
	p.flags = T_ACK;
	SAME(in, t_build(&p, in), "ACK on the flow near its sequence: the live connection's");
	struct gw_stats sr = W->fp.st;
	p.seq = 3000000;
	SAME(in, t_build(&p, in), "bare ACK far from the flow's sequence, a wrong cookie: checked, forwarded");
	p.payload = hello + 100;
	p.plen = 200;
	SAME(in, t_build(&p, in), "data far from the flow's sequence, not a hello: forwarded unchecked");
	CHECK(W->fp.st.handshake_on_flow == sr.handshake_on_flow + 1 && W->fp.st.flow_replaced == sr.flow_replaced,
	      "one ACK checked, nothing replaced");
	c = both_handshake(0, 41022, 5000000, &ts);
	n = hello_pkt(0, 41022, 5000000, c, ts, hello, hello_curl_len, in);
	SAME(in, n, "a new handshake's hello on the live flow's tuple: the old flow replaced");
	CHECK(W->fp.st.flow_replaced == sr.flow_replaced + 1, "the flow replaced");
	/* a node with no neighbour */
	memcpy(sni, "nonbr.fp.xyzz", 13);
	add_route("nonbr.fp.xyzz", "198.19.0.99");
	c = both_handshake(0, 41023, 79, &ts);
	n = hello_pkt(0, 41023, 79, c, ts, hello, hello_curl_len, in);
	struct both b;
	both_run(0, in, n, &b, "node without a neighbour", 1);
	/* The kernel FIB answers NO_NEIGH and XDP passes to the stack for ARP;
	 * compare only that neither forwards. */
	CHECK(b.fp == VM_FP_DROP && (b.xdp == XDP_DROP_ || b.xdp == XDP_PASS_), "no neighbour: XDP %u, fast path %d",
	      b.xdp, b.fp);
}

static void refusals_same(void)
{
	uint8_t in[1024], hello[600];
	memcpy(hello, hello_curl, hello_curl_len);
	memcpy(memmem(hello, hello_curl_len, "www.veil.test", 13), "zzz", 3);
	uint32_t ts, c = both_handshake(0, 41030, 1, &ts);
	SAME(in, hello_pkt(0, 41030, 1, c, ts, hello, hello_curl_len, in), "unknown name, alert");
	c = both_handshake(1, 41031, 1, &ts);
	SAME(in, hello_pkt(1, 41031, 1, c, ts, hello, hello_curl_len, in), "unknown name, RST");
	memcpy(memmem(hello, hello_curl_len, "zzz.veil.test", 13), "ww_.veil.test", 13);
	c = both_handshake(0, 41032, 1, &ts);
	SAME(in, hello_pkt(0, 41032, 1, c, ts, hello, hello_curl_len, in), "bad name");
	size_t nl;
	uint8_t *nosni = t_slurp("tests/fixtures/hello-nosni.bin", &nl);
	c = both_handshake(0, 41033, 1, &ts);
	if (nosni)
		SAME(in, hello_pkt(0, 41033, 1, c, ts, nosni, nl, in), "no SNI");
	free(nosni);
	static const uint8_t http[] = "GET / HTTP/1.1\r\n\r\n";
	c = both_handshake(0, 41034, 1, &ts);
	SAME(in, hello_pkt(0, 41034, 1, c, ts, http, sizeof(http) - 1, in), "not TLS");
	/* a route's name then 1 to 200 NUL bytes (fuzz_fastpath found vm_fp
	 * routing one as the route when its lookup's probe passed the
	 * route's slot): no host name, refused, never routed */
	static struct hb h;
	char nm[256];
	add_route("w", "198.19.0.11");
	struct gw_stats x0 = gw_now();
	for (int k = 1; k <= 200; k++) {
		nm[0] = 'w';
		memset(nm + 1, 'X', (size_t)k);
		nm[1 + k] = 0;
		size_t hn = hb_browser(&h, nm, 517);
		uint8_t *at = memmem(h.b, hn, nm, (size_t)k + 1);
		CHECK(at != NULL, "the name in the hello");
		if (!at)
			break;
		memset(at + 1, 0, (size_t)k);
		char what[64];
		snprintf(what, sizeof(what), "a route's name, then %d NULs", k);
		c = both_handshake(k & 1, (uint16_t)(41100 + k), 1, &ts);
		static uint8_t big[2400];
		SAME(big, hello_pkt(k & 1, (uint16_t)(41100 + k), 1, c, ts, h.b, hn, big), what);
	}
	struct gw_stats x1 = gw_now();
	CHECK(x1.hello_routed == x0.hello_routed && x1.bad_name - x0.bad_name == 200,
	      "a route's name then NULs: %llu routed, %llu bad names", (unsigned long long)(x1.hello_routed - x0.hello_routed),
	      (unsigned long long)(x1.bad_name - x0.bad_name));
}

/* Every captured ClientHello in tests/fixtures, from a new client over
 * IPv4 and IPv6: routed or refused, the same way. */
static void fixtures_same(void)
{
	static const char *const files[] = { "hello-curl.bin", "hello-curl-h2.bin", "hello-openssl.bin",
					     "hello-openssl-tls12.bin", "hello-nosni.bin" };
	uint8_t in[1024];
	char path[128], what[96];
	uint16_t sport = 41100;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t hl;
		snprintf(path, sizeof(path), "tests/fixtures/%s", files[i]);
		uint8_t *h = t_slurp(path, &hl);
		CHECK(h && hl < 900, "%s read", path);
		if (!h || hl >= 900)
			continue;
		for (int v6 = 0; v6 < 2; v6++) {
			uint32_t ts, c = both_handshake(v6, sport, 1000 * sport, &ts);
			snprintf(what, sizeof(what), "%s over IPv%d", files[i], v6 ? 6 : 4);
			SAME(in, hello_pkt(v6, sport, 1000 * sport, c, ts, h, hl, in), what);
			sport++;
		}
		free(h);
	}
}

static void other_traffic_same(void)
{
	uint8_t in[256];
	struct t_pkt p = client_pkt(0, 41040, 1, 0, T_SYN);
	p.dport = 80;
	SAME(in, t_build(&p, in), "not a VIP port");
	p = client_pkt(1, 41040, 1, 0, T_SYN);
	p.dst[15] = 9;
	SAME(in, t_build(&p, in), "not a VIP address");
	uint8_t arp[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06 };
	SAME(arp, sizeof(arp), "ARP");
	p = client_pkt(0, 41041, 1, 0, T_SYN);
	size_t n = t_build(&p, in);
	in[14 + 9] = 17;
	SAME(in, n, "UDP");
	p = client_pkt(0, 41041, 1, 0, T_SYN);
	n = t_build(&p, in);
	in[14 + 6] = 0x20;      /* MF */
	SAME(in, n, "fragment");
	p = client_pkt(1, 41041, 1, 0, T_SYN);
	n = t_build(&p, in);
	in[14 + 6] = 0;         /* hop-by-hop header */
	SAME(in, n, "IPv6 extension header");
	/* an IP header of another version than the Ethernet type says: not
	 * IP to us (pass_not_tcp), for the kernel to drop */
	for (int v6 = 0; v6 < 2; v6++) {
		struct gw_stats g0 = gw_now();
		p = client_pkt(v6, 41042, 1, 0, T_SYN);
		p.opts = SYN_OPTS;
		p.optlen = 20;
		n = t_build(&p, in);
		in[14] = (uint8_t)((v6 ? 0x4 : 0xc) << 4 | (in[14] & 0x0f));
		SAME(in, n, v6 ? "an IPv6 frame of version 4" : "an IPv4 frame of version 12");
		CHECK(gw_now().pass_not_tcp > g0.pass_not_tcp && gw_now().syn_cookie_sent == g0.syn_cookie_sent,
		      "IPv%d: no SYN-ACK, counted pass_not_tcp", v6 ? 6 : 4);
	}
}

/* Hellos that need reassembly: through XDP + gw_asm, vm_fp and the DPDK
 * worker segment by segment; ACKs, refusals and the segments re-sent to the
 * node must be the same bytes. */
static void reassembly_same(void)
{
	static uint8_t rec[20000], in[4][2000];
	struct hb h;
	char what[128];
	uint16_t sport = 43100;
	/* again: a segment the client sends once more after the hello was
	 * routed (the VM has not ACKed it): every held one goes again */
	struct { const char *name; size_t size, frag, mss; int v6; const int *order; int nseg, again; } cs[] = {
		{ "www.veil.test", 1800, 0, 1360, 0, NULL, 0, -1 },        /* name in the first, more to come */
		{ "x.apps.fp.xyz", 3000, 512, 1300, 1, (const int[]){ 2, 0, 1 }, 3, 1 },  /* records; one early */
		{ "nobody.veil.test", 1800, 0, 1360, 0, NULL, 0, -1 },     /* refused after reassembly */
		{ "www.veil.test", 16000, 1000, 536, 1, NULL, 0, -1 },     /* ~30 segments */
		{ "www.veil.test", 6000, 0, 1200, 0, (const int[]){ 0, 0, 1, 2, 3, 4 }, 6, 2 }, /* a duplicate */
	};
	add_route("www.veil.test", "198.19.0.11");
	struct gw_stats b0 = W->fp.st;
	struct vm_dp_stats d0 = W->d;
	for (size_t c = 0; c < sizeof(cs) / sizeof(cs[0]); c++) {
		size_t n = hb_browser(&h, cs[c].name, cs[c].size);
		const uint8_t *hello = h.b;
		if (cs[c].frag) {
			n = hb_split_records(h.b, n, cs[c].frag, rec);
			hello = rec;
		}
		uint32_t isn = 3000000 + 100000 * c, ts;
		uint32_t cookie = both_handshake(cs[c].v6, sport, isn, &ts);
		size_t nseg = (n + cs[c].mss - 1) / cs[c].mss;
		int steps = cs[c].order ? cs[c].nseg : (int)nseg;
		for (int st = 0; st < steps + (cs[c].again >= 0); st++) {
			size_t k = st == steps ? (size_t)cs[c].again : cs[c].order ? (size_t)cs[c].order[st] : (size_t)st;
			if (k >= nseg)
				continue;
			size_t at = k * cs[c].mss, len = at + cs[c].mss > n ? n - at : cs[c].mss;
			size_t pl = hello_pkt(cs[c].v6, sport, isn + at, cookie, ts, hello + at, len, in[0]);
			snprintf(what, sizeof(what), "%s (%zu B, records %zu) segment %zu%s over IPv%d", cs[c].name, n,
				 cs[c].frag, k, st == steps ? " again" : "", cs[c].v6 ? 6 : 4);
			SAME(in[0], pl, what);
		}
		sport++;
	}
	struct gw_stats a = W->fp.st;
	CHECK(a.asm_routed - b0.asm_routed == 4 && a.refused_alert - b0.refused_alert == 1 && a.asm_dup - b0.asm_dup == 1 &&
	      a.asm_early - b0.asm_early == 1 && a.hello_resent - b0.hello_resent == 2,
	      "reassembled %llu, refused %llu, duplicates %llu, early %llu, resent %llu",
	      (unsigned long long)(a.asm_routed - b0.asm_routed), (unsigned long long)(a.refused_alert - b0.refused_alert),
	      (unsigned long long)(a.asm_dup - b0.asm_dup), (unsigned long long)(a.asm_early - b0.asm_early),
	      (unsigned long long)(a.hello_resent - b0.hello_resent));
	printf("# fastpath: reassembly: %llu hellos routed from %llu segments sent by the DPDK worker (%llu packets out)\n",
	       (unsigned long long)(a.asm_routed - b0.asm_routed), (unsigned long long)(a.asm_sent - b0.asm_sent),
	       (unsigned long long)(W->d.tx - d0.tx));
}

/* Every hello table emptied in all three (gw_asm's hello_asm and its tags; vm_fp's and
 * the DPDK worker's hellos, early segments and tombstones). */
static void asm_tables_empty(void)
{
	static struct asm_val zero;
	static struct asm_tags tzero;
	int fd = vm_gw_map_fd(&G, "hello_asm"), tfd = vm_gw_map_fd(&G, "hello_asm_tags");
	struct vm_fp *fps[2] = { &FP, &W->fp };

	for (__u32 i = 0; i < VM_ASM_SLOTS; i++)
		bpf_map_update_elem(fd, &i, &zero, BPF_ANY);
	for (__u32 b = 0; b < VM_ASM_BUCKETS_MAX; b++)
		bpf_map_update_elem(tfd, &b, &tzero, BPF_ANY);
	for (int f = 0; f < 2; f++)
		for (__u32 i = 0; i < fps[f]->asm_cap; i++)
			fps[f]->asm_tab[i].s.used = fps[f]->early_tab[i].s.used = fps[f]->tomb_tab[i].s.used = 0;
}

/* More hellos in reassembly than the tables hold (1024: gw_asm's slots,
 * the fast path's probed table): every first segment is kept and ACKed by
 * all three, the oldest hellos making room (a slot reused for another
 * connection is a new hello, never a collision), and a new connection's
 * hello still goes through. */
static void asm_table_full_same(void)
{
	static uint8_t in[2000];
	struct hb h;
	char what[96];
	size_t n = hb_browser(&h, "www.veil.test", 1800), cut = 1360, pl;
	const unsigned conns = VM_ASM_SLOTS + VM_ASM_SLOTS / 2;
	uint32_t isn = 0, ts = 0, cookie = 0;
	uint16_t sport = 0;

	add_route("www.veil.test", "198.19.0.11");
	struct gw_stats b0 = W->fp.st, f0 = FP.st;
	for (unsigned i = 0; i <= conns; i++) {
		sport = (uint16_t)(20000 + i);
		isn = 5000000 + i * 7919;
		cookie = both_handshake(0, sport, isn, &ts);
		pl = hello_pkt(0, sport, isn, cookie, ts, h.b, cut, in);
		snprintf(what, sizeof(what), "first segment of hello %u of %u", i + 1, conns + 1);
		SAME(in, pl, what);
	}
	pl = hello_pkt(0, sport, isn + cut, cookie, ts, h.b + cut, n - cut, in);
	SAME(in, pl, "the last hello's second segment");
	struct gw_stats a = W->fp.st, f = FP.st;
	CHECK(a.asm_stored - b0.asm_stored == conns + 1 && f.asm_stored - f0.asm_stored == conns + 1 &&
	      a.flow_collision == b0.flow_collision && f.flow_collision == f0.flow_collision,
	      "kept %llu / %llu of %u, collisions %llu / %llu",
	      (unsigned long long)(a.asm_stored - b0.asm_stored), (unsigned long long)(f.asm_stored - f0.asm_stored),
	      conns + 1, (unsigned long long)(a.flow_collision - b0.flow_collision),
	      (unsigned long long)(f.flow_collision - f0.flow_collision));
	CHECK(a.asm_routed - b0.asm_routed == 1 && f.asm_routed - f0.asm_routed == 1, "the last hello routed");
	/* Which older hellos each table still holds depends on its eviction
	 * (gw_asm's buckets, the fast path's probe window): emptied, so the
	 * tests after this one meet the same state in all three. */
	asm_tables_empty();
}

/* hellos_max in the DPDK gateway: each worker's tables of hellos being
 * reassembled and early segments hold its share, a power of two, 64 at
 * least (veil-gw-dpdk passes hellos_max / workers); 0 gives the default. */
static void asm_cap_sized(void)
{
	static const uint32_t ask[][2] = { { 0, VM_FP_ASM_MAX }, { 1, 64 }, { 100, 128 }, { 256, 256 }, { 8192, 8192 } };
	for (size_t i = 0; i < sizeof(ask) / sizeof(ask[0]); i++) {
		struct vm_fp fp;
		int rc = vm_fp_init_mem(&fp, 1024, ask[i][0], NULL);
		CHECK(!rc && fp.asm_cap == ask[i][1], "hellos %u: %u slots", ask[i][0], rc ? 0 : fp.asm_cap);
		if (!rc) {
			/* the last slot is there to be written */
			fp.asm_tab[fp.asm_cap - 1].s.used = 1;
			fp.early_tab[fp.asm_cap - 1].s.used = 1;
			vm_fp_free(&fp);
		}
	}
}

/* The VM's ACK (ack, in the client's space) through all three's return
 * path: 1 if it reached the client as a RST at seq (its checksum right),
 * 0 if as the ACK it was, -1 if they disagree or it went elsewhere. */
static int both_vm_ack(uint16_t sport, uint32_t seq, uint32_t ack, const char *what)
{
	static uint8_t rp[512];
	struct both b;
	if (both_run(1, rp, vm_reply_pkt(0, sport, seq, ack, T_ACK, rp), &b, what, 0) || b.fp != VM_FP_FWD ||
	    b.flen < 14 + 20 + 20)
		return -1;
	const uint8_t *ip = b.fout + 14, *tcp = ip + 20;
	if (t_be32(tcp + 4) != seq || t_be32(tcp + 8) != ack || t_l4_verify(0, ip, tcp, b.flen - 34, 6))
		return -1;
	return tcp[13] == (T_RST | T_ACK) ? 1 : tcp[13] == T_ACK ? 0 : -1;
}

/* A held hello lost before the VM acknowledged it (its slot taken: here
 * every table emptied, as an eviction would leave it): the client's
 * retransmission is counted and dropped alike in all three (the node most
 * often has every segment: not refused), and its next one goes as any
 * segment of the flow.  The VM's answers then tell: ACKs below the hello's
 * end that repeat its last one mean it lacks bytes nobody has, and the
 * VM_HELD_LOST_DUPS-th goes to the client as a RST, the flow retired (an
 * ACK that moves starts the count again); an ACK of the whole hello ends
 * the watch. */
static void held_lost_same(void)
{
	static uint8_t in[2][2000];
	struct hb h;
	struct both b;
	size_t seg[2];
	const uint16_t sport = 43400;
	const uint32_t isn = 6300000;
	size_t n = hb_browser(&h, "www.veil.test", 1800);
	add_route("www.veil.test", "198.19.0.11");
	uint32_t cookie = both_two_segments(sport, isn, &h, 1360, in, seg);
	size_t n1 = seg[0], n2 = seg[1];
	SAME(in[0], n1, "held hello, segment 1");
	CHECK(!both_run(0, in[1], n2, &b, "held hello, segment 2 (routed)", 0), "routed");
	asm_tables_empty();
	struct gw_stats b0 = W->fp.st, f0 = FP.st;
	SAME(in[1], n2, "held hello lost: the retransmission counted and dropped");
	CHECK(W->fp.st.held_lost == b0.held_lost + 1 && FP.st.held_lost == f0.held_lost + 1 &&
	      W->fp.st.refused_rst == b0.refused_rst && FP.st.refused_rst == f0.refused_rst,
	      "held_lost %llu / %llu, refused_rst %llu / %llu", (unsigned long long)(W->fp.st.held_lost - b0.held_lost),
	      (unsigned long long)(FP.st.held_lost - f0.held_lost), (unsigned long long)(W->fp.st.refused_rst - b0.refused_rst),
	      (unsigned long long)(FP.st.refused_rst - f0.refused_rst));
	SAME(in[1], n2, "after it: a segment of the flow");
	/* the VM lacks segment 1: its ACKs stay at the hello's start */
	CHECK(both_vm_ack(sport, cookie + 1, isn + 1, "VM ACK at the hello's start (its first here)") == 0,
	      "the VM's first ACK below the hello goes on as an ACK");
	CHECK(both_vm_ack(sport, cookie + 1, isn + 1, "VM ACK repeated, 1") == 0, "one repeat goes on as an ACK");
	CHECK(both_vm_ack(sport, cookie + 1, isn + 1 + 100, "VM ACK that moved") == 0, "an ACK that moved goes on");
	CHECK(both_vm_ack(sport, cookie + 1, isn + 1 + 100, "VM ACK repeated after it moved, 1") == 0,
	      "the count starts again when the ACK moves");
	SAME(in[1], n2, "the client's retransmission again");
	struct gw_stats r0 = W->fp.st, rf0 = FP.st;
	CHECK(both_vm_ack(sport, cookie + 1, isn + 1 + 100, "VM ACK repeated, 2") == 1,
	      "the second repeat goes to the client as a RST at the VM's sequence");
	CHECK(W->fp.st.held_lost_reset == r0.held_lost_reset + 1 && FP.st.held_lost_reset == rf0.held_lost_reset + 1,
	      "held_lost_reset %llu / %llu", (unsigned long long)(W->fp.st.held_lost_reset - r0.held_lost_reset),
	      (unsigned long long)(FP.st.held_lost_reset - rf0.held_lost_reset));
	r0 = W->fp.st;
	CHECK(both_vm_ack(sport, cookie + 1, isn + 1 + 100, "VM ACK after the reset") == -1 &&
	      W->fp.st.ret_no_flow == r0.ret_no_flow + 1, "the flow is gone after the reset");

	/* the VM had every segment (the copy was only ever for a lost one):
	 * its ACK of the whole hello ends the watch, later ACKs never reset */
	cookie = both_two_segments(sport + 1, isn, &h, 1360, in, seg);
	SAME(in[0], seg[0], "held hello, segment 1 (the VM gets all)");
	SAME(in[1], seg[1], "held hello, segment 2 (the VM gets all)");
	asm_tables_empty();
	SAME(in[1], seg[1], "its copy lost: the retransmission dropped");
	SAME(in[1], seg[1], "the next goes to the node");
	CHECK(both_vm_ack(sport + 1, cookie + 1, isn + 1 + n, "VM ACK of the whole hello") == 0, "the whole hello ACKed");
	r0 = W->fp.st;
	for (int i = 0; i < 3; i++)
		CHECK(both_vm_ack(sport + 1, cookie + 1, isn + 1, "an old VM ACK after the whole one") == 0,
		      "an old ACK after the whole hello's goes on");
	CHECK(W->fp.st.held_lost_reset == r0.held_lost_reset && W->fp.st.held_released == r0.held_released,
	      "no reset, no release (the copy was gone)");

	/* the VM says nothing at all (it does not answer its node, or no
	 * segment reached the node): the client's retransmissions after the
	 * loss are counted, and the VM_HELD_LOST_QUIET-th is refused */
	cookie = both_two_segments(sport + 2, isn, &h, 1360, in, seg);
	SAME(in[0], seg[0], "held hello, segment 1 (the VM silent)");
	SAME(in[1], seg[1], "held hello, segment 2 (the VM silent)");
	asm_tables_empty();
	SAME(in[1], seg[1], "its copy lost: the retransmission dropped (the VM silent)");
	for (int i = 1; i < VM_HELD_LOST_QUIET; i++)
		CHECK(!both_run(0, in[1], seg[1], &b, "a retransmission after the loss goes to the node", 0) &&
			      b.fp == VM_FP_TX && is_geneve(b.fout, b.flen),
		      "retransmission %d of %d after the loss goes to the node", i, VM_HELD_LOST_QUIET);
	r0 = W->fp.st;
	struct gw_stats rf = FP.st;
	CHECK(!both_run(0, in[1], seg[1], &b, "the last retransmission: refused", 0) && b.fp == VM_FP_TX &&
	      !is_geneve(b.fout, b.flen) && b.flen >= 54 && b.fout[47] == (T_RST | T_ACK) &&
	      t_be32(b.fout + 38) == cookie + 1,
	      "the VM_HELD_LOST_QUIET-th retransmission after the loss with the VM silent: a RST at the VM's sequence");
	CHECK(W->fp.st.held_lost_reset == r0.held_lost_reset + 1 && FP.st.held_lost_reset == rf.held_lost_reset + 1,
	      "held_lost_reset (the VM silent) %llu / %llu", (unsigned long long)(W->fp.st.held_lost_reset - r0.held_lost_reset),
	      (unsigned long long)(FP.st.held_lost_reset - rf.held_lost_reset));
}

/* A hello being reassembled whose ACKed bytes the gateway loses is
 * refused at its next segment.  Aged past VM_ASM_TIMEOUT_NS (every table's
 * entry aged alike): the same RST and counters in all three.  Its slot
 * taken by newer hellos: in vm_fp, eight hellos whose probe window starts
 * where its does take the window (the least recently used, it goes), and
 * the tombstone it leaves refuses its next segment (the BPF side's buckets:
 * test_bpf partial_hello_lost_refused). */
static uint8_t FP_BUF[2300];

static void partial_lost_same(void)
{
	static uint8_t in[2][2000], q[2000];
	static struct asm_val v;
	struct hb h;
	size_t cut = 1360;
	int fd = vm_gw_map_fd(&G, "hello_asm");
	hb_browser(&h, "www.veil.test", 1800);
	add_route("www.veil.test", "198.19.0.11");

	/* aged, in all three */
	uint16_t sport = 43500;
	uint32_t isn = 6500000, cookie;
	size_t seg[2];
	cookie = both_two_segments(sport, isn, &h, cut, in, seg);
	size_t n1 = seg[0], n2 = seg[1];
	SAME(in[0], n1, "a hello's first segment");
	for (__u32 i = 0; i < VM_ASM_SLOTS; i++)
		if (!bpf_map_lookup_elem(fd, &i, &v) && v.owner) {
			v.first_ns -= VM_ASM_TIMEOUT_NS + 1000000000ULL;
			bpf_map_update_elem(fd, &i, &v, BPF_ANY);
		}
	struct vm_fp *fps[2] = { &FP, &W->fp };
	for (int f = 0; f < 2; f++)
		for (__u32 i = 0; i < fps[f]->asm_cap; i++)
			if (fps[f]->asm_tab[i].s.used)
				fps[f]->asm_tab[i].a.first_ns -= VM_ASM_TIMEOUT_NS + 1000000000ULL;
	struct gw_stats b0 = W->fp.st, f0 = FP.st;
	SAME(in[1], n2, "its next segment after it aged: refused");
	CHECK(W->fp.st.held_lost == b0.held_lost + 1 && FP.st.held_lost == f0.held_lost + 1 &&
	      FP.st.asm_timeout == f0.asm_timeout + 1, "aged: held_lost %llu / %llu",
	      (unsigned long long)(W->fp.st.held_lost - b0.held_lost), (unsigned long long)(FP.st.held_lost - f0.held_lost));

	/* its slot taken, in vm_fp */
	sport = 43600;
	isn = 6600000;
	cookie = both_two_segments(sport, isn, &h, cut, in, seg);
	n1 = seg[0];
	n2 = seg[1];
	uint8_t *o;
	uint32_t ol;
	uint16_t port;
	memcpy(FP_BUF + 256, in[0], n1);
	o = FP_BUF + 256, ol = (uint32_t)n1;
	CHECK(vm_fp_ingress(&FP, 0, &o, &ol, tai_now(), &port) == VM_FP_TX, "first segment ACKed by vm_fp");
	struct flow_key k, qk;
	char c4[32], v4[32];
	snprintf(c4, sizeof(c4), "%u.%u.%u.%u", CLI4[0], CLI4[1], CLI4[2], CLI4[3]);
	snprintf(v4, sizeof(v4), "%u.%u.%u.%u", VIP4[0], VIP4[1], VIP4[2], VIP4[3]);
	t_flow_key(c4, v4, sport, 443, &k);
	uint32_t win = vm_fp_hash_key(&k) & (FP.asm_cap - 1);
	unsigned found = 0;
	for (uint32_t qp = 1024; found < 8 && qp < 65536; qp++) {
		t_flow_key(c4, v4, (uint16_t)qp, 443, &qk);
		if ((vm_fp_hash_key(&qk) & (FP.asm_cap - 1)) != win || qp == sport)
			continue;
		uint32_t qisn = 6700000 + found * 7919, qts, qc = both_handshake(0, (uint16_t)qp, qisn, &qts);
		size_t qn = hello_pkt(0, (uint16_t)qp, qisn, qc, qts, h.b, cut, q);
		memcpy(FP_BUF + 256, q, qn);
		o = FP_BUF + 256, ol = (uint32_t)qn;
		vm_fp_ingress(&FP, 0, &o, &ol, tai_now(), &port);
		found++;
	}
	CHECK(found == 8, "%u hellos sharing its probe window", found);
	f0 = FP.st;
	memcpy(FP_BUF + 256, in[1], n2);
	o = FP_BUF + 256, ol = (uint32_t)n2;
	enum vm_fp_verdict vd = vm_fp_ingress(&FP, 0, &o, &ol, tai_now(), &port);
	uint8_t *tcp = o + 34;
	CHECK(vd == VM_FP_TX && FP.st.held_lost == f0.held_lost + 1 && FP.st.asm_early == f0.asm_early && ol >= 54 &&
		      (tcp[13] & T_RST) && t_be32(tcp + 4) == cookie + 1,
	      "its slot taken: the next segment refused (verdict %d, held_lost %llu, kept early %llu, flags %02x)", vd,
	      (unsigned long long)(FP.st.held_lost - f0.held_lost), (unsigned long long)(FP.st.asm_early - f0.asm_early),
	      ol >= 54 ? tcp[13] : 0);
	/* every table emptied again, as the tests after this one expect */
	asm_tables_empty();
}

/* A connection's whole life through all three: a two-segment hello held
 * and resent when the client retransmits, released by the VM's ACK; FIN
 * both ways; the port again; RST; a refusal that waits for the whole hello
 * and the client's FIN answered after it. */
static void lifecycle_same(void)
{
	static uint8_t in[2][2000], rp[512];
	struct hb h;
	struct both b;
	uint16_t sport = 43300;
	uint32_t isn = 6100000, ts;
	size_t n = hb_browser(&h, "www.veil.test", 1800), cut = 1360;
	add_route("www.veil.test", "198.19.0.11");
	struct gw_stats b0 = W->fp.st;
	size_t seg[2];
	uint32_t cookie = both_two_segments(sport, isn, &h, cut, in, seg);
	size_t n1 = seg[0], n2 = seg[1];
	SAME(in[0], n1, "held hello, segment 1");
	/* the segment that completes the hello goes to the node as itself,
	 * the one held before as a clone (an emit) */
	CHECK(!both_run(0, in[1], n2, &b, "held hello, segment 2 (routed)", 0) && b.fp == VM_FP_TX &&
	      b.xclones.n == 1 && b.femits.n == 1 && b.d.fr.n == 2 && is_geneve(b.fout, b.flen),
	      "segment 2 in place: fast path %d, %d clones, %d emits, %d DPDK packets", b.fp, b.xclones.n, b.femits.n,
	      b.d.fr.n);
	CHECK(!both_run(0, in[1], n2, &b, "held hello, segment 2 again: both resent", 0) && b.fp == VM_FP_TX &&
	      b.xclones.n == 1, "segment 2 again: in place (%d), %d clones", b.fp, b.xclones.n);
	CHECK(!both_run(1, rp, vm_reply_pkt(0, sport, cookie + 1, isn + 1 + cut, T_ACK, rp), &b, "VM ACK, part", 0),
	      "VM ACK, part");
	CHECK(!both_run(1, rp, vm_reply_pkt(0, sport, cookie + 1, isn + 1 + n, T_ACK, rp), &b, "VM ACK, whole", 0),
	      "VM ACK, whole");
	SAME(in[1], n2, "segment 2 after the release: with the option");
	struct t_pkt fin = client_pkt(0, sport, isn + 1 + n, cookie + 1, T_ACK | T_FIN);
	SAME(in[0], t_build(&fin, in[0]), "client FIN");
	CHECK(!both_run(1, rp, vm_reply_pkt(0, sport, cookie + 1, isn + 2 + n, T_ACK | T_FIN, rp), &b, "VM FIN", 0),
	      "VM FIN");
	/* the port again, then a RST */
	cookie = both_handshake(0, sport, isn + 500000, &ts);
	SAME(in[0], hello_pkt(0, sport, isn + 500000, cookie, ts, hello_curl, hello_curl_len, in[0]), "port reused");
	struct t_pkt rst = client_pkt(0, sport, isn + 500001 + hello_curl_len + VM_RST_WINDOW, 0, T_RST);
	SAME(in[0], t_build(&rst, in[0]), "client RST far from its sequence");
	rst.seq = isn + 500001 + hello_curl_len + 1000;
	SAME(in[0], t_build(&rst, in[0]), "client RST near its sequence (the flow kept)");
	rst.seq = isn + 500001 + hello_curl_len;
	SAME(in[0], t_build(&rst, in[0]), "client RST at its sequence (the flow marked)");
	CHECK(!both_run(1, rp, vm_reply_pkt(0, sport, cookie + 1, rst.seq, T_ACK, rp), &b, "VM ACK after the RST", 0),
	      "VM ACK after the RST (the mark cleared)");
	/* the VM's ACK trailing the client's sequence (data in flight): a RST
	 * at it marks the flow, the VM's next segment clears the mark */
	CHECK(!both_run(1, rp, vm_reply_pkt(0, sport, cookie + 1, rst.seq - 700, T_ACK, rp), &b, "VM ACK trailing", 0),
	      "VM ACK trailing");
	rst.seq -= 700;
	SAME(in[0], t_build(&rst, in[0]), "client RST at the VM's last ACK (the flow marked)");
	rst.seq += 700;
	CHECK(!both_run(1, rp, vm_reply_pkt(0, sport, cookie + 1, rst.seq, T_ACK, rp), &b, "VM ACK after that RST", 0),
	      "VM ACK after the RST at its last ACK (the mark cleared)");
	SAME(in[0], t_build(&rst, in[0]), "client RST at its sequence again");
	CHECK(!both_run(1, rp, vm_reply_pkt(0, sport, cookie + 1, rst.seq, T_RST | T_ACK, rp), &b, "VM RST", 0),
	      "VM RST (the flow retired)");
	SAME(in[0], t_build(&rst, in[0]), "client RST, no flow");
	/* a refusal: the unknown name first, the hello in two segments; then the client's FIN */
	static uint8_t zeros[1700];
	hb_begin(&h);
	hb_sni(&h, "nobody.veil.test");
	hb_ext(&h, 0x0033, zeros, sizeof(zeros));
	n = hb_end(&h);
	cookie = both_two_segments(++sport, isn, &h, cut, in, seg);
	SAME(in[0], seg[0], "refused hello, segment 1 (held)");
	SAME(in[1], seg[1], "refused hello, segment 2");
	fin = client_pkt(0, sport, isn + 1 + n, cookie + 9, T_ACK | T_FIN);
	SAME(in[0], t_build(&fin, in[0]), "FIN after the refusal");
	struct gw_stats a = W->fp.st;
	CHECK(a.hello_resent - b0.hello_resent == 1 && a.held_released - b0.held_released == 1 &&
	      a.flow_closed - b0.flow_closed == 1 && a.flow_reset - b0.flow_reset == 4 &&
	      a.fin_answered - b0.fin_answered == 1 && a.refused_alert - b0.refused_alert == 1,
	      "resent %llu released %llu closed %llu reset %llu fin %llu refused %llu",
	      (unsigned long long)(a.hello_resent - b0.hello_resent),
	      (unsigned long long)(a.held_released - b0.held_released),
	      (unsigned long long)(a.flow_closed - b0.flow_closed), (unsigned long long)(a.flow_reset - b0.flow_reset),
	      (unsigned long long)(a.fin_answered - b0.fin_answered),
	      (unsigned long long)(a.refused_alert - b0.refused_alert));
	CHECK(a.rst_out_of_window - b0.rst_out_of_window == 1 && a.rst_near - b0.rst_near == 1 &&
		      a.rst_refused - b0.rst_refused == 2 && a.rst_no_flow - b0.rst_no_flow == 1,
	      "blind RST dropped: %llu, near %llu, refused %llu, no flow %llu",
	      (unsigned long long)(a.rst_out_of_window - b0.rst_out_of_window),
	      (unsigned long long)(a.rst_near - b0.rst_near), (unsigned long long)(a.rst_refused - b0.rst_refused),
	      (unsigned long long)(a.rst_no_flow - b0.rst_no_flow));
}

/* The used flow keys of a userspace table, sorted. */
static int key_cmp(const void *a, const void *b) { return memcmp(a, b, sizeof(struct flow_key)); }
static size_t fp_keys(const struct vm_fp *fp, struct flow_key *out)
{
	size_t n = 0;
	for (uint32_t i = 0; i < fp->flows_cap; i++)
		if (fp->flows[i].s.used)
			out[n++] = fp->flows[i].s.key;
	qsort(out, n, sizeof(*out), key_cmp);
	return n;
}

/* The keys in before[] and not in after[] (both sorted). */
static size_t keys_gone(const struct flow_key *before, size_t nb, const struct flow_key *after, size_t na,
			struct flow_key *out)
{
	size_t n = 0;
	for (size_t i = 0; i < nb; i++)
		if (!bsearch(&before[i], after, na, sizeof(*after), key_cmp))
			out[n++] = before[i];
	return n;
}

/* The flow key of client_pkt's client on port sport. */
static struct flow_key client_key(int v6, uint16_t sport)
{
	struct flow_tuple t = { .family = v6 ? VM_AF_INET6 : VM_AF_INET, .client_port_be = htons(sport),
				.vip_port_be = htons(443) };
	struct flow_key k;

	memcpy(t.client + (v6 ? 0 : VM_ADDR4_OFF), v6 ? CLI6 : CLI4, v6 ? 16 : 4);
	memcpy(t.vip + (v6 ? 0 : VM_ADDR4_OFF), v6 ? VIP6 : VIP4, v6 ? 16 : 4);
	vm_fp_tuple_key(&t, &k);
	return k;
}

static struct flow_key XRET[4096];
static size_t NXRET;
static void xdp_retired(void *arg, const void *key, const void *val)
{
	if (NXRET < 4096)
		XRET[NXRET++] = *(const struct flow_key *)key;
}

/* One pass of veil-gw's sweep over the flows map and one whole look of
 * vm_fp_sweep over the fast path's and the DPDK worker's tables, at TAI
 * second t: each must retire the same flows.  Their keys into XRET
 * (sorted), their number returned, -1 when they differ. */
static long sweep_pass(struct vm_sweep *sw, uint64_t t)
{
	static struct flow_key b[4096], a[4096], gone[4096];
	struct vm_fp *fps[2] = { &FP, &W->fp };
	long ret;

	NXRET = 0;
	vm_sweep_run(sw, (time_t)t);
	qsort(XRET, NXRET, sizeof(*XRET), key_cmp);
	ret = (long)NXRET;
	for (int i = 0; i < 2; i++) {
		const char *who = i ? "DPDK worker" : "fast path";
		size_t nb = fp_keys(fps[i], b);
		uint64_t r0 = fps[i]->retired;
		uint32_t n0 = fps[i]->nflows, at = fps[i]->sweep_at;
		uint32_t r = vm_fp_sweep(fps[i], t * 1000000000ULL, fps[i]->flows_cap);
		size_t na = fp_keys(fps[i], a), ng = keys_gone(b, nb, a, na, gone);

		CHECK(fps[i]->sweep_at == at, "%s: a look at the whole table ends where it began (%u, %u)", who, at,
		      fps[i]->sweep_at);
		CHECK(r == ng && fps[i]->retired - r0 == r && n0 - fps[i]->nflows == r && na == fps[i]->nflows,
		      "%s: %u retired, %zu gone, %u flows counted, %zu in the table", who, r, ng, fps[i]->nflows, na);
		if (ng != NXRET || memcmp(gone, XRET, NXRET * sizeof(*XRET))) {
			CHECK(0, "%s retired %zu flows at TAI %llu s, veil-gw's sweep %zu: not the same ones", who, ng,
			      (unsigned long long)t, NXRET);
			ret = -1;
		}
	}
	return ret;
}

static int retired(int v6, uint16_t sport)
{
	struct flow_key k = client_key(v6, sport);
	return bsearch(&k, XRET, NXRET, sizeof(k), key_cmp) != NULL;
}

/* The DPDK gateway's sweep (vm_fp_sweep) against veil-gw's (sweep.c, the
 * flows map): passes VM_SWEEP_EVERY_S apart retire the same flows, closed
 * ones and ones reset at the client's sequence with the VM silent since,
 * and keep live ones and ones whose VM spoke after the RST; the first look
 * at a flow never retires it.  Every flow the tests before left is swept
 * too, and must go alike. */
static void sweep_same(void)
{
	enum { LIVE, CLOSED, RESET, KEPT, AGAIN, KINDS };
	static const char *const kind_name[] = { "live", "closed", "reset", "reset and kept", "reset, kept, reset" };
	static uint8_t in[2000], rp[512];
	struct both bo;
	uint32_t isn = 7200000, ts, cookie[2][KINDS];
	const uint32_t nxt = isn + 1 + hello_curl_len;
#define SPORT(v6, kind) ((uint16_t)(43500 + (v6) * 10 + (kind)))

	for (int v6 = 0; v6 < 2; v6++)
		for (int kind = 0; kind < KINDS; kind++) {
			uint16_t sport = SPORT(v6, kind);
			uint32_t c = cookie[v6][kind] = both_handshake(v6, sport, isn, &ts);
			SAME(in, hello_pkt(v6, sport, isn, c, ts, hello_curl, hello_curl_len, in), "sweep: the flow");
			struct t_pkt p = client_pkt(v6, sport, nxt, c + 1, kind == CLOSED ? T_ACK | T_FIN : T_RST);
			if (kind != LIVE)
				SAME(in, t_build(&p, in), kind == CLOSED ? "sweep: client FIN" : "sweep: client RST");
			if (kind == CLOSED || kind == KEPT)
				CHECK(!both_run(1, rp, vm_reply_pkt(v6, sport, c + 1, nxt + (kind == CLOSED),
								    kind == CLOSED ? T_ACK | T_FIN : T_ACK, rp),
						&bo, "sweep: the VM's FIN or ACK", 0),
				      "sweep: the VM's answer to the %s flow", kind_name[kind]);
		}

	uint64_t t0 = tai_now() / 1000000000ULL;
	struct vm_sweep sw;
	vm_sweep_init(&sw, vm_gw_map_fd(&G, "flows"), sizeof(struct flow_key), sizeof(struct flow_val),
		      offsetof(struct flow_val, fin), VM_SWEEP_EVERY_S);
	sw.ft = gw_ft();
	sw.on_retire = xdp_retired;
	CHECK(sweep_pass(&sw, t0) == 0, "the first pass retires nothing: %zu", NXRET);
	/* the VM speaks on AGAIN's connection after the first look: it kept it */
	for (int v6 = 0; v6 < 2; v6++)
		CHECK(!both_run(1, rp, vm_reply_pkt(v6, SPORT(v6, AGAIN), cookie[v6][AGAIN] + 1, nxt, T_ACK, rp), &bo,
				"sweep: the VM's ACK after a look", 0),
		      "sweep: the VM's ACK after a look");
	/* too soon for the second: the userspace look alone, nothing goes */
	for (int i = 0; i < 2; i++) {
		struct vm_fp *fp = i ? &W->fp : &FP;
		CHECK(vm_fp_sweep(fp, (t0 + VM_SWEEP_EVERY_S - 1) * 1000000000ULL, fp->flows_cap) == 0,
		      "a look %d s after the first retires nothing", VM_SWEEP_EVERY_S - 1);
	}
	long n = sweep_pass(&sw, t0 + VM_SWEEP_EVERY_S);
	for (int v6 = 0; v6 < 2; v6++)
		for (int kind = 0; kind < KINDS; kind++)
			CHECK(retired(v6, SPORT(v6, kind)) == (kind == CLOSED || kind == RESET),
			      "the second pass: the %s flow (IPv%d) %s", kind_name[kind], v6 ? 6 : 4,
			      retired(v6, SPORT(v6, kind)) ? "retired" : "kept");
	CHECK(n >= 4, "the second pass retired %ld flows", n);
	/* AGAIN is reset again: a look after the VM spoke forgot the first
	 * stamp, so this one only sees it, the next retires it */
	for (int v6 = 0; v6 < 2; v6++) {
		struct t_pkt p = client_pkt(v6, SPORT(v6, AGAIN), nxt, 0, T_RST);
		SAME(in, t_build(&p, in), "sweep: client RST again");
	}
	CHECK(sweep_pass(&sw, t0 + 2 * VM_SWEEP_EVERY_S) == 0, "the third pass retires nothing: %zu", NXRET);
	CHECK(sweep_pass(&sw, t0 + 3 * VM_SWEEP_EVERY_S) == 2 && retired(0, SPORT(0, AGAIN)) && retired(1, SPORT(1, AGAIN)),
	      "the fourth pass retires the flows reset again: %zu", NXRET);
	vm_sweep_free(&sw);
#undef SPORT

	/* the worker sweeps by itself once its clock moves on */
	uint64_t before = W->swept_ns;
	vm_dp.sweep_most = VM_DP_SWEEP_MOST;
	for (int i = 0; i < 5; i++) {
		usleep(2 * VM_DP_CLOCK_US);
		vm_dp_poll(W);
	}
	vm_dp.sweep_most = 0;
	CHECK(W->swept_ns != before && W->swept_ns + 1000000000ULL > tai_now(),
	      "the worker's poll sweeps: last at %llu", (unsigned long long)W->swept_ns);
}

static void truncations_same(void)
{
	uint8_t in[256];
	char what[64];
	for (int v6 = 0; v6 < 2; v6++) {
		struct t_pkt p = client_pkt(v6, 41050, 1, 0, T_SYN);
		p.opts = SYN_OPTS;
		p.optlen = 20;
		size_t n = t_build(&p, in);
		for (size_t cut = 14; cut < n; cut++) {
			snprintf(what, sizeof(what), "IPv%d SYN cut at %zu", v6 ? 6 : 4, cut);
			SAME(in, cut, what);
		}
	}
}

/* The flow table of hello_routed_same: 198.18.0.2:41020 */
static size_t reply_frame(uint8_t *pkt, uint16_t dport)
{
	uint8_t inner[256];
	struct t_pkt p = { .sport = 443, .dport = dport, .seq = 5, .ack = 6, .flags = T_ACK, .window = 100 };
	memcpy(p.src, VIP4, 4);
	memcpy(p.dst, CLI4, 4);
	size_t n = t_build(&p, inner);
	struct vm_handoff *none = NULL;
	size_t m = mesh_wrap(inner, n, 0, none, pkt);
	/* mesh_wrap writes gateway -> node; turn it around */
	uint8_t *ip = pkt + 14, a[4];
	memcpy(pkt, GW_MAC, 6);
	memcpy(pkt + 6, NODE_MAC, 6);
	memcpy(a, ip + 12, 4); memcpy(ip + 12, ip + 16, 4); memcpy(ip + 16, a, 4);
	return m;
}

static void return_path_same(void)
{
	uint8_t pkt[512];
	struct both b;
	size_t n = reply_frame(pkt, 41020);
	CHECK(!both_run(1, pkt, n, &b, "return to the client", 0) && b.fp == VM_FP_FWD, "return forwarded (%d)", b.fp);
	n = reply_frame(pkt, 41999);
	CHECK(!both_run(1, pkt, n, &b, "return, unknown flow", 0) && b.fp == VM_FP_DROP, "unknown flow dropped");
	n = reply_frame(pkt, 41020);
	pkt[14 + 20 + 3] = 53;
	CHECK(!both_run(1, pkt, n, &b, "return, other UDP", 0), "other UDP");
	n = reply_frame(pkt, 41020);
	pkt[14 + 20 + 8] = 0x40;    /* Geneve version 1 */
	CHECK(!both_run(1, pkt, n, &b, "return, Geneve v1", 0), "Geneve v1");
	n = reply_frame(pkt, 41020);
	pkt[14 + 20 + 8] = 2;       /* options longer than the packet claims */
	CHECK(!both_run(1, pkt, n, &b, "return, bad options", 0), "bad options");
	n = reply_frame(pkt, 41020);
	pkt[14] = 0x65;             /* the outer header's version 6 behind an IPv4 type */
	CHECK(!both_run(1, pkt, n, &b, "return, outer version 6", 0) && b.fp != VM_FP_FWD, "outer version 6 (%d)", b.fp);
	n = reply_frame(pkt, 41020);
	pkt[14 + 20 + 16] = 0x65;   /* the inner one's */
	CHECK(!both_run(1, pkt, n, &b, "return, inner version 6", 0) && b.fp != VM_FP_FWD, "inner version 6 (%d)", b.fp);
	for (size_t cut = 14; cut < n; cut++) {
		char what[64];
		n = reply_frame(pkt, 41020);
		snprintf(what, sizeof(what), "return cut at %zu", cut);
		CHECK(!both_run(1, pkt, cut, &b, what, 0), "%s", what);
	}
}

/* Every next hop's MTU mtu, set again as the DPDK gateway makes a new
 * generation when an MTU changes (a flow's copy of its next hop holds
 * while the set it was taken from does), in CONF and DCONF. */
static void neigh_mtu_all(uint32_t mtu)
{
	static struct vm_fp_neigh nb[VM_FP_MAX_NEIGH];
	int n = CONF.nneigh;

	memcpy(nb, CONF.neigh, n * sizeof(nb[0]));
	for (int i = 0; i < n; i++)
		nb[i].mtu = mtu;
	CHECK(vm_fp_conf_neigh_set(&CONF, nb, n) == 0, "next hops set again");
	dconf_sync();
}

/* The mesh MTU: a packet that would leave longer than the next hop's
 * interface allows is dropped and counted mesh_mtu, by XDP (the FIB's
 * check against t0's MTU) and by the fast path and the DPDK worker (the
 * MTU the control plane read with the next hop) alike. */
static void mesh_mtu_same(void)
{
	static uint8_t in[2000], data[1200];
	uint16_t sport = 43500;
	uint32_t isn = 7100000, ts;
	add_route("mtu.veil.test", "198.19.0.11");
	uint32_t cookie = both_handshake(0, sport, isn, &ts);
	SAME(in, hello_pkt(0, sport, isn, cookie, ts, hello_curl, hello_curl_len, in), "mtu: hello");
	struct t_pkt p = client_pkt(0, sport, isn + 1 + hello_curl_len, cookie + 1, T_ACK);
	p.payload = data;
	p.plen = 900;
	size_t n = t_build(&p, in);
	/* 900 bytes of data, its TCP and IP headers, then the outer IP, UDP
	 * and Geneve (and the handoff option): over 960 */
	CHECK(!sh("ip link set t0 mtu 960"), "t0's MTU 960");
	neigh_mtu_all(960);
	struct gw_stats a = W->fp.st, f0 = FP.st;
	struct both b;
	CHECK(!both_run(0, in, n, &b, "mtu: longer than 960", 0) && b.fp == VM_FP_DROP, "dropped (%d)", b.fp);
	CHECK(W->fp.st.mesh_mtu == a.mesh_mtu + 1 && FP.st.mesh_mtu == f0.mesh_mtu + 1, "counted mesh_mtu");
	p.plen = 800;
	n = t_build(&p, in);
	CHECK(!both_run(0, in, n, &b, "mtu: within 960", 0) && b.fp != VM_FP_DROP, "forwarded (%d)", b.fp);
	/* a hello in two segments: the reassembly sends over a mesh of 1500 only */
	static uint8_t seg[2][2000];
	struct hb h;
	size_t hn = hb_browser(&h, "mtu.veil.test", 1800), cut = 1360;
	cookie = both_handshake(0, ++sport, isn, &ts);
	size_t n1 = hello_pkt(0, sport, isn, cookie, ts, h.b, cut, seg[0]);
	size_t n2 = hello_pkt(0, sport, isn + cut, cookie, ts, h.b + cut, hn - cut, seg[1]);
	a = W->fp.st;
	SAME(seg[0], n1, "mtu: held hello, segment 1");
	SAME(seg[1], n2, "mtu: held hello, segment 2 (not sent: the mesh is below 1500)");
	CHECK(W->fp.st.asm_sent == a.asm_sent && W->fp.st.fib_fail == a.fib_fail + 1,
	      "routed, not sent: fib_fail (asm_sent +%llu, fib_fail +%llu)",
	      (unsigned long long)(W->fp.st.asm_sent - a.asm_sent), (unsigned long long)(W->fp.st.fib_fail - a.fib_fail));
	CHECK(!sh("ip link set t0 mtu 1500"), "t0's MTU 1500");
	neigh_mtu_all(0);   /* unknown: VM_FP_MTU_DEFAULT */
	p.plen = 900;
	n = t_build(&p, in);
	CHECK(!both_run(0, in, n, &b, "mtu: 1500 again", 0) && b.fp != VM_FP_DROP, "forwarded (%d)", b.fp);
}

/* ---------- random mutations ---------- */

/* Two IPv6 clients whose folded keys collide (a set seed, the pair found
 * offline), the same port and VIP: the first routed, the second refused,
 * its data and the VM's packets to it not served with the first's flow;
 * alike in XDP, vm_fp and the DPDK worker (collisions counted the same). */
static void collisions_same(void)
{
	const struct flow_seed ts = { .k = { 0x5eed0003feedf00dULL, 0x1122334455667788ULL } };
	struct flow_seed old_fp = *vm_fp_seed(), old_bpf;
	static uint8_t in[2000], rp[512];
	uint8_t a[16], b[16], keep6[16];
	struct both bo;
	uint16_t sport = 43500;
	uint32_t ts_a, ts_b, ca, cb;
	__u32 zero = 0;

	CHECK(t_find_collision(&ts, a, b), "a colliding pair");
	bpf_map_lookup_elem(vm_gw_map_fd(&G, "flow_seed"), &zero, &old_bpf);
	bpf_map_update_elem(vm_gw_map_fd(&G, "flow_seed"), &zero, &ts, BPF_ANY);
	vm_fp_seed_set(&ts);
	memcpy(keep6, CLI6, 16);
	struct gw_stats s0 = W->fp.st;

	memcpy(CLI6, a, 16);
	ca = both_handshake(1, sport, 100, &ts_a);
	SAME(in, hello_pkt(1, sport, 100, ca, ts_a, hello_curl, hello_curl_len, in), "A's hello: routed");
	memcpy(CLI6, b, 16);
	cb = both_handshake(1, sport, 5000, &ts_b);
	SAME(in, hello_pkt(1, sport, 5000, cb, ts_b, hello_curl, hello_curl_len, in), "B's hello: refused");
	struct t_pkt d = client_pkt(1, sport, 5001 + hello_curl_len, cb + 1, T_ACK);
	SAME(in, t_build(&d, in), "B's data");
	CHECK(!both_run(1, rp, vm_reply_pkt(1, sport, ca + 1, 101, T_ACK, rp), &bo, "VM to B", 0), "VM to B");
	memcpy(CLI6, a, 16);
	CHECK(!both_run(1, rp, vm_reply_pkt(1, sport, ca + 1, 101, T_ACK, rp), &bo, "VM to A", 0), "VM to A");
	d = client_pkt(1, sport, 101 + hello_curl_len, ca + 1, T_ACK);
	SAME(in, t_build(&d, in), "A's data");
	struct gw_stats s1 = W->fp.st;
	CHECK(s1.flow_collision - s0.flow_collision == 3 && s1.hello_routed - s0.hello_routed == 1 &&
	      s1.ret_forwarded - s0.ret_forwarded == 1 && s1.fwd_established - s0.fwd_established == 1,
	      "collisions %llu (want 3: B's hello, data, the VM's packet to B; a SYN looks up no flow), routed %llu, returned %llu, "
	      "forwarded %llu", (unsigned long long)(s1.flow_collision - s0.flow_collision),
	      (unsigned long long)(s1.hello_routed - s0.hello_routed),
	      (unsigned long long)(s1.ret_forwarded - s0.ret_forwarded),
	      (unsigned long long)(s1.fwd_established - s0.fwd_established));

	memcpy(CLI6, keep6, 16);
	bpf_map_update_elem(vm_gw_map_fd(&G, "flow_seed"), &zero, &old_bpf, BPF_ANY);
	vm_fp_seed_set(&old_fp);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static void mutations_same(void)
{
	enum { SEEDS = 6 };
	static uint8_t seed[SEEDS][1024];
	static size_t seedn[SEEDS];
	uint32_t ts, c;
	struct t_pkt p;

	p = client_pkt(0, 42000, 5, 0, T_SYN);
	p.opts = SYN_OPTS;
	p.optlen = 20;
	seedn[0] = t_build(&p, seed[0]);
	p = client_pkt(1, 42001, 5, 0, T_SYN);
	p.opts = SYN_OPTS;
	p.optlen = 20;
	seedn[1] = t_build(&p, seed[1]);
	c = both_handshake(0, 42002, 5, &ts);
	seedn[2] = hello_pkt(0, 42002, 5, c, ts, hello_curl, hello_curl_len, seed[2]);
	c = both_handshake(1, 42003, 5, &ts);
	seedn[3] = hello_pkt(1, 42003, 5, c, ts, hello_curl, hello_curl_len, seed[3]);
	p = client_pkt(0, 42002, 6 + hello_curl_len, c + 9, T_ACK);
	seedn[4] = t_build(&p, seed[4]);
	seedn[5] = reply_frame(seed[5], 41020);

	int iters = getenv("FP_MUTATIONS") ? atoi(getenv("FP_MUTATIONS")) : 200000, bad = 0;
	for (int it = 0; it < iters; it++) {
		uint8_t in[1024];
		int s = rnd() % SEEDS;
		size_t n = seedn[s];
		memcpy(in, seed[s], n);
		int k = 1 + rnd() % 4;
		for (int j = 0; j < k; j++) {
			uint32_t r = rnd();
			size_t at = r % n;
			/* headers are where the decisions are: bias towards the first 90 bytes */
			if (r & 0x10000)
				at = r % (n < 90 ? n : 90);
			switch ((r >> 20) & 3) {
			case 0: in[at] ^= 1 << ((r >> 24) & 7); break;
			case 1: in[at] = r >> 24; break;
			case 2: in[at] = (r >> 24) & 1 ? 0xff : 0; break;
			case 3: if ((r >> 24) % 8 == 0 && at >= 14) n = at; break;
			}
		}
		struct both b;
		char what[64];
		snprintf(what, sizeof(what), "mutation %d of seed %d", it, s);
		if (both_run(s == 5, in, n, &b, what, bad >= 5)) {
			if (bad < 5) {
				fprintf(stderr, "  %s (%zu bytes):", what, n);
				for (size_t i = 0; i < n && i < 96; i++)
					fprintf(stderr, "%s%02x", i % 16 ? "" : "\n   ", in[i]);
				fprintf(stderr, "\n");
			}
			bad++;
		}
	}
	CHECK(bad == 0, "%d of %d mutations differ", bad, iters);
	printf("# fastpath: %d packets compared with XDP (through vm_fp and a DPDK worker), %d skipped (a cookie window turning between the runs); %d with a flow, the DPDK first pass's hint of each checked; %d SYNs, unhinted\n", n_compared, n_skipped, n_hinted, n_syn_unhinted);
}

/* Flows of fp's table that neither half of its filter holds all the bits
 * of: a lookup that does not find one in its first slot would miss it. */
static uint32_t fp_uncovered(const struct vm_fp *fp)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < fp->flows_cap; i++) {
		__u32 at;
		__u64 m;

		if (!fp->flows[i].s.used)
			continue;
		vm_flow_bits_at_n(&fp->flows[i].s.key, fp->bits_log2, &at, &m);
		n += !vm_flow_bits_either(&fp->bits[at], m);
	}
	return n;
}

/* Entries of fp's filter where a half holds other bits than those of the
 * flows the table holds (after two passes of the sweep with no flow put,
 * none: a cleared half takes back only what is there). */
static uint32_t fp_stale(const struct vm_fp *fp)
{
	static __u64 want[1u << 12];
	uint32_t n = 0, nbits = 1u << fp->bits_log2;

	if (nbits > sizeof(want) / sizeof(want[0]))
		return UINT32_MAX;
	memset(want, 0, sizeof(want));
	for (uint32_t i = 0; i < fp->flows_cap; i++) {
		__u32 at;
		__u64 m;

		if (fp->flows[i].s.used) {
			vm_flow_bits_at_n(&fp->flows[i].s.key, fp->bits_log2, &at, &m);
			want[at] |= m;
		}
	}
	for (uint32_t j = 0; j < nbits; j++)
		n += fp->bits[j].half[0] != want[j] || fp->bits[j].half[1] != want[j];
	return n;
}

/* One client packet through the fast path alone. */
static void fp_in(const uint8_t *in, size_t n)
{
	static uint8_t buf[256 + 2048];
	uint8_t *p = buf + 256;
	uint32_t len = (uint32_t)n;
	uint16_t port;

	memcpy(p, in, n);
	vm_fp_ingress(&FP, 0, &p, &len, tai_now(), &port);
}

/* The fast path's flow filter (struct vm_fp, as veil-gw's flow_bits): each
 * flow the tests left, in the fast path's table and the DPDK worker's,
 * stays covered by a half at every step while vm_fp_sweep rebuilds the
 * halves a few slots a call; a flow outside its first slot whose bits are
 * gone is not found (its data not forwarded) until a rebuild puts them
 * back. */
static void fp_flow_filter(void)
{
	static uint8_t in[2000];
	struct vm_fp *fps[2] = { &FP, &W->fp };
	uint64_t t = tai_now();
	uint32_t isn = 7400000, ts;
	const uint16_t sport = 44900;

	/* flows enough to share the filter's words, in both tables */
	for (uint16_t p = 45000; p < 45300; p++) {
		uint32_t c = both_handshake(0, p, isn, &ts);
		SAME(in, hello_pkt(0, p, isn, c, ts, hello_curl, hello_curl_len, in), "filter: a flow");
	}
	for (int i = 0; i < 2; i++) {
		struct vm_fp *fp = fps[i];
		uint64_t r0 = fp->bits_rebuilt;
		uint32_t calls = 0, worst = 0;

		CHECK(fp->nflows >= 300 && !fp_uncovered(fp), "%s: %u flows, %u not covered", i ? "worker" : "fast path",
		      fp->nflows, fp_uncovered(fp));
		uint64_t added_in = UINT64_MAX;
		while (fp->bits_rebuilt < r0 + 3 && calls++ < 10 * fp->flows_cap) {
			if (!fp->bits_clear_at && added_in != fp->bits_rebuilt) {
				/* a flow put as a half's clear begins: the other
				 * half must hold it until the walk comes by */
				uint16_t p = (uint16_t)(45400 + 10 * i + fp->bits_rebuilt - r0);
				uint32_t c = both_handshake(0, p, isn, &ts);
				SAME(in, hello_pkt(0, p, isn, c, ts, hello_curl, hello_curl_len, in), "filter: a flow put");
				added_in = fp->bits_rebuilt;
			}
			vm_fp_sweep(fp, t, 7);
			uint32_t u = fp_uncovered(fp);
			worst = u > worst ? u : worst;
		}
		CHECK(fp->bits_rebuilt >= r0 + 3 && !worst, "%s: 3 halves rebuilt in %u calls, at worst %u flows not covered",
		      i ? "worker" : "fast path", calls, worst);
	}

	uint32_t c = both_handshake(0, sport, isn, &ts);
	SAME(in, hello_pkt(0, sport, isn, c, ts, hello_curl, hello_curl_len, in), "filter: the flow");
	struct flow_key k = client_key(0, sport);
	uint32_t h = vm_fp_flow_hash(&k), mask = FP.flows_cap - 1, at = UINT32_MAX, to = UINT32_MAX;
	for (uint32_t j = 0; j < 8; j++) {
		struct vm_fp_flow *f = &FP.flows[(h + j) & mask];
		if (f->s.used && vm_flow_key_eq(&f->s.key, &k))
			at = (h + j) & mask;
		else if (j && !f->s.used && to == UINT32_MAX)
			to = (h + j) & mask;
	}
	CHECK(at != UINT32_MAX, "the flow in its probe window");
	if (at == (h & mask)) {   /* out of its first slot, where the filter decides */
		CHECK(to != UINT32_MAX, "a free slot in its window");
		if (to == UINT32_MAX)
			return;
		FP.flows[to] = FP.flows[at];
		FP.flows[at].s.used = 0;
		at = to;
	}
	struct t_pkt d = client_pkt(0, sport, isn + 1 + hello_curl_len, c + 1, T_ACK);
	d.payload = hello_curl;
	d.plen = 100;
	size_t n = t_build(&d, in);
	uint64_t fwd = FP.st.fwd_established;
	fp_in(in, n);
	CHECK(FP.st.fwd_established == fwd + 1, "found in slot %u of its window, forwarded", (at - h) & mask);
	__u32 bi;
	__u64 bm;
	vm_flow_bits_at_n(&k, FP.bits_log2, &bi, &bm);
	FP.bits[bi].half[0] &= ~bm;
	FP.bits[bi].half[1] &= ~bm;
	fwd = FP.st.fwd_established;
	fp_in(in, n);
	CHECK(FP.st.fwd_established == fwd, "its bits gone: not looked for past its first slot, not forwarded");
	uint64_t r0 = FP.bits_rebuilt;
	for (int j = 0; j < 4 && FP.bits_rebuilt == r0; j++)
		vm_fp_sweep(&FP, t, FP.flows_cap);
	fwd = FP.st.fwd_established;
	fp_in(in, n);
	CHECK(FP.bits_rebuilt == r0 + 1 && FP.st.fwd_established == fwd + 1 && !fp_uncovered(&FP),
	      "a half rebuilt: its bits back, forwarded");
	/* flows gone leave the filter: 100 dropped, then two passes */
	uint32_t dropped = 0;
	for (uint32_t i = 0; i < FP.flows_cap && dropped < 100; i++) {
		struct vm_fp_flow *f = &FP.flows[i];
		struct flow_tuple tu = { .family = f->val.family, .client_port_be = f->s.key.client_port_be,
					 .vip_port_be = f->s.key.vip_port_be };
		memcpy(tu.client, f->val.client, 16);
		memcpy(tu.vip, f->val.vip, 16);
		dropped += f->s.used && !vm_fp_flow_drop(&FP, &tu);
	}
	uint32_t stale = fp_stale(&FP);
	for (int j = 0; j < 2; j++)
		vm_fp_sweep(&FP, t, FP.flows_cap);
	CHECK(dropped == 100 && stale && !fp_stale(&FP) && !fp_uncovered(&FP),
	      "%u flows dropped: %u entries stale, none after two passes (%u)", dropped, stale, fp_stale(&FP));
}

/* ClientHellos from a capture (hex, one a line), each on a fresh connection
 * over IPv4 and IPv6, with a route for its name so that it routes. */
static const char *hellos_file;
static void captured_hellos_same(void)
{
	FILE *f = fopen(hellos_file, "re");
	char line[40000], what[400];
	static uint8_t h[16384], in[20000];
	uint16_t sport = 42000;
	int nh = 0, routed = 0;

	CHECK(f != NULL, "%s: %s", hellos_file, strerror(errno));
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		size_t hl = 0;
		for (char *p = line; p[0] && p[1] && p[0] != '\n' && hl < sizeof(h); p += 2) {
			if (*p == ':' || *p == ',')
				p--;   /* tshark may separate bytes or segments */
			else if (sscanf(p, "%2hhx", &h[hl]) == 1)
				hl++;
		}
		if (hl < 6 || h[0] != 0x16 || hl > 1400)
			continue;   /* not a hello, or one that needs reassembly */
		struct vm_hello hp;
		struct vm_hello_state hs;
		static uint8_t buf[VM_HELLO_BUF];
		memset(&hp, 0, sizeof(hp));
		memcpy(buf, h, hl);
		if (vm_hello_parse(buf, hl, &hp, &hs) == VM_HELLO_OK && GC.nroutes < 15) {
			int have = 0;
			for (int i = 0; i < GC.nroutes; i++)
				have |= !strcmp(GC.routes[i].key.name, hp.name);
			if (!have)
				add_route(hp.name, "198.19.0.11");
			routed++;
		}
		for (int v6 = 0; v6 < 2; v6++) {
			uint32_t ts, c = both_handshake(v6, sport, 7000 * sport, &ts);
			snprintf(what, sizeof(what), "captured hello %d (%zu bytes, '%s') over IPv%d", nh, hl, hp.name,
				 v6 ? 6 : 4);
			SAME(in, hello_pkt(v6, sport, 7000 * sport, c, ts, h, hl, in), what);
			sport++;
		}
		nh++;
	}
	fclose(f);
	CHECK(nh > 0, "no ClientHello in %s", hellos_file);
	printf("# fastpath: %d captured ClientHellos (%d with a name) through XDP, vm_fp and the DPDK worker\n", nh,
	       routed);
}

/* veil-fpgen's corpus (tests/fpgen.h: what the DPDK benchmark replays),
 * made with this gateway's secret, VIP and route: each connection's
 * ClientHello; hellos then data within the hello's 16 KB (the handoff
 * option); data past them, connections in turns; an ACK flood's bad
 * cookies.  Every packet through all three, held to the same rule, and the
 * exits they must take counted on the XDP side. */
static void fpgen_same(void)
{
	static struct hb h;
	static const struct { enum fpgen_kind kind; long flows, per, offset; int inter; const char *what; } runs[] = {
		{ FPGEN_HELLO, 24, 0, 0, 0, "hello" },
		{ FPGEN_ESTABLISHED, 12, 4, 0, 0, "established" },
		{ FPGEN_ESTABLISHED, 12, 4, 16384, 1, "steady, interleaved" },
		{ FPGEN_ACK, 24, 0, 0, 0, "ack flood" },
	};
	struct fpgen g = { .payload = 100 };
	uint8_t pkt[2048];
	char what[128];
	long first = 0, total = 0;

	memcpy(g.smac, CLI_MAC, 6);
	memcpy(g.dmac, GW_MAC, 6);
	memcpy(g.vip, VIP4, 4);
	g.key = &CONF.sec.cur;
	g.hello = h.b;
	g.hello_len = hb_browser(&h, "www.veil.test", 600);
	struct gw_stats x0 = gw_now(), x1;
	int skipped0 = n_skipped;
	for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
		g.kind = runs[r].kind;
		g.flows = runs[r].flows;
		g.per = runs[r].per;
		g.offset = runs[r].offset;
		g.interleave = runs[r].inter;
		g.first = first;
		first += 100;
		for (long n = 0; n < fpgen_count(&g); n++) {
			g.tnow = vm_gw_cookie_tnow(&GC.dp, tai_now());
			snprintf(what, sizeof(what), "fpgen %s, packet %ld", runs[r].what, n);
			SAME(pkt, fpgen_packet(&g, n, pkt), what);
			total++;
		}
	}
	x1 = gw_now();
	/* the exits fpgen's traffic is for, on the XDP side (the other two
	 * were held to it packet by packet), unless a cookie window turned
	 * between a packet's runs (then that packet was not compared) */
	if (n_skipped == skipped0)
		CHECK(x1.hello_routed - x0.hello_routed == 48 && x1.fwd_established - x0.fwd_established == 96 &&
		      x1.bad_cookie - x0.bad_cookie == 24,
		      "fpgen's exits: %llu hellos routed (48), %llu forwarded (96), %llu bad cookies (24)",
		      (unsigned long long)(x1.hello_routed - x0.hello_routed),
		      (unsigned long long)(x1.fwd_established - x0.fwd_established),
		      (unsigned long long)(x1.bad_cookie - x0.bad_cookie));
	printf("# fastpath: %ld packets of veil-fpgen's corpus through XDP, vm_fp and the DPDK worker\n", total);
}

/* The next-hop table (vm_fp_conf_neigh_set, vm_fp_conf_neigh): as many
 * next hops as the XDP gateway's next_hops map holds, IPv4 and IPv6, each
 * found by its node's address with its own MAC; an address given twice
 * keeps its first entry; absent ones are not found; one over the bound is
 * refused with the table intact.  It leaves CONF and DCONF with that many
 * (the two real nodes among them, last) for the tests after it: fpgen_same
 * then holds the DPDK worker and vm_fp to XDP's bytes with a full table. */
static void neigh_table(void)
{
	static struct vm_fp_neigh nb[VM_FP_MAX_NEIGH + 1];
	struct vm_fp_conf c = { 0 };
	int n = VM_FP_MAX_NEIGH, bad = 0, absent = 0;
	char a[64];

	for (int i = 0; i < n; i++) {
		if (i & 1)
			snprintf(a, sizeof(a), "2001:db8:%x::%x", 0x100 + (i >> 8), i);
		else
			snprintf(a, sizeof(a), "198.18.%d.%d", 100 + (i >> 8), i & 0xff);
		CHECK(vm_addr_parse(a, nb[i].addr), "address %s", a);
		nb[i].mac[0] = 0x02;
		nb[i].mac[4] = (uint8_t)(i >> 8);
		nb[i].mac[5] = (uint8_t)i;
		nb[i].mtu = 1500 + i;
	}
	memcpy(nb[n - 1].addr, nb[7].addr, 16);   /* given twice: the first holds */
	CHECK(vm_fp_conf_neigh_set(&c, nb, n) == 0 && c.nneigh == n - 1 && c.neigh_cap >= 2u * (uint32_t)c.nneigh,
	      "%d next hops set: %d held in %u slots", n, c.nneigh, c.neigh_cap);
	for (int i = 0; i < n - 1; i++) {
		const struct vm_fp_neigh *f = vm_fp_conf_neigh(&c, nb[i].addr);
		bad += !f || memcmp(f->mac, nb[i].mac, 6) || f->mtu != nb[i].mtu;
	}
	CHECK(bad == 0, "%d of %d next hops not found as set", bad, n - 1);
	const struct vm_fp_neigh *f7 = vm_fp_conf_neigh(&c, nb[7].addr);
	CHECK(f7 && f7->mtu == 1507, "the address given twice keeps its first entry");
	for (int i = 0; i < 1000; i++) {
		uint8_t x[16];
		snprintf(a, sizeof(a), i & 1 ? "2001:db8:ffff::%x" : "198.19.%d.%d", i & 1 ? i : (i >> 8) + 10, i & 0xff);
		vm_addr_parse(a, x);
		absent += vm_fp_conf_neigh(&c, x) != NULL;
	}
	CHECK(absent == 0, "%d absent addresses found", absent);
	CHECK(vm_fp_conf_neigh_set(&c, nb, VM_FP_MAX_NEIGH + 1) == -1 && c.nneigh == n - 1 &&
	      vm_fp_conf_neigh(&c, nb[3].addr), "one over the bound refused, the table intact");
	CHECK(vm_fp_conf_neigh_set(&c, NULL, 0) == 0 && c.nneigh == 0 && !vm_fp_conf_neigh(&c, nb[3].addr),
	      "emptied");
	vm_fp_conf_free(&c);

	/* the packet path with a full table: the real nodes last */
	CHECK(CONF.nneigh == 2, "CONF's two next hops");
	memcpy(&nb[n - 2], &CONF.neigh[0], sizeof(nb[0]));
	memcpy(&nb[n - 1], &CONF.neigh[1], sizeof(nb[0]));
	CHECK(vm_fp_conf_neigh_set(&CONF, nb, n) == 0 && CONF.nneigh == n, "CONF takes %d next hops", n);
	dconf_sync();
}

#ifndef VEIL_FUZZ_FASTPATH
int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--hellos"))
		hellos_file = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: test_fastpath [--hellos FILE]\n");
		return 2;
	}
	if (setup("tests/fixtures") || fp_setup() || dp_setup()) {
		printf("FAIL fastpath_setup: could not build the test namespace or load the programs\n");
		return 1;
	}
	if (hellos_file) {
		RUN(captured_hellos_same);
		goto out;
	}
	RUN(syn_same);
	RUN(cookie_acks_same);
	RUN(hello_routed_same);
	RUN(refusals_same);
	RUN(fixtures_same);
	RUN(other_traffic_same);
	RUN(reassembly_same);
	RUN(asm_table_full_same);
	RUN(asm_cap_sized);
	RUN(held_lost_same);
	RUN(partial_lost_same);
	RUN(lifecycle_same);
	RUN(sweep_same);
	RUN(truncations_same);
	RUN(return_path_same);
	RUN(mesh_mtu_same);
	RUN(collisions_same);
	RUN(mutations_same);
	RUN(ack_flood_same);
	RUN(fp_flow_filter);
	RUN(neigh_table);
	RUN(fpgen_same);
out:
	vm_fp_free(&FP);
	vm_dp_worker_free(W);
	rte_eal_cleanup();
	if (DP_PREFIX[0]) {
		char dir[96];
		snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", DP_PREFIX);
		rmdir(dir);
	}
	vm_fp_conf_free(&CONF);
	free(GC.routes);
	vm_gw_close(&G);
	vm_node_close(&N);
	return t_done();
}
#endif /* VEIL_FUZZ_FASTPATH */

#ifdef VEIL_FUZZ_FASTPATH
#include "fuzz_trace.h"
/*
 * The same three sides under libFuzzer (build/tests/fuzz_fastpath, built by
 * clang with the packet library's C sources and dp.c instrumented, under
 * ASan and UBSan): each input is one packet through XDP (and gw_asm in TC),
 * vm_fp and a DPDK worker poll, held to both_run's rule; any difference, and
 * any bad read or write in the C build, aborts and keeps the input.
 *
 * Input: byte 0's low three bits choose the mode.
 *   0: the rest is a frame for gw_ingress (from a client), as it is;
 *   1: the rest is a frame for gw_return (from a node), as it is;
 *   7: a route changed on every side as the daemons change it (the name
 *      checked by vm_route_name_ok first, as the config's parser does):
 *      byte 1 bit 0 del (else put), bit 1 the IPv6 node (else IPv4), the
 *      rest the name; at most FZ_ROUTES more than the fixtures' two, which
 *      stay;
 *   else: a packet of a connection the harness keeps, so that fuzzed bytes
 *      reach the flow, hello and reassembly paths past the cookie:
 *      byte 1: bit 0 IPv6, bits 1-4 which of 16 client ports;
 *      byte 2: the TCP flags;
 *      byte 3: bit 4 the VM's packet back through the node (Geneve from
 *              the node, VIP to client; bit 5 over IPv6), else the
 *              client's; bits 0-1 the
 *              sequence (0 the side's next, 1 its ISN's next, 2 next + d,
 *              3 next - d), bit 2 the ACK the other side's next + d (else
 *              its next: the cookie's next until the VM sent data),
 *              bit 3 no timestamp option;
 *      bytes 4-5: d (big-endian);
 *      the rest: the TCP payload.
 *   The connection's handshake runs through all three first (a SYN, whose
 *   SYN-ACK gives the cookie) the first time a port is used, and again on a
 *   new set of ports (fz_rotate, which also sweeps).
 */
#define FZ_PORTS 16
static struct fz_conn { int up; uint32_t isn, cookie, ts, next, vm_next; } FZ[2][FZ_PORTS];
static uint16_t fz_base = 40000;
static uint32_t fz_isn = 1000;

static void fz_abort(const char *what)
{
	fprintf(stderr, "fuzz_fastpath: %s: %s\n", what, t_why);
	abort();
}

/* Route name (NUL-terminated, at most VM_NAME_MAX - 1 bytes) put or
 * deleted on every side: the routes map (veil-gw's vm_gw_route_put /
 * vm_gw_route_del), vm_fp's table and the DPDK worker's (vm_fp_conf_set, as
 * veil-gw-dpdk's reload).  The fixtures' two routes stay. */
#define FZ_ROUTES 12
static int fz_routes0;
static int fz_verbose;   /* VEIL_FUZZ_VERBOSE (fz_run) */
static void fz_route(int del, int v6, const char *name)
{
	int at = -1;
	for (int i = 0; i < GC.nroutes; i++)
		if (!strncmp(GC.routes[i].key.name, name, VM_NAME_MAX))
			at = i;
	if (del) {
		if (at < fz_routes0)
			return;
		if (vm_gw_route_del(vm_gw_map_fd(&G, "routes"), name))
			fz_abort("a route's delete failed in the routes map");
		GC.routes[at] = GC.routes[--GC.nroutes];
		if (vm_fp_conf_set(&CONF, &GC))
			fz_abort("vm_fp_conf_set");
		dconf_sync();
	} else {
		if (at >= 0 || GC.nroutes >= fz_routes0 + FZ_ROUTES || !vm_route_name_ok(name))
			return;
		if (add_route(name, v6 ? "2001:db8:ff::11" : "198.19.0.11"))
			fz_abort("a route's put failed");
	}
	if (fz_verbose)
		fprintf(stderr, "fuzz_fastpath: route %s %s (%d routes)\n", del ? "deleted" : "put", name, GC.nroutes);
}

/* A trace's fresh start (fuzz_trace.h): its ports and ISNs, as fz_rotate
 * and a replay make them. */
static void fz_base_set(uint16_t b)
{
	fz_base = b;
	fz_isn = (uint32_t)fz_base * 0x9e3779b1u;
}

/* A new set of ports, every FZ_ROTATE connection inputs or FZ_ROTATE_NS:
 * the old connections are reset, the sweep retires what it retires (the
 * same flows on every side, or the fuzzer stops), the reassembly tables
 * are emptied and the fuzzer's routes deleted.  So no hello is held for as
 * long as VM_ASM_TIMEOUT_NS (its timeout, which each side judges by its
 * own clock, cannot fall between the sides' runs), and no connection's
 * cookie is older than a cookie window (a window that turned between the
 * sides' runs, which then compare nothing, cannot have made them judge a
 * cookie differently).  The trace starts again there, with the new ports'
 * base (a record of length 0, then the base). */
#define FZ_ROTATE 20000
#define FZ_ROTATE_NS (VM_ASM_TIMEOUT_NS / 2)
static FILE *fz_trace;
static long fz_count;
static uint64_t fz_since;
static void fz_rotate(void)
{
	uint8_t in[256];
	for (int v6 = 0; v6 < 2; v6++)
		for (int i = 0; i < FZ_PORTS; i++) {
			struct fz_conn *c = &FZ[v6][i];
			if (!c->up)
				continue;
			struct t_pkt p = client_pkt(v6, fz_base + 2 * i + v6, c->next, c->vm_next, T_RST | T_ACK);
			struct both b;
			if (both_run(0, in, t_build(&p, in), &b, "fuzz: an old connection's RST", 0))
				fz_abort("an old connection's RST");
			c->up = 0;
		}
	/* two passes of the sweep, VM_SWEEP_EVERY_S apart by its clock (the
	 * fuzzer's own, ahead of TAI): the same flows must go on every side,
	 * and the connections just reset go */
	static struct vm_sweep sw;
	static uint64_t sw_t;
	if (!sw_t) {
		vm_sweep_init(&sw, vm_gw_map_fd(&G, "flows"), sizeof(struct flow_key), sizeof(struct flow_val),
			      offsetof(struct flow_val, fin), VM_SWEEP_EVERY_S);
		sw.ft = gw_ft();
		sw.on_retire = xdp_retired;
		sw_t = tai_now() / 1000000000ULL;
	}
	for (int pass = 0; pass < 2; pass++) {
		sw_t += VM_SWEEP_EVERY_S;
		if (sweep_pass(&sw, sw_t) < 0 || t_failed_here)
			fz_abort("the sweep");
	}
	asm_tables_empty();
	while (GC.nroutes > fz_routes0)
		fz_route(1, 0, GC.routes[GC.nroutes - 1].key.name);
	fz_base_set(fz_base >= 60000 ? 40000 : fz_base + 2 * FZ_PORTS);
	fz_count = 0;
	fz_since = tai_now();
	fuzz_trace_restart(fz_trace, fz_base);
}

/* Seeds for a fresh corpus (VEIL_FUZZ_SEED_DIR, as tests/fuzz.sh sets):
 * hellos on both families, data after one, a FIN and an RST, a SYN and a
 * node's return packet as raw frames, a hello in two segments and the
 * VM's ACK of it, the VM's data and FIN, a route, hellos of names under
 * the wildcard, unrouted and bad. */
static void fz_seeds(const char *dir)
{
	static uint8_t b[2400];
	size_t n;
	struct t_pkt p;

	memcpy(b, "\x02\x00\x18\x00\x00\x00", 6);
	memcpy(b + 6, hello_curl, hello_curl_len);
	fuzz_seed(dir, "seed-hello4", b, 6 + hello_curl_len);
	b[1] = 1;
	fuzz_seed(dir, "seed-hello6", b, 6 + hello_curl_len);
	b[1] = 2;   /* a hello in two segments on one connection, then the VM's ACK of it */
	fuzz_seed(dir, "seed-hello-start", b, 6 + 40);   /* the name not in it: held for reassembly */
	memcpy(b + 6, hello_curl + 40, hello_curl_len - 40);
	fuzz_seed(dir, "seed-hello-rest", b, 6 + hello_curl_len - 40);
	b[2] = 0x10;
	b[3] = 0x10;
	fuzz_seed(dir, "seed-hello-vm-ack", b, 6);
	b[2] = 0x18;
	b[3] = 0;
	b[1] = 0;
	memset(b + 6, 0x17, 200);
	fuzz_seed(dir, "seed-data4", b, 6 + 200);
	b[3] = 0x10;   /* the VM's data (over an IPv4 and an IPv6 mesh), then its FIN */
	fuzz_seed(dir, "seed-vm-data4", b, 6 + 200);
	b[3] = 0x30;
	fuzz_seed(dir, "seed-vm-data4-mesh6", b, 6 + 200);
	b[3] = 0x10;
	b[2] = 0x11;
	fuzz_seed(dir, "seed-vm-fin4", b, 6);
	b[3] = 0;
	b[2] = 0x11;   /* FIN ACK */
	fuzz_seed(dir, "seed-fin4", b, 6);
	b[2] = 0x14;   /* RST ACK */
	fuzz_seed(dir, "seed-rst4", b, 6);
	/* browser-shaped hellos: a name under the wildcard route, one no
	 * route has, one that is no host name */
	static struct hb h;
	static const char *const names[3][2] = { { "seed-hello-wild", "x.apps.veil.test" },
						  { "seed-hello-unrouted", "nowhere.veil.test" },
						  { "seed-hello-badname", "a_b.apps.veil.test" } };
	for (int i = 0; i < 3; i++) {
		size_t hn = hb_browser(&h, names[i][1], 517);
		if (hn <= 1360) {
			memcpy(b, "\x02\x06\x18\x00\x00\x00", 6);
			memcpy(b + 6, h.b, hn);
			fuzz_seed(dir, names[i][0], b, 6 + hn);
		}
	}
	b[0] = 7;
	b[1] = 0;
	memcpy(b + 2, "fuzz.veil.test", 14);
	fuzz_seed(dir, "seed-route", b, 2 + 14);
	b[0] = 0;
	p = client_pkt(0, 42000, 5, 0, T_SYN);
	p.opts = SYN_OPTS;
	p.optlen = 20;
	n = t_build(&p, b + 1);
	fuzz_seed(dir, "seed-syn4", b, 1 + n);
	b[0] = 1;
	n = reply_frame(b + 1, 41020);
	fuzz_seed(dir, "seed-return4", b, 1 + n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *fx = getenv("VEIL_FIXTURES"), *sd = getenv("VEIL_FUZZ_SEED_DIR");
	const char *tr = getenv("VEIL_FUZZ_TRACE"), *rp = getenv("VEIL_FUZZ_REPLAY");

	fz_verbose = getenv("VEIL_FUZZ_VERBOSE") != NULL;

	vm_lib_logging(false);
	if (setup(fx ? fx : "tests/fixtures") || fp_setup() || dp_setup()) {
		fprintf(stderr, "fuzz_fastpath: cannot set up the test namespace, load the programs or start the EAL\n");
		abort();
	}
	/* libFuzzer may end the process without running atexit handlers: the
	 * programs hold their maps by fd, so the pins can go now (the EAL's
	 * runtime directory too: --no-shconf writes nothing that needs it) */
	cleanup();
	char dir[96];
	snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", DP_PREFIX);
	rmdir(dir);
	/* room for the fuzzer's routes */
	fz_routes0 = GC.nroutes;
	GC.routes = realloc(GC.routes, (size_t)(fz_routes0 + FZ_ROUTES) * sizeof(*GC.routes));
	if (!GC.routes)
		abort();
	if (sd)
		fz_seeds(sd);
	fz_since = tai_now();
	if (rp)
		fuzz_trace_replay("fuzz_fastpath", rp, fz_base_set);
	if (tr && !(fz_trace = fopen(tr, "we"))) {
		perror(tr);
		abort();
	}
	return 0;
}

/* VEIL_FUZZ_VERBOSE: each input's XDP verdict and the counters it moved
 * (with VEIL_FUZZ_REPLAY, what a trace did). */
static int fz_run(int ret, const uint8_t *in, size_t n, struct both *b, const char *what)
{
	struct gw_stats x0, x1;
	if (fz_verbose)
		x0 = gw_now();   /* a map read per call: only when asked */
	int bad = both_run(ret, in, n, b, what, 0);

	if (fz_verbose) {
		x1 = gw_now();
		fprintf(stderr, "fuzz_fastpath: %s, %zu bytes: XDP verdict %u%s", what, n, b->xdp, b->skip ? " (skipped)" : "");
		for (size_t i = 0; i < NSTATS; i++)
			if (((__u64 *)&x1)[i] != ((__u64 *)&x0)[i])
				fprintf(stderr, " %s+%llu", STAT_NAMES[i],
					(unsigned long long)(((__u64 *)&x1)[i] - ((__u64 *)&x0)[i]));
		fputc('\n', stderr);
	}
	return bad;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t in[2400];
	struct both b;
	int mode;

	if (size < 1 || size > 1 + 2048)
		return 0;
	t_failed_here = 0;
	mode = data[0] & 7;
	if (mode >= 2 && mode != 7 && (++fz_count > FZ_ROTATE || tai_now() - fz_since > FZ_ROTATE_NS))
		fz_rotate();
	fuzz_trace_input(fz_trace, data, size);
	if (mode == 7) {
		char name[VM_NAME_MAX];
		size_t n = size < 2 ? 0 : size - 2 < sizeof(name) - 1 ? size - 2 : sizeof(name) - 1;
		memcpy(name, data + 2, n);
		name[n] = 0;
		if (size >= 2)
			fz_route(data[1] & 1, data[1] & 2, name);
		return 0;
	}
	if (mode < 2) {
		if (size < 1 + 14)
			return 0;
		memcpy(in, data + 1, size - 1);
		if (fz_run(mode, in, size - 1, &b, mode ? "a raw frame from a node" : "a raw frame from a client") ||
		    t_failed_here)
			fz_abort("a raw frame");
		return 0;
	}
	if (size < 6 || size - 6 > 1360)   /* at most the MSS the gateway announces */
		return 0;
	int v6 = data[1] & 1, i = (data[1] >> 1) % FZ_PORTS;
	uint16_t sport = fz_base + 2 * i + v6, d = (uint16_t)(data[4] << 8 | data[5]);
	struct fz_conn *c = &FZ[v6][i];
	if (!c->up) {
		c->isn = fz_isn += 0x01000193;
		c->cookie = both_handshake(v6, sport, c->isn, &c->ts);
		if (t_failed_here)
			fz_abort("a handshake");
		c->next = c->isn + 1;
		c->vm_next = c->cookie + 1;
		c->up = 1;
	}
	int vm = data[3] & 0x10;   /* the VM's packet, back through the node */
	uint32_t base = vm ? c->vm_next : c->next, seq = base;
	switch (data[3] & 3) {
	case 1: seq = vm ? c->cookie + 1 : c->isn + 1; break;
	case 2: seq = base + d; break;
	case 3: seq = base - d; break;
	}
	/* TSval, TSecr: the client's and the gateway's SYN-ACK's, or the VM's
	 * and the client's */
	static uint8_t ts[12] = { 1, 1, 8, 10 };
	uint32_t v = htonl(vm ? 0x7000000 : 0x11223355);
	memcpy(ts + 4, &v, 4);
	v = htonl(vm ? 0x11223355 : c->ts);
	memcpy(ts + 8, &v, 4);
	uint32_t ack = (vm ? c->next : c->vm_next) + (data[3] & 4 ? d : 0);
	struct t_pkt p = client_pkt(v6, sport, seq, ack, data[2]);
	if (vm) {
		p = (struct t_pkt){ .v6 = v6, .sport = 443, .dport = sport, .seq = seq, .ack = ack, .flags = data[2], .window = 500 };
		memcpy(p.src, v6 ? VIP6 : VIP4, v6 ? 16 : 4);
		memcpy(p.dst, v6 ? CLI6 : CLI4, v6 ? 16 : 4);
	}
	if (!(data[3] & 8)) {
		p.opts = ts;
		p.optlen = 12;
	}
	p.payload = data + 6;
	p.plen = (int)(size - 6);
	size_t n = t_build(&p, in);
	if (vm) {
		/* from the node: as the gateway sends to it, turned around */
		static uint8_t inner[2400];
		int o6 = !!(data[3] & 0x20);
		uint8_t a[16], *ip = in + 14;
		memcpy(inner, in, n);
		n = mesh_wrap(inner, n, o6, NULL, in);
		memcpy(in, GW_MAC, 6);
		memcpy(in + 6, NODE_MAC, 6);
		memcpy(a, ip + (o6 ? 8 : 12), o6 ? 16 : 4);
		memmove(ip + (o6 ? 8 : 12), ip + (o6 ? 24 : 16), o6 ? 16 : 4);
		memcpy(ip + (o6 ? 24 : 16), a, o6 ? 16 : 4);
	}
	if (fz_run(!!vm, in, n, &b, vm ? "a connection's packet from the VM" : "a connection's packet") || t_failed_here)
		fz_abort(vm ? "a connection's packet from the VM" : "a connection's packet");
	if (!b.skip && b.xdp != XDP_DROP_)
		*(vm ? &c->vm_next : &c->next) = seq + p.plen + !!(data[2] & T_FIN);
	return 0;
}
#endif /* VEIL_FUZZ_FASTPATH */
