// SPDX-License-Identifier: Apache-2.0
/* The daemons' skeleton (daemon.h): log line, command line, signals, pidfile,
 * the metrics every daemon serves. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/logline.h"

const char *vm_prog_name = "veilmesh";
bool vm_log_quiet;

void vm_vlog(const char *fmt, va_list ap)
{
	if (!vm_log_quiet)
		vm_vlogline(vm_prog_name, fmt, ap);
}

void vm_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vm_vlog(fmt, ap);
	va_end(ap);
}

/* ---------- command line ---------- */

static const char *pending_pidfile;   /* --pidfile, written by vm_daemon_signals unless written before */

int vm_daemon_parse(int argc, char **argv, const struct vm_daemon_cli *cli, struct vm_daemon_opts *o, int *code)
{
	static const struct option common[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'n' },
		{ "pidfile", required_argument, NULL, 0x100 },
		{ "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "skb-mode", no_argument, NULL, 's' },
		{ "keep-attached", no_argument, NULL, 'k' },
	};
	struct option opts[64];
	char shorts[64];
	size_t n = 0;
	int opt;

	memset(o, 0, sizeof(*o));
	/* the common options, then the daemon's; -v, -s and -k only where asked for */
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
		if ((common[i].val == 'v' && !(cli->flags & VM_OPT_VERBOSE)) ||
		    ((common[i].val == 'c' || common[i].val == 'n') && (cli->flags & VM_OPT_NO_CONFIG)) ||
		    ((common[i].val == 's' || common[i].val == 'k') && !(cli->flags & VM_OPT_ATTACH)))
			continue;
		opts[n++] = common[i];
	}
	for (const struct option *e = cli->extra; e && e->name && n < sizeof(opts) / sizeof(opts[0]) - 1; e++)
		opts[n++] = *e;
	memset(&opts[n], 0, sizeof(opts[n]));
	snprintf(shorts, sizeof(shorts), "%sh%s%s%s", cli->flags & VM_OPT_NO_CONFIG ? "" : "c:n",
		 cli->flags & VM_OPT_VERBOSE ? "v" : "",
		 cli->flags & VM_OPT_ATTACH ? "sk" : "", cli->extra_short ? cli->extra_short : "");

	optind = cli->first > 0 ? cli->first : 1;
	while ((opt = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		switch (opt) {
		case 'c': o->config = optarg; break;
		case 'n': o->check = true; break;
		case 0x100: o->pidfile = optarg; break;
		case 'v': o->verbose = true; break;
		case 's': o->skb = true; break;
		case 'k': o->keep = true; break;
		case 'h':
			cli->usage(stdout);
			*code = 0;
			return -1;
		case '?':   /* getopt said what */
			goto misuse;
		default:
			if (!cli->extra_fn || cli->extra_fn(cli->arg, opt, optarg)) {
				*code = 2;
				return -1;
			}
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", vm_prog_name, argv[optind]);
		goto misuse;
	}
	if (!o->config && !(cli->flags & (VM_OPT_CONFIG_OPTIONAL | VM_OPT_NO_CONFIG))) {
		fprintf(stderr, "%s: --config FILE is required\n", vm_prog_name);
		goto misuse;
	}
	pending_pidfile = o->pidfile;
	return 0;
misuse:
	cli->usage(stderr);
	*code = 2;
	return -1;
}

/* ---------- signals ---------- */

volatile sig_atomic_t vm_stop_sig, vm_reload;
static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP)
		vm_reload = 1;
	else
		vm_stop_sig = sig;
	if (sig_pipe[1] >= 0) {
		char b = (char)sig;
		(void)!write(sig_pipe[1], &b, 1);   /* full pipe: a wake-up is pending anyway */
	}
	errno = saved;
}

static bool pidfile_written;

void vm_daemon_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	char err[512];

	if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC))
		sig_pipe[0] = sig_pipe[1] = -1;   /* the flags still work */
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pending_pidfile && !pidfile_written && vm_daemon_pidfile(pending_pidfile, err, sizeof(err))) {
		vm_log("event=error what=pidfile reason=\"%s\"", err);
		exit(1);
	}
}

int vm_daemon_signal_fd(void)
{
	return sig_pipe[0];
}

int vm_daemon_signal_take(void)
{
	char buf[64];
	int what = 0;

	if (sig_pipe[0] >= 0)
		while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
			;
	if (vm_stop_sig)
		what |= VM_SIG_STOP;
	if (vm_reload) {
		vm_reload = 0;
		what |= VM_SIG_RELOAD;
	}
	return what;
}

