/* SPDX-License-Identifier: Apache-2.0 */
/* veil-agent --register: the node joins by its TPM (docs/agent.md). */
#ifndef AG_REGISTER_H
#define AG_REGISTER_H

struct ag_reg_opts {
	const char *url;            /* https://ADDR:PORT of the controller */
	const char *regkey;         /* the registration key (else the config's node_key) */
	const char *tcti;           /* the node's TPM */
	const char *ca;             /* the controller's TLS CA */
	const char *ek_chain;       /* optional: PEM intermediates of the EK certificate */
	const char *name, *underlay4, *underlay6, *location;
	const char *store_urls, *controller_pub;   /* for a config without a store: section */
	const char *key_out;        /* the node key's file (default: beside the config, node.key) */
};

/* Registers with the controller and activates the credential with the TPM;
 * on success writes the node key (0600) and store.node_id /
 * store.node_signing_key into the config.  scan_json: veil-agent --scan's.
 * Exit code: 0, 1 (refused or failed), 2 (usage). */
struct ag_scan;
int ag_register(const struct ag_reg_opts *o, const char *cfgpath, const struct ag_scan *scan, const char *scan_json);

#endif
