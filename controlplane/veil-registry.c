// SPDX-License-Identifier: Apache-2.0
/*
 * veil-registry: building a VM's disk, its reference values and its key shares.
 *
 *   veil-registry order --vm ID --t T --validators ADDR:PORT,... --ca FILE
 *                       --key REGISTRY_KEY --ek-cert FILE [--ek-ca FILE] [--ak-pub FILE] --disk PATH [--disk-mb N]
 *                       --measure cmdline=P --measure initrd=P [--measure kernel=P --measure config=P]
 *                       [--pcr 0=HEX --pcr 7=HEX] [--pcr9-event HEX ...] [--epoch N] [--rootfs DIR]
 *   veil-registry refs --vm ID --kernel FILE --initrd FILE --cmdline STRING --key REGISTRY_KEY
 *                      --out FILE [--pcr N=HEX ...]
 *   veil-registry serve --dir DIR --listen ADDR:PORT --cert FILE --key FILE
 *
 * order generates the disk key, formats PATH as a LUKS2 container with it
 * (cryptsetup on the file, key through a pipe, no shell), splits the key into
 * one share per validator (t >= 2 rebuild it), signs every share, and
 * registers each with its validator together with the signed reference
 * document of protocol v2 (docs/attestation.md): expected PCR 0 and 7 (from a
 * reference boot; zero by default), every EFI-stub event of PCR 9 (command
 * line digest sha256(UTF-16LE(cmdline + " initrd=initrd") + 00 00) and
 * sha256(initrd), computed from the files unless --pcr9-event lists them),
 * the VM's AK, t, n, the key epoch (default: now, in seconds; validators
 * refuse an epoch not newer than theirs) and a commitment to the key.
 * kernel= and config= are accepted and not part of the policy (PCR 4 is not
 * quoted).  With --rootfs, PATH holds that directory as ext4 (mke2fs -d),
 * encrypted in place offline (cryptsetup reencrypt --encrypt, LUKS2, argon2id
 * pinned at 64 MiB and 4 iterations so the VM unlocks in seconds without KVM;
 * never the host's benchmark) instead of an empty container.  The key only
 * travels through a pipe to cryptsetup and is wiped; it is never written
 * anywhere.
 *
 * refs computes, offline, what the EFI stub will extend into PCR 9 (the
 * command line event and the initrd event, as above) and PCR 9 after them,
 * with the firmware PCRs given by --pcr (from a reference boot), and signs
 * the JSON (Ed25519, the registry's key) into OUT.sig: published with the
 * image so anyone can check what the validators were told.
 *
 * serve publishes DIR's files (kernel, initrd, disk image, refs and their
 * signature) over HTTPS (TLS 1.3 only), content-addressed:
 * GET /v1/manifest -> {"files":[{"name","size","sha256","url":"/v1/blobs/sha256:HEX"}]},
 * GET /v1/blobs/sha256:HEX -> the bytes, which the client checks against the
 * digest in the URL.  Nothing else is served; one request a connection.
 * Files added to DIR later are served too: a request for the manifest or for
 * a digest it does not know yet looks at DIR again (hashing only names it has
 * not seen, or whose size or mtime changed), so a publisher renames a finished
 * file into DIR and needs no restart.
 *
 * Exit: 0 done, 1 failed (said so), 2 bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "common/daemon.h"
#include "keys/attest.h"
#include "keys/ek.h"
#include "keys/shamir.h"

extern char **environ;
int registry_worker_main(int argc, char **argv);

static int rnd(uint8_t *b, size_t n)
{
	return RAND_priv_bytes(b, n) == 1 ? 0 : -1;
}

/* Runs argv with data on its stdin (no shell: nothing is formatted into a
 * command line); returns its exit status, or -1. */
