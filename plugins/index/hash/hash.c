/*
 * hash - a disk-based hash index over the kernel page API (linear hashing,
 * after Litwin 1980).  See docs/hash.md for the design and measurements.
 *
 * Pages (every page of the index starts with a 4-byte type tag):
 *
 *   meta (the root; never moves)
 *     0 type  4 version  8 seed  16 nbuckets  24 nentries  32 bytes (page
 *     bytes the records take)  40 usable (layout page size)  44 depth
 *     48 ntop  52 fanout  56 reserved  64 top[ntop]: the directory's top
 *   directory: 0 type, 8 slots[fanout] (page numbers; 0 = none)
 *   bucket (a chain: head page, then overflow pages):
 *     0 type  4 nrec  8 next  16 free (start of the record area)
 *     20 dead (bytes of removed records not yet reclaimed)
 *     24 slots[nrec]: hash (8), offset (2), size (2) ... free: records,
 *     each klen (2), vinfo (4: bit 31 = value in an overflow chain, low
 *     bits = value length), key, then the value or the first overflow page
 *   overflow value: 0 type  4 n (bytes here)  8 next  16 data
 *
 * The directory maps bucket numbers to the head page of each chain: a
 * radix tree whose root is the meta page's top[]; with depth d each top
 * slot covers fanout^d buckets.  At depth 0 top[] holds bucket heads (~500
 * buckets on 4 KiB pages), at depth 1 a lookup reads one directory page
 * (~250 000 buckets), and growing a level is O(1): one new page takes over
 * top[] and becomes top[0].  A lookup reads meta, directory (from ~500
 * buckets on) and the bucket's pages, and within a bucket page only the
 * slot array and the records whose full 64-bit hash matches.
 *
 * Values are inline when the record stays within a quarter of a bucket
 * page (or is no larger than the overflow reference), else in a chain of
 * overflow pages.
 *
 * Addressing: with N buckets, L = floor(log2 N) and split pointer
 * s = N - 2^L, a hash h lives in bucket h mod 2^(L+1) when that is < N,
 * else h mod 2^L.  Growth splits bucket s into s and s + 2^L when the
 * records fill more than HX_SPLIT_AT% of one page per bucket; shrinking
 * merges the last bucket back into its buddy below HX_MERGE_AT%.  One split
 * or merge per operation: no rehash pauses.
 *
 * Cursor order: entries in order of (bit-reversed hash, key, value length,
 * value bytes).  Bit reversal makes every bucket a contiguous range of
 * that order that splits and merges only subdivide or join, so a cursor
 * can resume from its last entry after any change made by its own
 * transaction: it keeps a private, sorted copy of the current bucket (or,
 * after a seek, of the key's entries) and a copy of the current entry, and
 * when the index's generation counter has moved it finds the successor of
 * that entry afresh.  A cursor used more than once also keeps copies of
 * the meta page's top[] and of directory leaves, valid while the
 * generation stands: an IN list through one cursor reads ~1 page a key.
 *
 * Threads: the index object holds only immutable fields and the atomic
 * generation counter; everything per transaction lives in cursors and on
 * the stack, so one instance serves many threads (TS_MODULE_THREAD_SAFE).
 * The counter only sees changes made through this instance: the kernel
 * opens one instance per index and handle.
 *
 * Errors: TS_ERR_UNIQUE, TS_ERR_NOT_FOUND and argument errors are found
 * before anything changes; any other failure inside insert or remove may
 * leave the transaction's pages half-updated, and the transaction must be
 * rolled back (as for every kernel write error).
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tostore/index.h>
#include "hashfn.h"

#define HX_VERSION    1u
#define HX_VAL_MAX    (16u << 20)
#define HX_DEPTH_MAX  8u

/* Page type tags ("HXM1", ...). */
#define HX_T_META 0x314d5848u
#define HX_T_DIR  0x31445848u
#define HX_T_BKT  0x31425848u
#define HX_T_OVF  0x314f5848u

/* meta page */
#define M_TYPE      0
#define M_VERSION   4
#define M_SEED      8
#define M_NBUCKETS 16
#define M_NENTRIES 24
#define M_BYTES    32
#define M_USABLE   40
#define M_DEPTH    44
#define M_NTOP     48
#define M_FANOUT   52
#define M_TOP      64

#define D_SLOTS     8     /* directory page */
#define B_NREC      4     /* bucket page */
#define B_NEXT      8
#define B_FREE     16
#define B_DEAD     20
#define B_SLOTS    24
#define S_SIZE     12     /* slot: hash, offset, size */
#define P_HDR       6     /* record header on a page */
#define O_N         4     /* overflow page */
#define O_NEXT      8
#define O_HDR      16
#define R_HDR      14     /* record header, set form */
#define PG_EXTRA   (S_SIZE + P_HDR - R_HDR)  /* page bytes beyond the set form */
#define R_OVF      0x80000000u

/* Load control, in percent of one bucket page per bucket. */
#define HX_SPLIT_AT 55
/* Directory leaf pages a cursor keeps copies of. */
#define HX_LEAF_CACHE 64
#define HX_MERGE_AT 25

/* ---- little-endian field access ------------------------------------ */

static uint16_t g16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t g32(const uint8_t *p) { return (uint32_t)hx_le32(p); }
static uint64_t g64(const uint8_t *p) { return hx_le64(p); }
static void p16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void p32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void p64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static uint64_t bitrev64(uint64_t v)
{
    v = (v >> 1 & 0x5555555555555555ull) | (v & 0x5555555555555555ull) << 1;
    v = (v >> 2 & 0x3333333333333333ull) | (v & 0x3333333333333333ull) << 2;
    v = (v >> 4 & 0x0f0f0f0f0f0f0f0full) | (v & 0x0f0f0f0f0f0f0f0full) << 4;
    v = (v >> 8 & 0x00ff00ff00ff00ffull) | (v & 0x00ff00ff00ff00ffull) << 8;
    v = (v >> 16 & 0x0000ffff0000ffffull) | (v & 0x0000ffff0000ffffull) << 16;
    return v >> 32 | v << 32;
}

static unsigned flog2(uint64_t n)
{
    unsigned l = 0;
    while (n >>= 1) l++;
    return l;
}

/* ---- the index object ---------------------------------------------- */

typedef struct hxidx {
    const ts_host     *host;
    ts_env            *env;
    const ts_page_api *pa;
    uint64_t           root;
    _Atomic uint64_t   gen;  /* bumped by every insert/remove: cursors resync */
} hxidx;

/* The meta page, decoded, plus the layout derived from it. */
typedef struct hxmeta {
    uint64_t seed, nbuckets, nentries, bytes;
    uint32_t usable, depth, ntop, fanout;
    uint32_t pagecap;     /* record bytes per bucket page */
    uint32_t inline_max;  /* largest record with an inline value */
    uint32_t ovcap;       /* value bytes per overflow page */
} hxmeta;

/* One operation: the transaction and the pinned meta page. */
typedef struct hxctx {
    hxidx             *ix;
    ts_txn            *tx;
    const ts_page_api *pa;
    ts_page           *mpg;
    uint8_t           *md;
    int                write;
    hxmeta             m;
} hxctx;

static int corrupt(const hxidx *ix, uint64_t pgno, const char *what)
{
    return ix->host->error(ix->env, TS_ERR_CORRUPT, "hash index at page %llu: page %llu: %s",
                           (unsigned long long)ix->root, (unsigned long long)pgno, what);
}

static int nomem(const hxidx *ix)
{
    return ix->host->error(ix->env, TS_ERR_NOMEM, "hash index: out of memory");
}

static void layout(hxmeta *m)
{
    m->ntop = (m->usable - M_TOP) / 8;
    m->fanout = (m->usable - D_SLOTS) / 8;
    m->pagecap = m->usable - B_SLOTS;
    m->inline_max = m->pagecap / 4;
    m->ovcap = m->usable - O_HDR;
}

/* Largest record: a maximum key and an overflow reference (or a value of
 * at most 8 bytes, which always stays inline). */
#define HX_REC_MAX (R_HDR + TS_INDEX_KEY_MAX + 8 + PG_EXTRA)

/* Buckets the directory can address at depth d. */
static uint64_t dir_capacity(const hxmeta *m, uint32_t d)
{
    uint64_t c = m->ntop;
    while (d--) {
        if (c > UINT64_MAX / m->fanout) return UINT64_MAX;
        c *= m->fanout;
    }
    return c;
}

static uint64_t span_of(const hxmeta *m, uint32_t d)
{
    uint64_t s = 1;
    while (d--) s *= m->fanout;
    return s;
}

