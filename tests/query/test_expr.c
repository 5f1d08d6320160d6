/*
 * Expressions of atomic updates (kernel/data/expr.h, the ts_expr_*
 * builders): every operator, SQL nulls, integer versus real results,
 * division by zero, integer overflow, rounding half away from zero into
 * integer columns (tsx_apply), conditions, the exact JSON the builders make,
 * the shapes tsx_check refuses, and random arithmetic trees against a
 * reference evaluator written here with __int128 and long double.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <tostore/tostore.h>
#include "base/env.h"
#include "data/schema.h"
#include "data/value.h"
#include "data/expr.h"
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

/* JSON from text written with ' for " (no test string needs a quote). */
static json_t *J(const char *text)
{
    char *s = strdup(text);
    ck_assert_ptr_nonnull(s);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    ck_assert_msg(j != NULL, "bad test JSON: %s: %s", s, e.text);
    free(s);
    return j;
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
}

/* json_equal, which also tells 1 from 1.0 (different JSON types). */
static void assert_json_is(const json_t *got, const char *want_text, const char *ctx)
{
    json_t *want = J(want_text);
    if (!json_equal(got, want)) {
        char *g = dump(got), *w = dump(want);
        ck_abort_msg("%s\n  got:  %s\n  want: %s", ctx, g, w);
    }
    json_decref(want);
}

/* Evaluate expr (as text) on row (text or NULL); the result must be want. */
static void ev_row(const char *expr, const char *row, int is_update, const char *want)
{
    json_t *e = J(expr), *r = row ? J(row) : NULL, *out = NULL;
    int rc = tsx_eval(&env, e, r, is_update, 0, &out);
    ck_assert_msg(rc == TS_OK, "%s: error %d: %s", expr, rc, tsenv_errmsg(&env));
    assert_json_is(out, want, expr);
    json_decref(out);
    json_decref(r);
    json_decref(e);
}

static void ev(const char *expr, const char *want) { ev_row(expr, NULL, 1, want); }

/* Evaluate expr; it must fail with code and a message equal to msg. */
static void ev_err_row(const char *expr, const char *row, int code, const char *msg)
{
    json_t *e = J(expr), *r = row ? J(row) : NULL, *out = (json_t *)&env;
    int rc = tsx_eval(&env, e, r, 1, 0, &out);
    ck_assert_msg(rc == code, "%s: want %d, got %d (%s)", expr, code, rc,
                  rc ? tsenv_errmsg(&env) : "accepted");
    ck_assert_ptr_null(out);
    ck_assert_msg(strcmp(tsenv_errmsg(&env), msg) == 0, "%s: message\n  got:  %s\n  want: %s",
                  expr, tsenv_errmsg(&env), msg);
    json_decref(r);
    json_decref(e);
}

static void ev_err(const char *expr, const char *msg)
{
    ev_err_row(expr, NULL, TS_ERR_VALIDATION, msg);
}

/* tsx_check must refuse e with exactly msg. */
static void refused_json(json_t *e, const char *msg)
{
    int rc = tsx_check(&env, e);
    char *d = dump(e);
    ck_assert_msg(rc == TS_ERR_VALIDATION, "%s: want refusal, got %d", d, rc);
    ck_assert_msg(strcmp(tsenv_errmsg(&env), msg) == 0, "%s: message\n  got:  %s\n  want: %s", d,
                  tsenv_errmsg(&env), msg);
    /* tsx_eval checks first: the same refusal */
    json_t *out = (json_t *)&env;
    ck_assert_int_eq(tsx_eval(&env, e, NULL, 1, 0, &out), TS_ERR_VALIDATION);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(tsenv_errmsg(&env), msg);
    free(d);
}

static void refused(const char *expr, const char *msg)
{
    json_t *e = J(expr);
    refused_json(e, msg);
    json_decref(e);
}

/* ---- recognizing ----------------------------------------------------------- */

START_TEST(is_and_has_expr)
{
    const char *yes[] = {"{'$expr': ['now']}", "{'$expr': 1}", "{'$expr': null}"};
    const char *no[] = {"{'$expr': 1, 'x': 2}", "{'$exp': 1}", "{}", "[]", "1", "'$expr'",
                        "[{'$expr': 1}]", "{'x': {'$expr': 1}}"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        json_t *j = J(yes[i]);
        ck_assert_msg(tsx_is_expr(j), "%s", yes[i]);
        json_decref(j);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        json_t *j = J(no[i]);
        ck_assert_msg(!tsx_is_expr(j), "%s", no[i]);
        json_decref(j);
    }
    ck_assert(!tsx_is_expr(NULL));

    json_t *c = J("{'a': 1, 'b': {'$expr': ['now']}}");
    ck_assert(tsx_has_expr(c));
    json_decref(c);
    c = J("{'a': 1, 'b': {'$expr': 1, 'c': 2}, 'd': [{'$expr': ['now']}]}");
    ck_assert(!tsx_has_expr(c));
    json_decref(c);
    c = J("{'$expr': ['now']}"); /* the object itself is no value of changes */
    ck_assert(!tsx_has_expr(c));
    json_decref(c);
    c = J("[{'$expr': ['now']}]");
    ck_assert(!tsx_has_expr(c));
    json_decref(c);
    ck_assert(!tsx_has_expr(NULL));
}
END_TEST

/* ---- every operator ---------------------------------------------------------- */

START_TEST(literals_and_fields)
{
    ev("{'$expr': ['value', 5]}", "5");
    ev("{'$expr': ['value', 2.5]}", "2.5");
    ev("{'$expr': ['value', 'x']}", "'x'");
    ev("{'$expr': ['value', null]}", "null");
    ev("{'$expr': ['value', [1, {'a': 2}]]}", "[1, {'a': 2}]");
    /* a literal expression object is not evaluated */
    ev("{'$expr': ['value', {'$expr': ['now']}]}", "{'$expr': ['now']}");
    const char *row = "{'n': 7, 'r': 1.5, 's': 'abc', 'z': null, 'b': true, 'a': [1, 2]}";
    ev_row("{'$expr': ['field', 'n']}", row, 1, "7");
    ev_row("{'$expr': ['field', 'r']}", row, 1, "1.5");
    ev_row("{'$expr': ['field', 's']}", row, 1, "'abc'");
    ev_row("{'$expr': ['field', 'z']}", row, 1, "null");
    ev_row("{'$expr': ['field', 'b']}", row, 1, "true");
    ev_row("{'$expr': ['field', 'a']}", row, 1, "[1, 2]");
    ev_row("{'$expr': ['field', 'missing']}", row, 1, "null");
    ev("{'$expr': ['field', 'n']}", "null"); /* no row */
    ev_row("{'$expr': ['+', {'$expr': ['field', 'n']}, 50]}", row, 1, "57");

    /* the result is a copy: changing it leaves the row alone */
    json_t *e = J("{'$expr': ['field', 'a']}"), *r = J(row), *out = NULL;
    ck_assert_int_eq(tsx_eval(&env, e, r, 1, 0, &out), TS_OK);
    ck_assert_ptr_ne(out, json_object_get(r, "a"));
    json_array_append_new(out, json_integer(3));
    ck_assert_uint_eq(json_array_size(json_object_get(r, "a")), 2);
    json_decref(out);
    json_decref(r);
    json_decref(e);
}
END_TEST

