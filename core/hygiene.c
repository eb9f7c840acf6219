/* hygiene.c - the per-document hygiene stage: boilerplate lines, quality filters, PII in
 * text, title and metadata. */
#include "hygiene.h"

#include "status.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bp_group {
    char *name;
    rag_boilerplate *b;
} bp_group;

struct rag_hygiene {
    rag_pii_mode pii_mode;
    int quality_on;
    rag_toxicity_mode tox_mode;
    double tox_threshold;
    const rag_toxicity *tox;      /* borrowed */
    int strip_boilerplate;
    unsigned char key[64];
    rag_pii_config pii;
    rag_quality_config quality;
    bp_group *groups;
    size_t ngroups, cap_groups, last_group;
    rag_quality_stats stats;
};

int rag_hygiene_create(const rag_collection_options *policy, const unsigned char *key,
                       size_t klen, const rag_toxicity *tox, int strip_boilerplate,
                       rag_hygiene **out)
{
    *out = NULL;
    if (policy->pii == RAG_PII_HASH &&
        (!key || klen < 16 || klen > sizeof ((rag_hygiene *)0)->key))
        return rag_fail(RAG_EINVAL, "PII hash mode needs a key of 16..64 bytes");
    if (policy->toxicity != RAG_TOXICITY_OFF && !tox)
        return rag_fail(RAG_EINVAL, "the toxicity filter needs its detectors");
    rag_hygiene *h = rag_calloc(1, sizeof *h);
    if (!h)
        return RAG_ENOMEM;
    h->pii_mode = policy->pii;
    h->quality_on = policy->quality;
    h->tox_mode = policy->toxicity;
    h->tox_threshold = policy->toxicity_threshold;
    h->tox = policy->toxicity != RAG_TOXICITY_OFF ? tox : NULL;
    h->strip_boilerplate = strip_boilerplate;
    h->pii.mode = policy->pii;
    h->pii.types = policy->pii_types;
    if (policy->pii == RAG_PII_HASH) {
        memcpy(h->key, key, klen);
        h->pii.key = h->key;
        h->pii.key_len = klen;
    }
    rag_quality_config_init(&h->quality);
    h->quality.min_chars = policy->min_chars;
    h->quality.max_chars = policy->max_chars;
    h->quality.max_symbol_ratio = policy->max_symbol_ratio;
    int rc = rag_quality_config_check(&h->quality);
    if (rc != RAG_OK) {
        rag_hygiene_free(h);
        return rc;
    }
    *out = h;
    return RAG_OK;
}

void rag_hygiene_free(rag_hygiene *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->ngroups; i++) {
        free(h->groups[i].name);
        rag_boilerplate_free(h->groups[i].b);
    }
    free(h->groups);
    memset(h->key, 0, sizeof h->key);
    free(h);
}

int rag_hygiene_active(const rag_hygiene *h)
{
    return h && (h->pii_mode != RAG_PII_OFF || h->quality_on || h->strip_boilerplate ||
                 h->tox_mode != RAG_TOXICITY_OFF);
}

const rag_quality_stats *rag_hygiene_stats(const rag_hygiene *h)
{
    return &h->stats;
}

void rag_hygiene_result_free(rag_hygiene_result *res)
{
    if (!res)
        return;
    if (res->text)
        memset(res->text, 0, res->len);
    free(res->text);
    free(res->title);
    free(res->metadata_json);
    memset(res, 0, sizeof *res);
}

/* The boilerplate counter of a group; documents of one group arrive together, so the last
 * one found is tried first. NULL when absent and !create (or on ENOMEM with create). */
static rag_boilerplate *find_group(rag_hygiene *h, const char *name, int create)
{
    if (!name)
        name = "";
    if (h->last_group < h->ngroups && strcmp(h->groups[h->last_group].name, name) == 0)
        return h->groups[h->last_group].b;
    for (size_t i = 0; i < h->ngroups; i++)
        if (strcmp(h->groups[i].name, name) == 0) {
            h->last_group = i;
            return h->groups[i].b;
        }
    if (!create)
        return NULL;
    if (h->ngroups == h->cap_groups) {
        size_t cap = h->cap_groups ? h->cap_groups * 2 : 16;
        bp_group *g = rag_realloc(h->groups, cap * sizeof *g);
        if (!g)
            return NULL;
        h->groups = g;
        h->cap_groups = cap;
    }
    bp_group *g = &h->groups[h->ngroups];
    g->name = rag_strdup(name);
    g->b = NULL;
    if (!g->name || rag_boilerplate_create(&g->b) != RAG_OK) {
        free(g->name);
        return NULL;
    }
    h->last_group = h->ngroups++;
    return g->b;
}

