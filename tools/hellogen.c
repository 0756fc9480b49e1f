// SPDX-License-Identifier: Apache-2.0
/*
 * veil-hellogen: completes real TLS handshakes (OpenSSL) while shaping the
 * ClientHello the way browsers and stranger clients do, then fetches a path
 * and reports the time to first byte.
 *
 *   --size N          ClientHello size in bytes: the handshake message, its
 *                     4-byte header included (each TLS record adds 5 bytes on
 *                     the wire). Exact with --order sni-last (the default):
 *                     OpenSSL's own hello is built once in memory first and
 *                     the padding sized from it; about N with sni-first. The
 *                     size sent is reported (hello_bytes=). 0: OpenSSL's own
 *                     hello (~310 B with a short name)
 *   --order sni-last  pad with an unknown extension that OpenSSL writes before
 *                     all others: server_name lands late, past the first
 *                     segment for big hellos (like Chrome's key share)
 *   --order sni-first pad inside ALPN, written after server_name
 *   --fragment N      TLS records of at most N bytes (512..16384): the hello
 *                     spans several records
 *   --mss N           TCP_MAXSEG for the connection: smaller segments
 *   --path P          what to GET (default /); the whole response is read
 *   --expect-bytes N  the response body must be exactly N bytes
 *   --expect-sha256 H the response body's SHA-256 must be H (hex)
 *   --deadline-ms N   a connection that has not finished (handshake, request,
 *                     whole response, close) N ms after it began is a hang:
 *                     abandoned and counted in hung= (default: none; the
 *                     per-operation --timeout-ms still applies)
 *   --bind-port P     every connection from this local port (port reuse)
 *   --close client    keep-alive request, the body read by Content-Length,
 *                     then the client closes first (close_notify, FIN, then
 *                     waits for the server's FIN); default: the server closes
 *   --max-fails N     stop after N failed connections (the rest not tried)
 *   --samples FILE    write the time to first byte of every connection that
 *                     succeeded to FILE, in ms, one a line (for pooling runs)
 *
 * Time to first byte: from before the socket is made (TCP handshake, TLS
 * handshake, the request) to the first byte of the HTTP response.
 * Each connection prints one line (failures even with --quiet) with its
 * local port, the time to first byte and the total time; the summary has
 * the p50/p90/p99 of the time to first byte and the p50/p99/max of the
 * total time of the connections that succeeded (nearest rank), the hello's
 * size as sent (hello_bytes=, and hello_wire_bytes= with its record headers)
 * and the TLS version every successful connection negotiated (tls=, "mixed"
 * when they differ).
 *
 * Exit code: 0 when every connection succeeded, 1 otherwise, 2 bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define PAD_EXT 0xff5a   /* private-use range, ignored by servers */

static size_t pad_len;
static int sni_last = 1;
static size_t hello_bytes, hello_wire;
static int hello_records;

static int add_pad(SSL *s, unsigned int ext, unsigned int ctx, const unsigned char **out, size_t *outlen,
		   X509 *x, size_t chainidx, int *al, void *arg)
{
	static unsigned char zeros[16384];
	if (!sni_last || !pad_len)
		return 0;   /* 0: do not send the extension */
	*out = zeros;
	*outlen = pad_len > sizeof(zeros) ? sizeof(zeros) : pad_len;
	return 1;
}

static void free_pad(SSL *s, unsigned int ext, unsigned int ctx, const unsigned char *out, void *arg)
{
}

static void on_msg(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl, void *arg)
{
	if (!write_p)
		return;
	/* records of the first flight: the hello's (a client sends nothing
	 * else before the server's answer) */
	if (type == SSL3_RT_HEADER && len >= 5 && ((const unsigned char *)buf)[0] == 0x16 && !SSL_is_init_finished(ssl) &&
	    SSL_get_state(ssl) == TLS_ST_CW_CLNT_HELLO) {
		hello_records++;
		hello_wire += 5 + (((const unsigned char *)buf)[3] << 8 | ((const unsigned char *)buf)[4]);
	}
	if (type == SSL3_RT_HANDSHAKE && len > 0 && ((const unsigned char *)buf)[0] == 1)
		hello_bytes = len;
}

