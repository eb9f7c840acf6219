/* test_server.c - ragcore-server over real loopback HTTP (libcurl): every endpoint, the
 * auth matrix, validation errors, body limit, concurrency, connections spread over the
 * event loops, running out of descriptors, SIGHUP reload, TLS and graceful shutdown with
 * persistence; and hostile clients: request targets with NUL and other bad bytes, slow
 * senders, connection floods, per-key rate and cost limits, /metrics access, weak admin
 * keys. */
#include "test.h"
#include "ragcore.h"
#include "config.h"
#include "json_number.h"
#include "json_writer.h"
#include "route_table.h"
#include "vector_b64.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_KEY "test-admin-key-0123456789"

static char tmpdir[1024];
static char server_bin[1024];

typedef struct server {
    pid_t pid;
    int port;
    int tls;
    char base[128];
} server;

static server S; /* the main server under test */
static long request_timeout_ms; /* > 0: request() gives up after this long */
static int child_nofile; /* > 0: start_server gives the server this descriptor limit */
static const char *child_admin_key = ADMIN_KEY; /* RAGCORE_ADMIN_KEY of started servers */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- HTTP client ------------------------------------------------------------------- */

typedef struct resp {
    long status;
    char *body;
    size_t len;
    json_t *json; /* parsed body when it is JSON */
    long retry_after; /* the Retry-After header's seconds, -1 when absent */
} resp;

static size_t on_header(char *p, size_t size, size_t n, void *user)
{
    resp *r = user;
    if (size * n > 12 && !strncasecmp(p, "Retry-After:", 12))
        r->retry_after = strtol(p + 12, NULL, 10);
    return size * n;
}

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
    resp *r = user;
    size_t add = size * n;
    char *b = realloc(r->body, r->len + add + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, p, add);
    r->body = b;
    r->len += add;
    r->body[r->len] = 0;
    return add;
}

static void resp_free(resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Performs one request; key may be NULL (no auth header). Returns the status, 0 when the
 * transfer failed. */
static long request(const server *sv, const char *method, const char *path, const char *key,
                    const char *body, size_t blen, resp *out)
{
    char url[8400], hdr[256]; /* test_fuzz_findings sends a 3,616-byte path */
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    snprintf(url, sizeof url, "%s%s", sv->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (request_timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, request_timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (sv->tls) {
        char ca[1100];
        snprintf(ca, sizeof ca, "%s/tls/cert.pem", tmpdir);
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    }
    if (key) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, hdr);
    }
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    else
        fprintf(stderr, "  curl %s %s: %s\n", method, path, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out->body)
        out->json = json_loadb(out->body, out->len, 0, NULL);
    return out->status;
}

static long req(const char *method, const char *path, const char *key, const char *body,
                resp *out)
{
    return request(&S, method, path, key, body, body ? strlen(body) : 0, out);
}

/* error.code and error.field of an error response ("" when absent). */
static const char *err_code(const resp *r)
{
    const char *s = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return s ? s : "";
}

static const char *err_field(const resp *r)
{
    const char *s = json_string_value(json_object_get(json_object_get(r->json, "error"), "field"));
    return s ? s : "";
}

/* ---- server processes -------------------------------------------------------------- */

/* Starts ragcore-server on a free port with `db`; extra flags follow. 0 on success. */
static int start_server(server *sv, const char *db, const char *logname, int tls,
                        const char *const *extra)
{
    char portfile[1100], logfile[1100];
    snprintf(portfile, sizeof portfile, "%s/%s.port", tmpdir, logname);
    snprintf(logfile, sizeof logfile, "%s/%s.log", tmpdir, logname);
    unlink(portfile);
    memset(sv, 0, sizeof *sv);
    sv->tls = tls;
    const char *argv[32];
    int n = 0;
    argv[n++] = server_bin;
    argv[n++] = "--db";
    argv[n++] = db;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    argv[n++] = "--threads";
    argv[n++] = "4";
    argv[n++] = "--embedder";
    argv[n++] = "hash";
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        setenv("RAGCORE_ADMIN_KEY", child_admin_key, 1);
        if (child_nofile > 0) {
            struct rlimit rl = {(rlim_t)child_nofile, (rlim_t)child_nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        execv(server_bin, (char *const *)argv);
        _exit(127);
    }
    sv->pid = pid;
    double t0 = now_s();
    while (now_s() - t0 < 60) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", &sv->port) == 1;
            fclose(f);
            if (ok)
                break;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "  server exited early; see %s\n", logfile);
            sv->pid = 0;
            return -1;
        }
        sleep_ms(20);
    }
    snprintf(sv->base, sizeof sv->base, "%s://127.0.0.1:%d", tls ? "https" : "http", sv->port);
    while (now_s() - t0 < 60) {
        resp r;
        long st = request(sv, "GET", "/readyz", NULL, NULL, 0, &r);
        resp_free(&r);
        if (st == 200)
            return 0;
        sleep_ms(20);
    }
    return -1;
}

/* Starts a server of its own for one test: store <tmpdir>/<name>db, log
 * <tmpdir>/<name>.log, RLIMIT_NOFILE `nofile` (0: as the test's), extra flags (may be
 * NULL). 0, or -1 after failing the test. */
static int start_own_server(server *sv, const char *name, int nofile, const char *const *extra)
{
    char db[1100];
    snprintf(db, sizeof db, "%s/%sdb", tmpdir, name);
    child_nofile = nofile;
    int started = start_server(sv, db, name, 0, extra);
    child_nofile = 0;
    ASSERT_EQ_INT(started, 0);
    return started;
}

/* Sends SIGTERM and waits; returns the exit status (or -1 when killed / timeout). */
static int stop_server(server *sv)
{
    int status = 0;
    if (sv->pid <= 0)
        return -1;
    kill(sv->pid, SIGTERM);
    double t0 = now_s();
    while (now_s() - t0 < 60) {
        pid_t w = waitpid(sv->pid, &status, WNOHANG);
        if (w == sv->pid) {
            sv->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        sleep_ms(20);
    }
    kill(sv->pid, SIGKILL);
    waitpid(sv->pid, &status, 0);
    sv->pid = 0;
    return -1;
}

/* ---- shared fixtures ---------------------------------------------------------------- */

static char reader_key[128], writer_key[128], reader_id[64], store_dir[1100], config_file[1100];

/* Creates a key through the admin API of sv; fills secret and id (may be NULL). */
static void create_key_on(const server *sv, const char *name, const char *scopes_json,
                          const char *colls_json, char *secret, char *id)
{
    char body[512];
    resp r;
    int n = snprintf(body, sizeof body, "{\"name\":\"%s\",\"scopes\":%s,\"collections\":%s}",
                     name, scopes_json, colls_json);
    ASSERT_EQ_INT(request(sv, "POST", "/v1/keys", ADMIN_KEY, body, (size_t)n, &r), 201);
    const char *k = json_string_value(json_object_get(r.json, "key"));
    const char *i = json_string_value(json_object_get(r.json, "id"));
    ASSERT_TRUE(k && i);
    snprintf(secret, 128, "%s", k ? k : "");
    if (id)
        snprintf(id, 64, "%s", i ? i : "");
    resp_free(&r);
}

/* create_key_on the main server. */
static void create_key(const char *name, const char *scopes_json, const char *colls_json,
                       char *secret, char *id)
{
    create_key_on(&S, name, scopes_json, colls_json, secret, id);
}

/* ---- tests ------------------------------------------------------------------------- */

/* The base64 vector codec on its own: every padding length round-trips bit for bit, and
 * what is not canonical base64 of exactly 4n bytes is refused. */
static void test_vector_b64_codec(void)
{
    for (size_t n = 1; n <= 9; n++) { /* 4n mod 3 = 1, 2, 0: two, one and no '=' */
        float v[9], back[9];
        for (size_t i = 0; i < n; i++)
            v[i] = (float)i * -1.25f + 0.1f;
        char *b64 = vector_b64_encode(v, n);
        ASSERT_TRUE(b64 != NULL);
        if (!b64)
            continue;
        size_t len = strlen(b64);
        ASSERT_EQ_INT(len, (4 * n + 2) / 3 * 4);
        ASSERT_EQ_INT(vector_b64_decode(b64, len, back, n), 0);
        ASSERT_TRUE(memcmp(v, back, n * sizeof *v) == 0);
        ASSERT_EQ_INT(vector_b64_decode(b64, len, back, n + 1), -1); /* wrong count */
        ASSERT_EQ_INT(vector_b64_decode(b64, len - 4, back, n), -1); /* cut short */
        char *bad = strdup(b64);
        bad[1] = '='; /* padding inside */
        ASSERT_EQ_INT(vector_b64_decode(bad, len, back, n), -1);
        bad[1] = '#'; /* not in the alphabet */
        ASSERT_EQ_INT(vector_b64_decode(bad, len, back, n), -1);
        static const char blanks[] = {' ', '\t', '\n', '\r', '-', '='};
        size_t last = len - 1 - (b64[len - 1] == '=') - (b64[len - 2] == '=');
        for (size_t b = 0; b < sizeof blanks; b++) { /* inside, first, last before '=' */
            size_t at[3] = {1, 0, last};
            for (int j = 0; j < 3; j++) {
                memcpy(bad, b64, len + 1);
                bad[at[j]] = blanks[b];
                ASSERT_EQ_INT(vector_b64_decode(bad, len, back, n), -1);
            }
        }
        memcpy(bad, b64, len + 1);
        if (b64[len - 1] == '=') { /* padding removed, or one '=' too many */
            memcpy(bad, b64, len + 1);
            bad[len - 1] = 'A';
            ASSERT_EQ_INT(vector_b64_decode(bad, len, back, n), -1);
        }
        free(bad);
        free(b64);
    }
    /* little-endian bytes: 1.0f is 00 00 80 3f */
    float one = 1.0f, got = 0;
    char *b = vector_b64_encode(&one, 1);
    ASSERT_STR_EQ(b, "AACAPw==");
    ASSERT_EQ_INT(vector_b64_decode("AACAPw==", 8, &got, 1), 0);
    ASSERT_TRUE(got == 1.0f);
    free(b);
}

/* json_number_read against strtod / strtoll (what jansson calls) on random tokens: the same
 * double bit for bit, or -1 exactly where jansson refuses the token; json_number_end's
 * syntax. */
static void test_json_number_reader(void)
{
    uint64_t x = 0x2545F4914F6CDD1DULL;
    char tok[96];
    int bad = 0;
    for (int t = 0; t < 300000 && bad < 5; t++) {
        size_t n = 0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (x & 1)
            tok[n++] = '-';
        int idig = 1 + (int)((x >> 1) % (x & 2 ? 3 : 21)), fdig = (int)((x >> 8) % 22);
        for (int i = 0; i < idig; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            tok[n++] = (char)('0' + x % 10);
        }
        if (tok[n - idig] == '0')
            n = n - (size_t)idig + 1; /* no leading zeros: a lone 0 */
        if (fdig && (x & 4)) {
            tok[n++] = '.';
            for (int i = 0; i < fdig; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                tok[n++] = (char)('0' + x % 10);
            }
        }
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (x & 8)
            n += (size_t)snprintf(tok + n, sizeof tok - n, "%s%d", x & 16 ? "e" : "E-",
                                  (int)((x >> 5) % (x & 32 ? 30 : 400)));
        tok[n] = '\0';
        int real = strpbrk(tok, ".eE") != NULL;
        errno = 0;
        char *end;
        double want = real ? strtod(tok, &end) : (double)strtoll(tok, &end, 10);
        int refused = errno == ERANGE && (!real || isinf(want));
        double got = 0;
        size_t len = 0;
        int rc = json_number_read(tok, &len, &got);
        int ok = json_number_end(tok, n, 0) == n && len == n &&
                 (refused ? rc == -1 : rc == 0 && memcmp(&got, &want, sizeof got) == 0);
        if (!ok)
            fprintf(stderr, "json_number_read('%s'): rc %d, %.17g; want %.17g%s\n", tok, rc,
                    got, want, refused ? " (refused)" : "");
        bad += !ok;
    }
    ASSERT_EQ_INT(bad, 0);
    static const char *const good[] = {"0", "-0", "7", "-0.5", "1e5", "1E+05", "2.5e-3",
                                       "123456789012345678901234567890"};
    static const char *const not_numbers[] = {"", "-", "+1", "01", ".5", "1.", "1e", "1e+",
                                              "NaN", "0x10", "-.5", "--1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ASSERT_EQ_INT(json_number_end(good[i], strlen(good[i]), 0), strlen(good[i]));
    for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++) {
        const char *s = not_numbers[i];
        size_t e = json_number_end(s, strlen(s), 0);
        ASSERT_TRUE(e == 0 || e < strlen(s)); /* none, or a shorter number ("0" of "01") */
    }
}

/* jw_str against a byte-by-byte reference escaper: each character JSON must escape, at
 * every position of a 30-byte text (the eight-byte skip and the byte path alike), next to
 * multibyte UTF-8. */
static void test_json_string_writer(void)
{
    static const char special[] = {'"', '\\', '\n', '\t', '\r', '\b', '\f', 0x01, 0x1f,
                                   0x7f, '/'};
    for (size_t k = 0; k < sizeof special; k++) {
        for (size_t at = 0; at < 30; at++) {
            char t[31], want[256];
            for (size_t i = 0; i < 30; i++)
                t[i] = (char)('A' + i % 26);
            memcpy(t + 10, "\xc3\xa9", 2); /* an e-acute the escaper must copy as is */
            t[at] = special[k];
            size_t n = 0;
            want[n++] = '"';
            for (size_t i = 0; i < 30; i++) {
                unsigned char c = (unsigned char)t[i];
                const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                                : c == '\t' ? "\\t" : c == '\r' ? "\\r" : c == '\b' ? "\\b"
                                : c == '\f' ? "\\f" : NULL;
                if (e)
                    n += (size_t)snprintf(want + n, sizeof want - n, "%s", e);
                else if (c < 0x20)
                    n += (size_t)snprintf(want + n, sizeof want - n, "\\u%04x", c);
                else
                    want[n++] = (char)c;
            }
            want[n++] = '"';
            want[n] = '\0';
            jw w;
            jw_init(&w, 0);
            /* an e-acute split by the special byte is invalid UTF-8: written as '?' */
            int split = at == 10 || at == 11;
            jw_str(&w, t, 30);
            size_t len = 0;
            char *got = jw_finish(&w, &len);
            if (!split)
                ASSERT_STR_EQ(got, want);
            else
                ASSERT_TRUE(got && strchr(got, '?') != NULL);
            free(got);
        }
    }
}

/* Whether jw_real writes v as snprintf's "%.9g" (with ".0" after an integer). */
static int real_matches_printf(double v)
{
    char want[64];
    int n = snprintf(want, sizeof want, "%.9g", v);
    if (!strpbrk(want, ".eEn")) /* not inf or nan either */
        snprintf(want + n, sizeof want - (size_t)n, ".0");
    jw w;
    jw_init(&w, 0);
    jw_real(&w, v);
    size_t len = 0;
    char *got = jw_finish(&w, &len);
    int ok = got && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "jw_real(%.17g): '%s', printf: '%s'\n", v, got ? got : "(null)", want);
    free(got);
    return ok;
}

/* jw_real's own decimal writer against glibc's printf: random floats and doubles over and
 * around its range, exact halves (ties round to even), powers of ten and their neighbours. */
