/*
 * tostore/index.h - index modules (kind TS_KIND_INDEX) and the kernel page
 * API they are built on.
 *
 * An index maps byte-string keys to byte-string values inside the database
 * file.  Entries are ordered by (key, value): a unique index holds one value
 * per key; a non-unique one keeps equal keys apart by their values (the
 * kernel stores the row's primary key there).  Keys are memcomparable
 * (tostore/keys.h): modules compare them with memcmp and never interpret
 * them.  All storage goes through ts_host.pages inside a transaction the
 * kernel owns; an index module never touches files, so crash safety,
 * encryption and rollback come from the kernel.
 *
 * Rules every index module follows (the conformance suite in
 * tests/index/test_index_conformance.c checks them):
 *  - One instance (idx) per index per database handle serves every
 *    transaction at once — a writer and any number of readers, each with
 *    its own cursors — so idx holds no per-transaction state outside locks;
 *    per-transaction state lives in cursors.
 *  - The root page number given by create never changes (split the root in
 *    place): the kernel's catalog records it.
 *  - A cursor stays usable after its own transaction changes the index
 *    through the same idx (it repositions at the entry it was on, or the
 *    next one if that entry is gone).  Pointers from entry() stay valid
 *    until the cursor moves.
 *  - Inserting a (key, value) pair that exists is TS_ERR_UNIQUE, as is a
 *    unique insert of an existing key.  A key longer than TS_INDEX_KEY_MAX
 *    or a value over 16 MiB is TS_ERR_VALIDATION.
 *  - After an error in the middle of a change the kernel rolls the
 *    transaction back; the module need not undo partial work.
 *  - Unordered modules (no TS_INDEX_ORDERED) support seek with TS_SEEK_EQ
 *    only (others: TS_ERR_UNSUPPORTED) and iterate in an unspecified order.
 */
#ifndef TOSTORE_INDEX_H
#define TOSTORE_INDEX_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ts_txn  ts_txn;   /* a kernel transaction (read or write) */
typedef struct ts_page ts_page;  /* a pinned page */

#define TS_PAGE_READ  0
#define TS_PAGE_WRITE 1

/*
 * The page API.  Page numbers are 64-bit; 0 is never a valid page.  A page
 * obtained with get/alloc stays pinned until release; its data pointer is
 * valid until then.  Writing is allowed only to pages obtained with
 * TS_PAGE_WRITE in a write transaction.  Changes become visible to other
 * transactions at commit and vanish at rollback.
 */
typedef struct ts_page_api {
    uint32_t struct_size;
    /* Usable bytes per page (the kernel's page size minus its header). */
    uint32_t (*usable_size)(ts_txn *txn);
    /* Pin page pgno (TS_PAGE_READ or TS_PAGE_WRITE).  A page number outside
     * the file (0, 1 or past its end) or of a free page gives TS_ERR_CORRUPT:
     * page numbers come from the index's own pages, so such a number is a
     * damaged reference. */
    int      (*get)(ts_txn *txn, uint64_t pgno, int mode, ts_page **page_out);
    /* Allocate a zeroed page (reusing freed pages first), pinned for write. */
    int      (*alloc)(ts_txn *txn, ts_page **page_out, uint64_t *pgno_out);
    /* Return a page to the free list; it must not be pinned (a page already
     * free: TS_ERR_CORRUPT). */
    int      (*free)(ts_txn *txn, uint64_t pgno);
    void    *(*data)(ts_page *page);
    uint64_t (*pgno)(ts_page *page);
    void     (*release)(ts_page *page);
    /* Whether txn may write (1) or only read (0). */
    int      (*writable)(ts_txn *txn);

    /* ABI 1.5 (check struct_size before use).  Keep the image of a page
     * got with get or alloc in memory beyond its release and its
     * transaction, for a module's own cache of pages, without copying it:
     * data(page) stays valid until unhold of *hold_out, called at any
     * time before the module's close returns.  A page of a committed state
     * never changes.  A page the holder's write transaction got for write
     * changes through that transaction's writes (and through a free of
     * the page), and is released only on that transaction's thread until
     * the transaction ends; after the commit it holds the committed bytes,
     * after a rollback what the transaction last wrote (the holder must
     * not take that for committed data), and once the transaction has
     * spilled it to disk, what it held then.  Held pages are never
     * evicted: hold a bounded number (within cacheBytes). */
    int      (*hold)(ts_page *page, void **hold_out);
    void     (*unhold)(void *hold);

    /* ABI 1.7 (check struct_size before use).  Hold again an image that a
     * hold of the caller keeps in memory, named by its data pointer (what
     * data(page) returned when it was held): *hold_out keeps the image
     * like a hold of its own, released with unhold, independently of the
     * first.  For a cache of a newer committed state that keeps the pages
     * the state did not change from an older state's cache, without
     * getting each one from the kernel again. */
    int      (*hold_data)(const void *data, void **hold_out);

    /* ABI 1.9 (check struct_size before use).  A hint that page pgno will
     * be got soon: when it is in neither the cache nor the transaction,
     * the kernel asks the backend to start reading it, so that a search
     * that will get several pages one after another (a node's neighbours)
     * has the device read them at once.  Hints are taken only while reads
     * come from the device: TS_OK then, TS_ERR_UNSUPPORTED when reads come
     * from memory and nothing was done (a module may stop hinting for a
     * while; pgno 0 only asks).  A page number out of range is ignored
     * (the get will report it). */
    int      (*prefetch)(ts_txn *txn, uint64_t pgno);
} ts_page_api;

