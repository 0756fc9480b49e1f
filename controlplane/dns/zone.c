// SPDX-License-Identifier: Apache-2.0
/*
 * veil-dns: the config file and the zone snapshot built from it.  A snapshot
 * is immutable: the daemon builds a new one on every change and swaps it in
 * whole (see veil-dns.c).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dns.h"

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* "name" relative to the zone, "name." absolute, "@" the apex. */
static int fqdn(const struct dns_cfg *c, const char *in, char *out, size_t len)
{
	size_t n = strlen(in);
	if (!strcmp(in, "@"))
		n = (size_t)snprintf(out, len, "%s", c->zone);
	else if (n && in[n - 1] == '.')
		n = (size_t)snprintf(out, len, "%.*s", (int)(n - 1), in);
	else
		n = (size_t)snprintf(out, len, "%s.%s", in, c->zone);
	if (n >= len || n > 253)
		return -1;
	lower(out);
	/* labels: 1..63 of letters, digits, '-', '_' ; '*' only as the first */
	const char *p = out;
	int first = 1;
	while (*p) {
		const char *d = strchr(p, '.');
		size_t l = d ? (size_t)(d - p) : strlen(p);
		if (l == 0 || l > 63)
			return -1;
		if (l == 1 && *p == '*') {
			if (!first)
				return -1;
		} else {
			for (size_t i = 0; i < l; i++)
				if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '_')
					return -1;
		}
		first = 0;
		p += l + (d ? 1 : 0);
		if (d && !*p)
			return -1;
	}
	return 0;
}

static int in_zone(const struct dns_cfg *c, const char *name)
{
	size_t n = strlen(name), z = strlen(c->zone);
	return n == z ? !strcmp(name, c->zone) : n > z && name[n - z - 1] == '.' && !strcmp(name + n - z, c->zone);
}

static int parse_u32(const char *s, uint32_t *v)
{
	char *e;
	unsigned long x;
	errno = 0;
	x = strtoul(s, &e, 10);
	if (errno || e == s || *e || x > 0xffffffffUL || s[0] == '-')
		return -1;
	*v = (uint32_t)x;
	return 0;
}

static int parse_loc(const char *s, uint32_t *cc, double *lat, double *lon, int *has_ll)
{
	char *e;
	if (strlen(s) == 2 && isupper((unsigned char)s[0]) && isupper((unsigned char)s[1])) {
		*cc = geo_cc_id(s);
		*has_ll = 0;
		return geo_centroid(*cc, lat, lon);
	}
	*lat = strtod(s, &e);
	if (*e != ',' || *lat < -90 || *lat > 90)
		return -1;
	*lon = strtod(e + 1, &e);
	if (*e || *lon < -180 || *lon > 180)
		return -1;
	*cc = GEO_NONE;
	*has_ll = 1;
	return 0;
}

int dns_parse_loc(const char *s, double *lat, double *lon)
{
	uint32_t cc;
	int ll;
	return parse_loc(s, &cc, lat, lon, &ll);
}

int dns_vm_name(const struct dns_cfg *c, const char *name, char *out, size_t len)
{
	char abs[300];
	size_t n = strlen(name);
	if (!n || n > 253)
		return -1;
	snprintf(abs, sizeof(abs), "%s%s", name, name[n - 1] == '.' ? "" : ".");
	if (fqdn(c, abs, out, len) || !in_zone(c, out) || !strcmp(out, c->zone))
		return -1;
	return 0;
}

int dns_cfg_copy(struct dns_cfg *dst, const struct dns_cfg *src)
{
	*dst = *src;
	dst->vm = NULL;
	dst->nvm = 0;
	if (!src->nvm)
		return 0;
	size_t cap = 64; /* a power of two at least nvm: dns_cfg_add_vm grows at powers of two */
	while (cap < (size_t)src->nvm)
		cap *= 2;
	dst->vm = calloc(cap, sizeof(*dst->vm));
	if (!dst->vm)
		return -1;
	for (int i = 0; i < src->nvm; i++) {
		if (!(dst->vm[i] = strdup(src->vm[i]))) {
			dns_cfg_free(dst);
			return -1;
		}
		dst->nvm++;
	}
	return 0;
}

