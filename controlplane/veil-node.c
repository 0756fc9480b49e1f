// SPDX-License-Identifier: Apache-2.0
/*
 * veil-node: the node daemon.  Attaches the mesh ingress program (XDP,
 * libxdp) and the VM egress program (TC, on each VM's host-side interface),
 * pins their maps, and keeps the VM table in step with the config file.
 * Connection state lives in pinned maps, so a restart keeps connections.
 */
#include <errno.h>
#include <stddef.h>
#include <net/if.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "veil.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: veil-node --config FILE [options]\n"
		"\n"
		"The veilmesh node: takes connections handed off by gateways over the\n"
		"Geneve mesh, replays the client's handshake to the VM and translates TCP\n"
		"both ways so the VM sees the real client.\n"
		"\n"
		"  -c, --config FILE     config file (see docs/veil-node.conf.example)\n"
		"  -n, --check           check the config file and exit\n"
		"  -s, --skb-mode        attach XDP in generic (skb) mode instead of native\n"
		"  -k, --keep-attached   leave the programs attached on exit (upgrade in place)\n"
		"  -v, --verbose         also log libbpf's and libxdp's debug messages\n"
		"      --pidfile FILE    write the pid to FILE while running (removed at exit)\n"
		"  -h, --help            this text\n"
		"\n"
		"Signals: SIGHUP reloads the VM table; SIGTERM/SIGINT detach and exit.\n"
		"veilctl talks to the daemon on control_socket (default /run/veilmesh/veil-node.sock);\n"
		"Prometheus metrics are served on 'metrics' (default 127.0.0.1:9432, /metrics).\n"
		"Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config.\n");
}

/* Fills in what the config names but the kernel knows: ifindex, our MAC. */
static int resolve_vms(struct vm_node_cfg *c, char *err, size_t errlen)
{
	for (int i = 0; i < c->nvms; i++) {
		struct vm_cfg_vm *vm = &c->vms[i];
		vm->val.ifindex = if_nametoindex(vm->ifname);
		if (!vm->val.ifindex || vm_if_mac(vm->ifname, vm->val.host_mac)) {
			snprintf(err, errlen, "%s: VM %u: no interface '%s'", c->path, vm->id, vm->ifname);
			return -1;
		}
	}
	return 0;
}

struct node_state {
	const char *config;
	struct vm_node_cfg cfg, nc;
	struct vm_node n;
	bool skb;
	__u64 started, reloads_ok, reloads_rejected;
	struct vm_sweep sweep;    /* retires closed connections */
	/* VMs taken out of the table: their clients nudged (vm_node_nudge)
	 * every second until .until, since a nudge or its answer can be lost,
	 * or come while the client's TCP holds its answers back */
	struct { __u32 id; time_t until, last; int rounds; } gone[VM_CFG_MAX_VMS];
	int ngone;
};

#define NUDGE_FOR_S 10

/* One round of nudges for the VMs taken out, dropping those whose time is
 * up; a VM's first round is logged, and any later one that reached a
 * client. */
static void nudge_gone(struct node_state *st, time_t now)
{
	for (int i = 0; i < st->ngone; i++) {
		if (now >= st->gone[i].until) {   /* done: the last entry takes its place */
			st->gone[i] = st->gone[--st->ngone];
			i--;
			continue;
		}
		if (st->gone[i].last == now)
			continue;   /* one round a second: the answers to this one are on their way */
		st->gone[i].last = now;
		long failed, sent = vm_node_nudge(&st->n, &st->gone[i].id, 1, &failed);
		if (!st->gone[i].rounds++ || sent || failed)
			vm_log("event=vm_gone vm=%u clients_nudged=%ld nudge_failed=%ld round=%d", st->gone[i].id, sent,
			       failed, st->gone[i].rounds);
	}
}

static const char *const node_maps[] = { "vms", "conns", "conn_rev", "hellos" };

/* A retired connection's reverse entry (the VM's view), as conn_forget in BPF. */
static void conn_rev_forget(void *arg, const void *key, const void *val)
{
	struct node_state *st = arg;

	vm_node_conn_rev_forget(&st->n, key, val);
}

