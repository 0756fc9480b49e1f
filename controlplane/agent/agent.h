/* SPDX-License-Identifier: Apache-2.0 */
/* veil-agent, the node's hypervisor role: node config, hardware scan,
 * resource checks, VM specs and their libvirt domains.  The transport role
 * (veil-node, dataplane/) is apart; nothing here touches BPF. */
#ifndef VEIL_AGENT_H
#define VEIL_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AG_MAX_GPUS 16
#define AG_PCI_LEN 16 /* "dddd:bb:dd.f" + NUL */

/* ---------- node config ($HOME/.leea/config) ---------- */

struct ag_cfg {
	char path[512];
	char node_key[256]; /* secret: never printed or logged */
	int cpu;            /* 0 = not set */
	uint64_t ram, disk; /* bytes; 0 = not set */
	int ngpus;          /* 0 = all GPUs */
	char gpus[AG_MAX_GPUS][AG_PCI_LEN]; /* normalized dddd:bb:dd.f */
	int gpu_line[AG_MAX_GPUS], gpu_col[AG_MAX_GPUS];
	/* store: the cluster store feeds the orders (docs/agent.md); urls "" = spec-dir only */
	char store_urls[512];
	char store_creds[256];     /* NATS credentials file, "" = none */
	char controller_pub[256];  /* the controller's Ed25519 public key (PEM) */
	char node_signing_key[256]; /* this node's Ed25519 private key (PEM): reports are signed with it */
	char node_id[80];          /* the node's id in the store ([a-z0-9-], hex of sha256(EK) once joined) */
	int heartbeat_s;           /* seconds between heartbeats (default 5) */
	char registry_ca[256];     /* CA of the registry's HTTPS (images, kernels), "" = the system's */
};

/* Warnings (unknown keys) go to warn(file:line:col: ...), may be NULL. */
typedef void (*ag_warn_fn)(const char *msg);
int ag_cfg_load(const char *path, struct ag_cfg *c, ag_warn_fn warn, char *err, size_t errlen);
/* The default path: $HOME/.leea/config. */
void ag_cfg_default_path(char *buf, size_t len);

/* "64gb", "512MB", "1.5tb": binary units (kb = 1024 bytes).  -1 with a reason. */
int ag_parse_size(const char *s, uint64_t *out, const char **why);
/* "0000:41:00.0" or "41:00.0" -> "0000:41:00.0".  -1 if not a PCI address. */
int ag_parse_pci(const char *s, char out[AG_PCI_LEN]);

/* ---------- hardware scan ---------- */

struct ag_gpu {
	char addr[AG_PCI_LEN];
	unsigned class_code, vendor, device;
	int iommu_group;     /* -1: none (no IOMMU) */
	int group_size;      /* devices in that group */
	bool group_alone;    /* the group holds only functions of this card */
};

struct ag_scan {
	char root[512];           /* prefix for /proc and /sys ("" = the host) */
	int cpus;
	char cpu_model[128];
	bool sev, sev_es, sev_snp, tdx;
	uint64_t mem_total;       /* bytes */
	char image_dir[512];
	uint64_t disk_free;       /* bytes free under image_dir */
	int ngpus;
	struct ag_gpu gpus[64];
	bool tpm;
	int tpm_version;          /* 1 or 2, 0 unknown */
};

int ag_scan_host(const char *root, const char *image_dir, struct ag_scan *s, char *err, size_t errlen);
/* A PCI function by address, any class (NULL if absent).  Fills *gpu
 * with what the scan would say about it. */
int ag_scan_pci(const struct ag_scan *s, const char *addr, struct ag_gpu *out);
struct ag_domcaps;
/* The scan as pretty JSON (malloc'd); dc NULL: libvirt not reached. */
char *ag_scan_json(const struct ag_scan *s, const struct ag_domcaps *dc);
/* The configured resources against the scan: -1 with the first reason. */
int ag_check_resources(const struct ag_cfg *c, const struct ag_scan *s, char *err, size_t errlen);


/* ---------- VM specs ---------- */

enum ag_cc { AG_CC_NONE, AG_CC_SEV, AG_CC_SEV_ES, AG_CC_SEV_SNP, AG_CC_TDX };
enum ag_fw { AG_FW_BIOS, AG_FW_EFI };

