/*
 * The query result cache and live queries.  Both rest on table versions:
 * each commit that changes a table's rows bumps its version after the
 * commit is visible.  A result is tagged with the versions read *before*
 * its snapshot began, so a cached result is never newer than its tag and
 * any later commit to one of its tables makes it miss (never stale).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "api/call.h"
#include "api/worker.h"
#include "api/query.h"

#define CACHE_MAX 256

typedef struct tabver {
    uint64_t num, version;
} tabver;

typedef struct centry {
    uint64_t   shape, space;
    int64_t    expires;
    tabver     tv[TSQ_SOURCES_MAX];
    size_t     ntv;
    ts_result *r;
    uint64_t   used;
} centry;

struct tsapi_cache {
    pthread_mutex_t lock;
    centry          e[CACHE_MAX];
    size_t          n;
    uint64_t        clock;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t cur_space(ts_db *db)
{
    pthread_mutex_lock(&db->lock);
    uint64_t id = db->space_id;
    pthread_mutex_unlock(&db->lock);
    return id;
}

/* Versions of the tables a query reads; 0 when one is missing. */
static size_t versions(ts_db *db, const tsq_spec *s, tabver *tv)
{
    size_t n = 0;
    tv[n].version = tstbl_version(&db->tables, s->table, &tv[n].num);
    if (!tv[n++].version) return 0;
    for (size_t j = 0; j < s->njoins && n < TSQ_SOURCES_MAX; j++) {
        tv[n].version = tstbl_version(&db->tables, s->joins[j].table, &tv[n].num);
        if (!tv[n++].version) return 0;
    }
    return n;
}

static int same(ts_db *db, const tsq_spec *s, const tabver *tv, size_t n)
{
    tabver now[TSQ_SOURCES_MAX];
    size_t m = versions(db, s, now);
    if (m != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (now[i].num != tv[i].num || now[i].version != tv[i].version) return 0;
    return 1;
}

static void centry_drop(struct tsapi_cache *c, size_t i)
{
    ts_result_free(c->e[i].r);
    c->e[i] = c->e[--c->n];
}

int tsapi_cache_get(ts_query *q, tstx *tx, ts_result **out)
{
    ts_db *db = q->db;
    tsapi_thread *th = pthread_getspecific(db->txkey);
    /* bypassed inside any explicit transaction (its snapshot, its own
     * writes) and for custom predicates (code the shape cannot capture) */
    if (q->cache_ttl <= 0 || (th && th->tx) || tsq_cond_has_custom(&q->s.cond))
        return tsapi_query_rows(q, tx, out);
    /* the versions must predate the snapshot: tx began already, so only a
     * result computed in a later call may be stored (see below) */
    uint64_t shape = tsq_shape_hash(&q->s, 1), space = cur_space(db);
    struct tsapi_cache *c = db->cache;
    if (c) {
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++) {
            centry *e = &c->e[i];
            if (e->shape != shape || e->space != space) continue;
            if (e->expires <= now_ms() || !same(db, &q->s, e->tv, e->ntv)) { centry_drop(c, i); break; }
            e->used = ++c->clock;
            *out = tsapi_result_copy(e->r);
            pthread_mutex_unlock(&c->lock);
            return *out ? TS_OK : tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
        }
        pthread_mutex_unlock(&c->lock);
    }
    /* a miss: compute on a fresh snapshot taken after reading the versions */
    tabver tv[TSQ_SOURCES_MAX];
    size_t ntv = versions(db, &q->s, tv);
    int rc;
    if (!th || !th->tx) {
        tstx *fresh;
        if ((rc = tscall_tx_begin(db, 0, &fresh))) return rc;
        rc = tsapi_query_rows(q, fresh, out);
        tstx_rollback(fresh);
    } else {
        rc = tsapi_query_rows(q, tx, out);
        ntv = 0;
    }
    if (rc || !ntv) return rc;
    if (!c) {
        pthread_mutex_lock(&db->lock);
        if (!db->cache && (db->cache = calloc(1, sizeof *db->cache)))
            pthread_mutex_init(&db->cache->lock, NULL);
        c = db->cache;
        pthread_mutex_unlock(&db->lock);
        if (!c) return TS_OK;
    }
    ts_result *copy = tsapi_result_copy(*out);
    if (!copy) return TS_OK;
    pthread_mutex_lock(&c->lock);
    if (c->n == CACHE_MAX) {
        size_t old = 0;
        for (size_t i = 1; i < c->n; i++) if (c->e[i].used < c->e[old].used) old = i;
        centry_drop(c, old);
    }
    centry *e = &c->e[c->n++];
    memset(e, 0, sizeof *e);
    e->shape = shape;
    e->space = space;
    e->expires = now_ms() + q->cache_ttl;
    memcpy(e->tv, tv, ntv * sizeof *tv);
    e->ntv = ntv;
    e->r = copy;
    e->used = ++c->clock;
    pthread_mutex_unlock(&c->lock);
    return TS_OK;
}

