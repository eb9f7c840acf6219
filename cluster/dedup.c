/* dedup.c - duplicate detection across a clustered collection's shards: claims appended to
 * the collection's duplicate log, replayed in log order into an in-memory index. */
#include "dedup.h"

#include "dupsnap.h"
#include "rpc.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_COLLS 64
#define READ_WAIT_MS 5000      /* for the next message of the duplicate log */
#define VERIFY_ROUNDS 3        /* claims again after releasing stale canonicals */
#define TAG_EXACT 0x45ULL
#define TAG_ID 0x49ULL

/* A canonical document of the index. id NULL: removed (its map slots are skipped). */
typedef struct entry {
    char *id;
    rag_dup_key key;
    int rows;                  /* band height at its claim; 0: exact key only */
    int64_t t_ms;              /* its claim's time (written in the log by its router) */
    uint64_t seq;              /* its claim's message */
} entry;

typedef struct slot {
    uint64_t k;
    uint32_t e;                /* entry index + 1; 0: empty */
} slot;

/* One collection's index and its reader of the duplicate log (cdedup_index in dedup.h). */
typedef struct cdedup_index {
    char name[129];
    pthread_mutex_t mu;        /* one decision at a time per collection and router */
    clog_reader *rd;
    uint64_t pos;              /* messages replayed so far */
    uint64_t snap_pos;         /* position of the newest snapshot this router knows (or is
                                * writing) */
    int snap_tried;            /* a snapshot was looked for before replaying from 1 */
    pthread_t compactor;       /* writes a snapshot while `compacting` (joined once done) */
    int compacting, compacted;
    entry *ents;
    size_t nents, cap, dead;
    slot *map;
    size_t mapcap, mapused;
} cindex;

struct cdedup {
    clog *const *log;          /* the router's, read at each use */
    const cluster_config *cfg;
    pthread_mutex_t mu;        /* guards colls */
    cindex *colls[MAX_COLLS];
    size_t ncolls;
};

/* ---- the index ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint64_t id_key(const char *id)
{
    return mix(cluster_id_hash(id) ^ TAG_ID);
}

static uint64_t exact_key(uint64_t hash)
{
    return mix(hash ^ TAG_EXACT);
}

static uint64_t band_key(int rows, int band, uint64_t key)
{
    return mix(key ^ ((uint64_t)(rows << 8 | band) << 48));
}

static int bands_of(const entry *e)
{
    return e->rows > 0 && e->key.shingles ? RAG_DUP_PERM / e->rows : 0;
}

static int map_put(cindex *x, uint64_t k, uint32_t e)
{
    if (2 * (x->mapused + 1) > x->mapcap)
        return -1;
    size_t i = (size_t)(k & (x->mapcap - 1));
    while (x->map[i].e)
        i = (i + 1) & (x->mapcap - 1);
    x->map[i].k = k;
    x->map[i].e = e;
    x->mapused++;
    return 0;
}

/* The map keys of a live entry: its id, exact key and band keys. */
static int index_entry(cindex *x, size_t i)
{
    const entry *e = &x->ents[i];
    uint32_t ref = (uint32_t)i + 1;
    int rc = map_put(x, id_key(e->id), ref);
    if (rc == 0)
        rc = map_put(x, exact_key(e->key.hash), ref);
    for (int b = 0; rc == 0 && b < bands_of(e); b++)
        rc = map_put(x, band_key(e->rows, b, rag_dup_band(&e->key, e->rows, b)), ref);
    return rc;
}

/* Rebuilds the map with room for `extra` more keys, dropping removed entries (the order of
 * the live ones is kept: decisions depend on it). */
static int rebuild(cindex *x, size_t extra)
{
    size_t live = 0;
    for (size_t i = 0; i < x->nents; i++)
        if (x->ents[i].id)
            x->ents[live++] = x->ents[i];
    x->nents = live;
    x->dead = 0;
    size_t need = extra;
    for (size_t i = 0; i < live; i++)
        need += 2 + (size_t)bands_of(&x->ents[i]);
    size_t cap = 1024;
    while (cap < 2 * need + 2)
        cap *= 2;
    slot *m = calloc(cap, sizeof *m);
    if (!m)
        return -1;
    free(x->map);
    x->map = m;
    x->mapcap = cap;
    x->mapused = 0;
    for (size_t i = 0; i < live; i++)
        if (index_entry(x, i) < 0)
            return -1;
    return 0;
}

/* The live entry of document id, or -1. */
static long find_id(const cindex *x, const char *id)
{
    uint64_t k = id_key(id);
    for (size_t i = (size_t)(k & (x->mapcap - 1)); x->mapcap && x->map[i].e;
         i = (i + 1) & (x->mapcap - 1)) {
        const entry *e = &x->ents[x->map[i].e - 1];
        if (x->map[i].k == k && e->id && !strcmp(e->id, id))
            return (long)x->map[i].e - 1;
    }
    return -1;
}

