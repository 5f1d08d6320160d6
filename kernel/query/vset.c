/* The set of rows passing a vector search's conditions (vset.h). */
#include <stdlib.h>
#include <string.h>
#include <tostore/status.h>
#include "query/vset.h"

static uint64_t key_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static int grow(void **p, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap) return TS_OK;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * esz);
    if (!np) return TS_ERR_NOMEM;
    *p = np;
    *cap = nc;
    return TS_OK;
}

int tsq_vset_init(tsq_vset *s, uint32_t dim)
{
    memset(s, 0, sizeof *s);
    s->dim = dim;
    s->ko = malloc(64 * sizeof *s->ko);
    if (!s->ko) return TS_ERR_NOMEM;
    s->kocap = 64;
    s->ko[0] = 0;
    return TS_OK;
}

int tsq_vset_add(tsq_vset *s, const uint8_t *pk, size_t pkl, const float *v)
{
    if (s->n >= TSQ_VSET_ROWS_MAX) return TS_ERR_RESOURCE;
    if (s->dim && s->n >= TSQ_VSET_EXACT_MAX) {   /* too many to measure exactly: keys only */
        free(s->vec);
        s->vec = NULL;
        s->veccap = 0;
        s->dim = 0;
    }
    int rc = grow((void **)&s->kb, &s->kbcap, s->kbl + pkl, 1);
    if (!rc) rc = grow((void **)&s->ko, &s->kocap, s->n + 2, sizeof *s->ko);
    if (!rc && s->dim) rc = grow((void **)&s->vec, &s->veccap, (s->n + 1) * s->dim, sizeof *s->vec);
    if (rc) return rc;
    memcpy(s->kb + s->kbl, pk, pkl);
    s->kbl += pkl;
    if (s->dim) memcpy(s->vec + s->n * s->dim, v, (size_t)s->dim * sizeof *v);
    s->ko[++s->n] = s->kbl;
    return TS_OK;
}

int tsq_vset_seal(tsq_vset *s)
{
    size_t cap = 16;
    while (cap < 2 * s->n) cap *= 2;
    free(s->slot);
    s->slot = calloc(cap, sizeof *s->slot);
    if (!s->slot) return TS_ERR_NOMEM;
    s->mask = cap - 1;
    for (size_t i = 0; i < s->n; i++) {
        size_t h = (size_t)key_hash(s->kb + s->ko[i], s->ko[i + 1] - s->ko[i]) & s->mask;
        while (s->slot[h]) h = (h + 1) & s->mask;
        s->slot[h] = (uint32_t)i + 1;
    }
    return TS_OK;
}

long tsq_vset_find(const tsq_vset *s, const uint8_t *pk, size_t pkl)
{
    if (!s->slot) return -1;
    size_t h = (size_t)key_hash(pk, pkl) & s->mask;
    for (uint32_t r; (r = s->slot[h]) != 0; h = (h + 1) & s->mask) {
        size_t i = r - 1, l = s->ko[i + 1] - s->ko[i];
        if (l == pkl && memcmp(s->kb + s->ko[i], pk, pkl) == 0) return (long)i;
    }
    return -1;
}

int tsq_vset_has(const tsq_vset *s, const uint8_t *pk, size_t pkl)
{
    const tsq_vset *in;
    return tsq_vset_col_find(s, pk, pkl, &in) >= 0;
}

const uint8_t *tsq_vset_key(const tsq_vset *s, size_t i, size_t *pkl)
{
    *pkl = s->ko[i + 1] - s->ko[i];
    return s->kb + s->ko[i];
}

const float *tsq_vset_vec(const tsq_vset *s, size_t i)
{
    return s->dim ? s->vec + i * s->dim : NULL;
}

int tsq_vset_add_vval(tsq_vset *s, tsq_vval v)
{
    int rc = grow((void **)&s->val, &s->valcap, s->n, sizeof *s->val);
    if (!rc) s->val[s->n - 1] = v;
    return rc;
}

int tsq_vset_add_value(tsq_vset *s, const tsd_value *v)
{
    tsq_vval x = { .kind = (uint8_t)v->kind };
    if (v->kind == TSD_V_DOUBLE) x.u.d = v->d;
    else x.u.i = v->i;
    return tsq_vset_add_vval(s, x);
}

/* qsort cannot see the values: sort (value, row) pairs. */
typedef struct vpair { int64_t v; uint64_t row; } vpair;

static int cmp_pair(const void *a, const void *b)
{
    const vpair *x = a, *y = b;
    return x->v < y->v ? -1 : x->v > y->v ? 1 : (x->row > y->row) - (x->row < y->row);
}

