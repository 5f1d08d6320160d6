/*
 * Schemas (kernel/data/schema.h): TableSchema JSON parsing with every
 * default, every refusal with its JSON path, the primary key column, the
 * index mapping (unique fields, createIndex, explicit, foreign keys), the
 * canonical JSON and its round trip, and the checks across a set of tables
 * (references, types, global/space, creation order, cycles).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "base/env.h"
#include "data/schema.h"
#include "data/value.h"
#include "tsupport.h"

static ts_env env;

static void setup(void)
{
    ck_assert_int_eq(tsenv_init(&env), TS_OK);
}

static void teardown(void)
{
    tsenv_destroy(&env);
}

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    ck_assert_msg(j != NULL, "bad test JSON: %s: %s", text, e.text);
    return j;
}

/* Parse a schema that must be valid. */
static tsd_table *T(const char *text)
{
    json_t *j = J(text);
    tsd_table *t = NULL;
    int rc = tsd_table_parse(&env, j, &t);
    ck_assert_msg(rc == TS_OK, "schema refused (%d): %s\n  %s", rc, tsenv_errmsg(&env), text);
    json_decref(j);
    return t;
}

/* Parse a schema that must be refused with code and exactly msg. */
static void refused(const char *text, int code, const char *msg)
{
    json_t *j = J(text);
    tsd_table *t = (tsd_table *)&env; /* must be reset to NULL */
    int rc = tsd_table_parse(&env, j, &t);
    ck_assert_msg(rc == code, "want %d, got %d (%s)\n  %s", code, rc,
                  rc ? tsenv_errmsg(&env) : "accepted", text);
    ck_assert_ptr_null(t);
    ck_assert_msg(strcmp(tsenv_errmsg(&env), msg) == 0, "message\n  got:  %s\n  want: %s",
                  tsenv_errmsg(&env), msg);
    json_decref(j);
}

static void assert_json_eq(const json_t *got, const char *want_text)
{
    json_t *want = J(want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        ck_abort_msg("JSON differs\n  got:  %s\n  want: %s", g, w);
    }
    json_decref(want);
}

/* ---- defaults and canonical JSON ---------------------------------------- */

START_TEST(minimal_defaults)
{
    tsd_table *t = T("{\"name\": \"t\", \"fields\": []}");
    ck_assert_str_eq(t->name, "t");
    ck_assert_ptr_null(t->table_id);
    ck_assert_int_eq(t->is_global, 0);
    ck_assert_int_eq(t->pk_type, TSD_PK_SEQUENTIAL);
    ck_assert_int_eq(t->seq_initial, 1);
    ck_assert_int_eq(t->seq_increment, 1);
    ck_assert_int_eq(t->seq_random, 0);
    ck_assert_uint_eq(t->ncols, 1);
    ck_assert_str_eq(t->cols[0].name, "id");
    ck_assert_int_eq(t->cols[0].type, TSD_KEY);
    ck_assert_int_eq(t->cols[0].is_pk, 1);
    ck_assert_int_eq(t->cols[0].declared, 0);
    ck_assert_int_eq(t->cols[0].nullable, 0);
    ck_assert_uint_eq(t->nindexes, 0);
    ck_assert_uint_eq(t->nfks, 0);
    ck_assert_int_eq(t->ttl_ms, 0);
    ck_assert_int_eq(t->ttl_col, -1);
    json_t *j = tsd_table_to_json(t);
    assert_json_eq(j, "{\"name\": \"t\", \"isGlobal\": false, \"primaryKeyConfig\": {\"name\": "
                      "\"id\", \"type\": \"sequential\", \"sequentialConfig\": {\"initialValue\": "
                      "1, \"increment\": 1, \"useRandomIncrement\": false}}, \"fields\": [], "
                      "\"indexes\": [], \"foreignKeys\": []}");
    json_decref(j);
    tsd_table_free(t);
}
END_TEST

START_TEST(field_defaults)
{
    tsd_table *t = T("{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}]}");
    ck_assert_uint_eq(t->ncols, 2);
    const tsd_field *f = &t->cols[1];
    ck_assert_str_eq(f->name, "a");
    ck_assert_str_eq(f->table, "t");
    ck_assert_uint_eq(f->col, 1);
    ck_assert_int_eq(f->type, TSD_TEXT);
    ck_assert_int_eq(f->nullable, 1);
    ck_assert_int_eq(f->unique, 0);
    ck_assert_int_eq(f->create_index, 0);
    ck_assert_ptr_null(f->default_value);
    ck_assert_int_eq(f->default_now, 0);
    ck_assert_int_eq(f->min_length, -1);
    ck_assert_int_eq(f->max_length, -1);
    ck_assert_int_eq(f->min_value.set, 0);
    ck_assert_int_eq(f->max_value.set, 0);
    ck_assert_ptr_null(f->field_id);
    ck_assert_ptr_null(f->comment);
    json_t *j = tsd_table_to_json(t);
    assert_json_eq(json_array_get(json_object_get(j, "fields"), 0),
                   "{\"name\": \"a\", \"type\": \"text\", \"nullable\": true, \"unique\": false, "
                   "\"createIndex\": false}");
    json_decref(j);
    tsd_table_free(t);
}
END_TEST

static const char *FULL =
    "{\"name\": \"users\", \"tableId\": \"users_v1\", \"isGlobal\": true,"
    " \"primaryKeyConfig\": {\"name\": \"uid\", \"type\": \"sequential\","
    "   \"sequentialConfig\": {\"initialValue\": 10000, \"increment\": 50, \"useRandomIncrement\": true}},"
    " \"fields\": ["
    "  {\"name\": \"username\", \"type\": \"text\", \"nullable\": false, \"unique\": true,"
    "   \"minLength\": 3, \"maxLength\": 20, \"fieldId\": \"f1\", \"comment\": \"login\"},"
    "  {\"name\": \"uid\", \"type\": \"integer\", \"comment\": \"the key\"},"
    "  {\"name\": \"age\", \"type\": \"integer\", \"minValue\": 0, \"maxValue\": 150.0,"
    "   \"defaultValue\": 18, \"createIndex\": true},"
    "  {\"name\": \"score\", \"type\": \"double\", \"minValue\": -1, \"maxValue\": 1.5},"
    "  {\"name\": \"big\", \"type\": \"bigInt\", \"minValue\": \"-100000000000000000000\","
    "   \"maxValue\": \"0100\"},"
    "  {\"name\": \"born\", \"type\": \"datetime\", \"minValue\": \"1900-01-01\","
    "   \"maxValue\": 4102444800000},"
    "  {\"name\": \"created\", \"type\": \"datetime\", \"defaultValueType\": \"currentTimestamp\"},"
    "  {\"name\": \"photo\", \"type\": \"blob\", \"maxLength\": 1000, \"defaultValue\": \"AAE\"},"
    "  {\"name\": \"active\", \"type\": \"boolean\", \"defaultValue\": true},"
    "  {\"name\": \"tags\", \"type\": \"array\", \"maxLength\": 5, \"defaultValue\": [\"a\"]},"
    "  {\"name\": \"meta\", \"type\": \"json\", \"defaultValue\": {\"k\": [1, 2]}},"
    "  {\"name\": \"emb\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 4}},"
    "  {\"name\": \"emb8\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 2, \"precision\": \"int8\"}},"
    "  {\"name\": \"a\", \"type\": \"integer\"}, {\"name\": \"b\", \"type\": \"text\"}"
    " ],"
    " \"indexes\": [{\"fields\": [\"a\", \"b\"], \"unique\": true},"
    "   {\"fields\": [\"emb\"], \"type\": \"ngh\", \"indexName\": \"emb_ann\","
    "    \"vectorConfig\": {\"distanceMetric\": \"l2\", \"parameters\": {\"M\": 16}}},"
    "   {\"fields\": [\"born\"], \"type\": \"hash\"}],"
    " \"foreignKeys\": [],"
    " \"ttlConfig\": {\"ttlMs\": 86400000, \"sourceField\": \"created\"}}";

