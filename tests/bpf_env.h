/* SPDX-License-Identifier: Apache-2.0 */
/* The BPF test environment, shared by tests/test_bpf.c and the micro
 * benchmark: a network namespace of the process's own (unshare) with a veth
 * and static neighbours, both data planes loaded with test maps, and packet
 * helpers for the client, gateway, node and VM sides. */
#ifndef VEIL_BPF_ENV_H
#define VEIL_BPF_ENV_H

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <sys/socket.h>

#include "testlib.h"
#include "veil.h"
#include "veil/cookie.h"
#include "veil/hello.h"
#include "veil/flowkey.h"
#include "gw_ingress.skel.h"
#include "gw_return.skel.h"
#include "gw_asm.skel.h"
#include "node_mesh.skel.h"
#include "node_vm.skel.h"

#define XDP_ABORTED_ 0
#define XDP_DROP_ 1
#define XDP_PASS_ 2
#define XDP_TX_ 3
#define XDP_REDIRECT_ 4
#define TC_ACT_REDIRECT_ 7
#define TC_ACT_OK_ 0
#define TC_ACT_SHOT_ 2

static struct vm_gw G;
static struct vm_node N;
static int ifidx;                    /* the dummy device: underlay and client side */
static char pin[128];
/* The test gateway's cookie window (gw_config.cookie_window_s), seconds. */
#define T_COOKIE_WINDOW_S 64
static const struct vm_cookie_key KEY_ = {
	.sip = { 0x0123456789abcdefULL, 0xfedcba9876543210ULL },
	.sip6 = { 0x1032547698badcfeULL, 0xefcdab8967452301ULL },
	.nh6 = { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0x082efa98, 0xec4e6c89 },
};
#define KEY (&KEY_)

static const uint8_t CLI_MAC[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t GW_MAC[6] = { 0x02, 0, 0, 0, 0, 0x02 };
static const uint8_t NODE_MAC[6] = { 0x02, 0, 0, 0, 0, 0x11 };
static const uint8_t VM_MAC[6] = { 0x02, 0, 0, 0, 0x11, 0x02 };
static const uint8_t HOST_MAC[6] = { 0x02, 0, 0, 0, 0x11, 0x01 };
#define VM_IFINDEX 77

static __attribute__((unused)) uint8_t CLI4[4] = { 198, 18, 0, 2 }, VIP4[4] = { 198, 18, 100, 1 }, VM4[4] = { 198, 18, 11, 2 };
static uint8_t CLI6[16], VIP6[16], VM6[16];

/* the gateway's flows map's size (vm_gw_open): the tests' 4096, veil-bench-micro's --flows */
static __u32 setup_flows_max = 4096;
static uint8_t hello_curl[600];
static size_t hello_curl_len;

/* ---------- setup ---------- */

static inline int sh(const char *cmd)
{
	int rc = system(cmd);
	if (rc)
		fprintf(stderr, "setup: '%s' failed\n", cmd);
	return rc;
}

static inline void cleanup(void)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pin);
	if (pin[0])
		(void)!system(cmd);
}

