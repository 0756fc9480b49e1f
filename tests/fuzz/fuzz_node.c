// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer over the node's programs through BPF_PROG_TEST_RUN: node_mesh
 * (XDP: Geneve from the gateways, a handoff or a client's segment) and
 * node_vm (TC: a VM's packets, which the VM's owner writes).  The verifier
 * keeps them from reading out of bounds; what it cannot see is the
 * translation: every segment between a client and a VM has its sequence,
 * ACK, SACK edges, timestamps, window and addresses rewritten with the
 * checksums updated in place (RFC 1624), and the outer headers built.  The
 * gateway's packet library is held to its C build (fuzz_fastpath); the
 * node's programs have no second build, so each run is held to rules that
 * need none:
 *   - a frame sent on (XDP_TX or a redirect) is whole: Ethernet type and
 *     IP version agree, the IP lengths lie within the frame, the TCP
 *     header within the IP packet; to a gateway (Geneve): the outer
 *     headers, which the node builds, exact (the IP length the frame's,
 *     the IPv4 checksum holding, UDP to port 6081 of the IP payload's
 *     length, Geneve version 0 with its options inside), the inner
 *     protocol the inner IP version's;
 *   - a segment whose TCP checksum (and IPv4 header checksum) held when it
 *     came in leaves with both holding, whatever the translation changed;
 *   - a drop (XDP_DROP, TC_ACT_SHOT) moves a counter (node_stats): nothing
 *     is dropped unaccounted; XDP_ABORTED never comes;
 *   - a segment of a connection the harness opened (the VM answered its
 *     SYN), sent on, is translated as that connection's ISNs say
 *     (translated(): addresses, ports, sequence, ACK, SACK edges,
 *     timestamps, window, the options' layout, the payload).
 * What it found (2026-12-08): an inner IPv4 header of version 12 replayed
 * to the VM as it was (the parsers now check the version), and segments
 * whose TCP options end in a broken one sent on with none translated
 * (now dropped and counted: a stack reads the options before the broken
 * one).
 * Any break aborts, with the frames in and out dumped.
 *
 * Input: byte 0's low three bits choose the mode.
 *   0: the rest is a frame for node_mesh, as it is;
 *   1: the rest is a frame for node_vm, as it is;
 *   2: the rest (from byte 2) is a client-side frame whose IP packet is
 *      wrapped in Geneve from the gateway (byte 1 bit 0: over IPv6; bit 1:
 *      with a handoff option made of bytes 2-25, the frame after them);
 *   7: a new connection in slot (byte 1: bit 0 IPv6, bits 1-3 the slot,
 *      bit 5 the mesh over IPv6, bit 6 the VM answers its SYN): the
 *      handoff option from bytes 2-25 (the VM id kept 1, the client ISN
 *      the harness's), the rest the first segment (a hello);
 *   else: a packet of a connection the harness keeps (the handoff and the
 *      VM's SYN-ACK run first when the slot has none):
 *      byte 1: bit 0 IPv6, bits 1-3 which of 8 slots, bit 4 the VM's (to
 *              node_vm; else the client's, wrapped in Geneve to node_mesh),
 *              bit 5 the mesh over IPv6, bit 6 the TCP checksum spoilt;
 *      byte 2: the TCP flags;
 *      byte 3: bits 0-1 the sequence (the side's next, its ISN's next,
 *              next + d, next - d), bit 2 the ACK the other side's next
 *              + d; bits 4-5 the options: the timestamp block, none, or
 *              the input's (byte 6: their length, a multiple of 4 up to
 *              40, the bytes after it);
 *      bytes 4-5: d (big-endian);
 *      the rest: the TCP payload.
 * The connections start again every FZ_ROTATE connection inputs on new
 * ports: the VM resets each, which the node forgets at once.  The inputs
 * since then go to VEIL_FUZZ_TRACE (a 4-byte length and the bytes each;
 * length 0 and 2 bytes: a restart's port base); VEIL_FUZZ_REPLAY=FILE runs
 * such a file first, VEIL_FUZZ_VERBOSE=1 prints each run's verdict and
 * counters.
 */
#include "../bpf_env.h"
#include "../frame_check.h"
#include "../fuzz_trace.h"

#define FZ_SLOTS 8
#define FZ_ROTATE 20000

static int ready, verbose;

/* What the programs did, as libFuzzer's coverage (its extra counters, read
 * after each input): the programs' own branches are not instrumented, so
 * each (program, verdict, counter moved) is a feature of its own, and an
 * input that makes a new one is kept. */
#define FEAT_VERDICTS 8
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t feat[2][FEAT_VERDICTS][128];
static FILE *trace;
static long count;
static uint16_t base = 30000;
static uint32_t isn_next = 1;
/* est: the VM answered the handoff's SYN, so the node holds both ISNs as
 * here; a raw frame on the slot's tuple clears it (the node's state may no
 * longer be the harness's). */
static struct conn { int up, est; uint8_t gw_ws; uint32_t isn, cookie, gw_ts, vm_isn, next, vm_next; } C[2][FZ_SLOTS];

static void fail(const char *what, const uint8_t *in, size_t n, const struct run *r)
{
	fprintf(stderr, "fuzz_node: %s\n", what);
	t_hexdump("fuzz_node: in", in, n);
	if (r)
		t_hexdump("fuzz_node: out", r->out, r->len < sizeof(r->out) ? r->len : sizeof(r->out));
	abort();
}

/* One frame through prog (mesh: node_mesh in XDP, else node_vm in TC),
 * held to the rules; returns the verdict. */
static __u32 run_node(int mesh, const uint8_t *in, size_t n, struct run *r, const char *what)
{
	struct node_stats b = node_now(), a;

	if (mesh)
		xdp_run(NODE_MESH, in, n, r);
	else
		tc_run(NODE_VM, in, n, r);
	a = node_now();
	int moved = memcmp(&a, &b, sizeof(a)) != 0;
	for (int i = 0; i < vm_node_stat_count && i < 128; i++)
		if (((__u64 *)&a)[i] != ((__u64 *)&b)[i])
			feat[mesh][r->verdict % FEAT_VERDICTS][i]++;
	if (verbose) {
		fprintf(stderr, "fuzz_node: %s, %zu bytes: verdict %u, %u out", what, n, r->verdict, r->len);
		for (int i = 0; i < vm_node_stat_count; i++)
			if (((__u64 *)&a)[i] != ((__u64 *)&b)[i])
				fprintf(stderr, " %s+%llu", vm_node_stat_names[i],
					(unsigned long long)(((__u64 *)&a)[i] - ((__u64 *)&b)[i]));
		fputc('\n', stderr);
	}
	if (r->rc) {
		/* the kernel refuses some frames before any program sees them
		 * (a TC run of an IPv4 frame shorter than its header): only
		 * the raw modes make such */
		if (strncmp(what, "a raw", 5))
			fail("the test run failed", in, n, NULL);
		return XDP_PASS_;
	}
	if (mesh && r->verdict == XDP_ABORTED_)
		fail("XDP_ABORTED", in, n, r);
	if ((mesh ? r->verdict == XDP_DROP_ : r->verdict == TC_ACT_SHOT_) && !moved)
		fail("a drop that no counter counts", in, n, r);
	int sent = mesh ? r->verdict == XDP_TX_ || r->verdict == XDP_REDIRECT_ : r->verdict == TC_ACT_REDIRECT_;
	/* the VM's SYN-ACK answered: the packet, dropped, was made the ACK
	 * with the hello first and sent as a clone; a packet the node made
	 * has its checksums holding whatever came in */
	int made = !mesh && r->verdict == TC_ACT_SHOT_ && a.vm_synack != b.vm_synack;
	if (!sent && !made)
		return r->verdict;
	const char *bad = made ? frame_made_ok(r->out, r->len) : frame_sent_ok(in, n, r->out, r->len, 1);
	if (*bad) {
		char m[200];
		snprintf(m, sizeof(m), "%s: %s", what, bad);
		fail(m, in, n, r);
	}
	return r->verdict;
}

/* The gateway's handoff of connection c (slot port sport): the first
 * segment (payload, or the curl hello) wrapped with the option ho, then,
 * when vm_answers, the VM's SYN-ACK to the SYN the node replayed. */
static void conn_open(int v6, int ov6, uint16_t sport, struct conn *c, const struct vm_handoff *ho0,
		      const uint8_t *pl, size_t pn, int vm_answers)
{
	static uint8_t frame[2048], mesh[2400];
	struct vm_handoff ho = { .vm_id_be = htonl(1), .mss_be = htons(1440), .client_wscale = 10, .gw_wscale = 7,
				 .flags = VM_HO_SACK_OK | VM_HO_TS_OK };
	uint8_t sa_opts[20];
	struct run r;

	if (ho0)
		ho = *ho0;
	ho.vm_id_be = htonl(1);
	c->isn = isn_next += 0x01000193;
	c->cookie = c->isn * 0x9e3779b1u;
	c->gw_ts = 5000000 + c->isn % 1000;
	c->vm_isn = c->isn ^ 0x5a5a5a5a;
	ho.client_isn_be = htonl(c->isn);
	ho.cookie_isn_be = htonl(c->cookie);
	ho.gw_tsval_be = htonl(c->gw_ts);
	if (!pl) {
		pl = hello_curl;
		pn = hello_curl_len;
	}
	size_t fl = hello_pkt(v6, sport, c->isn, c->cookie, c->gw_ts, pl, pn, frame);
	size_t n = mesh_wrap(frame, fl, ov6, &ho, mesh);
	run_node(1, mesh, n, &r, "a handoff");
	c->next = c->isn + 1 + (uint32_t)pn;
	c->vm_next = c->vm_isn + 1;
	c->up = 1;
	c->est = 0;
	c->gw_ws = ho.gw_wscale;
	if (!vm_answers)
		return;
	struct t_pkt sa = vm_synack(v6, sport, c->vm_isn, c->isn, 0x11223355, sa_opts);
	n = t_build(&sa, frame);
	c->est = run_node(0, frame, n, &r, "the VM's SYN-ACK") == TC_ACT_SHOT_;   /* answered with the hello */
}

/* The options a TCP stack takes from a header, as Linux's
 * tcp_parse_options does: the walk stops at the end of the list or at an
 * option cut short, and of several timestamps or SACK options the last
 * counts (a SACK option only of whole blocks).  *ts: the timestamp's
 * offset from the header's start, or 0; the SACK edges' offsets in off,
 * their count returned. */
static int opts_taken(const uint8_t *tcp, size_t off[8], size_t *ts)
{
	size_t len = (size_t)(tcp[12] >> 4) * 4, i = 20;
	int n = 0;

	*ts = 0;
	while (i < len) {
		uint8_t k = tcp[i];
		if (k == 0)
			break;
		if (k == 1) {
			i++;
			continue;
		}
		if (i + 1 >= len || tcp[i + 1] < 2 || i + tcp[i + 1] > len)
			break;
		if (k == 8 && tcp[i + 1] == 10)
			*ts = i + 2;
		if (k == 5 && tcp[i + 1] >= 10 && (tcp[i + 1] - 2) % 8 == 0) {
			n = 0;
			for (size_t e = i + 2; e + 4 <= i + tcp[i + 1] && n < 8; e += 4)
				off[n++] = e;
		}
		i += tcp[i + 1];
	}
	return n;
}

/* The VM's TSval and window scale in the harness's SYN-ACK (vm_synack):
 * the node's timestamp offset for a connection is the gateway's TSval less
 * the VM's; the VM's windows reach the client rescaled from the VM's
 * scale to the one the gateway gave the client. */
#define VM_SYNACK_TSVAL 0x0309
#define VM_SYNACK_WSCALE 9

/* A connection's segment the node sent on, against what the harness knows
 * of the connection: the client's to the VM keeps its sequence and ports,
 * goes to the VM's address, and its ACK and SACK edges (with the ACK flag)
 * move from the gateway's (cookie) space to the VM's, its TSecr to the
 * VM's clock; the VM's to the client keeps its ACK, SACK edges and ports,
 * comes from the VIP, and its sequence moves from the VM's space to the
 * cookie's, its TSval to the gateway's clock, its window to the scale the
 * gateway gave the client.  The options keep their layout, the payload its
 * bytes. */
static void translated(int vm, int v6, const struct conn *c, const uint8_t *in, size_t n, const struct run *r)
{
	struct ipv vi, vo;
	const char *why;
	char m[200];
	size_t ei[8], eo[8], tsi, tso;

	if (tcp_of(in, n, 0, &vi, &why) != 1 || tcp_of(r->out, r->len, 1, &vo, &why) != 1)
		return;
	const uint8_t *ti = vi.l4, *to = vo.l4;
	uint32_t d = c->vm_isn - c->cookie;   /* cookie space -> the VM's */
	uint32_t dts = c->gw_ts - VM_SYNACK_TSVAL;   /* the VM's clock -> the gateway's */
	const uint8_t *want_addr = vm ? (v6 ? VIP6 : VIP4) : (v6 ? VM6 : VM4);
	const uint8_t *addr = vo.ip + (v6 ? (vm ? 8 : 24) : (vm ? 12 : 16));
	int ni = opts_taken(ti, ei, &tsi), no = opts_taken(to, eo, &tso);
	int acks = ti[13] & T_ACK;   /* without the flag the ACK field means nothing, and may stay as it was */
	size_t hl = (size_t)(ti[12] >> 4) * 4;
	/* the window the receiver must see (the client's goes as it is: the
	 * VM got the client's scale in the SYN the node replayed); -1: a
	 * gateway's scale past RFC 7323's 14, not judged */
	long win = t_be16(ti + 14);
	if (vm) {
		unsigned gs = c->gw_ws == VM_WSCALE_NONE ? 0 : c->gw_ws;
		unsigned long w = gs > 14 ? 0 : ((unsigned long)t_be16(ti + 14) << VM_SYNACK_WSCALE) >> gs;
		win = gs > 14 ? -1 : w > 65535 ? 65535 : (long)w;
	}

	if (vo.v6 != v6 || memcmp(addr, want_addr, v6 ? 16 : 4))
		snprintf(m, sizeof(m), "%s: not %s", vm ? "the VM's segment" : "the client's segment",
			 vm ? "from the VIP" : "to the VM's address");
	else if (memcmp(ti, to, 4))
		snprintf(m, sizeof(m), "ports changed");
	else if (vm ? t_be32(to + 4) != t_be32(ti + 4) - d || (acks && t_be32(to + 8) != t_be32(ti + 8))
		    : t_be32(to + 4) != t_be32(ti + 4) || (acks && t_be32(to + 8) != t_be32(ti + 8) + d))
		snprintf(m, sizeof(m), "seq %#x ack %#x from seq %#x ack %#x (the VM's ISN %#x, the cookie %#x)",
			 t_be32(to + 4), t_be32(to + 8), t_be32(ti + 4), t_be32(ti + 8), c->vm_isn, c->cookie);
	else if ((to[12] >> 4) != (ti[12] >> 4) || ni != no || tsi != tso)
		snprintf(m, sizeof(m), "the options' layout changed (%d SACK edges in, %d out; timestamps at %zu, %zu)", ni,
			 no, tsi, tso);
	else if (tsi && (vm ? t_be32(to + tso) != t_be32(ti + tsi) + dts || t_be32(to + tso + 4) != t_be32(ti + tsi + 4)
			    : t_be32(to + tso) != t_be32(ti + tsi) || t_be32(to + tso + 4) != t_be32(ti + tsi + 4) - dts))
		snprintf(m, sizeof(m), "timestamps %#x %#x from %#x %#x (the gateway's clock %+d from the VM's)",
			 t_be32(to + tso), t_be32(to + tso + 4), t_be32(ti + tsi), t_be32(ti + tsi + 4), (int)dts);
	else if (win >= 0 && t_be16(to + 14) != win)
		snprintf(m, sizeof(m), "window %u from %u (scales %u -> %u)", t_be16(to + 14), t_be16(ti + 14),
			 vm ? VM_SYNACK_WSCALE : 0, vm ? c->gw_ws : 0);
	else if (vo.l4len != vi.l4len || memcmp(to + hl, ti + hl, vi.l4len - hl))
		snprintf(m, sizeof(m), "the payload changed (%zu bytes in, %zu out)", vi.l4len - hl, vo.l4len - hl);
	else {
		for (int i = 0; i < ni && acks; i++)
			if (t_be32(to + eo[i]) != t_be32(ti + ei[i]) + (vm ? 0 : d)) {
				snprintf(m, sizeof(m), "SACK edge %d: %#x from %#x", i, t_be32(to + eo[i]), t_be32(ti + ei[i]));
				fail(m, in, n, r);
			}
		return;
	}
	fail(m, in, n, r);
}

/* A raw frame's TCP ports, if one of the harness's connections has them:
 * that connection's state at the node is no longer known here. */
static void raw_touches(const uint8_t *f, size_t n)
{
	struct ipv v;
	const char *why;

	if (tcp_of(f, n, 0, &v, &why) != 1)
		return;
	for (int v6 = 0; v6 < 2; v6++)
		for (int i = 0; i < FZ_SLOTS; i++) {
			uint16_t port = (uint16_t)(base + 2 * i + v6);
			if (t_be16(v.l4) == port || t_be16(v.l4 + 2) == port)
				C[v6][i].est = 0;
		}
}

/* A trace's fresh start: its ports and ISNs, as rotate() and a replay make them. */
static void base_set(uint16_t b)
{
	base = b;
	isn_next = (uint32_t)base * 0x9e3779b1u;
}

static void rotate(void)
{
	uint8_t f[256];
	struct run r;

	for (int v6 = 0; v6 < 2; v6++)
		for (int i = 0; i < FZ_SLOTS; i++) {
			struct conn *c = &C[v6][i];
			if (!c->up)
				continue;
			uint8_t o[20];
			struct t_pkt p = vm_synack(v6, base + 2 * i + v6, c->vm_next, c->next - 1, 0, o);
			p.flags = T_RST | T_ACK;
			p.ack = c->next;
			p.opts = NULL;
			p.optlen = 0;
			run_node(0, f, t_build(&p, f), &r, "an old connection's RST from the VM");
			c->up = 0;
		}
	base_set(base >= 60000 ? 30000 : base + 2 * FZ_SLOTS);
	count = 0;
	fuzz_trace_restart(trace, base);
}

/* Seeds for a fresh corpus: data each way on both families and meshes, a
 * SACK from the client, a late and an odd timestamp from the VM, FINs and
 * RSTs, a handoff, a raw handoff frame and a VM's frame. */
static void seeds(const char *dir)
{
	static uint8_t b[2400];
	static const uint8_t sack[24] = { 1, 1, 8, 10, 0x11, 0x22, 0x33, 0x77, 0, 0x4c, 0x4b, 0x47,
					  1, 1, 5, 10, 0, 0, 0, 9, 0, 0, 0, 99 };
	static const uint8_t late_ts[40] = { 1, 1, 5, 26, [28] = 1, 1, 8, 10, 0, 0, 3, 0x11, 0x11, 0x22, 0x33, 0x99 };
	static const uint8_t odd_ts[12] = { 1, 8, 10, 3, 0x12, 0, 1, 0x11, 0x22, 0x33, 0x44, 1 };
	struct vm_handoff ho = { .vm_id_be = htonl(1), .mss_be = htons(1440), .client_wscale = 10, .gw_wscale = 7,
				 .flags = VM_HO_SACK_OK | VM_HO_TS_OK };

	memcpy(b, "\x03\x00\x18\x00\x00\x00", 6);
	memset(b + 6, 0x17, 300);
	fuzz_seed(dir, "seed-client-data4", b, 6 + 300);
	b[1] = 0x21;
	fuzz_seed(dir, "seed-client-data6-mesh6", b, 6 + 300);
	b[1] = 0x10;
	fuzz_seed(dir, "seed-vm-data4", b, 6 + 300);
	b[1] = 0x11;
	fuzz_seed(dir, "seed-vm-data6", b, 6 + 300);
	b[1] = 0x40;
	fuzz_seed(dir, "seed-client-badsum4", b, 6 + 300);
	b[1] = 0x02;
	b[2] = 0x10;
	b[3] = 0x20;   /* the input's options: a SACK block after the timestamps */
	b[6] = sizeof(sack);
	memcpy(b + 7, sack, sizeof(sack));
	fuzz_seed(dir, "seed-client-sack", b, 7 + sizeof(sack));
	b[1] = 0x12;
	b[2] = 0x18;
	b[6] = sizeof(late_ts);
	memcpy(b + 7, late_ts, sizeof(late_ts));
	memset(b + 7 + sizeof(late_ts), 0x17, 100);
	fuzz_seed(dir, "seed-vm-late-ts", b, 7 + sizeof(late_ts) + 100);
	b[6] = sizeof(odd_ts);
	memcpy(b + 7, odd_ts, sizeof(odd_ts));
	fuzz_seed(dir, "seed-vm-odd-ts", b, 7 + sizeof(odd_ts));
	memcpy(b, "\x03\x04\x11\x00\x00\x00", 6);
	fuzz_seed(dir, "seed-client-fin", b, 6);
	b[1] = 0x14;
	fuzz_seed(dir, "seed-vm-fin", b, 6);
	b[2] = 0x14;
	fuzz_seed(dir, "seed-vm-rst", b, 6);
	b[1] = 0x04;
	fuzz_seed(dir, "seed-client-rst", b, 6);
	/* a new connection whose VM answers, one whose VM does not yet */
	b[0] = 7;
	b[1] = 0x46;
	memcpy(b + 2, &ho, sizeof(ho));
	memcpy(b + 2 + sizeof(ho), hello_curl, hello_curl_len);
	fuzz_seed(dir, "seed-handoff", b, 2 + sizeof(ho) + hello_curl_len);
	b[1] = 0x27;
	fuzz_seed(dir, "seed-handoff-unanswered6", b, 2 + sizeof(ho) + hello_curl_len);
	/* a handoff frame made whole by the harness, and raw */
	struct t_pkt p = client_pkt(0, 29000, 77, 78, T_ACK | T_PSH);
	p.payload = hello_curl;
	p.plen = (int)hello_curl_len;
	b[0] = 2;
	b[1] = 2;
	memcpy(b + 2, &ho, sizeof(ho));
	size_t n = t_build(&p, b + 2 + sizeof(ho));
	fuzz_seed(dir, "seed-wrap-handoff", b, 2 + sizeof(ho) + n);
	static uint8_t f[2400];
	b[0] = 0;
	n = mesh_wrap(b + 2 + sizeof(ho), n, 0, &ho, f);
	memcpy(b + 1, f, n);
	fuzz_seed(dir, "seed-raw-mesh", b, 1 + n);
	uint8_t o[20];
	struct t_pkt v = vm_synack(0, 29000, 5, 78, 1, o);
	v.flags = T_ACK;
	b[0] = 1;
	n = t_build(&v, b + 1);
	fuzz_seed(dir, "seed-raw-vm", b, 1 + n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *fx = getenv("VEIL_FIXTURES"), *sd = getenv("VEIL_FUZZ_SEED_DIR");
	const char *tr = getenv("VEIL_FUZZ_TRACE"), *rp = getenv("VEIL_FUZZ_REPLAY");

	verbose = getenv("VEIL_FUZZ_VERBOSE") != NULL;
	vm_lib_logging(false);
	if (setup(fx ? fx : "tests/fixtures")) {
		fprintf(stderr, "fuzz_node: cannot set up the test namespace or load the programs\n");
		abort();
	}
	/* libFuzzer may end the process without running atexit handlers: the
	 * programs hold their maps by fd, so the pins can go now */
	cleanup();
	base_set(base);
	if (sd)
		seeds(sd);
	ready = 1;
	if (rp)
		fuzz_trace_replay("fuzz_node", rp, base_set);
	if (tr && !(trace = fopen(tr, "we"))) {
		perror(tr);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t in[2400], inner[2400];
	struct run r;
	int mode;

	if (!ready || size < 1 || size > 1 + 2048)
		return 0;
	mode = data[0] & 7;
	if (mode >= 3 && ++count > FZ_ROTATE)
		rotate();
	fuzz_trace_input(trace, data, size);
	if (mode < 2) {
		if (size < 1 + 14)
			return 0;
		memcpy(in, data + 1, size - 1);
		raw_touches(in, size - 1);
		run_node(!mode, in, size - 1, &r, mode ? "a raw frame from the VM" : "a raw mesh frame");
		return 0;
	}
	if (size < 2)
		return 0;
	if (mode == 2) {
		size_t at = 2 + (data[1] & 2 ? sizeof(struct vm_handoff) : 0);
		struct vm_handoff ho;
		if (size < at + 14 + 20 || size - at > 1500)
			return 0;
		if (data[1] & 2)
			memcpy(&ho, data + 2, sizeof(ho));
		memcpy(inner, data + at, size - at);
		size_t n = mesh_wrap(inner, size - at, data[1] & 1, data[1] & 2 ? &ho : NULL, in);
		raw_touches(in, n);
		run_node(1, in, n, &r, "a client's frame wrapped in Geneve");
		return 0;
	}
	int v6 = data[1] & 1, i = (data[1] >> 1) & (FZ_SLOTS - 1), ov6 = !!(data[1] & 0x20);
	uint16_t sport = base + 2 * i + v6;
	struct conn *c = &C[v6][i];
	if (mode == 7) {
		struct vm_handoff ho;
		if (size < 2 + sizeof(ho) || size - 2 - sizeof(ho) > 1360)
			return 0;
		memcpy(&ho, data + 2, sizeof(ho));
		conn_open(v6, ov6, sport, c, &ho, size > 2 + sizeof(ho) ? data + 2 + sizeof(ho) : NULL,
			  size - 2 - sizeof(ho), data[1] & 0x40);
		return 0;
	}
	if (size < 6)
		return 0;
	if (!c->up)
		conn_open(v6, ov6, sport, c, NULL, NULL, 0, 1);
	int vm = !!(data[1] & 0x10);
	uint16_t d = (uint16_t)(data[4] << 8 | data[5]);
	uint32_t next = vm ? c->vm_next : c->next, seq = next;
	switch (data[3] & 3) {
	case 1: seq = vm ? c->vm_isn + 1 : c->isn + 1; break;
	case 2: seq = next + d; break;
	case 3: seq = next - d; break;
	}
	/* the ACK in the receiver's view as its sender has it: the client
	 * acknowledges the gateway's (cookie) space, the VM the client's */
	uint32_t ack = (vm ? c->next : c->cookie + 1 + (c->vm_next - c->vm_isn - 1)) + (data[3] & 4 ? d : 0);
	static uint8_t ts[12] = { 1, 1, 8, 10 };
	uint32_t w = htonl(vm ? 0x03100000u + (uint32_t)count : 0x11223355u + (uint32_t)count);
	memcpy(ts + 4, &w, 4);
	w = htonl(vm ? 0x11223355u : c->gw_ts + 1);
	memcpy(ts + 8, &w, 4);
	struct t_pkt p = client_pkt(v6, sport, seq, ack, data[2]);
	uint8_t o[20];
	if (vm) {
		p = vm_synack(v6, sport, seq, 0, 0, o);
		p.seq = seq;
		p.ack = ack;
		p.flags = data[2];
		p.window = 1000;
	}
	size_t at = 6;
	switch ((data[3] >> 4) & 3) {
	case 0: p.opts = ts; p.optlen = 12; break;
	case 1: p.opts = NULL; p.optlen = 0; break;
	default:
		if (size < 7 || (size_t)(data[6] & 0x3c) > size - 7 || (data[6] & 0x3c) > 40)
			return 0;
		p.optlen = data[6] & 0x3c;
		p.opts = data + 7;
		at = 7 + (size_t)p.optlen;
	}
	if (size - at > 1360)
		return 0;
	p.payload = data + at;
	p.plen = (int)(size - at);
	size_t n = t_build(&p, vm ? in : inner);
	size_t l3 = v6 ? 40 : 20;
	if (data[1] & 0x40)   /* a checksum spoilt on the way */
		(vm ? in : inner)[14 + l3 + 16] ^= 0x5a;
	if (!vm)
		n = mesh_wrap(inner, n, ov6, NULL, in);
	__u32 verdict = run_node(!vm, in, n, &r, vm ? "the VM's segment" : "the client's segment");
	if (vm ? verdict == TC_ACT_REDIRECT_ : verdict == XDP_REDIRECT_) {
		if (c->est && !(data[1] & 0x40))
			translated(vm, v6, c, in, n, &r);
		*(vm ? &c->vm_next : &c->next) = seq + (uint32_t)p.plen + !!(data[2] & (T_FIN | T_SYN));
		if (data[2] & T_RST)
			c->up = 0;   /* the next input on the slot opens a new one */
	}
	return 0;
}
