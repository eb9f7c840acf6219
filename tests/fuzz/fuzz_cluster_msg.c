/* fuzz_cluster_msg.c - libFuzzer target: messages a router decodes from the broker, without
 * one. Byte 0 picks the decoder, the rest is the message:
 *   0  a duplicate log (`rag.dup.<collection>`): messages separated by '\n', replayed in
 *      order into one collection's index (cdedup_index_replay); the last one as this
 *      router's own, whose verdicts must be well-formed;
 *   1  a request budget report (`rag.rate.requests`, cluster_keys_take_report) against an
 *      in-memory key set holding the bootstrap key;
 *   2  a collection's stored metadata value, then '\x01' and a settings PATCH merged into
 *      it (cluster_coll_from_json, cluster_coll_merge): a refusal must name the field;
 *   3  a shard query as a replica answers it (cluster_shard_query) from a real store
 *      (hash embedder of dimension 8, collection "fz" holding three documents): the reply
 *      must be a JSON object, its "error" (when refused) a message.
 * RAGFUZZ_WRITE_SEEDS=DIR writes a duplicate log made by the router's own claim encoding
 * (through a claim key computed by the library) to DIR and exits. */
#include "auth.h"
#include "cluster.h"
#include "cluster_support.h"
#include "dedup.h"
#include "keys.h"
#include "replica.h"
#include "settings.h"
#include "vector_b64.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int no_keys(void *user, auth_visit_fn visit, void *ctx)
{
    (void)user;
    (void)visit;
    (void)ctx;
    return RAG_OK;
}

static int keep_nothing(void *user, const char *id, const char *record)
{
    (void)user;
    (void)id;
    (void)record;
    return RAG_OK;
}

static srv_auth *auth;
static rag_db *db;
static cluster_coll coll;
static char store_dir[256];

static void close_store(void)
{
    rag_close(db);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", store_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_cluster_msg: cannot remove %s\n", store_dir);
}

