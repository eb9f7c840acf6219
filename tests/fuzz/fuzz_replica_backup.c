/* fuzz_replica_backup.c - libFuzzer target: the backup protocol by which a new replica copies
 * a peer's store (cluster/replica.c), both sides, without a broker. Byte 0 picks the side,
 * the rest is what the other machine sent:
 *   0  requests to a replica's backup service (cluster_backup_answer) over a real store
 *      (hash embedder of dimension 8, collection "fz" holding three documents), one per
 *      line, "$ID" replaced by the name of the backup the last start answered; a start that
 *      answers "making" is asked about until made. Every reply must be a JSON object (its
 *      "error" a message; a ready backup's description one the new replica accepts), a
 *      data part of at most CLUSTER_BACKUP_CHUNK bytes or an error part with a message;
 *      once the service is closed, nothing may be left in its data directory but the
 *      store and an empty .backups;
 *   1  a peer's description of a ready backup (cluster_backup_check): an accepted one names
 *      only data.mdb and index/<file> (no '/', no leading '.'), each once, sizes >= 0;
 *   2  a description, '\0', then the peer's replies to the parts asked for (each a 3-byte
 *      little-endian length and that many bytes; none left: no answer), copied by
 *      cluster_backup_fetch into an empty directory: every request goes to the described
 *      peer for a listed file at an offset within it; a copy that succeeds leaves exactly
 *      the listed files, each of its announced size; one that fails says why.
 * RAGFUZZ_WRITE_SEEDS=DIR writes seeds made by the replica's own encoders (a start, status,
 * the parts of each file, done; a ready backup's description; that description with its
 * real parts) to DIR and exits. */
#include "cluster.h"
#include "cluster_support.h"
#include "replica.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static rag_db *db;
static cluster_coll coll;
static char data_dir[256]; /* the replica's data directory: the store in fz/shard-0 */
static char work_dir[300]; /* where fetched copies go */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "fuzz_replica_backup: cannot remove %s\n", path);
        abort();
    }
    return 0;
}

/* Removes a directory tree; missing is fine. */
static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void close_store(void)
{
    rag_close(db);
    rm_rf(data_dir);
}

/* The store the backups are made of: collection "fz" with three documents. In /dev/shm
 * when there is one and TMPDIR is unset: each backup is fsynced, which takes seconds on a
 * busy disk and nothing in memory. */
static void open_store(void)
{
    /* A backup checks its copy in a forked child (rag_check_isolated); forked from this
     * threaded process under ASan, the child can wait forever on an allocator lock another
     * thread held at the fork (seen in CI: an input of 0.4 s past libFuzzer's 10 s limit),
     * which the library survives only by a 30 s stall timeout and retries. The protocol is
     * what is fuzzed here, so the copy is checked in this process. */
    setenv("RAGCORE_CHECK_FORK", "0", 1);
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(data_dir, sizeof data_dir, "%s/ragfuzz-backup.XXXXXX", tmp);
    if (!mkdtemp(data_dir))
        abort();
    char store[400];
    snprintf(store, sizeof store, "%s/fz", data_dir);
    mkdir(store, 0700);
    snprintf(store, sizeof store, "%s/fz/shard-0", data_dir);
    snprintf(work_dir, sizeof work_dir, "%s.copy", data_dir);
    fuzz_cluster_store(store, &db, &coll);
    atexit(close_store);
}

/* Whether name is one a backup may list, checked independently of replica.c. */
static int listed_name_ok(const char *name)
{
    if (!strcmp(name, "data.mdb"))
        return 1;
    return !strncmp(name, "index/", 6) && name[6] && name[6] != '.' &&
           !strchr(name + 6, '/') && !strstr(name, "..");
}

/* Whether subject is a replica's rag.peer.<name>, checked independently of replica.c: a
 * request never goes to another subject, nor to a wildcard. */
static int peer_ok(const char *subject)
{
    return subject && !strncmp(subject, "rag.peer.", 9) && subject[9] &&
           !strpbrk(subject, "*> \t\r\n") && !strstr(subject, "..") &&
           subject[strlen(subject) - 1] != '.';
}

/* Aborts unless the accepted description st names a peer as peer_ok allows and lists files
 * as listed_name_ok allows, once each. */