static inline int setup(const char *fixdir)
{
	char p1[160], p2[160];
	struct gw_config gc = { .mss4 = 1360, .mss6 = 1340, .wscale = 7, .cookie_window_s = T_COOKIE_WINDOW_S };
	struct node_config nc = { .mss4 = 1360, .mss6 = 1340 };
	struct cookie_secret sec = { .epoch = 1 };
	__u32 zero = 0;

	if (unshare(CLONE_NEWNET)) {
		perror("unshare");
		return -1;
	}
	if (sh("ip link set lo up") || sh("ip link add t0 type veth peer name t1") || sh("ip link set t0 up") || sh("ip link set t1 up") ||
	    sh("ip addr add 198.19.0.1/24 dev t0") || sh("ip addr add 2001:db8:ff::1/64 dev t0 nodad") ||
	    sh("ip neigh add 198.19.0.11 lladdr 02:00:00:00:00:11 dev t0 nud permanent") ||
	    sh("ip neigh add 2001:db8:ff::11 lladdr 02:00:00:00:00:11 dev t0 nud permanent") ||
	    sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"))
		return -1;
	ifidx = if_nametoindex("t0");
	inet_pton(AF_INET6, "2001:db8::2", CLI6);
	inet_pton(AF_INET6, "2001:db8:100::1", VIP6);
	inet_pton(AF_INET6, "2001:db8:11::2", VM6);

	snprintf(pin, sizeof(pin), "/sys/fs/bpf/veilmesh-test-%d", getpid());
	atexit(cleanup);
	snprintf(p1, sizeof(p1), "%s/gw", pin);
	snprintf(p2, sizeof(p2), "%s/node", pin);
	if (vm_gw_open(&G, p1, setup_flows_max, 0) || vm_gw_load(&G) || vm_node_open(&N, p2, 4096) || vm_node_load(&N)) {
		fprintf(stderr, "setup: loading the programs failed\n");
		return -1;
	}
	sec.cur = KEY_;
	vm_addr_parse("198.19.0.1", gc.underlay4);
	vm_addr_parse("2001:db8:ff::1", gc.underlay6);
	gc.has_underlay4 = gc.has_underlay6 = 1;
	vm_addr_parse("198.19.0.11", nc.underlay4);
	vm_addr_parse("2001:db8:ff::11", nc.underlay6);
	nc.has_underlay4 = nc.has_underlay6 = 1;
	bpf_map_update_elem(vm_gw_map_fd(&G, "gw_config"), &zero, &gc, BPF_ANY);
	bpf_map_update_elem(vm_gw_map_fd(&G, "cookie_secret"), &zero, &sec, BPF_ANY);
	bpf_map_update_elem(vm_node_map_fd(&N, "node_config"), &zero, &nc, BPF_ANY);

	struct vip_key vk = { .port_be = htons(443) };
	struct vip_val vv = { .refuse = VM_REFUSE_ALERT };
	vk.family = vm_addr_parse("198.18.100.1", vk.addr);
	bpf_map_update_elem(vm_gw_map_fd(&G, "vips"), &vk, &vv, BPF_ANY);
	vk.family = vm_addr_parse("2001:db8:100::1", vk.addr);
	vv.refuse = VM_REFUSE_RST;
	bpf_map_update_elem(vm_gw_map_fd(&G, "vips"), &vk, &vv, BPF_ANY);
	vm_gw_vips_moved(&G, true);   /* as veil-gw does after writing vips */

	struct route_val rv = { .vm_id = 1 };
	rv.node_family = vm_addr_parse("198.19.0.11", rv.node);
	vm_gw_route_put(&G, "www.veil.test", &rv);
	rv.node_family = vm_addr_parse("2001:db8:ff::11", rv.node);
	vm_gw_route_put(&G, "*.apps.veil.test", &rv);

	struct vm_val vm = { .ifindex = VM_IFINDEX, .has4 = 1, .has6 = 1 };
	__u32 id = 1;
	memcpy(vm.vm_mac, VM_MAC, 6);
	memcpy(vm.host_mac, HOST_MAC, 6);
	vm_addr_parse("198.18.11.2", vm.addr4);
	vm_addr_parse("2001:db8:11::2", vm.addr6);
	bpf_map_update_elem(vm_node_map_fd(&N, "vms"), &id, &vm, BPF_ANY);
	vm_node_vms_changed(&N, 1);

	char fp[256];
	snprintf(fp, sizeof(fp), "%s/hello-curl.bin", fixdir);
	uint8_t *h = t_slurp(fp, &hello_curl_len);
	if (!h || hello_curl_len > sizeof(hello_curl))
		return -1;
	memcpy(hello_curl, h, hello_curl_len);
	free(h);
	return 0;
}

/* ---------- running ---------- */

struct run {
	int rc;
	__u32 verdict;
	uint8_t out[4096];
	__u32 len;
};

/* The flows map's key of a connection (addresses as text), under the
 * loaded programs' flow_seed. */
static inline __attribute__((unused)) void t_flow_key(const char *client, const char *vip, uint16_t cport,
						       uint16_t vport, struct flow_key *k)
{
	struct flow_seed s = { .k = { 0, 0 } };
	__u8 c[16], v[16];
	__u32 zero = 0;
	int fam = vm_addr_parse(client, c);

	vm_addr_parse(vip, v);
	bpf_map_lookup_elem(vm_gw_map_fd(&G, "flow_seed"), &zero, &s);
	vm_flow_key_make(fam, c, v, htons(cport), htons(vport), &s, k);
}

/* 2001:db8:c011::i: addresses to look for fold collisions among. */
static inline void t_coll_addr(uint32_t i, uint8_t *a)
{
	inet_pton(AF_INET6, "2001:db8:c011::", a);
	a[12] = i >> 24; a[13] = i >> 16; a[14] = i >> 8; a[15] = i;
}

struct t_fold_ent { uint32_t fold, i; };
static inline int t_fold_cmp(const void *a, const void *b)
{
	const struct t_fold_ent *x = a, *y = b;
	return x->fold < y->fold ? -1 : x->fold > y->fold ? 1 : (int)x->i - (int)y->i;
}

/* Two addresses of 2001:db8:c011::/64 whose folds under s collide, made
 * from the seed as only its holder can: NH's second product with its two
 * factors swapped, (w2 + K2)(w3 + K3) = (w3' + K3)(w2' + K2), the first
 * words kept, so the NH values (and so the folds) meet whatever the
 * multiplier (include/veil/flowkey.h); 1 when made. */
static inline __attribute__((unused)) int t_find_collision(const struct flow_seed *s, uint8_t *a, uint8_t *b)
{
	uint32_t k2 = (uint32_t)s->k[1], k3 = (uint32_t)(s->k[1] >> 32);

	for (uint32_t i = 1; i < 64; i++) {
		uint32_t w[4], u, v;
		t_coll_addr(i * 0x9e3779b9u, a);
		memcpy(w, a, 16);
		u = w[2] + k2;
		v = w[3] + k3;
		w[2] = v - k2;
		w[3] = u - k3;
		memcpy(b, w, 16);
		if (memcmp(a, b, 16) && vm_addr_fold(s, a) == vm_addr_fold(s, b))
			return 1;
	}
	return 0;
}

static inline void xdp_run(int prog_fd, const uint8_t *in, size_t n, struct run *r)
{
	struct xdp_md ctx = { .data_end = n, .ingress_ifindex = ifidx };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = n, .data_out = r->out,
		    .data_size_out = sizeof(r->out), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
	r->rc = bpf_prog_test_run_opts(prog_fd, &o);
	r->verdict = o.retval;
	r->len = o.data_size_out;
}

/* A TC run as if the packet came in on the veth t0 (clones and redirects
 * go out of t0 and can be read on t1 with cap_read). */
static inline void tc_run_on(int prog_fd, const uint8_t *in, size_t n, struct run *r, int ifindex)
{
	struct __sk_buff ctx = { .ifindex = ifindex, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = n, .data_out = r->out,
		    .data_size_out = sizeof(r->out), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
	r->rc = bpf_prog_test_run_opts(prog_fd, &o);
	r->verdict = o.retval;
	r->len = o.data_size_out;
}

/* Frames sent out of t0 arrive on t1: a packet socket there reads them. */
static inline int cap_open(void)
{
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)if_nametoindex("t1") };
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether a frame read on t1 can be the programs': TCP or UDP straight over
 * IPv4 or IPv6.  The kernel's own frames on the pair (MLD reports, which
 * ride a hop-by-hop header, neighbour discovery, ARP) come at times of its
 * choosing, and once read one in a test's place. */
