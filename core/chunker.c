/* chunker.c - recursive, Markdown-aware splitting of document text into token-bounded chunks. */
#include "chunker.h"

#include "status.h"

#include <limits.h>
#include <string.h>
#include <utf8proc.h>

/* How good a place the boundary *before* an atom is for ending a chunk (higher is better). */
enum {
    BRK_CP = 0,     /* inside an over-long word (grapheme / code point cut) */
    BRK_WORD = 1,   /* whitespace, or next to a CJK character */
    BRK_LINE = 2,   /* a single line break */
    BRK_SENT = 3,   /* after . ! ? (followed by space/end) or 。！？ */
    BRK_PARA = 4,   /* a blank line */
    BRK_FENCE = 5   /* start or end of a fenced code block */
};

/* The smallest unit of packing: a word (or a piece of an over-long word), no whitespace. */
typedef struct atom {
    size_t start, end;     /* byte span in the source text */
    size_t block_end;      /* fence-opening atoms: index one past the code block's last atom */
    int tokens;            /* packing weight: count of the span, at least 1 */
    unsigned char strength;
} atom;

typedef struct heading {
    size_t off, len;       /* heading text in the source; len 0 = level unused */
} heading;

typedef struct chunker {
    const rag_chunker_config *cfg;
    rag_token_count_fn count;
    void *count_user;
    const char *text;
    size_t len;
    rag_chunk_list *out;
    atom *atoms;
    size_t natoms, atoms_cap;
    long long *prefix;     /* prefix[i] = sum of atoms[0..i).tokens */
    size_t prefix_cap;
    char *path;            /* heading path of the current section */
    size_t path_cap;
    heading heads[7];      /* heading stack, levels 1..6 */
} chunker;

/* ---------------------------------------------------------------------------------- */
/* Code point helpers.                                                                  */

/* Decodes the code point at text[i] (i < len); *cp = -1 for an invalid sequence, which
 * then counts as one byte. Returns the sequence length (>= 1). */
static size_t decode(const char *text, size_t len, size_t i, int32_t *cp)
{
    unsigned char c = (unsigned char)text[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)text + i,
                                          (utf8proc_ssize_t)(len - i), cp);
    if (n <= 0) {
        *cp = -1;
        return 1;
    }
    return (size_t)n;
}

/* Start of the code point that ends just before byte x (x > lo). */
static size_t prev_cp_start(const char *text, size_t lo, size_t x)
{
    size_t s = x - 1;
    while (s > lo && ((unsigned char)text[s] & 0xC0) == 0x80)
        s--;
    return s;
}

static int is_space_cp(int32_t cp)
{
    if (cp < 0x80)
        return cp == ' ' || (cp >= '\t' && cp <= '\r');
    if (cp == 0x85)
        return 1;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}

/* CJK ideographs: BERT-style tokenizers give each its own token. */
static int is_cjk_ideograph(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2CEAF) || (cp >= 0x2F800 && cp <= 0x2FA1F) ||
           (cp >= 0x30000 && cp <= 0x3134F);
}

static int is_cjk_punct(int32_t cp)
{
    if (!((cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF00 && cp <= 0xFFEF)))
        return 0;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_SO;
}

/* CJK closing punctuation (」』） ...): attaches to the word before it. */
static int is_cjk_closer(int32_t cp)
{
    if (!is_cjk_punct(cp))
        return 0;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_PE || cat == UTF8PROC_CATEGORY_PF;
}

/* Characters that form a word of their own although no space surrounds them. */
static int is_split_cp(int32_t cp)
{
    return cp >= 0x2E80 && (is_cjk_ideograph(cp) || is_cjk_punct(cp));
}

static int is_closer_cp(int32_t cp)
{
    switch (cp) {
    case ')': case ']': case '}': case '"': case '\'': case '*': case '_': case '`':
    case 0x201D: case 0x2019: case 0x00BB: case 0x300D: case 0x300F: case 0xFF09:
        return 1;
    default:
        return 0;
    }
}

/* Whether the word text[ws, we) ends a sentence. ASCII terminators count only when the
 * word is followed by whitespace or the end (`spaced`); CJK ones always do. */
