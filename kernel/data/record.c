/*
 * Records and rows.  See data/record.h; the row format is described in
 * docs/schema.md ("Row format"):
 *
 *   u8      version (1)
 *   varint  ncols: columns stored (a row written before fields were added
 *           has fewer than the table; the missing ones read as null)
 *   bytes   null bitmap, ceil(ncols / 8) bytes, bit c (byte c/8, 1 << c%8)
 *           set when column c is null
 *   varint  size in bytes of the length section below
 *   varints the payload length of each non-null column that is not of a
 *           fixed size (double: 8, boolean: 1), in column order
 *   bytes   the payloads of the non-null columns, in column order
 *
 * So one column is found by walking the bitmap and the length section up to
 * it, without touching the other payloads.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/record.h"

#define BAD(...)     tsenv_error(env, TS_ERR_VALIDATION, __VA_ARGS__)
#define CORRUPT(...) tsenv_error(env, TS_ERR_CORRUPT, __VA_ARGS__)
#define NOMEM()      tsenv_error(env, TS_ERR_NOMEM, "out of memory")

#define ROW_VERSION 1
#define ROW_VERSION_REFS 2   /* some vectors left to an index (tsd_row_strip) */
#define STACK_COLS  32

/* ---- buffers and varints ------------------------------------------------- */

void tsd_buf_free(tsd_buf *b)
{
    if (!b) return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int tsd_buf_reserve(tsd_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return TS_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) return TS_ERR_NOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return TS_ERR_NOMEM;
    b->p = p;
    b->cap = cap;
    return TS_OK;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* 0 and *v, advancing *p; -1 when truncated or over 64 bits. */
static int varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return -1;
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1) return -1;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static uint64_t zigzag(int64_t v)
{
    return v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
}

static int64_t unzigzag(uint64_t u)
{
    return (u & 1) ? (int64_t)~(u >> 1) : (int64_t)(u >> 1);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* ---- payloads ------------------------------------------------------------ */

/* Bytes of a fixed-size payload (no entry in the length section), else 0. */
static size_t fixed_size(const tsd_field *f)
{
    if (f->is_pk) return 0;
    if (f->type == TSD_DOUBLE) return 8;
    if (f->type == TSD_BOOLEAN) return 1;
    return 0;
}

static size_t payload_len(const tsd_field *f, const tsd_value *v)
{
    if (f->is_pk)
        return 1 + (v->kind == TSD_V_INT ? varint_len(zigzag(v->i)) : v->n);
    switch (f->type) {
    case TSD_INTEGER:
    case TSD_DATETIME:
        return varint_len(zigzag(v->i));
    case TSD_BIGINT:
        return 1 + (v->kind == TSD_V_INT ? varint_len(zigzag(v->i)) : v->n);
    case TSD_DOUBLE:
        return 8;
    case TSD_BOOLEAN:
        return 1;
    case TSD_VECTOR:
        return (f->precision == TSD_VEC_INT8 ? 4 : 0) + v->n;
    default:
        return v->n;
    }
}

static uint8_t *payload_put(const tsd_field *f, const tsd_value *v, uint8_t *p)
{
    if (f->is_pk || f->type == TSD_BIGINT) {
        if (v->kind == TSD_V_INT) {
            *p++ = 0;
            return varint_put(p, zigzag(v->i));
        }
        *p++ = f->is_pk ? 1 : v->neg ? 2 : 1;
        memcpy(p, v->p, v->n);
        return p + v->n;
    }
    switch (f->type) {
    case TSD_INTEGER:
    case TSD_DATETIME:
        return varint_put(p, zigzag(v->i));
    case TSD_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->d, 8);
        put_le(p, bits, 8);
        return p + 8;
    }
    case TSD_BOOLEAN:
        *p++ = (uint8_t)(v->i != 0);
        return p;
    case TSD_VECTOR:
        if (f->precision == TSD_VEC_INT8) {
            uint32_t bits;
            memcpy(&bits, &v->scale, 4);
            put_le(p, bits, 4);
            p += 4;
        }
        memcpy(p, v->p, v->n);
        return p + v->n;
    default:
        if (v->n) memcpy(p, v->p, v->n);
        return p + v->n;
    }
}

