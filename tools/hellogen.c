// SPDX-License-Identifier: Apache-2.0
/*
 * veil-hellogen: completes real TLS handshakes (OpenSSL) while shaping the
 * ClientHello the way browsers and stranger clients do, then fetches a path
 * and reports the time to first byte.
 *
 *   --size N          ClientHello size in bytes (about; the exact size is
 *                     reported), 0 for OpenSSL's own (~300 B)
 *   --order sni-last  pad with an unknown extension that OpenSSL writes before
 *                     all others: server_name lands late, past the first
 *                     segment for big hellos (like Chrome's key share)
 *   --order sni-first pad inside ALPN, written after server_name
 *   --fragment N      TLS records of at most N bytes (512..16384): the hello
 *                     spans several records
 *   --mss N           TCP_MAXSEG for the connection: smaller segments
 *
 * Exit code: 0 when every connection succeeded, 1 otherwise, 2 bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define PAD_EXT 0xff5a   /* private-use range, ignored by servers */

static size_t pad_len;
static int sni_last = 1;
static size_t hello_bytes;
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
	if (type == SSL3_RT_HEADER && len >= 5 && ((const unsigned char *)buf)[0] == 0x16 && !hello_bytes)
		hello_records++;
	if (type == SSL3_RT_HANDSHAKE && len > 0 && ((const unsigned char *)buf)[0] == 1)
		hello_bytes = len;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
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
		   "         [--path P] [--timeout-ms N] [--quiet]\n"
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
		{ "quiet", no_argument, NULL, 'q' }, { "help", no_argument, NULL, 'h' }, { 0 }
	};
	const char *target = NULL, *name = NULL, *cafile = NULL, *path = "/";
	long size = 0, frag = 0, mss = 0, count = 1, timeout_ms = 5000;
	int quiet = 0, o;

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
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!target || !name || size < 0 || size > 16000 || (frag && (frag < 512 || frag > 16384)) ||
	    count < 1 || count > 100000 || mss < 0) {
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

	/* OpenSSL's own hello with a name is ~300 bytes; pad to the size asked. */
	size_t base = 300 + strlen(name);
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

	double *ttfb = calloc(count, sizeof(double));
	int fails = 0;
	for (long i = 0; i < count; i++) {
		double t0 = now_ms();
		int fd = socket(ai->ai_family, SOCK_STREAM, 0), one = 1, ok = 0;
		struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (mss)
			setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &(int){ (int)mss }, sizeof(int));
		hello_bytes = 0;
		hello_records = 0;
		SSL *ssl = NULL;
		char err[256] = "";
		if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			snprintf(err, sizeof(err), "connect: %s", strerror(errno));
			goto done;
		}
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		SSL_set_tlsext_host_name(ssl, name);
		if (cafile)
			SSL_set1_host(ssl, name);
		if (frag)
			SSL_set_max_send_fragment(ssl, frag);
		if (SSL_connect(ssl) != 1) {
			snprintf(err, sizeof(err), "handshake: %s", ERR_reason_error_string(ERR_get_error()));
			goto done;
		}
		char req[512], buf[4096];
		int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, name);
		if (SSL_write(ssl, req, n) != n) {
			snprintf(err, sizeof(err), "write failed");
			goto done;
		}
		int got = SSL_read(ssl, buf, sizeof(buf) - 1);
		if (got <= 0) {
			snprintf(err, sizeof(err), "no response");
			goto done;
		}
		ttfb[i] = now_ms() - t0;
		buf[got] = 0;
		ok = !strncmp(buf, "HTTP/1.1 200", 12);
		if (!ok)
			snprintf(err, sizeof(err), "status: %.40s", buf);
		while (SSL_read(ssl, buf, sizeof(buf)) > 0)
			;
done:
		if (!ok)
			fails++;
		if (!quiet || !ok)
			printf("conn %ld: hello %zu bytes in %d record(s): %s%s (ttfb %.2f ms)\n", i, hello_bytes + 0,
			       hello_records, ok ? "ok" : "FAILED ", err, ok ? ttfb[i] : now_ms() - t0);
		if (ssl) {
			SSL_shutdown(ssl);
			SSL_free(ssl);
		}
		close(fd);
	}
	qsort(ttfb, count, sizeof(double), cmp_d);
	printf("summary: name=%s size=%ld order=%s fragment=%ld connections=%ld failed=%d hello_bytes=%zu "
	       "ttfb_p50_ms=%.3f ttfb_p90_ms=%.3f ttfb_p99_ms=%.3f\n", name, size, sni_last ? "sni-last" : "sni-first",
	       frag, count, fails, hello_bytes, ttfb[count / 2], ttfb[(count * 9) / 10], ttfb[(count * 99) / 100]);
	free(ttfb);
	free(alpn);
	SSL_CTX_free(ctx);
	freeaddrinfo(ai);
	return fails ? 1 : 0;
}