int rag_hygiene_collect(rag_hygiene *h, const char *group, const char *text, size_t len)
{
    rag_boilerplate *b = find_group(h, group, 1);
    if (!b)
        return rag_fail(RAG_ENOMEM, "out of memory");
    return rag_boilerplate_add(b, text, len);
}

void rag_hygiene_mask_message(const rag_hygiene *h, const char *msg, char *buf, size_t cap)
{
    if (!cap)
        return;
    rag_pii_result r;
    rag_pii_config mask = {RAG_PII_MASK, 0, NULL, 0};
    if (h && h->pii_mode != RAG_PII_OFF && rag_pii_apply(&mask, msg, strlen(msg), &r) == RAG_OK) {
        snprintf(buf, cap, "%s", r.text);
        rag_pii_result_free(&r);
    } else if (h && h->pii_mode != RAG_PII_OFF) {
        snprintf(buf, cap, "(message withheld: it could not be checked for personal data)");
    } else {
        snprintf(buf, cap, "%s", msg);
    }
}

/* ---- per-segment transforms ---------------------------------------------------------------- */

/* One transform of a text segment: fills *out (malloc'd) and *olen; may set *drop. */
typedef int (*seg_fn)(rag_hygiene *h, void *arg, const char *in, size_t len, char **out,
                      size_t *olen, int *drop);

/* Applies fn to each page of *text (the whole text when npages is 0) and joins the results
 * into a new *text and *len, updating pages[] to the new page starts. On error *text is kept. */
static int transform(rag_hygiene *h, seg_fn fn, void *arg, char **text, size_t *len,
                     size_t *pages, size_t npages, int *drop)
{
    size_t nseg = npages ? npages : 1, cap = *len + 64, n = 0;
    char *dst = rag_malloc(cap);
    if (!dst)
        return RAG_ENOMEM;
    int rc = RAG_OK;
    for (size_t s = 0; s < nseg; s++) {
        size_t a = npages ? pages[s] : 0;
        size_t b = npages && s + 1 < nseg ? pages[s + 1] : *len;
        if (a > *len)
            a = *len;
        if (b < a)
            b = a;
        char *piece = NULL;
        size_t plen = 0;
        if ((rc = fn(h, arg, *text + a, b - a, &piece, &plen, drop)) != RAG_OK)
            goto cleanup;
        if (n + plen + 1 > cap) {
            while (n + plen + 1 > cap)
                cap *= 2;
            char *g = rag_realloc(dst, cap);
            if (!g) {
                free(piece);
                rc = RAG_ENOMEM;
                goto cleanup;
            }
            dst = g;
        }
        if (npages)
            pages[s] = n;
        if (plen)
            memcpy(dst + n, piece, plen);
        n += plen;
        free(piece);
    }
    dst[n] = '\0';
    free(*text);
    *text = dst;
    *len = n;
    dst = NULL;
cleanup:
    free(dst);
    return rc;
}

static int seg_strip(rag_hygiene *h, void *arg, const char *in, size_t len, char **out,
                     size_t *olen, int *drop)
{
    (void)drop;
    return rag_boilerplate_strip(arg, &h->quality, in, len, out, olen, &h->stats);
}

/* Accumulates PII findings of one document. */
typedef struct pii_acc {
    size_t counts[RAG_PII_NTYPES];
} pii_acc;