static void index_remove(cindex *x, const char *id)
{
    long i = find_id(x, id);
    if (i < 0)
        return;
    free(x->ents[i].id);
    x->ents[i].id = NULL;
    x->dead++;
}

static int index_add(cindex *x, const char *id, const rag_dup_key *key, int rows, int64_t t_ms,
                     uint64_t seq)
{
    size_t keys = 2 + (size_t)(rows > 0 && key->shingles ? RAG_DUP_PERM / rows : 0);
    if (x->nents == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 256;
        entry *q = realloc(x->ents, cap * sizeof *q);
        if (!q)
            return -1;
        x->ents = q;
        x->cap = cap;
    }
    /* room for as many keys again as the map holds: rebuilt O(log n) times while n grow */
    if ((x->dead > 64 && x->dead > x->nents / 2) || 2 * (x->mapused + keys) > x->mapcap) {
        if (rebuild(x, keys + x->mapused) < 0)
            return -1;
    }
    entry *e = &x->ents[x->nents];
    memset(e, 0, sizeof *e);
    if (!(e->id = strdup(id)))
        return -1;
    e->key = *key;
    e->rows = rows;
    e->t_ms = t_ms;
    e->seq = seq;
    x->nents++;
    return index_entry(x, x->nents - 1);
}

/* Candidates are taken in entry order (the order of their claims), so every router picks
 * the same canonical: an exact match first, else the most similar near one at or above
 * the threshold. *canon receives its entry (-1: none). */
static void index_find(const cindex *x, const char *self, const rag_dup_key *key, double thr,
                       int rows, long *canon, double *sim)
{
    *canon = -1;
    *sim = 0;
    uint64_t k = exact_key(key->hash);
    for (size_t i = (size_t)(k & (x->mapcap - 1)); x->mapcap && x->map[i].e;
         i = (i + 1) & (x->mapcap - 1)) {
        long ei = (long)x->map[i].e - 1;
        const entry *e = &x->ents[ei];
        if (x->map[i].k == k && e->id && strcmp(e->id, self) && e->key.hash == key->hash &&
            (*canon < 0 || ei < *canon)) {
            *canon = ei;
            *sim = 1.0;
        }
    }
    if (*canon >= 0 || rows <= 0 || !key->shingles)
        return;
    for (int b = 0; b < RAG_DUP_PERM / rows; b++) {
        uint64_t band = rag_dup_band(key, rows, b);
        k = band_key(rows, b, band);
        for (size_t i = (size_t)(k & (x->mapcap - 1)); x->mapcap && x->map[i].e;
             i = (i + 1) & (x->mapcap - 1)) {
            long ei = (long)x->map[i].e - 1;
            const entry *e = &x->ents[ei];
            if (x->map[i].k != k || !e->id || !strcmp(e->id, self) || e->rows != rows ||
                rag_dup_band(&e->key, rows, b) != band)
                continue;
            double s = rag_dup_similarity(key, &e->key);
            if (s >= thr && (s > *sim || (s == *sim && ei < *canon))) {
                *canon = ei;
                *sim = s;
            }
        }
    }
}

void cdedup_index_free(cindex *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->nents; i++)
        free(x->ents[i].id);
    free(x->ents);
    free(x->map);
    clog_reader_close(x->rd);
    if (x->compacting)
        pthread_join(x->compactor, NULL);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

/* ---- messages ------------------------------------------------------------------------- */

/* A claim message: {"t": ms, "thr": threshold, "claims": [{"id","h","n","s"}],
 * "release": [ids]}; h the exact key and s the signature in hexadecimal. */
static json_t *claim_json(const char *id, const rag_dup_key *k)
{
    char h[17], s[RAG_DUP_PERM * 8 + 1];
    snprintf(h, sizeof h, "%016" PRIx64, k->hash);
    for (int p = 0; p < RAG_DUP_PERM; p++)
        snprintf(s + 8 * p, 9, "%08" PRIx32, k->sig[p]);
    return json_pack("{s:s,s:s,s:I,s:s}", "id", id, "h", h, "n", (json_int_t)k->shingles, "s",
                     s);
}

