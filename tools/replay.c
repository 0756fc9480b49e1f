// SPDX-License-Identifier: Apache-2.0
/*
 * veilctl replay FILE: what would the gateway have done with this capture?
 *
 * Every packet of a pcap/pcapng capture runs through a private copy of the
 * gateway programs (BPF_PROG_TEST_RUN), in a network namespace of our own,
 * with state carried from packet to packet as on the live gateway: packets to
 * a VIP through gw_ingress (and gw_asm when it hands them on), Geneve from a
 * node through gw_return.  Routes and VIPs come from --routes CONFIG, or are
 * copied from the live pinned maps.
 *
 * The capture's SYN cookies were made with the live fleet key, which we do
 * not use: each flow's acknowledgements are remapped from the cookie the
 * capture shows (its SYN-ACK, or the client's first ack) to the one our copy
 * answered with; for a flow captured mid-way a SYN is synthesized first.
 * With --secret FILE (the fleet's secret) the cookies are run as captured,
 * against the key the live gateway uses now.  Everything else in a packet is
 * run as captured.  The SNI shown is the name parsed from the client's own
 * bytes (reassembled when the hello spans segments or records).
 *
 * Link types: Ethernet, raw IPv4/IPv6 (DLT_RAW, LINKTYPE_IPV4/IPV6), Linux
 * cooked (SLL, SLL2) and BSD loopback (NULL, LOOP); each packet is given an
 * Ethernet header before it runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#define PCAP_DONT_INCLUDE_PCAP_BPF_H   /* its struct bpf_insn is not the kernel's */
#include <pcap/pcap.h>
#include <pcap/dlt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/crypto.h>

#include "veil.h"
#include "veil/hello.h"
#include "veil/flowkey.h"
#include "gw_ingress.skel.h"
#include "gw_return.skel.h"
#include "gw_asm.skel.h"

#define R_XDP_NAMES { "ABORTED", "DROP", "PASS", "TX", "REDIRECT" }

struct rflow {
	__u8 client[16], vip[16];
	__u16 cport, vport;       /* host order */
	int have_cap, have_ours;
	__u32 cap_cookie, our_cookie;
	/* the client's first bytes, by sequence number from base (its ISN + 1) */
	int have_base;
	__u32 base;
	__u8 *stream, *filled;    /* VM_HELLO_BUF each, made at the first data */
};

static struct rflow *flows;
static int nflows, capflows;

static struct rflow *rflow_get(const __u8 *client, __u16 cport, const __u8 *vip, __u16 vport)
{
	for (int i = 0; i < nflows; i++)
		if (flows[i].cport == cport && flows[i].vport == vport && !memcmp(flows[i].client, client, 16) &&
		    !memcmp(flows[i].vip, vip, 16))
			return &flows[i];
	if (nflows == capflows) {
		capflows = capflows ? capflows * 2 : 64;
		flows = realloc(flows, capflows * sizeof(*flows));
	}
	struct rflow *f = &flows[nflows++];
	memset(f, 0, sizeof(*f));
	memcpy(f->client, client, 16);
	memcpy(f->vip, vip, 16);
	f->cport = cport;
	f->vport = vport;
	return f;
}

/* The link types replay reads, and how long their header is; each packet is
 * given an Ethernet header (zero MACs, the EtherType its link header or IP
 * version says) so the programs see what the gateway's NIC would give them. */
static int link_ok(int dlt)
{
	return dlt == DLT_EN10MB || dlt == DLT_RAW || dlt == DLT_IPV4 || dlt == DLT_IPV6 || dlt == DLT_LINUX_SLL ||
	       dlt == DLT_LINUX_SLL2 || dlt == DLT_NULL || dlt == DLT_LOOP;
}

/* Writes the packet as an Ethernet frame into out; its length, or 0 when
 * the link header is short or does not carry IPv4/IPv6 (the frame is then
 * kept as it is, so it shows as not IP). */
