// SPDX-License-Identifier: Apache-2.0
#include <string.h>
#include <openssl/crypto.h>

#include "shamir.h"

/* a * b in GF(2^8) mod 0x11b, in constant time: eight rounds whatever the
 * operands, masks instead of branches. */
uint8_t vm_gf_mul(uint8_t a, uint8_t b)
{
	uint8_t p = 0;

	for (int i = 0; i < 8; i++) {
		p ^= (uint8_t)(-(b & 1)) & a;
		uint8_t hi = (uint8_t)(-(a >> 7));
		a = (uint8_t)(a << 1) ^ (hi & 0x1b);
		b >>= 1;
	}
	return p;
}

/* a^254 = a^-1 (and 0 for 0): square-and-multiply with a fixed chain. */
uint8_t vm_gf_inv(uint8_t a)
{
	uint8_t r = 1, x = a;

	for (int i = 0; i < 8; i++) {
		/* exponent 254 = 0b11111110: multiply in for bits 1..7 */
		uint8_t m = (uint8_t)(-((254 >> i) & 1));
		uint8_t t = vm_gf_mul(r, x);
		r = (t & m) | (r & ~m);
		x = vm_gf_mul(x, x);
	}
	return r;
}

int vm_shamir_split(const uint8_t *secret, size_t len, unsigned t, unsigned n, vm_rand_fn rnd,
		    struct vm_share *shares)
{
	uint8_t coef[255];

	if (!secret || !shares || !rnd || len < 1 || len > VM_SECRET_MAX || t < 2 || t > n || n > 255)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		memset(&shares[i], 0, sizeof(shares[i]));   /* vmid and signature: the caller's */
		shares[i].t = t;
		shares[i].n = n;
		shares[i].x = i + 1;
		shares[i].len = len;
	}
	for (size_t b = 0; b < len; b++) {
		/* f(x) = secret + c1 x + ... + c(t-1) x^(t-1), each c uniform in 0..255 */
		if (t > 1 && rnd(coef, t - 1)) {
			OPENSSL_cleanse(coef, sizeof(coef));
			return -1;
		}
		for (unsigned i = 0; i < n; i++) {
			uint8_t x = i + 1, y = 0;
			/* Horner, highest coefficient first */
			for (unsigned k = t - 1; k >= 1; k--)
				y = vm_gf_mul(y ^ coef[k - 1], x);
			shares[i].y[b] = y ^ secret[b];
		}
	}
	OPENSSL_cleanse(coef, sizeof(coef));
	return 0;
}

int vm_shamir_combine(const struct vm_share *s, size_t k, uint8_t *secret)
{
	if (!s || k < 1 || k < s[0].t || s[0].len < 1 || s[0].len > VM_SECRET_MAX)
		return -1;
	size_t t = s[0].t, len = s[0].len;
	for (size_t i = 0; i < t; i++) {
		if (s[i].t != t || s[i].len != len || s[i].n != s[0].n || s[i].x == 0 ||
		    strcmp(s[i].vmid, s[0].vmid))
			return -1;
		for (size_t j = 0; j < i; j++)
			if (s[j].x == s[i].x)
				return -1;
	}
	/* Lagrange at 0: l_i = prod_{j != i} x_j / (x_j - x_i); minus is xor */
	uint8_t l[255];
	for (size_t i = 0; i < t; i++) {
		uint8_t num = 1, den = 1;
		for (size_t j = 0; j < t; j++) {
			if (j == i)
				continue;
			num = vm_gf_mul(num, s[j].x);
			den = vm_gf_mul(den, s[j].x ^ s[i].x);
		}
		l[i] = vm_gf_mul(num, vm_gf_inv(den));
	}
	for (size_t b = 0; b < len; b++) {
		uint8_t v = 0;
		for (size_t i = 0; i < t; i++)
			v ^= vm_gf_mul(l[i], s[i].y[b]);
		secret[b] = v;
	}
	return (int)len;
}

/* ---------- wire format ---------- */

static const uint8_t magic[4] = { 'V', 'M', 'S', 'H' };

