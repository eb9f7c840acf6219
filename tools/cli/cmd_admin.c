/* cmd_admin.c - `ragcore stats` and `ragcore delete`: store inspection and deletion (in the
 * store, or through a running server with --server). */
#include "cli.h"
#include "http_client.h"

#include "ragcore.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *fmt_time(char *buf, size_t n, long long t)
{
    time_t tt = (time_t)t;
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
    return buf;
}

static void stats_usage(FILE *out)
{
    fprintf(out, "usage: ragcore stats --db DIR [--json] [--objective SECONDS]\n\n"
                 "Prints the store's embedder and index, and per collection the documents,\n"
                 "chunks, duplicate chunks, index vectors, tombstones and freshness: newest and\n"
                 "oldest source time, last sync and its lag, documents older than the\n"
                 "freshness objective (default 30 days) and expired documents not yet purged.\n");
}

int cmd_stats(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"json", no_argument, 0, 'j'},
                                             {"objective", required_argument, 0, 'o'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dbdir = NULL;
    int json = 0, opt;
    long long objective = 30 * 86400;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:jo:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'j': json = 1; break;
        case 'o': {
            char *end;
            objective = strtoll(optarg, &end, 10);
            if (*end || objective < 1) {
                cli_error("stats", "--objective needs a positive number of seconds, got '%s'",
                          optarg);
                return CLI_USAGE;
            }
            break;
        }
        case 'h': stats_usage(stdout); return CLI_OK;
        default: stats_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir || optind != argc) {
        cli_error("stats", "%s", !dbdir ? "--db DIR is required" : "unexpected argument");
        stats_usage(stderr);
        return CLI_USAGE;
    }
    rag_db *db = cli_open("stats", dbdir, 1);
    if (!db)
        return CLI_DATA;
    char **names = NULL;
    size_t n = 0;
    int rc = rag_collection_list(db, &names, &n);
    json_t *root = json_object(), *arr = json_array();
    json_object_set_new(root, "embedder", json_string(rag_db_embedder(db)));
    json_object_set_new(root, "dim", json_integer(rag_db_dim(db)));
    json_object_set_new(root, "index_spec", json_string(rag_db_index_spec(db)));
    if (!json && rc == RAG_OK)
        printf("store %s: embedder %s (dim %d), index %s\n", dbdir, rag_db_embedder(db),
               rag_db_dim(db), rag_db_index_spec(db));
    for (size_t i = 0; rc == RAG_OK && i < n; i++) {
        rag_collection_info ci;
        if ((rc = rag_collection_stats(db, names[i], &ci)) != RAG_OK)
            break;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(names[i]));
        json_object_set_new(o, "documents", json_integer((json_int_t)ci.documents));
        json_object_set_new(o, "chunks", json_integer((json_int_t)ci.chunks));
        json_object_set_new(o, "duplicate_chunks", json_integer((json_int_t)ci.duplicate_chunks));
        json_object_set_new(o, "index_vectors", json_integer((json_int_t)ci.index_vectors));
        json_object_set_new(o, "tombstones", json_integer((json_int_t)ci.tombstones));
        json_object_set_new(o, "bytes_text", json_integer((json_int_t)ci.bytes_text));
        json_object_set_new(o, "created_at", json_integer(ci.created_at));
        json_object_set_new(o, "newest_ingest", json_integer(ci.newest_ingest));
        rag_freshness_info fi;
        if ((rc = rag_collection_freshness(db, names[i], objective, 0, &fi)) != RAG_OK)
            break;
        json_object_set_new(o, "newest_source", json_integer(fi.newest_source));
        json_object_set_new(o, "oldest_source", json_integer(fi.oldest_source));
        json_object_set_new(o, "last_sync", json_integer(fi.last_sync));
        json_object_set_new(o, "sync_lag_s", json_integer(fi.sync_lag));
        json_object_set_new(o, "freshness_objective_s", json_integer(fi.objective));
        json_object_set_new(o, "stale_documents", json_integer((json_int_t)fi.stale));
        json_object_set_new(o, "expired_not_purged", json_integer((json_int_t)fi.expired));
        json_array_append_new(arr, o);
        if (!json)
            printf("  %-20s %8llu documents %9llu chunks %7llu duplicate chunks %9llu index vectors "
                   "%7llu tombstones\n",
                   names[i], (unsigned long long)ci.documents, (unsigned long long)ci.chunks,
                   (unsigned long long)ci.duplicate_chunks, (unsigned long long)ci.index_vectors,
                   (unsigned long long)ci.tombstones);
        char t1[32], t2[32];
        if (!json)
            printf("  %-20s newest source %s, last sync %s, %llu documents older "
                   "than %llds, %llu expired not purged\n",
                   "", fi.documents ? fmt_time(t1, sizeof t1, fi.newest_source) : "none",
                   fi.last_sync ? fmt_time(t2, sizeof t2, fi.last_sync) : "never",
                   (unsigned long long)fi.stale, (long long)fi.objective,
                   (unsigned long long)fi.expired);
    }
    json_object_set_new(root, "collections", arr);
    uint64_t hits = 0, misses = 0;
    if (rc == RAG_OK && (rc = rag_embed_cache_stats(db, &hits, &misses)) == RAG_OK) {
        json_t *ec = json_object();
        json_object_set_new(ec, "hits", json_integer((json_int_t)hits));
        json_object_set_new(ec, "misses", json_integer((json_int_t)misses));
        json_object_set_new(ec, "hit_rate",
                            json_real(hits + misses ? (double)hits / (double)(hits + misses) : 0));
        json_object_set_new(root, "embed_cache", ec);
        if (!json)
            printf("embedding cache: %llu hits, %llu misses (hit rate %.1f%%)\n",
                   (unsigned long long)hits, (unsigned long long)misses,
                   hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0.0);
    }
    if (rc == RAG_OK && json) {
        json_dumpf(root, stdout, JSON_COMPACT);
        fputc('\n', stdout);
    }
    if (rc != RAG_OK)
        cli_error("stats", "%s", rag_errmsg());
    json_decref(root);
    rag_strings_free(names, n);
    rag_close(db);
    return rc == RAG_OK ? CLI_OK : CLI_DATA;
}

