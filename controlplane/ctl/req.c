// SPDX-License-Identifier: Apache-2.0
/* veil-controller: request bodies -> checked structs (ctl.h).  Pure. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ctl/ctl.h"

static int fail(struct ctl_err *e, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct ctl_err *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	snprintf(e->code, sizeof(e->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* What json-c accepts even in strict mode but JSON (RFC 8259) does not:
 * single-quoted strings, NaN/Infinity, raw control characters in strings. */
static int json_lexically_ok(const char *s, size_t len)
{
	int in = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (in) {
			if (c < 0x20)
				return 0;
			if (c == '\\')
				i++;
			else if (c == '"')
				in = 0;
		} else if (c == '"') {
			in = 1;
		} else if (isalpha(c) && c != 'e' && c != 'E') {
			static const char *const words[] = { "true", "false", "null" };
			int ok = 0;
			for (int w = 0; w < 3 && !ok; w++) {
				size_t wl = strlen(words[w]);
				if (len - i >= wl && !memcmp(s + i, words[w], wl)) {
					ok = 1;
					i += wl - 1;
				}
			}
			if (!ok)
				return 0;
		} else if (c == '\'') {
			return 0;
		}
	}
	return 1;
}

json_object *ctl_parse_body(const char *body, size_t len, struct ctl_err *e)
{
	if (len > CTL_MAX_BODY)
		return fail(e, 413, "too_large", "request body over %d bytes", CTL_MAX_BODY), NULL;
	if (!body || !len)
		return fail(e, 400, "bad_json", "empty body: a JSON object is expected"), NULL;
	if (memchr(body, 0, len))
		return fail(e, 400, "bad_json", "body holds a NUL byte"), NULL;
	if (!json_lexically_ok(body, len))
		return fail(e, 400, "bad_json", "malformed JSON: not RFC 8259 (quotes, NaN or control characters)"), NULL;
	json_tokener *tk = json_tokener_new_ex(8);
	if (!tk)
		return fail(e, 503, "no_memory", "out of memory"), NULL;
	json_tokener_set_flags(tk, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *j = json_tokener_parse_ex(tk, body, (int)len);
	enum json_tokener_error je = json_tokener_get_error(tk);
	size_t used = json_tokener_get_parse_end(tk);
	json_tokener_free(tk);
	if (je != json_tokener_success) {
		json_object_put(j);
		return fail(e, 400, "bad_json", "malformed JSON: %s", je == json_tokener_continue ? "unexpected end"
											 : json_tokener_error_desc(je)), NULL;
	}
	for (; used < len; used++)
		if (!isspace((unsigned char)body[used])) {
			json_object_put(j);
			return fail(e, 400, "bad_json", "malformed JSON: data after the object"), NULL;
		}
	if (!json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		return fail(e, 400, "bad_json", "the body must be a JSON object"), NULL;
	}
	return j;
}

/* Unknown fields are refused: a client that misspells a field learns it. */
static int only_fields(json_object *j, const char *const *known, struct ctl_err *e)
{
	json_object_object_foreach(j, k, v) {
		(void)v;
		int ok = 0;
		for (int i = 0; known[i]; i++)
			ok |= !strcmp(k, known[i]);
		if (!ok) {
			char shown[40];
			size_t n = 0;
			for (const char *p = k; *p && n < sizeof(shown) - 1; p++)
				shown[n++] = isprint((unsigned char)*p) && *p != '"' && *p != '\\' ? *p : '?';
			shown[n] = 0;
			return fail(e, 400, "unknown_field", "unknown field '%s'", shown);
		}
	}
	return 0;
}

static int get_str(json_object *j, const char *k, int required, char *dst, size_t cap, struct ctl_err *e)
{
	json_object *v;
	if (!json_object_object_get_ex(j, k, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return fail(e, 400, "missing_field", "field '%s' is required", k);
		dst[0] = 0;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(e, 400, "wrong_type", "field '%s' must be a string", k);
	size_t n = (size_t)json_object_get_string_len(v);
	if (n >= cap)
		return fail(e, 400, "too_long", "field '%s' is longer than %zu", k, cap - 1);
	memcpy(dst, json_object_get_string(v), n + 1);
	if (strlen(dst) != n)
		return fail(e, 400, "bad_value", "field '%s' holds a NUL", k);
	return 0;
}

static int get_int(json_object *j, const char *k, int required, int dflt, int lo, int hi, int *out, struct ctl_err *e)
{
	json_object *v;
	if (!json_object_object_get_ex(j, k, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return fail(e, 400, "missing_field", "field '%s' is required", k);
		*out = dflt;
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
		return fail(e, 400, "wrong_type", "field '%s' must be an integer", k);
	int64_t x = json_object_get_int64(v);
	if (x < lo || x > hi)
		return fail(e, 422, "out_of_range", "field '%s' must be %d..%d", k, lo, hi);
	*out = (int)x;
	return 0;
}

int ctl_ident_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (!n || n > max || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_'))
			return 0;
	return 1;
}

int ctl_name_ok(const char *s)
{
	size_t n = strlen(s), lab = 0;
	if (!n || n > CTL_NAME_MAX || s[n - 1] == '.' || s[0] == '.' || !strchr(s, '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (!lab || s[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || (c == '-' && lab)))
			return 0;
		if (++lab > 63)
			return 0;
	}
	return s[n - 1] != '-';
}

static const struct {
	const char *name;
	int cc;
} ccs[] = { { "none", CC_NONE }, { "sev", CC_SEV }, { "sev-es", CC_SEV_ES }, { "sev-snp", CC_SEV_SNP }, { "tdx", CC_TDX } };

int ctl_cc_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(ccs) / sizeof(ccs[0]); i++)
		if (!strcmp(s, ccs[i].name))
			return ccs[i].cc;
	return 0;
}

const char *ctl_cc_name(int cc)
{
	for (size_t i = 0; i < sizeof(ccs) / sizeof(ccs[0]); i++)
		if (cc == ccs[i].cc)
			return ccs[i].name;
	return "none";
}

void ctl_order_req_free(struct ctl_order_req *r)
{
	for (int i = 0; i < r->nssh; i++)
		free(r->ssh_keys[i]);
	free(r->user_data);
	r->nssh = 0;
	r->user_data = NULL;
}

static int image_ok(const char *s)
{
	const char *at = strchr(s, '@');
	if (!at || at == s || !at[1] || strchr(at + 1, '@'))
		return 0;
	for (const char *p = s; *p; p++)
		if (p != at && !(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '_'))
			return 0;
	return 1;
}

int ctl_order_req(json_object *j, struct ctl_order_req *r, struct ctl_err *e)
{
	static const char *const known[] = { "image", "hostname", "cpu", "ram_mb", "disk_gb", "gpus", "cc",
					     "ssh_keys", "user_data", NULL };
	char cc[16];
	memset(r, 0, sizeof(*r));
	if (only_fields(j, known, e) || get_str(j, "image", 1, r->image, sizeof(r->image), e) ||
	    get_str(j, "hostname", 1, r->hostname, sizeof(r->hostname), e) ||
	    get_int(j, "cpu", 0, 1, 1, 256, &r->cpu, e) || get_int(j, "ram_mb", 0, 256, 64, 4 << 20, &r->ram_mb, e) ||
	    get_int(j, "disk_gb", 0, 1, 1, 65536, &r->disk_gb, e) || get_int(j, "gpus", 0, 0, 0, CTL_MAX_GPUS, &r->gpus, e) ||
	    get_str(j, "cc", 0, cc, sizeof(cc), e))
		return -1;
	if (!image_ok(r->image))
		return fail(e, 422, "bad_value", "image must be NAME@VERSION ([A-Za-z0-9._-])");
	if (!ctl_name_ok(r->hostname))
		return fail(e, 422, "bad_value", "hostname must be a lower-case DNS name with a dot, no final dot");
	r->cc = cc[0] ? ctl_cc_parse(cc) : CC_NONE;
	if (!r->cc)
		return fail(e, 422, "bad_value", "cc must be none, sev, sev-es, sev-snp or tdx");
	json_object *v;
	if (json_object_object_get_ex(j, "ssh_keys", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_array))
			return fail(e, 400, "wrong_type", "field 'ssh_keys' must be an array of strings");
		size_t n = json_object_array_length(v);
		if (n > CTL_MAX_SSH_KEYS)
			return fail(e, 422, "out_of_range", "at most %d ssh_keys", CTL_MAX_SSH_KEYS);
		for (size_t i = 0; i < n; i++) {
			json_object *k = json_object_array_get_idx(v, i);
			if (!json_object_is_type(k, json_type_string))
				return ctl_order_req_free(r), fail(e, 400, "wrong_type", "ssh_keys[%zu] must be a string", i);
			const char *s = json_object_get_string(k);
			size_t l = (size_t)json_object_get_string_len(k);
			if (l > 4096 || strlen(s) != l || strchr(s, '\n') ||
			    (strncmp(s, "ssh-", 4) && strncmp(s, "ecdsa-", 6) && strncmp(s, "sk-", 3)))
				return ctl_order_req_free(r),
				       fail(e, 422, "bad_value", "ssh_keys[%zu] is not one OpenSSH public key line", i);
			r->ssh_keys[r->nssh++] = strdup(s);
		}
	}
	if (json_object_object_get_ex(j, "user_data", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_string))
			return ctl_order_req_free(r), fail(e, 400, "wrong_type", "field 'user_data' must be a string");
		size_t l = (size_t)json_object_get_string_len(v);
		if (l > CTL_MAX_USER_DATA || strlen(json_object_get_string(v)) != l)
			return ctl_order_req_free(r), fail(e, 422, "out_of_range", "user_data over %d bytes", CTL_MAX_USER_DATA);
		r->user_data = strdup(json_object_get_string(v));
	}
	return 0;
}

static int b64_decode(const char *s, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t n = strlen(s);
	if (!n || n % 4 || n / 4 * 3 > cap + 2)
		return -1;
	uint8_t *tmp = malloc(n / 4 * 3 + 1);
	if (!tmp)
		return -1;
	int l = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
	if (l < 0) {
		free(tmp);
		return -1;
	}
	if (s[n - 1] == '=')
		l--;
	if (s[n - 2] == '=')
		l--;
	if ((size_t)l > cap) {
		free(tmp);
		return -1;
	}
	memcpy(out, tmp, (size_t)l);
	free(tmp);
	*outlen = (size_t)l;
	return 0;
}

static int addr_ok(const char *s, int af)
{
	unsigned char buf[16];
	return !s[0] || inet_pton(af, s, buf) == 1;
}

static int location_ok(const char *s)
{
	if (!s[0])
		return 1;
	if (strlen(s) == 2 && isupper((unsigned char)s[0]) && isupper((unsigned char)s[1]))
		return 1;
	double la, lo;
	char tail;
	return sscanf(s, "%lf,%lf%c", &la, &lo, &tail) == 2 && la >= -90 && la <= 90 && lo >= -180 && lo <= 180;
}

static int pci_norm(const char *in, char *out, size_t cap)
{
	unsigned d = 0, b, s, f;
	char tail;
	if (sscanf(in, "%4x:%2x:%2x.%1x%c", &d, &b, &s, &f, &tail) == 4 ||
	    (d = 0, sscanf(in, "%2x:%2x.%1x%c", &b, &s, &f, &tail) == 3)) {
		if (b > 255 || s > 31 || f > 7)
			return -1;
		snprintf(out, cap, "%04x:%02x:%02x.%x", d, b, s, f);
		return 0;
	}
	return -1;
}

int ctl_register_req(json_object *j, struct ctl_register_req *r, struct ctl_err *e)
{
	static const char *const known[] = { "key", "ek_pub", "ek_cert", "ak", "node_pub", "name", "underlay4",
					     "underlay6", "location", "resources", "scan", NULL };
	static const char *const rknown[] = { "cpu", "ram_mb", "disk_gb", "gpus", NULL };
	char ek64[2800], pub64[64], ak64[1400];
	size_t publen = 0;
	memset(r, 0, sizeof(*r));
	if (only_fields(j, known, e) || get_str(j, "key", 1, r->key, sizeof(r->key), e) ||
	    get_str(j, "ek_pub", 0, ek64, sizeof(ek64), e) || get_str(j, "ek_cert", 0, r->ek_pem, sizeof(r->ek_pem), e) ||
	    get_str(j, "ak", 0, ak64, sizeof(ak64), e) || get_str(j, "node_pub", 1, pub64, sizeof(pub64), e) ||
	    get_str(j, "name", 0, r->name, sizeof(r->name), e) ||
	    get_str(j, "underlay4", 0, r->underlay4, sizeof(r->underlay4), e) ||
	    get_str(j, "underlay6", 0, r->underlay6, sizeof(r->underlay6), e) ||
	    get_str(j, "location", 0, r->location, sizeof(r->location), e))
		return -1;
	if (!!ek64[0] == !!r->ek_pem[0] || !r->ek_pem[0] != !ak64[0])
		return fail(e, 400, "missing_field", "either ek_cert and ak (credential activation) or ek_pub is required");
	if (r->ek_pem[0]) {
		/* the EK certificate, then at most a few intermediates, all PEM */
		BIO *b = BIO_new_mem_buf(r->ek_pem, (int)strlen(r->ek_pem));
		X509 *x;
		int n = 0;
		while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
			if (!n) {
				uint8_t *d = NULL;
				int dl = i2d_X509(x, &d);
				if (dl > 0 && (size_t)dl <= sizeof(r->ek_der)) {
					memcpy(r->ek_der, d, dl);
					r->ek_len = dl;
				}
				OPENSSL_free(d);
			}
			X509_free(x);
			n++;
		}
		BIO_free(b);
		ERR_clear_error();
		if (!n || !r->ek_len || n > CTL_EK_CHAIN_MAX)
			return fail(e, 422, "bad_value", "ek_cert must be the EK certificate and at most %d intermediates, PEM",
				    CTL_EK_CHAIN_MAX - 1);
		if (b64_decode(ak64, r->ak, sizeof(r->ak), &r->ak_len) || r->ak_len < 10)
			return fail(e, 422, "bad_value", "ak must be the attestation key's TPM2B_PUBLIC, base64");
		r->attest = 1;
	} else {
		if (b64_decode(ek64, r->ek_der, sizeof(r->ek_der), &r->ek_len) || r->ek_len < 32)
			return fail(e, 422, "bad_value", "ek_pub must be the EK public key, DER, base64");
		const uint8_t *p = r->ek_der;
		EVP_PKEY *ek = d2i_PUBKEY(NULL, &p, (long)r->ek_len);
		if (!ek || p != r->ek_der + r->ek_len) {
			EVP_PKEY_free(ek);
			return fail(e, 422, "bad_value", "ek_pub is not a DER SubjectPublicKeyInfo");
		}
		EVP_PKEY_free(ek);
	}
	if (b64_decode(pub64, r->node_pub, sizeof(r->node_pub), &publen) || publen != 32)
		return fail(e, 422, "bad_value", "node_pub must be a raw Ed25519 public key (32 bytes), base64");
	if (r->name[0] && !ctl_ident_ok(r->name, 63))
		return fail(e, 422, "bad_value", "name must be [a-z0-9._-], at most 63");
	if (!addr_ok(r->underlay4, AF_INET) || !addr_ok(r->underlay6, AF_INET6) || (!r->underlay4[0] && !r->underlay6[0]))
		return fail(e, 422, "bad_value", "underlay4/underlay6: an IPv4 and/or IPv6 address is required");
	if (!location_ok(r->location))
		return fail(e, 422, "bad_value", "location must be a country code (DE) or \"lat,lon\"");
	json_object *res, *scan, *v;
	if (!json_object_object_get_ex(j, "resources", &res) || !json_object_is_type(res, json_type_object))
		return fail(e, 400, "missing_field", "field 'resources' (an object) is required");
	if (only_fields(res, rknown, e) || get_int(res, "cpu", 1, 0, 1, 4096, &r->cpu, e) ||
	    get_int(res, "ram_mb", 1, 0, 64, 1 << 30, &r->ram_mb, e) || get_int(res, "disk_gb", 1, 0, 1, 1 << 24, &r->disk_gb, e))
		return -1;
	if (json_object_object_get_ex(res, "gpus", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > CTL_MAX_GPUS)
			return fail(e, 400, "wrong_type", "resources.gpus must be an array of at most %d PCI addresses", CTL_MAX_GPUS);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *g = json_object_array_get_idx(v, i);
			if (!json_object_is_type(g, json_type_string) ||
			    pci_norm(json_object_get_string(g), r->gpus[r->ngpus], sizeof(r->gpus[0])))
				return fail(e, 422, "bad_value", "resources.gpus[%zu] is not a PCI address", i);
			r->ngpus++;
		}
	}
	if (!json_object_object_get_ex(j, "scan", &scan) || !json_object_is_type(scan, json_type_object))
		return fail(e, 400, "missing_field", "field 'scan' (veil-agent --scan) is required");
	r->scan = scan;
	/* The allocation must fit the hardware the scan shows. */
	json_object *cpu, *cnt, *mem, *disk, *fb, *flags, *lv, *ls;
	if (json_object_object_get_ex(scan, "cpu", &cpu) && json_object_object_get_ex(cpu, "count", &cnt) &&
	    json_object_is_type(cnt, json_type_int) && json_object_get_int64(cnt) < r->cpu)
		return fail(e, 422, "over_allocated", "resources.cpu %d is more than the scan's %lld CPUs", r->cpu,
			    (long long)json_object_get_int64(cnt));
	if (json_object_object_get_ex(scan, "memory_bytes", &mem) && json_object_is_type(mem, json_type_int) &&
	    json_object_get_int64(mem) / (1024 * 1024) < r->ram_mb)
		return fail(e, 422, "over_allocated", "resources.ram_mb %d is more than the scan's memory", r->ram_mb);
	if (json_object_object_get_ex(scan, "disk", &disk) && json_object_object_get_ex(disk, "free_bytes", &fb) &&
	    json_object_is_type(fb, json_type_int) && json_object_get_int64(fb) / (1024LL * 1024 * 1024) < r->disk_gb)
		return fail(e, 422, "over_allocated", "resources.disk_gb %d is more than the scan's free disk", r->disk_gb);
	r->cc = CC_NONE;
	/* A mode counts only when both the CPU and libvirt offer it. */
	if (cpu && json_object_object_get_ex(cpu, "flags", &flags) && json_object_object_get_ex(scan, "libvirt", &lv) &&
	    json_object_object_get_ex(lv, "launch_security", &ls) && json_object_is_type(ls, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(ls); i++) {
			const char *m = json_object_get_string(json_object_array_get_idx(ls, i));
			json_object *f;
			int c = m ? ctl_cc_parse(m) : 0;
			const char *flag = c == CC_SEV ? "sev" : c == CC_SEV_ES ? "sev_es" : c == CC_SEV_SNP ? "sev_snp" : c == CC_TDX ? "tdx" : NULL;
			if (flag && json_object_object_get_ex(flags, flag, &f) && json_object_get_boolean(f))
				r->cc |= c;
		}
	}
	return 0;
}

