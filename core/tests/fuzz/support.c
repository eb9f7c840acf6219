/* support.c - the few facade functions the fuzzed modules call, so the fuzz targets
 * link without the store and index (mirrors core/ingest.c). */
#include "ragcore.h"

#include <string.h>

void rag_document_init(rag_document *d)
{
    memset(d, 0, sizeof *d);
    d->version = RAG_DOCUMENT_VERSION;
    d->text_len = (size_t)-1;
    d->format = RAG_FORMAT_TEXT;
}
