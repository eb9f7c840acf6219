/* cluster_support.h - what the cluster fuzz targets share: the small real store their
 * messages are answered from. */
#ifndef FUZZ_CLUSTER_SUPPORT_H
#define FUZZ_CLUSTER_SUPPORT_H

#include "cluster.h"
#include "ragcore.h"

/* Opens (creating) the store in dir (an existing directory) with the hash embedder of
 * dimension 8, ingests three documents (doc-a, doc-b, doc-c, metadata {"lang":"en"}) into
 * collection "fz", and fills *coll with that collection's cluster metadata (one shard).
 * Aborts on any failure: a fuzz target cannot run without it. The caller closes *db. */
void fuzz_cluster_store(const char *dir, rag_db **db, cluster_coll *coll);

#endif
