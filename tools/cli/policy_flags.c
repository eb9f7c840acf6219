/* policy_flags.c - the hygiene flags of ingest and sync, parsed through the library's table
 * of collection settings (rag_collection_option_set), and their check against a stored
 * policy. */
#include "policy_flags.h"

#include "cli.h"

#include <jansson.h>
#include <string.h>

#define GIVEN(code) (1u << ((code) - PF_PII))

/* The flag name of each code, and the collection setting it sets. */
static const struct {
    int code;
    const char *flag, *option;
} FLAGS[] = {
    {PF_PII, "--pii", "pii"},
    {PF_PII_TYPES, "--pii-types", "pii_types"},
    {PF_NEAR_DUP, "--near-dup", "dedup"},
    {PF_THRESHOLD, "--near-dup-threshold", "near_dup_threshold"},
    {PF_QUALITY, "--quality", "quality"},
    {PF_MIN_CHARS, "--min-chars", "min_chars"},
    {PF_MAX_CHARS, "--max-chars", "max_chars"},
    {PF_SYMBOLS, "--max-symbol-ratio", "max_symbol_ratio"},
    {PF_TOXICITY, "--toxicity", "toxicity"},
    {PF_TOX_THRESHOLD, "--toxicity-threshold", "toxicity_threshold"},
    {PF_TOX_DETECTORS, "--toxicity-detectors", "toxicity_detectors"},
};
#define N_FLAGS (sizeof FLAGS / sizeof FLAGS[0])

void cli_policy_init(cli_policy *p)
{
    memset(p, 0, sizeof *p);
    rag_collection_options_init(&p->opts);
    p->opts.dedup = RAG_DEDUP_SKIP;
}

int cli_policy_flag(cli_policy *p, const char *cmd, int code, const char *arg)
{
    for (size_t i = 0; i < N_FLAGS; i++) {
        if (FLAGS[i].code != code)
            continue;
        if (rag_collection_option_set(&p->opts, FLAGS[i].option, code == PF_QUALITY ? "on" : arg) !=
            RAG_OK) {
            cli_error(cmd, "%s: %s", FLAGS[i].flag, rag_errmsg());
            return -1;
        }
        if (code == PF_THRESHOLD && !(p->opts.near_dup_threshold > 0 &&
                                      p->opts.near_dup_threshold <= 1)) {
            cli_error(cmd, "--near-dup-threshold expects a number in (0, 1], got '%s'", arg);
            return -1;
        }
        p->given |= GIVEN(code);
        return 1;
    }
    return 0;
}

int cli_policy_finish(cli_policy *p, const char *cmd)
{
    unsigned quality = GIVEN(PF_QUALITY) | GIVEN(PF_MIN_CHARS) | GIVEN(PF_MAX_CHARS) |
                       GIVEN(PF_SYMBOLS);
    if (p->given & quality) {
        p->opts.quality = 1;
        /* without --quality, only the filters named are on */
        if (!(p->given & GIVEN(PF_QUALITY))) {
            if (!(p->given & GIVEN(PF_MIN_CHARS)))
                p->opts.min_chars = 0;
            if (!(p->given & GIVEN(PF_SYMBOLS)))
                p->opts.max_symbol_ratio = 1;
        }
    }
    if (p->opts.max_chars && p->opts.max_chars < p->opts.min_chars) {
        cli_error(cmd, "--max-chars %d is below --min-chars %d", p->opts.max_chars,
                  p->opts.min_chars);
        return -1;
    }
    return 0;
}

void cli_policy_overlay(const cli_policy *p, rag_collection_options *o)
{
    const rag_collection_options *f = &p->opts;
    if (p->given & GIVEN(PF_PII))
        o->pii = f->pii;
    if (p->given & GIVEN(PF_PII_TYPES))
        o->pii_types = f->pii_types;
    if (p->given & GIVEN(PF_NEAR_DUP))
        o->dedup = f->dedup;
    if (p->given & GIVEN(PF_THRESHOLD))
        o->near_dup_threshold = f->near_dup_threshold;
    if (p->given & (GIVEN(PF_QUALITY) | GIVEN(PF_MIN_CHARS) | GIVEN(PF_MAX_CHARS) |
                    GIVEN(PF_SYMBOLS)))
        o->quality = 1;
    if (p->given & GIVEN(PF_MIN_CHARS))
        o->min_chars = f->min_chars;
    if (p->given & GIVEN(PF_MAX_CHARS))
        o->max_chars = f->max_chars;
    if (p->given & GIVEN(PF_SYMBOLS))
        o->max_symbol_ratio = f->max_symbol_ratio;
    if (p->given & GIVEN(PF_TOXICITY))
        o->toxicity = f->toxicity;
    if (p->given & GIVEN(PF_TOX_THRESHOLD))
        o->toxicity_threshold = f->toxicity_threshold;
    if (p->given & GIVEN(PF_TOX_DETECTORS))
        o->toxicity_detectors = f->toxicity_detectors;
}

/* The settings of o as a JSON object (the library's names and text forms). */
static json_t *settings(const rag_collection_options *o)
{
    char *s = NULL;
    json_t *j = rag_collection_options_json(o, &s) == RAG_OK ? json_loads(s, 0, NULL) : NULL;
    rag_free(s);
    return j;
}

