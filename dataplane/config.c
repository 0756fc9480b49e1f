// SPDX-License-Identifier: Apache-2.0
/* Config files, addresses, the cookie secret, and keeping maps in step. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "veil.h"
#include "veil/cookie.h"   /* the cookie window and rotation bounds */
#include "veil/route.h"

/* ---------- addresses ---------- */

int vm_addr_parse(const char *s, __u8 out[16])
{
	struct in_addr a4;

	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, &a4) == 1) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		return VM_AF_INET;
	}
	if (inet_pton(AF_INET6, s, out) == 1)
		return VM_AF_INET6;
	return 0;
}

/* An address written as IPv6 that is IPv4-mapped (::ffff:a.b.c.d): no
 * packet on the wire carries one (RFC 4291 2.5.5.2), and inside the data
 * plane it is an IPv4 address's form, so a config naming one as a VIP, a
 * node or an underlay means the IPv4 address and is told so. */
static int v4mapped6(int fam, const __u8 a[16])
{
	return fam == VM_AF_INET6 && vm_addr_is_v4(a);
}
#define MAPPED_ERR "'%s' is an IPv4-mapped IPv6 address, which no packet carries: write the IPv4 address"

const char *vm_addr_str(const __u8 a[16], char *buf, size_t len)
{
	if (vm_addr_is_v4(a))
		inet_ntop(AF_INET, a + 12, buf, len);
	else
		inet_ntop(AF_INET6, a, buf, len);
	return buf;
}

int vm_mac_parse(const char *s, __u8 out[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (b[i] > 255)
			return -1;
		out[i] = b[i];
	}
	return 0;
}

