/* fuzz_http.c - libFuzzer target: raw HTTP bytes (request line, headers, body; pipelined
 * requests allowed) sent over loopback to the server's HTTP layer (server/http.c,
 * routes.c, reqjson.c, auth.c) running in-process on a real store (hash embedder,
 * collection "docs" holding a few documents; admin key "fuzz-admin-key"). Each input must
 * be answered by well-formed HTTP responses, or the connection closed, never by a 5xx
 * other than 503 (libmicrohttpd's own 501/505 for unsupported methods or versions
 * aside); every JSON response of the server must parse, and an error carries a code. */
#include "http_support.h"
#include "server.h"

#include <stdint.h>
#include <stdlib.h>

#define ADMIN_KEY "fuzz-admin-key"

static srv S;

static void bound_state(void)
{
    if (fuzz_bound_state(&S) != RAG_OK)
        fuzz_die("re-seed documents", rag_errmsg());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const EXTRA[] = {"--max-body", "262144", NULL};
    (void)argc;
    (void)argv;
    fuzz_target_name = "fuzz_http";
    fuzz_server_start(&S, ADMIN_KEY, EXTRA);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = 0;
    char *buf = fuzz_exchange(&S, data, size, &len);
    if (buf)
        fuzz_check_responses(buf, len);
    free(buf);
    bound_state();
    return 0;
}
