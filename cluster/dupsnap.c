/* dupsnap.c - duplicate-index snapshots as checksummed parts in a collection's snapshot
 * stream (dupsnap.h). */
#include "dupsnap.h"

#include "cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define HDR 48
#define PAYLOAD (DUPSNAP_PART_MAX - HDR)
#define VERSION 1

/* A part's header, as stored (little-endian). */
typedef struct part_hdr {
    uint64_t S;
    uint32_t part, nparts;
    uint64_t prev;             /* stream sequence of part - 1; 0 for the first */
    uint64_t total;            /* the body's bytes */
    uint64_t sum;              /* XXH3-64 of the body */
} part_hdr;

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static size_t nparts_of(uint64_t total)
{
    return total ? (size_t)((total + PAYLOAD - 1) / PAYLOAD) : 1;
}

/* The bytes of body that part i carries. */
static size_t part_len(uint64_t total, size_t i)
{
    uint64_t off = (uint64_t)i * PAYLOAD;
    return off >= total ? 0 : (size_t)(total - off < PAYLOAD ? total - off : PAYLOAD);
}

/* Decodes a part's header: 0, or -1 when data is no part of a snapshot of this format or
 * its counts disagree with its length. */
static int hdr_read(const void *data, size_t len, part_hdr *h)
{
    const unsigned char *p = data;
    if (len < HDR || memcmp(p, "RDSP", 4) || get32(p + 4) != VERSION)
        return -1;
    h->S = get64(p + 8);
    h->part = get32(p + 16);
    h->nparts = get32(p + 20);
    h->prev = get64(p + 24);
    h->total = get64(p + 32);
    h->sum = get64(p + 40);
    if (h->nparts == 0 || h->part >= h->nparts || h->total > (uint64_t)SIZE_MAX / 2 ||
        nparts_of(h->total) != h->nparts || len - HDR != part_len(h->total, h->part) ||
        (h->part == 0) != (h->prev == 0))
        return -1;
    return 0;
}

int dupsnap_write(clog *l, const char *coll, uint64_t S, const void *body, size_t len,
                  int timeout_ms, int attempts, uint64_t *first, uint64_t *last, char *err,
                  size_t errlen)
{
    size_t n = nparts_of(len);
    uint64_t sum = XXH3_64bits(body, len), prev = 0;
    unsigned char *msg = malloc(HDR + PAYLOAD);
    int rc = msg ? 0 : -1;
    if (!msg)
        snprintf(err, errlen, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t pl = part_len(len, i);
        memcpy(msg, "RDSP", 4);
        put32(msg + 4, VERSION);
        put64(msg + 8, S);
        put32(msg + 16, (uint32_t)i);
        put32(msg + 20, (uint32_t)n);
        put64(msg + 24, prev);
        put64(msg + 32, len);
        put64(msg + 40, sum);
        if (pl)
            memcpy(msg + HDR, (const char *)body + i * PAYLOAD, pl);
        /* the same content, the same id: a copy written by another router at once is
         * dropped by the broker and its sequence answered */
        char id[128];
        snprintf(id, sizeof id, "snap-%" PRIu64 "-%zu-%zu-%" PRIu64 "-%016" PRIx64, S, i, n,
                 prev, sum);
        uint64_t seq = 0;
        int dup = 0;
        rc = -1;
        for (int a = 0; rc < 0 && a < attempts; a++) {
            if (a)
                cluster_sleep_ms(50 << (a < 10 ? a : 10));
            rc = clog_append(l, coll, CLOG_DUPSNAP, id, msg, HDR + pl, timeout_ms, &seq, &dup,
                             err, errlen);
        }
        if (rc == 0 && i == 0)
            *first = seq;
        prev = seq;
    }
    if (rc == 0)
        *last = prev;
    free(msg);
    return rc;
}

