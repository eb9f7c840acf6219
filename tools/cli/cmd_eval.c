/* cmd_eval.c - `ragcore eval`: retrieval quality on BEIR-format queries and qrels, and a
 * paired A/B comparison of two search configurations on the same queries. */
#include "cli.h"
#include "search_flags.h"

#include "ragcore.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVAL_SEED 20240611u

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore eval --db DIR [--collection NAME] --queries Q.jsonl --qrels QRELS.tsv\n"
            "                    [--mode dense|lexical|hybrid] [-k N] [--json]\n"
            "                    [--compare CONFIG_A CONFIG_B [--iterations N]]\n"
            "\n"
            "Runs every query that has a relevant document in QRELS (BEIR format: queries.jsonl\n"
            "lines {\"_id\",\"text\"}; TSV \"query-id corpus-id score\", score > 0 relevant, graded\n"
            "gains for nDCG) and reports nDCG@10, Recall@10, Recall@100, MRR@10 over documents\n"
            "(chunk hits collapse to their document at its best rank) and the latency of\n"
            "rag_search per query (p50, p95: wall time, and CPU time of the searching\n"
            "thread, which a busy machine inflates less). Searches run with per_doc=1\n"
            "unless a configuration sets per_doc.\n"
            "\n"
            "  --db DIR            store directory\n"
            "  --collection NAME   collection (default: default)\n"
            "  --queries FILE      BEIR queries (.jsonl or .jsonl.gz)\n"
            "  --qrels FILE        BEIR relevance judgements (.tsv)\n"
            "  -k N                documents retrieved per query (default 100, 1..10000)\n"
            "  --json              print the report as JSON\n"
            "  --compare A B       evaluate two configurations (applied over the options above)\n"
            "                      and report per-query nDCG@10 wins/losses/ties of B over A, a\n"
            "                      paired randomization test and a paired t-test\n"
            "  --iterations N      sign flips of the randomization test (default 10000)\n"
            "\n"
            "A configuration is a comma-separated key=value list of the search options below\n"
            "(by name, e.g. rrf_k=30, mmr_lambda=0.7) and ef_search=N, db=DIR,\n"
            "collection=NAME; filter=EXPR comes last: it takes the rest of the string.\n"
            "e.g. --compare \"mode=dense\" \"mode=hybrid,fusion=weighted,dense_weight=0.7\"\n"
            "\nSearch options:\n");
    cli_search_flags_usage(out, (const char *const[]){"k", NULL});
}

typedef struct eval_config {
    char *text;                 /* the specification as given ("" for the base) */
    char *buf;                  /* owned copy that option strings point into */
    const char *db;
    int ef_search;
    rag_search_options so;
} eval_config;

typedef struct eval_result {
    double *ndcg;               /* per query */
    double mean_ndcg, mean_r10, mean_r100, mean_mrr;
    double p50, p95;
    double cpu_p50, cpu_p95;    /* CPU time of the searching thread per query */
    size_t empty;               /* queries that returned no hit */
    const char *failed_query;   /* id of the query whose search failed */
} eval_result;

static double clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static double now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

static const char *mode_name(rag_mode m)
{
    return m == RAG_MODE_DENSE ? "dense" : m == RAG_MODE_LEXICAL ? "lexical" : "hybrid";
}

/* Applies "key=value,key=value" to cfg. Prints an error naming `which` and the bad item. */
static int parse_config(const char *spec, const char *which, eval_config *cfg)
{
    free(cfg->buf);
    cfg->buf = strdup(spec);
    cfg->text = (char *)spec;
    if (!cfg->buf)
        return -1;
    char *s = cfg->buf;
    while (s && *s) {
        char *item = s, *comma = NULL, *eq = strchr(item, '=');
        if (eq && !strncmp(item, "filter=", 7)) {
            s = NULL; /* the filter takes the rest */
        } else {
            comma = strchr(item, ',');
            if (comma)
                *comma = 0;
            s = comma ? comma + 1 : NULL;
        }
        eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1]) {
            cli_error("eval", "%s: '%s' is not key=value", which, item);
            return -1;
        }
        *eq = 0;
        const char *key = item, *val = eq + 1;
        long long iv;
        if (!strcmp(key, "ef_search")) {
            if (cli_parse_int(val, 1, 1000000, &iv) != 0) {
                cli_error("eval", "%s: ef_search must be a positive integer, got '%s'", which, val);
                return -1;
            }
            cfg->ef_search = (int)iv;
        } else if (!strcmp(key, "db")) {
            cfg->db = val;
        } else if (!strcmp(key, "collection")) {
            cfg->so.collection = val;
        } else if (!strcmp(key, "k") || !rag_search_option_find(key)) {
            cli_error("eval", "%s: unknown key '%s' (known: the search options of `ragcore eval "
                      "--help`, ef_search, db, collection)", which, key);
            return -1;
        } else if (rag_search_option_set(&cfg->so, key, val) != RAG_OK) {
            cli_error("eval", "%s: %s", which, rag_errmsg());
            return -1;
        }
    }
    return 0;
}

