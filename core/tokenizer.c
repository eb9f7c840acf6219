/* tokenizer.c - BERT WordPiece tokenizer (normalizer, pre-tokenizer, WordPiece, [CLS]/[SEP]). */
#include "tokenizer.h"
#include "status.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_WORD_CHARS 100

struct rag_tokenizer {
    char *pool;        /* all token strings, NUL-terminated, back to back */
    size_t *offs;      /* offs[id]: start of token id in pool */
    int nvocab;
    uint32_t *table;   /* open addressing: id + 1, 0 = empty */
    uint32_t mask;
    int max_token_bytes;
    int lowercase, strip_accents;
    int max_len;
    int32_t cls, sep, unk;
    int nspecial;
    int32_t special_id[8];
    const char *special_str[8];
};

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int32_t lookup(const rag_tokenizer *t, const char *s, size_t n)
{
    for (uint32_t i = hash_bytes(s, n) & t->mask;; i = (i + 1) & t->mask) {
        uint32_t v = t->table[i];
        if (!v)
            return -1;
        const char *tok = t->pool + t->offs[v - 1];
        if (strncmp(tok, s, n) == 0 && tok[n] == '\0')
            return (int32_t)(v - 1);
    }
}

int32_t rag_tokenizer_id(const rag_tokenizer *t, const char *token)
{
    return lookup(t, token, strlen(token));
}

const char *rag_tokenizer_token(const rag_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->nvocab ? t->pool + t->offs[id] : NULL;
}

int rag_tokenizer_vocab_size(const rag_tokenizer *t)
{
    return t->nvocab;
}

int rag_tokenizer_max_len(const rag_tokenizer *t)
{
    return t->max_len;
}

void rag_tokenizer_free(rag_tokenizer *t)
{
    if (!t)
        return;
    free(t->pool);
    free(t->offs);
    free(t->table);
    free(t);
}

/* Builds the hash table and special-token ids once pool/offs/nvocab are filled. */
static int finish_vocab(rag_tokenizer *t, const char *what)
{
    uint32_t size = 16;
    while (size < (uint32_t)t->nvocab * 2u)
        size <<= 1;
    t->table = rag_calloc(size, sizeof *t->table);
    if (!t->table)
        return RAG_ENOMEM;
    t->mask = size - 1;
    for (int id = 0; id < t->nvocab; id++) {
        const char *s = t->pool + t->offs[id];
        size_t n = strlen(s);
        if ((int)n > t->max_token_bytes)
            t->max_token_bytes = (int)n;
        uint32_t i = hash_bytes(s, n) & t->mask;
        for (; t->table[i]; i = (i + 1) & t->mask)
            if (strcmp(t->pool + t->offs[t->table[i] - 1], s) == 0)
                break;
        t->table[i] = (uint32_t)id + 1; /* a duplicate token maps to its last id (HF dict) */
    }
    static const char *specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        int32_t id = rag_tokenizer_id(t, specials[i]);
        if (id >= 0) {
            t->special_id[t->nspecial] = id;
            t->special_str[t->nspecial++] = specials[i];
        }
    }
    t->cls = rag_tokenizer_id(t, "[CLS]");
    t->sep = rag_tokenizer_id(t, "[SEP]");
    t->unk = rag_tokenizer_id(t, "[UNK]");
    if (t->cls < 0 || t->sep < 0 || t->unk < 0)
        return rag_fail(RAG_EINVAL, "%s: vocabulary lacks [CLS], [SEP] or [UNK]", what);
    return RAG_OK;
}

