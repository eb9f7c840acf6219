/* test_damage.c - hostile stores: seeded damage to data.mdb (truncation, overwritten pages,
 * bit flips) and to index files (another collection's file, garbage), then the CLI's check,
 * check --repair, search and check --salvage run as child processes on each. Required for
 * every pattern: no program dies of a signal; check reports problems whenever a document no
 * longer reads back as stored; a repair that reports success leaves a store that checks
 * clean, otherwise it lists what it could not fix with a reason; the salvage keeps every
 * document none of whose pages (its record's and its chunks', with the branch pages above
 * them, the meta and collection records) was damaged, each exactly as stored. The same
 * patterns run on an encrypted store (the CLI given --key-file), whose salvage must keep
 * the same documents and write none of their words in clear; an encrypted store whose key
 * header's page is overwritten fails to open with a message, never an empty one.
 *
 * RAGCORE_DAMAGE_PATTERNS (default 32) sets the number of patterns, RAGCORE_DAMAGE_SEED
 * (default 1) the first seed; the summary line gives the figures bench/JOURNAL.md records.
 * For reproducing a failure by hand: RAGCORE_DAMAGE_ONLY runs one test (index-spec,
 * key-header, overlap, plain or encrypted: the plain or the encrypted store's patterns),
 * RAGCORE_DAMAGE_KIND=0..3 only the patterns of that kind (seed % 4:
 * truncation, overwritten pages, bit flips, index file), and RAGCORE_DAMAGE_KEEP=DIR copies
 * the damaged store (and what the failing command printed) to DIR/pattern-SEED-PID whenever
 * a command fails. */
#include "test.h"

#include "bytes.h"
#include "pagewalk.h"
#include "ragcore.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NCOLL 3
#define DOCS_PER_COLL 10
#define NDOCS (NCOLL * DOCS_PER_COLL)
#define MAXPAGES 64

static const char *const colls[NCOLL] = {"alpha", "beta", "gamma"};
static char cli[4096], orig[4096], work[4096], copy[4096], out[4096], logpath[4096];
static char errpath[4200];
/* The encrypted run: the store's key and a file holding it (NULL / "": a plain store). */
static const char *key_text;
static char keyfile[4200];

/* What each document must read back as, and the pages it lives on. */
typedef struct refdoc {
    int coll;
    char id[32];
    char *content;          /* title, metadata and chunk texts, joined */
    uint64_t pages[MAXPAGES];
    int npages;
} refdoc;

static refdoc docs[NDOCS];
static uint64_t essential[256];  /* meta, main table, collections table */
static int nessential;
static unsigned char *image;     /* the undamaged data.mdb */
static size_t image_len;
static const size_t PS = 4096;

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- the store ----------------------------------------------------------------------------- */

/* The words the documents are made of. */
static const char *const words[] = {"river", "mountain", "engine", "turbine", "galaxy",
                                    "harbour", "lantern", "meadow", "copper", "violin",
                                    "glacier", "orchard", "compass", "furnace", "beacon"};

static void make_store(void)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = 64;
    o.chunk_tokens = 40;
    o.chunk_overlap = 4;
    o.index_spec = "Flat";
    o.store_key = key_text;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(orig, &o, &db));
    if (!db)
        return;
    for (int i = 0; i < NDOCS; i++) {
        char id[32], title[64], text[4800], meta[3200];
        int c = i / DOCS_PER_COLL;
        snprintf(id, sizeof id, "%s-%02d", colls[c], i % DOCS_PER_COLL);
        snprintf(title, sizeof title, "Title of %s", id);
        size_t n = 0;
        for (int w = 0; w < 260 + (i % 5) * 40 && n < sizeof text - 32; w++)
            n += (size_t)snprintf(text + n, sizeof text - n, "%s%s",
                                  words[(i * 7 + w * (i % 4 + 1)) % 15], w % 12 == 11 ? ".\n\n" : " ");
        /* one document's record is larger than a page (an overflow page) */
        n = (size_t)snprintf(meta, sizeof meta, "{\"n\":%d,\"pad\":\"", i);
        for (int k = 0; i == 4 && k < 3000; k++)
            meta[n++] = (char)('a' + k % 26);
        snprintf(meta + n, sizeof meta - n, "\"}");
        rag_document d;
        rag_document_init(&d);
        d.id = id;
        d.title = title;
        d.text = text;
        d.metadata_json = meta;
        ASSERT_OK(rag_ingest(db, colls[c], &d, 1, NULL));
        docs[i].coll = c;
        snprintf(docs[i].id, sizeof docs[i].id, "%s", id);
    }
    ASSERT_OK(rag_close(db));
}

/* A document's title, metadata and chunk texts, or NULL when it cannot be read. */
static char *read_doc(rag_db *db, const char *coll, const char *id)
{
    rag_doc *d = NULL;
    if (rag_document_get(db, coll, id, &d) != RAG_OK)
        return NULL;
    const rag_doc_info *in = rag_doc_get_info(d);
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s, cap, "%s\x1f%s\x1f", in->title, in->metadata_json);
    for (size_t i = 0; i < rag_doc_chunk_count(d); i++) {
        const rag_hit *h = rag_doc_chunk(d, i);
        size_t need = n + strlen(h->text) + 2;
        if (need > cap) {
            cap = need * 2;
            s = realloc(s, cap);
        }
        n += (size_t)snprintf(s + n, cap - n, "%s\x1f", h->text);
    }
    rag_doc_free(d);
    return s;
}