static void delete_usage(FILE *out)
{
    fprintf(out, "usage: ragcore delete --db DIR [--collection NAME] [--erase] DOC_ID...\n"
                 "       ragcore delete --server URL [--key KEY] [--collection NAME] [--erase] "
                 "DOC_ID...\n\n"
                 "Deletes documents and their chunks. Exits 2 when an id is not found\n"
                 "(the others are still deleted), or when another writer (such as a running\n"
                 "server) holds the store.\n\n"
                 "  --erase   an erasure: when the command returns, no byte of the documents'\n"
                 "            text, chunks, vectors or postings remains readable in any file of\n"
                 "            the store (free pages zeroed, index files rewritten, embedding\n"
                 "            cache and query-log entries that name them deleted); one pass\n"
                 "            over the store for all the ids (see docs/privacy.md)\n\n" CLI_HTTP_USAGE);
}

/* Erases documents through the server's POST /v1/collections/{c}/erase. */
static int erase_remote(const cli_http *h, const char *coll, char **ids, int n, int *deleted)
{
    char *c = cli_http_escape(coll), path[4096], err[2048] = "out of memory";
    json_t *body = json_object(), *list = json_array(), *reply = NULL;
    long code = 0;
    int rc = -1;
    for (int i = 0; list && i < n; i++)
        json_array_append_new(list, json_string(ids[i]));
    if (c && body && list && json_object_set(body, "ids", list) == 0) {
        snprintf(path, sizeof path, "/v1/collections/%s/erase", c);
        rc = cli_http_json(h, "POST", path, body, &reply, &code, err, sizeof err);
    }
    if (rc == 0)
        *deleted = (int)json_integer_value(json_object_get(reply, "documents"));
    else
        cli_error("delete", "%s", err);
    json_decref(reply);
    json_decref(list);
    json_decref(body);
    free(c);
    return rc == 0 ? CLI_OK : CLI_DATA;
}