static int ctx_begin(hxctx *c, hxidx *ix, ts_txn *tx, int write)
{
    memset(c, 0, sizeof *c);
    c->ix = ix;
    c->tx = tx;
    c->pa = ix->pa;
    c->write = write;
    if (!tx) return ix->host->error(ix->env, TS_ERR_INVALID, "hash index: no transaction");
    if (write && !c->pa->writable(tx))
        return ix->host->error(ix->env, TS_ERR_INVALID,
                               "hash index: changing the index needs a write transaction");
    int rc = c->pa->get(tx, ix->root, write ? TS_PAGE_WRITE : TS_PAGE_READ, &c->mpg);
    if (rc) return rc;
    c->md = c->pa->data(c->mpg);
    const uint8_t *d = c->md;
    hxmeta *m = &c->m;
    if (g32(d + M_TYPE) != HX_T_META) rc = corrupt(ix, ix->root, "not a hash index meta page");
    else if (g32(d + M_VERSION) != HX_VERSION)
        rc = ix->host->error(ix->env, TS_ERR_FORMAT, "hash index at page %llu: format version %u "
                             "(this module reads %u)", (unsigned long long)ix->root,
                             g32(d + M_VERSION), HX_VERSION);
    if (rc) goto fail;
    m->seed = g64(d + M_SEED);
    m->nbuckets = g64(d + M_NBUCKETS);
    m->nentries = g64(d + M_NENTRIES);
    m->bytes = g64(d + M_BYTES);
    m->usable = g32(d + M_USABLE);
    m->depth = g32(d + M_DEPTH);
    if (m->usable > c->pa->usable_size(tx) || m->usable < B_SLOTS + 2 * HX_REC_MAX || m->usable > 65535) {
        rc = corrupt(ix, ix->root, "page size of the layout does not fit the database");
        goto fail;
    }
    layout(m);
    if (g32(d + M_NTOP) != m->ntop || g32(d + M_FANOUT) != m->fanout || m->depth > HX_DEPTH_MAX ||
        m->nbuckets == 0 || m->nbuckets > dir_capacity(m, m->depth)) {
        rc = corrupt(ix, ix->root, "inconsistent meta page");
        goto fail;
    }
    return TS_OK;
fail:
    c->pa->release(c->mpg);
    c->mpg = NULL;
    return rc;
}

/* Write the counters back (write contexts) and unpin the meta page. */
static void ctx_end(hxctx *c)
{
    if (!c->mpg) return;
    if (c->write) {
        p64(c->md + M_NBUCKETS, c->m.nbuckets);
        p64(c->md + M_NENTRIES, c->m.nentries);
        p64(c->md + M_BYTES, c->m.bytes);
        p32(c->md + M_DEPTH, c->m.depth);
    }
    c->pa->release(c->mpg);
    c->mpg = NULL;
}

static uint64_t bucket_of(const hxmeta *m, uint64_t h)
{
    unsigned l = flog2(m->nbuckets);
    uint64_t b = h & ((2ull << l) - 1); /* l <= 63 since nbuckets fits the directory */
    if (b >= m->nbuckets) b = h & ((1ull << l) - 1);
    return b;
}

/* Address bits of bucket b: its records share their low `level` hash bits. */
static unsigned bucket_level(const hxmeta *m, uint64_t b)
{
    unsigned l = flog2(m->nbuckets);
    uint64_t s = m->nbuckets - (1ull << l);
    return (b < s || b >= (1ull << l)) ? l + 1 : l;
}

/* The neighbour of bucket b in cursor order (dir > 0: next), or -1 when b
 * is the last (first) one.  Bucket b covers the bit-reversed hashes whose
 * top `level` bits are the reversed low bits of b. */
static int bucket_step(const hxmeta *m, uint64_t b, int dir, uint64_t *out)
{
    unsigned l = bucket_level(m, b);
    if (l == 0) return -1;
    uint64_t r = bitrev64(b) >> (64 - l);
    uint64_t p;
    if (dir > 0) {
        if (r == (l == 64 ? UINT64_MAX : (1ull << l) - 1)) return -1;
        p = (r + 1) << (64 - l);
    } else {
        if (r == 0) return -1;
        p = (r << (64 - l)) - 1;
    }
    *out = bucket_of(m, bitrev64(p));
    return 0;
}

/* ---- the directory --------------------------------------------------- */

static uint64_t top_get(const hxctx *c, uint64_t t) { return g64(c->md + M_TOP + 8 * t); }
static void top_set(hxctx *c, uint64_t t, uint64_t v) { p64(c->md + M_TOP + 8 * t, v); }

static int dir_page(hxctx *c, uint64_t pgno, int mode, ts_page **pg, uint8_t **d)
{
    int rc = c->pa->get(c->tx, pgno, mode, pg);
    if (rc) return rc;
    *d = c->pa->data(*pg);
    if (g32(*d) != HX_T_DIR) {
        c->pa->release(*pg);
        *pg = NULL;
        return corrupt(c->ix, pgno, "not a directory page");
    }
    return TS_OK;
}

/* The head page of bucket b's chain (0: the bucket is empty). */
static int dir_get(hxctx *c, uint64_t b, uint64_t *out)
{
    const hxmeta *m = &c->m;
    uint64_t span = span_of(m, m->depth), t = b / span, rem = b % span;
    *out = 0;
    if (t >= m->ntop) return corrupt(c->ix, c->ix->root, "bucket beyond the directory");
    uint64_t p = top_get(c, t);
    for (uint32_t d = m->depth; d > 0 && p; d--) {
        span /= m->fanout;
        ts_page *pg;
        uint8_t *dd;
        int rc = dir_page(c, p, TS_PAGE_READ, &pg, &dd);
        if (rc) return rc;
        uint64_t q = g64(dd + D_SLOTS + 8 * (rem / span));
        c->pa->release(pg);
        p = q;
        rem %= span;
    }
    *out = p;
    return TS_OK;
}

static int new_page(hxctx *c, uint32_t type, ts_page **pg, uint8_t **d, uint64_t *pgno)
{
    int rc = c->pa->alloc(c->tx, pg, pgno);
    if (rc) return rc;
    *d = c->pa->data(*pg);
    memset(*d, 0, c->m.usable);
    p32(*d, type);
    return TS_OK;
}

/* One more directory level: a new page takes over top[] as its first
 * slots and becomes top[0]. */
static int dir_grow(hxctx *c)
{
    hxmeta *m = &c->m;
    if (m->depth >= HX_DEPTH_MAX)
        return c->ix->host->error(c->ix->env, TS_ERR_RESOURCE, "hash index: directory is full");
    ts_page *pg;
    uint8_t *d;
    uint64_t pgno;
    int rc = new_page(c, HX_T_DIR, &pg, &d, &pgno);
    if (rc) return rc;
    memcpy(d + D_SLOTS, c->md + M_TOP, (size_t)m->ntop * 8);
    c->pa->release(pg);
    memset(c->md + M_TOP, 0, (size_t)m->ntop * 8);
    top_set(c, 0, pgno);
    m->depth++;
    return TS_OK;
}

/* Point bucket b at head page v (0: empty), making directory pages on the
 * way as needed.  b < dir_capacity at the current depth. */
static int dir_set(hxctx *c, uint64_t b, uint64_t v)
{
    const hxmeta *m = &c->m;
    uint64_t span = span_of(m, m->depth), t = b / span, rem = b % span;
    if (m->depth == 0) {
        top_set(c, t, v);
        return TS_OK;
    }
    uint64_t p = top_get(c, t);
    int rc;
    if (!p) {
        if (!v) return TS_OK;
        ts_page *pg;
        uint8_t *d;
        if ((rc = new_page(c, HX_T_DIR, &pg, &d, &p))) return rc;
        c->pa->release(pg);
        top_set(c, t, p);
    }
    for (uint32_t d = m->depth; d > 0; d--) {
        span /= m->fanout;
        uint64_t i = rem / span;
        rem %= span;
        ts_page *pg;
        uint8_t *dd;
        if ((rc = dir_page(c, p, TS_PAGE_WRITE, &pg, &dd))) return rc;
        uint64_t q = g64(dd + D_SLOTS + 8 * i);
        if (d == 1) {
            p64(dd + D_SLOTS + 8 * i, v);
            c->pa->release(pg);
            return TS_OK;
        }
        if (!q) {
            if (!v) { c->pa->release(pg); return TS_OK; }
            ts_page *np;
            uint8_t *nd;
            if ((rc = new_page(c, HX_T_DIR, &np, &nd, &q))) { c->pa->release(pg); return rc; }
            c->pa->release(np);
            p64(dd + D_SLOTS + 8 * i, q);
        }
        c->pa->release(pg);
        p = q;
    }
    return TS_OK;
}

/* Bucket b, the last one, is going away (its chain already freed): clear
 * its slot and free the directory pages that held nothing else. */
static int dir_remove_last(hxctx *c, uint64_t b)
{
    const hxmeta *m = &c->m;
    int rc = dir_set(c, b, 0);
    if (rc || m->depth == 0) return rc;
    /* The node at height k (leaves: 1) holding b covers fanout^k buckets
     * and is empty iff b is the first of them. */
    uint64_t path[HX_DEPTH_MAX + 1];
    uint64_t span = span_of(m, m->depth), rem = b % span;
    uint64_t t = b / span;
    path[m->depth] = top_get(c, t);
    for (uint32_t d = m->depth; d > 1 && path[d]; d--) {
        span /= m->fanout;
        ts_page *pg;
        uint8_t *dd;
        if ((rc = dir_page(c, path[d], TS_PAGE_READ, &pg, &dd))) return rc;
        path[d - 1] = g64(dd + D_SLOTS + 8 * (rem / span));
        c->pa->release(pg);
        rem %= span;
        if (!path[d - 1]) return TS_OK;
    }
    for (uint32_t k = 1; k <= m->depth; k++) {
        uint64_t cover = span_of(m, k);
        if (b % cover) return TS_OK;
        if (!path[k]) return TS_OK;
        if ((rc = c->pa->free(c->tx, path[k]))) return rc;
        int parent_freed = k < m->depth && b % (cover * m->fanout) == 0;
        if (parent_freed) continue;
        if (k == m->depth) {
            top_set(c, t, 0);
        } else {
            ts_page *pg;
            uint8_t *dd;
            if ((rc = dir_page(c, path[k + 1], TS_PAGE_WRITE, &pg, &dd))) return rc;
            p64(dd + D_SLOTS + 8 * ((b / cover) % m->fanout), 0);
            c->pa->release(pg);
        }
        return TS_OK;
    }
    return TS_OK;
}