static size_t to_ether(int dlt, const u_char *d, size_t n, __u8 *out, size_t cap)
{
	size_t hl = 0;
	__u16 et = 0;

	switch (dlt) {
	case DLT_EN10MB:
		n = n < cap ? n : cap;
		memcpy(out, d, n);
		return n;
	case DLT_LINUX_SLL:   /* 16 bytes, protocol at 14 */
		hl = 16;
		if (n >= hl)
			et = (d[14] << 8) | d[15];
		break;
	case DLT_LINUX_SLL2:  /* 20 bytes, protocol first */
		hl = 20;
		if (n >= hl)
			et = (d[0] << 8) | d[1];
		break;
	case DLT_NULL:        /* 4 bytes of address family, in the capturing host's byte order */
	case DLT_LOOP:        /* the same in network order: the IP version says it either way */
		hl = 4;
		break;
	default:              /* DLT_RAW, DLT_IPV4, DLT_IPV6: the IP header first */
		break;
	}
	if (n < hl + 1)
		return 0;
	if (!et)
		et = (d[hl] >> 4) == 4 ? 0x0800 : (d[hl] >> 4) == 6 ? 0x86dd : 0;
	if (n - hl + 14 > cap)
		n = cap - 14 + hl;
	memset(out, 0, 12);
	out[12] = et >> 8;
	out[13] = et & 0xff;
	memcpy(out + 14, d + hl, n - hl);
	return n - hl + 14;
}

/* The few header facts replay needs, from an Ethernet frame. */
struct rpkt {
	int ok, v6, geneve;
	__u8 src[16], dst[16];
	__u16 sport, dport;
	__u32 seq, ack;
	__u8 flags;
	size_t l4, tcplen, plen;
};

static void parse(const __u8 *f, size_t n, struct rpkt *p)
{
	size_t l3 = 14, ihl;
	__u8 proto;

	memset(p, 0, sizeof(*p));
	if (n < 14 + 20)
		return;
	__u16 et = (f[12] << 8) | f[13];
	if (et == 0x0800) {
		ihl = (f[l3] & 15) * 4;
		if (ihl < 20 || n < l3 + ihl)
			return;
		proto = f[l3 + 9];
		memset(p->src, 0, 10); p->src[10] = p->src[11] = 0xff; memcpy(p->src + 12, f + l3 + 12, 4);
		memset(p->dst, 0, 10); p->dst[10] = p->dst[11] = 0xff; memcpy(p->dst + 12, f + l3 + 16, 4);
		p->l4 = l3 + ihl;
		p->plen = ((f[l3 + 2] << 8) | f[l3 + 3]) - ihl;
	} else if (et == 0x86dd) {
		if (n < l3 + 40)
			return;
		p->v6 = 1;
		proto = f[l3 + 6];
		memcpy(p->src, f + l3 + 8, 16);
		memcpy(p->dst, f + l3 + 24, 16);
		p->l4 = l3 + 40;
		p->plen = (f[l3 + 4] << 8) | f[l3 + 5];
	} else {
		return;
	}
	if (proto == 17 && n >= p->l4 + 8) {
		p->sport = (f[p->l4] << 8) | f[p->l4 + 1];
		p->dport = (f[p->l4 + 2] << 8) | f[p->l4 + 3];
		p->geneve = p->dport == VM_GENEVE_PORT;
		p->ok = 1;
		return;
	}
	if (proto != 6 || n < p->l4 + 20)
		return;
	const __u8 *t = f + p->l4;
	p->sport = (t[0] << 8) | t[1];
	p->dport = (t[2] << 8) | t[3];
	p->seq = ((__u32)t[4] << 24) | (t[5] << 16) | (t[6] << 8) | t[7];
	p->ack = ((__u32)t[8] << 24) | (t[9] << 16) | (t[10] << 8) | t[11];
	p->flags = t[13];
	p->tcplen = (t[12] >> 4) * 4;
	p->plen = p->plen >= p->tcplen ? p->plen - p->tcplen : 0;
	p->ok = 1;
}

static void set_ack(__u8 *f, const struct rpkt *p, __u32 ack)
{
	__u8 *t = f + p->l4;
	__u32 old, new = htonl(ack);
	memcpy(&old, t + 8, 4);
	memcpy(t + 8, &new, 4);
	/* incremental checksum (RFC 1624), so the bytes forwarded stay valid */
	__u32 sum = (__u16)~((t[16] << 8) | t[17]);
	old = ntohl(old);
	sum += (__u16)~(old >> 16) + (__u16)~(old & 0xffff) + (ack >> 16) + (ack & 0xffff);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	t[16] = sum >> 8;
	t[17] = sum & 0xff;
}

