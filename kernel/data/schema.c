/*
 * Table schemas: TableSchema JSON -> tsd_table, back to canonical JSON, and
 * checks across a set of tables.  See data/schema.h and docs/schema.md.
 *
 * Every check reports "<json path>: <what is wrong>" with TS_ERR_VALIDATION.
 * The path starts with the table's name once that is known ("users.fields[2]
 * .type"), with "schema" before.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/schema.h"
#include "data/value.h"

#define BAD(...)  tsenv_error(env, TS_ERR_VALIDATION, __VA_ARGS__)
#define NOMEM()   tsenv_error(env, TS_ERR_NOMEM, "out of memory")
#define PATH_MAX_ 512

/* ---- names -------------------------------------------------------------- */

static const char *const type_names[] = {
    "integer", "bigInt", "double", "text", "blob", "boolean", "datetime", "array", "json",
    "vector", "key"
};
static const char *const pk_names[] = {
    "sequential", "timestampBased", "datePrefixed", "shortCode", "none"
};
static const char *const fk_names[] = { "restrict", "cascade", "setNull", "setDefault", "noAction" };
static const char *const prec_names[] = { "float32", "float16", "int8" };
static const char *const metric_names[] = { "cosine", "l2", "innerProduct" };

const char *tsd_type_name(tsd_type type)
{
    return (unsigned)type <= TSD_KEY ? type_names[type] : "?";
}

const char *tsd_pk_type_name(tsd_pk_type type)
{
    return (unsigned)type <= TSD_PK_NONE ? pk_names[type] : "?";
}

const char *tsd_fk_action_name(tsd_fk_action a)
{
    return (unsigned)a <= TSD_FK_NO_ACTION ? fk_names[a] : "?";
}

const char *tsd_precision_name(tsd_precision p)
{
    return (unsigned)p <= TSD_VEC_INT8 ? prec_names[p] : "?";
}

/* Position of s in names[0..n), -1 if absent. */
static int lookup(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return (int)i;
    return -1;
}

/* Whether s is in the NULL-terminated list. */
static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

int tsd_name_ok(const char *s, size_t max)
{
    if (!s) return 0;
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z'))) return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* ---- JSON access (null counts as absent) -------------------------------- */

static const json_t *opt(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int only_keys(ts_env *env, const json_t *obj, const char *path,
                     const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0) { ok = 1; break; }
        if (!ok) return BAD("%s: unknown key '%s'", path, k);
    }
    return TS_OK;
}

static int get_bool(ts_env *env, const json_t *obj, const char *key, const char *path, int *out,
                    int *given)
{
    const json_t *v = opt(obj, key);
    if (given) *given = v != NULL;
    if (!v) return TS_OK;
    if (!json_is_boolean(v)) return BAD("%s.%s: expected true or false", path, key);
    *out = json_is_true(v);
    return TS_OK;
}

static int get_int(ts_env *env, const json_t *obj, const char *key, const char *path,
                   int64_t lo, int64_t hi, int64_t *out, int *given)
{
    const json_t *v = opt(obj, key);
    if (given) *given = v != NULL;
    if (!v) return TS_OK;
    int64_t x;
    double d = json_is_real(v) ? json_real_value(v) : 0.5;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (d > -9.2e18 && d < 9.2e18 && d == (double)(int64_t)d) {
        x = (int64_t)d;
    } else {
        return BAD("%s.%s: expected an integer", path, key);
    }
    if (x < lo || x > hi)
        return BAD("%s.%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", path, key, x,
                   lo, hi);
    *out = x;
    return TS_OK;
}

static int get_str(ts_env *env, const json_t *obj, const char *key, const char *path,
                   const char **out)
{
    const json_t *v = opt(obj, key);
    if (!v) return TS_OK;
    if (!json_is_string(v)) return BAD("%s.%s: expected a string", path, key);
    *out = json_string_value(v);
    return TS_OK;
}

static int get_name(ts_env *env, const json_t *obj, const char *key, const char *path,
                    size_t max, const char **out)
{
    const char *s = NULL;
    int rc = get_str(env, obj, key, path, &s);
    if (rc || !s) return rc;
    if (!tsd_name_ok(s, max))
        return BAD("%s.%s: invalid name '%s' (must match ^[A-Za-z][A-Za-z0-9_]*$, at most %zu "
                   "bytes)", path, key, s, max);
    *out = s;
    return TS_OK;
}

static int get_enum(ts_env *env, const json_t *obj, const char *key, const char *path,
                    const char *const *names, size_t n, const char *what, int *out)
{
    const char *s = NULL;
    int rc = get_str(env, obj, key, path, &s);
    if (rc || !s) return rc;
    int i = lookup(names, n, s);
    if (i < 0) return BAD("%s.%s: unknown %s '%s'", path, key, what, s);
    *out = i;
    return TS_OK;
}

static int get_id(ts_env *env, const json_t *obj, const char *key, const char *path, char **out)
{
    const char *s = NULL;
    int rc = get_str(env, obj, key, path, &s);
    if (rc || !s) return rc;
    if (!*s || strlen(s) > TSD_ID_MAX)
        return BAD("%s.%s: must have 1 to %d bytes", path, key, TSD_ID_MAX);
    if (!(*out = strdup(s))) return NOMEM();
    return TS_OK;
}

/* Replace the "<table>.<field>: " prefix of the current message (from the
 * value rules) by "<path>.<key>: ". */
static int reframe(ts_env *env, int rc, const tsd_field *f, const char *path, const char *key)
{
    char rest[600];
    const char *msg = tsenv_errmsg(env);
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s.%s: ", f->table, f->name);
    if (strncmp(msg, prefix, strlen(prefix)) == 0) msg += strlen(prefix);
    snprintf(rest, sizeof rest, "%s", msg);
    return tsenv_error(env, rc, "%s.%s: %s", path, key, rest);
}

/* ---- freeing ------------------------------------------------------------ */

static void field_free(tsd_field *f)
{
    free((char *)f->name);
    json_decref(f->default_value);
    json_decref(f->min_value_json);
    json_decref(f->max_value_json);
    free(f->min_value.big);
    free(f->max_value.big);
    free(f->field_id);
    free(f->comment);
}

static void index_free(tsd_index *ix)
{
    free(ix->name);
    free(ix->cols);
    free(ix->module);
    json_decref(ix->vector_config);
}

static void fk_free(tsd_fk *fk)
{
    free(fk->name);
    free(fk->cols);
    for (size_t i = 0; i < fk->nfields; i++) {
        if (fk->field_names) free(fk->field_names[i]);
        if (fk->ref_fields) free(fk->ref_fields[i]);
    }
    free(fk->field_names);
    free(fk->ref_fields);
    free(fk->ref_table);
}

void tsd_table_free(tsd_table *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->ncols; i++) field_free(&t->cols[i]);
    for (size_t i = 0; i < t->nindexes; i++) index_free(&t->indexes[i]);
    for (size_t i = 0; i < t->nfks; i++) fk_free(&t->fks[i]);
    free(t->cols);
    free(t->indexes);
    free(t->fks);
    free(t->unique_order);
    free(t->by_name);
    free(t->name);
    free(t->table_id);
    free(t);
}

