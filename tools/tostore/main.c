/*
 * tostore - command-line tool for tostore databases.
 *
 *   tostore demo [--config F]       show the engine working (the README's main job)
 *   tostore plugins [--config F]    list the loaded modules
 *   tostore config [--config F]     print the effective configuration
 *   tostore stats [--config F]      print statistics
 *   tostore check [--config F]      verify every page and the free list
 *   tostore rekey [--config F] (--to CIPHER_JSON | --decrypt) [--new-data-key]
 *   tostore schema [--config F] [--table T]
 *   tostore migrate --config F [--apply]
 *   tostore rebuild [--config F] (--table T | T)
 *   tostore version
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/tostore.h>
#include "demo.h"

static int usage(FILE *to)
{
    fprintf(to,
            "usage: tostore <command> [--config FILE]\n"
            "commands:\n"
            "  demo      open a database and show what the engine does\n"
            "  plugins   list the modules loaded from tostore.json\n"
            "  config    print the effective configuration (secrets hidden)\n"
            "  stats     print statistics\n"
            "  check     verify every page and the free list\n"
            "  rekey     re-encrypt: --to '{\"module\":...,\"key\":...}' or --decrypt,\n"
            "            [--new-data-key] to re-seal every page under a new data key\n"
            "  schema    print the stored table schemas ([table] or [--table T] for one)\n"
            "  migrate   show the changes the config's \"schemas\" make to the stored\n"
            "            tables; --apply applies them\n"
            "  rebuild   copy a table's rows and rebuild its indexes (T or --table T):\n"
            "            gives back the pages of an index that shrank for good\n"
            "  version   print the library version\n"
            "Without --config the embedded default configuration is used.\n");
    return to == stderr ? 2 : 0;
}

static int open_db(const char *config, ts_db **db)
{
    int rc = ts_open(config, db);
    if (rc != TS_OK)
        fprintf(stderr, "tostore: cannot open (%s): %s\n", ts_strerror(rc), ts_errmsg(NULL));
    return rc;
}

static void print_modules(ts_db *db)
{
    json_t *mods = NULL;
    if (ts_modules(db, &mods) != TS_OK) return;
    printf("%-8s %-18s %-8s %-22s %s\n", "KIND", "NAME", "VERSION", "FLAGS", "FILE");
    size_t i;
    json_t *m;
    json_array_foreach(mods, i, m) {
        char flags[64] = "";
        size_t j;
        json_t *f;
        json_array_foreach(json_object_get(m, "flags"), j, f) {
            if (*flags) strncat(flags, ",", sizeof flags - strlen(flags) - 1);
            strncat(flags, json_string_value(f), sizeof flags - strlen(flags) - 1);
        }
        printf("%-8s %-18s %-8s %-22s %s\n", json_string_value(json_object_get(m, "kind")),
               json_string_value(json_object_get(m, "name")),
               json_string_value(json_object_get(m, "version")), *flags ? flags : "-",
               json_string_value(json_object_get(m, "file")));
    }
    json_decref(mods);
}

static int cmd_plugins(const char *config)
{
    ts_db *db = NULL;
    if (open_db(config, &db)) return 1;
    print_modules(db);
    ts_close(db);
    return 0;
}

static int cmd_config(const char *config)
{
    ts_db *db = NULL;
    if (open_db(config, &db)) return 1;
    json_t *cfg = NULL;
    if (ts_config(db, &cfg) == TS_OK) {
        char *s = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) puts(s);
        free(s);
        json_decref(cfg);
    }
    ts_close(db);
    return 0;
}

/* A progress bar on stderr for long work (rekey, check). */
static void progress_bar(void *ctx, uint64_t done, uint64_t total)
{
    const char *what = ctx;
    int width = 40, fill = total ? (int)(done * (uint64_t)width / total) : width;
    fprintf(stderr, "\r%-8s [", what);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %3d%% %llu/%llu pages", total ? (int)(done * 100 / total) : 100,
            (unsigned long long)done, (unsigned long long)total);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) puts(s);
    free(s);
}

static int cmd_stats(const char *config)
{
    ts_db *db = NULL;
    if (open_db(config, &db)) return 1;
    json_t *st = NULL;
    int rc = ts_stats(db, &st);
    if (!rc) print_json(st);
    json_decref(st);
    ts_close(db);
    return rc ? 1 : 0;
}

static int cmd_check(const char *config)
{
    ts_db *db = NULL;
    if (open_db(config, &db)) return 1;
    json_t *rep = NULL;
    int rc = ts_check(db, &rep, progress_bar, "check");
    if (rep) print_json(rep);
    if (rc) fprintf(stderr, "tostore: %s\n", ts_errmsg(db));
    json_decref(rep);
    ts_close(db);
    return rc ? 1 : 0;
}

static int cmd_rekey(const char *config, const char *to, int decrypt, int new_key)
{
    if (!to && !decrypt) {
        fprintf(stderr, "tostore rekey: give --to CIPHER_JSON or --decrypt\n");
        return 2;
    }
    ts_db *db = NULL;
    if (open_db(config, &db)) return 1;
    int rc = ts_rekey(db, decrypt ? NULL : to, new_key ? TS_REKEY_NEW_DATA_KEY : 0, progress_bar,
                      "rekey");
    if (rc) fprintf(stderr, "tostore rekey: %s: %s\n", ts_strerror(rc), ts_errmsg(db));
    else printf("rekeyed; update the cipher section of your configuration to match\n");
    ts_close(db);
    return rc ? 1 : 0;
}

