/* target.h - the request target (path and query) as the client sent it: checked byte by
 * byte and percent-decoded before routing, and escaped for the access log.
 *
 * libmicrohttpd decodes "%00" into a NUL byte inside the path, which C strings then cut
 * short ("/v1/collections/b%00/documents/x" became "/v1/collections/b"), and passes invalid
 * escapes and raw control bytes on. Every request target goes through target_decode
 * first; what it refuses is answered 400 and never routed. */
#ifndef SRV_TARGET_H
#define SRV_TARGET_H

#include <stddef.h>

/* Checks raw[0..len) (the request target: a path, optionally '?' and a query) and decodes
 * its path. Refused, with the byte offset in raw named in err:
 *   - a raw byte below 0x21 (controls, space, NUL) or 0x7F;
 *   - '%' not followed by two hex digits;
 *   - an escape that decodes to a control byte (0x00-0x1F, 0x7F);
 *   - a path or query that is not valid UTF-8 once decoded (raw bytes >= 0x80 are
 *     taken as UTF-8 too).
 * A '+' in the query is left to mean a space, as libmicrohttpd reads it.
 * Returns RAG_OK with *path the decoded path (malloc'd, NUL-terminated, no NUL inside; the
 * caller frees it), RAG_EINVAL with a message in err, or RAG_ENOMEM; *path is NULL on
 * error. */
int target_decode(const char *raw, size_t len, char **path, char *err, size_t errlen);

/* raw[0..len) for a log line: printable ASCII as it is, every other byte and '\' as \xHH,
 * so the text is never cut at a NUL and shows exactly what was sent. Returns a malloc'd
 * string the caller frees, or NULL when out of memory. */
char *target_escape(const char *raw, size_t len);

#endif
