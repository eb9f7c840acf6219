/* log.h - structured JSON log lines on stderr (events and the access log), and the UTF-8
 * scrubbing of request text bound for JSON. */
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

/* Replaces, in place, every byte of s that does not belong to a valid UTF-8 sequence
 * (including a sequence cut short by truncation) with '?', so that text taken from a
 * request (paths, names, ids) can go into a JSON string. Returns s. Can't fail. */
char *utf8_scrub(char *s);

#endif