/* ---- a set of strings, to collapse chunk hits to documents ------------------------- */

typedef struct str_set {
    const char **slots;
    size_t cap, n;
} str_set;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Inserts s (borrowed); returns 1 when new, 0 when present, -1 when out of memory. */
static int set_add(str_set *set, const char *s)
{
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 256;
        const char **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slots[i])
                continue;
            size_t j = str_hash(set->slots[i]) & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = set->slots[i];
        }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    size_t j = str_hash(s) & (set->cap - 1);
    for (; set->slots[j]; j = (j + 1) & (set->cap - 1))
        if (!strcmp(set->slots[j], s))
            return 0;
    set->slots[j] = s;
    set->n++;
    return 1;
}

static void set_clear(str_set *set)
{
    if (set->slots)
        memset(set->slots, 0, set->cap * sizeof *set->slots);
    set->n = 0;
}

/* Runs one query: the best `k` distinct documents' gains go to ranked[], their count to *n.
 * Asks for more chunks while duplicates of a document crowd the list. Returns rag status. */
static int run_query(rag_db *db, const rag_search_options *base, const rag_beir_query *q, int k,
                     str_set *seen, double *ranked, size_t *n)
{
    rag_search_options so = *base;
    int want = k;
    *n = 0;
    for (;;) {
        rag_results *res = NULL;
        so.k = want;
        int rc = rag_search(db, q->text, &so, &res);
        if (rc != RAG_OK)
            return rc;
        size_t count = rag_results_count(res);
        set_clear(seen);
        *n = 0;
        for (size_t i = 0; i < count && *n < (size_t)k; i++) {
            const rag_hit *h = rag_results_get(res, i);
            int added = set_add(seen, h->doc_id);
            if (added < 0) {
                rag_results_free(res);
                return RAG_ENOMEM;
            }
            if (added)
                ranked[(*n)++] = rag_beir_gain(q, h->doc_id);
        }
        rag_results_free(res);
        /* fewer distinct documents than wanted although the list was full: dig deeper */
        if (*n >= (size_t)k || count < (size_t)want || want >= 10000)
            return RAG_OK;
        want = want * 4 > 10000 ? 10000 : want * 4;
    }
}

