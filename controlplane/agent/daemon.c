// SPDX-License-Identifier: Apache-2.0
/*
 * veil-agent's running loop.  The orders are spec files in a directory
 * (one VM per file; removing the file deletes the VM); the agent makes
 * the world match them through libvirt's C API:
 *
 *   ordered -> fetching (image over HTTP(S), sha256, cache)
 *           -> launching (tap, domain defined and started, tap moved to the
 *              node's namespace and configured, handed to veil-node)
 *           -> booting (TLS handshake with the VM's port through the node)
 *           -> ready | failed (with a reason; a crash is reported, never
 *              restarted in a loop)
 *
 * Domain events come from libvirt's event loop on a thread of their own.
 * A restarted agent finds its domains by name (PREFIX<id>), makes sure by
 * their metadata that they are its own, and adopts them.
 */
#include <dirent.h>
#include <pwd.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "daemon.h"
#include "storefeed.h"
#include "vmm.h"

#define NS_URI "https://veilmesh.dev/xmlns/agent/1"
#define MAX_VMS 64

enum vm_state { ST_ORDERED, ST_FETCHING, ST_LAUNCHING, ST_BOOTING, ST_READY, ST_FAILED };

struct vm {
	bool used, seen;
	struct ag_spec spec;
	char spec_path[600];
	time_t spec_mtime;
	enum vm_state state;
	double t_ordered, t_started, t_next_probe;
	char dom_name[64], tap[16], dir[600], disk[700], console[700];
	pthread_t fetcher;
	bool fetching;
	atomic_int fetch_done, fetch_rc;
	volatile int fetch_stop;
	char fetch_err[512], image[700];
	char kimage[700], iimage[700]; /* kernel and initrd fetched by URL (cache paths), or "" */
	atomic_int stopped_event; /* set by the event thread */
	int stopped_detail;
	double t_retry; /* no download before this time */
	int retries;
	uint64_t disk_bytes; /* its disk, counted against resources.disk */
	bool adopted;
	/* ordered through the cluster store (spec_path "store:<vm_id>") */
	bool from_store;
	uint64_t gen;
	char reported[16], report_reason[512];
	bool report_pending;
	double t_report_retry;
	bool waiting_slot; /* fetched, waiting for a boot slot (max_booting) */
	bool in_node_table; /* our line is in veil-node's VM table */
};

static struct ag_daemon *D;
static struct vm vms[MAX_VMS];
static virConnectPtr conn;
static struct ag_domcaps domcaps;
static atomic_int event_thread_run = 1;

double ag_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *ag_virt_err(const char *fallback)
{
	const virError *e = virGetLastError();
	return e && e->message ? e->message : fallback;
}

static const char *virt_err(void)
{
	return ag_virt_err("unknown libvirt error");
}

static void quiet_errors(void *arg, virErrorPtr e)
{
}

/* ---------- resources ---------- */

static void used_resources(int *cpu, uint64_t *mem, const struct vm *except)
{
	*cpu = 0;
	*mem = 0;
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used && &vms[i] != except && vms[i].state != ST_FAILED) {
			*cpu += vms[i].spec.vcpus;
			*mem += vms[i].spec.memory;
		}
}

static int admit(struct vm *v, char *why, size_t len)
{
	int cpu;
	uint64_t mem;
	int cpu_cap = D->cfg->cpu ? D->cfg->cpu : D->scan->cpus;
	uint64_t mem_cap = D->cfg->ram ? D->cfg->ram : D->scan->mem_total;
	used_resources(&cpu, &mem, v);
	if (cpu + v->spec.vcpus > cpu_cap) {
		snprintf(why, len, "needs %d vCPUs, %d of %d left", v->spec.vcpus, cpu_cap - cpu, cpu_cap);
		return -1;
	}
	if (mem + v->spec.memory > mem_cap) {
		snprintf(why, len, "needs %llu MiB of memory, %llu MiB of %llu left",
			 (unsigned long long)(v->spec.memory >> 20), (unsigned long long)((mem_cap - mem) >> 20),
			 (unsigned long long)(mem_cap >> 20));
		return -1;
	}
	for (int g = 0; g < v->spec.ngpus; g++) {
		bool allowed = D->cfg->ngpus == 0;
		for (int k = 0; k < D->cfg->ngpus; k++)
			allowed |= !strcmp(D->cfg->gpus[k], v->spec.gpus[g]);
		if (!allowed) {
			snprintf(why, len, "GPU %s is not among resources.gpus", v->spec.gpus[g]);
			return -1;
		}
	}
	return 0;
}

/* ---------- the transport role: veil-node's VM table ---------- */

