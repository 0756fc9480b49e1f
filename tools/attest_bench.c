// SPDX-License-Identifier: Apache-2.0
/*
 * veil-attest-bench: full protocol-v2 attestations against one veil-validator
 * (challenge, quote over sha256(nonce || ephemeral key), event log, AK,
 * verification, share boxed to the key and opened here), from a software TPM
 * (tests/soft_tpm.h), to measure the validator, not a TPM.
 *
 *   veil-attest-bench register --addr A:P --ca F --registry-key F --vm ID
 *   (both read the soft TPM's EK: bench-ek.key (RSA-2048 private key) and
 *   bench-ek.der (its certificate from the bench's "vendor" CA); the
 *   validator's ek_ca is that vendor)
 *   veil-attest-bench run --addr A:P --ca F --vm ID --mode new|resume|keepalive
 *                     [--clients N] [--slow N] [--seconds S] [--pid VALIDATOR_PID]
 *
 * run prints one JSON object: attestations/s, p50/p99 latency (ms) of the
 * whole attestation and of the part spent waiting on the validator's answers,
 * failures (attestations that failed on an open connection) by request and
 * cause with how long the connection had been idle, connect_failures (tries
 * to open a connection, TCP or TLS, that failed: a client tries again 10 ms
 * later, so one refusal that lasts counts many times) and
 * clients_never_connected, and with --pid the validator's CPU seconds, hence
 * attestations per CPU second (= per core).  --slow N opens N more
 * connections that send their request a byte every 200 ms for the whole run
 * (slowloris).
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "soft_tpm.h"
#include "keys/attest.h"
#include "keys/shamir.h"

static const char cmdline[] = "console=ttyS0 root=/dev/vda";
static const char initrd[] = "bench initrd\n";
static char host[64], vm[80] = "bench-vm";
static int nvms = 1;   /* clients spread over VMs bench-vm-0.. (a validator bounds open nonces per VM) */
static __thread char tvm[80];   /* "%.60s-%d" */
static int port, mode, seconds = 5;
static SSL_CTX *cctx;
static struct soft_ak ak;
static struct soft_log blog;
static EVP_PKEY *ekkey;                      /* the soft TPM's EK */
static uint8_t ekder[VM_EK_CERT_MAX], akname[34];
static int ekderlen;
static char ek64[2 * VM_EK_CERT_MAX];
static volatile int running = 1;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* ---------- a connection and one request on it ---------- */

struct conn {
	int fd;
	SSL *ssl;
	SSL_SESSION *sess;
	double t_idle;   /* when the connection last went idle (opened, or its last answer read) */
};

/* Why an attestation failed: the step, and how (below); each counted in
 * the run's JSON, so that a failure says whose it was. */
enum { F_CHALLENGE, F_ATTEST, F_STEPS };
enum {
	F_CLOSED,    /* the validator closed the connection (EOF, reset) before its answer */
	F_TIMEOUT,   /* no answer within the client's 10 s (SO_RCVTIMEO) */
	F_REFUSED,   /* an answer other than 200, or one that did not verify */
	F_LOCAL,     /* the client's own part (credential activation, quote) failed */
	F_HOWS
};
static const char *const step_name[F_STEPS] = { "challenge", "attest" };
static const char *const how_name[F_HOWS] = { "closed", "timeout", "refused", "local" };
static __thread int f_step, f_how;
static __thread double f_gap;   /* how long the connection had been idle when the failed request went out */
static __thread double t_wire;  /* this attestation's time waiting for the validator's answers */

static int conn_open(struct conn *c)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1;
	inet_pton(AF_INET, host, &a.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a))) {
		close(c->fd);
		return -1;
	}
	c->ssl = SSL_new(cctx);
	SSL_set_fd(c->ssl, c->fd);
	if (c->sess)
		SSL_set_session(c->ssl, c->sess);
	if (SSL_connect(c->ssl) != 1) {
		SSL_free(c->ssl);
		close(c->fd);
		return -1;
	}
	c->t_idle = now_s();
	return 0;
}

