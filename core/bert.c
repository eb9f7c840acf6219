/* bert.c - BERT-family sentence encoder (embeddings, transformer layers, pooling) on OpenBLAS. */
#include "bert.h"
#include "attention.h"
#include "bert_ops.h"
#include "gemm_int8.h"
#include "gemm_small.h"
#include "safetensors.h"
#include "status.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ragcore.h"

#define BATCH_TOKENS 4096
/* Rows per tile of a layer's row-by-row parts with int8 weights (forward): 64 x 1536
 * intermediate floats are 384 KB, inside L2 with the tile's quantized rows. 64 ran 1-3 %
 * faster than 128 and 256 (`bench_embed --docs 200`, AVX-512 VNNI). */
#define ROW_TILE 64
/* With several encoder threads a call's batches are cut smaller (down to this many tokens)
 * so that each thread gets some. */
#define BATCH_TOKENS_MIN 512
#define WORKERS_MAX 16

/* Batches of at most this many tokens run their linear layers through gemm_small.c
 * instead of cblas_sgemm, whose packing of W dominates at a query's few tokens. Measured
 * with `bench_embed --sweep` (bench/JOURNAL.md): with W read in place the whole encoder
 * is faster than through OpenBLAS's SkylakeX kernels up to about 56 tokens (AVX-512) and
 * than its Haswell kernels up to 64 and more (AVX2); with W pre-packed (AVX-512 only) it
 * was still 1.1x faster at 128 tokens. */
#define SMALL_GEMM_MAX 48
#define PACKED_GEMM_MAX 128
/* On AMD Zen without AVX-512 the AVX2 small-T kernel keeps ~20 GFLOP/s at every T while
 * OpenBLAS's Zen kernels reach 27 at 12 tokens and 32 at 20: the whole encoder is faster
 * through OpenBLAS from about 8 tokens (Zen 3, `bench_embed --sweep`, bench/JOURNAL.md). */
#define AMD_AVX2_GEMM_MAX 6

/* -1: not resolved yet; else the current limit (0 = off). Process-wide, like the BLAS
 * thread count. */
static int small_gemm_max = -1;

typedef struct {
    float *wqkv, *bqkv;   /* [3H, H], [3H]: query, key, value stacked */
    float *wo, *bo;       /* [H, H] */
    float *ln1g, *ln1b;
    float *wi, *bi;       /* [I, H] */
    float *wout, *bout;   /* [H, I] */
    float *ln2g, *ln2b;
    /* The four weight matrices packed for the small-T AVX-512 kernel (NULL: not packed,
     * the in-place kernel reads the matrices above). */
    rag_gemm_packed *pqkv, *po, *pi, *pout;
    /* The same four matrices quantized to int8 (precision int8: the float matrices above
     * are then freed and NULL). */
    rag_gemm_i8_w *qqkv, *qo, *qi, *qout;
} layer;

/* Activations of one forward pass, grown on demand. */
struct rag_bert_scratch {
    size_t cap_tokens, cap_mid, cap_attn; /* cap_mid in floats */
    float *x, *qkv, *ctx, *mid, *attn; /* attn: rag_attention's work space */
    size_t cap_qwork;
    void *qwork; /* rag_gemm_i8's work space (precision int8), 64-byte aligned */
    /* the scratch of each extra encoder thread of a call made with this one (owned) */
    rag_bert_scratch *helpers[WORKERS_MAX - 1];
};

struct rag_bert {
    int vocab, hidden, layers, heads, inter, max_pos, type_vocab;
    float eps;
    int max_tokens;
    rag_pooling pooling;
    rag_bert_precision precision;
    rag_tokenizer *tok;
    float *word, *pos;    /* [V, H]; [P, H] with token type 0 added */
    float *elng, *elnb;
    layer *L;
    rag_bert_scratch own; /* scratch of rag_bert_embed / rag_bert_encode_ids */
};

int rag_bert_dim(const rag_bert *m) { return m->hidden; }
rag_bert_precision rag_bert_get_precision(const rag_bert *m) { return m->precision; }
int rag_bert_max_tokens(const rag_bert *m) { return m->max_tokens; }
rag_pooling rag_bert_pooling(const rag_bert *m) { return m->pooling; }
const rag_tokenizer *rag_bert_tokenizer(const rag_bert *m) { return m->tok; }

/* Encoder threads (the one threads knob; 0: not resolved yet). Process-wide, like
 * OpenBLAS's own thread count, which is kept at 1 once this is set. */
static int encode_threads = 0;

int rag_bert_set_threads(int n)
{
    if (n <= 0) {
        const char *env = getenv("RAGCORE_THREADS");
        n = env ? atoi(env) : 0;
    }
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > WORKERS_MAX)
        n = WORKERS_MAX;
    openblas_set_num_threads(1);
    __atomic_store_n(&encode_threads, n, __ATOMIC_RELAXED);
    return n;
}