int dns_cfg_add_vm(struct dns_cfg *c, const char *name)
{
	if (!(c->nvm & (c->nvm - 1)) || !c->vm) { /* 0, 1, 2, 4, ...: grow */
		size_t cap = c->nvm ? (size_t)c->nvm * 2 : 64;
		char **nv = realloc(c->vm, cap * sizeof(*nv));
		if (!nv)
			return -1;
		c->vm = nv;
	}
	if (!(c->vm[c->nvm] = strdup(name)))
		return -1;
	c->nvm++;
	return 0;
}

void dns_cfg_free(struct dns_cfg *c)
{
	for (int i = 0; i < c->nvm; i++)
		free(c->vm[i]);
	free(c->vm);
	c->vm = NULL;
	c->nvm = 0;
}

int dns_cfg_load(const char *path, struct dns_cfg *c, char *err, size_t len)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	int ln = 0, vmcap = 0;
	uint64_t h = 1469598103934665603ULL;

	memset(c, 0, sizeof(*c));
	c->soa_refresh = 3600; c->soa_retry = 600; c->soa_expire = 86400; c->soa_minimum = 30;
	c->soa_ttl = 3600; c->ttl = 20; c->answers = 2; c->udp_max = 1232; c->threads = 1;
	c->rrl_rate = 0; c->rrl_slip = 2; c->store_wait = 5;
	c->udp_coalesce_us = 250; c->udp_coalesce_batch = 6; c->udp_gso = 1; c->xdp_queues = 1;
	snprintf(c->geoip4, sizeof(c->geoip4), "/usr/share/tor/geoip");
	snprintf(c->geoip6, sizeof(c->geoip6), "/usr/share/tor/geoip6");
	snprintf(c->metrics, sizeof(c->metrics), "127.0.0.1:9433");
	if (!f) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return -1;
	}
