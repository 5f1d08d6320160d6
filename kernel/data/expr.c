/* Expressions of atomic updates.  See data/expr.h and docs/expressions.md.
 *
 * Evaluation works on xval, a small tagged value that borrows strings,
 * arrays and objects from the expression or the row, so that evaluating
 * allocates nothing until the result is turned back into JSON.  Where an
 * error happened is kept as a chain of stack frames and only formatted into
 * a path when there is an error to report. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "data/value.h"
#include "data/expr.h"

/* ---- operators ----------------------------------------------------------- */

typedef enum xop {
    X_FIELD, X_VALUE, X_ADD, X_SUB, X_MUL, X_DIV, X_MOD, X_NEG, X_MIN, X_MAX, X_ROUND, X_FLOOR,
    X_CEIL, X_ABS, X_NOW, X_IF, X_EQ, X_NE, X_LT, X_LE, X_GT, X_GE, X_AND, X_OR, X_NOT,
    X_IS_UPDATE, X_IS_INSERT
} xop;

static const struct {
    const char *name;
    int         nargs;
} OPS[] = {
    [X_FIELD] = {"field", 1},     [X_VALUE] = {"value", 1},   [X_ADD] = {"+", 2},
    [X_SUB] = {"-", 2},           [X_MUL] = {"*", 2},         [X_DIV] = {"/", 2},
    [X_MOD] = {"%", 2},           [X_NEG] = {"neg", 1},       [X_MIN] = {"min", 2},
    [X_MAX] = {"max", 2},         [X_ROUND] = {"round", 1},   [X_FLOOR] = {"floor", 1},
    [X_CEIL] = {"ceil", 1},       [X_ABS] = {"abs", 1},       [X_NOW] = {"now", 0},
    [X_IF] = {"if", 3},           [X_EQ] = {"=", 2},          [X_NE] = {"!=", 2},
    [X_LT] = {"<", 2},            [X_LE] = {"<=", 2},         [X_GT] = {">", 2},
    [X_GE] = {">=", 2},           [X_AND] = {"and", 2},       [X_OR] = {"or", 2},
    [X_NOT] = {"not", 1},         [X_IS_UPDATE] = {"isUpdate", 0},
    [X_IS_INSERT] = {"isInsert", 0},
};
#define NOPS (sizeof OPS / sizeof OPS[0])

/* The operator named by the JSON string s, -1 if none. */
static int op_lookup(const json_t *s)
{
    const char *p = json_string_value(s);
    size_t n = json_string_length(s);
    for (size_t i = 0; i < NOPS; i++)
        if (strlen(OPS[i].name) == n && memcmp(OPS[i].name, p, n) == 0) return (int)i;
    return -1;
}

/* ---- where: a chain of frames, formatted only for messages ---------------- */

/* One expression being checked or evaluated: the root (up NULL) or
 * argument idx of the expression up. */
typedef struct xframe {
    const struct xframe *up;
    size_t               idx;
} xframe;

/* "$expr", "$expr[2].$expr", ... and, when elem >= 0, "[elem]" after it. */
static void path_fmt(const xframe *f, long elem, char *buf, size_t cap)
{
    size_t idx[TSX_DEPTH_MAX + 2];
    size_t n = 0;
    for (; f && f->up && n < sizeof idx / sizeof idx[0]; f = f->up) idx[n++] = f->idx;
    size_t off = 0;
    int w = snprintf(buf, cap, "$expr");
    off = w > 0 ? (size_t)w : 0;
    while (n > 0 && off < cap) {
        w = snprintf(buf + off, cap - off, "[%zu].$expr", idx[--n]);
        off += w > 0 ? (size_t)w : 0;
    }
    if (elem >= 0 && off < cap) snprintf(buf + off, cap - off, "[%ld]", elem);
}

static int xerr(ts_env *env, int code, const xframe *f, long elem, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static int xerr(ts_env *env, int code, const xframe *f, long elem, const char *fmt, ...)
{
    char path[1024], msg[512];
    path_fmt(f, elem, path, sizeof path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tsenv_error(env, code, "%s: %s", path, msg);
}

#define BAD(f, elem, ...) xerr(env, TS_ERR_VALIDATION, f, elem, __VA_ARGS__)

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a real";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    case JSON_NULL:    return "null";
    }
    return "?";
}

/* ---- recognizing and checking --------------------------------------------- */

int tsx_is_expr(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "$expr") != NULL;
}

