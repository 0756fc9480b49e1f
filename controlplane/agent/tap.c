// SPDX-License-Identifier: Apache-2.0
/* A VM's tap: made with TUNSETIFF + TUNSETPERSIST (rtnetlink cannot make
 * taps) in libvirtd's network namespace, where libvirt must find it at
 * start; then moved into the node's namespace and configured there with
 * libnl (up, MTU, the gateway addresses).  No `ip` shell-outs. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_tun.h>
#include <linux/if_addr.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include "agent.h"
#include "vmm.h"

/* Runs fn in the namespace ns_fd (-1: here), then comes back. */
static int in_ns(int ns_fd, int (*fn)(void *), void *arg, char *err, size_t errlen)
{
	int self = -1, rc;
	if (ns_fd >= 0) {
		self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (self < 0 || setns(ns_fd, CLONE_NEWNET)) {
			snprintf(err, errlen, "entering libvirtd's network namespace: %s", strerror(errno));
			if (self >= 0)
				close(self);
			return -1;
		}
	}
	rc = fn(arg);
	if (self >= 0) {
		if (setns(self, CLONE_NEWNET))
			rc = -1; /* cannot happen short of a kernel bug; say so */
		close(self);
	}
	return rc;
}

struct tap_op {
	const char *name;
	int err;
	int target_ns;
};

static int tap_make(void *a)
{
	struct tap_op *op = a;
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		op->err = errno;
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	/* single queue, no packet info: what libvirt opens it with for 1 queue */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", op->name);
	if (ioctl(fd, TUNSETIFF, &ifr) || ioctl(fd, TUNSETPERSIST, 1)) {
		op->err = errno;
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int ag_tap_create(const char *name, int libvirt_ns, char *err, size_t errlen)
{
	struct tap_op op = { .name = name };
	if (in_ns(libvirt_ns, tap_make, &op, err, errlen)) {
		if (op.err)
			snprintf(err, errlen, "tap %s: %s", name, strerror(op.err));
		return -1;
	}
	return 0;
}

/* A netlink socket bound in the namespace it is opened in. */
static int nl_open(void *a)
{
	struct nl_sock **s = a;
	*s = nl_socket_alloc();
	if (!*s || nl_connect(*s, NETLINK_ROUTE)) {
		if (*s)
			nl_socket_free(*s);
		*s = NULL;
		return -1;
	}
	return 0;
}

static struct nl_sock *nl_in(int ns, char *err, size_t errlen)
{
	struct nl_sock *s = NULL;
	if (in_ns(ns, nl_open, &s, err, errlen) || !s) {
		if (!err[0])
			snprintf(err, errlen, "netlink: cannot open a socket");
		return NULL;
	}
	return s;
}

/* The gateway's address on the tap, point to point with the VM's (gw peer vm/32
 * or /128): the route to the VM goes through its own tap, so several VMs of one
 * prefix (one gateway address) can live on one node. */
static int addr_add(struct nl_sock *s, int ifindex, int family, const char *gw, const char *vm_cidr, char *err,
		    size_t errlen)
{
	struct nl_addr *local = NULL, *peer = NULL;
	char vm[80];
	snprintf(vm, sizeof(vm), "%s", vm_cidr);
	char *sl = strchr(vm, '/');
	if (sl)
		*sl = 0;
	int rc = nl_addr_parse(gw, family, &local);
	if (!rc)
		rc = nl_addr_parse(vm, family, &peer);
	if (rc) {
		snprintf(err, errlen, "address %s peer %s: %s", gw, vm, nl_geterror(rc));
		if (local)
			nl_addr_put(local);
		return -1;
	}
	nl_addr_set_prefixlen(local, family == AF_INET ? 32 : 128);
	nl_addr_set_prefixlen(peer, family == AF_INET ? 32 : 128);
	struct rtnl_addr *a = rtnl_addr_alloc();
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_local(a, local);
	rtnl_addr_set_peer(a, peer);
	nl_addr_put(peer);
	const char *cidr = vm_cidr;
	if (family == AF_INET6)
		rtnl_addr_set_flags(a, IFA_F_NODAD);
	rc = rtnl_addr_add(s, a, NLM_F_REPLACE);
	rtnl_addr_put(a);
	nl_addr_put(local);
	if (rc && rc != -NLE_EXIST) {
		snprintf(err, errlen, "address %s: %s", cidr, nl_geterror(rc));
		return -1;
	}
	return 0;
}


int ag_tap_attach(const struct ag_spec *s, const char *name, int libvirt_ns, int mtu, char *err, size_t errlen)
{
	struct nl_sock *src = NULL, *here = NULL;
	struct rtnl_link *link = NULL, *chg = NULL;
	int rc = -1, e;

	err[0] = 0;
	/* move it from libvirtd's namespace into ours (if they differ) */
	if (libvirt_ns >= 0) {
		int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		src = nl_in(libvirt_ns, err, errlen);
		if (!src) {
			close(self);
			goto out;
		}
		if ((e = rtnl_link_get_kernel(src, 0, name, &link)) == 0) {
			chg = rtnl_link_alloc();
			rtnl_link_set_ns_fd(chg, self);
			e = rtnl_link_change(src, link, chg, 0);
			rtnl_link_put(chg);
			rtnl_link_put(link);
			chg = link = NULL;
		}
		close(self);
		if (e && e != -NLE_OBJ_NOTFOUND && e != -NLE_NODEV) { /* not there: already moved */
			snprintf(err, errlen, "moving tap %s into the node's namespace: %s", name, nl_geterror(e));
			goto out;
		}
	}
	here = nl_in(-1, err, errlen);
	if (!here)
		goto out;
	if ((e = rtnl_link_get_kernel(here, 0, name, &link))) {
		snprintf(err, errlen, "tap %s: %s", name, nl_geterror(e));
		goto out;
	}
	chg = rtnl_link_alloc();
	rtnl_link_set_flags(chg, IFF_UP);
	if (mtu)
		rtnl_link_set_mtu(chg, mtu);
	if ((e = rtnl_link_change(here, link, chg, 0))) {
		snprintf(err, errlen, "tap %s up: %s", name, nl_geterror(e));
		goto out;
	}
	int ifindex = rtnl_link_get_ifindex(link);
	char cidr[80];
	(void)cidr;
	if (s->ipv4[0] && s->gw4[0] && addr_add(here, ifindex, AF_INET, s->gw4, s->ipv4, err, errlen))
		goto out;
	if (s->ipv6[0] && s->gw6[0] && addr_add(here, ifindex, AF_INET6, s->gw6, s->ipv6, err, errlen))
		goto out;
	rc = 0;
out:
	if (chg)
		rtnl_link_put(chg);
	if (link)
		rtnl_link_put(link);
	if (src)
		nl_socket_free(src);
	if (here)
		nl_socket_free(here);
	return rc;
}

int ag_tap_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

/* Deleted wherever it is: here, else in libvirtd's namespace. */
int ag_tap_delete(const char *name, int libvirt_ns)
{
	char err[256] = "";
	int gone = 0;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && libvirt_ns < 0)
			break;
		struct nl_sock *s = nl_in(pass ? libvirt_ns : -1, err, sizeof(err));
		struct rtnl_link *l = NULL;
		if (!s)
			continue;
		if (!rtnl_link_get_kernel(s, 0, name, &l)) {
			if (!rtnl_link_delete(s, l))
				gone++;
			rtnl_link_put(l);
		}
		nl_socket_free(s);
	}
	return gone ? 0 : -1;
}
