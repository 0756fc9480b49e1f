// SPDX-License-Identifier: Apache-2.0
/* The node config, $HOME/.leea/config, parsed with libyaml's document API:
 * every node keeps its position, so each error says file:line:column. */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "agent.h"
#include "yml.h"

void ag_cfg_default_path(char *buf, size_t len)
{
	const char *home = getenv("HOME");
	snprintf(buf, len, "%s/.leea/config", home && *home ? home : "/root");
}

int ag_parse_size(const char *s, uint64_t *out, const char **why)
{
	char *end;
	errno = 0;
	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s)) {
		*why = "not a size (a number and kb, mb, gb or tb)";
		return -1;
	}
	double v = strtod(s, &end);
	if (errno || v < 0) {
		*why = "not a size (a number and kb, mb, gb or tb)";
		return -1;
	}
	while (isspace((unsigned char)*end))
		end++;
	static const struct { const char *u; int shift; } units[] = {
		{ "kb", 10 }, { "mb", 20 }, { "gb", 30 }, { "tb", 40 },
		{ "k", 10 },  { "m", 20 },  { "g", 30 },  { "t", 40 },
		{ "kib", 10 }, { "mib", 20 }, { "gib", 30 }, { "tib", 40 },
	};
	if (!*end) {
		*why = "a size needs a unit (kb, mb, gb or tb)";
		return -1;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcasecmp(end, units[i].u)) {
			double b = v * (double)(1ULL << units[i].shift);
			if (b >= 18e18) {
				*why = "size too large";
				return -1;
			}
			*out = (uint64_t)b;
			return 0;
		}
	}
	*why = "unknown size unit (kb, mb, gb or tb)";
	return -1;
}

static int hexfield(const char *s, size_t n, unsigned max, unsigned *out)
{
	if (n == 0 || n > 4)
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return -1;
		v = v * 16 + (isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower((unsigned char)s[i]) - 'a' + 10));
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int ag_parse_pci(const char *s, char out[AG_PCI_LEN])
{
	unsigned dom = 0, bus, dev, fn;
	const char *c1 = strchr(s, ':');
	if (!c1)
		return -1;
	const char *c2 = strchr(c1 + 1, ':');
	const char *b = s;
	if (c2) { /* with a domain */
		if (hexfield(s, c1 - s, 0xffff, &dom))
			return -1;
		b = c1 + 1;
		c1 = c2;
	}
	const char *dot = strchr(c1, '.');
	if (!dot || hexfield(b, c1 - b, 0xff, &bus) || hexfield(c1 + 1, dot - c1 - 1, 0x1f, &dev) ||
	    hexfield(dot + 1, strlen(dot + 1), 7, &fn) || strlen(dot + 1) != 1)
		return -1;
	snprintf(out, AG_PCI_LEN, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

static int load_resources(struct yml *y, yaml_node_t *map, struct ag_cfg *c)
{
	yaml_node_pair_t *p;
	if (map->type != YAML_MAPPING_NODE)
		return yml_error(y, map, "'resources' must be a mapping (cpu, ram, disk, gpus)");
	if (yml_check_dups(y, map))
		return -1;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&y->doc, p->value);
		const char *key = yml_scalar(k);
		const char *why;
		if (!key)
			return yml_error(y, k, "keys must be plain names");
		if (!strcmp(key, "cpu")) {
			long n;
			if (yml_int(y, v, "cpu", 1, 1 << 20, &n))
				return -1;
			c->cpu = (int)n;
		} else if (!strcmp(key, "ram") || !strcmp(key, "disk")) {
			const char *s = yml_scalar(v);
			uint64_t b;
			if (!s || !*s)
				return yml_error(y, v, "'%s' needs a size such as 64gb", key);
			if (ag_parse_size(s, &b, &why))
				return yml_error(y, v, "'%s': '%s': %s", key, s, why);
			if (b == 0)
				return yml_error(y, v, "'%s' must be more than zero", key);
			*(key[0] == 'r' ? &c->ram : &c->disk) = b;
		} else if (!strcmp(key, "gpus")) {
			if (yml_is_null(v))
				continue; /* empty = all */
			if (v->type != YAML_SEQUENCE_NODE)
				return yml_error(y, v, "'gpus' must be a list of PCI addresses");
			for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
				yaml_node_t *g = yaml_document_get_node(&y->doc, *it);
				const char *s = yml_scalar(g);
				char addr[AG_PCI_LEN];
				if (!s || ag_parse_pci(s, addr))
					return yml_error(y, g, "not a PCI address (like 0000:41:00.0 or 41:00.0): '%s'",
							 s ? s : "(not a scalar)");
				for (int i = 0; i < c->ngpus; i++)
					if (!strcmp(c->gpus[i], addr))
						return yml_error(y, g, "GPU %s listed twice", addr);
				if (c->ngpus >= AG_MAX_GPUS)
					return yml_error(y, g, "more than %d GPUs", AG_MAX_GPUS);
				strcpy(c->gpus[c->ngpus], addr);
				c->gpu_line[c->ngpus] = (int)g->start_mark.line + 1;
				c->gpu_col[c->ngpus] = (int)g->start_mark.column + 1;
				c->ngpus++;
			}
		} else {
			yml_warn(y, k, "unknown key 'resources.%s' ignored", key);
		}
	}
	return 0;
}

