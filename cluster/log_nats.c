/* log_nats.c - the cluster log (log.h) on NATS JetStream: one file stream per (collection,
 * shard) with replicas and a de-duplication window, ordered consumers as readers, a
 * JetStream key-value bucket for collection metadata. */
#include "log.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct clog {
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    int64_t max_msgs, max_age_s; /* retention of the logs clog_ensure creates; 0: none */
    void *rpc;                   /* rpc.c's state, freed by rpc_free */
    void (*rpc_free)(void *);
};

struct clog_kv {
    jsCtx *js;                   /* the connection's, borrowed */
    kvStore *kv;
    kvWatcher *w;
};

struct clog_reader {
    natsSubscription *sub;
    natsMsg *msg;                /* the message handed out last */
};

static int fail(char *err, size_t errlen, const char *what, natsStatus s, jsErrCode jerr)
{
    const char *last = nats_GetLastError(NULL);
    snprintf(err, errlen, "%s: %s%s%s (jetstream error %d)", what, natsStatus_GetText(s),
             last && *last ? ": " : "", last ? last : "", (int)jerr);
    return -1;
}

/* shard -1: the collection's duplicate log (dedup.h); CLOG_DUPSNAP: its snapshots. */
static void stream_name(const char *coll, int shard, char *buf, size_t n)
{
    if (shard == CLOG_DUPSNAP)
        snprintf(buf, n, "RAG_%s_dupsnap", coll);
    else if (shard < 0)
        snprintf(buf, n, "RAG_%s_dup", coll);
    else
        snprintf(buf, n, "RAG_%s_%d", coll, shard);
}

static void subject_name(const char *coll, int shard, char *buf, size_t n)
{
    if (shard == CLOG_DUPSNAP)
        snprintf(buf, n, "rag.dupsnap.%s", coll);
    else if (shard < 0)
        snprintf(buf, n, "rag.dup.%s", coll);
    else
        snprintf(buf, n, "rag.log.%s.%d", coll, shard);
}

/* Opens key-value bucket `bucket`, creating it (one value per key) when absent. */
static natsStatus bucket_open(jsCtx *js, const char *bucket, int replicas, kvStore **kv)
{
    natsStatus s = js_KeyValue(kv, js, bucket);
    if (s != NATS_OK) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = bucket;
        kc.Replicas = replicas;
        kc.History = 1;
        s = js_CreateKeyValue(kv, js, &kc);
        if (s != NATS_OK) /* another process created it first */
            s = js_KeyValue(kv, js, bucket);
    }
    return s;
}

int clog_connect(const char *const *urls, size_t n, const char *name, const char *bucket,
                 int replicas, clog **out, char *err, size_t errlen)
{
    *out = NULL;
    natsOptions *o = NULL;
    clog *l = calloc(1, sizeof *l);
    natsStatus s = l ? natsOptions_Create(&o) : NATS_NO_MEMORY;
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)urls, (int)n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK)
        s = natsConnection_Connect(&l->nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        free(l);
        return fail(err, errlen, "connect to NATS", s, 0);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    s = natsConnection_JetStream(&l->js, l->nc, &jo);
    if (s == NATS_OK)
        s = bucket_open(l->js, bucket, replicas, &l->kv);
    if (s != NATS_OK) {
        fail(err, errlen, "JetStream metadata bucket", s, 0);
        clog_close(l);
        return -1;
    }
    *out = l;
    return 0;
}

void clog_close(clog *l)
{
    if (!l)
        return;
    if (l->rpc_free)
        l->rpc_free(l->rpc);
    kvStore_Destroy(l->kv);
    jsCtx_Destroy(l->js);
    natsConnection_Destroy(l->nc);
    free(l);
}

int clog_connected(clog *l)
{
    return natsConnection_Status(l->nc) == NATS_CONN_STATUS_CONNECTED;
}

void *clog_connection(clog *l)
{
    return l->nc;
}

void *clog_rpc_state(clog *l)
{
    return l->rpc;
}