static void test_json_real_writer(void)
{
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    int bad = 0;
    for (int i = 0; i < 400000 && bad < 5; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        if (i % 2) { /* a float of any exponent from 1e-7 to 1e11 */
            uint32_t bits = (uint32_t)(x >> 32);
            bits = (bits & 0x807FFFFFu) | ((uint32_t)(103 + (x >> 8) % 60) << 23);
            float fv;
            memcpy(&fv, &bits, sizeof fv);
            v = fv;
        } else { /* a double with a full 53-bit mantissa */
            uint64_t bits = (x & 0x800FFFFFFFFFFFFFULL) | ((uint64_t)(1000 + (x >> 12) % 60) << 52);
            memcpy(&v, &bits, sizeof v);
        }
        bad += !real_matches_printf(v);
    }
    static const double edge[] = {0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 0.0001, 0.00009999999999,
                                  1e-4, 1e9, 999999999.0, 999999999.5, 999999998.5,
                                  123456789.5, 123456788.5, 9.9999999949999, 9.999999995,
                                  0.99999999951, 1e8, 12345.678901234, 0.000123456785,
                                  3.0e-5, 2.5e12, 0.97540307, -0.333333343};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        double v = edge[i];
        ASSERT_TRUE(real_matches_printf(v));
        ASSERT_TRUE(real_matches_printf(nextafter(v, 1e300)));
        ASSERT_TRUE(real_matches_printf(nextafter(v, -1e300)));
    }
    for (int p = -6; p <= 10; p++) {
        double t = pow(10, p);
        ASSERT_TRUE(real_matches_printf(t));
        ASSERT_TRUE(real_matches_printf(nextafter(t, 0)));
        ASSERT_TRUE(real_matches_printf((float)t));
    }
    ASSERT_EQ_INT(bad, 0);
}

/* Reads /proc/PID/FILE into buf (NUL-terminated, at most cap - 1 bytes); the number of
 * bytes read, or -1 when it cannot be opened. */
static long proc_read(pid_t pid, const char *file, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return (long)n;
}

/* Whether the NUL-separated environment of process pid holds the entry `want`. */
static int proc_env_has(pid_t pid, const char *want)
{
    char buf[65536];
    long got = proc_read(pid, "environ", buf, sizeof buf);
    if (got < 0)
        return -1;
    size_t n = (size_t)got;
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (!strcmp(buf + i, want))
            return 1;
    return 0;
}

/* The declared routes: "METHOD", "/pattern" ({id+} written {id}). */
#define ROUTE_ROW_(id, method, pattern, ...) {method, pattern},
static const char *const DECLARED[][2] = {SRV_ROUTE_TABLE(ROUTE_ROW_)};
#undef ROUTE_ROW_
#define NDECLARED (sizeof DECLARED / sizeof DECLARED[0])

/* pattern with a rest-of-path placeholder's '+' dropped, as the document writes it. */
static void doc_path(const char *pattern, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *p = pattern; *p && k + 1 < cap; p++)
        if (!(*p == '+' && p[1] == '}'))
            out[k++] = *p;
    out[k] = 0;
}

static void check_routes_documented(json_t *paths)
{
    ASSERT_TRUE(json_is_object(paths));
    size_t ops = 0;
    for (size_t i = 0; i < NDECLARED; i++) {
        char path[256], method[16];
        doc_path(DECLARED[i][1], path, sizeof path);
        size_t k = 0;
        for (; DECLARED[i][0][k] && k + 1 < sizeof method; k++)
            method[k] = (char)(DECLARED[i][0][k] | 0x20);
        method[k] = 0;
        if (!json_object_get(json_object_get(paths, path), method))
            fprintf(stderr, "  openapi lacks declared route %s %s\n", DECLARED[i][0], path);
        ASSERT_TRUE(json_object_get(json_object_get(paths, path), method) != NULL);
    }
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) {
            if (!strcmp(method, "parameters"))
                continue;
            ops++;
            char upper[16];
            size_t k = 0;
            for (; method[k] && k + 1 < sizeof upper; k++)
                upper[k] = (char)(method[k] & ~0x20);
            upper[k] = 0;
            int declared = 0;
            for (size_t i = 0; i < NDECLARED; i++) {
                char dp[256];
                doc_path(DECLARED[i][1], dp, sizeof dp);
                declared |= !strcmp(dp, path) && !strcmp(DECLARED[i][0], upper);
            }
            if (!declared)
                fprintf(stderr, "  openapi has undeclared %s %s\n", upper, path);
            ASSERT_TRUE(declared);
            /* the live router takes it: placeholders filled, no key */
            char live[512];
            size_t n = 0;
            for (const char *p = path; *p && n + 16 < sizeof live;) {
                if (*p == '{') {
                    n += (size_t)snprintf(live + n, sizeof live - n, "probe");
                    p = strchr(p, '}') + 1;
                } else {
                    live[n++] = *p++;
                }
            }
            live[n] = 0;
            resp r;
            long st = req(upper, live, NULL, !strcmp(upper, "POST") || !strcmp(upper, "PATCH")
                                                  ? "{}" : NULL, &r);
            int routed = st != 405 && !(st == 404 && r.body && strstr(r.body, "no route for"));
            if (!routed)
                fprintf(stderr, "  %s %s: the router answered %ld\n", upper, live, st);
            ASSERT_TRUE(routed);
            resp_free(&r);
        }
    }
    ASSERT_EQ_INT(ops, NDECLARED);
}

static void test_operational_endpoints(void)
{
    resp r;
    /* the server re-executed itself with single-threaded OpenMP (when the environment did
     * not choose) */
    if (!getenv("OMP_NUM_THREADS"))
        ASSERT_EQ_INT(proc_env_has(S.pid, "OMP_NUM_THREADS=1"), 1);
    ASSERT_EQ_INT(req("GET", "/healthz", NULL, NULL, &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "status")), "ok");
    resp_free(&r);

    ASSERT_EQ_INT(req("GET", "/readyz", NULL, NULL, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "dim")), 384);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "embedder")), "hash");
    resp_free(&r);

    ASSERT_EQ_INT(req("GET", "/", NULL, NULL, &r), 200);
    ASSERT_TRUE(r.body && strstr(r.body, "<title>ragcore</title>"));
    ASSERT_TRUE(r.body && strstr(r.body, "/metrics"));
    resp_free(&r);

    /* The route table (route_table.h) against the served document and the live router:
     * every declared route is in /openapi.json with its method, every operation of the
     * document is declared, and the server routes each one (no "no route" 404, no 405). */
    ASSERT_EQ_INT(req("GET", "/openapi.json", NULL, NULL, &r), 200);
    ASSERT_TRUE(r.json != NULL);
    const char *ver = json_string_value(json_object_get(r.json, "openapi"));
    ASSERT_TRUE(ver && !strncmp(ver, "3.", 2));
    check_routes_documented(json_object_get(r.json, "paths"));
    resp_free(&r);

    ASSERT_EQ_INT(req("GET", "/nope", NULL, NULL, &r), 404);
    ASSERT_STR_EQ(err_code(&r), "not_found");
    resp_free(&r);
    ASSERT_EQ_INT(req("PUT", "/healthz", NULL, NULL, &r), 405);
    ASSERT_STR_EQ(err_code(&r), "method_not_allowed");
    resp_free(&r);
}

static void test_collections_and_auth(void)
{
    resp r;
    ASSERT_EQ_INT(req("POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"alpha\"}", &r), 201);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "name")), "alpha");
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"beta\"}", &r), 201);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"alpha\"}", &r), 409);
    ASSERT_STR_EQ(err_code(&r), "already_exists");
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"bad name!\"}", &r), 400);
    ASSERT_STR_EQ(err_field(&r), "name");
    resp_free(&r);

    create_key("reader", "[\"read\"]", "[\"alpha\"]", reader_key, reader_id);
    create_key("writer", "[\"read\",\"write\"]", "[\"alpha\"]", writer_key, NULL);
    ASSERT_TRUE(!strncmp(reader_key, "rck_", 4));

    /* no key / unknown key: 401 */
    ASSERT_EQ_INT(req("GET", "/v1/collections", NULL, NULL, &r), 401);
    ASSERT_STR_EQ(err_code(&r), "unauthorized");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections", "rck_not-a-key", NULL, &r), 401);
    resp_free(&r);
    /* wrong scope: 403 */
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/documents", reader_key,
                      "{\"documents\":[{\"id\":\"x\",\"text\":\"y\"}]}", &r), 403);
    ASSERT_STR_EQ(err_code(&r), "forbidden");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/keys", writer_key, NULL, &r), 403);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections", reader_key, "{\"name\":\"gamma\"}", &r), 403);
    resp_free(&r);
    /* wrong collection: 403, whether or not it exists */
    ASSERT_EQ_INT(req("POST", "/v1/collections/beta/search", reader_key, "{\"query\":\"x\"}", &r),
                  403);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/beta", reader_key, NULL, &r), 403);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/beta/documents", writer_key,
                      "{\"documents\":[{\"id\":\"x\",\"text\":\"y\"}]}", &r), 403);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/nosuch", reader_key, NULL, &r), 403);
    resp_free(&r);
    /* a reader lists only its granted collections */
    ASSERT_EQ_INT(req("GET", "/v1/collections", reader_key, NULL, &r), 200);
    json_t *colls = json_object_get(r.json, "collections");
    ASSERT_EQ_INT(json_array_size(colls), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(colls, 0), "name")), "alpha");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections", ADMIN_KEY, NULL, &r), 200);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "collections")), 2);
    resp_free(&r);
    /* X-API-Key works too */
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/v1/collections/alpha", S.base);
    struct curl_slist *h = curl_slist_append(NULL, "X-API-Key: " ADMIN_KEY);
    resp r2 = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r2);
    ASSERT_EQ_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r2.status);
    ASSERT_EQ_INT(r2.status, 200);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    resp_free(&r2);
}

static void test_documents_and_search(void)
{
    resp r;
    const char *docs =
        "{\"documents\":["
        "{\"id\":\"fox\",\"text\":\"The quick brown fox jumps over the lazy dog near the river bank.\","
        "\"title\":\"Fox\",\"source\":\"file:///animals/fox.txt\",\"metadata\":{\"lang\":\"en\"},"
        "\"source_mtime\":1700000000},"
        "{\"id\":\"install\",\"text\":\"# Install\\n\\nBuild ragcore on Linux with make and cmake.\","
        "\"format\":\"markdown\",\"source\":\"file:///docs/install.md\"},"
        "{\"id\":\"dir/with/slash\",\"text\":\"Paths may contain slashes in document ids.\"}]}";
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/documents", writer_key, docs, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 3);
    ASSERT_TRUE(json_integer_value(json_object_get(r.json, "chunks")) >= 3);
    resp_free(&r);

    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key,
                      "{\"query\":\"quick brown fox\",\"k\":2}", &r), 200);
    json_t *res = json_object_get(r.json, "results");
    ASSERT_EQ_INT(json_array_size(res), 2);
    json_t *top = json_array_get(res, 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(top, "doc_id")), "fox");
    ASSERT_STR_EQ(json_string_value(json_object_get(top, "source")), "file:///animals/fox.txt");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(top, "metadata"), "lang")), "en");
    ASSERT_TRUE(json_real_value(json_object_get(top, "score")) >
                json_number_value(json_object_get(json_array_get(res, 1), "score")));
    ASSERT_EQ_INT(strlen(json_string_value(json_object_get(r.json, "query_id"))), 24);
    /* every field of a hit, as written by json_writer */
    ASSERT_STR_EQ(json_string_value(json_object_get(top, "title")), "Fox");
    ASSERT_STR_EQ(json_string_value(json_object_get(top, "text")),
                  "The quick brown fox jumps over the lazy dog near the river bank.");
    ASSERT_EQ_INT(json_integer_value(json_object_get(top, "source_mtime")), 1700000000);
    ASSERT_EQ_INT(json_integer_value(json_object_get(top, "start")), 0);
    ASSERT_EQ_INT(json_integer_value(json_object_get(top, "end")), 64);
    ASSERT_TRUE(json_integer_value(json_object_get(top, "token_count")) > 5);
    ASSERT_TRUE(json_integer_value(json_object_get(top, "ingested_at")) > 1700000000);
    ASSERT_TRUE(json_is_real(json_object_get(top, "dense_score")));
    ASSERT_TRUE(json_is_real(json_object_get(top, "lexical_score")));
    ASSERT_EQ_INT(json_integer_value(json_object_get(top, "dense_rank")), 1);
    ASSERT_EQ_INT(json_integer_value(json_object_get(top, "lexical_rank")), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(top, "heading_path")), "");
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "mode")), "hybrid");
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "collection")), "alpha");
    ASSERT_TRUE(json_is_boolean(json_object_get(r.json, "no_confident_context")));
    ASSERT_TRUE(json_is_real(json_object_get(r.json, "took_ms")));
    resp_free(&r);

    /* text, title and metadata that need escaping come back byte for byte */
    const char *odd_text = "She said \\\"hi\\\" \\\\ back\\tslash, ctl\\u0001 \u00e9 \u6f22\u5b57 \\ud83d\\ude00 end";
    char odd[512];
    snprintf(odd, sizeof odd,
             "{\"documents\":[{\"id\":\"odd\\\"id\",\"text\":\"%s\",\"title\":\"T \\\"q\\\"\","
             "\"metadata\":{\"a\":[1,2.5,{\"b\":\"c\\\"d\"}],\"u\":\"\u00e9\",\"n\":null}}]}",
             odd_text);
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/documents", writer_key, odd, &r), 200);
    resp_free(&r);
    json_t *sent = json_loads(odd, 0, NULL), *sent_doc = json_array_get(json_object_get(sent, "documents"), 0);
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key,
                      "{\"query\":\"she said hi\",\"doc_ids\":[\"odd\\\"id\"]}", &r), 200);
    top = json_array_get(json_object_get(r.json, "results"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(top, "doc_id")), "odd\"id");
    ASSERT_STR_EQ(json_string_value(json_object_get(top, "text")),
                  json_string_value(json_object_get(sent_doc, "text")));
    ASSERT_STR_EQ(json_string_value(json_object_get(top, "title")), "T \"q\"");
    ASSERT_TRUE(json_equal(json_object_get(top, "metadata"), json_object_get(sent_doc, "metadata")));
    json_decref(sent);
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/alpha/documents/odd%22id", writer_key, NULL, &r), 200);
    resp_free(&r);

    /* filters: source prefix and doc ids */
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key,
                      "{\"query\":\"quick brown fox\",\"filter\":{\"source\":{\"$prefix\":\"file:///docs/\"}}}",
                      &r), 200);
    res = json_object_get(r.json, "results");
    ASSERT_EQ_INT(json_array_size(res), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "doc_id")), "install");
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key,
                      "{\"query\":\"fox\",\"doc_ids\":[\"dir/with/slash\"]}", &r), 200);
    res = json_object_get(r.json, "results");
    ASSERT_EQ_INT(json_array_size(res), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "doc_id")),
                  "dir/with/slash");
    resp_free(&r);

    /* metadata filter expression, lexical mode */
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key,
                      "{\"query\":\"slashes\",\"filter\":\"lang = \\\"en\\\"\"}", &r), 200);
    res = json_object_get(r.json, "results");
    ASSERT_EQ_INT(json_array_size(res), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "doc_id")), "fox");
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key,
                      "{\"query\":\"slashes\",\"mode\":\"lexical\",\"k\":1}", &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "mode")), "lexical");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "results"), 0), "doc_id")),
                  "dir/with/slash");
    resp_free(&r);

    /* get a document (id with slashes, URL-encoded) */
    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha/documents/dir%2Fwith%2Fslash", reader_key,
                      NULL, &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "id")), "dir/with/slash");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "chunks"), 0), "text")),
                  "Paths may contain slashes in document ids.");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha/documents/fox", reader_key, NULL, &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "title")), "Fox");
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "source_mtime")), 1700000000);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha/documents/missing", reader_key, NULL, &r), 404);
    resp_free(&r);

    /* collection stats */
    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha", reader_key, NULL, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 3);
    resp_free(&r);

    /* delete a document: 200, then 404 on get and on a second delete; reader may not */
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/alpha/documents/install", reader_key, NULL, &r), 403);
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/alpha/documents/install", writer_key, NULL, &r), 200);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha/documents/install", reader_key, NULL, &r), 404);
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/alpha/documents/install", writer_key, NULL, &r), 404);
    resp_free(&r);

    /* missing collection: a search gets 404; an upsert creates it, as the library does */
    ASSERT_EQ_INT(req("POST", "/v1/collections/nosuch/search", ADMIN_KEY, "{\"query\":\"x\"}", &r), 404);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/nosuch/documents", ADMIN_KEY,
                      "{\"documents\":[{\"id\":\"a\",\"text\":\"b\"}]}", &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 1);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/nosuch", ADMIN_KEY, NULL, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r.json, "settings"), "pii")),
                  "off"); /* the store's default settings */
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/nosuch", ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);

    /* prompt-ready context within a token budget, with its sources */
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/context", reader_key,
                      "{\"query\":\"quick brown fox\",\"budget_tokens\":200}", &r), 200);
    const char *ctx = json_string_value(json_object_get(r.json, "context"));
    ASSERT_TRUE(ctx && strstr(ctx, "quick brown fox jumps"));
    ASSERT_TRUE(json_integer_value(json_object_get(r.json, "tokens")) > 0 &&
                json_integer_value(json_object_get(r.json, "tokens")) <= 200);
    json_t *sources = json_object_get(json_object_get(r.json, "passages"), "sources");
    ASSERT_TRUE(json_array_size(sources) >= 1);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/context", reader_key,
                      "{\"query\":\"fox\",\"format\":\"pdf\"}", &r), 400);
    ASSERT_STR_EQ(err_field(&r), "format");
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/beta/context", reader_key, "{\"query\":\"x\"}", &r), 403);
    resp_free(&r);

    /* drop a collection */
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/beta", writer_key, NULL, &r), 403);
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/beta", ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/beta", ADMIN_KEY, NULL, &r), 404);
    resp_free(&r);
}

