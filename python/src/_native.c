/* _native.c - the CPython extension module ragcore._native: a thin layer over include/ragcore.h
 * that the pure-Python package (python/ragcore/) wraps into its user-facing API.
 *
 * Built against the stable ABI (Py_LIMITED_API 3.9), so one wheel serves every CPython >= 3.9.
 * The limited API of 3.9 has no buffer protocol: vectors cross the boundary as the address of
 * a caller-owned float32 buffer (numpy's __array_interface__ or array.array's buffer_info),
 * which the Python layer keeps alive for the call - no copy either way. Every call that can
 * take time (open, ingest, sync, search, context, embed, check, backup) releases the GIL.
 * A store handle is a capsule around a `handle` whose users are counted, so that close()
 * waits for calls still running in other threads instead of freeing the store under them. */
#define Py_LIMITED_API 0x03090000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ragcore.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------ */
/* Errors: the package registers one exception class per status code (set_errors).       */

static PyObject *g_errors;      /* dict: int code -> exception class */
static PyObject *g_base_error;  /* fallback class (ragcore.Error) */

/* Raises the exception class of `rc` with rag_errmsg() (or the status text) as message and
 * the code as second argument. Returns NULL for `return raise_rc(rc);`. */
static PyObject *raise_rc_msg(int rc, const char *msg)
{
    PyObject *cls = NULL;
    if (g_errors) {
        PyObject *key = PyLong_FromLong(rc);
        if (key) {
            cls = PyDict_GetItem(g_errors, key);   /* borrowed */
            Py_DECREF(key);
        }
    }
    if (!cls)
        cls = g_base_error ? g_base_error : PyExc_RuntimeError;
    const char *text = msg && *msg ? msg : rag_strerror(rc);
    PyObject *args = Py_BuildValue("(si)", text, rc);
    if (args) {
        PyErr_SetObject(cls, args);
        Py_DECREF(args);
    }
    return NULL;
}

/* The UTF-8 form of str `s`, cached in the object (valid while it lives), or NULL with an
 * exception set (PyUnicode_AsUTF8AndSize joined the limited API only in 3.10). */
static const char *utf8_of(PyObject *s)
{
    const char *p = NULL;
    return PyArg_Parse(s, "s", &p) ? p : NULL;
}

static PyObject *raise_rc(int rc)
{
    return raise_rc_msg(rc, rag_errmsg());
}

static PyObject *py_set_errors(PyObject *self, PyObject *args)
{
    PyObject *d, *base;
    if (!PyArg_ParseTuple(args, "OO", &d, &base))
        return NULL;
    Py_XINCREF(d);
    Py_XINCREF(base);
    Py_XDECREF(g_errors);
    Py_XDECREF(g_base_error);
    g_errors = d;
    g_base_error = base;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------ */
/* Python callbacks called by the library (embedder, progress, events).                   */

/* A Python callable as an embedder: fn(list[str], is_query: bool) -> bytes of n*dim float32
 * (the Python layer converts whatever the user's function returns). A Python exception is
 * kept in `pending` (under the GIL) and reported with the failing call's error. */
typedef struct py_embedder {
    PyObject *fn;
    int dim;
    char *name;
    PyObject *pending;   /* str: repr of the last exception the callable raised, or NULL */
} py_embedder;

static void keep_pending_exception(PyObject **slot)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *r = value ? PyObject_Repr(value) : NULL;
    PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (r) {
        Py_XDECREF(*slot);
        *slot = r;
    }
}

static int py_embed_cb(void *user, const char *const *texts, const size_t *lens, size_t n,
                       int is_query, float *out)
{
    py_embedder *pe = user;
    int rc = -1;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *list = PyList_New((Py_ssize_t)n), *res = NULL;
    if (!list)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        PyObject *s = PyUnicode_DecodeUTF8(texts[i], (Py_ssize_t)lens[i], "replace");
        if (!s)
            goto cleanup;
        PyList_SetItem(list, (Py_ssize_t)i, s);
    }
    res = PyObject_CallFunction(pe->fn, "OO", list, is_query ? Py_True : Py_False);
    if (!res)
        goto cleanup;
    if (!PyBytes_Check(res) || (size_t)PyBytes_Size(res) != n * (size_t)pe->dim * sizeof(float)) {
        PyErr_Format(PyExc_ValueError, "embedder returned %zd bytes for %zu texts of dimension %d",
                     PyBytes_Check(res) ? PyBytes_Size(res) : (Py_ssize_t)-1, n, pe->dim);
        goto cleanup;
    }
    memcpy(out, PyBytes_AsString(res), n * (size_t)pe->dim * sizeof(float));
    rc = 0;
cleanup:
    if (rc != 0)
        keep_pending_exception(&pe->pending);
    Py_XDECREF(res);
    Py_XDECREF(list);
    PyGILState_Release(g);
    return rc;
}

/* Frees a Python embedder; the GIL must be held. The handle owns it (the library's destroy
 * hook is not used: whether a failed rag_open calls it depends on where the open failed). */
static void py_embedder_free(py_embedder *pe)
{
    if (!pe)
        return;
    Py_XDECREF(pe->fn);
    Py_XDECREF(pe->pending);
    free(pe->name);
    free(pe);
}

/* Progress and event callbacks of one ingest or sync call. The first exception a callback
 * raises stops the call (the library returns RAG_ECANCELED) and is re-raised afterwards. */
typedef struct call_cbs {
    PyObject *progress;   /* callable(dict) or None */
    PyObject *event;      /* callable(tuple) or None */
    PyObject *exc_type, *exc_value, *exc_tb;
} call_cbs;

static int cb_failed(call_cbs *c)
{
    if (!c->exc_type)
        PyErr_Fetch(&c->exc_type, &c->exc_value, &c->exc_tb);
    else
        PyErr_Clear();
    return 1;
}

/* Also installed without a Python progress callback: a pending signal (Ctrl-C in the main
 * thread) stops the ingest, as the interrupt of a Python loop would. */