/* Our lines in veil-node's config end with "# veil-agent <id>". */
static int node_table(struct vm *v, bool add, char *err, size_t errlen)
{
	if (!D->node_config || !v->spec.vm_id)
		return 0;
	char tmp[700], mark[64], line[512];
	snprintf(tmp, sizeof(tmp), "%s.agent-tmp", D->node_config);
	snprintf(mark, sizeof(mark), "# veil-agent %s\n", v->spec.id);
	FILE *in = fopen(D->node_config, "r"), *out = fopen(tmp, "w");
	if (!in || !out) {
		snprintf(err, errlen, "%s: %s", in ? tmp : D->node_config, strerror(errno));
		if (in)
			fclose(in);
		if (out)
			fclose(out);
		return -1;
	}
	while (fgets(line, sizeof(line), in)) {
		size_t n = strlen(line), m = strlen(mark);
		if (n >= m && !strcmp(line + n - m, mark))
			continue;
		fputs(line, out);
	}
	fclose(in);
	if (add) {
		char a4[64] = "", a6[64] = "";
		snprintf(a4, sizeof(a4), "%s", v->spec.ipv4);
		a4[strcspn(a4, "/")] = 0;
		snprintf(a6, sizeof(a6), "%s", v->spec.ipv6);
		a6[strcspn(a6, "/")] = 0;
		fprintf(out, "vm %u %s %s %s %s %s", v->spec.vm_id, v->tap, v->spec.mac, a4, a6, mark);
	}
	if (fclose(out) || rename(tmp, D->node_config)) {
		snprintf(err, errlen, "%s: %s", D->node_config, strerror(errno));
		return -1;
	}
	v->in_node_table = add;
	if (!D->node_socket)
		return 0;
	/* veil-node reloads its VM table (and attaches its TC program to new taps) */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", D->node_socket);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || write(fd, "reload\n", 7) != 7) {
		snprintf(err, errlen, "veil-node at %s: %s", D->node_socket, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char reply[512];
	ssize_t r = read(fd, reply, sizeof(reply) - 1);
	close(fd);
	reply[r > 0 ? r : 0] = 0;
	reply[strcspn(reply, "\n")] = 0;
	if (!strstr(reply, "\"ok\": true")) {
		snprintf(err, errlen, "veil-node refused the VM table: %s", reply[0] ? reply : "no answer");
		return -1;
	}
	return 0;
}

/* ---------- naming ---------- */

static void names(struct vm *v)
{
	unsigned h = 2166136261u;
	for (const char *c = D->prefix; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	for (const char *c = v->spec.id; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	snprintf(v->dom_name, sizeof(v->dom_name), "%s%s", D->prefix, v->spec.id);
	snprintf(v->tap, sizeof(v->tap), "vt%08x", h);
	snprintf(v->dir, sizeof(v->dir), "%s/%s", D->state_dir, v->spec.id);
	snprintf(v->disk, sizeof(v->disk), "%s/disk.%s", v->dir, v->spec.disk_format);
	snprintf(v->console, sizeof(v->console), "%s/console.log", v->dir);
}

/* The last lines of the VM's console, for a failure report. */
static void console_tail(const struct vm *v, char *out, size_t len)
{
	out[0] = 0;
	FILE *f = fopen(v->console, "r");
	if (!f)
		return;
	static char buf[4096];
	fseek(f, 0, SEEK_END);
	long sz = ftell(f), from = sz > (long)sizeof(buf) - 1 ? sz - (long)sizeof(buf) + 1 : 0;
	fseek(f, from, SEEK_SET);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	int lines = 0;
	char *p = buf + n;
	while (p > buf && lines < 6)
		if (*--p == '\n' && p != buf + n - 1)
			lines++;
	for (char *q = p; *q; q++)
		if (*q == '\n' || *q == '\r')
			*q = '|';
		else if (*q == '"')
			*q = '\'';
	snprintf(out, len, "%s", p);
}

/* ---------- reports to the store (vmstatus/<vm_id>) ---------- */

static void report_flush(struct vm *v)
{
	char a4[64], a6[64];
	snprintf(a4, sizeof(a4), "%s", v->spec.ipv4);
	a4[strcspn(a4, "/")] = 0;
	snprintf(a6, sizeof(a6), "%s", v->spec.ipv6);
	a6[strcspn(a6, "/")] = 0;
	if (ag_feed_status(D->feed, v->spec.id, v->reported, v->report_reason, a4, a6)) {
		v->report_pending = true; /* the store is away: again in a while */
		v->t_report_retry = ag_now() + 2;
	} else {
		v->report_pending = false;
	}
}

/* A lifecycle event of a store-ordered VM: fetching, launching, attesting,
 * ready, failed (with the reason), deleted. */
static void report(struct vm *v, const char *state, const char *reason)
{
	if (!v->from_store || !D->feed)
		return;
	snprintf(v->reported, sizeof(v->reported), "%s", state);
	snprintf(v->report_reason, sizeof(v->report_reason), "%s", reason ? reason : "");
	report_flush(v);
}

static void fail(struct vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct vm *v, const char *fmt, ...)
{
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	v->state = ST_FAILED;
	ag_log("event=vm_failed id=%s reason=\"%s\"", v->spec.id, why);
	report(v, "failed", why);
	/* Out of veil-node's table: the node then answers its connections'
	 * packets with a RST (node_mesh), so their clients learn at once
	 * instead of retransmitting into a VM that is gone. */
	if (v->in_node_table) {
		char err[512];
		if (node_table(v, false, err, sizeof(err)))
			ag_log("event=node_table_failed id=%s reason=\"%s\"", v->spec.id, err);
	}
	/* A failed VM is stopped, never restarted: its resources go back to the
	 * node; the definition, console log and disk stay for a look until the
	 * order is deleted. */
	virDomainPtr d = conn ? virDomainLookupByName(conn, v->dom_name) : NULL;
	if (d) {
		if (virDomainIsActive(d) == 1 && virDomainDestroy(d))
			ag_log("event=destroy_failed id=%s reason=\"%s\"", v->spec.id, virt_err());
		virDomainFree(d);
	}
	atomic_store(&v->stopped_event, 0); /* our own destroy is not news */
}

/* ---------- teardown ---------- */

static void teardown(struct vm *v, bool remove_files)
{
	char err[512] = "";
	if (v->fetching) {
		v->fetch_stop = 1;
		pthread_join(v->fetcher, NULL);
		v->fetching = false;
	}
	if (node_table(v, false, err, sizeof(err)))
		ag_log("event=node_table_failed id=%s reason=\"%s\"", v->spec.id, err);
	virDomainPtr d = virDomainLookupByName(conn, v->dom_name);
	if (d) {
		int active = virDomainIsActive(d);
		if (active == 1 && virDomainDestroy(d))
			ag_log("event=destroy_failed id=%s reason=\"%s\"", v->spec.id, virt_err());
		if (virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_TPM |
						      VIR_DOMAIN_UNDEFINE_MANAGED_SAVE))
			ag_log("event=undefine_failed id=%s reason=\"%s\"", v->spec.id, virt_err());
		virDomainFree(d);
	}
	ag_tap_delete(v->tap, D->libvirt_ns);
	if (ag_nft_vm_del(v->tap, err, sizeof(err)))
		ag_log("event=nft_failed id=%s reason=\"%s\"", v->spec.id, err);
	if (remove_files) {
		char p[800];
		char kf[800], inf[800];
		snprintf(kf, sizeof(kf), "%s/vmlinuz", v->dir);
		snprintf(inf, sizeof(inf), "%s/initrd.img", v->dir);
		const char *files[] = { v->disk, v->console, kf, inf, NULL };
		for (int i = 0; files[i]; i++)
			unlink(files[i]);
		snprintf(p, sizeof(p), "%s/VARS.fd", v->dir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/status", v->dir);
		unlink(p);
		rmdir(v->dir);
	}
}

/* ---------- launching ---------- */

static void *fetch_thread(void *arg)
{
	struct vm *v = arg;
	int rc = ag_fetch(v->spec.disk_url, v->spec.disk_sha256, D->cache_dir, v->image, sizeof(v->image),
			  &v->fetch_stop, v->fetch_err, sizeof(v->fetch_err));
	/* a kernel and initrd given by URL (the registry's) come the same way */
	v->kimage[0] = v->iimage[0] = 0;
	if (!rc && v->spec.kernel[0] && v->spec.kernel[0] != '/')
		rc = ag_fetch(v->spec.kernel, v->spec.kernel_sha256, D->cache_dir, v->kimage, sizeof(v->kimage),
			      &v->fetch_stop, v->fetch_err, sizeof(v->fetch_err));
	if (!rc && v->spec.initrd[0] && v->spec.initrd[0] != '/')
		rc = ag_fetch(v->spec.initrd, v->spec.initrd_sha256, D->cache_dir, v->iimage, sizeof(v->iimage),
			      &v->fetch_stop, v->fetch_err, sizeof(v->fetch_err));
	atomic_store(&v->fetch_rc, rc);
	atomic_store(&v->fetch_done, 1);
	return NULL;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1;
	struct stat st;
	if (in < 0 || fstat(in, &st)) {
		snprintf(err, errlen, "%s: %s", from, strerror(errno));
		goto bad;
	}
	char tmp[800];
	snprintf(tmp, sizeof(tmp), "%s.tmp", to);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto bad;
	}
	off_t left = st.st_size;
	while (left > 0) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, left, 0);
		if (n <= 0) {
			snprintf(err, errlen, "copying the image to %s: %s", to, n ? strerror(errno) : "short");
			goto bad;
		}
		left -= n;
	}
	close(in);
	if (close(out) || rename(tmp, to)) {
		snprintf(err, errlen, "%s: %s", to, strerror(errno));
		return -1;
	}
	return 0;
bad:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return -1;
}

