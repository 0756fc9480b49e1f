/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemons' skeleton, one copy for all of them (veil-gw, veil-node,
 * veil-gw-dpdk, veil-dns, veil-validator, veil-controller, veil-registry serve
 * and worker, veil-agent):
 *
 *  - the log line: vm_log() writes "TIME WHO: event=... key=value" on stderr
 *    (common/logline.h), WHO = vm_prog_name;
 *  - the command line every daemon shares: -c/--config FILE, -n/--check,
 *    --pidfile FILE, -h/--help (usage on stdout, exit 0; misuse: usage on
 *    stderr, exit 2), and on request -v/--verbose and the data plane's
 *    -s/--skb-mode and -k/--keep-attached; a daemon adds its own options;
 *  - signals: SIGTERM/SIGINT stop (vm_stop_sig), SIGHUP reloads (vm_reload),
 *    SIGPIPE ignored.  A poll-loop daemon reads the two flags; a libevent
 *    daemon (or one with threads, where any thread may take the signal) also
 *    watches vm_daemon_signal_fd(), a self-pipe the handler writes a byte to;
 *  - the pidfile: written atomically once the daemon runs, removed at exit;
 *  - the control socket and the metrics endpoint (vm_ctl_*), and the metrics
 *    every daemon serves: config reloads by result and the start time
 *    (veilmesh_config_reloads_total, veilmesh_start_time_seconds).
 *
 * No BPF, no libevent: it links into every daemon (libveildaemon.a, and into
 * libveil.a for the data-plane daemons).
 */
#ifndef VEIL_DAEMON_H
#define VEIL_DAEMON_H

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---------- the log line ---------- */
extern const char *vm_prog_name;   /* WHO in every line ("veilmesh" until a daemon names itself) */
extern bool vm_log_quiet;          /* no lines at all (fuzzers that build a daemon's code) */
void vm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vm_vlog(const char *fmt, va_list ap);

/* ---------- the command line ---------- */
struct vm_daemon_opts {
	const char *config;    /* -c/--config */
	const char *pidfile;   /* --pidfile (NULL: none, or the config file's) */
	bool check;            /* -n/--check: check the config (and its files), print "FILE: ok ...", exit 0 or 2 */
	bool skb, keep;        /* -s/--skb-mode, -k/--keep-attached (VM_OPT_ATTACH) */
	bool verbose;          /* -v/--verbose (VM_OPT_VERBOSE) */
};

enum {
	VM_OPT_VERBOSE = 1 << 0,          /* accept -v/--verbose */
	VM_OPT_ATTACH = 1 << 1,           /* accept -s/--skb-mode and -k/--keep-attached */
	VM_OPT_CONFIG_OPTIONAL = 1 << 2,  /* --config may be left out (the daemon has a default) */
	VM_OPT_NO_CONFIG = 1 << 3,        /* no config file at all: no -c/--config, no -n/--check */
};

struct vm_daemon_cli {
	void (*usage)(FILE *);     /* the daemon's --help text */
	unsigned flags;            /* VM_OPT_* */
	int first;                 /* argv index where options start: 1, or 2 after a subcommand */
	/* the daemon's own options: long ones (ended by { 0 }), their short
	 * letters in getopt's syntax, and what takes them (returns 0, or -1 when
	 * the value is bad: it says why on stderr, the parse exits 2) */
	const struct option *extra;
	const char *extra_short;
	int (*extra_fn)(void *arg, int opt, const char *val);
	void *arg;
};

/* Parses argv; no positional argument is accepted.  Returns 0, or -1 when
 * the caller should exit with *code (--help: 0, misuse: 2). */
int vm_daemon_parse(int argc, char **argv, const struct vm_daemon_cli *cli, struct vm_daemon_opts *o, int *code);

/* The data-plane daemons' set (--config --check --pidfile --skb-mode
 * --keep-attached --verbose --help); also turns libbpf's and libxdp's
 * messages into log lines (dataplane/ctl.c). */
