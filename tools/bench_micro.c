// SPDX-License-Identifier: Apache-2.0
/*
 * veil-bench-micro: ns/packet of each data-plane path through
 * BPF_PROG_TEST_RUN, next to a minimal program measured in the same run.
 *
 * Stateless and established paths run in live-frames mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES): every repetition gets a fresh copy of the
 * input and its verdict is carried out (XDP_TX/REDIRECT on a veth of our own
 * namespace), as for the baseline XDP_TX program.  Paths that change state
 * (the first ClientHello, the node's TC program) run once per distinct input
 * and are compared with a baseline run the same way.
 *
 *   veil-bench-micro [--repeat N] [--rounds R] [--json FILE] [--fixtures DIR]
 */
#include <getopt.h>
#include <time.h>
#include "../tests/bpf_env.h"

static __u32 repeat = 1000000, rounds = 5, singles = 100000;

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct result {
	const char *name, *mode;
	double ns, base_ns, spread;
};

/* Live frames, repeat times, rounds rounds: median ns/packet and spread (max-min). */
static int live(int fd, const uint8_t *pkt, size_t n, double *med, double *spread)
{
	double v[32];
	for (__u32 r = 0; r < rounds; r++) {
		struct xdp_md ctx = { .data_end = n, .ingress_ifindex = ifidx };
		/* live mode reports no duration: time the call (1e6 packets per
		 * call makes the syscall's own cost negligible) */
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		LIBBPF_OPTS(bpf_test_run_opts, o2, .data_in = pkt, .data_size_in = n, .ctx_in = &ctx,
			    .ctx_size_in = sizeof(ctx), .repeat = repeat, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
		if (bpf_prog_test_run_opts(fd, &o2))
			return -errno;
		clock_gettime(CLOCK_MONOTONIC, &b);
		v[r] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / repeat;
	}
	qsort(v, rounds, sizeof(double), cmp_d);
	*med = v[rounds / 2];
	*spread = v[rounds - 1] - v[0];
	return 0;
}

/* Runs whose input the program does not change (PASS/DROP): plain
 * repeat, timed by the kernel. */
static int repeated(int fd, const uint8_t *pkt, size_t n, double *med, double *spread)
{
	double v[32];
	static uint8_t out[4096];
	for (__u32 r = 0; r < rounds; r++) {
		struct xdp_md ctx = { .data_end = n, .ingress_ifindex = ifidx };
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = n, .data_out = out,
			    .data_size_out = sizeof(out), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = repeat);
		if (bpf_prog_test_run_opts(fd, &o))
			return -errno;
		v[r] = o.duration;
	}
	qsort(v, rounds, sizeof(double), cmp_d);
	*med = v[rounds / 2];
	*spread = v[rounds - 1] - v[0];
	return 0;
}

/* Optional untimed step before each timed single run (e.g. the first
 * segment of a hello, so the timed one completes it). */
static void (*pre_single)(__u32 i);

/* One run per input, inputs from make(i); kernel-measured duration. */
static int singly(int fd, int tc, size_t (*make)(__u32 i, uint8_t *out), double *med, double *spread)
{
	double v[32];
	static uint8_t pkt[2048], out[4096];
	for (__u32 r = 0; r < rounds; r++) {
		double total = 0;
		for (__u32 i = 0; i < singles; i++) {
			if (pre_single)
				pre_single(r * singles + i);
			size_t n = make(r * singles + i, pkt);
			struct xdp_md xctx = { .data_end = n, .ingress_ifindex = ifidx };
			struct __sk_buff sctx = { .ifindex = 1 };
			LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = n, .data_out = out,
				    .data_size_out = sizeof(out), .repeat = 1);
			if (tc) {
				o.ctx_in = &sctx;
				o.ctx_size_in = sizeof(sctx);
			} else {
				o.ctx_in = &xctx;
				o.ctx_size_in = sizeof(xctx);
			}
			if (bpf_prog_test_run_opts(fd, &o))
				return -errno;
			total += o.duration;
		}
		v[r] = total / singles;
	}
	qsort(v, rounds, sizeof(double), cmp_d);
	*med = v[rounds / 2];
	*spread = v[rounds - 1] - v[0];
	return 0;
}

/* ---------- inputs ---------- */

static uint8_t syn[256], ack[256], hello_again[1024], est[256], ret[512], to_vm[1200], vm_out[512];
static size_t syn_n, ack_n, hello_again_n, est_n, ret_n, to_vm_n, vm_out_n;

/* Sets byte b of an IPv4 frame's source address (flows kept apart) and
 * makes the IP and TCP checksums right again. */