/* ---- records and bucket pages ------------------------------------------ */

/*
 * A record exists in two forms.  Copied out of its page (splits, merges,
 * cursors), it is self-contained: hash (8), klen (2), vinfo (4), key,
 * value or overflow reference ("set form", R_HDR = 14 bytes of header).
 * On a bucket page the hash lives in the record's slot instead, so that a
 * lookup scans one small array of hashes and reads only matching records:
 *
 *   bucket page: 0 type  4 nrec  8 next  16 free (start of the record
 *   area)  20 dead (bytes of removed records not yet reclaimed)
 *   24 slots[nrec]: hash (8), offset (2), size (2)  ...  free: records,
 *   each klen (2), vinfo (4), key, value or overflow reference.
 *
 * A record costs its set form plus PG_EXTRA bytes of a page.
 */

typedef struct hxrec {
    uint64_t       h;
    const uint8_t *key;
    uint32_t       klen, vlen, size;  /* size: of the set form */
    int            ovf;
    const uint8_t *val;   /* inline value, or NULL */
    uint64_t       ovpg;  /* first overflow page */
    const uint8_t *raw;   /* on a page: the page record (size - 8 bytes) */
} hxrec;

/* Parse a record in set form. */
static int rec_parse(const uint8_t *p, size_t avail, hxrec *r)
{
    *r = (hxrec){ 0 }; /* a failed parse leaves zeros, not stale fields (and -O3 sees it) */
    if (avail < R_HDR) return -1;
    r->h = g64(p);
    r->klen = g16(p + 8);
    uint32_t vi = g32(p + 10);
    r->ovf = (vi & R_OVF) != 0;
    r->vlen = vi & ~R_OVF;
    if (r->klen > TS_INDEX_KEY_MAX || r->vlen > HX_VAL_MAX) return -1;
    size_t need = (size_t)R_HDR + r->klen + (r->ovf ? 8 : r->vlen);
    if (need > avail) return -1;
    r->key = p + R_HDR;
    r->val = r->ovf ? NULL : p + R_HDR + r->klen;
    r->ovpg = r->ovf ? g64(p + R_HDR + r->klen) : 0;
    if (r->ovf && (!r->ovpg || !r->vlen)) return -1;
    r->size = (uint32_t)need;
    r->raw = p + 8;
    return 0;
}

static int rec_inline(const hxmeta *m, size_t klen, size_t vlen)
{
    return vlen <= 8 || R_HDR + klen + vlen <= m->inline_max;
}

/* Size of the set form. */
static uint32_t rec_size(const hxmeta *m, size_t klen, size_t vlen)
{
    return (uint32_t)(R_HDR + klen + (rec_inline(m, klen, vlen) ? vlen : 8));
}

/* Write the page form of a record (size - 8 bytes) at p. */
static void prec_write(uint8_t *p, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ovpg)
{
    p16(p, (uint16_t)klen);
    p32(p + 2, (uint32_t)vlen | (ovpg ? R_OVF : 0));
    if (klen) memcpy(p + P_HDR, key, klen);
    if (ovpg) p64(p + P_HDR + klen, ovpg);
    else if (vlen) memcpy(p + P_HDR + klen, val, vlen);
}

static void bkt_init(const hxmeta *m, uint8_t *d)
{
    memset(d, 0, m->usable);
    p32(d, HX_T_BKT);
    p32(d + B_FREE, m->usable);
}

/* Bytes of the page's capacity (pagecap) in use: slots and live records. */
static uint32_t bkt_used(const hxmeta *m, const uint8_t *d)
{
    return S_SIZE * g32(d + B_NREC) + (m->usable - g32(d + B_FREE)) - g32(d + B_DEAD);
}

/* Pin a bucket page and check its header.  Records are checked when they
 * are read (rec_at); set_load also checks that they fill the page's space. */
static int bkt_get(hxctx *c, uint64_t pgno, int mode, ts_page **pg, uint8_t **d)
{
    int rc = c->pa->get(c->tx, pgno, mode, pg);
    if (rc) return rc;
    *d = c->pa->data(*pg);
    const hxmeta *m = &c->m;
    uint32_t n = g32(*d + B_NREC), fr = g32(*d + B_FREE), dead = g32(*d + B_DEAD);
    if (g32(*d) != HX_T_BKT) rc = corrupt(c->ix, pgno, "not a bucket page");
    else if (n > m->pagecap / S_SIZE || fr < B_SLOTS + S_SIZE * n || fr > m->usable ||
             dead > m->usable - fr)
        rc = corrupt(c->ix, pgno, "bad bucket page header");
    if (rc) { c->pa->release(*pg); *pg = NULL; }
    return rc;
}

/* Record i of bucket page d, checked. */
static int rec_at(hxctx *c, uint64_t pgno, const uint8_t *d, uint32_t i, hxrec *r)
{
    *r = (hxrec){ 0 }; /* as in rec_parse */
    const uint8_t *s = d + B_SLOTS + S_SIZE * i;
    uint32_t off = g16(s + 8), size = g16(s + 10);
    if (off < g32(d + B_FREE) || size < P_HDR || off + size > c->m.usable) goto bad;
    const uint8_t *p = d + off;
    r->h = g64(s);
    r->klen = g16(p);
    uint32_t vi = g32(p + 2);
    r->ovf = (vi & R_OVF) != 0;
    r->vlen = vi & ~R_OVF;
    if (r->klen > TS_INDEX_KEY_MAX || r->vlen > HX_VAL_MAX) goto bad;
    if ((size_t)P_HDR + r->klen + (r->ovf ? 8 : r->vlen) != size) goto bad;
    r->key = p + P_HDR;
    r->val = r->ovf ? NULL : p + P_HDR + r->klen;
    r->ovpg = r->ovf ? g64(p + P_HDR + r->klen) : 0;
    if (r->ovf && (!r->ovpg || !r->vlen)) goto bad;
    r->size = size + 8;
    r->raw = p;
    return TS_OK;
bad:
    return corrupt(c->ix, pgno, "bad record");
}

/* Find the next record of hash h on bucket page d from slot *i: 1 with *r
 * filled (and *i past it), 0 at the end, < 0 on a malformed page.  The hot
 * loop of every lookup: a scan of 12-byte slots. */
static int rec_find(hxctx *c, uint64_t pgno, const uint8_t *d, uint32_t *i, uint64_t h, hxrec *r)
{
    uint32_t n = g32(d + B_NREC);
    const uint8_t *s = d + B_SLOTS + S_SIZE * *i;
    for (; *i < n; (*i)++, s += S_SIZE) {
        if (g64(s) != h) continue;
        int rc = rec_at(c, pgno, d, (*i)++, r);
        return rc ? rc : 1;
    }
    return 0;
}

/* Move the live records of page d together at its end (reclaiming dead
 * space). */
static int bkt_compact(hxctx *c, uint64_t pgno, uint8_t *d)
{
    const hxmeta *m = &c->m;
    uint32_t n = g32(d + B_NREC), fr = m->usable, low = B_SLOTS + S_SIZE * n;
    /* the slots are read as written only after bkt_get's header check:
     * each record inside the page, all of them within its space */
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *s = d + B_SLOTS + S_SIZE * i;
        uint32_t off = g16(s + 8), size = g16(s + 10);
        if (off < low || size < P_HDR || off + size > m->usable || size > fr - low)
            return corrupt(c->ix, pgno, "bad record");
        fr -= size;
    }
    fr = m->usable;
    uint8_t *tmp = c->ix->host->alloc(m->usable);
    if (!tmp) return nomem(c->ix);
    memcpy(tmp, d, m->usable);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *s = d + B_SLOTS + S_SIZE * i;
        uint32_t off = g16(s + 8), size = g16(s + 10);
        fr -= size;
        memcpy(d + fr, tmp + off, size);
        p16(s + 8, (uint16_t)fr);
    }
    c->ix->host->free(tmp);
    memset(d + low, 0, fr - low);
    p32(d + B_FREE, fr);
    p32(d + B_DEAD, 0);
    return TS_OK;
}

/* A new slot for a record of `size` page bytes and hash h; *dst is where
 * its bytes go.  The caller checked that the page has room
 * (pagecap - bkt_used >= size + S_SIZE), from header fields that a damaged
 * page may contradict: checked again here. */
static int bkt_reserve(hxctx *c, uint64_t pgno, uint8_t *d, uint64_t h, uint32_t size, uint8_t **dst)
{
    uint32_t n = g32(d + B_NREC);
    if (g32(d + B_FREE) < B_SLOTS + S_SIZE * (n + 1) + size) {
        int rc = bkt_compact(c, pgno, d);
        if (rc) return rc;
        if (g32(d + B_FREE) < B_SLOTS + S_SIZE * (n + 1) + size)
            return corrupt(c->ix, pgno, "bucket page fuller than its header says");
    }
    uint32_t fr = g32(d + B_FREE) - size;
    uint8_t *s = d + B_SLOTS + S_SIZE * n;
    p64(s, h);
    p16(s + 8, (uint16_t)fr);
    p16(s + 10, (uint16_t)size);
    p32(d + B_FREE, fr);
    p32(d + B_NREC, n + 1);
    *dst = d + fr;
    return TS_OK;
}

/* Remove record i: its bytes become dead space. */
static void bkt_del(hxctx *c, uint8_t *d, uint32_t i)
{
    uint32_t n = g32(d + B_NREC);
    uint8_t *s = d + B_SLOTS + S_SIZE * i;
    uint32_t off = g16(s + 8), size = g16(s + 10);
    memset(d + off, 0, size);
    memmove(s, s + S_SIZE, (size_t)S_SIZE * (n - i - 1));
    memset(d + B_SLOTS + S_SIZE * (n - 1), 0, S_SIZE);
    p32(d + B_NREC, n - 1);
    if (n == 1) {
        p32(d + B_FREE, c->m.usable);
        p32(d + B_DEAD, 0);
    } else {
        p32(d + B_DEAD, g32(d + B_DEAD) + size);
    }
}

