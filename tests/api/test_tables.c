/*
 * Tables through the public header only: schemas (create, list, get, drop,
 * clear), inserts and gets with every value type, validation and
 * constraints, primary-key generators, upserts, batches, updates and
 * deletes, spaces and global tables, transactions, schemas given in the
 * configuration, TTL, persistence, limits, a few threads sharing a handle
 * (including reads racing DDL) and a writer process that dies mid-way.
 * Foreign keys are in test_tables_fk.c.
 *
 * JSON in the tests is written with single quotes (J() turns them into
 * double quotes), so no test value contains an apostrophe.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "tsupport.h"

#define TT_NAME "tables"
#include "tables_support.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" to ms; asserts the exact output format. */
static int64_t iso_ms(const char *s)
{
    int Y, M, D, h, m, sec, ms, end = 0;
    ck_assert_msg(strlen(s) == 24 && sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &Y, &M, &D, &h, &m,
                                            &sec, &ms, &end) == 7 && end == 24,
                  "not an ISO UTC datetime with milliseconds: %s", s);
    struct tm tm = { 0 };
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

#define USERS                                                                                  \
    "{'name': 'users', 'fields': ["                                                            \
    "{'name': 'name', 'type': 'text', 'nullable': false},"                                     \
    "{'name': 'email', 'type': 'text', 'unique': true},"                                       \
    "{'name': 'age', 'type': 'integer', 'minValue': 0, 'maxValue': 150},"                      \
    "{'name': 'status', 'type': 'text', 'defaultValue': 'new'}]}"

/* ---- schemas ------------------------------------------------------------ */

START_TEST(schema_create_get_list)
{
    ts_db *db = open_db(NULL);
    json_t *list = tables(db);
    ck_assert_uint_eq(json_array_size(list), 0);
    create(db, "{'name': 'users', 'fields': [{'name': 'name', 'type': 'text'}]}");
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "users", &s), TS_OK);
    keep(s);
    /* canonical: every default filled in */
    ck_assert_str_eq(fstr(s, "name"), "users");
    ck_assert(json_is_false(json_object_get(s, "isGlobal")));
    json_t *pkc = json_object_get(s, "primaryKeyConfig");
    ck_assert(json_is_object(pkc));
    ck_assert_str_eq(fstr(pkc, "name"), "id");
    ck_assert_str_eq(fstr(pkc, "type"), "sequential");
    json_t *seq = json_object_get(pkc, "sequentialConfig");
    ck_assert(json_is_object(seq));
    ck_assert_int_eq(fint(seq, "initialValue"), 1);
    ck_assert_int_eq(fint(seq, "increment"), 1);
    ck_assert(json_is_false(json_object_get(seq, "useRandomIncrement")));
    json_t *fields = json_object_get(s, "fields");
    ck_assert_uint_eq(json_array_size(fields), 1);
    json_t *f0 = json_array_get(fields, 0);
    ck_assert_str_eq(fstr(f0, "name"), "name");
    ck_assert_str_eq(fstr(f0, "type"), "text");
    ck_assert(json_is_true(json_object_get(f0, "nullable")));
    ck_assert(json_is_false(json_object_get(f0, "unique")));
    ck_assert(json_is_false(json_object_get(f0, "createIndex")));
    ck_assert(json_is_array(json_object_get(s, "indexes")));
    ck_assert_uint_eq(json_array_size(json_object_get(s, "indexes")), 0);
    ck_assert(json_is_array(json_object_get(s, "foreignKeys")));
    ck_assert_uint_eq(json_array_size(json_object_get(s, "foreignKeys")), 0);

    /* the canonical schema creates an equal table */
    json_t *copy = keep(json_deep_copy(s));
    json_object_set_new(copy, "name", json_string("users2"));
    ck_assert_int_eq(ts_create_table(db, copy), TS_OK);
    json_t *s2 = NULL;
    ck_assert_int_eq(ts_get_schema(db, "users2", &s2), TS_OK);
    keep(s2);
    ck_assert(json_equal(s2, copy));

    /* existing name */
    ck_assert_int_eq(create_rc(db, "{'name': 'users', 'fields': []}"), TS_ERR_TABLE_EXISTS);
    ck_assert_str_ne(ts_errmsg(db), "");

    /* list: sorted */
    create(db, "{'name': 'b_t', 'fields': []}");
    create(db, "{'name': 'a_t', 'fields': []}");
    list = tables(db);
    ck_assert(json_equal(list, J("['a_t', 'b_t', 'users', 'users2']")));

    /* unknown table */
    json_t *none = NULL;
    ck_assert_int_eq(ts_get_schema(db, "nope", &none), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(none);

    /* survives reopen */
    db = reopen(db);
    ck_assert(json_equal(tables(db), J("['a_t', 'b_t', 'users', 'users2']")));
    json_t *s3 = NULL;
    ck_assert_int_eq(ts_get_schema(db, "users", &s3), TS_OK);
    keep(s3);
    ck_assert(json_equal(s3, s));
    ts_close(db);
}
END_TEST

START_TEST(schema_errors_reach_api)
{
    ts_db *db = open_db(NULL);
    ck_assert_int_eq(create_rc(db, "{'name': 't', 'fields': [{'name': 'a', 'type': 'strng'}]}"),
                     TS_ERR_VALIDATION);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "fields[0].type"));
    ck_assert_int_eq(create_rc(db, "{'name': '1t', 'fields': []}"), TS_ERR_VALIDATION);
    ck_assert_int_eq(create_rc(db, "{'name': 't'}"), TS_ERR_VALIDATION);
    ck_assert_int_eq(create_rc(db, "{'name': 't', 'fields': [], 'feilds': []}"), TS_ERR_VALIDATION);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "feilds"));
    ck_assert_int_eq(create_rc(db, "{'name': 't', 'fields': [{'name': 'a', 'type': 'text'},"
                                   "{'name': 'a', 'type': 'integer'}]}"),
                     TS_ERR_VALIDATION);
    ck_assert_int_eq(create_rc(db, "{'name': 't', 'fields': [{'name': 'p', 'type': 'integer'}],"
                                   "'foreignKeys': [{'fields': ['p'], 'referencedTable': 'nope',"
                                   "'referencedFields': ['id']}]}"),
                     TS_ERR_VALIDATION);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "nope"));
    ck_assert_int_eq(create_rc(db, "[]"), TS_ERR_VALIDATION);
    ck_assert_int_eq(create_rc(db, "{'name': 't', 'fields': [],"
                                   "'indexes': [{'fields': ['nope']}]}"),
                     TS_ERR_VALIDATION);
    /* an index module that is not loaded */
    int rc = create_rc(db, "{'name': 't', 'fields': [{'name': 'a', 'type': 'text'}],"
                           "'indexes': [{'fields': ['a'], 'type': 'nosuchmodule'}]}");
    ck_assert_msg(rc < 0, "index of an unknown module: %d", rc);
    /* none of them created anything */
    ck_assert_uint_eq(json_array_size(tables(db)), 0);
    /* tableId unique among tables */
    create(db, "{'name': 't1', 'tableId': 'T', 'fields': []}");
    ck_assert_int_eq(create_rc(db, "{'name': 't2', 'tableId': 'T', 'fields': []}"),
                     TS_ERR_VALIDATION);
    ck_assert(json_equal(tables(db), J("['t1']")));
    ts_close(db);
}
END_TEST

#define CHILD(name, parent)                                                                    \
    "{'name': '" name "', 'fields': [{'name': 'pid', 'type': 'integer'}],"                     \
    "'foreignKeys': [{'fields': ['pid'], 'referencedTable': '" parent "',"                     \
    "'referencedFields': ['id']}]}"

START_TEST(create_tables_fk_order)
{
    ts_db *db = open_db(NULL);
    /* c -> b -> a, given children first */
    json_t *set = J("[" CHILD("c", "b") "," CHILD("b", "a") ", {'name': 'a', 'fields': []}]");
    int rc = ts_create_tables(db, set);
    ck_assert_msg(rc == TS_OK, "create_tables: %d %s", rc, ts_errmsg(db));
    ck_assert(json_equal(tables(db), J("['a', 'b', 'c']")));
    /* the references work */
    ck_assert_int_eq(ins_i(db, "a", "{}"), 1);
    ck_assert_int_eq(ins_i(db, "b", "{'pid': 1}"), 1);
    ck_assert_int_eq(ins_i(db, "c", "{'pid': 1}"), 1);
    ck_assert_int_eq(ins_rc(db, "c", "{'pid': 2}", NULL), TS_ERR_FOREIGN_KEY);
    /* an empty array is fine */
    ck_assert_int_eq(ts_create_tables(db, J("[]")), TS_OK);
    ts_close(db);
}
END_TEST

START_TEST(create_tables_cycle)
{
    ts_db *db = open_db(NULL);
    int rc = ts_create_tables(db, J("[" CHILD("a", "b") "," CHILD("b", "a") "]"));
    ck_assert_int_eq(rc, TS_ERR_VALIDATION);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "cycle"));
    ck_assert_uint_eq(json_array_size(tables(db)), 0);
    /* a table referencing itself is no cycle */
    ck_assert_int_eq(ts_create_tables(db, J("[" CHILD("tree", "tree") "]")), TS_OK);
    ck_assert_int_eq(ins_i(db, "tree", "{'pid': null}"), 1);
    ck_assert_int_eq(ins_i(db, "tree", "{'pid': 1}"), 2);
    ts_close(db);
}
END_TEST

START_TEST(create_tables_all_or_nothing)
{
    ts_db *db = open_db(NULL);
    /* a bad second schema: the first is not created */
    json_t *set = J("[{'name': 'first', 'fields': []},"
                    "{'name': 'second', 'fields': [{'name': 'x', 'type': 'strng'}]}]");
    ck_assert_int_eq(ts_create_tables(db, set), TS_ERR_VALIDATION);
    ck_assert_uint_eq(json_array_size(tables(db)), 0);
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "first", &s), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_rc(db, "first", "{}", NULL), TS_ERR_NOT_FOUND);
    /* an existing name in the set */
    create(db, "{'name': 'old', 'fields': []}");
    set = J("[{'name': 'fresh', 'fields': []}, {'name': 'old', 'fields': []}]");
    ck_assert_int_eq(ts_create_tables(db, set), TS_ERR_TABLE_EXISTS);
    ck_assert(json_equal(tables(db), J("['old']")));
    /* a name twice in the set */
    set = J("[{'name': 'twice', 'fields': []}, {'name': 'twice', 'fields': []}]");
    ck_assert_int_eq(ts_create_tables(db, set), TS_ERR_VALIDATION);
    ck_assert(json_equal(tables(db), J("['old']")));
    /* and the same set without the problem works, after a reopen too */
    db = reopen(db);
    ck_assert(json_equal(tables(db), J("['old']")));
    set = J("[{'name': 'first', 'fields': []}, {'name': 'second', 'fields': []}]");
    ck_assert_int_eq(ts_create_tables(db, set), TS_OK);
    ck_assert(json_equal(tables(db), J("['first', 'old', 'second']")));
    ts_close(db);
}
END_TEST

START_TEST(drop_table)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a', 'email': 'a@x'}");
    ins(db, "users", "{'name': 'b'}");
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ins(db, "users", "{'name': 'c', 'email': 'a@x'}");
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);

    ck_assert_int_eq(ts_drop_table(db, "users"), TS_OK);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'd'}", NULL), TS_ERR_NOT_FOUND);
    int64_t n;
    ck_assert_int_eq(ts_count_rows(db, "users", &n), TS_ERR_NOT_FOUND);
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "users", &s), TS_ERR_NOT_FOUND);
    ck_assert_uint_eq(json_array_size(tables(db)), 0);
    ck_assert_int_eq(ts_drop_table(db, "users"), TS_ERR_NOT_FOUND);

    /* a new table of the same name starts empty, in every space, with its
     * own sequence and no unique values left over */
    db = reopen(db);
    ck_assert_uint_eq(json_array_size(tables(db)), 0);
    create(db, USERS);
    ck_assert_int_eq(count(db, "users"), 0);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'e', 'email': 'a@x'}"), 1);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "e");
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ck_assert_int_eq(count(db, "users"), 0);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ts_close(db);
}
END_TEST

START_TEST(clear_table)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    for (int i = 0; i < 3; i++) ins(db, "users", "{'name': 'a'}");
    ins(db, "users", "{'name': 'u', 'email': 'u@x'}");
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ins(db, "users", "{'name': 'o'}");
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);

    ck_assert_int_eq(count(db, "users"), 4);
    ck_assert_int_eq(ts_clear_table(db, "users"), TS_OK);
    ck_assert_int_eq(count(db, "users"), 0);
    for (int i = 1; i <= 4; i++) ck_assert_int_eq(get_rc(db, "users", I(i)), TS_ERR_NOT_FOUND);
    /* keys continue, unique values are free again */
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'u2', 'email': 'u@x'}"), 5);
    /* the other space is untouched */
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ck_assert_int_eq(count(db, "users"), 1);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "o");
    ck_assert_int_eq(ts_clear_table(db, "nope"), TS_ERR_NOT_FOUND);
    /* the schema stays */
    ck_assert(json_equal(tables(db), J("['users']")));
    ts_close(db);
}
END_TEST

