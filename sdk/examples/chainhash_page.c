/*
 * chainhash_page.c - the page side of the chainhash example index: records
 * on bucket pages, sorted chains of bucket pages, and large values in
 * chains of overflow pages (layout in chainhash.h).
 *
 * How a plugin uses the kernel's page API (host->pages, tostore/index.h):
 *  - get(txn, pgno, TS_PAGE_READ | TS_PAGE_WRITE) pins a page; data() is
 *    its usable area (usable_size() bytes) and stays valid until release().
 *    Pin a page only for as long as one step needs it and release it on
 *    every path, errors included.
 *  - Writing requires TS_PAGE_WRITE in a write transaction.  The kernel
 *    gives the transaction its own copy of the page; after a commit every
 *    new transaction sees the change, after a rollback nobody does.  Get a
 *    page again with TS_PAGE_WRITE rather than writing through an older
 *    read pin of it: that one may show the committed image.
 *  - alloc() returns a zeroed page pinned for writing, free() gives a page
 *    back (it must not be pinned).  Page numbers are stable: a page keeps
 *    its number for life, so chains can link pages by number.
 *  - Every failure the page API reports already carries its message; pass
 *    the code on.  After a failure in the middle of a change the kernel
 *    rolls the whole transaction back, so no undo code is needed here.
 */
#include <string.h>
#include "chainhash.h"

int ch_bytes_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int r = m ? memcmp(a, b, m) : 0;
    if (r) return r < 0 ? -1 : 1;
    return (al > bl) - (al < bl);
}

void ch_rec_parse(const uint8_t *page, uint32_t off, chrec *r)
{
    const uint8_t *p = page + CH_P_HDR + off;
    uint32_t vinfo = ch_g32(p + 2);
    r->kl = (size_t)(p[0] | p[1] << 8);
    r->k = p + CH_R_HDR;
    r->ovf = (vinfo & CH_R_OVF) != 0;
    r->vl = vinfo & ~CH_R_OVF;
    r->v = r->ovf ? NULL : r->k + r->kl;
    r->ovf_pgno = r->ovf ? ch_g64(r->k + r->kl) : 0;
    r->size = CH_R_HDR + r->kl + (r->ovf ? 8 : r->vl);
}

/* Never trust a page: before any other code reads it, check that its
 * header and records stay inside it (the kernel's checksums catch damage on
 * disk, not a bug that wrote a bad page). */
static int page_ok(chx *x, ts_txn *t, const uint8_t *d, uint32_t magic)
{
    size_t cap = x->pg->usable_size(t) - CH_P_HDR;
    if (ch_g32(d) != magic) return 0;
    if (magic == CH_MAGIC_META) {
        uint32_t nb = ch_g32(d + CH_M_NBUCKETS);
        return nb > 0 && nb <= (cap + CH_P_HDR - CH_M_HEADS) / 8;
    }
    size_t used = ch_g32(d + CH_P_USED);
    if (used == 0 || used > cap) return 0; /* chain pages are never empty */
    if (magic == CH_MAGIC_OVF) return 1;
    for (size_t off = 0; off < used;) {
        const uint8_t *p = d + CH_P_HDR + off;
        if (used - off < CH_R_HDR) return 0;
        size_t kl = (size_t)(p[0] | p[1] << 8);
        uint32_t vinfo = ch_g32(p + 2), vl = vinfo & ~CH_R_OVF;
        size_t size = CH_R_HDR + kl + (vinfo & CH_R_OVF ? 8 : vl);
        if (kl > TS_INDEX_KEY_MAX || vl > CH_VAL_MAX || size > used - off) return 0;
        off += size;
    }
    return 1;
}

int ch_page_get(chx *x, ts_txn *t, uint64_t pgno, int mode, uint32_t magic,
                ts_page **pg_out, uint8_t **data_out)
{
    int rc = x->pg->get(t, pgno, mode, pg_out);
    if (rc != TS_OK) return rc;
    *data_out = x->pg->data(*pg_out);
    if (!page_ok(x, t, *data_out, magic)) {
        x->pg->release(*pg_out);
        *pg_out = NULL;
        const char *kind = magic == CH_MAGIC_META ? "meta" : magic == CH_MAGIC_BKT ? "bucket"
                                                                                : "overflow";
        return x->host->error(x->env, TS_ERR_CORRUPT, CH_NAME " index at page %llu: page %llu "
                              "is not a valid %s page", (unsigned long long)x->root,
                              (unsigned long long)pgno, kind);
    }
    return TS_OK;
}

/* ---- values in overflow pages --------------------------------------- */

