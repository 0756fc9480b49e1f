// SPDX-License-Identifier: Apache-2.0
/*
 * The accelerator the agent's VMs run on.  libvirt offers KVM wherever
 * /dev/kvm exists; that does not mean the emulator can run the vCPU the
 * agent's domains ask for (host-passthrough).  On a nested host whose KVM
 * refuses a model-specific register qemu sets at every vCPU reset (qemu 7.2:
 * "failed to set MSR 0x10a", then an assertion aborts it, seen 2026-12-06 on
 * a 6.18.44-fc-v1300 guest), every launch would fail.  So the agent asks the
 * emulator itself once: KVM, that CPU, paused at start (-S), and the monitor
 * asked for the VM's status, which it answers only once the machine is built
 * and its vCPU reset.  When it cannot, the agent takes libvirt's software
 * emulation (TCG) and says why (event=kvm_unusable, and --scan's
 * libvirt.kvm_unusable).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "agent.h"

#define KVM_PROBE_MS 15000   /* a busy host builds the machine in well under this */

static double now_ms(void)
{
	return ag_now() * 1e3;
}

/* The first line of s that says something, into why. */
static void first_line(const char *s, char *why, size_t whylen)
{
	while (*s == '\n' || *s == ' ')
		s++;
	size_t n = strcspn(s, "\n");
	snprintf(why, whylen, "%.*s", (int)n, s);
}

int ag_kvm_probe(const char *emulator, const char *machine, char *why, size_t whylen)
{
	int in[2], out[2], err[2];
	char obuf[4096] = "", ebuf[4096] = "";
	size_t on = 0, en = 0;

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execl(emulator, emulator, "-accel", "kvm", "-machine", machine, "-cpu", "host", "-m", "64", "-display", "none",
		      "-nodefaults", "-serial", "none", "-S", "-monitor", "stdio", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	/* an emulator gone already makes the write fail (EPIPE, its stderr
	 * says why), not kill the agent: SIGPIPE held and taken back */
	static const char ask[] = "info status\nquit\n";
	sigset_t sp, old;
	sigemptyset(&sp);
	sigaddset(&sp, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sp, &old);
	ssize_t w = write(in[1], ask, sizeof(ask) - 1);
	if (w < 0 && errno == EPIPE) {
		const struct timespec zero = { 0 };
		sigtimedwait(&sp, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(in[1]);
	struct pollfd pf[2] = { { .fd = out[0], .events = POLLIN }, { .fd = err[0], .events = POLLIN } };
	double deadline = now_ms() + KVM_PROBE_MS;
	int open_fds = 2;
	while (open_fds && now_ms() < deadline) {
		if (poll(pf, 2, (int)(deadline - now_ms()) + 1) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char *b = i ? ebuf : obuf;
			size_t *n = i ? &en : &on;
			ssize_t r = read(pf[i].fd, b + *n, 4095 - *n);
			if (r > 0) {
				*n += (size_t)r;
				b[*n] = 0;
			}
			if (r <= 0 || *n == 4095) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	int st = 0;
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	if (strstr(obuf, "VM status"))
		return 0;
	if (ebuf[0])
		first_line(ebuf, why, whylen);
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		snprintf(why, whylen, "cannot run %s", emulator);
	else if (WIFSIGNALED(st))
		snprintf(why, whylen, "the emulator died of signal %d before the VM was built", WTERMSIG(st));
	else
		snprintf(why, whylen, "the emulator did not build the VM within %d s", KVM_PROBE_MS / 1000);
	return -1;
}

static int domcaps_of(virConnectPtr c, const char *virttype, struct ag_domcaps *dc, char *err, size_t errlen)
{
	char *x = virConnectGetDomainCapabilities(c, NULL, "x86_64", "q35", virttype, 0);
	if (!x) {
		snprintf(err, errlen, "%s", ag_virt_err("no domain capabilities"));
		return -1;
	}
	int rc = ag_domcaps_parse(x, strlen(x), dc, err, errlen);
	free(x);
	return rc;
}

int ag_domcaps_get(virConnectPtr c, struct ag_domcaps *dc, char *err, size_t errlen)
{
	char why[256];

	if (domcaps_of(c, NULL, dc, err, errlen))
		return -1;
	if (strcmp(dc->domain_type, "kvm") || !ag_kvm_probe(dc->emulator, dc->machine, why, sizeof(why)))
		return 0;
	struct ag_domcaps tcg;
	char terr[256];
	if (domcaps_of(c, "qemu", &tcg, terr, sizeof(terr))) {
		snprintf(err, errlen, "KVM cannot run a VM here (%s), and no software emulation: %s", why, terr);
		return -1;
	}
	*dc = tcg;
	snprintf(dc->kvm_unusable, sizeof(dc->kvm_unusable), "%s", why);
	return 0;
}
