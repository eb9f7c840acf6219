/* remote_ingest.h - `ragcore ingest --server URL` and `ragcore sync --server URL`: files are
 * walked and extracted here (rag_extract_paths: the same documents and ids as a local
 * ingest), sent to the server in batches (POST /v1/collections/{c}/documents), and the
 * summary is added up from the replies; a sync sends its batches with skip_unchanged and
 * then deletes the documents under its roots whose files vanished (listed with GET
 * /v1/collections/{c}/documents), keeping those of files that failed to extract, as
 * rag_sync_paths does in a store. */
#ifndef RAG_CLI_REMOTE_INGEST_H
#define RAG_CLI_REMOTE_INGEST_H

#include "http_client.h"
#include "ingest_report.h"
#include "policy_flags.h"
#include "ragcore.h"

typedef struct cli_remote {
    cli_http http;
    const char *cmd;              /* "ingest", "sync" (borrowed) */
    const char *collection;       /* borrowed */
    char path[1024];              /* "/v1/collections/<escaped name>" */
} cli_remote;

/* Connects to the server at url for `collection` and reads the collection's settings into
 * *applied. A missing collection is created with the flags' policy (pf->opts; that needs
 * an admin key when the server refuses a write key, and without policy flags the upsert
 * creates it with the server's defaults instead). Given flags that disagree with an
 * existing collection's settings are refused as for a local store (cli_policy_check).
 * Returns an exit status: CLI_OK, or after printing why CLI_USAGE (no key, a bad URL,
 * flags that disagree) or CLI_DATA (the server's answer). */
int cli_remote_open(cli_remote *rm, const char *cmd, const char *url, const char *key,
                    const char *collection, const cli_policy *pf,
                    rag_collection_options *applied);

/* Ingests (sync 0) or syncs (sync 1) the files under paths: io's include, exclude,
 * metadata_json, batch_documents and allow_empty apply. Events go to rep (cli_report_event);
 * *sum is filled as the library fills it locally (added = documents - replaced). Returns
 * RAG_OK, or the error that stopped the run (printed; batches sent before are stored). */
int cli_remote_ingest(cli_remote *rm, const char *const *paths, size_t n,
                      const rag_ingest_options *io, int sync, cli_report *rep,
                      rag_ingest_summary *sum);

/* A document as the documents endpoints take it ({"id","text","title","source","metadata",
 * "format","source_mtime","valid_until","ttl_seconds"}); NULL when its text is not valid
 * UTF-8 (or out of memory). */
json_t *cli_document_json(const rag_document *d);

/* The collection's freshness against `objective` seconds (GET /v1/collections/{c}).
 * 0, or -1 after printing why. */
int cli_remote_freshness(cli_remote *rm, int64_t objective, rag_freshness_info *fi);

#endif
