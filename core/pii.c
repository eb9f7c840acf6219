/* pii.c - rule-based detectors for personal data and secrets, and their masking. */
#include "pii.h"

#include "status.h"

#include <arpa/inet.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- character classes (ASCII; bytes >= 0x80 count as word characters) ---------------- */

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static int is_alpha(unsigned char c) { return is_upper(c) || is_lower(c); }
static int is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int is_word(unsigned char c) { return is_alnum(c) || c == '_' || c >= 0x80; }
static int is_b64url(unsigned char c) { return is_alnum(c) || c == '-' || c == '_'; }
static int is_token(unsigned char c)
{
    return is_alnum(c) || c == '+' || c == '/' || c == '=' || c == '_' || c == '-';
}
static int is_email_local(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c >= 0x80;
}
static int is_domain_char(unsigned char c) { return is_alnum(c) || c == '-' || c >= 0x80; }

#define U(i) ((unsigned char)s[i])

/* A number may start at i: not glued to a word, nor to a number/identifier through one
 * of ".-/:," (so "v1.2.3.4", "abc-123-45-6789" and "1.5" do not start one), nor in the
 * middle of space-separated digit groups. */
static int number_starts(const char *s, size_t i)
{
    if (i == 0)
        return 1;
    unsigned char p = U(i - 1);
    if (is_word(p) || p == '+')
        return 0;
    if ((p == '.' || p == '-' || p == '/' || p == ':' || p == ',') && i >= 2 && is_alnum(U(i - 2)))
        return 0;
    if (p == ' ' && i >= 2 && is_digit(U(i - 2)))
        return 0; /* inside a run of digit groups: "0044 0532 0130 00" */
    return 1;
}

/* Nothing that continues a number or word follows position `end`. */
static int number_ends(const char *s, size_t len, size_t end)
{
    if (end >= len)
        return 1;
    unsigned char c = U(end);
    if (is_word(c))
        return 0;
    if ((c == '.' || c == '-' || c == ',' || c == '/') && end + 1 < len && is_digit(U(end + 1)))
        return 0;
    return 1;
}

/* Case-insensitive: one of `words` (lower-case) occurs in the `window` (<= 64) bytes
 * before position i. */
static int context_before(const char *s, size_t i, size_t window, const char *const *words)
{
    char low[65];
    size_t from = i > window ? i - window : 0, n = 0;
    for (size_t k = from; k < i && n < 64; k++) {
        unsigned char c = U(k);
        low[n++] = (char)(is_upper(c) ? c + 32 : (c ? c : ' '));
    }
    low[n] = '\0';
    for (const char *const *w = words; *w; w++)
        if (strstr(low, *w))
            return 1;
    return 0;
}

static int starts_with(const char *s, size_t len, size_t i, const char *lit)
{
    size_t n = strlen(lit);
    return i + n <= len && memcmp(s + i, lit, n) == 0;
}

/* ---- secrets with a recognisable shape --------------------------------------------------- */

/* PEM private-key block: "-----BEGIN ... PRIVATE KEY-----" through the matching END line
 * (or the end of the text when the block is cut off). */
static size_t det_pem(const char *s, size_t len, size_t i)
{
    if (s[i] != '-' || !starts_with(s, len, i, "-----BEGIN "))
        return 0;
    size_t eol = i;
    while (eol < len && s[eol] != '\n')
        eol++;
    const char *hdr_end = memmem(s + i, eol - i, "PRIVATE KEY-----", 16);
    if (!hdr_end)
        return 0;
    const char *end = memmem(s + eol, len - eol, "-----END ", 9);
    if (!end)
        return len;
    size_t j = (size_t)(end - s) + 9;
    const char *close = memmem(s + j, len - j, "-----", 5);
    return close ? (size_t)(close - s) + 5 : len;
}

/* JSON Web Token: three base64url segments, the first a JSON header ("eyJ"). */
static size_t det_jwt(const char *s, size_t len, size_t i)
{
    if (s[i] != 'e' || !starts_with(s, len, i, "eyJ") || (i > 0 && is_b64url(U(i - 1))))
        return 0;
    size_t j = i, seg[3];
    for (int k = 0; k < 3; k++) {
        size_t b = j;
        while (j < len && is_b64url(U(j)))
            j++;
        seg[k] = j - b;
        if (k < 2) {
            if (j >= len || s[j] != '.')
                return 0;
            j++;
        }
    }
    if (seg[0] < 10 || seg[1] < 10)
        return 0;
    return seg[2] ? j : j - 1;
}

