/* rpc.c - request-reply on NATS core messaging: queue-group services, scatter-gather and
 * broadcasts whose replies come back through one reply subscription per connection. */
#include "rpc.h"
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rpc_sub {
    natsSubscription *sub;
    rpc_handler h;
    void *user;
};

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    rpc_sub *s = closure;
    const char *reply = natsMsg_GetReply(msg);
    size_t rlen = 0;
    char *out = s->h(s->user, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &rlen);
    if (out && reply && *reply)
        natsConnection_Publish(nc, reply, out, (int)rlen);
    free(out);
    natsMsg_Destroy(msg);
}

int rpc_serve(clog *l, const char *subject, const char *queue, rpc_handler h, void *user,
              rpc_sub **out, char *err, size_t errlen)
{
    *out = NULL;
    rpc_sub *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->h = h;
    s->user = user;
    natsConnection *nc = clog_connection(l);
    natsStatus st = queue ? natsConnection_QueueSubscribe(&s->sub, nc, subject, queue, on_msg, s)
                          : natsConnection_Subscribe(&s->sub, nc, subject, on_msg, s);
    if (st != NATS_OK) {
        snprintf(err, errlen, "subscribe %s: %s", subject, natsStatus_GetText(st));
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void rpc_unserve(rpc_sub *s)
{
    if (!s)
        return;
    /* Drain: requests already delivered are answered, then the callback is never called
     * again and the closure can go. */
    natsSubscription_Drain(s->sub);
    natsSubscription_WaitForDrainCompletion(s->sub, 5000);
    natsSubscription_Destroy(s->sub);
    free(s);
}

/* ---- the reply mux ---------------------------------------------------------------------
 * Every call's replies arrive on one wildcard subscription per connection, created on first
 * use and kept until clog_close: "<inbox>.<call>.<i>" is reply i of call <call>. A
 * subscription per call, destroyed when the call ends, is what the natural code does, but
 * libnats before 3.6 reads a subscription after releasing the connection's lock on it, so
 * a late reply (a hedge's second answer, a reply after the timeout) arriving while the call
 * destroys its subscription crashes the read loop (fixed in nats.c 3.6: "crash processing
 * inbound message for destroyed subscription"). Late replies here
 * find no call and are dropped. */

typedef struct rpc_reply {
    natsMsg *msg;
    struct rpc_reply *next;
} rpc_reply;

typedef struct rpc_call {
    uint64_t id;
    rpc_reply *head, *tail;      /* replies not taken yet */
    struct rpc_call *next;
} rpc_call;

typedef struct rpc_mux {
    natsSubscription *sub;
    char prefix[128];            /* "<inbox>." */
    size_t plen;
    pthread_mutex_t mu;          /* guards calls, next_id and every call's replies */
    pthread_cond_t cv;           /* a reply arrived */
    rpc_call *calls;
    uint64_t next_id;
} rpc_mux;

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    rpc_mux *mx = closure;
    const char *subj = natsMsg_GetSubject(msg);
    uint64_t id = strncmp(subj, mx->prefix, mx->plen) ? 0 : strtoull(subj + mx->plen, NULL, 10);
    rpc_reply *r = NULL;
    pthread_mutex_lock(&mx->mu);
    for (rpc_call *c = mx->calls; c && id; c = c->next)
        if (c->id == id && (r = malloc(sizeof *r))) {
            r->msg = msg;
            r->next = NULL;
            if (c->tail)
                c->tail->next = r;
            else
                c->head = r;
            c->tail = r;
            pthread_cond_broadcast(&mx->cv);
            break;
        }
    pthread_mutex_unlock(&mx->mu);
    if (!r)
        natsMsg_Destroy(msg); /* a call that ended (or out of memory): dropped */
}

static rpc_mux *abandoned; /* a mux whose subscription could not be drained */

static void mux_free(void *state)
{
    rpc_mux *mx = state;
    if (!mx)
        return;
    /* Drain: once it completes the callback is never called again and mx can go. Without a
     * connection it cannot complete: mx is then left allocated for the process's life. */
    if (natsSubscription_Drain(mx->sub) != NATS_OK ||
        natsSubscription_WaitForDrainCompletion(mx->sub, 5000) != NATS_OK) {
        natsSubscription_Unsubscribe(mx->sub);
        abandoned = mx; /* still reachable: not a leak, and never freed under a callback */
        return;
    }
    natsSubscription_Destroy(mx->sub);
    pthread_cond_destroy(&mx->cv);
    pthread_mutex_destroy(&mx->mu);
    free(mx);
}

/* The connection's mux, created on first use; NULL when it cannot be. */
static rpc_mux *mux_get(clog *l)
{
    static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&create_mu);
    rpc_mux *mx = clog_rpc_state(l);
    if (!mx && (mx = calloc(1, sizeof *mx))) {
        natsInbox *inbox = NULL;
        char wild[160];
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_mutex_init(&mx->mu, NULL);
        pthread_cond_init(&mx->cv, &ca);
        pthread_condattr_destroy(&ca);
        mx->next_id = 1;
        if (natsInbox_Create(&inbox) == NATS_OK) {
            snprintf(mx->prefix, sizeof mx->prefix, "%s.", (const char *)inbox);
            mx->plen = strlen(mx->prefix);
            snprintf(wild, sizeof wild, "%s>", mx->prefix);
            natsInbox_Destroy(inbox);
            if (natsConnection_Subscribe(&mx->sub, clog_connection(l), wild, on_reply, mx) ==
                NATS_OK) {
                clog_set_rpc_state(l, mx, mux_free);
                goto done;
            }
        }
        pthread_cond_destroy(&mx->cv);
        pthread_mutex_destroy(&mx->mu);
        free(mx);
        mx = NULL;
    }
done:
    pthread_mutex_unlock(&create_mu);
    return mx;
}

