/* bench_embed.c - neural embedder throughput vs the sgemm roofline, and dense nDCG@10 on SciFact. */
#include "bert.h"
#include "embedder.h"
#include "model_registry.h"
#include "ragcore.h"
#include "status.h"
#include "tokenizer.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    char **id, **text;
    size_t n, cap;
} docs;

static void push(docs *d, const char *id, const char *text)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->id = realloc(d->id, d->cap * sizeof *d->id);
        d->text = realloc(d->text, d->cap * sizeof *d->text);
    }
    d->id[d->n] = strdup(id);
    d->text[d->n++] = strdup(text);
}

/* Reads BEIR jsonl (optionally gzip): "title" + ". " + "text". */
static int read_jsonl(const char *path, docs *d, size_t limit)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    static char line[1 << 20];
    while (d->n < limit && gzgets(f, line, sizeof line)) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j)
            continue;
        const char *id = json_string_value(json_object_get(j, "_id"));
        const char *title = json_string_value(json_object_get(j, "title"));
        const char *text = json_string_value(json_object_get(j, "text"));
        if (id && text) {
            size_t len = strlen(text) + (title ? strlen(title) : 0) + 3;
            char *buf = malloc(len);
            snprintf(buf, len, "%s%s%s", title && *title ? title : "", title && *title ? ". " : "",
                     text);
            push(d, id, buf);
            free(buf);
        }
        json_decref(j);
    }
    gzclose(f);
    return 0;
}

/* sgemm GFLOP/s at the encoder's shapes for a batch of T tokens (H hidden, NI inner). */
static double sgemm_gflops(int T, int H, int NI, double seconds)
{
    float *a = calloc((size_t)T * NI, sizeof(float)), *b = calloc((size_t)NI * 3 * H, sizeof(float)),
          *c = calloc((size_t)T * NI, sizeof(float));
    for (size_t i = 0; i < (size_t)T * NI; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)NI * 3 * H; i++)
        b[i] = (float)(i % 5) * 0.1f;
    double flops = 0, t0 = now();
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, 3 * H, H, 1, a, H, b, H, 0, c, 3 * H);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, H, H, 1, a, H, b, H, 1, c, H);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, NI, H, 1, a, H, b, H, 1, c, NI);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, H, NI, 1, a, NI, b, NI, 1, c, H);
        flops += 2.0 * T * H * (3.0 * H + H + 2.0 * NI);
    } while (now() - t0 < seconds);
    double g = flops / (now() - t0) / 1e9;
    free(a);
    free(b);
    free(c);
    return g;
}

typedef struct {
    char *q, *d;
} qrel;

