/*
 * Online schema updates through the public header only (docs/migration.md):
 * ts_update_schema, the ts_su_* steps, ts_su_apply and ts_migration_status.
 * Every change kind on a small table (applied at once), the refusals (data
 * untouched, first error reported), a background task on a large table
 * with progress, concurrent writes during it (nothing lost, every row
 * converted), a refused background task, and a SIGKILL in the middle of a
 * task followed by a reopen that resumes it.
 *
 * JSON in the tests is written with single quotes (J() turns them into
 * double quotes).
 */
#define TT_NAME "schema_update"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tables_support.h"

static json_t *status_of(ts_db *db, const char *id)
{
    json_t *st = NULL;
    int rc = ts_migration_status(db, id, &st);
    ck_assert_msg(rc == TS_OK, "status %s: %d %s", id, rc, ts_errmsg(db));
    return keep(st);
}

static const char *state_of(ts_db *db, const char *id)
{
    return json_string_value(json_object_get(status_of(db, id), "state"));
}

/* Apply su; must succeed; returns the task id (kept in the pool). */
static const char *apply_ok(ts_db *db, ts_schema_update *su)
{
    char *id = NULL;
    int rc = ts_su_apply(su, &id);
    ck_assert_msg(rc == TS_OK, "apply: %d %s", rc, ts_errmsg(db));
    ck_assert_ptr_nonnull(id);
    ck_assert_msg(strncmp(id, "mig-", 4) == 0, "task id %s", id);
    json_t *s = S(id);
    free(id);
    return json_string_value(s);
}

/* Apply su, must be done at once. */
static void apply_now(ts_db *db, ts_schema_update *su)
{
    const char *id = apply_ok(db, su);
    json_t *st = status_of(db, id);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "done");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "progressPercentage")), 100);
    ck_assert(json_is_null(json_object_get(st, "error")));
}

static json_t *wait_done(ts_db *db, const char *id, int timeout_s)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        json_t *st = status_of(db, id);
        if (strcmp(json_string_value(json_object_get(st, "state")), "running") != 0) return st;
        clock_gettime(CLOCK_MONOTONIC, &t);
        ck_assert_msg(t.tv_sec - t0.tv_sec < timeout_s, "task %s still running after %d s", id, timeout_s);
        usleep(2000);
    }
}

/* The task's replaced trees are all freed (a step that fails would keep
 * them listed: the wait times out). */
static void wait_cleanup(ts_db *db, const char *id)
{
    for (int i = 0; i < 30000; i++) {
        if (!json_is_true(json_object_get(status_of(db, id), "cleanupPending"))) return;
        usleep(2000);
    }
    ck_abort_msg("task %s: replaced trees still not freed", id);
}

static json_t *schema(ts_db *db, const char *t)
{
    json_t *s = NULL;
    int rc = ts_get_schema(db, t, &s);
    ck_assert_msg(rc == TS_OK, "schema %s: %d %s", t, rc, ts_errmsg(db));
    return keep(s);
}

static json_t *field_def(ts_db *db, const char *t, const char *f)
{
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(schema(db, t), "fields"), i, x)
        if (strcmp(json_string_value(json_object_get(x, "name")), f) == 0) return x;
    return NULL;
}

static int64_t qcount(ts_db *db, const char *t, const char *f, const char *op, json_t *v)
{
    int64_t n = -1;
    ts_query *q = ts_where(ts_query_new(db, t), f, op, v);
    int rc = ts_query_count(q, &n);
    ck_assert_msg(rc == TS_OK, "count %s.%s: %d %s", t, f, rc, ts_errmsg(db));
    ts_query_free(q);
    return n;
}

static const char *plan_index(ts_db *db, const char *t, const char *f, json_t *v)
{
    json_t *plan = NULL;
    ts_query *q = ts_where(ts_query_new(db, t), f, "=", v);
    ck_assert_int_eq(ts_query_explain(q, &plan), TS_OK);
    ts_query_free(q);
    keep(plan);
    json_t *ix = json_object_get(plan, "index");
    return json_is_string(ix) ? json_string_value(ix) : "";
}

/* Rows with keys from+1 .. from+n (batches of 1000). */
static void fill(ts_db *db, const char *t, int from, int n)
{
    for (int b = 0; b < n; b += 1000) {
        json_t *arr = json_array();
        for (int i = from + b + 1; i <= from + n && i <= from + b + 1000; i++)
            json_array_append_new(arr, json_pack("{s:i, s:s+, s:i, s:s+}", "id", i, "name", "u",
                                                 i % 2 ? "odd" : "even", "age", 20 + i % 50,
                                                 "email", "e", "x"));
        /* emails must be unique: e<i> */
        size_t k;
        json_t *r;
        json_array_foreach(arr, k, r) {
            char e[32];
            snprintf(e, sizeof e, "e%lld", (long long)json_integer_value(json_object_get(r, "id")));
            json_object_set_new(r, "email", json_string(e));
        }
        int rc = ts_batch_insert(db, t, arr, 0, NULL);
        ck_assert_msg(rc == TS_OK, "fill: %d %s", rc, ts_errmsg(db));
        json_decref(arr);
    }
}

static void users(ts_db *db, int n)
{
    create(db, "{'name': 'users', 'fields': [{'name': 'name', 'type': 'text', 'nullable': false},"
               "{'name': 'age', 'type': 'integer'}, {'name': 'email', 'type': 'text', 'unique': true}]}");
    fill(db, "users", 0, n);
}

/* ---- every change kind, applied at once -------------------------------- */

