/* config.c - server configuration from flags, environment (RAGCORE_*) and a config file. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { OPT_STR, OPT_INT, OPT_LONG, OPT_BOOL };

typedef struct opt_def {
    const char *name;
    int kind;
    size_t off;      /* offset in srv_config */
    int atomic;      /* 1: the field is an _Atomic member of limits */
    int reloadable;
    long min, max;
    const char *help;
} opt_def;

#define F(field) offsetof(srv_config, field)
static const opt_def OPTS[] = {
    {"db", OPT_STR, F(db), 0, 0, 0, 0, "store directory (required)"},
    {"key-file", OPT_STR, F(key_file), 0, 0, 0, 0,
     "file holding the store's encryption key (else RAGCORE_STORE_KEY; docs/privacy.md)"},
    {"listen", OPT_STR, F(listen), 0, 0, 0, 0, "HOST:PORT to listen on (127.0.0.1:8080)"},
    {"embedder", OPT_STR, F(embedder), 0, 0, 0, 0, "embedder of a new store (model[:int8|:fp32])"},
    {"dim", OPT_INT, F(dim), 0, 0, 0, 65536, "dimension of the hash embedder (new store)"},
    {"index", OPT_STR, F(index_spec), 0, 0, 0, 0, "FAISS index spec of new collections"},
    {"ef-search", OPT_INT, F(ef_search), 0, 0, 0, 100000, "HNSW search depth (library default)"},
    {"ef-construction", OPT_INT, F(ef_construction), 0, 0, 0, 100000,
     "HNSW build depth of inserts (library default)"},
    {"checkpoint-every", OPT_INT, F(checkpoint_every), 0, 0, 0, 2000000000,
     "vectors added between index checkpoints and compactions (50000)"},
    {"tls-cert", OPT_STR, F(tls_cert), 0, 0, 0, 0, "PEM certificate: serve HTTPS"},
    {"tls-key", OPT_STR, F(tls_key), 0, 0, 0, 0, "PEM private key of --tls-cert"},
    {"threads", OPT_INT, F(threads), 0, 0, 0, 1024, "HTTP worker threads (CPUs, at least 2)"},
    {"timeout", OPT_INT, F(timeout), 0, 0, 1, 86400, "per-connection idle timeout, s (30)"},
    {"max-connections", OPT_INT, F(max_connections), 0, 0, 1, 1000000,
     "open connections at most, lowered to fit ulimit -n (4096)"},
    {"max-connections-per-client", OPT_LONG, F(limits.max_conns_per_client), 1, 1, 1, 1000000,
     "open connections of one client address, IPv6 by /64 (1024)"},
    {"header-timeout", OPT_LONG, F(limits.header_timeout), 1, 1, 1, 86400,
     "seconds a request's line and headers may take to arrive (10)"},
    {"body-timeout", OPT_LONG, F(limits.body_timeout), 1, 1, 1, 86400,
     "seconds a request body may take to arrive after its headers (60)"},
    {"drain-timeout", OPT_INT, F(drain_timeout), 0, 0, 0, 86400,
     "seconds SIGTERM waits for in-flight requests (30)"},
    {"port-file", OPT_STR, F(port_file), 0, 0, 0, 0, "write the bound port to this file"},
    {"max-body", OPT_LONG, F(limits.max_body), 1, 1, 1, 1L << 34, "request body limit (10 MiB)"},
    {"max-k", OPT_LONG, F(limits.max_k), 1, 1, 1, 10000, "largest search k (1000)"},
    {"max-query-bytes", OPT_LONG, F(limits.max_query_bytes), 1, 1, 1, 1L << 24,
     "longest query text (8192)"},
    {"max-batch", OPT_LONG, F(limits.max_batch), 1, 1, 1, 1000000,
     "documents per ingest (10000)"},
    {"max-embed-inputs", OPT_LONG, F(limits.max_embed_inputs), 1, 1, 1, 1000000,
     "inputs per /v1/embeddings call (2048)"},
    {"max-embed-tokens", OPT_LONG, F(limits.max_embed_tokens), 1, 1, 1, 1L << 40,
     "estimated encoder tokens per /v1/embeddings call (100000)"},
    {"key-request-rate", OPT_LONG, F(limits.key_request_rate), 1, 1, 0, 1L << 40,
     "requests a second per API key, 0: no limit (10000)"},
    {"key-token-rate", OPT_LONG, F(limits.key_token_rate), 1, 1, 0, 1L << 40,
     "/v1/embeddings tokens a second per API key, 0: no limit (50000)"},
    {"max-filter-depth", OPT_LONG, F(limits.max_filter_depth), 1, 1, 1, 64,
     "nesting depth of a search filter (8)"},
    {"max-inflight", OPT_LONG, F(limits.max_inflight), 1, 1, 1, 1000000,
     "concurrent requests before 429 (512)"},
    {"write-queue", OPT_LONG, F(limits.write_queue), 1, 1, 1, 1000000,
     "queued write requests before 429 (64)"},
    {"querylog-retention", OPT_LONG, F(limits.querylog_retention), 1, 1, 0, 1L << 40,
     "seconds query-log entries are kept, 0: forever (604800)"},
    {"querylog-max-bytes", OPT_LONG, F(limits.querylog_max_bytes), 1, 1, 0, 1L << 50,
     "store bytes the query log may take, oldest dropped first; 0: no bound (1 GiB)"},
    {"access-log", OPT_BOOL, F(limits.access_log), 1, 1, 0, 1, "JSON access log (on)"},
    {"querylog", OPT_BOOL, F(limits.querylog), 1, 1, 0, 1, "record searches (on)"},
    {"querylog-text", OPT_STR, F(querylog_text), 0, 0, 0, 0,
     "query texts in the query log: off (not kept), mask (PII replaced by [EMAIL], ...), "
     "hash (keyed hashes) or raw (mask)"},
    {"metrics-public", OPT_BOOL, F(limits.metrics_public), 1, 1, 0, 1,
     "/metrics without a key shows process-level series (off)"},
};
#undef F
#define NOPTS (sizeof OPTS / sizeof OPTS[0])

