/* cmd_sync.c - `ragcore sync` (re-scan sources, optionally on an interval) and `ragcore gc`
 * (purge expired documents). */
#include "cli.h"

#include "corpus.h"
#include "ragcore.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

typedef struct sync_walk {
    rag_sync *sync;
    uint64_t errors;
    int rc;
} sync_walk;

static int sync_emit(void *user, const rag_document *d)
{
    sync_walk *w = user;
    int rc = rag_sync_document(w->sync, d, NULL);
    if (rc == RAG_EINVAL || rc == RAG_EPARSE || rc == RAG_EENCODING) {
        fprintf(stderr, "ragcore sync: %s: %s; skipped\n", d->source ? d->source : d->id,
                rag_errmsg());
        w->errors++;
        return RAG_OK;
    }
    if (rc != RAG_OK)
        w->rc = rc;
    return rc;
}

static void sync_err(void *user, const char *where, int rc, const char *msg)
{
    sync_walk *w = user;
    (void)rc;
    w->errors++;
    fprintf(stderr, "ragcore sync: %s: %s\n", where, msg);
}

static void sync_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore sync --db DIR [--collection NAME] [--json] [--watch SECONDS]\n"
            "                    [--objective SECONDS] PATH...\n"
            "\n"
            "Re-scans sources and brings the collection in step: new documents are added,\n"
            "changed ones replaced (old chunks out, new chunks in, one transaction per batch),\n"
            "unchanged ones skipped without chunking or embedding (same size and mtime, or\n"
            "same content hash), and documents whose source under PATH vanished are deleted.\n"
            "The store keeps the embedder it was created with.\n"
            "\n"
            "  --embedder NAME     embedder of a NEW store (an existing store keeps its own);\n"
            "                      a model name may end in :int8 or :fp32 (default int8)\n"
            "  --watch SECONDS     repeat every SECONDS and print a freshness line per cycle\n"
            "  --objective SECONDS freshness objective for the report (default 300)\n"
            "  --json              print the summary as JSON (one line per cycle)\n");
}

/* Source prefixes covered by the PATH arguments (absolute paths as the walker records). */
static char **prefixes_of(char **paths, int n)
{
    char **out = calloc((size_t)n, sizeof *out);
    for (int i = 0; out && i < n; i++) {
        char buf[PATH_MAX];
        out[i] = strdup(realpath(paths[i], buf) ? buf : paths[i]);
    }
    return out;
}

static int run_cycle(rag_db *db, const char *coll, char **paths, int npaths, int json,
                     int64_t objective)
{
    rag_sync *sync = NULL;
    int rc = rag_sync_begin(db, coll, &sync);
    if (rc != RAG_OK) {
        cli_error("sync", "%s", rag_errmsg());
        return CLI_DATA;
    }
    sync_walk w = {sync, 0, RAG_OK};
    rag_corpus_options co;
    memset(&co, 0, sizeof co);
    rc = rag_corpus_walk((const char *const *)paths, (size_t)npaths, &co, sync_emit, sync_err, &w);
    rag_sync_stats st;
    memset(&st, 0, sizeof st);
    char **prefixes = prefixes_of(paths, npaths);
    /* Deletion needs a complete scan: skip it when the walk itself failed. */
    if (rc == RAG_OK)
        rc = rag_sync_finish(sync, (const char *const *)prefixes, prefixes ? (size_t)npaths : 0,
                             &st);
    for (int i = 0; prefixes && i < npaths; i++)
        free(prefixes[i]);
    free(prefixes);
    if (rc != RAG_OK)
        cli_error("sync", "%s (batches stored before this point are kept)", rag_errmsg());
    rag_sync_free(sync);
    rag_freshness_info fi;
    memset(&fi, 0, sizeof fi);
    if (rc == RAG_OK)
        rc = rag_collection_freshness(db, coll, objective, 0, &fi);
    if (rc != RAG_OK)
        return CLI_DATA;
    if (json) {
        printf("{\"added\":%llu,\"updated\":%llu,\"unchanged\":%llu,\"deleted\":%llu,"
               "\"chunks\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"documents\":%llu,"
               "\"newest_source\":%lld,\"oldest_source\":%lld,\"last_sync\":%lld,"
               "\"stale\":%llu,\"objective\":%lld}\n",
               (unsigned long long)st.added, (unsigned long long)st.updated,
               (unsigned long long)st.unchanged, (unsigned long long)st.deleted,
               (unsigned long long)st.chunks, (unsigned long long)w.errors, st.seconds,
               (unsigned long long)fi.documents, (long long)fi.newest_source,
               (long long)fi.oldest_source, (long long)fi.last_sync,
               (unsigned long long)fi.stale, (long long)fi.objective);
    } else {
        char when[32];
        time_t t = (time_t)fi.last_sync;
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        printf("sync %s: %llu added, %llu updated, %llu unchanged, %llu deleted, %llu errors "
               "in %.2fs | freshness: %llu documents, newest source %llds old, %llu older than "
               "%llds\n",
               when, (unsigned long long)st.added, (unsigned long long)st.updated,
               (unsigned long long)st.unchanged, (unsigned long long)st.deleted,
               (unsigned long long)w.errors, st.seconds, (unsigned long long)fi.documents,
               fi.documents ? (long long)(time(NULL) - fi.newest_source) : 0LL,
               (unsigned long long)fi.stale, (long long)fi.objective);
    }
    fflush(stdout);
    return w.errors ? CLI_DATA : CLI_OK;
}

int cmd_sync(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},    {"collection", required_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},        {"watch", required_argument, 0, 'w'},
        {"objective", required_argument, 0, 'o'}, {"embedder", required_argument, 0, 'e'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *dbdir = NULL, *coll = RAG_DEFAULT_COLLECTION;
    int json = 0, opt;
    long watch = 0;
    rag_open_options oo;
    rag_open_options_init(&oo);
    int64_t objective = 300;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:jw:o:e:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'e': oo.embedder = optarg; break;
        case 'c': coll = optarg; break;
        case 'j': json = 1; break;
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
    if (!dbdir || optind >= argc) {
        cli_error("sync", "%s", !dbdir ? "--db DIR is required" : "no PATH to sync");
        sync_usage(stderr);
        return CLI_USAGE;
    }
    for (int i = optind; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            /* A vanished path would delete everything synced from it: refuse instead. */
            cli_error("sync", "'%s' does not exist (nothing synced)", argv[i]);
            return CLI_DATA;
        }
    }
    rag_db *db = NULL;
    int orc = rag_open(dbdir, &oo, &db);
    if (orc != RAG_OK) {
        cli_open_error("sync", orc);
        return orc == RAG_EMISMATCH ? CLI_USAGE : CLI_DATA;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int status;
    for (;;) {
        status = run_cycle(db, coll, argv + optind, argc - optind, json, objective);
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