struct ag_spec {
	char id[33];              /* [a-z0-9-], the domain is "veil-<id>" */
	int vcpus;
	uint64_t memory;          /* bytes */
	char disk_url[1024];      /* http(s):// or file:// */
	char disk_sha256[65];     /* lowercase hex */
	char disk_format[8];      /* raw or qcow2 */
	char kernel[512], initrd[512], cmdline[1024]; /* direct boot (kernel set): paths, or http(s) URLs */
	char kernel_sha256[65], initrd_sha256[65];     /* needed when kernel/initrd are URLs (fetched like the disk) */
	enum ag_fw firmware;
	bool tpm;
	bool attest;              /* its initrd attests for the disk key: efi + vTPM required */
	enum ag_cc cc;
	int ngpus;
	char gpus[AG_MAX_GPUS][AG_PCI_LEN];
	char mac[18];             /* 52:54:00:xx:xx:xx; derived from id when absent */
	char ipv4[64], gw4[64];   /* "198.18.50.2/24", "198.18.50.1" */
	char ipv6[64], gw6[64];
	int ready_timeout;        /* seconds */
	int port;                 /* the service the readiness check opens (443) */
	uint32_t vm_id;           /* the VM's id in the gateways' routes (veil-node's table); 0 = none */
};

/* A spec from YAML (or JSON) text or file: -1 with file:line:column. */
int ag_spec_load(const char *path, struct ag_spec *s, ag_warn_fn warn, char *err, size_t errlen);
int ag_spec_parse(const char *name, const char *text, size_t len, struct ag_spec *s, ag_warn_fn warn, char *err,
		  size_t errlen);
const char *ag_cc_name(enum ag_cc cc);

/* The monotonic clock in seconds; libvirt's last error's message, or
 * fallback when it has none (controlplane/agent/daemon.c). */
double ag_now(void);
const char *ag_virt_err(const char *fallback);

/* ---------- libvirt domain capabilities (virConnectGetDomainCapabilities) ---------- */

struct ag_domcaps {
	char domain_type[16];   /* qemu or kvm */
	char emulator[256];
	char machine[64];
	char arch[16];
	bool efi;               /* firmware efi offered */
	int nloaders;
	char loaders[8][256];   /* OVMF code images */
	bool tpm, tpm_crb, tpm_tis, tpm_emulator;
	bool hostdev_pci;
	bool sev, sev_es, sev_snp, tdx;
	int cbitpos, reduced_phys_bits;
	char kvm_unusable[256];  /* why KVM was offered and not taken ("": it was not offered, or runs) */
};

/* -1 with a reason if the text is not domain capabilities. */
int ag_domcaps_parse(const char *xml, size_t len, struct ag_domcaps *dc, char *err, size_t errlen);

/* 0 when the emulator runs the agent's vCPU (host-passthrough) under KVM:
 * the machine built and its vCPU reset, paused; -1 with the reason
 * (controlplane/agent/kvm.c). */
int ag_kvm_probe(const char *emulator, const char *machine, char *why, size_t whylen);

/* libvirt's domain capabilities for the agent's VMs (q35, x86_64), on KVM
 * when it is offered and ag_kvm_probe says it runs, else on software
 * emulation with kvm_unusable saying why; -1 with the reason. */
typedef struct _virConnect *virConnectPtr;
int ag_domcaps_get(virConnectPtr c, struct ag_domcaps *dc, char *err, size_t errlen);

/* Where the agent keeps one VM's things; chosen by the agent, not the order. */
struct ag_vm_paths {
	char disk[512];
	char console_log[512];
	char nvram[512];        /* per-VM OVMF variables (efi) */
	char nvram_template[512];
	char tap[16];
	char domain_name[64];   /* "" = veil-<id> */
	char cmdline_extra[512]; /* appended to the spec's cmdline (addresses) */
};

/* The libvirt domain for a spec on a host: a pure function.  Returns the
 * XML (malloc'd) or NULL with the reason the host cannot run the spec. */
char *ag_domain_xml(const struct ag_spec *s, const struct ag_domcaps *dc, const struct ag_vm_paths *p, char *err,
		    size_t errlen);

#endif
