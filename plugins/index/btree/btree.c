/*
 * btree - a B+tree index module (kind TS_KIND_INDEX, module "btree") over
 * the kernel page API.  docs/btree.md describes the design; in short:
 *
 *  - Nodes are pages with a slot array of cell offsets (SQLite-style): the
 *    header and slots grow up from the start, cells grow down from the end,
 *    so a lookup is a binary search over slots and an insert moves only
 *    6-byte slots.  Each slot also holds a 4-byte key hint (the key bytes
 *    after the node's common prefix), so most probes of a binary search
 *    never touch a cell.  Keys compare with memcmp (shorter first on a tie).
 *  - Leaves hold entries ordered by (key, value); internal nodes hold
 *    separators, truncated to the shortest (key, value-prefix) that still
 *    separates their neighbours ("suffix truncation"), each with the child
 *    on its left, plus a rightmost child in the header.
 *  - Values that do not fit inline (and very long separator prefixes) live
 *    in overflow page chains owned by exactly one cell.
 *  - The root page never moves: a full root is split in place (its cells
 *    go to two new children) and a root left with one child absorbs it.
 *  - Deletes merge a node that falls under a quarter full with a sibling
 *    when both fit in one page, and otherwise redistribute the two.
 *  - Nothing about the tree is cached in memory, so a rollback (which the
 *    kernel does) needs no help from here and the index handle stays
 *    immutable: many read transactions use it at once, each cursor holds
 *    its own state.  Only modifications take the handle's mutex, for the
 *    scratch buffers and the list of write-transaction cursors, which are
 *    told to save their position (a copy of their entry) and drop their
 *    pins before any page changes, then re-seek on their next move.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <tostore/index.h>

#define BT_VERSION "1.0.0"

/* Page types (first byte of every page of an index). */
#define BT_LEAF  0xB1
#define BT_INNER 0xB2
#define BT_OVFL  0xB3
#define BT_FLAG_ROOT 0x01

/* Node header: type(1) flags(1) nslots(2) content(2) frag(2) right(8)
 * hint-prefix length(1) hint prefix(HINT_PFX) reserved(3). */
#define HDR 32
#define HINT_PFX 12
/* A slot: cell offset(2) and key hint(4), the 4 key bytes after the
 * node's common prefix, big endian, zero padded. */
#define SLOT 6
/* Overflow page header: type(1) pad(3) bytes(4) next(8). */
#define OHDR 16
/* Deepest tree accepted (far beyond any real one: fanout is at least 3). */
#define MAXD 40
#define VAL_MAX (16u << 20)

enum { ST_NONE, ST_VALID, ST_SAVED, ST_AFTER, ST_BEFORE };
enum { V_MIN, V_EXACT, V_MAX };
#define HAVE_K 1
#define HAVE_V 2

/* ---- bytes ---------------------------------------------------------- */