START_TEST(rename_table_and_children_follow)
{
    ts_db *db = open_db(NULL);
    users(db, 5);
    create(db, "{'name': 'posts', 'fields': [{'name': 'author', 'type': 'integer'}],"
               "'foreignKeys': [{'fields': ['author'], 'referencedTable': 'users',"
               "'referencedFields': ['id'], 'onDelete': 'cascade'}]}");
    ins(db, "posts", "{'author': 2}");
    apply_now(db, ts_su_rename_table(ts_update_schema(db, "users"), "people"));
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_str_eq(fstr(row_i(db, "people", 3), "name"), "uodd");
    ck_assert_int_eq(count(db, "people"), 5);
    json_t *fk = json_array_get(json_object_get(schema(db, "posts"), "foreignKeys"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(fk, "referencedTable")), "people");
    /* the foreign key still works under the new name: cascade */
    ck_assert_int_eq(ts_delete(db, "people", I(2)), TS_OK);
    ck_assert_int_eq(count(db, "posts"), 0);
    ck_assert_int_eq(ins_rc(db, "posts", "{'author': 99}", NULL), TS_ERR_FOREIGN_KEY);
    /* unique index kept its entries */
    ck_assert_int_eq(ins_rc(db, "people", "{'name': 'x', 'email': 'e3'}", NULL), TS_ERR_UNIQUE);
    db = reopen(db);
    ck_assert_int_eq(count(db, "people"), 4);
    ts_close(db);
}
END_TEST

START_TEST(add_fields)
{
    ts_db *db = open_db(NULL);
    users(db, 10);
    /* nullable without default: metadata only; with default / index: rows converted */
    apply_now(db, ts_su_add_field(ts_update_schema(db, "users"), J("{'name': 'nick', 'type': 'text'}")));
    ck_assert(fnull(row_i(db, "users", 1), "nick"));
    apply_now(db, ts_su_add_field(ts_su_add_field(ts_update_schema(db, "users"),
                                  J("{'name': 'status', 'type': 'text', 'defaultValue': 'new'}")),
                                  J("{'name': 'score', 'type': 'integer', 'createIndex': true, 'defaultValue': 7}")));
    for (int i = 1; i <= 10; i++) {
        json_t *r = row_i(db, "users", i);
        ck_assert_str_eq(fstr(r, "status"), "new");
        ck_assert_int_eq(fint(r, "score"), 7);
        ck_assert_str_eq(fstr(r, "email"), json_string_value(J("'e%d'", i)));
    }
    ck_assert_int_eq(qcount(db, "users", "score", "=", I(7)), 10);
    ck_assert_str_eq(plan_index(db, "users", "score", I(7)), "idx_score");
    ins(db, "users", "{'name': 'n', 'score': 3}");
    ck_assert_int_eq(qcount(db, "users", "score", "=", I(3)), 1);
    ck_assert_int_eq(count(db, "users"), 11);
    ts_close(db);
}
END_TEST

START_TEST(remove_field)
{
    ts_db *db = open_db(NULL);
    users(db, 6);
    apply_now(db, ts_su_add_index(ts_update_schema(db, "users"), J("{'fields': ['age', 'name']}")));
    apply_now(db, ts_su_remove_field(ts_update_schema(db, "users"), "age"));
    json_t *r = row_i(db, "users", 4);
    ck_assert_ptr_null(json_object_get(r, "age"));
    ck_assert_str_eq(fstr(r, "name"), "ueven");
    ck_assert_ptr_null(field_def(db, "users", "age"));
    ck_assert_int_eq(json_array_size(json_object_get(schema(db, "users"), "indexes")), 0);
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'x', 'age': 3}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(count(db, "users"), 6);
    ts_close(db);
}
END_TEST

START_TEST(rename_field_follows_everywhere)
{
    ts_db *db = open_db(NULL);
    users(db, 5);
    create(db, "{'name': 'logins', 'fields': [{'name': 'mail', 'type': 'text'}],"
               "'foreignKeys': [{'fields': ['mail'], 'referencedTable': 'users', 'referencedFields': ['email']}]}");
    ins(db, "logins", "{'mail': 'e2'}");
    apply_now(db, ts_su_rename_field(ts_su_rename_field(ts_update_schema(db, "users"), "email", "mail"),
                                     "id", "uid"));
    json_t *r = row_i(db, "users", 2);
    ck_assert_str_eq(fstr(r, "mail"), "e2");
    ck_assert_int_eq(fint(r, "uid"), 2);
    ck_assert_ptr_null(json_object_get(r, "email"));
    /* unique follows, the index kept its entries */
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'x', 'mail': 'e1'}", NULL), TS_ERR_UNIQUE);
    ck_assert_int_eq(qcount(db, "users", "mail", "=", S("e4")), 1);
    json_t *fk = json_array_get(json_object_get(schema(db, "logins"), "foreignKeys"), 0);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(fk, "referencedFields"), 0)), "mail");
    ck_assert_int_eq(ins_rc(db, "logins", "{'mail': 'nobody'}", NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ins_rc(db, "logins", "{'mail': 'e3'}", NULL), TS_OK);
    /* a swap of names in one update */
    apply_now(db, ts_su_rename_field(ts_su_rename_field(ts_su_rename_field(ts_update_schema(db, "users"),
              "name", "tmp"), "mail", "name"), "tmp", "mail"));
    r = row_i(db, "users", 2);
    ck_assert_str_eq(fstr(r, "name"), "e2");
    ck_assert_str_eq(fstr(r, "mail"), "ueven");
    db = reopen(db);
    ck_assert_str_eq(fstr(row_i(db, "users", 2), "name"), "e2");
    ts_close(db);
}
END_TEST

START_TEST(modify_field)
{
    ts_db *db = open_db(NULL);
    users(db, 8);
    /* integer -> text: values converted; then relaxed (metadata only) */
    apply_now(db, ts_su_modify_field(ts_update_schema(db, "users"), "age", J("{'type': 'text', 'maxLength': 5}")));
    ck_assert_str_eq(fstr(row_i(db, "users", 3), "age"), "23");
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'x', 'age': '123456'}", NULL), TS_ERR_VALIDATION);
    apply_now(db, ts_su_modify_field(ts_update_schema(db, "users"), "age",
                                     J("{'maxLength': null, 'comment': 'years', 'name': 'years'}")));
    json_t *f = field_def(db, "users", "years");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_null(json_object_get(f, "maxLength"));
    ck_assert_str_eq(json_string_value(json_object_get(f, "comment")), "years");
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'x', 'years': '123456'}", NULL), TS_OK);
    /* back to integer: every value converts */
    ck_assert_int_eq(ts_delete(db, "users", I(9)), TS_OK);
    apply_now(db, ts_su_modify_field(ts_update_schema(db, "users"), "years", J("{'type': 'integer', 'nullable': false, 'defaultValue': 0}")));
    ck_assert_int_eq(fint(row_i(db, "users", 5), "years"), 25);
    ts_close(db);
}
END_TEST

