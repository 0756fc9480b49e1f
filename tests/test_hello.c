// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the ClientHello parser (include/veil/hello.h): real hellos
 * from openssl and curl, synthetic ones shaped like browsers', and truncated
 * and hostile input. */
#include "testlib.h"
#include "veil/route.h"   /* and hello.h */

static const char *fixdir = "tests/fixtures";

static unsigned hash_checked, hash_wrong;

static int parse(const uint8_t *p, size_t n, struct vm_hello *h)
{
	static uint8_t buf[VM_HELLO_BUF];
	struct vm_hello_state st;
	int rc;

	/* Poison what lies past the input: a read of it would change results. */
	memset(buf, 0xA5, sizeof(buf));
	memcpy(buf, p, n > VM_HELLO_BUF ? VM_HELLO_BUF : n);
	memset(h, 0, sizeof(*h));
	rc = vm_hello_parse(buf, n, h, &st);
	/* The routes map's key, hashed word by word as the parser wrote the
	 * name, is the one the daemon files the route under. */
	if (rc == VM_HELLO_OK) {
		hash_checked++;
		if (h->name_hash != vm_name_hash(h->name, h->name_len))
			hash_wrong++;
	}
	return rc;
}

static uint8_t *fixture(const char *name, size_t *n)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", fixdir, name);
	return t_slurp(path, n);
}

/* ---------- tests ---------- */

static void real_openssl_hello(void)
{
	size_t n;
	uint8_t *p = fixture("hello-openssl.bin", &n);
	struct vm_hello h;
	CHECK(p, "fixture missing");
	if (!p) return;
	CHECK(parse(p, n, &h) == VM_HELLO_OK, "status");
	CHECK(!strcmp(h.name, "shop.example.test"), "name '%s' (uppercase must be folded)", h.name);
	CHECK(h.hello_len + 5 == n, "hello_len %u", h.hello_len);
	free(p);
}

static void real_curl_hellos(void)
{
	const char *files[] = { "hello-curl.bin", "hello-curl-h2.bin" };
	const char *names[] = { "www.veil.test", "h2.veil.test" };
	for (int i = 0; i < 2; i++) {
		size_t n;
		uint8_t *p = fixture(files[i], &n);
		struct vm_hello h;
		CHECK(p, "fixture %s missing", files[i]);
		if (!p) return;
		CHECK(parse(p, n, &h) == VM_HELLO_OK, "%s status", files[i]);
		CHECK(!strcmp(h.name, names[i]), "%s name '%s'", files[i], h.name);
		CHECK(h.flags & VM_HELLO_F_ALPN, "%s: curl sends ALPN", files[i]);
		free(p);
	}
}

static void real_tls12_hello(void)
{
	size_t n;
	uint8_t *p = fixture("hello-openssl-tls12.bin", &n);
	struct vm_hello h;
	if (!p) { CHECK(0, "fixture missing"); return; }
	CHECK(parse(p, n, &h) == VM_HELLO_OK && !strcmp(h.name, "a-b.c0.veil.test"), "name '%s'", h.name);
	free(p);
}

static void real_hello_without_sni(void)
{
	size_t n;
	uint8_t *p = fixture("hello-nosni.bin", &n);
	struct vm_hello h;
	if (!p) { CHECK(0, "fixture missing"); return; }
	CHECK(parse(p, n, &h) == VM_HELLO_NO_SNI, "status");
	free(p);
}

/* Every prefix of a real hello: never OK with a wrong name, never a crash;
 * PARTIAL until the name is in, then OK. */
static void every_prefix_of_real_hellos(void)
{
	const char *files[] = { "hello-openssl.bin", "hello-curl.bin", "hello-curl-h2.bin", "hello-openssl-tls12.bin" };
	for (int f = 0; f < 4; f++) {
		size_t n;
		uint8_t *p = fixture(files[f], &n);
		struct vm_hello full, h;
		if (!p) { CHECK(0, "fixture missing"); return; }
		parse(p, n, &full);
		int seen_ok = 0;
		for (size_t k = 0; k < n; k++) {
			int rc = parse(p, k, &h);
			CHECK(rc == VM_HELLO_OK || rc == VM_HELLO_PARTIAL, "%s prefix %zu: status %d", files[f], k, rc);
			if (rc == VM_HELLO_OK) {
				seen_ok = 1;
				CHECK(!strcmp(h.name, full.name), "%s prefix %zu: name '%s'", files[f], k, h.name);
				CHECK(h.flags & VM_HELLO_F_INCOMPLETE, "%s prefix %zu: must say incomplete", files[f], k);
			} else {
				CHECK(!seen_ok, "%s prefix %zu: PARTIAL after the name was found", files[f], k);
			}
		}
		free(p);
	}
}

