/* hygiene_policy.h - a collection's settings (rag_collection_options): validation, the
 * record kept in the store, copies owned by a handle.
 *
 * The hygiene part of the settings is one JSON record per collection in aux table
 * "config" under "policy/<collection id>". A missing record means every filter off, so
 * stores written before policies existed open unchanged; fields a later version adds are
 * new JSON keys, read with their defaults when absent (no migration). TTL and language
 * live in the collection record itself. */
#ifndef RAG_HYGIENE_POLICY_H
#define RAG_HYGIENE_POLICY_H

#include "ragcore.h"

#include <stdint.h>

struct rag_txn;

/* The near-duplicate threshold used when the policy says 0. */
#define RAG_POLICY_DEFAULT_THRESHOLD 0.8
/* The toxicity threshold used when the policy says 0: the classifier's own decision. */
#define RAG_POLICY_DEFAULT_TOXICITY 0.5

/* Copies a caller's options (any version >= 1) into *out with defaults resolved
 * (near_dup_threshold 0 -> 0.8) and checks them. RAG_EINVAL naming the field. */
int rag_policy_from_user(const rag_collection_options *in, rag_collection_options *out);

/* Reads the hygiene fields of collection `coll` into *out (ttl_seconds and language are
 * left as rag_collection_options_init sets them). No record: every filter off. */
int rag_policy_read(struct rag_txn *txn, uint32_t coll, rag_collection_options *out);

/* Writes (replaces) the hygiene record of collection `coll`. */
int rag_policy_write(struct rag_txn *txn, uint32_t coll, const rag_collection_options *o);

/* Removes everything the hygiene layer keeps for a dropped collection: its policy record,
 * its duplicate index and its skipped-duplicate records. */
int rag_policy_drop(struct rag_txn *txn, uint32_t coll, const char *name);

/* 1 when the hygiene fields (not TTL, not language) of a and b are the same. */
int rag_policy_same(const rag_collection_options *a, const rag_collection_options *b);

/* A deep copy (language included) owned by the caller, or NULL (ENOMEM); free with
 * rag_policy_free (NULL-safe). */
rag_collection_options *rag_policy_dup(const rag_collection_options *o);
void rag_policy_free(rag_collection_options *o);

/* The store's key for RAG_PII_HASH (aux table "config", "pii.key"; never printed) into
 * key[0, *klen). When the store has none: with `create` 32 random bytes are written (under
 * the store's writer lock), else (dry runs, read-only handles, db NULL) a throwaway random
 * key is returned and nothing is written. */
struct rag_db;
int rag_policy_pii_key(struct rag_db *db, int create, unsigned char key[64], size_t *klen);

/* "off", "mask", ... / "off", "skip", ... / "off", "flag", "drop" ("unknown" out of
 * range). */
const char *rag_policy_pii_name(rag_pii_mode m);
const char *rag_policy_dedup_name(rag_dedup_mode m);
const char *rag_policy_toxicity_name(rag_toxicity_mode m);

#endif
