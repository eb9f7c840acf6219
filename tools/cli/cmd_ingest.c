/* cmd_ingest.c - `ragcore ingest`: a front door over rag_ingest_paths (the library extracts,
 * applies the collection's hygiene policy, chunks, embeds and stores in batches), with
 * progress and a summary that counts every decision. */
#include "cli.h"

#include "ingest_report.h"
#include "policy_flags.h"
#include "ragcore.h"
#include "cluster_ingest.h"
#include "remote_ingest.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_GLOBS 64

static void ingest_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore ingest --db DIR [--collection NAME] [--embedder NAME] [options] PATH...\n"
            "       ragcore ingest --server URL [--key KEY] [--collection NAME] [options] PATH...\n"
            "       ragcore ingest --cluster URL [--workers N] [--collection NAME] [options] PATH...\n"
            "\n"
            "Stores files, directories (recursive) and JSONL corpora (.jsonl, .jsonl.gz) in the\n"
            "store DIR. Files: .txt (UTF-8, or UTF-16 with BOM), .md/.markdown (headings give each\n"
            "chunk its section path; YAML front matter becomes the document's metadata and is not\n"
            "indexed, its title: the title), .html/.htm/.xhtml (visible text; headings kept as\n"
            "Markdown headings; scripts, styles, navigation dropped), .pdf (text per page; metadata\n"
            "{\"pages\":[offsets]} gives the page of a chunk's start). A file's document id is its\n"
            "absolute path (the same whether PATH is given relative or absolute). JSONL: one\n"
            "object per line with _id (or id) and text; title, source_mtime (or mtime),\n"
            "valid_until (unix seconds) and format (text|markdown) are read too; \"metadata\" (an\n"
            "object) and EVERY OTHER FIELD become the document's metadata (filterable in search).\n"
            "Binary files, unknown encodings, encrypted or image-only PDFs and formats that are\n"
            "not read (.docx, .xlsx, .pptx, images, archives: \"unsupported format\") are listed\n"
            "with the reason and skipped. An existing document id is replaced. Bad files or lines\n"
            "are reported and skipped; the rest is stored (exit status 2 when any was skipped).\n"
            "\n"
            "  --db DIR            store directory (created when absent)\n"
            "  --collection NAME   collection (default: default)\n"
            "  --embedder NAME     embedder of a new store: hash, hash-<dim>, or a model name\n"
            "                      [:int8|:fp32] (encoder precision; default int8, or\n"
            "                      $RAGCORE_PRECISION); an existing store keeps its own\n"
            "  --index SPEC        FAISS index spec of a new store (default HNSW32)\n"
            "  --ef-construction N HNSW build depth of these inserts (default 40): higher\n"
            "                      gives better recall per search cost, slower ingest\n"
            "  --chunk-tokens N    target chunk size in tokens (default 256)\n"
            "  --overlap N         overlap between chunks in tokens (default 32)\n"
            "  --include GLOB      only files whose name matches (repeatable)\n"
            "  --exclude GLOB      skip files or paths that match (repeatable)\n"
            "  --metadata KEY=VALUE  metadata of every document (repeatable; a document's own\n"
            "                      keys win); VALUE is a JSON number, true, false or null when it\n"
            "                      reads as one, else a string\n"
            "  --batch N           documents per transaction (default 256)\n"
            "  --erase             an erasure: when the command returns, no byte of the versions\n"
            "                      it replaced stays readable in any file of the store\n"
            "  --strip-boilerplate remove lines found in >= 50%% of (and >= 3) documents of one\n"
            "                      directory or JSONL file (reads the corpus twice)\n"
            "  --dry-run           report what would be extracted, filtered, deduplicated and\n"
            "                      masked; opens no store and stores nothing (--db is optional;\n"
            "                      the flags' policy applies, duplicates within the run only;\n"
            "                      hash placeholders use a throwaway key)\n"
            "  --json              print the summary as JSON\n"
            "  --quiet             no progress output\n"
            "  --verbose           list every duplicate, filtered, dropped and masked document\n"
            "\n"
            "With --server the files are read and extracted here and the documents sent to the\n"
            "server in batches (the server's collection policy applies; store options such as\n"
            "--embedder, --index and --chunk-tokens are the server's; not with --dry-run or\n"
            "--strip-boilerplate). The summary is the same as for a local store.\n"
            CLI_HTTP_USAGE
            "\n"
            "With --cluster URL (a cluster's HAProxy or one of its routers; docs/cluster.md) the\n"
            "documents are extracted here and posted in batches (--batch, default 64) by\n"
            "--workers N parallel requests (default 2, 1..64) to the routers, which chunk,\n"
            "embed and append them to the shard logs; a batch is retried with the same request\n"
            "id, so it is stored once. The collection must exist in the cluster; its settings\n"
            "are the cluster's. The summary counts what the routers acknowledged.\n"
            "  --cluster URL  ingest into the cluster behind URL\n"
            "  --workers N    parallel requests of --cluster\n\n");
    cli_policy_help(out);
}

