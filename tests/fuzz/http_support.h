/* http_support.h - state shared by the fuzz_http* targets: the seed collection and the
 * bound on what fuzz inputs may add to the store. */
#ifndef FUZZ_HTTP_SUPPORT_H
#define FUZZ_HTTP_SUPPORT_H

#include "server.h"

/* Creates collection "docs" (when absent) holding documents d0, d1, d2 (Markdown and
 * text, with source, title and metadata). Returns RAG_OK or the failing status. */
int fuzz_seed_docs(rag_db *db);

/* Opens the store of s->cfg (embedder and dimension from the config), the key table with
 * bootstrap key `admin_key`, the query log and the writer thread, and seeds "docs", as
 * the server's main() does. NULL on success, else the name of the step that failed
 * (rag_errmsg() tells why). */
const char *fuzz_server_open(srv *s, const char *admin_key);

/* Keeps the state inputs may grow bounded, so a long run neither fills the disk nor slows
 * down: re-seeds "docs" when dropped or past 2,000 chunks, drops other collections past
 * 16, revokes added keys past 32. Returns the status of a re-seed (RAG_OK otherwise). */
int fuzz_bound_state(srv *s);

#endif
