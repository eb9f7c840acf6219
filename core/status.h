/* status.h - status codes, per-thread error messages and small shared helpers. */
#ifndef RAG_STATUS_H
#define RAG_STATUS_H

#include "ragcore.h"

#include <stdarg.h>
#include <stddef.h>

/* Clears the calling thread's error message; each public entry point calls it first. */
void rag_clear_error(void);

/* Records a printf-style detail message for the calling thread and returns `rc`, so
 * failures read `return rag_fail(RAG_EPARSE, "line %d: ...", n);`. Can't fail (the
 * message is truncated to 1 KiB). */
int rag_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the current message (used to add context such as a file name
 * as an error travels up). Returns `rc`. */
int rag_fail_prefix(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation helpers that record RAG_ENOMEM on failure (they return NULL then). */
void *rag_malloc(size_t n);
void *rag_calloc(size_t n, size_t size);
void *rag_realloc(void *p, size_t n);
char *rag_strndup(const char *s, size_t n);
char *rag_strdup(const char *s);

/* Current time in unix seconds / monotonic seconds. */
long long rag_now(void);
double rag_monotonic(void);

/* Sleeps ms milliseconds, resuming after signal handlers (EINTR) for the time left. */
void rag_sleep_ms(long ms);

#endif
