/*
 * Schema migration through the public header only (docs/migration.md):
 * ts_sync_schemas / ts_sync_schemas_report and "schemas" in the config.
 * Every change kind (fields added, removed, renamed by fieldId or
 * inferred, ambiguous renames as drop + add, type changes, indexes added
 * and removed, tables renamed by tableId or inferred, foreign keys of kept
 * tables following a rename, tables kept or dropped), the refusals (data
 * untouched) and allowLossy, migration at open, dry runs, key generators,
 * spaces, and a power loss in the middle of a migration (faulty backend).
 *
 * JSON in the tests is written with single quotes (J() turns them into
 * double quotes), so no test value contains an apostrophe.
 */
#include <stdio.h>
#include <stdlib.h>
#define TT_NAME "migration"
#include "tables_support.h"

/* ---- helpers beyond tables_support.h --------------------------------- */

static char *dump(const json_t *v)
{
    static char buf[4][4096];
    static int k;
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    char *out = buf[k++ & 3];
    snprintf(out, 4096, "%s", s ? s : "(null)");
    free(s);
    return out;
}

static ts_db *open_at(const char *path, const char *extra)
{
    char *cfg = NULL;
    ck_assert_int_ge(asprintf(&cfg, "{\"path\": \"%s\"%s%s}", path, extra ? ", " : "",
                              extra ? extra : ""), 0);
    ts_db *db = open_cfg(cfg);
    free(cfg);
    return db;
}

/* The config text {"path": dir, "schemas": <schemas_text>, extra...}
 * (schemas_text with ' for "); the caller frees it. */
static char *cfg_with_schemas(const char *schemas_text, const char *extra)
{
    json_t *cfg = J("{'path': '%s'}", dir);
    json_object_set(cfg, "schemas", J("%s", schemas_text));
    if (extra) json_object_update(cfg, J("{%s}", extra));
    char *text = json_dumps(cfg, 0);
    ck_assert_ptr_nonnull(text);
    return text;
}

static json_t *schema(ts_db *db, const char *t)
{
    json_t *s = NULL;
    int rc = ts_get_schema(db, t, &s);
    ck_assert_msg(rc == TS_OK, "schema %s: %d %s", t, rc, ts_errmsg(db));
    return keep(s);
}

/* The field named f of a canonical schema, or NULL. */
static json_t *field_of(const json_t *s, const char *f)
{
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(s, "fields"), i, x)
        if (strcmp(json_string_value(json_object_get(x, "name")), f) == 0) return x;
    return NULL;
}

/* Every row of t (current space), in key order. */
static json_t *all_rows(ts_db *db, const char *t)
{
    ts_query *q = ts_limit(ts_query_new(db, t), 1000000);
    ts_result *r = NULL;
    int rc = ts_query_exec(q, &r);
    ck_assert_msg(rc == TS_OK, "query %s: %d %s", t, rc, ts_errmsg(db));
    json_t *a = json_array();
    for (size_t i = 0; i < ts_result_count(r); i++)
        json_array_append(a, (json_t *)ts_result_row(r, i));
    ts_result_free(r);
    ts_query_free(q);
    return keep(a);
}

/* The ids of the rows of t where field op value, as "1,2,3". */
static const char *where_ids(ts_db *db, const char *t, const char *f, const char *op, json_t *v)
{
    static char buf[4][512];
    static int k;
    char *out = buf[k++ & 3];
    ts_query *q = ts_where(ts_query_new(db, t), f, op, v);
    ts_result *r = NULL;
    int rc = ts_query_exec(q, &r);
    ck_assert_msg(rc == TS_OK, "query %s.%s: %d %s", t, f, rc, ts_errmsg(db));
    out[0] = 0;
    for (size_t i = 0; i < ts_result_count(r); i++) {
        size_t l = strlen(out);
        snprintf(out + l, 512 - l, "%s%lld", i ? "," : "",
                 (long long)json_integer_value(json_object_get(ts_result_row(r, i), "id")));
    }
    ts_result_free(r);
    ts_query_free(q);
    return out;
}

/* The explain plan of "t where f = v". */
static json_t *explain_eq(ts_db *db, const char *t, const char *f, json_t *v)
{
    ts_query *q = ts_where(ts_query_new(db, t), f, "=", v);
    json_t *p = NULL;
    int rc = ts_query_explain(q, &p);
    ck_assert_msg(rc == TS_OK, "explain %s.%s: %d %s", t, f, rc, ts_errmsg(db));
    ts_query_free(q);
    return keep(p);
}

static int sync_rc(ts_db *db, const char *schemas_text)
{
    return ts_sync_schemas(db, J("%s", schemas_text));
}

/* Sync (or plan with dry) that must succeed; returns the report. */
static json_t *sync_rep(ts_db *db, const char *schemas_text, int dry)
{
    json_t *rep = NULL;
    int rc = ts_sync_schemas_report(db, J("%s", schemas_text), dry, &rep);
    ck_assert_msg(rc == TS_OK, "sync %s: %d %s", schemas_text, rc, ts_errmsg(db));
    ck_assert_msg(json_is_array(rep), "sync %s: no report", schemas_text);
    return keep(rep);
}

/* The report's entry for table t (asserts there is one). */
static json_t *entry(const json_t *rep, const char *t)
{
    size_t i;
    json_t *e;
    json_array_foreach(rep, i, e)
        if (strcmp(json_string_value(json_object_get(e, "table")), t) == 0) return e;
    ck_abort_msg("no report entry for %s in %s", t, dump(rep));
    return NULL;
}

static const char *action(const json_t *rep, const char *t)
{
    return fstr(entry(rep, t), "action");
}

static json_t *efields(const json_t *rep, const char *t, const char *k)
{
    json_t *f = json_object_get(json_object_get(entry(rep, t), "fields"), k);
    ck_assert_msg(f != NULL, "report %s: no fields.%s in %s", t, k, dump(rep));
    return f;
}

#define ASSERT_JSON(got, want_text)                                                        \
    do {                                                                                   \
        json_t *w_ = J("%s", want_text);                                                   \
        ck_assert_msg(json_equal((got), w_), "expected %s, got %s", dump(w_), dump(got)); \
    } while (0)

#define ASSERT_MSG_HAS(msg, part) \
    ck_assert_msg(strstr((msg), (part)) != NULL, "message '%s' lacks '%s'", (msg), (part))

/* ---- fields ------------------------------------------------------------- */

START_TEST(add_field_with_default)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'name', 'type': 'text'}]}");
    for (int i = 0; i < 3; i++) ins_i(db, "t", "{'name': 'x'}");
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'name', 'type': 'text'},"
                               "{'name': 'status', 'type': 'text', 'defaultValue': 'new'},"
                               "{'name': 'score', 'type': 'integer', 'nullable': false, 'defaultValue': 7},"
                               "{'name': 'note', 'type': 'text'}]}]",
                           0);
    ck_assert_str_eq(action(rep, "t"), "changed");
    ASSERT_JSON(efields(rep, "t", "added"), "['status', 'score', 'note']");
    ASSERT_JSON(efields(rep, "t", "removed"), "[]");
    ASSERT_JSON(efields(rep, "t", "renamed"), "{}");
    ck_assert_int_eq(fint(entry(rep, "t"), "rows"), 3);
    ck_assert_int_eq(fint(entry(rep, "t"), "rowsDropped"), 0);
    for (int i = 1; i <= 3; i++) {
        json_t *r = row_i(db, "t", i);
        ck_assert_str_eq(fstr(r, "name"), "x");
        ck_assert_str_eq(fstr(r, "status"), "new");
        ck_assert_int_eq(fint(r, "score"), 7);
        ck_assert(fnull(r, "note"));
    }
    ck_assert_str_eq(where_ids(db, "t", "status", "=", S("new")), "1,2,3");
    ck_assert_int_eq(count(db, "t"), 3);
    /* the same list again: unchanged */
    rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'name', 'type': 'text'},"
                       "{'name': 'status', 'type': 'text', 'defaultValue': 'new'},"
                       "{'name': 'score', 'type': 'integer', 'nullable': false, 'defaultValue': 7},"
                       "{'name': 'note', 'type': 'text'}]}]",
                   0);
    ck_assert_str_eq(action(rep, "t"), "unchanged");
    db = reopen(db);
    ck_assert_str_eq(fstr(row_i(db, "t", 2), "status"), "new");
    ck_assert_ptr_nonnull(field_of(schema(db, "t"), "score"));
    ts_close(db);
}
END_TEST

