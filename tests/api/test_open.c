/*
 * ts_open / ts_open_json / ts_close and the handle-level calls, through the
 * public header only: configuration parsing and validation (every error
 * names its JSON path), the data directory, plugin loading, the store lock,
 * error reporting (per thread, per handle), and encryption at open (key
 * formats, the keyring, wrong and missing keys, damaged keyrings).
 *
 * Tests that assert behaviour the kernel does not have yet are marked
 * "KERNEL BUG" with the reason; their assertions state the correct
 * behaviour and fail until the kernel is fixed.
 */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "tsupport.h"

/* 32-byte keys: K1 is the bytes 0..31 (B64_K1 is the same key in base64). */
#define K1 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define K2 "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define B64_K1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEYRING "tostore.keyring"
#define KEYRING_HEAD 116 /* the wrapped key starts here (kernel/crypto/keys.c) */
#define ENV_KEY_VAR "TOSTORE_TEST_OPEN_KEY"

/* A handle value no open may leave behind: ts_open must set *out to NULL on
 * failure, so tests preset it to this. */
static max_align_t poison_obj;
#define POISON ((ts_db *)(void *)&poison_obj)

/* ---- helpers ----------------------------------------------------------- */

static char *xfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xfmt(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    return s;
}

static int msg_starts(const char *msg, const char *prefix)
{
    return strncmp(msg, prefix, strlen(prefix)) == 0;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void write_file(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
    write_file(path, text, strlen(text));
}

/* The whole file (malloc'd); *len its size. */
static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0) break;
        n += got;
    }
    ck_assert_int_eq(ferror(f), 0);
    fclose(f);
    *len = n;
    return buf;
}

static void flip_byte(const char *path, size_t off)
{
    size_t n = 0;
    unsigned char *b = read_all(path, &n);
    ck_assert_msg(off < n, "%s: offset %zu beyond size %zu", path, off, n);
    b[off] ^= 0x01;
    write_file(path, b, n);
    free(b);
}

static size_t file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (size_t)st.st_size;
}

/* chdir into dir; returns the old cwd for leave(). */
static char *enter(const char *dir)
{
    char *old = getcwd(NULL, 0);
    ck_assert_ptr_nonnull(old);
    ck_assert_int_eq(chdir(dir), 0);
    return old;
}

static void leave(char *old)
{
    ck_assert_int_eq(chdir(old), 0);
    free(old);
}