/* ---- lookups ------------------------------------------------------------ */

long tsd_table_col(const tsd_table *t, const char *name)
{
    if (!t || !name || !t->by_name) return -1;
    size_t lo = 0, hi = t->ncols;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(t->cols[t->by_name[mid]].name, name);
        if (c == 0) return (long)t->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

const tsd_index *tsd_table_index(const tsd_table *t, const char *name)
{
    if (!t || !name) return NULL;
    for (size_t i = 0; i < t->nindexes; i++)
        if (strcmp(t->indexes[i].name, name) == 0) return &t->indexes[i];
    return NULL;
}

/* ---- fields ------------------------------------------------------------- */

static const char *const field_keys[] = {
    "name", "type", "nullable", "unique", "createIndex", "defaultValue", "defaultValueType",
    "minLength", "maxLength", "minValue", "maxValue", "fieldId", "comment", "vectorConfig", NULL
};
static const char *const pk_field_keys[] = {
    "name", "type", "nullable", "unique", "createIndex", "fieldId", "comment", NULL
};

static void bound_to_value(const tsd_field *f, const tsd_bound *b, tsd_value *v)
{
    memset(v, 0, sizeof *v);
    if (f->type == TSD_DOUBLE) {
        v->kind = TSD_V_DOUBLE;
        v->d = b->d;
    } else if (b->big) {
        v->kind = TSD_V_BIGDEC;
        v->p = b->big;
        v->n = strlen(b->big);
        v->neg = b->neg;
    } else {
        v->kind = TSD_V_INT;
        v->i = b->i;
    }
}

/* A bound (minValue/maxValue) under the field's value rules. */
static int parse_bound(ts_env *env, tsd_field *f, const json_t *fj, const char *key,
                       const char *path, tsd_bound *b, json_t **bj)
{
    const json_t *v = opt(fj, key);
    if (!v) return TS_OK;
    if (f->type != TSD_INTEGER && f->type != TSD_BIGINT && f->type != TSD_DOUBLE &&
        f->type != TSD_DATETIME)
        return BAD("%s.%s: only integer, bigInt, double and datetime fields have %s", path, key,
                   key);
    tsd_value val;
    int rc = tsd_value_from_json(env, f, v, &val);
    if (rc) return reframe(env, rc, f, path, key);
    b->set = 1;
    if (val.kind == TSD_V_DOUBLE) {
        b->d = val.d;
    } else if (val.kind == TSD_V_BIGDEC) {
        b->neg = val.neg;
        if (!(b->big = strndup(val.p, val.n))) rc = NOMEM();
    } else {
        b->i = val.i;
    }
    if (!rc) rc = tsd_value_to_json(env, f, &val, bj);
    tsd_value_clear(&val);
    return rc;
}

static int parse_vector_config(ts_env *env, tsd_field *f, const json_t *fj, const char *path)
{
    const json_t *vc = opt(fj, "vectorConfig");
    if (f->type != TSD_VECTOR) {
        if (vc) return BAD("%s.vectorConfig: only vector fields have a vectorConfig", path);
        return TS_OK;
    }
    char p[PATH_MAX_ + 32];
    snprintf(p, sizeof p, "%s.vectorConfig", path);
    if (!vc) return BAD("%s: required for a vector field (with dimensions)", p);
    if (!json_is_object(vc)) return BAD("%s: expected an object", p);
    static const char *const keys[] = { "dimensions", "precision", NULL };
    int rc, given, prec = TSD_VEC_FLOAT32;
    int64_t dims = 0;
    if ((rc = only_keys(env, vc, p, keys))) return rc;
    if ((rc = get_int(env, vc, "dimensions", p, 1, TSD_VECTOR_DIMS_MAX, &dims, &given))) return rc;
    if (!given) return BAD("%s.dimensions: required", p);
    if ((rc = get_enum(env, vc, "precision", p, prec_names, 3, "precision", &prec))) return rc;
    f->dimensions = (uint32_t)dims;
    f->precision = (tsd_precision)prec;
    return TS_OK;
}

/* Parse a field (not the primary key) into f; f->name, f->table set by caller. */
static int parse_field(ts_env *env, tsd_field *f, const json_t *fj, const char *path)
{
    int rc, given;
    if ((rc = only_keys(env, fj, path, field_keys))) return rc;
    f->nullable = 1;
    f->min_length = f->max_length = -1;
    if ((rc = get_bool(env, fj, "nullable", path, &f->nullable, NULL))) return rc;
    if ((rc = get_bool(env, fj, "unique", path, &f->unique, NULL))) return rc;
    if ((rc = get_bool(env, fj, "createIndex", path, &f->create_index, NULL))) return rc;
    if ((rc = parse_vector_config(env, f, fj, path))) return rc;
    if ((f->unique || f->create_index) && !tsd_type_indexable(f->type))
        return BAD("%s.%s: %s fields cannot be indexed", path,
                   f->unique ? "unique" : "createIndex", tsd_type_name(f->type));
    /* lengths */
    int has_len = f->type == TSD_TEXT || f->type == TSD_BLOB || f->type == TSD_ARRAY;
    static const char *const len_keys[] = { "minLength", "maxLength" };
    for (int k = 0; k < 2; k++) {
        int64_t x = -1;
        if ((rc = get_int(env, fj, len_keys[k], path, 0, INT64_MAX, &x, &given))) return rc;
        if (given && !has_len)
            return BAD("%s.%s: only text, blob and array fields have %s", path, len_keys[k],
                       len_keys[k]);
        if (k == 0) f->min_length = x;
        else f->max_length = x;
    }
    if (f->min_length >= 0 && f->max_length >= 0 && f->min_length > f->max_length)
        return BAD("%s: minLength %" PRId64 " is above maxLength %" PRId64, path, f->min_length,
                   f->max_length);
    /* value bounds */
    if ((rc = parse_bound(env, f, fj, "minValue", path, &f->min_value, &f->min_value_json)))
        return rc;
    if ((rc = parse_bound(env, f, fj, "maxValue", path, &f->max_value, &f->max_value_json)))
        return rc;
    if (f->min_value.set && f->max_value.set) {
        tsd_value a, b;
        bound_to_value(f, &f->min_value, &a);
        bound_to_value(f, &f->max_value, &b);
        if (tsd_value_cmp(f, &a, &b) > 0) return BAD("%s: minValue is above maxValue", path);
    }
    /* defaults */
    const char *dvt = NULL;
    if ((rc = get_str(env, fj, "defaultValueType", path, &dvt))) return rc;
    if (dvt && strcmp(dvt, "currentTimestamp") == 0) {
        if (f->type != TSD_DATETIME && f->type != TSD_INTEGER && f->type != TSD_TEXT)
            return BAD("%s.defaultValueType: currentTimestamp needs a datetime, integer or text "
                       "field", path);
        f->default_now = 1;
    } else if (dvt && strcmp(dvt, "none") != 0) {
        return BAD("%s.defaultValueType: unknown default type '%s' (currentTimestamp or none)",
                   path, dvt);
    }
    const json_t *dv = opt(fj, "defaultValue");
    if (dv) {
        if (f->default_now)
            return BAD("%s: defaultValue and defaultValueType currentTimestamp exclude each "
                       "other", path);
        tsd_value val;
        rc = tsd_value_from_json(env, f, dv, &val);
        if (!rc) rc = tsd_value_check(env, f, &val);
        if (!rc) {
            if (f->type == TSD_ARRAY || f->type == TSD_JSON) {
                f->default_value = json_deep_copy(dv);
                if (!f->default_value) rc = NOMEM();
            } else {
                rc = tsd_value_to_json(env, f, &val, &f->default_value);
            }
            tsd_value_clear(&val);
            if (rc) return rc;
        } else {
            tsd_value_clear(&val);
            return reframe(env, rc, f, path, "defaultValue");
        }
    }
    if ((rc = get_id(env, fj, "fieldId", path, &f->field_id))) return rc;
    const char *comment = NULL;
    if ((rc = get_str(env, fj, "comment", path, &comment))) return rc;
    if (comment && !(f->comment = strdup(comment))) return NOMEM();
    return TS_OK;
}

/* The field that declares the primary key. */
static int parse_pk_field(ts_env *env, tsd_table *t, tsd_field *f, const json_t *fj,
                          const char *path)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fj, k, v) {
        if (in_list(pk_field_keys, k)) continue;
        if (in_list(field_keys, k))
            return BAD("%s.%s: not supported on the primary key '%s'", path, k, f->name);
        return BAD("%s: unknown key '%s'", path, k);
    }
    int ok;
    switch (t->pk_type) {
    case TSD_PK_SEQUENTIAL:
    case TSD_PK_TIMESTAMP:
        ok = f->type == TSD_INTEGER;
        break;
    case TSD_PK_DATE_PREFIXED:
    case TSD_PK_SHORT_CODE:
        ok = f->type == TSD_TEXT;
        break;
    default:
        ok = f->type == TSD_INTEGER || f->type == TSD_TEXT;
        break;
    }
    if (!ok)
        return BAD("%s.type: the primary key '%s' (%s) must be %s", path, f->name,
                   tsd_pk_type_name(t->pk_type),
                   t->pk_type == TSD_PK_NONE ? "integer or text"
                   : t->pk_type <= TSD_PK_TIMESTAMP ? "integer" : "text");
    int rc, b = 0, given;
    if ((rc = get_bool(env, fj, "nullable", path, &b, &given))) return rc;
    if (given && b) return BAD("%s.nullable: the primary key cannot be nullable", path);
    b = 1;
    if ((rc = get_bool(env, fj, "unique", path, &b, &given))) return rc;
    if (given && !b) return BAD("%s.unique: the primary key is always unique", path);
    if ((rc = get_bool(env, fj, "createIndex", path, &b, NULL))) return rc;
    if ((rc = get_id(env, fj, "fieldId", path, &f->field_id))) return rc;
    const char *comment = NULL;
    if ((rc = get_str(env, fj, "comment", path, &comment))) return rc;
    if (comment && !(f->comment = strdup(comment))) return NOMEM();
    return TS_OK;
}

