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

void rl_owe(_Atomic int64_t *tat, double rate, double cost, int64_t now_ns)
{
    if (rate <= 0 || cost <= 0)
        return;
    double inc = cost / rate * NS;
    int64_t cap = now_ns + (int64_t)(2 * NS); /* empty, and one second's worth owed */
    int64_t old = atomic_load(tat);
    for (;;) {
        int64_t t = old > now_ns ? old : now_ns;
        int64_t next = (double)(cap - t) < inc ? cap : t + (int64_t)inc;
        if (next <= old || atomic_compare_exchange_weak(tat, &old, next))
            return;
    }
}

double ratelimit_charge(const auth_key *k, int which, long rate, double cost, char *msg,
                        size_t msglen, long *retry_after)
{
    double wait = rl_take(auth_key_budget(k, which), (double)rate, cost,
                          (int64_t)(srv_monotonic() * NS));
    if (wait <= 0)
        return 0;
    const char *id = auth_key_id(k);
    if (which == AUTH_BUDGET_TOKENS)
        snprintf(msg, msglen,
                 "API key '%s' is over its budget of %ld embedding tokens a second (this "
                 "request: about %.0f); retry in %.1f s", id, rate, cost, wait);
    else
        snprintf(msg, msglen,
                 "API key '%s' is over its budget of %ld requests a second; retry in %.1f s",
                 id, rate, wait);
    *retry_after = ceil(wait) < 1 ? 1 : (long)ceil(wait);
    return wait;
}

/* Charges `cost` to budget `which` of r->key at `rate` a second; answers 429 when over. */
static int charge(http_req *r, int which, long rate, double cost)
{
    char msg[512];
    long retry_after = 1;
    if (ratelimit_charge(r->key, which, rate, cost, msg, sizeof msg, &retry_after) <= 0)
        return 0;
    http_error(r, 429, "rate_limited", NULL, "%s", msg);
    r->hdr_name = "Retry-After";
    snprintf(r->hdr_value, sizeof r->hdr_value, "%ld", retry_after);
    metrics_rate_limited(r->s->metrics, which == AUTH_BUDGET_TOKENS);
    return -1;
}

int ratelimit_request(http_req *r)
{
    return charge(r, AUTH_BUDGET_REQUESTS, atomic_load(&r->s->cfg.limits.key_request_rate), 1);
}

int ratelimit_tokens(http_req *r, double tokens)
{
    return charge(r, AUTH_BUDGET_TOKENS, atomic_load(&r->s->cfg.limits.key_token_rate), tokens);
}
