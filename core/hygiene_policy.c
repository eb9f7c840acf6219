/* hygiene_policy.c - collection settings: defaults, the table of settings by name, checks,
 * the JSON record in the store, and the public rag_collection_options calls. */
#include "hygiene_policy.h"

#include "db.h"
#include "hygiene_dedup.h"
#include "pii.h"
#include "status.h"
#include "store.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define AUX_CONFIG "config"

/* ---- names ------------------------------------------------------------------------------- */

static const char *const PII_NAMES[] = {"off", "mask", "hash", "drop"};
static const char *const DEDUP_NAMES[] = {"off", "skip", "keep", "flag"};
static const char *const TOX_NAMES[] = {"off", "flag", "drop"};
/* toxicity_detectors by bit value (0 reads as the classifier, the default) */
static const char *const TOX_DETECTOR_NAMES[] = {"classifier", "wordlist", "classifier", "both"};

const char *rag_policy_pii_name(rag_pii_mode m)
{
    return (unsigned)m < 4 ? PII_NAMES[m] : "unknown";
}

const char *rag_policy_dedup_name(rag_dedup_mode m)
{
    return (unsigned)m < 4 ? DEDUP_NAMES[m] : "unknown";
}

const char *rag_policy_toxicity_name(rag_toxicity_mode m)
{
    return (unsigned)m < 3 ? TOX_NAMES[m] : "unknown";
}

/* ---- the table of settings ------------------------------------------------------------- */

enum field_kind { F_PII, F_PII_TYPES, F_DEDUP, F_REAL, F_BOOL, F_INT, F_INT64, F_STRING, F_TOX,
                  F_TOX_DETECTORS };

typedef struct opt_def {
    rag_option_info info;
    enum field_kind kind;
    size_t offset;           /* of the field in rag_collection_options */
} opt_def;

#define OFF(field) offsetof(rag_collection_options, field)

/* Every setting a front door may set by name; the checks of rag_policy_from_user read the
 * same ranges. */
static const opt_def OPTIONS[] = {
    {{"pii", NULL, RAG_OPTION_CHOICE, 0, 0, "off|mask|hash|drop", "off",
      "personal data and secrets: keep, mask ([EMAIL]), hash ([EMAIL:<hmac>]) or drop the "
      "document"}, F_PII, OFF(pii)},
    {{"pii_types", NULL, RAG_OPTION_STRING, 0, 0, NULL, "all",
      "comma-separated types to detect: EMAIL,PHONE,CARD,IBAN,IP,SSN,SECRET or all"},
     F_PII_TYPES, OFF(pii_types)},
    {{"dedup", "near_dup", RAG_OPTION_CHOICE, 0, 0, "off|skip|keep|flag", "off",
      "duplicates of stored documents: not detected, not stored, stored, or stored with "
      "metadata duplicate_of"}, F_DEDUP, OFF(dedup)},
    {{"near_dup_threshold", NULL, RAG_OPTION_REAL, 0, 2, NULL, "0.8",
      "near-duplicate Jaccard threshold in (0, 1]; above 1: exact duplicates only"},
     F_REAL, OFF(near_dup_threshold)},
    {{"quality", NULL, RAG_OPTION_CHOICE, 0, 0, "off|on", "off",
      "document quality filters (min_chars, max_chars, max_symbol_ratio)"}, F_BOOL,
     OFF(quality)},
    {{"min_chars", NULL, RAG_OPTION_INT, 0, 1 << 30, NULL, "20",
      "quality: documents with fewer characters are filtered; 0: no minimum"}, F_INT,
     OFF(min_chars)},
    {{"max_chars", NULL, RAG_OPTION_INT, 0, 1 << 30, NULL, "0 (no maximum)",
      "quality: documents with more characters are filtered"}, F_INT, OFF(max_chars)},
    {{"max_symbol_ratio", NULL, RAG_OPTION_REAL, 0, 1, NULL, "0.5",
      "quality: share of non-space characters that are not letters or digits above which "
      "a document is filtered; 1: off"}, F_REAL, OFF(max_symbol_ratio)},
    {{"ttl_seconds", NULL, RAG_OPTION_INT, 0, 1e12, NULL, "0 (none)",
      "default time to live of documents"}, F_INT64, OFF(ttl_seconds)},
    {{"language", NULL, RAG_OPTION_STRING, 0, 0, NULL, "the handle's (english)",
      "BM25 analyzer language (fixed at creation)"}, F_STRING, OFF(language)},
    {{"toxicity", NULL, RAG_OPTION_CHOICE, 0, 0, "off|flag|drop", "off",
      "abusive or obscene text: not checked, stored with metadata toxicity (score) and "
      "toxicity_detector, or not stored"}, F_TOX, OFF(toxicity)},
    {{"toxicity_threshold", NULL, RAG_OPTION_REAL, 0, 1, NULL, "0.5",
      "toxicity score at or above which a document is flagged or dropped, in (0, 1]"},
     F_REAL, OFF(toxicity_threshold)},
    {{"toxicity_detectors", NULL, RAG_OPTION_CHOICE, 0, 0, "wordlist|classifier|both",
      "classifier", "linear classifier (alt-profanity-check), word list (better-profanity; "
      "it also lists anatomical and medical words), or both (the higher score)"},
     F_TOX_DETECTORS, OFF(toxicity_detectors)},
};