START_TEST(remove_field)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'name', 'type': 'text'},"
               "{'name': 'age', 'type': 'integer', 'createIndex': true}]}");
    ins_i(db, "t", "{'name': 'a', 'age': 30}");
    ins_i(db, "t", "{'name': 'b', 'age': 40}");
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'name', 'type': 'text'}]}]", 0);
    ck_assert_str_eq(action(rep, "t"), "changed");
    ASSERT_JSON(efields(rep, "t", "removed"), "['age']");
    ASSERT_JSON(efields(rep, "t", "added"), "[]");
    json_t *r = row_i(db, "t", 2);
    ck_assert_str_eq(fstr(r, "name"), "b");
    ck_assert_ptr_null(json_object_get(r, "age"));
    ck_assert_ptr_null(field_of(schema(db, "t"), "age"));
    /* the field is gone: writing or querying it is refused */
    ck_assert_int_eq(ins_rc(db, "t", "{'name': 'c', 'age': 1}", NULL), TS_ERR_VALIDATION);
    ts_query *q = ts_where(ts_query_new(db, "t"), "age", "=", I(30));
    ts_result *res = NULL;
    ck_assert_int_eq(ts_query_exec(q, &res), TS_ERR_VALIDATION);
    ts_query_free(q);
    ck_assert_int_eq(count(db, "t"), 2);
    db = reopen(db);
    ck_assert_ptr_null(json_object_get(row_i(db, "t", 1), "age"));
    ts_close(db);
}
END_TEST

START_TEST(rename_by_field_id)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'a', 'type': 'text', 'fieldId': 'F1'},"
               "{'name': 'b', 'type': 'integer', 'fieldId': 'F2'}]}");
    ins_i(db, "t", "{'a': 'one', 'b': 1}");
    ins_i(db, "t", "{'a': 'two', 'b': 2}");
    /* a -> c (same id), b -> a (same id): a swap through ids, not names; and
     * a new field takes the name b */
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': ["
                               "{'name': 'c', 'type': 'text', 'fieldId': 'F1'},"
                               "{'name': 'a', 'type': 'integer', 'fieldId': 'F2'},"
                               "{'name': 'b', 'type': 'text', 'fieldId': 'F3', 'defaultValue': 'd'}]}]",
                           0);
    ASSERT_JSON(efields(rep, "t", "renamed"), "{'a': 'c', 'b': 'a'}");
    ASSERT_JSON(efields(rep, "t", "added"), "['b']");
    ASSERT_JSON(efields(rep, "t", "removed"), "[]");
    json_t *r = row_i(db, "t", 2);
    ck_assert_str_eq(fstr(r, "c"), "two");
    ck_assert_int_eq(fint(r, "a"), 2);
    ck_assert_str_eq(fstr(r, "b"), "d");
    ck_assert_str_eq(where_ids(db, "t", "c", "=", S("one")), "1");
    /* a renamed field whose definition changes too (still a rename by id) */
    rep = sync_rep(db, "[{'name': 't', 'fields': ["
                       "{'name': 'cc', 'type': 'text', 'fieldId': 'F1', 'maxLength': 50},"
                       "{'name': 'a', 'type': 'integer', 'fieldId': 'F2'},"
                       "{'name': 'b', 'type': 'text', 'fieldId': 'F3', 'defaultValue': 'd'}]}]",
                   0);
    ASSERT_JSON(efields(rep, "t", "renamed"), "{'c': 'cc'}");
    ck_assert_str_eq(fstr(row_i(db, "t", 1), "cc"), "one");
    db = reopen(db);
    ck_assert_str_eq(fstr(row_i(db, "t", 1), "cc"), "one");
    ck_assert_int_eq(fint(row_i(db, "t", 1), "a"), 1);
    ts_close(db);
}
END_TEST

/* KERNEL BUG (kernel/table/migrate.c same_field): the definitions are
 * compared with json_equal(default_value, ...), json_equal(min_value_json,
 * ...), json_equal(max_value_json, ...); json_equal(NULL, NULL) is 0, so a
 * field without a default or without bounds (every text field) is never
 * "the same definition": the rename becomes a drop plus an add and the
 * column's values are lost.  Only a field with a default, minValue and
 * maxValue is inferred (the first half below passes). */
START_TEST(rename_inferred)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'keep', 'type': 'integer'},"
               "{'name': 'nick', 'type': 'text', 'maxLength': 20},"
               "{'name': 'lvl', 'type': 'integer', 'defaultValue': 1, 'minValue': 0, 'maxValue': 9}]}");
    ins_i(db, "t", "{'keep': 1, 'nick': 'al', 'lvl': 3}");
    ins_i(db, "t", "{'keep': 2, 'nick': 'bo', 'lvl': 4}");
    /* a field with every option set (default, minValue, maxValue) */
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'keep', 'type': 'integer'},"
                               "{'name': 'nick', 'type': 'text', 'maxLength': 20},"
                               "{'name': 'level', 'type': 'integer', 'defaultValue': 1, 'minValue': 0, 'maxValue': 9}]}]",
                           0);
    ASSERT_JSON(efields(rep, "t", "renamed"), "{'lvl': 'level'}");
    ASSERT_JSON(efields(rep, "t", "added"), "[]");
    ASSERT_JSON(efields(rep, "t", "removed"), "[]");
    ck_assert_int_eq(fint(row_i(db, "t", 2), "level"), 4);
    /* a plain field (no default, no bounds): the common case */
    rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'keep', 'type': 'integer'},"
                       "{'name': 'alias', 'type': 'text', 'maxLength': 20},"
                       "{'name': 'level', 'type': 'integer', 'defaultValue': 1, 'minValue': 0, 'maxValue': 9}]}]",
                   0);
    ASSERT_JSON(efields(rep, "t", "renamed"), "{'nick': 'alias'}");
    ASSERT_JSON(efields(rep, "t", "added"), "[]");
    ASSERT_JSON(efields(rep, "t", "removed"), "[]");
    json_t *r = row_i(db, "t", 2);
    ck_assert_str_eq(fstr(r, "alias"), "bo");
    ck_assert_ptr_null(json_object_get(r, "nick"));
    ck_assert_int_eq(fint(r, "keep"), 2);
    ts_close(db);
}
END_TEST

START_TEST(rename_ambiguous_is_drop_add)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'a', 'type': 'text'}, {'name': 'b', 'type': 'text'}]}");
    ins_i(db, "t", "{'a': 'A', 'b': 'B'}");
    /* two removed and two added with the same definition: no rename */
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'c', 'type': 'text'},"
                               "{'name': 'd', 'type': 'text'}]}]",
                           0);
    ASSERT_JSON(efields(rep, "t", "renamed"), "{}");
    ASSERT_JSON(efields(rep, "t", "added"), "['c', 'd']");
    ASSERT_JSON(efields(rep, "t", "removed"), "['a', 'b']");
    json_t *r = row_i(db, "t", 1);
    ck_assert(fnull(r, "c"));
    ck_assert(fnull(r, "d"));
    ck_assert_ptr_null(json_object_get(r, "a"));
    /* one removed and one added with another definition: no rename */
    ck_assert_int_eq(ts_update(db, "t", I(1), J("{'c': 'C'}")), TS_OK);
    rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'e', 'type': 'text', 'maxLength': 5},"
                       "{'name': 'd', 'type': 'text'}]}]",
                   0);
    ASSERT_JSON(efields(rep, "t", "renamed"), "{}");
    ASSERT_JSON(efields(rep, "t", "added"), "['e']");
    ASSERT_JSON(efields(rep, "t", "removed"), "['c']");
    ck_assert(fnull(row_i(db, "t", 1), "e"));
    ts_close(db);
}
END_TEST