static int node_reload(struct node_state *st, char *err, size_t errlen, int *changes)
{
	if (vm_node_cfg_load(st->config, &st->nc, err, errlen) || resolve_vms(&st->nc, err, errlen)) {
		st->reloads_rejected++;
		vm_log("event=reload_rejected reason=\"%s\"", err);
		return -1;
	}
	int attached = 0, arc = vm_node_attach_vms(&st->n, &st->nc, &attached);
	if (arc) {
		snprintf(err, errlen, "attaching node_vm to the VMs' interfaces: %s", strerror(-arc));
		st->reloads_rejected++;
		vm_log("event=reload_rejected reason=\"%s\"", err);
		return -1;
	}
	if (attached)
		vm_log("event=vm_interfaces_attached count=%d", attached);
	if (vm_node_sync(&st->n, &st->nc, changes)) {
		snprintf(err, errlen, "writing the maps: %s", strerror(errno));
		st->reloads_rejected++;
		return -1;
	}
	/* VMs taken out (their orders failed or went): their clients told;
	 * one back in the table is not nudged any more */
	time_t now = time(NULL);
	for (int i = 0; i < st->ngone; i++)
		for (int j = 0; j < st->nc.nvms; j++)
			if (st->nc.vms[j].id == st->gone[i].id)
				st->gone[i].until = now;   /* dropped by nudge_gone */
	for (int i = 0; i < st->cfg.nvms && st->ngone < VM_CFG_MAX_VMS; i++) {
		int j = 0;
		while (j < st->nc.nvms && st->nc.vms[j].id != st->cfg.vms[i].id)
			j++;
		if (j == st->nc.nvms) {
			st->gone[st->ngone].id = st->cfg.vms[i].id;
			st->gone[st->ngone].until = now + NUDGE_FOR_S;
			st->gone[st->ngone].last = 0;
			st->gone[st->ngone++].rounds = 0;
		}
	}
	st->cfg = st->nc;
	st->reloads_ok++;
	vm_log("event=config_reloaded vms=%d changes=%d", st->cfg.nvms, *changes);
	nudge_gone(st, now);   /* at once; then every second from the main loop */
	return 0;
}

static void node_cmd(void *arg, const char *line, FILE *out)
{
	struct node_state *st = arg;
	char err[512] = "";
	int changes = 0;

	if (!strcmp(line, "status")) {
		fprintf(out, "{\"daemon\": \"veil-node\", \"pid\": %d, \"uptime_s\": %llu, \"config\": ", getpid(),
			(unsigned long long)(time(NULL) - st->started));
		vm_json_str(out, st->config);
		fputs(", \"pin_root\": ", out);
		vm_json_str(out, st->cfg.pin_root);
		fprintf(out, ", \"mode\": \"%s\", \"programs\": [{\"interface\": ", st->skb ? "skb" : "native");
		vm_json_str(out, st->cfg.mesh_if);
		fprintf(out, ", \"ifindex\": %d, \"program\": \"node_mesh\", \"prog_id\": %u}", st->n.if_mesh,
			vm_xdp_prog_id(st->n.xp_mesh));
		for (int i = 0; i < st->cfg.nvms; i++) {
			fputs(", {\"interface\": ", out);
			vm_json_str(out, st->cfg.vms[i].ifname);
			fprintf(out, ", \"ifindex\": %u, \"program\": \"node_vm\", \"hook\": \"tc ingress\", \"vm_id\": %u}",
				st->cfg.vms[i].val.ifindex, st->cfg.vms[i].id);
		}
		fprintf(out, "], \"vms\": %d, \"reloads_ok\": %llu, \"reloads_rejected\": %llu, \"maps\": {", st->cfg.nvms,
			(unsigned long long)st->reloads_ok, (unsigned long long)st->reloads_rejected);
		for (int i = 0; i < 4; i++) {
			int fd = vm_node_map_fd(&st->n, node_maps[i]);
			fprintf(out, "%s\"%s\": {\"entries\": %ld, \"capacity\": %ld}", i ? ", " : "", node_maps[i],
				vm_map_count(fd), vm_map_capacity(fd));
		}
		fputs("}, \"sweep\": ", out);
		vm_sweep_status(out, &st->sweep);
		fputs("}\n", out);
	} else if (!strcmp(line, "reload")) {
		int rc = node_reload(st, err, sizeof(err), &changes);
		if (rc) {
			fputs("{\"ok\": false, \"error\": ", out);
			vm_json_str(out, err);
			fputs("}\n", out);
		} else {
			fprintf(out, "{\"ok\": true, \"changes\": %d}\n", changes);
		}
	} else {
		fputs("{\"ok\": false, \"error\": \"unknown request (status, reload)\"}\n", out);
	}
}

