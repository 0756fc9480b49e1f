/* The cluster store library against a real nats-server (JetStream on a
 * private directory, loopback port below the ephemeral range). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <nats/nats.h>

#include "testlib.h"
#include "store/store.h"

extern char **environ;

static char dir[64], url[64];
static int port;
static pid_t srv = -1;
static vs_store *S;

static int server_start(void)
{
	char p[16], sd[96];
	snprintf(p, sizeof(p), "%d", port);
	snprintf(sd, sizeof(sd), "%s/js", dir);
	char *argv[] = {"nats-server", "-js", "-sd", sd, "-a", "127.0.0.1", "-p", p, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int rc = posix_spawnp(&srv, "nats-server", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		return -1;
	/* until it accepts JetStream requests: ours, still running (a server
	 * of another run on the port would answer too, while ours exits) */
	for (int i = 0; i < 100; i++) {
		vs_store *s;
		if (waitpid(srv, NULL, WNOHANG) == srv) {
			srv = -1;
			return -2;
		}
		struct vs_opts o = {.urls = url, .timeout_ms = 500};
		if (vs_connect(&s, &o, NULL, 0) == VS_OK) {
			vs_kv *kv;
			int ok = vs_bucket(s, "probe", 1, &kv, NULL, 0) == VS_OK;
			if (ok)
				vs_kv_close(kv);
			vs_close(s);
			if (ok && waitpid(srv, NULL, WNOHANG) == 0)
				return 0;
		}
		usleep(100 * 1000);
	}
	return -1;
}

/* 1 when something listens on 127.0.0.1:p already (another run's server) */
static int port_taken(int p)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), taken;
	if (fd < 0)
		return 0;
	taken = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return taken;
}

static void server_stop(void)
{
	if (srv > 0) {
		kill(srv, SIGTERM);
		waitpid(srv, NULL, 0);
		srv = -1;
	}
}

static void cleanup(void)
{
	server_stop();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {}
}

static void crud_and_cas(void)
{
	vs_kv *kv;
	char err[256] = "", *v = NULL;
	size_t n;
	uint64_t r1 = 0, r2 = 0, r3 = 0, rv = 0;

	CHECK(vs_bucket(S, "orders", 1, &kv, err, sizeof(err)) == VS_OK, "bucket: %s", err);
	if (t_failed_here)
		return;
	CHECK(vs_get(kv, "o1", &v, &n, &rv) == VS_NOTFOUND, "absent key found");
	CHECK(vs_create(kv, "o1", "{\"s\":1}", 7, &r1) == VS_OK && r1 > 0, "create");
	CHECK(vs_create(kv, "o1", "{\"s\":9}", 7, NULL) == VS_EXISTS, "second create not refused");
	CHECK(vs_get(kv, "o1", &v, &n, &rv) == VS_OK && n == 7 && !strcmp(v, "{\"s\":1}") && rv == r1, "get");
	free(v);
	CHECK(vs_update(kv, "o1", "{\"s\":2}", 7, r1, &r2) == VS_OK && r2 > r1, "update at its revision");
	CHECK(vs_update(kv, "o1", "{\"s\":3}", 7, r1, &r3) == VS_CONFLICT, "stale update not refused");
	CHECK(vs_get(kv, "o1", &v, &n, &rv) == VS_OK && !strcmp(v, "{\"s\":2}") && rv == r2,
	      "stale write changed the record: %s", v ? v : "(null)");
	free(v);
	CHECK(vs_delete(kv, "o1") == VS_OK, "delete");
	CHECK(vs_get(kv, "o1", &v, &n, &rv) == VS_NOTFOUND, "deleted key still read");
	CHECK(vs_create(kv, "o1", "{\"s\":4}", 7, NULL) == VS_OK, "create after delete");
	char **keys;
	int nk;
	CHECK(vs_put(kv, "n1.__", "{}", 2, NULL) == VS_OK, "marker");
	CHECK(vs_keys(kv, &keys, &nk) == VS_OK && nk == 1 && !strcmp(keys[0], "o1"), "keys (marker left out): %d", nk);
	if (nk >= 0)
		vs_free_keys(keys, nk);
	vs_kv_close(kv);
}