/* ---- inserts and gets ---------------------------------------------------- */

START_TEST(insert_sequential_keys)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'a'}"), 1);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'b'}"), 2);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'c'}"), 3);
    /* pk_out may be NULL */
    ck_assert_int_eq(ts_insert(db, "users", J("{'name': 'd'}"), NULL), TS_OK);
    ck_assert_int_eq(count(db, "users"), 4);
    json_t *r = row_i(db, "users", 2);
    ck_assert_int_eq(fint(r, "id"), 2);
    ck_assert_str_eq(fstr(r, "name"), "b");
    ck_assert_str_eq(fstr(r, "status"), "new");
    ck_assert_str_eq(fstr(row_i(db, "users", 4), "name"), "d");
    /* 2 and "2" alike */
    json_t *r2 = row_of(db, "users", S("2"));
    ck_assert(json_equal(r, r2));
    ck_assert_int_eq(fint(r2, "id"), 2);
    /* an integral real too */
    ck_assert(json_equal(r, row_of(db, "users", keep(json_real(2.0)))));
    ts_close(db);
}
END_TEST

START_TEST(sequential_config)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [], 'primaryKeyConfig': {'sequentialConfig':"
               "{'initialValue': 100, 'increment': 10}}}");
    ck_assert_int_eq(ins_i(db, "t", "{}"), 100);
    ck_assert_int_eq(ins_i(db, "t", "{}"), 110);
    ck_assert_int_eq(ins_i(db, "t", "{}"), 120);
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "t", &s), TS_OK);
    keep(s);
    json_t *seq = json_object_get(json_object_get(s, "primaryKeyConfig"), "sequentialConfig");
    ck_assert_int_eq(fint(seq, "initialValue"), 100);
    ck_assert_int_eq(fint(seq, "increment"), 10);

    /* random steps in [1, increment], always increasing */
    create(db, "{'name': 'r', 'fields': [], 'primaryKeyConfig': {'sequentialConfig':"
               "{'initialValue': 1, 'increment': 1000, 'useRandomIncrement': true}}}");
    json_int_t prev = ins_i(db, "r", "{}");
    ck_assert_int_ge(prev, 1);
    ck_assert_int_le(prev, 1000);
    int distinct_steps = 0;
    json_int_t first_step = -1;
    for (int i = 0; i < 30; i++) {
        json_int_t k = ins_i(db, "r", "{}");
        ck_assert_int_gt(k, prev);
        ck_assert_int_le(k - prev, 1000);
        if (first_step < 0) first_step = k - prev;
        else if (k - prev != first_step) distinct_steps = 1;
        prev = k;
    }
    ck_assert_msg(distinct_steps, "useRandomIncrement: every step was %lld", (long long)first_step);
    ck_assert_int_eq(count(db, "r"), 31);
    ts_close(db);
}
END_TEST

START_TEST(caller_supplied_keys)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'a'}"), 1);
    ck_assert_int_eq(ins_i(db, "users", "{'id': 50, 'name': 'b'}"), 50);
    ck_assert_str_eq(fstr(row_i(db, "users", 50), "name"), "b");
    /* later generated keys stay above it */
    json_int_t k = ins_i(db, "users", "{'name': 'c'}");
    ck_assert_int_gt(k, 50);
    ck_assert_int_eq(k, 51);
    /* a key below the sequence is used as given */
    ck_assert_int_eq(ins_i(db, "users", "{'id': 7, 'name': 'd'}"), 7);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'e'}"), 52);
    /* an explicit null key means "generate" */
    ck_assert_int_eq(ins_i(db, "users", "{'id': null, 'name': 'f'}"), 53);
    /* a string key on an undeclared key is used as given */
    json_t *pk = ins(db, "users", "{'id': 'k1', 'name': 'g'}");
    ck_assert(json_is_string(pk));
    ck_assert_str_eq(json_string_value(pk), "k1");
    ck_assert_str_eq(fstr(row_of(db, "users", S("k1")), "name"), "g");
    /* a key is an integer or a string */
    ck_assert_int_eq(ins_rc(db, "users", "{'id': 5.5, 'name': 'x'}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "users", "{'id': true, 'name': 'x'}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "users", "{'id': [1], 'name': 'x'}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "users", "{'id': {'a': 1}, 'name': 'x'}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_i(db, "users", "{'id': 60.0, 'name': 'real'}"), 60);
    ck_assert_str_eq(fstr(row_i(db, "users", 60), "name"), "real");
    /* duplicate key: TS_ERR_PRIMARY_KEY, nothing changes */
    int64_t n = count(db, "users");
    ck_assert_int_eq(ins_rc(db, "users", "{'id': 50, 'name': 'x'}", NULL), TS_ERR_PRIMARY_KEY);
    ck_assert_int_eq(ins_rc(db, "users", "{'id': 'k1', 'name': 'x'}", NULL), TS_ERR_PRIMARY_KEY);
    ck_assert_int_eq(count(db, "users"), n);
    ck_assert_str_eq(fstr(row_i(db, "users", 50), "name"), "b");
    ts_close(db);
}
END_TEST

START_TEST(get_not_found)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a'}");
    json_t *row = NULL;
    ck_assert_int_eq(ts_get(db, "users", I(2), &row), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(row);
    ck_assert_int_eq(ts_get(db, "users", S("zzz"), &row), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(row);
    ck_assert_int_eq(ts_get(db, "nope", I(1), &row), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(row);
    ck_assert_int_eq(ins_rc(db, "nope", "{}", NULL), TS_ERR_NOT_FOUND);
    int64_t n;
    ck_assert_int_eq(ts_count_rows(db, "nope", &n), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_update(db, "nope", I(1), J("{}")), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_delete(db, "nope", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_upsert(db, "nope", J("{'a': 1}"), NULL), TS_ERR_NOT_FOUND);
    ts_close(db);
}
END_TEST

#define TYPES                                                                                  \
    "{'name': 'v', 'fields': ["                                                                \
    "{'name': 'i', 'type': 'integer'}, {'name': 'b', 'type': 'bigInt'},"                       \
    "{'name': 'd', 'type': 'double'}, {'name': 't', 'type': 'text'},"                          \
    "{'name': 'bl', 'type': 'blob'}, {'name': 'bo', 'type': 'boolean'},"                       \
    "{'name': 'dt', 'type': 'datetime'}, {'name': 'dt2', 'type': 'datetime'},"                 \
    "{'name': 'a', 'type': 'array'}, {'name': 'j', 'type': 'json'}]}"

START_TEST(values_round_trip)
{
    ts_db *db = open_db(NULL);
    create(db, TYPES);
    json_int_t k = ins_i(db, "v", "{'i': -9007199254740993, 'b': '123456789012345678901234567890',"
                                  "'d': 3.25, 't': '  h\\u00e9llo \\u4e16  ', 'bl': 'aGVsbG8=',"
                                  "'bo': true, 'dt': '2024-03-05T06:07:08.123Z',"
                                  "'dt2': 1700000000123, 'a': [1, 'x', [2, null]],"
                                  "'j': {'k': [1, {'z': null}], 'f': 1.5}}");
    json_t *r = row_i(db, "v", k);
    ck_assert_int_eq(fint(r, "id"), k);
    ck_assert_int_eq(fint(r, "i"), -9007199254740993LL);
    ck_assert_str_eq(fstr(r, "b"), "123456789012345678901234567890");
    ck_assert(json_is_real(json_object_get(r, "d")));
    ck_assert(json_real_value(json_object_get(r, "d")) == 3.25);
    ck_assert_str_eq(fstr(r, "t"), "  h\xc3\xa9llo \xe4\xb8\x96  ");
    ck_assert_str_eq(fstr(r, "bl"), "aGVsbG8=");
    ck_assert(json_is_true(json_object_get(r, "bo")));
    ck_assert_str_eq(fstr(r, "dt"), "2024-03-05T06:07:08.123Z");
    ck_assert_str_eq(fstr(r, "dt2"), "2023-11-14T22:13:20.123Z");
    ck_assert(json_equal(json_object_get(r, "a"), J("[1, 'x', [2, null]]")));
    ck_assert(json_equal(json_object_get(r, "j"), J("{'k': [1, {'z': null}], 'f': 1.5}")));
    /* every column is there: nothing but the fields and the key */
    ck_assert_uint_eq(json_object_size(r), 11);

    /* normalized forms */
    k = ins_i(db, "v", "{'i': 3.0, 'b': '-000123', 'd': 2, 't': '', 'bl': 'aGVsbG8',"
                       "'bo': false, 'dt': '2024-03-05T08:07:08+02:00', 'dt2': '2024-03-05',"
                       "'a': [], 'j': 'just text'}");
    r = row_i(db, "v", k);
    ck_assert_int_eq(fint(r, "i"), 3);
    ck_assert_int_eq(fint(r, "b"), -123);
    ck_assert(json_is_real(json_object_get(r, "d")));
    ck_assert(json_real_value(json_object_get(r, "d")) == 2.0);
    ck_assert_str_eq(fstr(r, "t"), "");
    ck_assert_str_eq(fstr(r, "bl"), "aGVsbG8=");
    ck_assert(json_is_false(json_object_get(r, "bo")));
    ck_assert_str_eq(fstr(r, "dt"), "2024-03-05T06:07:08.000Z");
    ck_assert_str_eq(fstr(r, "dt2"), "2024-03-05T00:00:00.000Z");
    ck_assert(json_equal(json_object_get(r, "a"), J("[]")));
    ck_assert_str_eq(fstr(r, "j"), "just text");

    /* digits past milliseconds are dropped */
    k = ins_i(db, "v", "{'dt': '2024-01-02T03:04:05.123456789Z', 'dt2': '2024-01-02T03:04:05,5'}");
    r = row_i(db, "v", k);
    ck_assert_str_eq(fstr(r, "dt"), "2024-01-02T03:04:05.123Z");
    ck_assert_str_eq(fstr(r, "dt2"), "2024-01-02T03:04:05.500Z");

    /* bigInt: integer when it fits int64, the decimal string beyond */
    k = ins_i(db, "v", "{'b': '9223372036854775807'}");
    ck_assert_int_eq(fint(row_i(db, "v", k), "b"), INT64_MAX);
    k = ins_i(db, "v", "{'b': '9223372036854775808'}");
    ck_assert_str_eq(fstr(row_i(db, "v", k), "b"), "9223372036854775808");
    k = ins_i(db, "v", "{'b': 42}");
    ck_assert_int_eq(fint(row_i(db, "v", k), "b"), 42);

    k = ins_i(db, "v", "{'b': '-123456789012345678901234567890'}");
    ck_assert_str_eq(fstr(row_i(db, "v", k), "b"), "-123456789012345678901234567890");
    k = ins_i(db, "v", "{'b': '-0'}");
    ck_assert_int_eq(fint(row_i(db, "v", k), "b"), 0);
    /* text may hold NUL */
    json_t *rec = keep(json_object());
    json_object_set_new(rec, "t", json_stringn("a\0b", 3));
    json_t *pk = NULL;
    ck_assert_int_eq(ts_insert(db, "v", rec, &pk), TS_OK);
    keep(pk);
    json_t *t = json_object_get(row_of(db, "v", pk), "t");
    ck_assert(json_is_string(t));
    ck_assert_uint_eq(json_string_length(t), 3);
    ck_assert_mem_eq(json_string_value(t), "a\0b", 3);

    /* missing nullable fields read as null */
    k = ins_i(db, "v", "{}");
    r = row_i(db, "v", k);
    const char *names[] = { "i", "b", "d", "t", "bl", "bo", "dt", "dt2", "a", "j" };
    for (size_t x = 0; x < sizeof names / sizeof *names; x++)
        ck_assert_msg(fnull(r, names[x]), "field %s of an empty record is not null", names[x]);
    /* a json field holding an explicit JSON null is null */
    k = ins_i(db, "v", "{'j': null}");
    ck_assert(fnull(row_i(db, "v", k), "j"));

    /* updates and upserts replace a json or array value whole (no deep merge) */
    k = ins_i(db, "v", "{'j': {'a': 1, 'b': 2}, 'a': [1, 2], 'i': 1}");
    ck_assert_int_eq(ts_upsert(db, "v", J("{'id': %lld, 'j': {'a': 5}, 'a': [3]}", (long long)k),
                               NULL), TS_OK);
    r = row_i(db, "v", k);
    ck_assert(json_equal(json_object_get(r, "j"), J("{'a': 5}")));
    ck_assert(json_equal(json_object_get(r, "a"), J("[3]")));
    ck_assert_int_eq(fint(r, "i"), 1);
    ck_assert_int_eq(ts_update(db, "v", I(k), J("{'j': {'c': 1}}")), TS_OK);
    ck_assert(json_equal(json_object_get(row_i(db, "v", k), "j"), J("{'c': 1}")));

    /* the same after a reopen */
    json_t *before = row_i(db, "v", 1);
    db = reopen(db);
    ck_assert(json_equal(before, row_i(db, "v", 1)));
    ts_close(db);
}
END_TEST

START_TEST(validation_errors)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'p', 'fields': ["
               "{'name': 'name', 'type': 'text', 'nullable': false},"
               "{'name': 'code', 'type': 'text', 'minLength': 2, 'maxLength': 5},"
               "{'name': 'age', 'type': 'integer', 'minValue': 0, 'maxValue': 150},"
               "{'name': 'score', 'type': 'double', 'minValue': -1.5},"
               "{'name': 'flag', 'type': 'boolean'},"
               "{'name': 'at', 'type': 'datetime', 'minValue': '2020-01-01'},"
               "{'name': 'bl', 'type': 'blob', 'maxLength': 3},"
               "{'name': 'xs', 'type': 'array', 'maxLength': 2},"
               "{'name': 'big', 'type': 'bigInt'}]}");
    /* not null: missing or explicit null */
    ck_assert_int_eq(ins_rc(db, "p", "{'code': 'ab'}", NULL), TS_ERR_NOT_NULL);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "name"));
    ck_assert_int_eq(ins_rc(db, "p", "{'name': null}", NULL), TS_ERR_NOT_NULL);
    /* unknown field */
    ck_assert_int_eq(ins_rc(db, "p", "{'name': 'a', 'nmae': 'b'}", NULL), TS_ERR_VALIDATION);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "nmae"));
    /* types */
    const char *bad[] = {
        "{'name': 5}",
        "{'name': 'a', 'age': 'abc'}",
        "{'name': 'a', 'age': 1.5}",
        "{'name': 'a', 'age': 1e20}",
        "{'name': 'a', 'age': true}",
        "{'name': 'a', 'score': 'x'}",
        "{'name': 'a', 'flag': 1}",
        "{'name': 'a', 'flag': 'true'}",
        "{'name': 'a', 'at': 253402300800000}",
        "{'name': 'a', 'at': '10000-01-01T00:00:00Z'}",
        "{'name': 'a', 'at': '2019-12-31T23:59:59.999Z'}",
        "{'name': 'a', 'at': 'not a date'}",
        "{'name': 'a', 'at': '2024-13-01'}",
        "{'name': 'a', 'at': true}",
        "{'name': 'a', 'bl': '!!!!'}",
        "{'name': 'a', 'xs': {'a': 1}}",
        "{'name': 'a', 'big': '12x'}",
        "{'name': 'a', 'big': 1.5}",
        /* bounds: never truncated or clamped */
        "{'name': 'a', 'age': 151}",
        "{'name': 'a', 'age': -1}",
        "{'name': 'a', 'score': -2}",
        "{'name': 'a', 'code': 'abcdef'}",
        "{'name': 'a', 'code': 'a'}",
        "{'name': 'a', 'bl': 'AAAAAA=='}",
        "{'name': 'a', 'xs': [1, 2, 3]}",
        /* an expression is no value */
        "{'name': 'a', 'age': {'$expr': 'x'}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = ins_rc(db, "p", bad[i], NULL);
        ck_assert_msg(rc == TS_ERR_VALIDATION, "%s: got %d, expected TS_ERR_VALIDATION", bad[i],
                      rc);
        ck_assert_msg(ts_errmsg(db)[0] != 0, "%s: no message", bad[i]);
    }
    /* invalid UTF-8 */
    json_t *rec = keep(json_object());
    json_object_set_new(rec, "name", json_string_nocheck("a\xff"));
    ck_assert_int_eq(ts_insert(db, "p", rec, NULL), TS_ERR_VALIDATION);
    /* not an object */
    int rc = ts_insert(db, "p", J("[1]"), NULL);
    ck_assert_msg(rc == TS_ERR_VALIDATION || rc == TS_ERR_INVALID, "array record: %d", rc);
    /* nothing was written */
    ck_assert_int_eq(count(db, "p"), 0);
    /* values on the bounds are fine, code points are counted (5 here, 6 bytes) */
    json_int_t k = ins_i(db, "p", "{'name': 'a', 'age': 150, 'code': 'h\\u00e9llo', 'score': -1.5,"
                                  "'bl': 'AAAA', 'xs': [1, 2]}");
    json_t *r = row_i(db, "p", k);
    ck_assert_int_eq(fint(r, "age"), 150);
    ck_assert_str_eq(fstr(r, "code"), "h\xc3\xa9llo");
    ck_assert_int_eq(ins_rc(db, "p", "{'name': 'a', 'code': 'h\\u00e9llo!'}", NULL),
                     TS_ERR_VALIDATION);
    k = ins_i(db, "p", "{'name': 'b', 'at': '2020-01-01T00:00:00.000Z'}");
    ck_assert_str_eq(fstr(row_i(db, "p", k), "at"), "2020-01-01T00:00:00.000Z");
    ck_assert_int_eq(count(db, "p"), 2);
    ts_close(db);
}
END_TEST