static int read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rag_fail(errno == ENOENT ? RAG_ENOTFOUND : RAG_EIO, "%s: %s", path,
                        strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = rag_malloc(cap + 1);
    while (b) {
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *nb = rag_realloc(b, cap * 2 + 1);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!b)
        return RAG_ENOMEM;
    if (err) {
        free(b);
        return rag_fail(RAG_EIO, "%s: read error", path);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return RAG_OK;
}

int rag_tokenizer_load_vocab(const char *vocab_path, int lowercase, int max_len,
                             rag_tokenizer **out)
{
    int rc;
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    if (max_len < 2)
        return rag_fail(RAG_EINVAL, "tokenizer: max_len %d < 2", max_len);
    if ((rc = read_file(vocab_path, &buf, &len)))
        return rc;
    rag_tokenizer *t = rag_calloc(1, sizeof *t);
    if (!t) {
        free(buf);
        return RAG_ENOMEM;
    }
    t->lowercase = t->strip_accents = lowercase;
    t->max_len = max_len;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    t->offs = rag_malloc((lines + 1) * sizeof *t->offs);
    if (!t->offs) {
        rc = RAG_ENOMEM;
        goto fail;
    }
    /* One token a line; a trailing "\r" is dropped. The pool is the buffer itself. */
    size_t line = 1;
    for (size_t i = 0; i < len; line++) {
        size_t e = i;
        while (e < len && buf[e] != '\n')
            e++;
        size_t te = e;
        if (te > i && buf[te - 1] == '\r')
            te--;
        if (te == i && e >= len)
            break;
        if (te == i) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: empty token", vocab_path, line);
            goto fail;
        }
        if (memchr(buf + i, '\0', te - i)) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: NUL byte in token", vocab_path, line);
            goto fail;
        }
        buf[te] = '\0';
        t->offs[t->nvocab++] = i;
        i = e + 1;
    }
    if (t->nvocab == 0) {
        rc = rag_fail(RAG_EPARSE, "%s: empty vocabulary", vocab_path);
        goto fail;
    }
    t->pool = buf;
    buf = NULL;
    if ((rc = finish_vocab(t, vocab_path)))
        goto fail;
    *out = t;
    return RAG_OK;
fail:
    free(buf);
    rag_tokenizer_free(t);
    return rc;
}

/* Loads "model.vocab" {token: id} of a tokenizer.json into `t` (ids must be 0..n-1). */
static int load_tokenizer_json(rag_tokenizer *t, const char *path)
{
    json_error_t err;
    int rc = RAG_OK;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        return rag_fail(RAG_EPARSE, "%s line %d: %s", path, err.line, err.text);
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0) {
        rc = rag_fail(RAG_EPARSE, "%s: no \"model\".\"vocab\" object", path);
        goto cleanup;
    }
    size_t n = json_object_size(vocab), total = 0;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) total += strlen(key) + 1;
    t->offs = rag_malloc(n * sizeof *t->offs);
    t->pool = rag_malloc(total);
    size_t *seen = rag_calloc(n, sizeof *seen);
    if (!t->offs || !t->pool || !seen) {
        free(seen);
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    size_t pos = 0;
    json_object_foreach(vocab, key, val)
    {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || (size_t)id >= n || seen[id]) {
            rc = rag_fail(RAG_EPARSE, "%s: token \"%s\" has a bad or duplicate id", path, key);
            free(seen);
            goto cleanup;
        }
        seen[id] = 1;
        size_t kl = strlen(key) + 1;
        memcpy(t->pool + pos, key, kl);
        t->offs[id] = pos;
        pos += kl;
    }
    free(seen);
    t->nvocab = (int)n;
    rc = finish_vocab(t, path);
cleanup:
    json_decref(root);
    return rc;
}

/* Casing flags from tokenizer_config.json: do_lower_case (default 1) and strip_accents
 * (null: follows do_lower_case). Absent file: defaults. */
static void read_casing(const char *dir, int *lower, int *strip)
{
    char path[4096];
    *lower = 1;
    *strip = -1;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *root = json_load_file(path, 0, NULL);
    if (root) {
        json_t *v = json_object_get(root, "do_lower_case");
        if (json_is_boolean(v))
            *lower = json_is_true(v);
        v = json_object_get(root, "strip_accents");
        if (json_is_boolean(v))
            *strip = json_is_true(v);
        json_decref(root);
    }
    if (*strip < 0)
        *strip = *lower;
}

