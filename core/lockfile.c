/* lockfile.c - a store's writer lock: flock on <store>/write.lock naming its holder. */
#include "lockfile.h"
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct rag_lockfile {
    int fd;
    char *path;
};

/* Names the holder of the lock in `fd`'s file: "pid 4242 (ragcore-server)", or a
 * description when the holder has not written its line yet. */
static void describe_holder(int fd, char *out, size_t n)
{
    char buf[256];
    ssize_t len = pread(fd, buf, sizeof buf - 1, 0);
    long pid = 0;
    char prog[128] = "";
    if (len > 0) {
        buf[len] = '\0';
        if (sscanf(buf, "%ld %127[^\n]", &pid, prog) < 1)
            pid = 0;
    }
    if (pid <= 0) {
        snprintf(out, n, "another process (it has not recorded its pid yet)");
        return;
    }
    snprintf(out, n, "pid %ld (%s)%s", pid, prog[0] ? prog : "unknown program",
             pid == (long)getpid() ? ", another handle of this process" : "");
}

/* Records this process as the holder: "<pid> <program>\n". 0, or -1 when it could not be
 * written: a refused writer then names the holder less precisely, nothing else depends
 * on it. */
static int record_holder(int fd)
{
    char line[256];
    int n = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(),
                     program_invocation_short_name && *program_invocation_short_name
                         ? program_invocation_short_name
                         : "unknown");
    if (n < 0 || (size_t)n >= sizeof line)
        n = (int)strlen(line);
    /* Written before the truncation, so a reader sees either line whole. */
    if (pwrite(fd, line, (size_t)n, 0) != n || ftruncate(fd, n) != 0)
        return -1;
    return 0;
}

int rag_lockfile_acquire(const char *dir, rag_lockfile **out, int *created)
{
    *out = NULL;
    if (created)
        *created = 0;
    rag_lockfile *lk = rag_calloc(1, sizeof *lk);
    size_t plen = strlen(dir) + sizeof "/" RAG_LOCKFILE_NAME;
    int rc = RAG_OK;
    if (!lk || !(lk->path = rag_malloc(plen))) {
        rc = RAG_ENOMEM;
        goto fail;
    }
    snprintf(lk->path, plen, "%s/%s", dir, RAG_LOCKFILE_NAME);
    lk->fd = -1;
    /* A holder that removes the file (a failed create) may do so between our open and our
     * flock: then the locked file is no longer the one at the path, and we start over. */
    for (int attempt = 0;; attempt++) {
        if (attempt > 100) {
            rc = rag_fail(RAG_EIO, "cannot lock '%s': it keeps being replaced", lk->path);
            goto fail;
        }
        int fd = open(lk->path, O_RDWR | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            fd = open(lk->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd >= 0 && created)
                *created = 1;
            if (fd < 0 && errno == EEXIST)
                continue; /* created by another opener meanwhile */
        }
        if (fd < 0) {
            rc = rag_fail(RAG_EIO, "cannot open the store's lock file '%s': %s", lk->path,
                          strerror(errno));
            goto fail;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            if (e == EWOULDBLOCK) {
                char who[256];
                describe_holder(fd, who, sizeof who);
                rc = rag_fail(RAG_EBUSY, "store '%s' is open for writing by %s", dir, who);
            } else {
                rc = rag_fail(RAG_EIO, "cannot lock '%s': %s", lk->path, strerror(e));
            }
            close(fd);
            goto fail;
        }
        struct stat held, now;
        if (fstat(fd, &held) == 0 && stat(lk->path, &now) == 0 && held.st_dev == now.st_dev &&
            held.st_ino == now.st_ino) {
            lk->fd = fd;
            break;
        }
        close(fd);
    }
    record_holder(lk->fd); /* best effort */
    *out = lk;
    return RAG_OK;
fail:
    if (lk)
        free(lk->path);
    free(lk);
    return rc;
}

void rag_lockfile_release(rag_lockfile *lk, int remove)
{
    if (!lk)
        return;
    if (remove)
        unlink(lk->path); /* while still locked: see rag_lockfile_acquire */
    close(lk->fd);
    free(lk->path);
    free(lk);
}
