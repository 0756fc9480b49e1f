// SPDX-License-Identifier: Apache-2.0
/* veil-agent: the node config (file:line:column errors, unknown keys
 * warned, the secret never echoed), sizes and PCI addresses, the hardware
 * scan on fake hosts (tests/fixtures/hosts) and on this machine, and the
 * resource checks. */
#include <unistd.h>
#include <sys/stat.h>
#include "testlib.h"
#include "agent.h"

#define HOSTS "tests/fixtures/hosts/"
static char path[64];
static char warnings[2048];

static void on_warn(const char *msg)
{
	strncat(warnings, msg, sizeof(warnings) - strlen(warnings) - 2);
	strcat(warnings, "\n");
}

static void write_cfg(const char *text)
{
	strcpy(path, "/tmp/veil-agent-cfg-XXXXXX");
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
}

static int load(const char *text, struct ag_cfg *c, char *err, size_t len)
{
	write_cfg(text);
	warnings[0] = 0;
	int rc = ag_cfg_load(path, c, on_warn, err, len);
	unlink(path);
	return rc;
}

static void example_loads(void)
{
	static struct ag_cfg c;
	char err[512] = "";
	warnings[0] = 0;
	CHECK(ag_cfg_load("docs/leea-config.example", &c, on_warn, err, sizeof(err)) == 0, "%s", err);
	CHECK(c.cpu == 32 && c.ram == 64ULL << 30 && c.disk == 128ULL << 30, "cpu %d ram %lu disk %lu", c.cpu,
	      (unsigned long)c.ram, (unsigned long)c.disk);
	CHECK(c.ngpus == 2 && !strcmp(c.gpus[0], "0000:41:00.0") && !strcmp(c.gpus[1], "0000:41:00.1"),
	      "gpus %d %s %s", c.ngpus, c.gpus[0], c.gpus[1]);
	CHECK(c.node_key[0], "no node_key");
	CHECK(!warnings[0], "warned: %s", warnings);
}

static void documented_shape_loads(void)
{
	static struct ag_cfg c;
	char err[512] = "";
	int rc = load("node_key: nk_live_0123456789abcdef\n"
		      "resources:            # amount of node resources allocated to the network\n"
		      "  cpu: 32\n  ram: 64gb\n  disk: 128gb\n"
		      "  gpus:               # GPUs allowed to use; empty or absent = all GPUs\n"
		      "    - 0000:41:00.0\n    - 41:00.1\n",
		      &c, err, sizeof(err));
	CHECK(rc == 0, "%s", err);
	CHECK(!strcmp(c.node_key, "nk_live_0123456789abcdef"), "key");
	CHECK(c.ngpus == 2 && !strcmp(c.gpus[1], "0000:41:00.1"), "gpus");
	CHECK(c.gpu_line[1] == 8 && c.gpu_col[1] == 7, "gpu position %d:%d", c.gpu_line[1], c.gpu_col[1]);
	rc = load("node_key: k\nresources:\n  cpu: 1\n  gpus:\n", &c, err, sizeof(err));
	CHECK(rc == 0 && c.ngpus == 0, "empty gpus: %s", err);
	rc = load("node_key: k\nresources:\n  ram: 512MB\n  disk: 1.5Tb\n", &c, err, sizeof(err));
	CHECK(rc == 0 && c.ram == 512ULL << 20 && c.disk == 3ULL << 39, "units any case: %s", err);
	rc = load("{node_key: k, resources: {cpu: 2, gpus: []}}\n", &c, err, sizeof(err));
	CHECK(rc == 0 && c.cpu == 2, "flow style: %s", err);
}