/* The text of one setting (a JSON scalar) into buf. */
static void setting_text(json_t *j, const char *name, char *buf, size_t cap)
{
    json_t *v = json_object_get(j, name);
    if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, cap, "%g", json_number_value(v));
}

int cli_policy_check(const cli_policy *p, const char *cmd, const char *dbdir, const char *coll,
                     const rag_collection_options *stored)
{
    json_t *want = settings(&p->opts), *have = settings(stored);
    char set[512] = "", was[512] = "";
    size_t ns = 0, nw = 0;
    for (size_t i = 0; want && have && i < N_FLAGS; i++) {
        const char *name = FLAGS[i].option;
        int quality_param = FLAGS[i].code >= PF_MIN_CHARS && FLAGS[i].code <= PF_SYMBOLS;
        if (!(p->given & GIVEN(FLAGS[i].code)) ||
            (json_equal(json_object_get(want, name), json_object_get(have, name)) &&
             (!quality_param || json_equal(json_object_get(want, "quality"),
                                           json_object_get(have, "quality")))))
            continue;
        char v[64], w[64];
        setting_text(want, name, v, sizeof v);
        setting_text(have, name, w, sizeof w);
        if (ns < sizeof set)
            ns += (size_t)snprintf(set + ns, sizeof set - ns, " %s%s%s", FLAGS[i].flag,
                                   FLAGS[i].code == PF_QUALITY ? "" : " ",
                                   FLAGS[i].code == PF_QUALITY ? "" : v);
        if (nw < sizeof was)
            nw += (size_t)snprintf(was + nw, sizeof was - nw, "%s%s %s", nw ? ", " : "", name, w);
    }
    json_decref(want);
    json_decref(have);
    if (!ns)
        return 0;
    cli_error(cmd, "collection '%s' exists with another hygiene policy (%s); these flags only "
              "set the policy of a new collection. Change it explicitly with\n"
              "  ragcore collection set --db %s --collection %s%s\n"
              "(it applies to what is ingested afterwards; `ragcore collection show` prints it), "
              "or leave the flags out to use the stored policy.",
              coll, was, dbdir, coll, set);
    return -1;
}

void cli_policy_help(FILE *out)
{
    fprintf(out,
            "Collection hygiene policy. The library applies a collection's stored policy on every\n"
            "path (ingest, sync, the server's upsert, library calls). These flags set the policy\n"
            "of a NEW collection; for an existing collection they must match its policy (else the\n"
            "command refuses and names `ragcore collection set`, which changes it explicitly).\n"
            "Defaults for a new collection: duplicates skipped, everything else off.\n"
            "  --pii MODE          personal data and secrets (e-mail, phone, card, IBAN, IP, SSN,\n"
            "                      keys/tokens) in text, title and metadata: off (default), mask\n"
            "                      ([EMAIL], ...), hash ([EMAIL:<hmac>], stable within the store:\n"
            "                      its key is kept in the store), drop (the whole document is not\n"
            "                      stored). Messages about such documents are masked too;\n"
            "                      document ids and source paths are not.\n"
            "  --pii-types LIST    types to detect, e.g. EMAIL,PHONE (default all)\n"
            "  --near-dup MODE     duplicates of documents already in the collection (same\n"
            "                      normalised text, or MinHash estimate of 3-word-shingle Jaccard\n"
            "                      >= threshold), found across runs: skip (default; recorded\n"
            "                      in the store's \"sources\" table as dup:<collection>/<id>\n"
            "                      with the canonical id), keep, flag (stored with metadata\n"
            "                      duplicate_of), off\n"
            "  --near-dup-threshold X  Jaccard threshold in (0, 1] (default 0.8; 0.5 catches\n"
            "                      ~10%% word edits)\n"
            "  --quality           turn on the recommended quality filters: --min-chars 20\n"
            "                      --max-symbol-ratio 0.5 (off by default: nothing is dropped\n"
            "                      for its shape unless asked)\n"
            "  --min-chars N       filter documents with fewer characters (alone: only this)\n"
            "  --max-chars N       filter documents with more characters\n"
            "  --max-symbol-ratio X  filter documents whose share of non-space characters that\n"
            "                      are not letters or digits exceeds X\n"
            "  --toxicity MODE     abusive or obscene text (needs `ragcore model pull\n"
            "                      better-profanity profanity-check`): off (default), flag\n"
            "                      (stored; metadata toxicity = score, and toxicity_detector\n"
            "                      when a detector fired: search with --filter 'toxicity < 0.5'\n"
            "                      to leave them out), drop (not stored, counted by detector)\n"
            "  --toxicity-threshold X  score at or above which a document is toxic (default 0.5)\n"
            "  --toxicity-detectors D  classifier (default: alt-profanity-check's probability),\n"
            "                      wordlist (better-profanity's list: 1 on a listed word; it\n"
            "                      also lists medical words such as sex or oral) or both (the\n"
            "                      higher score)\n"
            "A document rejected by a filter, by --pii drop, --toxicity drop or as a skipped\n"
            "duplicate also removes an older stored version with the same id. Quality and\n"
            "toxicity filters judge whole documents.\n");
}
