/* conns.c - connection limits, head and body deadlines, room-making (see conns.h). */
#include "conns.h"

#include "log.h"
#include "clock.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SWEEP_MS 200
/* How long the accept thread waits for loops to close connections shut down here when all
 * `slack` slots for them are taken, before it refuses the new connection. */
#define SLACK_WAIT_MS 200
/* A slot whose connection the event loop never took is dropped after this long. */
#define UNSTARTED_S 30.0

struct conn_slot {
    int fd;                  /* -1: the slot is free */
    int started;             /* the event loop took it */
    int closing;             /* shut down here; the loop has yet to close it */
    _Atomic uint64_t state;  /* (phase start in ms of srv_monotonic) << 2 | phase */
    uint32_t hash;           /* of key */
    unsigned char key[8];    /* client address: IPv4 (4 bytes) or IPv6 /64 (8 bytes) */
    unsigned char keylen;
    int next_fd, next_addr;  /* hash chains (slot index, -1 ends); next_fd links free slots */
};

struct conns {
    pthread_mutex_t mu;      /* guards everything below but conn_slot.state */
    pthread_cond_t wake;     /* stops the sweeper */
    pthread_cond_t freed;    /* a slot was released */
    pthread_t sweeper;
    int stop;
    conn_slot *slots;
    int cap, limit, free_head;
    int *fd_head, *addr_head;
    unsigned mask;
    int open;                /* slots in use */
    int closing;             /* of them, shut down and not yet closed */
    srv_limits *limits;
    srv_metrics *metrics;
    /* counts for the next log line */
    unsigned long n_head, n_body, n_room, n_refused;
};

static uint64_t now_ms(void)
{
    return (uint64_t)(srv_monotonic() * 1000.0);
}