START_TEST(arithmetic)
{
    ev("{'$expr': ['+', 2, 3]}", "5");
    ev("{'$expr': ['+', 2, 0.5]}", "2.5");
    ev("{'$expr': ['+', 2.0, 3]}", "5.0");  /* mixing with a real gives a real */
    ev("{'$expr': ['-', 2, 5]}", "-3");
    ev("{'$expr': ['-', 2.5, 5]}", "-2.5");
    ev("{'$expr': ['*', -4, 6]}", "-24");
    ev("{'$expr': ['*', 4, 0.25]}", "1.0");
    ev("{'$expr': ['/', 6, 3]}", "2");      /* exact: an integer */
    ev("{'$expr': ['/', -6, 3]}", "-2");
    ev("{'$expr': ['/', 7, 2]}", "3.5");    /* inexact: a real */
    ev("{'$expr': ['/', -7, 2]}", "-3.5");
    ev("{'$expr': ['/', 1, 3]}", "0.33333333333333331");
    ev("{'$expr': ['/', 6.0, 3]}", "2.0");
    ev("{'$expr': ['/', 9223372036854775807, 1]}", "9223372036854775807");
    ev("{'$expr': ['/', -9223372036854775808, 2]}", "-4611686018427387904");
    ev("{'$expr': ['%', 7, 3]}", "1");
    ev("{'$expr': ['%', -7, 3]}", "-1");    /* the sign of the dividend */
    ev("{'$expr': ['%', 7, -3]}", "1");
    ev("{'$expr': ['%', -9223372036854775808, -1]}", "0");
    ev("{'$expr': ['%', 7.5, 2]}", "1.5");
    ev("{'$expr': ['%', -7.5, 2]}", "-1.5");
    ev("{'$expr': ['neg', 5]}", "-5");
    ev("{'$expr': ['neg', -2.5]}", "2.5");
    ev("{'$expr': ['neg', 9223372036854775807]}", "-9223372036854775807");
    ev("{'$expr': ['abs', -5]}", "5");
    ev("{'$expr': ['abs', 5]}", "5");
    ev("{'$expr': ['abs', -0.5]}", "0.5");
    ev("{'$expr': ['min', 3, 4]}", "3");
    ev("{'$expr': ['min', 4, 3]}", "3");
    ev("{'$expr': ['max', 3, 4]}", "4");
    ev("{'$expr': ['max', -3, -4]}", "-3");
    ev("{'$expr': ['min', 3, 4.5]}", "3.0");   /* mixing gives a real */
    ev("{'$expr': ['max', 3, 4.5]}", "4.5");
    ev("{'$expr': ['max', 'abc', 'abd']}", "'abd'");
    ev("{'$expr': ['min', 'abc', 'ab']}", "'ab'");
    /* exact comparison of a large integer and a real */
    ev("{'$expr': ['max', 9007199254740993, 9007199254740992.0]}", "9007199254740993.0");
    ev("{'$expr': ['round', 2.5]}", "3");
    ev("{'$expr': ['round', -2.5]}", "-3");
    ev("{'$expr': ['round', 2.4999]}", "2");
    ev("{'$expr': ['round', 0.5]}", "1");
    ev("{'$expr': ['round', -0.5]}", "-1");
    ev("{'$expr': ['round', 7]}", "7");
    ev("{'$expr': ['round', 1e300]}", "1e300"); /* too big for an integer: stays real */
    ev("{'$expr': ['floor', 2.7]}", "2");
    ev("{'$expr': ['floor', -2.2]}", "-3");
    ev("{'$expr': ['floor', -9]}", "-9");
    ev("{'$expr': ['ceil', 2.2]}", "3");
    ev("{'$expr': ['ceil', -2.7]}", "-2");
    ev("{'$expr': ['ceil', 4]}", "4");
    /* nesting */
    ev("{'$expr': ['*', {'$expr': ['+', 1, 2]}, {'$expr': ['-', 10, {'$expr': ['value', 4]}]}]}",
       "18");
}
END_TEST

START_TEST(nulls)
{
    const char *bin[] = {"+", "-", "*", "/", "%", "min", "max", "=", "!=", "<", "<=", ">", ">="};
    char buf[128];
    for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++) {
        snprintf(buf, sizeof buf, "{'$expr': ['%s', null, 2]}", bin[i]);
        ev(buf, "null");
        snprintf(buf, sizeof buf, "{'$expr': ['%s', 2.5, null]}", bin[i]);
        ev(buf, "null");
        snprintf(buf, sizeof buf, "{'$expr': ['%s', {'$expr': ['field', 'x']}, 1]}", bin[i]);
        ev_row(buf, "{'x': null}", 1, "null");
        ev_row(buf, "{}", 1, "null");
    }
    const char *un[] = {"neg", "abs", "round", "floor", "ceil", "not"};
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++) {
        snprintf(buf, sizeof buf, "{'$expr': ['%s', null]}", un[i]);
        ev(buf, "null");
    }
    /* null before a zero divisor: still null (SQL) */
    ev("{'$expr': ['/', null, 0]}", "null");
    ev("{'$expr': ['%', 5, {'$expr': ['field', 'x']}]}", "null");
    /* null = null is null, not true */
    ev("{'$expr': ['=', null, null]}", "null");
    /* three-valued and / or */
    ev("{'$expr': ['and', null, false]}", "false");
    ev("{'$expr': ['and', false, null]}", "false");
    ev("{'$expr': ['and', null, true]}", "null");
    ev("{'$expr': ['and', true, null]}", "null");
    ev("{'$expr': ['and', null, null]}", "null");
    ev("{'$expr': ['or', null, true]}", "true");
    ev("{'$expr': ['or', true, null]}", "true");
    ev("{'$expr': ['or', null, false]}", "null");
    ev("{'$expr': ['or', false, null]}", "null");
    /* a null condition takes the else branch */
    ev("{'$expr': ['if', null, 1, 2]}", "2");
    ev("{'$expr': ['if', {'$expr': ['>', {'$expr': ['field', 'x']}, 0]}, 'pos', 'other']}",
       "'other'");
}
END_TEST

