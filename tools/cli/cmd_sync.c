/* cmd_sync.c - `ragcore sync` (a front door over rag_sync_paths: re-scan sources, optionally
 * on an interval) and `ragcore gc` (purge expired documents). */
#include "cli.h"

#include "ingest_report.h"
#include "policy_flags.h"
#include "ragcore.h"
#include "remote_ingest.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

/* First SIGINT/SIGTERM: finish the cycle, checkpoint and exit 0. A second one takes the
 * default action, so an operator (or a supervisor) can always force the exit. */
static void on_signal(int sig)
{
    stop_requested = 1;
    signal(sig, SIG_DFL);
}

static void sync_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore sync --db DIR [--collection NAME] [--json] [--watch SECONDS]\n"
            "                    [--objective SECONDS] [--allow-empty] [--erase] [policy flags]\n"
            "                    PATH...\n"
            "       ragcore sync --server URL [--key KEY] [same options] PATH...\n"
            "\n"
            "Re-scans sources and brings the collection in step: new documents are added,\n"
            "changed ones replaced (old chunks out, new chunks in, one transaction per batch),\n"
            "unchanged ones skipped without chunking or embedding (same size and mtime, or\n"
            "same content hash, after the collection's hygiene policy), and documents whose\n"
            "source under PATH vanished are deleted. Document ids are absolute paths, as for\n"
            "`ragcore ingest`, so PATH may be given relative or absolute. A file that still\n"
            "exists but fails to extract keeps its stored version (listed as kept). A PATH that\n"
            "does not exist, or that yields no document while the collection holds documents\n"
            "from it, is refused and nothing is deleted (--allow-empty deletes them).\n"
            "The store keeps the embedder it was created with.\n"
            "\n"
            "  --embedder NAME     embedder of a NEW store (an existing store keeps its own);\n"
            "                      a model name may end in :int8 or :fp32 (default int8)\n"
            "  --watch SECONDS     repeat every SECONDS and print a freshness line per cycle\n"
            "  --objective SECONDS freshness objective for the report (default 300)\n"
            "  --allow-empty       a PATH that held documents may now be empty (they are deleted)\n"
            "  --erase             an erasure: when a cycle returns, no byte of the replaced\n"
            "                      versions of changed documents nor of the deleted ones stays\n"
            "                      readable in any file of the store (see docs/privacy.md)\n"
            "  --verbose           list every added, deleted, filtered and duplicate document\n"
            "  --json              print the summary as JSON (one line per cycle)\n"
            "\n"
            "With --server the files are read and extracted here, sent to the server in\n"
            "batches that skip unchanged documents, and the documents under PATH whose files\n"
            "vanished are deleted through the server: the same ids, counts and summary as a\n"
            "sync of a local store.\n"
            CLI_HTTP_USAGE "\n");
    cli_policy_help(out);
}

/* One sync of the paths, in the store db or (db NULL) through the server rm; prints the
 * summary line or JSON. */
