// SPDX-License-Identifier: Apache-2.0
/*
 * veil-fpgen: writes a pcap of client traffic for a gateway config, with
 * SYN cookies made from that config's secret for the current time window,
 * so that the gateway takes them as real (the DPDK benchmark replays it
 * with net_pcap's infinite_rx).
 *
 *   veil-fpgen --config gw.conf --kind hello|established|ack --flows N [--per-flow K]
 *              [--payload BYTES] [--offset BYTES] [--interleave] --out FILE
 *
 * hello: N distinct connections, each its cookie-validated ClientHello
 * (first route's name; the DPDK gateway routes each one: parse, route,
 * flow insert, Geneve handoff).  established: N connections, each its
 * hello and then K data packets of BYTES bytes (forwarded without a parse),
 * the first --offset bytes past the hello's end (0: right after it, so
 * within the hello's 16 KB and each with the handoff option; 16384 or
 * more: past them, as the rest of a connection's packets, without it).
 * --interleave writes the packets in turns across the connections (every
 * hello, then every connection's first data packet, ...) as a gateway sees
 * many connections at once: the next packet's flow is rarely the last
 * one's, so with enough connections its flow entry is no longer in the
 * caches (without it, a connection's packets come one after another).
 * ack: an ACK flood, N ACKs from N spoofed clients, none a connection:
 * each carries the cookie its tuple would have with the MAC's top bit
 * turned, so the gateway looks for the flow and, while its flow gate is off
 * (the flood's first window), computes the MAC and drops it (bad_cookie),
 * as for a random flood's ACKs whose time bits name an accepted window;
 * once the flood has turned the gate on, drops it without the MAC
 * (ack_unjudged: a bare ACK makes no state) but for each window's first
 * 8 lookups (the gate's probes).
 * The cookies stay valid for the config's cookie window (64 s by default,
 * the previous window also accepted).
 */
#include <pcap/pcap.h>
#include <getopt.h>
#include <time.h>
#include <openssl/crypto.h>

#include "veil.h"
#include "veil/gw.h"        /* vm_gw_cookie_tnow */
#include "../tests/fpgen.h"   /* the packets, shared with the equivalence test */

static void usage(FILE *f)
{
	fprintf(f, "usage: veil-fpgen --config FILE --kind hello|established|ack --flows N [--per-flow K]\n"
		   "                  [--payload BYTES] [--offset BYTES] [--interleave] --out FILE.pcap\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "kind", required_argument, NULL, 'k' },
		{ "flows", required_argument, NULL, 'n' }, { "per-flow", required_argument, NULL, 'p' },
		{ "payload", required_argument, NULL, 'b' }, { "out", required_argument, NULL, 'o' },
		{ "offset", required_argument, NULL, 's' }, { "interleave", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	const char *config = NULL, *kind = NULL, *out = NULL;
	long flows = 0, per = 8, payload = 100, offset = 0;
	int o, inter = 0;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': config = optarg; break;
		case 'k': kind = optarg; break;
		case 'n': flows = atol(optarg); break;
		case 'p': per = atol(optarg); break;
		case 'b': payload = atol(optarg); break;
		case 'o': out = optarg; break;
		case 's': offset = atol(optarg); break;
		case 'i': inter = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!config || !kind || !out || flows < 1 || flows > 4000000 || per < 0 || payload < 1 || payload > 1400 ||
	    offset < 0 || offset > (1L << 30) || fpgen_kind_of(kind) < 0) {
		usage(stderr);
		return 2;
	}
	struct vm_gw_cfg c;
	char err[512];
	if (vm_gw_cfg_load(config, &c, err, sizeof(err))) {
		fprintf(stderr, "veil-fpgen: %s\n", err);
		return 2;
	}
	const struct vm_cfg_vip *vip = NULL;
	for (int i = 0; i < c.nvips && !vip; i++)
		if (c.vips[i].key.family == VM_AF_INET)
			vip = &c.vips[i];
	const char *name = NULL;
	for (int i = 0; i < c.nroutes && !name; i++)
		if (c.routes[i].key.name[0] != '*')
			name = c.routes[i].key.name;
	if (!vip || !name) {
		fprintf(stderr, "veil-fpgen: %s needs an IPv4 VIP and an exact route\n", config);
		return 2;
	}
	uint8_t master[64];
	size_t mlen;
	struct cookie_secret sec;
	if (vm_secret_read(c.secret_file, master, &mlen, err, sizeof(err))) {
		fprintf(stderr, "veil-fpgen: %s\n", err);
		return 2;
	}
	vm_secret_derive(master, mlen, vm_tai_seconds(), c.rotate_s, &sec);
	memset(master, 0, sizeof(master));
	struct timespec ts;
	clock_gettime(CLOCK_TAI, &ts);

	pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
	pcap_dumper_t *d = dead ? pcap_dump_open(dead, out) : NULL;
	if (!d) {
		fprintf(stderr, "veil-fpgen: %s: %s\n", out, dead ? pcap_geterr(dead) : "pcap");
		return 1;
	}
	static struct hb h;
	struct fpgen g = {
		.kind = fpgen_kind_of(kind), .key = &sec.cur,
		.tnow = vm_gw_cookie_tnow(&c.dp, (uint64_t)ts.tv_sec * VM_NS_PER_S + (uint64_t)ts.tv_nsec),
		.smac = { 2, 0, 0, 0, 0, 1 }, .dmac = { 2, 0, 0, 0, 0, 2 }, .hello = h.b,
		.hello_len = hb_browser(&h, name, 600),
		.flows = flows, .per = per, .payload = payload, .offset = offset, .interleave = inter,
	};
	memcpy(g.vip, vip->key.addr + 12, 4);
	uint8_t pkt[2048];
	long written = 0;
	for (long n = 0; n < fpgen_count(&g); n++) {
		struct pcap_pkthdr ph = { .caplen = 0 };
		ph.caplen = ph.len = fpgen_packet(&g, n, pkt);
		pcap_dump((u_char *)d, &ph, pkt);
		written++;
	}
	pcap_dump_close(d);
	pcap_close(dead);
	OPENSSL_cleanse(&sec, sizeof(sec));
	printf("veil-fpgen: %ld packets (%s, %ld flows) in %s\n", written, kind, flows, out);
	vm_gw_cfg_free(&c);
	return 0;
}
