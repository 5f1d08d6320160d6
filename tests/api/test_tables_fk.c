/*
 * Foreign keys through the public header only: checks on insert, update and
 * upsert; onDelete and onUpdate actions (restrict, noAction, cascade through
 * several levels, setNull, setDefault), atomically; refused definitions;
 * drop and clear of referenced tables; spaces and global tables.
 *
 * JSON in the tests is written with single quotes (J() turns them into
 * double quotes).  The helpers are in tables_support.h.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/tostore.h>
#include "tsupport.h"
#define TT_NAME "tables_fk"
#include "tables_support.h"

#define PARENT                                                                                 \
    "{'name': 'parent', 'fields': [{'name': 'name', 'type': 'text'},"                          \
    "{'name': 'code', 'type': 'text', 'unique': true}]}"

/* A table `name` with a text field `note` and an integer field `pid` (with
 * the extra field keys pid_extra, e.g. ", 'nullable': false") referencing
 * parent.id with the given actions. */
static void child(ts_db *db, const char *name, const char *parent, const char *pid_extra,
                  const char *on_delete, const char *on_update)
{
    json_t *s = J("{'name': '%s', 'fields': [{'name': 'pid', 'type': 'integer'%s},"
                  "{'name': 'note', 'type': 'text'}],"
                  "'foreignKeys': [{'fields': ['pid'], 'referencedTable': '%s',"
                  "'referencedFields': ['id'], 'onDelete': '%s', 'onUpdate': '%s'}]}",
                  name, pid_extra, parent, on_delete, on_update);
    int rc = ts_create_table(db, s);
    ck_assert_msg(rc == TS_OK, "create %s: %d %s", name, rc, ts_errmsg(db));
}