START_TEST(division_by_zero)
{
    ev_err("{'$expr': ['/', 1, 0]}", "$expr: division by zero");
    ev_err("{'$expr': ['%', 1, 0]}", "$expr: division by zero");
    ev_err("{'$expr': ['/', 1.5, 0]}", "$expr: division by zero");
    ev_err("{'$expr': ['/', 1, 0.0]}", "$expr: division by zero");
    ev_err("{'$expr': ['/', 0, 0]}", "$expr: division by zero");
    ev_err("{'$expr': ['%', 2.5, -0.0]}", "$expr: division by zero");
    ev_err("{'$expr': ['+', 1, {'$expr': ['/', 5, {'$expr': ['-', 2, 2]}]}]}",
           "$expr[2].$expr: division by zero");
    ev_err_row("{'$expr': ['/', {'$expr': ['field', 'n']}, {'$expr': ['field', 'd']}]}",
               "{'n': 4, 'd': 0}", TS_ERR_VALIDATION, "$expr: division by zero");
}
END_TEST

START_TEST(overflow_and_types)
{
    ev_err("{'$expr': ['+', 9223372036854775807, 1]}", "$expr: integer overflow");
    ev_err("{'$expr': ['-', -9223372036854775808, 1]}", "$expr: integer overflow");
    ev_err("{'$expr': ['*', 4294967296, 4294967296]}", "$expr: integer overflow");
    ev_err("{'$expr': ['/', -9223372036854775808, -1]}", "$expr: integer overflow");
    ev_err("{'$expr': ['neg', -9223372036854775808]}", "$expr: integer overflow");
    ev_err("{'$expr': ['abs', -9223372036854775808]}", "$expr: integer overflow");
    ev_err("{'$expr': ['*', 1e308, 10]}", "$expr: the result is not a finite number");
    /* just inside */
    ev("{'$expr': ['+', 9223372036854775806, 1]}", "9223372036854775807");
    ev("{'$expr': ['*', -4294967296, 2147483648]}", "-9223372036854775808");
    /* a real avoids integer overflow */
    ev("{'$expr': ['+', 9223372036854775807, 1.0]}", "9.2233720368547758e18");

    ev_err("{'$expr': ['+', 'a', 1]}", "$expr: '+' needs numbers, got a string");
    ev_err("{'$expr': ['*', 1, true]}", "$expr: '*' needs numbers, got a boolean");
    ev_err("{'$expr': ['neg', 'x']}", "$expr: 'neg' needs a number, got a string");
    ev_err("{'$expr': ['round', {'$expr': ['value', [1]]}]}",
           "$expr: 'round' needs a number, got an array");
    ev_err("{'$expr': ['min', 1, 'a']}",
           "$expr: 'min' needs two numbers or two strings, got a number and a string");
    ev_err("{'$expr': ['<', 1, 'a']}", "$expr: '<' cannot compare a number with a string");
    ev_err("{'$expr': ['>=', {'$expr': ['value', {}]}, {'$expr': ['value', {}]}]}",
           "$expr: '>=' cannot order an object");
    ev_err("{'$expr': ['if', 'yes', 1, 2]}",
           "$expr: 'if' needs a boolean, a number or null, got a string");
    ev_err("{'$expr': ['and', true, 'x']}",
           "$expr: 'and' needs a boolean, a number or null, got a string");
    ev_err("{'$expr': ['not', {'$expr': ['value', [true]]}]}",
           "$expr: 'not' needs a boolean, a number or null, got an array");
}
END_TEST

START_TEST(comparisons_and_logic)
{
    struct { const char *e, *want; } cases[] = {
        {"['=', 1, 1]", "true"},            {"['=', 1, 1.0]", "true"},
        {"['=', 1, 2]", "false"},           {"['!=', 1, 2]", "true"},
        {"['!=', 2.0, 2]", "false"},        {"['<', 1, 2]", "true"},
        {"['<', 2, 1]", "false"},           {"['<=', 2, 2]", "true"},
        {"['>', 2.5, 2]", "true"},          {"['>=', 2, 2.5]", "false"},
        /* exact, though both round to the same double */
        {"['>', 9007199254740993, 9007199254740992.0]", "true"},
        {"['=', 9007199254740993, 9007199254740992.0]", "false"},
        {"['<', -9223372036854775808, -9223372036854775808.0]", "false"},
        {"['<', 9223372036854775807, 9223372036854775808.0]", "true"},
        {"['<', 'abc', 'abd']", "true"},    {"['<', 'ab', 'abc']", "true"},
        {"['>', 'b', 'abc']", "true"},      {"['=', 'x', 'x']", "true"},
        {"['<', false, true]", "true"},     {"['=', true, true]", "true"},
        /* different kinds are never equal */
        {"['=', 1, '1']", "false"},         {"['!=', 1, '1']", "true"},
        {"['=', true, 1]", "false"},
        {"['=', {'$expr': ['value', [1, 2]]}, {'$expr': ['value', [1, 2]]}]", "true"},
        {"['!=', {'$expr': ['value', {'a': 1}]}, {'$expr': ['value', {'a': 2}]}]", "true"},
        {"['and', true, true]", "true"},    {"['and', true, false]", "false"},
        {"['or', false, false]", "false"},  {"['or', false, true]", "true"},
        {"['and', 1, 2.5]", "true"},        {"['and', 1, 0]", "false"},
        {"['not', true]", "false"},         {"['not', 0]", "true"},
        {"['not', 0.5]", "false"},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(buf, sizeof buf, "{'$expr': %s}", cases[i].e);
        ev(buf, cases[i].want);
    }
    /* and / or short-circuit: the right side is not evaluated */
    ev("{'$expr': ['and', false, {'$expr': ['/', 1, 0]}]}", "false");
    ev("{'$expr': ['or', true, {'$expr': ['/', 1, 0]}]}", "true");
    ev_err("{'$expr': ['and', true, {'$expr': ['/', 1, 0]}]}", "$expr[2].$expr: division by zero");
    /* only the chosen branch of if is evaluated */
    ev("{'$expr': ['if', true, 1, {'$expr': ['/', 1, 0]}]}", "1");
    ev_err("{'$expr': ['if', false, 1, {'$expr': ['/', 1, 0]}]}",
           "$expr[3].$expr: division by zero");
    /* truthiness of if */
    ev("{'$expr': ['if', 1, 'y', 'n']}", "'y'");
    ev("{'$expr': ['if', -0.5, 'y', 'n']}", "'y'");
    ev("{'$expr': ['if', 0, 'y', 'n']}", "'n'");
    ev("{'$expr': ['if', 0.0, 'y', 'n']}", "'n'");
    ev("{'$expr': ['if', false, 'y', 'n']}", "'n'");
}
END_TEST