START_TEST(type_changes)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'n', 'type': 'integer'},"
               "{'name': 's', 'type': 'text'}]}");
    ins_i(db, "t", "{'n': 5, 's': '20'}");
    ins_i(db, "t", "{'n': -12, 's': '-3'}");
    ins_i(db, "t", "{'n': null, 's': null}");
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'n', 'type': 'text'},"
                               "{'name': 's', 'type': 'integer'}]}]",
                           0);
    ck_assert_str_eq(action(rep, "t"), "changed");
    ASSERT_JSON(efields(rep, "t", "renamed"), "{}");
    ASSERT_JSON(efields(rep, "t", "added"), "[]");
    ASSERT_JSON(efields(rep, "t", "removed"), "[]");
    ck_assert_str_eq(fstr(row_i(db, "t", 1), "n"), "5");
    ck_assert_int_eq(fint(row_i(db, "t", 1), "s"), 20);
    ck_assert_str_eq(fstr(row_i(db, "t", 2), "n"), "-12");
    ck_assert_int_eq(fint(row_i(db, "t", 2), "s"), -3);
    ck_assert(fnull(row_i(db, "t", 3), "n"));
    ck_assert(fnull(row_i(db, "t", 3), "s"));
    /* the new types hold: integer order on s, text on n */
    ck_assert_str_eq(where_ids(db, "t", "s", ">", I(0)), "1");
    ck_assert_str_eq(where_ids(db, "t", "n", "LIKE", S("-%")), "2");
    ck_assert_int_eq(ins_rc(db, "t", "{'s': 'abc'}", NULL), TS_ERR_VALIDATION);
    db = reopen(db);
    ck_assert_str_eq(fstr(row_i(db, "t", 1), "n"), "5");
    ck_assert_int_eq(fint(row_i(db, "t", 1), "s"), 20);
    ts_close(db);
}
END_TEST

/* ---- indexes ------------------------------------------------------------ */

START_TEST(add_and_remove_indexes)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'email', 'type': 'text'},"
               "{'name': 'city', 'type': 'text'}, {'name': 'zip', 'type': 'integer'}]}");
    for (int i = 0; i < 50; i++) {
        char rec[128];
        snprintf(rec, sizeof rec, "{'email': 'u%d@x', 'city': 'c%d', 'zip': %d}", i, i % 5, i % 7);
        ins_i(db, "t", rec);
    }
    ck_assert_str_eq(fstr(explain_eq(db, "t", "email", S("u7@x")), "plan"), "fullScan");
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'email', 'type': 'text', 'unique': true},"
                               "{'name': 'city', 'type': 'text', 'createIndex': true},"
                               "{'name': 'zip', 'type': 'integer'}],"
                               "'indexes': [{'fields': ['zip', 'city'], 'indexName': 'zc'}]}]",
                           0);
    ck_assert_str_eq(action(rep, "t"), "changed");
    json_t *p = explain_eq(db, "t", "email", S("u7@x"));
    ck_assert_str_eq(fstr(p, "plan"), "indexLookup");
    ck_assert_str_eq(fstr(p, "index"), "uniq_email");
    ck_assert_str_eq(where_ids(db, "t", "email", "=", S("u7@x")), "8");
    p = explain_eq(db, "t", "city", S("c3"));
    ck_assert_str_eq(fstr(p, "plan"), "indexLookup");
    ck_assert_str_eq(fstr(p, "index"), "idx_city");
    ck_assert_str_eq(where_ids(db, "t", "city", "=", S("c3")), "4,9,14,19,24,29,34,39,44,49");
    ts_query *q = ts_where(ts_where(ts_query_new(db, "t"), "zip", "=", I(3)), "city", "=", S("c3"));
    json_t *pl = NULL;
    ck_assert_int_eq(ts_query_explain(q, &pl), TS_OK);
    keep(pl);
    ck_assert_str_eq(fstr(pl, "plan"), "indexLookup");
    ck_assert_str_eq(fstr(pl, "index"), "zc");
    ck_assert_int_eq(fint(pl, "rowsReturned"), 2); /* ids 4 and 39 */
    ts_query_free(q);
    /* the unique index is enforced on the migrated rows */
    ck_assert_int_eq(ins_rc(db, "t", "{'email': 'u3@x'}", NULL), TS_ERR_UNIQUE);
    /* survives reopen */
    db = reopen(db);
    ck_assert_str_eq(fstr(explain_eq(db, "t", "email", S("u9@x")), "plan"), "indexLookup");
    ck_assert_str_eq(where_ids(db, "t", "email", "=", S("u9@x")), "10");

    /* remove them again */
    rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'email', 'type': 'text'},"
                       "{'name': 'city', 'type': 'text'}, {'name': 'zip', 'type': 'integer'}]}]",
                   0);
    ck_assert_str_eq(action(rep, "t"), "changed");
    ck_assert_str_eq(fstr(explain_eq(db, "t", "email", S("u7@x")), "plan"), "fullScan");
    ck_assert_str_eq(fstr(explain_eq(db, "t", "city", S("c3")), "plan"), "fullScan");
    ck_assert_uint_eq(json_array_size(json_object_get(schema(db, "t"), "indexes")), 0);
    ck_assert_str_eq(where_ids(db, "t", "email", "=", S("u7@x")), "8");
    /* no longer unique */
    ck_assert_int_eq(ins_i(db, "t", "{'email': 'u3@x'}"), 51);
    ck_assert_int_eq(count(db, "t"), 51);
    ts_close(db);
}
END_TEST

/* ---- tables ------------------------------------------------------------- */

START_TEST(table_rename_by_id)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'users', 'tableId': 'U', 'fields': [{'name': 'name', 'type': 'text'}]}");
    ins_i(db, "users", "{'name': 'a'}");
    ins_i(db, "users", "{'name': 'b'}");
    /* renamed and changed at once, and another table takes the old name */
    json_t *rep = sync_rep(db, "[{'name': 'people', 'tableId': 'U', 'fields': [{'name': 'name', 'type': 'text'},"
                               "{'name': 'x', 'type': 'integer', 'defaultValue': 1}]},"
                               "{'name': 'users', 'fields': [{'name': 'z', 'type': 'text'}]}]",
                           0);
    ck_assert_str_eq(action(rep, "people"), "renamed");
    ck_assert_str_eq(fstr(entry(rep, "people"), "from"), "users");
    ck_assert_str_eq(action(rep, "users"), "created");
    ASSERT_JSON(tables(db), "['people', 'users']");
    ck_assert_int_eq(count(db, "people"), 2);
    ck_assert_int_eq(count(db, "users"), 0);
    ck_assert_str_eq(fstr(row_i(db, "people", 2), "name"), "b");
    ck_assert_int_eq(fint(row_i(db, "people", 2), "x"), 1);
    ck_assert_str_eq(fstr(schema(db, "people"), "tableId"), "U");
    db = reopen(db);
    ASSERT_JSON(tables(db), "['people', 'users']");
    ck_assert_str_eq(fstr(row_i(db, "people", 1), "name"), "a");
    ck_assert_int_eq(ins_i(db, "people", "{'name': 'c'}"), 3);
    ts_close(db);
}
END_TEST

START_TEST(table_rename_inferred)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'old_t', 'fields': [{'name': 'v', 'type': 'integer'}]}");
    create(db, "{'name': 'other', 'fields': [{'name': 'w', 'type': 'text'}]}");
    ins_i(db, "old_t", "{'v': 10}");
    ins_i(db, "other", "{'w': 'x'}");
    json_t *rep = sync_rep(db, "[{'name': 'new_t', 'fields': [{'name': 'v', 'type': 'integer'}]},"
                               "{'name': 'other', 'fields': [{'name': 'w', 'type': 'text'}]}]",
                           0);
    ck_assert_str_eq(action(rep, "new_t"), "renamed");
    ck_assert_str_eq(fstr(entry(rep, "new_t"), "from"), "old_t");
    ck_assert_str_eq(action(rep, "other"), "unchanged");
    ASSERT_JSON(tables(db), "['new_t', 'other']");
    ck_assert_int_eq(fint(row_i(db, "new_t", 1), "v"), 10);

    /* ambiguous: two stored tables with the same definition left over, two
     * new ones: no rename, both created and the old ones kept */
    create(db, "{'name': 'p1', 'fields': [{'name': 'q', 'type': 'text'}]}");
    create(db, "{'name': 'p2', 'fields': [{'name': 'q', 'type': 'text'}]}");
    ins_i(db, "p1", "{'q': 'one'}");
    rep = sync_rep(db, "[{'name': 'new_t', 'fields': [{'name': 'v', 'type': 'integer'}]},"
                       "{'name': 'other', 'fields': [{'name': 'w', 'type': 'text'}]},"
                       "{'name': 'r1', 'fields': [{'name': 'q', 'type': 'text'}]},"
                       "{'name': 'r2', 'fields': [{'name': 'q', 'type': 'text'}]}]",
                   0);
    ck_assert_str_eq(action(rep, "r1"), "created");
    ck_assert_str_eq(action(rep, "r2"), "created");
    ck_assert_str_eq(action(rep, "p1"), "kept");
    ck_assert_str_eq(action(rep, "p2"), "kept");
    ASSERT_JSON(tables(db), "['new_t', 'other', 'p1', 'p2', 'r1', 'r2']");
    ck_assert_int_eq(count(db, "p1"), 1);
    ck_assert_int_eq(count(db, "r1"), 0);
    ts_close(db);
}
END_TEST