/* Sorting columns by name (then schema position) without shared state. */
typedef struct name_ref {
    const char *name;
    int         pos;
    size_t      col;
} name_ref;

static int name_ref_cmp(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* ---- primary key config ------------------------------------------------- */

static int parse_pk_config(ts_env *env, tsd_table *t, const json_t *schema, const char **pk_name)
{
    char path[PATH_MAX_];
    snprintf(path, sizeof path, "%s.primaryKeyConfig", t->name);
    *pk_name = "id";
    t->pk_type = TSD_PK_SEQUENTIAL;
    t->seq_initial = 1;
    t->seq_increment = 1;
    const json_t *pk = opt(schema, "primaryKeyConfig");
    if (!pk) return TS_OK;
    if (!json_is_object(pk)) return BAD("%s: expected an object", path);
    static const char *const keys[] = { "name", "type", "sequentialConfig", NULL };
    int rc, type = TSD_PK_SEQUENTIAL;
    if ((rc = only_keys(env, pk, path, keys))) return rc;
    if ((rc = get_name(env, pk, "name", path, TSD_NAME_MAX, pk_name))) return rc;
    if ((rc = get_enum(env, pk, "type", path, pk_names, 5, "primary key type", &type))) return rc;
    t->pk_type = (tsd_pk_type)type;
    const json_t *sc = opt(pk, "sequentialConfig");
    if (!sc) return TS_OK;
    if (t->pk_type != TSD_PK_SEQUENTIAL)
        return BAD("%s.sequentialConfig: only for type sequential", path);
    char p[PATH_MAX_ + 32];
    snprintf(p, sizeof p, "%s.sequentialConfig", path);
    if (!json_is_object(sc)) return BAD("%s: expected an object", p);
    static const char *const skeys[] = { "initialValue", "increment", "useRandomIncrement", NULL };
    if ((rc = only_keys(env, sc, p, skeys))) return rc;
    if ((rc = get_int(env, sc, "initialValue", p, INT64_MIN, INT64_MAX, &t->seq_initial, NULL)))
        return rc;
    if ((rc = get_int(env, sc, "increment", p, 1, INT64_MAX, &t->seq_increment, NULL))) return rc;
    return get_bool(env, sc, "useRandomIncrement", p, &t->seq_random, NULL);
}

/* ---- field lists (indexes, foreign keys) -------------------------------- */

/* A non-empty array of distinct field names of t -> cols (malloc'd). */
static int parse_field_list(ts_env *env, const tsd_table *t, const json_t *obj, const char *key,
                            const char *path, size_t **cols_out, size_t *n_out)
{
    const json_t *a = opt(obj, key);
    if (!a) return BAD("%s.%s: required", path, key);
    if (!json_is_array(a) || json_array_size(a) == 0)
        return BAD("%s.%s: expected a non-empty array of field names", path, key);
    size_t n = json_array_size(a);
    if (n > TSD_INDEX_FIELDS_MAX)
        return BAD("%s.%s: %zu fields, at most %d", path, key, n, TSD_INDEX_FIELDS_MAX);
    size_t *cols = calloc(n, sizeof *cols);
    if (!cols) return NOMEM();
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(a, i);
        if (!json_is_string(e)) {
            free(cols);
            return BAD("%s.%s[%zu]: expected a field name", path, key, i);
        }
        long c = tsd_table_col(t, json_string_value(e));
        if (c < 0) {
            free(cols);
            return BAD("%s.%s[%zu]: unknown field '%s'", path, key, i, json_string_value(e));
        }
        for (size_t j = 0; j < i; j++)
            if (cols[j] == (size_t)c) {
                free(cols);
                return BAD("%s.%s[%zu]: '%s' is listed twice", path, key, i,
                           json_string_value(e));
            }
        cols[i] = (size_t)c;
    }
    *cols_out = cols;
    *n_out = n;
    return TS_OK;
}

