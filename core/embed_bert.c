/* embed_bert.c - neural (BERT-family) embedding provider over bert.c and the model cache. */
#include "bert.h"
#include "embedder.h"
#include "model_registry.h"
#include "status.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SCRATCH_MAX 8
#define BATCH_TEXTS_DEFAULT 32

/* One caller's request, queued on its lane until an encoder pass has served it. */
typedef struct embed_req {
    const char *const *texts;
    const size_t *lens;     /* NULL: NUL-terminated texts */
    size_t n;
    float *out;             /* n * dim */
    int rc, done;
    char err[256];          /* the failing pass's message, for followers */
    struct embed_req *next;
} embed_req;

/* Documents and queries queue separately, each with its own encoders, so a query never
 * waits behind an ingest batch's encode and each pass uses one prompt. */
typedef struct {
    rag_bert_scratch *idle[SCRATCH_MAX];
    int nidle, created;
    embed_req *head, *tail;
} encode_lane;

/* Concurrent callers are coalesced: the caller at the head of a lane, when one of the
 * lane's `max` encoders ($RAGCORE_ENCODERS, 1..SCRATCH_MAX, default 1) is free, becomes
 * the leader, takes every queued request up to `batch_texts` texts ($RAGCORE_EMBED_BATCH,
 * default 32; 1 turns coalescing off) and encodes them in one pass, then wakes the callers
 * it served. Eight concurrent 25-token queries are then one 200-token pass that streams
 * the weights once, instead of eight passes that each stream all of them. Scratch objects
 * are created on first need and kept (each grows to the largest batch it ran: about 44 MB
 * for a 4,096-token ingest batch of a 384-wide model). */
typedef struct {
    rag_bert *model;
    char *query_prefix;     /* NULL: none */
    pthread_mutex_t lock;   /* guards the lanes and counters below */
    pthread_cond_t changed; /* a pass finished or a lane's head changed */
    encode_lane lanes[2];   /* [0] documents, [1] queries */
    int max;
    size_t batch_texts;
    uint64_t calls, passes, texts;
} bert_impl;

/* Takes a free scratch of `l` (creating one if under `max`); NULL when none can be had.
 * Caller holds b->lock. */
static rag_bert_scratch *scratch_take(bert_impl *b, encode_lane *l)
{
    if (l->nidle > 0)
        return l->idle[--l->nidle];
    if (l->created >= b->max)
        return NULL;
    rag_bert_scratch *s = rag_bert_scratch_new();
    if (s)
        l->created++;
    return s;
}

/* Dequeues the requests of one pass: the head, then followers while the total stays
 * within batch_texts. Caller holds b->lock. */
static embed_req *batch_take(bert_impl *b, encode_lane *l, size_t *ntexts)
{
    embed_req *first = l->head, *last = first;
    size_t n = first->n;
    while (last->next && n + last->next->n <= b->batch_texts) {
        last = last->next;
        n += last->n;
    }
    l->head = last->next;
    if (!l->head)
        l->tail = NULL;
    last->next = NULL;
    *ntexts = n;
    return first;
}

/* Encodes the `ntexts` texts of the request list `reqs` in one pass and stores the
 * vectors in each request's `out`. Runs without b->lock. */
static int batch_encode(const bert_impl *b, rag_bert_scratch *s, embed_req *reqs, size_t ntexts,
                        int is_query)
{
    const char *prefix = is_query ? b->query_prefix : NULL;
    if (!reqs->next)
        return rag_bert_embed_with(b->model, s, reqs->texts, reqs->lens, reqs->n, prefix,
                                   reqs->out);
    int rc = RAG_ENOMEM;
    size_t dim = (size_t)rag_bert_dim(b->model), k = 0;
    const char **texts = malloc(ntexts * sizeof *texts);
    size_t *lens = malloc(ntexts * sizeof *lens);
    float *out = malloc(ntexts * dim * sizeof *out);
    if (!texts || !lens || !out)
        goto cleanup;
    for (embed_req *r = reqs; r; r = r->next)
        for (size_t i = 0; i < r->n; i++, k++) {
            texts[k] = r->texts[i];
            lens[k] = r->lens ? r->lens[i] : strlen(r->texts[i]);
        }
    if ((rc = rag_bert_embed_with(b->model, s, texts, lens, ntexts, prefix, out)))
        goto cleanup;
    k = 0;
    for (embed_req *r = reqs; r; k += r->n, r = r->next)
        memcpy(r->out, out + k * dim, r->n * dim * sizeof *out);
cleanup:
    free(texts);
    free(lens);
    free(out);
    return rc;
}

