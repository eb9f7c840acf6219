/* cmd_search.c - `ragcore search`: query a collection and print ranked hits. */
#include "cli.h"
#include "search_flags.h"

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
            "  --db DIR                           store directory\n"
            "  --collection NAME                  collection (default: default)\n"
            "  --doc ID                           only chunks of this document (repeatable)\n"
            "  --json                             print {\"results\":[...],\"no_confident_context\""
            ":...}\n"
            "  -k N                               same as --k\n");
    cli_search_flags_usage(out, NULL);
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
    struct option longopts[8 + CLI_SEARCH_FLAGS_MAX + 1] = {
        {"db", required_argument, 0, 'd'},  {"collection", required_argument, 0, 'c'},
        {"doc", required_argument, 0, 'D'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'}};
    size_t nopts = 5;
    cli_search_flags_add(longopts, &nopts, NULL);
    const char *dbdir = NULL, *doc_ids[MAX_DOC_IDS];
    int json = 0, opt;
    rag_search_options so;
    rag_search_options_init(&so);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:k:D:jh", longopts, NULL)) != -1) {
        int r = opt == 'k' ? cli_search_set("search", "k", optarg, &so)
                           : cli_search_flag("search", opt, optarg, &so);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'c': so.collection = optarg; break;
        case 'D':
            if (so.n_doc_ids == MAX_DOC_IDS) {
                cli_error("search", "at most %d --doc", MAX_DOC_IDS);
                return CLI_USAGE;
            }
            doc_ids[so.n_doc_ids++] = optarg;
            break;
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
        cli_error("search", "%s", *rag_errmsg() ? rag_errmsg() : rag_strerror(rc));
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
