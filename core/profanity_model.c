/* profanity_model.c - the linear toxicity classifier: loads ragcore's linear text format and
 * scores text with scikit-learn's tokenisation, TF-IDF normalisation and sigmoid calibration. */
#include "profanity_model.h"

#include "status.h"
#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

#define FORMAT_NAME "ragcore-tfidf-linear"
#define MAX_CLASSIFIERS 64

struct rag_linear_model {
    size_t nterms, ncls;
    char **terms;            /* UTF-8, lower-cased, as the vectorizer's vocabulary */
    double *idf;             /* [nterms] */
    double *coef;            /* [nterms][ncls] */
    double intercept[MAX_CLASSIFIERS], sig_a[MAX_CLASSIFIERS], sig_b[MAX_CLASSIFIERS];
    uint32_t *slots;         /* term index + 1 by hash; 0: empty */
    size_t cap;
};

size_t rag_linear_model_terms(const rag_linear_model *m)
{
    return m ? m->nterms : 0;
}

size_t rag_linear_model_classifiers(const rag_linear_model *m)
{
    return m ? m->ncls : 0;
}

void rag_linear_model_free(rag_linear_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; m->terms && i < m->nterms; i++)
        free(m->terms[i]);
    free(m->terms);
    free(m->idf);
    free(m->coef);
    free(m->slots);
    free(m);
}

/* The index of term s[0, n), or -1. */
static long lookup(const rag_linear_model *m, const char *s, size_t n)
{
    size_t i = (size_t)XXH3_64bits(s, n) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        uint32_t v = m->slots[i];
        if (!v)
            return -1;
        const char *t = m->terms[v - 1];
        if (strncmp(t, s, n) == 0 && t[n] == '\0')
            return (long)v - 1;
    }
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Splits line (its newline removed) at tabs into f[0..*nf), at most max fields. */
static void split_tabs(char *line, char **f, int max, int *nf)
{
    *nf = 0;
    size_t l = strlen(line);
    while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
        line[--l] = '\0';
    for (char *p = line; *nf < max;) {
        f[(*nf)++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = '\0';
        p = t + 1;
    }
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0 && isfinite(*out);
}

/* Reads the next line into the fields; 0 at end of file. */
static int next_fields(FILE *f, char **line, size_t *cap, size_t *lineno, char **fld, int max,
                       int *nf)
{
    if (getline(line, cap, f) < 0)
        return 0;
    (*lineno)++;
    split_tabs(*line, fld, max, nf);
    return 1;
}

/* One header line "key<TAB>value..." that must read exactly `want`. */
static int expect(FILE *f, char **line, size_t *cap, size_t *lineno, const char *key,
                  const char *want, const char *path)
{
    char *fld[4];
    int nf = 0;
    if (!next_fields(f, line, cap, lineno, fld, 4, &nf) || strcmp(fld[0], key) != 0)
        return rag_fail(RAG_EPARSE, "%s line %zu: expected '%s'", path, *lineno, key);
    char joined[128] = "";
    for (int i = 1; i < nf; i++)
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", i > 1 ? " " : "",
                 fld[i]);
    if (strcmp(joined, want) != 0)
        return rag_fail(RAG_EUNSUPPORTED, "%s line %zu: %s is '%s'; only '%s' is implemented",
                        path, *lineno, key, joined, want);
    return RAG_OK;
}

