/* cluster_ingest.h - `ragcore ingest --cluster URL`: bulk ingest into a ragcore cluster.
 * Files are walked and extracted here (rag_extract_paths: the same documents and ids as a
 * local ingest) into batches that several worker threads post in parallel to the cluster's
 * routers (URL: HAProxy in front of them, or one router), which chunk, embed and append
 * each batch to the shard logs. Each batch carries a request id, so a retried batch is
 * appended once. */
#ifndef RAG_CLI_CLUSTER_INGEST_H
#define RAG_CLI_CLUSTER_INGEST_H

#include "ingest_report.h"
#include "ragcore.h"

/* Ingests the files under paths into the existing clustered collection `collection`
 * through the routers at url with `workers` parallel requests; io's include, exclude,
 * metadata_json, batch_documents and allow_empty apply. A batch the cluster cannot take
 * now (no answer, 5xx) is sent again with the same request id (8 attempts, waits doubling
 * from 100 ms); one it refuses (4xx) stops the run. *sum receives documents and chunks
 * stored (as the routers report them), text bytes, skipped files and seconds. Returns
 * RAG_OK, or the error that stopped the run (printed; batches acknowledged before are in
 * the logs). */
int cli_cluster_ingest(const char *url, const char *key, const char *collection, int workers,
                       const char *const *paths, size_t n, const rag_ingest_options *io,
                       cli_report *rep, rag_ingest_summary *sum);

#endif
