/* bert.c - BERT-family sentence encoder (embeddings, transformer layers, pooling) on OpenBLAS. */
#include "bert.h"
#include "gemm_small.h"
#include "safetensors.h"
#include "status.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH_TOKENS 4096

/* Batches of at most this many tokens run their linear layers through gemm_small.c
 * instead of cblas_sgemm, whose packing of W dominates at a query's few tokens. Measured
 * with `bench_embed --sweep` (docs/benchmarks.md): with W read in place the whole encoder
 * is faster than through OpenBLAS's SkylakeX kernels up to about 56 tokens (AVX-512) and
 * than its Haswell kernels up to 64 and more (AVX2); with W pre-packed (AVX-512 only) it
 * was still 1.1x faster at 128 tokens. */
#define SMALL_GEMM_MAX 48
#define PACKED_GEMM_MAX 128

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
} layer;

/* Activations of one forward pass, grown on demand. */
struct rag_bert_scratch {
    size_t cap_tokens, cap_scores;
    float *x, *qkv, *ctx, *tmp, *mid, *scores;
};

struct rag_bert {
    int vocab, hidden, layers, heads, inter, max_pos, type_vocab;
    float eps;
    int max_tokens;
    rag_pooling pooling;
    rag_tokenizer *tok;
    float *word, *pos;    /* [V, H]; [P, H] with token type 0 added */
    float *elng, *elnb;
    layer *L;
    rag_bert_scratch own; /* scratch of rag_bert_embed / rag_bert_encode_ids */
};

int rag_bert_dim(const rag_bert *m) { return m->hidden; }
int rag_bert_max_tokens(const rag_bert *m) { return m->max_tokens; }
rag_pooling rag_bert_pooling(const rag_bert *m) { return m->pooling; }
const rag_tokenizer *rag_bert_tokenizer(const rag_bert *m) { return m->tok; }

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
    openblas_set_num_threads(n);
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

int rag_bert_set_small_gemm(int max_tokens)
{
    if (max_tokens < 0) {
        const char *env = getenv("RAGCORE_SMALL_GEMM");
        max_tokens = rag_gemm_small_isa() == RAG_GEMM_AVX512 ? PACKED_GEMM_MAX : SMALL_GEMM_MAX;
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
    const char *env = getenv("RAGCORE_THREADS");
    if (env && atoi(env) > 0)
        rag_bert_set_threads(atoi(env));
}

static void scratch_clear(rag_bert_scratch *s)
{
    free(s->x);
    free(s->qkv);
    free(s->ctx);
    free(s->tmp);
    free(s->mid);
    free(s->scores);
    memset(s, 0, sizeof *s);
}

rag_bert_scratch *rag_bert_scratch_new(void)
{
    return rag_calloc(1, sizeof(rag_bert_scratch));
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
    int rc;
    rag_safetensors *st = NULL;
    json_t *cfg = NULL;
    *out = NULL;
    rag_bert *m = rag_calloc(1, sizeof *m);
    if (!m)
        return RAG_ENOMEM;
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

static void layer_norm_scalar(float *x, const float *g, const float *b, int h, float eps)
{
    float mean = 0, var = 0;
    for (int j = 0; j < h; j++)
        mean += x[j];
    mean /= (float)h;
    for (int j = 0; j < h; j++) {
        float d = x[j] - mean;
        var += d * d;
    }
    var /= (float)h;
    float inv = 1.0f / sqrtf(var + eps);
    for (int j = 0; j < h; j++)
        x[j] = (x[j] - mean) * inv * g[j] + b[j];
}

/* ---- elementwise kernels: scalar reference forms, and AVX2+FMA forms chosen at run time --- */

/* e^x for x <= 0 (clamped at -87, where it underflows): 2^n * p(r) with n = round(x / ln 2),
 * r = x - n ln 2 in two parts, p a degree-7 polynomial (relative error ~2e-7). */
static inline float exp_approx(float x)
{
    x = fmaxf(x, -87.0f);
    float n = nearbyintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/* erf-form GELU of one value: 0.5 v (1 + erf(v / sqrt 2)), erf by Abramowitz & Stegun
 * 7.1.26 (absolute error <= 1.5e-7). */
static inline float gelu1(float v)
{
    float z = v * 0.70710678118654752f, az = fabsf(z);
    float t = 1.0f / (1.0f + 0.3275911f * az);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
                 t * (-1.453152027f + t * 1.061405429f))));
    float e = copysignf(1.0f - poly * exp_approx(-az * az), z);
    return 0.5f * v * (1.0f + e);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_KERNELS 1

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) static void gelu_avx2(float *x, size_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
        __m256 az = _mm256_andnot_ps(sign, z);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), az, one));
        __m256 p = _mm256_set1_ps(1.061405429f);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
        p = _mm256_mul_ps(p, t);
        __m256 ex = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(az, az)));
        __m256 e = _mm256_fnmadd_ps(p, ex, one);
        e = _mm256_or_ps(e, _mm256_and_ps(z, sign));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                                              _mm256_add_ps(one, e)));
    }
    for (; i < n; i++)
        x[i] = gelu1(x[i]);
}