static int claim_read(json_t *j, const char **id, rag_dup_key *k)
{
    *id = json_string_value(json_object_get(j, "id"));
    const char *h = json_string_value(json_object_get(j, "h"));
    const char *s = json_string_value(json_object_get(j, "s"));
    /* an id no document can have is not a claim: its verdicts would name it cut short */
    if (!*id || !**id || strlen(*id) > RAG_DOC_ID_MAX || !h || !s ||
        strlen(s) != RAG_DUP_PERM * 8)
        return -1;
    k->hash = strtoull(h, NULL, 16);
    k->shingles = (uint32_t)json_integer_value(json_object_get(j, "n"));
    for (int p = 0; p < RAG_DUP_PERM; p++) {
        char w[9];
        memcpy(w, s + 8 * p, 8);
        w[8] = '\0';
        k->sig[p] = (uint32_t)strtoul(w, NULL, 16);
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double threshold_of(const cluster_coll *c)
{
    double t = c->policy.near_dup_threshold;
    return t > 0 ? t : 0.8;
}

/* Replays message seq into the index; when mine, the verdicts of its claims (in order) and
 * the claim messages of their canonicals into canon_seq. */
static int replay(cindex *x, uint64_t seq, const void *data, size_t len, int mine,
                  rag_dup_verdict *verdicts, uint64_t *canon_seq, int64_t *canon_t, size_t n)
{
    json_t *m = json_loadb(data, len, 0, NULL);
    if (!json_is_object(m)) {
        json_decref(m);
        return 0; /* not a message of ours: ignored by every router alike */
    }
    double thr = json_real_value(json_object_get(m, "thr"));
    int64_t t = json_integer_value(json_object_get(m, "t"));
    int rows = rag_dup_rows(thr);
    json_t *rel = json_object_get(m, "release"), *claims = json_object_get(m, "claims");
    for (size_t i = 0; i < json_array_size(rel); i++) {
        const char *id = json_string_value(json_array_get(rel, i));
        if (id)
            index_remove(x, id);
    }
    int rc = 0;
    rag_dup_key k;
    for (size_t i = 0; rc == 0 && i < json_array_size(claims); i++) {
        const char *id = NULL;
        if (claim_read(json_array_get(claims, i), &id, &k) < 0)
            continue;
        long canon = -1;
        double sim = 0;
        index_find(x, id, &k, thr, rows, &canon, &sim);
        if (mine && i < n) {
            memset(&verdicts[i], 0, sizeof verdicts[i]);
            if (canon >= 0) {
                verdicts[i].kind = sim >= 1.0 && x->ents[canon].key.hash == k.hash ? 1 : 2;
                snprintf(verdicts[i].canonical, sizeof verdicts[i].canonical, "%s",
                         x->ents[canon].id);
                verdicts[i].similarity = sim;
                canon_seq[i] = x->ents[canon].seq;
                canon_t[i] = x->ents[canon].t_ms;
            }
        }
        index_remove(x, id);
        if (canon < 0)
            rc = index_add(x, id, &k, rows, t, seq);
    }
    json_decref(m);
    return rc;
}

cindex *cdedup_index_create(const char *name)
{
    cindex *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    snprintf(x->name, sizeof x->name, "%s", name);
    pthread_mutex_init(&x->mu, NULL);
    return x;
}

int cdedup_index_replay(cindex *x, uint64_t seq, const void *data, size_t len,
                        rag_dup_verdict *verdicts, size_t n)
{
    uint64_t *canon_seq = n ? calloc(n, sizeof *canon_seq) : NULL;
    int64_t *canon_t = n ? calloc(n, sizeof *canon_t) : NULL;
    int rc = -1;
    if (!n || (canon_seq && canon_t))
        rc = replay(x, seq, data, len, verdicts && n, verdicts, canon_seq, canon_t, n);
    free(canon_seq);
    free(canon_t);
    return rc;
}

size_t cdedup_index_live(const cindex *x)
{
    return x->nents - x->dead;
}

/* ---- snapshots (dupsnap.h) ------------------------------------------------------------ */

#define SNAP_MAGIC "RAGDUPX1"
#define SNAP_ENTRY_FIXED (2 + 8 + 4 + 4 + 8 + 8 + 4 * RAG_DUP_PERM)

typedef struct sbuf {
    unsigned char *p;
    size_t n, cap;
} sbuf;

static unsigned char *sb_room(sbuf *b, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q)
            return NULL;
        b->p = q;
        b->cap = cap;
    }
    b->n += n;
    return b->p + b->n - n;
}