/* Decode the payload p[0..n) of column f into v (borrowing p). */
static int payload_get(ts_env *env, const tsd_field *f, const uint8_t *p, size_t n, tsd_value *v)
{
    const uint8_t *end = p + n;
    uint64_t u;
    memset(v, 0, sizeof *v);
    if (f->is_pk || f->type == TSD_BIGINT) {
        if (n < 1) goto corrupt;
        uint8_t tag = *p++;
        if (tag == 0) {
            if (varint_get(&p, end, &u) || p != end) goto corrupt;
            v->kind = TSD_V_INT;
            v->i = unzigzag(u);
        } else if (f->is_pk && tag == 1) {
            v->kind = TSD_V_TEXT;
            v->p = p;
            v->n = n - 1;
        } else if (!f->is_pk && (tag == 1 || tag == 2) && n > 1 && p[0] != '0') {
            for (size_t k = 0; k < n - 1; k++)
                if (p[k] < '0' || p[k] > '9') goto corrupt;
            v->kind = TSD_V_BIGDEC;
            v->neg = tag == 2;
            v->p = p;
            v->n = n - 1;
        } else {
            goto corrupt;
        }
        return TS_OK;
    }
    switch (f->type) {
    case TSD_INTEGER:
    case TSD_DATETIME:
        if (varint_get(&p, end, &u) || p != end) goto corrupt;
        v->kind = TSD_V_INT;
        v->i = unzigzag(u);
        return TS_OK;
    case TSD_DOUBLE: {
        if (n != 8) goto corrupt;
        uint64_t bits = get_le(p, 8);
        v->kind = TSD_V_DOUBLE;
        memcpy(&v->d, &bits, 8);
        return TS_OK;
    }
    case TSD_BOOLEAN:
        if (n != 1 || p[0] > 1) goto corrupt;
        v->kind = TSD_V_BOOL;
        v->i = p[0];
        return TS_OK;
    case TSD_TEXT:
        v->kind = TSD_V_TEXT;
        break;
    case TSD_BLOB:
        v->kind = TSD_V_BLOB;
        break;
    case TSD_ARRAY:
    case TSD_JSON:
        v->kind = TSD_V_JSON;
        break;
    case TSD_VECTOR: {
        size_t esz = f->precision == TSD_VEC_FLOAT32 ? 4 : f->precision == TSD_VEC_FLOAT16 ? 2 : 1;
        size_t head = f->precision == TSD_VEC_INT8 ? 4 : 0;
        if (n == 0 || (f->precision == TSD_VEC_INT8 && n == 4))
            return CORRUPT("%s.%s: the row's vector is kept by the table's vector index and was "
                           "not read from it", f->table, f->name);
        if (n != head + (size_t)f->dimensions * esz) goto corrupt;
        v->kind = TSD_V_VECTOR;
        v->dims = f->dimensions;
        if (head) {
            uint32_t bits = (uint32_t)get_le(p, 4);
            memcpy(&v->scale, &bits, 4);
            p += 4;
            n -= 4;
        }
        break;
    }
    default:
        goto corrupt;
    }
    v->p = p;
    v->n = n;
    return TS_OK;
corrupt:
    return CORRUPT("%s.%s: malformed value in a stored row", f->table, f->name);
}

/* ---- writing rows --------------------------------------------------------- */

/* Bytes of a row: version, column count, null bitmap, the length
 * section's size, the lengths and the payloads. */
static size_t row_size(size_t ncols, size_t lens, size_t payload)
{
    return 1 + varint_len(ncols) + (ncols + 7) / 8 + varint_len(lens) + lens + payload;
}

/* Start a row of total bytes in out: its header with an all-clear null
 * bitmap (*bits); *lp and *pp are where its lengths and payloads go. */