/* In-place softmax of one row. */
__attribute__((target("avx2,fma"))) static void softmax_avx2(float *s, int n)
{
    __m256 mx8 = _mm256_set1_ps(s[0]);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(s + j));
    float lanes[8], mx = s[0], sum = 0;
    _mm256_storeu_ps(lanes, mx8);
    for (int k = 0; k < 8; k++)
        mx = lanes[k] > mx ? lanes[k] : mx;
    for (; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    __m256 acc = _mm256_setzero_ps(), sh = _mm256_set1_ps(mx);
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), sh));
        _mm256_storeu_ps(s + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    _mm256_storeu_ps(lanes, acc);
    for (int k = 0; k < 8; k++)
        sum += lanes[k];
    for (; j < n; j++) {
        s[j] = exp_approx(s[j] - mx);
        sum += s[j];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
    for (; j < n; j++)
        s[j] *= 1.0f / sum;
}

/* LayerNorm of one row (two passes: mean, then variance of the deviations). */
__attribute__((target("avx2,fma"))) static void layer_norm_avx2(float *x, const float *g,
                                                                const float *b, int h, float eps)
{
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    float lanes[8], mean = 0, var = 0;
    for (; j + 8 <= h; j += 8)
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + j));
    _mm256_storeu_ps(lanes, acc);
    for (int k = 0; k < 8; k++)
        mean += lanes[k];
    for (; j < h; j++)
        mean += x[j];
    mean /= (float)h;
    __m256 m8 = _mm256_set1_ps(mean);
    acc = _mm256_setzero_ps();
    for (j = 0; j + 8 <= h; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), m8);
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    _mm256_storeu_ps(lanes, acc);
    for (int k = 0; k < 8; k++)
        var += lanes[k];
    for (; j < h; j++)
        var += (x[j] - mean) * (x[j] - mean);
    var /= (float)h;
    float inv = 1.0f / sqrtf(var + eps);
    __m256 i8 = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= h; j += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), m8), i8);
        _mm256_storeu_ps(x + j, _mm256_fmadd_ps(d, _mm256_loadu_ps(g + j), _mm256_loadu_ps(b + j)));
    }
    for (; j < h; j++)
        x[j] = (x[j] - mean) * inv * g[j] + b[j];
}

static int use_avx2(void)
{
    /* Encodes run on several threads: the cached answer is read and written atomically
     * (every thread computes the same value). */
    static int v = -1;
    int r = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (r < 0) {
        r = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&v, r, __ATOMIC_RELAXED);
    }
    return r;
}
#endif

static void layer_norm(float *x, const float *g, const float *b, int h, float eps)
{
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2()) {
        layer_norm_avx2(x, g, b, h, eps);
        return;
    }
#endif
    layer_norm_scalar(x, g, b, h, eps);
}

