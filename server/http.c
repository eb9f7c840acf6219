/* http.c - the HTTP transport on libmicrohttpd (see http.h). */
#include "http.h"

#include "acceptor.h"
#include "clock.h"
#include "conns.h"
#include "log.h"
#include "routes.h"
#include "target.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Descriptors kept free beyond the connections, for the store (LMDB, index files), logs
 * and outgoing connections: this many, or a quarter of the descriptor limit when that is
 * less, but at least FD_RESERVE_MIN. */
#define FD_RESERVE 64
#define FD_RESERVE_MIN 16
/* The longest request line libmicrohttpd's buffer can hold (its memory limit, 32 KiB by
 * default): bounds the pointer checks of line_had_nul. */
#define LINE_MAX_BYTES 65536

struct http_server;

/* One event loop: a libmicrohttpd daemon with its own thread and epoll set, fed
 * connections by the acceptor. */
typedef struct http_loop {
    struct MHD_Daemon *daemon;
    struct http_server *h;
    _Atomic int open; /* connections handed to it and not yet closed */
} http_loop;

struct http_server {
    acceptor *acc;
    conns *conns;
    http_loop *loops;
    int nloops;
    int next;                  /* where the next tie-break starts (accept thread only) */
    char *tls_cert, *tls_key;  /* PEM contents */
    int port;
};

static _Atomic unsigned long long req_counter;

static void new_request_id(http_req *r)
{
    const char *given = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given && *given && strlen(given) < sizeof r->request_id) {
        int ok = 1;
        for (const char *p = given; *p; p++)
            if (!(*p >= '!' && *p <= '~') || *p == '"' || *p == '\\')
                ok = 0;
        if (ok) {
            strcpy(r->request_id, given);
            return;
        }
    }
    snprintf(r->request_id, sizeof r->request_id, "%016llx", atomic_fetch_add(&req_counter, 1));
}

void http_reply(http_req *r, int status, const char *ctype, const char *body, size_t len,
                int is_static)
{
    if (r->resp && !r->resp_static)
        free(r->resp);
    r->resp = NULL;
    r->resp_static = is_static;
    if (is_static) {
        r->resp = (char *)body;
    } else if ((r->resp = malloc(len ? len : 1)) != NULL) {
        memcpy(r->resp, body, len);
    } else {
        len = 0;
        status = 500;
    }
    r->resp_len = len;
    r->status = status;
    r->ctype = ctype;
    r->has_resp = 1;
}

static void reply_owned(http_req *r, int status, const char *ctype, char *body, size_t len)
{
    if (r->resp && !r->resp_static)
        free(r->resp);
    r->resp = body;
    r->resp_len = len;
    r->resp_static = 0;
    r->status = status;
    r->ctype = ctype;
    r->has_resp = 1;
}

void http_reply_json(http_req *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))
                      : NULL;
    json_decref(body);
    http_reply_json_text(r, status, text, text ? strlen(text) : 0);
}