/* Shaped like Chrome's: GREASE extensions, permuted order, a big post-quantum
 * key share, ECH, padding, and server_name last. */
static void browser_like_hello(void)
{
	struct hb h;
	uint8_t ks[1300] = { 0 }, pad[200] = { 0 }, grease[1] = { 0 }, ech[90] = { 0 }, alpn[] = { 0, 12, 2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
	struct vm_hello o;

	hb_begin(&h);
	hb_ext(&h, 0x0a0a, NULL, 0);           /* GREASE, empty */
	hb_ext(&h, 0x0033, ks, sizeof(ks));     /* key_share (X25519MLKEM768-sized) */
	hb_ext(&h, 0x0010, alpn, sizeof(alpn));
	hb_ext(&h, 0xfe0d, ech, sizeof(ech));   /* encrypted_client_hello */
	hb_ext(&h, 0x4a4a, grease, 1);
	hb_ext(&h, 0x0015, pad, sizeof(pad));   /* padding */
	hb_sni(&h, "Public.Example.TEST");
	size_t n = hb_end(&h);
	CHECK(n > 1600, "built %zu bytes", n);
	CHECK(parse(h.b, n, &o) == VM_HELLO_OK, "status");
	CHECK(!strcmp(o.name, "public.example.test"), "name '%s'", o.name);
	CHECK(o.flags & VM_HELLO_F_ECH, "ECH flag: the outer name is what routes");
	CHECK(o.flags & VM_HELLO_F_ALPN, "ALPN flag");
	/* The name lies past the first 1400 bytes: one segment is not enough. */
	CHECK(parse(h.b, 1400, &o) == VM_HELLO_PARTIAL, "first segment alone");
}

static void bad_names(void)
{
	const char *bad[] = { "a..b", ".a", "a.", "a_b.test", "a b", "x\x01y", "",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test" /* 64-byte label */ };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hb h;
		struct vm_hello o;
		hb_begin(&h);
		hb_sni(&h, bad[i]);
		size_t n = hb_end(&h);
		int rc = parse(h.b, n, &o);
		CHECK(rc == VM_HELLO_BAD_NAME || (bad[i][0] == 0 && rc == VM_HELLO_BAD_NAME), "'%s' gave %d", bad[i], rc);
	}
	/* 253 is the longest legal name */
	char name[260];
	memset(name, 'a', 253);
	for (int i = 63; i < 253; i += 64) name[i] = '.';
	name[253] = 0;
	struct hb h;
	struct vm_hello o;
	hb_begin(&h); hb_sni(&h, name);
	CHECK(parse(h.b, hb_end(&h), &o) == VM_HELLO_OK && o.name_len == 253, "253-byte name");
	name[253] = 'a'; name[254] = 0;
	hb_begin(&h); hb_sni(&h, name);
	CHECK(parse(h.b, hb_end(&h), &o) == VM_HELLO_BAD_NAME, "254-byte name");
}

static void hostile_structure(void)
{
	struct hb h;
	struct vm_hello o;
	size_t n;

	/* two server_name extensions */
	hb_begin(&h); hb_sni(&h, "a.test"); hb_sni(&h, "b.test"); n = hb_end(&h);
	CHECK(parse(h.b, n, &o) == VM_HELLO_MALFORMED, "duplicate SNI");
	/* an extension longer than the block */
	hb_begin(&h); hb_sni(&h, "a.test"); n = hb_end(&h);
	h.b[h.ext_start + 3] += 1;
	CHECK(parse(h.b, n, &o) == VM_HELLO_MALFORMED, "SNI longer than its extension");
	/* extensions length does not match the handshake */
	hb_begin(&h); hb_sni(&h, "a.test"); n = hb_end(&h);
	h.b[h.ext_start - 1] -= 1;
	CHECK(parse(h.b, n, &o) == VM_HELLO_MALFORMED, "extensions length");
	/* two host names in one list */
	{
		uint8_t two[] = { 0, 14, 0, 0, 4, 'a', '.', 'a', 'a', 0, 0, 4, 'b', '.', 'b', 'b' };
		hb_begin(&h); hb_ext(&h, 0, two, sizeof(two)); n = hb_end(&h);
		CHECK(parse(h.b, n, &o) == VM_HELLO_MALFORMED, "two names");
	}
	/* not TLS, not a hello, wrong version, huge record */
	uint8_t http[] = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
	CHECK(parse(http, sizeof(http) - 1, &o) == VM_HELLO_NOT_TLS, "HTTP");
	hb_begin(&h); hb_sni(&h, "a.test"); n = hb_end(&h);
	h.b[5] = 2;
	CHECK(parse(h.b, n, &o) == VM_HELLO_NOT_HELLO, "ServerHello type");
	h.b[5] = 1; h.b[1] = 2;
	CHECK(parse(h.b, n, &o) == VM_HELLO_NOT_TLS, "SSLv2-ish version");
	h.b[1] = 3; h.b[3] = 0xff; h.b[4] = 0xff;
	CHECK(parse(h.b, n, &o) == VM_HELLO_MALFORMED, "record over 16 KB");
	/* a session id longer than 32 */
	hb_begin(&h); hb_sni(&h, "a.test"); n = hb_end(&h);
	h.b[43] = 33;
	CHECK(parse(h.b, n, &o) == VM_HELLO_MALFORMED, "session id 33");
	/* more extensions than we walk: 200 empty ones, then the name */
	hb_begin(&h);
	for (int i = 0; i < 200; i++) hb_ext(&h, 0x1000 + i, NULL, 0);
	hb_sni(&h, "late.test");
	n = hb_end(&h);
	CHECK(parse(h.b, n, &o) == VM_HELLO_MALFORMED, "200 extensions");
	/* the walk's bound exactly: the name as the last of
	 * VM_HELLO_MAX_EXT - 1, VM_HELLO_MAX_EXT, or one over */
	for (int total = VM_HELLO_MAX_EXT - 1; total <= VM_HELLO_MAX_EXT + 1; total++) {
		hb_begin(&h);
		for (int i = 0; i < total - 1; i++) hb_ext(&h, 0x1000 + i, NULL, 0);
		hb_sni(&h, "late.test");
		n = hb_end(&h);
		int rc = parse(h.b, n, &o);
		CHECK(total <= VM_HELLO_MAX_EXT ? rc == VM_HELLO_OK && !strcmp(o.name, "late.test") : rc == VM_HELLO_MALFORMED,
		      "%d extensions: %d", total, rc);
	}
	/* a hello spanning two records */
	hb_begin(&h); hb_sni(&h, "a.test"); n = hb_end(&h);
	h.b[4] -= 10;
	CHECK(parse(h.b, n, &o) == VM_HELLO_PARTIAL && (o.flags & VM_HELLO_F_MULTIREC), "multi-record");
}

/* Random bytes and random mutations of real hellos: only the six statuses,
 * and a name only when it is valid. */
static void random_garbage(void)
{
	size_t n;
	uint8_t *p = fixture("hello-curl.bin", &n), buf[600];
	struct vm_hello o;
	unsigned seed = 12345;
	if (!p) { CHECK(0, "fixture missing"); return; }
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = n;
		memcpy(buf, p, n);
		int flips = 1 + rand_r(&seed) % 4;
		for (int f = 0; f < flips; f++)
			buf[rand_r(&seed) % n] = rand_r(&seed);
		if (iter & 1)
			len = rand_r(&seed) % (n + 1);
		int rc = parse(buf, len, &o);
		CHECK(rc >= 0 && rc < VM_HELLO__COUNT, "status %d", rc);
		if (rc == VM_HELLO_OK) {
			CHECK(o.name_len >= 1 && o.name_len <= 253 && strlen(o.name) == o.name_len, "name length");
			for (size_t i = 0; i < o.name_len; i++)
				CHECK((o.name[i] >= 'a' && o.name[i] <= 'z') || (o.name[i] >= '0' && o.name[i] <= '9') ||
				      o.name[i] == '-' || o.name[i] == '.', "name byte %02x", (uint8_t)o.name[i]);
		}
	}
	free(p);
}

