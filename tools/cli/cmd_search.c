/* cmd_search.c - `ragcore search`: query a collection and print ranked hits. */
#include "cli.h"

#include "ragcore.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DOC_IDS 256

static void search_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore search --db DIR [--collection NAME] [-k N] [--json] [options] QUERY\n"
            "\n"
            "  --db DIR            store directory\n"
            "  --collection NAME   collection (default: default)\n"
            "  -k N                number of hits (default 10, at most 10000)\n"
            "  --mode M            dense | lexical | hybrid (default hybrid)\n"
            "  --fusion F          rrf | weighted (hybrid; default rrf)\n"
            "  --rrf-k N           RRF constant (default 60)\n"
            "  --dense-weight W    weighted fusion: share of the dense side, 0..1 (default 0.5)\n"
            "  --candidates N      candidates per side for fusion (default max(100, 4k))\n"
            "  --filter EXPR       metadata filter, e.g. 'lang = \"en\" AND year >= 2020'\n"
            "  --mmr LAMBDA        MMR diversification, relevance weight in (0,1]\n"
            "  --per-doc N         at most N hits per document\n"
            "  --max-age SECONDS   only documents whose source is at most this old\n"
            "  --half-life SECONDS recency weighting with this half-life\n"
            "  --doc ID            only chunks of this document (repeatable)\n"
            "  --source-prefix P   only documents whose source starts with P\n"
            "  --json              print {\"results\":[...],\"no_confident_context\":...} as JSON\n");
}

static int parse_num(const char *opt, const char *arg, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (*arg == '\0' || *end || v < lo || v > hi) {
        cli_error("search", "%s must be a number in %g..%g, got '%s'", opt, lo, hi, arg);
        return -1;
    }
    *out = v;
    return 0;
}

static json_t *hit_json(const rag_hit *h)
{
    json_t *o = json_object();
    json_object_set_new(o, "doc_id", json_string(h->doc_id));
    json_object_set_new(o, "chunk_id", json_integer((json_int_t)h->chunk_id));
    json_object_set_new(o, "score", json_real(h->score));
    json_object_set_new(o, "text", json_stringn(h->text, h->text_len));
    json_object_set_new(o, "title", json_string(h->title));
    json_object_set_new(o, "source", json_string(h->source));
    json_object_set_new(o, "heading_path", json_string(h->heading_path));
    json_object_set_new(o, "start", json_integer((json_int_t)h->start));
    json_object_set_new(o, "end", json_integer((json_int_t)h->end));
    json_object_set_new(o, "token_count", json_integer(h->token_count));
    json_t *meta = json_loads(h->metadata_json, 0, NULL);
    json_object_set_new(o, "metadata", meta ? meta : json_object());
    json_object_set_new(o, "source_mtime", json_integer(h->source_mtime));
    json_object_set_new(o, "ingested_at", json_integer(h->ingested_at));
    json_object_set_new(o, "updated_at", json_integer(h->updated_at));
    json_object_set_new(o, "age_s", json_integer(
        (json_int_t)time(NULL) - (h->source_mtime > 0 ? h->source_mtime : h->ingested_at)));
    if (h->valid_until)
        json_object_set_new(o, "valid_until", json_integer(h->valid_until));
    if (h->dense_rank)
        json_object_set_new(o, "dense_score", json_real(h->dense_score));
    if (h->lexical_rank)
        json_object_set_new(o, "lexical_score", json_real(h->lexical_score));
    return o;
}