int rag_linear_model_load(const char *path, rag_linear_model **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return rag_fail(RAG_EIO, "linear model %s: %s", path, strerror(errno));
    int rc = RAG_OK, nf = 0;
    char *line = NULL, *fld[MAX_CLASSIFIERS + 3];
    size_t cap = 0, lineno = 0;
    rag_linear_model *m = rag_calloc(1, sizeof *m);
    if (!m) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if ((rc = expect(f, &line, &cap, &lineno, FORMAT_NAME, "1", path)) ||
        (rc = expect(f, &line, &cap, &lineno, "lowercase", "1", path)) ||
        (rc = expect(f, &line, &cap, &lineno, "token_pattern", "(?u)\\b\\w\\w+\\b", path)) ||
        (rc = expect(f, &line, &cap, &lineno, "ngram", "1 1", path)) ||
        (rc = expect(f, &line, &cap, &lineno, "norm", "l2", path)) ||
        (rc = expect(f, &line, &cap, &lineno, "sublinear_tf", "0", path)))
        goto cleanup;
    long v = 0;
    if (!next_fields(f, &line, &cap, &lineno, fld, 3, &nf) || nf != 2 ||
        strcmp(fld[0], "classifiers") != 0 || (v = strtol(fld[1], NULL, 10)) < 1 ||
        v > MAX_CLASSIFIERS) {
        rc = rag_fail(RAG_EPARSE, "%s line %zu: expected 'classifiers' and 1..%d", path, lineno,
                      MAX_CLASSIFIERS);
        goto cleanup;
    }
    m->ncls = (size_t)v;
    for (size_t k = 0; k < m->ncls; k++) {
        if (!next_fields(f, &line, &cap, &lineno, fld, 5, &nf) || nf != 4 ||
            strcmp(fld[0], "classifier") != 0 || !parse_double(fld[1], &m->intercept[k]) ||
            !parse_double(fld[2], &m->sig_a[k]) || !parse_double(fld[3], &m->sig_b[k])) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: expected 'classifier' and three numbers",
                          path, lineno);
            goto cleanup;
        }
    }
    if (!next_fields(f, &line, &cap, &lineno, fld, 3, &nf) || nf != 2 ||
        strcmp(fld[0], "terms") != 0 || (v = strtol(fld[1], NULL, 10)) < 1 || v > (1L << 26)) {
        rc = rag_fail(RAG_EPARSE, "%s line %zu: expected 'terms' and a count", path, lineno);
        goto cleanup;
    }
    m->nterms = (size_t)v;
    for (m->cap = 16; m->cap < m->nterms * 2; m->cap *= 2)
        ;
    m->terms = rag_calloc(m->nterms, sizeof *m->terms);
    m->idf = rag_malloc(m->nterms * sizeof *m->idf);
    m->coef = rag_malloc(m->nterms * m->ncls * sizeof *m->coef);
    m->slots = rag_calloc(m->cap, sizeof *m->slots);
    if (!m->terms || !m->idf || !m->coef || !m->slots) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t t = 0; t < m->nterms; t++) {
        int ok = next_fields(f, &line, &cap, &lineno, fld, (int)m->ncls + 3, &nf) &&
                 (size_t)nf == m->ncls + 2 && *fld[0] && parse_double(fld[1], &m->idf[t]);
        for (size_t k = 0; ok && k < m->ncls; k++)
            ok = parse_double(fld[2 + k], &m->coef[t * m->ncls + k]);
        if (!ok) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: expected a term, its idf and %zu "
                          "coefficients", path, lineno, m->ncls);
            goto cleanup;
        }
        size_t n = strlen(fld[0]);
        if (lookup(m, fld[0], n) >= 0) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: term '%s' appears twice", path, lineno,
                          fld[0]);
            goto cleanup;
        }
        if (!(m->terms[t] = rag_strdup(fld[0]))) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
        size_t i = (size_t)XXH3_64bits(fld[0], n) & (m->cap - 1);
        while (m->slots[i])
            i = (i + 1) & (m->cap - 1);
        m->slots[i] = (uint32_t)t + 1;
    }
cleanup:
    free(line);
    fclose(f);
    if (rc != RAG_OK)
        rag_linear_model_free(m);
    else
        *out = m;
    return rc;
}

/* ---- Python's str.lower() and \w --------------------------------------------------------- */

static int cased(int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL ||
           c == UTF8PROC_CATEGORY_LT;
}

static int case_ignorable(int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
        return 1;
    default:
        return cp == '\'' || cp == '.' || cp == ':' || cp == 0xB7 || cp == 0x387 ||
               cp == 0x5F4 || cp == 0x2018 || cp == 0x2019 || cp == 0x2024 || cp == 0x2027 ||
               cp == 0xFE13 || cp == 0xFE52 || cp == 0xFE55 || cp == 0xFF07 || cp == 0xFF0E ||
               cp == 0xFF1A;
    }
}

