/* http_client.h - JSON over HTTP to a running ragcore-server, for commands that send their
 * change to the server that holds the store (`--server URL --key KEY`) instead of opening
 * it: bearer key, timeouts, and errors that name the request's URL and the server's own
 * message. */
#ifndef RAG_CLI_HTTP_CLIENT_H
#define RAG_CLI_HTTP_CLIENT_H

#include <jansson.h>
#include <stddef.h>

typedef struct cli_http {
    char base[1024];         /* the server's URL without a trailing '/' */
    const char *key;         /* API key, sent as "Authorization: Bearer KEY" (borrowed);
                              * NULL: no Authorization header (a keyless client) */
    long timeout_s;          /* limit of a whole request; connecting takes at most 10 s */
} cli_http;

/* Help lines for the options, to be printed by a command's usage. */
#define CLI_HTTP_USAGE                                                                     \
    "  --server URL   send the change to the running ragcore-server at URL (e.g.\n"          \
    "                 http://127.0.0.1:8080) instead of opening the store: use it while\n"   \
    "                 the server holds the store\n"                                          \
    "  --key KEY      API key for --server (default: $RAGCORE_API_KEY)\n"

/* Sets up h for the server at `url` with API key `key` (NULL: $RAGCORE_API_KEY). -1, after
 * printing "ragcore <cmd>: ..." naming what is wrong, when the URL is not http(s)://... or
 * no key is given. */
int cli_http_init(cli_http *h, const char *cmd, const char *url, const char *key);

/* As cli_http_init for servers that may take requests without a key (a cluster's routers):
 * with neither `key` nor $RAGCORE_API_KEY the client sends no Authorization header. */
int cli_http_init_keyless(cli_http *h, const char *cmd, const char *url, const char *key);

/* Sends `method` to the server's base URL + `path` (its segments already escaped with
 * cli_http_escape) with `body` as JSON (NULL: no body) and reads the reply.
 * Returns 0 when the server answered 2xx; *reply (may be NULL) then receives the parsed
 * JSON reply (NULL when it is empty), to be freed with json_decref. Otherwise returns -1,
 * sets *status (may be NULL) to the HTTP status (0 when no reply came) and writes to
 * err (NUL-terminated) "METHOD URL: STATUS the server's error message", or
 * "METHOD URL: the transfer error". */
int cli_http_json(const cli_http *h, const char *method, const char *path, json_t *body,
                  json_t **reply, long *status, char *err, size_t errlen);

/* `s` percent-encoded as one URL path segment ('/' too); malloc'd, NULL when out of memory. */
char *cli_http_escape(const char *s);

#endif
