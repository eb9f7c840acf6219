/* http_support.c - seed collection, state bounds, the loopback client and the response
 * checks shared by the fuzz_http* targets. */
#include "http_support.h"

#include "auth.h"
#include "http.h"
#include "querylog.h"
#include "routes.h"
#include "writer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <sanitizer/common_interface_defs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_DEADLINE_S 8.0

const char *fuzz_target_name = "fuzz_http";

void fuzz_die(const char *what, const char *detail)
{
    char line[256];
    fprintf(stderr, "%s: %s: %s\n", fuzz_target_name, what, detail ? detail : "");
    /* run.sh closes the server targets' stderr (-close_fd_mask=2, libmicrohttpd's
     * warnings): the verdict also goes to the file it names, which it prints. */
    const char *report = getenv("RAGFUZZ_REPORT");
    FILE *f = report && *report ? fopen(report, "a") : NULL;
    if (f) {
        fprintf(f, "%s: %s: %s\n", fuzz_target_name, what, detail ? detail : "");
        fclose(f);
    }
    snprintf(line, sizeof line, "%s: %s: %.*s", fuzz_target_name, what,
             (int)strcspn(detail ? detail : "", "\r\n"), detail ? detail : "");
    __sanitizer_report_error_summary(line);
    abort();
}

void fuzz_server_start(srv *s, const char *admin_key, const char *const *extra)
{
    char err[1024], dir[256];
    const char *args[32] = {fuzz_target_name, "--db", dir, "--listen", "127.0.0.1:0",
                            "--threads", "2", "--embedder", "hash", "--dim", "64", "--timeout",
                            "5", "--access-log", "off"};
    int n = 15;
    for (; extra && *extra && n < 31; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/rag%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", fuzz_target_name);
    if (!mkdtemp(dir))
        fuzz_die("mkdtemp", strerror(errno));
    config_init(&s->cfg);
    if (config_load(&s->cfg, n, (char **)args, err, sizeof err) != 0)
        fuzz_die("config", err);
    if (!(s->metrics = metrics_create(ROUTE_COUNT, route_names())))
        fuzz_die("metrics", "out of memory");
    if (http_start(s, err, sizeof err) < 0)
        fuzz_die("listen", err);
    const char *failed = fuzz_server_open(s, admin_key);
    if (failed)
        fuzz_die(failed, rag_errmsg());
    atomic_store(&s->ready, 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}


int fuzz_seed_docs(rag_db *db)
{
    static const char *const TEXT[] = {
        "# Refunds\n\nRefunds are processed within five business days.",
        "Vitamin D and calcium prevent fractures in older adults.",
        "HNSW graphs answer nearest-neighbour queries in logarithmic time.",
    };
    static const char *const META[] = {"{\"lang\":\"en\",\"year\":2021}",
                                       "{\"lang\":\"de\",\"year\":2015,\"tags\":[\"a\"]}", NULL};
    rag_document d[3];
    char ids[3][8];
    int rc = rag_collection_create(db, "docs");
    if (rc != RAG_OK && rc != RAG_EEXIST)
        return rc;
    for (int i = 0; i < 3; i++) {
        rag_document_init(&d[i]);
        snprintf(ids[i], sizeof ids[i], "d%d", i);
        d[i].id = ids[i];
        d[i].text = TEXT[i];
        d[i].source = "https://example.org/faq";
        d[i].title = "Title";
        d[i].metadata_json = META[i];
        d[i].format = i == 0 ? RAG_FORMAT_MARKDOWN : RAG_FORMAT_TEXT;
    }
    return rag_ingest(db, "docs", d, 3, NULL);
}

int fuzz_bound_state(srv *s)
{
    char **names = NULL;
    size_t n = 0;
    rag_collection_info info;
    int rc = rag_collection_stats(s->db, "docs", &info);
    if (rc == RAG_OK && info.chunks > 2000) {
        rag_collection_drop(s->db, "docs");
        rc = RAG_ENOTFOUND;
    }
    rc = rc == RAG_ENOTFOUND ? fuzz_seed_docs(s->db) : RAG_OK;
    if (rag_collection_list(s->db, &names, &n) == RAG_OK && n > 16)
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], "docs"))
                rag_collection_drop(s->db, names[i]);
    rag_strings_free(names, n);
    json_t *keys = auth_list(s->auth);
    if (json_array_size(keys) > 32) {
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k) {
            const char *id = json_string_value(json_object_get(k, "id"));
            if (id && strcmp(id, "bootstrap"))
                auth_revoke(s->auth, id);
        }
    }
    json_decref(keys);
    return rc;
}

const char *fuzz_server_open(srv *s, const char *admin_key)
{
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.embedder = s->cfg.embedder;
    oo.dim = s->cfg.dim;
    if (rag_open(s->cfg.db, &oo, &s->db) != RAG_OK)
        return "rag_open";
    s->dim = rag_db_dim(s->db);
    if (auth_open(s->db, admin_key, &s->auth) != RAG_OK)
        return "auth_open";
    if (!(s->qlog = qlog_start(s->db, &s->cfg.limits, s->metrics)) ||
        !(s->writer = writer_start()))
        return "start of the query log or writer thread";
    if (fuzz_seed_docs(s->db) != RAG_OK)
        return "seed documents";
    return NULL;
}