START_TEST(fk_insert_update_checks)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    create(db, "{'name': 'child', 'fields': [{'name': 'pid', 'type': 'integer'},"
               "{'name': 'note', 'type': 'text'}],"
               "'foreignKeys': [{'fields': ['pid'], 'referencedTable': 'parent',"
               "'referencedFields': ['id']}]}");
    /* canonical foreign key: every key filled in */
    json_t *s = NULL;
    ck_assert_int_eq(ts_get_schema(db, "child", &s), TS_OK);
    keep(s);
    json_t *fk = json_array_get(json_object_get(s, "foreignKeys"), 0);
    ck_assert(json_equal(fk, J("{'fields': ['pid'], 'referencedTable': 'parent',"
                               "'referencedFields': ['id'], 'name': 'fk_pid',"
                               "'onDelete': 'restrict', 'onUpdate': 'restrict'}")));

    ck_assert_int_eq(ins_rc(db, "child", "{'pid': 99}", NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_str_ne(ts_errmsg(db), "");
    ck_assert_int_eq(count(db, "child"), 0);
    /* null references nothing */
    json_int_t c0 = ins_i(db, "child", "{'pid': null, 'note': 'orphan'}");
    ck_assert_int_eq(ins_i(db, "parent", "{'name': 'p1', 'code': 'c1'}"), 1);
    json_int_t c1 = ins_i(db, "child", "{'pid': 1, 'note': 'x'}");
    ck_assert_int_eq(fint(row_i(db, "child", c1), "pid"), 1);
    /* update and upsert are checked too */
    ck_assert_int_eq(ts_update(db, "child", I(c1), J("{'pid': 99}")), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(fint(row_i(db, "child", c1), "pid"), 1);
    ck_assert_int_eq(ts_update(db, "child", I(c0), J("{'pid': 1}")), TS_OK);
    ck_assert_int_eq(ts_upsert(db, "child", J("{'id': 50, 'pid': 98}"), NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ts_upsert(db, "child", J("{'id': %lld, 'pid': 98}", (long long)c1), NULL),
                     TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "child"), 2);
    /* in a batch */
    json_t *rep = NULL;
    int rc = ts_batch_insert(db, "child", J("[{'pid': 1}, {'pid': 77}]"), 1, &rep);
    keep(rep);
    ck_assert_int_eq(rc, TS_PARTIAL);
    json_t *e = json_array_get(json_object_get(rep, "errors"), 0);
    ck_assert_int_eq(fint(e, "index"), 1);
    ck_assert_int_eq(fint(e, "code"), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "child"), 3);

    /* a reference to a unique field */
    create(db, "{'name': 'bycode', 'fields': [{'name': 'pcode', 'type': 'text'}],"
               "'foreignKeys': [{'fields': ['pcode'], 'referencedTable': 'parent',"
               "'referencedFields': ['code']}]}");
    ck_assert_int_eq(ins_rc(db, "bycode", "{'pcode': 'zz'}", NULL), TS_ERR_FOREIGN_KEY);
    ins(db, "bycode", "{'pcode': 'c1'}");
    ck_assert_int_eq(count(db, "bycode"), 1);

    /* parents of another space are not there */
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ck_assert_int_eq(ins_rc(db, "child", "{'pid': 1}", NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ins_i(db, "parent", "{'name': 'b1'}"), 1);
    ins(db, "child", "{'pid': 1}");
    ck_assert_int_eq(count(db, "child"), 1);
    ts_close(db);
}
END_TEST

START_TEST(fk_restrict)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    child(db, "child", "parent", "", "restrict", "restrict");
    child(db, "child_na", "parent", "", "noAction", "noAction");
    ck_assert_int_eq(ins_i(db, "parent", "{'name': 'p1'}"), 1);
    ck_assert_int_eq(ins_i(db, "parent", "{'name': 'p2'}"), 2);
    ck_assert_int_eq(ins_i(db, "parent", "{'name': 'p3'}"), 3);
    json_int_t c = ins_i(db, "child", "{'pid': 1, 'note': 'x'}");
    json_int_t n = ins_i(db, "child_na", "{'pid': 3}");
    ck_assert_int_eq(ts_delete(db, "parent", I(1)), TS_ERR_FOREIGN_KEY);
    ck_assert_str_ne(ts_errmsg(db), "");
    ck_assert_int_eq(ts_delete(db, "parent", I(3)), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "parent"), 3);
    ck_assert_str_eq(fstr(row_i(db, "parent", 1), "name"), "p1");
    ck_assert_int_eq(fint(row_i(db, "child", c), "pid"), 1);
    ck_assert_int_eq(fint(row_i(db, "child_na", n), "pid"), 3);
    /* unreferenced rows go */
    ck_assert_int_eq(ts_delete(db, "parent", I(2)), TS_OK);
    /* the same after a reopen */
    db = reopen(db);
    ck_assert_int_eq(ts_delete(db, "parent", I(1)), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ins_rc(db, "child", "{'pid': 2}", NULL), TS_ERR_FOREIGN_KEY);
    /* a key update of a referenced row is refused; other changes are fine */
    ck_assert_int_eq(ts_update(db, "parent", I(1), J("{'id': 50}")), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ts_update(db, "parent", I(3), J("{'id': 51}")), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(get_rc(db, "parent", I(50)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_update(db, "parent", I(1), J("{'name': 'p1b'}")), TS_OK);
    /* once the child is gone (or moved), the parent can go */
    ck_assert_int_eq(ts_delete(db, "child", I(c)), TS_OK);
    ck_assert_int_eq(ts_delete(db, "parent", I(1)), TS_OK);
    ck_assert_int_eq(ts_update(db, "child_na", I(n), J("{'pid': null}")), TS_OK);
    ck_assert_int_eq(ts_update(db, "parent", I(3), J("{'id': 51}")), TS_OK);
    ck_assert_int_eq(count(db, "parent"), 1);
    ts_close(db);
}
END_TEST

START_TEST(fk_cascade_two_levels)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'a', 'fields': [{'name': 'v', 'type': 'text'}]}");
    child(db, "b", "a", "", "cascade", "restrict");
    child(db, "c", "b", "", "cascade", "restrict");
    ins(db, "a", "{'v': 'a1'}");                         /* a 1 */
    ins(db, "a", "{'v': 'a2'}");                         /* a 2 */
    ins(db, "b", "{'pid': 1, 'note': 'b1'}");            /* b 1 */
    ins(db, "b", "{'pid': 1, 'note': 'b2'}");            /* b 2 */
    ins(db, "b", "{'pid': 2, 'note': 'b3'}");            /* b 3 */
    ins(db, "c", "{'pid': 1, 'note': 'c1'}");            /* c 1 */
    ins(db, "c", "{'pid': 2, 'note': 'c2'}");            /* c 2 */
    ins(db, "c", "{'pid': 1, 'note': 'c3'}");            /* c 3 */
    ins(db, "c", "{'pid': 3, 'note': 'c4'}");            /* c 4 */
    ck_assert_int_eq(ts_delete(db, "a", I(1)), TS_OK);
    ck_assert_int_eq(count(db, "a"), 1);
    ck_assert_int_eq(count(db, "b"), 1);
    ck_assert_int_eq(count(db, "c"), 1);
    for (int i = 1; i <= 2; i++) ck_assert_int_eq(get_rc(db, "b", I(i)), TS_ERR_NOT_FOUND);
    for (int i = 1; i <= 3; i++) ck_assert_int_eq(get_rc(db, "c", I(i)), TS_ERR_NOT_FOUND);
    ck_assert_str_eq(fstr(row_i(db, "b", 3), "note"), "b3");
    ck_assert_str_eq(fstr(row_i(db, "c", 4), "note"), "c4");
    /* durable */
    db = reopen(db);
    ck_assert_int_eq(count(db, "b"), 1);
    ck_assert_int_eq(count(db, "c"), 1);
    ck_assert_int_eq(get_rc(db, "c", I(1)), TS_ERR_NOT_FOUND);
    /* inside a transaction that rolls back, everything comes back */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_delete(db, "a", I(2)), TS_OK);
    ck_assert_int_eq(count(db, "c"), 0);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_int_eq(count(db, "a"), 1);
    ck_assert_int_eq(count(db, "b"), 1);
    ck_assert_int_eq(count(db, "c"), 1);
    ck_assert_str_eq(fstr(row_i(db, "c", 4), "note"), "c4");
    ts_close(db);
}
END_TEST

