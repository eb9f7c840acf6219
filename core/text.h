/* text.h - UTF-8 validation and normalised-text hashing shared by ingest and dedup. */
#ifndef RAG_TEXT_H
#define RAG_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 when text[0, len) is valid UTF-8 without NUL bytes; otherwise 0 and
 * *bad_offset (may be NULL) receives the byte offset of the first invalid sequence.
 * *line receives its 1-based line number when not NULL. Can't fail. */
int rag_utf8_valid(const char *text, size_t len, size_t *bad_offset, size_t *line);

/* XXH3-64 of the text after Unicode case folding (utf8proc) and collapsing every run of
 * whitespace to one space (leading/trailing dropped): chunks that differ only in case or
 * spacing hash alike. Can't fail (falls back to the raw bytes on allocation failure). */
uint64_t rag_text_norm_hash(const char *text, size_t len);

/* 1 when code point cp is a letter or a number (Unicode categories L* and N*: Python's
 * \w less '_'), else 0. Can't fail. */
int rag_cp_is_alnum(int32_t cp);

/* XXH3-64 of raw bytes. */
uint64_t rag_hash_bytes(const void *data, size_t len);
/* An independent second 64-bit hash (XXH3 with another seed), for 128-bit keys. */
uint64_t rag_hash_bytes2(const void *data, size_t len);

#endif