int ch_val_cmp(chx *x, ts_txn *t, const chrec *r, const void *v, size_t vl, int *cmp)
{
    if (!r->ovf) {
        *cmp = ch_bytes_cmp(r->v, r->vl, v, vl);
        return TS_OK;
    }
    /* Compare page by page; stop at the first difference or when v ends. */
    size_t done = 0;
    uint64_t pgno = r->ovf_pgno;
    while (pgno && done < r->vl && done < vl) {
        ts_page *pg;
        uint8_t *d;
        int rc = ch_page_get(x, t, pgno, TS_PAGE_READ, CH_MAGIC_OVF, &pg, &d);
        if (rc != TS_OK) return rc;
        size_t n = ch_g32(d + CH_P_USED), m = n < vl - done ? n : vl - done;
        int c = memcmp(d + CH_P_HDR, (const uint8_t *)v + done, m);
        pgno = ch_g64(d + CH_P_NEXT);
        x->pg->release(pg);
        if (c) {
            *cmp = c < 0 ? -1 : 1;
            return TS_OK;
        }
        done += n;
    }
    *cmp = (r->vl > vl) - (r->vl < vl); /* equal so far: the shorter first */
    return TS_OK;
}

int ch_val_read(chx *x, ts_txn *t, const chrec *r, uint8_t *dst)
{
    if (!r->ovf) {
        if (r->vl) memcpy(dst, r->v, r->vl);
        return TS_OK;
    }
    size_t done = 0;
    for (uint64_t pgno = r->ovf_pgno; done < r->vl;) {
        ts_page *pg;
        uint8_t *d;
        int rc = pgno ? ch_page_get(x, t, pgno, TS_PAGE_READ, CH_MAGIC_OVF, &pg, &d)
                      : x->host->error(x->env, TS_ERR_CORRUPT, CH_NAME ": an overflow chain "
                                       "ends early");
        if (rc != TS_OK) return rc;
        size_t n = ch_g32(d + CH_P_USED);
        if (n > r->vl - done) n = r->vl - done;
        memcpy(dst + done, d + CH_P_HDR, n);
        done += n;
        pgno = ch_g64(d + CH_P_NEXT);
        x->pg->release(pg);
    }
    return TS_OK;
}

int ch_val_write(chx *x, ts_txn *t, const void *v, size_t vl, uint64_t *first_out)
{
    size_t room = x->pg->usable_size(t) - CH_P_HDR, done = 0;
    ts_page *last = NULL;
    *first_out = 0;
    while (done < vl) {
        ts_page *pg;
        uint64_t pgno;
        int rc = x->pg->alloc(t, &pg, &pgno);
        if (rc != TS_OK) {
            if (last) x->pg->release(last);
            return rc;
        }
        uint8_t *d = x->pg->data(pg);
        size_t n = vl - done < room ? vl - done : room;
        ch_p32(d, CH_MAGIC_OVF);
        ch_p32(d + CH_P_USED, (uint32_t)n);
        memcpy(d + CH_P_HDR, (const uint8_t *)v + done, n);
        done += n;
        /* link it from the page before (still pinned for writing) */
        if (last) {
            ch_p64((uint8_t *)x->pg->data(last) + CH_P_NEXT, pgno);
            x->pg->release(last);
        } else {
            *first_out = pgno;
        }
        last = pg;
    }
    if (last) x->pg->release(last);
    return TS_OK;
}

int ch_val_free(chx *x, ts_txn *t, uint64_t first)
{
    for (uint64_t pgno = first; pgno;) {
        ts_page *pg;
        uint8_t *d;
        int rc = ch_page_get(x, t, pgno, TS_PAGE_READ, CH_MAGIC_OVF, &pg, &d);
        if (rc != TS_OK) return rc;
        uint64_t next = ch_g64(d + CH_P_NEXT);
        x->pg->release(pg); /* free() wants the page unpinned */
        if ((rc = x->pg->free(t, pgno)) != TS_OK) return rc;
        pgno = next;
    }
    return TS_OK;
}

/* ---- searching a chain ---------------------------------------------- */

int ch_find(chx *x, ts_txn *t, uint64_t head, const void *k, size_t kl, const void *v,
            size_t vl, int by_value, chpos *pos, int *match)
{
    *match = 0;
    *pos = (chpos){ 0, 0, 0, 0 };
    for (uint64_t pgno = head, prev = 0; pgno;) {
        ts_page *pg;
        uint8_t *d;
        int rc = ch_page_get(x, t, pgno, TS_PAGE_READ, CH_MAGIC_BKT, &pg, &d);
        if (rc != TS_OK) return rc;
        uint32_t used = ch_g32(d + CH_P_USED);
        chrec r;
        for (uint32_t off = 0; off < used; off += (uint32_t)r.size) {
            ch_rec_parse(d, off, &r);
            int c = ch_bytes_cmp(r.k, r.kl, k, kl);
            if (c == 0 && by_value && (rc = ch_val_cmp(x, t, &r, v, vl, &c)) != TS_OK) {
                x->pg->release(pg);
                return rc;
            }
            if (c >= 0) {
                *pos = (chpos){ pgno, prev, off, 1 };
                *match = c == 0;
                x->pg->release(pg);
                return TS_OK;
            }
        }
        *pos = (chpos){ pgno, prev, used, 0 }; /* past everything so far */
        prev = pgno;
        pgno = ch_g64(d + CH_P_NEXT);
        x->pg->release(pg);
    }
    return TS_OK;
}

