/*
 * Savepoints: ts_savepoint, ts_rollback_to, ts_release.
 *
 * Built on the row-level undo log that already makes each statement
 * atomic (table/rows.h), not on page images: undoing a row goes through the
 * same code as writing one, so indexes, counts, TTL entries and every
 * module's in-memory state (the ngh graph's caches, key-generator state)
 * stay consistent, which restoring pages under them would not.  While a
 * savepoint is open the thread keeps the undo entries of every successful
 * row statement and the old bytes of every key-value entry it changes;
 * rolling back to a savepoint applies them newest first.  Changes that
 * keep no undo (schema changes, clearing a table, deleting a space) are
 * barriers: a savepoint made before one can be released, not rolled back
 * to (TS_ERR_UNSUPPORTED; roll back the whole transaction instead).
 */
#include <stdlib.h>
#include <string.h>
#include "api/call.h"
#include "table/rows.h"

typedef struct kv_undo {
    int64_t  space;
    char    *key;
    void    *old;       /* raw stored bytes; NULL: the key was absent */
    size_t   len;
} kv_undo;

typedef struct sp {
    char    *name;
    size_t   rows;      /* row undo entries before it */
    size_t   kvs;       /* key-value undo entries before it */
    unsigned ddl_seq;   /* the table map's catalog change count then */
    uint64_t barriers;
} sp;

struct tsapi_sps {
    sp      *v;
    size_t   n, cap;
    tsw      rows;      /* undo of the row statements since the first one */
    kv_undo *kv;
    size_t   nkv, capkv;
    uint64_t barriers;  /* changes kept without undo */
};

static tsapi_thread *thread_of(ts_db *db) { return pthread_getspecific(db->txkey); }

int tsapi_sp_active(ts_db *db)
{
    tsapi_thread *t = thread_of(db);
    return t && t->sps && t->sps->n > 0;
}

int tsapi_sp_keep_rows(ts_db *db, tsw *w)
{
    if (!tsapi_sp_active(db)) return TS_OK;
    return tsw_move(&thread_of(db)->sps->rows, w);
}

int tsapi_sp_keep_kv(ts_db *db, int64_t space, const char *key, const void *old, size_t len)
{
    if (!tsapi_sp_active(db)) return TS_OK;
    struct tsapi_sps *s = thread_of(db)->sps;
    if (s->nkv == s->capkv) {
        size_t nc = s->capkv ? s->capkv * 2 : 16;
        kv_undo *nv = realloc(s->kv, nc * sizeof *nv);
        if (!nv) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
        s->kv = nv;
        s->capkv = nc;
    }
    kv_undo u = { space, strdup(key), NULL, len };
    if (u.key && old) {
        u.old = malloc(len ? len : 1);
        if (u.old) memcpy(u.old, old, len);
    }
    if (!u.key || (old && !u.old)) {
        free(u.key);
        free(u.old);
        return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    }
    s->kv[s->nkv++] = u;
    return TS_OK;
}

void tsapi_sp_barrier(ts_db *db)
{
    if (tsapi_sp_active(db)) thread_of(db)->sps->barriers++;
}

static void kv_forget(struct tsapi_sps *s, size_t mark)
{
    while (s->nkv > mark) {
        kv_undo *u = &s->kv[--s->nkv];
        free(u->key);
        free(u->old);
    }
}

/* Drop savepoints [from, n) and, with none left, the undo kept for them. */
static void drop_from(struct tsapi_sps *s, size_t from)
{
    while (s->n > from) free(s->v[--s->n].name);
    if (s->n == 0) {
        tsw_forget(&s->rows, 0);
        kv_forget(s, 0);
        s->barriers = 0;
    }
}

void tsapi_sp_free(tsapi_thread *t)
{
    struct tsapi_sps *s = t->sps;
    if (!s) return;
    drop_from(s, 0);
    free(s->v);
    if (s->rows.m) tsw_done(&s->rows);
    free(s->kv);
    free(s);
    t->sps = NULL;
}