static void push_page(refdoc *d, uint64_t p)
{
    for (int i = 0; i < d->npages; i++)
        if (d->pages[i] == p)
            return;
    if (d->npages < MAXPAGES)
        d->pages[d->npages++] = p;
}

static void push_entry_pages(refdoc *d, const rag_pagewalk_entry *e)
{
    push_page(d, e->leaf);
    for (int i = 0; i < e->depth; i++)
        push_page(d, e->path[i]);
    for (uint64_t i = 0; i < e->ovf_pages; i++)
        push_page(d, e->ovf_first + i);
}

static void push_essential(uint64_t p)
{
    for (int i = 0; i < nessential; i++)
        if (essential[i] == p)
            return;
    if (nessential < (int)(sizeof essential / sizeof *essential))
        essential[nessential++] = p;
}

static refdoc *doc_by_key(const void *key, size_t klen)
{
    if (klen < 5)
        return NULL;
    uint32_t coll = rag_get_be32(key);
    for (int i = 0; i < NDOCS; i++)
        if ((uint32_t)docs[i].coll + 1 == coll && strlen(docs[i].id) == klen - 4 &&
            memcmp(docs[i].id, (const char *)key + 4, klen - 4) == 0)
            return &docs[i];
    return NULL;
}

/* Chunk ids of each document (read through the library: records may be sealed). */
static uint64_t chunk_ids[NDOCS][64];
static int nchunk_ids[NDOCS];
static int overflow_docs;        /* document records on overflow pages */

static int map_entry(void *user, const rag_pagewalk_entry *e)
{
    (void)user;
    if (!strcmp(e->table, "meta") || !strcmp(e->table, "collections")) {
        push_essential(e->leaf);
        for (int i = 0; i < e->depth; i++)
            push_essential(e->path[i]);
        return 0;
    }
    if (!strcmp(e->table, "docs")) {
        refdoc *d = doc_by_key(e->key, e->klen);
        ASSERT_TRUE(d != NULL);
        if (!d)
            return 0;
        push_entry_pages(d, e);
        overflow_docs += e->ovf_pages > 0;
        return 0;
    }
    if (!strcmp(e->table, "chunks") && e->klen == 12) {
        uint32_t coll = rag_get_be32(e->key);
        uint64_t id = rag_get_be64((const unsigned char *)e->key + 4);
        for (int i = 0; i < NDOCS; i++)
            for (int j = 0; j < nchunk_ids[i]; j++)
                if ((uint32_t)docs[i].coll + 1 == coll && chunk_ids[i][j] == id)
                    push_entry_pages(&docs[i], e);
    }
    return 0;
}

/* Reads the reference contents and the page map of the undamaged store. */
static void map_store(void)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.read_only = 1;
    o.store_key = key_text;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(orig, &o, &db));
    for (int i = 0; db && i < NDOCS; i++) {
        docs[i].content = read_doc(db, colls[docs[i].coll], docs[i].id);
        ASSERT_TRUE(docs[i].content != NULL);
        rag_doc *d = NULL;
        ASSERT_OK(rag_document_get(db, colls[docs[i].coll], docs[i].id, &d));
        for (size_t j = 0; d && j < rag_doc_chunk_count(d) && j < 64; j++)
            chunk_ids[i][nchunk_ids[i]++] = rag_doc_chunk(d, j)->chunk_id;
        rag_doc_free(d);
    }
    rag_close(db);
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", orig);
    /* the documents' records first (chunk ids), then the chunks */
    ASSERT_OK(rag_pagewalk(path, "docs", 0, map_entry, NULL, NULL, NULL));
    ASSERT_OK(rag_pagewalk(path, "chunks", 0, map_entry, NULL, NULL, NULL));
    ASSERT_OK(rag_pagewalk(path, "meta", 0, map_entry, NULL, NULL, NULL));
    ASSERT_OK(rag_pagewalk(path, "collections", 0, map_entry, NULL, NULL, NULL));
    FILE *fp = fopen(path, "rb");
    struct stat sb;
    ASSERT_TRUE(fp && stat(path, &sb) == 0);
    if (!fp)
        return;
    image_len = (size_t)sb.st_size;
    image = malloc(image_len);
    ASSERT_EQ_INT(fread(image, 1, image_len, fp), image_len);
    fclose(fp);
    /* the meta pages and the main table's root (from the meta page in use) */
    push_essential(0);
    push_essential(1);
    uint64_t t0, t1, root;
    memcpy(&t0, image + 16 + 128, 8);
    memcpy(&t1, image + PS + 16 + 128, 8);
    memcpy(&root, image + (t1 > t0 ? PS : 0) + 16 + 24 + 48 + 40, 8);
    push_essential(root);
    ASSERT_EQ_INT(overflow_docs, 1);
}

/* ---- running the CLI ----------------------------------------------------------------------- */

/* Runs the CLI with `args` (NULL-terminated), stdout to logpath; returns the wait status. */
static int run(const char *const *args)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(err, 2);
        char *argv[18];
        int n = 0;
        argv[n++] = cli;
        for (; args[n - 1] && n < 15; n++)
            argv[n] = (char *)args[n - 1];
        if (key_text) {
            argv[n++] = "--key-file";
            argv[n++] = keyfile;
        }
        argv[n] = NULL;
        execv(cli, argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static json_t *log_json(void)
{
    json_error_t err;
    return json_load_file(logpath, 0, &err);
}

static void copy_dir(const char *from, const char *to)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    ASSERT_EQ_INT(system(cmd), 0);
}

