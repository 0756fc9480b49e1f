// SPDX-License-Identifier: Apache-2.0
/*
 * veil-gw-dpdk: the gateway on DPDK ports.  Per packet it runs the packet
 * library the XDP programs are built from (include/veil/gw_path.h, gw_asm.h,
 * gw_ret.h: cookie, ClientHello parser, routes, flows, Geneve handoff,
 * return path, outcome counters) over its own tables (dataplane/fp_env.c);
 * tests/test_fastpath.c holds the bytes identical.
 *
 * Threads: the main lcore is the control plane (config file, cookie secret
 * rotation, next hops from the kernel, control socket for veilctl,
 * Prometheus metrics, DPDK telemetry); every other lcore is a worker that
 * polls one RX queue of each port in bursts.  Each worker owns the flows
 * whose key hashes to it (vm_fp_flow_hash): a packet that RSS put on
 * another worker's queue is handed to its owner through a ring, so a flow's
 * state is only ever touched by one lcore and needs no locks.  The config
 * reaches workers as read-only generations (struct vm_fp_conf) swapped by
 * pointer; an old one is freed once every worker has moved past it.
 * Nothing is allocated on the packet path.  See docs/dpdk.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include "veil.h"
#include "dp.h"

#define RX_DESC    1024
#define TX_DESC    1024

static struct app {
	const char *config;
	struct vm_gw_cfg cfg;
	char port_name[4][RTE_ETH_NAME_MAX_LEN];
	uint8_t port_mac[4][6];
	struct rte_mempool *pool;
	uint64_t epoch, started, rotations, route_changes, reloads_ok, reloads_rejected, generations;
	struct vm_next_hop hops[VM_NEXT_HOPS_MAX];
	int nhops;
	uint32_t flows_per_worker;
	uint32_t mbufs;
} A;

/* Ports 0-1: client, mesh; 2-3: their exception ports. */
static const char *const port_role[4] = { "client", "mesh", "client exception", "mesh exception" };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: veil-gw-dpdk [EAL options] -- --config FILE [options]\n"
		"\n"
		"The veilmesh gateway on DPDK ports: SYN cookies, SNI routing of each\n"
		"connection to the node hosting its VM over Geneve, and the return path,\n"
		"the same as veil-gw does in XDP (same config file, same secret, same\n"
		"counters).  Port 0 faces the clients, port 1 the mesh, unless told.\n"
		"\n"
		"  -c, --config FILE       gateway config file (docs/veil-gw.conf.example);\n"
		"                          client_interface / mesh_interface name the kernel\n"
		"                          interfaces the ports stand for (next hops to nodes)\n"
		"      --client-port N     DPDK port id facing the clients (default 0)\n"
		"      --mesh-port N       DPDK port id facing the nodes (default 1)\n"
		"      --idle-us N         sleep N us when a worker has seen nothing for 1000\n"
		"                          polls (default 0: poll all the time)\n"
		"      --client-exception-port N, --mesh-exception-port N\n"
		"                          DPDK ports (a net_tap each) that take what is not\n"
		"                          the gateway's (ARP, ND, traffic to the host) to the\n"
		"                          kernel, and send what the kernel sends there; needed\n"
		"                          when the NIC is DPDK's alone (not with net_af_packet)\n"
		"      --mbufs N           mbufs in the pool (default: enough for the queues;\n"
		"                          net_pcap's infinite_rx holds its whole file in mbufs)\n"
		"  -n, --check             check the config file and exit\n"
		"      --pidfile FILE      write the pid to FILE once running (removed at exit)\n"
		"  -h, --help              this text\n"
		"\n"
		"Lcores: the main lcore runs the control plane, every other one is a worker\n"
		"with one RX and one TX queue on each port (-l 0-2: two workers).\n"
		"Without NICs or hugepages, e.g.:\n"
		"  veil-gw-dpdk --no-huge -m 512 --no-pci -l 0-1 \\\n"
		"     --vdev net_af_packet0,iface=eth0,qpairs=1 --vdev net_af_packet1,iface=eth1,qpairs=1 \\\n"
		"     -- --config /etc/veilmesh/veil-gw.conf\n"
		"Control: SIGHUP or `reload` on control_socket re-reads the config; veilctl\n"
		"status, stats, routes and flows (read through the socket), routes\n"
		"add|replace|del and flows drop work as with veil-gw.  Telemetry:\n"
		"dpdk-telemetry.py -f PREFIX, commands /veil/stats, /veil/dp, /veil/status,\n"
		"/veil/lcore,N.  Exit codes: 0 ok, 1 runtime failure, 2 bad usage, EAL\n"
		"arguments, ports or config.\n");
}

/* ---------- config generations ---------- */

static void free_conf(struct vm_fp_conf *c);

/* Builds a generation from the config, the secret file and the resolved
 * next hops; NULL with a log line when the secret cannot be read or memory
 * runs out. */
static struct vm_fp_conf *build_conf(void)
{
	struct vm_fp_conf *c = calloc(1, sizeof(*c));
	uint8_t master[64];
	size_t mlen = 0;
	char err[512];