struct seen {
	pthread_mutex_t lock;
	int puts, dels, synced, puts_at_sync;
	uint64_t last_rev;
	int order_ok;
	char last_key[64], last_val[64];
};

static void on_entry(void *arg, const struct vs_entry *e)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->lock);
	if (e->rev <= s->last_rev)
		s->order_ok = 0;
	s->last_rev = e->rev;
	if (e->op == VS_OP_PUT)
		s->puts++;
	else
		s->dels++;
	snprintf(s->last_key, sizeof(s->last_key), "%s", e->key);
	snprintf(s->last_val, sizeof(s->last_val), "%s", e->val ? e->val : "");
	pthread_mutex_unlock(&s->lock);
}

static void on_synced(void *arg)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->lock);
	s->synced = 1;
	s->puts_at_sync = s->puts;
	pthread_mutex_unlock(&s->lock);
}

static int wait_for(struct seen *s, int puts, int dels)
{
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&s->lock);
		int ok = s->puts >= puts && s->dels >= dels;
		pthread_mutex_unlock(&s->lock);
		if (ok)
			return 1;
		usleep(25 * 1000);
	}
	return 0;
}

static void snapshot_then_watch(void)
{
	vs_kv *kv;
	vs_watcher *w = NULL;
	char err[256] = "", k[16];
	struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER, .order_ok = 1};

	CHECK(vs_bucket(S, "routes", 1, &kv, err, sizeof(err)) == VS_OK, "bucket: %s", err);
	if (t_failed_here)
		return;
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "r%d", i);
		vs_put(kv, k, "{\"a\":1}", 7, NULL);
	}
	CHECK(vs_watch(kv, NULL, on_entry, on_synced, &s, &w, err, sizeof(err)) == VS_OK, "watch: %s", err);
	CHECK(wait_for(&s, 50, 0), "snapshot: %d of 50", s.puts);
	usleep(100 * 1000);
	pthread_mutex_lock(&s.lock);
	CHECK(s.synced && s.puts_at_sync == 50, "synced after the snapshot: synced=%d at %d", s.synced, s.puts_at_sync);
	pthread_mutex_unlock(&s.lock);
	vs_put(kv, "r7", "{\"a\":2}", 7, NULL);
	vs_delete(kv, "r8");
	vs_put(kv, "x.__", "{}", 2, NULL);   /* markers are not delivered */
	CHECK(wait_for(&s, 51, 1), "changes: puts %d dels %d", s.puts, s.dels);
	usleep(100 * 1000);
	pthread_mutex_lock(&s.lock);
	CHECK(s.puts == 51 && s.dels == 1, "exactly the changes: puts %d dels %d", s.puts, s.dels);
	CHECK(s.order_ok, "revisions not increasing");
	pthread_mutex_unlock(&s.lock);
	vs_watch_stop(w);
	vs_kv_close(kv);
}

/* a filtered watch on a prefix with its marker, and a watcher that lives
 * through a server restart: it gets a new snapshot and what changed */
