// SPDX-License-Identifier: Apache-2.0
/* The daemons' two doors: a unix control socket for veilctl (one request line,
 * one JSON answer line) and a Prometheus text endpoint.  Single-threaded,
 * polled from the daemon's main loop; every read has a timeout, so a client
 * that stalls cannot stall the daemon for more than a second. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "veil.h"

static int listen_unix(const char *path, char *err, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[108];
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, len, "control socket path too long: %s", path);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir(dir, 0700);
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	/* A socket file left by a dead daemon is ours to replace; a live one is not. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		snprintf(err, len, "another daemon answers on %s", path);
		return -1;
	}
	unlink(path);
	mode_t old = umask(0077);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc || listen(fd, 8))
		goto fail;
	return fd;
fail:
	snprintf(err, len, "control socket %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int listen_tcp(const char *hostport, char *err, size_t len)
{
	char host[64];
	__u8 a[16];
	const char *c = strrchr(hostport, ':');
	int fd, one = 1, fam;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;

	if (!c || vm_hostport_ok(hostport)) {
		snprintf(err, len, "metrics address '%s' is not ADDR:PORT", hostport);
		return -1;
	}
	if (hostport[0] == '[')
		snprintf(host, sizeof(host), "%.*s", (int)(c - hostport - 2), hostport + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)(c - hostport), hostport);
	fam = vm_addr_parse(host, a);
	if (fam == VM_AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(atoi(c + 1));
		memcpy(&s4->sin_addr, a + 12, 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(atoi(c + 1));
		memcpy(&s6->sin6_addr, a, 16);
		sl = sizeof(*s6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 16))
		goto fail;
	return fd;
fail:
	snprintf(err, len, "metrics on %s: %s", hostport, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int vm_ctl_open(struct vm_ctl *c, const char *sock, const char *metrics, char *err, size_t len)
{
	memset(c, 0, sizeof(*c));
	c->unix_fd = c->http_fd = -1;
	if (sock && sock[0] && strcmp(sock, "off")) {
		c->unix_fd = listen_unix(sock, err, len);
		if (c->unix_fd < 0)
			return -1;
		snprintf(c->sock_path, sizeof(c->sock_path), "%s", sock);
	}
	if (metrics && metrics[0] && strcmp(metrics, "off")) {
		c->http_fd = listen_tcp(metrics, err, len);
		if (c->http_fd < 0) {
			vm_ctl_close(c);
			return -1;
		}
	}
	return 0;
}

void vm_ctl_close(struct vm_ctl *c)
{
	if (c->unix_fd >= 0) {
		close(c->unix_fd);
		unlink(c->sock_path);
	}
	if (c->http_fd >= 0)
		close(c->http_fd);
	c->unix_fd = c->http_fd = -1;
}

/* Reads until a newline (control) or a blank line (HTTP), 1 s at most. */
static ssize_t read_request(int fd, char *buf, size_t len, const char *end)
{
	struct timeval tv = { .tv_sec = 1 };
	size_t n = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (n + 1 < len) {
		ssize_t got = read(fd, buf + n, len - 1 - n);
		if (got <= 0)
			break;
		n += got;
		buf[n] = 0;
		if (strstr(buf, end))
			break;
	}
	buf[n] = 0;
	return n;
}

static void write_all(int fd, const char *p, size_t n)
{
	struct timeval tv = { .tv_sec = 1 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= w;
	}
}

void vm_ctl_poll(struct vm_ctl *c, int ms, vm_ctl_cmd_fn cmd, vm_ctl_metrics_fn metrics, void *arg)
{
	struct pollfd p[2] = { { .fd = c->unix_fd, .events = POLLIN }, { .fd = c->http_fd, .events = POLLIN } };

	if (poll(p, 2, ms) <= 0)
		return;
	if (p[0].revents & POLLIN) {
		int fd = accept4(c->unix_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			char line[1024], *out = NULL;
			size_t outlen = 0;
			read_request(fd, line, sizeof(line), "\n");
			line[strcspn(line, "\r\n")] = 0;
			FILE *f = open_memstream(&out, &outlen);
			cmd(arg, line, f);
			fclose(f);
			write_all(fd, out, outlen);
			free(out);
			close(fd);
		}
	}
	if (p[1].revents & POLLIN) {
		int fd = accept4(c->http_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			char req[4096], *body = NULL, head[256];
			size_t blen = 0;
			read_request(fd, req, sizeof(req), "\r\n\r\n");
			int ok = !strncmp(req, "GET /metrics ", 13) || !strncmp(req, "GET / ", 6);
			FILE *f = open_memstream(&body, &blen);
			if (ok)
				metrics(arg, f);
			else
				fputs("not found: try /metrics\n", f);
			fclose(f);
			int hl = snprintf(head, sizeof(head),
					  "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
					  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
					  ok ? "200 OK" : "404 Not Found", blen);
			write_all(fd, head, hl);
			write_all(fd, body, blen);
			free(body);
			close(fd);
		}
	}
}