int dupsnap_read_at(clog *l, const char *coll, uint64_t last_seq, uint64_t *S, void **body,
                    size_t *len, uint64_t *first, char *err, size_t errlen)
{
    unsigned char *out = NULL;
    part_hdr top = {0}, h;
    uint64_t seq = last_seq;
    int rc = 0;
    *body = NULL;
    for (long i = -1;; i--) {
        void *data = NULL;
        size_t dl = 0;
        int got = clog_get(l, coll, CLOG_DUPSNAP, seq, &data, &dl, err, errlen);
        if (got <= 0) {
            rc = got;
            if (got == 0)
                snprintf(err, errlen, "message %" PRIu64 " (part %ld) is missing", seq,
                         i < 0 ? 0 : i);
            break;
        }
        int ok = hdr_read(data, dl, &h) == 0;
        if (ok && i < 0) { /* the last part: it names the rest */
            top = h;
            i = (long)h.nparts - 1;
            ok = h.part == h.nparts - 1 && (out = malloc(h.total ? h.total : 1)) != NULL;
            if (!ok && h.part == h.nparts - 1) {
                free(data);
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
        } else if (ok) {
            ok = h.part == (uint32_t)i && h.S == top.S && h.nparts == top.nparts &&
                 h.total == top.total && h.sum == top.sum;
        }
        if (!ok) {
            free(data);
            if (i < 0)
                snprintf(err, errlen, "message %" PRIu64 " is no snapshot's last part", seq);
            else
                snprintf(err, errlen, "message %" PRIu64 " is not part %ld of the snapshot",
                         seq, i);
            break;
        }
        memcpy(out + (size_t)i * PAYLOAD, (unsigned char *)data + HDR, dl - HDR);
        free(data);
        if (i == 0) {
            if (XXH3_64bits(out, top.total) != top.sum) {
                snprintf(err, errlen, "checksum mismatch");
                break;
            }
            *S = top.S;
            *body = out;
            *len = top.total;
            *first = seq;
            return 1;
        }
        if (h.prev >= seq) {
            snprintf(err, errlen, "part %ld names a later message", i);
            break;
        }
        seq = h.prev;
    }
    free(out);
    return rc;
}

int dupsnap_read_newest(clog *l, const char *coll, uint64_t min_S, uint64_t *S, void **body,
                        size_t *len, uint64_t *first, char *err, size_t errlen)
{
    uint64_t lo = 0, hi = 0;
    if (clog_first(l, coll, CLOG_DUPSNAP, &lo, err, errlen) < 0 ||
        clog_last(l, coll, CLOG_DUPSNAP, &hi, err, errlen) < 0)
        return -1;
    for (uint64_t seq = hi; seq >= lo && seq > 0;) {
        char why[256];
        int got = dupsnap_read_at(l, coll, seq, S, body, len, first, why, sizeof why);
        if (got < 0) {
            snprintf(err, errlen, "snapshot of '%s': %s", coll, why);
            return -1;
        }
        if (got == 1 && *S >= min_S)
            return 1;
        if (got == 1) { /* complete but too old: an older message may be a newer position */
            free(*body);
            *body = NULL;
            seq = *first - 1;
            continue;
        }
        void *data = NULL;
        size_t dl = 0;
        part_hdr h;
        /* only a message meant as a last part is worth a line: the others are read with
         * their snapshot */
        if (clog_get(l, coll, CLOG_DUPSNAP, seq, &data, &dl, why, sizeof why) != 1 ||
            hdr_read(data, dl, &h) < 0 || h.part + 1 == h.nparts)
            fprintf(stderr, "duplicate snapshot of '%s' ending at message %" PRIu64
                    " skipped: %s\n", coll, seq, why);
        free(data);
        seq--;
    }
    return 0;
}

/* ---- the record of the current snapshot ------------------------------------------------ */

#define RECORD_TRIES 8         /* compare-and-set rounds lost to other writers */

static void record_key(const char *coll, char *key, size_t n)
{
    snprintf(key, n, "dupsnap.%s", coll);
}

uint64_t dupsnap_sum(const void *body, size_t len)
{
    return XXH3_64bits(body, len);
}

int dupsnap_record_get(clog *l, const char *coll, dupsnap_rec *r, uint64_t *rev, char *err,
                       size_t errlen)
{
    char key[160], *text = NULL;
    record_key(coll, key, sizeof key);
    memset(r, 0, sizeof *r);
    if (clog_meta_get_rev(l, key, &text, rev, err, errlen) < 0)
        return -1;
    if (!text) {
        snprintf(err, errlen, "no snapshot of '%s' is recorded", coll);
        return 0;
    }
    json_t *j = json_loads(text, 0, NULL);
    json_t *S = json_object_get(j, "S"), *first = json_object_get(j, "first"),
           *last = json_object_get(j, "last");
    const char *sum = json_string_value(json_object_get(j, "sum"));
    char *end = NULL;
    int ok = json_is_integer(S) && json_is_integer(first) && json_is_integer(last) && sum &&
             strlen(sum) == 16;
    if (ok) {
        r->S = (uint64_t)json_integer_value(S);
        r->first = (uint64_t)json_integer_value(first);
        r->last = (uint64_t)json_integer_value(last);
        r->sum = strtoull(sum, &end, 16);
        ok = *end == '\0' && r->S > 0 && r->first > 0 && r->first <= r->last;
    }
    json_decref(j);
    free(text);
    if (!ok) {
        snprintf(err, errlen, "the record of the current snapshot of '%s' (metadata key %s) "
                 "is malformed", coll, key);
        memset(r, 0, sizeof *r);
    }
    return ok;
}

int dupsnap_record(clog *l, const char *coll, const dupsnap_rec *nw, dupsnap_rec *replaced,
                   int *had, char *err, size_t errlen)
{
    char key[160], sum[17];
    record_key(coll, key, sizeof key);
    snprintf(sum, sizeof sum, "%016" PRIx64, nw->sum);
    json_t *j = json_pack("{s:I,s:I,s:I,s:s}", "S", (json_int_t)nw->S, "first",
                          (json_int_t)nw->first, "last", (json_int_t)nw->last, "sum", sum);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int rc = -1, clash = 0;
    if (!text)
        snprintf(err, errlen, "out of memory");
    for (int t = 0; text && t < RECORD_TRIES && rc < 0; t++) {
        uint64_t rev = 0;
        clash = 0;
        int got = dupsnap_record_get(l, coll, replaced, &rev, err, errlen);
        if (got < 0)
            break;
        *had = got;
        if (got && (replaced->S >= nw->S || replaced->first >= nw->first)) {
            snprintf(err, errlen, "the snapshot at message %" PRIu64 " (parts from stream "
                     "message %" PRIu64 ") is recorded", replaced->S, replaced->first);
            rc = 0;
            break;
        }
        if (rev == 0) {
            if (clog_meta_create(l, key, text, &clash, err, errlen) == 0)
                rc = 1;
            else if (!clash)
                break;
        } else if (clog_meta_update(l, key, text, rev, &clash, err, errlen) == 0) {
            rc = 1;
        } else if (!clash) {
            break;
        }
    }
    if (rc < 0 && clash)
        snprintf(err, errlen, "record of '%s': %d writers came first", coll, RECORD_TRIES);
    free(text);
    return rc;
}

int dupsnap_read_recorded(clog *l, const char *coll, uint64_t min_S, uint64_t *S, void **body,
                          size_t *len, uint64_t *first, char *err, size_t errlen)
{
    dupsnap_rec r;
    uint64_t rev = 0;
    char why[256];
    *body = NULL;
    int got = dupsnap_record_get(l, coll, &r, &rev, err, errlen);
    if (got <= 0)
        return got;
    if (r.S < min_S) {
        snprintf(err, errlen, "the recorded snapshot of '%s' is at message %" PRIu64
                 ", before %" PRIu64, coll, r.S, min_S);
        return 0;
    }
    got = dupsnap_read_at(l, coll, r.last, S, body, len, first, why, sizeof why);
    if (got == 1 && (*S != r.S || *first != r.first || dupsnap_sum(*body, *len) != r.sum)) {
        snprintf(why, sizeof why, "the parts found are of another snapshot");
        free(*body);
        *body = NULL;
        got = 0;
    }
    if (got != 1)
        snprintf(err, errlen, "the recorded snapshot of '%s' at message %" PRIu64 " (stream "
                 "messages %" PRIu64 "-%" PRIu64 "): %s", coll, r.S, r.first, r.last, why);
    return got;
}
