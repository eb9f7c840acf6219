/* embed_openai.h - embedding provider for OpenAI-compatible /v1/embeddings endpoints. */
#ifndef RAG_EMBED_OPENAI_H
#define RAG_EMBED_OPENAI_H

#include "embedder.h"

/* Creates a provider from `spec` = "openai:MODEL[@BASE_URL]", e.g.
 * "openai:text-embedding-3-small" (base $RAGCORE_OPENAI_BASE_URL, else
 * https://api.openai.com/v1) or "openai:nomic-embed-text@http://127.0.0.1:11434/v1"
 * (Ollama, llama.cpp server, vLLM, TEI, ragcore-server). POSTs {"model", "input": [...]}
 * to BASE_URL/embeddings.
 * Environment: RAGCORE_OPENAI_API_KEY, else OPENAI_API_KEY (sent as a Bearer token when
 * set); RAGCORE_OPENAI_BATCH texts per request (default 64); RAGCORE_OPENAI_TIMEOUT
 * seconds per request (default 60); RAGCORE_OPENAI_RETRIES attempts after the first on
 * 429, 5xx and connection errors (default 5), waiting base * 2^k plus up to 100% jitter
 * (base RAGCORE_OPENAI_RETRY_BASE_MS, default 500 ms; a Retry-After header wins, capped at
 * 60 s). One request embeds "dimension probe" at creation to learn the dimension.
 * Errors: RAG_EINVAL (bad spec), RAG_EEMBED (HTTP or protocol failure; the message has
 * the status and the server's error text), RAG_ENOMEM. */
int rag_embedder_openai_create(const char *spec, rag_embedder **out);

/* Reads an /embeddings reply (the decoding half of the provider, callable without a
 * server): HTTP `status` and its `body` (len bytes, need not be NUL-terminated; NULL when
 * none) must hold n embeddings ({"data": [{"index", "embedding": [numbers]}]}) of *dim
 * values each (learned from the first item when *dim is 0), written to out (n * *dim
 * floats, row "index"; an item without "index" takes its position; NULL: values checked,
 * not kept). Every index of 0..n-1 appears once and every value is a number in the range
 * of a 32-bit float. `url` names the endpoint in messages. RAG_OK, else RAG_EEMBED naming
 * the item and value (or the status and the server's error text), RAG_ENOMEM. */
int rag_openai_parse_reply(const char *url, long status, const char *body, size_t len,
                           size_t n, int *dim, float *out);

/* The seconds of a "Retry-After:" header line (len bytes, not NUL-terminated, as libcurl
 * hands it over), or -1 when the line is another header or holds no non-negative number
 * (an HTTP-date included: the caller's own backoff applies). */
long rag_openai_retry_after(const char *line, size_t len);

#endif