/* ---- overflow values --------------------------------------------------- */

static int ovf_write(hxctx *c, const uint8_t *val, size_t vlen, uint64_t *first)
{
    ts_page *prev = NULL;
    uint8_t *pd = NULL;
    int rc = TS_OK;
    *first = 0;
    for (size_t off = 0; off < vlen;) {
        ts_page *pg;
        uint8_t *d;
        uint64_t pgno;
        if ((rc = new_page(c, HX_T_OVF, &pg, &d, &pgno))) break;
        size_t n = vlen - off < c->m.ovcap ? vlen - off : c->m.ovcap;
        p32(d + O_N, (uint32_t)n);
        memcpy(d + O_HDR, val + off, n);
        off += n;
        if (prev) {
            p64(pd + O_NEXT, pgno);
            c->pa->release(prev);
        } else {
            *first = pgno;
        }
        prev = pg;
        pd = d;
    }
    if (prev) c->pa->release(prev);
    return rc;
}

static int ovf_page(hxctx *c, uint64_t pgno, ts_page **pg, const uint8_t **d)
{
    int rc = c->pa->get(c->tx, pgno, TS_PAGE_READ, pg);
    if (rc) return rc;
    *d = c->pa->data(*pg);
    if (g32(*d) != HX_T_OVF || g32(*d + O_N) == 0 || g32(*d + O_N) > c->m.ovcap) {
        c->pa->release(*pg);
        *pg = NULL; /* the caller's reader must not release it again */
        return corrupt(c->ix, pgno, "bad overflow page");
    }
    return TS_OK;
}

static int ovf_free(hxctx *c, uint64_t pgno)
{
    uint64_t guard = HX_VAL_MAX / c->m.ovcap + 2;
    while (pgno) {
        if (!guard--) return corrupt(c->ix, pgno, "overflow chain too long");
        ts_page *pg;
        const uint8_t *d;
        int rc = ovf_page(c, pgno, &pg, &d);
        if (rc) return rc;
        uint64_t next = g64(d + O_NEXT);
        c->pa->release(pg);
        if ((rc = c->pa->free(c->tx, pgno))) return rc;
        pgno = next;
    }
    return TS_OK;
}

/* A value to compare: in memory, or in an overflow chain. */
typedef struct hxval {
    const uint8_t *mem;
    uint64_t       ovpg;
    size_t         len;
} hxval;

/* Reads a value chunk by chunk. */
typedef struct hxvread {
    hxctx         *c;
    hxval          v;
    size_t         done;
    ts_page       *pg;
    const uint8_t *chunk;
    size_t         clen;
    uint64_t       next;
} hxvread;

static int vr_fill(hxvread *r)
{
    if (r->clen) return TS_OK;
    if (r->v.mem) {
        r->chunk = r->v.mem + r->done;
        r->clen = r->v.len - r->done;
        return TS_OK;
    }
    if (r->pg) { r->c->pa->release(r->pg); r->pg = NULL; }
    uint64_t pgno = r->done ? r->next : r->v.ovpg;
    if (!pgno) return corrupt(r->c->ix, 0, "overflow chain shorter than its value");
    const uint8_t *d;
    int rc = ovf_page(r->c, pgno, &r->pg, &d);
    if (rc) return rc;
    r->chunk = d + O_HDR;
    r->clen = g32(d + O_N);
    r->next = g64(d + O_NEXT);
    if (r->clen > r->v.len - r->done) return corrupt(r->c->ix, pgno, "overflow chain longer than its value");
    return TS_OK;
}

static void vr_done(hxvread *r)
{
    if (r->pg) r->c->pa->release(r->pg);
    r->pg = NULL;
}

/* Order of values: by length, then bytes.  *out <0, 0, >0. */
static int val_cmp(hxctx *c, const hxval *a, const hxval *b, int *out)
{
    *out = (a->len > b->len) - (a->len < b->len);
    if (*out || !a->len) return TS_OK;
    if (a->mem && b->mem) {
        *out = memcmp(a->mem, b->mem, a->len);
        return TS_OK;
    }
    hxvread ra = { .c = c, .v = *a }, rb = { .c = c, .v = *b };
    int rc = TS_OK;
    while (ra.done < a->len) {
        if ((rc = vr_fill(&ra)) || (rc = vr_fill(&rb))) break;
        size_t n = ra.clen < rb.clen ? ra.clen : rb.clen;
        int x = memcmp(ra.chunk, rb.chunk, n);
        if (x) { *out = x; break; }
        ra.chunk += n; ra.clen -= n; ra.done += n;
        rb.chunk += n; rb.clen -= n; rb.done += n;
    }
    vr_done(&ra);
    vr_done(&rb);
    return rc;
}

/* Copy a whole value into dst (len bytes). */
static int val_read(hxctx *c, const hxval *v, uint8_t *dst)
{
    if (v->mem) {
        if (v->len) memcpy(dst, v->mem, v->len);
        return TS_OK;
    }
    hxvread r = { .c = c, .v = *v };
    int rc = TS_OK;
    while (r.done < v->len) {
        if ((rc = vr_fill(&r))) break;
        memcpy(dst + r.done, r.chunk, r.clen);
        r.done += r.clen;
        r.clen = 0;
    }
    if (!rc && r.next) rc = corrupt(c->ix, r.next, "overflow chain longer than its value");
    vr_done(&r);
    return rc;
}

static hxval rec_val(const hxrec *r)
{
    hxval v = { r->val, r->ovpg, r->vlen };
    if (!r->ovf && !v.mem) v.mem = (const uint8_t *)"";
    return v;
}

/* ---- whole chains (split, merge, cursors) -------------------------------- */

/* Records of one or more chains, copied out of their pages. */
typedef struct hxset {
    const ts_host *host;
    uint8_t       *inl;     /* the owner's inline buffer buf starts as, or NULL */
    uint8_t       *buf;     /* record bytes */
    size_t         len, cap;
    uint64_t      *pages;   /* the chains' pages, in chain order */
    size_t         npages, cappages;
} hxset;

static void set_free(hxset *s)
{
    if (s->buf != s->inl) s->host->free(s->buf);
    s->host->free(s->pages);
    memset(s, 0, sizeof *s);
}

static int set_reserve(hxset *s, size_t more)
{
    if (s->len + more <= s->cap) return TS_OK;
    size_t nc = s->cap ? s->cap : 4096;
    while (nc < s->len + more) nc *= 2;
    uint8_t *nb;
    if (s->buf && s->buf == s->inl) {
        if ((nb = s->host->alloc(nc))) memcpy(nb, s->buf, s->len);
    } else {
        nb = s->host->realloc(s->buf, nc);
    }
    if (!nb) return TS_ERR_NOMEM;
    s->buf = nb;
    s->cap = nc;
    return TS_OK;
}

/* Walks a chain and stops on a cycle (Brent's algorithm): a corrupt next
 * pointer must not hang the caller. */
typedef struct hxwalk { uint64_t mark, steps, power; } hxwalk;

static int walk_step(hxctx *c, hxwalk *w, uint64_t next)
{
    if (next && next == w->mark) return corrupt(c->ix, next, "page chain loops");
    if (++w->steps == w->power) {
        w->mark = next;
        w->power *= 2;
        w->steps = 0;
    }
    return TS_OK;
}

/* Append the records of chain `head` to s, in set form. */
static int set_load(hxctx *c, hxset *s, uint64_t head)
{
    hxwalk w = { head, 0, 1 };
    for (uint64_t p = head; p;) {
        ts_page *pg;
        uint8_t *d;
        int rc = bkt_get(c, p, TS_PAGE_READ, &pg, &d);
        if (rc) return rc;
        uint32_t n = g32(d + B_NREC);
        uint64_t next = g64(d + B_NEXT);
        if (s->npages == s->cappages) {
            size_t nc = s->cappages * 2 + 8;
            uint64_t *np = s->host->realloc(s->pages, nc * sizeof *np);
            if (np) {
                s->pages = np;
                s->cappages = nc;
            }
        }
        if (s->npages == s->cappages || set_reserve(s, (size_t)n * 8 + (c->m.usable - g32(d + B_FREE)))) {
            c->pa->release(pg);
            return nomem(c->ix);
        }
        /* Copy and check each record, and that they account for the page's
         * space. */
        uint32_t sum = 0;
        for (uint32_t i = 0; i < n && !rc; i++) {
            hxrec r;
            if ((rc = rec_at(c, p, d, i, &r))) break;
            p64(s->buf + s->len, r.h);
            memcpy(s->buf + s->len + 8, r.raw, r.size - 8);
            s->len += r.size;
            sum += r.size - 8;
        }
        if (!rc && sum + g32(d + B_DEAD) != c->m.usable - g32(d + B_FREE))
            rc = corrupt(c->ix, p, "bucket page space does not add up");
        if (rc) {
            c->pa->release(pg);
            return rc;
        }
        s->pages[s->npages++] = p;
        c->pa->release(pg);
        if ((rc = walk_step(c, &w, next))) return rc;
        p = next;
    }
    return TS_OK;
}

/* Write the records of s whose hash has (h & mask) == want as the chain
 * of bucket b, reusing pages reuse[0..nreuse) and freeing those left over.
 * `oldhead` is what the directory holds for b now. */
