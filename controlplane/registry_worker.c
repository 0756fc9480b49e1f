// SPDX-License-Identifier: Apache-2.0
/*
 * veil-registry worker: the image registry fed from the cluster store
 * (docs/store.md, docs/launch.md).
 *
 *   veil-registry worker --config FILE        (docs/veil-registry-worker.conf.example)
 *
 * Watches bucket `builds` (envelopes signed by the controller, gen growing
 * per key; others dropped and counted) and, for each order (build_jobs of them
 * at once, default 2; each in its own folder work_dir/<vm_id>):
 *   1. buildstatus/<vm_id> "building";
 *   2. the root filesystem (images/mkrootfs.sh, recipe of the image) with the
 *      VM's TLS certificate for its hostname (issued by the registry's VM CA)
 *      and the user's post-provisioning: /etc/hostname, root's SSH
 *      authorized_keys and a NoCloud-style seed (/var/lib/cloud/seed/nocloud:
 *      meta-data, user-data) that images/os-init applies on the first boot,
 *      after the initrd opened the disk: it travels only encrypted;
 *   3. the initrd (images/mkinitrd.sh: validators, t, the registry's key);
 *   4. `veil-registry order` (this program, unchanged: LUKS2 offline, key
 *      split t of n, registered with every validator, wiped) and
 *      `veil-registry refs` (the signed reference values);
 *   5. the files published under publish_dir, served over HTTPS by
 *      `veil-registry serve` (started once; it finds new files itself),
 *      content-addressed;
 *   6. buildstatus "done" with the URLs, sha256s, the command line and the
 *      references' URL, or "failed" with the reason.
 * The working copy of the plaintext root filesystem lives under work_dir
 * (a tmpfs by default) only until it is encrypted, then it is wiped.
 * What is the same for every order (the initrd's compressed part: busybox,
 * veil-attest, cryptsetup, libraries, modules; the recipe's base tree: busybox,
 * nginx, libraries, init) is built once and kept in image_cache (default
 * work_dir/cache; "off" builds everything each time), named by the sha256 of
 * its inputs (images/mkinitrd.sh, images/mkrootfs.sh: VEIL_IMAGE_CACHE).  No
 * key, share, certificate or name of a VM is ever in it; the initrd's bytes
 * are the same with or without it.
 * At start, the catalog entries (bucket `catalog`) of the images it builds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "common/daemon.h"
#include "store/store.h"

extern char **environ;

struct wcfg {
	char path[512];
	char store[512], controller_pub[512], registry_key[512], validators_ca[512];
	char vm_ca_cert[512], vm_ca_key[512], ak_pub[512], ek_cert[512], ek_ca[512], kernel[512], kver[128], veil_attest[512];
	char cmdline[1024], pcr0[65], pcr7[65], work_dir[512], publish_dir[512], images_dir[512];
	char listen[128], tls_cert[512], tls_key[512], public_url[512], image_cache[512], gens_file[512];
	char metrics[128];   /* ADDR:PORT of /metrics, "" or "off": none */
	int disk_mb, build_jobs;
};
#define MAX_JOBS 16

#define MAXQ 64
struct order {
	char vm_id[64], order[64], image[128], hostname[254], user_data[65536];
	char ssh_keys[16][1024];
	int nkeys, t;
	char validators[1024]; /* a,b,c */
	char ak_pub[4096];     /* optional: the VM's vTPM AK (PEM) */
	char addr4[64], gateway4[64], addr6[64], gateway6[64]; /* optional: the VM's addresses (see build()) */
	uint64_t gen;
};

static struct {
	struct wcfg c;
	vs_store *st;
	vs_kv *builds, *status, *catalog;
	vs_watcher *w;
	EVP_PKEY *ctl, *reg;
	struct vs_gens *gens;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct order q[MAXQ];
	int qn;
	uint64_t revs_n;
	char seen_key[1024][64];
	uint64_t seen_rev[1024];
	uint64_t rej_sig, rej_replay, rej_body, built, failed;
	pthread_mutex_t status_mu; /* buildstatus gens and reports, from every builder */
	pid_t serve_pid;
	char self[512];
} W;

/* log lines: common/daemon.h's, one fprintf each, so a line is whole from any builder */
#define wlog vm_log

/* ---------- config ---------- */