static void write_image(const unsigned char *b, size_t n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", work);
    FILE *fp = fopen(path, "wb");
    ASSERT_TRUE(fp != NULL);
    if (fp) {
        ASSERT_EQ_INT(fwrite(b, 1, n, fp), n);
        fclose(fp);
    }
}

/* ---- patterns -------------------------------------------------------------------------------- */

typedef struct totals {
    int patterns, crashes, dishonest, not_converged, empty_messages, must_keep_lost;
    int kept, lost, kept_altered, undetected_meta, salvage_refused, in_clear;
    int by_kind[4];
} totals;

/* Words of the corpus and its titles that an encrypted store's files must not show. */
static const char *const clear_words[] = {"mountain", "turbine", "harbour", "lantern",
                                          "glacier", "furnace", "Title of"};

static const char *const kinds[4] = {"truncation", "overwritten pages", "bit flips", "index file"};

/* Applies pattern `seed`: writes the damaged store to `work`, marks damaged pages. */
static int apply(uint64_t seed, unsigned char *damaged, size_t npages, char *what, size_t wsz)
{
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < 8; i++)
        rnd();
    int kind = (int)(seed % 4);
    copy_dir(orig, work);
    unsigned char *b = malloc(image_len);
    memcpy(b, image, image_len);
    size_t n = image_len;
    memset(damaged, 0, npages);
    if (kind == 0) {
        size_t cut = npages * 3 / 10 + rnd() % (npages - npages * 3 / 10 - 1);
        n = cut * PS + (rnd() % 2 ? rnd() % PS : 0);
        for (size_t p = n / PS; p < npages; p++)
            damaged[p] = 1;
        snprintf(what, wsz, "truncated to %zu of %zu bytes", n, image_len);
    } else if (kind == 1) {
        int k = 1 + (int)(rnd() % 6);
        for (int i = 0; i < k; i++) {
            size_t p = 2 + rnd() % (npages - 2);
            for (size_t j = 0; j < PS; j++)
                b[p * PS + j] = (unsigned char)rnd();
            damaged[p] = 1;
        }
        snprintf(what, wsz, "%d pages overwritten with random bytes", k);
    } else if (kind == 2) {
        int k = 1 + (int)(rnd() % 40);
        for (int i = 0; i < k; i++) {
            size_t off = 2 * PS + rnd() % (image_len - 2 * PS);
            b[off] ^= (unsigned char)(1u << (rnd() % 8));
            damaged[off / PS] = 1;
        }
        snprintf(what, wsz, "%d bits flipped", k);
    } else {
        char a[4200], c[4200];
        snprintf(a, sizeof a, "%s/index/1.idx", work);
        snprintf(c, sizeof c, "%s/index/%d.idx", work, 2 + (int)(rnd() % 2));
        if (rnd() % 2) {
            char cmd[9000];
            snprintf(cmd, sizeof cmd, "cp '%s' '%s'", c, a);
            ASSERT_EQ_INT(system(cmd), 0);
            snprintf(what, wsz, "index/1.idx replaced by another collection's file");
        } else {
            FILE *fp = fopen(a, "r+b");
            ASSERT_TRUE(fp != NULL);
            long off = 256 + (long)(rnd() % 2000);
            if (fp) {
                fseek(fp, off, SEEK_SET);
                fputc((int)(rnd() & 0xff), fp);
                fclose(fp);
            }
            snprintf(what, wsz, "a byte of index/1.idx's payload changed");
        }
    }
    write_image(b, n);
    free(b);
    return kind;
}

/* Whether every document still reads back as stored (in a child: reading may fail). */
static int reads_back(int *meta_only)
{
    int fds[2];
    ASSERT_TRUE(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        rag_open_options o;
        rag_open_options_init(&o);
        o.read_only = 1;
        o.store_key = key_text;
        rag_db *db = NULL;
        char res[2] = {'0', '0'}; /* text differs / only title or metadata differ */
        if (rag_open(work, &o, &db) != RAG_OK) {
            res[0] = '1';
        } else {
            for (int i = 0; i < NDOCS; i++) {
                char *s = read_doc(db, colls[docs[i].coll], docs[i].id);
                if (!s) {
                    res[0] = '1';
                } else if (strcmp(s, docs[i].content) != 0) {
                    /* does it differ after the title and metadata? */
                    const char *a = strchr(strchr(s, '\x1f') + 1, '\x1f');
                    const char *c = strchr(strchr(docs[i].content, '\x1f') + 1, '\x1f');
                    if (a && c && strcmp(a, c) == 0)
                        res[1] = '1';
                    else
                        res[0] = '1';
                }
                free(s);
            }
            rag_close(db);
        }
        if (write(fds[1], res, 2) != 2)
            _exit(3);
        _exit(0);
    }
    close(fds[1]);
    char res[2] = {'1', '0'};
    ssize_t got = read(fds[0], res, 2);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(got == 2 && WIFEXITED(status)); /* reading a damaged store never crashes */
    *meta_only = res[0] == '0' && res[1] == '1';
    return res[0] == '0' && res[1] == '0';
}

