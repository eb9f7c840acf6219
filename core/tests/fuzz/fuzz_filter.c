/* fuzz_filter.c - libFuzzer target: the metadata filter parser, and matching parsed filters
 * against documents whose metadata is also fuzzed (input: EXPR [\x01 METADATA_JSON]). */
#include "filter.h"
#include "ragcore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *meta = memchr(buf, '\x01', size);
    if (meta)
        *meta++ = '\0';
    rag_filter *f = NULL;
    int rc = rag_filter_parse(buf, 0, &f);
    if (rc == RAG_OK) {
        const char *metas[] = {meta ? meta : "{}",
                               "{\"lang\":\"en\",\"tags\":[\"ml\",\"db\"],\"year\":2021,"
                               "\"a\":{\"b\":[{\"c\":1.5},{\"c\":null}]},\"ok\":true}",
                               NULL, "[1,2]", "not json"};
        for (size_t i = 0; i < sizeof metas / sizeof metas[0]; i++) {
            rag_filter_doc d = {"doc-1", "/src/a.md", "Title", metas[i], 1700000000,
                                1700000100, 1700000200};
            int m = rag_filter_match(f, &d);
            if (m != 0 && m != 1)
                abort();
        }
        size_t n = 0;
        const char *const *ids = rag_filter_doc_ids(f, &n);
        for (size_t i = 0; ids && i < n; i++)
            if (!ids[i] || (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0))
                abort(); /* sorted, without duplicates */
        (void)rag_filter_fields(f);
    } else if (rc != RAG_EPARSE && rc != RAG_EINVAL && rc != RAG_ENOMEM) {
        abort();
    }
    rag_filter_free(f);
    free(buf);
    return 0;
}
