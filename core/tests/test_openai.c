/* test_openai.c - the openai provider against a real HTTP server on loopback (libmicrohttpd). */
#include "embed_openai.h"
#include "embedder.h"
#include "ragcore.h"
#include "status.h"
#include "test.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* Server behaviour, set by each test. */
static struct {
    pthread_mutex_t lock;
    int fail_next;        /* answer this many requests with fail_status first */
    int fail_status;
    int requests;         /* requests seen */
    int max_batch;        /* largest "input" array seen */
    int bad_reply;        /* 1: reply with a wrong number of embeddings */
    char auth[256];       /* last Authorization header */
    char model[128];      /* last "model" */
} S = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, "", ""};

typedef struct {
    char *buf;
    size_t len;
} upload;

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Embedding of a text: [length, first byte, 1, number of 'a' bytes]. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *data_size, void **ctx)
{
    upload *u = *ctx;
    if (!u) {
        *ctx = calloc(1, sizeof(upload));
        return MHD_YES;
    }
    if (*data_size) {
        u->buf = realloc(u->buf, u->len + *data_size + 1);
        memcpy(u->buf + u->len, data, *data_size);
        u->len += *data_size;
        u->buf[u->len] = '\0';
        *data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") != 0 || strcmp(url, "/v1/embeddings") != 0)
        return reply(c, 404, "{\"error\":{\"message\":\"no such route\"}}");
    pthread_mutex_lock(&S.lock);
    S.requests++;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    snprintf(S.auth, sizeof S.auth, "%s", auth ? auth : "");
    int fail = S.fail_next > 0 ? (S.fail_next--, S.fail_status) : 0;
    int bad = S.bad_reply;
    pthread_mutex_unlock(&S.lock);
    if (fail)
        return reply(c, fail, "{\"error\":{\"message\":\"simulated failure\"}}");
    json_t *req = u->buf ? json_loads(u->buf, 0, NULL) : NULL;
    json_t *input = json_object_get(req, "input");
    if (!json_is_array(input)) {
        json_decref(req);
        return reply(c, 400, "{\"error\":{\"message\":\"input must be an array\"}}");
    }
    pthread_mutex_lock(&S.lock);
    snprintf(S.model, sizeof S.model, "%s", json_string_value(json_object_get(req, "model")));
    if ((int)json_array_size(input) > S.max_batch)
        S.max_batch = (int)json_array_size(input);
    pthread_mutex_unlock(&S.lock);
    json_t *arr = json_array();
    size_t n = json_array_size(input) - (size_t)bad;
    for (size_t i = n; i-- > 0;) { /* reversed order: the client must use "index" */
        const char *t = json_string_value(json_array_get(input, i));
        size_t len = json_string_length(json_array_get(input, i));
        int as = 0;
        for (size_t k = 0; k < len; k++)
            as += t[k] == 'a';
        json_array_append_new(arr, json_pack("{s:s, s:i, s:[f,f,f,f]}", "object", "embedding",
                                             "index", (int)i, "embedding", (double)len,
                                             (double)(len ? (unsigned char)t[0] : 0), 1.0,
                                             (double)as));
    }
    json_t *resp = json_pack("{s:s, s:o, s:s}", "object", "list", "data", arr, "model", "fake");
    char *body = json_dumps(resp, JSON_COMPACT);
    enum MHD_Result ret = reply(c, 200, body);
    free(body);
    json_decref(resp);
    json_decref(req);
    return ret;
}

static void done(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode t)
{
    upload *u = *ctx;
    if (u) {
        free(u->buf);
        free(u);
    }
    *ctx = NULL;
}

static struct MHD_Daemon *daemon_;
static char spec[160];

static int start_server(void)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = 0; /* any free port */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                               NULL, NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!daemon_)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(spec, sizeof spec, "openai:fake-model@http://127.0.0.1:%u/v1", info->port);
    return 0;
}

static void reset(void)
{
    pthread_mutex_lock(&S.lock);
    S.fail_next = S.fail_status = S.requests = S.max_batch = S.bad_reply = 0;
    S.auth[0] = S.model[0] = '\0';
    pthread_mutex_unlock(&S.lock);
}

