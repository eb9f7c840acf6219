/* search_options.c - the one table of search options that front doors set by name (CLI flags,
 * HTTP fields, eval configurations): names, types, ranges, defaults, help, and their checks. */
#include "search_options.h"

#include "status.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How a value is kept in rag_search_options. */
enum field_kind { F_INT, F_INT64, F_FLOAT, F_STRING, F_MODE, F_FUSION, F_TIME_BASIS,
                  F_LEXICAL_UNIT };

typedef struct opt_def {
    rag_option_info info;
    enum field_kind kind;
    size_t offset;           /* of the field in rag_search_options */
    int zero_is_default;     /* the field's 0 means "the default" (not checked against min) */
} opt_def;

#define OFF(field) offsetof(rag_search_options, field)

/* Every option a front door may set by name. The library's own validation of a
 * rag_search_options (rag_search_options_check) reads the same ranges. */
static const opt_def OPTIONS[] = {
    {{"k", NULL, RAG_OPTION_INT, 1, 10000, NULL, "10", "number of hits"}, F_INT, OFF(k), 1},
    {{"mode", NULL, RAG_OPTION_CHOICE, 0, 0, "hybrid|dense|lexical|vector", "hybrid",
      "dense vectors, BM25, or both fused (vector: same as dense)"}, F_MODE, OFF(mode), 0},
    {{"fusion", NULL, RAG_OPTION_CHOICE, 0, 0, "rrf|weighted", "weighted",
      "how hybrid search fuses the two ranked lists"}, F_FUSION, OFF(fusion), 0},
    {{"rrf_k", NULL, RAG_OPTION_INT, 1, 100000, NULL, "60",
      "RRF constant: each list adds 1 / (rrf_k + rank)"}, F_INT, OFF(rrf_k), 1},
    {{"dense_weight", NULL, RAG_OPTION_REAL, 0, 1, NULL, "0.5",
      "weighted fusion: share of the dense side"}, F_FLOAT, OFF(dense_weight), 1},
    {{"candidates", NULL, RAG_OPTION_INT, 1, 10000, NULL, "max(100, 4k)",
      "candidates each side contributes to fusion and shaping"}, F_INT, OFF(candidates), 1},
    {{"filter", NULL, RAG_OPTION_STRING, 0, 0, NULL, "none",
      "metadata filter, e.g. lang = \"en\" AND year >= 2020"}, F_STRING, OFF(filter), 0},
    {{"source_prefix", NULL, RAG_OPTION_STRING, 0, 0, NULL, "none",
      "only documents whose source starts with this"}, F_STRING, OFF(source_prefix), 0},
    {{"mmr_lambda", "mmr", RAG_OPTION_REAL, 0, 1, NULL, "0 (off)",
      "MMR diversification: relevance weight in (0, 1]"}, F_FLOAT, OFF(mmr_lambda), 0},
    {{"per_doc", NULL, RAG_OPTION_INT, 0, 10000, NULL, "0 (no cap)",
      "at most this many hits per document"}, F_INT, OFF(per_doc), 0},
    {{"collapse_threshold", NULL, RAG_OPTION_REAL, 0, 2, NULL, "0.98",
      "cosine at which near-identical chunks collapse into the better one; > 1: off"},
     F_FLOAT, OFF(collapse_threshold), 1},
    {{"dense_threshold", NULL, RAG_OPTION_REAL, -1, 1, NULL, "per embedder",
      "best dense cosine below it flags no_confident_context; < 0: never"},
     F_FLOAT, OFF(dense_threshold), 1},
    {{"lexical_threshold", NULL, RAG_OPTION_REAL, -1, 1e6, NULL, "1.5",
      "best BM25 per query term below it flags no_confident_context; < 0: never"},
     F_FLOAT, OFF(lexical_threshold), 1},
    {{"max_age", NULL, RAG_OPTION_INT, 0, 1e12, NULL, "0 (any age)",
      "only documents at most this many seconds old"}, F_INT64, OFF(max_age), 0},
    {{"half_life", NULL, RAG_OPTION_INT, 0, 1e12, NULL, "0 (off)",
      "recency weighting with this half-life in seconds"}, F_INT64, OFF(half_life), 0},
    {{"recency_weight", NULL, RAG_OPTION_REAL, 0, 1, NULL, "0.3",
      "share of the recency decay in the final score when half_life is set"},
     F_FLOAT, OFF(recency_weight), 1},
    {{"time_basis", NULL, RAG_OPTION_CHOICE, 0, 0, "source|ingested", "source",
      "document time for ages: source modification time, or ingest time"},
     F_TIME_BASIS, OFF(time_basis), 0},
    {{"lexical_unit", NULL, RAG_OPTION_CHOICE, 0, 0, "document|chunk", "document",
      "what BM25 scores: whole documents (each returned as its best chunk) or chunks"},
     F_LEXICAL_UNIT, OFF(lexical_unit), 0},
};

#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

size_t rag_search_option_count(void)
{
    return N_OPTIONS;
}

const rag_option_info *rag_search_option_info(size_t i)
{
    return i < N_OPTIONS ? &OPTIONS[i].info : NULL;
}

