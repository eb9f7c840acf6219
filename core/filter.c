/* filter.c - the filter expression language: a recursive-descent parser into a small tree
 * and a matcher that evaluates the tree against one document (grammar in filter.h). */
#include "filter.h"

#include "status.h"

#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILTER_DEFAULT_DEPTH 32
#define FILTER_MAX_DEPTH 1024

/* ---- values ---------------------------------------------------------------------------- */

/* A number: exact when both sides of a comparison are integers, as doubles otherwise. */
typedef struct fnum {
    int is_int;
    long long i;
    double d;
} fnum;

/* V_OTHER is only seen on the document side (a JSON object, or an array nested in one). */
typedef enum vtype { V_NULL, V_BOOL, V_NUM, V_STR, V_OTHER } vtype;

/* A literal of the expression. A string that is an ISO-8601 date also carries its unix
 * time in `n` (has_time). Strings are owned and NUL-terminated but may hold NULs. */
typedef struct fvalue {
    vtype type;
    int b;
    fnum n;
    int has_time;
    char *s;
    size_t len;
} fvalue;

/* A value seen in the document (borrowed pointers). */
typedef struct dval {
    vtype type;
    int b;
    fnum n;
    const char *s;
    size_t len;
} dval;

/* ---- the tree -------------------------------------------------------------------------- */

typedef enum fkind { F_DOC_ID, F_SOURCE, F_TITLE, F_SOURCE_MTIME, F_INGESTED_AT, F_UPDATED_AT,
                     F_META } fkind;

static const char *const builtin_names[] = {"doc_id", "source", "title", "source_mtime",
                                            "ingested_at", "updated_at"};

typedef struct fkey {
    char *s;
    size_t len;
} fkey;

typedef struct ffield {
    fkind kind;
    fkey *path; /* F_META: the keys, outermost first */
    size_t n_path;
} ffield;

typedef enum nkind { N_AND, N_OR, N_NOT, N_CMP, N_EXISTS } nkind;
typedef enum fop { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOT_IN, OP_BETWEEN,
                   OP_PREFIX } fop;

typedef struct fnode {
    nkind kind;
    struct fnode **kids; /* N_AND, N_OR (two or more), N_NOT (one) */
    size_t n_kids;
    ffield field;        /* N_CMP, N_EXISTS */
    fop op;              /* N_CMP */
    fvalue *vals;        /* N_CMP: one, two for BETWEEN, the list for IN / NOT IN */
    size_t n_vals;
    int reads_meta;      /* this subtree reads the metadata JSON */
} fnode;

struct rag_filter {
    fnode *root;
    unsigned fields;
    const char **ids; /* candidate doc ids, NULL when unbounded */
    size_t n_ids;
};

static int is_time_field(fkind k)
{
    return k == F_SOURCE_MTIME || k == F_INGESTED_AT || k == F_UPDATED_AT;
}

static void field_clear(ffield *f)
{
    for (size_t i = 0; i < f->n_path; i++)
        free(f->path[i].s);
    free(f->path);
    f->path = NULL;
    f->n_path = 0;
}

static void node_free(fnode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    field_clear(&n->field);
    for (size_t i = 0; i < n->n_vals; i++)
        free(n->vals[i].s);
    free(n->vals);
    free(n);
}

/* ---- ISO-8601 dates -------------------------------------------------------------------- */

static int take_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (400-year eras of 146097 days). */
static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Parses YYYY-MM-DD[(T|t|' ')HH:MM[:SS[.fff]][Z|z|(+|-)HH[[:]MM]]] exactly (all of s[0..len))
 * into unix seconds. Returns 1 on success, 0 when s is not such a date. */
static int iso_parse(const char *s, size_t len, fnum *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0;
    double frac = 0;
    long long off = 0;
    size_t i = 10;
    if (len < 10 || !take_digits(s, 4, &y) || s[4] != '-' || !take_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !take_digits(s + 8, 2, &d))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return 0;
    if (i < len) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
            return 0;
        i++;
        if (len - i < 5 || !take_digits(s + i, 2, &h) || s[i + 2] != ':' ||
            !take_digits(s + i + 3, 2, &mi) || h > 23 || mi > 59)
            return 0;
        i += 5;
        if (i < len && s[i] == ':') {
            if (len - i < 3 || !take_digits(s + i + 1, 2, &sec) || sec > 60)
                return 0;
            i += 3;
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                double scale = 0.1;
                size_t start = ++i;
                for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
                    frac += (s[i] - '0') * scale;
                if (i == start)
                    return 0;
            }
        }
        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
            i++;
        } else if (i < len && (s[i] == '+' || s[i] == '-')) {
            int sign = s[i] == '-' ? -1 : 1, oh, om = 0;
            i++;
            if (len - i < 2 || !take_digits(s + i, 2, &oh) || oh > 23)
                return 0;
            i += 2;
            if (i < len && s[i] == ':')
                i++;
            if (i < len) {
                if (len - i < 2 || !take_digits(s + i, 2, &om) || om > 59)
                    return 0;
                i += 2;
            }
            off = sign * (oh * 3600LL + om * 60LL);
        }
        if (i != len)
            return 0;
    }
    long long t = days_from_civil(y, mo, d) * 86400 + h * 3600LL + mi * 60LL + sec - off;
    out->is_int = frac == 0;
    out->i = t;
    out->d = (double)t + frac;
    return 1;
}