int tsx_has_expr(const json_t *changes)
{
    if (!json_is_object(changes)) return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)changes, k, v)
        if (tsx_is_expr(v)) return 1;
    return 0;
}

static int check_node(ts_env *env, const json_t *e, const xframe *f, int depth)
{
    if (depth > TSX_DEPTH_MAX)
        return BAD(f, -1, "expressions nested deeper than %d levels", TSX_DEPTH_MAX);
    const json_t *a = json_object_get(e, "$expr");
    if (!json_is_array(a))
        return BAD(f, -1, "expected an array [operator, argument...], got %s", json_kind(a));
    size_t n = json_array_size(a);
    if (n == 0) return BAD(f, -1, "expected an array [operator, argument...], got []");
    const json_t *o = json_array_get(a, 0);
    if (!json_is_string(o))
        return BAD(f, 0, "the operator must be a string, got %s", json_kind(o));
    int op = op_lookup(o);
    if (op < 0) return BAD(f, 0, "unknown operator '%.64s'", json_string_value(o));
    if (n - 1 != (size_t)OPS[op].nargs)
        return BAD(f, -1, "'%s' takes %d argument%s, got %zu", OPS[op].name, OPS[op].nargs,
                   OPS[op].nargs == 1 ? "" : "s", n - 1);
    if (op == X_VALUE) return TS_OK; /* any literal, never evaluated further */
    if (op == X_FIELD) {
        const json_t *name = json_array_get(a, 1);
        if (!json_is_string(name))
            return BAD(f, 1, "'field' takes a field name (a string), got %s", json_kind(name));
        if (json_string_length(name) == 0 ||
            strlen(json_string_value(name)) != json_string_length(name))
            return BAD(f, 1, "'%s' is not a field name", json_string_value(name));
        return TS_OK;
    }
    for (size_t i = 1; i < n; i++) {
        const json_t *x = json_array_get(a, i);
        if (tsx_is_expr(x)) {
            xframe sub = {f, i};
            int rc = check_node(env, x, &sub, depth + 1);
            if (rc) return rc;
        } else if (json_is_array(x) || json_is_object(x)) {
            return BAD(f, (long)i, "%s is not an expression; write a literal as "
                       "{\"$expr\": [\"value\", ...]}", json_kind(x));
        }
    }
    return TS_OK;
}

int tsx_check(ts_env *env, const json_t *e)
{
    if (!tsx_is_expr(e))
        return tsenv_error(env, TS_ERR_VALIDATION,
                           "not an expression: expected an object whose only key is \"$expr\"");
    xframe root = {NULL, 0};
    return check_node(env, e, &root, 1);
}

/* ---- values during evaluation --------------------------------------------- */

typedef enum xkind { XV_NULL = 0, XV_BOOL, XV_INT, XV_REAL, XV_STR, XV_JSON } xkind;

/* XV_BOOL, XV_INT: i.  XV_REAL: d (finite).  XV_STR: the JSON string j, or
 * when j is NULL the datetime i (ms) as tsd_datetime_format writes it (the
 * value of "now").  XV_JSON: the array or object j.  j is borrowed. */
typedef struct xval {
    xkind         k;
    int64_t       i;
    double        d;
    const json_t *j;
} xval;

static void from_json(const json_t *v, xval *out)
{
    memset(out, 0, sizeof *out);
    if (!v) return;
    switch (json_typeof(v)) {
    case JSON_NULL:    out->k = XV_NULL; break;
    case JSON_TRUE:    out->k = XV_BOOL; out->i = 1; break;
    case JSON_FALSE:   out->k = XV_BOOL; out->i = 0; break;
    case JSON_INTEGER: out->k = XV_INT; out->i = json_integer_value(v); break;
    case JSON_REAL:    out->k = XV_REAL; out->d = json_real_value(v); break;
    case JSON_STRING:  out->k = XV_STR; out->j = v; break;
    case JSON_ARRAY:
    case JSON_OBJECT:  out->k = XV_JSON; out->j = v; break;
    }
}

static const char *xkind_name(const xval *v)
{
    switch (v->k) {
    case XV_NULL: return "null";
    case XV_BOOL: return "a boolean";
    case XV_INT:
    case XV_REAL: return "a number";
    case XV_STR:  return "a string";
    case XV_JSON: return json_is_array(v->j) ? "an array" : "an object";
    }
    return "?";
}

