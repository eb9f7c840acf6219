/* server_exec.h - running the ragcore-server binary that sits next to the ragcore binary
 * (used by `ragcore serve` and `ragcore keys`). */
#ifndef RAG_CLI_SERVER_EXEC_H
#define RAG_CLI_SERVER_EXEC_H

/* Replaces the process with <dir of /proc/self/exe>/ragcore-server, passing `first` (may
 * be NULL) and then argv[1..argc-1]. Returns only on failure: CLI_DATA after printing
 * why, naming the path it tried. `cmd` names the subcommand in messages. */
int cli_exec_server(const char *cmd, const char *first, int argc, char **argv);

#endif
