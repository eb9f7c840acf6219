/* fuzz_tokenizer.c - libFuzzer target: WordPiece encoding of arbitrary bytes with a small
 * built-in vocabulary, cased and uncased; checks counts and id ranges. */
#include "tokenizer.h"
#include "ragcore.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static rag_tokenizer *tok[2];

static const char *const vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "of", "and", "to", "in",
    "river", "mountain", "engine", "##s", "##ing", "##ed", "un", "##able", "re", "##tri",
    "##eval", "cafe", "caf", "##é", "é", "中", "国", "日", "本", ",", ".", "!", "?", "'",
    "-", "(", ")", "1", "2", "##3", "hello", "world", "##o", "h", "##e", "##l", "x", "##x"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[64];
    snprintf(path, sizeof path, "/tmp/ragfuzz-vocab-%ld.txt", (long)getpid());
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    for (size_t i = 0; i < sizeof vocab / sizeof vocab[0]; i++)
        fprintf(f, "%s\n", vocab[i]);
    fclose(f);
    for (int lower = 0; lower < 2; lower++)
        if (rag_tokenizer_load_vocab(path, lower, 64, &tok[lower]) != RAG_OK)
            abort();
    unlink(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const rag_tokenizer *t = tok[data[0] & 1];
    int32_t ids[64];
    int n = rag_tokenizer_encode(t, (const char *)data + 1, size - 1, ids, 64);
    if (n < 2 || n > 64)
        abort();
    int v = rag_tokenizer_vocab_size(t);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v || !rag_tokenizer_token(t, ids[i]))
            abort();
    int full = rag_tokenizer_count(t, (const char *)data + 1, size - 1);
    if (full < n)
        abort();
    return 0;
}