static int run_with_stdin(char *const argv[], const uint8_t *data, size_t len)
{
	int p[2], st = -1;
	pid_t pid;
	posix_spawn_file_actions_t fa;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	if (rc) {
		close(p[1]);
		return -1;
	}
	int ok = write(p[1], data, len) == (ssize_t)len;
	close(p[1]);
	if (waitpid(pid, &st, 0) < 0 || !ok)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The reference document (JSON bytes, signed as they are). */
static char *make_refs(const char *vm, uint64_t epoch, int t, int n, const char *pcr0, const char *pcr7,
		       char pcr9[][65], int npcr9, const uint8_t commit[32], const uint8_t ek[32], const char *akpem)
{
	char hx[65];
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(o, "v", json_object_new_int(2));
	json_object_object_add(o, "vm", json_object_new_string(vm));
	json_object_object_add(o, "epoch", json_object_new_int64((int64_t)epoch));
	json_object_object_add(o, "t", json_object_new_int(t));
	json_object_object_add(o, "n", json_object_new_int(n));
	json_object_object_add(o, "pcr0", json_object_new_string(pcr0));
	json_object_object_add(o, "pcr7", json_object_new_string(pcr7));
	for (int i = 0; i < npcr9; i++)
		json_object_array_add(a, json_object_new_string(pcr9[i]));
	json_object_object_add(o, "pcr9", a);
	vm_hex(commit, 32, hx);
	json_object_object_add(o, "commit", json_object_new_string(hx));
	vm_hex(ek, 32, hx);
	json_object_object_add(o, "ek", json_object_new_string(hx));
	if (akpem[0])
		json_object_object_add(o, "ak_pub", json_object_new_string(akpem));
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return s;
}

static int sign_b64(EVP_PKEY *key, const char *data, char *out, size_t cap)
{
	uint8_t sig[64];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
		 EVP_DigestSign(md, sig, &sl, (const uint8_t *)data, strlen(data)) == 1;
	EVP_MD_CTX_free(md);
	return ok && vm_b64_encode(sig, sl, out, cap) > 0 ? 0 : -1;
}

static void sha256(const void *in, size_t len, uint8_t out[32])
{
	unsigned int ol = 32;
	EVP_Digest(in, len, out, &ol, EVP_sha256(), NULL);
}

/* The EFI stub's command-line event, as order computes it (vm_cmdline_digest:
 * UTF-16LE of cmdline + " initrd=initrd" with the terminating NUL); ASCII only:
 * the stub's conversion of anything else is not ours to guess. */
static int cmdline_event(const char *cmdline, uint8_t out[32])
{
	size_t n = strlen(cmdline);

	if (n >= 4096 - 16)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)cmdline[i] < 0x20 || (unsigned char)cmdline[i] > 0x7e)
			return -1;
	vm_cmdline_digest(cmdline, n, out);
	return 0;
}

static void extend(uint8_t pcr[32], const uint8_t d[32])
{
	uint8_t b[64];
	memcpy(b, pcr, 32);
	memcpy(b + 32, d, 32);
	sha256(b, 64, pcr);
}

static int sign_file(const char *path, EVP_PKEY *key)
{
	char sp[1024];
	uint8_t buf[65536], sig[64];
	size_t n, sl = sizeof(sig);
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && n < sizeof(buf) && EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
		 EVP_DigestSign(md, sig, &sl, buf, n) == 1;
	EVP_MD_CTX_free(md);
	snprintf(sp, sizeof(sp), "%s.sig", path);
	f = ok ? fopen(sp, "we") : NULL;
	ok = f && fwrite(sig, 1, sl, f) == sl;
	if (f && fclose(f))
		ok = 0;
	return ok ? 0 : -1;
}