/* OpenBLAS (DYNAMIC_ARCH builds) picks its kernels from the CPU model number; in virtual
 * machines that hide the model it falls back to the generic "Prescott" SSE3 kernels, about
 * 4x slower than the AVX-512 ones on the same CPU. When that happened, the user did not
 * choose a core with OPENBLAS_CORETYPE, and the CPU reports AVX-512 or AVX2+FMA, the
 * kernels are re-selected once at load time, before any thread can be inside BLAS. The
 * hooks are weak: with a non-dynamic OpenBLAS nothing happens. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

__attribute__((constructor)) static void fix_blas_core(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (getenv("OPENBLAS_CORETYPE") || !gotoblas_dynamic_init || !gotoblas_dynamic_quit)
        return;
    const char *core = openblas_get_corename();
    static const char *generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                    "Sandybridge", "unknown"};
    int is_generic = 0;
    for (size_t i = 0; core && i < sizeof generic / sizeof generic[0]; i++)
        is_generic |= strcmp(core, generic[i]) == 0;
    if (!is_generic)
        return;
    __builtin_cpu_init();
    const char *want = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want)
        return;
    setenv("OPENBLAS_CORETYPE", want, 0);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
#endif
}

int rag_bert_amd_cpu(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

/* rag_kernels' line, made once. */
static char kernels_line[192];
static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

static void kernels_make(void)
{
    const rag_gemm_isa f = rag_gemm_small_isa();
    snprintf(kernels_line, sizeof kernels_line, "int8 GEMM %s, fp32 GEMM %s%s%.40s%s",
             rag_gemm_i8_isa_name(rag_gemm_i8_isa()),
             f == RAG_GEMM_AVX512 ? "AVX-512" : f == RAG_GEMM_AVX2 ? "AVX2" : "scalar",
             rag_gemm_i8_limit_unknown() ? "; RAGCORE_INT8_ISA '" : "",
             rag_gemm_i8_limit_unknown() ? getenv("RAGCORE_INT8_ISA") : "",
             rag_gemm_i8_limit_unknown() ? "' ignored: not avx-vnni, avx2 or scalar" : "");
}

const char *rag_kernels(void)
{
    pthread_once(&kernels_once, kernels_make);
    return kernels_line;
}

int rag_bert_set_small_gemm(int max_tokens)
{
    if (max_tokens < 0) {
        const char *env = getenv("RAGCORE_SMALL_GEMM");
        max_tokens = rag_gemm_small_isa() == RAG_GEMM_AVX512 ? PACKED_GEMM_MAX
                     : rag_bert_amd_cpu()                    ? AMD_AVX2_GEMM_MAX
                                                             : SMALL_GEMM_MAX;
        if (env && *env)
            max_tokens = atoi(env) > 0 ? atoi(env) : 0;
    }
    if (rag_gemm_small_isa() == RAG_GEMM_SCALAR)
        max_tokens = 0;
    __atomic_store_n(&small_gemm_max, max_tokens, __ATOMIC_RELAXED);
    return max_tokens;
}

/* The limit in force, resolved from the environment on first use. */
static int small_gemm_limit(void)
{
    int v = __atomic_load_n(&small_gemm_max, __ATOMIC_RELAXED);
    return v >= 0 ? v : rag_bert_set_small_gemm(-1);
}

const char *rag_bert_blas_info(void)
{
    return openblas_get_corename();
}

void rag_bert_set_threads_default(void)
{
    if (__atomic_load_n(&encode_threads, __ATOMIC_RELAXED) == 0)
        rag_bert_set_threads(0);
}

static void scratch_clear(rag_bert_scratch *s)
{
    free(s->x);
    free(s->qkv);
    free(s->ctx);
    free(s->mid);
    free(s->attn);
    free(s->qwork);
    for (int i = 0; i < WORKERS_MAX - 1; i++)
        rag_bert_scratch_free(s->helpers[i]);
    memset(s, 0, sizeof *s);
}

rag_bert_scratch *rag_bert_scratch_new(void)
{
    return rag_calloc(1, sizeof(rag_bert_scratch));
}

int rag_bert_scratch_helpers(const rag_bert_scratch *s)
{
    int k = 0;
    while (k < WORKERS_MAX - 1 && s->helpers[k])
        k++;
    return k;
}

void rag_bert_scratch_free(rag_bert_scratch *s)
{
    if (!s)
        return;
    scratch_clear(s);
    free(s);
}

void rag_bert_free(rag_bert *m)
{
    if (!m)
        return;
    if (m->L) {
        for (int i = 0; i < m->layers; i++) {
            layer *l = &m->L[i];
            float *ps[] = {l->wqkv, l->bqkv, l->wo, l->bo, l->ln1g, l->ln1b, l->wi, l->bi,
                           l->wout, l->bout, l->ln2g, l->ln2b};
            for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++)
                free(ps[k]);
            rag_gemm_packed_free(l->pqkv);
            rag_gemm_packed_free(l->po);
            rag_gemm_packed_free(l->pi);
            rag_gemm_packed_free(l->pout);
            rag_gemm_i8_free(l->qqkv);
            rag_gemm_i8_free(l->qo);
            rag_gemm_i8_free(l->qi);
            rag_gemm_i8_free(l->qout);
        }
        free(m->L);
    }
    rag_tokenizer_free(m->tok);
    free(m->word);
    free(m->pos);
    free(m->elng);
    free(m->elnb);
    scratch_clear(&m->own);
    free(m);
}