static int cmd_demo(const char *config)
{
    printf("tostore %s demo\n\n", ts_version());
    ts_db *db = NULL;
    if (open_db(config, &db)) return 1;
    json_t *cfg = NULL;
    if (ts_config(db, &cfg) == TS_OK) {
        printf("opened %s (storage backend: %s, page size %lld)\n",
               json_string_value(json_object_get(cfg, "path")),
               json_string_value(json_object_get(json_object_get(cfg, "storage"), "backend")),
               (long long)json_integer_value(json_object_get(cfg, "pageSize")));
        json_decref(cfg);
    }
    printf("\nmodules loaded from the configuration:\n");
    print_modules(db);

    printf("\nkey-value store, spaces and transactions:\n");
    json_t *v = json_pack("{s:s, s:i}", "name", "Ada", "visits", 1), *out = NULL;
    int64_t n = 0;
    if (ts_kv_set(db, "user:ada", v, 0) == TS_OK && ts_kv_get(db, "user:ada", 0, &out) == TS_OK) {
        char *txt = json_dumps(out, JSON_COMPACT);
        printf("  kv set/get user:ada          -> %s\n", txt);
        free(txt);
    }
    json_decref(out);
    ts_kv_increment(db, "visits", 1, 1, &n);
    printf("  global counter 'visits'      -> %lld (one more on every demo run)\n", (long long)n);
    ts_switch_space(db, "guest", 0);
    int rc = ts_kv_get(db, "user:ada", 0, &out);
    printf("  in space 'guest', user:ada  -> %s (spaces are isolated)\n", ts_strerror(rc));
    ts_switch_space(db, "default", 0);
    if (ts_begin(db) == TS_OK) {
        ts_kv_set(db, "draft", v, 0);
        ts_rollback(db);
    }
    rc = ts_kv_get(db, "draft", 0, &out);
    printf("  a rolled-back write          -> %s\n", ts_strerror(rc));
    json_decref(v);
    json_t *st = NULL;
    if (ts_stats(db, &st) == TS_OK) {
        printf("  stats: %lld pages of %lld bytes, %lld commits, log %lld bytes\n",
               (long long)json_integer_value(json_object_get(st, "pages")),
               (long long)json_integer_value(json_object_get(st, "pageSize")),
               (long long)json_integer_value(json_object_get(st, "commits")),
               (long long)json_integer_value(json_object_get(st, "logBytes")));
        json_decref(st);
    }
    demo_tables(db);
    demo_vectors(db);
    rc = ts_check(db, NULL, NULL, NULL);
    printf("\n  integrity check              -> %s\n", ts_strerror(rc));

    printf("\nbad input is refused with a clear message:\n");
    ts_db *bad = NULL;
    const char *cases[] = {
        "{\"pageSize\": 1000}",
        "{\"plugins\": [\"posix\", \"no-such-plugin\"]}",
        "{\"cipher\": {\"module\": \"xor\", \"key\": \"hex:00\"}}",
        "{\"colour\": \"blue\"}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int brc = ts_open_json(cases[i], &bad);
        printf("  %-48s -> %s: %s\n", cases[i], ts_strerror(brc), ts_errmsg(NULL));
        ts_close(bad);
    }
    ts_close(db);
    printf("\nclosed.\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "demo";
    const char *config = NULL, *to = NULL, *table = NULL;
    int decrypt = 0, new_key = 0, apply = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) config = argv[++i];
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) to = argv[++i];
        else if (strcmp(argv[i], "--decrypt") == 0) decrypt = 1;
        else if (strcmp(argv[i], "--new-data-key") == 0) new_key = 1;
        else if (strcmp(argv[i], "--table") == 0 && i + 1 < argc) table = argv[++i];
        else if (strcmp(argv[i], "--apply") == 0) apply = 1;
        /* `tostore schema --config F [table]` */
        else if ((strcmp(cmd, "schema") == 0 || strcmp(cmd, "rebuild") == 0) && argv[i][0] != '-' &&
                 !table)
            table = argv[i];
        else { fprintf(stderr, "tostore: unknown argument '%s'\n", argv[i]); return usage(stderr); }
    }
    if (strcmp(cmd, "demo") == 0) return cmd_demo(config);
    if (strcmp(cmd, "plugins") == 0) return cmd_plugins(config);
    if (strcmp(cmd, "config") == 0) return cmd_config(config);
    if (strcmp(cmd, "stats") == 0) return cmd_stats(config);
    if (strcmp(cmd, "check") == 0) return cmd_check(config);
    if (strcmp(cmd, "rekey") == 0) return cmd_rekey(config, to, decrypt, new_key);
    if (strcmp(cmd, "schema") == 0) return cmd_schema(config, table);
    if (strcmp(cmd, "migrate") == 0) return cmd_migrate(config, apply);
    if (strcmp(cmd, "rebuild") == 0) return cmd_rebuild(config, table);
    if (strcmp(cmd, "version") == 0) { printf("%s\n", ts_version()); return 0; }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0) return usage(stdout);
    fprintf(stderr, "tostore: unknown command '%s'\n", cmd);
    return usage(stderr);
}
