// SPDX-License-Identifier: Apache-2.0
/* The daemons' skeleton (daemon.h): log line, command line, signals, pidfile,
 * the metrics every daemon serves. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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