static json_t *load_json(const char *dir, const char *file, int required, int *rc)
{
    char path[4096];
    json_error_t err;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    *rc = RAG_OK;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (required)
            *rc = rag_fail(RAG_ENOTFOUND, "%s: file not found", path);
        return NULL;
    }
    json_t *j = json_loadf(f, 0, &err);
    fclose(f);
    if (!j)
        *rc = rag_fail(RAG_EPARSE, "%s line %d: %s", path, err.line, err.text);
    else if (!json_is_object(j)) {
        *rc = rag_fail(RAG_EPARSE, "%s: not a JSON object", path);
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int cfg_int(json_t *cfg, const char *dir, const char *key, int def, int *out)
{
    json_t *v = json_object_get(cfg, key);
    if (!v) {
        if (def < 0)
            return rag_fail(RAG_EPARSE, "%s/config.json: missing \"%s\"", dir, key);
        *out = def;
        return RAG_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 20))
        return rag_fail(RAG_EPARSE, "%s/config.json: \"%s\" must be an integer in 1..%d", dir,
                        key, 1 << 20);
    *out = (int)json_integer_value(v);
    return RAG_OK;
}

/* Pooling and max length from the sentence-transformers files (all optional). */
static int read_st_config(rag_bert *m, const char *dir)
{
    int rc;
    m->pooling = RAG_POOL_MEAN;
    json_t *mods = NULL;
    {
        char path[4096];
        json_error_t err;
        snprintf(path, sizeof path, "%s/modules.json", dir);
        FILE *f = fopen(path, "rb");
        if (f) {
            mods = json_loadf(f, 0, &err);
            fclose(f);
            if (!mods || !json_is_array(mods)) {
                json_decref(mods);
                return rag_fail(RAG_EPARSE, "%s: not a JSON array", path);
            }
        }
    }
    size_t i;
    json_t *mod;
    json_array_foreach(mods, i, mod)
    {
        const char *type = json_string_value(json_object_get(mod, "type"));
        const char *mpath = json_string_value(json_object_get(mod, "path"));
        if (!type || !mpath || !strstr(type, "Pooling"))
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/config.json", mpath);
        json_t *pc = load_json(dir, sub, 1, &rc);
        if (!pc) {
            json_decref(mods);
            return rc;
        }
        if (json_is_true(json_object_get(pc, "pooling_mode_cls_token")))
            m->pooling = RAG_POOL_CLS;
        else if (json_is_true(json_object_get(pc, "pooling_mode_mean_tokens")))
            m->pooling = RAG_POOL_MEAN;
        else
            rc = rag_fail(RAG_EUNSUPPORTED, "%s/%s: only CLS and mean pooling are supported", dir,
                          sub);
        json_decref(pc);
        if (rc) {
            json_decref(mods);
            return rc;
        }
    }
    json_decref(mods);
    m->max_tokens = m->max_pos < 512 ? m->max_pos : 512;
    json_t *sb = load_json(dir, "sentence_bert_config.json", 0, &rc);
    if (rc)
        return rc;
    json_t *v = json_object_get(sb, "max_seq_length");
    if (json_is_integer(v) && json_integer_value(v) >= 2 && json_integer_value(v) < m->max_tokens)
        m->max_tokens = (int)json_integer_value(v);
    json_decref(sb);
    return RAG_OK;
}

/* Reads tensor `name` (shape dims) into a new buffer; with `alt` tried when absent. */
static int get(rag_safetensors *st, const char *name, const char *alt, int64_t d0, int64_t d1,
               float **out)
{
    int64_t shape[2] = {d0, d1};
    int nd = d1 ? 2 : 1;
    *out = rag_malloc((size_t)d0 * (size_t)(d1 ? d1 : 1) * sizeof(float));
    if (!*out)
        return RAG_ENOMEM;
    if (alt && !rag_st_find(st, name))
        name = alt;
    return rag_st_read_f32(st, name, shape, nd, *out);
}

static int get_ln(rag_safetensors *st, const char *prefix, int64_t h, float **g, float **b)
{
    char n1[256], n2[256], a1[256], a2[256];
    snprintf(n1, sizeof n1, "%s.weight", prefix);
    snprintf(a1, sizeof a1, "%s.gamma", prefix);
    snprintf(n2, sizeof n2, "%s.bias", prefix);
    snprintf(a2, sizeof a2, "%s.beta", prefix);
    int rc = get(st, n1, a1, h, 0, g);
    return rc ? rc : get(st, n2, a2, h, 0, b);
}