START_TEST(nested_if)
{
    /* grade: A when score >= 90 and not banned, B when >= 80, else C;
     * a missing score gives null */
    const char *g =
        "{'$expr': ['if', {'$expr': ['=', {'$expr': ['field', 'score']}, null]}, 'never',"
        " {'$expr': ['if', {'$expr': ['and', {'$expr': ['>=', {'$expr': ['field', 'score']}, 90]},"
        "                         {'$expr': ['not', {'$expr': ['field', 'banned']}]}]},"
        "   'A',"
        "   {'$expr': ['if', {'$expr': ['>=', {'$expr': ['field', 'score']}, 80]}, 'B',"
        "     {'$expr': ['if', {'$expr': ['<', {'$expr': ['field', 'score']}, 0]},"
        "        {'$expr': ['value', null]}, 'C']}]}]}]}";
    ev_row(g, "{'score': 95, 'banned': false}", 1, "'A'");
    ev_row(g, "{'score': 90.0, 'banned': false}", 1, "'A'");
    ev_row(g, "{'score': 95, 'banned': true}", 1, "'B'");
    /* not(null) is null: the and is null, not true */
    ev_row(g, "{'score': 95}", 1, "'B'");
    ev_row(g, "{'score': 89.999, 'banned': false}", 1, "'B'");
    ev_row(g, "{'score': 80}", 1, "'B'");
    ev_row(g, "{'score': 79}", 1, "'C'");
    ev_row(g, "{'score': -1}", 1, "null");
    /* = null is null, so the first if never takes 'never' */
    ev_row(g, "{}", 1, "'C'");

    /* insert versus update */
    const char *c = "{'$expr': ['if', {'$expr': ['isInsert']}, 1,"
                    " {'$expr': ['+', {'$expr': ['field', 'n']}, 1]}]}";
    ev_row(c, "{'n': 41}", 0, "1");
    ev_row(c, "{'n': 41}", 1, "42");
    ev_row("{'$expr': ['isUpdate']}", NULL, 1, "true");
    ev_row("{'$expr': ['isUpdate']}", NULL, 0, "false");
    ev_row("{'$expr': ['isInsert']}", NULL, 1, "false");
    ev_row("{'$expr': ['isInsert']}", NULL, 7, "false"); /* any non-zero is an update */
    ev_row("{'$expr': ['isInsert']}", NULL, 0, "true");
}
END_TEST

START_TEST(now)
{
    struct { int64_t ms; const char *want; } cases[] = {
        {0, "'1970-01-01T00:00:00.000Z'"},
        {1700000000123LL, "'2023-11-14T22:13:20.123Z'"},
        {-1, "'1969-12-31T23:59:59.999Z'"},
        {TSD_DATETIME_MAX_MS, "'9999-12-31T23:59:59.999Z'"},
    };
    json_t *e = J("{'$expr': ['now']}");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *out = NULL;
        ck_assert_int_eq(tsx_eval(&env, e, NULL, 1, cases[i].ms, &out), TS_OK);
        assert_json_is(out, cases[i].want, "now");
        json_decref(out);
    }
    json_t *out = (json_t *)&env;
    ck_assert_int_eq(tsx_eval(&env, e, NULL, 1, TSD_DATETIME_MAX_MS + 1, &out), TS_ERR_VALIDATION);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(tsenv_errmsg(&env),
                     "$expr: now (253402300800000 ms) is outside years 0000-9999");
    json_decref(e);

    /* now compares with stored datetimes (ISO strings) and takes max */
    e = J("{'$expr': ['max', {'$expr': ['field', 'seen']}, {'$expr': ['now']}]}");
    json_t *row = J("{'seen': '2030-01-01T00:00:00.000Z'}");
    ck_assert_int_eq(tsx_eval(&env, e, row, 1, 0, &out), TS_OK);
    assert_json_is(out, "'2030-01-01T00:00:00.000Z'", "max seen");
    json_decref(out);
    ck_assert_int_eq(tsx_eval(&env, e, row, 1, 1900000000000LL, &out), TS_OK);
    assert_json_is(out, "'2030-03-17T17:46:40.000Z'", "max now");
    json_decref(out);
    json_decref(row);
    json_decref(e);
}
END_TEST

/* ---- tsx_apply: integer columns ----------------------------------------------- */

static tsd_table *table(const char *text)
{
    json_t *j = J(text);
    tsd_table *t = NULL;
    int rc = tsd_table_parse(&env, j, &t);
    ck_assert_msg(rc == TS_OK, "schema refused: %s", tsenv_errmsg(&env));
    json_decref(j);
    return t;
}

static const char *SCHEMA =
    "{'name': 't', 'fields': [{'name': 'i', 'type': 'integer'},"
    " {'name': 'd', 'type': 'double'}, {'name': 'b', 'type': 'bigInt'},"
    " {'name': 's', 'type': 'text'}, {'name': 'fans', 'type': 'integer'},"
    " {'name': 'at', 'type': 'datetime'}]}";

static void apply_ok(const tsd_table *t, const char *changes, const char *row, const char *want)
{
    json_t *c = J(changes), *r = row ? J(row) : NULL, *out = NULL;
    int rc = tsx_apply(&env, t, c, r, 1, 0, &out);
    ck_assert_msg(rc == TS_OK, "%s: error %d: %s", changes, rc, tsenv_errmsg(&env));
    assert_json_is(out, want, changes);
    ck_assert_ptr_ne(out, c);
    json_decref(out);
    json_decref(r);
    json_decref(c);
}

static void apply_err(const tsd_table *t, const char *changes, const char *msg)
{
    json_t *c = J(changes), *out = (json_t *)&env;
    ck_assert_int_eq(tsx_apply(&env, t, c, NULL, 1, 0, &out), TS_ERR_VALIDATION);
    ck_assert_ptr_null(out);
    ck_assert_msg(strcmp(tsenv_errmsg(&env), msg) == 0, "%s: message\n  got:  %s\n  want: %s",
                  changes, tsenv_errmsg(&env), msg);
    json_decref(c);
}

