/* `tostore schema` and `tostore migrate`: stored schemas and migrations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "demo.h"

/* Open the database of `config` without applying its "schemas" (a dry
 * run must not migrate at open); *schemas_new gets them (or NULL). */
static int open_plain(const char *config, ts_db **db, json_t **schemas_new)
{
    *schemas_new = NULL;
    if (!config) return ts_open(NULL, db);
    json_error_t e;
    json_t *c = json_load_file(config, 0, &e);
    if (!c) {
        fprintf(stderr, "tostore: %s:%d: %s\n", config, e.line, e.text);
        return TS_ERR_CONFIG;
    }
    json_t *s = json_object_get(c, "schemas");
    if (s) *schemas_new = json_incref(s);
    json_object_del(c, "schemas");
    char *text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    int rc = text ? ts_open_json(text, db) : TS_ERR_NOMEM;
    free(text);
    if (rc) {
        fprintf(stderr, "tostore: cannot open (%s): %s\n", ts_strerror(rc), ts_errmsg(NULL));
        json_decref(*schemas_new);
        *schemas_new = NULL;
    }
    return rc;
}

int cmd_schema(const char *config, const char *table)
{
    ts_db *db;
    json_t *ignored;
    if (open_plain(config, &db, &ignored)) return 1;
    json_decref(ignored);
    json_t *names = NULL;
    int rc = table ? TS_OK : ts_list_tables(db, &names);
    if (table) names = json_pack("[s]", table);
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) {
        json_t *s = NULL;
        if ((rc = ts_get_schema(db, json_string_value(n), &s))) break;
        char *text = json_dumps(s, JSON_INDENT(2));
        printf("%s\n", text);
        free(text);
        json_decref(s);
    }
    if (rc) fprintf(stderr, "tostore: %s\n", ts_errmsg(db));
    json_decref(names);
    ts_close(db);
    return rc ? 1 : 0;
}

/* A progress bar per rewritten table on stderr (redrawn on a terminal; a
 * final line in any case). */
static void migrate_progress(void *ctx, const char *table, uint64_t done, uint64_t total)
{
    int tty = *(int *)ctx;
    if (!tty && done < total) return;
    int width = 40, fill = total ? (int)(done * (uint64_t)width / total) : width;
    fprintf(stderr, "\r%-20s [", table);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %3d%% %llu/%llu rows", total ? (int)(done * 100 / total) : 100,
            (unsigned long long)done, (unsigned long long)total);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

int cmd_migrate(const char *config, int apply)
{
    if (!config) {
        fprintf(stderr, "tostore migrate: --config FILE with \"schemas\" is required\n");
        return 2;
    }
    ts_db *db;
    json_t *schemas;
    if (open_plain(config, &db, &schemas)) return 1;
    if (!schemas) {
        fprintf(stderr, "tostore migrate: %s has no \"schemas\"\n", config);
        ts_close(db);
        return 2;
    }
    json_t *report = NULL;
    int tty = isatty(2);
    /* The dry run migrates inside a transaction it rolls back, so it also
     * finds the refusals (rows that cannot follow) the real run would hit. */
    int rc = apply ? TS_OK : ts_begin(db);
    if (!rc) rc = ts_sync_schemas_progress(db, schemas, 0, &report, apply ? migrate_progress : NULL, &tty);
    if (!apply) ts_rollback(db);
    if (rc) {
        fprintf(stderr, "tostore migrate: %s: %s\n", ts_strerror(rc), ts_errmsg(db));
    } else {
        printf("%s:\n", apply ? "applied" : "planned (dry run; --apply to apply)");
        size_t i;
        json_t *e;
        json_array_foreach(report, i, e) {
            json_t *f = json_object_get(e, "fields");
            char *fs = f ? json_dumps(f, JSON_COMPACT) : NULL;
            printf("  %-20s %-10s%s%s%s%s", json_string_value(json_object_get(e, "table")),
                   json_string_value(json_object_get(e, "action")),
                   json_object_get(e, "from") ? " from " : "",
                   json_object_get(e, "from") ? json_string_value(json_object_get(e, "from")) : "",
                   fs ? " " : "", fs ? fs : "");
            if (json_object_get(e, "rows"))
                printf(" rows %lld", (long long)json_integer_value(json_object_get(e, "rows")));
            json_t *rw = json_object_get(e, "rewrite");
            if (rw) printf(json_is_true(rw) ? " (every row rewritten)" : " (rows kept as they are)");
            printf("\n");
            free(fs);
        }
    }
    json_decref(report);
    json_decref(schemas);
    ts_close(db);
    return rc ? 1 : 0;
}

int cmd_rebuild(const char *config, const char *table)
{
    if (!table) {
        fprintf(stderr, "tostore rebuild: name the table (--table T or T)\n");
        return 2;
    }
    ts_db *db;
    json_t *schemas;
    if (open_plain(config, &db, &schemas)) return 1;
    json_decref(schemas);
    json_t *before = NULL, *after = NULL;
    ts_stats(db, &before);
    int tty = isatty(2);
    int rc = ts_rebuild_table(db, table, migrate_progress, &tty);
    if (rc) {
        fprintf(stderr, "tostore rebuild: %s: %s\n", ts_strerror(rc), ts_errmsg(db));
    } else if (ts_stats(db, &after) == TS_OK && before) {
        printf("rebuilt %s: free pages %lld -> %lld of %lld\n", table,
               (long long)json_integer_value(json_object_get(before, "freePages")),
               (long long)json_integer_value(json_object_get(after, "freePages")),
               (long long)json_integer_value(json_object_get(after, "pages")));
    }
    json_decref(before);
    json_decref(after);
    ts_close(db);
    return rc ? 1 : 0;
}