static int run_cycle(rag_db *db, cli_remote *rm, const rag_ingest_options *io, cli_report *rep,
                     char **paths, int npaths, int json, int64_t objective,
                     const rag_collection_options *pol)
{
    const char *coll = io->collection ? io->collection : RAG_DEFAULT_COLLECTION;
    rag_ingest_summary s;
    rag_freshness_info fi;
    memset(&fi, 0, sizeof fi);
    int rc;
    if (db) {
        rc = rag_sync_paths(db, (const char *const *)paths, (size_t)npaths, io, &s);
        if (rc != RAG_OK)
            cli_error("sync", "%s (batches stored before this point are kept)", rag_errmsg());
        if (rc == RAG_OK)
            rc = rag_collection_freshness(db, coll, objective, 0, &fi);
    } else {
        rc = cli_remote_ingest(rm, (const char *const *)paths, (size_t)npaths, io, 1, rep, &s);
        if (rc == RAG_OK && cli_remote_freshness(rm, objective, &fi) != 0)
            rc = RAG_EIO;
    }
    if (rc != RAG_OK)
        return CLI_DATA;
    uint64_t errors = s.skipped + s.failed;
    uint64_t added = s.documents - s.replaced;
    if (json) {
        json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, "
                              "s:I}",
                              "added", (json_int_t)added, "updated", (json_int_t)s.replaced,
                              "unchanged", (json_int_t)s.unchanged, "deleted",
                              (json_int_t)s.deleted, "kept", (json_int_t)s.kept, "chunks",
                              (json_int_t)s.chunks, "errors", (json_int_t)errors, "seconds",
                              s.seconds, "documents", (json_int_t)fi.documents, "newest_source",
                              (json_int_t)fi.newest_source, "oldest_source",
                              (json_int_t)fi.oldest_source, "last_sync", (json_int_t)fi.last_sync,
                              "stale", (json_int_t)fi.stale, "objective",
                              (json_int_t)fi.objective);
        if (o)
            cli_report_json(rep, o, &s, pol, io->strip_boilerplate);
        char *t = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (t)
            printf("%s\n", t);
        free(t);
        json_decref(o);
    } else {
        char when[32];
        time_t t = (time_t)fi.last_sync;
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        printf("sync %s: %llu added, %llu updated, %llu unchanged, %llu deleted, %llu kept, "
               "%llu errors in %.2fs | freshness: %llu documents, newest source %llds old, %llu "
               "older than %llds\n",
               when, (unsigned long long)added, (unsigned long long)s.replaced,
               (unsigned long long)s.unchanged, (unsigned long long)s.deleted,
               (unsigned long long)s.kept, (unsigned long long)errors, s.seconds,
               (unsigned long long)fi.documents,
               fi.documents ? (long long)(time(NULL) - fi.newest_source) : 0LL,
               (unsigned long long)fi.stale, (long long)fi.objective);
        if (rep->verbose || s.skipped || s.kept || s.filtered || s.dup_skipped || s.pii_documents)
            cli_report_text(rep, &s, pol, io->strip_boilerplate);
    }
    fflush(stdout);
    return errors ? CLI_DATA : CLI_OK;
}