static int chain_write(hxctx *c, uint64_t b, uint64_t oldhead, const hxset *s,
                       uint64_t mask, uint64_t want, const uint64_t *reuse, size_t nreuse)
{
    const hxmeta *m = &c->m;
    /* Plan: pages needed with a greedy fill. */
    size_t need = 0, fill = m->pagecap;
    for (size_t off = 0; off < s->len;) {
        hxrec r;
        rec_parse(s->buf + off, s->len - off, &r);
        off += r.size;
        if ((r.h & mask) != want) continue;
        if (fill + r.size + PG_EXTRA > m->pagecap) { need++; fill = 0; }
        fill += r.size + PG_EXTRA;
    }
    uint64_t local[16], *pages = local;
    int rc = TS_OK;
    if (need > 16 && !(pages = c->ix->host->alloc(need * 8))) return nomem(c->ix);
    size_t k = 0;
    for (; k < need && k < nreuse; k++) pages[k] = reuse[k];
    for (; k < need; k++) {
        ts_page *pg;
        uint8_t *d;
        if ((rc = new_page(c, HX_T_BKT, &pg, &d, &pages[k]))) goto out;
        c->pa->release(pg);
    }
    size_t off = 0;
    for (k = 0; k < need; k++) {
        ts_page *pg;
        uint8_t *d;
        if ((rc = c->pa->get(c->tx, pages[k], TS_PAGE_WRITE, &pg))) goto out;
        d = c->pa->data(pg);
        bkt_init(m, d);
        p64(d + B_NEXT, k + 1 < need ? pages[k + 1] : 0);
        uint32_t used = 0;
        while (off < s->len) {
            hxrec r;
            rec_parse(s->buf + off, s->len - off, &r);
            if ((r.h & mask) != want) { off += r.size; continue; }
            if (used + r.size + PG_EXTRA > m->pagecap) break;
            uint8_t *dst;
            bkt_reserve(c, pages[k], d, r.h, r.size - 8, &dst); /* a fresh page: no compaction */
            memcpy(dst, r.raw, r.size - 8);
            used += r.size + PG_EXTRA;
            off += r.size;
        }
        c->pa->release(pg);
    }
    for (k = need; k < nreuse; k++)
        if ((rc = c->pa->free(c->tx, reuse[k]))) goto out;
    uint64_t head = need ? pages[0] : 0;
    if (head != oldhead) rc = dir_set(c, b, head);
out:
    if (pages != local) c->ix->host->free(pages);
    return rc;
}

/* Split bucket s (the split pointer) into s and s + 2^L. */
static int split_one(hxctx *c)
{
    hxmeta *m = &c->m;
    uint64_t n = m->nbuckets;
    unsigned l = flog2(n);
    uint64_t s = n - (1ull << l), nb = n;
    int rc = TS_OK;
    if (l >= 63) return TS_OK;
    while (nb >= dir_capacity(m, m->depth))
        if ((rc = dir_grow(c))) return rc;
    uint64_t head;
    if ((rc = dir_get(c, s, &head))) return rc;
    hxset set = { .host = c->ix->host };
    if ((rc = set_load(c, &set, head))) goto out;
    uint64_t mask = (2ull << l) - 1;
    if ((rc = chain_write(c, s, head, &set, mask, s, set.pages, set.npages))) goto out;
    if ((rc = chain_write(c, nb, 0, &set, mask, nb, NULL, 0))) goto out;
    m->nbuckets = n + 1;
out:
    set_free(&set);
    return rc;
}

/* Merge the last bucket into its buddy. */
static int merge_one(hxctx *c)
{
    hxmeta *m = &c->m;
    uint64_t last = m->nbuckets - 1;
    uint64_t buddy = last - (1ull << flog2(last));
    uint64_t hl, hb;
    int rc;
    if ((rc = dir_get(c, last, &hl)) || (rc = dir_get(c, buddy, &hb))) return rc;
    hxset set = { .host = c->ix->host };
    if ((rc = set_load(c, &set, hb))) goto out;
    size_t nbuddy = set.npages;
    if ((rc = set_load(c, &set, hl))) goto out;
    for (size_t i = nbuddy; i < set.npages; i++)
        if ((rc = c->pa->free(c->tx, set.pages[i]))) goto out;
    if ((rc = dir_remove_last(c, last))) goto out;
    m->nbuckets = last;
    rc = chain_write(c, buddy, hb, &set, 0, 0, set.pages, nbuddy);
out:
    set_free(&set);
    return rc;
}

/* Keep the load between the limits: at most one split or merge per call. */
static int rebalance(hxctx *c)
{
    hxmeta *m = &c->m;
    /* bytes / (nbuckets * pagecap) against the limits, without overflow */
    double load = (double)m->bytes * 100 / ((double)m->nbuckets * m->pagecap);
    if (load > HX_SPLIT_AT) return split_one(c);
    if (m->nbuckets > 1 && load < HX_MERGE_AT) return merge_one(c);
    return TS_OK;
}

/* ---- module: create, open, close, drop ----------------------------------- */

static int check_host(const ts_module_args *a)
{
    const ts_host *h = a->host;
    if (h->struct_size < offsetof(ts_host, pages) + sizeof h->pages || !h->pages ||
        h->pages->struct_size < sizeof(ts_page_api))
        return h->error(a->env, TS_ERR_PLUGIN, "hash index: the host offers no page API");
    return TS_OK;
}

static int hx_create(const ts_module_args *a, ts_txn *tx, uint64_t *root_out)
{
    int rc = check_host(a);
    if (rc) return rc;
    const ts_page_api *pa = a->host->pages;
    if (!tx || !root_out)
        return a->host->error(a->env, TS_ERR_INVALID, "hash index: create: NULL argument");
    if (!pa->writable(tx))
        return a->host->error(a->env, TS_ERR_INVALID, "hash index: create needs a write transaction");
    hxmeta m = { .usable = pa->usable_size(tx) };
    if (m.usable < B_SLOTS + 2 * HX_REC_MAX)
        return a->host->error(a->env, TS_ERR_UNSUPPORTED, "hash index: pages of %u usable bytes "
                              "are too small", m.usable);
    layout(&m);
    uint64_t seed;
    if ((rc = a->host->random(a->env, &seed, sizeof seed))) return rc;
    ts_page *pg;
    uint64_t pgno;
    if ((rc = pa->alloc(tx, &pg, &pgno))) return rc;
    uint8_t *d = pa->data(pg);
    memset(d, 0, m.usable);
    p32(d + M_TYPE, HX_T_META);
    p32(d + M_VERSION, HX_VERSION);
    p64(d + M_SEED, seed);
    p64(d + M_NBUCKETS, 1);
    p32(d + M_USABLE, m.usable);
    p32(d + M_NTOP, m.ntop);
    p32(d + M_FANOUT, m.fanout);
    pa->release(pg);
    *root_out = pgno;
    return TS_OK;
}

static int hx_open(const ts_module_args *a, uint64_t root, void **out)
{
    int rc = check_host(a);
    if (rc) return rc;
    if (!out || !root) return a->host->error(a->env, TS_ERR_INVALID, "hash index: open: bad argument");
    hxidx *ix = a->host->calloc(1, sizeof *ix);
    if (!ix) return a->host->error(a->env, TS_ERR_NOMEM, "hash index: out of memory");
    ix->host = a->host;
    ix->env = a->env;
    ix->pa = a->host->pages;
    ix->root = root;
    atomic_init(&ix->gen, 0);
    *out = ix;
    return TS_OK;
}

static void hx_close(void *idx)
{
    hxidx *ix = idx;
    if (ix) ix->host->free(ix);
}

static int free_chain(hxctx *c, uint64_t head)
{
    hxwalk w = { head, 0, 1 };
    for (uint64_t p = head; p;) {
        ts_page *pg;
        uint8_t *d;
        int rc = bkt_get(c, p, TS_PAGE_READ, &pg, &d);
        if (rc) return rc;
        uint32_t n = g32(d + B_NREC);
        for (uint32_t i = 0; i < n && !rc; i++) {
            hxrec r;
            if (!(rc = rec_at(c, p, d, i, &r)) && r.ovf) rc = ovf_free(c, r.ovpg);
        }
        uint64_t next = g64(d + B_NEXT);
        c->pa->release(pg);
        if (rc || (rc = walk_step(c, &w, next)) || (rc = c->pa->free(c->tx, p))) return rc;
        p = next;
    }
    return TS_OK;
}

static int free_dir(hxctx *c, uint64_t pgno, uint32_t height)
{
    if (!height) return free_chain(c, pgno);
    uint64_t *slots = c->ix->host->alloc((size_t)c->m.fanout * 8);
    if (!slots) return nomem(c->ix);
    ts_page *pg;
    uint8_t *d;
    int rc = dir_page(c, pgno, TS_PAGE_READ, &pg, &d);
    if (!rc) {
        for (uint32_t i = 0; i < c->m.fanout; i++) slots[i] = g64(d + D_SLOTS + 8 * i);
        c->pa->release(pg);
        for (uint32_t i = 0; i < c->m.fanout && !rc; i++)
            if (slots[i]) rc = free_dir(c, slots[i], height - 1);
    }
    c->ix->host->free(slots);
    return rc ? rc : c->pa->free(c->tx, pgno);
}

static int hx_drop(void *idx, ts_txn *tx)
{
    hxidx *ix = idx;
    hxctx c;
    atomic_fetch_add(&ix->gen, 1);
    int rc = ctx_begin(&c, ix, tx, 1);
    if (rc) return rc;
    for (uint32_t t = 0; t < c.m.ntop && !rc; t++) {
        uint64_t p = top_get(&c, t);
        if (p) rc = free_dir(&c, p, c.m.depth);
    }
    c.write = 0;
    ctx_end(&c);
    return rc ? rc : ix->pa->free(tx, ix->root);
}