static inline int cap_is_ours(const uint8_t *f, size_t len)
{
	if (len >= 14 + 20 && f[12] == 0x08 && f[13] == 0x00)
		return f[14 + 9] == 6 || f[14 + 9] == 17;
	if (len >= 14 + 40 && f[12] == 0x86 && f[13] == 0xdd)
		return f[14 + 6] == 6 || f[14 + 6] == 17;
	return 0;
}

/* Reads the next frame that arrived on t1 and can be the programs' (waiting
 * up to 200 ms); returns its length or 0. */
static inline size_t cap_read(int fd, uint8_t *buf, size_t n)
{
	for (int waits = 0, skipped = 0; waits < 200 && skipped < 1000;) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t got = recvfrom(fd, buf, n, 0, (struct sockaddr *)&from, &fl);
		if (got <= 0) {
			usleep(1000);
			waits++;
		} else if (from.sll_pkttype != PACKET_OUTGOING && cap_is_ours(buf, (size_t)got)) {
			return (size_t)got;
		} else {
			skipped++;
		}
	}
	return 0;
}

static inline void tc_run(int prog_fd, const uint8_t *in, size_t n, struct run *r)
{
	struct __sk_buff ctx = { .ifindex = 1 };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = n, .data_out = r->out,
		    .data_size_out = sizeof(r->out), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
	r->rc = bpf_prog_test_run_opts(prog_fd, &o);
	r->verdict = o.retval;
	r->len = o.data_size_out;
}

