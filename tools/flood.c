// SPDX-License-Identifier: Apache-2.0
/*
 * veil-flood: hostile and bulk traffic for the lab, from an AF_PACKET socket
 * (qdisc bypassed), as fast as the sending namespace can push.
 *
 *   --kind syn         SYNs from random sources (198.18.64.0/18, random ports)
 *   --kind ack         pure ACKs with random (bad) cookies
 *   --kind ackdata     ACKs with data and random cookies (the reassembly path)
 *   --kind hello-frag  valid cookies (needs --secret) and the first segment of
 *                      a hello whose name never comes: reassembly state
 *   --kind hello       valid cookies and a whole hello for --name: one flow each
 *
 * Sources are random inside 198.18.64.0/18 (IPv4) or 2001:db8:64::/48 (IPv6);
 * the destination is the VIP given.  Lab use only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../tests/testlib.h"
#include "veil.h"
#include "veil/cookie.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static inline uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: veil-flood --iface IF --dst-mac MAC --vip ADDR --kind syn|ack|ackdata|hello-frag|hello\n"
		   "                  [--count N] [--seconds S] [--port P] [--secret FILE] [--rotate S]\n"
		   "                  [--window S] [--name NAME] [--seed N] [--dump FILE]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iface", required_argument, NULL, 'i' }, { "dst-mac", required_argument, NULL, 'd' },
		{ "vip", required_argument, NULL, 'v' }, { "kind", required_argument, NULL, 'k' },
		{ "count", required_argument, NULL, 'c' }, { "seconds", required_argument, NULL, 's' },
		{ "port", required_argument, NULL, 'p' }, { "secret", required_argument, NULL, 'S' },
		{ "rotate", required_argument, NULL, 'r' }, { "window", required_argument, NULL, 'w' },
		{ "name", required_argument, NULL, 'n' }, { "seed", required_argument, NULL, 'e' },
		{ "dump", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	const char *dump = NULL;
	const char *ifname = NULL, *dmac_s = NULL, *vip_s = NULL, *kind = NULL, *secret = NULL, *name = "flood.veil.test";
	long count = 100000, seconds = 0, port = 443, rotate = 3600, window = 64;
	int o;

	while ((o = getopt_long(argc, argv, "i:d:v:k:c:s:p:S:r:w:n:e:D:h", opts, NULL)) != -1) {
		switch (o) {
		case 'i': ifname = optarg; break;
		case 'd': dmac_s = optarg; break;
		case 'v': vip_s = optarg; break;
		case 'k': kind = optarg; break;
		case 'c': count = strtol(optarg, NULL, 10); break;
		case 's': seconds = strtol(optarg, NULL, 10); break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'S': secret = optarg; break;
		case 'r': rotate = strtol(optarg, NULL, 10); break;
		case 'w': window = strtol(optarg, NULL, 10); break;
		case 'n': name = optarg; break;
		case 'D': dump = optarg; break;
		case 'e': rng ^= strtoull(optarg, NULL, 10) * 0x2545F4914F6CDD1DULL; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	uint8_t dmac[6], smac[6], vip[16];
	int fam = vip_s ? vm_addr_parse(vip_s, vip) : 0;
	int k_syn = kind && !strcmp(kind, "syn"), k_ack = kind && !strcmp(kind, "ack"),
	    k_ackdata = kind && !strcmp(kind, "ackdata"), k_frag = kind && !strcmp(kind, "hello-frag"),
	    k_hello = kind && !strcmp(kind, "hello");
	if (!ifname || !dmac_s || vm_mac_parse(dmac_s, dmac) || !fam || !(k_syn || k_ack || k_ackdata || k_frag || k_hello) ||
	    count < 1 || port < 1 || port > 65535 || ((k_frag || k_hello) && !secret)) {
		usage(stderr);
		return 2;
	}
	if (vm_if_mac(ifname, smac)) {
		fprintf(stderr, "veil-flood: no interface %s\n", ifname);
		return 2;
	}
	struct cookie_secret sec = { 0 };
	if (secret) {
		uint8_t master[64];
		size_t ml;
		char err[256];
		if (vm_secret_read(secret, master, &ml, err, sizeof(err))) {
			fprintf(stderr, "veil-flood: %s\n", err);
			return 2;
		}
		vm_secret_derive(master, ml, vm_tai_seconds(), rotate, &sec);
	}

	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)), one = 1;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname), .sll_halen = 6 };
	memcpy(sll.sll_addr, dmac, 6);
	if (fd < 0 || !sll.sll_ifindex) {
		fprintf(stderr, "veil-flood: packet socket on %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));

	/* payloads */
	static struct hb frag_h, hello_h;
	size_t frag_n = hb_browser(&frag_h, name, 3000);
	hb_begin(&hello_h);
	hb_sni(&hello_h, name);
	size_t hello_n = hb_end(&hello_h);
	static const uint8_t syn_opts[20] = { 2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7 };
	static uint8_t data_opts[12] = { 1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 0 };
	uint8_t pkt[2048];
	struct timespec t0, t1;
	long sent = 0, errs = 0;
	int last_err = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < count; i++) {
		struct t_pkt p = { .v6 = fam == VM_AF_INET6, .dport = port, .window = 502 };
		memcpy(p.smac, smac, 6);
		memcpy(p.dmac, dmac, 6);
		uint32_t r = rnd();
		if (fam == VM_AF_INET) {
			p.src[0] = 198; p.src[1] = 18; p.src[2] = 64 + ((r >> 8) & 63); p.src[3] = r & 0xff;
			memcpy(p.dst, vip + 12, 4);
		} else {
			inet_pton(AF_INET6, "2001:db8:64::", p.src);
			memcpy(p.src + 12, &r, 4);
			memcpy(p.dst, vip, 16);
		}
		p.sport = 1024 + (rnd() % 64000);
		p.seq = rnd();
		if (k_syn) {
			p.flags = T_SYN;
			p.opts = syn_opts;
			p.optlen = 20;
		} else if (k_ack || k_ackdata) {
			p.flags = T_ACK;
			p.ack = rnd();
			if (k_ackdata) {
				p.payload = frag_h.b;
				p.plen = 600;
			}
		} else {
			/* a valid cookie for this tuple, as if the SYN had come */
			struct vm_cookie_in cin = { .sport = htons(p.sport), .dport = htons(port), .client_isn = p.seq };
			struct vm_cookie_opts co = { .mss = 1460, .wscale = 7, .sack_ok = 1, .ts_ok = 1 };
			if (fam == VM_AF_INET) {
				memset(cin.saddr, 0, 10); cin.saddr[10] = cin.saddr[11] = 0xff;
				memcpy(cin.saddr + 12, p.src, 4);
			} else {
				memcpy(cin.saddr, p.src, 16);
			}
			memcpy(cin.daddr, vip, 16);
			uint32_t cookie = vm_cookie_make(&sec.cur, &cin, vm_tai_seconds() / window, &co);
			p.flags = T_ACK | T_PSH;
			p.seq += 1;
			p.ack = cookie + 1;
			p.opts = data_opts;
			p.optlen = 12;
			p.payload = k_frag ? frag_h.b : hello_h.b;
			p.plen = k_frag ? 1300 : hello_n;
		}
		(void)frag_n;
		size_t n = t_build(&p, pkt);
		if (dump && i == 0) {   /* the first frame, for replay or a look */
			FILE *df = fopen(dump, "wb");
			if (df) {
				fwrite(pkt, 1, n, df);
				fclose(df);
			}
		}
		/* ENOBUFS: the interface's queue (a veth's ring) is full for the
		 * moment: the same frame again shortly, up to 100 times, so that a
		 * burst of --count frames is sent whole rather than cut where the
		 * receiver fell behind; what is still refused counts as an error */
		int rc, tries = 0;
		while ((rc = (int)sendto(fd, pkt, n, 0, (struct sockaddr *)&sll, sizeof(sll))) < 0 && errno == ENOBUFS &&
		       ++tries < 100)
			usleep(20);
		if (rc < 0) {
			errs++;
			last_err = errno;
		} else {
			sent++;
		}
		if (seconds && (i & 1023) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if (t1.tv_sec - t0.tv_sec >= seconds)
				break;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("veil-flood: kind=%s sent=%ld errors=%ld seconds=%.2f pps=%.0f\n", kind, sent, errs, dt, sent / dt);
	if (errs)
		fprintf(stderr, "veil-flood: %ld frames refused, the last: %s\n", errs, strerror(last_err));
	close(fd);
	return 0;
}
