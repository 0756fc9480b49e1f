// SPDX-License-Identifier: Apache-2.0
/*
 * veilctl: the operator's view of a veilmesh gateway or node.
 *
 * Reads go straight to the pinned maps, so they work when the daemon is down.
 * Changes (routes, dropping a flow) go through the daemon's control socket:
 * the daemon owns the maps' contents and its config file is the one source
 * of truth, so a change made any other way would be undone by the next
 * reload.  With the daemon down, veilctl is read-only and says so.
 * See docs/man/veilctl.8.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "veil.h"
#include "veil/hello.h"

static const char *pin_root = VM_PIN_ROOT_DEFAULT;
static const char *sock_path;
static int json;
static int is_node;
/* veil-gw-dpdk keeps its tables in the process, not in pinned maps: its
 * listings and counters come through its control socket */
static int is_dpdk;
static char found_pin[256], found_sock[108], found_daemon[32];

int vm_replay(int argc, char **argv, const char *pin_root, int json);

static void usage(FILE *f)
{
	fprintf(f,
		"usage: veilctl [-p PIN_ROOT] [-s SOCKET] [-d DAEMON] [-r RUN_DIR] [-j] COMMAND [ARGS]\n"
		"\n"
		"  status                            programs, maps and their fill, cookie key age, daemon health\n"
		"  stats [-w|--watch [SECONDS]]      every outcome counter, summed over CPUs (rates with --watch)\n"
		"  routes [list]                     the routes map\n"
		"  routes add NAME VM_ID NODE_ADDR   through the daemon (it edits its config file)\n"
		"  routes replace NAME VM_ID NODE_ADDR\n"
		"  routes del NAME\n"
		"  flows [list] [--vm ID] [--name NAME] [--client ADDR] [--count]\n"
		"  flows drop CLIENT PORT VIP PORT   through the daemon\n"
		"  conns [list] [--vm ID] [--count]  a node's connections\n"
		"  replay FILE [--routes CONFIG] [--secret FILE]\n"
		"                                    what the gateway would do with each packet of a capture\n"
		"\n"
		"  -p, --pin-root DIR   where the daemon pins its maps (default: the running daemon's, else %s)\n"
		"  -s, --socket PATH    the daemon's control socket (default: the running daemon's, else\n"
		"                       /run/veilmesh/veil-gw.sock, or veil-node.sock when PIN_ROOT holds a node's maps)\n"
		"  -d, --daemon NAME    which running daemon when several run: veil-gw, veil-node, veil-gw-dpdk,\n"
		"                       or its runtime file's name (n1 for RUN_DIR/n1.json)\n"
		"  -r, --run-dir DIR    where daemons leave their runtime files (default $VEIL_RUN_DIR or %s)\n"
		"  -j, --json           JSON for scripts instead of columns\n"
		"\n"
		"Without -p and -s, veilctl finds the running daemon by the runtime file it writes beside its\n"
		"control socket (/run/veilmesh/veil-gw.sock -> veil-gw.json).  Reads use the pinned maps and\n"
		"work with the daemon down (veil-gw-dpdk has no pinned maps: its reads go through its socket);\n"
		"changes need the daemon.\n"
		"Exit codes: 0 ok, 1 failed (daemon down for a change, map missing, refused), 2 bad usage,\n"
		"3 status: the daemon is down.\n",
		VM_PIN_ROOT_DEFAULT, VM_RUN_DIR_DEFAULT);
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "veilctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'veilctl --help'.\n");
	return 2;
}

static int map_open(const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", pin_root, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		fprintf(stderr, "veilctl: no pinned map %s (is the daemon's pin_root %s?)\n", path, pin_root);
	return fd;
}

/* Sends one request line to the daemon; returns its answer (malloc'd) or NULL. */
static char *daemon_ask(const char *req)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		free(buf);
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, req, strlen(req)) < 0 || write(fd, "\n", 1) < 0) {
		close(fd);
		free(buf);
		return NULL;
	}
	for (;;) {
		if (n + 1 == cap) {
			char *b = realloc(buf, cap * 2);
			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		ssize_t got = read(fd, buf + n, cap - 1 - n);
		if (got <= 0)
			break;
		n += got;
	}
	close(fd);
	buf[n] = 0;
	return buf;
}