START_TEST(fk_cascade_atomic)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'a', 'fields': []}");
    child(db, "b", "a", "", "cascade", "restrict");
    child(db, "c", "b", "", "restrict", "restrict");
    ins(db, "a", "{}");                     /* a 1 */
    ins(db, "b", "{'pid': 1}");             /* b 1: no children */
    ins(db, "b", "{'pid': 1}");             /* b 2 */
    ins(db, "c", "{'pid': 2}");             /* c 1 holds b 2 */
    ck_assert_int_eq(ts_delete(db, "a", I(1)), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "a"), 1);
    ck_assert_int_eq(count(db, "b"), 2);
    ck_assert_int_eq(count(db, "c"), 1);
    ck_assert_int_eq(get_rc(db, "b", I(1)), TS_OK);
    ck_assert_int_eq(get_rc(db, "b", I(2)), TS_OK);
    /* the same inside a transaction: the failed delete undoes itself only */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins(db, "a", "{}");
    ck_assert_int_eq(ts_delete(db, "a", I(1)), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "b"), 2);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(count(db, "a"), 2);
    ck_assert_int_eq(count(db, "b"), 2);
    /* without the grandchild the cascade goes through */
    ck_assert_int_eq(ts_delete(db, "c", I(1)), TS_OK);
    ck_assert_int_eq(ts_delete(db, "a", I(1)), TS_OK);
    ck_assert_int_eq(count(db, "b"), 0);
    ts_close(db);
}
END_TEST