START_TEST(defaults)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'd', 'fields': ["
               "{'name': 'status', 'type': 'text', 'defaultValue': 'new'},"
               "{'name': 'n', 'type': 'integer', 'defaultValue': 7},"
               "{'name': 'flag', 'type': 'boolean', 'nullable': false, 'defaultValue': false},"
               "{'name': 'created', 'type': 'datetime', 'defaultValueType': 'currentTimestamp'},"
               "{'name': 'ms', 'type': 'integer', 'defaultValueType': 'currentTimestamp'},"
               "{'name': 'when', 'type': 'datetime', 'defaultValue': '2020-01-02T03:04:05Z'}]}");
    int64_t t0 = now_ms();
    json_int_t k = ins_i(db, "d", "{}");
    int64_t t1 = now_ms();
    json_t *r = row_i(db, "d", k);
    ck_assert_str_eq(fstr(r, "status"), "new");
    ck_assert_int_eq(fint(r, "n"), 7);
    ck_assert(json_is_false(json_object_get(r, "flag")));
    int64_t c = iso_ms(fstr(r, "created"));
    ck_assert_msg(c >= t0 - 5 && c <= t1 + 5, "created %s not in [%lld, %lld]", fstr(r, "created"),
                  (long long)t0, (long long)t1);
    int64_t ms = fint(r, "ms");
    ck_assert_msg(ms >= t0 - 5 && ms <= t1 + 5, "ms %lld not in [%lld, %lld]", (long long)ms,
                  (long long)t0, (long long)t1);
    ck_assert_str_eq(fstr(r, "when"), "2020-01-02T03:04:05.000Z");
    /* given values replace defaults; an explicit null is a value */
    k = ins_i(db, "d", "{'status': 'old', 'n': null, 'created': 0, 'flag': true}");
    r = row_i(db, "d", k);
    ck_assert_str_eq(fstr(r, "status"), "old");
    ck_assert(fnull(r, "n"));
    ck_assert(json_is_true(json_object_get(r, "flag")));
    ck_assert_str_eq(fstr(r, "created"), "1970-01-01T00:00:00.000Z");
    /* null in a non-nullable field with a default: not-null, no default */
    ck_assert_int_eq(ins_rc(db, "d", "{'flag': null}", NULL), TS_ERR_NOT_NULL);
    ck_assert_int_eq(count(db, "d"), 2);
    /* the schema keeps its defaults */
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "d", &s), TS_OK);
    keep(s);
    json_t *f = json_array_get(json_object_get(s, "fields"), 3);
    ck_assert_str_eq(fstr(f, "defaultValueType"), "currentTimestamp");
    ck_assert_str_eq(fstr(json_array_get(json_object_get(s, "fields"), 0), "defaultValue"), "new");
    /* a default that breaks its own field is refused at create */
    ck_assert_int_eq(create_rc(db, "{'name': 'e', 'fields': [{'name': 'x', 'type': 'integer',"
                                   "'maxValue': 5, 'defaultValue': 9}]}"),
                     TS_ERR_VALIDATION);
    ts_close(db);
}
END_TEST

START_TEST(unique_fields)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'a', 'email': 'a@x'}"), 1);
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'b', 'email': 'a@x'}", NULL), TS_ERR_UNIQUE);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "email"));
    ck_assert_int_eq(count(db, "users"), 1);
    /* many nulls in a nullable unique field */
    ins(db, "users", "{'name': 'c'}");
    ins(db, "users", "{'name': 'd', 'email': null}");
    ins(db, "users", "{'name': 'e'}");
    ck_assert_int_eq(count(db, "users"), 4);
    /* case matters (bytewise) */
    ins(db, "users", "{'name': 'f', 'email': 'A@x'}");
    /* a freed value can be taken again: after update and after delete */
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'email': 'b@x'}")), TS_OK);
    json_int_t k = ins_i(db, "users", "{'name': 'g', 'email': 'a@x'}");
    ck_assert_int_eq(ts_update(db, "users", I(k), J("{'email': 'b@x'}")), TS_ERR_UNIQUE);
    ck_assert_str_eq(fstr(row_i(db, "users", k), "email"), "a@x");
    ck_assert_int_eq(ts_delete(db, "users", I(k)), TS_OK);
    ins(db, "users", "{'name': 'h', 'email': 'a@x'}");
    /* updating a row to its own value is no conflict */
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'email': 'b@x', 'name': 'a2'}")), TS_OK);

    /* a composite unique index */
    create(db, "{'name': 'm', 'fields': [{'name': 'x', 'type': 'integer'},"
               "{'name': 'y', 'type': 'integer'}],"
               "'indexes': [{'fields': ['x', 'y'], 'unique': true}]}");
    ins(db, "m", "{'x': 1, 'y': 1}");
    ins(db, "m", "{'x': 1, 'y': 2}");
    ins(db, "m", "{'x': 2, 'y': 1}");
    ck_assert_int_eq(ins_rc(db, "m", "{'x': 1, 'y': 2}", NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(count(db, "m"), 3);
    /* unique values survive a reopen */
    db = reopen(db);
    ck_assert_int_eq(ins_rc(db, "m", "{'x': 2, 'y': 1}", NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'z', 'email': 'b@x'}", NULL), TS_ERR_UNIQUE);
    ts_close(db);
}
END_TEST

START_TEST(failed_write_changes_nothing)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a', 'email': 'a@x', 'age': 30}");
    json_t *before = row_i(db, "users", 1);
    /* a failed update leaves the whole row as it was (the valid part too) */
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'name': 'changed', 'age': 200}")),
                     TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'name': null}")), TS_ERR_NOT_NULL);
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'nope': 1}")), TS_ERR_VALIDATION);
    ck_assert(json_equal(before, row_i(db, "users", 1)));
    /* a failed insert does not take its unique value */
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'b', 'email': 'b@x', 'age': -3}", NULL),
                     TS_ERR_VALIDATION);
    ck_assert_int_eq(count(db, "users"), 1);
    ins(db, "users", "{'name': 'b', 'email': 'b@x'}");
    ck_assert_int_eq(count(db, "users"), 2);
    ts_close(db);
}
END_TEST

/* Check every call and report all that do not return TS_ERR_INVALID. */
#define INVALID(call)                                                                          \
    do {                                                                                       \
        int rc_ = (call);                                                                      \
        if (rc_ != TS_ERR_INVALID)                                                             \
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "\n  %s -> %d", #call, rc_);  \
    } while (0)

START_TEST(null_arguments)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a'}");
    json_t *rec = J("{'name': 'x'}"), *pk = I(1), *out = NULL, *recs = J("[{'name': 'y'}]");
    json_t *schema = J("{'name': 'z', 'fields': []}");
    int64_t n;
    char bad[4096] = "";
    INVALID(ts_create_table(NULL, schema));
    INVALID(ts_create_table(db, NULL));
    INVALID(ts_create_tables(NULL, J("[]")));
    INVALID(ts_create_tables(db, NULL));
    INVALID(ts_drop_table(NULL, "users"));
    INVALID(ts_drop_table(db, NULL));
    INVALID(ts_clear_table(NULL, "users"));
    INVALID(ts_clear_table(db, NULL));
    INVALID(ts_get_schema(NULL, "users", &out));
    INVALID(ts_get_schema(db, NULL, &out));
    INVALID(ts_get_schema(db, "users", NULL));
    INVALID(ts_list_tables(NULL, &out));
    INVALID(ts_list_tables(db, NULL));
    INVALID(ts_insert(NULL, "users", rec, &out));
    INVALID(ts_insert(db, NULL, rec, &out));
    INVALID(ts_insert(db, "users", NULL, &out));
    INVALID(ts_get(NULL, "users", pk, &out));
    INVALID(ts_get(db, NULL, pk, &out));
    INVALID(ts_get(db, "users", NULL, &out));
    INVALID(ts_get(db, "users", pk, NULL));
    INVALID(ts_upsert(NULL, "users", rec, &out));
    INVALID(ts_upsert(db, NULL, rec, &out));
    INVALID(ts_upsert(db, "users", NULL, &out));
    INVALID(ts_batch_insert(NULL, "users", recs, 1, &out));
    INVALID(ts_batch_insert(db, NULL, recs, 1, &out));
    INVALID(ts_batch_insert(db, "users", NULL, 1, &out));
    INVALID(ts_batch_upsert(NULL, "users", recs, 1, &out));
    INVALID(ts_batch_upsert(db, NULL, recs, 1, &out));
    INVALID(ts_batch_upsert(db, "users", NULL, 1, &out));
    INVALID(ts_update(NULL, "users", pk, rec));
    INVALID(ts_update(db, NULL, pk, rec));
    INVALID(ts_update(db, "users", NULL, rec));
    INVALID(ts_update(db, "users", pk, NULL));
    INVALID(ts_delete(NULL, "users", pk));
    INVALID(ts_delete(db, NULL, pk));
    INVALID(ts_delete(db, "users", NULL));
    INVALID(ts_count_rows(NULL, "users", &n));
    INVALID(ts_count_rows(db, NULL, &n));
    INVALID(ts_count_rows(db, "users", NULL));
    ck_assert_msg(bad[0] == 0, "not TS_ERR_INVALID:%s", bad);
    ck_assert_ptr_null(out);
    /* nothing happened */
    ck_assert_int_eq(count(db, "users"), 1);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "a");
    ck_assert(json_equal(tables(db), J("['users']")));
    ts_close(db);
}
END_TEST

