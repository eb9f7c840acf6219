/* remote_ingest.c - ingest and sync through a running ragcore-server: local extraction,
 * batched upserts, the summary from the replies, deletion of vanished documents. */
#include "remote_ingest.h"

#include "cli.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A batch's JSON body stays well under the server's default 10 MiB body limit. */
#define BATCH_BYTES_MAX (6u << 20)
#define LIST_PAGE 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads a settings object ({"pii":"mask",...}) into o through rag_collection_option_set;
 * language is left NULL (its text would not outlive the reply). */
static void settings_from_json(json_t *settings, rag_collection_options *o)
{
    const char *key;
    json_t *v;
    rag_collection_options_init(o);
    json_object_foreach(settings, key, v) {
        char num[64];
        const char *text = json_string_value(v);
        if (json_is_integer(v))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        else if (json_is_number(v))
            snprintf(num, sizeof num, "%.17g", json_number_value(v));
        if (json_is_number(v))
            text = num;
        if (text && strcmp(key, "language") != 0)
            rag_collection_option_set(o, key, text);
    }
}

int cli_remote_open(cli_remote *rm, const char *cmd, const char *url, const char *key,
                    const char *collection, const cli_policy *pf,
                    rag_collection_options *applied)
{
    char err[2048];
    long status = 0;
    json_t *reply = NULL;
    int rc = CLI_DATA;
    memset(rm, 0, sizeof *rm);
    rm->cmd = cmd;
    rm->collection = collection;
    if (cli_http_init(&rm->http, cmd, url, key) != 0)
        return CLI_USAGE;
    char *esc = cli_http_escape(collection);
    if (!esc) {
        cli_error(cmd, "out of memory");
        return CLI_DATA;
    }
    snprintf(rm->path, sizeof rm->path, "/v1/collections/%s", esc);
    free(esc);
    if (cli_http_json(&rm->http, "GET", rm->path, NULL, &reply, &status, err, sizeof err) == 0) {
        settings_from_json(json_object_get(reply, "settings"), applied);
        rc = cli_policy_check(pf, cmd, url, collection, applied) == 0 ? CLI_OK : CLI_USAGE;
        goto cleanup;
    }
    if (status != 404) {
        cli_error(cmd, "%s", err);
        goto cleanup;
    }
    /* a new collection: created with the flags' policy, as a local ingest creates it */
    char *text = NULL;
    json_t *settings = rag_collection_options_json(&pf->opts, &text) == RAG_OK
                           ? json_loads(text, 0, NULL)
                           : NULL;
    rag_free(text);
    json_object_del(settings, "language"); /* the server's own */
    json_t *body = json_pack("{s:s,s:o}", "name", collection, "settings",
                             settings ? settings : json_object());
    int crc = cli_http_json(&rm->http, "POST", "/v1/collections", body, NULL, &status, err,
                            sizeof err);
    json_decref(body);
    *applied = pf->opts;
    if (crc == 0 || status == 409) {
        rc = CLI_OK;
    } else if (status == 403 && !pf->given) {
        fprintf(stderr, "ragcore %s: note: collection '%s' is created with the server's default "
                "settings (creating it with a policy needs an admin key)\n", cmd, collection);
        rag_collection_options_init(applied);
        rc = CLI_OK;
    } else {
        cli_error(cmd, "%s", err);
    }
cleanup:
    json_decref(reply);
    return rc;
}

/* ---- the run -------------------------------------------------------------------------- */

typedef struct run {
    cli_remote *rm;
    const rag_ingest_options *io;
    int sync;
    cli_report *rep;
    rag_ingest_summary *sum;
    json_t *batch;               /* documents not yet sent */
    size_t batch_bytes, batch_docs;
    json_t *seen;                /* sync: ids offered (an object used as a set) */
    char **roots;                /* sync: canonical paths of the roots */
    size_t nroots;
    uint64_t *root_docs;         /* documents (and failed files) offered under each root */
    json_t *protects;            /* sync: canonical paths of files that failed to extract */
    json_t *deferred;            /* sync: [{"doc","entry"}] skipped as duplicates: decided
                                  * again at the end when their canonical was not offered */
    int failed;                  /* a request failed (printed) */
    double t0;
} run;

