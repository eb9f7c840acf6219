/* frontmatter.h - YAML front matter of Markdown files ("---" ... "---" at the top) read with
 * libyaml into a JSON object for a document's metadata. */
#ifndef RAG_FRONTMATTER_H
#define RAG_FRONTMATTER_H

#include <stddef.h>

/* Looks for front matter at the start of text[0, len): a first line "---", then YAML, then a
 * line "---" or "...". When there is none, *body is 0 and *json NULL (RAG_OK). Otherwise
 * *body is the offset where the Markdown after it starts, *json the mapping as a compact
 * JSON object (malloc'd; NULL when the mapping is empty) and *title (malloc'd, may be NULL)
 * its "title" string, which is not repeated in *json. Plain scalars become numbers, true,
 * false or null when they read as such, everything else strings; sequences arrays; nested
 * mappings objects. Errors (nothing returned): RAG_EPARSE naming the line and libyaml's
 * problem, or "front matter must be a mapping"; RAG_ENOMEM. */
int rag_front_matter(const char *text, size_t len, size_t *body, char **json, char **title);

#endif
