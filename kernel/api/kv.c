/*
 * The key-value store: one btree (system root slot 1).
 *   data:   (space id, key)               -> [1][expires ms, 0: never][JSON text]
 *   expiry: (-1, expires ms, space id, key) -> ""   (only for keys with a TTL)
 * Expired keys read as absent and are purged a few at a time by every write
 * call, oldest first, through the expiry entries.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tostore/keys.h>
#include "api/call.h"

#define KV_KEY_MAX 1000
#define KV_EXPIRY_SPACE (-1)
#define KV_PURGE_BATCH 64
#define KBUF (KV_KEY_MAX + 64)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static int64_t get64s(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return (int64_t)v; }

static int check_key(ts_db *db, const char *key)
{
    if (!key) return tsenv_error(&db->env, TS_ERR_INVALID, "key is NULL");
    if (strlen(key) > KV_KEY_MAX)
        return tsenv_error(&db->env, TS_ERR_VALIDATION, "key is longer than %d bytes", KV_KEY_MAX);
    return TS_OK;
}

static int64_t space_of(ts_db *db, int global)
{
    if (global) return TSSYS_SPACE_GLOBAL;
    pthread_mutex_lock(&db->lock);
    int64_t id = (int64_t)db->space_id;
    pthread_mutex_unlock(&db->lock);
    return id;
}

static size_t data_key(uint8_t *k, int64_t space, const char *key)
{
    size_t n = ts_key_int(k, KBUF, 0, space);
    return ts_key_text(k, KBUF, n, key, strlen(key));
}

static size_t expiry_key(uint8_t *k, int64_t expires, int64_t space, const char *key)
{
    size_t n = ts_key_int(k, KBUF, 0, KV_EXPIRY_SPACE);
    n = ts_key_int(k, KBUF, n, expires);
    n = ts_key_int(k, KBUF, n, space);
    return ts_key_text(k, KBUF, n, key, strlen(key));
}

/* Read the stored entry: *expires and a new JSON value (either may be
 * NULL).  TS_ERR_NOT_FOUND when absent; expired entries are returned as
 * they are (the caller decides). */
static int read_entry(ts_db *db, tstx *tx, int64_t space, const char *key, int64_t *expires,
                      json_t **val)
{
    uint8_t k[KBUF];
    void *v;
    size_t vl;
    int rc = tsix_get(db->sys.kv, tx, k, data_key(k, space, key), &v, &vl);
    if (rc) return rc;
    const uint8_t *b = v;
    if (vl < 9 || b[0] != 1) {
        free(v);
        return tsenv_error(&db->env, TS_ERR_CORRUPT, "key-value entry '%s' is malformed", key);
    }
    if (expires) *expires = get64s(b + 1);
    if (val) {
        json_error_t e;
        *val = json_loadb((const char *)b + 9, vl - 9, JSON_DECODE_ANY, &e);
        if (!*val) rc = tsenv_error(&db->env, TS_ERR_CORRUPT, "key-value entry '%s': %s", key, e.text);
    }
    free(v);
    return rc;
}

static int remove_entry(ts_db *db, tstx *tx, int64_t space, const char *key, int64_t expires)
{
    uint8_t k[KBUF];
    int rc = tsix_remove(db->sys.kv, tx, k, data_key(k, space, key), NULL, 0);
    if (!rc && expires) {
        rc = tsix_remove(db->sys.kv, tx, k, expiry_key(k, expires, space, key), NULL, 0);
        if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
    }
    return rc;
}

static int write_entry(ts_db *db, tstx *tx, int64_t space, const char *key, const json_t *value,
                       int64_t expires)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return tsenv_error(&db->env, TS_ERR_VALIDATION, "value cannot be encoded as JSON");
    size_t tl = strlen(text);
    if (tl > (16u << 20)) {
        free(text);
        return tsenv_error(&db->env, TS_ERR_VALIDATION, "value is larger than 16 MiB");
    }
    uint8_t *buf = malloc(9 + tl), k[KBUF];
    int rc = buf ? TS_OK : tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    if (!rc) {
        buf[0] = 1;
        put64(buf + 1, (uint64_t)expires);
        memcpy(buf + 9, text, tl);
        rc = tsix_insert(db->sys.kv, tx, k, data_key(k, space, key), buf, 9 + tl, 1);
    }
    if (!rc && expires) rc = tsix_insert(db->sys.kv, tx, k, expiry_key(k, expires, space, key), "", 0, 1);
    free(buf);
    free(text);
    return rc;
}

