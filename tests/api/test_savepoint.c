/*
 * Savepoints (ts_savepoint, ts_rollback_to, ts_release) through the public
 * header: the contract cases, then a randomized run against a reference
 * model (rows with a unique index and a foreign key, key-value entries,
 * nested savepoints rolled back to and released at random), checked after
 * every rollback_to, at commit and after reopening.
 */
#include <stdio.h>
#include <stdlib.h>
#define TT_NAME "savepoint"
#include "tables_support.h"

static void schema2(ts_db *db)
{
    create(db, "{'name': 'p', 'fields': [{'name': 'v', 'type': 'integer', 'unique': true}]}");
    create(db, "{'name': 'c', 'fields': [{'name': 'pid', 'type': 'integer'}], 'foreignKeys': "
               "[{'fields': ['pid'], 'referencedTable': 'p', 'referencedFields': ['id'], "
               "'onDelete': 'cascade'}]}");
}

START_TEST(contract)
{
    ts_db *db = open_db(NULL);
    schema2(db);
    /* outside a write transaction */
    ck_assert_int_eq(ts_savepoint(db, "a"), TS_ERR_INVALID);
    ck_assert_int_eq(ts_begin_read(db), TS_OK);
    ck_assert_int_eq(ts_savepoint(db, "a"), TS_ERR_INVALID);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_savepoint(db, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(ts_savepoint(db, ""), TS_ERR_INVALID);
    ck_assert_int_eq(ts_rollback_to(db, "none"), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_release(db, "none"), TS_ERR_NOT_FOUND);

    json_int_t a = ins_i(db, "p", "{'v': 1}");
    ck_assert_int_eq(ts_savepoint(db, "s1"), TS_OK);
    json_int_t b = ins_i(db, "p", "{'v': 2}");
    ins_i(db, "c", "{'pid': 2}");
    ck_assert_int_eq(ts_kv_set(db, "k", I(7), 0), TS_OK);
    ck_assert_int_eq(ts_savepoint(db, "s2"), TS_OK);
    ck_assert_int_eq(ts_delete(db, "p", I(b)), TS_OK); /* cascades to c */
    ck_assert_int_eq(count(db, "c"), 0);
    ck_assert_int_eq(ts_kv_remove(db, "k", 0), TS_OK);
    /* back to s2: the delete and its cascade are undone */
    ck_assert_int_eq(ts_rollback_to(db, "s2"), TS_OK);
    ck_assert_int_eq(count(db, "p"), 2);
    ck_assert_int_eq(count(db, "c"), 1);
    json_t *v = NULL;
    ck_assert_int_eq(ts_kv_get(db, "k", 0, &v), TS_OK);
    ck_assert_int_eq(json_integer_value(v), 7);
    json_decref(v);
    /* s2 stays: roll back to it again after more work */
    ck_assert_int_eq(ts_update(db, "p", I(a), J("{'v': 10}")), TS_OK);
    ck_assert_int_eq(ts_rollback_to(db, "s2"), TS_OK);
    ck_assert_int_eq(fint(row_i(db, "p", a), "v"), 1);
    /* the unique value freed by the undo is usable again */
    ck_assert_int_eq(ins_rc(db, "p", "{'v': 2}", NULL), TS_ERR_UNIQUE);
    /* back to s1 drops s2 */
    ck_assert_int_eq(ts_rollback_to(db, "s1"), TS_OK);
    ck_assert_int_eq(count(db, "p"), 1);
    ck_assert_int_eq(count(db, "c"), 0);
    ck_assert_int_eq(ts_kv_get(db, "k", 0, &v), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_rollback_to(db, "s2"), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ins_rc(db, "p", "{'v': 2}", NULL), TS_OK);
    /* release keeps the changes */
    ck_assert_int_eq(ts_release(db, "s1"), TS_OK);
    ck_assert_int_eq(ts_rollback_to(db, "s1"), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(count(db, "p"), 2);
    ts_close(db);
}
END_TEST

START_TEST(same_name_and_failed_statement)
{
    ts_db *db = open_db(NULL);
    schema2(db);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_savepoint(db, "x"), TS_OK);
    ins_i(db, "p", "{'v': 1}");
    ck_assert_int_eq(ts_savepoint(db, "x"), TS_OK); /* the newest "x" is meant */
    ins_i(db, "p", "{'v': 2}");
    /* a failed statement changes nothing and leaves the savepoints usable */
    ck_assert_int_eq(ins_rc(db, "c", "{'pid': 999}", NULL), TS_ERR_FOREIGN_KEY);
    ck_assert_int_eq(ts_rollback_to(db, "x"), TS_OK);
    ck_assert_int_eq(count(db, "p"), 1);
    ck_assert_int_eq(ts_release(db, "x"), TS_OK);
    ck_assert_int_eq(ts_rollback_to(db, "x"), TS_OK); /* the older one */
    ck_assert_int_eq(count(db, "p"), 0);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ts_close(db);
}
END_TEST

/* Batches, with and without allow_partial, are undone like single rows. */
START_TEST(batches)
{
    ts_db *db = open_db(NULL);
    schema2(db);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins_i(db, "p", "{'v': 1}");
    ck_assert_int_eq(ts_savepoint(db, "b"), TS_OK);
    json_t *report = NULL;
    ck_assert_int_eq(ts_batch_insert(db, "p", J("[{'v': 2}, {'v': 1}, {'v': 3}]"), 1, &report),
                     TS_PARTIAL);
    json_decref(report);
    ck_assert_int_eq(count(db, "p"), 3);
    ck_assert_int_eq(ts_batch_insert(db, "p", J("[{'v': 4}, {'v': 5}]"), 0, NULL), TS_OK);
    ck_assert_int_eq(count(db, "p"), 5);
    ck_assert_int_eq(ts_rollback_to(db, "b"), TS_OK);
    ck_assert_int_eq(count(db, "p"), 1);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(count(db, "p"), 1);
    ts_close(db);
}
END_TEST

START_TEST(barriers)
{
    ts_db *db = open_db(NULL);
    schema2(db);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins_i(db, "p", "{'v': 1}");
    ck_assert_int_eq(ts_savepoint(db, "before_ddl"), TS_OK);
    ins_i(db, "p", "{'v': 2}");
    create(db, "{'name': 'n', 'fields': []}");
    ck_assert_int_eq(ts_rollback_to(db, "before_ddl"), TS_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "schema change"));
    /* still usable: a savepoint after the change can be rolled back to */
    ck_assert_int_eq(ts_savepoint(db, "after"), TS_OK);
    ins_i(db, "n", "{}");
    ck_assert_int_eq(ts_rollback_to(db, "after"), TS_OK);
    ck_assert_int_eq(count(db, "n"), 0);
    ck_assert_int_eq(ts_clear_table(db, "n"), TS_OK);
    ck_assert_int_eq(ts_rollback_to(db, "after"), TS_ERR_UNSUPPORTED);
    ck_assert_int_eq(ts_release(db, "before_ddl"), TS_OK);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(count(db, "p"), 2);
    ts_close(db);
}
END_TEST