static void assert_listing(const json_t *st)
{
    json_t *files = json_object_get(st, "files");
    size_t i, k;
    json_t *f, *g;
    if (!peer_ok(json_string_value(json_object_get(st, "peer"))) || !json_is_array(files) ||
        !json_array_size(files))
        abort();
    json_array_foreach(files, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (!name || !listed_name_ok(name) ||
            json_integer_value(json_object_get(f, "size")) < 0)
            abort();
        json_array_foreach(files, k, g)
        {
            if (k < i && !strcmp(name, json_string_value(json_object_get(g, "name"))))
                abort(); /* listed twice */
        }
    }
}

/* The names in dir other than ".", "..", and those in allowed (NULL-terminated): abort. */
static void assert_only(const char *dir, const char *const *allowed)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int ok = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(e->d_name, allowed[i]);
        if (!ok) {
            fprintf(stderr, "fuzz_replica_backup: %s/%s left behind\n", dir, e->d_name);
            abort();
        }
    }
    if (d)
        closedir(d);
}

/* One request body (line, len bytes) with "$ID" replaced by id: malloc'd, NUL-terminated. */
static char *with_id(const char *line, size_t len, const char *id, size_t *out_len)
{
    size_t idn = strlen(id), cap = len + 1;
    for (const char *p = line; (p = memmem(p, (size_t)(line + len - p), "$ID", 3)); p += 3)
        cap += idn;
    char *b = malloc(cap), *w = b;
    if (!b)
        return NULL;
    for (size_t i = 0; i < len;) {
        if (i + 3 <= len && !memcmp(line + i, "$ID", 3)) {
            memcpy(w, id, idn);
            w += idn;
            i += 3;
        } else {
            *w++ = line[i++];
        }
    }
    *w = '\0';
    *out_len = (size_t)(w - b);
    return b;
}

/* Aborts unless reply (rlen bytes) is one a backup service may give. *id: the name of the
 * backup a JSON reply names (kept when none). */
static void assert_reply(const char *reply, size_t rlen, char *id, size_t idlen)
{
    if (!reply)
        return; /* out of memory */
    if (getenv("RAGFUZZ_VERBOSE"))
        fprintf(stderr, "backup service reply: %.*s\n", rlen > 300 ? 300 : (int)rlen, reply);
    if (rlen && (reply[0] == 'D' || reply[0] == 'E')) {
        if (rlen - 1 > CLUSTER_BACKUP_CHUNK || (reply[0] == 'E' && rlen < 2))
            abort(); /* a part longer than a part, or an error that says nothing */
        return;
    }
    json_t *r = json_loadb(reply, rlen, 0, NULL), *e = json_object_get(r, "error");
    if (!json_is_object(r) || (e && (!json_is_string(e) || !json_string_length(e))))
        abort();
    const char *state = json_string_value(json_object_get(r, "state"));
    char err[600];
    if (state && !strcmp(state, "ready")) {
        if (cluster_backup_check(r, NULL, NULL, 0, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "fuzz_replica_backup: own description refused: %s\n", err);
            abort();
        }
        assert_listing(r);
    }
    const char *given = json_string_value(json_object_get(r, "id"));
    if (given && cluster_backup_check_offer(r, err, sizeof err) == 0)
        snprintf(id, idlen, "%s", given);
    json_decref(r);
}

static char *ask_host(cluster_backup_host *h, const char *body, size_t len, size_t *rlen)
{
    return cluster_backup_answer(h, body, len, rlen);
}

/* Requests (lines) to a backup service over the store. */
static void serve(const char *msg, size_t len)
{
    cluster_backup_host *h = NULL;
    if (cluster_backup_host_open("fz-peer", data_dir, db, &coll, 0, &h) < 0)
        abort();
    char id[64] = "none";
    for (const char *p = msg, *end = msg + len; p <= end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t blen = 0, rlen = 0;
        char *body = with_id(p, (size_t)(stop - p), id, &blen);
        char *reply = body ? ask_host(h, body, blen, &rlen) : NULL;
        assert_reply(reply, rlen, id, sizeof id);
        /* a backup being made: asked about until made (a start with a token answers at once) */
        for (int i = 0; reply && rlen && reply[0] == '{' && strstr(reply, "\"making\"") &&
                        i < 10000; i++) {
            free(reply);
            usleep(500);
            char ask[200];
            snprintf(ask, sizeof ask, "{\"op\":\"status\",\"id\":\"%s\"}", id);
            reply = ask_host(h, ask, strlen(ask), &rlen);
            assert_reply(reply, rlen, id, sizeof id);
        }
        free(reply);
        free(body);
        p = stop + 1;
    }
    cluster_backup_host_close(h);
    static const char *const top[] = {"fz", ".backups", NULL}, *const none[] = {NULL};
    char backups[400];
    snprintf(backups, sizeof backups, "%s/.backups", data_dir);
    assert_only(data_dir, top);
    assert_only(backups, none);
}