START_TEST(fk_self_cascade)
{
    ts_db *db = open_db(NULL);
    child(db, "tree", "tree", "", "cascade", "restrict");
    ins(db, "tree", "{'pid': null, 'note': 'root'}"); /* 1 */
    ins(db, "tree", "{'pid': 1}");                    /* 2 */
    ins(db, "tree", "{'pid': 2}");                    /* 3 */
    ins(db, "tree", "{'pid': 3}");                    /* 4 */
    ins(db, "tree", "{'pid': null, 'note': 'other'}"); /* 5 */
    ins(db, "tree", "{'pid': 5}");                    /* 6 */
    ck_assert_int_eq(ts_delete(db, "tree", I(2)), TS_OK);
    ck_assert_int_eq(count(db, "tree"), 3);
    ck_assert_int_eq(get_rc(db, "tree", I(1)), TS_OK);
    ck_assert_int_eq(get_rc(db, "tree", I(3)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(get_rc(db, "tree", I(4)), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(get_rc(db, "tree", I(6)), TS_OK);
    /* rows that reference each other in a ring: the cascade ends */
    ck_assert_int_eq(ts_update(db, "tree", I(5), J("{'pid': 6}")), TS_OK);
    ck_assert_int_eq(ts_delete(db, "tree", I(5)), TS_OK);
    ck_assert_int_eq(count(db, "tree"), 1);
    ck_assert_int_eq(get_rc(db, "tree", I(6)), TS_ERR_NOT_FOUND);
    /* a chain of 50 levels goes all the way down */
    ck_assert_int_eq(ins_i(db, "tree", "{'id': 100}"), 100);
    for (int i = 101; i < 150; i++) {
        char rec[64];
        snprintf(rec, sizeof rec, "{'id': %d, 'pid': %d}", i, i - 1);
        ins(db, "tree", rec);
    }
    ck_assert_int_eq(count(db, "tree"), 51);
    ck_assert_int_eq(ts_delete(db, "tree", I(100)), TS_OK);
    ck_assert_int_eq(count(db, "tree"), 1);
    ck_assert_int_eq(get_rc(db, "tree", I(149)), TS_ERR_NOT_FOUND);
    ts_close(db);
}
END_TEST

START_TEST(fk_set_null)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    child(db, "child", "parent", "", "setNull", "setNull");
    ins(db, "parent", "{'name': 'p1'}");
    ins(db, "parent", "{'name': 'p2'}");
    json_int_t x = ins_i(db, "child", "{'pid': 1, 'note': 'x'}");
    json_int_t y = ins_i(db, "child", "{'pid': 1, 'note': 'y'}");
    json_int_t z = ins_i(db, "child", "{'pid': 2, 'note': 'z'}");
    ck_assert_int_eq(ts_delete(db, "parent", I(1)), TS_OK);
    ck_assert_int_eq(count(db, "child"), 3);
    json_t *r = row_i(db, "child", x);
    ck_assert(fnull(r, "pid"));
    ck_assert_str_eq(fstr(r, "note"), "x");
    ck_assert(fnull(row_i(db, "child", y), "pid"));
    ck_assert_int_eq(fint(row_i(db, "child", z), "pid"), 2);
    /* onUpdate setNull */
    ck_assert_int_eq(ts_update(db, "parent", I(2), J("{'id': 20}")), TS_OK);
    r = row_i(db, "child", z);
    ck_assert(fnull(r, "pid"));
    ck_assert_str_eq(fstr(r, "note"), "z");
    ts_close(db);
}
END_TEST

START_TEST(fk_set_default)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    child(db, "child", "parent", ", 'defaultValue': 0", "setDefault", "setDefault");
    ck_assert_int_eq(ins_i(db, "parent", "{'id': 0, 'name': 'nobody'}"), 0);
    ck_assert_int_eq(ins_i(db, "parent", "{'id': 5, 'name': 'p5'}"), 5);
    ck_assert_int_eq(ins_i(db, "parent", "{'id': 6, 'name': 'p6'}"), 6);
    json_int_t a = ins_i(db, "child", "{'pid': 5, 'note': 'a'}");
    json_int_t b = ins_i(db, "child", "{'pid': 6, 'note': 'b'}");
    /* the default applies on insert as usual */
    json_int_t d = ins_i(db, "child", "{'note': 'd'}");
    ck_assert_int_eq(fint(row_i(db, "child", d), "pid"), 0);
    ck_assert_int_eq(ts_delete(db, "parent", I(5)), TS_OK);
    json_t *r = row_i(db, "child", a);
    ck_assert_int_eq(fint(r, "pid"), 0);
    ck_assert_str_eq(fstr(r, "note"), "a");
    ck_assert_int_eq(fint(row_i(db, "child", b), "pid"), 6);
    ck_assert_int_eq(ts_update(db, "parent", I(6), J("{'id': 60}")), TS_OK);
    ck_assert_int_eq(fint(row_i(db, "child", b), "pid"), 0);
    ck_assert_int_eq(count(db, "child"), 3);
    ts_close(db);
}
END_TEST

START_TEST(fk_on_update_cascade)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    child(db, "child", "parent", "", "restrict", "cascade");
    ins(db, "parent", "{'name': 'p1'}");
    ins(db, "parent", "{'name': 'p2'}");
    json_int_t x = ins_i(db, "child", "{'pid': 1, 'note': 'x'}");
    json_int_t y = ins_i(db, "child", "{'pid': 1, 'note': 'y'}");
    json_int_t z = ins_i(db, "child", "{'pid': 2, 'note': 'z'}");
    ck_assert_int_eq(ts_update(db, "parent", I(1), J("{'id': 100}")), TS_OK);
    ck_assert_int_eq(get_rc(db, "parent", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_str_eq(fstr(row_i(db, "parent", 100), "name"), "p1");
    json_t *r = row_i(db, "child", x);
    ck_assert_int_eq(fint(r, "pid"), 100);
    ck_assert_str_eq(fstr(r, "note"), "x");
    ck_assert_int_eq(fint(row_i(db, "child", y), "pid"), 100);
    ck_assert_int_eq(fint(row_i(db, "child", z), "pid"), 2);
    /* the reference moved: restrict now guards 100 */
    ck_assert_int_eq(ts_delete(db, "parent", I(100)), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ins_i(db, "child", "{'pid': 100}"), z + 1);
    ck_assert_int_eq(ins_rc(db, "child", "{'pid': 1}", NULL), TS_ERR_FOREIGN_KEY);
    /* a key update onto an existing key is refused and cascades nothing */
    ck_assert_int_eq(ts_update(db, "parent", I(100), J("{'id': 2}")), TS_ERR_PRIMARY_KEY);
    ck_assert_int_eq(fint(row_i(db, "child", x), "pid"), 100);
    ts_close(db);
}
END_TEST

START_TEST(fk_on_update_unique_field)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    create(db, "{'name': 'casc', 'fields': [{'name': 'pcode', 'type': 'text'}],"
               "'foreignKeys': [{'fields': ['pcode'], 'referencedTable': 'parent',"
               "'referencedFields': ['code'], 'onUpdate': 'cascade', 'onDelete': 'cascade'}]}");
    create(db, "{'name': 'rest', 'fields': [{'name': 'pcode', 'type': 'text'}],"
               "'foreignKeys': [{'fields': ['pcode'], 'referencedTable': 'parent',"
               "'referencedFields': ['code']}]}");
    ins(db, "parent", "{'name': 'p1', 'code': 'c1'}");
    ins(db, "parent", "{'name': 'p2', 'code': 'c2'}");
    json_int_t k = ins_i(db, "casc", "{'pcode': 'c1'}");
    ins(db, "rest", "{'pcode': 'c2'}");
    ck_assert_int_eq(ts_update(db, "parent", I(1), J("{'code': 'c1new'}")), TS_OK);
    ck_assert_str_eq(fstr(row_i(db, "casc", k), "pcode"), "c1new");
    ck_assert_int_eq(ts_update(db, "parent", I(2), J("{'code': 'c2new'}")), TS_ERR_FOREIGN_KEY);
    ck_assert_str_eq(fstr(row_i(db, "parent", 2), "code"), "c2");
    /* a delete by the parent key cascades through the unique field */
    ck_assert_int_eq(ts_delete(db, "parent", I(1)), TS_OK);
    ck_assert_int_eq(count(db, "casc"), 0);
    ts_close(db);
}
END_TEST

START_TEST(fk_refused_definitions)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    const char *bad[] = {
        /* setNull on a non-nullable field */
        "{'name': 'c1', 'fields': [{'name': 'pid', 'type': 'integer', 'nullable': false}],"
        "'foreignKeys': [{'fields': ['pid'], 'referencedTable': 'parent',"
        "'referencedFields': ['id'], 'onDelete': 'setNull'}]}",
        "{'name': 'c2', 'fields': [{'name': 'pid', 'type': 'integer', 'nullable': false}],"
        "'foreignKeys': [{'fields': ['pid'], 'referencedTable': 'parent',"
        "'referencedFields': ['id'], 'onUpdate': 'setNull'}]}",
        /* setDefault on a non-nullable field without a default */
        "{'name': 'c3', 'fields': [{'name': 'pid', 'type': 'integer', 'nullable': false}],"
        "'foreignKeys': [{'fields': ['pid'], 'referencedTable': 'parent',"
        "'referencedFields': ['id'], 'onDelete': 'setDefault'}]}",
        /* a field that is not a key or unique */
        "{'name': 'c4', 'fields': [{'name': 'pn', 'type': 'text'}],"
        "'foreignKeys': [{'fields': ['pn'], 'referencedTable': 'parent',"
        "'referencedFields': ['name']}]}",
        /* an unknown action */
        "{'name': 'c5', 'fields': [{'name': 'pid', 'type': 'integer'}],"
        "'foreignKeys': [{'fields': ['pid'], 'referencedTable': 'parent',"
        "'referencedFields': ['id'], 'onDelete': 'explode'}]}",
        /* an unknown referencing field */
        "{'name': 'c6', 'fields': [],"
        "'foreignKeys': [{'fields': ['pid'], 'referencedTable': 'parent',"
        "'referencedFields': ['id']}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = create_rc(db, bad[i]);
        ck_assert_msg(rc == TS_ERR_VALIDATION, "schema %zu: got %d, expected TS_ERR_VALIDATION", i,
                      rc);
    }
    ck_assert(json_equal(tables(db), J("['parent']")));
    ts_close(db);
}
END_TEST