	if (!c || vm_fp_conf_set(c, &A.cfg)) {
		free(c);
		vm_log("event=conf_failed reason=\"out of memory\"");
		return NULL;
	}
	if (vm_secret_read(A.cfg.secret_file, master, &mlen, err, sizeof(err))) {
		vm_log("event=secret_error reason=\"%s\"", err);
		vm_fp_conf_free(c);
		free(c);
		return NULL;
	}
	vm_secret_derive(master, mlen, vm_tai_seconds(), A.cfg.rotate_s, &c->sec);
	OPENSSL_cleanse(master, sizeof(master));
	for (int r = 0; r < 2; r++)
		memcpy(c->port_mac[vm_dp.port[r] & 7], A.port_mac[r], 6);
	static struct vm_fp_neigh nbs[VM_FP_MAX_NEIGH];   /* the main lcore's alone */
	int n = 0;
	for (int i = 0; i < A.nhops && n < VM_FP_MAX_NEIGH; i++) {
		const struct vm_next_hop *h = &A.hops[i];
		int r = !strcmp(h->dev, A.cfg.client_if) ? 0 : !strcmp(h->dev, A.cfg.mesh_if) ? 1 : -1;
		if (!h->resolved || r < 0)
			continue;
		struct vm_fp_neigh *nb = &nbs[n++];
		memcpy(nb->addr, h->node, 16);
		memcpy(nb->mac, h->mac, 6);
		nb->port = vm_dp.port[r];
		nb->mtu = h->mtu;
	}
	if (vm_fp_conf_neigh_set(c, nbs, n)) {
		vm_log("event=conf_failed reason=\"out of memory\"");
		free_conf(c);
		return NULL;
	}
	return c;
}

static void free_conf(struct vm_fp_conf *c)
{
	if (!c)
		return;
	OPENSSL_cleanse(&c->sec, sizeof(c->sec));
	vm_fp_conf_free(c);
	free(c);
}

/* Swaps in a new generation; the old one is freed once no worker can be
 * using it (each acknowledges the generation at its next poll). */
static void publish(struct vm_fp_conf *c)
{
	free_conf(vm_dp_publish(c));
	A.generations++;
	if (c->sec.epoch != A.epoch) {
		if (A.epoch)
			A.rotations++;
		A.epoch = c->sec.epoch;
		vm_log("event=cookie_secret epoch=%llu rotate_s=%u", (unsigned long long)A.epoch, A.cfg.rotate_s);
	}
}

static int same_neigh(const struct vm_next_hop *a, int na, const struct vm_next_hop *b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (memcmp(a[i].node, b[i].node, 16) || memcmp(a[i].mac, b[i].mac, 6) ||
		    a[i].resolved != b[i].resolved || a[i].mtu != b[i].mtu || strcmp(a[i].dev, b[i].dev))
			return 0;
	return 1;
}

/* Route and link changes: the nodes' routes are asked again only after one
 * (or at start and reload: force), not every second (one RTM_GETROUTE per
 * node: ~80 ms for 4,096).  The main lcore's alone. */
static struct vm_route_watch route_watch;

/* Next hops from the kernel; a new generation when a MAC or route moved. */
static void refresh_neighbours(bool manage, bool force)
{
	static struct vm_next_hop h[VM_NEXT_HOPS_MAX];   /* the main lcore's alone */
	static time_t last_managed;
	int n;

	if (force || manage || vm_route_watch_changed(&route_watch)) {
		n = vm_next_hops(&A.cfg, h, VM_NEXT_HOPS_MAX, manage);   /* with manage, resolved too */
	} else {
		n = A.nhops;
		memcpy(h, A.hops, (size_t)n * sizeof(*h));
	}
	int found = 0;
	if (manage) {
		for (int i = 0; i < n; i++)
			found += h[i].resolved;
	} else {
		found = vm_neigh_resolve(h, n);
	}
	if (found < n && !manage && time(NULL) - last_managed >= 5) {
		/* a next hop the kernel does not resolve (yet): have it manage
		 * the entry, e.g. when the interface got its address after us */
		last_managed = time(NULL);
		n = vm_next_hops(&A.cfg, h, VM_NEXT_HOPS_MAX, true);
	}
	if (!force && same_neigh(h, n, A.hops, A.nhops))
		return;
	memcpy(A.hops, h, sizeof(h));
	A.nhops = n;
	for (int i = 0; i < n; i++) {
		char node[64];
		vm_addr_str(h[i].node, node, sizeof(node));
		if (h[i].resolved)
			vm_log("event=next_hop node=%s dev=%s mtu=%u mac=%02x:%02x:%02x:%02x:%02x:%02x", node, h[i].dev, h[i].mtu,
			       h[i].mac[0], h[i].mac[1], h[i].mac[2], h[i].mac[3], h[i].mac[4], h[i].mac[5]);
		else
			vm_log("event=next_hop node=%s dev=%s unresolved=1", node, h[i].dev);
	}
	struct vm_fp_conf *c = build_conf();
	if (c)
		publish(c);
}

/* the cluster store's routes feed veil-gw only: a config with 'store' is
 * refused here (at start and at reload), not ignored */
static int store_refused(const struct vm_gw_cfg *c, char *err, size_t errlen)
{
	if (!c->store_urls[0])
		return 0;
	snprintf(err, errlen, "%s: 'store' is not supported by veil-gw-dpdk (routes come from the file and veilctl "
			      "here); use veil-gw for routes from the cluster store", c->path);
	return -1;
}

