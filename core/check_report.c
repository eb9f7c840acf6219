/* check_report.c - check reports, and the checker child process that turns faults into findings. */
#include "check_report.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Records a child sends: one type byte, a 4-byte length, the payload. */
enum { REC_STAGE = 'S', REC_ITEM = 'I', REC_END = 'E' };

/* A checker child whose threads all wait on a lock (a futex) without using CPU time or
 * sending anything for this long is stuck (RAGCORE_CHECK_STALL_S overrides it), and is
 * replaced up to CHECK_TRIES times. */
#define CHECK_STALL_S 30
#define CHECK_TRIES 3

rag_check_report *rag_check_report_new(void)
{
    rag_check_report *r = rag_calloc(1, sizeof *r);
    if (r)
        r->stream_fd = -1;
    return r;
}

/* Writes all of buf; 0 or -1 (the parent is gone: nothing more to do). */
static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends one record made of `n` parts. */
static void send_rec(int fd, char type, const void *const *parts, const size_t *lens, int n)
{
    uint32_t len = 0;
    for (int i = 0; i < n; i++)
        len += (uint32_t)lens[i];
    char hdr[5];
    hdr[0] = type;
    memcpy(hdr + 1, &len, 4);
    if (write_all(fd, hdr, 5) != 0)
        return;
    for (int i = 0; i < n; i++)
        if (write_all(fd, parts[i], lens[i]) != 0)
            return;
}

int rag_check_report_push(rag_check_report *r, int kind, const char *coll, uint32_t cid,
                          int index_file, char *msg)
{
    if (r->stream_fd >= 0) {
        int32_t head[3] = {kind, (int32_t)cid, index_file};
        char name[129];
        snprintf(name, sizeof name, "%s", coll ? coll : "");
        uint32_t nlen = (uint32_t)strlen(name);
        const void *parts[] = {head, &nlen, name, msg ? msg : ""};
        size_t lens[] = {sizeof head, 4, nlen, msg ? strlen(msg) : 0};
        send_rec(r->stream_fd, REC_ITEM, parts, lens, 4);
        free(msg);
        return RAG_OK;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        rag_check_item *q = rag_realloc(r->items, cap * sizeof *q);
        if (!q) {
            free(msg);
            return RAG_ENOMEM;
        }
        r->items = q;
        r->cap = cap;
    }
    rag_check_item *it = &r->items[r->n++];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    snprintf(it->collection, sizeof it->collection, "%s", coll ? coll : "");
    it->coll_id = cid;
    it->index_file = index_file;
    it->message = msg;
    return RAG_OK;
}

void rag_check_stage(rag_check_report *r, const char *fmt, ...)
{
    if (r->stream_fd < 0)
        return;
    char stage[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(stage, sizeof stage, fmt, ap);
    va_end(ap);
    const void *parts[] = {stage};
    size_t lens[] = {strlen(stage)};
    send_rec(r->stream_fd, REC_STAGE, parts, lens, 1);
}

uint64_t rag_check_report_count(const rag_check_report *r, int kind)
{
    return r && kind >= 0 && kind < 4 ? r->counts[kind] : 0;
}

size_t rag_check_report_size(const rag_check_report *r)
{
    return r ? r->n : 0;
}

const rag_check_item *rag_check_report_item(const rag_check_report *r, size_t i)
{
    return r && i < r->n ? &r->items[i] : NULL;
}

const rag_check_totals *rag_check_report_totals(const rag_check_report *r)
{
    return r ? &r->totals : NULL;
}

const char *rag_check_kind_name(int kind)
{
    static const char *const names[] = {"problem", "note", "repaired", "unfixed"};
    return kind >= 0 && kind < 4 ? names[kind] : "unknown";
}

void rag_check_report_free(rag_check_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free((char *)r->items[i].message);
    free(r->items);
    free(r);
}

/* ---- the checker child ------------------------------------------------------------------ */

/* In the child: runs the pass, sends its status, counts, totals and message, and exits
 * without running the parent's exit handlers or flushing its stdio buffers. */
static void __attribute__((noreturn)) child_main(const char *dir, rag_check_pass_fn pass,
                                                 void *user, int fd)
{
    rag_check_report *cr = rag_check_report_new();
    if (cr)
        cr->stream_fd = fd;
    int32_t rc = cr ? pass(dir, user, cr) : RAG_ENOMEM;
    rag_check_report empty;
    memset(&empty, 0, sizeof empty);
    const rag_check_report *src = cr ? cr : &empty;
    const char *msg = rc != RAG_OK ? rag_errmsg() : "";
    const void *parts[] = {&rc, src->counts, &src->totals, msg};
    size_t lens[] = {4, sizeof src->counts, sizeof src->totals, strlen(msg)};
    send_rec(fd, REC_END, parts, lens, 4);
    _exit(0);
}

/* The state letter and CPU time (clock ticks, all threads) of process pid from
 * /proc/<pid>/stat; 0, or -1 when it cannot be read. */
static int proc_progress(pid_t pid, char *state, unsigned long long *ticks)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')'); /* after the command name, which may hold anything */
    unsigned long long ut = 0, st = 0;
    /* state (3rd field), then 10 fields up to utime (14th) and stime (15th) */
    if (!p || sscanf(p + 1, " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", state,
                     &ut, &st) != 3)
        return -1;
    *ticks = ut + st;
    return 0;
}

