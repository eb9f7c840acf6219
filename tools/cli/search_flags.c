/* search_flags.c - the library's search options as command-line flags (see search_flags.h). */
#include "search_flags.h"

#include "cli.h"

#include <string.h>

static int skipped(const char *name, const char *const *skip)
{
    for (size_t i = 0; skip && skip[i]; i++)
        if (strcmp(skip[i], name) == 0)
            return 1;
    return 0;
}

/* "rrf_k" -> "rrf-k" into buf. */
static const char *flag_name(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s", name);
    for (char *p = buf; *p; p++)
        if (*p == '_')
            *p = '-';
    return buf;
}

void cli_search_flags_add(struct option *opts, size_t *n, const char *const *skip)
{
    static char names[CLI_SEARCH_FLAGS_MAX][40];
    size_t used = 0;
    for (size_t i = 0; i < rag_search_option_count(); i++) {
        const rag_option_info *in = rag_search_option_info(i);
        if (skipped(in->name, skip))
            continue;
        const char *both[2] = {in->name, in->alias};
        for (int a = 0; a < 2 && used < CLI_SEARCH_FLAGS_MAX; a++) {
            if (!both[a])
                continue;
            opts[*n].name = flag_name(both[a], names[used++], sizeof names[0]);
            opts[*n].has_arg = required_argument;
            opts[*n].flag = NULL;
            opts[*n].val = CLI_SEARCH_FLAG_BASE + (int)i;
            (*n)++;
        }
    }
    memset(&opts[*n], 0, sizeof opts[*n]);
}

int cli_search_set(const char *cmd, const char *name, const char *arg, rag_search_options *so)
{
    if (rag_search_option_set(so, name, arg) != RAG_OK) {
        char flag[64];
        cli_error(cmd, "--%s: %s", flag_name(name, flag, sizeof flag), rag_errmsg());
        return -1;
    }
    return 1;
}

int cli_search_flag(const char *cmd, int opt, const char *arg, rag_search_options *so)
{
    const rag_option_info *in = rag_search_option_info((size_t)(opt - CLI_SEARCH_FLAG_BASE));
    if (opt < CLI_SEARCH_FLAG_BASE || !in)
        return 0;
    return cli_search_set(cmd, in->name, arg, so);
}

void cli_search_flags_usage(FILE *out, const char *const *skip)
{
    for (size_t i = 0; i < rag_search_option_count(); i++) {
        const rag_option_info *in = rag_search_option_info(i);
        if (skipped(in->name, skip))
            continue;
        char flag[64], arg[64];
        flag_name(in->name, flag, sizeof flag);
        if (in->type == RAG_OPTION_CHOICE)
            snprintf(arg, sizeof arg, "%s", in->choices);
        else if (in->type == RAG_OPTION_STRING)
            snprintf(arg, sizeof arg, "TEXT");
        else if (in->type == RAG_OPTION_INT)
            snprintf(arg, sizeof arg, "%.0f..%.0f", in->min, in->max);
        else
            snprintf(arg, sizeof arg, "%g..%g", in->min, in->max);
        char left[160], right[400];
        snprintf(left, sizeof left, "--%s %s", flag, arg);
        snprintf(right, sizeof right, "%s (default %s)", in->help, in->default_text);
        if (strlen(left) > 28 || 2 + 29 + strlen(right) > 100)
            fprintf(out, "  %s\n      %s\n", left, right); /* too wide for one line */
        else
            fprintf(out, "  %-28s %s\n", left, right);
    }
}
