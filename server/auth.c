/* auth.c - API keys: scopes, per-collection grants, SHA-256 hashes compared in constant
 * time, persisted in a key source: the store's "keys" table (key id -> JSON record) or,
 * in a cluster, the replicated key-value bucket (cluster/keys.c). */
#include "auth.h"


#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEYS_TABLE "keys"

struct auth_key {
    atomic_int refs;
    char *id;
    char *name;
    unsigned char hash[32];
    unsigned scopes;
    int all_collections;
    char **collections;
    size_t ncollections;
    int64_t created_at;
    _Atomic int64_t revoked_at;
    _Atomic int64_t budget[AUTH_BUDGETS];
};

struct srv_auth {
    auth_source src;
    pthread_rwlock_t lock;      /* guards keys/nkeys */
    pthread_mutex_t write_lock; /* serialises create/revoke/reload */
    auth_key **keys;
    size_t nkeys;
    auth_key *bootstrap;
    EVP_MD *sha256;
};

static void key_free(auth_key *k)
{
    if (!k)
        return;
    free(k->id);
    free(k->name);
    for (size_t i = 0; i < k->ncollections; i++)
        free(k->collections[i]);
    free(k->collections);
    free(k);
}

void auth_key_release(const auth_key *ck)
{
    auth_key *k = (auth_key *)ck;
    if (k && atomic_fetch_sub(&k->refs, 1) == 1)
        key_free(k);
}