START_TEST(foreign_keys_follow_rename)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'users', 'tableId': 'U', 'fields': ["
               "{'name': 'code', 'type': 'text', 'unique': true, 'fieldId': 'C'}]}");
    create(db, "{'name': 'posts', 'fields': [{'name': 'uid', 'type': 'integer'},"
               "{'name': 'ucode', 'type': 'text'}], 'foreignKeys': ["
               "{'fields': ['uid'], 'referencedTable': 'users', 'referencedFields': ['id']},"
               "{'fields': ['ucode'], 'referencedTable': 'users', 'referencedFields': ['code']}]}");
    ins_i(db, "users", "{'code': 'a'}");
    ins_i(db, "users", "{'code': 'b'}");
    ins_i(db, "posts", "{'uid': 1, 'ucode': 'a'}");
    ins_i(db, "posts", "{'uid': 2, 'ucode': 'b'}");
    /* posts is left out (kept); users becomes people, code becomes handle */
    json_t *rep = sync_rep(db, "[{'name': 'people', 'tableId': 'U', 'fields': ["
                               "{'name': 'handle', 'type': 'text', 'unique': true, 'fieldId': 'C'}]}]",
                           0);
    ck_assert_str_eq(action(rep, "people"), "renamed");
    ASSERT_JSON(efields(rep, "people", "renamed"), "{'code': 'handle'}");
    ck_assert_str_ne(action(rep, "posts"), "dropped");
    ASSERT_JSON(tables(db), "['people', 'posts']");
    json_t *fks = json_object_get(schema(db, "posts"), "foreignKeys");
    ck_assert_uint_eq(json_array_size(fks), 2);
    ck_assert_str_eq(fstr(json_array_get(fks, 0), "referencedTable"), "people");
    ASSERT_JSON(json_object_get(json_array_get(fks, 0), "referencedFields"), "['id']");
    ck_assert_str_eq(fstr(json_array_get(fks, 1), "referencedTable"), "people");
    ASSERT_JSON(json_object_get(json_array_get(fks, 1), "referencedFields"), "['handle']");
    ck_assert_int_eq(count(db, "posts"), 2);
    ck_assert_int_eq(fint(row_i(db, "posts", 2), "uid"), 2);
    /* still enforced, against the renamed table */
    ck_assert_int_eq(ins_rc(db, "posts", "{'uid': 3}", NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ins_rc(db, "posts", "{'ucode': 'zz'}", NULL), TS_ERR_FOREIGN_KEY);
    ins_i(db, "posts", "{'uid': 1, 'ucode': 'b'}");
    ck_assert_int_eq(ts_delete(db, "people", I(1)), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "people"), 2);
    db = reopen(db);
    fks = json_object_get(schema(db, "posts"), "foreignKeys");
    ck_assert_str_eq(fstr(json_array_get(fks, 1), "referencedTable"), "people");
    ck_assert_int_eq(ins_rc(db, "posts", "{'uid': 9}", NULL), TS_ERR_FOREIGN_KEY);
    ts_close(db);
}
END_TEST

START_TEST(missing_tables_kept_or_dropped)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'a', 'fields': [{'name': 'v', 'type': 'integer'}]}");
    create(db, "{'name': 'b', 'fields': [{'name': 'v', 'type': 'text'}]}");
    ins_i(db, "b", "{'v': 'keep me'}");
    json_t *rep = sync_rep(db, "[{'name': 'a', 'fields': [{'name': 'v', 'type': 'integer'}]}]", 0);
    ck_assert_str_eq(action(rep, "b"), "kept");
    ck_assert_str_eq(action(rep, "a"), "unchanged");
    ASSERT_JSON(tables(db), "['a', 'b']");
    ck_assert_str_eq(fstr(row_i(db, "b", 1), "v"), "keep me");
    ts_close(db);

    /* with dropMissingTables, from the handle's config */
    db = open_db("\"migration\": {\"dropMissingTables\": true}");
    rep = sync_rep(db, "[{'name': 'a', 'fields': [{'name': 'v', 'type': 'integer'}]}]", 1);
    ck_assert_str_eq(action(rep, "b"), "dropped");
    ASSERT_JSON(tables(db), "['a', 'b']"); /* dry run */
    rep = sync_rep(db, "[{'name': 'a', 'fields': [{'name': 'v', 'type': 'integer'}]}]", 0);
    ck_assert_str_eq(action(rep, "b"), "dropped");
    ASSERT_JSON(tables(db), "['a']");
    ts_close(db);

    /* and at open */
    db = open_db(NULL);
    create(db, "{'name': 'c', 'fields': []}");
    ts_close(db);
    char *cfg = cfg_with_schemas("[{'name': 'a', 'fields': [{'name': 'v', 'type': 'integer'}]}]", NULL);
    db = open_cfg(cfg);
    ASSERT_JSON(tables(db), "['a', 'c']");
    ts_close(db);
    free(cfg);
    cfg = cfg_with_schemas("[{'name': 'a', 'fields': [{'name': 'v', 'type': 'integer'}]}]",
                           "'migration': {'dropMissingTables': true}");
    db = open_cfg(cfg);
    ASSERT_JSON(tables(db), "['a']");
    ts_close(db);
    free(cfg);

    /* missing tables that reference each other go together, children
     * first, whatever order they were created in */
    db = open_db("\"migration\": {\"dropMissingTables\": true}");
    create(db, "{'name': 'authors', 'fields': [{'name': 'n', 'type': 'text'}]}");
    create(db, "{'name': 'books', 'fields': [{'name': 'aid', 'type': 'integer'}], 'foreignKeys': "
               "[{'fields': ['aid'], 'referencedTable': 'authors', 'referencedFields': ['id']}]}");
    create(db, "{'name': 'reviews', 'fields': [{'name': 'bid', 'type': 'integer'}], 'foreignKeys': "
               "[{'fields': ['bid'], 'referencedTable': 'books', 'referencedFields': ['id']}]}");
    ins_i(db, "authors", "{'n': 'x'}");
    ins_i(db, "books", "{'aid': 1}");
    ins_i(db, "reviews", "{'bid': 1}");
    rep = sync_rep(db, "[{'name': 'a', 'fields': [{'name': 'v', 'type': 'integer'}]}]", 0);
    ck_assert_str_eq(action(rep, "authors"), "dropped");
    ck_assert_str_eq(action(rep, "reviews"), "dropped");
    ASSERT_JSON(tables(db), "['a']");
    /* a kept table still referencing a missing one: refused, nothing changes */
    create(db, "{'name': 'p', 'fields': []}");
    create(db, "{'name': 'q', 'fields': [{'name': 'pid', 'type': 'integer'}], 'foreignKeys': "
               "[{'fields': ['pid'], 'referencedTable': 'p', 'referencedFields': ['id']}]}");
    ck_assert_int_eq(sync_rc(db, "[{'name': 'a', 'fields': [{'name': 'v', 'type': 'integer'}]}, "
                                 "{'name': 'q', 'fields': [{'name': 'pid', 'type': 'integer'}], "
                                 "'foreignKeys': [{'fields': ['pid'], 'referencedTable': 'p', "
                                 "'referencedFields': ['id']}]}]"), TS_ERR_VALIDATION);
    ASSERT_JSON(tables(db), "['a', 'p', 'q']");
    ts_close(db);
}
END_TEST

/* KERNEL BUG (kernel/table/migrate.c tsmig_sync / rewrite): two tables
 * exchanging names by tableId fail with TS_ERR_UNIQUE "btree: an entry
 * with this key exists (unique)": the first rename hits the catalog entry
 * of the other table's old name (nothing changes, at least). */