int vm_if_mac(const char *ifname, __u8 out[6])
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
	close(fd);
	if (rc)
		return -errno;
	memcpy(out, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

/* ADDR:PORT (IPv6 in brackets) or "off"; 0 when well formed. */
int vm_hostport_ok(const char *s)
{
	char host[64];
	__u8 a[16];
	unsigned long port;
	const char *c;

	if (!strcmp(s, "off"))
		return 0;
	c = strrchr(s, ':');
	if (!c || c == s || (size_t)(c - s) >= sizeof(host))
		return -1;
	if (s[0] == '[') {
		if (c[-1] != ']')
			return -1;
		snprintf(host, sizeof(host), "%.*s", (int)(c - s - 2), s + 1);
	} else {
		snprintf(host, sizeof(host), "%.*s", (int)(c - s), s);
	}
	port = strtoul(c + 1, NULL, 10);
	return vm_addr_parse(host, a) && port > 0 && port < 65536 ? 0 : -1;
}

/* ---------- config parsing ---------- */

int vm_route_name_ok(const char *name)
{
	size_t n = strlen(name), label = 0;
	const char *p = name;

	if (n == 0 || n > 253)
		return 0;
	if (p[0] == '*') {
		if (p[1] != '.' || !p[2])
			return 0;
		p += 2;
	}
	for (; *p; p++) {
		if (*p == '.') {
			if (!label)
				return 0;
			label = 0;
		} else if (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

struct cfg_reader {
	const char *path;
	int line;
	char *err;
	size_t errlen;
};

static int cfg_err(struct cfg_reader *r, const char *fmt, ...)
{
	va_list ap;
	int n = r->line ? snprintf(r->err, r->errlen, "%s:%d: ", r->path, r->line)
			: snprintf(r->err, r->errlen, "%s: ", r->path);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < r->errlen)
		vsnprintf(r->err + n, r->errlen - n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Splits a line into at most max words; '#' starts a comment. */
static int split(char *line, char **w, int max)
{
	int n = 0;
	char *save, *t;

	char *hash = strchr(line, '#');
	if (hash)
		*hash = 0;
	for (t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == max)
			return max + 1;
		w[n++] = t;
	}
	return n;
}

static int parse_u32(const char *s, __u32 lo, __u32 hi, __u32 *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

#define NEED(nargs, usage) do { if (n != (nargs)) return cfg_err(r, "'%s' takes: %s", w[0], usage); } while (0)
#define ONE_NAME(dst) do { NEED(2, "a name"); if (strlen(w[1]) >= sizeof(dst)) return cfg_err(r, "'%s' is too long", w[1]); strcpy(dst, w[1]); } while (0)

/* Settings both daemons take, pointing into their own config structs. */
struct common_cfg {
	char *pin_root, *mesh_if, *metrics, *control;
	size_t pin_len, if_len, metrics_len, control_len;
	__u8 *underlay4, *underlay6, *has4, *has6;
	__u16 *mss4, *mss6;
};

static int set_name(struct cfg_reader *r, char **w, int n, char *dst, size_t len)
{
	if (n != 2)
		return cfg_err(r, "'%s' takes: a name", w[0]);
	if (strlen(w[1]) >= len)
		return cfg_err(r, "'%s' is too long", w[1]);
	strcpy(dst, w[1]);
	return 0;
}

/* 1: not a shared setting; 0: taken; -1: an error (in r). */
static int common_line(struct cfg_reader *r, const struct common_cfg *c, char **w, int n)
{
	__u8 a[16];
	__u32 v;
	int fam;

	if (!strcmp(w[0], "pin_root"))
		return set_name(r, w, n, c->pin_root, c->pin_len);
	if (!strcmp(w[0], "mesh_interface"))
		return set_name(r, w, n, c->mesh_if, c->if_len);
	if (!strcmp(w[0], "control_socket"))
		return set_name(r, w, n, c->control, c->control_len);
	if (!strcmp(w[0], "metrics")) {
		if (set_name(r, w, n, c->metrics, c->metrics_len))
			return -1;
		if (vm_hostport_ok(c->metrics))
			return cfg_err(r, "metrics takes ADDR:PORT or 'off', not '%s'", w[1]);
		return 0;
	}
	if (!strcmp(w[0], "underlay4") || !strcmp(w[0], "underlay6")) {
		NEED(2, "an address");
		fam = vm_addr_parse(w[1], a);
		if (v4mapped6(fam, a))
			return cfg_err(r, MAPPED_ERR, w[1]);
		if (fam != (w[0][8] == '4' ? VM_AF_INET : VM_AF_INET6))
			return cfg_err(r, "'%s' is not an IPv%c address", w[1], w[0][8]);
		memcpy(fam == VM_AF_INET ? c->underlay4 : c->underlay6, a, 16);
		*(fam == VM_AF_INET ? c->has4 : c->has6) = 1;
		return 0;
	}
	if (!strcmp(w[0], "mss4") || !strcmp(w[0], "mss6")) {
		NEED(2, "a number from 536 to 9000");
		if (parse_u32(w[1], 536, 9000, &v))
			return cfg_err(r, "bad MSS '%s' (536..9000)", w[1]);
		*(w[0][3] == '4' ? c->mss4 : c->mss6) = v;
		return 0;
	}
	return 1;
}

#define COMMON_CFG(c) { .pin_root = (c)->pin_root, .pin_len = sizeof((c)->pin_root),                 \
	.mesh_if = (c)->mesh_if, .if_len = sizeof((c)->mesh_if), .metrics = (c)->metrics,                  \
	.metrics_len = sizeof((c)->metrics), .control = (c)->control, .control_len = sizeof((c)->control), \
	.underlay4 = (c)->dp.underlay4, .underlay6 = (c)->dp.underlay6, .has4 = &(c)->dp.has_underlay4,     \
	.has6 = &(c)->dp.has_underlay6, .mss4 = &(c)->dp.mss4, .mss6 = &(c)->dp.mss6 }

static int gw_line(struct cfg_reader *r, struct vm_gw_cfg *c, char **w, int n)
{
	const struct common_cfg cc = COMMON_CFG(c);
	int rc = common_line(r, &cc, w, n), fam;
	__u32 v;

	if (rc == 0 && !strcmp(w[0], "mesh_interface"))
		c->mesh_if_line = r->line;
	if (rc <= 0)
		return rc;
	if (!strcmp(w[0], "client_interface")) {
		ONE_NAME(c->client_if);
		c->client_if_line = r->line;
	} else if (!strcmp(w[0], "cookie_secret_file")) {
		ONE_NAME(c->secret_file);
		c->secret_line = r->line;
	} else if (!strcmp(w[0], "store")) {
		/* the cluster store's routes (controlplane/gw_store.c) */
		ONE_NAME(c->store_urls);
		if (strncmp(w[1], "nats://", 7) && strncmp(w[1], "tls://", 6))
			return cfg_err(r, "'store' takes nats://HOST:PORT[,nats://...], not '%s'", w[1]);
	} else if (!strcmp(w[0], "store_pub")) {
		ONE_NAME(c->store_pub);
		c->store_pub_line = r->line;
	} else if (!strcmp(w[0], "store_gens")) {
		/* the last gen applied per route, kept across restarts (replays) */
		ONE_NAME(c->store_gens);
	} else if (!strcmp(w[0], "wscale")) {
		NEED(2, "a number from 0 to 14");
		if (parse_u32(w[1], 0, 14, &v))
			return cfg_err(r, "bad window scale '%s' (0..14)", w[1]);
		c->dp.wscale = v;
	} else if (!strcmp(w[0], "cookie_window_s")) {
		NEED(2, "seconds (8..600)");
		if (parse_u32(w[1], VM_COOKIE_WINDOW_S_MIN, VM_COOKIE_WINDOW_S_MAX, &v))
			return cfg_err(r, "bad cookie window '%s' (%u..%u)", w[1], VM_COOKIE_WINDOW_S_MIN,
				       VM_COOKIE_WINDOW_S_MAX);
		c->dp.cookie_window_s = v;
	} else if (!strcmp(w[0], "cookie_rotate_s")) {
		NEED(2, "seconds (60..86400)");
		if (parse_u32(w[1], VM_COOKIE_ROTATE_S_MIN, VM_COOKIE_ROTATE_S_MAX, &v))
			return cfg_err(r, "bad rotation interval '%s' (%u..%u)", w[1], VM_COOKIE_ROTATE_S_MIN,
				       VM_COOKIE_ROTATE_S_MAX);
		c->rotate_s = v;
	} else if (!strcmp(w[0], "flows_max")) {
		NEED(2, "a number (1024..67108864)");
		if (parse_u32(w[1], 1024, 67108864, &v))
			return cfg_err(r, "bad flows_max '%s'", w[1]);
		c->flows_max = v;
	} else if (!strcmp(w[0], "hellos_max")) {
		NEED(2, "a power of two (64..16384)");
		if (parse_u32(w[1], 1u << VM_ASM_SLOTS_BITS_MIN, 1u << VM_ASM_SLOTS_BITS_MAX, &v) || (v & (v - 1)))
			return cfg_err(r, "bad hellos_max '%s' (a power of two, %u..%u)", w[1], 1u << VM_ASM_SLOTS_BITS_MIN,
				       1u << VM_ASM_SLOTS_BITS_MAX);
		c->hellos_max = v;
	} else if (!strcmp(w[0], "vip")) {
		struct vm_cfg_vip *vp;
		if (n != 3 && n != 4)
			return cfg_err(r, "'vip' takes: address port [rst|alert]");
		if (c->nvips == VM_CFG_MAX_VIPS)
			return cfg_err(r, "more than %d VIPs", VM_CFG_MAX_VIPS);
		vp = &c->vips[c->nvips];
		memset(vp, 0, sizeof(*vp));
		fam = vm_addr_parse(w[1], vp->key.addr);
		if (!fam)
			return cfg_err(r, "'%s' is not an IP address", w[1]);
		if (v4mapped6(fam, vp->key.addr))
			return cfg_err(r, MAPPED_ERR, w[1]);
		if (parse_u32(w[2], 1, 65535, &v))
			return cfg_err(r, "bad port '%s'", w[2]);
		vp->key.port_be = htons(v);
		vp->key.family = fam;
		vp->val.refuse = VM_REFUSE_ALERT;
		if (n == 4) {
			if (!strcmp(w[3], "rst"))
				vp->val.refuse = VM_REFUSE_RST;
			else if (strcmp(w[3], "alert"))
				return cfg_err(r, "refusal must be 'rst' or 'alert', not '%s'", w[3]);
		}
		for (int i = 0; i < c->nvips; i++)
			if (!memcmp(&c->vips[i].key, &vp->key, sizeof(vp->key)))
				return cfg_err(r, "VIP %s port %s given twice", w[1], w[2]);
		c->nvips++;
	} else if (!strcmp(w[0], "route")) {
		struct vm_cfg_route *rt;
		NEED(4, "name vm-id node-address");
		if (c->nroutes == VM_CFG_MAX_ROUTES)
			return cfg_err(r, "more than %d routes", VM_CFG_MAX_ROUTES);
		if (!vm_route_name_ok(w[1]))
			return cfg_err(r, "'%s' is not a lowercase host name or *.name", w[1]);
		rt = &c->routes[c->nroutes];
		memset(rt, 0, sizeof(*rt));
		strcpy(rt->key.name, w[1]);
		if (parse_u32(w[2], 1, 0xffffffffu, &rt->val.vm_id))
			return cfg_err(r, "bad VM id '%s'", w[2]);
		fam = vm_addr_parse(w[3], rt->val.node);
		if (!fam)
			return cfg_err(r, "'%s' is not an IP address", w[3]);
		if (v4mapped6(fam, rt->val.node))
			return cfg_err(r, MAPPED_ERR, w[3]);
		rt->val.node_family = fam;
		rt->line = r->line;
		for (int i = 0; i < c->nroutes; i++)
			if (!strcmp(c->routes[i].key.name, rt->key.name))
				return cfg_err(r, "route '%s' given twice", w[1]);
		c->nroutes++;
	} else {
		return cfg_err(r, "unknown setting '%s'", w[0]);
	}
	return 0;
}

static int read_lines(const char *path, char *err, size_t errlen, void *c,
		      int (*fn)(struct cfg_reader *, void *, char **, int))
{
	struct cfg_reader r = { .path = path, .err = err, .errlen = errlen };
	char line[1024], *w[8];
	FILE *f = fopen(path, "re");
	int rc = 0;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* fopen() takes a directory and fgets() then reads nothing: say so */
	struct stat sb;
	if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: %s, not a config file", path,
			 S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file");
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		r.line++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = cfg_err(&r, "line longer than %zu bytes", sizeof(line) - 2);
			break;
		}
		int n = split(line, w, 6);
		if (n == 0)
			continue;
		if (n > 6) {
			rc = cfg_err(&r, "too many words");
			break;
		}
		if ((rc = fn(&r, c, w, n)))
			break;
	}
	fclose(f);
	return rc;
}

static int gw_line_cb(struct cfg_reader *r, void *c, char **w, int n)
{
	return gw_line(r, c, w, n);
}

int vm_gw_cfg_load(const char *path, struct vm_gw_cfg *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->routes = calloc(VM_CFG_MAX_ROUTES, sizeof(*c->routes));
	if (!c->routes)
		return -1;
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->pin_root, sizeof(c->pin_root), "%s", VM_PIN_ROOT_DEFAULT);
	snprintf(c->metrics, sizeof(c->metrics), "127.0.0.1:9431");
	snprintf(c->control, sizeof(c->control), "/run/veilmesh/veil-gw.sock");
	c->rotate_s = 3600;
	c->flows_max = 262144;
	c->hellos_max = VM_ASM_SLOTS;
	c->dp.mss4 = 1360;
	c->dp.mss6 = 1340;
	c->dp.wscale = 7;
	c->dp.cookie_window_s = 64;
	if (read_lines(path, err, errlen, c, gw_line_cb))
		goto fail;
	struct cfg_reader r = { .path = path, .err = err, .errlen = errlen };
	if (!c->client_if[0])
		return cfg_err(&r, "client_interface is not set"), vm_gw_cfg_free(c), -1;
	if (!c->mesh_if[0])
		c->mesh_if[0] = 0, snprintf(c->mesh_if, sizeof(c->mesh_if), "%s", c->client_if);
	if (!c->secret_file[0])
		return cfg_err(&r, "cookie_secret_file is not set"), vm_gw_cfg_free(c), -1;
	if (!c->dp.has_underlay4 && !c->dp.has_underlay6)
		return cfg_err(&r, "no underlay4 or underlay6 address"), vm_gw_cfg_free(c), -1;
	if (c->store_urls[0] && !c->store_pub[0])
		return cfg_err(&r, "'store' needs 'store_pub FILE' (the controller's public key)"), vm_gw_cfg_free(c), -1;
	for (int i = 0; i < c->nroutes; i++) {
		int fam = c->routes[i].val.node_family;
		r.line = c->routes[i].line;
		if ((fam == VM_AF_INET && !c->dp.has_underlay4) || (fam == VM_AF_INET6 && !c->dp.has_underlay6))
			return cfg_err(&r, "route '%s' needs an underlay%d address", c->routes[i].key.name,
				       fam), vm_gw_cfg_free(c), -1;
	}
	return 0;
fail:
	vm_gw_cfg_free(c);
	return -1;
}

void vm_gw_cfg_free(struct vm_gw_cfg *c)
{
	free(c->routes);
	c->routes = NULL;
}

static int node_line(struct cfg_reader *r, void *cv, char **w, int n)
{
	struct vm_node_cfg *c = cv;
	__u8 a[16];
	__u32 v;
	int fam;

	const struct common_cfg cc = COMMON_CFG(c);
	int rc = common_line(r, &cc, w, n);

	if (rc <= 0)
		return rc;
	if (!strcmp(w[0], "conns_max")) {
		NEED(2, "a number (1024..67108864)");
		if (parse_u32(w[1], 1024, 67108864, &v))
			return cfg_err(r, "bad conns_max '%s'", w[1]);
		c->conns_max = v;
	} else if (!strcmp(w[0], "vm")) {
		struct vm_cfg_vm *vm;
		if (n != 5 && n != 6)
			return cfg_err(r, "'vm' takes: id host-interface vm-mac address [address]");
		if (c->nvms == VM_CFG_MAX_VMS)
			return cfg_err(r, "more than %d VMs", VM_CFG_MAX_VMS);
		vm = &c->vms[c->nvms];
		memset(vm, 0, sizeof(*vm));
		if (parse_u32(w[1], 1, 0xffffffffu, &vm->id))
			return cfg_err(r, "bad VM id '%s'", w[1]);
		if (strlen(w[2]) >= sizeof(vm->ifname))
			return cfg_err(r, "interface name '%s' is too long", w[2]);
		strcpy(vm->ifname, w[2]);
		if (vm_mac_parse(w[3], vm->val.vm_mac))
			return cfg_err(r, "'%s' is not a MAC address", w[3]);
		for (int i = 4; i < n; i++) {
			fam = vm_addr_parse(w[i], a);
			if (v4mapped6(fam, a))
				return cfg_err(r, MAPPED_ERR, w[i]);
			if (fam == VM_AF_INET && !vm->val.has4) {
				memcpy(vm->val.addr4, a, 16);
				vm->val.has4 = 1;
			} else if (fam == VM_AF_INET6 && !vm->val.has6) {
				memcpy(vm->val.addr6, a, 16);
				vm->val.has6 = 1;
			} else {
				return cfg_err(r, "'%s' is not a (new) IPv4 or IPv6 address", w[i]);
			}
		}
		for (int i = 0; i < c->nvms; i++)
			if (c->vms[i].id == vm->id)
				return cfg_err(r, "VM id %u given twice", vm->id);
		c->nvms++;
	} else {
		return cfg_err(r, "unknown setting '%s'", w[0]);
	}
	return 0;
}

int vm_node_cfg_load(const char *path, struct vm_node_cfg *c, char *err, size_t errlen)
{
	struct cfg_reader r = { .path = path, .err = err, .errlen = errlen };

	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->pin_root, sizeof(c->pin_root), "%s", VM_PIN_ROOT_DEFAULT);
	c->dp.mss4 = 1360;
	c->dp.mss6 = 1340;
	c->conns_max = 262144;
	snprintf(c->metrics, sizeof(c->metrics), "127.0.0.1:9432");
	snprintf(c->control, sizeof(c->control), "/run/veilmesh/veil-node.sock");
	if (read_lines(path, err, errlen, c, node_line))
		return -1;
	if (!c->mesh_if[0])
		return cfg_err(&r, "mesh_interface is not set");
	if (!c->dp.has_underlay4 && !c->dp.has_underlay6)
		return cfg_err(&r, "no underlay4 or underlay6 address");
	return 0;
}