/* The store of shard queries: collection "fz" with three documents. */
static void open_store(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(store_dir, sizeof store_dir, "%s/ragfuzz-shard.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(store_dir))
        abort();
    fuzz_cluster_store(store_dir, &db, &coll);
    atexit(close_store);
}

/* A claim message as cdedup_decide appends it ({"t","thr","claims":[{"id","h","n","s"}],
 * "release"}), the keys computed by the library from `texts`. */
static void write_claims(FILE *f, int64_t t, const char *const *ids, const char *const *texts,
                         size_t n, const char *release)
{
    fprintf(f, "{\"t\":%" PRId64 ",\"thr\":0.8,\"claims\":[", t);
    for (size_t i = 0; i < n; i++) {
        rag_dup_key k;
        if (rag_dup_key_compute(texts[i], strlen(texts[i]), &k) != RAG_OK)
            abort();
        fprintf(f, "%s{\"id\":\"%s\",\"h\":\"%016" PRIx64 "\",\"n\":%u,\"s\":\"",
                i ? "," : "", ids[i], k.hash, (unsigned)k.shingles);
        for (int p = 0; p < RAG_DUP_PERM; p++)
            fprintf(f, "%08" PRIx32, k.sig[p]);
        fputs("\"}", f);
    }
    fprintf(f, "],\"release\":[%s]}", release);
}

static void write_seeds(const char *dir)
{
    const char *ids[] = {"doc-a", "doc-b", "doc-c"};
    const char *texts[] = {"the quick brown fox jumps over the lazy dog near the river bank",
                           "the quick brown fox jumps over the lazy dog near the river bank",
                           "the quick brown fox jumps over the lazy cat near the river bank"};
    char path[512];
    snprintf(path, sizeof path, "%s/dup-log", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fputc(0, f);
    write_claims(f, 1700000000000, ids, texts, 1, "");
    fputc('\n', f);
    write_claims(f, 1700000000100, ids + 1, texts + 1, 2, "\"doc-x\"");
    if (fclose(f) != 0)
        abort();
    /* a stored metadata value as a router writes it at creation, and PATCHes of it */
    static const char *const patches[] = {"{\"ttl_seconds\":3600,\"dedup\":null}",
                                          "{\"language\":\"german\"}"};
    json_t *req = json_loads("{\"name\":\"fz\",\"shards\":2,\"embedder\":\"hash\",\"dim\":8,"
                             "\"settings\":{\"dedup\":\"skip\",\"near_dup_threshold\":0.9}}", 0,
                             NULL);
    cluster_coll c;
    char err[512];
    if (cluster_coll_from_json(req, NULL, &c, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_cluster_msg: seed collection refused: %s\n", err);
        abort();
    }
    json_decref(req);
    json_t *meta = cluster_coll_to_json(&c);
    char *text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    for (size_t i = 0; text && i < 2; i++) {
        snprintf(path, sizeof path, "%s/settings-%zu", dir, i);
        if (!(f = fopen(path, "wb")))
            abort();
        fprintf(f, "%c%s\x01%s", 2, text, patches[i]);
        if (fclose(f) != 0)
            abort();
    }
    free(text);
    json_decref(meta);
    float v[8] = {0.5f, -0.25f, 0, 1, 0, 0, 0.125f, 0};
    char *b64 = vector_b64_encode(v, 8);
    static const char *const queries[] = {
        "{\"query\":\"raft replica\",\"vector\":\"%s\",\"sides\":[\"dense\",\"lexical\"],"
        "\"k\":5,\"filter\":\"lang = \\\"en\\\"\",\"per_doc\":1,\"collapse_threshold\":2,"
        "\"now\":1700000000,\"min_seq\":0,\"wait_ms\":2000,\"vectors\":true}",
        "{\"query\":\"lexical search\",\"sides\":[\"lexical\"],\"k\":3,\"lexical_unit\":"
        "\"chunk\",\"bm25_stats\":{\"chunks\":10,\"total_len\":100,\"docs\":4,"
        "\"doc_total_len\":100,\"df\":{\"lexical\":2},\"doc_df\":{\"lexical\":1}}%s}",
        "{\"query\":\"raft\",\"bm25_stats_only\":true%s}",
        "{\"doc_exists\":\"doc-a\",\"min_seq\":0,\"wait_ms\":100%s}"};
    for (size_t i = 0; b64 && i < 4; i++) {
        snprintf(path, sizeof path, "%s/shard-query-%zu", dir, i);
        if (!(f = fopen(path, "wb")))
            abort();
        fputc(3, f);
        fprintf(f, queries[i], i ? "" : b64);
        if (fclose(f) != 0)
            abort();
    }
    free(b64);
    snprintf(path, sizeof path, "%s/rate-report", dir);
    if (!(f = fopen(path, "wb")))
        abort();
    fprintf(f, "%c{\"from\":\"4242-0011223344556677\",\"counts\":{\"bootstrap\":5,"
               "\"k-unknown\":2}}", 1);
    if (fclose(f) != 0)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *seeds = getenv("RAGFUZZ_WRITE_SEEDS");
    if (seeds) {
        write_seeds(seeds);
        exit(0);
    }
    open_store();
    auth_source src = {no_keys, keep_nothing, NULL};
    if (auth_open_source(&src, "fuzz-bootstrap-admin-key-0123456789", &auth) != RAG_OK)
        abort();
    return 0;
}

/* Whether id (when it needs no JSON escape) appears whole as a string in the log. */
static int claimed(const char *msg, size_t len, const char *id)
{
    char needle[RAG_DOC_ID_MAX + 4];
    size_t n = strlen(id);
    if (strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n ||
        n + 3 > sizeof needle)
        return 1;
    needle[0] = '"';
    memcpy(needle + 1, id, n);
    needle[n + 1] = '"';
    return memmem(msg, len, needle, n + 2) != NULL;
}

static void dup_log(const char *msg, size_t len)
{
    cdedup_index *x = cdedup_index_create("fz");
    if (!x)
        return;
    rag_dup_verdict v[4];
    uint64_t seq = 0;
    for (const char *p = msg, *end = msg + len; p <= end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        seq++;
        int mine = !nl;
        if (mine)
            memset(v, 0x5a, sizeof v);
        if (cdedup_index_replay(x, seq, p, (size_t)(stop - p), mine ? v : NULL,
                                mine ? 4 : 0) < 0)
            break; /* out of memory */
        for (size_t i = 0; mine && i < 4; i++) {
            if (v[i].kind == 0x5a5a5a5a)
                continue; /* no claim of this message gave it */
            if (v[i].kind < 0 || v[i].kind > 2 ||
                !memchr(v[i].canonical, '\0', sizeof v[i].canonical) ||
                (v[i].kind && (!v[i].canonical[0] || !(v[i].similarity > 0) ||
                               v[i].similarity > 1.0)))
                abort(); /* a verdict that is not one */
            if (v[i].kind && !claimed(msg, len, v[i].canonical))
                abort(); /* a canonical that no message claimed (cut short?) */
        }
        p = stop + 1;
    }
    cdedup_index_free(x);
}

static void settings(char *msg, size_t len)
{
    char *patch = memchr(msg, '\x01', len);
    if (patch)
        *patch++ = '\0';
    char err[512] = "";
    cluster_coll c;
    json_t *meta = json_loads(msg, 0, NULL);
    if (cluster_coll_from_json(meta, "fz", &c, err, sizeof err) < 0) {
        if (!err[0])
            abort(); /* refused without naming the field */
    } else if (c.shards < 1 || c.shards > CLUSTER_MAX_SHARDS || strcmp(c.name, "fz")) {
        abort();
    }
    json_decref(meta);
    json_t *p = patch ? json_loads(patch, 0, NULL) : NULL;
    if (json_is_object(p)) {
        err[0] = '\0';
        int st = cluster_coll_merge("fz", msg, p, &c, err, sizeof err);
        if ((st != 0 && st != 400 && st != 503) || (st && !err[0]))
            abort();
    }
    json_decref(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* settings read a NUL-terminated value, the others a length */
    char *msg = fuzz_cluster_message(data, size);
    if (!msg)
        return 0;
    switch (data[0] % 4) {
    case 0:
        dup_log(msg, size - 1);
        break;
    case 1: {
        int n = cluster_keys_take_report(auth, "router-self", 100, msg, size - 1);
        if (n < 0 || (size_t)n > size)
            abort();
        break;
    }
    case 2:
        settings(msg, size - 1);
        break;
    default: {
        size_t rlen = 0;
        char *reply = cluster_shard_query(db, &coll, msg, size - 1, &rlen);
        json_t *r = reply ? json_loadb(reply, rlen, 0, NULL) : NULL;
        json_t *e = json_object_get(r, "error");
        if (reply &&
            (!json_is_object(r) || (e && (!json_is_string(e) || !json_string_length(e)))))
            abort(); /* not a JSON object, or an error that says nothing */
        if (getenv("RAGFUZZ_VERBOSE"))
            fprintf(stderr, "shard query reply: %s\n", reply ? reply : "(none)");
        json_decref(r);
        free(reply);
    }
    }
    free(msg);
    return 0;
}
