/*
 * ngh.h - internals shared by the files of the ngh vector index module
 * (docs/ngh.md).  ngh_dist.c: distance kernels; ngh_graph.c: pages, node
 * records and the HNSW graph; ngh_keys.c: primary keys (slots, the key
 * hash, the btree map); ngh.c: the index vtable, options, knn and cursors.
 */
#ifndef NGH_H
#define NGH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tostore/index.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#  error "ngh stores float32 vectors in host order: little-endian hosts only"
#endif


#define NGH_VERSION_STR "0.1.0"
/* Format 1: every primary key in the btree map ('N' id -> key, 'K'
 * hash(vector) hash(key) -> id).  Format 2: a fixed-width primary-key slot
 * per node (in the record, or in a page array of its own) and 'K' hash(key)
 * id -> "" entries; the map holds only keys too long for a slot.  Format 3
 * (written only when it packs better): format 2 with float32 vectors split
 * between the record (the head) and a packed tail array (docs/ngh.md). */
#define NGH_FORMAT      3u
#define NGH_MAXLEVEL    15
#define NGH_PK_MAX      (16u << 20)
#define NGH_NONE        0xFFFFFFFFu
/* Default bound of each of an index's page-copy caches (option cacheBytes). */
#define NGH_CACHE_BYTES (1ull << 30)
#define NGH_BEAM_NODES  16384u  /* see ngh_graph_search */
/* parameters.buildLinks absent: 3·M0/8 (ngh_graph.c build_links) */
#define NGH_BUILD_LINKS_DEFAULT 0xFFFFFFFFu
/* Below it a partial-sum check costs what it saves (ngh_graph.c pdist_below). */
#define NGH_BELOW_MIN_DIM 256u

enum { NGH_L2 = 0, NGH_COSINE = 1, NGH_IP = 2 };
enum { NGH_F32 = 0, NGH_F16 = 1, NGH_I8 = 2 };
/* Page arrays addressed through the meta page's radix directory. */
enum { NGH_A_NODE = 0, NGH_A_UPPER = 1, NGH_A_RAW = 2, NGH_A_PK = 3, NGH_A_HASH = 4, NGH_NARRAYS = 5 };

typedef float (*ngh_kernel_fn)(const void *a, const void *b, size_t n);
/* float32 query q against a stored vector v of the index's precision; s is
 * the int8 scale (ignored for float32 and float16). */
typedef float (*ngh_qkernel_fn)(const float *q, const void *v, size_t n, float s);
typedef struct ngh_kernels {
    ngh_kernel_fn  dot;  /* float32: sum a[i] * b[i] */
    ngh_kernel_fn  l2;   /* float32: sum (a[i] - b[i])^2 */
    ngh_qkernel_fn qdot; /* sum q[i] * v[i] (v dequantized) */
    ngh_qkernel_fn ql2;  /* sum (q[i] - v[i])^2 (v dequantized) */
    const char    *name;
    /* float32: base + l2(a, b, n) with the same bits as base + l2, or
     * +inf as soon as a partial sum shows it is above bound (every term is
     * >= 0, so partial sums only grow).  NULL: no early stop. */
    float (*l2_below)(const void *a, const void *b, size_t n, float base, float bound);
} ngh_kernels;
/* level 0: scalar, 1: at most SSE, 2: at most AVX2, 3: the best the CPU offers. */
void ngh_dist_pick(ngh_kernels *k, int level, int precision);
/* IEEE half <-> float (to nearest even; beyond +-65504 clamps to +-65504). */
uint16_t ngh_f2h(float f);
float    ngh_h2f(uint16_t h);
/* n floats -> float16 (2n bytes) or int8 (n bytes, *scale: v ~ scale * c). */
void ngh_quantize(int prec, const float *v, size_t n, void *out, float *scale);
void ngh_dequantize(int prec, const void *in, size_t n, float scale, float *out);

/* A (distance, node) pair in the search heaps. */
typedef struct ngh_cand { float d; uint32_t id; } ngh_cand;
/* Max-heaps of candidates (the farthest on top): add c to the n in h;
 * replace the top of the n in h by c. */