/* A read through the daemon (veil-gw-dpdk): its JSON answer, or NULL with
 * the reason said. */
static json_object *daemon_json(const char *req)
{
	char *a = daemon_ask(req);
	json_object *o;

	if (!a) {
		fprintf(stderr, "veilctl: the daemon does not answer on %s (veil-gw-dpdk's tables are read "
				"through it)\n", sock_path);
		return NULL;
	}
	o = json_tokener_parse(a);
	if (!o)
		fprintf(stderr, "veilctl: the daemon's answer to '%s' is not JSON: %.200s\n", req, a);
	else if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "ok", NULL)) {
		json_object *e = NULL;
		json_object_object_get_ex(o, "error", &e);
		fprintf(stderr, "veilctl: the daemon refused '%s': %s (an older daemon?)\n", req,
			e ? json_object_get_string(e) : a);
		json_object_put(o);
		o = NULL;
	}
	free(a);
	return o;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static long long jint(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

/* A change: needs the daemon. Prints its answer; exit code from "ok". */
static int daemon_change(const char *req)
{
	char *a = daemon_ask(req);

	if (!a) {
		fprintf(stderr, "veilctl: the daemon does not answer on %s: changes go through the daemon "
				"(read-only without it)\n", sock_path);
		return 1;
	}
	int ok = strstr(a, "\"ok\": true") != NULL;
	if (json) {
		fputs(a, stdout);
	} else if (ok) {
		char *c = strstr(a, "\"changes\": ");
		printf("ok (%s map entries written)\n", c ? strtok(c + 11, "}\n") : "?");
	} else {
		char *e = strstr(a, "\"error\": \"");
		if (e) {
			e += 10;
			e[strcspn(e, "\"")] = 0;
		}
		fprintf(stderr, "veilctl: refused: %s\n", e ? e : a);
	}
	free(a);
	return ok ? 0 : 1;
}

static const char *addr_s(const __u8 a[16], char *buf)
{
	return vm_addr_str(a, buf, 64);
}

/* ---------- routes ---------- */

static int routes_list_daemon(void)
{
	json_object *a = daemon_json("routes");
	size_t n;

	if (!a)
		return 1;
	if (json) {
		puts(json_object_to_json_string_ext(a, JSON_C_TO_STRING_SPACED));
		json_object_put(a);
		return 0;
	}
	printf("%-40s %8s  %s\n", "NAME", "VM", "NODE");
	n = json_object_array_length(a);
	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(a, i);
		printf("%-40s %8lld  %s\n", jstr(r, "name"), jint(r, "vm_id"), jstr(r, "node"));
	}
	json_object_put(a);
	return 0;
}

static int routes_list(void)
{
	if (is_dpdk)
		return routes_list_daemon();
	int fd = map_open("routes");
	struct route_hkey k, next;
	struct route_ent e;
	void *prev = NULL;
	char nb[64];
	int n = 0;

	if (fd < 0)
		return 1;
	if (json)
		printf("[");
	else
		printf("%-40s %8s  %s\n", "NAME", "VM", "NODE");
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &e))
			continue;
		if (json) {
			printf("%s{\"name\": ", n ? ", " : "");
			vm_json_str(stdout, e.name);
			printf(", \"vm_id\": %u, \"node\": \"%s\"}", e.val.vm_id, addr_s(e.val.node, nb));
		} else {
			printf("%-40s %8u  %s\n", e.name, e.val.vm_id, addr_s(e.val.node, nb));
		}
		n++;
	}
	if (json)
		printf("]\n");
	return 0;
}

