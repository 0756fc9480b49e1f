// SPDX-License-Identifier: Apache-2.0
/* veil-controller's pure parts: request bodies and the scheduler. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "testlib.h"
#include "ctl/ctl.h"

static json_object *parse(const char *s, struct ctl_err *e)
{
	memset(e, 0, sizeof(*e));
	return ctl_parse_body(s, strlen(s), e);
}

static void body_refusals(void)
{
	struct ctl_err e;
	static const char *const bad[] = { "", "{", "{\"a\":1", "[1,2]", "\"x\"", "{\"a\":1} x", "{\"a\":1}{}",
					   "{'a':1}", "{\"a\":01}", "{\"a\":[[[[[[[[[[1]]]]]]]]]]}", "{\"a\":\"\xff\"}",
					   "nul", "{\"a\":tru}", "{\"a\":NaN}", "{\"a\":\"x\ty\"}", NULL };
	for (int i = 0; bad[i]; i++) {
		json_object *j = parse(bad[i], &e);
		CHECK(!j && e.status == 400 && e.msg[0], "body %d (%s) accepted or no 400: %d", i, bad[i], e.status);
		json_object_put(j);
	}
	char nul[] = "{\"a\":1}\0";
	CHECK(!ctl_parse_body(nul, sizeof(nul) - 1, &e) && e.status == 400, "a NUL byte accepted");
	char *big = malloc(CTL_MAX_BODY + 2);
	memset(big, ' ', CTL_MAX_BODY + 1);
	big[0] = '{';
	big[CTL_MAX_BODY] = '}';
	big[CTL_MAX_BODY + 1] = 0;
	CHECK(!ctl_parse_body(big, CTL_MAX_BODY + 1, &e) && e.status == 413, "oversized body: %d", e.status);
	free(big);
	json_object *j = parse("  {\"a\": 1}\n", &e);
	CHECK(j, "a plain object refused: %s", e.msg);
	json_object_put(j);
}

static int order(const char *s, struct ctl_order_req *r, struct ctl_err *e)
{
	json_object *j = parse(s, e);
	int rc = j ? ctl_order_req(j, r, e) : -1;
	json_object_put(j);
	return rc;
}

static void order_fields(void)
{
	struct ctl_order_req r;
	struct ctl_err e;
	CHECK(!order("{\"image\":\"nginx@1.0\",\"hostname\":\"web1.example.test\",\"cpu\":2,\"ram_mb\":512,"
		      "\"disk_gb\":4,\"cc\":\"sev-snp\",\"ssh_keys\":[\"ssh-ed25519 AAAA x@y\"],\"user_data\":\"#!/bin/sh\\n\"}",
		      &r, &e), "a good order refused: %s", e.msg);
	CHECK(r.cpu == 2 && r.ram_mb == 512 && r.disk_gb == 4 && r.cc == CC_SEV_SNP && r.nssh == 1 && r.user_data &&
	      !strcmp(r.hostname, "web1.example.test"), "fields not as sent");
	ctl_order_req_free(&r);
	CHECK(!order("{\"image\":\"nginx@1.0\",\"hostname\":\"a.test\"}", &r, &e) && r.cpu == 1 && r.ram_mb == 256 &&
	      r.cc == CC_NONE && !r.user_data, "defaults");
	ctl_order_req_free(&r);
	static const struct {
		const char *body;
		int status;
		const char *code;
	} bad[] = {
		{ "{\"hostname\":\"a.test\"}", 400, "missing_field" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"colour\":1}", 400, "unknown_field" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"cpu\":\"2\"}", 400, "wrong_type" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"cpu\":2.5}", 400, "wrong_type" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"cpu\":0}", 422, "out_of_range" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"cpu\":99999999999}", 422, "out_of_range" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"ram_mb\":-1}", 422, "out_of_range" },
		{ "{\"image\":\"nginx\",\"hostname\":\"a.test\"}", 422, "bad_value" },
		{ "{\"image\":\"ng/inx@1\",\"hostname\":\"a.test\"}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"A.test\"}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"nodot\"}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a..test\"}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"-a.test\"}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test.\"}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"cc\":\"sgx\"}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"ssh_keys\":\"ssh-rsa A\"}", 400, "wrong_type" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"ssh_keys\":[1]}", 400, "wrong_type" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"ssh_keys\":[\"not a key\"]}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"ssh_keys\":[\"ssh-rsa A\\nssh-rsa B\"]}", 422, "bad_value" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"user_data\":5}", 400, "wrong_type" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a.test\",\"gpus\":9}", 422, "out_of_range" },
		{ "{\"image\":\"nginx@1\",\"hostname\":\"a\\u0000b.test\"}", 400, "bad_value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = order(bad[i].body, &r, &e);
		CHECK(rc && e.status == bad[i].status && !strcmp(e.code, bad[i].code), "case %zu %s: rc %d status %d code %s",
		      i, bad[i].body, rc, e.status, e.code);
		if (!rc)
			ctl_order_req_free(&r);
	}
	/* a long hostname label */
	char b[512];
	snprintf(b, sizeof(b), "{\"image\":\"n@1\",\"hostname\":\"%064d.test\"}", 0);
	CHECK(order(b, &r, &e) && e.status == 422, "a 64-byte label accepted");
}