/* veil-registry refs: the reference values, offline, signed. */
static int refs_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' }, { "kernel", required_argument, NULL, 'K' },
		{ "initrd", required_argument, NULL, 'i' }, { "cmdline", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'k' }, { "out", required_argument, NULL, 'o' },
		{ "pcr", required_argument, NULL, 'p' }, { 0 }
	};
	const char *vm = NULL, *kernel = NULL, *initrd = NULL, *cmdline = NULL, *keyf = NULL, *out = NULL;
	char pcrhex[24][65] = { { 0 } };
	int o;

	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'v': vm = optarg; break;
		case 'K': kernel = optarg; break;
		case 'i': initrd = optarg; break;
		case 'C': cmdline = optarg; break;
		case 'k': keyf = optarg; break;
		case 'o': out = optarg; break;
		case 'p': {
			int n = atoi(optarg);
			const char *eq = strchr(optarg, '=');
			if (!eq || n < 0 || n > 7 || strlen(eq + 1) != 64)
				return fprintf(stderr, "veil-registry: refs --pcr takes N=64 hex digits, N 0..7\n"), 2;
			snprintf(pcrhex[n], 65, "%s", eq + 1);
			break;
		}
		default:
			return 2;
		}
	}
	if (!vm || !kernel || !initrd || !cmdline || !keyf || !out)
		return fprintf(stderr, "veil-registry: refs needs --vm, --kernel, --initrd, --cmdline, --key and --out\n"), 2;
	EVP_PKEY *reg = vm_load_priv(keyf);
	if (!reg)
		return fprintf(stderr, "veil-registry: cannot read %s\n", keyf), 1;
	uint8_t hk[32], hi[32], hc[32], pcr9[32] = { 0 };
	char xk[65], xi[65], xc[65], x9[65];
	if (vm_sha256_file(kernel, 0, hk) || vm_sha256_file(initrd, 0, hi))
		return fprintf(stderr, "veil-registry: cannot read %s or %s\n", kernel, initrd), 1;
	if (cmdline_event(cmdline, hc))
		return fprintf(stderr, "veil-registry: the command line must be printable ASCII, under 4 KiB\n"), 2;
	/* the stub measures the command line, then the initrd it loads */
	extend(pcr9, hc);
	extend(pcr9, hi);
	vm_hex(hk, 32, xk);
	vm_hex(hi, 32, xi);
	vm_hex(hc, 32, xc);
	vm_hex(pcr9, 32, x9);
	FILE *f = fopen(out, "we");
	if (!f)
		return fprintf(stderr, "veil-registry: %s: %s\n", out, strerror(errno)), 1;
	fprintf(f, "{\"vm\":\"%s\",\"kernel_sha256\":\"%s\",\"initrd_sha256\":\"%s\",\"cmdline\":", vm, xk, xi);
	json_object *js = json_object_new_string(cmdline);
	fputs(json_object_to_json_string_ext(js, JSON_C_TO_STRING_NOSLASHESCAPE), f);
	json_object_put(js);
	fprintf(f, ",\"pcr9_events\":[{\"event\":\"cmdline\",\"sha256\":\"%s\"},{\"event\":\"initrd\",\"sha256\":\"%s\"}],"
		   "\"pcrs\":{", xc, xi);
	int first = 1;
	for (int p = 0; p < 8; p++)
		if (pcrhex[p][0]) {
			fprintf(f, "%s\"%d\":\"%s\"", first ? "" : ",", p, pcrhex[p]);
			first = 0;
		}
	fprintf(f, "%s\"9\":\"%s\"}}\n", first ? "" : ",", x9);
	if (fclose(f) || sign_file(out, reg))
		return fprintf(stderr, "veil-registry: cannot write or sign %s\n", out), 1;
	printf("refs %s: pcr9 %s (cmdline event %s, initrd event %s); signed %s.sig\n", vm, x9, xc, xi, out);
	return 0;
}

/* veil-registry serve */
#define SERVE_MAX 4096
static struct {
	char name[256], hex[65];
	off_t size;
	struct timespec mtime;
	int seen;   /* in DIR at the last scan */
} pub[SERVE_MAX];
static int npub;
static char *manifest;

/* DIR's regular files into pub[] (new or changed ones hashed, removed ones
 * dropped) and the manifest */
static void serve_scan(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	for (int i = 0; i < npub; i++)
		pub[i].seen = 0;
	while (d && (e = readdir(d))) {
		char path[1024];
		struct stat st;
		uint8_t h[32];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(pub[0].name) || stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		int i;
		for (i = 0; i < npub && strcmp(pub[i].name, e->d_name); i++)
			;
		if (i < npub && pub[i].size == st.st_size && pub[i].mtime.tv_sec == st.st_mtim.tv_sec &&
		    pub[i].mtime.tv_nsec == st.st_mtim.tv_nsec) {
			pub[i].seen = 1;
			continue;
		}
		if ((i == npub && npub == SERVE_MAX) || vm_sha256_file(path, 0, h))
			continue;
		snprintf(pub[i].name, sizeof(pub[i].name), "%s", e->d_name);
		vm_hex(h, 32, pub[i].hex);
		pub[i].size = st.st_size;
		pub[i].mtime = st.st_mtim;
		pub[i].seen = 1;
		if (i == npub)
			npub++;
	}
	if (d) {   /* (DIR unreadable for a moment: what was there stays) */
		closedir(d);
		int k = 0;
		for (int i = 0; i < npub; i++)   /* a file gone from DIR (a cancelled order's) leaves the manifest */
			if (pub[i].seen)
				pub[k++] = pub[i];
		npub = k;
	}
	json_object *m = json_object_new_object(), *fl = json_object_new_array();
	for (int i = 0; i < npub; i++) {
		json_object *f = json_object_new_object();
		char url[128];
		snprintf(url, sizeof(url), "/v1/blobs/sha256:%s", pub[i].hex);
		json_object_object_add(f, "name", json_object_new_string(pub[i].name));
		json_object_object_add(f, "size", json_object_new_int64(pub[i].size));
		json_object_object_add(f, "sha256", json_object_new_string(pub[i].hex));
		json_object_object_add(f, "url", json_object_new_string(url));
		json_object_array_add(fl, f);
	}
	json_object_object_add(m, "files", fl);
	free(manifest);
	manifest = strdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(m);
}