START_TEST(apply_rounds_integer_columns)
{
    tsd_table *t = table(SCHEMA);
    /* half away from zero */
    apply_ok(t, "{'i': {'$expr': ['/', 5, 2]}}", NULL, "{'i': 3}");
    apply_ok(t, "{'i': {'$expr': ['/', -5, 2]}}", NULL, "{'i': -3}");
    apply_ok(t, "{'i': {'$expr': ['value', 2.5]}}", NULL, "{'i': 3}");
    apply_ok(t, "{'i': {'$expr': ['value', -2.5]}}", NULL, "{'i': -3}");
    apply_ok(t, "{'i': {'$expr': ['*', 0.5, 3]}}", NULL, "{'i': 2}");
    apply_ok(t, "{'i': {'$expr': ['*', -0.5, 3]}}", NULL, "{'i': -2}");
    apply_ok(t, "{'i': {'$expr': ['value', 2.4999]}}", NULL, "{'i': 2}");
    apply_ok(t, "{'i': {'$expr': ['+', 0.5, 0]}}", NULL, "{'i': 1}");
    apply_ok(t, "{'i': {'$expr': ['+', 4.0, 0]}}", NULL, "{'i': 4}");
    apply_ok(t, "{'b': {'$expr': ['/', 7, 2]}}", NULL, "{'b': 4}");
    /* the primary key (sequential) is an integer column too */
    apply_ok(t, "{'id': {'$expr': ['/', 3, 2]}}", NULL, "{'id': 2}");
    /* other columns keep reals */
    apply_ok(t, "{'d': {'$expr': ['/', 5, 2]}}", NULL, "{'d': 2.5}");
    apply_ok(t, "{'d': {'$expr': ['/', 6, 2]}}", NULL, "{'d': 3}");
    /* the example, on a row */
    apply_ok(t, "{'fans': {'$expr': ['+', {'$expr': ['field', 'fans']}, 50]}, 's': 'x'}",
             "{'id': 1, 'fans': 10, 's': 'old'}", "{'fans': 60, 's': 'x'}");
    apply_ok(t, "{'fans': {'$expr': ['+', {'$expr': ['field', 'fans']}, 50]}}",
             "{'id': 1, 'fans': null}", "{'fans': null}");
    apply_ok(t, "{'at': {'$expr': ['now']}}", NULL, "{'at': '1970-01-01T00:00:00.000Z'}");
    /* keys that are no column pass through, expression and all */
    apply_ok(t, "{'nope': {'$expr': ['/', 1, 0]}, 'i': 1}", NULL,
             "{'nope': {'$expr': ['/', 1, 0]}, 'i': 1}");
    apply_ok(t, "{}", NULL, "{}");

    apply_err(t, "{'i': {'$expr': ['value', 1e19]}}",
              "t.i: 1e+19 rounds outside the integer range");
    apply_err(t, "{'i': {'$expr': ['value', -9.3e18]}}",
              "t.i: -9.3e+18 rounds outside the integer range");
    apply_err(t, "{'s': 'ok', 'i': {'$expr': ['/', 1, 0]}}", "t.i: $expr: division by zero");
    apply_err(t, "{'i': {'$expr': ['+', {'$expr': ['field', 'fanz']}, 1]}}",
              "t.i: $expr[1].$expr[1]: unknown field 'fanz' of table t");
    apply_err(t, "{'i': {'$expr': ['pow', 2, 3]}}", "t.i: $expr[0]: unknown operator 'pow'");
    /* a literal is not looked up as a field */
    apply_ok(t, "{'s': {'$expr': ['value', {'$expr': ['field', 'fanz']}]}}", NULL,
             "{'s': {'$expr': ['field', 'fanz']}}");

    /* the input is left alone; plain values are shared, not copied */
    json_t *c = J("{'i': {'$expr': ['value', 2.5]}, 'a': [1]}"), *out = NULL;
    char *before = dump(c);
    ck_assert_int_eq(tsx_apply(&env, t, c, NULL, 0, 0, &out), TS_OK);
    char *after = dump(c);
    ck_assert_str_eq(before, after);
    ck_assert_ptr_eq(json_object_get(out, "a"), json_object_get(c, "a"));
    free(before);
    free(after);
    json_decref(out);
    json_decref(c);

    /* invalid arguments */
    c = J("[1]");
    out = (json_t *)&env;
    ck_assert_int_eq(tsx_apply(&env, t, c, NULL, 0, 0, &out), TS_ERR_INVALID);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(tsx_apply(&env, NULL, c, NULL, 0, 0, &out), TS_ERR_INVALID);
    ck_assert_int_eq(tsx_apply(&env, t, c, NULL, 0, 0, NULL), TS_ERR_INVALID);
    json_decref(c);
    tsd_table_free(t);
}
END_TEST

START_TEST(apply_key_types)
{
    /* timestampBased keys are integers; shortCode keys are strings */
    tsd_table *t = table("{'name': 'k', 'primaryKeyConfig': {'type': 'timestampBased'},"
                         " 'fields': []}");
    apply_ok(t, "{'id': {'$expr': ['value', -2.5]}}", NULL, "{'id': -3}");
    tsd_table_free(t);
    t = table("{'name': 'k', 'primaryKeyConfig': {'type': 'shortCode'}, 'fields': []}");
    apply_ok(t, "{'id': {'$expr': ['value', 2.5]}}", NULL, "{'id': 2.5}");
    tsd_table_free(t);
    t = table("{'name': 'k', 'primaryKeyConfig': {'name': 'code', 'type': 'none'},"
              " 'fields': [{'name': 'code', 'type': 'integer'}]}");
    apply_ok(t, "{'code': {'$expr': ['value', 2.5]}}", NULL, "{'code': 3}");
    tsd_table_free(t);
}
END_TEST

/* ---- builders ---------------------------------------------------------------- */

static void built(json_t *got, const char *want)
{
    ck_assert_ptr_nonnull(got);
    assert_json_is(got, want, "builder");
    ck_assert_int_eq(tsx_check(&env, got), TS_OK);
    json_decref(got);
}

