/* Tables: the public calls of tostore.h over the table store. */
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "api/call.h"
#include "api/query.h"
#include "table/migrate.h"
#include "table/write.h"

static uint64_t cur_space(ts_db *db)
{
    pthread_mutex_lock(&db->lock);
    uint64_t id = db->space_id;
    pthread_mutex_unlock(&db->lock);
    return id;
}

/* A statement on one table: its call, the table and the write context. */
typedef struct stmt {
    tscall c;
    tstbl *t;
    tsw    w;
    int    begun;
} stmt;

static int stmt_begin(ts_db *db, const char *table, int write, stmt *s)
{
    memset(s, 0, sizeof *s);
    int rc = tscall_begin(db, write, &s->c);
    if (rc) return rc;
    s->begun = 1;
    if (!table) return tsenv_error(&db->env, TS_ERR_INVALID, "table name is NULL");
    if ((rc = tstbl_acquire(&db->tables, table, s->c.tx, &s->t))) return rc;
    /* implicit transactions roll back whole; explicit ones need the undo log */
    tsw_init(&s->w, &db->tables, s->c.tx, cur_space(db), !s->c.owned);
    return TS_OK;
}

static int stmt_end(ts_db *db, stmt *s, int rc)
{
    if (!s->begun) return rc;
    /* under a savepoint the statement's undo is kept for ts_rollback_to;
     * if it cannot be, the statement fails like any other */
    if (rc >= 0 && !s->c.owned && s->w.m && tsapi_sp_keep_rows(db, &s->w)) rc = TS_ERR_NOMEM;
    if (rc < 0 && !s->c.owned && s->w.m && s->w.nundo) {
        if (tsw_undo_to(&s->w, 0)) tscall_poison(&s->c);
    }
    if (s->w.m) tsw_done(&s->w);
    tstbl_release(&db->tables, s->t);
    return tscall_end(&s->c, rc);
}

static int need(ts_db *db, const void *p, const char *what)
{
    return p ? TS_OK : tsenv_error(&db->env, TS_ERR_INVALID, "%s is NULL", what);
}

/* ---- definitions ------------------------------------------------------ */

static int ddl_end(ts_db *db, tscall *c, unsigned seq, int rc)
{
    if (rc < 0 && !c->owned && db->tables.ddl_seq != seq) tscall_poison(c);
    rc = tscall_end(c, rc);
    if (!rc) tsapi_purge_ensure(db);
    return rc;
}

int ts_create_tables(ts_db *db, const json_t *schemas)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    unsigned seq = db->tables.ddl_seq;
    if (!json_is_array(schemas)) {
        rc = tsenv_error(&db->env, schemas ? TS_ERR_VALIDATION : TS_ERR_INVALID,
                         "schemas must be a JSON array of table schemas");
        return tscall_end(&c, rc);
    }
    size_t n = json_array_size(schemas);
    const json_t **arr = calloc(n + 1, sizeof *arr);
    if (!arr) return tscall_end(&c, tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory"));
    for (size_t i = 0; i < n; i++) arr[i] = json_array_get(schemas, i);
    rc = tstbl_create(&db->tables, c.tx, arr, n);
    free(arr);
    return ddl_end(db, &c, seq, rc);
}

int ts_create_table(ts_db *db, const json_t *schema)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    unsigned seq = db->tables.ddl_seq;
    if (!(rc = need(db, schema, "schema"))) rc = tstbl_create(&db->tables, c.tx, &schema, 1);
    return ddl_end(db, &c, seq, rc);
}

int ts_drop_table(ts_db *db, const char *table)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    unsigned seq = db->tables.ddl_seq;
    if (!(rc = need(db, table, "table name"))) rc = tstbl_drop(&db->tables, c.tx, table);
    return ddl_end(db, &c, seq, rc);
}

int ts_get_schema(ts_db *db, const char *table, json_t **out_new)
{
    if (out_new) *out_new = NULL;
    stmt s;
    int rc = stmt_begin(db, table, 0, &s);
    if (!rc) rc = need(db, out_new, "out");
    if (!rc && !(*out_new = tsd_table_to_json(s.t->def)))
        rc = tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    return stmt_end(db, &s, rc);
}

