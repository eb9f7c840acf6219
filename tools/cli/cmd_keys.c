/* cmd_keys.c - `ragcore keys`: creates, lists and revokes API keys of a store (runs
 * `ragcore-server keys`, which owns the key format). */
#include "cli.h"
#include "server_exec.h"

int cmd_keys(int argc, char **argv);

int cmd_keys(int argc, char **argv)
{
    return cli_exec_server(argv[0], "keys", argc, argv);
}