/* Adds KEY=VALUE to the metadata object (a JSON scalar when VALUE reads as one). */
static int add_metadata(json_t *meta, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        cli_error("ingest", "--metadata expects KEY=VALUE, got '%s'", kv);
        return -1;
    }
    char *key = strndup(kv, (size_t)(eq - kv));
    const char *val = eq + 1;
    json_t *v = json_loads(val, JSON_DECODE_ANY, NULL);
    if (v && (json_is_object(v) || json_is_array(v) || json_is_string(v))) {
        json_decref(v); /* structures and quoted strings: the text itself */
        v = NULL;
    }
    if (!v)
        v = json_string(val);
    int rc = key && v && json_object_set_new(meta, key, v) == 0 ? 0 : -1;
    if (rc)
        cli_error("ingest", "--metadata '%s': value is not valid UTF-8 text", kv);
    free(key);
    return rc;
}

/* Prints the summary line(s) of the run. */
static void print_summary(const cli_report *rep, const rag_ingest_summary *s,
                          const rag_collection_options *pol, int strip, int json)
{
    uint64_t errors = s->skipped + s->failed;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "documents", json_integer((json_int_t)s->documents));
        json_object_set_new(o, "replaced", json_integer((json_int_t)s->replaced));
        json_object_set_new(o, "chunks", json_integer((json_int_t)s->chunks));
        json_object_set_new(o, "duplicate_chunks", json_integer((json_int_t)s->duplicate_chunks));
        json_object_set_new(o, "bytes", json_integer((json_int_t)s->bytes));
        json_object_set_new(o, "errors", json_integer((json_int_t)errors));
        json_object_set_new(o, "elapsed_s", json_real(s->seconds));
        json_object_set_new(o, "dry_run", json_boolean(rep->dry_run));
        cli_report_json(rep, o, s, pol, strip);
        char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (t)
            printf("%s\n", t);
        free(t);
        json_decref(o);
        return;
    }
    double el = s->seconds;
    if (rep->dry_run)
        printf("dry run: would ingest %llu documents, ~%llu chunks (estimated), %.2f MB; "
               "%llu errors skipped; nothing was stored\n",
               (unsigned long long)s->documents, (unsigned long long)s->chunks, s->bytes / 1e6,
               (unsigned long long)errors);
    else
        printf("ingested %llu documents (%llu replaced), %llu chunks, %llu duplicate chunks, "
               "%llu errors skipped, %.2f MB in %.2fs (%.0f docs/s, %.0f chunks/s)\n",
               (unsigned long long)s->documents, (unsigned long long)s->replaced,
               (unsigned long long)s->chunks, (unsigned long long)s->duplicate_chunks,
               (unsigned long long)errors, s->bytes / 1e6, el, el > 0 ? s->documents / el : 0,
               el > 0 ? s->chunks / el : 0);
    cli_report_text(rep, s, pol, strip);
}

/* ingest --server: the run through cli_remote_ingest, the same summary. Returns the exit
 * status. */
static int ingest_remote(const char *server, const char *key, const char *coll,
                         const cli_policy *pf, rag_ingest_options *io, cli_report *rep, int json,
                         char **paths, int npaths)
{
    cli_remote rm;
    rag_collection_options applied;
    rag_ingest_summary sum;
    int status = cli_remote_open(&rm, "ingest", server, key, coll, pf, &applied);
    if (status != CLI_OK)
        return status;
    int rc = cli_remote_ingest(&rm, (const char *const *)paths, (size_t)npaths, io, 0, rep, &sum);
    cli_report_progress_end(rep);
    print_summary(rep, &sum, &applied, 0, json);
    return rc != RAG_OK || sum.skipped || sum.failed ? CLI_DATA : CLI_OK;
}

/* ingest --cluster: the run through cli_cluster_ingest, the same summary. Returns the exit
 * status. */
static int ingest_cluster(const char *url, const char *key, const char *coll, int workers,
                          rag_ingest_options *io, cli_report *rep, int json, char **paths,
                          int npaths)
{
    rag_collection_options applied;
    rag_collection_options_init(&applied);
    rag_ingest_summary sum;
    int rc = cli_cluster_ingest(url, key, coll, workers, (const char *const *)paths,
                                (size_t)npaths, io, rep, &sum);
    cli_report_progress_end(rep);
    if (rc == RAG_EINVAL)
        return CLI_USAGE;
    print_summary(rep, &sum, &applied, 0, json);
    return rc != RAG_OK || sum.skipped || sum.failed ? CLI_DATA : CLI_OK;
}

