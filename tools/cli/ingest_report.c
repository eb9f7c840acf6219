/* ingest_report.c - problems, progress and the summary of an ingest or sync, from the
 * library's events and rag_ingest_summary. */
#include "ingest_report.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Appends an entry to a list (silently dropped when memory runs out). */
static void add_entry(cli_event **list, size_t *n, size_t *cap, const char *action,
                      const char *id, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add_entry(cli_event **list, size_t *n, size_t *cap, const char *action,
                      const char *id, const char *fmt, ...)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        cli_event *e = realloc(*list, c * sizeof *e);
        if (!e)
            return;
        *list = e;
        *cap = c;
    }
    char detail[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    cli_event *e = &(*list)[*n];
    e->action = action;
    e->id = strdup(id);
    e->detail = strdup(detail);
    if (!e->id || !e->detail) {
        free(e->id);
        free(e->detail);
        return;
    }
    (*n)++;
}

int cli_report_event(void *user, const rag_ingest_event *ev)
{
    cli_report *r = user;
    const char *kind = ev->duplicate_kind;
    switch (ev->action) {
    case RAG_INGEST_SKIPPED:
    case RAG_INGEST_FAILED:
    case RAG_INGEST_KEPT: {
        const char *what = *ev->path ? ev->path : ev->id;
        const char *tail = ev->action == RAG_INGEST_FAILED ? "; skipped"
                           : ev->action == RAG_INGEST_KEPT ? "; its stored version is kept"
                                                           : "";
        /* "file line 12: why" for a JSONL record, "file: why" for a file */
        int line = strncmp(ev->reason, "line ", 5) == 0 && ev->reason[5] >= '0' &&
                   ev->reason[5] <= '9';
        fprintf(stderr, "%sragcore %s: %s%s%s%s\n", r->tty ? "\n" : "", r->cmd, what,
                line ? " " : ": ", ev->reason, tail);
        add_entry(&r->files, &r->nfiles, &r->cap_files, rag_ingest_action_name((int)ev->action),
                  ev->action == RAG_INGEST_KEPT ? ev->id : what, "%s", ev->reason);
        break;
    }
    default:
        break;
    }
    if (!r->verbose)
        return 0;
    switch (ev->action) {
    case RAG_INGEST_FILTERED:
        add_entry(&r->events, &r->nevents, &r->cap_events, "filtered", ev->id, "%s", ev->reason);
        break;
    case RAG_INGEST_PII_DROPPED:
        add_entry(&r->events, &r->nevents, &r->cap_events, "pii-drop", ev->id, "%zu findings",
                  ev->pii_found);
        break;
    case RAG_INGEST_TOXIC:
        add_entry(&r->events, &r->nevents, &r->cap_events, "toxic", ev->id, "%s", ev->reason);
        break;
    case RAG_INGEST_DUPLICATE:
    case RAG_INGEST_FLAGGED:
        add_entry(&r->events, &r->nevents, &r->cap_events,
                  rag_ingest_action_name((int)ev->action), ev->id, "of %s (%s, similarity %.2f)",
                  ev->canonical_id, kind, ev->similarity);
        break;
    case RAG_INGEST_STORED:
        if (*ev->canonical_id)
            add_entry(&r->events, &r->nevents, &r->cap_events, "dup-kept", ev->id,
                      "of %s (%s, similarity %.2f)", ev->canonical_id, kind, ev->similarity);
        else if (ev->pii_found)
            add_entry(&r->events, &r->nevents, &r->cap_events, "pii-masked", ev->id,
                      "%zu findings", ev->pii_found);
        else if (*ev->toxicity_detector)
            add_entry(&r->events, &r->nevents, &r->cap_events, "tox-flagged", ev->id,
                      "toxicity %.3f (%s)", ev->toxicity, ev->toxicity_detector);
        else if (r->dry_run)
            add_entry(&r->events, &r->nevents, &r->cap_events, "store", ev->id, "%s", ev->path);
        break;
    case RAG_INGEST_DELETED:
        add_entry(&r->events, &r->nevents, &r->cap_events, "deleted", ev->id, "%s", "");
        break;
    default:
        break;
    }
    return 0;
}