void ngh_heap_push_max(ngh_cand *h, uint32_t *n, ngh_cand c);
void ngh_heap_replace_max(ngh_cand *h, uint32_t n, ngh_cand c);

/* Per-search scratch, pooled in the index (one per concurrent search):
 * the generation-stamped visited array and the heaps. */
/* Node-array position -> pinned page data for the current operation,
 * valid while gen equals the scratch's pgen (see ngh_node). */
typedef struct ngh_pslot { uint32_t gen, w; uint8_t *d; } ngh_pslot;

/* A pinned page; arr / pos: its page array position when pinned for write
 * (arr -1: not a cached array), to refresh the write cache's copy. */
typedef struct ngh_pin { uint64_t pgno; ts_page *pg; uint8_t *d; int w; int arr; uint32_t pos; } ngh_pin;

typedef struct ngh_scratch {
    struct ngh_scratch *next;
    pthread_t owner;         /* the thread that used it last */
    uint16_t *visit;
    uint32_t  vcap;
    uint16_t  gen;
    ngh_cand *c, *w, *tmp;   /* candidates (min-heap), results (max-heap), scratch */
    uint32_t  ccap, wcap, tcap;
    ngh_pslot *pm;           /* by node-array position */
    uint32_t   pmcap, pgen;
    float     *vb, *vb2;     /* dim floats each: dequantized / raw vectors */
    /* the pin table of the operation holding the scratch, all slots empty
     * between operations: pooled because a 10 KB calloc per search went to
     * malloc's slow path (and, on other threads' arenas, to page faults) */
    ngh_pin   *ptab;
    uint32_t   ptcap;
} ngh_scratch;

/* The read cache: the pages of the cached arrays (node, upper-layer, key
 * and key-hash pages, split tails: cached_arr) of one committed
 * generation of the index (the meta page's gen, bumped by every write
 * operation), shared by every read operation that sees that generation:
 * the kernel's own images of them, held (ts_page_api.hold) rather than
 * copied.  Slots are filled once (compare-and-swap) and never change; a
 * newer generation replaces the cache, released when its last reader
 * ends. */
#define NGH_SNAP_ARRAYS 5  /* every array; NGH_A_RAW as split tails only */
/* Runs of nodes whose keys follow their ids (ngh_keys.c, "runs"): node
 * r.id0 + i holds the key pre + (r.k0 + i) as its last 8 bytes, big endian. */
typedef struct ngh_run {
    uint64_t k0, end;   /* end: the furthest k0 + len of this run and those before it */
    uint32_t id0, len;
} ngh_run;
typedef struct ngh_runs {
    uint32_t n, plen;   /* runs; the keys' length (all but their last 8 bytes are pre) */
    uint8_t  pre[56];
    /* carried to later states (ngh_runs_stale): ids below nids (the count
     * the runs were made at) whose bit is set in stale are not trusted, a
     * later state having written their record or key slot; NULL: none */
    uint32_t nids;
    uint8_t *stale;
    /* runs this one replaced in its read cache, whose readers may still
     * hold them: freed with it */
    struct ngh_runs *older;
    ngh_run  r[];       /* by k0 */
} ngh_runs;

typedef struct ngh_snap {
    uint64_t gen;
    uint32_t writer;   /* the meta page's writer tag of its state */
    uint32_t refs;     /* under ngh_idx.mu */
    int      retired;  /* under ngh_idx.mu */
    uint32_t cap[NGH_SNAP_ARRAYS];
    _Atomic(uint8_t *) *slot[NGH_SNAP_ARRAYS];
    /* node id -> its primary key as the map has it (a 2-byte length, then
     * the bytes), filled like the page slots: the results' and the
     * filter's keys without a map lookup each; pkcap ids */
    uint32_t pkcap;
    _Atomic(uint8_t *) *pk;
    _Atomic uint64_t bytes;
    void   **hold[NGH_SNAP_ARRAYS];  /* each filled slot's hold, by position */
    /* the live nodes' key runs, made once enough keys were looked up
     * (finds) and carried when the cache moves to a later state, made again
     * once the keys they did not answer (misses: stale, or outside every
     * run) are as many and the state has changed since; runs_state 0: not
     * yet, 1: being made, 2: done (runs NULL: not worth keeping) */
    _Atomic(ngh_runs *) runs;
    _Atomic uint64_t    finds, misses;
    _Atomic int         runs_state;
    /* carried runs a later pass found not worth keeping (runs then NULL),
     * readers possibly still inside: freed when the cache moves or goes */
    ngh_runs           *runs_dead;
} ngh_snap;

