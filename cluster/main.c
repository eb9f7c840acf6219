/* main.c - `ragcore-server cluster ROLE`: the router and replica roles and `status`, which
 * prints every shard's log position, its replicas' sequences, lag and digests. */
#include "cluster.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_status(json_t *st)
{
    const char *name;
    json_t *c;
    json_object_foreach(json_object_get(st, "collections"), name, c)
    {
        json_t *meta = json_object_get(c, "meta");
        printf("collection %s: %lld shards, embedder %s (%lld), index %s\n", name,
               (long long)json_integer_value(json_object_get(meta, "shards")),
               json_string_value(json_object_get(meta, "embedder")),
               (long long)json_integer_value(json_object_get(meta, "dim")),
               json_string_value(json_object_get(meta, "index_spec")));
        size_t i;
        json_t *sh;
        json_array_foreach(json_object_get(c, "shards"), i, sh)
        {
            json_t *last = json_object_get(sh, "log_last");
            char at[32];
            if (json_is_integer(last))
                snprintf(at, sizeof at, "%lld", (long long)json_integer_value(last));
            else
                snprintf(at, sizeof at, "(unreachable)");
            printf("  shard %lld: log at %s%s\n",
                   (long long)json_integer_value(json_object_get(sh, "shard")), at,
                   json_is_true(json_object_get(sh, "diverged")) ? "  DIVERGED" : "");
            size_t k;
            json_t *rep;
            json_array_foreach(json_object_get(sh, "replicas"), k, rep)
            {
                json_t *d = json_object_get(rep, "digest");
                printf("    %-20s seq %-8lld lag %-6lld %s digest %s@%lld (%lld documents)\n",
                       json_string_value(json_object_get(rep, "replica")),
                       (long long)json_integer_value(json_object_get(rep, "seq")),
                       (long long)json_integer_value(json_object_get(rep, "lag")),
                       json_is_true(json_object_get(rep, "in_queue_group")) ? "serving"
                                                                            : "out    ",
                       d ? json_string_value(json_object_get(d, "hash")) : "-",
                       (long long)json_integer_value(json_object_get(d, "seq")),
                       (long long)json_integer_value(json_object_get(d, "documents")));
            }
        }
    }
}

int cluster_status_main(int argc, char **argv)
{
    const char *config = NULL;
    int as_json = 0, wait_ms = 500;
    static const struct option opts[] = {{"config", 1, 0, 'c'}, {"json", 0, 0, 'j'},
                                         {"wait-ms", 1, 0, 'w'}, {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            config = optarg;
        else if (c == 'j')
            as_json = 1;
        else if (c == 'w')
            wait_ms = atoi(optarg);
        else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: ragcore cluster status --config FILE [--json] [--wait-ms N]\n");
            return c == 'h' ? 0 : 1;
        }
    }
    if (!config) {
        fprintf(stderr, "ragcore cluster status: --config FILE is required\n");
        return 1;
    }
    cluster_config cfg;
    char err[1024];
    clog *l = NULL;
    if (cluster_config_load(config, &cfg, err, sizeof err) < 0 ||
        cluster_connect(&cfg, "ragcore-status", &l, err, sizeof err) < 0) {
        fprintf(stderr, "ragcore cluster status: %s\n", err);
        cluster_config_free(&cfg);
        return 2;
    }
    json_t *st = cluster_gather_status(l, wait_ms);
    if (as_json) {
        char *text = json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", text ? text : "{}");
        free(text);
    } else {
        print_status(st);
    }
    json_decref(st);
    clog_close(l);
    cluster_config_free(&cfg);
    return 0;
}

int cluster_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: ragcore-server cluster router|replica|status [options]\n"
                "  router   stateless HTTP API: writes to the shard logs, fans queries out\n"
                "  replica  hosts shard stores, applies their logs, serves their queries\n"
                "  status   shards, replicas, sequences, lag and digests\n");
        return argc < 2 ? 1 : 0;
    }
    const char *role = argv[1];
    if (!strcmp(role, "router"))
        return cluster_router_main(argc - 1, argv + 1);
    if (!strcmp(role, "replica"))
        return cluster_replica_main(argc - 1, argv + 1);
    if (!strcmp(role, "status"))
        return cluster_status_main(argc - 1, argv + 1);
    fprintf(stderr, "ragcore-server cluster: unknown role '%s' (router, replica, status)\n", role);
    return 1;
}