/* 1 when thread tid of process pid sleeps in a futex wait (a lock), by its current system
 * call or else by where the kernel says it waits; 0 when it does not, or when neither can
 * be read. */
static int thread_in_futex_wait(pid_t pid, const char *tid)
{
    char path[128], buf[128] = "";
    snprintf(path, sizeof path, "/proc/%d/task/%.20s/syscall", (int)pid, tid);
    FILE *f = fopen(path, "r");
    if (f) {
        long nr = -1;
        int got = fscanf(f, "%ld", &nr);
        fclose(f);
        if (got == 1)
            return nr == SYS_futex;
    }
    snprintf(path, sizeof path, "/proc/%d/task/%.20s/wchan", (int)pid, tid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, "futex") != NULL;
}

/* 1 when every thread of process pid sleeps in a futex wait. A child with a thread that
 * waits for anything else (a pipe, another process: AddressSanitizer's symbolizer after a
 * crash of one of its threads, while the others wait for that one) is not stuck on a
 * lock. */
static int all_in_futex_wait(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int threads = 0, waiting = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        threads++;
        waiting += thread_in_futex_wait(pid, e->d_name);
    }
    closedir(d);
    return threads > 0 && waiting == threads;
}

/* Reads the child's records until it closes the pipe: *buf (malloc'd), *len. *stuck = 1
 * (and the read ends) when every thread of the child waits on a lock for stall_s seconds
 * without using CPU time or sending anything: a fork copies only the calling thread, so a
 * lock that another thread of this process held at that moment (the allocator's, under
 * AddressSanitizer, or any other) is never released in the child, which then waits for it
 * forever. */
static int read_stream(int fd, pid_t pid, int stall_s, char **buf, size_t *len, int *stuck)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    unsigned long long last_ticks = 0;
    int quiet_s = 0;
    *stuck = 0;
    if (!b)
        return RAG_ENOMEM;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int ready = poll(&pfd, 1, 1000);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) { /* a quiet second: is the child still working? */
            char state = 0;
            unsigned long long ticks = 0;
            if (proc_progress(pid, &state, &ticks) == 0 && state == 'S' &&
                ticks == last_ticks && all_in_futex_wait(pid))
                quiet_s++;
            else
                quiet_s = 0;
            last_ticks = ticks;
            if (quiet_s >= stall_s) {
                *stuck = 1;
                break;
            }
            continue;
        }
        quiet_s = 0;
        if (n == cap) {
            char *q = realloc(b, cap * 2);
            if (!q) {
                free(b);
                return RAG_ENOMEM;
            }
            b = q;
            cap *= 2;
        }
        ssize_t got = read(fd, b + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    *buf = b;
    *len = n;
    return RAG_OK;
}

/* Adds the child's records to r; *ended tells whether its final record arrived. */
static int merge_stream(rag_check_report *r, const char *b, size_t n, char *stage, size_t ssz,
                        int *ended, uint64_t item_counts[4])
{
    int rc = RAG_OK;
    for (size_t off = 0; off + 5 <= n;) {
        char type = b[off];
        uint32_t len;
        memcpy(&len, b + off + 1, 4);
        if (len > n - off - 5)
            break; /* cut short by the crash */
        const char *p = b + off + 5;
        off += 5 + len;
        if (type == REC_STAGE) {
            snprintf(stage, ssz, "%.*s", (int)len, p);
        } else if (type == REC_ITEM && len >= 16) {
            int32_t head[3];
            uint32_t nlen;
            memcpy(head, p, sizeof head);
            memcpy(&nlen, p + 12, 4);
            if (nlen > len - 16)
                continue;
            char coll[129];
            snprintf(coll, sizeof coll, "%.*s", (int)nlen, p + 16);
            char *msg = rag_strndup(p + 16 + nlen, len - 16 - nlen);
            if (head[0] >= 0 && head[0] < 4)
                item_counts[head[0]]++;
            if (msg)
                rag_check_report_push(r, head[0], coll, (uint32_t)head[1], head[2], msg);
        } else if (type == REC_END && len >= 4 + sizeof r->counts + sizeof r->totals) {
            int32_t crc;
            uint64_t counts[4];
            rag_check_totals t;
            memcpy(&crc, p, 4);
            memcpy(counts, p + 4, sizeof counts);
            memcpy(&t, p + 4 + sizeof counts, sizeof t);
            size_t mlen = len - 4 - sizeof counts - sizeof t;
            for (int i = 0; i < 4; i++)
                r->counts[i] += counts[i];
            uint64_t *dst = (uint64_t *)&r->totals;
            const uint64_t *add = (const uint64_t *)&t;
            for (size_t i = 0; i < sizeof t / sizeof(uint64_t); i++)
                dst[i] += add[i];
            rc = crc;
            if (rc != RAG_OK)
                rag_fail(rc, "%.*s", (int)mlen, p + 4 + sizeof counts + sizeof t);
            *ended = 1;
        }
    }
    return rc;
}