/* ---- lexer ----------------------------------------------------------------------------- */

typedef enum tkind {
    T_EOF, T_NAME, T_STRING, T_NUMBER, T_LPAREN, T_RPAREN, T_COMMA, T_DOT,
    T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_CARET_EQ,
    /* keywords, in the order of keywords[] */
    T_AND, T_OR, T_NOT, T_IN, T_BETWEEN, T_EXISTS, T_PREFIX, T_TRUE, T_FALSE, T_NULL
} tkind;

static const char *const keywords[] = {"and", "or", "not", "in", "between", "exists",
                                       "prefix", "true", "false", "null"};

typedef struct token {
    tkind kind;
    size_t pos, len; /* the token's bytes in the source */
    char *str;       /* T_STRING: decoded, owned; T_NAME: NULL (use the source bytes) */
    size_t str_len;
    fnum num;        /* T_NUMBER */
} token;

typedef struct parser {
    const char *src;
    size_t cur;
    token tok;            /* the lookahead */
    size_t prev_pos, prev_len; /* the token before it (prev_len 0: none) */
    int depth, max_depth;
    unsigned fields;
} parser;

static int is_name_start(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(int c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static int ascii_ieq(const char *a, size_t n, const char *kw)
{
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)a[i];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (kw[i] == '\0' || c != kw[i])
            return 0;
    }
    return kw[n] == '\0';
}

/* Writes a quoted, shortened copy of src[pos..pos+len) for messages. */
static void describe(char *buf, size_t cap, const char *src, size_t pos, size_t len)
{
    const size_t max = 24;
    if (len > max)
        snprintf(buf, cap, "'%.*s...'", (int)max, src + pos);
    else
        snprintf(buf, cap, "'%.*s'", (int)len, src + pos);
}

