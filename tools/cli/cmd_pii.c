/* cmd_pii.c - `ragcore pii apply`: re-mask a collection's stored text under its current PII
 * policy, as an erasure (locally or through a running server). */
#include "cli.h"
#include "http_client.h"

#include "ragcore.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pii_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore pii apply --db DIR --collection NAME\n"
            "       ragcore pii apply --server URL [--key KEY] --collection NAME\n\n"
            "Applies the collection's current PII policy (set it first: ragcore collection set\n"
            "NAME --pii mask|hash|drop) to the documents already stored: every document whose\n"
            "text, title or metadata holds a finding is stored again masked (hashed, or removed\n"
            "under drop), and the old text is erased: no byte of it remains readable in any\n"
            "file of the store (see docs/privacy.md). Documents without findings are left as\n"
            "they are.\n\n" CLI_HTTP_USAGE);
}

static void print_stats(const char *coll, unsigned long long docs, unsigned long long cache,
                        double mb, double seconds)
{
    printf("collection '%s': %llu document%s masked again; %llu cache entries erased; "
           "%.1f MB scrubbed in %.2f s\n", coll, docs, docs == 1 ? "" : "s", cache, mb, seconds);
}

int cmd_pii(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"collection", required_argument, 0, 'c'},
                                             {"server", required_argument, 0, 's'},
                                             {"key", required_argument, 0, 'k'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dbdir = NULL, *coll = NULL, *server = NULL, *key = NULL;
    int opt;
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        pii_usage(stdout);
        return CLI_OK;
    }
    if (argc < 2 || strcmp(argv[1], "apply") != 0) {
        cli_error("pii", "unknown or missing subcommand%s%s (expected: apply)",
                  argc >= 2 ? " " : "", argc >= 2 ? argv[1] : "");
        pii_usage(stderr);
        return CLI_USAGE;
    }
    optind = 2;
    while ((opt = getopt_long(argc, argv, "d:c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'c': coll = optarg; break;
        case 's': server = optarg; break;
        case 'k': key = optarg; break;
        case 'h': pii_usage(stdout); return CLI_OK;
        default: pii_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir == !server || !coll || optind < argc) {
        cli_error("pii", "%s", dbdir && server    ? "give --db DIR or --server URL, not both"
                               : !dbdir && !server ? "--db DIR or --server URL is required"
                               : !coll             ? "--collection NAME is required"
                                                   : "unexpected argument");
        pii_usage(stderr);
        return CLI_USAGE;
    }
    if (server) {
        cli_http h;
        char path[4096], err[2048] = "out of memory";
        json_t *reply = NULL;
        long code = 0;
        if (cli_http_init(&h, "pii", server, key) != 0)
            return CLI_USAGE;
        char *c = cli_http_escape(coll);
        int rc = -1;
        if (c) {
            snprintf(path, sizeof path, "/v1/collections/%s/pii/apply", c);
            rc = cli_http_json(&h, "POST", path, NULL, &reply, &code, err, sizeof err);
        }
        free(c);
        if (rc != 0) {
            cli_error("pii", "%s", err);
            return CLI_DATA;
        }
        print_stats(coll, (unsigned long long)json_integer_value(json_object_get(reply, "documents")),
                    (unsigned long long)json_integer_value(json_object_get(reply, "cache_entries")),
                    json_number_value(json_object_get(reply, "store_bytes")) / 1e6,
                    json_number_value(json_object_get(reply, "seconds")));
        json_decref(reply);
        return CLI_OK;
    }
    rag_db *db = cli_open("pii", dbdir, 0);
    if (!db)
        return CLI_DATA;
    rag_erase_stats st;
    int rc = rag_collection_pii_apply(db, coll, &st);
    if (rc != RAG_OK)
        cli_error("pii", "%s", rag_errmsg());
    else
        print_stats(coll, (unsigned long long)st.documents, (unsigned long long)st.cache_entries,
                    st.store_bytes / 1e6, st.seconds);
    if (rag_close(db) != RAG_OK && rc == RAG_OK) {
        cli_error("pii", "checkpoint failed: %s", rag_errmsg());
        rc = RAG_EIO;
    }
    return rc == RAG_OK ? CLI_OK : rc == RAG_EINVAL || rc == RAG_ENOTFOUND ? CLI_USAGE : CLI_DATA;
}