/* Test hook: RAGCORE_CHECK_TEST_STALL=N makes checker children wait forever on a lock
 * before they start, as one that inherited a held lock would, until N of this process's
 * children have. */
static atomic_int children_stalled;

/* Starts a checker child and reads what it sends (read_stream): RAG_OK with *buf, *len,
 * *status and *w (waitpid's result), or an error; *stuck when the child was stuck (it is
 * then killed and reaped, and nothing is returned). */
static int run_child(const char *dir, rag_check_pass_fn pass, void *user, int stall_s,
                     char **buf, size_t *len, int *status, pid_t *w, int *stuck)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return rag_fail(RAG_EIO, "cannot start the checker process: %s", strerror(errno));
    const char *hook = getenv("RAGCORE_CHECK_TEST_STALL");
    int stall = hook && atomic_load(&children_stalled) < atoi(hook);
    if (stall)
        atomic_fetch_add(&children_stalled, 1);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return rag_fail(RAG_EIO, "cannot start the checker process: %s", strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        static int never_set;
        while (stall) /* a futex wait that nothing ends */
            syscall(SYS_futex, &never_set, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        child_main(dir, pass, user, fds[1]);
    }
    close(fds[1]);
    int rc = read_stream(fds[0], pid, stall_s, buf, len, stuck);
    close(fds[0]);
    if (*stuck)
        kill(pid, SIGKILL);
    while ((*w = waitpid(pid, status, 0)) < 0 && errno == EINTR)
        ;
    if (rc != RAG_OK || *stuck) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

int rag_check_isolated(const char *dir, rag_check_pass_fn pass, void *user,
                       rag_check_report *r, int *crashed)
{
    *crashed = 0;
    const char *env = getenv("RAGCORE_CHECK_FORK");
    if (env && strcmp(env, "0") == 0)
        return pass(dir, user, r);
    const char *stall_env = getenv("RAGCORE_CHECK_STALL_S");
    int stall_s = stall_env && atoi(stall_env) > 0 ? atoi(stall_env) : CHECK_STALL_S;
    char *buf = NULL;
    size_t len = 0;
    int status = 0, stuck = 0, rc = RAG_OK;
    pid_t w = -1;
    for (int tries = 0; tries < CHECK_TRIES; tries++) {
        rc = run_child(dir, pass, user, stall_s, &buf, &len, &status, &w, &stuck);
        if (rc != RAG_OK || !stuck)
            break;
    }
    if (rc != RAG_OK)
        return rc;
    if (stuck)
        return rag_fail(RAG_EIO, "checking '%s': the checker process stopped making progress "
                        "%d times (each waited %d s on a lock without using CPU time: one "
                        "another thread held when it was forked); RAGCORE_CHECK_FORK=0 checks "
                        "in this process", dir, CHECK_TRIES, stall_s);
    char stage[256] = "the store";
    int ended = 0;
    uint64_t item_counts[4] = {0, 0, 0, 0};
    rc = merge_stream(r, buf, len, stage, sizeof stage, &ended, item_counts);
    free(buf);
    if (ended)
        return rc;
    /* The child died before it finished: keep what it sent, name where it stopped. */
    for (int i = 0; i < 4; i++)
        r->counts[i] += item_counts[i];
    char how[96];
    if (w > 0 && WIFSIGNALED(status))
        snprintf(how, sizeof how, "died of signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (w > 0 && WIFEXITED(status))
        snprintf(how, sizeof how, "ended with status %d before finishing", WEXITSTATUS(status));
    else
        snprintf(how, sizeof how, "ended before finishing");
    char *msg = NULL;
    if (asprintf(&msg, "page damage in %s: reading it, the checker process %s; LMDB cannot "
                 "read those pages (the check stopped there)", stage, how) >= 0)
        rag_check_report_push(r, RAG_CHECK_PROBLEM, "", 0, 0, msg);
    r->counts[RAG_CHECK_PROBLEM]++;
    *crashed = 1;
    return RAG_OK;
}
