// SPDX-License-Identifier: Apache-2.0
/*
 * veil-dpdk-baseline: the least a DPDK Geneve forwarder does per packet, as
 * the yardstick tools/bench_dpdk.sh holds veil-gw-dpdk against (issue 19):
 * RX burst, the flow key of each TCP packet (the packet library's parser and
 * 12-byte key, include/veil/pkt.h and flowkey.h, as the gateway has them;
 * the entry's family checked as the gateway checks an IPv4 flow's), one
 * rte_hash_lookup_bulk over the burst, the flow's prebuilt outer Ethernet /
 * IPv4 / UDP / Geneve header copied in front of the inner packet with its
 * lengths and IP checksum patched, one rte_eth_tx_burst per burst.
 *
 * No cookies, no ClientHello, no handoff option, no flow state beyond the
 * header: a flow it has not seen is learnt (added to the hash with its
 * header) on its first packet.  Everything that is not TCP over IP is freed.
 *
 *   veil-dpdk-baseline [EAL options] -- --underlay4 ADDR --node4 ADDR
 *        [--next-hop-mac MAC] [--rx-port N] [--tx-port N] [--flows N] [--mbufs N]
 *
 * One worker lcore (the first after the main one) forwards; the main lcore
 * waits for SIGINT/SIGTERM.  Rates are read as for the others, through DPDK
 * telemetry (/ethdev/stats,N).
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include "veil/gw.h"

#define BURST 32
#define ENCAP_LEN (VM_ETH_HLEN + 20 + VM_UDP_HLEN + VM_GENEVE_HLEN)

/* A flow's outer headers, ready to copy; 64-byte aligned, one per hash slot. */
struct encap {
	uint8_t hdr[ENCAP_LEN];
	uint8_t family;            /* the flow's, checked after the lookup (the gateway's tuple check) */
	uint8_t pad;
	uint32_t csum_base;        /* the outer IP header's sum with tot_len 0 */
} __rte_cache_aligned;

static struct {
	uint16_t rx, tx;
	uint32_t flows, mbufs;
	uint8_t src4[4], node4[4], dmac[6], smac[6];
	struct rte_hash *h;
	struct encap *e;
	struct flow_seed seed;     /* the key's fold for IPv6 (random, as the gateway's) */
	volatile int quit;
	uint64_t fwd, misses, not_tcp, full, tx_dropped;
} B = { .rx = 0, .tx = 1, .flows = 262144, .mbufs = 32768, .dmac = { 2, 0, 0, 0, 0, 0x11 } };

static void on_signal(int s)
{
	(void)s;
	B.quit = 1;
}