/* ---- primary-key generators --------------------------------------------- */

START_TEST(pk_timestamp_based)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'n', 'type': 'integer'}],"
               "'primaryKeyConfig': {'type': 'timestampBased'}}");
    json_int_t prev = 0;
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 0; i < 200; i++) {
        json_t *pk = ins(db, "t", "{'n': 1}");
        ck_assert(json_is_integer(pk));
        ck_assert_int_gt(json_integer_value(pk), prev);
        prev = json_integer_value(pk);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(count(db, "t"), 200);
    ck_assert_int_eq(fint(row_i(db, "t", prev), "id"), prev);
    /* by string too */
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)prev);
    ck_assert_int_eq(fint(row_of(db, "t", S(buf)), "id"), prev);
    /* growing with time, across a reopen */
    db = reopen(db);
    sleep_ms(5);
    ck_assert_int_gt(ins_i(db, "t", "{}"), prev);
    ts_close(db);
}
END_TEST

typedef struct node_arg { ts_db *db; int n; json_int_t *keys; int failed; } node_arg;

static void *insert_ts_keys(void *p)
{
    node_arg *a = p;
    if (ts_begin(a->db)) { a->failed = -1; return NULL; }
    json_t *rec = json_object();
    for (int i = 0; i < a->n; i++) {
        json_t *pk = NULL;
        if (ts_insert(a->db, "t", rec, &pk) != TS_OK || !json_is_integer(pk)) a->failed++;
        else a->keys[i] = json_integer_value(pk);
        json_decref(pk);
    }
    json_decref(rec);
    if (ts_commit(a->db)) a->failed++;
    return NULL;
}

static int cmp_key(const void *x, const void *y)
{
    json_int_t a = *(const json_int_t *)x, b = *(const json_int_t *)y;
    return a < b ? -1 : a > b;
}

/* Two nodes generating timestampBased keys at the same time never collide:
 * the node id is part of the key. */
START_TEST(pk_timestamp_node_ids)
{
    enum { N = 3000 };
    char *dir2 = tst_tmpdir("tables-node");
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"nodeId\": 1}", dir);
    ts_db *d1 = open_cfg(cfg);
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"nodeId\": 2}", dir2);
    ts_db *d2 = open_cfg(cfg);
    const char *schema = "{'name': 't', 'fields': [],"
                         "'primaryKeyConfig': {'type': 'timestampBased'}}";
    create(d1, schema);
    create(d2, schema);
    static json_int_t k1[N], k2[N], all[2 * N];
    node_arg a1 = { d1, N, k1, 0 }, a2 = { d2, N, k2, 0 };
    pthread_t t1, t2;
    ck_assert_int_eq(pthread_create(&t1, NULL, insert_ts_keys, &a1), 0);
    ck_assert_int_eq(pthread_create(&t2, NULL, insert_ts_keys, &a2), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ck_assert_int_eq(a1.failed, 0);
    ck_assert_int_eq(a2.failed, 0);
    memcpy(all, k1, sizeof k1);
    memcpy(all + N, k2, sizeof k2);
    qsort(all, 2 * N, sizeof *all, cmp_key);
    for (int i = 1; i < 2 * N; i++)
        ck_assert_msg(all[i] != all[i - 1], "nodes 1 and 2 both generated key %lld",
                      (long long)all[i]);
    ts_close(d1);
    ts_close(d2);
    tst_rmrf(dir2);
    free(dir2);
}
END_TEST

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

START_TEST(pk_date_prefixed)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [], 'primaryKeyConfig': {'type': 'datePrefixed'}}");
    char prev[128] = "";
    for (int i = 0; i < 20; i++) {
        json_t *pk = ins(db, "t", "{}");
        ck_assert(json_is_string(pk));
        const char *s = json_string_value(pk);
        ck_assert_msg(strlen(s) >= 14, "short key %s", s);
        ck_assert_msg(all_digits(s, 14), "key %s does not start with 14 digits", s);
        ck_assert_msg(strcmp(s, prev) > 0, "key %s not after %s", s, prev);
        ck_assert_uint_lt(strlen(s), sizeof prev);
        snprintf(prev, sizeof prev, "%s", s);
        /* the prefix is now (in any time zone: within 14 hours of UTC) */
        struct tm tm = { 0 };
        ck_assert_int_eq(sscanf(s, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                &tm.tm_hour, &tm.tm_min, &tm.tm_sec), 6);
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        int64_t t = (int64_t)timegm(&tm) * 1000, now = now_ms();
        ck_assert_msg(t > now - 15 * 3600 * 1000LL && t < now + 15 * 3600 * 1000LL,
                      "key %s is not now", s);
        ck_assert_str_eq(fstr(row_of(db, "t", pk), "id"), s);
    }
    db = reopen(db);
    json_t *pk = ins(db, "t", "{}");
    ck_assert_int_gt(strcmp(json_string_value(pk), prev), 0);
    ck_assert_int_eq(count(db, "t"), 21);
    ts_close(db);
}
END_TEST

START_TEST(pk_short_code)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [], 'primaryKeyConfig': {'type': 'shortCode'}}");
    char prev[128] = "";
    for (int i = 0; i < 50; i++) {
        json_t *pk = ins(db, "t", "{}");
        ck_assert(json_is_string(pk));
        const char *s = json_string_value(pk);
        ck_assert_uint_gt(strlen(s), 0);
        ck_assert_uint_lt(strlen(s), sizeof prev);
        for (const char *c = s; *c; c++)
            ck_assert_msg((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') ||
                          (*c >= 'a' && *c <= 'z'), "key %s is not base62", s);
        ck_assert_msg(strcmp(s, prev) > 0, "key %s not after %s", s, prev);
        snprintf(prev, sizeof prev, "%s", s);
    }
    ck_assert_str_eq(fstr(row_of(db, "t", S(prev)), "id"), prev);
    db = reopen(db);
    json_t *pk = ins(db, "t", "{}");
    ck_assert_int_gt(strcmp(json_string_value(pk), prev), 0);
    ts_close(db);
}
END_TEST

START_TEST(pk_none)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}],"
               "'primaryKeyConfig': {'type': 'none'}}");
    int rc = ins_rc(db, "t", "{'v': 'x'}", NULL);
    ck_assert_msg(rc < 0, "insert without a key into a 'none' table: %d", rc);
    rc = ins_rc(db, "t", "{'id': null, 'v': 'x'}", NULL);
    ck_assert_msg(rc < 0, "insert with a null key into a 'none' table: %d", rc);
    ck_assert_int_eq(count(db, "t"), 0);
    /* strings and integers, each keeping its type */
    json_t *pk = ins(db, "t", "{'id': 'abc', 'v': 's'}");
    ck_assert(json_is_string(pk));
    ck_assert_str_eq(json_string_value(pk), "abc");
    pk = ins(db, "t", "{'id': 7, 'v': 'i'}");
    ck_assert(json_is_integer(pk));
    ck_assert_int_eq(json_integer_value(pk), 7);
    ck_assert_str_eq(fstr(row_of(db, "t", S("abc")), "v"), "s");
    json_t *r = row_i(db, "t", 7);
    ck_assert_str_eq(fstr(r, "v"), "i");
    ck_assert_int_eq(fint(r, "id"), 7);
    ck_assert_int_eq(ins_rc(db, "t", "{'id': 'abc'}", NULL), TS_ERR_PRIMARY_KEY);
    ck_assert_int_eq(ins_rc(db, "t", "{'id': 7}", NULL), TS_ERR_PRIMARY_KEY);
    ck_assert_int_eq(count(db, "t"), 2);

    /* a declared integer key refuses strings */
    create(db, "{'name': 'n', 'fields': [{'name': 'id', 'type': 'integer'}],"
               "'primaryKeyConfig': {'type': 'none'}}");
    ck_assert_int_eq(ins_rc(db, "n", "{'id': 'abc'}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_i(db, "n", "{'id': 3}"), 3);
    ts_close(db);
}
END_TEST

START_TEST(pk_custom_name)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 't', 'fields': [{'name': 'v', 'type': 'text'}],"
               "'primaryKeyConfig': {'name': 'uid'}}");
    ck_assert_int_eq(ins_i(db, "t", "{'v': 'a'}"), 1);
    ck_assert_int_eq(ins_i(db, "t", "{'uid': 10, 'v': 'b'}"), 10);
    json_t *r = row_i(db, "t", 10);
    ck_assert_int_eq(fint(r, "uid"), 10);
    ck_assert_ptr_null(json_object_get(r, "id"));
    /* "id" is an unknown field here */
    ck_assert_int_eq(ins_rc(db, "t", "{'id': 5}", NULL), TS_ERR_VALIDATION);
    /* a key declared in fields fixes its JSON type */
    create(db, "{'name': 'di', 'fields': [{'name': 'id', 'type': 'integer'}]}");
    ck_assert_int_eq(ins_rc(db, "di", "{'id': 'abc'}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_i(db, "di", "{'id': 4}"), 4);
    ck_assert_int_eq(ins_i(db, "di", "{}"), 5);
    create(db, "{'name': 'dt', 'fields': [{'name': 'id', 'type': 'text'}],"
               "'primaryKeyConfig': {'type': 'datePrefixed'}}");
    ck_assert_int_eq(ins_rc(db, "dt", "{'id': 5}", NULL), TS_ERR_VALIDATION);
    json_t *pk = ins(db, "dt", "{'id': 'mine'}");
    ck_assert_str_eq(json_string_value(pk), "mine");
    ck_assert(json_is_string(ins(db, "dt", "{}")));
    /* and must suit the generator */
    ck_assert_int_eq(create_rc(db, "{'name': 'bad', 'fields': [{'name': 'id', 'type': 'text'}]}"),
                     TS_ERR_VALIDATION);
    ts_close(db);
}
END_TEST

START_TEST(keys_not_reused)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    create(db, "{'name': 's', 'fields': [], 'primaryKeyConfig': {'type': 'shortCode'}}");
    for (int i = 1; i <= 3; i++) ck_assert_int_eq(ins_i(db, "users", "{'name': 'a'}"), i);
    json_t *code = ins(db, "s", "{}");
    char last[128];
    snprintf(last, sizeof last, "%s", json_string_value(code));
    /* deleting the last row frees no key */
    ck_assert_int_eq(ts_delete(db, "users", I(3)), TS_OK);
    ck_assert_int_eq(ts_delete(db, "s", code), TS_OK);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'b'}"), 4);
    ck_assert_int_eq(ts_delete(db, "users", I(4)), TS_OK);
    db = reopen(db);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'c'}"), 5);
    json_t *c2 = ins(db, "s", "{}");
    ck_assert_int_gt(strcmp(json_string_value(c2), last), 0);
    /* a caller key above the sequence survives a reopen too */
    ck_assert_int_eq(ins_i(db, "users", "{'id': 100, 'name': 'd'}"), 100);
    db = reopen(db);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'e'}"), 101);
    ck_assert_int_eq(count(db, "users"), 5);
    ts_close(db);
}
END_TEST

/* ---- upserts and batches ------------------------------------------------ */

