/* tokenizer.h - BERT WordPiece tokenizer, exactly as Hugging Face's BertTokenizer(Fast). */
#ifndef RAG_TOKENIZER_H
#define RAG_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct rag_tokenizer rag_tokenizer;

/* Loads the vocabulary of the model directory `dir`: vocab.txt (one token a line, the line
 * number is the id) or, when absent, the "model.vocab" object of tokenizer.json. Casing
 * comes from tokenizer_config.json's "do_lower_case" (default: uncased, accents stripped).
 * `max_len` (>= 2) is the longest sequence encode() produces, [CLS] and [SEP] included.
 * Errors: RAG_ENOTFOUND (no vocabulary file), RAG_EPARSE (bad file; the message names the
 * file and line), RAG_EINVAL (a required special token is missing), RAG_ENOMEM. */
int rag_tokenizer_load(const char *dir, int max_len, rag_tokenizer **out);

/* Same from an explicit vocab.txt path; `lowercase` selects the uncased pipeline. */
int rag_tokenizer_load_vocab(const char *vocab_path, int lowercase, int max_len,
                             rag_tokenizer **out);

/* Encodes `text` (UTF-8; invalid bytes are dropped like U+FFFD) as [CLS] pieces [SEP],
 * truncated to the tokenizer's max_len and to `cap`, into ids[]. Returns the number of ids
 * written (>= 2 when cap >= 2), or RAG_ENOMEM / RAG_EINVAL (cap < 2). */
int rag_tokenizer_encode(const rag_tokenizer *t, const char *text, size_t len, int32_t *ids,
                         int cap);

/* Number of ids the untruncated encoding has ([CLS] and [SEP] included), or RAG_ENOMEM. */
int rag_tokenizer_count(const rag_tokenizer *t, const char *text, size_t len);

/* Token string for an id, or NULL when out of range. Lives as long as the tokenizer. */
const char *rag_tokenizer_token(const rag_tokenizer *t, int32_t id);

/* Id of a token string, or -1. */
int32_t rag_tokenizer_id(const rag_tokenizer *t, const char *token);

int rag_tokenizer_vocab_size(const rag_tokenizer *t);
int rag_tokenizer_max_len(const rag_tokenizer *t);

void rag_tokenizer_free(rag_tokenizer *t);

#endif