START_TEST(builders_json_form)
{
    built(ts_expr_field("fans"), "{'$expr': ['field', 'fans']}");
    built(ts_expr_value(json_integer(5)), "{'$expr': ['value', 5]}");
    built(ts_expr_value(json_null()), "{'$expr': ['value', null]}");
    built(ts_expr_value(json_pack("[i,i]", 1, 2)), "{'$expr': ['value', [1, 2]]}");
    built(ts_expr_add(ts_expr_field("fans"), json_integer(50)),
          "{'$expr': ['+', {'$expr': ['field', 'fans']}, 50]}");
    built(ts_expr_sub(json_integer(1), json_real(2.5)), "{'$expr': ['-', 1, 2.5]}");
    built(ts_expr_mul(json_integer(1), json_integer(2)), "{'$expr': ['*', 1, 2]}");
    built(ts_expr_div(json_integer(1), json_integer(2)), "{'$expr': ['/', 1, 2]}");
    built(ts_expr_mod(json_integer(1), json_integer(2)), "{'$expr': ['%', 1, 2]}");
    built(ts_expr_neg(json_integer(1)), "{'$expr': ['neg', 1]}");
    built(ts_expr_min(json_integer(1), json_null()), "{'$expr': ['min', 1, null]}");
    built(ts_expr_max(json_string("a"), json_string("b")), "{'$expr': ['max', 'a', 'b']}");
    built(ts_expr_round(json_real(2.5)), "{'$expr': ['round', 2.5]}");
    built(ts_expr_floor(json_real(2.5)), "{'$expr': ['floor', 2.5]}");
    built(ts_expr_ceil(json_real(2.5)), "{'$expr': ['ceil', 2.5]}");
    built(ts_expr_abs(json_integer(-1)), "{'$expr': ['abs', -1]}");
    built(ts_expr_now(), "{'$expr': ['now']}");
    built(ts_expr_is_update(), "{'$expr': ['isUpdate']}");
    built(ts_expr_is_insert(), "{'$expr': ['isInsert']}");
    built(ts_expr_not(json_true()), "{'$expr': ['not', true]}");
    built(ts_expr_if(ts_expr_is_insert(), json_integer(1), json_integer(2)),
          "{'$expr': ['if', {'$expr': ['isInsert']}, 1, 2]}");
    const char *ops[] = {"=", "!=", "<", "<=", ">", ">=", "and", "or"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "{'$expr': ['%s', 1, 2]}", ops[i]);
        built(ts_expr_cmp(ops[i], json_integer(1), json_integer(2)), want);
    }

    /* built and evaluated */
    json_t *e = ts_expr_if(ts_expr_cmp("and", ts_expr_is_update(),
                                       ts_expr_cmp(">", ts_expr_field("n"), json_integer(10))),
                           ts_expr_round(ts_expr_div(ts_expr_field("n"), json_integer(4))),
                           ts_expr_max(ts_expr_field("n"), json_real(0.5)));
    json_t *row = J("{'n': 22}"), *out = NULL;
    ck_assert_int_eq(tsx_eval(&env, e, row, 1, 0, &out), TS_OK);
    assert_json_is(out, "6", "built if");           /* round(5.5) */
    json_decref(out);
    ck_assert_int_eq(tsx_eval(&env, e, row, 0, 0, &out), TS_OK);
    assert_json_is(out, "22.0", "built else");       /* max(22, 0.5) */
    json_decref(out);
    json_decref(row);
    json_decref(e);
}
END_TEST

START_TEST(builders_ownership)
{
    json_t *a = json_integer(1), *b = json_string("x");
    json_incref(a);
    json_incref(b);
    /* on success the builder holds the reference */
    json_t *e = ts_expr_add(a, b);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(a->refcount, 2);
    ck_assert_uint_eq(b->refcount, 2);
    json_decref(e);
    ck_assert_uint_eq(a->refcount, 1);
    ck_assert_uint_eq(b->refcount, 1);
    /* on failure it releases what it was given */
    json_incref(a);
    ck_assert_ptr_null(ts_expr_add(a, NULL));
    ck_assert_uint_eq(a->refcount, 1);
    json_incref(b);
    ck_assert_ptr_null(ts_expr_sub(NULL, b));
    ck_assert_uint_eq(b->refcount, 1);
    json_incref(a);
    json_incref(b);
    ck_assert_ptr_null(ts_expr_cmp("~", a, b));
    ck_assert_uint_eq(a->refcount, 1);
    ck_assert_uint_eq(b->refcount, 1);
    json_incref(a);
    json_incref(b);
    ck_assert_ptr_null(ts_expr_cmp(NULL, a, b));
    ck_assert_uint_eq(a->refcount, 1);
    ck_assert_uint_eq(b->refcount, 1);
    json_incref(a);
    json_incref(b);
    ck_assert_ptr_null(ts_expr_if(a, NULL, b));
    ck_assert_uint_eq(a->refcount, 1);
    ck_assert_uint_eq(b->refcount, 1);
    ck_assert_ptr_null(ts_expr_field(NULL));
    ck_assert_ptr_null(ts_expr_value(NULL));
    ck_assert_ptr_null(ts_expr_neg(NULL));
    ck_assert_ptr_null(ts_expr_not(NULL));
    json_decref(a);
    json_decref(b);
}
END_TEST

/* ---- refused shapes ---------------------------------------------------------- */

START_TEST(check_refusals)
{
    refused("1", "not an expression: expected an object whose only key is \"$expr\"");
    refused("{'$expr': ['now'], 'x': 1}",
            "not an expression: expected an object whose only key is \"$expr\"");
    refused("{'$expr': 1}", "$expr: expected an array [operator, argument...], got an integer");
    refused("{'$expr': {'op': '+'}}",
            "$expr: expected an array [operator, argument...], got an object");
    refused("{'$expr': []}", "$expr: expected an array [operator, argument...], got []");
    refused("{'$expr': [1, 2]}", "$expr[0]: the operator must be a string, got an integer");
    refused("{'$expr': ['pow', 2, 3]}", "$expr[0]: unknown operator 'pow'");
    refused("{'$expr': ['ADD', 2, 3]}", "$expr[0]: unknown operator 'ADD'");
    refused("{'$expr': ['isupdate']}", "$expr[0]: unknown operator 'isupdate'");
    refused("{'$expr': ['+', 1]}", "$expr: '+' takes 2 arguments, got 1");
    refused("{'$expr': ['+', 1, 2, 3]}", "$expr: '+' takes 2 arguments, got 3");
    refused("{'$expr': ['neg']}", "$expr: 'neg' takes 1 argument, got 0");
    refused("{'$expr': ['now', 1]}", "$expr: 'now' takes 0 arguments, got 1");
    refused("{'$expr': ['if', true, 1]}", "$expr: 'if' takes 3 arguments, got 2");
    refused("{'$expr': ['value']}", "$expr: 'value' takes 1 argument, got 0");
    refused("{'$expr': ['field', 1]}",
            "$expr[1]: 'field' takes a field name (a string), got an integer");
    refused("{'$expr': ['field', {'$expr': ['value', 'n']}]}",
            "$expr[1]: 'field' takes a field name (a string), got an object");
    refused("{'$expr': ['field', '']}", "$expr[1]: '' is not a field name");
    refused("{'$expr': ['+', [1], 2]}",
            "$expr[1]: an array is not an expression; write a literal as "
            "{\"$expr\": [\"value\", ...]}");
    refused("{'$expr': ['=', 1, {'a': 1}]}",
            "$expr[2]: an object is not an expression; write a literal as "
            "{\"$expr\": [\"value\", ...]}");
    /* errors deep inside name their place */
    refused("{'$expr': ['if', true, 1, {'$expr': ['+', 1, {'$expr': ['nope']}]}]}",
            "$expr[3].$expr[2].$expr[0]: unknown operator 'nope'");
    /* a malformed branch is refused although it would not be evaluated */
    refused("{'$expr': ['if', true, 1, {'$expr': ['+']}]}",
            "$expr[3].$expr: '+' takes 2 arguments, got 0");

    json_t *n = json_stringn("a\0b", 3);
    json_t *e = json_pack("{s:[s,o]}", "$expr", "field", n);
    refused_json(e, "$expr[1]: 'a' is not a field name");
    json_decref(e);
    ck_assert_int_eq(tsx_check(&env, NULL), TS_ERR_VALIDATION);
}
END_TEST

