/* fuzz_corpus_jsonl.c - libFuzzer target: the corpus walker reading a BEIR-style JSONL
 * file; every document it emits must be complete (id, valid text). */
#include "corpus.h"
#include "ragcore.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static int on_doc(void *user, const rag_document *d)
{
    size_t *n = user;
    if (!d->id || !*d->id || !d->text)
        abort();
    size_t len = d->text_len == (size_t)-1 ? strlen(d->text) : d->text_len;
    volatile size_t sum = len + (d->title ? strlen(d->title) : 0) +
                          (d->source ? strlen(d->source) : 0) +
                          (d->metadata_json ? strlen(d->metadata_json) : 0);
    (void)sum;
    (*n)++;
    return RAG_OK;
}

static void on_err(void *user, const char *where, int rc, const char *msg)
{
    (void)user;
    if (!where || !msg || rc >= 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/ragfuzz-corpus-%ld.jsonl", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    const char *paths[1] = {path};
    size_t n = 0;
    rag_corpus_walk(paths, 1, NULL, on_doc, on_err, &n);
    unlink(path);
    return 0;
}