/* Whether `source` lies under `prefix`, as a sync decides it: equal, or continuing with
 * '/' or '#' (a file in a directory, a record of a JSONL file). */
static int under_prefix(const char *source, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 0 || strncmp(source, prefix, n) != 0)
        return 0;
    return prefix[n - 1] == '/' || source[n] == '\0' || source[n] == '/' || source[n] == '#';
}

static void add_counts(rag_ingest_summary *s, json_t *c)
{
    static const struct {
        const char *name;
        size_t off;
    } F[] = {
#define F_(x) {#x, offsetof(rag_ingest_summary, x)}
        F_(seen),           F_(documents),          F_(replaced),          F_(unchanged),
        F_(chunks),         F_(duplicate_chunks),   F_(bytes),             F_(failed),
        F_(quality_checked), F_(filtered),          F_(filtered_too_short), F_(filtered_too_long),
        F_(filtered_symbols), F_(pii_documents),    F_(pii_dropped),       F_(dup_exact),
        F_(dup_near),       F_(dup_skipped),        F_(dup_flagged),       F_(dup_recorded),
        F_(stale_removed),  F_(toxicity_checked),   F_(toxicity_flagged),  F_(toxicity_dropped),
        F_(toxicity_dropped_wordlist),              F_(toxicity_dropped_classifier),
#undef F_
    };
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++)
        *(uint64_t *)((char *)s + F[i].off) +=
            (uint64_t)json_integer_value(json_object_get(c, F[i].name));
}

/* One entry of a reply's hygiene list as the library's event (for --verbose). */
static void replay_entry(run *r, json_t *x)
{
    const char *action = json_string_value(json_object_get(x, "action"));
    rag_ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.action = RAG_INGEST_STORED;
    for (int a = 0; action && a < RAG_INGEST_NACTIONS; a++)
        if (!strcmp(action, rag_ingest_action_name(a)))
            ev.action = (rag_ingest_action)a;
    const char *s;
    ev.id = (s = json_string_value(json_object_get(x, "id"))) ? s : "";
    ev.reason = (s = json_string_value(json_object_get(x, "reason"))) ? s : "";
    ev.canonical_id = (s = json_string_value(json_object_get(x, "duplicate_of"))) ? s : "";
    ev.duplicate_kind = (s = json_string_value(json_object_get(x, "duplicate_kind"))) ? s : "";
    ev.path = "";
    ev.similarity = json_number_value(json_object_get(x, "similarity"));
    ev.pii_found = (size_t)json_integer_value(json_object_get(x, "pii_found"));
    cli_report_event(r->rep, &ev);
}

/* The hygiene list of a reply to `batch`. In a sync, a document skipped as the duplicate
 * of another may be the new name of a file whose old name vanishes: it is kept aside
 * (r->deferred) and decided again once the vanished documents are deleted, as
 * rag_sync_paths does. */
static void replay_hygiene(run *r, json_t *list, json_t *batch)
{
    size_t i, k;
    json_t *x, *d;
    json_array_foreach(list, i, x) {
        const char *action = json_string_value(json_object_get(x, "action"));
        const char *id = json_string_value(json_object_get(x, "id"));
        json_t *doc = NULL;
        if (r->sync && r->deferred && action && !strcmp(action, "duplicate") && id)
            json_array_foreach(batch, k, d)
                if (!doc && !strcmp(json_string_value(json_object_get(d, "id")), id))
                    doc = d;
        if (doc)
            json_array_append_new(r->deferred, json_pack("{s:O,s:O}", "doc", doc, "entry", x));
        else
            replay_entry(r, x);
    }
}