/* The command's stderr: no line is a bare "ragcore CMD: " or ends in ": " (an error whose
 * message was lost). */
static int stderr_whole(void)
{
    FILE *fp = fopen(errpath, "r");
    char line[8192];
    int ok = 1;
    while (fp && fgets(line, sizeof line, fp)) {
        size_t n = strcspn(line, "\n");
        line[n] = '\0';
        if (n >= 2 && strcmp(line + n - 2, ": ") == 0) {
            fprintf(stderr, "error without its message: '%s'\n", line);
            ok = 0;
        }
    }
    if (fp)
        fclose(fp);
    return ok;
}

/* With RAGCORE_DAMAGE_KEEP set: keeps the damaged store of pattern `seed` (before any
 * repair) and the failing command's stderr, so the command can be run again by hand. */
static void keep_failure(uint64_t seed, const char *cmd)
{
    const char *keep = getenv("RAGCORE_DAMAGE_KEEP");
    if (!keep || !*keep)
        return;
    char dir[4400], sh[32768];
    snprintf(dir, sizeof dir, "%s/pattern-%llu-%d", keep, (unsigned long long)seed, (int)getpid());
    snprintf(sh, sizeof sh, "mkdir -p '%s' && rm -rf '%s/store' && cp -r '%s' '%s/store' && "
             "cp '%s' '%s/stderr.txt'", dir, dir, work, dir, errpath, dir);
    if (system(sh) != 0)
        fprintf(stderr, "cannot keep the damaged store in %s\n", dir);
    else
        fprintf(stderr, "pattern %llu: '%s' failed; damaged store kept in %s/store\n",
                (unsigned long long)seed, cmd, dir);
}

static int signaled(int status, const char *cmd, uint64_t seed, const char *what, totals *t)
{
    if ((WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 2) ||
        WIFSIGNALED(status))
        keep_failure(seed, cmd);
    if (!stderr_whole()) {
        TEST_FAIL_("pattern %llu (%s): '%s' printed an error without its message",
                   (unsigned long long)seed, what, cmd);
        t->empty_messages++;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 2) {
        /* 1 is a usage error, anything else a sanitizer's or an exec's failure */
        char said[2048] = "";
        FILE *fp = fopen(errpath, "r");
        size_t n = fp ? fread(said, 1, sizeof said - 1, fp) : 0;
        said[n] = '\0';
        if (fp)
            fclose(fp);
        TEST_FAIL_("pattern %llu (%s): '%s' exited with status %d; it said: %s",
                   (unsigned long long)seed, what, cmd, WEXITSTATUS(status), said);
        t->crashes++;
    }
    if (!WIFSIGNALED(status))
        return 0;
    TEST_FAIL_("pattern %llu (%s): '%s' died of signal %d", (unsigned long long)seed, what, cmd,
               WTERMSIG(status));
    t->crashes++;
    return 1;
}

/* No item's message is empty or ends in ": " (a reason left out). */
static int messages_whole(void)
{
    json_t *j = log_json();
    int ok = j != NULL;
    json_t *items = j ? json_object_get(j, "items") : NULL;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        const char *m = json_string_value(json_object_get(it, "message"));
        size_t n = m ? strlen(m) : 0;
        if (n == 0 || (n >= 2 && strcmp(m + n - 2, ": ") == 0) || strstr(m, ":  ") ||
            strstr(m, ":  (") || strstr(m, ": (")) {
            fprintf(stderr, "message without its reason: '%s'\n", m ? m : "(null)");
            ok = 0;
        }
    }
    json_decref(j);
    return ok;
}

