/* context.h - prompt-ready context: passages merged from search hits, numbered citations
 * with freshness, fitted to a token budget (public API in ragcore.h: rag_context*). */
#ifndef RAG_CONTEXT_H
#define RAG_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

/* Defaults applied by rag_context when the options leave them 0. */
#define RAG_CONTEXT_DEFAULT_K 20
#define RAG_CONTEXT_DEFAULT_MMR 0.7f
#define RAG_CONTEXT_DEFAULT_PER_DOC 3
#define RAG_CONTEXT_DEFAULT_BUDGET 1024
#define RAG_CONTEXT_MAX_BUDGET 1000000
#define RAG_CONTEXT_DEFAULT_STALE (30LL * 86400)
/* A passage that does not fit whole is truncated only when at least this many tokens of
 * room remain after its header; otherwise it is skipped. */
#define RAG_CONTEXT_MIN_TRUNCATE 30

/* Writes an English age phrase for `seconds` into buf[cap] ("just now" below a minute or
 * for negative ages, "5 minutes ago", "3 hours ago", "yesterday", "7 days ago",
 * "2 months ago" from 30 days, "3 years ago" from 365 days). Can't fail (truncates). */
void rag_age_phrase(int64_t seconds, char *buf, size_t cap);

/* Writes the UTC date of unix time t as YYYY-MM-DD into buf[cap] ("unknown" when t <= 0).
 * Can't fail. */
void rag_date_string(int64_t t, char *buf, size_t cap);

/* Checks a source template: every "{name}" must be one of {n} {title} {source} {doc_id}
 * {date} {age} {score}; a '{' that does not open such a name is literal text.
 * RAG_EINVAL naming the unknown placeholder and its byte offset otherwise. */
int rag_context_template_check(const char *tmpl);

#endif