static int saved_argc;
static char **saved_argv;

void config_init(srv_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->timeout = 30;
    cfg->drain_timeout = 30;
    cfg->max_connections = 4096;
    atomic_store(&cfg->limits.max_body, 10L << 20);
    atomic_store(&cfg->limits.max_k, 1000);
    atomic_store(&cfg->limits.max_query_bytes, 8192);
    atomic_store(&cfg->limits.max_batch, 10000);
    atomic_store(&cfg->limits.max_filter_depth, 8);
    atomic_store(&cfg->limits.max_inflight, 512);
    atomic_store(&cfg->limits.write_queue, 64);
    atomic_store(&cfg->limits.querylog_retention, 7L * 86400);
    atomic_store(&cfg->limits.querylog_max_bytes, 1L << 30);
    atomic_store(&cfg->limits.max_embed_inputs, 2048);
    atomic_store(&cfg->limits.max_embed_tokens, 100000);
    atomic_store(&cfg->limits.key_request_rate, 10000);
    atomic_store(&cfg->limits.key_token_rate, 50000);
    atomic_store(&cfg->limits.header_timeout, 10);
    atomic_store(&cfg->limits.body_timeout, 60);
    atomic_store(&cfg->limits.max_conns_per_client, 1024);
    atomic_store(&cfg->limits.access_log, 1);
    atomic_store(&cfg->limits.querylog, 1);
    atomic_store(&cfg->limits.querylog_text, 1); /* QLOG_TEXT_MASK */
    atomic_store(&cfg->limits.metrics_public, 0);
}

