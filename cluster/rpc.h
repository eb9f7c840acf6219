/* rpc.h - request-reply over the cluster's broker connection: replicas serve a subject in a
 * queue group (one member answers each request), routers scatter requests to several
 * subjects and gather the replies, or gather every answer to a broadcast. */
#ifndef CLUSTER_RPC_H
#define CLUSTER_RPC_H

#include "log.h"

#include <stddef.h>

typedef struct rpc_sub rpc_sub;

/* Answers one request: returns the reply (malloc'd, *len bytes) or NULL for none. Runs on
 * the subscription's delivery thread. */
typedef char *(*rpc_handler)(void *user, const char *req, size_t len, size_t *reply_len);

/* Serves `subject` (queue NULL: every subscriber gets each request). -1 with a message. */
int rpc_serve(clog *l, const char *subject, const char *queue, rpc_handler h, void *user,
              rpc_sub **out, char *err, size_t errlen);
/* Stops serving (requests in flight still get their answer). NULL is a no-op. */
void rpc_unserve(rpc_sub *s);

/* Sends bodies[i] (lens[i] bytes) to subjects[i] for i < n and waits up to timeout_ms for
 * the replies: replies[i] (malloc'd, NUL-terminated, rlens[i] bytes) or NULL when none
 * came in time; only requests whose replies[i] is NULL on entry are sent, so a caller
 * retries by calling again. Returns how many replies are present. */
size_t rpc_scatter(clog *l, size_t n, const char *const *subjects, const char *const *bodies,
                   const size_t *lens, int timeout_ms, char **replies, size_t *rlens);

/* rpc_scatter with hedging: when request i has no reply after hedge_ms (0: never), it is
 * sent again to hedge_subjects[i] (served by every replica of the shard, no queue group)
 * and the first reply wins; *hedges (may be NULL) counts the hedges sent. */
size_t rpc_scatter_hedged(clog *l, size_t n, const char *const *subjects,
                          const char *const *hedge_subjects, const char *const *bodies,
                          const size_t *lens, int timeout_ms, int hedge_ms, char **replies,
                          size_t *rlens, size_t *hedges);

/* Publishes len bytes of body to subject for every subscriber, expecting no reply. 0 when
 * handed to the connection (delivery is not confirmed), -1 when the connection refused it
 * (closed, or its buffer full while reconnecting). */
int rpc_publish(clog *l, const char *subject, const void *body, size_t len);

/* Publishes body to subject and collects every reply arriving within wait_ms (at most max):
 * *replies (malloc'd array of malloc'd strings). Returns the count. */
size_t rpc_broadcast(clog *l, const char *subject, const char *body, int wait_ms, size_t max,
                     char ***replies);

#endif
