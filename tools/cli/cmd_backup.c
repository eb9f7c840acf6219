/* cmd_backup.c - `ragcore backup` and `ragcore restore`: consistent copies of a store. */
#include "cli.h"

#include "ragcore.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void backup_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore backup --db DIR [--key-file PATH] OUT\n\n"
            "Copies the store into the new directory OUT while other processes may keep\n"
            "writing to it: LMDB's compacting copy (one snapshot: every document committed\n"
            "before the copy began, whole) plus the index files of the last checkpoint,\n"
            "verified against that snapshot (one that does not verify is left out and\n"
            "rebuilt when the restored store is opened). OUT must not exist or be empty.\n"
            "An encrypted store's copy is verified with its key (--key-file, else\n"
            "RAGCORE_STORE_KEY); the copy stays encrypted under the same key.\n");
}

static void restore_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore restore BACKUP --db DIR [--force] [--key-file PATH]\n\n"
            "Restores a backup made by `ragcore backup` into DIR. DIR must not exist or be\n"
            "empty, unless --force: then the store in DIR is replaced (no process may have\n"
            "it open). The copy is checked before anything is replaced (an encrypted one\n"
            "with --key-file PATH, else RAGCORE_STORE_KEY).\n");
}

int cmd_backup(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dbdir = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'h': backup_usage(stdout); return CLI_OK;
        default: backup_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir || optind != argc - 1) {
        cli_error("backup", "%s", !dbdir ? "--db DIR is required" : "exactly one OUT is required");
        backup_usage(stderr);
        return CLI_USAGE;
    }
    rag_backup_info info;
    if (rag_backup_dir_keyed(dbdir, argv[optind], NULL, cli_key_file, &info) != RAG_OK) {
        cli_error("backup", "%s", rag_errmsg());
        return CLI_DATA;
    }
    printf("backed up %llu documents to %s: %.1f MB, %u index files%s in %.2f s\n",
           (unsigned long long)info.documents, argv[optind], (double)info.bytes / 1e6,
           info.index_files, info.index_dropped ? " (stale ones left out)" : "", info.seconds);
    return CLI_OK;
}

int cmd_restore(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"force", no_argument, 0, 'f'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dbdir = NULL;
    int force = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:fh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'f': force = 1; break;
        case 'h': restore_usage(stdout); return CLI_OK;
        default: restore_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir || optind != argc - 1) {
        cli_error("restore", "%s",
                  !dbdir ? "--db DIR is required" : "exactly one BACKUP directory is required");
        restore_usage(stderr);
        return CLI_USAGE;
    }
    rag_backup_info info;
    int rc = rag_restore_keyed(argv[optind], dbdir, force, NULL, cli_key_file, &info);
    if (rc != RAG_OK) {
        cli_error("restore", "%s%s", rag_errmsg(), cli_busy_advice("restore", rc));
        return CLI_DATA;
    }
    printf("restored %llu documents into %s: %.1f MB, %u index files in %.2f s\n",
           (unsigned long long)info.documents, dbdir, (double)info.bytes / 1e6, info.index_files,
           info.seconds);
    return CLI_OK;
}