#define BAD(...) do { int o_ = snprintf(err, len, "%s:%d: ", path, ln); \
	snprintf(err + o_, len - (size_t)o_, __VA_ARGS__); goto fail; } while (0)
	while (fgets(line, sizeof(line), f)) {
		char *w[12], *p, *save = NULL;
		int n = 0;
		ln++;
		for (p = line; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
		if ((p = strchr(line, '#')))
			*p = 0;
		for (p = strtok_r(line, " \t\r\n", &save); p && n < 12; p = strtok_r(NULL, " \t\r\n", &save))
			w[n++] = p;
		if (!n)
			continue;
		if (p)
			BAD("too many words");
		const char *k = w[0];
		if (!strcmp(k, "zone") && n == 2) {
			if (c->zone[0])
				BAD("one zone per file");
			size_t zl = strlen(w[1]);
			if (zl && w[1][zl - 1] == '.')
				w[1][zl - 1] = 0;
			snprintf(c->zone, sizeof(c->zone), "%s", w[1]);
			lower(c->zone);
			char tmp[256];
			if (!c->zone[0] || fqdn(c, "@", tmp, sizeof(tmp)) || strchr(c->zone, '*'))
				BAD("bad zone name '%s'", w[1]);
			continue;
		}
		if (!c->zone[0] && (!strcmp(k, "soa") || !strcmp(k, "ns") || !strcmp(k, "vm")))
			BAD("'%s' before 'zone'", k);
		if (!strcmp(k, "soa") && n == 3) {
			if (fqdn(c, w[1], c->soa_mname, sizeof(c->soa_mname)) ||
			    fqdn(c, w[2], c->soa_rname, sizeof(c->soa_rname)))
				BAD("bad name in soa");
		} else if (!strcmp(k, "soa") && n == 7) {
			if (fqdn(c, w[1], c->soa_mname, sizeof(c->soa_mname)) ||
			    fqdn(c, w[2], c->soa_rname, sizeof(c->soa_rname)))
				BAD("bad name in soa");
			if (parse_u32(w[3], &c->soa_refresh) || parse_u32(w[4], &c->soa_retry) ||
			    parse_u32(w[5], &c->soa_expire) || parse_u32(w[6], &c->soa_minimum))
				BAD("soa timers must be numbers of seconds");
		} else if (!strcmp(k, "soa_ttl") && n == 2) {
			if (parse_u32(w[1], &c->soa_ttl))
				BAD("bad soa_ttl '%s'", w[1]);
		} else if (!strcmp(k, "ttl") && n == 2) {
			if (parse_u32(w[1], &c->ttl) || c->ttl > 86400)
				BAD("bad ttl '%s' (seconds, at most 86400)", w[1]);
		} else if (!strcmp(k, "answers") && n == 2) {
			uint32_t v;
			if (parse_u32(w[1], &v) || v < 1 || v > DNS_MAX_GW)
				BAD("answers must be 1..%d", DNS_MAX_GW);
			c->answers = (int)v;
		} else if (!strcmp(k, "udp_size") && n == 2) {
			uint32_t v;
			if (parse_u32(w[1], &v) || v < 512 || v > 4096)
				BAD("udp_size must be 512..4096");
			c->udp_max = (int)v;
		} else if (!strcmp(k, "threads") && n == 2) {
			uint32_t v;
			if (parse_u32(w[1], &v) || v < 1 || v > 64)
				BAD("threads must be 1..64");
			c->threads = (int)v;
		} else if (!strcmp(k, "rrl") && n == 3) {
			uint32_t a, b;
			if (parse_u32(w[1], &a) || parse_u32(w[2], &b) || b > 10)
				BAD("rrl RESPONSES_PER_S SLIP (0 = off; slip 0..10)");
			c->rrl_rate = (int)a;
			c->rrl_slip = (int)b;
		} else if (!strcmp(k, "geoip4") && n == 2) {
			snprintf(c->geoip4, sizeof(c->geoip4), "%s", w[1]);
		} else if (!strcmp(k, "geoip6") && n == 2) {
			snprintf(c->geoip6, sizeof(c->geoip6), "%s", w[1]);
		} else if (!strcmp(k, "metrics") && n == 2) {
			snprintf(c->metrics, sizeof(c->metrics), "%s", w[1]);
		} else if (!strcmp(k, "pidfile") && n == 2) {
			snprintf(c->pidfile, sizeof(c->pidfile), "%s", w[1]);
		} else if (!strcmp(k, "store") && n == 2) {
			if (strncmp(w[1], "nats://", 7) && strncmp(w[1], "tls://", 6))
				BAD("store: '%s' is not a nats:// or tls:// URL (several: comma-separated)", w[1]);
			snprintf(c->store, sizeof(c->store), "%s", w[1]);
		} else if (!strcmp(k, "store_pub") && n == 2) {
			snprintf(c->store_pub, sizeof(c->store_pub), "%s", w[1]);
		} else if (!strcmp(k, "store_creds") && n == 2) {
			snprintf(c->store_creds, sizeof(c->store_creds), "%s", w[1]);
		} else if (!strcmp(k, "store_gens") && n == 2) {
			snprintf(c->store_gens, sizeof(c->store_gens), "%s", w[1]);
		} else if (!strcmp(k, "store_wait") && n == 2) {
			if (parse_u32(w[1], &c->store_wait) || c->store_wait > 600)
				BAD("store_wait: seconds, 0..600");
		} else if (!strcmp(k, "udp_coalesce_us") && n == 2) {
			if (parse_u32(w[1], &c->udp_coalesce_us) || c->udp_coalesce_us > 10000)
				BAD("udp_coalesce_us: microseconds, 0..10000 (0: off)");
		} else if (!strcmp(k, "udp_coalesce_batch") && n == 2) {
			if (parse_u32(w[1], &c->udp_coalesce_batch) || c->udp_coalesce_batch > 64)
				BAD("udp_coalesce_batch: queries, 0..64 (0 or 1: no wait)");
		} else if (!strcmp(k, "udp_gso") && n == 2) {
			if (strcmp(w[1], "on") && strcmp(w[1], "off"))
				BAD("udp_gso: on or off");
			c->udp_gso = !strcmp(w[1], "on");
		} else if (!strcmp(k, "xdp_interface") && n == 2) {
			if (strlen(w[1]) >= sizeof(c->xdp_interface) || strpbrk(w[1], "/:"))
				BAD("xdp_interface: '%s' is not an interface name", w[1]);
			snprintf(c->xdp_interface, sizeof(c->xdp_interface), "%s", w[1]);
		} else if (!strcmp(k, "xdp_queues") && n == 2) {
			uint32_t v;
			if (parse_u32(w[1], &v) || v < 1 || v > 64)
				BAD("xdp_queues must be 1..64");
			c->xdp_queues = (int)v;
		} else if (!strcmp(k, "xdp_mode") && n == 2) {
			if (strcmp(w[1], "native") && strcmp(w[1], "skb"))
				BAD("xdp_mode: native or skb");
			c->xdp_skb = !strcmp(w[1], "skb");
		} else if (!strcmp(k, "cookie_secret_file") && n == 2) {
			snprintf(c->cookie_secret_file, sizeof(c->cookie_secret_file), "%s", w[1]);
		} else if (!strcmp(k, "listen") && n == 2) {
			uint8_t a[16];
			if (c->nlisten == DNS_MAX_LISTEN)
				BAD("at most %d listen lines", DNS_MAX_LISTEN);
			if (inet_pton(AF_INET, w[1], a) != 1 && inet_pton(AF_INET6, w[1], a) != 1)
				BAD("listen: '%s' is not an IPv4 or IPv6 address", w[1]);
			snprintf(c->listen[c->nlisten++], 64, "%s", w[1]);
		} else if (!strcmp(k, "ns") && n >= 2) {
			struct dns_nshost *h2 = NULL;
			char name[256];
			if (fqdn(c, w[1], name, sizeof(name)))
				BAD("bad name server name '%s'", w[1]);
			for (int i = 0; i < c->nns; i++)
				if (!strcmp(c->ns[i].name, name))
					h2 = &c->ns[i];
			if (!h2) {
				if (c->nns == 8)
					BAD("at most 8 name servers");
				h2 = &c->ns[c->nns++];
				snprintf(h2->name, sizeof(h2->name), "%s", name);
			}
			for (int i = 2; i < n; i++) {
				if (h2->n4 < 4 && inet_pton(AF_INET, w[i], h2->a4[h2->n4]) == 1)
					h2->n4++;
				else if (h2->n6 < 4 && inet_pton(AF_INET6, w[i], h2->a6[h2->n6]) == 1)
					h2->n6++;
				else
					BAD("ns: '%s' is not an address (at most 4 per family)", w[i]);
			}
			if (in_zone(c, name) && !h2->n4 && !h2->n6)
				BAD("ns %s is inside the zone and needs an address", name);
		} else if (!strcmp(k, "gateway") && n >= 5) {
			struct dns_gw *g;
			uint32_t cc;
			int ll;
			if (c->ngw == DNS_MAX_GW)
				BAD("at most %d gateways", DNS_MAX_GW);
			g = &c->gw[c->ngw];
			memset(g, 0, sizeof(*g));
			if (strlen(w[1]) >= sizeof(g->name) || strspn(w[1], "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(w[1]))
				BAD("gateway name '%s': lowercase letters, digits, '-', '_', at most 31", w[1]);
			for (int i = 0; i < c->ngw; i++)
				if (!strcmp(c->gw[i].name, w[1]))
					BAD("gateway '%s' twice", w[1]);
			snprintf(g->name, sizeof(g->name), "%s", w[1]);
			if (parse_loc(w[2], &cc, &g->lat, &g->lon, &ll))
				BAD("gateway location '%s': a country code with a known centre (DE) or LAT,LON", w[2]);
			if (!strcmp(w[3], "up"))
				g->up = 1;
			else if (strcmp(w[3], "down"))
				BAD("gateway health '%s': up or down", w[3]);
			for (int i = 4; i < n; i++) {
				if (!g->has4 && inet_pton(AF_INET, w[i], g->a4) == 1)
					g->has4 = 1;
				else if (!g->has6 && inet_pton(AF_INET6, w[i], g->a6) == 1)
					g->has6 = 1;
				else
					BAD("gateway address '%s': one IPv4 and/or one IPv6 address", w[i]);
			}
			c->ngw++;
		} else if (!strcmp(k, "vm") && n == 2) {
			char name[256];
			if (fqdn(c, w[1], name, sizeof(name)) || !in_zone(c, name) || !strcmp(name, c->zone))
				BAD("bad VM name '%s' (a name under the zone; '*.' first for a wildcard)", w[1]);
			if (c->nvm == vmcap) {
				vmcap = vmcap ? vmcap * 2 : 64;
				char **nv = realloc(c->vm, (size_t)vmcap * sizeof(*nv));
				if (!nv)
					BAD("out of memory");
				c->vm = nv;
			}
			c->vm[c->nvm] = strdup(name);
			if (!c->vm[c->nvm])
				BAD("out of memory");
			c->nvm++;
		} else if (!strcmp(k, "override") && n == 3) {
			char *sl = strchr(w[1], '/');
			struct dns_override o = { 0 };
			uint32_t pl;
			int v6;
			if (!sl)
				BAD("override PREFIX/LEN LOCATION");
			*sl = 0;
			v6 = strchr(w[1], ':') != NULL;
			if (inet_pton(v6 ? AF_INET6 : AF_INET, w[1], o.a) != 1 || parse_u32(sl + 1, &pl) || pl > (v6 ? 128u : 32u))
				BAD("override: bad prefix '%s/%s'", w[1], sl + 1);
			o.plen = (int)pl;
			if (parse_loc(w[2], &o.cc, &o.lat, &o.lon, &o.has_ll))
				BAD("override location '%s': a country code with a known centre or LAT,LON", w[2]);
			if ((v6 ? c->nov6 : c->nov4) == 256)
				BAD("at most 256 overrides per family");
			if (v6)
				c->ov6[c->nov6++] = o;
			else
				c->ov4[c->nov4++] = o;
		} else {
			BAD("unknown setting or wrong number of values: '%s'", k);
		}
	}
	fclose(f);
	f = NULL;
	ln = 0;
	if (!c->zone[0])
		BAD("no 'zone'");
	if (!c->nns)
		BAD("no 'ns' (at least one name server)");
	if (!c->soa_mname[0]) {
		snprintf(c->soa_mname, sizeof(c->soa_mname), "%s", c->ns[0].name);
		snprintf(c->soa_rname, sizeof(c->soa_rname), "hostmaster.%.240s", c->zone);
	}
	if (!c->ngw && !c->store[0])
		BAD("no 'gateway' (and no 'store' to feed them)");
	if (c->store[0] && !c->store_pub[0])
		BAD("'store' needs 'store_pub' (the controller's Ed25519 public key, PEM)");
	if (!c->nlisten)
		BAD("no 'listen' address");
	c->hash = h;
	return 0;
fail:
	if (f)
		fclose(f);
	dns_cfg_free(c);
	return -1;
#undef BAD
}

/* ---------- snapshot ---------- */

/* The parsed tor-geoipdb files, kept while their path and mtime stay. */
static struct {
	pthread_mutex_t lock;
	char p4[256], p6[256];
	time_t m4, m6;
	struct geo_tab4 t4;
	struct geo_tab6 t6;
} base = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int base_tables(const struct dns_cfg *c, struct geo_tab4 *t4, struct geo_tab6 *t6, char *err, size_t len)
{
	struct stat s4, s6;
	int rc = -1;

	pthread_mutex_lock(&base.lock);
	if (stat(c->geoip4, &s4) || stat(c->geoip6, &s6)) {
		snprintf(err, len, "geoip files %s, %s: %s (install tor-geoipdb)", c->geoip4, c->geoip6, strerror(errno));
		goto out;
	}
	if (strcmp(base.p4, c->geoip4) || base.m4 != s4.st_mtime) {
		struct geo_tab4 t;
		if (geo_load4(c->geoip4, &t, err, len))
			goto out;
		geo_free4(&base.t4);
		base.t4 = t;
		snprintf(base.p4, sizeof(base.p4), "%s", c->geoip4);
		base.m4 = s4.st_mtime;
	}
	if (strcmp(base.p6, c->geoip6) || base.m6 != s6.st_mtime) {
		struct geo_tab6 t;
		if (geo_load6(c->geoip6, &t, err, len))
			goto out;
		geo_free6(&base.t6);
		base.t6 = t;
		snprintf(base.p6, sizeof(base.p6), "%s", c->geoip6);
		base.m6 = s6.st_mtime;
	}
	if (geo_copy4(t4, &base.t4) || geo_copy6(t6, &base.t6)) {
		snprintf(err, len, "out of memory");
		goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&base.lock);
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dns_name *)a)->key, ((const struct dns_name *)b)->key);
}