/* "<prefix>f1_f2..." into a new string; NULL when over TSD_LONG_NAME_MAX. */
static char *default_name(const tsd_table *t, const char *prefix, const size_t *cols, size_t n)
{
    size_t len = strlen(prefix);
    for (size_t i = 0; i < n; i++) len += strlen(t->cols[cols[i]].name) + (i > 0);
    if (len > TSD_LONG_NAME_MAX) return NULL;
    char *s = malloc(len + 1);
    if (!s) return NULL;
    strcpy(s, prefix);
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(s, "_");
        strcat(s, t->cols[cols[i]].name);
    }
    return s;
}

static int parse_index(ts_env *env, tsd_table *t, const json_t *ij, size_t pos, tsd_index *ix)
{
    char path[PATH_MAX_];
    snprintf(path, sizeof path, "%s.indexes[%zu]", t->name, pos);
    ix->origin = TSD_IX_EXPLICIT;
    ix->schema_pos = (int)pos;
    if (!json_is_object(ij)) return BAD("%s: expected an object", path);
    static const char *const keys[] = { "fields", "indexName", "unique", "type", "vectorConfig",
                                        NULL };
    int rc;
    if ((rc = only_keys(env, ij, path, keys))) return rc;
    if ((rc = parse_field_list(env, t, ij, "fields", path, &ix->cols, &ix->nfields))) return rc;
    if ((rc = get_bool(env, ij, "unique", path, &ix->unique, NULL))) return rc;
    const char *module = "btree";
    if ((rc = get_name(env, ij, "type", path, TSD_NAME_MAX, &module))) return rc;
    if (!(ix->module = strdup(module))) return NOMEM();
    const json_t *vc = opt(ij, "vectorConfig");
    if (strcmp(module, "ngh") == 0) {
        if (ix->nfields != 1 || t->cols[ix->cols[0]].type != TSD_VECTOR)
            return BAD("%s.fields: an ngh index takes exactly one vector field", path);
        if (t->cols[ix->cols[0]].dimensions > TSD_NGH_DIMS_MAX)
            return BAD("%s: an ngh index takes vectors of at most %d dimensions ('%s' has %u)",
                       path, TSD_NGH_DIMS_MAX, t->cols[ix->cols[0]].name,
                       (unsigned)t->cols[ix->cols[0]].dimensions);
        if (ix->unique) return BAD("%s.unique: an ngh index cannot be unique", path);
        char p[PATH_MAX_ + 32];
        snprintf(p, sizeof p, "%s.vectorConfig", path);
        int metric = 0;
        const json_t *params = NULL;
        if (vc) {
            if (!json_is_object(vc)) return BAD("%s: expected an object", p);
            static const char *const vkeys[] = { "distanceMetric", "parameters", NULL };
            if ((rc = only_keys(env, vc, p, vkeys))) return rc;
            if ((rc = get_enum(env, vc, "distanceMetric", p, metric_names, 3, "distance metric",
                               &metric)))
                return rc;
            params = opt(vc, "parameters");
            if (params) {
                if (!json_is_object(params)) return BAD("%s.parameters: expected an object", p);
                const char *k;
                json_t *v;
                json_object_foreach((json_t *)params, k, v) {
                    /* the module checks each parameter's range (buildLinks takes 0) */
                    if (!json_is_boolean(v) && (!json_is_number(v) || json_number_value(v) < 0))
                        return BAD("%s.parameters.%s: expected a number (0 or more) or a boolean", p, k);
                }
            }
        }
        /* "o" takes the reference of the copy, even on failure */
        ix->vector_config = json_pack("{s:s, s:o}", "distanceMetric", metric_names[metric],
                                      "parameters", params ? json_deep_copy(params)
                                                           : json_object());
        if (!ix->vector_config) return NOMEM();
    } else {
        if (vc) return BAD("%s.vectorConfig: only ngh indexes have a vectorConfig", path);
        for (size_t i = 0; i < ix->nfields; i++) {
            const tsd_field *f = &t->cols[ix->cols[i]];
            if (!tsd_type_indexable(f->type))
                return BAD("%s.fields[%zu]: '%s' (%s) cannot be part of a %s index key", path, i,
                           f->name, tsd_type_name(f->type), module);
        }
        if (ix->nfields == 1 && ix->cols[0] == 0)
            return BAD("%s.fields: the primary key '%s' is always indexed", path, t->cols[0].name);
    }
    const char *name = NULL;
    if ((rc = get_name(env, ij, "indexName", path, TSD_LONG_NAME_MAX, &name))) return rc;
    if (name) {
        ix->name = strdup(name);
    } else {
        ix->name = default_name(t, "idx_", ix->cols, ix->nfields);
        if (!ix->name)
            return BAD("%s: the default name (idx_<fields>) would be over %d bytes; give an "
                       "indexName", path, TSD_LONG_NAME_MAX);
    }
    if (!ix->name) return NOMEM();
    return TS_OK;
}

static int parse_fk(ts_env *env, tsd_table *t, const json_t *fj, size_t pos, tsd_fk *fk)
{
    char path[PATH_MAX_];
    snprintf(path, sizeof path, "%s.foreignKeys[%zu]", t->name, pos);
    if (!json_is_object(fj)) return BAD("%s: expected an object", path);
    static const char *const keys[] = { "fields", "referencedTable", "referencedFields", "name",
                                        "onDelete", "onUpdate", NULL };
    int rc;
    if ((rc = only_keys(env, fj, path, keys))) return rc;
    if ((rc = parse_field_list(env, t, fj, "fields", path, &fk->cols, &fk->nfields))) return rc;
    if (!(fk->field_names = calloc(fk->nfields, sizeof *fk->field_names)) ||
        !(fk->ref_fields = calloc(fk->nfields, sizeof *fk->ref_fields)))
        return NOMEM();
    for (size_t i = 0; i < fk->nfields; i++) {
        const tsd_field *f = &t->cols[fk->cols[i]];
        if (!tsd_type_indexable(f->type))
            return BAD("%s.fields[%zu]: '%s' (%s) cannot reference another table", path, i,
                       f->name, tsd_type_name(f->type));
        if (!(fk->field_names[i] = strdup(f->name))) return NOMEM();
    }
    const char *rt = NULL;
    if ((rc = get_name(env, fj, "referencedTable", path, TSD_NAME_MAX, &rt))) return rc;
    if (!rt) return BAD("%s.referencedTable: required", path);
    if (!(fk->ref_table = strdup(rt))) return NOMEM();
    const json_t *rf = opt(fj, "referencedFields");
    if (!rf) return BAD("%s.referencedFields: required", path);
    if (!json_is_array(rf) || json_array_size(rf) != fk->nfields)
        return BAD("%s.referencedFields: expected an array of %zu field name%s, like fields",
                   path, fk->nfields, fk->nfields == 1 ? "" : "s");
    for (size_t i = 0; i < fk->nfields; i++) {
        const json_t *e = json_array_get(rf, i);
        if (!json_is_string(e) || !tsd_name_ok(json_string_value(e), TSD_NAME_MAX))
            return BAD("%s.referencedFields[%zu]: expected a field name", path, i);
        if (!(fk->ref_fields[i] = strdup(json_string_value(e)))) return NOMEM();
    }
    const char *name = NULL;
    if ((rc = get_name(env, fj, "name", path, TSD_LONG_NAME_MAX, &name))) return rc;
    if (name) {
        fk->name = strdup(name);
    } else {
        fk->name = default_name(t, "fk_", fk->cols, fk->nfields);
        if (!fk->name)
            return BAD("%s: the default name (fk_<fields>) would be over %d bytes; give a name",
                       path, TSD_LONG_NAME_MAX);
    }
    if (!fk->name) return NOMEM();
    int a = TSD_FK_RESTRICT;
    if ((rc = get_enum(env, fj, "onDelete", path, fk_names, 5, "action", &a))) return rc;
    fk->on_delete = (tsd_fk_action)a;
    a = TSD_FK_RESTRICT;
    if ((rc = get_enum(env, fj, "onUpdate", path, fk_names, 5, "action", &a))) return rc;
    fk->on_update = (tsd_fk_action)a;
    for (int k = 0; k < 2; k++) {
        tsd_fk_action act = k ? fk->on_update : fk->on_delete;
        const char *key = k ? "onUpdate" : "onDelete";
        for (size_t i = 0; i < fk->nfields; i++) {
            const tsd_field *f = &t->cols[fk->cols[i]];
            if (act == TSD_FK_SET_NULL && !f->nullable)
                return BAD("%s.%s: setNull on the non-nullable field '%s'", path, key, f->name);
            if (act == TSD_FK_SET_DEFAULT && !f->nullable && !f->default_value && !f->default_now)
                return BAD("%s.%s: setDefault on '%s', which has no default and is not nullable",
                           path, key, f->name);
        }
    }
    for (size_t i = 0; i < pos; i++)
        if (strcmp(t->fks[i].name, fk->name) == 0)
            return BAD("%s.name: foreign key name '%s' is also used by %s.foreignKeys[%zu]", path,
                       fk->name, t->name, i);
    return TS_OK;
}

