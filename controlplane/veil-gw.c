// SPDX-License-Identifier: Apache-2.0
/*
 * veil-gw: the gateway daemon.  Loads and attaches the gateway programs
 * (libxdp), pins their maps, keeps routes and VIPs in step with the config
 * file, rotates the cookie secret, and detaches on stop.  Established flows
 * live in the pinned flows map, so a restart or upgrade keeps them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xdp/libxdp.h>
#include <bpf/bpf.h>
#include <openssl/crypto.h>

#include "veil.h"
#include "veil/flowkey.h"
#include "gw_store.h"
#include "store/store.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: veil-gw --config FILE [options]\n"
		"\n"
		"The veilmesh gateway: answers TLS handshakes to the VIPs with SYN cookies,\n"
		"routes each connection by the ClientHello's SNI to the node hosting the VM,\n"
		"and forwards the flow both ways, all in XDP.\n"
		"\n"
		"  -c, --config FILE     config file (see docs/veil-gw.conf.example)\n"
		"  -n, --check           check the config file and exit\n"
		"  -s, --skb-mode        attach in generic (skb) mode instead of native\n"
		"  -k, --keep-attached   leave the programs attached on exit (upgrade in place)\n"
		"  -v, --verbose         also log libbpf's and libxdp's debug messages\n"
		"      --pidfile FILE    write the pid to FILE while running (removed at exit)\n"
		"  -h, --help            this text\n"
		"\n"
		"Signals: SIGHUP reloads the config (routes and VIPs; a bad file changes\n"
		"nothing), SIGTERM/SIGINT detach and exit.\n"
		"veilctl talks to the daemon on control_socket (default /run/veilmesh/veil-gw.sock);\n"
		"Prometheus metrics are served on 'metrics' (default 127.0.0.1:9431, /metrics).\n"
		"Exit codes: 0 ok, 1 runtime failure (load, attach, maps), 2 bad usage or config.\n");
}

static int forwarding_on(const char *ifname)
{
	char path[128], v = '0';
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", ifname);
	f = fopen(path, "re");
	if (!f)
		return 1;
	if (fread(&v, 1, 1, f) != 1)
		v = '0';
	fclose(f);
	return v == '1';
}

/* Everything the main loop, the control socket and the metrics share. */
struct gw_state {
	const char *config;
	struct vm_gw_cfg cfg;
	struct vm_gw g;
	bool skb;
	__u64 epoch;
	__u64 started;            /* realtime seconds */
	__u64 rotations, route_changes, reloads_ok, reloads_rejected;
	struct vm_sweep sweep;    /* retires closed flows, rebuilds flow_bits */
	int bits_half;            /* the half of flow_bits this pass rebuilds */
	__u64 bits_passes;
	struct gw_store *store;   /* routes from the cluster store ("store" in the config), or NULL */
	time_t store_retry;       /* next attempt to reach the store */
};

static int push_secret(struct vm_gw *g, const struct vm_gw_cfg *c, __u64 *epoch)
{
	__u8 master[64];
	size_t len = 0;
	char err[512];
	struct cookie_secret s;
	__u32 zero = 0;
	int rc;

	if (vm_secret_read(c->secret_file, master, &len, err, sizeof(err))) {
		vm_log("event=secret_error reason=\"%s\"", err);
		return -1;
	}
	vm_secret_derive(master, len, vm_tai_seconds(), c->rotate_s, &s);
	OPENSSL_cleanse(master, sizeof(master));
	rc = bpf_map_update_elem(vm_gw_map_fd(g, "cookie_secret"), &zero, &s, BPF_ANY);
	/* the epoch before the key is wiped: compared with a wiped one (0), the
	 * daemon never learnt its epoch and re-derived the key every second */
	__u64 pushed = s.epoch;
	OPENSSL_cleanse(&s, sizeof(s));
	if (rc)
		return -errno;
	if (*epoch != pushed) {
		vm_log("event=cookie_secret epoch=%llu rotate_s=%u", (unsigned long long)pushed, c->rotate_s);
		*epoch = pushed;
	}
	return 0;
}