static char *ek_b64(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k, &der);
	char *out = malloc(4 * n / 3 + 8);
	EVP_EncodeBlock((unsigned char *)out, der, n);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	return out;
}

static void register_fields(void)
{
	struct ctl_register_req *r = calloc(1, sizeof(*r));
	struct ctl_err e;
	char *ek = ek_b64(), body[4096];
	const char *pub = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
	const char *scan = "{\"cpu\":{\"count\":8,\"flags\":{\"sev\":true,\"sev_snp\":true,\"tdx\":false}},"
			   "\"memory_bytes\":17179869184,\"disk\":{\"free_bytes\":107374182400},"
			   "\"libvirt\":{\"launch_security\":[\"sev\",\"sev-snp\",\"tdx\"]}}";
	snprintf(body, sizeof(body), "{\"key\":\"vreg_x\",\"ek_pub\":\"%s\",\"node_pub\":\"%s\",\"name\":\"n1\","
		 "\"underlay4\":\"198.18.1.1\",\"location\":\"DE\",\"resources\":{\"cpu\":4,\"ram_mb\":8192,\"disk_gb\":50,"
		 "\"gpus\":[\"41:00.0\"]},\"scan\":%s}", ek, pub, scan);
	json_object *j = parse(body, &e);
	CHECK(j && !ctl_register_req(j, r, &e), "good registration refused: %s", e.msg);
	CHECK(r->cpu == 4 && r->ngpus == 1 && !strcmp(r->gpus[0], "0000:41:00.0"), "gpu address not normalised: %s", r->gpus[0]);
	CHECK(r->cc == (CC_NONE | CC_SEV | CC_SEV_SNP), "cc modes %x: tdx without the CPU flag must not count", r->cc);
	json_object_put(j);
	/* more than the hardware has */
	snprintf(body, sizeof(body), "{\"key\":\"k\",\"ek_pub\":\"%s\",\"node_pub\":\"%s\",\"underlay4\":\"198.18.1.1\","
		 "\"resources\":{\"cpu\":16,\"ram_mb\":8192,\"disk_gb\":50},\"scan\":%s}", ek, pub, scan);
	j = parse(body, &e);
	CHECK(j && ctl_register_req(j, r, &e) && e.status == 422 && !strcmp(e.code, "over_allocated"), "16 of 8 CPUs: %s", e.code);
	json_object_put(j);
	static const char *const bad[] = {
		"{\"key\":\"k\",\"ek_pub\":\"AAAA\",\"node_pub\":\"%2$s\",\"underlay4\":\"198.18.1.1\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1},\"scan\":{}}",
		"{\"key\":\"k\",\"ek_pub\":\"%1$s\",\"node_pub\":\"AAAA\",\"underlay4\":\"198.18.1.1\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1},\"scan\":{}}",
		"{\"key\":\"k\",\"ek_pub\":\"%1$s\",\"node_pub\":\"%2$s\",\"underlay4\":\"300.1.1.1\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1},\"scan\":{}}",
		"{\"key\":\"k\",\"ek_pub\":\"%1$s\",\"node_pub\":\"%2$s\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1},\"scan\":{}}",
		"{\"key\":\"k\",\"ek_pub\":\"%1$s\",\"node_pub\":\"%2$s\",\"underlay4\":\"198.18.1.1\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1,\"x\":1},\"scan\":{}}",
		"{\"key\":\"k\",\"ek_pub\":\"%1$s\",\"node_pub\":\"%2$s\",\"underlay4\":\"198.18.1.1\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1,\"gpus\":[\"zz\"]},\"scan\":{}}",
		"{\"key\":\"k\",\"ek_pub\":\"%1$s\",\"node_pub\":\"%2$s\",\"underlay4\":\"198.18.1.1\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1}}",
		"{\"key\":\"k\",\"ek_pub\":\"%1$s\",\"node_pub\":\"%2$s\",\"underlay4\":\"198.18.1.1\",\"location\":\"Germany\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1},\"scan\":{}}",
		NULL };
	for (int i = 0; bad[i]; i++) {
		snprintf(body, sizeof(body), bad[i], ek, pub);
		j = parse(body, &e);
		CHECK(j && ctl_register_req(j, r, &e) && e.status >= 400 && e.status < 500, "bad registration %d accepted", i);
		json_object_put(j);
	}
	free(ek);
	free(r);
}

