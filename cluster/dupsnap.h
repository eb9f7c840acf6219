/* dupsnap.h - snapshots of a collection's duplicate index in its snapshot stream
 * `RAG_<collection>_dupsnap` (subject `rag.dupsnap.<collection>`): the parts format, their
 * checksum and the stream I/O.
 *
 * A snapshot is the serialized index (dedup.c writes and reads the body) at position S of
 * the duplicate log: the state of every router that replayed messages 1..S. The body is
 * published as parts of at most DUPSNAP_PART_MAX bytes, each with a 48-byte header: magic
 * "RDSP", version, S, part i of n, the stream sequence of part i-1 (0 for the first), the
 * body's length and its XXH3-64 checksum. The last part is the last message; its chain of
 * previous sequences reaches the first part even when another router's parts were
 * published in between. Parts carry a message id derived from their content, so two
 * routers writing the same snapshot at once store it once. */
#ifndef CLUSTER_DUPSNAP_H
#define CLUSTER_DUPSNAP_H

#include "log.h"

#include <stddef.h>
#include <stdint.h>

#define DUPSNAP_PART_MAX (512 * 1024)

/* Publishes body (len bytes) as snapshot at position S of collection coll's duplicate log
 * (the stream must exist: clog_ensure with CLOG_DUPSNAP). Each part is tried `attempts`
 * times, timeout_ms each. *first and *last receive the sequences of its first and last
 * parts. 0, or -1 with err. */
int dupsnap_write(clog *l, const char *coll, uint64_t S, const void *body, size_t len,
                  int timeout_ms, int attempts, uint64_t *first, uint64_t *last, char *err,
                  size_t errlen);

/* Reads the snapshot whose last part is message `last_seq`: 1 with its position, body
 * (malloc'd, free()) and the sequence of its first part; 0 when that message is not the
 * last part of a complete snapshot with a matching checksum (why in err); -1 when the
 * broker could not be read (err). */
int dupsnap_read_at(clog *l, const char *coll, uint64_t last_seq, uint64_t *S, void **body,
                    size_t *len, uint64_t *first, char *err, size_t errlen);

/* The newest complete snapshot at position >= min_S: 1 with it (as dupsnap_read_at), 0 when
 * the stream holds none (or does not exist), -1 on a broker error. Messages are examined
 * from the newest back; each corrupt or incomplete snapshot met on the way is skipped with
 * a line on stderr naming it and why. */
int dupsnap_read_newest(clog *l, const char *coll, uint64_t min_S, uint64_t *S, void **body,
                        size_t *len, uint64_t *first, char *err, size_t errlen);

/* The record of a collection's current snapshot: key `dupsnap.<collection>` of the
 * metadata bucket (collection names hold no '.'), {"S", "first", "last", "sum"}: its
 * position, the stream sequences of its first and last parts and its body's XXH3-64. It
 * is changed only by compare-and-set, to a snapshot whose position is greater AND whose
 * first part is later in the stream than the recorded one's, so both only grow: a purge
 * below what a replaced record named never reaches a snapshot recorded after it. */
typedef struct dupsnap_rec {
    uint64_t S, first, last, sum;
} dupsnap_rec;

/* XXH3-64 of a snapshot body (the checksum its parts and its record carry). */
uint64_t dupsnap_sum(const void *body, size_t len);

/* The record of collection coll's current snapshot: 1 with it in *r and its revision in
 * *rev; 0 when absent (*rev 0) or malformed (*rev its revision, so a writer replaces it),
 * why in err; -1 on a broker error (err). */
int dupsnap_record_get(clog *l, const char *coll, dupsnap_rec *r, uint64_t *rev, char *err,
                       size_t errlen);

/* Records snapshot nw (written and read back) as the current one, by compare-and-set
 * (retried when another writer came first): 1 when recorded (*had 1 and *replaced the
 * record it replaced, if any); 0 when not, because the recorded one is at nw->S or later,
 * or its parts are not before nw's (why in err): its writer must purge nothing; -1 on a
 * broker error (err). */
int dupsnap_record(clog *l, const char *coll, const dupsnap_rec *nw, dupsnap_rec *replaced,
                   int *had, char *err, size_t errlen);

/* The snapshot the record names, when at position >= min_S: 1 with it (as dupsnap_read_at;
 * its position, first part and checksum checked against the record), 0 when there is no
 * record or it names no such complete snapshot (why in err: a reader then walks the stream
 * with dupsnap_read_newest), -1 on a broker error. */
int dupsnap_read_recorded(clog *l, const char *coll, uint64_t min_S, uint64_t *S, void **body,
                          size_t *len, uint64_t *first, char *err, size_t errlen);

#endif