int tsapi_kv_raw(ts_db *db, tstx *tx, int64_t space, const char *key, void **out, size_t *len)
{
    uint8_t k[KBUF];
    return tsix_get(db->sys.kv, tx, k, data_key(k, space, key), out, len);
}

int tsapi_kv_restore(ts_db *db, tstx *tx, int64_t space, const char *key, const void *old,
                     size_t len)
{
    int64_t exp = 0;
    int rc = read_entry(db, tx, space, key, &exp, NULL);
    if (!rc) rc = remove_entry(db, tx, space, key, exp);
    else if (rc == TS_ERR_NOT_FOUND) { rc = TS_OK; tsenv_clear(&db->env); }
    if (rc || !old) return rc;
    if (len < 9) return tsenv_error(&db->env, TS_ERR_CORRUPT, "key-value undo of '%s' is malformed", key);
    int64_t oexp = get64s((const uint8_t *)old + 1);
    uint8_t k[KBUF];
    rc = tsix_insert(db->sys.kv, tx, k, data_key(k, space, key), old, len, 1);
    if (!rc && oexp) rc = tsix_insert(db->sys.kv, tx, k, expiry_key(k, oexp, space, key), "", 0, 1);
    return rc;
}

/* Under a savepoint: remember the entry's bytes before a change. */
static int keep_old(ts_db *db, tstx *tx, int64_t space, const char *key)
{
    if (!tsapi_sp_active(db)) return TS_OK;
    void *v = NULL;
    size_t vl = 0;
    int rc = tsapi_kv_raw(db, tx, space, key, &v, &vl);
    if (rc == TS_ERR_NOT_FOUND) { tsenv_clear(&db->env); rc = TS_OK; }
    if (!rc) rc = tsapi_sp_keep_kv(db, space, key, v, vl);
    free(v);
    return rc;
}

/* Delete up to `max` entries whose time has come. */
static int purge(ts_db *db, tstx *tx, int max)
{
    uint8_t k[KBUF];
    size_t pl = ts_key_int(k, KBUF, 0, KV_EXPIRY_SPACE);
    struct { int64_t exp, space; char key[KV_KEY_MAX + 1]; } *due = malloc(sizeof *due * (size_t)max);
    if (!due) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    int n = 0;
    int64_t now = now_ms();
    tsix_cur c;
    int rc = tsix_cursor(db->sys.kv, tx, &c);
    if (rc) { free(due); return rc; }
    for (rc = tsix_seek(&c, k, pl, TS_SEEK_GE); rc == TS_OK && n < max; rc = tsix_next(&c)) {
        const void *ek, *ev;
        size_t ekl, evl;
        if ((rc = tsix_entry(&c, &ek, &ekl, &ev, &evl))) break;
        if (ekl < pl || memcmp(ek, k, pl) != 0) break;
        size_t off = pl;
        ts_key_item a, b, t;
        if (ts_key_next(ek, ekl, &off, &a) != 1 || ts_key_next(ek, ekl, &off, &b) != 1 ||
            ts_key_next(ek, ekl, &off, &t) != 1 || t.len > KV_KEY_MAX) {
            rc = TS_ERR_CORRUPT;
            break;
        }
        if (a.i > now) break;
        due[n].exp = a.i;
        due[n].space = b.i;
        ts_key_unescape(&t, due[n].key);
        due[n].key[t.len] = '\0';
        n++;
    }
    tsix_cursor_close(&c);
    if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
    for (int i = 0; i < n && !rc; i++) rc = remove_entry(db, tx, due[i].space, due[i].key, due[i].exp);
    free(due);
    return rc;
}

static int kv_set(ts_db *db, const char *key, const json_t *value, int64_t ttl_ms, int global)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    if (!value) rc = tsenv_error(&db->env, TS_ERR_INVALID, "value is NULL (use json_null())");
    if (!rc) rc = check_key(db, key);
    if (!rc && ttl_ms < 0) rc = tsenv_error(&db->env, TS_ERR_VALIDATION, "ttl_ms must not be negative");
    int64_t space = space_of(db, global), old = 0;
    if (!rc) rc = purge(db, c.tx, KV_PURGE_BATCH);
    if (!rc) rc = keep_old(db, c.tx, space, key);
    if (!rc) {
        rc = read_entry(db, c.tx, space, key, &old, NULL);
        if (!rc) rc = remove_entry(db, c.tx, space, key, old);
        else if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
    }
    if (!rc) rc = write_entry(db, c.tx, space, key, value, ttl_ms ? now_ms() + ttl_ms : 0);
    return tscall_end(&c, rc);
}

