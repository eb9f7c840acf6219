/* writer.h - the single writer thread: store writes (ingest, deletes, collection changes)
 * queue here so HTTP threads never block on a write and searches never wait on ingest. */
#ifndef SRV_WRITER_H
#define SRV_WRITER_H

typedef struct srv_writer srv_writer;
typedef void (*writer_fn)(void *job);

/* Starts the thread; NULL on failure. */
srv_writer *writer_start(void);

/* Reserves a queue slot: 0, or -1 when `limit` jobs are already queued or running (the
 * caller answers 429) or the writer is stopping. A reservation must be followed by
 * exactly one writer_push. */
int writer_reserve(srv_writer *w, long limit);

/* Queues fn(job) on a reserved slot. Jobs run one at a time in FIFO order. Can't fail. */
void writer_push(srv_writer *w, writer_fn fn, void *job);

/* Jobs queued or running. */
long writer_pending(srv_writer *w);

/* Runs every queued job, then stops and frees the writer. NULL is a no-op. */
void writer_stop(srv_writer *w);

#endif
