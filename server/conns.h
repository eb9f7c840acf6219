/* conns.h - the server's open connections: a global limit and one per client address,
 * deadlines for a request's head and body, and which connection makes room when a limit
 * is reached.
 *
 * A slow client ("slow loris") holds a connection by sending its request head a line at a
 * time: libmicrohttpd's idle timeout never fires while bytes trickle in, and every such
 * connection keeps a descriptor. Each connection here is in one of three phases:
 *   CONN_HEAD  waiting for a request line and headers (since it was accepted, or since
 *              the previous response on it was sent);
 *   CONN_BODY  headers read, waiting for the body;
 *   CONN_BUSY  the request is being handled or answered (never closed from here).
 * A sweeper thread closes connections that stay in CONN_HEAD longer than
 * limits->header_timeout or in CONN_BODY longer than limits->body_timeout. When a new
 * connection would exceed a limit, the connection of that scope (its client address, or
 * all) that has waited longest in CONN_HEAD, else in CONN_BODY, is closed to make room;
 * only when every one is CONN_BUSY is the new connection refused. A prompt client never
 * waits long in those phases, so it gets in even while slow ones fill the table.
 *
 * Closing means shutdown(2) on the socket: the event loop then sees the end of the stream
 * and closes the connection itself. Thread use: conns_admit and conns_cancel on the
 * accept thread, the others on the event loops' threads; all may run at once. */
#ifndef SRV_CONNS_H
#define SRV_CONNS_H

#include "config.h"
#include "metrics.h"

#include <stddef.h>
#include <sys/socket.h>

enum conn_phase { CONN_HEAD, CONN_BODY, CONN_BUSY };

typedef struct conns conns;
typedef struct conn_slot conn_slot;

/* Creates the table for at most `limit` open connections, plus `slack` more that were
 * shut down here and are not yet closed by their loop (new connections are refused while
 * that many are), and starts its sweeper thread. limits (per-client limit, timeouts) is
 * read at each use, so SIGHUP changes apply; metrics (may be NULL) counts what is closed
 * and refused. NULL with a message in err. */
conns *conns_create(int limit, int slack, srv_limits *limits, srv_metrics *metrics,
                    char *err, size_t errlen);
/* Stops the sweeper and frees the table. NULL is ignored. */
void conns_free(conns *c);
/* The limit given to conns_create. */
int conns_limit(const conns *c);

/* Admits the new connection fd from addr, closing a waiting connection to make room when
 * a limit is reached (see above). Returns 0 (fd is registered), or -1 when it is refused
 * (the caller closes fd). */
int conns_admit(conns *c, int fd, const struct sockaddr *addr);
/* Forgets fd after conns_admit when the event loop did not take it. */
void conns_cancel(conns *c, int fd);
/* The event loop has started serving fd: returns its entry, in CONN_HEAD, for
 * conns_phase and conns_closed; NULL when fd was not admitted. */
conn_slot *conns_started(conns *c, int fd);
/* Moves e (may be NULL) to `phase`, starting that phase's clock. Lock-free. */
void conns_phase(conn_slot *e, enum conn_phase phase);
/* The event loop is closing e's connection (before its descriptor is closed): forgets it.
 * NULL is ignored. */
void conns_closed(conns *c, conn_slot *e);

#endif
