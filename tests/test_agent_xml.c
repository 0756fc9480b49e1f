// SPDX-License-Identifier: Apache-2.0
/* veil-agent: VM specs (file:line:column errors) and spec -> libvirt
 * domain XML for each kind of host (plain TCG like this machine, AMD SEV
 * with kernel hashes, Intel TDX, GPUs), read back with XPath and checked
 * against libvirt's own RelaxNG schema where it knows the elements. */
#include <unistd.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include "testlib.h"
#include "agent.h"

#define HOSTS "tests/fixtures/hosts/"
#define SCHEMA "/usr/share/libvirt/schemas/domain.rng"

static char warnings[1024];
static void on_warn(const char *m)
{
	strncat(warnings, m, sizeof(warnings) - strlen(warnings) - 1);
}

static int caps(const char *host, struct ag_domcaps *dc)
{
	char path[256], err[256] = "";
	snprintf(path, sizeof(path), HOSTS "%s/domcaps.xml", host);
	FILE *f = fopen(path, "r");
	static char buf[65536];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	int rc = ag_domcaps_parse(buf, n, dc, err, sizeof(err));
	CHECK(rc == 0, "%s: %s", host, err);
	return rc;
}

static int spec(const char *text, struct ag_spec *s, char *err, size_t len)
{
	warnings[0] = 0;
	return ag_spec_parse("spec.yaml", text, strlen(text), s, on_warn, err, len);
}

static const char *BASE =
	"id: web1\nvcpus: 1\nmemory: 256mb\n"
	"disk:\n  url: https://registry.test/img/web1.raw\n"
	"  sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\n"
	"boot:\n  kernel: /var/lib/veilmesh/images/vmlinuz\n  initrd: /var/lib/veilmesh/images/initrd.img\n"
	"  cmdline: console=ttyS0 quiet\n"
	"network:\n  ipv4: 198.18.50.2/24\n  gateway4: 198.18.50.1\n  ipv6: 2001:db8:50::2/64\n  gateway6: 2001:db8:50::1\n";

static const struct ag_vm_paths PATHS = {
	.disk = "/var/lib/veilmesh/vms/web1/disk.raw",
	.console_log = "/var/lib/veilmesh/vms/web1/console.log",
	.nvram = "/var/lib/veilmesh/vms/web1/VARS.fd",
	.nvram_template = "/usr/share/OVMF/OVMF_VARS_4M.fd",
	.tap = "vt-web1",
	.cmdline_extra = "veil.ip4=198.18.50.2/24,198.18.50.1 veil.ip6=2001:db8:50::2/64,2001:db8:50::1",
};

/* The domain XML parsed, for XPath questions. */
static xmlDocPtr dom;
static xmlXPathContextPtr ctx;

static void load_dom(const char *xml)
{
	if (ctx)
		xmlXPathFreeContext(ctx);
	if (dom)
		xmlFreeDoc(dom);
	dom = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL, 0);
	ctx = dom ? xmlXPathNewContext(dom) : NULL;
	if (ctx)
		xmlXPathRegisterNs(ctx, (const xmlChar *)"veil", (const xmlChar *)"https://veilmesh.dev/xmlns/agent/1");
}

static int count(const char *expr)
{
	if (!ctx)
		return -1;
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	int n = o && o->nodesetval ? o->nodesetval->nodeNr : 0;
	xmlXPathFreeObject(o);
	return n;
}
#define HAS(expr) CHECK(count(expr) == 1, "no %s", expr)
#define HASNT(expr) CHECK(count(expr) == 0, "unexpected %s", expr)

static int schema_valid(const char *xml, char *why, size_t len)
{
	if (access(SCHEMA, R_OK))
		return 1; /* libvirt not installed: nothing to check against */
	static xmlRelaxNGPtr rng;
	if (!rng) {
		xmlRelaxNGParserCtxtPtr pc = xmlRelaxNGNewParserCtxt(SCHEMA);
		rng = xmlRelaxNGParse(pc);
		xmlRelaxNGFreeParserCtxt(pc);
	}
	xmlDocPtr d = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL, 0);
	xmlRelaxNGValidCtxtPtr vc = xmlRelaxNGNewValidCtxt(rng);
	xmlRelaxNGSetValidErrors(vc, NULL, NULL, NULL);
	int rc = xmlRelaxNGValidateDoc(vc, d);
	if (rc) {
		const xmlError *e = xmlGetLastError();
		snprintf(why, len, "%s", e && e->message ? e->message : "invalid");
	}
	xmlRelaxNGFreeValidCtxt(vc);
	xmlFreeDoc(d);
	return rc == 0;
}