/* The CLOCK_MONOTONIC time ms milliseconds from now, for pthread_cond_timedwait. */
static struct timespec in_ms(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

static void set_state(conn_slot *e, enum conn_phase phase, uint64_t ms)
{
    atomic_store_explicit(&e->state, ms << 2 | (uint64_t)phase, memory_order_relaxed);
}

/* The client's address as a limit counts it: IPv4 (also when IPv4-mapped), IPv6 by its
 * /64, since one IPv6 host usually holds a whole /64. */
static void address_key(const struct sockaddr *addr, conn_slot *e)
{
    static const unsigned char V4MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    e->keylen = 0;
    if (addr && addr->sa_family == AF_INET) {
        memcpy(e->key, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        e->keylen = 4;
    } else if (addr && addr->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
        if (!memcmp(a, V4MAPPED, 12)) {
            memcpy(e->key, a + 12, 4);
            e->keylen = 4;
        } else {
            memcpy(e->key, a, 8);
            e->keylen = 8;
        }
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (unsigned i = 0; i < e->keylen; i++)
        h = (h ^ e->key[i]) * 16777619u;
    e->hash = h;
}

static int same_address(const conn_slot *a, const conn_slot *b)
{
    return a->keylen == b->keylen && !memcmp(a->key, b->key, a->keylen);
}

static int find_fd(const conns *c, int fd)
{
    for (int i = c->fd_head[(unsigned)fd & c->mask]; i >= 0; i = c->slots[i].next_fd)
        if (c->slots[i].fd == fd)
            return i;
    return -1;
}

/* Removes slot i from the chain starting at *head linked through the field at `off`. */
static void unlink_slot(conns *c, int *head, size_t off, int i)
{
    int *p = head;
    while (*p >= 0 && *p != i)
        p = (int *)((char *)&c->slots[*p] + off);
    if (*p == i)
        *p = *(int *)((char *)&c->slots[i] + off);
}

/* Returns slot i to the free list (mu held). */
static void release(conns *c, int i)
{
    conn_slot *e = &c->slots[i];
    unlink_slot(c, &c->fd_head[(unsigned)e->fd & c->mask], offsetof(conn_slot, next_fd), i);
    unlink_slot(c, &c->addr_head[e->hash & c->mask], offsetof(conn_slot, next_addr), i);
    if (e->closing)
        c->closing--;
    c->open--;
    e->fd = -1;
    e->started = e->closing = 0;
    e->next_addr = -1;
    e->next_fd = c->free_head;
    c->free_head = i;
    pthread_cond_signal(&c->freed);
}

/* Whether slot e is one that may be closed: taken by its loop, not already closing, and
 * waiting. Sets *phase and *since_ms. */
static int waiting(const conn_slot *e, int *phase, uint64_t *since_ms)
{
    if (e->fd < 0 || !e->started || e->closing)
        return 0;
    uint64_t v = atomic_load_explicit(&e->state, memory_order_relaxed);
    *phase = (int)(v & 3);
    *since_ms = v >> 2;
    return *phase != CONN_BUSY;
}

/* Keeps in *best the slot that should give way first: any CONN_HEAD before any CONN_BODY,
 * then the longest waiting. */
static void consider(const conns *c, int i, int *best, int *best_phase, uint64_t *best_since)
{
    int phase;
    uint64_t since;
    if (!waiting(&c->slots[i], &phase, &since))
        return;
    if (*best < 0 || phase < *best_phase || (phase == *best_phase && since < *best_since)) {
        *best = i;
        *best_phase = phase;
        *best_since = since;
    }
}

/* Shuts slot i's connection down (mu held); its loop closes it. */
static void shut(conns *c, int i)
{
    conn_slot *e = &c->slots[i];
    shutdown(e->fd, SHUT_RDWR); /* ENOTCONN: the client is already gone, same outcome */
    e->closing = 1;
    c->closing++;
}

int conns_admit(conns *c, int fd, const struct sockaddr *addr)
{
    conn_slot probe;
    int rc = -1, same = 0, victim = -1, vphase = 0;
    uint64_t vsince = 0;
    address_key(addr, &probe);
    long per_client = atomic_load(&c->limits->max_conns_per_client);
    pthread_mutex_lock(&c->mu);
    int stale = find_fd(c, fd);
    if (stale >= 0) /* admitted once but never taken by a loop: the number is free again */
        release(c, stale);
    for (int i = c->addr_head[probe.hash & c->mask]; i >= 0; i = c->slots[i].next_addr) {
        if (!same_address(&c->slots[i], &probe) || c->slots[i].closing)
            continue;
        same++;
        consider(c, i, &victim, &vphase, &vsince);
    }
    if (same >= per_client) {
        if (victim < 0)
            goto refuse;
        shut(c, victim);
        c->n_room++;
        metrics_connection_event(c->metrics, METRIC_CONN_ROOM);
    }
    if (c->open - c->closing >= c->limit) {
        victim = -1;
        for (int i = 0; i < c->cap; i++)
            consider(c, i, &victim, &vphase, &vsince);
        if (victim < 0)
            goto refuse;
        shut(c, victim);
        c->n_room++;
        metrics_connection_event(c->metrics, METRIC_CONN_ROOM);
    }
    if (c->free_head < 0) { /* `slack` connections still being closed: give loops a moment */
        struct timespec until = in_ms(SLACK_WAIT_MS);
        while (c->free_head < 0 &&
               pthread_cond_timedwait(&c->freed, &c->mu, &until) != ETIMEDOUT)
            ;
        if (c->free_head < 0)
            goto refuse;
    }
    int i = c->free_head;
    conn_slot *e = &c->slots[i];
    c->free_head = e->next_fd;
    e->fd = fd;
    e->started = e->closing = 0;
    memcpy(e->key, probe.key, sizeof e->key);
    e->keylen = probe.keylen;
    e->hash = probe.hash;
    set_state(e, CONN_HEAD, now_ms());
    e->next_fd = c->fd_head[(unsigned)fd & c->mask];
    c->fd_head[(unsigned)fd & c->mask] = i;
    e->next_addr = c->addr_head[e->hash & c->mask];
    c->addr_head[e->hash & c->mask] = i;
    c->open++;
    rc = 0;
    goto done;
refuse:
    c->n_refused++;
    metrics_connection_event(c->metrics, METRIC_CONN_REFUSED);
done:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void conns_cancel(conns *c, int fd)
{
    pthread_mutex_lock(&c->mu);
    int i = find_fd(c, fd);
    if (i >= 0)
        release(c, i);
    pthread_mutex_unlock(&c->mu);
}

conn_slot *conns_started(conns *c, int fd)
{
    conn_slot *e = NULL;
    pthread_mutex_lock(&c->mu);
    int i = find_fd(c, fd);
    if (i >= 0 && !c->slots[i].started) {
        e = &c->slots[i];
        e->started = 1; /* its CONN_HEAD clock runs from the accept */
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void conns_phase(conn_slot *e, enum conn_phase phase)
{
    if (e)
        set_state(e, phase, now_ms());
}

void conns_closed(conns *c, conn_slot *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&c->mu);
    release(c, (int)(e - c->slots));
    pthread_mutex_unlock(&c->mu);
}

/* Every SWEEP_MS: closes connections past their head or body deadline, drops slots no loop
 * took, and logs what was closed or refused (at most one line a second). */
static void *sweep(void *arg)
{
    conns *c = arg;
    double last_log = 0;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec until = in_ms(SWEEP_MS);
        pthread_cond_timedwait(&c->wake, &c->mu, &until);
        if (c->stop)
            break;
        uint64_t now = now_ms();
        uint64_t head_ms = (uint64_t)atomic_load(&c->limits->header_timeout) * 1000;
        uint64_t body_ms = (uint64_t)atomic_load(&c->limits->body_timeout) * 1000;
        for (int i = 0; i < c->cap; i++) {
            conn_slot *e = &c->slots[i];
            int phase;
            uint64_t since;
            if (e->fd >= 0 && !e->started) {
                uint64_t v = atomic_load_explicit(&e->state, memory_order_relaxed);
                if (now - (v >> 2) > (uint64_t)(UNSTARTED_S * 1000))
                    release(c, i);
                continue;
            }
            if (!waiting(e, &phase, &since) || now < since)
                continue;
            if (phase == CONN_HEAD && now - since > head_ms) {
                shut(c, i);
                c->n_head++;
                metrics_connection_event(c->metrics, METRIC_CONN_HEADER_TIMEOUT);
            } else if (phase == CONN_BODY && now - since > body_ms) {
                shut(c, i);
                c->n_body++;
                metrics_connection_event(c->metrics, METRIC_CONN_BODY_TIMEOUT);
            }
        }
        double t = srv_monotonic();
        if (t - last_log >= 1.0 && (c->n_head || c->n_body || c->n_room || c->n_refused)) {
            unsigned long n[4] = {c->n_head, c->n_body, c->n_room, c->n_refused};
            c->n_head = c->n_body = c->n_room = c->n_refused = 0;
            last_log = t;
            pthread_mutex_unlock(&c->mu); /* a slow stderr must not hold up the accept thread */
            log_msg("warn", "connections",
                    "closed %lu past the header timeout, %lu past the body timeout, %lu to make "
                    "room; refused %lu (limit %d, %ld per client address)",
                    n[0], n[1], n[2], n[3], c->limit,
                    atomic_load(&c->limits->max_conns_per_client));
            pthread_mutex_lock(&c->mu);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

conns *conns_create(int limit, int slack, srv_limits *limits, srv_metrics *metrics,
                    char *err, size_t errlen)
{
    conns *c = calloc(1, sizeof *c);
    pthread_condattr_t ca;
    if (!c)
        goto oom;
    c->limit = limit < 1 ? 1 : limit;
    c->cap = c->limit + (slack < 1 ? 1 : slack);
    c->limits = limits;
    c->metrics = metrics;
    unsigned nb = 16;
    while (nb < (unsigned)c->cap * 2)
        nb *= 2;
    c->mask = nb - 1;
    c->slots = calloc((size_t)c->cap, sizeof *c->slots);
    c->fd_head = malloc(nb * sizeof *c->fd_head);
    c->addr_head = malloc(nb * sizeof *c->addr_head);
    if (!c->slots || !c->fd_head || !c->addr_head)
        goto oom;
    memset(c->fd_head, 0xff, nb * sizeof *c->fd_head); /* -1 */
    memset(c->addr_head, 0xff, nb * sizeof *c->addr_head);
    for (int i = 0; i < c->cap; i++) {
        c->slots[i].fd = -1;
        c->slots[i].next_addr = -1;
        c->slots[i].next_fd = i + 1 < c->cap ? i + 1 : -1;
    }
    c->free_head = 0;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake, &ca);
    pthread_cond_init(&c->freed, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&c->sweeper, NULL, sweep, c);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the connection sweeper thread: %s", strerror(rc));
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->wake);
        pthread_cond_destroy(&c->freed);
        goto fail;
    }
    return c;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (c) {
        free(c->slots);
        free(c->fd_head);
        free(c->addr_head);
        free(c);
    }
    return NULL;
}

void conns_free(conns *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->sweeper, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->freed);
    free(c->slots);
    free(c->fd_head);
    free(c->addr_head);
    free(c);
}

int conns_limit(const conns *c)
{
    return c->limit;
}