static const char *FULL_CANON =
    "{\"name\": \"users\", \"tableId\": \"users_v1\", \"isGlobal\": true,"
    " \"primaryKeyConfig\": {\"name\": \"uid\", \"type\": \"sequential\","
    "   \"sequentialConfig\": {\"initialValue\": 10000, \"increment\": 50, \"useRandomIncrement\": true}},"
    " \"fields\": ["
    "  {\"name\": \"username\", \"type\": \"text\", \"nullable\": false, \"unique\": true,"
    "   \"createIndex\": false, \"minLength\": 3, \"maxLength\": 20, \"fieldId\": \"f1\", \"comment\": \"login\"},"
    "  {\"name\": \"uid\", \"type\": \"integer\", \"nullable\": false, \"unique\": true, \"comment\": \"the key\"},"
    "  {\"name\": \"age\", \"type\": \"integer\", \"nullable\": true, \"unique\": false, \"createIndex\": true,"
    "   \"minValue\": 0, \"maxValue\": 150, \"defaultValue\": 18},"
    "  {\"name\": \"score\", \"type\": \"double\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"minValue\": -1.0, \"maxValue\": 1.5},"
    "  {\"name\": \"big\", \"type\": \"bigInt\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"minValue\": \"-100000000000000000000\", \"maxValue\": 100},"
    "  {\"name\": \"born\", \"type\": \"datetime\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"minValue\": \"1900-01-01T00:00:00.000Z\", \"maxValue\": \"2100-01-01T00:00:00.000Z\"},"
    "  {\"name\": \"created\", \"type\": \"datetime\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"defaultValueType\": \"currentTimestamp\"},"
    "  {\"name\": \"photo\", \"type\": \"blob\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"maxLength\": 1000, \"defaultValue\": \"AAE=\"},"
    "  {\"name\": \"active\", \"type\": \"boolean\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"defaultValue\": true},"
    "  {\"name\": \"tags\", \"type\": \"array\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"maxLength\": 5, \"defaultValue\": [\"a\"]},"
    "  {\"name\": \"meta\", \"type\": \"json\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"defaultValue\": {\"k\": [1, 2]}},"
    "  {\"name\": \"emb\", \"type\": \"vector\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"vectorConfig\": {\"dimensions\": 4, \"precision\": \"float32\"}},"
    "  {\"name\": \"emb8\", \"type\": \"vector\", \"nullable\": true, \"unique\": false, \"createIndex\": false,"
    "   \"vectorConfig\": {\"dimensions\": 2, \"precision\": \"int8\"}},"
    "  {\"name\": \"a\", \"type\": \"integer\", \"nullable\": true, \"unique\": false, \"createIndex\": false},"
    "  {\"name\": \"b\", \"type\": \"text\", \"nullable\": true, \"unique\": false, \"createIndex\": false}"
    " ],"
    " \"indexes\": [{\"fields\": [\"a\", \"b\"], \"indexName\": \"idx_a_b\", \"unique\": true, \"type\": \"btree\"},"
    "   {\"fields\": [\"emb\"], \"indexName\": \"emb_ann\", \"unique\": false, \"type\": \"ngh\","
    "    \"vectorConfig\": {\"distanceMetric\": \"l2\", \"parameters\": {\"M\": 16}}},"
    "   {\"fields\": [\"born\"], \"indexName\": \"idx_born\", \"unique\": false, \"type\": \"hash\"}],"
    " \"foreignKeys\": [],"
    " \"ttlConfig\": {\"ttlMs\": 86400000, \"sourceField\": \"created\"}}";

START_TEST(full_schema_canonical)
{
    tsd_table *t = T(FULL);
    ck_assert_str_eq(t->table_id, "users_v1");
    ck_assert_int_eq(t->is_global, 1);
    ck_assert_int_eq(t->seq_initial, 10000);
    ck_assert_int_eq(t->seq_increment, 50);
    ck_assert_int_eq(t->seq_random, 1);
    /* the declared key became column 0; the others keep their order */
    ck_assert_uint_eq(t->nschema_fields, 15);
    ck_assert_uint_eq(t->ncols, 15);
    ck_assert_str_eq(t->cols[0].name, "uid");
    ck_assert_int_eq(t->cols[0].type, TSD_INTEGER);
    ck_assert_int_eq(t->cols[0].declared, 1);
    ck_assert_int_eq(t->cols[0].schema_pos, 1);
    ck_assert_str_eq(t->cols[1].name, "username");
    ck_assert_str_eq(t->cols[2].name, "age");
    ck_assert_str_eq(t->cols[14].name, "b");
    ck_assert_int_eq(t->cols[2].min_value.i, 0);
    ck_assert_int_eq(t->cols[2].max_value.i, 150);
    ck_assert_str_eq(t->cols[4].min_value.big, "100000000000000000000");
    ck_assert_int_eq(t->cols[4].min_value.neg, 1);
    ck_assert_ptr_null(t->cols[4].max_value.big);
    ck_assert_int_eq(t->cols[4].max_value.i, 100);
    ck_assert_int_eq(t->cols[5].min_value.i, -2208988800000LL);
    ck_assert_uint_eq(t->cols[12].dimensions, 2);
    ck_assert_int_eq(t->cols[12].precision, TSD_VEC_INT8);
    ck_assert_int_eq(t->ttl_ms, 86400000);
    ck_assert_int_eq(t->ttl_col, 6);
    json_t *j = tsd_table_to_json(t);
    assert_json_eq(j, FULL_CANON);
    /* the canonical form parses to the same table */
    tsd_table *t2 = NULL;
    ck_assert_int_eq(tsd_table_parse(&env, j, &t2), TS_OK);
    json_t *j2 = tsd_table_to_json(t2);
    ck_assert(json_equal(j, j2));
    /* and field order in the canonical JSON is the schema's */
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "fields"), 1), "name")), "uid");
    json_decref(j);
    json_decref(j2);
    tsd_table_free(t);
    tsd_table_free(t2);
}
END_TEST

START_TEST(nulls_mean_absent)
{
    tsd_table *t = T("{\"name\": \"t\", \"tableId\": null, \"isGlobal\": null, \"primaryKeyConfig\":"
                     " null, \"indexes\": null, \"foreignKeys\": null, \"ttlConfig\": null,"
                     " \"fields\": [{\"name\": \"a\", \"type\": \"text\", \"nullable\": null,"
                     " \"defaultValue\": null, \"minLength\": null, \"comment\": null,"
                     " \"vectorConfig\": null}]}");
    ck_assert_int_eq(t->cols[1].nullable, 1);
    ck_assert_ptr_null(t->cols[1].default_value);
    ck_assert_int_eq(t->cols[1].min_length, -1);
    ck_assert_ptr_null(t->table_id);
    tsd_table_free(t);
}
END_TEST

START_TEST(name_limits)
{
    char name[80], text[300];
    memset(name, 'a', 64);
    name[64] = 0;
    snprintf(text, sizeof text, "{\"name\": \"%s\", \"fields\": [{\"name\": \"%s\", \"type\": "
             "\"integer\"}]}", name, name);
    tsd_table *t = T(text);
    ck_assert_uint_eq(strlen(t->name), 64);
    tsd_table_free(t);
    name[64] = 'a';
    name[65] = 0;
    snprintf(text, sizeof text, "{\"name\": \"%s\", \"fields\": []}", name);
    char msg[300];
    snprintf(msg, sizeof msg, "schema.name: invalid name '%s' (must match ^[A-Za-z][A-Za-z0-9_]*$, "
             "at most 64 bytes)", name);
    refused(text, TS_ERR_VALIDATION, msg);
    ck_assert(tsd_name_ok("A_1", 64));
    ck_assert(tsd_name_ok("z", 64));
    ck_assert(!tsd_name_ok("_a", 64));
    ck_assert(!tsd_name_ok("1a", 64));
    ck_assert(!tsd_name_ok("a-b", 64));
    ck_assert(!tsd_name_ok("a b", 64));
    ck_assert(!tsd_name_ok("", 64));
    ck_assert(!tsd_name_ok("\xc3\xa9", 64));
    ck_assert(!tsd_name_ok(NULL, 64));
}
END_TEST