int tsq_vset_order(tsq_vset *s)
{
    if (s->dim) return TS_OK;   /* vectors are not reordered: column sets keep none */
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->val[i].kind == TSD_V_INT) n++;
        else if (s->val[i].kind != TSD_V_NULL) return TS_OK;
    }
    vpair *p = malloc((s->n ? s->n : 1) * sizeof *p);
    uint8_t *kb = malloc(s->kbl ? s->kbl : 1);
    size_t *ko = malloc((s->n + 1) * sizeof *ko);
    tsq_vval *val = malloc((s->n ? s->n : 1) * sizeof *val);
    if (!p || !kb || !ko || !val) {
        free(p);
        free(kb);
        free(ko);
        free(val);
        return TS_ERR_NOMEM;
    }
    size_t ni = 0, nn = n;
    for (size_t i = 0; i < s->n; i++) {
        if (s->val[i].kind == TSD_V_INT) p[ni++] = (vpair){ s->val[i].u.i, i };
        else p[nn++] = (vpair){ 0, i };   /* NULLs after, in row order */
    }
    qsort(p, n, sizeof *p, cmp_pair);
    ko[0] = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t l;
        const uint8_t *k = tsq_vset_key(s, p[i].row, &l);
        memcpy(kb + ko[i], k, l);
        ko[i + 1] = ko[i] + l;
        val[i] = s->val[p[i].row];
    }
    free(p);
    free(s->kb);
    free(s->ko);
    free(s->val);
    s->kb = kb;
    s->kbcap = s->kbl;
    s->ko = ko;
    s->kocap = s->n + 1;
    s->val = val;
    s->valcap = s->n;
    s->ordered = !s->base || s->base->ordered;   /* a patched set: both parts */
    s->norder = n;
    return TS_OK;
}

/* The first row whose value is >= v (or > v when after). */
static size_t order_bound(const tsq_vset *s, int64_t v, int after)
{
    size_t lo = 0, hi = s->norder;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t x = s->val[mid].u.i;
        if (x < v || (after && x == v)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int tsq_vset_range(const tsq_vset *s, int64_t lo, int64_t hi, size_t *from, size_t *to)
{
    if (!s->ordered) return 0;
    *from = order_bound(s, lo, 0);
    *to = lo > hi ? *from : order_bound(s, hi, 1);
    if (*to < *from) *to = *from;
    return 1;
}

void tsq_vset_range_view(const tsq_vset *cs, size_t from, size_t to, tsq_vset *view)
{
    memset(view, 0, sizeof *view);
    view->n = to - from;
    view->kb = cs->kb;
    view->ko = cs->ko + from;   /* offsets stay absolute: tsq_vset_key works as is */
}

int tsq_vset_patch_init(tsq_vset *s, tsq_vset *old)
{
    tsq_vset *base = old->base ? old->base : old;
    int rc = tsq_vset_init(s, base->dim);   /* vectors while the base keeps them */
    if (rc) return rc;
    size_t words = (base->n + 63) / 64;
    s->hidden = calloc(words ? words : 1, sizeof *s->hidden);
    if (!s->hidden) {
        tsq_vset_clear(s);
        return TS_ERR_NOMEM;
    }
    if (old->base) {
        memcpy(s->hidden, old->hidden, words * sizeof *s->hidden);
        s->nhidden = old->nhidden;
    }
    tsq_vset_share(base);
    s->base = base;
    return TS_OK;
}

void tsq_vset_hide(tsq_vset *s, const uint8_t *pk, size_t pkl)
{
    long i = tsq_vset_find(s->base, pk, pkl);
    if (i < 0 || tsq_vset_hidden(s, (size_t)i)) return;
    s->hidden[(size_t)i >> 6] |= (uint64_t)1 << ((size_t)i & 63);
    s->nhidden++;
}

size_t tsq_vset_rows(const tsq_vset *s)
{
    return s->base ? s->base->n - s->nhidden + s->n : s->n;
}

long tsq_vset_col_find(const tsq_vset *s, const uint8_t *pk, size_t pkl, const tsq_vset **in)
{
    long i = tsq_vset_find(s, pk, pkl);
    *in = s;
    if (i >= 0 || !s->base) return i;
    i = tsq_vset_find(s->base, pk, pkl);
    *in = s->base;
    return i >= 0 && !tsq_vset_hidden(s, (size_t)i) ? i : -1;
}

void tsq_vset_share(tsq_vset *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void tsq_vset_free(tsq_vset *s)
{
    if (!s) return;
    /* the last holder sees every other holder's reads finished (acq_rel) */
    if (__atomic_fetch_sub(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    tsq_vset_clear(s);
    free(s);
}

size_t tsq_vset_bytes(const tsq_vset *s)
{
    size_t own = s->kbcap + s->kocap * sizeof *s->ko + s->veccap * sizeof *s->vec +
                 s->valcap * sizeof *s->val + (s->slot ? (s->mask + 1) * sizeof *s->slot : 0) + sizeof *s;
    /* a patched set counts its base: the set it was made from goes soon */
    return s->base ? own + (s->base->n + 63) / 64 * sizeof *s->hidden + tsq_vset_bytes(s->base) : own;
}

void tsq_vset_clear(tsq_vset *s)
{
    free(s->kb);
    free(s->ko);
    free(s->vec);
    free(s->slot);
    free(s->val);
    free(s->hidden);
    tsq_vset_free(s->base);
    memset(s, 0, sizeof *s);
}