static void expect_400(const char *path, const char *body, const char *code, const char *field)
{
    resp r;
    ASSERT_EQ_INT(req("POST", path, ADMIN_KEY, body, &r), 400);
    ASSERT_STR_EQ(err_code(&r), code);
    ASSERT_STR_EQ(err_field(&r), field);
    const char *msg = json_string_value(json_object_get(json_object_get(r.json, "error"), "message"));
    ASSERT_TRUE(msg && strlen(msg) > 5);
    resp_free(&r);
}

static void test_validation(void)
{
    const char *docs = "/v1/collections/alpha/documents", *search = "/v1/collections/alpha/search";
    expect_400(docs, "{\"documents\":[{\"id\":", "invalid_json", "");
    expect_400(docs, "", "invalid_json", "");
    expect_400(docs, "[1,2]", "invalid_json", "");
    expect_400(docs, "{}", "missing_field", "documents");
    expect_400(docs, "{\"documents\":[]}", "invalid_field", "documents");
    expect_400(docs, "{\"documents\":[{\"id\":\"a\",\"text\":\"b\"},{\"id\":7,\"text\":\"c\"}]}",
               "invalid_field", "documents[1].id");
    expect_400(docs, "{\"documents\":[{\"id\":\"a\"}]}", "missing_field", "documents[0].text");
    expect_400(docs, "{\"documents\":[{\"id\":\"a\",\"text\":\"b\",\"colour\":1}]}",
               "invalid_field", "documents[0].colour");
    expect_400(docs, "{\"documents\":[{\"id\":\"a\",\"text\":\"b\",\"metadata\":[1]}]}",
               "invalid_field", "documents[0].metadata");
    expect_400(docs, "{\"documents\":[{\"id\":\"a\",\"text\":\"b\",\"format\":\"pdf\"}]}",
               "invalid_field", "documents[0].format");
    expect_400(search, "{\"k\":3}", "missing_field", "query");
    expect_400(search, "{\"query\":\"x\",\"k\":0}", "invalid_field", "k");
    expect_400(search, "{\"query\":\"x\",\"k\":\"3\"}", "invalid_field", "k");
    expect_400(search, "{\"vector\":[1,2,3]}", "invalid_field", "vector");
    expect_400(search, "{\"query\":\"x\",\"mode\":\"telepathy\"}", "invalid_field", "mode");
    expect_400(search, "{\"query\":\"x\",\"filter\":{\"colour\":{\"$regex\":\"r.d\"}}}",
               "invalid_field", "filter.colour.$regex");
    expect_400(search, "{\"query\":\"x\",\"filter\":{\"doc_id\":{\"$in\":[{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":1}}}}}}}}]}}}",
               "invalid_field", "filter");
    expect_400(search, "{\"query\":\"x\",\"qeury\":\"typo\"}", "invalid_field", "qeury");
    expect_400(search, "{\"query\":\"x\",\"filter\":\"lang = = 3\"}", "invalid_field", "filter");
    expect_400(search, "{\"query\":\"x\",\"filter\":\"((((((((((a = 1))))))))))\"}", "invalid_field", "filter");
    expect_400(search, "{\"query\":\"x\",\"fusion\":\"average\"}", "invalid_field", "fusion");
    expect_400(search, "{\"query\":\"x\",\"dense_weight\":2}", "invalid_field", "dense_weight");
    {
        char body[8192];
        int n = snprintf(body, sizeof body, "{\"mode\":\"lexical\",\"vector\":[1");
        for (int i = 1; i < 384; i++)
            n += snprintf(body + n, sizeof body - (size_t)n, ",0");
        snprintf(body + n, sizeof body - (size_t)n, "]}");
        expect_400(search, body, "invalid_field", "mode");
    }
    expect_400("/v1/keys", "{\"name\":\"k\",\"scopes\":[\"read\",\"root\"],\"collections\":[\"*\"]}",
               "invalid_field", "scopes[1]");
    expect_400("/v1/embeddings", "{\"input\":[\"ok\",\"\"]}", "invalid_field", "input[1]");

    /* query longer than max-query-bytes (8192 by default) */
    size_t n = 9000;
    char *big = malloc(n + 64);
    memcpy(big, "{\"query\":\"", 10);
    memset(big + 10, 'q', n);
    strcpy(big + 10 + n, "\"}");
    expect_400(search, big, "invalid_field", "query");
    free(big);

    /* body over 10 MiB: 413, with and without Expect: 100-continue */
    size_t over = (10u << 20) + 1;
    char *huge = malloc(over);
    memset(huge, ' ', over);
    resp r;
    ASSERT_EQ_INT(request(&S, "POST", docs, ADMIN_KEY, huge, over, &r), 413);
    ASSERT_STR_EQ(err_code(&r), "body_too_large");
    resp_free(&r);
    free(huge);
    /* just under the limit is read (and refused as malformed JSON, not as too large) */
    size_t under = 10u << 20;
    huge = malloc(under);
    memset(huge, ' ', under);
    huge[0] = '{';
    ASSERT_EQ_INT(request(&S, "POST", docs, ADMIN_KEY, huge, under, &r), 400);
    ASSERT_STR_EQ(err_code(&r), "invalid_json");
    resp_free(&r);
    free(huge);
}

/* Inputs the HTTP and schema fuzzers (tests/fuzz/fuzz_http.c, tools/api_fuzz.sh) found
 * answered with a 500 or disagreeing with openapi.json. */
static void test_fuzz_findings(void)
{
    resp r;
    /* Request text quoted in an error message must not break its JSON: a path with an
     * invalid UTF-8 byte (refused before routing since), and a valid multi-byte name that
     * the message buffer cuts in the middle of a character, get a parseable body. */
    ASSERT_EQ_INT(req("GET", "/v1/%A8collections/x", ADMIN_KEY, NULL, &r), 400);
    ASSERT_STR_EQ(err_code(&r), "invalid_target");
    resp_free(&r);
    char path[8192] = "/v1/collections/";
    for (int i = 0; i < 600; i++)
        strcat(path, "%C3%A9");
    ASSERT_EQ_INT(req("GET", path, ADMIN_KEY, NULL, &r), 404);
    ASSERT_STR_EQ(err_code(&r), "not_found");
    resp_free(&r);

    /* Document ids: 507 bytes is the store's limit (was 512 in the server and the
     * library, so 508..512 failed in LMDB as a 500). */
    ASSERT_EQ_INT(req("POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"fuzzfind\"}", &r), 201);
    resp_free(&r);
    char body[1200], id[600];
    memset(id, 'i', 507);
    id[507] = 0;
    snprintf(body, sizeof body, "{\"documents\":[{\"id\":\"%s\",\"text\":\"long id\"}]}", id);
    ASSERT_EQ_INT(req("POST", "/v1/collections/fuzzfind/documents", ADMIN_KEY, body, &r), 200);
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/collections/fuzzfind/documents/%s", id);
    ASSERT_EQ_INT(req("GET", path, ADMIN_KEY, NULL, &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "id")), id);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"documents\":[{\"id\":\"%si\",\"text\":\"long id\"}]}", id);
    expect_400("/v1/collections/fuzzfind/documents", body, "invalid_field", "documents[0].id");

    /* openapi.json agreements: an empty source_template is refused naming the field;
     * "$in" takes an array only; "after" must be 24 hex digits when given; null means
     * absent for "collections". */
    expect_400("/v1/collections/fuzzfind/context", "{\"query\":\"x\",\"source_template\":\"\"}",
               "invalid_field", "source_template");
    expect_400("/v1/collections/fuzzfind/search",
               "{\"query\":\"x\",\"filter\":{\"doc_id\":{\"$in\":\"a\"}}}", "invalid_field",
               "filter.doc_id.$in");
    ASSERT_EQ_INT(req("GET", "/v1/querylog?after=", ADMIN_KEY, NULL, &r), 400);
    ASSERT_STR_EQ(err_field(&r), "after");
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/keys", ADMIN_KEY,
                      "{\"name\":\"fz\",\"scopes\":[\"admin\"],\"collections\":null}", &r), 201);
    const char *kid = json_string_value(json_object_get(r.json, "id"));
    ASSERT_TRUE(kid != NULL);
    snprintf(path, sizeof path, "/v1/keys/%s", kid ? kid : "none");
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", path, ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/fuzzfind", ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);
}

/* GET /v1/collections/{c}/documents through every page of `limit`, with `query` (URL
 * query text after limit, may be ""): the ids in order into ids (at most max); returns how
 * many, -1 on a failed page. Checks the order and that `next` is null only on the last. */
static int list_all(const char *coll, int limit, const char *query, char ids[][64], int max)
{
    char after[128] = "", path[1024];
    int n = 0, pages = 0;
    for (;;) {
        resp r;
        snprintf(path, sizeof path, "/v1/collections/%s/documents?limit=%d%s%s%s", coll, limit,
                 query, *after ? "&after=" : "", after);
        if (req("GET", path, ADMIN_KEY, NULL, &r) != 200) {
            resp_free(&r);
            return -1;
        }
        json_t *docs = json_object_get(r.json, "documents");
        ASSERT_TRUE(json_array_size(docs) <= (size_t)limit);
        size_t i;
        json_t *d;
        json_array_foreach(docs, i, d) {
            const char *id = json_string_value(json_object_get(d, "id"));
            if (n > 0 && id)
                ASSERT_TRUE(strcmp(ids[n - 1], id) < 0);
            if (n < max && id)
                snprintf(ids[n++], 64, "%s", id);
        }
        const char *next = json_string_value(json_object_get(r.json, "next"));
        snprintf(after, sizeof after, "%s", next ? next : "");
        resp_free(&r);
        if (!*after || ++pages > 100)
            break;
    }
    return n;
}

/* The HTTP API mirrors the library: collection settings (create with, read, change; admin
 * only), TTL fields, listing in pages with filters (expressions and JSON objects), whole
 * documents, JSON metadata filters in searches, skip_unchanged batches. */