/* ts_open_json on the formatted text; checks the out contract. */
static int open_fmt(ts_db **db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int open_fmt(ts_db **db, const char *fmt, ...)
{
    va_list ap;
    char *text = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    *db = POISON;
    int rc = ts_open_json(text, db);
    if (rc == TS_OK)
        ck_assert_msg(*db != NULL && *db != POISON, "%s: TS_OK without a handle", text);
    else
        ck_assert_msg(*db == NULL, "%s: failed (%d) but *out is not NULL", text, rc);
    free(text);
    return rc;
}

#define OPEN_OK(db, ...)                                                                   \
    do {                                                                                   \
        int rc_ = open_fmt((db), __VA_ARGS__);                                             \
        ck_assert_msg(rc_ == TS_OK, "open failed: %d (%s): %s", rc_, ts_strerror(rc_),     \
                      ts_errmsg(NULL));                                                    \
    } while (0)

/* Expect an open of json to fail with code and a message starting with
 * prefix (NULL: any) and containing also (NULL: any). */
static void expect_fail_at(int line, int code, const char *prefix, const char *also,
                           const char *json)
{
    ts_db *db = POISON;
    int rc = ts_open_json(json, &db);
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", ts_errmsg(NULL));
    if (rc == TS_OK) ts_close(db);
    ck_assert_msg(rc == code, "line %d: %s: rc %d (%s), want %d (%s); message: %s", line, json,
                  rc, ts_strerror(rc), code, ts_strerror(code), msg);
    ck_assert_msg(db == NULL, "line %d: %s: *out not NULL after failure", line, json);
    ck_assert_msg(*msg, "line %d: %s: empty error message", line, json);
    if (prefix)
        ck_assert_msg(msg_starts(msg, prefix), "line %d: %s: message '%s' does not start with '%s'",
                      line, json, msg, prefix);
    if (also)
        ck_assert_msg(strstr(msg, also), "line %d: %s: message '%s' does not mention '%s'", line,
                      json, msg, also);
}
#define EXPECT_FAIL(code, prefix, also, json) expect_fail_at(__LINE__, code, prefix, also, json)

/* A fresh tmpdir and a database path inside it. */
typedef struct fixture {
    char *dir;
    char *db;  /* <dir>/db */
} fixture;

static fixture fx_new(const char *prefix)
{
    fixture f;
    f.dir = tst_tmpdir(prefix);
    f.db = xfmt("%s/db", f.dir);
    return f;
}

static void fx_free(fixture *f)
{
    tst_rmrf(f->dir);
    free(f->dir);
    free(f->db);
}

static char *keyring_of(const fixture *f) { return xfmt("%s/" KEYRING, f->db); }

static json_t *config_of(ts_db *db)
{
    json_t *c = NULL;
    ck_assert_int_eq(ts_config(db, &c), TS_OK);
    ck_assert_msg(json_is_object(c), "ts_config: not an object");
    return c;
}

/* ---- configuration sources -------------------------------------------- */

/* Runs ts_open after a chdir: started with a relative argv[0] (e.g.
 * "./test_open" by hand) it also trips the registry bug described at
 * test_plugins_found_whatever_argv0_and_cwd; ctest starts it by absolute
 * path. */
START_TEST(test_open_embedded_default)
{
    fixture f = fx_new("api-default");
    char *old = enter(f.dir);
    ts_db *db = POISON;
    int rc = ts_open(NULL, &db);
    ck_assert_msg(rc == TS_OK, "ts_open(NULL): %d: %s", rc, ts_errmsg(NULL));
    ck_assert_ptr_nonnull(db);
    ck_assert_msg(is_dir("tostore_data"), "./tostore_data was not created in the cwd");
    ck_assert_msg(is_file("tostore_data/LOCK"), "no lock file in ./tostore_data");

    /* The effective configuration is config/tostore.json, key for key. */
    char *src = xfmt("%s/../config/tostore.json", TS_TEST_SOURCE_DIR);
    json_error_t jerr;
    json_t *file = json_load_file(src, 0, &jerr);
    ck_assert_msg(file != NULL, "%s: %s", src, jerr.text);
    json_t *eff = config_of(db);
    const char *k;
    json_t *v;
    json_object_foreach(file, k, v) {
        json_t *e = json_object_get(eff, k);
        ck_assert_msg(e && json_equal(e, v), "default config key %s differs from %s", k, src);
    }
    ck_assert_str_eq(json_string_value(json_object_get(eff, "path")), "./tostore_data");
    json_decref(eff);
    json_decref(file);
    free(src);
    ck_assert_int_eq(ts_close(db), TS_OK);
    leave(old);
    fx_free(&f);
}
END_TEST

START_TEST(test_open_config_file)
{
    fixture f = fx_new("api-file");
    char *cfg = xfmt("%s/tostore.json", f.dir);
    char *text = xfmt("{\n  \"path\": \"%s\",\n  \"pageSize\": 8192,\n  \"nodeId\": 7\n}\n", f.db);
    write_text(cfg, text);
    ts_db *db = POISON;
    int rc = ts_open(cfg, &db);
    ck_assert_msg(rc == TS_OK, "ts_open(%s): %d: %s", cfg, rc, ts_errmsg(NULL));
    ck_assert_msg(is_dir(f.db), "%s was not created", f.db);
    json_t *eff = config_of(db);
    ck_assert_str_eq(json_string_value(json_object_get(eff, "path")), f.db);
    ck_assert_int_eq(json_integer_value(json_object_get(eff, "pageSize")), 8192);
    ck_assert_int_eq(json_integer_value(json_object_get(eff, "nodeId")), 7);
    json_decref(eff);
    ck_assert_int_eq(ts_close(db), TS_OK);
    free(text);
    free(cfg);
    fx_free(&f);
}
END_TEST

/* A relative path is relative to the current directory, not to the file. */
START_TEST(test_open_relative_path_is_cwd_relative)
{
    fixture f = fx_new("api-rel");
    char *cfgdir = xfmt("%s/cfg", f.dir), *cwd = xfmt("%s/cwd", f.dir);
    ck_assert_int_eq(mkdir(cfgdir, 0755), 0);
    ck_assert_int_eq(mkdir(cwd, 0755), 0);
    char *cfg = xfmt("%s/tostore.json", cfgdir);
    write_text(cfg, "{\"path\": \"rel/data\"}");
    char *old = enter(cwd);
    ts_db *db = NULL;
    int rc = ts_open(cfg, &db);
    ck_assert_msg(rc == TS_OK, "%d: %s", rc, ts_errmsg(NULL));
    ts_close(db);
    leave(old);
    char *want = xfmt("%s/rel/data", cwd), *wrong = xfmt("%s/rel", cfgdir);
    ck_assert_msg(is_dir(want), "%s not created", want);
    ck_assert_msg(!is_dir(wrong), "%s created beside the config file", wrong);
    free(want);
    free(wrong);
    free(cfg);
    free(cfgdir);
    free(cwd);
    fx_free(&f);
}
END_TEST

START_TEST(test_open_json_creates_nested_dirs)
{
    fixture f = fx_new("api-mkdir");
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    ck_assert(is_dir(f.db));
    ts_close(db);

    char *deep = xfmt("%s/a/b/c/d", f.dir);
    OPEN_OK(&db, "{\"path\": \"%s\"}", deep);
    ck_assert_msg(is_dir(deep), "nested %s not created", deep);
    ts_close(db);
    /* Reopening an existing directory works as well. */
    OPEN_OK(&db, "{\"path\": \"%s/\"}", deep);
    ts_close(db);
    free(deep);
    fx_free(&f);
}
END_TEST

START_TEST(test_open_path_is_a_file)
{
    fixture f = fx_new("api-pathfile");
    write_text(f.db, "not a directory");
    char *json = xfmt("{\"path\": \"%s\"}", f.db);
    EXPECT_FAIL(TS_ERR_IO, NULL, f.db, json);
    free(json);
    fx_free(&f);
}
END_TEST

START_TEST(test_open_missing_config_file)
{
    fixture f = fx_new("api-nofile");
    char *cfg = xfmt("%s/no-such-config.json", f.dir);
    ts_db *db = POISON;
    ck_assert_int_eq(ts_open(cfg, &db), TS_ERR_CONFIG);
    ck_assert_ptr_null(db);
    ck_assert_msg(strstr(ts_errmsg(NULL), cfg), "message '%s' lacks the file name",
                  ts_errmsg(NULL));
    /* A directory given as the config file is a read error naming it. */
    db = POISON;
    ck_assert_int_eq(ts_open(f.dir, &db), TS_ERR_CONFIG);
    ck_assert_ptr_null(db);
    ck_assert_msg(strstr(ts_errmsg(NULL), f.dir), "message '%s' lacks the name", ts_errmsg(NULL));
    free(cfg);
    fx_free(&f);
}
END_TEST

START_TEST(test_open_malformed_json)
{
    EXPECT_FAIL(TS_ERR_CONFIG, "config: line 1, column ", NULL, "{\"path\": }");
    EXPECT_FAIL(TS_ERR_CONFIG, "config: line 3, column ", NULL, "{\n  \"pageSize\": 4096,\n}");
    EXPECT_FAIL(TS_ERR_CONFIG, "config: line 1, column ", "duplicate", "{\"nodeId\": 1, \"nodeId\": 2}");
    EXPECT_FAIL(TS_ERR_CONFIG, "config: line 1", NULL, "");
    EXPECT_FAIL(TS_ERR_CONFIG, "config: line 1", NULL, "null");
    EXPECT_FAIL(TS_ERR_CONFIG, "config: ", "object", "[]");
    EXPECT_FAIL(TS_ERR_CONFIG, "config: ", "object", "[{\"path\": \"x\"}]");

    /* From a file: the message starts with the file name. */
    fixture f = fx_new("api-badjson");
    char *cfg = xfmt("%s/tostore.json", f.dir);
    write_text(cfg, "{\n  \"path\": \"x\"\n  \"pageSize\": 4096\n}\n");
    ts_db *db = POISON;
    ck_assert_int_eq(ts_open(cfg, &db), TS_ERR_CONFIG);
    ck_assert_ptr_null(db);
    char *want = xfmt("%s: line 3, column ", cfg);
    ck_assert_msg(msg_starts(ts_errmsg(NULL), want), "message '%s', want '%s...'",
                  ts_errmsg(NULL), want);
    free(want);
    free(cfg);
    fx_free(&f);
}
END_TEST

/* A validation error from a file: "<file>: <json path>: ...". */
START_TEST(test_open_file_validation_error)
{
    fixture f = fx_new("api-filebad");
    char *cfg = xfmt("%s/tostore.json", f.dir);
    char *text = xfmt("{\"path\": \"%s\", \"pageSize\": 1000}", f.db);
    write_text(cfg, text);
    ts_db *db = POISON;
    ck_assert_int_eq(ts_open(cfg, &db), TS_ERR_CONFIG);
    ck_assert_ptr_null(db);
    char *want = xfmt("%s: pageSize: ", cfg);
    ck_assert_msg(msg_starts(ts_errmsg(NULL), want), "message '%s', want '%s...'",
                  ts_errmsg(NULL), want);
    ck_assert_msg(!is_dir(f.db), "a refused config still created the data directory");
    free(want);
    free(text);
    free(cfg);
    fx_free(&f);
}
END_TEST

/* ---- validation: one case per loop iteration --------------------------- */

typedef struct bad_case {
    const char *json;
    const char *prefix; /* the message starts with it (the JSON path) */
    const char *also;   /* and contains this, or NULL */
} bad_case;

static const bad_case bad_cases[] = {
    /* wrong types, every top-level key and every nested one */
    { "{\"path\": 5}", "path: ", "string" },
    { "{\"path\": null}", "path: ", NULL },
    { "{\"path\": \"\"}", "path: ", "empty" },
    { "{\"pluginPath\": 5}", "pluginPath: ", NULL },
    { "{\"pluginPath\": [5]}", "pluginPath[0]: ", "string" },
    { "{\"pluginPath\": [\"/tmp\", true]}", "pluginPath[1]: ", NULL },
    { "{\"plugins\": \"posix\"}", "plugins: ", "array" },
    { "{\"plugins\": [\"posix\", 5]}", "plugins[1]: ", NULL },
    { "{\"plugins\": [\"\"]}", "plugins[0]: ", NULL },
    { "{\"loadBundled\": \"yes\"}", "loadBundled: ", "true or false" },
    { "{\"loadBundled\": 1}", "loadBundled: ", NULL },
    { "{\"storage\": \"posix\"}", "storage: ", "object" },
    { "{\"storage\": {\"backend\": 5}}", "storage.backend: ", "string" },
    { "{\"storage\": {\"options\": []}}", "storage.options: ", "object" },
    { "{\"cipher\": \"xor\"}", "cipher: ", "object" },
    { "{\"cipher\": {\"module\": 5}}", "cipher.module: ", "string" },
    { "{\"cipher\": {\"module\": \"xor\", \"key\": 5}}", "cipher.key: ", "string" },
    { "{\"cipher\": {\"module\": \"xor\", \"passphrase\": [\"p\"]}}", "cipher.passphrase: ", NULL },
    { "{\"cipher\": {\"allowInsecure\": \"yes\"}}", "cipher.allowInsecure: ", "true or false" },
    { "{\"cipher\": {\"options\": 5}}", "cipher.options: ", "object" },
    { "{\"pageSize\": \"4096\"}", "pageSize: ", "integer" },
    { "{\"pageSize\": 4096.0}", "pageSize: ", "integer" },
    { "{\"cacheBytes\": \"64M\"}", "cacheBytes: ", "integer" },
    { "{\"durability\": 1}", "durability: ", "string" },
    { "{\"busyTimeoutMs\": 1.5}", "busyTimeoutMs: ", "integer" },
    { "{\"defaultQueryLimit\": \"10\"}", "defaultQueryLimit: ", "integer" },
    { "{\"nodeId\": null}", "nodeId: ", "integer" },
    { "{\"applyActiveSpaceOnDefault\": \"true\"}", "applyActiveSpaceOnDefault: ", NULL },
    { "{\"migration\": true}", "migration: ", "object" },
    { "{\"migration\": {\"allowLossy\": \"yes\"}}", "migration.allowLossy: ", NULL },
    { "{\"migration\": {\"dropMissingTables\": 0}}", "migration.dropMissingTables: ", NULL },
    { "{\"schemas\": {}}", "schemas: ", "array" },
    { "{\"schemas\": [5]}", "schemas[0]: ", "object" },
    { "{\"schemas\": [{}, \"t\"]}", "schemas[1]: ", "object" },
    /* unknown keys, at the top and in each nested object */
    { "{\"foo\": 1}", "foo: ", "unknown key" },
    { "{\"Path\": \"x\"}", "Path: ", "unknown key" },
    { "{\"storage\": {\"engine\": \"posix\"}}", "storage.engine: ", "unknown key" },
    { "{\"cipher\": {\"algorithm\": \"xor\"}}", "cipher.algorithm: ", "unknown key" },
    { "{\"migration\": {\"allowlossy\": true}}", "migration.allowlossy: ", "unknown key" },
    /* out of range */
    { "{\"pageSize\": 1000}", "pageSize: ", "1000" },
    { "{\"pageSize\": 3000}", "pageSize: ", "3000" },
    { "{\"pageSize\": 12288}", "pageSize: ", "power of two" },
    { "{\"pageSize\": 131072}", "pageSize: ", "131072" },
    { "{\"pageSize\": 0}", "pageSize: ", NULL },
    { "{\"nodeId\": 1024}", "nodeId: ", "1024" },
    { "{\"nodeId\": -1}", "nodeId: ", NULL },
    { "{\"cacheBytes\": 1}", "cacheBytes: ", "out of range" },
    { "{\"cacheBytes\": 65535}", "cacheBytes: ", NULL },
    { "{\"busyTimeoutMs\": -1}", "busyTimeoutMs: ", "-1" },
    { "{\"busyTimeoutMs\": 2147483648}", "busyTimeoutMs: ", NULL },
    { "{\"maxLogBytes\": 1048575}", "maxLogBytes: ", "1048576" },
    { "{\"maxLogBytes\": -1}", "maxLogBytes: ", "-1" },
    { "{\"maxLogBytes\": \"1G\"}", "maxLogBytes: ", "integer" },
    { "{\"pageDigest\": 1}", "pageDigest: ", "true or false" },
    { "{\"defaultQueryLimit\": 0}", "defaultQueryLimit: ", NULL },
    { "{\"durability\": \"sometimes\"}", "durability: ", "sometimes" },
    { "{\"durability\": \"FULL\"}", "durability: ", NULL },
    /* inconsistent cipher settings */
    { "{\"cipher\": {\"module\": \"chacha20poly1305\"}}", "cipher: ", "key or a passphrase" },
    { "{\"cipher\": {\"key\": \"hex:" K1 "\"}}", "cipher: ", "module" },
    { "{\"cipher\": {\"passphrase\": \"secret\"}}", "cipher: ", "module" },
    { "{\"cipher\": {\"module\": \"chacha20poly1305\", \"key\": \"hex:" K1 "\", "
      "\"passphrase\": \"p\"}}", "cipher: ", "not both" },
    { "{\"cipher\": {\"module\": \"chacha20poly1305\", \"passphrase\": \"\"}}",
      "cipher.passphrase: ", "empty" },
};
#define N_BAD_CASES ((int)(sizeof bad_cases / sizeof bad_cases[0]))

/* Run in a tmp cwd: a case that wrongly succeeds opens ./tostore_data there. */
START_TEST(test_open_rejects_bad_config)
{
    const bad_case *c = &bad_cases[_i];
    fixture f = fx_new("api-bad");
    char *old = enter(f.dir);
    EXPECT_FAIL(TS_ERR_CONFIG, c->prefix, c->also, c->json);
    ck_assert_msg(!is_dir("tostore_data"), "%s: a refused config created ./tostore_data",
                  c->json);
    /* Secrets never appear in messages. */
    ck_assert_msg(!strstr(ts_errmsg(NULL), K1), "the message shows the key");
    leave(old);
    fx_free(&f);
}
END_TEST

/* Boundary values that are valid open, and ts_config reports them. */
START_TEST(test_open_accepts_boundaries)
{
    static const struct { const char *frag, *key; json_int_t want; } ok[] = {
        { "\"pageSize\": 4096", "pageSize", 4096 },
        { "\"pageSize\": 65536", "pageSize", 65536 },
        { "\"pageSize\": 16384", "pageSize", 16384 },
        { "\"nodeId\": 0", "nodeId", 0 },
        { "\"nodeId\": 1023", "nodeId", 1023 },
        { "\"cacheBytes\": 65536", "cacheBytes", 65536 },
        { "\"busyTimeoutMs\": 0", "busyTimeoutMs", 0 },
        { "\"busyTimeoutMs\": 2147483647", "busyTimeoutMs", 2147483647 },
        { "\"maxLogBytes\": 0", "maxLogBytes", 0 },
        { "\"maxLogBytes\": 1048576", "maxLogBytes", 1048576 },
        { "\"defaultQueryLimit\": 1", "defaultQueryLimit", 1 },
    };
    fixture f = fx_new("api-bounds");
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ts_db *db = NULL;
        OPEN_OK(&db, "{\"path\": \"%s\", %s}", f.db, ok[i].frag);
        json_t *c = config_of(db);
        ck_assert_msg(json_integer_value(json_object_get(c, ok[i].key)) == ok[i].want,
                      "%s: ts_config shows another value", ok[i].frag);
        json_decref(c);
        ts_close(db);
    }
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\", \"durability\": \"normal\", \"applyActiveSpaceOnDefault\": "
                 "false, \"migration\": {\"allowLossy\": true, \"dropMissingTables\": true}, "
                 "\"schemas\": [{\"name\": \"t\", \"fields\": []}]}", f.db);
    json_t *c = config_of(db);
    ck_assert_str_eq(json_string_value(json_object_get(c, "durability")), "normal");
    ck_assert(json_is_false(json_object_get(c, "applyActiveSpaceOnDefault")));
    ck_assert(json_is_true(json_object_get(json_object_get(c, "migration"), "allowLossy")));
    ck_assert_int_eq(json_array_size(json_object_get(c, "schemas")), 1);
    json_decref(c);
    ts_close(db);
    fx_free(&f);
}
END_TEST