/* Packs every layer's linear weights for the small-T kernel (queries), when this CPU has
 * its AVX-512 form, the small path is on and $RAGCORE_GEMM_PACK is not "0": 4 bytes more
 * per weight (42 MB for all-MiniLM-L6-v2), for 1.2-1.4x on the linear layers of a
 * 16-48-token query. */
static int pack_weights(rag_bert *m)
{
    if (m->precision == RAG_BERT_INT8)
        return RAG_OK; /* the float matrices are gone; the int8 kernels read their own */
    const char *env = getenv("RAGCORE_GEMM_PACK"); /* "0": keep only the in-place kernel */
    if (small_gemm_limit() <= 0 || (env && !strcmp(env, "0")))
        return RAG_OK;
    const size_t H = (size_t)m->hidden, NI = (size_t)m->inter;
    for (int i = 0; i < m->layers; i++) {
        layer *l = &m->L[i];
        if (rag_gemm_pack(l->wqkv, 3 * H, H, H, &l->pqkv) || rag_gemm_pack(l->wo, H, H, H, &l->po) ||
            rag_gemm_pack(l->wi, NI, H, H, &l->pi) || rag_gemm_pack(l->wout, H, NI, NI, &l->pout))
            return RAG_ENOMEM;
    }
    return RAG_OK;
}

/* Quantizes every layer's four linear matrices to int8 (gemm_int8.c) and frees the float
 * ones: 10.6 MB of weights instead of 42 MB for all-MiniLM-L6-v2. */
static int quantize_weights(rag_bert *m)
{
    const size_t H = (size_t)m->hidden, NI = (size_t)m->inter;
    for (int i = 0; i < m->layers; i++) {
        layer *l = &m->L[i];
        if (rag_gemm_i8_pack(l->wqkv, 3 * H, H, H, &l->qqkv) ||
            rag_gemm_i8_pack(l->wo, H, H, H, &l->qo) || rag_gemm_i8_pack(l->wi, NI, H, H, &l->qi) ||
            rag_gemm_i8_pack(l->wout, H, NI, NI, &l->qout))
            return rag_fail(RAG_ENOMEM, "bert: out of memory quantizing layer %d", i);
        free(l->wqkv);
        free(l->wo);
        free(l->wi);
        free(l->wout);
        l->wqkv = l->wo = l->wi = l->wout = NULL;
    }
    return RAG_OK;
}

static int load_weights(rag_bert *m, rag_safetensors *st)
{
    int rc;
    const int64_t H = m->hidden, NI = m->inter;
    float *type = NULL;
    if ((rc = get(st, "embeddings.word_embeddings.weight", NULL, m->vocab, H, &m->word)) ||
        (rc = get(st, "embeddings.position_embeddings.weight", NULL, m->max_pos, H, &m->pos)) ||
        (rc = get(st, "embeddings.token_type_embeddings.weight", NULL, m->type_vocab, H, &type)) ||
        (rc = get_ln(st, "embeddings.LayerNorm", H, &m->elng, &m->elnb)))
        goto cleanup;
    for (int64_t p = 0; p < m->max_pos; p++)
        for (int64_t j = 0; j < H; j++)
            m->pos[p * H + j] += type[j];
    m->L = rag_calloc((size_t)m->layers, sizeof *m->L);
    if (!m->L) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (int i = 0; i < m->layers && !rc; i++) {
        layer *l = &m->L[i];
        char p[128], n[256];
        snprintf(p, sizeof p, "encoder.layer.%d.", i);
        l->wqkv = rag_malloc((size_t)(3 * H * H) * sizeof(float));
        l->bqkv = rag_malloc((size_t)(3 * H) * sizeof(float));
        if (!l->wqkv || !l->bqkv) {
            rc = RAG_ENOMEM;
            break;
        }
        static const char *qkv[] = {"query", "key", "value"};
        for (int k = 0; k < 3 && !rc; k++) {
            int64_t s1[2] = {H, H}, s2[1] = {H};
            snprintf(n, sizeof n, "%sattention.self.%s.weight", p, qkv[k]);
            rc = rag_st_read_f32(st, n, s1, 2, l->wqkv + k * H * H);
            snprintf(n, sizeof n, "%sattention.self.%s.bias", p, qkv[k]);
            if (!rc)
                rc = rag_st_read_f32(st, n, s2, 1, l->bqkv + k * H);
        }
#define GET(field, suffix, d0, d1)                                                 \
    if (!rc) {                                                                     \
        snprintf(n, sizeof n, "%s%s", p, suffix);                                  \
        rc = get(st, n, NULL, d0, d1, &l->field);                                  \
    }
        GET(wo, "attention.output.dense.weight", H, H)
        GET(bo, "attention.output.dense.bias", H, 0)
        GET(wi, "intermediate.dense.weight", NI, H)
        GET(bi, "intermediate.dense.bias", NI, 0)
        GET(wout, "output.dense.weight", H, NI)
        GET(bout, "output.dense.bias", H, 0)
#undef GET
        if (!rc) {
            snprintf(n, sizeof n, "%sattention.output.LayerNorm", p);
            rc = get_ln(st, n, H, &l->ln1g, &l->ln1b);
        }
        if (!rc) {
            snprintf(n, sizeof n, "%soutput.LayerNorm", p);
            rc = get_ln(st, n, H, &l->ln2g, &l->ln2b);
        }
    }
cleanup:
    free(type);
    return rc;
}

