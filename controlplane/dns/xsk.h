/* SPDX-License-Identifier: Apache-2.0 */
/*
 * veil-dns's AF_XDP answer path (xdp_interface): the XDP program
 * (bpf/dns_xsk.bpf.c) sends UDP queries for the listen addresses to an
 * AF_XDP socket per queue, an XSK worker per socket answers them with the
 * same query function as the UDP workers and sends the answer frames back
 * through the socket's TX ring.  The kernel's UDP sockets stay open for
 * what the program passes (fragments, IPv4 options, IPv6 extension headers,
 * frames too big for a UMEM frame).
 */
#ifndef VEIL_DNS_XSK_H
#define VEIL_DNS_XSK_H
#include <stdint.h>
#include <stdio.h>

#include "dns/server.h"

/* ---------- frames (frame.c; no I/O) ---------- */

/* What the kernel checks before a socket sees a datagram and the parse did
 * not: the IPv4 header checksum, a nonzero IPv6 UDP checksum.  0 or
 * XSK_DROP_BAD_CSUM.  (A query's UDP checksum is not verified: a veth peer
 * in the same host sends it unfinished, offloaded.) */
int dns_frame_check(const uint8_t *frame, const struct dns_frame *f);
/* 1 when the frame's UDP checksum verifies (tests, the fuzzer). */
int dns_frame_udp_csum_ok(const uint8_t *frame, const struct dns_frame *f);
/* The query as the UDP path builds it from a datagram and its source. */
void dns_frame_query(const struct dns_frame *f, const uint8_t *frame, uint32_t now, struct dns_query *q);
/* The answer frame to the query frame f into out (room bytes; out may be
 * the query's own frame, msg not): Ethernet, IPv4 (DF, TTL 64, header
 * checksum) or IPv6, UDP with its checksum, msg.  Its length, or 0 if it
 * does not fit. */
size_t dns_frame_reply(uint8_t *out, size_t room, const struct dns_frame *f, const uint8_t *msg, size_t len);

/* ---------- the sockets and the program (xsk.c) ---------- */

struct dns_xdp;
/* Loads and attaches the program on c->xdp_interface, one AF_XDP socket
 * per queue 0..xdp_queues-1.  udp_fds[i]: a UDP socket bound to listen
 * address i (answers too big for a frame or the link leave through it).
 * NULL with a reason in err. */
struct dns_xdp *dns_xdp_open(const struct dns_cfg *c, uint16_t port, const int *udp_fds, char *err, size_t len);
int dns_xdp_queues(const struct dns_xdp *x);
struct dns_xsk_q *dns_xdp_queue(struct dns_xdp *x, int i);
/* The worker thread of one queue (arg: its struct worker, xq set). */
void *xsk_worker(void *arg);
/* One line for the start event: interface, mode, queues, copy or zero-copy. */
void dns_xdp_describe(const struct dns_xdp *x, char *buf, size_t len);
/* The program's and the sockets' own counters, for /metrics. */
void dns_xdp_metrics(struct dns_xdp *x, FILE *out);
/* Takes the program off the interface (queries go to the kernel's sockets). */
void dns_xdp_detach(struct dns_xdp *x);
/* After the workers stopped: sockets, UMEMs, the program's object. */
void dns_xdp_close(struct dns_xdp *x);
#endif