static void test_http_mirrors_library(void)
{
    resp r;
    char writer[128], body[8192], ids[64][64];
    create_key("mirror-writer", "[\"read\",\"write\"]", "[\"lib\",\"lib2\"]", writer, NULL);

    /* settings at creation need the admin scope; a bad setting names its field */
    const char *with = "{\"name\":\"lib\",\"settings\":{\"pii\":\"mask\",\"dedup\":\"skip\"}}";
    ASSERT_EQ_INT(req("POST", "/v1/collections", writer, with, &r), 403);
    resp_free(&r);
    expect_400("/v1/collections", "{\"name\":\"lib\",\"settings\":{\"pii\":\"shred\"}}",
               "invalid_field", "settings.pii");
    expect_400("/v1/collections", "{\"name\":\"lib\",\"settings\":{\"colour\":\"red\"}}",
               "unknown_field", "settings.colour");
    ASSERT_EQ_INT(req("POST", "/v1/collections", ADMIN_KEY, with, &r), 201);
    json_t *set = json_object_get(r.json, "settings");
    ASSERT_STR_EQ(json_string_value(json_object_get(set, "pii")), "mask");
    ASSERT_STR_EQ(json_string_value(json_object_get(set, "dedup")), "skip");
    resp_free(&r);
    /* a writer may create one without settings */
    ASSERT_EQ_INT(req("POST", "/v1/collections", writer, "{\"name\":\"lib2\"}", &r), 201);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r.json, "settings"), "pii")),
                  "off");
    resp_free(&r);

    /* PATCH changes the fields given, keeps the others; admin only */
    ASSERT_EQ_INT(req("PATCH", "/v1/collections/lib", writer, "{\"pii\":\"off\"}", &r), 403);
    resp_free(&r);
    ASSERT_EQ_INT(req("PATCH", "/v1/collections/lib", ADMIN_KEY,
                      "{\"pii\":\"off\",\"quality\":\"on\",\"min_chars\":3}", &r), 200);
    set = json_object_get(r.json, "settings");
    ASSERT_STR_EQ(json_string_value(json_object_get(set, "pii")), "off");
    ASSERT_STR_EQ(json_string_value(json_object_get(set, "quality")), "on");
    ASSERT_EQ_INT(json_integer_value(json_object_get(set, "min_chars")), 3);
    ASSERT_STR_EQ(json_string_value(json_object_get(set, "dedup")), "skip"); /* kept */
    resp_free(&r);
    ASSERT_EQ_INT(req("PATCH", "/v1/collections/lib", ADMIN_KEY, "{\"min_chars\":\"3\"}", &r), 400);
    ASSERT_STR_EQ(err_field(&r), "min_chars");
    resp_free(&r);
    ASSERT_EQ_INT(req("PATCH", "/v1/collections/lib", ADMIN_KEY, "{\"language\":\"french\"}", &r),
                  400);
    resp_free(&r);
    ASSERT_EQ_INT(req("PATCH", "/v1/collections/nosuch", ADMIN_KEY, "{\"pii\":\"off\"}", &r), 404);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/lib", writer, NULL, &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r.json, "settings"),
                                                    "quality")), "on");
    ASSERT_TRUE(json_object_get(r.json, "freshness") != NULL);
    resp_free(&r);

    /* 25 documents with metadata; one expires through ttl_seconds, one is already past
     * valid_until */
    size_t n = (size_t)snprintf(body, sizeof body, "{\"documents\":[");
    for (int i = 0; i < 25; i++)
        n += (size_t)snprintf(body + n, sizeof body - n,
                              "%s{\"id\":\"d%02d\",\"text\":\"document number %d about topic %s\","
                              "\"metadata\":{\"lang\":\"%s\",\"year\":%d}%s}",
                              i ? "," : "", i, i, i % 2 ? "odd" : "even", i % 3 ? "en" : "de",
                              2010 + i % 10,
                              i == 3    ? ",\"ttl_seconds\":100"
                              : i == 4 ? ",\"valid_until\":1000"
                                       : "");
    snprintf(body + n, sizeof body - n, "]}");
    ASSERT_EQ_INT(req("POST", "/v1/collections/lib/documents", writer, body, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 25);
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(r.json, "summary"), "seen")),
                  25);
    resp_free(&r);

    /* a whole document, TTL applied */
    ASSERT_EQ_INT(req("GET", "/v1/collections/lib/documents/d03", writer, NULL, &r), 200);
    json_int_t at = json_integer_value(json_object_get(r.json, "ingested_at"));
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "valid_until")), at + 100);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "chunks")), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r.json, "metadata"), "lang")),
                  "de");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/lib/documents/d04", writer, NULL, &r), 200);
    ASSERT_TRUE(json_is_true(json_object_get(r.json, "expired")));
    resp_free(&r);

    /* paging: every live document once, in id order, whatever the page size */
    ASSERT_EQ_INT(list_all("lib", 7, "", ids, 64), 24); /* d04 expired */
    ASSERT_STR_EQ(ids[0], "d00");
    ASSERT_STR_EQ(ids[23], "d24");
    ASSERT_EQ_INT(list_all("lib", 1, "", ids, 64), 24);
    ASSERT_EQ_INT(list_all("lib", 100, "&include_expired=true", ids, 64), 25);
    /* filters: an expression, a JSON object (URL-encoded), and their errors */
    ASSERT_EQ_INT(list_all("lib", 5, "&filter=lang%20%3D%20%22de%22", ids, 64), 9);
    ASSERT_EQ_INT(list_all("lib", 4,
                           "&filter=%7B%22year%22%3A%7B%22%24gte%22%3A2015%7D%2C%22lang%22%3A%22en%22%7D",
                           ids, 64), 6);
    ASSERT_EQ_INT(req("GET", "/v1/collections/lib/documents?filter=%7B%22year%22%3A%7B%22%24like%22%3A1%7D%7D",
                      writer, NULL, &r), 400);
    ASSERT_STR_EQ(err_field(&r), "filter.year.$like");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/lib/documents?filter=year%20%3E%3E%201", writer, NULL,
                      &r), 400);
    ASSERT_STR_EQ(err_field(&r), "filter");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/lib/documents?limit=0", writer, NULL, &r), 400);
    ASSERT_STR_EQ(err_field(&r), "limit");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/nosuch/documents", ADMIN_KEY, NULL, &r), 404);
    resp_free(&r);

    /* JSON metadata filters in a search: $in, $ne, $lt, $exists, $or */
    static const struct {
        const char *filter;
        int hits;
    } F[] = {{"{\"lang\":\"de\"}", 9},
             {"{\"year\":{\"$in\":[2010,2011]}}", 6},
             {"{\"lang\":{\"$ne\":\"de\"},\"year\":{\"$lt\":2012}}", 4},
             {"{\"year\":{\"$gte\":2015,\"$lte\":2016}}", 4},
             {"{\"$or\":[{\"lang\":\"de\"},{\"year\":2019}]}", 10},
             {"{\"lang\":{\"$exists\":false}}", 0},
             {"{\"$not\":{\"lang\":\"en\"}}", 9}};
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) {
        snprintf(body, sizeof body, "{\"query\":\"document topic\",\"k\":20,\"filter\":%s}",
                 F[i].filter);
        ASSERT_EQ_INT(req("POST", "/v1/collections/lib/search", writer, body, &r), 200);
        if ((int)json_array_size(json_object_get(r.json, "results")) != F[i].hits)
            fprintf(stderr, "  filter %s: %zu hits\n", F[i].filter,
                    json_array_size(json_object_get(r.json, "results")));
        ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "results")), F[i].hits);
        resp_free(&r);
    }
    expect_400("/v1/collections/lib/search",
               "{\"query\":\"x\",\"filter\":{\"year\":{\"$between\":[1,2]}}}", "invalid_field",
               "filter.year.$between");
    expect_400("/v1/collections/lib/search", "{\"query\":\"x\",\"filter\":{\"year\":[2010]}}",
               "invalid_field", "filter.year");
    expect_400("/v1/collections/lib/search", "{\"query\":\"x\",\"filter\":{\"$xor\":[]}}",
               "invalid_field", "filter.$xor");

    /* a batch of a sync: stored versions that did not change are skipped */
    ASSERT_EQ_INT(req("POST", "/v1/collections/lib2/documents", writer,
                      "{\"documents\":[{\"id\":\"a\",\"text\":\"alpha text\"},"
                      "{\"id\":\"b\",\"text\":\"beta text\"}],\"skip_unchanged\":true}", &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 2);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/lib2/documents", writer,
                      "{\"documents\":[{\"id\":\"a\",\"text\":\"alpha text\"},"
                      "{\"id\":\"b\",\"text\":\"beta text, changed\"}],\"skip_unchanged\":true}",
                      &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 1);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "replaced")), 1);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "unchanged")), 1);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/lib2", writer, NULL, &r), 200);
    ASSERT_TRUE(json_integer_value(json_object_get(json_object_get(r.json, "freshness"),
                                                   "last_sync")) > 0);
    resp_free(&r);
    expect_400("/v1/collections/lib2/documents",
               "{\"documents\":[{\"id\":\"a\",\"text\":\"x\"}],\"skip_unchanged\":1}",
               "invalid_field", "skip_unchanged");
    expect_400("/v1/collections/lib2/documents",
               "{\"documents\":[{\"id\":\"a\",\"text\":\"x\",\"ttl_seconds\":-1}]}",
               "invalid_field", "documents[0].ttl_seconds");

    ASSERT_EQ_INT(req("DELETE", "/v1/collections/lib", ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/lib2", ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);
}

/* Writes {"<key>":[emb's numbers],"k":1} with element 5 written as `at5` (when not NULL),
 * `sep` between elements and the last `drop` elements left out. */
static void vector_body(char *out, size_t cap, json_t *emb, const char *key, const char *at5,
                        const char *sep, size_t drop)
{
    size_t n = (size_t)snprintf(out, cap, "{\"%s\":[", key), count = json_array_size(emb);
    for (size_t i = 0; i + drop < count && n < cap; i++) {
        if (i)
            n += (size_t)snprintf(out + n, cap - n, "%s", sep);
        if (i == 5 && at5)
            n += (size_t)snprintf(out + n, cap - n, "%s", at5);
        else
            n += (size_t)snprintf(out + n, cap - n, "%.9g", json_number_value(json_array_get(emb, i)));
    }
    if (n < cap)
        snprintf(out + n, cap - n, "],\"k\":1}");
}

/* A search body whose "vector" array rj_body_lift reads itself gets the answer of the same
 * body with the key spelled with an escape (which only jansson reads): same status, error
 * code and field, and the same first hit and score. */
static void same_answer(json_t *emb, const char *at5, const char *sep, size_t drop)
{
    size_t cap = 16384;
    char *lifted = malloc(cap), *plain = malloc(cap);
    resp a, b;
    vector_body(lifted, cap, emb, "vector", at5, sep, drop);
    vector_body(plain, cap, emb, "vect\\u006fr", at5, sep, drop);
    long sa = req("POST", "/v1/collections/alpha/search", ADMIN_KEY, lifted, &a);
    long sb = req("POST", "/v1/collections/alpha/search", ADMIN_KEY, plain, &b);
    ASSERT_EQ_INT(sa, sb);
    ASSERT_STR_EQ(err_code(&a), err_code(&b));
    ASSERT_STR_EQ(err_field(&a), err_field(&b));
    if (sa == 200) {
        json_t *ha = json_array_get(json_object_get(a.json, "results"), 0);
        json_t *hb = json_array_get(json_object_get(b.json, "results"), 0);
        ASSERT_STR_EQ(json_string_value(json_object_get(ha, "doc_id")),
                      json_string_value(json_object_get(hb, "doc_id")));
        ASSERT_TRUE(json_real_value(json_object_get(ha, "score")) ==
                    json_real_value(json_object_get(hb, "score")));
    } else if (sa == 400 && !strcmp(err_code(&a), "invalid_field")) {
        const char *ma = json_string_value(json_object_get(json_object_get(a.json, "error"), "message"));
        const char *mb = json_string_value(json_object_get(json_object_get(b.json, "error"), "message"));
        ASSERT_STR_EQ(ma, mb);
    }
    if (sa != sb || strcmp(err_code(&a), err_code(&b)))
        fprintf(stderr, "  differs for element 5 '%s', sep '%s', drop %zu: %ld %s / %ld %s\n",
                at5 ? at5 : "-", sep, drop, sa, err_code(&a), sb, err_code(&b));
    resp_free(&a);
    resp_free(&b);
    free(lifted);
    free(plain);
}


/* The server's search options are the library's table: the served OpenAPI document declares
 * each one with the table's range, and the server accepts each at its bounds and refuses a
 * value past them naming the field. */
static void test_search_options_served(void)
{
    resp doc, r; /* doc: the OpenAPI document, read while r serves the searches */
    ASSERT_EQ_INT(req("GET", "/openapi.json", NULL, NULL, &doc), 200);
    json_t *schemas = json_object_get(json_object_get(doc.json, "components"), "schemas");
    json_t *sprops = json_object_get(json_object_get(schemas, "SearchRequest"), "properties");
    json_t *cprops = json_object_get(json_object_get(schemas, "ContextRequest"), "properties");
    size_t checked = 0;
    for (size_t i = 0; i < rag_search_option_count(); i++) {
        const rag_option_info *in = rag_search_option_info(i);
        if (!strcmp(in->name, "k") || !strcmp(in->name, "filter") ||
            !strcmp(in->name, "source_prefix"))
            continue; /* read by the handlers themselves */
        json_t *sp = json_object_get(sprops, in->name);
        if (!sp || !json_object_get(cprops, in->name))
            fprintf(stderr, "  openapi lacks search option %s\n", in->name);
        ASSERT_TRUE(sp != NULL && json_object_get(cprops, in->name) != NULL);
        char body[256];
        if (in->type == RAG_OPTION_INT || in->type == RAG_OPTION_REAL) {
            ASSERT_NEAR(json_number_value(json_object_get(sp, "maximum")), in->max, 1e-9);
            snprintf(body, sizeof body, "{\"query\":\"fox\",\"%s\":%.17g}", in->name, in->max);
            ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key, body, &r), 200);
            resp_free(&r);
            snprintf(body, sizeof body, "{\"query\":\"fox\",\"%s\":%.17g}", in->name,
                     in->max + 1);
            expect_400("/v1/collections/alpha/search", body, "invalid_field", in->name);
            checked++;
        } else if (in->type == RAG_OPTION_CHOICE) {
            char first[32];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(in->choices, "|"), in->choices);
            snprintf(body, sizeof body, "{\"query\":\"fox\",\"%s\":\"%s\"}", in->name, first);
            ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key, body, &r), 200);
            resp_free(&r);
            snprintf(body, sizeof body, "{\"query\":\"fox\",\"%s\":\"no-such\"}", in->name);
            expect_400("/v1/collections/alpha/search", body, "invalid_field", in->name);
            checked++;
        }
    }
    ASSERT_TRUE(checked >= 12);
    resp_free(&doc);
}

