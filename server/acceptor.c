/* acceptor.c - the listening socket and its accept thread (see acceptor.h). */
#include "acceptor.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Connections taken per wake-up before polling again (so a stop is seen in a flood). */
#define ACCEPT_BURST 64

struct acceptor {
    int fd;           /* listening socket, non-blocking; -1 once closed */
    int wake;         /* eventfd written by acceptor_stop */
    int port;
    int running;      /* the thread was started and not yet joined */
    pthread_t thread;
    acceptor_fn fn;
    void *ctx;
};

acceptor *acceptor_open(const struct sockaddr_storage *addr, int backlog, char *err,
                        size_t errlen)
{
    acceptor *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->fd = a->wake = -1;
    int family = addr->ss_family;
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in);
    if (family != AF_INET && family != AF_INET6) {
        snprintf(err, errlen, "cannot listen: address family %d is not IPv4 or IPv6", family);
        goto fail;
    }
    a->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        snprintf(err, errlen, "cannot create a listening socket: %s", strerror(errno));
        goto fail;
    }
    int on = 1;
    /* SO_REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT;
     * SO_REUSEPORT is not set, so a second server on the same port is refused. */
    if (setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        (family == AF_INET6 &&
         setsockopt(a->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0)) {
        snprintf(err, errlen, "cannot set the listening socket's options: %s",
                 strerror(errno));
        goto fail;
    }
    if (bind(a->fd, (const struct sockaddr *)addr, len) < 0) {
        snprintf(err, errlen, "cannot bind: %s", strerror(errno));
        goto fail;
    }
    if (listen(a->fd, backlog) < 0) {
        snprintf(err, errlen, "cannot listen: %s", strerror(errno));
        goto fail;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(a->fd, (struct sockaddr *)&bound, &blen) < 0) {
        snprintf(err, errlen, "cannot read the bound address: %s", strerror(errno));
        goto fail;
    }
    a->port = family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                 : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    a->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->wake < 0) {
        snprintf(err, errlen, "cannot create an eventfd: %s", strerror(errno));
        goto fail;
    }
    return a;
fail:
    acceptor_free(a);
    return NULL;
}

int acceptor_port(const acceptor *a)
{
    return a->port;
}

/* The accept thread: waits on the listening socket and the wake-up eventfd; takes up to
 * ACCEPT_BURST connections per wake-up. Out of descriptors or memory it logs (at most
 * once a second) and pauses 50 ms, leaving the connection in the backlog, rather than
 * spinning on the same error. */
static void *accept_loop(void *p)
{
    acceptor *a = p;
    time_t last_warn = 0;
    for (;;) {
        struct pollfd pf[2] = {{a->fd, POLLIN, 0}, {a->wake, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_msg("error", "accept", "poll on the listening socket failed: %s",
                    strerror(errno));
            break;
        }
        if (pf[1].revents)
            break;
        for (int i = 0; i < ACCEPT_BURST; i++) {
            struct sockaddr_storage sa;
            socklen_t len = sizeof sa;
            int c = accept4(a->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c >= 0) {
                a->fn(a->ctx, c, (struct sockaddr *)&sa, len);
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                time_t now = time(NULL);
                if (now != last_warn)
                    log_msg("warn", "accept", "cannot accept a connection: %s",
                            strerror(errno));
                last_warn = now;
                srv_sleep_ms(50);
                break;
            }
            /* ECONNABORTED, EINTR, EPROTO and the like: that client is gone; next one */
        }
    }
    return NULL;
}

int acceptor_start(acceptor *a, acceptor_fn fn, void *ctx, char *err, size_t errlen)
{
    a->fn = fn;
    a->ctx = ctx;
    int rc = pthread_create(&a->thread, NULL, accept_loop, a);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the accept thread: %s", strerror(rc));
        return -1;
    }
    a->running = 1;
    return 0;
}

void acceptor_stop(acceptor *a)
{
    if (a->running) {
        uint64_t one = 1;
        while (write(a->wake, &one, sizeof one) < 0 && errno == EINTR)
            ;
        pthread_join(a->thread, NULL);
        a->running = 0;
    }
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
}

void acceptor_free(acceptor *a)
{
    if (!a)
        return;
    acceptor_stop(a);
    if (a->wake >= 0)
        close(a->wake);
    free(a);
}
