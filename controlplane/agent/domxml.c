// SPDX-License-Identifier: Apache-2.0
/* libvirt's domain capabilities in, a domain's XML out.  Both are pure:
 * no connection, so tests feed each kind of host's capabilities. */
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "agent.h"

/* ---------- domain capabilities ---------- */

static xmlXPathObjectPtr xp(xmlXPathContextPtr c, const char *expr)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, c);
	if (o && (!o->nodesetval || !o->nodesetval->nodeNr)) {
		xmlXPathFreeObject(o);
		return NULL;
	}
	return o;
}

static bool xp_has(xmlXPathContextPtr c, const char *expr)
{
	xmlXPathObjectPtr o = xp(c, expr);
	if (o)
		xmlXPathFreeObject(o);
	return o != NULL;
}

static void xp_text(xmlXPathContextPtr c, const char *expr, char *dst, size_t len)
{
	xmlXPathObjectPtr o = xp(c, expr);
	dst[0] = 0;
	if (!o)
		return;
	xmlChar *t = xmlNodeGetContent(o->nodesetval->nodeTab[0]);
	if (t) {
		snprintf(dst, len, "%s", (char *)t);
		xmlFree(t);
	}
	xmlXPathFreeObject(o);
}

int ag_domcaps_parse(const char *xml, size_t len, struct ag_domcaps *dc, char *err, size_t errlen)
{
	memset(dc, 0, sizeof(*dc));
	xmlDocPtr doc = xmlReadMemory(xml, (int)len, "domcaps.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
								      XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();
		char msg[200];
		snprintf(msg, sizeof(msg), "%s", e && e->message ? e->message : "?");
		msg[strcspn(msg, "\n")] = 0;
		snprintf(err, errlen, "domain capabilities: not XML (line %d: %s)", e ? e->line : 0, msg);
		return -1;
	}
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (!root || strcmp((const char *)root->name, "domainCapabilities")) {
		snprintf(err, errlen, "domain capabilities: root element is not <domainCapabilities>");
		xmlFreeDoc(doc);
		return -1;
	}
	xmlXPathContextPtr c = xmlXPathNewContext(doc);
	char buf[64];
	xp_text(c, "/domainCapabilities/domain", dc->domain_type, sizeof(dc->domain_type));
	xp_text(c, "/domainCapabilities/path", dc->emulator, sizeof(dc->emulator));
	xp_text(c, "/domainCapabilities/machine", dc->machine, sizeof(dc->machine));
	xp_text(c, "/domainCapabilities/arch", dc->arch, sizeof(dc->arch));
	dc->efi = xp_has(c, "/domainCapabilities/os[@supported='yes']/enum[@name='firmware']/value[text()='efi']");
	xmlXPathObjectPtr o = xp(c, "/domainCapabilities/os/loader[@supported='yes']/value");
	for (int i = 0; o && i < o->nodesetval->nodeNr && dc->nloaders < 8; i++) {
		xmlChar *t = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
		snprintf(dc->loaders[dc->nloaders++], sizeof(dc->loaders[0]), "%s", (char *)t);
		xmlFree(t);
	}
	if (o)
		xmlXPathFreeObject(o);
	const char *tpm = "/domainCapabilities/devices/tpm[@supported='yes']";
	dc->tpm = xp_has(c, tpm);
	dc->tpm_crb = xp_has(c, "/domainCapabilities/devices/tpm[@supported='yes']/enum[@name='model']/value[text()='tpm-crb']");
	dc->tpm_tis = xp_has(c, "/domainCapabilities/devices/tpm[@supported='yes']/enum[@name='model']/value[text()='tpm-tis']");
	dc->tpm_emulator = xp_has(c, "/domainCapabilities/devices/tpm[@supported='yes']/enum[@name='backendModel']"
				     "/value[text()='emulator']");
	dc->hostdev_pci = xp_has(c, "/domainCapabilities/devices/hostdev[@supported='yes']/enum[@name='subsysType']"
				    "/value[text()='pci']");
	/* libvirt < 10.5 says <sev supported='yes'> with cbitpos; newer ones
	 * also list launchSecurity types (sev, sev-snp, tdx). */
	const char *ls = "/domainCapabilities/features/launchSecurity[@supported='yes']/enum[@name='sectype']";
	dc->sev = xp_has(c, "/domainCapabilities/features/sev[@supported='yes']");
	if (dc->sev) {
		xp_text(c, "/domainCapabilities/features/sev/cbitpos", buf, sizeof(buf));
		dc->cbitpos = atoi(buf);
		xp_text(c, "/domainCapabilities/features/sev/reducedPhysBits", buf, sizeof(buf));
		dc->reduced_phys_bits = atoi(buf);
		xp_text(c, "/domainCapabilities/features/sev/maxESGuests", buf, sizeof(buf));
		dc->sev_es = atoi(buf) > 0;
	}
	char q[256];
	snprintf(q, sizeof(q), "%s/value[text()='sev-snp']", ls);
	dc->sev_snp = dc->sev && xp_has(c, q);
	snprintf(q, sizeof(q), "%s/value[text()='tdx']", ls);
	dc->tdx = xp_has(c, q) || xp_has(c, "/domainCapabilities/features/tdx[@supported='yes']");
	xmlXPathFreeContext(c);
	xmlFreeDoc(doc);
	if (!dc->domain_type[0] || !dc->emulator[0] || !dc->machine[0]) {
		snprintf(err, errlen, "domain capabilities: no domain type, emulator or machine");
		return -1;
	}
	return 0;
}

