// SPDX-License-Identifier: Apache-2.0
/* The hardware scan at every start: CPUs and their confidential-computing
 * flags, memory, free disk under the image directory, GPUs (PCI class
 * 0x03xx) with their IOMMU groups, the TPM.  Everything is read under a
 * root prefix, so tests scan fake /proc and /sys trees. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent.h"

static FILE *ropen(const struct ag_scan *s, const char *path)
{
	char p[PATH_MAX + 600];
	snprintf(p, sizeof(p), "%s%s", s->root, path);
	return fopen(p, "r");
}

static int read_hex(const struct ag_scan *s, const char *path, unsigned *out)
{
	FILE *f = ropen(s, path);
	if (!f)
		return -1;
	int ok = fscanf(f, "%x", out) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

static bool has_flag(const char *flags, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = flags; (p = strstr(p, name)); p += n)
		if ((p == flags || p[-1] == ' ' || p[-1] == '\t') && (p[n] == 0 || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

static int scan_cpus(struct ag_scan *s, char *err, size_t errlen)
{
	FILE *f = ropen(s, "/proc/cpuinfo");
	char line[8192];
	if (!f) {
		snprintf(err, errlen, "%s/proc/cpuinfo: %s", s->root, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, ':');
		if (!v)
			continue;
		v++;
		while (*v == ' ')
			v++;
		if (!strncmp(line, "processor", 9)) {
			s->cpus++;
		} else if (!strncmp(line, "model name", 10) && !s->cpu_model[0]) {
			snprintf(s->cpu_model, sizeof(s->cpu_model), "%s", v);
			s->cpu_model[strcspn(s->cpu_model, "\n")] = 0;
		} else if (!strncmp(line, "flags", 5) && s->cpus == 1) {
			s->sev = has_flag(v, "sev");
			s->sev_es = has_flag(v, "sev_es");
			s->sev_snp = has_flag(v, "sev_snp");
			s->tdx = has_flag(v, "tdx") || has_flag(v, "tdx_host_platform");
		}
	}
	fclose(f);
	if (!s->cpus) {
		snprintf(err, errlen, "%s/proc/cpuinfo: no processors listed", s->root);
		return -1;
	}
	return 0;
}

static int scan_mem(struct ag_scan *s, char *err, size_t errlen)
{
	FILE *f = ropen(s, "/proc/meminfo");
	char line[256];
	unsigned long long kb = 0;
	if (!f) {
		snprintf(err, errlen, "%s/proc/meminfo: %s", s->root, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	fclose(f);
	if (!kb) {
		snprintf(err, errlen, "%s/proc/meminfo: no MemTotal", s->root);
		return -1;
	}
	s->mem_total = kb * 1024;
	return 0;
}

/* The IOMMU group of a PCI function: the last part of its iommu_group link. */
static int iommu_group_of(const struct ag_scan *s, const char *addr)
{
	char p[PATH_MAX], t[PATH_MAX];
	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices/%s/iommu_group", s->root, addr);
	ssize_t n = readlink(p, t, sizeof(t) - 1);
	if (n <= 0)
		return -1;
	t[n] = 0;
	const char *b = strrchr(t, '/');
	return atoi(b ? b + 1 : t);
}

/* Same card: same domain, bus and device; only the function differs. */
static bool same_slot(const char *a, const char *b)
{
	return !strncmp(a, b, 10);
}

static void group_info(const struct ag_scan *s, struct ag_gpu *g)
{
	char p[PATH_MAX];
	g->group_size = 0;
	g->group_alone = g->iommu_group < 0 ? false : true;
	if (g->iommu_group < 0)
		return;
	snprintf(p, sizeof(p), "%s/sys/kernel/iommu_groups/%d/devices", s->root, g->iommu_group);
	DIR *d = opendir(p);
	if (!d) {
		g->group_alone = false;
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		g->group_size++;
		if (!same_slot(e->d_name, g->addr))
			g->group_alone = false;
	}
	closedir(d);
}

int ag_scan_pci(const struct ag_scan *s, const char *addr, struct ag_gpu *g)
{
	char p[PATH_MAX];
	struct stat st;
	memset(g, 0, sizeof(*g));
	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices/%s", s->root, addr);
	if (stat(p, &st))
		return -1;
	snprintf(g->addr, sizeof(g->addr), "%s", addr);
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/class", addr);
	read_hex(s, p, &g->class_code);
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vendor", addr);
	read_hex(s, p, &g->vendor);
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/device", addr);
	read_hex(s, p, &g->device);
	g->iommu_group = iommu_group_of(s, addr);
	group_info(s, g);
	return 0;
}

static int cmp_gpu(const void *a, const void *b)
{
	return strcmp(((const struct ag_gpu *)a)->addr, ((const struct ag_gpu *)b)->addr);
}

