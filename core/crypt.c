/* crypt.c - encryption at rest with libsodium: key header, record sealing, keyed hashes. */
#include "crypt.h"
#include "status.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "RAGCRYPT"
#define KEYLEN 32u
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WRAPPED (NONCE + KEYLEN + TAG)
#define MAX_GENS 2
#define TERM_HASH 16u /* bytes of a term's keyed hash */
_Static_assert(crypto_shorthash_siphashx24_BYTES == TERM_HASH &&
                   crypto_shorthash_siphashx24_KEYBYTES <= KEYLEN,
               "a term's SipHash-128 fills the term hash, keyed by the term key");
/* Header format versions: 1 writes a term's hash in keys as 32 hex digits, 2 as its 16 raw
 * bytes (shorter postings keys, no formatting); the layout of the header is the same. */
#define HDR_V_HEX_TERMS 1
#define HDR_V_RAW_TERMS 2 /* also ends with a byte naming the records' cipher */
/* The records' AEAD, named by the environment variable of rag_crypt_create. */
#define CIPHER_ENV "RAGCORE_STORE_CIPHER"

enum { KDF_RAW = 0, KDF_ARGON2ID = 1 };
/* Records' AEAD. Both seal as gen | 24 random bytes | ciphertext | 16-byte tag; AES-256-GCM
 * uses the first 12 of the 24 bytes as its nonce. */
enum { CIPHER_XCHACHA = 0, CIPHER_AESGCM = 1 };
static const char *const cipher_names[] = {"xchacha20-poly1305", "aes-256-gcm"};

typedef struct gen_key {
    crypto_aead_aes256gcm_state aes; /* the expanded key of an AES-256-GCM store */
    unsigned gen;                 /* 1..255; 0: slot unused */
    int retired;                  /* dropped from the header, kept for older snapshots */
    unsigned char key[KEYLEN];
} gen_key;

struct rag_crypt {
    unsigned version;             /* the header's format version (HDR_V_*), kept for life */
    unsigned cipher;              /* the records' AEAD (CIPHER_*), kept for life */
    unsigned char kek[KEYLEN];    /* the user key (raw or stretched) */
    int kdf;
    unsigned char salt[crypto_pwhash_SALTBYTES];
    uint64_t ops, mem;
    unsigned cur;                 /* current generation */
    gen_key gens[MAX_GENS];
    unsigned char hash_key[KEYLEN];
    unsigned char term_key[KEYLEN], text_key[KEYLEN];
    unsigned char short_key[crypto_shorthash_KEYBYTES]; /* SipHash key of rag_crypt_hash64 */
};

static int sodium_ready(void)
{
    if (sodium_init() < 0)
        return rag_fail(RAG_EIO, "libsodium cannot be initialised");
    return RAG_OK;
}

int rag_crypt_secret(const char *key, const char *key_file, const char *env, char **secret)
{
    *secret = NULL;
    char *s = NULL;
    if (key) {
        s = rag_strdup(key);
    } else if (key_file) {
        FILE *fp = fopen(key_file, "rb");
        if (!fp)
            return rag_fail(RAG_EIO, "cannot read key file '%s': %s", key_file, strerror(errno));
        char buf[1025];
        size_t n = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        while (n > 0 && isspace((unsigned char)buf[n - 1]))
            buf[--n] = '\0';
        if (n == 0)
            return rag_fail(RAG_EINVAL, "key file '%s' is empty", key_file);
        s = rag_strdup(buf);
        sodium_memzero(buf, sizeof buf);
    } else if (env && getenv(env)) {
        s = rag_strdup(getenv(env));
    } else {
        return RAG_OK;
    }
    if (!s)
        return RAG_ENOMEM;
    if (!*s) {
        free(s);
        return rag_fail(RAG_EINVAL, "the store key is empty");
    }
    *secret = s;
    return RAG_OK;
}

void rag_crypt_secret_free(char *secret)
{
    if (!secret)
        return;
    sodium_memzero(secret, strlen(secret));
    free(secret);
}

/* 1 and the 32 bytes in raw when `s` is exactly 64 hex digits. */
static int hex_key(const char *s, unsigned char raw[KEYLEN])
{
    size_t bin = 0;
    if (strlen(s) != 2 * KEYLEN)
        return 0;
    return sodium_hex2bin(raw, KEYLEN, s, 2 * KEYLEN, NULL, &bin, NULL) == 0 && bin == KEYLEN;
}

