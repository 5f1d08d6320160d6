/* Scans: the candidate rows of a plan, read through the primary store or
 * an index, in the plan's order. */
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "query/query.h"

struct tsq_scan {
    tsq_ctx        *x;
    const tsq_plan *p;
    tstbl          *t;
    uint64_t        space;
    size_t          space_len;    /* bytes of the space prefix */
    uint8_t         space_prefix[16];
    tsix_cur        cur;
    int             cur_open, started, done;
    tsix_cur        fcur;         /* the primary store, for rows of index entries */
    int             fcur_open;
    size_t          ki;           /* *_KEYS, UNION: next key */
    tsq_keys        pks;          /* UNION: the branches' pk keys, sorted, unique */
    tsrow           row;
    tsd_buf         whole;        /* a row made whole (tsrow_fill) */
    uint8_t         pk[TSROW_KEY_CAP], ikey[TSROW_KEY_CAP];
    size_t          pkl, ikl;
    int             have_after;
    uint8_t         after_pk[TSROW_KEY_CAP], after_ik[TSROW_KEY_CAP];
    size_t          after_pkl, after_ikl;
};

static int starts(const void *k, size_t kl, const uint8_t *p, size_t pl)
{
    return kl >= pl && memcmp(k, p, pl) == 0;
}

/* Compare key k against bound b on b's length. */
static int bound_cmp(const void *k, size_t kl, const uint8_t *b, size_t bl)
{
    int c = memcmp(k, b, kl < bl ? kl : bl);
    return c ? c : (kl < bl ? -1 : 0);
}

/* Position for a range scan; then in_range tells whether an entry belongs. */
static int range_start(tsq_scan *s)
{
    const tsq_plan *p = s->p;
    int is_ix = p->access == TSQ_IX_RANGE || p->access == TSQ_IX_KEYS;
    if (s->have_after) {
        uint8_t k[TSROW_KEY_CAP];
        size_t kl = s->space_len;
        if (is_ix)
            return tsix_seek_entry(&s->cur, s->after_ik, s->after_ikl, s->after_pk, s->after_pkl,
                                   p->reverse ? TS_SEEK_LT : TS_SEEK_GT);
        memcpy(k, p->prefix, s->space_len);
        memcpy(k + kl, s->after_pk, s->after_pkl);
        return tsix_seek(&s->cur, k, kl + s->after_pkl, p->reverse ? TS_SEEK_LT : TS_SEEK_GT);
    }
    if (!p->reverse) {
        if (p->lo_len) return tsix_seek(&s->cur, p->lo, p->lo_len, TS_SEEK_GE);
        return tsix_seek(&s->cur, p->prefix, p->prefix_len, TS_SEEK_GE);
    }
    uint8_t end[TSROW_KEY_CAP];
    size_t el;
    if (p->hi_len && !p->hi_incl) return tsix_seek(&s->cur, p->hi, p->hi_len, TS_SEEK_LT);
    el = p->hi_len ? ts_key_prefix_end(p->hi, p->hi_len, end)
                   : ts_key_prefix_end(p->prefix, p->prefix_len, end);
    return el ? tsix_seek(&s->cur, end, el, TS_SEEK_LT) : tsix_last(&s->cur);
}

/* 1: in range, 0: skip it, -1: past the end (in the scan's direction). */
static int in_range(const tsq_scan *s, const void *k, size_t kl)
{
    const tsq_plan *p = s->p;
    if (!starts(k, kl, p->prefix, p->prefix_len)) return -1;
    if (p->lo_len) {
        int c = bound_cmp(k, kl, p->lo, p->lo_len);
        if (c < 0 || (c == 0 && !p->lo_incl))
            return p->reverse ? -1 : 0;
    }
    if (p->hi_len) {
        int c = bound_cmp(k, kl, p->hi, p->hi_len);
        if (c > 0 || (c == 0 && !p->hi_incl)) return p->reverse ? 0 : -1;
    }
    return 1;
}