int ts_kv_set(ts_db *db, const char *key, const json_t *value, int global)
{
    return kv_set(db, key, value, 0, global);
}

int ts_kv_set_ttl(ts_db *db, const char *key, const json_t *value, int64_t ttl_ms, int global)
{
    if (ttl_ms == 0) {
        if (db) tsenv_error(&db->env, TS_ERR_VALIDATION, "ttl_ms must be positive");
        return TS_ERR_VALIDATION;
    }
    return kv_set(db, key, value, ttl_ms, global);
}

int ts_kv_get(ts_db *db, const char *key, int global, json_t **out_new)
{
    if (out_new) *out_new = NULL;
    tscall c;
    int rc = tscall_begin(db, 0, &c);
    if (rc) return rc;
    if (!out_new) rc = tsenv_error(&db->env, TS_ERR_INVALID, "out is NULL");
    if (!rc) rc = check_key(db, key);
    int64_t exp = 0;
    json_t *v = NULL;
    if (!rc) rc = read_entry(db, c.tx, space_of(db, global), key, &exp, &v);
    if (!rc && exp && exp <= now_ms()) {
        json_decref(v);
        v = NULL;
        rc = TS_ERR_NOT_FOUND;
    }
    if (rc == TS_ERR_NOT_FOUND) tsenv_error(&db->env, rc, "no key '%s'", key);
    rc = tscall_end(&c, rc);
    if (!rc) *out_new = v;
    else json_decref(v);
    return rc;
}

int ts_kv_remove(ts_db *db, const char *key, int global)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    rc = check_key(db, key);
    int64_t space = space_of(db, global), exp = 0;
    if (!rc) rc = purge(db, c.tx, KV_PURGE_BATCH);
    if (!rc) rc = keep_old(db, c.tx, space, key);
    if (!rc) rc = read_entry(db, c.tx, space, key, &exp, NULL);
    if (!rc) rc = remove_entry(db, c.tx, space, key, exp);
    if (!rc && exp && exp <= now_ms()) rc = TS_ERR_NOT_FOUND; /* it was already gone */
    if (rc == TS_ERR_NOT_FOUND) {
        /* nothing to remove; keep any purge work */
        int e = tscall_end(&c, TS_OK);
        return e ? e : tsenv_error(&db->env, TS_ERR_NOT_FOUND, "no key '%s'", key);
    }
    return tscall_end(&c, rc);
}

int ts_kv_increment(ts_db *db, const char *key, int64_t amount, int global, int64_t *new_value)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    rc = check_key(db, key);
    int64_t space = space_of(db, global), exp = 0, cur = 0;
    json_t *v = NULL;
    if (!rc) rc = purge(db, c.tx, KV_PURGE_BATCH);
    if (!rc) rc = keep_old(db, c.tx, space, key);
    if (!rc) {
        rc = read_entry(db, c.tx, space, key, &exp, &v);
        if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
        else if (!rc && exp && exp <= now_ms()) { json_decref(v); v = NULL; }
    }
    if (!rc && v) {
        if (!json_is_integer(v))
            rc = tsenv_error(&db->env, TS_ERR_VALIDATION, "key '%s' does not hold an integer", key);
        else
            cur = json_integer_value(v);
    }
    if (!rc && ((amount > 0 && cur > INT64_MAX - amount) || (amount < 0 && cur < INT64_MIN - amount)))
        rc = tsenv_error(&db->env, TS_ERR_RANGE, "key '%s': increment overflows 64 bits", key);
    if (!rc && v) rc = remove_entry(db, c.tx, space, key, exp);
    if (!rc) {
        json_t *nv = json_integer(cur + amount);
        if (exp && exp <= now_ms()) exp = 0; /* an expired key starts over without a TTL */
        rc = nv ? write_entry(db, c.tx, space, key, nv, v ? exp : 0) : TS_ERR_NOMEM;
        json_decref(nv);
    }
    json_decref(v);
    rc = tscall_end(&c, rc);
    if (!rc && new_value) *new_value = cur + amount;
    return rc;
}

typedef struct walk_ctx {
    ts_db  *db;
    int64_t now;
    int   (*fn)(void *ctx, const char *key);
    void   *ctx;
    char    name[KV_KEY_MAX + 1];
} walk_ctx;

