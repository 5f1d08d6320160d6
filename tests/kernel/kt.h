/*
 * Shared helpers of the kernel crash/recovery suites: page contents derived
 * from (page number, version), a reference model of the database's pages,
 * free list and root slots, and checks of a pager against a model or
 * against its own invariants.
 *
 * Every page the suites write holds kt_fill(pgno, ver) in its usable bytes,
 * so a page read back is self-describing: its version is stored in it and
 * the rest must follow from (pgno, ver).
 */
#ifndef TS_TESTS_KT_H
#define TS_TESTS_KT_H

#include <stddef.h>
#include <stdint.h>
#include "api/db.h"
#include "tsupport.h"

/* ck_assert_msg without Check's per-call progress message (which costs a
 * write to Check's pipe each time): for assertions in hot loops. */
#define KT_REQUIRE(cond, ...)                                   \
    do {                                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                 \
    } while (0)

/* ---- deterministic pseudo-random numbers ---------------------------- */

typedef struct kt_rng { uint64_t s; } kt_rng;
uint64_t kt_next(kt_rng *r);
/* Uniform in [0, n), n > 0. */
uint64_t kt_below(kt_rng *r, uint64_t n);

/* 1 when TS_TEST_LONG is set to something other than "" or "0". */
int kt_long(void);

/* A fresh directory for many short-lived databases: on tmpfs (/dev/shm)
 * when there is one, since the crash loops create and delete files by the
 * thousand and the faulty backend simulates durability anyway; else like
 * tst_tmpdir.  Free with free() after tst_rmrf(). */
char *kt_fast_tmpdir(const char *prefix);

/* 1 in a sanitizer build (ASan, TSan): the suites scale their loops down. */
int kt_sanitized(void);

/* Empty the directory dir (files only; it is created if missing). */
void kt_clear_dir(const char *dir);

/* ---- page contents -------------------------------------------------- */

void kt_fill(uint8_t *d, size_t n, uint64_t pgno, uint64_t ver);
/* The version stored by kt_fill (0 if the page does not carry one). */
uint64_t kt_stored_ver(const uint8_t *d);
/* 1 when d holds exactly kt_fill(pgno, ver). */
int kt_check_fill(const uint8_t *d, size_t n, uint64_t pgno, uint64_t ver);

/* ---- reference model ------------------------------------------------ */

#define KT_FREE 0    /* version of a page on the free list */

typedef struct kt_model {
    uint64_t  page_count;         /* pages in the file, as tstx_counts says */
    uint64_t  nfree;
    uint64_t  roots[TSPG_ROOTS];
    uint64_t *ver;                /* [page_count]: version, or KT_FREE */
    size_t    cap;
} kt_model;

void kt_model_init(kt_model *m);            /* an empty database: pages 0 and 1 */
void kt_model_free(kt_model *m);
void kt_model_copy(kt_model *dst, const kt_model *src);
int  kt_model_eq(const kt_model *a, const kt_model *b);
/* Page pgno (< page_count, or == page_count to append) now holds ver. */
void kt_model_set(kt_model *m, uint64_t pgno, uint64_t ver);
void kt_model_free_page(kt_model *m, uint64_t pgno);
/* A random live page (ver != KT_FREE), or 0 when there is none. */
uint64_t kt_model_pick_live(const kt_model *m, kt_rng *r);
uint64_t kt_model_live(const kt_model *m);

/* ---- checks (return 1 when fine, else 0 with a message in why) ------ */

/* The snapshot seen by tx equals m: counts, roots, every page's content
 * and the free list (walked from the meta page). */
int kt_tx_matches(tstx *tx, const kt_model *m, char *why, size_t n);
/* Same, but only k random pages' contents (counts, roots and the free
 * list are always checked in full). */
int kt_tx_matches_sample(tstx *tx, const kt_model *m, kt_rng *r, unsigned k, char *why, size_t n);
/* kt_tx_matches in a fresh read transaction. */
int kt_matches(tspg *pg, const kt_model *m, char *why, size_t n);
/* Invariants without a model: every page of the file readable and either
 * a free page on the free list or a kt_fill page; the free list has no
 * cycle, stays in range and has free_count pages; root slots given by
 * root_pages (bitmask of slots holding page numbers, or 0) point to live
 * pages.  When out is not NULL, the state found is stored in it. */
int kt_consistent(tspg *pg, unsigned root_pages, kt_model *out, char *why, size_t n);
/* Same, but pages that are neither free nor kt_fill pages are accepted as
 * long as they read back (checksum verified): pages of the data layer
 * (system catalog) in a database opened with the default plugins.  They
 * get version KT_FOREIGN in out. */
#define KT_FOREIGN UINT64_MAX
int kt_consistent_foreign(tspg *pg, unsigned root_pages, kt_model *out, uint64_t *nforeign,
                          char *why, size_t n);

#endif