static int reload_config(char *err, size_t errlen, int *changes)
{
	struct vm_gw_cfg nc;

	*changes = 0;
	if (vm_gw_cfg_load(A.config, &nc, err, errlen) || vm_gw_cfg_check_host(&nc, false, err, errlen) ||
	    store_refused(&nc, err, errlen)) {
		if (nc.routes)
			vm_gw_cfg_free(&nc);
		A.reloads_rejected++;
		vm_log("event=reload_rejected reason=\"%s\"", err);
		return -1;
	}
	if (strcmp(nc.client_if, A.cfg.client_if) || strcmp(nc.mesh_if, A.cfg.mesh_if) ||
	    nc.flows_max != A.cfg.flows_max)
		vm_log("event=reload_warning reason=\"interfaces and flows_max change only on restart\"");
	/* what changed, counted as veil-gw counts map writes: routes added or
	 * changed (looked up in the current generation), and routes gone */
	const struct vm_fp_conf *cur = atomic_load(&vm_dp.conf);
	struct vm_fp_conf next = { 0 };
	if (vm_fp_conf_set(&next, &nc) == 0) {
		for (int i = 0; i < nc.nroutes; i++) {
			const struct route_val *o = vm_fp_conf_route(cur, nc.routes[i].key.name);
			*changes += !o || memcmp(o, &nc.routes[i].val, sizeof(*o));
		}
		for (int j = 0; j < A.cfg.nroutes; j++)
			*changes += !vm_fp_conf_route(&next, A.cfg.routes[j].key.name);
		vm_fp_conf_free(&next);
	}
	if (nc.nvips != A.cfg.nvips || memcmp(nc.vips, A.cfg.vips, sizeof(nc.vips)) ||
	    memcmp(&nc.dp, &A.cfg.dp, sizeof(nc.dp)))
		(*changes)++;
	struct vm_gw_cfg old = A.cfg;
	A.cfg = nc;
	struct vm_fp_conf *c = build_conf();
	if (!c) {
		A.cfg = old;
		vm_gw_cfg_free(&nc);
		A.reloads_rejected++;
		snprintf(err, errlen, "cannot build the new configuration (secret file?)");
		return -1;
	}
	publish(c);
	vm_gw_cfg_free(&old);
	A.reloads_ok++;
	A.route_changes += *changes;
	refresh_neighbours(true, false);
	vm_log("event=config_reloaded routes=%d vips=%d changes=%d", A.cfg.nroutes, A.cfg.nvips, *changes);
	return 0;
}

/* ---------- counters (control thread, telemetry thread) ---------- */

/* Flows in use, per worker and in all. */
static uint64_t flow_count(uint32_t *per)
{
	uint64_t total = 0;
	for (int i = 0; i < vm_dp.nw; i++) {
		uint32_t n = vm_fp_flow_count(&vm_dp.w[i]->fp);
		if (per)
			per[i] = n;
		total += n;
	}
	return total;
}

/* A counter of the workers' tables (struct vm_fp, at byte off), summed. */
static uint64_t fp_sum(size_t off)
{
	uint64_t total = 0;
	for (int i = 0; i < vm_dp.nw; i++)
		total += __atomic_load_n((uint64_t *)((uint8_t *)&vm_dp.w[i]->fp + off), __ATOMIC_RELAXED);
	return total;
}

/* Flows the workers' sweeps have retired (closed or reset), in all. */
static uint64_t flows_retired(void)
{
	return fp_sum(offsetof(struct vm_fp, retired));
}

/* Halves of the workers' flow filters their sweeps have rebuilt. */
static uint64_t filter_rebuilds(void)
{
	return fp_sum(offsetof(struct vm_fp, bits_rebuilt));
}

/* The share of the workers' flow filter bits set (either half), as
 * veil-gw's veilmesh_gw_flow_filter_fill. */
static double filter_fill(void)
{
	uint64_t set = 0, all = 0;
	for (int i = 0; i < vm_dp.nw; i++) {
		const struct vm_fp *fp = &vm_dp.w[i]->fp;
		set += vm_flow_bits_set_count(fp->bits, 1u << fp->bits_log2);
		all += 64ULL << fp->bits_log2;
	}
	return all ? (double)set / (double)all : 0;
}

static int tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct gw_stats s;
	struct vm_dp_stats dp;
	vm_dp_sum(&s, &dp);
	rte_tel_data_start_dict(d);
	for (int k = 0; k < vm_gw_stat_count; k++)
		rte_tel_data_add_dict_u64(d, vm_gw_stat_names[k], ((uint64_t *)&s)[k]);
	return 0;
}

static int tel_dp(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct gw_stats s;
	struct vm_dp_stats dp;
	vm_dp_sum(&s, &dp);
	rte_tel_data_start_dict(d);
	for (size_t k = 0; k < VM_DP_STAT_COUNT; k++)
		rte_tel_data_add_dict_u64(d, vm_dp_stat_names[k], ((uint64_t *)&dp)[k]);
	return 0;
}

static int tel_lcore(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char *end;
	if (!params || !*params)
		return -1;
	long i = strtol(params, &end, 10);
	if (*end || i < 0 || i >= vm_dp.nw)
		return -1;
	const struct vm_dp_worker *w = vm_dp.w[i];
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "lcore", (int)w->lcore);
	rte_tel_data_add_dict_int(d, "queue", w->q);
	for (int k = 0; k < vm_gw_stat_count; k++)
		rte_tel_data_add_dict_u64(d, vm_gw_stat_names[k], ((const uint64_t *)&w->fp.st)[k]);
	for (size_t k = 0; k < VM_DP_STAT_COUNT; k++)
		rte_tel_data_add_dict_u64(d, vm_dp_stat_names[k], ((const uint64_t *)&w->d)[k]);
	return 0;
}

static int tel_status(const char *cmd, const char *params, struct rte_tel_data *d)
{
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "workers", vm_dp.nw);
	rte_tel_data_add_dict_int(d, "client_port", vm_dp.port[0]);
	rte_tel_data_add_dict_int(d, "mesh_port", vm_dp.port[1]);
	rte_tel_data_add_dict_int(d, "routes", A.cfg.nroutes);
	rte_tel_data_add_dict_int(d, "vips", A.cfg.nvips);
	rte_tel_data_add_dict_u64(d, "cookie_epoch", A.epoch);
	rte_tel_data_add_dict_u64(d, "generation", atomic_load(&vm_dp.gen));
	rte_tel_data_add_dict_u64(d, "flows_capacity", (uint64_t)A.flows_per_worker * vm_dp.nw);
	rte_tel_data_add_dict_u64(d, "flows_retired", flows_retired());
	rte_tel_data_add_dict_u64(d, "flow_filter_rebuilds", filter_rebuilds());
	return 0;
}

