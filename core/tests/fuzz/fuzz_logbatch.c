/* fuzz_logbatch.c - libFuzzer target: a shard-log message as a replica receives it, decoded
 * (rag_log_batch_decode) and applied to a real store (rag_log_apply, hash embedder of
 * dimension 8, collection "fz") at the store's next sequence. The input's last 8 bytes are
 * replaced by the checksum of the rest, so mutations reach the fields behind it. A decoded
 * batch must encode again into bytes that decode to the same counts; a refusal must come
 * with a message; the store must stay readable (its digest) after every message.
 * RAGFUZZ_WRITE_SEEDS=DIR writes seed messages made by the library's own encoder to DIR
 * and exits. */
#include "logbatch.h"
#include "ragcore.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define DIM 8
#define COLL "fz"

static rag_db *db;
static char dir[256];

static void cleanup_store(void)
{
    rag_close(db);
    db = NULL;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_logbatch: cannot remove %s\n", dir);
}

/* Seed messages: upserts (with metadata, title, source, expiry), a delete, an expiry. */
static void write_seeds(const char *out)
{
    rag_embedder *e = NULL;
    if (rag_embedder_create("hash", DIM, &e) != RAG_OK)
        abort();
    const char *texts[] = {"# Title\n\nFirst paragraph about retrieval.\n\nSecond one.",
                           "plain text without structure", "x"};
    for (int s = 0; s < 4; s++) {
        rag_log_batch *b = NULL;
        if (rag_log_batch_create(e, 16, 4, 1700000000, &b) != RAG_OK)
            abort();
        if (s < 3) {
            rag_document d;
            rag_document_init(&d);
            d.id = s == 2 ? "doc-b" : "doc-a";
            d.text = texts[s];
            d.title = s == 0 ? "Title" : NULL;
            d.source = "/src/a.md";
            d.metadata_json = s == 1 ? "{\"lang\":\"en\",\"year\":2021}" : NULL;
            d.format = s == 0 ? RAG_FORMAT_MARKDOWN : RAG_FORMAT_TEXT;
            if (rag_log_batch_add_documents(b, &d, 1) != RAG_OK)
                abort();
        }
        if (s == 2 && rag_log_batch_add_delete(b, "doc-a") != RAG_OK)
            abort();
        if (s == 3 && rag_log_batch_add_expire(b, 1700000500) != RAG_OK)
            abort();
        void *bytes = NULL;
        size_t len = 0;
        if (rag_log_batch_encode(b, &bytes, &len) != RAG_OK)
            abort();
        char path[512];
        snprintf(path, sizeof path, "%s/batch-%d", out, s);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0)
            abort();
        rag_free(bytes);
        rag_log_batch_free(b);
    }
    rag_embedder_free(e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *seeds = getenv("RAGFUZZ_WRITE_SEEDS");
    if (seeds) {
        write_seeds(seeds);
        exit(0);
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ragfuzz-logbatch.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = DIM;
    if (rag_open(dir, &o, &db) != RAG_OK) {
        fprintf(stderr, "fuzz_logbatch: cannot open a store in %s: %s\n", dir, rag_errmsg());
        abort();
    }
    atexit(cleanup_store);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *msg = malloc(size ? size : 1);
    if (!msg)
        return 0;
    memcpy(msg, data, size);
    if (size >= 8) {
        uint64_t sum = XXH3_64bits(msg, size - 8);
        for (int i = 0; i < 8; i++)
            msg[size - 8 + i] = (unsigned char)(sum >> (56 - 8 * i));
    }
    rag_log_batch *b = NULL;
    int rc = rag_log_batch_decode(msg, size, &b);
    if (rc == RAG_OK) {
        for (size_t i = 0; i < b->nops; i++)
            if (b->ops[i].kind == RAG_LOG_UPSERT &&
                b->ops[i].first + b->ops[i].n > b->nchunks)
                abort(); /* chunks outside the batch */
        void *again = NULL;
        size_t alen = 0;
        rag_log_batch *b2 = NULL;
        if (rag_log_batch_encode(b, &again, &alen) != RAG_OK ||
            rag_log_batch_decode(again, alen, &b2) != RAG_OK || b2->nops != b->nops ||
            b2->nchunks != b->nchunks || (b->nchunks && b2->dim != b->dim))
            abort(); /* a decoded batch does not survive its own encoding */
        rag_free(again);
        rag_log_batch_free(b2);
        rag_log_batch_free(b);
    } else if (rc != RAG_ECORRUPT && rc != RAG_ENOMEM) {
        abort();
    }
    uint64_t pos = 0;
    if (rag_log_position(db, COLL, &pos) != RAG_OK)
        abort();
    rc = rag_log_apply(db, COLL, pos + 1, msg, size);
    if (rc != RAG_OK && !rag_errmsg()[0])
        abort(); /* refused without saying why */
    uint64_t seq = 0, digest = 0, docs = 0;
    int drc = rag_collection_digest(db, COLL, &seq, &digest, &docs);
    if ((drc != RAG_OK && drc != RAG_ENOTFOUND) || seq != pos + (rc == RAG_OK))
        abort(); /* the store unreadable, or the position not where the apply left it */
    free(msg);
    return 0;
}