/* AWS access key ids (AKIA..., ASIA..., ...: 4 + 16 upper-case letters and digits) and
 * provider tokens with documented prefixes (GitHub, Slack, Stripe, Google, OpenAI). */
static size_t det_prefixed_token(const char *s, size_t len, size_t i)
{
    static const char *const aws[] = {"AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA",
                                      "ANPA", "ANVA", "ABIA", "ACCA", NULL};
    unsigned char c0 = U(i);
    if (!strchr("AgxsrnhdpwS", c0) || (i > 0 && is_word(U(i - 1))))
        return 0;
    for (const char *const *p = aws; *p; p++) {
        if (!starts_with(s, len, i, *p))
            continue;
        size_t j = i + 4;
        while (j < len && (is_upper(U(j)) || is_digit(U(j))))
            j++;
        if (j - i == 20 && (j >= len || !is_word(U(j))))
            return j;
    }
    static const struct { const char *prefix; size_t min_tail; } tok[] = {
        {"ghp_", 30}, {"gho_", 30}, {"ghu_", 30}, {"ghs_", 30}, {"ghr_", 30},
        {"github_pat_", 20}, {"xoxb-", 10}, {"xoxp-", 10}, {"xoxa-", 10}, {"xoxs-", 10},
        {"sk_live_", 16}, {"rk_live_", 16}, {"sk_test_", 16}, {"AIza", 30}, {"sk-", 20},
        {"glpat-", 20}, {"npm_", 30}, {"hf_", 30}, {"shpat_", 30}, {"shpss_", 30},
        {"dop_v1_", 40}, {"pypi-", 50}, {"xoxe-", 10}, {"whsec_", 24}, {"SG.", 40},
    };
    for (size_t t = 0; t < sizeof tok / sizeof tok[0]; t++) {
        if (!starts_with(s, len, i, tok[t].prefix))
            continue;
        size_t j = i + strlen(tok[t].prefix);
        int dots = tok[t].prefix[2] == '.'; /* SendGrid: SG.<id>.<secret> */
        while (j < len && (is_b64url(U(j)) || (dots && s[j] == '.' && j + 1 < len &&
                                                is_b64url(U(j + 1)))))
            j++;
        if (j - i - strlen(tok[t].prefix) >= tok[t].min_tail)
            return j;
    }
    return 0;
}

/* ---- e-mail ---------------------------------------------------------------------------- */

static size_t det_email(const char *s, size_t len, size_t i)
{
    if (!is_email_local(U(i)) || s[i] == '.' || (i > 0 && is_email_local(U(i - 1))))
        return 0;
    size_t j = i;
    while (j < len && is_email_local(U(j)) && j - i <= 64)
        j++;
    if (j >= len || s[j] != '@' || j == i || s[j - 1] == '.')
        return 0;
    /* Domain: labels separated by single dots; the last one alphabetic, >= 2 letters. */
    size_t k = j + 1, best = 0;
    int labels = 0;
    for (;;) {
        size_t b = k;
        int alpha = 1;
        while (k < len && is_domain_char(U(k))) {
            if (!is_alpha(U(k)) && U(k) < 0x80)
                alpha = 0;
            k++;
        }
        if (k == b || s[b] == '-' || s[k - 1] == '-')
            break;
        labels++;
        if (labels >= 2 && alpha && k - b >= 2)
            best = k;
        if (k + 1 < len && s[k] == '.' && is_domain_char(U(k + 1)))
            k++;
        else
            break;
    }
    return best;
}

/* ---- IBAN ---------------------------------------------------------------------------- */

/* ISO 13616 check on the upper-cased form: the 4 leading characters moved to the end,
 * letters as 10..35, mod 97. */
static int iban_valid(const char *c, size_t n)
{
    if (n < 15 || n > 34)
        return 0;
    int check = (c[2] - '0') * 10 + (c[3] - '0');
    if (check < 2 || check > 98)
        return 0;
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char ch = (unsigned char)c[(k + 4) % n];
        if (is_digit(ch))
            rem = (rem * 10 + (ch - '0')) % 97;
        else if (is_upper(ch))
            rem = (rem * 100 + (ch - 'A' + 10)) % 97;
        else
            return 0;
    }
    return rem == 1;
}