#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

size_t rag_collection_option_count(void)
{
    return N_OPTIONS;
}

const rag_option_info *rag_collection_option_info(size_t i)
{
    return i < N_OPTIONS ? &OPTIONS[i].info : NULL;
}

void rag_collection_options_init(rag_collection_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = RAG_COLLECTION_OPTIONS_VERSION;
    o->pii = RAG_PII_OFF;
    o->dedup = RAG_DEDUP_OFF;
    o->near_dup_threshold = RAG_POLICY_DEFAULT_THRESHOLD;
    o->min_chars = 20;
    o->max_symbol_ratio = 0.5;
    o->toxicity = RAG_TOXICITY_OFF;
    o->toxicity_threshold = RAG_POLICY_DEFAULT_TOXICITY;
    o->toxicity_detectors = RAG_TOXICITY_CLASSIFIER;
}

/* Parses a comma-separated list of type names ("all": every type) into a bit mask. */
static int parse_pii_types(const char *s, unsigned *mask)
{
    unsigned m = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
        if (strcasecmp(w, "all") == 0) {
            m = 0;
            *mask = 0;
            return RAG_OK;
        }
        int t = 0;
        while (t < RAG_PII_NTYPES && strcasecmp(w, rag_pii_type_name(t)) != 0)
            t++;
        if (t == RAG_PII_NTYPES)
            return rag_fail(RAG_EINVAL, "pii_types: unknown type '%s' (expected a comma-separated "
                            "list of EMAIL, PHONE, CARD, IBAN, IP, SSN, SECRET, or all)", w);
        m |= 1u << t;
    }
    if (!m)
        return rag_fail(RAG_EINVAL, "pii_types: empty list (expected type names or all)");
    *mask = m;
    return RAG_OK;
}

static int parse_choice(const opt_def *d, const char *value, const char *const *names, int n,
                        int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0) {
            *out = i;
            return RAG_OK;
        }
    return rag_fail(RAG_EINVAL, "%s must be one of %s, got '%s'", d->info.name, d->info.choices,
                    value);
}

static int parse_number(const opt_def *d, const char *value, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || v < d->info.min || v > d->info.max ||
        (d->info.type == RAG_OPTION_INT && v != floor(v)))
        return rag_fail(RAG_EINVAL, "%s must be %s %g..%g, got '%s'", d->info.name,
                        d->info.type == RAG_OPTION_INT ? "an integer in" : "a number in",
                        d->info.min, d->info.max, value);
    *out = v;
    return RAG_OK;
}