static int progress_cb(void *user, const rag_ingest_progress *p)
{
    call_cbs *c = user;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = 0;
    if (PyErr_CheckSignals() < 0) {
        stop = cb_failed(c);
        PyGILState_Release(g);
        return stop;
    }
    if (!c->progress) {
        PyGILState_Release(g);
        return 0;
    }
    PyObject *r = PyObject_CallFunction(c->progress, "(KKKKd)",
                                        (unsigned long long)p->bytes_done,
                                        (unsigned long long)p->bytes_total,
                                        (unsigned long long)p->documents,
                                        (unsigned long long)p->chunks, p->seconds);
    if (!r)
        stop = cb_failed(c);
    else if (PyObject_IsTrue(r) == 1 && r != Py_None)
        stop = 1;   /* a callback returning True asks to stop */
    Py_XDECREF(r);
    PyGILState_Release(g);
    return stop;
}

static int event_cb(void *user, const rag_ingest_event *ev)
{
    call_cbs *c = user;
    if (!c->event)
        return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = 0;
    PyObject *r = PyObject_CallFunction(
        c->event, "(ssssssdiin)", rag_ingest_action_name(ev->action), ev->id, ev->path,
        ev->reason, ev->canonical_id, ev->duplicate_kind, ev->similarity, ev->status,
        ev->action == RAG_INGEST_SKIPPED || ev->action == RAG_INGEST_KEPT ? (int)ev->skip_kind : -1,
        (Py_ssize_t)ev->pii_found);
    if (!r)
        stop = cb_failed(c);
    Py_XDECREF(r);
    PyGILState_Release(g);
    return stop;
}

/* After a call: re-raises a callback's exception (returns 1), else 0. */
static int cbs_reraise(call_cbs *c)
{
    if (!c->exc_type)
        return 0;
    PyErr_Restore(c->exc_type, c->exc_value, c->exc_tb);
    c->exc_type = c->exc_value = c->exc_tb = NULL;
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* Store handles.                                                                         */

typedef struct handle {
    rag_db *db;
    py_embedder *pe;          /* the Python embedder, or NULL; owned by the handle */
    pthread_mutex_t mu;
    pthread_cond_t idle;
    int users;                /* calls in flight */
    int closed;
} handle;

#define CAPSULE_NAME "ragcore.db"

/* Frees a handle whose store is closed (or never opened); the GIL must be held. */
static void handle_destroy(handle *h)
{
    if (!h)
        return;
    py_embedder_free(h->pe);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->idle);
    free(h);
}

static void capsule_destructor(PyObject *cap)
{
    handle *h = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (!h)
        return;
    if (!h->closed) {
        Py_BEGIN_ALLOW_THREADS
        rag_close(h->db);
        Py_END_ALLOW_THREADS
    }
    handle_destroy(h);
}

/* Takes a use of the capsule's store (raises ValueError when closed). */
static rag_db *acquire(PyObject *cap, handle **hout)
{
    handle *h = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (!h)
        return NULL;
    pthread_mutex_lock(&h->mu);
    int closed = h->closed;
    if (!closed)
        h->users++;
    pthread_mutex_unlock(&h->mu);
    if (closed) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed ragcore store");
        return NULL;
    }
    *hout = h;
    return h->db;
}

static void release(handle *h)
{
    pthread_mutex_lock(&h->mu);
    if (--h->users == 0)
        pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->mu);
}

/* Raises the error of `rc`, naming a Python embedder's exception when it raised one. */
static PyObject *raise_db_rc(handle *h, int rc)
{
    if (h && h->pe && h->pe->pending && rc == RAG_EEMBED) {
        PyObject *msg = PyUnicode_FromFormat("%s (Python embedder raised %U)", rag_errmsg(),
                                             h->pe->pending);
        Py_CLEAR(h->pe->pending);
        if (!msg)
            return NULL;
        const char *s = utf8_of(msg);
        raise_rc_msg(rc, s);
        Py_DECREF(msg);
        return NULL;
    }
    return raise_rc(rc);
}

/* One library call on a store: `fn(db, a, b)` with the GIL released between taking and
 * giving back a use of the handle. Returns the status; -1000 with an exception set when the
 * handle is closed. */
typedef int (*db_fn)(rag_db *db, const void *a, void *b);

static int call_released(PyObject *cap, db_fn fn, const void *a, void *b)
{
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return -1000;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fn(db, a, b);
    Py_END_ALLOW_THREADS
    release(h);
    return rc;
}

/* The result of call_released as None or the status's exception. */
static PyObject *none_or_raise(int rc)
{
    if (rc == -1000)
        return NULL;
    if (rc != RAG_OK)
        return raise_rc(rc);
    Py_RETURN_NONE;
}

/* open(path, embedder, dim, index_spec, chunk_tokens, chunk_overlap, read_only, language,
 *      hnsw_ef_search, custom, key) -> capsule. custom is None or (name, dim, callable): a
 * Python embedder called as callable(texts, is_query) -> bytes of float32. key: the store's
 * encryption key or None. */
static PyObject *py_open(PyObject *self, PyObject *args)
{
    const char *path, *embedder = NULL, *index_spec = NULL, *language = NULL, *key = NULL;
    int dim = 0, chunk_tokens = 0, chunk_overlap = 0, read_only = 0, ef_search = 0;
    PyObject *custom = Py_None;
    if (!PyArg_ParseTuple(args, "s|ziziipziOz", &path, &embedder, &dim, &index_spec,
                          &chunk_tokens, &chunk_overlap, &read_only, &language, &ef_search,
                          &custom, &key))
        return NULL;
    handle *h = calloc(1, sizeof *h);
    if (!h)
        return PyErr_NoMemory();
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->idle, NULL);
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = embedder;
    o.dim = dim;
    o.index_spec = index_spec;
    o.chunk_tokens = chunk_tokens;
    o.chunk_overlap = chunk_overlap;
    o.read_only = read_only;
    o.language = language;
    o.hnsw_ef_search = ef_search;
    o.store_key = key;
    rag_embedder_def def;
    memset(&def, 0, sizeof def);
    if (custom != Py_None) {
        const char *cname;
        int cdim;
        PyObject *fn;
        if (!PyArg_ParseTuple(custom, "siO", &cname, &cdim, &fn)) {
            handle_destroy(h);
            return NULL;
        }
        h->pe = calloc(1, sizeof *h->pe);
        if (!h->pe || !(h->pe->name = strdup(cname))) {
            free(h->pe);
            handle_destroy(h);
            return PyErr_NoMemory();
        }
        Py_INCREF(fn);
        h->pe->fn = fn;
        h->pe->dim = cdim;
        def.version = RAG_EMBEDDER_DEF_VERSION;
        def.name = h->pe->name;
        def.dim = cdim;
        def.embed = py_embed_cb;
        def.user = h->pe;
        o.custom_embedder = &def;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rag_open(path, &o, &h->db);
    Py_END_ALLOW_THREADS
    if (rc != RAG_OK) {
        raise_db_rc(h, rc);
        handle_destroy(h);
        return NULL;
    }
    PyObject *cap = PyCapsule_New(h, CAPSULE_NAME, capsule_destructor);
    if (!cap) {
        rag_close(h->db);
        handle_destroy(h);
    }
    return cap;
}

