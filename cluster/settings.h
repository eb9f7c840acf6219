/* settings.h - changing a clustered collection's settings (PATCH): the fields given merged
 * into the metadata bucket's value with a compare-and-set on its revision, so that two
 * routers changing the same collection at once both land or one is told (409). */
#ifndef CLUSTER_SETTINGS_H
#define CLUSTER_SETTINGS_H

#include "cluster.h"

#include <jansson.h>

/* How many times a PATCH that lost the compare-and-set is re-applied to the newer value
 * before the router answers 409. */
#define CLUSTER_PATCH_ATTEMPTS 8
/* How long after its write a PATCH reads the value back (see cluster_coll_patch). */
#define CLUSTER_PATCH_VERIFY_MS 50

/* Applies `patch` (a CollectionSettings object: the fields given change, null ones and the
 * others keep their values; "language" cannot change) to collection `name`'s settings and
 * stores the result only if nobody changed the value since it was read; when somebody did,
 * reads again and re-applies, up to CLUSTER_PATCH_ATTEMPTS times (*conflicts counts the
 * retries). A stored write is read back after CLUSTER_PATCH_VERIFY_MS and applied again
 * when another write replaced its fields (brokers before NATS 2.9.21 may accept two
 * updates against one revision). Returns the HTTP status: 200 (*out holds the new metadata), 400 (err names the
 * field), 404 (no such collection), 409 (still losing after every attempt), 503 (broker). */
int cluster_coll_patch(clog *l, const char *name, json_t *patch, cluster_coll *out,
                       int *conflicts, char *err, size_t errlen);

/* The stored metadata `text` (the metadata bucket's value, NUL-terminated) with `patch`
 * merged into its settings, checked as at creation: 0 and *next; 503 with err when the
 * stored value cannot be read, 400 with err naming the field the patch got wrong.
 * (cluster_coll_patch's merge, callable without a broker.) */
int cluster_coll_merge(const char *name, const char *text, json_t *patch, cluster_coll *next,
                       char *err, size_t errlen);
#endif
