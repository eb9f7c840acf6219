/* rpc.c - request-reply on NATS core messaging: queue-group services, scatter-gather with
 * one inbox per call, broadcasts that gather every answer. */
#include "rpc.h"
#include "cluster.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

size_t rpc_scatter(clog *l, size_t n, const char *const *subjects, const char *const *bodies,
                   const size_t *lens, int timeout_ms, char **replies, size_t *rlens)
{
    return rpc_scatter_hedged(l, n, subjects, NULL, bodies, lens, timeout_ms, 0, replies, rlens,
                              NULL);
}

/* Publishes request i (reply subject <inbox>.i) to subjects[i]; 1 when sent. */
static int send_one(natsConnection *nc, const char *inbox, size_t i, const char *subject,
                    const char *body, size_t len)
{
    char reply[320];
    snprintf(reply, sizeof reply, "%s.%zu", inbox, i);
    return natsConnection_PublishRequest(nc, subject, reply, body, (int)len) == NATS_OK;
}

size_t rpc_scatter_hedged(clog *l, size_t n, const char *const *subjects,
                          const char *const *hedge_subjects, const char *const *bodies,
                          const size_t *lens, int timeout_ms, int hedge_ms, char **replies,
                          size_t *rlens, size_t *hedges)
{
    natsConnection *nc = clog_connection(l);
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    char wild[300];
    size_t got = 0, want = 0;
    for (size_t i = 0; i < n; i++)
        got += replies[i] != NULL;
    if (natsInbox_Create(&inbox) != NATS_OK)
        return got;
    snprintf(wild, sizeof wild, "%s.*", (const char *)inbox);
    if (natsConnection_SubscribeSync(&sub, nc, wild) != NATS_OK)
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        if (!replies[i])
            want += send_one(nc, inbox, i, subjects[i], bodies[i], lens[i]);
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
                    send_one(nc, inbox, i, hedge_subjects[i], bodies[i], lens[i]) && hedges)
                    (*hedges)++;
            natsConnection_Flush(nc);
        }
        double wait = hedged ? left : start + hedge_ms - now;
        natsMsg *m = NULL;
        natsStatus st = natsSubscription_NextMsg(&m, sub, (int64_t)wait + 1);
        /* a hedge nobody serves (every replica left the shard's group) is answered "no
         * responders": the first request may still be answered */
        if (st == NATS_TIMEOUT || (st == NATS_NO_RESPONDERS && sent))
            continue;
        if (st != NATS_OK)
            break;
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
cleanup:
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    return got;
}

size_t rpc_broadcast(clog *l, const char *subject, const char *body, int wait_ms, size_t max,
                     char ***replies)
{
    natsConnection *nc = clog_connection(l);
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    size_t n = 0;
    *replies = calloc(max + 1, sizeof **replies);
    if (!*replies || natsInbox_Create(&inbox) != NATS_OK)
        return 0;
    if (natsConnection_SubscribeSync(&sub, nc, (const char *)inbox) != NATS_OK ||
        natsConnection_PublishRequestString(nc, subject, (const char *)inbox, body) != NATS_OK)
        goto cleanup;
    natsConnection_Flush(nc);
    double end = cluster_now_ms() + wait_ms;
    while (n < max) {
        double left = end - cluster_now_ms();
        natsMsg *m = NULL;
        if (left <= 0 || natsSubscription_NextMsg(&m, sub, (int64_t)left + 1) != NATS_OK)
            break;
        (*replies)[n] = strndup(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        n += (*replies)[n] != NULL;
        natsMsg_Destroy(m);
    }
cleanup:
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    return n;
}