/* ---- implicit indexes ------------------------------------------------------ */

static int same_cols(const size_t *a, size_t an, const size_t *b, size_t bn)
{
    return an == bn && memcmp(a, b, an * sizeof *a) == 0;
}

/* The index among ix[0..n) over exactly cols (in order), with unique when
 * need_unique, not ngh; -1 if none. */
static long find_index(const tsd_index *ix, size_t n, const size_t *cols, size_t ncols,
                       int need_unique)
{
    for (size_t i = 0; i < n; i++)
        if (same_cols(ix[i].cols, ix[i].nfields, cols, ncols) && (!need_unique || ix[i].unique) &&
            strcmp(ix[i].module, "ngh") != 0)
            return (long)i;
    return -1;
}

static int add_implicit(ts_env *env, tsd_index *list, size_t *n, const char *name,
                        const size_t *cols, size_t ncols, int unique, tsd_index_origin origin)
{
    tsd_index *ix = &list[(*n)++];
    memset(ix, 0, sizeof *ix);
    ix->origin = origin;
    ix->schema_pos = -1;
    ix->unique = unique;
    ix->nfields = ncols;
    if (!(ix->name = strdup(name)) || !(ix->module = strdup("btree")) ||
        !(ix->cols = malloc(ncols * sizeof *ix->cols)))
        return NOMEM();
    memcpy(ix->cols, cols, ncols * sizeof *cols);
    return TS_OK;
}

static void describe_index(const tsd_table *t, const tsd_index *ix, char *buf, size_t cap)
{
    switch (ix->origin) {
    case TSD_IX_EXPLICIT:
        snprintf(buf, cap, "%s.indexes[%d]", t->name, ix->schema_pos);
        break;
    case TSD_IX_UNIQUE_FIELD:
        snprintf(buf, cap, "the unique index of field '%s'", t->cols[ix->cols[0]].name);
        break;
    case TSD_IX_CREATE_INDEX:
        snprintf(buf, cap, "the index of field '%s' (createIndex)", t->cols[ix->cols[0]].name);
        break;
    case TSD_IX_FOREIGN_KEY:
        snprintf(buf, cap, "the index of foreign key '%s'", ix->name);
        break;
    }
}

/* Build t->indexes from the explicit ones (taken over) and the fields' flags. */
static int build_indexes(ts_env *env, tsd_table *t, tsd_index *explicit_ix, size_t nexplicit)
{
    size_t cap = nexplicit + 2 * t->ncols + t->nfks + 1, n = 0;
    tsd_index *list = calloc(cap, sizeof *list);
    size_t *uo = calloc(cap, sizeof *uo);
    int rc = TS_OK;
    if (!list || !uo) {
        free(list);
        free(uo);
        for (size_t i = 0; i < nexplicit; i++) index_free(&explicit_ix[i]);
        return NOMEM();
    }
    t->indexes = list;
    t->unique_order = uo;
    /* unique fields, unless an explicit unique index covers exactly that field */
    for (size_t c = 1; c < t->ncols && !rc; c++) {
        const tsd_field *f = &t->cols[c];
        if (!f->unique || find_index(explicit_ix, nexplicit, &c, 1, 1) >= 0) continue;
        char name[TSD_NAME_MAX + 8];
        snprintf(name, sizeof name, "uniq_%s", f->name);
        rc = add_implicit(env, list, &n, name, &c, 1, 1, TSD_IX_UNIQUE_FIELD);
    }
    size_t first_explicit = n;
    for (size_t i = 0; i < nexplicit; i++) list[n++] = explicit_ix[i]; /* taken over */
    t->nindexes = n;
    if (rc) return rc;
    /* createIndex fields not already indexed alone */
    for (size_t c = 1; c < t->ncols && !rc; c++) {
        const tsd_field *f = &t->cols[c];
        if (!f->create_index || f->unique || find_index(list, n, &c, 1, 0) >= 0) continue;
        char name[TSD_NAME_MAX + 8];
        snprintf(name, sizeof name, "idx_%s", f->name);
        rc = add_implicit(env, list, &n, name, &c, 1, 0, TSD_IX_CREATE_INDEX);
        t->nindexes = n;
    }
    /* foreign keys: the referencing fields, unless indexed exactly so */
    for (size_t i = 0; i < t->nfks && !rc; i++) {
        const tsd_fk *fk = &t->fks[i];
        if ((fk->nfields == 1 && fk->cols[0] == 0) ||
            find_index(list, n, fk->cols, fk->nfields, 0) >= 0)
            continue;
        rc = add_implicit(env, list, &n, fk->name, fk->cols, fk->nfields, 0,
                          TSD_IX_FOREIGN_KEY);
        t->nindexes = n;
    }
    if (rc) return rc;
    /* names are unique */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(list[i].name, list[j].name) == 0) {
                char a[PATH_MAX_], b[PATH_MAX_];
                describe_index(t, &list[j], a, sizeof a);
                describe_index(t, &list[i], b, sizeof b);
                return BAD("%s: index name '%s' is also the name of %s", b, list[i].name, a);
            }
    /* upsert conflict targets */
    size_t nu = 0;
    for (size_t c = 1; c < t->ncols; c++) {
        if (!t->cols[c].unique) continue;
        long ix = find_index(list, n, &c, 1, 1);
        if (ix >= 0) uo[nu++] = (size_t)ix;
    }
    for (size_t i = first_explicit; i < first_explicit + nexplicit; i++) {
        if (!list[i].unique) continue;
        int seen = 0;
        for (size_t k = 0; k < nu; k++) seen |= uo[k] == i;
        if (!seen) uo[nu++] = i;
    }
    t->nunique = nu;
    return TS_OK;
}