/* ---- refusals ------------------------------------------------------------ */

typedef struct bad_case {
    const char *schema;
    const char *msg;
} bad_case;

#define F1(field) "{\"name\": \"t\", \"fields\": [" field "]}"

static const bad_case bad_cases[] = {
    { "[]", "schema: expected an object" },
    { "{\"fields\": []}", "schema.name: required" },
    { "{\"name\": 5, \"fields\": []}", "schema.name: expected a string" },
    { "{\"name\": \"1t\", \"fields\": []}",
      "schema.name: invalid name '1t' (must match ^[A-Za-z][A-Za-z0-9_]*$, at most 64 bytes)" },
    { "{\"name\": \"t\"}", "t.fields: required (may be empty)" },
    { "{\"name\": \"t\", \"fields\": {}}", "t.fields: expected an array" },
    { "{\"name\": \"t\", \"fields\": [], \"feilds\": []}", "t: unknown key 'feilds'" },
    { "{\"name\": \"t\", \"fields\": [], \"isGlobal\": 1}", "t.isGlobal: expected true or false" },
    { "{\"name\": \"t\", \"fields\": [], \"tableId\": \"\"}", "t.tableId: must have 1 to 64 bytes" },
    { "{\"name\": \"t\", \"fields\": [], \"tableId\": 7}", "t.tableId: expected a string" },
    /* primaryKeyConfig */
    { "{\"name\": \"t\", \"fields\": [], \"primaryKeyConfig\": []}",
      "t.primaryKeyConfig: expected an object" },
    { "{\"name\": \"t\", \"fields\": [], \"primaryKeyConfig\": {\"type\": \"seq\"}}",
      "t.primaryKeyConfig.type: unknown primary key type 'seq'" },
    { "{\"name\": \"t\", \"fields\": [], \"primaryKeyConfig\": {\"name\": \"my-id\"}}",
      "t.primaryKeyConfig.name: invalid name 'my-id' (must match ^[A-Za-z][A-Za-z0-9_]*$, at most "
      "64 bytes)" },
    { "{\"name\": \"t\", \"fields\": [], \"primaryKeyConfig\": {\"isOrdered\": true}}",
      "t.primaryKeyConfig: unknown key 'isOrdered'" },
    { "{\"name\": \"t\", \"fields\": [], \"primaryKeyConfig\": {\"type\": \"shortCode\","
      " \"sequentialConfig\": {}}}",
      "t.primaryKeyConfig.sequentialConfig: only for type sequential" },
    { "{\"name\": \"t\", \"fields\": [], \"primaryKeyConfig\": {\"sequentialConfig\":"
      " {\"increment\": 0}}}",
      "t.primaryKeyConfig.sequentialConfig.increment: 0 is out of range [1, 9223372036854775807]" },
    { "{\"name\": \"t\", \"fields\": [], \"primaryKeyConfig\": {\"sequentialConfig\":"
      " {\"increment\": 1.5}}}",
      "t.primaryKeyConfig.sequentialConfig.increment: expected an integer" },
    { "{\"name\": \"t\", \"fields\": [], \"primaryKeyConfig\": {\"sequentialConfig\":"
      " {\"start\": 1}}}",
      "t.primaryKeyConfig.sequentialConfig: unknown key 'start'" },
    /* fields */
    { F1("5"), "t.fields[0]: expected an object" },
    { F1("{\"type\": \"text\"}"), "t.fields[0].name: required" },
    { F1("{\"name\": \"a\"}"), "t.fields[0].type: required" },
    { F1("{\"name\": \"a\", \"type\": \"int\"}, {\"name\": \"b\", \"type\": \"int\"}"),
      "t.fields[0].type: unknown type 'int'" },
    { "{\"name\": \"users\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}, {\"name\": \"b\","
      " \"type\": \"text\"}, {\"name\": \"c\", \"type\": \"strng\"}]}",
      "users.fields[2].type: unknown type 'strng'" },
    { F1("{\"name\": \"a\", \"type\": \"key\"}"), "t.fields[0].type: unknown type 'key'" },
    { F1("{\"name\": \"a b\", \"type\": \"text\"}"),
      "t.fields[0].name: invalid name 'a b' (must match ^[A-Za-z][A-Za-z0-9_]*$, at most 64 bytes)" },
    { F1("{\"name\": \"a\", \"type\": \"text\"}, {\"name\": \"b\", \"type\": \"text\"},"
         " {\"name\": \"a\", \"type\": \"integer\"}"),
      "t.fields[2].name: duplicate field 'a' (also t.fields[0])" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"nulable\": false}"),
      "t.fields[0]: unknown key 'nulable'" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"nullable\": \"no\"}"),
      "t.fields[0].nullable: expected true or false" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"unique\": 1}"),
      "t.fields[0].unique: expected true or false" },
    { F1("{\"name\": \"a\", \"type\": \"json\", \"unique\": true}"),
      "t.fields[0].unique: json fields cannot be indexed" },
    { F1("{\"name\": \"a\", \"type\": \"array\", \"createIndex\": true}"),
      "t.fields[0].createIndex: array fields cannot be indexed" },
    { F1("{\"name\": \"a\", \"type\": \"integer\", \"minLength\": 1}"),
      "t.fields[0].minLength: only text, blob and array fields have minLength" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"maxLength\": -1}"),
      "t.fields[0].maxLength: -1 is out of range [0, 9223372036854775807]" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"minLength\": 5, \"maxLength\": 4}"),
      "t.fields[0]: minLength 5 is above maxLength 4" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"minValue\": 1}"),
      "t.fields[0].minValue: only integer, bigInt, double and datetime fields have minValue" },
    { F1("{\"name\": \"a\", \"type\": \"integer\", \"minValue\": \"1\"}"),
      "t.fields[0].minValue: expected an integer, got a string" },
    { F1("{\"name\": \"a\", \"type\": \"integer\", \"maxValue\": 1.5}"),
      "t.fields[0].maxValue: 1.5 is not an integer within int64" },
    { F1("{\"name\": \"a\", \"type\": \"integer\", \"minValue\": 5, \"maxValue\": 4}"),
      "t.fields[0]: minValue is above maxValue" },
    { F1("{\"name\": \"a\", \"type\": \"double\", \"minValue\": 0.5, \"maxValue\": 0.25}"),
      "t.fields[0]: minValue is above maxValue" },
    { F1("{\"name\": \"a\", \"type\": \"bigInt\", \"minValue\": \"100000000000000000000\","
         " \"maxValue\": \"99999999999999999999\"}"),
      "t.fields[0]: minValue is above maxValue" },
    { F1("{\"name\": \"a\", \"type\": \"datetime\", \"minValue\": \"2024-01-02\","
         " \"maxValue\": \"2024-01-01T23:59:59Z\"}"),
      "t.fields[0]: minValue is above maxValue" },
    { F1("{\"name\": \"a\", \"type\": \"datetime\", \"minValue\": \"yesterday\"}"),
      "t.fields[0].minValue: 'yesterday' is not an ISO-8601 datetime in years 0000-9999" },
    { F1("{\"name\": \"a\", \"type\": \"integer\", \"defaultValue\": \"5\"}"),
      "t.fields[0].defaultValue: expected an integer, got a string" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"maxLength\": 3, \"defaultValue\": \"abcd\"}"),
      "t.fields[0].defaultValue: 4 characters, above maxLength 3" },
    { F1("{\"name\": \"a\", \"type\": \"integer\", \"minValue\": 10, \"defaultValue\": 9}"),
      "t.fields[0].defaultValue: 9 is below minValue 10" },
    { F1("{\"name\": \"a\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 2},"
         " \"defaultValue\": [1]}"),
      "t.fields[0].defaultValue: expected 2 dimensions, got 1" },
    { F1("{\"name\": \"a\", \"type\": \"datetime\", \"defaultValue\": \"2024-01-01\","
         " \"defaultValueType\": \"currentTimestamp\"}"),
      "t.fields[0]: defaultValue and defaultValueType currentTimestamp exclude each other" },
    { F1("{\"name\": \"a\", \"type\": \"datetime\", \"defaultValueType\": \"now\"}"),
      "t.fields[0].defaultValueType: unknown default type 'now' (currentTimestamp or none)" },
    { F1("{\"name\": \"a\", \"type\": \"boolean\", \"defaultValueType\": \"currentTimestamp\"}"),
      "t.fields[0].defaultValueType: currentTimestamp needs a datetime, integer or text field" },
    { F1("{\"name\": \"a\", \"type\": \"vector\"}"),
      "t.fields[0].vectorConfig: required for a vector field (with dimensions)" },
    { F1("{\"name\": \"a\", \"type\": \"vector\", \"vectorConfig\": {}}"),
      "t.fields[0].vectorConfig.dimensions: required" },
    { F1("{\"name\": \"a\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 0}}"),
      "t.fields[0].vectorConfig.dimensions: 0 is out of range [1, 65536]" },
    { F1("{\"name\": \"a\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 65537}}"),
      "t.fields[0].vectorConfig.dimensions: 65537 is out of range [1, 65536]" },
    { F1("{\"name\": \"a\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 2,"
         " \"precision\": \"float64\"}}"),
      "t.fields[0].vectorConfig.precision: unknown precision 'float64'" },
    { F1("{\"name\": \"a\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 2,"
         " \"metric\": \"l2\"}}"),
      "t.fields[0].vectorConfig: unknown key 'metric'" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"vectorConfig\": {\"dimensions\": 2}}"),
      "t.fields[0].vectorConfig: only vector fields have a vectorConfig" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"fieldId\": \"\"}"),
      "t.fields[0].fieldId: must have 1 to 64 bytes" },
    { F1("{\"name\": \"a\", \"type\": \"text\", \"comment\": 5}"),
      "t.fields[0].comment: expected a string" },
    /* the primary key as a field */
    { F1("{\"name\": \"id\", \"type\": \"text\"}"),
      "t.fields[0].type: the primary key 'id' (sequential) must be integer" },
    { "{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"timestampBased\"}, \"fields\": "
      "[{\"name\": \"id\", \"type\": \"bigInt\"}]}",
      "t.fields[0].type: the primary key 'id' (timestampBased) must be integer" },
    { "{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"datePrefixed\"}, \"fields\": "
      "[{\"name\": \"id\", \"type\": \"integer\"}]}",
      "t.fields[0].type: the primary key 'id' (datePrefixed) must be text" },
    { "{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"none\"}, \"fields\": "
      "[{\"name\": \"id\", \"type\": \"double\"}]}",
      "t.fields[0].type: the primary key 'id' (none) must be integer or text" },
    { F1("{\"name\": \"id\", \"type\": \"integer\", \"nullable\": true}"),
      "t.fields[0].nullable: the primary key cannot be nullable" },
    { F1("{\"name\": \"id\", \"type\": \"integer\", \"unique\": false}"),
      "t.fields[0].unique: the primary key is always unique" },
    { F1("{\"name\": \"id\", \"type\": \"integer\", \"minValue\": 1}"),
      "t.fields[0].minValue: not supported on the primary key 'id'" },
    { F1("{\"name\": \"id\", \"type\": \"integer\", \"defaultValue\": 1}"),
      "t.fields[0].defaultValue: not supported on the primary key 'id'" },
    { F1("{\"name\": \"id\", \"type\": \"integer\", \"colour\": 1}"),
      "t.fields[0]: unknown key 'colour'" },
    { F1("{\"name\": \"id\", \"type\": \"integer\"}, {\"name\": \"id\", \"type\": \"integer\"}"),
      "t.fields[1].name: duplicate field 'id' (also t.fields[0])" },
    /* indexes */
    { "{\"name\": \"t\", \"fields\": [], \"indexes\": {}}", "t.indexes: expected an array" },
    { "{\"name\": \"t\", \"fields\": [], \"indexes\": [5]}", "t.indexes[0]: expected an object" },
    { "{\"name\": \"t\", \"fields\": [], \"indexes\": [{}]}", "t.indexes[0].fields: required" },
    { "{\"name\": \"t\", \"fields\": [], \"indexes\": [{\"fields\": []}]}",
      "t.indexes[0].fields: expected a non-empty array of field names" },
    { "{\"name\": \"users\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}], \"indexes\":"
      " [{\"fields\": [\"a\", \"x\"]}]}",
      "users.indexes[0].fields[1]: unknown field 'x'" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}], \"indexes\":"
      " [{\"fields\": [\"a\", 1]}]}",
      "t.indexes[0].fields[1]: expected a field name" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}], \"indexes\":"
      " [{\"fields\": [\"a\", \"a\"]}]}",
      "t.indexes[0].fields[1]: 'a' is listed twice" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}], \"indexes\":"
      " [{\"fields\": [\"a\"], \"name\": \"x\"}]}",
      "t.indexes[0]: unknown key 'name'" },
    { "{\"name\": \"t\", \"fields\": [], \"indexes\": [{\"fields\": [\"id\"]}]}",
      "t.indexes[0].fields: the primary key 'id' is always indexed" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}], \"indexes\":"
      " [{\"fields\": [\"a\"], \"type\": \"b-tree\"}]}",
      "t.indexes[0].type: invalid name 'b-tree' (must match ^[A-Za-z][A-Za-z0-9_]*$, at most 64 "
      "bytes)" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"json\"}], \"indexes\":"
      " [{\"fields\": [\"a\"]}]}",
      "t.indexes[0].fields[0]: 'a' (json) cannot be part of a btree index key" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"v\", \"type\": \"vector\", \"vectorConfig\":"
      " {\"dimensions\": 2}}], \"indexes\": [{\"fields\": [\"v\"], \"type\": \"hash\"}]}",
      "t.indexes[0].fields[0]: 'v' (vector) cannot be part of a hash index key" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}], \"indexes\":"
      " [{\"fields\": [\"a\"], \"type\": \"ngh\"}]}",
      "t.indexes[0].fields: an ngh index takes exactly one vector field" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"v\", \"type\": \"vector\", \"vectorConfig\":"
      " {\"dimensions\": 2}}], \"indexes\": [{\"fields\": [\"v\"], \"type\": \"ngh\","
      " \"unique\": true}]}",
      "t.indexes[0].unique: an ngh index cannot be unique" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"v\", \"type\": \"vector\", \"vectorConfig\":"
      " {\"dimensions\": 2}}], \"indexes\": [{\"fields\": [\"v\"], \"type\": \"ngh\","
      " \"vectorConfig\": {\"distanceMetric\": \"manhattan\"}}]}",
      "t.indexes[0].vectorConfig.distanceMetric: unknown distance metric 'manhattan'" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"v\", \"type\": \"vector\", \"vectorConfig\":"
      " {\"dimensions\": 2}}], \"indexes\": [{\"fields\": [\"v\"], \"type\": \"ngh\","
      " \"vectorConfig\": {\"parameters\": {\"M\": -1}}}]}",
      "t.indexes[0].vectorConfig.parameters.M: expected a number (0 or more) or a boolean" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}], \"indexes\":"
      " [{\"fields\": [\"a\"], \"vectorConfig\": {}}]}",
      "t.indexes[0].vectorConfig: only ngh indexes have a vectorConfig" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}, {\"name\": \"b\","
      " \"type\": \"text\"}], \"indexes\": [{\"fields\": [\"a\"]}, {\"fields\": [\"b\"],"
      " \"indexName\": \"idx_a\"}]}",
      "t.indexes[1]: index name 'idx_a' is also the name of t.indexes[0]" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"email\", \"type\": \"text\", \"unique\": true},"
      " {\"name\": \"b\", \"type\": \"text\"}], \"indexes\": [{\"fields\": [\"b\"],"
      " \"indexName\": \"uniq_email\"}]}",
      "t.indexes[0]: index name 'uniq_email' is also the name of the unique index of field 'email'" },
    /* foreign keys */
    { "{\"name\": \"t\", \"fields\": [], \"foreignKeys\": [{\"fields\": [\"x\"],"
      " \"referencedTable\": \"p\", \"referencedFields\": [\"id\"]}]}",
      "t.foreignKeys[0].fields[0]: unknown field 'x'" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\"}], \"foreignKeys\":"
      " [{\"fields\": [\"p\"], \"referencedFields\": [\"id\"]}]}",
      "t.foreignKeys[0].referencedTable: required" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\"}], \"foreignKeys\":"
      " [{\"fields\": [\"p\"], \"referencedTable\": \"par\"}]}",
      "t.foreignKeys[0].referencedFields: required" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\"}], \"foreignKeys\":"
      " [{\"fields\": [\"p\"], \"referencedTable\": \"par\", \"referencedFields\": [\"a\", \"b\"]}]}",
      "t.foreignKeys[0].referencedFields: expected an array of 1 field name, like fields" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\", \"nullable\": false}],"
      " \"foreignKeys\": [{\"fields\": [\"p\"], \"referencedTable\": \"par\","
      " \"referencedFields\": [\"id\"], \"onDelete\": \"setNull\"}]}",
      "t.foreignKeys[0].onDelete: setNull on the non-nullable field 'p'" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\", \"nullable\": false}],"
      " \"foreignKeys\": [{\"fields\": [\"p\"], \"referencedTable\": \"par\","
      " \"referencedFields\": [\"id\"], \"onUpdate\": \"setDefault\"}]}",
      "t.foreignKeys[0].onUpdate: setDefault on 'p', which has no default and is not nullable" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\"}], \"foreignKeys\":"
      " [{\"fields\": [\"p\"], \"referencedTable\": \"par\", \"referencedFields\": [\"id\"],"
      " \"onDelete\": \"delete\"}]}",
      "t.foreignKeys[0].onDelete: unknown action 'delete'" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\"}], \"foreignKeys\":"
      " [{\"fields\": [\"p\"], \"referencedTable\": \"par\", \"referencedFields\": [\"id\"]},"
      " {\"fields\": [\"p\"], \"referencedTable\": \"q\", \"referencedFields\": [\"id\"]}]}",
      "t.foreignKeys[1].name: foreign key name 'fk_p' is also used by t.foreignKeys[0]" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"json\"}], \"foreignKeys\":"
      " [{\"fields\": [\"p\"], \"referencedTable\": \"par\", \"referencedFields\": [\"id\"]}]}",
      "t.foreignKeys[0].fields[0]: 'p' (json) cannot reference another table" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\"}], \"foreignKeys\":"
      " [{\"fields\": [\"p\"], \"referencedTable\": \"par\", \"referencedFields\": [\"id\"],"
      " \"enabled\": true}]}",
      "t.foreignKeys[0]: unknown key 'enabled'" },
    { "{\"name\": \"t\", \"fields\": [], \"foreignKeys\": [{\"fields\": [\"id\"],"
      " \"referencedTable\": \"par\", \"referencedFields\": [\"id\"], \"onDelete\": \"setNull\"}]}",
      "t.foreignKeys[0].onDelete: setNull on the non-nullable field 'id'" },
    /* ttl */
    { "{\"name\": \"t\", \"fields\": [], \"ttlConfig\": {}}", "t.ttlConfig.ttlMs: required" },
    { "{\"name\": \"t\", \"fields\": [], \"ttlConfig\": {\"ttlMs\": 0}}",
      "t.ttlConfig.ttlMs: 0 is out of range [1, 9223372036854775807]" },
    { "{\"name\": \"t\", \"fields\": [], \"ttlConfig\": {\"ttlMs\": 5, \"sourceField\": \"x\"}}",
      "t.ttlConfig.sourceField: unknown field 'x'" },
    { "{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"integer\"}], \"ttlConfig\":"
      " {\"ttlMs\": 5, \"sourceField\": \"a\"}}",
      "t.ttlConfig.sourceField: 'a' is integer, not a datetime field" },
    { "{\"name\": \"t\", \"fields\": [], \"ttlConfig\": {\"ttlMs\": 5, \"unit\": \"s\"}}",
      "t.ttlConfig: unknown key 'unit'" },
};
#define NBAD (sizeof bad_cases / sizeof bad_cases[0])

