/* SPDX-License-Identifier: Apache-2.0 */
/* veil-gw fed from the cluster store: routes from bucket `routes` (signed by
 * the controller, docs/store.md) merged with the config file's routes. */
#ifndef VEIL_GW_STORE_H
#define VEIL_GW_STORE_H

#include <stdbool.h>
#include <stdio.h>
#include "veil.h"

struct gw_store;

/* Connects to c->store_urls, loads c->store_pub and starts the watch on
 * `routes`.  The file's routes (c) are the base; the store's are merged in
 * once its snapshot is complete.  NULL with the reason in err. */
struct gw_store *gw_store_start(struct vm_gw *g, const struct vm_gw_cfg *c, char *err, size_t errlen);
void gw_store_stop(struct gw_store *s);
/* A reloaded file: the new base (vips, gateway settings, file routes); then
 * the maps are made equal to file + store routes (vm_gw_sync). */
int gw_store_reload(struct gw_store *s, const struct vm_gw_cfg *c, int *changes);
/* Work for the main loop: a full sync after a (re)snapshot, neighbour
 * entries for node addresses new to the gateway.  Cheap when idle. */
void gw_store_poll(struct gw_store *s);
int gw_store_routes(struct gw_store *s);
void gw_store_metrics(struct gw_store *s, FILE *out);
void gw_store_status(struct gw_store *s, FILE *out);

#endif