static void spec_example_loads(void)
{
	struct ag_spec s;
	char err[512] = "";
	warnings[0] = 0;
	CHECK(ag_spec_load("docs/vm-spec.example", &s, on_warn, err, sizeof(err)) == 0, "%s", err);
	CHECK(!warnings[0], "warned %s", warnings);
	CHECK(!strcmp(s.id, "web1") && s.vcpus == 1 && s.memory == 256 << 20 && s.tpm && s.port == 443, "fields");
}

static void spec_fields(void)
{
	struct ag_spec s;
	char err[512] = "";
	CHECK(spec(BASE, &s, err, sizeof(err)) == 0, "%s", err);
	CHECK(!strcmp(s.id, "web1") && s.vcpus == 1 && s.memory == 256 << 20, "basics");
	CHECK(!strncmp(s.disk_sha256, "9f86d0", 6) && !strcmp(s.disk_format, "raw"), "sha lowercased");
	CHECK(!strcmp(s.ipv6, "2001:db8:50::2/64") && !strcmp(s.gw4, "198.18.50.1"), "addresses");
	CHECK(!strncmp(s.mac, "52:54:00:", 9) && strlen(s.mac) == 17, "mac %s", s.mac);
	CHECK(s.ready_timeout == 120 && s.port == 443 && s.cc == AG_CC_NONE && !s.tpm, "defaults");
	/* JSON is YAML too */
	const char *json = "{\"id\": \"j1\", \"vcpus\": 2, \"memory\": \"1gb\", \"disk\": {\"url\": \"file:///x.raw\", "
			   "\"sha256\": \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}, "
			   "\"network\": {\"ipv6\": \"2001:db8::5/64\"}}";
	CHECK(spec(json, &s, err, sizeof(err)) == 0 && s.vcpus == 2, "json: %s", err);
}

static void spec_error(const char *text, int line, int col, const char *words)
{
	struct ag_spec s;
	char err[512] = "", want[64];
	int rc = spec(text, &s, err, sizeof(err));
	snprintf(want, sizeof(want), "spec.yaml:%d:%d: ", line, col);
	CHECK(rc == -1 && strstr(err, want) && strstr(err, words), "for [%s] want '%s..%s' got '%s'", text, want,
	      words, err);
}

static void spec_errors(void)
{
	char t[2048];
#define WITH(x) (snprintf(t, sizeof(t), "%s%s", BASE, x), t)
	spec_error("id: Web_1\n", 1, 5, "'id' must be");
	spec_error("id: web1\nvcpus: 0\n", 2, 8, "out of range");
	spec_error(WITH("confidential: sgx\n"), 16, 15, "must be none, sev");
	spec_error(WITH("confidential: sev\n"), 1, 1, "needs 'boot.firmware: efi'");
	spec_error(WITH("tpm: maybe\n"), 16, 6, "true or false");
	spec_error(WITH("attest: true\ntpm: true\n"), 1, 1, "SeaBIOS measures no kernel");
	spec_error(WITH("gpus:\n  - 41:00\n"), 17, 5, "not a PCI address");
	spec_error(WITH("vcpus: 2\n"), 16, 1, "given twice");
	spec_error("id: a\nvcpus: 1\nmemory: 256mb\ndisk:\n  url: ftp://x\n", 5, 8, "http://");
	spec_error("id: a\nvcpus: 1\nmemory: 256mb\ndisk:\n  url: http://x\n  sha256: abc\n", 6, 11, "64 hex");
	spec_error("id: a\nvcpus: 1\nmemory: 256mb\nnetwork:\n  ipv4: 198.18.0.300/24\n", 5, 9, "not an IPv4");
	spec_error("id: a\nvcpus: 1\nmemory: 256mb\nnetwork:\n  ipv6: 2001:db8::1\n", 5, 9, "with a /prefix");
	spec_error("id: a\nvcpus: 1\nmemory: 256mb\nnetwork:\n  mac: 01:00:00:00:00:01\n  ipv4: 198.18.0.2/24\n", 5, 8,
		   "multicast");
	spec_error("id: a\nvcpus: 1\nmemory: 256mb\nnetwork: {}\n", 4, 10, "needs ipv4 or ipv6");
	spec_error("id: a\nvcpus: 1\nmemory: 16mb\n", 3, 9, "below 64mb");
	spec_error("id: a\nvcpus: 1\n", 1, 1, "'memory' missing");
	spec_error("id: a\nboot:\n  initrd: /i\n", 3, 3, "needs 'boot.kernel'");
	spec_error("id: a\nboot:\n  kernel: vmlinuz\n", 3, 11, "absolute path");
	spec_error("id: [a\n", 2, 1, "");
	spec_error("", 1, 1, "empty spec");
#undef WITH
	struct ag_spec s;
	char err[512];
	snprintf(t, sizeof(t), "%scolour: red\n", BASE);
	CHECK(spec(t, &s, err, sizeof(err)) == 0 && strstr(warnings, "spec.yaml:16:1: warning: unknown key 'colour'"),
	      "warn: %.300s", warnings);
}