/* ---- insert and remove ----------------------------------------------------- */

static int check_kv(hxidx *ix, const void *key, size_t klen, const void *val, size_t vlen, int need_val)
{
    if ((!key && klen) || (need_val && !val && vlen))
        return ix->host->error(ix->env, TS_ERR_INVALID, "hash index: NULL key or value");
    if (klen > TS_INDEX_KEY_MAX)
        return ix->host->error(ix->env, TS_ERR_VALIDATION, "hash index: key of %zu bytes (at most %d)",
                               klen, TS_INDEX_KEY_MAX);
    if (vlen > HX_VAL_MAX)
        return ix->host->error(ix->env, TS_ERR_VALIDATION, "hash index: value of %zu bytes (at most %u)",
                               vlen, HX_VAL_MAX);
    return TS_OK;
}

static int key_eq(const hxrec *r, uint64_t h, const void *key, size_t klen)
{
    return r->h == h && r->klen == klen && (!klen || memcmp(r->key, key, klen) == 0);
}

static int hx_insert(void *idx, ts_txn *tx, const void *key, size_t klen, const void *val,
                     size_t vlen, int unique)
{
    hxidx *ix = idx;
    int rc = check_kv(ix, key, klen, val, vlen, 1);
    if (rc) return rc;
    atomic_fetch_add(&ix->gen, 1);
    hxctx c;
    if ((rc = ctx_begin(&c, ix, tx, 1))) return rc;
    hxmeta *m = &c.m;
    uint64_t h = hx_hash(key, klen, m->seed), b = bucket_of(m, h), head;
    if ((rc = dir_get(&c, b, &head))) goto out;
    uint32_t size = rec_size(m, klen, vlen), cost = size + PG_EXTRA;
    hxval mine = { val ? (const uint8_t *)val : (const uint8_t *)"", 0, vlen };

    /* One pass over the chain: equal keys, and the first page with room. */
    uint64_t fit = 0, tail = 0;
    hxwalk w = { head, 0, 1 };
    for (uint64_t p = head; p;) {
        ts_page *pg;
        uint8_t *d;
        if ((rc = bkt_get(&c, p, TS_PAGE_READ, &pg, &d))) goto out;
        uint32_t i = 0;
        hxrec r;
        while ((rc = rec_find(&c, p, d, &i, h, &r)) == 1) {
            rc = TS_OK;
            if (!key_eq(&r, h, key, klen)) continue;
            int x = 1;
            if (!unique) {
                hxval theirs = rec_val(&r);
                if ((rc = val_cmp(&c, &mine, &theirs, &x))) break;
            }
            if (!x || unique) {
                rc = ix->host->error(ix->env, TS_ERR_UNIQUE, unique
                                     ? "hash index: the key is already present"
                                     : "hash index: the entry (key, value) is already present");
                break;
            }
        }
        if (!rc && !fit && bkt_used(m, d) + cost <= m->pagecap) fit = p;
        uint64_t next = g64(d + B_NEXT);
        c.pa->release(pg);
        if (rc || (rc = walk_step(&c, &w, next))) goto out;
        tail = p;
        p = next;
    }

    uint64_t ovpg = 0;
    if (!rec_inline(m, klen, vlen) && (rc = ovf_write(&c, (const uint8_t *)val, vlen, &ovpg))) goto out;
    ts_page *pg;
    uint8_t *d;
    uint64_t at = fit;
    if (fit) {
        if ((rc = c.pa->get(tx, fit, TS_PAGE_WRITE, &pg))) goto out;
        d = c.pa->data(pg);
    } else {
        uint64_t np;
        if ((rc = new_page(&c, HX_T_BKT, &pg, &d, &np))) goto out;
        at = np;
        bkt_init(m, d);
        if (tail) {
            ts_page *tp;
            if ((rc = c.pa->get(tx, tail, TS_PAGE_WRITE, &tp))) { c.pa->release(pg); goto out; }
            p64((uint8_t *)c.pa->data(tp) + B_NEXT, np);
            c.pa->release(tp);
        } else if ((rc = dir_set(&c, b, np))) {
            c.pa->release(pg);
            goto out;
        }
    }
    uint8_t *dst;
    rc = bkt_reserve(&c, at, d, h, size - 8, &dst);
    if (!rc) prec_write(dst, key, klen, val, vlen, ovpg);
    c.pa->release(pg);
    if (rc) goto out;
    m->nentries++;
    m->bytes += cost;
    rc = rebalance(&c);
out:
    ctx_end(&c);
    return rc;
}

static int hx_remove(void *idx, ts_txn *tx, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    hxidx *ix = idx;
    int rc = check_kv(ix, key, klen, val, vlen, 0);
    if (rc) return rc;
    atomic_fetch_add(&ix->gen, 1);
    hxctx c;
    if ((rc = ctx_begin(&c, ix, tx, 1))) return rc;
    hxmeta *m = &c.m;
    uint64_t h = hx_hash(key, klen, m->seed), b = bucket_of(m, h), head;
    if ((rc = dir_get(&c, b, &head))) goto out;
    hxval mine = { val ? (const uint8_t *)val : NULL, 0, vlen };
    uint64_t removed = 0, removed_bytes = 0, prev = 0;
    int done = 0;
    hxwalk wk = { head, 0, 1 };
    for (uint64_t p = head; p && !done;) {
        ts_page *pg;
        uint8_t *d;
        if ((rc = bkt_get(&c, p, TS_PAGE_READ, &pg, &d))) goto out;
        /* Find the matches first with a read pin (usually there are none). */
        uint32_t hits = 0, i = 0;
        hxrec r;
        while (!done && (rc = rec_find(&c, p, d, &i, h, &r)) == 1) {
            rc = TS_OK;
            if (!key_eq(&r, h, key, klen)) continue;
            int x = 0;
            if (val) {
                hxval theirs = rec_val(&r);
                if ((rc = val_cmp(&c, &mine, &theirs, &x))) break;
            }
            if (!x) {
                hits++;
                if (val) done = 1;
            }
        }
        uint64_t next = g64(d + B_NEXT);
        c.pa->release(pg);
        if (rc || (rc = walk_step(&c, &wk, next))) goto out;
        if (!hits) { prev = p; p = next; continue; }

        /* Remove them (the page is as just read). */
        if ((rc = c.pa->get(tx, p, TS_PAGE_WRITE, &pg))) goto out;
        d = c.pa->data(pg);
        for (i = 0; hits && i < g32(d + B_NREC);) {
            if ((rc = rec_at(&c, p, d, i, &r))) break;
            int x = 1;
            if (key_eq(&r, h, key, klen)) {
                x = 0;
                if (val) {
                    hxval theirs = rec_val(&r);
                    if ((rc = val_cmp(&c, &mine, &theirs, &x))) break;
                }
            }
            if (x) { i++; continue; }
            if (r.ovf && (rc = ovf_free(&c, r.ovpg))) break;
            removed++;
            removed_bytes += r.size + PG_EXTRA;
            hits--;
            bkt_del(&c, d, i);
        }
        if (rc) { c.pa->release(pg); goto out; }
        uint32_t n = g32(d + B_NREC);
        if (n) {
            c.pa->release(pg);
            prev = p;
            p = next;
        } else if (p != head) {
            /* An empty overflow page: unlink and free it. */
            c.pa->release(pg);
            ts_page *pp;
            if ((rc = c.pa->get(tx, prev, TS_PAGE_WRITE, &pp))) goto out;
            p64((uint8_t *)c.pa->data(pp) + B_NEXT, next);
            c.pa->release(pp);
            if ((rc = c.pa->free(tx, p))) goto out;
            p = next;
        } else if (next) {
            /* An empty head: pull the next page in and look at it again. */
            ts_page *np;
            uint8_t *nd;
            if ((rc = bkt_get(&c, next, TS_PAGE_READ, &np, &nd))) { c.pa->release(pg); goto out; }
            memcpy(d, nd, m->usable);
            c.pa->release(np);
            c.pa->release(pg);
            if ((rc = c.pa->free(tx, next))) goto out;
        } else {
            c.pa->release(pg);
            if ((rc = c.pa->free(tx, p)) || (rc = dir_set(&c, b, 0))) goto out;
            p = 0;
        }
    }
    if (!removed) {
        rc = ix->host->error(ix->env, TS_ERR_NOT_FOUND, val ? "hash index: no such entry"
                                                          : "hash index: no such key");
        goto out;
    }
    m->nentries -= removed;
    m->bytes -= removed_bytes;
    rc = rebalance(&c);
out:
    ctx_end(&c);
    return rc;
}

/* ---- cursors ---------------------------------------------------------------- */

/* One entry of a cursor's copy of a bucket (fields cached from its record). */
typedef struct hxent {
    uint64_t p;      /* bit-reversed hash: the primary sort key */
    size_t   off;    /* record in the copy's buffer */
    uint32_t klen, vlen;
    uint64_t ovpg;   /* first overflow page; 0: the value is inline */
} hxent;

