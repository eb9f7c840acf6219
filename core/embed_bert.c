/* embed_bert.c - neural (BERT-family) embedding provider over bert.c and the model cache. */
#include "bert.h"
#include "embedder.h"
#include "model_registry.h"
#include "status.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SCRATCH_MAX 8

/* Encodes run concurrently, one per scratch object: up to `max` at a time ($RAGCORE_ENCODERS,
 * 1..SCRATCH_MAX; default 1, see below); further callers wait for a scratch to be returned.
 * Scratch objects are created on first need and kept (each grows to the largest batch it
 * ran: about 44 MB for a 4,096-token ingest batch of a 384-wide model). */
typedef struct {
    rag_bert *model;
    char *query_prefix;     /* NULL: none */
    pthread_mutex_t lock;   /* guards the pool below */
    pthread_cond_t returned;
    rag_bert_scratch *idle[SCRATCH_MAX];
    int nidle, created, max;
} bert_impl;

static rag_bert_scratch *scratch_take(bert_impl *b)
{
    rag_bert_scratch *s = NULL;
    pthread_mutex_lock(&b->lock);
    while (b->nidle == 0 && b->created >= b->max)
        pthread_cond_wait(&b->returned, &b->lock);
    if (b->nidle > 0) {
        s = b->idle[--b->nidle];
    } else if ((s = rag_bert_scratch_new()) != NULL) {
        b->created++;
    }
    pthread_mutex_unlock(&b->lock);
    return s;
}

static void scratch_return(bert_impl *b, rag_bert_scratch *s)
{
    pthread_mutex_lock(&b->lock);
    b->idle[b->nidle++] = s;
    pthread_cond_signal(&b->returned);
    pthread_mutex_unlock(&b->lock);
}

static int bert_embed(rag_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                      int is_query, float *out)
{
    bert_impl *b = e->impl;
    rag_bert_scratch *s = scratch_take(b);
    if (!s)
        return RAG_ENOMEM;
    int rc = rag_bert_embed_with(b->model, s, texts, lens, n, is_query ? b->query_prefix : NULL,
                                 out);
    scratch_return(b, s);
    return rc;
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
    for (int i = 0; i < b->nidle; i++)
        rag_bert_scratch_free(b->idle[i]);
    rag_bert_free(b->model);
    free(b->query_prefix);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->returned);
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
    static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
    pthread_once(&threads_once, rag_bert_set_threads_default);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->returned, NULL);
    /* One encode at a time by default: on the 2-vCPU machine this was measured on,
     * concurrent query encodes (each streaming the whole weight set from memory) raised
     * the server's CPU per text search by half and lowered its throughput
     * (docs/benchmarks.md); machines with more cores and memory bandwidth may set more. */
    const char *env = getenv("RAGCORE_ENCODERS");
    long want = env ? strtol(env, NULL, 10) : 1;
    b->max = want < 1 ? 1 : want > SCRATCH_MAX ? SCRATCH_MAX : (int)want;
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
