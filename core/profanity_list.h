/* profanity_list.h - the word-list toxicity detector: a published list of obscene words
 * (one entry per line) matched on normalised word boundaries with leetspeak variants. */
#ifndef RAG_PROFANITY_LIST_H
#define RAG_PROFANITY_LIST_H

#include <stddef.h>

typedef struct rag_wordlist rag_wordlist;

/* Loads a word list: UTF-8 text, one entry per line, surrounding whitespace ignored, empty
 * lines skipped. An entry is normalised as text is (below) and split into words at every
 * character that is not a word character; a multi-word entry ("two girls") matches those
 * words in sequence with any separator between them. Errors: RAG_EIO (cannot read),
 * RAG_EENCODING (a line is not UTF-8, named by number), RAG_EPARSE (no entry at all),
 * RAG_ENOMEM. Free with rag_wordlist_free (NULL-safe). */
int rag_wordlist_load(const char *path, rag_wordlist **out);
void rag_wordlist_free(rag_wordlist *wl);

/* Entries loaded. Can't fail. */
size_t rag_wordlist_size(const rag_wordlist *wl);

/* 1 when text[0, len) (UTF-8) contains an entry, else 0; -RAG_ENOMEM style errors are
 * returned as negative status codes (RAG_ENOMEM, RAG_EENCODING for invalid UTF-8).
 *
 * Text and entries are normalised alike: Unicode compatibility decomposition, case folding
 * and marks stripped (utf8proc), so "ＦＯＯ", "Foo" and "fóo" are one word. Words are maximal
 * runs of letters, digits and the leetspeak symbols @ $ *; an entry matches whole words
 * only, so a word that merely contains an entry ("Scunthorpe") is no hit. A text character
 * also stands for the letters it replaces in leetspeak (better-profanity's character map:
 * @ for a or o, * for a vowel, 4 a, 1 i or l, l i, 0 o, 3 e, $ and 5 s, 7 t, u and v for
 * each other), and single letters separated by spaces or punctuation ("f.o.o") are
 * read as one word. When `match` is not NULL and there is a hit, the normalised words
 * that matched are copied there (cap bytes, NUL-terminated, truncated). */
int rag_wordlist_find(const rag_wordlist *wl, const char *text, size_t len, char *match,
                      size_t cap);

#endif