int rag_bert_load(const char *dir, rag_bert **out)
{
    return rag_bert_load_precision(dir, RAG_BERT_FP32, out);
}

int rag_bert_load_precision(const char *dir, rag_bert_precision precision, rag_bert **out)
{
    int rc;
    rag_safetensors *st = NULL;
    json_t *cfg = NULL;
    *out = NULL;
    /* the threads knob is resolved before any encode can be inside OpenBLAS */
    static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
    pthread_once(&threads_once, rag_bert_set_threads_default);
    rag_bert *m = rag_calloc(1, sizeof *m);
    if (!m)
        return RAG_ENOMEM;
    m->precision = precision;
    if (!(cfg = load_json(dir, "config.json", 1, &rc)))
        goto cleanup;
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
    if (mt && strcmp(mt, "bert") != 0) {
        rc = rag_fail(RAG_EUNSUPPORTED, "%s/config.json: model_type \"%s\" (only \"bert\")", dir, mt);
        goto cleanup;
    }
    if (act && strcmp(act, "gelu") != 0) {
        rc = rag_fail(RAG_EUNSUPPORTED, "%s/config.json: hidden_act \"%s\" (only \"gelu\")", dir,
                      act);
        goto cleanup;
    }
    if ((rc = cfg_int(cfg, dir, "vocab_size", -1, &m->vocab)) ||
        (rc = cfg_int(cfg, dir, "hidden_size", -1, &m->hidden)) ||
        (rc = cfg_int(cfg, dir, "num_hidden_layers", -1, &m->layers)) ||
        (rc = cfg_int(cfg, dir, "num_attention_heads", -1, &m->heads)) ||
        (rc = cfg_int(cfg, dir, "intermediate_size", -1, &m->inter)) ||
        (rc = cfg_int(cfg, dir, "max_position_embeddings", 512, &m->max_pos)) ||
        (rc = cfg_int(cfg, dir, "type_vocab_size", 2, &m->type_vocab)))
        goto cleanup;
    if (m->hidden % m->heads) {
        rc = rag_fail(RAG_EPARSE, "%s/config.json: hidden_size %d not divisible by %d heads", dir,
                      m->hidden, m->heads);
        goto cleanup;
    }
    json_t *eps = json_object_get(cfg, "layer_norm_eps");
    m->eps = json_is_number(eps) ? (float)json_number_value(eps) : 1e-12f;
    if ((rc = read_st_config(m, dir)))
        goto cleanup;
    if ((rc = rag_tokenizer_load(dir, m->max_tokens, &m->tok)))
        goto cleanup;
    if (rag_tokenizer_vocab_size(m->tok) > m->vocab) {
        rc = rag_fail(RAG_EMISMATCH, "%s: vocabulary has %d tokens, config.json vocab_size %d",
                      dir, rag_tokenizer_vocab_size(m->tok), m->vocab);
        goto cleanup;
    }
    {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if ((rc = rag_st_open(path, &st)))
            goto cleanup;
    }
    rc = load_weights(m, st);
    if (rc == RAG_OK && precision == RAG_BERT_INT8)
        rc = quantize_weights(m);
    if (rc == RAG_OK)
        rc = pack_weights(m);
cleanup:
    rag_st_close(st);
    json_decref(cfg);
    if (rc)
        rag_bert_free(m);
    else
        *out = m;
    return rc;
}

/* ---- forward pass ------------------------------------------------------------------- */

static int grow(const rag_bert *m, rag_bert_scratch *sc, size_t tokens, size_t maxlen)
{
    const size_t H = (size_t)m->hidden, NI = (size_t)m->inter;
    if (tokens > sc->cap_tokens) {
        float *p[3];
        size_t sz[3] = {H, 3 * H, H};
        float **dst[3] = {&sc->x, &sc->qkv, &sc->ctx};
        for (int k = 0; k < 3; k++) {
            p[k] = rag_realloc(*dst[k], tokens * sz[k] * sizeof(float));
            if (!p[k])
                return RAG_ENOMEM;
            *dst[k] = p[k];
        }
        sc->cap_tokens = tokens;
    }
    /* the intermediate activations: one tile of rows with int8 weights (forward) */
    const size_t rows = m->precision == RAG_BERT_INT8 && tokens > ROW_TILE ? ROW_TILE : tokens;
    const size_t mid = rows * NI;
    if (mid > sc->cap_mid) {
        float *p = rag_realloc(sc->mid, mid * sizeof(float));
        if (!p)
            return RAG_ENOMEM;
        sc->mid = p;
        sc->cap_mid = mid;
    }
    const size_t work = rag_attention_work((int)maxlen, m->heads, m->hidden / m->heads);
    if (work > sc->cap_attn) {
        float *s = rag_realloc(sc->attn, work * sizeof(float));
        if (!s)
            return RAG_ENOMEM;
        sc->attn = s;
        sc->cap_attn = work;
    }
    if (m->precision == RAG_BERT_INT8) {
        const size_t q = rag_gemm_i8_work(tokens, H > NI ? H : NI);
        if (q > sc->cap_qwork) {
            free(sc->qwork);
            sc->cap_qwork = 0;
            if (!(sc->qwork = aligned_alloc(64, (q + 63) / 64 * 64)))
                return rag_fail(RAG_ENOMEM, "bert: out of memory (%zu bytes of int8 work space)", q);
            sc->cap_qwork = q;
        }
    }
    return RAG_OK;
}