/* store: urls, controller_pub, node_signing_key, node_id, creds, heartbeat_s */
static int load_store(struct yml *y, yaml_node_t *map, struct ag_cfg *c)
{
	if (map->type != YAML_MAPPING_NODE)
		return yml_error(y, map, "'store' must be a mapping (urls, controller_pub, node_signing_key, node_id)");
	if (yml_check_dups(y, map))
		return -1;
	static const struct { const char *name; size_t off, len; } f[] = {
		{ "urls", offsetof(struct ag_cfg, store_urls), sizeof(((struct ag_cfg *)0)->store_urls) },
		{ "creds", offsetof(struct ag_cfg, store_creds), sizeof(((struct ag_cfg *)0)->store_creds) },
		{ "controller_pub", offsetof(struct ag_cfg, controller_pub), sizeof(((struct ag_cfg *)0)->controller_pub) },
		{ "node_signing_key", offsetof(struct ag_cfg, node_signing_key),
		  sizeof(((struct ag_cfg *)0)->node_signing_key) },
		{ "node_id", offsetof(struct ag_cfg, node_id), sizeof(((struct ag_cfg *)0)->node_id) },
		{ "registry_ca", offsetof(struct ag_cfg, registry_ca), sizeof(((struct ag_cfg *)0)->registry_ca) },
	};
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&y->doc, p->key), *v = yaml_document_get_node(&y->doc, p->value);
		const char *key = yml_scalar(k);
		size_t i;
		if (!key)
			return yml_error(y, k, "keys must be plain names");
		if (!strcmp(key, "heartbeat_s")) {
			long n;
			if (yml_int(y, v, "store.heartbeat_s", 1, 3600, &n))
				return -1;
			c->heartbeat_s = (int)n;
			continue;
		}
		for (i = 0; i < sizeof(f) / sizeof(f[0]) && strcmp(key, f[i].name); i++)
			;
		if (i == sizeof(f) / sizeof(f[0])) {
			yml_warn(y, k, "unknown key 'store.%s' ignored", key);
			continue;
		}
		const char *s = yml_scalar(v);
		if (!s || !*s)
			return yml_error(y, v, "'store.%s' must be a string", key);
		if (strlen(s) >= f[i].len)
			return yml_error(y, v, "'store.%s' is longer than %zu characters", key, f[i].len - 1);
		if (!strcmp(key, "urls") && strncmp(s, "nats://", 7) && strncmp(s, "tls://", 6))
			return yml_error(y, v, "'store.urls' takes nats://HOST:PORT[,nats://...]");
		if (!strcmp(key, "node_id") && (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(s)))
			return yml_error(y, v, "'store.node_id' must be a-z, 0-9, '-' or '_' (it is part of store keys)");
		strcpy((char *)c + f[i].off, s);
	}
	const char *missing = !c->store_urls[0] ? "urls" : !c->controller_pub[0] ? "controller_pub"
			    : !c->node_signing_key[0] ? "node_signing_key" : !c->node_id[0] ? "node_id" : NULL;
	if (missing)
		return yml_error(y, map, "'store.%s' missing", missing);
	return 0;
}

int ag_cfg_load(const char *path, struct ag_cfg *c, ag_warn_fn warn, char *err, size_t errlen)
{
	struct yml y;
	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", path);
	if (yml_open(&y, path, warn, err, errlen))
		return -1;
	int rc = -1;
	yaml_node_t *root = yaml_document_get_root_node(&y.doc);
	if (!root) {
		snprintf(err, errlen, "%s:1:1: empty file (needs node_key and resources)", path);
		goto out;
	}
	if (root->type != YAML_MAPPING_NODE) {
		yml_error(&y, root, "the config must be a mapping (node_key, resources)");
		goto out;
	}
	if (yml_check_dups(&y, root))
		goto out;
	bool have_key = false;
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&y.doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&y.doc, p->value);
		const char *key = yml_scalar(k);
		if (!key) {
			yml_error(&y, k, "keys must be plain names");
			goto out;
		}
		if (!strcmp(key, "node_key")) {
			const char *s = yml_scalar(v);
			/* the value is a secret: errors describe it, never quote it */
			if (!s || !*s) {
				yml_error(&y, v, "'node_key' must be the key from the dashboard (a string)");
				goto out;
			}
			if (strlen(s) >= sizeof(c->node_key)) {
				yml_error(&y, v, "'node_key' is longer than %zu characters", sizeof(c->node_key) - 1);
				goto out;
			}
			for (const char *q = s; *q; q++)
				if (!isgraph((unsigned char)*q)) {
					yml_error(&y, v, "'node_key' holds a space or control character");
					goto out;
				}
			strcpy(c->node_key, s);
			have_key = true;
		} else if (!strcmp(key, "resources")) {
			if (load_resources(&y, v, c))
				goto out;
		} else if (!strcmp(key, "store")) {
			if (load_store(&y, v, c))
				goto out;
		} else {
			yml_warn(&y, k, "unknown key '%s' ignored", key);
		}
	}
	if (!have_key) {
		snprintf(err, errlen, "%s:%d:%d: 'node_key' missing (the key from the dashboard)", path,
			 (int)root->start_mark.line + 1, (int)root->start_mark.column + 1);
		goto out;
	}
	rc = 0;
out:
	if (rc && y.err[0])
		snprintf(err, errlen, "%s", y.err);
	yml_close(&y);
	return rc;
}