static void conn_close(struct conn *c)
{
	if (mode == 1) {   /* keep a ticket for the next connection */
		SSL_SESSION *s = SSL_get1_session(c->ssl);
		if (s) {
			SSL_SESSION_free(c->sess);
			c->sess = s;
		}
	}
	SSL_free(c->ssl);
	close(c->fd);
	c->ssl = NULL;
}

/* A read or write that failed: the validator's close, or the client's timeout. */
static int io_fail(struct conn *c, int n)
{
	int e = errno, se = SSL_get_error(c->ssl, n);
	f_how = se == SSL_ERROR_SYSCALL && (e == EAGAIN || e == EWOULDBLOCK) ? F_TIMEOUT : F_CLOSED;
	ERR_clear_error();   /* else the next failure's SSL_get_error reads this one's queue */
	return -1;
}

/* POST on an open connection (keep-alive); status, body in resp */
static int post(struct conn *c, const char *path, const char *body, char *resp, size_t cap)
{
	char head[256];
	int hl = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			  "Content-Length: %zu\r\n\r\n", path, host, strlen(body));
	size_t bl = strlen(body);
	char *req = malloc(hl + bl);
	memcpy(req, head, hl);
	memcpy(req + hl, body, bl);
	double t_sent = now_s();
	f_gap = t_sent - c->t_idle;
	errno = 0;
	int w = SSL_write(c->ssl, req, hl + bl);
	free(req);
	if (w != (int)(hl + bl))
		return io_fail(c, w);
	size_t got = 0;
	char *end = NULL;
	while (!end) {
		errno = 0;
		int n = SSL_read(c->ssl, resp + got, cap - 1 - got);
		if (n <= 0)
			return io_fail(c, n);
		got += n;
		resp[got] = 0;
		end = strstr(resp, "\r\n\r\n");
	}
	int status = 0;
	sscanf(resp, "HTTP/1.1 %d", &status);
	char *cl = strcasestr(resp, "\r\nContent-Length:");
	size_t want = (end - resp) + 4 + (cl ? strtoul(cl + 17, NULL, 10) : 0);
	while (got < want && got < cap - 1) {
		errno = 0;
		int n = SSL_read(c->ssl, resp + got, cap - 1 - got);
		if (n <= 0)
			return io_fail(c, n);
		got += n;
	}
	c->t_idle = now_s();
	t_wire += c->t_idle - t_sent;
	f_how = F_REFUSED;   /* an answer: the caller judges it */
	resp[got] = 0;
	memmove(resp, end + 4, got - (end + 4 - resp) + 1);
	return status;
}

/* ---------- one full attestation ---------- */

static char evlog64[16384], ak64[1024];

