/* cluster_ingest.c - `ragcore ingest --cluster URL`: local extraction, batches posted in
 * parallel by worker threads to the cluster's routers, with request ids and retries. */
#include "cluster_ingest.h"

#include "cli.h"
#include "http_client.h"
#include "remote_ingest.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH_DOCS_DEFAULT 64
#define BATCH_BYTES_MAX (4u << 20) /* well under a router's request body limit */
#define ATTEMPTS 8
#define FIRST_WAIT_MS 100

typedef struct batch {
    json_t *docs;
    unsigned long long no;
    struct batch *next;
} batch;

typedef struct run {
    cli_http http;
    char path[1100];             /* "/v1/collections/<escaped>/documents" */
    char run_id[64];             /* request ids are "<run_id>-<batch number>" */
    pthread_mutex_t mu;          /* guards everything below */
    pthread_cond_t cv;           /* the queue changed */
    batch *head, *tail;
    size_t queued, cap;
    int done;                    /* extraction finished: workers stop when the queue is empty */
    int failed;                  /* a batch was refused or never taken (printed) */
    rag_ingest_summary *sum;
    cli_report *rep;
    double t0;
    /* the extraction thread's batch being filled */
    json_t *batch;
    size_t batch_bytes, batch_docs;
    unsigned long long next_no;
} run;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Posts one batch, again with the same request id while the cluster cannot take it. */
static void post(run *r, batch *b)
{
    char err[2048], rid[96];
    snprintf(rid, sizeof rid, "%s-%llu", r->run_id, b->no);
    json_t *body = json_pack("{s:O,s:s}", "documents", b->docs, "request_id", rid);
    json_t *reply = NULL;
    long status = 0;
    int rc = -1;
    for (int attempt = 0; body && attempt < ATTEMPTS; attempt++) {
        rc = cli_http_json(&r->http, "POST", r->path, body, &reply, &status, err, sizeof err);
        if (rc == 0 || (status >= 400 && status < 500))
            break;
        usleep((useconds_t)(FIRST_WAIT_MS << attempt) * 1000u);
    }
    json_decref(body);
    pthread_mutex_lock(&r->mu);
    if (rc == 0) {
        r->sum->documents += (uint64_t)json_integer_value(json_object_get(reply, "documents"));
        r->sum->chunks += (uint64_t)json_integer_value(json_object_get(reply, "chunks"));
        /* what the collection's policy kept out, by reason */
        json_t *hs = json_object_get(reply, "summary");
        r->sum->quality_checked +=
            (uint64_t)json_integer_value(json_object_get(hs, "quality_checked"));
        r->sum->filtered += (uint64_t)json_integer_value(json_object_get(hs, "filtered"));
        r->sum->pii_documents +=
            (uint64_t)json_integer_value(json_object_get(hs, "pii_documents"));
        r->sum->pii_dropped += (uint64_t)json_integer_value(json_object_get(hs, "pii_dropped"));
        r->sum->toxicity_dropped +=
            (uint64_t)json_integer_value(json_object_get(hs, "toxicity_dropped"));
        rag_ingest_progress p = {0, 0, r->sum->documents, r->sum->chunks, now_s() - r->t0};
        cli_report_progress(r->rep, &p);
    } else if (!r->failed) {
        cli_error("ingest", "%s (batch %s; batches acknowledged before are in the logs)",
                  body ? err : "out of memory", rid);
        r->failed = 1;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    json_decref(reply);
}

static void *worker(void *arg)
{
    run *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->head && !r->done && !r->failed)
            pthread_cond_wait(&r->cv, &r->mu);
        batch *b = r->head;
        if (b) {
            r->head = b->next;
            if (!r->head)
                r->tail = NULL;
            r->queued--;
            pthread_cond_broadcast(&r->cv);
        }
        int failed = r->failed;
        pthread_mutex_unlock(&r->mu);
        if (!b)
            return NULL;
        if (!failed)
            post(r, b);
        json_decref(b->docs);
        free(b);
    }
}

/* Hands the batch being filled to the workers, waiting while the queue is full. 0, or -1
 * once the run failed. */