static void le_put(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le_get(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The live entries of the index in their order (decisions depend on it) as a snapshot
 * body: magic, entry count (u64), then per entry its id length (u16), exact key (u64),
 * shingle count (u32), band rows (u32), claim time (i64), claim message (u64), the
 * signature (RAG_DUP_PERM u32) and the id's bytes; little-endian. 0, or -1 when out of
 * memory (b then holds what was written; the caller frees b->p). */
static int index_encode(const cindex *x, sbuf *b)
{
    unsigned char *p = sb_room(b, 16);
    if (!p)
        return -1;
    memcpy(p, SNAP_MAGIC, 8);
    le_put(p + 8, x->nents - x->dead, 8);
    for (size_t i = 0; i < x->nents; i++) {
        const entry *e = &x->ents[i];
        if (!e->id)
            continue;
        size_t idl = strlen(e->id);
        if (!(p = sb_room(b, SNAP_ENTRY_FIXED + idl)))
            return -1;
        le_put(p, idl, 2);
        le_put(p + 2, e->key.hash, 8);
        le_put(p + 10, e->key.shingles, 4);
        le_put(p + 14, (uint32_t)e->rows, 4);
        le_put(p + 18, (uint64_t)e->t_ms, 8);
        le_put(p + 26, e->seq, 8);
        for (int k = 0; k < RAG_DUP_PERM; k++)
            le_put(p + 34 + 4 * k, e->key.sig[k], 4);
        memcpy(p + SNAP_ENTRY_FIXED, e->id, idl);
    }
    return 0;
}

/* The index of collection `name` that a snapshot body describes, or NULL with err (a body
 * of another format, counts that disagree with its length, an impossible id or band
 * height; out of memory). */
static cindex *index_decode(const char *name, const void *body, size_t len, char *err,
                            size_t errlen)
{
    const unsigned char *p = body, *end = p + len;
    cindex *x = cdedup_index_create(name);
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uint64_t count = len >= 16 && !memcmp(p, SNAP_MAGIC, 8) ? le_get(p + 8, 8) : UINT64_MAX;
    if (count > len / SNAP_ENTRY_FIXED) {
        snprintf(err, errlen, "not a duplicate index snapshot");
        goto fail;
    }
    p += 16;
    for (uint64_t i = 0; i < count; i++) {
        size_t idl = (size_t)(end - p) >= SNAP_ENTRY_FIXED ? (size_t)le_get(p, 2) : 0;
        int rows = idl ? (int)le_get(p + 14, 4) : -1;
        if (!idl || idl > RAG_DOC_ID_MAX || (size_t)(end - p) < SNAP_ENTRY_FIXED + idl ||
            rows < 0 || rows > RAG_DUP_PERM || memchr(p + SNAP_ENTRY_FIXED, 0, idl)) {
            snprintf(err, errlen, "entry %" PRIu64 " malformed", i);
            goto fail;
        }
        char id[RAG_DOC_ID_MAX + 1];
        rag_dup_key k;
        memcpy(id, p + SNAP_ENTRY_FIXED, idl);
        id[idl] = '\0';
        k.hash = le_get(p + 2, 8);
        k.shingles = (uint32_t)le_get(p + 10, 4);
        for (int s = 0; s < RAG_DUP_PERM; s++)
            k.sig[s] = (uint32_t)le_get(p + 34 + 4 * s, 4);
        if (index_add(x, id, &k, rows, (int64_t)le_get(p + 18, 8), le_get(p + 26, 8)) < 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        p += SNAP_ENTRY_FIXED + idl;
    }
    if (p != end) {
        snprintf(err, errlen, "%zu bytes after the last entry", (size_t)(end - p));
        goto fail;
    }
    return x;
fail:
    cdedup_index_free(x);
    return NULL;
}

/* Moves y's entries into x (its lock, name and reader stay) and frees y. */
static void index_take(cindex *x, cindex *y)
{
    for (size_t i = 0; i < x->nents; i++)
        free(x->ents[i].id);
    free(x->ents);
    free(x->map);
    x->ents = y->ents;
    x->nents = y->nents;
    x->cap = y->cap;
    x->dead = y->dead;
    x->map = y->map;
    x->mapcap = y->mapcap;
    x->mapused = y->mapused;
    y->ents = NULL;
    y->nents = 0;
    y->map = NULL;
    cdedup_index_free(y);
}

static double elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Brings the index to a position the duplicate log can be replayed from: when the log's
 * first message is past the next one to replay (it was compacted while this router was
 * behind), or `prefer` (a router with nothing replayed yet), the newest complete snapshot
 * whose position the log goes on from replaces the index. Never skips a message: with the
 * log compacted and no such snapshot, -1 with err naming both. */
static int resync(cdedup *d, cindex *x, int prefer, char *err, size_t errlen)
{
    uint64_t first = 0, S = 0, part0 = 0;
    void *body = NULL;
    size_t len = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (clog_first(*d->log, x->name, -1, &first, err, errlen) < 0)
        return -1;
    int gap = first > x->pos + 1;
    if (!gap && !prefer)
        return 0;
    uint64_t min_S = gap ? first - 1 : x->pos;
    int got = clog_ensure(*d->log, x->name, CLOG_DUPSNAP, d->cfg->stream_replicas,
                          d->cfg->dedup_window_s, err, errlen);
    if (got == 0) /* the snapshot the record names; the newest in the stream without it */
        got = dupsnap_read_recorded(*d->log, x->name, min_S, &S, &body, &len, &part0, err,
                                    errlen);
    if (got == 0) {
        fprintf(stderr, "duplicate log of '%s': %s; looking for the newest snapshot in the "
                "stream\n", x->name, err);
        got = dupsnap_read_newest(*d->log, x->name, min_S, &S, &body, &len, &part0, err,
                                  errlen);
    }
    if (got <= 0) {
        if (!gap) { /* replayed from the start instead */
            if (got < 0)
                fprintf(stderr, "duplicate log of '%s': no snapshot read (%s); replaying "
                        "the whole log\n", x->name, err);
            return 0;
        }
        if (got == 0)
            snprintf(err, errlen, "duplicate log of '%s' starts at message %" PRIu64
                     " (compacted) and no complete snapshot at %" PRIu64 " or later "
                     "exists", x->name, first, min_S);
        return -1;
    }
    double read_ms = elapsed_ms(&t0);
    cindex *y = index_decode(x->name, body, len, err, errlen);
    free(body);
    if (!y) {
        char why[256];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "duplicate snapshot of '%s' at %" PRIu64 ": %s", x->name, S,
                 why);
        return gap ? -1 : 0;
    }
    index_take(x, y);
    clog_reader_close(x->rd);
    x->rd = NULL;
    x->pos = S;
    x->snap_pos = S;
    fprintf(stderr, "duplicate index of '%s': snapshot at message %" PRIu64 " loaded (%zu "
            "documents, %zu bytes) in %.1f ms (read %.1f ms)\n", x->name, S,
            cdedup_index_live(x), len, elapsed_ms(&t0), read_ms);
    return 0;
}

/* A snapshot on its way to the snapshot stream (compact_run's argument, its to free). */
typedef struct compaction {
    cdedup *d;
    cindex *x;
    sbuf body;
    uint64_t S, prev;          /* its position; the previous snapshot's */
} compaction;

/* Test hook RAGCORE_CLUSTER_TEST_COMPACT_STALL=S: the first compaction of this router
 * process waits S seconds before it writes its snapshot (a router slowed down while the
 * others compact at later positions: its snapshot then reaches the stream after theirs). */
static void compact_test_stall(const char *name, uint64_t S)
{
    static int stalled;
    const char *v = getenv("RAGCORE_CLUSTER_TEST_COMPACT_STALL");
    int secs = v ? atoi(v) : 0;
    if (secs <= 0 || __atomic_exchange_n(&stalled, 1, __ATOMIC_SEQ_CST))
        return;
    fprintf(stderr, "duplicate log of '%s': test hook: compaction at message %" PRIu64
            " waits %d s\n", name, S, secs);
    cluster_sleep_ms(secs * 1000);
}

/* Writes the snapshot, reads it back and records it as the collection's current one
 * (dupsnap_record: only when newer than the recorded one). Only a writer that recorded its
 * snapshot purges, and only below what the record it replaced named: the snapshot stream
 * below that snapshot's first part (a router still loading the replaced snapshot can finish:
 * the stream holds two snapshots) and the duplicate log up to that snapshot's position (a
 * router that loaded it replays from there; the recorded snapshot covers more). Since the
 * record's position and first part only grow, no purge, however late, reaches the log past
 * a recorded snapshot or that snapshot's parts. A writer whose snapshot a newer one
 * superseded purges nothing. A failure is logged, and the next decision past the interval
 * tries again. */
static void *compact_run(void *arg)
{
    compaction *c = arg;
    cdedup *d = c->d;
    const char *name = c->x->name;
    char err[512];
    void *back = NULL;
    size_t blen = 0;
    uint64_t S = 0, bfirst = 0;
    dupsnap_rec rec = {.S = c->S}, old = {0};
    int had = 0, recorded = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    compact_test_stall(name, c->S);
    int rc = clog_ensure(*d->log, name, CLOG_DUPSNAP, d->cfg->stream_replicas,
                         d->cfg->dedup_window_s, err, sizeof err);
    if (rc == 0)
        rc = dupsnap_write(*d->log, name, c->S, c->body.p, c->body.n,
                           d->cfg->publish_timeout_ms, d->cfg->publish_attempts, &rec.first,
                           &rec.last, err, sizeof err);
    if (rc == 0) {
        int got = dupsnap_read_at(*d->log, name, rec.last, &S, &back, &blen, &bfirst, err,
                                  sizeof err);
        rc = got == 1 && S == c->S && blen == c->body.n && !memcmp(back, c->body.p, blen)
                 ? 0 : -1;
        if (got == 1 && rc < 0)
            snprintf(err, sizeof err, "read back differs from what was written");
    }
    if (rc == 0) {
        rec.sum = dupsnap_sum(c->body.p, c->body.n);
        recorded = dupsnap_record(*d->log, name, &rec, &old, &had, err, sizeof err);
        rc = recorded < 0 ? -1 : 0;
    }
    if (recorded == 1 && had)
        rc = clog_purge_below(*d->log, name, CLOG_DUPSNAP, old.first, err, sizeof err);
    if (recorded == 1 && had && rc == 0)
        rc = clog_purge_below(*d->log, name, -1, old.S + 1, err, sizeof err);
    if (rc == 0 && recorded == 1)
        fprintf(stderr, "duplicate log of '%s' compacted: snapshot at message %" PRIu64
                " (%zu bytes) in %.1f ms, log purged below %" PRIu64 "\n", name, c->S,
                c->body.n, elapsed_ms(&t0), had ? old.S + 1 : 1);
    else if (rc == 0)
        fprintf(stderr, "duplicate log of '%s': snapshot at message %" PRIu64 " written but "
                "superseded (%s); nothing purged\n", name, c->S, err);
    else
        fprintf(stderr, "duplicate log of '%s': compaction at message %" PRIu64 " failed: "
                "%s\n", name, c->S, err);
    pthread_mutex_lock(&c->x->mu);
    if (rc < 0 && c->x->snap_pos == c->S)
        c->x->snap_pos = c->prev;
    c->x->compacted = 1;
    pthread_mutex_unlock(&c->x->mu);
    free(back);
    free(c->body.p);
    free(c);
    return NULL;
}

/* Compaction, after a decision (x->mu held): once the index has replayed dup_compact_every
 * messages past the newest snapshot it knows, its snapshot is taken here and written by a
 * thread of its own (compact_run), so the writes of the collection go on meanwhile. */
static void maybe_compact(cdedup *d, cindex *x)
{
    int every = d->cfg->dup_compact_every;
    if (x->compacting && x->compacted) {
        pthread_join(x->compactor, NULL);
        x->compacting = x->compacted = 0;
    }
    if (every <= 0 || x->compacting || x->pos < x->snap_pos + (uint64_t)every)
        return;
    /* another router compacted: none needed yet. The record says which snapshot is
     * current (one small read; a position past this router's is no snapshot it could have
     * written: a damaged record, that must not stop compaction) */
    dupsnap_rec rec;
    uint64_t rev = 0;
    char err[256];
    if (dupsnap_record_get(*d->log, x->name, &rec, &rev, err, sizeof err) == 1 &&
        rec.S > x->snap_pos && rec.S <= x->pos)
        x->snap_pos = rec.S;
    if (x->pos < x->snap_pos + (uint64_t)every)
        return;
    compaction *c = calloc(1, sizeof *c);
    if (!c || index_encode(x, &c->body) < 0) {
        fprintf(stderr, "duplicate log of '%s': compaction at message %" PRIu64 " failed: out "
                "of memory\n", x->name, x->pos);
        if (c)
            free(c->body.p);
        free(c);
        return;
    }
    c->d = d;
    c->x = x;
    c->S = x->pos;
    c->prev = x->snap_pos;
    fprintf(stderr, "duplicate log of '%s': compacting at message %" PRIu64 " (%zu "
            "documents)\n", x->name, c->S, cdedup_index_live(x));
    x->snap_pos = c->S;
    if (pthread_create(&x->compactor, NULL, compact_run, c) != 0) {
        fprintf(stderr, "duplicate log of '%s': compaction at message %" PRIu64 " failed: "
                "no thread\n", x->name, c->S);
        x->snap_pos = c->prev;
        free(c->body.p);
        free(c);
        return;
    }
    x->compacting = 1;
}

/* 1 with err when a snapshot took the index past message `upto` whose n verdicts are
 * wanted (compacted before this router read its own claim back): they cannot be known. */
static int passed_own(const cindex *x, uint64_t upto, size_t n, char *err, size_t errlen)
{
    if (x->pos < upto || !n)
        return 0;
    snprintf(err, errlen, "duplicate log of '%s': message %" PRIu64 " was compacted before "
             "this router read it back; send the request again", x->name, upto);
    return 1;
}

/* Reads the duplicate log up to sequence `upto` (replaying each message; the verdicts of
 * message `upto` into verdicts). */
static int catch_up(cdedup *d, cindex *x, uint64_t upto, rag_dup_verdict *verdicts,
                    uint64_t *canon_seq, int64_t *canon_t, size_t n, char *err, size_t errlen)
{
    if (!x->snap_tried && x->pos == 0) {
        x->snap_tried = 1;
        if (resync(d, x, d->cfg->dup_compact_every > 0, err, errlen) < 0)
            return -1;
        if (passed_own(x, upto, n, err, errlen))
            return -1;
    }
    while (x->pos < upto) {
        if (!x->rd &&
            clog_reader_open(*d->log, x->name, -1, x->pos + 1, &x->rd, err, errlen) < 0)
            return -1;
        const void *data = NULL;
        size_t len = 0;
        uint64_t seq = 0, pending = 0;
        int got = clog_reader_next(x->rd, READ_WAIT_MS, &data, &len, &seq, &pending, err,
                                   errlen);
        if (got <= 0) {
            if (got == 0)
                snprintf(err, errlen, "duplicate log of '%s': no message %" PRIu64
                         " within %d ms", x->name, x->pos + 1, READ_WAIT_MS);
            clog_reader_close(x->rd);
            x->rd = NULL;
            return -1;
        }
        if (seq <= x->pos)
            continue;
        if (seq != x->pos + 1) { /* a gap (compacted?): read again from the position */
            clog_reader_close(x->rd);
            x->rd = NULL;
            if (resync(d, x, 0, err, errlen) < 0)
                return -1;
            if (passed_own(x, upto, n, err, errlen))
                return -1;
            continue;
        }
        if (replay(x, seq, data, len, seq == upto, verdicts, canon_seq, canon_t, n) < 0) {
            snprintf(err, errlen, "duplicate index of '%s': out of memory", x->name);
            return -1;
        }
        x->pos = seq;
    }
    return 0;
}

/* ---- the decision point --------------------------------------------------------------- */

cdedup *cdedup_create(clog *const *log, const cluster_config *cfg)
{
    cdedup *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->log = log;
    d->cfg = cfg;
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

void cdedup_free(cdedup *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->ncolls; i++)
        cdedup_index_free(d->colls[i]);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* The collection's index, created (and its log ensured) on first use. */
static cindex *index_for(cdedup *d, const cluster_coll *c, char *err, size_t errlen)
{
    cindex *x = NULL;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->ncolls && !x; i++)
        if (!strcmp(d->colls[i]->name, c->name))
            x = d->colls[i];
    if (!x && d->ncolls == MAX_COLLS)
        snprintf(err, errlen, "duplicate detection: more than %d collections", MAX_COLLS);
    else if (!x && clog_ensure(*d->log, c->name, -1, d->cfg->stream_replicas,
                               d->cfg->dedup_window_s, err, errlen) == 0) {
        x = cdedup_index_create(c->name);
        if (x) {
            d->colls[d->ncolls++] = x;
        } else {
            snprintf(err, errlen, "out of memory");
        }
    }
    pthread_mutex_unlock(&d->mu);
    return x;
}

/* Appends one message and replays the log up to it. */
static int append_and_read(cdedup *d, cindex *x, json_t *msg, rag_dup_verdict *verdicts,
                           uint64_t *canon_seq, int64_t *canon_t, size_t n, uint64_t *seq,
                           char *err, size_t errlen)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    char id[64];
    snprintf(id, sizeof id, "dup-%" PRIx64 "-%" PRIx64, (uint64_t)now_ms(),
             mix((uint64_t)(uintptr_t)msg ^ (uint64_t)clock()));
    int dup = 0, rc = -1;
    if (!text)
        snprintf(err, errlen, "out of memory");
    /* retried as the shard appends are (a new log may not answer yet); the message id makes
     * a retry of an append that landed a duplicate the broker drops */
    for (int i = 0; text && rc < 0 && i < d->cfg->publish_attempts; i++) {
        if (i)
            cluster_sleep_ms(50 << (i < 10 ? i : 10));
        rc = clog_append(*d->log, x->name, -1, id, text, strlen(text),
                         d->cfg->publish_timeout_ms, seq, &dup, err, errlen);
    }
    if (rc == 0)
        rc = catch_up(d, x, *seq, verdicts, canon_seq, canon_t, n, err, errlen);
    free(text);
    return rc;
}

/* Whether document id exists on its shard: 1, 0, or -1 with err. `settled`: asked once a
 * replica has applied everything appended to the shard's log so far (else a replica's
 * current view, which may not have the document yet). */
static int doc_exists(cdedup *d, const cluster_coll *c, const char *id, int settled,
                      char *err, size_t errlen)
{
    int shard = cluster_shard_of(id, c->shards);
    uint64_t last = 0;
    if (settled && clog_last(*d->log, c->name, shard, &last, err, errlen) < 0)
        return -1;
    char subj[300];
    snprintf(subj, sizeof subj, "rag.q.%s.%d", c->name, shard);
    json_t *req = json_pack("{s:s,s:I,s:i}", "doc_exists", id, "min_seq", (json_int_t)last,
                            "wait_ms", d->cfg->ryw_wait_ms);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    const char *subjects[1] = {subj}, *bodies[1] = {body};
    size_t lens[1] = {body ? strlen(body) : 0}, rlens[1] = {0};
    char *replies[1] = {NULL};
    int rc = -1;
    for (int attempt = 0; body && attempt < 2 && !replies[0]; attempt++)
        rpc_scatter(*d->log, 1, subjects, bodies, lens,
                    d->cfg->query_timeout_ms + d->cfg->ryw_wait_ms, replies, rlens);
    json_t *r = replies[0] ? json_loadb(replies[0], rlens[0], 0, NULL) : NULL;
    json_t *ex = json_object_get(r, "exists");
    if (json_is_boolean(ex))
        rc = json_is_true(ex);
    else
        snprintf(err, errlen, "shard %d of '%s' could not say whether '%s' exists: %s", shard,
                 c->name, id,
                 !replies[0] ? "no replica answered in time"
                 : json_is_true(json_object_get(r, "behind")) ? "behind its log"
                 : json_string_value(json_object_get(r, "error"))
                     ? json_string_value(json_object_get(r, "error"))
                     : "unreadable reply");
    json_decref(r);
    free(replies[0]);
    free(body);
    return rc;
}

/* How long a canonical's claim may wait for its document: the message-id window, within
 * which its router (or a client resending the same request) may still append it. A claim
 * older than that whose document is not stored is abandoned. */
static int64_t claim_grace_ms(const cluster_config *cfg)
{
    return (int64_t)cfg->dedup_window_s * 1000;
}

int cdedup_decide(cdedup *d, const cluster_coll *c, size_t n, const char *const *ids,
                  const rag_dup_key *keys, rag_dup_verdict *verdicts, char *err,
                  size_t errlen)
{
    cindex *x = index_for(d, c, err, errlen);
    if (!x)
        return -1;
    uint64_t *canon_seq = calloc(n ? n : 1, sizeof *canon_seq);
    int64_t *canon_t = calloc(n ? n : 1, sizeof *canon_t);
    json_t *claims = json_array(), *release = json_array();
    int rc = canon_seq && canon_t && claims && release ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = json_array_append_new(claims, claim_json(ids[i], &keys[i]));
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    pthread_mutex_lock(&x->mu);
    for (int round = 0; rc == 0 && round < VERIFY_ROUNDS; round++) {
        json_t *msg = json_pack("{s:I,s:f,s:O,s:O}", "t", (json_int_t)now_ms(), "thr",
                                threshold_of(c), "claims", claims, "release", release);
        uint64_t seq = 0;
        memset(canon_seq, 0, n * sizeof *canon_seq);
        rc = msg ? append_and_read(d, x, msg, verdicts, canon_seq, canon_t, n, &seq, err,
                                   errlen)
                 : -1;
        json_decref(msg);
        json_array_clear(release);
        /* verify each canonical claimed before this message (those in it are in this very
         * batch): stored, or young enough to be on its way */
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (!verdicts[i].kind || canon_seq[i] == seq)
                continue;
            /* a replica that has it settles it at once; one that does not yet may be behind
             * its log or the canonical on its way: asked again until the claim is older
             * than the grace, then once more after the shard's whole log */
            int ex;
            for (;;) {
                int old = now_ms() - canon_t[i] >= claim_grace_ms(d->cfg);
                ex = doc_exists(d, c, verdicts[i].canonical, old, err, errlen);
                if (ex == 1 || old)
                    break;
                cluster_sleep_ms(100);
            }
            if (ex < 0)
                rc = -1;
            else if (!ex)
                json_array_append_new(release, json_string(verdicts[i].canonical));
        }
        if (rc == 0 && json_array_size(release) == 0)
            break;
        if (rc == 0 && round + 1 == VERIFY_ROUNDS) {
            snprintf(err, errlen, "duplicate log of '%s': canonical documents kept "
                     "disappearing (%d rounds)", c->name, VERIFY_ROUNDS);
            rc = -1;
        }
    }
    if (rc == 0)
        maybe_compact(d, x);
    pthread_mutex_unlock(&x->mu);
    json_decref(claims);
    json_decref(release);
    free(canon_seq);
    free(canon_t);
    return rc;
}

int cdedup_release(cdedup *d, const cluster_coll *c, const char *id, char *err, size_t errlen)
{
    cindex *x = index_for(d, c, err, errlen);
    if (!x)
        return -1;
    json_t *msg = json_pack("{s:I,s:f,s:[],s:[s]}", "t", (json_int_t)now_ms(), "thr",
                            threshold_of(c), "claims", "release", id);
    uint64_t seq = 0;
    pthread_mutex_lock(&x->mu);
    int rc = msg ? append_and_read(d, x, msg, NULL, NULL, NULL, 0, &seq, err, errlen) : -1;
    if (rc == 0)
        maybe_compact(d, x);
    pthread_mutex_unlock(&x->mu);
    json_decref(msg);
    return rc;
}
