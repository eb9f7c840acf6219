/* stubs_pending.c - weak fallbacks for subcommands whose modules are not built in. */
#include "cli.h"

__attribute__((weak)) int cmd_model(int argc, char **argv)
{
    (void)argc;
    cli_error(argv[0], "not available in this build");
    return CLI_USAGE;
}

__attribute__((weak)) int cmd_embed(int argc, char **argv)
{
    (void)argc;
    cli_error(argv[0], "not available in this build");
    return CLI_USAGE;
}

__attribute__((weak)) int cmd_serve(int argc, char **argv)
{
    (void)argc;
    cli_error(argv[0], "not available in this build");
    return CLI_USAGE;
}
