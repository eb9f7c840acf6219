/* policy_flags.h - the hygiene flags of `ragcore ingest` and `ragcore sync` (--pii,
 * --near-dup, --quality, ...): a NEW collection gets them as its policy; an existing one
 * whose stored policy differs refuses them and says how to change it explicitly. */
#ifndef RAG_CLI_POLICY_FLAGS_H
#define RAG_CLI_POLICY_FLAGS_H

#include "ragcore.h"

#include <getopt.h>
#include <stdio.h>

/* getopt_long codes of the flags (above every short option and the commands' own codes). */
enum { PF_PII = 400, PF_PII_TYPES, PF_NEAR_DUP, PF_THRESHOLD, PF_QUALITY, PF_MIN_CHARS,
       PF_MAX_CHARS, PF_SYMBOLS, PF_TOXICITY, PF_TOX_THRESHOLD, PF_TOX_DETECTORS };

#define CLI_POLICY_LONGOPTS                                                        \
    {"pii", required_argument, 0, PF_PII},                                         \
    {"pii-types", required_argument, 0, PF_PII_TYPES},                             \
    {"near-dup", required_argument, 0, PF_NEAR_DUP},                               \
    {"near-dup-threshold", required_argument, 0, PF_THRESHOLD},                    \
    {"quality", no_argument, 0, PF_QUALITY},                                       \
    {"min-chars", required_argument, 0, PF_MIN_CHARS},                             \
    {"max-chars", required_argument, 0, PF_MAX_CHARS},                             \
    {"max-symbol-ratio", required_argument, 0, PF_SYMBOLS},                       \
    {"toxicity", required_argument, 0, PF_TOXICITY},                               \
    {"toxicity-threshold", required_argument, 0, PF_TOX_THRESHOLD},                \
    {"toxicity-detectors", required_argument, 0, PF_TOX_DETECTORS}

typedef struct cli_policy {
    rag_collection_options opts;   /* what a new collection gets: the defaults below + flags */
    unsigned given;                /* which flags were given (bits of 1 << (code - PF_PII)) */
} cli_policy;

/* The front doors' defaults for a new collection: every filter off except duplicates,
 * which are skipped (threshold 0.8). */
void cli_policy_init(cli_policy *p);

/* Takes one getopt result: 1 when it was a policy flag (applied), 0 when it is not one,
 * -1 on a bad value (printed as "ragcore <cmd>: --flag: why"). */
int cli_policy_flag(cli_policy *p, const char *cmd, int code, const char *arg);

/* Resolves the quality flags (a quality option without --quality turns on that filter
 * only) and checks the combination. 0, or -1 (printed). */
int cli_policy_finish(cli_policy *p, const char *cmd);

/* Compares the given flags with an existing collection's stored policy: 0 when they agree
 * (flags not given never disagree), else prints which differ and how to change the
 * policy explicitly, and returns -1. */
int cli_policy_check(const cli_policy *p, const char *cmd, const char *dbdir, const char *coll,
                     const rag_collection_options *stored);

/* Sets in o the settings whose flags were given (any quality flag turns quality on; the
 * other fields of o are kept): `collection set` over a stored policy. */
void cli_policy_overlay(const cli_policy *p, rag_collection_options *o);

/* The help paragraph of the flags. */
void cli_policy_help(FILE *out);

#endif
