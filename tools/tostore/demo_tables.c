/* The tables part of `tostore demo`: schemas, inserts, constraints, foreign
 * keys, upserts, batches and savepoints, through the public API only. */
#include <stdio.h>
#include <stdlib.h>
#include <tostore/tostore.h>
#include "demo.h"

static const char *SCHEMAS =
    "[{\"name\": \"posts\", \"fields\": ["
    "   {\"name\": \"author\", \"type\": \"integer\", \"nullable\": false},"
    "   {\"name\": \"title\", \"type\": \"text\", \"maxLength\": 80},"
    "   {\"name\": \"created\", \"type\": \"datetime\", \"defaultValueType\": \"currentTimestamp\"}],"
    "  \"foreignKeys\": [{\"fields\": [\"author\"], \"referencedTable\": \"users\","
    "                   \"referencedFields\": [\"id\"], \"onDelete\": \"cascade\"}]},"
    " {\"name\": \"users\", \"fields\": ["
    "   {\"name\": \"email\", \"type\": \"text\", \"unique\": true, \"nullable\": false},"
    "   {\"name\": \"name\", \"type\": \"text\"},"
    "   {\"name\": \"age\", \"type\": \"integer\", \"minValue\": 0, \"maxValue\": 150}]}]";

static void line(const char *what, const json_t *j)
{
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    printf("  %-30s -> %s\n", what, txt ? txt : "(none)");
    free(txt);
}

static void fails(ts_db *db, const char *what, int rc)
{
    printf("  %-30s -> %s: %s\n", what, ts_strerror(rc), rc ? ts_errmsg(db) : "");
}