static int walk_one(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    walk_ctx *w = ctx;
    if (vl >= 9) {
        int64_t exp = get64s((const uint8_t *)v + 1);
        if (exp && exp <= w->now) return TS_OK;
    }
    size_t off = 0;
    ts_key_item sp, t;
    if (ts_key_next(k, kl, &off, &sp) != 1 || ts_key_next(k, kl, &off, &t) != 1 || t.len > KV_KEY_MAX)
        return tsenv_error(&w->db->env, TS_ERR_CORRUPT, "malformed key-value key");
    ts_key_unescape(&t, w->name);
    w->name[t.len] = '\0';
    return w->fn(w->ctx, w->name);
}

/* Walk live keys of a space starting with prefix; fn gets each key. */
static int walk(ts_db *db, tstx *tx, int64_t space, const char *prefix,
                int (*fn)(void *ctx, const char *key), void *ctx)
{
    uint8_t k[KBUF];
    size_t pl = ts_key_int(k, KBUF, 0, space);
    size_t full = ts_key_text(k, KBUF, pl, prefix, strlen(prefix));
    pl = full - 2; /* drop the terminator: a prefix of every longer key */
    walk_ctx *w = malloc(sizeof *w);
    if (!w) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    *w = (walk_ctx){ db, now_ms(), fn, ctx, "" };
    int rc = tsix_each_prefix(db->sys.kv, tx, k, pl, walk_one, w);
    free(w);
    return rc;
}

static int add_key(void *ctx, const char *key)
{
    return json_array_append_new(ctx, json_string(key)) ? TS_ERR_NOMEM : TS_OK;
}

static int count_key(void *ctx, const char *key)
{
    (void)key;
    (*(int64_t *)ctx)++;
    return TS_OK;
}

int ts_kv_keys(ts_db *db, const char *prefix, int global, json_t **out_new)
{
    if (out_new) *out_new = NULL;
    tscall c;
    int rc = tscall_begin(db, 0, &c);
    if (rc) return rc;
    if (!out_new) rc = tsenv_error(&db->env, TS_ERR_INVALID, "out is NULL");
    if (!rc && prefix && strlen(prefix) > KV_KEY_MAX)
        rc = tsenv_error(&db->env, TS_ERR_VALIDATION, "prefix is longer than %d bytes", KV_KEY_MAX);
    json_t *arr = rc ? NULL : json_array();
    if (!rc) rc = walk(db, c.tx, space_of(db, global), prefix ? prefix : "", add_key, arr);
    rc = tscall_end(&c, rc);
    if (rc) json_decref(arr);
    else *out_new = arr;
    return rc;
}

int ts_kv_count(ts_db *db, int global, int64_t *out)
{
    tscall c;
    int rc = tscall_begin(db, 0, &c);
    if (rc) return rc;
    if (!out) rc = tsenv_error(&db->env, TS_ERR_INVALID, "out is NULL");
    int64_t n = 0;
    if (!rc) rc = walk(db, c.tx, space_of(db, global), "", count_key, &n);
    rc = tscall_end(&c, rc);
    if (!rc) *out = n;
    return rc;
}

int tsapi_kv_purge_space(ts_db *db, tstx *tx, uint64_t id)
{
    uint8_t k[KBUF];
    size_t pl = ts_key_int(k, KBUF, 0, (int64_t)id);
    for (;;) {
        /* delete in batches through a fresh cursor each time */
        char keys[16][KV_KEY_MAX + 1];
        int64_t exps[16];
        int n = 0;
        tsix_cur c;
        int rc = tsix_cursor(db->sys.kv, tx, &c);
        if (rc) return rc;
        for (rc = tsix_seek(&c, k, pl, TS_SEEK_GE); rc == TS_OK && n < 16; rc = tsix_next(&c)) {
            const void *ek, *ev;
            size_t ekl, evl;
            if ((rc = tsix_entry(&c, &ek, &ekl, &ev, &evl))) break;
            if (ekl < pl || memcmp(ek, k, pl) != 0) break;
            size_t off = pl;
            ts_key_item t;
            if (ts_key_next(ek, ekl, &off, &t) != 1 || t.len > KV_KEY_MAX) { rc = TS_ERR_CORRUPT; break; }
            ts_key_unescape(&t, keys[n]);
            keys[n][t.len] = '\0';
            exps[n] = evl >= 9 ? get64s((const uint8_t *)ev + 1) : 0;
            n++;
        }
        tsix_cursor_close(&c);
        if (rc && rc != TS_ERR_NOT_FOUND) return rc;
        for (int i = 0; i < n; i++)
            if ((rc = remove_entry(db, tx, (int64_t)id, keys[i], exps[i]))) return rc;
        if (n < 16) return TS_OK;
    }
}