static int attest_once(struct conn *c)
{
	const char *vm = tvm[0] ? tvm : "bench-vm";
	char resp[16384], body[26000], nh[65], ph[65], a64[2048], s64[512];
	uint8_t nonce[32], pub[32], qd[32], box[512], out[512];
	size_t pl = 32;
	json_object *j, *x;

	uint8_t blob[512], sec[600], cred[64];
	int bl = -1, sl = -1;
	size_t cl = 0;
	snprintf(body, sizeof(body), "{\"vm\":\"%s\",\"ek_cert\":\"%s\",\"ak\":\"%s\"}", vm, ek64, ak64);
	f_step = F_CHALLENGE;
	if (post(c, "/v1/challenge", body, resp, sizeof(resp)) != 200 || !(j = json_tokener_parse(resp)))
		return -1;
	f_how = F_REFUSED;
	int ok = json_object_object_get_ex(j, "nonce", &x) && !vm_unhex(json_object_get_string(x), nonce, 32);
	if (ok && json_object_object_get_ex(j, "credential", &x))
		bl = vm_b64_decode(json_object_get_string(x), blob, sizeof(blob));
	if (ok && json_object_object_get_ex(j, "secret", &x))
		sl = vm_b64_decode(json_object_get_string(x), sec, sizeof(sec));
	json_object_put(j);
	if (!ok || bl < 0 || sl < 0)
		return -1;
	/* the TPM's part: activating the credential (here in software, on the client's CPU) */
	f_how = F_LOCAL;
	if (soft_activate(ekkey, akname, 34, blob, bl, sec, sl, cred, &cl) || cl != 32)
		return -1;
	char credhex[65];
	vm_hex(cred, 32, credhex);
	EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	EVP_PKEY_get_raw_public_key(eph, pub, &pl);
	vm_qualifying(nonce, pub, qd);
	struct soft_quote q;
	soft_quote_make(&ak, blog.pcr, VM_POLICY_MASK, qd, 32, NULL, &q);
	vm_b64_encode(q.attest, q.alen, a64, sizeof(a64));
	vm_b64_encode(q.sig, q.slen, s64, sizeof(s64));
	vm_hex(nonce, 32, nh);
	vm_hex(pub, 32, ph);
	snprintf(body, sizeof(body), "{\"vm\":\"%s\",\"nonce\":\"%s\",\"pub\":\"%s\",\"ak\":\"%s\",\"attest\":\"%s\","
		 "\"sig\":\"%s\",\"eventlog\":\"%s\",\"cred\":\"%s\"}", vm, nh, ph, ak64, a64, s64, evlog64, credhex);
	f_step = F_ATTEST;
	int st = post(c, "/v1/attest", body, resp, sizeof(resp));
	ok = 0;
	if (st == 200 && (j = json_tokener_parse(resp))) {
		json_object *e, *v;
		if (json_object_object_get_ex(j, "box", &x) && json_object_object_get_ex(j, "epoch", &e) &&
		    json_object_object_get_ex(j, "validator", &v)) {
			char aad[200];
			vm_share_aad(vm, json_object_get_int64(e), json_object_get_string(v), aad, sizeof(aad));
			int bl = vm_b64_decode(json_object_get_string(x), box, sizeof(box));
			ok = bl > 0 && vm_box_open(eph, nonce, aad, box, bl, out, sizeof(out)) > 0;
		}
		json_object_put(j);
	}
	EVP_PKEY_free(eph);
	return ok ? 0 : -1;
}

/* ---------- clients ---------- */

#define MAXLAT 2000000
static double *lat, *wire;   /* each attestation's whole time; the part of it spent waiting on the validator */
static long nlat, fails, conn_fails, never_connected;
static long fail_by[F_STEPS][F_HOWS];
#define MAXGAP 100000
static double *fgap;   /* each failure's f_gap */
static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;

static void *client(void *arg)
{
	struct conn c = { 0 };
	snprintf(tvm, sizeof(tvm), "%.60s-%d", vm, (int)((long)arg % nvms));
	int open = 0, connected = 0;
	while (running) {
		double t0 = now_s();
		if (!open && conn_open(&c)) {
			__atomic_add_fetch(&conn_fails, 1, __ATOMIC_RELAXED);
			usleep(10000);
			continue;
		}
		open = connected = 1;
		t_wire = 0;
		int rc = attest_once(&c);
		if (mode != 2 || rc) {
			conn_close(&c);
			open = 0;
		}
		double dt = now_s() - t0;
		pthread_mutex_lock(&lk);
		if (rc) {
			if (fails < MAXGAP)
				fgap[fails] = f_gap;
			fails++;
			fail_by[f_step][f_how]++;
		} else if (nlat < MAXLAT) {
			wire[nlat] = t_wire;
			lat[nlat++] = dt;
		}
		pthread_mutex_unlock(&lk);
	}
	if (open)
		conn_close(&c);
	if (!connected)
		__atomic_add_fetch(&never_connected, 1, __ATOMIC_RELAXED);
	SSL_SESSION_free(c.sess);
	return NULL;
}

