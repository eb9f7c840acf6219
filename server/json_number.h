/* json_number.h - JSON number tokens: strict syntax, and their values as jansson reads
 * them (for request fields read without building a jansson tree). */
#ifndef SRV_JSON_NUMBER_H
#define SRV_JSON_NUMBER_H

#include <stddef.h>

/* The end of the JSON number starting at b[i] of b[0..n) (strictly: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?([eE][+-]?[0-9]+)?), or i when none starts there. Can't fail. */
size_t json_number_end(const char *b, size_t n, size_t i);

/* Reads the number token at p, which json_number_end accepted and which is followed by a
 * character that cannot continue it, the way jansson does: a token without '.' or an
 * exponent is an integer (strtoll, then double), any other a real (strtod). Returns 0 with
 * *out and the token's length in *len, or -1 where jansson refuses the token (an integer
 * beyond long long, a real beyond double). */
int json_number_read(const char *p, size_t *len, double *out);

#endif