void http_reply_json_text(http_req *r, int status, char *text, size_t len)
{
    if (!text) {
        static const char OOM[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"field\":null}}";
        r->err_code = "internal";
        http_reply(r, 500, "application/json", OOM, sizeof OOM - 1, 1);
        return;
    }
    reply_owned(r, status, "application/json", text, len);
}

void http_error(http_req *r, int status, const char *code, const char *field, const char *fmt,
                ...)
{
    char msg[1024], fbuf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The message may quote the request (path, names) and be cut at any byte: only
     * valid UTF-8 goes into JSON, else json_pack fails and a 400 would become a 500. */
    utf8_scrub(msg);
    if (field) {
        snprintf(fbuf, sizeof fbuf, "%s", field);
        field = utf8_scrub(fbuf);
    }
    r->err_code = code;
    http_reply_json(r, status,
                    json_pack("{s:{s:s,s:s,s:o}}", "error", "code", code, "message", msg,
                              "field", field ? json_string(field) : json_null()));
}

const char *http_header(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result send_reply(http_req *r)
{
    struct MHD_Response *resp;
    if (r->resp_static)
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_PERSISTENT);
    else {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->resp = NULL; /* now owned by the response */
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (r->hdr_name)
        MHD_add_response_header(resp, r->hdr_name, r->hdr_value);
    if (r->body_too_large)
        MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

typedef struct deferred {
    http_req *r;
    void (*fn)(http_req *, void *);
    void *arg;
    void (*free_arg)(void *);
} deferred;

static void run_deferred(void *p)
{
    deferred *d = p;
    http_req *r = d->r;
    d->fn(r, d->arg);
    if (d->free_arg)
        d->free_arg(d->arg);
    if (!r->has_resp)
        http_error(r, 500, "internal", NULL, "the write produced no response");
    free(d);
    MHD_resume_connection(r->conn);
}

int http_defer(http_req *r, void (*fn)(http_req *, void *), void *arg,
               void (*free_arg)(void *))
{
    deferred *d = malloc(sizeof *d);
    if (!d || writer_reserve(r->s->writer, atomic_load(&r->s->cfg.limits.write_queue)) < 0) {
        free(d);
        if (free_arg)
            free_arg(arg);
        http_error(r, 429, "overloaded", NULL, "too many write requests are queued; retry later");
        r->hdr_name = "Retry-After";
        snprintf(r->hdr_value, sizeof r->hdr_value, "1");
        return -1;
    }
    d->r = r;
    d->fn = fn;
    d->arg = arg;
    d->free_arg = free_arg;
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
    writer_push(r->s->writer, run_deferred, d);
    return 0;
}

/* The connection-table entry of c (set when its loop started it), or NULL. */
static conn_slot *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* libmicrohttpd's URI log callback: called with the request target exactly as sent,
 * before anything is decoded or split off. Creates the request's state, which on_request
 * then finds in *con_cls (NULL when out of memory: on_request makes it then). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->s = cls;
    r->conn = c;
    r->raw_at = uri;
    r->raw_len = uri ? strlen(uri) : 0;
    if (!(r->raw = strndup(uri ? uri : "", r->raw_len))) {
        free(r);
        return NULL;
    }
    return r;
}

/* Whether a and b lie in one buffer with a before b, at most LINE_MAX_BYTES apart. */
static int same_line(const char *a, const char *b)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y && y - x < LINE_MAX_BYTES;
}

/* libmicrohttpd hands the method, the target and the version over as C strings cut out of
 * the request line in its buffer, so a NUL byte sent inside the method or the target
 * silently shortens it ("DELETE /v1/collections/b\0/documents/x" would read as a request
 * for "/v1/collections/b"). The three lie in that order in that buffer: anything but the
 * separating spaces between the end of one string and the start of the next means a NUL
 * was there. Returns 1 when one was, and then extends r->raw with the rest of the target
 * (as libmicrohttpd left it: a query after the NUL may already be split); else 0; -1
 * when out of memory. */
static int line_had_nul(http_req *r, const char *method)
{
    const char *t = r->raw_at, *v = r->version;
    if (!t)
        return 0; /* no URI log callback ran: nothing to compare */
    if (same_line(method, t)) {
        const char *end = t;
        while (end > method && end[-1] == ' ')
            end--;
        end--; /* the space after the method, which libmicrohttpd overwrote with a NUL */
        if (end > method + strlen(method)) { /* the method went on past a NUL */
            r->method_raw_len = (size_t)(end - method);
            if (!(r->method_raw = malloc(r->method_raw_len + 1)))
                return -1;
            memcpy(r->method_raw, method, r->method_raw_len); /* NULs and all */
            r->method_raw[r->method_raw_len] = '\0';
            return 1;
        }
    }
    if (v && *v && same_line(t, v) && (size_t)(v - 1 - t) > r->raw_len) {
        size_t len = (size_t)(v - 1 - t);
        char *raw = malloc(len + 1);
        if (!raw)
            return -1;
        memcpy(raw, r->raw, r->raw_len);
        memcpy(raw + r->raw_len, t + r->raw_len, len - r->raw_len);
        raw[len] = '\0';
        free(r->raw);
        r->raw = raw;
        r->raw_len = len;
        return 1;
    }
    return 0;
}

/* Decodes r's request target into r->path, or sets a 400 when the request line held a
 * NUL byte or target_decode refuses the target; routing never sees such a request.
 * `url` is libmicrohttpd's decoded path, the target when no URI log callback ran. -1 when
 * out of memory. */
static int read_target(http_req *r, const char *url, const char *method)
{
    char err[200];
    if (!r->raw) {
        if (!(r->raw = strdup(url ? url : "")))
            return -1;
        r->raw_len = strlen(r->raw);
    }
    if (line_had_nul(r, method) < 0)
        return -1;
    if (r->method_raw) {
        http_error(r, 400, "invalid_request", NULL, "the request method holds a NUL byte");
        return 0;
    }
    int rc = target_decode(r->raw, r->raw_len, &r->path, err, sizeof err);
    if (rc == RAG_ENOMEM)
        return -1;
    if (rc != RAG_OK)
        http_error(r, 400, "invalid_target", NULL, "request target refused: %s", err);
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    srv *s = cls;
    http_req *r = *con_cls;

    if (!r || !r->began) {
        if (!r) {
            if (!(r = calloc(1, sizeof *r)))
                return MHD_NO;
            *con_cls = r;
            r->s = s;
            r->conn = conn;
        }
        r->began = 1;
        r->method = method;
        r->version = version;
        r->t0 = srv_monotonic();
        r->route = -1;
        r->slot = conn_of(conn);
        conns_phase(r->slot, CONN_BODY);
        long n = atomic_fetch_add(&s->inflight, 1) + 1;
        new_request_id(r);
        if (read_target(r, url, method) < 0)
            return MHD_NO;
        if (r->has_resp)
            return MHD_YES; /* refused target: any body is read and dropped, then answered */
        long max_body = atomic_load(&s->cfg.limits.max_body);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)max_body) {
            r->body_too_large = 1;
            http_error(r, 413, "body_too_large", NULL,
                       "request body of %s bytes exceeds the limit of %ld bytes", cl, max_body);
            return send_reply(r);
        }
        if (n > atomic_load(&s->cfg.limits.max_inflight)) {
            http_error(r, 429, "overloaded", NULL, "too many requests in flight; retry later");
            r->hdr_name = "Retry-After";
            snprintf(r->hdr_value, sizeof r->hdr_value, "1");
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->body_too_large || r->has_resp)
            return MHD_YES;
        size_t max_body = (size_t)atomic_load(&s->cfg.limits.max_body);
        if (r->body_len + n > max_body) {
            r->body_too_large = 1;
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 4096;
            while (cap < r->body_len + n + 1)
                cap *= 2;
            char *p = realloc(r->body, cap);
            if (!p)
                return MHD_NO;
            r->body = p;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = 0;
        return MHD_YES;
    }
    conns_phase(r->slot, CONN_BUSY); /* the whole request is in */
    if (r->has_resp)
        return send_reply(r);
    if (r->body_too_large) {
        http_error(r, 413, "body_too_large", NULL, "request body exceeds the limit of %ld bytes",
                   atomic_load(&s->cfg.limits.max_body));
        return send_reply(r);
    }
    routes_dispatch(r);
    if (r->suspended)
        return MHD_YES;
    if (!r->has_resp)
        http_error(r, 500, "internal", NULL, "no response");
    return send_reply(r);
}

