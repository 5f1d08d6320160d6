/*
 * Helpers shared by the table and query test suites (test_tables*.c,
 * test_query*.c, test_migration.c, test_schema_update.c, test_savepoint.c,
 * test_vector.c): pools of JSON values and strings released by teardown,
 * J() for JSON written with single quotes, opening a database in the
 * suite's temporary folder, and small accessors.  Define TT_NAME (the
 * temporary folder's name) and optionally TT_DEFAULTS before including.
 * Public header only.
 */
#ifndef TS_TEST_TABLES_SUPPORT_H
#define TS_TEST_TABLES_SUPPORT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/tostore.h>
#include "tsupport.h"

/* ---- helpers ----------------------------------------------------------- */

static char *dir;

/* Every JSON value a test makes is kept here and released by teardown. */
enum { POOL_MAX = 16384 };
static json_t *pool[POOL_MAX];
static size_t npool;

/* Check's ck_assert_* report every passing check to the parent process;
 * keep() is called in hot loops, so it calls Check only on failure. */
static inline json_t *keep(json_t *v)
{
    if (!v || npool >= POOL_MAX) ck_abort_msg(v ? "JSON pool full (%d)" : "NULL JSON value", POOL_MAX);
    pool[npool++] = v;
    return v;
}

/* Parse printf-formatted JSON text with ' for " (any JSON value). */
static inline json_t *J(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline json_t *J(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    ck_assert_msg(v != NULL, "bad test JSON %s: %s", s, e.text);
    free(s);
    return keep(v);
}

/* Strings (malloc'd) kept the same way. */
static char *spool[POOL_MAX];
static size_t nspool;

static inline char *keep_str(char *s)
{
    if (!s || nspool >= POOL_MAX) ck_abort_msg(s ? "string pool full (%d)" : "NULL string", POOL_MAX);
    spool[nspool++] = s;
    return s;
}

static inline json_t *I(json_int_t x) { return keep(json_integer(x)); }
static inline json_t *S(const char *s) { return keep(json_string(s)); }

static inline ts_db *open_cfg(const char *cfg)
{
    ts_db *db = NULL;
    int rc = ts_open_json(cfg, &db);
    ck_assert_msg(rc == TS_OK, "open %s: %d %s", cfg, rc, ts_errmsg(NULL));
    ck_assert_ptr_nonnull(db);
    return db;
}

/* TT_DEFAULTS (optional): config keys every open of the suite adds, such
 * as "\"durability\": \"normal\"". */
#ifndef TT_DEFAULTS
#define TT_DEFAULTS NULL
#endif

static inline ts_db *open_db(const char *extra)
{
    char cfg[1024];
    const char *d = TT_DEFAULTS;
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"%s%s%s%s}", dir, d ? ", " : "", d ? d : "",
             extra ? ", " : "", extra ? extra : "");
    return open_cfg(cfg);
}

static inline ts_db *reopen(ts_db *db)
{
    ck_assert_int_eq(ts_close(db), TS_OK);
    return open_db(NULL);
}

static inline void setup(void) { dir = tst_tmpdir(TT_NAME); }

static inline void teardown(void)
{
    while (npool) json_decref(pool[--npool]);
    while (nspool) free(spool[--nspool]);
    tst_rmrf(dir);
    free(dir);
}

static inline int create_rc(ts_db *db, const char *schema_text)
{
    return ts_create_table(db, J("%s", schema_text));
}

static inline void create(ts_db *db, const char *schema_text)
{
    int rc = create_rc(db, schema_text);
    ck_assert_msg(rc == TS_OK, "create %s: %d %s", schema_text, rc, ts_errmsg(db));
}

/* Insert; returns the status, *pk (may be NULL) the key (kept). */
static inline int ins_rc(ts_db *db, const char *t, const char *rec, json_t **pk)
{
    json_t *out = NULL;
    int rc = ts_insert(db, t, J("%s", rec), pk ? &out : NULL);
    if (out) keep(out);
    if (pk) *pk = out;
    return rc;
}

/* Insert that must succeed; returns the key. */
static inline json_t *ins(ts_db *db, const char *t, const char *rec)
{
    json_t *pk = NULL;
    int rc = ins_rc(db, t, rec, &pk);
    ck_assert_msg(rc == TS_OK, "insert %s into %s: %d %s", rec, t, rc, ts_errmsg(db));
    ck_assert_msg(pk != NULL, "insert %s into %s: no key returned", rec, t);
    return pk;
}

/* Insert that must succeed with an integer key; returns it. */
static inline json_int_t ins_i(ts_db *db, const char *t, const char *rec)
{
    json_t *pk = ins(db, t, rec);
    ck_assert_msg(json_is_integer(pk), "insert %s into %s: key is not an integer", rec, t);
    return json_integer_value(pk);
}

static inline int get_rc(ts_db *db, const char *t, const json_t *pk)
{
    json_t *row = NULL;
    int rc = ts_get(db, t, pk, &row);
    if (rc == TS_OK) ck_assert_ptr_nonnull(row);
    if (row) keep(row);
    return rc;
}

static inline json_t *row_of(ts_db *db, const char *t, const json_t *pk)
{
    json_t *row = NULL;
    int rc = ts_get(db, t, pk, &row);
    char *k = json_dumps(pk, JSON_ENCODE_ANY);
    ck_assert_msg(rc == TS_OK, "get %s[%s]: %d %s", t, k, rc, ts_errmsg(db));
    free(k);
    ck_assert(json_is_object(row));
    return keep(row);
}

static inline json_t *row_i(ts_db *db, const char *t, json_int_t id) { return row_of(db, t, I(id)); }

static inline int64_t count(ts_db *db, const char *t)
{
    int64_t n = -1;
    int rc = ts_count_rows(db, t, &n);
    ck_assert_msg(rc == TS_OK, "count %s: %d %s", t, rc, ts_errmsg(db));
    return n;
}

static inline json_int_t fint(const json_t *row, const char *f)
{
    json_t *v = json_object_get(row, f);
    ck_assert_msg(json_is_integer(v), "field %s is not an integer", f);
    return json_integer_value(v);
}

static inline const char *fstr(const json_t *row, const char *f)
{
    json_t *v = json_object_get(row, f);
    ck_assert_msg(json_is_string(v), "field %s is not a string", f);
    return json_string_value(v);
}

/* A field that is null (or left out of the row). */
static inline int fnull(const json_t *row, const char *f)
{
    json_t *v = json_object_get(row, f);
    return v == NULL || json_is_null(v);
}

static inline json_t *tables(ts_db *db)
{
    json_t *out = NULL;
    ck_assert_int_eq(ts_list_tables(db, &out), TS_OK);
    ck_assert(json_is_array(out));
    return keep(out);
}

#endif