/* The node's manufactured vTPM (--vtpm-state): placed where libvirt keeps the
 * domain's TPM state before the first start, owned by tss, so libvirt skips
 * its own swtpm_setup and the VM's EK is the one the registry recorded
 * (docs/launch.md).  Undefining the domain removes it (UNDEFINE_TPM). */
static int place_vtpm(virDomainPtr d, char *err, size_t errlen)
{
	char uuid[VIR_UUID_STRING_BUFLEN], dir[256], f[320];
	if (virDomainGetUUIDString(d, uuid)) {
		snprintf(err, errlen, "no domain UUID: %s", virt_err());
		return -1;
	}
	snprintf(dir, sizeof(dir), "/var/lib/libvirt/swtpm/%s", uuid);
	snprintf(f, sizeof(f), "%s/tpm2/tpm2-00.permall", dir);
	if (!access(f, F_OK))
		return 0; /* placed before (a restart of the same domain) */
	struct passwd *pw = getpwnam("tss");
	uid_t u = pw ? pw->pw_uid : 0;
	gid_t g = pw ? pw->pw_gid : 0;
	char sub[300];
	snprintf(sub, sizeof(sub), "%s/tpm2", dir);
	mkdir("/var/lib/libvirt/swtpm", 0711);
	if ((mkdir(dir, 0700) && errno != EEXIST) || (mkdir(sub, 0700) && errno != EEXIST)) {
		snprintf(err, errlen, "%s: %s", sub, strerror(errno));
		return -1;
	}
	char e2[256] = "";
	if (copy_file(D->vtpm_state, f, e2, sizeof(e2)) || chmod(f, 0600) || chown(f, u, g) || chown(sub, u, g) ||
	    chown(dir, u, g)) {
		snprintf(err, errlen, "placing the vTPM state %s: %s", f, e2[0] ? e2 : strerror(errno));
		return -1;
	}
	return 0;
}