static int enqueue(run *r)
{
    if (json_array_size(r->batch) == 0)
        return 0;
    batch *b = calloc(1, sizeof *b);
    json_t *next = json_array();
    if (!b || !next) {
        free(b);
        json_decref(next);
        cli_error("ingest", "out of memory");
        pthread_mutex_lock(&r->mu);
        r->failed = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    b->docs = r->batch;
    b->no = r->next_no++;
    r->batch = next;
    r->batch_bytes = 0;
    pthread_mutex_lock(&r->mu);
    while (r->queued >= r->cap && !r->failed)
        pthread_cond_wait(&r->cv, &r->mu);
    int failed = r->failed;
    if (!failed) {
        if (r->tail)
            r->tail->next = b;
        else
            r->head = b;
        r->tail = b;
        r->queued++;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (failed) {
        json_decref(b->docs);
        free(b);
        return -1;
    }
    return 0;
}

/* rag_extract_paths's callback: the document joins the batch. */
static int on_document(void *user, const rag_document *d)
{
    run *r = user;
    json_t *o = cli_document_json(d);
    if (!o) {
        cli_error("ingest", "%s: the document's text is not valid UTF-8", d->id);
        pthread_mutex_lock(&r->mu);
        r->sum->failed++;
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    size_t bytes = json_dumpb(o, NULL, 0, JSON_COMPACT) + 1;
    pthread_mutex_lock(&r->mu);
    r->sum->seen++;
    r->sum->bytes += d->text_len == (size_t)-1 ? strlen(d->text) : d->text_len;
    pthread_mutex_unlock(&r->mu);
    if (json_array_size(r->batch) > 0 && r->batch_bytes + bytes > BATCH_BYTES_MAX &&
        enqueue(r) != 0) {
        json_decref(o);
        return 1;
    }
    json_array_append_new(r->batch, o);
    r->batch_bytes += bytes;
    return json_array_size(r->batch) >= r->batch_docs && enqueue(r) != 0;
}

/* Skipped files: reported and counted. */
static int on_event(void *user, const rag_ingest_event *ev)
{
    run *r = user;
    pthread_mutex_lock(&r->mu);
    if (ev->action == RAG_INGEST_SKIPPED) {
        r->sum->skipped++;
        if ((unsigned)ev->skip_kind < RAG_SKIP_KINDS_MAX)
            r->sum->skipped_reasons[ev->skip_kind]++;
    }
    int rc = cli_report_event(r->rep, ev);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int cli_cluster_ingest(const char *url, const char *key, const char *collection, int workers,
                       const char *const *paths, size_t n, const rag_ingest_options *io,
                       cli_report *rep, rag_ingest_summary *sum)
{
    run r;
    memset(&r, 0, sizeof r);
    rag_ingest_summary_init(sum);
    /* routers take no API key yet; a given one is sent along */
    if (cli_http_init_keyless(&r.http, "ingest", url, key) != 0)
        return RAG_EINVAL;
    char *esc = cli_http_escape(collection);
    if (!esc) {
        cli_error("ingest", "out of memory");
        return RAG_ENOMEM;
    }
    snprintf(r.path, sizeof r.path, "/v1/collections/%s", esc);
    free(esc);
    char err[2048];
    long status = 0;
    if (cli_http_json(&r.http, "GET", r.path, NULL, NULL, &status, err, sizeof err) != 0) {
        if (status == 404)
            cli_error("ingest", "the cluster has no collection '%s': create it first (POST "
                      "%s/v1/collections {\"name\":\"%s\",\"shards\":N,\"embedder\":...})",
                      collection, r.http.base, collection);
        else
            cli_error("ingest", "%s", err);
        return status == 404 ? RAG_ENOTFOUND : RAG_EIO;
    }
    strncat(r.path, "/documents", sizeof r.path - strlen(r.path) - 1);
    snprintf(r.run_id, sizeof r.run_id, "ingest-%ld-%ld", (long)getpid(), (long)time(NULL));
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    r.sum = sum;
    r.rep = rep;
    r.t0 = now_s();
    r.cap = (size_t)workers * 2;
    r.batch = json_array();
    r.batch_docs = io->batch_documents ? io->batch_documents : BATCH_DOCS_DEFAULT;
    pthread_t *threads = calloc((size_t)workers, sizeof *threads);
    int started = 0;
    while (threads && r.batch && started < workers &&
           pthread_create(&threads[started], NULL, worker, &r) == 0)
        started++;
    int rc = RAG_OK;
    if (started == 0) {
        cli_error("ingest", "cannot start the workers");
        rc = RAG_ENOMEM;
    } else {
        rag_ingest_options o = *io;
        o.on_event = on_event;
        o.user = &r;
        rc = rag_extract_paths(paths, n, &o, on_document, &r);
        if (rc == RAG_OK || rc == RAG_ECANCELED)
            enqueue(&r);
        if (rc != RAG_OK && rc != RAG_ECANCELED)
            cli_error("ingest", "%s: %s", rag_strerror(rc), rag_errmsg());
    }
    pthread_mutex_lock(&r.mu);
    r.done = 1;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    json_decref(r.batch);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    sum->seconds = now_s() - r.t0;
    if (r.failed && (rc == RAG_OK || rc == RAG_ECANCELED))
        rc = RAG_EIO;
    return rc;
}