/* ---------- control socket and metrics (same requests as veil-gw) ---------- */

static void status_json(FILE *out)
{
	/* the epoch's key before its age is told (the main loop rotates within a second) */
	if (vm_tai_seconds() / A.cfg.rotate_s != A.epoch) {
		struct vm_fp_conf *c = build_conf();
		if (c)
			publish(c);
	}
	uint32_t per[VM_DP_MAX_WORKERS];
	uint64_t flows = flow_count(per);

	fprintf(out, "{\"daemon\": \"veil-gw-dpdk\", \"pid\": %d, \"uptime_s\": %llu, \"config\": ", getpid(),
		(unsigned long long)(time(NULL) - A.started));
	vm_json_str(out, A.config);
	fputs(", \"ports\": [", out);
	for (int r = 0; r < 4; r++) {
		uint16_t port = r < 2 ? vm_dp.port[r] : vm_dp.exc[r - 2];
		if (port == VM_DP_NO_PORT)
			continue;
		fprintf(out, "%s{\"role\": \"%s\", \"port\": %u, \"device\": ", r ? ", " : "", port_role[r], port);
		vm_json_str(out, A.port_name[r]);
		fputs(", \"stands_for\": ", out);
		vm_json_str(out, r % 2 ? A.cfg.mesh_if : A.cfg.client_if);
		fputs("}", out);
	}
	fputs("], \"workers\": [", out);
	for (int i = 0; i < vm_dp.nw; i++)
		fprintf(out, "%s{\"lcore\": %u, \"queue\": %u, \"flows\": %u}", i ? ", " : "", vm_dp.w[i]->lcore,
			vm_dp.w[i]->q, per[i]);
	/* the key's age from the generation the workers use */
	const struct vm_fp_conf *cur = atomic_load(&vm_dp.conf);
	uint64_t tai = vm_tai_seconds();
	if (cur && cur->sec.rotate_s && tai >= cur->sec.epoch * cur->sec.rotate_s)
		fprintf(out, "], \"cookie_age_s\": %llu",
			(unsigned long long)(tai - cur->sec.epoch * cur->sec.rotate_s));
	else
		fputs("], \"cookie_age_s\": null", out);
	fprintf(out, ", \"routes\": %d, \"vips\": %d, \"next_hops\": %d, \"cookie_epoch\": %llu, "
		"\"cookie_rotate_s\": %u, \"cookie_rotations\": %llu, \"route_changes\": %llu, "
		"\"reloads_ok\": %llu, \"reloads_rejected\": %llu, \"generation\": %llu, "
		"\"flows\": {\"entries\": %llu, \"capacity\": %llu, \"retired\": %llu}}\n",
		A.cfg.nroutes, A.cfg.nvips, A.nhops, (unsigned long long)A.epoch, A.cfg.rotate_s,
		(unsigned long long)A.rotations, (unsigned long long)A.route_changes,
		(unsigned long long)A.reloads_ok, (unsigned long long)A.reloads_rejected,
		(unsigned long long)atomic_load(&vm_dp.gen), (unsigned long long)flows,
		(unsigned long long)A.flows_per_worker * vm_dp.nw, (unsigned long long)flows_retired());
}

static void flow_drop(char **w, int n, FILE *out)
{
	struct flow_tuple t = { 0 };
	struct flow_key k;
	int f1 = vm_addr_parse(w[0], t.client), f2 = vm_addr_parse(w[2], t.vip);
	unsigned long cp = strtoul(w[1], NULL, 10), vp = strtoul(w[3], NULL, 10);

	if (!f1 || f1 != f2 || !cp || cp > 65535 || !vp || vp > 65535) {
		vm_ctl_answer(out, 0, "usage: flow drop CLIENT PORT VIP PORT (same family)", 0);
		return;
	}
	t.client_port_be = htons(cp);
	t.vip_port_be = htons(vp);
	t.family = f1;
	vm_fp_tuple_key(&t, &k);
	struct vm_dp_worker *o = vm_dp.w[vm_fp_flow_hash(&k) % (unsigned int)vm_dp.nw];
	o->drop_tuple = t;
	atomic_store_explicit(&o->drop_req, 1, memory_order_release);
	for (int t = 0; t < 100000 && atomic_load_explicit(&o->drop_req, memory_order_acquire) != 2; t++)
		usleep(10);
	int found = atomic_load(&o->drop_req) == 2 && o->drop_found;
	atomic_store(&o->drop_req, 0);
	if (!found) {
		vm_ctl_answer(out, 0, "no such flow", 0);
		return;
	}
	vm_log("event=flow_dropped client=%s port=%lu vip=%s vport=%lu source=veilctl", w[0], cp, w[2], vp);
	vm_ctl_answer(out, 1, NULL, 1);
}

/* veilctl's listings and counters: what veil-gw's pinned maps give it.
 * The flows are read from the workers' tables while they run: a snapshot
 * that may miss or half-show an entry changing at that instant (reads of
 * plain memory that stays allocated; nothing is written). */
