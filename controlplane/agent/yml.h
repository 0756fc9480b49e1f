/* SPDX-License-Identifier: Apache-2.0 */
/* A loaded YAML document and errors that name file:line:column. */
#ifndef VEIL_AGENT_YML_H
#define VEIL_AGENT_YML_H

#include <stdbool.h>
#include <yaml.h>
#include "agent.h"

struct yml {
	const char *path;
	yaml_document_t doc;
	bool loaded;
	ag_warn_fn warn;
	char err[512];
};

int yml_open(struct yml *y, const char *path, ag_warn_fn warn, char *err, size_t errlen);
int yml_open_string(struct yml *y, const char *name, const char *text, size_t len, ag_warn_fn warn, char *err,
		    size_t errlen);
void yml_close(struct yml *y);
/* Records "path:line:col: message" in y->err; returns -1. */
int yml_error(struct yml *y, yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void yml_warn(struct yml *y, yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *yml_scalar(yaml_node_t *n);
bool yml_is_null(yaml_node_t *n);
int yml_int(struct yml *y, yaml_node_t *n, const char *what, long min, long max, long *out);
int yml_bool(struct yml *y, yaml_node_t *n, const char *what, bool *out);
/* A key given twice in one mapping: -1 with the second one's position. */
int yml_check_dups(struct yml *y, yaml_node_t *map);
yaml_node_t *yml_get(struct yml *y, yaml_node_t *map, const char *key);

#endif