/* close(h): waits for calls in flight, then closes the store. A second close is a no-op. */
static PyObject *py_close(PyObject *self, PyObject *cap)
{
    handle *h = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (!h)
        return NULL;
    int rc = RAG_OK, was_closed;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&h->mu);
    was_closed = h->closed;
    h->closed = 1;
    while (h->users > 0)
        pthread_cond_wait(&h->idle, &h->mu);
    pthread_mutex_unlock(&h->mu);
    if (!was_closed)
        rc = rag_close(h->db);
    Py_END_ALLOW_THREADS
    h->db = NULL;
    if (rc != RAG_OK)
        return raise_rc(rc);
    Py_RETURN_NONE;
}

/* info(h) -> (embedder, dim, index_spec) */
static PyObject *py_info(PyObject *self, PyObject *cap)
{
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return NULL;
    PyObject *r = Py_BuildValue("(sis)", rag_db_embedder(db), rag_db_dim(db),
                                rag_db_index_spec(db));
    release(h);
    return r;
}

/* ------------------------------------------------------------------------------------ */
/* Small helpers: Python string sequences to C arrays.                                    */

/* A borrowed array of the UTF-8 forms of a sequence of str (valid while `seq` lives).
 * Returns NULL with an exception set. *n receives the count. Free the array with free(). */
static const char **str_array(PyObject *seq, size_t *n, const char *what)
{
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast)
        return NULL;
    Py_ssize_t len = PySequence_Size(fast);
    const char **arr = calloc((size_t)len + 1, sizeof *arr);
    if (!arr) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *it = PySequence_GetItem(fast, i);   /* new reference */
        if (!it || !PyUnicode_Check(it)) {
            Py_XDECREF(it);
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "%s: item %zd is not a str", what, i);
            free(arr);
            Py_DECREF(fast);
            return NULL;
        }
        arr[i] = utf8_of(it);   /* cached in the str object */
        Py_DECREF(it);                                 /* still referenced by the sequence */
        if (!arr[i]) {
            free(arr);
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);
    *n = (size_t)len;
    return arr;
}

/* Sets each (name, value) pair of `pairs` (a sequence of 2-tuples of str) with
 * rag_search_option_set. The strings are borrowed from `pairs`. Returns 0 or -1 (raised). */
static int set_search_options(rag_search_options *so, PyObject *pairs)
{
    if (pairs == Py_None)
        return 0;
    PyObject *fast = PySequence_Fast(pairs, "options");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Size(fast);
    int ret = 0;
    for (Py_ssize_t i = 0; i < n && ret == 0; i++) {
        PyObject *it = PySequence_GetItem(fast, i);
        const char *name, *value;
        if (!it || !PyArg_ParseTuple(it, "ss", &name, &value)) {
            ret = -1;
        } else {
            int rc = rag_search_option_set(so, name, value);
            if (rc != RAG_OK) {
                raise_rc(rc);
                ret = -1;
            }
        }
        Py_XDECREF(it);
    }
    Py_DECREF(fast);
    return ret;
}

/* A hit as a tuple (the order ragcore/_types.py's Hit reads). */
static PyObject *hit_tuple(const rag_hit *x)
{
    return Py_BuildValue("(KfsNssssKKiLLLLffii)", (unsigned long long)x->chunk_id, x->score,
                         x->doc_id,
                         PyUnicode_DecodeUTF8(x->text, (Py_ssize_t)x->text_len, "replace"),
                         x->title, x->source, x->heading_path, x->metadata_json,
                         (unsigned long long)x->start, (unsigned long long)x->end,
                         x->token_count, (long long)x->source_mtime, (long long)x->ingested_at,
                         (long long)x->updated_at, (long long)x->valid_until, x->dense_score,
                         x->lexical_score, x->dense_rank, x->lexical_rank);
}

/* ------------------------------------------------------------------------------------ */
/* Search and context.                                                                    */

/* search(h, query_or_None, vec_addr, vec_dim, collection, options, doc_ids)
 *   -> (no_confident_context, [hit tuple, ...]) */
static PyObject *py_search(PyObject *self, PyObject *args)
{
    PyObject *cap, *options = Py_None, *doc_ids = Py_None;
    const char *query = NULL, *collection = NULL;
    unsigned long long addr = 0;
    int dim = 0;
    if (!PyArg_ParseTuple(args, "OzKizOO", &cap, &query, &addr, &dim, &collection, &options,
                          &doc_ids))
        return NULL;
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = collection;
    const char **ids = NULL;
    if (set_search_options(&so, options) != 0)
        return NULL;
    if (doc_ids != Py_None) {
        if (!(ids = str_array(doc_ids, &so.n_doc_ids, "doc_ids")))
            return NULL;
        so.doc_ids = ids;
    }
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db) {
        free(ids);
        return NULL;
    }
    rag_results *res = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    if (query)
        rc = rag_search(db, query, &so, &res);
    else
        rc = rag_search_vector(db, (const float *)(uintptr_t)addr, dim, &so, &res);
    Py_END_ALLOW_THREADS
    free(ids);
    PyObject *out = NULL, *list = NULL;
    if (rc != RAG_OK) {
        raise_db_rc(h, rc);
        goto cleanup;
    }
    size_t n = rag_results_count(res);
    if (!(list = PyList_New((Py_ssize_t)n)))
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        PyObject *t = hit_tuple(rag_results_get(res, i));
        if (!t)
            goto cleanup;
        PyList_SetItem(list, (Py_ssize_t)i, t);
    }
    out = Py_BuildValue("(OO)", rag_results_no_confident_context(res) ? Py_True : Py_False, list);