/* neg nested n deep: n expressions */
static json_t *deep(int n)
{
    json_t *e = json_integer(1);
    for (int i = 0; i < n; i++) e = ts_expr_neg(e);
    ck_assert_ptr_nonnull(e);
    return e;
}

START_TEST(check_depth)
{
    json_t *e = deep(TSX_DEPTH_MAX), *out = NULL;
    ck_assert_int_eq(tsx_check(&env, e), TS_OK);
    ck_assert_int_eq(tsx_eval(&env, e, NULL, 1, 0, &out), TS_OK);
    assert_json_is(out, "1", "64 negations"); /* an even number */
    json_decref(out);
    json_decref(e);

    e = deep(TSX_DEPTH_MAX + 1);
    char want[1024] = "$expr";
    for (int i = 0; i < TSX_DEPTH_MAX; i++) strcat(want, "[1].$expr");
    strcat(want, ": expressions nested deeper than 64 levels");
    refused_json(e, want);
    json_decref(e);

    /* literals under "value" do not count */
    json_t *lit = json_integer(1);
    for (int i = 0; i < 200; i++) lit = json_pack("[o]", lit);
    e = ts_expr_value(lit);
    ck_assert_int_eq(tsx_check(&env, e), TS_OK);
    json_decref(e);
}
END_TEST

/* ---- random trees against a reference ---------------------------------------- */

/* The reference: integers exact in __int128, reals in long double with a
 * bound on how far the double arithmetic of tsx_eval can be from the exact
 * value.  A sample whose outcome that bound leaves undecided (a divisor or
 * rounding point within the error) is "fragile" and skipped. */
typedef enum { R_NULL, R_INT, R_REAL, R_EDIV, R_EOVF, R_EINF } rkind;

typedef struct rval {
    rkind       k;
    __int128    i;
    long double r;
    long double err;
} rval;

static int fragile;

#define EPS (0x1p-50L) /* per operation, generous for double's 2^-53 */

static rval r_int(__int128 i)
{
    rval v = {R_INT, i, 0, 0};
    if (i > INT64_MAX || i < INT64_MIN) v.k = R_EOVF;
    return v;
}

/* The value of a number as tsx_eval's double would hold it. */
static void as_real(const rval *v, long double *r, long double *err)
{
    if (v->k == R_REAL) { *r = v->r; *err = v->err; return; }
    *r = (long double)v->i;
    *err = fabsl(*r) > 0x1p53L ? fabsl(*r) * EPS : 0;
}

static rval r_real(long double r, long double err)
{
    rval v = {R_REAL, 0, r, err + fabsl(r) * EPS};
    if (fabsl(r) - v.err > DBL_MAX) v.k = R_EINF;
    else if (fabsl(r) + v.err > DBL_MAX) fragile = 1;
    return v;
}

static int is_err(const rval *v) { return v->k >= R_EDIV; }

typedef enum { O_ADD, O_SUB, O_MUL, O_DIV, O_MOD, O_NEG, O_ABS, O_MIN, O_MAX, O_ROUND,
               O_FLOOR, O_CEIL, O_NOPS } rop;
static const char *const RNAMES[] = {"+", "-", "*", "/", "%", "neg", "abs", "min", "max",
                                     "round", "floor", "ceil"};

static rval r_bin(rop op, rval a, rval b)
{
    if (is_err(&a)) return a;
    if (is_err(&b)) return b;
    if (a.k == R_NULL || b.k == R_NULL) return (rval){R_NULL, 0, 0, 0};
    if (a.k == R_INT && b.k == R_INT) {
        __int128 x = a.i, y = b.i;
        switch (op) {
        case O_ADD: return r_int(x + y);
        case O_SUB: return r_int(x - y);
        case O_MUL: return r_int(x * y);
        case O_DIV:
            if (y == 0) return (rval){R_EDIV, 0, 0, 0};
            if (x % y == 0) return r_int(x / y);
            return r_real((long double)x / (long double)y, 0);
        case O_MOD:
            if (y == 0) return (rval){R_EDIV, 0, 0, 0};
            return r_int(x % y);
        case O_MIN: return r_int(x < y ? x : y);
        default:    return r_int(x > y ? x : y);
        }
    }
    long double x, ex, y, ey;
    as_real(&a, &x, &ex);
    as_real(&b, &y, &ey);
    switch (op) {
    case O_ADD: return r_real(x + y, ex + ey);
    case O_SUB: return r_real(x - y, ex + ey);
    case O_MUL: return r_real(x * y, fabsl(x) * ey + fabsl(y) * ex + ex * ey);
    case O_DIV:
        if (fabsl(y) <= ey) { /* zero or not: undecided, unless exactly zero */
            if (y == 0 && ey == 0) return (rval){R_EDIV, 0, 0, 0};
            fragile = 1;
            return r_real(0, 0);
        }
        return r_real(x / y, (fabsl(x) * ey + fabsl(y) * ex) / (fabsl(y) * (fabsl(y) - ey)));
    case O_MOD: {
        if (fabsl(y) <= ey) {
            if (y == 0 && ey == 0) return (rval){R_EDIV, 0, 0, 0};
            fragile = 1;
            return r_real(0, 0);
        }
        long double m = fmodl(x, y), am = fabsl(m), ay = fabsl(y);
        long double q = floorl(fabsl(x / y));
        long double e = ex + (q + 1) * ey; /* fmod itself is exact */
        if (e > 0 && (am <= e || ay - am <= e)) fragile = 1; /* near a multiple of y */
        return r_real(m, e);
    }
    case O_MIN:
    case O_MAX: {
        /* min and max move no more than their operands do */
        int first = op == O_MIN ? x <= y : x >= y;
        return r_real(first ? x : y, ex > ey ? ex : ey);
    }
    default: return (rval){R_NULL, 0, 0, 0};
    }
}