static int apply_pii(rag_hygiene *h, pii_acc *acc, const char *in, size_t len, char **out,
                     size_t *olen, int *drop)
{
    rag_pii_result r;
    int rc = rag_pii_apply(&h->pii, in, len, &r);
    if (rc != RAG_OK)
        return rc;
    for (int t = 0; t < RAG_PII_NTYPES; t++)
        acc->counts[t] += r.counts[t];
    if (r.drop) {
        *drop = 1;
        *out = rag_strdup("");
        *olen = 0;
    } else {
        *out = r.text;
        *olen = r.len;
        r.text = NULL;
    }
    rag_pii_result_free(&r);
    return *out ? RAG_OK : RAG_ENOMEM;
}

static int seg_pii(rag_hygiene *h, void *arg, const char *in, size_t len, char **out,
                   size_t *olen, int *drop)
{
    return apply_pii(h, arg, in, len, out, olen, drop);
}

/* Applies PII handling to every string value of a JSON value, in place. */
static int pii_json(rag_hygiene *h, pii_acc *acc, json_t *v, int *drop)
{
    int rc = RAG_OK;
    if (json_is_string(v)) {
        char *o = NULL;
        size_t ol = 0;
        if ((rc = apply_pii(h, acc, json_string_value(v), json_string_length(v), &o, &ol, drop)) ==
            RAG_OK) {
            if (json_string_setn(v, o, ol) != 0)
                rc = rag_fail(RAG_ENOMEM, "out of memory");
        }
        free(o);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c) {
            if ((rc = pii_json(h, acc, c, drop)) != RAG_OK)
                break;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) {
            if ((rc = pii_json(h, acc, c, drop)) != RAG_OK)
                break;
        }
    }
    return rc;
}

/* ---- toxicity -------------------------------------------------------------------------------- */

/* Scores the title and text[0, len) as one text (the title first, on a line of its own,
 * unless the text already starts with it, as a JSONL title does: a short title alone
 * gives the classifier too little to go on) into res->toxicity and res->toxic_by. */
static int toxicity_of(const rag_hygiene *h, const char *text, size_t len, const char *title,
                       rag_hygiene_result *res)
{
    size_t tl = title ? strlen(title) : 0;
    char *both = NULL;
    if (tl && !(tl <= len && strncmp(text, title, tl) == 0)) {
        if (!(both = rag_malloc(tl + 1 + len + 1)))
            return RAG_ENOMEM;
        memcpy(both, title, tl);
        both[tl] = '\n';
        memcpy(both + tl + 1, text, len);
        both[tl + 1 + len] = '\0';
        text = both;
        len += tl + 1;
    }
    rag_toxicity_result r;
    int rc = rag_toxicity_score(h->tox, text, len, &r);
    if (rc == RAG_OK) {
        res->toxicity = r.score;
        res->toxic_by = rag_toxicity_fired(&r, h->tox_threshold);
    }
    free(both);
    return rc;
}

/* The metadata of a checked document: "toxicity" (its score, 6 decimals) and, when a
 * detector fired, "toxicity_detector". Creates *meta when absent. */
static int toxicity_metadata(const rag_hygiene_result *res, json_t **meta)
{
    if (!*meta && !(*meta = json_object()))
        return rag_fail(RAG_ENOMEM, "out of memory");
    double score = round(res->toxicity * 1e6) / 1e6;
    int bad = json_object_set_new(*meta, "toxicity", json_real(score)) != 0;
    if (res->toxic_by)
        bad |= json_object_set_new(*meta, "toxicity_detector",
                                   json_string(rag_toxicity_detector_name(res->toxic_by))) != 0;
    return bad ? rag_fail(RAG_ENOMEM, "out of memory") : RAG_OK;
}

/* ---- the stage ----------------------------------------------------------------------------- */

