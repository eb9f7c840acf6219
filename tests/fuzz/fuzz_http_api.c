/* fuzz_http_api.c - libFuzzer target: structured API requests (route id, auth choice, body)
 * driven through the server's request path without sockets. The libmicrohttpd functions
 * server/http.c calls are replaced here by a stand-in that plays libmicrohttpd's part of
 * the contract (the access handler is called once without data, then with the body, then
 * to finish; a suspended connection is called again after its resume), so http.c,
 * routes.c, reqjson.c, auth.c, the writer thread and the query log run as in the server,
 * on a real store (hash embedder, collection "docs"). Input: byte 0 picks the route, byte
 * 1 the credentials, the rest is the body (for GET /v1/querylog and the document listing
 * the query string, for DELETE /v1/keys/{id} the id). Collection settings changed by a
 * PATCH are reset after it. Every answer must be JSON with an error code when >= 400,
 * never a 5xx other than 503, and carry X-Request-Id. */
#include "http.h"
#include "http_support.h"
#include "routes.h"
#include "server.h"

#include <microhttpd.h>
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ADMIN_KEY "fuzz-admin-key"

/* ---- the libmicrohttpd stand-in ------------------------------------------------------ */

struct MHD_Daemon {
    int unused;
};

struct MHD_Response {
    char *body;
    size_t len;
    int owned;
    int has_request_id;
    char ctype[64];
};

struct MHD_Connection {
    const char *hdr_name[4], *hdr_value[4];
    size_t nhdr;
    char *args;                 /* "k=v&k=v" split in place */
    const char *arg_name[16], *arg_value[16];
    size_t nargs;
    int suspended;
    int resumed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* the queued answer */
    int queued;
    unsigned status;
    char *body;
    size_t len;
    int has_request_id;
    char ctype[64];
};

static MHD_AccessHandlerCallback on_request;
static void *on_request_cls;
static MHD_RequestCompletedCallback on_completed;
static void *on_completed_cls;
static struct MHD_Daemon the_daemon;

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
                                    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    va_list ap;
    (void)flags, (void)port, (void)apc, (void)apc_cls;
    on_request = dh;
    on_request_cls = dh_cls;
    va_start(ap, dh_cls);
    for (;;) {
        int opt = va_arg(ap, int);
        if (opt != MHD_OPTION_ARRAY)
            break; /* http.c passes one option array, then MHD_OPTION_END */
        const struct MHD_OptionItem *it = va_arg(ap, const struct MHD_OptionItem *);
        for (; it->option != MHD_OPTION_END; it++)
            if (it->option == MHD_OPTION_NOTIFY_COMPLETED) {
                on_completed = (MHD_RequestCompletedCallback)it->value;
                on_completed_cls = it->ptr_value;
            }
    }
    va_end(ap);
    return &the_daemon;
}

/* No client connects (http.c's acceptor listens on a free loopback port); a connection
 * handed over anyway is refused and closed, as libmicrohttpd does on failure. */
enum MHD_Result MHD_add_connection(struct MHD_Daemon *d, MHD_socket s,
                                   const struct sockaddr *addr, socklen_t addrlen)
{
    (void)d, (void)addr, (void)addrlen;
    close(s);
    return MHD_NO;
}

void MHD_stop_daemon(struct MHD_Daemon *d)
{
    (void)d;
}

enum MHD_Result MHD_is_feature_supported(enum MHD_FEATURE f)
{
    (void)f;
    return MHD_NO;
}

const char *MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                        const char *key)
{
    if (kind == MHD_HEADER_KIND) {
        for (size_t i = 0; i < c->nhdr; i++)
            if (!strcasecmp(c->hdr_name[i], key))
                return c->hdr_value[i];
    } else if (kind == MHD_GET_ARGUMENT_KIND) {
        for (size_t i = 0; i < c->nargs; i++)
            if (!strcmp(c->arg_name[i], key))
                return c->arg_value[i];
    }
    return NULL;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer,
                                                     enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->body = buffer;
    r->len = size;
    r->owned = mode == MHD_RESPMEM_MUST_FREE;
    return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *r, const char *name,
                                        const char *value)
{
    if (!strcasecmp(name, "X-Request-Id") && *value)
        r->has_request_id = 1;
    if (!strcasecmp(name, "Content-Type"))
        snprintf(r->ctype, sizeof r->ctype, "%s", value);
    return MHD_YES;
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int status,
                                   struct MHD_Response *r)
{
    if (c->queued || !(c->body = malloc(r->len + 1)))
        return MHD_NO;
    memcpy(c->body, r->body, r->len);
    c->body[r->len] = 0;
    c->len = r->len;
    c->status = status;
    c->has_request_id = r->has_request_id;
    memcpy(c->ctype, r->ctype, sizeof c->ctype);
    c->queued = 1;
    return MHD_YES;
}

