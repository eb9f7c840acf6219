/* config.c - the cluster configuration file, collection metadata records, document
 * placement and the process plumbing the roles share. */
#include "cluster.h"
#include "port_file.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECT_PATIENCE_MS 30000

/* The field readers take each key they read out of `rest` (the file's settings not read
 * yet), so that what is left at the end is unknown. */
static int int_field(json_t *rest, const char *key, int def, int lo, int hi, int *out,
                     char *err, size_t errlen, const char *where)
{
    json_t *v = json_object_get(rest, key);
    if (!v || json_is_null(v)) {
        *out = def;
    } else if (!json_is_integer(v) || json_integer_value(v) < lo ||
               json_integer_value(v) > hi) {
        snprintf(err, errlen, "%s: \"%s\" must be an integer in %d..%d", where, key, lo, hi);
        return -1;
    } else {
        *out = (int)json_integer_value(v);
    }
    json_object_del(rest, key);
    return 0;
}

static int str_field(json_t *rest, const char *key, const char *def, char *out, size_t cap,
                     char *err, size_t errlen, const char *where)
{
    json_t *v = json_object_get(rest, key);
    const char *s = def;
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= cap) {
            snprintf(err, errlen, "%s: \"%s\" must be a string of 1..%zu bytes", where, key,
                     cap - 1);
            return -1;
        }
        s = json_string_value(v);
    }
    snprintf(out, cap, "%s", s);
    json_object_del(rest, key);
    return 0;
}