/* A new epoch's key as soon as the epoch begins (the main loop asks every
 * second; status asks too, so the age it reports is never past rotate_s). */
static void rotate_if_due(struct gw_state *st)
{
	if (vm_tai_seconds() / st->cfg.rotate_s != st->epoch) {
		__u64 before = st->epoch;
		push_secret(&st->g, &st->cfg, &st->epoch);
		if (st->epoch != before)
			st->rotations++;
	}
}

/* The FIB lookup in XDP needs the nodes' next hops in the neighbour table
 * and cannot resolve them itself (no_neigh counts the misses): each route's
 * next hop becomes a "managed" neighbour entry, which the kernel keeps
 * resolved on its own. */
static struct vm_next_hop gw_hops[VM_NEXT_HOPS_MAX];
static int gw_nhops;
/* Route and link changes (a node's route moved, an interface's MTU): the
 * nodes' routes are asked again after one, and at start and reload. */
static struct vm_route_watch gw_route_watch;

/* XDP takes the next hop's MACs from the next_hops map, not from a FIB
 * lookup per packet: the map follows the kernel's neighbour table, read
 * again every second (and at start and reload), and the nodes' routes,
 * asked again after the kernel tells of a route or link change. */
static void refresh_next_hops(struct gw_state *st, bool now_please, bool resolved)
{
	static time_t last;
	time_t now = time(NULL);
	int ch;

	if (now == last && !now_please)
		return;
	last = now;
	if (!now_please && vm_route_watch_changed(&gw_route_watch)) {
		gw_nhops = vm_next_hops(&st->cfg, gw_hops, VM_NEXT_HOPS_MAX, true);   /* resolved too */
		resolved = true;
		vm_log("event=routes_changed next_hops=%d", gw_nhops);
	}
	if (gw_nhops > 0 && !resolved && vm_neigh_resolve(gw_hops, gw_nhops) < 0)
		return;
	ch = vm_gw_next_hops_sync(&st->g, gw_hops, gw_nhops > 0 ? gw_nhops : 0);
	if (ch > 0)
		vm_log("event=next_hops_changed changes=%d", ch);
}

static void ensure_neighbours(struct gw_state *st)
{
	vm_route_watch_changed(&gw_route_watch);   /* what it said so far: asked now */
	gw_nhops = vm_next_hops(&st->cfg, gw_hops, VM_NEXT_HOPS_MAX, true);
	refresh_next_hops(st, true, true);
}

/* Re-reads the config file and makes the maps match it; a bad file changes
 * nothing.  Returns 0, or -1 with the reason in err. */
static int reload_config(struct gw_state *st, char *err, size_t errlen, int *changes)
{
	struct vm_gw_cfg nc;

	if (vm_gw_cfg_load(st->config, &nc, err, errlen) || vm_gw_cfg_check_host(&nc, false, err, errlen)) {
		if (nc.routes)
			vm_gw_cfg_free(&nc);
		st->reloads_rejected++;
		vm_log("event=reload_rejected reason=\"%s\"", err);
		return -1;
	}
	if (strcmp(nc.client_if, st->cfg.client_if) || strcmp(nc.mesh_if, st->cfg.mesh_if) ||
	    strcmp(nc.pin_root, st->cfg.pin_root) || nc.flows_max != st->cfg.flows_max ||
	    nc.hellos_max != st->cfg.hellos_max)
		vm_log("event=reload_warning reason=\"interfaces, pin_root, flows_max and hellos_max change only on restart\"");
	if (strcmp(nc.store_urls, st->cfg.store_urls) || strcmp(nc.store_pub, st->cfg.store_pub))
		vm_log("event=reload_warning reason=\"store and store_pub change only on restart\"");
	if (st->store ? gw_store_reload(st->store, &nc, changes) : vm_gw_sync(&st->g, &nc, changes)) {
		snprintf(err, errlen, "writing the maps: %s", strerror(errno));
		vm_log("event=reload_failed error=\"%s\"", err);
		vm_gw_cfg_free(&nc);
		st->reloads_rejected++;
		return -1;
	}
	vm_gw_cfg_free(&st->cfg);
	st->cfg = nc;
	/* the secret file or cookie_rotate_s may have changed: the key follows now */
	__u64 before = st->epoch;
	if (!push_secret(&st->g, &st->cfg, &st->epoch) && st->epoch != before)
		st->rotations++;
	st->reloads_ok++;
	st->route_changes += *changes;
	ensure_neighbours(st);
	vm_log("event=config_reloaded routes=%d vips=%d changes=%d", st->cfg.nroutes, st->cfg.nvips, *changes);
	return 0;
}

