/* SPDX-License-Identifier: Apache-2.0 */
/* veil-agent fed from the cluster store (docs/store.md): the controller's
 * signed VM orders from bucket `vms` (keys <node_id>.<vm_id>), the agent's
 * signed reports to `vmstatus/<vm_id>` and `heartbeats/<node_id>`. */
#ifndef VEIL_AGENT_STOREFEED_H
#define VEIL_AGENT_STOREFEED_H

#include <stdbool.h>
#include <stdint.h>
#include "agent.h"

struct ag_feed;

/* One VM the store wants on this node (op "run", verified). */
struct ag_feed_vm {
	struct ag_spec spec;      /* spec.id = the store's vm_id */
	char order[64];
	uint64_t gen;
};

/* Loads the keys, connects, writes the marker <node_id>.__ if missing and
 * starts the watch.  state_dir keeps the reports' gen counter.  NULL with
 * the reason. */
struct ag_feed *ag_feed_start(const struct ag_cfg *c, const char *state_dir, char *err, size_t errlen);
void ag_feed_stop(struct ag_feed *f);
/* True once the snapshot of the node's orders is in. */
bool ag_feed_synced(struct ag_feed *f);
/* The VMs wanted now (malloc'ed array, *n of them); bumps when it changed. */
struct ag_feed_vm *ag_feed_wanted(struct ag_feed *f, int *n, uint64_t *version);
uint64_t ag_feed_version(struct ag_feed *f);
/* A signed vmstatus/<vm_id> (state: fetching, launching, attesting, ready,
 * failed, deleted).  -1 if the store did not take it (the caller retries). */
int ag_feed_status(struct ag_feed *f, const char *vm_id, const char *state, const char *reason, const char *addr4,
		   const char *addr6);
/* A signed heartbeat: vms_json is the "vms" object's JSON text. */
int ag_feed_heartbeat(struct ag_feed *f, const char *vms_json, int free_cpu, uint64_t free_ram_mb,
		      uint64_t free_disk_gb);
/* "reason=count ..." of what was refused so far, for the logs. */
void ag_feed_counts(struct ag_feed *f, char *buf, size_t len);

#endif
