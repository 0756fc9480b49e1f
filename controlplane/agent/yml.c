// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "yml.h"

static int load(struct yml *y, yaml_parser_t *p, char *err, size_t errlen)
{
	if (!yaml_parser_load(p, &y->doc)) {
		const char *what = p->problem ? p->problem : "not valid YAML";
		yaml_mark_t m = p->problem ? p->problem_mark : p->context_mark;
		snprintf(err, errlen, "%s:%d:%d: %s%s%s", y->path, (int)m.line + 1, (int)m.column + 1, what,
			 p->context ? " " : "", p->context ? p->context : "");
		yaml_parser_delete(p);
		return -1;
	}
	y->loaded = true;
	yaml_parser_delete(p);
	return 0;
}

int yml_open_string(struct yml *y, const char *name, const char *text, size_t len, ag_warn_fn warn, char *err,
		    size_t errlen)
{
	yaml_parser_t p;
	memset(y, 0, sizeof(*y));
	y->path = name;
	y->warn = warn;
	if (!yaml_parser_initialize(&p)) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	return load(y, &p, err, errlen);
}

int yml_open(struct yml *y, const char *path, ag_warn_fn warn, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	yaml_parser_t p;
	memset(y, 0, sizeof(*y));
	y->path = path;
	y->warn = warn;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!yaml_parser_initialize(&p)) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	yaml_parser_set_input_file(&p, f);
	int rc = load(y, &p, err, errlen);
	fclose(f);
	return rc;
}

void yml_close(struct yml *y)
{
	if (y->loaded)
		yaml_document_delete(&y->doc);
	y->loaded = false;
}

int yml_error(struct yml *y, yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;
	int k = snprintf(y->err, sizeof(y->err), "%s:%d:%d: ", y->path, n ? (int)n->start_mark.line + 1 : 1,
			 n ? (int)n->start_mark.column + 1 : 1);
	va_start(ap, fmt);
	vsnprintf(y->err + k, sizeof(y->err) - k, fmt, ap);
	va_end(ap);
	return -1;
}

void yml_warn(struct yml *y, yaml_node_t *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int k = snprintf(msg, sizeof(msg), "%s:%d:%d: warning: ", y->path, (int)n->start_mark.line + 1,
			 (int)n->start_mark.column + 1);
	va_start(ap, fmt);
	vsnprintf(msg + k, sizeof(msg) - k, fmt, ap);
	va_end(ap);
	if (y->warn)
		y->warn(msg);
}

const char *yml_scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool yml_is_null(yaml_node_t *n)
{
	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)n->data.scalar.value;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

int yml_int(struct yml *y, yaml_node_t *n, const char *what, long min, long max, long *out)
{
	const char *s = yml_scalar(n);
	char *end;
	if (!s || !*s)
		return yml_error(y, n, "'%s' needs a number", what);
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end)
		return yml_error(y, n, "'%s': '%s' is not a whole number", what, s);
	if (v < min || v > max)
		return yml_error(y, n, "'%s': %ld is out of range (%ld-%ld)", what, v, min, max);
	*out = v;
	return 0;
}

int yml_bool(struct yml *y, yaml_node_t *n, const char *what, bool *out)
{
	const char *s = yml_scalar(n);
	if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")))
		*out = true;
	else if (s && (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off")))
		*out = false;
	else
		return yml_error(y, n, "'%s' must be true or false", what);
	return 0;
}

yaml_node_t *yml_get(struct yml *y, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = yml_scalar(yaml_document_get_node(&y->doc, p->key));
		if (k && !strcmp(k, key))
			return yaml_document_get_node(&y->doc, p->value);
	}
	return NULL;
}

int yml_check_dups(struct yml *y, yaml_node_t *map)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return 0;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(&y->doc, p->key);
		const char *k = yml_scalar(kn);
		for (yaml_node_pair_t *q = map->data.mapping.pairs.start; k && q < p; q++) {
			const char *k2 = yml_scalar(yaml_document_get_node(&y->doc, q->key));
			if (k2 && !strcmp(k, k2))
				return yml_error(y, kn, "'%s' given twice", k);
		}
	}
	return 0;
}