typedef struct hxcur {
    hxidx   *ix;
    ts_txn  *tx;
    /* The copy: a whole bucket (partial = 0) or only the entries of the
     * key a seek looked for (partial = 1), sorted; valid while
     * gen == ix->gen. */
    uint64_t gen;
    int      have, partial;
    uint64_t bucket;
    hxmeta   m;
    hxset    set;
    hxent   *ents, *tmp;
    size_t   n, cap, i;
    /* the current entry, copied (key[] below): its pointers survive any change */
    int      on;
    uint64_t h;
    size_t   klen;
    uint8_t *val;
    size_t   vlen, vcap;
    int      err;  /* an error met while sorting */
    /* What this cursor has read of the meta page and the directory, valid
     * while dgen == ix->gen (its transaction's view of the index cannot
     * change otherwise): repeated seeks and scans skip those pages. */
    int      dvalid, used;  /* used: an operation ran before (worth keeping copies) */
    uint64_t dgen;
    hxmeta   dm;
    uint8_t *dtop;  /* the meta page's top[] */
    size_t   dtopcap;
    int      leafon;  /* leaf[] initialised */
    /* Not cleared at cursor_open: each is written before it is read. */
    struct { uint64_t id; uint64_t *slots; } leaf[HX_LEAF_CACHE]; /* id: leaf number + 1 */
    uint8_t  key[TS_INDEX_KEY_MAX];
    /* Inline storage for set, ents and val: a lookup of a key with a few
     * small values allocates nothing beyond the cursor. */
    uint8_t  sinl[512];
    hxent    einl[8];
    uint8_t  vinl[64];
} hxcur;

/* The head page of bucket b, through the cursor's copy of the directory. */
static int cdir_get(hxcur *cu, hxctx *c, uint64_t b, uint64_t *out)
{
    if (!cu->dvalid) return dir_get(c, b, out); /* first operation: meta page pinned */
    const hxmeta *m = &cu->dm;
    uint64_t span = span_of(m, m->depth), t = b / span, rem = b % span;
    *out = 0;
    if (t >= m->ntop) return corrupt(cu->ix, cu->ix->root, "bucket beyond the directory");
    uint64_t p = g64(cu->dtop + 8 * t);
    if (m->depth == 0 || !p) {
        *out = p;
        return TS_OK;
    }
    uint64_t id = b / m->fanout + 1;
    unsigned k = (unsigned)(id % HX_LEAF_CACHE);
    if (cu->leaf[k].id == id) {
        *out = cu->leaf[k].slots[b % m->fanout];
        return TS_OK;
    }
    ts_page *pg;
    uint8_t *dd;
    int rc;
    for (uint32_t d = m->depth; d > 1 && p; d--) {
        span /= m->fanout;
        if ((rc = dir_page(c, p, TS_PAGE_READ, &pg, &dd))) return rc;
        p = g64(dd + D_SLOTS + 8 * (rem / span));
        c->pa->release(pg);
        rem %= span;
    }
    if (!p) return TS_OK;
    if (!cu->leaf[k].slots && !(cu->leaf[k].slots = cu->ix->host->alloc((size_t)m->fanout * 8)))
        return nomem(cu->ix);
    if ((rc = dir_page(c, p, TS_PAGE_READ, &pg, &dd))) return rc;
    for (uint32_t i = 0; i < m->fanout; i++) cu->leaf[k].slots[i] = g64(dd + D_SLOTS + 8 * i);
    c->pa->release(pg);
    cu->leaf[k].id = id;
    *out = cu->leaf[k].slots[b % m->fanout];
    return TS_OK;
}

static const uint8_t *ent_key(const hxcur *cu, const hxent *e) { return cu->set.buf + e->off + R_HDR; }

static hxval ent_val(const hxcur *cu, const hxent *e)
{
    hxval v = { NULL, e->ovpg, e->vlen };
    if (!e->ovpg) v.mem = cu->set.buf + e->off + R_HDR + e->klen;
    return v;
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int x = al && bl ? memcmp(a, b, al < bl ? al : bl) : 0;
    return x ? x : (al > bl) - (al < bl);
}

/* Entry order; errors reading values go to cu->err. */
static int ent_cmp(hxcur *cu, hxctx *c, const hxent *a, const hxent *b)
{
    if (a->p != b->p) return a->p < b->p ? -1 : 1;
    int x = bytes_cmp(ent_key(cu, a), a->klen, ent_key(cu, b), b->klen);
    if (x) return x;
    if (a->vlen != b->vlen) return a->vlen < b->vlen ? -1 : 1;
    hxval va = ent_val(cu, a), vb = ent_val(cu, b);
    int rc = val_cmp(c, &va, &vb, &x);
    if (rc && !cu->err) cu->err = rc;
    return x;
}

/* An entry against the current position. */
static int pos_cmp(hxcur *cu, hxctx *c, const hxent *e, int *out)
{
    uint64_t p = bitrev64(cu->h);
    if (e->p != p) { *out = e->p < p ? -1 : 1; return TS_OK; }
    *out = bytes_cmp(ent_key(cu, e), e->klen, cu->key, cu->klen);
    if (*out) return TS_OK;
    hxval ve = ent_val(cu, e), vp = { cu->val, 0, cu->vlen };
    return val_cmp(c, &ve, &vp, out);
}