static double ndcg10(rag_embedder *e, const docs *corpus, const float *dv, const char *qpath,
                     const char *qrpath)
{
    docs qs = {0};
    if (read_jsonl(qpath, &qs, (size_t)-1))
        return -1;
    FILE *f = fopen(qrpath, "r");
    if (!f)
        return -1;
    qrel *qr = NULL;
    size_t nqr = 0, cap = 0;
    char a[256], b[256];
    int s;
    char hdr[256];
    if (!fgets(hdr, sizeof hdr, f)) {
        fclose(f);
        return -1;
    }
    while (fscanf(f, "%255s %255s %d", a, b, &s) == 3)
        if (s > 0) {
            if (nqr == cap) {
                cap = cap ? cap * 2 : 1024;
                qr = realloc(qr, cap * sizeof *qr);
            }
            qr[nqr].q = strdup(a);
            qr[nqr++].d = strdup(b);
        }
    fclose(f);
    int dim = e->dim;
    float *qv = malloc(qs.n * (size_t)dim * sizeof(float));
    size_t *lens = malloc(qs.n * sizeof *lens);
    for (size_t i = 0; i < qs.n; i++)
        lens[i] = strlen(qs.text[i]);
    rag_embedder_embed(e, (const char *const *)qs.text, lens, qs.n, 1, qv);
    float *scores = malloc(corpus->n * sizeof(float));
    double total = 0;
    size_t nq = 0;
    for (size_t qi = 0; qi < qs.n; qi++) {
        int nrel = 0;
        for (size_t k = 0; k < nqr; k++)
            nrel += strcmp(qr[k].q, qs.id[qi]) == 0;
        if (!nrel)
            continue;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)corpus->n, dim, 1, dv, dim,
                    qv + qi * (size_t)dim, 1, 0, scores, 1);
        double dcg = 0, idcg = 0;
        for (int r = 0; r < 10; r++) {
            size_t best = 0;
            for (size_t j = 1; j < corpus->n; j++)
                if (scores[j] > scores[best])
                    best = j;
            int rel = 0;
            for (size_t k = 0; k < nqr; k++)
                if (strcmp(qr[k].q, qs.id[qi]) == 0 && strcmp(qr[k].d, corpus->id[best]) == 0)
                    rel = 1;
            dcg += rel / log2(r + 2.0);
            if (r < nrel)
                idcg += 1 / log2(r + 2.0);
            scores[best] = -INFINITY;
        }
        total += dcg / idcg;
        nq++;
    }
    free(qv);
    free(lens);
    free(scores);
    return nq ? total / nq : 0;
}