static inline unsigned g16(const uint8_t *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static inline void p16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline uint32_t g32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void p32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t g64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static inline void p64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* LEB128 varints (at most 5 bytes for 32-bit values). */
static inline unsigned vsize(uint32_t v)
{
    unsigned n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}
static inline unsigned vput(uint8_t *p, uint32_t v)
{
    unsigned n = 0;
    while (v >= 0x80) { p[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[n++] = (uint8_t)v;
    return n;
}
static inline const uint8_t *vget(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
    if (p < end && *p < 0x80) { *v = *p; return p + 1; }
    uint32_t r = 0;
    for (unsigned s = 0; s < 35 && p < end; s += 7) {
        uint8_t b = *p++;
        r |= (uint32_t)(b & 0x7f) << s;
        if (!(b & 0x80)) { *v = r; return p; }
    }
    return NULL;
}

static inline int bcmp_len(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int r = m ? memcmp(a, b, m) : 0;
    return r ? r : (al > bl) - (al < bl);
}

/* ---- handles -------------------------------------------------------- */

typedef struct bt_cursor bt_cursor;

typedef struct bt_index {
    const ts_host     *host;
    ts_env            *env;
    const ts_page_api *pa;
    uint64_t           root;
    pthread_mutex_t    mu;       /* modifications: scratch and wcursors */
    bt_cursor         *wcursors; /* open cursors of write transactions */
    /* scratch for modifications, sized for usable size sU */
    uint32_t           sU;
    uint8_t           *scratch;
    uint8_t           *pgA, *pgB, *pgD, *ncell, *sep[2], *pull;
    const uint8_t    **cp;
    uint32_t          *cl;
} bt_index;

/* What every page access needs. */
typedef struct btx {
    bt_index          *ix;
    ts_txn            *txn;
    const ts_page_api *pa;
    uint32_t           U;       /* usable bytes per page */
    uint32_t           cap;     /* U - HDR: bytes for slots and cells */
    uint32_t           maxcell; /* largest cell: three fit in a node */
} btx;

typedef struct bt_level {
    ts_page       *pg;
    const uint8_t *d;
    uint64_t       pgno;
    int            idx;  /* leaf: entry; internal: child (n = rightmost) */
    int            n;
} bt_level;

struct bt_cursor {
    btx        x;
    int        write;       /* registered in ix->wcursors */
    bt_cursor *next, *prev;
    int        state, depth, pinned, have;
    uint32_t   sklen;       /* key in kbuf (HAVE_K) */
    size_t     svlen;       /* value in vbuf (HAVE_V) */
    uint8_t   *vbuf;
    size_t     vcap;
    uint8_t    kbuf[TS_INDEX_KEY_MAX];
    bt_level   lv[MAXD];
};

/* A search target: (key, value) with the value exact, or below/above every
 * value of the key. */
typedef struct target {
    const uint8_t *k, *v;
    size_t         kl, vl;
    int            vmode;
} target;

/* A parsed cell. */
typedef struct cellv {
    const uint8_t *key, *val;   /* val NULL when in overflow */
    uint32_t       klen, vlen, size;
    uint64_t       ovfl, child;
} cellv;

static int corrupt(btx *x, uint64_t pgno, const char *what)
{
    return x->ix->host->error(x->ix->env, TS_ERR_CORRUPT, "btree index %llu: page %llu: %s",
                              (unsigned long long)x->ix->root, (unsigned long long)pgno, what);
}

static int nomem(btx *x)
{
    return x->ix->host->error(x->ix->env, TS_ERR_NOMEM, "btree: out of memory");
}

static void btx_init(btx *x, bt_index *ix, ts_txn *txn)
{
    x->ix = ix;
    x->txn = txn;
    x->pa = ix->pa;
    x->U = ix->pa->usable_size(txn);
    x->cap = x->U > HDR ? x->U - HDR : 0;
    x->maxcell = x->cap / 3 > SLOT ? x->cap / 3 - SLOT : 0;
}

/* ---- cells ---------------------------------------------------------- */

static inline uint32_t cell_need(int inner, uint32_t kl, uint32_t vl, int ov)
{
    return (inner ? 8u : 0u) + vsize(kl) + vsize(vl << 1 | (ov ? 1u : 0u)) + kl + (ov ? 8u : vl);
}

/* Write a cell; when val is NULL and !ovfl the value bytes are left for
 * the caller (they start at size - vl).  Returns its size. */
static uint32_t cell_build(uint8_t *out, int inner, uint64_t child, const uint8_t *k, uint32_t kl,
                           const uint8_t *v, uint32_t vl, uint64_t ovfl)
{
    uint8_t *p = out;
    if (inner) { p64(p, child); p += 8; }
    p += vput(p, kl);
    p += vput(p, vl << 1 | (ovfl ? 1u : 0u));
    if (kl) memcpy(p, k, kl);
    p += kl;
    if (ovfl) {
        p64(p, ovfl);
        p += 8;
    } else {
        if (v && vl) memcpy(p, v, vl);
        p += vl;
    }
    return (uint32_t)(p - out);
}

static int cell_parse_buf(const uint8_t *p, const uint8_t *end, int inner, cellv *c)
{
    const uint8_t *s = p;
    uint32_t kl, vi;
    if (inner) {
        if (end - p < 8) return -1;
        c->child = g64(p);
        p += 8;
    } else {
        c->child = 0;
    }
    if (!(p = vget(p, end, &kl)) || !(p = vget(p, end, &vi))) return -1;
    if (kl > (size_t)(end - p)) return -1;
    c->key = p;
    c->klen = kl;
    p += kl;
    c->vlen = vi >> 1;
    if (vi & 1) {
        if (end - p < 8) return -1;
        c->ovfl = g64(p);
        c->val = NULL;
        p += 8;
        if (!c->ovfl) return -1;
    } else {
        if (c->vlen > (size_t)(end - p)) return -1;
        c->ovfl = 0;
        c->val = p;
        p += c->vlen;
    }
    c->size = (uint32_t)(p - s);
    return 0;
}

/* ---- nodes ---------------------------------------------------------- */

static inline unsigned nd_n(const uint8_t *d) { return g16(d + 2); }
static inline unsigned nd_content(const uint8_t *d) { return g16(d + 4); }
static inline unsigned nd_frag(const uint8_t *d) { return g16(d + 6); }
static inline uint64_t nd_right(const uint8_t *d) { return g64(d + 8); }
static inline unsigned nd_slot(const uint8_t *d, unsigned i) { return g16(d + HDR + SLOT * i); }
static inline uint32_t nd_hint(const uint8_t *d, unsigned i)
{
    const uint8_t *p = d + HDR + SLOT * i + 2;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline unsigned nd_hp(const uint8_t *d) { return d[16]; }
static inline unsigned nd_gap(const uint8_t *d) { return nd_content(d) - (HDR + SLOT * nd_n(d)); }
static inline unsigned nd_free(const uint8_t *d) { return nd_gap(d) + nd_frag(d); }
static inline int nd_inner(const uint8_t *d) { return d[0] == BT_INNER; }

static inline uint32_t key_hint(const uint8_t *k, size_t kl, unsigned hp)
{
    uint32_t h = 0;
    for (unsigned i = 0; i < 4; i++) h = h << 8 | (hp + i < kl ? k[hp + i] : 0u);
    return h;
}

static inline void slot_set(uint8_t *d, unsigned i, unsigned off, uint32_t hint)
{
    uint8_t *p = d + HDR + SLOT * i;
    p16(p, off);
    p[2] = (uint8_t)(hint >> 24);
    p[3] = (uint8_t)(hint >> 16);
    p[4] = (uint8_t)(hint >> 8);
    p[5] = (uint8_t)hint;
}

/* The key of a cell known to be well formed. */
static inline void cell_key(const uint8_t *c, int inner, const uint8_t **k, uint32_t *kl)
{
    const uint8_t *p = c + (inner ? 8 : 0);
    uint32_t n = 0;
    for (unsigned s = 0;; s += 7) { n |= (uint32_t)(*p & 0x7f) << s; if (!(*p++ & 0x80)) break; }
    while (*p++ & 0x80) {}
    *k = p;
    *kl = n;
}

static void nd_init(uint8_t *d, uint32_t U, int type, int flags, uint64_t right)
{
    memset(d, 0, HDR);
    d[0] = (uint8_t)type;
    d[1] = (uint8_t)flags;
    p16(d + 4, U);
    p64(d + 8, right);
}

/* Cheap structural check of a node header (cells are checked as parsed). */
static int nd_check(btx *x, const uint8_t *d, uint64_t pgno)
{
    if (d[0] != BT_LEAF && d[0] != BT_INNER) return corrupt(x, pgno, "not a btree node");
    unsigned n = nd_n(d), c = nd_content(d);
    if (HDR + SLOT * n > c || c > x->U || nd_frag(d) > x->U - c || nd_hp(d) > HINT_PFX)
        return corrupt(x, pgno, "bad node header");
    return TS_OK;
}

static int nd_cell(btx *x, const uint8_t *d, uint64_t pgno, unsigned i, cellv *c)
{
    unsigned off = nd_slot(d, i);
    if (off < nd_content(d) || off >= x->U || cell_parse_buf(d + off, d + x->U, nd_inner(d), c))
        return corrupt(x, pgno, "bad cell");
    return TS_OK;
}

static int nd_child(btx *x, const uint8_t *d, uint64_t pgno, unsigned i, uint64_t *child)
{
    if (i >= nd_n(d)) {
        *child = nd_right(d);
    } else {
        unsigned off = nd_slot(d, i);
        if (off < nd_content(d) || off + 8 > x->U) return corrupt(x, pgno, "bad cell");
        *child = g64(d + off);
    }
    if (*child < 2) return corrupt(x, pgno, "bad child pointer");
    return TS_OK;
}

static void nd_set_child(uint8_t *d, unsigned i, uint64_t child)
{
    if (i >= nd_n(d)) p64(d + 8, child);
    else p64(d + nd_slot(d, i), child);
}

/* The key of the cell at slot i: the fast path of the searches, which
 * parse the rest of a cell only when its key ties with the target. */
static inline int slot_key(btx *x, const uint8_t *d, unsigned i, int inner, const uint8_t **k,
                           uint32_t *kl)
{
    unsigned off = nd_slot(d, i);
    const uint8_t *p = d + off + (inner ? 8 : 0), *end = d + x->U;
    if (off < nd_content(d) || p + 2 > end) return -1;
    uint32_t n;
    if (*p < 0x80) n = *p++;
    else if (!(p = vget(p, end, &n))) return -1;
    while (p < end && (*p & 0x80)) p++; /* the value's varint */
    if (++p > end || n > (size_t)(end - p)) return -1;
    *k = p;
    *kl = n;
    return 0;
}

/* Recompute the hint prefix (the common prefix of the first and last
 * keys, hence of all) and every hint. */
static void nd_rehint(uint8_t *d)
{
    unsigned n = nd_n(d), hp = 0;
    int inner = nd_inner(d);
    const uint8_t *k0 = NULL, *k1, *k;
    uint32_t kl0 = 0, kl1, kl;
    if (n) {
        cell_key(d + nd_slot(d, 0), inner, &k0, &kl0);
        cell_key(d + nd_slot(d, n - 1), inner, &k1, &kl1);
        unsigned m = kl0 < kl1 ? kl0 : kl1;
        if (m > HINT_PFX) m = HINT_PFX;
        while (hp < m && k0[hp] == k1[hp]) hp++;
    }
    d[16] = (uint8_t)hp;
    memset(d + 17, 0, HINT_PFX);
    if (hp) memcpy(d + 17, k0, hp);
    for (unsigned i = 0; i < n; i++) {
        unsigned off = nd_slot(d, i);
        cell_key(d + off, inner, &k, &kl);
        slot_set(d, i, off, key_hint(k, kl, hp));
    }
}

static void nd_build(uint8_t *d, uint32_t U, int type, int flags, const uint8_t *const *cp,
                     const uint32_t *cl, unsigned n, uint64_t right)
{
    nd_init(d, U, type, flags, right);
    unsigned off = U;
    for (unsigned i = 0; i < n; i++) {
        off -= cl[i];
        memcpy(d + off, cp[i], cl[i]);
        slot_set(d, i, off, 0);
    }
    p16(d + 2, n);
    p16(d + 4, off);
    nd_rehint(d);
}

/* Collect the cells of node d (copied to buf) into cp/cl from index k. */
static int nd_gather(btx *x, const uint8_t *d, uint64_t pgno, uint8_t *buf, unsigned k)
{
    bt_index *ix = x->ix;
    if (buf != d) memcpy(buf, d, x->U);
    unsigned n = nd_n(buf);
    for (unsigned i = 0; i < n; i++) {
        cellv c;
        int rc = nd_cell(x, buf, pgno, i, &c);
        if (rc) return rc;
        ix->cp[k + i] = buf + nd_slot(buf, i);
        ix->cl[k + i] = c.size;
    }
    return TS_OK;
}

static int nd_defrag(btx *x, uint8_t *d, uint64_t pgno)
{
    bt_index *ix = x->ix;
    int rc = nd_gather(x, d, pgno, ix->pgD, 0);
    if (rc) return rc;
    nd_build(d, x->U, d[0], d[1], ix->cp, ix->cl, nd_n(ix->pgD), nd_right(ix->pgD));
    return TS_OK;
}

/* Insert a cell at slot pos; the caller checked that it fits. */
static int nd_put(btx *x, uint8_t *d, uint64_t pgno, unsigned pos, const uint8_t *cell, uint32_t len)
{
    if (nd_gap(d) < len + SLOT) {
        int rc = nd_defrag(x, d, pgno);
        if (rc) return rc;
    }
    unsigned n = nd_n(d), off = nd_content(d) - len, hp = nd_hp(d);
    const uint8_t *k, *ok;
    uint32_t kl, okl;
    cell_key(cell, nd_inner(d), &k, &kl);
    /* a key outside the common prefix (at either end): a new prefix, read
     * from every cell, which nothing has checked on this path */
    int rehint = n == 0 || kl < hp || (hp && memcmp(k, d + 17, hp) != 0);
    for (unsigned i = 0; rehint && i < n; i++)
        if (slot_key(x, d, i, nd_inner(d), &ok, &okl)) return corrupt(x, pgno, "bad cell");
    memcpy(d + off, cell, len);
    memmove(d + HDR + SLOT * (pos + 1), d + HDR + SLOT * pos, SLOT * (n - pos));
    slot_set(d, pos, off, key_hint(k, kl, hp));
    p16(d + 2, n + 1);
    p16(d + 4, off);
    if (rehint) nd_rehint(d);
    return TS_OK;
}

static int nd_del(btx *x, uint8_t *d, uint64_t pgno, unsigned pos)
{
    cellv c;
    int rc = nd_cell(x, d, pgno, pos, &c);
    if (rc) return rc;
    unsigned n = nd_n(d), off = nd_slot(d, pos);
    if (off == nd_content(d)) p16(d + 4, off + c.size);
    else p16(d + 6, nd_frag(d) + c.size);
    memmove(d + HDR + SLOT * pos, d + HDR + SLOT * (pos + 1), SLOT * (n - pos - 1));
    p16(d + 2, n - 1);
    if (n == 1) { p16(d + 4, x->U); p16(d + 6, 0); d[16] = 0; }
    return TS_OK;
}

/* ---- pages ---------------------------------------------------------- */

static inline int pget(btx *x, uint64_t pgno, int mode, ts_page **pg, uint8_t **d)
{
    int rc = x->pa->get(x->txn, pgno, mode, pg);
    if (rc) return rc;
    *d = x->pa->data(*pg);
    return TS_OK;
}

static inline void prel(btx *x, ts_page *pg)
{
    if (pg) x->pa->release(pg);
}

static int palloc(btx *x, ts_page **pg, uint8_t **d, uint64_t *pgno)
{
    int rc = x->pa->alloc(x->txn, pg, pgno);
    if (rc) return rc;
    *d = x->pa->data(*pg);
    return TS_OK;
}

/* ---- overflow chains ------------------------------------------------ */

/* A reader over a value, inline or in an overflow chain, chunk by chunk. */
typedef struct vrd {
    btx           *x;
    const uint8_t *p;
    uint32_t       n;     /* bytes left in the current chunk */
    uint64_t       next;  /* next overflow page */
    uint32_t       left;  /* bytes in pages not read yet */
    uint32_t       pages; /* pages read, against cycles */
    ts_page       *pg;
} vrd;

static void vrd_init(vrd *r, btx *x, const cellv *c)
{
    r->x = x;
    r->pg = NULL;
    r->pages = 0;
    if (c->ovfl) {
        r->p = NULL;
        r->n = 0;
        r->next = c->ovfl;
        r->left = c->vlen;
    } else {
        r->p = c->val;
        r->n = c->vlen;
        r->next = 0;
        r->left = 0;
    }
}

/* 1: a chunk is current (r->n > 0); 0: the end; < 0: an error. */
static int vrd_fill(vrd *r)
{
    if (r->n) return 1;
    btx *x = r->x;
    if (r->pg) { prel(x, r->pg); r->pg = NULL; }
    if (!r->left) return 0;
    uint64_t pgno = r->next;
    if (pgno < 2 || ++r->pages > VAL_MAX / 64) return corrupt(x, pgno, "broken overflow chain");
    uint8_t *d;
    int rc = pget(x, pgno, TS_PAGE_READ, &r->pg, &d);
    if (rc) return rc;
    uint32_t nb = g32(d + 4);
    if (d[0] != BT_OVFL || !nb || nb > x->U - OHDR || nb > r->left) {
        prel(x, r->pg);
        r->pg = NULL;
        return corrupt(x, pgno, "bad overflow page");
    }
    r->p = d + OHDR;
    r->n = nb;
    r->left -= nb;
    r->next = g64(d + 8);
    return 1;
}

static void vrd_done(vrd *r)
{
    if (r->pg) prel(r->x, r->pg);
    r->pg = NULL;
}

/* *out = compare(stored value of c, b). */
static int val_cmp_mem(btx *x, const cellv *c, const uint8_t *b, size_t bl, int *out)
{
    vrd r;
    vrd_init(&r, x, c);
    size_t off = 0;
    int rc, res = 0;
    for (;;) {
        rc = vrd_fill(&r);
        if (rc < 0) break;
        if (rc == 0) { res = off < bl ? -1 : 0; break; }
        if (off == bl) { res = 1; rc = 0; break; }
        size_t m = r.n < bl - off ? r.n : bl - off;
        if ((res = memcmp(r.p, b + off, m))) { rc = 0; break; }
        off += m;
        r.p += m;
        r.n -= (uint32_t)m;
    }
    vrd_done(&r);
    *out = res;
    return rc < 0 ? rc : TS_OK;
}

/* Length of the common prefix of the values of a and b. */
static int val_lcp(btx *x, const cellv *a, const cellv *b, size_t *out)
{
    vrd ra, rb;
    vrd_init(&ra, x, a);
    vrd_init(&rb, x, b);
    size_t j = 0;
    int rc = 0;
    for (;;) {
        int fa = vrd_fill(&ra), fb = fa < 0 ? 0 : vrd_fill(&rb);
        if (fa < 0 || fb < 0) { rc = fa < 0 ? fa : fb; break; }
        if (!fa || !fb) break;
        uint32_t m = ra.n < rb.n ? ra.n : rb.n, k = 0;
        while (k < m && ra.p[k] == rb.p[k]) k++;
        j += k;
        if (k < m) break;
        ra.p += m; ra.n -= m;
        rb.p += m; rb.n -= m;
    }
    vrd_done(&ra);
    vrd_done(&rb);
    *out = j;
    return rc;
}

/* Copy the first n bytes of the value of c to dst. */
static int val_read(btx *x, const cellv *c, uint8_t *dst, size_t n)
{
    vrd r;
    vrd_init(&r, x, c);
    size_t off = 0;
    int rc = 0;
    while (off < n) {
        rc = vrd_fill(&r);
        if (rc <= 0) break;
        size_t m = r.n < n - off ? r.n : n - off;
        memcpy(dst + off, r.p, m);
        off += m;
        r.p += m;
        r.n -= (uint32_t)m;
        rc = 0;
    }
    vrd_done(&r);
    if (!rc && off < n) rc = corrupt(x, c->ovfl, "overflow chain too short");
    return rc;
}

static int ovfl_free(btx *x, uint64_t pgno, uint32_t len)
{
    uint32_t per = x->U - OHDR, pages = len / per + 2;
    while (pgno) {
        if (!pages--) return corrupt(x, pgno, "overflow chain too long");
        ts_page *pg;
        uint8_t *d;
        int rc = pget(x, pgno, TS_PAGE_READ, &pg, &d);
        if (rc) return rc;
        uint64_t next = g64(d + 8);
        int bad = d[0] != BT_OVFL;
        prel(x, pg);
        if (bad) return corrupt(x, pgno, "not an overflow page");
        if ((rc = x->pa->free(x->txn, pgno))) return rc;
        pgno = next;
    }
    return TS_OK;
}

static int ovfl_write(btx *x, const uint8_t *v, size_t n, uint64_t *first)
{
    uint32_t per = x->U - OHDR;
    ts_page *prev = NULL;
    uint8_t *pd = NULL;
    size_t off = 0;
    int rc = TS_OK;
    *first = 0;
    while (off < n) {
        ts_page *pg;
        uint8_t *d;
        uint64_t pgno;
        if ((rc = palloc(x, &pg, &d, &pgno))) break;
        size_t m = n - off < per ? n - off : per;
        d[0] = BT_OVFL;
        p32(d + 4, (uint32_t)m);
        p64(d + 8, 0);
        memcpy(d + OHDR, v + off, m);
        off += m;
        if (prev) { p64(pd + 8, pgno); prel(x, prev); }
        else *first = pgno;
        prev = pg;
        pd = d;
    }
    prel(x, prev);
    if (rc && *first) { ovfl_free(x, *first, (uint32_t)n); *first = 0; }
    return rc;
}

/* ---- comparing ------------------------------------------------------ */

/* *out = compare(t, c). */
static inline int tcmp(btx *x, const target *t, const cellv *c, int *out)
{
    int r = bcmp_len(t->k, t->kl, c->key, c->klen);
    if (r || t->vmode == V_MIN) {
        *out = r ? r : (c->vlen ? -1 : 0);
        return TS_OK;
    }
    if (t->vmode == V_MAX) { *out = 1; return TS_OK; }
    if (!c->ovfl) { *out = bcmp_len(t->v, t->vl, c->val, c->vlen); return TS_OK; }
    int rc = val_cmp_mem(x, c, t->v, t->vl, &r);
    *out = -r;
    return rc;
}

/* ---- the cursor machinery ------------------------------------------- */

static void cur_init(bt_cursor *c, bt_index *ix, ts_txn *txn)
{
    btx_init(&c->x, ix, txn);
    c->write = 0;
    c->next = c->prev = NULL;
    c->state = ST_NONE;
    c->depth = c->pinned = c->have = 0;
    c->sklen = 0;
    c->svlen = 0;
    c->vbuf = NULL;
    c->vcap = 0;
}

static void cur_release_from(bt_cursor *c, int l)
{
    for (int i = l; i < c->pinned; i++) {
        prel(&c->x, c->lv[i].pg);
        c->lv[i].pg = NULL;
    }
    if (l < c->pinned) c->pinned = l;
}

/* Make level l hold page pgno, reusing the pin it has when it matches. */
static int lv_set(bt_cursor *c, int l, uint64_t pgno)
{
    if (l < 0 || l >= MAXD) return corrupt(&c->x, pgno, "the tree is deeper than a btree can be");
    bt_level *v = &c->lv[l];
    if (l < c->pinned && v->pg && v->pgno == pgno) return TS_OK;
    if (l < c->pinned && v->pg) { prel(&c->x, v->pg); v->pg = NULL; }
    for (int i = c->pinned > 0 ? c->pinned : 0; i < l; i++) c->lv[i].pg = NULL;
    if (c->pinned < l) c->pinned = l;
    if (c->pinned == l) { v->pg = NULL; c->pinned = l + 1; }
    uint8_t *d;
    int rc = pget(&c->x, pgno, TS_PAGE_READ, &v->pg, &d);
    if (rc) { v->pg = NULL; return rc; }
    rc = nd_check(&c->x, d, pgno);
    if (!rc && (l == 0) != ((d[1] & BT_FLAG_ROOT) != 0))
        rc = corrupt(&c->x, pgno, l == 0 ? "not the root of a btree index" : "root flag below the root");
    if (rc) {
        /* not kept: the next lv_set of this page must check it again */
        prel(&c->x, v->pg);
        v->pg = NULL;
        return rc;
    }
    v->d = d;
    v->pgno = pgno;
    v->n = (int)nd_n(d);
#if defined(__GNUC__)
    /* The search's probes into the slot array depend on each other: ask
     * for every line of it now so that the misses overlap. */
    for (unsigned o = HDR; o < HDR + SLOT * (unsigned)v->n; o += 64) __builtin_prefetch(d + o);
#endif
    return TS_OK;
}


/* compare(t, cell i of node v) */
static inline int slot_cmp(btx *x, const bt_level *v, const target *t, unsigned i, int inner, int *r)
{
    const uint8_t *k;
    uint32_t kl;
    if (slot_key(x, v->d, i, inner, &k, &kl)) return corrupt(x, v->pgno, "bad cell");
    *r = bcmp_len(t->k, t->kl, k, kl);
    if (*r) return TS_OK;
    cellv c;
    int rc = nd_cell(x, v->d, v->pgno, i, &c);
    return rc ? rc : tcmp(x, t, &c, r);
}

/* Binary search of node v for t: leaves give the first entry >= t,
 * internal nodes the number of separators <= t (the child to follow).
 * Keys share the node's hint prefix, so a target outside it lies before
 * or after every cell, and within it most probes are decided by the
 * hints in the slot array without touching the cells. */
static int node_search(btx *x, const bt_level *v, const target *t, int inner, int *pos)
{
    const uint8_t *d = v->d;
    unsigned n = (unsigned)v->n, hp = nd_hp(d);
    size_t m = t->kl < hp ? t->kl : hp;
    int r0 = m ? memcmp(t->k, d + 17, m) : 0;
    if (!r0 && t->kl < hp) r0 = -1;
    if (r0 || !n) { *pos = r0 > 0 ? (int)n : 0; return TS_OK; }
    uint32_t th = key_hint(t->k, t->kl, hp);
    unsigned lo = 0, hi = n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        uint32_t h = nd_hint(d, mid);
        int r = 0;
        if (th != h) {
            r = th < h ? -1 : 1;
        } else {
            int rc = slot_cmp(x, v, t, mid, inner, &r);
            if (rc) return rc;
        }
        if (inner ? r < 0 : r <= 0) hi = mid; else lo = mid + 1;
    }
    *pos = (int)lo;
    return TS_OK;
}

static inline int leaf_search(btx *x, const bt_level *v, const target *t, int *pos)
{
    return node_search(x, v, t, 0, pos);
}

static inline int inner_search(btx *x, const bt_level *v, const target *t, int *pos)
{
    return node_search(x, v, t, 1, pos);
}

/* Descend to the leaf where t belongs; the leaf index is the first entry
 * >= t (possibly one past its last entry). */
static int cur_descend(bt_cursor *c, const target *t)
{
    uint64_t pgno = c->x.ix->root;
    for (int l = 0;; l++) {
        if (l >= MAXD) return corrupt(&c->x, pgno, "tree too deep");
        int rc = lv_set(c, l, pgno);
        if (rc) return rc;
        bt_level *v = &c->lv[l];
        if (v->d[0] == BT_LEAF) {
            c->depth = l + 1;
            cur_release_from(c, l + 1);
            return leaf_search(&c->x, v, t, &v->idx);
        }
        if ((rc = inner_search(&c->x, v, t, &v->idx))) return rc;
        if ((rc = nd_child(&c->x, v->d, v->pgno, (unsigned)v->idx, &pgno))) return rc;
    }
}

/* From the internal node at level l (its idx set), go down the leftmost
 * (dir > 0) or rightmost path to a leaf and stand on its first/last entry. */
static int cur_down(bt_cursor *c, int l, int dir)
{
    for (;;) {
        bt_level *v = &c->lv[l];
        uint64_t pgno;
        int rc = nd_child(&c->x, v->d, v->pgno, (unsigned)v->idx, &pgno);
        if (rc) return rc;
        if (++l >= MAXD) return corrupt(&c->x, pgno, "tree too deep");
        if ((rc = lv_set(c, l, pgno))) return rc;
        v = &c->lv[l];
        if (v->d[0] == BT_LEAF) {
            if (c->depth && l != c->depth - 1) return corrupt(&c->x, pgno, "unbalanced tree");
            if (v->n == 0) return corrupt(&c->x, pgno, "empty leaf below the root");
            c->depth = l + 1;
            v->idx = dir > 0 ? 0 : v->n - 1;
            return TS_OK;
        }
        v->idx = dir > 0 ? 0 : v->n;
    }
}

/* Move to the first entry of the next leaf (dir > 0) or the last of the
 * previous one; TS_ERR_NOT_FOUND at either end of the tree. */
static int cur_step_leaf(bt_cursor *c, int dir)
{
    int l = c->depth - 2;
    for (; l >= 0; l--) {
        bt_level *v = &c->lv[l];
        if (dir > 0 ? v->idx < v->n : v->idx > 0) break;
    }
    if (l < 0) return TS_ERR_NOT_FOUND;
    c->lv[l].idx += dir;
    return cur_down(c, l, dir);
}

/* Stand on the first/last entry of the tree. */
static int cur_edge(bt_cursor *c, int dir)
{
    int rc = lv_set(c, 0, c->x.ix->root);
    if (rc) return rc;
    bt_level *v = &c->lv[0];
    if (v->d[0] == BT_LEAF) {
        c->depth = 1;
        cur_release_from(c, 1);
        if (v->n == 0) return TS_ERR_NOT_FOUND;
        v->idx = dir > 0 ? 0 : v->n - 1;
        return TS_OK;
    }
    v->idx = dir > 0 ? 0 : v->n;
    c->depth = 0; /* unknown until the leaf */
    if ((rc = cur_down(c, 0, dir))) return rc;
    cur_release_from(c, c->depth);
    return TS_OK;
}

static inline bt_level *cur_leaf(bt_cursor *c) { return &c->lv[c->depth - 1]; }

/* After a descent: step onto the next entry when past the leaf's end. */
static int cur_fix_fwd(bt_cursor *c)
{
    bt_level *v = cur_leaf(c);
    if (v->idx < v->n) return TS_OK;
    return cur_step_leaf(c, 1);
}

static int cur_back(bt_cursor *c)
{
    bt_level *v = cur_leaf(c);
    if (v->idx > 0) { v->idx--; return TS_OK; }
    return cur_step_leaf(c, -1);
}

static int cur_fwd(bt_cursor *c)
{
    bt_level *v = cur_leaf(c);
    if (++v->idx < v->n) return TS_OK;
    return cur_step_leaf(c, 1);
}

static inline int cur_cell(bt_cursor *c, cellv *ci)
{
    bt_level *v = cur_leaf(c);
    return nd_cell(&c->x, v->d, v->pgno, (unsigned)v->idx, ci);
}

static int cur_vreserve(bt_cursor *c, size_t n)
{
    if (n <= c->vcap) return TS_OK;
    size_t nc = c->vcap ? c->vcap : 256;
    while (nc < n) nc *= 2;
    uint8_t *nb = c->x.ix->host->realloc(c->vbuf, nc);
    if (!nb) return nomem(&c->x);
    c->vbuf = nb;
    c->vcap = nc;
    return TS_OK;
}

/* Copy the current entry's key and/or value to kbuf/vbuf. */
static int cur_copy(bt_cursor *c, int what)
{
    cellv ci;
    int rc = cur_cell(c, &ci);
    if (rc) return rc;
    if ((what & HAVE_K) && !(c->have & HAVE_K)) {
        if (ci.klen > TS_INDEX_KEY_MAX) return corrupt(&c->x, cur_leaf(c)->pgno, "key too long");
        if (ci.klen) memcpy(c->kbuf, ci.key, ci.klen);
        c->sklen = ci.klen;
        c->have |= HAVE_K;
    }
    if ((what & HAVE_V) && !(c->have & HAVE_V)) {
        if ((rc = cur_vreserve(c, ci.vlen))) return rc;
        if (ci.ovfl) rc = val_read(&c->x, &ci, c->vbuf, ci.vlen);
        else if (ci.vlen) memcpy(c->vbuf, ci.val, ci.vlen);
        if (rc) return rc;
        c->svlen = ci.vlen;
        c->have |= HAVE_V;
    }
    return TS_OK;
}

/* Before the index changes in the cursor's transaction: keep a copy of the
 * entry and drop every pin; the next move re-seeks. */
static void cur_save(bt_cursor *c)
{
    if (c->state == ST_VALID)
        c->state = cur_copy(c, HAVE_K | HAVE_V) ? ST_NONE : ST_SAVED;
    cur_release_from(c, 0);
}

static int cur_set_end(bt_cursor *c, int rc, int end_state)
{
    if (rc == TS_ERR_NOT_FOUND) {
        c->state = end_state;
    } else if (rc) {
        c->state = ST_NONE;
    } else {
        c->state = ST_VALID;
    }
    return rc;
}

/* Back to the saved entry, then one step in dir. */
static int cur_restore(bt_cursor *c, int dir)
{
    target t = { c->kbuf, c->vbuf, c->sklen, c->svlen, V_EXACT };
    int rc = cur_descend(c, &t);
    if (rc) return rc;
    if (dir < 0) return cur_back(c);
    if ((rc = cur_fix_fwd(c))) return rc;
    cellv ci;
    int r;
    if ((rc = cur_cell(c, &ci)) || (rc = tcmp(&c->x, &t, &ci, &r))) return rc;
    return r == 0 ? cur_fwd(c) : TS_OK;
}

/* ---- module: create / open / close ---------------------------------- */

static int check_txn(const ts_host *host, ts_env *env, ts_txn *txn, int write)
{
    if (!host->pages)
        return host->error(env, TS_ERR_INVALID, "btree: the kernel page API is not available here");
    if (!txn) return host->error(env, TS_ERR_INVALID, "btree: no transaction");
    if (write && !host->pages->writable(txn))
        return host->error(env, TS_ERR_INVALID, "btree: a write needs a write transaction");
    uint32_t U = host->pages->usable_size(txn);
    /* A node must hold three of the largest cells (a separator with a
     * maximal key and an overflow reference) and U must fit 16 bits. */
    if (U > 65535 || (U - HDR) / 3 - SLOT < cell_need(1, TS_INDEX_KEY_MAX, VAL_MAX, 1))
        return host->error(env, TS_ERR_UNSUPPORTED, "btree: page size %u is not supported", U);
    return TS_OK;
}

static int bt_create(const ts_module_args *args, ts_txn *txn, uint64_t *root_out)
{
    const ts_host *host = args->host;
    int rc = check_txn(host, args->env, txn, 1);
    if (rc) return rc;
    ts_page *pg;
    uint64_t pgno;
    if ((rc = host->pages->alloc(txn, &pg, &pgno))) return rc;
    nd_init(host->pages->data(pg), host->pages->usable_size(txn), BT_LEAF, BT_FLAG_ROOT, 0);
    host->pages->release(pg);
    *root_out = pgno;
    return TS_OK;
}

static int bt_open(const ts_module_args *args, uint64_t root, void **idx_out)
{
    const ts_host *host = args->host;
    *idx_out = NULL;
    if (!host->pages)
        return host->error(args->env, TS_ERR_INVALID, "btree: the kernel page API is not available");
    if (root < 2) return host->error(args->env, TS_ERR_INVALID, "btree: bad root page %llu",
                                     (unsigned long long)root);
    bt_index *ix = host->calloc(1, sizeof *ix);
    if (!ix) return host->error(args->env, TS_ERR_NOMEM, "btree: out of memory");
    ix->host = host;
    ix->env = args->env;
    ix->pa = host->pages;
    ix->root = root;
    if (pthread_mutex_init(&ix->mu, NULL)) {
        host->free(ix);
        return host->error(args->env, TS_ERR_NOMEM, "btree: cannot create a mutex");
    }
    *idx_out = ix;
    return TS_OK;
}

static void bt_close(void *idx)
{
    bt_index *ix = idx;
    if (!ix) return;
    pthread_mutex_destroy(&ix->mu);
    ix->host->free(ix->scratch);
    ix->host->free(ix);
}

/* ---- modifications -------------------------------------------------- */

typedef struct wop {
    btx      x;
    int      depth, rightmost;
    uint64_t pgno[MAXD];
    int      pidx[MAXD]; /* internal: child taken; leaf: entry position */
} wop;

/* Scratch for modifications: page copies, cell lists and cell buffers. */
static int scratch_ready(btx *x)
{
    bt_index *ix = x->ix;
    if (ix->scratch && ix->sU == x->U) return TS_OK;
    size_t U = x->U, ncells = 2 * (U / 4) + 8;
    size_t bytes = 8 * U + ncells * (sizeof(uint8_t *) + sizeof(uint32_t)) + 64;
    uint8_t *s = ix->host->alloc(bytes);
    if (!s) return nomem(x);
    ix->host->free(ix->scratch);
    ix->scratch = s;
    ix->sU = x->U;
    ix->cp = (const uint8_t **)s;
    s += ncells * sizeof(uint8_t *);
    ix->cl = (uint32_t *)s;
    s += ncells * sizeof(uint32_t);
    ix->pgA = s; s += U;
    ix->pgB = s; s += U;
    ix->pgD = s; s += U;
    ix->ncell = s; s += U;
    ix->sep[0] = s; s += U;
    ix->sep[1] = s; s += U;
    ix->pull = s;
    return TS_OK;
}

/* Start a modification (ix->mu held): every cursor of this transaction
 * keeps a copy of its entry and lets go of its pages. */
static int wop_begin(wop *w, bt_index *ix, ts_txn *txn)
{
    btx_init(&w->x, ix, txn);
    w->depth = 0;
    w->rightmost = 0;
    for (bt_cursor *c = ix->wcursors; c; c = c->next)
        if (c->x.txn == txn) cur_save(c);
    return scratch_ready(&w->x);
}

static void wop_path(wop *w, const bt_cursor *c)
{
    w->depth = c->depth;
    w->rightmost = 1;
    for (int l = 0; l < c->depth; l++) {
        w->pgno[l] = c->lv[l].pgno;
        w->pidx[l] = c->lv[l].idx;
        if (l < c->depth - 1 && c->lv[l].idx != c->lv[l].n) w->rightmost = 0;
    }
}

/* The separator between leaf cells lc < rc: the shortest (key, value
 * prefix) s with lc < s <= rc, as an internal cell with child. */
static int make_sep(btx *x, const uint8_t *lc, uint32_t llen, const uint8_t *rc, uint32_t rlen,
                    uint64_t child, uint8_t *out, uint32_t *outlen)
{
    cellv L, R;
    if (cell_parse_buf(lc, lc + llen, 0, &L) || cell_parse_buf(rc, rc + rlen, 0, &R))
        return corrupt(x, child, "bad cell");
    uint32_t m = L.klen < R.klen ? L.klen : R.klen, j = 0;
    while (j < m && L.key[j] == R.key[j]) j++;
    if (j < L.klen || L.klen != R.klen) {
        if (j == R.klen || (j < L.klen && L.key[j] > R.key[j]))
            return corrupt(x, child, "entries out of order");
        *outlen = cell_build(out, 1, child, R.key, j + 1, NULL, 0, 0);
        return TS_OK;
    }
    size_t lcp;
    int rc2 = val_lcp(x, &L, &R, &lcp);
    if (rc2) return rc2;
    if (lcp >= R.vlen) return corrupt(x, child, "entries out of order");
    uint32_t pl = (uint32_t)lcp + 1;
    if (cell_need(1, R.klen, pl, 0) <= x->maxcell) {
        uint32_t n = cell_build(out, 1, child, R.key, R.klen, NULL, pl, 0);
        if ((rc2 = val_read(x, &R, out + n - pl, pl))) return rc2;
        *outlen = n;
        return TS_OK;
    }
    /* A long common prefix: the separator's value goes to its own chain. */
    uint8_t *tmp = x->ix->host->alloc(pl);
    if (!tmp) return nomem(x);
    uint64_t first = 0;
    rc2 = val_read(x, &R, tmp, pl);
    if (!rc2) rc2 = ovfl_write(x, tmp, pl, &first);
    x->ix->host->free(tmp);
    if (rc2) return rc2;
    *outlen = cell_build(out, 1, child, R.key, R.klen, NULL, pl, first);
    return TS_OK;
}

/* Where to split cells [0, N): leaves left [0,m) right [m,N); internal
 * nodes move cell m up, left [0,m) right (m,N).  Balanced by bytes, or all
 * but the last cell on the left for appends.  -1 when nothing fits. */
static int choose_split(const uint32_t *cl, int N, int inner, uint32_t cap, int append)
{
    uint64_t total = 0;
    for (int i = 0; i < N; i++) total += cl[i] + SLOT;
    int lo = 1, hi = N - 1 - inner;
    if (append && hi >= lo) {
        uint64_t left = total - (cl[N - 1] + SLOT) - (inner ? cl[N - 2] + SLOT : 0);
        if (left <= cap && cl[N - 1] + SLOT <= cap) return hi;
    }
    int best = -1;
    uint64_t bestd = UINT64_MAX, left = 0;
    for (int m = lo; m <= hi; m++) {
        left += cl[m - 1] + SLOT;
        uint64_t right = total - left - (inner ? cl[m] + SLOT : 0);
        if (left > cap || right > cap) continue;
        uint64_t d = left > right ? left - right : right - left;
        if (d < bestd) { bestd = d; best = m; }
    }
    return best;
}

static int node_insert(wop *w, int l, unsigned pos, const uint8_t *cell, uint32_t len);

/* Point slot i of the internal node at level l to child. */
static int set_child(wop *w, int l, unsigned i, uint64_t child)
{
    ts_page *pg;
    uint8_t *d;
    int rc = pget(&w->x, w->pgno[l], TS_PAGE_WRITE, &pg, &d);
    if (rc) return rc;
    nd_set_child(d, i, child);
    prel(&w->x, pg);
    return TS_OK;
}

/* Split node l (image in d, pinned for write as pg) whose cells plus the
 * new one are gathered in ix->cp/cl[0..N). */
static int node_split(wop *w, int l, ts_page *pg, uint8_t *d, int N, int append)
{
    btx *x = &w->x;
    bt_index *ix = x->ix;
    int inner = nd_inner(d), type = d[0], rc;
    uint64_t oldright = nd_right(ix->pgA);
    int m = choose_split(ix->cl, N, inner, x->cap, append);
    if (m < 0) { prel(x, pg); return corrupt(x, w->pgno[l], "node cannot be split"); }
    uint8_t *up = ix->sep[l & 1];
    uint32_t uplen;
    /* left part: [0,m); right part: [m,N) for leaves, (m,N) inside */
    const uint8_t *const *rcp = ix->cp + m + inner;
    const uint32_t *rcl = ix->cl + m + inner;
    unsigned rn = (unsigned)(N - m - inner);
    uint64_t leftright = 0;
    if (inner) {
        leftright = g64(ix->cp[m]);
        memcpy(up, ix->cp[m], ix->cl[m]);
        uplen = ix->cl[m];
    }
    ts_page *pr = NULL, *pl = NULL;
    uint8_t *dr, *dl;
    uint64_t rpg, lpg;
    if ((rc = palloc(x, &pr, &dr, &rpg))) { prel(x, pg); return rc; }
    if (l == 0) {
        /* The root splits in place: both halves move to new pages. */
        if ((rc = palloc(x, &pl, &dl, &lpg))) { prel(x, pr); prel(x, pg); return rc; }
    } else {
        pl = NULL;
        dl = d;
        lpg = w->pgno[l];
    }
    if (!inner) rc = make_sep(x, ix->cp[m - 1], ix->cl[m - 1], ix->cp[m], ix->cl[m], lpg, up, &uplen);
    else p64(up, lpg);
    if (!rc) {
        nd_build(dr, x->U, type, 0, rcp, rcl, rn, oldright);
        nd_build(dl, x->U, type, 0, ix->cp, ix->cl, (unsigned)m, leftright);
        if (l == 0) {
            nd_init(d, x->U, BT_INNER, BT_FLAG_ROOT, rpg);
            nd_put(x, d, w->pgno[0], 0, up, uplen);
        }
    }
    prel(x, pr);
    prel(x, pl);
    prel(x, pg);
    if (rc || l == 0) return rc;
    /* The parent's pointer to this node now points to the right half and
     * the separator goes in front of it with this node as its child. */
    if ((rc = set_child(w, l - 1, (unsigned)w->pidx[l - 1], rpg))) return rc;
    return node_insert(w, l - 1, (unsigned)w->pidx[l - 1], up, uplen);
}

/* Insert cell at slot pos of the node at level l, splitting upwards. */
static int node_insert(wop *w, int l, unsigned pos, const uint8_t *cell, uint32_t len)
{
    btx *x = &w->x;
    bt_index *ix = x->ix;
    ts_page *pg;
    uint8_t *d;
    int rc = pget(x, w->pgno[l], TS_PAGE_WRITE, &pg, &d);
    if (rc) return rc;
    if ((rc = nd_check(x, d, w->pgno[l]))) { prel(x, pg); return rc; }
    if (nd_free(d) >= len + SLOT) {
        rc = nd_put(x, d, w->pgno[l], pos, cell, len);
        prel(x, pg);
        return rc;
    }
    unsigned n = nd_n(d);
    /* gather: cells [0,pos), the new one, [pos,n) */
    if ((rc = nd_gather(x, d, w->pgno[l], ix->pgA, 0))) { prel(x, pg); return rc; }
    memmove(ix->cp + pos + 1, ix->cp + pos, (n - pos) * sizeof *ix->cp);
    memmove(ix->cl + pos + 1, ix->cl + pos, (n - pos) * sizeof *ix->cl);
    ix->cp[pos] = cell;
    ix->cl[pos] = len;
    return node_split(w, l, pg, d, (int)n + 1, w->rightmost && pos == n);
}

/* A root with no separator takes over its only child's content. */
static int root_collapse(wop *w)
{
    btx *x = &w->x;
    for (;;) {
        ts_page *pg;
        uint8_t *d;
        int rc = pget(x, x->ix->root, TS_PAGE_READ, &pg, &d);
        if (rc) return rc;
        int keep = !nd_inner(d) || nd_n(d) > 0;
        uint64_t child = nd_right(d);
        prel(x, pg);
        if (keep) return TS_OK;
        if ((rc = pget(x, x->ix->root, TS_PAGE_WRITE, &pg, &d))) return rc;
        ts_page *cg;
        uint8_t *cd;
        if ((rc = pget(x, child, TS_PAGE_READ, &cg, &cd))) { prel(x, pg); return rc; }
        if ((rc = nd_check(x, cd, child))) { prel(x, cg); prel(x, pg); return rc; }
        memcpy(d, cd, x->U);
        d[1] |= BT_FLAG_ROOT;
        prel(x, cg);
        prel(x, pg);
        if ((rc = x->pa->free(x->txn, child))) return rc;
    }
}

/* After a delete at level l: merge an underfull node with a sibling, or
 * even the two out; merges may cascade up to the root. */
static int rebalance(wop *w, int l)
{
    btx *x = &w->x;
    bt_index *ix = x->ix;
    w->rightmost = 0;
    for (; l > 0; l--) {
        ts_page *pg, *pp, *pa = NULL, *pb = NULL;
        uint8_t *d, *dp, *da, *db;
        int rc = pget(x, w->pgno[l], TS_PAGE_READ, &pg, &d);
        if (rc) return rc;
        unsigned n = nd_n(d), used = x->cap - nd_free(d);
        int inner = nd_inner(d), type = d[0];
        prel(x, pg);
        if (n > 0 && used >= x->cap / 4) return TS_OK;
        /* siblings a (left) and b (right) around separator i of the parent */
        if ((rc = pget(x, w->pgno[l - 1], TS_PAGE_READ, &pp, &dp))) return rc;
        unsigned pn = nd_n(dp), p = (unsigned)w->pidx[l - 1];
        if (pn == 0) { prel(x, pp); continue; }
        unsigned i = p > 0 ? p - 1 : p;
        uint64_t apg, bpg;
        cellv sep;
        rc = nd_child(x, dp, w->pgno[l - 1], i, &apg);
        if (!rc) rc = nd_child(x, dp, w->pgno[l - 1], i + 1, &bpg);
        if (!rc) rc = nd_cell(x, dp, w->pgno[l - 1], i, &sep);
        uint32_t pull_len = 0;
        if (!rc) {
            pull_len = sep.size;
            memcpy(ix->pull, dp + nd_slot(dp, i), sep.size);
        }
        prel(x, pp);
        if (rc) return rc;
        cell_parse_buf(ix->pull, ix->pull + pull_len, 1, &sep); /* points into pull now */
        rc = pget(x, apg, TS_PAGE_WRITE, &pa, &da);
        if (!rc) rc = pget(x, bpg, TS_PAGE_WRITE, &pb, &db);
        if (!rc) rc = nd_check(x, da, apg);
        if (!rc) rc = nd_check(x, db, bpg);
        if (!rc && (da[0] != type || db[0] != type)) rc = corrupt(x, apg, "siblings differ in type");
        unsigned na = 0, nb = 0;
        if (!rc) {
            na = nd_n(da);
            nb = nd_n(db);
            rc = nd_gather(x, da, apg, ix->pgA, 0);
        }
        unsigned k = na;
        if (!rc && inner) {
            p64(ix->pull, nd_right(ix->pgA)); /* the separator comes down */
            ix->cp[k] = ix->pull;
            ix->cl[k++] = pull_len;
        }
        if (!rc) rc = nd_gather(x, db, bpg, ix->pgB, k);
        if (rc) { prel(x, pa); prel(x, pb); return rc; }
        int N = (int)(k + nb);
        uint64_t total = 0;
        for (int j = 0; j < N; j++) total += ix->cl[j] + SLOT;
        if (total <= x->cap) {
            /* merge into b; a goes away with separator i */
            nd_build(db, x->U, type, 0, ix->cp, ix->cl, (unsigned)N, inner ? nd_right(ix->pgB) : 0);
            prel(x, pa);
            prel(x, pb);
            if ((rc = x->pa->free(x->txn, apg))) return rc;
            if (!inner && sep.ovfl && (rc = ovfl_free(x, sep.ovfl, sep.vlen))) return rc;
            if ((rc = pget(x, w->pgno[l - 1], TS_PAGE_WRITE, &pp, &dp))) return rc;
            rc = nd_del(x, dp, w->pgno[l - 1], i);
            prel(x, pp);
            if (rc) return rc;
            continue;
        }
        /* redistribute: a takes the left part, b the right, a new separator */
        int m = choose_split(ix->cl, N, inner, x->cap, 0);
        if (m < 0) { prel(x, pa); prel(x, pb); return corrupt(x, apg, "siblings cannot be balanced"); }
        uint8_t *up = ix->sep[l & 1];
        uint32_t uplen = 0;
        uint64_t aright = 0;
        if (inner) {
            aright = g64(ix->cp[m]);
            memcpy(up, ix->cp[m], ix->cl[m]);
            uplen = ix->cl[m];
            p64(up, apg);
        } else {
            rc = make_sep(x, ix->cp[m - 1], ix->cl[m - 1], ix->cp[m], ix->cl[m], apg, up, &uplen);
        }
        if (!rc) {
            nd_build(da, x->U, type, 0, ix->cp, ix->cl, (unsigned)m, aright);
            nd_build(db, x->U, type, 0, ix->cp + m + inner, ix->cl + m + inner,
                     (unsigned)(N - m - inner), inner ? nd_right(ix->pgB) : 0);
        }
        prel(x, pa);
        prel(x, pb);
        if (rc) return rc;
        if (!inner && sep.ovfl && (rc = ovfl_free(x, sep.ovfl, sep.vlen))) return rc;
        if ((rc = pget(x, w->pgno[l - 1], TS_PAGE_WRITE, &pp, &dp))) return rc;
        rc = nd_del(x, dp, w->pgno[l - 1], i);
        prel(x, pp);
        if (rc) return rc;
        return node_insert(w, l - 1, i, up, uplen);
    }
    return root_collapse(w);
}

/* Delete the entry at the leaf position of w's path. */
static int delete_at(wop *w)
{
    btx *x = &w->x;
    int l = w->depth - 1;
    ts_page *pg;
    uint8_t *d;
    int rc = pget(x, w->pgno[l], TS_PAGE_WRITE, &pg, &d);
    if (rc) return rc;
    cellv c;
    unsigned pos = (unsigned)w->pidx[l];
    rc = nd_cell(x, d, w->pgno[l], pos, &c);
    uint64_t ov = c.ovfl;
    uint32_t vl = c.vlen;
    if (!rc) rc = nd_del(x, d, w->pgno[l], pos);
    prel(x, pg);
    if (!rc && ov) rc = ovfl_free(x, ov, vl);
    if (!rc) rc = rebalance(w, l);
    return rc;
}

static int key_is(const cellv *c, const uint8_t *k, size_t kl)
{
    return c->klen == kl && (!kl || memcmp(c->key, k, kl) == 0);
}

/* With unique inserts: does the cursor's neighbourhood hold key k? */
static int unique_clash(bt_cursor *c, const uint8_t *k, size_t kl, int *clash)
{
    bt_level *v = cur_leaf(c);
    int pos = v->idx, n = v->n, rc;
    cellv ci;
    *clash = 0;
    if (pos < n) {
        if ((rc = nd_cell(&c->x, v->d, v->pgno, (unsigned)pos, &ci))) return rc;
        if (key_is(&ci, k, kl)) { *clash = 1; return TS_OK; }
    }
    if (pos > 0) {
        if ((rc = nd_cell(&c->x, v->d, v->pgno, (unsigned)pos - 1, &ci))) return rc;
        if (key_is(&ci, k, kl)) { *clash = 1; return TS_OK; }
    }
    if (pos == 0 || pos == n) {
        rc = cur_step_leaf(c, pos == 0 && n > 0 ? -1 : 1);
        if (rc == TS_ERR_NOT_FOUND) return TS_OK;
        if (rc || (rc = cur_cell(c, &ci))) return rc;
        if (key_is(&ci, k, kl)) *clash = 1;
    }
    return TS_OK;
}

static int check_kv(bt_index *ix, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (klen > TS_INDEX_KEY_MAX)
        return ix->host->error(ix->env, TS_ERR_VALIDATION, "btree: key of %zu bytes (at most %d)",
                               klen, TS_INDEX_KEY_MAX);
    if (vlen > VAL_MAX)
        return ix->host->error(ix->env, TS_ERR_VALIDATION, "btree: value of %zu bytes (at most %u)",
                               vlen, VAL_MAX);
    if ((!key && klen) || (!val && vlen))
        return ix->host->error(ix->env, TS_ERR_INVALID, "btree: NULL key or value");
    return TS_OK;
}

/* The leaf cell for (k, v) in ix->ncell, its value in a new overflow
 * chain when it does not fit inline. */
static int leaf_cell(btx *x, const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl,
                     uint32_t *len)
{
    if (cell_need(0, kl, vl, 0) <= x->maxcell) {
        *len = cell_build(x->ix->ncell, 0, 0, k, kl, v, vl, 0);
        return TS_OK;
    }
    uint64_t first;
    int rc = ovfl_write(x, v, vl, &first);
    if (rc) return rc;
    *len = cell_build(x->ix->ncell, 0, 0, k, kl, NULL, vl, first);
    return TS_OK;
}

static int do_insert(wop *w, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, int unique)
{
    btx *x = &w->x;
    bt_cursor c;
    cur_init(&c, x->ix, x->txn);
    target t = { k, v, kl, vl, V_EXACT };
    int rc = cur_descend(&c, &t), clash = 0;
    if (!rc) {
        wop_path(w, &c);
        bt_level *lf = cur_leaf(&c);
        if (lf->idx < lf->n) {
            cellv ci;
            int r;
            if (!(rc = cur_cell(&c, &ci)) && !(rc = tcmp(x, &t, &ci, &r)) && r == 0) clash = 2;
        }
        if (!rc && !clash && unique) rc = unique_clash(&c, k, kl, &clash);
    }
    cur_release_from(&c, 0);
    if (rc) return rc;
    if (clash)
        return x->ix->host->error(x->ix->env, TS_ERR_UNIQUE, clash == 2
                                  ? "btree: the entry (key, value) exists"
                                  : "btree: an entry with this key exists (unique)");
    uint32_t len;
    if ((rc = leaf_cell(x, k, (uint32_t)kl, v, (uint32_t)vl, &len))) return rc;
    return node_insert(w, w->depth - 1, (unsigned)w->pidx[w->depth - 1], x->ix->ncell, len);
}

static int do_remove(wop *w, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, int all)
{
    btx *x = &w->x;
    bt_cursor c;
    cur_init(&c, x->ix, x->txn);
    int rc, found = 0;
    for (;;) {
        target t = { k, v, kl, vl, all ? V_MIN : V_EXACT };
        rc = cur_descend(&c, &t);
        if (!rc) rc = cur_fix_fwd(&c);
        cellv ci;
        int r = 1;
        if (!rc) rc = cur_cell(&c, &ci);
        if (!rc) {
            if (all) r = key_is(&ci, k, kl) ? 0 : 1;
            else rc = tcmp(x, &t, &ci, &r);
        }
        if (!rc && r == 0) wop_path(w, &c);
        cur_release_from(&c, 0);
        if (rc || r != 0) break;
        if ((rc = delete_at(w))) return rc;
        found = 1;
        if (!all) return TS_OK;
    }
    if (rc && rc != TS_ERR_NOT_FOUND) return rc;
    if (found) return TS_OK;
    return x->ix->host->error(x->ix->env, TS_ERR_NOT_FOUND, "btree: no such entry");
}

static int bt_insert(void *idx, ts_txn *txn, const void *key, size_t klen, const void *val,
                     size_t vlen, int unique)
{
    bt_index *ix = idx;
    int rc = check_kv(ix, key, klen, val, vlen);
    if (!rc) rc = check_txn(ix->host, ix->env, txn, 1);
    if (rc) return rc;
    wop w;
    pthread_mutex_lock(&ix->mu);
    rc = wop_begin(&w, ix, txn);
    if (!rc) rc = do_insert(&w, key, klen, val, vlen, unique);
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

static int bt_remove(void *idx, ts_txn *txn, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    bt_index *ix = idx;
    int rc = check_kv(ix, key, klen, val, val ? vlen : 0);
    if (!rc) rc = check_txn(ix->host, ix->env, txn, 1);
    if (rc) return rc;
    wop w;
    pthread_mutex_lock(&ix->mu);
    rc = wop_begin(&w, ix, txn);
    if (!rc) rc = do_remove(&w, key, klen, val, val ? vlen : 0, val == NULL);
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

/* ---- drop ----------------------------------------------------------- */

static int free_tree(btx *x, uint64_t pgno, int depth)
{
    if (depth >= MAXD) return corrupt(x, pgno, "tree too deep");
    ts_page *pg;
    uint8_t *d;
    int rc = pget(x, pgno, TS_PAGE_READ, &pg, &d);
    if (rc) return rc;
    if ((rc = nd_check(x, d, pgno))) { prel(x, pg); return rc; }
    unsigned n = nd_n(d);
    for (unsigned i = 0; i <= n && !rc; i++) {
        if (nd_inner(d)) {
            uint64_t child;
            if (!(rc = nd_child(x, d, pgno, i, &child))) rc = free_tree(x, child, depth + 1);
        }
        if (i < n && !rc) {
            cellv c;
            if (!(rc = nd_cell(x, d, pgno, i, &c)) && c.ovfl) rc = ovfl_free(x, c.ovfl, c.vlen);
        }
    }
    prel(x, pg);
    return rc ? rc : x->pa->free(x->txn, pgno);
}

static int bt_drop(void *idx, ts_txn *txn)
{
    bt_index *ix = idx;
    int rc = check_txn(ix->host, ix->env, txn, 1);
    if (rc) return rc;
    wop w;
    pthread_mutex_lock(&ix->mu);
    rc = wop_begin(&w, ix, txn);
    if (!rc) rc = free_tree(&w.x, ix->root, 0);
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

/* ---- bulk load ------------------------------------------------------ */

/* Nodes under construction, one per level (0: leaves), written to pages
 * left to right as they fill; the top one becomes the root. */
typedef struct bulk {
    btx      *x;
    int       levels;
    uint8_t  *node[MAXD];
    uint8_t  *cellbuf[MAXD];  /* a cell on its way up from a level */
} bulk;

static int bulk_level(bulk *b, int l)
{
    if (l >= MAXD) return corrupt(b->x, b->x->ix->root, "bulk load: tree too deep");
    while (b->levels <= l) {
        uint8_t *m = b->x->ix->host->alloc(2 * (size_t)b->x->U);
        if (!m) return nomem(b->x);
        b->node[b->levels] = m;
        b->cellbuf[b->levels] = m + b->x->U;
        nd_init(m, b->x->U, b->levels ? BT_INNER : BT_LEAF, 0, 0);
        b->levels++;
    }
    return TS_OK;
}

static int bulk_write(bulk *b, uint8_t *node, uint64_t *pgno)
{
    nd_rehint(node);
    ts_page *pg;
    uint8_t *d;
    int rc = palloc(b->x, &pg, &d, pgno);
    if (rc) return rc;
    memcpy(d, node, b->x->U);
    prel(b->x, pg);
    return TS_OK;
}

static inline void nd_append(uint8_t *d, const uint8_t *cell, uint32_t len)
{
    unsigned n = nd_n(d), off = nd_content(d) - len;
    memcpy(d + off, cell, len);
    slot_set(d, n, off, 0); /* hints come at bulk_write */
    p16(d + 2, n + 1);
    p16(d + 4, off);
}

/* Add (child, separator) cell to level l; a full node is written with
 * its last cell's child as rightmost and that cell's separator goes up. */
static int bulk_push(bulk *b, int l, const uint8_t *cell, uint32_t len)
{
    int rc = bulk_level(b, l);
    if (rc) return rc;
    btx *x = b->x;
    uint8_t *d = b->node[l];
    if (nd_free(d) < len + SLOT) {
        unsigned n = nd_n(d);
        if (n < 2) return corrupt(x, x->ix->root, "bulk load: node too small");
        cellv last;
        if ((rc = nd_cell(x, d, 0, n - 1, &last))) return rc;
        uint8_t *up = b->cellbuf[l];
        memcpy(up, d + nd_slot(d, n - 1), last.size);
        p64(d + 8, last.child);
        p16(d + 2, n - 1);
        p16(d + 4, nd_content(d) + last.size); /* the last cell is the lowest */
        uint64_t pgno;
        if ((rc = bulk_write(b, d, &pgno))) return rc;
        p64(up, pgno);
        if ((rc = bulk_push(b, l + 1, up, last.size))) return rc;
        nd_init(d, x->U, BT_INNER, 0, 0);
    }
    nd_append(d, cell, len);
    return TS_OK;
}

static int bulk_run(bulk *b, int (*next)(void *, const void **, size_t *, const void **, size_t *),
                    void *ctx)
{
    btx *x = b->x;
    bt_index *ix = x->ix;
    int rc = bulk_level(b, 0);
    if (rc) return rc;
    uint8_t *leaf = b->node[0];
    for (;;) {
        const void *k, *v;
        size_t kl = 0, vl = 0;
        int more = next(ctx, &k, &kl, &v, &vl);
        if (more < 0) return more;
        if (more == 0) break;
        if ((rc = check_kv(ix, k, kl, v, vl))) return rc;
        unsigned n = nd_n(leaf);
        if (n) {
            cellv last;
            int r;
            target t = { k, v, kl, vl, V_EXACT };
            if ((rc = nd_cell(x, leaf, 0, n - 1, &last)) || (rc = tcmp(x, &t, &last, &r))) return rc;
            if (r <= 0)
                return ix->host->error(ix->env, TS_ERR_INVALID, "btree: bulk_load input is not in "
                                       "strictly ascending (key, value) order");
        }
        uint32_t len;
        if ((rc = leaf_cell(x, k, (uint32_t)kl, v, (uint32_t)vl, &len))) return rc;
        if (nd_free(leaf) < len + SLOT) {
            uint64_t pgno;
            uint32_t slen;
            if ((rc = bulk_write(b, leaf, &pgno))) return rc;
            if ((rc = make_sep(x, leaf + nd_slot(leaf, n - 1), x->U - nd_slot(leaf, n - 1), ix->ncell,
                               len, pgno, ix->sep[0], &slen)))
                return rc;
            if ((rc = bulk_push(b, 1, ix->sep[0], slen))) return rc;
            nd_init(leaf, x->U, BT_LEAF, 0, 0);
        }
        nd_append(leaf, ix->ncell, len);
    }
    /* Close every level: each node's last child is the one below. */
    uint64_t child = 0;
    for (int l = 0; l < b->levels; l++) {
        uint8_t *d = b->node[l];
        if (l > 0) p64(d + 8, child);
        if (l == b->levels - 1) {
            ts_page *pg;
            uint8_t *rd;
            if ((rc = pget(x, ix->root, TS_PAGE_WRITE, &pg, &rd))) return rc;
            nd_rehint(d);
            memcpy(rd, d, x->U);
            rd[1] = BT_FLAG_ROOT;
            prel(x, pg);
        } else if ((rc = bulk_write(b, d, &child))) {
            return rc;
        }
    }
    return TS_OK;
}

static int bt_bulk_load(void *idx, ts_txn *txn,
                        int (*next)(void *ctx, const void **key, size_t *klen, const void **val,
                                    size_t *vlen),
                        void *ctx)
{
    bt_index *ix = idx;
    int rc = check_txn(ix->host, ix->env, txn, 1);
    if (rc) return rc;
    if (!next) return ix->host->error(ix->env, TS_ERR_INVALID, "btree: bulk_load without next");
    wop w;
    pthread_mutex_lock(&ix->mu);
    rc = wop_begin(&w, ix, txn);
    if (!rc) {
        ts_page *pg;
        uint8_t *d;
        if (!(rc = pget(&w.x, ix->root, TS_PAGE_READ, &pg, &d))) {
            if (!(rc = nd_check(&w.x, d, ix->root)) && (d[0] != BT_LEAF || nd_n(d) != 0))
                rc = ix->host->error(ix->env, TS_ERR_INVALID, "btree: bulk_load needs an empty index");
            prel(&w.x, pg);
        }
    }
    if (!rc) {
        bulk b;
        memset(&b, 0, sizeof b);
        b.x = &w.x;
        rc = bulk_run(&b, next, ctx);
        for (int l = 0; l < b.levels; l++) ix->host->free(b.node[l]);
    }
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

/* ---- cursors -------------------------------------------------------- */

static int bt_cursor_open(void *idx, ts_txn *txn, void **cur_out)
{
    bt_index *ix = idx;
    *cur_out = NULL;
    int rc = check_txn(ix->host, ix->env, txn, 0);
    if (rc) return rc;
    bt_cursor *c = ix->host->alloc(sizeof *c);
    if (!c) return ix->host->error(ix->env, TS_ERR_NOMEM, "btree: out of memory");
    cur_init(c, ix, txn);
    if (ix->pa->writable(txn)) {
        c->write = 1;
        pthread_mutex_lock(&ix->mu);
        c->next = ix->wcursors;
        if (c->next) c->next->prev = c;
        ix->wcursors = c;
        pthread_mutex_unlock(&ix->mu);
    }
    *cur_out = c;
    return TS_OK;
}

static void bt_cursor_close(void *cur)
{
    bt_cursor *c = cur;
    if (!c) return;
    bt_index *ix = c->x.ix;
    cur_release_from(c, 0);
    if (c->write) {
        pthread_mutex_lock(&ix->mu);
        if (c->prev) c->prev->next = c->next; else ix->wcursors = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&ix->mu);
    }
    ix->host->free(c->vbuf);
    ix->host->free(c);
}

static int bt_seek(void *cur, const void *key, size_t klen, int mode)
{
    bt_cursor *c = cur;
    c->have = 0;
    if (!key && klen) {
        c->state = ST_NONE;
        return c->x.ix->host->error(c->x.ix->env, TS_ERR_INVALID, "btree: seek with a NULL key");
    }
    if (mode < TS_SEEK_EQ || mode > TS_SEEK_LT) {
        c->state = ST_NONE;
        return c->x.ix->host->error(c->x.ix->env, TS_ERR_INVALID, "btree: bad seek mode %d", mode);
    }
    target t = { key, NULL, klen, 0, (mode == TS_SEEK_GT || mode == TS_SEEK_LE) ? V_MAX : V_MIN };
    int rc = cur_descend(c, &t);
    if (rc) { c->state = ST_NONE; return rc; }
    switch (mode) {
    case TS_SEEK_EQ: {
        rc = cur_fix_fwd(c);
        cellv ci;
        if (!rc && !(rc = cur_cell(c, &ci)) && !key_is(&ci, key, klen)) rc = TS_ERR_NOT_FOUND;
        return cur_set_end(c, rc, ST_NONE);
    }
    case TS_SEEK_GE:
    case TS_SEEK_GT:
        return cur_set_end(c, cur_fix_fwd(c), ST_AFTER);
    default:
        return cur_set_end(c, cur_back(c), ST_BEFORE);
    }
}

/* Is the current entry exactly t? */
static int cur_is(bt_cursor *c, const target *t, int *yes)
{
    cellv ci;
    int out = 1;
    int rc = cur_cell(c, &ci);
    if (!rc) rc = tcmp(&c->x, t, &ci, &out);
    *yes = !rc && out == 0;
    return rc;
}

static int bt_seek_entry(void *cur, const void *key, size_t klen, const void *val, size_t vlen,
                         int mode)
{
    bt_cursor *c = cur;
    c->have = 0;
    if ((!key && klen) || (!val && vlen) || mode < TS_SEEK_GE || mode > TS_SEEK_LT) {
        c->state = ST_NONE;
        return c->x.ix->host->error(c->x.ix->env, TS_ERR_INVALID, "btree: bad seek_entry arguments");
    }
    target t = { key, val, klen, vlen, V_EXACT };
    int rc = cur_descend(c, &t), yes = 0;
    if (rc) { c->state = ST_NONE; return rc; }
    switch (mode) {
    case TS_SEEK_GE:
        return cur_set_end(c, cur_fix_fwd(c), ST_AFTER);
    case TS_SEEK_GT:
        rc = cur_fix_fwd(c);
        if (!rc && !(rc = cur_is(c, &t, &yes)) && yes) rc = cur_fwd(c);
        return cur_set_end(c, rc, ST_AFTER);
    case TS_SEEK_LT:
        return cur_set_end(c, cur_back(c), ST_BEFORE);
    default: /* LE */
        rc = cur_fix_fwd(c);
        if (!rc && !(rc = cur_is(c, &t, &yes)) && yes) return cur_set_end(c, TS_OK, ST_BEFORE);
        if (rc && rc != TS_ERR_NOT_FOUND) { c->state = ST_NONE; return rc; }
        if ((rc = cur_descend(c, &t))) { c->state = ST_NONE; return rc; }
        return cur_set_end(c, cur_back(c), ST_BEFORE);
    }
}

static int bt_first(void *cur)
{
    bt_cursor *c = cur;
    c->have = 0;
    return cur_set_end(c, cur_edge(c, 1), ST_AFTER);
}

static int bt_last(void *cur)
{
    bt_cursor *c = cur;
    c->have = 0;
    return cur_set_end(c, cur_edge(c, -1), ST_BEFORE);
}

static int cur_move(bt_cursor *c, int dir)
{
    int rc;
    switch (c->state) {
    case ST_VALID: rc = dir > 0 ? cur_fwd(c) : cur_back(c); break;
    case ST_SAVED: rc = cur_restore(c, dir); break;
    case ST_BEFORE: if (dir > 0) return bt_first(c); return TS_ERR_NOT_FOUND;
    case ST_AFTER: if (dir < 0) return bt_last(c); return TS_ERR_NOT_FOUND;
    default: return TS_ERR_NOT_FOUND;
    }
    c->have = 0;
    return cur_set_end(c, rc, dir > 0 ? ST_AFTER : ST_BEFORE);
}

static int bt_next(void *cur) { return cur_move(cur, 1); }
static int bt_prev(void *cur) { return cur_move(cur, -1); }

static int bt_entry(void *cur, const void **key, size_t *klen, const void **val, size_t *vlen)
{
    bt_cursor *c = cur;
    int rc;
    if (c->state == ST_VALID) {
        cellv ci;
        if (c->write) {
            /* The page may change under the caller before the cursor moves. */
            if ((rc = cur_copy(c, HAVE_K | HAVE_V))) return rc;
        } else {
            if ((rc = cur_cell(c, &ci))) return rc;
            if (ci.ovfl && (rc = cur_copy(c, HAVE_V))) return rc;
            if (key) *key = ci.key;
            if (klen) *klen = ci.klen;
            if (val) *val = ci.ovfl ? c->vbuf : ci.val;
            if (vlen) *vlen = ci.vlen;
            return TS_OK;
        }
    } else if (c->state != ST_SAVED) {
        return TS_ERR_NOT_FOUND;
    }
    if (key) *key = c->kbuf;
    if (klen) *klen = c->sklen;
    if (val) *val = c->vbuf ? (const void *)c->vbuf : (const void *)c->kbuf;
    if (vlen) *vlen = c->svlen;
    return TS_OK;
}

/* ---- the module ----------------------------------------------------- */

static const ts_index_vtab bt_vtab = {
    .struct_size = sizeof(ts_index_vtab),
    .caps = TS_INDEX_ORDERED | TS_INDEX_UNIQUE,
    .create = bt_create,
    .open = bt_open,
    .close = bt_close,
    .drop = bt_drop,
    .insert = bt_insert,
    .remove = bt_remove,
    .cursor_open = bt_cursor_open,
    .cursor_close = bt_cursor_close,
    .seek = bt_seek,
    .first = bt_first,
    .last = bt_last,
    .next = bt_next,
    .prev = bt_prev,
    .entry = bt_entry,
    .bulk_load = bt_bulk_load,
    .seek_entry = bt_seek_entry,
};

static const ts_module bt_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_INDEX,
    .name = "btree",
    .version = BT_VERSION,
    .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_index_vtab),
    .vtab = &bt_vtab,
};

static const ts_module *const bt_modules[] = { &bt_module, NULL };

static const ts_plugin bt_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "btree",
    .version = BT_VERSION,
    .init = NULL,
    .fini = NULL,
    .modules = bt_modules,
};

TS_PLUGIN_DEFINE(bt_plugin)

#ifdef BT_WHITEBOX
/* ---- structure check (tests only) -----------------------------------
 * Walks the whole tree: node headers, cell bounds and overlap, space
 * accounting, entry order within and across leaves, every entry inside
 * the bounds its separators give, equal leaf depth, no empty node below
 * the root, overflow chains of the right length.  Counts pages so a test
 * can prove that no page leaks. */
typedef struct bt_stats {
    uint64_t entries, leaves, inners, ovfl_pages, depth;
} bt_stats;

typedef struct chk_kv {
    uint8_t *k, *v;
    size_t   kl, vl;
} chk_kv;

typedef struct chk {
    btx      *x;
    bt_stats *st;
    int       leafdepth;
    chk_kv    prev;
    int       have_prev;
} chk;

static int chk_fail(chk *k, uint64_t pgno, const char *what)
{
    return k->x->ix->host->error(k->x->ix->env, TS_ERR_CORRUPT, "check: page %llu: %s",
                                 (unsigned long long)pgno, what);
}

/* Materialize cell c; counts overflow pages. */
static int chk_mat(chk *k, const cellv *c, chk_kv *out)
{
    btx *x = k->x;
    out->k = x->ix->host->alloc(c->klen + 1);
    out->v = x->ix->host->alloc(c->vlen + 1);
    if (!out->k || !out->v) return nomem(x);
    if (c->klen) memcpy(out->k, c->key, c->klen);
    out->kl = c->klen;
    out->vl = c->vlen;
    if (!c->ovfl) {
        if (c->vlen) memcpy(out->v, c->val, c->vlen);
        return TS_OK;
    }
    uint64_t pgno = c->ovfl;
    size_t off = 0;
    while (pgno) {
        ts_page *pg;
        uint8_t *d;
        int rc = pget(x, pgno, TS_PAGE_READ, &pg, &d);
        if (rc) return rc;
        uint32_t nb = g32(d + 4);
        uint64_t next = g64(d + 8);
        int bad = d[0] != BT_OVFL || nb == 0 || nb > x->U - OHDR || nb > c->vlen - off;
        if (!bad) memcpy(out->v + off, d + OHDR, nb);
        prel(x, pg);
        if (bad) return chk_fail(k, pgno, "bad overflow page");
        off += nb;
        k->st->ovfl_pages++;
        pgno = next;
        if (off == c->vlen && pgno) return chk_fail(k, pgno, "overflow chain too long");
    }
    if (off != c->vlen) return chk_fail(k, c->ovfl, "overflow chain too short");
    if (c->vlen <= x->U && cell_need(0, c->klen, c->vlen, 0) <= x->maxcell && c->child == 0)
        return chk_fail(k, c->ovfl, "value in overflow although it fits inline");
    return TS_OK;
}

static void chk_free(chk *k, chk_kv *a)
{
    k->x->ix->host->free(a->k);
    k->x->ix->host->free(a->v);
    a->k = a->v = NULL;
}

static int chk_cmp(const chk_kv *a, const chk_kv *b)
{
    int r = bcmp_len(a->k, a->kl, b->k, b->kl);
    return r ? r : bcmp_len(a->v, a->vl, b->v, b->vl);
}

static int chk_node(chk *k, uint64_t pgno, int depth, const chk_kv *lo, const chk_kv *hi)
{
    btx *x = k->x;
    if (depth >= MAXD) return chk_fail(k, pgno, "too deep");
    ts_page *pg;
    uint8_t *d;
    int rc = pget(x, pgno, TS_PAGE_READ, &pg, &d);
    if (rc) return rc;
    if ((rc = nd_check(x, d, pgno))) { prel(x, pg); return rc; }
    unsigned n = nd_n(d);
    int inner = nd_inner(d);
    if ((depth == 0) != ((d[1] & BT_FLAG_ROOT) != 0)) rc = chk_fail(k, pgno, "root flag");
    if (!rc && depth > 0 && n == 0) rc = chk_fail(k, pgno, "empty node below the root");
    /* cells inside the content area, not overlapping, space accounted */
    uint64_t used = 0;
    uint8_t *map = NULL;
    if (!rc && !(map = x->ix->host->calloc(1, x->U))) rc = nomem(x);
    for (unsigned i = 0; i < n && !rc; i++) {
        cellv c;
        if ((rc = nd_cell(x, d, pgno, i, &c))) break;
        unsigned off = nd_slot(d, i);
        for (unsigned j = off; j < off + c.size && !rc; j++)
            if (map[j]++) rc = chk_fail(k, pgno, "overlapping cells");
        used += c.size + SLOT;
        const uint8_t *hk;
        uint32_t hkl;
        cell_key(d + off, inner, &hk, &hkl);
        if (hkl < nd_hp(d) || memcmp(hk, d + 17, nd_hp(d)) != 0)
            rc = chk_fail(k, pgno, "key outside the node's hint prefix");
        else if (nd_hint(d, i) != key_hint(hk, hkl, nd_hp(d)))
            rc = chk_fail(k, pgno, "stale key hint");
        if (c.size > x->maxcell) rc = chk_fail(k, pgno, "cell larger than maxcell");
    }
    x->ix->host->free(map);
    if (!rc && used != x->cap - nd_free(d)) rc = chk_fail(k, pgno, "space accounting");
    if (rc) { prel(x, pg); return rc; }
    if (!inner) {
        k->st->leaves++;
        if (k->leafdepth < 0) k->leafdepth = depth;
        else if (k->leafdepth != depth) rc = chk_fail(k, pgno, "leaves at different depths");
        for (unsigned i = 0; i < n && !rc; i++) {
            cellv c;
            chk_kv e = { 0 };
            if (!(rc = nd_cell(x, d, pgno, i, &c)) && !(rc = chk_mat(k, &c, &e))) {
                if (k->have_prev && chk_cmp(&k->prev, &e) >= 0) rc = chk_fail(k, pgno, "entries out of order");
                else if (lo && chk_cmp(lo, &e) > 0) rc = chk_fail(k, pgno, "entry below its separator");
                else if (hi && chk_cmp(&e, hi) >= 0) rc = chk_fail(k, pgno, "entry not below its separator");
                if (e.kl > TS_INDEX_KEY_MAX) rc = chk_fail(k, pgno, "key too long");
            }
            if (k->have_prev) chk_free(k, &k->prev);
            k->prev = e;
            k->have_prev = 1;
            k->st->entries++;
        }
        prel(x, pg);
        return rc;
    }
    k->st->inners++;
    chk_kv prevsep = { 0 };
    int have = 0;
    for (unsigned i = 0; i <= n && !rc; i++) {
        chk_kv s = { 0 };
        cellv c;
        uint64_t child;
        if ((rc = nd_child(x, d, pgno, i, &child))) break;
        if (i < n) {
            if ((rc = nd_cell(x, d, pgno, i, &c)) || (rc = chk_mat(k, &c, &s))) { chk_free(k, &s); break; }
            if (have && chk_cmp(&prevsep, &s) >= 0) rc = chk_fail(k, pgno, "separators out of order");
            else if (lo && chk_cmp(lo, &s) > 0) rc = chk_fail(k, pgno, "separator below bound");
            else if (hi && chk_cmp(&s, hi) >= 0) rc = chk_fail(k, pgno, "separator above bound");
        }
        if (!rc) rc = chk_node(k, child, depth + 1, have ? &prevsep : lo, i < n ? &s : hi);
        if (have) chk_free(k, &prevsep);
        prevsep = s;
        have = i < n;
        if (!have) chk_free(k, &s);
    }
    if (have) chk_free(k, &prevsep);
    prel(x, pg);
    return rc;
}

static int bt_check(void *idx, ts_txn *txn, bt_stats *st)
{
    bt_index *ix = idx;
    btx x;
    btx_init(&x, ix, txn);
    memset(st, 0, sizeof *st);
    chk k = { &x, st, -1, { 0 }, 0 };
    int rc = chk_node(&k, ix->root, 0, NULL, NULL);
    if (k.have_prev) chk_free(&k, &k.prev);
    st->depth = (uint64_t)(k.leafdepth + 1);
    return rc;
}
#endif /* BT_WHITEBOX */
