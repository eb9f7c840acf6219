/* fuzz_chunker.c - libFuzzer target: the chunker on arbitrary text and configurations,
 * checking the documented invariants of every chunk list it returns. */
#include "chunker.h"
#include "ragcore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 1 when p is at a UTF-8 code point boundary of text (not a continuation byte). */
static int boundary(const unsigned char *text, size_t len, size_t p)
{
    return p == len || (text[p] & 0xC0) != 0x80;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    rag_chunker_config cfg = {0};
    cfg.target_tokens = 1 + data[0] % 64;
    cfg.overlap_tokens = (data[1] & 0x7f) % cfg.target_tokens;
    cfg.markdown = data[1] >> 7;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    rag_chunk_list list = {0};
    int rc = rag_chunk_text(&cfg, text, len, &list);
    if (rc != RAG_OK) {
        if (list.count != 0 || list.items != NULL)
            abort(); /* on failure the list is left empty */
        if (rc != RAG_EENCODING && rc != RAG_ENOMEM)
            abort();
        return 0;
    }
    size_t prev_start = 0;
    for (size_t i = 0; i < list.count; i++) {
        const rag_chunk *c = &list.items[i];
        if (c->start >= c->end || c->end > len || c->start < prev_start || !c->heading_path)
            abort();
        if (!boundary((const unsigned char *)text, len, c->start) ||
            !boundary((const unsigned char *)text, len, c->end))
            abort();
        prev_start = c->start;
    }
    rag_chunk_list_free(&list);
    return 0;
}