/* ---------- pidfile ---------- */

static char pid_path[512];
static pid_t pid_owner;

void vm_daemon_pidfile_remove(void)
{
	char buf[32] = "";
	FILE *f;

	if (!pid_path[0] || getpid() != pid_owner)
		return;
	/* only our own: a second instance started on the same path owns it now */
	f = fopen(pid_path, "re");
	if (f) {
		if (fgets(buf, sizeof(buf), f) && atol(buf) == (long)pid_owner)
			unlink(pid_path);
		fclose(f);
	}
	pid_path[0] = 0;
}

int vm_daemon_pidfile(const char *path, char *err, size_t errlen)
{
	static bool registered;
	char tmp[600];
	FILE *f;

	pidfile_written = true;
	if (!path || !path[0])
		return 0;
	if (strlen(path) >= sizeof(pid_path))
		return snprintf(err, errlen, "%s: path too long", path), -1;
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	f = fopen(tmp, "we");
	if (!f)
		return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
	fprintf(f, "%d\n", (int)getpid());
	if (fclose(f) || rename(tmp, path)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	snprintf(pid_path, sizeof(pid_path), "%s", path);
	pid_owner = getpid();
	if (!registered)
		registered = !atexit(vm_daemon_pidfile_remove);
	return 0;
}

/* ---------- the control socket and the metrics endpoint ---------- */
/* Single-threaded, polled from the daemon's main loop; every read has a
 * timeout, so a client that stalls cannot stall the daemon for more than a
 * second. */

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

int vm_listen_tcp(const char *addrport, int backlog, const char *what, char *err, size_t len)
{
	char host[64];
	const char *c = strrchr(addrport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai;
	char *end;
	unsigned long port = c ? strtoul(c + 1, &end, 10) : 0;
	int fd, one = 1;

	if (!c || c == addrport || (size_t)(c - addrport) >= sizeof(host) || !c[1] || *end || !port || port > 65535)
		goto bad;
	snprintf(host, sizeof(host), "%.*s", (int)(c - addrport), addrport);
	if (host[0] == '[') {
		size_t n = strlen(host);

		if (n < 3 || host[n - 1] != ']')
			goto bad;
		memmove(host, host + 1, n - 2);
		host[n - 2] = 0;
	}
	if (getaddrinfo(host, c + 1, &hints, &ai))
		goto bad;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, backlog)) {
			int e = errno;

			close(fd);
			fd = -1;
			errno = e;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0)
		snprintf(err, len, "%s on %s: %s", what, addrport, strerror(errno));
	return fd;
bad:
	snprintf(err, len, "%s address '%s' is not a numeric ADDR:PORT or [ADDR6]:PORT", what, addrport);
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
		c->http_fd = vm_listen_tcp(metrics, 16, "metrics", err, len);
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
	/* the signal pipe too: a signal taken by any thread ends the wait at once
	 * (the flags stay set for the caller; the pipe is emptied) */
	struct pollfd p[3] = { { .fd = c->unix_fd, .events = POLLIN }, { .fd = c->http_fd, .events = POLLIN },
			       { .fd = sig_pipe[0], .events = POLLIN } };

	if (poll(p, 3, ms) <= 0)
		return;
	if (p[2].revents & POLLIN) {
		char buf[64];
		while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
			;
	}
	if ((p[0].revents & POLLIN) && cmd) {
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
	if ((p[1].revents & POLLIN) && metrics) {
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

/* ---------- metrics ---------- */

void vm_metrics_daemon(FILE *out, uint64_t reloads_ok, uint64_t reloads_rejected, uint64_t started)
{
	fprintf(out, "# HELP veilmesh_config_reloads_total Config reloads by result.\n"
		     "# TYPE veilmesh_config_reloads_total counter\n"
		     "veilmesh_config_reloads_total{result=\"ok\"} %llu\nveilmesh_config_reloads_total{result=\"rejected\"} %llu\n",
		(unsigned long long)reloads_ok, (unsigned long long)reloads_rejected);
	fprintf(out, "# HELP veilmesh_start_time_seconds When the daemon started (Unix time).\n"
		     "# TYPE veilmesh_start_time_seconds gauge\nveilmesh_start_time_seconds %llu\n",
		(unsigned long long)started);
}
