// SPDX-License-Identifier: Apache-2.0
/* HTTP(S) server setup on libevent, shared by the API daemons (httpd.h). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>

#include "common/daemon.h"
#include "common/httpd.h"

struct httpd {
	struct evhttp *http;
	SSL_CTX *tls;
	int fd;
};

SSL_CTX *httpd_tls(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *t = SSL_CTX_new(TLS_server_method());
	if (!t)
		return snprintf(err, errlen, "TLS context: out of memory"), NULL;
	SSL_CTX_set_min_proto_version(t, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(t, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(t, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_use_certificate_chain_file(t, cert) != 1 || SSL_CTX_use_PrivateKey_file(t, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t) != 1) {
		snprintf(err, errlen, "cannot use TLS certificate %s with key %s", cert, key);
		SSL_CTX_free(t);
		return NULL;
	}
	return t;
}

int httpd_listen(const char *addrport, char *err, size_t errlen)
{
	int one = 1, fd = vm_listen_tcp(addrport, 1024, "listen", err, errlen);

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
	struct httpd *h = arg;
	if (!h->tls)
		return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	SSL *ssl = SSL_new(h->tls);
	return ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
}

struct httpd *httpd_new(struct event_base *base, const char *addrport, SSL_CTX *tls, const struct httpd_limits *lim,
			void (*cb)(struct evhttp_request *, void *), void *arg, char *err, size_t errlen)
{
	struct httpd *h = calloc(1, sizeof(*h));
	if (!h)
		return snprintf(err, errlen, "out of memory"), NULL;
	h->tls = tls;
	h->fd = httpd_listen(addrport, err, errlen);
	if (h->fd < 0 || !(h->http = evhttp_new(base))) {
		if (h->fd >= 0)
			close(h->fd);
		free(h);
		return NULL;
	}
	evhttp_set_bevcb(h->http, new_conn, h);
	evhttp_set_gencb(h->http, cb, arg);
	evhttp_set_max_headers_size(h->http, lim && lim->max_headers ? lim->max_headers : 8192);
	evhttp_set_max_body_size(h->http, lim && lim->max_body ? lim->max_body : 65536);
	evhttp_set_timeout(h->http, lim && lim->idle_s ? lim->idle_s : 10);
	evhttp_set_allowed_methods(h->http, lim && lim->methods ? lim->methods
							     : EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	if (evhttp_accept_socket(h->http, h->fd)) {
		snprintf(err, errlen, "listen %s: cannot accept", addrport);
		evhttp_free(h->http);
		close(h->fd);
		free(h);
		return NULL;
	}
	return h;
}

void httpd_free(struct httpd *h)
{
	if (!h)
		return;
	evhttp_free(h->http);   /* closes the bound socket */
	free(h);
}

const char *httpd_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 412: return "Precondition Failed";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return status < 400 ? "OK" : "Error";
	}
}

void httpd_send(struct evhttp_request *req, int status, const char *ctype, const char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype ? ctype : "application/json");
	if (out && body)
		evbuffer_add(out, body, len);
	evhttp_send_reply(req, status, httpd_reason(status), out);
	if (out)
		evbuffer_free(out);
}

void httpd_error(struct evhttp_request *req, int status, const char *code, const char *msg)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(msg));
	size_t n;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
	httpd_send(req, status, NULL, s, n);
	json_object_put(o);
}