int rag_collection_option_set(rag_collection_options *o, const char *name, const char *value)
{
    rag_clear_error();
    if (!o || !name || !value)
        return rag_fail(RAG_EINVAL, "rag_collection_option_set: NULL argument");
    const opt_def *d = NULL;
    for (size_t i = 0; i < N_OPTIONS && !d; i++)
        if (strcmp(OPTIONS[i].info.name, name) == 0 ||
            (OPTIONS[i].info.alias && strcmp(OPTIONS[i].info.alias, name) == 0))
            d = &OPTIONS[i];
    if (!d)
        return rag_fail(RAG_EINVAL, "unknown collection option '%s'", name);
    char *field = (char *)o + d->offset;
    int iv = 0, rc = RAG_OK;
    double dv = 0;
    unsigned mask = 0;
    switch (d->kind) {
    case F_PII:
        if ((rc = parse_choice(d, value, PII_NAMES, 4, &iv)) == RAG_OK)
            *(rag_pii_mode *)(void *)field = (rag_pii_mode)iv;
        break;
    case F_DEDUP:
        if ((rc = parse_choice(d, value, DEDUP_NAMES, 4, &iv)) == RAG_OK)
            *(rag_dedup_mode *)(void *)field = (rag_dedup_mode)iv;
        break;
    case F_TOX:
        if ((rc = parse_choice(d, value, TOX_NAMES, 3, &iv)) == RAG_OK)
            *(rag_toxicity_mode *)(void *)field = (rag_toxicity_mode)iv;
        break;
    case F_TOX_DETECTORS:
        if ((rc = parse_choice(d, value, TOX_DETECTOR_NAMES + 1, 3, &iv)) == RAG_OK)
            *(unsigned *)(void *)field = (unsigned)iv + 1;
        break;
    case F_BOOL: {
        static const char *const words[] = {"off", "on", "0", "1", "false", "true"};
        if ((rc = parse_choice(d, value, words, 6, &iv)) == RAG_OK)
            *(int *)(void *)field = iv & 1;
        break;
    }
    case F_PII_TYPES:
        if ((rc = parse_pii_types(value, &mask)) == RAG_OK)
            *(unsigned *)(void *)field = mask;
        break;
    case F_REAL:
        if ((rc = parse_number(d, value, &dv)) == RAG_OK)
            *(double *)(void *)field = dv;
        break;
    case F_INT:
        if ((rc = parse_number(d, value, &dv)) == RAG_OK)
            *(int *)(void *)field = (int)dv;
        break;
    case F_INT64:
        if ((rc = parse_number(d, value, &dv)) == RAG_OK)
            *(int64_t *)(void *)field = (int64_t)dv;
        break;
    case F_STRING:
        *(const char **)(void *)field = value;
        break;
    }
    return rc;
}

/* The names of the types in mask ("all" for 0 or every type) into buf. */
static void pii_types_text(unsigned mask, char *buf, size_t cap)
{
    if (!mask || (mask & RAG_PII_ALL) == RAG_PII_ALL) {
        snprintf(buf, cap, "all");
        return;
    }
    size_t n = 0;
    buf[0] = '\0';
    for (int t = 0; t < RAG_PII_NTYPES; t++)
        if (mask & (1u << t)) {
            int w = snprintf(buf + n, cap - n, "%s%s", n ? "," : "", rag_pii_type_name(t));
            if (w < 0 || (size_t)w >= cap - n)
                break;
            n += (size_t)w;
        }
}

/* The hygiene fields (and, when `all`, TTL and language) as a JSON object. */
static json_t *policy_json(const rag_collection_options *o, int all)
{
    char types[128];
    pii_types_text(o->pii_types, types, sizeof types);
    json_t *j = json_pack("{s:s, s:s, s:s, s:f, s:s, s:i, s:i, s:f}", "pii",
                          rag_policy_pii_name(o->pii), "pii_types", types, "dedup",
                          rag_policy_dedup_name(o->dedup), "near_dup_threshold",
                          o->near_dup_threshold, "quality", o->quality ? "on" : "off",
                          "min_chars", o->min_chars, "max_chars", o->max_chars,
                          "max_symbol_ratio", o->max_symbol_ratio);
    if (j) {
        json_object_set_new(j, "toxicity", json_string(rag_policy_toxicity_name(o->toxicity)));
        json_object_set_new(j, "toxicity_threshold", json_real(o->toxicity_threshold));
        json_object_set_new(j, "toxicity_detectors",
                            json_string(TOX_DETECTOR_NAMES[o->toxicity_detectors & 3]));
    }
    if (j && all) {
        json_object_set_new(j, "ttl_seconds", json_integer((json_int_t)o->ttl_seconds));
        json_object_set_new(j, "language", json_string(o->language ? o->language : ""));
    }
    return j;
}