/* y[T, N] = x[T, K] * W[N, K]^T + beta * y (beta 0 or 1): gemm_int8.c when W was
 * quantized (qw), else gemm_small.c when `small` (its packed kernel when W was packed),
 * else OpenBLAS. */
static void linear(int small, size_t T, int N, int K, const float *x, const float *w,
                   const rag_gemm_packed *pw, const rag_gemm_i8_w *qw, void *qwork, float beta,
                   float *y)
{
    if ((small || qw) && beta == 0.0f)
        memset(y, 0, T * (size_t)N * sizeof(float)); /* these kernels accumulate */
    if (qw)
        rag_gemm_i8(T, qw, x, (size_t)K, y, (size_t)N, qwork);
    else if (small && pw)
        rag_gemm_small_packed(T, pw, 1.0f, x, (size_t)K, y, (size_t)N);
    else if (small)
        rag_gemm_small_nt(T, (size_t)N, (size_t)K, 1.0f, x, (size_t)K, w, (size_t)K, y,
                          (size_t)N);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, N, K, 1.0f, x, K, w, K,
                    beta, y, N);
}

/* Runs the encoder on one packed batch: ids of `ns` sequences back to back (seq k at
 * off[k], lens[k] tokens) and writes the pooled vectors to out[k * H]. The GEMMs' biases
 * and residuals are folded into the elementwise passes that follow them (bert_ops.c). */
static void forward(const rag_bert *m, rag_bert_scratch *sc, const int32_t *const *ids,
                    const int *lens, const size_t *off, size_t ns, size_t T, float *const *out)
{
    const int H = m->hidden, NI = m->inter, NH = m->heads, D = H / NH, H3 = 3 * H;
    const float scale = 1.0f / sqrtf((float)D);
    const rag_gemm_isa isa = rag_gemm_small_isa();
    int limit = small_gemm_limit();
    if (!m->L[0].pqkv && limit > SMALL_GEMM_MAX) /* W in place: OpenBLAS wins past ~56 */
        limit = SMALL_GEMM_MAX;
    const int small = T <= (size_t)limit;
    float *x = sc->x, *qkv = sc->qkv, *ctx = sc->ctx, *mid = sc->mid;
    for (size_t k = 0; k < ns; k++)
        for (int p = 0; p < lens[k]; p++) {
            float *row = x + (off[k] + (size_t)p) * (size_t)H;
            memcpy(row, m->word + (size_t)ids[k][p] * (size_t)H, (size_t)H * sizeof(float));
            rag_ops_add_layer_norm(isa, row, m->pos + (size_t)p * (size_t)H, NULL, m->elng,
                                   m->elnb, 1, H, m->eps);
        }
    /* rows per tile of the row-by-row parts; grow sized mid for one */
    const size_t tile = m->precision == RAG_BERT_INT8 ? ROW_TILE : T;
    for (int li = 0; li < m->layers; li++) {
        const layer *l = &m->L[li];
        /* the int8 GEMM adds onto its output: a tile's bias rows are still in L2 when it
         * does (see the tiles below) */
        for (size_t t0 = 0; t0 < T; t0 += tile) {
            const size_t n = T - t0 < tile ? T - t0 : tile;
            float *y = qkv + t0 * (size_t)H3;
            for (size_t t = 0; t < n; t++)
                memcpy(y + t * (size_t)H3, l->bqkv, (size_t)H3 * sizeof(float));
            linear(small, n, H3, H, x + t0 * (size_t)H, l->wqkv, l->pqkv, l->qqkv, sc->qwork,
                   1.0f, y);
        }
        for (size_t k = 0; k < ns; k++)
            rag_attention(isa, qkv + off[k] * (size_t)H3, (size_t)H3, lens[k], NH, D, scale,
                          ctx + off[k] * (size_t)H, (size_t)H, sc->attn);
        /* Everything after attention is row by row: with int8 weights it runs a tile of
         * rows at a time, so that the tile's intermediate activations (ROW_TILE x NI floats)
         * stay in L2 from the GEMM that writes them through GELU to the GEMM that reads
         * them, instead of a batch's worth making round trips to memory; the int8 GEMMs
         * stream their weights once per 64 rows either way. OpenBLAS is given the whole
         * batch (its sgemm is slower on short ones). Both residuals accumulate in x: the
         * GEMMs add onto it (beta 1), LayerNorm runs in place, so no output is zeroed
         * first and no residual is read a second time. */
        for (size_t t0 = 0; t0 < T; t0 += tile) {
            const size_t n = T - t0 < tile ? T - t0 : tile;
            float *xt = x + t0 * (size_t)H;
            linear(small, n, H, H, ctx + t0 * (size_t)H, l->wo, l->po, l->qo, sc->qwork, 1.0f,
                   xt);
            rag_ops_add_layer_norm(isa, xt, NULL, l->bo, l->ln1g, l->ln1b, n, H, m->eps);
            linear(small, n, NI, H, xt, l->wi, l->pi, l->qi, sc->qwork, 0.0f, mid);
            rag_ops_bias_gelu(isa, mid, l->bi, n, (size_t)NI);
            linear(small, n, H, NI, mid, l->wout, l->pout, l->qout, sc->qwork, 1.0f, xt);
            rag_ops_add_layer_norm(isa, xt, NULL, l->bout, l->ln2g, l->ln2b, n, H, m->eps);
        }
    }
    for (size_t k = 0; k < ns; k++) {
        float *o = out[k];
        const float *rows = x + off[k] * (size_t)H;
        if (m->pooling == RAG_POOL_CLS) {
            memcpy(o, rows, (size_t)H * sizeof(float));
        } else {
            for (int j = 0; j < H; j++) {
                float s = 0;
                for (int p = 0; p < lens[k]; p++)
                    s += rows[(size_t)p * (size_t)H + (size_t)j];
                o[j] = s / (float)lens[k];
            }
        }
        double nrm = 0;
        for (int j = 0; j < H; j++)
            nrm += (double)o[j] * o[j];
        if (nrm > 0) {
            float inv = (float)(1.0 / sqrt(nrm));
            for (int j = 0; j < H; j++)
                o[j] *= inv;
        }
    }
}