static const char *find_crlf2(const char *p, const char *end)
{
    for (; p + 4 <= end; p++)
        if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n')
            return p;
    return NULL;
}

static int starts_response(const char *p, const char *end)
{
    return end - p >= 8 && (!memcmp(p, "HTTP/1.1", 8) || !memcmp(p, "HTTP/1.0", 8));
}

void fuzz_check_responses(const char *buf, size_t n)
{
    const char *p = buf, *end = buf + n;
    while (p < end) {
        if (!starts_response(p, end) || end - p < 13 || p[8] != ' ' || p[12] != ' ' ||
            p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
            p[11] > '9')
            fuzz_die("malformed status line", p);
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (getenv("FUZZ_HTTP_VERBOSE")) /* shows what the seeds get */
            fprintf(stderr, "%s: %.*s\n", fuzz_target_name, (int)strcspn(p, "\r"), p);
        const char *hend = find_crlf2(p, end);
        if (!hend)
            fuzz_die("response headers not terminated", p);
        long long clen = -1;
        int ours = 0, json = 0;
        for (const char *h = strstr(p, "\r\n") + 2; h < hend;) {
            const char *eol = strstr(h, "\r\n");
            if (!strncasecmp(h, "Content-Length:", 15))
                clen = strtoll(h + 15, NULL, 10);
            else if (!strncasecmp(h, "X-Request-Id:", 13))
                ours = 1;
            else if (!strncasecmp(h, "Content-Type: application/json", 30))
                json = 1;
            h = eol + 2;
        }
        if (status >= 500 && status != 503 && (ours || (status != 501 && status != 505)))
            fuzz_die("server error", p);
        const char *body = hend + 4;
        size_t blen = 0;
        if (clen > 0 && body + clen <= end &&
            (body + clen == end || starts_response(body + clen, end)))
            blen = (size_t)clen;
        else if (clen > 0 && !(body == end || starts_response(body, end)))
            fuzz_die("response body shorter than its Content-Length", p); /* not a HEAD reply */
        if (ours && json && blen) {
            json_error_t jerr;
            json_t *v = json_loadb(body, blen, 0, &jerr);
            if (!v)
                fuzz_die("response body is not JSON", jerr.text);
            if (status >= 400 && !json_is_string(json_object_get(json_object_get(v, "error"),
                                                                 "code")))
                fuzz_die("error response without error.code", p);
            json_decref(v);
        }
        p = body + blen;
    }
}

/* 1 when buf[0..n) ends with a complete response: headers, then its Content-Length body
 * or no body at all (the answer to HEAD). */
static int response_complete(const char *buf, size_t n)
{
    if (!buf)
        return 0;
    const char *p = buf, *end = buf + n, *hend;
    while (starts_response(p, end) && (hend = find_crlf2(p, end))) {
        long long clen = 0;
        for (const char *h = p; h < hend; h++)
            if (*h == '\n' && !strncasecmp(h + 1, "Content-Length:", 15))
                clen = strtoll(h + 16, NULL, 10);
        if (hend + 4 == end)
            return 1;
        if (clen < 0 || hend + 4 + clen > end)
            return 0;
        p = hend + 4 + clen;
    }
    return p == end && n > 0;
}

char *fuzz_exchange(srv *s, const uint8_t *data, size_t size, size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port(s))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = -1;
    for (int tries = 0; fd < 0; tries++) { /* a signal (libFuzzer's, LSan's) may interrupt */
        if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
            fuzz_die("socket", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            if (errno != EINTR || tries == 10)
                fuzz_die("connect", strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    /* Send everything. The server may answer and close before all bytes are sent (e.g.
     * 413), so send errors are fine. */
    for (size_t off = 0; off < size;) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    /* Read until the server closes, or has answered and is idle (nothing in flight, no
     * write queued; libmicrohttpd keeps a kept-alive connection open). When no answer has
     * come after 5 ms of silence with no write queued, half-close: an incomplete request
     * ends there and the server must close. (Half-closing while a write is queued loses
     * its answer: libmicrohttpd drops the response of a suspended connection whose client
     * half-closed; a closed connection without an answer is accepted below.) */
    double t0 = now_s();
    int half_closed = 0, quiet_ms = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (now_s() - t0 > READ_DEADLINE_S)
            fuzz_die("no response and no close", "deadline passed");
        int ready = poll(&pfd, 1, 1);
        if (ready < 0)
            continue; /* EINTR */
        if (ready == 0) {
            quiet_ms++;
            int idle = writer_pending(s->writer) == 0;
            if (idle && atomic_load(&s->inflight) == 0 && response_complete(buf, len))
                break;
            if (!half_closed && idle && quiet_ms >= 5) {
                shutdown(fd, SHUT_WR);
                half_closed = 1;
            }
            continue;
        }
        quiet_ms = 0;
        if (len + 4097 > cap) {
            cap = cap ? cap * 2 : 65536;
            if (!(buf = realloc(buf, cap)))
                fuzz_die("realloc", "out of memory");
        }
        ssize_t got = recv(fd, buf + len, cap - len - 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break; /* closed (a reset counts as closed) */
        len += (size_t)got;
    }
    close(fd);
    if (buf)
        buf[len] = 0;
    *out_len = len;
    return buf;
}