static void test_embeddings(void)
{
    resp r, s;
    ASSERT_EQ_INT(req("POST", "/v1/embeddings", reader_key,
                      "{\"model\":\"text-embedding-3-small\",\"input\":[\"quick brown fox\",\"make install\"]}", &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "object")), "list");
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "model")), "hash");
    json_t *data = json_object_get(r.json, "data");
    ASSERT_EQ_INT(json_array_size(data), 2);
    json_t *emb = json_object_get(json_array_get(data, 0), "embedding");
    ASSERT_EQ_INT(json_array_size(emb), 384);
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(data, 1), "index")), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(data, 0), "object")), "embedding");
    ASSERT_TRUE(json_integer_value(json_object_get(json_object_get(r.json, "usage"), "prompt_tokens")) >= 5);
    double norm = 0;
    size_t i;
    json_t *x;
    json_array_foreach(emb, i, x) norm += json_number_value(x) * json_number_value(x);
    ASSERT_NEAR(norm, 1.0, 1e-3);

    /* searching by that vector finds what searching by the text finds */
    json_t *body = json_pack("{s:O,s:i}", "vector", emb, "k", 1);
    char *text = json_dumps(body, JSON_COMPACT);
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key, text, &s), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(s.json, "results"), 0), "doc_id")),
                  "fox");
    double fox_score = json_real_value(json_object_get(json_array_get(json_object_get(s.json, "results"), 0), "score"));
    free(text);
    json_decref(body);
    resp_free(&s);
    /* An array of numbers is read from the body itself (rj_body_lift); anything it does not
     * read as jansson would goes through jansson: each answer equals the escaped-key one. */
    static const char *const at5[] = {
        NULL, "0", "-0", "7", "-12", "1.5e-2", "2E+1", "-0.0", "1e-50", /* read here */
        "1e300",                                  /* a finite double, not a float: 400 */
        "1e999", "99999999999999999999",          /* beyond double, long long: invalid */
        "01", "1.", ".5", "+1", "-", "1e", "NaN", "0x10", "true", "null", "\"1\"", "[1]",
        "{}", "1 2", "",
    };
    for (size_t t = 0; t < sizeof at5 / sizeof at5[0]; t++)
        same_answer(emb, at5[t], ",", 0);
    same_answer(emb, NULL, " ,\n\t", 0); /* blanks between the elements */
    same_answer(emb, NULL, ",", 1);       /* 383 numbers */
    same_answer(emb, NULL, ",,", 0);      /* an empty element */
    resp_free(&r);

    /* base64: 384 float32 = 1536 bytes = 2048 base64 characters */
    ASSERT_EQ_INT(req("POST", "/v1/embeddings", reader_key,
                      "{\"input\":\"quick brown fox\",\"encoding_format\":\"base64\"}", &r), 200);
    const char *b64 = json_string_value(json_object_get(json_array_get(json_object_get(r.json, "data"), 0), "embedding"));
    ASSERT_TRUE(b64 && strlen(b64) == 2048);
    if (b64 && strlen(b64) == 2048) {
        /* the same vector given to search as base64 finds the same document, same score */
        char *vb = malloc(2048 + 64), *bad = strdup(b64);
        snprintf(vb, 2048 + 64, "{\"vector\":\"%s\",\"k\":1}", b64);
        ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key, vb, &s), 200);
        json_t *hit = json_array_get(json_object_get(s.json, "results"), 0);
        ASSERT_STR_EQ(json_string_value(json_object_get(hit, "doc_id")), "fox");
        ASSERT_NEAR(json_real_value(json_object_get(hit, "score")), fox_score, 1e-6);
        resp_free(&s);
        /* damaged strings: each a 400 naming 'vector' */
        const char *search = "/v1/collections/alpha/search";
        expect_400(search, "{\"vector\":\"AAAA\"}", "invalid_field", "vector");
        bad[100] = '*'; /* not a base64 character */
        snprintf(vb, 2048 + 64, "{\"vector\":\"%s\"}", bad);
        expect_400(search, vb, "invalid_field", "vector");
        bad[100] = '='; /* padding in the middle */
        snprintf(vb, 2048 + 64, "{\"vector\":\"%s\"}", bad);
        expect_400(search, vb, "invalid_field", "vector");
        bad[100] = b64[100];
        memcpy(bad, "AADAf///", 8); /* vector[0] = 0x7fc00000, a NaN */
        snprintf(vb, 2048 + 64, "{\"vector\":\"%s\"}", bad);
        expect_400(search, vb, "invalid_field", "vector");
        ASSERT_EQ_INT(req("POST", search, ADMIN_KEY, vb, &s), 400);
        const char *msg = json_string_value(json_object_get(json_object_get(s.json, "error"), "message"));
        ASSERT_TRUE(msg && strstr(msg, "vector[0]"));
        resp_free(&s);
        memset(bad, 'A', 2048); /* all zeros */
        snprintf(vb, 2048 + 64, "{\"vector\":\"%s\"}", bad);
        expect_400(search, vb, "invalid_field", "vector");
        snprintf(vb, 2048 + 64, "{\"vector\":\" %.2047s\"}", b64); /* leading blank */
        expect_400(search, vb, "invalid_field", "vector");
        /* The value is decoded from the body itself (rj_body_lift) unless it has escapes;
         * both ways give the same hit, and the rest of the body keeps its checks. */
        size_t big = 2 * 2048 + 256;
        char *esc = malloc(big), *body2 = malloc(2 * big);
        /* the first character written as a JSON \u escape */
        snprintf(esc, big, "\\u%04x%s", (unsigned)(unsigned char)b64[0], b64 + 1);
        const char *shapes[] = {
            "{\"vector\":\"%s\",\"k\":1}",                 /* escapes: jansson decodes */
            " {\n \"k\" : 1 ,\t\"vector\" : \"%s\" }\r\n", /* blanks around the tokens */
        };
        for (int sh = 0; sh < 2; sh++) {
            snprintf(body2, 2 * big, shapes[sh], sh == 0 ? esc : b64);
            ASSERT_EQ_INT(req("POST", search, reader_key, body2, &s), 200);
            hit = json_array_get(json_object_get(s.json, "results"), 0);
            ASSERT_STR_EQ(json_string_value(json_object_get(hit, "doc_id")), "fox");
            ASSERT_NEAR(json_real_value(json_object_get(hit, "score")), fox_score, 1e-6);
            resp_free(&s);
        }
        /* twice, also under an escaped spelling of the key: duplicate members */
        snprintf(body2, 2 * big, "{\"vector\":\"%s\",\"vector\":\"%s\"}", b64, b64);
        expect_400(search, body2, "invalid_json", "");
        snprintf(body2, 2 * big, "{\"vector\":\"%s\",\"vect\\u006fr\":\"%s\"}", b64, b64);
        expect_400(search, body2, "invalid_json", "");
        /* a "vector" inside another member is not the top-level one: that member is refused */
        snprintf(body2, 2 * big, "{\"x\":{\"vector\":\"%s\"},\"vector\":\"%s\"}", b64, b64);
        expect_400(search, body2, "invalid_field", "x");
        /* malformed after the value, and a raw control character inside it */
        snprintf(body2, 2 * big, "{\"vector\":\"%s\",\"k\":}", b64);
        expect_400(search, body2, "invalid_json", "");
        snprintf(body2, 2 * big, "{\"vector\":\"%.1000s\n%s\"}", b64, b64 + 1001);
        ASSERT_EQ_INT(req("POST", search, ADMIN_KEY, body2, &s), 400);
        resp_free(&s);
        free(body2);
        free(esc);
        free(bad);
        free(vb);
    }
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/embeddings", NULL, "{\"input\":\"x\"}", &r), 401);
    resp_free(&r);
}

static void test_keys_and_querylog(void)
{
    resp r;
    /* the query log holds the searches made so far, with their results */
    json_t *found = NULL;
    for (int tries = 0; tries < 100 && !found; tries++) {
        ASSERT_EQ_INT(req("GET", "/v1/querylog?limit=1000", ADMIN_KEY, NULL, &r), 200);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(r.json, "entries"), i, e) {
            const char *q = json_string_value(json_object_get(e, "query"));
            if (q && !strcmp(q, "quick brown fox") && json_integer_value(json_object_get(e, "k")) == 2)
                found = json_incref(e);
        }
        resp_free(&r);
        if (!found)
            sleep_ms(50);
    }
    ASSERT_TRUE(found != NULL);
    if (found) {
        ASSERT_STR_EQ(json_string_value(json_object_get(found, "collection")), "alpha");
        ASSERT_TRUE(json_string_value(json_object_get(found, "key_id")) &&
                    !strcmp(json_string_value(json_object_get(found, "key_id")), reader_id));
        json_t *res = json_object_get(found, "results");
        ASSERT_EQ_INT(json_array_size(res), 2);
        ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "doc_id")), "fox");
        ASSERT_TRUE(json_integer_value(json_object_get(json_array_get(res, 0), "chunk_id")) > 0);
        ASSERT_TRUE(json_real_value(json_object_get(json_array_get(res, 0), "score")) > 0);
        ASSERT_STR_EQ(json_string_value(json_object_get(found, "mode")), "hybrid");
        ASSERT_TRUE(json_is_real(json_object_get(found, "latency_ms")));
        ASSERT_TRUE(json_is_boolean(json_object_get(found, "no_confident_context")));
        ASSERT_TRUE(json_integer_value(json_object_get(found, "ts_us")) > 1700000000000000LL);
        ASSERT_EQ_INT(strlen(json_string_value(json_object_get(found, "id"))), 24);
        ASSERT_TRUE(json_string_value(json_object_get(found, "request_id")) != NULL);
        json_decref(found);
    }
    /* a search by vector logs the vector's dimension; a search logs the tuning fields it
     * gave (seen: bit 1 and bit 2) */
    int seen = 0;
    json_t *want_filter = json_pack("{s:s}", "doc_id", "fox");
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key,
                      "{\"query\":\"fox\",\"per_doc\":1,\"filter\":{\"doc_id\":\"fox\"}}", &r), 200);
    resp_free(&r);
    for (int tries = 0; tries < 100 && seen != 3; tries++) {
        ASSERT_EQ_INT(req("GET", "/v1/querylog?limit=1000", ADMIN_KEY, NULL, &r), 200);
        size_t i;
        json_t *e;
        seen = 0;
        json_array_foreach(json_object_get(r.json, "entries"), i, e) {
            if (json_integer_value(json_object_get(e, "vector_dim")) == 384)
                seen |= 1;
            if (json_integer_value(json_object_get(e, "per_doc")) == 1 &&
                json_equal(json_object_get(e, "filter"), want_filter))
                seen |= 2;
        }
        resp_free(&r);
        if (seen != 3)
            sleep_ms(50);
    }
    json_decref(want_filter);
    ASSERT_EQ_INT(seen, 3);
    /* paging: limit 1 then after=next gives the following entry */
    ASSERT_EQ_INT(req("GET", "/v1/querylog?limit=1", ADMIN_KEY, NULL, &r), 200);
    const char *next = json_string_value(json_object_get(r.json, "next"));
    ASSERT_TRUE(next != NULL);
    char path[256], first[32] = "";
    snprintf(first, sizeof first, "%s", next ? next : "");
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/querylog?limit=1&after=%s", first);
    ASSERT_EQ_INT(req("GET", path, ADMIN_KEY, NULL, &r), 200);
    const char *id2 = json_string_value(json_object_get(json_array_get(json_object_get(r.json, "entries"), 0), "id"));
    ASSERT_TRUE(id2 && strcmp(id2, first) > 0);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/querylog?after=zz", ADMIN_KEY, NULL, &r), 400);
    ASSERT_STR_EQ(err_field(&r), "after");
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/querylog", reader_key, NULL, &r), 403);
    resp_free(&r);

    /* list keys: records without secrets or hashes */
    ASSERT_EQ_INT(req("GET", "/v1/keys", ADMIN_KEY, NULL, &r), 200);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "keys")), 2);
    ASSERT_TRUE(!strstr(r.body, reader_key) && !strstr(r.body, "sha256"));
    resp_free(&r);

    /* revoke the reader: 401 from then on */
    char rpath[128];
    snprintf(rpath, sizeof rpath, "/v1/keys/%s", reader_id);
    ASSERT_EQ_INT(req("DELETE", rpath, ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key, "{\"query\":\"fox\"}", &r), 401);
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/keys/000000000000", ADMIN_KEY, NULL, &r), 404);
    resp_free(&r);

    /* secrets never reach the log */
    char logpath[1100], buf[4096];
    snprintf(logpath, sizeof logpath, "%s/main.log", tmpdir);
    FILE *f = fopen(logpath, "r");
    int leaked = 0, lines = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        lines++;
        if (strstr(buf, reader_key) || strstr(buf, writer_key) || strstr(buf, ADMIN_KEY))
            leaked = 1;
    }
    if (f)
        fclose(f);
    ASSERT_TRUE(lines > 10);
    ASSERT_EQ_INT(leaked, 0);
}

/* The value of an unlabelled metric in a /metrics text, or -1 when absent. */
static double metric_value(const char *text, const char *name)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\n%s ", name);
    const char *p = strstr(text, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* /metrics needs a key with the metrics scope (admin implies it), and shows the
 * per-collection series only of the collections that key is granted: without a key it
 * listed every collection's name, counts and ingest times. */
static void test_metrics(void)
{
    resp r;
    char scraper[128];
    ASSERT_EQ_INT(req("POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"gamma\"}", &r), 201);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/metrics", NULL, NULL, &r), 401);
    ASSERT_STR_EQ(err_code(&r), "unauthorized");
    ASSERT_TRUE(r.body && !strstr(r.body, "alpha") && !strstr(r.body, "ragcore_collection_"));
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/metrics", writer_key, NULL, &r), 403); /* read, write: no */
    ASSERT_STR_EQ(err_code(&r), "forbidden");
    resp_free(&r);

    ASSERT_EQ_INT(req("GET", "/metrics", ADMIN_KEY, NULL, &r), 200);
    ASSERT_TRUE(r.body != NULL);
    if (r.body) {
        ASSERT_TRUE(strstr(r.body, "ragcore_requests_total{route=\"/v1/collections/{collection}/search\",method=\"POST\",status=\"200\"}") != NULL);
        ASSERT_TRUE(strstr(r.body, "ragcore_requests_total{route=\"/v1/collections\",method=\"GET\",status=\"401\"}") != NULL);
        ASSERT_TRUE(strstr(r.body, "ragcore_request_duration_seconds_bucket{route=\"/v1/collections/{collection}/search\",method=\"POST\",le=\"+Inf\"}") != NULL);
        ASSERT_TRUE(strstr(r.body, "ragcore_collection_documents{collection=\"alpha\"} 2") != NULL);
        ASSERT_TRUE(strstr(r.body, "ragcore_collection_documents{collection=\"gamma\"} 0") != NULL);
        /* fox, install, dir/with/slash, the implicitly created collection's document and
         * the escaping test's document */
        ASSERT_TRUE(strstr(r.body, "ragcore_ingest_documents_total 5") != NULL);
        ASSERT_TRUE(strstr(r.body, "\nragcore_requests_in_flight ") != NULL);
        /* 4096 unless the test runs under a descriptor limit too low for it */
        double limit = metric_value(r.body, "ragcore_http_connection_limit");
        ASSERT_TRUE(limit >= 1 && limit <= 4096);
    }
    resp_free(&r);

    /* a metrics key granted alpha sees alpha's series and not gamma's */
    create_key("scraper", "[\"metrics\"]", "[\"alpha\"]", scraper, NULL);
    ASSERT_EQ_INT(req("GET", "/metrics", scraper, NULL, &r), 200);
    ASSERT_TRUE(r.body && strstr(r.body, "ragcore_collection_documents{collection=\"alpha\"} 2"));
    ASSERT_TRUE(r.body && !strstr(r.body, "gamma"));
    ASSERT_TRUE(r.body && strstr(r.body, "\nragcore_requests_in_flight "));
    resp_free(&r);
    /* ...and nothing else: the metrics scope reads no collection */
    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha", scraper, NULL, &r), 403);
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/gamma", ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);
}

/* ---- connections are dealt out evenly over the event loops ------------------------------ */

/* A TCP connection to 127.0.0.1:port from the loopback address `from` (host order;
 * 0: the kernel's choice), or -1. */
static int raw_connect_from(int port, uint32_t from)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in src = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    src.sin_addr.s_addr = htonl(from);
    struct timeval tv = {5, 0}; /* a missing answer fails the test instead of hanging it */
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
                    (from && bind(fd, (struct sockaddr *)&src, sizeof src) < 0) ||
                    connect(fd, (struct sockaddr *)&a, sizeof a) < 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int raw_connect(int port)
{
    return raw_connect_from(port, 0);
}

/* Sends GET path on a kept-alive connection and reads the whole response into out
 * (NUL-terminated); returns the body (inside out) or NULL. */
static char *raw_get(int fd, const char *path, char *out, size_t cap)
{
    char rq[256];
    int n = snprintf(rq, sizeof rq,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " ADMIN_KEY "\r\n\r\n",
                     path);
    if (write(fd, rq, (size_t)n) != n)
        return NULL;
    size_t got = 0;
    char *body = NULL;
    long want = -1;
    while (got + 1 < cap) {
        ssize_t k = read(fd, out + got, cap - 1 - got);
        if (k <= 0)
            return NULL;
        got += (size_t)k;
        out[got] = 0;
        if (!body && (body = strstr(out, "\r\n\r\n"))) {
            body += 4;
            const char *cl = strcasestr(out, "\r\nContent-Length:");
            want = cl ? atol(cl + 17) : -1;
        }
        if (body && want >= 0 && (long)(out + got - body) >= want)
            return body;
    }
    return NULL;
}

/* Parses the ragcore_http_connections gauges; returns the number of loops (<= max). */
static int loop_counts(const char *metrics, int *counts, int max)
{
    int n = 0;
    for (const char *p = metrics; (p = strstr(p, "\nragcore_http_connections{loop=\"")) && n < max;
         p++) {
        int loop, c;
        if (sscanf(p, "\nragcore_http_connections{loop=\"%d\"} %d", &loop, &c) == 2 &&
            loop == n)
            counts[n++] = c;
    }
    return n;
}

static void test_connection_balance(void)
{
    enum { NCONN = 8 };
    int fds[NCONN], counts[64], nloops = 0, total = -1;
    static char buf[1 << 16];
    for (int i = 0; i < NCONN; i++)
        fds[i] = -1;
    /* wait until the connections of earlier tests are closed and only this one is open */
    fds[0] = raw_connect(S.port);
    ASSERT_TRUE(fds[0] >= 0);
    for (double t0 = now_s(); fds[0] >= 0 && total != 1 && now_s() - t0 < 5; sleep_ms(20)) {
        char *body = raw_get(fds[0], "/metrics", buf, sizeof buf);
        ASSERT_TRUE(body != NULL);
        if (!body)
            break;
        nloops = loop_counts(body, counts, 64);
        total = 0;
        for (int i = 0; i < nloops; i++)
            total += counts[i];
    }
    ASSERT_EQ_INT(nloops, 4); /* start_server passes --threads 4 */
    ASSERT_EQ_INT(total, 1);
    for (int i = 1; i < NCONN; i++) {
        fds[i] = raw_connect(S.port);
        ASSERT_TRUE(fds[i] >= 0 && raw_get(fds[i], "/healthz", buf, sizeof buf) != NULL);
    }
    char *body = fds[0] >= 0 ? raw_get(fds[0], "/metrics", buf, sizeof buf) : NULL;
    ASSERT_TRUE(body != NULL);
    if (body) {
        ASSERT_EQ_INT(loop_counts(body, counts, 64), 4);
        for (int i = 0; i < 4; i++)
            ASSERT_EQ_INT(counts[i], NCONN / 4);
    }
    for (int i = 0; i < NCONN; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* ---- concurrency: searches keep answering during a large ingest ----------------------- */

static atomic_int ingest_running, searches_during, search_failures;

static void *search_loop(void *arg)
{
    (void)arg;
    while (atomic_load(&ingest_running) != 2) {
        resp r;
        int during = atomic_load(&ingest_running) == 1;
        long st = req("POST", "/v1/collections/alpha/search", writer_key,
                      "{\"query\":\"river bank fox\",\"k\":5}", &r);
        if (st != 200)
            atomic_fetch_add(&search_failures, 1);
        else if (during && atomic_load(&ingest_running) == 1)
            atomic_fetch_add(&searches_during, 1);
        resp_free(&r);
    }
    return NULL;
}

/* An ingest request of n documents "bulk-NNNNN" (~1 KB of text each). */
/* Documents of the large ingest. ThreadSanitizer slows ingest ~10x (and its runs keep
 * FAISS single-threaded): a quarter of them still keeps an ingest in flight for
 * seconds, within the client's 120 s timeout. */
#ifdef __SANITIZE_THREAD__
#define BULK_DOCS 1000
#else
#define BULK_DOCS 4000
#endif

static char *bulk_body(size_t ndocs)
{
    json_t *docs = json_array();
    char id[32], text[1200];
    for (size_t i = 0; i < ndocs; i++) {
        snprintf(id, sizeof id, "bulk-%05zu", i);
        int n = 0;
        for (int w = 0; w < 120 && n < (int)sizeof text - 16; w++)
            n += snprintf(text + n, sizeof text - (size_t)n, "word%zu ", (i * 7 + (size_t)w * 13) % 5000);
        json_array_append_new(docs, json_pack("{s:s,s:s}", "id", id, "text", text));
    }
    json_t *body = json_pack("{s:o}", "documents", docs);
    char *text_body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text_body;
}

static void test_concurrent_search_during_ingest(void)
{
    /* ~4 MB of text in one request */
    size_t ndocs = BULK_DOCS;
    char *text_body = bulk_body(ndocs);

    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, search_loop, NULL);
    sleep_ms(100);
    atomic_store(&ingest_running, 1);
    double t0 = now_s();
    resp r;
    long st = req("POST", "/v1/collections/alpha/documents", writer_key, text_body, &r);
    double took = now_s() - t0;
    atomic_store(&ingest_running, 2);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ_INT(st, 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), (long long)ndocs);
    resp_free(&r);
    free(text_body);
    fprintf(stderr, "  ingest of %zu docs took %.2f s; %d searches answered meanwhile\n", ndocs,
            took, atomic_load(&searches_during));
    ASSERT_EQ_INT(atomic_load(&search_failures), 0);
    ASSERT_TRUE(atomic_load(&searches_during) >= 3);

    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha", ADMIN_KEY, NULL, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), (long long)ndocs + 2);
    resp_free(&r);
    /* the earlier documents are still found among the bulk ones (restricted to two ids so
     * the check does not depend on the approximate index's recall) */
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", writer_key,
                      "{\"query\":\"quick brown fox\",\"k\":1,\"doc_ids\":[\"fox\",\"bulk-02413\"]}", &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "results"), 0), "doc_id")),
                  "fox");
    resp_free(&r);
}