static void domcaps_per_host(void)
{
	struct ag_domcaps dc;
	char err[256];
	if (!caps("no-gpu", &dc))
		CHECK(!strcmp(dc.domain_type, "qemu") && !strcmp(dc.machine, "pc-q35-7.2") && dc.efi && dc.tpm_crb &&
		      dc.tpm_emulator && dc.hostdev_pci && !dc.sev && !dc.tdx && dc.nloaders >= 1,
		      "tcg: %s %s efi %d crb %d emu %d hostdev %d sev %d tdx %d loaders %d", dc.domain_type, dc.machine,
		      dc.efi, dc.tpm_crb, dc.tpm_emulator, dc.hostdev_pci, dc.sev, dc.tdx, dc.nloaders);
	if (!caps("amd-sev", &dc))
		CHECK(!strcmp(dc.domain_type, "kvm") && dc.sev && dc.sev_es && dc.sev_snp && !dc.tdx && dc.cbitpos == 51 &&
		      dc.reduced_phys_bits == 1 && dc.nloaders >= 2, "sev");
	if (!caps("intel-tdx", &dc))
		CHECK(dc.tdx && !dc.sev, "tdx");
	CHECK(ag_domcaps_parse("<capabilities/>", 15, &dc, err, sizeof(err)) == -1 && strstr(err, "root element"),
	      "%s", err);
	CHECK(ag_domcaps_parse("<a", 2, &dc, err, sizeof(err)) == -1 && strstr(err, "not XML"), "%s", err);
}

static void xml_plain_tcg(void)
{
	struct ag_domcaps dc;
	struct ag_spec s;
	char err[512] = "", t[2048], why[256] = "";
	if (caps("no-gpu", &dc))
		return;
	snprintf(t, sizeof(t), "%stpm: true\n", BASE);
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	char *x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	CHECK(x, "%s", err);
	if (!x)
		return;
	load_dom(x);
	HAS("/domain[@type='qemu']/name[text()='veil-web1']");
	HAS("/domain/metadata/veil:vm[@id='web1'][@tap='vt-web1']");
	HAS("/domain/memory[@unit='KiB'][text()='262144']");
	HAS("/domain/vcpu[text()='1']");
	HAS("/domain/os/type[@machine='pc-q35-7.2'][text()='hvm']");
	HAS("/domain/os/kernel[text()='/var/lib/veilmesh/images/vmlinuz']");
	HAS("/domain/os/cmdline[text()='console=ttyS0 quiet veil.ip4=198.18.50.2/24,198.18.50.1 "
	    "veil.ip6=2001:db8:50::2/64,2001:db8:50::1']");
	HASNT("/domain/os/loader");
	HASNT("/domain/cpu");
	HAS("/domain/devices/emulator[text()='/usr/bin/qemu-system-x86_64']");
	HAS("/domain/devices/disk[@type='file']/source[@file='/var/lib/veilmesh/vms/web1/disk.raw']");
	HAS("/domain/devices/disk/target[@dev='vda'][@bus='virtio']");
	HAS("/domain/devices/interface[@type='ethernet']/target[@dev='vt-web1'][@managed='no']");
	HAS("/domain/devices/interface/model[@type='virtio']");
	HAS("/domain/devices/serial[@type='file']/source[@path='/var/lib/veilmesh/vms/web1/console.log']");
	HAS("/domain/devices/tpm[@model='tpm-crb']/backend[@type='emulator'][@version='2.0']");
	HASNT("/domain/launchSecurity");
	HASNT("/domain/devices/hostdev");
	HAS("/domain/on_crash[text()='destroy']");
	HAS("/domain/on_reboot[text()='destroy']");
	CHECK(schema_valid(x, why, sizeof(why)), "libvirt schema: %s\n%s", why, x);
	free(x);
}