/* ---------- runtime file ---------- */

int vm_runtime_write(const char *daemon, const char *control, const char *config, const char *pin_root,
		     const char *metrics, char *out, size_t outlen)
{
	char tmp[300], *abs_config = realpath(config, NULL);
	FILE *f;

	/* named after the socket (one per daemon by construction: a second
	 * daemon on a socket is refused), so daemons that share a folder, as
	 * the lab's do, each have their own */
	if (control && control[0] && strcmp(control, "off")) {
		size_t n = strlen(control);
		if (n > 5 && !strcmp(control + n - 5, ".sock"))
			n -= 5;
		snprintf(out, outlen, "%.*s.json", (int)n, control);
	} else {
		mkdir(VM_RUN_DIR_DEFAULT, 0755);
		snprintf(out, outlen, "%s/%s.json", VM_RUN_DIR_DEFAULT, daemon);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	f = fopen(tmp, "we");
	if (!f) {
		free(abs_config);
		return -1;
	}
	fprintf(f, "{\"daemon\": ");
	vm_json_str(f, daemon);
	fprintf(f, ", \"pid\": %d, \"config\": ", getpid());
	vm_json_str(f, abs_config ? abs_config : config);
	fputs(", \"pin_root\": ", f);
	vm_json_str(f, pin_root ? pin_root : "");
	fputs(", \"control_socket\": ", f);
	vm_json_str(f, control ? control : "off");
	fputs(", \"metrics\": ", f);
	vm_json_str(f, metrics ? metrics : "off");
	fputs("}\n", f);
	free(abs_config);
	if (fclose(f) || rename(tmp, out)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

void vm_runtime_remove(const char *path)
{
	if (path && path[0])
		unlink(path);
}

/* ---------- shared pieces of the answers ---------- */

long vm_map_count(int fd)
{
	__u8 key[512], next[512];
	void *prev = NULL;
	long n = 0;

	if (fd < 0)
		return -1;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		n++;
		memcpy(key, next, sizeof(key));
		prev = key;
	}
	return n;
}

long vm_map_capacity(int fd)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return -1;
	return info.max_entries;
}

void vm_metrics_maps(FILE *out, const char *const *names, const int *fds, int n)
{
	fputs("# HELP veilmesh_map_entries Entries in a pinned map.\n# TYPE veilmesh_map_entries gauge\n", out);
	for (int i = 0; i < n; i++)
		fprintf(out, "veilmesh_map_entries{map=\"%s\"} %ld\n", names[i], vm_map_count(fds[i]));
	fputs("# HELP veilmesh_map_capacity Maximum entries of a pinned map.\n# TYPE veilmesh_map_capacity gauge\n", out);
	for (int i = 0; i < n; i++)
		fprintf(out, "veilmesh_map_capacity{map=\"%s\"} %ld\n", names[i], vm_map_capacity(fds[i]));
}

void vm_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* The data-plane daemons' command line (common/daemon.h): the common options
 * plus -s/--skb-mode, -k/--keep-attached and -v/--verbose, which also lets
 * libbpf's and libxdp's debug messages through. */
int vm_daemon_args(int argc, char **argv, struct vm_daemon_opts *o, void (*usage)(FILE *), int *code)
{
	const struct vm_daemon_cli cli = { .usage = usage, .flags = VM_OPT_VERBOSE | VM_OPT_ATTACH };

	if (vm_daemon_parse(argc, argv, &cli, o, code))
		return -1;
	vm_lib_logging(o->verbose);
	return 0;
}

void vm_ctl_answer(FILE *out, int ok, const char *err, int changes)
{
	if (ok) {
		fprintf(out, "{\"ok\": true, \"changes\": %d}\n", changes);
	} else {
		fputs("{\"ok\": false, \"error\": ", out);
		vm_json_str(out, err);
		fputs("}\n", out);
	}
}
