/* json_writer.h - JSON text written straight into a growing buffer, for hot responses. */
#ifndef RAGCORE_SERVER_JSON_WRITER_H
#define RAGCORE_SERVER_JSON_WRITER_H

#include <stddef.h>

/* A search's hits as a jansson tree cost more CPU than the vector search itself: an object
 * and a hash table per hit, a strdup and a UTF-8 check per string, then the dump. The
 * writer appends what json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER |
 * JSON_REAL_PRECISION(9)) would produce (exponents aside: "1e-05", not "1e-5"), with no
 * tree. The caller writes the punctuation
 * and keys itself (jw_lit); values go through the typed functions. After an allocation
 * failure every call is a no-op and jw_finish returns NULL. */
typedef struct jw {
    char *buf;
    size_t len, cap;
    int oom;
} jw;

void jw_init(jw *w, size_t cap_hint);
/* Appends n bytes verbatim (punctuation, keys, JSON text known to be valid). */
void jw_raw(jw *w, const char *s, size_t n);
/* A string literal only ("" lit "" refuses anything else at compile time). */
#define jw_lit(w, lit) jw_raw((w), "" lit "", sizeof(lit) - 1)
/* A JSON string of s[0..n): quotes, backslashes and control characters escaped as jansson
 * does; invalid UTF-8 bytes and NULs become '?' (JSON text must be valid UTF-8). s NULL:
 * null. */
void jw_str(jw *w, const char *s, size_t n);
/* The same for a NUL-terminated string. */
void jw_cstr(jw *w, const char *s);
void jw_int(jw *w, long long v);
/* %.9g (a float's round trip), ".0" added to integral values; NaN or infinite: null. */
void jw_real(jw *w, double v);
void jw_bool(jw *w, int v);
/* An object member after the first: ,"key":value. key is plain ASCII needing no escape. */
void jw_field_int(jw *w, const char *key, long long v);
void jw_field_real(jw *w, const char *key, double v);
void jw_field_str(jw *w, const char *key, const char *s); /* NUL-terminated; NULL: null */
void jw_field_raw(jw *w, const char *key, const char *json, size_t n); /* valid JSON text */
/* The text (NUL-terminated, owned by the caller) and its length; NULL after OOM. */
char *jw_finish(jw *w, size_t *len);

#endif
