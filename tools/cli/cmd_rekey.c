/* cmd_rekey.c - `ragcore rekey`: rotates the encryption key of an encrypted store. */
#include "cli.h"

#include "ragcore.h"

#include <getopt.h>
#include <stdio.h>

static void rekey_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore rekey --db DIR [--key-file PATH] [--new-key-file PATH]\n"
            "                    [--rotate-hash-key]\n\n"
            "Re-encrypts every record of an encrypted store and rewrites its index files\n"
            "under a new key, in transactions of 1,000 records. The current key comes from\n"
            "--key-file or RAGCORE_STORE_KEY, the new one from --new-key-file or\n"
            "RAGCORE_NEW_STORE_KEY (64 hex digits, or a passphrase). From the start the\n"
            "store opens with the new key only; an interrupted rekey is finished by the\n"
            "next read-write open or rekey.\n"
            "--rotate-hash-key also replaces the hash key of the BM25 term hashes,\n"
            "embedding-cache keys and duplicate-detection hashes: the lexical index, the\n"
            "chunk-hash counts and the duplicate index are rebuilt from the stored texts,\n"
            "the embedding cache emptied and data.mdb scrubbed; an interrupted rotation\n"
            "is redone by the next read-write open.\n");
}

int cmd_rekey(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"help", no_argument, 0, 'h'},
                                             {"rotate-hash-key", no_argument, 0, 'H'},
                                             {0, 0, 0, 0}};
    const char *dbdir = NULL;
    int opt, rotate_hash = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'h': rekey_usage(stdout); return CLI_OK;
        case 'H': rotate_hash = 1; break;
        default: rekey_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir || optind != argc) {
        cli_error("rekey", "%s", !dbdir ? "--db DIR is required" : "unexpected argument");
        rekey_usage(stderr);
        return CLI_USAGE;
    }
    struct rag_db *db = cli_open("rekey", dbdir, 0);
    if (!db)
        return CLI_DATA;
    rag_rekey_options o = {NULL, cli_new_key_file, rotate_hash};
    int rc = rag_rekey_opts(db, &o);
    if (rc != RAG_OK)
        cli_error("rekey", "%s", rag_errmsg());
    else
        printf("store '%s' re-encrypted under the new key%s\n", dbdir,
               rotate_hash ? ", hashed keys rewritten under a new hash key" : "");
    if (rag_close(db) != RAG_OK && rc == RAG_OK) {
        cli_error("rekey", "checkpoint failed: %s", rag_errmsg());
        rc = RAG_EIO;
    }
    return rc == RAG_OK ? CLI_OK : CLI_DATA;
}