/* Sends the pending batch. 0, or -1 after printing the server's answer. */
static int flush(run *r)
{
    if (json_array_size(r->batch) == 0)
        return 0;
    char err[2048], path[1100];
    json_t *reply = NULL;
    json_t *body = json_pack("{s:O,s:b}", "documents", r->batch, "skip_unchanged", r->sync);
    if (body && r->io->erase) /* sent only when asked: older servers refuse unknown fields */
        json_object_set_new(body, "erase", json_true());
    snprintf(path, sizeof path, "%s/documents", r->rm->path);
    int rc = body ? cli_http_json(&r->rm->http, "POST", path, body, &reply, NULL, err, sizeof err)
                  : -1;
    json_decref(body);
    if (rc != 0) {
        cli_error(r->rm->cmd, "%s (documents sent before are stored)", body ? err : "out of memory");
        r->failed = 1;
        return -1;
    }
    add_counts(r->sum, json_object_get(reply, "summary"));
    replay_hygiene(r, json_object_get(reply, "hygiene"), r->batch);
    json_decref(reply);
    json_array_clear(r->batch);
    r->batch_bytes = 0;
    rag_ingest_progress p = {0, 0, r->sum->documents, r->sum->chunks, now_s() - r->t0};
    cli_report_progress(r->rep, &p);
    return 0;
}

json_t *cli_document_json(const rag_document *d)
{
    size_t len = d->text_len == (size_t)-1 ? strlen(d->text) : d->text_len;
    json_t *o = json_pack("{s:s,s:s%}", "id", d->id, "text", d->text, len);
    if (!o)
        return NULL;
    if (d->title && *d->title)
        json_object_set_new(o, "title", json_string(d->title));
    if (d->source && *d->source)
        json_object_set_new(o, "source", json_string(d->source));
    if (d->metadata_json && *d->metadata_json)
        json_object_set_new(o, "metadata", json_loads(d->metadata_json, 0, NULL));
    if (d->format == RAG_FORMAT_MARKDOWN)
        json_object_set_new(o, "format", json_string("markdown"));
    if (d->source_mtime > 0)
        json_object_set_new(o, "source_mtime", json_integer(d->source_mtime));
    if (d->valid_until > 0)
        json_object_set_new(o, "valid_until", json_integer(d->valid_until));
    if (d->ttl_seconds > 0)
        json_object_set_new(o, "ttl_seconds", json_integer(d->ttl_seconds));
    return o;
}

/* rag_extract_paths's callback: the document joins the batch. */
static int on_document(void *user, const rag_document *d)
{
    run *r = user;
    json_t *o = cli_document_json(d);
    if (!o) {
        cli_error(r->rm->cmd, "%s: the document's text is not valid UTF-8", d->id);
        r->failed = 1;
        return 1;
    }
    if (r->sync) {
        json_object_set_new(r->seen, d->id, json_true());
        for (size_t i = 0; i < r->nroots; i++)
            if (d->source && under_prefix(d->source, r->roots[i]))
                r->root_docs[i]++;
    }
    size_t bytes = json_dumpb(o, NULL, 0, JSON_COMPACT) + 1;
    if (json_array_size(r->batch) > 0 && r->batch_bytes + bytes > BATCH_BYTES_MAX &&
        flush(r) != 0) {
        json_decref(o);
        return 1;
    }
    json_array_append_new(r->batch, o);
    r->batch_bytes += bytes;
    if (json_array_size(r->batch) >= r->batch_docs && flush(r) != 0)
        return 1;
    return 0;
}

/* Skipped files: reported, counted; in a sync the stored documents of a file that exists
 * but failed to extract are kept. */
static int on_event(void *user, const rag_ingest_event *ev)
{
    run *r = user;
    if (ev->action == RAG_INGEST_SKIPPED) {
        r->sum->skipped++;
        if ((unsigned)ev->skip_kind < RAG_SKIP_KINDS_MAX)
            r->sum->skipped_reasons[ev->skip_kind]++;
        char abs[PATH_MAX];
        if (r->sync && *ev->path && realpath(ev->path, abs)) {
            json_array_append_new(r->protects, json_string(abs));
            for (size_t i = 0; i < r->nroots; i++)
                if (under_prefix(abs, r->roots[i]))
                    r->root_docs[i]++; /* the root is not empty: it holds a file */
        }
    }
    return cli_report_event(r->rep, ev);
}

