/* SPDX-License-Identifier: Apache-2.0 */
/* The query path's snapshot for the DNS fuzzers (fuzz_dns, fuzz_dns_frame):
 * tests/fixtures/dns-test.conf (or $VEIL_FIXTURES) with the small geoip
 * fixtures and the given udp_size, built once; exits on a broken fixture. */
#ifndef VEIL_FUZZ_DNS_SNAP_H
#define VEIL_FUZZ_DNS_SNAP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dns/dns.h"

static struct dns_snap *fuzz_dns_snap(const char *who, int udp_size)
{
	const char *fx = getenv("VEIL_FIXTURES");
	char conf[4096], err[512], tmp[] = "/tmp/fuzz_dns_snap.XXXXXX";
	struct dns_snap *snap;
	uint64_t key[2] = { 1, 2 };
	struct dns_cfg c;
	FILE *in, *o;
	int fd;

	if (!fx)
		fx = "tests/fixtures";
	snprintf(conf, sizeof(conf), "%s/dns-test.conf", fx);
	in = fopen(conf, "re");
	fd = mkstemp(tmp);
	o = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!in || !o) {
		fprintf(stderr, "%s: %s or %s: cannot open\n", who, conf, tmp);
		exit(1);
	}
	while (fgets(err, sizeof(err), in))
		fputs(err, o);
	fprintf(o, "geoip4 %s/dns-geoip\ngeoip6 %s/dns-geoip6\nudp_size %d\n", fx, fx, udp_size);
	fclose(in);
	fclose(o);
	if (dns_cfg_load(tmp, &c, err, sizeof(err)) || !(snap = dns_snap_build(&c, 0, 0, key, err, sizeof(err)))) {
		fprintf(stderr, "%s: %s\n", who, err);
		unlink(tmp);
		exit(1);
	}
	unlink(tmp);
	return snap;
}

#endif