static void watch_survives_server_restart(void)
{
	vs_kv *kv;
	vs_watcher *w = NULL;
	char err[256] = "";
	struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER, .order_ok = 1};

	CHECK(vs_bucket(S, "vms", 1, &kv, err, sizeof(err)) == VS_OK, "bucket: %s", err);
	if (t_failed_here)
		return;
	vs_put(kv, "node1.__", "{}", 2, NULL);
	vs_put(kv, "node1.vm1", "{\"v\":1}", 7, NULL);
	vs_put(kv, "node2.vm9", "{\"v\":1}", 7, NULL);
	CHECK(vs_watch(kv, "node1.*", on_entry, on_synced, &s, &w, err, sizeof(err)) == VS_OK, "watch: %s", err);
	CHECK(wait_for(&s, 1, 0), "snapshot");
	server_stop();
	usleep(300 * 1000);
	CHECK(server_start() == 0, "restart");
	/* the store's connection reconnects; a write after it reaches the watcher */
	int ok = 0;
	for (int i = 0; i < 100 && !ok; i++) {
		ok = vs_put(kv, "node1.vm2", "{\"v\":2}", 7, NULL) == VS_OK;
		if (!ok)
			usleep(100 * 1000);
	}
	CHECK(ok, "put after restart");
	CHECK(wait_for(&s, 2, 0), "change after the restart not delivered (puts %d)", s.puts);
	pthread_mutex_lock(&s.lock);
	CHECK(strncmp(s.last_key, "node1.", 6) == 0, "filter leaked %s", s.last_key);
	pthread_mutex_unlock(&s.lock);
	vs_watch_stop(w);
	vs_kv_close(kv);
}

static EVP_PKEY *ed25519(void)
{
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	if (c && EVP_PKEY_keygen_init(c) == 1)
		EVP_PKEY_keygen(c, &k);
	EVP_PKEY_CTX_free(c);
	return k;
}