static int is_vip(int fd, const __u8 *a, __u16 port, int v6)
{
	struct vip_key k = { .port_be = htons(port), .family = v6 ? VM_AF_INET6 : VM_AF_INET };
	struct vip_val v;
	memcpy(k.addr, a, 16);
	return bpf_map_lookup_elem(fd, &k, &v) == 0;
}

static int run(int fd, int tc, int ifindex, __u8 *pkt, size_t n, __u8 *out, __u32 *outlen, __u32 *verdict)
{
	struct xdp_md x = { .data_end = n, .ingress_ifindex = ifindex };
	struct __sk_buff s = { .ifindex = ifindex, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = n, .data_out = out,
		    .data_size_out = 4096, .repeat = 1);
	if (tc) {
		o.ctx_in = &s;
		o.ctx_size_in = sizeof(s);
	} else {
		o.ctx_in = &x;
		o.ctx_size_in = sizeof(x);
	}
	int rc = bpf_prog_test_run_opts(fd, &o);
	*verdict = o.retval;
	*outlen = o.data_size_out;
	return rc;
}

static void moved(FILE *f, const struct gw_stats *b, const struct gw_stats *a, int js)
{
	const __u64 *x = (const __u64 *)b, *y = (const __u64 *)a;
	int first = 1;
	for (int i = 0; i < vm_gw_stat_count; i++) {
		if (y[i] == x[i])
			continue;
		if (js)
			fprintf(f, "%s\"%s\"", first ? "" : ", ", vm_gw_stat_names[i]);
		else
			fprintf(f, "%s%s", first ? "" : ",", vm_gw_stat_names[i]);
		first = 0;
	}
	if (first && !js)
		fputs("-", f);
}

/* Keeps a client segment's bytes at their place in the flow's stream. */
static void stream_add(struct rflow *f, const struct rpkt *p, const __u8 *pkt)
{
	if ((p->flags & 0x02) && !f->have_base) {
		f->base = p->seq + 1;
		f->have_base = 1;
	}
	if (!p->plen)
		return;
	if (!f->have_base) {          /* captured mid-way: the first data is the start */
		f->base = p->seq;
		f->have_base = 1;
	}
	if (!f->stream) {
		f->stream = calloc(1, VM_HELLO_BUF);
		f->filled = calloc(1, VM_HELLO_BUF);
		if (!f->stream || !f->filled)
			return;
	}
	__u32 off = p->seq - f->base;
	for (size_t i = 0; i < p->plen && off + i < VM_HELLO_BUF; i++) {
		f->stream[off + i] = pkt[p->l4 + p->tcplen + i];
		f->filled[off + i] = 1;
	}
}

/* The server name of the hello the client has sent so far, as the gateway
 * parses it: the contiguous prefix, its TLS records joined into one. */
static int stream_sni(const struct rflow *f, char *name, size_t len)
{
	static __u8 flat[VM_HELLO_BUF];
	struct vm_hello h = { 0 };
	struct vm_hello_state st;
	size_t have = 0, r = 0, out = 5;

	if (!f->stream)
		return -1;
	while (have < VM_HELLO_BUF && f->filled[have])
		have++;
	while (r + 5 <= have && f->stream[r] == 0x16) {
		size_t rlen = (f->stream[r + 3] << 8) | f->stream[r + 4], n = have - r - 5;
		if (n > rlen)
			n = rlen;
		if (out + n > VM_HELLO_BUF)
			n = VM_HELLO_BUF - out;
		memcpy(flat + out, f->stream + r + 5, n);
		out += n;
		r += 5 + rlen;
		if (n < rlen || out == VM_HELLO_BUF)
			break;
	}
	if (out == 5)
		return -1;
	flat[0] = 0x16;
	flat[1] = 3;
	flat[2] = 1;
	flat[3] = (out - 5) >> 8;
	flat[4] = (out - 5) & 0xff;
	if (vm_hello_parse(flat, out, &h, &st) != VM_HELLO_OK)
		return -1;
	snprintf(name, len, "%s", h.name);
	return 0;
}

