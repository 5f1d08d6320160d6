/*
 * ngh_graph.c - the pages of an ngh index and the HNSW graph on them.
 *
 * Pages (each starts with a 4-byte type tag; integers little endian):
 *
 *   meta (the root, never moves): see the M_* offsets below; it holds the
 *     parameters, the counters, the entry point, the generation and, for
 *     each of three page arrays (node records, upper-layer lists, raw
 *     vectors), the top of a radix directory mapping array positions to
 *     page numbers.
 *   directory: 0 type, 8 page numbers[fanout]
 *   node page: 0 type, 8 records of `rec` bytes (rec a multiple of 4):
 *     flags u8, level u8, count u16, upper u32, inv_norm f32, int8 scale
 *     f32, the vector (float32, float16 or int8 codes; none when too big:
 *     `ext`), M0 = 2M neighbour ids (u32)
 *   upper page: 0 type, 8 records of 4 + 4M bytes: count u32, M ids
 *   raw page: 0 type, 8 float32 vectors (ext indexes, and float16 / int8
 *     ones whose keys are not already quantized: the vectors as inserted,
 *     for re-ranking, exact scans and cursors)
 *   key page (format 2, when the records have no room for the slots):
 *     0 type, 8 primary-key slots of pkw bytes
 *   key-hash page (format 2): 0 type, 8 bucket heads (u32: node id + 1)
 *
 * Format 2 gives each node a pkw-byte slot: the next node of its key-hash
 * chain, a length byte (NGH_PK_IN_MAP: the key is too long and lives in
 * the btree map), then the key.  The slot takes the bytes a node page
 * leaves over when they are at least 12 a record (at the end of each
 * record, so the page holds as many records as without it), else its own
 * page array (16-byte slots).
 *
 * Node id i lives in node-array page i / npp at slot i % npp: computed,
 * never searched.  A node of level l > 0 owns the l upper records
 * upper .. upper + l - 1 (levels 1..l).
 *
 * An operation (ngh_op) pins the meta page for its whole run and every other
 * page it reads in a small table keyed by page number, so a page is got
 * once per operation (directory pages included) however many nodes on it
 * are visited; the table is emptied at safe points (ngh_op_relax) so that a
 * search never holds more than a couple of thousand pins.  Read-only
 * transactions read node and upper pages from the index's read cache of
 * the committed generation they see (docs/ngh.md, "The read cache").
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ngh.h"

#define T_META  0x314d484eu  /* "NHM1" */
#define T_DIR   0x3144484eu
#define T_NODE  0x314e484eu
#define T_UPPER 0x3155484eu
#define T_RAW   0x3152484eu
#define T_PK    0x314b484eu
#define T_HASH  0x3148484eu

#define M_TYPE      0
#define M_VERSION   4
#define M_DIM       8
#define M_METRIC   12
#define M_PREC     13
#define M_FLAGS    14   /* u8: MF_* (0 in indexes before it) */
#define MF_KEYS_QUANTIZED 1u
#define MF_PK_INLINE      2u   /* format 2: the key slots are in the records */
#define MF_SPLIT          4u   /* format 3: float32 vectors split head / tail */
#define M_PKW      15   /* u8: format 2: bytes of a primary-key slot */
#define M_M        16
#define M_EFC      20
#define M_SEED     24
#define M_COUNT    32
#define M_LIVE     36
#define M_DELETED  40
#define M_ENTRY    44
#define M_MAXLEVEL 48
#define M_NUPPER   52
#define M_USABLE   56
#define M_WRITER   60   /* u32: ngh_idx.tag of the last write operation (0 in indexes before it) */
#define M_BTROOT   64
#define M_GEN      72   /* u64: bumped by every write operation (0 in indexes before it) */
#define M_ARR      80   /* per array: depth u32, npages u32 */
#define M_HLEVEL  120   /* u32, format 2: the key hash's level */
#define M_HSPLIT  124   /* u32, format 2: its split pointer */
#define M_TOP     128   /* per array: NTOP page numbers (the last array: NTOP_LAST) */
#define NTOP      100
#define NTOP_LAST  80   /* what fits below the smallest usable page size */
#define M_END     (M_TOP + (NGH_NARRAYS - 1) * NTOP * 8 + NTOP_LAST * 8)
#define PG_HDR      8

/* Pins kept by an operation before ngh_op_relax lets them go: a search
 * visits a few hundred to a few thousand pages; getting one again after a
 * relax costs a kernel get, holding it costs a cache slot that cannot be
 * evicted (the cache runs over budget while everything is pinned; pinned
 * dirty pages are not spilled).  256 for inserts cost 517 gets per insert
 * (20K x 128-d, efConstruction 100), 2048 cost 361. */
#define RELAX_READ  2048
#define RELAX_WRITE 2048


static inline uint32_t g32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t g64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint16_t g16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void p32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void p64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline void p16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline float gf(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }
static inline void pf(uint8_t *p, float v) { memcpy(p, &v, 4); }


int ngh_corrupt(ngh_op *o, const char *what)
{
    return o->ix->host->error(o->ix->env, TS_ERR_CORRUPT, "ngh index at page %llu: %s",
                              (unsigned long long)o->ix->root, what);
}

static int nomem(ngh_op *o)
{
    return o->ix->host->error(o->ix->env, TS_ERR_NOMEM, "ngh: out of memory");
}

/* ---- layout ------------------------------------------------------------ */

/* Bytes of a record's vector head for a split layout of npp records a
 * page (each leaving SPLIT_SLOT bytes for its key slot), a multiple of 32
 * (whole SIMD steps); 0 when none fits or the whole vector would. */
#define SPLIT_SLOT 16
static uint32_t split_head(uint32_t room, uint32_t M0, uint32_t vb, uint32_t npp)
{
    uint32_t per = room / npp, fixed = NR_VEC + 4 * M0 + SPLIT_SLOT;
    uint32_t h = per > fixed ? (per - fixed) & ~31u : 0;
    return h >= vb ? 0 : h;
}

/* Format 3's choice for float32 vectors of vb bytes: the n (records a
 * page it was sized for) whose head and tail layout needs the fewest pages
 * a vector (ties: the bigger head); *tpp tails a page.  The head rounded
 * down can let more records than n share a page: they count as they are,
 * and a candidate whose records leave less than 12 bytes each for the key
 * slot is skipped (the slot must be in the record).  0 when none fits. */
static uint32_t split_npp(uint32_t room, uint32_t M0, uint32_t vb, uint32_t *tpp, double *pages)
{
    uint32_t best = 0;
    double cost = 0;
    /* every open of a split index runs this (layout): n stops where a
     * page's share no longer holds a record's fixed part */
    for (uint32_t n = 1; n <= 64 && room / n > NR_VEC + 4 * M0 + SPLIT_SLOT + 31; n++) {
        uint32_t h = split_head(room, M0, vb, n);
        if (!h) continue;
        uint32_t t = room / (vb - h), rec = NR_VEC + h + 4 * M0, np = room / rec;
        if (!t || ((room - np * rec) / np & ~3u) < 12) continue;
        double c = 1.0 / np + 1.0 / t;
        if (!best || c < cost - 1e-9) {
            best = n;
            cost = c;
            *tpp = t;
        }
    }
    if (pages) *pages = cost;
    return best;
}

static void layout(ngh_meta *m)
{
    uint32_t room = m->usable - PG_HDR;
    m->M0 = 2 * m->M;
    uint32_t qb = m->precision == NGH_F16 ? 2 * m->dim : m->precision == NGH_I8 ? m->dim : 4 * m->dim;
    qb = (qb + 3) & ~3u;
    m->tailb = m->tpp = 0;
    if (m->split) {
        uint32_t n = split_npp(room, 2 * m->M, qb, &m->tpp, NULL);
        m->vbytes = n ? split_head(room, 2 * m->M, qb, n) : 0;
        m->tailb = qb - m->vbytes;
        m->ext = 0;
    } else {
        /* a vector too big for a record lives in its own (raw) pages only */
        m->ext = NR_VEC + qb + 4 * m->M0 > room;
        m->vbytes = m->ext ? 0 : qb;
    }
    /* quantized keys: the record holds the key exactly, nothing to re-rank on */
    m->raw = m->ext || (m->precision != NGH_F32 && !m->keys_quantized);
    m->rawb = 4 * m->dim;
    m->rpp = m->rawb <= room ? room / m->rawb : 0;
    m->ppv = m->rpp ? 1 : (m->rawb + room - 1) / room;
    m->rec = NR_VEC + m->vbytes + 4 * m->M0;
    m->pkoff = m->ppk = 0;
    if (m->pkw && m->pk_inline) {
        m->pkoff = m->rec;
        m->rec += m->pkw;
    } else if (m->pkw) {
        m->ppk = room / m->pkw;
    }
    m->npp = m->rec <= room ? room / m->rec : 0;
    m->hpp = room / 4;
    m->urec = 4 + 4 * m->M;
    m->upp = (m->usable - PG_HDR) / m->urec;
    m->fanout = (m->usable - PG_HDR) / 8;
}

/* Fill a new meta page (create). */
int ngh_meta_init(uint8_t *d, uint32_t usable, uint32_t dim, int metric, int prec, int keys_quantized, uint32_t M,
                  uint32_t efc, uint64_t seed, uint64_t btroot, uint32_t format, int split)
{
    ngh_meta m;
    memset(&m, 0, sizeof m);
    m.usable = usable;
    m.dim = dim;
    m.M = M;
    m.precision = (uint32_t)prec;
    m.keys_quantized = keys_quantized && prec != NGH_F32;
    layout(&m);
    if (usable < M_END || m.npp == 0 || m.upp == 0) return TS_ERR_UNSUPPORTED;
    /* Format 3 splits float32 vectors where that takes a tenth fewer pages
     * a vector: by default only vectors too big for a record (they took
     * raw pages of their own, copied for every distance: a split one
     * builds 2.3x and searches 3x faster at 1024-d); with splitRecords
     * also records that fit a page badly (4 KiB, M 16: about 300-400 and
     * 470-790 dimensions: a third to a half fewer pages, 10-35% fewer
     * queries/s: the head and the tail are two memory streams).  Else
     * format 2 is written, which older modules read. */
    if (format >= 3) {
        uint32_t room = usable - PG_HDR, tpp = 0;
        double whole = 1.0 / m.npp + (m.ext ? m.ppv : 0), cut = 0;
        format = 2;
        if (prec == NGH_F32 && (split > 0 || (split < 0 && m.ext)) &&
            split_npp(room, 2 * M, 4 * dim, &tpp, &cut) && cut < 0.9 * whole) {
            m.split = 1;
            layout(&m);
            format = 3;
        }
    }
    /* the key slot: the page's leftover bytes shared by its records when
     * that is 12 or more each (a 4-byte multiple, at most 64), else 16
     * bytes in pages of their own */
    uint32_t w = ((usable - PG_HDR - m.npp * m.rec) / m.npp) & ~3u;
    int inl = w >= 12;
    w = inl ? (w > 64 ? 64 : w) : 16;
    if (format == 1) w = inl = 0;
    memset(d, 0, usable);
    d[M_PKW] = (uint8_t)w;
    p32(d + M_TYPE, T_META);
    p32(d + M_VERSION, format);
    p32(d + M_DIM, dim);
    d[M_METRIC] = (uint8_t)metric;
    d[M_PREC] = (uint8_t)prec;
    d[M_FLAGS] = (uint8_t)((m.keys_quantized ? MF_KEYS_QUANTIZED : 0) | (inl ? MF_PK_INLINE : 0) |
                           (m.split ? MF_SPLIT : 0));
    p32(d + M_M, M);
    p32(d + M_EFC, efc);
    p64(d + M_SEED, seed);
    p32(d + M_ENTRY, NGH_NONE);
    p32(d + M_USABLE, usable);
    p64(d + M_BTROOT, btroot);
    return TS_OK;
}

static int meta_load(ngh_op *o)
{
    const uint8_t *d = o->md;
    ngh_meta *m = &o->m;
    ngh_idx *ix = o->ix;
    if (g32(d + M_TYPE) != T_META) return ngh_corrupt(o, "not an ngh meta page");
    m->format = g32(d + M_VERSION);
    if (m->format < 1 || m->format > NGH_FORMAT)
        return ix->host->error(ix->env, TS_ERR_FORMAT, "ngh index at page %llu: format %u (this "
                               "module reads 1 to %u)", (unsigned long long)ix->root,
                               m->format, NGH_FORMAT);
    m->pkw = d[M_PKW];
    m->pk_inline = (d[M_FLAGS] & MF_PK_INLINE) != 0;
    m->hlevel = g32(d + M_HLEVEL);
    m->hsplit = g32(d + M_HSPLIT);
    m->dim = g32(d + M_DIM);
    m->metric = d[M_METRIC];
    m->precision = d[M_PREC];
    m->keys_quantized = (d[M_FLAGS] & MF_KEYS_QUANTIZED) != 0;
    m->split = (d[M_FLAGS] & MF_SPLIT) != 0;
    m->M = g32(d + M_M);
    m->efc = g32(d + M_EFC);
    m->seed = g64(d + M_SEED);
    m->count = g32(d + M_COUNT);
    m->live = g32(d + M_LIVE);
    m->deleted = g32(d + M_DELETED);
    m->entry = g32(d + M_ENTRY);
    m->maxlevel = g32(d + M_MAXLEVEL);
    m->nupper = g32(d + M_NUPPER);
    m->usable = g32(d + M_USABLE);
    m->btroot = g64(d + M_BTROOT);
    m->gen = g64(d + M_GEN);
    m->writer = g32(d + M_WRITER);
    for (int a = 0; a < NGH_NARRAYS; a++) {
        m->depth[a] = g32(d + M_ARR + 8 * a);
        m->npages[a] = g32(d + M_ARR + 8 * a + 4);
    }
    if (m->usable > o->pa->usable_size(o->tx) || m->usable < M_END || m->M < 2 || m->M > 256 ||
        m->dim == 0 || m->dim > 16384 || m->metric > NGH_IP || m->precision > NGH_I8 ||
        m->maxlevel > NGH_MAXLEVEL || m->live + m->deleted != m->count ||
        (d[M_FLAGS] & ~(MF_KEYS_QUANTIZED | MF_PK_INLINE | MF_SPLIT)) ||
        (m->keys_quantized && m->precision == NGH_F32) ||
        (m->split != (m->format >= 3) || (m->split && (m->precision != NGH_F32 || !m->pk_inline))) ||
        (m->format == 1 ? m->pkw || m->pk_inline || m->depth[NGH_A_PK] || m->npages[NGH_A_PK] ||
                          m->depth[NGH_A_HASH] || m->npages[NGH_A_HASH] || m->hlevel || m->hsplit
                        : m->pkw < 12 || m->pkw > 64 || m->pkw % 4 || m->hlevel > 31))
        return ngh_corrupt(o, "inconsistent meta page");
    layout(m);
    m->below = ix->k.l2_below && m->metric == NGH_L2 && m->precision == NGH_F32 && !m->ext &&
               m->dim >= NGH_BELOW_MIN_DIM;
    if (!m->npp || (m->pkw && !m->pk_inline && !m->ppk) || (m->count && m->entry >= m->count) ||
        (m->split && (!m->vbytes || !m->tpp)))
        return ngh_corrupt(o, "inconsistent meta page");
    for (int a = 0; a < NGH_NARRAYS; a++)
        if (m->depth[a] > 4) return ngh_corrupt(o, "inconsistent meta page");
    if (m->pkw) {
        /* a split needs more live nodes than buckets, so the buckets never
         * outnumber the nodes ever allocated (or one page's worth) */
        uint64_t n = ngh_hash_base(m), nb = n + m->hsplit;
        if (m->hsplit >= n || nb > (m->count > m->hpp ? m->count : m->hpp) ||
            m->npages[NGH_A_HASH] > (nb + m->hpp - 1) / m->hpp)
            return ngh_corrupt(o, "inconsistent key-hash fields in the meta page");
    }
    if (m->dim != ix->dim || (int)m->metric != ix->metric || (int)m->precision != ix->precision)
        return ix->host->error(ix->env, TS_ERR_CONFIG, "ngh index at page %llu: options differ "
                               "from the index (dimensions %u, metric %u, precision %u)",
                               (unsigned long long)ix->root, m->dim, m->metric, m->precision);
    return TS_OK;
}