int rag_tokenizer_load(const char *dir, int max_len, rag_tokenizer **out)
{
    char path[4096];
    int lower, strip, rc;
    *out = NULL;
    read_casing(dir, &lower, &strip);
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    rc = rag_tokenizer_load_vocab(path, lower, max_len, out);
    if (rc != RAG_ENOTFOUND) {
        if (*out)
            (*out)->strip_accents = strip;
        return rc;
    }
    if (max_len < 2)
        return rag_fail(RAG_EINVAL, "tokenizer: max_len %d < 2", max_len);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return rag_fail(RAG_ENOTFOUND, "%s: neither vocab.txt nor tokenizer.json found", dir);
    fclose(f);
    rag_tokenizer *t = rag_calloc(1, sizeof *t);
    if (!t)
        return RAG_ENOMEM;
    t->lowercase = lower;
    t->strip_accents = strip;
    t->max_len = max_len;
    if ((rc = load_tokenizer_json(t, path))) {
        rag_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return RAG_OK;
}

/* ---- normalisation ------------------------------------------------------------------ */

static int is_ws(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: /* unassigned (Cn) code points are kept, as HF's Rust tokenizer does */
        return 1;
    default:
        return 0;
    }
}

static int is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_punct(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return 1;
    default:
        return 0;
    }
}

typedef struct {
    int32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_push(cpbuf *b, int32_t c)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        int32_t *nv = rag_realloc(b->v, cap * sizeof *nv);
        if (!nv)
            return RAG_ENOMEM;
        b->v = nv;
        b->cap = cap;
    }
    b->v[b->n++] = c;
    return RAG_OK;
}

/* Appends the normalised form of one code point (clean, CJK spacing, NFD + drop Mn,
 * lowercase) to `b`. */
static int normalize_cp(const rag_tokenizer *t, int32_t c, cpbuf *b)
{
    if (c == 0 || c == 0xFFFD || is_control(c))
        return RAG_OK;
    if (is_ws(c))
        return cp_push(b, ' ');
    if (is_cjk(c)) {
        if (cp_push(b, ' ') || cp_push(b, c) || cp_push(b, ' '))
            return RAG_ENOMEM;
        return RAG_OK;
    }
    int32_t d[32];
    utf8proc_ssize_t nd = 1;
    d[0] = c;
    if (t->strip_accents && c >= 0x80) {
        int bc = 0;
        nd = utf8proc_decompose_char(c, d, 32, UTF8PROC_DECOMPOSE, &bc);
        if (nd < 1 || nd > 32) {
            d[0] = c;
            nd = 1;
        }
        /* canonical ordering of the combining marks inside this decomposition */
        for (utf8proc_ssize_t i = 1; i < nd; i++)
            for (utf8proc_ssize_t j = i; j > 0; j--) {
                int a = utf8proc_get_property(d[j - 1])->combining_class;
                int z = utf8proc_get_property(d[j])->combining_class;
                if (z == 0 || a <= z)
                    break;
                int32_t tmp = d[j];
                d[j] = d[j - 1];
                d[j - 1] = tmp;
            }
    }
    for (utf8proc_ssize_t i = 0; i < nd; i++) {
        int32_t x = d[i];
        if (t->strip_accents && utf8proc_category(x) == UTF8PROC_CATEGORY_MN)
            continue;
        if (t->lowercase) {
            if (x == 0x130) { /* the one code point whose lowercase is two */
                if (cp_push(b, 'i') || cp_push(b, 0x307))
                    return RAG_ENOMEM;
                continue;
            }
            x = utf8proc_tolower(x);
        }
        if (cp_push(b, x))
            return RAG_ENOMEM;
    }
    return RAG_OK;
}

typedef struct {
    int32_t *ids;
    int n, cap;   /* cap < 0: count only */
    int limit;    /* stop once n reaches limit (cap >= 0) */
} idsink;

static int emit(idsink *s, int32_t id)
{
    if (s->cap >= 0) {
        if (s->n >= s->limit)
            return 1; /* full */
        s->ids[s->n] = id;
    }
    s->n++;
    return 0;
}

