/* keys.c - API keys of a cluster: server/auth.c on the replicated key-value bucket (key id
 * -> JSON record holding the SHA-256, never the secret), reloaded on every change, the
 * router's authorisation and key routes, and request budgets shared by the routers. */
#include "keys.h"

#include "clock.h"
#include "ratelimit.h"
#include "rpc.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Shared request budgets: every RATE_REPORT_MS each router publishes on RATE_SUBJECT how
 * many requests of each key it let through since its last report, and charges what the
 * other routers report to its own buckets (rl_owe), so that a key's key_request_rate holds
 * for the cluster, whichever routers its requests reach, within what the routers let
 * through in one report's time before they hear of each other. No request waits for the
 * broker; a router cut off from it keeps its own budget alone. */
#define RATE_SUBJECT "rag.rate.requests"
#define RATE_REPORT_MS 100

struct cluster_keys {
    clog_kv *kv;
    srv_auth *auth;
    pthread_t watcher;
    int watching;
    atomic_int stop;
    long request_rate;                 /* each key's requests a second */
    _Atomic unsigned long long limited; /* requests refused by it (429) */
    /* shared budgets (NULL log: this router's own) */
    clog *log;
    char self[40];                     /* this router's id in its reports */
    pthread_mutex_t pend_mu;
    json_t *pending;                   /* key id -> requests let through, not yet reported */
    rpc_sub *reports;
    pthread_t reporter;
    int reporting;
};

/* ---- shared request budgets ------------------------------------------------------------ */

/* Counts one request of key `id` let through here, for the next report. */
static void rate_note(cluster_keys *k, const char *id)
{
    if (!k->log || k->request_rate <= 0)
        return;
    pthread_mutex_lock(&k->pend_mu);
    json_t *v = json_object_get(k->pending, id);
    if (v)
        json_integer_set(v, json_integer_value(v) + 1);
    else
        json_object_set_new(k->pending, id, json_integer(1));
    pthread_mutex_unlock(&k->pend_mu);
}

/* Publishes {"from": self, "counts": {key id: requests}} every RATE_REPORT_MS when any
 * request was let through since the last report. A report the broker does not take is
 * dropped: the other routers then undercount by that much, once. */
static void *report_main(void *arg)
{
    cluster_keys *k = arg;
    while (!atomic_load(&k->stop)) {
        cluster_sleep_ms(RATE_REPORT_MS);
        json_t *counts = json_object();
        if (!counts)
            continue;
        pthread_mutex_lock(&k->pend_mu);
        json_t *full = k->pending;
        k->pending = counts;
        pthread_mutex_unlock(&k->pend_mu);
        if (json_object_size(full) > 0) {
            json_t *report = json_pack("{s:s,s:O}", "from", k->self, "counts", full);
            char *body = report ? json_dumps(report, JSON_COMPACT) : NULL;
            if (body)
                rpc_publish(k->log, RATE_SUBJECT, body, strlen(body));
            free(body);
            json_decref(report);
        }
        json_decref(full);
    }
    return NULL;
}

int cluster_keys_take_report(srv_auth *auth, const char *self, long rate, const char *req,
                             size_t len)
{
    json_t *r = json_loadb(req, len, 0, NULL);
    const char *from = json_string_value(json_object_get(r, "from"));
    json_t *counts = json_object_get(r, "counts");
    const char *id;
    json_t *v;
    int charged = 0;
    if (from && strcmp(from, self) && json_is_object(counts)) {
        int64_t now = (int64_t)(srv_monotonic() * 1e9);
        json_object_foreach(counts, id, v) {
            json_int_t n = json_integer_value(v);
            const auth_key *key = n >= 1 && n <= 1000000000 ? auth_find(auth, id) : NULL;
            if (!key)
                continue;
            rl_owe(auth_key_budget(key, AUTH_BUDGET_REQUESTS), (double)rate, (double)n, now);
            auth_key_release(key);
            charged++;
        }
    }
    json_decref(r);
    return charged;
}

/* Another router's report (cluster_keys_take_report). */
static char *on_report(void *user, const char *req, size_t len, size_t *reply_len)
{
    cluster_keys *k = user;
    (void)reply_len;
    cluster_keys_take_report(k->auth, k->self, k->request_rate, req, len);
    return NULL;
}