/* ---------- cookie secret ---------- */

int vm_secret_read(const char *path, __u8 *key, size_t *len, char *err, size_t errlen)
{
	char buf[256];
	size_t n = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	size_t got = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[got] = 0;
	for (size_t i = 0; i < got && n < 64; i++) {
		if (isspace((unsigned char)buf[i]))
			continue;
		if (!isxdigit((unsigned char)buf[i]) || i + 1 >= got || !isxdigit((unsigned char)buf[i + 1])) {
			snprintf(err, errlen, "%s: not a hex string", path);
			OPENSSL_cleanse(buf, sizeof(buf));
			return -1;
		}
		char h[3] = { buf[i], buf[i + 1], 0 };
		key[n++] = (__u8)strtoul(h, NULL, 16);
		i++;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (n < 16) {
		snprintf(err, errlen, "%s: the secret must be at least 16 bytes (32 hex digits)", path);
		OPENSSL_cleanse(key, n);
		return -1;
	}
	*len = n;
	return 0;
}

int vm_secret_check(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	__u8 key[64];
	size_t len;

	if (stat(path, &sb)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	/* the fleet's master key: anyone who reads it can forge cookies */
	if (sb.st_mode & 077) {
		snprintf(err, errlen, "%s: %s (mode %04o): the secret must be its owner's alone (chmod 600)", path,
			 sb.st_mode & 004 ? "readable by everyone" : sb.st_mode & 040 ? "readable by its group"
			 : "open to its group or others", (unsigned int)(sb.st_mode & 07777));
		return -1;
	}
	if (vm_secret_read(path, key, &len, err, errlen))
		return -1;
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

int vm_gw_cfg_check_host(const struct vm_gw_cfg *c, bool ifaces, char *err, size_t errlen)
{
	char why[400];

	if (vm_secret_check(c->secret_file, why, sizeof(why))) {
		snprintf(err, errlen, "%s:%d: cookie_secret_file %s", c->path, c->secret_line, why);
		return -1;
	}
	if (!ifaces)
		return 0;
	const struct { const char *name; int line; const char *what; } ifs[2] = {
		{ c->client_if, c->client_if_line, "client_interface" },
		{ c->mesh_if, c->mesh_if_line ? c->mesh_if_line : c->client_if_line, "mesh_interface" },
	};
	for (int i = 0; i < 2; i++)
		if (!if_nametoindex(ifs[i].name)) {
			snprintf(err, errlen, "%s:%d: %s '%s' does not exist (in this network namespace)", c->path,
				 ifs[i].line, ifs[i].what, ifs[i].name);
			return -1;
		}
	return 0;
}

/* HMAC of the master under one 16-byte label and the epoch (big-endian):
 * its first n bytes into out. */
static void derive_label(const __u8 *master, size_t len, const EVP_MD *md, const char label[16], __u64 epoch,
			 void *out, size_t n)
{
	__u8 msg[24], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = sizeof(mac);

	memcpy(msg, label, 16);
	for (int i = 0; i < 8; i++)
		msg[16 + i] = (epoch >> (56 - 8 * i)) & 0xff;
	HMAC(md, master, (int)len, msg, sizeof(msg), mac, &maclen);
	memcpy(out, mac, n);
	OPENSSL_cleanse(mac, sizeof(mac));
}

/* One epoch's keys (docs/wire-formats.md): the IPv4 form's SipHash key is
 * HMAC-SHA256(master, "veilmesh-cookie-" epoch)'s first 16 bytes, as before
 * the IPv6 form had keys of its own, its lowest bit replaced by the epoch's
 * parity (the key's selector bit, vm_cookie_kbit: the current and previous
 * keys differ in it); the IPv6 form's SipHash key and NH key are the first
 * 48 bytes of HMAC-SHA512(master, "veilmesh-cookie6" epoch). */
static void derive_epoch(const __u8 *master, size_t len, __u64 epoch, struct vm_cookie_key *out)
{
	__u8 k6[sizeof(out->sip6) + sizeof(out->nh6)];

	derive_label(master, len, EVP_sha256(), "veilmesh-cookie-", epoch, out->sip, sizeof(out->sip));
	out->sip[0] = (out->sip[0] & ~1ULL) | (epoch & 1);
	derive_label(master, len, EVP_sha512(), "veilmesh-cookie6", epoch, k6, sizeof(k6));
	memcpy(out->sip6, k6, sizeof(out->sip6));
	memcpy(out->nh6, k6 + sizeof(out->sip6), sizeof(out->nh6));
	OPENSSL_cleanse(k6, sizeof(k6));
}

void vm_secret_derive(const __u8 *master, size_t len, __u64 tai_s, __u32 rotate_s,
		      struct cookie_secret *out)
{
	__u64 epoch = tai_s / (rotate_s ? rotate_s : 3600);

	memset(out, 0, sizeof(*out));
	derive_epoch(master, len, epoch, &out->cur);
	derive_epoch(master, len, epoch - 1, &out->prev);
	out->epoch = epoch;
	out->has_prev = 1;
	out->rotate_s = rotate_s ? rotate_s : 3600;
}

__u64 vm_tai_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_TAI, &ts);
	return ts.tv_sec;
}

/* ---------- keeping maps in step ---------- */

/* Writes want[] into the map and deletes keys not in it; counts changes.
 * O(n log n): want's keys sorted once and searched; keys to delete are
 * collected during one walk and deleted after it (restarting the walk after
 * each delete made a large map quadratic, in the kernel's bucket scan). */
static int cmp_key(const void *a, const void *b, void *ksz)
{
	return memcmp(*(const __u8 *const *)a, *(const __u8 *const *)b, *(size_t *)ksz);
}

static int key_wanted(const __u8 **idx, int n, const __u8 *k, size_t ksz)
{
	int lo = 0, hi = n - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2, c = memcmp(idx[mid], k, ksz);
		if (!c)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return 0;
}

static int sync_map(int fd, const void *want, int n, size_t ksz, size_t vsz, size_t stride,
		    int *changes)
{
	__u8 key[VM_NAME_MAX + 64], next[VM_NAME_MAX + 64], cur[256];
	int rc = 0;
	void *prev = NULL;
	const __u8 **idx = calloc((size_t)n + 1, sizeof(*idx));
	__u8 *gone = NULL;
	size_t ngone = 0, cap = 0;

	if (!idx)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		idx[i] = (const __u8 *)want + (size_t)i * stride;
	qsort_r(idx, (size_t)n, sizeof(*idx), cmp_key, &ksz);
	/* what is not wanted: found in one walk, deleted after it */
	while (!bpf_map_get_next_key(fd, prev, next)) {
		if (!key_wanted(idx, n, next, ksz)) {
			if (ngone == cap) {
				size_t nc = cap ? 2 * cap : 64;
				__u8 *g = realloc(gone, nc * ksz);
				if (!g) {
					rc = -ENOMEM;
					break;
				}
				gone = g;
				cap = nc;
			}
			memcpy(gone + ngone++ * ksz, next, ksz);
		}
		memcpy(key, next, ksz);
		prev = key;
	}
	for (size_t i = 0; i < ngone; i++)
		if (bpf_map_delete_elem(fd, gone + i * ksz) == 0)
			(*changes)++;
	free(gone);
	free(idx);
	for (int i = 0; i < n; i++) {
		const __u8 *k = (const __u8 *)want + i * stride;
		const __u8 *v = k + ksz;
		if (!bpf_map_lookup_elem(fd, k, cur) && !memcmp(cur, v, vsz))
			continue;
		if (bpf_map_update_elem(fd, k, v, BPF_ANY))
			rc = -errno;
		else
			(*changes)++;
	}
	return rc;
}

/* ---------- the routes map ---------- */

__u64 vm_route_hash(const char *name)
{
	char buf[VM_NAME_MAX] = { 0 };
	size_t n = strnlen(name, VM_NAME_MAX - 1);

	memcpy(buf, name, n);
	return vm_name_hash(buf, (__u32)n);
}

static void route_ent_of(const char *name, const struct route_val *v, struct route_hkey *k, struct route_ent *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->name, name, strnlen(name, VM_NAME_MAX - 1));
	e->val = *v;
	k->hash = vm_name_hash(e->name, (__u32)strlen(e->name));
}