int ch_find_before(chx *x, ts_txn *t, uint64_t head, const void *k, size_t kl,
                   const void *v, size_t vl, chpos *pos, int *found)
{
    *found = 0;
    for (uint64_t pgno = head, prev = 0; pgno;) {
        ts_page *pg;
        uint8_t *d;
        int rc = ch_page_get(x, t, pgno, TS_PAGE_READ, CH_MAGIC_BKT, &pg, &d);
        if (rc != TS_OK) return rc;
        uint32_t used = ch_g32(d + CH_P_USED);
        chrec r;
        for (uint32_t off = 0; off < used; off += (uint32_t)r.size) {
            ch_rec_parse(d, off, &r);
            if (k) {
                int c = ch_bytes_cmp(r.k, r.kl, k, kl);
                if (c == 0 && (rc = ch_val_cmp(x, t, &r, v, vl, &c)) != TS_OK) {
                    x->pg->release(pg);
                    return rc;
                }
                if (c >= 0) { /* the records from here on are not before */
                    x->pg->release(pg);
                    return TS_OK;
                }
            }
            *pos = (chpos){ pgno, prev, off, 1 };
            *found = 1;
        }
        prev = pgno;
        pgno = ch_g64(d + CH_P_NEXT);
        x->pg->release(pg);
    }
    return TS_OK;
}

int ch_step(chx *x, ts_txn *t, chpos *pos)
{
    ts_page *pg;
    uint8_t *d;
    int rc = ch_page_get(x, t, pos->pgno, TS_PAGE_READ, CH_MAGIC_BKT, &pg, &d);
    if (rc != TS_OK) return rc;
    chrec r;
    ch_rec_parse(d, pos->off, &r);
    uint32_t used = ch_g32(d + CH_P_USED);
    uint64_t next = ch_g64(d + CH_P_NEXT);
    x->pg->release(pg);
    pos->off += (uint32_t)r.size;
    if (pos->off < used) return TS_OK;
    if (!next) { /* past the chain's last record */
        pos->at = 0;
        return TS_OK;
    }
    *pos = (chpos){ next, pos->pgno, 0, 1 }; /* pages are never empty */
    return TS_OK;
}

/* ---- changing a chain ----------------------------------------------- */

/* Point bucket b's head at pgno (in the meta page). */
static int set_head(chx *x, ts_txn *t, uint32_t b, uint64_t pgno)
{
    ts_page *pg;
    uint8_t *d;
    int rc = ch_page_get(x, t, x->root, TS_PAGE_WRITE, CH_MAGIC_META, &pg, &d);
    if (rc != TS_OK) return rc;
    ch_p64(d + CH_M_HEADS + 8 * (size_t)b, pgno);
    x->pg->release(pg);
    return TS_OK;
}

/* A full page: lay its records plus the new one out in a scratch buffer,
 * keep the first half or so on the page and move the rest to a new page
 * linked right after it.  Every record is at most CH_REC_MAX bytes and a
 * page holds two, so both halves fit. */
static int split_insert(chx *x, ts_txn *t, uint8_t *d, uint32_t off,
                        const uint8_t *rec, size_t len)
{
    size_t cap = x->pg->usable_size(t) - CH_P_HDR, used = ch_g32(d + CH_P_USED);
    size_t total = used + len;
    uint8_t *tmp = x->host->alloc(total);
    if (!tmp) return x->host->error(x->env, TS_ERR_NOMEM, CH_NAME ": out of memory");
    memcpy(tmp, d + CH_P_HDR, off);
    memcpy(tmp + off, rec, len);
    memcpy(tmp + off + len, d + CH_P_HDR + off, used - off);
    /* the split point: a record boundary near the middle that fits */
    size_t left = 0;
    while (left < total / 2) {
        size_t klen = (size_t)(tmp[left] | tmp[left + 1] << 8);
        uint32_t vinfo = ch_g32(tmp + left + 2);
        size_t sz = CH_R_HDR + klen + (vinfo & CH_R_OVF ? 8 : (vinfo & ~CH_R_OVF));
        if (left + sz > cap) break;
        left += sz;
    }
    ts_page *np;
    uint64_t npgno;
    int rc = x->pg->alloc(t, &np, &npgno);
    if (rc != TS_OK) {
        x->host->free(tmp);
        return rc;
    }
    uint8_t *nd = x->pg->data(np);
    ch_p32(nd, CH_MAGIC_BKT);
    ch_p32(nd + CH_P_USED, (uint32_t)(total - left));
    ch_p64(nd + CH_P_NEXT, ch_g64(d + CH_P_NEXT));
    memcpy(nd + CH_P_HDR, tmp + left, total - left);
    x->pg->release(np);
    ch_p32(d + CH_P_USED, (uint32_t)left);
    ch_p64(d + CH_P_NEXT, npgno);
    memcpy(d + CH_P_HDR, tmp, left);
    memset(d + CH_P_HDR + left, 0, cap - left);
    x->host->free(tmp);
    return TS_OK;
}

