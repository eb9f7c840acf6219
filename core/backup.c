/* backup.c - consistent backups of a live store (LMDB compacting copy + index files) and
 * restoration into a store directory. */
#include "backup.h"
#include "coll_index.h"
#include "db.h"
#include "lockfile.h"
#include "status.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int errno_status(int e)
{
    return e == ENOSPC || e == EDQUOT ? RAG_EFULL : RAG_EIO;
}

static void fsync_path(const char *path, int dir)
{
    int fd = open(path, dir ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Copies src to dst (created or truncated) and fsyncs it; adds its size to *bytes. */
static int copy_file(const char *src, const char *dst, uint64_t *bytes)
{
    int in = open(src, O_RDONLY), out = -1, rc = RAG_OK;
    char *buf = NULL;
    if (in < 0)
        return rag_fail(errno == ENOENT ? RAG_ENOTFOUND : RAG_EIO, "cannot open '%s': %s", src,
                        strerror(errno));
    if ((out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0) {
        rc = rag_fail(errno_status(errno), "cannot create '%s': %s", dst, strerror(errno));
        goto cleanup;
    }
    if (!(buf = rag_malloc(1 << 20))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = rag_fail(RAG_EIO, "cannot read '%s': %s", src, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = rag_fail(errno_status(errno), "cannot write '%s': %s", dst, strerror(errno));
                goto cleanup;
            }
            off += w;
        }
        if (bytes)
            *bytes += (uint64_t)n;
    }
    if (fsync(out) != 0)
        rc = rag_fail(errno_status(errno), "cannot sync '%s': %s", dst, strerror(errno));
cleanup:
    free(buf);
    if (out >= 0 && close(out) != 0 && rc == RAG_OK)
        rc = rag_fail(errno_status(errno), "cannot close '%s': %s", dst, strerror(errno));
    close(in);
    return rc;
}

/* 1 when `name` is "<digits>.idx". */
static int is_index_name(const char *name)
{
    const char *p = name;
    while (*p >= '0' && *p <= '9')
        p++;
    return p > name && strcmp(p, ".idx") == 0;
}

/* Copies every index file of srcdir/index into dstdir/index. */
static int copy_index_files(const char *srcdir, const char *dstdir, rag_backup_info *info)
{
    char src[4096], dst[4096];
    rag_coll_index_dir(dstdir, dst, sizeof dst);
    if (mkdir(dst, 0700) != 0 && errno != EEXIST)
        return rag_fail(errno_status(errno), "cannot create '%s': %s", dst, strerror(errno));
    rag_coll_index_dir(srcdir, src, sizeof src);
    DIR *d = opendir(src);
    if (!d)
        return RAG_OK; /* no index files yet */
    int rc = RAG_OK;
    struct dirent *e;
    while (rc == RAG_OK && (e = readdir(d))) {
        if (!is_index_name(e->d_name))
            continue;
        snprintf(src, sizeof src, "%s/index/%s", srcdir, e->d_name);
        snprintf(dst, sizeof dst, "%s/index/%s", dstdir, e->d_name);
        rc = copy_file(src, dst, &info->bytes);
        if (rc == RAG_ENOTFOUND) { /* dropped meanwhile */
            rag_clear_error();
            rc = RAG_OK;
            continue;
        }
        if (rc == RAG_OK)
            info->index_files++;
    }
    closedir(d);
    fsync_path(dst, 0);
    return rc;
}

/* An encrypted store's key for the check of a copy (as rag_check_keyed takes it). */
typedef struct copy_key {
    const char *key, *file;
} copy_key;

/* Checks the copy in `dir` (an encrypted one with key k): drops index files that do not
 * verify; fails with the first other problem. Removes the lock file the check created. */
static int verify_copy(const char *dir, const copy_key *k, rag_backup_info *info)
{
    rag_check_report *r = NULL;
    int rc = rag_check_keyed(dir, 0, 0, k->key, k->file, &r);
    char path[4096];
    if (rc == RAG_OK) {
        for (size_t i = 0; i < rag_check_report_size(r); i++) {
            const rag_check_item *it = rag_check_report_item(r, i);
            if (it->kind != RAG_CHECK_PROBLEM)
                continue;
            if (it->index_file) {
                rag_coll_index_path(dir, it->coll_id, path, sizeof path);
                if (unlink(path) == 0) {
                    info->index_dropped++;
                    info->index_files--;
                }
                continue;
            }
            rc = rag_fail(RAG_ECORRUPT, "the copy fails its check: %s%s%s", it->collection,
                          it->collection[0] ? ": " : "", it->message);
            break;
        }
        info->documents = rag_check_report_totals(r)->documents;
    }
    rag_check_report_free(r);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    return rc;
}

/* Removes the files this module writes into `dir` (data.mdb, lock.mdb, index/N.idx) and
 * the directory when it is then empty. */
void rag_store_files_remove(const char *dir)
{
    char path[4096];
    rag_coll_index_dir(dir, path, sizeof path);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (is_index_name(e->d_name) || strstr(e->d_name, ".idx.tmp")) {
                snprintf(path, sizeof path, "%s/index/%s", dir, e->d_name);
                unlink(path);
            }
        }
        closedir(d);
        rag_coll_index_dir(dir, path, sizeof path);
        rmdir(path);
    }
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

/* 0: absent, 1: empty directory, 2: non-empty directory, 3: not a directory. */
int rag_dir_state(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return 0;
    if (!S_ISDIR(sb.st_mode))
        return 3;
    DIR *d = opendir(dir);
    if (!d)
        return 2;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n ? 2 : 1;
}

/* Makes `tmp` appear as `target` (absent or an empty directory). */
int rag_dir_publish(const char *tmp, const char *target)
{
    if (rag_dir_state(target) == 1)
        rmdir(target);
    if (rename(tmp, target) != 0)
        return rag_fail(errno_status(errno), "cannot rename '%s' to '%s': %s", tmp, target,
                        strerror(errno));
    char *parent = rag_strdup(target);
    if (!parent)
        return RAG_ENOMEM;
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    else if (slash)
        slash[1] = '\0';
    fsync_path(slash ? parent : ".", 1);
    free(parent);
    return RAG_OK;
}

static int backup_into(rag_store *st, const char *dbdir, const char *outdir,
                       const copy_key *k, rag_backup_info *info)
{
    double t0 = rag_monotonic();
    int state = rag_dir_state(outdir);
    if (state >= 2)
        return rag_fail(RAG_EEXIST, "backup directory '%s' exists and is not empty", outdir);
    char tmp[4096], path[4200];
    snprintf(tmp, sizeof tmp, "%s.partial-%ld", outdir, (long)getpid());
    rag_store_files_remove(tmp);
    if (mkdir(tmp, 0700) != 0)
        return rag_fail(errno_status(errno), "cannot create '%s': %s", tmp, strerror(errno));
    /* Index files first: each is then no newer than the snapshot taken after it. */
    int rc = copy_index_files(dbdir, tmp, info);
    if (rc == RAG_OK)
        rc = rag_store_backup(st, tmp);
    if (rc == RAG_OK) {
        struct stat sb;
        snprintf(path, sizeof path, "%s/data.mdb", tmp);
        if (stat(path, &sb) == 0)
            info->bytes += (uint64_t)sb.st_size;
        fsync_path(path, 0);
        rc = verify_copy(tmp, k, info);
    }
    if (rc == RAG_OK) {
        rag_coll_index_dir(tmp, path, sizeof path);
        fsync_path(path, 1);
        fsync_path(tmp, 1);
        rc = rag_dir_publish(tmp, outdir);
    }
    if (rc != RAG_OK)
        rag_store_files_remove(tmp);
    info->seconds = rag_monotonic() - t0;
    return rc;
}

void rag_backup_options_init(rag_backup_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->version = RAG_BACKUP_OPTIONS_VERSION;
}

int rag_backup(rag_db *db, const char *outdir, rag_backup_info *info)
{
    return rag_backup_with(db, outdir, NULL, info);
}

int rag_backup_with(rag_db *db, const char *outdir, const rag_backup_options *opts,
                    rag_backup_info *info)
{
    rag_clear_error();
    rag_backup_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    if (!db || !outdir || !*outdir)
        return rag_fail(RAG_EINVAL, "rag_backup: NULL argument");
    if (opts && opts->version < 1)
        return rag_fail(RAG_EINVAL, "backup options version is 0 (call rag_backup_options_init)");
    int rc = rag_checkpoint(db);
    if (rc != RAG_OK)
        rag_clear_error(); /* older index files are still consistent: replayed at open */
    copy_key k = {opts ? opts->store_key : NULL, opts ? opts->store_key_file : NULL};
    rc = backup_into(db->st, db->dir, outdir, &k, info);
    return rc == RAG_OK ? rc : rag_fail_prefix(rc, "backup of '%s'", db->dir);
}

int rag_backup_dir(const char *dbdir, const char *outdir, rag_backup_info *info)
{
    return rag_backup_dir_keyed(dbdir, outdir, NULL, NULL, info);
}

int rag_backup_dir_keyed(const char *dbdir, const char *outdir, const char *store_key,
                         const char *store_key_file, rag_backup_info *info)
{
    rag_clear_error();
    rag_backup_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    if (!dbdir || !outdir || !*outdir)
        return rag_fail(RAG_EINVAL, "rag_backup_dir: NULL argument");
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", dbdir);
    if (stat(path, &sb) != 0)
        return rag_fail(RAG_ENOTFOUND, "'%s' is not a ragcore store (no data.mdb)", dbdir);
    rag_store *st = NULL;
    int rc = rag_store_open(dbdir, 1, &st);
    copy_key k = {store_key, store_key_file};
    if (rc == RAG_OK)
        rc = backup_into(st, dbdir, outdir, &k, info);
    rag_store_close(st);
    return rc == RAG_OK ? rc : rag_fail_prefix(rc, "backup of '%s'", dbdir);
}

int rag_restore(const char *backup, const char *dbdir, int force, rag_backup_info *info)
{
    return rag_restore_keyed(backup, dbdir, force, NULL, NULL, info);
}

int rag_restore_keyed(const char *backup, const char *dbdir, int force, const char *store_key,
                      const char *store_key_file, rag_backup_info *info)
{
    rag_clear_error();
    rag_backup_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    if (!backup || !dbdir || !*dbdir)
        return rag_fail(RAG_EINVAL, "rag_restore: NULL argument");
    double t0 = rag_monotonic();
    char src[4096], tmp[4096], path[8192], dst[8192];
    struct stat sb;
    snprintf(src, sizeof src, "%s/data.mdb", backup);
    if (stat(src, &sb) != 0)
        return rag_fail(RAG_ENOTFOUND, "'%s' is not a ragcore backup (no data.mdb)", backup);
    int state = rag_dir_state(dbdir);
    if (state == 3)
        return rag_fail(RAG_EINVAL, "'%s' exists and is not a directory", dbdir);
    if (state == 2) {
        snprintf(path, sizeof path, "%s/data.mdb", dbdir);
        if (!force)
            return rag_fail(RAG_EEXIST, "'%s' is not empty (use --force to replace the store in it)",
                            dbdir);
        if (stat(path, &sb) != 0)
            return rag_fail(RAG_EINVAL, "'%s' is not empty and not a ragcore store: refusing to "
                            "replace it", dbdir);
    }
    /* Replacing a store: no writer may have it open (its later writes would be lost). */
    rag_lockfile *lock = NULL;
    int rc = state == 2 ? rag_lockfile_acquire(dbdir, &lock, NULL) : RAG_OK;
    if (rc != RAG_OK)
        return rag_fail_prefix(rc, "restore into '%s'", dbdir);
    snprintf(tmp, sizeof tmp, "%s.restore-%ld", dbdir, (long)getpid());
    rag_store_files_remove(tmp);
    if (mkdir(tmp, 0700) != 0) {
        rag_lockfile_release(lock, 0);
        return rag_fail(errno_status(errno), "cannot create '%s': %s", tmp, strerror(errno));
    }
    snprintf(path, sizeof path, "%s/data.mdb", tmp);
    rc = copy_file(src, path, &info->bytes);
    if (rc == RAG_OK)
        rc = copy_index_files(backup, tmp, info);
    copy_key k = {store_key, store_key_file};
    if (rc == RAG_OK)
        rc = verify_copy(tmp, &k, info);
    if (rc == RAG_OK && state != 2) {
        fsync_path(tmp, 1);
        rc = rag_dir_publish(tmp, dbdir);
    } else if (rc == RAG_OK) {
        /* Replace in place: old index files go first, then data.mdb (atomic rename), then
         * the new index files, so a crash never pairs an index with the wrong data. */
        rag_coll_index_dir(dbdir, path, sizeof path);
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!is_index_name(e->d_name) && !strstr(e->d_name, ".idx.tmp"))
                continue;
            snprintf(dst, sizeof dst, "%s/index/%s", dbdir, e->d_name);
            unlink(dst);
        }
        if (d)
            closedir(d);
        mkdir(path, 0700);
        fsync_path(path, 1);
        snprintf(path, sizeof path, "%s/data.mdb", tmp);
        snprintf(dst, sizeof dst, "%s/data.mdb", dbdir);
        if (rename(path, dst) != 0)
            rc = rag_fail(errno_status(errno), "cannot rename '%s' to '%s': %s", path, dst,
                          strerror(errno));
        snprintf(dst, sizeof dst, "%s/lock.mdb", dbdir);
        unlink(dst);
        fsync_path(dbdir, 1);
        rag_coll_index_dir(tmp, path, sizeof path);
        d = rc == RAG_OK ? opendir(path) : NULL;
        while (d && (e = readdir(d))) {
            if (!is_index_name(e->d_name))
                continue;
            snprintf(path, sizeof path, "%s/index/%s", tmp, e->d_name);
            snprintf(dst, sizeof dst, "%s/index/%s", dbdir, e->d_name);
            if (rename(path, dst) != 0 && rc == RAG_OK)
                rc = rag_fail(errno_status(errno), "cannot rename '%s': %s", path, strerror(errno));
        }
        if (d)
            closedir(d);
        rag_coll_index_dir(dbdir, path, sizeof path);
        fsync_path(path, 1);
    }
    rag_store_files_remove(tmp);
    rag_lockfile_release(lock, 0);
    info->seconds = rag_monotonic() - t0;
    return rc == RAG_OK ? rc : rag_fail_prefix(rc, "restore of '%s' into '%s'", backup, dbdir);
}