static void status_json(struct gw_state *st, FILE *out)
{
	struct cookie_secret sec = { 0 };
	__u32 zero = 0;
	char buf[64];
	const struct { const char *name; int ifindex; struct xdp_program *p; } ifs[2] = {
		{ st->cfg.client_if, st->g.if_client, st->g.xp_ing },
		{ st->cfg.mesh_if, st->g.if_mesh, st->g.xp_ret },
	};

	bpf_map_lookup_elem(vm_gw_map_fd(&st->g, "cookie_secret"), &zero, &sec);
	/* the key's age from the key itself (its epoch and period), not from a
	 * config that a reload may have changed before the key followed */
	char age[32] = "null";
	__u64 tai = vm_tai_seconds();
	if (sec.rotate_s && tai >= sec.epoch * sec.rotate_s)
		snprintf(age, sizeof(age), "%llu", (unsigned long long)(tai - sec.epoch * sec.rotate_s));
	fprintf(out, "{\"daemon\": \"veil-gw\", \"pid\": %d, \"uptime_s\": %llu, \"config\": ", getpid(),
		(unsigned long long)(time(NULL) - st->started));
	vm_json_str(out, st->config);
	fputs(", \"pin_root\": ", out);
	vm_json_str(out, st->cfg.pin_root);
	fprintf(out, ", \"mode\": \"%s\", \"programs\": [", st->skb ? "skb" : "native");
	for (int i = 0; i < 2; i++) {
		fprintf(out, "%s{\"interface\": ", i ? ", " : "");
		vm_json_str(out, ifs[i].name);
		fprintf(out, ", \"ifindex\": %d, \"program\": \"%s\", \"prog_id\": %u}", ifs[i].ifindex,
			i ? "gw_return" : "gw_ingress", vm_xdp_prog_id(ifs[i].p));
	}
	fprintf(out, ", {\"interface\": ");
	vm_json_str(out, st->cfg.client_if);
	fprintf(out, ", \"ifindex\": %d, \"program\": \"gw_asm\", \"hook\": \"tc ingress\"}]", st->g.if_client);
	fprintf(out, ", \"routes\": %d, \"vips\": %d, \"cookie_epoch\": %llu, \"cookie_age_s\": %s, "
		"\"cookie_rotate_s\": %u, \"cookie_rotations\": %llu, \"route_changes\": %llu, "
		"\"reloads_ok\": %llu, \"reloads_rejected\": %llu, \"maps\": {",
		st->cfg.nroutes, st->cfg.nvips, (unsigned long long)sec.epoch, age,
		sec.rotate_s ? sec.rotate_s : st->cfg.rotate_s,
		(unsigned long long)st->rotations, (unsigned long long)st->route_changes,
		(unsigned long long)st->reloads_ok, (unsigned long long)st->reloads_rejected);
	const char *maps[] = { "routes", "vips", "flows", "hello_asm", "asm_early" };
	for (int i = 0; i < 5; i++) {
		int fd = vm_gw_map_fd(&st->g, maps[i]);
		fprintf(out, "%s\"%s\": {\"entries\": %ld, \"capacity\": %ld}", i ? ", " : "", maps[i],
			vm_map_count(fd), vm_map_capacity(fd));
	}
	(void)buf;
	fputs("}, \"sweep\": ", out);
	vm_sweep_status(out, &st->sweep);
	fputs(", \"store\": ", out);
	if (st->store)
		gw_store_status(st->store, out);
	else
		fputs(st->cfg.store_urls[0] ? "{\"synced\": false, \"connected\": false}" : "null", out);
	fputs("}\n", out);
}