static rval r_un(rop op, rval a)
{
    if (is_err(&a) || a.k == R_NULL) return a;
    if (a.k == R_INT) {
        switch (op) {
        case O_NEG: return r_int(-a.i);
        case O_ABS: return r_int(a.i < 0 ? -a.i : a.i);
        default:    return a;
        }
    }
    long double r = a.r, e = a.err, q;
    if (op >= O_ROUND && fabsl(r) + e >= 0x1p53L) { /* integral doubles: skipped */
        fragile = 1;
        return r_int(0);
    }
    switch (op) {
    case O_NEG: return r_real(-r, e);
    case O_ABS: return r_real(fabsl(r), e);
    case O_ROUND:
        q = roundl(r);
        /* undecided near a half: or the exact value might be integral */
        if (e > 0 && fabsl(fabsl(r - truncl(r)) - 0.5L) <= e) fragile = 1;
        break;
    case O_FLOOR:
        q = floorl(r);
        if (e > 0 && (r - q <= e || q + 1 - r <= e)) fragile = 1;
        break;
    default:
        q = ceill(r);
        if (e > 0 && (q - r <= e || r - (q - 1) <= e)) fragile = 1;
        break;
    }
    return r_int((__int128)q); /* |q| < 2^53 here */
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A leaf: mostly small integers, sometimes extremes, exact reals, null;
 * as a bare literal, a "value" expression or a field of the row. */
static json_t *leaf(json_t *row, rval *ref)
{
    static const int64_t big[] = {INT64_MAX, INT64_MIN, INT64_MAX / 2, INT64_MIN / 2,
                                  3037000499LL, -3037000500LL, 4294967296LL};
    static const double reals[] = {0.5, -2.5, 1.25, 0.0, -0.75};
    json_t *v;
    uint64_t c = rnd() % 100;
    if (c < 75) {
        int64_t i = (int64_t)(rnd() % 11) - 5;
        v = json_integer(i);
        *ref = r_int(i);
    } else if (c < 87) {
        int64_t i = big[rnd() % (sizeof big / sizeof big[0])];
        v = json_integer(i);
        *ref = r_int(i);
    } else if (c < 96) {
        double d = reals[rnd() % (sizeof reals / sizeof reals[0])];
        v = json_real(d);
        *ref = (rval){R_REAL, 0, d, 0};
    } else {
        v = json_null();
        *ref = (rval){R_NULL, 0, 0, 0};
    }
    switch (rnd() % 3) {
    case 0: return v;
    case 1: return ts_expr_value(v);
    default: {
        char name[16];
        snprintf(name, sizeof name, "f%zu", json_object_size(row));
        json_object_set_new(row, name, v);
        return ts_expr_field(name);
    }
    }
}

static json_t *tree(int depth, json_t *row, rval *ref)
{
    if (depth == 0 || rnd() % 4 == 0) return leaf(row, ref);
    rop op = (rop)(rnd() % O_NOPS);
    json_t *a, *b, *x;
    rval ra, rb;
    a = tree(depth - 1, row, &ra);
    if (op >= O_NEG && op != O_MIN && op != O_MAX) {
        json_t *args = json_pack("[s,o]", RNAMES[op], a);
        x = json_pack("{s:o}", "$expr", args);
        *ref = r_un(op, ra);
    } else {
        b = tree(depth - 1, row, &rb);
        json_t *args = json_pack("[s,o,o]", RNAMES[op], a, b);
        x = json_pack("{s:o}", "$expr", args);
        *ref = r_bin(op, ra, rb);
    }
    ck_assert_ptr_nonnull(x);
    return x;
}

START_TEST(random_trees)
{
    int n = getenv("TS_TEST_LONG") ? 300000 : 30000;
    int skipped = 0, ints = 0, reals = 0, nnull = 0, errs = 0, literal = 0;
    for (int it = 0; it < n; it++) {
        json_t *row = json_object();
        rval ref;
        fragile = 0;
        json_t *e = tree(1 + (int)(rnd() % 6), row, &ref);
        if (!tsx_is_expr(e)) { /* a bare leaf: wrap it */
            e = ts_expr_add(e, json_integer(0));
            ref = r_bin(O_ADD, ref, r_int(0));
            literal++;
        }
        if (fragile) {
            skipped++;
            json_decref(e);
            json_decref(row);
            continue;
        }
        json_t *out = NULL;
        int rc = tsx_eval(&env, e, row, 1, 0, &out);
        char *d = dump(e);
        if (ref.k >= R_EDIV) {
            const char *want = ref.k == R_EDIV ? "division by zero"
                             : ref.k == R_EOVF ? "integer overflow"
                             : "the result is not a finite number";
            ck_assert_msg(rc == TS_ERR_VALIDATION && strstr(tsenv_errmsg(&env), want),
                          "%s: want error '%s', got %d (%s)", d, want, rc,
                          rc ? tsenv_errmsg(&env) : "accepted");
            errs++;
        } else {
            ck_assert_msg(rc == TS_OK, "%s: error %s", d, tsenv_errmsg(&env));
            if (ref.k == R_NULL) {
                ck_assert_msg(json_is_null(out), "%s: want null", d);
                nnull++;
            } else if (ref.k == R_INT) {
                ck_assert_msg(json_is_integer(out) && json_integer_value(out) == (int64_t)ref.i,
                              "%s: want integer %lld, got %s", d, (long long)ref.i, dump(out));
                ints++;
            } else {
                ck_assert_msg(json_is_real(out), "%s: want a real, got %s", d, dump(out));
                long double got = json_real_value(out);
                ck_assert_msg(fabsl(got - ref.r) <= ref.err,
                              "%s: want %.21Lg (+-%.3Lg), got %.17g", d, ref.r, ref.err,
                              json_real_value(out));
                reals++;
            }
        }
        free(d);
        json_decref(out);
        json_decref(e);
        json_decref(row);
    }
    /* every outcome was exercised, and few samples were undecided */
    ck_assert_msg(skipped < n / 20, "%d of %d skipped", skipped, n);
    ck_assert_int_gt(ints, n / 10);
    ck_assert_int_gt(reals, n / 50);
    ck_assert_int_gt(nnull, n / 50);
    ck_assert_int_gt(errs, n / 50);
    ck_assert_int_gt(literal, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("expr");
    TCase *tc = tcase_create("eval");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, is_and_has_expr);
    tcase_add_test(tc, literals_and_fields);
    tcase_add_test(tc, arithmetic);
    tcase_add_test(tc, nulls);
    tcase_add_test(tc, division_by_zero);
    tcase_add_test(tc, overflow_and_types);
    tcase_add_test(tc, comparisons_and_logic);
    tcase_add_test(tc, nested_if);
    tcase_add_test(tc, now);
    tcase_add_test(tc, random_trees);
    suite_add_tcase(s, tc);
    TCase *ta = tcase_create("apply");
    tcase_add_checked_fixture(ta, setup, teardown);
    tcase_add_test(ta, apply_rounds_integer_columns);
    tcase_add_test(ta, apply_key_types);
    suite_add_tcase(s, ta);
    TCase *tb = tcase_create("shape");
    tcase_add_checked_fixture(tb, setup, teardown);
    tcase_add_test(tb, builders_json_form);
    tcase_add_test(tb, builders_ownership);
    tcase_add_test(tb, check_refusals);
    tcase_add_test(tb, check_depth);
    suite_add_tcase(s, tb);
    return s;
}

int main(void)
{
    return tst_run(suite());
}