int cmd_sync(int argc, char **argv)
{
    enum { O_ALLOW = 256, O_VERB, O_SERVER, O_KEY, O_ERASE };
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},    {"collection", required_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},        {"watch", required_argument, 0, 'w'},
        {"objective", required_argument, 0, 'o'}, {"embedder", required_argument, 0, 'e'},
        {"allow-empty", no_argument, 0, O_ALLOW}, {"verbose", no_argument, 0, O_VERB},
        {"help", no_argument, 0, 'h'},        {"server", required_argument, 0, O_SERVER},
        {"key", required_argument, 0, O_KEY}, {"erase", no_argument, 0, O_ERASE},
        CLI_POLICY_LONGOPTS,
        {0, 0, 0, 0}};
    const char *dbdir = NULL, *server = NULL, *key = NULL;
    int json = 0, verbose = 0, opt;
    long watch = 0;
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.store_key_file = cli_key_file;
    rag_ingest_options io;
    rag_ingest_options_init(&io);
    cli_policy pf;
    cli_policy_init(&pf);
    int64_t objective = 300;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:jw:o:e:h", longopts, NULL)) != -1) {
        int p = cli_policy_flag(&pf, "sync", opt, optarg);
        if (p < 0)
            return CLI_USAGE;
        if (p > 0)
            continue;
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'e': oo.embedder = optarg; break;
        case 'c': io.collection = optarg; break;
        case 'j': json = 1; break;
        case O_ALLOW: io.allow_empty = 1; break;
        case O_ERASE: io.erase = 1; break;
        case O_VERB: verbose = 1; break;
        case O_SERVER: server = optarg; break;
        case O_KEY: key = optarg; break;
        case 'w': {
            char *end;
            watch = strtol(optarg, &end, 10);
            if (*end || watch < 1) {
                cli_error("sync", "--watch needs a positive number of seconds, got '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        }
        case 'o': {
            char *end;
            objective = strtoll(optarg, &end, 10);
            if (*end || objective < 1) {
                cli_error("sync", "--objective needs a positive number of seconds, got '%s'",
                          optarg);
                return CLI_USAGE;
            }
            break;
        }
        case 'h': sync_usage(stdout); return CLI_OK;
        default: sync_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir == !server || optind >= argc) {
        cli_error("sync", "%s", optind >= argc  ? "no PATH to sync"
                                : dbdir && server ? "give --db DIR or --server URL, not both"
                                                  : "--db DIR or --server URL is required");
        sync_usage(stderr);
        return CLI_USAGE;
    }
    if (cli_policy_finish(&pf, "sync") != 0)
        return CLI_USAGE;
    for (int i = optind; i < argc; i++)
        if (access(argv[i], F_OK) != 0) {
            /* A vanished path would delete everything synced from it: refuse instead. */
            cli_error("sync", "'%s' does not exist (nothing synced)", argv[i]);
            return CLI_DATA;
        }
    rag_db *db = NULL;
    cli_remote rm;
    const char *coll = io.collection ? io.collection : RAG_DEFAULT_COLLECTION;
    rag_collection_options pol = pf.opts;
    if (server) {
        int orc = cli_remote_open(&rm, "sync", server, key, coll, &pf, &pol);
        if (orc != CLI_OK)
            return orc;
    } else {
        oo.default_collection = &pf.opts;
        int orc = rag_open(dbdir, &oo, &db);
        if (orc != RAG_OK) {
            cli_open_error("sync", orc);
            return orc == RAG_EMISMATCH ? CLI_USAGE : CLI_DATA;
        }
        int prc = rag_collection_options_get(db, coll, &pol);
        if (prc == RAG_OK && cli_policy_check(&pf, "sync", dbdir, coll, &pol) != 0) {
            rag_close(db);
            return CLI_USAGE;
        }
        if (prc == RAG_ENOTFOUND)
            pol = pf.opts;
    }
    cli_report rep;
    memset(&rep, 0, sizeof rep);
    rep.cmd = "sync";
    rep.quiet = 1;
    rep.verbose = verbose;
    io.on_event = cli_report_event;
    io.user = &rep;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int status;
    for (;;) {
        status = run_cycle(db, &rm, &io, &rep, argv + optind, argc - optind, json, objective,
                           &pol);
        cli_report_free(&rep);
        if (!watch || stop_requested || status == CLI_DATA)
            break;
        for (long s = 0; s < watch && !stop_requested; s++)
            sleep(1);
        if (stop_requested)
            break;
    }
    if (rag_close(db) != RAG_OK) {
        cli_error("sync", "checkpoint failed: %s", rag_errmsg());
        status = CLI_DATA;
    }
    return status;
}

static void gc_usage(FILE *out)
{
    fprintf(out, "usage: ragcore gc --db DIR [--collection NAME] [--json]\n\n"
                 "Deletes documents whose valid_until (TTL) has passed.\n");
}

int cmd_gc(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"collection", required_argument, 0, 'c'},
                                             {"json", no_argument, 0, 'j'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dbdir = NULL, *coll = NULL;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:jh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'c': coll = optarg; break;
        case 'j': json = 1; break;
        case 'h': gc_usage(stdout); return CLI_OK;
        default: gc_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir || optind != argc) {
        cli_error("gc", "%s", !dbdir ? "--db DIR is required" : "unexpected argument");
        gc_usage(stderr);
        return CLI_USAGE;
    }
    rag_db *db = cli_open("gc", dbdir, 0);
    if (!db)
        return CLI_DATA;
    uint64_t purged = 0;
    int rc = rag_gc(db, coll, 0, &purged);
    if (rc != RAG_OK)
        cli_error("gc", "%s", rag_errmsg());
    else if (json)
        printf("{\"purged\":%llu}\n", (unsigned long long)purged);
    else
        printf("purged %llu expired document%s\n", (unsigned long long)purged,
               purged == 1 ? "" : "s");
    if (rag_close(db) != RAG_OK && rc == RAG_OK) {
        cli_error("gc", "checkpoint failed: %s", rag_errmsg());
        rc = RAG_EIO;
    }
    return rc == RAG_OK ? CLI_OK : CLI_DATA;
}