static void gw_cmd(void *arg, const char *line, FILE *out)
{
	struct gw_state *st = arg;
	char copy[1024], *w[8], *save, err[512] = "";
	int n = 0, changes = 0;

	snprintf(copy, sizeof(copy), "%s", line);
	for (char *t = strtok_r(copy, " \t", &save); t && n < 8; t = strtok_r(NULL, " \t", &save))
		w[n++] = t;
	if (n == 1 && !strcmp(w[0], "status")) {
		rotate_if_due(st);
		status_json(st, out);
	} else if (n == 1 && !strcmp(w[0], "reload")) {
		int rc = reload_config(st, err, sizeof(err), &changes);
		vm_ctl_answer(out, rc == 0, err, changes);
	} else if (n >= 2 && !strcmp(w[0], "route") &&
		   (!strcmp(w[1], "add") || !strcmp(w[1], "replace") || !strcmp(w[1], "del"))) {
		int rc = vm_gw_cfg_edit_route(st->config, w[1], w + 2, n - 2, err, sizeof(err));
		if (!rc)
			rc = reload_config(st, err, sizeof(err), &changes);
		vm_ctl_answer(out, rc == 0, err, changes);
	} else if (n == 6 && !strcmp(w[0], "flow") && !strcmp(w[1], "drop")) {
		struct flow_tuple t = { 0 };
		struct flow_seed seed;
		struct flow_key k;
		struct flow_val v;
		__u32 cp, vp, zero = 0;
		int f1 = vm_addr_parse(w[2], t.client), f2 = vm_addr_parse(w[4], t.vip);
		struct vm_flows *ft = vm_gw_flows(&st->g);
		cp = strtoul(w[3], NULL, 10);
		vp = strtoul(w[5], NULL, 10);
		if (!f1 || f1 != f2 || !cp || cp > 65535 || !vp || vp > 65535) {
			vm_ctl_answer(out, 0, "usage: flow drop CLIENT PORT VIP PORT (same family)", 0);
			return;
		}
		t.client_port_be = htons(cp);
		t.vip_port_be = htons(vp);
		t.family = f1;
		/* the key under the map's own seed; the entry only if it is this tuple's */
		if (bpf_map_lookup_elem(vm_gw_map_fd(&st->g, "flow_seed"), &zero, &seed)) {
			vm_ctl_answer(out, 0, "no flow_seed map", 0);
			return;
		}
		vm_flow_key_tuple(&t, &seed, &k);
		if (!ft || vm_flows_get(ft, &k, &v) || !VM_FLOW_IS(&v, t.family, t.client, t.vip) ||
		    vm_flows_del(ft, &k)) {
			vm_ctl_answer(out, 0, "no such flow", 0);
			return;
		}
		vm_log("event=flow_dropped client=%s port=%u vip=%s vport=%u source=veilctl", w[2], cp, w[4], vp);
		vm_ctl_answer(out, 1, NULL, 1);
	} else {
		vm_ctl_answer(out, 0, "unknown request (status, reload, route add|replace|del, flow drop)", 0);
	}
}

