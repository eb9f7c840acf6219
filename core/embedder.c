/* embedder.c - embedder factory, the application-callback adapter and normalisation. */
#include "embedder.h"
#include "chunker.h"
#include "embed_openai.h"
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rag_l2_normalize(float *v, int dim)
{
    double s = 0.0;
    for (int i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    if (s <= 0.0)
        return;
    float inv = (float)(1.0 / sqrt(s));
    for (int i = 0; i < dim; i++)
        v[i] *= inv;
}

/* The precision a neural model's name ends with (":int8" or ":fp32"), as the text after the
 * colon, or NULL; *base_len receives the length of the name before it. */
static const char *precision_suffix(const char *name, size_t *base_len)
{
    const char *colon = strrchr(name, ':');
    *base_len = strlen(name);
    if (!colon || (strcmp(colon + 1, "int8") != 0 && strcmp(colon + 1, "fp32") != 0))
        return NULL;
    *base_len = (size_t)(colon - name);
    return colon + 1;
}

int rag_embedder_name_compare(const char *asked, const char *recorded)
{
    size_t alen, rlen;
    if (strcmp(asked, recorded) == 0)
        return RAG_EMBEDDER_SAME;
    const char *aprec = precision_suffix(asked, &alen), *rprec = precision_suffix(recorded, &rlen);
    if (alen != rlen || strncmp(asked, recorded, alen) != 0 || strncmp(asked, "hash", 4) == 0)
        return RAG_EMBEDDER_OTHER;
    if (!aprec) /* a bare model name: the store's precision */
        return RAG_EMBEDDER_SAME;
    return strcmp(aprec, rprec ? rprec : "fp32") == 0 ? RAG_EMBEDDER_SAME
                                                      : RAG_EMBEDDER_OTHER_PRECISION;
}

/* rag_embedder_create; `bare_precision` is the precision of a neural model named without
 * one (NULL: the default). */
static int create(const char *name, int dim, const char *bare_precision, rag_embedder **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_embedder_create: out is NULL");
    *out = NULL;
    if (!name || !*name)
        return rag_fail(RAG_EINVAL, "embedder name is empty");
    if (strcmp(name, "hash") == 0)
        return rag_embedder_hash_create(dim, out);
    if (strncmp(name, "hash-", 5) == 0) {
        char *end = NULL;
        long d = strtol(name + 5, &end, 10);
        if (!end || *end || d < 8 || d > 65536)
            return rag_fail(RAG_EINVAL, "embedder '%s': dimension must be 8..65536", name);
        if (dim && dim != d)
            return rag_fail(RAG_EINVAL, "embedder '%s' conflicts with dimension %d", name, dim);
        return rag_embedder_hash_create((int)d, out);
    }
    if (strncmp(name, "openai:", 7) == 0)
        return rag_embedder_openai_create(name, out);
    size_t base_len;
    if (precision_suffix(name, &base_len))
        bare_precision = NULL; /* the name says it */
    return rag_embedder_bert_create_precision(name, bare_precision, out);
}

int rag_embedder_create(const char *name, int dim, rag_embedder **out)
{
    return create(name, dim, NULL, out);
}

int rag_embedder_create_recorded(const char *name, int dim, rag_embedder **out)
{
    return create(name, dim, "fp32", out);
}

/* Adapter state for an application-supplied rag_embedder_def. */
typedef struct def_impl {
    rag_embedder_def def;
} def_impl;

static int def_embed(rag_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                     int is_query, float *out)
{
    def_impl *d = e->impl;
    int rc = d->def.embed(d->def.user, texts, lens, n, is_query, out);
    if (rc != 0)
        return rag_fail(RAG_EEMBED, "embedder '%s' callback failed with %d", e->name, rc);
    return RAG_OK;
}

static void def_destroy(rag_embedder *e)
{
    def_impl *d = e->impl;
    if (d && d->def.destroy)
        d->def.destroy(d->def.user);
    free(d);
}

static const rag_embedder_ops def_ops = {def_embed, NULL, def_destroy};

int rag_embedder_from_def(const rag_embedder_def *def, rag_embedder **out)
{
    *out = NULL;
    if (!def || def->version < 1 || !def->embed || !def->name || !*def->name)
        return rag_fail(RAG_EINVAL, "custom embedder needs version, name and embed callback");
    if (def->dim < 1 || def->dim > 65536)
        return rag_fail(RAG_EINVAL, "custom embedder '%s': dimension %d outside 1..65536",
                        def->name, def->dim);
    if (strlen(def->name) >= sizeof((rag_embedder *)0)->name)
        return rag_fail(RAG_EINVAL, "custom embedder name is longer than 127 bytes");
    rag_embedder *e = rag_calloc(1, sizeof *e);
    def_impl *d = rag_calloc(1, sizeof *d);
    if (!e || !d) {
        free(e);
        free(d);
        return RAG_ENOMEM;
    }
    d->def = *def;
    e->ops = &def_ops;
    e->impl = d;
    e->dim = def->dim;
    snprintf(e->name, sizeof e->name, "%s", def->name);
    *out = e;
    return RAG_OK;
}

const char *rag_embedder_name(const rag_embedder *e)
{
    return e ? e->name : "";
}

int rag_embedder_dim(const rag_embedder *e)
{
    return e ? e->dim : 0;
}

int rag_embedder_embed(rag_embedder *e, const char *const *texts, const size_t *lens,
                       size_t n, int is_query, float *out)
{
    if (n == 0)
        return RAG_OK;
    if (!e || !texts || !out)
        return rag_fail(RAG_EINVAL, "rag_embedder_embed: NULL argument");
    size_t *own = NULL;
    if (!lens) { /* NUL-terminated texts */
        if (!(own = rag_malloc(n * sizeof *own)))
            return RAG_ENOMEM;
        for (size_t i = 0; i < n; i++)
            own[i] = texts[i] ? strlen(texts[i]) : 0;
        lens = own;
    }
    int rc = e->ops->embed(e, texts, lens, n, is_query, out);
    free(own);
    if (rc != RAG_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        float *v = out + i * (size_t)e->dim;
        for (int j = 0; j < e->dim; j++)
            if (!isfinite(v[j]))
                return rag_fail(RAG_EEMBED, "embedder '%s' produced a non-finite value", e->name);
        rag_l2_normalize(v, e->dim);
    }
    return RAG_OK;
}

int rag_embedder_count_tokens(rag_embedder *e, const char *text, size_t len)
{
    if (e && e->ops->count_tokens)
        return e->ops->count_tokens(e, text, len);
    return rag_approx_tokens(NULL, text, len);
}

void rag_embedder_free(rag_embedder *e)
{
    if (!e)
        return;
    if (e->ops && e->ops->destroy)
        e->ops->destroy(e);
    free(e);
}
