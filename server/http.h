/* http.h - the HTTP transport on libmicrohttpd: event loops (one thread and epoll set
 * each, fed by server/acceptor.c, TLS), connection limits (server/conns.c), request
 * targets checked before routing (server/target.c), request bodies with the size limit,
 * per-request state, JSON responses and errors, access log, and deferral of write
 * requests to the writer thread. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include "server.h"

#include <jansson.h>
#include <stddef.h>

struct MHD_Connection;
struct conn_slot;

typedef struct http_req {
    srv *s;
    struct MHD_Connection *conn;
    const char *method;        /* borrowed from libmicrohttpd for the request's life */
    const char *version;       /* likewise */
    char *raw;                 /* the request target as sent (raw_len bytes + NUL) */
    size_t raw_len;
    const char *raw_at;        /* where libmicrohttpd's buffer held it, or NULL */
    char *method_raw;          /* the method when a NUL byte cut it short, else NULL */
    size_t method_raw_len;
    int began;                 /* the access handler has been called for it */
    struct conn_slot *slot;         /* its connection in the connection table, or NULL */
    char *path;                /* decoded path (target.c); NULL when the target was refused */
    int route;                 /* route id for metrics (routes.h) */
    char request_id[33];
    double t0;                 /* monotonic start time */
    const auth_key *key;       /* set by routes' auth check; released at completion */
    char *body;                /* request body, NUL-terminated (NULL when empty) */
    size_t body_len, body_cap;
    int body_too_large;
    /* response */
    int has_resp;
    int status;
    char *resp;
    size_t resp_len;
    int resp_static;           /* resp is not to be freed */
    const char *ctype;
    const char *hdr_name;      /* one extra header (Allow, Retry-After), or NULL */
    char hdr_value[64];
    const char *err_code;      /* error code for the access log (static string) */
    int suspended;
} http_req;

/* Starts listening according to s->cfg (threads, TLS, timeouts, connection limits; the
 * connection limit is lowered to fit the descriptor limit, with a warning). -1 with a
 * message. */
int http_start(srv *s, char *err, size_t errlen);
/* 1 when the address `listen` (HOST:PORT as for --listen) is a loopback address, 0 when
 * not, -1 when it cannot be parsed or resolved (http_start then says why). */
int http_listen_is_loopback(const char *listen);
/* Port actually bound (useful with port 0). */
int http_port(srv *s);
/* Copies the connections open on each event loop (HTTP thread) into open[], at most max
 * of them; returns how many it copied (0 before http_start). */
int http_loop_connections(srv *s, int *open, int max);
/* Stops accepting connections; connections already open are served. */
void http_quiesce(srv *s);
/* Closes every connection and stops the threads. */
void http_stop(srv *s);

/* Sets the response. `body` is copied unless `is_static` (then it must outlive the
 * request). */
void http_reply(http_req *r, int status, const char *ctype, const char *body, size_t len,
                int is_static);
/* Sets the response to body (reference stolen) serialised as JSON. */
void http_reply_json(http_req *r, int status, json_t *body);
/* Sets the response to JSON text (owned by the request from now on, freed with it);
 * text NULL (its writer ran out of memory): a 500. */
void http_reply_json_text(http_req *r, int status, char *text, size_t len);
/* Sets {"error":{"code","message","field"}}; field may be NULL (JSON null). */
void http_error(http_req *r, int status, const char *code, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* Request header / query-string argument, or NULL. Valid during the request. */
const char *http_header(http_req *r, const char *name);
const char *http_query(http_req *r, const char *name);

/* Runs fn(r, arg) on the writer thread, then free_arg(arg) (may be NULL), then sends
 * the response fn set. While queued the connection is suspended, so HTTP threads stay
 * free for reads. When the write queue is full the response is set to 429, free_arg(arg)
 * is called and -1 returned; otherwise 0. */
int http_defer(http_req *r, void (*fn)(http_req *r, void *arg), void *arg,
               void (*free_arg)(void *arg));

#endif
