// SPDX-License-Identifier: Apache-2.0
/*
 * veil-storectl: reads and writes the cluster store (docs/store.md) through
 * libveilstore, for operators and tests: plain puts, signed envelopes (seal
 * with a private key, then put), deletes, reads, key lists, and checking an
 * envelope with a public key.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: veil-storectl [options] COMMAND ...\n"
		"\n"
		"  put BUCKET KEY VALUE          put VALUE as it is (plain JSON records)\n"
		"  seal-put BUCKET KEY BODY      seal BODY (JSON with \"gen\") with --key, then put\n"
		"  create BUCKET KEY VALUE       put only if KEY is absent (exit 3 if it exists)\n"
		"  del BUCKET KEY                delete KEY\n"
		"  get BUCKET KEY                print the value (the revision on stderr with -v)\n"
		"  keys BUCKET                   list the keys, one a line\n"
		"  seal BUCKET KEY BODY          print the envelope (no store needed)\n"
		"  open BUCKET KEY ENVELOPE      check ENVELOPE with --pub, print its body (exit 4 if refused)\n"
		"  name-key NAME                 print the key a DNS name is stored under\n"
		"VALUE, BODY, ENVELOPE: '-' reads standard input.\n"
		"\n"
		"  -s, --server URLS   nats://HOST:PORT[,...] (default $VEIL_STORE or nats://127.0.0.1:4222)\n"
		"  -k, --key FILE      Ed25519 private key (PEM) for seal, seal-put\n"
		"  -p, --pub FILE      Ed25519 public key (PEM) for open\n"
		"      --creds FILE    NATS credentials\n"
		"  -r, --replicas N    replicas of a bucket this command creates (default 1)\n"
		"  -v, --verbose       print revisions\n"
		"  -h, --help          this text\n"
		"Exit codes: 0 ok, 1 store failure, 2 bad usage, 3 exists/not found/conflict, 4 envelope refused.\n");
}

static char *arg_value(const char *a, size_t *len)
{
	if (strcmp(a, "-")) {
		*len = strlen(a);
		return strdup(a);
	}
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	while (b) {
		size_t got = fread(b + n, 1, cap - n - 1, stdin);
		n += got;
		if (got == 0)
			break;
		if (n + 1 == cap) {
			char *nb = realloc(b, cap *= 2);
			if (!nb) {
				free(b);
				return NULL;
			}
			b = nb;
		}
	}
	if (b) {
		while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
			n--;
		b[n] = 0;
	}
	*len = n;
	return b;
}

static int code(int rc)
{
	return rc == VS_OK ? 0 : rc == VS_EXISTS || rc == VS_NOTFOUND || rc == VS_CONFLICT ? 3 :
	       rc == VS_BADSIG || rc == VS_REPLAY ? 4 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "key", required_argument, NULL, 'k' },
		{ "pub", required_argument, NULL, 'p' },
		{ "creds", required_argument, NULL, 'C' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *urls = getenv("VEIL_STORE"), *keyf = NULL, *pubf = NULL, *creds = NULL;
	int replicas = 1, verbose = 0, opt;
	char err[512];

	if (!urls || !urls[0])
		urls = "nats://127.0.0.1:4222";
	while ((opt = getopt_long(argc, argv, "s:k:p:r:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 's': urls = optarg; break;
		case 'k': keyf = optarg; break;
		case 'p': pubf = optarg; break;
		case 'C': creds = optarg; break;
		case 'r': replicas = atoi(optarg); break;
		case 'v': verbose = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind];
	char **a = argv + optind + 1;
	int na = argc - optind - 1;
#define NEED(n) do { if (na != (n)) { fprintf(stderr, "veil-storectl: %s takes %d arguments\n", cmd, (n)); return 2; } } while (0)

	if (!strcmp(cmd, "name-key")) {
		NEED(1);
		char k[512];
		if (vs_name_key(a[0], k, sizeof(k))) {
			fprintf(stderr, "veil-storectl: '%s' cannot be a key\n", a[0]);
			return 2;
		}
		puts(k);
		return 0;
	}
	if (!strcmp(cmd, "seal") || !strcmp(cmd, "open")) {
		NEED(3);
		int seal = cmd[0] == 's';
		if (!(seal ? keyf : pubf)) {
			fprintf(stderr, "veil-storectl: %s needs %s\n", cmd, seal ? "--key" : "--pub");
			return 2;
		}
		EVP_PKEY *k = vs_load_key(seal ? keyf : pubf, seal, err, sizeof(err));
		if (!k) {
			fprintf(stderr, "veil-storectl: %s\n", err);
			return 2;
		}
		size_t len;
		char *in = arg_value(a[2], &len), *out = NULL;
		uint64_t gen = 0;
		int rc = !in ? VS_ERR : seal ? vs_seal(k, a[0], a[1], in, len, &out) :
			 vs_open(k, a[0], a[1], in, len, &out, &gen);
		EVP_PKEY_free(k);
		free(in);
		if (rc != VS_OK) {
			fprintf(stderr, "veil-storectl: %s: %s\n", cmd, vs_strerror(rc));
			return code(rc);
		}
		puts(out);
		if (verbose && !seal)
			fprintf(stderr, "gen %llu\n", (unsigned long long)gen);
		free(out);
		return 0;
	}

	int write = !strcmp(cmd, "put") || !strcmp(cmd, "seal-put") || !strcmp(cmd, "create") || !strcmp(cmd, "del");
	if (!write && strcmp(cmd, "get") && strcmp(cmd, "keys")) {
		fprintf(stderr, "veil-storectl: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "keys"))
		NEED(1);
	else if (!strcmp(cmd, "get") || !strcmp(cmd, "del"))
		NEED(2);
	else
		NEED(3);
	EVP_PKEY *k = NULL;
	if (!strcmp(cmd, "seal-put")) {
		if (!keyf) {
			fprintf(stderr, "veil-storectl: seal-put needs --key\n");
			return 2;
		}
		if (!(k = vs_load_key(keyf, 1, err, sizeof(err)))) {
			fprintf(stderr, "veil-storectl: %s\n", err);
			return 2;
		}
	}
	vs_store *st;
	vs_kv *kv;
	struct vs_opts o = { .urls = urls, .creds = creds, .name = "veil-storectl", .replicas = replicas };
	if (vs_connect(&st, &o, err, sizeof(err)) != VS_OK) {
		fprintf(stderr, "veil-storectl: %s\n", err);
		EVP_PKEY_free(k);
		return 1;
	}
	/* writers create the bucket when it is missing (docs/store.md) */
	if (vs_bucket(st, a[0], write && strcmp(cmd, "del"), &kv, err, sizeof(err)) != VS_OK) {
		fprintf(stderr, "veil-storectl: %s\n", err);
		EVP_PKEY_free(k);
		vs_close(st);
		return 1;
	}
	int rc = VS_OK;
	uint64_t rev = 0;
	if (!strcmp(cmd, "keys")) {
		char **keys;
		int n;
		if ((rc = vs_keys(kv, &keys, &n)) == VS_OK) {
			for (int i = 0; i < n; i++)
				puts(keys[i]);
			vs_free_keys(keys, n);
		}
	} else if (!strcmp(cmd, "get")) {
		char *v;
		size_t len;
		if ((rc = vs_get(kv, a[1], &v, &len, &rev)) == VS_OK) {
			fwrite(v, 1, len, stdout);
			putchar('\n');
			free(v);
		}
	} else if (!strcmp(cmd, "del")) {
		rc = vs_delete(kv, a[1]);
	} else {
		size_t len;
		char *v = arg_value(a[2], &len), *env = NULL;
		if (!v)
			rc = VS_ERR;
		else if (k && (rc = vs_seal(k, a[0], a[1], v, len, &env)) == VS_OK) {
			free(v);
			v = env;
			len = strlen(env);
		}
		if (rc == VS_OK)
			rc = !strcmp(cmd, "create") ? vs_create(kv, a[1], v, len, &rev) : vs_put(kv, a[1], v, len, &rev);
		free(v);
	}
	if (rc != VS_OK)
		fprintf(stderr, "veil-storectl: %s %s %s: %s\n", cmd, a[0], na > 1 ? a[1] : "", vs_strerror(rc));
	else if (verbose && rev)
		fprintf(stderr, "rev %llu\n", (unsigned long long)rev);
	EVP_PKEY_free(k);
	vs_kv_close(kv);
	vs_close(st);
	return code(rc);
}
