// SPDX-License-Identifier: Apache-2.0
/* Next hops towards the nodes, and the kernel's neighbour table.
 *
 * Both gateways keep a copy of what the kernel's tables say, refreshed by
 * the control thread: which interface and next hop reach each node (the
 * route), and that next hop's MAC (the neighbour table, over rtnetlink).
 * XDP reads it from the next_hops map (no FIB lookup per packet; a node
 * missing there still goes through the FIB), DPDK from its own table. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <libmnl/libmnl.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include "veil.h"

static int if_mtu(const char *dev, __u32 *mtu);

/* What `ip route get NODE` says, asked of the kernel over rtnetlink
 * (RTM_GETROUTE for the node's address: the route the kernel would use,
 * policy routing and all, which is what the FIB lookup in XDP sees): the
 * next hop (the gateway, or the node itself on a link) and the outgoing
 * interface.  One request and its answer on the caller's socket, no
 * process: a gateway asks for every node at start, at reload and after the
 * kernel tells of a route or link change (vm_route_watch). */
struct route_ans {
	__u8 via[16];
	int has_via;
	__u32 oif;
};

/* An rtnetlink address attribute (4 bytes for AF_INET, 16 for AF_INET6)
 * in the data plane's 16-byte form (IPv4 mapped); 0, or -1 for any other. */
static int addr_of_attr(int family, const struct nlattr *a, __u8 out[16])
{
	unsigned int len = mnl_attr_get_payload_len(a);

	if (family == AF_INET && len == 4) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, mnl_attr_get_payload(a), 4);
		return 0;
	}
	if (family == AF_INET6 && len == 16) {
		memcpy(out, mnl_attr_get_payload(a), 16);
		return 0;
	}
	return -1;
}

static int route_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);
	if (mnl_attr_type_valid(a, RTA_MAX) >= 0)
		tb[type] = a;
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct route_ans *r = data;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[RTA_MAX + 1] = { 0 };

	if (nlh->nlmsg_type != RTM_NEWROUTE)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*rt), route_attr, tb);
	if (tb[RTA_OIF] && mnl_attr_get_payload_len(tb[RTA_OIF]) == 4)
		r->oif = mnl_attr_get_u32(tb[RTA_OIF]);
	if (tb[RTA_GATEWAY]) {
		r->has_via = !addr_of_attr(rt->rtm_family, tb[RTA_GATEWAY], r->via);
	} else if (tb[RTA_VIA] && mnl_attr_get_payload_len(tb[RTA_VIA]) == sizeof(struct rtvia) + 16) {
		/* an IPv4 route through an IPv6 gateway */
		const struct rtvia *v = mnl_attr_get_payload(tb[RTA_VIA]);
		if (v->rtvia_family == AF_INET6) {
			memcpy(r->via, v->rtvia_addr, 16);
			r->has_via = 1;
		}
	}
	return MNL_CB_OK;
}

static int route_get(struct mnl_socket *nl, unsigned int portid, unsigned int seq, const __u8 node[16],
		     struct route_ans *r)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rt;
	int v4 = vm_addr_is_v4(node), ret;

	memset(r, 0, sizeof(*r));
	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq;
	rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
	rt->rtm_family = v4 ? AF_INET : AF_INET6;
	rt->rtm_dst_len = v4 ? 32 : 128;
	mnl_attr_put(nlh, RTA_DST, v4 ? 4 : 16, v4 ? node + 12 : node);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	/* the answer, or an error (no route, unreachable, prohibited) */
	ret = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (ret <= 0 || mnl_cb_run(buf, ret, seq, portid, route_cb, r) < 0)
		return -1;
	return r->oif ? 0 : -1;
}

/* A 16-byte address's slot in a table of mask + 1 (a power of two): the set
 * of distinct nodes below, and the dump's chains of hops.  The distinct
 * nodes of the routes are found through that set, not by comparing each
 * route's node with every one found before: a config of 65,536 routes over
 * 4,096 nodes took up to 268 million compares a call. */