static int routes_cmd(int argc, char **argv)
{
	char req[600];

	if (argc == 0 || !strcmp(argv[0], "list"))
		return argc > 1 ? usage_error("routes list takes no arguments%s", "") : routes_list();
	if (!strcmp(argv[0], "add") || !strcmp(argv[0], "replace")) {
		__u8 a[16];
		char *end;
		if (argc != 4)
			return usage_error("routes %s takes NAME VM_ID NODE_ADDR", argv[0]);
		if (!vm_route_name_ok(argv[1]))
			return usage_error("'%s' is not a lowercase host name or *.name", argv[1]);
		unsigned long id = strtoul(argv[2], &end, 10);
		if (*end || !id || id > 0xffffffffUL)
			return usage_error("bad VM id '%s'", argv[2]);
		if (!vm_addr_parse(argv[3], a))
			return usage_error("'%s' is not an IP address", argv[3]);
		snprintf(req, sizeof(req), "route %s %s %s %s", argv[0], argv[1], argv[2], argv[3]);
		return daemon_change(req);
	}
	if (!strcmp(argv[0], "del")) {
		if (argc != 2)
			return usage_error("routes del takes NAME%s", "");
		snprintf(req, sizeof(req), "route del %s", argv[1]);
		return daemon_change(req);
	}
	return usage_error("unknown routes command '%s'", argv[0]);
}

/* ---------- flows ---------- */

/* The VM a name routes to (exact, then wildcard), 0 when none. */
static __u32 route_vm_daemon(const char *name)
{
	json_object *a = daemon_json("routes");
	const char *dot = strchr(name, '.');
	__u32 exact = 0, wild = 0;

	if (!a)
		return 0;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *r = json_object_array_get_idx(a, i);
		const char *n = jstr(r, "name");
		if (!strcmp(n, name))
			exact = jint(r, "vm_id");
		else if (dot && n[0] == '*' && !strcmp(n + 1, dot))
			wild = jint(r, "vm_id");
	}
	json_object_put(a);
	return exact ? exact : wild;
}

static __u32 route_vm(const char *name)
{
	char wk[VM_NAME_MAX];
	struct route_val v;
	if (is_dpdk)
		return route_vm_daemon(name);
	int fd = map_open("routes");

	if (fd < 0)
		return 0;
	if (!vm_gw_route_get(fd, name, &v))
		return v.vm_id;
	const char *dot = strchr(name, '.');
	if (dot) {
		snprintf(wk, sizeof(wk), "*%s", dot);
		if (!vm_gw_route_get(fd, wk, &v))
			return v.vm_id;
	}
	return 0;
}

static int flows_list_daemon(__u32 vm, const __u8 *client, int count_only)
{
	json_object *a = daemon_json("flows"), *out = json_object_new_array();
	long n = 0;

	if (!a)
		return 1;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *f = json_object_array_get_idx(a, i);
		__u8 c[16];
		if ((vm && jint(f, "vm_id") != vm) ||
		    (client && (!vm_addr_parse(jstr(f, "client"), c) || memcmp(c, client, 16))))
			continue;
		n++;
		json_object_array_add(out, json_object_get(f));
	}
	if (count_only)
		printf(json ? "{\"flows\": %ld}\n" : "%ld\n", n);
	else if (json)
		puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_SPACED));
	else {
		printf("%-40s %5s  %-40s %5s  %8s  %-24s %8s  %s\n", "CLIENT", "PORT", "VIP", "PORT", "VM", "NODE", "AGE_S",
		       "FIN");
		for (size_t i = 0; i < json_object_array_length(out); i++) {
			json_object *f = json_object_array_get_idx(out, i);
			json_object *age = NULL;
			json_object_object_get_ex(f, "age_s", &age);
			printf("%-40s %5lld  %-40s %5lld  %8lld  %-24s %8.1f  %s\n", jstr(f, "client"), jint(f, "client_port"),
			       jstr(f, "vip"), jint(f, "vip_port"), jint(f, "vm_id"), jstr(f, "node"),
			       age ? json_object_get_double(age) : 0.0, jstr(f, "fin"));
		}
	}
	json_object_put(out);
	json_object_put(a);
	return 0;
}

struct flows_list {
	__u32 vm;
	const __u8 *client;
	int count_only;
	__u64 now_ns;
	long n;
};