/* Every index module accepts keys up to this many bytes (memcomparable
 * encodings, tostore/keys.h) and values of any size up to 16 MiB. */
#define TS_INDEX_KEY_MAX 1024

/* ts_index_vtab.seek modes */
#define TS_SEEK_EQ 0  /* first entry whose key equals */
#define TS_SEEK_GE 1  /* first entry >= key */
#define TS_SEEK_GT 2  /* first entry >  key */
#define TS_SEEK_LE 3  /* last entry <= key */
#define TS_SEEK_LT 4  /* last entry <  key */

/* ts_index_vtab capabilities */
#define TS_INDEX_ORDERED 0x1u  /* cursors iterate in key order (range scans) */
#define TS_INDEX_UNIQUE  0x2u  /* can enforce unique keys */
#define TS_INDEX_VECTOR  0x4u  /* keys are vectors; offers knn */

/* One result of ts_index_vtab.knn. */
typedef struct ts_knn_hit {
    float       distance;  /* L2: Euclidean; cosine: 1 - similarity; innerProduct: -dot */
    const void *val;
    size_t      vlen;
} ts_knn_hit;

typedef struct ts_index_vtab {
    uint32_t struct_size;
    uint32_t caps;  /* TS_INDEX_* */

    /* Create a new empty index inside txn; *root_out is the page number the
     * kernel stores in its catalog and passes to open.  Required. */
    int  (*create)(const ts_module_args *args, ts_txn *txn, uint64_t *root_out);
    /* Open the index rooted at root.  *idx_out is released with close. Required. */
    int  (*open)(const ts_module_args *args, uint64_t root, void **idx_out);
    void (*close)(void *idx);
    /* Free every page of the index inside txn.  Required. */
    int  (*drop)(void *idx, ts_txn *txn);

    /* Insert key -> value.  With unique != 0 an existing equal key is
     * TS_ERR_UNIQUE and nothing changes; otherwise (key, value) pairs are
     * kept apart by value.  Required. */
    int  (*insert)(void *idx, ts_txn *txn, const void *key, size_t klen,
                   const void *val, size_t vlen, int unique);
    /* Remove the entry (key, value); val NULL removes every entry of key.
     * TS_ERR_NOT_FOUND when there is none.  Required. */
    int  (*remove)(void *idx, ts_txn *txn, const void *key, size_t klen,
                   const void *val, size_t vlen);

    /* Cursors.  A cursor belongs to one transaction and is closed before it
     * ends.  key/value pointers returned stay valid until the cursor moves.
     * seek/first/last/next/prev return TS_OK on an entry, TS_ERR_NOT_FOUND
     * when there is none (past either end).  Required. */
    int  (*cursor_open)(void *idx, ts_txn *txn, void **cur_out);
    void (*cursor_close)(void *cur);
    int  (*seek)(void *cur, const void *key, size_t klen, int mode);
    int  (*first)(void *cur);
    int  (*last)(void *cur);
    int  (*next)(void *cur);
    int  (*prev)(void *cur);
    int  (*entry)(void *cur, const void **key, size_t *klen,
                  const void **val, size_t *vlen);

    /* Optional.  Fill an empty index from entries in strictly ascending
     * (key, value) order given by next() (1: an entry whose pointers stay
     * valid until the next call, 0: the end, < 0: an error to return), much
     * faster than inserting them one by one. */
    int  (*bulk_load)(void *idx, ts_txn *txn,
                      int (*next)(void *ctx, const void **key, size_t *klen,
                                  const void **val, size_t *vlen),
                      void *ctx);

    /* Optional (ordered modules).  Position the cursor relative to the
     * entry (key, value) by the full (key, value) order: TS_SEEK_GE, GT, LE
     * or LT.  With the pair entry() returned, this resumes a scan exactly
     * where it stopped (cursor pagination), however many entries share the
     * key.  TS_ERR_NOT_FOUND when there is no such entry. */
    int  (*seek_entry)(void *cur, const void *key, size_t klen, const void *val,
                       size_t vlen, int mode);

    /* Optional (vector modules, caps TS_INDEX_VECTOR).  Keys of a vector
     * index are vectors: `dimensions` little-endian float32 values (the
     * kernel passes "dimensions", "precision", "distanceMetric" and
     * "parameters" in the module's options at create and open); values are
     * primary keys.  knn finds the k entries nearest to q (dim floats), the
     * nearest first: out[i] gets the distance and the value (valid until the
     * next call on idx from this transaction).  ef (0: the index's
     * efSearch) sets the search breadth.  filter (may be NULL) keeps an
     * entry when it returns 1 (0: skip, < 0: an error to return); a module
     * returns fewer than k hits only when fewer than k entries pass. */
    int  (*knn)(void *idx, ts_txn *txn, const float *q, size_t dim, size_t k, int ef,
                int (*filter)(void *ctx, const void *val, size_t vlen), void *fctx,
                struct ts_knn_hit *out, size_t *nout);

    /* Optional (vector modules; appended in ABI 1.x, read only when the
     * module's vtable is this long).  knn with each hit handed to emit,
     * nearest first, instead of an array: emit gets the hit's distance and
     * value (valid during that emit call only) and returns 0 to go on or a
     * status to stop with, which knn_emit returns.  Nothing of the results
     * stays with the module, so any number of transactions can search at
     * once; the kernel uses it in preference to knn. */
    int  (*knn_emit)(void *idx, ts_txn *txn, const float *q, size_t dim, size_t k, int ef,
                     int (*filter)(void *ctx, const void *val, size_t vlen), void *fctx,
                     int (*emit)(void *ctx, float distance, const void *val, size_t vlen),
                     void *ectx);

    /* Optional (vector modules; ABI 1.4, read only when the module's vtable
     * is this long).  The stored vectors of n values: for each i, the
     * vector of the live entry whose value is vals[i] (vlens[i] bytes) into
     * out[i * dimensions ...] and found[i] = 1; found[i] = 0 when the value
     * has no entry.  The floats are exactly those insert received, except
     * that with "keysQuantized" (keys exactly representable at the index's
     * float16 / int8 "precision") they need only round to the same values
     * at that precision (int8: the same codes by the key's own scale).
     * n = 0 asks only whether this index keeps such copies: TS_OK if so,
     * else TS_ERR_UNSUPPORTED (as for every n then).  A module that answers
     * TS_OK promises it for the life of the index, so the kernel may keep
     * such vectors in the index alone (rows then refer to it). */
    int  (*vectors)(void *idx, ts_txn *txn, size_t n, const void *const *vals,
                    const size_t *vlens, float *out, unsigned char *found);

    /* Optional (ABI 1.6, read only when the module's vtable is this long).
     * The number of live entries in txn's snapshot into *n, cheaply (from
     * the index's own header, not by counting); the kernel uses it to
     * choose between a filtered knn and measuring the passing rows
     * exactly.  TS_ERR_UNSUPPORTED when the module cannot tell. */
    int  (*count)(void *idx, ts_txn *txn, uint64_t *n);

    /* Optional (vector modules; ABI 1.6, read only when the module's
     * vtable is this long).  For each of n values: the distance from q
     * (dim floats, valid even when n is 0) to a live entry whose value is
     * vals[i] (any one, should several have it), as knn reports
     * distances, into dist[i] and found[i] = 1; found[i] = 0 when the value
     * has no entry.  The distance is that of the vector `vectors` gives
     * back, so the module answers exactly when `vectors` would; it saves
     * the kernel copying each vector out to measure it.  n = 0 asks only
     * whether it answers: TS_OK if so, else TS_ERR_UNSUPPORTED (as for
     * every n then).  On an error dist and found are undefined. */
    int  (*distances)(void *idx, ts_txn *txn, const float *q, size_t dim, size_t n,
                      const void *const *vals, const size_t *vlens, float *dist,
                      unsigned char *found);
} ts_index_vtab;

#ifdef __cplusplus
}
#endif
#endif /* TOSTORE_INDEX_H */
