/* log.c - structured JSON log lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

void log_event(const char *level, const char *event, json_t *fields)
{
    struct timeval tv;
    struct tm tm;
    char ts[40];
    json_t *line = json_object();
    char *text = NULL;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%06ldZ", (long)tv.tv_usec);
    if (!line)
        goto cleanup;
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level));
    json_object_set_new(line, "event", json_string(event));
    if (fields)
        json_object_update(line, fields);
    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (text) {
        size_t len = strlen(text);
        text[len] = '\n'; /* json_dumps' NUL is replaced: one write() per line */
        ssize_t w = write(STDERR_FILENO, text, len + 1);
        (void)w;
    }
cleanup:
    free(text);
    json_decref(line);
    json_decref(fields);
}

void log_msg(const char *level, const char *event, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_event(level, event, json_pack("{s:s}", "message", buf));
}
