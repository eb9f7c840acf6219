/* search_options.h - validation of rag_search_options against the one table of search
 * options (the table and its by-name setters are public: ragcore.h). */
#ifndef RAG_SEARCH_OPTIONS_H
#define RAG_SEARCH_OPTIONS_H

#include "ragcore.h"

/* Checks every field of `o` that the table declares against its type and range (a 0 that
 * means "the default" passes). RAG_OK, or RAG_EINVAL naming the field, its range and the
 * value. */
int rag_search_options_check(const rag_search_options *o);

#endif
