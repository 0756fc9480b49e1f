// SPDX-License-Identifier: Apache-2.0
/* A VM spec (what an order asks this node to run), YAML or JSON, with
 * every error at file:line:column.  Example: docs/vm-spec.example. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "yml.h"

const char *ag_cc_name(enum ag_cc cc)
{
	static const char *n[] = { "none", "sev", "sev-es", "sev-snp", "tdx" };
	return n[cc];
}

static int copy_str(struct yml *y, yaml_node_t *v, const char *what, char *dst, size_t len)
{
	const char *s = yml_scalar(v);
	if (!s)
		return yml_error(y, v, "'%s' must be a string", what);
	if (strlen(s) >= len)
		return yml_error(y, v, "'%s' is longer than %zu characters", what, len - 1);
	strcpy(dst, s);
	return 0;
}

/* "198.18.50.2/24" (want_prefix) or "198.18.50.1" of the given family. */
static int addr_ok(const char *s, int family, bool want_prefix)
{
	char a[64];
	unsigned char buf[16];
	snprintf(a, sizeof(a), "%s", s);
	char *sl = strchr(a, '/');
	if (want_prefix != (sl != NULL))
		return 0;
	if (sl) {
		char *end;
		*sl = 0;
		long p = strtol(sl + 1, &end, 10);
		if (*end || !sl[1] || p < 1 || p > (family == AF_INET ? 32 : 128))
			return 0;
	}
	return inet_pton(family, a, buf) == 1;
}

static int load_disk(struct yml *y, yaml_node_t *m, struct ag_spec *s)
{
	if (m->type != YAML_MAPPING_NODE)
		return yml_error(y, m, "'disk' must be a mapping (url, sha256, format)");
	if (yml_check_dups(y, m))
		return -1;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&y->doc, p->key), *v = yaml_document_get_node(&y->doc, p->value);
		const char *key = yml_scalar(k);
		if (!key)
			return yml_error(y, k, "keys must be plain names");
		if (!strcmp(key, "url")) {
			if (copy_str(y, v, "disk.url", s->disk_url, sizeof(s->disk_url)))
				return -1;
			if (strncmp(s->disk_url, "http://", 7) && strncmp(s->disk_url, "https://", 8) &&
			    strncmp(s->disk_url, "file:///", 8))
				return yml_error(y, v, "'disk.url' must be http://, https:// or file:///");
		} else if (!strcmp(key, "sha256")) {
			const char *h = yml_scalar(v);
			if (!h || strlen(h) != 64 || strspn(h, "0123456789abcdefABCDEF") != 64)
				return yml_error(y, v, "'disk.sha256' must be 64 hex digits");
			for (int i = 0; i < 64; i++)
				s->disk_sha256[i] = (char)tolower((unsigned char)h[i]);
		} else if (!strcmp(key, "format")) {
			const char *f = yml_scalar(v);
			if (!f || (strcmp(f, "raw") && strcmp(f, "qcow2")))
				return yml_error(y, v, "'disk.format' must be raw or qcow2");
			strcpy(s->disk_format, f);
		} else {
			yml_warn(y, k, "unknown key 'disk.%s' ignored", key);
		}
	}
	if (!s->disk_url[0] || !s->disk_sha256[0])
		return yml_error(y, m, "'disk' needs url and sha256");
	return 0;
}

static int load_boot(struct yml *y, yaml_node_t *m, struct ag_spec *s)
{
	if (m->type != YAML_MAPPING_NODE)
		return yml_error(y, m, "'boot' must be a mapping (kernel, initrd, cmdline, firmware)");
	if (yml_check_dups(y, m))
		return -1;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&y->doc, p->key), *v = yaml_document_get_node(&y->doc, p->value);
		const char *key = yml_scalar(k);
		if (!key)
			return yml_error(y, k, "keys must be plain names");
		if (!strcmp(key, "kernel") || !strcmp(key, "initrd")) {
			char *dst = key[0] == 'k' ? s->kernel : s->initrd;
			if (copy_str(y, v, key, dst, sizeof(s->kernel)))
				return -1;
			if (dst[0] != '/' && strncmp(dst, "http://", 7) && strncmp(dst, "https://", 8))
				return yml_error(y, v, "'boot.%s' must be an absolute path or an http(s) URL", key);
		} else if (!strcmp(key, "kernel_sha256") || !strcmp(key, "initrd_sha256")) {
			char *dst = key[0] == 'k' ? s->kernel_sha256 : s->initrd_sha256;
			const char *h = yml_scalar(v);
			if (!h || strlen(h) != 64 || strspn(h, "0123456789abcdefABCDEF") != 64)
				return yml_error(y, v, "'boot.%s' must be 64 hex digits", key);
			for (int i = 0; i < 64; i++)
				dst[i] = (char)tolower((unsigned char)h[i]);
		} else if (!strcmp(key, "cmdline")) {
			if (copy_str(y, v, "boot.cmdline", s->cmdline, sizeof(s->cmdline)))
				return -1;
		} else if (!strcmp(key, "firmware")) {
			const char *f = yml_scalar(v);
			if (f && !strcmp(f, "bios"))
				s->firmware = AG_FW_BIOS;
			else if (f && (!strcmp(f, "efi") || !strcmp(f, "uefi")))
				s->firmware = AG_FW_EFI;
			else
				return yml_error(y, v, "'boot.firmware' must be bios or efi");
		} else {
			yml_warn(y, k, "unknown key 'boot.%s' ignored", key);
		}
	}
	if (s->initrd[0] && !s->kernel[0])
		return yml_error(y, m, "'boot.initrd' needs 'boot.kernel'");
	if (s->kernel[0] != '/' && s->kernel[0] && !s->kernel_sha256[0])
		return yml_error(y, m, "'boot.kernel' is a URL: 'boot.kernel_sha256' is needed");
	if (s->initrd[0] != '/' && s->initrd[0] && !s->initrd_sha256[0])
		return yml_error(y, m, "'boot.initrd' is a URL: 'boot.initrd_sha256' is needed");
	if (s->cmdline[0] && !s->kernel[0])
		return yml_error(y, m, "'boot.cmdline' needs 'boot.kernel'");
	return 0;
}

