// SPDX-License-Identifier: Apache-2.0
/* Readiness: the VM's service answers a TLS handshake through the node's
 * own path.  The certificate is the VM's business (and the client's); the
 * agent only wants the handshake to complete. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "vmm.h"

static int wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	return poll(&p, 1, ms) == 1 ? 0 : -1;
}

int ag_tls_probe(const char *addr, int port, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		snprintf(err, errlen, "not an address: %s", addr);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int rc = -1, soerr = 0;
	socklen_t el = sizeof(soerr);
	if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (wait_fd(fd, POLLOUT, timeout_ms) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) || soerr) {
		snprintf(err, errlen, "connect: %s", soerr ? strerror(soerr) : "timed out");
		close(fd);
		return -1;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	for (int spins = 0; spins < 100; spins++) {
		int r = SSL_connect(ssl);
		if (r == 1) {
			rc = 0;
			break;
		}
		int e = SSL_get_error(ssl, r);
		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
		    wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, timeout_ms)) {
			snprintf(err, errlen, "TLS handshake: %s",
				 e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? "timed out"
				 : ERR_peek_error() ? ERR_reason_error_string(ERR_peek_error()) : "closed");
			ERR_clear_error();
			break;
		}
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return rc;
}