static int load_cfg(const char *path, struct wcfg *c, char *err, size_t errlen)
{
	static const struct { const char *k; size_t off, len; } f[] = {
#define F(n) { #n, offsetof(struct wcfg, n), sizeof(((struct wcfg *)0)->n) }
		F(store), F(controller_pub), F(registry_key), F(validators_ca), F(vm_ca_cert), F(vm_ca_key), F(ak_pub), F(ek_cert), F(ek_ca),
		F(kernel), F(kver), F(veil_attest), F(cmdline), F(pcr0), F(pcr7), F(work_dir), F(publish_dir),
		F(images_dir), F(listen), F(tls_cert), F(tls_key), F(public_url), F(image_cache), F(gens_file), F(metrics),
#undef F
	};
	char line[2048];
	int ln = 0;
	FILE *fp = fopen(path, "r");
	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->work_dir, sizeof(c->work_dir), "/run/veil-registry");
	snprintf(c->cmdline, sizeof(c->cmdline), "console=ttyS0 loglevel=4 panic=10");
	snprintf(c->images_dir, sizeof(c->images_dir), "/usr/local/share/veilmesh/images");
	c->disk_mb = 80;
	c->build_jobs = 2;
	if (!fp) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp)) {
		ln++;
		char *p = line + strspn(line, " \t");
		p[strcspn(p, "\r\n")] = 0;
		if (!*p || *p == '#')
			continue;
		char *k = p, *v = p + strcspn(p, " \t");
		if (*v)
			*v++ = 0;
		v += strspn(v, " \t");
		if (!*v) {
			snprintf(err, errlen, "%s:%d: '%s' needs a value", path, ln, k);
			fclose(fp);
			return -1;
		}
		if (!strcmp(k, "disk_mb")) {
			c->disk_mb = atoi(v);
			if (c->disk_mb < 64 || c->disk_mb > 65536) {
				snprintf(err, errlen, "%s:%d: disk_mb %s: 64..65536", path, ln, v);
				fclose(fp);
				return -1;
			}
			continue;
		}
		if (!strcmp(k, "build_jobs")) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || n < 1 || n > MAX_JOBS) {
				snprintf(err, errlen, "%s:%d: build_jobs %s: 1..%d", path, ln, v, MAX_JOBS);
				fclose(fp);
				return -1;
			}
			c->build_jobs = (int)n;
			continue;
		}
		size_t i;
		for (i = 0; i < sizeof(f) / sizeof(f[0]) && strcmp(k, f[i].k); i++)
			;
		if (i == sizeof(f) / sizeof(f[0]) || strlen(v) >= f[i].len) {
			snprintf(err, errlen, "%s:%d: %s '%s'", path, ln, i == sizeof(f) / sizeof(f[0]) ? "unknown setting" : "too long:", k);
			fclose(fp);
			return -1;
		}
		strcpy((char *)c + f[i].off, v);
	}
	fclose(fp);
	if (!c->image_cache[0])
		snprintf(c->image_cache, sizeof(c->image_cache), "%.500s/cache", c->work_dir);
	if (!c->gens_file[0])
		snprintf(c->gens_file, sizeof(c->gens_file), "%.490s/builds.gens", c->work_dir);
	const char *need[] = { c->store, c->controller_pub, c->registry_key, c->validators_ca, c->vm_ca_cert, c->vm_ca_key,
			       c->kernel, c->kver, c->veil_attest, c->publish_dir, c->listen, c->tls_cert, c->tls_key,
			       c->public_url };
	const char *names[] = { "store", "controller_pub", "registry_key", "validators_ca", "vm_ca_cert", "vm_ca_key",
				"kernel", "kver", "veil_attest", "publish_dir", "listen", "tls_cert", "tls_key", "public_url" };
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!need[i][0]) {
			snprintf(err, errlen, "%s: '%s' is not set", path, names[i]);
			return -1;
		}
	for (const char *h = c->pcr0; *h; h++)
		if (strlen(c->pcr0) != 64 || !strchr("0123456789abcdef", *h)) {
			snprintf(err, errlen, "%s: pcr0 takes 64 lowercase hex digits", path);
			return -1;
		}
	for (const char *h = c->pcr7; *h; h++)
		if (strlen(c->pcr7) != 64 || !strchr("0123456789abcdef", *h)) {
			snprintf(err, errlen, "%s: pcr7 takes 64 lowercase hex digits", path);
			return -1;
		}
	return 0;
}

/* ---------- running the existing tools, no shell ---------- */

static int run(char *const argv[], const char *logpath, char *why, size_t len)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st = -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		snprintf(why, len, "%s: %s", argv[0], strerror(rc));
		return -1;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	/* the tool's last line says why */
	char tail[512] = "";
	FILE *f = fopen(logpath, "r");
	if (f) {
		char l[512];
		while (fgets(l, sizeof(l), f))
			if (l[0] != '\n')
				snprintf(tail, sizeof(tail), "%s", l);
		fclose(f);
	}
	tail[strcspn(tail, "\n")] = 0;
	snprintf(why, len, "%s failed: %s", argv[0], tail[0] ? tail : "no message");
	return -1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	/* the plaintext root filesystem: overwritten, then removed */
	if (flag == FTW_F && S_ISREG(sb->st_mode) && sb->st_size > 0) {
		int fd = open(p, O_WRONLY);
		if (fd >= 0) {
			static char zero[65536];
			for (off_t o = 0; o < sb->st_size; o += sizeof(zero))
				if (write(fd, zero, sb->st_size - o < (off_t)sizeof(zero) ? (size_t)(sb->st_size - o) : sizeof(zero)) < 0)
					break;
			fsync(fd);
			close(fd);
		}
	}
	return remove(p);
}

static void wipe_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_file(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -1;
	size_t n = strlen(data);
	int ok = write(fd, data, n) == (ssize_t)n;
	return close(fd) == 0 && ok ? 0 : -1;
}

static int sha256_hex(const char *path, char hex[65])
{
	unsigned char buf[65536], md[32];
	unsigned int ml = 32;
	size_t n;
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(c, buf, n);
	fclose(f);
	EVP_DigestFinal_ex(c, md, &ml);
	EVP_MD_CTX_free(c);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	return 0;
}

/* ---------- reports ---------- */

static void put_signed(vs_kv *kv, const char *bucket, const char *key, json_object *o)
{
	const char *body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *env = NULL;
	int rc = vs_seal(W.reg, bucket, key, body, strlen(body), &env);
	for (int i = 0; rc == VS_OK && i < 5; i++) { /* a timeout may or may not have stored it: put again */
		rc = vs_put(kv, key, env, strlen(env), NULL);
		if (rc != VS_UNKNOWN)
			break;
	}
	if (rc != VS_OK)
		wlog("event=store_report_failed bucket=%s key=%s reason=\"%s\"", bucket, key, vs_strerror(rc));
	free(env);
}

