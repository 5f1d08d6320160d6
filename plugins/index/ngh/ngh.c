/*
 * ngh - a vector index module (kind TS_KIND_INDEX, caps TS_INDEX_VECTOR):
 * an HNSW graph (Malkov & Yashunin) stored in kernel pages.  docs/ngh.md
 * gives the design; this file holds the vtable: options, create/open/drop,
 * insert/remove, knn with filters, cursors, and the free list of deleted
 * node ids ('F' entries of the btree map).  Primary keys: ngh_keys.c.
 *
 * Threads: the index object holds the options, the distance kernels, and
 * (under its mutex) a pool of search scratch (visited arrays, heaps), the
 * btree handle (opened on first use; its root never moves) and the knn
 * result buffers.  Nothing about the graph is cached: every operation reads
 * its transaction's pages, so readers see their snapshot while a writer
 * inserts, and a rollback needs no help from here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ngh.h"


/* The free list: 'F' id entries of the map, one per deleted node whose id
 * a later insert may take over (lowest id first).  Ids are taken over only
 * while deleted nodes are a quarter of all or more: below that they stay
 * in the graph as routing nodes (as hnswlib's markDelete), because a reused
 * id keeps the non-mutual in-edges of the vector it replaces.  1M vectors,
 * 20% deleted then as many inserted: recall fell 0.015 at ef 16 when every
 * insert reused an id.  So an index holds at most a third more nodes than
 * live entries, and space comes back once deletes pass that. */
static int free_pop(ngh_op *o, uint32_t *id)
{
    ngh_idx *ix = o->ix;
    void *cur;
    *id = NGH_NONE;
    if (!o->m.deleted || (uint64_t)o->m.deleted * 4 < o->m.count) return TS_OK;
    int rc = ix->btv->cursor_open(ix->bt, o->tx, &cur);
    if (rc) return rc;
    rc = ix->btv->seek(cur, "F", 1, TS_SEEK_GE);
    if (!rc) {
        const void *ek, *ev;
        size_t ekl, evl;
        if (!(rc = ix->btv->entry(cur, &ek, &ekl, &ev, &evl)) && ekl == 5 && ((const uint8_t *)ek)[0] == 'F')
            *id = ngh_gbe32((const uint8_t *)ek + 1);
    }
    ix->btv->cursor_close(cur);
    if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
    if (!rc && *id != NGH_NONE) {
        uint8_t k[5];
        rc = ix->btv->remove(ix->bt, o->tx, k, ngh_fkey(k, *id), "", 0);
    }
    return rc;
}

/* ---- options ------------------------------------------------------------ */

typedef struct ngh_cfg {
    uint32_t dim, M, efc, efs, format, beam_nodes, build_links;
    int split;   /* parameters.splitRecords: -1 absent, else the boolean */
    int metric, precision, keys_quantized;
    uint64_t cache_bytes, seed;   /* seed 0: drawn at create */
} ngh_cfg;

/* Integer option key in lo..hi into *out (left as it is when absent). */
static int opt_int_in(const ts_host *h, ts_env *env, const ts_opts *o, const char *key, int64_t lo,
                      int64_t hi, int64_t *out, int required)
{
    int64_t v;
    int rc = h->opt_int(env, o, key, &v);
    if (rc == TS_ERR_NOT_FOUND) {
        if (required) return h->error(env, TS_ERR_CONFIG, "ngh: option '%s' is required", key);
        return TS_OK;
    }
    if (rc) return rc;
    if (v < lo || v > hi)
        return h->error(env, TS_ERR_CONFIG, "ngh: option '%s' must be %lld..%lld (got %lld)", key,
                        (long long)lo, (long long)hi, (long long)v);
    *out = v;
    return TS_OK;
}

static int opt_range(const ts_host *h, ts_env *env, const ts_opts *o, const char *key, int64_t lo,
                     int64_t hi, uint32_t *out, int required)
{
    int64_t v = *out;
    int rc = opt_int_in(h, env, o, key, lo, hi, &v, required);
    *out = (uint32_t)v;
    return rc;
}

static int opt_u64(const ts_host *h, ts_env *env, const ts_opts *o, const char *key, int64_t lo,
                   uint64_t *out)
{
    int64_t v = (int64_t)*out;
    int rc = opt_int_in(h, env, o, key, lo, INT64_MAX, &v, 0);
    *out = (uint64_t)v;
    return rc;
}