/* "METHOD TARGET VERSION" as sent, escaped (target_escape): never cut at a NUL. */
static char *request_line(const http_req *r)
{
    const char *m = r->method_raw ? r->method_raw : r->method ? r->method : "";
    const char *v = r->version ? r->version : "";
    size_t ml = r->method_raw ? r->method_raw_len : strlen(m), vl = strlen(v);
    char *line = malloc(ml + r->raw_len + vl + 3), *out = NULL;
    if (line) {
        memcpy(line, m, ml);
        line[ml] = ' ';
        memcpy(line + ml + 1, r->raw ? r->raw : "", r->raw_len);
        line[ml + 1 + r->raw_len] = ' ';
        memcpy(line + ml + 2 + r->raw_len, v, vl);
        out = target_escape(line, ml + r->raw_len + vl + 2);
    }
    free(line);
    return out;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv *s = cls;
    http_req *r = *con_cls;
    conns_phase(conn_of(conn), CONN_HEAD); /* the next request's head is awaited */
    if (!r)
        return;
    if (!r->began) { /* libmicrohttpd answered it itself (e.g. headers too large) */
        free(r->raw);
        free(r);
        *con_cls = NULL;
        return;
    }
    double secs = srv_monotonic() - r->t0;
    int status = r->has_resp ? r->status : 0;
    metrics_request(s->metrics, r->route < 0 ? ROUTE_OTHER : r->route, status, secs);
    if (atomic_load(&s->cfg.limits.access_log)) {
        char method[64];
        snprintf(method, sizeof method, "%s", r->method);
        if (r->path)
            utf8_scrub(r->path); /* routing is over; JSON needs valid UTF-8 */
        char *line = request_line(r);
        json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:f,s:s,s:I,s:I}", "request_id",
                              r->request_id, "method", utf8_scrub(method), "path",
                              r->path ? r->path : "", "request_line", line ? line : "",
                              "route", route_name(r->route < 0 ? ROUTE_OTHER : r->route),
                              "status", status, "latency_ms", secs * 1000.0, "key_id",
                              r->key ? auth_key_id(r->key) : "", "bytes_in",
                              (json_int_t)r->body_len, "bytes_out", (json_int_t)r->resp_len);
        free(line);
        if (f && r->err_code)
            json_object_set_new(f, "error", json_string(r->err_code));
        if (f && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            json_object_set_new(f, "terminated", json_integer(toe));
        log_event("info", "access", f);
    }
    auth_key_release(r->key);
    if (!r->resp_static)
        free(r->resp);
    free(r->body);
    free(r->path);
    free(r->raw);
    free(r->method_raw);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

