/* sealcache.h - opened records of an encrypted store kept in memory, so that a record read
 * again is copied instead of decrypted again (as SQLCipher's page cache keeps decrypted
 * pages).
 *
 * An entry is found by its table, its key and the identity of the sealed value it was
 * opened from (generation byte, nonce and authentication tag: a record sealed again, by an
 * update or a key rotation, has a fresh random nonce and so never matches an old entry).
 * The cache holds plaintext: it is bounded in bytes, emptied (and wiped) when full, and
 * wiped when freed. Small records (sealed values under 512 bytes) are not cached: opening
 * one again costs about what looking it up costs. All calls are thread-safe. */
#ifndef RAG_SEALCACHE_H
#define RAG_SEALCACHE_H

#include <stddef.h>

typedef struct rag_sealcache rag_sealcache;

/* A cache of at most max_bytes of plaintext and keys. RAG_ENOMEM. */
int rag_sealcache_create(size_t max_bytes, rag_sealcache **out);
/* Wipes and frees the cache. NULL is a no-op. */
void rag_sealcache_free(rag_sealcache *c);
/* Wipes and drops every entry. */
void rag_sealcache_clear(rag_sealcache *c);

/* When the record of key (klen bytes) in table `table` whose sealed value is `sealed`
 * (slen bytes, at least RAG_CRYPT_OVERHEAD) is cached, copies its slen -
 * RAG_CRYPT_OVERHEAD bytes of plaintext to dst and returns 1; else (and always for a small
 * record) returns 0. */
int rag_sealcache_get(rag_sealcache *c, unsigned table, const void *key, size_t klen,
                      const void *sealed, size_t slen, void *dst);
/* Caches `plain` (slen - RAG_CRYPT_OVERHEAD bytes), just opened from `sealed`. Out of
 * memory or an entry over the bound: nothing is cached (the cache is an optimisation). */
void rag_sealcache_put(rag_sealcache *c, unsigned table, const void *key, size_t klen,
                       const void *sealed, size_t slen, const void *plain);

#endif
