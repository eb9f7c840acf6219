/* dedup.h - duplicate detection across the shards of a clustered collection: one ordered
 * decision point per collection, its duplicate log.
 *
 * Documents are placed on shards by id, so two copies under different ids usually land on
 * different shards and no shard's store can see both. Every router therefore appends the
 * duplicate keys of the documents it is about to write (exact key and MinHash signature,
 * computed by the library after the rest of the policy) to the collection's duplicate log
 * (`rag.dup.<collection>`, one JetStream stream) as one claim message, then reads that log
 * in order up to its own message, replaying every claim and release into an in-memory index
 * (the same index on every router, since every router replays the same messages in the
 * same order). The first id to claim a key is canonical; a later claim by another id that
 * matches it (same exact key, or a near-duplicate verified on the whole signatures at the
 * collection's threshold) is a duplicate. A claim by the same id replaces its own entry,
 * so re-sending a document is never its own duplicate. Deletes append a release.
 *
 * A canonical found for a document is verified on its shard (a replica answers whether the
 * document exists once it has applied everything appended so far): a claim whose document
 * was never written (its router died between claim and append), was dropped by the policy
 * or was deleted without its release reaching the log, and that is older than the claim
 * grace, is released and the document claimed again. */
#ifndef CLUSTER_DEDUP_H
#define CLUSTER_DEDUP_H

#include "cluster.h"
#include "ragcore.h"

typedef struct cdedup cdedup;

/* The router's decision state for every collection (NULL on allocation failure). *log and
 * *cfg are borrowed for the state's life and read at each use, so the state can be made
 * before the router connects and loads its configuration. */
cdedup *cdedup_create(clog *const *log, const cluster_config *cfg);
void cdedup_free(cdedup *d);

/* Decides n documents of collection c (ids and keys borrowed) in the order given: fills
 * verdicts. Returns 0, or -1 with a message in err (the log unreachable, a replica that
 * cannot say whether a canonical exists). */
int cdedup_decide(cdedup *d, const cluster_coll *c, size_t n, const char *const *ids,
                  const rag_dup_key *keys, rag_dup_verdict *verdicts, char *err,
                  size_t errlen);

/* Appends a release of document id (deleted): a later copy is then canonical. */
int cdedup_release(cdedup *d, const cluster_coll *c, const char *id, char *err, size_t errlen);

/* One collection's duplicate index, without its log: the messages of a duplicate log
 * (claims and releases, as cdedup_decide and cdedup_release append them) replayed into it
 * in order, as a router does while catching up. The decoding of those messages is reached
 * through it without a broker (tests, the fuzz target). */
typedef struct cdedup_index cdedup_index;
/* An empty index of collection `name` (NULL on allocation failure). */
cdedup_index *cdedup_index_create(const char *name);
/* Replays message seq (len bytes of data, as read from the log). A message that is not a
 * JSON object, and a claim without a string id of 1..RAG_DOC_ID_MAX bytes, hexadecimal
 * key and signature of RAG_DUP_PERM * 8 digits, are skipped (by every router alike, so their indexes stay
 * equal). verdicts (may be NULL): this router's message, the verdicts of its first n
 * claims in order. 0, or -1 when out of memory. */
int cdedup_index_replay(cdedup_index *x, uint64_t seq, const void *data, size_t len,
                        rag_dup_verdict *verdicts, size_t n);
/* Live (claimed, not released) documents in the index. */
size_t cdedup_index_live(const cdedup_index *x);
/* Frees the index (and closes its log reader). NULL is a no-op. */
void cdedup_index_free(cdedup_index *x);
#endif