int rag_collection_options_json(const rag_collection_options *o, char **out)
{
    rag_clear_error();
    if (!o || !out)
        return rag_fail(RAG_EINVAL, "rag_collection_options_json: NULL argument");
    *out = NULL;
    json_t *j = policy_json(o, 1);
    *out = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
             : NULL;
    json_decref(j);
    return *out ? RAG_OK : rag_fail(RAG_ENOMEM, "out of memory");
}

int rag_collection_options_from_json(rag_collection_options *o, const char *json,
                                     char *language, size_t language_cap)
{
    rag_clear_error();
    if (!o || !json)
        return rag_fail(RAG_EINVAL, "rag_collection_options_from_json: NULL argument");
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    int rc = RAG_OK;
    if (!json_is_object(j)) {
        rc = rag_fail(RAG_EPARSE, "collection settings must be a JSON object%s%s",
                      j ? "" : ": ", j ? "" : je.text);
        goto cleanup;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        const opt_def *d = NULL;
        for (size_t i = 0; i < N_OPTIONS && !d; i++)
            if (strcmp(OPTIONS[i].info.name, key) == 0 ||
                (OPTIONS[i].info.alias && strcmp(OPTIONS[i].info.alias, key) == 0))
                d = &OPTIONS[i];
        if (!d) {
            rc = rag_fail(RAG_EINVAL, "unknown collection option '%s'", key);
            goto cleanup;
        }
        if (json_is_null(v))
            continue; /* as if absent */
        char num[64];
        const char *text = NULL;
        rag_option_type t = d->info.type;
        if (t == RAG_OPTION_INT && json_is_integer(v)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            text = num;
        } else if (t == RAG_OPTION_REAL && json_is_number(v)) {
            snprintf(num, sizeof num, "%.17g", json_number_value(v));
            text = num;
        } else if ((t == RAG_OPTION_CHOICE || t == RAG_OPTION_STRING) && json_is_string(v)) {
            text = json_string_value(v);
        }
        if (!text) {
            rc = rag_fail(RAG_EINVAL, "collection option '%s' must be %s", key,
                          t == RAG_OPTION_INT    ? "an integer"
                          : t == RAG_OPTION_REAL ? "a number"
                                                 : "a string");
            goto cleanup;
        }
        if (d->kind == F_STRING) { /* language: copied, opts borrows the caller's buffer */
            if (!language || strlen(text) >= language_cap) {
                rc = rag_fail(RAG_EINVAL, "collection option '%s' is not accepted here or "
                              "too long ('%.32s')", key, text);
                goto cleanup;
            }
            snprintf(language, language_cap, "%s", text);
            text = language;
        }
        if ((rc = rag_collection_option_set(o, d->info.name, text)) != RAG_OK)
            goto cleanup;
    }
cleanup:
    json_decref(j);
    return rc;
}

/* ---- checks -------------------------------------------------------------------------- */