/* Python's \w in a str pattern: letters, numbers (any category N) and '_'. */
static int py_word(int32_t cp)
{
    return cp == '_' || rag_cp_is_alnum(cp);
}

/* Python's lower() of c[i] (whole-string context for the final sigma) into out; returns the
 * number of code points (1 or 2). */
static int py_lower(const int32_t *c, size_t n, size_t i, int32_t out[2])
{
    int32_t cp = c[i];
    if (cp == 0x130) { /* LATIN CAPITAL LETTER I WITH DOT ABOVE: i + COMBINING DOT ABOVE */
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    if (cp == 0x3A3) { /* final sigma: a cased letter before, none after */
        size_t j = i;
        while (j > 0 && case_ignorable(c[j - 1]))
            j--;
        int before = j > 0 && cased(c[j - 1]);
        size_t k = i + 1;
        while (k < n && case_ignorable(c[k]))
            k++;
        int after = k < n && cased(c[k]);
        out[0] = before && !after ? 0x3C2 : 0x3C3;
        return 1;
    }
    out[0] = utf8proc_tolower(cp);
    return 1;
}

/* ---- scoring ------------------------------------------------------------------------------ */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int rag_linear_model_score(const rag_linear_model *m, const char *text, size_t len, double *p)
{
    int rc = RAG_OK;
    int32_t *c = rag_malloc((len + 1) * sizeof *c), *low = rag_malloc((2 * len + 1) * sizeof *low);
    char *tok = rag_malloc(len * 8 + 8);
    long *hits = rag_malloc((len + 1) * sizeof *hits);
    size_t n = 0, nhits = 0;
    if (!c || !low || !tok || !hits) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t step = utf8proc_iterate((const utf8proc_uint8_t *)text + i,
                                                 (utf8proc_ssize_t)(len - i), &cp);
        if (step <= 0) {
            cp = -1; /* an invalid byte: no word character */
            step = 1;
        }
        c[n++] = cp;
        i += (size_t)step;
    }
    /* the lower-cased text (one character may become two), then its words of >= 2 \w
     * characters looked up in the vocabulary */
    size_t nl = 0, tl = 0, tcp = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i] < 0)
            low[nl++] = -1;
        else
            nl += (size_t)py_lower(c, n, i, low + nl);
    }
    for (size_t i = 0; i <= nl; i++) {
        if (i < nl && low[i] >= 0 && py_word(low[i])) {
            tl += (size_t)utf8proc_encode_char(low[i], (utf8proc_uint8_t *)tok + tl);
            tcp++;
            continue;
        }
        if (tcp >= 2) {
            long t = lookup(m, tok, tl);
            if (t >= 0)
                hits[nhits++] = t;
        }
        tl = tcp = 0;
    }
    qsort(hits, nhits, sizeof *hits, cmp_long);
    /* x_t = count_t * idf_t, l2-normalised; f_k = x . coef_k + intercept_k */
    double sq = 0, dot[MAX_CLASSIFIERS] = {0};
    for (size_t a = 0; a < nhits;) {
        size_t b = a;
        while (b < nhits && hits[b] == hits[a])
            b++;
        double x = (double)(b - a) * m->idf[hits[a]];
        sq += x * x;
        const double *w = m->coef + (size_t)hits[a] * m->ncls;
        for (size_t k = 0; k < m->ncls; k++)
            dot[k] += x * w[k];
        a = b;
    }
    double norm = sqrt(sq), sum = 0;
    for (size_t k = 0; k < m->ncls; k++) {
        double fk = (norm > 0 ? dot[k] / norm : 0) + m->intercept[k];
        sum += 1.0 / (1.0 + exp(m->sig_a[k] * fk + m->sig_b[k]));
    }
    *p = sum / (double)m->ncls;
cleanup:
    free(c);
    free(low);
    free(tok);
    free(hits);
    return rc;
}