typedef struct {
    size_t idx;
    int len;
} seq_ref;

static int by_len(const void *a, const void *b)
{
    const seq_ref *x = a, *y = b;
    return x->len != y->len ? (x->len < y->len ? -1 : 1) : (x->idx < y->idx ? -1 : x->idx > y->idx);
}

/* One encoder batch of a call: sequences [first, first + ns) of the length order. */
typedef struct {
    size_t first, ns, T;
    int maxlen;
} sub_batch;

/* What the encoder threads of one call share; each takes the next batch until none is
 * left (longest first, so that the last ones to finish are short). */
typedef struct {
    const rag_bert *m;
    const int32_t *const *ids;
    const int *lens;
    float *out;
    const seq_ref *order;
    const sub_batch *batches;
    size_t nbatches, next; /* next: taken atomically */
    size_t maxseq;         /* sequences in the largest batch */
} encode_job;

/* Runs batches of `job` on scratch `sc` until none is left. */
static int encode_batches(encode_job *job, rag_bert_scratch *sc)
{
    const rag_bert *m = job->m;
    size_t cap = job->maxseq;
    const int32_t **bids = rag_malloc(cap * sizeof *bids);
    int *blens = rag_malloc(cap * sizeof *blens);
    size_t *boff = rag_malloc(cap * sizeof *boff);
    float **bout = rag_malloc(cap * sizeof *bout);
    int rc = bids && blens && boff && bout ? RAG_OK : RAG_ENOMEM;
    for (size_t b; rc == RAG_OK &&
                   (b = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED)) < job->nbatches;) {
        const sub_batch *sb = &job->batches[job->nbatches - 1 - b];
        size_t T = 0;
        for (size_t j = 0; j < sb->ns; j++) {
            size_t k = job->order[sb->first + j].idx;
            bids[j] = job->ids[k];
            blens[j] = job->lens[k];
            boff[j] = T;
            bout[j] = job->out + k * (size_t)m->hidden;
            T += (size_t)job->lens[k];
        }
        if ((rc = grow(m, sc, T, (size_t)sb->maxlen)) == RAG_OK)
            forward(m, sc, bids, blens, boff, sb->ns, T, bout);
    }
    free(bids);
    free(blens);
    free(boff);
    free(bout);
    return rc;
}

typedef struct {
    encode_job *job;
    rag_bert_scratch *sc;
    int rc;
} encode_worker;

static void *encode_thread(void *arg)
{
    encode_worker *w = arg;
    w->rc = encode_batches(w->job, w->sc);
    return NULL;
}

int rag_bert_encode_ids(rag_bert *m, const int32_t *const *ids, const int *lens, size_t n,
                        float *out)
{
    return rag_bert_encode_ids_with(m, &m->own, ids, lens, n, out);
}

