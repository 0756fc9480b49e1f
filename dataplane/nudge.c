// SPDX-License-Identifier: Apache-2.0
/*
 * The clients of a VM that left the node, nudged so that they learn of it.
 *
 * node_mesh resets a client whose VM is gone when the client next sends
 * (reset_client, bpf/node_mesh.bpf.c).  A client that sends nothing (one
 * waiting for an answer, or whose download stopped with everything acked)
 * would wait until its own timeouts.  So when veil-node takes VMs out of
 * its table, it sends each established connection's client, through the
 * gateway that owns it, a segment its TCP must answer: a bare ACK from the
 * VIP at the client's initial receive sequence (the cookie ISN), behind
 * anything the client will still take, which a TCP answers with an ACK of
 * where it stands (RFC 793, RFC 5961).  That ACK reaches node_mesh, which
 * answers it with a RST at exactly that ACK (the client takes it), and the
 * gateway retires the flow on the way.  Nothing is written to the maps here.
 *
 * The segment goes as Geneve in a UDP datagram from the node's stack to
 * the gateway's underlay address (the outer source of the connection's
 * handoff), port VM_GENEVE_PORT: gw_return takes it as any VM packet.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "veil.h"
#include "veil/pkt.h"

#define NUDGE_LEN (VM_GENEVE_HLEN + VM_IP6_HLEN + VM_TCP_HLEN)

/* The UDP payload for connection (k, c): Geneve without options, then the
 * inner IP header and a bare ACK from the VIP to the client.  Its length. */
size_t vm_nudge_segment(const struct flow_key *k, const struct conn_val *c, __u8 *out)
{
	__u32 l3 = c->family == VM_AF_INET ? VM_IP4_HLEN : VM_IP6_HLEN;
	__u8 *g = out, *ip = out + VM_GENEVE_HLEN;
	struct vm_tcp *tcp = (struct vm_tcp *)(ip + l3);
	struct vm_pkt p;   /* the client's view: what vm_tcp_bare_write answers */

	memset(out, 0, VM_GENEVE_HLEN + l3 + VM_TCP_HLEN);
	memset(&p, 0, sizeof(p));
	p.family = c->family;
	memcpy(p.saddr, c->client, 16);
	memcpy(p.daddr, c->vip, 16);
	g[2] = c->family == VM_AF_INET ? VM_GENEVE_PROTO_IP4 >> 8 : VM_GENEVE_PROTO_IP6 >> 8;
	g[3] = (c->family == VM_AF_INET ? VM_GENEVE_PROTO_IP4 : VM_GENEVE_PROTO_IP6) & 0xff;
	if (c->family == VM_AF_INET) {
		struct vm_ip4 *h = (struct vm_ip4 *)ip;
		h->ver_ihl = 0x45;
		h->tot_len = htons(VM_IP4_HLEN + VM_TCP_HLEN);
		h->frag_off = htons(VM_IP4_DF);
		h->ttl = VM_IP_TTL;
		h->protocol = VM_IPPROTO_TCP;
		memcpy(&h->saddr, c->vip + VM_ADDR4_OFF, 4);
		memcpy(&h->daddr, c->client + VM_ADDR4_OFF, 4);
		h->check = vm_ip4_csum(h);
	} else {
		struct vm_ip6 *h = (struct vm_ip6 *)ip;
		h->ver_tc_fl = htonl(VM_IP6_VER_WORD);
		h->payload_len = htons(VM_TCP_HLEN);
		h->nexthdr = VM_IPPROTO_TCP;
		h->hop_limit = VM_IP_TTL;
		memcpy(h->saddr, c->vip, 16);
		memcpy(h->daddr, c->client, 16);
	}
	tcp->source = k->vip_port_be;
	tcp->dest = k->client_port_be;
	vm_tcp_bare_write(tcp, &p, c->cookie_isn, c->cli_nxt ? c->cli_nxt : c->client_isn + 1, VM_TCP_ACK,
			  VM_TCP_HLEN, 0);
	return VM_GENEVE_HLEN + l3 + VM_TCP_HLEN;
}

struct nudge {
	const __u32 *ids;
	int nids, fd4, fd6;
	long sent, failed;
};

static int nudge_one(void *arg, const struct flow_key *k, const void *v)
{
	struct nudge *g = arg;
	const struct conn_val *c = v;
	__u8 buf[NUDGE_LEN];
	int i;

	if (c->state != VM_CONN_ESTABLISHED)
		return 0;   /* one still waiting for its VM's SYN-ACK resends its hello, which node_mesh resets */
	if ((c->fin & (VM_FIN_CLIENT | VM_FIN_VM)) == (VM_FIN_CLIENT | VM_FIN_VM))
		return 0;   /* closed both ways: its client has nothing to wait for */
	for (i = 0; i < g->nids && g->ids[i] != c->vm_id; i++)
		;
	if (i == g->nids)
		return 0;
	size_t n = vm_nudge_segment(k, c, buf);
	ssize_t w;
	if (c->gw_family == VM_AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(VM_GENEVE_PORT) };
		memcpy(&a.sin_addr, c->gw + VM_ADDR4_OFF, 4);
		w = g->fd4 < 0 ? -1 : sendto(g->fd4, buf, n, 0, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(VM_GENEVE_PORT) };
		memcpy(&a.sin6_addr, c->gw, 16);
		w = g->fd6 < 0 ? -1 : sendto(g->fd6, buf, n, 0, (struct sockaddr *)&a, sizeof(a));
	}
	if (w == (ssize_t)n)
		g->sent++;
	else
		g->failed++;
	return 0;
}

long vm_node_nudge(struct vm_node *n, const __u32 *ids, int nids, long *failed)
{
	struct vm_flows *ct = vm_node_conns(n);
	struct nudge g = { .ids = ids, .nids = nids };

	*failed = 0;
	if (!ct || nids <= 0)
		return 0;
	g.fd4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	g.fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	vm_flows_walk(ct, nudge_one, &g);
	if (g.fd4 >= 0)
		close(g.fd4);
	if (g.fd6 >= 0)
		close(g.fd6);
	*failed = g.failed;
	return g.sent;
}