static int load_network(struct yml *y, yaml_node_t *m, struct ag_spec *s)
{
	if (m->type != YAML_MAPPING_NODE)
		return yml_error(y, m, "'network' must be a mapping (ipv4, gateway4, ipv6, gateway6, mac)");
	if (yml_check_dups(y, m))
		return -1;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&y->doc, p->key), *v = yaml_document_get_node(&y->doc, p->value);
		const char *key = yml_scalar(k);
		if (!key)
			return yml_error(y, k, "keys must be plain names");
		struct { const char *name; char *dst; int fam; bool prefix; } f[] = {
			{ "ipv4", s->ipv4, AF_INET, true }, { "gateway4", s->gw4, AF_INET, false },
			{ "ipv6", s->ipv6, AF_INET6, true }, { "gateway6", s->gw6, AF_INET6, false },
		};
		bool done = false;
		const char *sv = yml_scalar(v);
		if (sv && !*sv && strcmp(key, "mac")) /* "" = not given (a controller's empty field) */
			continue;
		for (int i = 0; i < 4 && !done; i++) {
			if (strcmp(key, f[i].name))
				continue;
			if (copy_str(y, v, key, f[i].dst, 64))
				return -1;
			if (!addr_ok(f[i].dst, f[i].fam, f[i].prefix))
				return yml_error(y, v, "'network.%s': '%s' is not an IPv%d address%s", key, f[i].dst,
						 f[i].fam == AF_INET ? 4 : 6, f[i].prefix ? " with a /prefix" : "");
			done = true;
		}
		if (done)
			continue;
		if (!strcmp(key, "mac")) {
			unsigned b[6];
			char c;
			if (copy_str(y, v, "mac", s->mac, sizeof(s->mac)) ||
			    sscanf(s->mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &c) != 6 ||
			    strlen(s->mac) != 17)
				return yml_error(y, v, "'network.mac' must be six hex bytes like 52:54:00:12:34:56");
			if (b[0] & 1)
				return yml_error(y, v, "'network.mac' is a multicast address");
		} else {
			yml_warn(y, k, "unknown key 'network.%s' ignored", key);
		}
	}
	if (!s->ipv4[0] && !s->ipv6[0])
		return yml_error(y, m, "'network' needs ipv4 or ipv6 (VMs are dual-stack: both, usually)");
	return 0;
}