static void test_embed_and_batching(void)
{
    reset();
    setenv("RAGCORE_OPENAI_API_KEY", "sk-test-123", 1);
    setenv("RAGCORE_OPENAI_BATCH", "3", 1);
    rag_embedder *e = NULL;
    ASSERT_OK(rag_embedder_openai_create(spec, &e));
    if (!e)
        return;
    ASSERT_EQ_INT(e->dim, 4);
    ASSERT_STR_EQ(e->name, spec);
    ASSERT_STR_EQ(S.auth, "Bearer sk-test-123");
    ASSERT_STR_EQ(S.model, "fake-model");
    const char *texts[7] = {"a", "banana", "", "caa", "日本", "aaaa", "z"};
    float out[7 * 4];
    reset();
    ASSERT_OK(rag_embedder_embed(e, texts, NULL, 7, 0, out));
    ASSERT_EQ_INT(S.requests, 3); /* 3 + 3 + 1 */
    ASSERT_EQ_INT(S.max_batch, 3);
    /* raw [len, first, 1, #a] L2-normalised by rag_embedder_embed: check ratios */
    ASSERT_NEAR(out[1 * 4 + 0] / out[1 * 4 + 2], 6.0, 1e-4);   /* banana: 6 bytes */
    ASSERT_NEAR(out[1 * 4 + 3] / out[1 * 4 + 2], 3.0, 1e-4);   /* 3 'a' */
    ASSERT_NEAR(out[4 * 4 + 0] / out[4 * 4 + 2], 6.0, 1e-4);   /* 日本: 6 bytes */
    ASSERT_NEAR(out[4 * 4 + 1] / out[4 * 4 + 2], 0xe6, 1e-3);
    ASSERT_NEAR(out[2 * 4 + 2], 1.0, 1e-6);                    /* "" -> [0,0,1,0] */
    size_t lens[1] = {2};
    ASSERT_OK(rag_embedder_embed(e, texts + 1, lens, 1, 1, out)); /* explicit length "ba" */
    ASSERT_NEAR(out[0] / out[2], 2.0, 1e-5);
    const char *bad = "\xff\xfe";
    ASSERT_EQ_INT(rag_embedder_embed(e, &bad, NULL, 1, 0, out), RAG_EENCODING);
    rag_embedder_free(e);
    unsetenv("RAGCORE_OPENAI_BATCH");
    unsetenv("RAGCORE_OPENAI_API_KEY");
}

static void test_retries(void)
{
    setenv("RAGCORE_OPENAI_RETRY_BASE_MS", "10", 1);
    setenv("RAGCORE_OPENAI_RETRIES", "3", 1);
    reset();
    rag_embedder *e = NULL;
    ASSERT_OK(rag_embedder_openai_create(spec, &e));
    if (!e)
        return;
    const char *t = "hello";
    float out[4];
    reset();
    S.fail_next = 2;
    S.fail_status = 429;
    ASSERT_OK(rag_embedder_embed(e, &t, NULL, 1, 0, out)); /* two 429s, then success */
    ASSERT_EQ_INT(S.requests, 3);
    reset();
    S.fail_next = 100;
    S.fail_status = 503;
    ASSERT_EQ_INT(rag_embedder_embed(e, &t, NULL, 1, 0, out), RAG_EEMBED);
    ASSERT_EQ_INT(S.requests, 4); /* first try + 3 retries */
    ASSERT_TRUE(strstr(rag_errmsg(), "HTTP 503") != NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "simulated failure") != NULL);
    reset();
    S.fail_next = 1;
    S.fail_status = 400; /* client errors are not retried */
    ASSERT_EQ_INT(rag_embedder_embed(e, &t, NULL, 1, 0, out), RAG_EEMBED);
    ASSERT_EQ_INT(S.requests, 1);
    ASSERT_TRUE(strstr(rag_errmsg(), "HTTP 400") != NULL);
    reset();
    S.bad_reply = 1;
    ASSERT_EQ_INT(rag_embedder_embed(e, &t, NULL, 1, 0, out), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "0 embeddings for 1") != NULL);
    rag_embedder_free(e);
    unsetenv("RAGCORE_OPENAI_RETRIES");
    unsetenv("RAGCORE_OPENAI_RETRY_BASE_MS");
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* The retry wait (rag_sleep_ms) sleeps its whole time even when a signal handler runs
 * part-way (no SA_RESTART: nanosleep returns EINTR with the time left). */
static void test_retry_wait_resumes_after_signal(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ_INT(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval it = {{0, 0}, {0, 20000}}; /* one alarm after 20 ms */
    alarms = 0;
    double t0 = rag_monotonic();
    ASSERT_EQ_INT(setitimer(ITIMER_REAL, &it, NULL), 0);
    rag_sleep_ms(150);
    double dt = rag_monotonic() - t0;
    ASSERT_EQ_INT(alarms, 1);
    ASSERT_TRUE(dt >= 0.149);
    sigaction(SIGALRM, &old, NULL);
}

static void test_bad_specs(void)
{
    rag_embedder *e = NULL;
    ASSERT_EQ_INT(rag_embedder_openai_create("openai:", &e), RAG_EINVAL);
    ASSERT_EQ_INT(rag_embedder_openai_create("ollama:x", &e), RAG_EINVAL);
    ASSERT_EQ_INT(rag_embedder_openai_create("openai:@http://x", &e), RAG_EINVAL);
    /* wrong route on the live server: 404 with its message */
    char wrong[200];
    snprintf(wrong, sizeof wrong, "%s", spec);
    char *v1 = strstr(wrong, "/v1");
    if (v1)
        memcpy(v1, "/v2", 3);
    ASSERT_EQ_INT(rag_embedder_openai_create(wrong, &e), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "404") != NULL);
    /* nothing listening: connection error after retries */
    setenv("RAGCORE_OPENAI_RETRIES", "1", 1);
    setenv("RAGCORE_OPENAI_RETRY_BASE_MS", "1", 1);
    ASSERT_EQ_INT(rag_embedder_openai_create("openai:m@http://127.0.0.1:1/v1", &e), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "after 2 attempts") != NULL);
    ASSERT_TRUE(e == NULL);
    unsetenv("RAGCORE_OPENAI_RETRIES");
    unsetenv("RAGCORE_OPENAI_RETRY_BASE_MS");
}

