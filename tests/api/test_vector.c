/*
 * Vector fields and ts_vector_search through the public header (issue 7):
 * values as JSON arrays and in binary form (ts_vector_value), validation,
 * search through an ngh index for every metric against exact search done
 * here, exact scans without an index, filters at several selectivities,
 * select lists, ts_ef_search, deletes and updates, spaces, transactions,
 * reopen, and errors.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <pthread.h>
#include <unistd.h>
#include "tsupport.h"
#define TT_NAME "vector"
#include "tables_support.h"
/* kernel/query/vset.h: sets keep vectors up to this many rows */
#define TSQ_VSET_EXACT_MAX_TEST 16384

/* ---- data ------------------------------------------------------------------ */

static uint64_t rng_state;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* n clustered vectors of dim floats (fixed seed): a center per 50 rows plus noise. */
static float *clustered(size_t n, size_t dim, uint64_t seed)
{
    rng_state = seed;
    float *v = malloc(n * dim * sizeof *v);
    float *c = malloc(dim * sizeof *c);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(c);
    for (size_t i = 0; i < n; i++) {
        if (i % 50 == 0)
            for (size_t d = 0; d < dim; d++) c[d] = (float)nrand();
        for (size_t d = 0; d < dim; d++) v[i * dim + d] = c[d] + 0.5f * (float)nrand();
    }
    free(c);
    return v;
}

enum { M_COS, M_L2, M_IP };
static const char *const mname[] = { "cosine", "l2", "innerProduct" };

static double dist(int m, const float *a, const float *b, size_t n)
{
    double s = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        if (m == M_L2) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        else { s += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
    }
    if (m == M_L2) return sqrt(s);
    if (m == M_IP) return -s;
    return 1.0 - s / (sqrt(na) * sqrt(nb));
}

/* The ids (0-based row numbers) of the k nearest among rows passing keep. */
static size_t exact_knn(int m, const float *data, size_t n, size_t dim, const float *q, size_t k,
                        int (*keep_row)(size_t), size_t *ids)
{
    double *best = malloc(k * sizeof *best);
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep_row && !keep_row(i)) continue;
        double d = dist(m, data + i * dim, q, dim);
        if (got == k && d >= best[k - 1]) continue;
        size_t j = got < k ? got++ : k - 1;
        while (j > 0 && best[j - 1] > d) { best[j] = best[j - 1]; ids[j] = ids[j - 1]; j--; }
        best[j] = d;
        ids[j] = i;
    }
    free(best);
    return got;
}

static json_t *vec_json(const float *v, size_t dim)
{
    json_t *a = json_array();
    for (size_t i = 0; i < dim; i++) json_array_append_new(a, json_real(v[i]));
    return keep(a);
}

/* Table t: id (sequential from 1), cat = i % 100, tag text, emb vector. */
static void make_table(ts_db *db, const char *t, size_t dim, const char *prec, int metric, int indexed)
{
    char ix[256] = "";
    if (indexed)
        snprintf(ix, sizeof ix, ", 'indexes': [{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': "
                 "{'distanceMetric': '%s', 'parameters': {'M': 16, 'efConstruction': 100}}}]",
                 mname[metric]);
    char text[1024];
    snprintf(text, sizeof text,
             "{'name': '%s', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
             "{'name': 'cat', 'type': 'integer'}, {'name': 'tag', 'type': 'text'}, "
             "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': %zu, "
             "'precision': '%s'}}]%s}", t, dim, prec, ix);
    create(db, text);
}

static void fill(ts_db *db, const char *t, const float *data, size_t n, size_t dim, int binary)
{
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_pack("{s:I, s:s, s:o}", "cat", (json_int_t)(i % 100), "tag",
                                i % 2 ? "odd" : "even",
                                "emb", binary ? ts_vector_value(data + i * dim, dim)
                                              : json_incref(vec_json(data + i * dim, dim)));
        ck_assert_ptr_nonnull(rec);
        json_t *pk = NULL;
        int rc = ts_insert(db, t, rec, &pk);
        ck_assert_msg(rc == TS_OK, "insert %zu: %d %s", i, rc, ts_errmsg(db));
        ck_assert_int_eq(json_integer_value(pk), (json_int_t)i + 1);
        json_decref(pk);
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
}

static ts_result *search(ts_query *q, const float *v, size_t dim, size_t k)
{
    ts_result *r = NULL;
    int rc = ts_vector_search(q, "emb", v, dim, k, &r);
    ck_assert_msg(rc == TS_OK, "vector search: %d %s", rc, ts_errmsg(NULL));
    ts_query_free(q);
    return r;
}

static size_t id_of(const json_t *row) { return (size_t)fint(row, "id") - 1; }

/* Recall of the ids in r against the exact answer. */
static double recall_of(const ts_result *r, const size_t *want, size_t nwant)
{
    size_t hit = 0;
    for (size_t i = 0; i < ts_result_count(r); i++) {
        size_t id = id_of(ts_result_row(r, i));
        for (size_t j = 0; j < nwant; j++)
            if (want[j] == id) { hit++; break; }
    }
    return nwant ? (double)hit / (double)nwant : 1.0;
}

/* Rows nearest first, each _distance what the metric says of its vector,
 * _score from _distance. */
static void check_rows(const ts_result *r, int m, const float *data, size_t dim, const float *q)
{
    double prev = -INFINITY;
    for (size_t i = 0; i < ts_result_count(r); i++) {
        const json_t *row = ts_result_row(r, i);
        double d = json_real_value(json_object_get(row, "_distance"));
        double s = json_real_value(json_object_get(row, "_score"));
        ck_assert(json_is_real(json_object_get(row, "_distance")));
        ck_assert(json_is_real(json_object_get(row, "_score")));
        double want = dist(m, data + id_of(row) * dim, q, dim);
        if (fabs(d - want) > 1e-3 * (1 + fabs(want)) && getenv("TS_TEST_VERBOSE")) {
            char *js = json_dumps(json_object_get(row, "emb"), JSON_REAL_PRECISION(5));
            fprintf(stderr, "row emb %s\nwant:", js);
            free(js);
            for (size_t x = 0; x < dim; x++) fprintf(stderr, " %g", data[id_of(row) * dim + x]);
            fprintf(stderr, "\nq:");
            for (size_t x = 0; x < dim; x++) fprintf(stderr, " %g", q[x]);
            fprintf(stderr, "\n");
        }
        ck_assert_msg(fabs(d - want) <= 1e-3 * (1 + fabs(want)), "%s: row %zu (id %zu) distance %g, "
                      "want %g", mname[m], i, id_of(row) + 1, d, want);
        double ws = m == M_L2 ? 1 / (1 + d) : m == M_COS ? 1 - d : -d;
        ck_assert_msg(fabs(s - ws) <= 1e-6 * (1 + fabs(ws)), "%s: score %g, want %g", mname[m], s, ws);
        ck_assert_msg(d >= prev - 1e-6, "%s: rows not nearest first", mname[m]);
        prev = d;
    }
}