static void meta_store(ngh_op *o)
{
    uint8_t *d = o->md;
    const ngh_meta *m = &o->m;
    p32(d + M_COUNT, m->count);
    p32(d + M_LIVE, m->live);
    p32(d + M_DELETED, m->deleted);
    p32(d + M_ENTRY, m->entry);
    p32(d + M_MAXLEVEL, m->maxlevel);
    p32(d + M_NUPPER, m->nupper);
    p64(d + M_GEN, m->gen);
    p32(d + M_WRITER, m->writer);
    p32(d + M_HLEVEL, m->hlevel);
    p32(d + M_HSPLIT, m->hsplit);
    for (int a = 0; a < NGH_NARRAYS; a++) {
        p32(d + M_ARR + 8 * a, m->depth[a]);
        p32(d + M_ARR + 8 * a + 4, m->npages[a]);
    }
}


/* ---- scratch pool ---------------------------------------------------------- */

/* Under ix->mu: a pooled scratch, preferring the one this thread used last:
 * its visited array, heaps and page map are still in that core's cache,
 * while one last written by another core costs a coherence miss a line. */
static ngh_scratch *pool_pick(ngh_idx *ix, pthread_t self)
{
    ngh_scratch **pp = &ix->pool;
    while (*pp && !pthread_equal((*pp)->owner, self)) pp = &(*pp)->next;
    if (!*pp) pp = &ix->pool;
    ngh_scratch *s = *pp;
    if (s) {
        *pp = s->next;
        ix->npool--;
    }
    return s;
}

/* Under ix->mu: back to the pool; s when the pool is full (free it). */
static ngh_scratch *pool_put(ngh_idx *ix, ngh_scratch *s)
{
    if (!s || ix->npool >= 16) return s;
    s->next = ix->pool;
    ix->pool = s;
    ix->npool++;
    return NULL;
}

/* A new scratch when the pool had none; its float buffers when missing. */
static ngh_scratch *scratch_ready(ngh_idx *ix, ngh_scratch *s, pthread_t self)
{
    if (!s) s = ix->host->calloc(1, sizeof *s);
    if (s) s->owner = self;
    if (s && !s->vb) {
        s->vb = ix->host->alloc((size_t)ix->dim * 4);
        s->vb2 = ix->host->alloc((size_t)ix->dim * 4);
        if (!s->vb || !s->vb2) {
            ix->host->free(s->vb);
            ix->host->free(s->vb2);
            ix->host->free(s);
            s = NULL;
        }
    }
    return s;
}

static void scratch_free(ngh_idx *ix, ngh_scratch *s)
{
    ix->host->free(s->visit);
    ix->host->free(s->c);
    ix->host->free(s->w);
    ix->host->free(s->tmp);
    ix->host->free(s->pm);
    ix->host->free(s->vb);
    ix->host->free(s->vb2);
    ix->host->free(s->ptab);
    ix->host->free(s);
}

void ngh_pool_free(ngh_idx *ix)
{
    while (ix->pool) {
        ngh_scratch *s = ix->pool;
        ix->pool = s->next;
        scratch_free(ix, s);
    }
    ix->npool = 0;
}

static int grow(ngh_op *o, ngh_cand **a, uint32_t *cap, uint32_t need)
{
    if (need <= *cap) return TS_OK;
    uint32_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    ngh_cand *n = o->ix->host->realloc(*a, (size_t)nc * sizeof *n);
    if (!n) return nomem(o);
    *a = n;
    *cap = nc;
    return TS_OK;
}

/* A new visited generation covering ids < n. */
static int visit_begin(ngh_op *o, uint32_t n)
{
    ngh_scratch *s = o->s;
    if (n > s->vcap) {
        uint32_t nc = s->vcap ? s->vcap : 1024;
        while (nc < n) nc = nc > UINT32_MAX / 2 ? n : nc * 2;
        uint16_t *v = o->ix->host->calloc(nc, sizeof *v);
        if (!v) return nomem(o);
        o->ix->host->free(s->visit);
        s->visit = v;
        s->vcap = nc;
        s->gen = 0;
    }
    if (++s->gen == 0) {
        memset(s->visit, 0, (size_t)s->vcap * sizeof *s->visit);
        s->gen = 1;
    }
    return TS_OK;
}

static inline int visited(ngh_scratch *s, uint32_t id)
{
    if (s->visit[id] == s->gen) return 1;
    s->visit[id] = s->gen;
    return 0;
}

/* ---- operations and pins ------------------------------------------------------ */

/* Forget every position -> page mapping of the scratch (its pages were
 * released or re-got). */
static void pm_reset(ngh_scratch *s)
{
    if (++s->pgen == 0) {
        if (s->pm) memset(s->pm, 0, (size_t)s->pmcap * sizeof *s->pm);
        s->pgen = 1;
    }
}

static void snap_attach(ngh_op *o);

/* Under ix->mu: take a reference to the read cache when it is of the
 * operation's generation. */
static void snap_ref(ngh_idx *ix, ngh_op *o)
{
    ngh_snap *s = ix->snap;
    if (s && s->gen == o->m.gen) {
        s->refs++;
        o->snap = s;
    }
}
static void wc_attach(ngh_op *o);
static void wc_detach(ngh_op *o);

static void wc_fill(ngh_op *o, int a, uint32_t pos, const ngh_pin *e);

static void unpin_all(ngh_op *o)
{
    if (o->s) pm_reset(o->s);
    if (!o->tn) return;
    for (uint32_t i = 0; i < o->tcap; i++)
        if (o->tab[i].pgno) {
            /* a page this operation changed: held for the write cache */
            if (o->wc && o->tab[i].w && o->tab[i].arr >= 0) wc_fill(o, o->tab[i].arr, o->tab[i].pos, &o->tab[i]);
            o->pa->release(o->tab[i].pg);
            o->tab[i].pgno = 0;
        }
    o->tn = 0;
}

void ngh_op_relax(ngh_op *o)
{
    if (o->tn > o->relax) unpin_all(o);
}

int ngh_op_begin(ngh_op *o, ngh_idx *ix, ts_txn *tx, int write)
{
    memset(o, 0, sizeof *o);
    o->ix = ix;
    o->tx = tx;
    o->pa = ix->pa;
    o->write = write;
    o->relax = write ? RELAX_WRITE : RELAX_READ;
    if (!ix->pa) return ix->host->error(ix->env, TS_ERR_INVALID, "ngh: no page API here");
    if (!tx) return ix->host->error(ix->env, TS_ERR_INVALID, "ngh: no transaction");
    if (write && !o->pa->writable(tx))
        return ix->host->error(ix->env, TS_ERR_INVALID, "ngh: changing the index needs a write transaction");
    int rc = o->pa->get(tx, ix->root, write ? TS_PAGE_WRITE : TS_PAGE_READ, &o->mpg);
    if (rc) return rc;
    o->md = o->pa->data(o->mpg);
    if ((rc = meta_load(o))) {
        o->pa->release(o->mpg);
        o->mpg = NULL;
        return rc;
    }
    /* One lock for the scratch and the read cache's reference (two query
     * threads met on this mutex seven times a search).  Only read-only
     * transactions see committed generations: a write transaction's own
     * changes carry a generation number that another (committed) state may
     * get after a rollback. */
    int ro = !o->pa->writable(tx);
    pthread_t self = pthread_self();
    pthread_mutex_lock(&ix->mu);
    o->s = pool_pick(ix, self);
    if (ro) snap_ref(ix, o);
    pthread_mutex_unlock(&ix->mu);
    o->s = scratch_ready(ix, o->s, self);
    if (o->s && !o->s->ptab) {
        o->s->ptab = ix->host->calloc(256, sizeof *o->s->ptab);
        o->s->ptcap = o->s->ptab ? 256 : 0;
    }
    if (!o->s || !o->s->ptab) {
        ngh_op_end(o);
        return nomem(o);
    }
    /* the table moves to the operation (tab_grow may replace it) and back
     * to the scratch, emptied, at the end */
    o->tab = o->s->ptab;
    o->tcap = o->s->ptcap;
    o->s->ptab = NULL;
    pm_reset(o->s); /* a pooled scratch may map pages of an earlier operation */
    if (ro && !o->snap) snap_attach(o);
    else if (!ro && write) wc_attach(o);
    return TS_OK;
}

/* ---- the write cache ----------------------------------------------------------- */

/* Why: an insert visits hundreds of pages and a write transaction cannot use
 * the read cache (its state is not a committed generation), so every page
 * was got from the kernel again by every insert.  The write cache keeps the
 * pages as the last write operation left them: a write operation whose meta
 * generation equals the cache's continues that state (the same transaction,
 * or a later one after it committed); any other generation (a rollback, a
 * statement rolled back, another writer's commit) empties it.  Pages changed
 * by the running operation are read from their pins, and held again when
 * released.
 *
 * The cache holds the kernel's images instead of copying them
 * (ts_page_api.hold): one copy of each page in memory, the kernel's.  A
 * page this writer changed is its transaction's own image, which changes
 * only when a write operation pins it for write, and that drops it from
 * the cache first (pin_at); after the commit it is the committed image
 * (or, spilled, an equal copy of it). */

/* Whether the read and write caches hold array a's pages: node, upper,
 * key and key-hash pages always (exact searches look up thousands of keys
 * a query), raw pages only as split tails (re-ranking reads raw vectors
 * rarely: they need not stay in memory). */
static inline int cached_arr(const ngh_meta *m, int a)
{
    return a != NGH_A_RAW || m->split;
}

static void wc_free_arrays(ngh_idx *ix, ngh_wcache *wc)
{
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++) {
        ix->host->free(wc->slot[a]);
        ix->host->free(wc->hold[a]);
        ix->host->free(wc->lw[a]);
        wc->slot[a] = NULL;
        wc->hold[a] = NULL;
        wc->lw[a] = NULL;
        wc->cap[a] = wc->lwcap[a] = 0;
    }
    wc->bytes = 0;
    wc->base_ok = 0;
}

/* Position pos of array a was pinned for write by the operation that
 * makes generation gen. */
static void wc_mark(ngh_idx *ix, ngh_wcache *wc, int a, uint32_t pos, uint64_t gen)
{
    if (!wc->base_ok) return;
    if (pos >= wc->lwcap[a]) {
        uint64_t nc = wc->lwcap[a] ? wc->lwcap[a] : 256;
        while (nc <= pos) nc *= 2;
        uint64_t *n = nc > UINT32_MAX ? NULL : ix->host->realloc(wc->lw[a], (size_t)nc * sizeof *n);
        if (!n) {
            wc->base_ok = 0;
            return;
        }
        memset(n + wc->lwcap[a], 0, (size_t)(nc - wc->lwcap[a]) * sizeof *n);
        wc->lw[a] = n;
        wc->lwcap[a] = (uint32_t)nc;
    }
    wc->lw[a][pos] = gen;
}

/* Whether position pos of array a may differ from what a read cache of
 * generation g (on the cache's chain of states) holds. */
static int wc_changed(const ngh_wcache *wc, int a, uint32_t pos, uint64_t g)
{
    return pos < wc->lwcap[a] && wc->lw[a][pos] > g;
}

/* Position pos of array a from the start state's read cache, when no
 * write operation of the cache pinned it for write since (the same bytes
 * in both states); NULL: not there. */
static inline uint8_t *wc_base_page(const ngh_wcache *wc, int a, uint32_t pos)
{
    const ngh_snap *b = wc->base_snap;
    /* base_ok 0: the marks stopped (no memory), so none can be trusted */
    if (!b || !wc->base_ok || pos >= b->cap[a] || wc_changed(wc, a, pos, b->gen)) return NULL;
    return atomic_load_explicit(&b->slot[a][pos], memory_order_acquire);
}

/* Release the holds h[from..to) (the read and the write cache's). */
static void holds_release(ngh_idx *ix, void **h, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; h && i < to; i++)
        if (h[i]) ix->pa->unhold(h[i]);
}

/* How long a reader waits for the writer's operation to end before it
 * makes its cache without the write cache (an insert takes ~1 ms at 100K
 * x 128-d), and how long a writer waits for readers moving the cache. */
#define WAIT_READER_US 3000
#define WAIT_WRITER_US 20000

/* Under ix->mu: the write cache is free again; wake who waits for it. */
static void wc_unclaim(ngh_idx *ix)
{
    ix->wc.busy = 0;
    pthread_cond_broadcast(&ix->idle);
}

/* Under ix->mu: wait up to us microseconds for the write cache to be free
 * (writer: and for no reader to wait for it). */
static void wc_wait_idle(ngh_idx *ix, long us, int writer)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);   /* the condition's clock (ngh_open) */
    t.tv_nsec += us * 1000;
    t.tv_sec += t.tv_nsec / 1000000000;
    t.tv_nsec %= 1000000000;
    if (!writer) ix->waiters++;
    while (ix->wc.busy || (writer && ix->waiters))
        if (pthread_cond_timedwait(&ix->idle, &ix->mu, &t)) break;
    if (!writer && --ix->waiters == 0) pthread_cond_broadcast(&ix->idle);
}

/* Whether the kernel can hold an image again by its data (ABI 1.7). */
static int can_hold_data(const ngh_idx *ix)
{
    return ix->pa->struct_size >= offsetof(ts_page_api, hold_data) + sizeof ix->pa->hold_data &&
           ix->pa->hold_data;
}

/* Under ix->mu: let go of the write cache's reference to its start
 * state's read cache; the cache when that was the last one of a retired
 * cache (the caller frees it outside the lock). */
static ngh_snap *wc_unbase(ngh_wcache *wc)
{
    ngh_snap *s = wc->base_snap;
    wc->base_snap = NULL;
    return s && --s->refs == 0 && s->retired ? s : NULL;
}

static void wc_release(ngh_idx *ix, ngh_wcache *wc)
{
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++) holds_release(ix, wc->hold[a], 0, wc->cap[a]);
    wc_free_arrays(ix, wc);
}

/* Release every page of the write cache and its start state's cache. */
static void wc_empty(ngh_idx *ix)
{
    wc_release(ix, &ix->wc);
    pthread_mutex_lock(&ix->mu);
    ngh_snap *gone = wc_unbase(&ix->wc);
    pthread_mutex_unlock(&ix->mu);
    ngh_snap_free(ix, gone);
}

void ngh_wcache_clear(ngh_op *o)
{
    if (o->wc) wc_empty(o->ix);
}

void ngh_wcache_reset(ngh_idx *ix)
{
    wc_empty(ix);
    ix->wc.valid = 0;
}

static void wc_drop(ngh_op *o, int a, uint32_t pos)
{
    ngh_wcache *wc = o->wc;
    if (pos >= wc->cap[a] || !wc->slot[a][pos]) return;
    /* held until the operation ends: read pointers into it may be kept */
    if (o->ndead == o->deadcap) {
        uint32_t nc = o->deadcap ? 2 * o->deadcap : 64;
        void **n = o->ix->host->realloc(o->dead, (size_t)nc * sizeof *n);
        if (!n) {
            /* out of the cache all the same (reads of the page must see
             * the pinned one), but still held: read pointers into it may
             * be kept, and the slot's hold is released with the cache
             * (wc_fill leaves such a position alone) */
            wc->slot[a][pos] = NULL;
            return;
        }
        o->dead = n;
        o->deadcap = nc;
    }
    o->dead[o->ndead++] = wc->hold[a][pos];
    wc->slot[a][pos] = NULL;
    wc->hold[a][pos] = NULL;
    wc->bytes -= o->m.usable;
}