START_TEST(indexes)
{
    ts_db *db = open_db(NULL);
    users(db, 30);
    apply_now(db, ts_su_add_index(ts_update_schema(db, "users"), J("{'fields': ['age'], 'indexName': 'by_age'}")));
    ck_assert_str_eq(plan_index(db, "users", "age", I(21)), "by_age");
    ck_assert_int_eq(qcount(db, "users", "age", "=", I(21)), 1);
    ck_assert_int_eq(qcount(db, "users", "age", ">=", I(40)), 11);
    /* a taken name */
    char *id = NULL;
    ck_assert_int_eq(ts_su_apply(ts_su_add_index(ts_update_schema(db, "users"),
                     J("{'fields': ['name'], 'indexName': 'by_age'}")), &id), TS_ERR_INDEX_EXISTS);
    ck_assert_ptr_null(id);
    apply_now(db, ts_su_remove_index(ts_update_schema(db, "users"), J("['age']")));
    ck_assert_str_eq(plan_index(db, "users", "age", I(21)), "");
    ck_assert_int_eq(qcount(db, "users", "age", "=", I(21)), 1);
    /* a unique field's index: removing it lifts the constraint */
    apply_now(db, ts_su_remove_index(ts_update_schema(db, "users"), S("email")));
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'x', 'email': 'e1'}", NULL), TS_OK);
    ck_assert_int_eq(ts_su_apply(ts_su_remove_index(ts_update_schema(db, "users"), S("email")), NULL),
                     TS_ERR_NOT_FOUND);
    ts_close(db);
}
END_TEST

START_TEST(primary_key_type_rekeys)
{
    ts_db *db = open_db(NULL);
    users(db, 6);
    create(db, "{'name': 'posts', 'fields': [{'name': 'author', 'type': 'integer'}],"
               "'foreignKeys': [{'fields': ['author'], 'referencedTable': 'users', 'referencedFields': ['id']}]}");
    for (int i = 1; i <= 6; i++) ck_assert_int_eq(ts_insert(db, "posts", J("{'author': %d}", i), NULL), TS_OK);
    apply_now(db, ts_su_set_primary_key_config(ts_update_schema(db, "users"), J("{'type': 'shortCode'}")));
    json_t *pkc = json_object_get(schema(db, "users"), "primaryKeyConfig");
    ck_assert_str_eq(json_string_value(json_object_get(pkc, "type")), "shortCode");
    json_t *r = row_of(db, "users", S("4"));
    ck_assert_str_eq(fstr(r, "id"), "4");
    ck_assert_str_eq(fstr(r, "email"), "e4");
    ck_assert_str_eq(json_string_value(json_object_get(field_def(db, "posts", "author"), "type")), "text");
    ck_assert_str_eq(fstr(row_i(db, "posts", 3), "author"), "3");
    /* new keys are short codes; the foreign key holds with the new type */
    json_t *k = ins(db, "users", "{'name': 'new'}");
    ck_assert(json_is_string(k));
    ck_assert_int_eq(ts_insert(db, "posts", J("{'author': '%s'}", json_string_value(k)), NULL), TS_OK);
    ck_assert_int_eq(ins_rc(db, "posts", "{'author': '999'}", NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "users"), 7);
    ts_close(db);
}
END_TEST

/* ---- refusals ------------------------------------------------------------ */

