/* cli.h - shared declarations of the `ragcore` command-line subcommands. */
#ifndef RAG_CLI_H
#define RAG_CLI_H

#include <stdio.h>

/* Exit codes of every subcommand. */
enum { CLI_OK = 0, CLI_USAGE = 1, CLI_DATA = 2 };

/* Each subcommand takes argv[0] = its own name and returns an exit code. */
int cmd_ingest(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_pii(int argc, char **argv);     /* cmd_pii.c: re-mask stored text (an erasure) */
int cmd_model(int argc, char **argv);   /* cmd_model.c: model pull|list */
int cmd_embed(int argc, char **argv);   /* cmd_model.c: embed texts to JSON vectors */
int cmd_serve(int argc, char **argv);   /* cmd_serve.c: runs ragcore-server */
int cmd_cluster(int argc, char **argv); /* cmd_serve.c: ragcore-server cluster ... */
int cmd_eval(int argc, char **argv);    /* cmd_eval.c: BEIR-style retrieval evaluation */
int cmd_context(int argc, char **argv); /* cmd_context.c: prompt-ready context */
int cmd_sync(int argc, char **argv);    /* cmd_sync.c: re-sync sources */
int cmd_gc(int argc, char **argv);      /* cmd_sync.c: purge expired documents */
int cmd_collection(int argc, char **argv); /* cmd_collection.c: settings of a collection */
int cmd_keys(int argc, char **argv);    /* cmd_keys.c: API keys of a store (server) */
/* cmd_keys.c: `ragcore cluster keys` (argv[0] "keys"): API keys through a router */
int cmd_cluster_keys(int argc, char **argv);
int cmd_check(int argc, char **argv);   /* cmd_check.c: consistency check and repair */
int cmd_backup(int argc, char **argv);  /* cmd_backup.c: consistent copy of a live store */
int cmd_restore(int argc, char **argv); /* cmd_backup.c: restore a backup */
int cmd_rekey(int argc, char **argv);   /* cmd_rekey.c: rotate an encrypted store's key */

/* The store key files given anywhere on the command line (--key-file PATH, --new-key-file
 * PATH; main removes them from argv before the subcommand parses it), or NULL. cli_open
 * and every other rag_open of the CLI pass cli_key_file as rag_open_options.store_key_file
 * (without one the library reads RAGCORE_STORE_KEY). */
extern const char *cli_key_file;
extern const char *cli_new_key_file;

struct rag_db;
/* Opens the store at dbdir with default options (read-only when asked); on failure prints
 * what cli_open_error prints and returns NULL. */
struct rag_db *cli_open(const char *cmd, const char *dbdir, int read_only);

/* Prints "ragcore <cmd>: cannot open store: <detail>" for a failed rag_open that returned
 * rc, followed by cli_busy_advice. */
void cli_open_error(const char *cmd, int rc);

/* What to do when another writer holds the store (rc == RAG_EBUSY): "; stop it first",
 * and for commands with --server, "or use --server URL to send the change to the running
 * server". "" for any other rc. Static text. */
const char *cli_busy_advice(const char *cmd, int rc);

/* Parses s, a whole decimal integer in [lo, hi], into *out (option values). 0, or -1 when s
 * is empty, has anything after the digits, overflows or is out of range. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);

/* Prints "ragcore <cmd>: <message>" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
