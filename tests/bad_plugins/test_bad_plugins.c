/*
 * The plugin loader seen from an application: every way a plugin can be
 * wrong, loaded through the public API only (ts_open_json with "plugins"),
 * must fail with the exact status and a message that names the JSON path,
 * the file and the problem.  The good plugin (bp_good) checks the other
 * side: two modules of different kinds in one .so, listed by ts_modules,
 * per-handle init/fini, and a plugin shared by two open handles.
 *
 * Only tostore/tostore.h and tsupport.h are included: no kernel headers.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tostore/plugin.h>
#include <tostore/tostore.h>
#include "tsupport.h"

#define BAD_SO(name) TS_TEST_BAD_PLUGIN_DIR "/" name ".so"
#define GOOD_SO BAD_SO("bp_good")
#define KEY64 "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

/* ---- helpers ------------------------------------------------------------ */

/* The directory of the last successful open that did not ask for it,
 * removed by close_db. */
static char *open_dir;

/* Open a database in a fresh directory.  `plugins` is a NULL-terminated list
 * of specs (may be NULL); `extra` is a JSON object whose keys are merged
 * into the config (may be NULL).  With dir_out the caller gets the
 * directory; without, a failed open removes it at once and a handle that
 * opened is released with close_db. */
static int open_cfg(const char *const *plugins, const char *extra, ts_db **db, char **dir_out)
{
    char *dir = tst_tmpdir("badplug");
    json_t *cfg = json_pack("{s:s}", "path", dir);
    ck_assert_ptr_nonnull(cfg);
    if (plugins) {
        json_t *arr = json_array();
        for (size_t i = 0; plugins[i]; i++) json_array_append_new(arr, json_string(plugins[i]));
        json_object_set_new(cfg, "plugins", arr);
    }
    if (extra) {
        json_error_t jerr;
        json_t *x = json_loads(extra, 0, &jerr);
        ck_assert_msg(x != NULL, "bad test JSON %s: %s", extra, jerr.text);
        json_object_update(cfg, x);
        json_decref(x);
    }
    char *text = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    static char sentinel;
    *db = (ts_db *)(void *)&sentinel; /* a failed open must reset it to NULL */
    int rc = ts_open_json(text, db);
    free(text);
    if (dir_out) {
        *dir_out = dir;
    } else if (rc == TS_OK) {
        if (open_dir) { /* left by a failed test (CK_FORK=no) */
            tst_rmrf(open_dir);
            free(open_dir);
        }
        open_dir = dir;
    } else {
        tst_rmrf(dir);
        free(dir);
    }
    return rc;
}

static int open_one(const char *plugin, const char *extra, ts_db **db)
{
    const char *plugins[] = { plugin, NULL };
    return open_cfg(plugin ? plugins : NULL, extra, db, NULL);
}

static void close_db(ts_db *db)
{
    ck_assert_int_eq(ts_close(db), TS_OK);
    tst_rmrf(open_dir);
    free(open_dir);
    open_dir = NULL;
}

/* The path the kernel reports for an existing file: its realpath. */
static char *real(const char *path)
{
    char *r = realpath(path, NULL);
    ck_assert_msg(r != NULL, "%s does not exist: was it built?", path);
    return r;
}

static void assert_has(const char *msg, const char *needle)
{
    ck_assert_msg(strstr(msg, needle) != NULL, "message \"%s\" lacks \"%s\"", msg, needle);
}

/* Open with plugins = [so] and expect status `code` and a message that
 * starts with "plugins[0]: ", names the file and contains every needle
 * (NULL-terminated). */
static void expect_refused(const char *so, int code, ...)
{
    ts_db *db = NULL;
    int rc = open_one(so, NULL, &db);
    const char *msg = ts_errmsg(NULL);
    ck_assert_msg(rc == code, "%s: got %d (%s), expected %d (%s); message: %s", so, rc,
                  ts_strerror(rc), code, ts_strerror(code), msg);
    ck_assert_ptr_null(db);
    ck_assert_msg(strncmp(msg, "plugins[0]: ", 12) == 0, "message \"%s\" lacks the JSON path",
                  msg);
    char *file = real(so);
    assert_has(msg, file);
    free(file);
    va_list ap;
    va_start(ap, code);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        assert_has(msg, n);
    va_end(ap);
}

