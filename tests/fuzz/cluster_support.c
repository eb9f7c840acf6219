/* cluster_support.c - the store the cluster fuzz targets answer from (cluster_support.h). */
#include "cluster_support.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

char *fuzz_cluster_message(const uint8_t *data, size_t size)
{
    char *msg = size ? malloc(size) : NULL;
    if (!msg)
        return NULL;
    memcpy(msg, data + 1, size - 1);
    msg[size - 1] = '\0';
    return msg;
}

void fuzz_cluster_store(const char *dir, rag_db **db, cluster_coll *coll)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = 8;
    if (rag_open(dir, &o, db) != RAG_OK)
        abort();
    static const char *const texts[] = {"raft log replication across shards",
                                        "vector index of the replica", "lexical search bm25"};
    static const char *const ids[] = {"doc-a", "doc-b", "doc-c"};
    rag_document d[3];
    for (int i = 0; i < 3; i++) {
        rag_document_init(&d[i]);
        d[i].id = ids[i];
        d[i].text = texts[i];
        d[i].metadata_json = "{\"lang\":\"en\"}";
    }
    rag_ingest_options io;
    rag_ingest_options_init(&io);
    io.collection = "fz";
    char err[256];
    json_t *m = json_loads("{\"name\":\"fz\",\"shards\":1,\"embedder\":\"hash\",\"dim\":8}",
                           0, NULL);
    if (!m || rag_ingest_documents(*db, d, 3, &io, NULL) != RAG_OK ||
        cluster_coll_from_json(m, NULL, coll, err, sizeof err) < 0)
        abort();
    json_decref(m);
}