static void describe(const char *msg, size_t len)
{
    json_t *st = json_loadb(msg, len, 0, NULL);
    char err[600] = "";
    uint64_t total = 0;
    int rc = cluster_backup_check(st, NULL, NULL, 0, &total, err, sizeof err);
    if (getenv("RAGFUZZ_VERBOSE"))
        fprintf(stderr, "description: %s\n", rc == 0 ? "accepted" : err);
    if (rc == 0) {
        assert_listing(st);
        if (cluster_backup_check_offer(st, err, sizeof err) < 0)
            abort();
    } else if (!err[0]) {
        abort(); /* refused without saying why */
    }
    json_decref(st);
}

/* The peer of a fetch: its replies, taken in order. */
typedef struct {
    const uint8_t *p, *end;
    const json_t *st;
} parts;

static char *ask_parts(void *ctx, const char *subject, const char *body, size_t len,
                       int timeout_ms, size_t *rlen)
{
    parts *q = ctx;
    (void)timeout_ms;
    *rlen = 0;
    /* the request: a get of a listed file at an offset within it, to the described peer */
    json_t *req = json_loadb(body, len, 0, NULL);
    const char *file = json_string_value(json_object_get(req, "file"));
    json_int_t off = json_integer_value(json_object_get(req, "offset"));
    const json_t *listed = NULL;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(q->st, "files"), i, f)
    {
        if (file && !strcmp(file, json_string_value(json_object_get(f, "name"))))
            listed = f;
    }
    if (!peer_ok(subject) || strcmp(subject, json_string_value(json_object_get(q->st, "peer"))) ||
        !listed ||
        strcmp(json_string_value(json_object_get(req, "op")), "get") ||
        strcmp(json_string_value(json_object_get(req, "id")),
               json_string_value(json_object_get(q->st, "id"))) ||
        off < 0 || off >= json_integer_value(json_object_get(listed, "size")))
        abort();
    json_decref(req);
    if (q->end - q->p < 3)
        return NULL; /* no answer */
    size_t n = (size_t)q->p[0] | (size_t)q->p[1] << 8 | (size_t)q->p[2] << 16;
    q->p += 3;
    if (n > (size_t)(q->end - q->p))
        n = (size_t)(q->end - q->p);
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    memcpy(r, q->p, n);
    r[n] = '\0';
    q->p += n;
    *rlen = n;
    return r;
}

static void fetch(const char *msg, size_t len)
{
    size_t dlen = strnlen(msg, len);
    json_t *st = json_loadb(msg, dlen, 0, NULL);
    parts q = {(const uint8_t *)msg + dlen + (dlen < len), (const uint8_t *)msg + len, st};
    char err[1200] = "";
    rm_rf(work_dir);
    if (mkdir(work_dir, 0700) != 0)
        abort();
    int rc = cluster_backup_fetch(st, work_dir, ask_parts, &q, "fuzz", err, sizeof err);
    if (getenv("RAGFUZZ_VERBOSE"))
        fprintf(stderr, "fetch: %s\n", rc == 0 ? "copied" : err);
    if (rc == 0) {
        /* exactly the listed files, each of its size */
        assert_listing(st);
        size_t i;
        json_t *f;
        int index = 0;
        json_array_foreach(json_object_get(st, "files"), i, f)
        {
            const char *name = json_string_value(json_object_get(f, "name"));
            char path[700];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", work_dir, name);
            if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) ||
                sb.st_size != json_integer_value(json_object_get(f, "size")))
                abort();
            index |= !strncmp(name, "index/", 6);
        }
        static const char *const top[] = {"data.mdb", "index", NULL};
        static const char *const mdb[] = {"data.mdb", NULL};
        assert_only(work_dir, index ? top : mdb);
    } else if (!err[0]) {
        abort(); /* failed without saying why */
    }
    json_decref(st);
    rm_rf(work_dir);
}

static void write_file(const char *dir, const char *name, int side, const char *a, size_t alen,
                       const char *b, size_t blen)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fputc(side, f) == EOF || fwrite(a, 1, alen, f) != alen ||
        (blen && fwrite(b, 1, blen, f) != blen) || fclose(f) != 0)
        abort();
}

