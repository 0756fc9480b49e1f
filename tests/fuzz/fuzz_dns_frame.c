// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer harness for veil-dns's AF_XDP frames (controlplane/dns/frame.h
 * and frame.c): input = one Ethernet frame as the XSK worker gets it from
 * its RX ring.  The frame is parsed (the same function the XDP program
 * runs), checked, turned into a query for the query path (the snapshot of
 * tests/fixtures/dns-test.conf, as fuzz_dns), and the answer frame built.
 * Besides ASan/UBSan: an answer frame must parse back as the query's
 * mirror (addresses and ports swapped, same family), carry the answer
 * bytes, and have a good IPv4 header checksum and UDP checksum; an answer
 * that was not built must really not fit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/xsk.h"
#include "dns_snap.h"

static struct dns_snap *snap;
static uint8_t ans[65536];
static uint8_t out[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snap = fuzz_dns_snap("fuzz_dns_frame", 4096);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_frame f, g;
	struct dns_query q;
	struct dns_result r = { .buf = ans };

	/* the frame in a buffer of its own size: reads past it are caught */
	uint8_t *pkt = malloc(size ? size : 1);
	memcpy(pkt, data, size);
	memset(&f, 0, sizeof(f));
	int rc = dns_frame_parse(pkt, pkt + size, &f);
	if (rc < 0 || rc >= DNS_FRAME_NRC)
		abort();
	if (rc != DNS_FRAME_OK || dns_frame_check(pkt, &f)) {
		free(pkt);
		return 0;
	}
	if ((size_t)f.payload_off + f.payload_len > size)
		abort(); /* the message must lie inside the frame */
	(void)dns_frame_udp_csum_ok(pkt, &f);
	dns_frame_query(&f, pkt, 1796000000u, &q);
	if (dns_answer(snap, &q, &r) == 0) {
		size_t hl = VM_ETH_HLEN + (size_t)f.l3_len + VM_UDP_HLEN;
		size_t n = dns_frame_reply(out, sizeof(out), &f, r.buf, r.len);
		if (!n) {
			if (hl + r.len <= sizeof(out))
				abort(); /* it fit, yet was not built */
		} else {
			memset(&g, 0, sizeof(g));
			if (n != hl + r.len || dns_frame_parse(out, out + n, &g) != DNS_FRAME_OK || dns_frame_check(out, &g))
				abort();
			if (g.family != f.family || memcmp(g.saddr, f.daddr, 16) || memcmp(g.daddr, f.saddr, 16) ||
			    g.sport != f.dport || g.dport != f.sport || memcmp(g.dst_mac, f.src_mac, 6) ||
			    memcmp(g.src_mac, f.dst_mac, 6))
				abort(); /* not the query's mirror */
			if (g.payload_len != r.len || memcmp(out + g.payload_off, r.buf, r.len))
				abort();
			if (!g.udp_check || !dns_frame_udp_csum_ok(out, &g))
				abort(); /* a bad or missing UDP checksum */
		}
	}
	free(pkt);
	return 0;
}