void clog_set_rpc_state(clog *l, void *state, void (*free_fn)(void *))
{
    l->rpc = state;
    l->rpc_free = free_fn;
}

int clog_ensure(clog *l, const char *coll, int shard, int replicas, int dedup_s, char *err,
                size_t errlen)
{
    char name[300], subj[300];
    stream_name(coll, shard, name, sizeof name);
    subject_name(coll, shard, subj, sizeof subj);
    const char *subjects[1] = {subj};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas;
    cfg.Duplicates = (int64_t)dedup_s * 1000000000LL;
    /* retention never trims a duplicate log or its snapshots: a router rebuilds from them
     * (compaction, not retention, bounds them) */
    if (l->max_msgs > 0 && shard >= 0)
        cfg.MaxMsgs = l->max_msgs;
    if (l->max_age_s > 0 && shard >= 0)
        cfg.MaxAge = l->max_age_s * 1000000000LL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, l->js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK && jerr != JSStreamNameExistErr)
        return fail(err, errlen, name, s, jerr);
    return 0;
}

int clog_append(clog *l, const char *coll, int shard, const char *msg_id, const void *data,
                size_t len, int timeout_ms, uint64_t *seq, int *dup, char *err, size_t errlen)
{
    char subj[300];
    subject_name(coll, shard, subj, sizeof subj);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.MaxWait = timeout_ms;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, l->js, subj, data, (int)len, &po, &jerr);
    if (s != NATS_OK)
        return fail(err, errlen, subj, s, jerr);
    *seq = pa->Sequence;
    *dup = pa->Duplicate;
    jsPubAck_Destroy(pa);
    return 0;
}

