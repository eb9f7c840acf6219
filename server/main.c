/* main.c - ragcore-server: configuration, start-up, signals (SIGHUP reload, SIGTERM drain
 * + checkpoint + exit 0) and shutdown. */
#ifdef RAGCORE_HAVE_NATS
#include "cluster.h"
#endif
#include "clock.h"
#include "http.h"
#include "keys_cli.h"
#include "log.h"
#include "port_file.h"
#include "routes.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* FAISS parallelises each search with OpenMP; a server gets its parallelism from
 * concurrent requests instead, and nested thread teams per request thread oversubscribe
 * the CPUs. The OpenMP runtime reads its environment when loaded, so the setting is made
 * by re-executing once. Set OMP_NUM_THREADS yourself to choose otherwise.
 * (The indexes' huge pages come from the library itself: core/hugepages.c.) */
static void single_threaded_openmp(char **argv)
{
    if (getenv("OMP_NUM_THREADS"))
        return;
    setenv("OMP_NUM_THREADS", "1", 1);
    if (!getenv("OMP_WAIT_POLICY"))
        setenv("OMP_WAIT_POLICY", "passive", 1);
    if (!getenv("OPENBLAS_NUM_THREADS"))
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the runtime's defaults */
}

/* Signals arrive on any thread (libraries start threads before main), so the handler
 * only forwards the signal number through a pipe that the main thread reads. */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

static int install_signals(void)
{
    struct sigaction sa;
    if (pipe2(sig_pipe, O_CLOEXEC) < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
        sigaction(SIGHUP, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* A RAGCORE_ADMIN_KEY holds every scope, and nothing limits how many wrong keys a client
 * may try: one shorter than AUTH_BOOTSTRAP_MIN_LEN characters falls to guessing in few
 * requests. On a listener other clients can reach (not loopback), TLS or not, the server
 * refuses to start with it: a warning at start-up is easily missed, a store opened to the
 * network with a guessable admin key is not recoverable. On loopback it only warns.
 * Returns 0, or -1 after printing why the server must not start. */
static int check_admin_key(const srv_config *cfg)
{
    const char *key = getenv("RAGCORE_ADMIN_KEY");
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len >= AUTH_BOOTSTRAP_MIN_LEN)
        return 0;
    int loopback = http_listen_is_loopback(cfg->listen);
    if (loopback == 0) {
        fprintf(stderr,
                "ragcore-server: RAGCORE_ADMIN_KEY is %zu characters long: an admin key must "
                "have at least %d on an address other hosts can reach (--listen %s), or it can "
                "be guessed. Use a long random key (openssl rand -hex 24), or listen on "
                "127.0.0.1.\n",
                len, AUTH_BOOTSTRAP_MIN_LEN, cfg->listen);
        return -1;
    }
    if (loopback == 1)
        log_msg("warn", "weak_admin_key",
                "RAGCORE_ADMIN_KEY is %zu characters long (at least %d are needed on an "
                "address other hosts can reach)",
                len, AUTH_BOOTSTRAP_MIN_LEN);
    return 0;
}

static int open_store(srv *s)
{
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.embedder = s->cfg.embedder;
    oo.store_key_file = s->cfg.key_file;
    oo.dim = s->cfg.dim;
    oo.index_spec = s->cfg.index_spec;
    oo.hnsw_ef_search = s->cfg.ef_search;
    oo.hnsw_ef_construction = s->cfg.ef_construction;
    oo.checkpoint_every = s->cfg.checkpoint_every;
    double t0 = srv_monotonic();
    int rc = rag_open(s->cfg.db, &oo, &s->db);
    if (rc != RAG_OK) {
        log_event("error", "store_open",
                  json_pack("{s:s,s:s,s:s}", "db", s->cfg.db, "status", rag_strerror(rc),
                            "message", rag_errmsg()));
        return rc;
    }
    s->dim = rag_db_dim(s->db);
    rc = auth_open(s->db, getenv("RAGCORE_ADMIN_KEY"), &s->auth);
    if (rc != RAG_OK) {
        log_msg("error", "keys_load", "%s: %s", rag_strerror(rc), rag_errmsg());
        return rc;
    }
    if (!(s->qlog = qlog_start(s->db, &s->cfg.limits, s->metrics)) ||
        !(s->writer = writer_start())) {
        log_msg("error", "start", "cannot start the query-log or writer thread");
        return RAG_ENOMEM;
    }
    if (rag_toxicity_open(0, NULL, NULL, &s->tox) != RAG_OK)
        log_msg("info", "toxicity_off", "queries are not scored for toxicity: %s",
                rag_errmsg());
    json_t *keys = auth_list(s->auth);
    size_t nkeys = json_array_size(keys);
    json_decref(keys);
    if (nkeys == 0 && !getenv("RAGCORE_ADMIN_KEY"))
        log_msg("warn", "no_keys", "no API keys exist and RAGCORE_ADMIN_KEY is unset: every "
                "/v1 request will be refused with 401");
    log_event("info", "store_open",
              json_pack("{s:s,s:s,s:i,s:f}", "db", s->cfg.db, "embedder", rag_db_embedder(s->db),
                        "dim", s->dim, "seconds", srv_monotonic() - t0));
    return RAG_OK;
}

/* Stops accepting, waits for in-flight requests (up to drain_timeout), stops the
 * subsystems and checkpoints. Returns the process exit code. */
static int shutdown_server(srv *s, int sig)
{
    int code = 0;
    double t0 = srv_monotonic();
    atomic_store(&s->draining, 1);
    atomic_store(&s->ready, 0);
    http_quiesce(s);
    log_event("info", "draining", json_pack("{s:s,s:I}", "signal", strsignal(sig), "in_flight",
                                            (json_int_t)atomic_load(&s->inflight)));
    while (atomic_load(&s->inflight) > 0 && srv_monotonic() - t0 < s->cfg.drain_timeout)
        srv_sleep_ms(10);
    long left = atomic_load(&s->inflight);
    writer_stop(s->writer); /* finishes queued writes */
    s->writer = NULL;
    http_stop(s);
    qlog_stop(s->qlog);
    s->qlog = NULL;
    if (s->db) {
        int rc = rag_checkpoint(s->db);
        if (rc != RAG_OK) {
            log_msg("error", "checkpoint", "%s: %s", rag_strerror(rc), rag_errmsg());
            code = 1;
        }
    }
    auth_close(s->auth);
    s->auth = NULL;
    rag_toxicity_close(s->tox);
    s->tox = NULL;
    int rc = rag_close(s->db);
    s->db = NULL;
    if (rc != RAG_OK) {
        log_msg("error", "close", "%s: %s", rag_strerror(rc), rag_errmsg());
        code = 1;
    }
    log_event("info", "stopped", json_pack("{s:f,s:I,s:i}", "drain_seconds", srv_monotonic() - t0,
                                           "abandoned_requests", (json_int_t)left, "exit", code));
    return code;
}

static void reload(srv *s)
{
    char err[1024];
    if (config_reload(&s->cfg, err, sizeof err) < 0)
        log_msg("error", "reload", "configuration kept: %s", err);
    int rc = s->auth ? auth_reload(s->auth) : RAG_OK;
    if (rc != RAG_OK)
        log_msg("error", "reload", "keys kept: %s: %s", rag_strerror(rc), rag_errmsg());
    log_event("info", "reloaded",
              json_pack("{s:I,s:I}", "max_body", (json_int_t)atomic_load(&s->cfg.limits.max_body),
                        "max_k", (json_int_t)atomic_load(&s->cfg.limits.max_k)));
}

int main(int argc, char **argv)
{
    static srv s; /* static: outlives every server thread */
    char err[1024];
    int code = 0;

    if (argc > 1 && !strcmp(argv[1], "keys"))
        return keys_cli_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "cluster")) { /* cluster/: router, replica, status */
        single_threaded_openmp(argv);
#ifdef RAGCORE_HAVE_NATS
        return cluster_main(argc - 1, argv + 1);
#else
        fprintf(stderr, "ragcore-server: built without the cluster mode (libnats-dev was not "
                "found; tools/setup.sh installs it)\n");
        return 1;
#endif
    }
    config_init(&s.cfg);
    int rc = config_load(&s.cfg, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc > 0) {
            config_usage(stdout);
            return 0;
        }
        fprintf(stderr, "ragcore-server: %s\n", err);
        config_usage(stderr);
        return 1;
    }
    single_threaded_openmp(argv);
    if (check_admin_key(&s.cfg) < 0) /* after the re-execution: a warning is printed once */
        return 1;

    if (install_signals() < 0) {
        fprintf(stderr, "ragcore-server: cannot install signal handlers: %s\n", strerror(errno));
        return 1;
    }

    if (!(s.metrics = metrics_create(ROUTE_COUNT, route_names()))) {
        fprintf(stderr, "ragcore-server: out of memory\n");
        return 1;
    }
    if (http_start(&s, err, sizeof err) < 0) {
        log_msg("error", "listen", "%s", err);
        return 1;
    }
    log_event("info", "listening",
              json_pack("{s:s,s:i,s:b,s:s,s:s}", "listen", s.cfg.listen, "port", http_port(&s),
                        "tls", s.cfg.tls_cert != NULL, "version", rag_version(), "kernels",
                        rag_kernels()));
    if (s.cfg.port_file && port_file_write(s.cfg.port_file, http_port(&s)) < 0)
        log_msg("error", "port_file", "%s: %s", s.cfg.port_file, strerror(errno));

    if (open_store(&s) != RAG_OK) {
        code = 2;
        atomic_store(&s.draining, 1);
        http_stop(&s);
        writer_stop(s.writer);
        qlog_stop(s.qlog);
        auth_close(s.auth);
        rag_toxicity_close(s.tox);
        rag_close(s.db);
        goto done;
    }
    atomic_store(&s.ready, 1);

    for (;;) {
        /* poll with a timeout, not a bare blocking read: a sanitizer runtime (TSan) may
         * hold a signal's handler back until the interrupted thread calls into it again,
         * and the main thread is then the one waiting for that handler's byte. */
        struct pollfd pfd = {sig_pipe[0], POLLIN, 0};
        if (poll(&pfd, 1, 1000) <= 0)
            continue;
        unsigned char b;
        ssize_t got = read(sig_pipe[0], &b, 1);
        if (got != 1)
            continue;
        int sig = b;
        if (sig == SIGHUP) {
            reload(&s);
            continue;
        }
        code = shutdown_server(&s, sig);
        break;
    }
done:
    metrics_free(s.metrics);
    config_free(&s.cfg);
    return code;
}