/* A route's bits (include/veil/wire.h, route_bits) into the words w. */
static void route_bits_of(__u64 *w, __u64 hash, const char *name)
{
	__u32 i[2];
	__u64 b[2];

	for (int k = 0, n = vm_route_bits(hash, name, i, b); k < n; k++)
		w[i[k]] |= b[k];
}

/* One route's bits set in the mapped filter (atomic: the programs read
 * it meanwhile). */
static void route_bits_set(struct vm_gw *g, __u64 hash, const char *name)
{
	__u32 i[2];
	__u64 b[2];

	if (!g->rbits)
		return;
	for (int k = 0, n = vm_route_bits(hash, name, i, b); k < n; k++)
		__atomic_fetch_or(&g->rbits[i[k]], b[k], __ATOMIC_RELEASE);
}

/* The mapped filter made equal to want: each word takes want's bits
 * first, then loses the others, so a route's bit that both have is never
 * clear while the programs read (a bit a concurrent put would set could
 * be lost, hence one writer). */
static void route_bits_store(struct vm_gw *g, const __u64 *want)
{
	for (__u32 i = 0; i < VM_ROUTE_BITS_WORDS; i++) {
		__u64 cur = __atomic_load_n(&g->rbits[i], __ATOMIC_RELAXED);
		if (cur == want[i])
			continue;
		__atomic_fetch_or(&g->rbits[i], want[i], __ATOMIC_RELEASE);
		__atomic_fetch_and(&g->rbits[i], want[i], __ATOMIC_RELEASE);
	}
}

