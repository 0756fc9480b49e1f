// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer, differential: each input is the first data segment of a
 * connection with a valid cookie, run through the gateway's XDP program
 * (BPF_PROG_TEST_RUN) and through the parser's userspace build.  The outcome
 * the program counts must be the one userspace predicts, and when userspace
 * finds a name, the program must route exactly that name (a route is added
 * for it, and only for it).  Any difference aborts.
 */
#include "../bpf_env.h"

static int ready;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *fx = getenv("VEIL_FIXTURES");
	vm_lib_logging(false);
	if (setup(fx ? fx : "tests/fixtures")) {
		fprintf(stderr, "fuzz_diff: cannot set up the test namespace or load the programs\n");
		abort();
	}
	/* libFuzzer may end the process without running atexit handlers: the
	 * programs hold their maps by fd, so the pins can go now */
	cleanup();
	ready = 1;
	return 0;
}

#define D(f) (a.f - b.f)

/* Says what differed, then aborts (libFuzzer keeps the input). */
static void differ(int want, const struct run *r, const struct gw_stats *b, const struct gw_stats *a,
		   const struct vm_hello *h)
{
	fprintf(stderr, "fuzz_diff: userspace says %s (name '%s'), XDP verdict %u, counters moved:",
		want >= 0 && want < VM_HELLO__COUNT ? vm_hello_status_name[want] : "?", h->name, r->verdict);
	const __u64 *x = (const __u64 *)b, *y = (const __u64 *)a;
	for (int i = 0; i < vm_gw_stat_count; i++)
		if (y[i] != x[i])
			fprintf(stderr, " %s+%llu", vm_gw_stat_names[i], (unsigned long long)(y[i] - x[i]));
	fputc('\n', stderr);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[VM_HELLO_BUF], pkt[2048];
	static uint32_t isn = 1000;
	struct vm_hello h;
	struct vm_hello_state st;
	struct run r;
	struct route_val rv = { .vm_id = 1 };

	/* at most the MSS the gateway announces: bigger segments do not fit the
	 * mesh once encapsulated (counted mesh_mtu, not a parser matter) */
	if (!ready || size < 1 || size > 1360)
		return 0;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, data, size);
	memset(&h, 0, sizeof(h));
	int want = vm_hello_parse(buf, size, &h, &st);
	if (want == VM_HELLO_OK) {
		rv.node_family = vm_addr_parse("198.19.0.11", rv.node);
		vm_gw_route_put(&G, h.name, &rv);
	}
	uint16_t port = 1024 + (isn % 60000);
	uint32_t gw_ts, cookie = handshake(0, port, isn, &gw_ts);
	size_t n = hello_pkt(0, port, isn, cookie, gw_ts, data, size, pkt);
	struct gw_stats b = gw_now();
	xdp_run(GW_ING, pkt, n, &r);
	struct gw_stats a = gw_now();
	isn += 7919;
	if (r.rc)
		abort();
	switch (want) {
	case VM_HELLO_OK:
		if (D(hello_routed) != 1 || (r.verdict != XDP_TX_ && r.verdict != XDP_REDIRECT_))
			differ(want, &r, &b, &a, &h);
		vm_gw_route_del(vm_gw_map_fd(&G, "routes"), h.name);
		break;
	case VM_HELLO_PARTIAL:
		if (D(hello_partial) != 1 || r.verdict != XDP_PASS_)
			differ(want, &r, &b, &a, &h);
		break;
	case VM_HELLO_NO_SNI:
		if (D(no_sni) != 1 || r.verdict != XDP_TX_)
			differ(want, &r, &b, &a, &h);
		break;
	case VM_HELLO_BAD_NAME:
		/* refused only once whole: a hello that continues past this
		 * segment goes to reassembly first (gw_hello_cut) */
		if (h.hello_len && 5 + h.hello_len > size) {
			if (D(hello_partial) != 1 || r.verdict != XDP_PASS_)
				differ(want, &r, &b, &a, &h);
		} else if (D(bad_name) != 1 || r.verdict != XDP_TX_) {
			differ(want, &r, &b, &a, &h);
		}
		break;
	default:
		if (D(parse_error) != 1 || r.verdict != XDP_TX_)
			differ(want, &r, &b, &a, &h);
	}
	/* the flow of a routed hello goes: remove it so ports can repeat */
	struct flow_key k;
	t_flow_key("198.18.0.2", "198.18.100.1", port, 443, &k);
	ft_del(&k);
	return 0;
}