/* Seeds: requests in the new replica's format, and what the service answers them. */
static void write_seeds(const char *dir)
{
    cluster_backup_host *h = NULL;
    if (cluster_backup_host_open("fz-peer", data_dir, db, &coll, 0, &h) < 0)
        abort();
    static const char start[] =
        "{\"op\":\"start\",\"collection\":\"fz\",\"shard\":0,\"min_seq\":0}";
    size_t rlen = 0;
    char *desc = cluster_backup_answer(h, start, strlen(start), &rlen);
    json_t *st = desc ? json_loadb(desc, rlen, 0, NULL) : NULL;
    char err[600];
    if (cluster_backup_check(st, NULL, NULL, 0, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_replica_backup: seed description refused: %s\n", err);
        abort();
    }
    write_file(dir, "describe", 1, desc, rlen, NULL, 0);
    /* the server's session: start (with a token), status, a get of each file, done */
    size_t cap = 1 << 16, n = 0;
    char *session = malloc(cap), *copy = malloc(1 << 22);
    size_t clen = 0;
    if (!session || !copy)
        abort();
    n += (size_t)snprintf(session + n, cap - n,
                          "{\"op\":\"start\",\"collection\":\"fz\",\"shard\":0,\"min_seq\":0,"
                          "\"token\":\"r9/1/0/00000000000000aa\"}\n"
                          "{\"op\":\"status\",\"id\":\"$ID\"}\n");
    memcpy(copy, desc, rlen);
    copy[rlen] = '\0';
    clen = rlen + 1;
    const char *id = json_string_value(json_object_get(st, "id"));
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(st, "files"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        json_int_t size = json_integer_value(json_object_get(f, "size"));
        n += (size_t)snprintf(session + n, cap - n,
                              "{\"op\":\"get\",\"id\":\"$ID\",\"file\":\"%s\",\"offset\":0}\n",
                              name);
        for (json_int_t off = 0; off < size;) {
            char ask[400];
            snprintf(ask, sizeof ask, "{\"op\":\"get\",\"id\":\"%s\",\"file\":\"%s\","
                     "\"offset\":%lld}", id, name, (long long)off);
            size_t plen = 0;
            char *part = cluster_backup_answer(h, ask, strlen(ask), &plen);
            if (!part || plen < 2 || part[0] != 'D' || clen + 3 + plen > (1 << 22))
                abort();
            copy[clen++] = (char)(plen & 0xff);
            copy[clen++] = (char)(plen >> 8 & 0xff);
            copy[clen++] = (char)(plen >> 16 & 0xff);
            memcpy(copy + clen, part, plen);
            clen += plen;
            off += (json_int_t)plen - 1;
            free(part);
        }
    }
    n += (size_t)snprintf(session + n, cap - n,
                          "{\"op\":\"get\",\"id\":\"$ID\",\"file\":\"data.mdb\","
                          "\"offset\":9999999}\n"
                          "{\"op\":\"done\",\"id\":\"$ID\"}\n"
                          "{\"op\":\"status\",\"id\":\"$ID\"}");
    write_file(dir, "session", 0, session, n, NULL, 0);
    write_file(dir, "fetch", 2, copy, clen, NULL, 0);
    static const char bad[] =
        "{\"op\":\"get\",\"id\":\"../..\",\"file\":\"/etc/passwd\",\"offset\":0}\n"
        "{\"op\":\"start\",\"collection\":\"nope\",\"shard\":3}";
    write_file(dir, "bad-requests", 0, bad, strlen(bad), NULL, 0);
    /* a small copy: two files */
    static const char small[] =
        "{\"peer\":\"rag.peer.p\",\"id\":\"bk-1-0\",\"seq\":0,\"state\":\"ready\",\"files\":"
        "[{\"name\":\"data.mdb\",\"size\":5},{\"name\":\"index/0.idx\",\"size\":3}]}\0"
        "\x06\0\0Dhello\x04\0\0Dabc";
    write_file(dir, "fetch-small", 2, small, sizeof small - 1, NULL, 0);
    free(session);
    free(copy);
    free(desc);
    json_decref(st);
    cluster_backup_host_close(h);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    open_store();
    const char *seeds = getenv("RAGFUZZ_WRITE_SEEDS");
    if (seeds) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *msg = fuzz_cluster_message(data, size);
    if (!msg)
        return 0;
    switch (data[0] % 3) {
    case 0:
        serve(msg, size - 1);
        break;
    case 1:
        describe(msg, size - 1);
        break;
    default:
        fetch(msg, size - 1);
    }
    free(msg);
    return 0;
}