cleanup:
    Py_XDECREF(list);
    rag_results_free(res);
    release(h);
    return out;
}

/* context(h, question, collection, options, budget, format, stale_after, source_template)
 *   -> (text, json, tokens, no_confident, stale) */
static PyObject *py_context(PyObject *self, PyObject *args)
{
    PyObject *cap, *options = Py_None;
    const char *q, *collection = NULL, *tmpl = NULL;
    int budget = 0, format = 0;
    long long stale_after = 0;
    if (!PyArg_ParseTuple(args, "OszOiiLz", &cap, &q, &collection, &options, &budget, &format,
                          &stale_after, &tmpl))
        return NULL;
    rag_context_options co;
    rag_context_options_init(&co);
    co.search.collection = collection;
    co.budget_tokens = budget;
    co.format = (rag_context_format)format;
    co.stale_after = stale_after;
    co.source_template = tmpl;
    if (set_search_options(&co.search, options) != 0)
        return NULL;
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return NULL;
    rag_prompt_context *ctx = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rag_context(db, q, &co, &ctx);
    Py_END_ALLOW_THREADS
    PyObject *out = NULL;
    if (rc != RAG_OK)
        raise_db_rc(h, rc);
    else
        out = Py_BuildValue("(ssiOO)", rag_context_text(ctx), rag_context_json(ctx),
                            rag_context_tokens(ctx),
                            rag_context_no_confident(ctx) ? Py_True : Py_False,
                            rag_context_stale(ctx) ? Py_True : Py_False);
    rag_context_free(ctx);
    release(h);
    return out;
}

/* ------------------------------------------------------------------------------------ */
/* Ingest and sync.                                                                       */

