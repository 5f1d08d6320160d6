/*
 * The tostore command against a database made through the public API:
 * `tostore rebuild` (exit codes, its report, the rows after it) and the
 * progress ts_rebuild_table reports on a table of several thousand rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <tostore/tostore.h>
#include "tsupport.h"

#define ROWS 3000
#define KEPT 300

static char *dir;

/* dir/name in a new string; free() it. */
static char *path_in(const char *d, const char *name)
{
    size_t n = strlen(d) + strlen(name) + 2;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    snprintf(s, n, "%s/%s", d, name);
    return s;
}

/* The whole of file path (empty when missing); free() it. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 65536);
    ck_assert_ptr_nonnull(buf);
    if (f) {
        size_t n = fread(buf, 1, 65535, f);
        buf[n] = 0;
        fclose(f);
    }
    return buf;
}

/* Run `tostore <args>`; its exit code, stdout and stderr (free() them).
 * A sanitizer's report fails the test whatever the exit code. */
static int run(const char *args, char **out, char **err)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "'%s' %s > '%s/out.txt' 2> '%s/err.txt' < /dev/null", TS_CLI, args,
                     dir, dir);
    ck_assert_msg(n > 0 && (size_t)n < sizeof cmd, "command too long");
    int st = system(cmd);
    ck_assert_msg(st != -1, "could not run: %s", cmd);
    ck_assert_msg(WIFEXITED(st), "%s: killed by signal %d", cmd, WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    char *p = path_in(dir, "out.txt");
    *out = slurp(p);
    free(p);
    p = path_in(dir, "err.txt");
    *err = slurp(p);
    free(p);
    ck_assert_msg(!strstr(*err, "Sanitizer"), "%s:\n%s", cmd, *err);
    return WEXITSTATUS(st);
}

static ts_db *open_db(void)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s/db\"}", dir);
    ts_db *db = NULL;
    int rc = ts_open_json(cfg, &db);
    ck_assert_msg(rc == TS_OK, "open: %s", ts_errmsg(NULL));
    return db;
}

/* Table t: ROWS rows (keys 1..ROWS) with a unique indexed name, all but
 * KEPT deleted: n00000, n00010, ... stay. */
static void make_table(void)
{
    ts_db *db = open_db();
    json_error_t je;
    json_t *schema = json_loads("{\"name\": \"t\", \"primaryKeyConfig\": {\"name\": \"id\"},"
                                " \"fields\": [{\"name\": \"name\", \"type\": \"text\"},"
                                "              {\"name\": \"body\", \"type\": \"text\"}],"
                                " \"indexes\": [{\"fields\": [\"name\"], \"unique\": true}]}", 0, &je);
    ck_assert_ptr_nonnull(schema);
    ck_assert_int_eq(ts_create_table(db, schema), TS_OK);
    json_decref(schema);
    char body[201];
    memset(body, 'x', 200);
    body[200] = 0;
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 0; i < ROWS; i++) {
        char name[32];
        snprintf(name, sizeof name, "n%05d", i);
        json_t *row = json_pack("{s:s, s:s}", "name", name, "body", body);
        ck_assert_int_eq(ts_insert(db, "t", row, NULL), TS_OK);
        json_decref(row);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    /* every row but one in ten, so that every page stays but nearly empty */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 0; i < ROWS; i++) {
        if (i % (ROWS / KEPT) == 0) continue;
        json_t *pk = json_integer(i + 1);
        ck_assert_int_eq(ts_delete(db, "t", pk), TS_OK);
        json_decref(pk);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);
}

static void setup(void)
{
    dir = tst_tmpdir("cli");
    /* the paths go into shell words in single quotes and into JSON strings */
    ck_assert_msg(!strpbrk(dir, "'\"\\") && !strpbrk(TS_CLI, "'\"\\"), "unusual path: %s", dir);
    char *cfg = path_in(dir, "tostore.json");
    FILE *f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"path\": \"%s/db\"}\n", dir);
    fclose(f);
    free(cfg);
}

static void teardown(void)
{
    tst_rmrf(dir);
    free(dir);
}

static long long count_rows(ts_db *db)
{
    int64_t n = -1;
    ck_assert_int_eq(ts_count_rows(db, "t", &n), TS_OK);
    return (long long)n;
}

