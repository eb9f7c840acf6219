/* utf8.h - UTF-8 checks of the server's request and reply text. */
#ifndef SRV_UTF8_H
#define SRV_UTF8_H

#include <stddef.h>

/* Length of the longest prefix of text[0, n) that is valid UTF-8 without NUL bytes (n when
 * all of it is). ASCII runs are checked eight bytes at a time. Can't fail. */
size_t utf8_valid_prefix(const void *text, size_t n);

#endif
