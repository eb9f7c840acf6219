/* main.c - `ragcore` command-line entry point: dispatches to subcommands. */
#include "cli.h"

#include "ragcore.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"ingest", cmd_ingest, "chunk, embed and store files, directories and JSONL corpora"},
    {"search", cmd_search, "retrieve the best chunks for a query"},
    {"stats", cmd_stats, "show collections and their counts"},
    {"delete", cmd_delete, "delete documents by id"},
    {"model", cmd_model, "pull or list embedding models"},
    {"embed", cmd_embed, "embed texts and print the vectors as JSON"},
    {"eval", cmd_eval, "measure retrieval quality on BEIR-format queries and qrels"},
    {"context", cmd_context, "build prompt-ready context with citations for a query"},
    {"sync", cmd_sync, "re-scan sources: add, update and delete documents"},
    {"collection", cmd_collection, "show or change a collection's settings (hygiene policy)"},
    {"pii", cmd_pii, "re-mask stored text under a collection's current PII policy (an erasure)"},
    {"gc", cmd_gc, "purge expired documents"},
    {"keys", cmd_keys, "create, list or revoke API keys of the server"},
    {"serve", cmd_serve, "run the HTTP retrieval server (ragcore-server)"},
    {"cluster", cmd_cluster, "cluster mode: status (shards, replicas, sequences, lag, digests), keys, router, replica"},
    {"check", cmd_check, "verify store consistency (--repair rebuilds derived data)"},
    {"backup", cmd_backup, "copy a store consistently while it is in use"},
    {"restore", cmd_restore, "restore a backup into a store directory"},
    {"rekey", cmd_rekey, "rotate the encryption key of an encrypted store"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

int cli_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ragcore %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *cli_busy_advice(const char *cmd, int rc)
{
    /* The commands that can send their change to the server (--server URL). */
    static const char *const remote[] = {"ingest", "sync", "delete", "keys", "pii"};
    if (rc != RAG_EBUSY)
        return "";
    for (size_t i = 0; i < sizeof remote / sizeof *remote; i++)
        if (strcmp(cmd, remote[i]) == 0)
            return "; stop it first, or use --server URL to send the change to the running "
                   "server";
    return "; stop it first";
}

void cli_open_error(const char *cmd, int rc)
{
    cli_error(cmd, "cannot open store: %s%s", rag_errmsg(), cli_busy_advice(cmd, rc));
}

struct rag_db *cli_open(const char *cmd, const char *dbdir, int read_only)
{
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.read_only = read_only;
    oo.store_key_file = cli_key_file;
    rag_db *db = NULL;
    int rc = rag_open(dbdir, &oo, &db);
    if (rc != RAG_OK) {
        cli_open_error(cmd, rc);
        return NULL;
    }
    return db;
}

const char *cli_key_file, *cli_new_key_file;

/* Takes --key-file PATH and --new-key-file PATH (or --name=PATH) out of argv[1..], setting
 * cli_key_file and cli_new_key_file; returns the new argc. */
static int take_key_files(int argc, char **argv)
{
    static const struct {
        const char *flag;
        const char **dst;
    } flags[] = {{"--key-file", &cli_key_file}, {"--new-key-file", &cli_new_key_file}};
    int out = 1;
    for (int i = 1; i < argc; i++) {
        int taken = 0;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0] && !taken; f++) {
            size_t n = strlen(flags[f].flag);
            if (strcmp(argv[i], flags[f].flag) == 0 && i + 1 < argc) {
                *flags[f].dst = argv[++i];
                taken = 1;
            } else if (strncmp(argv[i], flags[f].flag, n) == 0 && argv[i][n] == '=') {
                *flags[f].dst = argv[i] + n + 1;
                taken = 1;
            }
        }
        if (!taken)
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ragcore COMMAND [OPTIONS]   (ragcore COMMAND --help for details)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nan encrypted store's key: --key-file PATH with any command that opens a "
                 "store\n(or RAGCORE_STORE_KEY); a new store opened with a key is created "
                 "encrypted\n");
    fprintf(out, "\nexit status: 0 ok, 1 usage error, 2 data error\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ragcore %s (%s)\n", rag_version(), rag_kernels());
        return CLI_OK;
    }
    /* serve and keys run ragcore-server, which reads --key-file itself */
    if (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "keys") != 0)
        argc = take_key_files(argc, argv);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ragcore: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