int ctl_activate_req(json_object *j, struct ctl_activate_req *r, struct ctl_err *e)
{
	static const char *const known[] = { "secret", "attest", "sig", NULL };
	char sec[80], at64[1400], sig64[720];
	int rc = -1;
	memset(r, 0, sizeof(*r));
	if (only_fields(j, known, e) || get_str(j, "secret", 1, sec, sizeof(sec), e) ||
	    get_str(j, "attest", 1, at64, sizeof(at64), e) || get_str(j, "sig", 1, sig64, sizeof(sig64), e))
		goto out;
	int bad = strlen(sec) != 64;
	for (int i = 0; i < 32 && !bad; i++) {
		unsigned v;
		if (!isxdigit((unsigned char)sec[2 * i]) || !isxdigit((unsigned char)sec[2 * i + 1]) ||
		    sscanf(sec + 2 * i, "%2x", &v) != 1)
			bad = 1;
		else
			r->cred[i] = (uint8_t)v;
	}
	if (bad) {
		fail(e, 422, "bad_value", "secret must be the recovered credential, 64 hex digits");
		goto out;
	}
	if (b64_decode(at64, r->attest, sizeof(r->attest), &r->alen) || r->alen < 16) {
		fail(e, 422, "bad_value", "attest must be the quote's TPMS_ATTEST, base64");
		goto out;
	}
	if (b64_decode(sig64, r->sig, sizeof(r->sig), &r->slen) || r->slen < 8) {
		fail(e, 422, "bad_value", "sig must be the quote's TPMT_SIGNATURE, base64");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(sec, sizeof(sec));
	if (rc)
		OPENSSL_cleanse(r->cred, sizeof(r->cred));
	return rc;
}

int ctl_token_req(json_object *j, struct ctl_token_req *r, struct ctl_err *e)
{
	static const char *const known[] = { "storefront", "scopes", "rate", NULL };
	json_object *v;
	memset(r, 0, sizeof(*r));
	if (only_fields(j, known, e) || get_str(j, "storefront", 1, r->storefront, sizeof(r->storefront), e) ||
	    get_int(j, "rate", 0, 20, 1, 100000, &r->rate, e))
		return -1;
	if (!ctl_ident_ok(r->storefront, 63))
		return fail(e, 422, "bad_value", "storefront must be [a-z0-9._-], at most 63");
	if (!json_object_object_get_ex(j, "scopes", &v) || !json_object_is_type(v, json_type_array) ||
	    !json_object_array_length(v) || json_object_array_length(v) > 3)
		return fail(e, 400, "wrong_type", "scopes must be a non-empty array of order, read, admin");
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *s = json_object_array_get_idx(v, i);
		const char *n = json_object_is_type(s, json_type_string) ? json_object_get_string(s) : "";
		int b = !strcmp(n, "order") ? CTL_SCOPE_ORDER : !strcmp(n, "read") ? CTL_SCOPE_READ
							: !strcmp(n, "admin") ? CTL_SCOPE_ADMIN : 0;
		if (!b)
			return fail(e, 422, "bad_value", "scopes[%zu] must be order, read or admin", i);
		r->scopes |= b;
	}
	return 0;
}