static int parse_opts(const ts_host *h, ts_env *env, const ts_opts *o, ngh_cfg *c)
{
    c->dim = 0;
    c->M = 16;
    c->efc = 200;
    c->efs = 64;
    c->metric = NGH_COSINE;
    c->precision = NGH_F32;
    c->keys_quantized = 0;
    c->cache_bytes = NGH_CACHE_BYTES;
    c->format = NGH_FORMAT;
    c->split = -1;
    c->seed = 0;
    c->beam_nodes = NGH_BEAM_NODES;
    c->build_links = NGH_BUILD_LINKS_DEFAULT;
    const char *key;
    for (size_t i = 0; h->opt_key_at(o, i, &key) == TS_OK; i++)
        if (strcmp(key, "dimensions") && strcmp(key, "precision") && strcmp(key, "distanceMetric") &&
            strcmp(key, "parameters") && strcmp(key, "keysQuantized") && strcmp(key, "cacheBytes") &&
            strcmp(key, "format") && strcmp(key, "upperBeamNodes"))
            return h->error(env, TS_ERR_CONFIG, "ngh: unknown option '%s'", key);
    int rc = opt_range(h, env, o, "dimensions", 1, 16384, &c->dim, 1);
    if (rc) return rc;
    /* the format a create writes: 1 only to test that such indexes are read */
    if ((rc = opt_range(h, env, o, "format", 1, NGH_FORMAT, &c->format, 0))) return rc;
    /* the layer-1 size from which searches walk it with a beam (tests) */
    if ((rc = opt_range(h, env, o, "upperBeamNodes", 1, UINT32_MAX, &c->beam_nodes, 0))) return rc;
    const char *s;
    rc = h->opt_string(env, o, "distanceMetric", &s);
    if (rc == TS_OK) {
        if (!strcmp(s, "cosine")) c->metric = NGH_COSINE;
        else if (!strcmp(s, "l2")) c->metric = NGH_L2;
        else if (!strcmp(s, "innerProduct")) c->metric = NGH_IP;
        else return h->error(env, TS_ERR_CONFIG, "ngh: distanceMetric '%s' (use cosine, l2 or innerProduct)", s);
    } else if (rc != TS_ERR_NOT_FOUND) return rc;
    rc = h->opt_string(env, o, "precision", &s);
    if (rc == TS_OK) {
        if (!strcmp(s, "float32")) c->precision = NGH_F32;
        else if (!strcmp(s, "float16")) c->precision = NGH_F16;
        else if (!strcmp(s, "int8")) c->precision = NGH_I8;
        else return h->error(env, TS_ERR_CONFIG, "ngh: precision '%s' (use float32, float16 or int8)", s);
    } else if (rc != TS_ERR_NOT_FOUND) return rc;
    rc = h->opt_bool(env, o, "keysQuantized", &c->keys_quantized);
    if (rc && rc != TS_ERR_NOT_FOUND) return rc;
    if ((rc = opt_u64(h, env, o, "cacheBytes", 0, &c->cache_bytes))) return rc;
    const ts_opts *p;
    rc = h->opt_object(env, o, "parameters", &p);
    if (rc == TS_OK) {
        for (size_t i = 0; h->opt_key_at(p, i, &key) == TS_OK; i++)
            if (strcmp(key, "M") && strcmp(key, "efConstruction") && strcmp(key, "efSearch") &&
                strcmp(key, "seed") && strcmp(key, "splitRecords") && strcmp(key, "buildLinks"))
                return h->error(env, TS_ERR_CONFIG, "ngh: unknown parameter '%s'", key);
        if ((rc = opt_range(h, env, p, "M", 2, 256, &c->M, 0))) return rc;
        if ((rc = opt_range(h, env, p, "efConstruction", 1, 100000, &c->efc, 0))) return rc;
        if ((rc = opt_range(h, env, p, "efSearch", 1, 100000, &c->efs, 0))) return rc;
        /* ids an insert's beam reads at the head of each layer-0 list (0:
         * every id); read at every open, like efSearch */
        if ((rc = opt_range(h, env, p, "buildLinks", 0, 512, &c->build_links, 0))) return rc;
        /* the seed of the levels (drawn at create when absent): the same
         * rows inserted in the same order then give the same graph */
        if ((rc = opt_u64(h, env, p, "seed", 1, &c->seed))) return rc;
        /* float32 vectors split between record and tail (format 3): true
         * wherever that saves a tenth of the pages, false never; absent,
         * only where a whole record would not fit a page */
        int b = 0;
        rc = h->opt_bool(env, p, "splitRecords", &b);
        if (rc == TS_OK) c->split = b != 0;
        else if (rc != TS_ERR_NOT_FOUND) return rc;
        if (c->split > 0 && c->format < 3)
            return h->error(env, TS_ERR_CONFIG, "ngh: splitRecords needs format 3 (format is %u)", c->format);
    } else if (rc != TS_ERR_NOT_FOUND) return rc;
    if (c->efc < c->M) c->efc = c->M;
    return TS_OK;
}

static int find_btree(const ts_host *h, ts_env *env, const ts_index_vtab **vt, void **state)
{
    const ts_module *m;
    int rc = h->module_find(env, TS_KIND_INDEX, "btree", &m, state);
    if (rc) return h->error(env, TS_ERR_PLUGIN, "ngh: needs the btree index module, which is not loaded");
    *vt = m->vtab;
    return TS_OK;
}

/* ---- create / open / close / drop ----------------------------------------------- */