static volatile sig_atomic_t expired;

static void on_alarm(int sig)
{
	(void)sig;
	expired = 1;   /* interrupts the blocking call (no SA_RESTART) */
}

static void arm(long ms)
{
	struct itimerval it = { .it_value = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 } };
	setitimer(ITIMER_REAL, &it, NULL);
}

/* The body of an HTTP/1.1 response held in buf[0..len): where it starts,
 * the status line's code and Content-Length (-1 when absent); 0 while the
 * headers are incomplete. */
static int http_head(const char *buf, size_t len, size_t *body, int *status, long *clen)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		return 0;
	*body = end - buf + 4;
	*status = len > 12 && !strncmp(buf, "HTTP/1.", 7) ? atoi(buf + 9) : 0;
	*clen = -1;
	for (const char *l = memmem(buf, *body, "\r\n", 2); l && l < end; l = memmem(l + 2, end - l, "\r\n", 2))
		if (!strncasecmp(l + 2, "content-length:", 15))
			*clen = strtol(l + 17, NULL, 10);
	return 1;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The ClientHello this context sends for NAME, built in memory (no
 * connection): its handshake message's size. */
static size_t own_hello_size(SSL_CTX *ctx, const char *name)
{
	SSL *s = SSL_new(ctx);
	SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
	SSL_set_tlsext_host_name(s, name);
	hello_bytes = 0;
	SSL_connect(s);   /* writes the hello, then wants the server's answer */
	size_t n = hello_bytes;
	SSL_free(s);
	ERR_clear_error();
	return n;
}

