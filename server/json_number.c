/* json_number.c - JSON number tokens: strict syntax, and their values as jansson reads them. */
#include "json_number.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

size_t json_number_end(const char *b, size_t n, size_t i)
{
    size_t s = i;
    if (i < n && b[i] == '-')
        i++;
    if (i < n && b[i] == '0')
        i++;
    else if (i < n && b[i] >= '1' && b[i] <= '9')
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
    else
        return s;
    if (i < n && b[i] == '.') {
        size_t d = ++i;
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
        if (i == d)
            return s;
    }
    if (i < n && (b[i] == 'e' || b[i] == 'E')) {
        i++;
        if (i < n && (b[i] == '+' || b[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
        if (i == d)
            return s;
    }
    return i;
}

/* Decimals of up to 15 significant digits with a power of ten up to 22 are computed
 * directly: both factors are exact doubles, so their product or quotient is the correctly
 * rounded double, which is what strtod returns (Clinger's fast path; glibc's strtod was
 * 10 % of a search's CPU on 384 numbers). Other tokens go to strtod / strtoll. */
int json_number_read(const char *p, size_t *len, double *out)
{
    static const double P10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *q = p;
    int neg = *q == '-', digits = 0, e10 = 0, real = 0;
    uint64_t m = 0;
    q += neg;
    for (; *q >= '0' && *q <= '9'; q++)
        if (m || *q != '0') {
            if (digits < 19)
                m = m * 10 + (uint64_t)(*q - '0');
            else
                e10++;
            digits++;
        }
    if (*q == '.') {
        real = 1;
        for (q++; *q >= '0' && *q <= '9'; q++) {
            if (m || *q != '0') {
                if (digits < 19) {
                    m = m * 10 + (uint64_t)(*q - '0');
                    e10--;
                }
                digits++;
            } else {
                e10--;
            }
        }
    }
    if (*q == 'e' || *q == 'E') {
        real = 1;
        q++;
        int eneg = *q == '-', e = 0;
        q += *q == '-' || *q == '+';
        for (; *q >= '0' && *q <= '9'; q++)
            if (e < 100000)
                e = e * 10 + (*q - '0');
        e10 += eneg ? -e : e;
    }
    *len = (size_t)(q - p);
    if (digits <= 15 && (m == 0 || (e10 >= -22 && e10 <= 22))) {
        double v = (double)m;
        if (m)
            v = e10 < 0 ? v / P10[-e10] : v * P10[e10];
        /* an integer token is a long long first: -0 is 0 */
        *out = neg && (real || m) ? -v : v;
        return 0;
    }
    char *end;
    errno = 0;
    double v = real ? strtod(p, &end) : (double)strtoll(p, &end, 10);
    if (errno == ERANGE && (!real || isinf(v)))
        return -1;
    *out = v;
    return 0;
}