static void launch(struct vm *v)
{
	char err[1024] = "";
	struct stat st;
	mkdir(v->dir, 0711); /* qemu runs as its own user: it must reach the disk */
	if (!stat(v->image, &st)) {
		uint64_t used = 0, cap = D->cfg->disk ? D->cfg->disk : D->scan->disk_free;
		for (int i = 0; i < MAX_VMS; i++)
			if (vms[i].used && &vms[i] != v)
				used += vms[i].disk_bytes;
		if (used + (uint64_t)st.st_size > cap) {
			fail(v, "needs %llu MiB of disk, %llu MiB of %llu left", (unsigned long long)(st.st_size >> 20),
			     (unsigned long long)((cap > used ? cap - used : 0) >> 20), (unsigned long long)(cap >> 20));
			return;
		}
		v->disk_bytes = (uint64_t)st.st_size;
	}
	if (stat(v->disk, &st) && copy_file(v->image, v->disk, err, sizeof(err))) {
		fail(v, "%s", err);
		return;
	}
	ag_log("event=vm_launching id=%s domain=%s tap=%s", v->spec.id, v->dom_name, v->tap);
	report(v, "launching", NULL);
	if (!ag_tap_exists(v->tap) && ag_tap_create(v->tap, D->libvirt_ns, err, sizeof(err))) {
		/* it may already be in libvirtd's namespace from an earlier try */
		if (!strstr(err, "busy") && !strstr(err, "exists")) {
			fail(v, "%s", err);
			return;
		}
	}
	struct ag_vm_paths p;
	memset(&p, 0, sizeof(p));
	snprintf(p.disk, sizeof(p.disk), "%s", v->disk);
	snprintf(p.console_log, sizeof(p.console_log), "%s", v->console);
	snprintf(p.nvram, sizeof(p.nvram), "%s/VARS.fd", v->dir);
	snprintf(p.nvram_template, sizeof(p.nvram_template), "%s", D->nvram_template);
	snprintf(p.tap, sizeof(p.tap), "%s", v->tap);
	snprintf(p.domain_name, sizeof(p.domain_name), "%s", v->dom_name);
	char *o = p.cmdline_extra;
	size_t left = sizeof(p.cmdline_extra);
	int k = 0;
	if (v->spec.ipv4[0] && v->spec.gw4[0])
		k += snprintf(o + k, left - k, "veil.ip4=%s,%s", v->spec.ipv4, v->spec.gw4);
	if (v->spec.ipv6[0] && v->spec.gw6[0])
		snprintf(o + k, left - k, "%sveil.ip6=%s,%s", k ? " " : "", v->spec.ipv6, v->spec.gw6);
	/* fetched kernel and initrd: copied beside the disk (qemu reads them from there) */
	static struct ag_spec sp;
	sp = v->spec;
	const struct { const char *from; char *dst; const char *name; } boot[2] = {
		{ v->kimage, sp.kernel, "vmlinuz" }, { v->iimage, sp.initrd, "initrd.img" } };
	for (int i = 0; i < 2; i++) {
		if (!boot[i].from[0])
			continue;
		char to[800];
		snprintf(to, sizeof(to), "%s/%s", v->dir, boot[i].name);
		if (copy_file(boot[i].from, to, err, sizeof(err))) {
			fail(v, "%s", err);
			return;
		}
		if (strlen(to) >= sizeof(sp.kernel)) {
			fail(v, "%s: path too long", to);
			return;
		}
		memcpy(boot[i].dst, to, strlen(to) + 1);
	}
	char *xml = ag_domain_xml(&sp, &domcaps, &p, err, sizeof(err));
	if (!xml) {
		fail(v, "%s", err);
		return;
	}
	virDomainPtr d = virDomainDefineXML(conn, xml);
	free(xml);
	if (!d) {
		fail(v, "libvirt refused the domain: %s", virt_err());
		return;
	}
	if (sp.tpm && D->vtpm_state && place_vtpm(d, err, sizeof(err))) {
		fail(v, "%s", err);
		virDomainFree(d);
		return;
	}
	if (virDomainCreate(d)) {
		fail(v, "libvirt could not start the domain: %s", virt_err());
		virDomainFree(d);
		return;
	}
	virDomainFree(d);
	v->t_started = ag_now();
	ag_log("event=vm_started id=%s domain=%s tap=%s", v->spec.id, v->dom_name, v->tap);
	if (ag_tap_attach(&v->spec, v->tap, D->libvirt_ns, D->mtu, err, sizeof(err))) {
		fail(v, "%s", err);
		return;
	}
	if (ag_nft_vm_add(v->tap, err, sizeof(err))) {
		fail(v, "%s", err);
		return;
	}
	if (node_table(v, true, err, sizeof(err))) {
		fail(v, "%s", err);
		return;
	}
	v->state = ST_BOOTING;
	v->t_next_probe = ag_now() + 1;
	/* booting: the initrd attests to the validators and opens the disk */
	report(v, "attesting", NULL);
}

/* ---------- libvirt events ---------- */

static int on_lifecycle(virConnectPtr c, virDomainPtr dom, int event, int detail, void *opaque)
{
	const char *name = virDomainGetName(dom);
	if (event != VIR_DOMAIN_EVENT_STOPPED && event != VIR_DOMAIN_EVENT_CRASHED)
		return 0;
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used && !strcmp(vms[i].dom_name, name)) {
			vms[i].stopped_detail = event * 100 + detail;
			atomic_store(&vms[i].stopped_event, 1);
		}
	return 0;
}

static void *event_thread(void *arg)
{
	while (atomic_load(&event_thread_run))
		if (virEventRunDefaultImpl() < 0)
			break;
	return NULL;
}

/* ---------- the loop ---------- */

static struct vm *find(const char *id)
{
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used && !strcmp(vms[i].spec.id, id))
			return &vms[i];
	return NULL;
}

static void warn_spec(const char *msg)
{
	ag_log("event=spec_warning reason=\"%s\"", msg);
}