static void gw_metrics(void *arg, FILE *out)
{
	struct gw_state *st = arg;
	struct gw_stats s;
	__u64 *v = (__u64 *)&s;

	fputs("# HELP veilmesh_gw_packets_total Packets by outcome (docs/malformed-input.md, docs/design.md).\n"
	      "# TYPE veilmesh_gw_packets_total counter\n", out);
	if (!vm_gw_stats_read(vm_gw_map_fd(&st->g, "gw_stats"), &s))
		for (int i = 0; i < vm_gw_stat_count; i++)
			fprintf(out, "veilmesh_gw_packets_total{outcome=\"%s\"} %llu\n", vm_gw_stat_names[i],
				(unsigned long long)v[i]);
	static const char *const maps[] = { "routes", "vips", "flows", "hello_asm", "asm_early" };
	int fds[5];
	for (int i = 0; i < 5; i++)
		fds[i] = vm_gw_map_fd(&st->g, maps[i]);
	vm_metrics_maps(out, maps, fds, 5);
	fprintf(out, "# HELP veilmesh_gw_flows Flows in the flow table.\n# TYPE veilmesh_gw_flows gauge\n"
		     "veilmesh_gw_flows %ld\n", vm_map_count(vm_gw_map_fd(&st->g, "flows")));
	fprintf(out, "# HELP veilmesh_gw_flows_retired_total Closed or reset flows removed by the sweep.\n"
		     "# TYPE veilmesh_gw_flows_retired_total counter\nveilmesh_gw_flows_retired_total %llu\n",
		(unsigned long long)st->sweep.retired);
	vm_sweep_metrics(out, &st->sweep, "gw");
	if (st->g.bits) {
		/* the filter in front of the flows map: how full its union is
		 * says how many unknown tuples still reach the map (about its
		 * fourth power: four bits a key) */
		__u64 set = vm_flow_bits_set_count(st->g.bits, VM_FLOW_BITS_ENTRIES);
		fprintf(out, "# HELP veilmesh_gw_flow_filter_fill Share of the flows map's filter bits set (either half); "
			     "its fourth power is about the share of unknown tuples still looked up.\n"
			     "# TYPE veilmesh_gw_flow_filter_fill gauge\nveilmesh_gw_flow_filter_fill %.6f\n",
			(double)set / (VM_FLOW_BITS_ENTRIES * 64.0));
		fprintf(out, "# HELP veilmesh_gw_flow_filter_rebuilds_total Halves of the filter rebuilt from the flows map.\n"
			     "# TYPE veilmesh_gw_flow_filter_rebuilds_total counter\nveilmesh_gw_flow_filter_rebuilds_total %llu\n",
			(unsigned long long)st->bits_passes);
	}
	if (st->g.rbits) {
		/* the filter in front of the routes map: the share of its key
		 * bits set is about the share of names no route has that are
		 * still looked up */
		__u64 set = 0;
		for (__u32 i = VM_ROUTE_WILD_WORDS; i < VM_ROUTE_BITS_WORDS; i++)
			set += __builtin_popcountll(__atomic_load_n(&st->g.rbits[i], __ATOMIC_RELAXED));
		fprintf(out, "# HELP veilmesh_gw_route_filter_fill Share of the routes map's filter bits set: about the "
			     "share of hellos with a name no route has that are still looked up.\n"
			     "# TYPE veilmesh_gw_route_filter_fill gauge\nveilmesh_gw_route_filter_fill %.6f\n",
			(double)set / (double)(1u << VM_ROUTE_BITS_LOG));
	}
	fprintf(out, "# HELP veilmesh_gw_routes Routes configured.\n# TYPE veilmesh_gw_routes gauge\nveilmesh_gw_routes %d\n",
		st->cfg.nroutes);
	fprintf(out, "# HELP veilmesh_gw_cookie_rotations_total Cookie key rotations since start.\n"
		     "# TYPE veilmesh_gw_cookie_rotations_total counter\nveilmesh_gw_cookie_rotations_total %llu\n",
		(unsigned long long)st->rotations);
	fprintf(out, "# HELP veilmesh_gw_route_changes_total Route and VIP entries written since start.\n"
		     "# TYPE veilmesh_gw_route_changes_total counter\nveilmesh_gw_route_changes_total %llu\n",
		(unsigned long long)st->route_changes);
	if (st->store)
		gw_store_metrics(st->store, out);
	vm_metrics_daemon(out, st->reloads_ok, st->reloads_rejected, st->started);
}

/* Each sweep pass rebuilds one half of flow_bits, the filter in front of
 * the flows map (include/veil/wire.h): cleared, then the bit of every key
 * the pass walks; the other half covers the flows meanwhile.  So a flow
 * gone leaves the filter within two passes (10 s). */