static void efi_spec(char *t, size_t len, const char *extra)
{
	snprintf(t, len, "%.*s  firmware: efi\n%s%s", (int)(strstr(BASE, "network:") - BASE), BASE,
		 strstr(BASE, "network:"), extra);
}

/* An attested VM boots only the way the validators can check: OVMF (the
 * EFI stub's kernel, initrd and command line in PCR 9), a vTPM, a kernel. */
static void spec_attest_needs_measured_boot(void)
{
	struct ag_spec s;
	char t[2048], err[512] = "";

	efi_spec(t, sizeof(t), "attest: true\n");
	spec_error(t, 1, 1, "'tpm: true'");
	efi_spec(t, sizeof(t), "attest: true\ntpm: true\n");
	CHECK(spec(t, &s, err, sizeof(err)) == 0 && s.attest && s.firmware == AG_FW_EFI, "efi + vTPM: %s", err);
	snprintf(t, sizeof(t), "id: a\nvcpus: 1\nmemory: 256mb\ndisk:\n  url: file:///x\n  sha256: %064d\n"
		 "boot:\n  firmware: efi\ntpm: true\nattest: true\nnetwork:\n  ipv6: 2001:db8::9/64\n", 0);
	spec_error(t, 1, 1, "'boot.kernel'");
}

static void xml_plain_efi(void)
{
	struct ag_domcaps dc;
	struct ag_spec s;
	char err[512] = "", t[2048], why[256] = "";
	if (caps("no-gpu", &dc))
		return;
	efi_spec(t, sizeof(t), "");
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	char *x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	CHECK(x, "%s", err);
	if (!x)
		return;
	load_dom(x);
	HAS("/domain/os/loader[@type='pflash'][@readonly='yes'][text()='/usr/share/OVMF/OVMF_CODE_4M.fd']");
	HAS("/domain/os/nvram[@template='/usr/share/OVMF/OVMF_VARS_4M.fd']");
	CHECK(schema_valid(x, why, sizeof(why)), "libvirt schema: %s", why);
	free(x);
	/* this host has no SEV: an order for it is refused with the reason */
	snprintf(t + strlen(t), sizeof(t) - strlen(t), "confidential: sev\n");
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	CHECK(!x && strstr(err, "SEV; this host does not offer it"), "got %s", err);
	free(x);
}

