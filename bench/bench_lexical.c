/* bench_lexical.c - BM25 lexical index on a BEIR set: nDCG@10 / recall / MRR, index build
 * time and per-query latency of rag_lexical_search (one document = one chunk, title + text).
 *
 * usage: bench_lexical [--data DIR] [--store DIR] [--language L] [--stopwords 0|1]
 *                      [--k1 X] [--b X] [--repeat N] [--title 0|1] [--chunk-tokens N]
 *                      [--overlap N] [--stats 0|1] [--unit document|chunk] [--dump FILE]
 * DIR holds corpus.jsonl.gz, queries.jsonl and qrels/train.tsv (default
 * /work/shared/data/scifact-dev). The store (default $TMPDIR/bench_lexical_store) is
 * rebuilt on each run. --title 0 indexes the text alone; --chunk-tokens N splits each text
 * with the ingest chunker (--overlap tokens, default 32) and indexes every chunk (with the
 * title when --title 1), scoring a document by its best chunk, as `ragcore eval` does.
 * --stats 1 also times, after each search, the query's BM25 statistics as a cluster's
 * shard gathers them (rag_lexical_query_stats: chunk and document frequencies, the latter
 * counted from the postings) and the per-term chunk-frequency lookups alone (what those
 * statistics cost before they counted documents). --unit chunk scores chunks
 * (default: documents, as stores do). --dump FILE writes each query's results
 * of the first round (query id, then rank, chunk id and score as a hex float), so that two
 * builds can be compared bit for bit (cmp). */
#include "chunker.h"
#include "corpus.h"
#include "lexical.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* rag_analyze's callback for --stats: one chunk-frequency lookup per term. */
typedef struct df_only {
    rag_txn *txn;
    uint64_t sum;
} df_only;

static void df_lookup(void *user, const char *term, size_t len)
{
    df_only *d = user;
    uint32_t df = 0;
    if (rag_lexical_df(d->txn, 1, term, len, &df) == RAG_OK)
        d->sum += df;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: latency without the noise of a shared machine. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct corpus {
    char **ids, **texts, **titles;
    size_t n, cap;
} corpus;

/* Indexed units: whole documents or chunks; unit i + 1 is the chunk id of texts[i]. */
typedef struct units {
    char **texts;
    size_t *doc;
    size_t n, cap;
} units;

static void unit_push(units *u, size_t doc, const char *a, size_t al, const char *b, size_t bl)
{
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 4096;
        u->texts = realloc(u->texts, u->cap * sizeof *u->texts);
        u->doc = realloc(u->doc, u->cap * sizeof *u->doc);
    }
    char *t = malloc(al + bl + 2);
    memcpy(t, a, al);
    t[al] = '\n';
    memcpy(t + al + 1, b, bl);
    t[al + 1 + bl] = 0;
    u->texts[u->n] = t;
    u->doc[u->n++] = doc;
}

static int on_doc(void *user, const rag_document *doc)
{
    corpus *c = user;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->ids = realloc(c->ids, c->cap * sizeof *c->ids);
        c->texts = realloc(c->texts, c->cap * sizeof *c->texts);
        c->titles = realloc(c->titles, c->cap * sizeof *c->titles);
    }
    c->titles[c->n] = strdup(doc->title ? doc->title : "");
    c->texts[c->n] = strndup(doc->text, doc->text_len == (size_t)-1 ? strlen(doc->text)
                                                                   : doc->text_len);
    c->ids[c->n++] = strdup(doc->id);
    return RAG_OK;
}

static void on_err(void *user, const char *where, int rc, const char *msg)
{
    (void)user;
    fprintf(stderr, "corpus: %s: %s (%d)\n", where, msg, rc);
}

typedef struct add_batch {
    const rag_analyzer *an;
    const units *u;
    size_t from, to;
} add_batch;

static int add_fn(rag_txn *txn, void *user)
{
    add_batch *b = user;
    for (size_t i = b->from; i < b->to; i++) {
        int rc = rag_lexical_add(txn, b->an, 1, i + 1, b->u->texts[i], strlen(b->u->texts[i]));
        if (rc != RAG_OK)
            return rc;
    }
    return RAG_OK;
}


