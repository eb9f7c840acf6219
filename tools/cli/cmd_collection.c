/* cmd_collection.c - `ragcore collection show|set|create`: a collection's settings (hygiene
 * policy, TTL, language) read and changed explicitly through the library's calls. */
#include "cli.h"

#include "policy_flags.h"
#include "ragcore.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void collection_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore collection show   --db DIR [--collection NAME] [--json]\n"
            "       ragcore collection set    --db DIR --collection NAME [flags] [--set N=V]...\n"
            "       ragcore collection create --db DIR --collection NAME [flags] [--set N=V]...\n"
            "\n"
            "A collection's settings are kept in the store and applied by the library on every\n"
            "ingest path (ingest, sync, the server's upsert, library calls). `set` changes them\n"
            "for what is ingested afterwards: documents already stored are not re-processed\n"
            "(`ragcore pii apply` re-masks stored text, as an erasure); turning duplicate\n"
            "detection on, or changing its threshold, indexes the stored documents for it.\n"
            "`create` makes a collection with them (defaults: every filter off).\n"
            "\n"
            "  --collection NAME   (show: default; every setting of that collection)\n"
            "  --set NAME=VALUE    any setting by name (repeatable):\n");
    for (size_t i = 0; i < rag_collection_option_count(); i++) {
        const rag_option_info *o = rag_collection_option_info(i);
        fprintf(out, "      %-20s %s (default %s%s%s)\n", o->name, o->help, o->default_text,
                o->choices ? "; " : "", o->choices ? o->choices : "");
    }
    fprintf(out, "\nThe policy flags of ingest and sync set the same settings:\n");
    cli_policy_help(out);
}

/* Prints a collection's settings, one "name: value" line each, or as JSON. */
static int show(rag_db *db, const char *coll, int json)
{
    rag_collection_options o;
    char *text = NULL;
    int rc = rag_collection_options_get(db, coll, &o);
    if (rc == RAG_OK)
        rc = rag_collection_options_json(&o, &text);
    if (rc != RAG_OK) {
        cli_error("collection", "%s", rag_errmsg());
        return CLI_DATA;
    }
    if (json) {
        printf("{\"collection\":\"%s\",\"settings\":%s}\n", coll, text);
    } else {
        json_t *j = json_loads(text, 0, NULL);
        const char *k;
        json_t *v;
        printf("collection %s\n", coll);
        json_object_foreach(j, k, v) {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
            printf("  %-20s %s\n", k, s ? s : "?");
            free(s);
        }
        json_decref(j);
    }
    rag_free(text);
    return CLI_OK;
}

int cmd_collection(int argc, char **argv)
{
    enum { O_SET = 256 };
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},   {"collection", required_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},       {"set", required_argument, 0, O_SET},
        {"help", no_argument, 0, 'h'},       CLI_POLICY_LONGOPTS,
        {0, 0, 0, 0}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        collection_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *sub = argv[1];
    int is_show = strcmp(sub, "show") == 0, is_set = strcmp(sub, "set") == 0,
        is_create = strcmp(sub, "create") == 0;
    if (!is_show && !is_set && !is_create) {
        cli_error("collection", "unknown subcommand '%s' (show, set or create)", sub);
        return CLI_USAGE;
    }
    const char *dbdir = NULL, *coll = NULL, *sets[64];
    size_t nsets = 0;
    int json = 0, opt, status = CLI_USAGE;
    cli_policy pf;
    cli_policy_init(&pf);
    optind = 2;
    while ((opt = getopt_long(argc, argv, "d:c:jh", longopts, NULL)) != -1) {
        int p = is_show ? 0 : cli_policy_flag(&pf, "collection", opt, optarg);
        if (p < 0)
            return CLI_USAGE;
        if (p > 0)
            continue;
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'c': coll = optarg; break;
        case 'j': json = 1; break;
        case O_SET:
            if (nsets == 64 || !strchr(optarg, '=')) {
                cli_error("collection", "--set expects NAME=VALUE (at most 64), got '%s'", optarg);
                return CLI_USAGE;
            }
            sets[nsets++] = optarg;
            break;
        case 'h': collection_usage(stdout); return CLI_OK;
        default: collection_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir || optind != argc || (!is_show && !coll)) {
        cli_error("collection", "%s", !dbdir ? "--db DIR is required"
                                      : optind != argc ? "unexpected argument"
                                                       : "--collection NAME is required");
        return CLI_USAGE;
    }
    if (!coll)
        coll = RAG_DEFAULT_COLLECTION;
    rag_db *db = cli_open("collection", dbdir, is_show);
    if (!db)
        return CLI_DATA;
    rag_collection_options o;
    char names[64][64];
    if (is_show) {
        status = show(db, coll, json);
        goto cleanup;
    }
    /* the flags given, over the stored settings (set) or the library's defaults (create) */
    if (is_set && rag_collection_options_get(db, coll, &o) != RAG_OK) {
        cli_error("collection", "%s", rag_errmsg());
        status = CLI_DATA;
        goto cleanup;
    }
    if (is_create)
        rag_collection_options_init(&o);
    cli_policy_overlay(&pf, &o);
    for (size_t i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        snprintf(names[i], sizeof names[i], "%.*s", (int)(eq - sets[i]), sets[i]);
        if (rag_collection_option_set(&o, names[i], eq + 1) != RAG_OK) {
            cli_error("collection", "--set %s: %s", sets[i], rag_errmsg());
            goto cleanup;
        }
    }
    int rc = is_create ? rag_collection_create_with(db, coll, &o)
                       : rag_collection_configure(db, coll, &o);
    if (rc != RAG_OK) {
        cli_error("collection", "%s", rag_errmsg());
        status = rc == RAG_EINVAL ? CLI_USAGE : CLI_DATA;
        goto cleanup;
    }
    status = show(db, coll, json);
cleanup:
    if (rag_close(db) != RAG_OK && status == CLI_OK) {
        cli_error("collection", "checkpoint failed: %s", rag_errmsg());
        status = CLI_DATA;
    }
    return status;
}
