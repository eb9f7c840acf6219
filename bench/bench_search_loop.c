/* bench_search_loop.c - the C library path of a search loop, for the Python binding's
 * overhead benchmark (bench/python_bench.py): opens a store read-only, runs every query of
 * a file (one per line) through rag_search PASSES times and prints the mean microseconds
 * per search and the hits it returned, using include/ragcore.h only.
 * usage: bench_search_loop DB QUERIES_TXT K MODE PASSES */
#include "ragcore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s DB QUERIES_TXT K MODE PASSES\n", argv[0]);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char **q = NULL, *line = NULL;
    size_t nq = 0, cap = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        char **grown = realloc(q, (nq + 1) * sizeof *q);
        if (!grown || !(grown[nq] = strdup(line)))
            return 1;
        q = grown;
        nq++;
    }
    free(line);
    fclose(f);
    rag_open_options o;
    rag_open_options_init(&o);
    o.read_only = 1;
    rag_db *db = NULL;
    int rc = rag_open(argv[1], &o, &db);
    if (rc != RAG_OK) {
        fprintf(stderr, "open: %s\n", rag_errmsg());
        return 1;
    }
    rag_search_options so;
    rag_search_options_init(&so);
    so.k = atoi(argv[3]);
    if (rag_search_option_set(&so, "mode", argv[4]) != RAG_OK) {
        fprintf(stderr, "%s\n", rag_errmsg());
        return 1;
    }
    int passes = atoi(argv[5]);
    unsigned long long hits = 0;
    double t0 = now();
    for (int p = 0; p < passes; p++)
        for (size_t i = 0; i < nq; i++) {
            rag_results *res = NULL;
            if ((rc = rag_search(db, q[i], &so, &res)) != RAG_OK) {
                fprintf(stderr, "search: %s\n", rag_errmsg());
                return 1;
            }
            hits += rag_results_count(res);
            rag_results_free(res);
        }
    double us = (now() - t0) * 1e6 / ((double)passes * (double)nq);
    printf("{\"us_per_search\": %.2f, \"searches\": %zu, \"hits\": %llu}\n", us,
           (size_t)passes * nq, hits);
    rag_close(db);
    for (size_t i = 0; i < nq; i++)
        free(q[i]);
    free(q);
    return 0;
}