static int bert_embed(rag_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                      int is_query, float *out)
{
    bert_impl *b = e->impl;
    encode_lane *l = &b->lanes[is_query ? 1 : 0];
    embed_req me = {.texts = texts, .lens = lens, .n = n, .out = out, .rc = RAG_OK};
    pthread_mutex_lock(&b->lock);
    b->calls++;
    if (l->tail)
        l->tail->next = &me;
    else
        l->head = &me;
    l->tail = &me;
    while (!me.done) {
        rag_bert_scratch *s = l->head == &me ? scratch_take(b, l) : NULL;
        if (!s) {
            if (l->head == &me && l->created == 0) { /* out of memory for the first scratch */
                l->head = me.next;
                if (!l->head)
                    l->tail = NULL;
                pthread_cond_broadcast(&b->changed);
                pthread_mutex_unlock(&b->lock);
                return RAG_ENOMEM;
            }
            pthread_cond_wait(&b->changed, &b->lock);
            continue;
        }
        size_t ntexts;
        embed_req *reqs = batch_take(b, l, &ntexts);
        b->passes++;
        b->texts += ntexts;
        if (l->head) /* the next head may lead on another free encoder */
            pthread_cond_broadcast(&b->changed);
        pthread_mutex_unlock(&b->lock);
        int rc = batch_encode(b, s, reqs, ntexts, is_query);
        pthread_mutex_lock(&b->lock);
        for (embed_req *r = reqs, *next; r; r = next) {
            next = r->next; /* r may return (and vanish) once done is set and the lock dropped */
            r->rc = rc;
            if (rc)
                snprintf(r->err, sizeof r->err, "%s", rag_errmsg());
            r->done = 1;
        }
        l->idle[l->nidle++] = s;
        pthread_cond_broadcast(&b->changed);
    }
    pthread_mutex_unlock(&b->lock);
    if (me.rc)
        return rag_fail(me.rc, "%s", me.err);
    return RAG_OK;
}

void rag_embedder_bert_counters(const rag_embedder *e, uint64_t *calls, uint64_t *passes,
                                uint64_t *texts)
{
    bert_impl *b = e->impl;
    pthread_mutex_lock(&b->lock);
    *calls = b->calls;
    *passes = b->passes;
    *texts = b->texts;
    pthread_mutex_unlock(&b->lock);
}

static int bert_count(rag_embedder *e, const char *text, size_t len)
{
    bert_impl *b = e->impl;
    return rag_tokenizer_count(rag_bert_tokenizer(b->model), text, len);
}

static void bert_destroy(rag_embedder *e)
{
    bert_impl *b = e->impl;
    if (!b)
        return;
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < b->lanes[l].nidle; i++)
            rag_bert_scratch_free(b->lanes[l].idle[i]);
    rag_bert_free(b->model);
    free(b->query_prefix);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->changed);
    free(b);
    e->impl = NULL;
}

static const rag_embedder_ops bert_ops = {bert_embed, bert_count, bert_destroy};

