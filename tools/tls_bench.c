// SPDX-License-Identifier: Apache-2.0
/*
 * veil-tls-bench: the server's CPU for one full TLS 1.3 handshake (X25519,
 * the given certificate and key), in memory (a BIO pair, no sockets), with
 * the validator's settings (TLS 1.3 only, no session cache, one ticket).  The
 * baseline tools/bench_attest.sh sets beside the validator's figures: what a
 * new connection costs before any attestation work.
 *
 *   veil-tls-bench CERT KEY [N]     prints {"handshakes":N,"server_us":U}
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <openssl/ssl.h>

static double cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: veil-tls-bench CERT KEY [N]\n"
		       "The server half of N (default 500) in-memory TLS 1.3 handshakes with this certificate: CPU\n"
		       "microseconds per handshake, as JSON (the baseline of tools/bench_attest.sh).\n");
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: veil-tls-bench CERT KEY [N]\n");
		return 2;
	}
	int n = argc > 3 ? atoi(argv[3]) : 500;
	SSL_CTX *s = SSL_CTX_new(TLS_server_method()), *c = SSL_CTX_new(TLS_client_method());
	if (!s || !c || n < 1 || SSL_CTX_use_certificate_chain_file(s, argv[1]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(s, argv[2], SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "veil-tls-bench: cannot use %s / %s\n", argv[1], argv[2]);
		return 1;
	}
	SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION);
	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(s, 1);
	double server = 0;
	int done = 0;
	for (int i = 0; i < n; i++) {
		double t0 = cpu_s();
		SSL *ss = SSL_new(s), *cc = SSL_new(c);
		server += cpu_s() - t0;
		BIO *b1, *b2;
		BIO_new_bio_pair(&b1, 0, &b2, 0);
		SSL_set_bio(ss, b1, b1);
		SSL_set_bio(cc, b2, b2);
		SSL_set_accept_state(ss);
		SSL_set_connect_state(cc);
		for (int k = 0; k < 10; k++) {
			SSL_do_handshake(cc);
			t0 = cpu_s();
			int r = SSL_do_handshake(ss);
			server += cpu_s() - t0;
			if (r == 1 && SSL_is_init_finished(cc)) {
				done++;
				break;
			}
		}
		char b[1];
		t0 = cpu_s();
		SSL_write(ss, "x", 1);   /* after the ticket, as an answer would */
		server += cpu_s() - t0;
		SSL_read(cc, b, 1);
		t0 = cpu_s();
		SSL_free(ss);
		server += cpu_s() - t0;
		SSL_free(cc);
	}
	if (done != n) {
		fprintf(stderr, "veil-tls-bench: %d of %d handshakes completed\n", done, n);
		return 1;
	}
	printf("{\"handshakes\":%d,\"server_us\":%.1f}\n", n, server / n * 1e6);
	return 0;
}
