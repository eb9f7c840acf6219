/* keys_cli.c - offline API-key management on a store (see keys_cli.h). */
#include "keys_cli.h"

#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "ragcore keys: %s\n", msg);
    fprintf(stderr,
            "usage: ragcore keys --db DIR list\n"
            "       ragcore keys --db DIR create NAME --scopes read,write,metrics,admin "
            "[--collections NAME,...|*]\n"
            "       ragcore keys --db DIR revoke ID\n"
            "       ragcore keys --server URL [--key KEY] list|create ...|revoke ID\n"
            "With --db (and --key-file PATH for an encrypted store), edits the store directly:\n"
            "create and revoke are refused while a\n"
            "running server holds the store (list works beside it). With --server, sends the\n"
            "action to the running server's /v1/keys endpoints (KEY, an admin key, defaults\n"
            "to $RAGCORE_API_KEY); the change applies to the next request at once.\n");
    return 1;
}

/* Splits a comma-separated list in place into out (at most max entries). */
static size_t split(char *s, const char **out, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
        if (*tok)
            out[n++] = tok;
    return n;
}

int keys_cli_main(int argc, char **argv)
{
    const char *db_dir = NULL, *action = NULL, *arg = NULL, *key_file = NULL;
    char *scopes = NULL, *collections = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db_dir = argv[++i];
        else if (!strcmp(argv[i], "--key-file") && i + 1 < argc)
            key_file = argv[++i];
        else if (!strcmp(argv[i], "--scopes") && i + 1 < argc)
            scopes = argv[++i];
        else if (!strcmp(argv[i], "--collections") && i + 1 < argc)
            collections = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(NULL) - 1;
        else if (argv[i][0] == '-')
            return usage("unknown or incomplete flag");
        else if (!action)
            action = argv[i];
        else if (!arg)
            arg = argv[i];
        else
            return usage("too many arguments");
    }
    if (!db_dir || !action)
        return usage("--db DIR and an action (list, create, revoke) are required");
    if (strcmp(action, "list") && !arg)
        return usage("create needs a NAME and revoke an ID");

    rag_db *db = NULL;
    srv_auth *auth = NULL;
    json_t *out = NULL;
    int code = 2;
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.read_only = !strcmp(action, "list"); /* listing works beside a running server */
    oo.store_key_file = key_file;
    int rc = rag_open(db_dir, &oo, &db);
    if (rc == RAG_EBUSY) {
        fprintf(stderr, "ragcore keys: %s; stop it first, or use --server URL to send the "
                "change to the running server\n", rag_errmsg());
        goto cleanup;
    }
    if (rc == RAG_OK)
        rc = auth_open(db, NULL, &auth);
    if (rc != RAG_OK) {
        fprintf(stderr, "ragcore keys: %s: %s: %s\n", db_dir, rag_strerror(rc), rag_errmsg());
        goto cleanup;
    }
    if (!strcmp(action, "list")) {
        out = json_pack("{s:o}", "keys", auth_list(auth));
    } else if (!strcmp(action, "revoke")) {
        rc = auth_revoke(auth, arg);
        if (rc != RAG_OK) {
            fprintf(stderr, "ragcore keys: revoke %s: %s\n", arg,
                    rc == RAG_ENOTFOUND ? "no such key" : rag_strerror(rc));
            goto cleanup;
        }
        out = json_pack("{s:s,s:b}", "id", arg, "revoked", 1);
    } else if (!strcmp(action, "create")) {
        const char *sc[8], *co[256];
        unsigned mask = 0;
        if (!scopes) {
            code = usage("create needs --scopes");
            goto cleanup;
        }
        size_t nsc = split(scopes, sc, 8);
        for (size_t i = 0; i < nsc; i++) {
            unsigned s = auth_scope_parse(sc[i]);
            if (!s) {
                fprintf(stderr, "ragcore keys: --scopes: unknown scope '%s' (read, write, "
                                "metrics, admin)\n", sc[i]);
                code = 1;
                goto cleanup;
            }
            mask |= s;
        }
        size_t nco = collections ? split(collections, co, 256) : 0;
        if (!nco && !(mask & SCOPE_ADMIN)) {
            code = usage("create needs --collections (names, or * for all)");
            goto cleanup;
        }
        char *secret = NULL;
        json_t *record = NULL;
        rc = auth_create(auth, arg, mask, co, nco, &secret, &record);
        if (rc != RAG_OK) {
            fprintf(stderr, "ragcore keys: create: %s: %s\n", rag_strerror(rc), rag_errmsg());
            goto cleanup;
        }
        json_object_set_new(record, "key", json_string(secret));
        free(secret);
        out = record;
    } else {
        code = usage("unknown action");
        goto cleanup;
    }
    char *text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text)
        printf("%s\n", text);
    free(text);
    code = 0;
cleanup:
    json_decref(out);
    auth_close(auth);
    rag_close(db);
    return code;
}