void demo_tables(ts_db *db)
{
    printf("\ntables, constraints and foreign keys:\n");
    json_error_t je;
    json_t *schemas = json_loads(SCHEMAS, 0, &je);
    int rc = ts_create_tables(db, schemas);
    json_decref(schemas);
    printf("  %-30s -> %s\n", "create users, posts", rc == TS_ERR_TABLE_EXISTS ?
           "already there (from an earlier run)" : ts_strerror(rc));

    json_t *pk = NULL, *row = NULL, *rec = json_pack("{s:s, s:s, s:i}", "email", "ada@example.com",
                                                     "name", "Ada", "age", 36);
    rc = ts_upsert(db, "users", rec, &pk);   /* insert, or update on later runs */
    json_decref(rec);
    if (rc) { fails(db, "upsert ada", rc); return; }
    line("upsert ada: primary key", pk);
    if (ts_get(db, "users", pk, &row) == TS_OK) line("get by key", row);
    json_decref(row);

    rec = json_pack("{s:O, s:s}", "author", pk, "title", "Notes on the Analytical Engine");
    json_t *post = NULL;
    rc = ts_insert(db, "posts", rec, &post);
    json_decref(rec);
    if (!rc && ts_get(db, "posts", post, &row) == TS_OK) line("insert a post", row);
    json_decref(row);
    json_decref(post);

    rec = json_pack("{s:s, s:s}", "email", "ada@example.com", "name", "Imposter");
    fails(db, "same email again", ts_insert(db, "users", rec, NULL));
    json_decref(rec);
    rec = json_pack("{s:s, s:i}", "email", "old@example.com", "age", 200);
    fails(db, "age 200", ts_insert(db, "users", rec, NULL));
    json_decref(rec);
    rec = json_pack("{s:i, s:s}", "author", 999999, "title", "orphan");
    fails(db, "post by a missing user", ts_insert(db, "posts", rec, NULL));
    json_decref(rec);

    json_t *batch = json_loads("[{\"email\": \"grace@example.com\", \"name\": \"Grace\"},"
                               " {\"email\": \"nobody\", \"age\": -1},"
                               " {\"email\": \"linus@example.com\"}]", 0, &je);
    json_t *report = NULL;
    rc = ts_batch_upsert(db, "users", batch, 1, &report);
    printf("  %-30s -> %s\n", "batch of 3, one bad", rc == TS_PARTIAL ? "TS_PARTIAL" : ts_strerror(rc));
    line("  its report", report);
    json_decref(report);
    json_decref(batch);

    int64_t users = 0, posts = 0;
    ts_count_rows(db, "posts", &posts);
    json_t *bob = json_pack("{s:s, s:s}", "email", "bob@example.com", "name", "Bob"), *bob_pk = NULL;
    if (ts_insert(db, "users", bob, &bob_pk) == TS_OK) {
        rec = json_pack("{s:O, s:s}", "author", bob_pk, "title", "draft");
        ts_insert(db, "posts", rec, NULL);
        json_decref(rec);
        ts_delete(db, "users", bob_pk);
        int64_t after = 0;
        ts_count_rows(db, "posts", &after);
        printf("  %-30s -> posts %lld -> %lld -> %lld (cascade)\n", "bob posts, then is deleted",
               (long long)posts, (long long)posts + 1, (long long)after);
    }
    json_decref(bob);
    json_decref(bob_pk);
    ts_count_rows(db, "users", &users);
    printf("  %-30s -> %lld users, %lld posts\n", "rows now", (long long)users, (long long)posts);
    json_decref(pk);

    /* a transaction with a savepoint: the draft goes, the post stays */
    int64_t before = 0, kept = 0;
    ts_count_rows(db, "posts", &before);
    if (ts_begin(db) == TS_OK) {
        json_t *users_pk = json_pack("{s:s}", "email", "ada@example.com"), *ada = NULL;
        ts_query *aq = ts_where(ts_query_new(db, "users"), "email", "=", json_object_get(users_pk, "email"));
        ts_result *ar = NULL;
        if (ts_query_exec(aq, &ar) == TS_OK && ts_result_count(ar))
            ada = json_incref(json_object_get(ts_result_row(ar, 0), "id"));
        ts_result_free(ar);
        ts_query_free(aq);
        json_decref(users_pk);
        rec = json_pack("{s:O, s:s}", "author", ada, "title", "On the Bernoulli numbers");
        ts_insert(db, "posts", rec, NULL);
        json_decref(rec);
        ts_savepoint(db, "draft");
        rec = json_pack("{s:O, s:s}", "author", ada, "title", "half-written draft");
        ts_insert(db, "posts", rec, NULL);
        json_decref(rec);
        ts_rollback_to(db, "draft");
        ts_release(db, "draft");
        rc = ts_commit(db);
        json_decref(ada);
        ts_count_rows(db, "posts", &kept);
        printf("  %-30s -> posts %lld -> %lld (the draft rolled back to the savepoint)\n",
               "begin, post, savepoint, draft", (long long)before, (long long)kept);
    }

    /* a query: a condition, an order, a limit, through an index */
    ts_query *q = ts_query_new(db, "users");
    json_t *like = json_string("%@example.com");
    ts_where(q, "email", "LIKE", like);
    ts_order_by(q, "email", 1);
    ts_limit(q, 2);
    ts_result *r = NULL;
    if (ts_query_exec(q, &r) == TS_OK) {
        for (size_t i = 0; i < ts_result_count(r); i++) line(i ? "" : "query: LIKE, ORDER BY desc",
                                                             ts_result_row(r, i));
        printf("  %-30s -> %s\n", "next page", ts_result_next_cursor(r) ? "a cursor token" : "none");
    }
    ts_result_free(r);
    json_t *plan = NULL;
    if (ts_query_explain(q, &plan) == TS_OK)
        printf("  %-30s -> %s (%s)\n", "its plan", json_string_value(json_object_get(plan, "plan")),
               json_string_value(json_object_get(plan, "description")));
    json_decref(plan);
    int64_t n = 0;
    if (ts_query_count(q, &n) == TS_OK) printf("  %-30s -> %lld\n", "how many match", (long long)n);
    json_decref(like);
    ts_query_free(q);
}