int ctl_gateway_req(json_object *j, struct ctl_gateway_req *r, struct ctl_err *e)
{
	static const char *const known[] = { "id", "underlay4", "underlay6", "public4", "public6", "location", NULL };
	memset(r, 0, sizeof(*r));
	if (only_fields(j, known, e) || get_str(j, "id", 1, r->id, sizeof(r->id), e) ||
	    get_str(j, "underlay4", 0, r->underlay4, sizeof(r->underlay4), e) ||
	    get_str(j, "underlay6", 0, r->underlay6, sizeof(r->underlay6), e) ||
	    get_str(j, "public4", 0, r->public4, sizeof(r->public4), e) ||
	    get_str(j, "public6", 0, r->public6, sizeof(r->public6), e) ||
	    get_str(j, "location", 0, r->location, sizeof(r->location), e))
		return -1;
	if (!ctl_ident_ok(r->id, 63))
		return fail(e, 422, "bad_value", "id must be [a-z0-9._-], at most 63");
	if (!addr_ok(r->underlay4, AF_INET) || !addr_ok(r->underlay6, AF_INET6) || !addr_ok(r->public4, AF_INET) ||
	    !addr_ok(r->public6, AF_INET6) || (!r->public4[0] && !r->public6[0]))
		return fail(e, 422, "bad_value", "addresses must be IPv4/IPv6; public4 or public6 is required");
	if (!location_ok(r->location))
		return fail(e, 422, "bad_value", "location must be a country code (DE) or \"lat,lon\"");
	return 0;
}