static void run_pattern(uint64_t seed, size_t npages, totals *t)
{
    unsigned char damaged[4096];
    char what[160];
    int kind = apply(seed, damaged, npages, what, sizeof what);
    t->patterns++;
    t->by_kind[kind]++;
    int meta_only = 0;
    int intact = reads_back(&meta_only);
    /* check */
    const char *chk[] = {"check", "--db", work, "--json", NULL};
    int st = run(chk);
    if (!signaled(st, "check", seed, what, t)) {
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        ASSERT_TRUE(code == 0 || code == 2);
        if (!intact && !meta_only && code == 0) {
            TEST_FAIL_("pattern %llu (%s): documents read back altered, check found nothing",
                       (unsigned long long)seed, what);
            t->dishonest++;
        }
        if (kind == 3 && code == 0) {
            TEST_FAIL_("pattern %llu (%s): check found nothing", (unsigned long long)seed, what);
            t->dishonest++;
        }
        if (meta_only && code == 0)
            t->undetected_meta++;
        if (!messages_whole())
            t->empty_messages++;
    }
    /* search */
    const char *srch[] = {"search", "--db", work, "--collection", "alpha", "river engine",
                          "--json", NULL};
    signaled(run(srch), "search", seed, what, t);
    /* check --salvage */
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    ASSERT_EQ_INT(system(cmd), 0);
    const char *salv[] = {"check", "--db", work, "--salvage", out, "--json", NULL};
    st = run(salv);
    int salvaged = 0;
    if (!signaled(st, "check --salvage", seed, what, t)) {
        struct stat sb;
        char path[4200];
        snprintf(path, sizeof path, "%s/data.mdb", out);
        salvaged = stat(path, &sb) == 0;
        if (!salvaged)
            t->salvage_refused++;
    }
    int essential_hit = 0;
    for (int i = 0; i < nessential; i++)
        essential_hit |= essential[i] < npages && damaged[essential[i]];
    rag_db *db = NULL;
    if (salvaged) {
        rag_open_options o;
        rag_open_options_init(&o);
        o.read_only = 1;
        o.store_key = key_text;
        ASSERT_OK(rag_open(out, &o, &db));
        /* an encrypted store's salvage copies records sealed, never in clear */
        for (int w = 0; key_text && w < (int)(sizeof clear_words / sizeof *clear_words); w++)
            if (test_count_in_tree(out, clear_words[w]) != 0) {
                TEST_FAIL_("pattern %llu (%s): the salvage wrote '%s' in clear",
                           (unsigned long long)seed, what, clear_words[w]);
                t->in_clear++;
            }
    }
    for (int i = 0; i < NDOCS; i++) {
        int must = !essential_hit;
        for (int j = 0; must && j < docs[i].npages; j++)
            must = !(docs[i].pages[j] < npages && damaged[docs[i].pages[j]]);
        char *s = db ? read_doc(db, colls[docs[i].coll], docs[i].id) : NULL;
        if (s && strcmp(s, docs[i].content) == 0)
            t->kept++;
        else if (s)
            t->kept_altered++;
        else
            t->lost++;
        if (must && (!s || strcmp(s, docs[i].content) != 0)) {
            TEST_FAIL_("pattern %llu (%s): document %s lies on undamaged pages, the salvage %s "
                       "it", (unsigned long long)seed, what, docs[i].id, s ? "altered" : "lost");
            t->must_keep_lost++;
        }
        free(s);
    }
    rag_close(db);
    /* check --repair on a copy, then check again */
    copy_dir(work, copy);
    const char *rep[] = {"check", "--db", copy, "--repair", "--json", NULL};
    st = run(rep);
    if (!signaled(st, "check --repair", seed, what, t)) {
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        ASSERT_TRUE(code == 0 || code == 2);
        if (!messages_whole())
            t->empty_messages++;
        json_t *j = log_json();
        long unfixed = j ? (long)json_integer_value(json_object_get(j, "unfixed")) : -1;
        json_decref(j);
        if (code == 2 && unfixed <= 0) {
            TEST_FAIL_("pattern %llu (%s): the repair failed without listing what it could not "
                       "fix", (unsigned long long)seed, what);
            t->not_converged++;
        }
        const char *again[] = {"check", "--db", copy, "--json", NULL};
        st = run(again);
        if (!signaled(st, "check after --repair", seed, what, t) && code == 0 &&
            !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            TEST_FAIL_("pattern %llu (%s): the repair reported success, the next check did not",
                       (unsigned long long)seed, what);
            t->not_converged++;
        }
    }
}

/* The patterns on a store made with key_text (NULL: plain). */
static void hostile_stores(int patterns)
{
    const char *sd = getenv("RAGCORE_DAMAGE_SEED");
    uint64_t first = sd ? (uint64_t)atoll(sd) : 1;
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", orig);
    ASSERT_EQ_INT(system(cmd), 0);
    memset(docs, 0, sizeof docs);
    memset(nchunk_ids, 0, sizeof nchunk_ids);
    nessential = 0;
    overflow_docs = 0;
    image = NULL;
    make_store();
    /* the corpus words are in a plain store's file (so the salvage's grep can fail), in
     * no encrypted one's */
    ASSERT_EQ_INT(test_count_in_tree(orig, "turbine") > 0, !key_text);
    map_store();
    if (!image)
        return;
    size_t npages = image_len / PS;
    ASSERT_TRUE(npages > 8 && npages < 4096);
    totals t;
    memset(&t, 0, sizeof t);
    double t0 = (double)time(NULL);
    const char *ko = getenv("RAGCORE_DAMAGE_KIND");
    for (int i = 0; i < patterns; i++)
        if (!ko || !*ko || (first + (uint64_t)i) % 4 == (uint64_t)atoi(ko))
            run_pattern(first + (uint64_t)i, npages, &t);
    ASSERT_EQ_INT(t.crashes, 0);
    ASSERT_EQ_INT(t.dishonest, 0);
    ASSERT_EQ_INT(t.not_converged, 0);
    ASSERT_EQ_INT(t.empty_messages, 0);
    ASSERT_EQ_INT(t.must_keep_lost, 0);
    ASSERT_EQ_INT(t.in_clear, 0);
    fprintf(stderr,
            "damage%s: %d patterns (%d truncation, %d overwritten pages, %d bit flips, %d index "
            "file) on a %zu-page store of %d documents, seeds %llu..%llu, %.0f s: %d crashes, %d "
            "dishonest checks, %d repairs not converged, %d empty messages; salvage kept %d "
            "and lost %d document copies, kept %d altered (title or metadata only), refused %d "
            "times; %d undamaged documents lost; %d patterns altered only titles or metadata "
            "(no checksum: check cannot see it)\n",
            key_text ? " (encrypted store)" : "", t.patterns, t.by_kind[0], t.by_kind[1], t.by_kind[2], t.by_kind[3], npages, NDOCS,
            (unsigned long long)first, (unsigned long long)(first + patterns - 1),
            (double)time(NULL) - t0, t.crashes, t.dishonest, t.not_converged, t.empty_messages,
            t.kept, t.lost, t.kept_altered, t.salvage_refused, t.must_keep_lost,
            t.undetected_meta);
    (void)kinds;
    free(image);
    for (int i = 0; i < NDOCS; i++)
        free(docs[i].content);
}

