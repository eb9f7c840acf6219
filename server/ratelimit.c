/* ratelimit.c - per-API-key request and token budgets and their 429 answers (see
 * ratelimit.h). */
#include "ratelimit.h"

#include "clock.h"

#include <math.h>
#include <stdio.h>

#define NS 1e9

double rl_take(_Atomic int64_t *tat, double rate, double cost, int64_t now_ns)
{
    if (rate <= 0)
        return 0;
    double inc = cost / rate * NS; /* time the cost takes to refill */
    if (inc > 1e18)
        inc = 1e18;
    double need = inc < NS ? inc : NS; /* a cost beyond the bucket needs it full */
    int64_t old = atomic_load(tat);
    for (;;) {
        int64_t t = old > now_ns ? old : now_ns;
        double ahead = (double)(t - now_ns); /* how far the bucket is from full */
        if (ahead + need > NS)
            return (ahead + need - NS) / NS;
        if (atomic_compare_exchange_weak(tat, &old, t + (int64_t)inc))
            return 0;
    }
}

/* Answers 429 for budget `which` of r->key after rl_take asked to wait `wait` seconds. */
static int refuse(http_req *r, int which, double wait, long rate, double cost)
{
    const char *id = auth_key_id(r->key);
    if (which == AUTH_BUDGET_TOKENS)
        http_error(r, 429, "rate_limited", NULL,
                   "API key '%s' is over its budget of %ld embedding tokens a second (this "
                   "request: about %.0f); retry in %.1f s", id, rate, cost, wait);
    else
        http_error(r, 429, "rate_limited", NULL,
                   "API key '%s' is over its budget of %ld requests a second; retry in %.1f s",
                   id, rate, wait);
    r->hdr_name = "Retry-After";
    snprintf(r->hdr_value, sizeof r->hdr_value, "%.0f", ceil(wait) < 1 ? 1 : ceil(wait));
    metrics_rate_limited(r->s->metrics, which == AUTH_BUDGET_TOKENS);
    return -1;
}

/* Charges `cost` to budget `which` of r->key at `rate` a second. */
static int charge(http_req *r, int which, long rate, double cost)
{
    double wait = rl_take(auth_key_budget(r->key, which), (double)rate, cost,
                          (int64_t)(srv_monotonic() * NS));
    return wait > 0 ? refuse(r, which, wait, rate, cost) : 0;
}

int ratelimit_request(http_req *r)
{
    return charge(r, AUTH_BUDGET_REQUESTS, atomic_load(&r->s->cfg.limits.key_request_rate), 1);
}

int ratelimit_tokens(http_req *r, double tokens)
{
    return charge(r, AUTH_BUDGET_TOKENS, atomic_load(&r->s->cfg.limits.key_token_rate), tokens);
}
