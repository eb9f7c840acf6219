/* auth.h - API keys: scopes (read, write, metrics, admin), per-collection grants, stored
 * hashed (SHA-256) in a key source (the store's "keys" table, or a cluster's key-value
 * bucket) and compared in constant time; each key's rate budgets. */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include "ragcore.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum { SCOPE_READ = 1, SCOPE_WRITE = 2, SCOPE_ADMIN = 4, SCOPE_METRICS = 8 };

/* The scope names auth_scope_parse knows, for messages. */
#define AUTH_SCOPE_NAMES "\"read\", \"write\", \"metrics\" or \"admin\""

/* A RAGCORE_ADMIN_KEY shorter than this is weak: the server refuses it on a listener that
 * is not loopback (main.c). */
#define AUTH_BOOTSTRAP_MIN_LEN 16

/* A key's rate budgets (ratelimit.c): requests, and /v1/embeddings encoder tokens. */
enum { AUTH_BUDGET_REQUESTS, AUTH_BUDGET_TOKENS, AUTH_BUDGETS };

typedef struct srv_auth srv_auth;
typedef struct auth_key auth_key;

/* Where key records live: id -> JSON record (with the key's SHA-256, never the secret).
 * scan calls visit(ctx, id, idlen, record, reclen) for every record (a non-zero return
 * stops the scan) and returns a RAG_* status (> 0: the visitor stopped it); put stores
 * (creates or replaces) one record and returns a RAG_* status with rag_fail's message.
 * Both may be called from any thread. */
typedef int (*auth_visit_fn)(void *ctx, const void *id, size_t idlen, const void *rec,
                             size_t reclen);
typedef struct auth_source {
    int (*scan)(void *user, auth_visit_fn visit, void *ctx);
    int (*put)(void *user, const char *id, const char *record);
    void *user;
} auth_source;

/* Loads the keys of the store. `bootstrap` (may be NULL or "") is an admin key that is
 * kept only as its hash in memory (id "bootstrap"). RAG_* status; *out on success. */
int auth_open(rag_db *db, const char *bootstrap, srv_auth **out);
/* As auth_open, on another key source (copied; src->user must outlive the handle). */
int auth_open_source(const auth_source *src, const char *bootstrap, srv_auth **out);
void auth_close(srv_auth *a);

/* Re-reads the key source (SIGHUP; a cluster's bucket changed). On failure the previous keys stay in force. A key
 * that stays keeps its rate budgets. */
int auth_reload(srv_auth *a);

/* The live key whose secret is `presented`, with a reference the caller releases with
 * auth_key_release(), or NULL when unknown or revoked. Every stored hash is compared in
 * constant time. */
const auth_key *auth_check(srv_auth *a, const char *presented);
void auth_key_release(const auth_key *k);

/* The live key whose id is `id` (the bootstrap key's is "bootstrap"), with a reference the
 * caller releases with auth_key_release(), or NULL when unknown or revoked. For charging
 * what other processes let through to the key's budgets; never for authentication. */
const auth_key *auth_find(srv_auth *a, const char *id);

const char *auth_key_id(const auth_key *k);
/* The state of budget `which` (AUTH_BUDGET_*) of k, for rl_take (ratelimit.h); it lives as
 * long as k. */
_Atomic int64_t *auth_key_budget(const auth_key *k, int which);
/* 1 when the key holds `scope` (admin holds every scope) and, when collection is not
 * NULL, is granted that collection (admin and "*" grants cover every collection). */
int auth_allows(const auth_key *k, unsigned scope, const char *collection);

/* Parses "read" / "write" / "metrics" / "admin"; 0 when unknown. */
unsigned auth_scope_parse(const char *name);

/* Creates a key. `collections` are names or "*". On success *secret receives the
 * plaintext key (malloc'd; shown once, never stored) and *record the public record
 * (id, name, scopes, collections, created_at). */
int auth_create(srv_auth *a, const char *name, unsigned scopes, const char *const *collections,
                size_t ncollections, char **secret, json_t **record);

/* Revokes key `id`: it fails authentication from now on. RAG_ENOTFOUND when absent,
 * RAG_EINVAL for the bootstrap key. */
int auth_revoke(srv_auth *a, const char *id);

/* Public records of every stored key (never the hash): a new JSON array. */
json_t *auth_list(srv_auth *a);

/* Reads a key request {"name","scopes","collections"} (the body of POST /v1/keys), checks
 * every field (collection names with valid_name; NULL: any string) and creates the key as
 * auth_create does. On success RAG_OK and *created holds the public record with the
 * plaintext in "key" (shown once). A bad request: RAG_EINVAL with *status 400, code
 * ("missing_field", "invalid_field", "unknown_field"), the field's path and a message in
 * the caller's buffers; another failure: auth_create's status (*status 500 or 503). */
int auth_create_request(srv_auth *a, json_t *body, int (*valid_name)(const char *),
                        json_t **created, int *status, const char **code, char *field,
                        size_t fieldlen, char *msg, size_t msglen);

#endif