static int row_begin(tsd_buf *out, uint8_t version, size_t ncols, size_t lens, size_t total,
                     uint8_t **bits, uint8_t **lp, uint8_t **pp)
{
    out->len = 0;
    if (tsd_buf_reserve(out, total)) return TS_ERR_NOMEM;
    uint8_t *p = out->p;
    *p++ = version;
    p = varint_put(p, ncols);
    *bits = p;
    memset(p, 0, (ncols + 7) / 8);
    p += (ncols + 7) / 8;
    p = varint_put(p, lens);
    *lp = p;
    *pp = p + lens;
    return TS_OK;
}

static int write_row(ts_env *env, const tsd_table *t, const tsd_value *vals, tsd_buf *out)
{
    size_t ncols = t->ncols, lens = 0, payload = 0;
    if (vals[0].kind == TSD_V_NULL)
        return tsenv_error(env, TS_ERR_INVALID, "%s: the row has no primary key", t->name);
    for (size_t c = 0; c < ncols; c++) {
        if (vals[c].kind == TSD_V_NULL) continue;
        const tsd_field *f = &t->cols[c];
        size_t pl = payload_len(f, &vals[c]);
        if (!fixed_size(f)) lens += varint_len(pl);
        payload += pl;
    }
    size_t total = row_size(ncols, lens, payload);
    if (total > TSD_ROW_MAX)
        return tsenv_error(env, TS_ERR_RESOURCE, "%s: a row of %zu bytes is over the limit of "
                           "%u bytes", t->name, total, TSD_ROW_MAX);
    uint8_t *bits, *lp, *pp;
    if (row_begin(out, ROW_VERSION, ncols, lens, total, &bits, &lp, &pp)) return NOMEM();
    for (size_t c = 0; c < ncols; c++) {
        const tsd_field *f = &t->cols[c];
        if (vals[c].kind == TSD_V_NULL) {
            bits[c / 8] |= (uint8_t)(1u << (c % 8));
            continue;
        }
        if (!fixed_size(f)) lp = varint_put(lp, payload_len(f, &vals[c]));
        pp = payload_put(f, &vals[c], pp);
    }
    out->len = (size_t)(pp - out->p);
    return out->len == total ? TS_OK
           : tsenv_error(env, TS_ERR_UNKNOWN, "%s: row size mismatch", t->name);
}

/* ---- reading rows ------------------------------------------------------- */

typedef struct rowhdr {
    size_t         ncols;
    const uint8_t *bits;
    const uint8_t *lens, *lens_end;
    const uint8_t *payload, *end;
} rowhdr;

static int row_header(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len,
                      rowhdr *h)
{
    const uint8_t *p = row, *end = row + len;
    uint64_t n, lens;
    if (!row || len < 1) return CORRUPT("%s: empty row", t->name);
    if (*p != ROW_VERSION && *p != ROW_VERSION_REFS)
        return CORRUPT("%s: unknown row format version %u", t->name, row[0]);
    p++;
    if (varint_get(&p, end, &n) || n == 0 || n > t->ncols)
        return CORRUPT("%s: malformed row header (column count)", t->name);
    h->ncols = (size_t)n;
    if ((size_t)(end - p) < (h->ncols + 7) / 8)
        return CORRUPT("%s: malformed row header (bitmap)", t->name);
    h->bits = p;
    p += (h->ncols + 7) / 8;
    if (varint_get(&p, end, &lens) || lens > (uint64_t)(end - p))
        return CORRUPT("%s: malformed row header (lengths)", t->name);
    h->lens = p;
    h->lens_end = p + lens;
    h->payload = h->lens_end;
    h->end = end;
    return TS_OK;
}

static int is_null(const rowhdr *h, size_t c)
{
    return c >= h->ncols || (h->bits[c / 8] >> (c % 8) & 1);
}

