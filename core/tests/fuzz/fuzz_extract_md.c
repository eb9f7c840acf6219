/* fuzz_extract_md.c - libFuzzer target: text/Markdown extraction (encoding detection,
 * UTF-16 conversion, line endings, front matter, cmark titles), then chunking. */
#include "chunker.h"
#include "extract.h"
#include "ragcore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rag_extracted x;
    memset(&x, 0, sizeof x);
    const char *hint = size > 0 && (data[0] & 1) ? "notes.txt" : "README.md";
    if (rag_extract_buffer((const char *)data, size, hint, &x) == RAG_OK) {
        if (!x.text || memchr(x.text, '\r', x.len))
            abort(); /* CRLF and CR become LF */
        rag_chunker_config cfg = {24, 3, x.format == RAG_FORMAT_MARKDOWN, NULL, NULL};
        rag_chunk_list list = {0};
        int rc = rag_chunk_text(&cfg, x.text, x.len, &list);
        if (rc != RAG_OK && rc != RAG_ENOMEM)
            abort();
        rag_chunk_list_free(&list);
    }
    rag_extracted_free(&x);
    return 0;
}