/* nearest rank: the smallest sample with at least p of them at or below it */
static double pct(const double *v, long n, double p)
{
	if (n <= 0)
		return 0;
	long k = (long)(p * n + 0.999999) - 1;
	return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: veil-hellogen --connect ADDR:PORT --name NAME [--cafile F] [--size N]\n"
		   "         [--order sni-last|sni-first] [--fragment N] [--mss N] [--count N]\n"
		   "         [--path P] [--timeout-ms N] [--quiet] [--expect-bytes N] [--expect-sha256 HEX]\n"
		   "         [--deadline-ms N] [--bind-port P] [--close client|server] [--max-fails N]\n"
		   "         [--samples FILE]\n"
		   "IPv6 addresses in brackets: --connect [2001:db8:100::1]:443\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' }, { "name", required_argument, NULL, 'n' },
		{ "cafile", required_argument, NULL, 'a' }, { "size", required_argument, NULL, 's' },
		{ "order", required_argument, NULL, 'o' }, { "fragment", required_argument, NULL, 'f' },
		{ "mss", required_argument, NULL, 'm' }, { "count", required_argument, NULL, 'k' },
		{ "path", required_argument, NULL, 'p' }, { "timeout-ms", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' }, { "help", no_argument, NULL, 'h' },
		{ "expect-bytes", required_argument, NULL, 'B' }, { "expect-sha256", required_argument, NULL, 'H' },
		{ "deadline-ms", required_argument, NULL, 'D' }, { "bind-port", required_argument, NULL, 'P' },
		{ "close", required_argument, NULL, 'C' }, { "max-fails", required_argument, NULL, 'F' },
		{ "samples", required_argument, NULL, 'S' }, { 0 }
	};
	const char *target = NULL, *name = NULL, *cafile = NULL, *path = "/";
	long size = 0, frag = 0, mss = 0, count = 1, timeout_ms = 5000;
	long expect_bytes = -1, deadline_ms = 0, bind_port = 0, max_fails = 0;
	const char *expect_sha = NULL, *samples = NULL;
	int quiet = 0, client_closes = 0, o;

	while ((o = getopt_long(argc, argv, "c:n:a:s:o:f:m:k:p:t:qh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': target = optarg; break;
		case 'n': name = optarg; break;
		case 'a': cafile = optarg; break;
		case 's': size = strtol(optarg, NULL, 10); break;
		case 'o':
			if (!strcmp(optarg, "sni-last")) sni_last = 1;
			else if (!strcmp(optarg, "sni-first")) sni_last = 0;
			else { usage(stderr); return 2; }
			break;
		case 'f': frag = strtol(optarg, NULL, 10); break;
		case 'm': mss = strtol(optarg, NULL, 10); break;
		case 'k': count = strtol(optarg, NULL, 10); break;
		case 'p': path = optarg; break;
		case 't': timeout_ms = strtol(optarg, NULL, 10); break;
		case 'q': quiet = 1; break;
		case 'B': expect_bytes = strtol(optarg, NULL, 10); break;
		case 'H': expect_sha = optarg; break;
		case 'D': deadline_ms = strtol(optarg, NULL, 10); break;
		case 'P': bind_port = strtol(optarg, NULL, 10); break;
		case 'F': max_fails = strtol(optarg, NULL, 10); break;
		case 'S': samples = optarg; break;
		case 'C':
			if (!strcmp(optarg, "client")) client_closes = 1;
			else if (!strcmp(optarg, "server")) client_closes = 0;
			else { usage(stderr); return 2; }
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!target || !name || size < 0 || size > 16000 || (frag && (frag < 512 || frag > 16384)) ||
	    count < 1 || count > 100000 || mss < 0 || deadline_ms < 0 || bind_port < 0 || bind_port > 65535 ||
	    (expect_sha && strlen(expect_sha) != 64)) {
		usage(stderr);
		return 2;
	}
	char host[128], port[16];
	const char *colon = strrchr(target, ':');
	if (!colon || colon == target) {
		usage(stderr);
		return 2;
	}
	if (target[0] == '[') {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - target - 2), target + 1);
	} else {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - target), target);
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *ai;
	if (getaddrinfo(host, port, &hints, &ai)) {
		fprintf(stderr, "veil-hellogen: '%s' is not ADDR:PORT\n", target);
		return 2;
	}

	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (cafile && !SSL_CTX_load_verify_locations(ctx, cafile, NULL)) {
		fprintf(stderr, "veil-hellogen: cannot read %s\n", cafile);
		return 2;
	}
	SSL_CTX_set_verify(ctx, cafile ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	SSL_CTX_add_custom_ext(ctx, PAD_EXT, SSL_EXT_CLIENT_HELLO, add_pad, free_pad, NULL, NULL, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_msg_callback(ctx, on_msg);

	FILE *sf = NULL;
	if (samples && !(sf = fopen(samples, "w"))) {
		fprintf(stderr, "veil-hellogen: cannot write %s: %s\n", samples, strerror(errno));
		return 2;
	}

	/* Pad OpenSSL's own hello to the size asked: an extension of our own
	 * adds 4 bytes of header and its data. */
	size_t base = own_hello_size(ctx, name);
	if (!base) {
		fprintf(stderr, "veil-hellogen: OpenSSL built no ClientHello for %s\n", name);
		return 2;
	}
	if (sni_last)
		pad_len = size >= (long)base + 4 ? size - base - 4 : 0;
	else
		pad_len = size > (long)base ? size - base : 0;
	unsigned char *alpn = NULL;
	size_t alpn_len = 0;
	if (!sni_last && pad_len) {
		/* ALPN: filler protocol names, then the real ones */
		alpn = calloc(1, pad_len + 64);
		size_t left = pad_len;
		while (left > 20) {
			size_t l = left - 1 > 200 ? 200 : left - 1;
			alpn[alpn_len++] = l;
			memset(alpn + alpn_len, 'x', l);
			alpn_len += l;
			left -= l + 1;
		}
		memcpy(alpn + alpn_len, "\x08http/1.1", 9);   /* we speak HTTP/1.1 */
		alpn_len += 9;
		SSL_CTX_set_alpn_protos(ctx, alpn, alpn_len);
	}

	if (deadline_ms) {
		struct sigaction sa = { .sa_handler = on_alarm };   /* no SA_RESTART */
		sigaction(SIGALRM, &sa, NULL);
	}
	double *ttfb = calloc(count, sizeof(double)), *total = calloc(count, sizeof(double));
	const char *tls = NULL;
	size_t cap = 1 << 16;
	char *resp = malloc(cap);
	int fails = 0, hung = 0, nok = 0;
	long tried = 0;
	for (long i = 0; i < count && !(max_fails && fails >= max_fails); i++, tried++) {
		double t0 = now_ms(), t_first = 0, t_byte = 0;
		expired = 0;
		if (deadline_ms)
			arm(deadline_ms);
		int fd = socket(ai->ai_family, SOCK_STREAM, 0), one = 1, ok = 0;
		struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (mss)
			setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &(int){ (int)mss }, sizeof(int));
		hello_bytes = 0;
		hello_wire = 0;
		hello_records = 0;
		SSL *ssl = NULL;
		char err[256] = "";
		unsigned lport = 0;
		size_t len = 0, body = 0;
		int status = 0;
		long clen = -1;
		if (bind_port) {
			struct sockaddr_storage la = { .ss_family = ai->ai_family };
			if (ai->ai_family == AF_INET6)
				((struct sockaddr_in6 *)&la)->sin6_port = htons(bind_port);
			else
				((struct sockaddr_in *)&la)->sin_port = htons(bind_port);
			if (bind(fd, (struct sockaddr *)&la, ai->ai_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
				 sizeof(struct sockaddr_in))) {
				snprintf(err, sizeof(err), "bind port %ld: %s", bind_port, strerror(errno));
				goto done;
			}
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			snprintf(err, sizeof(err), "connect: %s", strerror(errno));
			goto done;
		}
		struct sockaddr_storage me;
		socklen_t ml = sizeof(me);
		if (!getsockname(fd, (struct sockaddr *)&me, &ml))
			lport = ntohs(me.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_port :
							      ((struct sockaddr_in *)&me)->sin_port);
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		SSL_set_tlsext_host_name(ssl, name);
		if (cafile)
			SSL_set1_host(ssl, name);
		if (frag)
			SSL_set_max_send_fragment(ssl, frag);
		if (SSL_connect(ssl) != 1) {
			unsigned long e = ERR_get_error();
			snprintf(err, sizeof(err), "handshake: %s", expired ? "deadline" : e ? ERR_reason_error_string(e) :
				 errno ? strerror(errno) : "connection closed");
			goto done;
		}
		char req[512];
		int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: %s\r\n\r\n", path, name,
				 client_closes ? "keep-alive" : "close");
		if (SSL_write(ssl, req, n) != n) {
			snprintf(err, sizeof(err), "write failed%s", expired ? " (deadline)" : "");
			goto done;
		}
		/* the whole response: up to the server's close, or Content-Length
		 * bytes when the client is the one to close */
		int have_head = 0, r;
		for (;;) {
			if (have_head && client_closes && clen >= 0 && len >= body + clen)
				break;
			if (cap - len < 16384)
				resp = realloc(resp, cap *= 2);
			r = SSL_read(ssl, resp + len, 16384);
			if (r <= 0)
				break;
			if (!len)
				t_first = now_ms();
			len += r;
			if (!have_head)
				have_head = http_head(resp, len, &body, &status, &clen);
		}
		if (expired) {
			snprintf(err, sizeof(err), "deadline: %zu response bytes", len);
			goto done;
		}
		if (!len) {
			snprintf(err, sizeof(err), "no response");
			goto done;
		}
		t_byte = t_first - t0;
		if (!have_head || status != 200) {
			snprintf(err, sizeof(err), "status: %.40s", resp);
			goto done;
		}
		size_t blen = len - body;
		if ((clen >= 0 && (long)blen != clen) || (expect_bytes >= 0 && (long)blen != expect_bytes)) {
			snprintf(err, sizeof(err), "body %zu bytes, Content-Length %ld, expected %ld", blen, clen, expect_bytes);
			goto done;
		}
		if (expect_sha) {
			unsigned char md[32];
			char hex[65];
			EVP_Digest(resp + body, blen, md, NULL, EVP_sha256(), NULL);
			for (int k = 0; k < 32; k++)
				sprintf(hex + 2 * k, "%02x", md[k]);
			if (strcasecmp(hex, expect_sha)) {
				snprintf(err, sizeof(err), "body sha256 %s", hex);
				goto done;
			}
		}
		if (client_closes) {
			/* close_notify and FIN in one segment (corked), so the
			 * client's FIN is first on the wire: the server cannot
			 * answer close_notify with a FIN of its own before it */
			setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one));
			SSL_shutdown(ssl);
			shutdown(fd, SHUT_WR);
			char sink[4096];
			while ((r = read(fd, sink, sizeof(sink))) > 0)
				;
			if (r < 0 || expired) {
				snprintf(err, sizeof(err), "close: no FIN from the server (%s)", expired ? "deadline" : strerror(errno));
				goto done;
			}
		}
		ok = 1;
		if (!tls)
			tls = SSL_get_version(ssl);
		else if (strcmp(tls, SSL_get_version(ssl)))
			tls = "mixed";
		ttfb[nok] = t_byte;
		if (sf)
			fprintf(sf, "%.4f\n", t_byte);
		total[nok++] = now_ms() - t0;
