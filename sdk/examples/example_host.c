/*
 * example_host - a tiny application embedding tostore with the countfs
 * plugin: it opens the database described by a tostore.json, lists the
 * loaded modules, and shows countfs counting the kernel's file traffic.
 *
 *   example_host countfs.json
 *
 * Opens the database twice (creating it the first time if needed) and exits
 * with 0 only if countfs is loaded, is the storage backend, and its counters
 * moved: the first open does I/O and the reopen reads what it wrote.
 */
#include <stdio.h>
#include <string.h>
#include <tostore/tostore.h>

static int64_t counter(ts_db *db, const char *op)
{
    int64_t v = -1;
    int rc = ts_storage_control(db, op, 0, &v);
    if (rc != TS_OK)
        fprintf(stderr, "example_host: control '%s': %s: %s\n", op, ts_strerror(rc),
                ts_errmsg(db));
    return v;
}

/* Print the modules and say whether a storage module "countfs" is among them. */
static int list_modules(ts_db *db)
{
    json_t *mods = NULL;
    int found = 0;
    if (ts_modules(db, &mods) != TS_OK) {
        fprintf(stderr, "example_host: ts_modules: %s\n", ts_errmsg(db));
        return 0;
    }
    size_t i;
    json_t *m;
    printf("%-8s %-18s %-8s %-18s %s\n", "KIND", "NAME", "VERSION", "PLUGIN", "FILE");
    json_array_foreach(mods, i, m) {
        const char *kind = json_string_value(json_object_get(m, "kind"));
        const char *name = json_string_value(json_object_get(m, "name"));
        printf("%-8s %-18s %-8s %-18s %s\n", kind, name,
               json_string_value(json_object_get(m, "version")),
               json_string_value(json_object_get(m, "plugin")),
               json_string_value(json_object_get(m, "file")));
        if (strcmp(kind, "storage") == 0 && strcmp(name, "countfs") == 0) found = 1;
    }
    json_decref(mods);
    return found;
}

/* Open, print the counters, close.  Returns 0, or 1 on failure. */
static int session(const char *config, int first, int64_t *reads, int64_t *writes,
                   int64_t *syncs)
{
    ts_db *db = NULL;
    int rc = ts_open(config, &db);
    if (rc != TS_OK) {
        fprintf(stderr, "example_host: cannot open with %s: %s: %s\n", config, ts_strerror(rc),
                ts_errmsg(NULL));
        return 1;
    }
    int ok = 1;
    if (first) {
        printf("tostore %s, modules loaded from %s:\n", ts_version(), config);
        if (!list_modules(db)) {
            fprintf(stderr, "example_host: no storage module 'countfs' is loaded\n");
            ok = 0;
        }
    }
    *reads = counter(db, "reads");
    *writes = counter(db, "writes");
    *syncs = counter(db, "syncs");
    printf("%s: countfs counted reads=%lld writes=%lld syncs=%lld (bytes read %lld, written %lld)\n",
           first ? "open" : "reopen", (long long)*reads, (long long)*writes, (long long)*syncs,
           (long long)counter(db, "bytesRead"), (long long)counter(db, "bytesWritten"));
    if (*reads < 0 || *writes < 0 || *syncs < 0) ok = 0;
    rc = ts_close(db);
    if (rc != TS_OK) {
        fprintf(stderr, "example_host: close: %s\n", ts_strerror(rc));
        ok = 0;
    }
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: example_host <tostore.json loading countfs>\n");
        return 2;
    }
    int64_t r1, w1, s1, r2, w2, s2;
    if (session(argv[1], 1, &r1, &w1, &s1)) return 1;
    if (session(argv[1], 0, &r2, &w2, &s2)) return 1;
    if (r1 + w1 + s1 == 0) {
        fprintf(stderr, "example_host: the first open did no I/O through countfs\n");
        return 1;
    }
    if (r2 == 0) {
        fprintf(stderr, "example_host: the reopen read nothing through countfs\n");
        return 1;
    }
    printf("ok: countfs carried the database\n");
    return 0;
}