/* ---- NULL arguments, codes, messages ------------------------------------ */

START_TEST(test_null_arguments)
{
    ts_db *db = POISON;
    ck_assert_int_eq(ts_open_json(NULL, &db), TS_ERR_INVALID);
    ck_assert_ptr_null(db);
    ck_assert_msg(*ts_errmsg(NULL), "no message for ts_open_json(NULL)");
    ck_assert_int_eq(ts_open_json("{}", NULL), TS_ERR_INVALID);
    ck_assert_msg(*ts_errmsg(NULL), "no message for a NULL out");
    ck_assert_int_eq(ts_open(NULL, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(ts_open("/nonexistent/tostore.json", NULL), TS_ERR_INVALID);
    ck_assert_int_eq(ts_close(NULL), TS_OK);

    json_t *j = NULL;
    ck_assert_int_eq(ts_modules(NULL, &j), TS_ERR_INVALID);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(ts_config(NULL, &j), TS_ERR_INVALID);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(ts_storage_control(NULL, "x", 0, NULL), TS_ERR_INVALID);

    fixture f = fx_new("api-null");
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    ck_assert_int_eq(ts_modules(db, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(ts_config(db, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(ts_storage_control(db, NULL, 0, NULL), TS_ERR_INVALID);
    ts_close(db);
    fx_free(&f);
}
END_TEST

static const int all_codes[] = {
    TS_OK, TS_PARTIAL, TS_ERR_UNKNOWN, TS_ERR_UNIQUE, TS_ERR_PRIMARY_KEY, TS_ERR_FOREIGN_KEY,
    TS_ERR_NOT_NULL, TS_ERR_VALIDATION, TS_ERR_NOT_FOUND, TS_ERR_TABLE_EXISTS,
    TS_ERR_FIELD_EXISTS, TS_ERR_INDEX_EXISTS, TS_ERR_RESOURCE, TS_ERR_IO, TS_ERR_DB,
    TS_ERR_TIMEOUT, TS_ERR_INVALID, TS_ERR_CORRUPT, TS_ERR_KEY, TS_ERR_PLUGIN, TS_ERR_CONFIG,
    TS_ERR_NOMEM, TS_ERR_AUTH, TS_ERR_LOCKED, TS_ERR_FORMAT, TS_ERR_INSECURE, TS_ERR_READONLY,
    TS_ERR_UNSUPPORTED, TS_ERR_RANGE,
};

START_TEST(test_strerror)
{
    const size_t n = sizeof all_codes / sizeof all_codes[0];
    const char *generic = ts_strerror(12345);
    ck_assert_ptr_nonnull(generic);
    ck_assert_msg(*generic, "empty text for an unknown code");
    static const int unknown[] = { -7, -50, -99, -113, 2, INT_MIN, INT_MAX };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        ck_assert_msg(ts_strerror(unknown[i]) && strcmp(ts_strerror(unknown[i]), generic) == 0,
                      "code %d is not in status.h but has its own text", unknown[i]);
    for (size_t i = 0; i < n; i++) {
        const char *t = ts_strerror(all_codes[i]);
        ck_assert_msg(t && *t, "code %d: empty text", all_codes[i]);
        ck_assert_msg(strcmp(t, generic) != 0, "code %d: generic text", all_codes[i]);
        ck_assert_msg(t == ts_strerror(all_codes[i]), "code %d: text not fixed", all_codes[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(t, ts_strerror(all_codes[j])) != 0,
                          "codes %d and %d share the text '%s'", all_codes[i], all_codes[j], t);
    }
    const char *v = ts_version();
    int a, b, c;
    ck_assert_msg(v && sscanf(v, "%d.%d.%d", &a, &b, &c) == 3, "ts_version '%s'", v ? v : "NULL");
}
END_TEST

typedef struct thread_result {
    char *before;  /* ts_errmsg(NULL) when the thread starts */
    int   rc;
    char *after;   /* after its own failed open */
    ts_db *db;     /* for the per-handle check */
    char *db_before, *db_after;
} thread_result;

static void *other_thread(void *arg)
{
    thread_result *r = arg;
    r->before = strdup(ts_errmsg(NULL));
    ts_db *db = NULL;
    r->rc = ts_open_json("{\"nodeId\": 4096}", &db);
    r->after = strdup(ts_errmsg(NULL));
    if (r->db) {
        r->db_before = strdup(ts_errmsg(r->db));
        ts_config(r->db, NULL); /* an error on the handle, in this thread */
        r->db_after = strdup(ts_errmsg(r->db));
    }
    return NULL;
}

START_TEST(test_errmsg_per_thread)
{
    ts_db *db = POISON;
    ck_assert_int_eq(ts_open_json("{\"pageSize\": 1000}", &db), TS_ERR_CONFIG);
    ck_assert(msg_starts(ts_errmsg(NULL), "pageSize: "));

    thread_result r = { 0 };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, &r), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_msg(strcmp(r.before, "") == 0, "thread B sees thread A's error '%s'", r.before);
    ck_assert_int_eq(r.rc, TS_ERR_CONFIG);
    ck_assert_msg(msg_starts(r.after, "nodeId: "), "thread B's message '%s'", r.after);
    ck_assert_msg(msg_starts(ts_errmsg(NULL), "pageSize: "),
                  "thread A's message became '%s' after thread B's error", ts_errmsg(NULL));
    free(r.before);
    free(r.after);
}
END_TEST

START_TEST(test_errmsg_handle)
{
    fixture f = fx_new("api-errmsg");
    ts_db *db = NULL;
    /* A failed open, then a successful one: the no-handle message is reset. */
    ck_assert_int_eq(ts_open_json("{\"nodeId\": -5}", &db), TS_ERR_CONFIG);
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    ck_assert_str_eq(ts_errmsg(NULL), "");
    ck_assert_str_eq(ts_errmsg(db), "");

    ck_assert_int_eq(ts_modules(db, NULL), TS_ERR_INVALID);
    ck_assert_msg(strstr(ts_errmsg(db), "ts_modules"), "handle message '%s'", ts_errmsg(db));
    ck_assert_msg(strcmp(ts_errmsg(NULL), "") == 0,
                  "an error on a handle leaked into ts_errmsg(NULL): '%s'", ts_errmsg(NULL));

    /* Per thread on the handle as well. */
    thread_result r = { .db = db };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, &r), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_msg(strcmp(r.db_before, "") == 0, "thread B sees A's handle error '%s'",
                  r.db_before);
    ck_assert_msg(strstr(r.db_after, "ts_config"), "thread B's handle message '%s'", r.db_after);
    ck_assert_msg(strstr(ts_errmsg(db), "ts_modules"), "A's handle message became '%s'",
                  ts_errmsg(db));
    free(r.before);
    free(r.after);
    free(r.db_before);
    free(r.db_after);
    ts_close(db);
    fx_free(&f);
}
END_TEST

/* ---- backends, lock, modules -------------------------------------------- */

START_TEST(test_lock_second_open)
{
    fixture f = fx_new("api-lock");
    ts_db *a = NULL, *b = POISON;
    OPEN_OK(&a, "{\"path\": \"%s\"}", f.db);
    int rc = open_fmt(&b, "{\"path\": \"%s\"}", f.db);
    ck_assert_msg(rc == TS_ERR_LOCKED, "second open: %d (%s): %s", rc, ts_strerror(rc),
                  ts_errmsg(NULL));
    ck_assert_msg(strstr(ts_errmsg(NULL), f.db), "message '%s' lacks the path", ts_errmsg(NULL));
    /* The first handle is unaffected; closing it releases the lock. */
    json_t *c = config_of(a);
    json_decref(c);
    ts_close(a);
    OPEN_OK(&b, "{\"path\": \"%s\"}", f.db);
    ts_close(b);
    fx_free(&f);
}
END_TEST

START_TEST(test_memory_backend)
{
    fixture f = fx_new("api-mem");
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\", \"storage\": {\"backend\": \"memory\"}}", f.db);
    json_t *c = config_of(db);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "storage"), "backend")),
                     "memory");
    json_decref(c);
    ts_close(db);
    char *json = xfmt("{\"path\": \"%s\", \"storage\": {\"backend\": \"nosuch\"}}", f.db);
    EXPECT_FAIL(TS_ERR_CONFIG, "storage.backend: ", "nosuch", json);
    free(json);
    fx_free(&f);
}
END_TEST

/* KERNEL BUG (kernel/io/store.c tsstore_open): a backend's refusal of its
 * options is prefixed "storage 'posix' at <dir>: ", without the JSON path
 * "storage.options" that every other config error starts with. */
START_TEST(test_storage_options_error_names_path)
{
    fixture f = fx_new("api-stopts");
    char *json = xfmt("{\"path\": \"%s\", \"storage\": {\"options\": {\"bogus\": 1}}}", f.db);
    EXPECT_FAIL(TS_ERR_CONFIG, NULL, "bogus", json);
    EXPECT_FAIL(TS_ERR_CONFIG, "storage.options", NULL, json);
    free(json);
    fx_free(&f);
}
END_TEST

