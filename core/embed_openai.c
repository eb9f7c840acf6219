/* embed_openai.c - OpenAI-compatible /v1/embeddings provider over libcurl (batches, retries). */
#include "embed_openai.h"
#include "status.h"

#include <curl/curl.h>
#include <float.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *model, *url, *auth;  /* auth: "Authorization: Bearer ..." or NULL */
    int batch, retries;
    long timeout_s, base_ms;
} openai_impl;

typedef struct {
    char *data;
    size_t len;
    long retry_after;  /* seconds, -1: none */
} resp_buf;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    resp_buf *r = ud;
    size_t add = size * n;
    if (r->len + add > (64u << 20))
        return 0; /* refuse bodies over 64 MiB */
    char *nd = realloc(r->data, r->len + add + 1);
    if (!nd)
        return 0;
    memcpy(nd + r->len, p, add);
    r->data = nd;
    r->len += add;
    r->data[r->len] = '\0';
    return add;
}

long rag_openai_retry_after(const char *line, size_t len)
{
    if (!line || len <= 12 || strncasecmp(line, "Retry-After:", 12) != 0)
        return -1;
    /* the line is not NUL-terminated: its value is copied before strtol reads it */
    char v[24];
    size_t vl = len - 12 < sizeof v - 1 ? len - 12 : sizeof v - 1;
    memcpy(v, line + 12, vl);
    v[vl] = '\0';
    char *end = NULL;
    long s = strtol(v, &end, 10);
    return end != v && s >= 0 ? s : -1;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    resp_buf *r = ud;
    size_t len = size * n;
    long s = rag_openai_retry_after(p, len);
    if (s >= 0)
        r->retry_after = s;
    return len;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    long x = strtol(v, NULL, 10);
    return x < lo ? lo : (x > hi ? hi : x);
}

/* Short printable excerpt of a response body (len bytes, not NUL-terminated) for error
 * messages. */
static const char *excerpt(const char *body, size_t len)
{
    static __thread char buf[300];
    const char *msg = NULL;
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *err = json_object_get(j, "error");
    msg = json_is_string(err) ? json_string_value(err)
                              : json_string_value(json_object_get(err, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(j, "message"));
    if (msg)
        snprintf(buf, sizeof buf, "%s", msg);
    else
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1),
                 body ? body : "");
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_decref(j);
    return buf;
}

int rag_openai_parse_reply(const char *url, long status, const char *body, size_t len,
                           size_t n, int *dim, float *out)
{
    int rc = RAG_OK;
    json_t *j = NULL;
    unsigned char *seen = NULL;
    if (status != 200) {
        rc = rag_fail(RAG_EEMBED, "openai: %s: HTTP %ld: %s", url, status, excerpt(body, len));
        goto cleanup;
    }
    json_error_t err;
    j = json_loadb(body ? body : "", body ? len : 0, 0, &err);
    json_t *data = json_object_get(j, "data");
    if (!json_is_array(data) || json_array_size(data) != n) {
        rc = rag_fail(RAG_EEMBED, "openai: %s: reply has %zu embeddings for %zu inputs%s%s", url,
                      json_array_size(data), n, j ? "" : ": ", j ? "" : err.text);
        goto cleanup;
    }
    if (n && !(seen = rag_calloc(n, 1))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(data, i);
        json_t *idx = json_object_get(item, "index"), *emb = json_object_get(item, "embedding");
        json_int_t ix = json_is_integer(idx) ? json_integer_value(idx) : (json_int_t)i;
        if (ix < 0 || (uint64_t)ix >= n || !json_is_array(emb) || json_array_size(emb) == 0 ||
            json_array_size(emb) > 65536) {
            rc = rag_fail(RAG_EEMBED, "openai: %s: reply item %zu is not an embedding (index "
                          "0..%zu, 1..65536 values)", url, i, n - 1);
            goto cleanup;
        }
        size_t k = (size_t)ix;
        if (seen[k]) { /* another slot would keep whatever it held before */
            rc = rag_fail(RAG_EEMBED, "openai: %s: reply item %zu repeats index %zu", url, i, k);
            goto cleanup;
        }
        seen[k] = 1;
        if (*dim == 0)
            *dim = (int)json_array_size(emb);
        if ((int)json_array_size(emb) != *dim) {
            rc = rag_fail(RAG_EEMBED, "openai: %s: embedding %zu has %zu dimensions, expected %d",
                          url, k, json_array_size(emb), *dim);
            goto cleanup;
        }
        for (int d = 0; d < *dim; d++) {
            json_t *v = json_array_get(emb, (size_t)d);
            double x = json_number_value(v);
            if (!json_is_number(v) || !(x >= -FLT_MAX && x <= FLT_MAX)) {
                rc = rag_fail(RAG_EEMBED, "openai: %s: embedding %zu value %d is not a %s", url,
                              k, d, json_is_number(v) ? "finite 32-bit float" : "number");
                goto cleanup;
            }
            if (out)
                out[k * (size_t)*dim + (size_t)d] = (float)x;
        }
    }
cleanup:
    free(seen);
    json_decref(j);
    return rc;
}

/* POSTs `body` and parses the n embeddings of the reply into out (dim known, or learned
 * when *dim == 0). Retries as documented in the header. */
