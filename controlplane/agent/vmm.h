/* SPDX-License-Identifier: Apache-2.0 */
/* The running side of veil-agent: taps, images, readiness. */
#ifndef VEIL_AGENT_VMM_H
#define VEIL_AGENT_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include "agent.h"

/* taps (tap.c) */
int ag_tap_create(const char *name, int libvirt_ns, char *err, size_t errlen);
int ag_tap_attach(const struct ag_spec *s, const char *name, int libvirt_ns, int mtu, char *err, size_t errlen);
int ag_tap_exists(const char *name);
int ag_tap_delete(const char *name, int libvirt_ns);

/* images (fetch.c): url into cache_dir/<sha256>, checked; resumes a
 * partial download left by an earlier run.  *stop aborts it. */
int ag_fetch(const char *url, const char *sha256, const char *cache_dir, char *path, size_t pathlen,
	     volatile int *stop, char *err, size_t errlen);
int ag_sha256_file(const char *path, char hex[65]);
/* A CA file for https fetches (the registry's), or NULL for the system's. */
extern const char *ag_fetch_ca;

/* the VM's firewall and egress NAT (nft.c): one nftables table per tap */
int ag_nft_vm_add(const char *tap, char *err, size_t errlen);
int ag_nft_vm_del(const char *tap, char *err, size_t errlen);

/* readiness (ready.c): a TLS handshake with addr:port; 0 when it completes. */
int ag_tls_probe(const char *addr, int port, int timeout_ms, char *err, size_t errlen);

#endif