static void routes_json(FILE *out)
{
	char nb[64];

	fputs("[", out);
	for (int i = 0; i < A.cfg.nroutes; i++) {
		fprintf(out, "%s{\"name\": ", i ? ", " : "");
		vm_json_str(out, A.cfg.routes[i].key.name);
		fprintf(out, ", \"vm_id\": %u, \"node\": \"%s\"}", A.cfg.routes[i].val.vm_id,
			vm_addr_str(A.cfg.routes[i].val.node, nb, sizeof(nb)));
	}
	fputs("]\n", out);
}

static void flows_json(FILE *out)
{
	struct timespec ts;
	char a1[64], a2[64], a3[64];
	int n = 0;

	clock_gettime(CLOCK_TAI, &ts);
	uint64_t now = ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	fputs("[", out);
	for (int w = 0; w < vm_dp.nw; w++) {
		const struct vm_fp *fp = &vm_dp.w[w]->fp;
		for (uint32_t i = 0; i < fp->flows_cap; i++) {
			const struct vm_fp_flow *f = &fp->flows[i];
			if (!f->s.used)
				continue;
			struct flow_key k = f->s.key;
			struct flow_val v = f->val;
			double age = now > v.created_ns ? (now - v.created_ns) / 1e9 : 0;
			fprintf(out, "%s{\"client\": \"%s\", \"client_port\": %u, \"vip\": \"%s\", \"vip_port\": %u, "
				"\"vm_id\": %u, \"node\": \"%s\", \"age_s\": %.1f, \"worker\": %d, \"fin\": \"%s\", "
				"\"cli_nxt\": %u, \"vm_ack\": %u, \"held\": %u, \"held_lost\": %s}", n++ ? ", " : "",
				vm_addr_str(v.client, a1, sizeof(a1)), ntohs(k.client_port_be),
				vm_addr_str(v.vip, a2, sizeof(a2)), ntohs(k.vip_port_be), ntohl(v.handoff.vm_id_be),
				vm_addr_str(v.node, a3, sizeof(a3)), age, w, vm_fin_name(v.fin), v.cli_nxt, v.vm_ack,
				v.held_len & VM_HELD_LEN_MASK, v.held_len & VM_HELD_LOST ? "true" : "false");
		}
	}
	fputs("]\n", out);
}

static void stats_json(FILE *out)
{
	struct gw_stats s;
	struct vm_dp_stats dp;

	vm_dp_sum(&s, &dp);
	fputs("{", out);
	for (int i = 0; i < vm_gw_stat_count; i++)
		fprintf(out, "%s\"%s\": %llu", i ? ", " : "", vm_gw_stat_names[i], (unsigned long long)((uint64_t *)&s)[i]);
	fputs("}\n", out);
}

static void gw_cmd(void *arg, const char *line, FILE *out)
{
	char copy[1024], *w[8], *save, err[512] = "";
	int n = 0, changes = 0;

	snprintf(copy, sizeof(copy), "%s", line);
	for (char *t = strtok_r(copy, " \t", &save); t && n < 8; t = strtok_r(NULL, " \t", &save))
		w[n++] = t;
	if (n == 1 && !strcmp(w[0], "status")) {
		status_json(out);
	} else if (n == 1 && !strcmp(w[0], "routes")) {
		routes_json(out);
	} else if (n == 1 && !strcmp(w[0], "flows")) {
		flows_json(out);
	} else if (n == 1 && !strcmp(w[0], "stats")) {
		stats_json(out);
	} else if (n == 1 && !strcmp(w[0], "reload")) {
		int rc = reload_config(err, sizeof(err), &changes);
		vm_ctl_answer(out, rc == 0, err, changes);
	} else if (n >= 2 && !strcmp(w[0], "route") &&
		   (!strcmp(w[1], "add") || !strcmp(w[1], "replace") || !strcmp(w[1], "del"))) {
		int rc = vm_gw_cfg_edit_route(A.config, w[1], w + 2, n - 2, err, sizeof(err));
		if (!rc)
			rc = reload_config(err, sizeof(err), &changes);
		vm_ctl_answer(out, rc == 0, err, changes);
	} else if (n == 6 && !strcmp(w[0], "flow") && !strcmp(w[1], "drop")) {
		flow_drop(w + 2, n - 2, out);
	} else {
		vm_ctl_answer(out, 0, "unknown request (status, routes, flows, stats, reload, route add|replace|del, "
			      "flow drop)", 0);
	}
}