int cmd_ingest(int argc, char **argv)
{
    enum { O_STRIP = 256, O_DRY, O_VERB, O_EFC, O_META, O_SERVER, O_KEY, O_CLUSTER, O_WORKERS,
           O_ERASE };
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},      {"collection", required_argument, 0, 'c'},
        {"embedder", required_argument, 0, 'e'}, {"index", required_argument, 0, 'x'},
        {"chunk-tokens", required_argument, 0, 't'}, {"overlap", required_argument, 0, 'o'},
        {"include", required_argument, 0, 'i'}, {"exclude", required_argument, 0, 'X'},
        {"batch", required_argument, 0, 'b'},   {"json", no_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"strip-boilerplate", no_argument, 0, O_STRIP}, {"dry-run", no_argument, 0, O_DRY},
        {"verbose", no_argument, 0, O_VERB},    {"ef-construction", required_argument, 0, O_EFC},
        {"metadata", required_argument, 0, O_META},
        {"server", required_argument, 0, O_SERVER}, {"key", required_argument, 0, O_KEY},
        {"cluster", required_argument, 0, O_CLUSTER},
        {"workers", required_argument, 0, O_WORKERS},
        {"erase", no_argument, 0, O_ERASE},     CLI_POLICY_LONGOPTS,
        {0, 0, 0, 0}};
    const char *dbdir = NULL, *include[MAX_GLOBS], *exclude[MAX_GLOBS];
    const char *server = NULL, *key = NULL, *cluster = NULL;
    int workers = 2;
    size_t ninc = 0, nexc = 0;
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.store_key_file = cli_key_file;
    rag_ingest_options io;
    rag_ingest_options_init(&io);
    cli_policy pf;
    cli_policy_init(&pf);
    cli_report rep;
    memset(&rep, 0, sizeof rep);
    rep.cmd = "ingest";
    int json = 0, status = CLI_USAGE, opt;
    long long llv;
    json_t *meta = json_object();
    char *meta_text = NULL;
    rag_db *db = NULL;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:e:x:t:o:i:X:b:jqh", longopts, NULL)) != -1) {
        int p = cli_policy_flag(&pf, "ingest", opt, optarg);
        if (p < 0)
            goto cleanup;
        if (p > 0)
            continue;
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'c': io.collection = optarg; break;
        case 'e': oo.embedder = optarg; break;
        case 'x': oo.index_spec = optarg; break;
        case 't': oo.chunk_tokens = atoi(optarg); break;
        case 'o': oo.chunk_overlap = atoi(optarg); if (!oo.chunk_overlap) oo.chunk_overlap = -1; break;
        case 'i':
            if (ninc == MAX_GLOBS) { cli_error("ingest", "too many --include"); goto cleanup; }
            include[ninc++] = optarg;
            break;
        case 'X':
            if (nexc == MAX_GLOBS) { cli_error("ingest", "too many --exclude"); goto cleanup; }
            exclude[nexc++] = optarg;
            break;
        case 'b':
            if (cli_parse_int(optarg, 1, 100000, &llv) != 0) {
                cli_error("ingest", "--batch must be 1..100000");
                goto cleanup;
            }
            io.batch_documents = (size_t)llv;
            break;
        case 'j': json = 1; break;
        case 'q': rep.quiet = 1; break;
        case 'h': ingest_usage(stdout); status = CLI_OK; goto cleanup;
        case O_EFC:
            if (cli_parse_int(optarg, 1, 100000, &llv) != 0) {
                cli_error("ingest", "--ef-construction must be 1..100000, got '%s'", optarg);
                goto cleanup;
            }
            oo.hnsw_ef_construction = (int)llv;
            break;
        case O_META:
            if (add_metadata(meta, optarg) != 0)
                goto cleanup;
            break;
        case O_STRIP: io.strip_boilerplate = 1; break;
        case O_DRY: io.dry_run = 1; break;
        case O_ERASE: io.erase = 1; break;
        case O_VERB: rep.verbose = 1; break;
        case O_SERVER: server = optarg; break;
        case O_KEY: key = optarg; break;
        case O_CLUSTER: cluster = optarg; break;
        case O_WORKERS:
            if (cli_parse_int(optarg, 1, 64, &llv) != 0) {
                cli_error("ingest", "--workers must be 1..64, got '%s'", optarg);
                goto cleanup;
            }
            workers = (int)llv;
            break;
        default: ingest_usage(stderr); goto cleanup;
        }
    }
    if ((!dbdir && !io.dry_run && !server && !cluster) || optind >= argc) {
        cli_error("ingest", "%s", optind >= argc ? "no PATH to ingest"
                                                 : "--db DIR, --server URL or --cluster URL is "
                                                   "required");
        ingest_usage(stderr);
        goto cleanup;
    }
    if (server && (dbdir || io.dry_run || io.strip_boilerplate)) {
        cli_error("ingest", "--server does not go with %s", dbdir ? "--db (give one of them)"
                                                          : io.dry_run ? "--dry-run (it needs no store)"
                                                                       : "--strip-boilerplate");
        goto cleanup;
    }
    if (cluster &&
        (dbdir || server || io.dry_run || io.strip_boilerplate || io.erase || pf.given)) {
        cli_error("ingest", "--cluster does not go with %s",
                  dbdir ? "--db" : server ? "--server" : io.dry_run ? "--dry-run"
                  : io.strip_boilerplate ? "--strip-boilerplate"
                  : io.erase ? "--erase (a cluster's replicas do not erase yet)"
                                         : "policy flags (the cluster's collection has its own)");
        goto cleanup;
    }
    if (oo.chunk_tokens < 0 || (oo.chunk_tokens && oo.chunk_tokens < 8)) {
        cli_error("ingest", "--chunk-tokens must be at least 8");
        goto cleanup;
    }
    if (cli_policy_finish(&pf, "ingest") != 0)
        goto cleanup;
    if (json_object_size(meta) && !(meta_text = json_dumps(meta, JSON_COMPACT))) {
        cli_error("ingest", "out of memory");
        goto cleanup;
    }
    const char *coll = io.collection ? io.collection : RAG_DEFAULT_COLLECTION;
    rag_collection_options applied = pf.opts;
    io.include = ninc ? include : NULL;
    io.n_include = ninc;
    io.exclude = nexc ? exclude : NULL;
    io.n_exclude = nexc;
    io.metadata_json = meta_text;
    rep.tty = isatty(2) && !rep.quiet;
    if (cluster) {
        status = ingest_cluster(cluster, key, coll, workers, &io, &rep, json, argv + optind,
                                argc - optind);
        goto cleanup;
    }
    if (server) {
        status = ingest_remote(server, key, coll, &pf, &io, &rep, json, argv + optind,
                               argc - optind);
        goto cleanup;
    }
    if (!io.dry_run) {
        oo.default_collection = &pf.opts; /* the policy of a collection this run creates */
        int rc = rag_open(dbdir, &oo, &db);
        if (rc != RAG_OK) {
            cli_open_error("ingest", rc);
            status = rc == RAG_EINVAL || rc == RAG_EMISMATCH ? CLI_USAGE : CLI_DATA;
            goto cleanup;
        }
        rc = rag_collection_options_get(db, coll, &applied);
        applied.language = NULL; /* owned by the handle, which is closed before the summary */
        if (rc == RAG_OK && cli_policy_check(&pf, "ingest", dbdir, coll, &applied) != 0)
            goto cleanup;
        if (rc == RAG_ENOTFOUND)
            applied = pf.opts;
        else if (rc != RAG_OK) {
            cli_error("ingest", "%s", rag_errmsg());
            status = CLI_DATA;
            goto cleanup;
        }
    }
    io.policy = &pf.opts;
    io.on_event = cli_report_event;
    io.on_progress = cli_report_progress;
    io.user = &rep;
    rep.dry_run = io.dry_run;
    rag_ingest_summary sum;
    int rc = rag_ingest_paths(db, (const char *const *)argv + optind, (size_t)(argc - optind), &io,
                              &sum);
    cli_report_progress_end(&rep);
    if (rc != RAG_OK)
        cli_error("ingest", "%s: %s (documents committed before are kept)", rag_strerror(rc),
                  rag_errmsg());
    int crc = rag_close(db);
    db = NULL;
    if (crc != RAG_OK)
        cli_error("ingest", "checkpoint failed: %s (data is committed; the index is rebuilt "
                  "on next open)", rag_errmsg());
    print_summary(&rep, &sum, &applied, io.strip_boilerplate, json);
    status = rc != RAG_OK || crc != RAG_OK || sum.skipped || sum.failed ? CLI_DATA : CLI_OK;
cleanup:
    rag_close(db);
    cli_report_free(&rep);
    json_decref(meta);
    free(meta_text);
    return status;
}