static void reply(SSL *ssl, int status, const char *type, const void *body, size_t len)
{
	char h[256];
	int n = snprintf(h, sizeof(h), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request", type, len);
	SSL_write(ssl, h, n);
	if (len)
		SSL_write(ssl, body, (int)len);
}

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: veil-registry serve --dir DIR --listen ADDR:PORT --cert F --key F [--pidfile FILE]\n"
		   "Serves DIR's files over HTTPS (TLS 1.3): GET /v1/manifest, GET /v1/blobs/sha256:HEX.\n"
		   "Signals: SIGTERM/SIGINT stop.  Exit codes: 0 stopped, 1 runtime failure, 2 bad usage.\n");
}

struct serve_args { const char *dir, *listen_at, *cert, *key; };
static int serve_opt(void *arg, int opt, const char *val)
{
	struct serve_args *a = arg;
	*(opt == 'd' ? &a->dir : opt == 'l' ? &a->listen_at : opt == 'C' ? &a->cert : &a->key) = val;
	return 0;
}

static int serve_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' }, { "listen", required_argument, NULL, 'l' },
		{ "cert", required_argument, NULL, 'C' }, { "key", required_argument, NULL, 'K' }, { 0 }
	};
	struct serve_args a = { 0 };
	const struct vm_daemon_cli cli = { .usage = serve_usage, .flags = VM_OPT_NO_CONFIG, .first = 2, .extra = opts,
					   .extra_fn = serve_opt, .arg = &a };
	struct vm_daemon_opts opt;
	int code;

	vm_prog_name = "veil-registry";
	if (vm_daemon_parse(argc, argv, &cli, &opt, &code))
		return code;
	const char *dir = a.dir, *listen_at = a.listen_at, *cert = a.cert, *key = a.key;
	if (!dir || !listen_at || !cert || !key)
		return fprintf(stderr, "veil-registry: serve needs --dir, --listen ADDR:PORT, --cert and --key\n"), 2;
	DIR *d = opendir(dir);
	if (d)
		closedir(d);
	serve_scan(dir);
	if (!d || !npub)
		return fprintf(stderr, "veil-registry: nothing to serve in %s\n", dir), 1;

	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		return fprintf(stderr, "veil-registry: cannot load %s / %s\n", cert, key), 1;
	char host[128];
	const char *c = strrchr(listen_at, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(c ? c - listen_at : 0), listen_at);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE }, *ai;
	if (!c || getaddrinfo(host, c + 1, &hints, &ai))
		return fprintf(stderr, "veil-registry: --listen takes ADDR:PORT\n"), 2;
	int one = 1, lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, 16))
		return fprintf(stderr, "veil-registry: listen %s: %s\n", listen_at, strerror(errno)), 1;
	freeaddrinfo(ai);
	vm_daemon_signals();   /* and --pidfile */
	vm_log("event=serving files=%d dir=%s listen=%s", npub, dir, listen_at);
	while (!vm_stop_sig) {
		/* the listener and the signal pipe: a stop is seen at once, not at the next connection */
		struct pollfd pf[2] = { { .fd = lfd, .events = POLLIN }, { .fd = vm_daemon_signal_fd(), .events = POLLIN } };
		if (poll(pf, 2, -1) <= 0 || !(pf[0].revents & POLLIN)) {
			vm_daemon_signal_take();   /* serve has nothing to reload */
			continue;
		}
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct timeval tv = { .tv_sec = 10 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		SSL *ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		char req[2048];
		int n = SSL_accept(ssl) == 1 ? SSL_read(ssl, req, sizeof(req) - 1) : -1;
		if (n > 0) {
			req[n] = 0;
			char path[512] = "";
			if (sscanf(req, "GET %511s HTTP/1.", path) != 1) {
				reply(ssl, 400, "text/plain", "GET only\n", 9);
			} else if (!strcmp(path, "/v1/manifest")) {
				serve_scan(dir);
				reply(ssl, 200, "application/json", manifest, strlen(manifest));
			} else {
				int i = 0;
				if (!strncmp(path, "/v1/blobs/sha256:", 17)) {
					for (; i < npub && strcmp(path + 17, pub[i].hex); i++)
						;
					if (i == npub) { /* published since the last look? */
						serve_scan(dir);
						for (i = 0; i < npub && strcmp(path + 17, pub[i].hex); i++)
							;
					}
				} else {
					i = npub;
				}
				char fp[1024];
				FILE *f = NULL;
				if (i < npub) {
					snprintf(fp, sizeof(fp), "%s/%s", dir, pub[i].name);
					f = fopen(fp, "re");
				}
				if (!f) {
					reply(ssl, 404, "text/plain", "no such blob\n", 13);
				} else {
					char h[256], buf[65536];
					size_t r;
					int hl = snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
							 "Content-Length: %lld\r\nConnection: close\r\n\r\n", (long long)pub[i].size);
					SSL_write(ssl, h, hl);
					while ((r = fread(buf, 1, sizeof(buf), f)) > 0 && SSL_write(ssl, buf, (int)r) > 0)
						;
					fclose(f);
				}
			}
		}
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	free(manifest);
	SSL_CTX_free(ctx);
	close(lfd);
	vm_log("event=stopped signal=%d", (int)vm_stop_sig);
	return 0;
}