int main(int argc, char **argv)
{
    const char *data = "/work/shared/data/scifact-dev", *store = NULL, *lang = "english",
               *dump_path = NULL;
    int stop = 1, repeat = 1, title = 1, chunk_tokens = 0, overlap = 32, stats = 0;
    rag_bm25_params params;
    rag_bm25_params_init(&params);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--store")) store = argv[i + 1];
        else if (!strcmp(argv[i], "--language")) lang = argv[i + 1];
        else if (!strcmp(argv[i], "--stopwords")) stop = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--k1")) params.k1 = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--b")) params.b = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--title")) title = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunk-tokens")) chunk_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--overlap")) overlap = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--stats")) stats = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dump")) dump_path = argv[i + 1];
        else if (!strcmp(argv[i], "--unit"))
            params.unit = strcmp(argv[i + 1], "chunk") ? RAG_LEXICAL_DOCUMENT : RAG_LEXICAL_CHUNK;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 1;
        }
    }
    char storebuf[1024], path[1024], qpath[1024], rpath[1024], cmd[1100];
    if (!store) {
        const char *tmp = getenv("TMPDIR");
        snprintf(storebuf, sizeof storebuf, "%s/bench_lexical_store", tmp ? tmp : "/tmp");
        store = storebuf;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", store);
    if (system(cmd) != 0)
        return 1;
    snprintf(path, sizeof path, "%s/corpus.jsonl.gz", data);
    snprintf(qpath, sizeof qpath, "%s/queries.jsonl", data);
    snprintf(rpath, sizeof rpath, "%s/qrels/train.tsv", data);

    corpus c = {0};
    const char *paths[] = {path};
    if (rag_corpus_walk(paths, 1, NULL, on_doc, on_err, &c) != RAG_OK || c.n == 0) {
        fprintf(stderr, "cannot read %s: %s\n", path, rag_errmsg());
        return 1;
    }
    rag_beir_set *set = NULL;
    if (rag_beir_load(qpath, rpath, &set) != RAG_OK) {
        fprintf(stderr, "%s\n", rag_errmsg());
        return 1;
    }
    rag_analyzer *an = NULL;
    rag_store *st = NULL;
    if (rag_analyzer_create(lang, stop, &an) != RAG_OK || rag_store_open(store, 0, &st) != RAG_OK) {
        fprintf(stderr, "%s\n", rag_errmsg());
        return 1;
    }
    units u = {0};
    for (size_t i = 0; i < c.n; i++) {
        const char *tt = title ? c.titles[i] : "", *x = c.texts[i];
        size_t xl = strlen(x);
        if (!chunk_tokens) {
            unit_push(&u, i, tt, strlen(tt), x, xl);
            continue;
        }
        rag_chunker_config cc = {chunk_tokens, overlap, 0, NULL, NULL};
        rag_chunk_list list = {0};
        if (rag_chunk_text(&cc, x, xl, &list) != RAG_OK) {
            fprintf(stderr, "chunk %s: %s\n", c.ids[i], rag_errmsg());
            return 1;
        }
        for (size_t j = 0; j < list.count; j++)
            unit_push(&u, i, tt, strlen(tt), x + list.items[j].start,
                      list.items[j].end - list.items[j].start);
        if (list.count == 0)
            unit_push(&u, i, tt, strlen(tt), "", 0);
        rag_chunk_list_free(&list);
    }
    FILE *dump = NULL;
    if (dump_path && !(dump = fopen(dump_path, "w"))) {
        fprintf(stderr, "cannot write %s\n", dump_path);
        return 1;
    }
    double t0 = now();
    for (size_t from = 0; from < u.n; from += 1000) {
        add_batch b = {an, &u, from, from + 1000 < u.n ? from + 1000 : u.n};
        if (rag_store_write(st, add_fn, &b) != RAG_OK) {
            fprintf(stderr, "index: %s\n", rag_errmsg());
            return 1;
        }
    }
    double t_index = now() - t0;

    /* chunk id i + 1 is unit i; documents keep the rank of their best unit */
    enum { K = 100, KC = 1000 };
    float scores[KC];
    uint64_t ids[KC];
    unsigned char *seen = calloc(c.n, 1);
    double ranked[K], *ndcg = calloc(set->n, sizeof *ndcg), *lat = calloc(set->n * repeat, sizeof *lat),
           *cpu = calloc(set->n * repeat, sizeof *cpu),
           *cpu_st = calloc(set->n * repeat, sizeof *cpu_st),
           *cpu_df = calloc(set->n * repeat, sizeof *cpu_df);
    double sum_ndcg = 0, sum_r10 = 0, sum_r100 = 0, sum_mrr = 0;
    size_t nlat = 0;
    for (int rep = 0; rep < repeat; rep++) {
        for (size_t qi = 0; qi < set->n; qi++) {
            const rag_beir_query *q = &set->queries[qi];
            double q0 = now(), c0 = cpu_now();
            rag_txn *txn = NULL;
            if (rag_store_read(st, &txn) != RAG_OK)
                return 1;
            int n = rag_lexical_search(txn, an, 1, q->text, strlen(q->text), &params,
                                       NULL, chunk_tokens ? KC : K, NULL, NULL, scores, ids);
            rag_txn_end(txn);
            cpu[nlat] = (cpu_now() - c0) * 1e3;
            if (stats) {
                rag_bm25_stats *bs = NULL;
                df_only d = {NULL, 0};
                if (rag_store_read(st, &txn) != RAG_OK)
                    return 1;
                c0 = cpu_now();
                if (rag_lexical_query_stats(txn, an, 1, q->text, strlen(q->text), &bs) != RAG_OK)
                    return 1;
                cpu_st[nlat] = (cpu_now() - c0) * 1e3;
                free(bs);
                d.txn = txn;
                c0 = cpu_now();
                rag_analyze(an, q->text, strlen(q->text), df_lookup, &d);
                cpu_df[nlat] = (cpu_now() - c0) * 1e3;
                rag_txn_end(txn);
            }
            lat[nlat++] = (now() - q0) * 1e3;
            if (n < 0) {
                fprintf(stderr, "query %s: %s\n", q->id, rag_errmsg());
                return 1;
            }
            if (rep > 0)
                continue;
            for (int i = 0; dump && i < n; i++)
                fprintf(dump, "%s %d %llu %a\n", q->id, i, (unsigned long long)ids[i],
                        (double)scores[i]);
            double rel[256];
            size_t nrel = 0;
            for (size_t j = 0; j < q->n_judged && nrel < 256; j++)
                if (q->judged[j].gain > 0)
                    rel[nrel++] = q->judged[j].gain;
            int nd = 0;
            memset(seen, 0, c.n);
            for (int i = 0; i < n && nd < K; i++) {
                size_t d = u.doc[ids[i] - 1];
                if (seen[d]++)
                    continue;
                ranked[nd++] = rag_beir_gain(q, c.ids[d]);
            }
            n = nd;
            ndcg[qi] = rag_eval_ndcg(ranked, (size_t)n, rel, nrel, 10);
            sum_ndcg += ndcg[qi];
            sum_r10 += rag_eval_recall(ranked, (size_t)n, q->n_relevant, 10);
            sum_r100 += rag_eval_recall(ranked, (size_t)n, q->n_relevant, 100);
            sum_mrr += rag_eval_mrr(ranked, (size_t)n, 10);
        }
    }
    uint64_t nchunks = 0, total = 0;
    rag_txn *txn = NULL;
    if (rag_store_read(st, &txn) == RAG_OK) {
        rag_lexical_stats(txn, 1, &nchunks, &total);
        rag_txn_end(txn);
    }
    double nq = (double)set->n;
    printf("{\"bench\":\"lexical\",\"language\":\"%s\",\"stopwords\":%d,\"k1\":%.2f,\"b\":%.2f,"
           "\"title\":%d,\"chunk_tokens\":%d,\"overlap\":%d,\"documents\":%zu,\"units\":%zu,\"terms\":%llu,\"queries\":%zu,\"index_s\":%.2f,"
           "\"ndcg@10\":%.4f,\"recall@10\":%.4f,\"recall@100\":%.4f,\"mrr@10\":%.4f,"
           "\"latency_ms_p50\":%.3f,\"latency_ms_p95\":%.3f,\"latency_ms_max\":%.3f,"
           "\"cpu_ms_p50\":%.3f,\"cpu_ms_p95\":%.3f,\"cpu_ms_max\":%.3f}\n",
           lang, stop, (double)params.k1, (double)params.b, title, chunk_tokens, overlap, c.n, u.n,
           (unsigned long long)total,
           set->n, t_index, sum_ndcg / nq, sum_r10 / nq, sum_r100 / nq, sum_mrr / nq,
           rag_eval_quantile(lat, nlat, 0.5), rag_eval_quantile(lat, nlat, 0.95),
           rag_eval_quantile(lat, nlat, 1.0), rag_eval_quantile(cpu, nlat, 0.5),
           rag_eval_quantile(cpu, nlat, 0.95), rag_eval_quantile(cpu, nlat, 1.0));
    if (stats)
        printf("{\"bench\":\"lexical_stats\",\"queries\":%zu,\"stats_cpu_ms_p50\":%.4f,"
               "\"stats_cpu_ms_p95\":%.4f,\"df_lookups_cpu_ms_p50\":%.4f,"
               "\"df_lookups_cpu_ms_p95\":%.4f}\n",
               nlat, rag_eval_quantile(cpu_st, nlat, 0.5), rag_eval_quantile(cpu_st, nlat, 0.95),
               rag_eval_quantile(cpu_df, nlat, 0.5), rag_eval_quantile(cpu_df, nlat, 0.95));
    if (dump && fclose(dump) != 0) {
        fprintf(stderr, "cannot write %s\n", dump_path);
        return 1;
    }
    free(cpu_st);
    free(cpu_df);
    free(ndcg);
    free(lat);
    free(cpu);
    for (size_t i = 0; i < c.n; i++) {
        free(c.ids[i]);
        free(c.texts[i]);
    }
    for (size_t i = 0; i < u.n; i++)
        free(u.texts[i]);
    for (size_t i = 0; i < c.n; i++)
        free(c.titles[i]);
    free(u.texts);
    free(u.doc);
    free(seen);
    free(c.ids);
    free(c.texts);
    free(c.titles);
    rag_beir_free(set);
    rag_analyzer_free(an);
    rag_store_close(st);
    return 0;
}