void config_free(srv_config *cfg)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (OPTS[i].kind == OPT_STR) {
            char **p = (char **)((char *)cfg + OPTS[i].off);
            free(*p);
            *p = NULL;
        }
    free(cfg->config_file);
    cfg->config_file = NULL;
}

static const opt_def *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(OPTS[i].name) == len && strncmp(OPTS[i].name, name, len) == 0)
            return &OPTS[i];
    return NULL;
}

/* Parses `value` for option `o` and stores it in cfg. -1 with err naming `origin`. */
static int apply(srv_config *cfg, const opt_def *o, const char *value, const char *origin,
                 char *err, size_t errlen)
{
    char *field = (char *)cfg + o->off;
    if (o->kind == OPT_STR) {
        char *copy = strdup(value);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    long v;
    if (o->kind == OPT_BOOL) {
        if (!strcasecmp(value, "on") || !strcasecmp(value, "true") || !strcmp(value, "1") ||
            !strcasecmp(value, "yes"))
            v = 1;
        else if (!strcasecmp(value, "off") || !strcasecmp(value, "false") ||
                 !strcmp(value, "0") || !strcasecmp(value, "no"))
            v = 0;
        else {
            snprintf(err, errlen, "%s: %s: expected on or off, got '%s'", origin, o->name, value);
            return -1;
        }
    } else {
        char *end;
        errno = 0;
        v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < o->min || v > o->max) {
            snprintf(err, errlen, "%s: %s: expected an integer in %ld..%ld, got '%s'", origin,
                     o->name, o->min, o->max, value);
            return -1;
        }
    }
    if (o->kind == OPT_BOOL && o->atomic)
        atomic_store((_Atomic int *)field, (int)v);
    else if (o->kind == OPT_LONG && o->atomic)
        atomic_store((_Atomic long *)field, v);
    else
        *(int *)field = (int)v;
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

/* Reads "name = value" lines ('#' comments) of any length. A line holding a NUL byte is
 * refused: what follows it would be dropped silently. */
static int load_file(srv_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, origin[512];
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    if (!f) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        return -1;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)len)) {
            snprintf(err, errlen, "config file %s line %d: a NUL byte in the line", path,
                     lineno);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = trim(line);
        if (!*s)
            continue;
        size_t nlen = strcspn(s, " \t=");
        char *value = s + nlen;
        while (*value == ' ' || *value == '\t' || *value == '=')
            value++;
        snprintf(origin, sizeof origin, "config file %s line %d", path, lineno);
        const opt_def *o = find_opt(s, nlen);
        if (!o) {
            snprintf(err, errlen, "%s: unknown setting '%.*s'", origin, (int)nlen, s);
            rc = -1;
            break;
        }
        if (apply(cfg, o, trim(value), origin, err, errlen) < 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

static int load_env(srv_config *cfg, char *err, size_t errlen)
{
    char name[64], origin[96];
    for (size_t i = 0; i < NOPTS; i++) {
        snprintf(name, sizeof name, "RAGCORE_");
        size_t n = strlen(name);
        for (const char *p = OPTS[i].name; *p && n + 1 < sizeof name; p++)
            name[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        name[n] = 0;
        const char *v = getenv(name);
        if (!v || !*v)
            continue;
        snprintf(origin, sizeof origin, "environment %s", name);
        if (apply(cfg, &OPTS[i], v, origin, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Flags; when `only_config` is set, only finds --config (first pass). */
static int load_flags(srv_config *cfg, int argc, char **argv, int only_config, char *err,
                      size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return 1;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (flags are --name value)", a);
            return -1;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const char *value = eq ? eq + 1 : NULL;
        int is_config = nlen == 6 && !strncmp(a, "config", 6);
        const opt_def *o = is_config ? NULL : find_opt(a, nlen);
        if (!is_config && !o) {
            snprintf(err, errlen, "unknown flag '--%.*s' (see --help)", (int)nlen, a);
            return -1;
        }
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "flag --%.*s needs a value", (int)nlen, a);
                return -1;
            }
            value = argv[++i];
        }
        if (is_config) {
            if (only_config) {
                free(cfg->config_file);
                cfg->config_file = strdup(value);
            }
            continue;
        }
        if (only_config)
            continue;
        char origin[96];
        snprintf(origin, sizeof origin, "flag --%s", o->name);
        if (apply(cfg, o, value, origin, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int load_all(srv_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    int rc = load_flags(cfg, argc, argv, 1, err, errlen);
    if (rc)
        return rc;
    if (!cfg->config_file && getenv("RAGCORE_CONFIG") && *getenv("RAGCORE_CONFIG"))
        cfg->config_file = strdup(getenv("RAGCORE_CONFIG"));
    if (cfg->config_file && load_file(cfg, cfg->config_file, err, errlen) < 0)
        return -1;
    if (load_env(cfg, err, errlen) < 0)
        return -1;
    return load_flags(cfg, argc, argv, 0, err, errlen);
}

int config_load(srv_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    saved_argc = argc;
    saved_argv = argv;
    int rc = load_all(cfg, argc, argv, err, errlen);
    if (rc)
        return rc;
    if (!cfg->db) {
        snprintf(err, errlen, "--db DIR is required (or RAGCORE_DB, or db in the config file)");
        return -1;
    }
    if (!cfg->listen && !(cfg->listen = strdup("127.0.0.1:8080"))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        snprintf(err, errlen, "--tls-cert and --tls-key must be given together");
        return -1;
    }
    /* in the order of QLOG_TEXT_* (querylog.h) */
    static const char *const TEXT[] = {"off", "mask", "hash", "raw"};
    int text = cfg->querylog_text ? -1 : 1;
    for (int i = 0; i < 4 && text < 0; i++)
        if (!strcmp(cfg->querylog_text, TEXT[i]))
            text = i;
    if (text < 0) {
        snprintf(err, errlen, "--querylog-text must be off, mask, hash or raw, got '%s'",
                 cfg->querylog_text);
        return -1;
    }
    atomic_store(&cfg->limits.querylog_text, text);
    return 0;
}

int config_reload(srv_config *cfg, char *err, size_t errlen)
{
    srv_config tmp;
    config_init(&tmp);
    int rc = load_all(&tmp, saved_argc, saved_argv, err, errlen);
    if (rc == 0) {
        /* every reloadable setting is an atomic member of limits (see OPTS) */
        for (size_t i = 0; i < NOPTS; i++) {
            const opt_def *o = &OPTS[i];
            char *dst = (char *)cfg + o->off, *src = (char *)&tmp + o->off;
            if (!o->reloadable)
                continue;
            if (o->kind == OPT_BOOL)
                atomic_store((_Atomic int *)dst, atomic_load((_Atomic int *)src));
            else
                atomic_store((_Atomic long *)dst, atomic_load((_Atomic long *)src));
        }
    } else if (rc > 0) {
        rc = 0;
    }
    config_free(&tmp);
    return rc;
}

void config_usage(void *out)
{
    FILE *f = out;
    fprintf(f, "usage: ragcore-server --db DIR [--listen HOST:PORT] [--config FILE] [flags]\n"
               "Settings come from the config file (name = value lines), the environment\n"
               "(RAGCORE_<NAME>, e.g. RAGCORE_TLS_CERT) and flags, later ones winning.\n"
               "RAGCORE_ADMIN_KEY sets a bootstrap admin API key. SIGHUP reloads keys and\n"
               "the limits marked *; SIGTERM drains requests, checkpoints and exits.\n\n");
    fprintf(f, "  --%-28s %s\n", "config FILE", "read settings from FILE");
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(f, "  --%-28s %s%s\n", OPTS[i].name, OPTS[i].reloadable ? "* " : "",
                OPTS[i].help);
}
