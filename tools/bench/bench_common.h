/*
 * bench_common: what every benchmark in tools/bench/ shares.
 *
 * The method (docs/benchmarks.md): disk and CPU speed on the machines these
 * run on drift over minutes, so absolute numbers mean little.  Every
 * workload runs its engines in rounds of interleaved short slices (the
 * starting engine rotates), so the engines compared in one round ran within
 * the same second or so of each other; a ratio is the median of the
 * per-round ratios, shown with their range.
 *
 *   eng, rounds()       engines and the interleaved rounds
 *   ratio_of()          per-round ratios: median, min, max
 *   add_row(), print_summary()   the summary table at the end
 *   now(), die(), path_join(), rmrf(), median(), ...   small utilities
 *
 * Each benchmark sets `bench` (its name and column widths) first thing in
 * main; the output of the layouts is the one each benchmark had before the
 * code was shared.
 */
#ifndef TOSTORE_BENCH_COMMON_H
#define TOSTORE_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define MAXR 32          /* rounds */
#define BENCH_MAXT 64    /* threads of one engine */
#define BENCH_MAXE 16    /* engines in one rounds() call */

/* The benchmark's name (die()'s prefix) and the widths of its tables. */
typedef struct bench_style {
    const char *prog;
    int name_w;          /* engine names in the rounds table */
    int col_w;           /* one round's column (the median's is one wider) */
    int label_w;         /* print_ratio labels */
    int sum_w[5];        /* summary columns: workload, value, reference, ratio, goal */
} bench_style;

extern bench_style bench;

/* ---- utilities ---- */

/* ", " and the config keys in BENCH_CONFIG (e.g. "\"pageDigest\": true"),
 * which every tostore database a benchmark opens gets, to measure what
 * they cost; "" without. */
const char *bench_config_more(void);
/* Open tostore at dir on the posix backend with durability ("normal",
 * "full"), cacheBytes cache_bytes, the build tree's plugins, extra_json
 * (may be NULL: more config keys, e.g. "\"migration\": {...}") and
 * BENCH_CONFIG; dies on failure. */
struct ts_db *bench_open_db(const char *dir, const char *durability, long long cache_bytes,
                            const char *extra_json);

double now(void);   /* CLOCK_MONOTONIC, seconds */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
char *path_join(const char *a, const char *b);   /* malloc'd "a/b" */
void mkdir_or_die(const char *p);
void rmrf(const char *p);
void copy_file(const char *from, const char *to);
double median(const double *v, int n);
double vmin(const double *v, int n);
double vmax(const double *v, int n);

static inline uint64_t rng_next(uint64_t *s)   /* xorshift64 */
{
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

/* ---- engines and interleaved rounds ---- */

/* One operation (a transaction, or a batch of reads) on thread tid (0 for
 * single-threaded engines): returns the number of operations it did. */
typedef int (*op_fn)(void *ctx, int tid);

typedef struct eng {
    const char *name;
    op_fn       op;
    void       *ctx;
    int         threads;            /* 0 or 1: the calling thread */
    double      rate[MAXR];         /* ops/s per round */
    void      (*prep)(void *ctx);   /* optional: before each slice, not timed */
} eng;

/* Run e for about secs (threads > 1: that many threads, each calling op in
 * a loop); returns the operations done, *elapsed the time taken. */
uint64_t run_eng(eng *e, double secs, double *elapsed);

/* nrounds rounds of interleaved slices: each round gives every engine secs
 * in slices of about `slice` seconds, cycling through the engines (the
 * starting engine rotates), so engines compared in one round ran within the
 * same second or so of each other.  e[i].rate[r] = ops / time of round r.
 * Prints the title, then one line per engine: its rate per round and the
 * median, followed by unit. */
void rounds(const char *title, eng *e, int n, int nrounds, double secs, double slice,
            const char *unit);

/* Run e (single-threaded) until it has done at least `ops` operations;
 * returns the operations done, *elapsed the time taken. */
uint64_t run_eng_ops(eng *e, uint64_t ops, double *elapsed);

/* As rounds(), with a fixed amount of work instead of a fixed time: each
 * round gives every engine ops_per_round operations in `slices` slices
 * (for workloads whose cost grows with what was done, e.g. N inserts). */
void rounds_ops(const char *title, eng *e, int n, int nrounds, uint64_t ops_per_round, int slices,
                const char *unit);

/* The table rounds() prints, for callers that fill rate[] themselves. */
void print_header(const char *title, int nrounds);
void print_rates(const eng *e, int n, int nrounds, const char *unit);

typedef struct ratio { double med, lo, hi; } ratio;

/* a/b per round (0 where b's rate is 0): median, min and max. */
ratio ratio_of(const eng *a, const eng *b, int nrounds);
/* "  <label> 1.23x  (rounds 1.01 .. 1.40)" */
void print_ratio(const char *label, ratio x);

/* ---- summary table ---- */

void add_row(const char *what, const char *value, const char *ref, const char *ratio_text,
             const char *goal, const char *status);
/* "== summary (median of per-round ratios, [min-max over rounds]) ==" and the rows. */
void print_summary(void);

#endif
