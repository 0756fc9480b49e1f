// SPDX-License-Identifier: Apache-2.0
/*
 * veil-agent: the node's hypervisor role.  Reads the node config
 * ($HOME/.leea/config), scans the hardware at every start and checks the
 * configured resources against it.  The transport role is veil-node.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: veil-agent [--config FILE] [options]\n"
		"\n"
		"The veilmesh node's hypervisor role: runs the VMs ordered for this node\n"
		"through libvirt.  The transport role is veil-node.\n"
		"\n"
		"  -c, --config FILE     node config (default $HOME/.leea/config; see\n"
		"                        docs/leea-config.example)\n"
		"  -n, --check           check the config against this host and exit\n"
		"  -S, --scan            print the hardware scan as JSON and exit\n"
		"  -i, --image-dir DIR   where VM images live (default /var/lib/veilmesh/images)\n"
		"      --root DIR        read /proc and /sys under DIR (tests)\n"
		"      --domcaps FILE    libvirt domain capabilities XML to use (tests)\n"
		"  -h, --help            this text\n"
		"\n"
		"Exit codes: 0 ok, 1 runtime failure, 2 bad usage, config or resources.\n");
}

static void warn_line(const char *msg)
{
	fprintf(stderr, "veil-agent: %s\n", msg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, 0, 'c' }, { "check", no_argument, 0, 'n' },
		{ "scan", no_argument, 0, 'S' },          { "image-dir", required_argument, 0, 'i' },
		{ "root", required_argument, 0, 'R' },    { "domcaps", required_argument, 0, 'D' },    { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	char cfgpath[512] = "", err[1024] = "";
	const char *root = "", *domcaps = NULL, *image_dir = "/var/lib/veilmesh/images";
	bool check = false, scan_only = false;
	int o;

	while ((o = getopt_long(argc, argv, "c:nSi:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': snprintf(cfgpath, sizeof(cfgpath), "%s", optarg); break;
		case 'n': check = true; break;
		case 'S': scan_only = true; break;
		case 'i': image_dir = optarg; break;
		case 'R': root = optarg; break;
		case 'D': domcaps = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "veil-agent: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	static struct ag_scan scan;
	if (ag_scan_host(root, image_dir, &scan, err, sizeof(err))) {
		fprintf(stderr, "veil-agent: scan: %s\n", err);
		return 1;
	}
	/* libvirt's domain capabilities: from a file (--domcaps, tests) until
	 * the agent connects to libvirt itself. */
	static struct ag_domcaps dc;
	bool have_dc = false;
	if (domcaps) {
		FILE *f = fopen(domcaps, "r");
		static char buf[1 << 17];
		size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
		if (!f || ag_domcaps_parse(buf, n, &dc, err, sizeof(err))) {
			fprintf(stderr, "veil-agent: %s: %s\n", domcaps, f ? err : "cannot open");
			if (f)
				fclose(f);
			return 2;
		}
		fclose(f);
		have_dc = true;
	}
	if (scan_only) {
		char *j = ag_scan_json(&scan, have_dc ? &dc : NULL);
		puts(j);
		free(j);
		return 0;
	}

	static struct ag_cfg cfg;
	if (!cfgpath[0])
		ag_cfg_default_path(cfgpath, sizeof(cfgpath));
	if (ag_cfg_load(cfgpath, &cfg, warn_line, err, sizeof(err))) {
		fprintf(stderr, "veil-agent: %s\n", err);
		return 2;
	}
	if (ag_check_resources(&cfg, &scan, err, sizeof(err))) {
		fprintf(stderr, "veil-agent: %s\n", err);
		return 2;
	}
	if (check) {
		printf("%s: ok (cpu %d of %d, %d GPUs listed)\n", cfgpath, cfg.cpu ? cfg.cpu : scan.cpus, scan.cpus,
		       cfg.ngpus);
		return 0;
	}
	fprintf(stderr, "veil-agent: running VMs is not built yet; use --check or --scan\n");
	return 1;
}
