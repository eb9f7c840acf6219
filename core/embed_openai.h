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

#endif