/* One flow of the table, if the filters take it. */
static int flow_row(void *arg, const struct flow_key *kp, const void *vp_)
{
	struct flows_list *l = arg;
	const struct flow_key k = *kp;
	const struct flow_val v = *(const struct flow_val *)vp_;
	char a1[64], a2[64], a3[64];

	/* the addresses are the value's (the key holds IPv6 ones folded) */
	__u32 vm_id = ntohl(v.handoff.vm_id_be);
	if ((l->vm && vm_id != l->vm) || (l->client && memcmp(v.client, l->client, 16)))
		return 0;
	l->n++;
	if (l->count_only)
		return 0;
	double age = (l->now_ns - v.created_ns) / 1e9;
	if (json) {
		printf("%s{\"client\": \"%s\", \"client_port\": %u, \"vip\": \"%s\", \"vip_port\": %u, "
		       "\"vm_id\": %u, \"node\": \"%s\", \"age_s\": %.1f, \"fin\": \"%s\", \"cli_nxt\": %u, "
		       "\"vm_ack\": %u, \"held\": %u, \"held_lost\": %s}", l->n > 1 ? ", " : "",
		       addr_s(v.client, a1), ntohs(k.client_port_be), addr_s(v.vip, a2), ntohs(k.vip_port_be),
		       vm_id, addr_s(v.node, a3), age, vm_fin_name(v.fin), v.cli_nxt, v.vm_ack,
		       v.held_len & VM_HELD_LEN_MASK, v.held_len & VM_HELD_LOST ? "true" : "false");
	} else {
		printf("%-40s %5u  %-40s %5u  %8u  %-24s %8.1f  %s\n", addr_s(v.client, a1), ntohs(k.client_port_be),
		       addr_s(v.vip, a2), ntohs(k.vip_port_be), vm_id, addr_s(v.node, a3), age, vm_fin_name(v.fin));
	}
	return 0;
}

static int flows_cmd(int argc, char **argv)
{
	__u32 vm = 0;
	__u8 client[16];
	int want_client = 0, count_only = 0;

	if (argc >= 1 && !strcmp(argv[0], "drop")) {
		char req[300];
		__u8 a[16];
		if (argc != 5)
			return usage_error("flows drop takes CLIENT PORT VIP PORT%s", "");
		if (!vm_addr_parse(argv[1], a) || !vm_addr_parse(argv[3], a))
			return usage_error("flows drop: addresses, please (%s)", argv[1]);
		snprintf(req, sizeof(req), "flow drop %s %s %s %s", argv[1], argv[2], argv[3], argv[4]);
		return daemon_change(req);
	}
	int i = argc >= 1 && !strcmp(argv[0], "list") ? 1 : 0;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--vm") && i + 1 < argc) {
			vm = strtoul(argv[++i], NULL, 10);
			if (!vm)
				return usage_error("bad VM id '%s'", argv[i]);
		} else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			vm = route_vm(argv[++i]);
			if (!vm) {
				fprintf(stderr, "veilctl: no route for '%s'\n", argv[i]);
				return 1;
			}
		} else if (!strcmp(argv[i], "--client") && i + 1 < argc) {
			if (!vm_addr_parse(argv[++i], client))
				return usage_error("'%s' is not an IP address", argv[i]);
			want_client = 1;
		} else if (!strcmp(argv[i], "--count")) {
			count_only = 1;
		} else {
			return usage_error("unknown flows argument '%s'", argv[i]);
		}
	}
	if (is_dpdk)
		return flows_list_daemon(vm, want_client ? client : NULL, count_only);
	int fd = map_open("flows");
	struct flows_list l = { .vm = vm, .client = want_client ? client : NULL, .count_only = count_only };
	struct vm_flows t;
	struct timespec now;

	if (fd < 0)
		return 1;
	if (vm_flows_open(&t, fd, -1)) {
		fprintf(stderr, "veilctl: %s/flows is not a flow table this veilctl reads (another build's?)\n", pin_root);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	l.now_ns = now.tv_sec * 1000000000ULL + now.tv_nsec;
	if (!count_only) {
		if (json)
			printf("[");
		else
			printf("%-40s %5s  %-40s %5s  %8s  %-24s %8s  %s\n", "CLIENT", "PORT", "VIP", "PORT", "VM", "NODE", "AGE_S",
			       "FIN");
	}
	vm_flows_walk(&t, flow_row, &l);
	vm_flows_close(&t);
	long n = l.n;
	if (count_only)
		printf(json ? "{\"flows\": %ld}\n" : "%ld\n", n);
	else if (json)
		printf("]\n");
	return 0;
}

