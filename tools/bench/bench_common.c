/* bench_common: see bench_common.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_common.h"
#include <tostore/tostore.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

bench_style bench = { "bench", 28, 9, 44, { 38, 12, 34, 22, 14 } };

/* ---- utilities ---------------------------------------------------------- */

const char *bench_config_more(void)
{
    static char buf[1024];
    const char *more = getenv("BENCH_CONFIG");
    if (!more || !*more) return "";
    snprintf(buf, sizeof buf, ", %s", more);
    return buf;
}

ts_db *bench_open_db(const char *dir, const char *durability, long long cache_bytes,
                     const char *extra_json)
{
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\"path\": \"%s\", \"durability\": \"%s\", \"cacheBytes\": %lld, "
             "\"storage\": {\"backend\": \"posix\"}"
#ifdef BENCH_PLUGIN_DIR
             ", \"pluginPath\": \"" BENCH_PLUGIN_DIR "\""
#endif
             "%s%s%s}", dir, durability, cache_bytes, extra_json ? ", " : "", extra_json ? extra_json : "",
             bench_config_more());
    ts_db *db = NULL;
    if (ts_open_json(cfg, &db) != TS_OK) die("ts_open %s: %s", dir, ts_errmsg(NULL));
    return db;
}

double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench.prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (!p) die("out of memory");
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

void mkdir_or_die(const char *p)
{
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die("mkdir %s: %s", p, strerror(errno));
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(p);
    return 0;
}

void rmrf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

void copy_file(const char *from, const char *to)
{
    int a = open(from, O_RDONLY | O_CLOEXEC), b = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (a < 0 || b < 0) die("copy %s -> %s: %s", from, to, strerror(errno));
    static char buf[1 << 20];
    ssize_t n;
    while ((n = read(a, buf, sizeof buf)) > 0)
        if (write(b, buf, (size_t)n) != n) die("write %s: %s", to, strerror(errno));
    if (n < 0) die("read %s: %s", from, strerror(errno));
    close(a);
    close(b);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median(const double *v, int n)
{
    double small[MAXR * 4], *t = small;
    if (n <= 0) return 0;
    if (n > MAXR * 4 && !(t = malloc((size_t)n * sizeof *t))) die("out of memory");
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_dbl);
    double m = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    if (t != small) free(t);
    return m;
}

double vmin(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) if (v[i] < m) m = v[i];
    return m;
}

double vmax(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) if (v[i] > m) m = v[i];
    return m;
}

/* ---- engines and interleaved rounds --------------------------------------- */

typedef struct worker {
    eng               *e;
    int                tid;
    uint64_t           ops;
    atomic_int        *stop;
    pthread_barrier_t *bar;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->bar);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed))
        w->ops += (uint64_t)w->e->op(w->e->ctx, w->tid);
    return NULL;
}

uint64_t run_eng(eng *e, double secs, double *elapsed)
{
    if (e->threads <= 1) {
        uint64_t ops = 0;
        double t0 = now(), t;
        do ops += (uint64_t)e->op(e->ctx, 0);
        while ((t = now()) - t0 < secs);
        *elapsed = t - t0;
        return ops;
    }
    if (e->threads > BENCH_MAXT) die("%s: %d threads (at most %d)", e->name, e->threads, BENCH_MAXT);
    pthread_t th[BENCH_MAXT];
    worker w[BENCH_MAXT];
    atomic_int stop = 0;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)e->threads + 1);
    for (int i = 0; i < e->threads; i++) {
        w[i] = (worker){ e, i, 0, &stop, &bar };
        if (pthread_create(&th[i], NULL, worker_main, &w[i])) die("pthread_create");
    }
    pthread_barrier_wait(&bar);
    double t0 = now();
    struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    uint64_t ops = 0;
    for (int i = 0; i < e->threads; i++) {
        pthread_join(th[i], NULL);
        ops += w[i].ops;
    }
    *elapsed = now() - t0;
    pthread_barrier_destroy(&bar);
    return ops;
}

void print_header(const char *title, int nrounds)
{
    printf("\n-- %s --\n%-*s", title, bench.name_w, "round");
    for (int r = 0; r < nrounds; r++) printf(" %*d", bench.col_w, r + 1);
    printf(" %*s\n", bench.col_w + 1, "median");
    fflush(stdout);
}

void print_rates(const eng *e, int n, int nrounds, const char *unit)
{
    for (int i = 0; i < n; i++) {
        printf("%-*s", bench.name_w, e[i].name);
        for (int r = 0; r < nrounds; r++) printf(" %*.0f", bench.col_w, e[i].rate[r]);
        printf(" %*.0f %s\n", bench.col_w + 1, median(e[i].rate, nrounds), unit);
    }
    fflush(stdout);
}