START_TEST(refusal)
{
    refused(bad_cases[_i].schema, TS_ERR_VALIDATION, bad_cases[_i].msg);
}
END_TEST

START_TEST(index_field_limit_and_default_name)
{
    /* 17 fields in one index; and a default name over 255 bytes */
    char text[4096], names17[1024] = "", names10[1024] = "", doc[8192];
    size_t off = (size_t)snprintf(text, sizeof text, "{\"name\": \"t\", \"fields\": [");
    for (int i = 0; i < 17; i++) {
        off += (size_t)snprintf(text + off, sizeof text - off,
                                "%s{\"name\": \"field_with_a_long_name_%02d\", \"type\": \"integer\"}",
                                i ? ", " : "", i);
        snprintf(names17 + strlen(names17), sizeof names17 - strlen(names17),
                 "%s\"field_with_a_long_name_%02d\"", i ? ", " : "", i);
        if (i < 10)
            snprintf(names10 + strlen(names10), sizeof names10 - strlen(names10),
                     "%s\"field_with_a_long_name_%02d\"", i ? ", " : "", i);
    }
    snprintf(doc, sizeof doc, "%s], \"indexes\": [{\"fields\": [%s]}]}", text, names17);
    refused(doc, TS_ERR_VALIDATION, "t.indexes[0].fields: 17 fields, at most 16");
    /* 10 names: 4 + 10 * 26 - 1 bytes > 255 */
    snprintf(doc, sizeof doc, "%s], \"indexes\": [{\"fields\": [%s]}]}", text, names10);
    refused(doc, TS_ERR_VALIDATION, "t.indexes[0]: the default name (idx_<fields>) would be over "
                                    "255 bytes; give an indexName");
    snprintf(doc, sizeof doc, "%s], \"indexes\": [{\"fields\": [%s], \"indexName\": \"ix\"}]}",
             text, names10);
    tsd_table *t = T(doc);
    ck_assert_str_eq(t->indexes[0].name, "ix");
    ck_assert_uint_eq(t->indexes[0].nfields, 10);
    tsd_table_free(t);
}
END_TEST