/* ---------- node connections ---------- */

struct conns_list {
	__u32 vm;
	int count_only;
	long n;
};

/* One connection of conns, if the filter takes it. */
static int conn_row(void *arg, const struct flow_key *kp, const void *vp)
{
	struct conns_list *l = arg;
	const struct flow_key k = *kp;
	const struct conn_val v = *(const struct conn_val *)vp;
	char a1[64], a2[64], a3[64];

	if (l->vm && v.vm_id != l->vm)
		return 0;
	l->n++;
	if (l->count_only)
		return 0;
	const char *state = v.state == VM_CONN_ESTABLISHED ? "established" : "syn_sent";
	if (json)
		printf("%s{\"client\": \"%s\", \"client_port\": %u, \"vip\": \"%s\", \"vip_port\": %u, \"vm_id\": %u, "
		       "\"gateway\": \"%s\", \"state\": \"%s\", \"seq_delta\": %u, \"ts_delta\": %u, \"fin\": \"%s\", "
		       "\"cli_nxt\": %u}", l->n > 1 ? ", " : "",
		       addr_s(v.client, a1), ntohs(k.client_port_be), addr_s(v.vip, a2), ntohs(k.vip_port_be),
		       v.vm_id, addr_s(v.gw, a3), state, v.seq_delta, v.ts_delta, vm_fin_name(v.fin), v.cli_nxt);
	else
		printf("%-40s %5u  %-24s %5u  %8u  %-24s %-12s %11u  %s\n", addr_s(v.client, a1), ntohs(k.client_port_be),
		       addr_s(v.vip, a2), ntohs(k.vip_port_be), v.vm_id, addr_s(v.gw, a3), state, v.seq_delta,
		       vm_fin_name(v.fin));
	return 0;
}

static int conns_cmd(int argc, char **argv)
{
	__u32 vm = 0;
	int count_only = 0;

	for (int i = argc >= 1 && !strcmp(argv[0], "list") ? 1 : 0; i < argc; i++) {
		if (!strcmp(argv[i], "--vm") && i + 1 < argc)
			vm = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--count"))
			count_only = 1;
		else
			return usage_error("unknown conns argument '%s'", argv[i]);
	}
	int fd = map_open("conns");
	struct conns_list l = { .vm = vm, .count_only = count_only };
	struct vm_flows t;

	if (fd < 0)
		return 1;
	if (vm_flows_open(&t, fd, -1)) {
		fprintf(stderr, "veilctl: %s/conns is not a flow table this veilctl reads (another build's?)\n", pin_root);
		return 1;
	}
	if (!count_only) {
		if (json)
			printf("[");
		else
			printf("%-40s %5s  %-24s %5s  %8s  %-24s %-12s %11s  %s\n", "CLIENT", "PORT", "VIP", "PORT", "VM",
			       "GATEWAY", "STATE", "SEQ_DELTA", "FIN");
	}
	vm_flows_walk(&t, conn_row, &l);
	vm_flows_close(&t);
	long n = l.n;
	if (count_only)
		printf(json ? "{\"conns\": %ld}\n" : "%ld\n", n);
	else if (json)
		printf("]\n");
	return 0;
}

/* ---------- stats ---------- */

static volatile sig_atomic_t stop;
static void on_int(int sig)
{
	stop = 1;
}

static int read_stats(int fd, __u64 *v, int n)
{
	if (is_dpdk) {
		json_object *o = daemon_json("stats");
		if (!o)
			return 1;
		for (int i = 0; i < n; i++)
			v[i] = jint(o, vm_gw_stat_names[i]);
		json_object_put(o);
		return 0;
	}
	if (is_node)
		return vm_node_stats_read(fd, (struct node_stats *)v);
	(void)n;
	return vm_gw_stats_read(fd, (struct gw_stats *)v);
}