START_TEST(failed_steps_report_the_first_error)
{
    ts_db *db = open_db(NULL);
    users(db, 3);
    json_t *before = schema(db, "users");
    ck_assert_ptr_null(ts_su_add_field(NULL, J("{'name': 'x', 'type': 'text'}")));
    ck_assert_int_eq(ts_su_apply(NULL, NULL), TS_ERR_INVALID);
    ck_assert_ptr_null(ts_update_schema(NULL, "users"));
    ts_schema_update *su = ts_update_schema(db, "users");
    ck_assert_ptr_eq(ts_su_rename_field(su, "nope", "x"), su);
    ts_su_add_field(su, J("{'name': 'ok', 'type': 'text'}"));
    ts_su_remove_field(su, "id");
    ck_assert_int_eq(ts_su_apply(su, NULL), TS_ERR_NOT_FOUND);
    ck_assert_msg(strstr(ts_errmsg(db), "nope") != NULL, "message: %s", ts_errmsg(db));
    ck_assert_int_eq(ts_su_apply(ts_update_schema(db, "nosuch"), NULL), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_su_apply(ts_su_add_field(ts_update_schema(db, "users"), J("{'name': 'email', 'type': 'text'}")), NULL),
                     TS_ERR_FIELD_EXISTS);
    ck_assert_int_eq(ts_su_apply(ts_su_remove_field(ts_update_schema(db, "users"), "id"), NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_su_apply(ts_su_add_field(ts_update_schema(db, "users"), J("{'name': 'x', 'type': 'strng'}")), NULL),
                     TS_ERR_VALIDATION);
    ck_assert_msg(strstr(ts_errmsg(db), "strng") != NULL, "message: %s", ts_errmsg(db));
    /* the table changed between ts_update_schema and apply */
    su = ts_su_add_field(ts_update_schema(db, "users"), J("{'name': 'x', 'type': 'text'}"));
    apply_now(db, ts_su_add_field(ts_update_schema(db, "users"), J("{'name': 'y', 'type': 'text'}")));
    ck_assert_int_eq(ts_su_apply(su, NULL), TS_ERR_DB);
    ts_su_free(ts_su_add_field(ts_update_schema(db, "users"), J("{'name': 'z', 'type': 'text'}")));
    ts_su_free(NULL);
    ck_assert_ptr_null(field_def(db, "users", "x"));
    ck_assert_ptr_null(field_def(db, "users", "z"));
    (void)before;
    ts_close(db);
}
END_TEST

START_TEST(lossy_changes_refused_data_untouched)
{
    ts_db *db = open_db(NULL);
    users(db, 5);
    ins(db, "users", "{'name': 'dup', 'age': 21, 'email': 'e9'}");  /* age 21 twice */
    ck_assert_int_eq(ts_update(db, "users", I(2), J("{'email': 'abcdefghijkl'}")), TS_OK);
    json_t *before = schema(db, "users");
    struct { const char *what; ts_schema_update *su; int code; } c[] = {
        { "text to integer", ts_su_modify_field(ts_update_schema(db, "users"), "name", J("{'type': 'integer'}")), TS_ERR_VALIDATION },
        { "unique over duplicates", ts_su_modify_field(ts_update_schema(db, "users"), "age", J("{'unique': true}")), TS_ERR_VALIDATION },
        { "maxLength below a value", ts_su_modify_field(ts_update_schema(db, "users"), "email", J("{'maxLength': 5}")), TS_ERR_VALIDATION },
        { "unique index", ts_su_add_index(ts_update_schema(db, "users"), J("{'fields': ['age'], 'unique': true}")), TS_ERR_VALIDATION },
        { "non-null without default", ts_su_add_field(ts_update_schema(db, "users"), J("{'name': 'q', 'type': 'text', 'nullable': false}")), TS_ERR_VALIDATION },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        int rc = ts_su_apply(c[i].su, NULL);
        ck_assert_msg(rc == c[i].code, "%s: %d %s", c[i].what, rc, ts_errmsg(db));
        ck_assert_msg(json_equal(schema(db, "users"), before), "%s: schema changed", c[i].what);
        ck_assert_int_eq(count(db, "users"), 6);
        ck_assert_str_eq(fstr(row_i(db, "users", 2), "email"), "abcdefghijkl");
        ck_assert_int_eq(fint(row_i(db, "users", 6), "age"), 21);
    }
    ts_close(db);
}
END_TEST

START_TEST(unknown_task)
{
    ts_db *db = open_db(NULL);
    users(db, 1);
    json_t *st = NULL;
    ck_assert_int_eq(ts_migration_status(db, "mig-999", &st), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(st);
    ck_assert_int_eq(ts_migration_status(db, NULL, &st), TS_ERR_INVALID);
    const char *id = apply_ok(db, ts_su_rename_field(ts_update_schema(db, "users"), "age", "years"));
    db = reopen(db);
    ck_assert_str_eq(state_of(db, id), "done");
    ts_close(db);
}
END_TEST

/* ---- background tasks ------------------------------------------------------ */

#define BIG 50000
#define BG_CFG "\"durability\": \"normal\", \"migration\": {\"batchRows\": 2000}"

typedef struct writer {
    ts_db *db;
    int stop;     /* atomic */
    int inserted, updated, deleted;
    int during;   /* writes while the task was running */
    const char *id;
    unsigned char touched[BIG + 1]; /* keys the writer updated */
} writer;

/* Inserts keys BIG+1.., updates and deletes old keys, during the task. */
static void *writer_main(void *arg)
{
    writer *w = arg;
    unsigned seed = 7;
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        int k = BIG + 1 + w->inserted;
        json_t *rec = json_pack("{s:i, s:s, s:i, s:s+}", "id", k, "name", "w", "age", 1, "email", "w", "");
        char e[32];
        snprintf(e, sizeof e, "w%d", k);
        json_object_set_new(rec, "email", json_string(e));
        int rc = ts_insert(w->db, "users", rec, NULL);
        json_decref(rec);
        if (rc != TS_OK) { fprintf(stderr, "writer insert: %d %s\n", rc, ts_errmsg(w->db)); break; }
        w->inserted++;
        /* an update of an old row (before or after the task's position) */
        int u = 1 + (int)(rand_r(&seed) % (BIG / 2)) * 2; /* odd keys */
        json_t *pk = json_integer(u), *ch = json_pack("{s:i}", "age", 1000 + u % 7);
        rc = ts_update(w->db, "users", pk, ch);
        json_decref(pk);
        json_decref(ch);
        if (rc != TS_OK) { fprintf(stderr, "writer update: %d %s\n", rc, ts_errmsg(w->db)); break; }
        w->updated++;
        w->touched[u] = 1;
        if (w->inserted % 10 == 0) {
            /* delete even keys 2, 4, ... in order */
            json_t *d = json_integer(2 * (w->deleted + 1));
            rc = ts_delete(w->db, "users", d);
            json_decref(d);
            if (rc != TS_OK) { fprintf(stderr, "writer delete: %d %s\n", rc, ts_errmsg(w->db)); break; }
            w->deleted++;
        }
        json_t *st = NULL;
        if (ts_migration_status(w->db, w->id, &st) == TS_OK &&
            strcmp(json_string_value(json_object_get(st, "state")), "running") == 0)
            w->during++;
        json_decref(st);
    }
    return NULL;
}

START_TEST(background_task_with_concurrent_writes)
{
    ts_db *db = open_db(BG_CFG);
    users(db, BIG);
    const char *id = apply_ok(db, ts_su_add_field(ts_update_schema(db, "users"),
                              J("{'name': 'level', 'type': 'integer', 'defaultValue': 5, 'createIndex': true}")));
    json_t *st = status_of(db, id);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "running");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "total")), BIG);
    ck_assert_ptr_null(field_def(db, "users", "level")); /* the old schema until the swap */
    /* the schema cannot change meanwhile */
    ck_assert_int_eq(ts_su_apply(ts_su_rename_field(ts_update_schema(db, "users"), "age", "x"), NULL), TS_ERR_DB);
    ck_assert_int_eq(ts_drop_table(db, "users"), TS_ERR_DB);
    ck_assert_int_eq(ts_rebuild_table(db, "users", NULL, NULL), TS_ERR_DB);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "cannot rebuild"));
    static writer w;
    memset(&w, 0, sizeof w);
    w.db = db;
    w.id = id;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, writer_main, &w), 0);
    /* progress only grows */
    int64_t last = -1;
    int polls = 0;
    for (;;) {
        st = status_of(db, id);
        int64_t p = json_integer_value(json_object_get(st, "processed"));
        ck_assert_msg(p >= last, "progress went back: %lld < %lld", (long long)p, (long long)last);
        last = p;
        polls++;
        if (strcmp(json_string_value(json_object_get(st, "state")), "running") != 0) break;
        ck_assert_int_le(json_integer_value(json_object_get(st, "progressPercentage")), 99);
        usleep(5000);
    }
    __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "done");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "progressPercentage")), 100);
    ck_assert_msg(w.during > 0, "no write ran during the task");
    fprintf(stderr, "background: %d polls, writer: %d inserts, %d updates, %d deletes (%d during the task)\n",
            polls, w.inserted, w.updated, w.deleted, w.during);
    ck_assert_ptr_nonnull(field_def(db, "users", "level"));
    int64_t want = BIG + w.inserted - w.deleted;
    ck_assert_int_eq(count(db, "users"), want);
    /* every row converted (default 5 through the new index), none lost */
    ck_assert_int_eq(qcount(db, "users", "level", "=", I(5)), want);
    ck_assert_str_eq(plan_index(db, "users", "level", I(5)), "idx_level");
    for (int i = 1; i <= w.inserted; i += 97) ck_assert_int_eq(fint(row_i(db, "users", BIG + i), "level"), 5);
    for (int d = 1; d <= w.deleted; d++) ck_assert_int_eq(get_rc(db, "users", I(2 * d)), TS_ERR_NOT_FOUND);
    /* every update kept, none invented: the writer's ages are 1000 + key % 7 */
    int64_t upd = 0;
    for (int u = 1; u <= BIG; u += 2) {
        if (!w.touched[u]) continue;
        upd++;
        json_t *r = row_i(db, "users", u);
        ck_assert_int_eq(fint(r, "age"), 1000 + u % 7);
        ck_assert_int_eq(fint(r, "level"), 5);
    }
    ck_assert_int_eq(qcount(db, "users", "age", ">=", I(1000)), upd);
    /* unique index still enforced on the new trees */
    ck_assert_int_eq(ins_rc(db, "users", "{'name': 'x', 'email': 'e1'}", NULL), TS_ERR_UNIQUE);
    wait_cleanup(db, id);
    json_t *check = NULL;
    ck_assert_int_eq(ts_check(db, &check, NULL, NULL), TS_OK);
    json_decref(check);
    db = reopen(db);
    ck_assert(!json_is_true(json_object_get(status_of(db, id), "cleanupPending")));
    ck_assert_int_eq(count(db, "users"), want);
    ck_assert_int_eq(qcount(db, "users", "level", "=", I(5)), want);
    ts_close(db);
}
END_TEST