int vm_share_signed_part(const struct vm_share *s, uint8_t *out, size_t cap)
{
	size_t need = 4 + 1 + 3 + 1 + s->vmid_len + 2 + s->len, o = 0;

	if (s->vmid_len > VM_VMID_MAX || s->len < 1 || s->len > VM_SECRET_MAX || need > cap)
		return -1;
	memcpy(out, magic, 4);
	o = 4;
	out[o++] = 1;           /* version */
	out[o++] = s->t;
	out[o++] = s->n;
	out[o++] = s->x;
	out[o++] = s->vmid_len;
	memcpy(out + o, s->vmid, s->vmid_len);
	o += s->vmid_len;
	out[o++] = s->len >> 8;
	out[o++] = s->len & 0xff;
	memcpy(out + o, s->y, s->len);
	return (int)(o + s->len);
}

int vm_share_encode(const struct vm_share *s, uint8_t *out, size_t cap)
{
	int n = vm_share_signed_part(s, out, cap);

	if (n < 0 || (size_t)n + VM_SHARE_SIGLEN > cap)
		return -1;
	memcpy(out + n, s->sig, VM_SHARE_SIGLEN);
	return n + VM_SHARE_SIGLEN;
}

int vm_share_decode(const uint8_t *in, size_t len, struct vm_share *s, const char **why)
{
	size_t o = 0;
	const char *dummy;

	if (!why)
		why = &dummy;
	memset(s, 0, sizeof(*s));
	if (len < 4 + 1 + 3 + 1 + 2 + 1 + VM_SHARE_SIGLEN) {
		*why = "share too short";
		return -1;
	}
	if (memcmp(in, magic, 4)) {
		*why = "not a veilmesh share";
		return -1;
	}
	o = 4;
	if (in[o++] != 1) {
		*why = "unknown share version";
		return -1;
	}
	s->t = in[o++];
	s->n = in[o++];
	s->x = in[o++];
	if (s->t < 2 || s->t > s->n || s->x < 1 || s->x > s->n) {
		*why = "threshold, count or index out of range";
		return -1;
	}
	s->vmid_len = in[o++];
	if (s->vmid_len < 1 || s->vmid_len > VM_VMID_MAX || o + s->vmid_len + 2 > len) {
		*why = "bad VM id length";
		return -1;
	}
	memcpy(s->vmid, in + o, s->vmid_len);
	s->vmid[s->vmid_len] = 0;
	for (size_t i = 0; i < s->vmid_len; i++) {
		char c = s->vmid[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_')) {
			*why = "bad character in the VM id";
			return -1;
		}
	}
	o += s->vmid_len;
	s->len = (in[o] << 8) | in[o + 1];
	o += 2;
	if (s->len < 1 || s->len > VM_SECRET_MAX) {
		*why = "bad secret length";
		return -1;
	}
	if (o + s->len + VM_SHARE_SIGLEN != len) {
		*why = "length does not match the share's fields";
		return -1;
	}
	memcpy(s->y, in + o, s->len);
	o += s->len;
	memcpy(s->sig, in + o, VM_SHARE_SIGLEN);
	return 0;
}

void vm_share_wipe(struct vm_share *s)
{
	OPENSSL_cleanse(s->y, sizeof(s->y));
}

/* ---------- the registry's signature (Ed25519) ---------- */
#include <openssl/evp.h>

int vm_share_sign(struct vm_share *s, EVP_PKEY *key)
{
	uint8_t msg[VM_SHARE_MAX];
	size_t siglen = VM_SHARE_SIGLEN;
	int n = vm_share_signed_part(s, msg, sizeof(msg)), ok = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (n > 0 && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	    EVP_DigestSign(ctx, s->sig, &siglen, msg, n) == 1 && siglen == VM_SHARE_SIGLEN)
		ok = 1;
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(msg, sizeof(msg));
	return ok ? 0 : -1;
}

int vm_share_verify(const struct vm_share *s, EVP_PKEY *pub)
{
	uint8_t msg[VM_SHARE_MAX];
	int n = vm_share_signed_part(s, msg, sizeof(msg)), ok = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (n > 0 && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, s->sig, VM_SHARE_SIGLEN, msg, n) == 1)
		ok = 1;
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(msg, sizeof(msg));
	return ok ? 0 : -1;
}
