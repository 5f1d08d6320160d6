#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kt.h"
#include "pager/codec.h"
#include "txn/internal.h"

uint64_t kt_next(kt_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t kt_below(kt_rng *r, uint64_t n) { return n ? kt_next(r) % n : 0; }

int kt_long(void)
{
    const char *e = getenv("TS_TEST_LONG");
    return e && *e && strcmp(e, "0") != 0;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KT_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KT_SANITIZED 1
#endif

int kt_sanitized(void)
{
#ifdef KT_SANITIZED
    return 1;
#else
    return 0;
#endif
}

char *kt_fast_tmpdir(const char *prefix)
{
    static unsigned counter;
    struct stat sb;
    const char *base = getenv("TS_TEST_FASTDIR");
    if (!base && stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0)
        base = "/dev/shm";
    if (!base) return tst_tmpdir(prefix);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/tostore-%s-%d-%u", base, prefix, (int)getpid(), counter++);
    tst_rmrf(buf);
    if (mkdir(buf, 0755) != 0) return tst_tmpdir(prefix);
    return strdup(buf);
}

void kt_clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        KT_REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s", dir);
        return;
    }
    char path[4096];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* ---- page contents -------------------------------------------------- */

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static uint64_t word(uint64_t pgno, uint64_t ver, size_t i)
{
    kt_rng r = { pgno * 0x100000001B3ull ^ ver * 0xC2B2AE3D27D4EB4Full ^ (uint64_t)i * 0x9E37ull };
    return kt_next(&r);
}

void kt_fill(uint8_t *d, size_t n, uint64_t pgno, uint64_t ver)
{
    put64(d, pgno);
    put64(d + 8, ver);
    for (size_t i = 16; i < n; i += 8) {
        uint64_t w = word(pgno, ver, i);
        for (size_t j = 0; j < 8 && i + j < n; j++) d[i + j] = (uint8_t)(w >> (8 * j));
    }
}

uint64_t kt_stored_ver(const uint8_t *d) { return get64(d + 8); }

int kt_check_fill(const uint8_t *d, size_t n, uint64_t pgno, uint64_t ver)
{
    if (get64(d) != pgno || get64(d + 8) != ver) return 0;
    for (size_t i = 16; i < n; i += 8) {
        uint64_t w = word(pgno, ver, i);
        for (size_t j = 0; j < 8 && i + j < n; j++)
            if (d[i + j] != (uint8_t)(w >> (8 * j))) return 0;
    }
    return 1;
}

/* ---- model ---------------------------------------------------------- */

static void reserve(kt_model *m, size_t n)
{
    if (n <= m->cap) return;
    size_t nc = m->cap ? m->cap : 64;
    while (nc < n) nc *= 2;
    m->ver = realloc(m->ver, nc * sizeof *m->ver);
    KT_REQUIRE(m->ver != NULL, "out of memory");
    memset(m->ver + m->cap, 0, (nc - m->cap) * sizeof *m->ver);
    m->cap = nc;
}

void kt_model_init(kt_model *m)
{
    memset(m, 0, sizeof *m);
    m->page_count = 2;
    reserve(m, 2);
}

void kt_model_free(kt_model *m)
{
    free(m->ver);
    memset(m, 0, sizeof *m);
}

void kt_model_copy(kt_model *dst, const kt_model *src)
{
    if (dst == src) return;
    reserve(dst, src->page_count);
    memcpy(dst->ver, src->ver, src->page_count * sizeof *dst->ver);
    dst->page_count = src->page_count;
    dst->nfree = src->nfree;
    memcpy(dst->roots, src->roots, sizeof dst->roots);
}

int kt_model_eq(const kt_model *a, const kt_model *b)
{
    return a->page_count == b->page_count && a->nfree == b->nfree &&
           memcmp(a->roots, b->roots, sizeof a->roots) == 0 &&
           memcmp(a->ver, b->ver, a->page_count * sizeof *a->ver) == 0;
}

void kt_model_set(kt_model *m, uint64_t pgno, uint64_t ver)
{
    KT_REQUIRE(pgno <= m->page_count && pgno >= 2, "model: page %llu of %llu",
               (unsigned long long)pgno, (unsigned long long)m->page_count);
    if (pgno == m->page_count) {
        reserve(m, (size_t)pgno + 1);
        m->page_count++;
    } else if (m->ver[pgno] == KT_FREE) {
        m->nfree--;
    }
    m->ver[pgno] = ver;
}

void kt_model_free_page(kt_model *m, uint64_t pgno)
{
    KT_REQUIRE(pgno < m->page_count && m->ver[pgno] != KT_FREE, "model: free of page %llu",
               (unsigned long long)pgno);
    m->ver[pgno] = KT_FREE;
    m->nfree++;
}

uint64_t kt_model_live(const kt_model *m) { return m->page_count - 2 - m->nfree; }

uint64_t kt_model_pick_live(const kt_model *m, kt_rng *r)
{
    uint64_t live = kt_model_live(m);
    if (!live) return 0;
    uint64_t k = kt_below(r, live);
    for (uint64_t p = 2; p < m->page_count; p++)
        if (m->ver[p] != KT_FREE && k-- == 0) return p;
    return 0;
}

/* ---- checks --------------------------------------------------------- */

static int whyf(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int whyf(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return 0;
}
#define WHY(...) whyf(why, n, __VA_ARGS__)

static int page_type(tspage *p) { return tspage_type(tspage_data(p) - TSPAGE_HDR); }

/* Walk the free list of tx's snapshot into mark[] (1 = on the list). */
static int walk_free(tstx *tx, uint8_t *mark, char *why, size_t n)
{
    uint64_t pages, nfree, seen = 0;
    tstx_counts(tx, &pages, &nfree);
    for (uint64_t p = tx->free_head; p; seen++) {
        if (p < 2 || p >= pages) return WHY("free list: page %llu out of range (%llu pages)",
                                            (unsigned long long)p, (unsigned long long)pages);
        if (mark[p]) return WHY("free list: cycle at page %llu", (unsigned long long)p);
        if (seen >= nfree) return WHY("free list longer than free_count %llu", (unsigned long long)nfree);
        mark[p] = 1;
        tspage *pg;
        int rc = tstx_get(tx, p, 0, &pg);
        if (rc) return WHY("free list: reading page %llu: %d %s", (unsigned long long)p, rc,
                           ts_strerror(rc));
        if (page_type(pg) != TSPG_TYPE_FREE) {
            tspage_release(pg);
            return WHY("free list: page %llu is not a free page", (unsigned long long)p);
        }
        p = get64(tspage_data(pg));
        tspage_release(pg);
    }
    if (seen != nfree) return WHY("free list has %llu pages, free_count says %llu",
                                  (unsigned long long)seen, (unsigned long long)nfree);
    return 1;
}

static int check_page(tstx *tx, const kt_model *m, uint64_t p, char *why, size_t n)
{
    tspage *pg;
    int rc = tstx_get(tx, p, 0, &pg);
    if (rc) return WHY("page %llu: read failed: %d %s", (unsigned long long)p, rc, ts_strerror(rc));
    int ok;
    if (m->ver[p] == KT_FREE) {
        ok = page_type(pg) == TSPG_TYPE_FREE;
        if (!ok) WHY("page %llu should be free (type %d, holds version %llu)",
                     (unsigned long long)p, page_type(pg),
                     (unsigned long long)kt_stored_ver(tspage_data(pg)));
    } else {
        ok = page_type(pg) != TSPG_TYPE_FREE &&
             kt_check_fill(tspage_data(pg), tstx_usable(tx), p, m->ver[p]);
        if (!ok) WHY("page %llu holds version %llu (type %d), expected %llu",
                     (unsigned long long)p, (unsigned long long)kt_stored_ver(tspage_data(pg)),
                     page_type(pg), (unsigned long long)m->ver[p]);
    }
    tspage_release(pg);
    return ok;
}

static int tx_matches(tstx *tx, const kt_model *m, kt_rng *r, unsigned k, char *why, size_t n)
{
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    if (pages != m->page_count || nfree != m->nfree)
        return WHY("counts: %llu pages / %llu free, expected %llu / %llu", (unsigned long long)pages,
                   (unsigned long long)nfree, (unsigned long long)m->page_count,
                   (unsigned long long)m->nfree);
    for (unsigned s = 0; s < TSPG_ROOTS; s++) {
        uint64_t v;
        if (tstx_root_get(tx, s, &v) != TS_OK) return WHY("root_get %u failed", s);
        if (v != m->roots[s])
            return WHY("root slot %u is %llu, expected %llu", s, (unsigned long long)v,
                       (unsigned long long)m->roots[s]);
    }
    if (!r) {
        for (uint64_t p = 2; p < pages; p++)
            if (!check_page(tx, m, p, why, n)) return 0;
    } else if (pages > 2) {
        for (unsigned i = 0; i < k; i++)
            if (!check_page(tx, m, 2 + kt_below(r, pages - 2), why, n)) return 0;
    }
    uint8_t *mark = calloc((size_t)pages, 1);
    KT_REQUIRE(mark != NULL, "out of memory");
    int ok = walk_free(tx, mark, why, n);
    for (uint64_t p = 2; ok && p < pages; p++)
        if (!!mark[p] != (m->ver[p] == KT_FREE))
            ok = WHY("page %llu: %s the free list", (unsigned long long)p,
                     mark[p] ? "unexpectedly on" : "missing from");
    free(mark);
    return ok;
}

int kt_tx_matches(tstx *tx, const kt_model *m, char *why, size_t n)
{
    return tx_matches(tx, m, NULL, 0, why, n);
}

int kt_tx_matches_sample(tstx *tx, const kt_model *m, kt_rng *r, unsigned k, char *why, size_t n)
{
    return tx_matches(tx, m, r, k, why, n);
}

int kt_matches(tspg *pg, const kt_model *m, char *why, size_t n)
{
    tstx *tx;
    int rc = tstx_begin(pg, 0, &tx);
    if (rc) return WHY("begin read: %d %s", rc, ts_strerror(rc));
    int ok = kt_tx_matches(tx, m, why, n);
    tstx_rollback(tx);
    return ok;
}

static int consistent(tspg *pg, unsigned root_pages, kt_model *out, uint64_t *nforeign, char *why,
                      size_t n);

int kt_consistent(tspg *pg, unsigned root_pages, kt_model *out, char *why, size_t n)
{
    return consistent(pg, root_pages, out, NULL, why, n);
}

int kt_consistent_foreign(tspg *pg, unsigned root_pages, kt_model *out, uint64_t *nforeign,
                          char *why, size_t n)
{
    uint64_t dummy;
    return consistent(pg, root_pages, out, nforeign ? nforeign : &dummy, why, n);
}

static int consistent(tspg *pg, unsigned root_pages, kt_model *out, uint64_t *nforeign, char *why,
                      size_t n)
{
    if (nforeign) *nforeign = 0;
    tstx *tx;
    int rc = tstx_begin(pg, 0, &tx);
    if (rc) return WHY("begin read: %d %s", rc, ts_strerror(rc));
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    int ok = 1;
    if (pages < 2 || pages > (1u << 24)) ok = WHY("implausible page count %llu", (unsigned long long)pages);
    uint8_t *mark = ok ? calloc((size_t)pages, 1) : NULL;
    if (ok) ok = walk_free(tx, mark, why, n);
    kt_model m;
    kt_model_init(&m);
    uint32_t usable = tstx_usable(tx);
    for (uint64_t p = 2; ok && p < pages; p++) {
        tspage *pg2;
        rc = tstx_get(tx, p, 0, &pg2);
        if (rc) { ok = WHY("page %llu: read failed: %d %s", (unsigned long long)p, rc, ts_strerror(rc)); break; }
        uint8_t *d = tspage_data(pg2);
        if (page_type(pg2) == TSPG_TYPE_FREE) {
            if (!mark[p]) ok = WHY("page %llu is a free page but not on the free list", (unsigned long long)p);
            kt_model_set(&m, p, 1);
            kt_model_free_page(&m, p);
        } else if (mark[p]) {
            ok = WHY("page %llu is on the free list but not free", (unsigned long long)p);
        } else if (!kt_check_fill(d, usable, p, kt_stored_ver(d)) && nforeign) {
            kt_model_set(&m, p, KT_FOREIGN);
            (*nforeign)++;
        } else if (!kt_check_fill(d, usable, p, kt_stored_ver(d))) {
            ok = WHY("page %llu: content is not a written page (version %llu)", (unsigned long long)p,
                     (unsigned long long)kt_stored_ver(d));
        } else {
            kt_model_set(&m, p, kt_stored_ver(d));
        }
        tspage_release(pg2);
    }
    for (unsigned s = 0; s < TSPG_ROOTS; s++) {
        tstx_root_get(tx, s, &m.roots[s]);
        if (ok && (root_pages >> s & 1) && m.roots[s] &&
            (m.roots[s] >= pages || m.ver[m.roots[s]] == KT_FREE))
            ok = WHY("root slot %u points to page %llu, which is not a live page", s,
                     (unsigned long long)m.roots[s]);
    }
    if (ok && m.nfree != nfree) ok = WHY("free_count %llu, found %llu free pages",
                                         (unsigned long long)nfree, (unsigned long long)m.nfree);
    free(mark);
    tstx_rollback(tx);
    if (ok && out) kt_model_copy(out, &m);
    kt_model_free(&m);
    return ok;
}