START_TEST(table_names_swapped_by_id)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'a', 'tableId': 'A', 'fields': [{'name': 'x', 'type': 'integer'}]}");
    create(db, "{'name': 'b', 'tableId': 'B', 'fields': [{'name': 'y', 'type': 'text'}]}");
    ins_i(db, "a", "{'x': 1}");
    ins_i(db, "b", "{'y': 'one'}");
    ins_i(db, "b", "{'y': 'two'}");
    json_t *rep = sync_rep(db, "[{'name': 'b', 'tableId': 'A', 'fields': [{'name': 'x', 'type': 'integer'}]},"
                               "{'name': 'a', 'tableId': 'B', 'fields': [{'name': 'y', 'type': 'text'}]}]",
                           0);
    ck_assert_str_eq(action(rep, "a"), "renamed");
    ck_assert_str_eq(fstr(entry(rep, "a"), "from"), "b");
    ck_assert_str_eq(action(rep, "b"), "renamed");
    ck_assert_str_eq(fstr(entry(rep, "b"), "from"), "a");
    ck_assert_int_eq(count(db, "a"), 2);
    ck_assert_int_eq(count(db, "b"), 1);
    ck_assert_str_eq(fstr(row_i(db, "a", 2), "y"), "two");
    ck_assert_int_eq(fint(row_i(db, "b", 1), "x"), 1);
    db = reopen(db);
    ck_assert_str_eq(fstr(schema(db, "a"), "tableId"), "B");
    ck_assert_str_eq(fstr(row_i(db, "a", 1), "y"), "one");
    ck_assert_int_eq(ins_i(db, "b", "{'x': 5}"), 2);
    ts_close(db);
}
END_TEST

START_TEST(primary_key_renamed)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}]}");
    ins_i(db, "t", "{'v': 'a'}");
    ins_i(db, "t", "{'v': 'b'}");
    sync_rep(db, "[{'name': 't', 'primaryKeyConfig': {'name': 'uid'}, 'fields': [{'name': 'v', 'type': 'text'}]}]", 0);
    json_t *r = row_i(db, "t", 2);
    ck_assert_int_eq(fint(r, "uid"), 2);
    ck_assert_ptr_null(json_object_get(r, "id"));
    ck_assert_str_eq(fstr(r, "v"), "b");
    json_t *pk = NULL;
    ck_assert_int_eq(ts_insert(db, "t", J("{'v': 'c'}"), &pk), TS_OK);
    keep(pk);
    ck_assert_int_eq(json_integer_value(pk), 3);
    ts_close(db);
}
END_TEST

/* Bad input: refused, nothing created or changed (all or nothing). */
START_TEST(bad_input_changes_nothing)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'tableId': 'T', 'fields': [{'name': 'v', 'type': 'integer'}]}");
    create(db, "{'name': 'u', 'fields': [{'name': 'w', 'type': 'integer'}]}");
    ins_i(db, "t", "{'v': 1}");
    json_t *s = keep(json_deep_copy(schema(db, "t")));
    ck_assert_int_eq(ts_sync_schemas(db, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(ts_sync_schemas(NULL, J("[]")), TS_ERR_INVALID);
    json_t *rep = NULL;
    ck_assert_int_eq(ts_sync_schemas_report(db, NULL, 0, &rep), TS_ERR_INVALID);
    ck_assert_ptr_null(rep);
    ck_assert_int_lt(sync_rc(db, "{'name': 't', 'fields': []}"), 0);
    /* a malformed schema after a valid change and a valid new table */
    int rc = sync_rc(db, "[{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}]},"
                         "{'name': 'n1', 'fields': []},"
                         "{'name': 'bad', 'fields': [{'name': 'x', 'type': 'strng'}]}]");
    ck_assert_int_eq(rc, TS_ERR_VALIDATION);
    ASSERT_MSG_HAS(ts_errmsg(db), "strng");
    /* a foreign key to a table that does not exist */
    rc = sync_rc(db, "[{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}]},"
                     "{'name': 'n2', 'fields': [{'name': 'p', 'type': 'integer'}],"
                     " 'foreignKeys': [{'fields': ['p'], 'referencedTable': 'nope', 'referencedFields': ['id']}]}]");
    ck_assert_int_eq(rc, TS_ERR_VALIDATION);
    /* t renamed by id onto the name of u, which is kept */
    rc = sync_rc(db, "[{'name': 'u', 'fields': [{'name': 'v', 'type': 'integer'}], 'tableId': 'T'}]");
    ck_assert_msg(rc < 0, "two tables named u: %d", rc);
    ASSERT_JSON(tables(db), "['t', 'u']");
    ck_assert(json_equal(schema(db, "t"), s));
    ck_assert_int_eq(fint(row_i(db, "t", 1), "v"), 1);
    /* an empty list changes nothing (tables are kept) */
    rep = sync_rep(db, "[]", 0);
    ck_assert_str_eq(action(rep, "t"), "kept");
    ck_assert_str_eq(action(rep, "u"), "kept");
    ASSERT_JSON(tables(db), "['t', 'u']");
    ts_close(db);
}
END_TEST

/* ---- refusals ----------------------------------------------------------- */

typedef struct refusal {
    const char *desc;
    const char *old_schema; /* table t */
    const char *rows[6];
    const char *new_list;
    const char *field;      /* how the message names the field */
    const char *count;      /* "N row(s)" */
    int64_t     lossy_left; /* rows left with allowLossy */
} refusal;

static const refusal refusals[] = {
    { "type change with values that do not convert",
      "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}]}",
      { "{'v': '12'}", "{'v': 'abc'}", "{'v': 'x1'}", "{'v': '7'}", NULL },
      "[{'name': 't', 'fields': [{'name': 'v', 'type': 'integer', 'nullable': false}]}]",
      "t.v", "2 row(s)", 2 },
    { "non-null without default while nulls exist",
      "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}, {'name': 'w', 'type': 'integer'}]}",
      { "{'v': 'a', 'w': 1}", "{'w': 2}", "{'v': 'c'}", "{'w': 4}", NULL },
      "[{'name': 't', 'fields': [{'name': 'v', 'type': 'text', 'nullable': false},"
      " {'name': 'w', 'type': 'integer'}]}]",
      "t.v", "2 row(s)", 2 },
    { "unique while duplicates exist",
      "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}]}",
      { "{'v': 'a'}", "{'v': 'b'}", "{'v': 'a'}", "{'v': 'a'}", "{'v': 'c'}", NULL },
      "[{'name': 't', 'fields': [{'name': 'v', 'type': 'text', 'unique': true}]}]",
      "same v", "2 row(s)", 3 },
    { "unique index over two fields while duplicates exist",
      "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}, {'name': 'w', 'type': 'integer'}]}",
      { "{'v': 'a', 'w': 1}", "{'v': 'a', 'w': 1}", "{'v': 'a', 'w': 2}", "{'v': 'b', 'w': 1}", NULL },
      "[{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}, {'name': 'w', 'type': 'integer'}],"
      " 'indexes': [{'fields': ['v', 'w'], 'unique': true, 'indexName': 'vw'}]}]",
      "same v, w", "1 row(s)", 3 },
    { "maxLength below existing values",
      "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}]}",
      { "{'v': 'short'}", "{'v': 'fourteen chars'}", "{'v': 'twelve chars'}", NULL },
      "[{'name': 't', 'fields': [{'name': 'v', 'type': 'text', 'maxLength': 10}]}]",
      "t.v", "2 row(s)", 1 },
};

static void fill_refusal(ts_db *db, const refusal *c)
{
    create(db, c->old_schema);
    create(db, "{'name': 'aa', 'fields': [{'name': 'x', 'type': 'integer'}]}");
    ins_i(db, "aa", "{'x': 1}");
    for (int i = 0; c->rows[i]; i++) ins_i(db, "t", c->rows[i]);
}

/* The new list of case c, with a change to table aa too (applied first,
 * so a refusal must undo it). */
static const char *with_aa(const refusal *c)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, "[{'name': 'aa', 'fields': [{'name': 'x', 'type': 'text'},"
                              "{'name': 'y', 'type': 'integer', 'defaultValue': 5}]}, %s",
             c->new_list + 1);
    return buf;
}