static int add_name(struct dns_snap *s, size_t *cap, const char *key, int kind, int ns)
{
	if (s->nnames == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		struct dns_name *n = realloc(s->names, *cap * sizeof(*n));
		if (!n)
			return -1;
		s->names = n;
	}
	s->names[s->nnames].key = strdup(key);
	if (!s->names[s->nnames].key)
		return -1;
	s->names[s->nnames].kind = kind;
	s->names[s->nnames].ns = ns;
	s->nnames++;
	return 0;
}

/* Location ids: 0..GEO_NCC-1 countries, then one per override with
 * coordinates. */
struct loc { double lat, lon; int known; };

struct gw_d { int gw; double km; };
static int gwd_cmp(const void *a, const void *b)
{
	const struct gw_d *x = a, *y = b;
	if (x->km < y->km - 0.5)
		return -1;
	if (x->km > y->km + 0.5)
		return 1;
	return x->gw - y->gw;
}

/* The class (ordered gateways with tie groups) for one location and family;
 * returns its index in the snapshot's class list (deduplicated). */
static int class_for(struct dns_snap *s, size_t *cap, int fam, const struct loc *l)
{
	const struct dns_cfg *c = &s->cfg;
	struct gw_d d[DNS_MAX_GW];
	struct dns_class k = { 0 };
	int n = 0, healthy = 0;

	for (int i = 0; i < c->ngw; i++)
		if ((fam ? c->gw[i].has6 : c->gw[i].has4) && c->gw[i].up)
			healthy++;
	for (int i = 0; i < c->ngw; i++) {
		const struct dns_gw *g = &c->gw[i];
		if (!(fam ? g->has6 : g->has4) || (healthy && !g->up))
			continue; /* all down: answer with all (fail open) */
		d[n].gw = i;
		d[n].km = l->known ? geo_km(l->lat, l->lon, g->lat, g->lon) : 0;
		n++;
	}
	if (l->known)
		qsort(d, (size_t)n, sizeof(d[0]), gwd_cmp);
	int grp = 0;
	for (int i = 0; i < n; i++) {
		if (i) {
			int tie = l->known && d[i].km - d[i - 1].km < 1.0;
			if (!tie)
				grp = i;
			/* enough: the answer is full and this one starts a new group */
			if (!tie && i >= c->answers)
				break;
		}
		if (!l->known && i >= c->answers)
			break;
		k.gw[k.n] = (uint8_t)d[i].gw;
		k.group[k.n] = (uint8_t)grp;
		k.n++;
	}
	for (size_t i = 0; i < s->nclasses[fam]; i++) {
		const struct dns_class *x = &s->classes[fam][i];
		if (x->n == k.n && !memcmp(x->gw, k.gw, k.n) && !memcmp(x->group, k.group, k.n))
			return (int)i;
	}
	if (s->nclasses[fam] == cap[fam]) {
		cap[fam] = cap[fam] ? cap[fam] * 2 : 16;
		struct dns_class *nc = realloc(s->classes[fam], cap[fam] * sizeof(*nc));
		if (!nc)
			return -1;
		s->classes[fam] = nc;
	}
	s->classes[fam][s->nclasses[fam]] = k;
	return (int)s->nclasses[fam]++;
}

