// SPDX-License-Identifier: Apache-2.0
/* veil-controller's scheduler (ctl.h): fit, spread, never over-commit.  Pure. */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

static int free_gpus(const struct ctl_node *n)
{
	int c = 0;
	for (int i = 0; i < n->ngpus; i++)
		c += !(n->gpu_used & (1u << i));
	return c;
}

/* The most loaded dimension after placing w, in millionths. */
static long load_after(const struct ctl_node *n, const struct ctl_want *w)
{
	long a = (long)(n->used_cpu + w->cpu) * 1000000 / n->cpu;
	long b = (long)(n->used_ram + w->ram_mb) * 1000000 / n->ram_mb;
	long c = (long)(n->used_disk + w->disk_gb) * 1000000 / n->disk_gb;
	long m = a > b ? a : b;
	return m > c ? m : c;
}

int ctl_pick(const struct ctl_node *nodes, int n, const struct ctl_want *w, char *why, size_t whylen)
{
	int best = -1, up = 0, fit_res = 0, fit_cc = 0;
	long best_load = 0;
	for (int i = 0; i < n; i++) {
		const struct ctl_node *x = &nodes[i];
		if (!x->up || (w->exclude && !strcmp(w->exclude, x->id)) || x->cpu <= 0 || x->ram_mb <= 0 || x->disk_gb <= 0)
			continue;
		up++;
		if (x->used_cpu + w->cpu > x->cpu || x->used_ram + w->ram_mb > x->ram_mb ||
		    x->used_disk + w->disk_gb > x->disk_gb || free_gpus(x) < w->gpus)
			continue;
		fit_res++;
		if (!(x->cc & w->cc))
			continue;
		fit_cc++;
		long l = load_after(x, w);
		if (best < 0 || l < best_load || (l == best_load && (x->vms < nodes[best].vms ||
				(x->vms == nodes[best].vms && strcmp(x->id, nodes[best].id) < 0)))) {
			best = i;
			best_load = l;
		}
	}
	if (best < 0 && why) {
		if (!up)
			snprintf(why, whylen, "no node is up");
		else if (!fit_res)
			snprintf(why, whylen, "no node has %d cpu, %d MB RAM, %d GB disk and %d GPUs left", w->cpu, w->ram_mb,
				 w->disk_gb, w->gpus);
		else
			snprintf(why, whylen, "no node with room offers confidential mode %s", ctl_cc_name(w->cc));
	}
	return best;
}

int ctl_commit(struct ctl_node *x, const struct ctl_want *w, int *gpu_idx)
{
	if (x->used_cpu + w->cpu > x->cpu || x->used_ram + w->ram_mb > x->ram_mb || x->used_disk + w->disk_gb > x->disk_gb ||
	    free_gpus(x) < w->gpus)
		return -1;
	x->used_cpu += w->cpu;
	x->used_ram += w->ram_mb;
	x->used_disk += w->disk_gb;
	x->vms++;
	for (int i = 0, k = 0; i < x->ngpus && k < w->gpus; i++)
		if (!(x->gpu_used & (1u << i))) {
			x->gpu_used |= 1u << i;
			if (gpu_idx)
				gpu_idx[k] = i;
			k++;
		}
	return 0;
}