START_TEST(upsert_by_primary_key)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a', 'email': 'a@x', 'age': 1}");
    json_t *pk = NULL;
    ck_assert_int_eq(ts_upsert(db, "users", J("{'id': 1, 'age': 2}"), &pk), TS_OK);
    keep(pk);
    ck_assert(json_is_integer(pk));
    ck_assert_int_eq(json_integer_value(pk), 1);
    json_t *r = row_i(db, "users", 1);
    ck_assert_str_eq(fstr(r, "name"), "a");
    ck_assert_str_eq(fstr(r, "email"), "a@x");
    ck_assert_int_eq(fint(r, "age"), 2);
    ck_assert_str_eq(fstr(r, "status"), "new");
    /* defaults only on insert: a changed field missing from the upsert stays */
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'status': 'gold'}")), TS_OK);
    ck_assert_int_eq(ts_upsert(db, "users", J("{'id': 1, 'name': 'a2'}"), NULL), TS_OK);
    r = row_i(db, "users", 1);
    ck_assert_str_eq(fstr(r, "status"), "gold");
    ck_assert_str_eq(fstr(r, "name"), "a2");
    ck_assert_int_eq(fint(r, "age"), 2);
    /* explicit null replaces */
    ck_assert_int_eq(ts_upsert(db, "users", J("{'id': 1, 'age': null}"), NULL), TS_OK);
    ck_assert(fnull(row_i(db, "users", 1), "age"));
    ck_assert_int_eq(count(db, "users"), 1);
    /* an absent key inserts with defaults; the key is used as given */
    pk = NULL;
    ck_assert_int_eq(ts_upsert(db, "users", J("{'id': 10, 'name': 'b'}"), &pk), TS_OK);
    keep(pk);
    ck_assert_int_eq(json_integer_value(pk), 10);
    r = row_i(db, "users", 10);
    ck_assert_str_eq(fstr(r, "status"), "new");
    ck_assert_int_eq(count(db, "users"), 2);
    /* an insert through upsert must satisfy unique constraints */
    ck_assert_int_eq(ts_upsert(db, "users", J("{'id': 12, 'name': 'c', 'email': 'a@x'}"), NULL),
                     TS_ERR_UNIQUE);
    ck_assert_int_eq(get_rc(db, "users", I(12)), TS_ERR_NOT_FOUND);
    /* an insert through upsert must satisfy not-null */
    ck_assert_int_eq(ts_upsert(db, "users", J("{'id': 11, 'age': 3}"), NULL), TS_ERR_NOT_NULL);
    /* an update through upsert is checked */
    ck_assert_int_eq(ts_upsert(db, "users", J("{'id': 10, 'age': 999}"), NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_upsert(db, "users", J("{'id': 10, 'email': 'a@x'}"), NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(count(db, "users"), 2);
    ck_assert(fnull(row_i(db, "users", 10), "age"));
    ts_close(db);
}
END_TEST

START_TEST(upsert_by_unique)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'A', 'email': 'a@x', 'age': 5}");
    json_t *pk = NULL;
    ck_assert_int_eq(ts_upsert(db, "users", J("{'email': 'a@x', 'name': 'B'}"), &pk), TS_OK);
    keep(pk);
    ck_assert_int_eq(json_integer_value(pk), 1);
    ck_assert_int_eq(count(db, "users"), 1);
    json_t *r = row_i(db, "users", 1);
    ck_assert_str_eq(fstr(r, "name"), "B");
    ck_assert_int_eq(fint(r, "age"), 5);
    /* no such unique value: an insert */
    pk = NULL;
    ck_assert_int_eq(ts_upsert(db, "users", J("{'email': 'c@x', 'name': 'C'}"), &pk), TS_OK);
    keep(pk);
    ck_assert_int_eq(json_integer_value(pk), 2);
    ck_assert_int_eq(count(db, "users"), 2);
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "status"), "new");
    /* no conflict target at all: a plain insert */
    pk = NULL;
    ck_assert_int_eq(ts_upsert(db, "users", J("{'name': 'D'}"), &pk), TS_OK);
    keep(pk);
    ck_assert_int_eq(json_integer_value(pk), 3);
    ck_assert_int_eq(count(db, "users"), 3);

    /* a null unique value is no target */
    ck_assert_int_eq(ts_upsert(db, "users", J("{'email': null, 'name': 'E'}"), NULL), TS_OK);
    ck_assert_int_eq(count(db, "users"), 4);

    /* first unique field in field order, then unique indexes */
    create(db, "{'name': 'm', 'fields': [{'name': 'code', 'type': 'text', 'unique': true},"
               "{'name': 'x', 'type': 'integer'}, {'name': 'y', 'type': 'integer'},"
               "{'name': 'v', 'type': 'text'}],"
               "'indexes': [{'fields': ['x', 'y'], 'unique': true}]}");
    ins(db, "m", "{'code': 'c1', 'x': 1, 'y': 1, 'v': 'first'}");
    ins(db, "m", "{'code': 'c2', 'x': 2, 'y': 2, 'v': 'second'}");
    /* x,y of row 1, no code: the index is the target */
    ck_assert_int_eq(ts_upsert(db, "m", J("{'x': 1, 'y': 1, 'v': 'by index'}"), NULL), TS_OK);
    ck_assert_str_eq(fstr(row_i(db, "m", 1), "v"), "by index");
    ck_assert_str_eq(fstr(row_i(db, "m", 1), "code"), "c1");
    /* code given: it is the target even though x,y are present too */
    ck_assert_int_eq(ts_upsert(db, "m", J("{'code': 'c2', 'x': 5, 'y': 5, 'v': 'by code'}"), NULL),
                     TS_OK);
    r = row_i(db, "m", 2);
    ck_assert_str_eq(fstr(r, "v"), "by code");
    ck_assert_int_eq(fint(r, "x"), 5);
    ck_assert_int_eq(count(db, "m"), 2);
    /* only part of the index present: no target, insert */
    ck_assert_int_eq(ts_upsert(db, "m", J("{'x': 1, 'v': 'partial'}"), NULL), TS_OK);
    ck_assert_int_eq(count(db, "m"), 3);
    /* the target found, the update collides with another unique value */
    ck_assert_int_eq(ts_upsert(db, "m", J("{'code': 'c1', 'x': 5, 'y': 5}"), NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(fint(row_i(db, "m", 1), "x"), 1);
    ts_close(db);
}
END_TEST

static json_t *report_get(json_t *rep, const char *key)
{
    json_t *v = json_object_get(rep, key);
    ck_assert_msg(json_is_array(v), "report.%s is not an array", key);
    return v;
}

START_TEST(batch_insert_report)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    /* all succeed */
    json_t *rep = NULL;
    int rc = ts_batch_insert(db, "users", J("[{'name': 'a', 'email': 'a@x'}, {'name': 'b'},"
                                            "{'id': 10, 'name': 'c'}]"), 0, &rep);
    keep(rep);
    ck_assert_int_eq(rc, TS_OK);
    ck_assert(json_equal(report_get(rep, "successKeys"), J("[1, 2, 10]")));
    ck_assert_uint_eq(json_array_size(report_get(rep, "failedKeys")), 0);
    ck_assert_uint_eq(json_array_size(report_get(rep, "errors")), 0);
    ck_assert_int_eq(count(db, "users"), 3);
    ck_assert_str_eq(fstr(row_i(db, "users", 10), "name"), "c");

    /* some fail, allow_partial */
    rep = NULL;
    rc = ts_batch_insert(db, "users", J("[{'name': 'd'}, {'name': 'e', 'email': 'a@x'},"
                                        "{'id': 10, 'name': 'f'}, {'name': 'g', 'age': 20}]"), 1,
                         &rep);
    keep(rep);
    ck_assert_int_eq(rc, TS_PARTIAL);
    json_t *ok = report_get(rep, "successKeys"), *failed = report_get(rep, "failedKeys");
    json_t *errs = report_get(rep, "errors");
    ck_assert_uint_eq(json_array_size(ok), 2);
    ck_assert_str_eq(fstr(row_of(db, "users", json_array_get(ok, 0)), "name"), "d");
    ck_assert_str_eq(fstr(row_of(db, "users", json_array_get(ok, 1)), "name"), "g");
    /* failed: record 1 has no key (its index), record 2 has key 10 */
    ck_assert(json_equal(failed, J("[1, 10]")));
    ck_assert_uint_eq(json_array_size(errs), 2);
    json_t *e0 = json_array_get(errs, 0), *e1 = json_array_get(errs, 1);
    ck_assert_int_eq(fint(e0, "index"), 1);
    ck_assert_int_eq(fint(e0, "code"), TS_ERR_UNIQUE);
    ck_assert_str_ne(fstr(e0, "message"), "");
    ck_assert_int_eq(fint(e1, "index"), 2);
    ck_assert_int_eq(fint(e1, "code"), TS_ERR_PRIMARY_KEY);
    ck_assert_str_ne(fstr(e1, "message"), "");
    ck_assert_int_eq(count(db, "users"), 5);
    ck_assert_str_eq(fstr(row_i(db, "users", 10), "name"), "c");

    /* all fail: the first failure's code */
    rep = NULL;
    rc = ts_batch_insert(db, "users", J("[{'age': 1}, {'name': 'x', 'nope': 1}]"), 1, &rep);
    keep(rep);
    ck_assert_int_eq(rc, TS_ERR_NOT_NULL);
    ck_assert_uint_eq(json_array_size(report_get(rep, "successKeys")), 0);
    ck_assert(json_equal(report_get(rep, "failedKeys"), J("[0, 1]")));
    errs = report_get(rep, "errors");
    ck_assert_uint_eq(json_array_size(errs), 2);
    ck_assert_int_eq(fint(json_array_get(errs, 0), "code"), TS_ERR_NOT_NULL);
    ck_assert_int_eq(fint(json_array_get(errs, 1), "code"), TS_ERR_VALIDATION);
    ck_assert_int_eq(fint(json_array_get(errs, 1), "index"), 1);
    ck_assert_int_eq(count(db, "users"), 5);

    /* a duplicate inside the batch itself */
    rc = ts_batch_insert(db, "users", J("[{'name': 'h', 'email': 'h@x'},"
                                        "{'name': 'i', 'email': 'h@x'}]"), 1, NULL);
    ck_assert_int_eq(rc, TS_PARTIAL);
    ck_assert_int_eq(count(db, "users"), 6);
    /* a record that is not an object fails alone */
    rep = NULL;
    rc = ts_batch_insert(db, "users", J("[5, {'name': 'j'}]"), 1, &rep);
    keep(rep);
    ck_assert_int_eq(rc, TS_PARTIAL);
    e0 = json_array_get(report_get(rep, "errors"), 0);
    ck_assert_int_eq(fint(e0, "index"), 0);
    ck_assert_int_lt(fint(e0, "code"), 0);
    ck_assert(json_equal(report_get(rep, "failedKeys"), J("[0]")));
    ck_assert_int_eq(count(db, "users"), 7);
    /* empty batch */
    ck_assert_int_eq(ts_batch_insert(db, "users", J("[]"), 1, NULL), TS_OK);
    ck_assert_int_eq(count(db, "users"), 7);
    ts_close(db);
}
END_TEST

START_TEST(batch_insert_all_or_nothing)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a', 'email': 'a@x'}");
    json_t *rep = NULL;
    int rc = ts_batch_insert(db, "users", J("[{'name': 'b'}, {'name': 'c'},"
                                            "{'name': 'd', 'email': 'a@x'}, {'name': 'e'}]"),
                         0, &rep);
    keep(rep);
    ck_assert_int_eq(rc, TS_ERR_UNIQUE);
    /* the report names the failure and no key that was rolled back */
    ck_assert_ptr_nonnull(rep);
    ck_assert_uint_eq(json_array_size(report_get(rep, "successKeys")), 0);
    json_t *e = json_array_get(report_get(rep, "errors"), 0);
    ck_assert_int_eq(fint(e, "index"), 2);
    ck_assert_int_eq(fint(e, "code"), TS_ERR_UNIQUE);
    ck_assert_int_eq(count(db, "users"), 1);
    ck_assert_int_eq(get_rc(db, "users", I(2)), TS_ERR_NOT_FOUND);
    /* the values of the rolled-back rows are not taken */
    rc = ts_batch_insert(db, "users",
                         J("[{'name': 'b', 'email': 'b@x'}, {'name': 'x', 'age': -1}]"),
                         0, NULL);
    ck_assert_int_eq(rc, TS_ERR_VALIDATION);
    ck_assert_int_eq(count(db, "users"), 1);
    ins(db, "users", "{'name': 'b', 'email': 'b@x'}");
    /* inside an explicit transaction: the batch is undone, the transaction goes on */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins(db, "users", "{'name': 'in tx'}");
    rc = ts_batch_insert(db, "users", J("[{'name': 'y'}, {'name': 'z', 'email': 'a@x'}]"), 0, NULL);
    ck_assert_int_eq(rc, TS_ERR_UNIQUE);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(count(db, "users"), 3);
    ts_close(db);
}
END_TEST