/* ---- the table ---------------------------------------------------------- */

static const char *const table_keys[] = {
    "name", "tableId", "isGlobal", "primaryKeyConfig", "fields", "indexes", "foreignKeys",
    "ttlConfig", NULL
};

static int parse_fields(ts_env *env, tsd_table *t, const json_t *schema, const char *pk_name)
{
    const json_t *fields = json_object_get(schema, "fields");
    if (!fields || json_is_null(fields)) return BAD("%s.fields: required (may be empty)", t->name);
    if (!json_is_array(fields)) return BAD("%s.fields: expected an array", t->name);
    size_t n = json_array_size(fields);
    if (n > TSD_FIELDS_MAX)
        return BAD("%s.fields: %zu fields, at most %d", t->name, n, TSD_FIELDS_MAX);
    t->nschema_fields = n;
    if (!(t->cols = calloc(n + 1, sizeof *t->cols))) return NOMEM();
    /* column 0 until a field declares it */
    tsd_field *pk = &t->cols[0];
    if (!(pk->name = strdup(pk_name))) return NOMEM();
    t->ncols = 1;
    pk->table = t->name;
    pk->is_pk = 1;
    pk->type = TSD_KEY;
    pk->pk_type = t->pk_type;
    pk->unique = 1;
    pk->schema_pos = -1;
    pk->min_length = pk->max_length = -1;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX_];
        snprintf(path, sizeof path, "%s.fields[%zu]", t->name, i);
        const json_t *fj = json_array_get(fields, i);
        if (!json_is_object(fj)) return BAD("%s: expected an object", path);
        const char *name = NULL;
        int rc = get_name(env, fj, "name", path, TSD_NAME_MAX, &name);
        if (rc) return rc;
        if (!name) return BAD("%s.name: required", path);
        int type = -1;
        if ((rc = get_enum(env, fj, "type", path, type_names, TSD_VECTOR + 1, "type", &type)))
            return rc;
        if (type < 0) return BAD("%s.type: required", path);
        if (strcmp(name, pk_name) == 0) {
            if (pk->declared)
                return BAD("%s.name: duplicate field '%s' (also %s.fields[%d])", path, name,
                           t->name, pk->schema_pos);
            pk->declared = 1;
            pk->schema_pos = (int)i;
            pk->type = (tsd_type)type;
            if ((rc = parse_pk_field(env, t, pk, fj, path))) return rc;
            continue;
        }
        tsd_field *f = &t->cols[t->ncols++];
        f->table = t->name;
        f->col = t->ncols - 1;
        f->schema_pos = (int)i;
        f->type = (tsd_type)type;
        if (!(f->name = strdup(name))) return NOMEM();
        if ((rc = parse_field(env, f, fj, path))) return rc;
    }
    /* by name, and duplicates */
    name_ref *refs = malloc(t->ncols * sizeof *refs);
    if (!refs || !(t->by_name = malloc(t->ncols * sizeof *t->by_name))) {
        free(refs);
        return NOMEM();
    }
    for (size_t c = 0; c < t->ncols; c++) {
        refs[c].name = t->cols[c].name;
        refs[c].pos = t->cols[c].schema_pos;
        refs[c].col = c;
    }
    qsort(refs, t->ncols, sizeof *refs, name_ref_cmp);
    for (size_t c = 0; c < t->ncols; c++) t->by_name[c] = refs[c].col;
    free(refs);
    int dup_pos = -1;
    size_t dup_first = 0;
    for (size_t k = 1; k < t->ncols; k++) {
        const tsd_field *a = &t->cols[t->by_name[k - 1]], *b = &t->cols[t->by_name[k]];
        if (strcmp(a->name, b->name) == 0 && (dup_pos < 0 || b->schema_pos < dup_pos)) {
            dup_pos = b->schema_pos;
            dup_first = t->by_name[k - 1];
        }
    }
    if (dup_pos >= 0)
        return BAD("%s.fields[%d].name: duplicate field '%s' (also %s.fields[%d])", t->name,
                   dup_pos, t->cols[dup_first].name, t->name, t->cols[dup_first].schema_pos);
    return TS_OK;
}

static int parse_ttl(ts_env *env, tsd_table *t, const json_t *schema)
{
    t->ttl_col = -1;
    const json_t *ttl = opt(schema, "ttlConfig");
    if (!ttl) return TS_OK;
    char path[PATH_MAX_];
    snprintf(path, sizeof path, "%s.ttlConfig", t->name);
    if (!json_is_object(ttl)) return BAD("%s: expected an object", path);
    static const char *const keys[] = { "ttlMs", "sourceField", NULL };
    int rc, given;
    if ((rc = only_keys(env, ttl, path, keys))) return rc;
    if ((rc = get_int(env, ttl, "ttlMs", path, 1, INT64_MAX, &t->ttl_ms, &given))) return rc;
    if (!given) return BAD("%s.ttlMs: required", path);
    const char *src = NULL;
    if ((rc = get_str(env, ttl, "sourceField", path, &src))) return rc;
    if (src) {
        long c = tsd_table_col(t, src);
        if (c < 0) return BAD("%s.sourceField: unknown field '%s'", path, src);
        if (t->cols[c].type != TSD_DATETIME)
            return BAD("%s.sourceField: '%s' is %s, not a datetime field", path, src,
                       tsd_type_name(t->cols[c].type));
        t->ttl_col = c;
    }
    return TS_OK;
}

static int parse_table(ts_env *env, const json_t *schema, tsd_table *t)
{
    int rc;
    if (!json_is_object(schema)) return BAD("schema: expected an object");
    const char *name = NULL;
    if ((rc = get_name(env, schema, "name", "schema", TSD_NAME_MAX, &name))) return rc;
    if (!name) return BAD("schema.name: required");
    if (!(t->name = strdup(name))) return NOMEM();
    if ((rc = only_keys(env, schema, t->name, table_keys))) return rc;
    if ((rc = get_id(env, schema, "tableId", t->name, &t->table_id))) return rc;
    if ((rc = get_bool(env, schema, "isGlobal", t->name, &t->is_global, NULL))) return rc;
    const char *pk_name;
    if ((rc = parse_pk_config(env, t, schema, &pk_name))) return rc;
    if ((rc = parse_fields(env, t, schema, pk_name))) return rc;
    /* foreign keys before indexes: their implicit indexes come last */
    const json_t *fks = opt(schema, "foreignKeys");
    if (fks) {
        if (!json_is_array(fks)) return BAD("%s.foreignKeys: expected an array", t->name);
        size_t n = json_array_size(fks);
        if (n && !(t->fks = calloc(n, sizeof *t->fks))) return NOMEM();
        for (size_t i = 0; i < n; i++) {
            t->nfks = i + 1;
            if ((rc = parse_fk(env, t, json_array_get(fks, i), i, &t->fks[i]))) return rc;
        }
    }
    const json_t *ixs = opt(schema, "indexes");
    size_t nix = 0;
    tsd_index *explicit_ix = NULL;
    if (ixs) {
        if (!json_is_array(ixs)) return BAD("%s.indexes: expected an array", t->name);
        nix = json_array_size(ixs);
        if (nix && !(explicit_ix = calloc(nix, sizeof *explicit_ix))) return NOMEM();
        for (size_t i = 0; i < nix; i++) {
            if ((rc = parse_index(env, t, json_array_get(ixs, i), i, &explicit_ix[i]))) {
                for (size_t k = 0; k <= i; k++) index_free(&explicit_ix[k]);
                free(explicit_ix);
                return rc;
            }
        }
    }
    rc = build_indexes(env, t, explicit_ix, nix);
    free(explicit_ix);
    if (rc) return rc;
    return parse_ttl(env, t, schema);
}