int rag_policy_from_user(const rag_collection_options *in, rag_collection_options *out)
{
    rag_collection_options_init(out);
    if (!in)
        return RAG_OK;
    if (in->version < 1)
        return rag_fail(RAG_EINVAL, "collection options: version is 0 (call "
                        "rag_collection_options_init)");
    if (in->version == 1) /* the fields before toxicity; the rest keep their defaults */
        memcpy(out, in, offsetof(rag_collection_options, toxicity));
    else
        *out = *in;
    out->version = RAG_COLLECTION_OPTIONS_VERSION;
    if (out->near_dup_threshold == 0)
        out->near_dup_threshold = RAG_POLICY_DEFAULT_THRESHOLD;
    if (out->toxicity_threshold == 0)
        out->toxicity_threshold = RAG_POLICY_DEFAULT_TOXICITY;
    if (!out->toxicity_detectors)
        out->toxicity_detectors = RAG_TOXICITY_CLASSIFIER;
    if ((unsigned)out->toxicity > RAG_TOXICITY_DROP)
        return rag_fail(RAG_EINVAL, "collection options: toxicity is %d (expected "
                        "RAG_TOXICITY_OFF..RAG_TOXICITY_DROP)", (int)out->toxicity);
    if (!(out->toxicity_threshold > 0 && out->toxicity_threshold <= 1))
        return rag_fail(RAG_EINVAL, "collection options: toxicity_threshold must be in (0, 1], "
                        "got %g", out->toxicity_threshold);
    if (out->toxicity_detectors & ~RAG_TOXICITY_BOTH)
        return rag_fail(RAG_EINVAL, "collection options: toxicity_detectors 0x%x has bits of no "
                        "detector", out->toxicity_detectors);
    if ((unsigned)out->pii > RAG_PII_DROP)
        return rag_fail(RAG_EINVAL, "collection options: pii is %d (expected RAG_PII_OFF.."
                        "RAG_PII_DROP)", (int)out->pii);
    if ((unsigned)out->dedup > RAG_DEDUP_FLAG)
        return rag_fail(RAG_EINVAL, "collection options: dedup is %d (expected RAG_DEDUP_OFF.."
                        "RAG_DEDUP_FLAG)", (int)out->dedup);
    if (out->pii_types & ~RAG_PII_ALL)
        return rag_fail(RAG_EINVAL, "collection options: pii_types 0x%x has bits of no type",
                        out->pii_types);
    if (!(out->near_dup_threshold > 0) || !isfinite(out->near_dup_threshold))
        return rag_fail(RAG_EINVAL, "collection options: near_dup_threshold must be in (0, 1] "
                        "(or above 1 for exact duplicates only), got %g",
                        out->near_dup_threshold);
    if (out->min_chars < 0 || out->max_chars < 0)
        return rag_fail(RAG_EINVAL, "collection options: min_chars and max_chars must not be "
                        "negative");
    if (out->max_chars && out->max_chars < out->min_chars)
        return rag_fail(RAG_EINVAL, "collection options: max_chars %d is below min_chars %d",
                        out->max_chars, out->min_chars);
    if (!(out->max_symbol_ratio >= 0 && out->max_symbol_ratio <= 1))
        return rag_fail(RAG_EINVAL, "collection options: max_symbol_ratio must be in [0, 1], "
                        "got %g", out->max_symbol_ratio);
    if (out->ttl_seconds < 0)
        return rag_fail(RAG_EINVAL, "collection options: ttl_seconds must not be negative");
    out->quality = out->quality != 0;
    return RAG_OK;
}

int rag_policy_same(const rag_collection_options *a, const rag_collection_options *b)
{
    unsigned ta = a->pii_types & RAG_PII_ALL, tb = b->pii_types & RAG_PII_ALL;
    if (ta == RAG_PII_ALL)
        ta = 0;
    if (tb == RAG_PII_ALL)
        tb = 0;
    if (a->pii != b->pii || (a->pii != RAG_PII_OFF && ta != tb) || a->dedup != b->dedup ||
        a->quality != b->quality)
        return 0;
    if (a->dedup != RAG_DEDUP_OFF && a->near_dup_threshold != b->near_dup_threshold &&
        !(a->near_dup_threshold > 1 && b->near_dup_threshold > 1))
        return 0;
    if (a->quality && (a->min_chars != b->min_chars || a->max_chars != b->max_chars ||
                       a->max_symbol_ratio != b->max_symbol_ratio))
        return 0;
    if (a->toxicity != b->toxicity ||
        (a->toxicity != RAG_TOXICITY_OFF &&
         (a->toxicity_threshold != b->toxicity_threshold ||
          (a->toxicity_detectors ? a->toxicity_detectors : RAG_TOXICITY_CLASSIFIER) !=
              (b->toxicity_detectors ? b->toxicity_detectors : RAG_TOXICITY_CLASSIFIER))))
        return 0;
    return 1;
}

