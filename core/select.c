/* select.c - result selection over ranked candidates (rag_select): ranked order or MMR, the
 * per-document cap and duplicate collapsing (equal text keys, near-identical vectors), for
 * rag_search's own candidates and for callers that merge lists themselves (a cluster's
 * router); and the text key it compares (rag_text_key). */
#include "ragcore.h"
#include "status.h"
#include "text.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t rag_text_key(const char *text, size_t len)
{
    return rag_text_norm_hash(text ? text : "", text ? len : 0);
}

/* OpenBLAS's vectorised dot product: the plain loop (adds kept in order) was 18 % of a
 * hybrid query with k = 100, where each candidate is compared with every chosen hit. */
static float dot(const float *a, const float *b, int dim)
{
    return cblas_sdot(dim, a, 1, b, 1);
}

/* Candidates described so far; a candidate is described on first use. */
typedef struct select_ctx {
    rag_select_load_fn load;
    void *user;
    int dim;
    rag_select_item *items;
    float *vecs;                 /* n x dim, NULL when no vectors are compared */
    unsigned char *loaded;
} select_ctx;

static int select_load(select_ctx *s, size_t i)
{
    if (s->loaded[i])
        return RAG_OK;
    rag_select_item *it = &s->items[i];
    memset(it, 0, sizeof *it);
    int rc = s->load(s->user, i, it, s->vecs ? s->vecs + i * (size_t)s->dim : NULL);
    if (rc != RAG_OK)
        return rc;
    if (!it->doc_id)
        return rag_fail(RAG_EINVAL, "selection: candidate %zu has no document id", i);
    if (!s->vecs)
        it->has_vector = 0;
    s->loaded[i] = 1;
    return RAG_OK;
}

int rag_select(const rag_search_options *opts, const float *scores, size_t n, int dim,
               rag_select_load_fn load, void *user, size_t *order, size_t *count)
{
    rag_search_options defaults;
    if (!opts) {
        rag_search_options_init(&defaults);
        opts = &defaults;
    }
    if (count)
        *count = 0;
    if (!count || (n > 0 && (!scores || !load || !order)))
        return rag_fail(RAG_EINVAL, "selection: scores, load, order and count are required");
    int k = opts->k > 0 ? opts->k : 10;
    float collapse = opts->collapse_threshold > 0 ? opts->collapse_threshold : 0.98f;
    int mmr = opts->mmr_lambda > 0;
    int use_vecs = mmr || collapse <= 1.0f;
    if (use_vecs && n > 0 && dim < 1)
        return rag_fail(RAG_EINVAL, "selection: vector dimension %d (MMR and collapsing "
                        "compare vectors)", dim);
    size_t cap = (size_t)(k * 4 > 50 ? k * 4 : 50);
    if (mmr && n > cap)
        n = cap;
    if (n == 0)
        return RAG_OK;
    int rc = RAG_OK;
    select_ctx s = {load, user, dim, NULL, NULL, NULL};
    unsigned char *picked = rag_calloc(n, 1);
    s.items = rag_malloc(n * sizeof *s.items);
    s.loaded = rag_calloc(n, 1);
    if (use_vecs)
        s.vecs = rag_malloc(n * (size_t)dim * sizeof(float));
    if (!picked || !s.items || !s.loaded || (use_vecs && !s.vecs)) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    float smin = scores[n - 1], smax = scores[0];
    size_t chosen = 0, next = 0; /* next: first unexamined candidate in ranked order */
    while (chosen < (size_t)k) {
        size_t best = n;
        float best_val = -INFINITY;
        for (size_t i = mmr ? 0 : next; i < n; i++) {
            if (picked[i])
                continue;
            if ((rc = select_load(&s, i)) != RAG_OK)
                goto cleanup;
            const rag_select_item *x = &s.items[i];
            int skip = 0, same_doc = 0;
            float maxsim = 0;
            for (size_t j = 0; j < chosen && !skip; j++) {
                const rag_select_item *t = &s.items[order[j]];
                if (t->text_key == x->text_key)
                    skip = 1;
                if (strcmp(t->doc_id, x->doc_id) == 0)
                    same_doc++;
                if (x->has_vector && t->has_vector) {
                    float sim = dot(s.vecs + i * (size_t)dim, s.vecs + order[j] * (size_t)dim, dim);
                    if (sim > maxsim)
                        maxsim = sim;
                    if (collapse <= 1.0f && sim >= collapse)
                        skip = 1;
                }
            }
            if (skip || (opts->per_doc > 0 && same_doc >= opts->per_doc)) {
                picked[i] = 2; /* excluded for good */
                continue;
            }
            if (!mmr) {
                best = i;
                break;
            }
            float rel = smax > smin ? (scores[i] - smin) / (smax - smin) : 1.0f;
            float val = opts->mmr_lambda * rel - (1.0f - opts->mmr_lambda) * maxsim;
            if (val > best_val) {
                best_val = val;
                best = i;
            }
        }
        if (best == n)
            break;
        picked[best] = 1;
        order[chosen++] = best;
        next = best + 1;
    }
    *count = chosen;
cleanup:
    free(s.vecs);
    free(s.loaded);
    free(s.items);
    free(picked);
    return rc;
}