static void wildcard_keys(void)
{
	struct vm_hello h = { 0 };
	char key[VM_NAME_MAX];
	__u64 kh = 0;

	strcpy(h.name, "shop.apps.veil.test");
	h.name_len = strlen(h.name);
	memset(key, 0, sizeof(key));
	CHECK(vm_wildcard_key(&h, key, &kh) && !strcmp(key, "*.apps.veil.test"), "key '%s'", key);
	memset(&h, 0, sizeof(h));
	strcpy(h.name, "localhost");
	h.name_len = strlen(h.name);
	memset(key, 0, sizeof(key));
	CHECK(!vm_wildcard_key(&h, key, &kh), "single label has no wildcard");

	/* Against the byte-by-byte definition: every first-dot position (so
	 * every shift of the words), names up to VM_DNS_NAME_MAX, the key's
	 * bytes past its end zero. */
	unsigned fails = 0, runs = 0;
	for (unsigned len = 1; len <= VM_DNS_NAME_MAX; len++) {
		for (unsigned dot = 0; dot < len; dot += (len > 40 ? 7 : 1)) {
			char want[VM_NAME_MAX];
			int wlen = 0;
			memset(&h, 0, sizeof(h));
			for (unsigned i = 0; i < len; i++)
				h.name[i] = 'a' + (i * 7 + len) % 26;
			if (dot)
				h.name[dot] = '.';
			for (unsigned i = dot + 2; dot && i + 1 < len; i += 5 + i % 11)
				h.name[i] = '.';   /* later dots stay in the key */
			h.name_len = len;
			memset(want, 0, sizeof(want));
			if (dot && dot < len) {
				want[0] = '*';
				memcpy(want + 1, h.name + dot, len - dot);
				wlen = 1 + (int)(len - dot);
			}
			memset(key, 0, sizeof(key));
			int got = vm_wildcard_key(&h, key, &kh);
			runs++;
			if (got != wlen || memcmp(key, want, sizeof(key)) || (got && kh != vm_name_hash(want, (__u32)got)))
				fails++;
		}
	}
	CHECK(fails == 0, "%u of %u names: wildcard key differs from the byte-wise one", fails, runs);
}