/* The payload size of non-null column c, advancing *lp in the length section. */
static int next_len(ts_env *env, const tsd_table *t, const rowhdr *h, size_t c,
                    const uint8_t **lp, size_t *n)
{
    size_t fixed = fixed_size(&t->cols[c]);
    if (fixed) {
        *n = fixed;
        return TS_OK;
    }
    uint64_t u;
    if (varint_get(lp, h->lens_end, &u)) return CORRUPT("%s: malformed row lengths", t->name);
    *n = (size_t)u;
    return TS_OK;
}

int tsd_row_field(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len, size_t col,
                  tsd_value *out)
{
    if (!t || !out) return tsenv_error(env, TS_ERR_INVALID, "tsd_row_field: NULL argument");
    memset(out, 0, sizeof *out);
    if (col >= t->ncols)
        return tsenv_error(env, TS_ERR_INVALID, "%s: no column %zu", t->name, col);
    rowhdr h;
    int rc = row_header(env, t, row, len, &h);
    if (rc || is_null(&h, col)) return rc;
    const uint8_t *lp = h.lens;
    size_t off = 0, n = 0;
    for (size_t c = 0; c <= col; c++) {
        if (is_null(&h, c)) continue;
        if ((rc = next_len(env, t, &h, c, &lp, &n))) return rc;
        if (n > (size_t)(h.end - h.payload) - off)
            return CORRUPT("%s: row payload shorter than its lengths", t->name);
        if (c < col) off += n;
    }
    return payload_get(env, &t->cols[col], h.payload + off, n, out);
}

int tsd_row_decode(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len,
                   json_t **out_new)
{
    if (!t || !out_new) return tsenv_error(env, TS_ERR_INVALID, "tsd_row_decode: NULL argument");
    *out_new = NULL;
    rowhdr h;
    int rc = row_header(env, t, row, len, &h);
    if (rc) return rc;
    json_t *o = json_object();
    if (!o) return NOMEM();
    const uint8_t *lp = h.lens, *pp = h.payload;
    for (size_t c = 0; c < t->ncols && !rc; c++) {
        const tsd_field *f = &t->cols[c];
        json_t *j = NULL;
        if (is_null(&h, c)) {
            j = json_null();
        } else {
            size_t n;
            tsd_value v;
            if ((rc = next_len(env, t, &h, c, &lp, &n))) break;
            if (n > (size_t)(h.end - pp)) {
                rc = CORRUPT("%s: row payload shorter than its lengths", t->name);
                break;
            }
            if ((rc = payload_get(env, f, pp, n, &v))) break;
            pp += n;
            if ((rc = tsd_value_to_json(env, f, &v, &j))) break;
        }
        if (!j || json_object_set_new_nocheck(o, f->name, j)) rc = NOMEM();
    }
    if (!rc && (lp != h.lens_end || pp != h.end))
        rc = CORRUPT("%s: row has %s bytes", t->name, pp != h.end ? "trailing" : "unused length");
    if (rc) {
        json_decref(o);
        return rc;
    }
    *out_new = o;
    return TS_OK;
}

int tsd_row_index_key(ts_env *env, const tsd_table *t, const tsd_index *ix, const uint8_t *row,
                      size_t len, uint8_t *dst, size_t cap, size_t *off)
{
    if (!t || !ix || !off) return tsenv_error(env, TS_ERR_INVALID, "tsd_row_index_key: NULL argument");
    for (size_t i = 0; i < ix->nfields; i++) {
        tsd_value v;
        int rc = tsd_row_field(env, t, row, len, ix->cols[i], &v);
        if (!rc) rc = tsd_value_key(env, &t->cols[ix->cols[i]], &v, dst, cap, off);
        if (rc) return rc;
    }
    return TS_OK;
}

int tsd_row_pk_key(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len, uint8_t *dst,
                   size_t cap, size_t *off)
{
    if (!t || !off) return tsenv_error(env, TS_ERR_INVALID, "tsd_row_pk_key: NULL argument");
    tsd_value v;
    int rc = tsd_row_field(env, t, row, len, 0, &v);
    if (!rc && v.kind == TSD_V_NULL) rc = CORRUPT("%s: row without a primary key", t->name);
    if (!rc) rc = tsd_value_key(env, &t->cols[0], &v, dst, cap, off);
    return rc;
}