static int ngh_create(const ts_module_args *args, ts_txn *txn, uint64_t *root_out)
{
    const ts_host *h = args->host;
    ngh_cfg c;
    int rc = parse_opts(h, args->env, args->opts, &c);
    if (rc) return rc;
    if (!h->pages || !txn || !h->pages->writable(txn))
        return h->error(args->env, TS_ERR_INVALID, "ngh: create needs a write transaction");
    const ts_index_vtab *btv = NULL;
    void *bst = NULL;
    if ((rc = find_btree(h, args->env, &btv, &bst))) return rc;
    ts_page *pg;
    uint64_t root, btroot, seed;
    if ((rc = h->pages->alloc(txn, &pg, &root))) return rc;
    ts_module_args ba = { sizeof ba, h, args->env, NULL, bst };
    if ((rc = btv->create(&ba, txn, &btroot))) { h->pages->release(pg); return rc; }
    if (c.seed) seed = c.seed;
    else if ((rc = h->random(args->env, &seed, sizeof seed))) { h->pages->release(pg); return rc; }
    rc = ngh_meta_init(h->pages->data(pg), h->pages->usable_size(txn), c.dim, c.metric, c.precision,
                       c.keys_quantized, c.M, c.efc, seed, btroot, c.format, c.split);
    h->pages->release(pg);
    if (rc)
        return h->error(args->env, TS_ERR_UNSUPPORTED, "ngh: M=%u does not fit the page size",
                        c.M);
    *root_out = root;
    return TS_OK;
}

