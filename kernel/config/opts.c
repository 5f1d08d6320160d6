#include <string.h>
#include "config/opts.h"
#include "base/env.h"

static const json_t *lookup(const ts_opts *o, const char *key)
{
    const json_t *obj = (const json_t *)o;
    if (!obj || !key || !json_is_object(obj)) return NULL;
    return json_object_get(obj, key);
}

static int wrong_type(ts_env *env, const char *key, const char *want)
{
    return tsenv_error(env, TS_ERR_VALIDATION, "option %s: expected %s", key, want);
}

int tsopts_string(ts_env *env, const ts_opts *o, const char *key, const char **out)
{
    const json_t *v = lookup(o, key);
    if (!v) return TS_ERR_NOT_FOUND;
    if (!json_is_string(v)) return wrong_type(env, key, "a string");
    *out = json_string_value(v);
    return TS_OK;
}

int tsopts_int(ts_env *env, const ts_opts *o, const char *key, int64_t *out)
{
    const json_t *v = lookup(o, key);
    if (!v) return TS_ERR_NOT_FOUND;
    if (!json_is_integer(v)) return wrong_type(env, key, "an integer");
    *out = (int64_t)json_integer_value(v);
    return TS_OK;
}

int tsopts_double(ts_env *env, const ts_opts *o, const char *key, double *out)
{
    const json_t *v = lookup(o, key);
    if (!v) return TS_ERR_NOT_FOUND;
    if (!json_is_number(v)) return wrong_type(env, key, "a number");
    *out = json_number_value(v);
    return TS_OK;
}

int tsopts_bool(ts_env *env, const ts_opts *o, const char *key, int *out)
{
    const json_t *v = lookup(o, key);
    if (!v) return TS_ERR_NOT_FOUND;
    if (!json_is_boolean(v)) return wrong_type(env, key, "true or false");
    *out = json_is_true(v);
    return TS_OK;
}

int tsopts_object(ts_env *env, const ts_opts *o, const char *key, const ts_opts **out)
{
    const json_t *v = lookup(o, key);
    if (!v) return TS_ERR_NOT_FOUND;
    if (!json_is_object(v)) return wrong_type(env, key, "an object");
    *out = tsopts_wrap(v);
    return TS_OK;
}

int tsopts_key_at(const ts_opts *o, size_t i, const char **key)
{
    const json_t *obj = (const json_t *)o;
    if (!obj || !json_is_object(obj)) return TS_ERR_NOT_FOUND;
    /* jansson iterates in insertion order (2.8+); walk to the i-th key. */
    void *it = json_object_iter((json_t *)obj);
    for (size_t k = 0; it && k < i; k++)
        it = json_object_iter_next((json_t *)obj, it);
    if (!it) return TS_ERR_NOT_FOUND;
    *key = json_object_iter_key(it);
    return TS_OK;
}
