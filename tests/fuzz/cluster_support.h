/* cluster_support.h - what the cluster fuzz targets share: the split of an input into its
 * selector byte and message, and the small real store their messages are answered from. */
#ifndef FUZZ_CLUSTER_SUPPORT_H
#define FUZZ_CLUSTER_SUPPORT_H

#include "cluster.h"
#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

/* The message of a fuzz input: data[1, size) copied and NUL-terminated (malloc'd; the
 * caller frees it; its length is size - 1). NULL when size is 0 or out of memory. The
 * input's first byte selects what the target does with it. */
char *fuzz_cluster_message(const uint8_t *data, size_t size);

/* Opens (creating) the store in dir (an existing directory) with the hash embedder of
 * dimension 8, ingests three documents (doc-a, doc-b, doc-c, metadata {"lang":"en"}) into
 * collection "fz", and fills *coll with that collection's cluster metadata (one shard).
 * Aborts on any failure: a fuzz target cannot run without it. The caller closes *db. */
void fuzz_cluster_store(const char *dir, rag_db **db, cluster_coll *coll);

#endif