/* ---- vectors kept by an index ----------------------------------------------- */

typedef struct rowcol { const uint8_t *p; size_t n; int null; } rowcol;

/* The payload a vector column keeps when its vector is left to an index:
 * nothing, or an int8 vector's scale (its codes are rebuilt from the
 * index's floats by rounding, which the scale's last bit cannot change). */
static size_t ref_size(const tsd_field *f) { return f->precision == TSD_VEC_INT8 ? 4 : 0; }

static int is_ref(const tsd_field *f, const rowcol *c)
{
    return f->type == TSD_VECTOR && !c->null && c->n == ref_size(f);
}

/* Each column's payload (cols has t->ncols entries; columns past the
 * row's count are null). */
static int row_split(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len, rowhdr *h,
                     rowcol *cols)
{
    int rc = row_header(env, t, row, len, h);
    if (rc) return rc;
    const uint8_t *lp = h->lens, *pp = h->payload;
    for (size_t c = 0; c < t->ncols; c++) {
        cols[c] = (rowcol){ NULL, 0, 1 };
        if (is_null(h, c)) continue;
        size_t n;
        if ((rc = next_len(env, t, h, c, &lp, &n))) return rc;
        if (n > (size_t)(h->end - pp)) return CORRUPT("%s: row payload shorter than its lengths", t->name);
        cols[c] = (rowcol){ pp, n, 0 };
        pp += n;
    }
    if (lp != h->lens_end || pp != h->end)
        return CORRUPT("%s: row has %s bytes", t->name, pp != h->end ? "trailing" : "unused length");
    return TS_OK;
}

static int row_join(ts_env *env, const tsd_table *t, uint8_t version, size_t ncols, const rowcol *cols,
                    tsd_buf *out)
{
    size_t lens = 0, payload = 0;
    for (size_t c = 0; c < ncols; c++) {
        if (cols[c].null) continue;
        if (!fixed_size(&t->cols[c])) lens += varint_len(cols[c].n);
        payload += cols[c].n;
    }
    size_t total = row_size(ncols, lens, payload);
    uint8_t *bits, *lp, *pp;
    if (row_begin(out, version, ncols, lens, total, &bits, &lp, &pp)) return NOMEM();
    for (size_t c = 0; c < ncols; c++) {
        if (cols[c].null) {
            bits[c / 8] |= (uint8_t)(1u << (c % 8));
            continue;
        }
        if (!fixed_size(&t->cols[c])) lp = varint_put(lp, cols[c].n);
        if (cols[c].n) memcpy(pp, cols[c].p, cols[c].n);
        pp += cols[c].n;
    }
    out->len = total;
    return TS_OK;
}

int tsd_row_has_refs(const uint8_t *row, size_t len)
{
    return len > 0 && row[0] == ROW_VERSION_REFS;
}

int tsd_row_strip(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len,
                  const unsigned char *strip, tsd_buf *out, size_t *nstripped)
{
    *nstripped = 0;
    rowcol stack[STACK_COLS], *cols = t->ncols <= STACK_COLS ? stack : malloc(t->ncols * sizeof *cols);
    if (!cols) return NOMEM();
    rowhdr h;
    int rc = row_split(env, t, row, len, &h, cols);
    for (size_t c = 0; c < h.ncols && !rc; c++)
        if (strip[c] && t->cols[c].type == TSD_VECTOR && !cols[c].null && !is_ref(&t->cols[c], &cols[c])) {
            cols[c].n = ref_size(&t->cols[c]);
            (*nstripped)++;
        }
    if (!rc && *nstripped) rc = row_join(env, t, ROW_VERSION_REFS, h.ncols, cols, out);
    if (cols != stack) free(cols);
    return rc;
}