int cluster_config_load(const char *path, cluster_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        snprintf(err, errlen, "%s: line %d: %s", path, je.line, je.text);
        return -1;
    }
    int rc = -1;
    json_t *urls = json_object_get(j, "nats"), *rest = json_copy(j);
    char bucket[128], keys_bucket[128], idf[16], rate_scope[16], admin_key_file[4096], pii_key_file[4096];
    if (!json_is_object(j)) {
        snprintf(err, errlen, "%s: not a JSON object", path);
        goto cleanup;
    }
    if (!json_is_array(urls) || json_array_size(urls) == 0 ||
        json_array_size(urls) > CLUSTER_MAX_URLS) {
        snprintf(err, errlen, "%s: \"nats\" must be an array of 1..%d server URLs", path,
                 CLUSTER_MAX_URLS);
        goto cleanup;
    }
    for (size_t i = 0; i < json_array_size(urls); i++) {
        json_t *u = json_array_get(urls, i);
        if (!json_is_string(u)) {
            snprintf(err, errlen, "%s: \"nats\"[%zu] is not a string", path, i);
            goto cleanup;
        }
        cfg->nats[cfg->n_nats++] = strdup(json_string_value(u));
    }
    if (!rest) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto cleanup;
    }
    json_object_del(rest, "nats");
    if (str_field(rest, "meta_bucket", "ragcore_meta", bucket, sizeof bucket, err, errlen, path) <
            0 ||
        int_field(rest, "stream_replicas", 3, 1, 5, &cfg->stream_replicas, err, errlen, path) < 0 ||
        int_field(rest, "dedup_window_s", 120, 1, 86400, &cfg->dedup_window_s, err, errlen, path) <
            0 ||
        int_field(rest, "stream_max_msgs", 0, 0, 1 << 30, &cfg->stream_max_msgs, err, errlen,
                  path) < 0 ||
        int_field(rest, "stream_max_age_s", 0, 0, 1 << 30, &cfg->stream_max_age_s, err, errlen,
                  path) < 0 ||
        int_field(rest, "dup_compact_every", 100000, 0, 1 << 30, &cfg->dup_compact_every, err,
                  errlen, path) < 0 ||
        int_field(rest, "max_lag", 1000, 1, 1 << 30, &cfg->max_lag, err, errlen, path) < 0 ||
        int_field(rest, "query_timeout_ms", 1000, 10, 600000, &cfg->query_timeout_ms, err, errlen,
                  path) < 0 ||
        int_field(rest, "ryw_wait_ms", 2000, 0, CLUSTER_RYW_WAIT_MAX_MS, &cfg->ryw_wait_ms, err,
                  errlen, path) < 0 ||
        int_field(rest, "publish_timeout_ms", 2000, 10, 600000, &cfg->publish_timeout_ms, err,
                  errlen, path) < 0 ||
        int_field(rest, "publish_attempts", 6, 1, 100, &cfg->publish_attempts, err, errlen, path) <
            0 ||
        int_field(rest, "hedge_ms", 0, 0, 600000, &cfg->hedge_ms, err, errlen, path) < 0 ||
        int_field(rest, "key_request_rate", 10000, 0, 1 << 30, &cfg->key_request_rate, err,
                  errlen, path) < 0 ||
        str_field(rest, "idf", "shard", idf, sizeof idf, err, errlen, path) < 0 ||
        str_field(rest, "key_rate_scope", "cluster", rate_scope, sizeof rate_scope, err, errlen,
                  path) < 0 ||
        str_field(rest, "keys_bucket", "ragcore_keys", keys_bucket, sizeof keys_bucket, err,
                  errlen, path) < 0 ||
        str_field(rest, "admin_key_file", "", admin_key_file, sizeof admin_key_file, err, errlen,
                  path) < 0 ||
        str_field(rest, "pii_key_file", "", pii_key_file, sizeof pii_key_file, err, errlen,
                  path) < 0)
        goto cleanup;
    if (json_object_size(rest) > 0) { /* a misspelt setting would silently keep its default */
        snprintf(err, errlen, "%s: unknown setting \"%.128s\" (docs/cluster.md lists them)",
                 path, json_object_iter_key(json_object_iter(rest)));
        goto cleanup;
    }
    if (strcmp(idf, "shard") && strcmp(idf, "exact")) {
        snprintf(err, errlen, "%s: \"idf\" must be \"shard\" or \"exact\", got \"%s\"", path,
                 idf);
        goto cleanup;
    }
    cfg->idf_exact = !strcmp(idf, "exact");
    if (strcmp(rate_scope, "cluster") && strcmp(rate_scope, "router")) {
        snprintf(err, errlen, "%s: \"key_rate_scope\" must be \"cluster\" or \"router\", "
                 "got \"%s\"", path, rate_scope);
        goto cleanup;
    }
    cfg->key_rate_router = !strcmp(rate_scope, "router");
    cfg->bucket = strdup(bucket);
    cfg->keys_bucket = strdup(keys_bucket);
    cfg->admin_key_file = admin_key_file[0] ? strdup(admin_key_file) : NULL;
    cfg->pii_key_file = pii_key_file[0] ? strdup(pii_key_file) : NULL;
    rc = 0;
cleanup:
    json_decref(rest);
    json_decref(j);
    if (rc != 0)
        cluster_config_free(cfg);
    return rc;
}

void cluster_config_free(cluster_config *cfg)
{
    for (size_t i = 0; i < cfg->n_nats; i++)
        free(cfg->nats[i]);
    free(cfg->bucket);
    free(cfg->keys_bucket);
    free(cfg->admin_key_file);
    free(cfg->pii_key_file);
    memset(cfg, 0, sizeof *cfg);
}

int cluster_connect(const cluster_config *cfg, const char *name, clog **out, char *err,
                    size_t errlen)
{
    int rc = clog_connect((const char *const *)cfg->nats, cfg->n_nats, name, cfg->bucket,
                          cfg->stream_replicas, out, err, errlen);
    if (rc == 0)
        clog_set_retention(*out, cfg->stream_max_msgs, cfg->stream_max_age_s);
    return rc;
}

