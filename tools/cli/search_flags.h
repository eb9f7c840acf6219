/* search_flags.h - the library's search options (rag_search_option_*) as command-line flags of
 * `ragcore search`, `context` and `eval`: one flag per option, named after it. */
#ifndef RAG_CLI_SEARCH_FLAGS_H
#define RAG_CLI_SEARCH_FLAGS_H

#include "ragcore.h"

#include <getopt.h>
#include <stdio.h>

/* getopt_long values of search flags start here (above any short option character). */
#define CLI_SEARCH_FLAG_BASE 1000

/* Room a longopts array needs for the search flags (names and aliases). */
#define CLI_SEARCH_FLAGS_MAX 64

/* Appends to opts (which holds *n entries and room for CLI_SEARCH_FLAGS_MAX more plus the
 * terminating zero entry) a flag --<name> for every search option except those named in
 * `skip` (NULL-terminated, may be NULL), with '-' for '_', and --<alias> where the option has
 * one; terminates the array. Option names are static and the flag names are kept in a
 * static buffer: one call per process. */
void cli_search_flags_add(struct option *opts, size_t *n, const char *const *skip);

/* Applies getopt's result `opt` with argument `arg` when it is a search flag: 1 when set, 0
 * when opt is not a search flag, -1 after printing "ragcore <cmd>: <why>". */
int cli_search_flag(const char *cmd, int opt, const char *arg, rag_search_options *so);

/* Sets search option `name` from arg: 1, or -1 after printing "ragcore <cmd>: --<flag>: <why>". */
int cli_search_set(const char *cmd, const char *name, const char *arg, rag_search_options *so);

/* Prints one help line per search flag (skipping `skip`), with its range and default. */
void cli_search_flags_usage(FILE *out, const char *const *skip);

#endif