/* Hold e's page (pinned by this operation) as position pos of array a. */
static void wc_fill(ngh_op *o, int a, uint32_t pos, const ngh_pin *e)
{
    ngh_wcache *wc = o->wc;
    uint32_t size = o->m.usable;
    if (pos >= wc->cap[a]) {
        uint64_t nc = wc->cap[a] ? wc->cap[a] : 256;
        while (nc <= pos) nc *= 2;
        if (nc > UINT32_MAX) return;
        uint8_t **n = o->ix->host->realloc(wc->slot[a], (size_t)nc * sizeof *n);
        if (!n) return;
        wc->slot[a] = n;
        void **hn = o->ix->host->realloc(wc->hold[a], (size_t)nc * sizeof *hn);
        if (!hn) return;  /* slot[a] grown, cap not yet: consistent */
        wc->hold[a] = hn;
        memset(n + wc->cap[a], 0, (size_t)(nc - wc->cap[a]) * sizeof *n);
        memset(hn + wc->cap[a], 0, (size_t)(nc - wc->cap[a]) * sizeof *hn);
        wc->cap[a] = (uint32_t)nc;
    }
    if (wc->slot[a][pos] == e->d) return;
    if (wc->slot[a][pos]) wc_drop(o, a, pos);
    if (wc->hold[a][pos] || wc->bytes + size > o->ix->cache_bytes) return;
    void *h;
    if (o->pa->hold(e->pg, &h)) return;  /* not cached: the pinned page served */
    wc->slot[a][pos] = e->d;
    wc->hold[a][pos] = h;
    wc->bytes += size;
}

static void wc_attach(ngh_op *o)
{
    ngh_idx *ix = o->ix;
    int stale = 0;
    ngh_snap *gone = NULL;
    pthread_mutex_lock(&ix->mu);
    /* a reader moving the read cache on claims the cache briefly: wait
     * rather than work without it (which would start it over), and let a
     * reader waiting for this cache have it first */
    if (ix->wc.busy || ix->waiters) wc_wait_idle(ix, WAIT_WRITER_US, 1);
    if (!ix->wc.busy) {
        stale = !ix->wc.valid || ix->wc.gen != o->m.gen || o->m.writer != ix->tag;
        if (stale) {
            ix->wc.valid = 0;
            gone = wc_unbase(&ix->wc);
            ngh_snap *s = ix->snap;
            if (s && s->gen == o->m.gen && s->writer == o->m.writer && can_hold_data(ix)) {
                s->refs++;   /* the committed state this operation starts from */
                ix->wc.base_snap = s;
            }
        }
        ix->wc.busy = 1;
        o->wc = &ix->wc;
    }
    pthread_mutex_unlock(&ix->mu);
    ngh_snap_free(ix, gone);
    /* released outside the mutex, which every operation's start takes (a
     * hold each, up to a whole index's pages): busy, the cache is ours */
    if (stale) {
        wc_release(ix, &ix->wc);
        ix->wc.base_gen = o->m.gen;
        ix->wc.base_writer = o->m.writer;
        ix->wc.base_ok = 1;
    }
}

/* After the meta page got its new generation. */
static void wc_detach(ngh_op *o)
{
    ngh_idx *ix = o->ix;
    for (uint32_t i = 0; i < o->ndead; i++) ix->pa->unhold(o->dead[i]);
    if (o->wc) {
        ngh_snap *gone = NULL;
        pthread_mutex_lock(&ix->mu);
        ix->wc.gen = o->m.gen;
        ix->wc.valid = 1;
        wc_unclaim(ix);
        /* a newer read cache was published without taking this cache: the
         * start state's is kept for nobody else; the new one serves as well
         * when its state is on this cache's chain (snap_attach) */
        ngh_snap *cur = ix->snap;
        if ((!ix->wc.base_snap || ix->wc.base_snap->retired) && ix->wc.base_snap != cur) {
            gone = wc_unbase(&ix->wc);
            if (cur && ix->wc.base_ok && cur->writer == ix->tag && cur->gen >= ix->wc.base_gen &&
                cur->gen <= ix->wc.gen && can_hold_data(ix)) {
                cur->refs++;
                ix->wc.base_snap = cur;
            }
        }
        pthread_mutex_unlock(&ix->mu);
        ngh_snap_free(ix, gone);
        o->wc = NULL;
    }
    ix->host->free(o->dead);
    o->dead = NULL;
    o->ndead = o->deadcap = 0;
}

/* ---- the read cache ------------------------------------------------------------ */

/* Free format 1's keys s keeps by node, no reader having s, and take
 * their bytes off its count. */
static void snap_forget_keys(ngh_idx *ix, ngh_snap *s)
{
    uint64_t freed = 0;
    for (uint32_t i = 0; s->pk && i < s->pkcap; i++) {
        uint8_t *c = atomic_load_explicit(&s->pk[i], memory_order_relaxed);
        if (!c) continue;
        freed += (uint64_t)(c[0] | c[1] << 8) + 2;
        ix->host->free(c);
        atomic_store_explicit(&s->pk[i], NULL, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&s->bytes, freed, memory_order_relaxed);
}

void ngh_snap_free(ngh_idx *ix, ngh_snap *s)
{
    if (!s) return;
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++) {
        holds_release(ix, s->hold[a], 0, s->cap[a]);
        ix->host->free(s->slot[a]);
        ix->host->free(s->hold[a]);
    }
    snap_forget_keys(ix, s);
    ngh_runs_free(ix, atomic_load_explicit(&s->runs, memory_order_relaxed));
    ngh_runs_free(ix, s->runs_dead);
    ix->host->free(s->pk);
    ix->host->free(s);
}

int ngh_snap_pk(ngh_op *o, uint32_t id, const void **pk, size_t *pl)
{
    ngh_snap *sn = o->snap;
    if (!sn || id >= sn->pkcap) return 0;
    const uint8_t *c = atomic_load_explicit(&sn->pk[id], memory_order_acquire);
    if (!c) return 0;
    *pl = (size_t)c[0] | (size_t)c[1] << 8;
    *pk = c + 2;
    return 1;
}

void ngh_snap_pk_prefetch(ngh_op *o, const ngh_cand *c, uint32_t n)
{
    ngh_snap *sn = o->snap;
    if (!sn) return;
    for (uint32_t i = 0; i < n; i++)
        if (c[i].id < sn->pkcap) __builtin_prefetch(&sn->pk[c[i].id]);
    for (uint32_t i = 0; i < n; i++)
        if (c[i].id < sn->pkcap) {
            const uint8_t *p = atomic_load_explicit(&sn->pk[c[i].id], memory_order_acquire);
            if (p) __builtin_prefetch(p);
        }
}

void ngh_snap_pk_fill(ngh_op *o, uint32_t id, const void **pk, size_t *pl)
{
    ngh_snap *sn = o->snap;
    if (!sn || id >= sn->pkcap || *pl > 0xFFFF) return;
    if (atomic_load_explicit(&sn->bytes, memory_order_relaxed) + *pl + 2 > o->ix->cache_bytes) return;
    uint8_t *c = o->ix->host->alloc(*pl + 2), *exp = NULL;
    if (!c) return;
    c[0] = (uint8_t)*pl;
    c[1] = (uint8_t)(*pl >> 8);
    memcpy(c + 2, *pk, *pl);
    if (atomic_compare_exchange_strong_explicit(&sn->pk[id], &exp, c, memory_order_acq_rel,
                                                memory_order_acquire)) {
        atomic_fetch_add_explicit(&sn->bytes, *pl + 2, memory_order_relaxed);
        *pk = c + 2;
        return;
    }
    o->ix->host->free(c);   /* another reader filled it: the same bytes */
    *pk = exp + 2;
}

/* A read cache started for the write cache's generation takes the write
 * cache's pages: a reader sees only committed generations, and the tag
 * (generation and writer) names the state the last write operation of this
 * object left, so those held pages are that state's.  Instead of getting
 * the same pages again from the kernel, the read cache takes their holds;
 * bulk loads followed by searches are the common case.  The next write
 * operation starts with an empty write cache.
 *
 * Under ix->mu: claim the write cache (busy) when it is of the reader's
 * state, so that its slots can be copied outside the lock (170K slots at 1M
 * vectors, and every operation's start takes the mutex). */
static int wc_claim(ngh_idx *ix, const ngh_meta *m)
{
    ngh_wcache *wc = &ix->wc;
    if (!wc->valid || wc->busy || wc->gen != m->gen || m->writer != ix->tag || !wc->bytes) return 0;
    wc->busy = 1;
    return 1;
}

/* The claimed write cache's pages into sn's slots (sn not yet published);
 * the holds are sn's only once it is (snap_take_memory). */
static void snap_take_slots(ngh_idx *ix, ngh_snap *sn)
{
    ngh_wcache *wc = &ix->wc;
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++) {
        uint32_t n = wc->cap[a] < sn->cap[a] ? wc->cap[a] : sn->cap[a];
        for (uint32_t i = 0; i < n; i++)
            if (wc->slot[a][i]) {   /* a hold without a slot: see wc_drop */
                atomic_store_explicit(&sn->slot[a][i], wc->slot[a][i], memory_order_relaxed);
                sn->hold[a][i] = wc->hold[a][i];
            }
    }
}

/* Why: the read cache is per committed generation, and every commit that
 * changed the index started the next one empty, so a reader between a
 * writer's commits got every page from the kernel again (100K x 128-d,
 * 10 inserts a commit between 10 searches: 0.16x the searches/s of no
 * writer).  The claimed write cache (of sn's state) started from from's
 * state and knows every position its operations pinned for write since:
 * every other page of from is the same in sn's state, and sn holds its
 * image again (ts_page_api.hold_data) where the write cache left the
 * position empty.  sn is not yet published; *bytes grows by what it
 * holds, within the cache's bound. */
static void snap_inherit(ngh_idx *ix, ngh_snap *sn, ngh_snap *from, uint32_t usable, uint64_t *bytes)
{
    const ngh_wcache *wc = &ix->wc;
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++) {
        uint32_t n = sn->cap[a] < from->cap[a] ? sn->cap[a] : from->cap[a];
        for (uint32_t i = 0; i < n; i++) {
            if (atomic_load_explicit(&sn->slot[a][i], memory_order_relaxed) || wc_changed(wc, a, i, from->gen))
                continue;
            uint8_t *d = atomic_load_explicit(&from->slot[a][i], memory_order_acquire);
            void *h;
            if (!d) continue;
            if (wc->bytes + *bytes + usable > ix->cache_bytes) return;
            if (ix->pa->hold_data(d, &h)) continue;
            atomic_store_explicit(&sn->slot[a][i], d, memory_order_relaxed);
            sn->hold[a][i] = h;
            *bytes += usable;
        }
    }
}

/* Whether node i of a page (records with key slots at pkoff, or with
 * keypage a key page's slots) differs between images a and b in what a
 * key run rests on: the deleted flag, and the key's length byte and bytes
 * (not the slot's first bytes, the key hash's chain link, which unlinks
 * and bucket splits rewrite for unchanged keys). */
static int node_keys_differ(const ngh_meta *m, const uint8_t *a, const uint8_t *b, uint32_t i, int keypage)
{
    size_t k = NGH_SLOT_KEY - 1, o;
    if (keypage) {
        o = PG_HDR + (size_t)i * m->pkw + k;
        return memcmp(a + o, b + o, m->pkw - k) != 0;
    }
    o = PG_HDR + (size_t)i * m->rec;
    if ((a[o + NR_FLAGS] ^ b[o + NR_FLAGS]) & NR_DELETED) return 1;
    return m->pk_inline && memcmp(a + o + m->pkoff + k, b + o + m->pkoff + k, m->pkw - k) != 0;
}

/* The ids of rs (a cache's runs of generation g) on record or key-slot
 * pages the write cache's operations wrote after g made stale.  With old
 * (the cache's images of g) and exact (the write cache's images are those
 * of the state the runs go to), a page in both is compared node by node
 * and only the nodes whose deleted flag or key slot changed are made
 * stale: an insert rewrites the neighbour lists on hundreds of pages and
 * would otherwise turn the runs away from thousands of unchanged keys.
 * Without exact (a move past a state the writer went on from) a node may
 * have changed and changed back since: the whole page.  TS_OK or
 * TS_ERR_NOMEM. */
static int runs_mark_stale(ngh_idx *ix, ngh_runs *rs, uint64_t g, const ngh_meta *m, const ngh_snap *old,
                           int exact)
{
    const ngh_wcache *wc = &ix->wc;
    const int arr[2] = { NGH_A_NODE, NGH_A_PK };
    const uint32_t per[2] = { m->npp, m->pkw && !m->pk_inline ? m->ppk : 0 };
    for (int j = 0; j < 2; j++) {
        int a = arr[j];
        if (!per[j]) continue;
        uint64_t np = ((uint64_t)rs->nids + per[j] - 1) / per[j];
        for (uint32_t p = 0; p < wc->lwcap[a] && p < np; p++) {
            if (!wc_changed(wc, a, p, g)) continue;
            const uint8_t *was = exact && old && p < old->cap[a]
                                     ? atomic_load_explicit(&old->slot[a][p], memory_order_acquire) : NULL;
            const uint8_t *now = was && p < wc->cap[a] ? wc->slot[a][p] : NULL;
            uint32_t id0 = p * per[j];
            if (!now) {
                if (ngh_runs_stale(ix, rs, id0, per[j])) return TS_ERR_NOMEM;
                continue;
            }
            for (uint32_t i = 0; i < per[j]; i++)
                if (node_keys_differ(m, was, now, i, a == NGH_A_PK) && ngh_runs_stale(ix, rs, id0 + i, 1))
                    return TS_ERR_NOMEM;
        }
    }
    return TS_OK;
}

/* s moved (snap_advance), no reader having it: its key runs go along,
 * stale where written; the runs they replaced and those set aside go (no
 * reader is inside them now).  Runs that cannot be marked, or that no
 * longer fit the cache's bound, go too: made again once looked up enough. */
static void snap_carry_runs(ngh_idx *ix, ngh_snap *s, const ngh_meta *m, int exact)
{
    ngh_runs *rs = atomic_load_explicit(&s->runs, memory_order_relaxed);
    uint64_t bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed) - ngh_runs_bytes(rs) -
                     ngh_runs_bytes(s->runs_dead);
    ngh_runs_free(ix, s->runs_dead);
    s->runs_dead = NULL;
    if (rs) {
        ngh_runs_free(ix, rs->older);
        rs->older = NULL;
        if (runs_mark_stale(ix, rs, s->gen, m, s, exact) || bytes + ngh_runs_bytes(rs) > ix->cache_bytes) {
            ngh_runs_free(ix, rs);
            rs = NULL;
        }
    }
    atomic_store_explicit(&s->runs, rs, memory_order_relaxed);
    atomic_store_explicit(&s->runs_state, rs ? 2 : 0, memory_order_relaxed);
    atomic_store_explicit(&s->finds, 0, memory_order_relaxed);
    if (!rs) atomic_store_explicit(&s->misses, 0, memory_order_relaxed);
    atomic_store_explicit(&s->bytes, bytes + ngh_runs_bytes(rs), memory_order_relaxed);
}

/* sn, new for the write cache's state, made from from (snap_inherit):
 * a copy of from's key runs, stale where written; the bytes it holds. */
static size_t snap_inherit_runs(ngh_idx *ix, ngh_snap *sn, ngh_snap *from, const ngh_meta *m, uint64_t bytes)
{
    if (atomic_load_explicit(&from->runs_state, memory_order_acquire) != 2) return 0;
    const ngh_runs *rs = atomic_load_explicit(&from->runs, memory_order_acquire);
    ngh_runs *c = rs ? ngh_runs_copy(ix, rs) : NULL;
    if (!c) return 0;
    if (runs_mark_stale(ix, c, from->gen, m, from, 1) || ix->wc.bytes + bytes + ngh_runs_bytes(c) > ix->cache_bytes) {
        ngh_runs_free(ix, c);
        return 0;
    }
    atomic_store_explicit(&sn->runs, c, memory_order_relaxed);
    atomic_store_explicit(&sn->runs_state, 2, memory_order_relaxed);
    atomic_store_explicit(&sn->misses, atomic_load_explicit(&from->misses, memory_order_relaxed),
                          memory_order_relaxed);
    return ngh_runs_bytes(c);
}

/* Not published after snap_take_slots (the write cache still claimed):
 * the holds taken from the write cache stay its own; those inherited are
 * released with sn. */