/* ek_cert + ak (credential activation): the certificate is kept as DER,
 * either ek_pub or ek_cert + ak, never both or half */
static void register_attest_fields(void)
{
	struct ctl_register_req *r = calloc(1, sizeof(*r));
	struct ctl_err e;
	char *ek = ek_b64(), body[8192], pem[4096], esc[4400];
	const char *pub = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
	const char *res = "\"underlay4\":\"198.18.1.1\",\"resources\":{\"cpu\":1,\"ram_mb\":64,\"disk_gb\":1},\"scan\":{}";
	/* a self-signed certificate stands for an EK certificate here: req.c only parses it */
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"ek", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	int n = BIO_read(b, pem, sizeof(pem) - 1);
	pem[n > 0 ? n : 0] = 0;
	BIO_free(b);
	size_t o = 0;
	for (char *p = pem; *p && o < sizeof(esc) - 3; p++) {   /* JSON: newlines escaped */
		if (*p == '\n') {
			esc[o++] = '\\';
			esc[o++] = 'n';
		} else {
			esc[o++] = *p;
		}
	}
	esc[o] = 0;
	snprintf(body, sizeof(body), "{\"key\":\"k\",\"ek_cert\":\"%s\",\"ak\":\"AAAAAAAAAAAAAAAA\",\"node_pub\":\"%s\",%s}",
		 esc, pub, res);
	json_object *j = parse(body, &e);
	uint8_t *der = NULL;
	int dl = i2d_X509(x, &der);
	CHECK(j && !ctl_register_req(j, r, &e) && r->attest && r->ak_len == 12 && r->ek_len == (size_t)dl &&
	      !memcmp(r->ek_der, der, dl), "ek_cert + ak not taken: %s", e.msg);
	json_object_put(j);
	OPENSSL_free(der);
	char bad[4][8192];
	snprintf(bad[0], sizeof(bad[0]), "{\"key\":\"k\",\"ek_cert\":\"%s\",\"node_pub\":\"%s\",%s}", esc, pub, res);
	snprintf(bad[1], sizeof(bad[1]), "{\"key\":\"k\",\"ek_cert\":\"%s\",\"ak\":\"AAAA\",\"ek_pub\":\"%s\",\"node_pub\":\"%s\",%s}",
		 esc, ek, pub, res);
	snprintf(bad[2], sizeof(bad[2]), "{\"key\":\"k\",\"ek_cert\":\"not a certificate\",\"ak\":\"AAAAAAAAAAAAAAAA\",\"node_pub\":\"%s\",%s}",
		 pub, res);
	snprintf(bad[3], sizeof(bad[3]), "{\"key\":\"k\",\"node_pub\":\"%s\",%s}", pub, res);
	for (int i = 0; i < 4; i++) {
		j = parse(bad[i], &e);
		CHECK(j && ctl_register_req(j, r, &e) && e.status >= 400 && e.status < 500, "bad attested registration %d accepted", i);
		json_object_put(j);
	}
	X509_free(x);
	EVP_PKEY_free(k);
	free(ek);
	free(r);
}