/* Starts the reports (cfg "key_rate_scope": "cluster"). -1 with a message. */
static int rate_share_start(cluster_keys *k, clog *l, char *err, size_t errlen)
{
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(err, errlen, "shared request budgets: no random router id: %s",
                 strerror(errno));
        return -1;
    }
    int n = snprintf(k->self, sizeof k->self, "%ld-", (long)getpid());
    for (size_t i = 0; i < sizeof rnd; i++)
        n += snprintf(k->self + n, sizeof k->self - (size_t)n, "%02x", rnd[i]);
    if (!(k->pending = json_object())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&k->pend_mu, NULL);
    k->log = l;
    if (rpc_serve(l, RATE_SUBJECT, NULL, on_report, k, &k->reports, err, errlen) < 0)
        return -1;
    if (pthread_create(&k->reporter, NULL, report_main, k) != 0) {
        snprintf(err, errlen, "cannot start the request budget report thread");
        return -1;
    }
    k->reporting = 1;
    return 0;
}

/* ---- the bucket as auth.c's key source ------------------------------------------------- */

static int kv_scan(void *user, auth_visit_fn visit, void *ctx)
{
    cluster_keys *k = user;
    char err[512], **ids = NULL;
    size_t n = 0;
    int rc = RAG_OK;
    if (clog_kv_keys(k->kv, &ids, &n, err, sizeof err) < 0) {
        fprintf(stderr, "ragcore-server cluster: API keys: %s\n", err);
        return RAG_EIO;
    }
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        char *rec = NULL;
        if (clog_kv_get(k->kv, ids[i], &rec, err, sizeof err) < 0) {
            fprintf(stderr, "ragcore-server cluster: API key '%s': %s\n", ids[i], err);
            rc = RAG_EIO;
        } else if (rec) { /* NULL: deleted since the listing */
            rc = visit(ctx, ids[i], strlen(ids[i]), rec, strlen(rec));
        }
        free(rec);
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return rc;
}

static int kv_put(void *user, const char *id, const char *record)
{
    cluster_keys *k = user;
    char err[512];
    if (clog_kv_put(k->kv, id, record, err, sizeof err) < 0) {
        fprintf(stderr, "ragcore-server cluster: API key '%s': %s\n", id, err);
        return RAG_EIO;
    }
    return RAG_OK;
}

/* Reloads the keys on each change of the bucket, and every CLUSTER_KEYS_RELOAD_MS in any
 * case (a change missed while the connection was down). */
static void *watch_main(void *arg)
{
    cluster_keys *k = arg;
    char err[512];
    double last = cluster_now_ms();
    while (!atomic_load(&k->stop)) {
        int changed = clog_kv_wait(k->kv, 500, err, sizeof err);
        if (changed < 0)
            cluster_sleep_ms(500);
        if (changed > 0 || cluster_now_ms() - last >= CLUSTER_KEYS_RELOAD_MS) {
            if (auth_reload(k->auth) != RAG_OK)
                fprintf(stderr, "ragcore-server cluster: API keys not reloaded; the previous "
                        "ones stay in force\n");
            last = cluster_now_ms();
        }
    }
    return NULL;
}

/* Reads the bootstrap key from path into buf: -1 with a message naming the file. */
static int read_admin_key(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "admin_key_file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    int toolong = n == cap - 1 && fgetc(f) != EOF;
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    if (toolong || n < AUTH_BOOTSTRAP_MIN_LEN || strlen(buf) != n) {
        snprintf(err, errlen, "admin_key_file %s: the key must be one line of %d..%zu "
                 "characters (e.g. openssl rand -hex 24)", path, AUTH_BOOTSTRAP_MIN_LEN,
                 cap - 2);
        return -1;
    }
    return 0;
}

int cluster_keys_open(clog *l, const cluster_config *cfg, cluster_keys **out, char *err,
                      size_t errlen)
{
    char admin[513] = "";
    cluster_keys *k = calloc(1, sizeof *k);
    int rc = -1;
    *out = NULL;
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cfg->admin_key_file && read_admin_key(cfg->admin_key_file, admin, sizeof admin, err,
                                              errlen) < 0)
        goto cleanup;
    k->request_rate = cfg->key_request_rate;
    if (clog_kv_open(l, cfg->keys_bucket, cfg->stream_replicas, &k->kv, err, errlen) < 0)
        goto cleanup;
    auth_source src = {kv_scan, kv_put, k};
    int arc = auth_open_source(&src, admin, &k->auth);
    if (arc != RAG_OK) {
        snprintf(err, errlen, "API keys of bucket %s: %s", cfg->keys_bucket,
                 rag_strerror(arc));
        goto cleanup;
    }
    if (pthread_create(&k->watcher, NULL, watch_main, k) != 0) {
        snprintf(err, errlen, "cannot start the API key watch thread");
        goto cleanup;
    }
    k->watching = 1;
    if (!cfg->key_rate_router && cfg->key_request_rate > 0 &&
        rate_share_start(k, l, err, errlen) < 0)
        goto cleanup;
    json_t *listed = auth_list(k->auth);
    if (!admin[0] && json_array_size(listed) == 0)
        fprintf(stderr, "ragcore-server cluster: no API keys exist in bucket %s and the cluster "
                "configuration names no admin_key_file: every request but /healthz will be "
                "refused with 401\n", cfg->keys_bucket);
    json_decref(listed);
    *out = k;
    k = NULL;
    rc = 0;