static void ent_sort(hxcur *cu, hxctx *c)
{
    /* Insertion sort for the few entries of one key; else a bottom-up
     * merge sort (stable; the comparator may read overflow pages). */
    if (cu->n <= 8) {
        for (size_t i = 1; i < cu->n; i++) {
            hxent e = cu->ents[i];
            size_t j = i;
            for (; j > 0 && ent_cmp(cu, c, &e, &cu->ents[j - 1]) < 0; j--) cu->ents[j] = cu->ents[j - 1];
            cu->ents[j] = e;
        }
        return;
    }
    hxent *src = cu->ents, *dst = cu->tmp; /* tmp: as large as ents once n > 8 */
    for (size_t w = 1; w < cu->n; w *= 2) {
        for (size_t lo = 0; lo < cu->n; lo += 2 * w) {
            size_t mid = lo + w < cu->n ? lo + w : cu->n, hi = lo + 2 * w < cu->n ? lo + 2 * w : cu->n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = ent_cmp(cu, c, &src[j], &src[i]) < 0 ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        hxent *t = src;
        src = dst;
        dst = t;
    }
    if (src != cu->ents) memcpy(cu->ents, src, cu->n * sizeof *src);
}

static int ent_add(hxcur *cu, const hxrec *r, size_t off)
{
    if (cu->n == cu->cap) {
        size_t nc = cu->cap * 2;
        hxent *ne;
        if (cu->ents == cu->einl) {
            if ((ne = cu->ix->host->alloc(nc * sizeof *ne))) memcpy(ne, cu->ents, cu->n * sizeof *ne);
        } else {
            ne = cu->ix->host->realloc(cu->ents, nc * sizeof *ne);
        }
        if (!ne) return nomem(cu->ix);
        cu->ents = ne;
        hxent *nt = cu->ix->host->realloc(cu->tmp, nc * sizeof *nt);
        if (!nt) return nomem(cu->ix);
        cu->tmp = nt;
        cu->cap = nc;
    }
    cu->ents[cu->n++] = (hxent){ bitrev64(r->h), off, r->klen, r->vlen, r->ovpg };
    return TS_OK;
}

static int snap_done(hxcur *cu, hxctx *c, uint64_t b, int partial)
{
    cu->err = 0;
    ent_sort(cu, c);
    if (cu->err) return cu->err;
    cu->bucket = b;
    cu->m = c->m;
    cu->partial = partial;
    cu->gen = atomic_load(&cu->ix->gen);
    cu->have = 1;
    return TS_OK;
}

static void snap_reset(hxcur *cu)
{
    cu->have = 0;
    cu->set.len = cu->set.npages = 0;
    cu->n = 0;
}

/* Copy bucket b, sorted, into the cursor. */
static int snap_load(hxcur *cu, hxctx *c, uint64_t b)
{
    snap_reset(cu);
    uint64_t head;
    int rc = cdir_get(cu, c, b, &head);
    if (rc || (rc = set_load(c, &cu->set, head))) return rc;
    for (size_t off = 0; off < cu->set.len;) {
        hxrec r;
        rec_parse(cu->set.buf + off, cu->set.len - off, &r); /* checked by set_load */
        if ((rc = ent_add(cu, &r, off))) return rc;
        off += r.size;
    }
    return snap_done(cu, c, b, 0);
}

/* Copy only the entries of one key (hash h) out of its bucket: what a
 * lookup needs, without copying and sorting the rest. */
static int snap_key(hxcur *cu, hxctx *c, uint64_t h, const void *key, size_t klen)
{
    snap_reset(cu);
    uint64_t b = bucket_of(&c->m, h), head;
    int rc = cdir_get(cu, c, b, &head);
    if (rc) return rc;
    hxwalk w = { head, 0, 1 };
    for (uint64_t p = head; p;) {
        ts_page *pg;
        uint8_t *d;
        if ((rc = bkt_get(c, p, TS_PAGE_READ, &pg, &d))) return rc;
        uint32_t i = 0;
        hxrec r;
        while ((rc = rec_find(c, p, d, &i, h, &r)) == 1) {
            rc = TS_OK;
            if (!key_eq(&r, h, key, klen)) continue;
            if (set_reserve(&cu->set, r.size)) {
                rc = nomem(cu->ix);
                break;
            }
            p64(cu->set.buf + cu->set.len, r.h);
            memcpy(cu->set.buf + cu->set.len + 8, r.raw, r.size - 8);
            if ((rc = ent_add(cu, &r, cu->set.len))) break;
            cu->set.len += r.size;
        }
        uint64_t next = g64(d + B_NEXT);
        c->pa->release(pg);
        if (rc || (rc = walk_step(c, &w, next))) return rc;
        p = next;
    }
    return snap_done(cu, c, b, 1);
}

/* Make entry i of the copy the current entry. */
static int land(hxcur *cu, hxctx *c, size_t i)
{
    const hxent *e = &cu->ents[i];
    if (e->vlen > cu->vcap) {
        size_t nc = cu->vcap;
        while (nc < e->vlen) nc *= 2;
        /* (the old bytes are not needed: the current entry changes) */
        uint8_t *nv = cu->val == cu->vinl ? cu->ix->host->alloc(nc) : cu->ix->host->realloc(cu->val, nc);
        if (!nv) return nomem(cu->ix);
        cu->val = nv;
        cu->vcap = nc;
    }
    hxval v = ent_val(cu, e);
    cu->on = 0;
    int rc = val_read(c, &v, cu->val);
    if (rc) return rc;
    if (e->klen) memcpy(cu->key, ent_key(cu, e), e->klen);
    cu->klen = e->klen;
    cu->vlen = e->vlen;
    cu->h = bitrev64(e->p);
    cu->i = i;
    cu->on = 1;
    return TS_OK;
}

/* Land on the first entry (dir > 0; last for dir < 0) of bucket b or of
 * the buckets after (before) it. */
static int scan_from(hxcur *cu, hxctx *c, uint64_t b, int dir)
{
    for (;;) {
        int rc = snap_load(cu, c, b);
        if (rc) return rc;
        if (cu->n) return land(cu, c, dir > 0 ? 0 : cu->n - 1);
        if (bucket_step(&c->m, b, dir, &b)) {
            cu->on = 0;
            return TS_ERR_NOT_FOUND;
        }
    }
}

/* The context of a cursor operation: the cursor's copy of the meta page,
 * refreshed (one read of the meta page) when the index has changed. */
static int cur_ctx(hxcur *cu, hxctx *c)
{
    uint64_t g = atomic_load(&cu->ix->gen);
    if (!cu->used) {
        /* A cursor's first operation (often its only one, as for a single
         * lookup) reads the pages directly: copies would not pay off. */
        cu->used = 1;
        return ctx_begin(c, cu->ix, cu->tx, 0);
    }
    if (!cu->dvalid || cu->dgen != g) {
        cu->dvalid = 0;
        int rc = ctx_begin(c, cu->ix, cu->tx, 0);
        if (rc) return rc;
        size_t need = (size_t)c->m.ntop * 8;
        if (need > cu->dtopcap) {
            uint8_t *nt = cu->ix->host->realloc(cu->dtop, need);
            if (!nt) {
                ctx_end(c);
                return nomem(cu->ix);
            }
            cu->dtop = nt;
            cu->dtopcap = need;
        }
        memcpy(cu->dtop, c->md + M_TOP, need);
        if (!cu->leafon) {
            memset(cu->leaf, 0, sizeof cu->leaf);
            cu->leafon = 1;
        }
        for (unsigned k = 0; k < HX_LEAF_CACHE; k++) cu->leaf[k].id = 0;
        cu->dm = c->m;
        cu->dgen = g;
        cu->dvalid = 1;
        ctx_end(c);
    }
    *c = (hxctx){ .ix = cu->ix, .tx = cu->tx, .pa = cu->ix->pa, .m = cu->dm };
    return TS_OK;
}

static int hx_cursor_open(void *idx, ts_txn *tx, void **out)
{
    hxidx *ix = idx;
    if (!tx || !out) return ix->host->error(ix->env, TS_ERR_INVALID, "hash index: cursor_open: NULL argument");
    hxcur *cu = ix->host->alloc(sizeof *cu);
    if (!cu) return nomem(ix);
    memset(cu, 0, offsetof(hxcur, leaf));
    cu->ix = ix;
    cu->tx = tx;
    cu->set.host = ix->host;
    cu->set.inl = cu->set.buf = cu->sinl;
    cu->set.cap = sizeof cu->sinl;
    cu->ents = cu->einl;
    cu->cap = sizeof cu->einl / sizeof *cu->einl;
    cu->val = cu->vinl;
    cu->vcap = sizeof cu->vinl;
    *out = cu;
    return TS_OK;
}

static void hx_cursor_close(void *cur)
{
    hxcur *cu = cur;
    if (!cu) return;
    const ts_host *h = cu->ix->host;
    set_free(&cu->set);
    if (cu->leafon)
        for (unsigned k = 0; k < HX_LEAF_CACHE; k++) h->free(cu->leaf[k].slots);
    h->free(cu->dtop);
    if (cu->ents != cu->einl) h->free(cu->ents);
    h->free(cu->tmp);
    if (cu->val != cu->vinl) h->free(cu->val);
    h->free(cu);
}

static int hx_first_last(hxcur *cu, int dir)
{
    hxctx c;
    int rc = cur_ctx(cu, &c);
    if (rc) return rc;
    cu->on = 0;
    rc = scan_from(cu, &c, dir > 0 ? 0 : bucket_of(&c.m, UINT64_MAX), dir);
    ctx_end(&c);
    return rc;
}

static int hx_first(void *cur) { return hx_first_last(cur, 1); }
static int hx_last(void *cur) { return hx_first_last(cur, -1); }

static int hx_step(hxcur *cu, int dir)
{
    if (!cu->on) return TS_ERR_NOT_FOUND;
    hxctx c;
    int rc;
    uint64_t b;
    if (cu->have && cu->gen == atomic_load(&cu->ix->gen)) {
        /* Nothing changed: move within the copy... */
        if (dir > 0 ? cu->i + 1 < cu->n : cu->i > 0) {
            /* (its overflow references are current too: no need to pin
             * the meta page) */
            hxctx lc = { .ix = cu->ix, .tx = cu->tx, .pa = cu->ix->pa, .m = cu->m };
            return land(cu, &lc, dir > 0 ? cu->i + 1 : cu->i - 1);
        }
        /* ...then to the neighbouring bucket (a copy of one key's entries
         * goes on below, in the rest of its bucket). */
        if (!cu->partial) {
            if (bucket_step(&cu->m, cu->bucket, dir, &b)) {
                cu->on = 0;
                return TS_ERR_NOT_FOUND;
            }
            if ((rc = cur_ctx(cu, &c))) return rc;
            rc = scan_from(cu, &c, b, dir);
            ctx_end(&c);
            return rc;
        }
    }
    /* The index changed (or only a key was copied): find the neighbour of
     * the current entry afresh. */
    if ((rc = cur_ctx(cu, &c))) return rc;
    b = bucket_of(&c.m, cu->h);
    if ((rc = snap_load(cu, &c, b))) goto out;
    size_t i, found = SIZE_MAX;
    for (i = 0; i < cu->n; i++) {
        size_t k = dir > 0 ? i : cu->n - 1 - i;
        int x;
        if ((rc = pos_cmp(cu, &c, &cu->ents[k], &x))) goto out;
        if (dir > 0 ? x > 0 : x < 0) { found = k; break; }
    }
    if (found != SIZE_MAX) rc = land(cu, &c, found);
    else if (bucket_step(&c.m, b, dir, &b)) { cu->on = 0; rc = TS_ERR_NOT_FOUND; }
    else rc = scan_from(cu, &c, b, dir);
out:
    ctx_end(&c);
    return rc;
}

static int hx_next(void *cur) { return hx_step(cur, 1); }
static int hx_prev(void *cur) { return hx_step(cur, -1); }

static int hx_seek(void *cur, const void *key, size_t klen, int mode)
{
    hxcur *cu = cur;
    hxidx *ix = cu->ix;
    cu->on = 0;
    if (mode != TS_SEEK_EQ)
        return ix->host->error(ix->env, TS_ERR_UNSUPPORTED,
                               "hash index: seek supports only TS_SEEK_EQ (no key order)");
    int rc = check_kv(ix, key, klen, NULL, 0, 0);
    if (rc) return rc;
    hxctx c;
    if ((rc = cur_ctx(cu, &c))) return rc;
    rc = snap_key(cu, &c, hx_hash(key, klen, c.m.seed), key, klen);
    if (!rc) rc = cu->n ? land(cu, &c, 0) : TS_ERR_NOT_FOUND;
    ctx_end(&c);
    return rc;
}

static int hx_entry(void *cur, const void **key, size_t *klen, const void **val, size_t *vlen)
{
    hxcur *cu = cur;
    if (!cu->on) return cu->ix->host->error(cu->ix->env, TS_ERR_NOT_FOUND,
                                            "hash index: the cursor is not on an entry");
    if (key) *key = cu->key;
    if (klen) *klen = cu->klen;
    if (val) *val = cu->val;
    if (vlen) *vlen = cu->vlen;
    return TS_OK;
}

/* ---- descriptor ------------------------------------------------------------- */

static const ts_index_vtab hash_vtab = {
    .struct_size = sizeof(ts_index_vtab),
    .caps = TS_INDEX_UNIQUE,
    .create = hx_create,
    .open = hx_open,
    .close = hx_close,
    .drop = hx_drop,
    .insert = hx_insert,
    .remove = hx_remove,
    .cursor_open = hx_cursor_open,
    .cursor_close = hx_cursor_close,
    .seek = hx_seek,
    .first = hx_first,
    .last = hx_last,
    .next = hx_next,
    .prev = hx_prev,
    .entry = hx_entry,
    .bulk_load = NULL,
};

static const ts_module hash_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_INDEX,
    .name = "hash",
    .version = "1.0.0",
    .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_index_vtab),
    .vtab = &hash_vtab,
};

static const ts_module *const hash_modules[] = { &hash_module, NULL };

static const ts_plugin hash_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "hash",
    .version = "1.0.0",
    .modules = hash_modules,
};

TS_PLUGIN_DEFINE(hash_plugin)