/* Erases the ids that exist (one erasure); the others are reported. */
static int erase_local(rag_db *db, const char *coll, char **ids, int n, int *deleted)
{
    int status = CLI_OK, m = 0;
    const char **found = calloc((size_t)n, sizeof *found);
    if (!found) {
        cli_error("delete", "out of memory");
        return CLI_DATA;
    }
    for (int i = 0; i < n; i++) {
        rag_doc *d = NULL;
        if (rag_document_get(db, coll, ids[i], &d) == RAG_OK) {
            found[m++] = ids[i];
        } else {
            cli_error("delete", "%s", rag_errmsg());
            status = CLI_DATA;
        }
        rag_doc_free(d);
    }
    rag_erase_stats st;
    if (m > 0 && rag_erase_documents(db, coll, found, (size_t)m, &st) != RAG_OK) {
        cli_error("delete", "erasure: %s", rag_errmsg());
        status = CLI_DATA;
    } else if (m > 0) {
        *deleted = m;
        fprintf(stderr, "erased: %llu query-log entries, %llu cache entries, %llu index files; "
                "%.1f MB scrubbed in %.2f s\n", (unsigned long long)st.log_entries,
                (unsigned long long)st.cache_entries, (unsigned long long)st.index_files,
                st.store_bytes / 1e6, st.seconds);
    }
    free(found);
    return status;
}

/* Deletes each document through the server's DELETE /v1/collections/{c}/documents/{id}.
 * Counts what was deleted into *deleted; CLI_DATA when an id failed. */
static int delete_remote(const cli_http *h, const char *coll, char **ids, int n, int *deleted)
{
    int status = CLI_OK;
    char *c = cli_http_escape(coll);
    for (int i = 0; c && i < n; i++) {
        char *id = cli_http_escape(ids[i]), path[4096], err[2048] = "out of memory";
        long code = 0;
        int rc = -1;
        if (id) {
            snprintf(path, sizeof path, "/v1/collections/%s/documents/%s", c, id);
            rc = cli_http_json(h, "DELETE", path, NULL, NULL, &code, err, sizeof err);
            free(id);
        }
        if (rc == 0) {
            (*deleted)++;
            continue;
        }
        cli_error("delete", "%s", err);
        status = CLI_DATA;
        if (code == 0 || code == 401 || code == 403)
            break; /* the next ids would fail the same way */
    }
    if (!c) {
        cli_error("delete", "out of memory");
        status = CLI_DATA;
    }
    free(c);
    return status;
}

int cmd_delete(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"collection", required_argument, 0, 'c'},
                                             {"server", required_argument, 0, 's'},
                                             {"key", required_argument, 0, 'k'},
                                             {"erase", no_argument, 0, 'E'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dbdir = NULL, *coll = RAG_DEFAULT_COLLECTION, *server = NULL, *key = NULL;
    int opt, erase = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'E': erase = 1; break;
        case 'd': dbdir = optarg; break;
        case 'c': coll = optarg; break;
        case 's': server = optarg; break;
        case 'k': key = optarg; break;
        case 'h': delete_usage(stdout); return CLI_OK;
        default: delete_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir == !server || optind >= argc) {
        cli_error("delete", "%s", dbdir && server    ? "give --db DIR or --server URL, not both"
                                  : !dbdir && !server ? "--db DIR or --server URL is required"
                                                      : "no DOC_ID given");
        delete_usage(stderr);
        return CLI_USAGE;
    }
    int status = CLI_OK, deleted = 0;
    if (server) {
        cli_http h;
        if (cli_http_init(&h, "delete", server, key) != 0)
            return CLI_USAGE;
        status = erase ? erase_remote(&h, coll, argv + optind, argc - optind, &deleted)
                       : delete_remote(&h, coll, argv + optind, argc - optind, &deleted);
        printf("%s %d document%s\n", erase ? "erased" : "deleted", deleted, deleted == 1 ? "" : "s");
        return status;
    }
    rag_db *db = cli_open("delete", dbdir, 0);
    if (!db)
        return CLI_DATA;
    if (erase)
        status = erase_local(db, coll, argv + optind, argc - optind, &deleted);
    for (int i = optind; i < argc && !erase; i++) {
        int rc = rag_delete(db, coll, argv[i]);
        if (rc == RAG_OK)
            deleted++;
        else {
            cli_error("delete", "%s", rag_errmsg());
            status = CLI_DATA;
        }
    }
    if (rag_close(db) != RAG_OK) {
        cli_error("delete", "checkpoint failed: %s", rag_errmsg());
        status = CLI_DATA;
    }
    printf("%s %d document%s\n", erase ? "erased" : "deleted", deleted, deleted == 1 ? "" : "s");
    return status;
}