static const struct { const char *kind, *name; int insecure; } bundled[] = {
    { "storage", "posix", 0 },           { "storage", "memory", 0 },
    { "storage", "faulty", 0 },          { "cipher", "chacha20poly1305", 0 },
    { "cipher", "aes256gcm", 0 },        { "cipher", "xor", 1 },
};

static json_t *find_module(json_t *mods, const char *kind, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(mods, i, m) {
        const char *k = json_string_value(json_object_get(m, "kind"));
        const char *n = json_string_value(json_object_get(m, "name"));
        if (k && n && strcmp(k, kind) == 0 && strcmp(n, name) == 0) return m;
    }
    return NULL;
}

static int has_flag(json_t *m, const char *flag)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(m, "flags"), i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), flag) == 0) return 1;
    return 0;
}

START_TEST(test_modules_lists_bundled)
{
    fixture f = fx_new("api-mods");
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    json_t *mods = NULL;
    ck_assert_int_eq(ts_modules(db, &mods), TS_OK);
    ck_assert(json_is_array(mods));
    size_t i;
    json_t *m;
    json_array_foreach(mods, i, m) {
        const char *kind = json_string_value(json_object_get(m, "kind"));
        ck_assert_msg(kind && (!strcmp(kind, "storage") || !strcmp(kind, "cipher") ||
                               !strcmp(kind, "index") || !strcmp(kind, "pkgen")),
                      "module %zu: kind '%s'", i, kind ? kind : "(none)");
        const char *file = json_string_value(json_object_get(m, "file"));
        ck_assert_msg(file && file[0] == '/' && is_file(file), "module %zu: file '%s'", i,
                      file ? file : "(none)");
        ck_assert(json_is_array(json_object_get(m, "flags")));
        const char *plugin = json_string_value(json_object_get(m, "plugin"));
        ck_assert_msg(plugin && *plugin, "module %zu: no plugin name", i);
    }
    for (size_t b = 0; b < sizeof bundled / sizeof bundled[0]; b++) {
        m = find_module(mods, bundled[b].kind, bundled[b].name);
        ck_assert_msg(m, "bundled %s module '%s' not listed", bundled[b].kind, bundled[b].name);
        const char *ver = json_string_value(json_object_get(m, "version"));
        ck_assert_msg(ver && *ver, "%s: no version", bundled[b].name);
        ck_assert_msg(has_flag(m, "insecure") == bundled[b].insecure, "%s: insecure flag %s",
                      bundled[b].name, bundled[b].insecure ? "missing" : "set");
        /* Each bundled plugin is <name>.so in one folder. */
        const char *file = json_string_value(json_object_get(m, "file"));
        char *suffix = xfmt("/%s.so", bundled[b].name);
        ck_assert_msg(strlen(file) > strlen(suffix) &&
                      strcmp(file + strlen(file) - strlen(suffix), suffix) == 0,
                      "%s: file %s", bundled[b].name, file);
        free(suffix);
    }
    json_decref(mods);
    ts_close(db);
    fx_free(&f);
}
END_TEST

START_TEST(test_no_bundled_plugins)
{
    fixture f = fx_new("api-nobundled");
    char *json = xfmt("{\"path\": \"%s\", \"loadBundled\": false}", f.db);
    EXPECT_FAIL(TS_ERR_CONFIG, "storage.backend: ", "'posix'", json);
    ck_assert_msg(strstr(ts_errmsg(NULL), "loaded"), "message '%s' does not say 'not loaded'",
                  ts_errmsg(NULL));
    free(json);

    /* Naming the plugin brings it back; nothing else is loaded. */
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\", \"loadBundled\": false, \"plugins\": [\"posix\"]}", f.db);
    json_t *mods = NULL;
    ck_assert_int_eq(ts_modules(db, &mods), TS_OK);
    ck_assert_ptr_nonnull(find_module(mods, "storage", "posix"));
    ck_assert_ptr_null(find_module(mods, "cipher", "xor"));
    json_decref(mods);
    ts_close(db);
    json = xfmt("{\"path\": \"%s\", \"loadBundled\": false, \"plugins\": [\"posix\"], "
                "\"cipher\": {\"module\": \"chacha20poly1305\", \"key\": \"hex:" K1 "\"}}", f.db);
    EXPECT_FAIL(TS_ERR_CONFIG, "cipher.module: ", "chacha20poly1305", json);
    free(json);
    /* A plugin named twice (bundled and listed) is loaded once. */
    OPEN_OK(&db, "{\"path\": \"%s\", \"plugins\": [\"posix\", \"xor\"]}", f.db);
    ts_close(db);
    fx_free(&f);
}
END_TEST

/* 1 if a shared object whose path ends in "/<name>.so" is mapped. */
static int so_mapped(const char *name)
{
    char *suffix = xfmt("/%s.so\n", name);
    FILE *maps = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(maps);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, maps)) {
        size_t n = strlen(line), m = strlen(suffix);
        found = n >= m && strcmp(line + n - m, suffix) == 0;
    }
    fclose(maps);
    free(suffix);
    return found;
}

/* In a fresh child: an open maps only the bundled plugins it uses; the
 * others load on first use; ts_modules loads the rest. */
static int lazy_child(const char *path)
{
    if (so_mapped("ngh") || so_mapped("aes256gcm")) return 10; /* not a fresh process */
    ts_db *db = NULL;
    char *json = xfmt("{\"path\": \"%s\"}", path);
    if (ts_open_json(json, &db)) return 11;
    free(json);
    if (!so_mapped("posix") || !so_mapped("btree")) return 12;
    if (so_mapped("ngh") || so_mapped("aes256gcm") || so_mapped("hash") || so_mapped("shortcode"))
        return 13;
    json_t *schema = json_loads("{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": "
                                "\"shortCode\"}, \"fields\": [{\"name\": \"v\", \"type\": "
                                "\"integer\"}], \"indexes\": [{\"fields\": [\"v\"], "
                                "\"type\": \"hash\"}]}", 0, NULL);
    int rc = schema ? ts_create_table(db, schema) : -1;
    json_decref(schema);
    if (rc) return 14;
    if (!so_mapped("shortcode") || !so_mapped("hash") || so_mapped("ngh")) return 15;
    json_t *mods = NULL;
    if (ts_modules(db, &mods) || !so_mapped("ngh") || !so_mapped("aes256gcm")) return 16;
    json_decref(mods);
    ts_close(db);
    /* Only aes256gcm among the ciphers: the kernel initialises libsodium
     * itself (it used to rely on chacha20poly1305's init). */
    json = xfmt("{\"path\": \"%s-aes\", \"loadBundled\": false, \"plugins\": [\"posix\", "
                "\"btree\", \"aes256gcm\"], \"cipher\": {\"module\": \"aes256gcm\", "
                "\"key\": \"hex:" K1 "\"}}", path);
    if (ts_open_json(json, &db)) return 17;
    free(json);
    ts_close(db);
    return 0;
}

START_TEST(test_bundled_plugins_load_on_first_use)
{
    fixture f = fx_new("api-lazy");
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) _exit(lazy_child(f.db));
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st), "child died");
    ck_assert_msg(WEXITSTATUS(st) == 0, "child step %d failed", WEXITSTATUS(st));
    fx_free(&f);
}
END_TEST

/* pluginPath folders are searched before the default ones. */
START_TEST(test_plugin_path_first)
{
    fixture f = fx_new("api-ppath");
    char *empty = xfmt("%s/empty", f.dir), *mine = xfmt("%s/mine", f.dir);
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    ck_assert_int_eq(mkdir(mine, 0755), 0);
    char *src = xfmt("%s/posix.so", TS_TEST_PLUGIN_DIR), *dst = xfmt("%s/posix.so", mine);
    size_t n = 0;
    unsigned char *so = read_all(src, &n);
    write_file(dst, so, n);
    free(so);
    char *real = realpath(dst, NULL);
    ck_assert_ptr_nonnull(real);

    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\", \"loadBundled\": false, \"pluginPath\": [\"%s\", \"%s\"], "
                 "\"plugins\": [\"posix\"]}", f.db, empty, mine);
    json_t *mods = NULL;
    ck_assert_int_eq(ts_modules(db, &mods), TS_OK);
    json_t *m = find_module(mods, "storage", "posix");
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(json_string_value(json_object_get(m, "file")), real);
    json_decref(mods);
    ts_close(db);

    /* The string form of pluginPath, and a plugin given by file path. */
    OPEN_OK(&db, "{\"path\": \"%s\", \"loadBundled\": false, \"pluginPath\": \"%s\", "
                 "\"plugins\": [\"posix\", \"%s/memory.so\"]}", f.db, mine, TS_TEST_PLUGIN_DIR);
    ck_assert_int_eq(ts_modules(db, &mods), TS_OK);
    ck_assert_str_eq(json_string_value(json_object_get(find_module(mods, "storage", "posix"),
                                                       "file")), real);
    ck_assert_ptr_nonnull(find_module(mods, "storage", "memory"));
    json_decref(mods);
    ts_close(db);
    free(real);
    free(src);
    free(dst);
    free(empty);
    free(mine);
    fx_free(&f);
}
END_TEST

START_TEST(test_missing_plugin)
{
    fixture f = fx_new("api-noplugin");
    char *json = xfmt("{\"path\": \"%s\", \"plugins\": [\"posix\", \"nosuchplugin\"]}", f.db);
    /* registry.h: a missing file is TS_ERR_NOT_FOUND, naming it. */
    EXPECT_FAIL(TS_ERR_NOT_FOUND, "plugins[1]: ", "nosuchplugin", json);
    free(json);
    json = xfmt("{\"path\": \"%s\", \"plugins\": [\"%s/none/x.so\"]}", f.db, f.dir);
    EXPECT_FAIL(TS_ERR_NOT_FOUND, "plugins[0]: ", "/none/x.so", json);
    free(json);
    /* A file that is not a shared object. */
    char *junk = xfmt("%s/junk.so", f.dir);
    write_text(junk, "not an ELF file");
    json = xfmt("{\"path\": \"%s\", \"plugins\": [\"%s\"]}", f.db, junk);
    EXPECT_FAIL(TS_ERR_PLUGIN, "plugins[0]: ", "junk.so", json);
    free(json);
    free(junk);
    fx_free(&f);
}
END_TEST

