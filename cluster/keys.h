/* keys.h - API keys of a cluster: the single server's key model (server/auth.c: scopes,
 * per-collection grants, SHA-256 hashes) kept in the cluster's replicated key-value bucket,
 * followed by every router through a watch; the router's authorisation of a request and its
 * key routes (/v1/keys). */
#ifndef CLUSTER_KEYS_H
#define CLUSTER_KEYS_H

#include "auth.h"
#include "chttp.h"
#include "cluster.h"

#include <jansson.h>

typedef struct cluster_keys cluster_keys;

/* Opens the key bucket (cfg->keys_bucket, created when absent), reads the bootstrap admin
 * key from cfg->admin_key_file (when set; at least AUTH_BOOTSTRAP_MIN_LEN characters, a
 * trailing newline ignored) and loads the keys; a thread then reloads them on every change
 * of the bucket (and every CLUSTER_KEYS_RELOAD_MS in any case). -1 with a message naming
 * the file or the bucket. */
int cluster_keys_open(clog *l, const cluster_config *cfg, cluster_keys **out, char *err,
                      size_t errlen);
/* Stops the watch thread and frees everything. NULL is a no-op. */
void cluster_keys_close(cluster_keys *k);

/* A change of the bucket reaches every router within this long at most (a missed watch
 * notification included); normally within the broker's delivery time. */
#define CLUSTER_KEYS_RELOAD_MS 5000

/* Checks a request's key (api_key: the presented secret, NULL when none) and charges the
 * request to the key's request budget (key_request_rate a second, server/ratelimit.c,
 * before the scope is checked as on the single server; with "key_rate_scope" "cluster" the
 * budget also holds what the other routers report they let through), then checks
 * `scope` (SCOPE_*) and, when not NULL, `collection`: 0 when allowed; else -1 with the
 * reply set: 401 (no key, unknown or revoked key), 429 "rate_limited" with Retry-After
 * (over its budget) or 403 (scope or collection not granted). */
int cluster_authorize(cluster_keys *k, const char *api_key, unsigned scope,
                      const char *collection, chttp_reply *out);

/* Requests refused with 429 by a key's request budget since the router started. */
unsigned long long cluster_keys_rate_limited(cluster_keys *k);

/* Serves the key routes (GET /v1/keys, POST /v1/keys, DELETE /v1/keys/{id}) after an admin
 * key was checked: 1 when `path` was one of them (reply set), 0 otherwise. */
int cluster_keys_route(cluster_keys *k, const char *method, const char *path, json_t *body,
                       chttp_reply *out);

/* Charges another router's request budget report (a `rag.rate.requests` message:
 * {"from": router id, "counts": {key id: requests let through}}, len bytes) to the buckets
 * of those keys in auth, at `rate` requests a second: a malformed report, one from `self`,
 * an unknown or revoked key and a count outside 1..1e9 are skipped. Returns how many
 * counts were charged. (The report subscription's handler; callable without a broker.) */
int cluster_keys_take_report(srv_auth *auth, const char *self, long rate, const char *req,
                             size_t len);
#endif