/* Runs argv (no shell), its output to /dev/null; its exit status, or -1. */
static int run(char *const argv[])
{
	return run_with_stdin(argv, (const uint8_t *)"", 0);
}

/* mke2fs -d DIR into PATH, leaving the last 32 MiB free: the offline
 * encryption shifts the data by half of that and puts the LUKS2 header in
 * front, so the data starts at 16 MiB as with luksFormat. */
static int make_fs(const char *dir, const char *disk, int mb)
{
	char size[32], dopt[1100];
	snprintf(size, sizeof(size), "%dM", mb - 32);
	snprintf(dopt, sizeof(dopt), "%s", dir);
	char *argv[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-E", "root_owner=0:0", "-L", "root", "-d", dopt,
			 (char *)disk, size, NULL };
	return run(argv) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' }, { "t", required_argument, NULL, 't' },
		{ "validators", required_argument, NULL, 'V' }, { "ca", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' }, { "ak-pub", required_argument, NULL, 'a' },
		{ "disk", required_argument, NULL, 'd' }, { "disk-mb", required_argument, NULL, 's' },
		{ "measure", required_argument, NULL, 'm' }, { "pcr", required_argument, NULL, 'p' },
		{ "pcr9-event", required_argument, NULL, 'P' }, { "epoch", required_argument, NULL, 'e' },
		{ "rootfs", required_argument, NULL, 'R' }, { "ek-cert", required_argument, NULL, 'E' },
		{ "ek-ca", required_argument, NULL, 'C' }, { "help", no_argument, NULL, 'h' }, { 0 }
	};
	static const char *names[] = VM_REF_NAMES;
	const char *vm = NULL, *vals = NULL, *ca = NULL, *keyf = NULL, *akf = NULL, *disk = NULL, *rootfs = NULL;
	const char *ekf = NULL, *ekcaf = NULL;
	const char *measure[VM_REF_COUNT] = { 0 };
	char pcrhex[24][65] = { { 0 } }, pcr9[VM_PCR9_MAX][65];
	int t = 0, mb = 32, o, npcr9 = 0;
	uint64_t epoch = (uint64_t)time(NULL);

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: veil-registry order --vm ID --t T --validators A:P,... --ca F --key F --ek-cert F [--ek-ca F]\n"
		       "                           [--ak-pub F] --disk PATH [--disk-mb N] --measure cmdline=PATH --measure initrd=PATH\n"
		       "                           [--pcr 0=HEX --pcr 7=HEX] [--pcr9-event HEX ...] [--epoch N] [--rootfs DIR]\n"
		       "       veil-registry refs --vm ID --kernel F --initrd F --cmdline S --key F --out F [--pcr N=HEX ...]\n"
		       "       veil-registry serve --dir DIR --listen ADDR:PORT --cert F --key F [--pidfile F]\n"
		       "       veil-registry worker --config FILE [--check] [--pidfile F]   (builds fed from the store)\n"
		       "       veil-registry serve|worker --help\n"
		       "Builds a VM's encrypted disk, its signed reference values and its key shares, registers them\n"
		       "with the validators, and serves images (veil-registry(8), docs/attestation.md).\n"
		       "Exit codes: 0 done, 1 failed, 2 usage.\n");
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "refs"))
		return refs_main(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return serve_main(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "worker")) /* fed from the store: controlplane/registry_worker.c */
		return registry_worker_main(argc, argv);
	if (argc < 2 || strcmp(argv[1], "order")) {
		fprintf(stderr, "usage: veil-registry order --vm ID --t T --validators A:P,... --ca F --key F --ek-cert F "
				"[--ek-ca F] [--ak-pub F] --disk PATH --measure cmdline=PATH --measure initrd=PATH [--pcr 0=HEX --pcr 7=HEX] "
				"[--pcr9-event HEX ...] [--epoch N] [--rootfs DIR]\n       veil-registry refs ...\n       veil-registry serve ... (see controlplane/veil-registry.c)\n");
		return 2;
	}
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'v': vm = optarg; break;
		case 't': t = atoi(optarg); break;
		case 'V': vals = optarg; break;
		case 'c': ca = optarg; break;
		case 'k': keyf = optarg; break;
		case 'a': akf = optarg; break;
		case 'E': ekf = optarg; break;
		case 'C': ekcaf = optarg; break;
		case 'd': disk = optarg; break;
		case 's': mb = atoi(optarg); break;
		case 'R': rootfs = optarg; break;
		case 'm': {
			const char *eq = strchr(optarg, '=');
			int done = 0;
			for (int i = 0; eq && i < VM_REF_COUNT; i++)
				if (strlen(names[i]) == (size_t)(eq - optarg) && !strncmp(optarg, names[i], eq - optarg)) {
					measure[i] = eq + 1;
					done = 1;
				}
			if (!done)
				return fprintf(stderr, "veil-registry: --measure takes cmdline=, initrd=, kernel= or config=PATH\n"), 2;
			break;
		}
		case 'p': {
			int n = atoi(optarg);
			const char *eq = strchr(optarg, '=');
			uint8_t d[32];
			if (!eq || n < 0 || n > 23 || n == VM_MEASURE_PCR || vm_unhex(eq + 1, d, 32))
				return fprintf(stderr, "veil-registry: --pcr takes N=64 hex digits (N 0 or 7)\n"), 2;
			snprintf(pcrhex[n], 65, "%s", eq + 1);
			break;
		}
		case 'P': {
			uint8_t d[32];
			if (npcr9 >= VM_PCR9_MAX || vm_unhex(optarg, d, 32))
				return fprintf(stderr, "veil-registry: --pcr9-event takes 64 hex digits (at most %d)\n",
					       VM_PCR9_MAX), 2;
			snprintf(pcr9[npcr9++], 65, "%s", optarg);
			break;
		}
		case 'e': {
			char *end;
			epoch = strtoull(optarg, &end, 10);
			if (*end || !epoch || epoch > (1ull << 62))
				return fprintf(stderr, "veil-registry: --epoch takes a positive integer\n"), 2;
			break;
		}
		default:
			return 2;
		}
	}
	if (!npcr9 && (!measure[1] || !measure[2]))
		return fprintf(stderr, "veil-registry: --measure cmdline=PATH and --measure initrd=PATH (or --pcr9-event) "
				       "are required\n"), 2;
	if (!vm || !vals || !ca || !keyf || !ekf || !disk || mb < 16)
		return fprintf(stderr, "veil-registry: --vm, --t, --validators, --ca, --key, --ek-cert and --disk are required\n"), 2;
	if (rootfs && mb < 64)
		return fprintf(stderr, "veil-registry: --rootfs needs --disk-mb 64 or more\n"), 2;
	if (t < 2)
		return fprintf(stderr, "veil-registry: t = %d: at least 2 (one holder alone must never suffice)\n", t), 2;

	char vcopy[1024], *save, *addrs[32];
	int n = 0;
	snprintf(vcopy, sizeof(vcopy), "%s", vals);
	for (char *s = strtok_r(vcopy, ",", &save); s && n < 32; s = strtok_r(NULL, ",", &save))
		addrs[n++] = s;
	if (t > n)
		return fprintf(stderr, "veil-registry: t = %d but only %d validators\n", t, n), 2;
	EVP_PKEY *reg = vm_load_priv(keyf);
	if (!reg)
		return fprintf(stderr, "veil-registry: cannot read %s\n", keyf), 1;
	/* the VM's TPM, as the node reported it at launch: its EK (certificate) */
	uint8_t ekid[32];
	{
		FILE *ef = fopen(ekf, "re");
		X509 *x = ef ? PEM_read_X509(ef, NULL, NULL, NULL) : NULL;
		uint8_t der[VM_EK_CERT_MAX], *dp = der;
		int dl = -1;
		if (!x && ef) {
			rewind(ef);
			dl = (int)fread(der, 1, sizeof(der), ef);
			const uint8_t *cp = der;
			x = dl > 0 ? d2i_X509(NULL, &cp, dl) : NULL;
		} else if (x) {
			dl = i2d_X509(x, NULL) <= (int)sizeof(der) ? i2d_X509(x, &dp) : -1;
		}
		if (ef)
			fclose(ef);
		if (!x || dl <= 0 || vm_ek_id(X509_get0_pubkey(x), ekid))
			return fprintf(stderr, "veil-registry: %s: not an EK certificate (DER or PEM)\n", ekf), 1;
		X509_free(x);
		if (ekcaf) {   /* record only an EK the vendor certified */
			char why[256];
			struct vm_ek_ca *vc = vm_ek_ca_load(ekcaf, why, sizeof(why));
			if (!vc || vm_ek_verify(vc, der, dl, NULL, ekid, why, sizeof(why)))
				return fprintf(stderr, "veil-registry: %s: %s\n", ekf, why), 1;
			vm_ek_ca_free(vc);
		}
	}
	char akpem[1000] = "";
	if (akf) {   /* optional: an AK recorded beside the EK */
		FILE *af = fopen(akf, "re");
		size_t al = af ? fread(akpem, 1, sizeof(akpem) - 1, af) : 0;
		if (af)
			fclose(af);
		akpem[al] = 0;
		BIO *b = al ? BIO_new_mem_buf(akpem, -1) : NULL;
		EVP_PKEY *akk = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		if (!akk)
			return fprintf(stderr, "veil-registry: %s: not a PEM public key\n", akf), 1;
		EVP_PKEY_free(akk);
	}

	/* reference values: the EFI stub's PCR 9 events, computed offline */
	if (!npcr9) {
		uint8_t h[32];
		char cmdline[4096];
		FILE *cf = fopen(measure[2], "re");
		size_t cl = cf ? fread(cmdline, 1, sizeof(cmdline), cf) : 0;
		if (cf)
			fclose(cf);
		if (!cf || cl == sizeof(cmdline))
			return fprintf(stderr, "veil-registry: cannot read %s (or longer than 4 KiB)\n", measure[2]), 1;
		vm_cmdline_digest(cmdline, cl, h);
		vm_hex(h, 32, pcr9[npcr9++]);
		if (vm_sha256_file(measure[1], 0, h))
			return fprintf(stderr, "veil-registry: cannot read %s\n", measure[1]), 1;
		vm_hex(h, 32, pcr9[npcr9++]);
	}
	static const char zero[] = "0000000000000000000000000000000000000000000000000000000000000000";
	const char *pcr0 = pcrhex[0][0] ? pcrhex[0] : zero, *pcr7 = pcrhex[7][0] ? pcrhex[7] : zero;

	/* the key, the container */
	uint8_t key[32];
	if (RAND_priv_bytes(key, sizeof(key)) != 1)
		return fprintf(stderr, "veil-registry: no randomness\n"), 1;
	FILE *df = fopen(disk, "we");
	if (!df || ftruncate(fileno(df), (off_t)mb << 20)) {
		OPENSSL_cleanse(key, sizeof(key));
		return fprintf(stderr, "veil-registry: %s: %s\n", disk, strerror(errno)), 1;
	}
	fclose(df);
	if (rootfs && make_fs(rootfs, disk, mb)) {
		OPENSSL_cleanse(key, sizeof(key));
		unlink(disk);
		return fprintf(stderr, "veil-registry: mke2fs -d %s failed\n", rootfs), 1;
	}
	/* an empty container (fast PBKDF: tests) or the root filesystem encrypted
	 * in place, offline, with the PBKDF pinned (argon2id 64 MiB x 4) */
	char *fmt_argv[] = { "cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
			     "--pbkdf-force-iterations", "1000", "--key-file", "-", (char *)disk, NULL };
	char *enc_argv[] = { "cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--batch-mode",
			     "--reduce-device-size", "32M", "--pbkdf", "argon2id", "--pbkdf-memory", "65536",
			     "--pbkdf-force-iterations", "4", "--key-file", "-", (char *)disk, NULL };
	if (run_with_stdin(rootfs ? enc_argv : fmt_argv, key, sizeof(key)) != 0) {
		OPENSSL_cleanse(key, sizeof(key));
		unlink(disk);
		return fprintf(stderr, "veil-registry: cryptsetup %s failed on %s\n", rootfs ? "reencrypt" : "luksFormat",
			       disk), 1;
	}

	/* the commitment the client checks the rebuilt key against; the signed document */
	uint8_t commit[32];
	char refs_sig[128];
	vm_key_commit(vm, epoch, key, sizeof(key), commit);
	char *refs = make_refs(vm, epoch, t, n, pcr0, pcr7, pcr9, npcr9, commit, ekid, akpem);
	if (!refs || sign_b64(reg, refs, refs_sig, sizeof(refs_sig))) {
		OPENSSL_cleanse(key, sizeof(key));
		return fprintf(stderr, "veil-registry: cannot sign the reference values\n"), 1;
	}

	/* shares, one a validator */
	struct vm_share sh[32];
	if (vm_shamir_split(key, sizeof(key), t, n, rnd, sh)) {
		OPENSSL_cleanse(key, sizeof(key));
		return fprintf(stderr, "veil-registry: split failed\n"), 1;
	}
	OPENSSL_cleanse(key, sizeof(key));
	int failed = 0;
	for (int i = 0; i < n; i++) {
		uint8_t wire[VM_SHARE_MAX];
		char w64[VM_SHARE_MAX * 2], s64[128], body[16384], hdr[200], resp[4096], why[256], host[64];
		snprintf(sh[i].vmid, sizeof(sh[i].vmid), "%s", vm);
		sh[i].vmid_len = strlen(vm);
		int wl = vm_share_sign(&sh[i], reg) ? -1 : vm_share_encode(&sh[i], wire, sizeof(wire));
		vm_share_wipe(&sh[i]);
		if (wl < 0) {
			failed = 1;
			break;
		}
		vm_b64_encode(wire, wl, w64, sizeof(w64));
		OPENSSL_cleanse(wire, sizeof(wire));
		json_object *jo = json_object_new_object();
		json_object_object_add(jo, "vm", json_object_new_string(vm));
		json_object_object_add(jo, "refs", json_object_new_string(refs));
		json_object_object_add(jo, "refs_sig", json_object_new_string(refs_sig));
		json_object_object_add(jo, "share", json_object_new_string(w64));
		snprintf(body, sizeof(body), "%s", json_object_to_json_string_ext(jo, JSON_C_TO_STRING_PLAIN));
		json_object_put(jo);
		OPENSSL_cleanse(w64, sizeof(w64));
		int sok = !sign_b64(reg, body, s64, sizeof(s64));
		snprintf(hdr, sizeof(hdr), "X-Veil-Signature: %s\r\n", s64);
		const char *c = strrchr(addrs[i], ':');
		snprintf(host, sizeof(host), "%.*s", (int)(c ? c - addrs[i] : 0), addrs[i]);
		int st = sok && c ? vm_https_post(host, atoi(c + 1), ca, "/v1/register", body, hdr, resp, sizeof(resp), why,
						  sizeof(why)) : -1;
		OPENSSL_cleanse(body, sizeof(body));
		if (st != 200) {
			fprintf(stderr, "veil-registry: %s: registration failed: %s\n", addrs[i], st < 0 ? why : resp);
			failed = 1;
		}
	}
	for (int i = 0; i < n; i++)
		vm_share_wipe(&sh[i]);
	free(refs);
	if (failed)
		return fprintf(stderr, "veil-registry: order %s incomplete: re-run it (a new key and epoch replace the old "
				       "registrations)\n", vm), 1;
	printf("order %s: %s %s (LUKS2), key split %d of %d (epoch %llu), registered with every validator; key "
	       "wiped\n", vm, disk, rootfs ? "holds the root filesystem, encrypted offline" : "formatted", t, n, (unsigned long long)epoch);
	return 0;
}
