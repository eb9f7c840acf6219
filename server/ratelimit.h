/* ratelimit.h - per-API-key budgets: requests a second and /v1/embeddings encoder tokens a
 * second. Each is a token bucket kept as one atomic time stamp (the generic cell rate
 * algorithm: the time at which the bucket would be full again), so a check takes no lock. */
#ifndef SRV_RATELIMIT_H
#define SRV_RATELIMIT_H

#include "auth.h"
#include "http.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Takes `cost` units from the bucket whose state is *tat (0: full), refilled at `rate`
 * units a second and holding one second's worth. A cost larger than the bucket holds is
 * let through when the bucket is full, the excess owed: later requests wait until it is
 * paid back. Returns 0 when taken, else the seconds until the bucket holds enough
 * (nothing is taken then). rate <= 0 means no limit (0). now_ns: a monotonic clock in
 * nanoseconds. Lock-free; can't fail. */
double rl_take(_Atomic int64_t *tat, double rate, double cost, int64_t now_ns);

/* Charges `cost` that another process has already let through (a cluster's other routers
 * report what they took) to the bucket *tat refilled at `rate`: taken whatever the bucket
 * holds, so that requests here wait until the cost is paid back, but leaving the bucket at
 * most one second's worth in debt (a burst elsewhere never blocks a key here for longer
 * than that). rate <= 0: nothing. Lock-free; can't fail. */
void rl_owe(_Atomic int64_t *tat, double rate, double cost, int64_t now_ns);

/* Charges `cost` to budget `which` (AUTH_BUDGET_*) of key k at `rate` a second (<= 0: no
 * limit), the check of ratelimit_request and ratelimit_tokens for any HTTP front (a
 * cluster's routers too). 0 when taken; else the seconds until the budget holds enough
 * (nothing taken), with the 429 message naming the key and its budget in msg and the
 * Retry-After value (whole seconds, at least 1) in *retry_after. */
double ratelimit_charge(const auth_key *k, int which, long rate, double cost, char *msg,
                        size_t msglen, long *retry_after);

/* Charges one request to r->key's request budget (limits.key_request_rate). 0, or -1
 * after answering 429 "rate_limited" with Retry-After. */
int ratelimit_request(http_req *r);

/* Charges `tokens` (estimated encoder tokens) to r->key's token budget
 * (limits.key_token_rate). 0, or -1 after answering 429 "rate_limited" with Retry-After. */
int ratelimit_tokens(http_req *r, double tokens);

#endif