int ch_rec_insert(chx *x, ts_txn *t, uint32_t b, const chpos *pos, const uint8_t *rec,
                  size_t len)
{
    ts_page *pg;
    uint8_t *d;
    int rc;
    if (!pos->pgno) { /* an empty chain: a new head page */
        uint64_t pgno;
        if ((rc = x->pg->alloc(t, &pg, &pgno)) != TS_OK) return rc;
        d = x->pg->data(pg);
        ch_p32(d, CH_MAGIC_BKT);
        ch_p32(d + CH_P_USED, (uint32_t)len);
        memcpy(d + CH_P_HDR, rec, len);
        x->pg->release(pg);
        return set_head(x, t, b, pgno);
    }
    if ((rc = ch_page_get(x, t, pos->pgno, TS_PAGE_WRITE, CH_MAGIC_BKT, &pg, &d)) != TS_OK)
        return rc;
    size_t cap = x->pg->usable_size(t) - CH_P_HDR, used = ch_g32(d + CH_P_USED);
    if (used + len <= cap) {
        memmove(d + CH_P_HDR + pos->off + len, d + CH_P_HDR + pos->off, used - pos->off);
        memcpy(d + CH_P_HDR + pos->off, rec, len);
        ch_p32(d + CH_P_USED, (uint32_t)(used + len));
    } else {
        rc = split_insert(x, t, d, pos->off, rec, len);
    }
    x->pg->release(pg);
    return rc;
}

int ch_rec_delete(chx *x, ts_txn *t, uint32_t b, const chpos *pos)
{
    ts_page *pg;
    uint8_t *d;
    int rc = ch_page_get(x, t, pos->pgno, TS_PAGE_WRITE, CH_MAGIC_BKT, &pg, &d);
    if (rc != TS_OK) return rc;
    chrec r;
    ch_rec_parse(d, pos->off, &r);
    uint64_t ovf = r.ovf_pgno, next = ch_g64(d + CH_P_NEXT);
    uint32_t used = ch_g32(d + CH_P_USED), size = (uint32_t)r.size;
    uint8_t *area = d + CH_P_HDR;
    memmove(area + pos->off, area + pos->off + size, used - pos->off - size);
    memset(area + used - size, 0, size);
    ch_p32(d + CH_P_USED, used - size);
    x->pg->release(pg);
    if (used == size) { /* the page is empty: unlink and free it */
        if (pos->prev) {
            ts_page *pp;
            uint8_t *pd;
            if ((rc = ch_page_get(x, t, pos->prev, TS_PAGE_WRITE, CH_MAGIC_BKT, &pp, &pd)) != TS_OK)
                return rc;
            ch_p64(pd + CH_P_NEXT, next);
            x->pg->release(pp);
        } else if ((rc = set_head(x, t, b, next)) != TS_OK) {
            return rc;
        }
        if ((rc = x->pg->free(t, pos->pgno)) != TS_OK) return rc;
    }
    return ovf ? ch_val_free(x, t, ovf) : TS_OK;
}

int ch_chain_free(chx *x, ts_txn *t, uint64_t head)
{
    for (uint64_t pgno = head; pgno;) {
        ts_page *pg;
        uint8_t *d;
        int rc = ch_page_get(x, t, pgno, TS_PAGE_READ, CH_MAGIC_BKT, &pg, &d);
        if (rc != TS_OK) return rc;
        uint32_t used = ch_g32(d + CH_P_USED);
        chrec r;
        for (uint32_t off = 0; off < used && rc == TS_OK; off += (uint32_t)r.size) {
            ch_rec_parse(d, off, &r);
            if (r.ovf) rc = ch_val_free(x, t, r.ovf_pgno);
        }
        uint64_t next = ch_g64(d + CH_P_NEXT);
        x->pg->release(pg);
        if (rc != TS_OK || (rc = x->pg->free(t, pgno)) != TS_OK) return rc;
        pgno = next;
    }
    return TS_OK;
}
