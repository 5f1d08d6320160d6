/*
 * data/expr.h - expressions of atomic updates: values of `changes` of the
 * form {"$expr": [op, arg...]}, evaluated inside the write against the row
 * being changed.  The JSON form, every operator, the null and number rules
 * and every error are documented in docs/expressions.md.
 *
 * Pure functions: no storage, no global state; thread-safe.  Functions that
 * take an env record the error message there (tsenv_error) and return its
 * code.  Messages name where in the expression the problem is, as a path
 * from the expression object, e.g.
 *     $expr[2].$expr[0]: unknown operator 'pow'
 * (tsx_apply prefixes "<table>.<field>: ").
 */
#ifndef TS_DATA_EXPR_H
#define TS_DATA_EXPR_H

#include <stdint.h>
#include <jansson.h>
#include "base/env.h"
#include "data/schema.h"

/* Deepest nesting of expressions: {"$expr": [...]} alone is depth 1; each
 * expression used as an argument adds one.  Literal arguments do not count. */
#define TSX_DEPTH_MAX 64

/* Whether v is an expression: an object whose only key is "$expr" (its
 * shape is not checked; see tsx_check).  v may be NULL. */
int tsx_is_expr(const json_t *v);

/* Whether some value of the object changes is an expression (0 when changes
 * is not an object or is NULL). */
int tsx_has_expr(const json_t *changes);

/* Check the shape of the expression e (tsx_is_expr(e) must hold, else
 * TS_ERR_VALIDATION): "$expr" is a non-empty array whose first element is a
 * known operator, each operator has its number of arguments, "field" names a
 * string, arguments are expressions or scalar literals (bare arrays and
 * objects must be wrapped in "value"), nesting is at most TSX_DEPTH_MAX.
 * TS_OK or TS_ERR_VALIDATION naming the problem. */
int tsx_check(ts_env *env, const json_t *e);

/* Evaluate the expression e (checked first with tsx_check, so malformed
 * input is an error, never undefined behaviour).
 *  row:       the row's current values, a JSON object (on update the stored
 *             row, on insert the record being inserted); a field absent or
 *             null there evaluates to null.  NULL: every field is null.
 *  is_update: 1 when updating a stored row, 0 when inserting (what
 *             "isUpdate" / "isInsert" report).
 *  now_ms:    what "now" reports (ms since the epoch, UTC), so that every
 *             expression of one write sees one instant.
 * *out_new: the value, a new reference (never sharing with e or row).
 * Errors: TS_ERR_VALIDATION ("division by zero", "integer overflow",
 * operand types, a result that is not a finite number, ...), TS_ERR_NOMEM;
 * *out_new is NULL then. */
int tsx_eval(ts_env *env, const json_t *e, const json_t *row, int is_update, int64_t now_ms,
             json_t **out_new);

/* A new object (*out_new, a new reference) equal to the object changes with
 * each expression value replaced by its value (tsx_eval, same row,
 * is_update and now_ms).  Keys that name no column of t are passed through
 * unchanged (the record validator reports them); a "field" naming no column
 * of t is TS_ERR_VALIDATION.  When the target column is an integer column
 * (integer or bigInt, or the primary key with a sequential or
 * timestampBased generator) and the value is a real, it is rounded half away
 * from zero (2.5 -> 3, -2.5 -> -3); a result outside int64 is
 * TS_ERR_VALIDATION.  Messages are prefixed "<table>.<key>: ".
 * Errors: TS_ERR_INVALID (NULL t or out_new, changes not an object),
 * TS_ERR_VALIDATION, TS_ERR_NOMEM; *out_new is NULL then. */
int tsx_apply(ts_env *env, const tsd_table *t, const json_t *changes, const json_t *row,
              int is_update, int64_t now_ms, json_t **out_new);

#endif