static void gelu(float *x, size_t n)
{
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2()) {
        gelu_avx2(x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        x[i] = gelu1(x[i]);
}

static void softmax_row(float *s, int n)
{
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2()) {
        softmax_avx2(s, n);
        return;
    }
#endif
    float mx = s[0], sum = 0;
    for (int j = 1; j < n; j++)
        if (s[j] > mx)
            mx = s[j];
    for (int j = 0; j < n; j++) {
        s[j] = exp_approx(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++)
        s[j] *= inv;
}

static int grow(const rag_bert *m, rag_bert_scratch *sc, size_t tokens, size_t maxlen)
{
    const size_t H = (size_t)m->hidden, NI = (size_t)m->inter;
    if (tokens > sc->cap_tokens) {
        float *p[5];
        size_t sz[5] = {H, 3 * H, H, H, NI};
        float **dst[5] = {&sc->x, &sc->qkv, &sc->ctx, &sc->tmp, &sc->mid};
        for (int k = 0; k < 5; k++) {
            p[k] = rag_realloc(*dst[k], tokens * sz[k] * sizeof(float));
            if (!p[k])
                return RAG_ENOMEM;
            *dst[k] = p[k];
        }
        sc->cap_tokens = tokens;
    }
    if (maxlen * maxlen > sc->cap_scores) {
        float *s = rag_realloc(sc->scores, maxlen * maxlen * sizeof(float));
        if (!s)
            return RAG_ENOMEM;
        sc->scores = s;
        sc->cap_scores = maxlen * maxlen;
    }
    return RAG_OK;
}

/* dst[t, :] = bias for t in 0..T (so a following GEMM with beta = 1 adds onto it), or
 * dst = src + bias when src is given (residual). */
static void fill_bias(float *dst, const float *src, const float *bias, size_t T, size_t n)
{
    for (size_t t = 0; t < T; t++) {
        float *d = dst + t * n;
        if (src) {
            const float *s = src + t * n;
            for (size_t j = 0; j < n; j++)
                d[j] = s[j] + bias[j];
        } else {
            memcpy(d, bias, n * sizeof(float));
        }
    }
}

/* y[T, N] += x[T, K] * W[N, K]^T (y holds the bias already): gemm_small.c when
 * `small` (its packed kernel when W was packed), else OpenBLAS. */
static void linear(int small, size_t T, int N, int K, const float *x, const float *w,
                   const rag_gemm_packed *pw, float *y)
{
    if (small && pw)
        rag_gemm_small_packed(T, pw, 1.0f, x, (size_t)K, y, (size_t)N);
    else if (small)
        rag_gemm_small_nt(T, (size_t)N, (size_t)K, 1.0f, x, (size_t)K, w, (size_t)K, y,
                          (size_t)N);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, N, K, 1.0f, x, K, w, K,
                    1.0f, y, N);
}

/* Runs the encoder on one packed batch: ids of `ns` sequences back to back (seq k at
 * off[k], lens[k] tokens) and writes the pooled vectors to out[k * H]. */