START_TEST(fk_drop_refused)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    child(db, "child", "parent", "", "cascade", "cascade");
    ins(db, "parent", "{'name': 'p1'}");
    ck_assert_int_eq(ts_drop_table(db, "parent"), TS_ERR_FOREIGN_KEY);
    ck_assert_str_ne(ts_errmsg(db), "");
    ck_assert(json_equal(tables(db), J("['child', 'parent']")));
    ck_assert_str_eq(fstr(row_i(db, "parent", 1), "name"), "p1");
    /* an empty referencing table still refers */
    ck_assert_int_eq(count(db, "child"), 0);
    ck_assert_int_eq(ts_drop_table(db, "parent"), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ts_drop_table(db, "child"), TS_OK);
    ck_assert_int_eq(ts_drop_table(db, "parent"), TS_OK);
    ck_assert_uint_eq(json_array_size(tables(db)), 0);
    /* a table that refers only to itself can be dropped */
    child(db, "tree", "tree", "", "restrict", "restrict");
    ins(db, "tree", "{}");
    ins(db, "tree", "{'pid': 1}");
    ck_assert_int_eq(ts_drop_table(db, "tree"), TS_OK);
    ck_assert_uint_eq(json_array_size(tables(db)), 0);
    ts_close(db);
}
END_TEST