static void mask_range(const uint8_t *a, int plen, int bytes, uint8_t *lo, uint8_t *hi)
{
	for (int i = 0; i < bytes; i++) {
		int bits = plen - i * 8;
		uint8_t m = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
		lo[i] = a[i] & m;
		hi[i] = (uint8_t)(a[i] | ~m);
	}
}

static int ov_cmp(const void *a, const void *b)
{
	return ((const struct dns_override *)a)->plen - ((const struct dns_override *)b)->plen;
}

void dns_snap_free(struct dns_snap *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->cfg.ngw; i++) {
		ldns_rdf_deep_free(s->cfg.gw[i].rd4);
		ldns_rdf_deep_free(s->cfg.gw[i].rd6);
	}
	dns_cfg_free(&s->cfg);
	if (s->origin)
		ldns_rdf_deep_free(s->origin);
	if (s->soa)
		ldns_rr_free(s->soa);
	if (s->nsrrs)
		ldns_rr_list_deep_free(s->nsrrs);
	for (size_t i = 0; i < s->nnames; i++)
		free(s->names[i].key);
	free(s->names);
	for (int f = 0; f < 2; f++) {
		geo_free4(&s->t4[f]);
		geo_free6(&s->t6[f]);
		free(s->classes[f]);
	}
	free(s);
}

