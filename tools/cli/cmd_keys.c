/* cmd_keys.c - `ragcore keys`: creates, lists and revokes API keys, in a store (runs
 * `ragcore-server keys`, which owns the key format) or through a running server's /v1/keys
 * endpoints (--server URL); `ragcore cluster keys` does the same through a cluster's
 * routers (--router URL). */
#include "cli.h"
#include "http_client.h"
#include "server_exec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_keys(int argc, char **argv);

/* Where the remote key commands send their requests: a server or a cluster's router. */
typedef struct keys_target {
    const char *cmd;  /* "keys" or "cluster keys", for usage and messages */
    const char *flag; /* "--server" or "--router" */
} keys_target;

static const keys_target SERVER_TARGET = {"keys", "--server"};
static const keys_target ROUTER_TARGET = {"cluster keys", "--router"};

static int remote_usage(const keys_target *t, const char *msg)
{
    if (msg)
        cli_error(t->cmd, "%s", msg);
    fprintf(stderr, "usage: ragcore %s %s URL [--key KEY] list\n"
                    "       ragcore %s %s URL [--key KEY] create NAME --scopes "
                    "read,write,admin [--collections NAME,...|*]\n"
                    "       ragcore %s %s URL [--key KEY] revoke ID\n\n",
            t->cmd, t->flag, t->cmd, t->flag, t->cmd, t->flag);
    if (t == &ROUTER_TARGET)
        fprintf(stderr, "  --router URL   a router of the cluster (or the load balancer in front\n"
                        "                 of them), e.g. http://127.0.0.1:8080; a key created or\n"
                        "                 revoked there reaches every router within 5 s\n"
                        "  --key KEY      an admin API key of the cluster (default:\n"
                        "                 $RAGCORE_API_KEY)\n");
    else
        fputs(CLI_HTTP_USAGE, stderr);
    return CLI_USAGE;
}

/* A hint for a refused key request: what the HTTP status means for the --key given. */
static const char *status_hint(long status)
{
    return status == 401   ? " (the --key is unknown or revoked there)"
           : status == 403 ? " (the --key is not an admin key)"
           : status == 0   ? " (is the URL right and the server running?)"
                           : "";
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

/* `ragcore keys --server URL ...` (and `ragcore cluster keys --router URL ...`): the same
 * actions and output as the local command, through GET/POST /v1/keys and DELETE
 * /v1/keys/{id} (an admin key is needed). Errors name the request's URL, the status and
 * the server's message. */
static int keys_remote(const keys_target *t, int argc, char **argv)
{
    const char *url = NULL, *key = NULL, *action = NULL, *arg = NULL;
    const char *scopes = NULL, *collections = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], t->flag) && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else if (!strcmp(argv[i], "--scopes") && i + 1 < argc)
            scopes = argv[++i];
        else if (!strcmp(argv[i], "--collections") && i + 1 < argc)
            collections = argv[++i];
        else if (t == &SERVER_TARGET && !strcmp(argv[i], "--db"))
            return remote_usage(t, "give --db DIR or --server URL, not both");
        else if (argv[i][0] == '-')
            return remote_usage(t, "unknown or incomplete flag");
        else if (!action)
            action = argv[i];
        else if (!arg)
            arg = argv[i];
        else
            return remote_usage(t, "too many arguments");
    }
    if (!action)
        return remote_usage(t, "an action (list, create, revoke) is required");
    if (strcmp(action, "list") && !arg)
        return remote_usage(t, "create needs a NAME and revoke an ID");
    if (strcmp(action, "create") && (scopes || collections))
        return remote_usage(t, "--scopes and --collections apply to create only");
    cli_http h;
    if (!url)
        return remote_usage(t, t == &ROUTER_TARGET ? "--router URL is required"
                                                   : "--server URL is required");
    if (cli_http_init(&h, t->cmd, url, key) != 0)
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
            cli_error(t->cmd, "out of memory");
            return CLI_DATA;
        }
        snprintf(path, sizeof path, "/v1/keys/%s", id);
        free(id);
        method = "DELETE";
    } else if (!strcmp(action, "create")) {
        if (!scopes)
            return remote_usage(t, "create needs --scopes");
        body = json_pack("{s:s,s:o}", "name", arg, "scopes", split_json(scopes));
        if (body && collections)
            json_object_set_new(body, "collections", split_json(collections));
        snprintf(path, sizeof path, "/v1/keys");
        method = "POST";
    } else {
        return remote_usage(t, "unknown action");
    }
    long status = 0;
    if (cli_http_json(&h, method, path, body, &reply, &status, err, sizeof err) != 0) {
        cli_error(t->cmd, "%s%s", err, status_hint(status));
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
            return keys_remote(&SERVER_TARGET, argc, argv);
    return cli_exec_server(argv[0], "keys", argc, argv);
}

int cmd_cluster_keys(int argc, char **argv)
{
    return keys_remote(&ROUTER_TARGET, argc, argv);
}