static int ngh_open(const ts_module_args *args, uint64_t root, void **idx_out)
{
    const ts_host *h = args->host;
    ngh_cfg c;
    int rc = parse_opts(h, args->env, args->opts, &c);
    if (rc) return rc;
    ngh_idx *ix = h->calloc(1, sizeof *ix);
    if (!ix) return h->error(args->env, TS_ERR_NOMEM, "ngh: out of memory");
    ix->host = h;
    ix->env = args->env;
    ix->pa = h->pages;
    ix->kpf = ix->pa->struct_size >= offsetof(ts_page_api, prefetch) + sizeof ix->pa->prefetch &&
              ix->pa->prefetch;
    ix->root = root;
    ix->dim = c.dim;
    ix->M = c.M;
    ix->efc = c.efc;
    ix->efs = c.efs;
    ix->cache_bytes = c.cache_bytes;
    ix->beam_nodes = c.beam_nodes;
    ix->build_links = c.build_links;
    ix->metric = c.metric;
    ix->precision = c.precision;
    ngh_dist_pick(&ix->k, 3, c.precision);
    if ((rc = find_btree(h, args->env, &ix->btv, &ix->btplugin_state))) { h->free(ix); return rc; }
    while (!ix->tag)
        if ((rc = h->random(args->env, &ix->tag, sizeof ix->tag))) { h->free(ix); return rc; }
    if (pthread_mutex_init(&ix->mu, NULL)) { h->free(ix); return h->error(args->env, TS_ERR_NOMEM, "ngh: mutex"); }
    /* timed waits on a monotonic clock: a clock step must not stretch them */
    pthread_condattr_t ca;
    int crc = pthread_condattr_init(&ca);
    if (!crc) {
        crc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if (!crc) crc = pthread_cond_init(&ix->idle, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (crc) {
        pthread_mutex_destroy(&ix->mu);
        h->free(ix);
        return h->error(args->env, TS_ERR_NOMEM, "ngh: condition variable");
    }
    *idx_out = ix;
    return TS_OK;
}

static void ngh_close(void *idx)
{
    ngh_idx *ix = idx;
    if (!ix) return;
    if (ix->bt) ix->btv->close(ix->bt);
    ngh_pool_free(ix);
    ngh_wcache_reset(ix);   /* first: it may reference the read cache */
    ngh_snap_free(ix, ix->snap);
    for (int i = 0; i < NGH_RESBUFS; i++) ix->host->free(ix->res[i].buf);
    pthread_cond_destroy(&ix->idle);
    pthread_mutex_destroy(&ix->mu);
    ix->host->free(ix);
}

/* The btree handle of the primary-key map (root from the meta page). */
static int bt_ready(ngh_op *o)
{
    ngh_idx *ix = o->ix;
    int rc = TS_OK;
    /* set once, then only read: no lock on every operation */
    if (__atomic_load_n(&ix->bt, __ATOMIC_ACQUIRE)) return TS_OK;
    pthread_mutex_lock(&ix->mu);
    if (!ix->bt) {
        ts_module_args ba = { sizeof ba, ix->host, ix->env, NULL, ix->btplugin_state };
        void *bt = NULL;
        rc = ix->btv->open(&ba, o->m.btroot, &bt);
        if (!rc) __atomic_store_n(&ix->bt, bt, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

static int op_begin(ngh_op *o, ngh_idx *ix, ts_txn *tx, int write)
{
    int rc = ngh_op_begin(o, ix, tx, write);
    if (rc) return rc;
    if ((rc = bt_ready(o))) ngh_op_end(o);
    return rc;
}

static int ngh_drop(void *idx, ts_txn *txn)
{
    ngh_idx *ix = idx;
    ngh_op o;
    int rc = op_begin(&o, ix, txn, 1);
    if (rc) return rc;
    ngh_wcache_clear(&o);
    rc = ngh_free_pages(&o);
    ngh_op_end(&o);
    if (!rc) rc = ix->btv->drop(ix->bt, txn);
    if (!rc) rc = ix->pa->free(txn, ix->root);
    return rc;
}

static int check_vec(ngh_idx *ix, const void *key, size_t klen)
{
    if (klen != (size_t)ix->dim * 4)
        return ix->host->error(ix->env, TS_ERR_VALIDATION, "ngh: a vector of %zu bytes, expected %u "
                               "dimensions (%u bytes)", klen, ix->dim, ix->dim * 4);
    const uint8_t *b = key;
    for (uint32_t i = 0; i < ix->dim; i++) {
        float f;
        memcpy(&f, b + 4 * i, 4);
        if (!isfinite(f))
            return ix->host->error(ix->env, TS_ERR_VALIDATION, "ngh: element %u of the vector is not a finite number", i);
    }
    return TS_OK;
}

/* A query of dim floats: the index's dimensions, every element finite. */
static int check_query(ngh_idx *ix, const float *q, size_t dim)
{
    if (dim != ix->dim)
        return ix->host->error(ix->env, TS_ERR_VALIDATION, "ngh: query of %zu dimensions, the index has %u",
                               dim, ix->dim);
    return check_vec(ix, q, dim * 4);
}

static int ngh_insert(void *idx, ts_txn *txn, const void *key, size_t klen, const void *val,
                      size_t vlen, int unique)
{
    ngh_idx *ix = idx;
    int rc = check_vec(ix, key, klen);
    if (rc) return rc;
    if (vlen > NGH_PK_MAX || (!val && vlen))
        return ix->host->error(ix->env, TS_ERR_VALIDATION, "ngh: value of %zu bytes", vlen);
    ngh_op o;
    if ((rc = op_begin(&o, ix, txn, 1))) return rc;
    uint32_t found = 0, id;
    rc = ngh_find_matches(&o, key, klen, unique ? NULL : val, vlen, NULL, NULL, &found);
    if (!rc && found) rc = ix->host->error(ix->env, TS_ERR_UNIQUE, "ngh: the entry exists");
    uint32_t reuse = NGH_NONE;
    if (o.bcur) { ix->btv->cursor_close(o.bcur); o.bcur = NULL; } /* the map changes below */
    if (!rc) rc = free_pop(&o, &reuse);
    if (!rc) {
        float *v = ix->host->alloc(klen);
        if (!v) rc = ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory");
        else {
            memcpy(v, key, klen);
            rc = ngh_graph_insert(&o, v, reuse, &id);
            ix->host->free(v);
        }
    }
    if (o.bcur) { ix->btv->cursor_close(o.bcur); o.bcur = NULL; }
    if (!rc) rc = ngh_pk_put(&o, id, key, klen, val ? val : "", vlen);
    ngh_op_end(&o);
    return rc;
}

static int remove_one(ngh_op *o, uint32_t id, void *ctx)
{
    ngh_idx *ix = o->ix;
    const uint8_t *key = ctx;
    const void *pk;
    size_t pkl;
    int rc = ngh_pk_of(o, id, &pk, &pkl);
    if (rc) return rc;
    uint8_t *pkc = ix->host->alloc(pkl ? pkl : 1);
    if (!pkc) return ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory");
    memcpy(pkc, pk, pkl);
    ix->btv->cursor_close(o->bcur);
    o->bcur = NULL;
    uint8_t *rec, k[5];
    ngh_op_relax(o);
    if (!(rc = ngh_node(o, id, 1, &rec))) {
        rec[NR_FLAGS] |= NR_DELETED;
        o->m.live--;
        o->m.deleted++;
        rc = ngh_pk_drop(o, id, key, pkc, pkl);
        if (!rc) rc = ix->btv->insert(ix->bt, o->tx, k, ngh_fkey(k, id), "", 0, 1);
    }
    ix->host->free(pkc);
    return rc;
}

static int ngh_remove(void *idx, ts_txn *txn, const void *key, size_t klen, const void *val,
                      size_t vlen)
{
    ngh_idx *ix = idx;
    int rc = check_vec(ix, key, klen);
    if (rc) return rc;
    ngh_op o;
    if ((rc = op_begin(&o, ix, txn, 1))) return rc;
    uint32_t found = 0;
    /* count first (nothing changes when there is no entry), then remove */
    rc = ngh_find_matches(&o, key, klen, val, vlen, NULL, NULL, &found);
    if (!rc && !found) rc = ix->host->error(ix->env, TS_ERR_NOT_FOUND, "ngh: no such entry");
    if (!rc) rc = ngh_find_matches(&o, key, klen, val, vlen, remove_one, (void *)key, &found);
    ngh_op_end(&o);
    return rc;
}

/* ---- knn --------------------------------------------------------------------------- */

typedef struct kctx {
    int (*filter)(void *ctx, const void *val, size_t vlen);
    void *fctx;
    uint32_t calls, passes, ef, count;
} kctx;

static int accept(void *ctx, ngh_op *o, uint32_t id)
{
    kctx *c = ctx;
    uint8_t *rec;
    int rc = ngh_node(o, id, 0, &rec);
    if (rc) return rc;
    if (rec[NR_FLAGS] & NR_DELETED) return 0;
    if (!c->filter) return 1;
    const void *pk;
    size_t pl;
    if ((rc = ngh_pk_of(o, id, &pk, &pl))) return rc;
    c->calls++;
    rc = c->filter(c->fctx, pk, pl);
    if (rc < 0) return rc;
    if (rc) c->passes++;
    /* Selective filter: at the pass rate seen so far, filling the beam would
     * visit more than an eighth of the index; the exact scan over the
     * filtered entries is cheaper (and exact). */
    if (c->calls >= 128 && c->calls % 32 == 0 &&
        (uint64_t)(c->passes + 1) * (c->count / 8) < (uint64_t)c->ef * c->calls)
        return NGH_GIVE_UP;
    return rc != 0;
}

/* Exact search over every live node the filter keeps: the k nearest into
 * out (sorted).  Walks the node array in id order, so pages are read in
 * order. */
static int exact_scan(ngh_op *o, const float *q, uint32_t k, kctx *c, ngh_cand *out, uint32_t *nout)
{
    ngh_idx *ix = o->ix;
    ngh_cand *h = ix->host->alloc((size_t)(k + 1) * sizeof *h);
    if (!h) return ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory");
    int rc = TS_OK;
    uint32_t n = 0;
    for (uint32_t id = 0; id < o->m.count && !rc; id++) {
        if (id % 64 == 0) ngh_op_relax(o);
        uint8_t *rec;
        if ((rc = ngh_node(o, id, 0, &rec)) || (rec[NR_FLAGS] & NR_DELETED)) continue;
        if (c->filter) {
            const void *pk;
            size_t pl;
            if ((rc = ngh_pk_of(o, id, &pk, &pl))) break;
            int keep = c->filter(c->fctx, pk, pl);
            if (keep < 0) { rc = keep; break; }
            if (!keep) continue;
        }
        float d;
        if ((rc = ngh_exact_dist(o, q, id, rec, &d))) break;
        /* max-heap of the k best */
        if (n < k) ngh_heap_push_max(h, &n, (ngh_cand){ d, id });
        else if (d < h[0].d) ngh_heap_replace_max(h, n, (ngh_cand){ d, id });
    }
    if (!rc) {
        memcpy(out, h, (size_t)n * sizeof *h);
        for (uint32_t i = 1; i < n; i++) { /* insertion sort: k is small */
            ngh_cand x = out[i];
            uint32_t j = i;
            while (j && (out[j - 1].d > x.d || (out[j - 1].d == x.d && out[j - 1].id > x.id))) {
                out[j] = out[j - 1];
                j--;
            }
            out[j] = x;
        }
        *nout = n;
    }
    ix->host->free(h);
    return rc;
}

/* Hand the values to the transaction's result buffer (valid until its next
 * knn call on this index).  Buffers are kept per transaction pointer, at
 * most NGH_RESBUFS of them; the least recently used is recycled. */
static void res_publish(ngh_idx *ix, ts_txn *tx, uint8_t *buf, size_t cap)
{
    pthread_mutex_lock(&ix->mu);
    int slot = -1, lru = 0;
    for (int i = 0; i < NGH_RESBUFS; i++) {
        if (ix->res[i].tx == tx) { slot = i; break; }
        if (ix->res[i].stamp < ix->res[lru].stamp) lru = i;
    }
    if (slot < 0) slot = lru;
    uint8_t *old = ix->res[slot].buf;
    ix->res[slot] = (ngh_resbuf){ tx, buf, cap, ++ix->stamp };
    pthread_mutex_unlock(&ix->mu);
    ix->host->free(old);
}

/* The search of knn and knn_emit: the hits, nearest first, into *res_out
 * (host->alloc'd, the caller frees) and *nr.  On success o is left open
 * for the hits' primary keys (the caller ends it); on error it is not. */
static int knn_search(ngh_idx *ix, ts_txn *txn, ngh_op *o, const float *q, size_t dim, size_t k, int ef,
                      int (*filter)(void *ctx, const void *val, size_t vlen), void *fctx,
                      ngh_cand **res_out, uint32_t *nr_out)
{
    *res_out = NULL;
    *nr_out = 0;
    int rc = check_query(ix, q, dim);
    if (rc) return rc;
    if (k > 1000000) return ix->host->error(ix->env, TS_ERR_RANGE, "ngh: k = %zu is too large", k);
    if ((rc = op_begin(o, ix, txn, 0))) return rc;
    if (k == 0) return TS_OK;
    uint32_t efu = ef > 0 ? (uint32_t)ef : ix->efs;
    if (efu < k) efu = (uint32_t)k;
    float *qn = ix->host->alloc((size_t)dim * 4);
    ngh_cand *res = ix->host->alloc(((size_t)efu + 1) * sizeof *res);
    uint32_t nr = 0;
    if (!qn || !res) {
        rc = ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory");
    } else {
        ngh_prepare_query(o, q, qn);
        kctx c = { filter, fctx, 0, 0, efu, o->m.count };
        if (o->m.live) {
            int gave_up = 0;
            uint32_t budget = filter ? (o->m.count / 10 > 2000 ? o->m.count / 10 : 2000) : 0;
            if (budget && budget < 4 * efu) budget = 4 * efu;
            rc = ngh_graph_search(o, qn, efu, ngh_rerank_count((uint32_t)k, efu), accept, &c, budget, res,
                                  &nr, &gave_up);
            /* too few: the filter (or deletes) cut the graph; scan exactly */
            if (!rc && (gave_up || (nr < k && o->m.live > nr))) rc = exact_scan(o, qn, (uint32_t)k, &c, res, &nr);
        }
        if (nr > k) nr = (uint32_t)k;
        if (!rc) ngh_snap_pk_prefetch(o, res, nr);
    }
    ix->host->free(qn);
    if (rc) {
        ix->host->free(res);
        ngh_op_end(o);
        return rc;
    }
    *res_out = res;
    *nr_out = nr;
    return TS_OK;
}

static float hit_distance(const ngh_idx *ix, float d)
{
    return ix->metric == NGH_L2 ? (d > 0 ? sqrtf(d) : 0.0f) : d;
}

static int ngh_knn(void *idx, ts_txn *txn, const float *q, size_t dim, size_t k, int ef,
                   int (*filter)(void *ctx, const void *val, size_t vlen), void *fctx,
                   ts_knn_hit *out, size_t *nout)
{
    ngh_idx *ix = idx;
    *nout = 0;
    ngh_op o;
    ngh_cand *res = NULL;
    uint32_t nr = 0;
    uint8_t *buf = NULL;
    int rc = knn_search(ix, txn, &o, q, dim, k, ef, filter, fctx, &res, &nr);
    if (rc) return rc;
    size_t total = 0, cap = 256;
    if (!rc && nr) {
        buf = ix->host->alloc(cap);
        if (!buf) rc = ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory");
    }
    for (uint32_t i = 0; i < nr && !rc; i++) {
        const void *pk;
        size_t pl;
        if ((rc = ngh_pk_of(&o, res[i].id, &pk, &pl))) break;
        if (total + pl > cap) {
            while (total + pl > cap) cap *= 2;
            uint8_t *nb = ix->host->realloc(buf, cap);
            if (!nb) { rc = ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory"); break; }
            buf = nb;
        }
        memcpy(buf + total, pk, pl);
        out[i].distance = hit_distance(ix, res[i].d);
        out[i].vlen = pl;
        out[i].val = (const void *)(uintptr_t)total; /* offset until the buffer is final */
        total += pl;
    }
    if (!rc && nr) {
        for (uint32_t i = 0; i < nr; i++) out[i].val = buf + (uintptr_t)out[i].val;
        res_publish(ix, txn, buf, cap);
        buf = NULL;
        *nout = nr;
    }
    ix->host->free(buf);
    ix->host->free(res);
    ngh_op_end(&o);
    return rc;
}

/* knn with each hit handed to emit while its primary key is in hand:
 * nothing is left in a buffer of the index. */
static int ngh_knn_emit(void *idx, ts_txn *txn, const float *q, size_t dim, size_t k, int ef,
                        int (*filter)(void *ctx, const void *val, size_t vlen), void *fctx,
                        int (*emit)(void *ctx, float distance, const void *val, size_t vlen), void *ectx)
{
    ngh_idx *ix = idx;
    ngh_op o;
    ngh_cand *res = NULL;
    uint32_t nr = 0;
    int rc = knn_search(ix, txn, &o, q, dim, k, ef, filter, fctx, &res, &nr);
    if (rc) return rc;
    for (uint32_t i = 0; i < nr && !rc; i++) {
        const void *pk;
        size_t pl;
        if (!(rc = ngh_pk_of(&o, res[i].id, &pk, &pl))) rc = emit(ectx, hit_distance(ix, res[i].d), pk, pl);
    }
    ix->host->free(res);
    ngh_op_end(&o);
    return rc;
}

/* ---- cursors: live entries in node-id order --------------------------------------------- */

typedef struct ngh_cur {
    ngh_idx *ix;
    ts_txn  *tx;
    uint32_t id;     /* the current node, NGH_NONE when not on one */
    float   *vec;    /* its vector and primary key, copied out by entry */
    uint8_t *pk;
    size_t   pkcap;
} ngh_cur;

static int ngh_cursor_open(void *idx, ts_txn *txn, void **cur_out)
{
    ngh_idx *ix = idx;
    ngh_op o;
    int rc = op_begin(&o, ix, txn, 0);
    if (rc) return rc;
    ngh_op_end(&o);
    ngh_cur *c = ix->host->calloc(1, sizeof *c);
    if (!c) return ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory");
    c->ix = ix;
    c->tx = txn;
    c->id = NGH_NONE;
    c->vec = ix->host->alloc((size_t)ix->dim * 4);
    if (!c->vec) {
        ix->host->free(c);
        return ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory");
    }
    *cur_out = c;
    return TS_OK;
}

static void ngh_cursor_close(void *cur)
{
    ngh_cur *c = cur;
    if (!c) return;
    c->ix->host->free(c->vec);
    c->ix->host->free(c->pk);
    c->ix->host->free(c);
}

/* Move to the first live node from `from` in direction dir (+1 / -1; from
 * NGH_NONE with -1: the last node): TS_ERR_NOT_FOUND past either end. */
static int cur_move(ngh_cur *c, uint32_t from, int dir)
{
    ngh_op o;
    int rc = ngh_op_begin(&o, c->ix, c->tx, 0);
    if (rc) return rc;
    uint32_t id = from == NGH_NONE ? o.m.count - 1 : from;
    c->id = NGH_NONE;
    for (uint32_t n = 0; id < o.m.count; id += (uint32_t)dir, n++) {
        uint8_t *rec;
        if (n % 64 == 63) ngh_op_relax(&o);
        if ((rc = ngh_node(&o, id, 0, &rec))) break;
        if (!(rec[NR_FLAGS] & NR_DELETED)) {
            c->id = id;
            break;
        }
    }
    ngh_op_end(&o);
    return rc ? rc : c->id == NGH_NONE ? TS_ERR_NOT_FOUND : TS_OK;
}

static int ngh_seek(void *cur, const void *key, size_t klen, int mode)
{
    ngh_cur *c = cur;
    (void)key;
    (void)klen;
    (void)mode;
    return c->ix->host->error(c->ix->env, TS_ERR_UNSUPPORTED, "ngh: cursors do not seek (use knn)");
}

static int ngh_first(void *cur) { return cur_move(cur, 0, 1); }
static int ngh_last(void *cur) { return cur_move(cur, NGH_NONE, -1); }

static int ngh_next(void *cur)
{
    ngh_cur *c = cur;
    return c->id == NGH_NONE ? TS_ERR_NOT_FOUND : cur_move(c, c->id + 1, 1);
}

static int ngh_prev(void *cur)
{
    ngh_cur *c = cur;
    if (c->id == NGH_NONE) return TS_ERR_NOT_FOUND;
    if (c->id == 0) {
        c->id = NGH_NONE;
        return TS_ERR_NOT_FOUND;
    }
    return cur_move(c, c->id - 1, -1);
}

static int ngh_entry(void *cur, const void **key, size_t *klen, const void **val, size_t *vlen)
{
    ngh_cur *c = cur;
    if (c->id == NGH_NONE) return TS_ERR_NOT_FOUND;
    ngh_op o;
    int rc = op_begin(&o, c->ix, c->tx, 0);
    if (rc) return rc;
    uint8_t *rec;
    const float *vec;
    const void *pk;
    size_t pl = 0;
    if (c->id >= o.m.count) rc = TS_ERR_NOT_FOUND;
    if (!rc && !(rc = ngh_node(&o, c->id, 0, &rec)) && (rec[NR_FLAGS] & NR_DELETED)) rc = TS_ERR_NOT_FOUND;
    if (!rc && !(rc = ngh_vector(&o, c->id, rec, c->vec, &vec)) && vec != c->vec)
        memcpy(c->vec, vec, (size_t)c->ix->dim * 4);
    if (!rc && !(rc = ngh_pk_of(&o, c->id, &pk, &pl)) && pl > c->pkcap) {
        uint8_t *nb = c->ix->host->realloc(c->pk, pl);
        if (!nb) rc = c->ix->host->error(c->ix->env, TS_ERR_NOMEM, "ngh: out of memory");
        else {
            c->pk = nb;
            c->pkcap = pl;
        }
    }
    if (!rc && pl) memcpy(c->pk, pk, pl);
    ngh_op_end(&o);
    if (rc) return rc;
    *key = c->vec;
    *klen = (size_t)c->ix->dim * 4;
    *val = pl ? c->pk : (const void *)"";
    *vlen = pl;
    return TS_OK;
}

/* ---- stored vectors by primary key ------------------------------------------------------ */

/* Whether the records (or the raw array) give back the floats insert
 * received: exactly for float32 records, raw vectors and float16 records
 * of keys that arrived float16-exact; for int8 records of keys that
 * arrived int8-exact (codes times a scale), the same codes times a scale
 * that may differ from the key's in its last bit (ngh_key_matches).  Every
 * record quantizes a key that arrived at its precision.  Looking a key up
 * needs the key hash (format 2). */
static int keeps_exact(const ngh_meta *m)
{
    return m->pkw && (m->raw || m->precision == NGH_F32 || m->keys_quantized);
}

#define NGH_VEC_AHEAD 4   /* records fetched ahead: more overrun the misses a core keeps in flight */

/* Fetch ahead the first `bytes` of a record's vector (the hardware
 * prefetcher follows on longer vectors). */
static inline void prefetch_vec(const uint8_t *rec, size_t bytes)
{
    for (size_t b = 0; rec && b < bytes; b += 64) __builtin_prefetch(rec + NR_VEC + b);
}

/* The stored vectors of n primary keys (vals) into out (dim floats each),
 * or with a query q their distances as knn reports them into
 * dist; found[i] whether vals[i] has a live entry.  Keys are looked up a
 * batch at a time (ngh_pk_find_many), records fetched a few ahead. */
static int stored_batch(ngh_idx *ix, ts_txn *txn, size_t n, const void *const *vals, const size_t *vlens,
                        const float *q, float *out, float *dist, unsigned char *found)
{
    ngh_op o;
    int rc = op_begin(&o, ix, txn, 0);
    if (rc) return rc;
    if (!keeps_exact(&o.m)) rc = TS_ERR_UNSUPPORTED;
    size_t dim = ix->dim;
    float *qn = NULL;
    if (!rc && q && n && !(qn = ix->host->alloc(dim * 4)))
        rc = ix->host->error(ix->env, TS_ERR_NOMEM, "ngh: out of memory");
    if (qn) ngh_prepare_query(&o, q, qn);
    size_t ahead = o.m.raw ? 0 : o.m.vbytes < 1024 ? o.m.vbytes : 1024;
    uint32_t ids[NGH_FIND_BATCH];
    uint8_t *recs[NGH_FIND_BATCH];
    for (size_t base = 0; base < n && !rc; base += NGH_FIND_BATCH) {
        size_t m = n - base < NGH_FIND_BATCH ? n - base : NGH_FIND_BATCH;
        ngh_op_relax(&o);
        rc = ngh_pk_find_many(&o, m, vals + base, vlens + base, ids);
        for (size_t j = 0; j < m && !rc; j++) {
            recs[j] = NULL;
            if (ids[j] != NGH_NO_ID && !(rc = ngh_node(&o, ids[j], 0, &recs[j])) && j < NGH_VEC_AHEAD)
                prefetch_vec(recs[j], ahead);
        }
        for (size_t j = 0; j < m && !rc; j++) {
            if (j + NGH_VEC_AHEAD < m) prefetch_vec(recs[j + NGH_VEC_AHEAD], ahead);
            found[base + j] = 0;
            if (ids[j] == NGH_NO_ID) continue;
            if (qn) {
                float d;
                if ((rc = ngh_exact_dist(&o, qn, ids[j], recs[j], &d))) break;
                dist[base + j] = hit_distance(ix, d);
            } else {
                float *dst = out + (base + j) * dim;
                const float *v;
                if ((rc = ngh_vector(&o, ids[j], recs[j], dst, &v))) break;
                if (v != dst) memcpy(dst, v, dim * 4);
            }
            found[base + j] = 1;
        }
    }
    ix->host->free(qn);
    ngh_op_end(&o);
    return rc;
}

static int ngh_vectors(void *idx, ts_txn *txn, size_t n, const void *const *vals, const size_t *vlens,
                       float *out, unsigned char *found)
{
    return stored_batch(idx, txn, n, vals, vlens, NULL, out, NULL, found);
}

static int ngh_distances(void *idx, ts_txn *txn, const float *q, size_t dim, size_t n, const void *const *vals,
                         const size_t *vlens, float *dist, unsigned char *found)
{
    int rc = check_query(idx, q, dim);
    return rc ? rc : stored_batch(idx, txn, n, vals, vlens, q, NULL, dist, found);
}

static int ngh_count(void *idx, ts_txn *txn, uint64_t *n)
{
    ngh_op o;
    int rc = op_begin(&o, idx, txn, 0);
    if (rc) return rc;
    *n = o.m.live;
    ngh_op_end(&o);
    return TS_OK;
}

/* ---- the module ------------------------------------------------------------------------ */

static const ts_index_vtab ngh_vtab = {
    .struct_size = sizeof(ts_index_vtab),
    .caps = TS_INDEX_VECTOR,
    .create = ngh_create,
    .open = ngh_open,
    .close = ngh_close,
    .drop = ngh_drop,
    .insert = ngh_insert,
    .remove = ngh_remove,
    .cursor_open = ngh_cursor_open,
    .cursor_close = ngh_cursor_close,
    .seek = ngh_seek,
    .first = ngh_first,
    .last = ngh_last,
    .next = ngh_next,
    .prev = ngh_prev,
    .entry = ngh_entry,
    .knn = ngh_knn,
    .knn_emit = ngh_knn_emit,
    .vectors = ngh_vectors,
    .count = ngh_count,
    .distances = ngh_distances,
};

static const ts_module ngh_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_INDEX,
    .name = "ngh",
    .version = NGH_VERSION_STR,
    .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_index_vtab),
    .vtab = &ngh_vtab,
};

static const ts_module *const ngh_modules[] = { &ngh_module, NULL };

/* The caches hold the kernel's page images (ABI 1.5): the loader refuses
 * this plugin in older kernels, this refuses a page API without holds. */
static int ngh_init(const ts_host *host, ts_env *env, void **state_out)
{
    *state_out = NULL;
    const ts_page_api *pa = host->struct_size >= offsetof(ts_host, pages) + sizeof host->pages ? host->pages : NULL;
    if (!pa || pa->struct_size < offsetof(ts_page_api, unhold) + sizeof pa->unhold || !pa->hold || !pa->unhold)
        return host->error(env, TS_ERR_PLUGIN, "ngh: needs a page API of ABI 1.5 (page holds)");
    return TS_OK;
}

static const ts_plugin ngh_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "ngh",
    .version = NGH_VERSION_STR,
    .init = ngh_init,
    .modules = ngh_modules,
};

TS_PLUGIN_DEFINE(ngh_plugin)