static int sha256(srv_auth *a, const char *s, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    return EVP_Digest(s, len, out, &n, a->sha256, NULL) == 1 && n == 32 ? 0 : -1;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char D[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = D[p[i] >> 4];
        out[2 * i + 1] = D[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return 0;
}

unsigned auth_scope_parse(const char *name)
{
    if (!strcmp(name, "read"))
        return SCOPE_READ;
    if (!strcmp(name, "write"))
        return SCOPE_WRITE;
    if (!strcmp(name, "admin"))
        return SCOPE_ADMIN;
    if (!strcmp(name, "metrics"))
        return SCOPE_METRICS;
    return 0;
}

/* Public record (no hash). */
static json_t *key_record(const auth_key *k, int with_hash)
{
    json_t *o = json_object(), *scopes = json_array(), *colls = json_array();
    json_object_set_new(o, "id", json_string(k->id));
    json_object_set_new(o, "name", json_string(k->name));
    if (k->scopes & SCOPE_READ)
        json_array_append_new(scopes, json_string("read"));
    if (k->scopes & SCOPE_WRITE)
        json_array_append_new(scopes, json_string("write"));
    if (k->scopes & SCOPE_METRICS)
        json_array_append_new(scopes, json_string("metrics"));
    if (k->scopes & SCOPE_ADMIN)
        json_array_append_new(scopes, json_string("admin"));
    json_object_set_new(o, "scopes", scopes);
    if (k->all_collections)
        json_array_append_new(colls, json_string("*"));
    for (size_t i = 0; i < k->ncollections; i++)
        json_array_append_new(colls, json_string(k->collections[i]));
    json_object_set_new(o, "collections", colls);
    json_object_set_new(o, "created_at", json_integer(k->created_at));
    int64_t rev = atomic_load(&k->revoked_at);
    json_object_set_new(o, "revoked_at", rev ? json_integer(rev) : json_null());
    if (with_hash) {
        char h[65];
        hex(k->hash, 32, h);
        json_object_set_new(o, "sha256", json_string(h));
    }
    return o;
}

/* Builds a key from its stored record; NULL when malformed. */
static auth_key *key_from_record(const char *text, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr), *v;
    auth_key *k = calloc(1, sizeof *k);
    size_t i;
    if (!o || !k || !json_is_object(o))
        goto fail;
    atomic_init(&k->refs, 1);
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *h = json_string_value(json_object_get(o, "sha256"));
    if (!id || !h || unhex(h, k->hash, 32) < 0)
        goto fail;
    k->id = strdup(id);
    k->name = strdup(name ? name : "");
    json_array_foreach(json_object_get(o, "scopes"), i, v) {
        if (json_is_string(v))
            k->scopes |= auth_scope_parse(json_string_value(v));
    }
    json_t *colls = json_object_get(o, "collections");
    k->collections = calloc(json_array_size(colls) + 1, sizeof *k->collections);
    if (!k->id || !k->name || !k->collections)
        goto fail;
    json_array_foreach(colls, i, v) {
        const char *c = json_string_value(v);
        if (!c)
            continue;
        if (!strcmp(c, "*"))
            k->all_collections = 1;
        else if (!(k->collections[k->ncollections++] = strdup(c)))
            goto fail;
    }
    k->created_at = json_integer_value(json_object_get(o, "created_at"));
    atomic_init(&k->revoked_at, json_integer_value(json_object_get(o, "revoked_at")));
    json_decref(o);
    return k;
fail:
    json_decref(o);
    key_free(k);
    return NULL;
}

typedef struct load_ctx {
    auth_key **keys;
    size_t n, cap;
    int rc;
} load_ctx;

static int load_visit(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    load_ctx *c = user;
    auth_key *k = key_from_record(val, vlen);
    if (!k) {
        fprintf(stderr, "ragcore-server: skipping malformed key record '%.*s'\n", (int)klen,
                (const char *)key);
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        auth_key **p = realloc(c->keys, cap * sizeof *p);
        if (!p) {
            key_free(k);
            c->rc = RAG_ENOMEM;
            return 1;
        }
        c->keys = p;
        c->cap = cap;
    }
    c->keys[c->n++] = k;
    return 0;
}

int auth_reload(srv_auth *a)
{
    load_ctx c = {0};
    pthread_mutex_lock(&a->write_lock);
    int rc = a->src.scan(a->src.user, load_visit, &c);
    if (rc >= 0) /* > 0: the visitor stopped the scan (c.rc says why) */
        rc = c.rc;
    if (rc != RAG_OK) {
        for (size_t i = 0; i < c.n; i++)
            key_free(c.keys[i]);
        free(c.keys);
        pthread_mutex_unlock(&a->write_lock);
        return rc;
    }
    pthread_rwlock_wrlock(&a->lock);
    auth_key **old = a->keys;
    size_t nold = a->nkeys;
    for (size_t i = 0; i < c.n; i++) /* a key that stays keeps what it has spent */
        for (size_t j = 0; j < nold; j++)
            if (!strcmp(c.keys[i]->id, old[j]->id))
                for (int b = 0; b < AUTH_BUDGETS; b++)
                    atomic_store(&c.keys[i]->budget[b], atomic_load(&old[j]->budget[b]));
    a->keys = c.keys;
    a->nkeys = c.n;
    pthread_rwlock_unlock(&a->lock);
    for (size_t i = 0; i < nold; i++)
        auth_key_release(old[i]);
    free(old);
    pthread_mutex_unlock(&a->write_lock);
    return RAG_OK;
}

/* The store's "keys" table as a key source. */
static int table_scan(void *user, auth_visit_fn visit, void *ctx)
{
    return rag_table_scan(user, KEYS_TABLE, NULL, 0, visit, ctx);
}

static int table_put(void *user, const char *id, const char *record)
{
    return rag_table_put(user, KEYS_TABLE, id, strlen(id), record, strlen(record));
}

int auth_open(rag_db *db, const char *bootstrap, srv_auth **out)
{
    auth_source src = {table_scan, table_put, db};
    return auth_open_source(&src, bootstrap, out);
}

int auth_open_source(const auth_source *src, const char *bootstrap, srv_auth **out)
{
    srv_auth *a = calloc(1, sizeof *a);
    int rc = RAG_ENOMEM;
    *out = NULL;
    if (!a)
        return RAG_ENOMEM;
    a->src = *src;
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->write_lock, NULL);
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!a->sha256) {
        rc = RAG_EUNSUPPORTED;
        goto fail;
    }
    if (bootstrap && *bootstrap) {
        auth_key *k = calloc(1, sizeof *k);
        if (!k)
            goto fail;
        atomic_init(&k->refs, 1);
        k->id = strdup("bootstrap");
        k->name = strdup("RAGCORE_ADMIN_KEY");
        k->scopes = SCOPE_READ | SCOPE_WRITE | SCOPE_ADMIN;
        k->all_collections = 1;
        a->bootstrap = k;
        if (!k->id || !k->name || sha256(a, bootstrap, strlen(bootstrap), k->hash) < 0)
            goto fail;
    }
    rc = auth_reload(a);
    if (rc != RAG_OK)
        goto fail;
    *out = a;
    return RAG_OK;
