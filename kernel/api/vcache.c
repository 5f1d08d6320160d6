/*
 * Sets of rows passing a vector search's conditions (query/vset.h), kept
 * across calls so a search that repeats its conditions filters without
 * reading rows.  Like the result cache (api/watch.c) an entry is tagged
 * with its table's version read *before* the snapshot the set was built
 * from, and is used only while the table's version is still that one.
 * Searches inside explicit transactions, on TTL tables or with custom
 * predicates never use it.
 *
 * A set is built (one exact scan of the rows the plan yields) on the
 * second search with the same conditions and version, so conditions that
 * never repeat cost nothing more than before; a later commit to the table
 * makes it miss.  A column set (every row's value of one column) instead
 * moves on with the table: the first search at a later version is handed
 * the last version's set (TSAPI_VC_PATCH) and patches it with the rows
 * the commits in between changed (table/journal.c), which costs those
 * rows, not a pass over every row.  When it cannot (changes unknown, or
 * too many), a column set of a plan an index narrows (tsapi_vcache_wide)
 * is built again only once that version's wide searches walked as many
 * keys as the last one had rows (its size is carried from version to
 * version): rent or buy.  At most VC_MAX entries and VC_BYTES bytes of
 * sets; the least recently used unreferenced entry goes.
 */
#include <stdlib.h>
#include <string.h>
#include "api/call.h"
#include "api/query.h"

#define VC_MAX   32
#define VC_BYTES ((size_t)128 << 20)

enum { VC_SEEN = 0, VC_SET = 1, VC_BIG = 2, VC_PATCH = 3 /* a search patches the last version's */ };

typedef struct vcentry {
    char     *key;
    uint64_t  space, num, created, version;
    int       state;
    /* column sets of narrowed plans (tsapi_vcache_wide): rows walked by
     * wide searches at this version, and the rows of the last set built
     * (0: none yet; carried from version to version) */
    int       narrow;
    uint64_t  owed, rows;
    tsq_vset *set;        /* VC_SET */
    /* VC_PATCH: the set being patched and its version, kept so a search
     * at a later version can patch it too should this entry be replaced */
    tsq_vset *prev;
    uint64_t  prev_version;
    size_t    bytes;
    unsigned  refs;       /* searches using set */
    int       gone;       /* out of the table: freed by the last release */
    uint64_t  used;
} vcentry;

struct tsapi_vcache {
    pthread_mutex_t lock;
    vcentry        *e[VC_MAX];
    size_t          n, bytes;
    uint64_t        clock;
    uint64_t        hits;   /* lookups that found a set (ts_stats) */
    uint64_t        builds, patches;   /* column sets built from every row, patched */
};

static void entry_free(vcentry *e)
{
    tsq_vset_free(e->set);
    tsq_vset_free(e->prev);
    free(e->key);
    free(e);
}

/* Take entry i out of the table (under the lock). */
static void entry_drop(struct tsapi_vcache *c, size_t i)
{
    vcentry *e = c->e[i];
    c->bytes -= e->bytes;
    c->e[i] = c->e[--c->n];
    if (e->refs) e->gone = 1;
    else entry_free(e);
}

/* The entry of key for space, or c->n (lock held). */
static size_t entry_index(const struct tsapi_vcache *c, const char *key, uint64_t space)
{
    size_t i = 0;
    while (i < c->n && !(c->e[i]->space == space && !strcmp(c->e[i]->key, key))) i++;
    return i;
}

/* A patching entry's set being patched: no longer kept (lock held). */
static void entry_let_prev(struct tsapi_vcache *c, vcentry *e)
{
    if (!e->prev) return;
    c->bytes -= e->bytes;
    e->bytes = 0;
    tsq_vset_free(e->prev);
    e->prev = NULL;
}

/* The table's number, the commit that created its current definition
 * (a schema change makes a new one: the same field names may mean other
 * columns) and its version. */
static int same_tag(const vcentry *e, const uint64_t tag[3])
{
    return e->num == tag[0] && e->created == tag[1] && e->version == tag[2];
}

char *tsapi_vcache_key(const ts_query *q, const char *field)
{
    if (!q->s.cond.n || q->s.njoins || tsq_cond_has_custom(&q->s.cond)) return NULL;
    json_t *o = json_pack("[s, s, o]", q->s.table, field, tsq_cond_json(&q->s.cond));
    char *k = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return k;
}

