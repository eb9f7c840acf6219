/* backup.h - directory helpers of backups, restores and salvages (core/backup.c). */
#ifndef RAG_BACKUP_H
#define RAG_BACKUP_H

/* 0: `dir` is absent, 1: an empty directory, 2: a non-empty directory, 3: not a directory. */
int rag_dir_state(const char *dir);

/* Makes directory `tmp` appear as `target` (absent or an empty directory) by one rename,
 * then fsyncs the parent. RAG_EIO (or RAG_EFULL) naming both when the rename fails. */
int rag_dir_publish(const char *tmp, const char *target);

/* Removes the files a store directory holds (data.mdb, lock.mdb, its index files and
 * temporary index files) and the directory when it is then empty. */
void rag_store_files_remove(const char *dir);

#endif