START_TEST(refusals_leave_data_untouched)
{
    const refusal *c = &refusals[_i];
    ts_db *db = open_db(NULL);
    fill_refusal(db, c);
    json_t *s_t = keep(json_deep_copy(schema(db, "t"))), *s_aa = keep(json_deep_copy(schema(db, "aa")));
    json_t *rows_t = all_rows(db, "t"), *rows_aa = all_rows(db, "aa");
    int64_t n = count(db, "t");

    int rc = sync_rc(db, with_aa(c));
    ck_assert_msg(rc == TS_ERR_VALIDATION, "%s: %d %s", c->desc, rc, ts_errmsg(db));
    const char *msg = ts_errmsg(db);
    ASSERT_MSG_HAS(msg, "'t'");
    ASSERT_MSG_HAS(msg, c->field);
    ASSERT_MSG_HAS(msg, c->count);
    /* the report variant refuses the same way and gives no report */
    json_t *rep = NULL;
    ck_assert_int_eq(ts_sync_schemas_report(db, J("%s", with_aa(c)), 0, &rep), TS_ERR_VALIDATION);
    ck_assert_ptr_null(rep);

    /* nothing changed, on this handle and after reopening */
    for (int round = 0; round < 2; round++) {
        ck_assert_msg(json_equal(schema(db, "t"), s_t), "%s: schema t changed: %s", c->desc,
                      dump(schema(db, "t")));
        ck_assert_msg(json_equal(schema(db, "aa"), s_aa), "%s: schema aa changed", c->desc);
        ck_assert_msg(json_equal(all_rows(db, "t"), rows_t), "%s: rows changed: %s", c->desc,
                      dump(all_rows(db, "t")));
        ck_assert(json_equal(all_rows(db, "aa"), rows_aa));
        ck_assert_int_eq(count(db, "t"), n);
        ck_assert_int_eq(count(db, "aa"), 1);
        ASSERT_JSON(tables(db), "['aa', 't']");
        /* writes under the old schema still work */
        ck_assert_int_eq(ts_update(db, "aa", I(1), J("{'x': 2}")), TS_OK);
        ck_assert_int_eq(ts_update(db, "aa", I(1), J("{'x': 1}")), TS_OK);
        if (!round) db = reopen(db);
    }
    ts_close(db);

    /* at open: the open fails with the message; without schemas the old data is there */
    char *cfg = cfg_with_schemas(with_aa(c), NULL);
    ts_db *bad = NULL;
    rc = ts_open_json(cfg, &bad);
    ck_assert_msg(rc == TS_ERR_VALIDATION, "%s: open: %d %s", c->desc, rc, ts_errmsg(NULL));
    ck_assert_ptr_null(bad);
    ASSERT_MSG_HAS(ts_errmsg(NULL), "'t'");
    ASSERT_MSG_HAS(ts_errmsg(NULL), c->field);
    ASSERT_MSG_HAS(ts_errmsg(NULL), c->count);
    free(cfg);
    db = open_db(NULL);
    ck_assert(json_equal(schema(db, "t"), s_t));
    ck_assert(json_equal(schema(db, "aa"), s_aa));
    ck_assert(json_equal(all_rows(db, "t"), rows_t));
    ck_assert(json_equal(all_rows(db, "aa"), rows_aa));
    ts_close(db);
}
END_TEST

START_TEST(allow_lossy_drops_rows)
{
    const refusal *c = &refusals[_i];
    ts_db *db = open_db("\"migration\": {\"allowLossy\": true}");
    fill_refusal(db, c);
    int64_t n = count(db, "t");
    json_t *rep = sync_rep(db, with_aa(c), 0);
    ck_assert_str_eq(action(rep, "t"), "changed");
    ck_assert_msg(fint(entry(rep, "t"), "rowsDropped") == n - c->lossy_left, "%s: report %s",
                  c->desc, dump(rep));
    ck_assert_int_eq(fint(entry(rep, "t"), "rows"), c->lossy_left);
    ck_assert_int_eq(fint(entry(rep, "aa"), "rowsDropped"), 0);
    ck_assert_int_eq(count(db, "t"), c->lossy_left);
    ck_assert_int_eq(json_array_size(all_rows(db, "t")), c->lossy_left);
    ck_assert_int_eq(fint(row_i(db, "aa", 1), "y"), 5);
    ck_assert_str_eq(fstr(row_i(db, "aa", 1), "x"), "1");
    /* the rows left satisfy the new definition */
    json_t *s = schema(db, "t");
    ck_assert_ptr_nonnull(field_of(s, "v"));
    size_t i;
    json_t *r;
    json_array_foreach(all_rows(db, "t"), i, r) {
        json_t *v = json_object_get(r, "v");
        switch (_i) {
        case 0: ck_assert(fint(r, "v") == 12 || fint(r, "v") == 7); break;
        case 1: ck_assert(json_is_string(v)); break;
        case 4: ck_assert_uint_le(strlen(fstr(r, "v")), 10); break;
        default: break;
        }
    }
    if (_i == 3) ASSERT_JSON(all_rows(db, "t"), "[{'id': 1, 'v': 'a', 'w': 1}, {'id': 3, 'v': 'a', 'w': 2},"
                                                "{'id': 4, 'v': 'b', 'w': 1}]");
    if (_i == 2) ASSERT_JSON(all_rows(db, "t"), "[{'id': 1, 'v': 'a'}, {'id': 2, 'v': 'b'}, {'id': 5, 'v': 'c'}]");
    db = reopen(db);
    ck_assert_int_eq(count(db, "t"), c->lossy_left);
    ts_close(db);
}
END_TEST

/* allowLossy: a value that does not convert takes the field's default
 * first (the row stays), or null in a nullable field. */
START_TEST(allow_lossy_default_first)
{
    ts_db *db = open_db("\"migration\": {\"allowLossy\": true}");
    create(db, "{'name': 't', 'fields': [{'name': 'a', 'type': 'text'}, {'name': 'b', 'type': 'text'}]}");
    ins_i(db, "t", "{'a': '1', 'b': '2'}");
    ins_i(db, "t", "{'a': 'xx', 'b': 'yy'}");
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'a', 'type': 'integer', 'defaultValue': -1},"
                               "{'name': 'b', 'type': 'integer'}]}]",
                           0);
    ck_assert_int_eq(fint(entry(rep, "t"), "rowsDropped"), 0);
    ck_assert_int_eq(count(db, "t"), 2);
    ck_assert_int_eq(fint(row_i(db, "t", 1), "a"), 1);
    ck_assert_int_eq(fint(row_i(db, "t", 1), "b"), 2);
    ck_assert_int_eq(fint(row_i(db, "t", 2), "a"), -1);
    ck_assert(fnull(row_i(db, "t", 2), "b"));
    ts_close(db);
}
END_TEST

/* Making a nullable field non-null WITH a default is not among the refused
 * changes (docs/migration.md: "a null where the field becomes non-null
 * without default"); the nulls must end up with a valid value, the default.
 * KERNEL BUG (kernel/table/migrate.c copy_rows): a null is copied as an
 * explicit null, which the row encoder refuses in a non-null field, so the
 * migration is refused (TS_ERR_VALIDATION) whether or not there is a default. */
START_TEST(non_null_with_default)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}]}");
    ins_i(db, "t", "{'v': 'a'}");
    ins_i(db, "t", "{'v': null}");
    int rc = sync_rc(db, "[{'name': 't', 'fields': [{'name': 'v', 'type': 'text', 'nullable': false,"
                         "'defaultValue': 'dflt'}]}]");
    ck_assert_msg(rc == TS_OK, "non-null with default refused: %d %s", rc, ts_errmsg(db));
    ck_assert_str_eq(fstr(row_i(db, "t", 1), "v"), "a");
    ck_assert_str_eq(fstr(row_i(db, "t", 2), "v"), "dflt");
    ts_close(db);
}
END_TEST

/* ---- at open, dry run ---------------------------------------------------- */