int rag_hygiene_apply(rag_hygiene *h, const rag_document *doc, const char *group,
                      const size_t *in_pages, size_t npages, rag_hygiene_result *res)
{
    memset(res, 0, sizeof *res);
    res->toxicity = -1;
    size_t len = doc->text_len == (size_t)-1 ? strlen(doc->text) : doc->text_len;
    rag_boilerplate *b = h->strip_boilerplate ? find_group(h, group, 0) : NULL;
    int transform_text = b || h->pii_mode != RAG_PII_OFF;
    int tox_on = h->tox != NULL;
    if (!transform_text && !h->quality_on && !tox_on)
        return RAG_OK; /* nothing to do: the document is stored as it is */
    size_t *pages = NULL;
    char *text = NULL, *title = NULL;
    const char *cur = doc->text;
    json_t *meta = NULL;
    pii_acc acc;
    memset(&acc, 0, sizeof acc);
    int rc = RAG_OK, drop = 0;
    if (transform_text) {
        if (!(text = rag_strndup(doc->text, len)))
            return RAG_ENOMEM;
        cur = text;
        if (npages) {
            if (!(pages = rag_malloc(npages * sizeof *pages))) {
                rc = RAG_ENOMEM;
                goto cleanup;
            }
            memcpy(pages, in_pages, npages * sizeof *pages);
        }
    }
    if (b && (rc = transform(h, seg_strip, b, &text, &len, pages, npages, &drop)) != RAG_OK)
        goto cleanup;
    cur = text ? text : doc->text;
    if (h->quality_on) {
        res->quality = rag_quality_check(&h->quality, cur, len, &h->stats);
        if (res->quality != RAG_QUALITY_OK) {
            res->verdict = RAG_HYGIENE_FILTERED;
            goto cleanup;
        }
    }
    if (tox_on) {
        if ((rc = toxicity_of(h, cur, len, doc->title, res)) != RAG_OK)
            goto cleanup;
        if (res->toxic_by && h->tox_mode == RAG_TOXICITY_DROP) {
            res->verdict = RAG_HYGIENE_TOXIC;
            goto cleanup;
        }
    }
    if (!transform_text && !tox_on)
        goto cleanup;
    if (doc->metadata_json && *doc->metadata_json) {
        json_error_t jerr;
        meta = json_loads(doc->metadata_json, 0, &jerr);
        if (!meta || !json_is_object(meta)) {
            rc = rag_fail(RAG_EPARSE, "metadata is not a JSON object");
            goto cleanup;
        }
    }
    if (h->pii_mode != RAG_PII_OFF) {
        if ((rc = transform(h, seg_pii, &acc, &text, &len, pages, npages, &drop)) != RAG_OK)
            goto cleanup;
        if (doc->title && *doc->title) {
            pii_acc tacc;
            memset(&tacc, 0, sizeof tacc);
            size_t tl = strlen(doc->title), ol = 0;
            if ((rc = apply_pii(h, &tacc, doc->title, tl, &title, &ol, &drop)) != RAG_OK)
                goto cleanup;
            /* a JSONL title is also the start of the text: count its findings once */
            if (strncmp(doc->text, doc->title, tl) != 0)
                for (int t = 0; t < RAG_PII_NTYPES; t++)
                    acc.counts[t] += tacc.counts[t];
        }
        if (meta && (rc = pii_json(h, &acc, meta, &drop)) != RAG_OK)
            goto cleanup;
        for (int t = 0; t < RAG_PII_NTYPES; t++) {
            res->pii[t] = acc.counts[t];
            res->pii_found += acc.counts[t];
        }
        if (drop) {
            res->verdict = RAG_HYGIENE_PII_DROPPED;
            goto cleanup;
        }
    }
    if (tox_on && (rc = toxicity_metadata(res, &meta)) != RAG_OK)
        goto cleanup;
    if (npages) {
        if (!meta && !(meta = json_object())) {
            rc = rag_fail(RAG_ENOMEM, "out of memory");
            goto cleanup;
        }
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < npages; i++)
            json_array_append_new(arr, json_integer((json_int_t)pages[i]));
        if (!arr || json_object_set_new(meta, "pages", arr) != 0) {
            rc = rag_fail(RAG_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    if (meta && !(res->metadata_json = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        rc = rag_fail(RAG_ENOMEM, "out of memory");
        goto cleanup;
    }
    res->verdict = RAG_HYGIENE_STORE;
    res->text = text;
    res->len = len;
    res->title = title;
    text = title = NULL;
cleanup:
    /* raw or partly cleaned text of a rejected document is wiped before it is freed */
    if (text)
        memset(text, 0, len);
    free(text);
    free(title);
    free(pages);
    json_decref(meta);
    if (rc != RAG_OK)
        rag_hygiene_result_free(res);
    return rc;
}