static void snap_untake(ngh_idx *ix, ngh_snap *sn)
{
    const ngh_wcache *wc = &ix->wc;
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++)
        for (uint32_t i = 0; i < sn->cap[a] && i < wc->cap[a]; i++)
            if (sn->hold[a][i] && sn->hold[a][i] == wc->hold[a][i]) sn->hold[a][i] = NULL;
}

/* Under ix->mu, sn being published: the holds it took become its own, and
 * the write cache is emptied without releasing them (pages past the
 * reader's arrays, none as both follow the meta page, are released).
 * Returns a read cache for the caller to free (wc_unbase). */
static ngh_snap *snap_take_memory(ngh_idx *ix, ngh_snap *sn, uint32_t usable, uint64_t inherited)
{
    ngh_wcache *wc = &ix->wc;
    uint64_t bytes = wc->bytes + inherited;
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++) {
        for (uint32_t i = 0; i < wc->cap[a]; i++)
            if (wc->hold[a][i] && (i >= sn->cap[a] || !wc->slot[a][i])) {
                ix->pa->unhold(wc->hold[a][i]);   /* beyond sn, or held without a slot (wc_drop) */
                bytes -= usable;
            }
    }
    atomic_store_explicit(&sn->bytes, bytes, memory_order_relaxed);
    wc_free_arrays(ix, wc);
    wc->valid = 0;
    wc_unclaim(ix);
    return wc_unbase(wc);   /* the write cache's start state: no longer read */
}

/* Move s (no reader has it, unpublished) to the claimed write cache's
 * state, which started from s's: the positions written since leave it,
 * the write cache's pages join it, and everything else stays as it is, so
 * a commit costs what it changed rather than the cache's size.  The only
 * step that can fail (growing the arrays) comes first: on failure s is as
 * it was, and the write cache too. */
static int snap_advance(ngh_op *o, ngh_snap *s, int take)
{
    ngh_idx *ix = o->ix;
    ngh_wcache *wc = &ix->wc;
    uint32_t usable = o->m.usable, ncap[NGH_SNAP_ARRAYS];
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++) {
        ncap[a] = cached_arr(&o->m, a) ? o->m.npages[a] : 0;
        if (ncap[a] < s->cap[a]) return 0;   /* arrays only grow */
        if (ncap[a] == s->cap[a]) continue;
        _Atomic(uint8_t *) *sl = ix->host->realloc(s->slot[a], (size_t)ncap[a] * sizeof *sl);
        if (!sl) return 0;
        s->slot[a] = sl;
        void **h = ix->host->realloc(s->hold[a], (size_t)ncap[a] * sizeof *h);
        if (!h) return 0;
        s->hold[a] = h;
        for (uint32_t i = s->cap[a]; i < ncap[a]; i++) {
            atomic_init(&sl[i], NULL);
            h[i] = NULL;
        }
    }
    if (s->pk && o->m.count > s->pkcap) {   /* format 1: a key a node */
        _Atomic(uint8_t *) *pk = ix->host->realloc(s->pk, (size_t)o->m.count * sizeof *pk);
        if (!pk) return 0;
        for (uint32_t i = s->pkcap; i < o->m.count; i++) atomic_init(&pk[i], NULL);
        s->pk = pk;
        s->pkcap = o->m.count;
    }
    snap_forget_keys(ix, s);   /* made again for the new state */
    snap_carry_runs(ix, s, &o->m, take);
    uint64_t bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
    for (int a = 0; a < NGH_SNAP_ARRAYS; a++) {
        uint32_t n = wc->lwcap[a] < s->cap[a] ? wc->lwcap[a] : s->cap[a];
        for (uint32_t i = 0; i < n; i++) {
            if (!s->hold[a][i] || !wc_changed(wc, a, i, s->gen)) continue;
            ix->pa->unhold(s->hold[a][i]);
            atomic_store_explicit(&s->slot[a][i], NULL, memory_order_relaxed);
            s->hold[a][i] = NULL;
            bytes -= usable;
        }
        s->cap[a] = ncap[a];
        for (uint32_t i = 0; take && i < wc->cap[a]; i++) {
            if (!wc->hold[a][i]) continue;
            if (wc->slot[a][i] && i < ncap[a] && !s->hold[a][i] && bytes + usable <= ix->cache_bytes) {
                atomic_store_explicit(&s->slot[a][i], wc->slot[a][i], memory_order_relaxed);
                s->hold[a][i] = wc->hold[a][i];
                bytes += usable;
            } else {
                /* held by s already (the same bytes), beyond, past the
                 * bound, or held without a slot (wc_drop) */
                ix->pa->unhold(wc->hold[a][i]);
            }
            wc->hold[a][i] = NULL;
        }
    }
    atomic_store_explicit(&s->bytes, bytes, memory_order_relaxed);
    s->gen = o->m.gen;
    s->writer = o->m.writer;
    if (take) wc_free_arrays(ix, wc);   /* its holds were moved or released */
    return 1;
}

/* Under ix->mu, s unpublished after a move that did (ok) or did not
 * happen: published, unless another reader published its state or a newer
 * one meanwhile (a cache that was not moved is published only when none
 * is).  Returns s when it is the caller's to free outside the lock; with
 * keep (the write cache refers to s) it is retired instead, and let go
 * of by the write cache.  *old: a replaced cache to free. */
static ngh_snap *snap_publish_moved(ngh_idx *ix, ngh_snap *s, int ok, int keep, ngh_snap **old)
{
    ngh_snap *cur = ix->snap;
    if (ok ? !cur || cur->gen < s->gen : !cur) {
        if (cur) {
            cur->retired = 1;
            if (!cur->refs) *old = cur;
        }
        ix->snap = s;
        return NULL;
    }
    if (!keep) return s;
    s->retired = 1;
    return NULL;
}

/* A read operation on generation gen takes the index's cache when it is of
 * that generation (a new one when gen is newer; none when older: a reader
 * of an old snapshot pins its own pages). */
static void snap_attach(ngh_op *o)
{
    ngh_idx *ix = o->ix;
    ngh_snap *fresh = NULL, *old = NULL, *from = NULL, *base_gone = NULL;
    uint64_t inherited = 0;
    pthread_mutex_lock(&ix->mu);
    ngh_snap *s = ix->snap;
    int need = !s || s->gen < o->m.gen;
    ngh_wcache *wc = &ix->wc;
    if (need && s && wc->busy && wc->valid && wc->base_snap == s) {
        /* the writer is inside an operation; once it is out, its cache
         * tells what changed since s (a few milliseconds at most) */
        wc_wait_idle(ix, WAIT_READER_US, 0);
        s = ix->snap;
        need = !s || s->gen < o->m.gen;
    }
    int take = need && wc_claim(ix, &o->m);
    /* s is a state of the write cache's chain: its start, or one a reader
     * moved s to since (chain below).  The base fields belong to whoever
     * has the cache busy: read only when that is nobody, or this reader */
    int on_chain = s && (take || !wc->busy) && wc->base_ok &&
                   (wc->base_snap == s || (wc->base_gen == s->gen && wc->base_writer == s->writer));
    int base = take && on_chain;
    /* The writer went on past the reader's state G (its cache is of a later,
     * uncommitted one): G is a state of its chain when this object wrote it
     * and the cache has not started over since, and the positions written
     * since s (up to G and after) are all it must not keep.  Moved without
     * taking the write cache's pages, and still its start state's cache. */
    if (need && !take && on_chain && wc->base_snap == s && s->refs == 1 && wc->valid && !wc->busy &&
        o->m.writer == ix->tag && o->m.gen > s->gen && o->m.gen <= wc->gen) {
        wc->busy = 1;
        ix->snap = NULL;
        pthread_mutex_unlock(&ix->mu);
        int ok = snap_advance(o, s, 0);
        pthread_mutex_lock(&ix->mu);
        snap_publish_moved(ix, s, ok, 1, &old);
        wc_unclaim(ix);
        snap_ref(ix, o);
        pthread_mutex_unlock(&ix->mu);
        ngh_snap_free(ix, old);
        return;
    }
    if (base && (wc->base_snap == s ? s->refs == 1 : !wc->base_snap && !s->refs)) {
        /* no reader has it (only the write cache, which the move empties):
         * moved to the new state, then published again */
        if (ix->wc.base_snap == s) {
            s->refs--;
            ix->wc.base_snap = NULL;
        }
        ix->snap = NULL;
        s->retired = 0;
    } else if (base && can_hold_data(ix)) {
        from = s;   /* referenced: its pages stay while they are held again */
        from->refs++;
        base = 0;
    } else {
        base = 0;
    }
    pthread_mutex_unlock(&ix->mu);
    if (base) {
        int ok = snap_advance(o, s, 1);
        pthread_mutex_lock(&ix->mu);
        s = snap_publish_moved(ix, s, ok, 0, &old);
        if (ok) ix->wc.valid = 0;   /* emptied by the move */
        wc_unclaim(ix);
        snap_ref(ix, o);
        pthread_mutex_unlock(&ix->mu);
        ngh_snap_free(ix, s);   /* not advanced, or another reader published first */
        ngh_snap_free(ix, old);
        return;
    }
    if (need) { /* allocate outside the lock */
        fresh = ix->host->calloc(1, sizeof *fresh);
        if (fresh) {
            fresh->gen = o->m.gen;
            fresh->writer = o->m.writer;
            /* format 1's keys are all in the map: cache them; format 2's
             * are in the slots (the few in the map are looked up) */
            if (!o->m.pkw) {
                fresh->pkcap = o->m.count;
                fresh->pk = ix->host->calloc(o->m.count ? o->m.count : 1, sizeof *fresh->pk);
                if (!fresh->pk) fresh->pkcap = 0;
            }
            for (int a = 0; a < NGH_SNAP_ARRAYS; a++) {
                fresh->cap[a] = cached_arr(&o->m, a) ? o->m.npages[a] : 0;
                fresh->slot[a] = ix->host->calloc(fresh->cap[a] ? fresh->cap[a] : 1, sizeof *fresh->slot[a]);
                fresh->hold[a] = ix->host->calloc(fresh->cap[a] ? fresh->cap[a] : 1, sizeof *fresh->hold[a]);
                if (!fresh->slot[a] || !fresh->hold[a]) {
                    ngh_snap_free(ix, fresh);
                    fresh = NULL;
                    break;
                }
            }
        }
    }
    int took = fresh && take;
    if (took) snap_take_slots(ix, fresh);
    if (took && from) {
        snap_inherit(ix, fresh, from, o->m.usable, &inherited);
        inherited += snap_inherit_runs(ix, fresh, from, &o->m, inherited);
    }
    pthread_mutex_lock(&ix->mu);
    s = ix->snap;
    if (fresh && (!s || s->gen < fresh->gen)) {
        if (took) {
            /* releases the write cache (and its reference to a read cache) */
            ngh_snap *gone = snap_take_memory(ix, fresh, o->m.usable, inherited);
            if (gone && gone != s) base_gone = gone;
            take = 0;
        }
        if (s) {
            s->retired = 1;
            if (!s->refs) old = s;
        }
        ix->snap = s = fresh;
        fresh = NULL;
    }
    if (from && (--from->refs || !from->retired)) from = NULL;   /* else ours to free */
    snap_ref(ix, o);
    pthread_mutex_unlock(&ix->mu);
    if (fresh && took) {
        /* lost a race to another reader: the write cache is still claimed
         * (busy), so its holds can be told from the inherited ones */
        snap_untake(ix, fresh);
        pthread_mutex_lock(&ix->mu);
        wc_unclaim(ix);
        pthread_mutex_unlock(&ix->mu);
    } else if (take) {
        pthread_mutex_lock(&ix->mu);
        wc_unclaim(ix); /* not taken (no memory): the write cache stays */
        pthread_mutex_unlock(&ix->mu);
    }
    ngh_snap_free(ix, fresh); /* lost a race (its own holds only) */
    ngh_snap_free(ix, old);
    ngh_snap_free(ix, from);
    ngh_snap_free(ix, base_gone);
}

void ngh_op_end(ngh_op *o)
{
    if (o->bcur) o->ix->btv->cursor_close(o->bcur);
    o->bcur = NULL;
    if (o->tab) unpin_all(o);
    /* a table grown for a big operation is not kept: unpin_all walks every
     * slot, which small searches would then pay for */
    if (o->s && o->tab && o->tcap <= 512) {
        o->s->ptab = o->tab;
        o->s->ptcap = o->tcap;
    } else {
        o->ix->host->free(o->tab);
    }
    o->tab = NULL;
    if (o->mpg) {
        if (o->write) {
            o->m.gen++; /* the graph may have changed: cached copies are of older generations */
            o->m.writer = o->ix->tag;
            meta_store(o);
            if (!o->wc) {
                /* a generation of this writer the write cache did not see
                 * (it was busy, or the operation failed before taking it):
                 * the number may be one the cache reached before a
                 * rollback, so neither the cache nor a chain through it
                 * may be trusted for it */
                pthread_mutex_lock(&o->ix->mu);
                o->ix->wc.valid = 0;
                pthread_mutex_unlock(&o->ix->mu);
            }
        }
        o->pa->release(o->mpg);
    }
    o->mpg = NULL;
    ngh_snap *sn = o->snap, *old = NULL;
    ngh_scratch *spare = o->s;
    if (spare || sn) {
        pthread_mutex_lock(&o->ix->mu);
        spare = pool_put(o->ix, spare);
        if (sn && --sn->refs == 0 && sn->retired) old = sn;
        pthread_mutex_unlock(&o->ix->mu);
    }
    o->s = NULL;
    o->snap = NULL;
    if (spare) scratch_free(o->ix, spare);
    ngh_snap_free(o->ix, old);
    wc_detach(o);
}

static int tab_grow(ngh_op *o)
{
    uint32_t nc = o->tcap * 2;
    ngh_pin *n = o->ix->host->calloc(nc, sizeof *n);
    if (!n) return nomem(o);
    for (uint32_t i = 0; i < o->tcap; i++) {
        if (!o->tab[i].pgno) continue;
        uint32_t h = (uint32_t)ngh_mix64(o->tab[i].pgno) & (nc - 1);
        while (n[h].pgno) h = (h + 1) & (nc - 1);
        n[h] = o->tab[i];
    }
    o->ix->host->free(o->tab);
    o->tab = n;
    o->tcap = nc;
    return TS_OK;
}

/* The data of page pgno, pinned until the next relax (write: for change). */
static int pin(ngh_op *o, uint64_t pgno, int write, uint8_t **d)
{
    if (pgno == o->ix->root) return ngh_corrupt(o, "page reference to the meta page");
    uint32_t h = (uint32_t)ngh_mix64(pgno) & (o->tcap - 1);
    while (o->tab[h].pgno && o->tab[h].pgno != pgno) h = (h + 1) & (o->tcap - 1);
    ngh_pin *e = &o->tab[h];
    if (e->pgno) {
        if (write && !e->w) {
            pm_reset(o->s); /* it may hold the read pointer */
            o->pa->release(e->pg);
            int rc = o->pa->get(o->tx, pgno, TS_PAGE_WRITE, &e->pg);
            if (rc) {
                /* drop the slot: rebuild the table without it */
                e->pgno = 0;
                o->tn--;
                ngh_pin *old = o->tab;
                uint32_t cap = o->tcap;
                o->tab = o->ix->host->calloc(cap, sizeof *o->tab);
                if (!o->tab) { o->tab = old; return rc; }
                o->tn = 0;
                for (uint32_t i = 0; i < cap; i++)
                    if (old[i].pgno) {
                        uint32_t j = (uint32_t)ngh_mix64(old[i].pgno) & (cap - 1);
                        while (o->tab[j].pgno) j = (j + 1) & (cap - 1);
                        o->tab[j] = old[i];
                        o->tn++;
                    }
                o->ix->host->free(old);
                return rc;
            }
            e->d = o->pa->data(e->pg);
            e->w = 1;
        }
        *d = e->d;
        return TS_OK;
    }
    if ((o->tn + 1) * 2 > o->tcap) {
        int rc = tab_grow(o);
        if (rc) return rc;
        return pin(o, pgno, write, d);
    }
    ts_page *pg;
    int rc = o->pa->get(o->tx, pgno, write ? TS_PAGE_WRITE : TS_PAGE_READ, &pg);
    if (rc) return rc;
    e->pgno = pgno;
    e->pg = pg;
    e->d = o->pa->data(pg);
    e->w = write;
    e->arr = -1;
    o->tn++;
    *d = e->d;
    return TS_OK;
}

