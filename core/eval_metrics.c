/* eval_metrics.c - nDCG, recall, MRR and paired significance tests (public rag_eval_*). */
#include "ragcore.h"

#include <math.h>
#include <stdlib.h>

static double dcg(const double *gains, size_t n, size_t k)
{
    double s = 0;
    for (size_t i = 0; i < n && i < k; i++)
        if (gains[i] > 0)
            s += gains[i] / log2((double)i + 2.0);
    return s;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

double rag_eval_ndcg(const double *ranked, size_t n, const double *rel, size_t n_rel, size_t k)
{
    if (n_rel == 0 || k == 0)
        return 0;
    /* the ideal DCG needs the k best relevant gains in decreasing order */
    double small[64], *ideal = n_rel <= 64 ? small : malloc(n_rel * sizeof *ideal);
    if (!ideal)
        return NAN;
    for (size_t i = 0; i < n_rel; i++)
        ideal[i] = rel[i];
    if (n_rel)
        qsort(ideal, n_rel, sizeof *ideal, cmp_desc);
    double idcg = dcg(ideal, n_rel, k);
    if (ideal != small)
        free(ideal);
    return idcg > 0 ? dcg(ranked, n, k) / idcg : 0;
}

double rag_eval_recall(const double *ranked, size_t n, size_t n_rel, size_t k)
{
    if (n_rel == 0)
        return 0;
    size_t hits = 0;
    for (size_t i = 0; i < n && i < k; i++)
        hits += ranked[i] > 0;
    return (double)hits / (double)n_rel;
}

double rag_eval_mrr(const double *ranked, size_t n, size_t k)
{
    for (size_t i = 0; i < n && i < k; i++)
        if (ranked[i] > 0)
            return 1.0 / (double)(i + 1);
    return 0;
}

/* splitmix64: a small, well-mixed generator; each call advances *state. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double rag_eval_randomization_p(const double *a, const double *b, size_t n,
                                unsigned iterations, uint64_t seed)
{
    if (n == 0)
        return 1;
    double observed = 0;
    for (size_t i = 0; i < n; i++)
        observed += a[i] - b[i];
    observed = fabs(observed);
    /* floating-point sums of the same terms in another order may differ in the last bits */
    double eps = 1e-9 * (observed > 1 ? observed : 1);
    uint64_t state = seed;
    unsigned extreme = 0;
    for (unsigned it = 0; it < iterations; it++) {
        double s = 0;
        uint64_t bits = 0;
        for (size_t i = 0; i < n; i++) {
            if ((i & 63) == 0)
                bits = next_random(&state);
            double d = a[i] - b[i];
            s += (bits & 1) ? d : -d;
            bits >>= 1;
        }
        if (fabs(s) >= observed - eps)
            extreme++;
    }
    return ((double)extreme + 1.0) / ((double)iterations + 1.0);
}

/* Regularised incomplete beta I_x(a, b) by its continued fraction (modified Lentz), using
 * the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly. */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 500; m++) {
        double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + num * d;
        c = 1 + num / c;
        if (fabs(d) < tiny)
            d = tiny;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        h *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + num * d;
        c = 1 + num / c;
        if (fabs(d) < tiny)
            d = tiny;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double delta = d * c;
        h *= delta;
        if (fabs(delta - 1) < 1e-15)
            break;
    }
    return h;
}

static double inc_beta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lfront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lfront) * betacf(a, b, x) / a;
    return 1 - exp(lfront) * betacf(b, a, 1 - x) / b;
}

double rag_eval_t_pvalue(double t, double df)
{
    if (isnan(t) || df <= 0)
        return 1;
    if (isinf(t))
        return 0;
    return inc_beta(df / 2, 0.5, df / (df + t * t));
}

double rag_eval_paired_t(const double *a, const double *b, size_t n, double *t)
{
    *t = 0;
    if (n < 2)
        return 1;
    double mean = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        mean += a[i] - b[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - b[i] - mean;
        ss += d * d;
    }
    double sd = sqrt(ss / (double)(n - 1));
    if (sd < 1e-300) {
        if (fabs(mean) < 1e-300)
            return 1;
        *t = mean > 0 ? INFINITY : -INFINITY;
        return 0;
    }
    *t = mean / (sd / sqrt((double)n));
    return rag_eval_t_pvalue(*t, (double)(n - 1));
}

static int cmp_asc(const void *a, const void *b)
{
    return -cmp_desc(a, b);
}

double rag_eval_quantile(double *values, size_t n, double q)
{
    if (n == 0)
        return 0;
    if (n)
        qsort(values, n, sizeof *values, cmp_asc);
    if (q <= 0)
        return values[0];
    if (q >= 1)
        return values[n - 1];
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    double frac = pos - (double)lo;
    return lo + 1 < n ? values[lo] + frac * (values[lo + 1] - values[lo]) : values[lo];
}
