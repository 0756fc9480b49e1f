/* The store's signed envelopes (controlplane/store): whatever a store holds
 * under a key, vs_open answers OK only for a body signed by the key, never
 * crashes or leaks.  The first input byte picks the bucket/key checked;
 * every 16th input is first sealed properly, so the accept path runs too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "store/store.h"

static EVP_PKEY *key;

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (!key) {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
		EVP_PKEY_keygen_init(c);
		EVP_PKEY_keygen(c, &key);
		EVP_PKEY_CTX_free(c);
	}
	if (n < 1)
		return 0;
	const char *keyname = d[0] & 1 ? "node1.vm1" : "=.apps.example.test";
	char *body = NULL, *env = NULL;
	uint64_t gen;
	if ((d[0] & 0xf0) == 0xf0) {   /* seal the rest, then open it */
		char *s = strndup((const char *)d + 1, n - 1);
		if (s && vs_seal(key, "routes", keyname, s, strlen(s), &env) == VS_OK) {
			if (vs_open(key, "routes", keyname, env, strlen(env), &body, &gen) == VS_OK && strcmp(body, s))
				abort();   /* accepted, but not what was signed */
		}
		free(s);
		free(env);
		free(body);
		return 0;
	}
	if (vs_open(key, "routes", keyname, (const char *)d + 1, n - 1, &body, &gen) == VS_OK)
		abort();   /* nothing we did not sign may verify */
	free(body);
	return 0;
}