/* The write cache: the cached arrays' pages as the write operations left
 * them (held kernel images, as in the read cache, and this writer's own
 * pages), for the next write operation of the same state
 * (its meta generation equals gen); under ngh_idx.mu except while busy,
 * when the one write operation holding it owns it. */
typedef struct ngh_wcache {
    uint64_t  gen;
    int       valid, busy;
    uint32_t  cap[NGH_SNAP_ARRAYS];
    uint8_t **slot[NGH_SNAP_ARRAYS];
    uint64_t  bytes;
    void    **hold[NGH_SNAP_ARRAYS];
    /* the state the cache started from (the meta page's generation and
     * writer when the first of its write operations began) and, for every
     * position its operations pinned for write since, the generation the
     * last of them made (0: none): a read cache of generation g on this
     * chain of states has the bytes of every position whose entry is <= g
     * (snap_advance, snap_inherit, wc_base_page, runs_mark_stale).  base_ok 0: unknown (an
     * array could not grow, or the cache was emptied) */
    uint64_t  base_gen;
    uint32_t  base_writer;
    int       base_ok;
    uint32_t  lwcap[NGH_SNAP_ARRAYS];
    uint64_t *lw[NGH_SNAP_ARRAYS];
    /* the read cache of the start state, referenced (under ngh_idx.mu):
     * write operations read its pages where nothing was written since,
     * instead of holding them again; NULL: none */
    ngh_snap *base_snap;
} ngh_wcache;

/* knn results handed out per transaction (see ngh.c). */
#define NGH_RESBUFS 64
typedef struct ngh_resbuf {
    ts_txn  *tx;
    uint8_t *buf;
    size_t   cap;
    uint64_t stamp;
} ngh_resbuf;

typedef struct ngh_idx {
    const ts_host     *host;
    ts_env            *env;
    const ts_page_api *pa;
    int                kpf;      /* pa has prefetch (ABI 1.9): searches hint cold node pages */
    uint64_t           root;
    /* from the options (checked against the meta page at every operation) */
    uint32_t dim, M, efc, efs;
    int      metric, precision;
    uint64_t cache_bytes;    /* bound of the read cache and of the write cache, each */
    uint32_t beam_nodes;     /* searches walk layer 1 with a beam from count / M >= this */
    uint32_t build_links;    /* parameters.buildLinks, or NGH_BUILD_LINKS_DEFAULT */
    ngh_kernels k;
    /* the primary-key map: a btree index of the kernel's btree module */
    const ts_index_vtab *btv;
    void                *btplugin_state;
    void                *bt;         /* opened on first use (root is in the meta page) */
    pthread_mutex_t      mu;         /* guards pool, res, bt */
    pthread_cond_t       idle;       /* the write cache stopped being busy (under mu) */
    uint32_t             waiters;    /* readers waiting for it (under mu) */
    ngh_scratch         *pool;
    unsigned             npool;
    ngh_resbuf           res[NGH_RESBUFS];
    uint64_t             stamp;
    ngh_snap            *snap;       /* the newest read cache (under mu) */
    ngh_wcache           wc;
    /* Nonzero, drawn at open: written into the meta page by this object's
     * write operations, so that a generation number another object over
     * the same index committed (after this one's writer rolled back to the
     * same number) never matches this object's write cache. */
    uint32_t             tag;
} ngh_idx;

