/* log.h - structured JSON log lines on stderr (events and the access log). */
#ifndef SRV_LOG_H
#define SRV_LOG_H

#include <jansson.h>

/* Writes one line {"ts":..., "level":level, "event":event, ...fields} to stderr in a
 * single write. `fields` (may be NULL) is an object whose reference is stolen. Can't
 * fail (a line that cannot be formatted is dropped). Thread-safe. */
void log_event(const char *level, const char *event, json_t *fields);

/* Convenience: log_event with {"message": printf-formatted text}. */
void log_msg(const char *level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