static int is_iban_char(unsigned char c) { return is_alpha(c) || is_digit(c); }
static char upper(unsigned char c) { return (char)(is_lower(c) ? c - 32 : c); }

/* IBANs in any case ("fr76 3000 ..." as "FR76 3000 ..."), compact or in groups of four. */
static size_t det_iban(const char *s, size_t len, size_t i)
{
    if (i + 15 > len || !is_alpha(U(i)) || !is_alpha(U(i + 1)) || !is_digit(U(i + 2)) ||
        !is_digit(U(i + 3)) || (i > 0 && is_word(U(i - 1))))
        return 0;
    char compact[40];
    size_t n = 0, cut_pos[12], cut_len[12], ncut = 0, j = i;
    /* Compact form: one run of letters and digits. */
    while (j < len && is_iban_char(U(j)) && n < 35)
        compact[n++] = upper(U(j++));
    if (n > 4) {
        if (j < len && is_word(U(j)))
            return 0;
        return iban_valid(compact, n) ? j : 0;
    }
    /* Grouped form: "DE89 3704 0044 0532 0130 00": groups of four, the last 1..4. */
    while (n < 34 && j + 1 < len && s[j] == ' ' && is_iban_char(U(j + 1))) {
        size_t b = ++j;
        while (j < len && is_iban_char(U(j)) && j - b < 5 && n < 34)
            compact[n++] = upper(U(j++));
        size_t g = j - b;
        if (g > 4 || (j < len && is_word(U(j))))
            break; /* not a group: keep the groups before it */
        cut_pos[ncut] = j;
        cut_len[ncut++] = n;
        if (g < 4 || ncut == 12)
            break;
    }
    while (ncut > 0) {
        ncut--;
        if (iban_valid(compact, cut_len[ncut]))
            return cut_pos[ncut];
    }
    return 0;
}

/* ---- payment cards ------------------------------------------------------------------------ */

