/* corpus.c - corpus walking: recursive directories, extracted files, JSONL(.gz). */
#include "corpus.h"
#include "extract.h"
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

static const char *const default_include[] = {"*.txt",   "*.md",  "*.markdown", "*.html",
                                              "*.htm",   "*.xhtml", "*.pdf",    "*.jsonl",
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

/* Reports a problem with file `path` (where: the path, or "path line N"). */
static void report_at(walk *w, const char *path, const char *where, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void report_at(walk *w, const char *path, const char *where, int rc, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->opts && w->opts->on_fail)
        w->opts->on_fail(w->user, path, where, rc, msg);
    else if (w->err)
        w->err(w->user, where, rc, msg);
}

#define report(w, where, rc, ...) report_at(w, where, where, rc, __VA_ARGS__)

/* Formats this library does not read, by extension: a directory walk lists them as skipped
 * ("unsupported format") instead of passing over them silently, and an explicit file
 * argument says so instead of "binary data". */
static const char *const unsupported_ext[] = {
    ".docx", ".doc", ".docm", ".dotx", ".odt", ".ott", ".rtf", ".pages", ".xlsx", ".xls",
    ".xlsm", ".ods", ".numbers", ".pptx", ".ppt", ".odp", ".key", ".epub", ".mobi", ".djvu",
    ".zip", ".tar", ".gz", ".tgz", ".7z", ".rar", ".png", ".jpg", ".jpeg", ".gif", ".tif",
    ".tiff", ".bmp", ".webp", ".heic", ".mp3", ".wav", ".mp4", ".mov", ".avi"};

/* The unsupported extension `base` ends with, or NULL. */
static const char *unsupported(const char *base)
{
    for (size_t i = 0; i < sizeof unsupported_ext / sizeof unsupported_ext[0]; i++)
        if (ends_with(base, unsupported_ext[i]) && strlen(base) > strlen(unsupported_ext[i]))
            return unsupported_ext[i];
    return NULL;
}

static int excluded(const walk *w, const char *rel, const char *base)
{
    const rag_corpus_options *o = w->opts;
    for (size_t i = 0; o && i < o->n_exclude; i++)
        if (fnmatch(o->exclude[i], rel, 0) == 0 || fnmatch(o->exclude[i], base, 0) == 0)
            return 1;
    return 0;
}

static int wanted(const walk *w, const char *rel, const char *base)
{
    const rag_corpus_options *o = w->opts;
    if (excluded(w, rel, base))
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

/* Hands a document to the caller's callback (with its extras when asked for). */
static int deliver(walk *w, const rag_document *d, const rag_corpus_info *info)
{
    if (w->opts && w->opts->emit_info)
        return w->opts->emit_info(w->user, d, info);
    return w->emit ? w->emit(w->user, d) : RAG_OK;
}

/* 1 when data starts with a UTF-16 or UTF-32 byte order mark. */
static int has_wide_bom(const char *data, size_t len)
{
    return len >= 2 && (memcmp(data, "\xFF\xFE", 2) == 0 || memcmp(data, "\xFE\xFF", 2) == 0 ||
                        (len >= 4 && memcmp(data, "\0\0\xFE\xFF", 4) == 0));
}

/* The metadata of an extracted file: its front matter with, for a PDF, {"pages":[...]}
 * (malloc'd JSON object), or NULL when it has none. */
static char *file_metadata(const rag_extracted *x)
{
    if (!x->npages)
        return x->metadata_json ? rag_strdup(x->metadata_json) : NULL;
    json_t *obj = x->metadata_json ? json_loads(x->metadata_json, 0, NULL) : json_object();
    json_t *arr = json_array();
    char *s = NULL;
    if (json_is_object(obj) && arr) {
        for (size_t i = 0; i < x->npages; i++)
            json_array_append_new(arr, json_integer((json_int_t)x->pages[i]));
        json_object_set(obj, "pages", arr);
        s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    json_decref(arr);
    json_decref(obj);
    return s;
}

/* Reads one file through the extractor and emits it; refusals are reported and skipped. */
static int walk_file(walk *w, const char *path, const struct stat *sb)
{
    char *data = NULL, *meta = NULL, absbuf[PATH_MAX], dirbuf[PATH_MAX];
    size_t len = 0;
    rag_extracted x;
    memset(&x, 0, sizeof x);
    int rc = read_all(path, &data, &len);
    if (rc != RAG_OK) {
        report(w, path, rc, "%s", rag_errmsg());
        return RAG_OK;
    }
    tls_progress += (uint64_t)sb->st_size;
    rc = rag_extract_buffer(data, len, path, &x);
    if (rc == RAG_ENOMEM)
        goto cleanup;
    if (rc != RAG_OK) {
        size_t skip = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
        size_t bad = 0, line = 0;
        if (rc == RAG_EENCODING && x.kind != RAG_SOURCE_PDF && !has_wide_bom(data, len) &&
            !rag_utf8_valid(data + skip, len - skip, &bad, &line))
            report(w, path, rc, "invalid UTF-8 at byte %zu (line %zu); file skipped", bad + skip,
                   line);
        else
            report(w, path, rc, "%s; file skipped", x.skip_reason[0] ? x.skip_reason : rag_errmsg());
        rc = RAG_OK;
        goto cleanup;
    }
    free(data);
    data = NULL;
    const char *abs = realpath(path, absbuf) ? absbuf : path;
    snprintf(dirbuf, sizeof dirbuf, "%s", abs);
    char *slash = strrchr(dirbuf, '/');
    if (slash)
        *(slash == dirbuf ? slash + 1 : slash) = '\0';
    if ((x.npages || x.metadata_json) && !(meta = file_metadata(&x))) {
        rc = rag_fail(RAG_ENOMEM, "out of memory");
        goto cleanup;
    }
    rag_document d;
    rag_document_init(&d);
    d.id = abs; /* the canonical absolute path: the same id however the path was given */
    d.text = x.text;
    d.text_len = x.len;
    d.source = abs;
    d.source_mtime = (int64_t)sb->st_mtime;
    d.format = x.format;
    d.metadata_json = meta;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    d.title = x.title && *x.title ? x.title : base;
    rag_corpus_info info = {x.kind, x.pages, x.npages, dirbuf};
    rc = deliver(w, &d, &info);
cleanup:
    free(data);
    free(meta);
    rag_extracted_free(&x);
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
        report_at(w, path, where, RAG_EPARSE, "invalid JSON at column %d: %s", jerr.column,
                  jerr.text);
        return RAG_OK;
    }
    int rc = RAG_OK;
    char idbuf[64], *joined = NULL, *meta = NULL, *source = NULL;
    if (!json_is_object(j)) {
        report_at(w, path, where, RAG_EPARSE, "expected a JSON object");
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
        report_at(w, path, where, RAG_EPARSE, "missing \"_id\" (a string or integer)");
        goto cleanup;
    }
    json_t *jtext = json_object_get(j, "text");
    if (!json_is_string(jtext)) {
        report_at(w, path, where, RAG_EPARSE, "document '%s': missing \"text\" string", id);
        goto cleanup;
    }
    json_t *jtitle = json_object_get(j, "title");
    const char *title = json_is_string(jtitle) ? json_string_value(jtitle) : "";
    const char *text = json_string_value(jtext);
    size_t tlen = json_string_length(jtext);
    if (memchr(text, '\0', tlen)) {
        report_at(w, path, where, RAG_EENCODING, "document '%s': text contains a NUL character",
                  id);
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
    /* Metadata: every field that is not one of the record's own, then the keys of its
     * "metadata" object. */
    static const char *const known[] = {"_id", "id", "title", "text", "metadata", "source_mtime",
                                        "mtime", "valid_until", "format"};
    json_t *jm = json_object(), *jmeta = json_object_get(j, "metadata");
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val) {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(key, known[k]) != 0)
            k++;
        if (k == sizeof known / sizeof known[0] && jm)
            json_object_set(jm, key, val);
    }
    if (jmeta && !json_is_object(jmeta) && !json_is_null(jmeta)) {
        json_decref(jm);
        report_at(w, path, where, RAG_EPARSE, "document '%s': \"metadata\" must be an object", id);
        goto cleanup;
    }
    if (jm && json_is_object(jmeta))
        json_object_update(jm, jmeta);
    if (jm && json_object_size(jm) > 0)
        meta = json_dumps(jm, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(jm);
    int64_t when = mtime, until = 0;
    rag_format format = RAG_FORMAT_TEXT;
    static const char *const times[] = {"source_mtime", "mtime", "valid_until"};
    for (int k = 0; k < 3; k++) {
        json_t *jv = json_object_get(j, times[k]);
        if (!jv || json_is_null(jv))
            continue;
        if (!json_is_integer(jv) || json_integer_value(jv) < 0) {
            report_at(w, path, where, RAG_EPARSE, "document '%s': \"%s\" must be unix seconds "
                      "(a non-negative integer)", id, times[k]);
            goto cleanup;
        }
        if (k < 2)
            when = (int64_t)json_integer_value(jv);
        else
            until = (int64_t)json_integer_value(jv);
    }
    json_t *jf = json_object_get(j, "format");
    if (jf && !json_is_null(jf)) {
        const char *f = json_string_value(jf);
        if (f && strcmp(f, "markdown") == 0)
            format = RAG_FORMAT_MARKDOWN;
        else if (!f || strcmp(f, "text") != 0) {
            report_at(w, path, where, RAG_EPARSE, "document '%s': \"format\" must be \"text\" "
                      "or \"markdown\"", id);
            goto cleanup;
        }
    }
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
    d.source_mtime = when;
    d.valid_until = until;
    d.format = format;
    rag_corpus_info info = {RAG_SOURCE_TEXT, NULL, 0, abs};
    rc = deliver(w, &d, &info);
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
                report_at(w, path, where, RAG_EENCODING, "invalid UTF-8 at column %zu", bad + 1);
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
    int jsonl = ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz");
    const char *ext = jsonl ? NULL : unsupported(base);
    if (!explicit_arg && !wanted(w, rel, base)) {
        /* with the built-in formats, a document format the library cannot read is named */
        if (ext && !w->counting && !(w->opts && w->opts->n_include) && !excluded(w, rel, base))
            report(w, path, RAG_EUNSUPPORTED, "unsupported format (%s files are not read); "
                   "file skipped", ext);
        return RAG_OK;
    }
    if (w->counting) {
        w->bytes += (uint64_t)sb.st_size;
        return RAG_OK;
    }
    if (jsonl)
        return walk_jsonl(w, path, &sb);
    if (ext && explicit_arg) {
        report(w, path, RAG_EUNSUPPORTED, "unsupported format (%s files are not read); file "
               "skipped", ext);
        return RAG_OK;
    }
    return walk_file(w, path, &sb);
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