/* The stored version of a document whose file failed to extract is kept. */
static const char *protected_by(const run *r, const char *source)
{
    size_t i;
    json_t *x;
    json_array_foreach(r->protects, i, x) {
        const char *p = json_string_value(x);
        size_t n = strlen(p);
        if (!strncmp(source, p, n) && (source[n] == '\0' || source[n] == '#'))
            return p;
    }
    return NULL;
}

/* The documents of root `root` that the sync did not offer: appended to `gone` (ids);
 * those of protected files are reported as kept. 0, or -1 after printing. */
static int vanished(run *r, size_t root, json_t *gone)
{
    char *after = NULL;
    int rc = 0;
    json_t *filter = json_pack("{s:{s:s}}", "source", "$prefix", r->roots[root]);
    char *ftext = filter ? json_dumps(filter, JSON_COMPACT) : NULL;
    char *fesc = ftext ? cli_http_escape(ftext) : NULL;
    json_decref(filter);
    free(ftext);
    for (;;) {
        char path[8192], err[2048];
        char *aesc = after ? cli_http_escape(after) : NULL;
        json_t *reply = NULL;
        if (!fesc || (after && !aesc)) {
            cli_error(r->rm->cmd, "out of memory");
            free(aesc);
            rc = -1;
            break;
        }
        snprintf(path, sizeof path, "%s/documents?limit=%d&filter=%s%s%s", r->rm->path,
                 LIST_PAGE, fesc, aesc ? "&after=" : "", aesc ? aesc : "");
        free(aesc);
        if (cli_http_json(&r->rm->http, "GET", path, NULL, &reply, NULL, err, sizeof err) != 0) {
            cli_error(r->rm->cmd, "%s (nothing was deleted)", err);
            rc = -1;
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(reply, "documents"), i, d) {
            const char *id = json_string_value(json_object_get(d, "id"));
            const char *source = json_string_value(json_object_get(d, "source"));
            if (!id || !source || json_object_get(r->seen, id) ||
                !under_prefix(source, r->roots[root]))
                continue;
            const char *file = protected_by(r, source);
            if (file) {
                rag_ingest_event ev;
                memset(&ev, 0, sizeof ev);
                ev.action = RAG_INGEST_KEPT;
                ev.id = id;
                ev.path = file;
                ev.reason = "the file failed to extract";
                ev.canonical_id = ev.duplicate_kind = "";
                r->sum->kept++;
                cli_report_event(r->rep, &ev);
                continue;
            }
            json_array_append_new(gone, json_string(id));
        }
        free(after);
        const char *next = json_string_value(json_object_get(reply, "next"));
        after = next ? strdup(next) : NULL;
        json_decref(reply);
        if (!after)
            break;
    }
    free(after);
    free(fesc);
    return rc;
}

/* Reports document `id` as deleted. */
static void report_deleted(run *r, const char *id)
{
    rag_ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.action = RAG_INGEST_DELETED;
    ev.id = id;
    ev.path = ev.reason = ev.canonical_id = ev.duplicate_kind = "";
    cli_report_event(r->rep, &ev);
}

/* Sync's end with erasure: the vanished documents `gone` go in erasures of the server's
 * POST .../erase (10,000 ids per request, its limit). Frees gone and held. */