fail:
    auth_close(a);
    return rc;
}

void auth_close(srv_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nkeys; i++)
        auth_key_release(a->keys[i]);
    free(a->keys);
    auth_key_release(a->bootstrap);
    EVP_MD_free(a->sha256);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->write_lock);
    free(a);
}

const auth_key *auth_check(srv_auth *a, const char *presented)
{
    unsigned char h[32];
    auth_key *found = NULL;
    if (!presented || !*presented || sha256(a, presented, strlen(presented), h) < 0)
        return NULL;
    pthread_rwlock_rdlock(&a->lock);
    /* Every candidate is compared (no early exit) so timing does not depend on which
     * key, if any, matched. */
    if (a->bootstrap && CRYPTO_memcmp(h, a->bootstrap->hash, 32) == 0)
        found = a->bootstrap;
    for (size_t i = 0; i < a->nkeys; i++) {
        auth_key *k = a->keys[i];
        int match = CRYPTO_memcmp(h, k->hash, 32) == 0;
        if (match && !atomic_load(&k->revoked_at))
            found = k;
    }
    if (found)
        atomic_fetch_add(&found->refs, 1);
    pthread_rwlock_unlock(&a->lock);
    return found;
}

const auth_key *auth_find(srv_auth *a, const char *id)
{
    auth_key *found = NULL;
    pthread_rwlock_rdlock(&a->lock);
    if (a->bootstrap && !strcmp(a->bootstrap->id, id))
        found = a->bootstrap;
    for (size_t i = 0; i < a->nkeys && !found; i++)
        if (!strcmp(a->keys[i]->id, id) && !atomic_load(&a->keys[i]->revoked_at))
            found = a->keys[i];
    if (found)
        atomic_fetch_add(&found->refs, 1);
    pthread_rwlock_unlock(&a->lock);
    return found;
}

const char *auth_key_id(const auth_key *k)
{
    return k->id;
}

_Atomic int64_t *auth_key_budget(const auth_key *k, int which)
{
    return &((auth_key *)k)->budget[which];
}

int auth_allows(const auth_key *k, unsigned scope, const char *collection)
{
    if (k->scopes & SCOPE_ADMIN)
        return 1;
    if ((k->scopes & scope) != scope)
        return 0;
    if (!collection || k->all_collections)
        return 1;
    for (size_t i = 0; i < k->ncollections; i++)
        if (!strcmp(k->collections[i], collection))
            return 1;
    return 0;
}