int ts_list_tables(ts_db *db, json_t **out_new)
{
    if (out_new) *out_new = NULL;
    tscall c;
    int rc = tscall_begin(db, 0, &c);
    if (rc) return rc;
    json_t *arr = NULL;
    if (!(rc = need(db, out_new, "out"))) {
        arr = json_array();
        rc = arr ? tstbl_names(&db->tables, c.tx, arr) : TS_ERR_NOMEM;
    }
    rc = tscall_end(&c, rc);
    if (!rc) *out_new = arr;
    else json_decref(arr);
    return rc;
}

int ts_clear_table(ts_db *db, const char *table)
{
    stmt s;
    int rc = stmt_begin(db, table, 1, &s);
    if (!rc) tsapi_sp_barrier(db); /* a clear keeps no undo of its rows, even half done */
    if (!rc) rc = tswrite_clear(&s.w, s.t);
    return stmt_end(db, &s, rc);
}

int ts_sync_schemas_progress(ts_db *db, const json_t *schemas, int dry_run, json_t **report_new,
                             void (*progress)(void *ctx, const char *table, uint64_t done,
                                              uint64_t total),
                             void *ctx)
{
    if (report_new) *report_new = NULL;
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    unsigned seq = db->tables.ddl_seq;
    tsmig_opts o = { .drop_missing = db->cfg->drop_missing_tables, .allow_lossy = db->cfg->allow_lossy,
                     .dry_run = dry_run, .progress = progress, .progress_ctx = ctx };
    json_t *rep = json_array();
    rc = schemas ? (rep ? tsmig_sync(&db->tables, c.tx, schemas, &o, rep) : TS_ERR_NOMEM)
                 : tsenv_error(&db->env, TS_ERR_INVALID, "schemas is NULL");
    if (!dry_run) tsapi_sp_barrier(db); /* migration tasks it starts keep no undo */
    rc = ddl_end(db, &c, seq, rc);
    if (!rc && report_new) *report_new = rep;
    else json_decref(rep);
    return rc;
}

int ts_rebuild_table(ts_db *db, const char *table,
                     void (*progress)(void *ctx, const char *table, uint64_t done, uint64_t total),
                     void *ctx)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    unsigned seq = db->tables.ddl_seq;
    tsmig_opts o = { .progress = progress, .progress_ctx = ctx };
    rc = table ? tsmig_rebuild(&db->tables, c.tx, table, &o)
               : tsenv_error(&db->env, TS_ERR_INVALID, "table is NULL");
    if (!rc) tsapi_sp_barrier(db); /* a call that changed nothing leaves savepoints usable */
    return ddl_end(db, &c, seq, rc);
}

int ts_sync_schemas_report(ts_db *db, const json_t *schemas, int dry_run, json_t **report_new)
{
    return ts_sync_schemas_progress(db, schemas, dry_run, report_new, NULL, NULL);
}

int ts_sync_schemas(ts_db *db, const json_t *schemas)
{
    return ts_sync_schemas_report(db, schemas, 0, NULL);
}

/* ---- rows ------------------------------------------------------------- */

int ts_insert(ts_db *db, const char *table, const json_t *record, json_t **pk_out_new)
{
    if (pk_out_new) *pk_out_new = NULL;
    stmt s;
    int rc = stmt_begin(db, table, 1, &s);
    if (!rc) rc = need(db, record, "record");
    if (!rc) rc = tswrite_insert(&s.w, s.t, record, pk_out_new);
    rc = stmt_end(db, &s, rc);
    if (rc < 0 && pk_out_new && *pk_out_new) { json_decref(*pk_out_new); *pk_out_new = NULL; }
    return rc;
}

int ts_upsert(ts_db *db, const char *table, const json_t *record, json_t **pk_out_new)
{
    if (pk_out_new) *pk_out_new = NULL;
    stmt s;
    int rc = stmt_begin(db, table, 1, &s);
    if (!rc) rc = need(db, record, "record");
    if (!rc) rc = tswrite_upsert(&s.w, s.t, record, pk_out_new);
    rc = stmt_end(db, &s, rc);
    if (rc < 0 && pk_out_new && *pk_out_new) { json_decref(*pk_out_new); *pk_out_new = NULL; }
    return rc;
}