struct dns_snap *dns_snap_build(struct dns_cfg *c, uint32_t prev_serial, uint64_t prev_hash,
				const uint64_t key[2], char *err, size_t len)
{
	static uint64_t gens;
	struct dns_snap *s = calloc(1, sizeof(*s));
	struct geo_tab4 b4 = { 0 };
	struct geo_tab6 b6 = { 0 };
	uint32_t *map = NULL;
	struct loc *locs = NULL;
	size_t ncap = 0, ccap[2] = { 0, 0 };
	char buf[1024];

	if (!s) {
		snprintf(err, len, "out of memory");
		dns_cfg_free(c);
		return NULL;
	}
	s->cfg = *c;
	memset(c, 0, sizeof(*c));
	c = &s->cfg;
	s->gen = __atomic_add_fetch(&gens, 1, __ATOMIC_RELAXED);
	s->cookie_key[0] = key[0];
	s->cookie_key[1] = key[1];
	/* the serial moves on every change, never backwards: time-based when
	 * possible (survives restarts), else one more */
	if (prev_serial && prev_hash == c->hash)
		s->serial = prev_serial;
	else {
		uint32_t t = (uint32_t)time(NULL);
		s->serial = (int32_t)(t - prev_serial) > 0 ? t : prev_serial + 1;
	}

	/* records that never change with the client */
	s->origin = ldns_dname_new_frm_str(c->zone);
	snprintf(buf, sizeof(buf), "%s. %u IN SOA %s. %s. %u %u %u %u %u", c->zone, c->soa_ttl, c->soa_mname,
		 c->soa_rname, s->serial, c->soa_refresh, c->soa_retry, c->soa_expire, c->soa_minimum);
	if (!s->origin || ldns_rr_new_frm_str(&s->soa, buf, 0, NULL, NULL) != LDNS_STATUS_OK) {
		snprintf(err, len, "cannot build the SOA record");
		goto fail;
	}
	s->nsrrs = ldns_rr_list_new();
	for (int i = 0; i < c->nns; i++) {
		ldns_rr *rr = NULL;
		snprintf(buf, sizeof(buf), "%s. %u IN NS %s.", c->zone, c->soa_ttl, c->ns[i].name);
		if (ldns_rr_new_frm_str(&rr, buf, 0, NULL, NULL) != LDNS_STATUS_OK) {
			snprintf(err, len, "cannot build the NS record for %s", c->ns[i].name);
			goto fail;
		}
		ldns_rr_list_push_rr(s->nsrrs, rr);
	}
	for (int i = 0; i < c->ngw; i++) {
		struct dns_gw *g = &c->gw[i];
		if (g->has4)
			g->rd4 = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, g->a4);
		if (g->has6)
			g->rd6 = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, g->a6);
	}

	/* names: apex, name servers in the zone, VMs, and every empty
	 * non-terminal between them and the apex */
	if (add_name(s, &ncap, c->zone, DNS_APEX, 0))
		goto oom;
	for (int i = 0; i < c->nns; i++)
		if (in_zone(c, c->ns[i].name) && strcmp(c->ns[i].name, c->zone) && add_name(s, &ncap, c->ns[i].name, DNS_NSHOST, i))
			goto oom;
	for (int i = 0; i < c->nvm; i++)
		if (add_name(s, &ncap, c->vm[i], DNS_VM, 0))
			goto oom;
	size_t nreal = s->nnames;
	for (size_t i = 1; i < nreal; i++) {
		const char *p = s->names[i].key;
		size_t zl = strlen(c->zone);
		while ((p = strchr(p, '.')) && strlen(++p) > zl)
			if (add_name(s, &ncap, p, DNS_ENT, 0))
				goto oom;
	}
	qsort(s->names, s->nnames, sizeof(*s->names), name_cmp);
	/* duplicates: a real name wins over an ENT; two real ones are an error */
	size_t o = 0;
	for (size_t i = 0; i < s->nnames; i++) {
		if (o && !strcmp(s->names[o - 1].key, s->names[i].key)) {
			struct dns_name *a = &s->names[o - 1], *b = &s->names[i];
			if (a->kind != DNS_ENT && b->kind != DNS_ENT) {
				snprintf(err, len, "name %s defined twice", b->key);
				for (size_t j = i; j < s->nnames; j++)
					free(s->names[j].key);
				s->nnames = o;
				goto fail;
			}
			if (a->kind == DNS_ENT) {
				free(a->key);
				*a = *b;
			} else {
				free(b->key);
			}
			continue;
		}
		s->names[o++] = s->names[i];
	}
	s->nnames = o;

	/* where clients are: base tables, overrides painted over (shortest
	 * prefix first, so longer ones win) */
	if (base_tables(c, &b4, &b6, err, len))
		goto fail;
	size_t nloc = GEO_NCC + (size_t)c->nov4 + (size_t)c->nov6;
	locs = calloc(nloc, sizeof(*locs));
	map = calloc(nloc, sizeof(*map));
	if (!locs || !map)
		goto oom;
	for (uint32_t i = 0; i < GEO_NCC; i++)
		locs[i].known = !geo_centroid(i, &locs[i].lat, &locs[i].lon);
	qsort(c->ov4, (size_t)c->nov4, sizeof(c->ov4[0]), ov_cmp);
	qsort(c->ov6, (size_t)c->nov6, sizeof(c->ov6[0]), ov_cmp);
	for (int i = 0; i < c->nov4; i++) {
		struct dns_override *v = &c->ov4[i];
		uint8_t lo[4], hi[4];
		uint32_t id = v->has_ll ? GEO_NCC + (uint32_t)i : v->cc;
		if (v->has_ll)
			locs[id] = (struct loc){ v->lat, v->lon, 1 };
		mask_range(v->a, v->plen, 4, lo, hi);
		if (geo_paint4(&b4, ntohl(*(uint32_t *)lo), ntohl(*(uint32_t *)hi), id))
			goto oom;
	}
	for (int i = 0; i < c->nov6; i++) {
		struct dns_override *v = &c->ov6[i];
		uint8_t lo[16], hi[16];
		uint32_t id = v->has_ll ? GEO_NCC + (uint32_t)c->nov4 + (uint32_t)i : v->cc;
		if (v->has_ll)
			locs[id] = (struct loc){ v->lat, v->lon, 1 };
		mask_range(v->a, v->plen, 16, lo, hi);
		if (geo_paint6(&b6, geo_u128_from(lo), geo_u128_from(hi), id))
			goto oom;
	}
	/* each location's answer class, per answer family; then the ranges
	 * relabelled with classes and merged, once per answer family */
	struct loc unknown = { 0, 0, 0 };
	for (int fam = 0; fam < 2; fam++) {
		int none = class_for(s, ccap, fam, &unknown);
		if (none < 0)
			goto oom;
		for (size_t i = 0; i < nloc; i++) {
			int k = locs[i].known ? class_for(s, ccap, fam, &locs[i]) : none;
			if (k < 0)
				goto oom;
			map[i] = (uint32_t)k;
		}
		if (geo_copy4(&s->t4[fam], &b4) || geo_copy6(&s->t6[fam], &b6) ||
		    geo_relabel4(&s->t4[fam], map, nloc, (uint32_t)none) ||
		    geo_relabel6(&s->t6[fam], map, nloc, (uint32_t)none))
			goto oom;
	}
	geo_free4(&b4);
	geo_free6(&b6);
	free(map);
	free(locs);
	return s;
oom:
	snprintf(err, len, "out of memory");
fail:
	geo_free4(&b4);
	geo_free6(&b6);
	free(map);
	free(locs);
	dns_snap_free(s);
	return NULL;
}
