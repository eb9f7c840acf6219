/* status.c - status code names, per-thread error messages, allocation and time helpers. */
#include "status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char tls_errmsg[1024];

const char *rag_strerror(int rc)
{
    switch (rc) {
#define RAG_STATUS_CASE_(name, value, text) case value: return text;
        RAG_STATUS_TABLE(RAG_STATUS_CASE_)
#undef RAG_STATUS_CASE_
    }
    return "unknown status";
}

const char *rag_errmsg(void)
{
    return tls_errmsg;
}

void rag_clear_error(void)
{
    tls_errmsg[0] = '\0';
}

int rag_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_errmsg, sizeof tls_errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

int rag_fail_prefix(int rc, const char *fmt, ...)
{
    char prefix[512], old[sizeof tls_errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tls_errmsg, sizeof old);
    if (old[0])
        snprintf(tls_errmsg, sizeof tls_errmsg, "%.400s: %.600s", prefix, old);
    else
        snprintf(tls_errmsg, sizeof tls_errmsg, "%.400s: %s", prefix, rag_strerror(rc));
    return rc;
}

void rag_free(void *ptr)
{
    free(ptr);
}

void *rag_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        rag_fail(RAG_ENOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *rag_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        rag_fail(RAG_ENOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *rag_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        rag_fail(RAG_ENOMEM, "out of memory growing a buffer to %zu bytes", n);
    return q;
}

char *rag_strndup(const char *s, size_t n)
{
    char *d = rag_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *rag_strdup(const char *s)
{
    return rag_strndup(s, strlen(s));
}

long long rag_now(void)
{
    return (long long)time(NULL);
}

double rag_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void rag_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *rag_version(void)
{
    return RAGCORE_VERSION_STRING;
}

int rag_version_number(void)
{
    return RAGCORE_VERSION_NUMBER;
}