static int luhn_valid(const char *d, size_t n)
{
    int sum = 0;
    for (size_t k = 0; k < n; k++) {
        int v = d[n - 1 - k] - '0';
        if (k % 2 == 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* 13..19 digits, plain or in groups of 3..6 joined by one consistent ' ' or '-', starting
 * with an issuer digit (2-6) and passing the Luhn check. */
static size_t det_card(const char *s, size_t len, size_t i)
{
    if (!is_digit(U(i)) || U(i) < '2' || U(i) > '6' || !number_starts(s, i))
        return 0;
    char d[20];
    size_t n = 0, j = i, cut_pos[8], cut_len[8], ncut = 0;
    char sep = 0;
    for (;;) {
        size_t b = j;
        while (j < len && is_digit(U(j)) && n < 20)
            d[n++] = s[j++];
        if (n >= 20)
            return 0;
        size_t g = j - b;
        if (ncut > 0 && (g < 3 || g > 6))
            break;
        if (ncut == 8)
            break;
        cut_pos[ncut] = j;
        cut_len[ncut++] = n;
        if (j + 1 < len && (s[j] == ' ' || s[j] == '-') && is_digit(U(j + 1)) &&
            (sep == 0 || s[j] == sep) && (g >= 3 && g <= 6)) {
            sep = s[j];
            j++;
            continue;
        }
        break;
    }
    if (ncut == 1 && cut_len[0] >= 13 && !number_ends(s, len, cut_pos[0]))
        return 0;
    while (ncut > 0) {
        ncut--;
        size_t dn = cut_len[ncut], e = cut_pos[ncut];
        if (dn >= 13 && dn <= 19 && luhn_valid(d, dn) && (e >= len || !is_word(U(e))))
            return e;
    }
    return 0;
}

/* ---- US SSN -------------------------------------------------------------------------- */

/* 3-2-4 digits joined by one '-' or ' ' (078-05-1120, 078 05 1120), or 9 digits in a row
 * after a word such as "SSN" (078051120); area, group and serial in the issued ranges. */
static size_t det_ssn(const char *s, size_t len, size_t i)
{
    static const char *const ctx[] = {"ssn", "social security", "soc. sec", "ss#", "ss #",
                                      "taxpayer", "tin:", NULL};
    if (i + 9 > len || !is_digit(U(i)) || !number_starts(s, i))
        return 0;
    char d[9], sep = s[i + 3];
    size_t n = 0, end;
    if (sep == '-' || sep == ' ') {
        if (i + 11 > len)
            return 0;
        for (size_t k = 0; k < 11; k++) {
            if (k == 3 || k == 6) {
                if (s[i + k] != sep)
                    return 0;
            } else if (!is_digit(U(i + k))) {
                return 0;
            } else {
                d[n++] = s[i + k];
            }
        }
        end = i + 11;
        /* "078 05 1120" must not be three groups of a longer run of digit groups */
        if (sep == ' ' && end + 1 < len && s[end] == ' ' && is_digit(U(end + 1)))
            return 0;
    } else {
        for (size_t k = 0; k < 9; k++) {
            if (!is_digit(U(i + k)))
                return 0;
            d[n++] = s[i + k];
        }
        end = i + 9;
        if (!context_before(s, i, 32, ctx))
            return 0;
    }
    if (!number_ends(s, len, end) || (end < len && s[end] == '-'))
        return 0;
    int area = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    int group = (d[3] - '0') * 10 + (d[4] - '0');
    int serial = (d[5] - '0') * 1000 + (d[6] - '0') * 100 + (d[7] - '0') * 10 + (d[8] - '0');
    if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
        return 0;
    return end;
}

/* ---- IP addresses ----------------------------------------------------------------------- */

static size_t det_ipv4(const char *s, size_t len, size_t i)
{
    static const char *const version_ctx[] = {"version", "release", "ver.", "build", "section",
                                              "chapter", "figure", "table", "step", "\xc2\xa7",
                                              NULL};
    if (!is_digit(U(i)) || (i > 0 && (is_word(U(i - 1)) || s[i - 1] == '.')))
        return 0;
    size_t j = i;
    for (int part = 0; part < 4; part++) {
        size_t b = j;
        int v = 0;
        while (j < len && is_digit(U(j)) && j - b < 4)
            v = v * 10 + (s[j++] - '0');
        size_t nd = j - b;
        if (nd == 0 || nd > 3 || v > 255 || (nd > 1 && s[b] == '0'))
            return 0;
        if (part < 3) {
            if (j >= len || s[j] != '.')
                return 0;
            j++;
        }
    }
    if (j < len && (is_word(U(j)) || (s[j] == '.' && j + 1 < len && is_digit(U(j + 1)))))
        return 0;
    if (context_before(s, i, 12, version_ctx))
        return 0;
    /* CIDR suffix */
    if (j + 1 < len && s[j] == '/' && is_digit(U(j + 1))) {
        size_t k = j + 1;
        int v = 0;
        while (k < len && is_digit(U(k)) && k - j <= 2)
            v = v * 10 + (s[k++] - '0');
        if (v <= 32 && (k >= len || !is_word(U(k))))
            j = k;
    }
    return j;
}

static size_t det_ipv6(const char *s, size_t len, size_t i)
{
    if (!(is_hex(U(i)) || s[i] == ':'))
        return 0;
    if (i > 0 && (is_word(U(i - 1)) || s[i - 1] == ':' || s[i - 1] == '.'))
        return 0;
    size_t j = i;
    int colons = 0, hexdigits = 0;
    while (j < len && j - i < 46 && (is_hex(U(j)) || s[j] == ':' || s[j] == '.')) {
        colons += s[j] == ':';
        hexdigits += is_hex(U(j));
        j++;
    }
    if (colons < 2 || hexdigits < 4 || (j < len && is_word(U(j))))
        return 0;
    char buf[64];
    unsigned char addr[16];
    for (int attempt = 0; attempt < 3 && j > i; attempt++) {
        memcpy(buf, s + i, j - i);
        buf[j - i] = '\0';
        if (inet_pton(AF_INET6, buf, addr) == 1)
            return j;
        if (s[j - 1] != ':' && s[j - 1] != '.')
            break;
        j--;
    }
    return 0;
}

/* ---- phone numbers --------------------------------------------------------------------- */

/* International numbers ("+" then 8..15 digits in any grouping), national numbers with
 * at least three groups or an area code in parentheses (10..12 digits), and any 7..15
 * digit number right after a word such as "phone", "tel" or "call". Dates, ISBNs and
 * dotted IP-like shapes are excluded. */
static size_t det_phone(const char *s, size_t len, size_t i)
{
    static const char *const ctx[] = {"phone", "tel", "call", "mobile", "cell", "fax",
                                      "whatsapp", "contact", "sms", "dial", "ring", NULL};
    static const char *const isbn[] = {"isbn", "issn", "doi", NULL};
    unsigned char c = U(i);
    int plus = c == '+';
    if (plus ? !(i + 1 < len && (is_digit(U(i + 1)) || s[i + 1] == '('))
             : !(is_digit(c) || (c == '(' && i + 1 < len && is_digit(U(i + 1)))))
        return 0;
    if (!number_starts(s, i) || (plus && i > 0 && is_digit(U(i - 1))))
        return 0;
    size_t j = i + (size_t)plus, end = 0;
    int digits = 0, groups = 0, paren = 0, had_paren = 0, glen[16], dots = 0;
    for (;;) {
        if (j < len && is_digit(U(j))) {
            size_t b = j;
            while (j < len && is_digit(U(j)))
                j++;
            digits += (int)(j - b);
            if (digits > 15 || groups == 16)
                return 0;
            glen[groups++] = (int)(j - b);
            end = j;
        } else if (j + 1 < len && s[j] == '(' && !paren && !had_paren && is_digit(U(j + 1)) &&
                   groups <= (plus ? 1 : 0)) {
            paren = 1;
            j++;
        } else if (j < len && s[j] == ')' && paren == 1 && end == j) {
            paren = 2;
            had_paren = 1;
            j++;
            end = j;
        } else if (j + 1 < len && (s[j] == ' ' || s[j] == '-' || s[j] == '.') && end == j &&
                   (is_digit(U(j + 1)) || (s[j + 1] == '(' && !had_paren))) {
            dots += s[j] == '.';
            j++;
        } else {
            break;
        }
    }
    if (paren == 1 || groups == 0)
        return 0;
    if (!number_ends(s, len, end))
        return 0;
    if (context_before(s, i, 12, isbn))
        return 0;
    int has_ctx = context_before(s, i, 24, ctx);
    /* Dates: 4-2-2, 2-2-4, 2-2-2 shapes. */
    if (groups == 3 && ((glen[0] == 4 && glen[1] == 2 && glen[2] == 2) ||
                        (glen[0] == 2 && glen[1] == 2 && (glen[2] == 4 || glen[2] == 2))))
        return 0;
    if (plus)
        return digits >= (has_ctx ? 7 : 8) ? end : 0;
    if (has_ctx)
        return digits >= 7 ? end : 0;
    /* "0044 20 7946 0111": the international prefix 00 in place of '+' */
    if (glen[0] >= 4 && s[i] == '0' && s[i + 1] == '0' && s[i + 2] != '0' && groups >= 2 &&
        digits - 2 >= 8 && digits - 2 <= 15)
        return end;
    /* national numbers with a trunk 0 in two groups: "07700 900123", "030 12345678" */
    if (groups == 2 && s[i] == '0' && s[i + 1] != '0' && glen[0] >= 3 && glen[0] <= 5 &&
        glen[1] >= 6 && glen[1] <= 8 && digits >= 10 && digits <= 11 && !dots)
        return end;
    if (digits < 10 || digits > 12 || (groups < 3 && !had_paren))
        return 0;
    int all4 = 1, maxg = 0;
    for (int g = 0; g < groups; g++) {
        if (glen[g] != 4)
            all4 = 0;
        if (glen[g] > maxg)
            maxg = glen[g];
    }
    if ((all4 && !had_paren) || maxg > 5)
        return 0;
    if (dots && (groups != 3 || glen[groups - 1] != 4))
        return 0; /* 192.168.10.200-like dotted shapes */
    return end;
}

/* ---- high-entropy tokens ------------------------------------------------------------------ */

static double shannon_bits(const unsigned char *p, size_t n)
{
    int freq[256] = {0};
    for (size_t k = 0; k < n; k++)
        freq[p[k]]++;
    double h = 0;
    for (int c = 0; c < 256; c++)
        if (freq[c]) {
            double q = (double)freq[c] / (double)n;
            h -= q * log2(q);
        }
    return h;
}

/* A run of base64/base64url characters that looks random: long enough, mixing classes,
 * with high character entropy and little word-like text (unlike CamelCase identifiers,
 * words, paths or hex digests). After a word such as "key", "token" or "password" the
 * bar is lower (hex keys included). */
static size_t det_entropy(const char *s, size_t len, size_t i)
{
    static const char *const ctx[] = {"key", "token", "secret", "password", "passwd", "pwd",
                                      "bearer", "credential", "api", "auth", NULL};
    if (!is_token(U(i)) || (i > 0 && (is_token(U(i - 1)) || U(i - 1) >= 0x80)))
        return 0;
    size_t j = i;
    while (j < len && is_token(U(j)) && j - i <= 512)
        j++;
    size_t n = j - i;
    if (n < 12 || n > 512 || (j < len && U(j) >= 0x80))
        return 0;
    int up = 0, lo = 0, dg = 0, hex = 1, slashes = 0, lowrun = 0, in_words = 0;
    for (size_t k = i; k <= j; k++) {
        unsigned char ch = k < j ? U(k) : 0;
        if (is_lower(ch)) {
            lowrun++;
        } else {
            if (lowrun >= 3)
                in_words += lowrun; /* letters inside lower-case runs: word-like text */
            lowrun = 0;
        }
        if (k == j)
            break;
        up += is_upper(ch);
        lo += is_lower(ch);
        dg += is_digit(ch);
        hex &= is_hex(ch);
        slashes += ch == '/';
    }
    if (!dg)
        return 0; /* every rule below needs a digit */
    double h = shannon_bits((const unsigned char *)s + i, n);
    double word_frac = (double)in_words / (double)n;
    if (context_before(s, i, 24, ctx)) {
        if (hex && n >= 24 && dg > 0 && dg < (int)n)
            return j;
        if (!hex && n >= 12 && dg > 0 && (up + lo) > 0 && h >= 3.0)
            return j;
    }
    if (n < 20 || hex || !up || !lo || !dg)
        return 0;
    if (slashes >= 2) {
        /* paths: a segment that is a plain lower-case word */
        size_t b = i;
        for (size_t k = i; k <= j; k++) {
            if (k == j || s[k] == '/') {
                int word = k > b;
                for (size_t m = b; m < k; m++)
                    word &= is_lower(U(m));
                if (word)
                    return 0;
                b = k + 1;
            }
        }
    }
    double need = n < 32 ? 3.7 : 4.0;
    /* Random base62 strings keep word_frac under 0.5 in 99% of cases; identifiers such as
     * getUserByIdAndEmailAddress2 are made of words (0.6 and more). */
    return (h >= need && word_frac < 0.5) ? j : 0;
}

/* ---- scanning ------------------------------------------------------------------------- */

typedef size_t (*detector_fn)(const char *s, size_t len, size_t i);

static const struct { detector_fn fn; rag_pii_type type; } DETECTORS[] = {
    {det_pem, RAG_PII_SECRET},     {det_jwt, RAG_PII_SECRET},
    {det_prefixed_token, RAG_PII_SECRET},
    {det_email, RAG_PII_EMAIL},    {det_iban, RAG_PII_IBAN},
    {det_card, RAG_PII_CARD},      {det_ssn, RAG_PII_SSN},
    {det_ipv4, RAG_PII_IP},        {det_ipv6, RAG_PII_IP},
    {det_phone, RAG_PII_PHONE},    {det_entropy, RAG_PII_SECRET},
};

const char *rag_pii_type_name(int type)
{
    static const char *const names[RAG_PII_NTYPES] = {
#define RAG_PII_NAME_(name, text) text,
        RAG_PII_TYPE_TABLE(RAG_PII_NAME_)
#undef RAG_PII_NAME_
    };
    return type >= 0 && type < RAG_PII_NTYPES ? names[type] : "UNKNOWN";
}

int rag_pii_parse_mode(const char *s, rag_pii_mode *mode)
{
    static const char *const names[] = {"off", "mask", "hash", "drop"};
    if (!s || !mode)
        return rag_fail(RAG_EINVAL, "pii mode: NULL argument");
    for (int k = 0; k < 4; k++)
        if (strcmp(s, names[k]) == 0) {
            *mode = (rag_pii_mode)k;
            return RAG_OK;
        }
    return rag_fail(RAG_EINVAL, "pii mode '%s': expected off, mask, hash or drop", s);
}

/* Full-width forms (U+FF01..U+FF5E: "４１１１", "＠") read as their ASCII characters and the
 * ideographic space U+3000 as a space, so that a card number typed in full-width digits
 * is found: *out is the folded copy (NULL when the text has none: scan it as is) and
 * map[k] the offset in s of the character that gave folded byte k (map[*olen] = len). */
static int fold_fullwidth(const char *s, size_t len, char **out, size_t **map, size_t *olen)
{
    *out = NULL;
    *map = NULL;
    int any = 0;
    for (size_t i = 0; i + 2 < len && !any; i++)
        any = (U(i) == 0xEF && (U(i + 1) == 0xBC || U(i + 1) == 0xBD)) ||
              (U(i) == 0xE3 && U(i + 1) == 0x80 && U(i + 2) == 0x80);
    if (!any)
        return RAG_OK;
    char *o = rag_malloc(len + 1);
    size_t *m = rag_malloc((len + 1) * sizeof *m), k = 0;
    if (!o || !m) {
        free(o);
        free(m);
        return RAG_ENOMEM;
    }
    for (size_t i = 0; i < len;) {
        unsigned cp = 0;
        if (i + 2 < len && U(i) == 0xEF && (U(i + 1) == 0xBC || U(i + 1) == 0xBD) &&
            (U(i + 2) & 0xC0) == 0x80)
            cp = 0xF000u | (unsigned)(U(i + 1) & 0x3F) << 6 | (U(i + 2) & 0x3F);
        if (cp >= 0xFF01 && cp <= 0xFF5E) {
            o[k] = (char)(cp - 0xFEE0);
        } else if (i + 2 < len && U(i) == 0xE3 && U(i + 1) == 0x80 && U(i + 2) == 0x80) {
            o[k] = ' ';
            cp = 0x3000;
        } else {
            m[k] = i;
            o[k++] = s[i++];
            continue;
        }
        m[k++] = i;
        i += 3;
    }
    m[k] = len;
    o[k] = '\0';
    *out = o;
    *map = m;
    *olen = k;
    return RAG_OK;
}

static int scan_text(const char *text, size_t len, unsigned types, rag_pii_match **matches,
                     size_t *n);

int rag_pii_scan(const char *text, size_t len, unsigned types, rag_pii_match **matches,
                 size_t *n)
{
    if (!matches || !n || (!text && len))
        return rag_fail(RAG_EINVAL, "pii scan: NULL argument");
    *matches = NULL;
    *n = 0;
    char *folded = NULL;
    size_t *map = NULL, flen = 0;
    int rc = fold_fullwidth(text, len, &folded, &map, &flen);
    if (rc != RAG_OK || !folded)
        return rc == RAG_OK ? scan_text(text, len, types, matches, n) : rc;
    rc = scan_text(folded, flen, types, matches, n);
    for (size_t k = 0; rc == RAG_OK && k < *n; k++) {
        (*matches)[k].start = map[(*matches)[k].start];
        (*matches)[k].end = map[(*matches)[k].end];
    }
    free(folded);
    free(map);
    return rc;
}

/* rag_pii_scan over a text without full-width forms. */
static int scan_text(const char *text, size_t len, unsigned types, rag_pii_match **matches,
                     size_t *n)
{
    if (types == 0)
        types = RAG_PII_ALL;
    rag_pii_match *out = NULL;
    size_t count = 0, cap = 0;
    for (size_t i = 0; i < len;) {
        /* every detector starts at a word boundary: skip the inside of words */
        if (i > 0 && is_alnum((unsigned char)text[i]) && is_alnum((unsigned char)text[i - 1])) {
            i++;
            continue;
        }
        size_t end = 0;
        rag_pii_type type = RAG_PII_SECRET;
        for (size_t d = 0; d < sizeof DETECTORS / sizeof DETECTORS[0] && !end; d++) {
            if (!(types & (1u << DETECTORS[d].type)))
                continue;
            end = DETECTORS[d].fn(text, len, i);
            type = DETECTORS[d].type;
        }
        if (!end) {
            i++;
            continue;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            rag_pii_match *grown = rag_realloc(out, ncap * sizeof *out);
            if (!grown) {
                free(out);
                return RAG_ENOMEM;
            }
            out = grown;
            cap = ncap;
        }
        out[count].start = i;
        out[count].end = end;
        out[count].type = type;
        count++;
        i = end;
    }
    *matches = out;
    *n = count;
    return RAG_OK;
}

/* ---- output --------------------------------------------------------------------------- */

typedef struct outbuf {
    char *p;
    size_t len, cap;
} outbuf;

static int out_put(outbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *grown = rag_realloc(b->p, ncap);
        if (!grown)
            return RAG_ENOMEM;
        b->p = grown;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return RAG_OK;
}

/* The value hashed for a finding: case and layout removed where they carry no meaning,
 * so "+44 20 7946 0958" and "+44-20-7946-0958" hash alike. Writes at most cap bytes. */
static size_t normalise_value(rag_pii_type type, const char *v, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t m = 0; m < n && k < cap; m++) {
        unsigned char ch = (unsigned char)v[m];
        switch (type) {
        case RAG_PII_PHONE:
            if (is_digit(ch) || (ch == '+' && k == 0))
                out[k++] = (char)ch;
            break;
        case RAG_PII_CARD:
        case RAG_PII_SSN:
            if (is_digit(ch))
                out[k++] = (char)ch;
            break;
        case RAG_PII_IBAN:
            if (is_alnum(ch))
                out[k++] = (char)(is_lower(ch) ? ch - 32 : ch);
            break;
        case RAG_PII_EMAIL:
        case RAG_PII_IP:
            out[k++] = (char)(is_upper(ch) ? ch + 32 : ch);
            break;
        default:
            out[k++] = (char)ch;
        }
    }
    return k;
}

static int put_hash(outbuf *b, const rag_pii_config *cfg, rag_pii_type type, const char *v,
                    size_t n)
{
    const char *name = rag_pii_type_name(type);
    size_t nl = strlen(name), cap = nl + 1 + n;
    unsigned char *msg = rag_malloc(cap), md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!msg)
        return RAG_ENOMEM;
    memcpy(msg, name, nl);
    msg[nl] = ':';
    size_t mlen = nl + 1 + normalise_value(type, v, n, (char *)msg + nl + 1, n);
    unsigned char *r = HMAC(EVP_sha256(), cfg->key, (int)cfg->key_len, msg, mlen, md, &mdlen);
    free(msg);
    if (!r || mdlen < 6)
        return rag_fail(RAG_EIO, "pii hash: HMAC-SHA256 failed");
    char tag[48];
    int tl = snprintf(tag, sizeof tag, "[%s:%02x%02x%02x%02x%02x%02x]", name, md[0], md[1],
                      md[2], md[3], md[4], md[5]);
    return out_put(b, tag, (size_t)tl);
}

int rag_pii_apply(const rag_pii_config *cfg, const char *text, size_t len,
                  rag_pii_result *out)
{
    if (!out)
        return rag_fail(RAG_EINVAL, "pii: NULL result");
    memset(out, 0, sizeof *out);
    if (!cfg || (!text && len))
        return rag_fail(RAG_EINVAL, "pii: NULL config or text");
    if ((unsigned)cfg->mode > RAG_PII_DROP)
        return rag_fail(RAG_EINVAL, "pii: unknown mode %d", (int)cfg->mode);
    if (cfg->mode == RAG_PII_HASH && (!cfg->key || cfg->key_len < 16 || cfg->key_len > INT32_MAX))
        return rag_fail(RAG_EINVAL, "pii hash mode needs a key of at least 16 bytes (got %zu)",
                        cfg->key ? cfg->key_len : 0);
    rag_pii_match *m = NULL;
    size_t nm = 0, pos = 0;
    outbuf b = {0};
    int rc = RAG_OK;
    if (cfg->mode != RAG_PII_OFF && (rc = rag_pii_scan(text, len, cfg->types, &m, &nm)) != RAG_OK)
        goto cleanup;
    for (size_t k = 0; k < nm; k++) {
        out->counts[m[k].type]++;
        out->total++;
    }
    if (cfg->mode == RAG_PII_DROP && nm > 0) {
        out->drop = 1;
        goto cleanup;
    }
    if ((rc = out_put(&b, "", 0)) != RAG_OK)
        goto cleanup;
    for (size_t k = 0; k < nm; k++) {
        if ((rc = out_put(&b, text + pos, m[k].start - pos)) != RAG_OK)
            goto cleanup;
        if (cfg->mode == RAG_PII_HASH) {
            rc = put_hash(&b, cfg, m[k].type, text + m[k].start, m[k].end - m[k].start);
        } else {
            char tag[16];
            int tl = snprintf(tag, sizeof tag, "[%s]", rag_pii_type_name(m[k].type));
            rc = out_put(&b, tag, (size_t)tl);
        }
        if (rc != RAG_OK)
            goto cleanup;
        pos = m[k].end;
    }
    if ((rc = out_put(&b, text + pos, len - pos)) != RAG_OK)
        goto cleanup;
    out->text = b.p;
    out->len = b.len;
    b.p = NULL;
cleanup:
    free(m);
    free(b.p);
    if (rc != RAG_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

void rag_pii_result_free(rag_pii_result *r)
{
    if (!r)
        return;
    free(r->text);
    memset(r, 0, sizeof *r);
}