static uint32_t sum16(const uint8_t *p, int n)
{
	uint32_t s = 0;
	for (int i = 0; i < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	return s;
}

/* The header a new flow gets: our port's MAC to the next hop, underlay to
 * node, UDP source port from the flow hash (as ECMP wants), Geneve. */
static void encap_build(struct encap *x, uint32_t hash, uint8_t inner_family)
{
	uint8_t *p = x->hdr;

	memset(x, 0, sizeof(*x));
	x->family = inner_family;
	memcpy(p, B.dmac, 6);
	memcpy(p + 6, B.smac, 6);
	p[12] = 0x08;                               /* IPv4 */
	uint8_t *ip = p + VM_ETH_HLEN;
	ip[0] = 0x45;
	ip[6] = 0x40;                               /* DF */
	ip[8] = 64;
	ip[9] = VM_IPPROTO_UDP;
	memcpy(ip + 12, B.src4, 4);
	memcpy(ip + 16, B.node4, 4);
	x->csum_base = sum16(ip, 20);
	uint8_t *udp = ip + 20;
	uint16_t sport = (uint16_t)(49152 | (hash & 0x3fff));
	udp[0] = sport >> 8;
	udp[1] = sport & 0xff;
	udp[2] = VM_GENEVE_PORT >> 8;
	udp[3] = VM_GENEVE_PORT & 0xff;
	uint8_t *g = udp + VM_UDP_HLEN;
	uint16_t proto = inner_family == VM_AF_INET ? VM_GENEVE_PROTO_IP4 : VM_GENEVE_PROTO_IP6;
	g[2] = proto >> 8;
	g[3] = proto & 0xff;
}

/* The inner packet of m (its Ethernet header replaced) into the flow's
 * Geneve header. */
static inline void encap_apply(struct rte_mbuf *m, const struct encap *x)
{
	uint16_t inner = m->data_len - VM_ETH_HLEN;
	uint8_t *p = (uint8_t *)rte_pktmbuf_prepend(m, ENCAP_LEN - VM_ETH_HLEN);

	memcpy(p, x->hdr, ENCAP_LEN);
	uint16_t tot = 20 + VM_UDP_HLEN + VM_GENEVE_HLEN + inner, ulen = VM_UDP_HLEN + VM_GENEVE_HLEN + inner;
	uint32_t s = x->csum_base + tot;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	uint16_t c = (uint16_t)~s;
	uint8_t *ip = p + VM_ETH_HLEN;
	ip[2] = tot >> 8;
	ip[3] = tot & 0xff;
	ip[10] = c >> 8;
	ip[11] = c & 0xff;
	ip[24] = ulen >> 8;
	ip[25] = ulen & 0xff;
}

static int worker(void *arg)
{
	struct rte_mbuf *pkts[BURST], *out[BURST];
	struct flow_key keys[BURST];
	const void *kp[BURST];
	struct rte_mbuf *km[BURST];
	int32_t pos[BURST];
	uint8_t fam[BURST];

	(void)arg;
	for (int i = 0; i < BURST; i++)
		kp[i] = &keys[i];
	while (!B.quit) {
		uint16_t n = rte_eth_rx_burst(B.rx, 0, pkts, BURST), nk = 0, no = 0;
		if (!n)
			continue;
		for (uint16_t i = 0; i < n; i++) {
			struct rte_mbuf *m = pkts[i];
			uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
			struct vm_pkt p;
			if (i + 1 < n)
				rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
			memset(&p, 0, sizeof(p));
			if (m->data_len < VM_ETH_HLEN || rte_pktmbuf_headroom(m) < ENCAP_LEN - VM_ETH_HLEN ||
			    vm_parse_ip_tcp(d, d + m->data_len, m->data_len, VM_ETH_HLEN, ((struct vm_eth *)d)->proto,
					    &p) != VM_PARSE_OK) {
				B.not_tcp++;
				rte_pktmbuf_free(m);
				continue;
			}
			vm_flow_key_of(&p, &B.seed, &keys[nk]);
			fam[nk] = p.family;
			km[nk++] = m;
		}
		if (rte_hash_lookup_bulk(B.h, kp, nk, pos) < 0)
			for (uint16_t i = 0; i < nk; i++)
				pos[i] = -ENOENT;
		for (uint16_t i = 0; i < nk; i++) {
			if (pos[i] < 0) {
				hash_sig_t sig = rte_hash_hash(B.h, &keys[i]);
				pos[i] = rte_hash_add_key_with_hash(B.h, &keys[i], sig);
				if (pos[i] < 0) {
					B.full++;
					rte_pktmbuf_free(km[i]);
					continue;
				}
				encap_build(&B.e[pos[i]], sig, fam[i]);
				B.misses++;
			} else if (B.e[pos[i]].family != fam[i]) {
				B.full++;        /* another family's flow under this key: not served */
				rte_pktmbuf_free(km[i]);
				continue;
			}
			encap_apply(km[i], &B.e[pos[i]]);
			out[no++] = km[i];
		}
		uint16_t sent = rte_eth_tx_burst(B.tx, 0, out, no);
		B.fwd += sent;
		if (sent < no) {
			B.tx_dropped += no - sent;
			rte_pktmbuf_free_bulk(out + sent, no - sent);
		}
	}
	return 0;
}

static int port_up(uint16_t port, struct rte_mempool *pool)
{
	struct rte_eth_conf conf = { 0 };
	uint16_t rxd = 1024, txd = 1024;

	if (!rte_eth_dev_is_valid_port(port) || rte_eth_dev_configure(port, 1, 1, &conf) ||
	    rte_eth_dev_adjust_nb_rx_tx_desc(port, &rxd, &txd) ||
	    rte_eth_rx_queue_setup(port, 0, rxd, rte_eth_dev_socket_id(port), NULL, pool) ||
	    rte_eth_tx_queue_setup(port, 0, txd, rte_eth_dev_socket_id(port), NULL) || rte_eth_dev_start(port)) {
		fprintf(stderr, "veil-dpdk-baseline: port %u cannot be set up (%u ports found)\n", port,
			rte_eth_dev_count_avail());
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: veil-dpdk-baseline [EAL options] -- --underlay4 ADDR --node4 ADDR [--next-hop-mac MAC]\n"
		   "         [--rx-port N] [--tx-port N] [--flows N] [--mbufs N]\n"
		   "The benchmark's baseline: rte_hash bulk lookup of each TCP packet's flow, a prebuilt\n"
		   "Geneve header in front, one TX burst per RX burst (tools/bench_dpdk.sh).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "underlay4", required_argument, NULL, 'u' }, { "node4", required_argument, NULL, 'n' },
		{ "next-hop-mac", required_argument, NULL, 'm' }, { "rx-port", required_argument, NULL, 'r' },
		{ "tx-port", required_argument, NULL, 't' }, { "flows", required_argument, NULL, 'f' },
		{ "mbufs", required_argument, NULL, 'b' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	int o, have = 0;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
	int rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		fprintf(stderr, "veil-dpdk-baseline: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
		return 2;
	}
	argc -= rc;
	argv += rc;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'u': have |= inet_pton(AF_INET, optarg, B.src4) == 1; break;
		case 'n': have |= (inet_pton(AF_INET, optarg, B.node4) == 1) << 1; break;
		case 'm':
			if (sscanf(optarg, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &B.dmac[0], &B.dmac[1], &B.dmac[2], &B.dmac[3],
				   &B.dmac[4], &B.dmac[5]) != 6) {
				fprintf(stderr, "veil-dpdk-baseline: --next-hop-mac wants aa:bb:cc:dd:ee:ff, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'r': B.rx = (uint16_t)atoi(optarg); break;
		case 't': B.tx = (uint16_t)atoi(optarg); break;
		case 'f': B.flows = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'b': B.mbufs = (uint32_t)strtoul(optarg, NULL, 10); break;
		default: usage(stderr); return 2;
		}
	}
	if (have != 3 || B.flows < 8) {
		usage(stderr);
		return 2;
	}
	if (getrandom(&B.seed, sizeof(B.seed), 0) != sizeof(B.seed)) {
		fprintf(stderr, "veil-dpdk-baseline: getrandom failed\n");
		return 1;
	}
	unsigned int lc = rte_get_next_lcore(-1, 1, 0);
	if (lc >= RTE_MAX_LCORE) {
		fprintf(stderr, "veil-dpdk-baseline: needs a worker lcore (-l 0-1)\n");
		return 2;
	}
	struct rte_mempool *pool = rte_pktmbuf_pool_create("base_mbufs", B.mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
							   rte_socket_id());
	struct rte_hash_parameters hp = {
		.name = "base_flows", .entries = B.flows, .key_len = sizeof(struct flow_key),
		.hash_func = rte_hash_crc, .hash_func_init_val = 0, .socket_id = (int)rte_socket_id(),
	};
	B.h = pool ? rte_hash_create(&hp) : NULL;
	/* a position per key slot the hash can hand out (it rounds entries up) */
	B.e = B.h ? rte_zmalloc("base_encap", sizeof(*B.e) * (rte_hash_max_key_id(B.h) + 1), RTE_CACHE_LINE_SIZE) : NULL;
	if (!B.e) {
		fprintf(stderr, "veil-dpdk-baseline: out of memory: %s (raise -m)\n", rte_strerror(rte_errno));
		return 1;
	}
	if (port_up(B.rx, pool) || (B.tx != B.rx && port_up(B.tx, pool)))
		return 2;
	struct rte_ether_addr mac;
	rte_eth_macaddr_get(B.tx, &mac);
	memcpy(B.smac, mac.addr_bytes, 6);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	rte_eal_remote_launch(worker, NULL, lc);
	printf("veil-dpdk-baseline: event=started rx_port=%u tx_port=%u flows=%u lcore=%u\n", B.rx, B.tx, B.flows, lc);
	fflush(stdout);
	while (!B.quit)   /* whichever thread the signal lands on */
		usleep(100000);
	rte_eal_mp_wait_lcore();
	printf("veil-dpdk-baseline: event=stopped forwarded=%llu misses=%llu not_tcp=%llu table_full=%llu tx_dropped=%llu\n",
	       (unsigned long long)B.fwd, (unsigned long long)B.misses, (unsigned long long)B.not_tcp,
	       (unsigned long long)B.full, (unsigned long long)B.tx_dropped);
	rte_eth_dev_stop(B.rx);
	if (B.tx != B.rx)
		rte_eth_dev_stop(B.tx);
	rte_hash_free(B.h);
	rte_free(B.e);
	rte_eal_cleanup();
	return 0;
}