START_TEST(null_arguments)
{
    tsd_table *t = (tsd_table *)&env;
    ck_assert_int_eq(tsd_table_parse(&env, NULL, &t), TS_ERR_INVALID);
    ck_assert_ptr_null(t);
    json_t *j = J("{\"name\": \"t\", \"fields\": []}");
    ck_assert_int_eq(tsd_table_parse(&env, j, NULL), TS_ERR_INVALID);
    json_decref(j);
    tsd_table_free(NULL);
    ck_assert_ptr_null(tsd_table_to_json(NULL));
    ck_assert_int_eq(tsd_table_col(NULL, "id"), -1);
    ck_assert_int_eq(tsd_schema_set_check(&env, NULL, 1, NULL, 0, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(tsd_schema_set_check(&env, NULL, 0, NULL, 0, NULL), TS_OK);
}
END_TEST

/* ---- the primary key column ----------------------------------------------- */

START_TEST(pk_column)
{
    tsd_table *t;
    /* declared among the fields, in the middle: column 0, others keep order */
    t = T("{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"text\"}, {\"name\": \"id\","
          " \"type\": \"integer\", \"nullable\": false, \"unique\": true, \"createIndex\": true,"
          " \"fieldId\": \"k\"}, {\"name\": \"b\", \"type\": \"text\"}]}");
    ck_assert_uint_eq(t->ncols, 3);
    ck_assert_str_eq(t->cols[0].name, "id");
    ck_assert_int_eq(t->cols[0].type, TSD_INTEGER);
    ck_assert_str_eq(t->cols[0].field_id, "k");
    ck_assert_str_eq(t->cols[1].name, "a");
    ck_assert_str_eq(t->cols[2].name, "b");
    ck_assert_int_eq(tsd_table_col(t, "id"), 0);
    ck_assert_int_eq(tsd_table_col(t, "a"), 1);
    ck_assert_int_eq(tsd_table_col(t, "b"), 2);
    ck_assert_int_eq(tsd_table_col(t, "c"), -1);
    ck_assert_uint_eq(t->nindexes, 0); /* createIndex on the key is moot */
    json_t *j = tsd_table_to_json(t);
    assert_json_eq(json_object_get(j, "fields"),
                   "[{\"name\": \"a\", \"type\": \"text\", \"nullable\": true, \"unique\": false,"
                   " \"createIndex\": false}, {\"name\": \"id\", \"type\": \"integer\","
                   " \"nullable\": false, \"unique\": true, \"fieldId\": \"k\"}, {\"name\": \"b\","
                   " \"type\": \"text\", \"nullable\": true, \"unique\": false,"
                   " \"createIndex\": false}]");
    json_decref(j);
    tsd_table_free(t);
    /* none: integer or text; shortCode: text */
    t = T("{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"none\", \"name\": \"code\"},"
          " \"fields\": [{\"name\": \"code\", \"type\": \"text\"}]}");
    ck_assert_int_eq(t->cols[0].type, TSD_TEXT);
    ck_assert_int_eq(t->pk_type, TSD_PK_NONE);
    ck_assert_int_eq(t->cols[0].pk_type, TSD_PK_NONE);
    tsd_table_free(t);
    t = T("{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"none\"}, \"fields\": [{\"name\":"
          " \"id\", \"type\": \"integer\"}]}");
    ck_assert_int_eq(t->cols[0].type, TSD_INTEGER);
    tsd_table_free(t);
    t = T("{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"shortCode\"}, \"fields\": [{\"name\":"
          " \"id\", \"type\": \"text\"}]}");
    ck_assert_int_eq(t->cols[0].type, TSD_TEXT);
    j = tsd_table_to_json(t);
    assert_json_eq(json_object_get(j, "primaryKeyConfig"),
                   "{\"name\": \"id\", \"type\": \"shortCode\"}");
    json_decref(j);
    tsd_table_free(t);
    /* another key name: "id" is then an ordinary field */
    t = T("{\"name\": \"t\", \"primaryKeyConfig\": {\"name\": \"uid\"}, \"fields\": [{\"name\":"
          " \"id\", \"type\": \"text\"}]}");
    ck_assert_str_eq(t->cols[0].name, "uid");
    ck_assert_int_eq(t->cols[0].type, TSD_KEY);
    ck_assert_str_eq(t->cols[1].name, "id");
    ck_assert_int_eq(t->cols[1].type, TSD_TEXT);
    tsd_table_free(t);
}
END_TEST

/* ---- index mapping -------------------------------------------------------- */

START_TEST(index_mapping)
{
    tsd_table *t = T(
        "{\"name\": \"t\", \"fields\": ["
        " {\"name\": \"email\", \"type\": \"text\", \"unique\": true},"
        " {\"name\": \"phone\", \"type\": \"text\", \"unique\": true, \"createIndex\": true},"
        " {\"name\": \"age\", \"type\": \"integer\", \"createIndex\": true},"
        " {\"name\": \"city\", \"type\": \"text\", \"createIndex\": true},"
        " {\"name\": \"nick\", \"type\": \"text\", \"unique\": true},"
        " {\"name\": \"a\", \"type\": \"integer\"}, {\"name\": \"b\", \"type\": \"integer\"},"
        " {\"name\": \"p\", \"type\": \"integer\"}, {\"name\": \"q\", \"type\": \"integer\"}],"
        " \"indexes\": ["
        "  {\"fields\": [\"a\", \"b\"], \"unique\": true},"
        "  {\"fields\": [\"nick\"], \"unique\": true, \"indexName\": \"nick_u\"},"
        "  {\"fields\": [\"city\"], \"type\": \"hash\"}],"
        " \"foreignKeys\": ["
        "  {\"fields\": [\"p\"], \"referencedTable\": \"x\", \"referencedFields\": [\"id\"]},"
        "  {\"fields\": [\"a\", \"b\"], \"referencedTable\": \"y\", \"referencedFields\": [\"c\", \"d\"]},"
        "  {\"fields\": [\"id\"], \"referencedTable\": \"z\", \"referencedFields\": [\"id\"],"
        "   \"name\": \"same\"},"
        "  {\"fields\": [\"q\", \"p\"], \"referencedTable\": \"w\", \"referencedFields\": [\"c\", \"d\"],"
        "   \"name\": \"qp\", \"onDelete\": \"cascade\", \"onUpdate\": \"noAction\"}]}");
    /* order: unique fields (email, phone; nick is covered by nick_u), explicit
     * (a_b, nick_u, city hash), createIndex (age; city covered by its hash
     * index), foreign keys (p; a,b covered; id is the key; q,p) */
    static const char *const names[] = { "uniq_email", "uniq_phone", "idx_a_b", "nick_u",
                                         "idx_city", "idx_age", "fk_p", "qp" };
    static const int uniq[] = { 1, 1, 1, 1, 0, 0, 0, 0 };
    static const int origin[] = { TSD_IX_UNIQUE_FIELD, TSD_IX_UNIQUE_FIELD, TSD_IX_EXPLICIT,
                                  TSD_IX_EXPLICIT, TSD_IX_EXPLICIT, TSD_IX_CREATE_INDEX,
                                  TSD_IX_FOREIGN_KEY, TSD_IX_FOREIGN_KEY };
    ck_assert_uint_eq(t->nindexes, 8);
    for (size_t i = 0; i < 8; i++) {
        ck_assert_str_eq(t->indexes[i].name, names[i]);
        ck_assert_int_eq(t->indexes[i].unique, uniq[i]);
        ck_assert_int_eq(t->indexes[i].origin, origin[i]);
        ck_assert_ptr_eq(tsd_table_index(t, names[i]), &t->indexes[i]);
    }
    ck_assert_str_eq(t->indexes[0].module, "btree");
    ck_assert_str_eq(t->indexes[4].module, "hash");
    ck_assert_uint_eq(t->indexes[7].nfields, 2);
    ck_assert_uint_eq(t->indexes[7].cols[0], (size_t)tsd_table_col(t, "q"));
    ck_assert_uint_eq(t->indexes[7].cols[1], (size_t)tsd_table_col(t, "p"));
    ck_assert_ptr_null(tsd_table_index(t, "nope"));
    /* upsert targets: unique fields in field order (email, phone, nick via
     * nick_u), then the other unique indexes (a_b) */
    ck_assert_uint_eq(t->nunique, 4);
    ck_assert_uint_eq(t->unique_order[0], 0);
    ck_assert_uint_eq(t->unique_order[1], 1);
    ck_assert_uint_eq(t->unique_order[2], 3);
    ck_assert_uint_eq(t->unique_order[3], 2);
    /* foreign key defaults */
    ck_assert_str_eq(t->fks[1].name, "fk_a_b");
    ck_assert_int_eq(t->fks[0].on_delete, TSD_FK_RESTRICT);
    ck_assert_int_eq(t->fks[0].on_update, TSD_FK_RESTRICT);
    ck_assert_int_eq(t->fks[3].on_delete, TSD_FK_CASCADE);
    ck_assert_int_eq(t->fks[3].on_update, TSD_FK_NO_ACTION);
    /* only explicit indexes are written back */
    json_t *j = tsd_table_to_json(t);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "indexes")), 3);
    assert_json_eq(json_array_get(json_object_get(j, "foreignKeys"), 3),
                   "{\"fields\": [\"q\", \"p\"], \"referencedTable\": \"w\", \"referencedFields\":"
                   " [\"c\", \"d\"], \"name\": \"qp\", \"onDelete\": \"cascade\", \"onUpdate\":"
                   " \"noAction\"}");
    tsd_table *t2 = NULL;
    ck_assert_int_eq(tsd_table_parse(&env, j, &t2), TS_OK);
    ck_assert_uint_eq(t2->nindexes, 8);
    for (size_t i = 0; i < 8; i++) ck_assert_str_eq(t2->indexes[i].name, names[i]);
    json_decref(j);
    tsd_table_free(t2);
    tsd_table_free(t);
}
END_TEST