int tsd_row_refs(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len, unsigned char *refs)
{
    rowcol stack[STACK_COLS], *cols = t->ncols <= STACK_COLS ? stack : malloc(t->ncols * sizeof *cols);
    if (!cols) return NOMEM();
    rowhdr h;
    int rc = row_split(env, t, row, len, &h, cols);
    for (size_t c = 0; c < t->ncols && !rc; c++)
        refs[c] = is_ref(&t->cols[c], &cols[c]);
    if (cols != stack) free(cols);
    return rc;
}

int tsd_row_fill(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len,
                 const float *const *vecs, tsd_buf *out)
{
    rowcol stack[STACK_COLS], *cols = t->ncols <= STACK_COLS ? stack : malloc(t->ncols * sizeof *cols);
    if (!cols) return NOMEM();
    rowhdr h;
    int rc = row_split(env, t, row, len, &h, cols);
    uint8_t *mem = NULL;
    size_t need = 0;
    for (size_t c = 0; c < h.ncols && !rc; c++) {
        const tsd_field *f = &t->cols[c];
        if (!is_ref(f, &cols[c])) continue;
        if (!vecs[c])
            rc = CORRUPT("%s.%s: the row's vector is missing from the table's vector index", t->name, f->name);
        need += ref_size(f) + (size_t)f->dimensions * (f->precision == TSD_VEC_FLOAT32 ? 4 :
                                                        f->precision == TSD_VEC_FLOAT16 ? 2 : 1);
    }
    if (!rc && !(mem = malloc(need ? need : 1))) rc = NOMEM();
    uint8_t *m = mem;
    for (size_t c = 0; c < h.ncols && !rc; c++) {
        const tsd_field *f = &t->cols[c];
        if (!is_ref(f, &cols[c])) continue;
        size_t d = f->dimensions, esz = f->precision == TSD_VEC_FLOAT32 ? 4 : f->precision == TSD_VEC_FLOAT16 ? 2 : 1;
        uint8_t *start = m;
        float scale = 0;
        if (f->precision == TSD_VEC_INT8) {
            memcpy(m, cols[c].p, 4);   /* the scale, as stored */
            uint32_t bits = (uint32_t)get_le(m, 4);
            memcpy(&scale, &bits, 4);
            m += 4;
        }
        for (size_t i = 0; i < d; i++) {
            float x = vecs[c][i];
            if (f->precision == TSD_VEC_FLOAT32) {
                uint32_t bits;
                memcpy(&bits, &x, 4);
                put_le(m + 4 * i, bits, 4);
            } else if (f->precision == TSD_VEC_FLOAT16) {
                put_le(m + 2 * i, tsd_f32_to_f16(x), 2);
            } else {
                double q = scale > 0 ? (double)x / (double)scale : 0;
                long r = q < 0 ? -(long)(-q + 0.5) : (long)(q + 0.5);
                m[i] = (uint8_t)(int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
            }
        }
        cols[c].p = start;
        cols[c].n = ref_size(f) + d * esz;
        m += d * esz;
    }
    if (!rc) rc = row_join(env, t, ROW_VERSION, h.ncols, cols, out);
    free(mem);
    if (cols != stack) free(cols);
    return rc;
}

/* ---- records -------------------------------------------------------------- */

/* Find each column's value in rec (vals[c], NULL when absent); refuse keys
 * that are no column. */
static int gather(ts_env *env, const tsd_table *t, const json_t *rec, const json_t **vals)
{
    if (!json_is_object(rec))
        return BAD("%s: a record is a JSON object", t->name);
    size_t matched = 0;
    for (size_t c = 0; c < t->ncols; c++) {
        vals[c] = json_object_get(rec, t->cols[c].name);
        matched += vals[c] != NULL;
    }
    if (matched == json_object_size(rec)) return TS_OK;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)rec, k, v) {
        if (tsd_table_col(t, k) < 0) return BAD("%s: unknown field '%s'", t->name, k);
    }
    return BAD("%s: unknown field", t->name); /* not reached */
}