static int stats_cmd(int argc, char **argv)
{
	int watch = 0, secs = 1;
	const char *const *names = is_node ? vm_node_stat_names : vm_gw_stat_names;
	int n = is_node ? vm_node_stat_count : vm_gw_stat_count;
	__u64 cur[64] = { 0 }, prev[64] = { 0 };

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-w") || !strcmp(argv[i], "--watch")) {
			watch = 1;
			/* a number after it is the interval: a whole number of seconds, at least 1 */
			if (i + 1 < argc && strcmp(argv[i + 1], "-w") && strcmp(argv[i + 1], "--watch")) {
				char *end;
				errno = 0;
				long v = strtol(argv[++i], &end, 10);
				if (errno || *end || end == argv[i] || v < 1 || v > 86400)
					return usage_error("stats --watch takes a whole number of seconds from 1 to 86400, "
							   "not '%s'", argv[i]);
				secs = v;
			}
		} else {
			return usage_error("unknown stats argument '%s'", argv[i]);
		}
	}
	int fd = is_dpdk ? -1 : map_open(is_node ? "node_stats" : "gw_stats");
	if (fd < 0 && !is_dpdk)
		return 1;
	signal(SIGINT, on_int);
	if (read_stats(fd, cur, n))
		return 1;
	for (int round = 0; !stop; round++) {
		if (round) {
			memcpy(prev, cur, sizeof(cur));
			sleep(secs);
			if (read_stats(fd, cur, n))
				return 1;
		}
		if (json) {
			printf("{");
			for (int i = 0; i < n; i++) {
				printf("%s\"%s\": %llu", i ? ", " : "", names[i], (unsigned long long)cur[i]);
				if (round)
					printf(", \"%s_per_s\": %.1f", names[i], (cur[i] - prev[i]) / (double)secs);
			}
			printf("}\n");
		} else {
			if (watch)
				printf("\n%-20s %16s %14s\n", "COUNTER", "TOTAL", round ? "PER SECOND" : "");
			else
				printf("%-20s %16s\n", "COUNTER", "TOTAL");
			for (int i = 0; i < n; i++) {
				if (!cur[i] && !watch)
					continue;
				if (round)
					printf("%-20s %16llu %14.1f\n", names[i], (unsigned long long)cur[i],
					       (cur[i] - prev[i]) / (double)secs);
				else
					printf("%-20s %16llu\n", names[i], (unsigned long long)cur[i]);
			}
		}
		fflush(stdout);
		if (!watch)
			break;
	}
	return 0;
}

/* ---------- status ---------- */