START_TEST(cli_rebuild)
{
    make_table();
    char *out, *err, args[1024];
    snprintf(args, sizeof args, "rebuild --config '%s/tostore.json' t", dir);
    int code = run(args, &out, &err);
    ck_assert_msg(code == 0, "exit %d: %s", code, err);
    long long before = -1, after = -1, pages = -1;
    ck_assert_msg(sscanf(out, "rebuilt t: free pages %lld -> %lld of %lld", &before, &after, &pages) == 3,
                  "report: %s", out);
    /* 90% of the rows went: the pages they left nearly empty come back */
    ck_assert_msg(after >= before + 10, "free pages %lld -> %lld of %lld", before, after, pages);
    ck_assert_int_lt(after, pages);
    free(out);
    free(err);

    ts_db *db = open_db();
    ck_assert_int_eq(count_rows(db), KEPT);
    ts_query *q = ts_query_new(db, "t");
    json_t *name = json_string("n00120");
    ts_where(q, "name", "=", name);
    ts_result *res = NULL;
    ck_assert_int_eq(ts_query_exec(q, &res), TS_OK);
    ck_assert_uint_eq(ts_result_count(res), 1);
    ck_assert_str_eq(json_string_value(json_object_get(ts_result_row(res, 0), "name")), "n00120");
    ts_result_free(res);
    json_decref(name);
    ts_query_free(q);
    /* the unique index was built again: a duplicate is refused */
    json_t *dup = json_pack("{s:s, s:s}", "name", "n00010", "body", "y");
    ck_assert_int_eq(ts_insert(db, "t", dup, NULL), TS_ERR_UNIQUE);
    json_decref(dup);
    ck_assert_int_eq(ts_check(db, NULL, NULL, NULL), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);

    snprintf(args, sizeof args, "check --config '%s/tostore.json'", dir);
    code = run(args, &out, &err);
    ck_assert_msg(code == 0, "check exit %d: %s %s", code, out, err);
    free(out);
    free(err);
}
END_TEST

START_TEST(cli_rebuild_errors)
{
    make_table();
    char *out, *err, args[1024];
    snprintf(args, sizeof args, "rebuild --config '%s/tostore.json' nosuch", dir);
    int code = run(args, &out, &err);
    ck_assert_int_eq(code, 1);
    ck_assert_msg(strstr(err, "tostore rebuild:") && strstr(err, "nosuch"), "stderr: %s", err);
    ck_assert_str_eq(out, "");
    free(out);
    free(err);
    snprintf(args, sizeof args, "rebuild --config '%s/tostore.json'", dir);
    code = run(args, &out, &err);
    ck_assert_int_eq(code, 2);
    ck_assert_msg(strstr(err, "name the table"), "stderr: %s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "rebuild --config '%s/missing.json' t", dir);
    code = run(args, &out, &err);
    ck_assert_int_eq(code, 1);
    ck_assert_msg(strstr(err, "missing.json"), "stderr: %s", err);
    free(out);
    free(err);
    ts_db *db = open_db();
    ck_assert_int_eq(count_rows(db), KEPT);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

typedef struct prog { int calls, bad; uint64_t last, total; } prog;

static void on_progress(void *ctx, const char *table, uint64_t done, uint64_t total)
{
    prog *p = ctx;
    if (strcmp(table, "t") || done < p->last || done > total) p->bad++;
    p->calls++;
    p->last = done;
    p->total = total;
}

/* ts_rebuild_table's progress on a table of several thousand rows: calls
 * in the middle of the copy, never going back, ending at done == total. */
START_TEST(rebuild_progress)
{
    make_table();
    ts_db *db = open_db();
    json_t *row = json_pack("{s:s, s:s}", "name", "z", "body", "b");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 0; i < ROWS; i++) {
        char name[32];
        snprintf(name, sizeof name, "m%05d", i);
        json_object_set_new(row, "name", json_string(name));
        ck_assert_int_eq(ts_insert(db, "t", row, NULL), TS_OK);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    json_decref(row);
    prog p = { 0, 0, 0, 0 };
    ck_assert_int_eq(ts_rebuild_table(db, "t", on_progress, &p), TS_OK);
    ck_assert_int_eq(p.bad, 0);
    ck_assert_int_ge(p.calls, 3);   /* 1024, 2048, 3072 and the end */
    ck_assert_uint_eq(p.last, KEPT + ROWS);
    ck_assert_uint_eq(p.total, KEPT + ROWS);
    ck_assert_int_eq(count_rows(db), KEPT + ROWS);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("rebuild");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cli_rebuild);
    tcase_add_test(tc, cli_rebuild_errors);
    tcase_add_test(tc, rebuild_progress);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