/* libmicrohttpd's warnings, at most MHD_LOG_PER_S lines a second: it writes one per
 * connection that ends mid-request, and a flood of such connections (or the slow ones
 * conns.c closes) must not flood the log. What is left out is counted in the next line. */
#define MHD_LOG_PER_S 20
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static time_t second;
    static long lines, dropped;
    char buf[1024];
    (void)cls;
    pthread_mutex_lock(&mu);
    time_t now = time(NULL);
    if (now != second) {
        second = now;
        lines = 0;
    }
    long left_out = lines < MHD_LOG_PER_S ? dropped : -1;
    if (left_out < 0)
        dropped++;
    else
        lines++, dropped = 0;
    pthread_mutex_unlock(&mu);
    if (left_out < 0)
        return;
    if (left_out > 0)
        log_msg("warn", "libmicrohttpd", "%ld messages left out (more than %d a second)",
                left_out, MHD_LOG_PER_S);
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    log_event("warn", "libmicrohttpd", json_pack("{s:s}", "message", buf));
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (data = malloc((size_t)n + 1)) && fread(data, 1, (size_t)n, f) == (size_t)n) {
        data[n] = 0;
    } else {
        snprintf(err, errlen, "%s: cannot read", path);
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" -> socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *port;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof host)
            goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(close - spec - 1), spec + 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof host)
            goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535)
        goto bad;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "--listen %s: cannot resolve '%s': %s", spec, host,
                 gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
bad:
    snprintf(err, errlen, "--listen '%s': expected HOST:PORT, [IPV6]:PORT or :PORT", spec);
    return -1;
}

int http_listen_is_loopback(const char *listen)
{
    struct sockaddr_storage ss;
    char err[300];
    if (parse_listen(listen, &ss, err, sizeof err) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24 == 127;
    const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* Accept thread: gives the connection to the loop with the fewest open connections,
 * ties broken in turn, so a burst of new clients is dealt out evenly. */
static void hand_off(void *ctx, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct http_server *h = ctx;
    int best = 0, best_open = INT_MAX;
    for (int k = 0; k < h->nloops; k++) {
        int i = (h->next + k) % h->nloops;
        int open = atomic_load(&h->loops[i].open);
        if (open < best_open) {
            best = i;
            best_open = open;
        }
    }
    h->next = (best + 1) % h->nloops;
    if (conns_admit(h->conns, fd, addr) < 0) { /* counted and logged by the table */
        close(fd);
        return;
    }
    /* Counted here rather than on libmicrohttpd's "started" notice, which comes later
     * from the loop's thread: a burst would otherwise see every loop still empty. */
    atomic_fetch_add(&h->loops[best].open, 1);
    if (MHD_add_connection(h->loops[best].daemon, fd, addr, len) != MHD_YES) {
        atomic_fetch_sub(&h->loops[best].open, 1); /* it closed fd */
        conns_cancel(h->conns, fd);
    }
}

/* libmicrohttpd's connection notices: a started connection gets its entry in the
 * connection table (conns.c); a closed one leaves the table and its loop's count. (A
 * connection the loop cannot set up at all, for want of memory, is neither started nor
 * closed and stays counted in its loop; the table drops its entry on its own.) */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    http_loop *loop = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_ctx = ci ? conns_started(loop->h->conns, ci->connect_fd) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        conns_closed(loop->h->conns, *socket_ctx);
        *socket_ctx = NULL;
        atomic_fetch_sub(&loop->open, 1);
    }
}

/* The soft descriptor limit (RLIMIT_NOFILE), at most INT_MAX. */
static long fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > INT_MAX)
        return INT_MAX;
    return (long)rl.rlim_cur;
}

/* Descriptors open in this process (FD_RESERVE_MIN when /proc cannot tell). */
static long fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = -1; /* the directory's own descriptor */
    if (!d)
        return FD_RESERVE_MIN;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2; /* "." and ".." */
}

/* The connection limit: s->cfg.max_connections, lowered so that the connections, the
 * descriptors open now (listener, event loops, stdio) and a reserve (FD_RESERVE) fit in
 * the descriptor limit. Logs a warning when it had to be lowered. *slack receives how
 * many connections being closed may exceed it: half the reserve. */