int vm_daemon_args(int argc, char **argv, struct vm_daemon_opts *o, void (*usage)(FILE *), int *code);

/* ---------- signals ---------- */
/* vm_stop_sig: the signal that asked to stop (SIGTERM or SIGINT), 0 while
 * running; vm_reload: 1 after a SIGHUP, until the daemon clears it. */
extern volatile sig_atomic_t vm_stop_sig, vm_reload;
/* Installs the handlers (SIGTERM/SIGINT/SIGHUP, SIGPIPE ignored) and writes
 * the --pidfile the last vm_daemon_parse saw if vm_daemon_pidfile has not
 * written one yet (a pidfile that cannot be written: logged, exit 1). */
void vm_daemon_signals(void);
/* The read end of the self-pipe (non-blocking, close-on-exec) that each
 * handled signal writes a byte to: a libevent daemon adds an EV_READ event on
 * it, a threaded one polls it.  -1 before vm_daemon_signals. */
int vm_daemon_signal_fd(void);
/* Empties the self-pipe and says what was asked since the last call:
 * VM_SIG_STOP (vm_stop_sig is set) and/or VM_SIG_RELOAD (vm_reload is
 * cleared: the caller reloads now). */
enum { VM_SIG_STOP = 1, VM_SIG_RELOAD = 2 };
int vm_daemon_signal_take(void);

/* ---------- pidfile ---------- */
/* Writes our pid to path (atomically: a reader never sees a half-written
 * file) and removes it at exit, if it still holds our pid.  NULL or "" does
 * nothing.  Returns 0, or -1 with the reason in err. */
int vm_daemon_pidfile(const char *path, char *err, size_t errlen);
/* Removes it now (a daemon that leaves through _exit or exec). */
void vm_daemon_pidfile_remove(void);

/* A listening TCP socket (non-blocking, close-on-exec, SO_REUSEADDR) on a
 * numeric ADDR:PORT or [ADDR6]:PORT; -1 and a message that starts with
 * `what` ("metrics", "listen") in err. */
int vm_listen_tcp(const char *addrport, int backlog, const char *what, char *err, size_t len);

/* ---------- the control socket and the metrics endpoint ---------- */
/* Two doors, polled from the daemon's main loop: a unix socket (one request
 * line, one answer) for veilctl, and plain HTTP GET /metrics (Prometheus
 * text).  "off" or "" closes a door. */
struct vm_ctl {
	int unix_fd, http_fd;
	char sock_path[108];
};
typedef void (*vm_ctl_cmd_fn)(void *arg, const char *line, FILE *out);
typedef void (*vm_ctl_metrics_fn)(void *arg, FILE *out);
/* metrics: ADDR:PORT or [ADDR6]:PORT.  Returns 0, or -1 with the reason in err. */
int vm_ctl_open(struct vm_ctl *c, const char *sock, const char *metrics, char *err, size_t len);
/* Waits up to ms for a request on either door and answers it (cmd or metrics
 * may be NULL: that door is not served); a signal ends the wait at once. */
void vm_ctl_poll(struct vm_ctl *c, int ms, vm_ctl_cmd_fn cmd, vm_ctl_metrics_fn metrics, void *arg);
void vm_ctl_close(struct vm_ctl *c);
/* A JSON string, quoted and escaped. */
void vm_json_str(FILE *f, const char *s);
/* A control request's answer: {"ok": true, "changes": N} or the error. */
void vm_ctl_answer(FILE *out, int ok, const char *err, int changes);

/* ---------- metrics every daemon serves ---------- */
/* Prometheus text: veilmesh_config_reloads_total{result="ok"|"rejected"} and
 * veilmesh_start_time_seconds (Unix time). */
void vm_metrics_daemon(FILE *out, uint64_t reloads_ok, uint64_t reloads_rejected, uint64_t started);

#endif