static uint32_t node_slot(const __u8 *a, uint32_t mask)
{
	return vm_addr_hash(a) >> (32 - __builtin_ctz(mask + 1));
}

int vm_next_hops(const struct vm_gw_cfg *c, struct vm_next_hop *out, int max, bool manage)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	unsigned int portid = 0, seq = (unsigned int)time(NULL);
	uint32_t cap = 16;
	int32_t *set;
	int n = 0, over = 0;

	while (cap < 2u * (uint32_t)c->nroutes + 2)
		cap <<= 1;
	set = malloc(cap * sizeof(*set));
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 || !set) {
		vm_log("event=warning reason=\"next hops: no rtnetlink socket or memory: %s\"", strerror(errno));
		if (nl)
			mnl_socket_close(nl);
		free(set);
		return 0;
	}
	memset(set, 0xff, cap * sizeof(*set));   /* -1: free */
	portid = mnl_socket_get_portid(nl);
	for (int i = 0; i < c->nroutes; i++) {
		const __u8 *node = c->routes[i].val.node;
		uint32_t h = node_slot(node, cap - 1);
		int dup = 0;
		while (set[h] >= 0 && !(dup = !memcmp(c->routes[set[h]].val.node, node, 16)))
			h = (h + 1) & (cap - 1);
		if (dup)
			continue;
		set[h] = i;
		if (n >= max) {
			over++;   /* a node past the bound: no next hop kept */
			continue;
		}
		char addr[64], dev[IF_NAMESIZE] = "";
		struct route_ans r;
		vm_addr_str(node, addr, sizeof(addr));
		if (route_get(nl, portid, ++seq, node, &r) || !if_indextoname(r.oif, dev)) {
			vm_log("event=warning reason=\"no route to node %s: its flows will count no_neigh\"", addr);
			continue;
		}
		struct vm_next_hop *h2 = &out[n];
		memset(h2, 0, sizeof(*h2));
		memcpy(h2->node, node, 16);
		memcpy(h2->hop, r.has_via ? r.via : node, 16);
		snprintf(h2->dev, sizeof(h2->dev), "%s", dev);
		h2->ifindex = r.oif;
		if (if_mtu(dev, &h2->mtu))
			h2->mtu = 0;
		n++;
	}
	mnl_socket_close(nl);
	free(set);
	static int over_said;   /* said once per change: the gateways call again and again */
	if (over && over != over_said)
		vm_log("event=warning reason=\"%d nodes past the %d next hops kept: their flows count no_neigh\"", over,
		       max);
	over_said = over;
	if (!manage)
		return n;
	/* Each next hop becomes a "managed" entry that the kernel keeps
	 * resolved on its own; one the operator made permanent stays so, and
	 * one managed already is left as it is (the DPDK gateway asks again
	 * every few seconds while a next hop is unresolved: without this,
	 * a process per next hop each time). */
	vm_neigh_resolve(out, n);
	int made = 0;
	for (int i = 0; i < n; i++) {
		struct vm_next_hop *h = &out[i];
		char cmd[256], hop[64], addr[64], *dev = h->dev;
		if (h->state & NUD_PERMANENT || h->managed)
			continue;
		vm_addr_str(h->node, addr, sizeof(addr));
		vm_addr_str(h->hop, hop, sizeof(hop));
		snprintf(cmd, sizeof(cmd), "ip neigh replace %s dev %s managed 2>/dev/null", hop, dev);
		if (system(cmd) == 0) {
			vm_log("event=neigh_managed node=%s next_hop=%s dev=%s", addr, hop, dev);
			made++;
		} else {
			vm_log("event=warning reason=\"cannot add a managed neighbour %s on %s (kernel older than 5.16?)\"",
			       hop, dev);
		}
	}
	/* the entries changed here read again: the caller needs no dump of
	 * its own (until 2026-12-06 both gateways made one right after) */
	if (made)
		vm_neigh_resolve(out, n);
	return n;
}