/* Sort helper for UNION keys (qsort over indexes). */
typedef struct { const uint8_t *k; size_t n; } kref;
static int kref_cmp(const void *a, const void *b)
{
    const kref *x = a, *y = b;
    int c = memcmp(x->k, y->k, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int pk_keys_sorted(tsq_ctx *x, tsq_keys *k)
{
    kref *r = malloc((k->n + 1) * sizeof *r);
    if (!r) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < k->n; i++) r[i] = (kref){ k->k[i], k->kl[i] };
    qsort(r, k->n, sizeof *r, kref_cmp);
    /* rebuild in order, dropping duplicates (the pointers stay owned) */
    uint8_t **nk = malloc((k->n + 1) * sizeof *nk);
    size_t *nl = malloc((k->n + 1) * sizeof *nl), m = 0;
    if (!nk || !nl) { free(r); free(nk); free(nl); return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < k->n; i++) {
        if (m && kref_cmp(&r[i], &(kref){ nk[m - 1], nl[m - 1] }) == 0) { free((void *)r[i].k); continue; }
        nk[m] = (uint8_t *)r[i].k;
        nl[m++] = r[i].n;
    }
    free(k->k);
    free(k->kl);
    k->k = nk;
    k->kl = nl;
    k->n = m;
    free(r);
    return TS_OK;
}

static int collect_union(tsq_scan *s)
{
    int rc = TS_OK;
    for (size_t b = 0; b < s->p->nsub && !rc; b++) {
        tsq_scan *sub;
        if ((rc = tsq_scan_open(s->x, &s->p->sub[b], NULL, &sub))) break;
        const uint8_t *row, *pk, *ik;
        size_t len, pkl, ikl;
        while ((rc = tsq_scan_next(sub, &row, &len, &pk, &pkl, &ik, &ikl)) == 1) {
            uint8_t **nk = realloc(s->pks.k, (s->pks.n + 1) * sizeof *nk);
            size_t *nl = nk ? realloc(s->pks.kl, (s->pks.n + 1) * sizeof *nl) : NULL;
            if (nk) s->pks.k = nk;
            if (nl) s->pks.kl = nl;
            uint8_t *c = nl ? malloc(pkl ? pkl : 1) : NULL;
            if (!c) { rc = tsenv_error(s->x->env, TS_ERR_NOMEM, "out of memory"); break; }
            memcpy(c, pk, pkl);
            s->pks.k[s->pks.n] = c;
            s->pks.kl[s->pks.n++] = pkl;
        }
        tsq_scan_close(sub);
    }
    if (rc < 0) return rc;
    return pk_keys_sorted(s->x, &s->pks);
}

int tsq_scan_open(tsq_ctx *x, const tsq_plan *p, const tsq_pos *after, tsq_scan **out)
{
    tsq_scan *s = calloc(1, sizeof *s);
    if (!s) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
    s->x = x;
    s->p = p;
    s->t = x->src[p->src].t;
    s->space = x->src[p->src].space;
    s->space_len = ts_key_int(s->space_prefix, sizeof s->space_prefix, 0, (int64_t)s->space);
    if (after && after->pkl <= TSROW_KEY_CAP && after->ikl <= TSROW_KEY_CAP) {
        s->have_after = 1;
        memcpy(s->after_pk, after->pk, after->pkl);
        s->after_pkl = after->pkl;
        if (after->ikl) memcpy(s->after_ik, after->ikey, after->ikl);
        s->after_ikl = after->ikl;
    }
    int rc = TS_OK;
    if (p->access == TSQ_UNION) {
        rc = collect_union(s);
    } else if (p->access == TSQ_PK_KEYS) {
        /* in key order, each once */
        s->pks.k = calloc(p->keys.n + 1, sizeof *s->pks.k);
        s->pks.kl = calloc(p->keys.n + 1, sizeof *s->pks.kl);
        rc = s->pks.k && s->pks.kl ? TS_OK : tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < p->keys.n && !rc; i++) {
            if (!(s->pks.k[i] = malloc(p->keys.kl[i] + 1))) { rc = TS_ERR_NOMEM; break; }
            memcpy(s->pks.k[i], p->keys.k[i], p->keys.kl[i]);
            s->pks.kl[i] = p->keys.kl[i];
            s->pks.n++;
        }
        if (!rc) rc = pk_keys_sorted(x, &s->pks);
    } else if (p->access != TSQ_PK_KEYS) {
        tsix *ix = p->access == TSQ_IX_KEYS || p->access == TSQ_IX_RANGE ? s->t->ix[p->ix] : s->t->primary;
        rc = tsix_cursor(ix, x->w->tx, &s->cur);
        s->cur_open = !rc;
    }
    if (rc) { tsq_scan_close(s); return rc; }
    *out = s;
    return TS_OK;
}