#define GW_ING bpf_program__fd(G.ing->progs.gw_ingress)
#define GW_RET bpf_program__fd(G.ret->progs.gw_return)
#define GW_ASM bpf_program__fd(G.as->progs.gw_asm)
#define NODE_MESH bpf_program__fd(N.mesh->progs.node_mesh)
#define NODE_VM bpf_program__fd(N.vm->progs.node_vm)

/* The gateway's flow table (flowtab.c) under the seed flow_seed holds
 * now (a test may have loaded the programs again since). */
static inline struct vm_flows *gw_ft(void)
{
	struct vm_flows *t = vm_gw_flows(&G);

	if (t)
		vm_flows_seed(t, vm_gw_map_fd(&G, "flow_seed"));
	return t;
}

static inline int ft_get(const struct flow_key *k, struct flow_val *v)
{
	struct vm_flows *t = gw_ft();
	return t ? vm_flows_get(t, k, v) : -EBADF;
}

static inline int ft_put(const struct flow_key *k, const struct flow_val *v)
{
	struct vm_flows *t = gw_ft();
	return t ? vm_flows_put(t, k, v, 1) : -EBADF;
}

static inline int ft_del(const struct flow_key *k)
{
	struct vm_flows *t = gw_ft();
	return t ? vm_flows_del(t, k) : -EBADF;
}

/* Node n's conns (a flow table) under the seed conn_seed holds now, and
 * the bpf_map_*_elem calls' shape over it: 0, or -1 (BPF_EXIST: only over
 * an entry there; BPF_NOEXIST: never over one). */
static inline struct vm_flows *node_ct(struct vm_node *n)
{
	struct vm_flows *t = vm_node_conns(n);

	if (t)
		vm_flows_seed(t, vm_node_map_fd(n, "conn_seed"));
	return t;
}

static inline int ct_lookup(struct vm_node *n, const struct flow_key *k, struct conn_val *v)
{
	struct vm_flows *t = node_ct(n);
	return t && !vm_flows_get(t, k, v) ? 0 : -1;
}

static inline int ct_update(struct vm_node *n, const struct flow_key *k, const struct conn_val *v, int flags)
{
	struct vm_flows *t = node_ct(n);

	if (!t || (flags == BPF_EXIST && vm_flows_get(t, k, NULL)))
		return -1;
	return vm_flows_put(t, k, v, flags != BPF_NOEXIST) ? -1 : 0;
}

static inline int ct_delete(struct vm_node *n, const struct flow_key *k)
{
	struct vm_flows *t = node_ct(n);
	return t && !vm_flows_del(t, k) ? 0 : -1;
}

static inline struct gw_stats gw_now(void)
{
	struct gw_stats s;
	vm_gw_stats_read(vm_gw_map_fd(&G, "gw_stats"), &s);
	return s;
}

static inline struct node_stats node_now(void)
{
	struct node_stats s;
	vm_node_stats_read(vm_node_map_fd(&N, "node_stats"), &s);
	return s;
}

/* A client packet to the VIP. */
static inline struct t_pkt client_pkt(int v6, uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags)
{
	struct t_pkt p = { .v6 = v6, .sport = sport, .dport = 443, .seq = seq, .ack = ack,
			   .flags = flags, .window = 502 };
	memcpy(p.smac, CLI_MAC, 6);
	memcpy(p.dmac, GW_MAC, 6);
	memcpy(p.src, v6 ? CLI6 : CLI4, v6 ? 16 : 4);
	memcpy(p.dst, v6 ? VIP6 : VIP4, v6 ? 16 : 4);
	return p;
}

static const uint8_t SYN_OPTS[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 1, 3, 3, 10 };