START_TEST(background_task_refused)
{
    ts_db *db = open_db("\"migration\": {\"batchRows\": 500}");
    users(db, 5000);
    /* ages become text (a task), then one row, after 8 batches, has an age
     * that cannot go back to integer */
    const char *id = apply_ok(db, ts_su_modify_field(ts_update_schema(db, "users"), "age",
                                                     J("{'type': 'text'}")));
    ck_assert_str_eq(json_string_value(json_object_get(wait_done(db, id, 60), "state")), "done");
    json_t *before = schema(db, "users");
    ck_assert_int_eq(ts_update(db, "users", I(4000), J("{'age': 'not a number'}")), TS_OK);
    id = apply_ok(db, ts_su_modify_field(ts_update_schema(db, "users"), "age", J("{'type': 'integer'}")));
    json_t *st = wait_done(db, id, 60);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "failed");
    json_t *err = json_object_get(st, "error");
    ck_assert_int_eq(json_integer_value(json_object_get(err, "code")), TS_ERR_VALIDATION);
    ck_assert_msg(strstr(json_string_value(json_object_get(err, "message")), "users") != NULL, "%s",
                  json_string_value(json_object_get(err, "message")));
    ck_assert(json_equal(schema(db, "users"), before));
    ck_assert_int_eq(count(db, "users"), 5000);
    ck_assert_str_eq(fstr(row_i(db, "users", 4000), "age"), "not a number");
    ck_assert_str_eq(fstr(row_i(db, "users", 3999), "age"), "69");
    ck_assert_int_ge(json_integer_value(json_object_get(st, "processed")), 3500);
    /* the table can change again */
    apply_now(db, ts_su_rename_field(ts_update_schema(db, "users"), "age", "years"));
    wait_cleanup(db, id);
    db = reopen(db);
    ck_assert_str_eq(state_of(db, id), "failed");
    ck_assert(!json_is_true(json_object_get(status_of(db, id), "cleanupPending")));
    ts_close(db);
}
END_TEST

