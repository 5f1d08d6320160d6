/*
 * data/record.h - records: validation of a JSON record against a table
 * (the "Writes" rules), merging for upserts, and the compact binary row
 * format (docs/schema.md "Row format"): encode, decode, read one field, and
 * build index keys straight from a row.
 *
 * Pure functions: no storage, no global state; thread-safe.  Messages name
 * "<table>.<field>".
 */
#ifndef TS_DATA_RECORD_H
#define TS_DATA_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "base/env.h"
#include "data/schema.h"
#include "data/value.h"

/* A growable byte buffer.  Zero-initialize; tsd_buf_free releases it. */
typedef struct tsd_buf {
    uint8_t *p;
    size_t   len, cap;
} tsd_buf;

void tsd_buf_free(tsd_buf *b);
/* Make room for extra more bytes after len: TS_OK or TS_ERR_NOMEM. */
int  tsd_buf_reserve(tsd_buf *b, size_t extra);

/* tsd_record_validate modes */
#define TSD_REC_INSERT  0 /* a whole new row: defaults applied, missing fields checked */
#define TSD_REC_PARTIAL 1 /* an update or the new part of an upsert: only the
                             fields given are validated, no defaults */

/*
 * Validate rec (a JSON object) against t and return the normalized record in
 * *out_new (a new object; datetimes as ISO-8601 UTC strings, bigInts as
 * integers when they fit, blobs as padded base64, vectors as reals in the
 * field's precision: exactly what decoding the encoded row gives back).
 *  - A key that is neither a field nor the primary key: TS_ERR_VALIDATION.
 *  - Types, lengths and ranges: TS_ERR_VALIDATION; size and depth limits:
 *    TS_ERR_RESOURCE.
 *  - null in a non-nullable field: TS_ERR_NOT_NULL.
 * TSD_REC_INSERT: a missing field takes its defaultValue, or now_ms for
 * defaultValueType "currentTimestamp", else null (TS_ERR_NOT_NULL when the
 * field is not nullable); the output has every column except the primary
 * key when rec has none (null or absent: to be generated).
 * TSD_REC_PARTIAL: the output has exactly the keys of rec; the primary key
 * may be given (a key change or an upsert's conflict target), not null.
 * The first failing column (in column order) is reported.
 */
int tsd_record_validate(ts_env *env, const tsd_table *t, const json_t *rec, int mode,
                        int64_t now_ms, json_t **out_new);

/* The upsert update: base (a whole normalized row, e.g. tsd_row_decode
 * output) with the keys of patch (tsd_record_validate TSD_REC_PARTIAL
 * output) replacing its values.  *out_new is a new object. */
int tsd_record_merge(ts_env *env, const tsd_table *t, const json_t *base, const json_t *patch,
                     json_t **out_new);

/* The upsert conflict target for rec (validated): TSD_TARGET_PK when it has
 * a non-null primary key, else the number (into t->indexes) of the first
 * unique constraint of t->unique_order whose fields are all present and not
 * null, else TSD_TARGET_NONE (a plain insert). */
#define TSD_TARGET_PK   (-1)
#define TSD_TARGET_NONE (-2)
long tsd_upsert_target(const tsd_table *t, const json_t *rec);

/*
 * Encode a validated whole record (tsd_record_validate output with the
 * primary key set) into out (out->len is reset to 0 first).  The values are
 * converted with the record rules again (TS_ERR_VALIDATION on a wrong type)
 * but not checked against constraints; a missing field is encoded as null.
 * TS_ERR_INVALID without a primary key; TS_ERR_RESOURCE when the row is
 * over TSD_ROW_MAX or a value over TSD_VALUE_MAX.
 */
int tsd_row_encode(ts_env *env, const tsd_table *t, const json_t *rec, tsd_buf *out);

/* The fast insert path: tsd_record_validate(TSD_REC_INSERT) and
 * tsd_row_encode in one pass, without building the normalized JSON.  pk
 * (may be NULL: rec's own) is the primary key to store; TS_ERR_INVALID when
 * there is none.  Same codes and messages as the two calls. */
int tsd_row_encode_record(ts_env *env, const tsd_table *t, const json_t *rec,
                          const json_t *pk, int64_t now_ms, tsd_buf *out);

/* Decode a row: a new object with every column (the primary key first, then
 * the fields in order), nulls as JSON null, in the normalized form.  A row
 * written when the table had fewer fields gives null for the later ones.
 * TS_ERR_CORRUPT when the bytes are not a row of t. */
int tsd_row_decode(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len,
                   json_t **out_new);

/* Read column col of a row without decoding the others.  *out borrows from
 * row (no tsd_value_clear needed, though it is harmless).  TS_ERR_CORRUPT
 * when malformed, TS_ERR_INVALID when col >= t->ncols. */
int tsd_row_field(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len, size_t col,
                  tsd_value *out);

/* Append the key of index ix (its columns' keys concatenated, tsd_value_key)
 * for a row at *off in dst (cap 0 measures).  The primary key's own key is
 * tsd_row_pk_key.  Non-unique indexes need the primary key appended by the
 * caller to tell equal keys apart. */
int tsd_row_index_key(ts_env *env, const tsd_table *t, const tsd_index *ix, const uint8_t *row,
                      size_t len, uint8_t *dst, size_t cap, size_t *off);
int tsd_row_pk_key(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len,
                   uint8_t *dst, size_t cap, size_t *off);

/*
 * Vectors kept by an index.  A table whose vector index keeps copies it can
 * give back (tsix_vectors) stores the row without them: a version-2 row in
 * which such a vector column has an empty payload (int8: only its 4-byte
 * scale), its value being the vector the index stores for the row's key.
 * tsd_row_field / tsd_row_decode refuse such a column (TS_ERR_CORRUPT):
 * the table layer puts the vectors back (tsd_row_fill) before anything
 * reads the row.
 */
/* Whether row is a version-2 row (some vector left to an index). */
int tsd_row_has_refs(const uint8_t *row, size_t len);
/* Row without the non-null vectors of the columns c with strip[c] set, as
 * a version-2 row into out, with *nstripped the number left out; out is
 * untouched when none was (*nstripped 0). */
int tsd_row_strip(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len,
                  const unsigned char *strip, tsd_buf *out, size_t *nstripped);
/* refs[c] (t->ncols flags) = whether column c's vector is left to an index. */
int tsd_row_refs(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len, unsigned char *refs);
/* The whole version-1 row into out, the vector of each column c left to an
 * index taken from vecs[c] (dimensions floats: float32 exactly the stored
 * ones; float16 and int8 ones that round to the stored values, int8 by the
 * scale the row kept); TS_ERR_CORRUPT when vecs[c] is NULL. */
int tsd_row_fill(ts_env *env, const tsd_table *t, const uint8_t *row, size_t len,
                 const float *const *vecs, tsd_buf *out);

#endif