static int request(openai_impl *o, const char *body, size_t n, int *dim, float *out)
{
    int rc = RAG_OK;
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    resp_buf r = {NULL, 0, -1};
    if (!c)
        return rag_fail(RAG_ENOMEM, "openai: cannot create a curl handle");
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    if (o->auth)
        hdr = curl_slist_append(hdr, o->auth);
    curl_easy_setopt(c, CURLOPT_URL, o->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, o->timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->timeout_s < 10 ? o->timeout_s : 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ragcore/" RAGCORE_VERSION_STRING);
    long status = 0;
    unsigned seed = (unsigned)(rag_monotonic() * 1e6) ^ (unsigned)(size_t)&r;
    for (int attempt = 0;; attempt++) {
        free(r.data);
        r.data = NULL;
        r.len = 0;
        r.retry_after = -1;
        CURLcode cc = curl_easy_perform(c);
        status = 0;
        if (cc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        int transient = cc != CURLE_OK || status == 429 || status >= 500;
        if (!transient || attempt >= o->retries) {
            if (cc != CURLE_OK) {
                rc = rag_fail(RAG_EEMBED, "openai: %s: %s (after %d attempts)", o->url,
                              curl_easy_strerror(cc), attempt + 1);
                goto cleanup;
            }
            break;
        }
        long wait = o->base_ms << (attempt < 16 ? attempt : 16);
        seed = seed * 1103515245u + 12345u;
        wait += (long)((seed >> 8) % (unsigned)(wait + 1)); /* jitter: up to +100% */
        if (r.retry_after >= 0)
            wait = (r.retry_after > 60 ? 60 : r.retry_after) * 1000;
        rag_sleep_ms(wait);
    }
    rc = rag_openai_parse_reply(o->url, status, r.data, r.len, n, dim, out);
cleanup:
    free(r.data);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return rc;
}

/* JSON body for texts[0..n). */
static int make_body(const openai_impl *o, const char *const *texts, const size_t *lens, size_t n,
                     char **body)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(texts[i]);
        json_t *s = json_stringn(texts[i], len);
        if (!s) {
            json_decref(arr);
            return rag_fail(RAG_EENCODING, "openai: text %zu is not valid UTF-8", i);
        }
        json_array_append_new(arr, s);
    }
    json_t *root = json_pack("{s:s, s:o, s:s}", "model", o->model, "input", arr,
                             "encoding_format", "float");
    *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return *body ? RAG_OK : RAG_ENOMEM;
}

static int openai_embed(rag_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                        int is_query, float *out)
{
    openai_impl *o = e->impl;
    for (size_t i = 0; i < n; i += (size_t)o->batch) {
        size_t k = n - i < (size_t)o->batch ? n - i : (size_t)o->batch;
        char *body = NULL;
        int rc = make_body(o, texts + i, lens ? lens + i : NULL, k, &body);
        int dim = e->dim;
        if (!rc)
            rc = request(o, body, k, &dim, out + i * (size_t)e->dim);
        free(body);
        if (rc)
            return rc;
    }
    return RAG_OK;
}

static void openai_destroy(rag_embedder *e)
{
    openai_impl *o = e->impl;
    if (!o)
        return;
    free(o->model);
    free(o->url);
    free(o->auth);
    free(o);
    e->impl = NULL;
}

static const rag_embedder_ops openai_ops = {openai_embed, NULL, openai_destroy};

int rag_embedder_openai_create(const char *spec, rag_embedder **out)
{
    int rc = RAG_OK;
    *out = NULL;
    if (!spec || strncmp(spec, "openai:", 7) != 0 || !spec[7] || spec[7] == '@')
        return rag_fail(RAG_EINVAL, "openai embedder spec '%s' is not openai:MODEL[@BASE_URL]",
                        spec ? spec : "(null)");
    if (strlen(spec) >= sizeof((rag_embedder *)0)->name)
        return rag_fail(RAG_EINVAL, "openai embedder spec longer than 127 bytes");
    pthread_once(&curl_once, curl_init_once);
    rag_embedder *e = rag_calloc(1, sizeof *e);
    openai_impl *o = rag_calloc(1, sizeof *o);
    if (!e || !o) {
        free(e);
        free(o);
        return RAG_ENOMEM;
    }
    e->impl = o;
    e->ops = &openai_ops;
    snprintf(e->name, sizeof e->name, "%s", spec);
    const char *at = strchr(spec + 7, '@');
    const char *base = at ? at + 1 : getenv("RAGCORE_OPENAI_BASE_URL");
    if (!base || !*base)
        base = "https://api.openai.com/v1";
    size_t blen = strlen(base);
    while (blen && base[blen - 1] == '/')
        blen--;
    o->model = at ? rag_strndup(spec + 7, (size_t)(at - spec - 7)) : rag_strdup(spec + 7);
    o->url = rag_malloc(blen + 16);
    if (!o->model || !o->url) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    snprintf(o->url, blen + 16, "%.*s/embeddings", (int)blen, base);
    const char *key = getenv("RAGCORE_OPENAI_API_KEY");
    if (!key || !*key)
        key = getenv("OPENAI_API_KEY");
    if (key && *key) {
        size_t kl = strlen(key) + 32;
        if (!(o->auth = rag_malloc(kl))) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
        snprintf(o->auth, kl, "Authorization: Bearer %s", key);
    }
    o->batch = (int)env_long("RAGCORE_OPENAI_BATCH", 64, 1, 2048);
    o->retries = (int)env_long("RAGCORE_OPENAI_RETRIES", 5, 0, 20);
    o->timeout_s = env_long("RAGCORE_OPENAI_TIMEOUT", 60, 1, 3600);
    o->base_ms = env_long("RAGCORE_OPENAI_RETRY_BASE_MS", 500, 0, 60000);
    {
        char *body = NULL;
        const char *probe = "dimension probe";
        int dim = 0;
        if (!(rc = make_body(o, &probe, NULL, 1, &body)))
            rc = request(o, body, 1, &dim, NULL);
        free(body);
        if (rc)
            goto cleanup;
        e->dim = dim;
    }
    *out = e;
    return RAG_OK;
cleanup:
    openai_destroy(e);
    free(e);
    return rc;
}