static const opt_def *find_def(const char *name)
{
    for (size_t i = 0; name && i < N_OPTIONS; i++)
        if (strcmp(OPTIONS[i].info.name, name) == 0 ||
            (OPTIONS[i].info.alias && strcmp(OPTIONS[i].info.alias, name) == 0))
            return &OPTIONS[i];
    return NULL;
}

const rag_option_info *rag_search_option_find(const char *name)
{
    const opt_def *d = find_def(name);
    return d ? &d->info : NULL;
}

/* The index of `word` in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *word)
{
    size_t wl = strlen(word);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == wl && strncmp(p, word, n) == 0)
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

/* "1..10000" or "[0, 1]" for messages. */
static void range_text(const rag_option_info *in, char *buf, size_t n)
{
    if (in->type == RAG_OPTION_INT)
        snprintf(buf, n, "an integer in %.0f..%.0f", in->min, in->max);
    else
        snprintf(buf, n, "a number in [%g, %g]", in->min, in->max);
}

int rag_search_option_set(rag_search_options *opts, const char *name, const char *value)
{
    rag_clear_error();
    if (!opts || !name || !value)
        return rag_fail(RAG_EINVAL, "rag_search_option_set: NULL argument");
    const opt_def *d = find_def(name);
    if (!d)
        return rag_fail(RAG_EINVAL, "unknown search option '%s'", name);
    const rag_option_info *in = &d->info;
    char *field = (char *)opts + d->offset;
    if (in->type == RAG_OPTION_STRING) {
        *(const char **)field = value; /* borrowed, as every string of rag_search_options */
        return RAG_OK;
    }
    if (in->type == RAG_OPTION_CHOICE) {
        int i = choice_index(in->choices, value);
        if (i < 0) {
            char list[96];
            snprintf(list, sizeof list, "%s", in->choices);
            for (char *p = list; *p; p++)
                if (*p == '|')
                    *p = ',';
            return rag_fail(RAG_EINVAL, "%s must be one of %s, got '%s'", in->name, list, value);
        }
        switch (d->kind) {
        case F_MODE: {
            static const rag_mode modes[] = {RAG_MODE_HYBRID, RAG_MODE_DENSE, RAG_MODE_LEXICAL,
                                             RAG_MODE_DENSE};
            *(rag_mode *)field = modes[i];
            break;
        }
        case F_FUSION: *(rag_fusion *)field = i ? RAG_FUSION_WEIGHTED : RAG_FUSION_RRF; break;
        case F_LEXICAL_UNIT: *(int *)field = i ? RAG_LEXICAL_CHUNK : RAG_LEXICAL_DOCUMENT; break;
        default: *(int *)field = i ? RAG_TIME_INGESTED : RAG_TIME_SOURCE; break;
        }
        return RAG_OK;
    }
    char range[64];
    range_text(in, range, sizeof range);
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    int bad = *value == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v) || v < in->min ||
              v > in->max;
    if (!bad && in->type == RAG_OPTION_INT && v != floor(v))
        bad = 1;
    if (bad)
        return rag_fail(RAG_EINVAL, "%s must be %s, got '%s'", in->name, range, value);
    switch (d->kind) {
    case F_INT: *(int *)field = (int)v; break;
    case F_INT64: *(int64_t *)field = (int64_t)v; break;
    default: *(float *)field = (float)v; break;
    }
    return RAG_OK;
}

int rag_search_options_check(const rag_search_options *o)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt_def *d = &OPTIONS[i];
        const char *field = (const char *)o + d->offset;
        double v;
        switch (d->kind) {
        case F_INT: v = *(const int *)field; break;
        case F_INT64: v = (double)*(const int64_t *)field; break;
        case F_FLOAT: v = *(const float *)field; break;
        case F_MODE: {
            rag_mode m = *(const rag_mode *)field;
            if (m != RAG_MODE_HYBRID && m != RAG_MODE_DENSE && m != RAG_MODE_LEXICAL)
                return rag_fail(RAG_EINVAL, "unknown mode %d", (int)m);
            continue;
        }
        case F_FUSION: {
            rag_fusion f = *(const rag_fusion *)field;
            if (f != RAG_FUSION_RRF && f != RAG_FUSION_WEIGHTED)
                return rag_fail(RAG_EINVAL, "unknown fusion %d", (int)f);
            continue;
        }
        case F_TIME_BASIS: {
            int t = *(const int *)field;
            if (t != RAG_TIME_SOURCE && t != RAG_TIME_INGESTED)
                return rag_fail(RAG_EINVAL, "unknown time_basis %d", t);
            continue;
        }
        case F_LEXICAL_UNIT: {
            int u = *(const int *)field;
            if (u != RAG_LEXICAL_DOCUMENT && u != RAG_LEXICAL_CHUNK)
                return rag_fail(RAG_EINVAL, "unknown lexical_unit %d", u);
            continue;
        }
        default: continue; /* strings: checked where they are parsed */
        }
        if (v == 0 && d->zero_is_default)
            continue;
        if (!(v >= d->info.min && v <= d->info.max)) { /* NaN fails too */
            char range[64];
            range_text(&d->info, range, sizeof range);
            return rag_fail(RAG_EINVAL, "%s must be %s, got %g", d->info.name, range, v);
        }
    }
    return RAG_OK;
}