static void node_metrics(void *arg, FILE *out)
{
	struct node_state *st = arg;
	struct node_stats s;
	__u64 *v = (__u64 *)&s;

	fputs("# HELP veilmesh_node_packets_total Packets by outcome (docs/design.md).\n"
	      "# TYPE veilmesh_node_packets_total counter\n", out);
	if (!vm_node_stats_read(vm_node_map_fd(&st->n, "node_stats"), &s))
		for (int i = 0; i < vm_node_stat_count; i++)
			fprintf(out, "veilmesh_node_packets_total{outcome=\"%s\"} %llu\n", vm_node_stat_names[i],
				(unsigned long long)v[i]);
	int fds[4];
	for (int i = 0; i < 4; i++)
		fds[i] = vm_node_map_fd(&st->n, node_maps[i]);
	vm_metrics_maps(out, node_maps, fds, 4);
	fprintf(out, "# HELP veilmesh_node_conns_retired_total Closed or reset connections removed by the sweep.\n"
		     "# TYPE veilmesh_node_conns_retired_total counter\nveilmesh_node_conns_retired_total %llu\n",
		(unsigned long long)st->sweep.retired);
	vm_sweep_metrics(out, &st->sweep, "node");
	fprintf(out, "# HELP veilmesh_node_connections Connections handed to this node's VMs.\n"
		     "# TYPE veilmesh_node_connections gauge\nveilmesh_node_connections %ld\n",
		vm_map_count(vm_node_map_fd(&st->n, "conns")));
	vm_metrics_daemon(out, st->reloads_ok, st->reloads_rejected, st->started);
}

int main(int argc, char **argv)
{
	static struct node_state st;
	struct vm_daemon_opts opt;
	struct vm_ctl ctl;
	char err[512];
	int rc, changes, code;

	vm_prog_name = "veil-node";
	if (vm_daemon_args(argc, argv, &opt, usage, &code))
		return code;
	st.config = opt.config;
	st.skb = opt.skb;
	bool check = opt.check, keep = opt.keep;
	if (vm_node_cfg_load(st.config, &st.cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-node: %s\n", err);
		return 2;
	}
	if (check) {
		printf("%s: ok (%d VMs)\n", st.config, st.cfg.nvms);
		return 0;
	}
	if (resolve_vms(&st.cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-node: %s\n", err);
		return 2;
	}
	if (vm_daemon_pidfile(opt.pidfile, err, sizeof(err))) {
		fprintf(stderr, "veil-node: pidfile %s\n", err);
		return 1;
	}
	if (vm_ctl_open(&ctl, st.cfg.control, st.cfg.metrics, err, sizeof(err))) {
		fprintf(stderr, "veil-node: %s\n", err);
		return 1;
	}
	rc = vm_node_open(&st.n, st.cfg.pin_root, st.cfg.conns_max);
	if (!rc)
		rc = vm_node_attach(&st.n, &st.cfg, st.skb);
	if (rc) {
		vm_log("event=attach_failed mesh_if=%s error=\"%s\"", st.cfg.mesh_if, strerror(-rc));
		vm_node_detach(&st.n);
		vm_node_close(&st.n);
		vm_ctl_close(&ctl);
		return 1;
	}
	if (vm_node_sync(&st.n, &st.cfg, &changes)) {
		vm_log("event=map_sync_failed error=\"%s\"", strerror(errno));
		vm_node_detach(&st.n);
		vm_node_close(&st.n);
		vm_ctl_close(&ctl);
		return 1;
	}
	st.started = time(NULL);
	vm_log("event=started mesh_if=%s pin_root=%s vms=%d changes=%d mode=%s control=%s metrics=%s", st.cfg.mesh_if,
	       st.cfg.pin_root, st.cfg.nvms, changes, st.skb ? "skb" : "native", st.cfg.control, st.cfg.metrics);

	/* closed conns (FIN both ways) are retired after a TIME_WAIT-like linger,
	 * reset ones (VM_FIN_RST) once the VM has kept silent as long */
	vm_sweep_init(&st.sweep, vm_node_map_fd(&st.n, "conns"), sizeof(struct flow_key), sizeof(struct conn_val),
		      offsetof(struct conn_val, fin), VM_SWEEP_EVERY_S);
	st.sweep.ft = vm_node_conns(&st.n);   /* walked in place */
	vm_map_count_mapped(st.sweep.ft);   /* and counted there */
	st.sweep.on_retire = conn_rev_forget;
	st.sweep.arg = &st;
	char runtime[400] = "";
	if (vm_runtime_write("veil-node", st.cfg.control, st.config, st.cfg.pin_root, st.cfg.metrics, runtime,
			     sizeof(runtime)))
		vm_log("event=warning reason=\"cannot write the runtime file %s: %s (veilctl will need -p and -s)\"",
		       runtime, strerror(errno));

	vm_daemon_signals();
	while (!vm_stop_sig) {
		time_t now = time(NULL);
		vm_sweep_run(&st.sweep, now);
		if (st.ngone)
			nudge_gone(&st, now);
		vm_ctl_poll(&ctl, 1000, node_cmd, node_metrics, &st);
		if (vm_reload) {
			vm_reload = 0;
			node_reload(&st, err, sizeof(err), &changes);
		}
	}
	if (!keep)
		vm_node_detach(&st.n);
	vm_log("event=stopped signal=%d detached=%s", (int)vm_stop_sig, keep ? "no" : "yes");
	vm_sweep_free(&st.sweep);
	vm_runtime_remove(runtime);
	vm_ctl_close(&ctl);
	vm_node_close(&st.n);
	return 0;
}