/* A route's name against names as the parser leaves them (NUL-padded
 * words): equal only to itself, not to itself with NUL bytes after it (the
 * parser does not judge a name before its lookup), nor to a prefix or a
 * longer name, at every length and across word boundaries. */
static void route_name_compare(void)
{
	struct vm_name_walk w;
	unsigned wrong = 0, runs = 0;

	for (unsigned len = 1; len < 40; len++) {
		char kept[VM_NAME_MAX] = { 0 };
		for (unsigned i = 0; i < len; i++)
			kept[i] = 'a' + (i * 5 + len) % 26;
		for (unsigned nlen = 1; nlen < 64; nlen++) {
			char name[VM_NAME_MAX] = { 0 };
			memcpy(name, kept, nlen < len ? nlen : len);   /* the route's name, cut or NUL-padded */
			int want = nlen == len;
			runs++;
			if (vm_name_eq_in(&w, kept, name, nlen) != want)
				wrong++;
			if (nlen > len) {   /* longer: the route's name and then letters */
				for (unsigned i = len; i < nlen; i++)
					name[i] = 'q';
				runs++;
				if (vm_name_eq_in(&w, kept, name, nlen))
					wrong++;
			}
		}
	}
	CHECK(wrong == 0, "%u of %u compares wrong", wrong, runs);
	char kept[VM_NAME_MAX] = "w", name[VM_NAME_MAX] = "w";
	CHECK(vm_name_eq_in(&w, kept, name, 1) && !vm_name_eq_in(&w, kept, name, 9) && !vm_name_eq_in(&w, kept, name, 0),
	      "\"w\" against \"w\" and 8 NULs, and the empty name");
}

/* Every name the tests above parsed: its hash made as the parser wrote it. */
static void name_hash_as_written(void)
{
	CHECK(hash_checked > 100 && hash_wrong == 0, "%u of %u parsed names hashed wrong", hash_wrong, hash_checked);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		fixdir = argv[1];
	RUN(real_openssl_hello);
	RUN(real_curl_hellos);
	RUN(real_tls12_hello);
	RUN(real_hello_without_sni);
	RUN(every_prefix_of_real_hellos);
	RUN(browser_like_hello);
	RUN(bad_names);
	RUN(hostile_structure);
	RUN(random_garbage);
	RUN(wildcard_keys);
	RUN(route_name_compare);
	RUN(name_hash_as_written);
	return t_done();
}
