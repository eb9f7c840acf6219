/* crypt.h - encryption at rest: the store's key header, record sealing and keyed hashes.
 *
 * Envelope design (libsodium). The user's key (a 32-byte key written as 64 hex digits, or
 * any other text taken as a passphrase and stretched with Argon2id and a salt kept in the
 * header) wraps a random data key per key generation and one random hash key; the wrapped
 * keys live in a small plaintext header (meta "crypt"). A sealed record is
 *     gen (1 byte) | nonce (24) | ciphertext and tag (16)
 * with associated data binding it to its table and key, so records cannot be moved. The
 * cipher is chosen when the store is created and named in the header: AES-256-GCM (the
 * first 12 bytes of the nonce field are its nonce) where the CPU has AES instructions,
 * else, or when RAGCORE_STORE_CIPHER=xchacha20-poly1305, XChaCha20-Poly1305-IETF; stores
 * created before the header named one use XChaCha20-Poly1305. An AES-256-GCM store does
 * not open on a CPU without AES instructions (RAG_EUNSUPPORTED).
 * The hash key gives keyed hashes for names that must stay lookup keys (BM25 terms:
 * SipHash-2-4-128, BLAKE2b in stores created before; embedding-cache text hashes: BLAKE2b)
 * and keyed SipHash of the 64-bit duplicate-detection hashes;
 * a key rotation keeps it (re-wrapped) unless asked to replace it
 * (rag_crypt_hash_key_replace; every hashed key is then rewritten: see hashrot.h).
 * The header's format version says how a hashed term is written in a key: version 2 (every
 * store created now, whose header also names the cipher) as its 16 raw bytes, version 1
 * (stores created before) as 32 hex digits; a store keeps its version and cipher for life,
 * so its keys and records never mix the two.
 * While a rotation runs the header holds two generations, both wrapped under the new key. */
#ifndef RAG_CRYPT_H
#define RAG_CRYPT_H

#include <stddef.h>
#include <stdint.h>

typedef struct rag_crypt rag_crypt;

#define RAG_CRYPT_OVERHEAD 41u   /* bytes a sealed record adds: gen, nonce, tag */
#define RAG_CRYPT_TERM_MAX 32    /* bytes of a hashed term at most (hex of 16 bytes) */

/* Resolves the user's key: `key` when not NULL, else the contents of `key_file` (trailing
 * newlines and spaces removed), else the environment variable `env` (may be NULL). *secret
 * receives a malloc'd copy or NULL when no source gives one. RAG_EIO (unreadable file,
 * naming it), RAG_EINVAL (empty key), RAG_ENOMEM. */
int rag_crypt_secret(const char *key, const char *key_file, const char *env, char **secret);
/* Frees a secret from rag_crypt_secret after wiping it. NULL is a no-op. */
void rag_crypt_secret_free(char *secret);

/* A fresh key set for a new store under `secret`, with the cipher RAGCORE_STORE_CIPHER
 * names ("aes-256-gcm" or "xchacha20-poly1305"; unset: the faster one this CPU has).
 * RAG_EINVAL for another name, RAG_EUNSUPPORTED for AES-256-GCM without AES instructions. */
int rag_crypt_create(const char *secret, rag_crypt **out);
/* Unwraps header `hdr` with `secret`. RAG_EKEY when the key does not open it (the message
 * names `store`), RAG_ECORRUPT when the header does not parse. */
int rag_crypt_open(const char *secret, const void *hdr, size_t len, const char *store,
                   rag_crypt **out);
void rag_crypt_free(rag_crypt *c);

/* Serialises the header (keys wrapped under the current user key; fresh nonces) into a
 * malloc'd buffer. */
int rag_crypt_header(const rag_crypt *c, unsigned char **hdr, size_t *len);

/* Starts a rotation to `new_secret`: a new generation becomes current, the old ones are
 * kept, every key is wrapped under the new key from the next rag_crypt_header.
 * RAG_EBUSY while an earlier rotation is unfinished (two generations held). */
int rag_crypt_rotate(rag_crypt *c, const char *new_secret);
/* Drops every generation but the current one from the header (a rotation has re-sealed
 * everything); this process keeps the old key in memory for snapshots taken before. */
void rag_crypt_rotate_done(rag_crypt *c);
/* Bytes of the hash key (rag_crypt_hash_key_replace). */
#define RAG_CRYPT_HASH_KEY 32u
/* Replaces the hash key (every keyed hash: terms, texts, 64-bit hashes) by `key`
 * (RAG_CRYPT_HASH_KEY bytes; NULL: a fresh random one), copying the replaced key into
 * `old` (may be NULL) so that a caller whose transaction fails can put it back. The next
 * rag_crypt_header wraps the new key. Callers keep other threads of the process from
 * hashing meanwhile (the store's write lock and no search in flight). Can't fail. */
void rag_crypt_hash_key_replace(rag_crypt *c, const unsigned char *key, unsigned char *old);
/* Generations in the header (2 while a rotation runs). Can't fail. */
int rag_crypt_generations(const rag_crypt *c);
/* The current generation. Can't fail. */
unsigned rag_crypt_current(const rag_crypt *c);

/* Seals n bytes of `in` into out[n + RAG_CRYPT_OVERHEAD] under the current generation,
 * authenticating `ad` (adlen bytes) and `ad2` (ad2len bytes) with it. Can't fail. */
void rag_crypt_seal(const rag_crypt *c, const void *ad, size_t adlen, const void *ad2,
                    size_t ad2len, const void *in, size_t n, unsigned char *out);
/* Opens a sealed record into out[n - RAG_CRYPT_OVERHEAD]. RAG_ECORRUPT when it is too
 * short, of a generation whose key is gone, or fails authentication (tampered, moved or
 * sealed under another key). */
int rag_crypt_unseal(const rag_crypt *c, const void *ad, size_t adlen, const void *ad2,
                     size_t ad2len, const void *in, size_t n, unsigned char *out);
/* The generation byte of a sealed record (0 when too short). Can't fail. */
unsigned rag_crypt_record_gen(const void *in, size_t n);

/* Overwrites n bytes with zeros in a way the compiler keeps. NULL is a no-op. */
void rag_crypt_wipe(void *p, size_t n);

/* Writes the keyed hash of a term as the store's header version writes it in keys (16 raw
 * bytes of SipHash-2-4-128, or for a version-1 store 32 hex digits of BLAKE2b-128; no NUL)
 * and returns its length. Can't fail. */
size_t rag_crypt_term(const rag_crypt *c, const void *term, size_t len,
                      unsigned char out[RAG_CRYPT_TERM_MAX]);
/* Keyed 16-byte hash of a text (embedding-cache keys). Can't fail. */
void rag_crypt_text_hash(const rag_crypt *c, const void *text, size_t len, unsigned char out[16]);
/* Keyed 64-bit hash of a 64-bit content hash (the chunk-hash counts and the duplicate
 * index's keys): without the hash key, the plain hash of a guessed text cannot be matched
 * against it. Can't fail. */
uint64_t rag_crypt_hash64(const rag_crypt *c, uint64_t h);

#endif
