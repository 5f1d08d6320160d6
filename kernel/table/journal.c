/*
 * Which rows of a table recent commits changed (table.h, tstbl_changes):
 * a cache of something computed from every row at one version (a vector
 * search's column set) then moves to a later version by reading only the
 * rows changed in between, instead of every row again.
 *
 * The writer notes each row it puts, deletes or replaces in a pending
 * list; the commit moves that list, stamped with its number, into the
 * committed entries (under the map lock, which readers take).  A list
 * never says a row changed that did not, except for a statement or
 * savepoint rolled back inside a committed transaction: a reader reads
 * such rows again and finds them as they were, which is harmless.  Past
 * JN_KEYS entries or JN_BYTES key bytes the oldest commits are forgotten
 * (`from` moves past them) and an oversized transaction forgets them all:
 * a cache older than `from` is built from every row as before.  Only
 * tables a cache has asked for (tstbl_journal_want) keep a list.
 */
#include <stdlib.h>
#include <string.h>
#include <tostore/status.h>
#include "table/table.h"

#define JN_KEYS  (64u << 10)
#define JN_BYTES ((size_t)2 << 20)

typedef struct jent { uint64_t commit, space; size_t off, len; } jent;

typedef struct jlist {
    jent    *e;
    size_t   n, cap;
    uint8_t *kb;
    size_t   kbl, kbcap;
} jlist;

struct tstbl_journal {
    jlist done;   /* committed, in commit order (map lock) */
    jlist pend;   /* the writer's transaction (writer only) */
    int   over;   /* pend outgrew the bounds and was dropped */
};

static int jl_add(jlist *l, uint64_t commit, uint64_t space, const uint8_t *pk, size_t pkl)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        jent *ne = realloc(l->e, nc * sizeof *ne);
        if (!ne) return TS_ERR_NOMEM;
        l->e = ne;
        l->cap = nc;
    }
    if (l->kbl + pkl > l->kbcap) {
        size_t nc = l->kbcap ? 2 * l->kbcap : 1024;
        while (nc < l->kbl + pkl) nc *= 2;
        uint8_t *nb = realloc(l->kb, nc);
        if (!nb) return TS_ERR_NOMEM;
        l->kb = nb;
        l->kbcap = nc;
    }
    memcpy(l->kb + l->kbl, pk, pkl);
    l->e[l->n++] = (jent){ commit, space, l->kbl, pkl };
    l->kbl += pkl;
    return TS_OK;
}

static void jl_free(jlist *l)
{
    free(l->e);
    free(l->kb);
    memset(l, 0, sizeof *l);
}

/* Drop the first `drop` entries (whole commits), moving the rest down. */
static void jl_cut(jlist *l, size_t drop)
{
    if (!drop) return;
    size_t base = drop < l->n ? l->e[drop].off : l->kbl;
    memmove(l->kb, l->kb + base, l->kbl - base);
    l->kbl -= base;
    memmove(l->e, l->e + drop, (l->n - drop) * sizeof *l->e);
    l->n -= drop;
    for (size_t i = 0; i < l->n; i++) l->e[i].off -= base;
}

void tstbl_journal_free(tstbl *t)
{
    if (!t->jn) return;   /* open_table failed before it */
    jl_free(&t->jn->done);
    jl_free(&t->jn->pend);
    free(t->jn);
    t->jn = NULL;
}

void tstbl_journal_want(tstbl *t)
{
    __atomic_store_n(&t->jwant, 1, __ATOMIC_RELAXED);
}

int tstbl_journal_open(tstbl *t, uint64_t next_commit)
{
    t->jfrom = next_commit + 1;   /* commits before this object are not in its list */
    t->jn = calloc(1, sizeof *t->jn);
    return t->jn ? TS_OK : TS_ERR_NOMEM;
}

void tstbl_journal_reset(tstbl *t, uint64_t next_commit)
{
    jl_free(&t->jn->done);
    jl_free(&t->jn->pend);
    t->jn->over = 0;
    t->jfrom = next_commit + 1;
}

void tstbl_journal_note(tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl)
{
    /* not wanted: the commit is forgotten (jfrom moves past it), as an
     * oversized transaction; so is one that noted a row before the want */
    struct tstbl_journal *j = t->jn;
    if (!__atomic_load_n(&t->jwant, __ATOMIC_RELAXED)) j->over = 1;
    if (j->over) return;
    if (j->pend.n >= JN_KEYS || j->pend.kbl + pkl > JN_BYTES || jl_add(&j->pend, 0, space, pk, pkl)) {
        j->over = 1;
        jl_free(&j->pend);
    }
}

/* At commit n (writer, map lock held): the pending list becomes commit n's. */
void tstbl_journal_commit(tstbl *t, uint64_t n)
{
    struct tstbl_journal *j = t->jn;
    int over = j->over;
    for (size_t i = 0; i < j->pend.n && !over; i++) {
        const jent *p = &j->pend.e[i];
        over = jl_add(&j->done, n, p->space, j->pend.kb + p->off, p->len) != TS_OK;
    }
    jl_free(&j->pend);
    j->over = 0;
    if (over) {
        jl_free(&j->done);
        t->jfrom = n + 1;
        return;
    }
    if (j->done.n <= JN_KEYS && j->done.kbl <= JN_BYTES) return;
    /* forget the oldest commits down to three quarters of the bounds */
    size_t drop = 0;
    while (drop < j->done.n &&
           (j->done.n - drop > JN_KEYS / 4 * 3 || j->done.kbl - j->done.e[drop].off > JN_BYTES / 4 * 3)) {
        uint64_t c = j->done.e[drop].commit;
        while (drop < j->done.n && j->done.e[drop].commit == c) drop++;
        t->jfrom = c + 1;
    }
    jl_cut(&j->done, drop);
}

/* At a rollback (writer): the pending list never happened. */
void tstbl_journal_rollback(tstbl *t)
{
    jl_free(&t->jn->pend);
    t->jn->over = 0;
}

int tstbl_changes(tstbl_map *m, const tstbl *t, uint64_t space, uint64_t from, uint64_t to, tstbl_keys *out)
{
    memset(out, 0, sizeof *out);
    jlist l = { 0 };
    int rc = TS_ERR_NOT_FOUND;
    pthread_mutex_lock(&m->lock);
    /* version v holds commits up to v - 1: the changes after version from
     * are those of commits from .. to - 1 */
    if (!t->pending && from && from <= to && t->jfrom <= from) {
        rc = TS_OK;
        const jlist *d = &t->jn->done;
        for (size_t i = 0; i < d->n && !rc; i++) {
            const jent *p = &d->e[i];
            if (p->commit >= from && p->commit < to && p->space == space)
                rc = jl_add(&l, p->commit, p->space, d->kb + p->off, p->len);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (!rc) {
        out->n = l.n;
        out->kb = l.kb;
        out->ko = malloc((l.n + 1) * sizeof *out->ko);
        if (!out->ko) rc = TS_ERR_NOMEM;
        for (size_t i = 0; out->ko && i < l.n; i++) out->ko[i] = l.e[i].off;
        if (out->ko) out->ko[l.n] = l.kbl;
        free(l.e);
        if (rc) tstbl_keys_free(out);
    } else {
        jl_free(&l);
    }
    return rc;
}

void tstbl_keys_free(tstbl_keys *k)
{
    free(k->kb);
    free(k->ko);
    memset(k, 0, sizeof *k);
}