/* A batch of the routes map's entries into the bits they want. */
struct route_walk {
	__u64 *want;
	int n;
};

static int route_bits_some(void *arg, const void *keys, const void *vals, __u32 n)
{
	struct route_walk *w = arg;
	const struct route_hkey *k = keys;
	const struct route_ent *e = vals;

	for (__u32 i = 0; i < n; i++)
		route_bits_of(w->want, k[i].hash, e[i].name);
	w->n += (int)n;
	return 0;
}

/* The routes map walked in batches (100,000 routes: 0.03 s, where a
 * lookup a key took 0.14 s, at every load), key by key where the kernel
 * has no batch calls. */
#define ROUTE_BATCH 1024
int vm_gw_route_bits_rebuild(struct vm_gw *g)
{
	int fd = vm_gw_map_fd(g, "routes"), rc;
	struct route_walk w = { 0 };
	struct route_hkey k, next;
	struct route_ent e;
	void *prev = NULL;

	if (!g->rbits)
		return -ENODEV;
	if (fd < 0)
		return -EBADF;
	w.want = calloc(VM_ROUTE_BITS_WORDS, sizeof(*w.want));
	if (!w.want)
		return -ENOMEM;
	rc = vm_map_each_batch(fd, sizeof(k), sizeof(e), ROUTE_BATCH, route_bits_some, &w);
	while (!rc && !bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (!bpf_map_lookup_elem(fd, &k, &e))   /* else gone meanwhile */
			route_bits_some(&w, &k, &e, 1);
	}
	if (rc >= 0)
		route_bits_store(g, w.want);
	free(w.want);
	return rc < 0 ? rc : w.n;
}