static PyObject *summary_dict(const rag_ingest_summary *s)
{
    PyObject *skipped = PyDict_New(), *pii = PyDict_New();
    if (!skipped || !pii)
        goto fail;
    for (int k = 0; k < RAG_SKIP_NKINDS; k++) {
        if (!s->skipped_reasons[k])
            continue;
        PyObject *v = PyLong_FromUnsignedLongLong(s->skipped_reasons[k]);
        if (!v || PyDict_SetItemString(skipped, rag_skip_kind_name(k), v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
    }
    for (int k = 0; k < RAG_PII_NTYPES; k++) {
        if (!s->pii_found[k])
            continue;
        PyObject *v = PyLong_FromUnsignedLongLong(s->pii_found[k]);
        if (!v || PyDict_SetItemString(pii, rag_pii_type_name(k), v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
    }
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsNsKsKsKsKsKsNsKsKsKsKsKsd}", "seen", (unsigned long long)s->seen,
        "documents", (unsigned long long)s->documents, "replaced", (unsigned long long)s->replaced,
        "chunks", (unsigned long long)s->chunks, "duplicate_chunks",
        (unsigned long long)s->duplicate_chunks, "bytes", (unsigned long long)s->bytes,
        "unchanged", (unsigned long long)s->unchanged, "deleted", (unsigned long long)s->deleted,
        "kept", (unsigned long long)s->kept, "skipped", (unsigned long long)s->skipped,
        "skipped_reasons", skipped, "failed", (unsigned long long)s->failed, "filtered",
        (unsigned long long)s->filtered, "pii_documents", (unsigned long long)s->pii_documents,
        "pii_dropped", (unsigned long long)s->pii_dropped, "stale_removed",
        (unsigned long long)s->stale_removed, "pii_found", pii, "dup_exact",
        (unsigned long long)s->dup_exact, "dup_near", (unsigned long long)s->dup_near,
        "dup_skipped", (unsigned long long)s->dup_skipped, "dup_flagged",
        (unsigned long long)s->dup_flagged, "boilerplate_lines",
        (unsigned long long)s->boilerplate_lines, "seconds", s->seconds);
fail:
    Py_XDECREF(skipped);
    Py_XDECREF(pii);
    return NULL;
}

/* One document as the Python layer hands it over:
 * (id, text, title, source, metadata_json, source_mtime, format, valid_until, ttl_seconds). */
static int doc_from_tuple(PyObject *t, rag_document *d)
{
    const char *title = NULL, *source = NULL, *meta = NULL;
    long long mtime = 0, valid_until = 0, ttl = 0;
    int format = 0;
    Py_ssize_t tlen = 0;
    rag_document_init(d);
    if (!PyArg_ParseTuple(t, "ss#zzzLiLL", &d->id, &d->text, &tlen, &title, &source, &meta,
                          &mtime, &format, &valid_until, &ttl))
        return -1;
    d->text_len = (size_t)tlen;
    d->title = title;
    d->source = source;
    d->metadata_json = meta;
    d->source_mtime = mtime;
    d->format = (rag_format)format;
    d->valid_until = valid_until;
    d->ttl_seconds = ttl;
    return 0;
}

/* Common options of ingest_documents / ingest_paths / sync_paths. */
typedef struct ingest_args {
    PyObject *cap;
    const char *collection, *metadata;
    PyObject *include, *exclude;
    int strip_boilerplate, dry_run, allow_empty;
    call_cbs cbs;
    const char **inc, **exc;
} ingest_args;

static int fill_ingest_options(ingest_args *a, rag_ingest_options *o)
{
    rag_ingest_options_init(o);
    o->collection = a->collection;
    o->metadata_json = a->metadata;
    o->strip_boilerplate = a->strip_boilerplate;
    o->dry_run = a->dry_run;
    o->allow_empty = a->allow_empty;
    o->on_progress = progress_cb;
    o->on_event = a->cbs.event ? event_cb : NULL;
    o->user = &a->cbs;
    if (a->include != Py_None) {
        if (!(a->inc = str_array(a->include, &o->n_include, "include")))
            return -1;
        o->include = a->inc;
    }
    if (a->exclude != Py_None) {
        if (!(a->exc = str_array(a->exclude, &o->n_exclude, "exclude")))
            return -1;
        o->exclude = a->exc;
    }
    return 0;
}

enum ingest_kind { K_DOCS, K_PATHS, K_SYNC };

/* The three ingest entry points share argument handling:
 * (h, items, collection, metadata_json, include, exclude, strip_boilerplate, dry_run,
 *  allow_empty, progress, event) -> summary dict. items: document tuples or paths. */
static PyObject *ingest_common(PyObject *args, enum ingest_kind kind)
{
    ingest_args a;
    memset(&a, 0, sizeof a);
    PyObject *items, *progress, *event;
    if (!PyArg_ParseTuple(args, "OOzzOOpppOO", &a.cap, &items, &a.collection, &a.metadata,
                          &a.include, &a.exclude, &a.strip_boilerplate, &a.dry_run,
                          &a.allow_empty, &progress, &event))
        return NULL;
    a.cbs.progress = progress == Py_None ? NULL : progress;
    a.cbs.event = event == Py_None ? NULL : event;
    rag_ingest_options o;
    rag_document *docs = NULL;
    const char **paths = NULL;
    size_t n = 0;
    PyObject *fast = NULL, *out = NULL;
    handle *h = NULL;
    if (fill_ingest_options(&a, &o) != 0)
        goto cleanup;
    if (kind == K_DOCS) {
        if (!(fast = PySequence_Fast(items, "documents")))
            goto cleanup;
        n = (size_t)PySequence_Size(fast);
        if (!(docs = calloc(n + 1, sizeof *docs))) {
            PyErr_NoMemory();
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++) {
            PyObject *t = PySequence_GetItem(fast, (Py_ssize_t)i);
            int bad = !t || doc_from_tuple(t, &docs[i]) != 0;
            Py_XDECREF(t);   /* the strings stay referenced by the list */
            if (bad)
                goto cleanup;
        }
    } else if (!(paths = str_array(items, &n, "paths"))) {
        goto cleanup;
    }
    rag_db *db = NULL;
    if (!(kind == K_PATHS && a.dry_run && a.cap == Py_None)) {
        if (!(db = acquire(a.cap, &h)))
            goto cleanup;
    }
    rag_ingest_summary s;
    rag_ingest_summary_init(&s);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    if (kind == K_DOCS)
        rc = rag_ingest_documents(db, docs, n, &o, &s);
    else if (kind == K_PATHS)
        rc = rag_ingest_paths(db, paths, n, &o, &s);
    else
        rc = rag_sync_paths(db, paths, n, &o, &s);
    Py_END_ALLOW_THREADS
    if (cbs_reraise(&a.cbs))
        goto cleanup;
    if (rc != RAG_OK && rc != RAG_ECANCELED) {
        raise_db_rc(h, rc);
        goto cleanup;
    }
    out = summary_dict(&s);
    if (out && rc == RAG_ECANCELED) {
        PyObject *t = Py_True;
        PyDict_SetItemString(out, "cancelled", t);
    }
cleanup:
    if (h)
        release(h);
    Py_XDECREF(fast);
    free(docs);
    free(paths);
    free(a.inc);
    free(a.exc);
    return out;
}

static PyObject *py_ingest_documents(PyObject *self, PyObject *args)
{
    return ingest_common(args, K_DOCS);
}

static PyObject *py_ingest_paths(PyObject *self, PyObject *args)
{
    return ingest_common(args, K_PATHS);
}

static PyObject *py_sync_paths(PyObject *self, PyObject *args)
{
    return ingest_common(args, K_SYNC);
}

/* ------------------------------------------------------------------------------------ */
/* Documents, collections, maintenance.                                                   */

static PyObject *doc_info_tuple(const rag_doc_info *d)
{
    return Py_BuildValue("(ssssLLLLKIOK)", d->id, d->source, d->title, d->metadata_json,
                         (long long)d->source_mtime, (long long)d->ingested_at,
                         (long long)d->updated_at, (long long)d->valid_until,
                         (unsigned long long)d->text_bytes, (unsigned int)d->chunks,
                         d->expired ? Py_True : Py_False, (unsigned long long)d->content_hash);
}

/* get(h, collection, id) -> (info tuple, [hit tuple of each chunk in text order]) */
static PyObject *py_get(PyObject *self, PyObject *args)
{
    PyObject *cap;
    const char *coll, *id;
    if (!PyArg_ParseTuple(args, "Ozs", &cap, &coll, &id))
        return NULL;
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return NULL;
    rag_doc *doc = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rag_document_get(db, coll, id, &doc);
    Py_END_ALLOW_THREADS
    PyObject *out = NULL, *chunks = NULL, *info = NULL;
    if (rc != RAG_OK) {
        raise_rc(rc);
        goto cleanup;
    }
    size_t n = rag_doc_chunk_count(doc);
    if (!(chunks = PyList_New((Py_ssize_t)n)))
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        PyObject *t = hit_tuple(rag_doc_chunk(doc, i));
        if (!t)
            goto cleanup;
        PyList_SetItem(chunks, (Py_ssize_t)i, t);
    }
    if (!(info = doc_info_tuple(rag_doc_get_info(doc))))
        goto cleanup;
    out = Py_BuildValue("(OO)", info, chunks);
cleanup:
    Py_XDECREF(info);
    Py_XDECREF(chunks);
    rag_doc_free(doc);
    release(h);
    return out;
}

/* list(h, collection, filter, after, limit, include_expired) -> ([info tuple], next or None) */
static PyObject *py_list(PyObject *self, PyObject *args)
{
    PyObject *cap;
    rag_list_options lo;
    rag_list_options_init(&lo);
    Py_ssize_t limit = 0;
    if (!PyArg_ParseTuple(args, "Ozzznp", &cap, &lo.collection, &lo.filter, &lo.after, &limit,
                          &lo.include_expired))
        return NULL;
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit must not be negative");
        return NULL;
    }
    lo.limit = (size_t)limit;
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return NULL;
    rag_doc_list *l = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rag_document_list(db, &lo, &l);
    Py_END_ALLOW_THREADS
    PyObject *out = NULL, *list = NULL;
    if (rc != RAG_OK) {
        raise_rc(rc);
        goto cleanup;
    }
    size_t n = rag_doc_list_count(l);
    if (!(list = PyList_New((Py_ssize_t)n)))
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        PyObject *t = doc_info_tuple(rag_doc_list_get(l, i));
        if (!t)
            goto cleanup;
        PyList_SetItem(list, (Py_ssize_t)i, t);
    }
    out = Py_BuildValue("(Oz)", list, rag_doc_list_next(l));
cleanup:
    Py_XDECREF(list);
    rag_doc_list_free(l);
    release(h);
    return out;
}

