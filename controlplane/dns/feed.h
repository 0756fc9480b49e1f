/* SPDX-License-Identifier: Apache-2.0 */
/*
 * veil-dns's feed from the cluster store (docs/store.md): VM names from
 * bucket `dns` (signed envelopes, opened with the controller's public key,
 * replays refused) and gateways from bucket `peers` (kind gateway), by
 * snapshot then watch.  The feed only keeps the store's current state; the
 * daemon merges it with the file's config into a new zone snapshot whenever
 * dns_feed_version() moves.
 */
#ifndef VEIL_DNS_FEED_H
#define VEIL_DNS_FEED_H
#include <stdint.h>
#include <stdio.h>

#include "dns.h"

struct dns_feed;

/* Starts the feed's thread (connect, open buckets, watch; retried every
 * second until it works).  NULL with err when the public key cannot be read. */
struct dns_feed *dns_feed_start(const struct dns_cfg *c, char *err, size_t len);
void dns_feed_stop(struct dns_feed *f);
/* Both buckets have delivered their snapshot (waits up to ms). */
int dns_feed_synced(struct dns_feed *f, int ms);
/* Moves on every change of the store's state that the feed applied. */
uint64_t dns_feed_version(struct dns_feed *f);
/* Adds the store's names and gateways to c: names inside c's zone that the
 * file does not list; a gateway replaces the file's gateway of the same name.
 * Folds the feed's version into c->hash (the serial moves).  0, or -1 (out
 * of memory). */
int dns_feed_merge(struct dns_feed *f, struct dns_cfg *c);
/* Prometheus text: applied changes, refusals by reason, state. */
void dns_feed_metrics(struct dns_feed *f, FILE *out);
/* --check: the key file reads as an Ed25519 public key. */
int dns_feed_check(const struct dns_cfg *c, char *err, size_t len);
#endif