/* remember: make an entry for a key not seen; walked: a narrowed plan's
 * wide search walked that many keys (tsapi_vcache_wide); gate: the
 * caller is a narrowed plan, whose set is due at a later version only
 * once that version's walks reach the last set's rows; patch (or NULL):
 * the caller can patch a column set of an earlier version. */
static int lookup(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3], tsapi_vref *ref,
                  int remember, uint64_t walked, int gate, tsapi_vpatch *patch)
{
    memset(ref, 0, sizeof *ref);
    if (patch) memset(patch, 0, sizeof *patch);
    /* made on first use under db->lock, published whole (release) */
    struct tsapi_vcache *c = __atomic_load_n(&db->vcache, __ATOMIC_ACQUIRE);
    if (!c) {
        pthread_mutex_lock(&db->lock);
        c = db->vcache;
        if (!c && (c = calloc(1, sizeof *c))) {
            pthread_mutex_init(&c->lock, NULL);
            __atomic_store_n(&db->vcache, c, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&db->lock);
        if (!c) return TSAPI_VC_NONE;
    }
    int r = TSAPI_VC_NONE;
    pthread_mutex_lock(&c->lock);
    size_t i = entry_index(c, key, space);
    int narrow = 0;
    uint64_t rows = 0;
    if (i < c->n && !same_tag(c->e[i], tag)) {
        vcentry *o = c->e[i];
        int same_def = o->num == tag[0] && o->created == tag[1];
        if (same_def && o->version > tag[2]) {
            /* a search on an older snapshot: leave the newer entry alone */
            pthread_mutex_unlock(&c->lock);
            return TSAPI_VC_NONE;
        }
        /* a narrowed plan's column set: its size goes on with the table
         * (not past a change of definition) */
        if (o->narrow && same_def) {
            narrow = remember = 1;
            rows = o->set ? tsq_vset_rows(o->set) : o->rows;
        }
        /* an earlier version's set: the caller patches it with the rows
         * changed since, instead of reading every row again */
        tsq_vset *old = o->state == VC_SET ? o->set : o->state == VC_PATCH ? o->prev : NULL;
        if (patch && same_def && old) {
            tsq_vset_share(old);
            patch->old = old;
            patch->from = o->state == VC_SET ? o->version : o->prev_version;
            remember = 1;
        }
        entry_drop(c, i);   /* older data: start over (seen again now) */
        i = c->n;
    }
    if (i < c->n) {
        vcentry *e = c->e[i];
        e->used = ++c->clock;
        if (walked) {
            e->narrow = 1;
            e->owed = e->owed > UINT64_MAX - walked ? UINT64_MAX : e->owed + walked;
        }
        if (e->state == VC_SET) {
            if (!walked) {
                e->refs++;
                ref->set = e->set;
                ref->entry = e;
                c->hits++;
            }
            r = TSAPI_VC_HIT;
        } else if (e->state == VC_SEEN && (!gate || !e->rows || e->owed >= e->rows)) {
            r = TSAPI_VC_BUILD;
        }
    } else if (remember) {
        /* first sighting: remember it (evicting the least recently used) */
        vcentry *e = calloc(1, sizeof *e);
        if (e && (e->key = strdup(key))) {
            if (c->n == VC_MAX) {
                size_t old = 0;
                for (size_t j = 1; j < c->n; j++) if (c->e[j]->used < c->e[old]->used) old = j;
                entry_drop(c, old);
            }
            e->space = space;
            e->num = tag[0];
            e->created = tag[1];
            e->version = tag[2];
            e->state = patch && patch->old ? VC_PATCH : VC_SEEN;
            if (e->state == VC_PATCH) {
                r = TSAPI_VC_PATCH;
                tsq_vset_share(patch->old);
                e->prev = patch->old;
                e->prev_version = patch->from;
                /* it stays in memory while the patch runs: count it */
                e->bytes = tsq_vset_bytes(patch->old);
                c->bytes += e->bytes;
            }
            e->used = ++c->clock;
            e->narrow = narrow || walked;
            e->owed = walked;
            e->rows = rows;
            c->e[c->n++] = e;
        } else {
            free(e);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (patch && patch->old && r != TSAPI_VC_PATCH) {   /* no entry to patch onto */
        tsq_vset_free(patch->old);
        memset(patch, 0, sizeof *patch);
    }
    return r;
}

int tsapi_vcache_lookup(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3],
                        tsapi_vref *ref, tsapi_vpatch *patch)
{
    return lookup(db, key, space, tag, ref, 1, 0, 0, patch);
}

int tsapi_vcache_column(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3], int narrowed,
                        tsapi_vref *ref, tsapi_vpatch *patch)
{
    return lookup(db, key, space, tag, ref, !narrowed, 0, narrowed, patch);
}

void tsapi_vcache_unpatch(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3])
{
    struct tsapi_vcache *c = __atomic_load_n(&db->vcache, __ATOMIC_ACQUIRE);
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    size_t i = entry_index(c, key, space);
    if (i < c->n && same_tag(c->e[i], tag) && c->e[i]->state == VC_PATCH) {
        c->e[i]->state = VC_SEEN;
        entry_let_prev(c, c->e[i]);
    }
    pthread_mutex_unlock(&c->lock);
}

