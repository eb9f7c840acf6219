/* routes_embeddings.c - POST /v1/embeddings, OpenAI-compatible: texts embedded with the
 * store's embedder, bounded per call and by the key's encoder-token budget. */
#include "handlers.h"

#include "clock.h"
#include "ratelimit.h"
#include "reqjson.h"
#include "vector_b64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t count_words(const char *s)
{
    size_t n = 0;
    int in = 0;
    for (; *s; s++) {
        int sp = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

void h_embeddings(http_req *r, const char *const *params)
{
    static const char *const FIELDS[] = {"input", "model", "encoding_format", "dimensions",
                                         "user",  "input_type", NULL};
    srv *s = r->s;
    json_t *body = NULL, *input;
    const char **texts = NULL;
    float *out = NULL;
    const char *model = NULL, *enc = NULL, *user = NULL, *itype = NULL;
    long long dims = 0;
    size_t n = 0;

    (void)params;
    if (!(body = rj_body(r)) ||
        rj_only(r, body, "", FIELDS) < 0 ||
        rj_string(r, body, "", "model", 0, 0, 256, &model) < 0 ||
        rj_string(r, body, "", "encoding_format", 0, 0, 16, &enc) < 0 ||
        rj_string(r, body, "", "user", 0, 0, 256, &user) < 0 ||
        rj_string(r, body, "", "input_type", 0, 0, 16, &itype) < 0 ||
        rj_int(r, body, "", "dimensions", 0, 1, 65536, &dims) < 0)
        goto cleanup;
    if (enc && strcmp(enc, "float") && strcmp(enc, "base64")) {
        http_error(r, 400, "invalid_field", "encoding_format",
                   "'encoding_format' must be \"float\" or \"base64\"");
        goto cleanup;
    }
    if (itype && strcmp(itype, "query") && strcmp(itype, "document")) {
        http_error(r, 400, "invalid_field", "input_type",
                   "'input_type' must be \"query\" or \"document\"");
        goto cleanup;
    }
    if (dims && dims != s->dim) {
        http_error(r, 400, "invalid_field", "dimensions",
                   "'dimensions' must be %d (the embedder's dimension)", s->dim);
        goto cleanup;
    }
    input = json_object_get(body, "input");
    if (!input) {
        http_error(r, 400, "missing_field", "input", "'input' is required");
        goto cleanup;
    }
    n = json_is_array(input) ? json_array_size(input) : 1;
    if (!json_is_string(input) && !(json_is_array(input) && n > 0)) {
        http_error(r, 400, "invalid_field", "input",
                   "'input' must be a string or a non-empty array of strings");
        goto cleanup;
    }
    long max_inputs = atomic_load(&s->cfg.limits.max_embed_inputs);
    if ((long)n > max_inputs) {
        http_error(r, 400, "invalid_field", "input", "%zu inputs; the limit is %ld", n,
                   max_inputs);
        goto cleanup;
    }
    if (!(texts = calloc(n, sizeof *texts)) ||
        !(out = malloc(n * (size_t)s->dim * sizeof *out))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    size_t tokens = 0;
    double cost = 0; /* estimated encoder tokens: the per-call cap and the key's budget */
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_is_array(input) ? json_array_get(input, i) : input;
        if (!json_is_string(x) || json_string_length(x) == 0) {
            char path[64];
            snprintf(path, sizeof path, json_is_array(input) ? "input[%zu]" : "input", i);
            http_error(r, 400, "invalid_field", path, "'%s' must be a non-empty string "
                       "(token arrays are not supported)", path);
            goto cleanup;
        }
        texts[i] = json_string_value(x);
        tokens += count_words(texts[i]);
        size_t t = 0;
        if (rag_count_tokens(s->db, texts[i], json_string_length(x), &t) != RAG_OK)
            t = json_string_length(x) / 4 + 1; /* a tokenizer failure is the embed's to report */
        cost += (double)t;
    }
    long max_cost = atomic_load(&s->cfg.limits.max_embed_tokens);
    if (cost > (double)max_cost) {
        http_error(r, 400, "invalid_field", "input",
                   "the inputs hold about %.0f tokens; the limit per call is %ld", cost,
                   max_cost);
        goto cleanup;
    }
    if (ratelimit_tokens(r, cost) < 0)
        goto cleanup;
    double t0 = srv_monotonic();
    int rc = rag_embed(s->db, texts, n, itype && !strcmp(itype, "query"), out);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, "input", "embed");
        goto cleanup;
    }
    metrics_embed(s->metrics, n, srv_monotonic() - t0);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *emb;
        if (enc && !strcmp(enc, "base64")) {
            char *b64 = vector_b64_encode(out + i * (size_t)s->dim, (size_t)s->dim);
            emb = b64 ? json_string(b64) : json_null();
            free(b64);
        } else {
            emb = json_array();
            for (int d = 0; d < s->dim; d++)
                json_array_append_new(emb, json_real(out[i * (size_t)s->dim + (size_t)d]));
        }
        json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", emb));
    }
    http_reply_json(r, 200, json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data,
                                      "model", rag_db_embedder(s->db), "usage", "prompt_tokens",
                                      (json_int_t)tokens, "total_tokens", (json_int_t)tokens));
cleanup:
    free(texts);
    free(out);
    json_decref(body);
}