static void gw_metrics(void *arg, FILE *out)
{
	struct gw_stats s;
	struct vm_dp_stats dp;

	vm_dp_sum(&s, &dp);
	fputs("# HELP veilmesh_gw_packets_total Packets by outcome (docs/malformed-input.md, docs/design.md).\n"
	      "# TYPE veilmesh_gw_packets_total counter\n", out);
	for (int i = 0; i < vm_gw_stat_count; i++)
		fprintf(out, "veilmesh_gw_packets_total{outcome=\"%s\"} %llu\n", vm_gw_stat_names[i],
			(unsigned long long)((uint64_t *)&s)[i]);
	fputs("# HELP veilmesh_gw_dpdk_packets_total DPDK workers' packet handling (docs/dpdk.md).\n"
	      "# TYPE veilmesh_gw_dpdk_packets_total counter\n", out);
	for (size_t i = 0; i < VM_DP_STAT_COUNT; i++)
		fprintf(out, "veilmesh_gw_dpdk_packets_total{what=\"%s\"} %llu\n", vm_dp_stat_names[i],
			(unsigned long long)((uint64_t *)&dp)[i]);
	fprintf(out, "# HELP veilmesh_gw_flows Flows in the flow table.\n# TYPE veilmesh_gw_flows gauge\n"
		     "veilmesh_gw_flows %llu\n", (unsigned long long)flow_count(NULL));
	fprintf(out, "# HELP veilmesh_gw_flows_retired_total Closed or reset flows removed by the sweep.\n"
		     "# TYPE veilmesh_gw_flows_retired_total counter\nveilmesh_gw_flows_retired_total %llu\n",
		(unsigned long long)flows_retired());
	fprintf(out, "# HELP veilmesh_gw_flow_filter_fill Share of the flow tables' filter bits set (either half); "
		     "its fourth power is about the share of unknown tuples looked for past their first slot.\n"
		     "# TYPE veilmesh_gw_flow_filter_fill gauge\nveilmesh_gw_flow_filter_fill %.6f\n",
		filter_fill());
	fprintf(out, "# HELP veilmesh_gw_flow_filter_rebuilds_total Halves of the flow tables' filters rebuilt by the sweep.\n"
		     "# TYPE veilmesh_gw_flow_filter_rebuilds_total counter\nveilmesh_gw_flow_filter_rebuilds_total %llu\n",
		(unsigned long long)filter_rebuilds());
	fprintf(out, "# HELP veilmesh_gw_routes Routes configured.\n# TYPE veilmesh_gw_routes gauge\nveilmesh_gw_routes %d\n",
		A.cfg.nroutes);
	fprintf(out, "# HELP veilmesh_gw_cookie_rotations_total Cookie key rotations since start.\n"
		     "# TYPE veilmesh_gw_cookie_rotations_total counter\nveilmesh_gw_cookie_rotations_total %llu\n",
		(unsigned long long)A.rotations);
	fprintf(out, "# HELP veilmesh_gw_route_changes_total Route and VIP entries changed since start.\n"
		     "# TYPE veilmesh_gw_route_changes_total counter\nveilmesh_gw_route_changes_total %llu\n",
		(unsigned long long)A.route_changes);
	vm_metrics_daemon(out, A.reloads_ok, A.reloads_rejected, A.started);
}

/* ---------- ports ---------- */

static int port_setup(int r)
{
	uint16_t port = r < 2 ? vm_dp.port[r] : vm_dp.exc[r - 2];
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf = { 0 };
	struct rte_ether_addr mac;
	int rc;

	if (!rte_eth_dev_is_valid_port(port)) {
		fprintf(stderr, "veil-gw-dpdk: no port %u for the %s side: %u port(s) found; give them with --vdev "
			"(e.g. net_af_packet0,iface=eth0, net_tap0,iface=veil0) or -a PCI_ADDRESS\n", port, port_role[r],
			rte_eth_dev_count_avail());
		return 2;
	}
	rte_eth_dev_get_name_by_port(port, A.port_name[r]);
	if ((rc = rte_eth_dev_info_get(port, &info))) {
		fprintf(stderr, "veil-gw-dpdk: port %u (%s): %s\n", port, A.port_name[r], rte_strerror(-rc));
		return 1;
	}
	if (info.max_rx_queues < vm_dp.nw || info.max_tx_queues < vm_dp.nw) {
		fprintf(stderr, "veil-gw-dpdk: port %u (%s) has %u RX / %u TX queues, %d workers need %d each "
			"(net_af_packet: qpairs=%d; or fewer lcores)\n", port, A.port_name[r], info.max_rx_queues,
			info.max_tx_queues, vm_dp.nw, vm_dp.nw, vm_dp.nw);
		return 2;
	}
	if (vm_dp.nw > 1 && info.flow_type_rss_offloads && r < 2) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) &
						   info.flow_type_rss_offloads;
	}
	if ((rc = rte_eth_dev_configure(port, vm_dp.nw, vm_dp.nw, &conf))) {
		fprintf(stderr, "veil-gw-dpdk: port %u (%s): configure: %s\n", port, A.port_name[r], rte_strerror(-rc));
		return 1;
	}
	uint16_t rxd = RX_DESC, txd = TX_DESC;
	rte_eth_dev_adjust_nb_rx_tx_desc(port, &rxd, &txd);
	for (int q = 0; q < vm_dp.nw; q++) {
		rc = rte_eth_rx_queue_setup(port, q, rxd, rte_eth_dev_socket_id(port), NULL, A.pool);
		if (!rc)
			rc = rte_eth_tx_queue_setup(port, q, txd, rte_eth_dev_socket_id(port), NULL);
		if (rc) {
			fprintf(stderr, "veil-gw-dpdk: port %u (%s): queue %d: %s\n", port, A.port_name[r], q,
				rte_strerror(-rc));
			return 1;
		}
	}
	if ((rc = rte_eth_dev_start(port))) {
		fprintf(stderr, "veil-gw-dpdk: port %u (%s): start: %s\n", port, A.port_name[r], rte_strerror(-rc));
		return 1;
	}
	rte_eth_promiscuous_enable(port);
	rte_eth_macaddr_get(port, &mac);
	memcpy(A.port_mac[r], mac.addr_bytes, 6);
	return 0;
}

/* The application's own options (after --), beside the skeleton's
 * --config, --check, --pidfile and --help (common/daemon.h). */
static const struct option dpdk_opts[] = {
	{ "client-port", required_argument, NULL, 'C' },
	{ "mesh-port", required_argument, NULL, 'M' },
	{ "idle-us", required_argument, NULL, 'I' },
	{ "mbufs", required_argument, NULL, 'B' },
	{ "client-exception-port", required_argument, NULL, 'X' },
	{ "mesh-exception-port", required_argument, NULL, 'Y' },
	{ 0 },
};