static void xml_sev_kernel_hashes(void)
{
	struct ag_domcaps dc;
	struct ag_spec s;
	char err[512] = "", t[2048], why[256] = "";
	if (caps("amd-sev", &dc))
		return;
	efi_spec(t, sizeof(t), "confidential: sev\ntpm: true\n");
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	char *x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	CHECK(x, "%s", err);
	if (!x)
		return;
	load_dom(x);
	HAS("/domain[@type='kvm']/cpu[@mode='host-passthrough']");
	HAS("/domain/launchSecurity[@type='sev'][@kernelHashes='yes']/cbitpos[text()='51']");
	HAS("/domain/launchSecurity/reducedPhysBits[text()='1']");
	HAS("/domain/launchSecurity/policy[text()='0x0003']");
	HAS("/domain/os/loader[@type='rom'][text()='/usr/share/OVMF/OVMF.amdsev.fd']");
	HASNT("/domain/os/nvram");
	HAS("/domain/memoryBacking/locked");
	HAS("/domain/devices/disk/driver[@iommu='on']");
	HAS("/domain/devices/interface/driver[@iommu='on']");
	CHECK(schema_valid(x, why, sizeof(why)), "libvirt schema: %s\n%s", why, x);
	free(x);

	efi_spec(t, sizeof(t), "confidential: sev-es\n");
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	load_dom(x ? x : "<x/>");
	HAS("/domain/launchSecurity[@type='sev']/policy[text()='0x0007']");
	free(x);

	efi_spec(t, sizeof(t), "confidential: sev-snp\n");
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	load_dom(x ? x : "<x/>");
	HAS("/domain/launchSecurity[@type='sev-snp'][@kernelHashes='yes']/policy[text()='0x00030000']");
	free(x);

	efi_spec(t, sizeof(t), "confidential: tdx\n");
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	CHECK(!x && strstr(err, "TDX; this host does not offer it"), "got %s", err);
	free(x);
}

static void xml_tdx(void)
{
	struct ag_domcaps dc;
	struct ag_spec s;
	char err[512] = "", t[2048];
	if (caps("intel-tdx", &dc))
		return;
	efi_spec(t, sizeof(t), "confidential: tdx\n");
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	char *x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	CHECK(x, "%s", err);
	load_dom(x ? x : "<x/>");
	/* libvirt 9's schema predates TDX: read back only */
	HAS("/domain[@type='kvm']/launchSecurity[@type='tdx']/policy");
	HAS("/domain/os/loader[@type='pflash']");
	HASNT("/domain/memoryBacking");
	free(x);
	efi_spec(t, sizeof(t), "confidential: sev\n");
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	CHECK(!x && strstr(err, "SEV"), "got %s", err);
	free(x);
}

static void xml_gpus(void)
{
	struct ag_domcaps dc;
	struct ag_spec s;
	char err[512] = "", t[2048], why[256] = "";
	if (caps("four-gpus", &dc))
		return;
	snprintf(t, sizeof(t), "%sgpus:\n  - 41:00.0\n  - 0000:41:00.1\n  - 81:00.0\n", BASE);
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	char *x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	CHECK(x, "%s", err);
	if (!x)
		return;
	load_dom(x);
	CHECK(count("/domain/devices/hostdev[@mode='subsystem'][@type='pci'][@managed='yes']") == 3, "3 hostdevs");
	HAS("/domain/devices/hostdev/source/address[@domain='0x0000'][@bus='0x41'][@slot='0x00'][@function='0x1']");
	HAS("/domain/devices/hostdev/source/address[@bus='0x81'][@function='0x0']");
	CHECK(schema_valid(x, why, sizeof(why)), "libvirt schema: %s", why);
	free(x);
}

static void xml_escapes_strings(void)
{
	struct ag_domcaps dc;
	struct ag_spec s;
	char err[512] = "", t[2048];
	if (caps("no-gpu", &dc))
		return;
	const char *c = strstr(BASE, "console=ttyS0 quiet");
	snprintf(t, sizeof(t), "%.*s\"a='<b>'&c=\\\"d\\\"\"%s", (int)(c - BASE), BASE, c + strlen("console=ttyS0 quiet"));
	CHECK(spec(t, &s, err, sizeof(err)) == 0, "%s", err);
	char *x = ag_domain_xml(&s, &dc, &PATHS, err, sizeof(err));
	load_dom(x ? x : "<x/>");
	CHECK(dom && count("/domain/os/cmdline[starts-with(text(), 'a=')]") == 1, "cmdline escaped: %s", x);
	free(x);
}

int main(void)
{
	RUN(spec_example_loads);
	RUN(spec_fields);
	RUN(spec_errors);
	RUN(spec_attest_needs_measured_boot);
	RUN(domcaps_per_host);
	RUN(xml_plain_tcg);
	RUN(xml_plain_efi);
	RUN(xml_sev_kernel_hashes);
	RUN(xml_tdx);
	RUN(xml_gpus);
	RUN(xml_escapes_strings);
	return t_done();
}