static ngh_pin *pin_find(ngh_op *o, uint64_t pgno)
{
    uint32_t h = (uint32_t)ngh_mix64(pgno) & (o->tcap - 1);
    while (o->tab[h].pgno && o->tab[h].pgno != pgno) h = (h + 1) & (o->tcap - 1);
    return o->tab[h].pgno ? &o->tab[h] : NULL;
}

static void wc_drop(ngh_op *o, int a, uint32_t pos);

/* pin for a page of array a at position pos: a page pinned for write leaves
 * the write cache now (reads of it in this operation go to the pinned page)
 * and is held again when it is released (unpin_all). */
static int pin_at(ngh_op *o, uint64_t pgno, int write, int a, uint64_t pos, uint8_t **d)
{
    int rc = pin(o, pgno, write, d);
    if (rc || !write || !o->wc || !cached_arr(&o->m, a) || pos >= UINT32_MAX) return rc;
    wc_mark(o->ix, o->wc, a, (uint32_t)pos, o->m.gen + 1);   /* the operation ends by bumping gen */
    ngh_pin *e = pin_find(o, pgno);
    if (e) {
        e->arr = a;
        e->pos = (uint32_t)pos;
    }
    wc_drop(o, a, (uint32_t)pos);
    return TS_OK;
}

/* Put a freshly allocated (pinned, writable) page into the table. */
static int pin_new(ngh_op *o, ts_page *pg, uint64_t pgno, uint8_t **d)
{
    if ((o->tn + 1) * 2 > o->tcap) {
        int rc = tab_grow(o);
        if (rc) { o->pa->release(pg); return rc; }
    }
    uint32_t h = (uint32_t)ngh_mix64(pgno) & (o->tcap - 1);
    while (o->tab[h].pgno) h = (h + 1) & (o->tcap - 1);
    o->tab[h] = (ngh_pin){ pgno, pg, o->pa->data(pg), 1, -1, 0 };
    o->tn++;
    *d = o->tab[h].d;
    return TS_OK;
}

/* ---- page arrays --------------------------------------------------------------- */

static uint64_t span_of(const ngh_meta *m, uint32_t depth)
{
    uint64_t s = 1;
    while (depth--) s *= m->fanout;
    return s;
}

static inline uint32_t ntop(int a) { return a == NGH_NARRAYS - 1 ? NTOP_LAST : NTOP; }
static uint64_t top_get(const ngh_op *o, int a, uint64_t t) { return g64(o->md + M_TOP + 8 * ((uint64_t)a * NTOP + t)); }
static void top_set(ngh_op *o, int a, uint64_t t, uint64_t v) { p64(o->md + M_TOP + 8 * ((uint64_t)a * NTOP + t), v); }

static int dir_check(ngh_op *o, const uint8_t *d)
{
    return g32(d) == T_DIR ? TS_OK : ngh_corrupt(o, "not a directory page");
}

/* Page number of position p of array a. */
static int arr_pgno(ngh_op *o, int a, uint64_t p, uint64_t *out)
{
    const ngh_meta *m = &o->m;
    if (p >= m->npages[a]) return ngh_corrupt(o, "page array position out of range");
    uint64_t span = span_of(m, m->depth[a]), t = p / span, rem = p % span;
    if (t >= ntop(a)) return ngh_corrupt(o, "page array beyond its directory");
    uint64_t pg = top_get(o, a, t);
    for (uint32_t dd = m->depth[a]; dd > 0; dd--) {
        span /= m->fanout;
        uint8_t *d;
        if (!pg) return ngh_corrupt(o, "hole in a page directory");
        int rc = pin(o, pg, 0, &d);
        if (rc) return rc;
        if ((rc = dir_check(o, d))) return rc;
        pg = g64(d + PG_HDR + 8 * (rem / span));
        rem %= span;
    }
    if (!pg) return ngh_corrupt(o, "hole in a page directory");
    *out = pg;
    return TS_OK;
}

static int new_page(ngh_op *o, uint32_t type, uint64_t *pgno, uint8_t **d)
{
    ts_page *pg;
    int rc = o->pa->alloc(o->tx, &pg, pgno);
    if (rc) return rc;
    if ((rc = pin_new(o, pg, *pgno, d))) return rc;
    memset(*d, 0, o->m.usable);
    p32(*d, type);
    return TS_OK;
}

/* Append a zeroed page of type `type` to array a. */
static int arr_append(ngh_op *o, int a, uint32_t type, uint8_t **data)
{
    ngh_meta *m = &o->m;
    uint64_t p = m->npages[a];
    if (p >= UINT32_MAX) return o->ix->host->error(o->ix->env, TS_ERR_RESOURCE, "ngh: index is full");
    int rc;
    while (p >= ntop(a) * span_of(m, m->depth[a])) {
        if (m->depth[a] >= 4) return o->ix->host->error(o->ix->env, TS_ERR_RESOURCE, "ngh: index is full");
        uint64_t dp;
        uint8_t *d;
        if ((rc = new_page(o, T_DIR, &dp, &d))) return rc;
        for (uint64_t t = 0; t < ntop(a); t++) {
            p64(d + PG_HDR + 8 * t, top_get(o, a, t));
            top_set(o, a, t, 0);
        }
        top_set(o, a, 0, dp);
        m->depth[a]++;
    }
    uint64_t dpg;
    if ((rc = new_page(o, type, &dpg, data))) return rc;
    uint64_t span = span_of(m, m->depth[a]), t = p / span, rem = p % span;
    if (m->depth[a] == 0) {
        top_set(o, a, t, dpg);
    } else {
        uint64_t pg = top_get(o, a, t);
        uint8_t *d;
        if (!pg) {
            if ((rc = new_page(o, T_DIR, &pg, &d))) return rc;
            top_set(o, a, t, pg);
        }
        for (uint32_t dd = m->depth[a]; dd > 0; dd--) {
            span /= m->fanout;
            uint64_t i = rem / span;
            rem %= span;
            if ((rc = pin(o, pg, 1, &d))) return rc;
            if ((rc = dir_check(o, d))) return rc;
            if (dd == 1) {
                p64(d + PG_HDR + 8 * i, dpg);
                break;
            }
            uint64_t next = g64(d + PG_HDR + 8 * i);
            if (!next) {
                uint8_t *nd;
                if ((rc = new_page(o, T_DIR, &next, &nd))) return rc;
                if ((rc = pin(o, pg, 1, &d))) return rc;
                p64(d + PG_HDR + 8 * i, next);
            }
            pg = next;
        }
    }
    m->npages[a]++;
    /* the fresh page may have moved in the table: look it up again */
    return pin_at(o, dpg, 1, a, p, data);
}

/* Free every page of every array (drop). */
static int free_tree(ngh_op *o, uint64_t pg, uint32_t depth)
{
    if (!pg) return TS_OK;
    if (depth > 0) {
        ts_page *p;
        int rc = o->pa->get(o->tx, pg, TS_PAGE_READ, &p);
        if (rc) return rc;
        const uint8_t *d = o->pa->data(p);
        if (g32(d) != T_DIR) { o->pa->release(p); return ngh_corrupt(o, "not a directory page"); }
        uint32_t n = o->m.fanout;
        uint64_t *kids = o->ix->host->alloc((size_t)n * 8);
        if (!kids) { o->pa->release(p); return nomem(o); }
        for (uint32_t i = 0; i < n; i++) kids[i] = g64(d + PG_HDR + 8 * i);
        o->pa->release(p);
        for (uint32_t i = 0; i < n && !rc; i++) rc = free_tree(o, kids[i], depth - 1);
        o->ix->host->free(kids);
        if (rc) return rc;
    }
    return o->pa->free(o->tx, pg);
}

int ngh_free_pages(ngh_op *o)
{
    unpin_all(o);
    for (int a = 0; a < NGH_NARRAYS; a++)
        for (uint64_t t = 0; t < ntop(a); t++) {
            int rc = free_tree(o, top_get(o, a, t), o->m.depth[a]);
            if (rc) return rc;
        }
    return TS_OK;
}

/* Position pos of array a (pages of type `type`) for reading: from the read
 * cache when the operation has one (holding the page on a miss), else
 * pinned.  The type is checked when the page comes from the kernel, not on
 * every cached use (that read alone was a cache miss per page visited). */
static int arr_read(ngh_op *o, int a, uint64_t pos, uint32_t type, uint8_t **out)
{
    ngh_snap *sn = o->snap;
    _Atomic(uint8_t *) *slot = NULL;
    ngh_wcache *wc = o->wc;
    if (wc && a < NGH_SNAP_ARRAYS && pos < wc->cap[a] && wc->slot[a][pos]) {
        *out = wc->slot[a][pos];
        return TS_OK;
    }
    if (wc && a < NGH_SNAP_ARRAYS && pos < UINT32_MAX) {
        uint8_t *b = wc_base_page(wc, a, (uint32_t)pos);
        if (b) {
            *out = b;
            return TS_OK;
        }
    }
    if (sn && a < NGH_SNAP_ARRAYS && pos < sn->cap[a]) {
        slot = &sn->slot[a][pos];
        uint8_t *c = atomic_load_explicit(slot, memory_order_acquire);
        if (c) {
            *out = c;
            return TS_OK;
        }
    }
    uint64_t pg;
    uint8_t *d;
    int rc = arr_pgno(o, a, pos, &pg);
    if (!rc) rc = pin(o, pg, 0, &d);
    if (rc) return rc;
    if (g32(d) != type)
        return ngh_corrupt(o, a == NGH_A_NODE ? "not a node page" : a == NGH_A_UPPER ? "not an upper-layer page"
                              : a == NGH_A_RAW ? "not a vector-tail page" : a == NGH_A_PK ? "not a key page"
                              : "not a key-hash page");
    *out = d;
    if (wc) {
        /* not a page this operation is changing: held for later write
         * operations (a changed one is held when released) */
        ngh_pin *e = pin_find(o, pg);
        if (e && !e->w && pos < UINT32_MAX) wc_fill(o, a, (uint32_t)pos, e);
        return TS_OK;
    }
    uint32_t size = o->m.usable;
    if (!slot || atomic_load_explicit(&sn->bytes, memory_order_relaxed) + size > o->ix->cache_bytes)
        return TS_OK; /* not cached: the pinned page serves */
    ngh_pin *e = pin_find(o, pg);
    void *h;
    uint8_t *exp = NULL;
    if (!e || o->pa->hold(e->pg, &h)) return TS_OK;
    if (atomic_compare_exchange_strong_explicit(slot, &exp, d, memory_order_acq_rel,
                                                memory_order_acquire)) {
        sn->hold[a][pos] = h;  /* read only when the cache is released */
        atomic_fetch_add_explicit(&sn->bytes, size, memory_order_relaxed);
    } else {
        o->pa->unhold(h);      /* another reader held the same image first */
        *out = exp;
    }
    return TS_OK;
}

/* ---- node records ----------------------------------------------------------- */

/* Slow path of node_rec: walk the directory, pin the page and remember it
 * in the scratch's position map (so the next visit of any node on the page
 * is an array index, no hashing and no kernel call). */
static int node_page(ngh_op *o, uint32_t pos, int write, uint8_t **out)
{
    ngh_scratch *s = o->s;
    uint64_t pg;
    uint8_t *d;
    int rc;
    if (write) {
        rc = arr_pgno(o, NGH_A_NODE, pos, &pg);
        if (!rc) rc = pin_at(o, pg, write, NGH_A_NODE, pos, &d);
        if (!rc && g32(d) != T_NODE) rc = ngh_corrupt(o, "not a node page");
    } else {
        rc = arr_read(o, NGH_A_NODE, pos, T_NODE, &d);
    }
    if (rc) return rc;
    if (pos >= s->pmcap) {
        uint64_t nc = s->pmcap ? s->pmcap : 256;
        while (nc <= pos) nc *= 2;
        ngh_pslot *n = o->ix->host->realloc(s->pm, (size_t)nc * sizeof *n);
        if (!n) return nomem(o);
        memset(n + s->pmcap, 0, (size_t)(nc - s->pmcap) * sizeof *n);
        s->pm = n;
        s->pmcap = (uint32_t)nc;
    }
    s->pm[pos] = (ngh_pslot){ s->pgen, (uint32_t)write, d };
    *out = d;
    return TS_OK;
}

/* Node page pos when this operation has it at hand (no kernel get), else
 * NULL.  Reads go straight to a cached page: the read cache (read-only
 * transactions) or the write cache (write operations: a page this
 * operation pins for write has left it, and is found through pm). */
static inline uint8_t *node_page_held(ngh_op *o, uint32_t pos, int write)
{
    ngh_scratch *s = o->s;
    uint8_t *d = NULL;
    ngh_snap *sn = o->snap;
    ngh_wcache *wc = o->wc;
    if (!write && sn && pos < sn->cap[NGH_A_NODE])
        d = atomic_load_explicit(&sn->slot[NGH_A_NODE][pos], memory_order_acquire);
    else if (!write && wc && !(pos < wc->cap[NGH_A_NODE] && (d = wc->slot[NGH_A_NODE][pos])))
        d = wc_base_page(wc, NGH_A_NODE, pos);
    if (!d && pos < s->pmcap && s->pm[pos].gen == s->pgen && (s->pm[pos].w || !write))
        d = s->pm[pos].d;
    return d;
}

static inline int node_rec(ngh_op *o, uint32_t id, int write, uint8_t **rec)
{
    const ngh_meta *m = &o->m;
    if (id >= m->count) return ngh_corrupt(o, "node id out of range");
    uint32_t pos = id / m->npp;
    uint8_t *d = node_page_held(o, pos, write);
    if (!d) {
        int rc = node_page(o, pos, write, &d);
        if (rc) return rc;
    }
    *rec = d + PG_HDR + (size_t)(id - pos * m->npp) * m->rec;
    return TS_OK;
}

int ngh_node(ngh_op *o, uint32_t id, int write, uint8_t **rec)
{
    return node_rec(o, id, write, rec);
}

/* The neighbour list of node id at level lev: *ids points at count ids. */
static int nlist(ngh_op *o, uint32_t id, uint32_t lev, int write, uint8_t **cnt, uint8_t **ids,
                 uint32_t *n)
{
    uint8_t *rec = NULL;
    int rc = node_rec(o, id, write && lev == 0, &rec);
    if (rc) return rc;
    if (lev == 0) {
        *cnt = rec + NR_COUNT;
        *ids = rec + NR_VEC + o->m.vbytes;
        *n = g16(rec + NR_COUNT);
        if (*n > o->m.M0) return ngh_corrupt(o, "neighbour count out of range");
        return TS_OK;
    }
    if (lev > rec[NR_LEVEL]) return ngh_corrupt(o, "level above the node's own");
    uint64_t u = (uint64_t)g32(rec + NR_UPPER) + lev - 1, pg;
    if (u >= o->m.nupper) return ngh_corrupt(o, "upper record out of range");
    uint8_t *d;
    if (write) {
        if ((rc = arr_pgno(o, NGH_A_UPPER, u / o->m.upp, &pg))) return rc;
        if ((rc = pin_at(o, pg, write, NGH_A_UPPER, u / o->m.upp, &d))) return rc;
        if (g32(d) != T_UPPER) return ngh_corrupt(o, "not an upper-layer page");
    } else if ((rc = arr_read(o, NGH_A_UPPER, u / o->m.upp, T_UPPER, &d))) {
        return rc;
    }
    uint8_t *r = d + PG_HDR + (size_t)(u % o->m.upp) * o->m.urec;
    *cnt = r;
    *ids = r + 4;
    *n = g32(r);
    if (*n > o->m.M) return ngh_corrupt(o, "neighbour count out of range");
    return TS_OK;
}