/* delete(h, collection, id) */
static int do_delete(rag_db *db, const void *coll, void *id)
{
    return rag_delete(db, coll ? coll : RAG_DEFAULT_COLLECTION, id);
}

static PyObject *py_delete(PyObject *self, PyObject *args)
{
    PyObject *cap;
    const char *coll, *id;
    if (!PyArg_ParseTuple(args, "Ozs", &cap, &coll, &id))
        return NULL;
    return none_or_raise(call_released(cap, do_delete, coll, (void *)id));
}

/* collections(h) -> [name, ...] */
static PyObject *py_collections(PyObject *self, PyObject *cap)
{
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return NULL;
    char **names = NULL;
    size_t n = 0;
    int rc = rag_collection_list(db, &names, &n);
    release(h);
    if (rc != RAG_OK)
        return raise_rc(rc);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) {
            Py_CLEAR(list);
            break;
        }
        PyList_SetItem(list, (Py_ssize_t)i, s);
    }
    rag_strings_free(names, n);
    return list;
}

/* collection_stats(h, name, objective) -> dict (counts, freshness, policy JSON) */
static PyObject *py_collection_stats(PyObject *self, PyObject *args)
{
    PyObject *cap;
    const char *name;
    long long objective = 0;
    if (!PyArg_ParseTuple(args, "OsL", &cap, &name, &objective))
        return NULL;
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return NULL;
    rag_collection_info ci;
    rag_freshness_info fi;
    rag_collection_options co;
    char *policy = NULL;
    int rc = rag_collection_stats(db, name, &ci);
    if (rc == RAG_OK)
        rc = rag_collection_freshness(db, name, objective, 0, &fi);
    if (rc == RAG_OK)
        rc = rag_collection_options_get(db, name, &co);
    if (rc == RAG_OK)
        rc = rag_collection_options_json(&co, &policy);
    release(h);
    if (rc != RAG_OK)
        return raise_rc(rc);
    PyObject *out = Py_BuildValue(
        "{sKsKsKsKsKsKsLsLsLsLsLsLsLsKsKss}", "documents", (unsigned long long)ci.documents,
        "chunks", (unsigned long long)ci.chunks, "duplicate_chunks",
        (unsigned long long)ci.duplicate_chunks, "tombstones", (unsigned long long)ci.tombstones,
        "index_vectors", (unsigned long long)ci.index_vectors, "bytes_text",
        (unsigned long long)ci.bytes_text, "created_at", (long long)ci.created_at,
        "newest_ingest", (long long)ci.newest_ingest, "newest_source",
        (long long)fi.newest_source, "oldest_source", (long long)fi.oldest_source, "last_sync",
        (long long)fi.last_sync, "sync_lag", (long long)fi.sync_lag, "objective",
        (long long)fi.objective, "stale", (unsigned long long)fi.stale, "expired",
        (unsigned long long)fi.expired, "policy", policy);
    rag_free(policy);
    return out;
}

/* configure(h, name, [(setting, value), ...], create) - sets a collection's hygiene policy
 * by name (rag_collection_option_set); create: 1 creates the collection with it. */