/* Parses TCP options of the packet at l4 (doff from the header). */
struct opts { int mss, ws, sack_ok, ts; uint32_t tsval, tsecr; };
static inline struct opts opts_of(const uint8_t *tcp)
{
	struct opts o = { .mss = -1, .ws = -1 };
	int len = (tcp[12] >> 4) * 4 - 20;
	const uint8_t *p = tcp + 20;
	for (int i = 0; i < len;) {
		if (p[i] == 0) break;
		if (p[i] == 1) { i++; continue; }
		int l = p[i + 1];
		if (p[i] == 2) o.mss = t_be16(p + i + 2);
		if (p[i] == 3) o.ws = p[i + 2];
		if (p[i] == 4) o.sack_ok = 1;
		if (p[i] == 8) { o.ts = 1; o.tsval = t_be32(p + i + 2); o.tsecr = t_be32(p + i + 6); }
		i += l;
	}
	return o;
}

/* Does the SYN handshake; returns the cookie ISN and the gateway's TSval. */
static inline uint32_t handshake(int v6, uint16_t sport, uint32_t isn, uint32_t *gw_ts)
{
	uint8_t in[256];
	struct run r;
	struct t_pkt p = client_pkt(v6, sport, isn, 0, T_SYN);
	p.opts = SYN_OPTS;
	p.optlen = 20;
	xdp_run(GW_ING, in, t_build(&p, in), &r);
	size_t l3 = v6 ? 40 : 20;
	if (gw_ts)
		*gw_ts = opts_of(r.out + 14 + l3).tsval;
	return t_be32(r.out + 14 + l3 + 4);
}

/* A segment of the ClientHello (hello, hlen) at seq isn + 1 after the
 * handshake, with TCP flags. */
static size_t hello_pkt_flags(int v6, uint16_t sport, uint32_t isn, uint32_t cookie, uint32_t gw_ts,
			      const uint8_t *hello, size_t hlen, uint8_t flags, uint8_t *out)
{
	static uint8_t ts[12] = { 1, 1, 8, 10 };
	struct t_pkt p = client_pkt(v6, sport, isn + 1, cookie + 1, flags);
	uint32_t v = htonl(0x11223355);
	memcpy(ts + 4, &v, 4);
	v = htonl(gw_ts);
	memcpy(ts + 8, &v, 4);
	p.opts = ts;
	p.optlen = 12;
	p.payload = hello;
	p.plen = hlen;
	return t_build(&p, out);
}

/* The ClientHello packet after the handshake. */
static size_t hello_pkt(int v6, uint16_t sport, uint32_t isn, uint32_t cookie, uint32_t gw_ts,
			const uint8_t *hello, size_t hlen, uint8_t *out)
{
	return hello_pkt_flags(v6, sport, isn, cookie, gw_ts, hello, hlen, T_ACK | T_PSH, out);
}

/* The VM's SYN-ACK (node_vm's input) to the client's SYN replayed with ISN
 * isn on port sport: the VM's ISN vm_isn; MSS 1460, SACK, timestamps (TSval
 * 777, TSecr tsecr) and window scale 9, written into opts (20 bytes), which
 * the packet points to. */
static inline struct t_pkt vm_synack(int v6, uint16_t sport, uint32_t vm_isn, uint32_t isn, uint32_t tsecr,
				     uint8_t *opts)
{
	static const uint8_t o[20] = { 2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x03, 0x09, 0, 0, 0, 0, 1, 3, 3, 9 };
	struct t_pkt sa = { .v6 = v6, .sport = 443, .dport = sport, .seq = vm_isn, .ack = isn + 1,
			    .flags = T_SYN | T_ACK, .window = 65160, .opts = opts, .optlen = 20 };
	uint32_t e = htonl(tsecr);

	memcpy(opts, o, sizeof(o));
	memcpy(opts + 12, &e, 4);
	memcpy(sa.smac, VM_MAC, 6);
	memcpy(sa.dmac, HOST_MAC, 6);
	memcpy(sa.src, v6 ? VM6 : VM4, v6 ? 16 : 4);
	memcpy(sa.dst, v6 ? CLI6 : CLI4, v6 ? 16 : 4);
	return sa;
}

/* Wraps an inner IP packet (from a client-side frame) in Geneve from the
 * gateway, with the handoff option (ho) or the RST verdict (rst_taken). */