static void expect_error(const char *text, int line, int col, const char *words)
{
	static struct ag_cfg c;
	char err[512] = "", want[128];
	int rc = load(text, &c, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:%d:%d: ", path, line, col);
	CHECK(rc == -1, "accepted: %s", text);
	CHECK(strstr(err, want) && strstr(err, words), "for '%s' want '%s...%s' got '%s'", text, want, words, err);
}

static void errors_name_file_line_column(void)
{
	expect_error("node_key: k\nresources:\n  cpu: many\n", 3, 8, "not a whole number");
	expect_error("node_key: k\nresources:\n  cpu: 0\n", 3, 8, "out of range");
	expect_error("node_key: k\nresources:\n  ram: 64\n", 3, 8, "needs a unit");
	expect_error("node_key: k\nresources:\n  ram: 64pb\n", 3, 8, "unknown size unit");
	expect_error("node_key: k\nresources:\n  disk: lots\n", 3, 9, "not a size");
	expect_error("node_key: k\nresources:\n  gpus:\n    - 41:00\n", 4, 7, "not a PCI address");
	expect_error("node_key: k\nresources:\n  gpus:\n    - 41:20.0\n", 4, 7, "not a PCI address");
	expect_error("node_key: k\nresources:\n  gpus:\n    - 41:00.0\n    - 0000:41:00.0\n", 5, 7, "listed twice");
	expect_error("node_key: k\nresources:\n  gpus: 41:00.0\n", 3, 9, "must be a list");
	expect_error("node_key: k\nresources: 4\n", 2, 12, "must be a mapping");
	expect_error("resources:\n  cpu: 1\n", 1, 1, "'node_key' missing");
	expect_error("node_key: k\nresources:\n  cpu: [1\n", 4, 1, "");
	expect_error("node_key: k\n  bad indent: x\n", 2, 13, "");
	expect_error("- a\n- b\n", 1, 1, "must be a mapping");
	expect_error("node_key: k\nnode_key: k2\n", 2, 1, "given twice");
	expect_error("node_key: k\nresources:\n  cpu: 1\n  cpu: 2\n", 4, 3, "given twice");
}

static void unknown_keys_warned(void)
{
	static struct ag_cfg c;
	char err[512] = "";
	int rc = load("node_key: k\ncolour: blue\nresources:\n  cpu: 1\n  ssd: 1tb\n", &c, err, sizeof(err));
	CHECK(rc == 0, "%s", err);
	CHECK(strstr(warnings, ":2:1: warning: unknown key 'colour'"), "warnings: %.400s", warnings);
	CHECK(strstr(warnings, ":5:3: warning: unknown key 'resources.ssd'"), "warnings: %.400s", warnings);
}

static void node_key_never_echoed(void)
{
	static struct ag_cfg c;
	char err[512] = "";
	int rc = load("node_key: s3cr3t with space\n", &c, err, sizeof(err));
	CHECK(rc == -1 && !strstr(err, "s3cr3t"), "got '%s'", err);
	rc = load("node_key: [s3cr3t]\n", &c, err, sizeof(err));
	CHECK(rc == -1 && !strstr(err, "s3cr3t"), "got '%s'", err);
}

static void missing_file(void)
{
	static struct ag_cfg c;
	char err[512] = "";
	CHECK(ag_cfg_load("/nonexistent/veil/config", &c, NULL, err, sizeof(err)) == -1, "accepted");
	CHECK(strstr(err, "/nonexistent/veil/config") && strstr(err, "No such file"), "got %s", err);
}

static void pci_and_sizes(void)
{
	char a[AG_PCI_LEN];
	uint64_t b;
	const char *why;
	CHECK(!ag_parse_pci("41:00.1", a) && !strcmp(a, "0000:41:00.1"), "short");
	CHECK(!ag_parse_pci("0001:C1:1F.7", a) && !strcmp(a, "0001:c1:1f.7"), "upper %s", a);
	CHECK(ag_parse_pci("41:00.8", a) && ag_parse_pci("141:00.0", a) && ag_parse_pci("x:00.0", a) &&
	      ag_parse_pci("41:00.", a) && ag_parse_pci("0:0:0:0.0", a), "bad accepted");
	CHECK(!ag_parse_size("1kb", &b, &why) && b == 1024, "kb");
	CHECK(!ag_parse_size("2 TB", &b, &why) && b == 2ULL << 40, "tb");
	CHECK(ag_parse_size("-1gb", &b, &why) && ag_parse_size("99999999999tb", &b, &why), "bad accepted");
}

static void scan_amd_sev(void)
{
	static struct ag_scan s;
	char err[256] = "";
	CHECK(!ag_scan_host(HOSTS "amd-sev", "/tmp", &s, err, sizeof(err)), "%s", err);
	CHECK(s.cpus == 8 && strstr(s.cpu_model, "EPYC 7763"), "cpus %d %s", s.cpus, s.cpu_model);
	CHECK(s.sev && s.sev_es && s.sev_snp && !s.tdx, "flags");
	CHECK(s.mem_total == 131899616ULL * 1024, "mem");
	CHECK(s.ngpus == 1 && !strcmp(s.gpus[0].addr, "0000:41:00.0") && s.gpus[0].vendor == 0x10de &&
	      s.gpus[0].device == 0x2236 && s.gpus[0].iommu_group == 12 && s.gpus[0].group_alone &&
	      s.gpus[0].group_size == 2, "gpu");
	CHECK(s.tpm && s.tpm_version == 2, "tpm");
	CHECK(s.disk_free > 0, "disk");
}

static void scan_intel_tdx(void)
{
	static struct ag_scan s;
	char err[256] = "";
	CHECK(!ag_scan_host(HOSTS "intel-tdx", "/tmp", &s, err, sizeof(err)), "%s", err);
	CHECK(s.cpus == 16 && s.tdx && !s.sev && !s.sev_es && !s.sev_snp, "cpus %d", s.cpus);
	CHECK(s.ngpus == 0 && s.tpm, "gpus %d", s.ngpus);
}

static void scan_no_gpu(void)
{
	static struct ag_scan s;
	char err[256] = "";
	CHECK(!ag_scan_host(HOSTS "no-gpu", "/tmp", &s, err, sizeof(err)), "%s", err);
	CHECK(s.cpus == 2 && !s.sev && !s.tdx && s.ngpus == 0 && !s.tpm, "scan");
}

static void scan_four_gpus(void)
{
	static struct ag_scan s;
	char err[256] = "";
	CHECK(!ag_scan_host(HOSTS "four-gpus", "/tmp", &s, err, sizeof(err)), "%s", err);
	CHECK(s.ngpus == 4, "gpus %d", s.ngpus);
	CHECK(!strcmp(s.gpus[0].addr, "0000:41:00.0") && !strcmp(s.gpus[3].addr, "0000:c1:00.0"), "order");
	CHECK(s.gpus[1].class_code == 0x030200 && s.gpus[2].vendor == 0x1002, "ids");
	CHECK(s.gpus[0].group_alone && s.gpus[1].group_alone && s.gpus[2].group_alone && !s.gpus[3].group_alone,
	      "groups");
	char *j = ag_scan_json(&s, NULL);
	CHECK(strstr(j, "\"address\": \"0000:81:00.0\"") && strstr(j, "\"iommu_group\": 43"), "json %s", j);
	free(j);
}

static void scan_this_machine(void)
{
	static struct ag_scan s;
	char err[256] = "";
	CHECK(!ag_scan_host("", "/tmp", &s, err, sizeof(err)), "%s", err);
	CHECK(s.cpus == sysconf(_SC_NPROCESSORS_CONF), "cpus %d vs %ld", s.cpus, sysconf(_SC_NPROCESSORS_CONF));
	CHECK(s.mem_total > (64ULL << 20) && s.disk_free > 0, "mem/disk");
	char *j = ag_scan_json(&s, NULL);
	CHECK(strstr(j, "\"cpu\"") && strstr(j, "\"sev_snp\"") && strstr(j, "\"gpus\""), "json");
	free(j);
}

static void check_resources(const char *host, const char *text, const char *words)
{
	static struct ag_cfg c;
	static struct ag_scan s;
	char err[512] = "";
	CHECK(!load(text, &c, err, sizeof(err)), "%s", err);
	CHECK(!ag_scan_host(host, "/tmp", &s, err, sizeof(err)), "%s", err);
	int rc = ag_check_resources(&c, &s, err, sizeof(err));
	if (!words)
		CHECK(rc == 0, "%s: refused: %s", host, err);
	else
		CHECK(rc == -1 && strstr(err, words), "%s: want '%s' got rc %d '%s'", host, words, rc, err);
}

static void resources_checked(void)
{
	const char *k = "node_key: k\nresources:\n";
	char t[512];
#define CFG(x) (snprintf(t, sizeof(t), "%s%s", k, x), t)
	check_resources(HOSTS "amd-sev", CFG("  cpu: 8\n  ram: 64gb\n  gpus:\n    - 41:00.0\n    - 41:00.1\n"), NULL);
	check_resources(HOSTS "amd-sev", CFG("  cpu: 9\n"), "resources.cpu is 9 but this host has 8 CPUs");
	check_resources(HOSTS "amd-sev", CFG("  ram: 200gb\n"), "of memory");
	check_resources(HOSTS "amd-sev", CFG("  disk: 1000tb\n"), "free");
	check_resources(HOSTS "amd-sev", CFG("  gpus:\n    - 42:00.0\n"), ":4:7: GPU 0000:42:00.0: no such PCI device");
	check_resources(HOSTS "amd-sev", CFG("  gpus:\n    - 00:00.0\n"), "is not a GPU");
	check_resources(HOSTS "four-gpus", CFG("  gpus:\n    - 41:00.0\n    - 61:00.0\n    - 81:00.0\n"), NULL);
	check_resources(HOSTS "four-gpus", CFG("  gpus:\n    - 41:00.0\n    - c1:00.0\n"),
			":5:7: GPU 0000:c1:00.0 is not in its own IOMMU group");
	check_resources(HOSTS "no-gpu", CFG("  gpus:\n    - 00:02.0\n"), "is not a GPU");
	check_resources(HOSTS "intel-tdx", CFG("  cpu: 16\n  ram: 250gb\n"), NULL);
#undef CFG
}

/* ag_kvm_probe against stand-in emulators: one that builds the VM (its
 * monitor answers "info status"), one that aborts as qemu 7.2 does where
 * KVM refuses a register, one that is not there. */
static void write_script(const char *path, const char *body)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(body, f);
		fclose(f);
	}
	chmod(path, 0700);
}