START_TEST(test_config_defaults_and_secrets)
{
    fixture f = fx_new("api-cfg");
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    json_t *c = config_of(db);
    ck_assert_str_eq(json_string_value(json_object_get(c, "path")), f.db);
    ck_assert(json_is_true(json_object_get(c, "loadBundled")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "storage"), "backend")),
                     "posix");
    ck_assert_int_eq(json_integer_value(json_object_get(c, "pageSize")), 4096);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "cacheBytes")), 67108864);
    ck_assert_str_eq(json_string_value(json_object_get(c, "durability")), "full");
    ck_assert_int_eq(json_integer_value(json_object_get(c, "busyTimeoutMs")), 5000);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "maxLogBytes")), 1073741824);
    ck_assert(json_is_false(json_object_get(c, "pageDigest")));
    ck_assert_int_eq(json_integer_value(json_object_get(c, "defaultQueryLimit")), 1000);
    ck_assert(json_is_integer(json_object_get(c, "nodeId")));
    ck_assert_int_eq(json_integer_value(json_object_get(c, "nodeId")), 0);
    ck_assert(json_is_true(json_object_get(c, "applyActiveSpaceOnDefault")));
    ck_assert_ptr_null(json_object_get(c, "cipher"));
    /* A copy: changing it changes nothing in the handle. */
    json_object_set_new(c, "pageSize", json_integer(1));
    json_decref(c);
    c = config_of(db);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "pageSize")), 4096);
    json_decref(c);
    ts_close(db);

    /* Secrets are hidden, the rest of the cipher object is kept. */
    char *db2 = xfmt("%s/enc", f.dir);
    OPEN_OK(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                 "\"key\": \"hex:" K1 "\"}}", db2);
    c = config_of(db);
    json_t *ci = json_object_get(c, "cipher");
    ck_assert_str_eq(json_string_value(json_object_get(ci, "module")), "chacha20poly1305");
    const char *shown = json_string_value(json_object_get(ci, "key"));
    ck_assert_msg(shown && !strstr(shown, K1), "ts_config shows the key");
    char *dump = json_dumps(c, 0);
    ck_assert_msg(!strstr(dump, K1), "the key appears in ts_config: %s", dump);
    free(dump);
    json_decref(c);
    ts_close(db);
    free(db2);
    fx_free(&f);
}
END_TEST

/* KERNEL BUG (kernel/config/config.c tscfg_effective): "migration" is not
 * filled in, so its defaults (allowLossy false, dropMissingTables false)
 * are missing from the effective configuration. */
START_TEST(test_config_fills_migration_defaults)
{
    fixture f = fx_new("api-cfgmig");
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    json_t *c = config_of(db);
    json_t *mig = json_object_get(c, "migration");
    ck_assert_msg(json_is_object(mig), "ts_config has no migration object");
    ck_assert(json_is_false(json_object_get(mig, "allowLossy")));
    ck_assert(json_is_false(json_object_get(mig, "dropMissingTables")));
    json_decref(c);
    ts_close(db);
    fx_free(&f);
}
END_TEST

/* ---- encryption at open ------------------------------------------------- */

static void open_cipher_ok(const char *path, const char *module, const char *key)
{
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"%s\", \"key\": \"%s\"}}", path,
            module, key);
    ts_close(db);
}

static int open_cipher(const char *path, const char *module, const char *key)
{
    ts_db *db = NULL;
    int rc = open_fmt(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"%s\", \"key\": \"%s\"}}",
                      path, module, key);
    ts_close(db);
    return rc;
}

START_TEST(test_cipher_raw_key)
{
    fixture f = fx_new("api-cc");
    char *kr = keyring_of(&f);
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    ck_assert_msg(is_file(kr), "no %s after an encrypted open", kr);
    size_t n = 0;
    unsigned char *bytes = read_all(kr, &n);
    ck_assert_uint_gt(n, KEYRING_HEAD);
    static const unsigned char k1[32] = { 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                          11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                          22, 23, 24, 25, 26, 27, 28, 29, 30, 31 };
    ck_assert_msg(!memmem(bytes, n, k1, sizeof k1), "the user's key is stored in the keyring");
    ck_assert_msg(!memmem(bytes, n, K1, 64), "the user's key is stored in the keyring");

    /* Same key again (hex and base64 spellings): opens, keyring unchanged. */
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    open_cipher_ok(f.db, "chacha20poly1305", "base64:" B64_K1);
    size_t n2 = 0;
    unsigned char *again = read_all(kr, &n2);
    ck_assert_msg(n == n2 && memcmp(bytes, again, n) == 0, "reopening rewrote the keyring");
    free(again);

    /* A different key. */
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "hex:" K2), TS_ERR_KEY);
    ck_assert_msg(strstr(ts_errmsg(NULL), "wrong key"), "message '%s'", ts_errmsg(NULL));
    ck_assert_msg(!strstr(ts_errmsg(NULL), K2), "the message shows the key");

    /* No cipher configured. */
    char *json = xfmt("{\"path\": \"%s\"}", f.db);
    EXPECT_FAIL(TS_ERR_KEY, NULL, "encrypted", json);
    ck_assert_msg(strstr(ts_errmsg(NULL), "cipher.module"), "message '%s'", ts_errmsg(NULL));
    free(json);

    /* Another cipher module, even with the right key. */
    ck_assert_int_eq(open_cipher(f.db, "aes256gcm", "hex:" K1), TS_ERR_KEY);
    ck_assert_msg(strstr(ts_errmsg(NULL), "chacha20poly1305"), "message '%s' lacks the module",
                  ts_errmsg(NULL));

    /* A passphrase where a raw key was used (no Argon2 run: refused first). */
    json = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                "\"passphrase\": \"secret\"}}", f.db);
    EXPECT_FAIL(TS_ERR_KEY, NULL, "cipher.key", json);
    free(json);

    /* After all those refusals the right key still works (no lock kept,
     * no keyring rewritten). */
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    again = read_all(kr, &n2);
    ck_assert_msg(n == n2 && memcmp(bytes, again, n) == 0, "a refused open rewrote the keyring");
    free(again);
    free(bytes);
    free(kr);
    fx_free(&f);
}
END_TEST

START_TEST(test_cipher_key_formats)
{
    fixture f = fx_new("api-keyfmt");
    char *kr = keyring_of(&f);
    /* Malformed keys are config errors naming cipher.key; no keyring is made. */
    static const char *const bad[] = {
        "hex:0011",                               /* too short */
        "hex:" K1 "00",                           /* too long */
        "hex:" K1 "0",                            /* odd digits */
        "hex:zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "base64:AAEC",                            /* too short */
        "base64:!!!!",
        K1,                                       /* no prefix */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = open_cipher(f.db, "chacha20poly1305", bad[i]);
        ck_assert_msg(rc == TS_ERR_CONFIG, "key '%s': %d: %s", bad[i], rc, ts_errmsg(NULL));
        ck_assert_msg(msg_starts(ts_errmsg(NULL), "cipher.key: "), "key '%s': message '%s'",
                      bad[i], ts_errmsg(NULL));
        ck_assert_msg(!is_file(kr), "key '%s': a keyring was written", bad[i]);
    }
    /* base64 creates; the same bytes in hex open it. */
    open_cipher_ok(f.db, "chacha20poly1305", "base64:" B64_K1);
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    /* A malformed key on an existing database is still a config error. */
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "hex:0011"), TS_ERR_CONFIG);
    free(kr);
    fx_free(&f);
}
END_TEST

START_TEST(test_cipher_env_key)
{
    fixture f = fx_new("api-envkey");
    unsetenv(ENV_KEY_VAR);
    /* Unset at creation. */
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "env:" ENV_KEY_VAR), TS_ERR_KEY);
    ck_assert_msg(strstr(ts_errmsg(NULL), ENV_KEY_VAR), "message '%s'", ts_errmsg(NULL));

    ck_assert_int_eq(setenv(ENV_KEY_VAR, "hex:" K1, 1), 0);
    open_cipher_ok(f.db, "chacha20poly1305", "env:" ENV_KEY_VAR);
    ck_assert_int_eq(setenv(ENV_KEY_VAR, K1, 1), 0); /* bare hex */
    open_cipher_ok(f.db, "chacha20poly1305", "env:" ENV_KEY_VAR);
    ck_assert_int_eq(setenv(ENV_KEY_VAR, "base64:" B64_K1, 1), 0);
    open_cipher_ok(f.db, "chacha20poly1305", "env:" ENV_KEY_VAR);
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    ck_assert_int_eq(setenv(ENV_KEY_VAR, "hex:" K2, 1), 0);
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "env:" ENV_KEY_VAR), TS_ERR_KEY);
    ck_assert_int_eq(setenv(ENV_KEY_VAR, "hex:0011", 1), 0);
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "env:" ENV_KEY_VAR), TS_ERR_CONFIG);
    ck_assert_msg(strstr(ts_errmsg(NULL), ENV_KEY_VAR), "message '%s'", ts_errmsg(NULL));
    unsetenv(ENV_KEY_VAR);
    fx_free(&f);
}
END_TEST

/* KERNEL BUG (kernel/crypto/keys.c read_keyring): on an existing database,
 * "environment variable X is not set" from tskey_decode is overwritten by
 * "wrong key: the key does not open this database". */
START_TEST(test_cipher_env_key_unset_on_existing)
{
    fixture f = fx_new("api-envkey2");
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    unsetenv(ENV_KEY_VAR);
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "env:" ENV_KEY_VAR), TS_ERR_KEY);
    ck_assert_msg(strstr(ts_errmsg(NULL), ENV_KEY_VAR),
                  "message '%s' does not name the unset variable", ts_errmsg(NULL));
    fx_free(&f);
}
END_TEST

/* Argon2id runs: 3 (create, right, wrong); each 0.1-1 s. */
START_TEST(test_cipher_passphrase)
{
    fixture f = fx_new("api-pass");
    char *kr = keyring_of(&f);
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                 "\"passphrase\": \"correct horse\"}}", f.db);
    ck_assert(is_file(kr));
    json_t *c = config_of(db);
    char *dump = json_dumps(c, 0);
    ck_assert_msg(!strstr(dump, "correct horse"), "ts_config shows the passphrase: %s", dump);
    free(dump);
    json_decref(c);
    ts_close(db);

    OPEN_OK(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                 "\"passphrase\": \"correct horse\"}}", f.db);
    ts_close(db);

    char *json = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                      "\"passphrase\": \"wrong horse\"}}", f.db);
    EXPECT_FAIL(TS_ERR_KEY, NULL, "wrong key", json);
    ck_assert_msg(!strstr(ts_errmsg(NULL), "horse"), "the message shows the passphrase");
    free(json);

    /* A raw key on a passphrase database: refused before any Argon2 run. */
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "hex:" K1), TS_ERR_KEY);
    ck_assert_msg(strstr(ts_errmsg(NULL), "passphrase"), "message '%s' does not name the "
                  "passphrase", ts_errmsg(NULL));
    free(kr);
    fx_free(&f);
}
END_TEST