cleanup:
    memset(admin, 0, sizeof admin);
    cluster_keys_close(k);
    return rc;
}

void cluster_keys_close(cluster_keys *k)
{
    if (!k)
        return;
    atomic_store(&k->stop, 1);
    if (k->watching)
        pthread_join(k->watcher, NULL);
    if (k->reporting)
        pthread_join(k->reporter, NULL);
    rpc_unserve(k->reports); /* before the keys its handler charges go */
    if (k->log)
        pthread_mutex_destroy(&k->pend_mu);
    json_decref(k->pending);
    auth_close(k->auth);
    clog_kv_close(k->kv);
    free(k);
}

/* ---- requests --------------------------------------------------------------------------- */

static const char *scope_name(unsigned scope)
{
    return scope == SCOPE_ADMIN     ? "admin"
           : scope == SCOPE_WRITE   ? "write"
           : scope == SCOPE_METRICS ? "metrics"
                                    : "read";
}

int cluster_authorize(cluster_keys *k, const char *api_key, unsigned scope,
                      const char *collection, chttp_reply *out)
{
    if (!api_key || !*api_key) {
        chttp_error(out, 401, "unauthorized",
                    "an API key is required (Authorization: Bearer KEY or X-API-Key: KEY)");
        return -1;
    }
    const auth_key *key = auth_check(k->auth, api_key);
    int rc = -1;
    char msg[512];
    if (!key) {
        chttp_error(out, 401, "unauthorized", "unknown or revoked API key");
        goto cleanup;
    }
    if (ratelimit_charge(key, AUTH_BUDGET_REQUESTS, k->request_rate, 1, msg, sizeof msg,
                         &out->retry_after) > 0) {
        chttp_error(out, 429, "rate_limited", "%s", msg);
        atomic_fetch_add(&k->limited, 1);
        goto cleanup;
    }
    rate_note(k, auth_key_id(key)); /* taken here: the other routers charge it too */
    if (!auth_allows(key, scope, NULL))
        chttp_error(out, 403, "forbidden", "API key '%s' lacks the '%s' scope",
                    auth_key_id(key), scope_name(scope));
    else if (collection && !auth_allows(key, scope, collection))
        chttp_error(out, 403, "forbidden", "API key '%s' is not granted collection '%s'",
                    auth_key_id(key), collection);
    else
        rc = 0;
cleanup:
    auth_key_release(key);
    return rc;
}

unsigned long long cluster_keys_rate_limited(cluster_keys *k)
{
    return k ? atomic_load(&k->limited) : 0;
}

int cluster_keys_route(cluster_keys *k, const char *method, const char *path, json_t *body,
                       chttp_reply *out)
{
    if (!strcmp(path, "/v1/keys") && !strcmp(method, "GET")) {
        chttp_json(out, 200, json_pack("{s:o}", "keys", auth_list(k->auth)));
    } else if (!strcmp(path, "/v1/keys") && !strcmp(method, "POST")) {
        json_t *created = NULL;
        const char *code = NULL;
        char field[64], msg[256];
        int status = 500;
        if (auth_create_request(k->auth, body, cluster_valid_name, &created, &status, &code,
                                field, sizeof field, msg, sizeof msg) == RAG_OK)
            chttp_json(out, 201, created);
        else
            chttp_error(out, status, status == 400 ? code : "key_store_unavailable",
                        "%s%s%s", field[0] ? field : "", field[0] ? ": " : "", msg);
    } else if (!strncmp(path, "/v1/keys/", 9) && !strcmp(method, "DELETE")) {
        const char *id = path + 9;
        int rc = auth_revoke(k->auth, id);
        if (rc == RAG_OK)
            chttp_json(out, 200, json_pack("{s:s,s:b}", "id", id, "revoked", 1));
        else if (rc == RAG_ENOTFOUND)
            chttp_error(out, 404, "not_found", "no API key with id '%s'", id);
        else if (rc == RAG_EINVAL)
            chttp_error(out, 400, "invalid_field",
                        "id: the bootstrap key comes from the cluster configuration's "
                        "admin_key_file and cannot be revoked");
        else
            chttp_error(out, 503, "key_store_unavailable", "revoke key '%s': %s", id,
                        rag_strerror(rc));
    } else {
        return 0;
    }
    return 1;
}