static void test_hostile_stores(void)
{
    const char *np = getenv("RAGCORE_DAMAGE_PATTERNS");
    key_text = NULL;
    hostile_stores(np ? atoi(np) : 32);
}

/* The same patterns on an encrypted store: check, repair and salvage with --key-file. */
static void test_hostile_encrypted_stores(void)
{
    const char *np = getenv("RAGCORE_DAMAGE_PATTERNS");
    key_text = "9c1e5f0a7b3d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";
    snprintf(keyfile, sizeof keyfile, "%s.key", orig);
    FILE *fp = fopen(keyfile, "w");
    ASSERT_TRUE(fp != NULL);
    if (!fp)
        return;
    fprintf(fp, "%s\n", key_text);
    fclose(fp);
    unsetenv("RAGCORE_STORE_KEY");
    hostile_stores(np ? atoi(np) : 32);
    key_text = NULL;
    unlink(keyfile);
    /* without the key the salvage refuses, naming the store, and writes nothing */
    char cmd[9000], text[8192] = "";
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    ASSERT_EQ_INT(system(cmd), 0);
    const char *salv[] = {"check", "--db", orig, "--salvage", out, NULL};
    int st = run(salv);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    fp = fopen(errpath, "r");
    size_t n = fp ? fread(text, 1, sizeof text - 1, fp) : 0;
    text[n] = '\0';
    if (fp)
        fclose(fp);
    snprintf(cmd, sizeof cmd, "store '%s' is encrypted", orig);
    ASSERT_TRUE(strstr(text, cmd) != NULL);
    ASSERT_TRUE(access(out, F_OK) != 0);
}

static int meta_leaf(void *user, const rag_pagewalk_entry *e)
{
    *(uint64_t *)user = e->leaf;
    return 0;
}

/* A new store in `dir` (whatever was there removed): hash embedder, 16 dimensions, sealed
 * with `key` unless NULL. NULL when it cannot be made (the failure asserted). */
static rag_db *new_store(const char *dir, const char *key)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = 16;
    o.store_key = key;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

/* An encrypted store whose meta leaf (the key header's page) is overwritten: opening it
 * fails with a message, for every content of the damaged page (seeded patterns). */
static void test_damaged_key_header_message(void)
{
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s-keyhdr", orig);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    const char *passphrase = "a passphrase of the damaged header test";
    rag_db *db = new_store(dir, passphrase);
    ASSERT_OK(rag_close(db));
    uint64_t leaf = 0;
    ASSERT_OK(rag_pagewalk(path, "meta", 0, meta_leaf, NULL, &leaf, NULL));
    ASSERT_TRUE(leaf >= 2);
    FILE *fp = fopen(path, "r+b");
    ASSERT_TRUE(fp != NULL);
    if (!fp)
        return;
    unsigned char page[4096], orig_page[4096];
    fseek(fp, (long)(leaf * PS), SEEK_SET);
    ASSERT_EQ_INT(fread(orig_page, 1, PS, fp), PS);
    int empty = 0, failed = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
        memcpy(page, orig_page, PS);
        /* the page header kept (so LMDB reads on), its nodes overwritten */
        for (size_t j = 16 + seed % 64; j < PS; j++)
            page[j] = (unsigned char)rnd();
        fseek(fp, (long)(leaf * PS), SEEK_SET);
        ASSERT_EQ_INT(fwrite(page, 1, PS, fp), PS);
        fflush(fp);
        rag_open_options ro;
        rag_open_options_init(&ro);
        ro.read_only = 1;
        ro.store_key = passphrase;
        db = NULL;
        int rc = rag_open(dir, &ro, &db);
        rag_close(db);
        if (rc != RAG_OK) {
            failed++;
            size_t n = strlen(rag_errmsg());
            if (n == 0 || (n >= 2 && strcmp(rag_errmsg() + n - 2, ": ") == 0)) {
                fprintf(stderr, "seed %llu: rc %d without a message: '%s'\n",
                        (unsigned long long)seed, rc, rag_errmsg());
                empty++;
            }
        }
    }
    fclose(fp);
    fprintf(stderr, "damaged key header: %d of 40 opens failed, %d without a message\n", failed,
            empty);
    ASSERT_TRUE(failed > 0);
    ASSERT_EQ_INT(empty, 0);
}

/* A bad index spec: FAISS's error comes back as the library's message (FAISS itself prints
 * nothing) and the failed create leaves no directory behind. */