static void *slow_client(void *arg)
{
	static const char req[] = "POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
				  "Content-Length: 20\r\n\r\n{\"vm\":\"bench-vm\"}   ";
	struct conn c = { 0 };
	while (running) {
		if (conn_open(&c)) {
			usleep(200000);
			continue;
		}
		for (size_t i = 0; running && i < sizeof(req) - 1; i++) {
			if (SSL_write(c.ssl, req + i, 1) != 1)
				break;
			usleep(200000);
		}
		conn_close(&c);
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double cpu_s(int pid)
{
	char p[64], buf[1024];
	unsigned long ut = 0, st = 0;
	snprintf(p, sizeof(p), "/proc/%d/stat", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	char *s = strrchr(buf, ')');
	if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---------- registration (as the image registry would) ---------- */

static int rnd(uint8_t *b, size_t n)
{
	return RAND_bytes(b, n) == 1 ? 0 : -1;
}

static int do_register(const char *ca, const char *regkey)
{
	EVP_PKEY *reg = vm_load_priv(regkey);
	if (!reg)
		return fprintf(stderr, "cannot read %s\n", regkey), 1;
	char p0[65], p7[65], c9[65], i9[65], cm[65], doc[4096], ekhex[65];
	uint8_t d[32], key[32], commit[32], ekid[32];
	vm_ek_id(ekkey, ekid);
	vm_hex(ekid, 32, ekhex);
	RAND_bytes(key, 32);
	vm_key_commit(vm, (uint64_t)time(NULL), key, 32, commit);
	vm_hex(blog.pcr[0], 32, p0);
	vm_hex(blog.pcr[7], 32, p7);
	vm_cmdline_digest(cmdline, strlen(cmdline), d);
	vm_hex(d, 32, c9);
	soft_sha256(initrd, strlen(initrd), d);
	vm_hex(d, 32, i9);
	vm_hex(commit, 32, cm);
	snprintf(doc, sizeof(doc), "{\"v\":2,\"vm\":\"%s\",\"epoch\":%ld,\"t\":2,\"n\":2,\"pcr0\":\"%s\",\"pcr7\":\"%s\","
		 "\"pcr9\":[\"%s\",\"%s\"],\"commit\":\"%s\",\"ek\":\"%s\"}", vm, (long)time(NULL), p0, p7, c9, i9, cm, ekhex);
	struct vm_share sh[2];
	uint8_t wire[VM_SHARE_MAX], sig[64];
	size_t sl = 64;
	vm_shamir_split(key, 32, 2, 2, rnd, sh);
	OPENSSL_cleanse(key, 32);
	snprintf(sh[0].vmid, sizeof(sh[0].vmid), "%.64s", vm);
	sh[0].vmid_len = strlen(vm);
	vm_share_sign(&sh[0], reg);
	int wl = vm_share_encode(&sh[0], wire, sizeof(wire));
	char w64[512], rs64[128], s64[128], body[8192], hdr[200], resp[4096], why[256];
	vm_b64_encode(wire, wl, w64, sizeof(w64));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestSignInit(md, NULL, NULL, NULL, reg);
	EVP_DigestSign(md, sig, &sl, (uint8_t *)doc, strlen(doc));
	EVP_MD_CTX_free(md);
	vm_b64_encode(sig, 64, rs64, sizeof(rs64));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "vm", json_object_new_string(vm));
	json_object_object_add(o, "refs", json_object_new_string(doc));
	json_object_object_add(o, "refs_sig", json_object_new_string(rs64));
	json_object_object_add(o, "share", json_object_new_string(w64));
	snprintf(body, sizeof(body), "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	md = EVP_MD_CTX_new();
	sl = 64;
	EVP_DigestSignInit(md, NULL, NULL, NULL, reg);
	EVP_DigestSign(md, sig, &sl, (uint8_t *)body, strlen(body));
	EVP_MD_CTX_free(md);
	vm_b64_encode(sig, 64, s64, sizeof(s64));
	snprintf(hdr, sizeof(hdr), "X-Veil-Signature: %s\r\n", s64);
	int st = vm_https_post(host, port, ca, "/v1/register", body, hdr, resp, sizeof(resp), why, sizeof(why));
	if (st != 200)
		return fprintf(stderr, "register: %d %s\n", st, st < 0 ? why : resp), 1;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' }, { "ca", required_argument, NULL, 'c' },
		{ "registry-key", required_argument, NULL, 'r' }, { "vm", required_argument, NULL, 'v' },
		{ "mode", required_argument, NULL, 'm' }, { "clients", required_argument, NULL, 'n' },
		{ "slow", required_argument, NULL, 's' }, { "seconds", required_argument, NULL, 'S' },
		{ "pid", required_argument, NULL, 'p' }, { "vms", required_argument, NULL, 'V' }, { 0 } };
	const char *addr = NULL, *ca = NULL, *regkey = NULL;
	int o, clients = 4, slow = 0, pid = 0;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return printf("usage: veil-attest-bench register --addr A:P --ca F --registry-key F --vm ID [--vms N]\n"
			      "       veil-attest-bench run --addr A:P --ca F --vm ID --mode new|resume|keepalive [--clients N]\n"
			      "                             [--slow N] [--seconds S] [--pid VALIDATOR_PID] [--vms N]\n"
			      "Full attestations against a validator from a software TPM; one JSON line of figures\n"
			      "(tools/bench_attest.sh runs it). Exit codes: 0 done, 1 failed, 2 usage.\n"), 0;
	if (argc < 2)
		return fprintf(stderr, "usage: veil-attest-bench register|run [options] (veil-attest-bench --help)\n"), 2;
	/* a connection the validator closed (idle or request deadline: the slow
	 * clients') is a failed attestation, counted, not the end of the run */
	signal(SIGPIPE, SIG_IGN);
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
		switch (o) {
		case 'a': addr = optarg; break;
		case 'c': ca = optarg; break;
		case 'r': regkey = optarg; break;
		case 'v': snprintf(vm, sizeof(vm), "%s", optarg); break;
		case 'm': mode = !strcmp(optarg, "new") ? 0 : !strcmp(optarg, "resume") ? 1 : !strcmp(optarg, "keepalive") ? 2 : -1; break;
		case 'n': clients = atoi(optarg); break;
		case 's': slow = atoi(optarg); break;
		case 'S': seconds = atoi(optarg); break;
		case 'p': pid = atoi(optarg); break;
		case 'V': nvms = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		default: return 2;
		}
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	if (!colon || !ca || mode < 0 || clients < 1)
		return fprintf(stderr, "veil-attest-bench: --addr A:P and --ca required; --mode new|resume|keepalive\n"), 2;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	port = atoi(colon + 1);
	soft_log_boot(&blog, cmdline, initrd, strlen(initrd), 1);
	{   /* the soft TPM's EK and its certificate */
		FILE *ef = fopen("bench-ek.key", "r");
		ekkey = ef ? PEM_read_PrivateKey(ef, NULL, NULL, NULL) : NULL;
		if (ef)
			fclose(ef);
		ef = fopen("bench-ek.der", "r");
		ekderlen = ef ? (int)fread(ekder, 1, sizeof(ekder), ef) : 0;
		if (ef)
			fclose(ef);
		if (!ekkey || ekderlen <= 0)
			return fprintf(stderr, "veil-attest-bench: bench-ek.key and bench-ek.der (the soft TPM's EK) needed\n"), 1;
		vm_b64_encode(ekder, ekderlen, ek64, sizeof(ek64));
	}
	FILE *f = fopen("bench-ak.pem", "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (!strcmp(argv[1], "register")) {
		if (!regkey)
			return 2;
		soft_ak_new(&ak, SOFT_AK_ATTRS);
		if (!k) {
			FILE *o = fopen("bench-ak.pem", "w");
			PEM_write_PrivateKey(o, ak.key, NULL, NULL, 0, NULL, NULL);
			fclose(o);
		} else {
			EVP_PKEY_free(ak.key);
			ak.key = k;
		}
		char base[60];
		snprintf(base, sizeof(base), "%.40s", vm);
		for (int i = 0; i < nvms; i++) {
			snprintf(vm, sizeof(vm), "%s-%d", base, i);
			if (do_register(ca, regkey))
				return 1;
		}
		return 0;
	}
	/* the AK registered before */
	if (!k)
		return fprintf(stderr, "veil-attest-bench: run 'register' first (bench-ak.pem)\n"), 1;
	soft_ak_new(&ak, SOFT_AK_ATTRS);
	EVP_PKEY_free(ak.key);
	{   /* rebuild the TPM2B_PUBLIC around the registered key */
		BIGNUM *x = NULL, *y = NULL;
		TPM2B_PUBLIC tp;
		size_t off = 0;
		memset(&tp, 0, sizeof(tp));
		Tss2_MU_TPM2B_PUBLIC_Unmarshal(ak.pub, ak.publen, &off, &tp);
		EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x);
		EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
		BN_bn2binpad(x, tp.publicArea.unique.ecc.x.buffer, 32);
		BN_bn2binpad(y, tp.publicArea.unique.ecc.y.buffer, 32);
		BN_free(x);
		BN_free(y);
		ak.publen = 0;
		Tss2_MU_TPM2B_PUBLIC_Marshal(&tp, ak.pub, sizeof(ak.pub), &ak.publen);
		uint8_t name[34] = { 0, 0x0b }, qb[38] = { 0x40, 0, 0, 0x0b };
		soft_sha256(ak.pub + 2, ak.publen - 2, name + 2);
		memcpy(qb + 4, name, 34);
		soft_sha256(qb, sizeof(qb), ak.qn + 2);
		ak.key = k;
	}
	vm_b64_encode(blog.buf, blog.len, evlog64, sizeof(evlog64));
	vm_b64_encode(ak.pub, ak.publen, ak64, sizeof(ak64));
	soft_ak_name(&ak, akname);
	{   /* one descriptor per connection: as many as we are allowed */
		struct rlimit rl;
		if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
	SSL_CTX_load_verify_locations(cctx, ca, NULL);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
	lat = malloc(sizeof(double) * MAXLAT);
	wire = malloc(sizeof(double) * MAXLAT);
	fgap = malloc(sizeof(double) * MAXGAP);
	if (!lat || !wire || !fgap)
		return fprintf(stderr, "veil-attest-bench: out of memory\n"), 1;
	pthread_t th[4096];
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 256 << 10);
	int nt = 0;
	for (int i = 0; i < slow && nt < 4096; i++)
		pthread_create(&th[nt++], &at, slow_client, NULL);
	if (slow)
		sleep(1);
	double c0 = pid ? cpu_s(pid) : 0, t0 = now_s();
	for (int i = 0; i < clients && nt < 4096; i++)
		pthread_create(&th[nt++], &at, client, (void *)(long)i);
	sleep(seconds);
	running = 0;
	double el = now_s() - t0, cpu = pid ? cpu_s(pid) - c0 : 0;
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	qsort(lat, nlat, sizeof(double), cmp);
	double p50 = nlat ? lat[nlat / 2] * 1e3 : 0, p99 = nlat ? lat[(long)(nlat * 0.99)] * 1e3 : 0;
	qsort(wire, nlat, sizeof(double), cmp);
	double w50 = nlat ? wire[nlat / 2] * 1e3 : 0, w99 = nlat ? wire[(long)(nlat * 0.99)] * 1e3 : 0;
	long ng = fails < MAXGAP ? fails : MAXGAP;
	qsort(fgap, ng, sizeof(double), cmp);
	char by[512] = "";
	size_t bo = 0;
	for (int i = 0; i < F_STEPS; i++)
		for (int h = 0; h < F_HOWS; h++)
			if (fail_by[i][h])
				bo += snprintf(by + bo, sizeof(by) - bo, "%s\"%s_%s\":%ld", bo ? "," : "", step_name[i],
					       how_name[h], fail_by[i][h]);
	printf("{\"mode\":\"%s\",\"clients\":%d,\"slow\":%d,\"seconds\":%.1f,\"attestations\":%ld,\"failures\":%ld,"
	       "\"failures_by\":{%s},\"failure_idle_s\":[%.2f,%.2f,%.2f],"
	       "\"connect_failures\":%ld,\"clients_never_connected\":%ld,"
	       "\"per_s\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"wait_p50_ms\":%.2f,\"wait_p99_ms\":%.2f,\"validator_cpu_s\":%.2f,\"per_cpu_s\":%.0f}\n",
	       mode == 0 ? "new" : mode == 1 ? "resume" : "keepalive", clients, slow, el, nlat, fails, by,
	       ng ? fgap[0] : 0, ng ? fgap[ng / 2] : 0, ng ? fgap[ng - 1] : 0, conn_fails,
	       never_connected, nlat / el, p50, p99, w50, w99, cpu, cpu > 0 ? nlat / cpu : 0);
	return 0;
}