static int copy_map(const char *from_pin, int to_fd, size_t ksz, size_t vsz)
{
	int fd = bpf_obj_get(from_pin);
	__u8 k[VM_NAME_MAX + 64], nk[VM_NAME_MAX + 64], v[1024];
	void *prev = NULL;

	struct bpf_map_info info = { 0 };
	__u32 ilen = sizeof(info);

	if (fd < 0)
		return -1;
	/* a map of another shape (an older gateway's) is not ours to read */
	if (ksz > sizeof(k) || vsz > sizeof(v) || bpf_obj_get_info_by_fd(fd, &info, &ilen) ||
	    info.key_size != ksz || info.value_size != vsz) {
		close(fd);
		return -1;
	}
	while (!bpf_map_get_next_key(fd, prev, nk)) {
		memcpy(k, nk, ksz);
		prev = k;
		if (!bpf_map_lookup_elem(fd, k, v))
			bpf_map_update_elem(to_fd, k, v, BPF_ANY);
	}
	close(fd);
	return 0;
}

int vm_replay(int argc, char **argv, const char *live_pin, int json)
{
	const char *file = NULL, *routes_cfg = NULL, *secret = NULL;
	char errbuf[PCAP_ERRBUF_SIZE], err[512], pin[128], cmd[256];
	static struct vm_gw_cfg cfg;
	struct vm_gw g;
	__u32 zero = 0;
	int rc = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--routes") && i + 1 < argc)
			routes_cfg = argv[++i];
		else if (!strcmp(argv[i], "--secret") && i + 1 < argc)
			secret = argv[++i];
		else if (argv[i][0] != '-' && !file)
			file = argv[i];
		else {
			fprintf(stderr, "veilctl: replay takes FILE [--routes CONFIG] [--secret FILE]\nTry 'veilctl --help'.\n");
			return 2;
		}
	}
	if (!file) {
		fprintf(stderr, "veilctl: replay takes FILE [--routes CONFIG] [--secret FILE]\nTry 'veilctl --help'.\n");
		return 2;
	}
	__u8 master[64];
	size_t mlen = 0;
	if (secret && vm_secret_read(secret, master, &mlen, err, sizeof(err))) {
		fprintf(stderr, "veilctl: --secret %s\n", err);
		return 2;
	}
	pcap_t *pc = pcap_open_offline(file, errbuf);
	if (!pc) {
		fprintf(stderr, "veilctl: %s: %s\n", file, errbuf);
		return 1;
	}
	int dlt = pcap_datalink(pc);
	if (!link_ok(dlt)) {
		const char *nm = pcap_datalink_val_to_name(dlt), *ds = pcap_datalink_val_to_description(dlt);
		fprintf(stderr, "veilctl: %s: cannot read link type %s (%s, DLT %d): replay reads Ethernet, raw IP "
			"(RAW, IPV4, IPV6), Linux cooked (LINUX_SLL, LINUX_SLL2) and BSD loopback (NULL, LOOP)\n",
			file, nm ? nm : "unknown", ds ? ds : "no description", dlt);
		pcap_close(pc);
		return 1;
	}
	if (routes_cfg && vm_gw_cfg_load(routes_cfg, &cfg, err, sizeof(err))) {
		fprintf(stderr, "veilctl: %s\n", err);
		return 2;
	}

	/* Our own network: one veth with the gateway's underlay addresses, and
	 * every route's node reachable through it. */
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "veilctl: replay needs root (a private network namespace): %s\n", strerror(errno));
		return 1;
	}
	if (system("ip link set lo up && ip link add r0 type veth peer name r1 && ip link set r0 up && ip link set r1 up"
		   " && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_dad=0"
		   " net.ipv6.conf.default.accept_dad=0")) {
		fprintf(stderr, "veilctl: cannot build the replay namespace\n");
		return 1;
	}
	int ifindex = if_nametoindex("r0");
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/veilmesh-replay-%d", getpid());
	if (vm_gw_open(&g, pin, 65536, 0) || vm_gw_load(&g)) {
		fprintf(stderr, "veilctl: loading the gateway programs failed\n");
		rc = 1;
		goto out;
	}
	int routes_fd = vm_gw_map_fd(&g, "routes"), vips_fd = vm_gw_map_fd(&g, "vips");
	struct gw_config gc;
	if (routes_cfg) {
		int changes;
		vm_gw_sync(&g, &cfg, &changes);
		gc = cfg.dp;
	} else {
		char p1[512];
		int fd;
		snprintf(p1, sizeof(p1), "%s/routes", live_pin);
		if (copy_map(p1, routes_fd, sizeof(struct route_hkey), sizeof(struct route_ent))) {
			fprintf(stderr, "veilctl: no live routes under %s: give --routes CONFIG\n", live_pin);
			rc = 1;
			goto out;
		}
		vm_gw_route_bits_rebuild(&g);   /* the copy went around libveil's puts */
		snprintf(p1, sizeof(p1), "%s/vips", live_pin);
		copy_map(p1, vips_fd, sizeof(struct vip_key), sizeof(struct vip_val));
		snprintf(p1, sizeof(p1), "%s/gw_config", live_pin);
		fd = bpf_obj_get(p1);
		if (fd < 0 || bpf_map_lookup_elem(fd, &zero, &gc)) {
			fprintf(stderr, "veilctl: no live gw_config under %s\n", live_pin);
			rc = 1;
			goto out;
		}
		close(fd);
		bpf_map_update_elem(vm_gw_map_fd(&g, "gw_config"), &zero, &gc, BPF_ANY);
	}
	/* underlay addresses on r0; nodes as neighbours */
	char a[64];
	if (gc.has_underlay4) {
		snprintf(cmd, sizeof(cmd), "ip addr add %s/32 dev r0", vm_addr_str(gc.underlay4, a, sizeof(a)));
		(void)!system(cmd);
	}
	if (gc.has_underlay6) {
		snprintf(cmd, sizeof(cmd), "ip addr add %s/128 dev r0 nodad", vm_addr_str(gc.underlay6, a, sizeof(a)));
		(void)!system(cmd);
	}
	{
		struct route_hkey k, nk;
		struct route_ent e;
		const struct route_val *vp = &e.val;
		void *prev = NULL;
		while (!bpf_map_get_next_key(routes_fd, prev, &nk)) {
			k = nk;
			prev = &k;
			if (bpf_map_lookup_elem(routes_fd, &k, &e))
				continue;
			struct route_val v = *vp;
			int v6 = v.node_family == VM_AF_INET6;
			snprintf(cmd, sizeof(cmd), "ip %s route replace %s dev r0 2>/dev/null && ip neigh replace %s "
				 "lladdr 02:00:00:00:00:fe dev r0 nud permanent", v6 ? "-6" : "",
				 vm_addr_str(v.node, a, sizeof(a)), a);
			(void)!system(cmd);
		}
	}
	struct cookie_secret sec = { .cur = { .sip = { 0x76656966, 0x726570 }, .sip6 = { 0x36766966, 0x726570 } }, .epoch = 1, .rotate_s = 3600 };
	if (secret) {
		/* the live gateway's key now: its rotation period from the config, or the live map */
		__u32 rotate = routes_cfg ? cfg.rotate_s : 0;
		if (!rotate) {
			char p1[512];
			struct cookie_secret live = { 0 };
			snprintf(p1, sizeof(p1), "%s/cookie_secret", live_pin);
			int fd = bpf_obj_get(p1);
			if (fd >= 0 && !bpf_map_lookup_elem(fd, &zero, &live))
				rotate = live.rotate_s;
			if (fd >= 0)
				close(fd);
			OPENSSL_cleanse(&live, sizeof(live));
		}
		vm_secret_derive(master, mlen, vm_tai_seconds(), rotate ? rotate : 3600, &sec);
		OPENSSL_cleanse(master, sizeof(master));
	}
	bpf_map_update_elem(vm_gw_map_fd(&g, "cookie_secret"), &zero, &sec, BPF_ANY);
	OPENSSL_cleanse(&sec, sizeof(sec));

	int ing = bpf_program__fd(g.ing->progs.gw_ingress), ret = bpf_program__fd(g.ret->progs.gw_return),
	    asmf = bpf_program__fd(g.as->progs.gw_asm), stats_fd = vm_gw_map_fd(&g, "gw_stats");
	struct vm_flows *ft = vm_gw_flows(&g);
	struct flow_seed seed = { .k = { 0, 0 } };   /* the replay's own, as vm_gw_load chose it */
	bpf_map_lookup_elem(vm_gw_map_fd(&g, "flow_seed"), &zero, &seed);
	static const char *xv[] = R_XDP_NAMES;
	struct pcap_pkthdr *h;
	const u_char *d;
	__u8 pkt[65536 + 64], out[4096];
	long idx = 0;
	int r;
	double t0 = -1;

	if (json)
		printf("[");
	else
		printf("%5s %9s  %-52s %-6s %5s  %-9s %s\n", "#", "TIME", "PACKET", "FLAGS", "LEN", "VERDICT",
		       "OUTCOME  [SNI / ROUTE]");
	while ((r = pcap_next_ex(pc, &h, &d)) == 1) {
		size_t n = to_ether(dlt, d, h->caplen, pkt, sizeof(pkt));
		idx++;
		double ts = h->ts.tv_sec + h->ts.tv_usec / 1e6;
		if (t0 < 0)
			t0 = ts;
		struct rpkt p;
		parse(pkt, n, &p);
		char s1[64], s2[64], desc[128], fl[8] = "";
		if (!p.ok) {
			snprintf(desc, sizeof(desc), "(not IP/TCP/UDP)");
		} else {
			snprintf(desc, sizeof(desc), "%s:%u > %s:%u", vm_addr_str(p.src, s1, sizeof(s1)), p.sport,
				 vm_addr_str(p.dst, s2, sizeof(s2)), p.dport);
			if (!p.geneve && !(p.sport && p.flags == 0 && !p.tcplen)) {
				const char *fn = "FSRPAU";
				int k = 0;
				for (int i = 0; i < 6; i++)
					if (p.flags & (1 << i))
						fl[k++] = fn[i];
				fl[k] = 0;
			}
		}
		const char *role = NULL;
		int prog = -1, tc_after = 0;
		struct rflow *rf = NULL;
		if (p.ok && !p.geneve && p.tcplen && is_vip(vips_fd, p.dst, p.dport, p.v6)) {
			prog = ing;
			rf = rflow_get(p.src, p.sport, p.dst, p.dport);
			tc_after = 1;
			stream_add(rf, &p, pkt);
		} else if (p.ok && !p.geneve && p.tcplen && is_vip(vips_fd, p.src, p.sport, p.v6)) {
			role = "from the gateway (not replayed)";
			rf = rflow_get(p.dst, p.dport, p.src, p.sport);
			if ((p.flags & 0x12) == 0x12 && !rf->have_cap) {
				rf->cap_cookie = p.seq;
				rf->have_cap = 1;
			}
		} else if (p.ok && p.geneve) {
			prog = ret;
		} else {
			role = "not for the gateway";
		}

		struct gw_stats b, a2;
		__u32 verdict = 0, olen = 0;
		char extra[300] = "";
		if (prog >= 0) {
			/* remap the capture's cookie to ours (with --secret, ours is the live one) */
			if (rf && !secret && (p.flags & 0x10) && !(p.flags & 0x02)) {
				if (!rf->have_cap) {
					rf->cap_cookie = p.ack - 1;
					rf->have_cap = 1;
				}
				if (!rf->have_ours) {
					/* captured mid-way: a SYN first, as the client would have sent */
					static const __u8 synopt[20] = { 2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7 };
					__u8 syn[128];
					size_t l3 = p.v6 ? 40 : 20;
					memcpy(syn, pkt, 14 + l3);
					__u8 *ip = syn + 14, *t = ip + l3;
					memset(t, 0, 40);
					memcpy(t, pkt + p.l4, 4);
					__u32 isn = htonl(p.seq - 1);
					memcpy(t + 4, &isn, 4);
					t[12] = 10 << 4;
					t[13] = 0x02;
					t[14] = 0xff;
					t[15] = 0xff;
					memcpy(t + 20, synopt, 20);
					if (p.v6) {
						ip[4] = 0; ip[5] = 40;
					} else {
						ip[2] = 0; ip[3] = 60;
					}
					__u32 v2;
					run(ing, 0, ifindex, syn, 14 + l3 + 40, out, &olen, &v2);
					if (v2 == 3) {
						rf->our_cookie = ntohl(*(__u32 *)(out + 14 + l3 + 4));
						rf->have_ours = 1;
					}
				}
				if (rf->have_ours)
					set_ack(pkt, &p, p.ack - rf->cap_cookie + rf->our_cookie);
			}
			vm_gw_stats_read(stats_fd, &b);
			if (run(prog, 0, ifindex, pkt, n, out, &olen, &verdict)) {
				snprintf(extra, sizeof(extra), "run failed: %s", strerror(errno));
			}
			/* as the kernel would: what XDP passes on for a VIP meets gw_asm */
			int via_tc = 0;
			if (tc_after && verdict == 2) {
				__u32 v2;
				run(asmf, 1, ifindex, pkt, n, out, &olen, &v2);
				via_tc = 1;
				verdict = v2 == 7 ? 100 : v2 == 2 ? 101 : 102;
			}
			vm_gw_stats_read(stats_fd, &a2);
			if (prog == ing && (p.flags & 0x12) == 0x02 && (verdict == 3) && rf) {
				size_t l3 = p.v6 ? 40 : 20;
				rf->our_cookie = ntohl(*(__u32 *)(out + 14 + l3 + 4));
				rf->have_ours = 1;
			}
			/* SNI and route of a flow that exists now */
			if (rf) {
				__u8 fam = p.v6 ? VM_AF_INET6 : VM_AF_INET;
				struct flow_key fk;
				struct flow_val fv;
				vm_flow_key_make(fam, rf->client, rf->vip, htons(rf->cport), htons(rf->vport), &seed, &fk);
				int routed = a2.hello_routed != b.hello_routed || a2.asm_routed != b.asm_routed;
				char sni[VM_NAME_MAX];
				if (stream_sni(rf, sni, sizeof(sni)))
					snprintf(sni, sizeof(sni), "?");
				if (routed && ft && !vm_flows_get(ft, &fk, &fv) &&
				    VM_FLOW_IS(&fv, fam, rf->client, rf->vip)) {
					char nb[64];
					snprintf(extra, sizeof(extra), "sni=%.200s route: vm %u via %s", sni, ntohl(fv.handoff.vm_id_be),
						 vm_addr_str(fv.node, nb, sizeof(nb)));
				} else if (p.plen && !routed && (a2.no_route != b.no_route || a2.no_sni != b.no_sni ||
								  a2.bad_name != b.bad_name) && strcmp(sni, "?")) {
					snprintf(extra, sizeof(extra), "sni=%.200s (no route)", sni);
				}
			}
			(void)via_tc;
		}
		const char *vname = role ? "-" : verdict < 5 ? xv[verdict] : verdict == 100 ? "TC_REPLY" :
				    verdict == 101 ? "TC_HELD" : "TC_OTHER";
		if (json) {
			printf("%s{\"n\": %ld, \"time\": %.6f, \"packet\": ", idx > 1 ? ", " : "", idx, ts - t0);
			vm_json_str(stdout, desc);
			printf(", \"flags\": \"%s\", \"len\": %u, \"verdict\": \"%s\", \"outcome\": [", fl, h->len, vname);
			if (!role)
				moved(stdout, &b, &a2, 1);
			printf("]");
			if (role) {
				printf(", \"note\": ");
				vm_json_str(stdout, role);
			}
			if (extra[0]) {
				printf(", \"detail\": ");
				vm_json_str(stdout, extra);
			}
			printf("}");
		} else {
			printf("%5ld %9.6f  %-52s %-6s %5u  %-9s ", idx, ts - t0, desc, fl, h->len, vname);
			if (role)
				printf("(%s)", role);
			else
				moved(stdout, &b, &a2, 0);
			if (extra[0])
				printf("  %s", extra);
			putchar('\n');
		}
	}
	if (json)
		printf("]\n");
	if (r == -1) {
		fprintf(stderr, "veilctl: %s: %s\n", file, pcap_geterr(pc));
		rc = 1;
	}
out:
	pcap_close(pc);
	vm_gw_close(&g);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pin);
	(void)!system(cmd);
	for (int i = 0; i < nflows; i++) {
		free(flows[i].stream);
		free(flows[i].filled);
	}
	free(flows);
	return rc;
}
