/* writer.c - the single writer thread and its FIFO job queue. */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct job {
    writer_fn fn;
    void *arg;
    struct job *next;
} job;

struct srv_writer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    long reserved;   /* reservations + queued + running */
    int stop;
    pthread_t thread;
};

static void *writer_main(void *arg)
{
    srv_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !(w->stop && w->reserved == 0))
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head)
            break;
        job *j = w->head;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&w->mu);
        w->reserved--;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

srv_writer *writer_start(void)
{
    srv_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

int writer_reserve(srv_writer *w, long limit)
{
    int rc = -1;
    pthread_mutex_lock(&w->mu);
    if (!w->stop && w->reserved < limit) {
        w->reserved++;
        rc = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void writer_push(srv_writer *w, writer_fn fn, void *arg)
{
    job *j = malloc(sizeof *j);
    if (!j) { /* last resort: run inline rather than lose a reserved request */
        fn(arg);
        pthread_mutex_lock(&w->mu);
        w->reserved--;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        return;
    }
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

long writer_pending(srv_writer *w)
{
    pthread_mutex_lock(&w->mu);
    long n = w->reserved;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void writer_stop(srv_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
