/*
 * chainhash - an example third-party index plugin, built out of tree
 * against the installed tostore SDK (see docs/plugins.md, "Walk-through:
 * the chainhash index example").  It passes the same conformance suite as
 * the bundled btree and hash indexes:
 *
 *   tests/index/test_index_conformance /path/to/chainhash.so
 *
 * The design is kept simple on purpose: a static hash table.  The root
 * (meta) page holds a fixed array of bucket heads, ~500 on 4 KiB pages;
 * each bucket is a chain of pages whose records are kept sorted by (key,
 * value), and values too large to sit next to their key go to a chain of
 * overflow pages.  A lookup reads the meta page and the bucket's chain.
 * With ~100 small entries per bucket page this stays fast to a few hundred
 * thousand entries; a production index grows its table instead (the
 * bundled hash plugin uses linear hashing).  The page format and the chain
 * operations are in chainhash_page.c, the layout in chainhash.h.
 *
 * What an index plugin is, in the order the kernel meets it:
 *
 *  1. Descriptors (bottom of this file).  The shared object exports one
 *     function, tostore_plugin (TS_PLUGIN_DEFINE), returning a constant
 *     ts_plugin: magic, the ABI version the plugin was compiled against
 *     (TS_ABI_MAJOR/MINOR: the kernel loads it when the major matches and
 *     the minor is not newer than its own) and sizeof of every struct, so
 *     an older or newer kernel knows which fields exist.  A module of kind
 *     TS_KIND_INDEX points to a ts_index_vtab; its caps say what cursors
 *     can do: chainhash sets TS_INDEX_UNIQUE but not TS_INDEX_ORDERED, so
 *     the kernel only asks it for equality lookups.
 *
 *  2. The host table.  create and open receive ts_module_args; args->host
 *     lends memory, error reporting and the page API (host->pages).  Check
 *     a struct's size before using a field a later ABI minor added; the
 *     plugin keeps the host, env and root it needs in its index object.
 *
 *  3. Transactions.  Every data callback gets a ts_txn the kernel owns:
 *     a write transaction for create, drop, insert and remove, a read or
 *     write one for cursors.  All pages are read and written through it, so
 *     rollback, crash recovery, snapshots for concurrent readers and page
 *     encryption come from the kernel; the plugin keeps nothing between
 *     calls except in its cursors.  After any failure inside a change the
 *     kernel rolls the transaction back.
 *
 *  4. One index object (idx) serves every transaction at once, from any
 *     thread: it holds only what open fixed plus an atomic change counter.
 *
 *  5. Cursors belong to one transaction.  Each keeps a copy of its entry
 *     (entry() pointers must stay valid until the cursor moves, even if
 *     the transaction changes the index meanwhile) and where it was.  When
 *     the change counter has moved since, the remembered page offset may
 *     be stale, so it finds the successor of its copied entry afresh.
 *
 * Iteration order: bucket by bucket, and by (key, value) inside a bucket.
 * So after seek(TS_SEEK_EQ) next() visits the key's other entries first.
 */
#include <stddef.h>
#include <string.h>
#include "chainhash.h"

/* ---- hashing -------------------------------------------------------- */

/* FNV-1a started from a per-index random seed (from host->random at
 * create), then mixed.  The seed spreads keys differently in each index;
 * an index facing hostile keys would use a keyed hash such as SipHash. */