static void set_count(uint8_t *cnt, uint32_t lev, uint32_t n)
{
    if (lev == 0) p16(cnt, (uint16_t)n);
    else p32(cnt, n);
}

/* ---- raw float32 vectors ------------------------------------------------------ */

/* The raw array: node id's float32 vector at position id / rpp, slot
 * id % rpp; or, when a vector is bigger than a page, in the ppv pages
 * id * ppv .. id * ppv + ppv - 1. */
static int raw_room(ngh_op *o, uint32_t id)
{
    ngh_meta *m = &o->m;
    uint64_t need = m->split ? (uint64_t)id / m->tpp + 1
                  : m->rpp ? (uint64_t)id / m->rpp + 1 : ((uint64_t)id + 1) * m->ppv;
    while (m->npages[NGH_A_RAW] < need) {
        uint8_t *d;
        int rc = arr_append(o, NGH_A_RAW, T_RAW, &d);
        if (rc) return rc;
    }
    return TS_OK;
}

/* Piece j of node id's raw vector: *len bytes at *p. */
static int raw_piece(ngh_op *o, uint32_t id, uint32_t j, int write, uint8_t **p, uint32_t *len)
{
    const ngh_meta *m = &o->m;
    uint32_t room = m->usable - PG_HDR;
    uint64_t pos, off = 0, pg;
    if (m->rpp) {
        pos = id / m->rpp;
        off = (uint64_t)(id % m->rpp) * m->rawb;
        *len = m->rawb;
    } else {
        pos = (uint64_t)id * m->ppv + j;
        *len = j + 1 < m->ppv ? room : m->rawb - j * room;
    }
    uint8_t *d;
    int rc = arr_pgno(o, NGH_A_RAW, pos, &pg);
    if (!rc) rc = pin(o, pg, write, &d);
    if (rc) return rc;
    if (g32(d) != T_RAW) return ngh_corrupt(o, "not a raw vector page");
    *p = d + PG_HDR + off;
    return TS_OK;
}

/* Node id's float32 vector: in its page when it fits one, else copied to buf. */
static int raw_vec(ngh_op *o, uint32_t id, float *buf, const float **out)
{
    uint8_t *p = NULL;
    uint32_t len, room = o->m.usable - PG_HDR;
    int rc;
    if (o->m.rpp) {
        if ((rc = raw_piece(o, id, 0, 0, &p, &len))) return rc;
        *out = (const float *)(const void *)p;
        return TS_OK;
    }
    for (uint32_t j = 0; j < o->m.ppv; j++) {
        if ((rc = raw_piece(o, id, j, 0, &p, &len))) return rc;
        memcpy((uint8_t *)buf + (size_t)j * room, p, len);
    }
    *out = buf;
    return TS_OK;
}

static int raw_put(ngh_op *o, uint32_t id, const float *v)
{
    uint32_t room = o->m.usable - PG_HDR;
    for (uint32_t j = 0; j < o->m.ppv; j++) {
        uint8_t *p = NULL;
        uint32_t len;
        int rc = raw_piece(o, id, j, 1, &p, &len);
        if (rc) return rc;
        memcpy(p, (const uint8_t *)v + (size_t)j * room, len);
    }
    return TS_OK;
}

/* Node id's vector tail (split layout): tailb bytes in array NGH_A_RAW,
 * read like node pages (through the read and write caches; the cached
 * case inline, it is one lookup a distance). */
static int tail_slow(ngh_op *o, uint32_t id, int write, uint8_t **p);
static inline int tail_of(ngh_op *o, uint32_t id, int write, uint8_t **p)
{
    const ngh_meta *m = &o->m;
    uint32_t pos = id / m->tpp;
    uint8_t *d = NULL;
    if (!write && o->snap && pos < o->snap->cap[NGH_A_RAW])
        d = atomic_load_explicit(&o->snap->slot[NGH_A_RAW][pos], memory_order_acquire);
    else if (!write && o->wc && !(pos < o->wc->cap[NGH_A_RAW] && (d = o->wc->slot[NGH_A_RAW][pos])))
        d = wc_base_page(o->wc, NGH_A_RAW, pos);
    if (!d) return tail_slow(o, id, write, p);
    *p = d + PG_HDR + (size_t)(id - pos * m->tpp) * m->tailb;
    return TS_OK;
}

static int tail_slow(ngh_op *o, uint32_t id, int write, uint8_t **p)
{
    const ngh_meta *m = &o->m;
    uint64_t pos = id / m->tpp, pg;
    uint8_t *d;
    int rc;
    if (write) {
        if ((rc = arr_pgno(o, NGH_A_RAW, pos, &pg)) || (rc = pin_at(o, pg, 1, NGH_A_RAW, pos, &d))) return rc;
        if (g32(d) != T_RAW) return ngh_corrupt(o, "not a vector-tail page");
    } else if ((rc = arr_read(o, NGH_A_RAW, pos, T_RAW, &d))) {
        return rc;
    }
    *p = d + PG_HDR + (size_t)(id % m->tpp) * m->tailb;
    return TS_OK;
}

int ngh_pk_slot(ngh_op *o, uint32_t id, int write, uint8_t **slot)
{
    const ngh_meta *m = &o->m;
    int rc;
    if (!m->pkw) return ngh_corrupt(o, "no primary-key slots in a format 1 index");
    if (m->pk_inline) {
        uint8_t *rec = NULL;
        if ((rc = node_rec(o, id, write, &rec))) return rc;
        *slot = rec + m->pkoff;
        return TS_OK;
    }
    uint64_t pos = id / m->ppk, pg;
    uint8_t *d;
    while (write && m->npages[NGH_A_PK] <= pos)
        if ((rc = arr_append(o, NGH_A_PK, T_PK, &d))) return rc;
    if (!write) rc = arr_read(o, NGH_A_PK, pos, T_PK, &d);
    else if (!(rc = arr_pgno(o, NGH_A_PK, pos, &pg)) && !(rc = pin_at(o, pg, 1, NGH_A_PK, pos, &d)) &&
             g32(d) != T_PK)
        rc = ngh_corrupt(o, "not a key page");
    if (rc) return rc;
    *slot = d + PG_HDR + (size_t)(id % m->ppk) * m->pkw;
    return TS_OK;
}

int ngh_bucket(ngh_op *o, uint64_t b, int write, uint8_t **head)
{
    const ngh_meta *m = &o->m;
    uint64_t pos = b / m->hpp, pg;
    uint8_t *d;
    int rc;
    if (!m->pkw) return ngh_corrupt(o, "no key hash in a format 1 index");
    if (!write && pos >= m->npages[NGH_A_HASH]) {
        *head = NULL; /* a bucket no insert reached yet: empty */
        return TS_OK;
    }
    while (write && m->npages[NGH_A_HASH] <= pos)
        if ((rc = arr_append(o, NGH_A_HASH, T_HASH, &d))) return rc;
    if (!write) rc = arr_read(o, NGH_A_HASH, pos, T_HASH, &d);
    else if (!(rc = arr_pgno(o, NGH_A_HASH, pos, &pg)) && !(rc = pin_at(o, pg, 1, NGH_A_HASH, pos, &d)) &&
             g32(d) != T_HASH)
        rc = ngh_corrupt(o, "not a key-hash page");
    if (rc) return rc;
    *head = d + PG_HDR + (size_t)(b % m->hpp) * 4;
    return TS_OK;
}

/* ---- distances ------------------------------------------------------------- */

void ngh_prepare_query(const ngh_op *o, const float *q, float *qn)
{
    uint32_t dim = o->m.dim;
    memcpy(qn, q, (size_t)dim * 4);
    if (o->m.metric != NGH_COSINE) return;
    float n = o->ix->k.dot(q, q, dim);
    if (n > 0) {
        float inv = 1.0f / sqrtf(n);
        for (uint32_t i = 0; i < dim; i++) qn[i] *= inv;
    }
}

static inline float metric_dist(int metric, float dot_or_l2, float inva, float invb)
{
    switch (metric) {
    case NGH_L2: return dot_or_l2;
    case NGH_IP: return -dot_or_l2;
    default: return 1.0f - dot_or_l2 * inva * invb;
    }
}

/* Distance from the float32 vector a (inva: 1/|a| for cosine, 1 for a
 * normalized query) to node b, measured on b's stored vector (quantized
 * for float16 and int8: the graph is walked on the compact records). */
static inline int pdist(ngh_op *o, const float *a, float inva, uint32_t idb, const uint8_t *b, float *d)
{
    const ngh_meta *m = &o->m;
    const ngh_kernels *k = &o->ix->k;
    if (!m->ext && !m->split) {
        const uint8_t *v = b + NR_VEC;
        float s = gf(b + NR_SCALE);
        float x = m->metric == NGH_L2 ? k->ql2(a, v, m->dim, s) : k->qdot(a, v, m->dim, s);
        *d = metric_dist((int)m->metric, x, inva, gf(b + NR_INV));
        return TS_OK;
    }
    if (m->split) {
        /* squared L2 and dot products are sums over the dimensions: the
         * head's and the tail's add up */
        uint8_t *t = NULL;
        int rc = tail_of(o, idb, 0, &t);
        if (rc) return rc;
        uint32_t h = m->vbytes / 4;
        float x = m->metric == NGH_L2 ? k->l2(a, b + NR_VEC, h) + k->l2(a + h, t, m->dim - h)
                                      : k->dot(a, b + NR_VEC, h) + k->dot(a + h, t, m->dim - h);
        *d = metric_dist((int)m->metric, x, inva, gf(b + NR_INV));
        return TS_OK;
    }
    const float *v;
    int rc = raw_vec(o, idb, o->s->vb2, &v);
    if (rc) return rc;
    float x = m->metric == NGH_L2 ? k->l2(a, v, m->dim) : k->dot(a, v, m->dim);
    *d = metric_dist((int)m->metric, x, inva, gf(b + NR_INV));
    return TS_OK;
}

/* pdist for a caller that only needs the distance when it is at most
 * bound: above it *d may be +inf instead, found before the whole vector
 * (and, split, before the tail) was read.  float32 L2 only; the other
 * metrics' partial sums can fall, so they measure in full.  Below 256
 * dimensions the checks cost what they save (128-d builds: 9% of the
 * distances stopped at half; no gain in alternating runs): m->below. */
static inline int pdist_below(ngh_op *o, const float *a, float inva, uint32_t idb, const uint8_t *b,
                              float bound, float *d)
{
    const ngh_meta *m = &o->m;
    const ngh_kernels *k = &o->ix->k;
    if (!m->below || bound == INFINITY) return pdist(o, a, inva, idb, b, d);
    if (!m->split) {
        *d = k->l2_below(a, b + NR_VEC, m->dim, 0.0f, bound);
        return TS_OK;
    }
    uint32_t h = m->vbytes / 4;
    float x = k->l2(a, b + NR_VEC, h);
    if (x > bound) {
        *d = INFINITY;
        return TS_OK;
    }
    uint8_t *t = NULL;
    int rc = tail_of(o, idb, 0, &t);
    if (rc) return rc;
    *d = k->l2_below(a + h, t, m->dim - h, x, bound);
    return TS_OK;
}

/* Node id's vector as float32, to measure it against other nodes: in place
 * (float32 records), dequantized into buf, or its raw vector (ext). */
static int vec_f32(ngh_op *o, uint32_t id, const uint8_t *rec, float *buf, const float **out)
{
    const ngh_meta *m = &o->m;
    if (m->ext) return raw_vec(o, id, buf, out);
    if (m->split) {
        uint8_t *t = NULL;
        int rc = tail_of(o, id, 0, &t);
        if (rc) return rc;
        memcpy(buf, rec + NR_VEC, m->vbytes);
        memcpy((uint8_t *)buf + m->vbytes, t, m->tailb);
        *out = buf;
        return TS_OK;
    }
    if (m->precision == NGH_F32) {
        *out = (const float *)(const void *)(rec + NR_VEC);
        return TS_OK;
    }
    ngh_dequantize((int)m->precision, rec + NR_VEC, m->dim, gf(rec + NR_SCALE), buf);
    *out = buf;
    return TS_OK;
}

int ngh_vector(ngh_op *o, uint32_t id, const uint8_t *rec, float *buf, const float **out)
{
    if (o->m.raw) return raw_vec(o, id, buf, out);
    return vec_f32(o, id, rec, buf, out);
}

int ngh_key_matches(ngh_op *o, uint32_t id, const uint8_t *rec, const void *key, int *match)
{
    const ngh_meta *m = &o->m;
    if (m->raw || m->precision == NGH_F32) {
        const float *vec;
        int rc = ngh_vector(o, id, rec, o->s->vb, &vec);
        if (rc) return rc;
        *match = !memcmp(vec, key, (size_t)m->dim * 4);
        return TS_OK;
    }
    /* Quantized keys: the record is the quantization of the key it was
     * inserted with (a function of the key alone), so the same key gives
     * the same codes and scale; the dequantized record may differ from the
     * key in the last bits of the scale. */
    float sc = 1.0f;
    memcpy(o->s->vb2, key, (size_t)m->dim * 4);
    ngh_quantize((int)m->precision, o->s->vb2, m->dim, o->s->vb, &sc);
    size_t qb = m->precision == NGH_F16 ? 2 * (size_t)m->dim : m->dim;
    *match = !memcmp(o->s->vb, rec + NR_VEC, qb) && !memcmp(&sc, rec + NR_SCALE, 4);
    return TS_OK;
}

int ngh_exact_dist(ngh_op *o, const float *q, uint32_t id, const uint8_t *rec, float *d)
{
    const ngh_meta *m = &o->m;
    if (!m->raw) return pdist(o, q, 1.0f, id, rec, d);
    const float *v;
    int rc = raw_vec(o, id, o->s->vb2, &v);
    if (rc) return rc;
    const ngh_kernels *k = &o->ix->k;
    float x = m->metric == NGH_L2 ? k->l2(q, v, m->dim) : k->dot(q, v, m->dim);
    *d = metric_dist((int)m->metric, x, 1.0f, gf(rec + NR_INV));
    return TS_OK;
}


/* ---- heaps ---------------------------------------------------------------- */

static void hpush_min(ngh_cand *h, uint32_t *n, ngh_cand c)
{
    uint32_t i = (*n)++;
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (h[p].d <= c.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static ngh_cand hpop_min(ngh_cand *h, uint32_t *n)
{
    ngh_cand top = h[0], last = h[--(*n)];
    uint32_t i = 0, N = *n;
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= N) break;
        if (l + 1 < N && h[l + 1].d < h[l].d) l++;
        if (last.d <= h[l].d) break;
        h[i] = h[l];
        i = l;
    }
    if (N) h[i] = last;
    return top;
}

void ngh_heap_push_max(ngh_cand *h, uint32_t *n, ngh_cand c)
{
    uint32_t i = (*n)++;
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (h[p].d >= c.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

void ngh_heap_replace_max(ngh_cand *h, uint32_t n, ngh_cand c)
{
    uint32_t i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= n) break;
        if (l + 1 < n && h[l + 1].d > h[l].d) l++;
        if (c.d >= h[l].d) break;
        h[i] = h[l];
        i = l;
    }
    h[i] = c;
}

static ngh_cand hpop_max(ngh_cand *h, uint32_t *n)
{
    ngh_cand top = h[0], last = h[--(*n)];
    if (*n) ngh_heap_replace_max(h, *n, last);
    return top;
}

static int cand_cmp(const void *a, const void *b)
{
    const ngh_cand *x = a, *y = b;
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Sort by (distance, id): insertion sort for the short lists of link() and
 * re-ranking (no comparison callbacks), qsort beyond. */
static void sort_cands(ngh_cand *a, uint32_t n)
{
    if (n > 48) {
        qsort(a, n, sizeof *a, cand_cmp);
        return;
    }
    for (uint32_t i = 1; i < n; i++) {
        ngh_cand x = a[i];
        uint32_t j = i;
        while (j && (a[j - 1].d > x.d || (a[j - 1].d == x.d && a[j - 1].id > x.id))) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}


/* ---- search ---------------------------------------------------------------- */

/* Start fetching a record's vector while other distances are computed:
 * records are scattered over the node pages.  Every line the distance
 * reads is asked for (a 128-d record spans 9-10 lines; a cap at 512 bytes
 * left the last one or two to miss on demand). */
static inline void prefetch_lines(const uint8_t *p, size_t n)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)63, z = (uintptr_t)p + n;
    for (; a < z; a += 64) __builtin_prefetch((const void *)a, 0, 3);
}