int ts_get(ts_db *db, const char *table, const json_t *pk, json_t **row_out_new)
{
    if (row_out_new) *row_out_new = NULL;
    stmt s;
    int rc = stmt_begin(db, table, 0, &s);
    if (!rc) rc = need(db, row_out_new, "out");
    uint8_t k[TSROW_KEY_CAP];
    size_t kl;
    tsrow r = { 0 };
    if (!rc) rc = tsrow_pk_key(&s.w, s.t, pk, k, &kl);
    if (!rc) {
        rc = tsrow_read(&s.w, s.t, tsrow_space(s.t, s.w.space), k, kl, 1, &r);
        if (rc == TS_ERR_NOT_FOUND)
            tsenv_error(&db->env, rc, "%s: no row with that primary key", s.t->def->name);
    }
    if (!rc) rc = tsd_row_decode(&db->env, s.t->def, r.row, r.len, row_out_new);
    tsrow_done(&r);
    return stmt_end(db, &s, rc);
}

static int by_key(ts_db *db, const char *table, const json_t *pk, const json_t *changes, int del)
{
    stmt s;
    int rc = stmt_begin(db, table, 1, &s);
    if (!rc && !del) rc = need(db, changes, "changes");
    uint8_t k[TSROW_KEY_CAP];
    size_t kl;
    if (!rc) rc = tsrow_pk_key(&s.w, s.t, pk, k, &kl);
    uint64_t space = s.t ? tsrow_space(s.t, s.w.space) : 0;
    if (!rc && s.t->ttl) rc = tsrow_purge_expired(&s.w, s.t, space, 16, NULL);
    if (!rc) rc = del ? tswrite_delete(&s.w, s.t, space, k, kl)
                      : tswrite_update(&s.w, s.t, space, k, kl, changes);
    return stmt_end(db, &s, rc);
}

int ts_update(ts_db *db, const char *table, const json_t *pk, const json_t *changes)
{
    return by_key(db, table, pk, changes, 0);
}

int ts_delete(ts_db *db, const char *table, const json_t *pk)
{
    return by_key(db, table, pk, NULL, 1);
}

/* Rows whose TTL passed but are not purged yet. */
static int expired_rows(tstbl *t, tstx *tx, uint64_t space, int64_t *n)
{
    *n = 0;
    if (!t->ttl) return TS_OK;
    uint8_t pre[TSROW_KEY_CAP];
    size_t pl = ts_key_int(pre, sizeof pre, 0, (int64_t)space);
    int64_t now = tsrow_now_ms();
    tsix_cur c;
    int rc = tsix_cursor(t->ttl, tx, &c);
    if (rc) return rc;
    for (rc = tsix_seek(&c, pre, pl, TS_SEEK_GE); rc == TS_OK; rc = tsix_next(&c)) {
        const void *ek, *ev;
        size_t ekl, evl, off = pl;
        ts_key_item it;
        if ((rc = tsix_entry(&c, &ek, &ekl, &ev, &evl))) break;
        if (ekl < pl || memcmp(ek, pre, pl) != 0 || ts_key_next(ek, ekl, &off, &it) != 1 || it.i > now)
            break;
        (*n)++;
    }
    tsix_cursor_close(&c);
    return rc == TS_ERR_NOT_FOUND ? TS_OK : rc;
}

int ts_count_rows(ts_db *db, const char *table, int64_t *out)
{
    stmt s;
    int rc = stmt_begin(db, table, 0, &s);
    if (!rc) rc = need(db, out, "out");
    int64_t n = 0, gone = 0;
    uint64_t space = s.t ? tsrow_space(s.t, s.w.space) : 0;
    if (!rc) rc = tstbl_count(&db->tables, s.c.tx, s.t, space, &n);
    if (!rc) rc = expired_rows(s.t, s.c.tx, space, &gone);
    if (!rc) *out = n - gone;
    return stmt_end(db, &s, rc);
}

/* ---- batches ---------------------------------------------------------- */

