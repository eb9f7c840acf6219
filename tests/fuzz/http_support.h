/* http_support.h - what the fuzz_http* targets share: the seed collection, the bound on
 * what fuzz inputs may add to the store, a loopback client and the checks of its answers. */
#ifndef FUZZ_HTTP_SUPPORT_H
#define FUZZ_HTTP_SUPPORT_H

#include "server.h"

#include <stddef.h>
#include <stdint.h>

/* The target's name in fuzz_die's reports ("fuzz_http" until set). */
extern const char *fuzz_target_name;

/* Reports a failed check and aborts (libFuzzer saves the input). The summary also goes to
 * the sanitizer's report stream, which survives -close_fd_mask=2 (run.sh uses it to drop
 * libmicrohttpd's warnings). */
void fuzz_die(const char *what, const char *detail) __attribute__((noreturn));

/* Sends data[0..size) on a new loopback connection to the server s listens for, and reads
 * until the server closes, or has answered and is idle (half-closing the connection when
 * nothing comes, so an incomplete request ends). Returns the bytes received (malloc'd,
 * NUL-terminated, *len of them) or NULL when none. Aborts when the server neither answers
 * nor closes within 8 s. */
char *fuzz_exchange(srv *s, const uint8_t *data, size_t size, size_t *len);

/* Checks that buf[0..n) is a sequence of well-formed responses: HTTP/1.x status lines,
 * terminated headers, bodies of their Content-Length; no 5xx but 503 (libmicrohttpd's own
 * 501/505 aside); every JSON body of the server parses and an error carries error.code.
 * Aborts with the offending bytes otherwise. */
void fuzz_check_responses(const char *buf, size_t n);

/* Creates collection "docs" (when absent) holding documents d0, d1, d2 (Markdown and
 * text, with source, title and metadata). Returns RAG_OK or the failing status. */
int fuzz_seed_docs(rag_db *db);

/* Opens the store of s->cfg (embedder and dimension from the config), the key table with
 * bootstrap key `admin_key`, the query log and the writer thread, and seeds "docs", as
 * the server's main() does. NULL on success, else the name of the step that failed
 * (rag_errmsg() tells why). */
const char *fuzz_server_open(srv *s, const char *admin_key);

/* Starts the server in-process as the socket targets run it: a new store under $TMPDIR,
 * hash embedder of dimension 64, two event loops on a free loopback port, idle timeout 5 s,
 * access log off, then the flags in `extra` (NULL-terminated, may be NULL); bootstrap
 * admin key `admin_key`; "docs" seeded; ready. Aborts on failure. */
void fuzz_server_start(srv *s, const char *admin_key, const char *const *extra);

/* Keeps the state inputs may grow bounded, so a long run neither fills the disk nor slows
 * down: re-seeds "docs" when dropped or past 2,000 chunks, drops other collections past
 * 16, revokes added keys past 32. Returns the status of a re-seed (RAG_OK otherwise). */
int fuzz_bound_state(srv *s);

#endif