rag_collection_options *rag_policy_dup(const rag_collection_options *o)
{
    size_t ll = o->language ? strlen(o->language) + 1 : 0;
    rag_collection_options *c = rag_malloc(sizeof *c + ll);
    if (!c)
        return NULL;
    *c = *o;
    if (ll) {
        memcpy((char *)(c + 1), o->language, ll);
        c->language = (const char *)(c + 1);
    }
    return c;
}

void rag_policy_free(rag_collection_options *o)
{
    free(o);
}

/* ---- the record in the store --------------------------------------------------------------- */

static size_t policy_key(uint32_t coll, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "policy/%u", (unsigned)coll);
}

/* Looks `word` up in names[0..n); def when absent or unknown (a newer writer's value). */
static int json_choice(json_t *j, const char *key, const char *const *names, int n, int def)
{
    const char *w = json_string_value(json_object_get(j, key));
    for (int i = 0; w && i < n; i++)
        if (strcmp(w, names[i]) == 0)
            return i;
    return def;
}

static double json_num(json_t *j, const char *key, double def)
{
    json_t *v = json_object_get(j, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

int rag_policy_read(rag_txn *txn, uint32_t coll, rag_collection_options *out)
{
    rag_collection_options_init(out);
    char key[32];
    size_t kl = policy_key(coll, key, sizeof key);
    const void *val = NULL;
    size_t vl = 0;
    int rc = rag_store_kv_get(txn, AUX_CONFIG, key, kl, &val, &vl);
    if (rc == RAG_ENOTFOUND)
        return RAG_OK;
    if (rc != RAG_OK)
        return rc;
    json_error_t err;
    json_t *j = json_loadb(val, vl, 0, &err);
    if (!json_is_object(j)) {
        json_decref(j);
        return rag_fail(RAG_ECORRUPT, "the hygiene policy record of collection %u is not a JSON "
                        "object", (unsigned)coll);
    }
    out->pii = (rag_pii_mode)json_choice(j, "pii", PII_NAMES, 4, RAG_PII_OFF);
    const char *types = json_string_value(json_object_get(j, "pii_types"));
    unsigned mask = 0;
    if (types && parse_pii_types(types, &mask) == RAG_OK)
        out->pii_types = mask;
    rag_clear_error();
    out->dedup = (rag_dedup_mode)json_choice(j, "dedup", DEDUP_NAMES, 4, RAG_DEDUP_OFF);
    out->near_dup_threshold = json_num(j, "near_dup_threshold", RAG_POLICY_DEFAULT_THRESHOLD);
    static const char *const onoff[] = {"off", "on"};
    out->quality = json_choice(j, "quality", onoff, 2, 0);
    out->min_chars = (int)json_num(j, "min_chars", out->min_chars);
    out->max_chars = (int)json_num(j, "max_chars", out->max_chars);
    out->max_symbol_ratio = json_num(j, "max_symbol_ratio", out->max_symbol_ratio);
    out->toxicity = (rag_toxicity_mode)json_choice(j, "toxicity", TOX_NAMES, 3, RAG_TOXICITY_OFF);
    out->toxicity_threshold = json_num(j, "toxicity_threshold", out->toxicity_threshold);
    out->toxicity_detectors =
        (unsigned)json_choice(j, "toxicity_detectors", TOX_DETECTOR_NAMES + 1, 3, 1) + 1;
    json_decref(j);
    return RAG_OK;
}

int rag_policy_write(rag_txn *txn, uint32_t coll, const rag_collection_options *o)
{
    char key[32];
    size_t kl = policy_key(coll, key, sizeof key);
    json_t *j = policy_json(o, 0);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!s)
        return rag_fail(RAG_ENOMEM, "out of memory");
    int rc = rag_store_kv_put(txn, AUX_CONFIG, key, kl, s, strlen(s));
    free(s);
    return rc;
}

int rag_policy_drop(rag_txn *txn, uint32_t coll, const char *name)
{
    char key[32];
    size_t kl = policy_key(coll, key, sizeof key);
    int rc = rag_store_kv_del(txn, AUX_CONFIG, key, kl);
    if (rc == RAG_ENOTFOUND)
        rc = RAG_OK;
    if (rc == RAG_OK)
        rc = rag_dedup_store_purge(txn, coll, name);
    return rc;
}

/* ---- public calls ---------------------------------------------------------------------- */

int rag_collection_create_with(rag_db *db, const char *name, const rag_collection_options *opts)
{
    rag_clear_error();
    if (!db || !name)
        return rag_fail(RAG_EINVAL, "rag_collection_create_with: NULL argument");
    rag_collection_options o;
    int rc = rag_policy_from_user(opts ? opts : db->default_policy, &o);
    if (rc != RAG_OK)
        return rc;
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    pthread_mutex_lock(&db->write_lock);
    rag_coll *c = NULL;
    rc = rag_db_find_coll(db, name) ? rag_fail(RAG_EEXIST, "collection '%s' already exists", name)
                                    : rag_db_create_coll(db, name, &o, &c);
    pthread_mutex_unlock(&db->write_lock);
    return rc;
}

int rag_collection_options_get(rag_db *db, const char *name, rag_collection_options *out)
{
    rag_clear_error();
    if (!db || !name || !out)
        return rag_fail(RAG_EINVAL, "rag_collection_options_get: NULL argument");
    rag_collection_options_init(out);
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    if ((rc = rag_store_coll_get(txn, name, &rec)) == RAG_OK)
        rc = rag_policy_read(txn, c->id, out);
    rag_txn_end(txn);
    if (rc == RAG_OK) {
        out->ttl_seconds = rec.ttl_seconds;
        out->language = c->language;
    }
    return rc;
}

typedef struct configure_arg {
    rag_coll *coll;
    const rag_collection_options *o;
    int reindex;             /* the duplicate index is built again from the stored text */
    uint64_t indexed;
} configure_arg;

static int configure_fn(rag_txn *txn, void *user)
{
    configure_arg *a = user;
    rag_coll_rec rec;
    int rc = rag_store_coll_get(txn, a->coll->name, &rec);
    if (rc == RAG_ENOTFOUND)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", a->coll->name);
    if (rc != RAG_OK)
        return rc;
    rag_collection_options old;
    if ((rc = rag_policy_read(txn, a->coll->id, &old)) != RAG_OK)
        return rc;
    double was = old.near_dup_threshold, now = a->o->near_dup_threshold;
    a->reindex = a->o->dedup != RAG_DEDUP_OFF &&
                 (old.dedup == RAG_DEDUP_OFF || rag_dedup_rows(was) != rag_dedup_rows(now) ||
                  (was > 1) != (now > 1));
    rec.ttl_seconds = a->o->ttl_seconds;
    if ((rc = rag_store_coll_put(txn, a->coll->name, &rec)) == RAG_OK)
        rc = rag_policy_write(txn, a->coll->id, a->o);
    a->indexed = 0;
    if (rc == RAG_OK && a->reindex)
        rc = rag_dedup_store_rebuild(txn, a->coll->id, a->o->near_dup_threshold, &a->indexed);
    return rc;
}

int rag_collection_configure(rag_db *db, const char *name, const rag_collection_options *opts)
{
    rag_clear_error();
    if (!db || !name || !opts)
        return rag_fail(RAG_EINVAL, "rag_collection_configure: NULL argument");
    rag_collection_options o;
    int rc = rag_policy_from_user(opts, &o);
    if (rc != RAG_OK)
        return rc;
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    pthread_mutex_lock(&db->write_lock);
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c) {
        rc = rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    } else if (o.language && *o.language && strcmp(o.language, c->language) != 0) {
        rc = rag_fail(RAG_EINVAL, "collection '%s' has language '%s'; the language of a "
                      "collection cannot change (create another collection)", name, c->language);
    } else {
        configure_arg a = {c, &o, 0, 0};
        rc = rag_store_write(db->st, configure_fn, &a);
    }
    pthread_mutex_unlock(&db->write_lock);
    return rc;
}