/* The meta page, decoded. */
typedef struct ngh_meta {
    uint32_t dim, metric, precision, M, M0, efc;
    uint64_t seed, btroot, gen;
    uint32_t writer;   /* the tag of the object whose write operation set gen (0: none) */
    uint32_t count, live, deleted, entry, maxlevel, nupper;
    uint32_t usable, rec, npp, vbytes, urec, upp, fanout;
    /* raw float32 vectors (array NGH_A_RAW): kept when the record holds a
     * quantized vector or none (ext: too big for a record); rpp vectors per
     * page, or ppv pages per vector when one does not fit a page */
    uint32_t ext, raw, rawb, rpp, ppv;
    /* format 3, float32: the record holds the vector's first vbytes, the
     * rest (tailb bytes) is in array NGH_A_RAW, tpp tails a page */
    uint32_t split, tailb, tpp;
    /* keys arrive exactly representable at the precision (decoded from
     * vectors stored at it): the records are exact, no raw array */
    uint32_t keys_quantized;
    /* format 2: pkw-byte primary-key slots (a length byte, 0xFF when the
     * key is in the map, then the key), at pkoff in the record when
     * pk_inline, else ppk a page in array NGH_A_PK */
    uint32_t format, pkw, pk_inline, pkoff, ppk;
    /* format 2: the key hash's buckets (linear hashing: hpp << hlevel
     * buckets plus the hsplit already split; hpp bucket heads a page) */
    uint32_t hlevel, hsplit, hpp;
    uint32_t depth[NGH_NARRAYS], npages[NGH_NARRAYS];
    /* distances may stop at a bound (float32 L2 from NGH_BELOW_MIN_DIM
     * dimensions, kernels with l2_below; ngh_graph.c pdist_below) */
    uint32_t below;
} ngh_meta;


/* One operation on the index inside one transaction. */
typedef struct ngh_op {
    ngh_idx           *ix;
    ts_txn            *tx;
    const ts_page_api *pa;
    int                write;
    ts_page           *mpg;
    uint8_t           *md;
    ngh_meta           m;
    ngh_pin           *tab;      /* pinned pages (open addressing on pgno) */
    uint32_t           tcap, tn;
    ngh_scratch       *s;
    void              *bcur;     /* btree cursor for pk lookups (lazily opened) */
    uint8_t            pkbuf[64 * 9]; /* a packed key slot decoded (pk_of) */
    uint32_t           relax;    /* pins kept before ngh_op_relax lets go */
    ngh_snap          *snap;     /* read operations on the cached generation */
    ngh_wcache        *wc;       /* write operations continuing the cached state */
    void             **dead;     /* holds of write-cache pages dropped by this operation */
    uint32_t           ndead, deadcap;
    /* ngh_pk_find_many: the last key found (all but its last 8 bytes, and
     * those as an integer) and its node, to guess the next keys' nodes;
     * hint_len 0: none */
    uint32_t           hint_len, hint_id;
    uint64_t           hint_last;
    uint8_t            hint_pre[56];
} ngh_op;

/* Node record fields. */
#define NR_FLAGS  0   /* u8: bit 0 deleted */
#define NR_LEVEL  1   /* u8 */
#define NR_COUNT  2   /* u16: layer-0 neighbours */
#define NR_UPPER  4   /* u32: first upper record */
#define NR_INV    8   /* f32: 1/|v| of the float32 vector (cosine) */
#define NR_SCALE 12   /* f32: int8 scale (v ~ scale * codes); 1 otherwise */
#define NR_VEC   16
#define NR_DELETED 1u

int  ngh_op_begin(ngh_op *o, ngh_idx *ix, ts_txn *tx, int write);
void ngh_op_end(ngh_op *o);
/* Release the pinned pages when many are pinned: call only where no
 * pointer into a page is held. */
void ngh_op_relax(ngh_op *o);
int  ngh_node(ngh_op *o, uint32_t id, int write, uint8_t **rec);
int  ngh_corrupt(ngh_op *o, const char *what);
/* Format 2: node id's primary-key slot (o->m.pkw bytes); write makes room
 * for it.  Valid until the next ngh_op_relax or a write pin of its page.
 * Bytes 0-3: the next node of its key-hash chain + 1 (0: the end); byte 4:
 * the length L of the key that follows; NGH_PK_PACKED | L: L bytes of
 * packed integer components follow (ngh.c, pk_pack); NGH_PK_IN_MAP: the
 * key is in the map. */