static PyObject *py_configure(PyObject *self, PyObject *args)
{
    PyObject *cap, *pairs;
    const char *name;
    int create = 0;
    if (!PyArg_ParseTuple(args, "OsOp", &cap, &name, &pairs, &create))
        return NULL;
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return NULL;
    rag_collection_options co;
    int rc = RAG_OK;
    PyObject *fast = NULL, *ret = NULL;
    if (create)
        rag_collection_options_init(&co);
    else
        rc = rag_collection_options_get(db, name, &co);
    if (rc != RAG_OK) {
        raise_rc(rc);
        goto cleanup;
    }
    if (!(fast = PySequence_Fast(pairs, "settings")))
        goto cleanup;
    for (Py_ssize_t i = 0; i < PySequence_Size(fast); i++) {
        PyObject *it = PySequence_GetItem(fast, i);
        const char *k, *v;
        int ok = it && PyArg_ParseTuple(it, "ss", &k, &v);
        if (ok && (rc = rag_collection_option_set(&co, k, v)) != RAG_OK) {
            raise_rc(rc);
            ok = 0;
        }
        Py_XDECREF(it);
        if (!ok)
            goto cleanup;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = create ? rag_collection_create_with(db, name, &co) : rag_collection_configure(db, name, &co);
    Py_END_ALLOW_THREADS
    if (rc != RAG_OK) {
        raise_rc(rc);
        goto cleanup;
    }
    ret = Py_None;
    Py_INCREF(ret);
cleanup:
    Py_XDECREF(fast);
    release(h);
    return ret;
}

/* drop(h, name) */
static int do_drop(rag_db *db, const void *name, void *unused)
{
    return rag_collection_drop(db, name);
}

static PyObject *py_drop(PyObject *self, PyObject *args)
{
    PyObject *cap;
    const char *name;
    if (!PyArg_ParseTuple(args, "Os", &cap, &name))
        return NULL;
    return none_or_raise(call_released(cap, do_drop, name, NULL));
}

/* checkpoint(h) */
static int do_checkpoint(rag_db *db, const void *unused_a, void *unused_b)
{
    return rag_checkpoint(db);
}

static PyObject *py_checkpoint(PyObject *self, PyObject *cap)
{
    return none_or_raise(call_released(cap, do_checkpoint, NULL, NULL));
}

/* gc(h, collection) -> purged */
static int do_gc(rag_db *db, const void *coll, void *purged)
{
    return rag_gc(db, coll, 0, purged);
}

static PyObject *py_gc(PyObject *self, PyObject *args)
{
    PyObject *cap;
    const char *coll = NULL;
    if (!PyArg_ParseTuple(args, "Oz", &cap, &coll))
        return NULL;
    uint64_t purged = 0;
    int rc = call_released(cap, do_gc, coll, &purged);
    if (rc != RAG_OK)
        return none_or_raise(rc);
    return PyLong_FromUnsignedLongLong(purged);
}

static PyObject *backup_dict(const rag_backup_info *bi)
{
    return Py_BuildValue("{sKsIsIsKsd}", "bytes", (unsigned long long)bi->bytes, "index_files",
                         (unsigned int)bi->index_files, "index_dropped",
                         (unsigned int)bi->index_dropped, "documents",
                         (unsigned long long)bi->documents, "seconds", bi->seconds);
}

/* The arguments of a backup of an open store. */
typedef struct backup_args {
    const char *outdir;
    rag_backup_options opts;
} backup_args;

static int do_backup(rag_db *db, const void *args, void *bi)
{
    const backup_args *a = args;
    return rag_backup_with(db, a->outdir, &a->opts, bi);
}

/* backup(h_or_path, outdir, key) -> dict. h_or_path: an open store's capsule or a
 * directory; key: an encrypted store's key, or None (RAGCORE_STORE_KEY). */
static PyObject *py_backup(PyObject *self, PyObject *args)
{
    PyObject *src;
    backup_args a;
    rag_backup_options_init(&a.opts);
    if (!PyArg_ParseTuple(args, "Osz", &src, &a.outdir, &a.opts.store_key))
        return NULL;
    rag_backup_info bi;
    memset(&bi, 0, sizeof bi);
    int rc;
    if (PyUnicode_Check(src)) {
        const char *dir = utf8_of(src);
        if (!dir)
            return NULL;
        Py_BEGIN_ALLOW_THREADS
        rc = rag_backup_dir_keyed(dir, a.outdir, a.opts.store_key, NULL, &bi);
        Py_END_ALLOW_THREADS
    } else {
        rc = call_released(src, do_backup, &a, &bi);
    }
    if (rc != RAG_OK)
        return none_or_raise(rc);
    return backup_dict(&bi);
}

/* restore(backup, dir, force, key) -> dict; key: the backup's key, or None
 * (RAGCORE_STORE_KEY). */
static PyObject *py_restore(PyObject *self, PyObject *args)
{
    const char *backup, *dir, *key = NULL;
    int force = 0;
    if (!PyArg_ParseTuple(args, "sspz", &backup, &dir, &force, &key))
        return NULL;
    rag_backup_info bi;
    memset(&bi, 0, sizeof bi);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rag_restore_keyed(backup, dir, force, key, NULL, &bi);
    Py_END_ALLOW_THREADS
    if (rc != RAG_OK)
        return raise_rc(rc);
    return backup_dict(&bi);
}

/* check(dir, repair, ef_construction[, key]) -> (counts dict, [(kind, collection, message)], totals) */
static PyObject *py_check(PyObject *self, PyObject *args)
{
    const char *dir, *key = NULL;
    int repair = 0, efc = 0;
    if (!PyArg_ParseTuple(args, "spi|z", &dir, &repair, &efc, &key))
        return NULL;
    rag_check_report *rep = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rag_check_keyed(dir, repair ? RAG_CHECK_REPAIR : 0, efc, key, NULL, &rep);
    Py_END_ALLOW_THREADS
    if (rc != RAG_OK)
        return raise_rc(rc);
    PyObject *items = PyList_New(0), *out = NULL;
    for (size_t i = 0; items && i < rag_check_report_size(rep); i++) {
        const rag_check_item *it = rag_check_report_item(rep, i);
        PyObject *t = Py_BuildValue("(sss)", rag_check_kind_name(it->kind), it->collection,
                                    it->message);
        if (!t || PyList_Append(items, t) < 0) {
            Py_XDECREF(t);
            Py_CLEAR(items);
            break;
        }
        Py_DECREF(t);
    }
    const rag_check_totals *tt = rag_check_report_totals(rep);
    if (items)
        out = Py_BuildValue(
            "({sKsKsKsK}N{sKsKsKsKsKsKsK})", "problem",
            (unsigned long long)rag_check_report_count(rep, RAG_CHECK_PROBLEM), "note",
            (unsigned long long)rag_check_report_count(rep, RAG_CHECK_NOTE), "repaired",
            (unsigned long long)rag_check_report_count(rep, RAG_CHECK_REPAIRED), "unfixed",
            (unsigned long long)rag_check_report_count(rep, RAG_CHECK_UNFIXED), items,
            "collections", (unsigned long long)tt->collections, "documents",
            (unsigned long long)tt->documents, "chunks", (unsigned long long)tt->chunks,
            "vectors", (unsigned long long)tt->vectors, "tombstones",
            (unsigned long long)tt->tombstones, "index_files", (unsigned long long)tt->index_files,
            "index_vectors", (unsigned long long)tt->index_vectors);
    rag_check_report_free(rep);
    return out;
}

/* count_tokens(h, text) -> int */
static PyObject *py_count_tokens(PyObject *self, PyObject *args)
{
    PyObject *cap;
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "Os#", &cap, &text, &len))
        return NULL;
    handle *h;
    rag_db *db = acquire(cap, &h);
    if (!db)
        return NULL;
    size_t n = 0;
    int rc = rag_count_tokens(db, text, (size_t)len, &n);
    release(h);
    if (rc != RAG_OK)
        return raise_rc(rc);
    return PyLong_FromSize_t(n);
}

/* ------------------------------------------------------------------------------------ */
/* Embedding: with a store's embedder, or a standalone one.                               */

#define EMBEDDER_CAPSULE "ragcore.embedder"

static void embedder_destructor(PyObject *cap)
{
    rag_embedder_free(PyCapsule_GetPointer(cap, EMBEDDER_CAPSULE));
}

/* embedder_create(name, dim) -> (capsule, name, dim) */
static PyObject *py_embedder_create(PyObject *self, PyObject *args)
{
    const char *name;
    int dim = 0;
    if (!PyArg_ParseTuple(args, "s|i", &name, &dim))
        return NULL;
    rag_embedder *e = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rag_embedder_create(name, dim, &e);
    Py_END_ALLOW_THREADS
    if (rc != RAG_OK)
        return raise_rc(rc);
    PyObject *cap = PyCapsule_New(e, EMBEDDER_CAPSULE, embedder_destructor);
    if (!cap) {
        rag_embedder_free(e);
        return NULL;
    }
    return Py_BuildValue("(Nsi)", cap, rag_embedder_name(e), rag_embedder_dim(e));
}

/* embed(h_or_embedder, texts, is_query, out_addr, out_floats): writes len(texts) * dim
 * float32 into the caller's buffer at out_addr (out_floats floats long). */