START_TEST(batch_upsert)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a', 'email': 'a@x', 'age': 1}");
    json_t *rep = NULL;
    int rc = ts_batch_upsert(db, "users", J("[{'email': 'a@x', 'name': 'A'},"
                                            "{'email': 'b@x', 'name': 'B'}, {'id': 1, 'age': 9}]"),
                             0, &rep);
    keep(rep);
    ck_assert_int_eq(rc, TS_OK);
    ck_assert(json_equal(report_get(rep, "successKeys"), J("[1, 2, 1]")));
    ck_assert_uint_eq(json_array_size(report_get(rep, "errors")), 0);
    ck_assert_int_eq(count(db, "users"), 2);
    json_t *r = row_i(db, "users", 1);
    ck_assert_str_eq(fstr(r, "name"), "A");
    ck_assert_int_eq(fint(r, "age"), 9);
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "name"), "B");
    /* partial */
    rep = NULL;
    rc = ts_batch_upsert(db, "users",
                         J("[{'id': 2, 'age': 500}, {'email': 'c@x', 'name': 'C'}]"), 1,
                         &rep);
    keep(rep);
    ck_assert_int_eq(rc, TS_PARTIAL);
    ck_assert(json_equal(report_get(rep, "failedKeys"), J("[2]")));
    json_t *e = json_array_get(report_get(rep, "errors"), 0);
    ck_assert_int_eq(fint(e, "index"), 0);
    ck_assert_int_eq(fint(e, "code"), TS_ERR_VALIDATION);
    ck_assert(json_equal(report_get(rep, "successKeys"), J("[3]")));
    ck_assert_int_eq(count(db, "users"), 3);
    /* the second record finds the row the first one inserted */
    rc = ts_batch_upsert(db, "users", J("[{'email': 'n@x', 'name': 'N1'},"
                                        "{'email': 'n@x', 'name': 'N2'}]"), 0, NULL);
    ck_assert_int_eq(rc, TS_OK);
    ck_assert_int_eq(count(db, "users"), 4);
    ck_assert_str_eq(fstr(row_i(db, "users", 4), "name"), "N2");
    /* without allow_partial: all undone */
    rc = ts_batch_upsert(db, "users",
                         J("[{'id': 1, 'name': 'changed'}, {'id': 2, 'name': null}]"), 0,
                         NULL);
    ck_assert_int_eq(rc, TS_ERR_NOT_NULL);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "A");
    ts_close(db);
}
END_TEST

/* ---- updates and deletes ------------------------------------------------ */

START_TEST(update_and_delete)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a', 'email': 'a@x', 'age': 1}");
    ins(db, "users", "{'name': 'b', 'email': 'b@x', 'age': 2}");
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'age': 5, 'status': 'vip'}")), TS_OK);
    json_t *r = row_i(db, "users", 1);
    ck_assert_str_eq(fstr(r, "name"), "a");
    ck_assert_str_eq(fstr(r, "email"), "a@x");
    ck_assert_int_eq(fint(r, "age"), 5);
    ck_assert_str_eq(fstr(r, "status"), "vip");
    /* "2" finds 2 */
    ck_assert_int_eq(ts_update(db, "users", S("2"), J("{'age': 3}")), TS_OK);
    ck_assert_int_eq(fint(row_i(db, "users", 2), "age"), 3);
    /* an empty change is fine and changes nothing */
    ck_assert_int_eq(ts_update(db, "users", I(2), J("{}")), TS_OK);
    ck_assert_int_eq(fint(row_i(db, "users", 2), "age"), 3);
    /* constraints */
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'age': 151}")), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'email': 'b@x'}")), TS_ERR_UNIQUE);
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'name': null}")), TS_ERR_NOT_NULL);
    ck_assert_int_eq(fint(row_i(db, "users", 1), "age"), 5);
    /* missing row */
    ck_assert_int_eq(ts_update(db, "users", I(99), J("{'age': 1}")), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(get_rc(db, "users", I(99)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(count(db, "users"), 2);
    /* delete */
    ck_assert_int_eq(ts_delete(db, "users", I(1)), TS_OK);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_delete(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'age': 1}")), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(count(db, "users"), 1);
    ck_assert_int_eq(ts_delete(db, "users", S("2")), TS_OK);
    ck_assert_int_eq(count(db, "users"), 0);
    /* gone after a reopen too */
    db = reopen(db);
    ck_assert_int_eq(get_rc(db, "users", I(2)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(count(db, "users"), 0);
    ts_close(db);
}
END_TEST

START_TEST(update_primary_key)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'a', 'email': 'a@x'}");
    ins(db, "users", "{'name': 'b'}");
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'id': 100, 'name': 'a2'}")), TS_OK);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    json_t *r = row_i(db, "users", 100);
    ck_assert_str_eq(fstr(r, "name"), "a2");
    ck_assert_str_eq(fstr(r, "email"), "a@x");
    ck_assert_int_eq(count(db, "users"), 2);
    /* the unique value moved with the row */
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'c', 'email': 'a@x'}", NULL), TS_ERR_UNIQUE);
    /* onto an existing key */
    ck_assert_int_eq(ts_update(db, "users", I(2), J("{'id': 100}")), TS_ERR_PRIMARY_KEY);
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "name"), "b");
    ck_assert_str_eq(fstr(row_i(db, "users", 100), "name"), "a2");
    /* a null key is refused */
    int rc = ts_update(db, "users", I(2), J("{'id': null}"));
    ck_assert_msg(rc < 0, "key set to null: %d", rc);
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "name"), "b");
    /* "changing" the key to itself is a plain update */
    ck_assert_int_eq(ts_update(db, "users", I(2), J("{'id': 2, 'name': 'b2'}")), TS_OK);
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "name"), "b2");
    ck_assert_int_eq(count(db, "users"), 2);
    /* later generated keys stay above the new key */
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'd'}"), 101);
    ts_close(db);
}
END_TEST

/* ---- spaces and global tables ------------------------------------------- */

START_TEST(spaces_rows)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'a', 'email': 'a@x'}"), 1);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'b'}"), 2);
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ck_assert_int_eq(count(db, "users"), 0);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    /* sequences per space, the same key in both, unique values per space */
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'ba', 'email': 'a@x'}"), 1);
    ck_assert_int_eq(ins_i(db, "users", "{'id': 2, 'name': 'bb'}"), 2);
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'bc', 'email': 'a@x'}", NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(count(db, "users"), 2);
    /* updates and deletes stay in the space */
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'name': 'ba2'}")), TS_OK);
    ck_assert_int_eq(ts_delete(db, "users", I(2)), TS_OK);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(count(db, "users"), 2);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "a");
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "name"), "b");
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'c'}"), 3);
    /* an upsert by unique value finds the row of its own space only */
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ck_assert_int_eq(ts_upsert(db, "users", J("{'email': 'a@x', 'name': 'up'}"), NULL), TS_OK);
    ck_assert_int_eq(count(db, "users"), 1);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "up");
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'bd'}"), 3);
    /* after a reopen */
    db = reopen(db);
    ck_assert_str_eq(ts_current_space(db), "default");
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "a");
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'e'}"), 4);
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "up");
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'be'}"), 4);
    ts_close(db);
}
END_TEST

START_TEST(global_tables)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'g', 'isGlobal': true, 'fields': ["
               "{'name': 'code', 'type': 'text', 'unique': true}]}");
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "g", &s), TS_OK);
    keep(s);
    ck_assert(json_is_true(json_object_get(s, "isGlobal")));
    ck_assert_int_eq(ins_i(db, "g", "{'code': 'x'}"), 1);
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ck_assert_int_eq(count(db, "g"), 1);
    ck_assert_str_eq(fstr(row_i(db, "g", 1), "code"), "x");
    /* one sequence, one set of unique values */
    ck_assert_int_eq(ins_i(db, "g", "{'code': 'y'}"), 2);
    ck_assert_int_eq(ins_rc(db, "g", "{'code': 'x'}", NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(ins_rc(db, "g", "{'id': 1}", NULL), TS_ERR_PRIMARY_KEY);
    ck_assert_int_eq(ts_update(db, "g", I(1), J("{'code': 'x2'}")), TS_OK);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(count(db, "g"), 2);
    ck_assert_str_eq(fstr(row_i(db, "g", 1), "code"), "x2");
    ck_assert_str_eq(fstr(row_i(db, "g", 2), "code"), "y");
    /* deleting a space keeps global rows */
    ck_assert_int_eq(ts_delete_space(db, "B"), TS_OK);
    ck_assert_int_eq(count(db, "g"), 2);
    /* clearing a global table from any space clears every row */
    ck_assert_int_eq(ts_switch_space(db, "C", 0), TS_OK);
    ck_assert_int_eq(ts_clear_table(db, "g"), TS_OK);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(count(db, "g"), 0);
    ck_assert_int_eq(get_rc(db, "g", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_i(db, "g", "{'code': 'x'}"), 3);
    ts_close(db);
}
END_TEST

START_TEST(delete_space_rows)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ins(db, "users", "{'name': 'd'}");
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ins(db, "users", "{'name': 'b1', 'email': 'a@x'}");
    ins(db, "users", "{'name': 'b2'}");
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(ts_delete_space(db, "B"), TS_OK);
    ck_assert_int_eq(count(db, "users"), 1);
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ck_assert_int_eq(count(db, "users"), 0);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(get_rc(db, "users", I(2)), TS_ERR_NOT_FOUND);
    /* its unique values went with it */
    ins(db, "users", "{'name': 'b3', 'email': 'a@x'}");
    ck_assert_int_eq(count(db, "users"), 1);
    db = reopen(db);
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ck_assert_int_eq(count(db, "users"), 1);
    ts_close(db);
}
END_TEST

/* ---- transactions ------------------------------------------------------- */

START_TEST(txn_rollback)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins(db, "users", "{'name': 'a', 'email': 'a@x'}");
    ins(db, "users", "{'name': 'b'}");
    /* reads inside see their own writes */
    ck_assert_int_eq(count(db, "users"), 2);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "a");
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_int_eq(count(db, "users"), 0);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(get_rc(db, "users", I(2)), TS_ERR_NOT_FOUND);
    /* unique value free again */
    ins(db, "users", "{'name': 'c', 'email': 'a@x'}");
    ck_assert_int_eq(count(db, "users"), 1);
    /* a rolled-back update and delete */
    json_int_t k = ins_i(db, "users", "{'name': 'd'}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_update(db, "users", I(k), J("{'name': 'zz'}")), TS_OK);
    ck_assert_str_eq(fstr(row_i(db, "users", k), "name"), "zz");
    ck_assert_int_eq(ts_delete(db, "users", I(k)), TS_OK);
    ck_assert_int_eq(get_rc(db, "users", I(k)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_str_eq(fstr(row_i(db, "users", k), "name"), "d");
    ck_assert_int_eq(count(db, "users"), 2);
    ts_close(db);
}
END_TEST

START_TEST(txn_commit_reopen)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 0; i < 3; i++) ins(db, "users", "{'name': 'a'}");
    ck_assert_int_eq(ts_update(db, "users", I(2), J("{'name': 'two'}")), TS_OK);
    ck_assert_int_eq(ts_delete(db, "users", I(3)), TS_OK);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    db = reopen(db);
    ck_assert_int_eq(count(db, "users"), 2);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "a");
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "name"), "two");
    ck_assert_int_eq(get_rc(db, "users", I(3)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'b'}"), 4);
    ts_close(db);
}
END_TEST

typedef struct txn_ctx { int ret; int inserted; } txn_ctx;

static int insert_two(ts_db *db, void *p)
{
    txn_ctx *c = p;
    int rc = ts_insert(db, "users", J("{'name': 'f1'}"), NULL);
    if (!rc) rc = ts_insert(db, "users", J("{'name': 'f2'}"), NULL);
    if (!rc) c->inserted = 2;
    return rc ? rc : c->ret;
}

START_TEST(txn_function)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    txn_ctx c = { -1, 0 };
    ck_assert_int_eq(ts_transaction(db, insert_two, &c), -1);
    ck_assert_int_eq(c.inserted, 2);
    ck_assert_int_eq(count(db, "users"), 0);
    c.ret = 0;
    c.inserted = 0;
    ck_assert_int_eq(ts_transaction(db, insert_two, &c), 0);
    ck_assert_int_eq(c.inserted, 2);
    ck_assert_int_eq(count(db, "users"), 2);
    db = reopen(db);
    ck_assert_int_eq(count(db, "users"), 2);
    ts_close(db);
}
END_TEST

START_TEST(txn_failed_write_inside)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins(db, "users", "{'name': 'a', 'email': 'a@x'}");
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'b', 'email': 'a@x'}", NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'b', 'age': -5}", NULL), TS_ERR_VALIDATION);
    ins(db, "users", "{'name': 'c'}");
    ck_assert_int_eq(count(db, "users"), 2);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(count(db, "users"), 2);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "a");
    ts_close(db);
}
END_TEST

START_TEST(ddl_in_transactions)
{
    ts_db *db = open_db(NULL);
    /* create inside a rolled-back transaction: no table */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    create(db, USERS);
    ins(db, "users", "{'name': 'a'}");
    ck_assert(json_equal(tables(db), J("['users']")));
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_uint_eq(json_array_size(tables(db)), 0);
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "users", &s), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'a'}", NULL), TS_ERR_NOT_FOUND);
    /* the name is free */
    create(db, USERS);
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'b'}"), 1);
    /* drop inside a rolled-back transaction: the table and its rows stay */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_drop_table(db, "users"), TS_OK);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "name"), "b");
    /* clear too */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_clear_table(db, "users"), TS_OK);
    ck_assert_int_eq(count(db, "users"), 0);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_int_eq(count(db, "users"), 1);
    /* a committed create inside a transaction survives a reopen */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    create(db, "{'name': 'later', 'fields': []}");
    ins(db, "later", "{}");
    ck_assert_int_eq(ts_commit(db), TS_OK);
    db = reopen(db);
    ck_assert(json_equal(tables(db), J("['later', 'users']")));
    ck_assert_int_eq(count(db, "later"), 1);
    ts_close(db);
}
END_TEST

/* ---- schemas in the configuration, TTL, persistence ----------------------- */

