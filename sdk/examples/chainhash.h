/*
 * chainhash.h - what the two files of the chainhash example index share:
 * the on-page layout and the chain operations of chainhash_page.c, used by
 * the module callbacks in chainhash.c.  Not part of the SDK: an example's
 * private header.
 *
 * Layout (all integers little-endian; offsets are from the start of the
 * usable area that host->pages->data() returns):
 *
 *   meta page (the root; never moves)
 *     0 magic "CHM1"  4 nbuckets (u32)  8 seed (u64)  16 heads[nbuckets]
 *     (u64 page numbers: the first page of each bucket's chain, 0 = empty)
 *   bucket page (one link of a chain)
 *     0 magic "CHB1"  4 used (u32: bytes of records)  8 next (u64)
 *     16 records, packed: klen (u16), vinfo (u32: value length, bit 31 set
 *        when the value lives in overflow pages), key, then the value
 *        bytes or the first overflow page number (u64)
 *   overflow page (one link of a large value's chain)
 *     0 magic "CHO1"  4 n (u32: value bytes here)  8 next (u64)  16 bytes
 *
 * Invariants: the records of one chain are sorted by (key, value) across
 * its pages; no bucket page in a chain is empty; every record is at most
 * CH_REC_MAX bytes, and a page holds at least two of them, so splitting a
 * full page in two always works.
 */
#ifndef CHAINHASH_H
#define CHAINHASH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <tostore/index.h>

#define CH_NAME       "chainhash"
#define CH_MAGIC_META 0x314d4843u /* "CHM1" */
#define CH_MAGIC_BKT  0x31424843u /* "CHB1" */
#define CH_MAGIC_OVF  0x314f4843u /* "CHO1" */

#define CH_M_NBUCKETS 4
#define CH_M_SEED     8
#define CH_M_HEADS    16
#define CH_P_USED     4   /* bucket page: used; overflow page: n */
#define CH_P_NEXT     8
#define CH_P_HDR      16  /* bucket and overflow pages */
#define CH_R_HDR      6   /* record: klen, vinfo */
#define CH_R_OVF      0x80000000u
#define CH_VAL_MAX    (16u << 20)
/* The largest record: a longest key and an overflow reference.  Values go
 * inline when the whole record stays within this size. */
#define CH_REC_MAX    (CH_R_HDR + TS_INDEX_KEY_MAX + 8)

/* The index object: one per open index, shared by every transaction, so it
 * holds only fields fixed at open and an atomic change counter. */
typedef struct chx {
    const ts_host      *host;
    const ts_page_api  *pg;
    ts_env             *env;
    uint64_t            root;
    /* Bumped by every insert and remove: a cursor that saw another value
     * re-finds its place instead of trusting a remembered page offset. */
    atomic_uint_least64_t gen;
} chx;

/* A place in a bucket chain. */
typedef struct chpos {
    uint64_t pgno; /* bucket page (0: the chain is empty) */
    uint64_t prev; /* the page before it in the chain (0: pgno is the head) */
    uint32_t off;  /* offset of a record in the page's record area */
    int      at;   /* 1: a record starts at off; 0: off is the end of the chain */
} chpos;

/* A record parsed in place on a pinned page. */
typedef struct chrec {
    const uint8_t *k;
    size_t         kl;
    size_t         vl;
    int            ovf;      /* the value is in overflow pages */
    const uint8_t *v;        /* inline value (ovf == 0) */
    uint64_t       ovf_pgno; /* first overflow page (ovf == 1) */
    size_t         size;     /* bytes the record takes on the page */
} chrec;

/* Little-endian field access. */
static inline uint32_t ch_g32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ch_g64(const uint8_t *p) { return ch_g32(p) | (uint64_t)ch_g32(p + 4) << 32; }
static inline void ch_p32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ch_p64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* memcmp order on byte strings, a shorter prefix first. */
int ch_bytes_cmp(const void *a, size_t al, const void *b, size_t bl);

/* Parse the record at offset off of a bucket page's data. */
void ch_rec_parse(const uint8_t *page, uint32_t off, chrec *r);

/* Get page pgno (TS_PAGE_READ or TS_PAGE_WRITE) and check its magic and
 * layout; TS_ERR_CORRUPT (message recorded) when it is not a valid page
 * of the kind the caller expects. */
int ch_page_get(chx *x, ts_txn *t, uint64_t pgno, int mode, uint32_t magic,
                ts_page **pg_out, uint8_t **data_out);

/* Compare r's value with v (streaming through overflow pages): *cmp < 0,
 * 0 or > 0 as the record's value sorts before, equal to or after v. */
int ch_val_cmp(chx *x, ts_txn *t, const chrec *r, const void *v, size_t vl, int *cmp);
/* Copy r's value (r->vl bytes) to dst. */
int ch_val_read(chx *x, ts_txn *t, const chrec *r, uint8_t *dst);
/* Store v in a new chain of overflow pages; *first_out is its first page. */
int ch_val_write(chx *x, ts_txn *t, const void *v, size_t vl, uint64_t *first_out);
/* Free the overflow chain starting at first. */
int ch_val_free(chx *x, ts_txn *t, uint64_t first);

/* Lower bound in the chain starting at head: the first record >= k (by
 * key only, by_value 0) or >= (k, v) (by_value 1).  *match is 1 when that
 * record's key (and value) equal the target.  Past the last record,
 * pos->at is 0. */
int ch_find(chx *x, ts_txn *t, uint64_t head, const void *k, size_t kl, const void *v,
            size_t vl, int by_value, chpos *pos, int *match);
/* The last record < (k, v) in the chain, or its last record when k is
 * NULL; *found 0 when there is none. */
int ch_find_before(chx *x, ts_txn *t, uint64_t head, const void *k, size_t kl,
                   const void *v, size_t vl, chpos *pos, int *found);
/* Move pos (on a record) to the next record of its chain (pos->at 0 past
 * the end). */
int ch_step(chx *x, ts_txn *t, chpos *pos);

/* Insert the record rec (len <= CH_REC_MAX bytes) at pos, as ch_find gave
 * it for bucket b: into the page, into a new head page when the chain is
 * empty, or splitting a full page in two. */
int ch_rec_insert(chx *x, ts_txn *t, uint32_t b, const chpos *pos, const uint8_t *rec,
                  size_t len);
/* Delete the record at pos of bucket b, its overflow pages, and its page
 * when that becomes empty. */
int ch_rec_delete(chx *x, ts_txn *t, uint32_t b, const chpos *pos);
/* Free every page of the chain starting at head, overflow pages included. */
int ch_chain_free(chx *x, ts_txn *t, uint64_t head);

#endif /* CHAINHASH_H */