static void scan_specs(void)
{
	DIR *d = opendir(D->spec_dir);
	struct dirent *e;
	for (int i = 0; i < MAX_VMS; i++)
		vms[i].seen = false;
	static char rejected[MAX_VMS][600];
	static time_t rejected_mtime[MAX_VMS];
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (e->d_name[0] == '.' || n < 6 || (strcmp(e->d_name + n - 5, ".yaml") && strcmp(e->d_name + n - 5, ".json")))
			continue;
		char path[600], err[1024];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", D->spec_dir, e->d_name);
		if (stat(path, &st))
			continue;
		struct vm *v = NULL;
		for (int i = 0; i < MAX_VMS; i++)
			if (vms[i].used && !strcmp(vms[i].spec_path, path))
				v = &vms[i];
		if (v) {
			v->seen = true;
			continue; /* an order is not edited in place: delete it and order again */
		}
		int slot = (int)(st.st_ino % MAX_VMS);
		if (!strcmp(rejected[slot], path) && rejected_mtime[slot] == st.st_mtime)
			continue;
		static struct ag_spec s;
		if (ag_spec_load(path, &s, warn_spec, err, sizeof(err))) {
			ag_log("event=spec_rejected file=%s reason=\"%s\"", path, err);
			snprintf(rejected[slot], sizeof(rejected[slot]), "%s", path);
			rejected_mtime[slot] = st.st_mtime;
			continue;
		}
		if (find(s.id)) {
			ag_log("event=spec_rejected file=%s reason=\"VM id %s is ordered twice\"", path, s.id);
			snprintf(rejected[slot], sizeof(rejected[slot]), "%s", path);
			rejected_mtime[slot] = st.st_mtime;
			continue;
		}
		for (int i = 0; i < MAX_VMS && !v; i++)
			if (!vms[i].used)
				v = &vms[i];
		if (!v) {
			ag_log("event=spec_rejected file=%s reason=\"more than %d VMs\"", path, MAX_VMS);
			continue;
		}
		memset(v, 0, sizeof(*v));
		v->used = v->seen = true;
		v->spec = s;
		snprintf(v->spec_path, sizeof(v->spec_path), "%s", path);
		v->spec_mtime = st.st_mtime;
		v->t_ordered = ag_now();
		v->state = ST_ORDERED;
		names(v);
		ag_log("event=vm_ordered id=%s file=%s vcpus=%d memory_mib=%llu", s.id, path, s.vcpus,
		     (unsigned long long)(s.memory >> 20));
	}
	if (d)
		closedir(d);
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used && !vms[i].seen && !vms[i].from_store) {
			ag_log("event=vm_deleting id=%s", vms[i].spec.id);
			teardown(&vms[i], true);
			ag_log("event=vm_deleted id=%s", vms[i].spec.id);
			vms[i].used = false;
		}
}

/* Domains of ours whose order went while the agent was away: deleted as
 * if the order had been removed in front of it.  Only domains named
 * PREFIX<id> that carry our metadata are touched. */
static void reap_orphans(void)
{
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(conn, &doms, 0);
	for (int i = 0; i < n; i++) {
		char name[128];
		snprintf(name, sizeof(name), "%s", virDomainGetName(doms[i]) ? virDomainGetName(doms[i]) : "");
		char *md = NULL;
		if (!strncmp(name, D->prefix, strlen(D->prefix)))
			md = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT, NS_URI, 0);
		virDomainFree(doms[i]);
		if (!md)
			continue;
		static struct vm tmp;
		memset(&tmp, 0, sizeof(tmp));
		const char *p = strstr(md, " id=\"");
		if (p)
			sscanf(p + 5, "%32[a-z0-9-]", tmp.spec.id);
		p = strstr(md, "vm_id=\"");
		if (p)
			sscanf(p + 7, "%u", &tmp.spec.vm_id);
		free(md);
		if (!tmp.spec.id[0] || find(tmp.spec.id))
			continue;
		strcpy(tmp.spec.disk_format, "raw");
		names(&tmp);
		if (strcmp(tmp.dom_name, name))
			continue;
		ag_log("event=vm_deleting id=%s reason=\"its order was removed while the agent was away\"", tmp.spec.id);
		teardown(&tmp, true);
		snprintf(tmp.disk, sizeof(tmp.disk), "%s/disk.qcow2", tmp.dir);
		unlink(tmp.disk);
		rmdir(tmp.dir);
		ag_log("event=vm_deleted id=%s", tmp.spec.id);
		if (D->feed) /* with a store, the node's VMs are the controller's: it hears of it */
			ag_feed_status(D->feed, tmp.spec.id, "deleted", "its order was removed while the agent was away", "", "");
	}
	free(doms);
}