static int batch(ts_db *db, const char *table, const json_t *records, int allow_partial,
                 json_t **report_out_new, int upsert)
{
    if (report_out_new) *report_out_new = NULL;
    stmt s;
    int rc = stmt_begin(db, table, 1, &s);
    if (!rc && !json_is_array(records))
        rc = tsenv_error(&db->env, records ? TS_ERR_VALIDATION : TS_ERR_INVALID,
                         "records must be a JSON array of objects");
    if (rc) return stmt_end(db, &s, rc);
    json_t *ok = json_array(), *failed = json_array(), *errors = json_array();
    if (!ok || !failed || !errors) rc = tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    /* per-record undo when failures are skipped; whole-batch undo inside an
     * explicit transaction (an implicit one simply rolls back) */
    s.w.undo_on = allow_partial || !s.c.owned;
    int first = 0;
    size_t n = json_array_size(records), nfail = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const json_t *rec = json_array_get(records, i);
        size_t mark = s.w.nundo;
        json_t *pk = NULL;
        int r = upsert ? tswrite_upsert(&s.w, s.t, rec, &pk) : tswrite_insert(&s.w, s.t, rec, &pk);
        if (r >= 0) {
            json_array_append_new(ok, pk);
            /* inside an explicit transaction the undo stays: a savepoint
             * may need it (stmt_end hands it over or drops it) */
            if (allow_partial && s.c.owned) tsw_forget(&s.w, mark);
            continue;
        }
        json_decref(pk);
        if (tscall_fatal(r)) { rc = r; break; }
        if (!first) first = r;
        nfail++;
        const json_t *given = json_is_object(rec) ? json_object_get(rec, s.t->def->cols[0].name) : NULL;
        json_array_append_new(failed, given && !json_is_null(given) ? json_incref((json_t *)given)
                                                                     : json_integer((json_int_t)i));
        json_array_append_new(errors, json_pack("{s:I, s:i, s:s}", "index", (json_int_t)i, "code", r,
                                                "message", ts_errmsg(db)));
        if (s.w.undo_on && tsw_undo_to(&s.w, mark)) { tscall_poison(&s.c); rc = r; break; }
        if (!allow_partial) { rc = r; break; }
    }
    if (!rc && nfail) rc = nfail == n ? first : TS_PARTIAL;
    if (rc == first && first) tsenv_error(&db->env, first, "%s", json_string_value(
        json_object_get(json_array_get(errors, 0), "message")));
    json_t *report = json_pack("{s:o, s:o, s:o}", "successKeys", ok, "failedKeys", failed,
                               "errors", errors);
    rc = stmt_end(db, &s, rc);
    if (report_out_new && report && rc != TS_ERR_NOMEM) {
        if (rc < 0 && !allow_partial) json_array_clear(json_object_get(report, "successKeys"));
        *report_out_new = report;
    } else {
        json_decref(report);
    }
    return rc;
}

int ts_batch_insert(ts_db *db, const char *table, const json_t *records, int allow_partial,
                    json_t **report_out_new)
{
    return batch(db, table, records, allow_partial, report_out_new, 0);
}

int ts_batch_upsert(ts_db *db, const char *table, const json_t *records, int allow_partial,
                    json_t **report_out_new)
{
    return batch(db, table, records, allow_partial, report_out_new, 1);
}

/* ---- hooks for other parts of the API ----------------------------------- */

int tsapi_tables_purge_space(ts_db *db, tstx *tx, uint64_t id)
{
    tsw w;
    tsw_init(&w, &db->tables, tx, id, 0);
    int rc = tswrite_purge_space(&w, id);
    tsw_done(&w);
    return rc;
}

int tsapi_tables_stats(ts_db *db, json_t *stats)
{
    tscall c;
    int rc = tscall_begin(db, 0, &c);
    if (rc) return rc;
    uint64_t space = cur_space(db);
    int64_t rows = 0, tables = 0;
    pthread_mutex_lock(&db->tables.lock);
    size_t n = db->tables.n;
    for (size_t i = 0; i < n && !rc; i++) {
        tstbl *t = db->tables.t[i];
        int64_t k = 0, gone = 0;
        if (!tstbl_visible(t, c.tx)) continue;
        tables++;
        rc = tstbl_count(&db->tables, c.tx, t, tsrow_space(t, space), &k);
        if (!rc) rc = expired_rows(t, c.tx, tsrow_space(t, space), &gone);
        rows += k - gone;
    }
    pthread_mutex_unlock(&db->tables.lock);
    if (!rc) {
        uint64_t sets, bytes, hits, builds, patches;
        tsapi_vcache_stats(db, &sets, &bytes, &hits, &builds, &patches);
        json_object_set_new(stats, "tables", json_integer((json_int_t)tables));
        json_object_set_new(stats, "rows", json_integer((json_int_t)rows));
        json_object_set_new(stats, "vectorSets", json_integer((json_int_t)sets));
        json_object_set_new(stats, "vectorSetBytes", json_integer((json_int_t)bytes));
        json_object_set_new(stats, "vectorSetHits", json_integer((json_int_t)hits));
        json_object_set_new(stats, "vectorSetBuilds", json_integer((json_int_t)builds));
        json_object_set_new(stats, "vectorSetPatches", json_integer((json_int_t)patches));
    }
    return tscall_end(&c, rc);
}