/* The ids ts_vector_search returns for q (k = 10), ascending. */
static size_t nearest_ids(ts_db *db, const float *q, json_int_t *ids)
{
    ts_result *r = NULL;
    ts_query *qq = ts_query_new(db, "v");
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 2, 10, &r), TS_OK);
    ts_query_free(qq);
    size_t n = ts_result_count(r);
    for (size_t i = 0; i < n; i++) ids[i] = json_integer_value(json_object_get(ts_result_row(r, i), "id"));
    ts_result_free(r);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            json_int_t x = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = x;
        }
    return n;
}

START_TEST(vector_index_follows)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'v', 'fields': [{'name': 'emb', 'type': 'vector', 'vectorConfig': "
               "{'dimensions': 2}}], 'indexes': [{'type': 'ngh', 'fields': ['emb'], "
               "'vectorConfig': {'distanceMetric': 'l2'}}]}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 0; i < 3; i++) ins_i(db, "v", i == 0 ? "{'emb': [0, 0]}" : i == 1 ? "{'emb': [1, 0]}" : "{'emb': [0, 1]}");
    ck_assert_int_eq(ts_savepoint(db, "s"), TS_OK);
    ins_i(db, "v", "{'emb': [0.1, 0.1]}");
    ck_assert_int_eq(ts_delete(db, "v", I(2)), TS_OK);
    ck_assert_int_eq(ts_update(db, "v", I(3), J("{'emb': [5, 5]}")), TS_OK);
    const float q[2] = { 0, 0 };
    json_int_t ids[10];
    ck_assert_int_eq(nearest_ids(db, q, ids), 3);
    ck_assert_int_eq(ts_rollback_to(db, "s"), TS_OK);
    ck_assert_int_eq(nearest_ids(db, q, ids), 3);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[1], 2);
    ck_assert_int_eq(ids[2], 3);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ts_result *r = NULL;
    const float q3[2] = { 0, 1 };
    ts_query *qq = ts_query_new(db, "v");
    ck_assert_int_eq(ts_vector_search(qq, "emb", q3, 2, 1, &r), TS_OK);
    ts_query_free(qq);
    ck_assert_int_eq(json_integer_value(json_object_get(ts_result_row(r, 0), "id")), 3);
    ts_result_free(r);
    ts_close(db);
}
END_TEST