int tsd_table_parse(ts_env *env, const json_t *schema, tsd_table **out)
{
    if (!out) return tsenv_error(env, TS_ERR_INVALID, "tsd_table_parse: NULL out");
    *out = NULL;
    if (!schema) return tsenv_error(env, TS_ERR_INVALID, "tsd_table_parse: NULL schema");
    tsd_table *t = calloc(1, sizeof *t);
    if (!t) return NOMEM();
    t->ttl_col = -1;
    int rc = parse_table(env, schema, t);
    if (rc) {
        tsd_table_free(t);
        return rc;
    }
    *out = t;
    return TS_OK;
}

/* ---- canonical JSON --------------------------------------------------------- */

static int set_new(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *names_json(const tsd_table *t, const size_t *cols, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(t->cols[cols[i]].name))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *field_json(const tsd_field *f)
{
    json_t *o = json_object();
    int bad = !o;
    bad = bad || set_new(o, "name", json_string(f->name));
    bad = bad || set_new(o, "type", json_string(tsd_type_name(f->type)));
    bad = bad || set_new(o, "nullable", json_boolean(f->nullable));
    bad = bad || set_new(o, "unique", json_boolean(f->unique));
    if (!f->is_pk) {
        bad = bad || set_new(o, "createIndex", json_boolean(f->create_index));
        if (f->default_value)
            bad = bad || set_new(o, "defaultValue", json_deep_copy(f->default_value));
        if (f->default_now)
            bad = bad || set_new(o, "defaultValueType", json_string("currentTimestamp"));
        if (f->min_length >= 0) bad = bad || set_new(o, "minLength", json_integer(f->min_length));
        if (f->max_length >= 0) bad = bad || set_new(o, "maxLength", json_integer(f->max_length));
        if (f->min_value_json)
            bad = bad || set_new(o, "minValue", json_deep_copy(f->min_value_json));
        if (f->max_value_json)
            bad = bad || set_new(o, "maxValue", json_deep_copy(f->max_value_json));
    }
    if (f->field_id) bad = bad || set_new(o, "fieldId", json_string(f->field_id));
    if (f->comment) bad = bad || set_new(o, "comment", json_string(f->comment));
    if (f->type == TSD_VECTOR)
        bad = bad || set_new(o, "vectorConfig",
                             json_pack("{s:I, s:s}", "dimensions", (json_int_t)f->dimensions,
                                       "precision", tsd_precision_name(f->precision)));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *tsd_table_to_json(const tsd_table *t)
{
    if (!t) return NULL;
    /* containers are attached to o first, so one json_decref(o) frees all */
    json_t *o = json_object(), *pk = json_object(), *fields = json_array(), *ixs = json_array(),
           *fks = json_array();
    int bad = !o || set_new(o, "name", json_string(t->name));
    if (!bad && t->table_id) bad = set_new(o, "tableId", json_string(t->table_id));
    bad = bad || set_new(o, "isGlobal", json_boolean(t->is_global));
    bad = bad || set_new(o, "primaryKeyConfig", json_incref(pk));
    bad = bad || set_new(o, "fields", json_incref(fields));
    bad = bad || set_new(o, "indexes", json_incref(ixs));
    bad = bad || set_new(o, "foreignKeys", json_incref(fks));
    json_decref(pk);
    json_decref(fields);
    json_decref(ixs);
    json_decref(fks);
    bad = bad || set_new(pk, "name", json_string(t->cols[0].name));
    bad = bad || set_new(pk, "type", json_string(tsd_pk_type_name(t->pk_type)));
    if (!bad && t->pk_type == TSD_PK_SEQUENTIAL)
        bad = set_new(pk, "sequentialConfig",
                      json_pack("{s:I, s:I, s:b}", "initialValue", (json_int_t)t->seq_initial,
                                "increment", (json_int_t)t->seq_increment,
                                "useRandomIncrement", t->seq_random));
    size_t next = 1;
    for (size_t p = 0; p < t->nschema_fields && !bad; p++) {
        const tsd_field *f = (t->cols[0].declared && t->cols[0].schema_pos == (int)p)
                             ? &t->cols[0] : &t->cols[next++];
        bad = json_array_append_new(fields, field_json(f)) != 0;
    }
    for (size_t i = 0; i < t->nindexes && !bad; i++) {
        const tsd_index *ix = &t->indexes[i];
        if (ix->origin != TSD_IX_EXPLICIT) continue;
        json_t *j = json_object();
        bad = json_array_append_new(ixs, j) != 0;
        bad = bad || set_new(j, "fields", names_json(t, ix->cols, ix->nfields));
        bad = bad || set_new(j, "indexName", json_string(ix->name));
        bad = bad || set_new(j, "unique", json_boolean(ix->unique));
        bad = bad || set_new(j, "type", json_string(ix->module));
        if (!bad && ix->vector_config)
            bad = set_new(j, "vectorConfig", json_deep_copy(ix->vector_config));
    }
    for (size_t i = 0; i < t->nfks && !bad; i++) {
        const tsd_fk *fk = &t->fks[i];
        json_t *j = json_object(), *rf = json_array();
        bad = json_array_append_new(fks, j) != 0;
        bad = set_new(j, "fields", names_json(t, fk->cols, fk->nfields)) || bad;
        bad = set_new(j, "referencedTable", json_string(fk->ref_table)) || bad;
        bad = set_new(j, "referencedFields", rf) || bad; /* takes rf, even on failure */
        for (size_t k = 0; k < fk->nfields && !bad; k++)
            bad = json_array_append_new(rf, json_string(fk->ref_fields[k])) != 0;
        bad = bad || set_new(j, "name", json_string(fk->name));
        bad = bad || set_new(j, "onDelete", json_string(tsd_fk_action_name(fk->on_delete)));
        bad = bad || set_new(j, "onUpdate", json_string(tsd_fk_action_name(fk->on_update)));
    }
    if (!bad && t->ttl_ms > 0) {
        json_t *ttl = json_pack("{s:I}", "ttlMs", (json_int_t)t->ttl_ms);
        bad = set_new(o, "ttlConfig", ttl);
        if (!bad && t->ttl_col >= 0)
            bad = set_new(ttl, "sourceField", json_string(t->cols[t->ttl_col].name));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- a set of tables ------------------------------------------------------ */

static const tsd_table *find_table(const tsd_table *const *a, size_t n, const char *name,
                                   size_t *pos)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i]->name, name) == 0) {
            if (pos) *pos = i;
            return a[i];
        }
    return NULL;
}

