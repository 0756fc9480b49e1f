// SPDX-License-Identifier: Apache-2.0
/* The scan as JSON (veil-agent --scan). */
#include <string.h>
#include <json-c/json.h>

#include "agent.h"

char *ag_scan_json(const struct ag_scan *s, const struct ag_domcaps *dc)
{
	json_object *o = json_object_new_object(), *cpu = json_object_new_object(), *cc = json_object_new_object();
	json_object_object_add(cpu, "count", json_object_new_int(s->cpus));
	json_object_object_add(cpu, "model", json_object_new_string(s->cpu_model));
	json_object_object_add(cc, "sev", json_object_new_boolean(s->sev));
	json_object_object_add(cc, "sev_es", json_object_new_boolean(s->sev_es));
	json_object_object_add(cc, "sev_snp", json_object_new_boolean(s->sev_snp));
	json_object_object_add(cc, "tdx", json_object_new_boolean(s->tdx));
	json_object_object_add(cpu, "flags", cc);
	json_object_object_add(o, "cpu", cpu);
	json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)s->mem_total));
	json_object *disk = json_object_new_object();
	json_object_object_add(disk, "image_dir", json_object_new_string(s->image_dir));
	json_object_object_add(disk, "free_bytes", json_object_new_int64((int64_t)s->disk_free));
	json_object_object_add(o, "disk", disk);
	json_object *gpus = json_object_new_array();
	for (int i = 0; i < s->ngpus; i++) {
		const struct ag_gpu *g = &s->gpus[i];
		json_object *j = json_object_new_object();
		char hex[16];
		json_object_object_add(j, "address", json_object_new_string(g->addr));
		snprintf(hex, sizeof(hex), "0x%06x", g->class_code);
		json_object_object_add(j, "class", json_object_new_string(hex));
		snprintf(hex, sizeof(hex), "0x%04x", g->vendor);
		json_object_object_add(j, "vendor", json_object_new_string(hex));
		snprintf(hex, sizeof(hex), "0x%04x", g->device);
		json_object_object_add(j, "device", json_object_new_string(hex));
		json_object_object_add(j, "iommu_group", g->iommu_group < 0 ? NULL : json_object_new_int(g->iommu_group));
		json_object_object_add(j, "iommu_group_alone", json_object_new_boolean(g->group_alone));
		json_object_array_add(gpus, j);
	}
	json_object_object_add(o, "gpus", gpus);
	json_object *tpm = json_object_new_object();
	json_object_object_add(tpm, "present", json_object_new_boolean(s->tpm));
	if (s->tpm)
		json_object_object_add(tpm, "version", json_object_new_int(s->tpm_version));
	json_object_object_add(o, "tpm", tpm);
	json_object *lv = NULL;
	if (dc) { /* what libvirt offers for VMs here */
		lv = json_object_new_object();
		json_object_object_add(lv, "domain_type", json_object_new_string(dc->domain_type));
		if (dc->kvm_unusable[0])
			json_object_object_add(lv, "kvm_unusable", json_object_new_string(dc->kvm_unusable));
		json_object_object_add(lv, "emulator", json_object_new_string(dc->emulator));
		json_object_object_add(lv, "machine", json_object_new_string(dc->machine));
		json_object *fw = json_object_new_array();
		for (int i = 0; i < dc->nloaders; i++)
			json_object_array_add(fw, json_object_new_string(dc->loaders[i]));
		json_object_object_add(lv, "efi", json_object_new_boolean(dc->efi));
		json_object_object_add(lv, "firmware", fw);
		json_object *tm = json_object_new_array();
		if (dc->tpm && dc->tpm_tis)
			json_object_array_add(tm, json_object_new_string("tpm-tis"));
		if (dc->tpm && dc->tpm_crb)
			json_object_array_add(tm, json_object_new_string("tpm-crb"));
		json_object_object_add(lv, "tpm_models", tm);
		json_object_object_add(lv, "tpm_emulator", json_object_new_boolean(dc->tpm_emulator));
		json_object *ls = json_object_new_array();
		if (dc->sev)
			json_object_array_add(ls, json_object_new_string("sev"));
		if (dc->sev_es)
			json_object_array_add(ls, json_object_new_string("sev-es"));
		if (dc->sev_snp)
			json_object_array_add(ls, json_object_new_string("sev-snp"));
		if (dc->tdx)
			json_object_array_add(ls, json_object_new_string("tdx"));
		json_object_object_add(lv, "launch_security", ls);
		json_object_object_add(lv, "hostdev_pci", json_object_new_boolean(dc->hostdev_pci));
	}
	json_object_object_add(o, "libvirt", lv);
	char *out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}