ts_query *ts_use_cache(ts_query *q, int64_t ttl_ms)
{
    if (!q) return NULL;
    if (ttl_ms <= 0) {
        if (!q->err) {
            q->err = TS_ERR_VALIDATION;
            snprintf(q->errmsg, sizeof q->errmsg, "ts_use_cache: ttl_ms must be positive");
        }
    } else {
        q->cache_ttl = ttl_ms;
    }
    return q;
}

ts_query *ts_no_cache(ts_query *q)
{
    if (q) q->cache_ttl = 0;
    return q;
}

int ts_query_clear_cache(ts_query *q)
{
    if (!q) return tsenv_error(NULL, TS_ERR_INVALID, "the query is NULL");
    struct tsapi_cache *c = q->db->cache;
    if (!c) return TS_OK;
    uint64_t shape = tsq_shape_hash(&q->s, 1);
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n;) {
        if (c->e[i].shape == shape) centry_drop(c, i);
        else i++;
    }
    pthread_mutex_unlock(&c->lock);
    return TS_OK;
}

void tsapi_cache_close(ts_db *db)
{
    struct tsapi_cache *c = db->cache;
    if (!c) return;
    while (c->n) centry_drop(c, c->n - 1);
    pthread_mutex_destroy(&c->lock);
    free(c);
    db->cache = NULL;
}

/* ---- query specs ------------------------------------------------------- */

static int cond_copy(const ts_cond *from, ts_cond *to)
{
    memset(to, 0, sizeof *to);
    to->err = from->err;
    memcpy(to->errmsg, from->errmsg, sizeof to->errmsg);
    if (!from->n) return TS_OK;
    if (!(to->t = calloc(from->n, sizeof *to->t))) return TS_ERR_NOMEM;
    to->cap = from->n;
    for (size_t i = 0; i < from->n; i++, to->n++) {
        const tsq_term *a = &from->t[i];
        tsq_term *b = &to->t[i];
        *b = *a;
        b->field = NULL;
        b->value = NULL;
        b->group = NULL;
        if (a->field && !(b->field = strdup(a->field))) return TS_ERR_NOMEM;
        if (a->value && !(b->value = json_deep_copy(a->value))) return TS_ERR_NOMEM;
        if (a->group) {
            if (!(b->group = calloc(1, sizeof *b->group))) return TS_ERR_NOMEM;
            if (cond_copy(a->group, b->group)) return TS_ERR_NOMEM;
        }
    }
    return TS_OK;
}

static char *sdup(const char *s, int *bad)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *bad = 1;
    return d;
}

int tsapi_spec_copy(const tsq_spec *f, tsq_spec *t)
{
    memset(t, 0, sizeof *t);
    int bad = 0;
    t->table = sdup(f->table, &bad);
    t->limit = f->limit;
    t->offset = f->offset;
    t->has_limit = f->has_limit;
    t->cursor = sdup(f->cursor, &bad);
    if (cond_copy(&f->cond, &t->cond)) bad = 1;
    if (f->norder && (t->order = calloc(f->norder, sizeof *t->order)))
        for (; t->norder < f->norder; t->norder++) {
            t->order[t->norder].field = sdup(f->order[t->norder].field, &bad);
            t->order[t->norder].desc = f->order[t->norder].desc;
        }
    if (f->nsel && (t->sel = calloc(f->nsel, sizeof *t->sel)))
        for (; t->nsel < f->nsel; t->nsel++) {
            t->sel[t->nsel].field = sdup(f->sel[t->nsel].field, &bad);
            t->sel[t->nsel].alias = sdup(f->sel[t->nsel].alias, &bad);
        }
    if (f->njoins && (t->joins = calloc(f->njoins, sizeof *t->joins)))
        for (; t->njoins < f->njoins; t->njoins++) {
            const tsq_join *a = &f->joins[t->njoins];
            t->joins[t->njoins] = (tsq_join){ sdup(a->table, &bad), sdup(a->left, &bad),
                                              sdup(a->right, &bad), a->op, a->left_join };
        }
    if (bad || t->norder != f->norder || t->nsel != f->nsel || t->njoins != f->njoins) {
        tsapi_spec_clear(t);
        return TS_ERR_NOMEM;
    }
    return TS_OK;
}

/* ---- watchers ---------------------------------------------------------- */

struct ts_watch {
    ts_db    *db;
    ts_query  q;           /* its own copy */
    void    (*cb)(const ts_result *r, void *ctx);
    void     *ctx;
    tabver    tv[TSQ_SOURCES_MAX];
    size_t    ntv;
    int       initial;     /* not yet called */
    int       removed;
    struct ts_watch *next;
};

struct tsapi_watchers {
    pthread_mutex_t lock;     /* guards list and current */
    pthread_cond_t  idle;     /* current's callback returned */
    tsapi_worker   *worker;   /* kicked when a table changes or the list does */
    ts_watch       *list;
    ts_watch       *current;  /* whose callback runs now */
};

static void watch_free(ts_watch *w)
{
    tsapi_spec_clear(&w->q.s);
    free(w);
}