/* ---- randomized against a reference model ------------------------------ */

enum { NP = 40, NK = 12, MAXSP = 6 };

typedef struct model {
    int     p_live[NP];   /* row p id i+1 exists */
    int64_t p_v[NP];      /* its unique v */
    int     c_of[NP];     /* rows of c pointing at p i+1 (one per p at most here) */
    int     k_live[NK];
    int64_t k_v[NK];
} model;

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Compare the database with the model. */
static void check(ts_db *db, const model *m, const char *when, int step)
{
    int64_t np = 0, nc = 0;
    for (int i = 0; i < NP; i++) {
        json_t *row = NULL, *pk = json_integer(i + 1);
        int rc = ts_get(db, "p", pk, &row);
        json_decref(pk);
        ck_assert_msg(rc == (m->p_live[i] ? TS_OK : TS_ERR_NOT_FOUND),
                      "%s step %d: p %d: rc %d, model %d", when, step, i + 1, rc, m->p_live[i]);
        if (row) {
            ck_assert_msg(json_integer_value(json_object_get(row, "v")) == m->p_v[i],
                          "%s step %d: p %d v", when, step, i + 1);
            json_decref(row);
        }
        np += m->p_live[i];
        nc += m->c_of[i];
    }
    ck_assert_msg(count(db, "p") == np, "%s step %d: p count %lld vs %lld", when, step,
                  (long long)count(db, "p"), (long long)np);
    ck_assert_msg(count(db, "c") == nc, "%s step %d: c count %lld vs %lld", when, step,
                  (long long)count(db, "c"), (long long)nc);
    for (int i = 0; i < NK; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        json_t *v = NULL;
        int rc = ts_kv_get(db, key, 0, &v);
        ck_assert_msg(rc == (m->k_live[i] ? TS_OK : TS_ERR_NOT_FOUND), "%s step %d: %s", when,
                      step, key);
        if (v) {
            ck_assert_msg(json_integer_value(v) == m->k_v[i], "%s step %d: %s value", when, step, key);
            json_decref(v);
        }
    }
}

