/* fuzz_http_target.c - libFuzzer target: request targets, checked and decoded before
 * routing (server/target.c), then routed by the server running in-process on a real store
 * (as fuzz_http: hash embedder, collection "docs" with documents d0..d2, admin key
 * "fuzz-admin-key"). Input: "METHOD TARGET", split at the first space (without one: GET,
 * and the whole input is the target). Asserts:
 *   - target_decode: a decoded path holds no control byte, is valid UTF-8 and no longer
 *     than the raw path, and percent-encoding it again decodes to the same path; a
 *     refusal says why;
 *   - target_escape writes printable ASCII that unescapes to the raw bytes;
 *   - sent as "METHOD TARGET HTTP/1.1" with the admin key: well-formed answers
 *     (fuzz_check_responses), and 400 invalid_target exactly when target_decode refuses
 *     the target;
 *   - nothing is done but what the decoded path names: "docs" loses documents only on
 *     DELETE /v1/collections/docs/documents/..., and is dropped only on
 *     DELETE /v1/collections/docs ("%00" once cut those paths short), where the path
 *     may also be the one libmicrohttpd routes once blanks around the target are skipped.
 * Seeds (corpus/fuzz_http_target/) hold the NUL cases. */
#include "http_support.h"
#include "server.h"
#include "target.h"
#include "utf8.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_KEY "fuzz-admin-key"
/* Longer targets may meet libmicrohttpd's own limits (414, 431) before the server. */
#define MAX_CHECKED_TARGET 4000

static srv S;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_target_name = "fuzz_http_target";
    fuzz_server_start(&S, ADMIN_KEY, NULL);
    return 0;
}

/* The decoder's own promises on raw[0..len). Returns its verdict (RAG_OK or not) and the
 * decoded path in *path (NULL when refused). */
static int check_decoder(const char *raw, size_t len, char **path)
{
    char err[256] = "", again_err[256];
    int rc = target_decode(raw, len, path, err, sizeof err);
    if (rc != RAG_OK) {
        if (!*err || *path)
            fuzz_die("a refusal without a reason, or with a path", err);
        return rc;
    }
    const char *q = memchr(raw, '?', len);
    size_t n = strlen(*path);
    if (n > (q ? (size_t)(q - raw) : len))
        fuzz_die("decoded path longer than the raw path", *path);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)(*path)[i] < 0x20 || (*path)[i] == 0x7F)
            fuzz_die("control byte in a decoded path", *path);
    if (n && utf8_valid_prefix(*path, n) < n)
        fuzz_die("decoded path is not UTF-8", *path);
    /* encoded again (all but unreserved bytes and '/'), it decodes to itself */
    char *enc = malloc(n * 3 + 1), *back = NULL;
    size_t m = 0;
    if (!enc)
        fuzz_die("malloc", "out of memory");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(*path)[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '/')
            enc[m++] = (char)c;
        else
            m += (size_t)snprintf(enc + m, 4, "%%%02X", c);
    }
    if (m == 0) /* an empty target is refused: compare through "/" */
        enc[m++] = '/';
    if (target_decode(enc, m, &back, again_err, sizeof again_err) != RAG_OK ||
        strcmp(back, n ? *path : "/") != 0)
        fuzz_die("re-encoded path does not decode to itself", enc);
    free(enc);
    free(back);
    return rc;
}

/* target_escape's text is printable ASCII and unescapes to raw[0..len). */
static void check_escape(const char *raw, size_t len)
{
    char *e = target_escape(raw, len);
    size_t j = 0;
    if (!e)
        fuzz_die("target_escape", "out of memory");
    for (const char *p = e; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7F)
            fuzz_die("target_escape wrote a byte that is not printable ASCII", e);
        unsigned v = c;
        if (c == '\\') {
            if (sscanf(p, "\\x%2X", &v) != 1)
                fuzz_die("target_escape wrote a bare backslash", e);
            p += 3;
        }
        if (j >= len || (unsigned char)raw[j++] != v)
            fuzz_die("target_escape does not unescape to the raw bytes", e);
    }
    if (j != len)
        fuzz_die("target_escape dropped bytes", e);
    free(e);
}

/* Whether decoded path p is `want` (exact: also `want` + "/") or starts with it. */
static int names_path(const char *p, const char *want, int exact)
{
    size_t n = strlen(want);
    if (!p || strncmp(p, want, n))
        return 0;
    return !exact || !p[n] || (p[n] == '/' && !p[n + 1]);
}