static int status_cmd(void)
{
	char *a = daemon_ask("status");

	if (a) {
		if (json) {
			fputs(a, stdout);
		} else {
			/* a readable rendering of the daemon's JSON: one "key: value" a line */
			int depth = 0;
			for (char *p = a; *p; p++) {
				if (*p == '{' || *p == '[') {
					depth++;
					if (*p == '[' || (depth > 1 && p[-1] == ' ' && p[-2] == ':'))
						printf("\n%*s", depth * 2, "");
				} else if (*p == '}' || *p == ']') {
					depth--;
				} else if (*p == ',') {
					printf("\n%*s", depth > 1 ? depth * 2 : 0, "");
					while (p[1] == ' ')
						p++;
				} else if (*p != '"' && *p != '\n') {
					putchar(*p);
				}
			}
			printf("\ndaemon: up (answered on %s)\n", sock_path);
		}
		free(a);
		return 0;
	}
	/* down: what the pins say, and exit 3 (as an init script's status) */
	if (is_dpdk) {
		if (json)
			printf("{\"daemon\": \"down\", \"control_socket\": \"%s\"}\n", sock_path);
		else
			printf("daemon: down (veil-gw-dpdk does not answer on %s)\n", sock_path);
		return 3;
	}
	/* the daemon is down: what the pins say */
	const char *gw_maps[] = { "routes", "vips", "flows", "hello_asm", "asm_early", "cookie_secret" };
	const char *node_maps[] = { "vms", "conns", "conn_rev", "hellos" };
	const char **maps = is_node ? node_maps : gw_maps;
	int nm = is_node ? 4 : 6;
	if (json)
		printf("{\"daemon\": \"down\", \"pin_root\": \"%s\", \"maps\": {", pin_root);
	else
		printf("daemon: down (no answer on %s); pinned maps under %s:\n", sock_path, pin_root);
	for (int i = 0; i < nm; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", pin_root, maps[i]);
		int fd = bpf_obj_get(path);
		long e = vm_map_count(fd), c = vm_map_capacity(fd);
		if (json)
			printf("%s\"%s\": {\"entries\": %ld, \"capacity\": %ld}", i ? ", " : "", maps[i], e, c);
		else
			printf("  %-14s %10ld / %ld\n", maps[i], e, c);
		if (fd >= 0)
			close(fd);
	}
	if (!is_node) {
		struct cookie_secret s = { 0 };
		__u32 zero = 0;
		int fd = map_open("cookie_secret");
		if (fd >= 0 && !bpf_map_lookup_elem(fd, &zero, &s) && s.rotate_s) {
			long age = (long)(vm_tai_seconds() - s.epoch * s.rotate_s);
			if (json)
				printf("}, \"cookie_epoch\": %llu, \"cookie_age_s\": %ld, \"cookie_rotate_s\": %u}\n",
				       (unsigned long long)s.epoch, age, s.rotate_s);
			else
				printf("cookie key: epoch %llu, %ld s old (rotates every %u s; stale once past %u s "
				       "without the daemon)\n", (unsigned long long)s.epoch, age, s.rotate_s, 2 * s.rotate_s);
			return 3;
		}
	}
	if (json)
		printf("}}\n");
	return 3;
}

/* ---------- finding the running daemon ---------- */

/* The runtime files in run_dir of the daemons alive now (the pid is there
 * and is that daemon); want, if given, is a daemon's name or a runtime
 * file's (n1 for n1.json).  Fills found_* from the one found.  0 found,
 * 1 none, 2 several (said). */