int auth_create(srv_auth *a, const char *name, unsigned scopes, const char *const *collections,
                size_t ncollections, char **secret, json_t **record)
{
    unsigned char rnd[6 + 24];
    char idhex[13], sechex[49];
    char *plain = NULL, *text = NULL;
    json_t *stored = NULL;
    auth_key *k = NULL;
    int rc = RAG_ENOMEM;

    *secret = NULL;
    *record = NULL;
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return RAG_EIO;
    hex(rnd, 6, idhex);
    hex(rnd + 6, 24, sechex);
    if (!(plain = malloc(4 + 48 + 1)) || !(k = calloc(1, sizeof *k)))
        goto cleanup;
    snprintf(plain, 4 + 48 + 1, "rck_%s", sechex);
    atomic_init(&k->refs, 1);
    k->id = strdup(idhex);
    k->name = strdup(name ? name : "");
    k->scopes = scopes;
    k->created_at = (int64_t)time(NULL);
    k->collections = calloc(ncollections + 1, sizeof *k->collections);
    if (!k->id || !k->name || !k->collections)
        goto cleanup;
    for (size_t i = 0; i < ncollections; i++) {
        if (!strcmp(collections[i], "*"))
            k->all_collections = 1;
        else if (!(k->collections[k->ncollections++] = strdup(collections[i])))
            goto cleanup;
    }
    if (sha256(a, plain, strlen(plain), k->hash) < 0) {
        rc = RAG_EIO;
        goto cleanup;
    }
    stored = key_record(k, 1);
    text = json_dumps(stored, JSON_COMPACT);
    if (!text)
        goto cleanup;
    pthread_mutex_lock(&a->write_lock);
    rc = a->src.put(a->src.user, k->id, text);
    if (rc == RAG_OK) {
        pthread_rwlock_wrlock(&a->lock);
        auth_key **p = realloc(a->keys, (a->nkeys + 1) * sizeof *p);
        if (p) {
            a->keys = p;
            a->keys[a->nkeys++] = k;
            atomic_fetch_add(&k->refs, 1);
        } else {
            rc = RAG_ENOMEM;
        }
        pthread_rwlock_unlock(&a->lock);
    }
    pthread_mutex_unlock(&a->write_lock);
    if (rc == RAG_OK) {
        *record = key_record(k, 0);
        *secret = plain;
        plain = NULL;
    }
cleanup:
    if (plain)
        OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    free(text);
    json_decref(stored);
    auth_key_release(k);
    return rc;
}

int auth_revoke(srv_auth *a, const char *id)
{
    int rc = RAG_ENOTFOUND;
    if (!strcmp(id, "bootstrap"))
        return RAG_EINVAL;
    pthread_mutex_lock(&a->write_lock);
    pthread_rwlock_rdlock(&a->lock);
    auth_key *k = NULL;
    for (size_t i = 0; i < a->nkeys; i++)
        if (!strcmp(a->keys[i]->id, id))
            k = a->keys[i];
    if (k)
        atomic_fetch_add(&k->refs, 1);
    pthread_rwlock_unlock(&a->lock);
    if (k) {
        int64_t was = atomic_load(&k->revoked_at);
        atomic_store(&k->revoked_at, was ? was : (int64_t)time(NULL));
        json_t *stored = key_record(k, 1);
        char *text = json_dumps(stored, JSON_COMPACT);
        rc = text ? a->src.put(a->src.user, k->id, text) : RAG_ENOMEM;
        if (rc != RAG_OK)
            atomic_store(&k->revoked_at, was);
        free(text);
        json_decref(stored);
        auth_key_release(k);
    }
    pthread_mutex_unlock(&a->write_lock);
    return rc;
}

json_t *auth_list(srv_auth *a)
{
    json_t *arr = json_array();
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->nkeys; i++)
        json_array_append_new(arr, key_record(a->keys[i], 0));
    pthread_rwlock_unlock(&a->lock);
    return arr;
}

/* Sets a 400's code, field and message; returns RAG_EINVAL. */
static int bad_request(int *status, const char **code, const char *c, char *field,
                       size_t fieldlen, const char *f, char *msg, size_t msglen, const char *fmt,
                       ...) __attribute__((format(printf, 9, 10)));
static int bad_request(int *status, const char **code, const char *c, char *field,
                       size_t fieldlen, const char *f, char *msg, size_t msglen, const char *fmt,
                       ...)
{
    va_list ap;
    *status = 400;
    *code = c;
    snprintf(field, fieldlen, "%s", f);
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return RAG_EINVAL;
}