static int ends_sentence(const char *text, size_t ws, size_t we, int spaced)
{
    size_t x = we;
    while (x > ws) {
        size_t st = prev_cp_start(text, ws, x);
        int32_t cp;
        decode(text, we, st, &cp);
        if (is_closer_cp(cp)) {
            x = st;
            continue;
        }
        if (cp == '.' || cp == '!' || cp == '?')
            return spaced;
        return cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F || cp == 0xFF0E ||
               cp == 0xFF61 || cp == 0x2026;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Token approximation.                                                                 */

static long long run_cost(size_t n)
{
    if (n == 0)
        return 0;
    return 1 + (n > 6 ? (long long)((n - 6 + 3) / 4) : 0);
}

static int is_ascii_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

int rag_approx_tokens(void *user, const char *text, size_t len)
{
    (void)user;
    long long tokens = 0;
    size_t run = 0, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x80) {
            i++;
            if (is_ascii_alnum(c)) {
                run++;
                continue;
            }
            tokens += run_cost(run);
            run = 0;
            if (c > 0x20 && c < 0x7F)
                tokens++;
            continue;
        }
        int32_t cp;
        i += decode(text, len, i, &cp);
        if (cp < 0) {
            tokens += run_cost(run) + 1;
            run = 0;
            continue;
        }
        switch (utf8proc_category(cp)) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
            if (is_cjk_ideograph(cp)) {
                tokens += run_cost(run) + 1;
                run = 0;
            } else {
                run++;
            }
            break;
        case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
            break; /* stripped by BERT-style normalisation */
        case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
            tokens += run_cost(run);
            run = 0;
            break;
        default: /* punctuation, symbols (emoji), private use, unassigned */
            tokens += run_cost(run) + 1;
            run = 0;
            break;
        }
    }
    tokens += run_cost(run);
    return tokens > INT_MAX ? INT_MAX : (int)tokens;
}

/* ---------------------------------------------------------------------------------- */
/* Markdown line classification (shared by the section and the atom passes).            */

/* Leading spaces of line [ls, le); returns 4 for a tab or four or more spaces. */
static size_t md_indent(const char *text, size_t ls, size_t le)
{
    size_t i = ls;
    while (i < le && i - ls < 4 && text[i] == ' ')
        i++;
    if (i < le && i - ls < 4 && text[i] == '\t')
        return 4;
    return i - ls;
}

static size_t trim_end(const char *text, size_t ls, size_t le)
{
    while (le > ls && (text[le - 1] == ' ' || text[le - 1] == '\t' || text[le - 1] == '\r'))
        le--;
    return le;
}