START_TEST(close_mid_task_resumes)
{
    const char *slow = "\"migration\": {\"batchRows\": 300, \"batchPauseMs\": 20}";
    ts_db *db = open_db(slow);
    users(db, 6000);
    const char *id = apply_ok(db, ts_su_modify_field(ts_update_schema(db, "users"), "age",
                                                     J("{'type': 'text', 'createIndex': true}")));
    json_t *st = status_of(db, id);
    while (json_integer_value(json_object_get(st, "processed")) == 0) {
        usleep(5000);
        st = status_of(db, id);
    }
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "running");
    /* a write behind the walk and one ahead of it, then a clean close */
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'age': 77}")), TS_OK);
    ck_assert_int_eq(ts_update(db, "users", I(6000), J("{'age': 78}")), TS_OK);
    ck_assert_int_eq(ts_delete(db, "users", I(2)), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);
    db = open_db(slow);
    st = status_of(db, id);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "running");
    ck_assert_int_gt(json_integer_value(json_object_get(st, "processed")), 0);
    ck_assert_int_lt(json_integer_value(json_object_get(st, "processed")), 6000);
    ck_assert_int_eq(fint(row_i(db, "users", 1), "age"), 77); /* old schema until the swap */
    db = reopen(db);  /* without the slow config: the rest runs at full speed */
    st = wait_done(db, id, 60);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "done");
    ck_assert_str_eq(fstr(row_i(db, "users", 1), "age"), "77");
    ck_assert_str_eq(fstr(row_i(db, "users", 6000), "age"), "78");
    ck_assert_str_eq(fstr(row_i(db, "users", 3), "age"), "23");
    ck_assert_int_eq(get_rc(db, "users", I(2)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(count(db, "users"), 5999);
    ck_assert_int_eq(qcount(db, "users", "age", "=", S("77")), 1);
    ck_assert_str_eq(plan_index(db, "users", "age", S("77")), "idx_age");
    ts_close(db);
}
END_TEST

/* Rows of every space are converted, each space keeps its rows and count. */
START_TEST(background_task_spaces)
{
    ts_db *db = open_db("\"migration\": {\"batchRows\": 100}");
    users(db, 700);
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    fill(db, "users", 0, 400);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    const char *id = apply_ok(db, ts_su_add_field(ts_update_schema(db, "users"),
                              J("{'name': 'flag', 'type': 'boolean', 'defaultValue': true}")));
    /* writes in both spaces while it runs */
    ck_assert_int_eq(ts_delete(db, "users", I(1)), TS_OK);
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ins(db, "users", "{'name': 'late', 'email': 'late'}");
    ck_assert_str_eq(json_string_value(json_object_get(wait_done(db, id, 60), "state")), "done");
    ck_assert_int_eq(count(db, "users"), 401);
    ck_assert_int_eq(qcount(db, "users", "flag", "=", keep(json_true())), 401);
    ck_assert(json_is_true(json_object_get(row_i(db, "users", 400), "flag")));
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(count(db, "users"), 699);
    ck_assert_int_eq(qcount(db, "users", "flag", "=", keep(json_true())), 699);
    ck_assert_int_eq(get_rc(db, "users", I(1)), TS_ERR_NOT_FOUND);
    wait_cleanup(db, id);
    ts_close(db);
}
END_TEST

/* A background task on a table whose rows leave their vectors to an ngh
 * index: the walk reads each row whole from the old trees, writes during
 * the task (a changed vector, a delete, an insert) follow, and afterwards
 * every row has its vector and searches find them. */
static void vec_of(int i, float *v)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    for (int d = 0; d < 8; d++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v[d] = (float)(x % 10000) / 100.0f;
    }
}

START_TEST(background_task_vector_rows)
{
    ts_db *db = open_db("\"migration\": {\"batchRows\": 100}");
    create(db, "{'name': 'v', 'fields': [{'name': 'n', 'type': 'integer'}, {'name': 'e', 'type': 'vector', "
               "'vectorConfig': {'dimensions': 8}}], 'indexes': [{'type': 'ngh', 'fields': ['e']}]}");
    float v[8];
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 1; i <= 700; i++) {
        vec_of(i, v);
        json_t *rec = json_pack("{s:i, s:i, s:o}", "id", i, "n", i, "e", ts_vector_value(v, 8));
        ck_assert_int_eq(ts_insert(db, "v", rec, NULL), TS_OK);
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    const char *id = apply_ok(db, ts_su_add_field(ts_update_schema(db, "v"),
                              J("{'name': 'flag', 'type': 'boolean', 'defaultValue': true}")));
    vec_of(5000, v);
    json_t *ch = keep(json_pack("{s:o}", "e", ts_vector_value(v, 8)));
    ck_assert_int_eq(ts_update(db, "v", I(650), ch), TS_OK);   /* ahead of the walk */
    ck_assert_int_eq(ts_delete(db, "v", I(651)), TS_OK);
    vec_of(701, v);
    json_t *rec = keep(json_pack("{s:i, s:i, s:o}", "id", 701, "n", 701, "e", ts_vector_value(v, 8)));
    ck_assert_int_eq(ts_insert(db, "v", rec, NULL), TS_OK);
    /* polled without the JSON pool: the task runs some 20 batches */
    int done = 0;
    for (int i = 0; i < 60000 && !done; i++) {
        json_t *st = NULL;
        ck_assert_int_eq(ts_migration_status(db, id, &st), TS_OK);
        const char *state = json_string_value(json_object_get(st, "state"));
        ck_assert_msg(!strcmp(state, "running") || !strcmp(state, "done"), "task %s", state);
        done = !strcmp(state, "done") && !json_is_true(json_object_get(st, "cleanupPending"));
        json_decref(st);
        if (!done) usleep(2000);
    }
    if (!done) { json_t *st = NULL; ts_migration_status(db, id, &st); char *js = json_dumps(st, 0); fprintf(stderr, "%s\n", js); free(js); json_decref(st); }
    ck_assert_msg(done, "the task did not finish");
    db = reopen(db);
    ck_assert_int_eq(count(db, "v"), 700);
    for (int i = 1; i <= 701; i++) {
        json_t *pk = json_integer(i), *row = NULL;
        int rc = ts_get(db, "v", pk, &row);
        json_decref(pk);
        if (i == 651) { ck_assert_int_eq(rc, TS_ERR_NOT_FOUND); continue; }
        ck_assert_msg(rc == TS_OK, "row %d: %d %s", i, rc, ts_errmsg(db));
        ck_assert(json_is_true(json_object_get(row, "flag")));
        vec_of(i == 650 ? 5000 : i, v);
        const json_t *e = json_object_get(row, "e");
        ck_assert_uint_eq(json_array_size(e), 8);
        for (int d = 0; d < 8; d++)
            ck_assert_msg(json_real_value(json_array_get(e, (size_t)d)) == (double)v[d], "row %d element %d", i, d);
        json_decref(row);
        /* the nearest row to a row's own vector is itself */
        if (i % 50 == 0) {
            ts_result *r = NULL;
            ts_query *q = ts_query_new(db, "v");
            ck_assert_int_eq(ts_vector_search(q, "e", v, 8, 1, &r), TS_OK);
            ts_query_free(q);
            ck_assert_uint_eq(ts_result_count(r), 1);
            ck_assert_int_eq(fint(ts_result_row(r, 0), "id"), i);
            ts_result_free(r);
        }
    }
    ck_assert_int_eq(ts_check(db, NULL, NULL, NULL), TS_OK);
    ts_close(db);
}
END_TEST