/* ---------- the domain ---------- */

static xmlNodePtr el(xmlNodePtr parent, const char *name, const char *text)
{
	return xmlNewTextChild(parent, NULL, (const xmlChar *)name, (const xmlChar *)text);
}

static void at(xmlNodePtr n, const char *name, const char *value)
{
	xmlNewProp(n, (const xmlChar *)name, (const xmlChar *)value);
}

static xmlNodePtr el_at(xmlNodePtr parent, const char *name, const char *a1, const char *v1)
{
	xmlNodePtr n = el(parent, name, NULL);
	if (a1)
		at(n, a1, v1);
	return n;
}

/* The firmware image: SEV with kernel hashes needs OVMF's AmdSev build
 * (it checks the hashes of kernel, initrd and cmdline itself). */
static const char *pick_loader(const struct ag_domcaps *dc, bool amdsev)
{
	for (int i = 0; i < dc->nloaders; i++)
		if (amdsev == (strstr(dc->loaders[i], "amdsev") != NULL) && !strstr(dc->loaders[i], "secboot") &&
		    !strstr(dc->loaders[i], ".ms.") && !strstr(dc->loaders[i], "snakeoil"))
			return dc->loaders[i];
	return NULL;
}

char *ag_domain_xml(const struct ag_spec *s, const struct ag_domcaps *dc, const struct ag_vm_paths *p, char *err,
		    size_t errlen)
{
	char buf[1536];
	bool sev = s->cc == AG_CC_SEV || s->cc == AG_CC_SEV_ES || s->cc == AG_CC_SEV_SNP;
	const char *loader = NULL;

	/* What the host cannot do, said before anything is built. */
	if (s->cc == AG_CC_SEV && !dc->sev) {
		snprintf(err, errlen, "VM %s asks for SEV; this host does not offer it", s->id);
		return NULL;
	}
	if (s->cc == AG_CC_SEV_ES && !dc->sev_es) {
		snprintf(err, errlen, "VM %s asks for SEV-ES; this host does not offer it", s->id);
		return NULL;
	}
	if (s->cc == AG_CC_SEV_SNP && !dc->sev_snp) {
		snprintf(err, errlen, "VM %s asks for SEV-SNP; this host does not offer it", s->id);
		return NULL;
	}
	if (s->cc == AG_CC_TDX && !dc->tdx) {
		snprintf(err, errlen, "VM %s asks for TDX; this host does not offer it", s->id);
		return NULL;
	}
	if (s->firmware == AG_FW_EFI) {
		loader = sev && s->kernel[0] ? pick_loader(dc, true) : NULL;
		if (sev && s->kernel[0] && !loader) {
			snprintf(err, errlen, "VM %s: SEV with kernel hashes needs OVMF's AmdSev build (OVMF.amdsev.fd); "
				 "libvirt offers none", s->id);
			return NULL;
		}
		if (!loader)
			loader = pick_loader(dc, false);
		if (!dc->efi || !loader) {
			snprintf(err, errlen, "VM %s asks for efi firmware; libvirt offers no OVMF", s->id);
			return NULL;
		}
	}
	if (s->tpm && !(dc->tpm && dc->tpm_emulator && (dc->tpm_crb || dc->tpm_tis))) {
		snprintf(err, errlen, "VM %s asks for a vTPM; libvirt offers no emulated TPM (swtpm)", s->id);
		return NULL;
	}
	if (s->ngpus && !dc->hostdev_pci) {
		snprintf(err, errlen, "VM %s asks for GPUs; libvirt offers no PCI host devices", s->id);
		return NULL;
	}
	if (!s->kernel[0] && s->firmware != AG_FW_EFI && s->cc != AG_CC_NONE) {
		snprintf(err, errlen, "VM %s: confidential VMs need efi firmware", s->id);
		return NULL;
	}

	xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr d = xmlNewNode(NULL, (const xmlChar *)"domain");
	xmlDocSetRootElement(doc, d);
	at(d, "type", dc->domain_type);
	if (p->domain_name[0])
		snprintf(buf, sizeof(buf), "%s", p->domain_name);
	else
		snprintf(buf, sizeof(buf), "veil-%s", s->id);
	el(d, "name", buf);
	xmlNodePtr md = el(d, "metadata", NULL);
	xmlNsPtr ns = NULL;
	xmlNodePtr vm = xmlNewChild(md, NULL, (const xmlChar *)"vm", NULL);
	ns = xmlNewNs(vm, (const xmlChar *)"https://veilmesh.dev/xmlns/agent/1", (const xmlChar *)"veil");
	xmlSetNs(vm, ns);
	at(vm, "id", s->id);
	at(vm, "tap", p->tap);
	if (s->vm_id) {
		snprintf(buf, sizeof(buf), "%u", s->vm_id);
		at(vm, "vm_id", buf);
	}
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)(s->memory >> 10));
	xmlNodePtr mem = el(d, "memory", buf);
	at(mem, "unit", "KiB");
	snprintf(buf, sizeof(buf), "%d", s->vcpus);
	el(d, "vcpu", buf);
	if (sev)
		el(el(d, "memoryBacking", NULL), "locked", NULL);

	xmlNodePtr os = el(d, "os", NULL);
	xmlNodePtr type = el(os, "type", "hvm");
	at(type, "arch", dc->arch[0] ? dc->arch : "x86_64");
	at(type, "machine", dc->machine);
	if (s->firmware == AG_FW_EFI) {
		xmlNodePtr l = el(os, "loader", loader);
		at(l, "readonly", "yes");
		/* the AmdSev build is a stateless ROM image; the others keep variables */
		at(l, "type", strstr(loader, "amdsev") ? "rom" : "pflash");
		if (!strstr(loader, "amdsev") && p->nvram[0]) {
			xmlNodePtr nv = el(os, "nvram", p->nvram);
			if (p->nvram_template[0])
				at(nv, "template", p->nvram_template);
		}
	}
	if (s->kernel[0]) {
		el(os, "kernel", s->kernel);
		if (s->initrd[0])
			el(os, "initrd", s->initrd);
		snprintf(buf, sizeof(buf), "%s%s%s", s->cmdline, s->cmdline[0] && p->cmdline_extra[0] ? " " : "",
			 p->cmdline_extra);
		if (buf[0])
			el(os, "cmdline", buf);
	} else {
		el_at(os, "boot", "dev", "hd");
	}
	xmlNodePtr feat = el(d, "features", NULL);
	el(feat, "acpi", NULL);
	el(feat, "apic", NULL);
	if (!strcmp(dc->domain_type, "kvm"))
		el_at(d, "cpu", "mode", "host-passthrough");
	el_at(d, "clock", "offset", "utc");
	el(d, "on_poweroff", "destroy");
	/* a reboot (a panicking guest reboots) or a crash stops the VM: the agent
	 * reports it; nothing restarts it in a loop */
	el(d, "on_reboot", "destroy");
	el(d, "on_crash", "destroy");

	xmlNodePtr dev = el(d, "devices", NULL);
	el(dev, "emulator", dc->emulator);
	xmlNodePtr disk = el_at(dev, "disk", "type", "file");
	at(disk, "device", "disk");
	xmlNodePtr drv = el_at(disk, "driver", "name", "qemu");
	at(drv, "type", s->disk_format);
	at(drv, "cache", "none");
	if (sev)
		at(drv, "iommu", "on");
	el_at(disk, "source", "file", p->disk);
	xmlNodePtr tgt = el_at(disk, "target", "dev", "vda");
	at(tgt, "bus", "virtio");

	xmlNodePtr nic = el_at(dev, "interface", "type", "ethernet");
	el_at(nic, "mac", "address", s->mac);
	tgt = el_at(nic, "target", "dev", p->tap);
	at(tgt, "managed", "no");
	el_at(nic, "model", "type", "virtio");
	if (sev)
		el_at(nic, "driver", "iommu", "on");

	xmlNodePtr ser = el_at(dev, "serial", "type", "file");
	xmlNodePtr src = el_at(ser, "source", "path", p->console_log);
	at(src, "append", "on");
	el_at(ser, "target", "port", "0");
	xmlNodePtr con = el_at(dev, "console", "type", "file");
	el_at(con, "source", "path", p->console_log);
	tgt = el_at(con, "target", "type", "serial");
	at(tgt, "port", "0");

	if (s->tpm) {
		xmlNodePtr tpm = el_at(dev, "tpm", "model", dc->tpm_crb ? "tpm-crb" : "tpm-tis");
		xmlNodePtr be = el_at(tpm, "backend", "type", "emulator");
		at(be, "version", "2.0");
	}
	for (int i = 0; i < s->ngpus; i++) {
		unsigned dom, bus, slot, fn;
		sscanf(s->gpus[i], "%x:%x:%x.%x", &dom, &bus, &slot, &fn);
		xmlNodePtr h = el_at(dev, "hostdev", "mode", "subsystem");
		at(h, "type", "pci");
		at(h, "managed", "yes");
		xmlNodePtr a = el(el(h, "source", NULL), "address", NULL);
		snprintf(buf, sizeof(buf), "0x%04x", dom);
		at(a, "domain", buf);
		snprintf(buf, sizeof(buf), "0x%02x", bus);
		at(a, "bus", buf);
		snprintf(buf, sizeof(buf), "0x%02x", slot);
		at(a, "slot", buf);
		snprintf(buf, sizeof(buf), "0x%x", fn);
		at(a, "function", buf);
	}
	el_at(dev, "memballoon", "model", "none");
	el_at(dev, "rng", "model", "virtio");
	el_at(xmlGetLastChild(dev), "backend", "model", "random");

	if (sev) {
		static const char *lt[] = { [AG_CC_SEV] = "sev", [AG_CC_SEV_ES] = "sev", [AG_CC_SEV_SNP] = "sev-snp" };
		xmlNodePtr l = el_at(d, "launchSecurity", "type", lt[s->cc]);
		if (s->kernel[0])
			at(l, "kernelHashes", "yes");
		snprintf(buf, sizeof(buf), "%d", dc->cbitpos);
		el(l, "cbitpos", buf);
		snprintf(buf, sizeof(buf), "%d", dc->reduced_phys_bits);
		el(l, "reducedPhysBits", buf);
		/* SEV: no debug, no key sharing (0x3); SEV-ES adds ES (0x4).
		 * SNP: bit 17 (reserved, must be 1) and SMT allowed (bit 16). */
		el(l, "policy", s->cc == AG_CC_SEV ? "0x0003" : s->cc == AG_CC_SEV_ES ? "0x0007" : "0x00030000");
	} else if (s->cc == AG_CC_TDX) {
		xmlNodePtr l = el_at(d, "launchSecurity", "type", "tdx");
		el(l, "policy", "0x10000000"); /* SEPT_VE_DISABLE */
	}

	xmlChar *out = NULL;
	int n = 0;
	xmlDocDumpFormatMemory(doc, &out, &n, 1);
	xmlFreeDoc(doc);
	char *r = strndup((const char *)out, n);
	xmlFree(out);
	return r;
}
