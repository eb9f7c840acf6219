/* querylog.h - the query log: every search with its parameters, returned chunk ids and
 * scores and latency, kept in the store's "querylog" table with a retention period. */
#ifndef SRV_QUERYLOG_H
#define SRV_QUERYLOG_H

#include "config.h"
#include "metrics.h"
#include "ragcore.h"

#include <jansson.h>

typedef struct srv_querylog srv_querylog;

/* What the query log keeps of query texts (and of logged request fields that may quote
 * data, such as filters): nothing, the text with PII masked ([EMAIL], ...) or hashed under
 * the store's key by the library's detectors (rag_pii_redact), or the text as sent. */
enum { QLOG_TEXT_OFF = 0, QLOG_TEXT_MASK, QLOG_TEXT_HASH, QLOG_TEXT_RAW };

/* The form of `text` the log may keep under limits->querylog_text: malloc'd, NULL when the
 * policy is off (or memory ran out: nothing is kept then). */
char *qlog_text(srv_querylog *q, const char *text);

/* Writes the pending entries to the store now, so that an erasure that follows finds the
 * entries naming its documents. NULL is a no-op. */
void qlog_flush(srv_querylog *q);

/* Starts the background writer. Entries are buffered in memory and written in batches
 * (one table entry per batch, keyed by the big-endian microsecond timestamp and sequence
 * number of its last entry) every 200 ms, so searches never wait for the store. Entries
 * older than limits->querylog_retention seconds are trimmed once a minute, and when the
 * log takes more than limits->querylog_max_bytes of the store, its oldest batches are
 * dropped until it takes 90 % of that.
 * Returns NULL when out of memory or the thread cannot start. */
srv_querylog *qlog_start(rag_db *db, srv_limits *limits, srv_metrics *metrics);

/* Writes what is buffered and stops the writer. NULL is a no-op. */
void qlog_stop(srv_querylog *q);

/* Queues an entry: the JSON object whose members are fields[0..len) (JSON text such as
 * "\"k\":10,\"mode\":\"dense\"", written by the caller; empty: none) preceded by "id"
 * (24 hex digits, ordered by time) and "ts_us" (unix microseconds); the id is copied to
 * id_out. Entries wait as text, so a search pays for no JSON tree. When the queue holds
 * 100,000 entries, or memory runs out, the entry is dropped (and counted in the metrics).
 * Can't fail. */
void qlog_record_fields(srv_querylog *q, const char *fields, size_t len, char id_out[25]);

/* The same for `entry`, an object (reference stolen); id_out is "" when it was dropped
 * for want of memory. */
void qlog_record(srv_querylog *q, json_t *entry, char id_out[25]);

/* Entries in id order with id > after (24 hex digits, may be NULL), recorded at or after
 * unix second `since` (0: any) and, when collection is not NULL, of that collection; at
 * most `limit`. *out receives {"entries":[...], "next": id or null}. RAG_* status. */
int qlog_page(srv_querylog *q, const char *after, long long since, const char *collection,
              long limit, json_t **out);

#endif