int cluster_valid_name(const char *s)
{
    if (!*s || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* Reads a collection's "settings" (may be NULL) into c->policy with the library's parser;
 * its language and ttl_seconds, when given, replace c's. Refuses what a cluster cannot
 * apply the same on every replica. Duplicate detection is decided by the routers at the
 * collection's duplicate log (dedup.h); pii "hash" is the router's to refuse (without
 * the cluster's key). */
static int coll_settings(json_t *settings, cluster_coll *c, char *err, size_t errlen)
{
    rag_collection_options_init(&c->policy);
    c->policy.ttl_seconds = c->ttl_seconds;
    if (!settings || json_is_null(settings))
        return 0;
    char *text = json_dumps(settings, JSON_COMPACT | JSON_ENCODE_ANY);
    char language[sizeof c->language];
    language[0] = '\0';
    int rc = text ? rag_collection_options_from_json(&c->policy, text, language, sizeof language)
                  : RAG_ENOMEM;
    free(text);
    if (rc != RAG_OK) {
        snprintf(err, errlen, "collection: settings: %s", rag_errmsg());
        return -1;
    }
    if (c->policy.ttl_seconds < 0 || c->policy.ttl_seconds > (1 << 30)) {
        snprintf(err, errlen, "collection: settings: ttl_seconds must be in 0..%d", 1 << 30);
        return -1;
    }
    c->ttl_seconds = c->policy.ttl_seconds;
    if (language[0])
        snprintf(c->language, sizeof c->language, "%s", language);
    c->policy.language = NULL;
    return 0;
}

int cluster_coll_from_json(json_t *j, const char *name, cluster_coll *c, char *err,
                           size_t errlen)
{
    memset(c, 0, sizeof *c);
    const char *w = "collection";
    if (!json_is_object(j)) {
        snprintf(err, errlen, "collection: not a JSON object");
        return -1;
    }
    json_t *rest = json_copy(j); /* the readers take their keys out of it; j stays as given */
    int rc = -1, ttl = 0;
    if (!rest) {
        snprintf(err, errlen, "collection: out of memory");
        return -1;
    }
    if (name)
        snprintf(c->name, sizeof c->name, "%s", name);
    else if (str_field(rest, "name", "", c->name, sizeof c->name, err, errlen, w) < 0)
        goto cleanup;
    if (!cluster_valid_name(c->name)) {
        snprintf(err, errlen, "collection: name '%s' must be 1..128 letters, digits, '_' or '-'",
                 c->name);
        goto cleanup;
    }
    if (int_field(rest, "shards", 1, 1, CLUSTER_MAX_SHARDS, &c->shards, err, errlen, w) < 0 ||
        str_field(rest, "embedder", "hash", c->embedder, sizeof c->embedder, err, errlen, w) <
            0 ||
        int_field(rest, "dim", 384, 1, 65536, &c->dim, err, errlen, w) < 0 ||
        str_field(rest, "index_spec", "HNSW32", c->index_spec, sizeof c->index_spec, err,
                  errlen, w) < 0 ||
        int_field(rest, "chunk_tokens", 256, 8, 100000, &c->chunk_tokens, err, errlen, w) < 0 ||
        int_field(rest, "chunk_overlap", 32, 0, 99999, &c->chunk_overlap, err, errlen, w) < 0 ||
        str_field(rest, "language", "english", c->language, sizeof c->language, err, errlen,
                  w) < 0 ||
        int_field(rest, "ttl_seconds", 0, 0, 1 << 30, &ttl, err, errlen, w) < 0)
        goto cleanup;
    if (c->chunk_overlap >= c->chunk_tokens) {
        snprintf(err, errlen, "collection: chunk_overlap %d must be below chunk_tokens %d",
                 c->chunk_overlap, c->chunk_tokens);
        goto cleanup;
    }
    c->ttl_seconds = ttl;
    rc = coll_settings(json_object_get(j, "settings"), c, err, errlen);
cleanup:
    json_decref(rest);
    return rc;
}

json_t *cluster_coll_to_json(const cluster_coll *c)
{
    json_t *j = json_pack("{s:s,s:i,s:s,s:i,s:s,s:i,s:i,s:s,s:I}", "name", c->name, "shards",
                          c->shards, "embedder", c->embedder, "dim", c->dim, "index_spec",
                          c->index_spec, "chunk_tokens", c->chunk_tokens, "chunk_overlap",
                          c->chunk_overlap, "language", c->language, "ttl_seconds",
                          (json_int_t)c->ttl_seconds);
    rag_collection_options o = c->policy;
    o.language = c->language;
    o.ttl_seconds = c->ttl_seconds;
    char *text = NULL;
    if (j && rag_collection_options_json(&o, &text) == RAG_OK)
        json_object_set_new(j, "settings", json_loads(text, 0, NULL));
    rag_free(text);
    return j;
}

int cluster_coll_load(clog *l, const char *name, cluster_coll *c, char *err, size_t errlen)
{
    char *text = NULL;
    if (clog_meta_get(l, name, &text, err, errlen) < 0)
        return -1;
    if (!text)
        return 0;
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    int rc = cluster_coll_from_json(j, name, c, err, errlen) < 0 ? -1 : 1;
    json_decref(j);
    return rc;
}

uint64_t cluster_id_hash(const char *doc_id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)doc_id; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

int cluster_shard_of(const char *doc_id, int shards)
{
    return (int)(cluster_id_hash(doc_id) % (uint64_t)shards);
}

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

void cluster_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cluster_stopping(void)
{
    return stopping;
}

double cluster_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void cluster_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stopping)
        ;
}

int cluster_role_start(const char *role, const char *config, cluster_config *cfg,
                       const char *name, clog **log, const char *listen, int threads,
                       chttp_handler h, void *user, const char *port_file, chttp **http)
{
    char err[1024];
    *log = NULL;
    *http = NULL;
    if (cluster_config_load(config, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "ragcore-server cluster %s: %s\n", role, err);
        return 1;
    }
    cluster_signals();
    /* A broker cluster that is still electing its JetStream leader answers "not found" for
     * a while: keep trying for CONNECT_PATIENCE_MS before giving up. */
    double until = cluster_now_ms() + CONNECT_PATIENCE_MS;
    int rc;
    while ((rc = cluster_connect(cfg, name, log, err, sizeof err)) < 0 && !cluster_stopping() &&
           cluster_now_ms() < until) {
        fprintf(stderr, "ragcore-server cluster %s: %s (trying again)\n", role, err);
        cluster_sleep_ms(500);
    }
    if (rc < 0 || chttp_start(listen, threads, h, user, http, err, sizeof err) < 0) {
        fprintf(stderr, "ragcore-server cluster %s: %s\n", role, err);
        return 2;
    }
    if (port_file && port_file_write(port_file, chttp_port(*http)) < 0)
        fprintf(stderr, "ragcore-server cluster %s: cannot write %s\n", role, port_file);
    fprintf(stderr, "%s %s: listening on port %d\n", role, name, chttp_port(*http));
    return 0;
}

int cluster_pii_key_load(const char *path, unsigned char *key, size_t cap, size_t *klen,
                         char *err, size_t errlen)
{
    char buf[260];
    size_t n = 0;
    *klen = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "pii_key_file %s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    int ok = n % 2 == 0 && n >= 32 && n / 2 <= cap && n <= 128;
    for (size_t i = 0; ok && i < n; i += 2) {
        unsigned v;
        ok = isxdigit((unsigned char)buf[i]) && isxdigit((unsigned char)buf[i + 1]) &&
             sscanf(buf + i, "%2x", &v) == 1;
        key[i / 2] = (unsigned char)v;
    }
    memset(buf, 0, sizeof buf);
    if (!ok) {
        memset(key, 0, cap);
        snprintf(err, errlen, "pii_key_file %s: the key must be one line of 32..128 hex digits "
                 "(16..64 bytes; e.g. openssl rand -hex 32)", path);
        return -1;
    }
    *klen = n / 2;
    return 0;
}