static int perr(parser *p, int rc, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records "filter: position N: <message>" and returns rc. */
static int perr(parser *p, int rc, size_t pos, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    (void)p;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rag_fail(rc, "filter: position %zu: %s", pos, msg);
}

/* "expected <what> [after 'prev'], found <lookahead>" at the lookahead's position. */
static int expected(parser *p, const char *what)
{
    char found[64], after[80] = "";
    if (p->tok.kind == T_EOF)
        snprintf(found, sizeof found, "end of input");
    else
        describe(found, sizeof found, p->src, p->tok.pos, p->tok.len);
    if (p->prev_len) {
        char prev[64];
        describe(prev, sizeof prev, p->src, p->prev_pos, p->prev_len);
        snprintf(after, sizeof after, " after %s", prev);
    }
    return perr(p, RAG_EPARSE, p->tok.pos, "expected %s%s, found %s", what, after, found);
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* strtod that reads '.' as the decimal point whatever the process locale. */
static double strtod_c(const char *s)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale ? strtod_l(s, NULL, c_locale) : strtod(s, NULL);
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)s[i], x;
        if (c >= '0' && c <= '9')
            x = c - '0';
        else if (c >= 'a' && c <= 'f')
            x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            x = c - 'A' + 10;
        else
            return 0;
        v = v * 16 + (unsigned)x;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Lexes the string starting at the '"' at p->cur into p->tok. */
static int lex_string(parser *p)
{
    const char *s = p->src;
    size_t start = p->cur, end = start + 1;
    while (s[end] && s[end] != '"')
        end += s[end] == '\\' && s[end + 1] ? 2 : 1;
    if (!s[end])
        return perr(p, RAG_EPARSE, start, "unterminated string (no closing '\"')");
    char *out = rag_malloc(end - start);
    if (!out)
        return RAG_ENOMEM;
    size_t o = 0;
    for (size_t i = start + 1; i < end;) {
        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            out[o++] = map[simple - "\"\\/bfnrt"];
            i += 2;
            continue;
        }
        if (e != 'u') {
            free(out);
            if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7F)
                return perr(p, RAG_EPARSE, i, "invalid escape '\\%c' in string (valid: \\\" \\\\ "
                            "\\/ \\b \\f \\n \\r \\t \\uXXXX)", e);
            return perr(p, RAG_EPARSE, i, "invalid escape in string (valid: \\\" \\\\ \\/ \\b \\f "
                        "\\n \\r \\t \\uXXXX)");
        }
        unsigned cp, lo;
        if (end - i < 6 || !hex4(s + i + 2, &cp)) {
            free(out);
            return perr(p, RAG_EPARSE, i, "invalid \\u escape in string: expected 4 hex digits");
        }
        size_t esc = i;
        i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            free(out);
            return perr(p, RAG_EPARSE, esc, "invalid \\u escape in string: lone low surrogate");
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - i < 6 || s[i] != '\\' || s[i + 1] != 'u' || !hex4(s + i + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF) {
                free(out);
                return perr(p, RAG_EPARSE, esc, "invalid \\u escape in string: high surrogate "
                            "not followed by a \\u low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        o += put_utf8(out + o, cp);
    }
    out[o] = '\0';
    p->tok.kind = T_STRING;
    p->tok.str = out;
    p->tok.str_len = o;
    p->cur = end + 1;
    return RAG_OK;
}

/* Lexes the number starting at p->cur into p->tok. */
static int lex_number(parser *p)
{
    const char *s = p->src;
    size_t start = p->cur, i = start;
    int integral = 1, ok = 1;
    if (s[i] == '-')
        i++;
    if (s[i] < '0' || s[i] > '9')
        ok = 0;
    while (s[i] >= '0' && s[i] <= '9')
        i++;
    if (ok && s[i] == '.') {
        integral = 0;
        i++;
        if (s[i] < '0' || s[i] > '9')
            ok = 0;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (ok && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        if (s[i] < '0' || s[i] > '9')
            ok = 0;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (!ok || is_name_char((unsigned char)s[i]) || s[i] == '.') {
        while (is_name_char((unsigned char)s[i]) || s[i] == '.')
            i++;
        return perr(p, RAG_EPARSE, start, "malformed number '%.*s'", (int)(i - start),
                    s + start);
    }
    char *text = rag_strndup(s + start, i - start);
    if (!text)
        return RAG_ENOMEM;
    fnum n = {0, 0, 0};
    if (integral) {
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (errno == 0) {
            n.is_int = 1;
            n.i = v;
        }
    }
    n.d = n.is_int ? (double)n.i : strtod_c(text);
    free(text);
    if (isinf(n.d))
        return perr(p, RAG_EPARSE, start, "number out of range '%.*s'", (int)(i - start),
                    s + start);
    p->tok.kind = T_NUMBER;
    p->tok.num = n;
    p->cur = i;
    return RAG_OK;
}

/* Moves the lookahead on by one token. */
static int next(parser *p)
{
    const char *s = p->src;
    int after_dot = p->tok.kind == T_DOT;
    free(p->tok.str);
    if (p->tok.kind != T_EOF || p->tok.len) {
        p->prev_pos = p->tok.pos;
        p->prev_len = p->tok.len;
    }
    memset(&p->tok, 0, sizeof p->tok);
    while (s[p->cur] == ' ' || s[p->cur] == '\t' || s[p->cur] == '\n' || s[p->cur] == '\r' ||
           s[p->cur] == '\f' || s[p->cur] == '\v')
        p->cur++;
    size_t pos = p->cur;
    int c = (unsigned char)s[pos], c1 = c ? (unsigned char)s[pos + 1] : 0, rc = RAG_OK;
    p->tok.pos = pos;
    switch (c) {
    case '\0': p->tok.kind = T_EOF; break;
    case '(': p->tok.kind = T_LPAREN; p->cur++; break;
    case ')': p->tok.kind = T_RPAREN; p->cur++; break;
    case ',': p->tok.kind = T_COMMA; p->cur++; break;
    case '.': p->tok.kind = T_DOT; p->cur++; break;
    case '=': p->tok.kind = T_EQ; p->cur++; break;
    case '<':
        p->tok.kind = c1 == '=' ? T_LE : T_LT;
        p->cur += c1 == '=' ? 2 : 1;
        break;
    case '>':
        p->tok.kind = c1 == '=' ? T_GE : T_GT;
        p->cur += c1 == '=' ? 2 : 1;
        break;
    case '!':
        if (c1 != '=')
            return perr(p, RAG_EPARSE, pos, "unexpected character '!' (did you mean '!=' or NOT?)");
        p->tok.kind = T_NE;
        p->cur += 2;
        break;
    case '^':
        if (c1 != '=')
            return perr(p, RAG_EPARSE, pos, "unexpected character '^' (did you mean '^='?)");
        p->tok.kind = T_CARET_EQ;
        p->cur += 2;
        break;
    case '"': rc = lex_string(p); break;
    default:
        if (after_dot && c >= '0' && c <= '9') { /* a key such as the 0 of authors.0.name */
            while (is_name_char((unsigned char)s[p->cur]))
                p->cur++;
            p->tok.kind = T_NAME;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            rc = lex_number(p);
        } else if (is_name_start(c)) {
            size_t e = pos;
            while (is_name_char((unsigned char)s[e]))
                e++;
            p->tok.kind = T_NAME;
            for (size_t k = 0; k < sizeof keywords / sizeof *keywords; k++)
                if (ascii_ieq(s + pos, e - pos, keywords[k]))
                    p->tok.kind = (tkind)(T_AND + k);
            p->cur = e;
        } else if (c >= 0x20 && c < 0x7F) {
            return perr(p, RAG_EPARSE, pos, "unexpected character '%c'", c);
        } else {
            return perr(p, RAG_EPARSE, pos, "unexpected byte 0x%02X", (unsigned)c);
        }
    }
    if (rc == RAG_OK)
        p->tok.len = p->cur - pos;
    return rc;
}

/* ---- parser ---------------------------------------------------------------------------- */

static int parse_or(parser *p, fnode **out);

static fnode *node_new(nkind kind)
{
    fnode *n = rag_calloc(1, sizeof *n);
    if (n)
        n->kind = kind;
    return n;
}

static int add_kid(fnode *n, fnode *kid)
{
    fnode **k = rag_realloc(n->kids, (n->n_kids + 1) * sizeof *k);
    if (!k)
        return RAG_ENOMEM;
    n->kids = k;
    n->kids[n->n_kids++] = kid;
    return RAG_OK;
}

static int enter(parser *p, size_t pos)
{
    if (p->depth + 1 > p->max_depth)
        return perr(p, RAG_EINVAL, pos, "nesting deeper than the limit of %d levels",
                    p->max_depth);
    p->depth++;
    return RAG_OK;
}

/* Parses a dotted field path at the lookahead (a T_NAME) into *f. */
static int parse_field(parser *p, ffield *f)
{
    int rc = RAG_OK;
    for (;;) {
        fkey key = {NULL, 0};
        if (p->tok.kind == T_STRING) {
            key.s = p->tok.str;
            key.len = p->tok.str_len;
            p->tok.str = NULL;
        } else {
            key.s = rag_strndup(p->src + p->tok.pos, p->tok.len);
            key.len = p->tok.len;
            if (!key.s)
                return RAG_ENOMEM;
        }
        fkey *path = rag_realloc(f->path, (f->n_path + 1) * sizeof *path);
        if (!path) {
            free(key.s);
            return RAG_ENOMEM;
        }
        f->path = path;
        f->path[f->n_path++] = key;
        if ((rc = next(p)) < 0)
            return rc;
        if (p->tok.kind != T_DOT)
            break;
        if ((rc = next(p)) < 0)
            return rc;
        if (p->tok.kind != T_NAME && p->tok.kind != T_STRING && p->tok.kind < T_AND)
            return expected(p, "a key (a name or a \"string\")");
    }
    f->kind = F_META;
    if (f->n_path == 1) {
        for (size_t k = 0; k < sizeof builtin_names / sizeof *builtin_names; k++) {
            if (strcmp(f->path[0].s, builtin_names[k]) == 0 &&
                f->path[0].len == strlen(builtin_names[k])) {
                f->kind = (fkind)k;
                field_clear(f);
                break;
            }
        }
    } else if (f->path[0].len == 8 && memcmp(f->path[0].s, "metadata", 8) == 0) {
        free(f->path[0].s);
        memmove(f->path, f->path + 1, (f->n_path - 1) * sizeof *f->path);
        f->n_path--;
    }
    p->fields |= f->kind == F_META ? RAG_FILTER_FIELD_METADATA : 1u << f->kind;
    return RAG_OK;
}

/* Parses the literal at the lookahead into *v, checking it suits `field` (named by the
 * source bytes fpos/flen) and an ordering operator when `ordering`. */
static int parse_value(parser *p, const ffield *field, size_t fpos, size_t flen, int ordering,
                       fvalue *v)
{
    token *t = &p->tok;
    char fname[64], lit[64];
    memset(v, 0, sizeof *v);
    switch (t->kind) {
    case T_STRING: v->type = V_STR; break;
    case T_NUMBER: v->type = V_NUM; v->n = t->num; break;
    case T_TRUE: v->type = V_BOOL; v->b = 1; break;
    case T_FALSE: v->type = V_BOOL; v->b = 0; break;
    case T_NULL: v->type = V_NULL; break;
    default: return expected(p, "a value (a \"string\", a number, true, false or null)");
    }
    describe(fname, sizeof fname, p->src, fpos, flen);
    describe(lit, sizeof lit, p->src, t->pos, t->len);
    if (ordering && (v->type == V_BOOL || v->type == V_NULL))
        return perr(p, RAG_EPARSE, t->pos, "expected a number or a string to order by, found %s",
                    lit);
    if (v->type == V_STR) {
        v->has_time = iso_parse(t->str, t->str_len, &v->n);
        if (is_time_field(field->kind)) {
            if (!v->has_time)
                goto bad_time;
            v->type = V_NUM;
        } else {
            v->s = t->str;
            v->len = t->str_len;
            t->str = NULL;
        }
    } else if (is_time_field(field->kind)) {
        if (v->type != V_NUM)
            goto bad_time;
    } else if (field->kind != F_META) {
        return perr(p, RAG_EPARSE, t->pos, "%s holds a string; expected a \"string\", found %s",
                    fname, lit);
    }
    return next(p);
bad_time:
    return perr(p, RAG_EPARSE, t->pos,
                "%s holds unix seconds; expected a number or an ISO-8601 date such as "
                "\"2026-01-01\" or \"2026-01-01T10:00:00Z\", found %s", fname, lit);
}

static int add_value(fnode *n, parser *p, size_t fpos, size_t flen, int ordering)
{
    fvalue *vals = rag_realloc(n->vals, (n->n_vals + 1) * sizeof *vals);
    if (!vals)
        return RAG_ENOMEM;
    n->vals = vals;
    int rc = parse_value(p, &n->field, fpos, flen, ordering, &n->vals[n->n_vals]);
    if (rc == RAG_OK)
        n->n_vals++;
    else
        free(n->vals[n->n_vals].s);
    return rc;
}

/* field [NOT] IN ( v, ... ) -- the lookahead is the '('. */
static int parse_list(parser *p, fnode *n, size_t fpos, size_t flen)
{
    int rc;
    if (p->tok.kind != T_LPAREN)
        return expected(p, "'('");
    if ((rc = next(p)) < 0)
        return rc;
    for (;;) {
        if ((rc = add_value(n, p, fpos, flen, 0)) < 0)
            return rc;
        if (p->tok.kind == T_RPAREN)
            return next(p);
        if (p->tok.kind != T_COMMA)
            return expected(p, "',' or ')' in the IN list");
        if ((rc = next(p)) < 0)
            return rc;
    }
}

/* A condition: '(' expr ')', EXISTS field, or field operator value(s). */
static int parse_primary(parser *p, fnode **out)
{
    int rc = RAG_OK;
    fnode *n = NULL;
    *out = NULL;
    if (p->tok.kind == T_LPAREN) {
        size_t open = p->tok.pos;
        if ((rc = enter(p, open)) < 0 || (rc = next(p)) < 0 || (rc = parse_or(p, &n)) < 0)
            goto cleanup;
        if (p->tok.kind != T_RPAREN) {
            char what[96];
            snprintf(what, sizeof what, "AND, OR or ')' closing the '(' at position %zu", open);
            rc = expected(p, what);
            goto cleanup;
        }
        p->depth--;
        rc = next(p);
        goto cleanup;
    }
    int exists = p->tok.kind == T_EXISTS;
    if (exists && (rc = next(p)) < 0)
        goto cleanup;
    if (p->tok.kind != T_NAME) {
        rc = expected(p, exists ? "a field name" : "a condition (a field name, '(', NOT or EXISTS)");
        goto cleanup;
    }
    if (!(n = node_new(exists ? N_EXISTS : N_CMP))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    size_t fpos = p->tok.pos;
    if ((rc = parse_field(p, &n->field)) < 0 || exists)
        goto cleanup;
    size_t flen = p->prev_pos + p->prev_len - fpos;
    switch (p->tok.kind) {
    case T_EQ: n->op = OP_EQ; break;
    case T_NE: n->op = OP_NE; break;
    case T_LT: n->op = OP_LT; break;
    case T_LE: n->op = OP_LE; break;
    case T_GT: n->op = OP_GT; break;
    case T_GE: n->op = OP_GE; break;
    case T_IN: n->op = OP_IN; break;
    case T_NOT: n->op = OP_NOT_IN; break;
    case T_BETWEEN: n->op = OP_BETWEEN; break;
    case T_PREFIX: case T_CARET_EQ: n->op = OP_PREFIX; break;
    default:
        rc = expected(p, "an operator (=, !=, <, <=, >, >=, IN, NOT IN, BETWEEN, PREFIX, ^=)");
        goto cleanup;
    }
    if (n->op == OP_PREFIX && is_time_field(n->field.kind)) {
        char fname[64];
        describe(fname, sizeof fname, p->src, fpos, flen);
        rc = perr(p, RAG_EPARSE, p->tok.pos, "PREFIX needs a string field; %s holds unix seconds",
                  fname);
        goto cleanup;
    }
    if ((rc = next(p)) < 0)
        goto cleanup;
    switch (n->op) {
    case OP_NOT_IN:
        if (p->tok.kind != T_IN) {
            rc = expected(p, "IN");
            goto cleanup;
        }
        if ((rc = next(p)) < 0)
            goto cleanup;
        /* fall through */
    case OP_IN:
        rc = parse_list(p, n, fpos, flen);
        break;
    case OP_BETWEEN:
        if ((rc = add_value(n, p, fpos, flen, 1)) < 0)
            goto cleanup;
        if (p->tok.kind != T_AND) {
            rc = expected(p, "AND (BETWEEN low AND high)");
            goto cleanup;
        }
        if ((rc = next(p)) < 0)
            goto cleanup;
        rc = add_value(n, p, fpos, flen, 1);
        break;
    case OP_PREFIX:
        if (p->tok.kind != T_STRING) {
            rc = expected(p, "a \"string\"");
            goto cleanup;
        }
        rc = add_value(n, p, fpos, flen, 0);
        break;
    default:
        rc = add_value(n, p, fpos, flen, n->op != OP_EQ && n->op != OP_NE);
    }
cleanup:
    if (rc < 0) {
        node_free(n);
        n = NULL;
    }
    *out = n;
    return rc;
}

static int parse_not(parser *p, fnode **out)
{
    int rc;
    fnode *n = NULL, *kid = NULL;
    *out = NULL;
    if (p->tok.kind != T_NOT)
        return parse_primary(p, out);
    if ((rc = enter(p, p->tok.pos)) < 0 || (rc = next(p)) < 0 || (rc = parse_not(p, &kid)) < 0)
        return rc;
    p->depth--;
    if (!(n = node_new(N_NOT)) || add_kid(n, kid) < 0) {
        node_free(n);
        node_free(kid);
        return RAG_ENOMEM;
    }
    *out = n;
    return RAG_OK;
}

/* One precedence level: sub { OP sub }, an n-ary node when there are two or more. */
static int parse_chain(parser *p, tkind op, nkind kind, int (*sub)(parser *, fnode **),
                       fnode **out)
{
    int rc;
    fnode *first = NULL, *n = NULL, *kid = NULL;
    *out = NULL;
    if ((rc = sub(p, &first)) < 0)
        return rc;
    if (p->tok.kind != op) {
        *out = first;
        return RAG_OK;
    }
    if (!(n = node_new(kind)) || (rc = add_kid(n, first)) < 0) {
        node_free(first);
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    while (p->tok.kind == op) {
        if ((rc = next(p)) < 0 || (rc = sub(p, &kid)) < 0)
            goto cleanup;
        if ((rc = add_kid(n, kid)) < 0) {
            node_free(kid);
            goto cleanup;
        }
    }
    *out = n;
    return RAG_OK;
cleanup:
    node_free(n);
    return rc;
}

static int parse_and(parser *p, fnode **out)
{
    return parse_chain(p, T_AND, N_AND, parse_not, out);
}

static int parse_or(parser *p, fnode **out)
{
    return parse_chain(p, T_OR, N_OR, parse_and, out);
}

/* Moves the children of AND / OR that read only built-in fields before those that read
 * metadata (conditions have no side effects, so order is free), so that a decision on
 * built-ins skips parsing the metadata JSON. Sets n->reads_meta. RAG_ENOMEM or RAG_OK. */
static int order_by_cost(fnode *n)
{
    int rc;
    size_t o = 0;
    if (n->kind == N_CMP || n->kind == N_EXISTS) {
        n->reads_meta = n->field.kind == F_META;
        return RAG_OK;
    }
    for (size_t i = 0; i < n->n_kids; i++) {
        if ((rc = order_by_cost(n->kids[i])) < 0)
            return rc;
        n->reads_meta |= n->kids[i]->reads_meta;
    }
    if (n->n_kids < 2)
        return RAG_OK;
    fnode **sorted = rag_malloc(n->n_kids * sizeof *sorted);
    if (!sorted)
        return RAG_ENOMEM;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n->n_kids; i++)
            if (n->kids[i]->reads_meta == pass)
                sorted[o++] = n->kids[i];
    memcpy(n->kids, sorted, n->n_kids * sizeof *sorted);
    free(sorted);
    return RAG_OK;
}

/* ---- candidate doc ids ----------------------------------------------------------------- */

typedef struct idset {
    int bounded;
    const char **v;
    size_t n;
} idset;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts and removes duplicates in place. */
static void ids_normalise(idset *s)
{
    size_t o = 0;
    if (s->n > 1)
        qsort(s->v, s->n, sizeof *s->v, cmp_str);
    for (size_t i = 0; i < s->n; i++)
        if (o == 0 || strcmp(s->v[o - 1], s->v[i]) != 0)
            s->v[o++] = s->v[i];
    s->n = o;
}

/* Merges b into a: the intersection when `inter`, the union otherwise. Frees b's array. */
static int ids_merge(idset *a, idset *b, int inter)
{
    const char **m = rag_malloc((a->n + b->n + 1) * sizeof *m);
    size_t i = 0, j = 0, o = 0;
    if (!m)
        return RAG_ENOMEM;
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->v[i], b->v[j]);
        if (c == 0) {
            m[o++] = a->v[i];
            i++, j++;
        } else if (c < 0) {
            if (!inter)
                m[o++] = a->v[i];
            i++;
        } else {
            if (!inter)
                m[o++] = b->v[j];
            j++;
        }
    }
    free(a->v);
    free(b->v);
    b->v = NULL;
    a->v = m;
    a->n = o;
    return RAG_OK;
}

static int ids_of(const fnode *n, idset *out)
{
    int rc = RAG_OK;
    memset(out, 0, sizeof *out);
    if (n->kind == N_CMP && n->field.kind == F_DOC_ID && (n->op == OP_EQ || n->op == OP_IN)) {
        if (!(out->v = rag_malloc((n->n_vals + 1) * sizeof *out->v)))
            return RAG_ENOMEM;
        out->bounded = 1;
        for (size_t i = 0; i < n->n_vals; i++)
            if (strlen(n->vals[i].s) == n->vals[i].len) /* an id holding NUL never matches */
                out->v[out->n++] = n->vals[i].s;
        ids_normalise(out);
        return RAG_OK;
    }
    if (n->kind != N_AND && n->kind != N_OR)
        return RAG_OK;
    for (size_t k = 0; k < n->n_kids; k++) {
        idset s;
        if ((rc = ids_of(n->kids[k], &s)) < 0)
            break;
        if (!s.bounded && n->kind == N_OR) {
            free(out->v);
            memset(out, 0, sizeof *out);
            return RAG_OK;
        }
        if (!s.bounded)
            continue;
        if (k == 0 || !out->bounded) {
            free(out->v);
            *out = s;
        } else if ((rc = ids_merge(out, &s, n->kind == N_AND)) < 0) {
            free(s.v);
            break;
        }
    }
    if (rc < 0) {
        free(out->v);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

/* ---- public: parse --------------------------------------------------------------------- */

int rag_filter_parse(const char *expr, int max_depth, rag_filter **out)
{
    int rc = RAG_OK;
    parser p;
    rag_filter *f = NULL;
    idset ids = {0, NULL, 0};
    memset(&p, 0, sizeof p);
    if (out)
        *out = NULL;
    if (!expr || !out)
        return rag_fail(RAG_EINVAL, "filter: expression and output must not be NULL");
    if (max_depth < 0 || max_depth > FILTER_MAX_DEPTH)
        return rag_fail(RAG_EINVAL, "filter: max_depth %d is outside 0..%d", max_depth,
                        FILTER_MAX_DEPTH);
    p.src = expr;
    p.max_depth = max_depth ? max_depth : FILTER_DEFAULT_DEPTH;
    p.depth = 1;
    if (!(f = rag_calloc(1, sizeof *f)))
        return RAG_ENOMEM;
    if ((rc = next(&p)) < 0)
        goto cleanup;
    if (p.tok.kind == T_EOF) {
        rc = perr(&p, RAG_EPARSE, p.tok.pos, "empty filter expression");
        goto cleanup;
    }
    if ((rc = parse_or(&p, &f->root)) < 0)
        goto cleanup;
    if (p.tok.kind != T_EOF) {
        rc = expected(&p, "AND, OR or the end of the filter");
        goto cleanup;
    }
    f->fields = p.fields;
    if ((rc = order_by_cost(f->root)) < 0)
        goto cleanup;
    if ((rc = ids_of(f->root, &ids)) < 0)
        goto cleanup;
    if (ids.bounded) {
        f->ids = ids.v;
        f->n_ids = ids.n;
        ids.v = NULL;
    }
cleanup:
    free(p.tok.str);
    free(ids.v);
    if (rc < 0) {
        rag_filter_free(f);
        return rc;
    }
    *out = f;
    return RAG_OK;
}

void rag_filter_free(rag_filter *f)
{
    if (!f)
        return;
    node_free(f->root);
    free(f->ids);
    free(f);
}

unsigned rag_filter_fields(const rag_filter *f)
{
    return f ? f->fields : 0;
}

const char *const *rag_filter_doc_ids(const rag_filter *f, size_t *n)
{
    if (n)
        *n = f && f->ids ? f->n_ids : 0;
    return f ? (const char *const *)f->ids : NULL;
}

/* ---- evaluation ------------------------------------------------------------------------ */

typedef struct ectx {
    const rag_filter_doc *doc;
    json_t *meta;
    int meta_loaded;
} ectx;

/* The metadata object, parsed on first use; NULL when absent or not an object. */
static const json_t *ctx_meta(ectx *c)
{
    if (!c->meta_loaded) {
        const char *m = c->doc->metadata_json;
        c->meta_loaded = 1;
        if (m && *m) {
            json_t *j = json_loads(m, JSON_ALLOW_NUL, NULL);
            if (j && !json_is_object(j)) {
                json_decref(j);
                j = NULL;
            }
            c->meta = j;
        }
    }
    return c->meta;
}

static int num_cmp(const fnum *a, const fnum *b)
{
    if (a->is_int && b->is_int)
        return (a->i > b->i) - (a->i < b->i);
    return (a->d > b->d) - (a->d < b->d);
}

/* Compares document value x with literal v: returns 1 and sets *c (<0, 0, >0) when their
 * types compare, 0 on a mismatch. */
static int value_cmp(const dval *x, const fvalue *v, int *c)
{
    switch (v->type) {
    case V_NULL:
        *c = 0;
        return x->type == V_NULL;
    case V_BOOL:
        *c = x->b - v->b;
        return x->type == V_BOOL;
    case V_NUM:
        if (x->type != V_NUM)
            return 0;
        *c = num_cmp(&x->n, &v->n);
        return 1;
    case V_STR:
        if (x->type == V_STR) {
            fnum t;
            if (v->has_time && iso_parse(x->s, x->len, &t)) {
                *c = num_cmp(&t, &v->n);
            } else {
                size_t m = x->len < v->len ? x->len : v->len;
                int r = memcmp(x->s, v->s, m);
                *c = r ? r : (x->len > v->len) - (x->len < v->len);
            }
            return 1;
        }
        if (x->type == V_NUM && v->has_time) {
            *c = num_cmp(&x->n, &v->n);
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* Per-comparison accumulator over the values a field yields. */
typedef struct cmpstate {
    const fnode *n;
    int hit;        /* a value satisfied the positive test (for != / NOT IN: equalled) */
    int comparable; /* != / NOT IN: a value of a comparable type was seen */
} cmpstate;

/* Feeds one document value; returns 1 when the outcome is decided. */
static int leaf(cmpstate *st, const dval *x)
{
    const fnode *n = st->n;
    int c, c2;
    switch (n->op) {
    case OP_EQ:
    case OP_IN:
        for (size_t i = 0; i < n->n_vals; i++)
            if (value_cmp(x, &n->vals[i], &c) && c == 0)
                return st->hit = 1;
        return 0;
    case OP_NE:
    case OP_NOT_IN:
        for (size_t i = 0; i < n->n_vals; i++) {
            if (value_cmp(x, &n->vals[i], &c)) {
                if (c == 0)
                    return st->hit = 1;
                st->comparable = 1;
            } else if (n->vals[i].type == V_NULL) {
                st->comparable = 1; /* anything present differs from null */
            }
        }
        return 0;
    case OP_LT: st->hit = value_cmp(x, &n->vals[0], &c) && c < 0; return st->hit;
    case OP_LE: st->hit = value_cmp(x, &n->vals[0], &c) && c <= 0; return st->hit;
    case OP_GT: st->hit = value_cmp(x, &n->vals[0], &c) && c > 0; return st->hit;
    case OP_GE: st->hit = value_cmp(x, &n->vals[0], &c) && c >= 0; return st->hit;
    case OP_BETWEEN:
        st->hit = value_cmp(x, &n->vals[0], &c) && c >= 0 && value_cmp(x, &n->vals[1], &c2) &&
                  c2 <= 0;
        return st->hit;
    case OP_PREFIX:
        st->hit = x->type == V_STR && x->len >= n->vals[0].len &&
                  memcmp(x->s, n->vals[0].s, n->vals[0].len) == 0;
        return st->hit;
    }
    return 0;
}

static void json_dval(const json_t *j, dval *x)
{
    memset(x, 0, sizeof *x);
    switch (json_typeof(j)) {
    case JSON_STRING:
        x->type = V_STR;
        x->s = json_string_value(j);
        x->len = json_string_length(j);
        break;
    case JSON_INTEGER:
        x->type = V_NUM;
        x->n.is_int = 1;
        x->n.i = json_integer_value(j);
        x->n.d = (double)x->n.i;
        break;
    case JSON_REAL:
        x->type = V_NUM;
        x->n.d = json_real_value(j);
        break;
    case JSON_TRUE: x->type = V_BOOL; x->b = 1; break;
    case JSON_FALSE: x->type = V_BOOL; x->b = 0; break;
    case JSON_NULL: x->type = V_NULL; break;
    default: x->type = V_OTHER;
    }
}

/* Walks path[i..] from j, feeding every value reached to st (st NULL: existence only).
 * Arrays met before the end of the path are searched element by element; an array at the
 * end feeds its elements. Returns 1 when decided (a hit, or the path exists). */
static int walk(const json_t *j, const ffield *f, size_t i, cmpstate *st)
{
    dval x;
    if (i == f->n_path) {
        if (!st)
            return 1;
        if (json_is_array(j)) {
            for (size_t k = 0; k < json_array_size(j); k++) {
                json_dval(json_array_get(j, k), &x);
                if (leaf(st, &x))
                    return 1;
            }
            return 0;
        }
        json_dval(j, &x);
        return leaf(st, &x);
    }
    if (json_is_object(j)) {
        const json_t *kid = json_object_getn(j, f->path[i].s, f->path[i].len);
        return kid ? walk(kid, f, i + 1, st) : 0;
    }
    if (json_is_array(j)) {
        const fkey *key = &f->path[i];
        if (key->len && key->s[0] >= '0' && key->s[0] <= '9') { /* an index */
            size_t idx = 0;
            for (size_t k = 0; k < key->len; k++) {
                if (key->s[k] < '0' || key->s[k] > '9' || idx > (SIZE_MAX - 9) / 10)
                    return 0;
                idx = idx * 10 + (size_t)(key->s[k] - '0');
            }
            return idx < json_array_size(j) ? walk(json_array_get(j, idx), f, i + 1, st) : 0;
        }
        for (size_t k = 0; k < json_array_size(j); k++)
            if (walk(json_array_get(j, k), f, i, st))
                return 1;
    }
    return 0;
}

/* The built-in field's value; 0 when missing. */
static int builtin_value(const rag_filter_doc *d, fkind k, dval *x)
{
    const char *s = NULL;
    int64_t t = 0;
    memset(x, 0, sizeof *x);
    switch (k) {
    case F_DOC_ID: s = d->doc_id; break;
    case F_SOURCE: s = d->source; break;
    case F_TITLE: s = d->title; break;
    case F_SOURCE_MTIME: t = d->source_mtime; break;
    case F_INGESTED_AT: t = d->ingested_at; break;
    case F_UPDATED_AT: t = d->updated_at; break;
    default: return 0;
    }
    if (is_time_field(k)) {
        if (t == 0)
            return 0;
        x->type = V_NUM;
        x->n.is_int = 1;
        x->n.i = t;
        x->n.d = (double)t;
        return 1;
    }
    if (!s || !*s)
        return 0;
    x->type = V_STR;
    x->s = s;
    x->len = strlen(s);
    return 1;
}

static int eval(const fnode *n, ectx *c)
{
    dval x;
    switch (n->kind) {
    case N_AND:
        for (size_t i = 0; i < n->n_kids; i++)
            if (!eval(n->kids[i], c))
                return 0;
        return 1;
    case N_OR:
        for (size_t i = 0; i < n->n_kids; i++)
            if (eval(n->kids[i], c))
                return 1;
        return 0;
    case N_NOT:
        return !eval(n->kids[0], c);
    case N_EXISTS:
        if (n->field.kind != F_META)
            return builtin_value(c->doc, n->field.kind, &x);
        return ctx_meta(c) ? walk(ctx_meta(c), &n->field, 0, NULL) : 0;
    case N_CMP: {
        cmpstate st = {n, 0, 0};
        if (n->field.kind != F_META) {
            if (builtin_value(c->doc, n->field.kind, &x))
                leaf(&st, &x);
        } else if (ctx_meta(c)) {
            walk(ctx_meta(c), &n->field, 0, &st);
        }
        if (n->op == OP_NE || n->op == OP_NOT_IN)
            return st.comparable && !st.hit;
        return st.hit;
    }
    }
    return 0;
}

int rag_filter_match(const rag_filter *f, const rag_filter_doc *doc)
{
    if (!f || !doc || !f->root)
        return 0;
    ectx c = {doc, NULL, 0};
    int r = eval(f->root, &c);
    json_decref(c.meta);
    return r;
}