int vm_gw_route_put(struct vm_gw *g, const char *name, const struct route_val *v)
{
	struct route_hkey k;
	struct route_ent e;

	route_ent_of(name, v, &k, &e);
	route_bits_set(g, k.hash, e.name);     /* before the route: never a route without its bits */
	return bpf_map_update_elem(vm_gw_map_fd(g, "routes"), &k, &e, BPF_ANY) ? -errno : 0;
}

int vm_gw_route_get(int fd, const char *name, struct route_val *v)
{
	struct route_hkey k = { .hash = vm_route_hash(name) };
	struct route_ent e;

	if (bpf_map_lookup_elem(fd, &k, &e))
		return -errno;
	if (strncmp(e.name, name, VM_NAME_MAX))
		return -ENOENT;
	*v = e.val;
	return 0;
}

int vm_gw_route_del(int fd, const char *name)
{
	struct route_hkey k = { .hash = vm_route_hash(name) };
	struct route_ent e;

	if (bpf_map_lookup_elem(fd, &k, &e) || strncmp(e.name, name, VM_NAME_MAX))
		return -ENOENT;
	return bpf_map_delete_elem(fd, &k) ? -errno : 0;
}

struct want_route {
	__u64 hash;
	const struct vm_cfg_route *r;
};

static int cmp_want(const void *a, const void *b)
{
	const struct want_route *x = a, *y = b;
	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* The routes map made equal to r[0, n): sorted by hash, so that 100,000
 * routes take one walk of the map and one lookup per route. */
static int sync_routes(struct vm_gw *g, const struct vm_cfg_route *r, int n, int *changes)
{
	int fd = vm_gw_map_fd(g, "routes");
	struct want_route *w = n ? calloc(n, sizeof(*w)) : NULL;
	struct route_hkey *gone = NULL, key, next;
	size_t ngone = 0, capgone = 0;
	struct route_ent cur, e;
	size_t ngone_failed = 0;
	void *prev = NULL;
	int rc = 0;

	if (n && !w)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		w[i].hash = vm_route_hash(r[i].key.name);
		w[i].r = &r[i];
	}
	qsort(w, n, sizeof(*w), cmp_want);
	for (int i = 1; i < n; i++)
		if (w[i].hash == w[i - 1].hash && strncmp(w[i].r->key.name, w[i - 1].r->key.name, VM_NAME_MAX)) {
			vm_log("event=error reason=\"routes %s and %s share a 64-bit name hash: rename one\"",
			       w[i].r->key.name, w[i - 1].r->key.name);
			free(w);
			return -EEXIST;
		}
	/* what is not wanted goes, after the walk (deleting during it may
	 * reorder what is left to visit) */
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		struct want_route q = { .hash = next.hash };
		key = next;
		prev = &key;
		if (bsearch(&q, w, n, sizeof(*w), cmp_want))
			continue;
		if (ngone == capgone) {
			size_t nc = capgone ? 2 * capgone : 256;
			struct route_hkey *g = realloc(gone, nc * sizeof(*g));
			if (!g) {
				rc = -ENOMEM;
				break;
			}
			gone = g;
			capgone = nc;
		}
		gone[ngone++] = key;
	}
	for (size_t i = 0; i < ngone; i++)
		if (bpf_map_delete_elem(fd, &gone[i]) == 0)
			(*changes)++;
		else if (errno != ENOENT)
			ngone_failed++;
	free(gone);
	for (int i = 0; i < n && !rc; i++) {
		route_ent_of(w[i].r->key.name, &w[i].r->val, &key, &e);
		route_bits_set(g, key.hash, e.name);
		if (!bpf_map_lookup_elem(fd, &key, &cur) && !memcmp(&cur, &e, sizeof(e)))
			continue;
		if (bpf_map_update_elem(fd, &key, &e, BPF_ANY))
			rc = -errno;
		else
			(*changes)++;
	}
	/* the filter exact: the map holds these routes and no other (after
	 * a failure it may hold others still: the bits stay as they are) */
	if (!rc && ngone_failed == 0 && g->rbits) {
		__u64 *want = calloc(VM_ROUTE_BITS_WORDS, sizeof(*want));
		if (want) {
			for (int i = 0; i < n; i++)
				route_bits_of(want, w[i].hash, w[i].r->key.name);
			route_bits_store(g, want);
			free(want);
		}
	}
	free(w);
	return rc;
}

