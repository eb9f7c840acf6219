/* cmd_check.c - `ragcore check`: store consistency check and repair. */
#include "cli.h"

#include "ragcore.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void check_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore check --db DIR [--repair [--ef-construction N]] [--json]\n"
            "       ragcore check --db DIR --salvage OUT [--json]\n\n"
            "Verifies the store: every live chunk has a vector and a document listing it,\n"
            "every listed chunk exists, no orphan chunks or vectors, counters and chunk-hash\n"
            "counts match recounts, vectors have the store's dimension and finite values,\n"
            "and each index file verifies its checksum and holds exactly the live vectors\n"
            "below the position it covers.\n\n"
            "  --repair  rebuild index files and counters from the store, re-embed missing\n"
            "            vectors, delete orphan chunks/vectors (each action is listed);\n"
            "            documents are never deleted. Run it with no other process writing.\n"
            "  --ef-construction N  HNSW build depth of rebuilt index files (default 40);\n"
            "            give the value the store was ingested with to keep its recall\n"
            "  --salvage OUT  for a store whose file is damaged: copy every readable\n"
            "            document (text, metadata, collection settings, API keys and other\n"
            "            tables) into a new store OUT and list the documents lost; the\n"
            "            damaged store is only read\n"
            "  --json    print the report as one JSON object\n"
            "  --key-file PATH  an encrypted store's key (else RAGCORE_STORE_KEY); a\n"
            "            salvage needs it too and copies the records still sealed\n\n"
            "exit status: 0 consistent (or fully repaired, or salvaged with nothing lost),\n"
            "1 usage error, 2 problems remain (or documents were lost)\n");
}