START_TEST(ngh_defaults_and_fk_actions)
{
    tsd_table *t = T("{\"name\": \"t\", \"fields\": [{\"name\": \"v\", \"type\": \"vector\","
                     " \"vectorConfig\": {\"dimensions\": 8, \"precision\": \"float16\"}},"
                     " {\"name\": \"p\", \"type\": \"integer\", \"nullable\": false,"
                     " \"defaultValue\": 0}],"
                     " \"indexes\": [{\"fields\": [\"v\"], \"type\": \"ngh\"}],"
                     " \"foreignKeys\": [{\"fields\": [\"p\"], \"referencedTable\": \"x\","
                     " \"referencedFields\": [\"id\"], \"onDelete\": \"setDefault\"}]}");
    ck_assert_str_eq(t->indexes[0].name, "idx_v");
    ck_assert_str_eq(t->indexes[0].module, "ngh");
    assert_json_eq(t->indexes[0].vector_config, "{\"distanceMetric\": \"cosine\", \"parameters\": {}}");
    ck_assert_int_eq(t->cols[1].precision, TSD_VEC_FLOAT16);
    ck_assert_int_eq(t->fks[0].on_delete, TSD_FK_SET_DEFAULT);
    tsd_table_free(t);
}
END_TEST

/* ---- sets of tables ------------------------------------------------------- */

