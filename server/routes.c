/* routes.c - the router generated from route_table.h: matching a path against the
 * declared patterns, 404 and 405, readiness and authorisation checks, then the handler. */
#include "routes.h"

#include "handlers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARAMS 4

static const route_def TABLE[] = {
#define ROUTE_ROW_(id, method, pattern, scope, handler, flags, request, status, response,     \
                   params, summary, description)                                           \
    {id,      method,  pattern, scope,   handler,     flags,      request,                 \
     status,  response, params, summary, description, #handler + 2},
    SRV_ROUTE_TABLE(ROUTE_ROW_)
#undef ROUTE_ROW_
};
#define NROUTES (sizeof TABLE / sizeof TABLE[0])

const route_def *route_table(size_t *n)
{
    *n = NROUTES;
    return TABLE;
}

/* ---- names ----------------------------------------------------------------------------- */

static pthread_once_t names_once = PTHREAD_ONCE_INIT;
static char name_buf[ROUTE_COUNT][96];
static const char *names[ROUTE_COUNT];

/* "METHOD pattern" with a rest-of-path placeholder's '+' left out. */
static void build_names(void)
{
    names[ROUTE_OTHER] = "ANY other";
    for (size_t i = 0; i < NROUTES; i++) {
        char *out = name_buf[TABLE[i].id];
        size_t n = (size_t)snprintf(out, sizeof name_buf[0], "%s ", TABLE[i].method);
        for (const char *p = TABLE[i].pattern; *p && n + 1 < sizeof name_buf[0]; p++)
            if (!(*p == '+' && p[1] == '}'))
                out[n++] = *p;
        out[n] = '\0';
        names[TABLE[i].id] = out;
    }
}

const char *route_name(int id)
{
    pthread_once(&names_once, build_names);
    return id > 0 && id < ROUTE_COUNT ? names[id] : names[ROUTE_OTHER];
}

const char *const *route_names(void)
{
    pthread_once(&names_once, build_names);
    return names;
}

/* ---- matching -------------------------------------------------------------------------- */

/* Matches `path` against `pattern`: literal bytes match themselves, {name} one non-empty
 * segment, a last {name+} the non-empty rest of the path. One trailing '/' after a full
 * match is tolerated. The placeholders' values are copied, NUL-terminated, into buf (as
 * long as path) and pointed to by params (in order); *idx_collection receives the index
 * of {collection} (-1 when absent). Returns the number of placeholders, or -1 when the
 * path does not match. */
static int match_pattern(const char *pattern, const char *path, char *buf,
                         const char **params, int *idx_collection)
{
    const char *p = pattern, *q = path;
    int n = 0;
    *idx_collection = -1;
    while (*p) {
        if (*p != '{') {
            if (*p++ != *q++)
                return -1;
            continue;
        }
        const char *close = strchr(p, '}');
        int rest = close[-1] == '+';
        size_t len = rest ? strlen(q) : strcspn(q, "/");
        if (len == 0 || n == MAX_PARAMS)
            return -1;
        if (!strncmp(p, "{collection}", 12))
            *idx_collection = n;
        memcpy(buf, q, len);
        buf[len] = '\0';
        params[n++] = buf;
        buf += len + 1;
        q += len;
        p = close + 1;
    }
    if (*q == '\0' || (q[0] == '/' && q[1] == '\0' && q > path + 1))
        return n;
    return -1;
}

static void method_not_allowed(http_req *r, const char *allow)
{
    http_error(r, 405, "method_not_allowed", NULL, "%s is not allowed on %s (allowed: %s)",
               r->method, r->path, allow);
    r->hdr_name = "Allow";
    snprintf(r->hdr_value, sizeof r->hdr_value, "%s", allow);
}

void routes_dispatch(http_req *r)
{
    const char *params[MAX_PARAMS] = {NULL};
    char allow[64] = "";
    const route_def *hit = NULL;
    int idx_coll = -1;
    char *buf = malloc(strlen(r->path) + MAX_PARAMS + 1);
    char *tmp = malloc(strlen(r->path) + MAX_PARAMS + 1);
    r->route = ROUTE_OTHER;
    if (!buf || !tmp) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < NROUTES; i++) {
        const char *tp[MAX_PARAMS];
        int ic;
        int is_method = !strcmp(r->method, TABLE[i].method);
        if (match_pattern(TABLE[i].pattern, r->path, is_method && !hit ? buf : tmp,
                          is_method && !hit ? params : tp, &ic) < 0)
            continue;
        if (is_method && !hit) {
            hit = &TABLE[i];
            idx_coll = ic;
        }
        if (!strstr(allow, TABLE[i].method) && strlen(allow) + 10 < sizeof allow)
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                     *allow ? ", " : "", TABLE[i].method);
    }
    if (!hit) {
        if (*allow)
            method_not_allowed(r, allow);
        else
            http_error(r, 404, "not_found", NULL, "no route for %s %s", r->method, r->path);
        goto cleanup;
    }
    r->route = hit->id;
    if ((hit->flags & ROUTE_F_STORE) && !atomic_load(&r->s->ready)) {
        if (atomic_load(&r->s->draining))
            http_error(r, 503, "draining", NULL, "the server is shutting down");
        else
            http_error(r, 503, "not_ready", NULL, "the store is still opening; retry shortly");
        r->hdr_name = "Retry-After";
        snprintf(r->hdr_value, sizeof r->hdr_value, "1");
        goto cleanup;
    }
    if (hit->scope != ROUTE_PUBLIC && hit->scope != ROUTE_SELF &&
        authorize(r, hit->scope, idx_coll >= 0 ? params[idx_coll] : NULL) < 0)
        goto cleanup;
    hit->handler(r, params);
cleanup:
    free(buf);
    free(tmp);
}