/* One pass over the watches: run those whose tables changed. */
static int64_t watch_run(ts_db *db)
{
    struct tsapi_watchers *W = db->watch;
    pthread_mutex_lock(&W->lock);
    for (ts_watch *w = W->list; w && !tsapi_worker_stopping(W->worker); w = w->next) {
        if (w->removed) continue;
        tabver tv[TSQ_SOURCES_MAX];
        size_t ntv = versions(db, &w->q.s, tv);
        int changed = w->initial || ntv != w->ntv ||
                      (ntv && memcmp(tv, w->tv, ntv * sizeof *tv) != 0);
        if (!changed) continue;
        w->initial = 0;
        memcpy(w->tv, tv, sizeof tv);
        w->ntv = ntv;
        W->current = w;
        pthread_mutex_unlock(&W->lock);
        /* run on a snapshot taken after reading the versions */
        ts_result *r = NULL;
        tstx *tx;
        pthread_rwlock_rdlock(&db->gate);
        int rc = tscall_tx_begin(db, 0, &tx);
        if (!rc) {
            rc = tsapi_query_rows(&w->q, tx, &r);
            tstx_rollback(tx);
        }
        pthread_rwlock_unlock(&db->gate);
        if (!rc && !w->removed) w->cb(r, w->ctx);
        ts_result_free(r);
        pthread_mutex_lock(&W->lock);
        W->current = NULL;
        pthread_cond_broadcast(&W->idle);
    }
    /* free the removed ones */
    for (ts_watch **pp = &W->list; *pp;) {
        if ((*pp)->removed) {
            ts_watch *d = *pp;
            *pp = d->next;
            watch_free(d);
        } else {
            pp = &(*pp)->next;
        }
    }
    pthread_mutex_unlock(&W->lock);
    return -1;
}

int ts_query_watch(ts_query *q, void (*cb)(const ts_result *r, void *ctx), void *ctx, ts_watch **out)
{
    if (out) *out = NULL;
    if (!q || !cb || !out) return tsenv_error(q ? &q->db->env : NULL, TS_ERR_INVALID, "ts_query_watch: NULL argument");
    ts_db *db = q->db;
    tsenv_clear(&db->env);
    if (q->err) return tsenv_error(&db->env, q->err, "%s", q->errmsg);
    if (q->s.cond.err) return tsenv_error(&db->env, q->s.cond.err, "%s", q->s.cond.errmsg);
    /* check it runs now, so errors reach the caller */
    ts_result *r = NULL;
    int rc = ts_query_exec(q, &r);
    ts_result_free(r);
    if (rc) return rc;
    ts_watch *w = calloc(1, sizeof *w);
    if (!w) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    w->db = db;
    w->q.db = db;
    w->cb = cb;
    w->ctx = ctx;
    w->initial = 1;
    if (tsapi_spec_copy(&q->s, &w->q.s)) { free(w); return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory"); }
    pthread_mutex_lock(&db->lock);
    if (!db->watch) {
        struct tsapi_watchers *W = calloc(1, sizeof *W);
        if (W) {
            pthread_mutex_init(&W->lock, NULL);
            pthread_cond_init(&W->idle, NULL);
            /* the thread sleeps until kicked, and kicks find it only through
             * db->watch: published complete, after the worker exists, so a
             * committer's tsapi_watch_notify never sees half of it */
            if (tsapi_worker_start(db, watch_run, -1, &W->worker)) {
                pthread_cond_destroy(&W->idle);
                pthread_mutex_destroy(&W->lock);
                free(W);
            } else {
                __atomic_store_n(&db->watch, W, __ATOMIC_RELEASE);
            }
        }
    }
    struct tsapi_watchers *W = db->watch;
    pthread_mutex_unlock(&db->lock);
    if (!W) {
        watch_free(w);
        return tsenv_error(&db->env, TS_ERR_RESOURCE, "cannot start the watcher thread");
    }
    pthread_mutex_lock(&W->lock);
    w->next = W->list;
    W->list = w;
    pthread_mutex_unlock(&W->lock);
    tsapi_worker_kick(W->worker);
    *out = w;
    return TS_OK;
}

int ts_unwatch(ts_watch *w)
{
    if (!w) return TS_OK;
    struct tsapi_watchers *W = w->db->watch;
    pthread_mutex_lock(&W->lock);
    w->removed = 1;
    /* wait for a running callback, unless we are that callback */
    while (W->current == w && !tsapi_worker_is_self(W->worker))
        pthread_cond_wait(&W->idle, &W->lock);
    pthread_mutex_unlock(&W->lock);
    tsapi_worker_kick(W->worker); /* frees it */
    return TS_OK;
}

void tsapi_watch_notify(ts_db *db)
{
    struct tsapi_watchers *W = __atomic_load_n(&db->watch, __ATOMIC_ACQUIRE);
    if (W) tsapi_worker_kick(W->worker);
}

void tsapi_watch_close(ts_db *db)
{
    struct tsapi_watchers *W = db->watch;
    if (!W) return;
    tsapi_worker_stop(W->worker);
    while (W->list) {
        ts_watch *d = W->list;
        W->list = d->next;
        watch_free(d);
    }
    pthread_cond_destroy(&W->idle);
    pthread_mutex_destroy(&W->lock);
    free(W);
    db->watch = NULL;
}