/* Derives the key-encryption key from secret with c's kdf parameters. */
static int derive_kek(rag_crypt *c, const char *secret)
{
    if (c->kdf == KDF_RAW)
        return hex_key(secret, c->kek) ? RAG_OK
                                       : rag_fail(RAG_EKEY, "the store's key is a 64-hex-digit "
                                                  "key, the key given is not one");
    if (crypto_pwhash(c->kek, KEYLEN, secret, strlen(secret), c->salt, c->ops, (size_t)c->mem,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return rag_fail(RAG_ENOMEM, "stretching the passphrase (Argon2id) ran out of memory");
    return RAG_OK;
}

/* Sets the kdf for a new user key: raw for 64 hex digits, else Argon2id with a new salt. */
static int new_kek(rag_crypt *c, const char *secret)
{
    if (hex_key(secret, c->kek)) {
        c->kdf = KDF_RAW;
        return RAG_OK;
    }
    c->kdf = KDF_ARGON2ID;
    randombytes_buf(c->salt, sizeof c->salt);
    c->ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    c->mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    return derive_kek(c, secret);
}

static void derive_hash_keys(rag_crypt *c)
{
    crypto_kdf_derive_from_key(c->term_key, KEYLEN, 1, "ragterm_", c->hash_key);
    crypto_kdf_derive_from_key(c->text_key, KEYLEN, 2, "ragtext_", c->hash_key);
    crypto_kdf_derive_from_key(c->short_key, sizeof c->short_key, 3, "raghash_", c->hash_key);
}

static rag_crypt *crypt_alloc(void)
{
    if (sodium_ready() != RAG_OK)
        return NULL;
    rag_crypt *c = sodium_malloc(sizeof *c);
    if (c)
        memset(c, 0, sizeof *c);
    else
        rag_fail(RAG_ENOMEM, "out of memory for the store's keys");
    return c;
}

/* The cipher of a new store: the one RAGCORE_STORE_CIPHER names, else AES-256-GCM where
 * the CPU has AES-NI (about twice as fast here), else XChaCha20-Poly1305. */
static int choose_cipher(rag_crypt *c)
{
    const char *want = getenv(CIPHER_ENV);
    int aes = crypto_aead_aes256gcm_is_available();
    c->cipher = aes ? CIPHER_AESGCM : CIPHER_XCHACHA;
    if (!want || !*want)
        return RAG_OK;
    if (strcmp(want, cipher_names[CIPHER_XCHACHA]) == 0) {
        c->cipher = CIPHER_XCHACHA;
    } else if (strcmp(want, cipher_names[CIPHER_AESGCM]) != 0) {
        return rag_fail(RAG_EINVAL, "%s='%s': the cipher must be '%s' or '%s'", CIPHER_ENV,
                        want, cipher_names[CIPHER_XCHACHA], cipher_names[CIPHER_AESGCM]);
    } else if (!aes) {
        return rag_fail(RAG_EUNSUPPORTED, "%s='%s': this CPU has no AES instructions",
                        CIPHER_ENV, want);
    }
    return RAG_OK;
}

/* Expands g's key for AES-256-GCM when the store uses it. Can't fail. */
static void expand_key(const rag_crypt *c, gen_key *g)
{
    if (c->cipher == CIPHER_AESGCM)
        crypto_aead_aes256gcm_beforenm(&g->aes, g->key);
}

int rag_crypt_create(const char *secret, rag_crypt **out)
{
    *out = NULL;
    rag_crypt *c = crypt_alloc();
    if (!c)
        return RAG_ENOMEM;
    int rc = new_kek(c, secret);
    if (rc != RAG_OK) {
        rag_crypt_free(c);
        return rc;
    }
    c->version = HDR_V_RAW_TERMS;
    if ((rc = choose_cipher(c)) != RAG_OK) {
        rag_crypt_free(c);
        return rc;
    }
    c->cur = 1;
    c->gens[0].gen = 1;
    crypto_aead_xchacha20poly1305_ietf_keygen(c->gens[0].key);
    expand_key(c, &c->gens[0]);
    crypto_aead_xchacha20poly1305_ietf_keygen(c->hash_key);
    derive_hash_keys(c);
    *out = c;
    return RAG_OK;
}

void rag_crypt_free(rag_crypt *c)
{
    if (c)
        sodium_free(c); /* wipes */
}

/* Wrapping: nonce | AEAD(key) with associated data "ragcore-key" and the slot's id. */
static void wrap(const rag_crypt *c, unsigned id, const unsigned char key[KEYLEN],
                 unsigned char *out)
{
    unsigned char ad[12] = "ragcore-key";
    ad[11] = (unsigned char)id;
    randombytes_buf(out, NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE, NULL, key, KEYLEN, ad, sizeof ad,
                                               NULL, out, c->kek);
}

static int unwrap(const rag_crypt *c, unsigned id, const unsigned char *in,
                  unsigned char key[KEYLEN])
{
    unsigned char ad[12] = "ragcore-key";
    ad[11] = (unsigned char)id;
    return crypto_aead_xchacha20poly1305_ietf_decrypt(key, NULL, NULL, in + NONCE,
                                                      KEYLEN + TAG, ad, sizeof ad, in,
                                                      c->kek);
}

/* Header: magic(8) version(1) kdf(1) cur(1) ngens(1) salt(16) ops(8) mem(8)
 *         wrapped hash key, then ngens x (gen(1) wrapped data key),
 *         then, from version 2, cipher(1). */
#define HDR_FIXED (8 + 4 + crypto_pwhash_SALTBYTES + 16)

/* The length of a header of `version` holding n generations. */
static size_t header_len(unsigned version, int n)
{
    return HDR_FIXED + WRAPPED + (size_t)n * (1 + WRAPPED) + (version >= HDR_V_RAW_TERMS);
}

int rag_crypt_header(const rag_crypt *c, unsigned char **hdr, size_t *len)
{
    int n = rag_crypt_generations(c);
    size_t total = header_len(c->version, n);
    unsigned char *h = rag_malloc(total), *p = h;
    if (!h)
        return RAG_ENOMEM;
    memcpy(p, MAGIC, 8);
    p[8] = (unsigned char)c->version;
    p[9] = (unsigned char)c->kdf;
    p[10] = (unsigned char)c->cur;
    p[11] = (unsigned char)n;
    p += 12;
    memcpy(p, c->salt, sizeof c->salt);
    p += sizeof c->salt;
    memcpy(p, &c->ops, 8);
    memcpy(p + 8, &c->mem, 8);
    p += 16;
    wrap(c, 0, c->hash_key, p);
    p += WRAPPED;
    for (int i = 0; i < MAX_GENS; i++) {
        if (!c->gens[i].gen || c->gens[i].retired)
            continue;
        *p++ = (unsigned char)c->gens[i].gen;
        wrap(c, c->gens[i].gen, c->gens[i].key, p);
        p += WRAPPED;
    }
    if (c->version >= HDR_V_RAW_TERMS)
        *p = (unsigned char)c->cipher;
    *hdr = h;
    *len = total;
    return RAG_OK;
}

int rag_crypt_open(const char *secret, const void *hdr, size_t len, const char *store,
                   rag_crypt **out)
{
    *out = NULL;
    const unsigned char *h = hdr;
    rag_crypt *c = crypt_alloc();
    int rc = RAG_OK;
    if (!c)
        return RAG_ENOMEM;
    if (len < HDR_FIXED + WRAPPED || memcmp(h, MAGIC, 8) != 0 ||
        (h[8] != HDR_V_HEX_TERMS && h[8] != HDR_V_RAW_TERMS) || h[9] > 1 ||
        h[11] < 1 || h[11] > MAX_GENS || len != header_len(h[8], h[11]) ||
        (h[8] >= HDR_V_RAW_TERMS && h[len - 1] > CIPHER_AESGCM)) {
        rc = rag_fail(RAG_ECORRUPT, "store '%s': its encryption header is damaged", store);
        goto cleanup;
    }
    c->version = h[8];
    c->cipher = h[8] >= HDR_V_RAW_TERMS ? h[len - 1] : CIPHER_XCHACHA;
    if (c->cipher == CIPHER_AESGCM && !crypto_aead_aes256gcm_is_available()) {
        rc = rag_fail(RAG_EUNSUPPORTED, "store '%s' is sealed with AES-256-GCM, and this CPU "
                      "has no AES instructions (copy it into a store created with %s=%s to "
                      "move it here)", store, CIPHER_ENV, cipher_names[CIPHER_XCHACHA]);
        goto cleanup;
    }
    c->kdf = h[9];
    c->cur = h[10];
    memcpy(c->salt, h + 12, sizeof c->salt);
    memcpy(&c->ops, h + 12 + sizeof c->salt, 8);
    memcpy(&c->mem, h + 20 + sizeof c->salt, 8);
    if ((rc = derive_kek(c, secret)) != RAG_OK) {
        rag_fail_prefix(rc, "store '%s'", store);
        goto cleanup;
    }
    const unsigned char *p = h + HDR_FIXED;
    if (unwrap(c, 0, p, c->hash_key) != 0) {
        rc = rag_fail(RAG_EKEY, "store '%s': the key given does not open it (wrong key)", store);
        goto cleanup;
    }
    p += WRAPPED;
    for (int i = 0; i < h[11]; i++, p += 1 + WRAPPED) {
        c->gens[i].gen = p[0];
        if (p[0] == 0 || unwrap(c, p[0], p + 1, c->gens[i].key) != 0) {
            rc = rag_fail(RAG_ECORRUPT, "store '%s': data key of generation %u does not open",
                          store, p[0]);
            goto cleanup;
        }
        expand_key(c, &c->gens[i]);
    }
    derive_hash_keys(c);
cleanup:
    if (rc != RAG_OK)
        rag_crypt_free(c);
    else
        *out = c;
    return rc;
}

_Static_assert(RAG_CRYPT_HASH_KEY == KEYLEN, "the hash key is one key long");

void rag_crypt_hash_key_replace(rag_crypt *c, const unsigned char *key, unsigned char *old)
{
    if (old)
        memcpy(old, c->hash_key, KEYLEN);
    if (key)
        memcpy(c->hash_key, key, KEYLEN);
    else
        crypto_aead_xchacha20poly1305_ietf_keygen(c->hash_key);
    derive_hash_keys(c);
}

int rag_crypt_rotate(rag_crypt *c, const char *new_secret)
{
    if (rag_crypt_generations(c) != 1)
        return rag_fail(RAG_EBUSY, "a key rotation is still running: finish it first");
    rag_crypt saved = *c;
    int rc = new_kek(c, new_secret);
    if (rc != RAG_OK) {
        *c = saved;
        sodium_memzero(&saved, sizeof saved);
        return rc;
    }
    sodium_memzero(&saved, sizeof saved);
    unsigned next = c->cur % 255 + 1;
    gen_key *slot = c->gens[0].gen == c->cur ? &c->gens[1] : &c->gens[0];
    sodium_memzero(slot, sizeof *slot);
    slot->gen = next;
    crypto_aead_xchacha20poly1305_ietf_keygen(slot->key);
    expand_key(c, slot);
    c->cur = next;
    return RAG_OK;
}

void rag_crypt_rotate_done(rag_crypt *c)
{
    /* the old key leaves the header but stays in memory: a read snapshot of this process
     * taken before the re-sealing may still open records with it */
    for (int i = 0; i < MAX_GENS; i++)
        if (c->gens[i].gen && c->gens[i].gen != c->cur)
            c->gens[i].retired = 1;
}

int rag_crypt_generations(const rag_crypt *c)
{
    int n = 0;
    for (int i = 0; i < MAX_GENS; i++)
        n += c->gens[i].gen != 0 && !c->gens[i].retired;
    return n;
}

unsigned rag_crypt_current(const rag_crypt *c)
{
    return c->cur;
}

static const gen_key *gen_key_of(const rag_crypt *c, unsigned gen)
{
    for (int i = 0; i < MAX_GENS; i++)
        if (gen && c->gens[i].gen == gen)
            return &c->gens[i];
    return NULL;
}

/* Associated data: gen, then ad and ad2 each prefixed by its length, in a buffer big
 * enough for a table name and an LMDB key (<= 511 bytes); longer parts are hashed. */
static size_t build_ad(unsigned gen, const void *ad, size_t adlen, const void *ad2,
                       size_t ad2len, unsigned char *out)
{
    size_t n = 0;
    out[n++] = (unsigned char)gen;
    const void *parts[2] = {ad, ad2};
    size_t lens[2] = {adlen, ad2len};
    for (int i = 0; i < 2; i++) {
        uint32_t l = (uint32_t)lens[i];
        memcpy(out + n, &l, 4);
        n += 4;
        if (lens[i] <= 512) {
            if (lens[i])
                memcpy(out + n, parts[i], lens[i]);
            n += lens[i];
        } else {
            crypto_generichash(out + n, 32, parts[i], lens[i], NULL, 0);
            n += 32;
        }
    }
    return n;
}

void rag_crypt_seal(const rag_crypt *c, const void *ad, size_t adlen, const void *ad2,
                    size_t ad2len, const void *in, size_t n, unsigned char *out)
{
    unsigned char a[1 + 8 + 1024];
    size_t al = build_ad(c->cur, ad, adlen, ad2, ad2len, a);
    const gen_key *g = gen_key_of(c, c->cur);
    out[0] = (unsigned char)c->cur;
    randombytes_buf(out + 1, NONCE);
    if (c->cipher == CIPHER_AESGCM)
        crypto_aead_aes256gcm_encrypt_afternm(out + 1 + NONCE, NULL, in, n, a, al, NULL,
                                              out + 1, &g->aes);
    else
        crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + NONCE, NULL, in, n, a, al, NULL,
                                                   out + 1, g->key);
}

int rag_crypt_unseal(const rag_crypt *c, const void *ad, size_t adlen, const void *ad2,
                     size_t ad2len, const void *in, size_t n, unsigned char *out)
{
    const unsigned char *s = in;
    if (n < RAG_CRYPT_OVERHEAD)
        return rag_fail(RAG_ECORRUPT, "sealed record of %zu bytes is too short", n);
    const gen_key *g = gen_key_of(c, s[0]);
    if (!g)
        return rag_fail(RAG_ECORRUPT, "record sealed under key generation %u, which the store "
                        "no longer holds", s[0]);
    unsigned char a[1 + 8 + 1024];
    size_t al = build_ad(s[0], ad, adlen, ad2, ad2len, a);
    int bad = c->cipher == CIPHER_AESGCM
                  ? crypto_aead_aes256gcm_decrypt_afternm(out, NULL, NULL, s + 1 + NONCE,
                                                          n - 1 - NONCE, a, al, s + 1, &g->aes)
                  : crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, s + 1 + NONCE,
                                                               n - 1 - NONCE, a, al, s + 1,
                                                               g->key);
    if (bad != 0)
        return rag_fail(RAG_ECORRUPT, "record fails authentication (damaged, moved or sealed "
                        "under another key)");
    return RAG_OK;
}

