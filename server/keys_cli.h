/* keys_cli.h - `ragcore-server keys ...` (and `ragcore keys`): offline management of the
 * API keys stored in a store, for bootstrapping and for stopped servers. */
#ifndef SRV_KEYS_CLI_H
#define SRV_KEYS_CLI_H

/* argv[0] is "keys". Usage:
 *   keys --db DIR list
 *   keys --db DIR create NAME --scopes read,write[,admin] [--collections a,b|*]
 *   keys --db DIR revoke ID
 * Prints JSON to stdout; returns the process exit code (0, 1 usage, 2 failure). */
int keys_cli_main(int argc, char **argv);

#endif