static void set_src_byte(uint8_t *out, size_t n, int b, uint8_t v)
{
	uint16_t c;

	out[14 + 12 + b] = v;
	out[24] = out[25] = 0;
	c = t_fold(t_sum(out + 14, 20, 0));
	out[24] = c >> 8;
	out[25] = c;
	out[34 + 16] = out[34 + 17] = 0;
	c = t_l4_verify(0, out + 14, out + 34, n - 34, 6);
	out[34 + 16] = c >> 8;
	out[34 + 17] = c;
}

static size_t make_hello(__u32 i, uint8_t *out)
{
	uint16_t port = 1024 + (i % 60000);
	uint32_t isn = 0x1000 + i * 7919, gw_ts = 1;
	struct vm_cookie_in cin = { .sport = htons(port), .dport = htons(443), .client_isn = isn };
	struct vm_cookie_opts co = { .mss = 1460, .wscale = 7, .sack_ok = 1, .ts_ok = 1 };
	vm_addr_parse("198.18.0.2", cin.saddr);
	vm_addr_parse("198.18.100.1", cin.daddr);
	/* vary the client address too, so 60000 ports do not repeat a flow */
	cin.saddr[14] = (i / 60000) & 0xff;
	uint32_t cookie = vm_cookie_make(KEY, &cin, vm_tai_seconds() / 64, &co);
	size_t n = hello_pkt(0, port, isn, cookie, gw_ts, hello_curl, hello_curl_len, out);
	set_src_byte(out, n, 2, cin.saddr[14]);
	return n;
}

/* A 1.8 KB browser-shaped hello, its name in the second segment, for flow i. */
static struct hb big;
static size_t big_n;
static size_t make_big_seg(__u32 i, uint8_t *out, int second)
{
	uint16_t port = 1024 + (i % 60000);
	uint32_t isn = 0x5000 + i * 104729, gw_ts = 1;
	struct vm_cookie_in cin = { .sport = htons(port), .dport = htons(443), .client_isn = isn };
	struct vm_cookie_opts co = { .mss = 1460, .wscale = 7, .sack_ok = 1, .ts_ok = 1 };
	vm_addr_parse("198.18.0.2", cin.saddr);
	vm_addr_parse("198.18.100.1", cin.daddr);
	cin.saddr[13] = 19 + (i / 60000) % 200;  /* 198.<19+k>.0.2: keeps flows apart across rounds */
	uint32_t cookie = vm_cookie_make(KEY, &cin, vm_tai_seconds() / 64, &co);
	size_t n = second ? hello_pkt(0, port, isn + 1360, cookie, gw_ts, big.b + 1360, big_n - 1360, out)
			  : hello_pkt(0, port, isn, cookie, gw_ts, big.b, 1360, out);
	set_src_byte(out, n, 1, cin.saddr[13]);
	return n;
}

static size_t make_seg2(__u32 i, uint8_t *out)
{
	return make_big_seg(i, out, 1);
}

static void store_seg1(__u32 i)
{
	static uint8_t pkt[2048];
	struct run r;
	size_t n = make_big_seg(i, pkt, 0);
	tc_run_on(GW_ASM, pkt, n, &r, ifidx);
}

static size_t make_baseline(__u32 i, uint8_t *out)
{
	return make_hello(i, out);
}

static const uint32_t vm_isn = 0x30000000, conn_isn = 0x10000000, conn_cookie = 0xA0000000;

static size_t make_vm_out(__u32 i, uint8_t *out)
{
	memcpy(out, vm_out, vm_out_n);
	return vm_out_n;
}