static tsd_table *set_t[8];
static size_t set_n;

static void set_add(const char *schema)
{
    set_t[set_n++] = T(schema);
}

static void set_free(void)
{
    for (size_t i = 0; i < set_n; i++) tsd_table_free(set_t[i]);
    set_n = 0;
}

static int set_check(size_t *order)
{
    return tsd_schema_set_check(&env, (const tsd_table *const *)set_t, set_n, NULL, 0, order);
}

#define CHILD(name, ref, extra) \
    "{\"name\": \"" name "\", \"fields\": [{\"name\": \"p\", \"type\": \"integer\"}]" extra "," \
    " \"foreignKeys\": [{\"fields\": [\"p\"], \"referencedTable\": \"" ref "\"," \
    " \"referencedFields\": [\"id\"]}]}"

START_TEST(set_order)
{
    size_t order[4];
    /* a -> b -> c given child first: c, b, a */
    set_add(CHILD("a", "b", ""));
    set_add(CHILD("b", "c", ""));
    set_add("{\"name\": \"c\", \"fields\": []}");
    ck_assert_int_eq(set_check(order), TS_OK);
    ck_assert_uint_eq(order[0], 2);
    ck_assert_uint_eq(order[1], 1);
    ck_assert_uint_eq(order[2], 0);
    set_free();
    /* independent tables keep their order; self references are fine */
    set_add(CHILD("x", "x", ""));
    set_add("{\"name\": \"y\", \"fields\": []}");
    ck_assert_int_eq(set_check(order), TS_OK);
    ck_assert_uint_eq(order[0], 0);
    ck_assert_uint_eq(order[1], 1);
    set_free();
}
END_TEST

START_TEST(set_cycles)
{
    set_add(CHILD("a", "b", ""));
    set_add(CHILD("b", "a", ""));
    ck_assert_int_eq(set_check(NULL), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "foreign keys form a cycle: a -> b -> a");
    set_free();
    set_add("{\"name\": \"root\", \"fields\": []}");
    set_add(CHILD("a", "c", ""));
    set_add(CHILD("b", "a", ""));
    set_add(CHILD("c", "b", ""));
    ck_assert_int_eq(set_check(NULL), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "foreign keys form a cycle: a -> c -> b -> a");
    set_free();
    /* a table hanging off a cycle is not part of the message */
    set_add(CHILD("d", "a", ""));
    set_add(CHILD("a", "b", ""));
    set_add(CHILD("b", "a", ""));
    ck_assert_int_eq(set_check(NULL), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "foreign keys form a cycle: a -> b -> a");
    set_free();
}
END_TEST

START_TEST(set_references)
{
    /* unknown table, unknown field, not unique, types */
    set_add(CHILD("a", "nope", ""));
    ck_assert_int_eq(set_check(NULL), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "a.foreignKeys[0].referencedTable: unknown table 'nope'");
    set_free();
    const char *parent = "{\"name\": \"par\", \"fields\": [{\"name\": \"code\", \"type\": \"text\","
                         " \"unique\": true}, {\"name\": \"n\", \"type\": \"integer\"},"
                         " {\"name\": \"m\", \"type\": \"integer\"}, {\"name\": \"big\","
                         " \"type\": \"bigInt\", \"unique\": true}],"
                         " \"indexes\": [{\"fields\": [\"n\", \"m\"], \"unique\": true}]}";
    static const struct { const char *fk; const char *msg; } cases[] = {
        { "{\"fields\": [\"i\"], \"referencedTable\": \"par\", \"referencedFields\": [\"zz\"]}",
          "c.foreignKeys[0].referencedFields[0]: unknown field 'zz' in table 'par'" },
        { "{\"fields\": [\"i\"], \"referencedTable\": \"par\", \"referencedFields\": [\"n\"]}",
          "c.foreignKeys[0].referencedFields: not the primary key or a unique key of table 'par'" },
        { "{\"fields\": [\"i\"], \"referencedTable\": \"par\", \"referencedFields\": [\"code\"]}",
          "c.foreignKeys[0].fields[0]: 'i' (integer) cannot reference par.code (text)" },
        { "{\"fields\": [\"i\"], \"referencedTable\": \"par\", \"referencedFields\": [\"big\"]}",
          "c.foreignKeys[0].fields[0]: 'i' (integer) cannot reference par.big (bigInt)" },
        { "{\"fields\": [\"d\"], \"referencedTable\": \"par\", \"referencedFields\": [\"id\"]}",
          "c.foreignKeys[0].fields[0]: 'd' (double) cannot reference par.id (key)" },
        { "{\"fields\": [\"i\", \"j\"], \"referencedTable\": \"par\", \"referencedFields\":"
          " [\"n\", \"n\"]}",
          "c.foreignKeys[0].referencedFields[1]: 'n' is listed twice" },
        { NULL, NULL },
    };
    for (size_t k = 0; cases[k].fk; k++) {
        char child[1024];
        snprintf(child, sizeof child, "{\"name\": \"c\", \"fields\": [{\"name\": \"i\", \"type\":"
                 " \"integer\"}, {\"name\": \"j\", \"type\": \"integer\"}, {\"name\": \"d\","
                 " \"type\": \"double\"}], \"foreignKeys\": [%s]}", cases[k].fk);
        set_add(parent);
        set_add(child);
        ck_assert_int_eq(set_check(NULL), TS_ERR_VALIDATION);
        ck_assert_str_eq(tsenv_errmsg(&env), cases[k].msg);
        set_free();
    }
    /* accepted: unique text field, a unique pair in either order, the key
     * (integer or text into an untyped key), bigInt to bigInt */
    size_t order[2];
    set_add("{\"name\": \"c\", \"fields\": [{\"name\": \"s\", \"type\": \"text\"}, {\"name\": \"i\","
            " \"type\": \"integer\"}, {\"name\": \"j\", \"type\": \"integer\"}, {\"name\": \"b\","
            " \"type\": \"bigInt\"}], \"foreignKeys\": ["
            " {\"fields\": [\"s\"], \"referencedTable\": \"par\", \"referencedFields\": [\"code\"]},"
            " {\"fields\": [\"i\", \"j\"], \"referencedTable\": \"par\", \"referencedFields\": [\"m\", \"n\"]},"
            " {\"fields\": [\"i\"], \"referencedTable\": \"par\", \"referencedFields\": [\"id\"]},"
            " {\"fields\": [\"s\"], \"referencedTable\": \"par\", \"referencedFields\": [\"id\"], \"name\": \"s2\"},"
            " {\"fields\": [\"b\"], \"referencedTable\": \"par\", \"referencedFields\": [\"big\"]}]}");
    set_add(parent);
    ck_assert_int_eq(set_check(order), TS_OK);
    ck_assert_uint_eq(order[0], 1);
    ck_assert_uint_eq(order[1], 0);
    set_free();
    /* a declared integer key refuses text references */
    set_add("{\"name\": \"par\", \"fields\": [{\"name\": \"id\", \"type\": \"integer\"}]}");
    set_add("{\"name\": \"c\", \"fields\": [{\"name\": \"s\", \"type\": \"text\"}], \"foreignKeys\":"
            " [{\"fields\": [\"s\"], \"referencedTable\": \"par\", \"referencedFields\": [\"id\"]}]}");
    ck_assert_int_eq(set_check(NULL), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env),
                     "c.foreignKeys[0].fields[0]: 's' (text) cannot reference par.id (integer)");
    set_free();
}
END_TEST