static void step(struct vm *v)
{
	char why[512];
	if (atomic_exchange(&v->stopped_event, 0) && v->state != ST_FAILED) {
		char tail[1024];
		console_tail(v, tail, sizeof(tail));
		fail(v, "the domain stopped (%s) console: %s",
		     v->stopped_detail / 100 == VIR_DOMAIN_EVENT_CRASHED ? "crashed"
		     : v->stopped_detail % 100 == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? "crashed"
		     : v->stopped_detail % 100 == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN ? "shut down"
		     : v->stopped_detail % 100 == VIR_DOMAIN_EVENT_STOPPED_DESTROYED ? "destroyed"
		     : v->stopped_detail % 100 == VIR_DOMAIN_EVENT_STOPPED_FAILED ? "failed: the emulator died"
		     : "stopped", tail);
		return;
	}
	switch (v->state) {
	case ST_ORDERED: {
		virDomainPtr d = virDomainLookupByName(conn, v->dom_name);
		if (d) { /* ours from before a restart: adopt it, kill nothing */
			bool running = virDomainIsActive(d) == 1;
			char *md = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, NS_URI, 0);
			char want[64];
			snprintf(want, sizeof(want), "id=\"%s\"", v->spec.id);
			bool ours = md && strstr(md, want);
			free(md);
			virDomainFree(d);
			if (!ours) {
				v->state = ST_FAILED;
				ag_log("event=vm_refused id=%s reason=\"a domain named %s exists and is not this agent's\"",
				     v->spec.id, v->dom_name);
				report(v, "failed", "a domain of that name exists and is not this agent's");
				return;
			}
			if (running) {
				struct stat st;
				if (!stat(v->disk, &st))
					v->disk_bytes = (uint64_t)st.st_size;
				v->adopted = true;
				v->state = ST_BOOTING;
				v->t_started = ag_now();
				v->t_next_probe = ag_now();
				ag_log("event=vm_adopted id=%s domain=%s tap=%s", v->spec.id, v->dom_name, v->tap);
				report(v, "attesting", "adopted after an agent restart");
				/* the steps after the start again, each idempotent: the previous
				 * agent may have stopped between them */
				char err[512] = "";
				if (ag_tap_attach(&v->spec, v->tap, D->libvirt_ns, D->mtu, err, sizeof(err)) ||
				    ag_nft_vm_add(v->tap, err, sizeof(err)) || node_table(v, true, err, sizeof(err)))
					fail(v, "adopting: %s", err);
				return;
			}
		}
		if (ag_now() < v->t_retry)
			return;
		if (admit(v, why, sizeof(why))) {
			v->state = ST_FAILED;
			ag_log("event=vm_refused id=%s reason=\"%s\"", v->spec.id, why);
			report(v, "failed", why);
			return;
		}
		v->state = ST_FETCHING;
		v->fetch_stop = 0;
		atomic_store(&v->fetch_done, 0);
		ag_log("event=vm_fetching id=%s url=%s", v->spec.id, v->spec.disk_url);
		if (strcmp(v->reported, "fetching"))
			report(v, "fetching", NULL);
		if (pthread_create(&v->fetcher, NULL, fetch_thread, v)) {
			fail(v, "cannot start the download: %s", strerror(errno));
			return;
		}
		v->fetching = true;
		return;
	}
	case ST_FETCHING:
		if (!atomic_load(&v->fetch_done))
			return;
		pthread_join(v->fetcher, NULL);
		v->fetching = false;
		if (atomic_load(&v->fetch_rc)) {
			/* network trouble retries (the .part resumes); a wrong sha256 does too, from scratch */
			if (++v->retries > 6) {
				fail(v, "image: %s", v->fetch_err);
				return;
			}
			double wait = 1 << (v->retries - 1); /* 1, 2, 4 ... 32 s */
			ag_log("event=fetch_retry id=%s attempt=%d in_s=%.0f reason=\"%s\"", v->spec.id, v->retries, wait,
			     v->fetch_err);
			v->t_retry = ag_now() + wait;
			v->state = ST_ORDERED;
			return;
		}
		ag_log("event=vm_fetched id=%s image=%s", v->spec.id, v->image);
		v->state = ST_LAUNCHING;
		__attribute__((fallthrough)); /* launched now, or when a boot slot is free */
	case ST_LAUNCHING: {
		/* without KVM every vCPU is emulated: booting more VMs at once than the
		 * node has cores for makes each slower than booting them in turn */
		int booting = 0;
		for (int i = 0; D->max_booting > 0 && i < MAX_VMS; i++)
			booting += vms[i].used && &vms[i] != v && vms[i].state == ST_BOOTING;
		if (D->max_booting > 0 && booting >= D->max_booting) {
			if (!v->waiting_slot)
				ag_log("event=vm_waiting id=%s reason=\"%d VMs booting (max_booting %d)\"", v->spec.id, booting,
				       D->max_booting);
			v->waiting_slot = true;
			return;
		}
		v->waiting_slot = false;
		launch(v);
		return;
	}
	case ST_BOOTING: {
		double t = ag_now();
		if (t < v->t_next_probe)
			return;
		char addr[64], err[256];
		snprintf(addr, sizeof(addr), "%s", v->spec.ipv4[0] ? v->spec.ipv4 : v->spec.ipv6);
		addr[strcspn(addr, "/")] = 0;
		if (!ag_tls_probe(addr, v->spec.port, 1000, err, sizeof(err))) {
			v->state = ST_READY;
			FILE *f;
			char p[800];
			snprintf(p, sizeof(p), "%s/status", v->dir);
			if ((f = fopen(p, "w"))) {
				fprintf(f, "ready\n");
				fclose(f);
			}
			ag_log("event=vm_ready id=%s domain=%s address=%s port=%d spec_to_ready_s=%.1f boot_s=%.1f%s", v->spec.id,
			     v->dom_name, addr, v->spec.port, t - v->t_ordered, t - v->t_started,
			     v->adopted ? " adopted=yes" : "");
			report(v, "ready", NULL);
			return;
		}
		if (t - v->t_started > v->spec.ready_timeout) {
			char tail[1024];
			console_tail(v, tail, sizeof(tail));
			fail(v, "not ready after %d s (%s:%d: %s); console: %s", v->spec.ready_timeout, addr, v->spec.port,
			     err, tail);
			return;
		}
		v->t_next_probe = t + 1;
		return;
	}
	default:
		return;
	}
}

/* ---------- orders from the cluster store ---------- */

static void delete_vm(struct vm *v, const char *why)
{
	ag_log("event=vm_deleting id=%s%s%s%s", v->spec.id, why ? " reason=\"" : "", why ? why : "", why ? "\"" : "");
	teardown(v, true);
	ag_log("event=vm_deleted id=%s", v->spec.id);
	report(v, "deleted", why);
	v->used = false;
}

/* The store's wanted VMs against ours: new ones ordered, gone ones deleted.
 * A failed VM ordered again (a higher gen) starts over; a running VM's spec
 * is not edited in place. */