START_TEST(fk_clear_table)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    create(db, "{'name': 'p2', 'fields': []}");
    child(db, "rest", "parent", "", "restrict", "restrict");
    child(db, "casc", "p2", "", "cascade", "restrict");
    ins(db, "parent", "{'name': 'a'}");
    ins(db, "parent", "{'name': 'b'}");
    ins(db, "rest", "{'pid': 2}");
    ck_assert_int_eq(ts_clear_table(db, "parent"), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "parent"), 2);
    ck_assert_int_eq(count(db, "rest"), 1);
    ck_assert_int_eq(get_rc(db, "parent", I(1)), TS_OK);
    ins(db, "p2", "{}");
    ins(db, "p2", "{}");
    ins(db, "casc", "{'pid': 1}");
    ins(db, "casc", "{'pid': 2}");
    ins(db, "casc", "{'pid': null}");
    ck_assert_int_eq(ts_clear_table(db, "p2"), TS_OK);
    ck_assert_int_eq(count(db, "p2"), 0);
    ck_assert_int_eq(count(db, "casc"), 1);
    ck_assert_int_eq(get_rc(db, "casc", I(3)), TS_OK);
    ts_close(db);
}
END_TEST

START_TEST(fk_global_tables)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'g', 'isGlobal': true, 'fields': []}");
    create(db, "{'name': 'local', 'fields': []}");
    /* a global table may not reference a space table */
    int rc = create_rc(db, "{'name': 'bad', 'isGlobal': true, 'fields': [{'name': 'pid', 'type':"
                           "'integer'}], 'foreignKeys': [{'fields': ['pid'], 'referencedTable':"
                           "'local', 'referencedFields': ['id']}]}");
    ck_assert_int_eq(rc, TS_ERR_VALIDATION);
    /* a space table may reference a global one, from any space */
    child(db, "child", "g", "", "cascade", "restrict");
    ck_assert_int_eq(ins_i(db, "g", "{}"), 1);
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    json_int_t k = ins_i(db, "child", "{'pid': 1}");
    ck_assert_int_eq(ins_rc(db, "child", "{'pid': 2}", NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ins(db, "child", "{'pid': 1}");
    ck_assert_int_eq(count(db, "child"), 1);
    ck_assert(json_equal(tables(db), J("['child', 'g', 'local']")));
    /* a cascade from the global row reaches the rows of the current space */
    ck_assert_int_eq(ts_delete(db, "g", I(1)), TS_OK);
    ck_assert_int_eq(count(db, "child"), 0);
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    int rc2 = get_rc(db, "child", I(k));
    ck_assert_msg(rc2 == TS_ERR_NOT_FOUND,
                  "child row of space B still references the deleted global row: %d", rc2);
    /* a restrict in another space guards a global row too */
    child(db, "rchild", "g", "", "restrict", "restrict");
    ck_assert_int_eq(ins_i(db, "g", "{}"), 2);
    ins(db, "rchild", "{'pid': 2}");
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(count(db, "rchild"), 0);
    ck_assert_int_eq(ts_delete(db, "g", I(2)), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(get_rc(db, "g", I(2)), TS_OK);
    ck_assert_int_eq(ts_update(db, "g", I(2), J("{'id': 3}")), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ts_clear_table(db, "g"), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(count(db, "g"), 1);
    ts_close(db);
}
END_TEST

START_TEST(fk_set_default_needs_parent)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    child(db, "child", "parent", ", 'defaultValue': 0", "setDefault", "restrict");
    ck_assert_int_eq(ins_i(db, "parent", "{'id': 5, 'name': 'p5'}"), 5);
    json_int_t a = ins_i(db, "child", "{'pid': 5}");
    /* no parent 0: the default references nothing, the delete is refused */
    ck_assert_int_eq(ts_delete(db, "parent", I(5)), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(get_rc(db, "parent", I(5)), TS_OK);
    ck_assert_int_eq(fint(row_i(db, "child", a), "pid"), 5);
    /* a nullable field without a default: its default is null */
    child(db, "child2", "parent", "", "setDefault", "setDefault");
    ck_assert_int_eq(ins_i(db, "parent", "{'id': 6}"), 6);
    json_int_t b = ins_i(db, "child2", "{'pid': 6, 'note': 'b'}");
    ck_assert_int_eq(ts_delete(db, "parent", I(6)), TS_OK);
    ck_assert(fnull(row_i(db, "child2", b), "pid"));
    ck_assert_str_eq(fstr(row_i(db, "child2", b), "note"), "b");
    ts_close(db);
}
END_TEST

START_TEST(fk_on_update_two_levels)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'a', 'fields': [{'name': 'v', 'type': 'text'}]}");
    /* b's key is a's key (one-to-one); c references b */
    create(db, "{'name': 'b', 'fields': [{'name': 'w', 'type': 'text'}],"
               "'foreignKeys': [{'fields': ['id'], 'referencedTable': 'a',"
               "'referencedFields': ['id'],"
               "'onUpdate': 'cascade', 'onDelete': 'cascade'}]}");
    child(db, "c", "b", "", "cascade", "cascade");
    ins(db, "a", "{'v': 'a1'}");
    ins(db, "a", "{'v': 'a2'}");
    ck_assert_int_eq(ins_i(db, "b", "{'id': 1, 'w': 'b1'}"), 1);
    ck_assert_int_eq(ins_i(db, "b", "{'id': 2, 'w': 'b2'}"), 2);
    ck_assert_int_eq(ins_rc(db, "b", "{'id': 3}", NULL), TS_ERR_FOREIGN_KEY);
    json_int_t c1 = ins_i(db, "c", "{'pid': 1, 'note': 'c1'}");
    json_int_t c2 = ins_i(db, "c", "{'pid': 2, 'note': 'c2'}");
    ck_assert_int_eq(ts_update(db, "a", I(1), J("{'id': 100}")), TS_OK);
    ck_assert_int_eq(get_rc(db, "b", I(1)), TS_ERR_NOT_FOUND);
    ck_assert_str_eq(fstr(row_i(db, "b", 100), "w"), "b1");
    ck_assert_int_eq(fint(row_i(db, "c", c1), "pid"), 100);
    ck_assert_int_eq(fint(row_i(db, "c", c2), "pid"), 2);
    /* and a delete goes down both levels */
    ck_assert_int_eq(ts_delete(db, "a", I(100)), TS_OK);
    ck_assert_int_eq(count(db, "b"), 1);
    ck_assert_int_eq(count(db, "c"), 1);
    ck_assert_int_eq(get_rc(db, "c", I(c1)), TS_ERR_NOT_FOUND);
    ts_close(db);
}
END_TEST

START_TEST(fk_composite)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'p', 'fields': [{'name': 'x', 'type': 'integer'},"
               "{'name': 'y', 'type': 'text'}],"
               "'indexes': [{'fields': ['x', 'y'], 'unique': true}]}");
    create(db, "{'name': 'c', 'fields': [{'name': 'a', 'type': 'integer'},"
               "{'name': 'b', 'type': 'text'}],"
               "'foreignKeys': [{'fields': ['a', 'b'], 'referencedTable': 'p',"
               "'referencedFields': ['x', 'y'], 'onDelete': 'cascade'}]}");
    ins(db, "p", "{'x': 1, 'y': 'one'}");
    ck_assert_int_eq(ins_rc(db, "c", "{'a': 1, 'b': 'two'}", NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ins_rc(db, "c", "{'a': 2, 'b': 'one'}", NULL), TS_ERR_FOREIGN_KEY);
    ins(db, "c", "{'a': 1, 'b': 'one'}");
    /* a reference with a null part is not checked */
    ins(db, "c", "{'a': 7, 'b': null}");
    ck_assert_int_eq(ts_delete(db, "p", I(1)), TS_OK);
    ck_assert_int_eq(count(db, "c"), 1);
    ck_assert_int_eq(get_rc(db, "c", I(2)), TS_OK);
    ts_close(db);
}
END_TEST

START_TEST(fk_actions_stay_in_space)
{
    ts_db *db = open_db(NULL);
    create(db, PARENT);
    child(db, "child", "parent", "", "cascade", "cascade");
    ins(db, "parent", "{'name': 'd1'}");
    ins(db, "child", "{'pid': 1, 'note': 'default'}");
    ck_assert_int_eq(ts_switch_space(db, "B", 0), TS_OK);
    ins(db, "parent", "{'name': 'b1'}");
    ins(db, "child", "{'pid': 1, 'note': 'B'}");
    ck_assert_int_eq(ts_delete(db, "parent", I(1)), TS_OK);
    ck_assert_int_eq(count(db, "child"), 0);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(count(db, "child"), 1);
    ck_assert_str_eq(fstr(row_i(db, "child", 1), "note"), "default");
    /* a key update in default moves default's children only */
    ck_assert_int_eq(ts_update(db, "parent", I(1), J("{'id': 9}")), TS_OK);
    ck_assert_int_eq(fint(row_i(db, "child", 1), "pid"), 9);
    ts_close(db);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tables_fk");
    TCase *tc = tcase_create("fk");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fk_insert_update_checks);
    tcase_add_test(tc, fk_restrict);
    tcase_add_test(tc, fk_cascade_two_levels);
    tcase_add_test(tc, fk_cascade_atomic);
    tcase_add_test(tc, fk_self_cascade);
    tcase_add_test(tc, fk_set_null);
    tcase_add_test(tc, fk_set_default);
    tcase_add_test(tc, fk_on_update_cascade);
    tcase_add_test(tc, fk_on_update_unique_field);
    tcase_add_test(tc, fk_refused_definitions);
    tcase_add_test(tc, fk_drop_refused);
    tcase_add_test(tc, fk_clear_table);
    tcase_add_test(tc, fk_global_tables);
    tcase_add_test(tc, fk_set_default_needs_parent);
    tcase_add_test(tc, fk_on_update_two_levels);
    tcase_add_test(tc, fk_composite);
    tcase_add_test(tc, fk_actions_stay_in_space);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
