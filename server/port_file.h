/* port_file.h - the port file a server process writes once it listens (for scripts that
 * start it on port 0), shared by the single-node server and the cluster roles. */
#ifndef SERVER_PORT_FILE_H
#define SERVER_PORT_FILE_H

/* Writes "PORT\n" to path atomically (a temporary file renamed over it), so a reader never
 * sees a partial number. 0, or -1 with errno set. */
int port_file_write(const char *path, int port);

#endif
