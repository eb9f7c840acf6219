/* corpus.c - corpus walking: recursive directories, text/Markdown files, JSONL(.gz). */
#include "corpus.h"
#include "status.h"
#include "text.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define MAX_FILE_BYTES ((size_t)256 << 20)

static const char *const default_include[] = {"*.txt", "*.md", "*.markdown", "*.jsonl",
                                              "*.jsonl.gz"};

typedef struct walk {
    const rag_corpus_options *opts;
    rag_corpus_doc_fn emit;
    rag_corpus_err_fn err;
    void *user;
    int counting;        /* only sum sizes */
    uint64_t bytes;
} walk;

static _Thread_local uint64_t tls_progress;

uint64_t rag_corpus_progress(void)
{
    return tls_progress;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static void report(walk *w, const char *where, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(walk *w, const char *where, int rc, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->err)
        w->err(w->user, where, rc, msg);
}

static int wanted(const walk *w, const char *rel, const char *base)
{
    const rag_corpus_options *o = w->opts;
    for (size_t i = 0; o && i < o->n_exclude; i++)
        if (fnmatch(o->exclude[i], rel, 0) == 0 || fnmatch(o->exclude[i], base, 0) == 0)
            return 0;
    const char *const *inc = o && o->n_include ? o->include : default_include;
    size_t ninc = o && o->n_include ? o->n_include
                                    : sizeof default_include / sizeof default_include[0];
    for (size_t i = 0; i < ninc; i++)
        if (fnmatch(inc[i], base, FNM_CASEFOLD) == 0)
            return 1;
    return 0;
}

/* Reads a whole (possibly gzip-compressed) file. */
static int read_all(const char *path, char **out, size_t *len)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return rag_fail(RAG_EIO, "cannot open: %s", strerror(errno ? errno : EIO));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int rc = RAG_OK;
    if (!buf) {
        rc = rag_fail(RAG_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (;;) {
        if (n + 65536 + 1 > cap) {
            if (cap > MAX_FILE_BYTES) {
                rc = rag_fail(RAG_EINVAL, "file is larger than %zu MiB", MAX_FILE_BYTES >> 20);
                goto cleanup;
            }
            char *q = realloc(buf, cap * 2);
            if (!q) {
                rc = rag_fail(RAG_ENOMEM, "out of memory");
                goto cleanup;
            }
            buf = q;
            cap *= 2;
        }
        int got = gzread(gz, buf + n, 65536);
        if (got < 0) {
            int e;
            rc = rag_fail(RAG_EIO, "read error: %s", gzerror(gz, &e));
            goto cleanup;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
cleanup:
    free(buf);
    gzclose(gz);
    return rc;
}

static int walk_text_file(walk *w, const char *path, const char *rel, const struct stat *sb)
{
    char *text = NULL, absbuf[PATH_MAX];
    size_t len = 0;
    int rc = read_all(path, &text, &len);
    if (rc != RAG_OK) {
        report(w, path, rc, "%s", rag_errmsg());
        return RAG_OK;
    }
    tls_progress += (uint64_t)sb->st_size;
    size_t off = 0, skip = 0;
    if (len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        skip = 3; /* UTF-8 byte order mark */
    size_t bad = 0, line = 0;
    if (!rag_utf8_valid(text + skip, len - skip, &bad, &line)) {
        report(w, path, RAG_EENCODING, "invalid UTF-8 at byte %zu (line %zu); file skipped",
               bad + skip, line);
        free(text);
        return RAG_OK;
    }
    (void)off;
    const char *abs = realpath(path, absbuf) ? absbuf : path;
    rag_document d;
    rag_document_init(&d);
    d.id = rel;
    d.text = text + skip;
    d.text_len = len - skip;
    d.source = abs;
    d.source_mtime = (int64_t)sb->st_mtime;
    d.format = ends_with(path, ".md") || ends_with(path, ".markdown") ? RAG_FORMAT_MARKDOWN
                                                                      : RAG_FORMAT_TEXT;
    /* Title: the first Markdown heading or the file name. */
    char title[256];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(title, sizeof title, "%s", base);
    if (d.format == RAG_FORMAT_MARKDOWN) {
        const char *p = d.text;
        while (p && *p) {
            if (*p == '#') {
                while (*p == '#')
                    p++;
                while (*p == ' ')
                    p++;
                size_t n = strcspn(p, "\r\n");
                if (n > 0 && n < sizeof title) {
                    memcpy(title, p, n);
                    title[n] = '\0';
                }
                break;
            }
            p = strchr(p, '\n');
            if (p)
                p++;
        }
    }
    d.title = title;
    rc = w->emit(w->user, &d);
    free(text);
    return rc;
}

/* Parses one JSONL record and emits it. Problems are reported with the line number. */
static int emit_json_line(walk *w, const char *path, const char *abs, size_t lineno,
                          const char *line, size_t len, int64_t mtime)
{
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "%s line %zu", path, lineno);
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    if (!j) {
        report(w, where, RAG_EPARSE, "invalid JSON at column %d: %s", jerr.column, jerr.text);
        return RAG_OK;
    }
    int rc = RAG_OK;
    char idbuf[64], *joined = NULL, *meta = NULL, *source = NULL;
    if (!json_is_object(j)) {
        report(w, where, RAG_EPARSE, "expected a JSON object");
        goto cleanup;
    }
    json_t *jid = json_object_get(j, "_id");
    if (!jid)
        jid = json_object_get(j, "id");
    const char *id = NULL;
    if (json_is_string(jid))
        id = json_string_value(jid);
    else if (json_is_integer(jid)) {
        snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(jid));
        id = idbuf;
    }
    if (!id || !*id) {
        report(w, where, RAG_EPARSE, "missing \"_id\" (a string or integer)");
        goto cleanup;
    }
    json_t *jtext = json_object_get(j, "text");
    if (!json_is_string(jtext)) {
        report(w, where, RAG_EPARSE, "document '%s': missing \"text\" string", id);
        goto cleanup;
    }
    json_t *jtitle = json_object_get(j, "title");
    const char *title = json_is_string(jtitle) ? json_string_value(jtitle) : "";
    const char *text = json_string_value(jtext);
    size_t tlen = json_string_length(jtext);
    if (memchr(text, '\0', tlen)) {
        report(w, where, RAG_EENCODING, "document '%s': text contains a NUL character", id);
        goto cleanup;
    }
    /* Title and body are retrieved together: the stored text is "title\n\nbody". */
    size_t tl = strlen(title);
    if (tl) {
        joined = malloc(tl + 2 + tlen + 1);
        if (!joined) {
            rc = rag_fail(RAG_ENOMEM, "out of memory");
            goto cleanup;
        }
        memcpy(joined, title, tl);
        memcpy(joined + tl, "\n\n", 2);
        memcpy(joined + tl + 2, text, tlen + 1);
        text = joined;
        tlen += tl + 2;
    }
    json_t *jmeta = json_object_get(j, "metadata");
    if (json_is_object(jmeta) && json_object_size(jmeta) > 0)
        meta = json_dumps(jmeta, JSON_COMPACT);
    size_t sl = strlen(abs) + strlen(id) + 2;
    source = malloc(sl);
    if (!source) {
        rc = rag_fail(RAG_ENOMEM, "out of memory");
        goto cleanup;
    }
    snprintf(source, sl, "%s#%s", abs, id);
    rag_document d;
    rag_document_init(&d);
    d.id = id;
    d.text = text;
    d.text_len = tlen;
    d.title = title;
    d.source = source;
    d.metadata_json = meta;
    d.source_mtime = mtime;
    rc = w->emit(w->user, &d);
cleanup:
    free(joined);
    free(meta);
    free(source);
    json_decref(j);
    return rc;
}

static int walk_jsonl(walk *w, const char *path, const struct stat *sb)
{
    char absbuf[PATH_MAX];
    const char *abs = realpath(path, absbuf) ? absbuf : path;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        report(w, path, RAG_EIO, "cannot open: %s", strerror(errno ? errno : EIO));
        return RAG_OK;
    }
    gzbuffer(gz, 1 << 17);
    size_t cap = 1 << 16, len = 0, lineno = 0;
    char *buf = malloc(cap);
    int rc = RAG_OK, eof = 0;
    uint64_t base = tls_progress;
    if (!buf) {
        gzclose(gz);
        return rag_fail(RAG_ENOMEM, "out of memory");
    }
    while (!eof && rc == RAG_OK) {
        if (len + 65536 > cap) {
            char *q = cap > MAX_FILE_BYTES ? NULL : realloc(buf, cap * 2);
            if (!q) {
                report(w, path, RAG_EINVAL, "line %zu is longer than %zu MiB; rest skipped",
                       lineno + 1, MAX_FILE_BYTES >> 20);
                break;
            }
            buf = q;
            cap *= 2;
        }
        int got = gzread(gz, buf + len, 65536);
        if (got < 0) {
            int e;
            report(w, path, RAG_EIO, "read error after line %zu: %s", lineno, gzerror(gz, &e));
            break;
        }
        if (got == 0)
            eof = 1;
        len += (size_t)got;
        tls_progress = base + (uint64_t)gzoffset(gz);
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', len - start);
            if (!nl && !(eof && start < len))
                break;
            size_t end = nl ? (size_t)(nl - buf) : len;
            lineno++;
            size_t l = end - start;
            while (l > 0 && (buf[start + l - 1] == '\r' || buf[start + l - 1] == ' '))
                l--;
            size_t bad = 0;
            if (l > 0 && !rag_utf8_valid(buf + start, l, &bad, NULL)) {
                char where[PATH_MAX + 32];
                snprintf(where, sizeof where, "%s line %zu", path, lineno);
                report(w, where, RAG_EENCODING, "invalid UTF-8 at column %zu", bad + 1);
            } else if (l > 0) {
                rc = emit_json_line(w, path, abs, lineno, buf + start, l,
                                    (int64_t)sb->st_mtime);
                if (rc != RAG_OK)
                    break;
            }
            start = end + 1;
            if (start >= len)
                break;
        }
        if (start > 0 && start <= len) {
            memmove(buf, buf + start, len - start);
            len -= start;
        } else if (start > len) {
            len = 0;
        }
    }
    tls_progress = base + (uint64_t)sb->st_size;
    free(buf);
    gzclose(gz);
    return rc;
}

static int walk_path(walk *w, const char *path, const char *rel, int explicit_arg, int depth)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        report(w, path, RAG_EIO, "cannot read: %s", strerror(errno));
        return RAG_OK;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (S_ISDIR(sb.st_mode)) {
        if (depth > 64) {
            report(w, path, RAG_EINVAL, "directory nesting deeper than 64; skipped");
            return RAG_OK;
        }
        struct dirent **ents = NULL;
        int n = scandir(path, &ents, NULL, alphasort);
        if (n < 0) {
            report(w, path, RAG_EIO, "cannot list directory: %s", strerror(errno));
            return RAG_OK;
        }
        int rc = RAG_OK;
        for (int i = 0; i < n; i++) {
            const char *name = ents[i]->d_name;
            if (rc == RAG_OK && name[0] != '.') {
                size_t pl = strlen(path) + strlen(name) + 2;
                size_t rl = strlen(rel) + strlen(name) + 2;
                char *child = malloc(pl), *crel = malloc(rl);
                if (!child || !crel) {
                    rc = rag_fail(RAG_ENOMEM, "out of memory");
                } else {
                    snprintf(child, pl, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
                             name);
                    snprintf(crel, rl, "%s%s%s", rel, *rel ? "/" : "", name);
                    rc = walk_path(w, child, crel, 0, depth + 1);
                }
                free(child);
                free(crel);
            }
            free(ents[i]);
        }
        free(ents);
        return rc;
    }
    if (!S_ISREG(sb.st_mode))
        return RAG_OK;
    if (!explicit_arg && !wanted(w, rel, base))
        return RAG_OK;
    if (w->counting) {
        w->bytes += (uint64_t)sb.st_size;
        return RAG_OK;
    }
    if (ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz"))
        return walk_jsonl(w, path, &sb);
    return walk_text_file(w, path, rel, &sb);
}

int rag_corpus_walk(const char *const *paths, size_t npaths, const rag_corpus_options *opts,
                    rag_corpus_doc_fn emit, rag_corpus_err_fn err, void *user)
{
    walk w = {opts, emit, err, user, 0, 0};
    tls_progress = 0;
    for (size_t i = 0; i < npaths; i++) {
        struct stat sb;
        int is_dir = stat(paths[i], &sb) == 0 && S_ISDIR(sb.st_mode);
        /* Ids are paths as walked from the argument ("docs/guide.md"). */
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "%s", strncmp(paths[i], "./", 2) == 0 ? paths[i] + 2 : paths[i]);
        size_t rl = strlen(rel);
        while (rl > 1 && rel[rl - 1] == '/')
            rel[--rl] = '\0';
        if (strcmp(rel, ".") == 0)
            rel[0] = '\0';
        int rc = walk_path(&w, paths[i], rel, !is_dir, 0);
        if (rc != RAG_OK)
            return rc;
    }
    return RAG_OK;
}

uint64_t rag_corpus_size(const char *const *paths, size_t npaths, const rag_corpus_options *opts)
{
    walk w = {opts, NULL, NULL, NULL, 1, 0};
    for (size_t i = 0; i < npaths; i++) {
        struct stat sb;
        int is_dir = stat(paths[i], &sb) == 0 && S_ISDIR(sb.st_mode);
        walk_path(&w, paths[i], is_dir ? "" : paths[i], !is_dir, 0);
    }
    return w.bytes;
}