static PyObject *py_embed(PyObject *self, PyObject *args)
{
    PyObject *cap, *texts;
    int is_query = 0;
    unsigned long long addr;
    Py_ssize_t room;
    if (!PyArg_ParseTuple(args, "OOpKn", &cap, &texts, &is_query, &addr, &room))
        return NULL;
    size_t n = 0;
    const char **arr = str_array(texts, &n, "texts");
    if (!arr)
        return NULL;
    handle *h = NULL;
    rag_db *db = NULL;
    rag_embedder *e = NULL;
    int dim, rc;
    if (PyCapsule_IsValid(cap, EMBEDDER_CAPSULE)) {
        e = PyCapsule_GetPointer(cap, EMBEDDER_CAPSULE);
        dim = rag_embedder_dim(e);
    } else if ((db = acquire(cap, &h))) {
        dim = rag_db_dim(db);
    } else {
        free(arr);
        return NULL;
    }
    if ((size_t)room < n * (size_t)dim) {
        if (h)
            release(h);
        free(arr);
        PyErr_Format(PyExc_ValueError, "output buffer holds %zd floats, %zu needed", room,
                     n * (size_t)dim);
        return NULL;
    }
    float *out = (float *)(uintptr_t)addr;
    Py_BEGIN_ALLOW_THREADS
    rc = e ? rag_embedder_embed(e, arr, NULL, n, is_query, out)
           : rag_embed(db, arr, n, is_query, out);
    Py_END_ALLOW_THREADS
    free(arr);
    PyObject *ret = NULL;
    if (rc != RAG_OK)
        raise_db_rc(h, rc);
    else {
        ret = Py_None;
        Py_INCREF(ret);
    }
    if (h)
        release(h);
    return ret;
}

/* ------------------------------------------------------------------------------------ */
/* Models, options, versions.                                                             */

/* models() -> [(name, hf_id, dim, max_tokens, cached, note)] */
static PyObject *py_models(PyObject *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < rag_model_count(); i++) {
        rag_known_model m;
        if (rag_model_describe(i, &m) != RAG_OK)
            continue;
        PyObject *t = Py_BuildValue("(ssiiOs)", m.name, m.hf_id, m.dim, m.max_tokens,
                                    m.cached ? Py_True : Py_False, m.note);
        if (!t || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            Py_CLEAR(list);
        }
        Py_XDECREF(t);
    }
    return list;
}

/* model_pull(name, force) -> directory */
static PyObject *py_model_pull(PyObject *self, PyObject *args)
{
    const char *name;
    int force = 0;
    if (!PyArg_ParseTuple(args, "s|p", &name, &force))
        return NULL;
    char *dir = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rag_model_pull(name, force, &dir);
    Py_END_ALLOW_THREADS
    if (rc != RAG_OK)
        return raise_rc(rc);
    PyObject *s = PyUnicode_FromString(dir);
    rag_free(dir);
    return s;
}

/* search_options() -> [(name, alias, type, min, max, choices, default, help)] */
static PyObject *py_search_options(PyObject *self, PyObject *unused)
{
    static const char *types[] = {"int", "real", "string", "choice"};
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < rag_search_option_count(); i++) {
        const rag_option_info *o = rag_search_option_info(i);
        PyObject *t = Py_BuildValue("(szsddzss)", o->name, o->alias, types[o->type & 3], o->min,
                                    o->max, o->choices, o->default_text, o->help);
        if (!t || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

static PyObject *py_version(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(rag_version());
}

static PyObject *py_kernels(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(rag_kernels());
}

/* noop(h) - acquires and releases a handle: the binding's own per-call cost (benchmarks). */
static PyObject *py_noop(PyObject *self, PyObject *cap)
{
    handle *h;
    if (!acquire(cap, &h))
        return NULL;
    release(h);
    Py_RETURN_NONE;
}

static PyMethodDef METHODS[] = {
    {"set_errors", py_set_errors, METH_VARARGS, "set_errors(dict code->class, base class)"},
    {"open", py_open, METH_VARARGS, "open a store (see ragcore.open)"},
    {"close", py_close, METH_O, "close a store"},
    {"info", py_info, METH_O, "(embedder, dim, index_spec)"},
    {"search", py_search, METH_VARARGS, "search (see ragcore.DB.search)"},
    {"context", py_context, METH_VARARGS, "context (see ragcore.DB.context)"},
    {"ingest_documents", py_ingest_documents, METH_VARARGS, "ingest in-memory documents"},
    {"ingest_paths", py_ingest_paths, METH_VARARGS, "ingest files and directories"},
    {"sync_paths", py_sync_paths, METH_VARARGS, "sync files and directories"},
    {"get", py_get, METH_VARARGS, "a document with its chunks"},
    {"list", py_list, METH_VARARGS, "a page of documents"},
    {"delete", py_delete, METH_VARARGS, "delete a document"},
    {"collections", py_collections, METH_O, "collection names"},
    {"collection_stats", py_collection_stats, METH_VARARGS, "counts, freshness, policy"},
    {"configure", py_configure, METH_VARARGS, "create or configure a collection"},
    {"drop", py_drop, METH_VARARGS, "drop a collection"},
    {"checkpoint", py_checkpoint, METH_O, "checkpoint the indexes"},
    {"gc", py_gc, METH_VARARGS, "purge expired documents"},
    {"backup", py_backup, METH_VARARGS, "back up a store"},
    {"restore", py_restore, METH_VARARGS, "restore a backup"},
    {"check", py_check, METH_VARARGS, "check (and repair) a store directory"},
    {"count_tokens", py_count_tokens, METH_VARARGS, "tokens as the context budget counts them"},
    {"embedder_create", py_embedder_create, METH_VARARGS, "a standalone embedder"},
    {"embed", py_embed, METH_VARARGS, "embed texts into a float32 buffer"},
    {"models", py_models, METH_NOARGS, "known models"},
    {"model_pull", py_model_pull, METH_VARARGS, "download a known model into the cache"},
    {"search_options", py_search_options, METH_NOARGS, "the search option table"},
    {"version", py_version, METH_NOARGS, "library version"},
    {"kernels", py_kernels, METH_NOARGS, "the encoder's kernels for this CPU"},
    {"noop", py_noop, METH_O, "acquire and release a handle (overhead measurement)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_native", "ragcore's C library (include/ragcore.h), unwrapped.",
    -1, METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&MODULE);
}