#define NGH_SLOT_KEY 5
#define NGH_PK_IN_MAP 0xFFu
#define NGH_PK_PACKED 0x80u
int  ngh_pk_slot(ngh_op *o, uint32_t id, int write, uint8_t **slot);
/* Format 2: the head of key-hash bucket b (a u32: node id + 1, 0: empty);
 * write makes room for it, a read of a bucket without a page yet gives
 * NULL (empty).  Valid like a slot. */
int  ngh_bucket(ngh_op *o, uint64_t b, int write, uint8_t **head);

/* Graph operations (ngh_graph.c). */
/* Insert v as a new node, or (reuse != NGH_NONE) in the place of deleted
 * node reuse taken from the free list. */
int ngh_graph_insert(ngh_op *o, const float *v, uint32_t reuse, uint32_t *id_out);
/* 1: accept, 0: skip, NGH_GIVE_UP: stop searching (*gave_up), < 0: error. */
#define NGH_GIVE_UP 2
typedef int (*ngh_accept_fn)(void *ctx, ngh_op *o, uint32_t id);
/* The up to ef nearest accepted entries (sorted, nearest first) in
 * out[0..*nout) (with float16 / int8: the first `rerank` re-ranked on the
 * float32 vectors, *nout cut to them); *gave_up when the search stopped at its visit budget
 * before finding ef accepted entries. */
int ngh_graph_search(ngh_op *o, const float *q, uint32_t ef, uint32_t rerank, ngh_accept_fn acc,
                     void *actx, uint32_t budget, ngh_cand *out, uint32_t *nout, int *gave_up);
/* How many of the beam's best a quantized index re-ranks for k results. */
uint32_t ngh_rerank_count(uint32_t k, uint32_t ef);
/* Exact distance from query q (already normalized for cosine) to node id
 * (rec: its record), on the float32 vector (raw pages when quantized and
 * the keys were not; the record itself when they were). */
int  ngh_exact_dist(ngh_op *o, const float *q, uint32_t id, const uint8_t *rec, float *d);
/* The float32 vector of node id: *out points into a page or into buf (dim
 * floats); valid until the next page access.  With quantized keys, the
 * record dequantized (a scale may differ from the key's in the last bit). */
int  ngh_vector(ngh_op *o, uint32_t id, const uint8_t *rec, float *buf, const float **out);
/* *match: node id (rec) holds exactly key (dim floats, any alignment);
 * uses the scratch's vb and vb2. */
int  ngh_key_matches(ngh_op *o, uint32_t id, const uint8_t *rec, const void *key, int *match);
void ngh_prepare_query(const ngh_op *o, const float *q, float *qn);

/* ngh_graph.c, used by ngh.c.  split: parameters.splitRecords (-1 absent,
 * 0 false, 1 true). */
int      ngh_meta_init(uint8_t *d, uint32_t usable, uint32_t dim, int metric, int prec, int keys_quantized, uint32_t M,
                       uint32_t efc, uint64_t seed, uint64_t btroot, uint32_t format, int split);
int      ngh_free_pages(ngh_op *o);
void     ngh_pool_free(ngh_idx *ix);
void     ngh_snap_free(ngh_idx *ix, ngh_snap *s);
/* Node id's primary key from the operation's read cache: 1 with *pk / *pl
 * (valid while the operation lasts), 0 when not cached. */
int      ngh_snap_pk(ngh_op *o, uint32_t id, const void **pk, size_t *pl);
/* Prefetch the cached primary keys of the n candidates (their slots, then
 * the copies), so looking them up one by one does not wait on each miss. */
void     ngh_snap_pk_prefetch(ngh_op *o, const ngh_cand *c, uint32_t n);
/* Keep a copy of node id's primary key in the operation's read cache (when
 * it has one and room); *pk / *pl then point at the copy. */
