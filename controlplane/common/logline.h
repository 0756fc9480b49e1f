/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemons' log line: one event a line on stderr,
 *   2026-12-02T08:55:01.123Z WHO: event=... key=value ...
 * with every control or non-ASCII byte of the text shown as '?', so that no
 * value (a reason quoted from a request, a libvirt message) can break a line
 * or forge another.  Daemons call vm_log() (common/daemon.h), which writes
 * through this with WHO = vm_prog_name.
 */
#ifndef VEIL_LOGLINE_H
#define VEIL_LOGLINE_H

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static inline void vm_vlogline(const char *who, const char *fmt, va_list ap)
{
	char ts[40], line[1200];
	struct timespec t;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &t);
	gmtime_r(&t.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(line, sizeof(line), fmt, ap);
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	/* one write: lines of threads writing at once do not interleave */
	fprintf(stderr, "%s.%03ldZ %s: %s\n", ts, t.tv_nsec / 1000000, who, line);
	fflush(stderr);
}

#endif