START_TEST(values_and_validation)
{
    ts_db *db = open_db(NULL);
    make_table(db, "v", 4, "float32", M_COS, 1);
    json_int_t a = ins_i(db, "v", "{'cat': 1, 'emb': [1, 2, 3, 4.5]}");
    float f[4] = { 0.25f, -1.5f, 3e10f, 7 };
    json_t *bin = keep(ts_vector_value(f, 4));
    ck_assert_str_eq(json_string_value(json_object_get(bin, "$vector")) ? "ok" : "no", "ok");
    json_t *pk = NULL;
    ck_assert_int_eq(ts_insert(db, "v", keep(json_pack("{s:O}", "emb", bin)), &pk), TS_OK);
    keep(pk);
    json_t *row = row_of(db, "v", pk);
    json_t *e = json_object_get(row, "emb");
    ck_assert_uint_eq(json_array_size(e), 4);
    for (size_t i = 0; i < 4; i++) ck_assert(json_real_value(json_array_get(e, i)) == (double)f[i]);
    e = json_object_get(row_i(db, "v", a), "emb");
    ck_assert(json_real_value(json_array_get(e, 3)) == 4.5);
    /* a row without a vector is stored and never found by a search */
    ins_i(db, "v", "{'cat': 2}");
    /* wrong dimensions, elements and shapes */
    ck_assert_int_eq(ins_rc(db, "v", "{'emb': [1, 2, 3]}", NULL), TS_ERR_VALIDATION);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "4 dimensions"));
    ck_assert_int_eq(ins_rc(db, "v", "{'emb': [1, 2, 3, 4, 5]}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "v", "{'emb': [1, 'x', 3, 4]}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "v", "{'emb': [1, null, 3, 4]}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "v", "{'emb': 'abc'}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "v", "{'emb': {'$vector': 'AAAA'}}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "v", "{'emb': {'$vector': '!!!!'}}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ins_rc(db, "v", "{'emb': [1e300, 2, 3, 4]}", NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_insert(db, "v", keep(json_pack("{s:o}", "emb", ts_vector_value(f, 3))), NULL),
                     TS_ERR_VALIDATION);
    float nan4[4] = { 0, NAN, 0, 0 };
    ck_assert_ptr_null(ts_vector_value(nan4, 4));
    ck_assert_ptr_null(ts_vector_value(NULL, 4));
    json_t *empty = ts_vector_value(NULL, 0);
    ck_assert_ptr_nonnull(empty);
    json_decref(empty);
    ck_assert_int_eq(count(db, "v"), 3);
    /* the search sees the two vectors */
    float q[4] = { 1, 2, 3, 4.5f };
    ts_result *r = search(ts_query_new(db, "v"), q, 4, 10);
    ck_assert_uint_eq(ts_result_count(r), 2);
    ck_assert_int_eq(fint(ts_result_row(r, 0), "id"), a);
    ck_assert(fabs(json_real_value(json_object_get(ts_result_row(r, 0), "_distance"))) < 1e-6);
    ts_result_free(r);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* Through the index for each metric: recall@10 against exact search,
 * distances and scores right, a stored vector found first at ~0. */
static void metric_case(int m, const char *prec)
{
    enum { N = 3000, DIM = 24, Q = 60, K = 10 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 77 + (uint64_t)m);
    float *qs = clustered(Q, DIM, 991);
    make_table(db, "v", DIM, prec, m, 1);
    if (strcmp(prec, "float32")) {
        /* distances are measured on what the rows store (the precision's rounding) */
        fill(db, "v", data, N, DIM, 0);
        ts_result *all = NULL;
        ts_query *aq = ts_limit(ts_query_new(db, "v"), N);
        ck_assert_int_eq(ts_query_exec(aq, &all), TS_OK);
        ts_query_free(aq);
        for (size_t i = 0; i < N; i++) {
            const json_t *row = ts_result_row(all, i);
            for (size_t d = 0; d < DIM; d++)
                data[id_of(row) * DIM + d] = (float)json_real_value(json_array_get(json_object_get(row, "emb"), d));
        }
        ts_result_free(all);
    }
    if (!strcmp(prec, "float32")) fill(db, "v", data, N, DIM, m == M_L2);
    double rsum = 0;
    size_t want[K];
    for (size_t i = 0; i < Q; i++) {
        const float *q = i % 3 == 0 ? data + (i * 37 % N) * DIM : qs + i * DIM;
        size_t nw = exact_knn(m, data, N, DIM, q, K, NULL, want);
        ts_result *r = search(ts_query_new(db, "v"), q, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        check_rows(r, m, data, DIM, q);
        rsum += recall_of(r, want, nw);
        if (i % 3 == 0 && m != M_IP) {
            ck_assert_msg(id_of(ts_result_row(r, 0)) == i * 37 % N, "%s: query %zu: row %zu first "
                          "(distance %g), not itself", mname[m], i, id_of(ts_result_row(r, 0)),
                          json_real_value(json_object_get(ts_result_row(r, 0), "_distance")));
            ck_assert(json_real_value(json_object_get(ts_result_row(r, 0), "_distance")) < 1e-4);
        }
        ts_result_free(r);
    }
    ck_assert_msg(rsum / Q >= 0.95, "%s %s: recall@10 %.3f", mname[m], prec, rsum / Q);
    free(data);
    free(qs);
    ck_assert_int_eq(ts_close(db), TS_OK);
}

START_TEST(search_cosine) { metric_case(M_COS, "float32"); }
END_TEST
START_TEST(search_l2) { metric_case(M_L2, "float32"); }
END_TEST
START_TEST(search_inner_product) { metric_case(M_IP, "float32"); }
END_TEST
/* Quantized rows and indexes: the graph walks float16 / int8 records and
 * re-ranks exactly, so recall holds. */
START_TEST(search_float16_cosine) { metric_case(M_COS, "float16"); }
END_TEST
START_TEST(search_int8_l2) { metric_case(M_L2, "int8"); }
END_TEST
START_TEST(search_int8_inner_product) { metric_case(M_IP, "int8"); }
END_TEST
START_TEST(search_float16_l2) { metric_case(M_L2, "float16"); }
END_TEST
START_TEST(search_float16_inner_product) { metric_case(M_IP, "float16"); }
END_TEST
START_TEST(search_int8_cosine) { metric_case(M_COS, "int8"); }
END_TEST

/* Without an index the search scans: the exact answer, for every precision. */
START_TEST(exact_scan_without_index)
{
    enum { N = 800, DIM = 12, K = 7 };
    static const char *const prec[] = { "float32", "float16", "int8" };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 5);
    for (int p = 0; p < 3; p++) {
        char t[16];
        snprintf(t, sizeof t, "t%d", p);
        make_table(db, t, DIM, prec[p], M_COS, 0);
        fill(db, t, data, N, DIM, p == 1);
        /* what the table stores (rounded to its precision) is what is measured */
        float *stored = malloc(sizeof(float) * N * DIM);
        ts_result *all = NULL;
        ts_query *aq = ts_limit(ts_query_new(db, t), N);
        ck_assert_int_eq(ts_query_exec(aq, &all), TS_OK);
        ts_query_free(aq);
        ck_assert_uint_eq(ts_result_count(all), N);
        for (size_t i = 0; i < N; i++) {
            const json_t *row = ts_result_row(all, i);
            for (size_t d = 0; d < DIM; d++)
                stored[id_of(row) * DIM + d] = (float)json_real_value(json_array_get(json_object_get(row, "emb"), d));
        }
        ts_result_free(all);
        for (size_t qi = 0; qi < 10; qi++) {
            const float *q = data + qi * 71 * DIM;
            size_t want[K];
            exact_knn(M_COS, stored, N, DIM, q, K, NULL, want);
            ts_result *r = search(ts_query_new(db, t), q, DIM, K);
            ck_assert_uint_eq(ts_result_count(r), K);
            check_rows(r, M_COS, stored, DIM, q);
            ck_assert_msg(recall_of(r, want, K) == 1.0, "%s: the scan is not exact", prec[p]);
            ts_result_free(r);
        }
        free(stored);
    }
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* ts_vector_metric: a table without an index scans exactly by the metric
 * asked for; a table with an l2 index searches it for l2 (approximate,
 * recall high) and scans exactly for the other two; an unknown name fails
 * the query. */
START_TEST(metric_per_query)
{
    enum { N = 900, DIM = 10, K = 8 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 13);
    make_table(db, "plain", DIM, "float32", M_L2, 0);
    make_table(db, "ixl2", DIM, "float32", M_L2, 1);
    fill(db, "plain", data, N, DIM, 1);
    fill(db, "ixl2", data, N, DIM, 1);
    static const char *const tabs[] = { "plain", "ixl2" };
    for (int t = 0; t < 2; t++)
        for (int m = 0; m < 3; m++)
            for (size_t qi = 0; qi < 8; qi++) {
                const float *q = data + (qi * 97 + 5) * DIM;
                size_t want[K];
                exact_knn(m, data, N, DIM, q, K, NULL, want);
                ts_result *r = search(ts_vector_metric(ts_query_new(db, tabs[t]), mname[m]), q, DIM, K);
                ck_assert_uint_eq(ts_result_count(r), K);
                check_rows(r, m, data, DIM, q);
                double rc = recall_of(r, want, K);
                /* exact unless the index answers (its own metric) */
                ck_assert_msg(rc >= (t == 1 && m == M_L2 ? 0.75 : 1.0), "%s by %s: recall %.3f", tabs[t],
                              mname[m], rc);
                ts_result_free(r);
            }
    ts_result *r = NULL;
    ts_query *bad = ts_vector_metric(ts_query_new(db, "plain"), "manhattan");
    ck_assert_int_eq(ts_vector_search(bad, "emb", data, DIM, K, &r), TS_ERR_VALIDATION);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "manhattan"));
    ts_query_free(bad);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

static size_t sel_mod;
static int keep_sel(size_t i) { return (i % 100) < sel_mod; }

/* Conditions filter the candidates: only matching rows, exactly
 * min(k, matching), and the true nearest among them. */
START_TEST(filtered_search)
{
    enum { N = 4000, DIM = 16, K = 10 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 9);
    make_table(db, "v", DIM, "float32", M_L2, 1);
    make_table(db, "w", DIM, "float32", M_L2, 0);
    /* x: the filtered field indexed, so the plan narrows the candidates */
    create(db, "{'name': 'x', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
               "{'name': 'cat', 'type': 'integer'}, {'name': 'tag', 'type': 'text'}, "
               "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 16}}], 'indexes': ["
               "{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'distanceMetric': 'l2'}}, "
               "{'fields': ['cat']}]}");
    fill(db, "v", data, N, DIM, 1);
    fill(db, "w", data, N, DIM, 1);
    fill(db, "x", data, N, DIM, 1);
    static const char *const tnames[] = { "v", "w", "x" };
    static const size_t sels[] = { 50, 10, 1 };
    for (int tb = 0; tb < 3; tb++)
        for (size_t s = 0; s < 3; s++) {
            sel_mod = sels[s];
            double rsum = 0;
            for (size_t qi = 0; qi < 20; qi++) {
                const float *q = data + (qi * 113 % N) * DIM;
                size_t want[K];
                int m = tb == 1 ? M_COS : M_L2;   /* a scan without an index measures cosine */
                size_t nw = exact_knn(m, data, N, DIM, q, K, keep_sel, want);
                ts_query *qq = ts_where(ts_query_new(db, tnames[tb]), "cat", "<", I((json_int_t)sels[s]));
                ts_result *r = search(qq, q, DIM, K);
                ck_assert_uint_eq(ts_result_count(r), nw);
                for (size_t i = 0; i < ts_result_count(r); i++)
                    ck_assert_int_lt(fint(ts_result_row(r, i), "cat"), (json_int_t)sels[s]);
                if (getenv("TS_TEST_VERBOSE"))
                    for (size_t i = 0; i < ts_result_count(r); i++)
                        fprintf(stderr, "t%d s%zu q%zu: id %zu d %g\n", tb, sels[s], qi,
                                id_of(ts_result_row(r, i)) + 1,
                                json_real_value(json_object_get(ts_result_row(r, i), "_distance")));
                check_rows(r, m, data, DIM, q);
                rsum += recall_of(r, want, nw);
                ts_result_free(r);
            }
            ck_assert_msg(rsum / 20 >= 0.95, "selectivity %zu%%: recall %.3f", sels[s], rsum / 20);
        }
    /* three rows match: three rows come back, whatever k */
    ts_query *qq = ts_where(ts_query_new(db, "v"), "id", "IN", J("[5, 17, 3000]"));
    ts_result *r = search(qq, data, DIM, 50);
    ck_assert_uint_eq(ts_result_count(r), 3);
    ts_result_free(r);
    /* OR groups and LIKE go through the same filter */
    qq = ts_where(ts_or(ts_where(ts_query_new(db, "v"), "cat", "=", I(3))), "tag", "LIKE", S("od%"));
    r = search(qq, data + 7 * DIM, DIM, 40);
    ck_assert_uint_eq(ts_result_count(r), 40);
    for (size_t i = 0; i < 40; i++) {
        const json_t *row = ts_result_row(r, i);
        ck_assert(fint(row, "cat") == 3 || !strcmp(fstr(row, "tag"), "odd"));
    }
    ts_result_free(r);
    /* nothing matches */
    r = search(ts_where(ts_query_new(db, "v"), "cat", ">", I(1000)), data, DIM, 5);
    ck_assert_uint_eq(ts_result_count(r), 0);
    ts_result_free(r);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* Searches that repeat their conditions use a set of the passing rows
 * (built on the second one, api/vcache.c): still only matching rows,
 * exactly min(k, matching), the exact nearest; commits that change the
 * table (the filtered field, the vector, deletes) are seen at once; a
 * transaction sees its own writes; a set too big to keep vectors filters
 * the graph search. */
static size_t cat_lt;
static int cat_below(size_t i) { return (i % 100) < cat_lt; }
static int keep_all(size_t i) { (void)i; return 1; }

static void check_filtered(ts_db *db, const char *t, const float *data, size_t n, size_t dim,
                           const float *q, size_t lt, size_t k, double min_recall)
{
    size_t want[64];
    cat_lt = lt;
    size_t nw = exact_knn(M_L2, data, n, dim, q, k, lt >= 100 ? keep_all : cat_below, want);
    ts_query *qq = ts_where(ts_query_new(db, t), "cat", "<", I((json_int_t)lt));
    ts_result *r = search(qq, q, dim, k);
    ck_assert_uint_eq(ts_result_count(r), nw);
    for (size_t i = 0; i < ts_result_count(r); i++)
        ck_assert_int_lt(fint(ts_result_row(r, i), "cat"), (json_int_t)lt);
    check_rows(r, M_L2, data, dim, q);
    double rc = recall_of(r, want, nw);
    ck_assert_msg(rc >= min_recall, "cat < %zu: recall %.3f", lt, rc);
    ts_result_free(r);
}

START_TEST(filtered_search_repeated)
{
    enum { N = 3000, DIM = 8, K = 10, BIG = TSQ_VSET_EXACT_MAX_TEST + 200 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 21);
    make_table(db, "c", DIM, "float32", M_L2, 1);
    fill(db, "c", data, N, DIM, 1);
    /* miss, build, then the set: the same answers, exact from the second on */
    for (int rep = 0; rep < 4; rep++)
        for (size_t qi = 0; qi < 5; qi++) {
            check_filtered(db, "c", data, N, DIM, data + (qi * 211 % N) * DIM, 2, K, rep ? 1.0 : 0.9);
            check_filtered(db, "c", data, N, DIM, data + (qi * 211 % N) * DIM, 30, K, 0.9);
        }
    /* a commit moves row 51 (cat 51) into the filter, at the query vector */
    const float *q = data + 7 * DIM;
    ck_assert_int_eq(ts_update(db, "c", I(52), keep(json_pack("{s:i, s:o}", "cat", 0, "emb",
                                                              ts_vector_value(q, DIM)))), TS_OK);
    memcpy(data + 51 * DIM, q, DIM * sizeof *q);
    for (int rep = 0; rep < 3; rep++) {
        ts_result *r = search(ts_where(ts_query_new(db, "c"), "cat", "<", I(2)), q, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        ck_assert(id_of(ts_result_row(r, 0)) == 51 || id_of(ts_result_row(r, 1)) == 51);
        for (size_t i = 0; i < K; i++) {
            size_t id = id_of(ts_result_row(r, i));
            ck_assert_int_lt(fint(ts_result_row(r, i), "cat"), 2);
            ck_assert(id == 51 || id % 100 < 2);
        }
        ts_result_free(r);
    }
    /* deleted: gone at once */
    ck_assert_int_eq(ts_delete(db, "c", I(52)), TS_OK);
    for (int rep = 0; rep < 3; rep++) {
        ts_result *r = search(ts_where(ts_query_new(db, "c"), "cat", "<", I(2)), q, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        for (size_t i = 0; i < K; i++) ck_assert_uint_ne(id_of(ts_result_row(r, i)), 51);
        ts_result_free(r);
    }
    /* a transaction's own write, then rolled back */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_update(db, "c", I(54), keep(json_pack("{s:i, s:o}", "cat", 1, "emb",
                                                              ts_vector_value(q, DIM)))), TS_OK);
    ts_result *r = search(ts_where(ts_query_new(db, "c"), "cat", "<", I(2)), q, DIM, K);
    ck_assert(id_of(ts_result_row(r, 0)) == 53 || id_of(ts_result_row(r, 1)) == 53);
    ts_result_free(r);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    for (int rep = 0; rep < 3; rep++) {
        r = search(ts_where(ts_query_new(db, "c"), "cat", "<", I(2)), q, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        for (size_t i = 0; i < K; i++) ck_assert_uint_ne(id_of(ts_result_row(r, i)), 53);
        ts_result_free(r);
    }
    /* another space: its own rows only (none here), then back */
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    for (int rep = 0; rep < 3; rep++) {
        r = search(ts_where(ts_query_new(db, "c"), "cat", "<", I(2)), q, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), 0);
        ts_result_free(r);
    }
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    r = search(ts_where(ts_query_new(db, "c"), "cat", "<", I(2)), q, DIM, K);
    ck_assert_uint_eq(ts_result_count(r), K);
    ts_result_free(r);
    /* more rows pass than a set keeps vectors of: its keys filter the graph */
    float *big = clustered(BIG, 4, 23);
    create(db, "{'name': 'b', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
               "{'name': 'cat', 'type': 'integer'}, {'name': 'tag', 'type': 'text'}, "
               "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 4}}], 'indexes': ["
               "{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'distanceMetric': 'l2', "
               "'parameters': {'M': 8, 'efConstruction': 40}}}]}");
    fill(db, "b", big, BIG, 4, 1);
    for (int rep = 0; rep < 3; rep++)
        for (size_t qi = 0; qi < 5; qi++) {
            check_filtered(db, "b", big, BIG, 4, big + (qi * 977 % BIG) * 4, 100, K, 0.8);
            check_filtered(db, "b", big, BIG, 4, big + (qi * 977 % BIG) * 4, 1, K, rep ? 1.0 : 0.8);
        }
    free(big);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* Conditions on one numeric column that change every search (the column
 * set path: every row's value cached, conditions evaluated on it): random
 * comparisons, IN / NOT IN, BETWEEN and null tests on an integer column
 * with nulls and a double column, ANDed, against the exact filtered
 * answer; then a commit, another space and a TTL-free reopen of the cache. */
typedef struct colrow { int has_n, deleted; long long n; double w; } colrow;
static const colrow *col_rows;
static int col_op, col_op2;
static long long col_a, col_b;
static double col_wa;

static int col_pass1(const colrow *r, int op, long long a, long long b)
{
    switch (op) {
    case 0: return r->has_n && r->n == a;
    case 1: return r->has_n && r->n != a;
    case 2: return r->has_n && r->n < a;
    case 3: return r->has_n && r->n >= a;
    case 4: return r->has_n && r->n >= a && r->n <= b;
    case 5: return r->has_n && (r->n == a || r->n == b);
    case 6: return r->has_n && r->n != a && r->n != b;
    case 7: return !r->has_n;
    case 8: return r->has_n;
    case 9: return r->has_n && r->n > a;
    default: return r->has_n && r->n <= a;
    }
}

static int col_keep(size_t i)
{
    const colrow *r = &col_rows[i];
    if (r->deleted) return 0;
    if (col_op >= 0 && !col_pass1(r, col_op, col_a, col_b)) return 0;
    if (col_op2 == 1 && !(r->w > col_wa)) return 0;
    if (col_op2 == 2 && !col_pass1(r, 3, col_b, 0)) return 0;
    return 1;
}

static ts_query *col_query(ts_db *db)
{
    static const char *const ops[] = { "=", "!=", "<", ">=", "BETWEEN", "IN", "NOT IN", "IS", "IS NOT", ">", "<=" };
    ts_query *q = ts_query_new(db, "cc");
    if (col_op >= 0) {
        json_t *v = col_op >= 4 && col_op <= 6 ? json_pack("[I, I]", (json_int_t)col_a, (json_int_t)col_b)
                  : col_op == 7 || col_op == 8 ? json_null()
                  : json_integer(col_a);
        q = ts_where(q, "n", ops[col_op], keep(v));
    }
    if (col_op2 == 1) q = ts_where(q, "w", ">", keep(json_real(col_wa)));
    if (col_op2 == 2) q = ts_where(q, "n", ">=", I(col_b));
    return q;
}

START_TEST(filtered_search_column)
{
    /* N above 4 x 1024 rows: conditions that pass many rows take the
     * graph with a filter looking values up by key, the others a pass
     * over the values */
    enum { N = 5000, DIM = 8, K = 10 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 31);
    colrow *rows = calloc(N, sizeof *rows);
    col_rows = rows;
    create(db, "{'name': 'cc', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
               "{'name': 'n', 'type': 'integer'}, {'name': 'w', 'type': 'double'}, "
               "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 8}}], 'indexes': ["
               "{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'distanceMetric': 'l2', "
               "'parameters': {'M': 12, 'efConstruction': 60}}}]}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (size_t i = 0; i < N; i++) {
        rows[i].has_n = i % 13 != 0;
        rows[i].n = (long long)((i * 7919) % 500) - 250;
        rows[i].w = (double)((i * 104729) % 1000) / 10.0;
        json_t *rec = json_pack("{s:o, s:f, s:o}", "n", rows[i].has_n ? json_integer(rows[i].n) : json_null(),
                                "w", rows[i].w, "emb", ts_vector_value(data + i * DIM, DIM));
        ck_assert_int_eq(ts_insert(db, "cc", rec, NULL), TS_OK);
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    uint64_t seed = 77;
    for (int round = 0; round < 3; round++) {
        for (int it = 0; it < 60; it++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            col_op = (int)((seed >> 33) % 12) - 1;   /* -1: no condition on n */
            col_op2 = (int)((seed >> 40) % 3);
            if (col_op < 0 && col_op2 == 0) col_op2 = 2;
            col_a = (long long)((seed >> 20) % 500) - 250;
            col_b = col_a + (long long)((seed >> 12) % 60);
            col_wa = (double)((seed >> 24) % 1000) / 10.0;
            const float *q = data + ((seed >> 8) % N) * DIM;
            size_t want[K];
            size_t nw = exact_knn(M_L2, data, N, DIM, q, K, col_keep, want);
            size_t match = 0;
            for (size_t i = 0; i < N; i++) match += col_keep(i);
            ts_result *r = search(col_query(db), q, DIM, K);
            ck_assert_msg(ts_result_count(r) == nw, "round %d search %d (op %d/%d): %zu rows, want %zu "
                          "(%zu match)", round, it, col_op, col_op2, ts_result_count(r), nw, match);
            for (size_t i = 0; i < ts_result_count(r); i++)
                ck_assert_msg(col_keep(id_of(ts_result_row(r, i))), "round %d search %d: row %zu fails "
                              "the conditions", round, it, id_of(ts_result_row(r, i)) + 1);
            check_rows(r, M_L2, data, DIM, q);
            double rc = recall_of(r, want, nw);
            ck_assert_msg(rc >= (match <= 1024 ? 1.0 : 0.8), "round %d search %d (op %d/%d, %zu match): "
                          "recall %.3f", round, it, col_op, col_op2, match, rc);
            ts_result_free(r);
        }
        if (round == 0) {
            /* a commit: row 1 (n 0 -> 250) is in no cached set any more */
            rows[0].has_n = 1;
            rows[0].n = 249;
            ck_assert_int_eq(ts_update(db, "cc", I(1), keep(json_pack("{s:i}", "n", 249))), TS_OK);
        } else if (round == 1) {
            ck_assert_int_eq(ts_delete(db, "cc", I(2)), TS_OK);
            rows[1].deleted = 1;
        }
    }
    /* the integer extremes: > the largest and < the smallest pass nothing,
     * <= the largest and >= the smallest every non-null row */
    static const char *const xop[] = { ">", "<", "<=", ">=" };
    for (int j = 0; j < 4; j++) {
        json_int_t lim = j % 2 ? INT64_MIN : INT64_MAX;
        ts_result *xr = search(ts_where(ts_query_new(db, "cc"), "n", xop[j], I(lim)), data, DIM, K);
        ck_assert_msg(ts_result_count(xr) == (j < 2 ? 0 : K), "n %s %lld: %zu rows", xop[j],
                      (long long)lim, ts_result_count(xr));
        for (size_t i = 0; i < ts_result_count(xr); i++)
            ck_assert(rows[id_of(ts_result_row(xr, i))].has_n);
        ts_result_free(xr);
    }
    /* deleted row 2 never comes back, even searched by its own vector */
    ts_result *r = search(ts_where(ts_query_new(db, "cc"), "w", "<", keep(json_real(1000))), data + DIM, DIM, 1);
    ck_assert_uint_ne(id_of(ts_result_row(r, 0)), 1);
    ts_result_free(r);
    /* another space: none of these rows */
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    for (int rep = 0; rep < 3; rep++) {
        r = search(ts_where(ts_query_new(db, "cc"), "n", ">", I(-1000 - rep)), data, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), 0);
        ts_result_free(r);
    }
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    free(rows);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* A new range of an integer column every search, 1-5% of the rows
 * passing: measured exactly (column set in value order without an index
 * on the column; the index's keys with one), so every answer is the exact
 * filtered one: the bounds of =, <, <=, >, >= and BETWEEN each included
 * or excluded as they say, NULLs never passing.  A wide range (more rows
 * than are measured exactly) walks the graph: passing rows only, k of
 * them. */
static int ex_lo, ex_hi;
static const int *ex_cat;
static int ex_keep(size_t i) { return ex_cat[i] >= ex_lo && ex_cat[i] <= ex_hi; }

START_TEST(filtered_search_exact_range)
{
    enum { DIM = 8, K = 10 };
#ifdef __SANITIZE_ADDRESS__
    size_t n = 6000;   /* ASan runs the graph code ~20x slower */
#else
    size_t n = 12000;
#endif
    ts_db *db = open_db(NULL);
    float *data = clustered(n, DIM, 57);
    int *cat = malloc(n * sizeof *cat);
    ex_cat = cat;
    for (int t = 0; t < 2; t++) {
        char spec[512];
        snprintf(spec, sizeof spec, "{'name': 'ex%d', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
                 "{'name': 'cat', 'type': 'integer'}, "
                 "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 8}}], 'indexes': ["
                 "{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'distanceMetric': 'l2', "
                 "'parameters': {'M': 12, 'efConstruction': 60}}}%s]}", t,
                 t ? ", {'type': 'btree', 'fields': ['cat']}" : "");
        create(db, spec);
        char tbl[8];
        snprintf(tbl, sizeof tbl, "ex%d", t);
        ck_assert_int_eq(ts_begin(db), TS_OK);
        for (size_t i = 0; i < n; i++) {
            cat[i] = i % 97 == 0 ? INT_MIN : (int)((i * 7919) % 100);   /* INT_MIN: NULL */
            json_t *rec = json_pack("{s:o, s:o}", "cat", cat[i] == INT_MIN ? json_null() : json_integer(cat[i]),
                                    "emb", ts_vector_value(data + i * DIM, DIM));
            ck_assert_int_eq(ts_insert(db, tbl, rec, NULL), TS_OK);
            json_decref(rec);
        }
        ck_assert_int_eq(ts_commit(db), TS_OK);
        uint64_t seed = 5 + (uint64_t)t;
        for (int it = 0; it < 60; it++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            int a = (int)((seed >> 33) % 96), w = (int)((seed >> 40) % 5), form = it % 5;
            ts_query *q = ts_query_new(db, tbl);
            /* the rows passing: cat in ex_lo..ex_hi, written five ways */
            ex_lo = a;
            ex_hi = a + w;
            if (form == 0) {
                q = ts_where(q, "cat", "BETWEEN", keep(json_pack("[i, i]", a, a + w)));
            } else if (form == 1) {
                q = ts_where(ts_where(q, "cat", ">", I(a - 1)), "cat", "<", I(a + w + 1));
            } else if (form == 2) {
                q = ts_where(ts_where(q, "cat", ">=", I(a)), "cat", "<=", I(a + w));
            } else if (form == 3) {
                q = ts_where(q, "cat", "=", I(a));
                ex_hi = a;
            } else {
                q = ts_where(ts_where(q, "cat", "<=", I(a + w)), "cat", ">", I(-1000 - it));
                ex_lo = 0;
            }
            const float *qv = data + ((seed >> 8) % n) * DIM;
            size_t want[K];
            size_t nw = exact_knn(M_L2, data, n, DIM, qv, K, ex_keep, want);
            ts_result *r = search(q, qv, DIM, K);
            ck_assert_msg(ts_result_count(r) == nw, "%s search %d: %zu rows, want %zu", tbl, it,
                          ts_result_count(r), nw);
            for (size_t i = 0; i < ts_result_count(r); i++)
                ck_assert(ex_keep(id_of(ts_result_row(r, i))));
            check_rows(r, M_L2, data, DIM, qv);
            if (form != 4 || ex_hi < 5)   /* form 4 passes up to 100 values: the graph may walk */
                ck_assert_msg(recall_of(r, want, nw) == 1.0, "%s search %d (cat %d..%d): recall %.3f", tbl, it,
                              ex_lo, ex_hi, recall_of(r, want, nw));
            ts_result_free(r);
        }
        /* most rows pass: the graph with the conditions as its filter */
        for (int it = 0; it < 5; it++) {
            ex_lo = 0;
            ex_hi = 59 + it;
            const float *qv = data + (size_t)(it * 131) * DIM;
            ts_result *r = search(ts_where(ts_query_new(db, tbl), "cat", "<", I(60 + it)), qv, DIM, K);
            ck_assert_uint_eq(ts_result_count(r), K);
            for (size_t i = 0; i < ts_result_count(r); i++)
                ck_assert(ex_keep(id_of(ts_result_row(r, i))));
            check_rows(r, M_L2, data, DIM, qv);
            ts_result_free(r);
        }
    }
    free(cat);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* A range on an indexed column that lets through more rows than the
 * kernel walks from the index (16 384): the first such searches filter the
 * graph by reading rows; from the second at a table version on, a column
 * set answers the range (binary search) and filters the graph by its
 * values.  Every answer must hold only passing rows, k of them, near the
 * exact ones; narrow ranges (measured exactly), conditions that are not a
 * range (the index's path) and a commit (a new version) in between.
 * ts_stats shows the set built only once searches were wide. */
static json_int_t stat_of(ts_db *db, const char *name)
{
    json_t *st = NULL;
    ck_assert_int_eq(ts_stats(db, &st), TS_OK);
    json_int_t v = fint(st, name);
    json_decref(st);
    return v;
}

/* search `it` of kind 0-3 (a wide range), 4 (a narrow one) or 5 (IN):
 * checked against the exact answer; its recall */
static double wide_search(ts_db *db, const float *data, size_t n, int kind, int it)
{
    enum { DIM = 4, K = 10 };
    const float *qv = data + (size_t)(it * 797) % n * DIM;
    ts_query *q = ts_query_new(db, "wide");
    ex_lo = kind == 4 ? 3 + it % 50 : it % 3;
    ex_hi = kind == 4 ? ex_lo + 1 : 90 + it % 10;
    if (kind == 7) {   /* every row but the nulls, a plan no index narrows */
        ex_lo = 0;
        ex_hi = 99;
        q = ts_where(q, "cat", "!=", I(150 + it % 8));
    } else if (kind == 6) {   /* a quarter of the rows or more, the same only every 8th search */
        ex_lo = 0;
        ex_hi = 22 + it % 8;
        q = ts_where(ts_where(q, "cat", ">=", I(0)), "cat", "<=", I(ex_hi));
    } else if (kind == 5) {
        ex_lo = 1;
        ex_hi = 3;
        q = ts_where(q, "cat", "IN", keep(json_pack("[i, i, i]", 1, 2, 3)));
    } else if (kind % 2) {
        q = ts_where(q, "cat", "BETWEEN", keep(json_pack("[i, i]", ex_lo, ex_hi)));
    } else {
        q = ts_where(ts_where(q, "cat", ">=", I(ex_lo)), "cat", "<", I(ex_hi + 1));
    }
    size_t want[K];
    size_t nw = exact_knn(M_L2, data, n, DIM, qv, K, ex_keep, want);
    ts_result *r = search(q, qv, DIM, K);
    ck_assert_msg(ts_result_count(r) == nw, "search %d: %zu rows, want %zu", it, ts_result_count(r), nw);
    for (size_t i = 0; i < ts_result_count(r); i++)
        ck_assert_msg(ex_keep(id_of(ts_result_row(r, i))), "search %d: row %zu does not pass", it,
                      id_of(ts_result_row(r, i)));
    check_rows(r, M_L2, data, DIM, qv);
    double rec = recall_of(r, want, nw);
    if (kind == 4 || kind == 5) ck_assert_msg(rec == 1.0, "search %d: recall %.3f", it, rec);
    ts_result_free(r);
    return rec;
}

/* The model's cat of a row not (yet) in the table: passes no condition. */
#define WIDE_GONE (INT_MIN + 1)

/* A new database with table "wide": n rows of 4-d vectors (data) and an
 * indexed integer cat (*cat_out, NULL every 89th row as INT_MIN), the
 * vector index and a btree on cat; only the first `rows` are inserted
 * (the others' cat WIDE_GONE). */
static ts_db *wide_open(size_t n, size_t rows, float **data_out, int **cat_out)
{
    ts_db *db = open_db(NULL);
    enum { DIM = 4 };
    float *data = clustered(n, DIM, 61);
    int *cat = malloc(n * sizeof *cat);
    ex_cat = cat;
    create(db, "{'name': 'wide', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
               "{'name': 'cat', 'type': 'integer'}, "
               "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 4}}], 'indexes': ["
               "{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'distanceMetric': 'l2', "
               "'parameters': {'M': 8, 'efConstruction': 40}}}, {'type': 'btree', 'fields': ['cat']}]}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (size_t i = 0; i < n; i++) {
        cat[i] = i % 89 == 0 ? INT_MIN : (int)((i * 7919) % 100);   /* INT_MIN: NULL */
        if (i >= rows) {
            cat[i] = WIDE_GONE;
            continue;
        }
        json_t *rec = json_pack("{s:o, s:o}", "cat", cat[i] == INT_MIN ? json_null() : json_integer(cat[i]),
                                "emb", ts_vector_value(data + i * DIM, DIM));
        ck_assert_int_eq(ts_insert(db, "wide", rec, NULL), TS_OK);
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    *data_out = data;
    *cat_out = cat;
    return db;
}

/* The end of a test on table "wide": the worst recall seen, then free
 * and close. */
static void wide_done(ts_db *db, float *data, int *cat, double worst)
{
    ck_assert_msg(worst >= 0.8, "worst recall %.3f", worst);
    free(cat);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}

/* Commit row `row`'s cat (sequential key row, cat[row - 1]) set to v:
 * a new table version. */
static void wide_set_cat(ts_db *db, int *cat, int row, int v)
{
    ck_assert_int_eq(ts_begin(db), TS_OK);
    json_t *rec = json_pack("{s:i}", "cat", v);
    ck_assert_int_eq(ts_update(db, "wide", I(row), rec), TS_OK);
    json_decref(rec);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    cat[row - 1] = v;
}

START_TEST(filtered_search_wide_indexed)
{
    size_t n = 20000;
    float *data;
    int *cat;
    ts_db *db = wide_open(n, n, &data, &cat);
    double worst = 1.0;
    for (int round = 0; round < 2; round++) {
        /* narrow ranges and IN only: no set at first; at the next version
         * the last one's sets, patched with the row the commit changed */
        for (int it = 0; it < 6; it++) wide_search(db, data, n, it ? 4 : 5, 100 * round + it);
        ck_assert_int_eq(stat_of(db, "vectorSets") > 0, round);
        ck_assert_int_eq(stat_of(db, "vectorSetPatches") > 0, round);
        json_int_t hits = stat_of(db, "vectorSetHits");
        for (int it = 0; it < 24; it++) {
            double rec = wide_search(db, data, n, it % 6, 100 * round + it);
            if (rec < worst) worst = rec;
        }
        /* built after the second wide search, taken by the 18 searches after it
         * (and by the repeated IN's own set: at most 4) */
        ck_assert_int_ge(stat_of(db, "vectorSets"), 1);
        ck_assert_int_gt(stat_of(db, "vectorSetBytes"), 20000 * 8);
        ck_assert_int_ge(stat_of(db, "vectorSetHits") - hits, 16);
        ck_assert_int_eq(stat_of(db, "vectorSetBuilds"), 1);
        /* a commit: a new version */
        wide_set_cat(db, cat, 1, 1);
    }
    wide_done(db, data, cat, worst);
}
END_TEST

/* Wide searches on a table written between them: the column set built at
 * the second wide search ever is patched at every later version with the
 * rows the commits changed (vectorSetPatches), not built again
 * (vectorSetBuilds).  After a commit changing more rows than a patch takes
 * (max(4096, a sixteenth)) it cannot be patched: narrowed plans then build again only once
 * their walks reach the set's rows (the fourth or fifth search), a plan no
 * index narrows (!=) at once.  Every answer right. */
START_TEST(column_set_between_commits)
{
    size_t n = 20000;
    float *data;
    int *cat;
    ts_db *db = wide_open(n, n, &data, &cat);
    double worst = 1.0;
    for (int c = 0; c < 12; c++) {
        for (int it = 0; it < 2; it++) {
            double rec = wide_search(db, data, n, 6, 10 * c + it);
            if (rec < worst) worst = rec;
            if (c) ck_assert_int_eq(stat_of(db, "vectorSets"), 1);   /* patched at the first search */
        }
        ck_assert_int_eq(stat_of(db, "vectorSets"), 1);
        wide_set_cat(db, cat, 2 + c, 5 + c);
    }
    ck_assert_int_eq(stat_of(db, "vectorSetBuilds"), 1);
    ck_assert_int_eq(stat_of(db, "vectorSetPatches"), 11);
    for (int round = 0; round < 2; round++) {
        /* 5 000 rows change in one commit */
        ck_assert_int_eq(ts_begin(db), TS_OK);
        for (int row = 1; row <= 5000; row++) {
            int v = (row * 13 + round) % 100;
            json_t *pk = json_integer(row), *rec = json_pack("{s:i}", "cat", v);
            ck_assert_int_eq(ts_update(db, "wide", pk, rec), TS_OK);
            json_decref(pk);
            json_decref(rec);
            cat[row - 1] = v;
        }
        ck_assert_int_eq(ts_commit(db), TS_OK);
        json_int_t builds = stat_of(db, "vectorSetBuilds");
        if (round == 0) {
            for (int it = 0; it < 8; it++) {
                double rec = wide_search(db, data, n, 6, 500 + it);
                if (rec < worst) worst = rec;
                if (it < 3) ck_assert_int_eq(stat_of(db, "vectorSets"), 0);   /* walked less than a build reads */
            }
        } else {
            wide_search(db, data, n, 7, 600);
        }
        ck_assert_int_eq(stat_of(db, "vectorSets"), 1);
        ck_assert_int_eq(stat_of(db, "vectorSetBuilds"), builds + 1);
    }
    /* and patched again after a small commit, for either plan */
    json_int_t patches = stat_of(db, "vectorSetPatches");
    wide_set_cat(db, cat, 3, 60);
    wide_search(db, data, n, 7, 601);
    wide_set_cat(db, cat, 4, 61);
    wide_search(db, data, n, 6, 602);
    ck_assert_int_eq(stat_of(db, "vectorSetPatches"), patches + 2);
    wide_done(db, data, cat, worst);
}
END_TEST

/* Each row in changed[0..n): searched for with its own vector among the
 * rows passing `cat != 1000` (every row with a cat: more than 16384, so
 * the conditions' set keeps keys only and filters the graph search), the
 * same conditions every time: found in the top 10 exactly when the model
 * says the row passes. */
static void self_check(ts_db *db, const float *data, const int *cat, const size_t *changed, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t row = changed[i];
        int passes = cat[row] != INT_MIN && cat[row] != WIDE_GONE;
        ts_result *r = search(ts_where(ts_query_new(db, "wide"), "cat", "!=", I(1000)), data + row * 4, 4, 10);
        int found = 0;
        for (size_t j = 0; j < ts_result_count(r); j++) found |= id_of(ts_result_row(r, j)) == row;
        ck_assert_msg(found == passes, "row %zu (cat %d) %s", row, cat[row], found ? "found" : "not found");
        ts_result_free(r);
    }
}

/* A change of schema (a field added) between
 * two versions: the sets of the old definition are not patched into the
 * new one (the same field names may mean other columns), but built again;
 * answers right on both sides. */
START_TEST(column_set_schema_change)
{
    size_t n = 20000;
    float *data;
    int *cat;
    ts_db *db = wide_open(n, n, &data, &cat);
    double worst = 1.0;
    for (int it = 0; it < 3; it++) worst = fmin(worst, wide_search(db, data, n, 6, it));
    ck_assert_int_eq(stat_of(db, "vectorSetBuilds"), 1);
    json_t *sch = NULL;
    ck_assert_int_eq(ts_get_schema(db, "wide", &sch), TS_OK);
    json_array_append_new(json_object_get(sch, "fields"), json_pack("{s:s, s:s}", "name", "note", "type", "text"));
    json_t *all = json_pack("[o]", sch);
    int rc = ts_sync_schemas(db, all);
    ck_assert_msg(rc == TS_OK, "sync: %d %s", rc, ts_errmsg(db));
    json_decref(all);
    json_int_t patches = stat_of(db, "vectorSetPatches");
    for (int it = 0; it < 3; it++) worst = fmin(worst, wide_search(db, data, n, 6, 10 + it));
    ck_assert_int_eq(stat_of(db, "vectorSetBuilds"), 2);
    ck_assert_int_eq(stat_of(db, "vectorSetPatches"), patches);
    /* and patched again at the next commit of the new definition */
    wide_set_cat(db, cat, 5, 7);
    worst = fmin(worst, wide_search(db, data, n, 6, 20));
    ck_assert_int_eq(stat_of(db, "vectorSetPatches"), patches + 1);
    wide_done(db, data, cat, worst);
}
END_TEST

/* The rows whose cat is 100..109 (only updates set such values, so every
 * change of one must reach the set): all of them, exactly, through the
 * column set (conditions new every round) or (same) through the set of
 * these conditions, built once and then patched version after version. */
static void rare_check(ts_db *db, const float *data, size_t n, const int *cat, int round, int same)
{
    json_int_t used = stat_of(db, "vectorSetHits") + stat_of(db, "vectorSetPatches");
    int built = stat_of(db, "vectorSetBuilds") > 0;
    size_t want = 0;
    for (size_t i = 0; i < n; i++) want += cat[i] >= 100 && cat[i] <= 109;
    /* same: the same conditions every round, whose own set is patched */
    ts_query *q = ts_where(ts_query_new(db, "wide"), "cat", "BETWEEN", keep(json_pack("[i, i]", 100, same ? 109 : 110 + round)));
    ts_result *r = search(q, data, 4, 1000);
    ck_assert_msg(ts_result_count(r) == want, "round %d: %zu rows, want %zu", round, ts_result_count(r), want);
    for (size_t i = 0; i < ts_result_count(r); i++) {
        size_t id = id_of(ts_result_row(r, i));
        ck_assert_msg(id < n && cat[id] >= 100 && cat[id] <= 109, "round %d: row %zu does not pass", round, id);
    }
    ts_result_free(r);
    /* once the column set is built (by the second wide search), through
     * it; the same conditions through their own set after the first round */
    if (same ? round > 0 : built)
        ck_assert_int_eq(stat_of(db, "vectorSetHits") + stat_of(db, "vectorSetPatches"), used + 1);
}

/* Column sets patched version after version, checked against a model:
 * random commits set cat into and out of the searched ranges and to null,
 * delete rows and insert new ones, some roll back, some come several at a
 * time between searches, some in another space (rows with the same keys,
 * which the patch reads in its own space).  Every answer is compared with exact
 * search on the model; the set is built once and patched at every later
 * version. */
START_TEST(column_set_patched)
{
    size_t n = 20000, rows = 18000;
    float *data;
    int *cat;
    ts_db *db = wide_open(n, rows, &data, &cat);
    int *saved = malloc(n * sizeof *saved);
    uint64_t seed = 12345;
    size_t changed[64], nchanged = 0;
    /* rows in the rare range before any set is built: later changes of
     * them hide rows of the sets' bases */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (size_t row = 7; row < rows; row += 331) {
        cat[row] = 100 + (int)(row % 10);
        ck_assert_int_eq(ts_update(db, "wide", I((int)row + 1), keep(json_pack("{s:i}", "cat", cat[row]))), TS_OK);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    double worst = 1.0;
    int versions = 0;
    for (int round = 0; round < 40; round++) {
        int commits = 1 + (int)(tst_rand(&seed) % 3);
        for (int cm = 0; cm < commits; cm++) {
            int other = tst_rand(&seed) % 7 == 0;
            if (other) {   /* rows of another space, keys 1.. as here, cat 0..9 */
                ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
                ck_assert_int_eq(ts_begin(db), TS_OK);
                for (int j = 0; j < 5; j++)
                    ck_assert_int_eq(ts_insert(db, "wide", keep(json_pack("{s:i, s:o}", "cat", j,
                                     "emb", ts_vector_value(data + (size_t)j * 4, 4))), NULL), TS_OK);
                ck_assert_int_eq(ts_commit(db), TS_OK);
                ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
                versions++;
                continue;
            }
            memcpy(saved, cat, n * sizeof *cat);
            ck_assert_int_eq(ts_begin(db), TS_OK);
            int ops = 1 + (int)(tst_rand(&seed) % 24), inserted = 0;
            for (int op = 0; op < ops; op++) {
                unsigned r = (unsigned)(tst_rand(&seed) % 10);
                if (r >= 8 && rows < n) {   /* a new row (key rows + 1) */
                    int v = (int)(tst_rand(&seed) % 100);
                    ck_assert_int_eq(ts_insert(db, "wide", keep(json_pack("{s:i, s:o}", "cat", v,
                                     "emb", ts_vector_value(data + rows * 4, 4))), NULL), TS_OK);
                    if (nchanged < 64) changed[nchanged++] = rows;
                    cat[rows++] = v;
                    inserted = 1;
                    continue;
                }
                size_t row = (size_t)(tst_rand(&seed) % rows);
                if (r == 3 || r == 7) {   /* a row of the rare range leaves it (or goes) */
                    size_t from = row;
                    while (!(cat[row] >= 100 && cat[row] <= 109) && (row = (row + 1) % rows) != from) {
                    }
                }
                if (cat[row] == WIDE_GONE) continue;
                if (nchanged < 64) changed[nchanged++] = row;
                if (r >= 6) {
                    ck_assert_int_eq(ts_delete(db, "wide", I((int)row + 1)), TS_OK);
                    cat[row] = WIDE_GONE;
                } else {
                    int v = r == 5 ? INT_MIN : r == 4 ? 100 + (int)(tst_rand(&seed) % 10) : (int)(tst_rand(&seed) % 100);
                    ck_assert_int_eq(ts_update(db, "wide", I((int)row + 1),
                                     keep(json_pack("{s:o}", "cat", v == INT_MIN ? json_null() : json_integer(v)))),
                                     TS_OK);
                    cat[row] = v;
                }
            }
            if (!inserted && tst_rand(&seed) % 5 == 0) {   /* keys of rolled-back inserts are not reused: none */
                ck_assert_int_eq(ts_rollback(db), TS_OK);
                memcpy(cat, saved, n * sizeof *cat);
            } else {
                ck_assert_int_eq(ts_commit(db), TS_OK);
                versions++;
            }
        }
        int searches = 1 + (int)(tst_rand(&seed) % 3);
        for (int it = 0; it < searches; it++) {
            int kind = (int)(tst_rand(&seed) % 8);   /* 5, IN, the same every time: a set of its own */
            double rec = wide_search(db, data, n, kind, 1000 + round * 4 + it);
            if (rec < worst) worst = rec;
        }
        self_check(db, data, cat, changed, nchanged < 6 ? nchanged : 6);
        if (round == 0) self_check(db, data, cat, changed, 1);   /* the set is built at the second */
        nchanged = 0;
        rare_check(db, data, n, cat, round, 0);
        for (int again = 0; again < (round ? 1 : 2); again++)   /* built at the second */
            rare_check(db, data, n, cat, round, 1);
    }
    ck_assert_int_eq(stat_of(db, "vectorSetBuilds"), 1);
    ck_assert_int_ge(stat_of(db, "vectorSets"), 1);
    /* the column set's and the repeated conditions' sets, at most once a version each */
    ck_assert_int_ge(stat_of(db, "vectorSetPatches"), 60);
    ck_assert_int_le(stat_of(db, "vectorSetPatches"), 3 * versions);
    free(saved);
    wide_done(db, data, cat, worst);
}
END_TEST

/* A rekey swaps the pager under the open index, whose caches hold pages of
 * the old one (page holds): searches before, after and after more inserts
 * give the same answers as a fresh process under the new key, and closing
 * releases everything (ASan checks the held memory is never freed early). */
START_TEST(search_across_rekey)
{
    enum { N = 800, DIM = 16, K = 10 };
    static const char *const idf[] = { "id" };
    const char *key = "\"cipher\": {\"module\": \"chacha20poly1305\", \"key\": \"hex:"
                      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"}";
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 47);
    make_table(db, "v", DIM, "float32", M_L2, 1);
    fill(db, "v", data, N / 2, DIM, 1);
    size_t before[20][K];
    for (int qi = 0; qi < 20; qi++) {
        ts_result *r = search(ts_select(ts_query_new(db, "v"), idf, 1), data + qi * 7 * DIM, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        for (size_t i = 0; i < K; i++) before[qi][i] = id_of(ts_result_row(r, i));
        ts_result_free(r);
    }
    int rc = ts_rekey(db, strchr(key, '{'), TS_REKEY_NEW_DATA_KEY, NULL, NULL);
    ck_assert_msg(rc == TS_OK, "rekey: %d %s", rc, ts_errmsg(db));
    for (int qi = 0; qi < 20; qi++) {
        ts_result *r = search(ts_select(ts_query_new(db, "v"), idf, 1), data + qi * 7 * DIM, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        for (size_t i = 0; i < K; i++) ck_assert_uint_eq(id_of(ts_result_row(r, i)), before[qi][i]);
        ts_result_free(r);
    }
    /* more rows through the write cache the rekey left, then a fresh process */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (size_t i = N / 2; i < N; i++)
        ck_assert_int_eq(ts_insert(db, "v", keep(json_pack("{s:I, s:s, s:o}", "cat", (json_int_t)(i % 100), "tag", "x",
                                                           "emb", ts_vector_value(data + i * DIM, DIM))), NULL),
                         TS_OK);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    size_t after[20][K];
    for (int qi = 0; qi < 20; qi++) {
        ts_result *r = search(ts_query_new(db, "v"), data + (qi * 19 + N / 2) * DIM, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        ck_assert_uint_eq(id_of(ts_result_row(r, 0)), (size_t)(qi * 19 + N / 2));
        for (size_t i = 0; i < K; i++) after[qi][i] = id_of(ts_result_row(r, i));
        ts_result_free(r);
    }
    ck_assert_int_eq(ts_close(db), TS_OK);
    db = open_db(key);
    for (int qi = 0; qi < 20; qi++) {
        ts_result *r = search(ts_query_new(db, "v"), data + (qi * 19 + N / 2) * DIM, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        for (size_t i = 0; i < K; i++) ck_assert_uint_eq(id_of(ts_result_row(r, i)), after[qi][i]);
        ts_result_free(r);
    }
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* A schema change that gives a field's name to another column: a set
 * built for the old meaning is not used (the table's version alone could
 * be the same: 1 for a table unchanged since open, before and after). */
START_TEST(filtered_search_after_rename)
{
    enum { N = 600, DIM = 4, K = 10 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 31);
    create(db, "{'name': 'r', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
               "{'name': 'cat', 'type': 'integer'}, {'name': 'alt', 'type': 'integer'}, "
               "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 4}}], 'indexes': ["
               "{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'distanceMetric': 'l2'}}]}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(ts_insert(db, "r", keep(json_pack("{s:I, s:I, s:o}", "cat", (json_int_t)(i % 100),
                                                           "alt", (json_int_t)((i % 100 + 50) % 100), "emb",
                                                           ts_vector_value(data + i * DIM, DIM))), NULL),
                         TS_OK);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    db = reopen(db);
    for (int rep = 0; rep < 3; rep++) {
        ts_result *r = search(ts_where(ts_query_new(db, "r"), "cat", "<", I(2)), data, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        for (size_t i = 0; i < K; i++) ck_assert_int_lt(fint(ts_result_row(r, i), "cat"), 2);
        ts_result_free(r);
    }
    ts_schema_update *su = ts_su_rename_field(ts_update_schema(db, "r"), "cat", "old_cat");
    ck_assert_int_eq(ts_su_apply(su, NULL), TS_OK);   /* apply takes su */
    su = ts_su_rename_field(ts_update_schema(db, "r"), "alt", "cat");
    ck_assert_int_eq(ts_su_apply(su, NULL), TS_OK);
    for (int rep = 0; rep < 3; rep++) {
        ts_result *r = search(ts_where(ts_query_new(db, "r"), "cat", "<", I(2)), data, DIM, K);
        ck_assert_uint_eq(ts_result_count(r), K);
        for (size_t i = 0; i < K; i++) {
            const json_t *row = ts_result_row(r, i);
            ck_assert_int_lt(fint(row, "cat"), 2);
            ck_assert_int_ge(fint(row, "old_cat"), 50);
        }
        ts_result_free(r);
    }
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* The select list applies; k is not capped by the default limit; a wider
 * ef finds at least as much. */
START_TEST(select_k_and_ef)
{
    enum { N = 2500, DIM = 16 };
    ts_db *db = open_db("\"defaultQueryLimit\": 20");
    float *data = clustered(N, DIM, 21);
    make_table(db, "v", DIM, "float32", M_COS, 1);
    fill(db, "v", data, N, DIM, 0);
    static const char *const sel[] = { "id", "tag as label" };
    ts_result *r = search(ts_select(ts_query_new(db, "v"), sel, 2), data, DIM, 300);
    ck_assert_uint_eq(ts_result_count(r), 300);
    const json_t *row = ts_result_row(r, 0);
    ck_assert_int_eq(fint(row, "id"), 1);
    ck_assert_str_eq(fstr(row, "label"), "even");
    ck_assert_ptr_null(json_object_get(row, "emb"));
    ck_assert_ptr_null(json_object_get(row, "cat"));
    ck_assert_ptr_nonnull(json_object_get(row, "_distance"));
    ck_assert_ptr_nonnull(json_object_get(row, "_score"));
    ck_assert_uint_eq(json_object_size(row), 4);
    ts_result_free(r);
    /* the key alone (no row read): the same rows, ids under their aliases */
    static const char *const ksel[] = { "id", "id as key" };
    ts_result *full = search(ts_query_new(db, "v"), data + 9 * DIM, DIM, 20);
    r = search(ts_select(ts_query_new(db, "v"), ksel, 2), data + 9 * DIM, DIM, 20);
    ck_assert_uint_eq(ts_result_count(r), 20);
    for (size_t i = 0; i < 20; i++) {
        const json_t *a = ts_result_row(r, i), *b = ts_result_row(full, i);
        ck_assert_uint_eq(json_object_size(a), 4);
        ck_assert_int_eq(fint(a, "id"), fint(b, "id"));
        ck_assert_int_eq(fint(a, "key"), fint(b, "id"));
        ck_assert(json_real_value(json_object_get(a, "_distance")) ==
                  json_real_value(json_object_get(b, "_distance")));
    }
    ts_result_free(r);
    ts_result_free(full);
    /* without a select list every field comes back, the vector too */
    r = search(ts_query_new(db, "v"), data + 5 * DIM, DIM, 3);
    ck_assert_uint_eq(json_array_size(json_object_get(ts_result_row(r, 0), "emb")), DIM);
    ts_result_free(r);
    /* and a select list naming it gets it (read back from the index) */
    static const char *const vsel[] = { "emb", "id" };
    r = search(ts_select(ts_query_new(db, "v"), vsel, 2), data + 5 * DIM, DIM, 3);
    row = ts_result_row(r, 0);
    ck_assert_int_eq(fint(row, "id"), 6);
    for (size_t d = 0; d < DIM; d++)
        ck_assert((float)json_real_value(json_array_get(json_object_get(row, "emb"), d)) == data[5 * DIM + d]);
    ts_result_free(r);
    /* ef: recall grows (or stays) with the breadth */
    double rec[2] = { 0, 0 };
    float *qs = clustered(40, DIM, 1234);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < 40; i++) {
            size_t want[10];
            exact_knn(M_COS, data, N, DIM, qs + i * DIM, 10, NULL, want);
            r = search(ts_ef_search(ts_query_new(db, "v"), pass ? 400 : 10), qs + i * DIM, DIM, 10);
            ck_assert_uint_eq(ts_result_count(r), 10);
            rec[pass] += recall_of(r, want, 10) / 40;
            ts_result_free(r);
        }
    ck_assert_msg(rec[1] >= 0.99 && rec[1] >= rec[0], "ef 10: %.3f, ef 400: %.3f", rec[0], rec[1]);
    /* k above the default limit on a field without an index (the exact
     * scan): k rows, the exact nearest, in order */
    make_table(db, "plainv", DIM, "float32", M_COS, 0);
    fill(db, "plainv", data, 400, DIM, 0);
    size_t want[120];
    exact_knn(M_COS, data, 400, DIM, qs, 120, NULL, want);
    r = search(ts_query_new(db, "plainv"), qs, DIM, 120);
    ck_assert_uint_eq(ts_result_count(r), 120);
    ck_assert_msg(recall_of(r, want, 120) >= 0.99, "exact scan recall %.3f", recall_of(r, want, 120));
    for (size_t i = 1; i < 120; i++)
        ck_assert(json_real_value(json_object_get(ts_result_row(r, i - 1), "_distance")) <=
                  json_real_value(json_object_get(ts_result_row(r, i), "_distance")));
    ts_result_free(r);
    free(qs);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* Deleted rows are never found; updated vectors are found by their new
 * value; other updates keep the row findable; spaces see their own rows. */
START_TEST(deletes_updates_spaces)
{
    enum { N = 1500, DIM = 8 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 3);
    make_table(db, "v", DIM, "float32", M_L2, 1);
    fill(db, "v", data, N, DIM, 1);
    /* delete every third row */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (size_t i = 0; i < N; i += 3) ck_assert_int_eq(ts_delete(db, "v", I((json_int_t)i + 1)), TS_OK);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    for (size_t i = 0; i < N; i += 50) {
        ts_result *r = search(ts_query_new(db, "v"), data + i * DIM, DIM, 5);
        ck_assert_uint_eq(ts_result_count(r), 5);
        for (size_t j = 0; j < 5; j++) ck_assert_uint_ne(id_of(ts_result_row(r, j)) % 3, 0);
        if (i % 3) ck_assert_uint_eq(id_of(ts_result_row(r, 0)), i);
        ts_result_free(r);
    }
    /* move row 2's vector far away; update another field of row 5 */
    float far[DIM];
    for (size_t d = 0; d < DIM; d++) far[d] = 100.0f + (float)d;
    ck_assert_int_eq(ts_update(db, "v", I(2), keep(json_pack("{s:o}", "emb", ts_vector_value(far, DIM)))),
                     TS_OK);
    ck_assert_int_eq(ts_update(db, "v", I(5), J("{'tag': 'changed'}")), TS_OK);
    ts_result *r = search(ts_query_new(db, "v"), far, DIM, 1);
    ck_assert_int_eq(fint(ts_result_row(r, 0), "id"), 2);
    ts_result_free(r);
    r = search(ts_query_new(db, "v"), data + 1 * DIM, DIM, 3);
    for (size_t j = 0; j < 3; j++) ck_assert_int_ne(fint(ts_result_row(r, j), "id"), 2);
    ts_result_free(r);
    r = search(ts_query_new(db, "v"), data + 4 * DIM, DIM, 1);
    ck_assert_int_eq(fint(ts_result_row(r, 0), "id"), 5);
    ck_assert_str_eq(fstr(ts_result_row(r, 0), "tag"), "changed");
    ts_result_free(r);
    /* setting the vector to null takes the row out of searches */
    ck_assert_int_eq(ts_update(db, "v", I(5), J("{'emb': null}")), TS_OK);
    r = search(ts_where(ts_query_new(db, "v"), "id", "<=", I(6)), data + 4 * DIM, DIM, 10);
    ck_assert_uint_eq(ts_result_count(r), 3);   /* ids 2, 3 and 6 (1 and 4 deleted, 5 null) */
    ts_result_free(r);
    /* another space has its own rows */
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    r = search(ts_query_new(db, "v"), data, DIM, 5);
    ck_assert_uint_eq(ts_result_count(r), 0);
    ts_result_free(r);
    ins_i(db, "v", "{'cat': 1, 'emb': [0, 0, 0, 0, 0, 0, 0, 1]}");
    r = search(ts_query_new(db, "v"), data, DIM, 5);
    ck_assert_uint_eq(ts_result_count(r), 1);
    ts_result_free(r);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    r = search(ts_query_new(db, "v"), data + 7 * DIM, DIM, 1000);
    ck_assert_uint_eq(ts_result_count(r), N - (N + 2) / 3 - 1);
    ts_result_free(r);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* A transaction sees its own vectors, a rollback takes them away, and
 * the index answers the same after reopen. */
START_TEST(transactions_and_reopen)
{
    enum { N = 1000, DIM = 10 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N + 1, DIM, 8);
    make_table(db, "v", DIM, "float32", M_COS, 1);
    fill(db, "v", data, N, DIM, 0);
    const float *extra = data + N * DIM;
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ts_insert(db, "v", keep(json_pack("{s:o}", "emb", ts_vector_value(extra, DIM))), NULL);
    ts_result *r = search(ts_query_new(db, "v"), extra, DIM, 1);
    ck_assert_int_eq(fint(ts_result_row(r, 0), "id"), N + 1);
    ts_result_free(r);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    r = search(ts_query_new(db, "v"), extra, DIM, 1);
    ck_assert_int_ne(fint(ts_result_row(r, 0), "id"), N + 1);
    ts_result_free(r);
    json_t *before = keep(json_array());
    for (size_t i = 0; i < 20; i++) {
        r = search(ts_query_new(db, "v"), data + i * 29 * DIM, DIM, 5);
        for (size_t j = 0; j < 5; j++) json_array_append_new(before, json_integer(fint(ts_result_row(r, j), "id")));
        ts_result_free(r);
    }
    db = reopen(db);
    json_t *after = keep(json_array());
    for (size_t i = 0; i < 20; i++) {
        r = search(ts_query_new(db, "v"), data + i * 29 * DIM, DIM, 5);
        for (size_t j = 0; j < 5; j++) json_array_append_new(after, json_integer(fint(ts_result_row(r, j), "id")));
        ts_result_free(r);
    }
    ck_assert(json_equal(before, after));
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* ts_rebuild_table after heavy deletes: the old trees' pages are freed,
 * the rows, other spaces and the key generator are as they were, and the
 * rebuilt vector index answers like exact search, also after reopen. */
static uint64_t rb_calls, rb_done, rb_total;
static void rb_progress(void *ctx, const char *table, uint64_t done, uint64_t total)
{
    (void)ctx;
    ck_assert_str_eq(table, "v");
    ck_assert_uint_le(done, total);
    rb_calls++;
    rb_done = done;
    rb_total = total;
}

/* Another thread reading the table while a rebuild is open. */
static void *rb_reader(void *p)
{
    ts_db *db = p;
    int64_t n = -1;
    int rc = ts_count_rows(db, "v", &n);
    json_t *row = NULL;
    int rc2 = ts_get(db, "v", I(11), &row);
    json_decref(row);
    return (void *)(intptr_t)(rc == TS_OK && rc2 == TS_OK ? n : -1 - (rc ? -rc : -rc2));
}

static intptr_t rb_read;
static void rb_read_progress(void *ctx, const char *table, uint64_t done, uint64_t total)
{
    (void)table, (void)done, (void)total;
    pthread_t th;
    void *got = NULL;
    ck_assert_int_eq(pthread_create(&th, NULL, rb_reader, ctx), 0);
    ck_assert_int_eq(pthread_join(th, &got), 0);
    rb_read = (intptr_t)got;
}

static json_int_t free_pages(ts_db *db)
{
    json_t *st = NULL;
    ck_assert_int_eq(ts_stats(db, &st), TS_OK);
    json_int_t n = json_integer_value(json_object_get(st, "freePages"));
    json_decref(st);
    return n;
}

static int keep_tenth(size_t i) { return i % 10 == 0; }

static void check_kept(ts_db *db, const float *data, size_t n, size_t dim)
{
    double rsum = 0;
    for (size_t qi = 0; qi < 40; qi++) {
        const float *q = data + (qi * 37 + 5) * dim;
        size_t want[10];
        size_t nw = exact_knn(M_L2, data, n, dim, q, 10, keep_tenth, want);
        ts_result *r = search(ts_ef_search(ts_query_new(db, "v"), 64), q, dim, 10);
        ck_assert_uint_eq(ts_result_count(r), 10);
        check_rows(r, M_L2, data, dim, q);
        for (size_t j = 0; j < 10; j++) ck_assert_uint_eq(id_of(ts_result_row(r, j)) % 10, 0);
        rsum += recall_of(r, want, nw);
        ts_result_free(r);
    }
    ck_assert_msg(rsum / 40 >= 0.95, "recall %.3f after the rebuild", rsum / 40);
}

START_TEST(rebuild_after_deletes)
{
    enum { N = 3000, DIM = 16 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 11);
    make_table(db, "v", DIM, "float32", M_L2, 1);
    fill(db, "v", data, N, DIM, 1);
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ins_i(db, "v", "{'cat': 7, 'emb': [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]}");
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (size_t i = 0; i < N; i++)
        if (i % 10) ck_assert_int_eq(ts_delete(db, "v", I((json_int_t)i + 1)), TS_OK);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    json_int_t f0 = free_pages(db);

    ck_assert_int_eq(ts_rebuild_table(db, "nope", NULL, NULL), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_rebuild_table(db, NULL, NULL, NULL), TS_ERR_INVALID);
    rb_calls = 0;
    ck_assert_msg(ts_rebuild_table(db, "v", rb_progress, NULL) == TS_OK, "%s", ts_errmsg(db));
    ck_assert_uint_ge(rb_calls, 1);
    ck_assert_uint_eq(rb_done, rb_total);
    ck_assert_uint_eq(rb_done, N / 10 + 1); /* both spaces */
    /* the old trees (3000 rows, 3000 graph nodes) went to the free list */
    json_int_t f1 = free_pages(db);
    ck_assert_msg(f1 > f0 + 20, "free pages %lld -> %lld", (long long)f0, (long long)f1);

    ck_assert_int_eq(count(db, "v"), N / 10);
    json_t *row = NULL;
    ck_assert_int_eq(ts_get(db, "v", I(11), &row), TS_OK);
    ck_assert_int_eq(fint(row, "cat"), 10);
    json_decref(row);
    ck_assert_int_eq(ts_get(db, "v", I(12), &row), TS_ERR_NOT_FOUND);
    check_kept(db, data, N, DIM);
    for (int rep = 0; rep < 3; rep++) { /* repeated: the second search keeps the set */
        ts_result *r = search(ts_where(ts_query_new(db, "v"), "cat", "<", I(30)), data, DIM, 5);
        ck_assert_uint_eq(ts_result_count(r), 5);
        for (size_t j = 0; j < 5; j++) {
            ck_assert_int_lt(fint(ts_result_row(r, j), "cat"), 30);
            ck_assert_uint_eq(id_of(ts_result_row(r, j)) % 10, 0);
        }
        ts_result_free(r);
    }
    ck_assert_int_eq(ts_check(db, NULL, NULL, NULL), TS_OK);
    /* the key generator goes on where it was */
    json_t *pk = NULL;
    ck_assert_int_eq(ts_insert(db, "v", keep(json_pack("{s:i}", "cat", 1)), &pk), TS_OK);
    ck_assert_int_eq(json_integer_value(pk), N + 1);
    json_decref(pk);
    ck_assert_int_eq(ts_delete(db, "v", I(N + 1)), TS_OK);
    /* the other space keeps its row */
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ck_assert_int_eq(count(db, "v"), 1);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);

    db = reopen(db);
    check_kept(db, data, N, DIM);
    ck_assert_int_eq(count(db, "v"), N / 10);

    /* inside a transaction: a savepoint before it cannot be rolled back
     * to (one after a failed call still can), and a rollback restores the
     * table as it was */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_savepoint(db, "a"), TS_OK);
    ck_assert_int_eq(ts_rebuild_table(db, "nope", NULL, NULL), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_rollback_to(db, "a"), TS_OK);
    /* while the rows are copied (the progress call) other threads go on
     * reading the table as committed */
    rb_read = 0;
    ck_assert_int_eq(ts_rebuild_table(db, "v", rb_read_progress, db), TS_OK);
    ck_assert_int_eq(rb_read, N / 10);
    ck_assert_int_eq(ts_rollback_to(db, "a"), TS_ERR_UNSUPPORTED);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_int_eq(count(db, "v"), N / 10);
    check_kept(db, data, N, DIM);
    ck_assert_int_eq(ts_check(db, NULL, NULL, NULL), TS_OK);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* ---- vectors kept once ----------------------------------------------------- */

static json_int_t used_pages(ts_db *db)
{
    json_t *st = NULL;
    ck_assert_int_eq(ts_stats(db, &st), TS_OK);
    json_int_t n = json_integer_value(json_object_get(st, "pages")) -
                   json_integer_value(json_object_get(st, "freePages"));
    json_decref(st);
    return n;
}

/* Every row of table a equals the row of b with the same id (ts_get), and
 * a full query of each gives the same rows. */
static void same_rows(ts_db *db, const char *a, const char *b, size_t n)
{
    for (size_t i = 1; i <= n; i++) {
        json_t *ra = NULL, *rb = NULL, *id = json_integer((json_int_t)i);
        int ca = ts_get(db, a, id, &ra), cb = ts_get(db, b, id, &rb);
        json_decref(id);
        ck_assert_msg(ca == cb, "%s / %s row %zu: %d / %d %s", a, b, i, ca, cb, ts_errmsg(db));
        if (ca == TS_OK) ck_assert_msg(json_equal(ra, rb), "%s / %s: row %zu differs", a, b, i);
        json_decref(ra);
        json_decref(rb);
    }
    ts_result *ra = NULL, *rb = NULL;
    ts_query *qa = ts_allow_all(ts_order_by(ts_query_new(db, a), "id", 0));
    ts_query *qb = ts_allow_all(ts_order_by(ts_query_new(db, b), "id", 0));
    ck_assert_int_eq(ts_query_exec(qa, &ra), TS_OK);
    ck_assert_int_eq(ts_query_exec(qb, &rb), TS_OK);
    ts_query_free(qa);
    ts_query_free(qb);
    ck_assert_uint_eq(ts_result_count(ra), ts_result_count(rb));
    ck_assert_uint_gt(ts_result_count(ra), n / 2);
    for (size_t i = 0; i < ts_result_count(ra); i++)
        ck_assert_msg(json_equal(ts_result_row(ra, i), ts_result_row(rb, i)), "%s / %s: query row %zu differs",
                      a, b, i);
    ts_result_free(ra);
    ts_result_free(rb);
}


/* Every step-th of the n vectors in data finds its own row (id i) first,
 * at distance ~0, among k asked. */
static void finds_itself(ts_db *db, const char *table, const float *data, size_t n, size_t dim,
                         size_t step, size_t k)
{
    for (size_t i = 0; i < n; i += step) {
        ts_result *r = search(ts_query_new(db, table), data + i * dim, dim, k);
        ck_assert_uint_eq(ts_result_count(r), k);
        ck_assert_uint_eq(id_of(ts_result_row(r, 0)), i);
        ck_assert_double_lt(json_real_value(json_object_get(ts_result_row(r, 0), "_distance")), 1e-3);
        ts_result_free(r);
    }
}

/* An index with splitRecords: 512-d float32 vectors split between record
 * and tail, kept only in the index: rows read back bit for bit (the
 * vector put together from both parts), every vector finds itself first,
 * before and after a reopen; a non-boolean splitRecords is refused. */
START_TEST(split_records_api)
{
    enum { N = 300, DIM = 512 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 31);
    create(db, "{'name': 'v', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
               "{'name': 'cat', 'type': 'integer'}, {'name': 'tag', 'type': 'text'}, "
               "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 512}}], "
               "'indexes': [{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'distanceMetric': 'l2', "
               "'parameters': {'M': 16, 'efConstruction': 60, 'splitRecords': true}}}]}");
    make_table(db, "p", DIM, "float32", M_L2, 0);
    fill(db, "v", data, N, DIM, 1);
    fill(db, "p", data, N, DIM, 1);
    for (int round = 0; round < 2; round++) {
        same_rows(db, "v", "p", N);
        finds_itself(db, "v", data, N, DIM, 13, 3);
        db = reopen(db);
    }
    ck_assert_int_ne(create_rc(db, "{'name': 'w', 'fields': [{'name': 'emb', 'type': 'vector', "
                                   "'vectorConfig': {'dimensions': 512}}], 'indexes': [{'type': 'ngh', "
                                   "'fields': ['emb'], 'vectorConfig': {'parameters': {'splitRecords': 2}}}]}"),
                     TS_OK);
    ts_close(db);
    free(data);
}
END_TEST

/* parameters.buildLinks through a schema: 0 (whole lists) is taken and
 * every vector finds itself; a negative value is refused by the schema,
 * one past the module's range by the module. */
START_TEST(build_links_api)
{
    enum { N = 400, DIM = 32 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 37);
    create(db, "{'name': 'v', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
               "{'name': 'cat', 'type': 'integer'}, {'name': 'tag', 'type': 'text'}, "
               "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 32}}], "
               "'indexes': [{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'distanceMetric': 'l2', "
               "'parameters': {'M': 16, 'efConstruction': 40, 'buildLinks': 0}}}]}");
    fill(db, "v", data, N, DIM, 1);
    finds_itself(db, "v", data, N, DIM, 7, 1);
    static const char *const bad[] = { "-1", "513" };
    for (size_t i = 0; i < 2; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{'name': 'w%zu', 'fields': [{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': 32}}], "
                 "'indexes': [{'type': 'ngh', 'fields': ['emb'], 'vectorConfig': {'parameters': {'buildLinks': %s}}}]}",
                 i, bad[i]);
        int rc = create_rc(db, text);
        ck_assert_msg(rc == TS_ERR_VALIDATION || rc == TS_ERR_CONFIG, "buildLinks %s: %d (%s)", bad[i], rc,
                      ts_errmsg(db));
        ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "buildLinks"));
    }
    ts_close(db);
    free(data);
}
END_TEST

/* A table with an ngh index stores each vector once: the rows leave it to
 * the index (int8 rows keep their scale) and get it back whenever they are
 * read (gets, queries, filters, updates, deletes rolled back, migrations
 * that drop or rebuild the index, reopen).  Checked against the same rows
 * in a table without an index, for float32, float16 and int8. */
START_TEST(vectors_kept_once)
{
    enum { N = 600, DIM = 24, BIG = 256, NB = 400 };
    ts_db *db = open_db(NULL);
    static const char *const precs[] = { "float32", "float16", "int8" };
    float *data = clustered(N, DIM, 21);
    char ti[32], tp[32];
    for (int pi = 0; pi < 3; pi++) {
        snprintf(ti, sizeof ti, "v_%s", precs[pi]);
        snprintf(tp, sizeof tp, "p_%s", precs[pi]);
        make_table(db, ti, DIM, precs[pi], M_L2, 1);
        make_table(db, tp, DIM, precs[pi], M_L2, 0);
        fill(db, ti, data, N, DIM, pi == 1);
        fill(db, tp, data, N, DIM, pi == 1);
        same_rows(db, ti, tp, N);
        /* a filtered search reads vectors from the index or the rows */
        ts_result *r = search(ts_where(ts_query_new(db, ti), "cat", "=", I(3)), data + 3 * DIM, DIM, 3);
        ck_assert_uint_eq(ts_result_count(r), 3);
        ck_assert_int_eq(fint(ts_result_row(r, 0), "id"), 4);
        ts_result_free(r);
        /* updates of other fields keep the vector; of the vector change it */
        ck_assert_int_eq(ts_begin(db), TS_OK);
        json_t *tag = J("{\"tag\": \"u\"}");
        for (size_t i = 1; i <= N; i += 7) {
            json_t *id = json_integer((json_int_t)i);
            ck_assert_int_eq(ts_update(db, ti, id, tag), TS_OK);
            ck_assert_int_eq(ts_update(db, tp, id, tag), TS_OK);
            json_decref(id);
        }
        json_t *nv = keep(json_pack("{s:o}", "emb", ts_vector_value(data + 5 * DIM, DIM)));
        ck_assert_int_eq(ts_update(db, ti, I(9), nv), TS_OK);
        ck_assert_int_eq(ts_update(db, tp, I(9), nv), TS_OK);
        ck_assert_int_eq(ts_update(db, ti, I(10), J("{\"emb\": null}")), TS_OK);
        ck_assert_int_eq(ts_update(db, tp, I(10), J("{\"emb\": null}")), TS_OK);
        /* a delete rolled back to a savepoint brings the row back whole */
        ck_assert_int_eq(ts_savepoint(db, "s"), TS_OK);
        ck_assert_int_eq(ts_delete(db, ti, I(11)), TS_OK);
        ck_assert_int_eq(ts_update(db, ti, I(12), J("{\"cat\": 99}")), TS_OK);
        ck_assert_int_eq(ts_rollback_to(db, "s"), TS_OK);
        ck_assert_int_eq(ts_commit(db), TS_OK);
        same_rows(db, ti, tp, N);
    }
    /* the index dropped: the rows take their vectors back */
    json_t *sch = NULL, *all = keep(json_array());
    ck_assert_int_eq(ts_list_tables(db, &sch), TS_OK);
    for (size_t i = 0; i < json_array_size(sch); i++) {
        json_t *one = NULL;
        const char *name = json_string_value(json_array_get(sch, i));
        ck_assert_int_eq(ts_get_schema(db, name, &one), TS_OK);
        if (!strcmp(name, "v_float32")) json_object_set_new(one, "indexes", json_array());
        if (!strcmp(name, "v_float16"))  /* another M: the index is built again */
            json_object_set_new(json_object_get(json_object_get(json_array_get(json_object_get(one, "indexes"), 0),
                                "vectorConfig"), "parameters"), "M", json_integer(8));
        json_array_append_new(all, one);
    }
    json_decref(sch);
    int rc = ts_sync_schemas(db, all);
    ck_assert_msg(rc == TS_OK, "sync: %d %s", rc, ts_errmsg(db));
    same_rows(db, "v_float32", "p_float32", N);
    same_rows(db, "v_float16", "p_float16", N);
    ck_assert_int_eq(ts_rebuild_table(db, "v_float16", NULL, NULL), TS_OK);
    db = reopen(db);
    for (int pi = 0; pi < 3; pi++) {
        snprintf(ti, sizeof ti, "v_%s", precs[pi]);
        snprintf(tp, sizeof tp, "p_%s", precs[pi]);
        same_rows(db, ti, tp, N);
    }
    ck_assert_int_eq(ts_check(db, NULL, NULL, NULL), TS_OK);

    /* space: rows of NB x 1 KiB vectors with an index take about what they
     * take without one plus the graph's links, not twice that */
    float *big = clustered(NB, BIG, 3);
    make_table(db, "bi", BIG, "float32", M_L2, 1);
    make_table(db, "bp", BIG, "float32", M_L2, 0);
    json_int_t p0 = used_pages(db);
    fill(db, "bp", big, NB, BIG, 1);
    json_int_t p1 = used_pages(db);
    fill(db, "bi", big, NB, BIG, 1);
    json_int_t p2 = used_pages(db);
    ck_assert_msg(p2 - p1 < (p1 - p0) * 3 / 2, "pages: rows alone %lld, rows + index %lld",
                  (long long)(p1 - p0), (long long)(p2 - p1));
    same_rows(db, "bi", "bp", NB);
    free(big);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* Vectors kept once in tables with a TTL (rows stored behind their expiry
 * time): rows equal those of a TTL table without an index, also after a
 * migration drops the index and the rows take their vectors back, and
 * after a reopen; rows of a short TTL expire from searches and gets. */
START_TEST(vectors_kept_once_ttl)
{
    enum { N = 300, DIM = 16 };
    static const char *const tables[][3] = { { "tv", "ix", "600000" }, { "tp", "", "600000" },
                                             { "ts", "ix", "50" } };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 29);
    for (int t = 0; t < 3; t++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{'name': '%s', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
                 "{'name': 'cat', 'type': 'integer'}, {'name': 'tag', 'type': 'text'}, "
                 "{'name': 'emb', 'type': 'vector', 'vectorConfig': {'dimensions': %d}}]%s, "
                 "'ttlConfig': {'ttlMs': %s}}", tables[t][0], DIM,
                 *tables[t][1] ? ", 'indexes': [{'type': 'ngh', 'fields': ['emb'], "
                                 "'vectorConfig': {'distanceMetric': 'l2'}}]" : "", tables[t][2]);
        create(db, text);
        fill(db, tables[t][0], data, N, DIM, t == 1);
    }
    same_rows(db, "tv", "tp", N);
    ts_result *r = search(ts_query_new(db, "tv"), data + 7 * DIM, DIM, 3);
    ck_assert_int_eq(fint(ts_result_row(r, 0), "id"), 8);
    ts_result_free(r);
    /* the index dropped: the rows, behind their expiry, take the vectors back */
    json_t *all = keep(json_array());
    for (int t = 0; t < 3; t++) {
        json_t *one = NULL;
        ck_assert_int_eq(ts_get_schema(db, tables[t][0], &one), TS_OK);
        if (t == 0) json_object_set_new(one, "indexes", json_array());
        json_array_append_new(all, one);
    }
    int rc = ts_sync_schemas(db, all);
    ck_assert_msg(rc == TS_OK, "sync: %d %s", rc, ts_errmsg(db));
    same_rows(db, "tv", "tp", N);
    r = search(ts_query_new(db, "tv"), data + 7 * DIM, DIM, 3);   /* an exact scan now */
    ck_assert_int_eq(fint(ts_result_row(r, 0), "id"), 8);
    ts_result_free(r);
    usleep(200 * 1000);                                          /* ts's rows expire */
    r = search(ts_query_new(db, "ts"), data, DIM, 5);
    ck_assert_uint_eq(ts_result_count(r), 0);
    ts_result_free(r);
    json_t *got = NULL;
    ck_assert_int_eq(ts_get(db, "ts", I(1), &got), TS_ERR_NOT_FOUND);
    db = reopen(db);
    same_rows(db, "tv", "tp", N);
    ck_assert_int_eq(ts_check(db, NULL, NULL, NULL), TS_OK);
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

/* A filtered search's cached set of passing rows is not taken again after
 * a rolled-back schema change reloads the tables: the rows committed
 * since the set was built must show. */
START_TEST(filter_cache_after_rolled_back_ddl)
{
    enum { N = 400, DIM = 8 };
    ts_db *db = open_db(NULL);
    float *data = clustered(N, DIM, 5);
    make_table(db, "v", DIM, "float32", M_L2, 1);
    fill(db, "v", data, N, DIM, 1);
    db = reopen(db);   /* tables as a fresh open loads them */
    for (int rep = 0; rep < 3; rep++) { /* the set is kept from the second on */
        ts_result *r = search(ts_where(ts_query_new(db, "v"), "tag", "=", S("new")), data, DIM, 5);
        ck_assert_uint_eq(ts_result_count(r), 0);
        ts_result_free(r);
    }
    json_t *rec = json_pack("{s:i, s:s, s:o}", "cat", 1, "tag", "new", "emb", ts_vector_value(data, DIM));
    ck_assert_int_eq(ts_insert(db, "v", rec, NULL), TS_OK);
    json_decref(rec);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_rebuild_table(db, "v", NULL, NULL), TS_OK);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    for (int rep = 0; rep < 3; rep++) {
        ts_result *r = search(ts_where(ts_query_new(db, "v"), "tag", "=", S("new")), data, DIM, 5);
        ck_assert_uint_eq(ts_result_count(r), 1);
        ts_result_free(r);
    }
    free(data);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

START_TEST(errors)
{
    ts_db *db = open_db(NULL);
    make_table(db, "v", 4, "float32", M_COS, 1);
    create(db, "{'name': 'o', 'fields': [{'name': 'x', 'type': 'integer'}]}");
    ins_i(db, "v", "{'cat': 1, 'emb': [1, 2, 3, 4]}");
    float q[5] = { 1, 2, 3, 4, 5 };
    ts_result *r = (ts_result *)1;
    ts_query *qq = ts_query_new(db, "v");
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 5, 3, &r), TS_ERR_VALIDATION);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(ts_errmsg(db), "4 dimensions"));
    ck_assert_int_eq(ts_vector_search(qq, "cat", q, 4, 3, &r), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_vector_search(qq, "nope", q, 4, 3, &r), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 4, 0, &r), TS_ERR_INVALID);
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 4, (size_t)-1, &r), TS_ERR_RANGE);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(ts_vector_search(qq, "emb", NULL, 4, 3, &r), TS_ERR_INVALID);
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 4, 3, NULL), TS_ERR_INVALID);
    float bad[4] = { 1, INFINITY, 0, 0 };
    ck_assert_int_eq(ts_vector_search(qq, "emb", bad, 4, 3, &r), TS_ERR_VALIDATION);
    ts_query_free(qq);
    ck_assert_int_eq(ts_vector_search(NULL, "emb", q, 4, 3, &r), TS_ERR_INVALID);
    qq = ts_ef_search(ts_query_new(db, "v"), 0);
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 4, 3, &r), TS_ERR_VALIDATION);
    ts_query_free(qq);
    qq = ts_ef_search(ts_query_new(db, "v"), TS_EF_SEARCH_MAX + 1);
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 4, 3, &r), TS_ERR_RANGE);
    ts_query_free(qq);
    qq = ts_ef_search(ts_query_new(db, "v"), TS_EF_SEARCH_MAX);
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 4, 3, &r), TS_OK);
    ts_result_free(r);
    r = NULL;
    ts_query_free(qq);
    qq = ts_join(ts_query_new(db, "v"), "o", "v.id", "=", "o.x");
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 4, 3, &r), TS_ERR_VALIDATION);
    ts_query_free(qq);
    qq = ts_query_new(db, "missing");
    ck_assert_int_eq(ts_vector_search(qq, "emb", q, 4, 3, &r), TS_ERR_NOT_FOUND);
    ts_query_free(qq);
    /* schema errors for vector fields and ngh indexes */
    ck_assert_int_eq(create_rc(db, "{'name': 'd', 'fields': [{'name': 'e', 'type': 'vector', "
                                   "'vectorConfig': {'dimensions': 16385}}], 'indexes': [{'type': 'ngh', "
                                   "'fields': ['e']}]}"), TS_ERR_VALIDATION);
    ck_assert_int_eq(create_rc(db, "{'name': 'a', 'fields': [{'name': 'e', 'type': 'vector'}]}"),
                     TS_ERR_VALIDATION);
    ck_assert_int_eq(create_rc(db, "{'name': 'b', 'fields': [{'name': 'e', 'type': 'integer'}], "
                                   "'indexes': [{'type': 'ngh', 'fields': ['e']}]}"), TS_ERR_VALIDATION);
    ck_assert_int_eq(create_rc(db, "{'name': 'c', 'fields': [{'name': 'e', 'type': 'vector', "
                                   "'vectorConfig': {'dimensions': 4}}], 'indexes': [{'type': 'ngh', "
                                   "'fields': ['e'], 'vectorConfig': {'distanceMetric': 'manhattan'}}]}"),
                     TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("vector");
    TCase *tc = tcase_create("vector");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, values_and_validation);
    tcase_add_test(tc, search_cosine);
    tcase_add_test(tc, search_l2);
    tcase_add_test(tc, search_inner_product);
    tcase_add_test(tc, search_float16_cosine);
    tcase_add_test(tc, search_int8_l2);
    tcase_add_test(tc, search_int8_inner_product);
    tcase_add_test(tc, search_float16_l2);
    tcase_add_test(tc, search_float16_inner_product);
    tcase_add_test(tc, search_int8_cosine);
    tcase_add_test(tc, metric_per_query);
    tcase_add_test(tc, exact_scan_without_index);
    tcase_add_test(tc, filtered_search);
    tcase_add_test(tc, filtered_search_repeated);
    tcase_add_test(tc, filtered_search_column);
    tcase_add_test(tc, filtered_search_after_rename);
    tcase_add_test(tc, search_across_rekey);
    tcase_add_test(tc, vectors_kept_once_ttl);
    tcase_add_test(tc, select_k_and_ef);
    tcase_add_test(tc, deletes_updates_spaces);
    tcase_add_test(tc, rebuild_after_deletes);
    tcase_add_test(tc, vectors_kept_once);
    tcase_add_test(tc, split_records_api);
    tcase_add_test(tc, build_links_api);
    tcase_add_test(tc, filter_cache_after_rolled_back_ddl);
    tcase_add_test(tc, transactions_and_reopen);
    tcase_add_test(tc, filtered_search_exact_range);
    tcase_add_test(tc, filtered_search_wide_indexed);
    tcase_add_test(tc, column_set_between_commits);
    tcase_add_test(tc, column_set_patched);
    tcase_add_test(tc, column_set_schema_change);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