void tsq_scan_close(tsq_scan *s)
{
    if (!s) return;
    if (s->cur_open) tsix_cursor_close(&s->cur);
    if (s->fcur_open) tsix_cursor_close(&s->fcur);
    tsrow_done(&s->row);
    tsd_buf_free(&s->whole);
    for (size_t i = 0; i < s->pks.n; i++) free(s->pks.k[i]);
    free(s->pks.k);
    free(s->pks.kl);
    free(s);
}

/* Fetch the row with pk key pk (live rows only): 1, or 0 when gone.  One
 * cursor on the primary store serves every fetch of the scan; the row
 * points into it until the next fetch. */
static int fetch(tsq_scan *s, const uint8_t *pk, size_t pkl)
{
    if (!s->fcur_open) {
        int rc = tsix_cursor(s->t->primary, s->x->w->tx, &s->fcur);
        if (rc) return rc;
        s->fcur_open = 1;
    }
    uint8_t k[TSROW_KEY_CAP];
    if (s->space_len + pkl > sizeof k) return TS_ERR_CORRUPT;
    memcpy(k, s->space_prefix, s->space_len);
    memcpy(k + s->space_len, pk, pkl);
    int rc = tsix_seek(&s->fcur, k, s->space_len + pkl, TS_SEEK_EQ);
    if (rc == TS_ERR_NOT_FOUND) return 0;
    const void *ek, *ev;
    size_t ekl, evl;
    if (!rc) rc = tsix_entry(&s->fcur, &ek, &ekl, &ev, &evl);
    if (rc) return rc;
    const uint8_t *r = ev;
    if (s->t->ttl) {
        if (evl < 8) return TS_ERR_CORRUPT;
        int64_t exp = 0;
        for (int b = 7; b >= 0; b--) exp = (int64_t)((uint64_t)exp << 8 | r[b]);
        if (exp <= tsrow_now_ms()) return 0;
        r += 8;
        evl -= 8;
    }
    if ((rc = tsrow_fill(s->x->env, s->x->w->tx, s->t, k, s->space_len + pkl, &r, &evl, &s->whole)))
        return rc;
    s->row.row = r;
    s->row.len = evl;
    memcpy(s->pk, pk, pkl);
    s->pkl = pkl;
    return 1;
}

static int is_ordered_ix(const tsq_scan *s)
{
    return (((const ts_index_vtab *)s->t->ix[s->p->ix]->vt)->caps & TS_INDEX_ORDERED) != 0;
}

static int next_entry(tsq_scan *s, const void **k, size_t *kl, const void **v, size_t *vl);

int tsq_scan_count(tsq_scan *s, int64_t *n)
{
    /* only whole index entries are counted: the caller made sure the plan
     * covers every condition and no row can be expired */
    const void *k, *v;
    size_t kl, vl;
    int rc;
    *n = 0;
    while ((rc = next_entry(s, &k, &kl, &v, &vl)) == 1) (*n)++;
    return rc;
}

int tsq_scan_keys(tsq_scan *s, int (*each)(void *ctx, const uint8_t *pk, size_t pkl), void *ctx)
{
    const void *k, *v;
    size_t kl, vl;
    int rc;
    int primary = s->p->access == TSQ_FULL || s->p->access == TSQ_PK_RANGE;
    while ((rc = next_entry(s, &k, &kl, &v, &vl)) == 1) {
        if (primary && kl < s->space_len) return TS_ERR_CORRUPT;
        rc = primary ? each(ctx, (const uint8_t *)k + s->space_len, kl - s->space_len)
                     : each(ctx, v, vl);
        if (rc) return rc;
    }
    return rc;
}

