/* backup.h - consistent backups of a store that is in use, and their restoration.
 *
 * A backup directory holds data.mdb (LMDB's compacting copy: one read snapshot, so it
 * holds exactly the transactions committed before the copy began - whole documents only)
 * and index/<collection id>.idx files copied just before the snapshot. An index file is
 * older than or equal to the snapshot, so opening the restored store replays the vectors
 * committed after it; a copied index file that does not verify against the snapshot is
 * dropped (the store rebuilds that index when opened). */
#ifndef RAG_BACKUP_H
#define RAG_BACKUP_H

#include "ragcore.h"

#include <stdint.h>

typedef struct rag_backup_info {
    uint64_t bytes;            /* bytes written (data.mdb + index files) */
    uint32_t index_files;      /* index files kept */
    uint32_t index_dropped;    /* index files dropped because they did not verify */
    uint64_t documents;        /* documents in the copy, all collections */
    double seconds;
} rag_backup_info;

/* Backs up the store open in `db` into `outdir` while other threads keep writing:
 * checkpoints the indexes, copies the index files, then takes the LMDB compacting copy.
 * `outdir` must not exist or be empty (RAG_EEXIST otherwise); it appears complete or not
 * at all (written under a temporary name, fsynced, renamed). info may be NULL.
 * Errors: RAG_EEXIST, RAG_EFULL, RAG_EIO, RAG_ESTORE. */
int rag_db_backup(rag_db *db, const char *outdir, rag_backup_info *info);

/* Same for a store directory that this process does not have open (other processes may
 * be writing to it); no checkpoint is taken. */
int rag_backup_dir(const char *dbdir, const char *outdir, rag_backup_info *info);

/* Restores the backup in `backup` into store directory `dbdir`. A `dbdir` that exists and
 * is not empty is refused (RAG_EEXIST) unless `force`; with force it must be a ragcore
 * store (RAG_EINVAL otherwise), and no writer may have it open: the restore takes the
 * store's writer lock (RAG_EBUSY, naming the holder, when a writer such as a running
 * server has it; read-only handles keep the replaced store's snapshot until reopened). The restored copy
 * is checked before it replaces anything: RAG_ECORRUPT (naming the first problem) when the
 * backup is inconsistent; index files that do not verify are dropped (rebuilt at open).
 * A crash during the replacement leaves either store with no index files (rebuilt at open),
 * never a mix. info may be NULL. */
int rag_restore(const char *backup, const char *dbdir, int force, rag_backup_info *info);

#endif