static void call_begin(rpc_mux *mx, rpc_call *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_lock(&mx->mu);
    c->id = mx->next_id++;
    c->next = mx->calls;
    mx->calls = c;
    pthread_mutex_unlock(&mx->mu);
}

/* The next reply of call c, waiting up to wait_ms: the message (the caller destroys it) or
 * NULL when none came in time. */
static natsMsg *call_next(rpc_mux *mx, rpc_call *c, int64_t wait_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    natsMsg *m = NULL;
    pthread_mutex_lock(&mx->mu);
    while (!c->head && pthread_cond_timedwait(&mx->cv, &mx->mu, &until) != ETIMEDOUT)
        ;
    rpc_reply *r = c->head;
    if (r) {
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        m = r->msg;
        free(r);
    }
    pthread_mutex_unlock(&mx->mu);
    return m;
}

/* Unlinks call c; replies it did not take are dropped. */
static void call_end(rpc_mux *mx, rpc_call *c)
{
    pthread_mutex_lock(&mx->mu);
    for (rpc_call **p = &mx->calls; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_unlock(&mx->mu);
    for (rpc_reply *r = c->head, *next; r; r = next) {
        next = r->next;
        natsMsg_Destroy(r->msg);
        free(r);
    }
    c->head = c->tail = NULL;
}

/* 1 when m is the broker's "no responders" status (no subscriber for the request). */
static int no_responders(natsMsg *m)
{
    const char *status = NULL;
    return natsMsg_GetDataLength(m) == 0 &&
           natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status &&
           !strncmp(status, "503", 3);
}

size_t rpc_scatter(clog *l, size_t n, const char *const *subjects, const char *const *bodies,
                   const size_t *lens, int timeout_ms, char **replies, size_t *rlens)
{
    return rpc_scatter_hedged(l, n, subjects, NULL, bodies, lens, timeout_ms, 0, replies, rlens,
                              NULL);
}

/* Publishes request i of call c (reply subject <inbox>.<call>.<i>) to subject; 1 when sent. */
static int send_one(natsConnection *nc, const rpc_mux *mx, const rpc_call *c, size_t i,
                    const char *subject, const char *body, size_t len)
{
    char reply[320];
    snprintf(reply, sizeof reply, "%s%" PRIu64 ".%zu", mx->prefix, c->id, i);
    return natsConnection_PublishRequest(nc, subject, reply, body, (int)len) == NATS_OK;
}

size_t rpc_scatter_hedged(clog *l, size_t n, const char *const *subjects,
                          const char *const *hedge_subjects, const char *const *bodies,
                          const size_t *lens, int timeout_ms, int hedge_ms, char **replies,
                          size_t *rlens, size_t *hedges)
{
    natsConnection *nc = clog_connection(l);
    rpc_mux *mx = mux_get(l);
    rpc_call c;
    size_t got = 0, want = 0;
    for (size_t i = 0; i < n; i++)
        got += replies[i] != NULL;
    if (!mx)
        return got;
    call_begin(mx, &c);
    for (size_t i = 0; i < n; i++)
        if (!replies[i])
            want += send_one(nc, mx, &c, i, subjects[i], bodies[i], lens[i]);
    natsConnection_Flush(nc);
    double start = cluster_now_ms(), end = start + timeout_ms;
    int hedged = !hedge_subjects || hedge_ms <= 0 || hedge_ms >= timeout_ms, sent = 0;
    while (want > 0) {
        double now = cluster_now_ms(), left = end - now;
        if (left <= 0)
            break;
        if (!hedged && now >= start + hedge_ms) {
            /* the same request again, to every replica of each silent shard (the slow one
             * too): the first answer wins, later ones are dropped below */
            hedged = sent = 1;
            for (size_t i = 0; i < n; i++)
                if (!replies[i] &&
                    send_one(nc, mx, &c, i, hedge_subjects[i], bodies[i], lens[i]) && hedges)
                    (*hedges)++;
            natsConnection_Flush(nc);
        }
        double wait = hedged ? left : start + hedge_ms - now;
        natsMsg *m = call_next(mx, &c, (int64_t)wait + 1);
        if (!m)
            continue;
        /* a hedge nobody serves (every replica left the shard's group) is answered "no
         * responders": the first request may still be answered */
        if (no_responders(m)) {
            natsMsg_Destroy(m);
            if (sent)
                continue;
            break;
        }
        const char *subj = natsMsg_GetSubject(m);
        const char *dot = strrchr(subj, '.');
        size_t i = dot ? (size_t)strtoul(dot + 1, NULL, 10) : n;
        if (i < n && !replies[i]) {
            size_t len = (size_t)natsMsg_GetDataLength(m);
            if ((replies[i] = malloc(len + 1))) {
                memcpy(replies[i], natsMsg_GetData(m), len);
                replies[i][len] = '\0';
                rlens[i] = len;
                got++;
                want--;
            }
        }
        natsMsg_Destroy(m);
    }
    call_end(mx, &c);
    return got;
}

int rpc_publish(clog *l, const char *subject, const void *body, size_t len)
{
    return natsConnection_Publish(clog_connection(l), subject, body, (int)len) == NATS_OK ? 0
                                                                                          : -1;
}

size_t rpc_broadcast(clog *l, const char *subject, const char *body, int wait_ms, size_t max,
                     char ***replies)
{
    natsConnection *nc = clog_connection(l);
    rpc_mux *mx = mux_get(l);
    rpc_call c;
    size_t n = 0;
    *replies = calloc(max + 1, sizeof **replies);
    if (!*replies || !mx)
        return 0;
    call_begin(mx, &c);
    if (send_one(nc, mx, &c, 0, subject, body, strlen(body))) {
        natsConnection_Flush(nc);
        double end = cluster_now_ms() + wait_ms;
        while (n < max) {
            double left = end - cluster_now_ms();
            natsMsg *m = left > 0 ? call_next(mx, &c, (int64_t)left + 1) : NULL;
            if (!m)
                break;
            if (no_responders(m)) {
                natsMsg_Destroy(m);
                break;
            }
            (*replies)[n] = strndup(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
            n += (*replies)[n] != NULL;
            natsMsg_Destroy(m);
        }
    }
    call_end(mx, &c);
    return n;
}
