/* fuzz_http.c - libFuzzer target: raw HTTP bytes (request line, headers, body; pipelined
 * requests allowed) sent over loopback to the server's HTTP layer (server/http.c,
 * routes.c, reqjson.c, auth.c) running in-process on a real store (hash embedder,
 * collection "docs" holding a few documents; admin key "fuzz-admin-key"). Each input must
 * be answered by well-formed HTTP responses, or the connection closed, never by a 5xx
 * other than 503 (libmicrohttpd's own 501/505 for unsupported methods or versions
 * aside); every JSON response of the server must parse, and an error carries a code. */
#include "http.h"
#include "http_support.h"
#include "log.h"
#include "routes.h"
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sanitizer/common_interface_defs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_KEY "fuzz-admin-key"
#define READ_DEADLINE_S 8.0

static srv S;
static char store_dir[256];

/* Reports a failed check and aborts (libFuzzer saves the input). The summary also goes
 * to the sanitizer's report stream, which survives -close_fd_mask=2 (run.sh uses it to
 * drop libmicrohttpd's warnings). */
static void die(const char *what, const char *detail)
{
    char line[256];
    fprintf(stderr, "fuzz_http: %s: %s\n", what, detail ? detail : "");
    snprintf(line, sizeof line, "fuzz_http: %s: %.*s", what,
             (int)strcspn(detail ? detail : "", "\r\n"), detail ? detail : "");
    __sanitizer_report_error_summary(line);
    abort();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bound_state(void)
{
    if (fuzz_bound_state(&S) != RAG_OK)
        die("re-seed documents", rag_errmsg());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[1024];
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(store_dir, sizeof store_dir, "%s/ragfuzz-http.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(store_dir))
        die("mkdtemp", strerror(errno));
    char *args[] = {"fuzz_http", "--db", store_dir, "--listen", "127.0.0.1:0", "--threads", "2",
                    "--embedder", "hash", "--dim", "64", "--timeout", "5", "--access-log", "off",
                    "--max-body", "262144", NULL};
    config_init(&S.cfg);
    if (config_load(&S.cfg, (int)(sizeof args / sizeof args[0]) - 1, args, err, sizeof err) != 0)
        die("config", err);
    if (!(S.metrics = metrics_create(ROUTE_COUNT, route_names())))
        die("metrics", "out of memory");
    if (http_start(&S, err, sizeof err) < 0)
        die("listen", err);
    const char *failed = fuzz_server_open(&S, ADMIN_KEY);
    if (failed)
        die(failed, rag_errmsg());
    atomic_store(&S.ready, 1);
    return 0;
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

/* Checks that buf[0..n) is a sequence of well-formed responses (see the file comment).
 * Aborts with the offending bytes otherwise. */
static void check_responses(const char *buf, size_t n)
{
    const char *p = buf, *end = buf + n;
    while (p < end) {
        if (!starts_response(p, end) || end - p < 13 || p[8] != ' ' || p[12] != ' ' ||
            p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
            p[11] > '9')
            die("malformed status line", p);
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (getenv("FUZZ_HTTP_VERBOSE")) /* shows what the seeds get */
            fprintf(stderr, "fuzz_http: %.*s\n", (int)strcspn(p, "\r"), p);
        const char *hend = find_crlf2(p, end);
        if (!hend)
            die("response headers not terminated", p);
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
            die("server error", p);
        const char *body = hend + 4;
        size_t blen = 0;
        if (clen > 0 && body + clen <= end &&
            (body + clen == end || starts_response(body + clen, end)))
            blen = (size_t)clen;
        else if (clen > 0 && !(body == end || starts_response(body, end)))
            die("response body shorter than its Content-Length", p); /* not a HEAD reply */
        if (ours && json && blen) {
            json_error_t jerr;
            json_t *v = json_loadb(body, blen, 0, &jerr);
            if (!v)
                die("response body is not JSON", jerr.text);
            if (status >= 400 && !json_is_string(json_object_get(json_object_get(v, "error"),
                                                                 "code")))
                die("error response without error.code", p);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port(&S))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = -1;
    for (int tries = 0; fd < 0; tries++) { /* a signal (libFuzzer's, LSan's) may interrupt */
        if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
            die("socket", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            if (errno != EINTR || tries == 10)
                die("connect", strerror(errno));
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
            die("no response and no close", "deadline passed");
        int ready = poll(&pfd, 1, 1);
        if (ready < 0)
            continue; /* EINTR */
        if (ready == 0) {
            quiet_ms++;
            int idle = writer_pending(S.writer) == 0;
            if (idle && atomic_load(&S.inflight) == 0 && response_complete(buf, len))
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
                die("realloc", "out of memory");
        }
        ssize_t got = recv(fd, buf + len, cap - len - 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break; /* closed (a reset counts as closed) */
        len += (size_t)got;
    }
    close(fd);
    if (buf) {
        buf[len] = 0;
        check_responses(buf, len);
    }
    free(buf);
    bound_state();
    return 0;
}