int vm_gw_sync(struct vm_gw *g, const struct vm_gw_cfg *c, int *changes)
{
	__u32 zero = 0;
	int rc, n = 0, nv = 0;

	rc = sync_routes(g, c->routes, c->nroutes, &n);
	if (!rc)
		rc = sync_map(vm_gw_map_fd(g, "vips"), c->vips, c->nvips, sizeof(struct vip_key),
			      sizeof(struct vip_val), sizeof(struct vm_cfg_vip), &nv);
	n += nv;
	/* after the vips: each CPU's copies of them are taken again */
	if (!rc)
		rc = vm_gw_vips_moved(g, nv > 0);
	if (!rc && bpf_map_update_elem(vm_gw_map_fd(g, "gw_config"), &zero, &c->dp, BPF_ANY))
		rc = -errno;
	if (changes)
		*changes = n;
	if (rc)
		errno = -rc;
	return rc;
}

/* One route written or removed between full syncs (the store's changes):
 * the same map entry vm_gw_sync writes for that route. */
int vm_gw_route_set(struct vm_gw *g, const struct vm_cfg_route *r)
{
	return vm_gw_route_put(g, r->key.name, &r->val);
}

int vm_gw_route_unset(struct vm_gw *g, const char *name)
{
	int rc = vm_gw_route_del(vm_gw_map_fd(g, "routes"), name);
	return rc == -ENOENT ? 0 : rc;
}

/* The routes map as it is (a restarted daemon keeps what it finds until
 * its source of routes has spoken): *out malloc'ed, *n entries. */
int vm_gw_routes_read(struct vm_gw *g, struct vm_cfg_route **out, int *n)
{
	int fd = vm_gw_map_fd(g, "routes"), cap = 1024;
	struct route_hkey k, next;
	struct route_ent e;
	void *prev = NULL;
	struct vm_cfg_route *r = malloc((size_t)cap * sizeof(*r));

	*out = NULL;
	*n = 0;
	if (!r)
		return -ENOMEM;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (*n == cap) {
			struct vm_cfg_route *nr = realloc(r, (size_t)(cap *= 2) * sizeof(*r));
			if (!nr) {
				free(r);
				return -ENOMEM;
			}
			r = nr;
		}
		if (bpf_map_lookup_elem(fd, &k, &e))
			continue;
		memset(&r[*n], 0, sizeof(r[*n]));
		memcpy(r[*n].key.name, e.name, sizeof(r[*n].key.name));
		r[*n].key.name[sizeof(r[*n].key.name) - 1] = 0;
		r[*n].val = e.val;
		(*n)++;
	}
	*out = r;
	return 0;
}

/* After vms changed (changed != 0), or when vms_gen was never written:
 * vms_gen moves on (never to 0), so node_mesh's connections take their
 * VM's entry again instead of their copy of it. */
int vm_node_vms_changed(struct vm_node *n, int changed)
{
	return vm_gen_move(vm_node_map_fd(n, "vms_gen"), changed);
}

int vm_node_sync(struct vm_node *n, const struct vm_node_cfg *c, int *changes)
{
	struct { __u32 id; struct vm_val val; } want[VM_CFG_MAX_VMS];
	__u32 zero = 0;
	int rc, ch = 0;

	for (int i = 0; i < c->nvms; i++) {
		want[i].id = c->vms[i].id;
		want[i].val = c->vms[i].val;
	}
	rc = sync_map(vm_node_map_fd(n, "vms"), want, c->nvms, sizeof(__u32), sizeof(struct vm_val),
		      sizeof(want[0]), &ch);
	if (!rc)
		rc = vm_node_vms_changed(n, ch);
	if (!rc && bpf_map_update_elem(vm_node_map_fd(n, "node_config"), &zero, &c->dp, BPF_ANY))
		rc = -errno;
	if (changes)
		*changes = ch;
	return rc;
}

/* ---------- counters ---------- */

const char *const vm_gw_stat_names[] = {
	"pass_not_vip", "pass_not_tcp", "syn_cookie_sent", "cookie_ack", "bad_cookie",
	"hello_routed", "hello_retransmit", "hello_partial", "no_sni", "bad_name", "no_route",
	"parse_error", "refused_rst", "refused_alert", "fwd_established", "malformed",
	"ip_options", "fragment", "rst_no_flow", "no_neigh", "fib_fail", "encap_fail",
	"ret_forwarded", "ret_no_flow", "ret_malformed", "ret_pass", "no_config",
	"asm_stored", "asm_early", "asm_dup", "asm_routed", "asm_sent", "asm_timeout", "asm_overflow",
	"asm_late", "asm_handed", "mesh_mtu", "hello_resent", "held_released", "held_lost",
	"fin_answered", "flow_closed", "flow_reset", "flow_full", "asm_full", "reply_fail", "flow_collision",
	"rst_out_of_window", "handshake_on_flow", "flow_replaced", "rst_near", "rst_refused",
	"held_lost_reset", "ack_unjudged",
};
const int vm_gw_stat_count = sizeof(struct gw_stats) / sizeof(__u64);
_Static_assert(sizeof(vm_gw_stat_names) / sizeof(char *) == sizeof(struct gw_stats) / sizeof(__u64),
	       "a gateway counter has no name");