/* WordPiece of one word (code points w[0..n)); returns 1 when the sink is full. */
static int wordpiece(const rag_tokenizer *t, const int32_t *w, size_t n, idsink *s,
                     char *bytes, size_t *boff)
{
    if (n == 0)
        return 0;
    if (n > MAX_WORD_CHARS)
        return emit(s, t->unk);
    /* UTF-8 of the word, "##" in front for continuation lookups; boff[i] = byte offset of
     * char i (relative to bytes + 2). */
    char *u = bytes + 2;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        boff[i] = pos;
        pos += (size_t)utf8proc_encode_char(w[i], (uint8_t *)u + pos);
    }
    boff[n] = pos;
    int32_t pieces[MAX_WORD_CHARS];
    int np = 0;
    size_t start = 0;
    while (start < n) {
        size_t end = n;
        int32_t id = -1;
        while (end > start) {
            size_t blen = boff[end] - boff[start];
            if ((int)blen + (start ? 2 : 0) <= t->max_token_bytes) {
                if (start == 0) {
                    id = lookup(t, u, blen);
                } else {
                    char *p = u + boff[start] - 2;
                    char save0 = p[0], save1 = p[1];
                    p[0] = '#';
                    p[1] = '#';
                    id = lookup(t, p, blen + 2);
                    p[0] = save0;
                    p[1] = save1;
                }
                if (id >= 0)
                    break;
            }
            end--;
        }
        if (id < 0)
            return emit(s, t->unk);
        pieces[np++] = id;
        start = end;
    }
    for (int i = 0; i < np; i++)
        if (emit(s, pieces[i]))
            return 1;
    return 0;
}

/* Normalises and WordPiece-tokenises text[0..len) (no special tokens at the ends). */
static int tokenize_span(const rag_tokenizer *t, const char *text, size_t len, idsink *s,
                         int *full)
{
    cpbuf b = {0};
    int rc = RAG_OK;
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k < 1) { /* invalid byte: dropped like U+FFFD */
            i++;
            continue;
        }
        i += (size_t)k;
        if ((rc = normalize_cp(t, c, &b)))
            goto cleanup;
    }
    char bytes[2 + 4 * MAX_WORD_CHARS + 8];
    size_t boff[MAX_WORD_CHARS + 1];
    size_t ws = 0;
    if (b.n == 0) /* every code point was dropped (e.g. only NULs): no tokens */
        goto cleanup;
    for (size_t j = 0; j <= b.n && !*full; j++) {
        int32_t c = j < b.n ? b.v[j] : ' ';
        int sp = is_ws(c), pu = !sp && is_punct(c);
        if (!sp && !pu)
            continue;
        *full = wordpiece(t, b.v + ws, j - ws, s, bytes, boff);
        if (!*full && pu)
            *full = wordpiece(t, &c, 1, s, bytes, boff);
        ws = j + 1;
    }
cleanup:
    free(b.v);
    return rc;
}

/* Splits out special tokens written literally in the text ("[MASK]"), as HF's added
 * tokens do, and tokenises the spans between them. */
static int tokenize(const rag_tokenizer *t, const char *text, size_t len, idsink *s)
{
    int full = 0, rc = RAG_OK;
    size_t start = 0, i = 0;
    while (i < len && !full) {
        int hit = -1;
        if (text[i] == '[')
            for (int k = 0; k < t->nspecial; k++) {
                size_t sl = strlen(t->special_str[k]);
                if (sl <= len - i && memcmp(text + i, t->special_str[k], sl) == 0) {
                    hit = k;
                    break;
                }
            }
        if (hit < 0) {
            i++;
            continue;
        }
        if ((rc = tokenize_span(t, text + start, i - start, s, &full)) || full)
            return rc;
        full = emit(s, t->special_id[hit]);
        i += strlen(t->special_str[hit]);
        start = i;
    }
    if (!full && start < len)
        rc = tokenize_span(t, text + start, len - start, s, &full);
    return rc;
}

int rag_tokenizer_encode(const rag_tokenizer *t, const char *text, size_t len, int32_t *ids,
                         int cap)
{
    if (cap < 2)
        return rag_fail(RAG_EINVAL, "tokenizer: output capacity %d < 2", cap);
    int limit = cap < t->max_len ? cap : t->max_len;
    idsink s = {ids + 1, 0, limit - 2, limit - 2};
    int rc = tokenize(t, text, len, &s);
    if (rc)
        return rc;
    ids[0] = t->cls;
    ids[s.n + 1] = t->sep;
    return s.n + 2;
}

int rag_tokenizer_count(const rag_tokenizer *t, const char *text, size_t len)
{
    idsink s = {NULL, 0, -1, 0};
    int rc = tokenize(t, text, len, &s);
    return rc ? rc : s.n + 2;
}
