/* quickstart.c - the smallest ragcore program: open a store, ingest two documents, search.
 *
 * Build against an installed ragcore:
 *   cc quickstart.c $(pkg-config --cflags --libs ragcore) -o quickstart
 * or, with ragcore linked in (static archive):
 *   cc quickstart.c $(pkg-config --static --cflags --libs ragcore) -o quickstart
 * Run: ./quickstart /tmp/quickstart-store
 */
#include <ragcore.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "quickstart-store";
    rag_db *db = NULL;
    rag_results *res = NULL;
    int rc = rag_open(dir, NULL, &db); /* NULL options: defaults (hash embedder, HNSW32) */
    if (rc != RAG_OK) {
        fprintf(stderr, "open: %s: %s\n", rag_strerror(rc), rag_errmsg());
        return 1;
    }
    rag_document docs[2];
    rag_document_init(&docs[0]);
    rag_document_init(&docs[1]);
    docs[0].id = "lmdb";
    docs[0].text = "LMDB is a memory-mapped key-value store with ACID transactions.";
    docs[0].source = "notes/lmdb.txt";
    docs[1].id = "faiss";
    docs[1].text = "FAISS searches dense vectors with HNSW graphs and inverted files.";
    docs[1].source = "notes/faiss.txt";
    if ((rc = rag_ingest(db, "notes", docs, 2, NULL)) != RAG_OK)
        goto fail;
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "notes";
    so.k = 2;
    if ((rc = rag_search(db, "vector search with HNSW", &so, &res)) != RAG_OK)
        goto fail;
    for (size_t i = 0; i < rag_results_count(res); i++) {
        const rag_hit *h = rag_results_get(res, i);
        printf("%zu %s %.3f %s\n", i + 1, h->doc_id, h->score, h->source);
    }
    rag_results_free(res);
    return rag_close(db) == RAG_OK ? 0 : 1;
fail:
    fprintf(stderr, "ragcore: %s: %s\n", rag_strerror(rc), rag_errmsg());
    rag_results_free(res);
    rag_close(db);
    return 1;
}