int tsapi_vcache_wide(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3], uint64_t walked)
{
    tsapi_vref ref;
    return lookup(db, key, space, tag, &ref, 1, walked ? walked : 1, 1, NULL);
}

void tsapi_vcache_stats(ts_db *db, uint64_t *sets, uint64_t *bytes, uint64_t *hits, uint64_t *builds,
                        uint64_t *patches)
{
    *sets = *bytes = *hits = *builds = *patches = 0;
    struct tsapi_vcache *c = __atomic_load_n(&db->vcache, __ATOMIC_ACQUIRE);
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++) *sets += c->e[i]->state == VC_SET;
    *bytes = c->bytes;
    *hits = c->hits;
    *builds = c->builds;
    *patches = c->patches;
    pthread_mutex_unlock(&c->lock);
}

void tsapi_vcache_put(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3], tsq_vset *set)
{
    struct tsapi_vcache *c = __atomic_load_n(&db->vcache, __ATOMIC_ACQUIRE);
    size_t bytes = set ? tsq_vset_bytes(set) : 0;
    if (!c) goto discard;
    pthread_mutex_lock(&c->lock);
    size_t i = entry_index(c, key, space);
    /* only onto the entry it was made for (same version, still without) */
    if (i == c->n || (c->e[i]->state != VC_SEEN && c->e[i]->state != VC_PATCH) || !same_tag(c->e[i], tag)) {
        pthread_mutex_unlock(&c->lock);
        goto discard;
    }
    vcentry *e = c->e[i];
    int patching = e->state == VC_PATCH;
    entry_let_prev(c, e);
    /* room: drop the least recently used other sets */
    while (bytes <= VC_BYTES / 2 && c->bytes + bytes > VC_BYTES) {
        size_t old = c->n;
        for (size_t j = 0; j < c->n; j++)
            if (c->e[j] != e && c->e[j]->bytes && (old == c->n || c->e[j]->used < c->e[old]->used))
                old = j;
        if (old == c->n) break;
        entry_drop(c, old);
    }
    if (set) {
        /* what the next version's narrowed searches must walk first */
        e->rows = tsq_vset_rows(set);
        e->owed = 0;
        if (set->val && !set->base) c->builds++;   /* a column set from every row */
        else if (patching) c->patches++;
    }
    if (set && (bytes > VC_BYTES / 2 || c->bytes + bytes > VC_BYTES)) {
        /* too big to keep: do not build it again at this version */
        tsq_vset_free(set);
        set = NULL;
        bytes = 0;
    }
    e->state = set ? VC_SET : VC_BIG;
    e->set = set;
    e->bytes = bytes;
    c->bytes += bytes;
    pthread_mutex_unlock(&c->lock);
    return;
discard:
    tsq_vset_free(set);
}

void tsapi_vcache_release(ts_db *db, tsapi_vref *ref)
{
    vcentry *e = ref->entry;
    if (!e) return;
    struct tsapi_vcache *c = __atomic_load_n(&db->vcache, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&c->lock);
    int last = --e->refs == 0 && e->gone;
    pthread_mutex_unlock(&c->lock);
    if (last) entry_free(e);
    memset(ref, 0, sizeof *ref);
}

void tsapi_vcache_close(ts_db *db)
{
    struct tsapi_vcache *c = __atomic_load_n(&db->vcache, __ATOMIC_ACQUIRE);
    if (!c) return;
    while (c->n) entry_drop(c, c->n - 1);
    pthread_mutex_destroy(&c->lock);
    free(c);
    db->vcache = NULL;
}
