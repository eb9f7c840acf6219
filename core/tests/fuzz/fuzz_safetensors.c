/* fuzz_safetensors.c - libFuzzer target: the .safetensors validator and F32 reader on
 * arbitrary files; every tensor it accepts must lie inside the file. */
#include "safetensors.h"
#include "ragcore.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/ragfuzz-st-%ld.safetensors", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    rag_safetensors *st = NULL;
    if (rag_st_open(path, &st) == RAG_OK) {
        for (size_t i = 0; i < rag_st_count(st); i++) {
            const rag_st_tensor *t = rag_st_at(st, i);
            if (!t || !t->name || t->ndim < 0 || t->ndim > RAG_ST_MAX_DIMS || t->nbytes > size)
                abort();
            if (t->nbytes) {
                volatile unsigned char x = t->data[0] ^ t->data[t->nbytes - 1];
                (void)x;
            }
            if (rag_st_find(st, t->name) == NULL)
                abort();
            size_t elems = 1;
            for (int d = 0; d < t->ndim; d++)
                elems *= (size_t)t->shape[d];
            if (elems > (1u << 20))
                continue;
            float *out = malloc((elems ? elems : 1) * sizeof(float));
            if (out)
                rag_st_read_f32(st, t->name, t->shape, t->ndim, out);
            free(out);
        }
        rag_st_close(st);
    }
    unlink(path);
    return 0;
}
