// SPDX-License-Identifier: Apache-2.0
/*
 * veil-gw: the gateway daemon.  Loads and attaches the gateway programs
 * (libxdp), pins their maps, keeps routes and VIPs in step with the config
 * file, rotates the cookie secret, and detaches on stop.  Established flows
 * live in the pinned flows map, so a restart or upgrade keeps them.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <openssl/crypto.h>

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
		"  -h, --help            this text\n"
		"\n"
		"Signals: SIGHUP reloads the config (routes and VIPs; a bad file changes\n"
		"nothing), SIGTERM/SIGINT detach and exit.\n"
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
	OPENSSL_cleanse(&s, sizeof(s));
	if (rc)
		return -errno;
	if (*epoch != s.epoch) {
		vm_log("event=cookie_secret epoch=%llu rotate_s=%u", (unsigned long long)s.epoch, c->rotate_s);
		*epoch = s.epoch;
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
	const char *config = NULL;
	bool check = false, skb = false, keep = false, verbose = false;
	struct vm_gw_cfg cfg;
	struct vm_gw g;
	char err[512];
	__u64 epoch = 0;
	int opt, rc, changes;

	vm_prog_name = "veil-gw";
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
	if (vm_gw_cfg_load(config, &cfg, err, sizeof(err))) {
		fprintf(stderr, "veil-gw: %s\n", err);
		return 2;
	}
	if (check) {
		printf("%s: ok (%d routes, %d VIPs)\n", config, cfg.nroutes, cfg.nvips);
		vm_gw_cfg_free(&cfg);
		return 0;
	}
	{
		__u8 k[64];
		size_t kl;
		if (vm_secret_read(cfg.secret_file, k, &kl, err, sizeof(err))) {
			fprintf(stderr, "veil-gw: %s\n", err);
			return 2;
		}
		OPENSSL_cleanse(k, sizeof(k));
	}
	if (!forwarding_on(cfg.client_if))
		vm_log("event=warning reason=\"IPv4 forwarding is off on %s: the FIB lookup for mesh next hops will fail\"",
		       cfg.client_if);

	rc = vm_gw_open(&g, cfg.pin_root, cfg.flows_max);
	if (!rc)
		rc = vm_gw_attach(&g, cfg.client_if, cfg.mesh_if, skb);
	if (rc) {
		vm_log("event=attach_failed client_if=%s mesh_if=%s error=\"%s\"", cfg.client_if,
		       cfg.mesh_if, strerror(-rc));
		vm_gw_close(&g);
		return 1;
	}
	if (vm_gw_sync(&g, &cfg, &changes) || push_secret(&g, &cfg, &epoch)) {
		vm_log("event=map_sync_failed");
		vm_gw_detach(&g);
		vm_gw_close(&g);
		return 1;
	}
	vm_log("event=started client_if=%s mesh_if=%s pin_root=%s routes=%d vips=%d changes=%d mode=%s",
	       cfg.client_if, cfg.mesh_if, cfg.pin_root, cfg.nroutes, cfg.nvips, changes,
	       skb ? "skb" : "native");

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	while (!stop_sig) {
		sleep(1);
		if (reload) {
			struct vm_gw_cfg nc;
			reload = 0;
			if (vm_gw_cfg_load(config, &nc, err, sizeof(err))) {
				vm_log("event=reload_rejected reason=\"%s\"", err);
				continue;
			}
			if (strcmp(nc.client_if, cfg.client_if) || strcmp(nc.mesh_if, cfg.mesh_if) ||
			    strcmp(nc.pin_root, cfg.pin_root) || nc.flows_max != cfg.flows_max)
				vm_log("event=reload_warning reason=\"interfaces, pin_root and flows_max change only on restart\"");
			if (vm_gw_sync(&g, &nc, &changes)) {
				vm_log("event=reload_failed error=\"%s\"", strerror(errno));
				vm_gw_cfg_free(&nc);
				continue;
			}
			vm_gw_cfg_free(&cfg);
			cfg = nc;
			vm_log("event=config_reloaded routes=%d vips=%d changes=%d", cfg.nroutes, cfg.nvips, changes);
		}
		if (vm_tai_seconds() / cfg.rotate_s != epoch)
			push_secret(&g, &cfg, &epoch);
	}
	if (!keep)
		vm_gw_detach(&g);
	vm_log("event=stopped signal=%d detached=%s", (int)stop_sig, keep ? "no" : "yes");
	vm_gw_close(&g);
	vm_gw_cfg_free(&cfg);
	return 0;
}