static void envelopes(void)
{
	EVP_PKEY *k = ed25519(), *other = ed25519();
	const char *body = "{\"name\":\"shop.example.test\",\"gen\":42,\"vm_id\":7}";
	char *env = NULL, *out = NULL;
	uint64_t gen = 0;

	CHECK(vs_seal(k, "routes", "shop.example.test", body, strlen(body), &env) == VS_OK, "seal");
	if (t_failed_here)
		return;
	CHECK(vs_open(k, "routes", "shop.example.test", env, strlen(env), &out, &gen) == VS_OK && out &&
	      !strcmp(out, body) && gen == 42, "open");
	free(out);
	CHECK(vs_open(other, "routes", "shop.example.test", env, strlen(env), &out, &gen) == VS_BADSIG, "another key");
	CHECK(vs_open(k, "routes", "bank.example.test", env, strlen(env), &out, &gen) == VS_BADSIG, "moved to another key");
	CHECK(vs_open(k, "dns", "shop.example.test", env, strlen(env), &out, &gen) == VS_BADSIG, "moved to another bucket");
	/* one character of the body changed */
	char *t = strdup(env), *b = strstr(t, "\"body\":\"") + 10;
	*b = *b == 'A' ? 'B' : 'A';
	CHECK(vs_open(k, "routes", "shop.example.test", t, strlen(t), &out, &gen) == VS_BADSIG, "tampered body");
	free(t);
	const char *junk[] = {"", "{", "[]", "{\"v\":1}", "{\"v\":1,\"kid\":\"00\",\"body\":\"e30=\",\"sig\":\"AA==\"}",
			      "{\"v\":2,\"kid\":1,\"body\":null,\"sig\":7}", "\xff\xfe"};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		CHECK(vs_open(k, "routes", "x", junk[i], strlen(junk[i]), &out, &gen) == VS_BADSIG, "junk %zu accepted", i);
	/* a body without gen is refused even when signed */
	char *e2 = NULL;
	vs_seal(k, "routes", "x", "{\"a\":1}", 7, &e2);
	CHECK(e2 && vs_open(k, "routes", "x", e2, strlen(e2), &out, &gen) == VS_BADSIG, "body without gen");
	free(e2);
	free(env);

	struct vs_gens *g = vs_gens_new();
	CHECK(vs_gen_check(g, "a", 5) == VS_OK, "first gen");
	CHECK(vs_gen_check(g, "a", 5) == VS_REPLAY, "same gen again");
	CHECK(vs_gen_check(g, "a", 4) == VS_REPLAY, "older gen");
	CHECK(vs_gen_check(g, "a", 6) == VS_OK, "newer gen");
	char kk[16];
	for (int i = 0; i < 5000; i++) {
		snprintf(kk, sizeof(kk), "k%d", i);
		if (vs_gen_check(g, kk, 1) != VS_OK)
			CHECK(0, "key %d", i);
	}
	for (int i = 0; i < 5000; i += 2) {
		snprintf(kk, sizeof(kk), "k%d", i);
		vs_gen_forget(g, kk);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(kk, sizeof(kk), "k%d", i);
		int rc = vs_gen_check(g, kk, 1);
		if (rc != (i % 2 ? VS_REPLAY : VS_OK))
			CHECK(0, "after forget, key %d: %d", i, rc);
	}
	vs_gens_free(g);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

/* gens kept in a file: a restarted consumer still refuses old envelopes */
static void gens_persisted(void)
{
	char dir[] = "/tmp/veil-gens-XXXXXX", path[128], err[256] = "", kk[16];
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/gens", dir);
	struct vs_gens *g = vs_gens_open(path, err, sizeof(err));
	CHECK(g != NULL, "open a new file: %s", err);
	if (!g)
		return;
	CHECK(vs_gen_check(g, "routes.a", 5) == VS_OK && vs_gen_check(g, "routes.a", 7) == VS_OK, "gens");
	for (int i = 0; i < 20000; i++) {   /* enough lines for a compaction */
		snprintf(kk, sizeof(kk), "k%d", i % 100);
		vs_gen_check(g, kk, (uint64_t)i + 1);
	}
	vs_gens_free(g);   /* "the consumer restarts" */
	g = vs_gens_open(path, err, sizeof(err));
	CHECK(g != NULL, "reopen: %s", err);
	if (!g)
		return;
	CHECK(vs_gen_check(g, "routes.a", 6) == VS_REPLAY, "an older gen after the restart is a replay");
	CHECK(vs_gen_check(g, "routes.a", 7) == VS_OK, "the snapshot's re-delivery of the last gen is taken once");
	CHECK(vs_gen_check(g, "routes.a", 7) == VS_REPLAY, "and only once");
	CHECK(vs_gen_check(g, "k99", 19999) == VS_REPLAY && vs_gen_check(g, "k99", 20001) == VS_OK, "compacted gens");
	CHECK(vs_gen_check(g, "routes.a", 8) == VS_OK, "a newer gen");
	CHECK(vs_gen_check(g, "routes.d", 3) == VS_OK, "a key");
	vs_gen_deleted(g, "routes.d");
	CHECK(vs_gen_check(g, "routes.d", 3) == VS_REPLAY, "a deleted key's last envelope put back");
	vs_gens_free(g);
	g = vs_gens_open(path, err, sizeof(err));
	CHECK(g && vs_gen_check(g, "routes.d", 3) == VS_REPLAY, "... and after a restart: not resurrected");
	CHECK(g && vs_gen_check(g, "routes.d", 4) == VS_OK, "a new put of the deleted key");
	vs_gens_free(g);
	FILE *f = fopen(path, "r");
	int lines = 0, c;
	while (f && (c = fgetc(f)) != EOF)
		lines += c == '\n';
	if (f)
		fclose(f);
	CHECK(lines > 0 && lines < 2000, "the file was compacted: %d lines", lines);
	f = fopen(path, "a");   /* a torn last line (a crash mid-write) is dropped */
	if (f) {
		fputs("12 routes.", f);
		fclose(f);
	}
	g = vs_gens_open(path, err, sizeof(err));
	CHECK(g && vs_gen_check(g, "routes.a", 7) == VS_REPLAY, "torn last line: %s", err);
	vs_gens_free(g);
	f = fopen(path, "w");
	if (f) {
		fputs("5 routes.a\nnot a line\n6 routes.b\n", f);
		fclose(f);
	}
	g = vs_gens_open(path, err, sizeof(err));
	CHECK(!g && strstr(err, ":2:"), "a malformed line is an error with its line: %s", err);
	vs_gens_free(g);
	unlink(path);
	rmdir(dir);
}

static void name_keys(void)
{
	char k[300], n[300];
	CHECK(vs_name_key("*.Apps.Example.TEST.", k, sizeof(k)) == 0 && !strcmp(k, "=.apps.example.test"), "%s", k);
	CHECK(vs_key_name(k, n, sizeof(n)) == 0 && !strcmp(n, "*.apps.example.test"), "%s", n);
	CHECK(vs_name_key("a..b", k, sizeof(k)) < 0, "empty label");
	CHECK(vs_name_key("a b", k, sizeof(k)) < 0, "space");
	CHECK(vs_name_key("a.*.b", k, sizeof(k)) < 0, "inner star");
	CHECK(vs_name_key("", k, sizeof(k)) < 0, "empty");
	CHECK(vs_name_key("abc", k, 3) < 0, "does not fit");
}

static void audit_dedup(void)
{
	CHECK(vs_audit(S, "order", "{\"order\":\"o1\",\"to\":\"scheduled\"}", "o1-1") == VS_OK, "audit");
	CHECK(vs_audit(S, "order", "{\"order\":\"o1\",\"to\":\"scheduled\"}", "o1-1") == VS_OK, "audit retry");
	CHECK(vs_audit(S, "order", "{\"order\":\"o1\",\"to\":\"building\"}", "o1-2") == VS_OK, "audit 2");
	/* count what the stream holds, with libnats directly */
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	if (natsConnection_ConnectTo(&nc, url) == NATS_OK && natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
	    js_GetStreamInfo(&si, js, "AUDIT", NULL, NULL) == NATS_OK)
		CHECK(si->State.Msgs == 2, "a retried publish stored twice: %llu messages", (unsigned long long)si->State.Msgs);
	else
		CHECK(0, "stream info");
	if (si)
		jsStreamInfo_Destroy(si);
	if (js)
		jsCtx_Destroy(js);
	if (nc)
		natsConnection_Destroy(nc);
}

static void unreachable_is_an_error(void)
{
	vs_store *s = NULL;
	char err[256] = "";
	struct vs_opts o = {.urls = "nats://127.0.0.1:1", .timeout_ms = 300};
	CHECK(vs_connect(&s, &o, err, sizeof(err)) == VS_ERR && s == NULL && strstr(err, "127.0.0.1:1"), "%s", err);
	struct vs_opts none = {0};
	CHECK(vs_connect(&s, &none, err, sizeof(err)) == VS_ERR, "no URL accepted");
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/veil-store-XXXXXX");
	if (!mkdtemp(dir)) {
		printf("FAIL setup: mkdtemp\n");
		return 1;
	}
	/* below the ephemeral range; the next port when another run holds it */
	int rc = -2;
	atexit(cleanup);
	for (int i = 0; i < 16 && rc == -2; i++) {
		port = 21000 + ((getpid() + i * 7) % 4000) * 2;
		snprintf(url, sizeof(url), "nats://127.0.0.1:%d", port);
		rc = port_taken(port) ? -2 : server_start();
	}
	if (rc < 0) {
		printf("FAIL setup: nats-server did not start on %d\n", port);
		return 1;
	}
	char err[256] = "";
	struct vs_opts o = {.urls = url, .name = "test_store"};
	if (vs_connect(&S, &o, err, sizeof(err)) != VS_OK) {
		printf("FAIL setup: %s\n", err);
		return 1;
	}
	RUN(crud_and_cas);
	RUN(snapshot_then_watch);
	RUN(envelopes);
	RUN(name_keys);
	RUN(gens_persisted);
	RUN(audit_dedup);
	RUN(unreachable_is_an_error);
	RUN(watch_survives_server_restart);
	vs_close(S);
	return t_done();
}