START_TEST(schemas_in_config)
{
    json_t *cfg = J("{'path': '%s', 'schemas': ["
                    "{'name': 'posts', 'fields': [{'name': 'uid', 'type': 'integer'}],"
                    " 'foreignKeys': [{'fields': ['uid'], 'referencedTable': 'users',"
                    " 'referencedFields': ['id']}]}," USERS "]}",
                    dir);
    char *text = json_dumps(cfg, 0);
    ts_db *db = open_cfg(text);
    ck_assert(json_equal(tables(db), J("['posts', 'users']")));
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'a'}"), 1);
    ck_assert_int_eq(ins_i(db, "posts", "{'uid': 1}"), 1);
    ck_assert_int_eq(ins_rc(db, "posts", "{'uid': 2}", NULL), TS_ERR_FOREIGN_KEY);
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "users", &s), TS_OK);
    keep(s);
    ck_assert_uint_eq(json_array_size(json_object_get(s, "fields")), 4);
    ts_close(db);
    /* the same config again: the tables exist, their rows stay */
    db = open_cfg(text);
    ck_assert(json_equal(tables(db), J("['posts', 'users']")));
    ck_assert_int_eq(count(db, "users"), 1);
    ck_assert_int_eq(count(db, "posts"), 1);
    ts_close(db);
    /* without schemas: stored tables are left alone */
    db = open_db(NULL);
    ck_assert(json_equal(tables(db), J("['posts', 'users']")));
    ts_close(db);
    free(text);
    /* a bad schema in the config fails the open */
    cfg = J("{'path': '%s', 'schemas': [{'name': 'bad',"
            "'fields': [{'name': 'x', 'type': 'strng'}]}]}",
            dir);
    text = json_dumps(cfg, 0);
    ts_db *bad = NULL;
    ck_assert_int_lt(ts_open_json(text, &bad), 0);
    ck_assert_ptr_null(bad);
    free(text);
}
END_TEST

START_TEST(ttl_rows_expire)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'short', 'fields': [{'name': 'v', 'type': 'text'}],"
               "'ttlConfig': {'ttlMs': 50}}");
    create(db, "{'name': 'long', 'fields': [], 'ttlConfig': {'ttlMs': 600000}}");
    create(db, "{'name': 'src', 'fields': [{'name': 'at', 'type': 'datetime'}],"
               "'ttlConfig': {'ttlMs': 3600000, 'sourceField': 'at'}}");
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "short", &s), TS_OK);
    keep(s);
    ck_assert_int_eq(fint(json_object_get(s, "ttlConfig"), "ttlMs"), 50);
    json_int_t k = ins_i(db, "short", "{'v': 'x'}");
    json_int_t l = ins_i(db, "long", "{}");
    /* rows expire an hour after their source field */
    int64_t now = now_ms();
    char rec[128];
    snprintf(rec, sizeof rec, "{'at': %lld}", (long long)(now - 2 * 3600 * 1000LL));
    json_int_t old = ins_i(db, "src", rec);
    snprintf(rec, sizeof rec, "{'at': %lld}", (long long)now);
    json_int_t fresh = ins_i(db, "src", rec);
    ck_assert_int_eq(get_rc(db, "src", I(old)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(get_rc(db, "src", I(fresh)), TS_OK);
    /* a table dropped with short-lived rows leaves nothing that expires the
     * rows of a new table of the same name */
    create(db, "{'name': 'x', 'fields': [], 'ttlConfig': {'ttlMs': 50}}");
    ck_assert_int_eq(ins_i(db, "x", "{'id': 1}"), 1);
    ck_assert_int_eq(ts_drop_table(db, "x"), TS_OK);
    create(db, "{'name': 'x', 'fields': [], 'ttlConfig': {'ttlMs': 600000}}");
    ck_assert_int_eq(ins_i(db, "x", "{'id': 1}"), 1);
    sleep_ms(200);
    ck_assert_int_eq(get_rc(db, "short", I(k)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_i(db, "x", "{'id': 2}"), 2);
    ck_assert_int_eq(get_rc(db, "x", I(1)), TS_OK);
    ck_assert_int_eq(count(db, "x"), 2);
    ck_assert_int_eq(fint(row_i(db, "long", l), "id"), l);
    /* an expired row does not count, and blocks neither its key nor its
     * unique values; updates do not find it */
    create(db, "{'name': 'u', 'fields': [{'name': 'code', 'type': 'text', 'unique': true}],"
               "'ttlConfig': {'ttlMs': 50}}");
    ck_assert_int_eq(ins_i(db, "u", "{'id': 1, 'code': 'x'}"), 1);
    ck_assert_int_eq(ins_i(db, "u", "{'id': 2, 'code': 'y'}"), 2);
    sleep_ms(200);
    ck_assert_int_eq(count(db, "u"), 0);
    ck_assert_int_eq(ts_update(db, "u", I(2), J("{'code': 'z'}")), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_rc(db, "u", "{'id': 1}", NULL), TS_OK);
    ck_assert_int_eq(ins_rc(db, "u", "{'id': 3, 'code': 'y'}", NULL), TS_OK);
    /* still expired after a reopen, and the key is not reused */
    db = reopen(db);
    ck_assert_int_eq(get_rc(db, "short", I(k)), TS_ERR_NOT_FOUND);
    ck_assert_int_gt(ins_i(db, "short", "{'v': 'y'}"), k);
    ck_assert_int_eq(fint(row_i(db, "long", l), "id"), l);
    ts_close(db);
}
END_TEST

START_TEST(persistence)
{
    ts_db *db = open_db(NULL);
    create(db, TYPES);
    create(db, USERS);
    ins(db, "v", "{'i': 1, 'b': '99999999999999999999', 'd': 0.1, 't': 'x', 'bl': 'AAEC',"
                 "'bo': true, 'dt': 1, 'a': [1], 'j': {'a': [true]}}");
    for (int i = 0; i < 100; i++) ins(db, "users", "{'name': 'n', 'age': 7}");
    json_t *r1 = row_i(db, "v", 1), *r2 = row_i(db, "users", 57), *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "users", &s), TS_OK);
    keep(s);
    db = reopen(db);
    ck_assert(json_equal(r1, row_i(db, "v", 1)));
    ck_assert(json_equal(r2, row_i(db, "users", 57)));
    ck_assert_int_eq(count(db, "users"), 100);
    ck_assert_int_eq(count(db, "v"), 1);
    json_t *s2 = NULL;
    ck_assert_int_eq(ts_get_schema(db, "users", &s2), TS_OK);
    keep(s2);
    ck_assert(json_equal(s, s2));
    ck_assert_int_eq(ins_i(db, "users", "{'name': 'm'}"), 101);
    ts_close(db);
}
END_TEST

/* ---- limits, indexes, concurrency, crashes ------------------------------- */

START_TEST(limits)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'l', 'fields': [{'name': 't', 'type': 'text'},"
               "{'name': 'j', 'type': 'json'}, {'name': 'a', 'type': 'array'}]}");
    /* one value: 16 MiB at most */
    size_t big = 16u * 1024 * 1024 + 1;
    char *buf = malloc(big + 1);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'a', big);
    buf[big] = 0;
    json_t *rec = keep(json_object());
    json_object_set_new(rec, "t", json_stringn_nocheck(buf, big));
    free(buf);
    ck_assert_int_eq(ts_insert(db, "l", rec, NULL), TS_ERR_RESOURCE);
    /* nesting: 64 levels, not 65 */
    json_t *deep = json_array(), *leaf = deep;
    for (int i = 1; i < 64; i++) {
        json_t *inner = json_array();
        json_array_append_new(leaf, inner);
        leaf = inner;
    }
    rec = keep(json_object());
    json_object_set_new(rec, "a", deep);
    json_t *pk = NULL;
    ck_assert_int_eq(ts_insert(db, "l", rec, &pk), TS_OK);
    keep(pk);
    ck_assert(json_equal(json_object_get(row_of(db, "l", pk), "a"), deep));
    json_array_append_new(leaf, json_array());
    ck_assert_int_eq(ts_insert(db, "l", rec, NULL), TS_ERR_RESOURCE);
    /* a string key longer than an index key can hold */
    char key[1200];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = 0;
    rec = keep(json_pack("{s:s}", "id", key));
    ck_assert_int_eq(ts_insert(db, "l", rec, NULL), TS_ERR_RESOURCE);
    /* an expression in a json field */
    ck_assert_int_eq(ins_rc(db, "l", "{'j': {'$expr': 'a + 1'}}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(count(db, "l"), 1);
    ts_close(db);
}
END_TEST

START_TEST(indexes)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'ix', 'fields': [{'name': 'a', 'type': 'text'},"
               "{'name': 'b', 'type': 'integer', 'createIndex': true},"
               "{'name': 'h', 'type': 'text'}],"
               "'indexes': [{'fields': ['a', 'b']},"
               "{'fields': ['h'], 'unique': true, 'type': 'hash', 'indexName': 'by_h'}]}");
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "ix", &s), TS_OK);
    keep(s);
    ck_assert(json_equal(json_object_get(s, "indexes"),
                         J("[{'fields': ['a', 'b'], 'indexName': 'idx_a_b', 'unique': false,"
                           "'type': 'btree'},"
                           "{'fields': ['h'], 'indexName': 'by_h', 'unique': true,"
                           "'type': 'hash'}]")));
    ck_assert(json_is_true(json_object_get(json_array_get(json_object_get(s, "fields"), 1),
                                           "createIndex")));
    /* non-unique indexes take duplicates, the unique hash index does not */
    ins(db, "ix", "{'a': 'x', 'b': 1, 'h': 'h1'}");
    ins(db, "ix", "{'a': 'x', 'b': 1, 'h': 'h2'}");
    ck_assert_int_eq(ins_rc(db, "ix", "{'a': 'y', 'h': 'h1'}", NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(ts_update(db, "ix", I(2), J("{'h': 'h1'}")), TS_ERR_UNIQUE);
    ck_assert_int_eq(ts_delete(db, "ix", I(1)), TS_OK);
    ck_assert_int_eq(ts_update(db, "ix", I(2), J("{'h': 'h1', 'b': 5}")), TS_OK);
    ck_assert_int_eq(ins_rc(db, "ix", "{'h': 'h2'}", NULL), TS_OK);
    ck_assert_int_eq(count(db, "ix"), 2);
    /* upsert by the unique hash index */
    ck_assert_int_eq(ts_upsert(db, "ix", J("{'h': 'h1', 'a': 'by hash'}"), NULL), TS_OK);
    ck_assert_str_eq(fstr(row_i(db, "ix", 2), "a"), "by hash");
    ck_assert_int_eq(count(db, "ix"), 2);
    ts_close(db);
}
END_TEST

typedef struct ins_arg { ts_db *db; int n; json_int_t *keys; int failed; } ins_arg;

static void *insert_many(void *p)
{
    ins_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        json_t *rec = json_pack("{s:s, s:i}", "name", "t", "age", i % 100), *pk = NULL;
        int rc = ts_insert(a->db, "users", rec, &pk);
        json_decref(rec);
        if (rc != TS_OK || !json_is_integer(pk)) a->failed++;
        else a->keys[i] = json_integer_value(pk);
        json_decref(pk);
    }
    return NULL;
}

START_TEST(concurrent_inserts)
{
    ts_db *db = open_db("\"durability\": \"normal\"");
    create(db, USERS);
    enum { T = 4, N = 100 };
    static json_int_t keys[T * N];
    pthread_t th[T];
    ins_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (ins_arg){ db, N, keys + i * N, 0 };
        ck_assert_int_eq(pthread_create(&th[i], NULL, insert_many, &args[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].failed, 0);
    }
    ck_assert_int_eq(count(db, "users"), T * N);
    /* the keys are 1..T*N, each once */
    static char seen[T * N + 1];
    for (int i = 0; i < T * N; i++) {
        ck_assert_int_ge(keys[i], 1);
        ck_assert_int_le(keys[i], T * N);
        ck_assert_msg(!seen[keys[i]], "key %lld handed out twice", (long long)keys[i]);
        seen[keys[i]] = 1;
    }
    ts_close(db);
}
END_TEST

typedef struct peek_arg { ts_db *db; int64_t count; int get_rc; } peek_arg;

static void *peek(void *p)
{
    peek_arg *a = p;
    a->count = -1;
    ts_count_rows(a->db, "users", &a->count);
    json_t *pk = json_integer(1), *row = NULL;
    a->get_rc = ts_get(a->db, "users", pk, &row);
    json_decref(pk);
    json_decref(row);
    return NULL;
}

static peek_arg peek_from_thread(ts_db *db)
{
    peek_arg a = { db, -1, 0 };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, peek, &a), 0);
    pthread_join(th, NULL);
    return a;
}

typedef struct mix_arg {
    ts_db *db;
    int which, rounds, bad, last_rc;
    const char *op;
    char msg[256];
} mix_arg;