static void scan_gpus(struct ag_scan *s)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices", s->root);
	DIR *d = opendir(p);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) && s->ngpus < (int)(sizeof(s->gpus) / sizeof(s->gpus[0]))) {
		struct ag_gpu g;
		if (e->d_name[0] == '.' || strlen(e->d_name) >= AG_PCI_LEN)
			continue;
		if (ag_scan_pci(s, e->d_name, &g) || (g.class_code >> 16) != 0x03)
			continue;
		s->gpus[s->ngpus++] = g;
	}
	closedir(d);
	qsort(s->gpus, s->ngpus, sizeof(s->gpus[0]), cmp_gpu);
}

static void scan_tpm(struct ag_scan *s)
{
	char p[PATH_MAX];
	struct stat st;
	snprintf(p, sizeof(p), "%s/sys/class/tpm/tpm0", s->root);
	s->tpm = stat(p, &st) == 0;
	if (s->tpm) {
		unsigned v = 0;
		if (!read_hex(s, "/sys/class/tpm/tpm0/tpm_version_major", &v))
			s->tpm_version = (int)v;
	}
}

int ag_scan_host(const char *root, const char *image_dir, struct ag_scan *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->root, sizeof(s->root), "%s", root && strcmp(root, "/") ? root : "");
	snprintf(s->image_dir, sizeof(s->image_dir), "%s", image_dir);
	if (scan_cpus(s, err, errlen) || scan_mem(s, err, errlen))
		return -1;
	/* The image directory may not exist yet: measure the nearest parent that does. */
	char dir[PATH_MAX];
	struct statvfs vf;
	snprintf(dir, sizeof(dir), "%s", image_dir);
	while (statvfs(dir, &vf)) {
		char *sl = strrchr(dir, '/');
		if (!sl || sl == dir) {
			strcpy(dir, "/");
			if (statvfs(dir, &vf)) {
				snprintf(err, errlen, "%s: %s", image_dir, strerror(errno));
				return -1;
			}
			break;
		}
		*sl = 0;
	}
	s->disk_free = (uint64_t)vf.f_bavail * vf.f_frsize;
	scan_gpus(s);
	scan_tpm(s);
	return 0;
}

static void human(uint64_t b, char *buf, size_t len)
{
	const char *u[] = { "bytes", "kb", "mb", "gb", "tb" };
	int i = 0;
	double v = (double)b;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f%s" : "%.0f %s", v, u[i]);
}

int ag_check_resources(const struct ag_cfg *c, const struct ag_scan *s, char *err, size_t errlen)
{
	char a[32], b[32];
	if (c->cpu > s->cpus) {
		snprintf(err, errlen, "%s: resources.cpu is %d but this host has %d CPUs", c->path, c->cpu, s->cpus);
		return -1;
	}
	if (c->ram > s->mem_total) {
		human(c->ram, a, sizeof(a));
		human(s->mem_total, b, sizeof(b));
		snprintf(err, errlen, "%s: resources.ram is %s but this host has %s of memory", c->path, a, b);
		return -1;
	}
	if (c->disk > s->disk_free) {
		human(c->disk, a, sizeof(a));
		human(s->disk_free, b, sizeof(b));
		snprintf(err, errlen, "%s: resources.disk is %s but %s has %s free", c->path, a, s->image_dir, b);
		return -1;
	}
	for (int i = 0; i < c->ngpus; i++) {
		struct ag_gpu g;
		const char *at = c->gpus[i];
		if (ag_scan_pci(s, at, &g)) {
			snprintf(err, errlen, "%s:%d:%d: GPU %s: no such PCI device on this host", c->path,
				 c->gpu_line[i], c->gpu_col[i], at);
			return -1;
		}
		/* A listed function must be a GPU, or another function of a GPU's card (its audio). */
		bool card = (g.class_code >> 16) == 0x03;
		for (int j = 0; !card && j < s->ngpus; j++)
			card = same_slot(s->gpus[j].addr, at);
		if (!card) {
			snprintf(err, errlen, "%s:%d:%d: %s is not a GPU (PCI class 0x%06x) nor a function of one",
				 c->path, c->gpu_line[i], c->gpu_col[i], at, g.class_code);
			return -1;
		}
		if (g.iommu_group < 0) {
			snprintf(err, errlen, "%s:%d:%d: GPU %s has no IOMMU group (IOMMU off?): it cannot be assigned",
				 c->path, c->gpu_line[i], c->gpu_col[i], at);
			return -1;
		}
		if (!g.group_alone) {
			snprintf(err, errlen,
				 "%s:%d:%d: GPU %s is not in its own IOMMU group (group %d holds %d devices, some of "
				 "other cards): it cannot be assigned alone",
				 c->path, c->gpu_line[i], c->gpu_col[i], at, g.iommu_group, g.group_size);
			return -1;
		}
	}
	return 0;
}
