/* fuzz_config.c - libFuzzer target: the configuration files, read from a file as the
 * programs read them. Byte 0 picks the parser, the rest is the file:
 *   0  the cluster config (JSON, cluster_config_load): a refusal names the file and field;
 *   1  the server config ("name = value" lines, config_load with --config): a refusal
 *      names what was wrong.
 * Nothing may crash or leak, accepted or refused. */
#include "cluster.h"
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[300];

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/ragfuzz-config.%ld", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    unsetenv("RAGCORE_CONFIG"); /* the file given is the one read */
    atexit(remove_file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (fwrite(data + 1, 1, size - 1, f) != size - 1 || fclose(f) != 0)
        abort();
    char err[1024] = "";
    if (data[0] % 2 == 0) {
        cluster_config cfg;
        if (cluster_config_load(path, &cfg, err, sizeof err) < 0) {
            if (!strstr(err, path))
                abort(); /* a refusal that does not name the file */
        } else {
            if (cfg.n_nats < 1 || cfg.n_nats > CLUSTER_MAX_URLS || !cfg.bucket ||
                !cfg.keys_bucket)
                abort();
            cluster_config_free(&cfg);
        }
    } else {
        srv_config cfg;
        config_init(&cfg);
        char *argv[] = {"ragcore-server", "--config", path, NULL};
        int rc = config_load(&cfg, 3, argv, err, sizeof err);
        if (rc < 0 && !err[0])
            abort();
        if (rc == 0 && (!cfg.db || !cfg.listen))
            abort();
        config_free(&cfg);
    }
    return 0;
}
