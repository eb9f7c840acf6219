/* bench_toxicity.c - the toxicity detectors on a labelled set (precision, recall, F1 of the
 * word list, the classifier and their union) or on a JSONL corpus (documents/s of each
 * detector, every flagged document listed), with the pulled models.
 *
 * usage: bench_toxicity --labelled FILE   lines "LABEL<TAB>TEXT" (LABEL 1: toxic, 0: not;
 *                                         TEXT with \n, \t, \\ escaped)
 *        bench_toxicity --corpus FILE     JSONL {"_id","title","text"} (plain, or "-" for
 *                                         stdin); title and text read as one, as ingest does
 * Options: --threshold X (default 0.5), --repeat N (corpus: timing passes, default 3),
 * --decisions OUT (labelled: one line per scored text, "LINE<TAB>LABEL<TAB>WORDLIST<TAB>
 * CLASSIFIER<TAB>MATCH", LINE the 1-based line of FILE, the detectors' decisions 0/1 and the
 * word list's matched words, for comparing decisions text by text with the Python packages). */
#include "ragcore.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of this process: the measure that holds on a loaded machine. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Undoes the \n, \t, \\ escapes of a labelled line's text, in place. */
static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
        } else if (*s != '\n' && *s != '\r') {
            *o++ = *s;
        }
    }
    *o = '\0';
}

typedef struct counts {
    long tp, fp, fn, tn;
} counts;

static void add(counts *c, int predicted, int label)
{
    c->tp += predicted && label;
    c->fp += predicted && !label;
    c->fn += !predicted && label;
    c->tn += !predicted && !label;
}

static void print_counts(const char *name, const counts *c)
{
    double p = c->tp + c->fp ? (double)c->tp / (double)(c->tp + c->fp) : 0;
    double r = c->tp + c->fn ? (double)c->tp / (double)(c->tp + c->fn) : 0;
    double f = p + r > 0 ? 2 * p * r / (p + r) : 0;
    printf("%-22s precision %.4f  recall %.4f  F1 %.4f  (tp %ld fp %ld fn %ld tn %ld)\n", name,
           p, r, f, c->tp, c->fp, c->fn, c->tn);
}

static int labelled(rag_toxicity *t, const char *path, double threshold, const char *dpath)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    FILE *dec = dpath ? fopen(dpath, "w") : NULL;
    if (dpath && !dec) {
        perror(dpath);
        fclose(f);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    counts wl = {0}, cl = {0}, un = {0};
    long n = 0, pos = 0, lineno = 0;
    double secs = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if ((line[0] != '0' && line[0] != '1') || line[1] != '\t')
            continue;
        int label = line[0] == '1';
        char *text = line + 2;
        unescape(text);
        rag_toxicity_result r;
        double t0 = now();
        if (rag_toxicity_score(t, text, strlen(text), &r) != RAG_OK) {
            fprintf(stderr, "line %ld: %s\n", n + 1, rag_errmsg());
            continue;
        }
        secs += now() - t0;
        unsigned fired = rag_toxicity_fired(&r, threshold);
        add(&wl, (fired & RAG_TOXICITY_WORDLIST) != 0, label);
        add(&cl, (fired & RAG_TOXICITY_CLASSIFIER) != 0, label);
        add(&un, fired != 0, label);
        if (dec)
            fprintf(dec, "%ld\t%d\t%d\t%d\t%s\n", lineno, label,
                    (fired & RAG_TOXICITY_WORDLIST) != 0, (fired & RAG_TOXICITY_CLASSIFIER) != 0,
                    r.wordlist_hit > 0 ? r.match : "");
        n++;
        pos += label;
    }
    free(line);
    fclose(f);
    if (dec)
        fclose(dec);
    printf("%ld texts, %ld labelled toxic, threshold %.2f, %.0f texts per CPU second (both "
           "detectors)\n", n,
           pos, threshold, secs > 0 ? (double)n / secs : 0);
    print_counts("wordlist", &wl);
    print_counts("classifier", &cl);
    print_counts("union", &un);
    return 0;
}

