/*
 * data/value.h - one field value: the JSON rules of each type ("Values in
 * JSON", docs/schema.md), the decoded form tsd_value that rows, keys and
 * the query engine share, coercion of query values, and the memcomparable
 * key of a value (tostore/keys.h).
 *
 * Pure functions: no storage, no global state; thread-safe.  Functions that
 * take an env record the error message there (tsenv_error) and return its
 * code; messages name "<table>.<field>".
 */
#ifndef TS_DATA_VALUE_H
#define TS_DATA_VALUE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "base/env.h"
#include "data/schema.h"

/* Limits (docs/schema.md "Limits").  Exceeding one is TS_ERR_RESOURCE. */
#define TSD_VALUE_MAX   (16u << 20) /* bytes of one value: text, blob, JSON text, vector, bigInt digits */
#define TSD_ROW_MAX     (16u << 20) /* bytes of one encoded row */
#define TSD_DEPTH_MAX   64          /* nesting of arrays/objects in array/json values */

/* datetime range: 0000-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z */
#define TSD_DATETIME_MIN_MS (-62167219200000LL)
#define TSD_DATETIME_MAX_MS (253402300799999LL)
#define TSD_DATETIME_BUF    32 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" + NUL, rounded up */

typedef enum tsd_vkind {
    TSD_V_NULL = 0,
    TSD_V_BOOL,    /* i: 0 or 1 */
    TSD_V_INT,     /* i: integer, datetime (ms), bigInt within int64, integer key */
    TSD_V_DOUBLE,  /* d */
    TSD_V_TEXT,    /* p, n: UTF-8 bytes (text, string key); not NUL-terminated */
    TSD_V_BLOB,    /* p, n: bytes */
    TSD_V_BIGDEC,  /* bigInt outside int64: p, n decimal digits (no leading 0), neg */
    TSD_V_JSON,    /* array/json: p, n compact JSON text */
    TSD_V_VECTOR   /* p, n: packed elements in the field's precision (little
                      endian float32 / IEEE half / int8), dims, scale (int8) */
} tsd_vkind;

/* A decoded value.  p points into the row (tsd_row_field), into the JSON
 * value it came from, or into mem, which the value owns: release it with
 * tsd_value_clear.  A value that borrows lives as long as what it borrows. */
typedef struct tsd_value {
    tsd_vkind   kind;
    int         neg;    /* TSD_V_BIGDEC: negative */
    int64_t     i;      /* also: TSD_V_JSON of an array from tsd_value_from_json: its
                           element count (for maxLength; 0 when read from a row) */
    double      d;
    const void *p;
    size_t      n;
    uint32_t    dims;   /* TSD_V_VECTOR */
    float       scale;  /* TSD_V_VECTOR, int8: element = q * scale */
    void       *mem;    /* owned memory (malloc), or NULL */
} tsd_value;

/* Release what v owns and make it TSD_V_NULL; accepts NULL. */
void tsd_value_clear(tsd_value *v);

/* Convert a JSON value to f's type under the record rules (strict: "20" is
 * not an integer).  JSON null (or in == NULL) gives TSD_V_NULL: nullability
 * is the caller's business.  Errors: TS_ERR_VALIDATION (wrong type, bad
 * text, out of range for the type, wrong vector dimension, an unevaluated
 * {"$expr": ...} object), TS_ERR_RESOURCE (size or depth limits),
 * TS_ERR_NOMEM.  min/max constraints are not checked here (see
 * tsd_value_check).  The result may borrow from in. */
int tsd_value_from_json(ts_env *env, const tsd_field *f, const json_t *in, tsd_value *out);

/* Check v (of f's type, not null) against f's minLength/maxLength and
 * minValue/maxValue: TS_ERR_VALIDATION naming the bound. */
int tsd_value_check(ts_env *env, const tsd_field *f, const tsd_value *v);

/* The JSON form of v as records return it: datetime as ISO-8601 UTC with
 * milliseconds, blob as padded standard base64, bigInt as an integer when it
 * fits int64 else a decimal string, double as a real, vectors as arrays of
 * reals.  *out_new is a new reference.  TS_ERR_CORRUPT when v's payload does
 * not fit f (e.g. bad JSON text), TS_ERR_NOMEM. */
int tsd_value_to_json(ts_env *env, const tsd_field *f, const tsd_value *v, json_t **out_new);

/* The dimensions floats of a vector value v of f (decoded from f's
 * precision) into out.  TS_ERR_CORRUPT when v does not fit f. */