const char *const vm_node_stat_names[] = {
	"pass_not_mesh", "mesh_malformed", "handoff_replayed", "handoff_again", "handoff_no_vm",
	"hello_too_big", "fwd_to_vm", "no_conn", "early_data", "vm_synack", "vm_synack_bad",
	"fwd_to_gw", "vm_pass", "vm_malformed", "encap_fail", "no_config", "conn_reset",
	"hello_seg_stored", "hello_seg_dup", "hello_seg_sent", "conn_replaced", "conn_closed",
	"conn_full", "hello_store_full", "vm_stale_reset", "conn_collision", "client_rst",
	"rst_refused", "vm_fast", "reset_sent",
};
const int vm_node_stat_count = sizeof(struct node_stats) / sizeof(__u64);
_Static_assert(sizeof(vm_node_stat_names) / sizeof(char *) == sizeof(struct node_stats) / sizeof(__u64),
	       "a node counter has no name");

/* The per-CPU counters' sums, words of them.  The map's own value size
 * sets the stride: a map pinned by another version (a daemon not yet
 * restarted after an upgrade that added a counter, or one newer than this
 * tool) has more or fewer counters than this build's struct, and a lookup
 * writes value_size bytes for every CPU.  Counters the map lacks read 0;
 * ones this build does not know are left out. */
static int percpu_sum(int fd, void *sum, size_t words)
{
	int ncpu = libbpf_num_possible_cpus();
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info), zero = 0;
	__u64 *vals, *out = sum;
	size_t stride, have;

	if (ncpu <= 0)
		return -EINVAL;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.value_size % sizeof(__u64))
		return -EINVAL;
	stride = info.value_size / sizeof(__u64);
	have = stride < words ? stride : words;
	vals = calloc(ncpu, info.value_size);
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, vals)) {
		free(vals);
		return -errno;
	}
	memset(sum, 0, words * sizeof(__u64));
	for (int c = 0; c < ncpu; c++)
		for (size_t i = 0; i < have; i++)
			out[i] += vals[c * stride + i];
	free(vals);
	return 0;
}

int vm_gw_stats_read(int fd, struct gw_stats *sum)
{
	return percpu_sum(fd, sum, sizeof(*sum) / sizeof(__u64));
}

int vm_node_stats_read(int fd, struct node_stats *sum)
{
	return percpu_sum(fd, sum, sizeof(*sum) / sizeof(__u64));
}

/* veilctl's route changes are edits of the config file (it stays the one
 * source of truth, so a restart or reload keeps them): the edited file is
 * checked in full before it replaces the old one atomically. */
int vm_gw_cfg_edit_route(const char *config, const char *op, char **w, int n, char *err, size_t errlen)
{
	char tmp[300], line[1024], name[VM_NAME_MAX];
	FILE *in, *out;
	int found = 0, ln = 0, add = !strcmp(op, "add"), del = !strcmp(op, "del");

	if ((del && n != 1) || (!del && n != 3)) {
		snprintf(err, errlen, "usage: route add|replace NAME VM_ID NODE_ADDRESS, route del NAME");
		return -1;
	}
	snprintf(name, sizeof(name), "%s", w[0]);
	snprintf(tmp, sizeof(tmp), "%s.veilctl.tmp", config);
	in = fopen(config, "re");
	out = fopen(tmp, "we");
	if (!in || !out) {
		snprintf(err, errlen, "%s: %s", in ? tmp : config, strerror(errno));
		if (in) fclose(in);
		if (out) fclose(out);
		return -1;
	}
	while (fgets(line, sizeof(line), in)) {
		char copy[1024], *save, *a, *b;
		ln++;
		snprintf(copy, sizeof(copy), "%s", line);
		char *hash = strchr(copy, '#');
		if (hash)
			*hash = 0;
		a = strtok_r(copy, " \t\r\n", &save);
		b = a ? strtok_r(NULL, " \t\r\n", &save) : NULL;
		if (a && b && !strcmp(a, "route") && !strcmp(b, name)) {
			found = 1;
			if (del)
				continue;
			if (!add) {
				fprintf(out, "route %s %s %s\n", name, w[1], w[2]);
				continue;
			}
		}
		fputs(line, out);
	}
	fclose(in);
	if (add && !found)
		fprintf(out, "route %s %s %s\n", name, w[1], w[2]);
	fclose(out);
	if (add && found) {
		snprintf(err, errlen, "route '%s' exists: use replace", name);
		unlink(tmp);
		return -1;
	}
	if (!add && !found) {
		snprintf(err, errlen, "no route '%s' in %s", name, config);
		unlink(tmp);
		return -1;
	}
	struct vm_gw_cfg check;
	if (vm_gw_cfg_load(tmp, &check, err, errlen)) {
		/* say it of the real file: the line numbers are the same */
		char *at = strstr(err, tmp);
		if (at) {
			char rest[512];
			snprintf(rest, sizeof(rest), "%s", at + strlen(tmp));
			snprintf(err, errlen, "%s%s", config, rest);
		}
		unlink(tmp);
		return -1;
	}
	vm_gw_cfg_free(&check);
	if (rename(tmp, config)) {
		snprintf(err, errlen, "replacing %s: %s", config, strerror(errno));
		unlink(tmp);
		return -1;
	}
	vm_log("event=route_%s name=%s source=veilctl", op, name);
	return 0;
}