static int dpdk_opt(void *arg, int o, const char *val)
{
	char *end;
	const char *name = "";

	for (const struct option *e = dpdk_opts; e->name; e++)
		if (e->val == o)
			name = e->name;
	unsigned long v = strtoul(val, &end, 10);
	if (*end || !*val || v > (o == 'B' ? 4000000UL : 65535UL)) {
		fprintf(stderr, "veil-gw-dpdk: --%s wants a number, not '%s'\n", name, val);
		return -1;
	}
	switch (o) {
	case 'C': vm_dp.port[0] = v; break;
	case 'M': vm_dp.port[1] = v; break;
	case 'I': vm_dp.idle_us = v; break;
	case 'B': A.mbufs = v; break;
	case 'X': vm_dp.exc[0] = v; break;
	case 'Y': vm_dp.exc[1] = v; break;
	default: return -1;
	}
	return 0;
}

/* The options after --; returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, struct vm_daemon_opts *opt)
{
	const struct vm_daemon_cli cli = {
		.usage = usage,
		.flags = VM_OPT_CONFIG_OPTIONAL,   /* required, but said with where it goes (below) */
		.extra = dpdk_opts,
		.extra_fn = dpdk_opt,
	};
	int code;

	vm_dp.port[0] = 0;
	vm_dp.port[1] = 1;
	if (vm_daemon_parse(argc, argv, &cli, opt, &code))
		return code;
	A.config = opt->config;
	if (!A.config) {
		fprintf(stderr, "veil-gw-dpdk: --config FILE is required (after --, behind the EAL options)\n");
		return 2;
	}
	if (vm_dp.port[0] == vm_dp.port[1]) {
		fprintf(stderr, "veil-gw-dpdk: the client and mesh ports must differ (both %u)\n", vm_dp.port[0]);
		return 2;
	}
	for (int r = 0; r < 2; r++)
		if (vm_dp.exc[r] != VM_DP_NO_PORT &&
		    (vm_dp.exc[r] == vm_dp.port[0] || vm_dp.exc[r] == vm_dp.port[1] || vm_dp.exc[r] == vm_dp.exc[!r])) {
			fprintf(stderr, "veil-gw-dpdk: the %s exception port %u is already another port\n",
				r ? "mesh" : "client", vm_dp.exc[r]);
			return 2;
		}
	if (vm_dp.port[0] > 7 || vm_dp.port[1] > 7) {
		fprintf(stderr, "veil-gw-dpdk: port ids above 7 are not supported\n");
		return 2;
	}
	return -1;
}