/* The dump's state: the hops by their next hop's address, chained per
 * bucket of a hash of it (several nodes behind one router share one), so
 * each entry of the dump looks at its own address's hops, not at all of
 * them (4,096 on-link nodes: 16 million compares a second before). */
struct dump_ctx {
	struct vm_next_hop *hops;
	int n, found;
	int32_t *head, *next;      /* head[bucket], next[hop]: hop indices, -1 ends */
	uint32_t mask;
};

static int neigh_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);
	if (mnl_attr_type_valid(a, NDA_MAX) >= 0)
		tb[type] = a;
	return MNL_CB_OK;
}

/* Every entry of the dump: a hop's MAC when its state is usable; whether
 * the kernel manages it (NTF_EXT_MANAGED) whatever its state, so a managed
 * entry still resolving is not made managed again. */
static int neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *d = data;
	const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[NDA_MAX + 1] = { 0 };
	__u8 addr[16];
	int usable, managed;

	mnl_attr_parse(nlh, sizeof(*nd), neigh_attr, tb);
	if (!tb[NDA_DST] || addr_of_attr(nd->ndm_family, tb[NDA_DST], addr))
		return MNL_CB_OK;
	usable = (nd->ndm_state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)) &&
		 tb[NDA_LLADDR] && mnl_attr_get_payload_len(tb[NDA_LLADDR]) == 6;
	managed = tb[NDA_FLAGS_EXT] && mnl_attr_get_payload_len(tb[NDA_FLAGS_EXT]) == 4 &&
		  (mnl_attr_get_u32(tb[NDA_FLAGS_EXT]) & NTF_EXT_MANAGED);
	for (int32_t i = d->head[node_slot(addr, d->mask)]; i >= 0; i = d->next[i]) {
		struct vm_next_hop *h = &d->hops[i];
		if ((int)h->ifindex != nd->ndm_ifindex || memcmp(h->hop, addr, 16))
			continue;
		h->managed = managed;
		if (!usable)
			continue;
		memcpy(h->mac, mnl_attr_get_payload(tb[NDA_LLADDR]), 6);
		h->state = nd->ndm_state;
		if (!h->resolved)
			d->found++;
		h->resolved = 1;
	}
	return MNL_CB_OK;
}

int vm_route_watch_open(struct vm_route_watch *w)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	int fd, fl;

	w->nl = NULL;
	if (!nl)
		return -1;
	fd = mnl_socket_get_fd(nl);
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    mnl_socket_bind(nl, RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(nl);
		errno = e;
		return -1;
	}
	w->nl = nl;
	return 0;
}

int vm_route_watch_changed(struct vm_route_watch *w)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int changed = 0;

	if (!w->nl)
		return 1;
	for (;;) {
		ssize_t r = mnl_socket_recvfrom(w->nl, buf, sizeof(buf));
		if (r > 0) {
			changed = 1;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ENOBUFS) {
			changed = 1;       /* lost some: whatever they said, ask again */
			continue;
		}
		break;                     /* EAGAIN: all read */
	}
	return changed;
}

void vm_route_watch_close(struct vm_route_watch *w)
{
	if (w->nl)
		mnl_socket_close(w->nl);
	w->nl = NULL;
}