/* The reply parser alone: every malformed reply a server can send is refused with a
 * message naming what was wrong, and no slot of the output is left unwritten. */
static void test_reply_parser(void)
{
    const char *u = "http://e/v1/embeddings";
    float out[4] = {-7, -7, -7, -7};
    int dim = 0;
    const char *ok = "{\"data\":[{\"index\":1,\"embedding\":[3,4]},"
                     "{\"index\":0,\"embedding\":[1,2]}]}";
    ASSERT_OK(rag_openai_parse_reply(u, 200, ok, strlen(ok), 2, &dim, out));
    ASSERT_EQ_INT(dim, 2);
    ASSERT_NEAR(out[0], 1, 0);
    ASSERT_NEAR(out[3], 4, 0);
    /* a repeated index would leave row 1 as it was before the call */
    const char *dup = "{\"data\":[{\"index\":0,\"embedding\":[1,2]},"
                      "{\"index\":0,\"embedding\":[3,4]}]}";
    ASSERT_EQ_INT(rag_openai_parse_reply(u, 200, dup, strlen(dup), 2, &dim, out), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "item 1 repeats index 0") != NULL);
    /* a value beyond the float range would be stored as infinity */
    const char *big = "{\"data\":[{\"embedding\":[1e300,2]}]}";
    ASSERT_EQ_INT(rag_openai_parse_reply(u, 200, big, strlen(big), 1, &dim, out), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "embedding 0 value 0 is not a finite 32-bit float") != NULL);
    const char *str = "{\"data\":[{\"embedding\":[1,\"2\"]}]}";
    ASSERT_EQ_INT(rag_openai_parse_reply(u, 200, str, strlen(str), 1, &dim, out), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "value 1 is not a number") != NULL);
    const char *neg = "{\"data\":[{\"index\":-1,\"embedding\":[1,2]}]}";
    ASSERT_EQ_INT(rag_openai_parse_reply(u, 200, neg, strlen(neg), 1, &dim, out), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "reply item 0 is not an embedding") != NULL);
    const char *wide = "{\"data\":[{\"embedding\":[1,2,3]}]}";
    ASSERT_EQ_INT(rag_openai_parse_reply(u, 200, wide, strlen(wide), 1, &dim, out), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "has 3 dimensions, expected 2") != NULL);
    /* an error body that is not JSON: quoted up to its length, not to a NUL past it */
    const char text[4] = {'o', 'o', 'p', 's'};
    ASSERT_EQ_INT(rag_openai_parse_reply(u, 503, text, 3, 1, &dim, out), RAG_EEMBED);
    ASSERT_TRUE(strstr(rag_errmsg(), "HTTP 503: oop") != NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "oops") == NULL);
    /* Retry-After: seconds only, read within the line's length */
    const char h[] = "Retry-After: 120";
    ASSERT_EQ_INT(rag_openai_retry_after(h, strlen(h)), 120);
    ASSERT_EQ_INT(rag_openai_retry_after(h, strlen(h) - 1), 12);
    const char date[] = "retry-after: Wed, 21 Oct 2026 07:28:00 GMT\r\n";
    ASSERT_EQ_INT(rag_openai_retry_after(date, strlen(date)), -1);
    ASSERT_EQ_INT(rag_openai_retry_after("Retry-After: -5", 15), -1);
    ASSERT_EQ_INT(rag_openai_retry_after("Content-Length: 5", 17), -1);
}

int main(void)
{
    if (start_server() != 0) {
        fprintf(stderr, "cannot start the loopback HTTP server\n");
        return 1;
    }
    RUN_TEST(test_embed_and_batching);
    RUN_TEST(test_retries);
    RUN_TEST(test_retry_wait_resumes_after_signal);
    RUN_TEST(test_bad_specs);
    RUN_TEST(test_reply_parser);
    MHD_stop_daemon(daemon_);
    return TEST_REPORT();
}