static void test_bad_index_spec(void)
{
    char dir[4200], file[4200];
    snprintf(dir, sizeof dir, "%s-bogus", orig);
    snprintf(file, sizeof file, "%s-doc.txt", orig);
    FILE *fp = fopen(file, "w");
    ASSERT_TRUE(fp != NULL);
    if (!fp)
        return;
    fputs("A short document.\n", fp);
    fclose(fp);
    const char *args[] = {"ingest", "--db", dir, "--embedder", "hash", "--index", "Bogus99",
                          "--quiet", file, NULL};
    int st = run(args);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    fp = fopen(errpath, "r");
    char text[8192] = "";
    size_t n = fp ? fread(text, 1, sizeof text - 1, fp) : 0;
    text[n] = '\0';
    if (fp)
        fclose(fp);
    ASSERT_TRUE(strstr(text, "index spec 'Bogus99': could not parse index string Bogus99") != NULL);
    ASSERT_TRUE(strstr(text, "Error in") == NULL);       /* FAISS's own print */
    ASSERT_TRUE(strstr(text, "index_factory.cpp") == NULL);
    struct stat sb;
    ASSERT_TRUE(stat(dir, &sb) != 0 && errno == ENOENT); /* no data.mdb, no directory */
    unlink(file);
}

/* The leaf pages of the lexical postings, with their entry counts. */
typedef struct leaf_list {
    uint64_t page[64];
    int count[64];
    int n;
} leaf_list;

static int list_leaf(void *user, const rag_pagewalk_entry *e)
{
    leaf_list *l = user;
    if ((l->n == 0 || l->page[l->n - 1] != e->leaf) && l->n < 64)
        l->page[l->n++] = e->leaf;
    l->count[l->n - 1]++;
    return 0;
}

/* The walk's damage reports: the last one kept, their number counted. */
typedef struct damage_seen {
    int n;
    char table[64], reason[256];
    uint64_t page;
} damage_seen;

static void note_damage(void *user, const char *table, uint64_t page, const char *reason)
{
    damage_seen *d = user;
    d->n++;
    d->page = page;
    snprintf(d->table, sizeof d->table, "%s", table);
    snprintf(d->reason, sizeof d->reason, "%s", reason);
}

/* A small plain store in `dir` (one collection, six documents) and its lexical postings'
 * leaf pages in *l. */
static void make_small_store(const char *dir, leaf_list *l)
{
    char path[4300];
    memset(l, 0, sizeof *l);
    rag_db *db = new_store(dir, NULL);
    if (!db)
        return;
    for (int i = 0; i < 6; i++) {
        char id[16], text[3000];
        size_t n = 0;
        for (int w = 0; w < 300; w++)
            n += (size_t)snprintf(text + n, sizeof text - n, "%s ",
                                  words[(i * 7 + w * (i % 4 + 1)) % 15]);
        snprintf(id, sizeof id, "doc-%d", i);
        rag_document d;
        rag_document_init(&d);
        d.id = id;
        d.text = text;
        ASSERT_OK(rag_ingest(db, "alpha", &d, 1, NULL));
    }
    ASSERT_OK(rag_close(db));
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    ASSERT_OK(rag_pagewalk(path, "kv:lex_postings", 0, list_leaf, NULL, l, NULL));
    ASSERT_TRUE(l->n >= 1);
}

/* Reads (write = 0) or writes page `p` of `dir`'s data.mdb; 1 when it worked. */
static int page_io(const char *dir, uint64_t p, unsigned char *pg, int write)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, write ? O_RDWR : O_RDONLY);
    ssize_t n = fd < 0 ? -1
                : write ? pwrite(fd, pg, PS, (off_t)(p * PS)) : pread(fd, pg, PS, (off_t)(p * PS));
    if (fd >= 0)
        close(fd);
    return n == (ssize_t)PS;
}

/* `dir`'s data.mdb, whole (at most 1 MiB), in buf; its length. */
static size_t read_file(const char *dir, unsigned char *buf)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(buf, 1, 1 << 20, fp) : 0;
    if (fp)
        fclose(fp);
    return n;
}

/* The store in `dir` holds one damaged page of the lexical postings, `page`, that LMDB
 * would mishandle: the walk names it with `reason`, 'check --repair' lists it and exits 2
 * (a sanitizer's report would exit 1) without writing into the file, and the salvage keeps
 * all six documents (the postings are derived data). */
static void repair_refuses(const char *dir, uint64_t page, const char *reason)
{
    char path[4300], want[300];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    damage_seen seen;
    memset(&seen, 0, sizeof seen);
    ASSERT_OK(rag_pagewalk(path, NULL, 0, NULL, note_damage, &seen, NULL));
    ASSERT_EQ_INT(seen.n, 1);
    ASSERT_STR_EQ(seen.table, "kv:lex_postings");
    ASSERT_EQ_INT(seen.page, page);
    ASSERT_TRUE(strstr(seen.reason, reason) != NULL);
    unsigned char *before = malloc(1 << 20), *after = malloc(1 << 20);
    size_t nb = before ? read_file(dir, before) : 0;
    const char *rep[] = {"check", "--db", dir, "--repair", "--json", NULL};
    int st = run(rep);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    json_t *j = log_json();
    ASSERT_TRUE(j != NULL);
    ASSERT_TRUE(json_integer_value(json_object_get(j, "unfixed")) >= 1);
    snprintf(want, sizeof want, "page damage in table 'kv:lex_postings': page %llu: ",
             (unsigned long long)page);
    int listed = 0;
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(j, "items"), i, it) {
        const char *m = json_string_value(json_object_get(it, "message"));
        listed |= m && strstr(m, want) != NULL && strstr(m, reason) != NULL;
    }
    json_decref(j);
    ASSERT_TRUE(listed);
    size_t na = after ? read_file(dir, after) : 0;
    ASSERT_TRUE(nb > 0 && nb < (1 << 20) && na == nb && memcmp(before, after, nb) == 0);
    free(before);
    free(after);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    ASSERT_EQ_INT(system(cmd), 0);
    const char *salv[] = {"check", "--db", dir, "--salvage", out, "--json", NULL};
    st = run(salv);
    ASSERT_TRUE(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2));
    rag_open_options ro;
    rag_open_options_init(&ro);
    ro.read_only = 1;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(out, &ro, &db));
    for (int k = 0; db && k < 6; k++) {
        char id[16];
        snprintf(id, sizeof id, "doc-%d", k);
        char *s = read_doc(db, "alpha", id);
        ASSERT_TRUE(s != NULL);
        free(s);
    }
    rag_close(db);
}