/* What prefetch_rec fetches of a record whose distance may stop at the
 * bound (m.below): most stop at the first or second check (128 and 256
 * floats), and whole 784-d records fetched for them took the bandwidth the
 * next records needed.  Fashion-MNIST on AVX-512: QPS at recall 0.95 /
 * 0.99 +20-25% / +16%, builds +10-16% (512-1536 bytes measured alike).
 * Not for split records: their head is always measured whole (pdist_below)
 * and capping it cost ~10% of the QPS at 0.95. */
#define PF_BELOW_BYTES 1024u

/* node id's record (rec) and, split, its tail (a lookup error is left to
 * the distance to report) */
static inline void prefetch_rec(ngh_op *o, uint32_t id, const uint8_t *rec)
{
    size_t n = NR_VEC + o->m.vbytes;
    prefetch_lines(rec, o->m.below && !o->m.split && n > PF_BELOW_BYTES ? PF_BELOW_BYTES : n);
    uint8_t *t = NULL;
    if (o->m.split && !tail_of(o, id, 0, &t)) prefetch_lines(t, o->m.tailb);
}

/* the first line of the record and, split, of its tail */
static inline void prefetch_first(ngh_op *o, uint32_t id, const uint8_t *rec)
{
    __builtin_prefetch(rec, 0, 3);
    uint8_t *t = NULL;
    if (o->m.split && !tail_of(o, id, 0, &t)) __builtin_prefetch(t, 0, 3);
}

/* Records fetched ahead of the distance being measured: about 30 lines in
 * flight, at most 3 records (128-d float32: 3; 784-d: 1).  Three whole
 * 784-d records (49 lines each) filled the core's miss buffers, so the
 * prefetch instructions themselves stalled, and capped at 512 bytes most
 * of each record was left to the hardware prefetcher; one ahead, whole:
 * QPS at recall 0.95 / 0.99 +19-65%, builds +6-10%.  At 128-d one ahead
 * lost 3-10% of the build.  (Sizes in between were not measured.) */
static inline uint32_t pf_ahead(const ngh_meta *m)
{
    uint32_t lines = (NR_VEC + m->vbytes + m->tailb + 63) / 64 + 1 + (m->split != 0), n = 30 / lines;
    return n < 1 ? 1 : n > 3 ? 3 : n;
}

/* The unvisited neighbours' node pages that no cache holds: hinted to the
 * kernel (ts_page_api.prefetch) before the first is got, so that a search
 * over pages not in memory (a fresh process, a cold disk) has the device
 * read them together rather than one get after another.  Pages at hand
 * cost a check of the slots the first pass already touched. */
#if defined(__GNUC__)
__attribute__((noinline, cold)) /* out of the search loop's way when warm */
#endif
static void prefetch_cold(ngh_op *o, ngh_scratch *s, const uint8_t *lst, uint32_t n)
{
    uint32_t last = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = g32(lst + 4 * i);
        if (e >= o->m.count || s->visit[e] == s->gen) continue;
        uint32_t pos = e / o->m.npp;
        uint64_t pg;
        if (pos == last || node_page_held(o, pos, 0)) continue;
        last = pos;
        if (arr_pgno(o, NGH_A_NODE, pos, &pg) == TS_OK) o->pa->prefetch(o->tx, pg);
    }
}

/* Start fetching what node_rec and visited() will read for node id: the
 * slot that maps its page and, with stamp (the visited set is set up), its
 * visited stamp (ids out of range are left to node_rec to report). */
static inline void prefetch_slot(ngh_op *o, uint32_t id, int stamp)
{
    if (id >= o->m.count) return;
    ngh_scratch *s = o->s;
    uint32_t pos = id / o->m.npp;
    const ngh_snap *sn = o->snap;
    if (stamp) __builtin_prefetch(&s->visit[id], 1, 3);
    if (sn && pos < sn->cap[NGH_A_NODE]) __builtin_prefetch(&sn->slot[NGH_A_NODE][pos], 0, 3);
    else if (o->wc && pos < o->wc->cap[NGH_A_NODE]) __builtin_prefetch(&o->wc->slot[NGH_A_NODE][pos], 0, 3);
    else if (pos < s->pmcap) __builtin_prefetch(&s->pm[pos], 0, 3);
    if (!o->m.split) return;
    pos = id / o->m.tpp;
    if (sn && pos < sn->cap[NGH_A_RAW]) __builtin_prefetch(&sn->slot[NGH_A_RAW][pos], 0, 3);
    else if (o->wc && pos < o->wc->cap[NGH_A_RAW]) __builtin_prefetch(&o->wc->slot[NGH_A_RAW][pos], 0, 3);
}

/* Greedy descent at level lev from *ep (distance *epd). */
static int greedy(ngh_op *o, const float *q, uint32_t lev, uint32_t *ep, float *epd)
{
    uint32_t ids[256], ahead = pf_ahead(&o->m);
    uint8_t *recs[256];
    for (int changed = 1; changed;) {
        changed = 0;
        ngh_op_relax(o);
        uint8_t *cnt, *lst;
        uint32_t n;
        int rc = nlist(o, *ep, lev, 0, &cnt, &lst, &n);
        if (rc) return rc;
        memcpy(ids, lst, (size_t)n * 4);
        /* the records' misses overlap, as in search_layer (a search at a
         * small ef spends a third of its distances up here) */
        for (uint32_t i = 0; i < n; i++) prefetch_slot(o, ids[i], 0); /* no visited set here */
        for (uint32_t i = 0; i < n; i++) {
            if ((rc = node_rec(o, ids[i], 0, &recs[i]))) return rc;
            if (i < ahead) prefetch_rec(o, ids[i], recs[i]);
            else prefetch_first(o, ids[i], recs[i]);
        }
        for (uint32_t i = 0; i < n; i++) {
            float d;
            if (i + ahead < n) prefetch_rec(o, ids[i + ahead], recs[i + ahead]);
            if ((rc = pdist_below(o, q, 1.0f, ids[i], recs[i], *epd, &d))) return rc;
            if (d < *epd) {
                *epd = d;
                *ep = ids[i];
                changed = 1;
            }
        }
    }
    return TS_OK;
}

/* A shrunk list is refilled with pruned candidates up to LINK_SLACK short
 * of full, so the next back-links append without another shrink (a shrink
 * measures every neighbour again: refilled to full, every back-link paid
 * one).  Build +5-10%; recall at ef 10 0.959 -> 0.953, equal from ef 18
 * (100K x 128-d, M 16). */
#define LINK_SLACK 4

/* How many ids at the head of a layer-0 list an insert's beam reads (0:
 * all), besides the last LINK_SLACK.  A shrunk list holds its heuristic
 * picks first, nearest first, then the pruned candidates that fill it,
 * then at most LINK_SLACK back-links appended since; a list never shrunk,
 * the node's own M links (picks, then fill) and the back-links since.  The
 * head holds the edges that route and the last ids the newest nodes, which
 * nothing else leads to yet; a beam as wide as efConstruction finds a new
 * node's candidates through them about as well as through the whole list
 * (hnswlib's lists hold only the picks: 13 ids on average at M 16).
 * Searches read every id: the fuller lists are what makes them cheaper at
 * a given recall.  784-d builds +12%, 1M x 128-d +25%; recall within
 * 0.002 of whole lists at every ef (docs/ngh.md).  parameters.buildLinks
 * sets it (0: whole lists). */
static inline uint32_t build_links(const ngh_op *o)
{
    uint32_t lim = o->ix->build_links, dflt = 3 * o->m.M0 / 8;
    return lim != NGH_BUILD_LINKS_DEFAULT ? lim : dflt >= 8 ? dflt : 0;
}

/* The ids of an n-id list that a search with lim reads: lst itself, or
 * (lim ids and LINK_SLACK more to leave out) its first lim and last
 * LINK_SLACK ids copied into buf, *n their count. */
static inline const uint8_t *list_read(const uint8_t *lst, uint32_t *n, uint32_t lim, uint32_t *buf)
{
    if (!lim || *n <= lim + LINK_SLACK) return lst;
    memcpy(buf, lst, (size_t)lim * 4);
    memcpy(buf + lim, lst + 4 * (*n - LINK_SLACK), (size_t)LINK_SLACK * 4);
    *n = lim + LINK_SLACK;
    return (const uint8_t *)buf;
}

/* search_layer of the HNSW paper: from the entry points eps, the ef nearest
 * accepted nodes at level lev (acc NULL: every node).  Nodes that are not
 * accepted are still expanded (they route), so a selective filter widens the
 * beam by itself; `budget` (0: none) caps the nodes visited while fewer than
 * ef accepted nodes were found; with `lim` (0: every id) only the ids
 * list_read gives (build_links).
 * Results go to out[], nearest first. */
static int search_layer(ngh_op *o, const float *q, const ngh_cand *eps, uint32_t neps, uint32_t ef,
                        uint32_t lev, ngh_accept_fn acc, void *actx, uint32_t budget,
                        ngh_cand *out, uint32_t *nout, int *gave_up, uint32_t lim)
{
    ngh_scratch *s = o->s;
    uint32_t ids[512];
    uint8_t *recs[512];
    int rc = visit_begin(o, o->m.count);
    if (rc) return rc;
    uint32_t need = ef + neps + 2 * o->m.M0 + 8;
    if ((rc = grow(o, &s->w, &s->wcap, need))) return rc;
    if ((rc = grow(o, &s->c, &s->ccap, neps + 64))) return rc;
    uint32_t nc = 0, nw = 0, nvis = 0, ahead = pf_ahead(&o->m), nexp = 0;
    int hint = 0;
    if (gave_up) *gave_up = 0;
    for (uint32_t i = 0; i < neps; i++) {
        if (visited(s, eps[i].id)) continue;
        nvis++;
        hpush_min(s->c, &nc, eps[i]);
        int a = acc ? acc(actx, o, eps[i].id) : 1;
        if (a < 0) return a;
        if (a == NGH_GIVE_UP) goto give_up;
        if (a) {
            ngh_heap_push_max(s->w, &nw, eps[i]);
            if (nw > ef) hpop_max(s->w, &nw);
        }
    }
    while (nc) {
        ngh_cand c = hpop_min(s->c, &nc);
        if (nw >= ef && c.d > s->w[0].d) break;
        if (budget && nw < ef && nvis > budget) goto give_up;
        ngh_op_relax(o);
        uint8_t *cnt, *whole;
        uint32_t n, nn = 0, part[512];
        if ((rc = nlist(o, c.id, lev, 0, &cnt, &whole, &n))) return rc;
        const uint8_t *lst = list_read(whole, &n, lim, part);
        /* Three passes, so that the cache misses of one neighbour overlap
         * the others' and the distances: (1) every neighbour's visited
         * stamp and page slot, (2) the unvisited ones' records, the first
         * line each (all of it for the first pf_ahead), (3) the distances,
         * each pulling in the whole record pf_ahead places ahead.  Pulling
         * in every line of every record at once (32 x 9 lines) stalled on
         * the core's miss buffers: a third of a build's time. */
        for (uint32_t i = 0; i < n; i++) prefetch_slot(o, g32(lst + 4 * i), 1);
        /* and the same for the next candidate's neighbours (it usually is
         * the next expanded), so its stamps and slots arrive while this
         * one's distances run: +2-6% searches, +3% builds */
        if (nc) {
            uint8_t *cnt2, *whole2;
            uint32_t n2, part2[512];
            if ((rc = nlist(o, s->c[0].id, lev, 0, &cnt2, &whole2, &n2))) return rc;
            const uint8_t *lst2 = list_read(whole2, &n2, lim, part2);
            for (uint32_t i = 0; i < n2; i++) prefetch_slot(o, g32(lst2 + 4 * i), 1);
        }
        /* every 8th expansion asks whether reads come from the device (a
         * call, no system call); only then the neighbours' pages are hinted */
        if (o->ix->kpf && (nexp++ & 7) == 0) hint = o->pa->prefetch(o->tx, 0) == TS_OK;
        if (hint) prefetch_cold(o, s, lst, n);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t e = g32(lst + 4 * i);
            if (e >= o->m.count) return ngh_corrupt(o, "neighbour id out of range");
            if (visited(s, e)) continue;
            if ((rc = node_rec(o, e, 0, &recs[nn]))) return rc;
            if (nn < ahead) prefetch_rec(o, e, recs[nn]);
            else prefetch_first(o, e, recs[nn]);
            ids[nn++] = e;
        }
        if ((rc = grow(o, &s->c, &s->ccap, nc + nn + 1))) return rc;
        for (uint32_t i = 0; i < nn; i++) {
            uint32_t e = ids[i];
            float d;
            nvis++;
            if (i + ahead < nn) prefetch_rec(o, ids[i + ahead], recs[i + ahead]);
            if ((rc = pdist_below(o, q, 1.0f, e, recs[i], nw < ef ? INFINITY : s->w[0].d, &d))) return rc;
            if (nw < ef || d < s->w[0].d) {
                hpush_min(s->c, &nc, (ngh_cand){ d, e });
                int a = acc ? acc(actx, o, e) : 1;
                if (a < 0) return a;
                if (a == NGH_GIVE_UP) goto give_up;
                /* only nearer than the farthest kept gets here once full */
                if (a && nw < ef) ngh_heap_push_max(s->w, &nw, (ngh_cand){ d, e });
                else if (a) ngh_heap_replace_max(s->w, nw, (ngh_cand){ d, e });
            }
        }
    }
    /* the results heap, emptied from the farthest: sorted without callbacks */
    *nout = nw;
    while (nw) {
        ngh_cand x = hpop_max(s->w, &nw);
        out[nw] = x;
    }
    return TS_OK;
give_up:
    if (gave_up) *gave_up = 1;
    *nout = 0;
    return TS_OK;
}

uint32_t ngh_rerank_count(uint32_t k, uint32_t ef)
{
    /* 2k (at least 20) of the beam: the true k nearest are nearly always
     * among the quantized 2k best, and each re-ranked candidate costs a
     * raw-page read (raw pages are not in the read cache) */
    uint32_t r = 2 * k < 20 ? 20 : 2 * k;
    return r < ef ? r : ef;
}

/* A search at ef of an index whose layer 1 is large (count / M, count the
 * node ids allocated, at least the option upperBeamNodes, NGH_BEAM_NODES by
 * default) walks layer 1 with a beam of ef / UPPER_BEAM_DIV (at most
 * UPPER_BEAM_MAX; below 2, the greedy walk) and enters layer 0 from all it
 * found.  A greedy walk over a layer that large stops in a local minimum
 * often enough that some queries start layer 0 in the wrong cluster, where
 * no ef short of a few hundred gets out: at 1M x 128-d, recall 0.9824 ->
 * 0.9946 at ef 64 and a plateau near 0.993 gone (docs/benchmarks.md).
 * Below that size the greedy walk is as good and cheaper. */
#define UPPER_BEAM_DIV   4
#define UPPER_BEAM_MAX   32

