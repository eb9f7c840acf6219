/* cmd_keys.c - `ragcore keys`: creates, lists and revokes API keys, in a store (runs
 * `ragcore-server keys`, which owns the key format) or through a running server's /v1/keys
 * endpoints (--server URL). */
#include "cli.h"
#include "http_client.h"
#include "server_exec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_keys(int argc, char **argv);

static int remote_usage(const char *msg)
{
    if (msg)
        cli_error("keys", "%s", msg);
    fprintf(stderr, "usage: ragcore keys --server URL [--key KEY] list\n"
                    "       ragcore keys --server URL [--key KEY] create NAME --scopes "
                    "read,write,admin [--collections NAME,...|*]\n"
                    "       ragcore keys --server URL [--key KEY] revoke ID\n\n" CLI_HTTP_USAGE);
    return CLI_USAGE;
}

/* A JSON array of the comma-separated items of s (empty items skipped). */
static json_t *split_json(const char *s)
{
    json_t *a = json_array();
    const char *p = s;
    while (a && p && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p = comma ? comma + 1 : NULL;
    }
    return a;
}

/* `ragcore keys --server URL ...`: the same actions and output as the local command,
 * through GET/POST /v1/keys and DELETE /v1/keys/{id} (an admin key is needed). */
static int keys_remote(int argc, char **argv)
{
    const char *url = NULL, *key = NULL, *action = NULL, *arg = NULL;
    const char *scopes = NULL, *collections = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--server") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else if (!strcmp(argv[i], "--scopes") && i + 1 < argc)
            scopes = argv[++i];
        else if (!strcmp(argv[i], "--collections") && i + 1 < argc)
            collections = argv[++i];
        else if (!strcmp(argv[i], "--db"))
            return remote_usage("give --db DIR or --server URL, not both");
        else if (argv[i][0] == '-')
            return remote_usage("unknown or incomplete flag");
        else if (!action)
            action = argv[i];
        else if (!arg)
            arg = argv[i];
        else
            return remote_usage("too many arguments");
    }
    if (!action)
        return remote_usage("an action (list, create, revoke) is required");
    if (strcmp(action, "list") && !arg)
        return remote_usage("create needs a NAME and revoke an ID");
    if (strcmp(action, "create") && (scopes || collections))
        return remote_usage("--scopes and --collections apply to create only");
    cli_http h;
    if (!url || cli_http_init(&h, "keys", url, key) != 0)
        return CLI_USAGE;
    json_t *body = NULL, *reply = NULL;
    char path[1024], err[2048];
    const char *method = "GET";
    int code = CLI_DATA;
    if (!strcmp(action, "list")) {
        snprintf(path, sizeof path, "/v1/keys");
    } else if (!strcmp(action, "revoke")) {
        char *id = cli_http_escape(arg);
        if (!id) {
            cli_error("keys", "out of memory");
            return CLI_DATA;
        }
        snprintf(path, sizeof path, "/v1/keys/%s", id);
        free(id);
        method = "DELETE";
    } else if (!strcmp(action, "create")) {
        if (!scopes)
            return remote_usage("create needs --scopes");
        body = json_pack("{s:s,s:o}", "name", arg, "scopes", split_json(scopes));
        if (body && collections)
            json_object_set_new(body, "collections", split_json(collections));
        snprintf(path, sizeof path, "/v1/keys");
        method = "POST";
    } else {
        return remote_usage("unknown action");
    }
    if (cli_http_json(&h, method, path, body, &reply, NULL, err, sizeof err) != 0) {
        cli_error("keys", "%s", err);
        goto cleanup;
    }
    char *text = json_dumps(reply, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text)
        printf("%s\n", text);
    free(text);
    code = CLI_OK;
cleanup:
    json_decref(body);
    json_decref(reply);
    return code;
}

int cmd_keys(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--server"))
            return keys_remote(argc, argv);
    return cli_exec_server(argv[0], "keys", argc, argv);
}