START_TEST(randomized_model)
{
    int steps = getenv("TS_TEST_LONG") ? 20000 : 3000;
    ts_db *db = open_db("\"durability\": \"normal\"");
    schema2(db);
    model m, committed, sp[MAXSP];
    char spname[MAXSP][16];
    memset(&m, 0, sizeof m);
    committed = m;
    int nsp = 0, in_tx = 0;
    for (int step = 0; step < steps; step++) {
        while (npool) json_decref(pool[--npool]); /* the test JSON of the last step */
        if (!in_tx) {
            ck_assert_int_eq(ts_begin(db), TS_OK);
            in_tx = 1;
        }
        uint64_t r = rnd() % 100;
        int i = (int)(rnd() % NP), k = (int)(rnd() % NK);
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        if (r < 25) { /* insert or update p with a random v (unique violations happen) */
            int64_t v = (int64_t)(rnd() % (NP * 2));
            int clash = 0;
            for (int j = 0; j < NP; j++) clash |= j != i && m.p_live[j] && m.p_v[j] == v;
            char rec[64];
            snprintf(rec, sizeof rec, "{'id': %d, 'v': %lld}", i + 1, (long long)v);
            int rc = m.p_live[i] ? ts_update(db, "p", I(i + 1), J("{'v': %lld}", (long long)v))
                                 : ins_rc(db, "p", rec, NULL);
            ck_assert_msg(rc == (clash ? TS_ERR_UNIQUE : TS_OK), "step %d: write p %d v %lld: %d %s",
                          step, i + 1, (long long)v, rc, ts_errmsg(db));
            if (!clash) { m.p_live[i] = 1; m.p_v[i] = v; }
        } else if (r < 35) { /* delete p (cascades to its c) */
            int rc = ts_delete(db, "p", I(i + 1));
            ck_assert_int_eq(rc, m.p_live[i] ? TS_OK : TS_ERR_NOT_FOUND);
            m.p_live[i] = 0;
            m.c_of[i] = 0;
        } else if (r < 45) { /* a child of p (refused when p is missing) */
            if (m.c_of[i]) continue;
            char rec[32];
            snprintf(rec, sizeof rec, "{'pid': %d}", i + 1);
            int rc = ins_rc(db, "c", rec, NULL);
            ck_assert_msg(rc == (m.p_live[i] ? TS_OK : TS_ERR_FOREIGN_KEY), "step %d: child of %d: %d",
                          step, i + 1, rc);
            if (!rc) m.c_of[i] = 1;
        } else if (r < 60) { /* kv set / increment / remove */
            int op = (int)(rnd() % 3);
            if (op == 0) {
                int64_t v = (int64_t)(rnd() % 1000);
                ck_assert_int_eq(ts_kv_set(db, key, I(v), 0), TS_OK);
                m.k_live[k] = 1;
                m.k_v[k] = v;
            } else if (op == 1) {
                int64_t nv = 0;
                ck_assert_int_eq(ts_kv_increment(db, key, 3, 0, &nv), TS_OK);
                m.k_v[k] = (m.k_live[k] ? m.k_v[k] : 0) + 3;
                m.k_live[k] = 1;
                ck_assert_int_eq(nv, m.k_v[k]);
            } else {
                ck_assert_int_eq(ts_kv_remove(db, key, 0), m.k_live[k] ? TS_OK : TS_ERR_NOT_FOUND);
                m.k_live[k] = 0;
            }
        } else if (r < 72) { /* savepoint */
            if (nsp == MAXSP) continue;
            snprintf(spname[nsp], sizeof spname[nsp], "s%d", nsp);
            ck_assert_int_eq(ts_savepoint(db, spname[nsp]), TS_OK);
            sp[nsp++] = m;
        } else if (r < 84) { /* rollback to a random open savepoint */
            if (!nsp) continue;
            int j = (int)(rnd() % (uint64_t)nsp);
            ck_assert_msg(ts_rollback_to(db, spname[j]) == TS_OK, "step %d: rollback_to: %s", step,
                          ts_errmsg(db));
            m = sp[j];
            nsp = j + 1;
            check(db, &m, "after rollback_to", step);
        } else if (r < 90) { /* release */
            if (!nsp) continue;
            int j = (int)(rnd() % (uint64_t)nsp);
            ck_assert_int_eq(ts_release(db, spname[j]), TS_OK);
            nsp = j;
        } else if (r < 95) { /* commit */
            ck_assert_msg(ts_commit(db) == TS_OK, "step %d: commit: %s", step, ts_errmsg(db));
            committed = m;
            in_tx = 0;
            nsp = 0;
            check(db, &m, "after commit", step);
        } else { /* roll back everything */
            ck_assert_int_eq(ts_rollback(db), TS_OK);
            m = committed;
            in_tx = 0;
            nsp = 0;
            check(db, &m, "after rollback", step);
        }
    }
    if (in_tx) ck_assert_int_eq(ts_commit(db), TS_OK);
    db = reopen(db);
    check(db, &m, "after reopen", steps);
    ts_close(db);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("savepoint");
    TCase *tc = tcase_create("savepoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, contract);
    tcase_add_test(tc, same_name_and_failed_statement);
    tcase_add_test(tc, batches);
    tcase_add_test(tc, barriers);
    tcase_add_test(tc, vector_index_follows);
    tcase_add_test(tc, randomized_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
