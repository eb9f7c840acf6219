/* lockfile.h - a store's writer lock: one exclusive OS lock on "<store>/write.lock".
 *
 * Whoever writes to a store (a read-write rag_open, a repairing check, a restore in place)
 * holds it for as long as it may write. It is an flock() on a descriptor opened with
 * O_CLOEXEC: it conflicts with every other open file description, another handle of the
 * same process included, and the kernel drops it when the holder dies, so a crashed writer
 * never leaves a stale lock behind. The holder writes "<pid> <program>" into the file so
 * that a refused writer can name it. Readers take no lock. */
#ifndef RAG_LOCKFILE_H
#define RAG_LOCKFILE_H

/* The lock file's name inside a store directory. */
#define RAG_LOCKFILE_NAME "write.lock"

typedef struct rag_lockfile rag_lockfile;

/* Takes store `dir`'s writer lock without waiting; `dir` must exist. The lock file is
 * created when absent (*created, may be NULL, then receives 1). On success *out holds the
 * lock until rag_lockfile_release. Errors: RAG_EBUSY when another holder has it, with a
 * message naming the store, the holder's pid and program ("store '/x' is open for writing
 * by pid 4242 (ragcore-server)"); RAG_EIO when the file cannot be created or locked. */
int rag_lockfile_acquire(const char *dir, rag_lockfile **out, int *created);

/* Releases the lock and frees `lk`; NULL is a no-op. With `remove`, first deletes the lock
 * file (for an open that created it and then failed, so the directory is left as it was):
 * a writer that opened the old file meanwhile notices and takes a new one. */
void rag_lockfile_release(rag_lockfile *lk, int remove);

#endif
