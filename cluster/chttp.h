/* chttp.h - the small HTTP front of the cluster roles (router API, replica health and
 * metrics): whole bodies, one handler call per request, JSON replies. */
#ifndef CLUSTER_CHTTP_H
#define CLUSTER_CHTTP_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>

typedef struct chttp chttp;

/* What a handler answers: status, body (malloc'd, NUL-terminated, freed by chttp), content
 * type (static; NULL: application/json) and Retry-After. */
typedef struct chttp_reply {
    int status;
    char *body;
    const char *ctype;
    long retry_after;        /* > 0: a Retry-After header of this many seconds (429) */
} chttp_reply;

/* Called on a pool thread for each request (body NUL-terminated, len bytes). api_key is
 * the key the request presents (Authorization: Bearer KEY, else X-API-Key: KEY), NULL
 * when none; valid during the call. */
typedef void (*chttp_handler)(void *user, const char *method, const char *path,
                              const char *api_key, const char *body, size_t len,
                              chttp_reply *out);

/* Listens on HOST:PORT (port 0: any) with `threads` threads. -1 with a message. */
int chttp_start(const char *listen, int threads, chttp_handler h, void *user, chttp **out,
                char *err, size_t errlen);
int chttp_port(chttp *h);
void chttp_stop(chttp *h);

/* Sets the reply to body (reference stolen) as JSON. */
void chttp_json(chttp_reply *r, int status, json_t *body);
/* Sets {"error":{"code","message"}}. */
void chttp_error(chttp_reply *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