/* ---- SIGHUP reload of the config file ------------------------------------------------- */

static void write_config(int max_k, int max_inflight)
{
    FILE *f = fopen(config_file, "w");
    fprintf(f, "# test config\nmax-k = %d\naccess-log = on\nmax-inflight = %d\n", max_k,
            max_inflight);
    fclose(f);
}

static char *overload_body;

static void *overload_ingest(void *arg)
{
    resp r;
    atomic_long *status = arg; /* read by the main thread while this one runs */
    long st = 429;
    /* With max-inflight 1 the ingest itself gets 429 when it arrives while one of the main
     * thread's polls is in flight: try again until it is the request in flight. */
    for (int i = 0; i < 200 && st == 429; i++) {
        if (i > 0)
            sleep_ms(10);
        st = req("POST", "/v1/collections/alpha/documents", writer_key, overload_body, &r);
        resp_free(&r);
    }
    atomic_store(status, st);
    return NULL;
}

static void test_sighup_reload(void)
{
    resp r;
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", ADMIN_KEY, "{\"query\":\"x\",\"k\":50}", &r), 400);
    ASSERT_STR_EQ(err_field(&r), "k");
    resp_free(&r);
    write_config(100, 512);
    kill(S.pid, SIGHUP);
    long st = 0;
    for (int i = 0; i < 100 && st != 200; i++) {
        sleep_ms(20);
        st = req("POST", "/v1/collections/alpha/search", ADMIN_KEY, "{\"query\":\"x\",\"k\":50}", &r);
        resp_free(&r);
    }
    ASSERT_EQ_INT(st, 200);

    /* max-inflight 1: while a large ingest is in flight, another request gets 429 */
    write_config(100, 1);
    kill(S.pid, SIGHUP);
    sleep_ms(300);
    overload_body = bulk_body(BULK_DOCS); /* replaces the same documents */
    atomic_long ingest_status = 0;
    int saw_429 = 0;
    pthread_t th;
    pthread_create(&th, NULL, overload_ingest, (void *)&ingest_status);
    /* poll until a 429 is seen or the ingest has answered (at most ~20 s) */
    for (int i = 0; i < 4000 && !saw_429 && !atomic_load(&ingest_status); i++) {
        st = req("GET", "/v1/collections/alpha", ADMIN_KEY, NULL, &r);
        if (st == 429) {
            saw_429 = 1;
            ASSERT_STR_EQ(err_code(&r), "overloaded");
        }
        resp_free(&r);
        sleep_ms(5);
    }
    pthread_join(th, NULL);
    free(overload_body);
    ASSERT_EQ_INT(atomic_load(&ingest_status), 200);
    ASSERT_TRUE(saw_429);
    write_config(100, 512);
    kill(S.pid, SIGHUP);
    sleep_ms(300);
    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha", ADMIN_KEY, NULL, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), BULK_DOCS + 2);
    resp_free(&r);
}

/* ---- graceful shutdown and persistence ------------------------------------------------- */

static void test_shutdown_and_restart(void)
{
    resp r;
    ASSERT_EQ_INT(stop_server(&S), 0);
    /* the port no longer answers */
    ASSERT_EQ_INT(req("GET", "/healthz", NULL, NULL, &r), 0);
    resp_free(&r);

    const char *extra[] = {"--config", config_file, NULL};
    ASSERT_EQ_INT(start_server(&S, store_dir, "main", 0, extra), 0);
    ASSERT_EQ_INT(req("GET", "/v1/collections/alpha", writer_key, NULL, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), BULK_DOCS + 2);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", writer_key,
                      "{\"query\":\"quick brown fox\",\"k\":1,\"doc_ids\":[\"fox\",\"bulk-02413\"]}", &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "results"), 0), "doc_id")),
                  "fox");
    resp_free(&r);
    /* keys persisted, including the revocation */
    ASSERT_EQ_INT(req("POST", "/v1/collections/alpha/search", reader_key, "{\"query\":\"fox\"}", &r), 401);
    resp_free(&r);
    ASSERT_EQ_INT(stop_server(&S), 0);
}

/* ---- out of descriptors: the accept thread waits instead of spinning, then recovers ---- */

static long proc_cpu_ticks(pid_t pid)
{
    char buf[1024];
    if (proc_read(pid, "stat", buf, sizeof buf) < 0)
        return -1;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    long utime = 0, stime = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime,
                     &stime) != 2)
        return -1;
    return utime + stime;
}

/* Lines of the server log at `path` that contain `needle` (0 when it cannot be read). */
static int log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* RLIMIT_NOFILE 64 and 120 connections at once. The server fits its connection limit
 * into the descriptor limit (and says so), so the flood is met by closing the connections
 * that wait longest for a request head, never by running out of descriptors; it uses
 * under a quarter second of CPU a second meanwhile, and answers /healthz once the clients
 * close. (Before, the accept thread hit EMFILE and the backlog filled.) */
static void test_descriptor_exhaustion(void)
{
    enum { NCONN = 120 };
    char logpath[1100];
    snprintf(logpath, sizeof logpath, "%s/fd.log", tmpdir);
    server t;
    if (start_own_server(&t, "fd", 64, NULL) != 0)
        return;
    int fds[NCONN];
    for (int i = 0; i < NCONN; i++)
        fds[i] = raw_connect(t.port);
    sleep_ms(300);
    long t0 = proc_cpu_ticks(t.pid);
    sleep_ms(1000);
    long t1 = proc_cpu_ticks(t.pid);
    ASSERT_TRUE(t0 >= 0 && t1 >= 0);
    /* a thread retrying accept() without pause would burn the whole second */
    ASSERT_TRUE(t1 - t0 < sysconf(_SC_CLK_TCK) / 4);
    for (int i = 0; i < NCONN; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    resp r;
    long st = 0;
    for (double w0 = now_s(); st != 200 && now_s() - w0 < 10; sleep_ms(50)) {
        st = request(&t, "GET", "/healthz", NULL, NULL, 0, &r);
        resp_free(&r);
    }
    ASSERT_EQ_INT(st, 200);
    ASSERT_EQ_INT(log_count(logpath, "leaves room for"), 1);
    ASSERT_TRUE(log_count(logpath, "to make room") >= 1);
    ASSERT_EQ_INT(log_count(logpath, "Too many open files"), 0);
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* --querylog-max-bytes bounds the query log: the oldest batches go, the newest stay, and
 * the gauge reports the size. Searches carry 2 kB queries, so 12 rounds of 40 (each its
 * own batch) log about 1 MB against a bound of 200 kB. */
static void test_querylog_bound(void)
{
    enum { ROUNDS = 12, PER_ROUND = 40, BOUND = 200000 };
    char db[1100], logpath[1100];
    snprintf(db, sizeof db, "%s/qlbound", tmpdir);
    snprintf(logpath, sizeof logpath, "%s/qlbound.log", tmpdir);
    const char *extra[] = {"--querylog-max-bytes", "200000", NULL};
    server t;
    int started = start_server(&t, db, "qlbound", 0, extra);
    ASSERT_EQ_INT(started, 0);
    if (started != 0)
        return;
    resp r;
    const char *coll = "{\"name\":\"q\"}";
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections", ADMIN_KEY, coll, strlen(coll), &r), 201);
    resp_free(&r);
    const char *docs = "{\"documents\":[{\"id\":\"a\",\"text\":\"alpha beta\"},"
                       "{\"id\":\"b\",\"text\":\"gamma delta\"}]}";
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections/q/documents", ADMIN_KEY, docs,
                          strlen(docs), &r), 200);
    resp_free(&r);
    static char body[2200];
    char pad[2001];
    memset(pad, 'x', 2000);
    pad[2000] = '\0';
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < PER_ROUND; i++) {
            int n = snprintf(body, sizeof body, "{\"query\":\"round%02d alpha %s\",\"k\":2}",
                             round, pad);
            ASSERT_EQ_INT(request(&t, "POST", "/v1/collections/q/search", ADMIN_KEY, body,
                                  (size_t)n, &r), 200);
            resp_free(&r);
        }
        sleep_ms(250); /* the writer flushes every 200 ms: a batch per round */
    }
    /* the log ends with the last round once the writer has flushed it (polled: a slow
     * machine may take longer than the 200 ms period), and starts some rounds in */
    char last[16];
    snprintf(last, sizeof last, "round%02d ", ROUNDS - 1);
    const char *oldest = NULL, *newest = NULL;
    size_t n = 0;
    memset(&r, 0, sizeof r);
    for (int tries = 0; tries < 100; tries++) {
        resp_free(&r);
        ASSERT_EQ_INT(request(&t, "GET", "/v1/querylog?limit=1000", ADMIN_KEY, NULL, 0, &r), 200);
        json_t *entries = json_object_get(r.json, "entries");
        n = json_array_size(entries);
        oldest = n ? json_string_value(json_object_get(json_array_get(entries, 0), "query")) : NULL;
        newest = n ? json_string_value(json_object_get(json_array_get(entries, n - 1), "query")) : NULL;
        if (newest && strncmp(newest, last, 8) == 0)
            break;
        sleep_ms(100);
    }
    ASSERT_TRUE(n > 0 && n < ROUNDS * PER_ROUND / 2);
    ASSERT_TRUE(oldest && strncmp(oldest, "round00 ", 8) != 0);
    ASSERT_TRUE(newest && strncmp(newest, last, 8) == 0);
    resp_free(&r);
    /* the gauge is measured after each flush's shrink: within the bound */
    ASSERT_EQ_INT(request(&t, "GET", "/metrics", ADMIN_KEY, NULL, 0, &r), 200);
    double bytes = r.body ? metric_value(r.body, "ragcore_querylog_bytes") : -1;
    resp_free(&r);
    if (!(bytes > 0 && bytes <= BOUND))
        TEST_FAIL_("ragcore_querylog_bytes %.0f, expected 1..%d", bytes, BOUND);
    ASSERT_TRUE(log_count(logpath, "\"querylog_shrink\"") >= 1);
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* ---- TLS ------------------------------------------------------------------------------- */