int vm_neigh_resolve(struct vm_next_hop *hops, int n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct rtgenmsg *g;
	struct dump_ctx d = { hops, n, 0, NULL, NULL, 0 };
	unsigned int seq = (unsigned int)time(NULL), portid;
	uint32_t cap = 16;
	int ret, rc = -1;

	while (cap < 2u * (uint32_t)(n > 0 ? n : 0))
		cap <<= 1;
	d.mask = cap - 1;
	d.head = malloc(cap * sizeof(*d.head));
	d.next = malloc((n > 0 ? n : 1) * sizeof(*d.next));
	nl = d.head && d.next ? mnl_socket_open(NETLINK_ROUTE) : NULL;
	if (!nl) {
		free(d.head);
		free(d.next);
		return -1;
	}
	memset(d.head, 0xff, cap * sizeof(*d.head));   /* -1: none */
	for (int i = n - 1; i >= 0; i--) {   /* each chain in the hops' order */
		uint32_t b = node_slot(hops[i].hop, d.mask);
		hops[i].resolved = hops[i].managed = hops[i].state = 0;
		d.next[i] = d.head[b];
		d.head[b] = i;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto out;
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETNEIGH;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->rtgen_family = AF_UNSPEC;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto out;
	while ((ret = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		ret = mnl_cb_run(buf, ret, seq, portid, neigh_cb, &d);
		if (ret <= MNL_CB_STOP)
			break;
	}
	rc = ret < 0 ? -1 : d.found;
out:
	mnl_socket_close(nl);
	free(d.head);
	free(d.next);
	return rc;
}

static int if_mtu(const char *dev, __u32 *mtu)
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	rc = ioctl(fd, SIOCGIFMTU, &ifr);
	close(fd);
	if (rc)
		return -errno;
	*mtu = ifr.ifr_mtu;
	return 0;
}

int vm_gw_next_hops_sync(struct vm_gw *g, const struct vm_next_hop *hops, int n)
{
	int fd = vm_gw_map_fd(g, "next_hops"), changes = 0;
	struct next_hop_key k, next, gone[VM_NEXT_HOPS_MAX];
	struct next_hop_val v, cur;
	void *prev = NULL;
	int ngone = 0;

	if (fd < 0)
		return fd;
	/* what the kernel no longer resolves goes (after the walk) */
	while (!bpf_map_get_next_key(fd, prev, &next) && ngone < VM_NEXT_HOPS_MAX) {
		int keep = 0;
		k = next;
		prev = &k;
		for (int i = 0; i < n && !keep; i++)
			keep = hops[i].resolved && !memcmp(hops[i].node, k.addr, 16);
		if (!keep)
			gone[ngone++] = k;
	}
	for (int i = 0; i < ngone; i++)
		if (!bpf_map_delete_elem(fd, &gone[i]))
			changes++;
	for (int i = 0; i < n; i++) {
		const struct vm_next_hop *h = &hops[i];
		if (!h->resolved)
			continue;
		memset(&v, 0, sizeof(v));
		memcpy(k.addr, h->node, 16);
		v.ifindex = h->ifindex;
		memcpy(v.dmac, h->mac, 6);
		if (vm_if_mac(h->dev, v.smac) || if_mtu(h->dev, &v.mtu))
			continue;   /* the interface went away: the FIB decides */
		if (!bpf_map_lookup_elem(fd, &k, &cur) && !memcmp(&cur, &v, sizeof(v)))
			continue;
		if (bpf_map_update_elem(fd, &k, &v, BPF_ANY))
			return -errno;
		changes++;
	}
	/* After the entries: a flow that sees the new generation finds the
	 * new next hop (flow_val.nh is a copy, taken again when it moves). */
	int rc = vm_gw_next_hops_moved(g, changes > 0);
	return rc < 0 ? rc : changes;
}

int vm_gw_next_hops_moved(struct vm_gw *g, bool changed)
{
	return vm_gen_move(vm_gw_map_fd(g, "next_hops_gen"), changed);
}

int vm_gw_vips_moved(struct vm_gw *g, bool changed)
{
	return vm_gen_move(vm_gw_map_fd(g, "vips_gen"), changed);
}

/* A generation map (one __u32 at index 0, 0: never written) moved on after
 * a change (never to 0), or written first; fd < 0 is passed back. */
int vm_gen_move(int fd, int changed)
{
	__u32 zero = 0, gen = 0;

	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, &zero, &gen))
		return -errno;
	if (!changed && gen)
		return 0;
	gen = gen + 1 ? gen + 1 : 1;   /* 0 means none cached */
	return bpf_map_update_elem(fd, &zero, &gen, BPF_ANY) ? -errno : 0;
}
