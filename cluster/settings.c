/* settings.c - PATCH of a clustered collection's settings: merged into the metadata value
 * and stored with a compare-and-set on the value's revision, re-applied when it lost. */
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cluster_coll_merge(const char *name, const char *text, json_t *patch, cluster_coll *next,
                       char *err, size_t errlen)
{
    cluster_coll cur;
    json_t *meta = json_loads(text, 0, NULL), *settings = NULL, *v;
    const char *key;
    int status = 503;
    if (cluster_coll_from_json(meta, name, &cur, err, errlen) < 0)
        goto cleanup; /* a stored value the router cannot read */
    status = 400;
    json_t *lang = json_object_get(patch, "language");
    if (lang && !json_is_null(lang) &&
        (!json_is_string(lang) || strcmp(json_string_value(lang), cur.language))) {
        snprintf(err, errlen, "settings: language: the language of collection '%s' is '%s' "
                 "and cannot change", name, cur.language);
        goto cleanup;
    }
    settings = json_object_get(meta, "settings");
    settings = json_is_object(settings) ? json_deep_copy(settings) : json_object();
    json_object_foreach(patch, key, v) {
        if (!json_is_null(v))
            json_object_set(settings, key, v);
    }
    /* a setting's name checked, typed and in range by the library, as at creation */
    json_object_set(meta, "settings", settings);
    if (cluster_coll_from_json(meta, name, next, err, errlen) < 0)
        goto cleanup;
    /* the duplicate log holds the claims of the documents written under the creation's
     * setting only: turning detection on later would miss every document stored before,
     * and a new threshold would not find the candidates claimed under the old one */
    if (next->policy.dedup != cur.policy.dedup ||
        next->policy.near_dup_threshold != cur.policy.near_dup_threshold) {
        snprintf(err, errlen, "settings: %s: duplicate detection of clustered collection '%s' "
                 "is chosen at creation and cannot change", next->policy.dedup !=
                 cur.policy.dedup ? "dedup" : "near_dup_threshold", name);
        goto cleanup;
    }
    status = 0;
cleanup:
    json_decref(settings);
    json_decref(meta);
    return status;
}

/* 1 when the stored settings still hold what `written` set for every field of `patch`
 * (aliases, absent in the written value, are not compared); 0 when another write replaced
 * one; -1 when the value cannot be read. */
static int patch_kept(clog *l, const char *name, json_t *patch, json_t *written)
{
    char *text = NULL, err[256];
    uint64_t rev = 0;
    int kept = -1;
    if (clog_meta_get_rev(l, name, &text, &rev, err, sizeof err) < 0 || !text)
        return -1;
    json_t *cur = json_loads(text, 0, NULL);
    free(text);
    json_t *now = json_object_get(cur, "settings"), *mine = json_object_get(written, "settings"),
           *v;
    const char *key;
    if (json_is_object(now) && json_is_object(mine)) {
        kept = 1;
        json_object_foreach(patch, key, v) {
            json_t *w = json_object_get(mine, key);
            if (!json_is_null(v) && w && !json_equal(w, json_object_get(now, key)))
                kept = 0;
        }
    }
    json_decref(cur);
    return kept;
}

int cluster_coll_patch(clog *l, const char *name, json_t *patch, cluster_coll *out,
                       int *conflicts, char *err, size_t errlen)
{
    *conflicts = 0;
    if (!json_is_object(patch)) {
        snprintf(err, errlen, "the request body must be a CollectionSettings object");
        return 400;
    }
    for (int attempt = 0; attempt < CLUSTER_PATCH_ATTEMPTS; attempt++) {
        char *text = NULL, *next_text = NULL;
        uint64_t rev = 0;
        int conflict = 0, status;
        if (clog_meta_get_rev(l, name, &text, &rev, err, errlen) < 0)
            return 503;
        if (!text) {
            snprintf(err, errlen, "collection '%s' does not exist in the cluster", name);
            return 404;
        }
        status = cluster_coll_merge(name, text, patch, out, err, errlen);
        free(text);
        if (status != 0)
            return status;
        json_t *j = cluster_coll_to_json(out);
        next_text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (!next_text) {
            json_decref(j);
            snprintf(err, errlen, "out of memory");
            return 503;
        }
        int rc = clog_meta_update(l, name, next_text, rev, &conflict, err, errlen);
        free(next_text);
        if (rc == 0) {
            /* A broker before NATS 2.9.21 checks the expected revision of a replicated
             * bucket before its consensus round, not in it: two updates sent within a few
             * milliseconds against the same revision may both be accepted, the later one
             * replacing the earlier. So the write is read back once a concurrent one has
             * landed, and the patch applied again when its fields were replaced. */
            cluster_sleep_ms(CLUSTER_PATCH_VERIFY_MS);
            int kept = patch_kept(l, name, patch, j);
            json_decref(j);
            if (kept != 0)
                return 200;
            (*conflicts)++;
            continue;
        }
        json_decref(j);
        if (!conflict)
            return 503;
        (*conflicts)++; /* another router wrote first: apply the patch to its value */
    }
    snprintf(err, errlen, "the settings of collection '%s' changed %d times while this "
             "request applied its own; send it again", name, CLUSTER_PATCH_ATTEMPTS);
    return 409;
}