void MHD_destroy_response(struct MHD_Response *r)
{
    if (r && r->owned)
        free(r->body);
    free(r);
}

/* No connection table entry, client address or socket: http.c then leaves the connection
 * out of its limits. */
const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *c,
                                                        enum MHD_ConnectionInfoType kind, ...)
{
    (void)c, (void)kind;
    return NULL;
}

void MHD_suspend_connection(struct MHD_Connection *c)
{
    c->suspended = 1;
}

void MHD_resume_connection(struct MHD_Connection *c)
{
    pthread_mutex_lock(&c->mu);
    c->resumed = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ---- the server ------------------------------------------------------------------------ */

static srv S;

static void die(const char *what, const char *detail)
{
    char line[256];
    fprintf(stderr, "fuzz_http_api: %s: %s\n", what, detail ? detail : "");
    snprintf(line, sizeof line, "fuzz_http_api: %s: %.200s", what, detail ? detail : "");
    __sanitizer_report_error_summary(line);
    abort();
}

static void bound_state(void)
{
    if (fuzz_bound_state(&S) != RAG_OK)
        die("re-seed documents", rag_errmsg());
}

/* Gives "docs" its initial settings again, so that what one input configured (a PII
 * policy that drops documents, filters) does not decide what the next inputs reach. */
static void reset_settings(void)
{
    rag_collection_options o;
    rag_collection_options_init(&o);
    int rc = rag_collection_configure(S.db, "docs", &o);
    if (rc != RAG_OK && rc != RAG_ENOTFOUND)
        die("reset settings", rag_errmsg());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[1024], dir[256];
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ragfuzz-http-api.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        die("mkdtemp", dir);
    char *args[] = {"fuzz_http_api", "--db", dir, "--listen", "127.0.0.1:0", "--embedder", "hash",
                    "--dim", "32",
                    "--access-log", "off", "--max-body", "65536", NULL};
    config_init(&S.cfg);
    if (config_load(&S.cfg, (int)(sizeof args / sizeof args[0]) - 1, args, err, sizeof err) != 0)
        die("config", err);
    if (!(S.metrics = metrics_create(ROUTE_COUNT, route_names())) ||
        http_start(&S, err, sizeof err) < 0 || !on_request || !on_completed)
        die("http_start", err);
    const char *failed = fuzz_server_open(&S, ADMIN_KEY);
    if (failed)
        die(failed, rag_errmsg());
    atomic_store(&S.ready, 1);
    return 0;
}

/* ---- one request ------------------------------------------------------------------------ */

static const struct {
    const char *method, *path;
} ROUTES[] = {
    {"GET", "/healthz"},
    {"GET", "/readyz"},
    {"GET", "/metrics"},
    {"GET", "/openapi.json"},
    {"GET", "/"},
    {"POST", "/v1/embeddings"},
    {"GET", "/v1/collections"},
    {"POST", "/v1/collections"},
    {"GET", "/v1/collections/docs"},
    {"DELETE", "/v1/collections/scratch"},
    {"POST", "/v1/collections/docs/documents"},
    {"GET", "/v1/collections/docs/documents/d1"},
    {"DELETE", "/v1/collections/docs/documents/d2"},
    {"POST", "/v1/collections/docs/search"},
    {"POST", "/v1/collections/docs/context"},
    {"GET", "/v1/keys"},
    {"POST", "/v1/keys"},
    {"DELETE", "/v1/keys/"},      /* + the body as the id */
    {"GET", "/v1/querylog"},      /* the body is the query string */
    {"POST", "/v1/collections/nope/search"},
    {"PUT", "/v1/collections"},
    {"POST", "/v1/collections/docs/documents/d1"},
    /* appended (a seed's byte 0 keeps naming the same route) */
    {"GET", "/v1/collections/docs/documents"},   /* the body is the query string */
    {"PATCH", "/v1/collections/docs"},           /* settings; reset after each input */
    {"POST", "/v1/collections/docs/erase"},
    {"POST", "/v1/collections/docs/pii/apply"},
};
#define NROUTES (sizeof ROUTES / sizeof ROUTES[0])

/* Splits "a=1&b=2" in place into c's query arguments. */
static void parse_args(struct MHD_Connection *c, char *q)
{
    for (char *tok = strtok(q, "&"); tok && c->nargs < 16; tok = strtok(NULL, "&")) {
        char *eq = strchr(tok, '=');
        if (eq)
            *eq++ = 0;
        c->arg_name[c->nargs] = tok;
        c->arg_value[c->nargs++] = eq ? eq : "";
    }
}

static void check_answer(const struct MHD_Connection *c, const char *route)
{
    char what[160];
    snprintf(what, sizeof what, "%s -> %u", route, c->status);
    if (getenv("FUZZ_HTTP_VERBOSE")) /* shows what the seeds get */
        fprintf(stderr, "fuzz_http_api: %s\n", what);
    if (!c->queued)
        die("no response", route);
    if (c->status < 200 || c->status > 599 || (c->status >= 500 && c->status != 503))
        die("server error", c->body ? c->body : what);
    if (!c->has_request_id)
        die("no X-Request-Id", what);
    if (!strcmp(c->ctype, "application/json")) {
        json_error_t jerr;
        json_t *v = json_loadb(c->body, c->len, 0, &jerr);
        if (!v)
            die("response body is not JSON", what);
        if (c->status >= 400 &&
            !json_is_string(json_object_get(json_object_get(v, "error"), "code")))
            die("error response without error.code", what);
        json_decref(v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const AUTH[][2] = {
        {"Authorization", "Bearer " ADMIN_KEY},
        {"X-API-Key", ADMIN_KEY},
        {"Authorization", "Bearer rck_unknown"},
        {NULL, NULL},
    };
    if (size < 2)
        return 0;
    unsigned route = data[0] % NROUTES, auth = data[1] % 4;
    char *body = malloc(size - 2 + 1), *path = NULL, *query = NULL;
    struct MHD_Connection c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    if (!body)
        return 0;
    memcpy(body, data + 2, size - 2);
    body[size - 2] = 0;
    size_t blen = size - 2;
    if (AUTH[auth][0]) {
        c.hdr_name[c.nhdr] = AUTH[auth][0];
        c.hdr_value[c.nhdr++] = AUTH[auth][1];
    }
    c.hdr_name[c.nhdr] = "Content-Type";
    c.hdr_value[c.nhdr++] = "application/json";
    if (!strcmp(ROUTES[route].path, "/v1/keys/")) {
        /* libmicrohttpd hands over the unescaped path, NUL-terminated */
        path = malloc(strlen(ROUTES[route].path) + strlen(body) + 1);
        if (path)
            sprintf(path, "%s%s", ROUTES[route].path, body);
        blen = 0;
    } else if (!strcmp(ROUTES[route].path, "/v1/querylog") ||
               (!strcmp(ROUTES[route].method, "GET") &&
                !strcmp(ROUTES[route].path, "/v1/collections/docs/documents"))) {
        query = strdup(body);
        if (query)
            parse_args(&c, query);
        blen = 0;
    }
    const char *url = path ? path : ROUTES[route].path, *method = ROUTES[route].method;
    void *con_cls = NULL;
    size_t up = 0;
    /* the access handler as libmicrohttpd calls it: headers, body, end */
    if (on_request(on_request_cls, &c, url, method, "HTTP/1.1", NULL, &up, &con_cls) != MHD_YES)
        die("first call refused", url);
    if (!c.queued && blen) {
        up = blen;
        if (on_request(on_request_cls, &c, url, method, "HTTP/1.1", body, &up, &con_cls) !=
                MHD_YES || up != 0)
            die("body not consumed", url);
    }
    if (!c.queued) {
        up = 0;
        if (on_request(on_request_cls, &c, url, method, "HTTP/1.1", NULL, &up, &con_cls) != MHD_YES)
            die("final call refused", url);
    }
    if (c.suspended && !c.queued) {
        pthread_mutex_lock(&c.mu);
        while (!c.resumed)
            pthread_cond_wait(&c.cv, &c.mu);
        pthread_mutex_unlock(&c.mu);
        up = 0;
        if (on_request(on_request_cls, &c, url, method, "HTTP/1.1", NULL, &up, &con_cls) != MHD_YES)
            die("call after resume refused", url);
    }
    check_answer(&c, ROUTES[route].path);
    on_completed(on_completed_cls, &c, &con_cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    free(c.body);
    free(query);
    free(path);
    free(body);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    if (!strcmp(ROUTES[route].method, "PATCH"))
        reset_settings();
    bound_state();
    return 0;
}