START_TEST(migration_at_open)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'users', 'fields': [{'name': 'name', 'type': 'text'}, {'name': 'age', 'type': 'text'}]}");
    ins_i(db, "users", "{'name': 'a', 'age': '30'}");
    ins_i(db, "users", "{'name': 'b', 'age': '41'}");
    ts_close(db);
    char *cfg = cfg_with_schemas("[{'name': 'users', 'fields': [{'name': 'name', 'type': 'text', 'createIndex': true},"
                                 "{'name': 'age', 'type': 'integer'},"
                                 "{'name': 'active', 'type': 'boolean', 'defaultValue': true}]},"
                                 "{'name': 'logs', 'fields': [{'name': 'm', 'type': 'text'}]}]",
                                 NULL);
    db = open_cfg(cfg);
    ASSERT_JSON(tables(db), "['logs', 'users']");
    json_t *r = row_i(db, "users", 2);
    ck_assert_int_eq(fint(r, "age"), 41);
    ck_assert(json_is_true(json_object_get(r, "active")));
    ck_assert_str_eq(fstr(explain_eq(db, "users", "name", S("b")), "plan"), "indexLookup");
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'c', 'age': 5}"), 3);
    ts_close(db);
    /* the same config again: nothing to do, rows stay */
    db = open_cfg(cfg);
    ck_assert_int_eq(count(db, "users"), 3);
    ck_assert_int_eq(fint(row_i(db, "users", 1), "age"), 30);
    ts_close(db);
    free(cfg);
    /* a refused migration at open: the open fails, the data stays */
    db = open_db(NULL);
    ins_i(db, "users", "{'name': 'toolongname'}");
    json_t *s_users = keep(json_deep_copy(schema(db, "users")));
    json_t *rows = all_rows(db, "users");
    ts_close(db);
    cfg = cfg_with_schemas("[{'name': 'users', 'fields': [{'name': 'name', 'type': 'text', 'maxLength': 3},"
                           "{'name': 'age', 'type': 'integer'}]},"
                           "{'name': 'newt', 'fields': []}]",
                           NULL);
    ts_db *bad = NULL;
    int rc = ts_open_json(cfg, &bad);
    ck_assert_int_eq(rc, TS_ERR_VALIDATION);
    ck_assert_ptr_null(bad);
    ASSERT_MSG_HAS(ts_errmsg(NULL), "users");
    ASSERT_MSG_HAS(ts_errmsg(NULL), "name");
    ASSERT_MSG_HAS(ts_errmsg(NULL), "1 row(s)");
    ASSERT_MSG_HAS(ts_errmsg(NULL), "maxLength");
    free(cfg);
    db = open_db(NULL);
    ASSERT_JSON(tables(db), "['logs', 'users']"); /* newt not created either */
    ck_assert(json_equal(schema(db, "users"), s_users));
    ck_assert(json_equal(all_rows(db, "users"), rows));
    ts_close(db);
    /* the same with allowLossy: the open succeeds and drops the row */
    cfg = cfg_with_schemas("[{'name': 'users', 'fields': [{'name': 'name', 'type': 'text', 'maxLength': 3},"
                           "{'name': 'age', 'type': 'integer'}]}]",
                           "'migration': {'allowLossy': true}");
    db = open_cfg(cfg);
    ck_assert_int_eq(count(db, "users"), 3);
    ck_assert_int_eq(ts_get(db, "users", I(4), &r), TS_ERR_NOT_FOUND);
    ts_close(db);
    free(cfg);
}
END_TEST

START_TEST(dry_run_changes_nothing)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'users', 'tableId': 'U', 'fields': [{'name': 'name', 'type': 'text'},"
               "{'name': 'n', 'type': 'text'}]}");
    create(db, "{'name': 'gone', 'fields': [{'name': 'g', 'type': 'blob'}]}");
    ins_i(db, "users", "{'name': 'a', 'n': '1'}");
    json_t *s = keep(json_deep_copy(schema(db, "users")));
    json_t *rows = all_rows(db, "users");
    const char *list = "[{'name': 'people', 'tableId': 'U', 'fields': [{'name': 'name', 'type': 'text', 'unique': true},"
                       "{'name': 'n', 'type': 'integer'}, {'name': 'extra', 'type': 'text', 'defaultValue': 'e'}]},"
                       "{'name': 'fresh', 'fields': []}]";
    json_t *rep = sync_rep(db, list, 1);
    ck_assert_str_eq(action(rep, "people"), "renamed");
    ck_assert_str_eq(fstr(entry(rep, "people"), "from"), "users");
    ASSERT_JSON(efields(rep, "people", "added"), "['extra']");
    ck_assert_str_eq(action(rep, "fresh"), "created");
    ck_assert_str_eq(action(rep, "gone"), "kept");
    /* nothing happened */
    ASSERT_JSON(tables(db), "['gone', 'users']");
    ck_assert(json_equal(schema(db, "users"), s));
    ck_assert(json_equal(all_rows(db, "users"), rows));
    db = reopen(db);
    ASSERT_JSON(tables(db), "['gone', 'users']");
    ck_assert(json_equal(schema(db, "users"), s));
    /* the real run does what the plan said */
    json_t *rep2 = sync_rep(db, list, 0);
    ck_assert_str_eq(action(rep2, "people"), "renamed");
    ASSERT_JSON(tables(db), "['fresh', 'gone', 'people']");
    ck_assert_int_eq(fint(row_i(db, "people", 1), "n"), 1);
    ck_assert_str_eq(fstr(row_i(db, "people", 1), "extra"), "e");
    ts_close(db);
}
END_TEST

/* ---- keys, counts, spaces ------------------------------------------------ */

START_TEST(keys_continue_after_migration)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'v', 'type': 'integer'}]}");
    create(db, "{'name': 'big', 'tableId': 'B', 'primaryKeyConfig': {'sequentialConfig': {'initialValue': 1000, 'increment': 10}},"
               "'fields': [{'name': 'v', 'type': 'integer'}]}");
    for (int i = 0; i < 5; i++) ins_i(db, "t", "{'v': 1}");
    ck_assert_int_eq(ts_delete(db, "t", I(5)), TS_OK);
    ck_assert_int_eq(ts_delete(db, "t", I(4)), TS_OK);
    ck_assert_int_eq(ins_i(db, "big", "{'v': 1}"), 1000);
    ck_assert_int_eq(ins_i(db, "big", "{'v': 1}"), 1010);
    ck_assert_int_eq(ts_delete(db, "big", I(1010)), TS_OK);
    sync_rep(db, "[{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}, {'name': 'w', 'type': 'integer'}]},"
                 "{'name': 'big2', 'tableId': 'B', 'primaryKeyConfig': {'sequentialConfig': {'initialValue': 1000, 'increment': 10}},"
                 "'fields': [{'name': 'v', 'type': 'integer'}, {'name': 'w', 'type': 'integer'}]}]",
             0);
    ck_assert_int_eq(count(db, "t"), 3);
    ck_assert_int_eq(count(db, "big2"), 1);
    ck_assert_int_eq(ins_i(db, "t", "{'v': 'x'}"), 6);
    ck_assert_int_eq(ins_i(db, "big2", "{'v': 2}"), 1020);
    ck_assert_int_eq(count(db, "t"), 4);
    ck_assert_int_eq(count(db, "big2"), 2);
    db = reopen(db);
    ck_assert_int_eq(ins_i(db, "t", "{'v': 'y'}"), 7);
    ck_assert_int_eq(ins_i(db, "big2", "{'v': 3}"), 1030);
    ck_assert_int_eq(count(db, "t"), 5);
    ck_assert_int_eq(count(db, "big2"), 3);
    ts_close(db);
}
END_TEST

START_TEST(rows_in_two_spaces)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}, {'name': 'old', 'type': 'integer'}]}");
    create(db, "{'name': 'g', 'isGlobal': true, 'fields': [{'name': 'v', 'type': 'integer'}]}");
    ins_i(db, "t", "{'v': '1', 'old': 1}");
    ins_i(db, "t", "{'v': '2', 'old': 1}");
    ins_i(db, "g", "{'v': 7}");
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ins_i(db, "t", "{'v': '10', 'old': 2}");
    ins_i(db, "t", "{'v': '20', 'old': 2}");
    ins_i(db, "t", "{'v': '30', 'old': 2}");
    json_t *rep = sync_rep(db, "[{'name': 't', 'fields': [{'name': 'v', 'type': 'integer'},"
                               "{'name': 'tag', 'type': 'text', 'defaultValue': 'T'}]},"
                               "{'name': 'g', 'isGlobal': true, 'fields': [{'name': 'v', 'type': 'text'}]}]",
                           0);
    ck_assert_int_eq(fint(entry(rep, "t"), "rows"), 5);
    /* current space: other */
    ck_assert_int_eq(count(db, "t"), 3);
    ASSERT_JSON(all_rows(db, "t"), "[{'id': 1, 'v': 10, 'tag': 'T'}, {'id': 2, 'v': 20, 'tag': 'T'},"
                                   "{'id': 3, 'v': 30, 'tag': 'T'}]");
    ASSERT_JSON(all_rows(db, "g"), "[{'id': 1, 'v': '7'}]");
    ck_assert_int_eq(ins_i(db, "t", "{'v': 40}"), 4);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(count(db, "t"), 2);
    ASSERT_JSON(all_rows(db, "t"), "[{'id': 1, 'v': 1, 'tag': 'T'}, {'id': 2, 'v': 2, 'tag': 'T'}]");
    ck_assert_int_eq(ins_i(db, "t", "{'v': 3}"), 3);
    ASSERT_JSON(all_rows(db, "g"), "[{'id': 1, 'v': '7'}]");
    ck_assert_int_eq(count(db, "g"), 1);
    db = reopen(db);
    ck_assert_int_eq(count(db, "t"), 3);
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ck_assert_int_eq(count(db, "t"), 4);
    ck_assert_int_eq(fint(row_i(db, "t", 4), "v"), 40);
    ts_close(db);
}
END_TEST