static void kvm_probe(void)
{
	char dir[] = "/tmp/agkvm-XXXXXX", ok[64], bad[64], why[256];
	CHECK(mkdtemp(dir), "mkdtemp");
	snprintf(ok, sizeof(ok), "%s/ok", dir);
	snprintf(bad, sizeof(bad), "%s/bad", dir);
	write_script(ok, "#!/bin/sh\nwhile read -r l; do case $l in 'info status') echo 'VM status: paused (prelaunch)';; quit) exit 0;; esac; done\n");
	write_script(bad, "#!/bin/sh\necho 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2\nkill -ABRT $$\n");
	why[0] = 0;
	CHECK(ag_kvm_probe(ok, "pc-q35-7.2", why, sizeof(why)) == 0, "a VM built, its status answered: %s", why);
	CHECK(ag_kvm_probe(bad, "pc-q35-7.2", why, sizeof(why)) == -1 && !strcmp(why, "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"),
	      "an emulator that aborts: '%s'", why);
	CHECK(ag_kvm_probe("/nonexistent/qemu", "pc-q35-7.2", why, sizeof(why)) == -1 && strstr(why, "cannot run"),
	      "no emulator: '%s'", why);
	unlink(ok);
	unlink(bad);
	rmdir(dir);
}

int main(void)
{
	RUN(kvm_probe);
	RUN(example_loads);
	RUN(documented_shape_loads);
	RUN(errors_name_file_line_column);
	RUN(unknown_keys_warned);
	RUN(node_key_never_echoed);
	RUN(missing_file);
	RUN(pci_and_sizes);
	RUN(scan_amd_sev);
	RUN(scan_intel_tdx);
	RUN(scan_no_gpu);
	RUN(scan_four_gpus);
	RUN(scan_this_machine);
	RUN(resources_checked);
	return t_done();
}
