/* check_report.h - the report of a store check, and the checker process that fills it.
 *
 * A check reads every page of the store through LMDB, which trusts its file: a damaged page
 * can trip one of LMDB's assertions (abort) or send it through a garbage pointer (SIGSEGV).
 * rag_check_isolated runs such a pass in a child process that streams each finding to the
 * parent as it is made, along with the stage it is at ("collection 'a': documents"), so a
 * child killed by a signal leaves the findings made so far and a problem naming the stage
 * and the signal: a fault becomes a report. */
#ifndef RAG_CHECK_REPORT_H
#define RAG_CHECK_REPORT_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

struct rag_check_report {
    rag_check_item *items;
    size_t n, cap;
    uint64_t counts[4];
    rag_check_totals totals;
    int stream_fd;            /* in a checker child: where items and stages go; else -1 */
};

/* A new empty report (NULL on allocation failure). */
rag_check_report *rag_check_report_new(void);

/* Appends an item, taking ownership of `msg` (freed on failure); in a checker child the
 * item is sent to the parent instead of kept. Does not touch the counts. */
int rag_check_report_push(rag_check_report *r, int kind, const char *coll, uint32_t cid,
                          int index_file, char *msg);

/* Records what the pass is about to read, for the problem a crash there becomes. A no-op
 * outside a checker child. */
void rag_check_stage(rag_check_report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A pass of the check over store `dir` filling `r` (counts, totals, items). */
typedef int (*rag_check_pass_fn)(const char *dir, void *user, rag_check_report *r);

/* Runs `pass` (given `user`) in a child process and merges what it found into `r`. When the child is
 * killed by a signal, `r` keeps the findings it sent and gains a problem naming the stage
 * it was at and the signal, and *crashed is set to 1. Returns the pass's status (its
 * message is carried over), or RAG_EIO / RAG_ENOMEM when the child cannot be started.
 * A child whose threads all wait on a lock without using CPU time or sending anything for
 * CHECK_STALL_S seconds (RAGCORE_CHECK_STALL_S) is stuck on a lock inherited from another
 * thread: it is killed and replaced, up to CHECK_TRIES times (then RAG_EIO). With
 * RAGCORE_CHECK_FORK=0 in the environment the pass runs in this process. */
int rag_check_isolated(const char *dir, rag_check_pass_fn pass, void *user,
                       rag_check_report *r, int *crashed);

#endif