/* The currentTimestamp default of f at now_ms. */
static int now_value(ts_env *env, const tsd_field *f, int64_t now_ms, tsd_value *v)
{
    memset(v, 0, sizeof *v);
    if (f->type != TSD_TEXT) {
        v->kind = TSD_V_INT;
        v->i = now_ms;
        return TS_OK;
    }
    char *s = malloc(TSD_DATETIME_BUF);
    if (!s) return NOMEM();
    v->kind = TSD_V_TEXT;
    v->p = v->mem = s;
    v->n = tsd_datetime_format(now_ms, s);
    return TS_OK;
}

/*
 * The value of column c under mode: *present 0 when the column is left out
 * (TSD_REC_PARTIAL: not given; TSD_REC_INSERT: the primary key not given).
 * *src is the JSON the value came from (the record's or the default), NULL
 * for a currentTimestamp default.
 */
static int column_value(ts_env *env, const tsd_table *t, size_t c, const json_t *in, int mode,
                        int64_t now_ms, tsd_value *v, const json_t **src, int *present)
{
    const tsd_field *f = &t->cols[c];
    memset(v, 0, sizeof *v);
    *src = NULL;
    *present = 1;
    if (c == 0) {
        if (!in || (json_is_null(in) && mode == TSD_REC_INSERT)) {
            *present = 0;
            return TS_OK;
        }
        if (json_is_null(in))
            return tsenv_error(env, TS_ERR_NOT_NULL, "%s.%s: the primary key cannot be null",
                               t->name, f->name);
    } else if (!in) {
        if (mode == TSD_REC_PARTIAL) {
            *present = 0;
            return TS_OK;
        }
        if (f->default_now) {
            int rc = now_value(env, f, now_ms, v);
            return rc ? rc : tsd_value_check(env, f, v);
        }
        if (!f->default_value) {
            if (!f->nullable)
                return tsenv_error(env, TS_ERR_NOT_NULL, "%s.%s: missing a value (not nullable, "
                                   "no default)", t->name, f->name);
            return TS_OK;
        }
        in = f->default_value;
    } else if (json_is_null(in)) {
        if (!f->nullable)
            return tsenv_error(env, TS_ERR_NOT_NULL, "%s.%s: null in a non-nullable field",
                               t->name, f->name);
        *src = in;
        return TS_OK;
    }
    *src = in;
    int rc = tsd_value_from_json(env, f, in, v);
    if (!rc) rc = tsd_value_check(env, f, v);
    return rc;
}

int tsd_record_validate(ts_env *env, const tsd_table *t, const json_t *rec, int mode,
                        int64_t now_ms, json_t **out_new)
{
    if (!out_new) return tsenv_error(env, TS_ERR_INVALID, "tsd_record_validate: NULL out");
    *out_new = NULL;
    if (!t || !rec) return tsenv_error(env, TS_ERR_INVALID, "tsd_record_validate: NULL argument");
    if (mode != TSD_REC_INSERT && mode != TSD_REC_PARTIAL)
        return tsenv_error(env, TS_ERR_INVALID, "tsd_record_validate: bad mode %d", mode);
    const json_t *stackv[STACK_COLS], **vals = stackv;
    if (t->ncols > STACK_COLS && !(vals = malloc(t->ncols * sizeof *vals))) return NOMEM();
    json_t *o = json_object();
    int rc = o ? gather(env, t, rec, vals) : NOMEM();
    for (size_t c = 0; c < t->ncols && !rc; c++) {
        const tsd_field *f = &t->cols[c];
        tsd_value v;
        const json_t *src;
        int present;
        rc = column_value(env, t, c, vals[c], mode, now_ms, &v, &src, &present);
        if (!rc && present) {
            json_t *j = NULL;
            if (src && (f->type == TSD_ARRAY || f->type == TSD_JSON)) {
                if (!(j = json_deep_copy(src))) rc = NOMEM();
            } else {
                rc = tsd_value_to_json(env, f, &v, &j);
            }
            if (!rc && json_object_set_new_nocheck(o, f->name, j)) rc = NOMEM();
        }
        tsd_value_clear(&v);
    }
    if (vals != stackv) free(vals);
    if (rc) {
        json_decref(o);
        return rc;
    }
    *out_new = o;
    return TS_OK;
}