int cmd_search(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'}, {"collection", required_argument, 0, 'c'},
        {"k", required_argument, 0, 'k'},  {"doc", required_argument, 0, 'D'},
        {"source-prefix", required_argument, 0, 'p'}, {"json", no_argument, 0, 'j'},
        {"mode", required_argument, 0, 'm'}, {"fusion", required_argument, 0, 'F'},
        {"rrf-k", required_argument, 0, 'R'}, {"dense-weight", required_argument, 0, 'W'},
        {"candidates", required_argument, 0, 'C'}, {"filter", required_argument, 0, 'f'},
        {"mmr", required_argument, 0, 'M'}, {"per-doc", required_argument, 0, 'P'},
        {"max-age", required_argument, 0, 'A'}, {"half-life", required_argument, 0, 'H'},
        {"help", no_argument, 0, 'h'},     {0, 0, 0, 0}};
    const char *dbdir = NULL, *doc_ids[MAX_DOC_IDS];
    int json = 0, opt;
    rag_search_options so;
    rag_search_options_init(&so);
    optind = 1;
    double v;
    while ((opt = getopt_long(argc, argv, "d:c:k:D:p:jh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm':
            if (!strcmp(optarg, "dense"))
                so.mode = RAG_MODE_DENSE;
            else if (!strcmp(optarg, "lexical"))
                so.mode = RAG_MODE_LEXICAL;
            else if (!strcmp(optarg, "hybrid"))
                so.mode = RAG_MODE_HYBRID;
            else {
                cli_error("search", "--mode must be dense, lexical or hybrid, got '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case 'F':
            if (!strcmp(optarg, "rrf"))
                so.fusion = RAG_FUSION_RRF;
            else if (!strcmp(optarg, "weighted"))
                so.fusion = RAG_FUSION_WEIGHTED;
            else {
                cli_error("search", "--fusion must be rrf or weighted, got '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case 'R': if (parse_num("--rrf-k", optarg, 1, 100000, &v)) return CLI_USAGE; so.rrf_k = (int)v; break;
        case 'W': if (parse_num("--dense-weight", optarg, 0, 1, &v)) return CLI_USAGE; so.dense_weight = (float)v; break;
        case 'C': if (parse_num("--candidates", optarg, 1, 10000, &v)) return CLI_USAGE; so.candidates = (int)v; break;
        case 'M': if (parse_num("--mmr", optarg, 0, 1, &v)) return CLI_USAGE; so.mmr_lambda = (float)v; break;
        case 'P': if (parse_num("--per-doc", optarg, 1, 10000, &v)) return CLI_USAGE; so.per_doc = (int)v; break;
        case 'A': if (parse_num("--max-age", optarg, 1, 1e12, &v)) return CLI_USAGE; so.max_age = (int64_t)v; break;
        case 'H': if (parse_num("--half-life", optarg, 1, 1e12, &v)) return CLI_USAGE; so.half_life = (int64_t)v; break;
        case 'f': so.filter = optarg; break;
        case 'd': dbdir = optarg; break;
        case 'c': so.collection = optarg; break;
        case 'k': {
            char *end;
            long k = strtol(optarg, &end, 10);
            if (*end || k < 1 || k > 10000) {
                cli_error("search", "-k must be an integer in 1..10000, got '%s'", optarg);
                return CLI_USAGE;
            }
            so.k = (int)k;
            break;
        }
        case 'D':
            if (so.n_doc_ids == MAX_DOC_IDS) {
                cli_error("search", "at most %d --doc", MAX_DOC_IDS);
                return CLI_USAGE;
            }
            doc_ids[so.n_doc_ids++] = optarg;
            break;
        case 'p': so.source_prefix = optarg; break;
        case 'j': json = 1; break;
        case 'h': search_usage(stdout); return CLI_OK;
        default: search_usage(stderr); return CLI_USAGE;
        }
    }
    so.doc_ids = doc_ids;
    if (!dbdir || optind != argc - 1) {
        cli_error("search", "%s", !dbdir ? "--db DIR is required" : "exactly one QUERY is required");
        search_usage(stderr);
        return CLI_USAGE;
    }
    rag_db *db = cli_open("search", dbdir, 1);
    if (!db)
        return CLI_DATA;
    int rc;
    rag_results *res = NULL;
    rc = rag_search(db, argv[optind], &so, &res);
    if (rc != RAG_OK) {
        cli_error("search", "%s", rag_errmsg());
        rag_close(db);
        return rc == RAG_EINVAL || rc == RAG_EPARSE ? CLI_USAGE : CLI_DATA;
    }
    size_t n = rag_results_count(res);
    if (json) {
        json_t *root = json_object(), *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, hit_json(rag_results_get(res, i)));
        json_object_set_new(root, "results", arr);
        json_object_set_new(root, "no_confident_context",
                            json_boolean(rag_results_no_confident_context(res)));
        json_object_set_new(root, "query", json_string(argv[optind]));
        json_object_set_new(root, "collection",
                            json_string(so.collection ? so.collection : RAG_DEFAULT_COLLECTION));
        json_dumpf(root, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(root);
    } else {
        for (size_t i = 0; i < n; i++) {
            const rag_hit *h = rag_results_get(res, i);
            printf("%2zu. %.4f  %s", i + 1, h->score, h->source[0] ? h->source : h->doc_id);
            if (h->heading_path[0])
                printf("  [%s]", h->heading_path);
            printf("  (bytes %llu-%llu)\n    ", (unsigned long long)h->start,
                   (unsigned long long)h->end);
            size_t show = h->text_len < 200 ? h->text_len : 200;
            for (size_t j = 0; j < show; j++)
                putchar(h->text[j] == '\n' ? ' ' : h->text[j]);
            /* do not cut a UTF-8 sequence */
            for (size_t j = show; j < h->text_len && ((unsigned char)h->text[j] & 0xC0) == 0x80; j++)
                putchar(h->text[j]);
            printf("%s\n", h->text_len > show ? "..." : "");
        }
        if (n == 0)
            printf("no results\n");
        else if (rag_results_no_confident_context(res))
            printf("(no confident context: the best hits score below the confidence threshold)\n");
    }
    rag_results_free(res);
    rag_close(db);
    return CLI_OK;
}
