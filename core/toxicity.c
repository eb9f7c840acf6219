/* toxicity.c - the toxicity detectors behind one handle: the word list and the linear
 * classifier loaded from the model cache, scored together, and shared by a store handle. */
#include "toxicity.h"

#include "db.h"
#include "model_registry.h"
#include "profanity_list.h"
#include "profanity_model.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>

#define WORDLIST_MODEL "better-profanity"
#define CLASSIFIER_MODEL "profanity-check"
#define WORDLIST_FILE "profanity_wordlist.txt"

struct rag_toxicity {
    rag_wordlist *wl;         /* NULL: not run */
    rag_linear_model *lm;     /* NULL: not run */
    int owned;                /* the detectors are the handle's (rag_toxicity_open) */
};

/* The cached file of model `name` (`file`; NULL: its converted file) into *path, or
 * RAG_ENOTFOUND naming the pull command when the model is not in the cache. */
static int cached_file(const char *name, const char *file, char **path)
{
    const rag_model_info *m = rag_model_find(name);
    *path = NULL;
    if (!m)
        return rag_fail(RAG_ENOTFOUND, "no model '%s' in the registry", name);
    if (!rag_model_is_cached(m)) {
        char *dir = NULL;
        int rc = rag_model_cache_dir(m, &dir);
        if (rc == RAG_OK)
            rc = rag_fail(RAG_ENOTFOUND, "the toxicity detector '%s' is not in the model cache "
                          "(%s); run `ragcore model pull %s`", name, dir, name);
        free(dir);
        return rc;
    }
    return rag_model_cache_file(m, file ? file : m->converted, path);
}

/* Loads each detector in `detectors` that is not loaded yet (*wl or *lm NULL): the word list
 * from `wordlist_path` and the classifier from `model_path`, or either from its file in the
 * model cache when its path is NULL. On failure what was loaded stays in *wl / *lm for the
 * caller to free. */
static int load_detectors(unsigned detectors, const char *wordlist_path, const char *model_path,
                          rag_wordlist **wl, rag_linear_model **lm)
{
    char *cached = NULL;
    int rc = RAG_OK;
    if ((detectors & RAG_TOXICITY_WORDLIST) && !*wl) {
        if (!wordlist_path)
            rc = cached_file(WORDLIST_MODEL, WORDLIST_FILE, &cached);
        if (rc == RAG_OK)
            rc = rag_wordlist_load(wordlist_path ? wordlist_path : cached, wl);
        free(cached);
        cached = NULL;
    }
    if (rc == RAG_OK && (detectors & RAG_TOXICITY_CLASSIFIER) && !*lm) {
        if (!model_path)
            rc = cached_file(CLASSIFIER_MODEL, NULL, &cached);
        if (rc == RAG_OK)
            rc = rag_linear_model_load(model_path ? model_path : cached, lm);
        free(cached);
    }
    return rc;
}

int rag_toxicity_open(unsigned detectors, const char *wordlist_path, const char *model_path,
                      rag_toxicity **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_toxicity_open: NULL argument");
    *out = NULL;
    if (!detectors)
        detectors = RAG_TOXICITY_BOTH;
    if (detectors & ~RAG_TOXICITY_BOTH)
        return rag_fail(RAG_EINVAL, "rag_toxicity_open: detectors 0x%x has bits of no detector",
                        detectors);
    rag_toxicity *t = rag_calloc(1, sizeof *t);
    if (!t)
        return RAG_ENOMEM;
    t->owned = 1;
    int rc = load_detectors(detectors, wordlist_path, model_path, &t->wl, &t->lm);
    if (rc != RAG_OK) {
        rag_toxicity_close(t);
        return rc;
    }
    *out = t;
    return RAG_OK;
}

void rag_toxicity_close(rag_toxicity *t)
{
    if (!t)
        return;
    if (t->owned) {
        rag_wordlist_free(t->wl);
        rag_linear_model_free(t->lm);
    }
    free(t);
}

unsigned rag_toxicity_detectors(const rag_toxicity *t)
{
    return (t->wl ? RAG_TOXICITY_WORDLIST : 0) | (t->lm ? RAG_TOXICITY_CLASSIFIER : 0);
}

int rag_toxicity_score(const rag_toxicity *t, const char *text, size_t len,
                       rag_toxicity_result *out)
{
    if (!t || !text || !out)
        return rag_fail(RAG_EINVAL, "rag_toxicity_score: NULL argument");
    memset(out, 0, sizeof *out);
    out->probability = -1;
    out->wordlist_hit = -1;
    if (len == (size_t)-1)
        len = strlen(text);
    int rc = RAG_OK;
    if (t->wl) {
        int hit = rag_wordlist_find(t->wl, text, len, out->match, sizeof out->match);
        if (hit < 0)
            return hit;
        out->wordlist_hit = hit;
        if (hit)
            out->score = 1;
    }
    if (t->lm) {
        if ((rc = rag_linear_model_score(t->lm, text, len, &out->probability)) != RAG_OK)
            return rc;
        if (out->probability > out->score)
            out->score = out->probability;
    }
    return RAG_OK;
}

unsigned rag_toxicity_fired(const rag_toxicity_result *r, double threshold)
{
    if (!r)
        return 0;
    return (r->wordlist_hit > 0 ? RAG_TOXICITY_WORDLIST : 0) |
           (r->probability >= 0 && r->probability >= threshold ? RAG_TOXICITY_CLASSIFIER : 0);
}

const char *rag_toxicity_detector_name(unsigned detectors)
{
    switch (detectors & RAG_TOXICITY_BOTH) {
    case RAG_TOXICITY_WORDLIST: return "wordlist";
    case RAG_TOXICITY_CLASSIFIER: return "classifier";
    case RAG_TOXICITY_BOTH: return "wordlist+classifier";
    default: return "none";
    }
}

/* ---- a store handle's detectors -------------------------------------------------------------- */

int rag_toxicity_for_db(rag_db *db, unsigned detectors, rag_toxicity **out)
{
    *out = NULL;
    if (!detectors)
        detectors = RAG_TOXICITY_BOTH;
    pthread_mutex_lock(&db->tox_lock);
    int rc = load_detectors(detectors, NULL, NULL, &db->tox_wordlist, &db->tox_model);
    rag_toxicity *t = rc == RAG_OK ? rag_calloc(1, sizeof *t) : NULL;
    if (t) {
        t->wl = detectors & RAG_TOXICITY_WORDLIST ? db->tox_wordlist : NULL;
        t->lm = detectors & RAG_TOXICITY_CLASSIFIER ? db->tox_model : NULL;
    } else if (rc == RAG_OK) {
        rc = RAG_ENOMEM;
    }
    pthread_mutex_unlock(&db->tox_lock);
    *out = t;
    return rc;
}

void rag_toxicity_db_free(rag_db *db)
{
    rag_wordlist_free(db->tox_wordlist);
    rag_linear_model_free(db->tox_model);
    db->tox_wordlist = NULL;
    db->tox_model = NULL;
}