void rounds(const char *title, eng *e, int n, int nrounds, double secs, double slice,
            const char *unit)
{
    if (n > BENCH_MAXE) die("%s: %d engines (at most %d)", title, n, BENCH_MAXE);
    if (nrounds > MAXR) nrounds = MAXR;
    int slices = (int)(secs / slice + 0.5);
    if (slices < 1) slices = 1;
    char t[512];
    snprintf(t, sizeof t, "%s: %d rounds x %.2f s per engine (slices of %.2f s), interleaved", title,
             nrounds, secs, secs / slices);
    print_header(t, nrounds);
    for (int r = 0; r < nrounds; r++) {
        uint64_t ops[BENCH_MAXE] = {0};
        double tm[BENCH_MAXE] = {0};
        for (int k = 0; k < slices; k++)
            for (int i = 0; i < n; i++) {
                int j = (i + r + k) % n;
                double el;
                if (e[j].prep) e[j].prep(e[j].ctx);
                ops[j] += run_eng(&e[j], secs / slices, &el);
                tm[j] += el;
            }
        for (int i = 0; i < n; i++) e[i].rate[r] = (double)ops[i] / tm[i];
    }
    print_rates(e, n, nrounds, unit);
}

uint64_t run_eng_ops(eng *e, uint64_t ops, double *elapsed)
{
    uint64_t done = 0;
    double t0 = now();
    while (done < ops) done += (uint64_t)e->op(e->ctx, 0);
    *elapsed = now() - t0;
    return done;
}

void rounds_ops(const char *title, eng *e, int n, int nrounds, uint64_t ops_per_round, int slices,
                const char *unit)
{
    if (n > BENCH_MAXE) die("%s: %d engines (at most %d)", title, n, BENCH_MAXE);
    if (nrounds > MAXR) nrounds = MAXR;
    if (slices < 1) slices = 1;
    uint64_t per = ops_per_round / (uint64_t)slices;
    if (per < 1) per = 1;
    char t[512];
    snprintf(t, sizeof t, "%s: %d rounds x %llu per engine (slices of %llu), interleaved", title,
             nrounds, (unsigned long long)(per * (uint64_t)slices), (unsigned long long)per);
    print_header(t, nrounds);
    for (int r = 0; r < nrounds; r++) {
        uint64_t ops[BENCH_MAXE] = {0};
        double tm[BENCH_MAXE] = {0};
        for (int k = 0; k < slices; k++)
            for (int i = 0; i < n; i++) {
                int j = (i + r + k) % n;
                double el;
                if (e[j].prep) e[j].prep(e[j].ctx);
                ops[j] += run_eng_ops(&e[j], per, &el);
                tm[j] += el;
            }
        for (int i = 0; i < n; i++) e[i].rate[r] = (double)ops[i] / tm[i];
    }
    print_rates(e, n, nrounds, unit);
}

ratio ratio_of(const eng *a, const eng *b, int nrounds)
{
    double v[MAXR] = {0};
    for (int r = 0; r < nrounds; r++) v[r] = b->rate[r] > 0 ? a->rate[r] / b->rate[r] : 0;
    ratio x = { median(v, nrounds), vmin(v, nrounds), vmax(v, nrounds) };
    return x;
}

void print_ratio(const char *label, ratio x)
{
    printf("  %-*s %6.2fx  (rounds %.2f .. %.2f)\n", bench.label_w, label, x.med, x.lo, x.hi);
}

/* ---- summary table ---------------------------------------------------------- */

typedef struct row {
    char what[64], value[64], ref[64], ratio[64], goal[24], status[8];
} row;

static row g_rows[64];
static int g_nrows;

void add_row(const char *what, const char *value, const char *ref, const char *ratio_text,
             const char *goal, const char *status)
{
    if (g_nrows == 64) return;
    row *r = &g_rows[g_nrows++];
    snprintf(r->what, sizeof r->what, "%s", what);
    snprintf(r->value, sizeof r->value, "%s", value);
    snprintf(r->ref, sizeof r->ref, "%s", ref);
    snprintf(r->ratio, sizeof r->ratio, "%s", ratio_text);
    snprintf(r->goal, sizeof r->goal, "%s", goal);
    snprintf(r->status, sizeof r->status, "%s", status);
}

void print_summary(void)
{
    const int *w = bench.sum_w;
    printf("\n== summary (median of per-round ratios, [min-max over rounds]) ==\n");
    printf("%-*s %-*s %-*s %-*s %-*s %s\n", w[0], "workload", w[1], "value", w[2], "reference", w[3],
           "ratio", w[4], "goal", "status");
    for (int i = 0; i < g_nrows; i++) {
        row *r = &g_rows[i];
        printf("%-*s %-*s %-*s %-*s %-*s %s\n", w[0], r->what, w[1], r->value, w[2], r->ref, w[3],
               r->ratio, w[4], r->goal, r->status);
    }
}
