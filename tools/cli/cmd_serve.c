/* cmd_serve.c - `ragcore serve` and `ragcore cluster`: run ragcore-server (installed next
 * to ragcore) with the same arguments. */
#include "cli.h"
#include "server_exec.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_exec_server(const char *cmd, const char *first, int argc, char **argv)
{
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        cli_error(cmd, "cannot locate the ragcore binary: /proc/self/exe: %s", strerror(errno));
        return CLI_DATA;
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(path, sizeof path, "%s/ragcore-server", slash ? self : ".");
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) {
        cli_error(cmd, "out of memory");
        return CLI_DATA;
    }
    int k = 0;
    args[k++] = path;
    if (first)
        args[k++] = (char *)first;
    for (int i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execv(path, args);
    cli_error(cmd, "cannot run %s: %s (is ragcore-server installed next to ragcore?)", path,
              strerror(errno));
    free(args);
    return CLI_DATA;
}

int cmd_serve(int argc, char **argv)
{
    return cli_exec_server(argv[0], NULL, argc, argv);
}

int cmd_cluster(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "keys")) /* through the routers' /v1/keys */
        return cmd_cluster_keys(argc - 1, argv + 1);
    return cli_exec_server(argv[0], "cluster", argc, argv);
}