static int erase_gone(run *r, json_t *gone, size_t *held)
{
    char path[1100], err[2048] = "out of memory";
    int rc = 0;
    snprintf(path, sizeof path, "%s/erase", r->rm->path);
    for (size_t from = 0; rc == 0 && from < json_array_size(gone); from += 10000) {
        json_t *part = json_array(), *reply = NULL, *body = NULL;
        for (size_t k = from; part && k < json_array_size(gone) && k < from + 10000; k++)
            json_array_append(part, json_array_get(gone, k));
        rc = part && (body = json_pack("{s:O}", "ids", part))
                 ? cli_http_json(&r->rm->http, "POST", path, body, &reply, NULL, err, sizeof err)
                 : -1;
        if (rc != 0) {
            cli_error(r->rm->cmd, "%s", err);
        } else {
            r->sum->deleted += (uint64_t)json_integer_value(json_object_get(reply, "documents"));
            for (size_t k = 0; k < json_array_size(part); k++)
                report_deleted(r, json_string_value(json_array_get(part, k)));
        }
        json_decref(reply);
        json_decref(body);
        json_decref(part);
    }
    free(held);
    json_decref(gone);
    return rc;
}

/* Sync's end: deletes what vanished under the roots; an emptied root that held documents
 * is refused (nothing deleted) unless io->allow_empty. */
static int finish_sync(run *r)
{
    json_t *gone = json_array();
    size_t *held = calloc(r->nroots ? r->nroots : 1, sizeof *held);
    int rc = gone && held ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < r->nroots; i++) {
        size_t before = json_array_size(gone);
        rc = vanished(r, i, gone);
        held[i] = json_array_size(gone) - before;
    }
    for (size_t i = 0; rc == 0 && !r->io->allow_empty && i < r->nroots; i++)
        if (r->root_docs[i] == 0 && held[i] > 0) {
            cli_error(r->rm->cmd, "'%s' yielded no document while collection '%s' holds %zu "
                      "from it; nothing was deleted (allow an empty root to delete them: "
                      "--allow-empty)", r->roots[i], r->rm->collection, held[i]);
            rc = -1;
        }
    size_t i;
    json_t *x;
    if (rc == 0 && r->io->erase && json_array_size(gone) > 0)
        return erase_gone(r, gone, held);
    json_array_foreach(gone, i, x) {
        if (rc != 0)
            break;
        char *esc = cli_http_escape(json_string_value(x)), path[8192], err[2048];
        long status = 0;
        snprintf(path, sizeof path, "%s/documents/%s", r->rm->path, esc ? esc : "");
        int drc = esc ? cli_http_json(&r->rm->http, "DELETE", path, NULL, NULL, &status, err,
                                      sizeof err)
                      : -1;
        free(esc);
        if (drc != 0 && status != 404) { /* 404: deleted meanwhile */
            cli_error(r->rm->cmd, "%s", esc ? err : "out of memory");
            rc = -1;
            break;
        }
        if (drc == 0) {
            r->sum->deleted++;
            report_deleted(r, json_string_value(x));
        }
    }
    free(held);
    json_decref(gone);
    return rc;
}

/* Sync's last step: the documents skipped as duplicates of documents this sync did not
 * offer are sent again now that those are deleted (their first decision is taken out of
 * the counts); duplicates of offered documents stay duplicates. 0, or -1 after printing. */
static int retry_deferred(run *r)
{
    json_t *again = r->deferred;
    size_t i;
    json_t *x;
    r->deferred = NULL; /* a second decision is final */
    json_array_foreach(again, i, x) {
        json_t *entry = json_object_get(x, "entry");
        const char *of = json_string_value(json_object_get(entry, "duplicate_of"));
        if (of && json_object_get(r->seen, of)) {
            replay_entry(r, entry);
            continue;
        }
        const char *kind = json_string_value(json_object_get(entry, "duplicate_kind"));
        uint64_t *counts[] = {&r->sum->seen, &r->sum->dup_skipped, &r->sum->dup_recorded,
                              kind && !strcmp(kind, "near") ? &r->sum->dup_near
                                                            : &r->sum->dup_exact};
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
            if (*counts[c])
                (*counts[c])--;
        json_array_append(r->batch, json_object_get(x, "doc"));
        if (json_array_size(r->batch) >= r->batch_docs && flush(r) != 0)
            break;
    }
    json_decref(again);
    return r->failed || flush(r) != 0 ? -1 : 0;
}