/* "schemas" in the config at open: unfinished tasks finish first, then the
 * config (already describing the new schema) finds nothing to change. */
START_TEST(config_schemas_wait_for_tasks)
{
    const char *slow = "\"migration\": {\"batchRows\": 300, \"batchPauseMs\": 20}";
    ts_db *db = open_db(slow);
    users(db, 6000);
    json_t *want = json_deep_copy(schema(db, "users"));
    keep(want);
    json_t *note = J("{'name': 'note', 'type': 'text', 'createIndex': true}");
    json_array_append(json_object_get(want, "fields"), note);
    const char *id = apply_ok(db, ts_su_add_field(ts_update_schema(db, "users"), note));
    while (json_integer_value(json_object_get(status_of(db, id), "processed")) == 0) usleep(5000);
    ck_assert_int_eq(ts_update(db, "users", I(5), J("{'name': 'five'}")), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);
    json_t *cfg = J("{'path': '%s', 'migration': {'batchRows': 300}}", dir);
    json_object_set_new(cfg, "schemas", json_pack("[O]", want));
    char *text = json_dumps(cfg, 0);
    db = open_cfg(text);
    free(text);
    ck_assert_str_eq(state_of(db, id), "done");
    ck_assert_ptr_nonnull(field_def(db, "users", "note"));
    ck_assert_int_eq(count(db, "users"), 6000);
    ck_assert_str_eq(fstr(row_i(db, "users", 5), "name"), "five");
    ck_assert_int_eq(qcount(db, "users", "note", "IS", keep(json_null())), 6000);
    ck_assert_str_eq(plan_index(db, "users", "note", S("x")), "idx_note");
    ts_close(db);
}
END_TEST

/* ---- SIGKILL during a task, then reopen ------------------------------------ */

#define CRASH_ROWS 30000
#define CRASH_CFG "\"migration\": {\"batchRows\": 500, \"batchPauseMs\": 10}"

/* The child: applies the update, then writes rows and reports every
 * acknowledged insert and the task's progress on fd until it is killed. */
static void crash_child(int fd)
{
    ts_db *db = NULL;
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", %s}", dir, CRASH_CFG);
    if (ts_open_json(cfg, &db)) _exit(3);
    json_t *f = json_pack("{s:s, s:s, s:s, s:b}", "name", "tag", "type", "text", "defaultValue", "t0",
                          "createIndex", 1);
    char *id = NULL;
    if (ts_su_apply(ts_su_add_field(ts_update_schema(db, "users"), f), &id)) _exit(4);
    json_decref(f);
    dprintf(fd, "task %s\n", id);
    for (int k = CRASH_ROWS + 1;; k++) {
        json_t *rec = json_pack("{s:i, s:s, s:i}", "id", k, "name", "c", "age", 2);
        int rc = ts_insert(db, "users", rec, NULL);
        json_decref(rec);
        if (rc) _exit(5);
        json_t *st = NULL;
        if (ts_migration_status(db, id, &st)) _exit(6);
        dprintf(fd, "ok %d %lld\n", k, (long long)json_integer_value(json_object_get(st, "processed")));
        json_decref(st);
    }
}

START_TEST(sigkill_during_task_resumes)
{
    ts_db *db = open_db(NULL);
    users(db, CRASH_ROWS);
    ck_assert_int_eq(ts_close(db), TS_OK);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        crash_child(p[1]);
        _exit(0);
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    char line[256], task[64] = "";
    int acked = 0;
    long long processed = 0;
    /* kill once the task is about a third done */
    while (fgets(line, sizeof line, in)) {
        int k;
        long long pr;
        if (sscanf(line, "task %63s", task) == 1) continue;
        if (sscanf(line, "ok %d %lld", &k, &pr) == 2) {
            acked = k;
            processed = pr;
            if (pr >= CRASH_ROWS / 3) break;
        }
    }
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status), "child exited with %d before the kill", WEXITSTATUS(status));
    fclose(in);
    ck_assert_msg(*task && acked > CRASH_ROWS && processed > 0, "task %s, acked %d, processed %lld",
                  task, acked, processed);
    fprintf(stderr, "sigkill: task %s killed at %lld of %d rows converted, %d rows written\n", task,
            processed, CRASH_ROWS, acked - CRASH_ROWS);
    db = open_db(CRASH_CFG);
    json_t *st = status_of(db, task);
    /* running (it resumes now); "done" only if the kill came very late */
    const char *state = json_string_value(json_object_get(st, "state"));
    ck_assert_msg(strcmp(state, "running") == 0 || strcmp(state, "done") == 0, "state %s", state);
    if (strcmp(state, "done") == 0) fprintf(stderr, "sigkill: the task had finished before the kill\n");
    ck_assert_int_ge(json_integer_value(json_object_get(st, "processed")), processed);
    st = wait_done(db, task, 120);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "done");
    int64_t n = count(db, "users");
    ck_assert_msg(n >= acked, "rows %lld, acknowledged up to key %d", (long long)n, acked);
    for (int k = CRASH_ROWS + 1; k <= acked; k++) ck_assert_int_eq(get_rc(db, "users", I(k)), TS_OK);
    ck_assert_int_eq(qcount(db, "users", "tag", "=", S("t0")), n);
    ck_assert_str_eq(plan_index(db, "users", "tag", S("t0")), "idx_tag");
    ck_assert_str_eq(fstr(row_i(db, "users", 17), "tag"), "t0");
    ts_close(db);
}
END_TEST

/* ---- a power loss at the write points of a background task ------------ */

#define PL_ROWS 1500
#define PL_FAULTY "\"storage\": {\"backend\": \"faulty\", \"options\": {\"inner\": \"posix\", " \
                  "\"passSync\": false}}, \"migration\": {\"batchRows\": 250}"
#define PL_NOSYNC "\"storage\": {\"options\": {\"sync\": \"none\"}}"

static ts_db *open_path(const char *path, const char *extra)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", %s}", path, extra);
    return open_cfg(cfg);
}


/* Start the task (age: integer -> indexed text); NULL when the apply
 * itself failed.  The id is kept in the pool. */