static void *mixed_worker(void *p)
{
    mix_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        int rc = TS_OK;
        const char *op = "write";
        if (a->which == 0) {
            /* writer: insert, update, delete */
            json_t *rec = json_pack("{s:s, s:i}", "name", "w", "age", i % 100), *pk = NULL;
            rc = ts_insert(a->db, "users", rec, &pk);
            json_decref(rec);
            if (!rc) {
                json_t *ch = json_pack("{s:i}", "age", 1);
                rc = ts_update(a->db, "users", pk, ch);
                json_decref(ch);
            }
            if (!rc && i % 2) rc = ts_delete(a->db, "users", pk);
            json_decref(pk);
        } else if (a->which == 1) {
            /* DDL: create, fill, drop */
            json_t *sch = json_pack("{s:s, s:[{s:s, s:s}]}", "name", "tmp", "fields", "name", "v",
                                    "type", "text");
            rc = ts_create_table(a->db, sch);
            op = "ddl";
            json_decref(sch);
            json_t *rec = json_pack("{s:s}", "v", "x");
            if (!rc) rc = ts_insert(a->db, "tmp", rec, NULL);
            json_decref(rec);
            if (!rc) rc = ts_drop_table(a->db, "tmp");
        } else {
            /* readers */
            json_t *pk = json_integer(1 + i % 50), *row = NULL, *list = NULL, *sch = NULL;
            json_t *trow = NULL;
            int64_t n;
            rc = ts_get(a->db, "users", pk, &row);
            op = "get users";
            if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
            if (!rc) { rc = ts_count_rows(a->db, "users", &n); op = "count users"; }
            if (!rc) { rc = ts_list_tables(a->db, &list); op = "list tables"; }
            if (!rc) {
                rc = ts_get_schema(a->db, "tmp", &sch);
                op = "get_schema tmp";
                if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
            }
            if (!rc) {
                rc = ts_get(a->db, "tmp", pk, &trow);
                op = "get tmp";
                if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
            }
            json_decref(pk);
            json_decref(row);
            json_decref(trow);
            json_decref(list);
            json_decref(sch);
        }
        if (rc) {
            a->bad++;
            a->last_rc = rc;
            a->op = op;
            snprintf(a->msg, sizeof a->msg, "%s", ts_errmsg(a->db));
        }
    }
    return NULL;
}

START_TEST(concurrent_mixed)
{
    ts_db *db = open_db("\"durability\": \"normal\"");
    create(db, USERS);
    enum { T = 4 };
    mix_arg args[T] = { { .db = db, .which = 0, .rounds = 100 },
                        { .db = db, .which = 1, .rounds = 20 },
                        { .db = db, .which = 2, .rounds = 1000 },
                        { .db = db, .which = 2, .rounds = 1000 } };
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, mixed_worker, &args[i]), 0);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    int any_bad = 0;
    for (int i = 0; i < T; i++) any_bad |= args[i].bad != 0;
    if (any_bad) ts_close(db); /* before failing, so that nothing leaks */
    for (int i = 0; i < T; i++)
        ck_assert_msg(args[i].bad == 0, "worker %d: %d failures, last: %s -> %d (%s)", i,
                      args[i].bad, args[i].op, args[i].last_rc, args[i].msg);
    ck_assert_int_eq(count(db, "users"), 50);
    ck_assert(json_equal(tables(db), J("['users']")));
    db = reopen(db);
    ck_assert_int_eq(count(db, "users"), 50);
    ts_close(db);
}
END_TEST

START_TEST(txn_isolation)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    /* another thread does not see uncommitted rows */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins(db, "users", "{'name': 'a'}");
    peek_arg a = peek_from_thread(db);
    ck_assert_int_eq(a.count, 0);
    ck_assert_int_eq(a.get_rc, TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    a = peek_from_thread(db);
    ck_assert_int_eq(a.count, 1);
    ck_assert_int_eq(a.get_rc, TS_OK);
    /* a read snapshot keeps its view while another thread writes, and
     * refuses writes */
    ck_assert_int_eq(ts_begin_read(db), TS_OK);
    pthread_t th;
    json_int_t keys[3] = { 0 };
    ins_arg w = { db, 3, keys, 0 };
    ck_assert_int_eq(pthread_create(&th, NULL, insert_many, &w), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(w.failed, 0);
    ck_assert_int_eq(count(db, "users"), 1);
    ck_assert_int_eq(get_rc(db, "users", I(2)), TS_ERR_NOT_FOUND);
    int rc = ins_rc(db, "users", "{'name': 'ro'}", NULL);
    ck_assert_msg(rc < 0, "insert in a read snapshot: %d", rc);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(count(db, "users"), 4);
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "name"), "t");
    ts_close(db);
}
END_TEST

typedef struct ddl_peek { ts_db *db; int listed; int get_rc; } ddl_peek;

static void *peek_ddl(void *p)
{
    ddl_peek *a = p;
    json_t *list = NULL, *pk = json_integer(1), *row = NULL;
    a->listed = -1;
    if (ts_list_tables(a->db, &list) == TS_OK) {
        a->listed = 0;
        for (size_t i = 0; i < json_array_size(list); i++)
            if (strcmp(json_string_value(json_array_get(list, i)), "fresh") == 0) a->listed = 1;
    }
    a->get_rc = ts_get(a->db, "fresh", pk, &row);
    json_decref(list);
    json_decref(pk);
    json_decref(row);
    return NULL;
}

START_TEST(ddl_isolation)
{
    ts_db *db = open_db(NULL);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    create(db, "{'name': 'fresh', 'fields': []}");
    ins(db, "fresh", "{}");
    ddl_peek a = { db, -1, 0 };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, peek_ddl, &a), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.listed, 0);
    ck_assert_int_eq(a.get_rc, TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(pthread_create(&th, NULL, peek_ddl, &a), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.listed, 1);
    ck_assert_int_eq(a.get_rc, TS_OK);
    ts_close(db);
}
END_TEST

typedef struct ddl_loop {
    ts_db *db;
    int rounds, bad, last_rc;
    int stop; /* atomic */
} ddl_loop;

static void *create_drop_loop(void *p)
{
    ddl_loop *a = p;
    for (int i = 0; i < a->rounds; i++) {
        json_t *sch = json_pack("{s:s, s:[{s:s, s:s}]}", "name", "tmp", "fields", "name", "v",
                                "type", "text");
        int rc = ts_create_table(a->db, sch);
        json_decref(sch);
        json_t *rec = json_pack("{s:s}", "v", "x");
        if (!rc) rc = ts_insert(a->db, "tmp", rec, NULL);
        json_decref(rec);
        if (!rc) rc = ts_drop_table(a->db, "tmp");
        if (rc) {
            a->bad++;
            a->last_rc = rc;
        }
    }
    __atomic_store_n(&a->stop, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *write_until_stop(void *p)
{
    ddl_loop *a = p;
    while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
        json_t *rec = json_pack("{s:s}", "name", "w"), *pk = NULL;
        int rc = ts_insert(a->db, "users", rec, &pk);
        json_decref(rec);
        if (!rc) rc = ts_delete(a->db, "users", pk);
        json_decref(pk);
        if (rc) {
            a->bad++;
            a->last_rc = rc;
        }
    }
    return NULL;
}

/* Reads of a table that another thread creates and drops again and again
 * (while a third one writes to another table) find it (TS_OK) or not
 * (TS_ERR_NOT_FOUND), nothing else. */
START_TEST(ddl_concurrent_reads)
{
    ts_db *db = open_db("\"durability\": \"normal\"");
    create(db, USERS);
    ddl_loop w = { .db = db, .rounds = 1000 }, w2 = { .db = db };
    pthread_t th, th2;
    ck_assert_int_eq(pthread_create(&th, NULL, create_drop_loop, &w), 0);
    ck_assert_int_eq(pthread_create(&th2, NULL, write_until_stop, &w2), 0);
    json_t *pk = I(1);
    long reads = 0, bad = 0;
    int last = 0;
    char msg[256] = "";
    while (!__atomic_load_n(&w.stop, __ATOMIC_ACQUIRE)) {
        json_t *row = NULL;
        int64_t n;
        const char *op = "ts_get";
        int rc = ts_get(db, "tmp", pk, &row);
        json_decref(row);
        if (rc == TS_OK || rc == TS_ERR_NOT_FOUND) {
            op = "ts_count_rows";
            rc = ts_count_rows(db, "tmp", &n);
            if (rc == TS_OK && (n < 0 || n > 1)) rc = TS_ERR_UNKNOWN;
        }
        reads++;
        if (rc != TS_OK && rc != TS_ERR_NOT_FOUND) {
            if (!bad++) snprintf(msg, sizeof msg, "%s: %s", op, ts_errmsg(db));
            last = rc;
        }
    }
    pthread_join(th, NULL);
    __atomic_store_n(&w2.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th2, NULL);
    ts_close(db);
    ck_assert_int_eq(w.bad, 0);
    ck_assert_int_eq(w2.bad, 0);
    ck_assert_msg(bad == 0, "%ld of %ld reads failed, e.g. %d (%s)", bad, reads, last, msg);
}
END_TEST

START_TEST(crash_keeps_keys)
{
    ts_db *db = open_db(NULL);
    create(db, USERS);
    ts_close(db);
    fflush(NULL);
    /* the child reports its progress through a pipe (its exit status may
     * be a sanitizer's) */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        /* the child: three durable inserts, two uncommitted, then dies */
        char cfg[1024];
        snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"}", dir);
        ts_db *c = NULL;
        if (ts_open_json(cfg, &c)) _exit(10);
        for (int i = 0; i < 3; i++) {
            json_t *rec = json_pack("{s:s}", "name", "committed");
            if (ts_insert(c, "users", rec, NULL)) _exit(11);
            json_decref(rec);
        }
        if (ts_begin(c)) _exit(12);
        for (int i = 0; i < 2; i++) {
            json_t *rec = json_pack("{s:s}", "name", "lost");
            if (ts_insert(c, "users", rec, NULL)) _exit(13);
            json_decref(rec);
        }
        if (write(fds[1], "ok", 2) != 2) _exit(14);
        _exit(0);
    }
    close(fds[1]);
    char got[8] = "";
    ssize_t n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(n == 2 && strcmp(got, "ok") == 0, "child failed: status %d", st);
    db = open_db(NULL);
    ck_assert_int_eq(count(db, "users"), 3);
    for (int i = 1; i <= 3; i++) ck_assert_str_eq(fstr(row_i(db, "users", i), "name"), "committed");
    ck_assert_int_eq(get_rc(db, "users", I(4)), TS_ERR_NOT_FOUND);
    /* no committed key is handed out again */
    json_int_t k = ins_i(db, "users", "{'name': 'after'}");
    ck_assert_int_ge(k, 4);
    ck_assert_int_eq(count(db, "users"), 4);
    ts_close(db);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tables");
    TCase *tc = tcase_create("tables");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, schema_create_get_list);
    tcase_add_test(tc, schema_errors_reach_api);
    tcase_add_test(tc, create_tables_fk_order);
    tcase_add_test(tc, create_tables_cycle);
    tcase_add_test(tc, create_tables_all_or_nothing);
    tcase_add_test(tc, drop_table);
    tcase_add_test(tc, clear_table);
    tcase_add_test(tc, insert_sequential_keys);
    tcase_add_test(tc, sequential_config);
    tcase_add_test(tc, caller_supplied_keys);
    tcase_add_test(tc, get_not_found);
    tcase_add_test(tc, values_round_trip);
    tcase_add_test(tc, validation_errors);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, unique_fields);
    tcase_add_test(tc, failed_write_changes_nothing);
    tcase_add_test(tc, null_arguments);
    tcase_add_test(tc, pk_timestamp_based);
    tcase_add_test(tc, pk_timestamp_node_ids);
    tcase_add_test(tc, pk_date_prefixed);
    tcase_add_test(tc, pk_short_code);
    tcase_add_test(tc, pk_none);
    tcase_add_test(tc, pk_custom_name);
    tcase_add_test(tc, keys_not_reused);
    tcase_add_test(tc, upsert_by_primary_key);
    tcase_add_test(tc, upsert_by_unique);
    tcase_add_test(tc, batch_insert_report);
    tcase_add_test(tc, batch_insert_all_or_nothing);
    tcase_add_test(tc, batch_upsert);
    tcase_add_test(tc, update_and_delete);
    tcase_add_test(tc, update_primary_key);
    tcase_add_test(tc, spaces_rows);
    tcase_add_test(tc, global_tables);
    tcase_add_test(tc, delete_space_rows);
    tcase_add_test(tc, txn_rollback);
    tcase_add_test(tc, txn_commit_reopen);
    tcase_add_test(tc, txn_function);
    tcase_add_test(tc, txn_failed_write_inside);
    tcase_add_test(tc, ddl_in_transactions);
    tcase_add_test(tc, schemas_in_config);
    tcase_add_test(tc, ttl_rows_expire);
    tcase_add_test(tc, persistence);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, indexes);
    tcase_add_test(tc, concurrent_inserts);
    tcase_add_test(tc, concurrent_mixed);
    tcase_add_test(tc, txn_isolation);
    tcase_add_test(tc, ddl_isolation);
    tcase_add_test(tc, ddl_concurrent_reads);
    tcase_add_test(tc, crash_keeps_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