int ngh_graph_search(ngh_op *o, const float *q, uint32_t ef, uint32_t rerank, ngh_accept_fn acc,
                     void *actx, uint32_t budget, ngh_cand *out, uint32_t *nout, int *gave_up)
{
    *nout = 0;
    *gave_up = 0;
    if (!o->m.count) return TS_OK;
    uint32_t ep = o->m.entry;
    uint8_t *rec = NULL;
    float epd;
    int rc = node_rec(o, ep, 0, &rec);
    if (!rc) rc = pdist(o, q, 1.0f, ep, rec, &epd);
    if (rc) return rc;
    uint32_t ef1 = o->m.count / o->m.M >= o->ix->beam_nodes ? ef / UPPER_BEAM_DIV : 0;
    if (ef1 > UPPER_BEAM_MAX) ef1 = UPPER_BEAM_MAX;
    uint32_t beam = ef1 > 1 && o->m.maxlevel >= 1;   /* layer 1 by beam, not greedily */
    for (uint32_t lev = o->m.maxlevel; lev > beam; lev--)
        if ((rc = greedy(o, q, lev, &ep, &epd))) return rc;
    ngh_cand e = { epd, ep }, *eps = &e;
    uint32_t neps = 1;
    if (beam) {
        ngh_scratch *s = o->s;
        if ((rc = grow(o, &s->tmp, &s->tcap, ef1))) return rc;
        /* keeps at least its entry point: neps >= 1 */
        if ((rc = search_layer(o, q, &e, 1, ef1, 1, NULL, NULL, 0, s->tmp, &neps, NULL, 0))) return rc;
        eps = s->tmp;
    }
    rc = search_layer(o, q, eps, neps, ef, 0, acc, actx, budget, out, nout, gave_up, 0);
    if (rc || !o->m.raw || o->m.ext || !*nout) return rc;
    /* Quantized records: the beam found the candidates on approximate
     * distances; re-rank the best `rerank` of them on the float32 vectors,
     * so the order and the distances returned are exact and a true
     * neighbour that the quantization put a little too far is still
     * picked up. */
    if (rerank && *nout > rerank) *nout = rerank;
    for (uint32_t i = 0; i < *nout; i++) {
        ngh_op_relax(o);
        if ((rc = node_rec(o, out[i].id, 0, &rec))) return rc;
        if ((rc = ngh_exact_dist(o, q, out[i].id, rec, &out[i].d))) return rc;
    }
    sort_cands(out, *nout);
    return TS_OK;
}

/* ---- insert ------------------------------------------------------------------ */

/* The heuristic neighbour selection (HNSW paper, algorithm 4, without
 * extending the candidates): walk the candidates nearest first and keep one
 * only when it is nearer to the base than to every one kept so far, so the
 * kept edges point in different directions; then pruned ones, nearest
 * first, until fill ids are kept.  cands is sorted. */
static int select_heuristic(ngh_op *o, const ngh_cand *cands, uint32_t n, uint32_t max,
                            uint32_t *out, uint32_t *nout, uint32_t fill)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n && k < max; i++) {
        uint8_t *ci = NULL, *rj = NULL;
        const float *cv;
        int rc = node_rec(o, cands[i].id, 0, &ci);
        if (!rc) rc = vec_f32(o, cands[i].id, ci, o->s->vb, &cv);
        if (rc) return rc;
        float cinv = gf(ci + NR_INV);
        int good = 1;
        for (uint32_t j = 0; j < k && good; j++) {
            float d;
            if ((rc = node_rec(o, out[j], 0, &rj))) return rc;
            if ((rc = pdist_below(o, cv, cinv, out[j], rj, cands[i].d, &d))) return rc;
            if (d < cands[i].d) good = 0;
        }
        if (good) out[k++] = cands[i].id;
    }
    /* Fill the free slots with the nearest pruned candidates: the record
     * has room for max ids anyway, and the extra edges keep nodes from
     * losing every in-edge as lists are shrunk (unreachable nodes). */
    if (fill > max) fill = max;
    for (uint32_t i = 0; i < n && k < fill; i++) {
        uint32_t j = 0;
        while (j < k && out[j] != cands[i].id) j++;
        if (j == k) out[k++] = cands[i].id;
    }
    *nout = k;
    return TS_OK;
}

/* Add edge from -> to at level lev, shrinking from's list with the
 * heuristic when it is full. */
static int link(ngh_op *o, uint32_t from, uint32_t to, uint32_t lev)
{
    uint32_t max = lev ? o->m.M : o->m.M0;
    uint8_t *cnt, *lst;
    uint32_t n;
    int rc = nlist(o, from, lev, 0, &cnt, &lst, &n);
    if (rc) return rc;
    uint32_t ids[513];
    memcpy(ids, lst, (size_t)n * 4);
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == to) return TS_OK;
    if (n < max) {
        if ((rc = nlist(o, from, lev, 1, &cnt, &lst, &n))) return rc;
        p32(lst + 4 * n, to);
        set_count(cnt, lev, n + 1);
        return TS_OK;
    }
    ids[n++] = to;
    ngh_scratch *s = o->s;
    if ((rc = grow(o, &s->tmp, &s->tcap, n))) return rc;
    uint8_t *base = NULL, *r = NULL;
    const float *bv;
    if ((rc = node_rec(o, from, 0, &base))) return rc;
    if ((rc = vec_f32(o, from, base, s->vb, &bv))) return rc;
    float binv = gf(base + NR_INV);
    for (uint32_t i = 0; i < n; i++) {
        float d;
        if ((rc = node_rec(o, ids[i], 0, &r))) return rc;
        if ((rc = pdist(o, bv, binv, ids[i], r, &d))) return rc;
        s->tmp[i] = (ngh_cand){ d, ids[i] };
    }
    sort_cands(s->tmp, n);
    uint32_t sel[512], ns;
    uint32_t fill = max > 2 * LINK_SLACK ? max - LINK_SLACK : max; /* small M: full */
    if ((rc = select_heuristic(o, s->tmp, n, max, sel, &ns, fill))) return rc;
    if ((rc = nlist(o, from, lev, 1, &cnt, &lst, &n))) return rc;
    memcpy(lst, sel, (size_t)ns * 4);
    set_count(cnt, lev, ns);
    return TS_OK;
}

static uint32_t random_level(const ngh_meta *m, uint32_t id)
{
    /* P(level >= l) = M^-l, from a hash of the id: no state to keep */
    uint64_t h = ngh_mix64(m->seed ^ ngh_mix64((uint64_t)id + 0x9E3779B97F4A7C15ull));
    double u = (double)((h >> 11) + 1) * (1.0 / 9007199254740993.0);
    double l = -log(u) / log((double)m->M);
    return l >= NGH_MAXLEVEL ? NGH_MAXLEVEL : (uint32_t)l;
}

/* Write node id's vector: the record's copy (float32 or quantized) and the
 * raw float32 vector when the index keeps one. */
static int put_vector(ngh_op *o, uint32_t id, uint8_t *rec, const float *v)
{
    const ngh_meta *m = &o->m;
    float nn = o->ix->k.dot(v, v, m->dim), sc = 1.0f;
    pf(rec + NR_INV, nn > 0 ? 1.0f / sqrtf(nn) : 0.0f);
    if (m->split) {
        /* the tail's page is pinned beside rec's, which stays valid */
        uint8_t *t = NULL;
        int rc = tail_of(o, id, 1, &t);
        if (rc) return rc;
        memcpy(rec + NR_VEC, v, m->vbytes);
        memcpy(t, (const uint8_t *)v + m->vbytes, m->tailb);
    } else if (!m->ext) {
        if (m->precision == NGH_F32) memcpy(rec + NR_VEC, v, (size_t)m->dim * 4);
        else ngh_quantize((int)m->precision, v, m->dim, rec + NR_VEC, &sc);
    }
    pf(rec + NR_SCALE, sc);
    return m->raw ? raw_put(o, id, v) : TS_OK;
}

/* Before deleted node x is reused for another vector: each of its old
 * out-neighbours that links back to x gets, in x's place, the nearest of
 * x's other neighbours it does not link to yet (the path n -> x -> m
 * becomes n -> m), so the region x bridged stays connected when x's id
 * moves to the new vector.  About M0 distances per neighbour. */
static int unlink_reused(ngh_op *o, uint32_t x, uint32_t lev)
{
    uint32_t xs[512], ids[512];
    for (uint32_t l = 0; l <= lev; l++) {
        uint8_t *cnt, *lst;
        uint32_t nx, n;
        ngh_op_relax(o);
        int rc = nlist(o, x, l, 0, &cnt, &lst, &nx);
        if (rc) return rc;
        memcpy(xs, lst, (size_t)nx * 4);
        for (uint32_t i = 0; i < nx; i++) {
            uint32_t nb = xs[i], pos = NGH_NONE, best = NGH_NONE;
            if (nb == x) continue;
            ngh_op_relax(o);
            if ((rc = nlist(o, nb, l, 0, &cnt, &lst, &n))) return rc;
            memcpy(ids, lst, (size_t)n * 4);
            for (uint32_t j = 0; j < n; j++)
                if (ids[j] == x) pos = j;
            if (pos == NGH_NONE) continue;
            uint8_t *brec = NULL, *crec = NULL;
            const float *bv;
            float bd = 0;
            if ((rc = node_rec(o, nb, 0, &brec)) || (rc = vec_f32(o, nb, brec, o->s->vb, &bv))) return rc;
            float binv = gf(brec + NR_INV);
            for (uint32_t j = 0; j < nx; j++) {
                uint32_t c = xs[j], t = 0;
                float d;
                if (c == nb || c == x) continue;
                while (t < n && ids[t] != c) t++;
                if (t < n) continue;
                if ((rc = node_rec(o, c, 0, &crec)) || (rc = pdist(o, bv, binv, c, crec, &d))) return rc;
                if (best == NGH_NONE || d < bd) {
                    best = c;
                    bd = d;
                }
            }
            if (best != NGH_NONE) ids[pos] = best;
            else ids[pos] = ids[--n];
            uint32_t old;
            if ((rc = nlist(o, nb, l, 1, &cnt, &lst, &old))) return rc;
            memcpy(lst, ids, (size_t)n * 4);
            set_count(cnt, l, n);
        }
    }
    return TS_OK;
}

/* Take over deleted node x for vector v: move the entry point off x when
 * it is x, repair x's old neighbourhood, then empty x's lists and store v. */
static int reuse_node(ngh_op *o, uint32_t x, uint32_t lev, const float *v)
{
    ngh_meta *m = &o->m;
    uint8_t *rec = NULL, *cnt, *lst;
    uint32_t n;
    int rc = node_rec(o, x, 0, &rec);
    if (rc) return rc;
    if (!(rec[NR_FLAGS] & NR_DELETED) || rec[NR_LEVEL] != lev)
        return ngh_corrupt(o, "free node id is not a deleted node of its level");
    if (m->entry == x) {
        /* the nearest level down where x has a neighbour: that neighbour
         * (whose level is at least that) becomes the entry point */
        uint32_t alt = NGH_NONE, altlev = 0;
        for (int32_t l = (int32_t)lev; l >= 0 && alt == NGH_NONE; l--) {
            if ((rc = nlist(o, x, (uint32_t)l, 0, &cnt, &lst, &n))) return rc;
            for (uint32_t i = 0; i < n && alt == NGH_NONE; i++)
                if (g32(lst + 4 * i) != x) {
                    alt = g32(lst + 4 * i);
                    altlev = (uint32_t)l;
                }
        }
        m->entry = alt;
        m->maxlevel = altlev;
    }
    if ((rc = unlink_reused(o, x, lev))) return rc;
    for (uint32_t l = 0; l <= lev; l++) {
        ngh_op_relax(o);
        if ((rc = nlist(o, x, l, 1, &cnt, &lst, &n))) return rc;
        set_count(cnt, l, 0);
    }
    if ((rc = node_rec(o, x, 1, &rec))) return rc;
    rec[NR_FLAGS] = 0;
    if ((rc = put_vector(o, x, rec, v))) return rc;
    m->deleted--;
    m->live++;
    return TS_OK;
}

int ngh_graph_insert(ngh_op *o, const float *v, uint32_t reuse, uint32_t *id_out)
{
    ngh_meta *m = &o->m;
    ngh_idx *ix = o->ix;
    uint32_t id, lev;
    int rc;
    uint8_t *d, *rec = NULL;
    if (reuse != NGH_NONE) {
        if (reuse >= m->count || !m->deleted) return ngh_corrupt(o, "free node id out of range");
        id = reuse;
        lev = random_level(m, id); /* the level a node of this id always has */
        if ((rc = reuse_node(o, id, lev, v))) return rc;
    } else {
        if (m->count == NGH_NONE - 1) return ix->host->error(ix->env, TS_ERR_RESOURCE, "ngh: index is full");
        id = m->count;
        lev = random_level(m, id);
        /* room for the record and its upper-layer lists */
        if (id / m->npp >= m->npages[NGH_A_NODE]) {
            if ((rc = arr_append(o, NGH_A_NODE, T_NODE, &d))) return rc;
        }
        if ((m->raw || m->split) && (rc = raw_room(o, id))) return rc;
        uint32_t ubase = m->nupper;
        for (uint32_t l = 0; l < lev; l++) {
            uint32_t u = ubase + l;
            if (u / m->upp >= m->npages[NGH_A_UPPER] &&
                (rc = arr_append(o, NGH_A_UPPER, T_UPPER, &d))) return rc;
        }
        m->nupper += lev;
        m->count++;
        m->live++;
        if ((rc = node_rec(o, id, 1, &rec))) return rc;
        memset(rec, 0, m->rec);
        rec[NR_LEVEL] = (uint8_t)lev;
        p32(rec + NR_UPPER, ubase);
        if ((rc = put_vector(o, id, rec, v))) return rc;
    }
    *id_out = id;
    if (m->entry == NGH_NONE) {
        m->entry = id;
        m->maxlevel = lev;
        return TS_OK;
    }
    /* the query: v itself (normalized for cosine) */
    float *q = ix->host->alloc((size_t)m->dim * 4);
    if (!q) return nomem(o);
    ngh_prepare_query(o, v, q);
    ngh_scratch *s = o->s;
    uint32_t ep = m->entry;
    float epd;
    if ((rc = node_rec(o, ep, 0, &rec)) || (rc = pdist(o, q, 1.0f, ep, rec, &epd))) goto out;
    for (uint32_t l = m->maxlevel; l > lev; l--)
        if ((rc = greedy(o, q, l, &ep, &epd))) goto out;
    ngh_cand *W = NULL, *eps = NULL;
    uint32_t nW = 0, neps = 1;
    uint32_t cap = m->efc + 2 * m->M0 + 16;
    W = ix->host->alloc((size_t)cap * sizeof *W);
    eps = ix->host->alloc((size_t)cap * sizeof *eps);
    if (!W || !eps) { rc = nomem(o); goto out2; }
    eps[0] = (ngh_cand){ epd, ep };
    for (int32_t l = (int32_t)(lev < m->maxlevel ? lev : m->maxlevel); l >= 0; l--) {
        uint32_t lim = l ? 0 : build_links(o);
        if ((rc = search_layer(o, q, eps, neps, m->efc, (uint32_t)l, NULL, NULL, 0, W, &nW, NULL, lim)))
            goto out2;
        /* A fresh node is not linked yet, so W does not hold it; a reused
         * one may be reached through old in-edges: drop it.  It links to M
         * nodes at every level (as hnswlib does); its layer-0 list has room
         * for M0, filled by the back-links of later nodes. */
        for (uint32_t i = 0; i < nW; i++)
            if (W[i].id == id) {
                memmove(W + i, W + i + 1, (size_t)(nW - i - 1) * sizeof *W);
                nW--;
                break;
            }
        uint32_t max = m->M, sel[512], ns;
        if ((rc = grow(o, &s->tmp, &s->tcap, nW))) goto out2;
        memcpy(s->tmp, W, (size_t)nW * sizeof *W);
        if ((rc = select_heuristic(o, s->tmp, nW, max, sel, &ns, max))) goto out2;
        uint8_t *cnt, *lst;
        uint32_t n;
        if ((rc = nlist(o, id, (uint32_t)l, 1, &cnt, &lst, &n))) goto out2;
        memcpy(lst, sel, (size_t)ns * 4);
        set_count(cnt, (uint32_t)l, ns);
        for (uint32_t i = 0; i < ns; i++) {
            ngh_op_relax(o);
            if ((rc = link(o, sel[i], id, (uint32_t)l))) goto out2;
        }
        memcpy(eps, W, (size_t)nW * sizeof *W);
        neps = nW;
        ngh_op_relax(o);
    }
    if (lev > m->maxlevel) {
        m->maxlevel = lev;
        m->entry = id;
    }
out2:
    ix->host->free(W);
    ix->host->free(eps);
out:
    ix->host->free(q);
    return rc;
}
