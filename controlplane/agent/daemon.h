/* SPDX-License-Identifier: Apache-2.0 */
/* veil-agent's running loop (daemon.c). */
#ifndef VEIL_AGENT_DAEMON_H
#define VEIL_AGENT_DAEMON_H

#include "agent.h"
#include "common/daemon.h"

struct ag_daemon {
	const struct ag_cfg *cfg;
	const struct ag_scan *scan;
	const char *uri;            /* libvirt, qemu:///system */
	const char *spec_dir;       /* the orders: one spec file per VM */
	const char *state_dir;      /* per VM: disk, console log, firmware variables */
	const char *cache_dir;      /* images by sha256 */
	const char *prefix;         /* domain names: PREFIX<id> */
	const char *nvram_template; /* OVMF variables for efi VMs */
	const char *node_config;    /* veil-node's config: the agent keeps its VM lines */
	const char *node_socket;    /* veil-node's control socket (reload) */
	int libvirt_ns;             /* libvirtd's network namespace (-1: ours) */
	const char *vtpm_state;     /* a manufactured vTPM (swtpm tpm2-00.permall) each VM's TPM starts from, or NULL */
	int mtu;                    /* taps' MTU (0: the kernel's default) */
	int max_booting;            /* VMs started and not yet ready at once (0: no limit); the others wait, fetched */
	struct ag_feed *feed;       /* orders from the cluster store (store: in the config), or NULL */
	const char *metrics;        /* ADDR:PORT of GET /metrics, or NULL / "off" */
};

int ag_daemon_run(struct ag_daemon *d);

/* The agent's log line on stderr: "TIME veil-agent: " + the event, one line
 * (the daemons' shared one, common/daemon.h). */
#define ag_log vm_log

#endif