static int evaluate(rag_db *db, const eval_config *cfg, const rag_beir_set *set, int k,
                    eval_result *r)
{
    double *ranked = malloc((size_t)k * sizeof *ranked);
    double *lat = malloc(set->n * sizeof *lat), *cpu = malloc(set->n * sizeof *cpu);
    double *rel = NULL;
    size_t relcap = 0;
    str_set seen = {NULL, 0, 0};
    int rc = RAG_OK;
    memset(r, 0, sizeof *r);
    r->ndcg = calloc(set->n, sizeof *r->ndcg);
    if (!ranked || !lat || !cpu || !r->ndcg) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    /* warm-up: the first search may load indexes or models */
    size_t n;
    if ((rc = run_query(db, &cfg->so, &set->queries[0], k, &seen, ranked, &n)) != RAG_OK) {
        r->failed_query = set->queries[0].id;
        goto cleanup;
    }
    for (size_t qi = 0; qi < set->n; qi++) {
        const rag_beir_query *q = &set->queries[qi];
        double t0 = now_ms(), c0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
        if ((rc = run_query(db, &cfg->so, q, k, &seen, ranked, &n)) != RAG_OK) {
            r->failed_query = q->id;
            goto cleanup;
        }
        lat[qi] = now_ms() - t0;
        cpu[qi] = clock_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
        if (q->n_judged > relcap) {
            relcap = q->n_judged;
            free(rel);
            if (!(rel = malloc(relcap * sizeof *rel))) {
                rc = RAG_ENOMEM;
                goto cleanup;
            }
        }
        size_t nrel = 0;
        for (size_t j = 0; j < q->n_judged; j++)
            if (q->judged[j].gain > 0)
                rel[nrel++] = q->judged[j].gain;
        r->ndcg[qi] = rag_eval_ndcg(ranked, n, rel, nrel, 10);
        r->mean_ndcg += r->ndcg[qi];
        r->mean_r10 += rag_eval_recall(ranked, n, q->n_relevant, 10);
        r->mean_r100 += rag_eval_recall(ranked, n, q->n_relevant, 100);
        r->mean_mrr += rag_eval_mrr(ranked, n, 10);
        r->empty += n == 0;
    }
    r->mean_ndcg /= (double)set->n;
    r->mean_r10 /= (double)set->n;
    r->mean_r100 /= (double)set->n;
    r->mean_mrr /= (double)set->n;
    r->p50 = rag_eval_quantile(lat, set->n, 0.5);
    r->p95 = rag_eval_quantile(lat, set->n, 0.95);
    r->cpu_p50 = rag_eval_quantile(cpu, set->n, 0.5);
    r->cpu_p95 = rag_eval_quantile(cpu, set->n, 0.95);
cleanup:
    free(ranked);
    free(lat);
    free(cpu);
    free(rel);
    free(seen.slots);
    return rc;
}

static json_t *result_json(const eval_config *cfg, const eval_result *r, size_t nq)
{
    json_t *o = json_object();
    json_object_set_new(o, "ndcg@10", json_real(r->mean_ndcg));
    json_object_set_new(o, "recall@10", json_real(r->mean_r10));
    json_object_set_new(o, "recall@100", json_real(r->mean_r100));
    json_object_set_new(o, "mrr@10", json_real(r->mean_mrr));
    json_object_set_new(o, "queries", json_integer((json_int_t)nq));
    json_object_set_new(o, "queries_without_hits", json_integer((json_int_t)r->empty));
    json_object_set_new(o, "latency_ms_p50", json_real(r->p50));
    json_object_set_new(o, "latency_ms_p95", json_real(r->p95));
    json_object_set_new(o, "cpu_ms_p50", json_real(r->cpu_p50));
    json_object_set_new(o, "cpu_ms_p95", json_real(r->cpu_p95));
    json_object_set_new(o, "mode", json_string(mode_name(cfg->so.mode)));
    json_object_set_new(o, "db", json_string(cfg->db));
    json_object_set_new(o, "collection",
                        json_string(cfg->so.collection ? cfg->so.collection
                                                       : RAG_DEFAULT_COLLECTION));
    if (cfg->text)
        json_object_set_new(o, "config", json_string(cfg->text));
    return o;
}

