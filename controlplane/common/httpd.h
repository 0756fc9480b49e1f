/* A small HTTP(S) server on libevent: evhttp over bufferevent_openssl, TLS 1.3
 * only, header/body limits and idle deadlines.  The validator's setup, factored
 * out for the daemons that serve an API (veil-controller).
 *
 *   SSL_CTX *tls = httpd_tls(cert, key, err, len);           // NULL cert: plain HTTP
 *   struct httpd *h = httpd_new(base, "198.18.0.1:8443", tls, &lim, cb, arg, err, len);
 *   ... event_base_dispatch(base) ...
 *   httpd_free(h);
 */
#ifndef VEIL_HTTPD_H
#define VEIL_HTTPD_H
#include <stddef.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

struct httpd_limits {
	size_t max_headers;   /* bytes of request headers; 0 = 8192 */
	size_t max_body;      /* bytes of request body; 0 = 65536 (evhttp answers 413 above) */
	int idle_s;           /* read/write deadline per connection; 0 = 10 */
	int methods;          /* EVHTTP_REQ_* allowed; 0 = GET|POST|PUT|DELETE */
};

struct httpd;

/* A TLS 1.3-only server context with the certificate chain and key (PEM). */
SSL_CTX *httpd_tls(const char *cert, const char *key, char *err, size_t errlen);
/* Splits "ADDR:PORT" / "[V6]:PORT" and binds a listening socket (SO_REUSEADDR). */
int httpd_listen(const char *addrport, char *err, size_t errlen);
/* Serves on base: every request goes to cb.  tls NULL = plain HTTP. */
struct httpd *httpd_new(struct event_base *base, const char *addrport, SSL_CTX *tls, const struct httpd_limits *lim,
			void (*cb)(struct evhttp_request *, void *), void *arg, char *err, size_t errlen);
void httpd_free(struct httpd *h);
/* Sends status with a body (Content-Type given or application/json). */
void httpd_send(struct evhttp_request *req, int status, const char *ctype, const char *body, size_t len);
/* {"error":"<code>","message":"<msg>"} with status. */
void httpd_error(struct evhttp_request *req, int status, const char *code, const char *msg);
const char *httpd_reason(int status);
#endif