/* KERNEL BUG (kernel/crypto/keys.c read_keyring): the Argon2id limits are
 * read from the keyring unchecked.  A damaged memlimit gives TS_ERR_NOMEM
 * "Argon2id: out of memory" instead of TS_ERR_CORRUPT, and a damaged
 * opslimit (not tested: it would hang) makes the open run for hours.
 * One more Argon2id run (creation). */
START_TEST(test_cipher_passphrase_damaged_limits)
{
    fixture f = fx_new("api-passlim");
    char *kr = keyring_of(&f);
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                 "\"passphrase\": \"pw\"}}", f.db);
    ts_close(db);
    flip_byte(kr, 31); /* top byte of the memlimit (offset 24, 8 bytes LE) */
    char *json = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                      "\"passphrase\": \"pw\"}}", f.db);
    EXPECT_FAIL(TS_ERR_CORRUPT, NULL, KEYRING, json);
    free(json);
    free(kr);
    fx_free(&f);
}
END_TEST

START_TEST(test_cipher_key_plus_passphrase)
{
    fixture f = fx_new("api-both");
    char *json = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                      "\"key\": \"hex:" K1 "\", \"passphrase\": \"pw\"}}", f.db);
    EXPECT_FAIL(TS_ERR_CONFIG, "cipher: ", "passphrase", json);
    free(json);
    char *kr = keyring_of(&f);
    ck_assert(!is_file(kr));
    free(kr);
    fx_free(&f);
}
END_TEST

START_TEST(test_cipher_aes256gcm)
{
    fixture f = fx_new("api-aes");
    char *kr = keyring_of(&f);
    open_cipher_ok(f.db, "aes256gcm", "hex:" K1);
    ck_assert(is_file(kr));
    open_cipher_ok(f.db, "aes256gcm", "base64:" B64_K1);
    ck_assert_int_eq(open_cipher(f.db, "aes256gcm", "hex:" K2), TS_ERR_KEY);
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "hex:" K1), TS_ERR_KEY);
    ck_assert_msg(strstr(ts_errmsg(NULL), "aes256gcm"), "message '%s'", ts_errmsg(NULL));
    char *json = xfmt("{\"path\": \"%s\"}", f.db);
    EXPECT_FAIL(TS_ERR_KEY, NULL, "encrypted", json);
    free(json);
    open_cipher_ok(f.db, "aes256gcm", "hex:" K1);
    free(kr);
    fx_free(&f);
}
END_TEST

START_TEST(test_cipher_insecure_xor)
{
    fixture f = fx_new("api-xor");
    char *kr = keyring_of(&f);
    char *json = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"xor\", \"key\": \"hex:" K1
                      "\"}}", f.db);
    EXPECT_FAIL(TS_ERR_INSECURE, NULL, "allowInsecure", json);
    ck_assert_msg(!is_file(kr), "a refused insecure module wrote a keyring");
    char *json_false = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"xor\", \"key\": \"hex:"
                            K1 "\", \"allowInsecure\": false}}", f.db);
    EXPECT_FAIL(TS_ERR_INSECURE, NULL, "xor", json_false);

    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"xor\", \"key\": \"hex:" K1 "\", "
                 "\"allowInsecure\": true}}", f.db);
    ts_close(db);
    ck_assert(is_file(kr));
    /* xor cannot tell a wrong key itself; the keyring's key check does. */
    int rc = open_fmt(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"xor\", \"key\": \"hex:"
                      K2 "\", \"allowInsecure\": true}}", f.db);
    ck_assert_msg(rc == TS_ERR_KEY, "xor with a wrong key: %d: %s", rc, ts_errmsg(NULL));
    /* Existing database: still refused without allowInsecure. */
    EXPECT_FAIL(TS_ERR_INSECURE, NULL, NULL, json);
    OPEN_OK(&db, "{\"path\": \"%s\", \"cipher\": {\"module\": \"xor\", \"key\": \"hex:" K1 "\", "
                 "\"allowInsecure\": true}}", f.db);
    ts_close(db);
    free(json_false);
    free(json);
    free(kr);
    fx_free(&f);
}
END_TEST

/* A database created without a cipher is not silently given a keyring
 * when a cipher is configured later (that would be a rekey). */
START_TEST(test_cipher_on_plain_database)
{
    fixture f = fx_new("api-plain");
    char *kr = keyring_of(&f);
    ts_db *db = NULL;
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    ts_close(db);
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "hex:" K1), TS_ERR_KEY);
    ck_assert_msg(strstr(ts_errmsg(NULL), "not encrypted"), "message '%s'", ts_errmsg(NULL));
    ck_assert_msg(!is_file(kr), "a keyring was added to a plain database");
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    ts_close(db);
    free(kr);
    fx_free(&f);
}
END_TEST

START_TEST(test_cipher_unknown_module)
{
    fixture f = fx_new("api-rot13");
    char *json = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"rot13\", \"key\": \"hex:" K1
                      "\"}}", f.db);
    EXPECT_FAIL(TS_ERR_CONFIG, "cipher.module: ", "rot13", json);
    free(json);
    fx_free(&f);
}
END_TEST

/* A damaged byte in the wrapped key or the key check cannot be told from a
 * wrong key (both fail authentication): the code gives TS_ERR_KEY.  The
 * keyring is left as it is, and restoring the byte makes it open again. */
START_TEST(test_keyring_damaged_wrapped_key)
{
    fixture f = fx_new("api-krflip");
    char *kr = keyring_of(&f);
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    size_t size = file_size(kr);
    const size_t offs[] = { KEYRING_HEAD, KEYRING_HEAD + 17, size - 33, size - 1 };
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        flip_byte(kr, offs[i]);
        size_t n0 = 0;
        unsigned char *damaged = read_all(kr, &n0);
        int rc = open_cipher(f.db, "chacha20poly1305", "hex:" K1);
        ck_assert_msg(rc == TS_ERR_KEY, "flip at %zu: %d (%s): %s", offs[i], rc, ts_strerror(rc),
                      ts_errmsg(NULL));
        ck_assert_msg(strstr(ts_errmsg(NULL), "wrong key"), "flip at %zu: message '%s'", offs[i],
                      ts_errmsg(NULL));
        size_t n1 = 0;
        unsigned char *after = read_all(kr, &n1);
        ck_assert_msg(n0 == n1 && memcmp(damaged, after, n0) == 0,
                      "flip at %zu: the failed open rewrote the keyring", offs[i]);
        free(damaged);
        free(after);
        flip_byte(kr, offs[i]);
        open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    }
    free(kr);
    fx_free(&f);
}
END_TEST

/* CRC-32C (Castagnoli), as the file and log headers carry it. */
static uint32_t crc32c(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Set the u32 at off of a header of hlen bytes whose crc32c of the bytes
 * before crc_off is stored at crc_off (checked first: the layout is what
 * the test believes). */
static void set_header_u32(const char *path, size_t off, uint32_t v, size_t crc_off)
{
    size_t n = 0;
    unsigned char *b = read_all(path, &n);
    ck_assert_uint_ge(n, crc_off + 4);
    ck_assert_msg(get_le32(b + crc_off) == crc32c(b, crc_off), "%s: header checksum layout", path);
    put_le32(b + off, v);
    put_le32(b + crc_off, crc32c(b, crc_off));
    write_file(path, b, n);
    free(b);
}

/* The key-value entry key of db equals want. */
static void kv_is(ts_db *db, const char *key, const json_t *want)
{
    json_t *got = NULL;
    ck_assert_int_eq(ts_kv_get(db, key, 0, &got), TS_OK);
    ck_assert_msg(json_equal(got, want), "%s: not the value written", key);
    json_decref(got);
}

static long long pages_in_use(ts_db *db)
{
    json_t *st = NULL;
    ck_assert_int_eq(ts_stats(db, &st), TS_OK);
    long long n = (long long)(json_integer_value(json_object_get(st, "pages")) -
                              json_integer_value(json_object_get(st, "freePages")));
    json_decref(st);
    return n;
}

/* Pages n rows of 256-d vectors take in a new table, with or without an
 * ngh index, and the rows read back whole. */
static long long vector_rows_pages(ts_db *db, const char *name, int indexed, int n)
{
    char sch[512];
    snprintf(sch, sizeof sch, "{\"name\": \"%s\", \"fields\": [{\"name\": \"e\", \"type\": \"vector\", "
             "\"vectorConfig\": {\"dimensions\": 256}}]%s}", name,
             indexed ? ", \"indexes\": [{\"type\": \"ngh\", \"fields\": [\"e\"]}]" : "");
    json_t *js = json_loads(sch, 0, NULL);
    ck_assert_int_eq(ts_create_table(db, js), TS_OK);
    json_decref(js);
    long long p0 = pages_in_use(db);
    float v[256];
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < 256; d++) v[d] = (float)((i * 31 + d * 7) % 97) / 7.0f;
        json_t *rec = json_pack("{s:I, s:o}", "id", (json_int_t)i + 1, "e", ts_vector_value(v, 256));
        ck_assert_int_eq(ts_insert(db, name, rec, NULL), TS_OK);
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    json_t *row = NULL, *id = json_integer(n);
    ck_assert_int_eq(ts_get(db, name, id, &row), TS_OK);
    ck_assert_uint_eq(json_array_size(json_object_get(row, "e")), 256);
    ck_assert(json_real_value(json_array_get(json_object_get(row, "e"), 5)) ==
              (double)(float)((((n - 1) * 31 + 35) % 97) / 7.0f));
    json_decref(row);
    json_decref(id);
    return pages_in_use(db) - p0;
}

/* A database of format 1 (made before format 3) keeps its rules: rows
 * keep their vectors (an older build must still read them); one of
 * format 3 leaves them to the index. */
