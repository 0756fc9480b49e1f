// SPDX-License-Identifier: Apache-2.0
/*
 * veil-agent: the node's hypervisor role.  Reads the node config
 * ($HOME/.leea/config), scans the hardware at every start and checks the
 * configured resources against it.  The transport role is veil-node.
 */
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "register.h"
#include "daemon.h"
#include "store/store.h"
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

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
		"      --check-spec FILE check a VM spec and print the libvirt domain it becomes\n"
		"                        on this host (or on --domcaps FILE's), then exit\n"
		"  -i, --image-dir DIR   where VM images are cached (default /var/lib/veilmesh/images)\n"
		"  -o, --spec-dir DIR    the orders: one VM spec per *.yaml file (default\n"
		"                        /var/lib/veilmesh/orders; docs/vm-spec.example); removing\n"
		"                        a file deletes its VM\n"
		"      --state-dir DIR   per VM disk, console log, firmware variables\n"
		"                        (default /var/lib/veilmesh/vms)\n"
		"      --libvirt URI     libvirt connection (default qemu:///system)\n"
		"      --libvirt-netns PATH  libvirtd's network namespace when it is not ours\n"
		"                        (taps are made there, then moved here)\n"
		"      --node-config FILE    veil-node's config: the agent keeps its VMs' lines\n"
		"      --node-socket PATH    veil-node's control socket (reloaded after each change)\n"
		"      --name-prefix P   domain names are P<id> (default veil-)\n"
		"      --mtu N           MTU of the VMs' taps\n"
		"      --max-booting N   start a VM only while fewer than N are booting (started,\n"
		"                        not yet ready); the others wait, fetched (default 0: no limit)\n"
		"      --vtpm-state FILE a vTPM the node manufactured (swtpm_setup --createek\n"
		"                        --create-ek-cert: its tpm2-00.permall): every VM's TPM\n"
		"                        starts from it, so its EK is the one the registry recorded\n"
		"      --root DIR        read /proc and /sys under DIR (tests)\n"
		"      --domcaps FILE    libvirt domain capabilities XML to use (tests)\n"
		"      --register URL    join the network: register with the controller at\n"
		"                        https://ADDR:PORT, attest with the TPM (--tcti CONF), write\n"
		"                        the node id and a new node key into the config's store:\n"
		"                        section, and exit (docs/agent.md); with --regkey KEY (else\n"
		"                        the config's node_key), --ca FILE (the controller's TLS CA),\n"
		"                        --ek-chain FILE, --underlay ADDR, --location L, --name N,\n"
		"                        --store URLS, --controller-pub FILE, --key-out FILE\n"
		"      --metrics ADDR:PORT  serve Prometheus text on http://ADDR:PORT/metrics\n"
		"                        (VMs by state, reloads, start time; default off)\n"
		"      --pidfile FILE    write the pid to FILE while running (removed at exit)\n"
		"  -h, --help            this text\n"
		"\n"
		"Logs one event per line on stderr (vm_ordered, vm_fetching, vm_started,\n"
		"vm_ready with spec_to_ready_s, vm_failed with a reason, vm_deleted).\n"
		"SIGHUP reloads the config (resources and heartbeat_s; a bad file changes nothing).\n"
		"SIGTERM/SIGINT: stop; the VMs keep running and a restarted agent adopts them.\n"
		"Exit codes: 0 ok, 1 runtime failure, 2 bad usage, config or resources.\n");
}

static void quiet(void *arg, virErrorPtr e)
{
}

/* What libvirt offers for VMs on this host (q35, x86_64); -1 if unreachable. */
static int libvirt_domcaps(const char *uri, struct ag_domcaps *dc, char *err, size_t errlen)
{
	virSetErrorFunc(NULL, quiet);
	virConnectPtr c = virConnectOpen(uri); /* domain capabilities need a read-write connection */
	if (!c) {
		snprintf(err, errlen, "%s", ag_virt_err("cannot connect"));
		return -1;
	}
	int rc = ag_domcaps_get(c, dc, err, errlen);
	virConnectClose(c);
	return rc;
}

static void warn_line(const char *msg)
{
	fprintf(stderr, "veil-agent: %s\n", msg);
}

/* Everything the agent's own options set (the common ones: common/daemon.h). */
struct agent_args {
	const char *root, *domcaps, *image_dir, *libvirt_netns, *check_spec;
	bool scan_only;
	struct ag_daemon *dm;
	struct ag_reg_opts *reg;
};