/* Query prompt of a plain directory: config_sentence_transformers.json "prompts"."query". */
static char *dir_query_prompt(const char *dir)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/config_sentence_transformers.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    const char *q = json_string_value(json_object_get(json_object_get(j, "prompts"), "query"));
    char *r = q && *q ? strdup(q) : NULL;
    json_decref(j);
    return r;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int rag_embedder_bert_create(const char *name, rag_embedder **out)
{
    int rc;
    char *dir = NULL, *prefix = NULL;
    char label[PATH_MAX];
    rag_embedder *e = NULL;
    bert_impl *b = NULL;
    *out = NULL;
    const rag_model_info *info = rag_model_find(name);
    if (info && info->kind != RAG_MODEL_EMBEDDER)
        return rag_fail(RAG_EINVAL, "model '%s' is a toxicity detector, not an embedding "
                        "model", info->name);
    if (info) {
        if ((rc = rag_model_cache_dir(info, &dir)))
            return rc;
        if (!rag_model_is_cached(info)) {
            rc = rag_fail(RAG_ENOTFOUND, "model '%s' is not in the model cache (%s); run "
                          "`ragcore model pull %s`", info->name, dir, info->name);
            goto cleanup;
        }
        snprintf(label, sizeof label, "%s", info->name);
        if (info->query_instruction && *info->query_instruction &&
            !(prefix = rag_strdup(info->query_instruction))) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
    } else if (name && is_dir(name)) {
        char real[PATH_MAX];
        if (!realpath(name, real)) {
            rc = rag_fail(RAG_EIO, "%s: cannot resolve path", name);
            goto cleanup;
        }
        if (!(dir = rag_strdup(real))) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
        snprintf(label, sizeof label, "%s", real);
        prefix = dir_query_prompt(real);
    } else {
        char known[256] = "";
        for (size_t i = 0; i < rag_model_count(); i++)
            if (rag_model_at(i)->kind == RAG_MODEL_EMBEDDER)
                snprintf(known + strlen(known), sizeof known - strlen(known), ", %s",
                         rag_model_at(i)->name);
        return rag_fail(RAG_ENOTFOUND, "unknown embedder '%s' (known: hash, hash-<dim>%s, or a "
                        "model directory)", name ? name : "(null)", known);
    }
    if (strlen(label) >= sizeof e->name) {
        rc = rag_fail(RAG_EINVAL, "model path too long for an embedder name (%zu bytes, max %zu)",
                      strlen(label), sizeof e->name - 1);
        goto cleanup;
    }
    e = rag_calloc(1, sizeof *e);
    b = rag_calloc(1, sizeof *b);
    if (!e || !b) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if ((rc = rag_bert_load(dir, &b->model)))
        goto cleanup;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->changed, NULL);
    /* One encode per lane at a time by default: on the 2-vCPU machine this was measured
     * on, concurrent query encodes (each streaming the whole weight set from memory) raised
     * the server's CPU per text search by half and lowered its throughput; coalescing the
     * waiting calls into one pass instead cut CPU per query by a sixth at one BLAS thread
     * (bench/JOURNAL.md). Machines with more cores and memory bandwidth may set more. */
    const char *env = getenv("RAGCORE_ENCODERS");
    long want = env ? strtol(env, NULL, 10) : 1;
    b->max = want < 1 ? 1 : want > SCRATCH_MAX ? SCRATCH_MAX : (int)want;
    env = getenv("RAGCORE_EMBED_BATCH");
    want = env ? strtol(env, NULL, 10) : BATCH_TEXTS_DEFAULT;
    b->batch_texts = want < 1 ? 1 : (size_t)want;
    b->query_prefix = prefix;
    prefix = NULL;
    e->ops = &bert_ops;
    snprintf(e->name, sizeof e->name, "%.*s", (int)sizeof e->name - 1, label); /* may cut a long path */
    e->dim = rag_bert_dim(b->model);
    e->max_tokens = rag_bert_max_tokens(b->model);
    e->impl = b;
    *out = e;
    e = NULL;
    b = NULL;
cleanup:
    if (b)
        rag_bert_free(b->model);
    free(b);
    free(e);
    free(dir);
    free(prefix);
    return rc;
}

const char *rag_default_model_available(void)
{
    /* bge-small-en-v1.5 is the intended default; all-MiniLM-L6-v2 (the model that can be
     * pulled from PyPI) stands in when only it is cached. */
    static const char *order[] = {"bge-small-en-v1.5", "all-MiniLM-L6-v2"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const rag_model_info *m = rag_model_find(order[i]);
        if (m && rag_model_is_cached(m))
            return m->name;
    }
    return NULL;
}
