// SPDX-License-Identifier: Apache-2.0
/* The scan as JSON (veil-agent --scan). */
#include <string.h>
#include <json-c/json.h>

#include "agent.h"

char *ag_scan_json(const struct ag_scan *s)
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
	char *out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}
