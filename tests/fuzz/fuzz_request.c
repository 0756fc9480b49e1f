// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: the validator's request handling (what evhttp hands over: the
 * path, the body, the signature header), the whole of veil-validator.c
 * minus main, against a state directory with one registered VM: its
 * references signed by the registry (so they are verified once, then served
 * from the cache as in production) and a TPM vendor CA, so challenges reach
 * the EK certificate check.  No per-input setup.  First byte picks the
 * endpoint.  Nothing may crash; every answer is a JSON object with a status. */
#define VEIL_VALIDATOR_NO_MAIN
#include "../../controlplane/veil-validator.c"
#include "../soft_tpm.h"

static void cleanup(void)
{
	static const char *files[] = { "order-7.refs", "order-7.refs.sig", "vendor.pem", "order-7.tpm" };
	char p[400];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", cfg.state, files[i]);
		unlink(p);
	}
	rmdir(cfg.state);
}

static void setup(void)
{
	char p[400], doc[1024], z[65], ek[65], sig64[128];
	uint8_t sig[64], id[32];
	size_t sl = 64;
	X509 *ca;
	EVP_PKEY *cakey;
	struct soft_ek soft;

	registry_pub = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");   /* private too: it signs the references */
	vm_log_quiet = true;
	atexit(cleanup);
	snprintf(cfg.id, sizeof(cfg.id), "v1");
	snprintf(cfg.state, sizeof(cfg.state), "/tmp/veil-fuzz-request-%d", (int)getpid());
	mkdir(cfg.state, 0700);
	snprintf(p, sizeof(p), "%s/vendor.pem", cfg.state);
	if (soft_vendor_new(p, &ca, &cakey) || soft_ek_new(&soft, ca, cakey, 2) || !(ek_ca = vm_ek_ca_load(p, z, sizeof(z))))
		abort();
	vm_ek_id(soft.key, id);
	vm_hex(id, 32, ek);
	memset(z, '0', 64);
	z[64] = 0;
	snprintf(doc, sizeof(doc), "{\"v\":2,\"vm\":\"order-7\",\"epoch\":5,\"t\":2,\"n\":3,\"pcr0\":\"%s\",\"pcr7\":\"%s\","
		 "\"pcr9\":[\"%s\",\"%s\"],\"commit\":\"%s\",\"ek\":\"%s\"}", z, z, z, z, z, ek);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestSignInit(md, NULL, NULL, NULL, registry_pub);
	EVP_DigestSign(md, sig, &sl, (uint8_t *)doc, strlen(doc));
	EVP_MD_CTX_free(md);
	vm_b64_encode(sig, 64, sig64, sizeof(sig64));
	snprintf(p, sizeof(p), "%s/order-7.refs", cfg.state);
	FILE *f = fopen(p, "w");
	fputs(doc, f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/order-7.refs.sig", cfg.state);
	f = fopen(p, "w");
	fputs(sig64, f);
	fclose(f);
	/* the seed corpus's challenge carries this EK certificate (tests/fuzz.sh) */
	char *b = malloc(2 * sizeof(soft.der));
	vm_b64_encode(soft.der, soft.derlen, b, 2 * sizeof(soft.der));
	if (getenv("VEIL_FUZZ_SEED_DIR")) {
		snprintf(p, sizeof(p), "%s/seed-challenge-ek", getenv("VEIL_FUZZ_SEED_DIR"));
		if ((f = fopen(p, "w"))) {
			fprintf(f, "%c{\"vm\":\"order-7\",\"ek_cert\":\"%s\",\"ak\":\"AA==\"}", 0, b);
			fclose(f);
		}
	}
	free(b);
	EVP_PKEY_free(soft.key);
	X509_free(ca);
	EVP_PKEY_free(cakey);
}

/* before the corpus is read: the seed with a valid EK certificate is there
 * for this run already */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *paths[] = { "/v1/challenge", "/v1/attest", "/v1/register", "/v1/share", "/x" };
	static struct reply rep;

	if (size < 1)
		return 0;
	char *body = malloc(size);
	memcpy(body, data + 1, size - 1);
	body[size - 1] = 0;
	handle(paths[data[0] % 5], body, size - 1, data[0] & 0x80 ? "AAAA" : NULL, &rep);
	if (rep.status < 200 || rep.status > 599 || rep.body[0] != '{')
		abort();
	free(body);
	return 0;
}