typedef struct doc {
    char *id, *both;       /* title, newline, text: as the ingest filter reads them */
} doc;

static int corpus(const char *path, double threshold, int repeat)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        perror(path);
        return 1;
    }
    doc *d = NULL;
    size_t n = 0, capd = 0, bytes = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j)
            continue;
        if (n == capd) {
            capd = capd ? capd * 2 : 1024;
            d = realloc(d, capd * sizeof *d);
        }
        const char *id = json_string_value(json_object_get(j, "_id"));
        const char *ti = json_string_value(json_object_get(j, "title"));
        const char *tx = json_string_value(json_object_get(j, "text"));
        if (!ti)
            ti = "";
        if (!tx)
            tx = "";
        d[n].id = strdup(id ? id : "");
        d[n].both = malloc(strlen(ti) + strlen(tx) + 2);
        sprintf(d[n].both, "%s\n%s", ti, tx);
        bytes += strlen(d[n].both);
        n++;
        json_decref(j);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    static const unsigned which[] = {RAG_TOXICITY_WORDLIST, RAG_TOXICITY_CLASSIFIER,
                                     RAG_TOXICITY_BOTH};
    printf("%zu documents, %.1f MB of title and text\n", n, (double)bytes / 1e6);
    for (int w = 0; w < 3; w++) {
        rag_toxicity *t = NULL;
        if (rag_toxicity_open(which[w], NULL, NULL, &t) != RAG_OK) {
            fprintf(stderr, "%s\n", rag_errmsg());
            return 1;
        }
        double best = 1e30;
        size_t flagged = 0;
        for (int rep = 0; rep < repeat; rep++) {
            double t0 = now();
            flagged = 0;
            for (size_t i = 0; i < n; i++) {
                rag_toxicity_result a;
                rag_toxicity_score(t, d[i].both, strlen(d[i].both), &a);
                unsigned fired = rag_toxicity_fired(&a, threshold);
                flagged += fired != 0;
                if (rep == 0 && fired && which[w] == RAG_TOXICITY_BOTH)
                    printf("  flagged %s: %s, word list \"%s\", classifier %.3f: %.*s\n",
                           d[i].id, rag_toxicity_detector_name(fired), a.match, a.probability,
                           (int)strcspn(d[i].both, "\n"), d[i].both);
            }
            double s = now() - t0;
            if (s < best)
                best = s;
        }
        printf("%-20s %zu flagged (%.3f %%), %.0f documents per CPU second (%.1f us each; "
               "best of %d)\n",
               rag_toxicity_detector_name(which[w]), flagged, 100.0 * (double)flagged / (double)n,
               (double)n / best, best / (double)n * 1e6, repeat);
        rag_toxicity_close(t);
    }
    for (size_t i = 0; i < n; i++) {
        free(d[i].id);
        free(d[i].both);
    }
    free(d);
    return 0;
}

int main(int argc, char **argv)
{
    const char *lab = NULL, *corp = NULL, *dec = NULL;
    double threshold = 0.5;
    int repeat = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--labelled") && i + 1 < argc)
            lab = argv[++i];
        else if (!strcmp(argv[i], "--corpus") && i + 1 < argc)
            corp = argv[++i];
        else if (!strcmp(argv[i], "--threshold") && i + 1 < argc)
            threshold = atof(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decisions") && i + 1 < argc)
            dec = argv[++i];
        else {
            fprintf(stderr, "usage: bench_toxicity --labelled FILE | --corpus FILE "
                    "[--threshold X] [--repeat N] [--decisions OUT]\n");
            return 2;
        }
    }
    if (corp)
        return corpus(corp, threshold, repeat < 1 ? 1 : repeat);
    if (!lab) {
        fprintf(stderr, "usage: bench_toxicity --labelled FILE | --corpus FILE\n");
        return 2;
    }
    rag_toxicity *t = NULL;
    if (rag_toxicity_open(0, NULL, NULL, &t) != RAG_OK) {
        fprintf(stderr, "%s\n", rag_errmsg());
        return 1;
    }
    int rc = labelled(t, lab, threshold, dec);
    rag_toxicity_close(t);
    return rc;
}