static uint64_t key_hash(uint64_t seed, const uint8_t *k, size_t kl)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < kl; i++) h = (h ^ k[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ h >> 33;
}

/* Read the meta page: the bucket count and bucket b's head.  With k
 * non-NULL, b is the key's bucket; else the given *b is used (if in
 * range; *nb_out tells the count). */
static int meta_bucket(chx *x, ts_txn *t, const void *k, size_t kl, uint32_t *b,
                       uint64_t *head, uint32_t *nb_out)
{
    ts_page *pg;
    uint8_t *d;
    int rc = ch_page_get(x, t, x->root, TS_PAGE_READ, CH_MAGIC_META, &pg, &d);
    if (rc != TS_OK) return rc;
    uint32_t nb = ch_g32(d + CH_M_NBUCKETS);
    if (k) *b = (uint32_t)(key_hash(ch_g64(d + CH_M_SEED), k, kl) % nb);
    *head = *b < nb ? ch_g64(d + CH_M_HEADS + 8 * (size_t)*b) : 0;
    if (nb_out) *nb_out = nb;
    x->pg->release(pg);
    return TS_OK;
}

/* ---- create, open, close, drop -------------------------------------- */

/* The host table and page API this plugin needs (sizes first: a field is
 * there only when the struct is long enough to hold it). */
static int host_ok(const ts_module_args *a)
{
    const ts_host *h = a->host;
    if (h->struct_size < offsetof(ts_host, pages) + sizeof h->pages || !h->pages ||
        h->pages->struct_size < offsetof(ts_page_api, writable) + sizeof h->pages->writable)
        return h->error(a->env, TS_ERR_UNSUPPORTED, CH_NAME ": the kernel has no page API");
    return TS_OK;
}

static int chx_create(const ts_module_args *a, ts_txn *t, uint64_t *root_out)
{
    int rc = host_ok(a);
    if (rc != TS_OK) return rc;
    const ts_page_api *pages = a->host->pages;
    uint32_t usable = pages->usable_size(t);
    if (usable < CH_P_HDR + 2 * CH_REC_MAX)
        return a->host->error(a->env, TS_ERR_UNSUPPORTED, CH_NAME ": pages of %u usable bytes "
                              "are too small", usable);
    uint64_t seed;
    if ((rc = a->host->random(a->env, &seed, sizeof seed)) != TS_OK) return rc;
    ts_page *pg;
    if ((rc = pages->alloc(t, &pg, root_out)) != TS_OK) return rc;
    uint8_t *d = pages->data(pg); /* zeroed: every bucket empty */
    ch_p32(d, CH_MAGIC_META);
    ch_p32(d + CH_M_NBUCKETS, (usable - CH_M_HEADS) / 8);
    ch_p64(d + CH_M_SEED, seed);
    pages->release(pg);
    return TS_OK;
}

static int chx_open(const ts_module_args *a, uint64_t root, void **idx_out)
{
    int rc = host_ok(a);
    if (rc != TS_OK) return rc;
    chx *x = a->host->calloc(1, sizeof *x);
    if (!x) return a->host->error(a->env, TS_ERR_NOMEM, CH_NAME ": out of memory");
    x->host = a->host; /* valid until close */
    x->pg = a->host->pages;
    x->env = a->env;
    x->root = root;
    atomic_init(&x->gen, 0);
    *idx_out = x;
    return TS_OK;
}

static void chx_close(void *idx)
{
    chx *x = idx;
    x->host->free(x);
}

static int chx_drop(void *idx, ts_txn *t)
{
    chx *x = idx;
    atomic_fetch_add(&x->gen, 1);
    uint32_t nb = 1;
    for (uint32_t b = 0; b < nb; b++) {
        uint64_t head;
        int rc = meta_bucket(x, t, NULL, 0, &b, &head, &nb);
        if (rc == TS_OK && head) rc = ch_chain_free(x, t, head);
        if (rc != TS_OK) return rc;
    }
    return x->pg->free(t, x->root);
}

/* ---- insert and remove ---------------------------------------------- */

static int check_sizes(chx *x, size_t kl, size_t vl)
{
    if (kl > TS_INDEX_KEY_MAX)
        return x->host->error(x->env, TS_ERR_VALIDATION, CH_NAME ": key of %zu bytes (at most %d)",
                              kl, TS_INDEX_KEY_MAX);
    if (vl > CH_VAL_MAX)
        return x->host->error(x->env, TS_ERR_VALIDATION, CH_NAME ": value of %zu bytes (at most "
                              "%u)", vl, CH_VAL_MAX);
    return TS_OK;
}

static int chx_insert(void *idx, ts_txn *t, const void *key, size_t kl, const void *val,
                      size_t vl, int unique)
{
    chx *x = idx;
    int rc = check_sizes(x, kl, vl);
    if (rc != TS_OK) return rc;
    atomic_fetch_add(&x->gen, 1);
    uint32_t b;
    uint64_t head;
    if ((rc = meta_bucket(x, t, key, kl, &b, &head, NULL)) != TS_OK) return rc;
    /* Unique: any entry of the key clashes.  Otherwise only the same pair;
     * the search by (key, value) also gives the place to insert at. */
    chpos pos;
    int match;
    if ((rc = ch_find(x, t, head, key, kl, val, vl, !unique, &pos, &match)) != TS_OK) return rc;
    if (match)
        return x->host->error(x->env, TS_ERR_UNIQUE, unique ? CH_NAME ": the key exists"
                                                            : CH_NAME ": the entry exists");
    uint8_t rec[CH_REC_MAX];
    size_t len = CH_R_HDR + kl;
    rec[0] = (uint8_t)kl;
    rec[1] = (uint8_t)(kl >> 8);
    if (kl) memcpy(rec + CH_R_HDR, key, kl);
    if (len + vl <= CH_REC_MAX) { /* the value fits next to its key */
        ch_p32(rec + 2, (uint32_t)vl);
        if (vl) memcpy(rec + len, val, vl);
        len += vl;
    } else {
        uint64_t first;
        if ((rc = ch_val_write(x, t, val, vl, &first)) != TS_OK) return rc;
        ch_p32(rec + 2, (uint32_t)vl | CH_R_OVF);
        ch_p64(rec + len, first);
        len += 8;
    }
    return ch_rec_insert(x, t, b, &pos, rec, len);
}

static int chx_remove(void *idx, ts_txn *t, const void *key, size_t kl, const void *val,
                      size_t vl)
{
    chx *x = idx;
    if (kl > TS_INDEX_KEY_MAX) return TS_ERR_NOT_FOUND;
    atomic_fetch_add(&x->gen, 1);
    /* With val NULL: delete the key's first entry until none is left. */
    for (int removed = 0;; removed++) {
        uint32_t b;
        uint64_t head;
        chpos pos;
        int match;
        int rc = meta_bucket(x, t, key, kl, &b, &head, NULL);
        if (rc == TS_OK) rc = ch_find(x, t, head, key, kl, val, vl, val != NULL, &pos, &match);
        if (rc != TS_OK) return rc;
        if (!match) return removed ? TS_OK : TS_ERR_NOT_FOUND;
        if ((rc = ch_rec_delete(x, t, b, &pos)) != TS_OK) return rc;
        if (val) return TS_OK;
    }
}

/* ---- cursors -------------------------------------------------------- */

typedef struct chcur {
    chx      *x;
    ts_txn   *t;
    int       on;     /* on an entry: bucket, pos, key and val describe it */
    uint32_t  bucket;
    chpos     pos;
    uint64_t  gen;    /* x->gen when pos was found */
    uint8_t   key[TS_INDEX_KEY_MAX];
    size_t    kl;
    uint8_t  *val;    /* host memory, grown as needed */
    size_t    vl, vcap;
} chcur;

static int chx_cursor_open(void *idx, ts_txn *t, void **cur_out)
{
    chx *x = idx;
    chcur *c = x->host->calloc(1, sizeof *c);
    if (!c) return x->host->error(x->env, TS_ERR_NOMEM, CH_NAME ": out of memory");
    c->x = x;
    c->t = t;
    *cur_out = c;
    return TS_OK;
}

static void chx_cursor_close(void *cur)
{
    chcur *c = cur;
    c->x->host->free(c->val);
    c->x->host->free(c);
}

/* Land on the record at pos of bucket b: copy it into the cursor. */
static int load(chcur *c, uint32_t b, const chpos *pos)
{
    chx *x = c->x;
    ts_page *pg;
    uint8_t *d;
    c->on = 0;
    int rc = ch_page_get(x, c->t, pos->pgno, TS_PAGE_READ, CH_MAGIC_BKT, &pg, &d);
    if (rc != TS_OK) return rc;
    chrec r;
    ch_rec_parse(d, pos->off, &r);
    if (r.vl > c->vcap) {
        uint8_t *nv = x->host->realloc(c->val, r.vl);
        if (!nv) {
            x->pg->release(pg);
            return x->host->error(x->env, TS_ERR_NOMEM, CH_NAME ": out of memory");
        }
        c->val = nv;
        c->vcap = r.vl;
    }
    memcpy(c->key, r.k, r.kl);
    c->kl = r.kl;
    c->vl = r.vl;
    rc = ch_val_read(x, c->t, &r, c->val);
    x->pg->release(pg);
    if (rc != TS_OK) return rc;
    c->bucket = b;
    c->pos = *pos;
    c->gen = atomic_load(&x->gen);
    c->on = 1;
    return TS_OK;
}

/* The first record of the first non-empty bucket from b upwards (dir 1),
 * or the last record of the last one from b downwards (dir -1). */
static int land_in_bucket(chcur *c, int64_t b, int dir)
{
    uint32_t nb, ub = UINT32_MAX;
    uint64_t head;
    c->on = 0;
    int rc = meta_bucket(c->x, c->t, NULL, 0, &ub, &head, &nb); /* just the count */
    if (rc != TS_OK) return rc;
    if (b >= (int64_t)nb) b = dir < 0 ? (int64_t)nb - 1 : (int64_t)nb;
    for (; b >= 0 && b < (int64_t)nb; b += dir) {
        ub = (uint32_t)b;
        if ((rc = meta_bucket(c->x, c->t, NULL, 0, &ub, &head, NULL)) != TS_OK) return rc;
        if (!head) continue;
        chpos pos = { head, 0, 0, 1 };
        int found = 1;
        if (dir < 0 && (rc = ch_find_before(c->x, c->t, head, NULL, 0, NULL, 0, &pos, &found)))
            return rc;
        if (found) return load(c, ub, &pos);
    }
    return TS_ERR_NOT_FOUND;
}

static int chx_first(void *cur) { return land_in_bucket(cur, 0, 1); }
static int chx_last(void *cur) { return land_in_bucket(cur, UINT32_MAX, -1); }

static int chx_next(void *cur)
{
    chcur *c = cur;
    if (!c->on) return TS_ERR_NOT_FOUND;
    chpos pos = c->pos;
    int rc;
    if (c->gen == atomic_load(&c->x->gen)) {
        rc = ch_step(c->x, c->t, &pos); /* nothing changed: the next record */
    } else {
        /* The index changed since: find the first record after our copy. */
        uint64_t head;
        int match;
        rc = meta_bucket(c->x, c->t, NULL, 0, &c->bucket, &head, NULL);
        if (rc == TS_OK)
            rc = ch_find(c->x, c->t, head, c->key, c->kl, c->val, c->vl, 1, &pos, &match);
        if (rc == TS_OK && match) rc = ch_step(c->x, c->t, &pos);
    }
    if (rc != TS_OK) return rc;
    if (pos.at) return load(c, c->bucket, &pos);
    return land_in_bucket(c, (int64_t)c->bucket + 1, 1);
}

static int chx_prev(void *cur)
{
    chcur *c = cur;
    if (!c->on) return TS_ERR_NOT_FOUND;
    uint64_t head;
    chpos pos;
    int found;
    int rc = meta_bucket(c->x, c->t, NULL, 0, &c->bucket, &head, NULL);
    if (rc == TS_OK)
        rc = ch_find_before(c->x, c->t, head, c->key, c->kl, c->val, c->vl, &pos, &found);
    if (rc != TS_OK) return rc;
    if (found) return load(c, c->bucket, &pos);
    return land_in_bucket(c, (int64_t)c->bucket - 1, -1);
}

static int chx_seek(void *cur, const void *key, size_t kl, int mode)
{
    chcur *c = cur;
    c->on = 0;
    if (mode != TS_SEEK_EQ)
        return c->x->host->error(c->x->env, TS_ERR_UNSUPPORTED, CH_NAME ": an unordered index "
                                 "only seeks equal keys");
    if (kl > TS_INDEX_KEY_MAX) return TS_ERR_NOT_FOUND;
    uint32_t b;
    uint64_t head;
    chpos pos;
    int match;
    int rc = meta_bucket(c->x, c->t, key, kl, &b, &head, NULL);
    if (rc == TS_OK) rc = ch_find(c->x, c->t, head, key, kl, NULL, 0, 0, &pos, &match);
    if (rc != TS_OK) return rc;
    return match ? load(c, b, &pos) : TS_ERR_NOT_FOUND;
}

static int chx_entry(void *cur, const void **key, size_t *klen, const void **val, size_t *vlen)
{
    chcur *c = cur;
    if (!c->on)
        return c->x->host->error(c->x->env, TS_ERR_NOT_FOUND, CH_NAME ": the cursor is not on "
                                 "an entry");
    if (key) *key = c->key;
    if (klen) *klen = c->kl;
    if (val) *val = c->val;
    if (vlen) *vlen = c->vl;
    return TS_OK;
}

/* ---- descriptors ---------------------------------------------------- */

/* Optional callbacks (bulk_load, seek_entry, knn) stay NULL: the kernel
 * then inserts one by one and never asks for ordered or vector searches. */
static const ts_index_vtab chainhash_vtab = {
    .struct_size = sizeof(ts_index_vtab),
    .caps = TS_INDEX_UNIQUE,
    .create = chx_create,
    .open = chx_open,
    .close = chx_close,
    .drop = chx_drop,
    .insert = chx_insert,
    .remove = chx_remove,
    .cursor_open = chx_cursor_open,
    .cursor_close = chx_cursor_close,
    .seek = chx_seek,
    .first = chx_first,
    .last = chx_last,
    .next = chx_next,
    .prev = chx_prev,
    .entry = chx_entry,
};

static const ts_module chainhash_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_INDEX,
    .name = CH_NAME,
    .version = "1.0.0",
    .flags = TS_MODULE_THREAD_SAFE, /* idx is immutable but for an atomic */
    .vtab_size = sizeof(ts_index_vtab),
    .vtab = &chainhash_vtab,
};

static const ts_module *const chainhash_modules[] = { &chainhash_module, NULL };

static const ts_plugin chainhash_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = CH_NAME,
    .version = "1.0.0",
    .modules = chainhash_modules,
};

TS_PLUGIN_DEFINE(chainhash_plugin)
