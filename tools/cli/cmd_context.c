/* cmd_context.c - `ragcore context`: prompt-ready context with numbered citations. */
#include "cli.h"
#include "search_flags.h"

#include "ragcore.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void context_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore context --db DIR [--collection NAME] --budget TOKENS\n"
            "                       [--format text|markdown|json] [--json] [--mode M]\n"
            "                       [--filter EXPR] [-k N] [--stale-after SECONDS]\n"
            "                       [--template STR] QUERY\n"
            "\n"
            "Retrieves for QUERY, merges adjacent chunks of each document into passages and\n"
            "prints a context block with numbered citations and each source's freshness that\n"
            "fits TOKENS (counted with the store's tokenizer).\n"
            "\n"
            "  --db DIR              store directory\n"
            "  --collection NAME     collection (default: default)\n"
            "  --budget TOKENS       maximum tokens of the context, 1..1000000 (required)\n"
            "  --format F            text (default), markdown or json\n"
            "  --json                print the JSON form {context, sources, tokens,\n"
            "                        no_confident_context, stale_context} whatever --format\n"
            "  -k N                  same as --k: chunks considered (default 20)\n"
            "  --stale-after SECONDS freshness objective for stale_context (default 30 days)\n"
            "  --template STR        header line of each source; placeholders {n} {title}\n"
            "                        {source} {doc_id} {date} {age} {score}\n"
            "\n"
            "\nSearch options (as `ragcore search`; -k defaults to 20 here, MMR to 0.7 and\n"
            "per_doc to 3):\n");
    cli_search_flags_usage(out, NULL);
    fprintf(out, "\nExit status: 0 success, 1 usage error, 2 store or data error.\n");
}

int cmd_context(int argc, char **argv)
{
    struct option longopts[10 + CLI_SEARCH_FLAGS_MAX + 1] = {
        {"db", required_argument, 0, 'd'},          {"collection", required_argument, 0, 'c'},
        {"budget", required_argument, 0, 'b'},      {"format", required_argument, 0, 'f'},
        {"json", no_argument, 0, 'j'},              {"stale-after", required_argument, 0, 's'},
        {"template", required_argument, 0, 't'},    {"help", no_argument, 0, 'h'}};
    size_t nopts = 8;
    cli_search_flags_add(longopts, &nopts, NULL);
    const char *dbdir = NULL;
    int json = 0, have_budget = 0, opt;
    long long v;
    rag_context_options co;
    rag_context_options_init(&co);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:b:f:jk:s:t:h", longopts, NULL)) != -1) {
        int r = opt == 'k' ? cli_search_set("context", "k", optarg, &co.search)
                           : cli_search_flag("context", opt, optarg, &co.search);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'c': co.search.collection = optarg; break;
        case 'b':
            if (cli_parse_int(optarg, 1, 1000000, &v) != 0) {
                cli_error("context", "--budget must be an integer in 1..1000000, got '%s'", optarg);
                return CLI_USAGE;
            }
            co.budget_tokens = (int)v;
            have_budget = 1;
            break;
        case 'f':
            if (!strcmp(optarg, "text")) {
                co.format = RAG_CONTEXT_TEXT;
            } else if (!strcmp(optarg, "markdown") || !strcmp(optarg, "md")) {
                co.format = RAG_CONTEXT_MARKDOWN;
            } else if (!strcmp(optarg, "json")) {
                co.format = RAG_CONTEXT_JSON;
            } else {
                cli_error("context", "--format must be text, markdown or json, got '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case 'j': json = 1; break;
        case 's':
            if (cli_parse_int(optarg, 1, (long long)1 << 40, &v) != 0) {
                cli_error("context", "--stale-after must be a positive number of seconds, got '%s'",
                          optarg);
                return CLI_USAGE;
            }
            co.stale_after = v;
            break;
        case 't': co.source_template = optarg; break;
        case 'h': context_usage(stdout); return CLI_OK;
        default: context_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir || !have_budget || optind != argc - 1) {
        cli_error("context", "%s",
                  !dbdir ? "--db DIR is required"
                  : !have_budget ? "--budget TOKENS is required"
                                 : "exactly one QUERY is required");
        context_usage(stderr);
        return CLI_USAGE;
    }
    rag_db *db = cli_open("context", dbdir, 1);
    if (!db)
        return CLI_DATA;
    int rc;
    rag_prompt_context *ctx = NULL;
    rc = rag_context(db, argv[optind], &co, &ctx);
    if (rc != RAG_OK) {
        cli_error("context", "%s", rag_errmsg());
        rag_close(db);
        return rc == RAG_EINVAL || rc == RAG_EPARSE ? CLI_USAGE : CLI_DATA;
    }
    const char *out = json ? rag_context_json(ctx) : rag_context_text(ctx);
    fputs(out, stdout);
    if (*out)
        fputc('\n', stdout);
    if (ferror(stdout)) {
        cli_error("context", "cannot write the output");
        rc = RAG_EIO;
    }
    rag_context_free(ctx);
    rag_close(db);
    return rc == RAG_OK ? CLI_OK : CLI_DATA;
}
