/* http_client.c - JSON requests to a running ragcore-server with libcurl (--server). */
#include "http_client.h"

#include "cli.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A write to the server may queue behind an ingest on its writer thread. */
#define HTTP_TIMEOUT_S 300L
#define HTTP_CONNECT_TIMEOUT_S 10L

/* cli_http_init with the key required or not. */
static int http_init(cli_http *h, const char *cmd, const char *url, const char *key,
                     int key_required)
{
    memset(h, 0, sizeof *h);
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        cli_error(cmd, "--server needs an http:// or https:// URL, got '%s'", url);
        return -1;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    if (n >= sizeof h->base) {
        cli_error(cmd, "--server URL is too long (%zu bytes)", n);
        return -1;
    }
    memcpy(h->base, url, n);
    h->base[n] = '\0';
    h->key = key && *key ? key : getenv("RAGCORE_API_KEY");
    if (h->key && !*h->key)
        h->key = NULL;
    if (!h->key && key_required) {
        cli_error(cmd, "--server needs an API key: --key KEY or RAGCORE_API_KEY");
        return -1;
    }
    h->timeout_s = HTTP_TIMEOUT_S;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

int cli_http_init(cli_http *h, const char *cmd, const char *url, const char *key)
{
    return http_init(h, cmd, url, key, 1);
}

int cli_http_init_keyless(cli_http *h, const char *cmd, const char *url, const char *key)
{
    return http_init(h, cmd, url, key, 0);
}

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
    buf *b = user;
    size_t add = size * n;
    char *q = realloc(b->p, b->n + add + 1);
    if (!q)
        return 0; /* curl reports a write error */
    memcpy(q + b->n, p, add);
    b->p = q;
    b->n += add;
    b->p[b->n] = '\0';
    return add;
}

int cli_http_json(const cli_http *h, const char *method, const char *path, json_t *body,
                  json_t **reply, long *status, char *err, size_t errlen)
{
    char url[4096], auth[1100];
    char *text = NULL;
    buf b = {NULL, 0};
    struct curl_slist *hdr = NULL;
    long code = 0;
    int rc = -1;
    if (reply)
        *reply = NULL;
    if (status)
        *status = 0;
    snprintf(url, sizeof url, "%s%s", h->base, path);
    CURL *c = curl_easy_init();
    if (!c || (body && !(text = json_dumps(body, JSON_COMPACT)))) {
        snprintf(err, errlen, "%s %s: out of memory", method, url);
        goto cleanup;
    }
    if (h->key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->key);
        hdr = curl_slist_append(hdr, auth);
    }
    if (text)
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, h->timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, HTTP_CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (text)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    CURLcode crc = curl_easy_perform(c);
    if (crc != CURLE_OK) {
        snprintf(err, errlen, "%s %s: %s", method, url, curl_easy_strerror(crc));
        goto cleanup;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (status)
        *status = code;
    json_error_t jerr;
    json_t *j = b.n ? json_loadb(b.p, b.n, 0, &jerr) : NULL;
    if (code < 200 || code > 299) {
        const char *msg = json_string_value(
            json_object_get(json_object_get(j, "error"), "message"));
        snprintf(err, errlen, "%s %s: %ld %s", method, url, code,
                 msg ? msg : b.n ? b.p : "(no message)");
        json_decref(j);
        goto cleanup;
    }
    if (b.n && !j) {
        snprintf(err, errlen, "%s %s: the reply is not JSON: %s", method, url, jerr.text);
        goto cleanup;
    }
    if (reply)
        *reply = j;
    else
        json_decref(j);
    rc = 0;
cleanup:
    curl_slist_free_all(hdr);
    if (c)
        curl_easy_cleanup(c);
    free(text);
    free(b.p);
    return rc;
}

char *cli_http_escape(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = c ? curl_easy_escape(c, s, (int)strlen(s)) : NULL;
    char *out = e ? strdup(e) : NULL;
    curl_free(e);
    if (c)
        curl_easy_cleanup(c);
    return out;
}
