/* SPDX-License-Identifier: Apache-2.0 */
/*
 * veil-dns core: the zone snapshot (immutable once built, swapped whole) and
 * the query path, a pure function (query bytes, client address, snapshot,
 * time) -> answer bytes.  Packets are parsed and built with ldns.
 */
#ifndef VEIL_DNS_H
#define VEIL_DNS_H
#include <stddef.h>
#include <stdint.h>
#include <ldns/ldns.h>

#include "geo.h"

#define DNS_MAX_GW 64
#define DNS_MAX_LISTEN 16

struct dns_gw {
	char name[32];
	int up;
	uint16_t slot;           /* the daemon's per-name counter slot */
	double lat, lon;
	int has4, has6;
	uint8_t a4[4], a6[16];
	ldns_rdf *rd4, *rd6;     /* prebuilt rdata */
};

/* One answer class: gateways in order of distance, tie groups marked. */
struct dns_class {
	uint8_t n;               /* gateways listed (enough to fill answers) */
	uint8_t gw[DNS_MAX_GW];
	uint8_t group[DNS_MAX_GW]; /* equal group number = equal distance */
};

enum dns_kind { DNS_APEX = 1, DNS_NSHOST, DNS_VM, DNS_ENT };

struct dns_name {
	char *key;               /* lowercase, no trailing dot */
	int kind;
	int ns;                  /* DNS_NSHOST: index in ns hosts */
};

struct dns_nshost {
	char name[256];
	int n4, n6;
	uint8_t a4[4][4], a6[4][16];
};

/* What the config file says (also what --check validates). */
struct dns_cfg {
	char zone[256];
	char soa_mname[256], soa_rname[256];
	uint32_t soa_refresh, soa_retry, soa_expire, soa_minimum, soa_ttl;
	uint32_t ttl;            /* answers' TTL */
	int answers;             /* N nearest */
	int udp_max;             /* our EDNS buffer size */
	char geoip4[256], geoip6[256];
	int nns;
	struct dns_nshost ns[8];
	int ngw;
	struct dns_gw gw[DNS_MAX_GW];
	int nvm;
	char **vm;               /* fqdn, lowercase, no trailing dot */
	int nov4, nov6;
	struct dns_override { uint8_t a[16]; int plen; uint32_t cc; double lat, lon; int has_ll; } ov4[256], ov6[256];
	/* daemon settings */
	int nlisten;
	char listen[DNS_MAX_LISTEN][64];
	char metrics[64];
	char pidfile[256];
	char cookie_secret_file[256];
	int threads;
	int rrl_rate, rrl_slip;
	uint32_t udp_coalesce_us; /* the longest wait after a small batch (0: off) */
	uint32_t udp_coalesce_batch; /* the batch a wait gathers (coalesce.h; 0, 1: off) */
	int udp_gso;             /* same-length answers to one client as one UDP GSO send */
	char xdp_interface[16];  /* AF_XDP answer path on this interface (empty: off) */
	int xdp_queues;          /* its queues 0..N-1, one socket and worker each */
	int xdp_skb;             /* attach in generic (skb) mode instead of native */
	/* the cluster store feed (feed.c): VM names and gateways by watch */
	char store[512];         /* nats://... (comma-separated), empty: file only */
	char store_pub[256];     /* the controller's Ed25519 public key (PEM) */
	char store_creds[256];   /* NATS credentials file, optional */
	char store_gens[256];    /* last gen applied per key, kept across restarts; optional */
	uint32_t store_wait;     /* seconds to wait at start for the store's snapshot */
	uint64_t hash;           /* of the file's content (and the store's state), for the serial */
};

struct dns_snap {
	uint64_t gen;
	uint32_t serial;
	struct dns_cfg cfg;
	ldns_rdf *origin;
	ldns_rr *soa;
	ldns_rr_list *nsrrs;
	struct dns_name *names;
	size_t nnames;
	/* per (client family, answer family): ranges -> class index */
	struct geo_tab4 t4[2];    /* [0]: for A answers, [1]: for AAAA */
	struct geo_tab6 t6[2];
	struct dns_class *classes[2];
	size_t nclasses[2];
	uint64_t cookie_key[2];
};

/* Config: 0, or -1 with "file:line: reason" in err. */
int dns_cfg_load(const char *path, struct dns_cfg *c, char *err, size_t len);
void dns_cfg_free(struct dns_cfg *c);
/* A deep copy (the VM name list duplicated): 0 or -1 (out of memory). */
int dns_cfg_copy(struct dns_cfg *dst, const struct dns_cfg *src);
/* Appends a VM name (already checked, lowercase, no final dot). */
int dns_cfg_add_vm(struct dns_cfg *c, const char *name);
/* A VM name from elsewhere (the store): absolute, with or without the final
 * dot; out gets it lowercase without the dot.  -1 if it is not a valid name
 * strictly under c's zone. */
int dns_vm_name(const struct dns_cfg *c, const char *name, char *out, size_t len);
/* A location as the config writes it: a country code (its centre) or LAT,LON. */
int dns_parse_loc(const char *s, double *lat, double *lon);
/* Builds a snapshot from a config (takes ownership of c's allocations).
 * Geo base tables are cached across builds. */
struct dns_snap *dns_snap_build(struct dns_cfg *c, uint32_t prev_serial, uint64_t prev_hash,
				const uint64_t cookie_key[2], char *err, size_t len);
void dns_snap_free(struct dns_snap *s);

/* The query path. */
struct dns_query {
	const uint8_t *pkt;
	size_t len;
	int family;              /* AF_INET / AF_INET6: the resolver's address */
	uint8_t addr[16];
	int tcp;
	uint32_t now;            /* seconds, for cookies */
};

enum {
	DNS_F_ECS = 1,           /* an ECS option was used */
	DNS_F_COOKIE = 2,        /* a cookie was answered (answer depends on address and time) */
	DNS_F_COOKIE_OK = 4,     /* the client returned a valid server cookie */
	DNS_F_TC = 8,
	DNS_F_EDNS = 16,
};

/* Why a query got no answer at all (counted by the daemon). */
enum dns_drop { DNS_DROP_NONE, DNS_DROP_SHORT, DNS_DROP_RESPONSE, DNS_DROP_NOMEM };

struct dns_result {
	uint8_t *buf;            /* caller's buffer, at least 65535 bytes */
	size_t len;
	int qtype;               /* -1: no question parsed */
	int rcode;               /* full (extended) rcode */
	int flags;
	int drop;                /* enum dns_drop when len == 0 */
	int ngw;
	uint8_t gw[DNS_MAX_GW];  /* gateways answered */
};

/* Returns 0 with an answer in r->buf/r->len, or -1 (drop; r->drop says why). */
int dns_answer(const struct dns_snap *s, const struct dns_query *q, struct dns_result *r);
#endif
