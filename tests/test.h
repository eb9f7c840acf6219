/* test.h - minimal assertion macros shared by the test executables. */
#ifndef RAG_TEST_H
#define RAG_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_failures_;
static int test_checks_;

#define TEST_FAIL_(...)                                                        \
    do {                                                                       \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                        \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        test_failures_++;                                                      \
    } while (0)

#define ASSERT_TRUE(c)                                                         \
    do { test_checks_++; if (!(c)) TEST_FAIL_("assertion failed: %s", #c); } while (0)

#define ASSERT_EQ_INT(a, b)                                                    \
    do { long long a_ = (long long)(a), b_ = (long long)(b); test_checks_++;   \
         if (a_ != b_) TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)

#define ASSERT_STR_EQ(a, b)                                                    \
    do { const char *a_ = (a), *b_ = (b); test_checks_++;                      \
         if (!a_ || !b_ || strcmp(a_, b_) != 0)                                \
             TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", \
                        b_ ? b_ : "(null)"); } while (0)

#define ASSERT_NEAR(a, b, eps)                                                 \
    do { double a_ = (double)(a), b_ = (double)(b); test_checks_++;            \
         if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps)))                           \
             TEST_FAIL_("%s ~= %s: %g vs %g", #a, #b, a_, b_); } while (0)

/* Asserts a ragcore call returned RAG_OK, printing rag_errmsg() otherwise. */
#define ASSERT_OK(call)                                                        \
    do { int rc_ = (call); test_checks_++;                                     \
         if (rc_ != 0) TEST_FAIL_("%s returned %d: %s", #call, rc_, rag_errmsg()); } while (0)

/* Sets buf to "$RAGCORE_TEST_TMP/name" (or /tmp/name) and removes whatever is there, so
 * each test starts from an empty directory. */
static inline void test_fresh_dir(char *buf, size_t n, const char *name)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    char cmd[4200];
    snprintf(buf, n, "%s/%s", tmp ? tmp : "/tmp", name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", buf);
    if (system(cmd) != 0)
        TEST_FAIL_("cannot clear %s", buf);
}

/* Occurrences of needle in every byte of every file under path (recursively): the check
 * that no raw value of a masked document is anywhere in a store directory. */
static inline long test_count_in_tree(const char *path, const char *needle)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    long n = 0;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char child[4400];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            n += test_count_in_tree(child, needle);
        }
        if (d)
            closedir(d);
        return n;
    }
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *buf = malloc((size_t)sb.st_size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
    fclose(f);
    size_t nl = strlen(needle);
    for (size_t i = 0; buf && i + nl <= got; i++)
        if (memcmp(buf + i, needle, nl) == 0)
            n++;
    free(buf);
    return n;
}

#define RUN_TEST(fn)                                                           \
    do { int before_ = test_failures_; fn();                                   \
         fprintf(stderr, "%s %s\n", test_failures_ == before_ ? "ok  " : "FAIL", #fn); } while (0)

#define TEST_REPORT()                                                          \
    (fprintf(stderr, "%d checks, %d failures\n", test_checks_, test_failures_), \
     test_failures_ ? 1 : 0)

#endif