static int prepare(void)
{
	struct run r;
	uint32_t gw_ts, cookie;

	/* SYN */
	struct t_pkt p = client_pkt(0, 50000, 1000, 0, T_SYN);
	p.opts = SYN_OPTS;
	p.optlen = 20;
	syn_n = t_build(&p, syn);
	/* pure ACK with a valid cookie */
	cookie = handshake(0, 50001, 2000, &gw_ts);
	p = client_pkt(0, 50001, 2001, cookie + 1, T_ACK);
	ack_n = t_build(&p, ack);
	/* a flow, its hello again, and an established segment */
	cookie = handshake(0, 50002, 3000, &gw_ts);
	hello_again_n = hello_pkt(0, 50002, 3000, cookie, gw_ts, hello_curl, hello_curl_len, hello_again);
	xdp_run(GW_ING, hello_again, hello_again_n, &r);
	if (r.verdict != XDP_TX_ && r.verdict != XDP_REDIRECT_)
		return -1;
	static uint8_t data[1000];
	p = client_pkt(0, 50002, 3001 + hello_curl_len, cookie + 1, T_ACK | T_PSH);
	p.payload = data;
	p.plen = sizeof(data);
	est_n = t_build(&p, est);
	/* return path: Geneve from the node for that flow */
	struct t_pkt v = { .sport = 443, .dport = 50002, .seq = 1, .ack = 2, .flags = T_ACK, .window = 100 };
	uint8_t inner[256];
	memcpy(v.src, VIP4, 4);
	memcpy(v.dst, CLI4, 4);
	size_t il = t_build(&v, inner);
	ret_n = mesh_wrap(inner, il, 0, NULL, ret);
	memcpy(ret, GW_MAC, 6);
	ret[14 + 15] = 11; ret[14 + 19] = 1;  /* from the node to the gateway */
	ret[14 + 10] = ret[14 + 11] = 0;
	uint16_t c = t_fold(t_sum(ret + 14, 20, 0));
	ret[14 + 10] = c >> 8; ret[14 + 11] = c;
	/* node: a connection, then client data for it and VM data from it */
	struct vm_handoff ho = { .vm_id_be = htonl(1), .client_isn_be = htonl(conn_isn),
				 .cookie_isn_be = htonl(conn_cookie), .gw_tsval_be = htonl(5000),
				 .mss_be = htons(1440), .client_wscale = 10, .gw_wscale = 7,
				 .flags = VM_HO_SACK_OK | VM_HO_TS_OK };
	uint8_t frame[1024], mesh[1200];
	size_t fl = hello_pkt(0, 51000, conn_isn, conn_cookie, 5000, hello_curl, hello_curl_len, frame);
	size_t n = mesh_wrap(frame, fl, 0, &ho, mesh);
	xdp_run(NODE_MESH, mesh, n, &r);
	static uint8_t sa_opts[20] = { 2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 3, 9, 0, 0, 0x13, 0x88, 1, 3, 3, 9 };
	struct t_pkt sa = { .sport = 443, .dport = 51000, .seq = vm_isn, .ack = conn_isn + 1,
			    .flags = T_SYN | T_ACK, .window = 65160, .opts = sa_opts, .optlen = 20 };
	memcpy(sa.smac, VM_MAC, 6);
	memcpy(sa.dmac, HOST_MAC, 6);
	memcpy(sa.src, VM4, 4);
	memcpy(sa.dst, CLI4, 4);
	n = t_build(&sa, frame);
	tc_run(NODE_VM, frame, n, &r);
	if (r.verdict != 2)   /* the SYN-ACK ends there; the hello went out as a clone */
		return -2;
	static uint8_t ts[12] = { 1, 1, 8, 10, 0, 0, 3, 10, 0, 0, 0x13, 0x88 };
	struct t_pkt d = sa;
	d.seq = vm_isn + 1;
	d.ack = conn_isn + 1 + hello_curl_len;
	d.flags = T_ACK | T_PSH;
	d.opts = ts;
	d.optlen = 12;
	d.payload = data;
	d.plen = sizeof(data);
	vm_out_n = t_build(&d, vm_out);
	struct t_pkt cd = client_pkt(0, 51000, conn_isn + 1 + hello_curl_len, conn_cookie + 1 + 1000, T_ACK);
	cd.opts = ts;
	cd.optlen = 12;
	fl = t_build(&cd, frame);
	to_vm_n = mesh_wrap(frame, fl, 0, NULL, to_vm);
	/* the VM's interface is our veth here, so redirects are carried out */
	__u32 id = 1;
	struct vm_val vm;
	bpf_map_lookup_elem(vm_node_map_fd(&N, "vms"), &id, &vm);
	vm.ifindex = ifidx;
	bpf_map_update_elem(vm_node_map_fd(&N, "vms"), &id, &vm, BPF_ANY);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repeat", required_argument, NULL, 'r' }, { "rounds", required_argument, NULL, 'R' },
		{ "singles", required_argument, NULL, 's' }, { "json", required_argument, NULL, 'j' },
		{ "fixtures", required_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' }, { 0 }
	};
	const char *json = NULL, *fixdir = "tests/fixtures";
	int o;

	while ((o = getopt_long(argc, argv, "r:R:s:j:f:h", opts, NULL)) != -1) {
		switch (o) {
		case 'r': repeat = strtoul(optarg, NULL, 10); break;
		case 'R': rounds = strtoul(optarg, NULL, 10); break;
		case 's': singles = strtoul(optarg, NULL, 10); break;
		case 'j': json = optarg; break;
		case 'f': fixdir = optarg; break;
		case 'h':
			printf("usage: veil-bench-micro [--repeat N] [--rounds R] [--singles N] [--json FILE] [--fixtures DIR]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (rounds < 1 || rounds > 31 || repeat < 1 || singles < 1) {
		fprintf(stderr, "veil-bench-micro: rounds 1..31, repeat and singles >= 1\n");
		return 2;
	}
	vm_lib_logging(false);
	if (setup(fixdir) || prepare()) {
		fprintf(stderr, "veil-bench-micro: setup failed\n");
		return 1;
	}
	struct bpf_object *base = bpf_object__open_file(BASE_OBJ, NULL);
	if (!base || bpf_object__load(base)) {
		fprintf(stderr, "veil-bench-micro: cannot load %s\n", BASE_OBJ);
		return 1;
	}
	int base_xdp = bpf_program__fd(bpf_object__find_program_by_name(base, "base_xdp_tx"));
	int base_tc = bpf_program__fd(bpf_object__find_program_by_name(base, "base_tc"));

	struct result res[24];
	int nres = 0, err = 0;
	double b, bs, m, s;

	err |= live(base_xdp, syn, syn_n, &b, &bs);
#define LIVE(nm, fd, pkt, n) do {                                                         \
		err |= live(fd, pkt, n, &m, &s);                                           \
		res[nres++] = (struct result){ nm, "live", m, b, s };                      \
	} while (0)
	LIVE("syn", GW_ING, syn, syn_n);
	LIVE("cookie_ack", GW_ING, ack, ack_n);
	LIVE("hello_retransmit", GW_ING, hello_again, hello_again_n);
	LIVE("established_to_node", GW_ING, est, est_n);
	LIVE("return_to_client", GW_RET, ret, ret_n);
	LIVE("node_client_to_vm", NODE_MESH, to_vm, to_vm_n);

	double bx, bxs;
	err |= singly(base_xdp, 0, make_baseline, &bx, &bxs);
	err |= singly(GW_ING, 0, make_hello, &m, &s);
	res[nres++] = (struct result){ "hello_first", "single", m, bx, s };

	/* the 1.8 KB hello: its first segment in XDP (parse, PASS to gw_asm) ... */
	static uint8_t seg1[2048];
	big_n = hb_browser(&big, "www.veil.test", 1800);
	size_t seg1_n = make_big_seg(0, seg1, 0);
	double rb, rbs;
	err |= repeated(base_xdp, seg1, seg1_n, &rb, &rbs);
	err |= repeated(GW_ING, seg1, seg1_n, &m, &s);
	res[nres++] = (struct result){ "hello_1800_seg1_xdp", "repeat", m, rb, s };
	err |= repeated(GW_ING, ack, ack_n, &m, &s);
	res[nres++] = (struct result){ "cookie_ack_repeat", "repeat", m, rb, s };
	/* ... and the second in gw_asm (TC): store, reassemble, parse, route,
	 * two segments out; the first stored beforehand, untimed */
	double tb, tbs;
	err |= singly(base_tc, 1, make_seg2, &tb, &tbs);
	pre_single = store_seg1;
	err |= singly(GW_ASM, 1, make_seg2, &m, &s);
	pre_single = NULL;
	res[nres++] = (struct result){ "hello_1800_seg2_tc", "single", m, tb, s };
	double bt, bts;
	err |= singly(base_tc, 1, make_vm_out, &bt, &bts);
	err |= singly(NODE_VM, 1, make_vm_out, &m, &s);
	res[nres++] = (struct result){ "node_vm_to_client", "single", m, bt, s };
	if (err) {
		fprintf(stderr, "veil-bench-micro: a run failed\n");
		return 1;
	}

	printf("%-22s %-7s %10s %12s %8s %10s\n", "case", "mode", "ns/pkt", "baseline ns", "ratio", "spread ns");
	for (int i = 0; i < nres; i++)
		printf("%-22s %-7s %10.1f %12.1f %8.2f %10.1f\n", res[i].name, res[i].mode, res[i].ns,
		       res[i].base_ns, res[i].ns / res[i].base_ns, res[i].spread);
	printf("(live: %u repeats x %u rounds with fresh frames, median; repeat: the same frame %u times, kernel-timed;\n"
	       " single: %u distinct inputs x %u rounds, kernel-timed; baselines measured the same way in the same run)\n",
	       repeat, rounds, repeat, singles, rounds);
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f) {
			perror(json);
			return 1;
		}
		fprintf(f, "[\n");
		for (int i = 0; i < nres; i++)
			fprintf(f, "  {\"case\": \"%s\", \"mode\": \"%s\", \"ns_per_pkt\": %.2f, \"baseline_ns_per_pkt\": %.2f, \"ratio\": %.3f, \"spread_ns\": %.2f}%s\n",
				res[i].name, res[i].mode, res[i].ns, res[i].base_ns, res[i].ns / res[i].base_ns,
				res[i].spread, i + 1 < nres ? "," : "");
		fprintf(f, "]\n");
		fclose(f);
	}
	bpf_object__close(base);
	return 0;
}