/* ---- the PII hashing key ------------------------------------------------------------------- */

#define PII_KEY_NAME "pii.key"
#define PII_KEY_BYTES 32

typedef struct key_arg {
    unsigned char *key;
    size_t klen;
} key_arg;

/* Reads the key, or writes a fresh one when there is none (under the store's writer). */
static int key_create_fn(rag_txn *txn, void *user)
{
    key_arg *a = user;
    const void *v = NULL;
    size_t vl = 0;
    int rc = rag_store_kv_get(txn, AUX_CONFIG, PII_KEY_NAME, strlen(PII_KEY_NAME), &v, &vl);
    if (rc == RAG_OK) {
        if (vl < 16 || vl > 64)
            return rag_fail(RAG_ECORRUPT, "the store's PII key has %zu bytes (expected 16..64)",
                            vl);
        memcpy(a->key, v, vl);
        a->klen = vl;
        return RAG_OK;
    }
    if (rc != RAG_ENOTFOUND)
        return rc;
    a->klen = PII_KEY_BYTES;
    return rag_store_kv_put(txn, AUX_CONFIG, PII_KEY_NAME, strlen(PII_KEY_NAME), a->key,
                            PII_KEY_BYTES);
}

int rag_policy_pii_key(rag_db *db, int create, unsigned char key[64], size_t *klen)
{
    *klen = 0;
    if (getrandom(key, PII_KEY_BYTES, 0) != PII_KEY_BYTES)
        return rag_fail(RAG_EIO, "cannot generate a PII key: %s", strerror(errno));
    if (!db) {
        *klen = PII_KEY_BYTES; /* a throwaway key (dry run without a store) */
        return RAG_OK;
    }
    rag_txn *txn = NULL;
    const void *v = NULL;
    size_t vl = 0;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_kv_get(txn, AUX_CONFIG, PII_KEY_NAME, strlen(PII_KEY_NAME), &v, &vl);
    if (rc == RAG_OK) {
        if (vl >= 16 && vl <= 64) {
            memcpy(key, v, vl);
            *klen = vl;
        } else {
            rc = rag_fail(RAG_ECORRUPT, "the store's PII key has %zu bytes (expected 16..64)", vl);
        }
    }
    rag_txn_end(txn);
    if (rc != RAG_ENOTFOUND)
        return rc;
    rag_clear_error();
    if (!create || db->opts.read_only) {
        *klen = PII_KEY_BYTES; /* a dry run: a throwaway key, the store is not touched */
        return RAG_OK;
    }
    key_arg a = {key, 0};
    pthread_mutex_lock(&db->write_lock);
    rc = rag_store_write(db->st, key_create_fn, &a);
    pthread_mutex_unlock(&db->write_lock);
    *klen = rc == RAG_OK ? a.klen : 0;
    return rc;
}