int main(int argc, char **argv)
{
    const char *model = "all-MiniLM-L6-v2", *data = NULL, *threads_arg = "1,2";
    size_t limit = 1000;
    int eval = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--docs") && i + 1 < argc)
            limit = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads_arg = argv[++i];
        else if (!strcmp(argv[i], "--eval"))
            eval = 1;
        else {
            fprintf(stderr, "usage: bench_embed [--model NAME|DIR] [--data DIR] [--docs N] "
                            "[--threads 1,2] [--eval]\n"
                            "  DIR defaults to ../shared/data/scifact-dev beside the source tree;\n"
                            "  --eval embeds the whole corpus and reports dense nDCG@10\n");
            return 1;
        }
    }
    char dbuf[4096];
    if (!data) {
        snprintf(dbuf, sizeof dbuf, "%s/../shared/data/scifact-dev",
                 getenv("RAGCORE_SOURCE_DIR") ? getenv("RAGCORE_SOURCE_DIR") : ".");
        data = dbuf;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/corpus.jsonl.gz", data);
    docs corpus = {0};
    if (read_jsonl(path, &corpus, eval ? (size_t)-1 : limit) || corpus.n == 0)
        return 2;
    if (rag_model_find(model) && rag_model_pull(model, 0, NULL) != RAG_OK &&
        !rag_model_is_cached(rag_model_find(model))) {
        fprintf(stderr, "pull %s: %s\n", model, rag_errmsg());
        return 2;
    }
    rag_embedder *e = NULL;
    if (rag_embedder_create(model, 0, &e) != RAG_OK) {
        fprintf(stderr, "%s: %s\n", model, rag_errmsg());
        return 2;
    }
    size_t n = corpus.n;
    size_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(corpus.text[i]);
    /* Tokens actually encoded (after truncation), and the model's FLOPs for them. */
    rag_bert *m = NULL;
    char *mdir = NULL;
    if (rag_model_find(model))
        rag_model_cache_dir(rag_model_find(model), &mdir);
    if (rag_bert_load(mdir ? mdir : model, &m) != RAG_OK) {
        /* not a neural model (e.g. "hash"): only the retrieval quality is meaningful */
        free(mdir);
        float *v = malloc(n * (size_t)e->dim * sizeof(float));
        double t0 = now();
        rag_embedder_embed(e, (const char *const *)corpus.text, lens, n, 0, v);
        printf("model %s: %zu texts in %.2f s\n", e->name, n, now() - t0);
        if (eval) {
            char qp[4200], qrp[4200];
            snprintf(qp, sizeof qp, "%s/queries.jsonl", data);
            snprintf(qrp, sizeof qrp, "%s/qrels/train.tsv", data);
            printf("dense nDCG@10 (%zu docs): %.4f\n", n, ndcg10(e, &corpus, v, qp, qrp));
        }
        free(v);
        free(lens);
        rag_embedder_free(e);
        return 0;
    }
    free(mdir);
    const rag_tokenizer *tok = rag_bert_tokenizer(m);
    int maxt = rag_bert_max_tokens(m);
    double tokens = 0, flops = 0;
    int32_t *ids = malloc((size_t)maxt * sizeof *ids);
    /* layers and shapes from the model dimension: read back through the config */
    json_t *cfg = NULL;
    {
        char cp[4200];
        char *d2 = NULL;
        if (rag_model_find(model))
            rag_model_cache_dir(rag_model_find(model), &d2);
        snprintf(cp, sizeof cp, "%s/config.json", d2 ? d2 : model);
        free(d2);
        cfg = json_load_file(cp, 0, NULL);
    }
    int H = (int)json_integer_value(json_object_get(cfg, "hidden_size"));
    int NL = (int)json_integer_value(json_object_get(cfg, "num_hidden_layers"));
    int NI = (int)json_integer_value(json_object_get(cfg, "intermediate_size"));
    json_decref(cfg);
    for (size_t i = 0; i < n; i++) {
        int k = rag_tokenizer_encode(tok, corpus.text[i], lens[i], ids, maxt);
        tokens += k;
        flops += (double)NL * (2.0 * k * H * (4.0 * H + 2.0 * NI) + 4.0 * (double)k * k * H);
    }
    free(ids);
    rag_bert_free(m);
    double f128 = NL * (2.0 * 128 * H * (4.0 * H + 2.0 * NI) + 4.0 * 128.0 * 128 * H) / 1e9;
    printf("OpenBLAS kernels: %s\n", rag_bert_blas_info());
    printf("model %s: %zu texts, %.0f tokens (mean %.1f, max %d), %.2f GFLOP; %.2f GFLOP per "
           "128-token sequence\n", e->name, n, tokens, tokens / n, maxt, flops / 1e9, f128);
    float *out = malloc(n * (size_t)e->dim * sizeof(float));
    char targ[64];
    snprintf(targ, sizeof targ, "%s", threads_arg);
    for (char *t = strtok(targ, ","); t; t = strtok(NULL, ",")) {
        int th = rag_bert_set_threads(atoi(t));
        double roof = sgemm_gflops(2048, H, NI, 1.5);
        rag_embedder_embed(e, (const char *const *)corpus.text, lens, n < 16 ? n : 16, 0, out);
        double t0 = now();
        if (rag_embedder_embed(e, (const char *const *)corpus.text, lens, n, 0, out) != RAG_OK) {
            fprintf(stderr, "embed: %s\n", rag_errmsg());
            return 2;
        }
        double dt = now() - t0;
        double achieved = flops / dt / 1e9;
        printf("threads=%d: %.0f tokens/s, %.1f chunks/s, %.1f GFLOP/s achieved; sgemm roofline "
               "%.1f GFLOP/s -> %.0f tokens/s ceiling; %.0f%% of roofline\n", th, tokens / dt,
               n / dt, achieved, roof, tokens / (flops / (roof * 1e9)), 100 * achieved / roof);
        fflush(stdout);
    }
    if (eval) {
        char qp[4200], qrp[4200];
        snprintf(qp, sizeof qp, "%s/queries.jsonl", data);
        snprintf(qrp, sizeof qrp, "%s/qrels/train.tsv", data);
        printf("dense nDCG@10 (%zu docs): %.4f\n", n, ndcg10(e, &corpus, out, qp, qrp));
    }
    free(out);
    free(lens);
    rag_embedder_free(e);
    return 0;
}