int tsd_vector_floats(ts_env *env, const tsd_field *f, const tsd_value *v, float *out);

/* Coerce a query value to f's type: the record rules, plus
 *  - integer, bigInt, datetime (as ms): a string holding a decimal integer;
 *  - double: a string holding a finite decimal number;
 *  - text: a JSON integer (its decimal form);
 *  - boolean: "true"/"false", 0/1;
 *  - the primary key without declared type: integral reals become
 *    integers; for sequential/timestampBased keys a decimal string becomes
 *    an integer, for datePrefixed/shortCode an integer becomes a string.
 * Null stays null.  *out_new (new reference) is in the normalized form
 * records have.  Impossible: TS_ERR_VALIDATION. */
int tsd_coerce(ts_env *env, const tsd_field *f, const json_t *in, json_t **out_new);

/* Whether values of f can be part of an index key (not array, json, vector). */
int tsd_type_indexable(tsd_type type);

/* Append the memcomparable encoding of v (a value of f) at *off in dst (cap
 * bytes; nothing is written past cap, so cap 0 measures) and advance *off.
 * integer, datetime, integer keys: TS_KEY_INT; double: TS_KEY_DOUBLE;
 * text, string keys: TS_KEY_TEXT; boolean; null: TS_KEY_NULL; blob:
 * TS_KEY_BLOB; bigInt: TS_KEY_BLOB holding an order-preserving decimal form
 * (docs/schema.md), so that all bigInt values, of any length, sort
 * numerically.  Integer keys sort before string keys.
 * TS_ERR_VALIDATION for types that cannot be indexed. */
int tsd_value_key(ts_env *env, const tsd_field *f, const tsd_value *v,
                  uint8_t *dst, size_t cap, size_t *off);

/* Same from a JSON value valid for f (tsd_coerce or tsd_record_validate
 * output; null allowed). */
int tsd_json_key(ts_env *env, const tsd_field *f, const json_t *in,
                 uint8_t *dst, size_t cap, size_t *off);

/* The key of a primary-key value as given (JSON integer, integral real or
 * string): integers numerically, before strings.  TS_ERR_VALIDATION for
 * other types. */
int tsd_pk_key(ts_env *env, const json_t *pk, uint8_t *dst, size_t cap, size_t *off);

/* Compare two non-null values of f in the order of their keys (<0, 0, >0);
 * array/json/vector values compare by their bytes. */
int tsd_value_cmp(const tsd_field *f, const tsd_value *a, const tsd_value *b);

/* ---- helpers of the value rules, exposed for tests and the query engine -- */

/* Parse ISO-8601 "YYYY-MM-DD[(T| )hh:mm[:ss[.f{1,9}]]][Z|z|(+|-)hh[[:]mm]]"
 * (no offset: UTC; digits beyond milliseconds dropped, toward the past).
 * 0 on success, -1 when malformed or out of range. */
int tsd_datetime_parse(const char *s, size_t n, int64_t *ms_out);
/* Format ms (within the datetime range) as "YYYY-MM-DDTHH:MM:SS.mmmZ";
 * returns the length (24), 0 when out of range. */
size_t tsd_datetime_format(int64_t ms, char out[TSD_DATETIME_BUF]);

/* Decode standard base64 (padding optional, no whitespace, unused bits
 * zero).  out needs n/4*3+3 bytes.  0 on success, -1 when malformed. */
int tsd_base64_decode(const char *s, size_t n, uint8_t *out, size_t *len_out);
/* Padded standard base64 of p[0..n); out needs tsd_base64_len(n)+1 bytes
 * (NUL-terminated). */
size_t tsd_base64_len(size_t n);
void   tsd_base64_encode(const void *p, size_t n, char *out);

/* Code points of valid UTF-8 (no overlongs, surrogates or values above
 * U+10FFFF; NUL allowed), -1 when invalid. */
int64_t tsd_utf8_count(const char *s, size_t n);

/* Parse a decimal integer "[-]digits" (n bytes, no sign '+', no spaces).
 * Sets *neg and the digits without leading zeros (*d points into s; *dn 0
 * for zero).  0 on success, -1 when malformed. */
int tsd_decimal_parse(const char *s, size_t n, int *neg, const char **d, size_t *dn);

/* IEEE half <-> float. */
uint16_t tsd_f32_to_f16(float f);
float    tsd_f16_to_f32(uint16_t h);

#endif