static void forward(const rag_bert *m, rag_bert_scratch *sc, const int32_t *const *ids,
                    const int *lens, const size_t *off, size_t ns, size_t T, float *const *out)
{
    const int H = m->hidden, NI = m->inter, NH = m->heads, D = H / NH, H3 = 3 * H;
    const float scale = 1.0f / sqrtf((float)D);
    int limit = small_gemm_limit();
    if (!m->L[0].pqkv && limit > SMALL_GEMM_MAX) /* W in place: OpenBLAS wins past ~56 */
        limit = SMALL_GEMM_MAX;
    const int small = T <= (size_t)limit;
    float *x = sc->x, *qkv = sc->qkv, *ctx = sc->ctx, *tmp = sc->tmp, *mid = sc->mid;
    for (size_t k = 0; k < ns; k++)
        for (int p = 0; p < lens[k]; p++) {
            float *row = x + (off[k] + (size_t)p) * (size_t)H;
            const float *w = m->word + (size_t)ids[k][p] * (size_t)H;
            const float *ps = m->pos + (size_t)p * (size_t)H;
            for (int j = 0; j < H; j++)
                row[j] = w[j] + ps[j];
            layer_norm(row, m->elng, m->elnb, H, m->eps);
        }
    for (int li = 0; li < m->layers; li++) {
        const layer *l = &m->L[li];
        fill_bias(qkv, NULL, l->bqkv, T, (size_t)H3);
        linear(small, T, H3, H, x, l->wqkv, l->pqkv, qkv);
        for (size_t k = 0; k < ns; k++) {
            const int L = lens[k];
            const float *base = qkv + off[k] * (size_t)H3;
            for (int h = 0; h < NH; h++) {
                const float *q = base + h * D, *kk = base + H + h * D, *v = base + 2 * H + h * D;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, D, scale, q, H3, kk, H3,
                            0.0f, sc->scores, L);
                for (int r = 0; r < L; r++)
                    softmax_row(sc->scores + (size_t)r * (size_t)L, L);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, D, L, 1.0f, sc->scores, L,
                            v, H3, 0.0f, ctx + off[k] * (size_t)H + (size_t)(h * D), H);
            }
        }
        fill_bias(tmp, x, l->bo, T, (size_t)H);
        linear(small, T, H, H, ctx, l->wo, l->po, tmp);
        for (size_t t = 0; t < T; t++)
            layer_norm(tmp + t * (size_t)H, l->ln1g, l->ln1b, H, m->eps);
        fill_bias(mid, NULL, l->bi, T, (size_t)NI);
        linear(small, T, NI, H, tmp, l->wi, l->pi, mid);
        gelu(mid, T * (size_t)NI);
        fill_bias(x, tmp, l->bout, T, (size_t)H);
        linear(small, T, H, NI, mid, l->wout, l->pout, x);
        for (size_t t = 0; t < T; t++)
            layer_norm(x + t * (size_t)H, l->ln2g, l->ln2b, H, m->eps);
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
    for (size_t i = 0; i < n; i++) {
        if (lens[i] < 1 || lens[i] > limit)
            return rag_fail(RAG_EINVAL, "bert: sequence %zu has %d tokens (1..%d allowed)", i,
                            lens[i], limit);
        for (int p = 0; p < lens[i]; p++)
            if (ids[i][p] < 0 || ids[i][p] >= m->vocab)
                return rag_fail(RAG_EINVAL, "bert: sequence %zu token %d: id %d out of range", i,
                                p, (int)ids[i][p]);
    }
    seq_ref *order = rag_malloc((n ? n : 1) * sizeof *order);
    const int32_t **bids = rag_malloc((n ? n : 1) * sizeof *bids);
    int *blens = rag_malloc((n ? n : 1) * sizeof *blens);
    size_t *boff = rag_malloc((n ? n : 1) * sizeof *boff);
    float **bout = rag_malloc((n ? n : 1) * sizeof *bout);
    if (!order || !bids || !blens || !boff || !bout) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        order[i].idx = i;
        order[i].len = lens[i];
    }
    if (n)
        qsort(order, n, sizeof *order, by_len);
    for (size_t i = 0; i < n;) {
        size_t ns = 0, T = 0;
        int maxlen = 0;
        while (i < n && (ns == 0 || T + (size_t)order[i].len <= BATCH_TOKENS)) {
            size_t k = order[i].idx;
            bids[ns] = ids[k];
            blens[ns] = lens[k];
            boff[ns] = T;
            bout[ns] = out + k * (size_t)m->hidden;
            T += (size_t)lens[k];
            if (lens[k] > maxlen)
                maxlen = lens[k];
            ns++;
            i++;
        }
        if ((rc = grow(m, sc, T, (size_t)maxlen)))
            goto cleanup;
        forward(m, sc, bids, blens, boff, ns, T, bout);
    }
cleanup:
    free(order);
    free(bids);
    free(blens);
    free(boff);
    free(bout);
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
