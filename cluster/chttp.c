/* chttp.c - the small HTTP front of the cluster roles on libmicrohttpd: a thread pool, whole
 * request bodies (bounded), one handler call per request, JSON replies. */
#include "chttp.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_BODY ((size_t)64 << 20)

struct chttp {
    struct MHD_Daemon *d;
    chttp_handler h;
    void *user;
};

typedef struct req {
    char *body;
    size_t len, cap;
    int too_large;
} req;

static enum MHD_Result send_reply(struct MHD_Connection *conn, int status, char *body,
                                  const char *ctype, long retry_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body ? strlen(body) : 0, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE
                                                                : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype ? ctype : "application/json");
    if (retry_after > 0) {
        char secs[32];
        snprintf(secs, sizeof secs, "%ld", retry_after);
        MHD_add_response_header(r, "Retry-After", secs);
    }
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

/* The API key a request presents: Authorization: Bearer KEY, else X-API-Key; NULL. */
static const char *presented_key(struct MHD_Connection *conn)
{
    const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (authz && !strncasecmp(authz, "Bearer ", 7)) {
        authz += 7;
        while (*authz == ' ')
            authz++;
        return *authz ? authz : NULL;
    }
    const char *x = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Key");
    return x && *x ? x : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    chttp *h = cls;
    req *q = *con_cls;
    if (!q) {
        if (!(q = calloc(1, sizeof *q)))
            return MHD_NO;
        *con_cls = q;
        return MHD_YES;
    }
    if (*upload_size) {
        if (q->len + *upload_size > MAX_BODY) {
            q->too_large = 1;
        } else {
            if (q->len + *upload_size + 1 > q->cap) {
                size_t cap = q->cap ? q->cap : 4096;
                while (cap < q->len + *upload_size + 1)
                    cap *= 2;
                char *b = realloc(q->body, cap);
                if (!b)
                    return MHD_NO;
                q->body = b;
                q->cap = cap;
            }
            memcpy(q->body + q->len, upload, *upload_size);
            q->len += *upload_size;
            q->body[q->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (q->too_large)
        return send_reply(conn, 413, strdup("{\"error\":{\"code\":\"too_large\",\"message\":"
                                            "\"request body over 64 MiB\"}}"), NULL, 0);
    chttp_reply rep = {500, NULL, NULL, 0};
    h->h(h->user, method, url, presented_key(conn), q->body ? q->body : "", q->len, &rep);
    return send_reply(conn, rep.status, rep.body, rep.ctype, rep.retry_after);
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode code)
{
    req *q = *con_cls;
    if (q) {
        free(q->body);
        free(q);
    }
    *con_cls = NULL;
}

int chttp_start(const char *listen, int threads, chttp_handler handler, void *user,
                chttp **out, char *err, size_t errlen)
{
    *out = NULL;
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "listen address '%s' is not HOST:PORT", listen);
        return -1;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai) {
        snprintf(err, errlen, "cannot resolve listen address '%s'", listen);
        return -1;
    }
    chttp *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->h = handler;
    h->user = user;
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY, 0, NULL,
                            NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(threads > 0 ? threads : 4),
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        free(h);
        snprintf(err, errlen, "cannot listen on %s", listen);
        return -1;
    }
    *out = h;
    return 0;
}

int chttp_port(chttp *h)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? (int)i->port : -1;
}

void chttp_stop(chttp *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}

void chttp_json(chttp_reply *r, int status, json_t *body)
{
    r->status = status;
    r->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    r->ctype = "application/json";
    json_decref(body);
}

void chttp_error(chttp_reply *r, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    chttp_json(r, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}
