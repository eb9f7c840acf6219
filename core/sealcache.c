/* sealcache.c - opened records of an encrypted store kept in memory (see sealcache.h). */
#include "sealcache.h"

#include "crypt.h"
#include "status.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NBUCKETS 16384u /* a power of two; ~1 entry per bucket when full of 2 KB records */
#define IDLEN 41u      /* generation, nonce and tag: RAG_CRYPT_OVERHEAD bytes */
/* Sealed values shorter than this are neither looked up nor kept: opening one (a document
 * or collection record of a few hundred bytes: about 0.3 us with AES-256-GCM, 1 us with
 * XChaCha20-Poly1305) costs about what a lookup that misses costs on a loaded machine
 * (0.3-0.6 us: two cache misses), and most first reads miss. */
#define MIN_SEALED 512u
#define NONCE_END 25u  /* the generation byte and the 24-byte nonce lead a sealed value */

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    unsigned table;
    size_t klen, plen;
    unsigned char id[IDLEN];
    unsigned char data[]; /* the key, then the plaintext */
} entry;

struct rag_sealcache {
    pthread_mutex_t lock;
    size_t max_bytes, bytes;
    entry *buckets[NBUCKETS];
};

/* The identity of a sealed value: its generation and nonce, then its tag. */
static void sealed_id(const void *sealed, size_t slen, unsigned char id[IDLEN])
{
    memcpy(id, sealed, NONCE_END);
    memcpy(id + NONCE_END, (const unsigned char *)sealed + slen - (IDLEN - NONCE_END),
           IDLEN - NONCE_END);
}

static uint64_t entry_hash(unsigned table, const void *key, size_t klen,
                           const unsigned char id[IDLEN])
{
    return XXH3_64bits_withSeed(key, klen, XXH3_64bits(id, IDLEN) ^ table);
}

int rag_sealcache_create(size_t max_bytes, rag_sealcache **out)
{
    *out = NULL;
    rag_sealcache *c = rag_calloc(1, sizeof *c);
    if (!c)
        return RAG_ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    c->max_bytes = max_bytes;
    *out = c;
    return RAG_OK;
}

/* Wipes and frees every entry. Called with the lock held (or by the last user). */
static void clear(rag_sealcache *c)
{
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (entry *e = c->buckets[i], *n; e; e = n) {
            n = e->next;
            rag_crypt_wipe(e->data, e->klen + e->plen);
            free(e);
        }
        c->buckets[i] = NULL;
    }
    c->bytes = 0;
}

void rag_sealcache_clear(rag_sealcache *c)
{
    pthread_mutex_lock(&c->lock);
    clear(c);
    pthread_mutex_unlock(&c->lock);
}

void rag_sealcache_free(rag_sealcache *c)
{
    if (!c)
        return;
    clear(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int rag_sealcache_get(rag_sealcache *c, unsigned table, const void *key, size_t klen,
                      const void *sealed, size_t slen, void *dst)
{
    if (slen < MIN_SEALED)
        return 0;
    unsigned char id[IDLEN];
    sealed_id(sealed, slen, id);
    uint64_t h = entry_hash(table, key, klen, id);
    int found = 0;
    pthread_mutex_lock(&c->lock);
    for (entry *e = c->buckets[h & (NBUCKETS - 1)]; e && !found; e = e->next) {
        if (e->hash == h && e->table == table && e->klen == klen && e->plen == slen - IDLEN &&
            memcmp(e->id, id, IDLEN) == 0 && memcmp(e->data, key, klen) == 0) {
            memcpy(dst, e->data + klen, e->plen);
            found = 1;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

void rag_sealcache_put(rag_sealcache *c, unsigned table, const void *key, size_t klen,
                       const void *sealed, size_t slen, const void *plain)
{
    if (slen < MIN_SEALED)
        return;
    size_t plen = slen - IDLEN, size = sizeof(entry) + klen + plen;
    if (size > c->max_bytes / 16)
        return; /* a few large records would empty the cache again and again */
    entry *e = malloc(size);
    if (!e)
        return;
    sealed_id(sealed, slen, e->id);
    e->hash = entry_hash(table, key, klen, e->id);
    e->table = table;
    e->klen = klen;
    e->plen = plen;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, plain, plen);
    pthread_mutex_lock(&c->lock);
    if (c->bytes + size > c->max_bytes)
        clear(c);
    entry **b = &c->buckets[e->hash & (NBUCKETS - 1)];
    e->next = *b;
    *b = e;
    c->bytes += size;
    pthread_mutex_unlock(&c->lock);
}
