/* bench_host.c - how steadily this machine gives CPU time: runs a fixed unit of arithmetic
 * (15-50 µs, by the machine) over and over on T threads and reports the "slow phases", runs of at
 * least 10 consecutive units that each took over 4 times the fastest unit.
 *
 * usage: bench_host [--threads T] [--seconds S]      (defaults: 1 thread, 10 s)
 *
 * A tail latency measured on a shared virtual machine cannot be shorter than the phases
 * in which the host hands its vCPUs out slowly; run this beside (or right before) a load
 * benchmark to know how much of a p99 belongs to the host. Per thread it prints the
 * number of slow phases, their total and longest length in ms, and the share of the run
 * they cover; then the start times of the phases of thread 0, to see whether the threads'
 * phases coincide (the whole VM slowed) or not (one vCPU). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UNIT_ITERS 20000
#define SLOW_FACTOR 4.0
#define SLOW_RUN 10
#define MAX_PHASES 4096

typedef struct {
    double seconds;
    double unit;                 /* fastest unit, s */
    int nphases;
    double start[MAX_PHASES];    /* monotonic start of each slow phase */
    double len[MAX_PHASES];      /* its length, s */
} probe;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Keeps the work loop from being optimised away. */
static volatile float sink;

/* One unit of work; returns its wall time in seconds. */
static double unit_of_work(void)
{
    double t0 = now();
    float s = 0;
    for (int k = 0; k < UNIT_ITERS; k++)
        s += (float)k * 0.5f;
    sink = s;
    return now() - t0;
}

static void *run_probe(void *arg)
{
    probe *p = arg;
    p->unit = 1e9;
    for (int i = 0; i < 200; i++) {
        double d = unit_of_work();
        if (d < p->unit)
            p->unit = d;
    }
    double t_end = now() + p->seconds, run_start = 0;
    int run = 0;
    for (;;) {
        double t0 = now();
        if (t0 >= t_end)
            break;
        double d = unit_of_work();
        if (d > SLOW_FACTOR * p->unit) {
            if (run++ == 0)
                run_start = t0;
            continue;
        }
        if (run >= SLOW_RUN && p->nphases < MAX_PHASES) {
            p->start[p->nphases] = run_start;
            p->len[p->nphases++] = t0 - run_start;
        }
        run = 0;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 1;
    double seconds = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_host [--threads T] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || !(seconds > 0)) {
        fprintf(stderr, "bench_host: --threads must be 1..256 and --seconds > 0\n");
        return 2;
    }
    probe *p = calloc((size_t)threads, sizeof *p);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    if (!p || !tid) {
        fprintf(stderr, "bench_host: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < threads; i++) {
        p[i].seconds = seconds;
        if (pthread_create(&tid[i], NULL, run_probe, &p[i]) != 0) {
            fprintf(stderr, "bench_host: cannot start thread %d\n", i);
            threads = i;
            rc = 1;
            break;
        }
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < threads; i++) {
        double total = 0, longest = 0;
        for (int j = 0; j < p[i].nphases; j++) {
            total += p[i].len[j];
            if (p[i].len[j] > longest)
                longest = p[i].len[j];
        }
        printf("thread %d: unit %.1f us; %d slow phases (>= %d units over %.0fx), %.1f ms in "
               "all (%.1f%% of %.0f s), longest %.1f ms\n",
               i, p[i].unit * 1e6, p[i].nphases, SLOW_RUN, SLOW_FACTOR, total * 1e3,
               100.0 * total / seconds, seconds, longest * 1e3);
    }
    if (threads > 0 && p[0].nphases) {
        printf("thread 0's phases start at (s from the first):");
        for (int j = 0; j < p[0].nphases && j < 40; j++)
            printf(" %.3f", p[0].start[j] - p[0].start[0]);
        printf("%s\n", p[0].nphases > 40 ? " ..." : "");
    }
    free(p);
    free(tid);
    return rc;
}