int tsd_record_merge(ts_env *env, const tsd_table *t, const json_t *base, const json_t *patch,
                     json_t **out_new)
{
    if (!out_new) return tsenv_error(env, TS_ERR_INVALID, "tsd_record_merge: NULL out");
    *out_new = NULL;
    if (!t || !json_is_object(base) || !json_is_object(patch))
        return tsenv_error(env, TS_ERR_INVALID, "tsd_record_merge: expected two objects");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        if (tsd_table_col(t, k) < 0) return BAD("%s: unknown field '%s'", t->name, k);
    }
    json_t *o = json_deep_copy(base);
    if (!o) return NOMEM();
    json_object_foreach((json_t *)patch, k, v) {
        if (json_object_set_new_nocheck(o, k, json_deep_copy(v))) {
            json_decref(o);
            return NOMEM();
        }
    }
    *out_new = o;
    return TS_OK;
}

long tsd_upsert_target(const tsd_table *t, const json_t *rec)
{
    if (!t || !json_is_object(rec)) return TSD_TARGET_NONE;
    const json_t *pk = json_object_get(rec, t->cols[0].name);
    if (pk && !json_is_null(pk)) return TSD_TARGET_PK;
    for (size_t k = 0; k < t->nunique; k++) {
        const tsd_index *ix = &t->indexes[t->unique_order[k]];
        int all = 1;
        for (size_t i = 0; i < ix->nfields && all; i++) {
            const json_t *v = json_object_get(rec, t->cols[ix->cols[i]].name);
            all = v && !json_is_null(v);
        }
        if (all) return (long)t->unique_order[k];
    }
    return TSD_TARGET_NONE;
}

/* ---- encoding records ------------------------------------------------------- */

static int encode(ts_env *env, const tsd_table *t, const json_t *rec, const json_t *pk,
                  int validate, int64_t now_ms, tsd_buf *out)
{
    if (!t || !rec || !out) return tsenv_error(env, TS_ERR_INVALID, "tsd_row_encode: NULL argument");
    const json_t *stackv[STACK_COLS], **in = stackv;
    tsd_value stackval[STACK_COLS], *vals = stackval;
    if (t->ncols > STACK_COLS) {
        in = malloc(t->ncols * sizeof *in);
        vals = calloc(t->ncols, sizeof *vals);
        if (!in || !vals) {
            free(in);
            free(vals);
            return NOMEM();
        }
    }
    memset(vals, 0, t->ncols * sizeof *vals);
    int rc = TS_OK;
    if (validate) {
        rc = gather(env, t, rec, in);
    } else if (!json_is_object(rec)) {
        rc = BAD("%s: a record is a JSON object", t->name);
    } else {
        for (size_t c = 0; c < t->ncols; c++) in[c] = json_object_get(rec, t->cols[c].name);
    }
    if (!rc && pk) in[0] = pk;
    for (size_t c = 0; c < t->ncols && !rc; c++) {
        if (validate) {
            const json_t *src;
            int present;
            rc = column_value(env, t, c, in[c], TSD_REC_INSERT, now_ms, &vals[c], &src, &present);
        } else {
            rc = tsd_value_from_json(env, &t->cols[c], in[c], &vals[c]);
        }
    }
    if (!rc) rc = write_row(env, t, vals, out);
    for (size_t c = 0; c < t->ncols; c++) tsd_value_clear(&vals[c]);
    if (in != stackv) free(in);
    if (vals != stackval) free(vals);
    return rc;
}

int tsd_row_encode(ts_env *env, const tsd_table *t, const json_t *rec, tsd_buf *out)
{
    return encode(env, t, rec, NULL, 0, 0, out);
}

int tsd_row_encode_record(ts_env *env, const tsd_table *t, const json_t *rec, const json_t *pk,
                          int64_t now_ms, tsd_buf *out)
{
    return encode(env, t, rec, pk, 1, now_ms, out);
}