static void scan_feed(void)
{
	static uint64_t seen_version = UINT64_MAX;
	uint64_t ver;
	int n;

	if (!D->feed || !ag_feed_synced(D->feed) || ag_feed_version(D->feed) == seen_version)
		return;
	struct ag_feed_vm *w = ag_feed_wanted(D->feed, &n, &ver);
	if (!w)
		return;
	seen_version = ver;
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used && vms[i].from_store)
			vms[i].seen = false;
	for (int k = 0; k < n; k++) {
		struct vm *v = find(w[k].spec.id);
		if (v && !v->from_store) {
			ag_log("event=spec_rejected source=store id=%s reason=\"VM id %s is ordered by the spec directory too\"",
			     w[k].spec.id, w[k].spec.id);
			continue;
		}
		if (v) {
			v->seen = true;
			if (w[k].gen == v->gen)
				continue;
			if (v->state != ST_FAILED) {
				ag_log("event=store_order_changed id=%s gen=%llu reason=\"a VM's spec is not edited in place: "
				     "delete it and order again\"", v->spec.id, (unsigned long long)w[k].gen);
				v->gen = w[k].gen;
				continue;
			}
			delete_vm(v, "ordered again");
		}
		for (int i = 0; i < MAX_VMS && !v; i++)
			if (!vms[i].used)
				v = &vms[i];
		if (!v) {
			ag_log("event=spec_rejected source=store id=%s reason=\"more than %d VMs\"", w[k].spec.id, MAX_VMS);
			continue;
		}
		memset(v, 0, sizeof(*v));
		v->used = v->seen = v->from_store = true;
		v->spec = w[k].spec;
		v->gen = w[k].gen;
		snprintf(v->spec_path, sizeof(v->spec_path), "store:%s", w[k].spec.id);
		v->t_ordered = ag_now();
		v->state = ST_ORDERED;
		names(v);
		ag_log("event=vm_ordered id=%s source=store order=%s gen=%llu vcpus=%d memory_mib=%llu", v->spec.id,
		     w[k].order[0] ? w[k].order : "-", (unsigned long long)v->gen, v->spec.vcpus,
		     (unsigned long long)(v->spec.memory >> 20));
	}
	free(w);
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used && vms[i].from_store && !vms[i].seen)
			delete_vm(&vms[i], NULL);
}

static const char *state_name(const struct vm *v)
{
	static const char *n[] = { "ordered", "fetching", "launching", "attesting", "ready", "failed" };
	return n[v->state];
}

/* heartbeats/<node_id>: the store VMs' states and what is left of resources */
static void heartbeat(void)
{
	char buf[16384];
	size_t k = 0;
	int cpu;
	uint64_t mem, disk = 0;
	buf[k++] = '{';
	for (int i = 0; i < MAX_VMS && k < sizeof(buf) - 80; i++)
		if (vms[i].used && vms[i].from_store)
			k += snprintf(buf + k, sizeof(buf) - k, "%s\"%s\":\"%s\"", k > 1 ? "," : "", vms[i].spec.id,
				      state_name(&vms[i]));
	snprintf(buf + k, sizeof(buf) - k, "}");
	used_resources(&cpu, &mem, NULL);
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used)
			disk += vms[i].disk_bytes;
	int cpu_cap = D->cfg->cpu ? D->cfg->cpu : D->scan->cpus;
	uint64_t mem_cap = D->cfg->ram ? D->cfg->ram : D->scan->mem_total;
	uint64_t disk_cap = D->cfg->disk ? D->cfg->disk : D->scan->disk_free;
	if (ag_feed_heartbeat(D->feed, buf, cpu_cap - cpu, (mem_cap - mem) >> 20, (disk_cap > disk ? disk_cap - disk : 0) >> 30))
		ag_log("event=store_report_failed bucket=heartbeats");
}

static uint64_t reloads_ok, reloads_rejected, started;

/* GET /metrics on --metrics: the VMs by state, the daemon counters */
static void agent_metrics(void *arg, FILE *out)
{
	static const char *const names[] = { "ordered", "fetching", "launching", "attesting", "ready", "failed" };
	int n[6] = { 0 };
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used && (unsigned)vms[i].state < 6)
			n[vms[i].state]++;
	fputs("# HELP veilmesh_agent_vms VMs of this node, by state.\n# TYPE veilmesh_agent_vms gauge\n", out);
	for (int i = 0; i < 6; i++)
		fprintf(out, "veilmesh_agent_vms{state=\"%s\"} %d\n", names[i], n[i]);
	vm_metrics_daemon(out, reloads_ok, reloads_rejected, started);
}

static void reload_warn(const char *msg)
{
	ag_log("event=reload_warning reason=\"%s\"", msg);
}

/* SIGHUP: the config read again and checked against the host's scan; the
 * resources (cpu, ram, disk) and heartbeat_s change at once, the rest
 * (store, keys, node id, GPUs) only with a restart.  A bad file changes
 * nothing. */
static void reload(struct ag_daemon *d)
{
	/* read into one buffer, then the result into another than the running
	 * one: a store feed started earlier may still read the old */
	static struct ag_cfg f, n[2];
	static int cur;
	char err[1024];

	if (ag_cfg_load(d->cfg->path, &f, reload_warn, err, sizeof(err)) ||
	    ag_check_resources(&f, d->scan, err, sizeof(err))) {
		reloads_rejected++;
		ag_log("event=reload_rejected reason=\"%s\"", err);
		return;
	}
	reloads_ok++;
	const struct ag_cfg *o = d->cfg;
	if (strcmp(o->node_key, f.node_key) || strcmp(o->store_urls, f.store_urls) || strcmp(o->store_creds, f.store_creds) ||
	    strcmp(o->controller_pub, f.controller_pub) || strcmp(o->node_signing_key, f.node_signing_key) ||
	    strcmp(o->node_id, f.node_id) || strcmp(o->registry_ca, f.registry_ca) || o->ngpus != f.ngpus ||
	    memcmp(o->gpus, f.gpus, sizeof(f.gpus)))
		ag_log("event=reload_note reason=\"only the resources and heartbeat_s change without a restart\"");
	struct ag_cfg *c = &n[cur ^= 1];
	*c = *o;
	c->cpu = f.cpu;
	c->ram = f.ram;
	c->disk = f.disk;
	c->heartbeat_s = f.heartbeat_s;
	d->cfg = c;
	ag_log("event=reloaded cpu=%d ram_mib=%llu disk_gib=%llu heartbeat_s=%d", c->cpu,
	       (unsigned long long)(c->ram >> 20), (unsigned long long)(c->disk >> 30), c->heartbeat_s);
}