void     ngh_snap_pk_fill(ngh_op *o, uint32_t id, const void **pk, size_t *pl);
void     ngh_wcache_reset(ngh_idx *ix);
/* Empty the write cache o owns (before freeing the index's pages, which
 * would rewrite held ones). */
void     ngh_wcache_clear(ngh_op *o);
/* ---- small helpers (map keys are big endian, so they sort by id) ---- */

static inline void ngh_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t ngh_gbe32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void ngh_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t ngh_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t ngh_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t h = ngh_mix64(seed ^ (n * 0x9E3779B97F4A7C15ull));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = ngh_mix64(h ^ w) + 0x9E3779B97F4A7C15ull;
    }
    uint64_t t = 0;
    for (size_t j = 0; i < n; i++, j++) t |= (uint64_t)b[i] << (8 * j);
    return ngh_mix64(h ^ t ^ 0xA5);
}

static inline size_t ngh_nkey(uint8_t *k, uint32_t id) { k[0] = 'N'; ngh_be32(k + 1, id); return 5; }
static inline size_t ngh_fkey(uint8_t *k, uint32_t id) { k[0] = 'F'; ngh_be32(k + 1, id); return 5; }
/* format 1: 'K' hash(vector) hash(pk) */
static inline size_t ngh_kkey(uint8_t *k, uint64_t hv, uint64_t hp) { k[0] = 'K'; ngh_be64(k + 1, hv); ngh_be64(k + 9, hp); return 17; }

/* Format 2: the key hash's buckets before its split pointer (N * 2^L). */
static inline uint64_t ngh_hash_base(const ngh_meta *m) { return (uint64_t)m->hpp << m->hlevel; }

/* ngh_keys.c: primary keys. */
/* Node id's primary key (pointers valid until o->bcur moves, the operation
 * relaxes its pins or re-gets the page for writing, or the next call). */
int ngh_pk_of(ngh_op *o, uint32_t id, const void **pk, size_t *pl);
/* Format 2: the nodes of n <= NGH_FIND_BATCH primary keys, their lookups
 * overlapped: ids[i] a live node whose key is vals[i] (any one, should a
 * key have several), NGH_NO_ID when none; TS_ERR_UNSUPPORTED in a format 1
 * index.  Pointers from the operation stay valid only until its next
 * relax: relax before, not during, a batch. */
#define NGH_FIND_BATCH 64
#define NGH_NO_ID UINT32_MAX
int ngh_pk_find_many(ngh_op *o, size_t n, const void *const *vals, const size_t *vlens, uint32_t *ids);
/* Key runs (see ngh_keys.c) kept across a move of their read cache. */
/* The bytes rs and its older ones hold. */
size_t ngh_runs_bytes(const ngh_runs *rs);
/* Free rs and its older ones (NULL: nothing). */
void ngh_runs_free(ngh_idx *ix, ngh_runs *rs);
/* A copy of rs without its older ones; NULL when out of memory. */
ngh_runs *ngh_runs_copy(ngh_idx *ix, const ngh_runs *rs);
/* Ids id0 .. id0 + n - 1 no longer trusted (a later state may have
 * written them); no reader may have rs.  TS_OK or TS_ERR_NOMEM. */
int ngh_runs_stale(ngh_idx *ix, ngh_runs *rs, uint32_t id0, uint32_t n);
/* Record new node id's primary key val (its vector: key). */
int ngh_pk_put(ngh_op *o, uint32_t id, const void *key, size_t klen, const void *val, size_t vlen);
/* Forget node id's primary key pk (its vector: key), as remove does. */
int ngh_pk_drop(ngh_op *o, uint32_t id, const void *key, const void *pk, size_t pl);
/* Call fn for every live node whose vector equals key and whose primary
 * key equals val (any key when val is NULL); *found counts them. */
typedef int (*ngh_match_fn)(ngh_op *o, uint32_t id, void *ctx);
int ngh_find_matches(ngh_op *o, const void *key, size_t klen, const void *val, size_t vlen,
                     ngh_match_fn fn, void *ctx, uint32_t *found);
#endif