int rag_bert_encode_ids_with(const rag_bert *m, rag_bert_scratch *sc, const int32_t *const *ids,
                             const int *lens, size_t n, float *out)
{
    int rc = RAG_OK;
    const int limit = m->max_pos;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] < 1 || lens[i] > limit)
            return rag_fail(RAG_EINVAL, "bert: sequence %zu has %d tokens (1..%d allowed)", i,
                            lens[i], limit);
        for (int p = 0; p < lens[i]; p++)
            if (ids[i][p] < 0 || ids[i][p] >= m->vocab)
                return rag_fail(RAG_EINVAL, "bert: sequence %zu token %d: id %d out of range", i,
                                p, (int)ids[i][p]);
        total += (size_t)lens[i];
    }
    if (n == 0)
        return RAG_OK;
    int threads = __atomic_load_n(&encode_threads, __ATOMIC_RELAXED);
    if (threads < 1)
        threads = 1;
    /* batches of BATCH_TOKENS, or with several threads small enough for two per thread */
    size_t budget = BATCH_TOKENS;
    if (threads > 1 && total / (2 * (size_t)threads) < budget)
        budget = total / (2 * (size_t)threads) > BATCH_TOKENS_MIN
                     ? total / (2 * (size_t)threads) : BATCH_TOKENS_MIN;
    seq_ref *order = rag_malloc(n * sizeof *order);
    sub_batch *batches = rag_malloc(n * sizeof *batches);
    encode_worker workers[WORKERS_MAX - 1];
    pthread_t tids[WORKERS_MAX - 1];
    int started = 0;
    if (!order || !batches) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        order[i].idx = i;
        order[i].len = lens[i];
    }
    qsort(order, n, sizeof *order, by_len);
    encode_job job = {.m = m, .ids = ids, .lens = lens, .out = out, .order = order,
                      .batches = batches};
    for (size_t i = 0; i < n;) {
        sub_batch *sb = &batches[job.nbatches++];
        *sb = (sub_batch){.first = i};
        while (i < n && (sb->ns == 0 || sb->T + (size_t)order[i].len <= budget)) {
            sb->T += (size_t)order[i].len;
            sb->maxlen = order[i].len; /* ascending */
            sb->ns++;
            i++;
        }
        if (sb->ns > job.maxseq)
            job.maxseq = sb->ns;
    }
    /* Extra threads (each with its scratch, kept in sc for the next call) when there are
     * batches for them; OpenBLAS runs single-threaded inside each. A thread that cannot be
     * had leaves its share to the others. */
    int extra = threads - 1;
    if ((size_t)extra > job.nbatches - 1)
        extra = (int)(job.nbatches - 1);
    for (int t = 0; t < extra; t++) {
        if (!sc->helpers[t] && !(sc->helpers[t] = rag_bert_scratch_new()))
            break;
        workers[t] = (encode_worker){.job = &job, .sc = sc->helpers[t]};
        if (pthread_create(&tids[t], NULL, encode_thread, &workers[t]) != 0)
            break;
        started++;
    }
    rc = encode_batches(&job, sc);
    for (int t = 0; t < started; t++) {
        pthread_join(tids[t], NULL);
        if (rc == RAG_OK)
            rc = workers[t].rc;
    }
cleanup:
    free(order);
    free(batches);
    return rc;
}

int rag_bert_embed(rag_bert *m, const char *const *texts, const size_t *lens, size_t n,
                   const char *prefix, float *out)
{
    return rag_bert_embed_with(m, &m->own, texts, lens, n, prefix, out);
}

int rag_bert_embed_with(const rag_bert *m, rag_bert_scratch *sc, const char *const *texts,
                        const size_t *lens, size_t n, const char *prefix, float *out)
{
    int rc = RAG_OK;
    const int cap = m->max_tokens;
    int32_t *ids = rag_malloc((n ? n : 1) * (size_t)cap * sizeof *ids);
    int32_t **ptrs = rag_malloc((n ? n : 1) * sizeof *ptrs);
    int *nl = rag_malloc((n ? n : 1) * sizeof *nl);
    char *buf = NULL;
    size_t bufcap = 0, plen = prefix ? strlen(prefix) : 0;
    if (!ids || !ptrs || !nl) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        const char *t = texts[i];
        size_t len = lens ? lens[i] : strlen(texts[i]);
        if (plen) {
            if (plen + len + 1 > bufcap) {
                bufcap = (plen + len + 1) * 2;
                char *nb = rag_realloc(buf, bufcap);
                if (!nb) {
                    rc = RAG_ENOMEM;
                    goto cleanup;
                }
                buf = nb;
            }
            memcpy(buf, prefix, plen);
            memcpy(buf + plen, texts[i], len);
            t = buf;
            len += plen;
        }
        ptrs[i] = ids + i * (size_t)cap;
        int k = rag_tokenizer_encode(m->tok, t, len, ptrs[i], cap);
        if (k < 0) {
            rc = k;
            goto cleanup;
        }
        nl[i] = k;
    }
    rc = rag_bert_encode_ids_with(m, sc, (const int32_t *const *)ptrs, nl, n, out);
cleanup:
    free(ids);
    free(ptrs);
    free(nl);
    free(buf);
    return rc;
}