START_TEST(test_older_format_keeps_vectors_in_rows)
{
    fixture f = fx_new("api-format-rows");
    ts_db *db;
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    long long plain3 = vector_rows_pages(db, "p", 0, 300), ix3 = vector_rows_pages(db, "x", 1, 300);
    ck_assert_int_eq(ts_close(db), TS_OK);
    ck_assert_msg(ix3 < plain3 * 3 / 2, "format 3: %lld pages with an index, %lld without", ix3, plain3);
    fx_free(&f);

    f = fx_new("api-format-rows1");
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    ck_assert_int_eq(ts_close(db), TS_OK);
    char *file = xfmt("%s/tostore.db", f.db);
    set_header_u32(file, 8, 1, 60);
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    long long plain1 = vector_rows_pages(db, "p", 0, 300), ix1 = vector_rows_pages(db, "x", 1, 300);
    ck_assert_int_eq(ts_close(db), TS_OK);
    ck_assert_msg(ix1 > plain1 * 3 / 2, "format 1: %lld pages with an index, %lld without", ix1, plain1);
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    ck_assert_int_eq(ts_check(db, NULL, NULL, NULL), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);
    size_t n = 0;
    unsigned char *b = read_all(file, &n);
    ck_assert_uint_eq(get_le32(b + 8), 1);
    free(b);
    free(file);
    fx_free(&f);
}
END_TEST

/* The database file's format number: a newer one (or 0) is refused with
 * TS_ERR_FORMAT and a message saying so, and the file is left as it was. */
START_TEST(test_format_version_refused)
{
    fixture f = fx_new("api-format");
    ts_db *db;
    OPEN_OK(&db, "{\"path\": \"%s\"}", f.db);
    json_t *v = json_integer(7);
    ck_assert_int_eq(ts_kv_set(db, "k", v, 0), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);
    char *file = xfmt("%s/tostore.db", f.db), *cfg = xfmt("{\"path\": \"%s\"}", f.db);
    static const struct { uint32_t format; const char *says; } cases[] = {
        { 4, "newer tostore" }, { 0xFFFFFFFFu, "newer tostore" }, { 0, "unknown format" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_header_u32(file, 8, cases[i].format, 60);
        size_t n0 = 0, n1 = 0;
        unsigned char *before = read_all(file, &n0);
        EXPECT_FAIL(TS_ERR_FORMAT, NULL, cases[i].says, cfg);
        unsigned char *after = read_all(file, &n1);
        ck_assert_msg(n0 == n1 && memcmp(before, after, n0) == 0, "format %u: the failed open wrote",
                      cases[i].format);
        free(before);
        free(after);
    }
    set_header_u32(file, 8, 3, 60);
    OPEN_OK(&db, "%s", cfg);
    kv_is(db, "k", v);
    json_decref(v);
    ck_assert_int_eq(ts_close(db), TS_OK);
    free(file);
    free(cfg);
    fx_free(&f);
}
END_TEST

/* The log's format number: a log of another format that holds commits is
 * refused (not discarded for a fresh one), and read once it is restored. */
START_TEST(test_log_format_version_refused)
{
    fixture f = fx_new("api-logformat");
    char *copy = xfmt("%s/copy", f.dir);
    ts_db *db;
    OPEN_OK(&db, "{\"path\": \"%s\", \"durability\": \"normal\"}", f.db);
    json_t *v = json_string("in the log only");
    ck_assert_int_eq(ts_kv_set(db, "k", v, 0), TS_OK);
    tst_copy_dir(f.db, copy);   /* as after a crash: the commit is in the log */
    ck_assert_int_eq(ts_close(db), TS_OK);
    char *log = xfmt("%s/tostore.wal", copy), *cfg = xfmt("{\"path\": \"%s\"}", copy);
    ck_assert_uint_gt(file_size(log), 32);
    set_header_u32(log, 8, 2, 24);
    EXPECT_FAIL(TS_ERR_FORMAT, NULL, "newer tostore", cfg);
    set_header_u32(log, 8, 0, 24);
    EXPECT_FAIL(TS_ERR_FORMAT, NULL, "unknown", cfg);
    set_header_u32(log, 8, 1, 24);
    OPEN_OK(&db, "%s", cfg);
    kv_is(db, "k", v);
    json_decref(v);
    ck_assert_int_eq(ts_close(db), TS_OK);
    free(log);
    free(cfg);
    free(copy);
    fx_free(&f);
}
END_TEST

/* An older, validly sealed copy of a page put back in place: with the
 * page-version digest ts_check reports it (TS_ERR_CORRUPT, staleVersions),
 * encrypted or plain; without it, nothing notices (what docs/kernel.md
 * says). */
static int replay_detected(const char *dir, const char *extra)
{
    char *db = xfmt("%s/db", dir), *file = xfmt("%s/db/tostore.db", dir);
    char *cfg = xfmt("{\"path\": \"%s\"%s}", db, extra);
    ts_db *h;
    OPEN_OK(&h, "%s", cfg);
    json_t *v1 = json_string("the first version"), *v2 = json_string("the second version");
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%02d", i);
        ck_assert_int_eq(ts_kv_set(h, k, v1, 0), TS_OK);
    }
    ck_assert_int_eq(ts_close(h), TS_OK);   /* checkpointed: every page in the file */
    size_t n1 = 0, n2 = 0;
    unsigned char *old = read_all(file, &n1);
    /* new databases are format 3 (older builds refuse it) */
    ck_assert_uint_eq(get_le32(old + 8), 3);
    OPEN_OK(&h, "%s", cfg);
    ck_assert_int_eq(ts_kv_set(h, "k07", v2, 0), TS_OK);
    ck_assert_int_eq(ts_close(h), TS_OK);
    unsigned char *now = read_all(file, &n2);
    /* the page that changed, other than the meta page (page 1) */
    size_t ps = 4096, pg = 0;
    for (size_t p = 2; p * ps < n1 && p * ps < n2 && !pg; p++)
        if (memcmp(old + p * ps, now + p * ps, ps) != 0) pg = p;
    ck_assert_msg(pg != 0, "no data page changed");
    memcpy(now + pg * ps, old + pg * ps, ps);
    OPEN_OK(&h, "%s", cfg);
    ck_assert_int_eq(ts_check(h, NULL, NULL, NULL), TS_OK);   /* its pages now cached */
    write_file(file, now, n2);   /* put back while the database is open */
    json_t *report = NULL;
    int rc = ts_check(h, &report, NULL, NULL);
    int detected = rc == TS_ERR_CORRUPT;
    if (detected) {
        ck_assert_msg(strstr(ts_errmsg(h), "not the version the database expects"), "message: %s",
                      ts_errmsg(h));
        ck_assert(json_is_true(json_object_get(report, "staleVersions")));
        ck_assert_int_eq(json_integer_value(json_object_get(report, "badPages")), 0);
        /* a rekey would make the old copy valid: refused, the old key kept */
        rc = ts_rekey(h, "{\"module\": \"aes256gcm\", \"key\": \"hex:" K1 "\"}", TS_REKEY_NEW_DATA_KEY,
                      NULL, NULL);
        ck_assert_msg(rc == TS_ERR_CORRUPT && strstr(ts_errmsg(h), "not the version"), "rekey: %d %s", rc,
                      ts_errmsg(h));
    } else {
        ck_assert_int_eq(rc, TS_OK);
    }
    json_decref(report);
    ck_assert_int_eq(ts_close(h), TS_OK);
    json_decref(v1);
    json_decref(v2);
    free(old);
    free(now);
    free(db);
    free(file);
    free(cfg);
    return detected;
}

START_TEST(test_replayed_page_detected)
{
    fixture f = fx_new("api-replay");
    ck_assert(replay_detected(f.dir, ", \"pageDigest\": true, \"cipher\": {\"module\": "
                                     "\"chacha20poly1305\", \"key\": \"hex:" K1 "\"}"));
    tst_rmrf(f.db);
    ck_assert(replay_detected(f.dir, ", \"pageDigest\": true"));
    tst_rmrf(f.db);
    ck_assert(!replay_detected(f.dir, ", \"cipher\": {\"module\": \"aes256gcm\", \"key\": \"hex:" K1 "\"}"));
    fx_free(&f);
}
END_TEST

/* Pages past the page count (what a crash during a big transaction can
 * leave: its new pages go straight to the main file) are not the
 * database's: a rekey that re-seals every page skips them instead of
 * failing on them. */
START_TEST(test_rekey_ignores_pages_past_count)
{
    fixture f = fx_new("api-rekeytail");
    char *db = xfmt("%s/db", f.dir), *file = xfmt("%s/db/tostore.db", f.dir);
    char *cfg = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"chacha20poly1305\", "
                     "\"key\": \"hex:" K1 "\"}}", db);
    char *cfg2 = xfmt("{\"path\": \"%s\", \"cipher\": {\"module\": \"aes256gcm\", "
                      "\"key\": \"hex:" K2 "\"}}", db);
    ts_db *h;
    OPEN_OK(&h, "%s", cfg);
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%02d", i);
        json_t *v = json_integer(i * 7);
        ck_assert_int_eq(ts_kv_set(h, k, v, 0), TS_OK);
        json_decref(v);
    }
    ck_assert_int_eq(ts_close(h), TS_OK);
    size_t n = 0;
    unsigned char *img = read_all(file, &n);
    unsigned char *big = malloc(n + 3 * 4096);
    memcpy(big, img, n);
    for (size_t i = 0; i < 3 * 4096; i++) big[n + i] = (unsigned char)(i * 131 + 7); /* torn pages */
    write_file(file, big, n + 3 * 4096);
    OPEN_OK(&h, "%s", cfg);
    int rc = ts_rekey(h, "{\"module\": \"aes256gcm\", \"key\": \"hex:" K2 "\"}", TS_REKEY_NEW_DATA_KEY,
                      NULL, NULL);
    ck_assert_msg(rc == TS_OK, "rekey over pages past the page count: %d %s", rc, ts_errmsg(h));
    ck_assert_int_eq(ts_close(h), TS_OK);
    OPEN_OK(&h, "%s", cfg2);
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%02d", i);
        json_t *v = NULL;
        ck_assert_int_eq(ts_kv_get(h, k, 0, &v), TS_OK);
        ck_assert_int_eq(json_integer_value(v), i * 7);
        json_decref(v);
    }
    ck_assert_int_eq(ts_check(h, NULL, NULL, NULL), TS_OK);
    ck_assert_int_eq(ts_close(h), TS_OK);
    free(img);
    free(big);
    free(db);
    free(file);
    free(cfg);
    free(cfg2);
    fx_free(&f);
}
END_TEST

/* Tampering with an encrypted database's main file, each caught by the
 * pages' seal (what docs/kernel.md's table says): a flipped bit in a
 * page, a page copied over another position, and a page of another
 * database under the same key at the same position.  ts_check names the
 * page; a read of the data gives TS_ERR_CORRUPT, never other data. */
static void fill_kv(const char *cfg, int n)
{
    ts_db *h;
    OPEN_OK(&h, "%s", cfg);
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        json_t *v = json_pack("{s:i, s:s}", "i", i, "pad", "................................................");
        ck_assert_int_eq(ts_kv_set(h, k, v, 0), TS_OK);
        json_decref(v);
    }
    ck_assert_int_eq(ts_close(h), TS_OK);
}

