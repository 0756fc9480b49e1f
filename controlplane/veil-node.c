// SPDX-License-Identifier: Apache-2.0
/*
 * veil-node: the node daemon.  Attaches the mesh ingress program (XDP,
 * libxdp) and the VM egress program (TC, on each VM's host-side interface),
 * pins their maps, and keeps the VM table in step with the config file.
 * Connection state lives in pinned maps, so a restart keeps connections.
 */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veil.h"

static volatile sig_atomic_t stop_sig, reload;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload = 1;
	else
		stop_sig = sig;
}

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
		"  -h, --help            this text\n"
		"\n"
		"Signals: SIGHUP reloads the VM table; SIGTERM/SIGINT detach and exit.\n"
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'n' },
		{ "skb-mode", no_argument, NULL, 's' },
		{ "keep-attached", no_argument, NULL, 'k' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static struct vm_node_cfg cfg, nc;
	const char *config = NULL;
	bool check = false, skb = false, keep = false, verbose = false;
	struct vm_node n;
	char err[512];
	int opt, rc, changes;

	vm_prog_name = "veil-node";
	while ((opt = getopt_long(argc, argv, "c:nskvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'n': check = true; break;
		case 's': skb = true; break;
		case 'k': keep = true; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!config || optind != argc) {
		usage(stderr);
		return 2;
	}
	vm_lib_logging(verbose);
	if (vm_node_cfg_load(config, &cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-node: %s\n", err);
		return 2;
	}
	if (check) {
		printf("%s: ok (%d VMs)\n", config, cfg.nvms);
		return 0;
	}
	if (resolve_vms(&cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-node: %s\n", err);
		return 2;
	}
	rc = vm_node_open(&n, cfg.pin_root, cfg.conns_max);
	if (!rc)
		rc = vm_node_attach(&n, &cfg, skb);
	if (rc) {
		vm_log("event=attach_failed mesh_if=%s error=\"%s\"", cfg.mesh_if, strerror(-rc));
		vm_node_detach(&n);
		vm_node_close(&n);
		return 1;
	}
	if (vm_node_sync(&n, &cfg, &changes)) {
		vm_log("event=map_sync_failed error=\"%s\"", strerror(errno));
		vm_node_detach(&n);
		vm_node_close(&n);
		return 1;
	}
	vm_log("event=started mesh_if=%s pin_root=%s vms=%d changes=%d mode=%s", cfg.mesh_if,
	       cfg.pin_root, cfg.nvms, changes, skb ? "skb" : "native");

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	while (!stop_sig) {
		sleep(1);
		if (!reload)
			continue;
		reload = 0;
		if (vm_node_cfg_load(config, &nc, err, sizeof(err)) || resolve_vms(&nc, err, sizeof(err))) {
			vm_log("event=reload_rejected reason=\"%s\"", err);
			continue;
		}
		/* New VM interfaces need the TC program too. */
		int newif = 0;
		for (int i = 0; i < nc.nvms; i++) {
			int found = 0;
			for (int j = 0; j < n.ntc; j++)
				found |= n.tc_ifs[j] == (int)nc.vms[i].val.ifindex;
			newif |= !found;
		}
		if (newif)
			vm_log("event=reload_warning reason=\"new VM interfaces are attached on restart\"");
		if (vm_node_sync(&n, &nc, &changes)) {
			vm_log("event=reload_failed error=\"%s\"", strerror(errno));
			continue;
		}
		cfg = nc;
		vm_log("event=config_reloaded vms=%d changes=%d", cfg.nvms, changes);
	}
	if (!keep)
		vm_node_detach(&n);
	vm_log("event=stopped signal=%d detached=%s", (int)stop_sig, keep ? "no" : "yes");
	vm_node_close(&n);
	return 0;
}