/* ---- PII handling of texts outside documents ----------------------------------------------- */

int rag_pii_redact(rag_db *db, const char *text, size_t len, rag_pii_mode mode, unsigned types,
                   char **out, size_t *found)
{
    rag_clear_error();
    if (out)
        *out = NULL;
    if (found)
        *found = 0;
    if (!text || !out)
        return rag_fail(RAG_EINVAL, "rag_pii_redact: NULL text or out");
    if (mode == RAG_PII_DROP || (unsigned)mode > RAG_PII_DROP)
        return rag_fail(RAG_EINVAL, "rag_pii_redact: mode must be off, mask or hash (got %d)",
                        (int)mode);
    if (mode == RAG_PII_HASH && !db)
        return rag_fail(RAG_EINVAL, "rag_pii_redact: hashing needs the store's key (db is NULL)");
    unsigned char key[64];
    size_t klen = 0;
    int rc = RAG_OK;
    if (mode == RAG_PII_HASH && (rc = rag_policy_pii_key(db, !db->opts.read_only, key, &klen)) !=
                                    RAG_OK)
        return rc;
    rag_pii_config cfg = {mode, types, key, klen};
    rag_pii_result res;
    rc = rag_pii_apply(&cfg, text, len, &res);
    memset(key, 0, sizeof key);
    if (rc != RAG_OK)
        return rc;
    *out = res.text;
    if (found)
        *found = res.total;
    return RAG_OK;
}