int cli_report_progress(void *user, const rag_ingest_progress *p)
{
    cli_report *r = user;
    double t = now_s();
    if (r->quiet || (!r->tty && t - r->last < 5.0))
        return 0;
    r->last = t;
    double el = p->seconds;
    double docs_s = el > 0 ? p->documents / el : 0, chunks_s = el > 0 ? p->chunks / el : 0;
    double frac = p->bytes_total ? (double)p->bytes_done / p->bytes_total : 0;
    if (frac > 1)
        frac = 1;
    double eta = frac > 0.001 ? el * (1 - frac) / frac : 0;
    if (r->tty) {
        int width = 30, fill = (int)(frac * width);
        fprintf(stderr, "\r[%.*s%*s] %3.0f%% %llu docs %llu chunks  %.0f docs/s %.0f chunks/s  "
                "ETA %.0fs ", fill, "##############################", width - fill, "",
                frac * 100, (unsigned long long)p->documents, (unsigned long long)p->chunks,
                docs_s, chunks_s, eta);
    } else {
        fprintf(stderr, "%s: %.0f%% %llu docs %llu chunks %.0f docs/s %.0f chunks/s ETA %.0fs\n",
                r->cmd, frac * 100, (unsigned long long)p->documents,
                (unsigned long long)p->chunks, docs_s, chunks_s, eta);
    }
    return 0;
}

void cli_report_progress_end(cli_report *r)
{
    if (r->tty && !r->quiet && r->last > 0)
        fputc('\n', stderr);
}

/* The policy's settings by name (rag_collection_options_json). */
static json_t *policy_settings(const rag_collection_options *pol)
{
    char *s = NULL;
    json_t *j = rag_collection_options_json(pol, &s) == RAG_OK ? json_loads(s, 0, NULL) : NULL;
    rag_free(s);
    return j ? j : json_object();
}

void cli_report_text(const cli_report *r, const rag_ingest_summary *s,
                     const rag_collection_options *pol, int strip_boilerplate)
{
    json_t *ps = policy_settings(pol);
    const char *pii = json_string_value(json_object_get(ps, "pii"));
    const char *dedup = json_string_value(json_object_get(ps, "dedup"));
    printf("  documents: %llu extracted, %llu skipped items", (unsigned long long)s->seen,
           (unsigned long long)s->skipped);
    const char *sep = " (";
    for (int i = 0; i < RAG_SKIP_NKINDS; i++)
        if (s->skipped_reasons[i]) {
            printf("%s%s %llu", sep, rag_skip_kind_name(i),
                   (unsigned long long)s->skipped_reasons[i]);
            sep = ", ";
        }
    printf("%s, %llu failed to store\n", *sep == ',' ? ")" : "", (unsigned long long)s->failed);
    printf("  duplicates (%s, threshold %.2f): %llu exact, %llu near; %llu skipped, %llu flagged, "
           "%llu recorded\n",
           dedup ? dedup : "?", pol->near_dup_threshold, (unsigned long long)s->dup_exact,
           (unsigned long long)s->dup_near, (unsigned long long)s->dup_skipped,
           (unsigned long long)s->dup_flagged, (unsigned long long)s->dup_recorded);
    printf("  quality: %llu filtered of %llu checked (too_short %llu, too_long %llu, symbols "
           "%llu); boilerplate %s: %llu lines removed (%llu bytes)\n",
           (unsigned long long)s->filtered, (unsigned long long)s->quality_checked,
           (unsigned long long)s->filtered_too_short, (unsigned long long)s->filtered_too_long,
           (unsigned long long)s->filtered_symbols, strip_boilerplate ? "on" : "off",
           (unsigned long long)s->boilerplate_lines, (unsigned long long)s->boilerplate_bytes);
    printf("  pii (%s): %llu documents with findings", pii ? pii : "?",
           (unsigned long long)s->pii_documents);
    sep = " (";
    for (int t = 0; t < RAG_PII_NTYPES; t++)
        if (s->pii_found[t]) {
            printf("%s%s %llu", sep, rag_pii_type_name(t), (unsigned long long)s->pii_found[t]);
            sep = ", ";
        }
    printf("%s, %llu documents dropped\n", *sep == ',' ? ")" : "",
           (unsigned long long)s->pii_dropped);
    printf("  toxicity (%s, threshold %.2f, %s): %llu checked, %llu flagged, %llu dropped "
           "(wordlist %llu, classifier %llu)\n",
           json_string_value(json_object_get(ps, "toxicity")),
           pol->toxicity_threshold, json_string_value(json_object_get(ps, "toxicity_detectors")),
           (unsigned long long)s->toxicity_checked, (unsigned long long)s->toxicity_flagged,
           (unsigned long long)s->toxicity_dropped, (unsigned long long)s->toxicity_dropped_wordlist,
           (unsigned long long)s->toxicity_dropped_classifier);
    if (s->stale_removed)
        printf("  removed %llu older stored versions of rejected documents\n",
               (unsigned long long)s->stale_removed);
    for (size_t i = 0; i < r->nfiles; i++)
        printf("  %-11s %s: %s\n", r->files[i].action, r->files[i].id, r->files[i].detail);
    for (size_t i = 0; i < r->nevents; i++)
        printf("  %-11s %s %s\n", r->events[i].action, r->events[i].id, r->events[i].detail);
    json_decref(ps);
}