static int help_asked(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	char err[512];
	int rc, changes = 0;
	struct vm_ctl ctl = { .unix_fd = -1, .http_fd = -1 };
	struct vm_daemon_opts opt;

	vm_prog_name = "veil-gw-dpdk";
	if (help_asked(argc, argv)) {
		/* ours, before the EAL would print its own and fail */
		usage(stdout);
		printf("\nEAL options: https://doc.dpdk.org/guides-22.11/linux_gsg/linux_eal_parameters.html\n");
		return 0;
	}
	int nvdev = 0;
	for (int k = 1; k < argc && strcmp(argv[k], "--"); k++)
		nvdev += !strcmp(argv[k], "--vdev") || !strncmp(argv[k], "--vdev=", 7);
	rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		fprintf(stderr, "veil-gw-dpdk: EAL initialisation failed: %s (the EAL's messages above say which "
			"argument; the application's own come after --, see --help)\n", rte_strerror(rte_errno));
		return 2;
	}
	argc -= rc;
	argv += rc;
	argv[0] = "veil-gw-dpdk";
	rc = parse_args(argc, argv, &opt);
	if (rc >= 0)
		goto eal_out;
	if (vm_gw_cfg_load(A.config, &A.cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-gw-dpdk: %s\n", err);
		rc = 2;
		goto eal_out;
	}
	/* the secret as veil-gw checks it (the interfaces here are DPDK ports) */
	if (vm_gw_cfg_check_host(&A.cfg, false, err, sizeof(err))) {
		fprintf(stderr, "veil-gw-dpdk: %s\n", err);
		rc = 2;
		goto cfg_out;
	}
	if (store_refused(&A.cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-gw-dpdk: %s\n", err);
		rc = 2;
		goto cfg_out;
	}
	if (opt.check) {
		printf("%s: ok (%d routes, %d VIPs)\n", A.config, A.cfg.nroutes, A.cfg.nvips);
		rc = 0;
		goto cfg_out;
	}
	vm_dp.nw = (int)rte_lcore_count() - 1;
	if (vm_dp.nw < 1 || vm_dp.nw > VM_DP_MAX_WORKERS) {
		fprintf(stderr, "veil-gw-dpdk: %d lcores: give 2 to %d (-l 0-1 or more): the main lcore runs the "
			"control plane, each other one a worker\n", vm_dp.nw + 1, VM_DP_MAX_WORKERS + 1);
		rc = 2;
		goto cfg_out;
	}
	if ((int)rte_eth_dev_count_avail() < nvdev) {
		fprintf(stderr, "veil-gw-dpdk: %d of the %d --vdev devices could not be used (the EAL's messages "
			"above say why: a missing interface, a driver not installed, bad devargs)\n",
			nvdev - (int)rte_eth_dev_count_avail(), nvdev);
		rc = 2;
		goto cfg_out;
	}
	if (rte_eth_dev_count_avail() < 2) {
		fprintf(stderr, "veil-gw-dpdk: %u port(s) found, 2 needed (client and mesh): give them with --vdev "
			"(e.g. net_af_packet0,iface=eth0 net_af_packet1,iface=eth1) or -a PCI_ADDRESS\n",
			rte_eth_dev_count_avail());
		rc = 2;
		goto cfg_out;
	}
	int nports = 2 + (vm_dp.exc[0] != VM_DP_NO_PORT) + (vm_dp.exc[1] != VM_DP_NO_PORT);
	unsigned int nmbuf = nports * vm_dp.nw * (RX_DESC + TX_DESC) + vm_dp.nw * (VM_DP_INBOX + 4 * VM_DP_BURST) + 2048;
	if (A.mbufs > nmbuf)
		nmbuf = A.mbufs;
	A.pool = rte_pktmbuf_pool_create("veil_mbufs", nmbuf, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (!A.pool) {
		fprintf(stderr, "veil-gw-dpdk: no memory for %u mbufs: %s (raise -m)\n", nmbuf, rte_strerror(rte_errno));
		rc = 1;
		goto cfg_out;
	}
	vm_dp.pool = A.pool;
	for (int r = 0; r < 4; r++)
		if ((r < 2 || vm_dp.exc[r - 2] != VM_DP_NO_PORT) && (rc = port_setup(r)))
			goto ports_out;

	A.flows_per_worker = A.cfg.flows_max / vm_dp.nw ? A.cfg.flows_max / vm_dp.nw : 1024;
	unsigned int lc, i = 0;
	RTE_LCORE_FOREACH_WORKER(lc) {
		if (!(vm_dp.w[i] = vm_dp_worker_new(lc, i, A.flows_per_worker, A.cfg.hellos_max / vm_dp.nw, vm_dp.nw > 1))) {
			fprintf(stderr, "veil-gw-dpdk: worker %u: %s\n", i, rte_strerror(rte_errno));
			rc = 1;
			goto workers_out;
		}
		i++;
	}

	if (vm_daemon_pidfile(opt.pidfile, err, sizeof(err))) {
		fprintf(stderr, "veil-gw-dpdk: pidfile %s\n", err);
		rc = 1;
		goto workers_out;
	}
	if (vm_ctl_open(&ctl, A.cfg.control, A.cfg.metrics, err, sizeof(err))) {
		fprintf(stderr, "veil-gw-dpdk: %s\n", err);
		rc = 1;
		goto workers_out;
	}
	if (vm_route_watch_open(&route_watch))
		vm_log("event=warning reason=\"cannot watch route changes (%s): the nodes' routes are asked every second\"",
		       strerror(errno));
	/* the first generation, before any worker runs */
	refresh_neighbours(true, true);
	if (!atomic_load(&vm_dp.conf)) {
		fprintf(stderr, "veil-gw-dpdk: cannot build the first configuration\n");
		rc = 1;
		goto ctl_out;
	}
	rte_telemetry_register_cmd("/veil/stats", tel_stats,
				   "The gateway's outcome counters, summed over workers. Takes no parameters");
	rte_telemetry_register_cmd("/veil/dp", tel_dp,
				   "The DPDK workers' packet handling counters, summed. Takes no parameters");
	rte_telemetry_register_cmd("/veil/lcore", tel_lcore, "One worker's counters. Parameters: worker index");
	rte_telemetry_register_cmd("/veil/status", tel_status, "Ports, workers, routes, cookie epoch. Takes no parameters");

	vm_daemon_signals();
	A.started = time(NULL);
	for (int k = 0; k < vm_dp.nw; k++)
		rte_eal_remote_launch(vm_dp_worker_loop, vm_dp.w[k], vm_dp.w[k]->lcore);
	vm_log("event=started ports=%s,%s client_port=%u mesh_port=%u workers=%d routes=%d vips=%d control=%s metrics=%s",
	       A.port_name[0], A.port_name[1], vm_dp.port[0], vm_dp.port[1], vm_dp.nw, A.cfg.nroutes, A.cfg.nvips, A.cfg.control,
	       A.cfg.metrics);

	char runtime[400] = "";
	if (vm_runtime_write("veil-gw-dpdk", A.cfg.control, A.config, "", A.cfg.metrics, runtime, sizeof(runtime)))
		vm_log("event=warning reason=\"cannot write the runtime file %s: %s (veilctl will need -s)\"", runtime,
		       strerror(errno));

	time_t last = time(NULL);
	while (!vm_stop_sig) {
		/* a signal, whichever lcore took it, ends the wait at once (the self-pipe) */
		vm_ctl_poll(&ctl, 200, gw_cmd, gw_metrics, NULL);
		if (vm_daemon_signal_take() & VM_SIG_RELOAD)
			reload_config(err, sizeof(err), &changes);
		if (vm_tai_seconds() / A.cfg.rotate_s != A.epoch) {
			struct vm_fp_conf *c = build_conf();
			if (c)
				publish(c);
		}
		if (time(NULL) != last) {
			last = time(NULL);
			refresh_neighbours(false, false);
		}
	}
	vm_dp.quit = 1;
	rte_eal_mp_wait_lcore();
	vm_route_watch_close(&route_watch);
	vm_log("event=stopped signal=%d", (int)vm_stop_sig);
	vm_runtime_remove(runtime);
	rc = 0;
ctl_out:
	vm_ctl_close(&ctl);
workers_out:
	for (int k = 0; k < VM_DP_MAX_WORKERS; k++)
		vm_dp_worker_free(vm_dp.w[k]);
	free_conf(atomic_load(&vm_dp.conf));
ports_out:
	for (int r = 0; r < 4; r++) {
		uint16_t port = r < 2 ? vm_dp.port[r] : vm_dp.exc[r - 2];
		if (port != VM_DP_NO_PORT && rte_eth_dev_is_valid_port(port)) {
			rte_eth_dev_stop(port);
			rte_eth_dev_close(port);
		}
	}
cfg_out:
	vm_gw_cfg_free(&A.cfg);
eal_out:
	rte_eal_cleanup();
	return rc;
}