/* An entry of a lexical postings' leaf page whose value size is grown by 8 bytes (one
 * flipped bit), so that it overlaps the entry next to it, every offset and size still
 * within the page. LMDB sizes its moves by that size: deleting the postings (the repair's
 * lexical rebuild) made it read past its page buffer before the walk rejected entries
 * that overlap. */
static void test_overlapping_entries(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s-overlap", orig);
    leaf_list l;
    make_small_store(dir, &l);
    int k = 0;
    for (int i = 1; i < l.n; i++)
        if (l.count[i] > l.count[k])
            k = i;
    unsigned char pg[4096];
    ASSERT_TRUE(l.n >= 1 && l.count[k] >= 8 && page_io(dir, l.page[k], pg, 0));
    if (l.n < 1 || l.count[k] < 8)
        return;
    /* entry 3 lies below entry 0, and has room to grow before the page end */
    uint16_t off = rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * 3), dsize = rag_pg_u16(pg + off);
    ASSERT_TRUE(off < rag_pg_u16(pg + RAG_PG_HDRSZ) &&
                (size_t)off + 8 + rag_pg_u16(pg + off + 6) + dsize + 8 < PS);
    dsize += 8;
    memcpy(pg + off, &dsize, 2);
    ASSERT_TRUE(page_io(dir, l.page[k], pg, 1));
    repair_refuses(dir, l.page[k], "entries overlap");
}

/* The entry at the end of a lexical postings' leaf page, of an odd size (LMDB pads it to
 * even), moved up by one byte into its padding: its bytes still end within the page, but
 * LMDB moves it by its even size, one byte past the page (deleting it wrote past the page
 * buffer). Another posting's value is damaged so that the repair rebuilds the postings. */
static void test_odd_entry_offset(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s-odd", orig);
    leaf_list l;
    make_small_store(dir, &l);
    unsigned char pg[4096];
    int found = 0;
    for (int i = 0; i < l.n && !found; i++) {
        ASSERT_TRUE(page_io(dir, l.page[i], pg, 0));
        unsigned n = (rag_pg_u16(pg + RAG_PG_LOWER) - RAG_PG_HDRSZ) / 2, top = 0;
        for (unsigned e = 1; e < n; e++)
            if (rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * e) > rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * top))
                top = e;
        uint16_t off = rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * top);
        size_t size = 8 + (size_t)rag_pg_u16(pg + off + 6) + rag_pg_u16(pg + off);
        if (n < 2 || size % 2 == 0 || off + size + 1 != PS)
            continue;
        memmove(pg + off + 1, pg + off, size);
        uint16_t moved = (uint16_t)(off + 1);
        memcpy(pg + RAG_PG_HDRSZ + 2 * top, &moved, 2);
        /* another entry's value: its last byte */
        uint16_t o2 = rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * (top == 0));
        pg[o2 + 8 + rag_pg_u16(pg + o2 + 6) + rag_pg_u16(pg + o2) - 1] ^= 0x40;
        ASSERT_TRUE(page_io(dir, l.page[i], pg, 1));
        repair_refuses(dir, l.page[i], "lies at odd offset");
        found = 1;
    }
    ASSERT_TRUE(found);
}

/* Whether RAGCORE_DAMAGE_ONLY (unset: every test) selects the test named `which`. */
static int selected(const char *which)
{
    const char *only = getenv("RAGCORE_DAMAGE_ONLY");
    return !only || !*only || strcmp(only, which) == 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    snprintf(cli, sizeof cli, "%s/ragcore", dirname(self));
    if (access(cli, X_OK) != 0) {
        fprintf(stderr, "%s: no CLI at %s: skipped\n", argv[0], cli);
        return 77;
    }
    test_fresh_dir(orig, sizeof orig, "damage_orig");
    test_fresh_dir(work, sizeof work, "damage_work");
    test_fresh_dir(copy, sizeof copy, "damage_copy");
    test_fresh_dir(out, sizeof out, "damage_out");
    test_fresh_dir(logpath, sizeof logpath, "damage_log.json");
    snprintf(errpath, sizeof errpath, "%s.err", logpath);
    if (selected("index-spec"))
        RUN_TEST(test_bad_index_spec);
    if (selected("key-header"))
        RUN_TEST(test_damaged_key_header_message);
    if (selected("overlap")) {
        RUN_TEST(test_overlapping_entries);
        RUN_TEST(test_odd_entry_offset);
    }
    if (selected("plain"))
        RUN_TEST(test_hostile_stores);
    if (selected("encrypted"))
        RUN_TEST(test_hostile_encrypted_stores);
    return TEST_REPORT();
}
