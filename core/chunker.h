/* chunker.h - recursive, Markdown-aware splitting of document text into chunks. */
#ifndef RAG_CHUNKER_H
#define RAG_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

/* Counts tokens of a UTF-8 span. The built-in approximation is used when a tokenizer
 * is not supplied. Returns the count (>= 0). The chunker counts each word once and sums
 * (so the count should be about additive over whitespace-separated words: no [CLS]/[SEP]),
 * then checks each chunk with one call and shrinks it when the sum was too low. */
typedef int (*rag_token_count_fn)(void *user, const char *text, size_t len);

typedef struct rag_chunker_config {
    int target_tokens;          /* > 0: maximum tokens per chunk */
    int overlap_tokens;         /* >= 0, < target_tokens: tokens repeated from the previous chunk */
    int markdown;               /* 1: split at headings first and record heading paths */
    rag_token_count_fn count;   /* NULL: rag_approx_tokens */
    void *count_user;
} rag_chunker_config;

typedef struct rag_chunk {
    size_t start, end;          /* byte span [start, end) in the source text; on UTF-8 boundaries */
    int tokens;                 /* token count of text[start, end) */
    char *heading_path;         /* "A > B" (owned, never NULL; "" when none) */
} rag_chunk;

typedef struct rag_chunk_list {
    rag_chunk *items;
    size_t count, cap;
} rag_chunk_list;

/* Approximate token count of a UTF-8 span, close to a BERT WordPiece count on English:
 * one token per run of letters/digits (an extra one per 4 characters past the first 6)
 * and one per other non-space character. Can't fail. */
int rag_approx_tokens(void *user, const char *text, size_t len);

/* Splits text[0, len) (valid UTF-8) into chunks of at most cfg->target_tokens by the
 * counter (only a single code point that alone exceeds it can make a larger chunk),
 * cutting first at Markdown headings (when cfg->markdown; ATX and setext, not inside
 * ``` / ~~~ fences), then preferring code-fence edges, blank lines, sentence ends
 * (. ! ? before a space, 。！？), line breaks, words (and CJK characters) and, inside an
 * over-long word, grapheme clusters / code points. Small pieces are merged up to the
 * target; a code block that fits a chunk is kept whole. Consecutive chunks of one
 * section share about cfg->overlap_tokens tokens (never more by the summed word counts;
 * none across a code-fence edge). Leading/trailing whitespace is not part of a chunk;
 * whitespace-only text yields no chunks. Linear in len.
 * `out` must be empty (zeroed, or after rag_chunk_list_free); on success it receives the
 * chunks in text order, on failure it is left empty.
 * Errors: RAG_EINVAL (bad config or arguments), RAG_EENCODING (invalid UTF-8, with its
 * byte offset), RAG_ENOMEM. */
int rag_chunk_text(const rag_chunker_config *cfg, const char *text, size_t len,
                   rag_chunk_list *out);

/* Frees the chunks' heading paths and the array; leaves the list empty. NULL-safe. */
void rag_chunk_list_free(rag_chunk_list *list);

#endif