static void test_tls(void)
{
    char cmd[4096], db[1100];
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "  openssl CLI not found: TLS test skipped\n");
        return;
    }
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/tls' && openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout '%s/tls/key.pem' -out '%s/tls/cert.pem' >/dev/null 2>&1",
             tmpdir, tmpdir, tmpdir);
    ASSERT_EQ_INT(system(cmd), 0);
    char cert[1100], key[1100];
    snprintf(cert, sizeof cert, "%s/tls/cert.pem", tmpdir);
    snprintf(key, sizeof key, "%s/tls/key.pem", tmpdir);
    snprintf(db, sizeof db, "%s/tlsdb", tmpdir);
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    server t;
    ASSERT_EQ_INT(start_server(&t, db, "tls", 1, extra), 0);
    resp r;
    ASSERT_EQ_INT(request(&t, "GET", "/healthz", NULL, NULL, 0, &r), 200);
    resp_free(&r);
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"t\"}", 12, &r), 201);
    resp_free(&r);
    /* plain HTTP to the TLS port does not get an answer */
    server plain = t;
    plain.tls = 0;
    snprintf(plain.base, sizeof plain.base, "http://127.0.0.1:%d", t.port);
    ASSERT_TRUE(request(&plain, "GET", "/healthz", NULL, NULL, 0, &r) != 200);
    resp_free(&r);
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* ---- hostile clients ------------------------------------------------------------------- */

/* Sends len bytes on a new connection to sv and returns the status code of the answer (0
 * when the connection closed without one). */
static int raw_status(const server *sv, const char *bytes, size_t len)
{
    char buf[512];
    size_t got = 0;
    int fd = raw_connect(sv->port), status = 0;
    if (fd < 0)
        return 0;
    if (send(fd, bytes, len, MSG_NOSIGNAL) == (ssize_t)len) {
        ssize_t k;
        while (got + 1 < sizeof buf && (k = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
            got += (size_t)k;
        buf[got] = '\0';
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
            status = 0;
    }
    close(fd);
    return status;
}

/* Waits up to ms for the server to close fd (a read returning 0 or an error); 1 when it
 * did. Data the server sends meanwhile is read and dropped. */
static int closed_within(int fd, int ms)
{
    char buf[256];
    double t0 = now_s();
    for (;;) {
        int left = ms - (int)((now_s() - t0) * 1000);
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, left > 0 ? left : 0) <= 0)
            return 0;
        ssize_t k = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
    }
}

/* Waits up to 2 s for the server log at `path` to hold `needle`; 1 when it does (the
 * access log line is written once the answer is sent). */
static int log_has(const char *path, const char *needle)
{
    for (int i = 0; i < 100; i++, sleep_ms(20))
        if (log_count(path, needle) > 0)
            return 1;
    return 0;
}

/* Request targets are checked before routing. "%00" decoded to a NUL that cut the path:
 * DELETE /v1/collections/b%00/documents/anything dropped collection b, and
 * .../documents/keep%00x deleted document "keep". A NUL, another control byte, an invalid
 * escape or invalid UTF-8 in the path or the query is now a 400 invalid_target, and the
 * access log shows the request line as sent. */
static void test_request_hygiene(void)
{
    resp r;
    char logpath[1100];
    snprintf(logpath, sizeof logpath, "%s/main.log", tmpdir);
    ASSERT_EQ_INT(req("POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"b\"}", &r), 201);
    resp_free(&r);
    ASSERT_EQ_INT(req("POST", "/v1/collections/b/documents", ADMIN_KEY,
                      "{\"documents\":[{\"id\":\"keep\",\"text\":\"kept\"},"
                      "{\"id\":\"keepx\",\"text\":\"also kept\"}]}", &r), 200);
    resp_free(&r);

    ASSERT_EQ_INT(req("DELETE", "/v1/collections/b%00/documents/anything", ADMIN_KEY, NULL, &r),
                  400);
    ASSERT_STR_EQ(err_code(&r), "invalid_target");
    ASSERT_TRUE(r.body && strstr(r.body, "control byte 0x00 at byte 17"));
    resp_free(&r);
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/b/documents/keep%00x", ADMIN_KEY, NULL, &r), 400);
    ASSERT_STR_EQ(err_code(&r), "invalid_target");
    resp_free(&r);
    static const char *const BAD[] = {
        "/v1/collections/b%", "/v1/collections/b%4", "/v1/collections/b%zz",
        "/v1/collections/b%0a", "/v1/collections/b%1F", "/v1/collections/b%7f",
        "/v1/collections/b%C3%28",    /* a lead byte without its continuation */
        "/v1/collections/b%FF",       /* never UTF-8 */
        "/v1/collections/b%C0%AF",    /* overlong '/' */
        "/v1/collections/b%ED%A0%80", /* a UTF-16 surrogate */
        "/v1/querylog?collection=b%00x", "/v1/querylog?after=%zz", "/v1/querylog?collection=%C3",
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        long st = req("GET", BAD[i], ADMIN_KEY, NULL, &r);
        if (st != 400 || strcmp(err_code(&r), "invalid_target"))
            TEST_FAIL_("GET %s: %ld %s, expected 400 invalid_target", BAD[i], st, err_code(&r));
        resp_free(&r);
    }
    /* bytes curl does not send: a NUL and a control byte in the target, a NUL in the method */
    static const char NUL_TARGET[] = "DELETE /v1/collections/b\0/documents/x HTTP/1.1\r\n"
                                     "Host: x\r\nX-API-Key: " ADMIN_KEY "\r\nConnection: close\r\n\r\n";
    static const char NUL_METHOD[] = "DELETE\0x /v1/collections/b HTTP/1.1\r\n"
                                     "Host: x\r\nX-API-Key: " ADMIN_KEY "\r\nConnection: close\r\n\r\n";
    static const char CTL_TARGET[] = "GET /v1/collections/b\x01 HTTP/1.1\r\n"
                                     "Host: x\r\nX-API-Key: " ADMIN_KEY "\r\nConnection: close\r\n\r\n";
    ASSERT_EQ_INT(raw_status(&S, NUL_TARGET, sizeof NUL_TARGET - 1), 400);
    ASSERT_EQ_INT(raw_status(&S, NUL_METHOD, sizeof NUL_METHOD - 1), 400);
    ASSERT_EQ_INT(raw_status(&S, CTL_TARGET, sizeof CTL_TARGET - 1), 400);

    /* nothing was deleted; valid escapes are decoded as before */
    ASSERT_EQ_INT(req("GET", "/v1/collections/b", ADMIN_KEY, NULL, &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 2);
    resp_free(&r);
    ASSERT_EQ_INT(req("GET", "/v1/collections/b/documents/kee%70", ADMIN_KEY, NULL, &r), 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(r.json, "id")), "keep");
    resp_free(&r);

    /* the access log has each request line as sent, escaped, never cut at the NUL */
    ASSERT_TRUE(log_has(logpath, "\"request_line\":\"DELETE /v1/collections/b%00/documents/"
                                 "anything HTTP/1.1\""));
    ASSERT_TRUE(log_has(logpath, "\"request_line\":\"DELETE /v1/collections/b\\\\x00/documents/x "
                                 "HTTP/1.1\""));
    ASSERT_TRUE(log_has(logpath, "\"request_line\":\"DELETE\\\\x00x /v1/collections/b HTTP/1.1\""));
    ASSERT_EQ_INT(req("DELETE", "/v1/collections/b", ADMIN_KEY, NULL, &r), 200);
    resp_free(&r);
}

/* One read-scoped call may not buy unbounded encoder time (2,000 long inputs took 99 s of
 * a neural encoder's CPU): more inputs than --max-embed-inputs (2048), or more estimated
 * tokens than --max-embed-tokens (100,000), are refused before anything is encoded. */
static void test_embedding_cost(void)
{
    enum { LONG_INPUTS = 2000, WORDS = 300 };
    resp r;
    size_t cap = (size_t)LONG_INPUTS * (WORDS * 8 + 4) + 64, n = 0;
    char *body = malloc(cap);
    ASSERT_TRUE(body != NULL);
    if (!body)
        return;
    n += (size_t)snprintf(body + n, cap - n, "{\"input\":[");
    for (int i = 0; i < LONG_INPUTS; i++) {
        body[n++] = i ? ',' : ' ';
        body[n++] = '"';
        for (int w = 0; w < WORDS; w++)
            n += (size_t)snprintf(body + n, cap - n, "%sword%d", w ? " " : "", w % 10);
        body[n++] = '"';
    }
    n += (size_t)snprintf(body + n, cap - n, "]}");
    ASSERT_EQ_INT(request(&S, "POST", "/v1/embeddings", writer_key, body, n, &r), 400);
    ASSERT_STR_EQ(err_field(&r), "input");
    ASSERT_TRUE(r.body && strstr(r.body, "the limit per call is 100000"));
    resp_free(&r);
    /* 2048 one-word inputs are allowed, 2049 are not */
    for (int count = 2049; count >= 2048; count--) {
        n = (size_t)snprintf(body, cap, "{\"input\":[");
        for (int i = 0; i < count; i++)
            n += (size_t)snprintf(body + n, cap - n, "%s\"w\"", i ? "," : "");
        n += (size_t)snprintf(body + n, cap - n, "]}");
        ASSERT_EQ_INT(request(&S, "POST", "/v1/embeddings", writer_key, body, n, &r),
                      count == 2048 ? 200 : 400);
        resp_free(&r);
    }
    free(body);
}

/* Per-key budgets: --key-request-rate 5 lets a key spend 5 requests at once, then answers
 * 429 rate_limited with Retry-After until the bucket refills, without touching other keys;
 * --key-token-rate 100 does the same for /v1/embeddings tokens. With --metrics-public,
 * /metrics without a key shows the process-level series (the refusals counted) and no
 * collection. */
static void test_rate_limits(void)
{
    char key[128];
    const char *extra[] = {"--key-request-rate", "5", "--key-token-rate", "100",
                           "--metrics-public", "on", NULL};
    server t;
    resp r;
    if (start_own_server(&t, "rl", 0, extra) != 0)
        return;
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections", ADMIN_KEY, "{\"name\":\"secretcoll\"}",
                          21, &r), 201);
    resp_free(&r);
    create_key_on(&t, "limited", "[\"read\"]", "[\"*\"]", key, NULL);
    /* requests as fast as they go until one is refused: the 5 the bucket holds pass, and
     * at most the 5 a second it refills meanwhile (plus one for the rounding) */
    int ok = 0, limited = 0;
    long retry = -1;
    double t0 = now_s();
    for (int i = 0; i < 50 && !limited; i++) {
        long st = request(&t, "GET", "/v1/collections", key, NULL, 0, &r);
        ok += st == 200;
        if (st == 429) {
            limited++;
            ASSERT_STR_EQ(err_code(&r), "rate_limited");
            retry = r.retry_after;
        }
        resp_free(&r);
    }
    double took = now_s() - t0;
    if (!limited || ok < 5 || ok > 6 + (int)(took * 5))
        TEST_FAIL_("%d answered in %.2f s before a refusal (%d) at 5 requests a second", ok,
                   took, limited);
    ASSERT_TRUE(retry >= 1 && retry <= 2);
    ASSERT_EQ_INT(request(&t, "GET", "/v1/collections", ADMIN_KEY, NULL, 0, &r), 200);
    resp_free(&r);
    sleep_ms((int)(retry > 0 ? retry : 1) * 1000 + 100);
    ASSERT_EQ_INT(request(&t, "GET", "/v1/collections", key, NULL, 0, &r), 200);
    resp_free(&r);

    /* about 150 tokens: a full bucket lets it through (50 owed), the next one waits */
    char body[2048];
    int n = snprintf(body, sizeof body, "{\"input\":\"");
    for (int w = 0; w < 150; w++)
        n += snprintf(body + n, sizeof body - (size_t)n, "w%d ", w % 10);
    n += snprintf(body + n, sizeof body - (size_t)n, "\"}");
    ASSERT_EQ_INT(request(&t, "POST", "/v1/embeddings", key, body, (size_t)n, &r), 200);
    resp_free(&r);
    ASSERT_EQ_INT(request(&t, "POST", "/v1/embeddings", key, body, (size_t)n, &r), 429);
    ASSERT_STR_EQ(err_code(&r), "rate_limited");
    ASSERT_TRUE(r.body && strstr(r.body, "embedding tokens a second"));
    ASSERT_TRUE(r.retry_after >= 1 && r.retry_after <= 2);
    resp_free(&r);

    ASSERT_EQ_INT(request(&t, "GET", "/metrics", NULL, NULL, 0, &r), 200);
    ASSERT_TRUE(r.body && strstr(r.body, "\nragcore_requests_in_flight "));
    ASSERT_TRUE(r.body && !strstr(r.body, "ragcore_collection_") && !strstr(r.body, "secretcoll"));
    if (r.body) {
        static const char RQ[] = "ragcore_rate_limited_total{budget=\"requests\"} ",
                          TK[] = "ragcore_rate_limited_total{budget=\"tokens\"} ";
        const char *p = strstr(r.body, RQ), *q = strstr(r.body, TK);
        ASSERT_TRUE(p && atol(p + sizeof RQ - 1) == limited);
        ASSERT_TRUE(q && atol(q + sizeof TK - 1) == 1);
    }
    resp_free(&r);
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* Slow senders ("slow loris"): 300 connections that send a request line, then a header line
 * every 2 s, against a server at RLIMIT_NOFILE 256 with default settings. They took every
 * descriptor and /healthz timed out for as long as they kept sending. Now the connection
 * limit stays below the descriptor limit, and a new connection gets in by closing the one
 * that has waited longest for its request head: /healthz answers within a second
 * throughout. About 3 s. */