/* A list of entries as a JSON array of {action, id|path, detail|reason}. */
static json_t *entries_json(const cli_event *e, size_t n, const char *idk, const char *detk)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "action", e[i].action, idk, e[i].id,
                                           detk, e[i].detail));
    return a;
}

void cli_report_json(const cli_report *r, json_t *o, const rag_ingest_summary *s,
                     const rag_collection_options *pol, int strip_boilerplate)
{
    json_t *ps = policy_settings(pol);
    json_t *skips = json_object(), *found = json_object();
    for (int i = 0; i < RAG_SKIP_NKINDS; i++)
        if (s->skipped_reasons[i])
            json_object_set_new(skips, rag_skip_kind_name(i),
                                json_integer((json_int_t)s->skipped_reasons[i]));
    for (int t = 0; t < RAG_PII_NTYPES; t++)
        json_object_set_new(found, rag_pii_type_name(t), json_integer((json_int_t)s->pii_found[t]));
    json_object_set_new(o, "documents_seen", json_integer((json_int_t)s->seen));
    json_object_set_new(o, "skipped",
                        json_pack("{s:I, s:o, s:o}", "total", (json_int_t)s->skipped, "reasons",
                                  skips, "files", entries_json(r->files, r->nfiles, "path",
                                                               "reason")));
    json_object_set_new(o, "ingest_errors", json_integer((json_int_t)s->failed));
    json_object_set_new(o, "duplicates",
                        json_pack("{s:O, s:f, s:I, s:I, s:I, s:I, s:I}", "mode",
                                  json_object_get(ps, "dedup"), "threshold",
                                  pol->near_dup_threshold, "exact", (json_int_t)s->dup_exact,
                                  "near", (json_int_t)s->dup_near, "skipped",
                                  (json_int_t)s->dup_skipped, "flagged",
                                  (json_int_t)s->dup_flagged, "recorded",
                                  (json_int_t)s->dup_recorded));
    json_object_set_new(o, "pii",
                        json_pack("{s:O, s:I, s:I, s:o}", "mode", json_object_get(ps, "pii"),
                                  "documents", (json_int_t)s->pii_documents, "dropped",
                                  (json_int_t)s->pii_dropped, "found", found));
    json_object_set_new(o, "quality",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "checked",
                                  (json_int_t)s->quality_checked, "filtered",
                                  (json_int_t)s->filtered, "too_short",
                                  (json_int_t)s->filtered_too_short, "too_long",
                                  (json_int_t)s->filtered_too_long, "symbols",
                                  (json_int_t)s->filtered_symbols));
    json_object_set_new(o, "toxicity",
                        json_pack("{s:O, s:f, s:O, s:I, s:I, s:I, s:{s:I, s:I}}", "mode",
                                  json_object_get(ps, "toxicity"), "threshold",
                                  pol->toxicity_threshold, "detectors",
                                  json_object_get(ps, "toxicity_detectors"), "checked",
                                  (json_int_t)s->toxicity_checked, "flagged",
                                  (json_int_t)s->toxicity_flagged, "dropped",
                                  (json_int_t)s->toxicity_dropped, "dropped_by", "wordlist",
                                  (json_int_t)s->toxicity_dropped_wordlist, "classifier",
                                  (json_int_t)s->toxicity_dropped_classifier));
    json_object_set_new(o, "boilerplate",
                        json_pack("{s:b, s:I, s:I}", "enabled", strip_boilerplate,
                                  "lines_removed", (json_int_t)s->boilerplate_lines,
                                  "bytes_removed", (json_int_t)s->boilerplate_bytes));
    json_object_set_new(o, "stale_removed", json_integer((json_int_t)s->stale_removed));
    if (r->verbose)
        json_object_set_new(o, "events", entries_json(r->events, r->nevents, "id", "detail"));
    json_decref(ps);
}

void cli_report_free(cli_report *r)
{
    for (size_t i = 0; i < r->nevents; i++) {
        free(r->events[i].id);
        free(r->events[i].detail);
    }
    for (size_t i = 0; i < r->nfiles; i++) {
        free(r->files[i].id);
        free(r->files[i].detail);
    }
    free(r->events);
    free(r->files);
    r->events = r->files = NULL;
    r->nevents = r->cap_events = r->nfiles = r->cap_files = 0;
}