START_TEST(test_encrypted_tampering)
{
    fixture f = fx_new("api-tamper");
    char *db = xfmt("%s/db", f.dir), *file = xfmt("%s/db/tostore.db", f.dir);
    char *db2 = xfmt("%s/db2", f.dir), *file2 = xfmt("%s/db2/tostore.db", f.dir);
    const char *ciph = "\"cipher\": {\"module\": \"chacha20poly1305\", \"key\": \"hex:" K1 "\"}";
    char *cfg = xfmt("{\"path\": \"%s\", %s}", db, ciph), *cfg2 = xfmt("{\"path\": \"%s\", %s}", db2, ciph);
    fill_kv(cfg, 300);
    fill_kv(cfg2, 300);
    size_t n = 0, n2 = 0;
    unsigned char *orig = read_all(file, &n), *other = read_all(file2, &n2);
    const size_t ps = 4096;
    ck_assert_uint_ge(n / ps, 6);
    ck_assert_uint_ge(n2 / ps, 6);
    for (int attack = 0; attack < 3; attack++) {
        unsigned char *img = malloc(n);
        memcpy(img, orig, n);
        size_t pg = n / ps - 2;   /* a data page */
        if (attack == 0) img[pg * ps + 1000] ^= 0x10;
        else if (attack == 1) memcpy(img + pg * ps, orig + (pg - 1) * ps, ps);
        else memcpy(img + pg * ps, other + pg * ps, ps);
        write_file(file, img, n);
        ts_db *h;
        OPEN_OK(&h, "%s", cfg);
        json_t *report = NULL;
        int rc = ts_check(h, &report, NULL, NULL);
        ck_assert_msg(rc == TS_ERR_CORRUPT, "attack %d: ts_check gave %d", attack, rc);
        ck_assert_int_eq(json_integer_value(json_object_get(report, "firstBadPage")), (json_int_t)pg);
        json_decref(report);
        /* every key reads its own value or fails as corrupt */
        int corrupt = 0;
        for (int i = 0; i < 300; i++) {
            char k[16];
            snprintf(k, sizeof k, "k%03d", i);
            json_t *v = NULL;
            rc = ts_kv_get(h, k, 0, &v);
            if (rc == TS_ERR_CORRUPT) { corrupt++; continue; }
            ck_assert_msg(rc == TS_OK, "attack %d, key %s: %d %s", attack, k, rc, ts_errmsg(h));
            ck_assert_int_eq(json_integer_value(json_object_get(v, "i")), i);
            json_decref(v);
        }
        ck_assert_msg(corrupt > 0, "attack %d: no read noticed the damaged page", attack);
        ck_assert_int_eq(ts_close(h), TS_OK);
        free(img);
    }
    free(orig);
    free(other);
    free(db);
    free(file);
    free(db2);
    free(file2);
    free(cfg);
    free(cfg2);
    fx_free(&f);
}
END_TEST

/* Damage to the keyring's header, each with the code it gives. */
START_TEST(test_keyring_damaged_header)
{
    fixture f = fx_new("api-krhead");
    char *kr = keyring_of(&f);
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    static const struct { size_t off; int code; const char *says; } cases[] = {
        { 0, TS_ERR_CORRUPT, "not a tostore keyring" },   /* magic */
        { 8, TS_ERR_FORMAT, "version" },                  /* version */
        { 48, TS_ERR_KEY, "cipher" },                     /* module name */
        { 112, TS_ERR_CORRUPT, "inconsistent" },          /* key length */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        flip_byte(kr, cases[i].off);
        int rc = open_cipher(f.db, "chacha20poly1305", "hex:" K1);
        ck_assert_msg(rc == cases[i].code, "flip at %zu: %d (%s), want %d: %s", cases[i].off, rc,
                      ts_strerror(rc), cases[i].code, ts_errmsg(NULL));
        ck_assert_msg(strstr(ts_errmsg(NULL), cases[i].says), "flip at %zu: message '%s'",
                      cases[i].off, ts_errmsg(NULL));
        flip_byte(kr, cases[i].off);
    }
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    free(kr);
    fx_free(&f);
}
END_TEST

START_TEST(test_keyring_truncated)
{
    fixture f = fx_new("api-krtrunc");
    char *kr = keyring_of(&f);
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    size_t n = 0;
    unsigned char *orig = read_all(kr, &n);
    const size_t lens[] = { n - 1, KEYRING_HEAD + 10, KEYRING_HEAD, KEYRING_HEAD - 1, 8, 0 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        write_file(kr, orig, lens[i]);
        int rc = open_cipher(f.db, "chacha20poly1305", "hex:" K1);
        ck_assert_msg(rc == TS_ERR_CORRUPT, "keyring cut to %zu bytes: %d (%s): %s", lens[i], rc,
                      ts_strerror(rc), ts_errmsg(NULL));
        ck_assert_msg(strstr(ts_errmsg(NULL), KEYRING), "cut to %zu: message '%s'", lens[i],
                      ts_errmsg(NULL));
        ck_assert_uint_eq(file_size(kr), lens[i]);
    }
    /* One byte too many is damage as well. */
    unsigned char *longer = malloc(n + 1);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, orig, n);
    longer[n] = 0;
    write_file(kr, longer, n + 1);
    ck_assert_int_eq(open_cipher(f.db, "chacha20poly1305", "hex:" K1), TS_ERR_CORRUPT);
    write_file(kr, orig, n);
    open_cipher_ok(f.db, "chacha20poly1305", "hex:" K1);
    free(longer);
    free(orig);
    free(kr);
    fx_free(&f);
}
END_TEST

/* KERNEL BUG (kernel/plugin/registry.c tsreg_default_dirs): the library's
 * own file comes from dladdr(), which for a program linked statically
 * with libtostore gives argv[0] as the program was started ("test_open"
 * when found through PATH, "./test_open" from a shell); realpath() of it
 * then depends on the cwd at ts_open time, and after a chdir the default
 * plugin folders are silently lost ("looked for posix.so in no plugin
 * folder").  The child below is started with a bare argv[0] in another
 * directory, as a shell would start a program found through PATH. */
START_TEST(test_plugins_found_whatever_argv0_and_cwd)
{
    fixture f = fx_new("api-argv0");
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (chdir(f.dir) != 0) _exit(3);
        char *const args[] = { "test_open", "--child-open", f.db, NULL };
        execv("/proc/self/exe", args);
        _exit(4);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st), "the child did not exit normally");
    ck_assert_msg(WEXITSTATUS(st) == 0, "the child's open failed (exit %d; its message is on "
                  "stderr, \"child open: ...\")", WEXITSTATUS(st));
    ck_assert(is_dir(f.db));
    fx_free(&f);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static Suite *open_suite(void)
{
    Suite *s = suite_create("open");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_open_embedded_default);
    tcase_add_test(tc, test_open_config_file);
    tcase_add_test(tc, test_open_relative_path_is_cwd_relative);
    tcase_add_test(tc, test_open_json_creates_nested_dirs);
    tcase_add_test(tc, test_open_path_is_a_file);
    tcase_add_test(tc, test_open_missing_config_file);
    tcase_add_test(tc, test_open_malformed_json);
    tcase_add_test(tc, test_open_file_validation_error);
    tcase_add_loop_test(tc, test_open_rejects_bad_config, 0, N_BAD_CASES);
    tcase_add_test(tc, test_open_accepts_boundaries);
    tcase_add_test(tc, test_config_defaults_and_secrets);
    tcase_add_test(tc, test_config_fills_migration_defaults);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, test_null_arguments);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_errmsg_per_thread);
    tcase_add_test(tc, test_errmsg_handle);
    suite_add_tcase(s, tc);

    tc = tcase_create("plugins");
    tcase_add_test(tc, test_lock_second_open);
    tcase_add_test(tc, test_memory_backend);
    tcase_add_test(tc, test_storage_options_error_names_path);
    tcase_add_test(tc, test_modules_lists_bundled);
    tcase_add_test(tc, test_bundled_plugins_load_on_first_use);
    tcase_add_test(tc, test_no_bundled_plugins);
    tcase_add_test(tc, test_plugin_path_first);
    tcase_add_test(tc, test_missing_plugin);
    tcase_add_test(tc, test_plugins_found_whatever_argv0_and_cwd);
    suite_add_tcase(s, tc);

    tc = tcase_create("cipher");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cipher_raw_key);
    tcase_add_test(tc, test_cipher_key_formats);
    tcase_add_test(tc, test_cipher_env_key);
    tcase_add_test(tc, test_cipher_env_key_unset_on_existing);
    tcase_add_test(tc, test_cipher_passphrase);
    tcase_add_test(tc, test_cipher_passphrase_damaged_limits);
    tcase_add_test(tc, test_cipher_key_plus_passphrase);
    tcase_add_test(tc, test_cipher_aes256gcm);
    tcase_add_test(tc, test_cipher_insecure_xor);
    tcase_add_test(tc, test_cipher_unknown_module);
    tcase_add_test(tc, test_cipher_on_plain_database);
    tcase_add_test(tc, test_keyring_damaged_wrapped_key);
    tcase_add_test(tc, test_keyring_damaged_header);
    tcase_add_test(tc, test_format_version_refused);
    tcase_add_test(tc, test_older_format_keeps_vectors_in_rows);
    tcase_add_test(tc, test_log_format_version_refused);
    tcase_add_test(tc, test_replayed_page_detected);
    tcase_add_test(tc, test_rekey_ignores_pages_past_count);
    tcase_add_test(tc, test_encrypted_tampering);
    tcase_add_test(tc, test_keyring_truncated);
    suite_add_tcase(s, tc);
    return s;
}

/* Child mode of test_plugins_found_whatever_argv0_and_cwd: open a database
 * at path with the default plugins, say why on failure. */
static int child_open(const char *path)
{
    char *json = NULL;
    if (asprintf(&json, "{\"path\": \"%s\"}", path) < 0) return 5; /* no ck_* here */
    ts_db *db = NULL;
    int rc = ts_open_json(json, &db);
    free(json);
    if (rc != TS_OK) {
        fprintf(stderr, "child open: %d: %s\n", rc, ts_errmsg(NULL));
        return 1;
    }
    rc = ts_close(db);
    if (rc != TS_OK) {
        fprintf(stderr, "child close: %d: %s\n", rc, ts_errmsg(NULL));
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child-open") == 0) return child_open(argv[2]);
    return tst_run(open_suite());
}