static int load_spec(struct yml *y, struct ag_spec *s)
{
	yaml_node_t *root = yaml_document_get_root_node(&y->doc);
	if (!root)
		return yml_error(y, NULL, "empty spec");
	if (root->type != YAML_MAPPING_NODE)
		return yml_error(y, root, "a VM spec must be a mapping (id, vcpus, memory, disk, boot, network, ...)");
	if (yml_check_dups(y, root))
		return -1;
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&y->doc, p->key), *v = yaml_document_get_node(&y->doc, p->value);
		const char *key = yml_scalar(k);
		long n;
		if (!key)
			return yml_error(y, k, "keys must be plain names");
		if (!strcmp(key, "id")) {
			if (copy_str(y, v, "id", s->id, sizeof(s->id)))
				return -1;
			if (!s->id[0] || strspn(s->id, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(s->id) ||
			    s->id[0] == '-')
				return yml_error(y, v, "'id' must be 1-32 of a-z, 0-9 and '-' (not first)");
		} else if (!strcmp(key, "vcpus")) {
			if (yml_int(y, v, "vcpus", 1, 512, &n))
				return -1;
			s->vcpus = (int)n;
		} else if (!strcmp(key, "memory")) {
			const char *m = yml_scalar(v), *why;
			if (!m || ag_parse_size(m, &s->memory, &why))
				return yml_error(y, v, "'memory': %s", m ? why : "needs a size such as 256mb");
			if (s->memory < (64ULL << 20))
				return yml_error(y, v, "'memory' below 64mb");
		} else if (!strcmp(key, "disk")) {
			if (load_disk(y, v, s))
				return -1;
		} else if (!strcmp(key, "boot")) {
			if (load_boot(y, v, s))
				return -1;
		} else if (!strcmp(key, "tpm")) {
			if (yml_bool(y, v, "tpm", &s->tpm))
				return -1;
		} else if (!strcmp(key, "attest")) {
			if (yml_bool(y, v, "attest", &s->attest))
				return -1;
		} else if (!strcmp(key, "confidential")) {
			const char *c = yml_scalar(v);
			int i;
			for (i = 0; i <= AG_CC_TDX; i++)
				if (c && !strcmp(c, ag_cc_name(i)))
					break;
			if (i > AG_CC_TDX)
				return yml_error(y, v, "'confidential' must be none, sev, sev-es, sev-snp or tdx");
			s->cc = i;
		} else if (!strcmp(key, "gpus")) {
			if (yml_is_null(v))
				continue;
			if (v->type != YAML_SEQUENCE_NODE)
				return yml_error(y, v, "'gpus' must be a list of PCI addresses");
			for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
				yaml_node_t *g = yaml_document_get_node(&y->doc, *it);
				const char *a = yml_scalar(g);
				if (s->ngpus >= AG_MAX_GPUS)
					return yml_error(y, g, "more than %d GPUs", AG_MAX_GPUS);
				if (!a || ag_parse_pci(a, s->gpus[s->ngpus]))
					return yml_error(y, g, "not a PCI address: '%s'", a ? a : "(not a scalar)");
				s->ngpus++;
			}
		} else if (!strcmp(key, "network")) {
			if (load_network(y, v, s))
				return -1;
		} else if (!strcmp(key, "ready_timeout")) {
			if (yml_int(y, v, "ready_timeout", 1, 3600, &n))
				return -1;
			s->ready_timeout = (int)n;
		} else if (!strcmp(key, "vm_id")) {
			if (yml_int(y, v, "vm_id", 1, 4294967295L, &n))
				return -1;
			s->vm_id = (uint32_t)n;
		} else if (!strcmp(key, "port")) {
			if (yml_int(y, v, "port", 1, 65535, &n))
				return -1;
			s->port = (int)n;
		} else {
			yml_warn(y, k, "unknown key '%s' ignored", key);
		}
	}
	const char *missing = !s->id[0] ? "id" : !s->vcpus ? "vcpus" : !s->memory ? "memory" : !s->disk_url[0] ? "disk"
			    : (!s->ipv4[0] && !s->ipv6[0]) ? "network" : NULL;
	if (missing)
		return yml_error(y, root, "'%s' missing", missing);
	if (s->cc != AG_CC_NONE && s->firmware != AG_FW_EFI)
		return yml_error(y, root, "confidential '%s' needs 'boot.firmware: efi' (measured boot)", ag_cc_name(s->cc));
	/* SeaBIOS measures neither the kernel nor the initrd nor the command
	 * line: a boot it starts has nothing the validators could check. */
	if (s->attest && (s->firmware != AG_FW_EFI || !s->tpm || !s->kernel[0]))
		return yml_error(y, root, "'attest: true' needs %s",
				 s->firmware != AG_FW_EFI ? "'boot.firmware: efi' (SeaBIOS measures no kernel, initrd or command line)"
				 : !s->tpm ? "'tpm: true' (the quote comes from the vTPM)"
				 : "'boot.kernel' with its initrd (the initrd is what attests)");
	if (!s->mac[0]) { /* stable per id: locally administered, from a hash of the id */
		unsigned h = 2166136261u;
		for (const char *c = s->id; *c; c++)
			h = (h ^ (unsigned char)*c) * 16777619u;
		snprintf(s->mac, sizeof(s->mac), "52:54:00:%02x:%02x:%02x", h >> 16 & 0xff, h >> 8 & 0xff, h & 0xff);
	}
	return 0;
}

static void defaults(struct ag_spec *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->disk_format, "raw");
	s->ready_timeout = 120;
	s->port = 443;
}

int ag_spec_parse(const char *name, const char *text, size_t len, struct ag_spec *s, ag_warn_fn warn, char *err,
		  size_t errlen)
{
	struct yml y;
	defaults(s);
	if (yml_open_string(&y, name, text, len, warn, err, errlen))
		return -1;
	int rc = load_spec(&y, s);
	if (rc)
		snprintf(err, errlen, "%s", y.err);
	yml_close(&y);
	return rc;
}

int ag_spec_load(const char *path, struct ag_spec *s, ag_warn_fn warn, char *err, size_t errlen)
{
	struct yml y;
	defaults(s);
	if (yml_open(&y, path, warn, err, errlen))
		return -1;
	int rc = load_spec(&y, s);
	if (rc)
		snprintf(err, errlen, "%s", y.err);
	yml_close(&y);
	return rc;
}
