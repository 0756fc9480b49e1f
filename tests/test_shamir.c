// SPDX-License-Identifier: Apache-2.0
/* Shamir over GF(2^8): field known answers, split/combine known answers,
 * every subset of t rebuilds, t-1 shares tell nothing measurable, the share
 * format and its signature. */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "testlib.h"
#include "keys/shamir.h"

/* A table-based reference for the field (generator 0x03), independent of
 * the constant-time code under test. */
static uint8_t lg[256], ex[512];
static void ref_init(void)
{
	uint8_t x = 1;
	for (int i = 0; i < 255; i++) {
		ex[i] = ex[i + 255] = x;
		lg[x] = i;
		x = x ^ (uint8_t)((x << 1) ^ ((x & 0x80) ? 0x1b : 0));   /* x * 3 */
	}
}
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
	return a && b ? ex[lg[a] + lg[b]] : 0;
}

static void field_known_answers(void)
{
	ref_init();
	CHECK(vm_gf_mul(0x57, 0x83) == 0xc1, "FIPS-197 4.2: 57 . 83 = c1, got %02x", vm_gf_mul(0x57, 0x83));
	CHECK(vm_gf_mul(0x57, 0x13) == 0xfe, "FIPS-197 4.2.1: 57 . 13 = fe");
	CHECK(vm_gf_inv(0x53) == 0xca, "FIPS-197 5.1.1: 53^-1 = ca, got %02x", vm_gf_inv(0x53));
	CHECK(vm_gf_inv(0) == 0, "inv(0) = 0");
	int bad = 0;
	for (int a = 0; a < 256; a++) {
		if (a && vm_gf_mul(a, vm_gf_inv(a)) != 1)
			bad++;
		for (int b = 0; b < 256; b++)
			if (vm_gf_mul(a, b) != ref_mul(a, b))
				bad++;
	}
	CHECK(!bad, "%d products or inverses differ from the table reference", bad);
}

/* A fixed random stream for known answers. */
static uint8_t stream_next = 1;
static int fixed_rand(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = stream_next++ * 37;
	return 0;
}

static int real_rand(uint8_t *buf, size_t len)
{
	return RAND_priv_bytes(buf, len) == 1 ? 0 : -1;
}

static void split_known_answers(void)
{
	const uint8_t secret[4] = { 0xde, 0xad, 0xbe, 0xef };
	struct vm_share s[3];
	stream_next = 1;
	CHECK(vm_shamir_split(secret, 4, 2, 3, fixed_rand, s) == 0, "split");
	/* t = 2: f(x) = secret + c x, with c = 37, 74, 111, 148 for the four bytes */
	const uint8_t c[4] = { 37, 74, 111, 148 };
	for (int i = 0; i < 3; i++)
		for (int b = 0; b < 4; b++)
			CHECK(s[i].y[b] == (secret[b] ^ ref_mul(c[b], i + 1)), "share %d byte %d", i, b);
	uint8_t out[4];
	CHECK(vm_shamir_combine(s + 1, 2, out) == 4 && !memcmp(out, secret, 4), "shares 2 and 3 rebuild");
}

static int rebuild(struct vm_share *all, int t, const int *pick, const uint8_t *secret, int len)
{
	struct vm_share sub[255];
	uint8_t out[VM_SECRET_MAX];
	for (int i = 0; i < t; i++)
		sub[i] = all[pick[i]];
	return vm_shamir_combine(sub, t, out) == len && !memcmp(out, secret, len);
}

static void every_subset_rebuilds(void)
{
	uint8_t key[32];
	struct vm_share s[255];
	const int tn[][2] = { { 2, 3 }, { 3, 5 }, { 2, 2 }, { 4, 4 } };
	RAND_bytes(key, sizeof(key));
	for (size_t c = 0; c < sizeof(tn) / sizeof(tn[0]); c++) {
		int t = tn[c][0], n = tn[c][1], bad = 0, tried = 0;
		CHECK(vm_shamir_split(key, 32, t, n, real_rand, s) == 0, "split %d of %d", t, n);
		for (int mask = 0; mask < (1 << n); mask++) {
			if (__builtin_popcount(mask) != t)
				continue;
			int pick[255], k = 0;
			for (int i = 0; i < n; i++)
				if (mask & (1 << i))
					pick[k++] = i;
			tried++;
			bad += !rebuild(s, t, pick, key, 32);
		}
		CHECK(!bad, "%d of %d subsets of %d-of-%d failed", bad, tried, t, n);
	}
	/* big ones, random subsets in random order */
	const int big[][2] = { { 128, 255 }, { 255, 255 }, { 2, 255 }, { 17, 40 } };
	unsigned seed = 3;
	for (size_t c = 0; c < 4; c++) {
		int t = big[c][0], n = big[c][1], bad = 0;
		CHECK(vm_shamir_split(key, 32, t, n, real_rand, s) == 0, "split %d of %d", t, n);
		for (int round = 0; round < 20; round++) {
			int perm[255], pick[255];
			for (int i = 0; i < n; i++)
				perm[i] = i;
			for (int i = n - 1; i > 0; i--) {
				int j = rand_r(&seed) % (i + 1), tmp = perm[i];
				perm[i] = perm[j];
				perm[j] = tmp;
			}
			memcpy(pick, perm, sizeof(int) * t);
			bad += !rebuild(s, t, pick, key, 32);
		}
		CHECK(!bad, "%d-of-%d: %d random subsets failed", t, n, bad);
	}
}