static int discover(const char *run_dir, const char *want, int quiet)
{
	char alive[8][200];
	int nalive = 0;
	struct dirent *de;
	DIR *d = opendir(run_dir);

	if (!d)
		return 1;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char path[600], comm[64] = "", stem[256];
		json_object *o;
		if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		snprintf(stem, sizeof(stem), "%.*s", (int)(len - 5), de->d_name);
		snprintf(path, sizeof(path), "%s/%s", run_dir, de->d_name);
		if (!(o = json_object_from_file(path)))
			continue;
		const char *name = jstr(o, "daemon");
		long long pid = jint(o, "pid");
		if ((strcmp(name, "veil-gw") && strcmp(name, "veil-node") && strcmp(name, "veil-gw-dpdk")) ||
		    (want && strcmp(want, name) && strcmp(want, stem))) {
			json_object_put(o);
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%lld/comm", pid);
		FILE *f = pid > 0 ? fopen(path, "re") : NULL;
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
			comm[strcspn(comm, "\n")] = 0;
		}
		/* a file left by a daemon that died, or its pid reused since */
		if (strcmp(comm, name)) {
			json_object_put(o);
			continue;
		}
		if (nalive < 8)
			snprintf(alive[nalive], sizeof(alive[0]), "%s (%s/%s, pid %lld, config %s)", name, run_dir,
				 de->d_name, pid, jstr(o, "config"));
		if (nalive++ == 0) {
			snprintf(found_daemon, sizeof(found_daemon), "%s", name);
			snprintf(found_pin, sizeof(found_pin), "%s", jstr(o, "pin_root"));
			snprintf(found_sock, sizeof(found_sock), "%s", jstr(o, "control_socket"));
		}
		json_object_put(o);
	}
	closedir(d);
	if (nalive > 1)
		found_daemon[0] = found_pin[0] = found_sock[0] = 0;
	if (nalive > 1 && quiet)
		return 2;
	if (nalive > 1) {
		fprintf(stderr, "veilctl: %d daemons run here:\n", nalive);
		for (int i = 0; i < nalive && i < 8; i++)
			fprintf(stderr, "  %s\n", alive[i]);
		fprintf(stderr, "choose one with --daemon NAME (a daemon's name or its runtime file's), "
				"or give -p PIN_ROOT -s SOCKET\n");
		return 2;
	}
	return nalive ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pin-root", required_argument, NULL, 'p' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int o;
	char path[512];
	struct stat sb;
	const char *want = NULL, *run_dir = getenv("VEIL_RUN_DIR");
	int pin_given = 0;

	vm_prog_name = "veilctl";
	vm_lib_logging(false);
	while ((o = getopt_long(argc, argv, "+p:s:jd:r:h", opts, NULL)) != -1) {
		switch (o) {
		case 'p': pin_root = optarg; pin_given = 1; break;
		case 's': sock_path = optarg; break;
		case 'j': json = 1; break;
		case 'd': want = optarg; break;
		case 'r': run_dir = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind];
	/* replay needs no daemon, only its pin root when there is no --routes:
	 * the running one's if there is one, else the default */
	int is_replay = !strcmp(cmd, "replay");
	if (!pin_given && !sock_path) {
		int d = discover(run_dir && run_dir[0] ? run_dir : VM_RUN_DIR_DEFAULT, want, is_replay && !want);
		if (d == 2 && !is_replay)
			return 2;
		if (d == 0) {
			if (found_pin[0])
				pin_root = found_pin;
			if (strcmp(found_sock, "off"))
				sock_path = found_sock;
			is_dpdk = !strcmp(found_daemon, "veil-gw-dpdk");
		} else if (want) {
			fprintf(stderr, "veilctl: no daemon '%s' runs here (no runtime file of a live one in %s): "
				"give -p and -s\n", want, run_dir && run_dir[0] ? run_dir : VM_RUN_DIR_DEFAULT);
			return 1;
		}
	}
	snprintf(path, sizeof(path), "%s/node_stats", pin_root);
	is_node = stat(path, &sb) == 0 || !strcmp(found_daemon, "veil-node");
	if (!sock_path)
		sock_path = is_node ? "/run/veilmesh/veil-node.sock" : "/run/veilmesh/veil-gw.sock";
	/* no pin root given and no runtime file: the daemon on the socket (given, or the
	 * default) says which it is and where its maps are */
	if (!pin_given && !found_daemon[0] && !is_replay) {
		char *a = daemon_ask("status");
		json_object *st = a ? json_tokener_parse(a) : NULL;
		if (st && !strcmp(jstr(st, "daemon"), "veil-gw-dpdk"))
			is_dpdk = 1;
		else if (st && jstr(st, "pin_root")[0]) {
			snprintf(found_pin, sizeof(found_pin), "%s", jstr(st, "pin_root"));
			pin_root = found_pin;
			is_node = !strcmp(jstr(st, "daemon"), "veil-node");
		}
		json_object_put(st);
		free(a);
	}
	int rest = argc - optind - 1;
	char **args = argv + optind + 1;

	if (!strcmp(cmd, "replay"))
		return vm_replay(rest, args, pin_root, json);
	if (!strcmp(cmd, "status"))
		return rest ? usage_error("status takes no arguments%s", "") : status_cmd();
	if (!strcmp(cmd, "stats"))
		return stats_cmd(rest, args);
	if (is_dpdk && !strcmp(cmd, "conns"))
		return usage_error("conns: %s is veil-gw-dpdk's, a gateway (try flows)", sock_path);
	if (is_node && (!strcmp(cmd, "routes") || !strcmp(cmd, "flows")))
		return usage_error("%s: this pin root holds a node's maps (try conns)", cmd);
	if (!strcmp(cmd, "routes"))
		return routes_cmd(rest, args);
	if (!strcmp(cmd, "flows"))
		return flows_cmd(rest, args);
	if (!strcmp(cmd, "conns"))
		return is_node ? conns_cmd(rest, args) : usage_error("conns: %s holds a gateway's maps (try flows)", pin_root);
	return usage_error("unknown command '%s'", cmd);
}