int clog_get(clog *l, const char *coll, int shard, uint64_t seq, void **data, size_t *len,
             char *err, size_t errlen)
{
    char name[300];
    stream_name(coll, shard, name, sizeof name);
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    *data = NULL;
    *len = 0;
    natsStatus s = js_GetMsg(&m, l->js, name, seq, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return 0;
    if (s != NATS_OK)
        return fail(err, errlen, name, s, jerr);
    int n = natsMsg_GetDataLength(m);
    *data = malloc(n > 0 ? (size_t)n : 1);
    if (*data && n > 0)
        memcpy(*data, natsMsg_GetData(m), (size_t)n);
    natsMsg_Destroy(m);
    if (!*data) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    *len = (size_t)n;
    return 1;
}

int clog_purge_below(clog *l, const char *coll, int shard, uint64_t below, char *err,
                     size_t errlen)
{
    char name[300];
    stream_name(coll, shard, name, sizeof name);
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Purge.Sequence = below;
    jsErrCode jerr = 0;
    natsStatus s = js_PurgeStream(l->js, name, &o, &jerr);
    return s == NATS_OK ? 0 : fail(err, errlen, name, s, jerr);
}

void clog_set_retention(clog *l, int64_t max_msgs, int64_t max_age_s)
{
    l->max_msgs = max_msgs;
    l->max_age_s = max_age_s;
}

/* The first and last sequences the stream of (coll, shard) holds. */
static int stream_range(clog *l, const char *coll, int shard, uint64_t *first, uint64_t *last,
                        char *err, size_t errlen)
{
    char name[300];
    stream_name(coll, shard, name, sizeof name);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, l->js, name, NULL, &jerr);
    if (s != NATS_OK)
        return fail(err, errlen, name, s, jerr);
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

int clog_last(clog *l, const char *coll, int shard, uint64_t *last, char *err, size_t errlen)
{
    uint64_t first;
    return stream_range(l, coll, shard, &first, last, err, errlen);
}

int clog_first(clog *l, const char *coll, int shard, uint64_t *first, char *err, size_t errlen)
{
    uint64_t last;
    return stream_range(l, coll, shard, first, &last, err, errlen);
}

int clog_reader_open(clog *l, const char *coll, int shard, uint64_t from, clog_reader **out,
                     char *err, size_t errlen)
{
    char subj[300];
    subject_name(coll, shard, subj, sizeof subj);
    clog_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = from;
    jsErrCode jerr = 0;
    natsStatus s = js_SubscribeSync(&r->sub, l->js, subj, NULL, &so, &jerr);
    if (s != NATS_OK) {
        free(r);
        return fail(err, errlen, subj, s, jerr);
    }
    *out = r;
    return 0;
}

int clog_reader_next(clog_reader *r, int timeout_ms, const void **data, size_t *len,
                     uint64_t *seq, uint64_t *pending, char *err, size_t errlen)
{
    natsMsg_Destroy(r->msg);
    r->msg = NULL;
    natsStatus s = natsSubscription_NextMsg(&r->msg, r->sub, timeout_ms);
    if (s == NATS_TIMEOUT)
        return 0;
    if (s != NATS_OK)
        return fail(err, errlen, "log reader", s, 0);
    jsMsgMetaData *meta = NULL;
    s = natsMsg_GetMetaData(&meta, r->msg);
    if (s != NATS_OK)
        return fail(err, errlen, "log message metadata", s, 0);
    *seq = meta->Sequence.Stream;
    *pending = meta->NumPending;
    jsMsgMetaData_Destroy(meta);
    *data = natsMsg_GetData(r->msg);
    *len = (size_t)natsMsg_GetDataLength(r->msg);
    return 1;
}

void clog_reader_close(clog_reader *r)
{
    if (!r)
        return;
    natsMsg_Destroy(r->msg);
    natsSubscription_Unsubscribe(r->sub);
    natsSubscription_Destroy(r->sub);
    free(r);
}

int clog_meta_create(clog *l, const char *key, const char *json, int *exists, char *err,
                     size_t errlen)
{
    uint64_t rev = 0;
    *exists = 0;
    natsStatus s = kvStore_CreateString(&rev, l->kv, key, json);
    if (s == NATS_OK)
        return 0;
    kvEntry *e = NULL;
    if (kvStore_Get(&e, l->kv, key) == NATS_OK) {
        kvEntry_Destroy(e);
        *exists = 1;
    }
    return fail(err, errlen, key, s, 0);
}

/* A key's value (*json NULL when absent or deleted) and revision, read from the bucket
 * stream's leader (kvStore_Get may be answered by a follower still behind a write just
 * acknowledged: a revoked key or a changed setting must not come back). */
static int bucket_get(jsCtx *js, kvStore *kv, const char *key, char **json, uint64_t *rev,
                      char *err, size_t errlen)
{
    char stream[300], subject[600];
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    const char *op = NULL;
    *json = NULL;
    *rev = 0;
    snprintf(stream, sizeof stream, "KV_%s", kvStore_Bucket(kv));
    snprintf(subject, sizeof subject, "$KV.%s.%s", kvStore_Bucket(kv), key);
    natsStatus s = js_GetLastMsg(&m, js, stream, subject, NULL, &jerr);
    if (s == NATS_NOT_FOUND)
        return 0;
    if (s != NATS_OK)
        return fail(err, errlen, key, s, jerr);
    if (natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op &&
        (!strcmp(op, "DEL") || !strcmp(op, "PURGE"))) {
        natsMsg_Destroy(m);
        return 0;
    }
    *rev = natsMsg_GetSequence(m);
    int len = natsMsg_GetDataLength(m);
    *json = malloc((size_t)len + 1);
    if (*json) {
        memcpy(*json, natsMsg_GetData(m), (size_t)len);
        (*json)[len] = '\0';
    }
    natsMsg_Destroy(m);
    if (!*json) {
        snprintf(err, errlen, "%s: out of memory", key);
        return -1;
    }
    return 0;
}

int clog_meta_get(clog *l, const char *key, char **json, char *err, size_t errlen)
{
    uint64_t rev;
    return bucket_get(l->js, l->kv, key, json, &rev, err, errlen);
}

int clog_meta_get_rev(clog *l, const char *key, char **json, uint64_t *rev, char *err,
                      size_t errlen)
{
    return bucket_get(l->js, l->kv, key, json, rev, err, errlen);
}

int clog_meta_update(clog *l, const char *key, const char *json, uint64_t rev, int *conflict,
                     char *err, size_t errlen)
{
    uint64_t now = 0;
    *conflict = 0;
    natsStatus s = kvStore_UpdateString(&now, l->kv, key, json, rev);
    if (s == NATS_OK)
        return 0;
    /* the bucket's stream refuses a write whose expected last revision is not the key's
     * ("wrong last sequence"); a read served by a lagging follower may still show rev */
    fail(err, errlen, key, s, 0);
    uint64_t cur = 0;
    char *text = NULL, e2[64];
    if (strstr(err, "wrong last sequence") ||
        (bucket_get(l->js, l->kv, key, &text, &cur, e2, sizeof e2) == 0 && cur != rev))
        *conflict = 1;
    free(text);
    return -1;
}

static int bucket_keys(kvStore *kv, char ***keys, size_t *n, char *err, size_t errlen)
{
    kvKeysList list = {0};
    *keys = NULL;
    *n = 0;
    natsStatus s = kvStore_Keys(&list, kv, NULL);
    if (s == NATS_NOT_FOUND)
        return 0; /* an empty bucket */
    if (s != NATS_OK)
        return fail(err, errlen, "bucket keys", s, 0);
    size_t count = (size_t)list.Count;
    char **k = calloc(count + 1, sizeof *k);
    for (size_t i = 0; k && i < count; i++)
        k[i] = strdup(list.Keys[i]);
    kvKeysList_Destroy(&list);
    if (!k)
        return -1;
    *keys = k;
    *n = count;
    return 0;
}

int clog_meta_keys(clog *l, char ***keys, size_t *n, char *err, size_t errlen)
{
    return bucket_keys(l->kv, keys, n, err, errlen);
}

int clog_kv_open(clog *l, const char *bucket, int replicas, clog_kv **out, char *err,
                 size_t errlen)
{
    clog_kv *kv = calloc(1, sizeof *kv);
    natsStatus s = kv ? bucket_open(l->js, bucket, replicas, &kv->kv) : NATS_NO_MEMORY;
    if (kv)
        kv->js = l->js;
    if (s == NATS_OK)
        s = kvStore_WatchAll(&kv->w, kv->kv, NULL);
    *out = NULL;
    if (s != NATS_OK) {
        clog_kv_close(kv);
        return fail(err, errlen, bucket, s, 0);
    }
    *out = kv;
    return 0;
}

void clog_kv_close(clog_kv *kv)
{
    if (!kv)
        return;
    kvWatcher_Destroy(kv->w);
    kvStore_Destroy(kv->kv);
    free(kv);
}

int clog_kv_put(clog_kv *kv, const char *key, const char *value, char *err, size_t errlen)
{
    uint64_t rev = 0;
    natsStatus s = kvStore_PutString(&rev, kv->kv, key, value);
    return s == NATS_OK ? 0 : fail(err, errlen, key, s, 0);
}

int clog_kv_get(clog_kv *kv, const char *key, char **value, char *err, size_t errlen)
{
    uint64_t rev;
    return bucket_get(kv->js, kv->kv, key, value, &rev, err, errlen);
}

int clog_kv_keys(clog_kv *kv, char ***keys, size_t *n, char *err, size_t errlen)
{
    return bucket_keys(kv->kv, keys, n, err, errlen);
}

int clog_kv_wait(clog_kv *kv, int timeout_ms, char *err, size_t errlen)
{
    int changed = 0;
    kvEntry *e = NULL;
    /* the first wait blocks; then take every change already delivered, without waiting */
    for (int64_t t = timeout_ms;; t = 1) {
        natsStatus s = kvWatcher_Next(&e, kv->w, t);
        if (s == NATS_TIMEOUT)
            return changed;
        if (s != NATS_OK)
            return fail(err, errlen, "key-value watch", s, 0);
        /* NULL: the end of the values the watch started with; they count as a change */
        changed = 1;
        kvEntry_Destroy(e);
        e = NULL;
    }
}