unsigned rag_crypt_record_gen(const void *in, size_t n)
{
    return n >= RAG_CRYPT_OVERHEAD ? ((const unsigned char *)in)[0] : 0;
}

size_t rag_crypt_term(const rag_crypt *c, const void *term, size_t len,
                      unsigned char out[RAG_CRYPT_TERM_MAX])
{
    /* version 2: SipHash-2-4 with 128-bit output (a keyed PRF made for short inputs, about
     * 10 times faster than BLAKE2b on a word); version 1: BLAKE2b, in hex */
    if (c->version == HDR_V_RAW_TERMS) {
        crypto_shorthash_siphashx24(out, term, len, c->term_key);
        return crypto_shorthash_siphashx24_BYTES;
    }
    unsigned char h[TERM_HASH];
    crypto_generichash(h, sizeof h, term, len, c->term_key, KEYLEN);
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < TERM_HASH; i++) {
        out[2 * i] = (unsigned char)digits[h[i] >> 4];
        out[2 * i + 1] = (unsigned char)digits[h[i] & 15];
    }
    return 2 * TERM_HASH;
}

void rag_crypt_text_hash(const rag_crypt *c, const void *text, size_t len, unsigned char out[16])
{
    crypto_generichash(out, 16, text, len, c->text_key, KEYLEN);
}

uint64_t rag_crypt_hash64(const rag_crypt *c, uint64_t h)
{
    unsigned char in[8], out[crypto_shorthash_BYTES];
    for (int i = 0; i < 8; i++)
        in[i] = (unsigned char)(h >> (56 - 8 * i));
    crypto_shorthash(out, in, sizeof in, c->short_key);
    uint64_t r = 0;
    for (int i = 0; i < 8; i++)
        r = r << 8 | out[i];
    return r;
}

void rag_crypt_wipe(void *p, size_t n)
{
    if (p)
        sodium_memzero(p, n);
}