static void activate_fields(void)
{
	struct ctl_activate_req a;
	struct ctl_err e;
	char body[512];
	snprintf(body, sizeof(body), "{\"secret\":\"%s\",\"attest\":\"AAAAAAAAAAAAAAAAAAAAAAAA\",\"sig\":\"AAAAAAAAAAAA\"}",
		 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	json_object *j = parse(body, &e);
	CHECK(j && !ctl_activate_req(j, &a, &e) && a.cred[1] == 0x11 && a.cred[31] == 0xff && a.alen == 18 && a.slen == 9,
	      "good activation refused: %s", e.msg);
	json_object_put(j);
	static const char *const bad[] = {
		"{\"secret\":\"0011\",\"attest\":\"AAAAAAAAAAAAAAAAAAAAAAAA\",\"sig\":\"AAAAAAAAAAAA\"}",
		"{\"secret\":\"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"attest\":\"AAAAAAAAAAAAAAAAAAAAAAAA\",\"sig\":\"AAAAAAAAAAAA\"}",
		"{\"secret\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"attest\":\"!!\",\"sig\":\"AAAAAAAAAAAA\"}",
		"{\"secret\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"attest\":\"AAAAAAAAAAAAAAAAAAAAAAAA\"}",
		"{\"secret\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"attest\":\"AAAAAAAAAAAAAAAAAAAAAAAA\",\"sig\":\"AAAAAAAAAAAA\",\"x\":1}",
		"{\"secret\":1,\"attest\":\"AAAAAAAAAAAAAAAAAAAAAAAA\",\"sig\":\"AAAAAAAAAAAA\"}",
		NULL };
	for (int i = 0; bad[i]; i++) {
		j = parse(bad[i], &e);
		CHECK(j && ctl_activate_req(j, &a, &e) && e.status >= 400 && e.status < 500, "bad activation %d accepted", i);
		CHECK(!a.cred[0] && !a.cred[31], "bad activation %d left the secret in the struct", i);
		json_object_put(j);
	}
}

static void token_fields(void)
{
	struct ctl_token_req r;
	struct ctl_err e;
	json_object *j = parse("{\"storefront\":\"shop-a\",\"scopes\":[\"order\",\"read\"],\"rate\":5}", &e);
	CHECK(j && !ctl_token_req(j, &r, &e) && r.scopes == (CTL_SCOPE_ORDER | CTL_SCOPE_READ) && r.rate == 5, "good token");
	json_object_put(j);
	static const char *const bad[] = { "{\"storefront\":\"shop-a\",\"scopes\":[]}", "{\"storefront\":\"shop-a\",\"scopes\":[\"root\"]}",
					   "{\"storefront\":\"Shop A\",\"scopes\":[\"read\"]}", "{\"scopes\":[\"read\"]}",
					   "{\"storefront\":\"s\",\"scopes\":[\"read\"],\"rate\":0}", NULL };
	for (int i = 0; bad[i]; i++) {
		j = parse(bad[i], &e);
		CHECK(j && ctl_token_req(j, &r, &e) && e.status >= 400 && e.status < 500, "bad token %d accepted", i);
		json_object_put(j);
	}
}

static struct ctl_node mk(const char *id, int cpu, int ram, int disk, int ngpu, int cc)
{
	struct ctl_node n = { .up = 1, .cpu = cpu, .ram_mb = ram, .disk_gb = disk, .ngpus = ngpu, .cc = cc };
	snprintf(n.id, sizeof(n.id), "%s", id);
	for (int i = 0; i < ngpu; i++)
		snprintf(n.gpus[i], sizeof(n.gpus[i]), "0000:4%d:00.0", i);
	return n;
}

static void sched_fit(void)
{
	struct ctl_node n[3] = { mk("a", 2, 1024, 10, 0, CC_NONE), mk("b", 8, 8192, 100, 2, CC_NONE | CC_SEV_SNP),
				 mk("c", 4, 4096, 50, 0, CC_NONE | CC_TDX) };
	char why[200];
	struct ctl_want w = { .cpu = 4, .ram_mb = 2048, .disk_gb = 10, .cc = CC_NONE };
	int p = ctl_pick(n, 3, &w, why, sizeof(why));
	CHECK(p == 1, "4 cpu fits b (least loaded after) and c; got %d", p);
	w = (struct ctl_want){ .cpu = 1, .ram_mb = 256, .disk_gb = 1, .gpus = 1, .cc = CC_NONE };
	CHECK(ctl_pick(n, 3, &w, why, sizeof(why)) == 1, "only b has GPUs");
	w = (struct ctl_want){ .cpu = 1, .ram_mb = 256, .disk_gb = 1, .cc = CC_TDX };
	CHECK(ctl_pick(n, 3, &w, why, sizeof(why)) == 2, "only c offers tdx");
	w = (struct ctl_want){ .cpu = 1, .ram_mb = 256, .disk_gb = 1, .cc = CC_SEV };
	CHECK(ctl_pick(n, 3, &w, why, sizeof(why)) == -1 && strstr(why, "sev"), "nobody offers sev: %s", why);
	w = (struct ctl_want){ .cpu = 16, .ram_mb = 256, .disk_gb = 1, .cc = CC_NONE };
	CHECK(ctl_pick(n, 3, &w, why, sizeof(why)) == -1 && strstr(why, "16 cpu"), "16 cpu fits nowhere: %s", why);
	n[1].up = n[2].up = 0;
	w = (struct ctl_want){ .cpu = 4, .ram_mb = 256, .disk_gb = 1, .cc = CC_NONE };
	CHECK(ctl_pick(n, 3, &w, why, sizeof(why)) == -1, "a node that is down is not picked");
	n[0].up = 0;
	CHECK(ctl_pick(n, 3, &w, why, sizeof(why)) == -1 && strstr(why, "no node is up"), "none up: %s", why);
	n[0].up = n[1].up = n[2].up = 1;
	w = (struct ctl_want){ .cpu = 1, .ram_mb = 256, .disk_gb = 1, .cc = CC_NONE, .exclude = "b" };
	CHECK(ctl_pick(n, 3, &w, why, sizeof(why)) == 2, "excluded b: c is least loaded");
}

static void sched_spread_no_overcommit(void)
{
	struct ctl_node n[3] = { mk("a", 4, 4096, 40, 0, CC_NONE), mk("b", 4, 4096, 40, 0, CC_NONE),
				 mk("c", 4, 4096, 40, 0, CC_NONE) };
	struct ctl_want w = { .cpu = 1, .ram_mb = 1024, .disk_gb = 10, .cc = CC_NONE };
	int placed = 0, per[3] = { 0 }, last_spread_ok = 1;
	for (int i = 0; i < 20; i++) {
		int p = ctl_pick(n, 3, &w, NULL, 0);
		if (p < 0)
			break;
		CHECK(!ctl_commit(&n[p], &w, NULL), "commit refused after pick");
		per[p]++;
		placed++;
		int mx = per[0] > per[1] ? per[0] : per[1], mn = per[0] < per[1] ? per[0] : per[1];
		mx = mx > per[2] ? mx : per[2];
		mn = mn < per[2] ? mn : per[2];
		if (mx - mn > 1)
			last_spread_ok = 0;
	}
	CHECK(placed == 12, "3 nodes of 4 cpu/4 GB hold 12 VMs of 1 cpu/1 GB; placed %d", placed);
	CHECK(last_spread_ok, "placements not spread: %d %d %d", per[0], per[1], per[2]);
	for (int i = 0; i < 3; i++)
		CHECK(n[i].used_cpu <= n[i].cpu && n[i].used_ram <= n[i].ram_mb && n[i].used_disk <= n[i].disk_gb,
		      "node %d over-committed", i);
	CHECK(ctl_commit(&n[0], &w, NULL) == -1, "commit beyond the allocation accepted");
	/* GPUs are handed out once */
	struct ctl_node g = mk("g", 8, 8192, 100, 2, CC_NONE);
	struct ctl_want wg = { .cpu = 1, .ram_mb = 256, .disk_gb = 1, .gpus = 1, .cc = CC_NONE };
	int i1[1], i2[1];
	CHECK(!ctl_commit(&g, &wg, i1) && !ctl_commit(&g, &wg, i2) && i1[0] != i2[0], "two VMs got the same GPU");
	CHECK(ctl_pick(&g, 1, &wg, NULL, 0) == -1, "a third GPU VM placed on a 2-GPU node");
}

int main(void)
{
	RUN(body_refusals);
	RUN(order_fields);
	RUN(register_fields);
	RUN(register_attest_fields);
	RUN(activate_fields);
	RUN(token_fields);
	RUN(sched_fit);
	RUN(sched_spread_no_overcommit);
	return t_done();
}