int cli_remote_ingest(cli_remote *rm, const char *const *paths, size_t n,
                      const rag_ingest_options *io, int sync, cli_report *rep,
                      rag_ingest_summary *sum)
{
    run r;
    memset(&r, 0, sizeof r);
    rag_ingest_summary_init(sum);
    r.rm = rm;
    r.io = io;
    r.sync = sync;
    r.rep = rep;
    r.sum = sum;
    r.t0 = now_s();
    r.batch_docs = io->batch_documents ? io->batch_documents : 256;
    r.batch = json_array();
    r.seen = json_object();
    r.protects = json_array();
    r.deferred = sync ? json_array() : NULL;
    r.roots = calloc(n ? n : 1, sizeof *r.roots);
    r.root_docs = calloc(n ? n : 1, sizeof *r.root_docs);
    int rc = r.batch && r.seen && r.protects && r.roots && r.root_docs ? RAG_OK : RAG_ENOMEM;
    for (size_t i = 0; rc == RAG_OK && sync && i < n; i++) {
        char abs[PATH_MAX];
        if (!realpath(paths[i], abs)) {
            cli_error(rm->cmd, "'%s' does not exist (nothing synced)", paths[i]);
            rc = RAG_EINVAL;
        } else if (!(r.roots[r.nroots++] = strdup(abs))) {
            rc = RAG_ENOMEM;
        }
    }
    if (rc == RAG_OK) {
        rag_ingest_options eo = *io;
        eo.on_event = on_event;
        eo.user = &r;
        rc = rag_extract_paths(paths, n, &eo, on_document, &r);
        if (rc != RAG_OK && !r.failed)
            cli_error(rm->cmd, "%s: %s", rag_strerror(rc), rag_errmsg());
        if (rc == RAG_OK && flush(&r) != 0)
            rc = RAG_EIO;
        if (rc == RAG_ECANCELED && r.failed)
            rc = RAG_EIO;
    }
    /* deletion needs a complete scan: none after a run that stopped */
    if (rc == RAG_OK && sync && (finish_sync(&r) != 0 || retry_deferred(&r) != 0))
        rc = RAG_EIO;
    if (rc == RAG_ENOMEM)
        cli_error(rm->cmd, "out of memory");
    sum->seconds = now_s() - r.t0;
    for (size_t i = 0; i < r.nroots; i++)
        free(r.roots[i]);
    free(r.roots);
    free(r.root_docs);
    json_decref(r.batch);
    json_decref(r.seen);
    json_decref(r.protects);
    json_decref(r.deferred);
    return rc;
}

int cli_remote_freshness(cli_remote *rm, int64_t objective, rag_freshness_info *fi)
{
    char path[1100], err[2048];
    json_t *reply = NULL;
    memset(fi, 0, sizeof *fi);
    snprintf(path, sizeof path, "%s?objective=%lld", rm->path, (long long)objective);
    if (cli_http_json(&rm->http, "GET", path, NULL, &reply, NULL, err, sizeof err) != 0) {
        cli_error(rm->cmd, "%s", err);
        return -1;
    }
    json_t *f = json_object_get(reply, "freshness");
    fi->documents = (uint64_t)json_integer_value(json_object_get(f, "documents"));
    fi->newest_source = json_integer_value(json_object_get(f, "newest_source"));
    fi->oldest_source = json_integer_value(json_object_get(f, "oldest_source"));
    fi->last_sync = json_integer_value(json_object_get(f, "last_sync"));
    fi->sync_lag = json_integer_value(json_object_get(f, "sync_lag"));
    fi->stale = (uint64_t)json_integer_value(json_object_get(f, "stale"));
    fi->expired = (uint64_t)json_integer_value(json_object_get(f, "expired"));
    fi->objective = json_integer_value(json_object_get(f, "objective"));
    json_decref(reply);
    return 0;
}