static int is_blank(const char *text, size_t ls, size_t le)
{
    for (size_t i = ls; i < le; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r')
            return 0;
    return 1;
}

static size_t skip_blanks(const char *text, size_t i, size_t le)
{
    while (i < le && (text[i] == ' ' || text[i] == '\t'))
        i++;
    return i;
}

/* An opening code fence (``` or ~~~): sets *ch and *n. Any indentation is accepted, as
 * fences nested in list items are common in real documents. */
static int md_fence_open(const char *text, size_t ls, size_t le, char *ch, size_t *n)
{
    size_t i = skip_blanks(text, ls, le);
    if (i >= le || (text[i] != '`' && text[i] != '~'))
        return 0;
    char c = text[i];
    size_t k = i;
    while (k < le && text[k] == c)
        k++;
    if (k - i < 3)
        return 0;
    if (c == '`' && memchr(text + k, '`', le - k))
        return 0; /* a backtick fence's info string has no backticks */
    *ch = c;
    *n = k - i;
    return 1;
}

static int md_fence_close(const char *text, size_t ls, size_t le, char ch, size_t n)
{
    size_t i = skip_blanks(text, ls, le), k = i;
    while (k < le && text[k] == ch)
        k++;
    return k - i >= n && is_blank(text, k, le);
}

/* An ATX heading "# text #": returns its level (1-6) and the text span, else 0. */
static int md_atx(const char *text, size_t ls, size_t le, size_t *ts, size_t *te)
{
    size_t ind = md_indent(text, ls, le);
    if (ind > 3)
        return 0;
    size_t i = ls + ind, k = i;
    while (k < le && text[k] == '#')
        k++;
    int level = (int)(k - i);
    if (level < 1 || level > 6)
        return 0;
    if (k < le && text[k] != ' ' && text[k] != '\t' && text[k] != '\r')
        return 0;
    while (k < le && (text[k] == ' ' || text[k] == '\t'))
        k++;
    size_t e = trim_end(text, k, le);
    size_t q = e;
    while (q > k && text[q - 1] == '#')
        q--;
    if (q == k)
        e = k; /* only closing hashes */
    else if (q < e && (text[q - 1] == ' ' || text[q - 1] == '\t'))
        e = trim_end(text, k, q);
    *ts = k;
    *te = e;
    return level;
}

/* A setext underline ("===" or "---" only): returns 1 or 2, else 0. */
static int md_setext(const char *text, size_t ls, size_t le)
{
    size_t ind = md_indent(text, ls, le);
    if (ind > 3)
        return 0;
    size_t i = ls + ind, k = i;
    if (i >= le || (text[i] != '=' && text[i] != '-'))
        return 0;
    while (k < le && text[k] == text[i])
        k++;
    if (!is_blank(text, k, le) || k - i < (text[i] == '=' ? 2u : 3u))
        return 0;
    return text[i] == '=' ? 1 : 2;
}

/* A thematic break: three or more of the same '-', '*' or '_', spaces allowed. */
static int md_thematic_break(const char *text, size_t ls, size_t le)
{
    size_t i = skip_blanks(text, ls, le), k = 0;
    if (i >= le || (text[i] != '-' && text[i] != '*' && text[i] != '_'))
        return 0;
    char c = text[i];
    for (; i < le; i++) {
        if (text[i] == c)
            k++;
        else if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r')
            return 0;
    }
    return k >= 3;
}

/* A line that may serve as setext heading text (a plain paragraph line). */
static int md_paragraph_line(const char *text, size_t ls, size_t le)
{
    size_t ind = md_indent(text, ls, le);
    if (ind > 3)
        return 0;
    size_t i = ls + ind;
    if (i >= le || text[i] == '>' || text[i] == '|')
        return 0;
    if ((text[i] == '-' || text[i] == '*' || text[i] == '+') &&
        (i + 1 == le || text[i + 1] == ' ' || text[i + 1] == '\t'))
        return 0; /* list item */
    return 1;
}

static size_t line_end(const char *text, size_t len, size_t ls)
{
    const char *nl = memchr(text + ls, '\n', len - ls);
    return nl ? (size_t)(nl - text) : len;
}

/* ---------------------------------------------------------------------------------- */
/* Atoms of one section.                                                                */

static int count_span(const chunker *ck, size_t start, size_t end)
{
    int n = ck->count(ck->count_user, ck->text + start, end - start);
    return n < 0 ? 0 : n;
}

static int push_atom(chunker *ck, size_t start, size_t end, int tokens, int strength)
{
    if (ck->natoms == ck->atoms_cap) {
        size_t cap = ck->atoms_cap ? ck->atoms_cap * 2 : 1024;
        atom *a = rag_realloc(ck->atoms, cap * sizeof *a);
        if (!a)
            return RAG_ENOMEM;
        ck->atoms = a;
        ck->atoms_cap = cap;
    }
    atom *a = &ck->atoms[ck->natoms++];
    a->start = start;
    a->end = end;
    a->block_end = 0;
    a->tokens = tokens < 1 ? 1 : tokens;
    a->strength = (unsigned char)strength;
    return RAG_OK;
}

/* Grapheme-cluster boundary at byte x (lo < x < hi), judged from the two code points
 * around it. */
static int grapheme_break_at(const char *text, size_t lo, size_t hi, size_t x)
{
    int32_t a, b;
    decode(text, hi, prev_cp_start(text, lo, x), &a);
    decode(text, hi, x, &b);
    if (a < 0 || b < 0)
        return 1;
    utf8proc_int32_t state = 0;
    return utf8proc_grapheme_break_stateful(a, b, &state);
}

/* Largest code point boundary <= x in (p, we], moved back (a little) to a grapheme
 * boundary when possible; at least one code point past p. */
static size_t snap_down(const char *text, size_t p, size_t we, size_t x)
{
    if (x >= we)
        return we;
    while (x > p && ((unsigned char)text[x] & 0xC0) == 0x80)
        x--;
    size_t y = x;
    for (int steps = 0; y > p && steps < 32; steps++) {
        if (grapheme_break_at(text, p, we, y))
            return y;
        y = prev_cp_start(text, p, y);
    }
    if (x > p)
        return x;
    int32_t cp;
    return p + decode(text, we, p, &cp);
}

/* Splits a word whose count exceeds the target into pieces that each fit (cut at
 * grapheme boundaries where possible, code points otherwise). A single code point that
 * alone exceeds the target becomes a piece of its own. */
static int split_long_word(chunker *ck, size_t ws, size_t we, int strength)
{
    const long long target = ck->cfg->target_tokens;
    size_t p = ws;
    while (p < we) {
        int32_t cp;
        size_t one = p + decode(ck->text, we, p, &cp);
        /* first grapheme cluster (bounded), falling back to one code point */
        size_t good = one;
        for (int steps = 0; good < we && steps < 32 && !grapheme_break_at(ck->text, p, we, good);
             steps++)
            good += decode(ck->text, we, good, &cp);
        int good_tok = count_span(ck, p, good);
        if (good_tok > target && good != one) {
            good = one;
            good_tok = count_span(ck, p, good);
        }
        /* gallop, then bisect on code point boundaries */
        size_t bad = 0, step = (size_t)target * 4 + 16;
        while (good < we && good_tok <= target) {
            size_t x = snap_down(ck->text, p, we, good + step);
            if (x <= good) {
                step *= 2;
                continue;
            }
            int t = count_span(ck, p, x);
            if (t > target) {
                bad = x;
                break;
            }
            good = x;
            good_tok = t;
            step *= 2;
        }
        while (bad) {
            size_t mid = good + (bad - good) / 2;
            while (mid > good && ((unsigned char)ck->text[mid] & 0xC0) == 0x80)
                mid--;
            if (mid == good)
                mid = good + decode(ck->text, we, good, &cp);
            if (mid >= bad)
                break;
            int t = count_span(ck, p, mid);
            if (t > target) {
                bad = mid;
            } else {
                good = mid;
                good_tok = t;
            }
        }
        if (bad && good < we) { /* prefer a grapheme boundary at the cut */
            size_t g = snap_down(ck->text, p, we, good);
            if (g > p && g < good && g >= one) {
                good = g;
                good_tok = count_span(ck, p, good);
            }
        }
        int rc = push_atom(ck, p, good, good_tok, p == ws ? strength : BRK_CP);
        if (rc)
            return rc;
        p = good;
    }
    return RAG_OK;
}

static int add_word(chunker *ck, size_t ws, size_t we, int strength)
{
    int t = count_span(ck, ws, we);
    if (t > ck->cfg->target_tokens && we - ws > 1)
        return split_long_word(ck, ws, we, strength);
    return push_atom(ck, ws, we, t, strength);
}

/* Fills ck->atoms with the words of section [start, end). */
static int build_atoms(chunker *ck, size_t start, size_t end)
{
    const char *text = ck->text;
    const int md = ck->cfg->markdown;
    int newlines = 0, prev_sent = 0, force = 0, in_fence = 0, rc;
    char fch = 0;
    size_t flen = 0, fence_atom = 0;
    ck->natoms = 0;
    size_t ls = start;
    while (ls < end) {
        size_t le = line_end(text, end, ls);
        int opening = 0, closing = 0;
        if (md) {
            if (in_fence)
                closing = md_fence_close(text, ls, le, fch, flen);
            else
                opening = md_fence_open(text, ls, le, &fch, &flen);
        }
        if (opening) {
            force = BRK_FENCE;
            fence_atom = ck->natoms;
        }
        int code = in_fence || opening;
        size_t i = ls;
        while (i < le) {
            int32_t cp;
            size_t n = decode(text, le, i, &cp);
            if (is_space_cp(cp)) {
                i += n;
                continue;
            }
            size_t ws = i;
            int spaced = 1;
            i += n;
            if (!is_split_cp(cp)) {
                while (i < le) {
                    n = decode(text, le, i, &cp);
                    if (is_space_cp(cp))
                        break;
                    if (is_split_cp(cp) && !is_cjk_closer(cp)) {
                        spaced = 0;
                        break;
                    }
                    i += n;
                }
            } else {
                while (i < le) { /* 。」 stays together */
                    n = decode(text, le, i, &cp);
                    if (!is_cjk_closer(cp))
                        break;
                    i += n;
                }
                if (i < le) {
                    decode(text, le, i, &cp);
                    spaced = is_space_cp(cp);
                }
            }
            int strength = newlines >= 2 ? BRK_PARA : newlines == 1 ? BRK_LINE : BRK_WORD;
            if (prev_sent && strength < BRK_SENT)
                strength = BRK_SENT;
            if (force > strength)
                strength = force;
            if ((rc = add_word(ck, ws, i, strength)))
                return rc;
            force = 0;
            newlines = 0;
            prev_sent = !code && ends_sentence(text, ws, i, spaced);
        }
        if (le < end)
            newlines++;
        if (opening) {
            in_fence = 1;
        } else if (closing) {
            in_fence = 0;
            ck->atoms[fence_atom].block_end = ck->natoms;
            force = BRK_FENCE;
            prev_sent = 0;
        }
        ls = le + 1;
    }
    if (in_fence && fence_atom < ck->natoms)
        ck->atoms[fence_atom].block_end = ck->natoms;
    return RAG_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Packing atoms into chunks.                                                           */

/* Chooses where chunk [s, c) ends, c in [need, e] (e < n): the strongest boundary whose
 * chunk is at least a third of the target (or the start of a code block that fits a
 * chunk whole), the latest among equals; e itself when nothing better qualifies. */
static size_t choose_cut(const chunker *ck, size_t s, size_t e, size_t need)
{
    const atom *a = ck->atoms;
    const long long *P = ck->prefix;
    const long long target = ck->cfg->target_tokens;
    const long long min_fill = (target + 2) / 3;
    size_t best = e;
    int best_str = a[e].strength;
    for (size_t c = e - 1; c >= need && c > s && best_str < BRK_FENCE; c--) {
        int st = a[c].strength;
        if (st <= best_str)
            continue;
        int ok = P[c] - P[s] >= min_fill;
        if (!ok && st == BRK_FENCE && a[c].block_end > c &&
            P[a[c].block_end] - P[c] <= target)
            ok = 1;
        if (ok) {
            best = c;
            best_str = st;
        }
    }
    return best;
}

/* Start of the chunk after [s, c): about `overlap` tokens before c, at a sentence or
 * line boundary when one gives at least half the overlap, else at the word boundary
 * giving the most overlap within the bound; c itself (no overlap) after a code block or
 * when atom c would not fit beside the overlap. */
static size_t choose_overlap(const chunker *ck, size_t s, size_t c)
{
    const atom *a = ck->atoms;
    const long long *P = ck->prefix;
    const long long ov = ck->cfg->overlap_tokens, target = ck->cfg->target_tokens;
    if (ov == 0 || a[c].strength == BRK_FENCE)
        return c;
    size_t j = c, strong = c;
    int strong_str = -1;
    while (j > s + 1) {
        long long t = P[c] - P[j - 1];
        if (t > ov || t + a[c].tokens > target)
            break;
        j--;
        if (2 * t >= ov && a[j].strength >= strong_str) {
            strong = j;
            strong_str = a[j].strength;
        }
        if (a[j].strength == BRK_FENCE)
            break; /* never reach back across a code block boundary */
    }
    return strong_str > BRK_WORD ? strong : j;
}

static int emit_chunk(chunker *ck, size_t start, size_t end, int tokens)
{
    rag_chunk_list *out = ck->out;
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 16;
        rag_chunk *items = rag_realloc(out->items, cap * sizeof *items);
        if (!items)
            return RAG_ENOMEM;
        out->items = items;
        out->cap = cap;
    }
    char *path = rag_strdup(ck->path ? ck->path : "");
    if (!path)
        return RAG_ENOMEM;
    rag_chunk *ch = &out->items[out->count++];
    ch->start = start;
    ch->end = end;
    ch->tokens = tokens;
    ch->heading_path = path;
    return RAG_OK;
}

/* Chunks one section [start, end) under the current heading path. */
static int chunk_section(chunker *ck, size_t start, size_t end)
{
    int rc = build_atoms(ck, start, end);
    if (rc)
        return rc;
    const size_t n = ck->natoms;
    if (n == 0)
        return RAG_OK;
    if (n + 1 > ck->prefix_cap) {
        long long *p = rag_realloc(ck->prefix, (n + 1) * sizeof *p);
        if (!p)
            return RAG_ENOMEM;
        ck->prefix = p;
        ck->prefix_cap = n + 1;
    }
    const atom *a = ck->atoms;
    long long *P = ck->prefix;
    P[0] = 0;
    for (size_t i = 0; i < n; i++)
        P[i + 1] = P[i] + a[i].tokens;

    const long long target = ck->cfg->target_tokens, min_fill = (target + 2) / 3;
    size_t s = 0, E = 0, need = 1;
    while (s < n) {
        if (E < s + 1)
            E = s + 1;
        while (E < n && P[E + 1] - P[s] <= target)
            E++;
        size_t e = E < need ? need : E, c;
        int tok;
        for (;;) {
            c = e >= n ? n : choose_cut(ck, s, e, need);
            if (c < n && P[n] - P[c] < min_fill) {
                /* the section's last chunk would be a scrap: end this one earlier */
                size_t e2 = c;
                while (e2 > need && P[n] - P[e2] < min_fill)
                    e2--;
                if (e2 < c && P[n] - P[e2] >= min_fill && P[e2] - P[s] >= min_fill)
                    c = choose_cut(ck, s, e2, need);
            }
            tok = count_span(ck, a[s].start, a[c - 1].end);
            if (tok <= target || c - s <= 1)
                break;
            /* the counter disagrees with the sum of the pieces: drop atoms from the end */
            long long excess = tok - target, dropped = a[c - 1].tokens;
            size_t j = c - 1;
            while (dropped < excess && j > s + 1)
                dropped += a[--j].tokens;
            if (j < need) {
                s = need - 1; /* give up the overlap first */
                e = c;
                continue;
            }
            e = j;
        }
        if ((rc = emit_chunk(ck, a[s].start, a[c - 1].end, tok)))
            return rc;
        if (c >= n)
            break;
        s = choose_overlap(ck, s, c);
        need = c + 1;
    }
    return RAG_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Sections (Markdown headings).                                                        */

/* Sets ck->path to the heading stack joined with " > ". */
static int build_path(chunker *ck)
{
    size_t need = 1;
    for (int l = 1; l <= 6; l++)
        need += ck->heads[l].len + 3;
    if (need > ck->path_cap) {
        char *p = rag_realloc(ck->path, need);
        if (!p)
            return RAG_ENOMEM;
        ck->path = p;
        ck->path_cap = need;
    }
    size_t k = 0;
    for (int l = 1; l <= 6; l++) {
        if (!ck->heads[l].len)
            continue;
        if (k) {
            memcpy(ck->path + k, " > ", 3);
            k += 3;
        }
        memcpy(ck->path + k, ck->text + ck->heads[l].off, ck->heads[l].len);
        k += ck->heads[l].len;
    }
    ck->path[k] = '\0';
    return RAG_OK;
}

/* Markdown walk: cuts the text at ATX and setext headings (not inside code fences or
 * YAML front matter) and chunks each section. A section holding nothing but its heading
 * joins the next section when that one is a subsection ("# A\n## B\ntext" is one
 * section "A > B"). */
static int chunk_markdown(chunker *ck)
{
    const char *text = ck->text;
    const size_t len = ck->len;
    size_t sec_start = 0, ls = 0;
    int sec_level = 0, has_content = 0, rc;
    int prev_para = 0, content_before_prev = 0;
    size_t prev_start = 0;
    char fch = 0;
    size_t flen = 0;
    int in_fence = 0;

    /* YAML front matter: "---" first line up to a "---" or "..." line */
    size_t le = line_end(text, len, 0);
    if (le < len && trim_end(text, 0, le) == 3 && memcmp(text, "---", 3) == 0) {
        for (size_t p = le + 1; p < len;) {
            size_t pe = line_end(text, len, p), te = trim_end(text, p, pe);
            if (te - p == 3 && (memcmp(text + p, "---", 3) == 0 || memcmp(text + p, "...", 3) == 0)) {
                ls = pe < len ? pe + 1 : len;
                has_content = 1;
                break;
            }
            p = pe + 1;
        }
    }

    while (ls < len) {
        le = line_end(text, len, ls);
        size_t next = le < len ? le + 1 : len;
        size_t ts = 0, te = 0, at = ls;
        int level = 0, had_content = has_content;
        if (in_fence) {
            if (md_fence_close(text, ls, le, fch, flen))
                in_fence = 0;
            prev_para = 0;
            ls = next;
            continue;
        }
        if (md_fence_open(text, ls, le, &fch, &flen)) {
            in_fence = 1;
            has_content = 1;
            prev_para = 0;
            ls = next;
            continue;
        }
        if ((level = md_atx(text, ls, le, &ts, &te)) == 0 && prev_para &&
            (level = md_setext(text, ls, le)) != 0) {
            at = prev_start;
            ts = prev_start + md_indent(text, prev_start, ls - 1);
            te = trim_end(text, ts, ls - 1);
            had_content = content_before_prev;
        }
        if (level) {
            if (!(sec_level > 0 && !had_content && level > sec_level)) {
                if (at > sec_start) {
                    if ((rc = build_path(ck)) || (rc = chunk_section(ck, sec_start, at)))
                        return rc;
                }
                sec_start = at;
            }
            ck->heads[level].off = ts;
            ck->heads[level].len = te - ts;
            for (int l = level + 1; l <= 6; l++)
                ck->heads[l].len = 0;
            sec_level = level;
            has_content = 0;
            prev_para = 0;
        } else if (is_blank(text, ls, le) || md_thematic_break(text, ls, le)) {
            prev_para = 0; /* neither counts as section content */
        } else {
            content_before_prev = has_content;
            has_content = 1;
            prev_para = md_paragraph_line(text, ls, le);
            prev_start = ls;
        }
        ls = next;
    }
    if (len > sec_start) {
        if ((rc = build_path(ck)) || (rc = chunk_section(ck, sec_start, len)))
            return rc;
    }
    return RAG_OK;
}

/* ---------------------------------------------------------------------------------- */

int rag_chunk_text(const rag_chunker_config *cfg, const char *text, size_t len,
                   rag_chunk_list *out)
{
    int rc = RAG_OK;
    chunker ck;
    memset(&ck, 0, sizeof ck);
    if (!cfg || !out)
        return rag_fail(RAG_EINVAL, "chunker: %s is NULL", cfg ? "output list" : "config");
    if (out->count != 0)
        return rag_fail(RAG_EINVAL, "chunker: output list must be empty (has %zu chunks)",
                        out->count);
    if (!text && len > 0)
        return rag_fail(RAG_EINVAL, "chunker: text is NULL but length is %zu", len);
    if (cfg->target_tokens <= 0)
        return rag_fail(RAG_EINVAL, "chunker: target_tokens must be > 0 (got %d)",
                        cfg->target_tokens);
    if (cfg->overlap_tokens < 0 || cfg->overlap_tokens >= cfg->target_tokens)
        return rag_fail(RAG_EINVAL,
                        "chunker: overlap_tokens must be in [0, target_tokens) (got %d with "
                        "target_tokens %d)", cfg->overlap_tokens, cfg->target_tokens);
    for (size_t i = 0; i < len;) {
        if ((unsigned char)text[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        size_t n = decode(text, len, i, &cp);
        if (cp < 0)
            return rag_fail(RAG_EENCODING, "chunker: invalid UTF-8 at byte %zu", i);
        i += n;
    }

    ck.cfg = cfg;
    ck.count = cfg->count ? cfg->count : rag_approx_tokens;
    ck.count_user = cfg->count ? cfg->count_user : NULL;
    ck.text = text;
    ck.len = len;
    ck.out = out;
    if (len == 0)
        goto cleanup;
    if (cfg->markdown) {
        rc = chunk_markdown(&ck);
    } else {
        if ((rc = build_path(&ck)) == RAG_OK)
            rc = chunk_section(&ck, 0, len);
    }

cleanup:
    rag_free(ck.atoms);
    rag_free(ck.prefix);
    rag_free(ck.path);
    if (rc) {
        rag_chunk_list_free(out);
        if (rc == RAG_ENOMEM)
            rc = rag_fail(RAG_ENOMEM, "chunker: out of memory chunking %zu bytes", len);
    }
    return rc;
}

void rag_chunk_list_free(rag_chunk_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        rag_free(list->items[i].heading_path);
    rag_free(list->items);
    list->items = NULL;
    list->count = list->cap = 0;
}