done:
		if (deadline_ms)
			arm(0);
		if (!ok)
			fails++;
		if (expired)
			hung++;
		if (!quiet || !ok)
			printf("conn %ld: port %u hello %zu bytes in %d record(s): %s%s (ttfb %.2f ms, total %.2f ms, body %zu bytes)\n",
			       i, lport, hello_bytes + 0, hello_records, ok ? "ok" : "FAILED ", err, ok ? t_byte : 0.0,
			       now_ms() - t0, len > body ? len - body : 0);
		fflush(stdout);
		if (ssl) {
			if (!client_closes || !ok)
				SSL_shutdown(ssl);
			SSL_free(ssl);
		}
		close(fd);
	}
	if (sf && fclose(sf)) {
		fprintf(stderr, "veil-hellogen: writing %s: %s\n", samples, strerror(errno));
		fails++;
	}
	qsort(ttfb, nok, sizeof(double), cmp_d);
	qsort(total, nok, sizeof(double), cmp_d);
	printf("summary: name=%s size=%ld order=%s fragment=%ld connections=%ld tried=%ld failed=%d hung=%d hello_bytes=%zu "
	       "hello_wire_bytes=%zu tls=%s ttfb_p50_ms=%.3f ttfb_p90_ms=%.3f ttfb_p99_ms=%.3f total_p50_ms=%.3f "
	       "total_p99_ms=%.3f total_max_ms=%.3f\n",
	       name, size, sni_last ? "sni-last" : "sni-first", frag, count, tried, fails, hung, hello_bytes, hello_wire,
	       tls ? tls : "none", pct(ttfb, nok, 0.5), pct(ttfb, nok, 0.9), pct(ttfb, nok, 0.99), pct(total, nok, 0.5),
	       pct(total, nok, 0.99), nok ? total[nok - 1] : 0);
	free(total);
	free(resp);
	free(ttfb);
	free(alpn);
	SSL_CTX_free(ctx);
	freeaddrinfo(ai);
	return fails || tried < count ? 1 : 0;
}
