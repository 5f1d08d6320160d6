#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "catalog/sys.h"

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

#define KEYCAP (2 * TSSYS_NAME_MAX + 32)

int tssys_valid_name(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n <= TSSYS_NAME_MAX;
}

size_t tssys_key(uint8_t *buf, const char *tag, const char *name)
{
    size_t n = ts_key_text(buf, KEYCAP, 0, tag, strlen(tag));
    if (name) n = ts_key_text(buf, KEYCAP, n, name, strlen(name));
    return n;
}

static int ensure_root(ts_env *env, tsreg *reg, tstx *tx, unsigned slot, uint64_t *root)
{
    int rc = tstx_sysroot_get(tx, slot, root);
    if (rc || *root) return rc;
    rc = tsix_create(env, reg, TSSYS_INDEX_MODULE, NULL, tx, root);
    if (!rc) rc = tstx_sysroot_set(tx, slot, *root);
    return rc;
}

static int put_u64(tsix *ix, tstx *tx, const uint8_t *k, size_t kl, uint64_t v)
{
    uint8_t b[8];
    put64(b, v);
    int rc = tsix_remove(ix, tx, k, kl, NULL, 0);
    if (rc && rc != TS_ERR_NOT_FOUND) return rc;
    return tsix_insert(ix, tx, k, kl, b, 8, 1);
}

static int get_u64(tsix *ix, tstx *tx, const uint8_t *k, size_t kl, uint64_t *v)
{
    void *val;
    size_t vl;
    int rc = tsix_get(ix, tx, k, kl, &val, &vl);
    if (rc) return rc;
    *v = vl == 8 ? get64(val) : 0;
    free(val);
    return vl == 8 ? TS_OK : TS_ERR_CORRUPT;
}

int tssys_open(ts_env *env, tsreg *reg, tspg *pg, tssys *sys)
{
    memset(sys, 0, sizeof *sys);
    if (!tsreg_lookup(reg, TS_KIND_INDEX, TSSYS_INDEX_MODULE))
        return TS_ERR_PLUGIN; /* no data layer: the caller decides */
    tstx *tx;
    uint64_t croot = 0, kroot = 0;
    int rc = tstx_begin(pg, 0, &tx);
    if (rc) return rc;
    tstx_sysroot_get(tx, TSSYS_ROOT_CATALOG, &croot);
    tstx_sysroot_get(tx, TSSYS_ROOT_KV, &kroot);
    tstx_rollback(tx);
    if (!croot || !kroot) {
        /* A new database: create both and the default space at once. */
        if ((rc = tstx_begin(pg, 1, &tx))) return rc;
        rc = ensure_root(env, reg, tx, TSSYS_ROOT_CATALOG, &croot);
        if (!rc) rc = ensure_root(env, reg, tx, TSSYS_ROOT_KV, &kroot);
        if (!rc) rc = tsix_open(env, reg, TSSYS_INDEX_MODULE, NULL, croot, "catalog", &sys->catalog);
        if (!rc) {
            uint64_t id;
            rc = tssys_space_create(sys, tx, "default", &id);
        }
        tsix_close(sys->catalog);
        sys->catalog = NULL;
        if (rc) { tstx_rollback(tx); return rc; }
        if ((rc = tstx_commit(tx))) return rc;
    }
    rc = tsix_open(env, reg, TSSYS_INDEX_MODULE, NULL, croot, "catalog", &sys->catalog);
    if (!rc) rc = tsix_open(env, reg, TSSYS_INDEX_MODULE, NULL, kroot, "kv", &sys->kv);
    if (rc) tssys_close(sys);
    return rc;
}

void tssys_close(tssys *sys)
{
    tsix_close(sys->catalog);
    tsix_close(sys->kv);
    sys->catalog = sys->kv = NULL;
}

int tssys_space_id(tssys *sys, tstx *tx, const char *name, uint64_t *id)
{
    uint8_t k[KEYCAP];
    return get_u64(sys->catalog, tx, k, tssys_key(k, "space", name), id);
}

int tssys_space_create(tssys *sys, tstx *tx, const char *name, uint64_t *id)
{
    uint8_t k[KEYCAP];
    size_t kl = tssys_key(k, "space", name);
    int rc = get_u64(sys->catalog, tx, k, kl, id);
    if (rc != TS_ERR_NOT_FOUND) return rc;
    uint8_t sk[KEYCAP];
    size_t skl = tssys_key(sk, "spaceseq", NULL);
    uint64_t next = TSSYS_SPACE_DEFAULT;
    rc = get_u64(sys->catalog, tx, sk, skl, &next);
    if (rc && rc != TS_ERR_NOT_FOUND) return rc;
    if (rc == TS_ERR_NOT_FOUND) next = TSSYS_SPACE_DEFAULT;
    *id = next;
    rc = put_u64(sys->catalog, tx, sk, skl, next + 1);
    if (!rc) rc = put_u64(sys->catalog, tx, k, kl, next);
    return rc;
}

int tssys_space_remove(tssys *sys, tstx *tx, const char *name)
{
    uint8_t k[KEYCAP];
    return tsix_remove(sys->catalog, tx, k, tssys_key(k, "space", name), NULL, 0);
}

typedef struct list_ctx { json_t *names; size_t pl; } list_ctx;

static int add_space(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)v; (void)vl;
    list_ctx *l = ctx;
    size_t off = l->pl;
    ts_key_item it;
    char name[TSSYS_NAME_MAX + 1];
    if (ts_key_next(k, kl, &off, &it) != 1 || it.tag != TS_KEY_TEXT || it.len > TSSYS_NAME_MAX)
        return TS_ERR_CORRUPT;
    ts_key_unescape(&it, name);
    name[it.len] = '\0';
    return json_array_append_new(l->names, json_string(name)) ? TS_ERR_NOMEM : TS_OK;
}

int tssys_space_list(tssys *sys, tstx *tx, json_t *names)
{
    uint8_t k[KEYCAP];
    list_ctx l = { names, tssys_key(k, "space", NULL) };
    return tsix_each_prefix(sys->catalog, tx, k, l.pl, add_space, &l);
}

int tssys_active_get(tssys *sys, tstx *tx, char *name_out, size_t cap)
{
    uint8_t k[KEYCAP];
    void *val;
    size_t vl;
    name_out[0] = '\0';
    int rc = tsix_get(sys->catalog, tx, k, tssys_key(k, "active", NULL), &val, &vl);
    if (rc == TS_ERR_NOT_FOUND) return TS_OK;
    if (rc) return rc;
    if (vl < cap) {
        memcpy(name_out, val, vl);
        name_out[vl] = '\0';
    }
    free(val);
    return TS_OK;
}

int tssys_active_set(tssys *sys, tstx *tx, const char *name)
{
    uint8_t k[KEYCAP];
    size_t kl = tssys_key(k, "active", NULL);
    int rc = tsix_remove(sys->catalog, tx, k, kl, NULL, 0);
    if (rc && rc != TS_ERR_NOT_FOUND) return rc;
    return name ? tsix_insert(sys->catalog, tx, k, kl, name, strlen(name), 1) : TS_OK;
}