/* ---- a power loss during a migration --------------------------------------- */

enum { CRASH_ROWS = 3000 };

#define CRASH_OLD                                                                                \
    "{'name': 'big', 'fields': [{'name': 'name', 'type': 'text'}, {'name': 'n', 'type': 'integer'}," \
    "{'name': 'pad', 'type': 'text'}]}"
#define CRASH_NEW                                                                      \
    "[{'name': 'big', 'fields': [{'name': 'name', 'type': 'text', 'createIndex': true}," \
    "{'name': 'n', 'type': 'text'}, {'name': 'tag', 'type': 'text', 'defaultValue': 'T'},"       \
    "{'name': 'pad', 'type': 'text'}]}]"

#define FAULTY "\"storage\": {\"backend\": \"faulty\", \"options\": {\"inner\": \"posix\", \"passSync\": false}}"

#define NOSYNC "\"storage\": {\"options\": {\"sync\": \"none\"}}"


/* 1: the old schema with every row, 2: the new one with every row. */
static int crash_state(const char *path, const json_t *old_schema)
{
    ts_db *db = open_at(path, NOSYNC); /* reading what survived: no fsyncs needed */
    json_t *rep = NULL;
    int rc = ts_check(db, &rep, NULL, NULL);
    ck_assert_msg(rc == TS_OK, "check after crash: %d %s", rc, ts_errmsg(db));
    json_decref(rep);
    ASSERT_JSON(tables(db), "['big']");
    json_t *s = schema(db, "big");
    int state = field_of(s, "tag") ? 2 : 1;
    if (state == 1) ck_assert_msg(json_equal(s, old_schema), "half-migrated schema %s", dump(s));
    ck_assert_int_eq(count(db, "big"), CRASH_ROWS);
    json_t *rows = all_rows(db, "big");
    ck_assert_uint_eq(json_array_size(rows), CRASH_ROWS);
    /* compared without an assertion per row (each passing check costs a
     * message to the Check parent) */
    for (size_t i = 0; i < CRASH_ROWS; i++) {
        char name[32], pad[160], n[32];
        snprintf(name, sizeof name, "row %zu", i);
        snprintf(pad, sizeof pad, "%0120zu", i);
        snprintf(n, sizeof n, "%zu", i * 3);
        json_t *want = state == 1
                     ? json_pack("{s:I, s:s, s:I, s:s}", "id", (json_int_t)i + 1, "name", name, "n",
                                 (json_int_t)i * 3, "pad", pad)
                     : json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)i + 1, "name", name,
                                 "n", n, "tag", "T", "pad", pad);
        json_t *got = json_array_get(rows, i);
        if (!json_equal(got, want))
            ck_abort_msg("state %d, row %zu: expected %s, got %s", state, i, dump(want), dump(got));
        json_decref(want);
    }
    if (state == 2) {
        ck_assert_str_eq(fstr(explain_eq(db, "big", "name", S("row 77")), "plan"), "indexLookup");
        ck_assert_str_eq(where_ids(db, "big", "name", "=", S("row 77")), "78");
    }
    /* the database goes on: a new key after the last one */
    ck_assert_int_eq(ins_i(db, "big", "{'name': 'after'}"), CRASH_ROWS + 1);
    ck_assert_int_eq(ts_close(db), TS_OK);
    return state;
}

/* _i 0: the default cache (the transaction's pages are written at commit);
 * 1: the smallest cache, so the migration spills pages to the log as it
 * goes and the crash points fall in the middle of the copy too.  Odd
 * crash points tear the crashing write. */
START_TEST(power_loss_during_migration)
{
    const char *faulty = _i == 0 ? FAULTY : FAULTY ", \"cacheBytes\": 65536";
    char *base = tst_tmpdir("migration_base");
    ts_db *db = open_at(base, NOSYNC);
    create(db, CRASH_OLD);
    json_t *recs = keep(json_array());
    for (int i = 0; i < CRASH_ROWS; i++) {
        char name[32], pad[160];
        snprintf(name, sizeof name, "row %d", i);
        snprintf(pad, sizeof pad, "%0120d", i);
        json_array_append_new(recs, json_pack("{s:s, s:i, s:s}", "name", name, "n", i * 3, "pad", pad));
    }
    int rc0 = ts_batch_insert(db, "big", recs, 0, NULL);
    ck_assert_msg(rc0 == TS_OK, "batch: %d %s", rc0, ts_errmsg(db));
    ck_assert_int_eq(count(db, "big"), CRASH_ROWS);
    json_t *old_schema = keep(json_deep_copy(schema(db, "big")));
    ck_assert_int_eq(ts_close(db), TS_OK);

    /* a clean run: how many fault points the migration uses */
    char *d = tst_tmpdir("migration_run");
    tst_copy_dir(base, d);
    db = open_at(d, faulty);
    ck_assert_int_eq(ts_storage_control(db, "reset_counters", 0, NULL), TS_OK);
    ck_assert_int_eq(sync_rc(db, CRASH_NEW), TS_OK);
    int64_t points = 0;
    ck_assert_int_eq(ts_storage_control(db, "points", 0, &points), TS_OK);
    ck_assert_int_gt(points, 0);
    ck_assert_int_eq(ts_close(db), TS_OK);
    ck_assert_int_eq(crash_state(d, old_schema), 2);
    tst_rmrf(d);
    free(d);

    /* a crash at every write and sync point of the migration (points
     * spread over it, the last ones all, when there are very many) */
    int seen[3] = { 0, 0, 0 };
    int64_t step = points > 400 ? points / 300 : 1;
    for (int64_t n = 1; n <= points; n += (n + 8 > points ? 1 : step)) {
        d = tst_tmpdir("migration_crash");
        tst_copy_dir(base, d);
        db = open_at(d, faulty);
        ck_assert_int_eq(ts_storage_control(db, "reset_counters", 0, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "crash_at", n, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "tear", n % 2 ? 5000 : 0, NULL), TS_OK);
        int rc = sync_rc(db, CRASH_NEW);
        int64_t crashed = 0;
        ck_assert_int_eq(ts_storage_control(db, "crashed", 0, &crashed), TS_OK);
        ck_assert_msg(crashed == 1, "crash_at %lld of %lld: no power loss (rc %d)", (long long)n,
                      (long long)points, rc);
        ck_assert_msg(rc != TS_OK || n == points, "crash_at %lld: the migration reported success",
                      (long long)n);
        ts_close(db); /* fails: the store is dead */
        int st = crash_state(d, old_schema);
        seen[st]++;
        tst_rmrf(d);
        free(d);
    }
    fprintf(stderr, "power loss (%s cache): %lld fault points, crashes leaving old %d, new %d\n",
            _i ? "small" : "default", (long long)points, seen[1], seen[2]);
    ck_assert_msg(seen[1] > 0, "no crash point kept the old schema");
    tst_rmrf(base);
    free(base);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("migration");
    TCase *tc = tcase_create("migration");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, add_field_with_default);
    tcase_add_test(tc, remove_field);
    tcase_add_test(tc, rename_by_field_id);
    tcase_add_test(tc, rename_inferred);
    tcase_add_test(tc, rename_ambiguous_is_drop_add);
    tcase_add_test(tc, type_changes);
    tcase_add_test(tc, add_and_remove_indexes);
    tcase_add_test(tc, table_rename_by_id);
    tcase_add_test(tc, table_rename_inferred);
    tcase_add_test(tc, foreign_keys_follow_rename);
    tcase_add_test(tc, missing_tables_kept_or_dropped);
    tcase_add_test(tc, table_names_swapped_by_id);
    tcase_add_test(tc, primary_key_renamed);
    tcase_add_test(tc, bad_input_changes_nothing);
    tcase_add_loop_test(tc, refusals_leave_data_untouched, 0, (int)(sizeof refusals / sizeof *refusals));
    tcase_add_loop_test(tc, allow_lossy_drops_rows, 0, (int)(sizeof refusals / sizeof *refusals));
    tcase_add_test(tc, allow_lossy_default_first);
    tcase_add_test(tc, non_null_with_default);
    tcase_add_test(tc, migration_at_open);
    tcase_add_test(tc, dry_run_changes_nothing);
    tcase_add_test(tc, keys_continue_after_migration);
    tcase_add_test(tc, rows_in_two_spaces);
    tcase_add_loop_test(tc, power_loss_during_migration, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