static void bits_pass(void *arg)
{
	struct gw_state *st = arg;

	if (!st->g.bits)
		return;
	st->bits_half ^= 1;
	vm_flow_bits_clear(st->g.bits, st->bits_half);   /* and settled: the walk follows */
	st->bits_passes++;
}

static void bits_key(void *arg, const void *key)
{
	struct gw_state *st = arg;

	if (st->g.bits)
		vm_flow_bits_add(st->g.bits, st->bits_half, key);
}

int main(int argc, char **argv)
{
	static struct gw_state st;
	struct vm_daemon_opts opt;
	struct vm_ctl ctl;
	char err[512];
	int rc, changes, code;

	vm_prog_name = "veil-gw";
	if (vm_daemon_args(argc, argv, &opt, usage, &code))
		return code;
	st.config = opt.config;
	st.skb = opt.skb;
	bool check = opt.check, keep = opt.keep;
	if (vm_gw_cfg_load(st.config, &st.cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-gw: %s\n", err);
		return 2;
	}
	/* the secret and the interfaces, at --check as at start */
	if (vm_gw_cfg_check_host(&st.cfg, true, err, sizeof(err))) {
		fprintf(stderr, "veil-gw: %s\n", err);
		vm_gw_cfg_free(&st.cfg);
		return 2;
	}
	if (st.cfg.store_pub[0]) { /* the controller's key must load before anything trusts the store */
		EVP_PKEY *k = vs_load_key(st.cfg.store_pub, 0, err, sizeof(err));
		if (!k) {
			fprintf(stderr, "veil-gw: %s:%d: store_pub %s: %s\n", st.cfg.path, st.cfg.store_pub_line,
				st.cfg.store_pub, err);
			vm_gw_cfg_free(&st.cfg);
			return 2;
		}
		EVP_PKEY_free(k);
	}
	if (check) {
		printf("%s: ok (%d routes, %d VIPs%s)\n", st.config, st.cfg.nroutes, st.cfg.nvips,
		       st.cfg.store_urls[0] ? ", routes also from the store" : "");
		vm_gw_cfg_free(&st.cfg);
		return 0;
	}
	if (vm_daemon_pidfile(opt.pidfile, err, sizeof(err))) {
		fprintf(stderr, "veil-gw: pidfile %s\n", err);
		return 1;
	}
	if (vm_ctl_open(&ctl, st.cfg.control, st.cfg.metrics, err, sizeof(err))) {
		fprintf(stderr, "veil-gw: %s\n", err);
		return 1;
	}
	if (!forwarding_on(st.cfg.client_if))
		vm_log("event=warning reason=\"IPv4 forwarding is off on %s: the FIB lookup for mesh next hops will fail\"",
		       st.cfg.client_if);

	rc = vm_gw_open(&st.g, st.cfg.pin_root, st.cfg.flows_max, st.cfg.hellos_max);
	if (!rc)
		rc = vm_gw_attach(&st.g, st.cfg.client_if, st.cfg.mesh_if, st.skb);
	if (rc) {
		vm_log("event=attach_failed client_if=%s mesh_if=%s error=\"%s\"", st.cfg.client_if,
		       st.cfg.mesh_if, strerror(-rc));
		vm_gw_close(&st.g);
		vm_ctl_close(&ctl);
		return 1;
	}
	/* With a store, the routes found in the pinned map stay until the store's
	 * snapshot says otherwise: a restart does not drop them meanwhile. */
	struct vm_gw_cfg start = st.cfg;
	struct vm_cfg_route *pinned = NULL;
	int npinned = 0;
	if (st.cfg.store_urls[0] && !vm_gw_routes_read(&st.g, &pinned, &npinned) && npinned) {
		start.routes = malloc(((size_t)st.cfg.nroutes + (size_t)npinned) * sizeof(*start.routes));
		if (start.routes) {
			memcpy(start.routes, st.cfg.routes, (size_t)st.cfg.nroutes * sizeof(*start.routes));
			for (int i = 0; i < npinned; i++) {
				int dup = 0;
				for (int j = 0; j < st.cfg.nroutes && !dup; j++)
					dup = !strcmp(st.cfg.routes[j].key.name, pinned[i].key.name);
				if (!dup)
					start.routes[start.nroutes++] = pinned[i];
			}
		} else {
			start.routes = st.cfg.routes;
		}
	}
	int src = vm_gw_sync(&st.g, &start, &changes);
	if (start.routes != st.cfg.routes)
		free(start.routes);
	free(pinned);
	if (src || push_secret(&st.g, &st.cfg, &st.epoch)) {
		vm_log("event=map_sync_failed");
		vm_gw_detach(&st.g);
		vm_gw_close(&st.g);
		vm_ctl_close(&ctl);
		return 1;
	}
	st.route_changes = changes;
	st.started = time(NULL);
	if (vm_route_watch_open(&gw_route_watch))
		vm_log("event=warning reason=\"cannot watch route changes (%s): the nodes' routes are asked every second\"",
		       strerror(errno));
	ensure_neighbours(&st);
	vm_log("event=started client_if=%s mesh_if=%s pin_root=%s routes=%d pinned_routes=%d vips=%d changes=%d mode=%s "
	       "control=%s metrics=%s",
	       st.cfg.client_if, st.cfg.mesh_if, st.cfg.pin_root, st.cfg.nroutes, st.g.rbits_loaded, st.cfg.nvips, changes,
	       st.skb ? "skb" : "native", st.cfg.control, st.cfg.metrics);

	/* closed flows (FIN both ways) are retired after a TIME_WAIT-like linger,
	 * reset ones (VM_FIN_RST) once the VM has kept silent as long */
	vm_sweep_init(&st.sweep, vm_gw_map_fd(&st.g, "flows"), sizeof(struct flow_key), sizeof(struct flow_val),
		      offsetof(struct flow_val, fin), VM_SWEEP_EVERY_S);
	st.sweep.ft = vm_gw_flows(&st.g);   /* walked in place */
	vm_map_count_mapped(st.sweep.ft);   /* and counted there */
	st.sweep.on_pass = bits_pass;
	st.sweep.on_key = bits_key;
	st.sweep.arg = &st;
	char runtime[400] = "";
	if (vm_runtime_write("veil-gw", st.cfg.control, st.config, st.cfg.pin_root, st.cfg.metrics, runtime,
			     sizeof(runtime)))
		vm_log("event=warning reason=\"cannot write the runtime file %s: %s (veilctl will need -p and -s)\"",
		       runtime, strerror(errno));

	vm_daemon_signals();
	while (!vm_stop_sig) {
		if (st.cfg.store_urls[0] && !st.store && time(NULL) >= st.store_retry) {
			/* the store's routes join the file's; without the store the file's keep working */
			st.store = gw_store_start(&st.g, &st.cfg, err, sizeof(err));
			if (st.store)
				vm_log("event=store_watching urls=%s bucket=routes", st.cfg.store_urls);
			else
				vm_log("event=store_unavailable reason=\"%s\" retry_s=5", err);
			st.store_retry = time(NULL) + 5;
		}
		if (st.store)
			gw_store_poll(st.store);
		vm_sweep_run(&st.sweep, time(NULL));
		vm_ctl_poll(&ctl, 1000, gw_cmd, gw_metrics, &st);
		if (vm_reload) {
			vm_reload = 0;
			reload_config(&st, err, sizeof(err), &changes);
		}
		rotate_if_due(&st);
		refresh_next_hops(&st, false, false);
	}
	if (!keep)
		vm_gw_detach(&st.g);
	vm_log("event=stopped signal=%d detached=%s", (int)vm_stop_sig, keep ? "no" : "yes");
	vm_sweep_free(&st.sweep);
	vm_route_watch_close(&gw_route_watch);
	gw_store_stop(st.store);
	vm_runtime_remove(runtime);
	vm_ctl_close(&ctl);
	vm_gw_close(&st.g);
	vm_gw_cfg_free(&st.cfg);
	return 0;
}
