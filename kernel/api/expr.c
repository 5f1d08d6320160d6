/* The expression builders of tostore.h (ts_expr_*): each returns
 * {"$expr": [op, arg...]} as documented in docs/expressions.md, a new
 * reference, and owns its json_t arguments from the call on, also when it
 * fails (they are released then).  No state: thread-safe. */
#include <string.h>
#include <tostore/tostore.h>

/* {"$expr": [op, args[0..n)]}; releases every non-NULL args[i] on failure. */
static json_t *mk(const char *op, json_t **args, size_t n)
{
    size_t i = 0;
    json_t *o = NULL, *a = NULL;
    for (size_t k = 0; k < n; k++)
        if (!args[k]) goto fail;
    if (!op || !(a = json_array()) || json_array_append_new(a, json_string(op))) goto fail;
    for (; i < n; i++) {
        if (json_array_append_new(a, args[i])) { /* released args[i] */
            i++;
            goto fail;
        }
    }
    if (!(o = json_object())) goto fail;
    if (json_object_set_new(o, "$expr", a)) { /* released a */
        a = NULL;
        goto fail;
    }
    return o;
fail:
    for (; i < n; i++) json_decref(args[i]);
    json_decref(a);
    json_decref(o);
    return NULL;
}

static json_t *mk1(const char *op, json_t *a) { json_t *v[1] = {a}; return mk(op, v, 1); }
static json_t *mk2(const char *op, json_t *a, json_t *b)
{
    json_t *v[2] = {a, b};
    return mk(op, v, 2);
}

json_t *ts_expr_field(const char *name)
{
    return name ? mk1("field", json_string(name)) : NULL;
}

json_t *ts_expr_value(json_t *v)        { return mk1("value", v); }
json_t *ts_expr_add(json_t *a, json_t *b) { return mk2("+", a, b); }
json_t *ts_expr_sub(json_t *a, json_t *b) { return mk2("-", a, b); }
json_t *ts_expr_mul(json_t *a, json_t *b) { return mk2("*", a, b); }
json_t *ts_expr_div(json_t *a, json_t *b) { return mk2("/", a, b); }
json_t *ts_expr_mod(json_t *a, json_t *b) { return mk2("%", a, b); }
json_t *ts_expr_neg(json_t *a)          { return mk1("neg", a); }
json_t *ts_expr_min(json_t *a, json_t *b) { return mk2("min", a, b); }
json_t *ts_expr_max(json_t *a, json_t *b) { return mk2("max", a, b); }
json_t *ts_expr_round(json_t *a)        { return mk1("round", a); }
json_t *ts_expr_floor(json_t *a)        { return mk1("floor", a); }
json_t *ts_expr_ceil(json_t *a)         { return mk1("ceil", a); }
json_t *ts_expr_abs(json_t *a)          { return mk1("abs", a); }
json_t *ts_expr_now(void)               { return mk("now", NULL, 0); }
json_t *ts_expr_is_update(void)         { return mk("isUpdate", NULL, 0); }
json_t *ts_expr_is_insert(void)         { return mk("isInsert", NULL, 0); }
json_t *ts_expr_not(json_t *a)          { return mk1("not", a); }

json_t *ts_expr_if(json_t *cond, json_t *then_, json_t *else_)
{
    json_t *v[3] = {cond, then_, else_};
    return mk("if", v, 3);
}

json_t *ts_expr_cmp(const char *op, json_t *a, json_t *b)
{
    static const char *const ops[] = {"=", "!=", "<", "<=", ">", ">=", "and", "or"};
    for (size_t i = 0; op && i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i]) == 0) return mk2(ops[i], a, b);
    json_decref(a);
    json_decref(b);
    return NULL;
}