START_TEST(set_global_and_existing)
{
    /* global -> space refused; space -> global and global -> global fine */
    set_add("{\"name\": \"sp\", \"fields\": []}");
    set_add(CHILD("g", "sp", ", \"isGlobal\": true"));
    ck_assert_int_eq(set_check(NULL), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "g.foreignKeys[0].referencedTable: the global table 'g' "
                                         "cannot reference the space table 'sp'");
    set_free();
    set_add("{\"name\": \"g1\", \"isGlobal\": true, \"fields\": []}");
    set_add(CHILD("g2", "g1", ", \"isGlobal\": true"));
    set_add(CHILD("s", "g2", ""));
    ck_assert_int_eq(set_check(NULL), TS_OK);
    set_free();
    /* existing tables: referenced fine, names taken, tableIds taken */
    tsd_table *ex = T("{\"name\": \"old\", \"tableId\": \"T1\", \"fields\": []}");
    const tsd_table *exs[1] = { ex };
    set_add(CHILD("n", "old", ""));
    ck_assert_int_eq(tsd_schema_set_check(&env, (const tsd_table *const *)set_t, set_n, exs, 1,
                                          NULL), TS_OK);
    set_free();
    set_add("{\"name\": \"old\", \"fields\": []}");
    ck_assert_int_eq(tsd_schema_set_check(&env, (const tsd_table *const *)set_t, set_n, exs, 1,
                                          NULL), TS_ERR_TABLE_EXISTS);
    ck_assert_str_eq(tsenv_errmsg(&env), "old: a table of that name exists");
    set_free();
    set_add("{\"name\": \"new\", \"tableId\": \"T1\", \"fields\": []}");
    ck_assert_int_eq(tsd_schema_set_check(&env, (const tsd_table *const *)set_t, set_n, exs, 1,
                                          NULL), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "new.tableId: 'T1' is also the tableId of table 'old'");
    set_free();
    tsd_table_free(ex);
    /* two tables of one name in the set */
    set_add("{\"name\": \"a\", \"fields\": []}");
    set_add("{\"name\": \"a\", \"fields\": []}");
    ck_assert_int_eq(set_check(NULL), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "a: the set has two tables of that name (positions 0 and 1)");
    set_free();
}
END_TEST

/* Random valid schemas: the canonical JSON is a fixed point. */
START_TEST(random_schema_round_trip)
{
    static const char *const types[] = { "integer", "bigInt", "double", "text", "blob", "boolean",
                                         "datetime", "array", "json", "vector" };
    srand(1234);
    for (int iter = 0; iter < 300; iter++) {
        json_t *s = json_pack("{s:s}", "name", "r");
        json_t *fields = json_array();
        int nf = rand() % 12;
        for (int i = 0; i < nf; i++) {
            char name[16];
            snprintf(name, sizeof name, "f%d", i);
            int ty = rand() % 10;
            json_t *f = json_pack("{s:s, s:s}", "name", name, "type", types[ty]);
            if (rand() % 2) json_object_set_new(f, "nullable", json_boolean(rand() % 2));
            if (ty != 7 && ty != 8 && ty != 9 && rand() % 4 == 0)
                json_object_set_new(f, "unique", json_true());
            if (ty != 7 && ty != 8 && ty != 9 && rand() % 4 == 0)
                json_object_set_new(f, "createIndex", json_true());
            if ((ty == 3 || ty == 4 || ty == 7) && rand() % 2)
                json_object_set_new(f, "maxLength", json_integer(rand() % 100 + 10));
            if (ty == 0 && rand() % 2) {
                json_object_set_new(f, "minValue", json_integer(-(rand() % 100)));
                json_object_set_new(f, "defaultValue", json_integer(rand() % 100));
            }
            if (ty == 6 && rand() % 2)
                json_object_set_new(f, "defaultValueType", json_string("currentTimestamp"));
            if (ty == 9)
                json_object_set_new(f, "vectorConfig", json_pack("{s:i, s:s}", "dimensions",
                                    rand() % 64 + 1, "precision",
                                    (const char *[]){ "float32", "float16", "int8" }[rand() % 3]));
            if (rand() % 5 == 0) json_object_set_new(f, "comment", json_string("c"));
            json_array_append_new(fields, f);
        }
        json_object_set_new(s, "fields", fields);
        if (rand() % 3 == 0) json_object_set_new(s, "isGlobal", json_true());
        tsd_table *t = NULL;
        ck_assert_msg(tsd_table_parse(&env, s, &t) == TS_OK, "%s", tsenv_errmsg(&env));
        json_t *c1 = tsd_table_to_json(t);
        tsd_table *t2 = NULL;
        ck_assert_msg(tsd_table_parse(&env, c1, &t2) == TS_OK, "%s", tsenv_errmsg(&env));
        json_t *c2 = tsd_table_to_json(t2);
        ck_assert(json_equal(c1, c2));
        ck_assert_uint_eq(t->nindexes, t2->nindexes);
        ck_assert_uint_eq(t->ncols, (size_t)nf + 1);
        for (size_t c = 0; c < t->ncols; c++)
            ck_assert_int_eq(tsd_table_col(t, t->cols[c].name), (long)c);
        json_decref(c1);
        json_decref(c2);
        json_decref(s);
        tsd_table_free(t);
        tsd_table_free(t2);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, minimal_defaults);
    tcase_add_test(tc, field_defaults);
    tcase_add_test(tc, full_schema_canonical);
    tcase_add_test(tc, nulls_mean_absent);
    tcase_add_test(tc, name_limits);
    tcase_add_loop_test(tc, refusal, 0, (int)NBAD);
    tcase_add_test(tc, index_field_limit_and_default_name);
    tcase_add_test(tc, null_arguments);
    tcase_add_test(tc, pk_column);
    tcase_add_test(tc, index_mapping);
    tcase_add_test(tc, ngh_defaults_and_fk_actions);
    tcase_add_test(tc, random_schema_round_trip);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("set");
    tcase_add_checked_fixture(ts, setup, teardown);
    tcase_add_test(ts, set_order);
    tcase_add_test(ts, set_cycles);
    tcase_add_test(ts, set_references);
    tcase_add_test(ts, set_global_and_existing);
    suite_add_tcase(s, ts);
    return s;
}

int main(void)
{
    return tst_run(suite());
}
