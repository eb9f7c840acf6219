/* handlers.c - what the request handlers share: authorisation, error mapping, collection
 * checks, query parameters, deferred-write jobs. */
#include "handlers.h"

#include "log.h"
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int authorize(http_req *r, unsigned scope, const char *collection)
{
    if (!r->key) {
        const char *presented = http_header(r, "X-API-Key");
        const char *authz = http_header(r, "Authorization");
        if (authz && !strncasecmp(authz, "Bearer ", 7)) {
            presented = authz + 7;
            while (*presented == ' ')
                presented++;
        }
        if (!presented || !*presented) {
            http_error(r, 401, "unauthorized", NULL,
                       "an API key is required (Authorization: Bearer KEY or X-API-Key: KEY)");
            r->hdr_name = "WWW-Authenticate";
            snprintf(r->hdr_value, sizeof r->hdr_value, "Bearer");
            return -1;
        }
        r->key = auth_check(r->s->auth, presented);
        if (!r->key) {
            http_error(r, 401, "unauthorized", NULL, "unknown or revoked API key");
            r->hdr_name = "WWW-Authenticate";
            snprintf(r->hdr_value, sizeof r->hdr_value, "Bearer error=\"invalid_token\"");
            return -1;
        }
        if (ratelimit_request(r) < 0)
            return -1;
    }
    if (!auth_allows(r->key, scope, NULL)) {
        http_error(r, 403, "forbidden", NULL, "API key '%s' lacks the '%s' scope",
                   auth_key_id(r->key),
                   scope == SCOPE_ADMIN     ? "admin"
                   : scope == SCOPE_WRITE   ? "write"
                   : scope == SCOPE_METRICS ? "metrics"
                                            : "read");
        return -1;
    }
    if (collection && !auth_allows(r->key, scope, collection)) {
        http_error(r, 403, "forbidden", NULL, "API key '%s' is not granted collection '%s'",
                   auth_key_id(r->key), collection);
        return -1;
    }
    return 0;
}

/* Answers a failed library call with the status its code calls for. `field` names the
 * request field an EINVAL-like code is about (may be NULL). */
void reply_rag_error(http_req *r, int rc, const char *field, const char *what)
{
    const char *msg = rag_errmsg();
    if (!msg || !*msg)
        msg = rag_strerror(rc);
    switch (rc) {
    case RAG_EINVAL:
    case RAG_EPARSE:
    case RAG_EENCODING:
        http_error(r, 400, "invalid_field", field, "%s: %s", what, msg);
        break;
    case RAG_ENOTFOUND:
        http_error(r, 404, "not_found", NULL, "%s: %s", what, msg);
        break;
    case RAG_EEXIST:
        http_error(r, 409, "already_exists", field, "%s: %s", what, msg);
        break;
    case RAG_EREADONLY:
        http_error(r, 403, "read_only", NULL, "%s: the store is open read-only", what);
        break;
    case RAG_EFULL:
        http_error(r, 507, "store_full", NULL, "%s: %s", what, msg);
        break;
    default:
        log_msg("error", "internal", "%s: %s (%s)", what, msg, rag_strerror(rc));
        http_error(r, 500, "internal", NULL, "%s: %s (%s)", what, msg, rag_strerror(rc));
        break;
    }
}

/* 404 unless collection c exists; fills info when not NULL. 0 or -1 (answered). */
int require_collection(http_req *r, const char *c, rag_collection_info *info)
{
    rag_collection_info tmp;
    int rc = rag_collection_stats(r->s->db, c, info ? info : &tmp);
    if (rc == RAG_ENOTFOUND) {
        http_error(r, 404, "not_found", NULL, "collection '%s' does not exist", c);
        return -1;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "collection stats");
        return -1;
    }
    return 0;
}

int valid_collection_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

int query_long(http_req *r, const char *name, long long min, long long max,
                      long long *out)
{
    const char *v = http_query(r, name);
    char *end;
    if (!v)
        return 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < min || x > max) {
        http_error(r, 400, "invalid_field", name, "query parameter '%s' must be an integer in "
                   "%lld..%lld", name, min, max);
        return -1;
    }
    *out = x;
    return 1;
}

void name_job_free(void *p)
{
    name_job *j = p;
    if (!j)
        return;
    free(j->name);
    free(j->id);
    free(j->extra);
    free(j);
}

name_job *name_job_new(http_req *r, const char *name, const char *id)
{
    name_job *j = calloc(1, sizeof *j);
    if (!j || !(j->name = strdup(name)) || (id && !(j->id = strdup(id)))) {
        name_job_free(j);
        http_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    return j;
}

json_t *metadata_value(const char *text)
{
    json_t *v = text && *text ? json_loads(text, 0, NULL) : NULL;
    return v ? v : json_object();
}
