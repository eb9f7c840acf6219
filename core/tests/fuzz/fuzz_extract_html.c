/* fuzz_extract_html.c - libFuzzer target: HTML extraction (libxml2 parser, visible text,
 * headings), then chunking of what it produced as Markdown. */
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
    if (rag_extract_buffer((const char *)data, size, "text/html", &x) == RAG_OK) {
        if (!x.text || strlen(x.text) != x.len)
            abort();
        rag_chunker_config cfg = {32, 4, 1, NULL, NULL};
        rag_chunk_list list = {0};
        int rc = rag_chunk_text(&cfg, x.text, x.len, &list);
        if (rc != RAG_OK && rc != RAG_ENOMEM)
            abort(); /* extraction must produce valid UTF-8 */
        rag_chunk_list_free(&list);
    }
    rag_extracted_free(&x);
    return 0;
}
