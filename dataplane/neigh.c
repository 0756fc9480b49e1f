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

/* One `ip route get` per distinct node: the route is what the kernel would
 * use, policy routing and all, which is what the FIB lookup in XDP sees. */
/* via: 64 bytes, dev: 32 */
static int route_get(const char *addr, char *via, char *dev)
{
	char cmd[160], line[512];
	FILE *f;

	via[0] = dev[0] = 0;
	snprintf(cmd, sizeof(cmd), "ip -o route get %s 2>/dev/null", addr);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f)) {
		char *w = strstr(line, " via ");
		if (w)
			sscanf(w + 5, "%63s", via);
		w = strstr(line, " dev ");
		if (w)
			sscanf(w + 5, "%31s", dev);
	}
	pclose(f);
	return dev[0] ? 0 : -1;
}

int vm_next_hops(const struct vm_gw_cfg *c, struct vm_next_hop *out, int max, bool manage)
{
	int n = 0;

	for (int i = 0; i < c->nroutes && n < max; i++) {
		const __u8 *node = c->routes[i].val.node;
		int dup = 0;
		for (int j = 0; j < n && !dup; j++)
			dup = !memcmp(out[j].node, node, 16);
		if (dup)
			continue;
		char addr[64], via[64], dev[32];
		vm_addr_str(node, addr, sizeof(addr));
		if (route_get(addr, via, dev)) {
			vm_log("event=warning reason=\"no route to node %s: its flows will count no_neigh\"", addr);
			continue;
		}
		struct vm_next_hop *h = &out[n];
		memset(h, 0, sizeof(*h));
		memcpy(h->node, node, 16);
		if (!vm_addr_parse(via[0] ? via : addr, h->hop))
			continue;
		snprintf(h->dev, sizeof(h->dev), "%s", dev);
		h->ifindex = if_nametoindex(dev);
		if (if_mtu(dev, &h->mtu))
			h->mtu = 0;
		n++;
	}
	if (!manage)
		return n;
	/* Each next hop becomes a "managed" entry that the kernel keeps
	 * resolved on its own; one the operator made permanent stays so. */
	vm_neigh_resolve(out, n);
	for (int i = 0; i < n; i++) {
		struct vm_next_hop *h = &out[i];
		char cmd[256], hop[64], addr[64], *dev = h->dev;
		if (h->state & NUD_PERMANENT)
			continue;
		vm_addr_str(h->node, addr, sizeof(addr));
		vm_addr_str(h->hop, hop, sizeof(hop));
		snprintf(cmd, sizeof(cmd), "ip neigh replace %s dev %s managed 2>/dev/null", hop, dev);
		if (system(cmd) == 0)
			vm_log("event=neigh_managed node=%s next_hop=%s dev=%s", addr, hop, dev);
		else
			vm_log("event=warning reason=\"cannot add a managed neighbour %s on %s (kernel older than 5.16?)\"",
			       hop, dev);
	}
	return n;
}

struct dump_ctx {
	struct vm_next_hop *hops;
	int n, found;
};

static int neigh_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);
	if (mnl_attr_type_valid(a, NDA_MAX) >= 0)
		tb[type] = a;
	return MNL_CB_OK;
}

static int neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *d = data;
	const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[NDA_MAX + 1] = { 0 };
	__u8 addr[16];

	if (!(nd->ndm_state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)))
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*nd), neigh_attr, tb);
	if (!tb[NDA_DST] || !tb[NDA_LLADDR] || mnl_attr_get_payload_len(tb[NDA_LLADDR]) != 6)
		return MNL_CB_OK;
	if (nd->ndm_family == AF_INET && mnl_attr_get_payload_len(tb[NDA_DST]) == 4) {
		memset(addr, 0, 10);
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, mnl_attr_get_payload(tb[NDA_DST]), 4);
	} else if (nd->ndm_family == AF_INET6 && mnl_attr_get_payload_len(tb[NDA_DST]) == 16) {
		memcpy(addr, mnl_attr_get_payload(tb[NDA_DST]), 16);
	} else {
		return MNL_CB_OK;
	}
	for (int i = 0; i < d->n; i++) {
		struct vm_next_hop *h = &d->hops[i];
		if ((int)h->ifindex == nd->ndm_ifindex && !memcmp(h->hop, addr, 16)) {
			memcpy(h->mac, mnl_attr_get_payload(tb[NDA_LLADDR]), 6);
			h->state = nd->ndm_state;
			if (!h->resolved)
				d->found++;
			h->resolved = 1;
		}
	}
	return MNL_CB_OK;
}

int vm_neigh_resolve(struct vm_next_hop *hops, int n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct rtgenmsg *g;
	struct dump_ctx d = { hops, n, 0 };
	unsigned int seq = (unsigned int)time(NULL), portid;
	int ret, rc = -1;

	for (int i = 0; i < n; i++)
		hops[i].resolved = hops[i].state = 0;
	nl = mnl_socket_open(NETLINK_ROUTE);
	if (!nl)
		return -1;
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
