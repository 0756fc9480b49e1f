/* veil-controller's pure parts: request bodies -> checked structs, and the
 * scheduler.  No store, no sockets: unit-tested (tests/test_ctl.c) and fuzzed
 * (tests/fuzz/fuzz_ctl.c) alone. */
#ifndef VEIL_CTL_H
#define VEIL_CTL_H
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#define CTL_MAX_BODY 65536        /* request bodies above this: 413 */
#define CTL_MAX_SSH_KEYS 16
#define CTL_MAX_USER_DATA 16384
#define CTL_MAX_GPUS 8
#define CTL_NAME_MAX 253

enum ctl_cc { CC_NONE = 1, CC_SEV = 2, CC_SEV_ES = 4, CC_SEV_SNP = 8, CC_TDX = 16 };

/* A refusal: HTTP status, a code for machines, a message for people. */
struct ctl_err {
	int status;
	char code[32];
	char msg[200];
};

struct ctl_order_req {
	char image[130];          /* name@version */
	char hostname[CTL_NAME_MAX + 1];
	int cpu, ram_mb, disk_gb, gpus;
	int cc;                   /* one CC_* */
	int nssh;
	char *ssh_keys[CTL_MAX_SSH_KEYS];
	char *user_data;          /* NULL when absent */
};
void ctl_order_req_free(struct ctl_order_req *r);

/* Parses a request body: a JSON object and nothing after it, at most
 * CTL_MAX_BODY bytes, nesting at most 8.  NULL with e filled otherwise. */
json_object *ctl_parse_body(const char *body, size_t len, struct ctl_err *e);

/* The checks below refuse unknown fields, wrong types and values out of
 * range, naming the field.  0 or -1 with e filled (status 400/422). */
int ctl_order_req(json_object *j, struct ctl_order_req *r, struct ctl_err *e);

#define CTL_EK_PEM_MAX 12288    /* the EK certificate and its intermediates, PEM */
#define CTL_EK_CHAIN_MAX 4      /* certificates in it */
struct ctl_register_req {
	char key[128];            /* the registration key (secret: never logged) */
	uint8_t ek_der[4096];     /* ek_pub: the EK's SubjectPublicKeyInfo; ek_cert: the EK certificate, DER */
	size_t ek_len;
	int attest;               /* 1: ek_cert + ak given (credential activation), 0: ek_pub as presented */
	char ek_pem[CTL_EK_PEM_MAX];   /* ek_cert as sent: the EK certificate first, then intermediates */
	uint8_t ak[1024];         /* the AK's TPM2B_PUBLIC, marshalled */
	size_t ak_len;
	uint8_t node_pub[32];     /* Ed25519 raw */
	char name[64], underlay4[48], underlay6[64], location[40];
	int cpu, ram_mb, disk_gb;
	int ngpus;
	char gpus[CTL_MAX_GPUS][16];
	int cc;                   /* CC_* mask the scan shows */
	json_object *scan;        /* borrowed from the request */
};
int ctl_register_req(json_object *j, struct ctl_register_req *r, struct ctl_err *e);

/* POST /v1/nodes/{id}/activate: the credential the TPM recovered (hex,
 * secret: wiped after use) and the AK's quote (TPMS_ATTEST, TPMT_SIGNATURE,
 * base64). */
struct ctl_activate_req {
	uint8_t cred[32];
	uint8_t attest[1024];
	size_t alen;
	uint8_t sig[512];
	size_t slen;
};
int ctl_activate_req(json_object *j, struct ctl_activate_req *r, struct ctl_err *e);

struct ctl_token_req {
	char storefront[64];
	int scopes;               /* CTL_SCOPE_* */
	int rate;                 /* requests per second */
};
enum { CTL_SCOPE_ORDER = 1, CTL_SCOPE_READ = 2, CTL_SCOPE_ADMIN = 4 };
int ctl_token_req(json_object *j, struct ctl_token_req *r, struct ctl_err *e);

struct ctl_gateway_req {
	char id[64], underlay4[48], underlay6[64], public4[48], public6[64], location[40];
};
int ctl_gateway_req(json_object *j, struct ctl_gateway_req *r, struct ctl_err *e);

int ctl_name_ok(const char *s);          /* a DNS host name, lower case, no final dot */
int ctl_ident_ok(const char *s, size_t max);   /* [a-z0-9][a-z0-9._-]* */
int ctl_cc_parse(const char *s);         /* CC_* or 0 */
const char *ctl_cc_name(int cc);

/* ---------- scheduler ---------- */

struct ctl_node {
	char id[65];
	int up;
	int cpu, ram_mb, disk_gb;            /* what the node's config allocates */
	int ngpus;
	char gpus[CTL_MAX_GPUS][16];
	int cc;                              /* CC_* mask */
	/* committed by orders placed on it */
	int used_cpu, used_ram, used_disk;
	unsigned gpu_used;                   /* bit per gpus[] */
	int vms;
};
struct ctl_want {
	int cpu, ram_mb, disk_gb, gpus, cc;
	const char *exclude;                 /* a node not to pick (the one that failed), or NULL */
};
/* The node to place on: every dimension fits in what is left, the cc mode is
 * offered; among those the one whose most loaded dimension stays lowest
 * after placing (spread), then fewer VMs, then id.  -1 and why otherwise. */
int ctl_pick(const struct ctl_node *nodes, int n, const struct ctl_want *w, char *why, size_t whylen);
/* Commits w on node (and the GPUs it gets: their indexes into gpu_idx). */
int ctl_commit(struct ctl_node *node, const struct ctl_want *w, int *gpu_idx);
#endif