static void print_json(json_t *root)
{
    json_dumpf(root, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
    fputc('\n', stdout);
    json_decref(root);
}

static int open_db(const eval_config *cfg, rag_db **db)
{
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.store_key_file = cli_key_file;
    oo.read_only = 1;
    oo.hnsw_ef_search = cfg->ef_search;
    if (rag_open(cfg->db, &oo, db) != RAG_OK) {
        cli_error("eval", "cannot open store '%s': %s", cfg->db, rag_errmsg());
        return CLI_DATA;
    }
    return CLI_OK;
}

int cmd_eval(int argc, char **argv)
{
    static const char *const own[] = {"k", NULL}; /* -k here counts documents */
    struct option longopts[9 + CLI_SEARCH_FLAGS_MAX + 1] = {
        {"db", required_argument, 0, 'd'},      {"collection", required_argument, 0, 'c'},
        {"queries", required_argument, 0, 'q'}, {"qrels", required_argument, 0, 'r'},
        {"k", required_argument, 0, 'k'},       {"json", no_argument, 0, 'j'},
        {"compare", no_argument, 0, 'C'},       {"iterations", required_argument, 0, 'i'},
        {"help", no_argument, 0, 'h'}};
    size_t nopts = 9;
    cli_search_flags_add(longopts, &nopts, own);
    const char *queries = NULL, *qrels = NULL;
    int json = 0, compare = 0, k = 100, opt, ret = CLI_OK;
    long iterations = 10000;
    long long v;
    eval_config cfg[2];
    memset(cfg, 0, sizeof cfg);
    rag_search_options_init(&cfg[0].so);
    cfg[0].so.per_doc = 1; /* metrics are per document: one hit per document, its best */
    rag_db *db[2] = {NULL, NULL};
    rag_beir_set *set = NULL;
    eval_result res[2];
    memset(res, 0, sizeof res);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:q:r:k:jCi:h", longopts, NULL)) != -1) {
        int r = cli_search_flag("eval", opt, optarg, &cfg[0].so);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'd': cfg[0].db = optarg; break;
        case 'c': cfg[0].so.collection = optarg; break;
        case 'q': queries = optarg; break;
        case 'r': qrels = optarg; break;
        case 'k':
            if (cli_parse_int(optarg, 1, 10000, &v) != 0) {
                cli_error("eval", "-k must be an integer in 1..10000, got '%s'", optarg);
                return CLI_USAGE;
            }
            k = (int)v;
            break;
        case 'j': json = 1; break;
        case 'C': compare = 1; break;
        case 'i':
            if (cli_parse_int(optarg, 1, 10000000, &v) != 0) {
                cli_error("eval", "--iterations must be an integer in 1..10000000, got '%s'",
                          optarg);
                return CLI_USAGE;
            }
            iterations = (long)v;
            break;
        case 'h': eval_usage(stdout); return CLI_OK;
        default: eval_usage(stderr); return CLI_USAGE;
        }
    }
    const char *missing = !cfg[0].db ? "--db DIR" : !queries ? "--queries FILE"
                        : !qrels    ? "--qrels FILE" : NULL;
    if (missing) {
        cli_error("eval", "%s is required", missing);
        eval_usage(stderr);
        return CLI_USAGE;
    }
    if (compare && argc - optind != 2) {
        cli_error("eval", "--compare needs exactly two configurations, got %d", argc - optind);
        return CLI_USAGE;
    }
    if (!compare && optind < argc) {
        cli_error("eval", "unexpected argument '%s' (configurations need --compare)", argv[optind]);
        return CLI_USAGE;
    }
    int nconf = compare ? 2 : 1;
    if (compare) {
        cfg[1] = cfg[0];
        if (parse_config(argv[optind], "configuration A", &cfg[0]) != 0 ||
            parse_config(argv[optind + 1], "configuration B", &cfg[1]) != 0) {
            ret = CLI_USAGE;
            goto cleanup;
        }
    }
    if (rag_beir_load(queries, qrels, &set) != RAG_OK) {
        cli_error("eval", "%s", rag_errmsg());
        ret = CLI_DATA;
        goto cleanup;
    }
    for (int i = 0; i < nconf; i++) {
        if (i == 1 && !strcmp(cfg[1].db, cfg[0].db) && cfg[1].ef_search == cfg[0].ef_search)
            db[1] = db[0];
        else if ((ret = open_db(&cfg[i], &db[i])) != CLI_OK)
            goto cleanup;
        int rc = evaluate(db[i], &cfg[i], set, k, &res[i]);
        if (rc != RAG_OK) {
            cli_error("eval", "%s%s%s%s: %s", compare ? (i ? "configuration B: " : "configuration A: ")
                                                        : "",
                      res[i].failed_query ? "query '" : "evaluation",
                      res[i].failed_query ? res[i].failed_query : "",
                      res[i].failed_query ? "'" : "",
                      rag_errmsg()[0] ? rag_errmsg() : rag_strerror(rc));
            ret = rc == RAG_EINVAL ? CLI_USAGE : CLI_DATA;
            goto cleanup;
        }
    }
    if (!compare) {
        if (json) {
            json_t *o = result_json(&cfg[0], &res[0], set->n);
            json_object_set_new(o, "k", json_integer(k));
            json_object_set_new(o, "queries_unjudged", json_integer((json_int_t)set->unjudged));
            print_json(o);
        } else {
            printf("queries       %zu evaluated (%zu without relevant documents skipped)\n",
                   set->n, set->unjudged);
            printf("mode          %s, %d documents per query\n", mode_name(cfg[0].so.mode), k);
            printf("ndcg@10       %.4f\nrecall@10     %.4f\nrecall@100    %.4f\nmrr@10        %.4f\n",
                   res[0].mean_ndcg, res[0].mean_r10, res[0].mean_r100, res[0].mean_mrr);
            printf("latency ms    p50 %.2f  p95 %.2f  (CPU p50 %.2f  p95 %.2f)\n", res[0].p50,
                   res[0].p95, res[0].cpu_p50, res[0].cpu_p95);
        }
        goto cleanup;
    }
    /* paired comparison of B against A on nDCG@10 */
    size_t wins = 0, losses = 0, ties = 0;
    for (size_t i = 0; i < set->n; i++) {
        double d = res[1].ndcg[i] - res[0].ndcg[i];
        if (fabs(d) < 1e-9)
            ties++;
        else if (d > 0)
            wins++;
        else
            losses++;
    }
    double t, p_t = rag_eval_paired_t(res[1].ndcg, res[0].ndcg, set->n, &t);
    double p_r = rag_eval_randomization_p(res[1].ndcg, res[0].ndcg, set->n,
                                          (unsigned)iterations, EVAL_SEED);
    if (json) {
        json_t *o = json_object(), *delta = json_object();
        json_object_set_new(o, "queries", json_integer((json_int_t)set->n));
        json_object_set_new(o, "k", json_integer(k));
        json_object_set_new(o, "a", result_json(&cfg[0], &res[0], set->n));
        json_object_set_new(o, "b", result_json(&cfg[1], &res[1], set->n));
        json_object_set_new(delta, "ndcg@10", json_real(res[1].mean_ndcg - res[0].mean_ndcg));
        json_object_set_new(delta, "recall@10", json_real(res[1].mean_r10 - res[0].mean_r10));
        json_object_set_new(delta, "recall@100", json_real(res[1].mean_r100 - res[0].mean_r100));
        json_object_set_new(delta, "mrr@10", json_real(res[1].mean_mrr - res[0].mean_mrr));
        json_object_set_new(o, "delta", delta);
        json_object_set_new(o, "wins", json_integer((json_int_t)wins));
        json_object_set_new(o, "losses", json_integer((json_int_t)losses));
        json_object_set_new(o, "ties", json_integer((json_int_t)ties));
        json_object_set_new(o, "p_randomization", json_real(p_r));
        json_object_set_new(o, "randomization_iterations", json_integer(iterations));
        json_object_set_new(o, "t", isfinite(t) ? json_real(t) : json_null());
        json_object_set_new(o, "p_ttest", json_real(p_t));
        print_json(o);
    } else {
        printf("queries       %zu evaluated, %d documents per query\n", set->n, k);
        printf("A             %s\nB             %s\n\n", cfg[0].text, cfg[1].text);
        printf("%-12s %10s %10s %10s\n", "", "A", "B", "B - A");
        const char *names[] = {"ndcg@10", "recall@10", "recall@100", "mrr@10", "p50 ms", "p95 ms"};
        double a[] = {res[0].mean_ndcg, res[0].mean_r10, res[0].mean_r100, res[0].mean_mrr,
                      res[0].p50, res[0].p95};
        double b[] = {res[1].mean_ndcg, res[1].mean_r10, res[1].mean_r100, res[1].mean_mrr,
                      res[1].p50, res[1].p95};
        for (int i = 0; i < 6; i++)
            printf("%-12s %10.4f %10.4f %+10.4f\n", names[i], a[i], b[i], b[i] - a[i]);
        printf("\nper-query nDCG@10: B wins %zu, loses %zu, ties %zu\n", wins, losses, ties);
        printf("paired randomization test (%ld sign flips): p = %.4g\n", iterations, p_r);
        printf("paired t-test: t = %.3f, p = %.4g\n", t, p_t);
    }
cleanup:
    for (int i = 0; i < 2; i++) {
        free(res[i].ndcg);
        free(cfg[i].buf);
    }
    if (db[1] != db[0])
        rag_close(db[1]);
    rag_close(db[0]);
    rag_beir_free(set);
    return ret;
}
