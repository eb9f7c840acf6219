/* fuzz_openai_reply.c - libFuzzer target: an OpenAI-compatible embedding server's reply as
 * the provider reads it (status, a header line, JSON body). Input: u8 status selector,
 * u8 input count, u8 known dimension (0: learned), then one header line ending in '\n' and
 * the body. An accepted reply must have filled every value of every row with a finite float. */
#include "embed_openai.h"
#include "ragcore.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    static const long statuses[] = {200, 200, 200, 200, 400, 401, 404, 429, 500, 503};
    long status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    size_t n = data[1] % 8 + 1;
    int known = data[2] % 8, dim = known;
    data += 3;
    size_t left = size - 3;
    const uint8_t *nl = memchr(data, '\n', left);
    size_t hl = nl ? (size_t)(nl - data) + 1 : 0;
    /* the header line and the body in buffers of their exact size, so ASan sees any read
     * past their ends (neither is NUL-terminated, as libcurl hands them over) */
    char *line = malloc(hl ? hl : 1);
    char *body = malloc(left - hl ? left - hl : 1);
    if (!line || !body)
        goto cleanup;
    memcpy(line, data, hl);
    memcpy(body, data + hl, left - hl);
    long s = rag_openai_retry_after(line, hl);
    if (s < -1)
        abort();
    /* a first pass learns the dimension (values checked, none kept); the second fills a
     * buffer of exactly n rows of that many NaNs */
    int probe = known;
    (void)rag_openai_parse_reply("http://fuzz/v1/embeddings", status, left - hl ? body : NULL,
                                 left - hl, n, &probe, NULL);
    size_t cap = n * (size_t)(probe > 0 ? probe : 1);
    float *out = malloc((cap ? cap : 1) * sizeof *out);
    if (!out)
        goto cleanup;
    for (size_t i = 0; i < cap; i++)
        out[i] = NAN;
    int rc = rag_openai_parse_reply("http://fuzz/v1/embeddings", status, left - hl ? body : NULL,
                                    left - hl, n, &dim, out);
    if (rc == RAG_OK) {
        if (status != 200 || dim <= 0 || dim != probe || (known && dim != known))
            abort();
        for (size_t i = 0; i < n * (size_t)dim; i++)
            if (!isfinite(out[i]))
                abort(); /* a row left unwritten, or a value that is not a float */
    } else if (rc != RAG_EEMBED && rc != RAG_ENOMEM) {
        abort();
    } else if (!rag_errmsg()[0]) {
        abort(); /* refused without saying why */
    }
    free(out);
cleanup:
    free(line);
    free(body);
    return 0;
}