static int is_num(const xval *v) { return v->k == XV_INT || v->k == XV_REAL; }
static double num_d(const xval *v) { return v->k == XV_INT ? (double)v->i : v->d; }

/* The bytes of a string value; buf holds them for a datetime. */
static void str_of(const xval *v, char buf[TSD_DATETIME_BUF], const char **s, size_t *n)
{
    if (v->j) {
        *s = json_string_value(v->j);
        *n = json_string_length(v->j);
    } else {
        *n = tsd_datetime_format(v->i, buf);
        *s = buf;
    }
}

static int str_cmp(const xval *a, const xval *b)
{
    char ba[TSD_DATETIME_BUF], bb[TSD_DATETIME_BUF];
    const char *sa, *sb;
    size_t na, nb;
    str_of(a, ba, &sa, &na);
    str_of(b, bb, &sb, &nb);
    int c = memcmp(sa, sb, na < nb ? na : nb);
    if (c) return c < 0 ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

/* Exact order of an integer and a finite real. */
static int cmp_int_real(int64_t i, double d)
{
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    double t = trunc(d);
    int64_t ti = (int64_t)t;
    if (i != ti) return i < ti ? -1 : 1;
    double frac = d - t; /* exact */
    return frac > 0 ? -1 : frac < 0;
}

static int num_cmp(const xval *a, const xval *b)
{
    if (a->k == XV_INT && b->k == XV_INT) return a->i < b->i ? -1 : a->i > b->i;
    if (a->k == XV_REAL && b->k == XV_REAL) return a->d < b->d ? -1 : a->d > b->d;
    if (a->k == XV_INT) return cmp_int_real(a->i, b->d);
    return -cmp_int_real(b->i, a->d);
}

/* A real that is an integer within int64: 0 and *out; else -1. */
static int real_in_int64(double d, int64_t *out)
{
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return -1;
    *out = (int64_t)d;
    return 0;
}

/* The JSON of a value: a new reference (NULL when out of memory). */
static json_t *to_json(const xval *v)
{
    switch (v->k) {
    case XV_NULL: return json_null();
    case XV_BOOL: return json_boolean(v->i);
    case XV_INT:  return json_integer((json_int_t)v->i);
    case XV_REAL: return json_real(v->d);
    case XV_STR: {
        char buf[TSD_DATETIME_BUF];
        const char *s;
        size_t n;
        str_of(v, buf, &s, &n);
        return json_stringn_nocheck(s, n);
    }
    case XV_JSON: return json_deep_copy(v->j);
    }
    return NULL;
}

/* ---- evaluation ------------------------------------------------------------ */

typedef struct xctx {
    ts_env       *env;
    const json_t *row;
    int           is_update;
    int64_t       now_ms;
} xctx;

static int eval_node(xctx *c, const json_t *e, const xframe *f, xval *out);

/* Argument i of the expression array a (of the frame f). */
static int eval_arg(xctx *c, const json_t *a, size_t i, const xframe *f, xval *out)
{
    const json_t *x = json_array_get(a, i);
    if (tsx_is_expr(x)) {
        xframe sub = {f, i};
        return eval_node(c, x, &sub, out);
    }
    from_json(x, out);
    return TS_OK;
}

/* Truth of a condition: 1 true, 0 false, -1 null (unknown). */
static int truth(xctx *c, const xframe *f, xop op, const xval *v, int *t)
{
    ts_env *env = c->env;
    switch (v->k) {
    case XV_NULL: *t = -1; return TS_OK;
    case XV_BOOL:
    case XV_INT:  *t = v->i != 0; return TS_OK;
    case XV_REAL: *t = v->d != 0; return TS_OK;
    default:
        return BAD(f, -1, "'%s' needs a boolean, a number or null, got %s", OPS[op].name,
                   xkind_name(v));
    }
}

static int set_real(xctx *c, const xframe *f, double d, xval *out)
{
    ts_env *env = c->env;
    if (!isfinite(d)) return BAD(f, -1, "the result is not a finite number");
    out->k = XV_REAL;
    out->d = d;
    return TS_OK;
}

static int arith(xctx *c, const xframe *f, xop op, const xval *a, const xval *b, xval *out)
{
    ts_env *env = c->env;
    if (a->k == XV_NULL || b->k == XV_NULL) { out->k = XV_NULL; return TS_OK; }
    if (!is_num(a) || !is_num(b))
        return BAD(f, -1, "'%s' needs numbers, got %s", OPS[op].name,
                   xkind_name(is_num(a) ? b : a));
    if (a->k == XV_INT && b->k == XV_INT) {
        int64_t x = a->i, y = b->i, r = 0;
        int ovf = 0;
        switch (op) {
        case X_ADD: ovf = __builtin_add_overflow(x, y, &r); break;
        case X_SUB: ovf = __builtin_sub_overflow(x, y, &r); break;
        case X_MUL: ovf = __builtin_mul_overflow(x, y, &r); break;
        case X_DIV:
            if (y == 0) return BAD(f, -1, "division by zero");
            if (x == INT64_MIN && y == -1) { ovf = 1; break; }
            if (x % y != 0) {
                /* inexact: a real; q + r/y keeps the precision of large x */
                return set_real(c, f, (double)(x / y) + (double)(x % y) / (double)y, out);
            }
            r = x / y;
            break;
        case X_MOD:
            if (y == 0) return BAD(f, -1, "division by zero");
            r = y == -1 ? 0 : x % y; /* INT64_MIN % -1 is undefined in C */
            break;
        default: break;
        }
        if (ovf) return BAD(f, -1, "integer overflow");
        out->k = XV_INT;
        out->i = r;
        return TS_OK;
    }
    double x = num_d(a), y = num_d(b), r = 0;
    switch (op) {
    case X_ADD: r = x + y; break;
    case X_SUB: r = x - y; break;
    case X_MUL: r = x * y; break;
    case X_DIV:
        if (y == 0) return BAD(f, -1, "division by zero");
        r = x / y;
        break;
    case X_MOD:
        if (y == 0) return BAD(f, -1, "division by zero");
        r = fmod(x, y);
        break;
    default: break;
    }
    return set_real(c, f, r, out);
}

static int unary(xctx *c, const xframe *f, xop op, const xval *a, xval *out)
{
    ts_env *env = c->env;
    if (a->k == XV_NULL) { out->k = XV_NULL; return TS_OK; }
    if (!is_num(a)) return BAD(f, -1, "'%s' needs a number, got %s", OPS[op].name, xkind_name(a));
    if (a->k == XV_INT) {
        out->k = XV_INT;
        out->i = a->i;
        if (op == X_NEG || (op == X_ABS && a->i < 0)) {
            if (a->i == INT64_MIN) return BAD(f, -1, "integer overflow");
            out->i = -a->i;
        }
        return TS_OK;
    }
    double d = a->d, r;
    switch (op) {
    case X_NEG:   return set_real(c, f, -d, out);
    case X_ABS:   return set_real(c, f, fabs(d), out);
    case X_ROUND: r = round(d); break; /* half away from zero */
    case X_FLOOR: r = floor(d); break;
    default:      r = ceil(d); break;
    }
    /* an integral result is an integer when it fits, else stays a real */
    int64_t i;
    if (real_in_int64(r, &i) == 0) {
        out->k = XV_INT;
        out->i = i;
        return TS_OK;
    }
    return set_real(c, f, r, out);
}

static int minmax(xctx *c, const xframe *f, xop op, const xval *a, const xval *b, xval *out)
{
    ts_env *env = c->env;
    if (a->k == XV_NULL || b->k == XV_NULL) { out->k = XV_NULL; return TS_OK; }
    int cmp;
    if (is_num(a) && is_num(b)) cmp = num_cmp(a, b);
    else if (a->k == XV_STR && b->k == XV_STR) cmp = str_cmp(a, b);
    else
        return BAD(f, -1, "'%s' needs two numbers or two strings, got %s and %s", OPS[op].name,
                   xkind_name(a), xkind_name(b));
    const xval *pick = ((op == X_MIN) == (cmp <= 0)) ? a : b;
    *out = *pick;
    if (is_num(a) && (a->k == XV_REAL || b->k == XV_REAL) && pick->k == XV_INT) {
        out->k = XV_REAL; /* mixing with a real gives a real */
        out->d = (double)pick->i;
    }
    return TS_OK;
}

static int compare(xctx *c, const xframe *f, xop op, const xval *a, const xval *b, xval *out)
{
    ts_env *env = c->env;
    if (a->k == XV_NULL || b->k == XV_NULL) { out->k = XV_NULL; return TS_OK; }
    int cmp, same = 1;
    if (is_num(a) && is_num(b)) cmp = num_cmp(a, b);
    else if (a->k != b->k) { same = 0; cmp = 1; }
    else if (a->k == XV_BOOL) cmp = (a->i != 0) - (b->i != 0);
    else if (a->k == XV_STR) cmp = str_cmp(a, b);
    else {
        if (op != X_EQ && op != X_NE)
            return BAD(f, -1, "'%s' cannot order %s", OPS[op].name, xkind_name(a));
        cmp = json_equal(a->j, b->j) ? 0 : 1;
    }
    if (!same && op != X_EQ && op != X_NE)
        return BAD(f, -1, "'%s' cannot compare %s with %s", OPS[op].name, xkind_name(a),
                   xkind_name(b));
    int r = 0;
    switch (op) {
    case X_EQ: r = cmp == 0; break;
    case X_NE: r = cmp != 0; break;
    case X_LT: r = cmp < 0; break;
    case X_LE: r = cmp <= 0; break;
    case X_GT: r = cmp > 0; break;
    default:   r = cmp >= 0; break;
    }
    out->k = XV_BOOL;
    out->i = r;
    return TS_OK;
}

static int eval_node(xctx *c, const json_t *e, const xframe *f, xval *out)
{
    ts_env *env = c->env;
    const json_t *a = json_object_get(e, "$expr");
    xop op = (xop)op_lookup(json_array_get(a, 0));
    xval x, y;
    int rc, t, u;
    memset(out, 0, sizeof *out);
    switch (op) {
    case X_FIELD:
        from_json(c->row ? json_object_get(c->row, json_string_value(json_array_get(a, 1)))
                         : NULL, out);
        return TS_OK;
    case X_VALUE:
        from_json(json_array_get(a, 1), out);
        return TS_OK;
    case X_ADD: case X_SUB: case X_MUL: case X_DIV: case X_MOD:
    case X_MIN: case X_MAX:
    case X_EQ: case X_NE: case X_LT: case X_LE: case X_GT: case X_GE:
        if ((rc = eval_arg(c, a, 1, f, &x)) || (rc = eval_arg(c, a, 2, f, &y))) return rc;
        if (op == X_MIN || op == X_MAX) return minmax(c, f, op, &x, &y, out);
        if (op >= X_EQ) return compare(c, f, op, &x, &y, out);
        return arith(c, f, op, &x, &y, out);
    case X_NEG: case X_ROUND: case X_FLOOR: case X_CEIL: case X_ABS:
        if ((rc = eval_arg(c, a, 1, f, &x))) return rc;
        return unary(c, f, op, &x, out);
    case X_NOW:
        if (c->now_ms < TSD_DATETIME_MIN_MS || c->now_ms > TSD_DATETIME_MAX_MS)
            return BAD(f, -1, "now (%lld ms) is outside years 0000-9999",
                       (long long)c->now_ms);
        out->k = XV_STR;
        out->i = c->now_ms;
        return TS_OK;
    case X_IF:
        if ((rc = eval_arg(c, a, 1, f, &x)) || (rc = truth(c, f, op, &x, &t))) return rc;
        return eval_arg(c, a, t == 1 ? 2 : 3, f, out);
    case X_AND: case X_OR: {
        /* SQL three-valued logic, short-circuiting left to right */
        int stop = op == X_OR; /* the value that decides alone */
        if ((rc = eval_arg(c, a, 1, f, &x)) || (rc = truth(c, f, op, &x, &t))) return rc;
        if (t == stop) { out->k = XV_BOOL; out->i = stop; return TS_OK; }
        if ((rc = eval_arg(c, a, 2, f, &y)) || (rc = truth(c, f, op, &y, &u))) return rc;
        if (u == stop) { out->k = XV_BOOL; out->i = stop; return TS_OK; }
        if (t < 0 || u < 0) { out->k = XV_NULL; return TS_OK; }
        out->k = XV_BOOL;
        out->i = !stop;
        return TS_OK;
    }
    case X_NOT:
        if ((rc = eval_arg(c, a, 1, f, &x)) || (rc = truth(c, f, op, &x, &t))) return rc;
        if (t < 0) out->k = XV_NULL;
        else { out->k = XV_BOOL; out->i = !t; }
        return TS_OK;
    case X_IS_UPDATE:
    case X_IS_INSERT:
        out->k = XV_BOOL;
        out->i = (op == X_IS_UPDATE) == (c->is_update != 0);
        return TS_OK;
    }
    return BAD(f, 0, "unknown operator"); /* not reached after check_node */
}

static int eval_checked(ts_env *env, const json_t *e, const json_t *row, int is_update,
                        int64_t now_ms, json_t **out_new)
{
    xctx c = {env, json_is_object(row) ? row : NULL, is_update, now_ms};
    xframe root = {NULL, 0};
    xval v;
    int rc = eval_node(&c, e, &root, &v);
    if (rc) return rc;
    json_t *j = to_json(&v);
    if (!j) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    *out_new = j;
    return TS_OK;
}

int tsx_eval(ts_env *env, const json_t *e, const json_t *row, int is_update, int64_t now_ms,
             json_t **out_new)
{
    if (!out_new) return tsenv_error(env, TS_ERR_INVALID, "out_new is NULL");
    *out_new = NULL;
    int rc = tsx_check(env, e);
    if (rc) return rc;
    return eval_checked(env, e, row, is_update, now_ms, out_new);
}

/* ---- applying to changes ---------------------------------------------------- */

/* Every "field" of the checked expression e names a column of t. */
static int fields_check(ts_env *env, const tsd_table *t, const json_t *e, const xframe *f)
{
    const json_t *a = json_object_get(e, "$expr");
    int op = op_lookup(json_array_get(a, 0));
    if (op == X_VALUE) return TS_OK;
    if (op == X_FIELD) {
        const char *name = json_string_value(json_array_get(a, 1));
        if (tsd_table_col(t, name) < 0)
            return BAD(f, 1, "unknown field '%.128s' of table %s", name, t->name);
        return TS_OK;
    }
    for (size_t i = 1; i < json_array_size(a); i++) {
        const json_t *x = json_array_get(a, i);
        if (!tsx_is_expr(x)) continue;
        xframe sub = {f, i};
        int rc = fields_check(env, t, x, &sub);
        if (rc) return rc;
    }
    return TS_OK;
}

/* Whether values of f are integers (reals assigned to it get rounded). */
static int int_column(const tsd_field *f)
{
    if (f->type == TSD_INTEGER || f->type == TSD_BIGINT) return 1;
    return f->is_pk && f->type == TSD_KEY &&
           (f->pk_type == TSD_PK_SEQUENTIAL || f->pk_type == TSD_PK_TIMESTAMP);
}

static int apply_one(ts_env *env, const tsd_table *t, const char *key, const json_t *e,
                     const json_t *row, int is_update, int64_t now_ms, json_t **out_new)
{
    xframe root = {NULL, 0};
    int rc;
    if ((rc = tsx_check(env, e)) || (rc = fields_check(env, t, e, &root)) ||
        (rc = eval_checked(env, e, row, is_update, now_ms, out_new)))
        return rc;
    long col = tsd_table_col(t, key);
    if (!json_is_real(*out_new) || !int_column(tsd_table_field(t, (size_t)col))) return TS_OK;
    double r = round(json_real_value(*out_new)); /* half away from zero */
    int64_t i;
    json_t *j = NULL;
    if (real_in_int64(r, &i) == 0 && !(j = json_integer((json_int_t)i)))
        rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    else if (!j)
        rc = tsenv_error(env, TS_ERR_VALIDATION, "%.17g rounds outside the integer range",
                         json_real_value(*out_new));
    json_decref(*out_new);
    *out_new = j;
    return rc;
}

int tsx_apply(ts_env *env, const tsd_table *t, const json_t *changes, const json_t *row,
              int is_update, int64_t now_ms, json_t **out_new)
{
    if (!out_new) return tsenv_error(env, TS_ERR_INVALID, "out_new is NULL");
    *out_new = NULL;
    if (!t) return tsenv_error(env, TS_ERR_INVALID, "table is NULL");
    if (!json_is_object(changes))
        return tsenv_error(env, TS_ERR_INVALID, "changes must be an object");
    json_t *out = json_object();
    if (!out) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)changes, key, v) {
        json_t *nv;
        if (tsx_is_expr(v) && tsd_table_col(t, key) >= 0) {
            int rc = apply_one(env, t, key, v, row, is_update, now_ms, &nv);
            if (rc) {
                tsenv_error_prefix(env, "%s.%s", t->name, key);
                json_decref(out);
                return rc;
            }
        } else {
            nv = json_incref(v);
        }
        if (json_object_set_new(out, key, nv)) {
            json_decref(out);
            return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
        }
    }
    *out_new = out;
    return TS_OK;
}