/* The entry of ts_modules for (kind, name), or NULL; borrowed from mods. */
static json_t *find_module(json_t *mods, const char *kind, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(mods, i, m) {
        if (strcmp(json_string_value(json_object_get(m, "kind")), kind) == 0 &&
            strcmp(json_string_value(json_object_get(m, "name")), name) == 0)
            return m;
    }
    return NULL;
}

static size_t count_named(json_t *mods, const char *name)
{
    size_t i, n = 0;
    json_t *m;
    json_array_foreach(mods, i, m)
        if (strcmp(json_string_value(json_object_get(m, "name")), name) == 0) n++;
    return n;
}

static int64_t control(ts_db *db, const char *op)
{
    int64_t v = -1;
    int rc = ts_storage_control(db, op, 0, &v);
    ck_assert_msg(rc == TS_OK, "control %s: %s: %s", op, ts_strerror(rc), ts_errmsg(db));
    return v;
}

static const char *const wrapfs_cfg = "{\"storage\": {\"backend\": \"bp_wrapfs\"}}";

/* ---- files that are not plugins --------------------------------------- */

START_TEST(missing_file)
{
    const char *so = BAD_SO("bp_does_not_exist");
    ts_db *db = NULL;
    int rc = open_one(so, NULL, &db);
    ck_assert_int_eq(rc, TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(db);
    const char *msg = ts_errmsg(NULL);
    ck_assert_msg(strncmp(msg, "plugins[0]: ", 12) == 0, "no JSON path in \"%s\"", msg);
    assert_has(msg, so);
    assert_has(msg, "file not found");
}
END_TEST

START_TEST(missing_name)
{
    ts_db *db = NULL;
    int rc = open_one("bp-no-such-plugin", NULL, &db);
    ck_assert_int_eq(rc, TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(db);
    const char *msg = ts_errmsg(NULL);
    ck_assert_msg(strncmp(msg, "plugins[0]: ", 12) == 0, "no JSON path in \"%s\"", msg);
    assert_has(msg, "bp-no-such-plugin.so");
    assert_has(msg, "file not found");
}
END_TEST

START_TEST(not_a_shared_object)
{
    char *dir = tst_tmpdir("notso");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/x.so", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("This is a text file that merely has a .so name; the loader must refuse it\n"
          "with a message instead of crashing.\n", f);
    fclose(f);
    expect_refused(path, TS_ERR_PLUGIN, "cannot load", NULL);
    tst_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(no_entry_symbol)
{
    expect_refused(BAD_SO("bp_no_entry"), TS_ERR_PLUGIN, "no entry symbol 'tostore_plugin'",
                   NULL);
}
END_TEST

START_TEST(entry_returns_null)
{
    expect_refused(BAD_SO("bp_null_desc"), TS_ERR_PLUGIN, "entry symbol returned NULL", NULL);
}
END_TEST

/* ---- the plugin descriptor -------------------------------------------- */

START_TEST(wrong_magic)
{
    expect_refused(BAD_SO("bp_bad_magic"), TS_ERR_PLUGIN, "wrong magic 0xdeadbeef",
                   "not a tostore plugin", NULL);
}
END_TEST

START_TEST(abi_major_mismatch)
{
    expect_refused(BAD_SO("bp_abi_major"), TS_ERR_PLUGIN, "ABI major version 2",
                   "this kernel has 1", NULL);
}
END_TEST

START_TEST(abi_minor_newer)
{
    char want[96];
    snprintf(want, sizeof want, "ABI %d.%d is newer than this kernel's %d.%d", TS_ABI_MAJOR,
             TS_ABI_MINOR + 1, TS_ABI_MAJOR, TS_ABI_MINOR);
    expect_refused(BAD_SO("bp_abi_minor"), TS_ERR_PLUGIN, want, NULL);
}
END_TEST

START_TEST(plugin_struct_too_small)
{
    expect_refused(BAD_SO("bp_small_struct"), TS_ERR_PLUGIN, "plugin struct_size 12 too small",
                   NULL);
}
END_TEST

START_TEST(no_modules)
{
    expect_refused(BAD_SO("bp_no_modules"), TS_ERR_PLUGIN, "plugin lists no modules", NULL);
}
END_TEST

/* ---- module descriptors ------------------------------------------------ */

START_TEST(vtable_too_small)
{
    expect_refused(BAD_SO("bp_small_vtab"), TS_ERR_PLUGIN, "module bp_small_vtab",
                   "storage vtable size 16, need at least", NULL);
}
END_TEST

START_TEST(duplicate_in_plugin)
{
    expect_refused(BAD_SO("bp_dup_name"), TS_ERR_PLUGIN,
                   "duplicate storage module name 'bp_twin' in the plugin", NULL);
}
END_TEST

/* A bundled plugin is loaded on first use: one that cannot be loaded fails
 * the call that needs it with its reason, every time, and ts_modules too.
 * A bad file named btree.so in a pluginPath folder stands in for it. */
START_TEST(broken_bundled_plugin)
{
    char *pdir = tst_tmpdir("badplug-path");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/btree.so' && cp '%s' '%s/hash.so'", BAD_SO("bp_bad_magic"),
             pdir, BAD_SO("bp_bad_magic"), pdir);
    ck_assert_int_eq(system(cmd), 0);
    char *extra = NULL;
    ck_assert_int_ge(asprintf(&extra, "{\"pluginPath\": [\"%s\"]}", pdir), 0);
    ts_db *db = NULL;
    /* btree is needed at open: the open fails and says why */
    int rc = open_cfg(NULL, extra, &db, NULL);
    ck_assert_int_eq(rc, TS_ERR_PLUGIN);
    ck_assert_ptr_null(db);
    ck_assert_msg(strstr(ts_errmsg(NULL), "btree.so") && strstr(ts_errmsg(NULL), "magic"),
                  "message: %s", ts_errmsg(NULL));
    /* hash is needed only by a table that uses it */
    snprintf(cmd, sizeof cmd, "rm '%s/btree.so'", pdir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(open_cfg(NULL, extra, &db, NULL), TS_OK);
    json_t *schema = json_loads("{\"name\": \"t\", \"fields\": [{\"name\": \"v\", \"type\": "
                                "\"integer\"}], \"indexes\": [{\"fields\": [\"v\"], \"type\": "
                                "\"hash\"}]}", 0, NULL);
    for (int i = 0; i < 2; i++) { /* the reason again on the second try */
        ck_assert_int_ne(ts_create_table(db, schema), TS_OK);
        ck_assert_msg(strstr(ts_errmsg(db), "hash.so"), "try %d: message: %s", i, ts_errmsg(db));
    }
    json_decref(schema);
    json_t *mods = NULL;
    ck_assert_int_eq(ts_modules(db, &mods), TS_ERR_PLUGIN);
    ck_assert_ptr_null(mods);
    ck_assert_msg(strstr(ts_errmsg(db), "hash.so"), "ts_modules message: %s", ts_errmsg(db));
    close_db(db);
    free(extra);
    tst_rmrf(pdir);
    free(pdir);
}
END_TEST

START_TEST(duplicate_of_bundled)
{
    expect_refused(BAD_SO("bp_dup_bundled"), TS_ERR_PLUGIN,
                   "duplicate storage module name 'posix' (bundled in ", "/posix.so)",
                   NULL);
}
END_TEST

START_TEST(storage_without_write)
{
    expect_refused(BAD_SO("bp_no_write"), TS_ERR_PLUGIN,
                   "module bp_no_write: required storage callback 'write' is missing", NULL);
}
END_TEST

START_TEST(cipher_without_open)
{
    expect_refused(BAD_SO("bp_no_cipher_open"), TS_ERR_PLUGIN,
                   "module bp_no_cipher_open: required cipher callback 'open' is missing", NULL);
}
END_TEST

START_TEST(cipher_bad_key_bytes)
{
    expect_refused(BAD_SO("bp_bad_keybytes"), TS_ERR_PLUGIN,
                   "module bp_bad_keybytes: key_bytes must be 1..64", NULL);
}
END_TEST

START_TEST(unknown_kind)
{
    expect_refused(BAD_SO("bp_unknown_kind"), TS_ERR_PLUGIN, "module 0: unknown kind 99", NULL);
}
END_TEST

START_TEST(unknown_flags)
{
    expect_refused(BAD_SO("bp_unknown_flags"), TS_ERR_PLUGIN,
                   "module bp_unknown_flags: unknown flags 0x80", NULL);
}
END_TEST

START_TEST(invalid_module_name)
{
    expect_refused(BAD_SO("bp_bad_name"), TS_ERR_PLUGIN, "module 0: invalid name", NULL);
}
END_TEST

START_TEST(init_fails)
{
    expect_refused(BAD_SO("bp_init_fails"), TS_ERR_PLUGIN,
                   "init failed: bp_init_fails: the licence file /etc/bp.lic is missing", NULL);
}
END_TEST

/* The JSON path follows the plugin's place in the list. */
START_TEST(json_path_names_the_entry)
{
    const char *plugins[] = { GOOD_SO, BAD_SO("bp_bad_magic"), NULL };
    ts_db *db = NULL;
    int rc = open_cfg(plugins, NULL, &db, NULL);
    ck_assert_int_eq(rc, TS_ERR_PLUGIN);
    ck_assert_ptr_null(db);
    const char *msg = ts_errmsg(NULL);
    ck_assert_msg(strncmp(msg, "plugins[1]: ", 12) == 0, "message \"%s\"", msg);
    assert_has(msg, "bp_bad_magic.so");
}
END_TEST

/* ---- registration is all or nothing ------------------------------------ */

START_TEST(all_or_nothing)
{
    /* The first module of bp_second_bad is fine, the second is not. */
    expect_refused(BAD_SO("bp_second_bad"), TS_ERR_PLUGIN,
                   "module bp_half_bad: required storage callback 'list' is missing", NULL);

    /* Selecting the good half does not help: the plugin is refused first. */
    ts_db *db = NULL;
    int rc = open_one(BAD_SO("bp_second_bad"), "{\"storage\": {\"backend\": \"bp_half_ok\"}}", &db);
    ck_assert_int_eq(rc, TS_ERR_PLUGIN);
    ck_assert_ptr_null(db);

    /* A failing init leaves nothing behind either; the plugin loaded before
     * it in the same config is unloaded with the failed handle. */
    const char *plugins[] = { GOOD_SO, BAD_SO("bp_init_fails"), NULL };
    rc = open_cfg(plugins, NULL, &db, NULL);
    ck_assert_int_eq(rc, TS_ERR_PLUGIN);
    ck_assert_ptr_null(db);

    /* A handle opened without them lists none of their names. */
    rc = open_one(NULL, NULL, &db);
    ck_assert_msg(rc == TS_OK, "default open: %s", ts_errmsg(NULL));
    json_t *mods = NULL;
    ck_assert_int_eq(ts_modules(db, &mods), TS_OK);
    ck_assert_uint_gt(json_array_size(mods), 0);
    ck_assert_uint_eq(count_named(mods, "bp_half_ok"), 0);
    ck_assert_uint_eq(count_named(mods, "bp_half_bad"), 0);
    ck_assert_uint_eq(count_named(mods, "bp_init_fails"), 0);
    ck_assert_uint_eq(count_named(mods, "bp_wrapfs"), 0);
    ck_assert_ptr_nonnull(find_module(mods, "storage", "posix"));
    json_decref(mods);
    close_db(db);
}
END_TEST

/* ---- insecure modules --------------------------------------------------- */

START_TEST(insecure_cipher_refused)
{
    ts_db *db = NULL;
    int rc = open_one(NULL, "{\"cipher\": {\"module\": \"xor\", \"key\": \"" KEY64 "\"}}", &db);
    ck_assert_int_eq(rc, TS_ERR_INSECURE);
    ck_assert_ptr_null(db);
    const char *msg = ts_errmsg(NULL);
    assert_has(msg, "cipher.module");
    assert_has(msg, "'xor' is insecure");
    assert_has(msg, "allowInsecure");

    rc = open_one(NULL,
                  "{\"cipher\": {\"module\": \"xor\", \"key\": \"" KEY64 "\","
                  " \"allowInsecure\": true}}", &db);
    ck_assert_msg(rc == TS_OK, "xor with allowInsecure: %s: %s", ts_strerror(rc),
                  ts_errmsg(NULL));
    ck_assert_ptr_nonnull(db);
    close_db(db);
}
END_TEST

/* The flag is honoured for a third-party cipher too. */
START_TEST(insecure_plugin_cipher_refused)
{
    ts_db *db = NULL;
    int rc = open_one(GOOD_SO,
                      "{\"cipher\": {\"module\": \"bp_nullcipher\","
                      " \"key\": \"hex:00112233445566778899aabbccddeeff\"}}", &db);
    ck_assert_int_eq(rc, TS_ERR_INSECURE);
    ck_assert_ptr_null(db);
    assert_has(ts_errmsg(NULL), "'bp_nullcipher' is insecure");
}
END_TEST

/* ---- the good plugin ----------------------------------------------------- */

static void assert_flags(json_t *m, const char *const *want)
{
    json_t *flags = json_object_get(m, "flags");
    size_t n = 0;
    while (want[n]) n++;
    ck_assert_uint_eq(json_array_size(flags), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(json_string_value(json_array_get(flags, i)), want[i]);
}

START_TEST(good_plugin_listed)
{
    ts_db *db = NULL;
    int rc = open_one(GOOD_SO, NULL, &db);
    ck_assert_msg(rc == TS_OK, "%s: %s", ts_strerror(rc), ts_errmsg(NULL));
    json_t *mods = NULL;
    ck_assert_int_eq(ts_modules(db, &mods), TS_OK);
    char *file = real(GOOD_SO);

    json_t *s = find_module(mods, "storage", "bp_wrapfs");
    ck_assert_msg(s != NULL, "bp_wrapfs not listed");
    ck_assert_str_eq(json_string_value(json_object_get(s, "version")), "2.3.4");
    ck_assert_str_eq(json_string_value(json_object_get(s, "plugin")), "bp_good");
    ck_assert_str_eq(json_string_value(json_object_get(s, "file")), file);
    assert_flags(s, (const char *const[]){ "thread-safe", NULL });

    json_t *c = find_module(mods, "cipher", "bp_nullcipher");
    ck_assert_msg(c != NULL, "bp_nullcipher not listed");
    ck_assert_str_eq(json_string_value(json_object_get(c, "version")), "0.1.0");
    ck_assert_str_eq(json_string_value(json_object_get(c, "plugin")), "bp_good");
    ck_assert_str_eq(json_string_value(json_object_get(c, "file")), file);
    assert_flags(c, (const char *const[]){ "thread-safe", "insecure", NULL });

    /* No other kind claims the names. */
    ck_assert_uint_eq(count_named(mods, "bp_wrapfs"), 1);
    ck_assert_uint_eq(count_named(mods, "bp_nullcipher"), 1);
    free(file);
    json_decref(mods);
    close_db(db);
}
END_TEST

/* Listing the same file twice loads it once. */
START_TEST(good_plugin_twice_in_config)
{
    const char *plugins[] = { GOOD_SO, GOOD_SO, NULL };
    ts_db *db = NULL;
    int rc = open_cfg(plugins, NULL, &db, NULL);
    ck_assert_msg(rc == TS_OK, "%s: %s", ts_strerror(rc), ts_errmsg(NULL));
    json_t *mods = NULL;
    ck_assert_int_eq(ts_modules(db, &mods), TS_OK);
    ck_assert_uint_eq(count_named(mods, "bp_wrapfs"), 1);
    json_decref(mods);
    close_db(db);
}
END_TEST

/* The plugin's storage module carries the database: init's state reaches
 * the instance, and the kernel's files go through it to posix. */
START_TEST(good_plugin_storage_works)
{
    const char *plugins[] = { GOOD_SO, NULL };
    ts_db *db = NULL;
    char *dir = NULL;
    int rc = open_cfg(plugins,
                      "{\"storage\": {\"backend\": \"bp_wrapfs\", \"options\": {\"inner\": \"posix\"}},"
                      " \"cipher\": {\"module\": \"chacha20poly1305\", \"key\": \"" KEY64 "\"}}",
                      &db, &dir);
    ck_assert_msg(rc == TS_OK, "%s: %s", ts_strerror(rc), ts_errmsg(NULL));
    ck_assert_int_eq(control(db, "ping"), 42);
    ck_assert_int_eq(control(db, "inited"), 1);
    ck_assert_int_eq(control(db, "opens"), 1);
    /* The keyring of the new encrypted database was written through it. */
    ck_assert_int_gt(control(db, "writes"), 0);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tostore.keyring", dir);
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0 && st.st_size > 0, "%s missing", path);
    /* Unknown ops fall through to posix, which has none. */
    int64_t v = 0;
    ck_assert_int_eq(ts_storage_control(db, "no-such-op", 0, &v), TS_ERR_UNSUPPORTED);
    ts_close(db);
    tst_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(good_plugin_bad_inner)
{
    ts_db *db = NULL;
    int rc = open_one(GOOD_SO,
                      "{\"storage\": {\"backend\": \"bp_wrapfs\", \"options\": {\"inner\": \"nope\"}}}",
                      &db);
    ck_assert_int_eq(rc, TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(db);
    /* The host's message from module_find reaches the application. */
    assert_has(ts_errmsg(NULL), "no storage module named 'nope' is loaded");
}
END_TEST

/* A plugin is unloaded only when the last handle using it closes: each
 * handle has its own registry (its own dlopen reference and init state). */
START_TEST(shared_by_two_handles)
{
    const char *plugins[] = { GOOD_SO, NULL };
    ts_db *a = NULL, *b = NULL;
    char *dir_a = NULL, *dir_b = NULL;
    int rc = open_cfg(plugins, wrapfs_cfg, &a, &dir_a);
    ck_assert_msg(rc == TS_OK, "a: %s", ts_errmsg(NULL));
    rc = open_cfg(plugins, wrapfs_cfg, &b, &dir_b);
    ck_assert_msg(rc == TS_OK, "b: %s", ts_errmsg(NULL));
    /* init ran once per handle: each state counted one open. */
    ck_assert_int_eq(control(a, "opens"), 1);
    ck_assert_int_eq(control(b, "opens"), 1);

    ts_close(a);
    /* b still runs the plugin's code and state after a's fini. */
    ck_assert_int_eq(control(b, "ping"), 42);
    ck_assert_int_eq(control(b, "inited"), 1);
    json_t *mods = NULL;
    ck_assert_int_eq(ts_modules(b, &mods), TS_OK);
    ck_assert_ptr_nonnull(find_module(mods, "storage", "bp_wrapfs"));
    json_decref(mods);

    /* Reopen a's directory (its lock was released) while b is open. */
    char cfg[PATH_MAX + 256];
    snprintf(cfg, sizeof cfg,
             "{\"path\": \"%s\", \"plugins\": [\"%s\"], \"storage\": {\"backend\": \"bp_wrapfs\"}}",
             dir_a, GOOD_SO);
    rc = ts_open_json(cfg, &a);
    ck_assert_msg(rc == TS_OK, "reopen a: %s", ts_errmsg(NULL));
    ck_assert_int_eq(control(a, "ping"), 42);
    ck_assert_int_eq(control(a, "opens"), 1);
    ts_close(b);
    ck_assert_int_eq(control(a, "inited"), 1);
    ts_close(a);

    tst_rmrf(dir_a);
    tst_rmrf(dir_b);
    free(dir_a);
    free(dir_b);
}
END_TEST

static Suite *bad_plugins_suite(void)
{
    Suite *s = suite_create("bad_plugins");

    TCase *files = tcase_create("files");
    tcase_add_test(files, missing_file);
    tcase_add_test(files, missing_name);
    tcase_add_test(files, not_a_shared_object);
    tcase_add_test(files, no_entry_symbol);
    tcase_add_test(files, entry_returns_null);
    suite_add_tcase(s, files);

    TCase *plugin = tcase_create("plugin descriptor");
    tcase_add_test(plugin, wrong_magic);
    tcase_add_test(plugin, abi_major_mismatch);
    tcase_add_test(plugin, abi_minor_newer);
    tcase_add_test(plugin, plugin_struct_too_small);
    tcase_add_test(plugin, no_modules);
    tcase_add_test(plugin, init_fails);
    tcase_add_test(plugin, json_path_names_the_entry);
    suite_add_tcase(s, plugin);

    TCase *module = tcase_create("module descriptors");
    tcase_add_test(module, vtable_too_small);
    tcase_add_test(module, duplicate_in_plugin);
    tcase_add_test(module, duplicate_of_bundled);
    tcase_add_test(module, broken_bundled_plugin);
    tcase_add_test(module, storage_without_write);
    tcase_add_test(module, cipher_without_open);
    tcase_add_test(module, cipher_bad_key_bytes);
    tcase_add_test(module, unknown_kind);
    tcase_add_test(module, unknown_flags);
    tcase_add_test(module, invalid_module_name);
    tcase_add_test(module, all_or_nothing);
    suite_add_tcase(s, module);

    TCase *policy = tcase_create("insecure");
    tcase_add_test(policy, insecure_cipher_refused);
    tcase_add_test(policy, insecure_plugin_cipher_refused);
    suite_add_tcase(s, policy);

    TCase *good = tcase_create("good plugin");
    tcase_add_test(good, good_plugin_listed);
    tcase_add_test(good, good_plugin_twice_in_config);
    tcase_add_test(good, good_plugin_storage_works);
    tcase_add_test(good, good_plugin_bad_inner);
    tcase_add_test(good, shared_by_two_handles);
    suite_add_tcase(s, good);
    return s;
}

int main(void)
{
    return tst_run(bad_plugins_suite());
}
