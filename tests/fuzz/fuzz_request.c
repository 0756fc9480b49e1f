// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: the validator's request handling (what evhttp hands over: the
 * path, the body, the signature header), the whole of veil-validator.c
 * minus main, against a state directory with one registered VM.  First byte
 * picks the endpoint.  Nothing may crash; every answer is a JSON object with
 * a status. */
#define VEIL_VALIDATOR_NO_MAIN
#include "../../controlplane/veil-validator.c"

static void cleanup(void)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/order-7.refs", cfg.state);
	unlink(p);
	snprintf(p, sizeof(p), "%s/order-7.refs.sig", cfg.state);
	unlink(p);
	rmdir(cfg.state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *paths[] = { "/v1/challenge", "/v1/attest", "/v1/register", "/v1/share", "/x" };
	static struct reply rep;

	if (!registry_pub) {
		registry_pub = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		quiet = 1;
		atexit(cleanup);
		snprintf(cfg.id, sizeof(cfg.id), "v1");
		snprintf(cfg.state, sizeof(cfg.state), "/tmp/veil-fuzz-request-%d", (int)getpid());
		mkdir(cfg.state, 0700);
		char p[400];
		snprintf(p, sizeof(p), "%s/order-7.refs", cfg.state);   /* known, but not signed: refused on load */
		FILE *f = fopen(p, "w");
		fputs("{\"v\":2,\"vm\":\"order-7\"}", f);
		fclose(f);
		snprintf(p, sizeof(p), "%s/order-7.refs.sig", cfg.state);
		f = fopen(p, "w");
		fputs("AAAA", f);
		fclose(f);
	}
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