static inline size_t mesh_wrap_opt(const uint8_t *frame, size_t n, int v6_outer, const struct vm_handoff *ho,
				   int rst_taken, uint8_t *out)
{
	size_t il = n - 14, ol3 = v6_outer ? 40 : 20, optl = ho ? 28 : rst_taken ? 4 : 0, m = 14 + ol3 + 16 + optl + il;
	memset(out, 0, m);
	memcpy(out, NODE_MAC, 6); memcpy(out + 6, GW_MAC, 6);
	uint8_t *ip = out + 14;
	if (v6_outer) {
		out[12] = 0x86; out[13] = 0xdd;
		ip[0] = 0x60; ip[4] = (16 + optl + il) >> 8; ip[5] = 16 + optl + il; ip[6] = 17; ip[7] = 64;
		inet_pton(AF_INET6, "2001:db8:ff::1", ip + 8);
		inet_pton(AF_INET6, "2001:db8:ff::11", ip + 24);
	} else {
		out[12] = 8;
		ip[0] = 0x45; ip[2] = (20 + 16 + optl + il) >> 8; ip[3] = 20 + 16 + optl + il; ip[8] = 64; ip[9] = 17;
		ip[12] = 198; ip[13] = 19; ip[15] = 1; ip[16] = 198; ip[17] = 19; ip[19] = 11;
		uint16_t c = t_fold(t_sum(ip, 20, 0)); ip[10] = c >> 8; ip[11] = c;
	}
	uint8_t *udp = ip + ol3, *g = udp + 8;
	udp[0] = 0xc1; udp[2] = 6081 >> 8; udp[3] = 6081 & 0xff; udp[4] = (16 + optl + il) >> 8; udp[5] = 16 + optl + il;
	g[0] = optl / 4; g[2] = frame[12]; g[3] = frame[13];
	if (ho) {
		g[8] = VM_OPT_CLASS >> 8; g[9] = VM_OPT_CLASS & 0xff; g[10] = VM_OPT_HANDOFF; g[11] = 6;
		memcpy(g + 12, ho, 24);
	} else if (rst_taken) {
		g[8] = VM_OPT_CLASS >> 8; g[9] = VM_OPT_CLASS & 0xff; g[10] = VM_OPT_RST_TAKEN; g[11] = 0;
	}
	memcpy(g + 8 + optl, frame + 14, il);
	return m;
}

static inline size_t mesh_wrap(const uint8_t *frame, size_t n, int v6_outer, const struct vm_handoff *ho, uint8_t *out)
{
	return mesh_wrap_opt(frame, n, v6_outer, ho, 0, out);
}

/* Wraps an inner IP packet (from a frame) in Geneve from the node to the
 * gateway's underlay address (IPv4), as the node sends a VM's packets back. */
static inline size_t ret_wrap(const uint8_t *frame, size_t n, uint8_t *out)
{
	size_t il = n - 14, m = 14 + 20 + 16 + il;
	memset(out, 0, m);
	memcpy(out, GW_MAC, 6); memcpy(out + 6, NODE_MAC, 6); out[12] = 8;
	uint8_t *ip = out + 14, *udp = ip + 20, *g = udp + 8;
	ip[0] = 0x45; ip[2] = (20 + 16 + il) >> 8; ip[3] = 20 + 16 + il; ip[8] = 64; ip[9] = 17;
	ip[12] = 198; ip[13] = 19; ip[15] = 11; ip[16] = 198; ip[17] = 19; ip[19] = 1;
	udp[0] = 0xc0; udp[2] = 6081 >> 8; udp[3] = 6081 & 0xff; udp[4] = (16 + il) >> 8; udp[5] = 16 + il;
	g[2] = frame[12]; g[3] = frame[13];
	memcpy(g + 8, frame + 14, il);
	return m;
}

/* The VM's packet as the gateway sees it (VIP -> client, client's view). */
static inline size_t vm_reply_pkt(int v6, uint16_t cport, uint32_t seq, uint32_t ack, uint8_t flags, uint8_t *out)
{
	uint8_t inner[256];
	struct t_pkt p = { .v6 = v6, .sport = 443, .dport = cport, .seq = seq, .ack = ack, .flags = flags, .window = 100 };
	memcpy(p.src, v6 ? VIP6 : VIP4, v6 ? 16 : 4);
	memcpy(p.dst, v6 ? CLI6 : CLI4, v6 ? 16 : 4);
	return ret_wrap(inner, t_build(&p, inner), out);
}

#endif