static const char *pl_apply(ts_db *db)
{
    char *id = NULL;
    int rc = ts_su_apply(ts_su_modify_field(ts_update_schema(db, "users"), "age",
                                            J("{'type': 'text', 'createIndex': true}")), &id);
    if (rc) return NULL;
    json_t *s = S(id);
    free(id);
    return json_string_value(s);
}

/* Whether the store lost power, or the task ended (then 0). */
static int pl_wait(ts_db *db, const char *id)
{
    for (int i = 0; i < 20000; i++) {
        int64_t crashed = 0;
        ck_assert_int_eq(ts_storage_control(db, "crashed", 0, &crashed), TS_OK);
        if (crashed) return 1;
        json_t *st = NULL;
        if (ts_migration_status(db, id, &st) == TS_OK) {
            const char *state = json_string_value(json_object_get(st, "state"));
            int end = strcmp(state, "running") != 0 && !json_is_true(json_object_get(st, "cleanupPending"));
            json_decref(st);
            if (end) return 0;
        }
        usleep(1000);
    }
    ck_abort_msg("task %s neither ended nor crashed", id);
    return 0;
}

/* After the crash: either the task never became durable (old schema, every
 * row as it was) or it resumes to done (new schema, every row converted). */
static int pl_check(const char *path, const char *id)
{
    ts_db *db = open_path(path, PL_NOSYNC);
    json_t *st = NULL;
    int rc = id ? ts_migration_status(db, id, &st) : TS_ERR_NOT_FOUND;
    json_decref(st);
    int done = rc == TS_OK;
    if (done) {
        st = wait_done(db, id, 120);
        ck_assert_msg(strcmp(json_string_value(json_object_get(st, "state")), "done") == 0,
                      "task %s after the crash: %s", id, json_string_value(json_object_get(st, "state")));
    } else {
        ck_assert_int_eq(rc, TS_ERR_NOT_FOUND);
    }
    ck_assert_int_eq(count(db, "users"), PL_ROWS);
    json_t *age = field_def(db, "users", "age");
    ck_assert_str_eq(json_string_value(json_object_get(age, "type")), done ? "text" : "integer");
    for (int k = 1; k <= PL_ROWS; k += 97) {
        json_t *row = row_i(db, "users", k);
        char want[16];
        snprintf(want, sizeof want, "%d", 20 + k % 50);
        if (done) ck_assert_str_eq(fstr(row, "age"), want);
        else ck_assert_int_eq(fint(row, "age"), 20 + k % 50);
    }
    if (done) ck_assert_int_eq(qcount(db, "users", "age", "=", S("33")), PL_ROWS / 50 + (13 <= PL_ROWS % 50));
    json_t *rep = NULL;
    ck_assert_int_eq(ts_check(db, &rep, NULL, NULL), TS_OK);
    ck_assert(json_is_true(json_object_get(rep, "ok")));
    json_decref(rep);
    ck_assert_int_eq(ts_close(db), TS_OK);
    return done;
}

START_TEST(power_loss_during_task)
{
    char *base = tst_tmpdir("su_pl_base");
    ts_db *db = open_path(base, PL_NOSYNC);
    users(db, PL_ROWS);
    ck_assert_int_eq(ts_close(db), TS_OK);
    /* a clean run: the fault points a whole task uses */
    char *d = tst_tmpdir("su_pl_run");
    tst_copy_dir(base, d);
    db = open_path(d, PL_FAULTY);
    ck_assert_int_eq(ts_storage_control(db, "reset_counters", 0, NULL), TS_OK);
    const char *id = pl_apply(db);
    ck_assert_ptr_nonnull(id);
    ck_assert_int_eq(pl_wait(db, id), 0);
    int64_t points = 0;
    ck_assert_int_eq(ts_storage_control(db, "points", 0, &points), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);
    ck_assert_int_eq(pl_check(d, id), 1);
    tst_rmrf(d);
    free(d);
    /* a power loss at points spread over the task (odd ones tear the write) */
    int seen[2] = { 0, 0 }, rounds = 0;
    int64_t step = points > 60 ? points / 40 : 1;
    for (int64_t n = 1; n <= points; n += step, rounds++) {
        d = tst_tmpdir("su_pl_crash");
        tst_copy_dir(base, d);
        db = open_path(d, PL_FAULTY);
        ck_assert_int_eq(ts_storage_control(db, "reset_counters", 0, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "crash_at", n, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "tear", n % 2 ? 3000 : 0, NULL), TS_OK);
        id = pl_apply(db);
        if (id) pl_wait(db, id);
        ts_close(db);   /* fails when the store is dead */
        seen[pl_check(d, id)]++;
        tst_rmrf(d);
        free(d);
    }
    fprintf(stderr, "power loss during a task: %lld fault points, %d crashes: %d kept the old "
            "schema, %d resumed to done\n", (long long)points, rounds, seen[0], seen[1]);
    ck_assert_int_gt(seen[1], 0);
    tst_rmrf(base);
    free(base);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("schema_update");
    TCase *tc = tcase_create("changes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, rename_table_and_children_follow);
    tcase_add_test(tc, add_fields);
    tcase_add_test(tc, remove_field);
    tcase_add_test(tc, rename_field_follows_everywhere);
    tcase_add_test(tc, modify_field);
    tcase_add_test(tc, indexes);
    tcase_add_test(tc, primary_key_type_rekeys);
    tcase_add_test(tc, failed_steps_report_the_first_error);
    tcase_add_test(tc, lossy_changes_refused_data_untouched);
    tcase_add_test(tc, unknown_task);
    suite_add_tcase(s, tc);
    tc = tcase_create("background");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, background_task_with_concurrent_writes);
    tcase_add_test(tc, background_task_refused);
    tcase_add_test(tc, close_mid_task_resumes);
    tcase_add_test(tc, background_task_spaces);
    tcase_add_test(tc, background_task_vector_rows);
    tcase_add_test(tc, config_schemas_wait_for_tasks);
    tcase_add_test(tc, sigkill_during_task_resumes);
    tcase_add_test(tc, power_loss_during_task);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
