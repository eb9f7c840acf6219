/* ingest_report.h - what `ragcore ingest` and `ragcore sync` print about an ingest: problems
 * as they happen, progress, and a summary (text or JSON) that counts every decision. */
#ifndef RAG_CLI_INGEST_REPORT_H
#define RAG_CLI_INGEST_REPORT_H

#include "ragcore.h"

#include <jansson.h>
#include <stdio.h>

/* One listed outcome (--verbose, and every skipped or kept file). */
typedef struct cli_event {
    const char *action;   /* static */
    char *id, *detail;
} cli_event;

typedef struct cli_report {
    const char *cmd;      /* "ingest", "sync" */
    int verbose, quiet, tty, dry_run;
    cli_event *events;    /* --verbose: per-document decisions */
    size_t nevents, cap_events;
    cli_event *files;     /* skipped files and kept documents, with the reason */
    size_t nfiles, cap_files;
    double last;          /* progress lines */
} cli_report;

/* The callbacks to put in rag_ingest_options (user = the report): problems go to stderr as
 * "ragcore <cmd>: <path>: <reason>" at once; everything is remembered for the summary. */
int cli_report_event(void *user, const rag_ingest_event *ev);
int cli_report_progress(void *user, const rag_ingest_progress *p);

/* Ends the progress line (tty). */
void cli_report_progress_end(cli_report *r);

/* The hygiene part of the summary: text lines, or members of a JSON object. pol is the
 * policy that applied. */
void cli_report_text(const cli_report *r, const rag_ingest_summary *s,
                     const rag_collection_options *pol, int strip_boilerplate);
void cli_report_json(const cli_report *r, json_t *o, const rag_ingest_summary *s,
                     const rag_collection_options *pol, int strip_boilerplate);

/* Frees the lists and empties them (the report can be used again). */
void cli_report_free(cli_report *r);

#endif