/* buildstatus gen: time-based and growing (ms since the epoch, then +1) */
static uint64_t next_gen(void)
{
	static uint64_t last;
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	uint64_t g = (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
	last = g > last ? g : last + 1;
	return last;
}

static void status(const struct order *o, const char *state, const char *reason, json_object *extra)
{
	pthread_mutex_lock(&W.status_mu);
	json_object *j = extra ? extra : json_object_new_object();
	json_object_object_add(j, "vm_id", json_object_new_string(o->vm_id));
	json_object_object_add(j, "gen", json_object_new_int64((int64_t)next_gen()));
	json_object_object_add(j, "state", json_object_new_string(state));
	json_object_object_add(j, "reason", json_object_new_string(reason ? reason : ""));
	put_signed(W.status, "buildstatus", o->vm_id, j);
	pthread_mutex_unlock(&W.status_mu);
	json_object_put(j);
	wlog("event=build_%s vm=%s order=%s%s%s%s", state, o->vm_id, o->order[0] ? o->order : "-", reason ? " reason=\"" : "",
	     reason ? reason : "", reason ? "\"" : "");
}

/* ---------- serving ---------- */

static void serve_restart(void)
{
	if (W.serve_pid > 0) {
		kill(W.serve_pid, SIGTERM);
		/* serve stops at once (it polls the signal pipe); 5 s at most, then SIGKILL */
		for (int i = 0; i < 50 && waitpid(W.serve_pid, NULL, WNOHANG) == 0; i++)
			usleep(100000);
		if (waitpid(W.serve_pid, NULL, WNOHANG) == 0) {
			kill(W.serve_pid, SIGKILL);
			waitpid(W.serve_pid, NULL, 0);
		}
		W.serve_pid = 0;
	}
	char *argv[] = { W.self, "serve", "--dir", W.c.publish_dir, "--listen", W.c.listen, "--cert", W.c.tls_cert,
			 "--key", W.c.tls_key, NULL };
	if (posix_spawn(&W.serve_pid, W.self, NULL, NULL, argv, environ))
		wlog("event=serve_failed reason=\"%s\"", strerror(errno));
}

/* ---------- one build ---------- */

/* seconds since *t, and *t = now: a build's steps, logged for the operator */
static double lap(struct timespec *t)
{
	struct timespec n;
	clock_gettime(CLOCK_MONOTONIC, &n);
	double s = (double)(n.tv_sec - t->tv_sec) + (n.tv_nsec - t->tv_nsec) / 1e9;
	*t = n;
	return s;
}

static int build(const struct order *o, char *why, size_t len)
{
	char d[700], rootfs[800], conf[800], logp[800], p[2048], p2[2048];
	snprintf(d, sizeof(d), "%s/%s", W.c.work_dir, o->vm_id);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", d);
	snprintf(conf, sizeof(conf), "%s/conf", d);
	snprintf(logp, sizeof(logp), "%s/../%s.log", d, o->vm_id);
	wipe_tree(d);
	unlink(logp);
	mkdir(W.c.work_dir, 0700);
	if (mkdir(d, 0700) || mkdir(conf, 0700)) {
		snprintf(why, len, "%s: %s", d, strerror(errno));
		return -1;
	}
	int rc = -1;
	struct timespec tl;
	double s_cert = 0, s_rootfs = 0, s_initrd = 0, s_order = 0, s_refs = 0;
	clock_gettime(CLOCK_MONOTONIC, &tl);
	/* the VM's TLS certificate for its hostname, from the registry's VM CA */
	char key[900], csr[900], crt[900], ext[900], subj[300], san[300];
	snprintf(key, sizeof(key), "%s/tls.key", d);
	snprintf(csr, sizeof(csr), "%s/tls.csr", d);
	snprintf(crt, sizeof(crt), "%s/tls.crt", d);
	snprintf(ext, sizeof(ext), "%s/tls.ext", d);
	snprintf(subj, sizeof(subj), "/CN=%s", o->hostname);
	snprintf(san, sizeof(san), "subjectAltName=DNS:%s\n", o->hostname);
	write_file(ext, san, 0600);
	char *req[] = { "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subj,
			"-keyout", key, "-out", csr, NULL };
	/* a random serial: builds run at once, a shared serial file (-CAcreateserial) would race */
	unsigned char sr[16];
	char serial[40] = "0x";
	if (RAND_bytes(sr, sizeof(sr)) != 1) {
		snprintf(why, len, "no randomness for the certificate's serial");
		goto out;
	}
	sr[0] &= 0x7f; /* positive */
	for (int i = 0; i < 16; i++)
		sprintf(serial + 2 + 2 * i, "%02x", sr[i]);
	char *sign[] = { "openssl", "x509", "-req", "-in", csr, "-CA", W.c.vm_ca_cert, "-CAkey", W.c.vm_ca_key,
			 "-set_serial", serial, "-days", "825", "-extfile", ext, "-out", crt, NULL };
	if (run(req, logp, why, len) || run(sign, logp, why, len))
		goto out;
	s_cert = lap(&tl);
	/* the image's recipe (nginx) */
	snprintf(p, sizeof(p), "%s/mkrootfs.sh", W.c.images_dir);
	char *mk[] = { p, rootfs, (char *)o->hostname, crt, key, NULL };
	if (run(mk, logp, why, len))
		goto out;
	s_rootfs = lap(&tl);
	unlink(key); /* its copy is in the rootfs, to be encrypted */
	/* post-provisioning: hostname, SSH keys, a NoCloud-style seed for the first boot */
	snprintf(p, sizeof(p), "%s/etc/hostname", rootfs);
	snprintf(p2, sizeof(p2), "%s\n", o->hostname);
	int bad = write_file(p, p2, 0644);
	snprintf(p, sizeof(p), "%s/root", rootfs);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/root/.ssh", rootfs);
	mkdir(p, 0700);
	char *keys = calloc(1, sizeof(o->ssh_keys) + 32);
	for (int i = 0; keys && i < o->nkeys; i++) {
		strcat(keys, o->ssh_keys[i]);
		strcat(keys, "\n");
	}
	snprintf(p, sizeof(p), "%s/root/.ssh/authorized_keys", rootfs);
	bad |= !keys || write_file(p, keys, 0600);
	free(keys);
	snprintf(p, sizeof(p), "%s/etc/passwd", rootfs); /* root's home holds its .ssh */
	bad |= write_file(p, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0644);
	const char *seed_dirs[] = { "var", "var/lib", "var/lib/cloud", "var/lib/cloud/seed", "var/lib/cloud/seed/nocloud" };
	for (size_t i = 0; i < sizeof(seed_dirs) / sizeof(seed_dirs[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", rootfs, seed_dirs[i]);
		mkdir(p, 0700);
	}
	snprintf(p, sizeof(p), "%s/var/lib/cloud/seed/nocloud/meta-data", rootfs);
	snprintf(p2, sizeof(p2), "instance-id: %s\nlocal-hostname: %s\n", o->vm_id, o->hostname);
	bad |= write_file(p, p2, 0600);
	snprintf(p, sizeof(p), "%s/var/lib/cloud/seed/nocloud/user-data", rootfs);
	bad |= write_file(p, o->user_data, 0700);
	if (bad) {
		snprintf(why, len, "writing the post-provisioning into the root filesystem: %s", strerror(errno));
		goto out;
	}
	/* the initrd: who the validators are, how many, the registry's key */
	char pub[900], ksha[65];
	snprintf(p, sizeof(p), "%s/vm.conf", conf);
	snprintf(p2, sizeof(p2), "VM=%s\nT=%d\nVALIDATORS=%s\nADDR=%s\n", o->vm_id, o->t, o->validators,
		 o->addr4[0] ? o->addr4 : "");
	bad = write_file(p, p2, 0644);
	snprintf(p, sizeof(p), "%s/motd", conf);
	snprintf(p2, sizeof(p2), "veilmesh initrd for %s (%s)\n", o->hostname, o->vm_id);
	bad |= write_file(p, p2, 0644);
	snprintf(p, sizeof(p), "%s/kernel.sha256", conf);
	if (sha256_hex(W.c.kernel, ksha)) {
		snprintf(why, len, "%s: cannot read the kernel", W.c.kernel);
		goto out;
	}
	snprintf(p2, sizeof(p2), "%s\n", ksha);
	bad |= write_file(p, p2, 0644);
	snprintf(pub, sizeof(pub), "%s/registry.pub", conf);
	FILE *pf = fopen(pub, "w");
	bad |= !pf || !PEM_write_PUBKEY(pf, W.reg);
	if (pf)
		fclose(pf);
	char *cpca[] = { "cp", W.c.validators_ca, conf, NULL };
	snprintf(p, sizeof(p), "%s/%s", conf, strrchr(W.c.validators_ca, '/') ? strrchr(W.c.validators_ca, '/') + 1 : W.c.validators_ca);
	if (bad || run(cpca, logp, why, len) || (strcmp(p + strlen(conf) + 1, "ca.pem") && (snprintf(p2, sizeof(p2), "%s/ca.pem", conf), rename(p, p2)))) {
		if (!why[0])
			snprintf(why, len, "writing the initrd's configuration");
		goto out;
	}
	char initrd[900], disk[900], cmdf[900], refs[900], ak[900];
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", d);
	snprintf(p, sizeof(p), "%s/mkinitrd.sh", W.c.images_dir);
	char *mi[] = { p, initrd, W.c.kver, W.c.veil_attest, conf, NULL };
	lap(&tl);
	if (run(mi, logp, why, len))
		goto out;
	s_initrd = lap(&tl);
	/* the order: the existing code, unchanged (key split, registration, wipe) */
	snprintf(disk, sizeof(disk), "%s/disk.img", d);
	snprintf(cmdf, sizeof(cmdf), "%s/cmdline", d);
	/* the command line the VM will boot: the published one plus what the node
	 * agent appends (veil.ip4=ADDR/P,GW veil.ip6=ADDR/P,GW, as domxml.c does),
	 * so the offline PCR 9 is the booted one */
	char measured[1400];
	int k = snprintf(measured, sizeof(measured), "%s", W.c.cmdline);
	char extra[400] = "";
	int e = 0;
	if (o->addr4[0] && o->gateway4[0])
		e += snprintf(extra + e, sizeof(extra) - e, "veil.ip4=%s,%s", o->addr4, o->gateway4);
	if (o->addr6[0] && o->gateway6[0])
		snprintf(extra + e, sizeof(extra) - e, "%sveil.ip6=%s,%s", e ? " " : "", o->addr6, o->gateway6);
	if (extra[0])
		snprintf(measured + k, sizeof(measured) - k, "%s%s", k ? " " : "", extra);
	snprintf(p2, sizeof(p2), "%s\n", measured);
	write_file(cmdf, p2, 0644);
	if (o->ak_pub[0]) {
		snprintf(ak, sizeof(ak), "%s/ak.pub", d);
		write_file(ak, o->ak_pub, 0644);
	} else {
		/* the VM's AK is made in its vTPM at boot and bound to the recorded
		 * EK by credential activation: a default AK from the config could
		 * never be that VM's, so ak_pub is no longer given to order */
		ak[0] = 0;
	}
	if (!W.c.ek_cert[0]) {
		snprintf(why, len, "no EK certificate for the VMs' vTPM (ek_cert in the worker's config)");
		goto out;
	}
	char tt[16], mbs[16], mc[950], mi2[950], p0[80], p7[80];
	snprintf(tt, sizeof(tt), "%d", o->t);
	snprintf(mbs, sizeof(mbs), "%d", W.c.disk_mb);
	snprintf(mc, sizeof(mc), "cmdline=%s", cmdf);
	snprintf(mi2, sizeof(mi2), "initrd=%s", initrd);
	static const char zero[] = "0000000000000000000000000000000000000000000000000000000000000000";
	snprintf(p0, sizeof(p0), "0=%s", W.c.pcr0[0] ? W.c.pcr0 : zero);
	snprintf(p7, sizeof(p7), "7=%s", W.c.pcr7[0] ? W.c.pcr7 : zero);
	char *ord[] = { W.self, "order", "--vm", (char *)o->vm_id, "--t", tt, "--validators", (char *)o->validators,
			"--ca", W.c.validators_ca, "--key", W.c.registry_key, "--ek-cert", W.c.ek_cert, "--disk", disk,
			"--disk-mb", mbs, "--rootfs", rootfs, "--measure", mc, "--measure", mi2, "--pcr", p0, "--pcr", p7,
			NULL, NULL, NULL, NULL, NULL };
	/* the vendor CA the EK must chain to, and the AK when one is known (else
	 * it is bound by credential activation alone) */
	int na = 0;
	while (ord[na])
		na++;
	if (W.c.ek_ca[0]) {
		ord[na++] = "--ek-ca";
		ord[na++] = W.c.ek_ca;
	}
	if (ak[0]) {
		ord[na++] = "--ak-pub";
		ord[na++] = ak;
	}
	lap(&tl);
	int orc = run(ord, logp, why, len);
	s_order = lap(&tl);
	wipe_tree(rootfs); /* encrypted or not, the plaintext goes now */
	if (orc)
		goto out;
	snprintf(refs, sizeof(refs), "%s/refs.json", d);
	char *rf[] = { W.self, "refs", "--vm", (char *)o->vm_id, "--kernel", W.c.kernel, "--initrd", initrd, "--cmdline",
		       measured, "--key", W.c.registry_key, "--out", refs, "--pcr", p0, "--pcr", p7, NULL };
	if (run(rf, logp, why, len))
		goto out;
	s_refs = lap(&tl);
	/* publish: <vm_id>-<file> beside the kernel, then serve again */
	struct { const char *from, *name, *field; } pubf[] = {
		{ disk, "disk.img", "disk" }, { initrd, "initrd.img", "initrd" }, { refs, "refs.json", "refs" },
		{ NULL, "refs.json.sig", NULL },
	};
	json_object *j = json_object_new_object();
	char hex[65], url[2048];
	for (size_t i = 0; i < sizeof(pubf) / sizeof(pubf[0]); i++) {
		char from[1600], to[1600];
		snprintf(from, sizeof(from), "%s", pubf[i].from ? pubf[i].from : refs);
		if (!pubf[i].from)
			strcat(from, ".sig");
		snprintf(to, sizeof(to), "%s/%s-%s", W.c.publish_dir, o->vm_id, pubf[i].name);
		if (rename(from, to)) {
			char *mv[] = { "mv", from, to, NULL };
			if (run(mv, logp, why, len)) {
				json_object_put(j);
				goto out;
			}
		}
		if (!pubf[i].field)
			continue;
		sha256_hex(to, hex);
		snprintf(url, sizeof(url), "%s/v1/blobs/sha256:%s", W.c.public_url, hex);
		snprintf(p, sizeof(p), "%s_url", pubf[i].field);
		json_object_object_add(j, p, json_object_new_string(url));
		if (strcmp(pubf[i].field, "refs")) {
			snprintf(p, sizeof(p), "%s_sha256", pubf[i].field);
			json_object_object_add(j, p, json_object_new_string(hex));
		}
	}
	snprintf(url, sizeof(url), "%s/v1/blobs/sha256:%s", W.c.public_url, ksha);
	json_object_object_add(j, "kernel_url", json_object_new_string(url));
	json_object_object_add(j, "kernel_sha256", json_object_new_string(ksha));
	json_object_object_add(j, "cmdline", json_object_new_string(W.c.cmdline));
	status(o, "done", NULL, j); /* serve finds the new files itself */
	wlog("event=build_steps vm=%s cert_s=%.1f rootfs_s=%.1f initrd_s=%.1f order_s=%.1f refs_s=%.1f publish_s=%.1f "
	     "(order: mke2fs -d, LUKS2 reencrypt with argon2id, key split and registered)",
	     o->vm_id, s_cert, s_rootfs, s_initrd, s_order, s_refs, lap(&tl));
	rc = 0;
out:
	wipe_tree(d);
	return rc;
}

/* At start, what every build shares goes into image_cache before the first
 * order needs it (a build that comes first waits for it: the scripts lock) */
static void *cache_warm(void *arg)
{
	char mi[700], mr[700], lp[700], why[512] = "";
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	snprintf(mi, sizeof(mi), "%s/mkinitrd.sh", W.c.images_dir);
	snprintf(mr, sizeof(mr), "%s/mkrootfs.sh", W.c.images_dir);
	snprintf(lp, sizeof(lp), "%s/cache-warm.log", W.c.work_dir);
	char *a1[] = { mi, "--cache-only", W.c.kver, W.c.veil_attest, NULL };
	char *a2[] = { mr, "--cache-only", NULL };
	if (run(a1, lp, why, sizeof(why)) || run(a2, lp, why, sizeof(why)))
		wlog("event=cache_warm_failed dir=%s reason=\"%s\" (each build makes what it needs)", W.c.image_cache, why);
	else
		wlog("event=cache_warm dir=%s seconds=%.1f", W.c.image_cache, lap(&t));
	return NULL;
}

static void *builder(void *arg)
{
	while (!vm_stop_sig) {
		pthread_mutex_lock(&W.mu);
		while (!W.qn && !vm_stop_sig)
			pthread_cond_wait(&W.cv, &W.mu);
		if (vm_stop_sig) {
			pthread_mutex_unlock(&W.mu);
			break;
		}
		struct order *o = arg; /* this builder's own */
		*o = W.q[0];
		memmove(W.q, W.q + 1, (size_t)(--W.qn) * sizeof(W.q[0]));
		pthread_mutex_unlock(&W.mu);
		char why[1024] = "";
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		status(o, "building", NULL, NULL);
		int brc = build(o, why, sizeof(why));
		pthread_mutex_lock(&W.mu);
		if (brc)
			W.failed++;
		else
			W.built++;
		pthread_mutex_unlock(&W.mu);
		if (brc) {
			status(o, "failed", why, NULL);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			wlog("event=build_time vm=%s seconds=%.1f", o->vm_id, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
		}
		memset(o, 0, sizeof(*o));
	}
	return NULL;
}

/* ---------- the watch on builds ---------- */

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 253)
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
			return 0;
	return s[0] != '.' && s[0] != '-';
}

static int parse_build(const char *key, const char *body, struct order *o, char *why, size_t len)
{
	json_object *j = json_tokener_parse(body), *v;
	int rc = -1;
	memset(o, 0, sizeof(*o));
#define STR(name, dst, req)                                                                                        \
	if (json_object_object_get_ex(j, name, &v) && json_object_is_type(v, json_type_string)) {                  \
		if ((size_t)json_object_get_string_len(v) >= sizeof(dst)) {                                        \
			snprintf(why, len, "'%s' too long", name);                                                 \
			goto out;                                                                                  \
		}                                                                                                  \
		strcpy(dst, json_object_get_string(v));                                                            \
	} else if (req) {                                                                                          \
		snprintf(why, len, "no '%s' string", name);                                                        \
		goto out;                                                                                          \
	}
	if (!j || !json_object_is_type(j, json_type_object)) {
		snprintf(why, len, "body is not a JSON object");
		goto out;
	}
	STR("vm_id", o->vm_id, 1);
	if (strcmp(o->vm_id, key) || strspn(o->vm_id, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(o->vm_id)) {
		snprintf(why, len, "vm_id is not the key or not [a-z0-9-]");
		goto out;
	}
	STR("order", o->order, 0);
	STR("image", o->image, 1);
	STR("hostname", o->hostname, 1);
	if (!name_ok(o->hostname)) {
		snprintf(why, len, "hostname '%s' is not a lowercase host name", o->hostname);
		goto out;
	}
	STR("user_data", o->user_data, 0);
	STR("ak_pub", o->ak_pub, 0);
	STR("addr4", o->addr4, 0);
	STR("gateway4", o->gateway4, 0);
	STR("addr6", o->addr6, 0);
	STR("gateway6", o->gateway6, 0);
	for (const char *a = o->addr4; *a; a++)
		if (!strchr("0123456789./", *a)) {
			snprintf(why, len, "addr4 is not ADDR/PREFIX");
			goto out;
		}
	for (const char *a = o->gateway4; *a; a++)
		if (!strchr("0123456789.", *a)) {
			snprintf(why, len, "gateway4 is not an IPv4 address");
			goto out;
		}
	for (const char *a = o->addr6; *a; a++)
		if (!strchr("0123456789abcdef:/", *a)) {
			snprintf(why, len, "addr6 is not ADDR/PREFIX");
			goto out;
		}
	for (const char *a = o->gateway6; *a; a++)
		if (!strchr("0123456789abcdef:", *a)) {
			snprintf(why, len, "gateway6 is not an IPv6 address");
			goto out;
		}
	if (json_object_object_get_ex(j, "ssh_keys", &v)) {
		if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > 16) {
			snprintf(why, len, "ssh_keys must be a list of at most 16 keys");
			goto out;
		}
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *k = json_object_array_get_idx(v, i);
			const char *s = json_object_is_type(k, json_type_string) ? json_object_get_string(k) : NULL;
			if (!s || strlen(s) >= sizeof(o->ssh_keys[0]) || (strncmp(s, "ssh-", 4) && strncmp(s, "ecdsa-", 6)) ||
			    strpbrk(s, "\n\r")) {
				snprintf(why, len, "ssh_keys[%zu] is not one OpenSSH public key line", i);
				goto out;
			}
			strcpy(o->ssh_keys[o->nkeys++], s);
		}
	}
	if (!json_object_object_get_ex(j, "validators", &v) || !json_object_is_type(v, json_type_array) ||
	    json_object_array_length(v) < 2 || json_object_array_length(v) > 32) {
		snprintf(why, len, "validators must be a list of 2..32 ADDR:PORT");
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *a = json_object_array_get_idx(v, i);
		const char *s = json_object_is_type(a, json_type_string) ? json_object_get_string(a) : NULL;
		if (!s || !strchr(s, ':') || strspn(s, "0123456789abcdef.:[]") != strlen(s) ||
		    strlen(o->validators) + strlen(s) + 2 >= sizeof(o->validators)) {
			snprintf(why, len, "validators[%zu] is not ADDR:PORT", i);
			goto out;
		}
		if (i)
			strcat(o->validators, ",");
		strcat(o->validators, s);
	}
	o->t = json_object_object_get_ex(j, "t", &v) && json_object_is_type(v, json_type_int) ? json_object_get_int(v) : 2;
	if (o->t < 2 || o->t > (int)json_object_array_length(json_object_object_get(j, "validators"))) {
		snprintf(why, len, "t = %d: at least 2 and at most the validators", o->t);
		goto out;
	}
	rc = 0;
out:
#undef STR
	json_object_put(j);
	return rc;
}

static void on_build(void *arg, const struct vs_entry *e)
{
	char why[512] = "";
	pthread_mutex_lock(&W.mu);
	int i;
	for (i = 0; i < (int)W.revs_n && strcmp(W.seen_key[i], e->key); i++)
		;
	if (i < (int)W.revs_n && e->rev <= W.seen_rev[i]) { /* delivered again after a reconnect */
		pthread_mutex_unlock(&W.mu);
		return;
	}
	if (i == (int)W.revs_n && W.revs_n < 1024 && strlen(e->key) < 64)
		snprintf(W.seen_key[W.revs_n++], 64, "%s", e->key);
	if (i < 1024)
		W.seen_rev[i] = e->rev;
	pthread_mutex_unlock(&W.mu);
	if (e->op == VS_OP_DEL)
		return; /* a build is not undone: its files stay until the registry's operator removes them */
	char *body = NULL;
	uint64_t gen = 0;
	int rc = vs_open(W.ctl, "builds", e->key, e->val, e->len, &body, &gen);
	static struct order o;
	pthread_mutex_lock(&W.mu);
	if (rc != VS_OK) {
		W.rej_sig++;
		wlog("event=store_rejected bucket=builds key=%s reason=signature detail=\"%s\" total=%llu", e->key,
		     vs_strerror(rc), (unsigned long long)W.rej_sig);
	} else if (parse_build(e->key, body, &o, why, sizeof(why))) {
		W.rej_body++;
		wlog("event=store_rejected bucket=builds key=%s reason=body detail=\"%s\" total=%llu", e->key, why,
		     (unsigned long long)W.rej_body);
		pthread_mutex_unlock(&W.mu);
		/* genuine but unusable: the controller hears why */
		struct order f = { 0 };
		snprintf(f.vm_id, sizeof(f.vm_id), "%.63s", e->key);
		if (strspn(f.vm_id, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(f.vm_id))
			status(&f, "failed", why, NULL);
		free(body);
		return;
	} else if (vs_gen_check(W.gens, e->key, gen) != VS_OK) {
		W.rej_replay++;
		wlog("event=store_rejected bucket=builds key=%s reason=replay detail=\"gen %llu is not above the last one\" total=%llu",
		     e->key, (unsigned long long)gen, (unsigned long long)W.rej_replay);
	} else if (strcmp(o.image, "nginx@1")) {
		pthread_mutex_unlock(&W.mu);
		snprintf(why, sizeof(why), "image %s is not in this registry's catalog (nginx@1)", o.image);
		status(&o, "failed", why, NULL);
		free(body);
		return;
	} else if (W.qn == MAXQ) {
		pthread_mutex_unlock(&W.mu);
		status(&o, "failed", "the registry's queue is full", NULL);
		free(body);
		return;
	} else {
		o.gen = gen;
		W.q[W.qn++] = o;
		wlog("event=build_queued vm=%s order=%s image=%s gen=%llu", o.vm_id, o.order[0] ? o.order : "-", o.image,
		     (unsigned long long)gen);
		pthread_cond_signal(&W.cv);
	}
	pthread_mutex_unlock(&W.mu);
	free(body);
}

static void publish_catalog(void)
{
	/* the recipe's digest: what goes into every image of it */
	char p[700], h1[65] = "", h2[65] = "", all[200];
	snprintf(p, sizeof(p), "%s/mkrootfs.sh", W.c.images_dir);
	sha256_hex(p, h1);
	snprintf(p, sizeof(p), "%s/os-init", W.c.images_dir);
	sha256_hex(p, h2);
	snprintf(all, sizeof(all), "%s%s", h1, h2);
	unsigned char md[32];
	unsigned int ml = 32;
	EVP_Digest(all, strlen(all), md, &ml, EVP_sha256(), NULL);
	char hex[65];
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	json_object *j = json_object_new_object();
	json_object_object_add(j, "name", json_object_new_string("nginx"));
	json_object_object_add(j, "version", json_object_new_string("1"));
	json_object_object_add(j, "gen", json_object_new_int64((int64_t)next_gen()));
	json_object_object_add(j, "sha256", json_object_new_string(hex));
	json_object_object_add(j, "maintainer", json_object_new_string("veilmesh registry"));
	json_object_object_add(j, "kernel", json_object_new_string(W.c.kver));
	json_object_object_add(j, "description",
			       json_object_new_string("busybox and nginx serving TLS 1.3 on 443 with a certificate for the "
						      "VM's hostname; SSH keys and user-data applied on first boot"));
	put_signed(W.catalog, "catalog", "nginx.1", j);
	json_object_put(j);
	wlog("event=catalog_published key=nginx.1 sha256=%s", hex);
}

static void worker_usage(FILE *f)
{
	fprintf(f, "usage: veil-registry worker --config FILE [--check] [--pidfile FILE]\n"
		   "Builds the orders the controller puts in the store (bucket builds), publishes the\n"
		   "images and serves them (veil-registry-worker.conf(5), docs/veil-registry-worker.conf.example).\n"
		   "Signals: SIGHUP checks the config file again (its settings apply at restart),\n"
		   "SIGTERM/SIGINT stop after the builds in progress.\n"
		   "Exit codes: 0 stopped, 1 runtime failure, 2 bad usage or config.\n");
}

/* SIGHUP: the worker's settings are read by builds in flight, so they change
 * only with a restart; the file is checked now, so a restart will not meet a
 * bad one unannounced. */
static uint64_t reloads_ok, reloads_rejected, started;   /* the main thread's */

static void worker_reload(void)
{
	static struct wcfg n;
	char err[1024];

	if (load_cfg(W.c.path, &n, err, sizeof(err))) {
		reloads_rejected++;
		wlog("event=reload_rejected reason=\"%s\"", err);
		return;
	}
	reloads_ok++;
	wlog("event=reload_checked result=ok note=\"the worker's settings apply at restart\"");
}

/* GET /metrics on 'metrics': builds by result, orders refused by reason, the queue */
static void worker_metrics(void *arg, FILE *out)
{
	pthread_mutex_lock(&W.mu);   /* the builders and the watch count under it */
	unsigned long long built = W.built, failed = W.failed, sig = W.rej_sig, replay = W.rej_replay, body = W.rej_body;
	int queued = W.qn;
	pthread_mutex_unlock(&W.mu);
	fprintf(out, "# HELP veilmesh_registry_builds_total Build orders finished, by result.\n"
		     "# TYPE veilmesh_registry_builds_total counter\n"
		     "veilmesh_registry_builds_total{result=\"built\"} %llu\n"
		     "veilmesh_registry_builds_total{result=\"failed\"} %llu\n"
		     "# HELP veilmesh_registry_rejected_total Build orders refused before building, by reason.\n"
		     "# TYPE veilmesh_registry_rejected_total counter\n"
		     "veilmesh_registry_rejected_total{reason=\"signature\"} %llu\n"
		     "veilmesh_registry_rejected_total{reason=\"replay\"} %llu\n"
		     "veilmesh_registry_rejected_total{reason=\"body\"} %llu\n"
		     "# HELP veilmesh_registry_queue Build orders waiting for a builder.\n"
		     "# TYPE veilmesh_registry_queue gauge\nveilmesh_registry_queue %d\n",
		built, failed, sig, replay, body, queued);
	vm_metrics_daemon(out, reloads_ok, reloads_rejected, started);
}

int registry_worker_main(int argc, char **argv)
{
	const struct vm_daemon_cli cli = { .usage = worker_usage, .first = 2 };
	struct vm_daemon_opts opt;
	char err[1024] = "";
	int code;

	vm_prog_name = "veil-registry";
	if (vm_daemon_parse(argc, argv, &cli, &opt, &code))
		return code;
	const char *cfgp = opt.config;
	bool check = opt.check;
	if (load_cfg(cfgp, &W.c, err, sizeof(err)))
		return fprintf(stderr, "veil-registry: %s\n", err), 2;
	if (!(W.ctl = vs_load_key(W.c.controller_pub, 0, err, sizeof(err))) ||
	    !(W.reg = vs_load_key(W.c.registry_key, 1, err, sizeof(err))))
		return fprintf(stderr, "veil-registry: %s: %s\n", cfgp, err), 2;
	if (check)
		return printf("%s: ok\n", cfgp), 0;
	ssize_t sl = readlink("/proc/self/exe", W.self, sizeof(W.self) - 1);
	if (sl <= 0)
		return fprintf(stderr, "veil-registry: /proc/self/exe: %s\n", strerror(errno)), 1;
	W.self[sl] = 0;
	mkdir(W.c.publish_dir, 0755);
	mkdir(W.c.work_dir, 0700);
	/* the kernel every VM boots is served from the start */
	char kp[700];
	snprintf(kp, sizeof(kp), "%s/vmlinuz", W.c.publish_dir);
	unlink(kp);
	if (link(W.c.kernel, kp)) {
		char *cp[] = { "cp", W.c.kernel, kp, NULL };
		char why[256];
		char lp[700];
		snprintf(lp, sizeof(lp), "%s/kernel-copy.log", W.c.work_dir);
		if (run(cp, lp, why, sizeof(why)))
			return fprintf(stderr, "veil-registry: %s\n", why), 1;
	}
	pthread_mutex_init(&W.mu, NULL);
	pthread_mutex_init(&W.status_mu, NULL);
	pthread_cond_init(&W.cv, NULL);
	/* what every build shares, kept by content hash (images/mk*.sh read it) */
	if (strcmp(W.c.image_cache, "off")) {
		mkdir(W.c.image_cache, 0700);
		setenv("VEIL_IMAGE_CACHE", W.c.image_cache, 1);
	} else {
		unsetenv("VEIL_IMAGE_CACHE");
	}
	/* the last gen applied per build, kept across restarts: an older order
	 * put back in the store while the worker was down is still a replay */
	if (!(W.gens = vs_gens_open(W.c.gens_file, err, sizeof(err)))) {
		fprintf(stderr, "veil-registry worker: gens_file: %s\n", err);
		return 2;
	}
	struct vs_opts o = { .urls = W.c.store, .name = "veil-registry", .replicas = 1 };
	int rc;
	for (;;) { /* the store may come up after us */
		rc = vs_connect(&W.st, &o, err, sizeof(err));
		if (rc == VS_OK)
			break;
		wlog("event=store_unavailable reason=\"%s\" retry_s=2", err);
		sleep(2);
	}
	if ((rc = vs_bucket(W.st, "builds", 1, &W.builds, err, sizeof(err))) ||
	    (rc = vs_bucket(W.st, "buildstatus", 1, &W.status, err, sizeof(err))) ||
	    (rc = vs_bucket(W.st, "catalog", 1, &W.catalog, err, sizeof(err))))
		return fprintf(stderr, "veil-registry: %s\n", err), 1;
	struct vm_ctl ctl;
	if (vm_ctl_open(&ctl, "off", W.c.metrics[0] ? W.c.metrics : "off", err, sizeof(err)))
		return fprintf(stderr, "veil-registry: %s: %s\n", cfgp, err), 1;
	started = (uint64_t)time(NULL);
	vm_daemon_signals();   /* and --pidfile */
	serve_restart();
	publish_catalog();
	pthread_t th[MAX_JOBS];
	struct order *jobs = calloc((size_t)W.c.build_jobs, sizeof(*jobs));
	if (!jobs)
		return fprintf(stderr, "veil-registry: out of memory\n"), 1;
	for (int i = 0; i < W.c.build_jobs; i++)
		pthread_create(&th[i], NULL, builder, &jobs[i]);
	pthread_t warm;
	bool warming = strcmp(W.c.image_cache, "off") && !pthread_create(&warm, NULL, cache_warm, NULL);
	if ((rc = vs_watch(W.builds, NULL, on_build, NULL, NULL, &W.w, err, sizeof(err))))
		return fprintf(stderr, "veil-registry: %s\n", err), 1;
	wlog("event=started store=%s publish_dir=%s listen=%s public_url=%s build_jobs=%d image_cache=%s metrics=%s",
	     W.c.store, W.c.publish_dir, W.c.listen, W.c.public_url, W.c.build_jobs, W.c.image_cache,
	     W.c.metrics[0] ? W.c.metrics : "off");
	/* not pause(): SIGTERM may be handled by any of the process's threads
	 * (the builders, the store's), and then pause() here never returns;
	 * the handler's self-pipe wakes this thread whichever took it */
	while (!vm_stop_sig) {
		vm_ctl_poll(&ctl, 1000, NULL, worker_metrics, NULL);
		if (vm_daemon_signal_take() == VM_SIG_RELOAD)
			worker_reload();
	}
	vm_ctl_close(&ctl);
	vs_watch_stop(W.w);
	pthread_mutex_lock(&W.mu);
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
	for (int i = 0; i < W.c.build_jobs; i++)
		pthread_join(th[i], NULL); /* builds in progress finish first */
	if (warming)
		pthread_join(warm, NULL);
	free(jobs);
	if (W.serve_pid > 0) {
		kill(W.serve_pid, SIGTERM);
		usleep(200000);
		kill(W.serve_pid, SIGKILL);
		waitpid(W.serve_pid, NULL, 0);
	}
	wlog("event=stopped built=%llu failed=%llu rejected_signature=%llu rejected_replay=%llu rejected_body=%llu",
	     (unsigned long long)W.built, (unsigned long long)W.failed, (unsigned long long)W.rej_sig,
	     (unsigned long long)W.rej_replay, (unsigned long long)W.rej_body);
	vs_kv_close(W.builds);
	vs_kv_close(W.status);
	vs_kv_close(W.catalog);
	vs_close(W.st);
	return 0;
}
