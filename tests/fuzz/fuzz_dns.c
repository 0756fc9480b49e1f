// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer harness for veil-dns's query path (controlplane/dns/query.c):
 * input = 1 flags byte (bit 0: TCP, bit 1: IPv6 client), 16 bytes of client
 * address, then the query.  The snapshot is built once from
 * tests/fixtures/dns-test.conf with the small geoip fixtures.  Besides
 * ASan/UBSan, every answer must carry the query's ID with QR set, fit the
 * transport, and parse back with ldns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "dns/dns.h"
#include "dns_snap.h"

static struct dns_snap *snap;
static uint8_t out[65536];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snap = fuzz_dns_snap("fuzz_dns", 1232);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_result r = { .buf = out };
	struct dns_query q = { 0 };

	if (size < 17)
		return 0;
	q.tcp = data[0] & 1;
	q.family = data[0] & 2 ? AF_INET6 : AF_INET;
	memcpy(q.addr, data + 1, 16);
	q.now = 1796000000u + data[0];
	/* the query in a buffer of its own size, so reads past it are caught */
	q.len = size - 17;
	uint8_t *pkt = malloc(q.len ? q.len : 1);
	memcpy(pkt, data + 17, q.len);
	q.pkt = pkt;
	int rc = dns_answer(snap, &q, &r);
	if (rc == 0) {
		ldns_pkt *p = NULL;
		if (r.len < 12 || r.len > (q.tcp ? 65535u : 1232u) || memcmp(r.buf, pkt, 2) || !(r.buf[2] & 0x80))
			abort();
		if (ldns_wire2pkt(&p, r.buf, r.len) != LDNS_STATUS_OK)
			abort(); /* we answered something ldns cannot read back */
		ldns_pkt_free(p);
	} else if (r.len || r.drop == DNS_DROP_NONE) {
		abort();
	}
	free(pkt);
	return 0;
}