static void test_slow_loris(void)
{
    enum { NCONN = 300 };
    static const char LINE[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n", MORE[] = "X-Slow: 1\r\n";
    server t;
    if (start_own_server(&t, "loris", 256, NULL) != 0)
        return;
    int fds[NCONN], opened = 0;
    for (int i = 0; i < NCONN; i++) {
        fds[i] = raw_connect(t.port);
        if (fds[i] >= 0 && send(fds[i], LINE, sizeof LINE - 1, MSG_NOSIGNAL) > 0)
            opened++;
    }
    ASSERT_EQ_INT(opened, NCONN);
    int probes = 0, answered = 0, more = 0;
    double t0 = now_s(), worst = 0;
    request_timeout_ms = 1000;
    while (now_s() - t0 < 3.0) {
        if (!more && now_s() - t0 >= 2.0) {
            for (int i = 0; i < NCONN; i++)
                if (fds[i] >= 0)
                    send(fds[i], MORE, sizeof MORE - 1, MSG_NOSIGNAL);
            more = 1;
        }
        resp r;
        double q0 = now_s();
        answered += request(&t, "GET", "/healthz", NULL, NULL, 0, &r) == 200;
        resp_free(&r);
        probes++;
        if (now_s() - q0 > worst)
            worst = now_s() - q0;
        sleep_ms(100);
    }
    request_timeout_ms = 0;
    if (answered != probes || worst >= 1.0)
        TEST_FAIL_("/healthz answered %d of %d probes, slowest %.2f s", answered, probes, worst);
    ASSERT_TRUE(probes >= 10);
    for (int i = 0; i < NCONN; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* --header-timeout 1 and --body-timeout 1: a request head still arriving a line at a time
 * after 1 s, and a body still arriving a byte at a time 1 s after its head, are closed
 * (libmicrohttpd's idle timeout never fires while bytes trickle in); a prompt request
 * is answered meanwhile. */
static void test_connection_deadlines(void)
{
    static const char HEAD[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    static const char BODY[] = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: "
                               "application/json\r\nContent-Length: 100\r\n\r\n{";
    const char *extra[] = {"--header-timeout", "1", "--body-timeout", "1", NULL};
    server t;
    if (start_own_server(&t, "deadline", 0, extra) != 0)
        return;
    int fd[2] = {raw_connect(t.port), raw_connect(t.port)};
    ASSERT_TRUE(fd[0] >= 0 && fd[1] >= 0);
    if (fd[0] < 0 || fd[1] < 0)
        return;
    send(fd[0], HEAD, sizeof HEAD - 1, MSG_NOSIGNAL);
    send(fd[1], BODY, sizeof BODY - 1, MSG_NOSIGNAL);
    double t0 = now_s(), closed_at[2] = {0, 0};
    resp r;
    ASSERT_EQ_INT(request(&t, "GET", "/healthz", NULL, NULL, 0, &r), 200);
    resp_free(&r);
    while ((!closed_at[0] || !closed_at[1]) && now_s() - t0 < 4.0) {
        for (int i = 0; i < 2; i++) {
            if (closed_at[i])
                continue;
            if (closed_within(fd[i], 0))
                closed_at[i] = now_s() - t0;
            else
                send(fd[i], i ? " " : "X-Slow: 1\r\n", i ? 1 : 11, MSG_NOSIGNAL);
        }
        sleep_ms(200);
    }
    for (int i = 0; i < 2; i++) {
        if (closed_at[i] < 0.9 || closed_at[i] > 3.0)
            TEST_FAIL_("the slow %s was closed after %.2f s, expected 1..3 s",
                       i ? "body" : "head", closed_at[i]);
        close(fd[i]);
    }
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* --max-connections-per-client 4: a client address holding 4 connections that wait for a
 * request head gets a 5th by its oldest one being closed; the connections of another
 * address are left alone. */
static void test_per_client_limit(void)
{
    static char buf[4096];
    const char *extra[] = {"--max-connections-per-client", "4", NULL};
    server t;
    if (start_own_server(&t, "perclient", 0, extra) != 0)
        return;
    int fd[4];
    for (int i = 0; i < 4; i++, sleep_ms(20))
        fd[i] = raw_connect(t.port);
    int other = raw_connect_from(t.port, 0x7F000002); /* 127.0.0.2 */
    if (other < 0)
        fprintf(stderr, "  cannot connect from 127.0.0.2: that part is skipped\n");
    sleep_ms(100);
    int fifth = raw_connect(t.port);
    ASSERT_TRUE(fifth >= 0 && raw_get(fifth, "/healthz", buf, sizeof buf) != NULL);
    ASSERT_EQ_INT(closed_within(fd[0], 1000), 1);
    for (int i = 1; i < 4; i++)
        ASSERT_EQ_INT(closed_within(fd[i], 0), 0);
    if (other >= 0) {
        ASSERT_EQ_INT(closed_within(other, 0), 0);
        ASSERT_TRUE(raw_get(other, "/healthz", buf, sizeof buf) != NULL);
        close(other);
    }
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    if (fifth >= 0)
        close(fifth);
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* A RAGCORE_ADMIN_KEY under 16 characters is refused on an address other hosts can reach
 * (the server exits, naming the variable), and only warned about on loopback. */
static void test_weak_admin_key(void)
{
    char db[1100], logpath[1100];
    snprintf(db, sizeof db, "%s/weakdb", tmpdir);
    server t;
    resp r;
    const char *wide[] = {"--listen", "0.0.0.0:0", NULL};
    static const char *const KEYS[] = {"x", "0123456789abcde"}; /* 1 and 15 characters */
    for (size_t i = 0; i < 2; i++) {
        char log[32], want[64];
        snprintf(log, sizeof log, "weak%zu", i);
        snprintf(logpath, sizeof logpath, "%s/%s.log", tmpdir, log);
        snprintf(want, sizeof want, "RAGCORE_ADMIN_KEY is %zu characters long", strlen(KEYS[i]));
        child_admin_key = KEYS[i];
        int started = start_server(&t, db, log, 0, wide);
        child_admin_key = ADMIN_KEY;
        ASSERT_TRUE(started != 0);
        if (started == 0)
            stop_server(&t);
        ASSERT_EQ_INT(log_count(logpath, want), 1);
    }
    /* 16 characters are enough anywhere; a short key on loopback starts with a warning */
    child_admin_key = "0123456789abcdef";
    int started = start_server(&t, db, "weak16", 0, wide);
    child_admin_key = ADMIN_KEY;
    ASSERT_EQ_INT(started, 0);
    if (started == 0)
        ASSERT_EQ_INT(stop_server(&t), 0);
    child_admin_key = "x";
    started = start_server(&t, db, "weaklo", 0, NULL);
    child_admin_key = ADMIN_KEY;
    ASSERT_EQ_INT(started, 0);
    if (started != 0)
        return;
    ASSERT_EQ_INT(request(&t, "GET", "/v1/keys", "x", NULL, 0, &r), 200);
    resp_free(&r);
    snprintf(logpath, sizeof logpath, "%s/weaklo.log", tmpdir);
    ASSERT_EQ_INT(log_count(logpath, "\"weak_admin_key\""), 1);
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* The HTTP leg of the every-path PII check: a document full of personal data upserted into
 * a collection whose policy masks it; the reply says what was masked, and after the server
 * stops no raw value is in any byte of the store directory, while the placeholders are. */
static void test_upsert_pii(void)
{
    char db[1100];
    snprintf(db, sizeof db, "%s/piidb", tmpdir);
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.embedder = "hash";
    rag_db *h = NULL;
    ASSERT_OK(rag_open(db, &oo, &h));
    rag_collection_options co;
    rag_collection_options_init(&co);
    co.pii = RAG_PII_MASK;
    ASSERT_OK(rag_collection_create_with(h, "notes", &co));
    ASSERT_OK(rag_close(h));
    server t;
    ASSERT_EQ_INT(start_server(&t, db, "pii", 0, NULL), 0);
    static const char body[] =
        "{\"documents\":[{\"id\":\"escalations\",\"title\":\"Escalations by "
        "jane.roe@example.org\",\"metadata\":{\"owner\":\"jane.roe@example.org\"},"
        "\"text\":\"Quarterly escalation notes. Contact john.doe@example.com or call +44 20 "
        "7946 0958 about the refund; the card on file is 4111 1111 1111 1111 and the payout "
        "goes to IBAN DE89 3704 0044 0532 0130 00. Employee SSN 078-05-1120 was verified. The "
        "leaked deploy key AKIAIOSFODNN7EXAMPLE has been rotated since.\"}]}";
    resp r;
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections/notes/documents", ADMIN_KEY, body,
                          strlen(body), &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 1);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "pii_documents")), 1);
    json_t *found = json_object_get(r.json, "pii_found");
    ASSERT_EQ_INT(json_integer_value(json_object_get(found, "CARD")), 1);
    ASSERT_EQ_INT(json_integer_value(json_object_get(found, "SECRET")), 1);
    json_t *first = json_array_get(json_object_get(r.json, "hygiene"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(first, "action")), "pii-masked");
    resp_free(&r);
    ASSERT_EQ_INT(stop_server(&t), 0);
    static const char *const raw[] = {"john.doe@example.com", "jane.roe@example.org",
                                      "+44 20 7946 0958", "4111 1111 1111 1111",
                                      "4111111111111111", "DE89 3704 0044 0532 0130 00",
                                      "078-05-1120", "AKIAIOSFODNN7EXAMPLE"};
    static const char *const masked[] = {"[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[SSN]",
                                         "[SECRET]"};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++)
        if (test_count_in_tree(db, raw[i]) != 0)
            TEST_FAIL_("raw '%s' found under %s", raw[i], db);
    for (size_t i = 0; i < sizeof masked / sizeof masked[0]; i++)
        if (test_count_in_tree(db, masked[i]) == 0)
            TEST_FAIL_("placeholder '%s' not found under %s", masked[i], db);
    test_checks_ += 14;
}

/* Collection settings over HTTP (toxicity flag), flagged documents a filter leaves out,
 * and each text query's toxicity score in the query log and /metrics. */
static void test_toxicity_served(void)
{
    ASSERT_OK(rag_model_pull("better-profanity", 0, NULL));
    ASSERT_OK(rag_model_pull("profanity-check", 0, NULL));
    char db[1100];
    snprintf(db, sizeof db, "%s/toxdb", tmpdir);
    server t;
    ASSERT_EQ_INT(start_server(&t, db, "tox", 0, NULL), 0);
    resp r;
    static const char bad[] = "{\"name\":\"x\",\"settings\":{\"toxicity\":\"maybe\"}}";
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections", ADMIN_KEY, bad, strlen(bad), &r), 400);
    ASSERT_STR_EQ(err_field(&r), "settings.toxicity");
    resp_free(&r);
    static const char create[] =
        "{\"name\":\"forum\",\"settings\":{\"toxicity\":\"flag\",\"toxicity_threshold\":0.5,"
        "\"pii\":null}}";
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections", ADMIN_KEY, create, strlen(create), &r),
                  201);
    json_t *set = json_object_get(r.json, "settings");
    ASSERT_STR_EQ(json_string_value(json_object_get(set, "toxicity")), "flag");
    ASSERT_STR_EQ(json_string_value(json_object_get(set, "toxicity_detectors")), "classifier");
    resp_free(&r);
    static const char docs[] =
        "{\"documents\":[{\"id\":\"clean\",\"text\":\"Mitochondria produce the energy of the "
        "cell.\"},{\"id\":\"rude\",\"text\":\"Shut up, the cell produces energy, you pathetic "
        "loser.\"}]}";
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections/forum/documents", ADMIN_KEY, docs,
                          strlen(docs), &r), 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "documents")), 2);
    resp_free(&r);
    static const char search[] = "{\"query\":\"cell energy you pathetic loser\",\"k\":5,"
                                 "\"filter\":\"toxicity < 0.5\"}";
    ASSERT_EQ_INT(request(&t, "POST", "/v1/collections/forum/search", ADMIN_KEY, search,
                          strlen(search), &r), 200);
    json_t *res = json_object_get(r.json, "results");
    ASSERT_EQ_INT(json_array_size(res), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "doc_id")), "clean");
    resp_free(&r);
    double score = -1;
    for (int tries = 0; tries < 100 && score < 0; tries++) {
        ASSERT_EQ_INT(request(&t, "GET", "/v1/querylog?limit=10", ADMIN_KEY, NULL, 0, &r), 200);
        json_t *e = json_array_get(json_object_get(r.json, "entries"), 0);
        if (json_is_number(json_object_get(e, "toxicity")))
            score = json_number_value(json_object_get(e, "toxicity"));
        resp_free(&r);
        if (score < 0)
            sleep_ms(50);
    }
    ASSERT_TRUE(score > 0.5 && score <= 1);
    ASSERT_EQ_INT(request(&t, "GET", "/metrics", ADMIN_KEY, NULL, 0, &r), 200);
    ASSERT_TRUE(r.body && metric_value(r.body, "ragcore_queries_flagged_total") == 1);
    ASSERT_TRUE(r.body && metric_value(r.body, "ragcore_queries_toxicity_scored_total") == 1);
    resp_free(&r);
    ASSERT_EQ_INT(request(&t, "GET", "/v1/collections/forum", ADMIN_KEY, NULL, 0, &r), 200);
    set = json_object_get(r.json, "settings");
    ASSERT_STR_EQ(json_string_value(json_object_get(set, "toxicity")), "flag");
    resp_free(&r);
    ASSERT_EQ_INT(stop_server(&t), 0);
}

/* The config file reader (compiled in from server/): a comment or value longer than any
 * buffer is read whole, a NUL byte in a line is refused with its line named. */
static void test_config_file_lines(void)
{
    char path[1100], err[1024] = "";
    snprintf(path, sizeof path, "%s/lines.conf", tmpdir);
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    if (!f)
        return;
    fputs("# ", f);
    for (int i = 0; i < 6000; i++)
        fputc('x', f); /* read in 4 KiB pieces, the rest of the comment became a setting */
    fputs("\ndb = /srv/", f);
    for (int i = 0; i < 5000; i++)
        fputc('d', f);
    fputs("\nmax-k = 77\n", f);
    fclose(f);
    srv_config cfg;
    config_init(&cfg);
    char *argv[] = {"ragcore-server", "--config", path, NULL};
    ASSERT_EQ_INT(config_load(&cfg, 3, argv, err, sizeof err), 0);
    ASSERT_TRUE(cfg.db && strlen(cfg.db) == 5005); /* the whole value, not 4 KiB of it */
    ASSERT_EQ_INT(atomic_load(&cfg.limits.max_k), 77);
    config_free(&cfg);
    f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    if (!f)
        return;
    fputs("db = /srv/a\nlisten = 127.0.0.1:1", f);
    fputc('\0', f);
    fputs("9999\n", f);
    fclose(f);
    config_init(&cfg);
    ASSERT_EQ_INT(config_load(&cfg, 3, argv, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "line 2: a NUL byte in the line") != NULL);
    config_free(&cfg);
    unlink(path);
}

int main(void)
{
    const char *base = getenv("RAGCORE_TEST_TMP"), *bin = getenv("RAGCORE_BIN");
    if (!base || !bin) {
        fprintf(stderr, "RAGCORE_TEST_TMP and RAGCORE_BIN must be set (run through ctest)\n");
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s/server.%d", base, (int)getpid());
    snprintf(server_bin, sizeof server_bin, "%s/ragcore-server", bin);
    mkdir(tmpdir, 0755);
    snprintf(store_dir, sizeof store_dir, "%s/store", tmpdir);
    snprintf(config_file, sizeof config_file, "%s/server.conf", tmpdir);
    curl_global_init(CURL_GLOBAL_ALL);
    write_config(20, 512);

    const char *extra[] = {"--config", config_file, NULL};
    if (start_server(&S, store_dir, "main", 0, extra) != 0) {
        fprintf(stderr, "cannot start %s\n", server_bin);
        return 1;
    }
    RUN_TEST(test_vector_b64_codec);
    RUN_TEST(test_json_real_writer);
    RUN_TEST(test_json_string_writer);
    RUN_TEST(test_json_number_reader);
    RUN_TEST(test_config_file_lines);
    RUN_TEST(test_operational_endpoints);
    RUN_TEST(test_collections_and_auth);
    RUN_TEST(test_documents_and_search);
    RUN_TEST(test_validation);
    RUN_TEST(test_search_options_served);
    RUN_TEST(test_embeddings);
    RUN_TEST(test_keys_and_querylog);
    RUN_TEST(test_metrics);
    RUN_TEST(test_connection_balance);
    RUN_TEST(test_concurrent_search_during_ingest);
    RUN_TEST(test_sighup_reload);
    RUN_TEST(test_fuzz_findings); /* after the tests that count keys and ingests */
    RUN_TEST(test_http_mirrors_library);
    RUN_TEST(test_request_hygiene);
    RUN_TEST(test_embedding_cost);
    RUN_TEST(test_shutdown_and_restart);
    RUN_TEST(test_tls);
    RUN_TEST(test_upsert_pii);
    RUN_TEST(test_toxicity_served);
    RUN_TEST(test_descriptor_exhaustion);
    RUN_TEST(test_querylog_bound);
    RUN_TEST(test_rate_limits);
    RUN_TEST(test_slow_loris);
    RUN_TEST(test_connection_deadlines);
    RUN_TEST(test_per_client_limit);
    RUN_TEST(test_weak_admin_key);
    if (S.pid > 0)
        stop_server(&S);
    curl_global_cleanup();
    if (test_failures_ == 0 && !getenv("RAGCORE_TEST_KEEP")) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return TEST_REPORT();
}
