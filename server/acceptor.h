/* acceptor.h - the server's listening socket and the thread that accepts on it, handing
 * each new connection to a callback (http.c gives it to the least-loaded event loop).
 *
 * libmicrohttpd's own thread pool lets whichever loop wakes first accept up to ten
 * connections in a row, so a burst of clients lands unevenly and the fuller loop's
 * clients wait longer. One acceptor that hands out connections keeps the loops even. */
#ifndef SRV_ACCEPTOR_H
#define SRV_ACCEPTOR_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct acceptor acceptor;

/* Takes a new connection: fd is non-blocking and close-on-exec, owned by the callee
 * from now on (it must close it if it cannot serve it). Runs on the accept thread. */
typedef void (*acceptor_fn)(void *ctx, int fd, const struct sockaddr *addr, socklen_t len);

/* Creates a socket bound to addr (IPv4 or IPv6 only, SO_REUSEADDR) listening with the
 * given backlog; nothing is accepted until acceptor_start. NULL with a message in err. */
acceptor *acceptor_open(const struct sockaddr_storage *addr, int backlog, char *err,
                        size_t errlen);
/* The port actually bound (useful with port 0). */
int acceptor_port(const acceptor *a);
/* Starts the accept thread, which calls fn(ctx, ...) for every connection until
 * acceptor_stop. -1 with a message in err. */
int acceptor_start(acceptor *a, acceptor_fn fn, void *ctx, char *err, size_t errlen);
/* Stops accepting and closes the listening socket (connections already handed off are
 * not touched). Returns once the accept thread has exited; calling it again does nothing. */
void acceptor_stop(acceptor *a);
/* acceptor_stop, then frees a. NULL is ignored. */
void acceptor_free(acceptor *a);

#endif
