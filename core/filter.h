/* filter.h - metadata filter expressions: parsing and evaluation against documents. */
#ifndef RAG_FILTER_H
#define RAG_FILTER_H

#include <stddef.h>
#include <stdint.h>

/*
 * The filter language
 * ===================
 *
 * A filter is a boolean expression over one document. Keywords (AND OR NOT IN BETWEEN
 * EXISTS PREFIX TRUE FALSE NULL) are case-insensitive; whitespace is free between tokens.
 *
 *   expr      := and_expr { OR and_expr }
 *   and_expr  := not_expr { AND not_expr }
 *   not_expr  := NOT not_expr | primary                  precedence: NOT > AND > OR
 *   primary   := '(' expr ')'
 *              | EXISTS field
 *              | field cmp_op value
 *              | field [NOT] IN '(' value { ',' value } ')'
 *              | field BETWEEN value AND value           both bounds inclusive
 *              | field ( PREFIX | '^=' ) string
 *   cmp_op    := '=' | '!=' | '<' | '<=' | '>' | '>='
 *   field     := name { '.' ( key | string ) }           dotted path into nested objects
 *   name      := [A-Za-z_][A-Za-z0-9_-]*                 not a keyword
 *   key       := [A-Za-z0-9_][A-Za-z0-9_-]*              keywords allowed here
 *   value     := string | number | TRUE | FALSE | NULL
 *   string    := '"' ... '"'  with JSON escapes \" \\ \/ \b \f \n \r \t \uXXXX
 *   number    := ['-'] digits ['.' digits] [('e'|'E') ['+'|'-'] digits]
 *
 * Examples:
 *   lang = "en" AND year BETWEEN 2019 AND 2021
 *   lang IN ("en", "de") OR NOT EXISTS lang
 *   source PREFIX "/docs/" AND ingested_at > "2026-11-20T10:00:00Z"
 *   author.name = "Ada" AND tags = "ml" AND metadata."content type" != "pdf"
 *
 * Fields. doc_id, source and title are the document's strings; source_mtime, ingested_at
 * and updated_at are unix seconds. Any other name is a key of the metadata JSON object;
 * the prefix "metadata." is optional and forces the metadata meaning ("metadata.source" is
 * the metadata key "source"; a key spelled like a keyword needs the prefix). A built-in
 * string that is NULL or "" and a built-in time that is 0 count as missing.
 *
 * Values compare by type: numbers with numbers (integers exactly), strings with strings
 * (bytewise, so `<` orders strings too), booleans and null only by equality. A type
 * mismatch is no match; there is no implicit conversion except one: a string literal that
 * is an ISO-8601 date or date-time (YYYY-MM-DD, optionally followed by 'T' or ' ' and
 * HH:MM[:SS[.fff]] with 'Z' or a +HH:MM / -HH:MM offset; no offset means UTC) also stands
 * for its unix time. Compared with a number (a built-in time field or a metadata number) it
 * compares as unix seconds; compared with a metadata string that is itself an ISO date it
 * compares as instants. A built-in field given a value of the wrong type is a parse error
 * (`doc_id = 5`, `source_mtime = "yesterday"`), since it could never match; so is an
 * ordering (<, <=, >, >=, BETWEEN) against true, false or null.
 *
 * Field names and keys are case-sensitive. After a '.', a key may also be a "string"
 * (metadata."content type") or start with a digit; a numeric key selects an element of
 * an array (authors.0.name), or an object's key of that name.
 *
 * Missing fields and arrays. Every comparison on a missing field is false (so
 * `NOT lang = "en"` matches documents without lang, `lang != "en"` does not). A path that
 * meets an array of objects looks inside each element; a field whose value is an array
 * matches when any element matches (`tags = "ml"`, `scores > 0.5`). `!=` and NOT IN are
 * true when the field has at least one value of a comparable type and none equals the
 * value(s); `x != null` is true when x is present and not null. EXISTS is true when the key
 * is present, whatever its value (null and [] included). BETWEEN needs one value inside
 * both bounds. Arrays nested in arrays and whole objects compare with nothing.
 *
 * Limits. Each '(' and each NOT adds a nesting level (a bare comparison is level 1);
 * deeper than max_depth is refused. AND / OR chains do not nest.
 */

typedef struct rag_filter rag_filter;

/* The fields of a document a filter can see. metadata_json is the document's metadata
 * object (may be NULL or ""; anything that is not a JSON object counts as no metadata). */
typedef struct rag_filter_doc {
    const char *doc_id;
    const char *source;
    const char *title;
    const char *metadata_json;
    int64_t source_mtime;
    int64_t ingested_at;
    int64_t updated_at;
} rag_filter_doc;

/* Parses `expr`. On a syntax error returns RAG_EPARSE with a message naming the 0-based
 * byte position and what was expected ("filter: position 7: expected a value after '='");
 * an empty expression is such an error. RAG_EINVAL when the nesting passes max_depth
 * (0: 32; accepted 0..1024) or expr/out is NULL. *out is freed with rag_filter_free. */
int rag_filter_parse(const char *expr, int max_depth, rag_filter **out);
void rag_filter_free(rag_filter *f);

/* 1 when the document matches, 0 otherwise. Can't fail (a missing field, a type mismatch
 * or unparsable metadata is simply "no match"). Parses metadata_json at most once per
 * call and only when the evaluation reaches a metadata condition. Thread-safe on a shared
 * filter (nothing in it is modified). */
int rag_filter_match(const rag_filter *f, const rag_filter_doc *doc);

/* Which fields a filter reads, so a caller can skip loading what is not needed. */
enum {
    RAG_FILTER_FIELD_DOC_ID = 1u << 0,
    RAG_FILTER_FIELD_SOURCE = 1u << 1,
    RAG_FILTER_FIELD_TITLE = 1u << 2,
    RAG_FILTER_FIELD_SOURCE_MTIME = 1u << 3,
    RAG_FILTER_FIELD_INGESTED_AT = 1u << 4,
    RAG_FILTER_FIELD_UPDATED_AT = 1u << 5,
    RAG_FILTER_FIELD_METADATA = 1u << 6
};

/* The RAG_FILTER_FIELD_* bits of every field the filter mentions. Can't fail. */
unsigned rag_filter_fields(const rag_filter *f);

/* When every matching document must have one of a finite set of ids (the filter is
 * `doc_id = ...` / `doc_id IN (...)`, an AND with such a term, or an OR of such filters),
 * returns that candidate set and stores its size in *n; otherwise returns NULL and *n = 0.
 * The set is a superset of the matches (still run rag_filter_match), sorted bytewise and
 * without duplicates; it is empty (non-NULL, *n = 0) when nothing can match, as in
 * `doc_id = "a" AND doc_id = "b"`. The strings are owned by the filter. Can't fail. */
const char *const *rag_filter_doc_ids(const rag_filter *f, size_t *n);

#endif
