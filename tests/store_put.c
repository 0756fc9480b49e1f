// SPDX-License-Identifier: Apache-2.0
/*
 * store_put: what the shell tests use to write the cluster store the way the
 * controller does (docs/store.md), and to read back what the daemons wrote.
 *
 *   store_put URLS put  BUCKET KEY PRIVKEY BODY   sealed envelope (vs_seal), BODY "-" = stdin
 *   store_put URLS raw  BUCKET KEY VALUE          VALUE as it is (forged/unsigned entries)
 *   store_put URLS del  BUCKET KEY                KV delete
 *   store_put URLS get  BUCKET KEY                the stored value on stdout
 *   store_put URLS open BUCKET KEY PUBKEY         the verified body on stdout (exit 3: bad signature)
 *   store_put URLS keys BUCKET                    the keys, one a line
 *   store_put URLS marker BUCKET PREFIX           PREFIX.__ = {} (the marker-key rule)
 *
 * Buckets are created when missing.  Exit 0 ok, 1 store error, 2 usage, 3 not found or bad signature.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	size_t r;
	while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (n + 1 == cap) {
			char *nb = realloc(b, cap *= 2);
			if (!nb) {
				free(b);
				return NULL;
			}
			b = nb;
		}
	}
	if (b)
		b[n] = 0;
	*len = n;
	return b;
}

int main(int argc, char **argv)
{
	char err[512] = "";
	vs_store *s = NULL;
	vs_kv *kv = NULL;
	int rc;

	if (argc < 4) {
		fprintf(stderr, "usage: store_put URLS put|raw|del|get|open|keys|marker BUCKET [KEY ...] (see tests/store_put.c)\n");
		return 2;
	}
	const char *op = argv[2], *bucket = argv[3], *key = argc > 4 ? argv[4] : NULL;
	struct vs_opts o = { .urls = argv[1], .name = "store_put", .replicas = 1 };
	if ((rc = vs_connect(&s, &o, err, sizeof(err))) || (rc = vs_bucket(s, bucket, 1, &kv, err, sizeof(err)))) {
		fprintf(stderr, "store_put: %s\n", err);
		vs_close(s);
		return 1;
	}
	rc = VS_OK;
	int code = 0;
	if (!strcmp(op, "put") && argc == 7) {
		EVP_PKEY *k = vs_load_key(argv[5], 1, err, sizeof(err));
		size_t len;
		char *body = !strcmp(argv[6], "-") ? read_all(stdin, &len) : strdup(argv[6]), *env = NULL;
		len = body ? strlen(body) : 0;
		if (!k || !body || vs_seal(k, bucket, key, body, len, &env)) {
			fprintf(stderr, "store_put: cannot seal: %s\n", k ? "bad body" : err);
			code = 1;
		} else if ((rc = vs_put(kv, key, env, strlen(env), NULL))) {
			code = 1;
		}
		free(env);
		free(body);
		EVP_PKEY_free(k);
	} else if (!strcmp(op, "raw") && argc == 6) {
		if ((rc = vs_put(kv, key, argv[5], strlen(argv[5]), NULL)))
			code = 1;
	} else if (!strcmp(op, "del") && argc == 5) {
		if ((rc = vs_delete(kv, key)))
			code = rc == VS_NOTFOUND ? 3 : 1;
	} else if ((!strcmp(op, "get") && argc == 5) || (!strcmp(op, "open") && argc == 6)) {
		char *v = NULL, *body = NULL;
		size_t len;
		uint64_t rev, gen;
		if ((rc = vs_get(kv, key, &v, &len, &rev))) {
			code = rc == VS_NOTFOUND ? 3 : 1;
		} else if (op[0] == 'g') {
			printf("%s\n", v);
		} else {
			EVP_PKEY *k = vs_load_key(argv[5], 0, err, sizeof(err));
			if (!k || (rc = vs_open(k, bucket, key, v, len, &body, &gen))) {
				fprintf(stderr, "store_put: %s/%s: %s\n", bucket, key, k ? vs_strerror(rc) : err);
				code = 3;
				rc = VS_OK;
			} else {
				printf("%s\n", body);
			}
			EVP_PKEY_free(k);
		}
		free(v);
		free(body);
	} else if (!strcmp(op, "keys") && argc == 4) {
		char **keys;
		int n;
		if ((rc = vs_keys(kv, &keys, &n))) {
			code = 1;
		} else {
			for (int i = 0; i < n; i++)
				printf("%s\n", keys[i]);
			vs_free_keys(keys, n);
		}
	} else if (!strcmp(op, "marker") && argc == 5) {
		char mk[512];
		snprintf(mk, sizeof(mk), "%s.__", key);
		if ((rc = vs_put(kv, mk, "{}", 2, NULL)))
			code = 1;
	} else {
		fprintf(stderr, "store_put: bad arguments for '%s'\n", op);
		code = 2;
	}
	if (rc && code == 1)
		fprintf(stderr, "store_put: %s %s/%s: %s\n", op, bucket, key ? key : "", vs_strerror(rc));
	vs_kv_close(kv);
	vs_close(s);
	return code;
}