static int agent_opt(void *arg, int o, const char *val)
{
	struct agent_args *a = arg;
	struct ag_daemon *dm = a->dm;
	struct ag_reg_opts *reg = a->reg;

	switch (o) {
	case 'S': a->scan_only = true; break;
	case 'i': a->image_dir = val; break;
	case 'R': a->root = val; break;
	case 'D': a->domcaps = val; break;
	case 'o': dm->spec_dir = val; break;
	case 1: dm->state_dir = val; break;
	case 2: dm->uri = val; break;
	case 3: a->libvirt_netns = val; break;
	case 4: dm->node_config = val; break;
	case 5: dm->node_socket = val; break;
	case 6: dm->prefix = val; break;
	case 8: a->check_spec = val; break;
	case 11: dm->metrics = val; break;
	case 9:
		if (access(val, R_OK)) {
			fprintf(stderr, "veil-agent: --vtpm-state %s: cannot read\n", val);
			return -1;
		}
		dm->vtpm_state = val;
		break;
	case 7:
		dm->mtu = atoi(val);
		if (dm->mtu < 1280 || dm->mtu > 65535) {
			fprintf(stderr, "veil-agent: --mtu %s: between 1280 and 65535\n", val);
			return -1;
		}
		break;
	case 10: {
		char *end;
		long n = strtol(val, &end, 10);
		if (*end || n < 0 || n > 64) {
			fprintf(stderr, "veil-agent: --max-booting %s: between 0 (no limit) and 64\n", val);
			return -1;
		}
		dm->max_booting = (int)n;
		break;
	}
	case 20: reg->url = val; break;
	case 21: reg->regkey = val; break;
	case 22: reg->tcti = val; break;
	case 23: reg->ca = val; break;
	case 24: reg->ek_chain = val; break;
	case 25: *(strchr(val, ':') ? &reg->underlay6 : &reg->underlay4) = val; break;
	case 26: reg->location = val; break;
	case 27: reg->name = val; break;
	case 28: reg->store_urls = val; break;
	case 29: reg->controller_pub = val; break;
	case 30: reg->key_out = val; break;
	default: return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "scan", no_argument, 0, 'S' },          { "image-dir", required_argument, 0, 'i' },
		{ "root", required_argument, 0, 'R' },    { "domcaps", required_argument, 0, 'D' },
		{ "spec-dir", required_argument, 0, 'o' }, { "state-dir", required_argument, 0, 1 },
		{ "libvirt", required_argument, 0, 2 },    { "libvirt-netns", required_argument, 0, 3 },
		{ "node-config", required_argument, 0, 4 }, { "node-socket", required_argument, 0, 5 },
		{ "name-prefix", required_argument, 0, 6 }, { "mtu", required_argument, 0, 7 },
		{ "check-spec", required_argument, 0, 8 },
		{ "vtpm-state", required_argument, 0, 9 },
		{ "max-booting", required_argument, 0, 10 },
		{ "metrics", required_argument, 0, 11 },
		/* --register and its options (register.c) */
		{ "register", required_argument, 0, 20 },  { "regkey", required_argument, 0, 21 },
		{ "tcti", required_argument, 0, 22 },      { "ca", required_argument, 0, 23 },
		{ "ek-chain", required_argument, 0, 24 },  { "underlay", required_argument, 0, 25 },
		{ "location", required_argument, 0, 26 },  { "name", required_argument, 0, 27 },
		{ "store", required_argument, 0, 28 },     { "controller-pub", required_argument, 0, 29 },
		{ "key-out", required_argument, 0, 30 },
		{ 0, 0, 0, 0 },
	};
	char cfgpath[512] = "", err[1024] = "";
	struct ag_daemon dm = {
		.uri = "qemu:///system", .spec_dir = "/var/lib/veilmesh/orders", .state_dir = "/var/lib/veilmesh/vms",
		.prefix = "veil-", .nvram_template = "/usr/share/OVMF/OVMF_VARS_4M.fd", .libvirt_ns = -1,
	};
	struct ag_reg_opts reg = { .ca = "/etc/ssl/certs/ca-certificates.crt" };
	struct agent_args a = { .root = "", .image_dir = "/var/lib/veilmesh/images", .dm = &dm, .reg = &reg };
	const struct vm_daemon_cli cli = { .usage = usage, .flags = VM_OPT_CONFIG_OPTIONAL, .extra = opts,
					   .extra_short = "Si:o:", .extra_fn = agent_opt, .arg = &a };
	struct vm_daemon_opts opt;
	int code;

	vm_prog_name = "veil-agent";
	if (vm_daemon_parse(argc, argv, &cli, &opt, &code))
		return code;
	if (opt.config)
		snprintf(cfgpath, sizeof(cfgpath), "%s", opt.config);
	const bool check = opt.check, scan_only = a.scan_only;
	const char *root = a.root, *domcaps = a.domcaps, *image_dir = a.image_dir;
	const char *libvirt_netns = a.libvirt_netns, *check_spec = a.check_spec;

	if (check_spec) { /* the spec alone: no config, no scan */
		static struct ag_spec sp;
		static struct ag_domcaps sdc;
		if (ag_spec_load(check_spec, &sp, warn_line, err, sizeof(err))) {
			fprintf(stderr, "veil-agent: %s\n", err);
			return 2;
		}
		if (domcaps) {
			FILE *f = fopen(domcaps, "r");
			static char buf[1 << 17];
			size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
			if (f)
				fclose(f);
			if (!f || ag_domcaps_parse(buf, n, &sdc, err, sizeof(err))) {
				fprintf(stderr, "veil-agent: %s: %s\n", domcaps, f ? err : "cannot open");
				return 2;
			}
		} else if (libvirt_domcaps(dm.uri, &sdc, err, sizeof(err))) {
			fprintf(stderr, "veil-agent: %s: ok (no domain: libvirt at %s: %s)\n", check_spec, dm.uri, err);
			return 0;
		}
		struct ag_vm_paths p = { .tap = "vtTAP" };
		snprintf(p.disk, sizeof(p.disk), "%s/%s/disk.%s", dm.state_dir, sp.id, sp.disk_format);
		snprintf(p.console_log, sizeof(p.console_log), "%s/%s/console.log", dm.state_dir, sp.id);
		snprintf(p.nvram, sizeof(p.nvram), "%s/%s/VARS.fd", dm.state_dir, sp.id);
		snprintf(p.nvram_template, sizeof(p.nvram_template), "%s", dm.nvram_template);
		snprintf(p.domain_name, sizeof(p.domain_name), "%s%s", dm.prefix, sp.id);
		char *x = ag_domain_xml(&sp, &sdc, &p, err, sizeof(err));
		if (!x) {
			fprintf(stderr, "veil-agent: %s: %s\n", check_spec, err);
			return 2;
		}
		fputs(x, stdout);
		free(x);
		return 0;
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
	if (scan_only && !have_dc) {
		if (!libvirt_domcaps(dm.uri, &dc, err, sizeof(err)))
			have_dc = true;
		else
			fprintf(stderr, "veil-agent: libvirt at %s: %s (\"libvirt\": null)\n", dm.uri, err);
	}
	if (reg.url) {   /* join by the TPM, then exit */
		if (!cfgpath[0])
			ag_cfg_default_path(cfgpath, sizeof(cfgpath));
		char *j = ag_scan_json(&scan, have_dc ? &dc : NULL);
		int rc = ag_register(&reg, cfgpath, &scan, j);
		free(j);
		return rc;
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
	if (cfg.store_urls[0]) { /* the keys must load before the store is trusted or written */
		EVP_PKEY *k1 = vs_load_key(cfg.controller_pub, 0, err, sizeof(err)), *k2 = NULL;
		if (k1)
			k2 = vs_load_key(cfg.node_signing_key, 1, err, sizeof(err));
		EVP_PKEY_free(k1);
		EVP_PKEY_free(k2);
		if (!k2) {
			fprintf(stderr, "veil-agent: %s: store: %s\n", cfgpath, err);
			return 2;
		}
	}
	if (check) {
		printf("%s: ok (cpu %d of %d, %d GPUs listed%s)\n", cfgpath, cfg.cpu ? cfg.cpu : scan.cpus, scan.cpus,
		       cfg.ngpus, cfg.store_urls[0] ? ", orders also from the store" : "");
		return 0;
	}
	if (libvirt_netns) {
		dm.libvirt_ns = open(libvirt_netns, O_RDONLY | O_CLOEXEC);
		if (dm.libvirt_ns < 0) {
			fprintf(stderr, "veil-agent: --libvirt-netns %s: cannot open\n", libvirt_netns);
			return 2;
		}
	}
	dm.cfg = &cfg;
	dm.scan = &scan;
	dm.cache_dir = image_dir;
	return ag_daemon_run(&dm);
}