/* Whether collection "docs" exists; its document count and creation time. */
static int docs_state(uint64_t *documents, int64_t *created)
{
    rag_collection_info in;
    if (rag_collection_stats(S.db, "docs", &in) != RAG_OK)
        return 0;
    *documents = in.documents;
    *created = in.created_at;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *sp = memchr(in, ' ', size);
    const char *method = "GET", *target = in;
    size_t mlen = 3, tlen = size;
    if (sp) {
        method = in;
        mlen = (size_t)(sp - in);
        target = sp + 1;
        tlen = size - mlen - 1;
    }
    check_escape(target, tlen);
    char *path = NULL;
    int verdict = check_decoder(target, tlen, &path);

    static const char TAIL[] = " HTTP/1.1\r\nHost: f\r\nX-API-Key: " ADMIN_KEY
                               "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    size_t len = mlen + 1 + tlen + sizeof TAIL - 1, got = 0;
    char *req = malloc(len + 1); /* NUL-terminated for fuzz_die's message */
    if (!req)
        fuzz_die("malloc", "out of memory");
    memcpy(req, method, mlen);
    req[mlen] = ' ';
    memcpy(req + mlen + 1, target, tlen);
    memcpy(req + mlen + 1 + tlen, TAIL, sizeof TAIL - 1);
    req[len] = '\0';
    uint64_t docs_before = 0, docs_after = 0;
    int64_t created_before = 0, created_after = 0;
    int had = docs_state(&docs_before, &created_before);
    char *resp = fuzz_exchange(&S, (const uint8_t *)req, len, &got);
    int has = docs_state(&docs_after, &created_after);
    if (resp)
        fuzz_check_responses(resp, got);

    /* The request line reached the server as built: one method, one target. */
    int plain = mlen > 0 && tlen > 0 && tlen <= MAX_CHECKED_TARGET &&
                !memchr(method, '\0', mlen) && !memchr(method, '\r', mlen) &&
                !memchr(method, '\n', mlen) && !memchr(target, ' ', tlen) &&
                !memchr(target, '\r', tlen) && !memchr(target, '\n', tlen);
    if (plain && resp) {
        int status = 0;
        const char *body = strstr(resp, "\r\n\r\n");
        json_t *j = body ? json_loads(body + 4, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
        const char *code =
            json_string_value(json_object_get(json_object_get(j, "error"), "code"));
        int head = mlen == 4 && !memcmp(method, "HEAD", 4); /* an answer without a body */
        int refused = sscanf(resp, "HTTP/1.%*d %d", &status) == 1 && status == 400 &&
                      (code ? !strcmp(code, "invalid_target") : head);
        json_decref(j);
        if (refused != (verdict != RAG_OK))
            fuzz_die(refused ? "a target the decoder accepts was refused"
                             : "a target the decoder refuses was routed",
                     resp);
    }
    int is_delete = mlen == 6 && !memcmp(method, "DELETE", 6);
    /* libmicrohttpd skips blanks around the target of a request line ("DELETE  /x"): the
     * server routes what is left, so that is what a request names too. */
    char *served = NULL;
    size_t lead = 0, end = tlen;
    while (lead < end && (target[lead] == ' ' || target[lead] == '\t'))
        lead++;
    while (end > lead && (target[end - 1] == ' ' || target[end - 1] == '\t'))
        end--;
    if (lead || end < tlen) {
        char ignored[256];
        if (target_decode(target + lead, end - lead, &served, ignored, sizeof ignored) != RAG_OK)
            served = NULL;
    }
    /* the router tolerates one trailing '/' after a full match */
    int names_docs = names_path(path, "/v1/collections/docs", 1) ||
                     names_path(served, "/v1/collections/docs", 1);
    int names_doc = names_path(path, "/v1/collections/docs/documents/", 0) ||
                    names_path(served, "/v1/collections/docs/documents/", 0);
    if (had && (!has || created_after != created_before) && !(is_delete && names_docs))
        fuzz_die("collection docs was dropped by a request that did not name it", req);
    if (had && has && created_after == created_before && docs_after < docs_before &&
        !(is_delete && names_doc))
        fuzz_die("a document of docs was deleted by a request that did not name one", req);
    free(resp);
    free(req);
    free(path);
    free(served);
    if (fuzz_bound_state(&S) != RAG_OK)
        fuzz_die("re-seed documents", rag_errmsg());
    return 0;
}