int auth_create_request(srv_auth *a, json_t *body, int (*valid_name)(const char *),
                        json_t **created, int *status, const char **code, char *field,
                        size_t fieldlen, char *msg, size_t msglen)
{
    static const char *const FIELDS[] = {"name", "scopes", "collections", NULL};
    const char **names = NULL, *key;
    char *secret = NULL, path[64];
    json_t *scopes, *colls, *record = NULL, *x, *name;
    unsigned mask = 0;
    size_t i, ncoll;
    int rc;

    *created = NULL;
    *status = 500;
    *code = "internal";
    field[0] = msg[0] = '\0';
    if (!json_is_object(body))
        return bad_request(status, code, "invalid_field", field, fieldlen, "", msg, msglen,
                           "the request body must be a JSON object");
    json_object_foreach(body, key, x) {
        int known = 0;
        for (i = 0; FIELDS[i]; i++)
            known |= !strcmp(FIELDS[i], key);
        if (!known)
            return bad_request(status, code, "invalid_field", field, fieldlen, key, msg,
                               msglen, "unknown field '%s'", key);
    }
    name = json_object_get(body, "name");
    if (!name || json_is_null(name))
        return bad_request(status, code, "missing_field", field, fieldlen, "name", msg, msglen,
                           "'name' is required");
    if (!json_is_string(name) || json_string_length(name) < 1 ||
        json_string_length(name) > 128 || strlen(json_string_value(name)) != json_string_length(name))
        return bad_request(status, code, "invalid_field", field, fieldlen, "name", msg, msglen,
                           "'name' must be a string of 1..128 bytes without NUL");
    scopes = json_object_get(body, "scopes");
    if (!json_is_array(scopes) || json_array_size(scopes) == 0)
        return bad_request(status, code, scopes ? "invalid_field" : "missing_field", field,
                           fieldlen, "scopes", msg, msglen,
                           "'scopes' must be a non-empty array of " AUTH_SCOPE_NAMES);
    json_array_foreach(scopes, i, x) {
        unsigned sc = json_is_string(x) ? auth_scope_parse(json_string_value(x)) : 0;
        if (!sc) {
            snprintf(path, sizeof path, "scopes[%zu]", i);
            return bad_request(status, code, "invalid_field", field, fieldlen, path, msg,
                               msglen, "'%s' must be " AUTH_SCOPE_NAMES, path);
        }
        mask |= sc;
    }
    colls = json_object_get(body, "collections");
    if (json_is_null(colls))
        colls = NULL; /* null means absent, as for every optional field */
    if (!colls && !(mask & SCOPE_ADMIN))
        return bad_request(status, code, "missing_field", field, fieldlen, "collections", msg,
                           msglen,
                           "'collections' is required (collection names, or [\"*\"] for all)");
    if (colls && !json_is_array(colls))
        return bad_request(status, code, "invalid_field", field, fieldlen, "collections", msg,
                           msglen, "'collections' must be an array");
    ncoll = json_array_size(colls);
    if (!(names = calloc(ncoll + 1, sizeof *names))) {
        snprintf(msg, msglen, "out of memory");
        return RAG_ENOMEM;
    }
    json_array_foreach(colls, i, x) {
        const char *c = json_string_value(x);
        if (!c || (strcmp(c, "*") && valid_name && !valid_name(c))) {
            snprintf(path, sizeof path, "collections[%zu]", i);
            rc = bad_request(status, code, "invalid_field", field, fieldlen, path, msg, msglen,
                             "'%s' must be a collection name or \"*\"", path);
            goto cleanup;
        }
        names[i] = c;
    }
    rc = auth_create(a, json_string_value(name), mask, names, ncoll, &secret, &record);
    if (rc != RAG_OK) {
        *status = rc == RAG_EIO || rc == RAG_ENOMEM ? 500 : 503;
        snprintf(msg, msglen, "create key: %s", rag_strerror(rc));
        goto cleanup;
    }
    json_object_set_new(record, "key", json_string(secret));
    *created = record;
    *status = 201;
cleanup:
    if (secret)
        OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
    free(names);
    return rc;
}