/* The next entry of a range or key scan; 1 with (k, v), 0 at the end. */
static int next_entry(tsq_scan *s, const void **k, size_t *kl, const void **v, size_t *vl)
{
    const tsq_plan *p = s->p;
    for (;;) {
        int rc;
        if (p->access == TSQ_IX_KEYS) {
            /* one key (or prefix) after another */
            if (!s->started) {
                if (s->ki >= p->keys.n) return 0;
                rc = tsix_seek(&s->cur, p->keys.k[s->ki], p->keys.kl[s->ki],
                               is_ordered_ix(s) ? TS_SEEK_GE : TS_SEEK_EQ);
                s->started = 1;
            } else {
                rc = tsix_next(&s->cur);
            }
            if (rc == TS_ERR_NOT_FOUND) { s->ki++; s->started = 0; continue; }
            if (rc) return rc;
            if ((rc = tsix_entry(&s->cur, k, kl, v, vl))) return rc;
            int ok = p->exact ? (*kl == p->keys.kl[s->ki] && memcmp(*k, p->keys.k[s->ki], *kl) == 0)
                              : starts(*k, *kl, p->keys.k[s->ki], p->keys.kl[s->ki]);
            if (!ok) { s->ki++; s->started = 0; continue; }
            return 1;
        }
        if (s->done) return 0;
        if (!s->started) {
            rc = range_start(s);
            s->started = 1;
        } else {
            rc = p->reverse ? tsix_prev(&s->cur) : tsix_next(&s->cur);
        }
        if (rc == TS_ERR_NOT_FOUND) { s->done = 1; return 0; }
        if (rc) return rc;
        if ((rc = tsix_entry(&s->cur, k, kl, v, vl))) return rc;
        int r = in_range(s, *k, *kl);
        if (r < 0) { s->done = 1; return 0; }
        if (r == 1) return 1;
    }
}

int tsq_scan_next(tsq_scan *s, const uint8_t **row, size_t *len, const uint8_t **pk, size_t *pkl,
                  const uint8_t **ikey, size_t *ikl)
{
    const tsq_plan *p = s->p;
    *ikey = NULL;
    *ikl = 0;
    for (;;) {
        int rc;
        if (p->access == TSQ_PK_KEYS || p->access == TSQ_UNION) {
            const tsq_keys *k = &s->pks;
            if (s->ki >= k->n) return 0;
            size_t i = s->ki++;
            if ((rc = fetch(s, k->k[i], k->kl[i])) == 0) continue;
            if (rc < 0) return rc;
        } else {
            const void *ek, *ev;
            size_t ekl, evl;
            if ((rc = next_entry(s, &ek, &ekl, &ev, &evl)) <= 0) return rc;
            if (p->access == TSQ_FULL || p->access == TSQ_PK_RANGE) {
                /* the primary store: the row is the value */
                if (ekl - s->space_len > TSROW_KEY_CAP) return TS_ERR_CORRUPT;
                const uint8_t *r = ev;
                size_t rl = evl;
                if (s->t->ttl) {
                    if (rl < 8) return tsenv_error(s->x->env, TS_ERR_CORRUPT, "malformed row");
                    int64_t exp = 0;
                    for (int b = 7; b >= 0; b--) exp = (int64_t)((uint64_t)exp << 8 | r[b]);
                    if (exp <= tsrow_now_ms()) continue;
                    r += 8;
                    rl -= 8;
                }
                if ((rc = tsrow_fill(s->x->env, s->x->w->tx, s->t, ek, ekl, &r, &rl, &s->whole)))
                    return rc;
                s->pkl = ekl - s->space_len;
                memcpy(s->pk, (const uint8_t *)ek + s->space_len, s->pkl);
                *row = r;
                *len = rl;
                *pk = s->pk;
                *pkl = s->pkl;
                return 1;
            }
            if (evl > TSROW_KEY_CAP || ekl > TSROW_KEY_CAP) return TS_ERR_CORRUPT;
            memcpy(s->ikey, ek, ekl);
            s->ikl = ekl;
            uint8_t pkb[TSROW_KEY_CAP];
            memcpy(pkb, ev, evl);
            if ((rc = fetch(s, pkb, evl)) == 0) continue;
            if (rc < 0) return rc;
            *ikey = s->ikey;
            *ikl = s->ikl;
        }
        *row = s->row.row;
        *len = s->row.len;
        *pk = s->pk;
        *pkl = s->pkl;
        return 1;
    }
}