static int connection_limit(srv *s, int *slack)
{
    long nofile = fd_limit(), open = fds_open();
    long reserve = nofile / 4 < FD_RESERVE ? nofile / 4 : FD_RESERVE;
    if (reserve < FD_RESERVE_MIN)
        reserve = FD_RESERVE_MIN;
    long room = nofile - open - reserve;
    if (room < 1)
        room = 1;
    *slack = (int)(reserve / 2);
    if (room >= s->cfg.max_connections)
        return s->cfg.max_connections;
    log_msg("warn", "connections",
            "the descriptor limit (ulimit -n %ld) leaves room for %ld connections (%ld "
            "descriptors open, %ld kept for the store and logs); --max-connections %d is "
            "lowered to that",
            nofile, room, open, reserve, s->cfg.max_connections);
    return (int)room;
}

int http_start(srv *s, char *err, size_t errlen)
{
    struct http_server *h = calloc(1, sizeof *h);
    struct sockaddr_storage ss;
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (parse_listen(s->cfg.listen, &ss, err, errlen) < 0)
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET |
                     MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (s->cfg.tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "this libmicrohttpd was built without TLS support");
            goto fail;
        }
        if (!(h->tls_cert = read_file(s->cfg.tls_cert, err, errlen)) ||
            !(h->tls_key = read_file(s->cfg.tls_key, err, errlen)))
            goto fail;
        flags |= MHD_USE_TLS;
    }
    int threads = s->cfg.threads;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 2 ? 2 : (int)n;
    }
    char aerr[200];
    if (!(h->acc = acceptor_open(&ss, 1024, aerr, sizeof aerr))) {
        snprintf(err, errlen, "--listen %s: %s", s->cfg.listen, aerr);
        goto fail;
    }
    h->port = acceptor_port(h->acc);
    if (!(h->loops = calloc((size_t)threads, sizeof *h->loops))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Request ids: start time and pid in the high bits, a counter below. */
    atomic_store(&req_counter, ((unsigned long long)time(NULL) << 24) ^
                                   ((unsigned long long)getpid() << 8));
    /* the loops' own limit never binds: the connection table (conns.c) decides */
    long mhd_limit = fd_limit();
    for (int i = 0; i < threads; i++) {
        http_loop *loop = &h->loops[i];
        struct MHD_OptionItem opts[12];
        loop->h = h;
        int n = 0;
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger,
                                            NULL};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed,
                                            s};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                            (intptr_t)on_connection, loop};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                            (intptr_t)s->cfg.timeout, NULL};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)mhd_limit,
                                            NULL};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s};
        if (h->tls_cert) {
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
        }
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
        loop->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY,
                                        opts, MHD_OPTION_END);
        if (!loop->daemon) {
            snprintf(err, errlen, "cannot start the HTTP%s event loops on %s%s",
                     h->tls_cert ? "S" : "", s->cfg.listen,
                     h->tls_cert ? " (is --tls-cert/--tls-key a valid PEM pair?)" : "");
            goto fail;
        }
        h->nloops++;
    }
    int slack = 0, limit = connection_limit(s, &slack);
    if (!(h->conns = conns_create(limit, slack, &s->cfg.limits, s->metrics, err, errlen)))
        goto fail;
    metrics_connection_limit(s->metrics, limit);
    if (acceptor_start(h->acc, hand_off, h, err, errlen) < 0)
        goto fail;
    s->http = h;
    return 0;
fail:
    acceptor_free(h->acc);
    for (int i = 0; i < h->nloops; i++)
        MHD_stop_daemon(h->loops[i].daemon);
    conns_free(h->conns);
    free(h->loops);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
    return -1;
}

int http_port(srv *s)
{
    return s->http ? s->http->port : 0;
}

int http_loop_connections(srv *s, int *open, int max)
{
    int n = 0;
    for (; s->http && n < s->http->nloops && n < max; n++)
        open[n] = atomic_load(&s->http->loops[n].open);
    return n;
}

void http_quiesce(srv *s)
{
    if (s->http)
        acceptor_stop(s->http->acc);
}

void http_stop(srv *s)
{
    if (!s->http)
        return;
    acceptor_free(s->http->acc);
    for (int i = 0; i < s->http->nloops; i++)
        MHD_stop_daemon(s->http->loops[i].daemon);
    conns_free(s->http->conns); /* after the loops: closing connections leave it */
    free(s->http->loops);
    free(s->http->tls_cert);
    free(s->http->tls_key);
    free(s->http);
    s->http = NULL;
}