/* `check --salvage OUT`: copies the readable documents into OUT and lists what was lost. */
static int salvage(const char *dbdir, const char *outdir, int json)
{
    rag_salvage_report *r = NULL;
    int rc = rag_salvage_keyed(dbdir, outdir, NULL, cli_key_file, &r);
    if (rc != RAG_OK) {
        cli_error("check", "cannot salvage '%s' into '%s': %s", dbdir, outdir, rag_errmsg());
        return CLI_DATA;
    }
    const rag_salvage_totals *t = rag_salvage_report_totals(r);
    const rag_check_report *cr = rag_salvage_report_check(r);
    uint64_t unfixed = rag_check_report_count(cr, RAG_CHECK_UNFIXED);
    size_t nlost = rag_salvage_report_lost_count(r);
    if (json) {
        json_t *root = json_object(), *lost = json_array();
        json_object_set_new(root, "collections", json_integer((json_int_t)t->collections));
        json_object_set_new(root, "documents", json_integer((json_int_t)t->documents));
        json_object_set_new(root, "documents_lost", json_integer((json_int_t)t->documents_lost));
        json_object_set_new(root, "documents_unknown",
                            json_integer((json_int_t)t->documents_unknown));
        json_object_set_new(root, "chunks", json_integer((json_int_t)t->chunks));
        json_object_set_new(root, "vectors_reembedded",
                            json_integer((json_int_t)t->vectors_reembedded));
        json_object_set_new(root, "tables", json_integer((json_int_t)t->tables));
        json_object_set_new(root, "pages", json_integer((json_int_t)t->pages));
        json_object_set_new(root, "damaged_pages", json_integer((json_int_t)t->damaged_pages));
        json_object_set_new(root, "unfixed", json_integer((json_int_t)unfixed));
        for (size_t i = 0; i < nlost; i++) {
            const rag_salvage_lost *l = rag_salvage_report_lost(r, i);
            json_t *o = json_object();
            json_object_set_new(o, "collection", json_string(l->collection));
            json_object_set_new(o, "id", json_string(l->id));
            json_object_set_new(o, "reason", json_string(l->reason));
            json_array_append_new(lost, o);
        }
        json_object_set_new(root, "lost", lost);
        json_dumpf(root, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(root);
    } else {
        for (size_t i = 0; i < nlost; i++) {
            const rag_salvage_lost *l = rag_salvage_report_lost(r, i);
            printf("lost     [%s] %s: %s\n", l->collection[0] ? l->collection : "?", l->id,
                   l->reason);
        }
        for (size_t i = 0; i < rag_check_report_size(cr); i++) {
            const rag_check_item *it = rag_check_report_item(cr, i);
            if (it->kind == RAG_CHECK_UNFIXED)
                printf("unfixed  %s%s%s%s\n", it->collection[0] ? "[" : "", it->collection,
                       it->collection[0] ? "] " : "", it->message);
        }
        printf("salvaged %llu documents (%llu chunks, %llu vectors embedded again) of %llu "
               "collections and %llu tables into '%s'; %llu of %llu pages damaged; lost %llu "
               "documents by id",
               (unsigned long long)t->documents, (unsigned long long)t->chunks,
               (unsigned long long)t->vectors_reembedded, (unsigned long long)t->collections,
               (unsigned long long)t->tables, outdir, (unsigned long long)t->damaged_pages,
               (unsigned long long)t->pages, (unsigned long long)t->documents_lost);
        if (t->documents_unknown)
            printf(" and %llu more whose ids are on damaged pages",
                   (unsigned long long)t->documents_unknown);
        printf("\n");
    }
    int ok = t->documents_lost == 0 && t->documents_unknown == 0 && unfixed == 0;
    rag_salvage_report_free(r);
    return ok ? CLI_OK : CLI_DATA;
}

int cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"repair", no_argument, 0, 'r'},
                                             {"json", no_argument, 0, 'j'},
                                             {"ef-construction", required_argument, 0, 'e'},
                                             {"salvage", required_argument, 0, 's'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dbdir = NULL, *salvage_to = NULL;
    int json = 0, repair = 0, efc = 0, opt;
    long long v;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:rjhe:s:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'r': repair = 1; break;
        case 'j': json = 1; break;
        case 's': salvage_to = optarg; break;
        case 'e':
            if (cli_parse_int(optarg, 1, 100000, &v) != 0) {
                cli_error("check", "--ef-construction must be 1..100000, got '%s'", optarg);
                return CLI_USAGE;
            }
            efc = (int)v;
            break;
        case 'h': check_usage(stdout); return CLI_OK;
        default: check_usage(stderr); return CLI_USAGE;
        }
    }
    if (efc && !repair) {
        cli_error("check", "--ef-construction applies to --repair only");
        check_usage(stderr);
        return CLI_USAGE;
    }
    if (!dbdir || optind != argc) {
        cli_error("check", "%s", !dbdir ? "--db DIR is required" : "unexpected argument");
        check_usage(stderr);
        return CLI_USAGE;
    }
    if (salvage_to && (repair || efc)) {
        cli_error("check", "--salvage writes a new store: it does not go with --repair");
        check_usage(stderr);
        return CLI_USAGE;
    }
    if (salvage_to)
        return salvage(dbdir, salvage_to, json);
    rag_check_report *r = NULL;
    int rc = rag_check_keyed(dbdir, repair ? RAG_CHECK_REPAIR : 0, efc, NULL, cli_key_file, &r);
    if (rc != RAG_OK) {
        cli_error("check", "cannot check '%s': %s%s", dbdir, rag_errmsg(),
                  cli_busy_advice("check", rc));
        return CLI_DATA;
    }
    uint64_t problems = rag_check_report_count(r, RAG_CHECK_PROBLEM);
    uint64_t repaired = rag_check_report_count(r, RAG_CHECK_REPAIRED);
    uint64_t unfixed = rag_check_report_count(r, RAG_CHECK_UNFIXED);
    int ok = repair ? unfixed == 0 : problems == 0;
    const rag_check_totals *t = rag_check_report_totals(r);
    if (json) {
        json_t *root = json_object(), *items = json_array(), *tot = json_object();
        json_object_set_new(root, "ok", json_boolean(ok));
        json_object_set_new(root, "problems", json_integer((json_int_t)problems));
        json_object_set_new(root, "notes",
                            json_integer((json_int_t)rag_check_report_count(r, RAG_CHECK_NOTE)));
        if (repair) {
            json_object_set_new(root, "repaired", json_integer((json_int_t)repaired));
            json_object_set_new(root, "unfixed", json_integer((json_int_t)unfixed));
        }
        json_object_set_new(tot, "collections", json_integer((json_int_t)t->collections));
        json_object_set_new(tot, "documents", json_integer((json_int_t)t->documents));
        json_object_set_new(tot, "chunks", json_integer((json_int_t)t->chunks));
        json_object_set_new(tot, "vectors", json_integer((json_int_t)t->vectors));
        json_object_set_new(tot, "tombstones", json_integer((json_int_t)t->tombstones));
        json_object_set_new(tot, "index_files", json_integer((json_int_t)t->index_files));
        json_object_set_new(tot, "index_vectors", json_integer((json_int_t)t->index_vectors));
        json_object_set_new(root, "totals", tot);
        for (size_t i = 0; i < rag_check_report_size(r); i++) {
            const rag_check_item *it = rag_check_report_item(r, i);
            json_t *o = json_object();
            json_object_set_new(o, "kind", json_string(rag_check_kind_name(it->kind)));
            json_object_set_new(o, "collection", json_string(it->collection));
            json_object_set_new(o, "message", json_string(it->message));
            json_array_append_new(items, o);
        }
        json_object_set_new(root, "items", items);
        json_dumpf(root, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(root);
    } else {
        for (size_t i = 0; i < rag_check_report_size(r); i++) {
            const rag_check_item *it = rag_check_report_item(r, i);
            printf("%-8s %s%s%s%s\n", rag_check_kind_name(it->kind), it->collection[0] ? "[" : "",
                   it->collection, it->collection[0] ? "] " : "", it->message);
        }
        printf("checked %llu collections, %llu documents, %llu chunks, %llu vectors, "
               "%llu index files: ",
               (unsigned long long)t->collections, (unsigned long long)t->documents,
               (unsigned long long)t->chunks, (unsigned long long)t->vectors,
               (unsigned long long)t->index_files);
        if (repair && problems)
            printf("%llu problems, %llu repairs, %llu remaining\n", (unsigned long long)problems,
                   (unsigned long long)repaired, (unsigned long long)unfixed);
        else
            printf("%llu problems\n", (unsigned long long)problems);
    }
    rag_check_report_free(r);
    return ok ? CLI_OK : CLI_DATA;
}