/* With t - 1 shares every secret stays equally likely: for t = 2, one
 * share's bytes are uniform whatever the secret (chi-square, 255 d.o.f.). */
static void fewer_than_t_reveal_nothing(void)
{
	for (int sv = 0; sv < 2; sv++) {
		uint8_t secret[16];
		memset(secret, sv ? 0xff : 0x00, 16);
		long cnt[256] = { 0 };
		int N = 20000;
		struct vm_share s[3];
		for (int i = 0; i < N; i++) {
			vm_shamir_split(secret, 16, 2, 3, real_rand, s);
			for (int b = 0; b < 16; b++)
				cnt[s[0].y[b]]++;
		}
		double e = N * 16 / 256.0, chi = 0;
		for (int v = 0; v < 256; v++)
			chi += (cnt[v] - e) * (cnt[v] - e) / e;
		CHECK(chi < 340, "secret %02x: share bytes not uniform (chi2 %.1f, 99.9%% bound ~330)", secret[0], chi);
	}
	/* and t - 1 shares do not rebuild: combine refuses fewer than t */
	uint8_t key[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, out[8];
	struct vm_share s[5];
	vm_shamir_split(key, 8, 3, 5, real_rand, s);
	CHECK(vm_shamir_combine(s, 2, out) == -1, "two of a 3-of-5 must not combine");
}

static void bad_combinations_refused(void)
{
	uint8_t key[8] = { 9, 9, 9 }, out[8];
	struct vm_share s[5], d[3];
	vm_shamir_split(key, 8, 3, 5, real_rand, s);
	d[0] = s[0]; d[1] = s[1]; d[2] = s[1];
	CHECK(vm_shamir_combine(d, 3, out) == -1, "duplicate x refused");
	d[2] = s[2];
	strcpy(d[2].vmid, "other");
	CHECK(vm_shamir_combine(d, 3, out) == -1, "shares of another VM refused");
	CHECK(vm_shamir_split(key, 8, 4, 3, real_rand, s) == -1, "t > n refused");
	CHECK(vm_shamir_split(key, 8, 0, 3, real_rand, s) == -1, "t = 0 refused");
	CHECK(vm_shamir_split(key, 8, 1, 3, real_rand, s) == -1, "t = 1 refused (one holder alone must never suffice)");
	CHECK(vm_shamir_split(key, 0, 1, 3, real_rand, s) == -1, "empty secret refused");
}

static void share_format_and_signature(void)
{
	EVP_PKEY *reg = NULL, *other = NULL;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY_keygen_init(pc);
	EVP_PKEY_keygen(pc, &reg);
	EVP_PKEY_keygen(pc, &other);
	EVP_PKEY_CTX_free(pc);

	uint8_t key[32], wire[VM_SHARE_MAX];
	struct vm_share s[3], back;
	const char *why;
	RAND_bytes(key, 32);
	vm_shamir_split(key, 32, 2, 3, real_rand, s);
	strcpy(s[1].vmid, "order-42.vm1");
	s[1].vmid_len = strlen(s[1].vmid);
	CHECK(vm_share_sign(&s[1], reg) == 0, "sign");
	int n = vm_share_encode(&s[1], wire, sizeof(wire));
	CHECK(n == 4 + 1 + 3 + 1 + 12 + 2 + 32 + 64, "encoded length %d", n);
	CHECK(vm_share_decode(wire, n, &back, &why) == 0 && !memcmp(back.y, s[1].y, 32) && back.x == 2 &&
	      !strcmp(back.vmid, "order-42.vm1"), "round trip: %s", why);
	CHECK(vm_share_verify(&back, reg) == 0, "the registry's signature verifies");
	CHECK(vm_share_verify(&back, other) == -1, "another key's does not");
	back.y[7] ^= 1;
	CHECK(vm_share_verify(&back, reg) == -1, "a tampered share is identified");
	for (int cut = 0; cut < n; cut++)
		CHECK(vm_share_decode(wire, cut, &back, &why) == -1, "truncated at %d decoded", cut);
	wire[4] = 2;
	CHECK(vm_share_decode(wire, n, &back, &why) == -1 && strstr(why, "version"), "%s", why);
	EVP_PKEY_free(reg);
	EVP_PKEY_free(other);
}

int main(void)
{
	RUN(field_known_answers);
	RUN(split_known_answers);
	RUN(every_subset_rebuilds);
	RUN(fewer_than_t_reveal_nothing);
	RUN(bad_combinations_refused);
	RUN(share_format_and_signature);
	return t_done();
}