/* The calling thread's write transaction, or an error. */
static int writer(ts_db *db, const char *name, const char *call, tsapi_thread **out)
{
    if (!db) return tsenv_error(NULL, TS_ERR_INVALID, "the database handle is NULL");
    tsenv_clear(&db->env);
    if (!name || !*name) return tsenv_error(&db->env, TS_ERR_INVALID, "%s: no savepoint name", call);
    tsapi_thread *t = thread_of(db);
    if (!t || !t->tx || !t->write)
        return tsenv_error(&db->env, TS_ERR_INVALID,
                           "%s: savepoints need this thread's write transaction (ts_begin)", call);
    if (t->failed)
        return tsenv_error(&db->env, TS_ERR_DB, "a write in this transaction failed; roll it back");
    *out = t;
    return TS_OK;
}

/* The newest savepoint named name, or n. */
static size_t find(const struct tsapi_sps *s, const char *name)
{
    for (size_t i = s ? s->n : 0; i-- > 0;)
        if (strcmp(s->v[i].name, name) == 0) return i;
    return s ? s->n : 0;
}

int ts_savepoint(ts_db *db, const char *name)
{
    tsapi_thread *t = NULL;
    int rc = writer(db, name, "ts_savepoint", &t);
    if (rc) return rc;
    if (!db->sys.catalog)
        return tsenv_error(&db->env, TS_ERR_PLUGIN, "savepoints need the 'btree' index module");
    struct tsapi_sps *s = t->sps;
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
        tsw_init(&s->rows, &db->tables, t->tx, 0, 1);
        t->sps = s;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        sp *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
        s->v = nv;
        s->cap = nc;
    }
    char *copy = strdup(name);
    if (!copy) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    s->v[s->n++] = (sp){ copy, s->rows.nundo, s->nkv, db->tables.ddl_seq, s->barriers };
    return TS_OK;
}

int ts_rollback_to(ts_db *db, const char *name)
{
    tsapi_thread *t = NULL;
    int rc = writer(db, name, "ts_rollback_to", &t);
    if (rc) return rc;
    struct tsapi_sps *s = t->sps;
    size_t i = find(s, name);
    if (!s || i == s->n)
        return tsenv_error(&db->env, TS_ERR_NOT_FOUND, "no savepoint named '%s'", name);
    sp *p = &s->v[i];
    if (p->ddl_seq != db->tables.ddl_seq || p->barriers != s->barriers)
        return tsenv_error(&db->env, TS_ERR_UNSUPPORTED,
                           "savepoint '%s': a schema change, cleared table or deleted space "
                           "since cannot be undone; roll back the transaction instead", name);
    /* rows and key-value entries live in different trees: their undo
     * lists are independent, each applied newest first */
    rc = tsw_undo_to(&s->rows, p->rows);
    while (!rc && s->nkv > p->kvs) {
        kv_undo *u = &s->kv[s->nkv - 1];
        rc = tsapi_kv_restore(db, t->tx, u->space, u->key, u->old, u->len);
        if (!rc) kv_forget(s, s->nkv - 1);
    }
    if (rc) {
        t->failed = 1; /* half undone: only rollback is safe now */
        tsenv_error_prefix(&db->env, "ts_rollback_to '%s'", name);
        return rc;
    }
    drop_from(s, i + 1); /* the savepoint itself stays, as in SQL */
    return TS_OK;
}

int ts_release(ts_db *db, const char *name)
{
    tsapi_thread *t = NULL;
    int rc = writer(db, name, "ts_release", &t);
    if (rc) return rc;
    size_t i = find(t->sps, name);
    if (!t->sps || i == t->sps->n)
        return tsenv_error(&db->env, TS_ERR_NOT_FOUND, "no savepoint named '%s'", name);
    drop_from(t->sps, i);
    return TS_OK;
}
