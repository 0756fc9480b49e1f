/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stateful fuzzers' files (fuzz_fastpath, fuzz_node): their inputs keep
 * state from one to the next (connections, tables), so a failing input
 * alone may not fail again.  The inputs since the harness's last fresh
 * start go to a trace (VEIL_FUZZ_TRACE): each a 4-byte length and its
 * bytes; a length of 0 and 2 bytes is a fresh start's port base.
 * VEIL_FUZZ_REPLAY=FILE runs such a file's inputs first.  Seeds are
 * written into a fresh corpus (VEIL_FUZZ_SEED_DIR) by the harness.
 */
#ifndef VEIL_TEST_FUZZ_TRACE_H
#define VEIL_TEST_FUZZ_TRACE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An input, before it runs. */
static inline void fuzz_trace_input(FILE *t, const uint8_t *data, size_t size)
{
	uint32_t n = (uint32_t)size;

	if (!t)
		return;
	fwrite(&n, 4, 1, t);
	fwrite(data, 1, size, t);
	fflush(t);
}

/* A fresh start on ports from base: the trace begins again there. */
static inline void fuzz_trace_restart(FILE *t, uint16_t base)
{
	uint32_t zero = 0;

	if (!t)
		return;
	rewind(t);
	if (ftruncate(fileno(t), 0))
		abort();
	fwrite(&zero, 4, 1, t);
	fwrite(&base, 2, 1, t);
}

/* Runs a trace's inputs in order; a fresh start's record hands its port
 * base to on_base. */
static inline void fuzz_trace_replay(const char *who, const char *path, void (*on_base)(uint16_t))
{
	static uint8_t b[4096];
	uint32_t n;
	uint16_t base;
	long k = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		perror(path);
		abort();
	}
	while (fread(&n, 4, 1, f) == 1 && n <= sizeof(b) && fread(b, 1, n ? n : 2, f) == (n ? n : 2)) {
		if (!n) {
			memcpy(&base, b, 2);
			on_base(base);
		} else {
			LLVMFuzzerTestOneInput(b, n);
		}
		k++;
	}
	fclose(f);
	fprintf(stderr, "%s: %ld inputs replayed from %s\n", who, k, path);
}

/* A seed file dir/name, unless the corpus has it. */
static inline void fuzz_seed(const char *dir, const char *name, const uint8_t *b, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (access(path, F_OK) == 0)
		return;
	if ((f = fopen(path, "we"))) {
		fwrite(b, 1, n, f);
		fclose(f);
	}
}

#endif