/* Whether a referencing column of type c may hold values of a referenced
 * column of type p: the same key encoding. */
static int types_compatible(tsd_type c, tsd_type p)
{
    if (c == p) return 1;
    if (p == TSD_KEY) return c == TSD_INTEGER || c == TSD_TEXT;
    if (c == TSD_KEY) return p == TSD_INTEGER || p == TSD_TEXT;
    return 0;
}

static int same_set(const size_t *a, size_t an, const size_t *b, size_t bn)
{
    if (an != bn) return 0;
    for (size_t i = 0; i < an; i++) {
        int found = 0;
        for (size_t k = 0; k < bn; k++) found |= a[i] == b[k];
        if (!found) return 0;
    }
    return 1;
}

static int check_fk(ts_env *env, const tsd_table *t, size_t i, const tsd_table *p)
{
    const tsd_fk *fk = &t->fks[i];
    char path[PATH_MAX_];
    snprintf(path, sizeof path, "%s.foreignKeys[%zu]", t->name, i);
    if (t->is_global && !p->is_global)
        return BAD("%s.referencedTable: the global table '%s' cannot reference the space table "
                   "'%s'", path, t->name, p->name);
    size_t cols[TSD_INDEX_FIELDS_MAX];
    for (size_t k = 0; k < fk->nfields; k++) {
        long c = tsd_table_col(p, fk->ref_fields[k]);
        if (c < 0)
            return BAD("%s.referencedFields[%zu]: unknown field '%s' in table '%s'", path, k,
                       fk->ref_fields[k], p->name);
        for (size_t j = 0; j < k; j++)
            if (cols[j] == (size_t)c)
                return BAD("%s.referencedFields[%zu]: '%s' is listed twice", path, k,
                           fk->ref_fields[k]);
        cols[k] = (size_t)c;
        const tsd_field *cf = &t->cols[fk->cols[k]], *pf = &p->cols[c];
        if (!types_compatible(cf->type, pf->type))
            return BAD("%s.fields[%zu]: '%s' (%s) cannot reference %s.%s (%s)", path, k, cf->name,
                       tsd_type_name(cf->type), p->name, pf->name, tsd_type_name(pf->type));
    }
    int unique = fk->nfields == 1 && cols[0] == 0;
    for (size_t k = 0; k < p->nindexes && !unique; k++)
        unique = p->indexes[k].unique &&
                 same_set(p->indexes[k].cols, p->indexes[k].nfields, cols, fk->nfields);
    if (!unique)
        return BAD("%s.referencedFields: not the primary key or a unique key of table '%s'", path,
                   p->name);
    return TS_OK;
}

int tsd_schema_set_check(ts_env *env, const tsd_table *const *tables, size_t n,
                         const tsd_table *const *existing, size_t nexisting, size_t *order_out)
{
    if (n && !tables) return tsenv_error(env, TS_ERR_INVALID, "tsd_schema_set_check: NULL tables");
    if (nexisting && !existing)
        return tsenv_error(env, TS_ERR_INVALID, "tsd_schema_set_check: NULL existing");
    for (size_t i = 0; i < n; i++) {
        const tsd_table *t = tables[i];
        size_t pos;
        if (find_table(tables, i, t->name, &pos))
            return BAD("%s: the set has two tables of that name (positions %zu and %zu)", t->name,
                       pos, i);
        if (find_table(existing, nexisting, t->name, NULL))
            return tsenv_error(env, TS_ERR_TABLE_EXISTS, "%s: a table of that name exists",
                               t->name);
        if (!t->table_id) continue;
        for (size_t k = 0; k < i + nexisting; k++) {
            const tsd_table *o = k < i ? tables[k] : existing[k - i];
            if (o->table_id && strcmp(o->table_id, t->table_id) == 0)
                return BAD("%s.tableId: '%s' is also the tableId of table '%s'", t->name,
                           t->table_id, o->name);
        }
    }
    /* references */
    for (size_t i = 0; i < n; i++) {
        const tsd_table *t = tables[i];
        for (size_t k = 0; k < t->nfks; k++) {
            const tsd_fk *fk = &t->fks[k];
            const tsd_table *p = strcmp(fk->ref_table, t->name) == 0 ? t
                                 : find_table(tables, n, fk->ref_table, NULL);
            if (!p) p = find_table(existing, nexisting, fk->ref_table, NULL);
            if (!p)
                return BAD("%s.foreignKeys[%zu].referencedTable: unknown table '%s'", t->name, k,
                           fk->ref_table);
            int rc = check_fk(env, t, k, p);
            if (rc) return rc;
        }
    }
    /* creation order: repeatedly take the first table whose referenced
     * tables of the set are all placed */
    if (n == 0) return TS_OK;
    unsigned char *placed = calloc(n, 1);
    size_t *order = calloc(n, sizeof *order);
    if (!placed || !order) {
        free(placed);
        free(order);
        return NOMEM();
    }
    size_t done = 0;
    while (done < n) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            if (placed[i]) continue;
            int ready = 1;
            for (size_t k = 0; k < tables[i]->nfks && ready; k++) {
                size_t pos;
                if (strcmp(tables[i]->fks[k].ref_table, tables[i]->name) == 0) continue;
                if (find_table(tables, n, tables[i]->fks[k].ref_table, &pos) && !placed[pos])
                    ready = 0;
            }
            if (ready) pick = i;
        }
        if (pick == n) break;
        placed[pick] = 1;
        order[done++] = pick;
    }
    int rc = TS_OK;
    if (done < n) {
        /* every unplaced table references an unplaced one: walk until a repeat */
        size_t *path = calloc(n + 1, sizeof *path), len = 0, cur = 0;
        if (!path) {
            rc = NOMEM();
        } else {
            while (placed[cur]) cur++;
            for (;;) {
                size_t seen = len;
                for (size_t k = 0; k < len; k++)
                    if (path[k] == cur) { seen = k; break; }
                if (seen < len) {
                    char msg[900];
                    size_t m = 0;
                    for (size_t k = seen; k < len && m < sizeof msg; k++)
                        m += (size_t)snprintf(msg + m, sizeof msg - m, "%s -> ",
                                              tables[path[k]]->name);
                    if (m < sizeof msg)
                        snprintf(msg + m, sizeof msg - m, "%s", tables[cur]->name);
                    rc = BAD("foreign keys form a cycle: %s", msg);
                    break;
                }
                path[len++] = cur;
                const tsd_table *t = tables[cur];
                for (size_t k = 0; k < t->nfks; k++) {
                    size_t pos;
                    if (strcmp(t->fks[k].ref_table, t->name) == 0) continue;
                    if (find_table(tables, n, t->fks[k].ref_table, &pos) && !placed[pos]) {
                        cur = pos;
                        break;
                    }
                }
            }
            free(path);
        }
    } else if (order_out) {
        memcpy(order_out, order, n * sizeof *order);
    }
    free(placed);
    free(order);
    return rc;
}