int ag_daemon_run(struct ag_daemon *d)
{
	char err[1024];
	D = d;
	struct vm_ctl ctl;
	if (vm_ctl_open(&ctl, "off", d->metrics ? d->metrics : "off", err, sizeof(err))) {
		ag_log("event=error what=metrics reason=\"%s\"", err);
		return 1;
	}
	started = (uint64_t)time(NULL);
	vm_daemon_signals();   /* and --pidfile */
	mkdir(d->state_dir, 0711);
	mkdir(d->cache_dir, 0700);

	if (d->cfg->registry_ca[0])
		ag_fetch_ca = d->cfg->registry_ca;
	virSetErrorFunc(NULL, quiet_errors); /* errors are logged as events, with context */
	if (virEventRegisterDefaultImpl() < 0) {
		ag_log("event=libvirt_failed reason=\"event loop: %s\"", virt_err());
		return 1;
	}
	conn = virConnectOpen(d->uri);
	if (!conn) {
		ag_log("event=libvirt_failed uri=%s reason=\"%s\"", d->uri, virt_err());
		return 1;
	}
	if (ag_domcaps_get(conn, &domcaps, err, sizeof(err))) {
		ag_log("event=libvirt_failed reason=\"domain capabilities: %s\"", err);
		virConnectClose(conn);
		return 1;
	}
	if (domcaps.kvm_unusable[0])
		ag_log("event=kvm_unusable emulator=%s reason=\"%s\" domain_type=%s", domcaps.emulator, domcaps.kvm_unusable,
		       domcaps.domain_type);
	int cb = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						  VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), NULL, NULL);
	pthread_t et;
	pthread_create(&et, NULL, event_thread, NULL);
	ag_log("event=started uri=%s domain_type=%s machine=%s spec_dir=%s state_dir=%s cache_dir=%s cpu=%d ram_mib=%llu",
	     d->uri, domcaps.domain_type, domcaps.machine, d->spec_dir, d->state_dir, d->cache_dir,
	     d->cfg->cpu ? d->cfg->cpu : d->scan->cpus,
	     (unsigned long long)((d->cfg->ram ? d->cfg->ram : d->scan->mem_total) >> 20));

	bool reaped = false;
	double t_feed_retry = 0, t_beat = 0, t_counts = 0;
	char counts[256] = "", c2[256];
	while (!vm_stop_sig) {
		if (vm_reload) {
			vm_reload = 0;
			reload(d);
		}
		int beat_s = d->cfg->heartbeat_s ? d->cfg->heartbeat_s : 5;
		if (d->cfg->store_urls[0] && !d->feed && ag_now() >= t_feed_retry) {
			/* VMs keep running while the store is away; nothing is reaped before its snapshot */
			d->feed = ag_feed_start(d->cfg, d->state_dir, err, sizeof(err));
			if (d->feed)
				ag_log("event=store_watching urls=%s node=%s bucket=vms", d->cfg->store_urls, d->cfg->node_id);
			else
				ag_log("event=store_unavailable reason=\"%s\" retry_s=5", err);
			t_feed_retry = ag_now() + 5;
		}
		scan_specs();
		scan_feed();
		/* domains of ours without an order: only once every source of orders is read */
		if (!reaped && (!d->cfg->store_urls[0] || (d->feed && ag_feed_synced(d->feed)))) {
			reap_orphans();
			reaped = true;
		}
		for (int i = 0; i < MAX_VMS; i++)
			if (vms[i].used) {
				step(&vms[i]);
				if (vms[i].used && vms[i].report_pending && ag_now() >= vms[i].t_report_retry)
					report_flush(&vms[i]);
			}
		if (d->feed && ag_feed_synced(d->feed) && ag_now() >= t_beat) {
			heartbeat();
			t_beat = ag_now() + beat_s;
		}
		if (d->feed && ag_now() >= t_counts) { /* refusals, when they change */
			ag_feed_counts(d->feed, c2, sizeof(c2));
			if (strcmp(c2, counts))
				ag_log("event=store_rejected_total %s", c2);
			snprintf(counts, sizeof(counts), "%s", c2);
			t_counts = ag_now() + 1;
		}
		vm_ctl_poll(&ctl, 200, NULL, agent_metrics, NULL);   /* and the 200 ms between rounds */
	}
	vm_ctl_close(&ctl);
	ag_feed_stop(d->feed);
	d->feed = NULL;
	/* Leaving: downloads stop (a .part is resumed next time), VMs keep running. */
	for (int i = 0; i < MAX_VMS; i++)
		if (vms[i].used && vms[i].fetching) {
			vms[i].fetch_stop = 1;
			pthread_join(vms[i].fetcher, NULL);
		}
	ag_log("event=stopped signal=%d vms_left_running=yes", (int)vm_stop_sig);
	if (cb >= 0)
		virConnectDomainEventDeregisterAny(conn, cb);
	/* the event thread sleeps in libvirt's loop; the process ends under it */
	atomic_store(&event_thread_run, 0);
	pthread_detach(et);
	virConnectClose(conn);
	return 0;
}
