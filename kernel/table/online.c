/*
 * Background schema migrations (migrate.h): the task records, the shadow
 * table a task fills, its batches, the mirror hooks that keep the shadow in
 * step with writes behind the walk, and the swap (or the refusal) at the
 * end.
 *
 * Why this is correct under concurrency and crashes: one writer at a time.
 * A batch is a write transaction that converts the rows after the task's
 * last key and records the new last key with them; a user write to a row at
 * or before the last key is mirrored in the same transaction; a row after
 * it is converted later by the walk, which reads it as committed then.  So
 * every committed state has: shadow == convert(old rows <= last key).  A
 * crash loses at most uncommitted transactions, after which that invariant
 * still holds for the catalog's last key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "table/migrate.h"

#define KCAP (2 * TSSYS_NAME_MAX + 64)
#define ID_CAP 32

struct tsmig_online {
    char     id[ID_CAP];
    tstbl   *shadow;      /* the new definition's trees (not in the map) */
    long    *map;         /* shadow column -> old column, -1: none */
    int      lossy;
    int      verbatim;    /* stored rows are copied as they are */
    uint8_t  last[TSROW_KEY_CAP]; /* stored key (space, pk) of the last row converted */
    size_t   lastl;       /* 0: none yet */
    int64_t  processed, total, dropped;
    json_t  *rec;         /* the task record as stored */
};

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static json_t *hex_of(const uint8_t *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) snprintf(s + 2 * i, 3, "%02x", p[i]);
    s[2 * n] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    size_t len = strlen(s);
    if (len % 2 || len / 2 > cap) return TS_ERR_CORRUPT;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return TS_ERR_CORRUPT;
        out[i] = (uint8_t)v;
    }
    *n = len / 2;
    return TS_OK;
}

/* ---- task records ------------------------------------------------------ */

static int rec_put(tstbl_map *m, tstx *tx, const char *id, const json_t *rec)
{
    char *text = json_dumps(rec, JSON_COMPACT);
    if (!text) return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    uint8_t k[KCAP];
    size_t kl = tssys_key(k, "migtask", id);
    int rc = tsix_remove(m->sys->catalog, tx, k, kl, NULL, 0);
    if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
    if (!rc) rc = tsix_insert(m->sys->catalog, tx, k, kl, text, strlen(text), 1);
    free(text);
    return rc;
}

static int rec_get(tstbl_map *m, tstx *tx, const char *id, json_t **out)
{
    *out = NULL;
    if (strlen(id) > TSSYS_NAME_MAX) return TS_ERR_NOT_FOUND;
    uint8_t k[KCAP];
    void *v;
    size_t vl;
    int rc = tsix_get(m->sys->catalog, tx, k, tssys_key(k, "migtask", id), &v, &vl);
    if (rc) return rc;
    json_error_t je;
    *out = json_loadb(v, vl, 0, &je);
    free(v);
    return *out ? TS_OK : tsenv_error(m->env, TS_ERR_CORRUPT, "migration task '%s' is malformed", id);
}

static int next_id(tstbl_map *m, tstx *tx, char *id, size_t cap)
{
    uint8_t k[KCAP], b[8];
    size_t kl = tssys_key(k, "migseq", NULL);
    void *v;
    size_t vl;
    uint64_t n = 1;
    int rc = tsix_get(m->sys->catalog, tx, k, kl, &v, &vl);
    if (!rc) {
        if (vl == 8) n = get64(v);
        free(v);
        rc = tsix_remove(m->sys->catalog, tx, k, kl, NULL, 0);
    } else if (rc == TS_ERR_NOT_FOUND) {
        rc = TS_OK;
    }
    put64(b, n + 1);
    if (!rc) rc = tsix_insert(m->sys->catalog, tx, k, kl, b, 8, 1);
    snprintf(id, cap, "mig-%llu", (unsigned long long)n);
    return rc;
}

int tsmig_task_done_now(tstbl_map *m, tstx *tx, const char *table, int64_t rows, char *id_out,
                        size_t id_cap)
{
    int rc = next_id(m, tx, id_out, id_cap);
    if (rc) return rc;
    json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:n, s:I}", "id", id_out, "table", table,
                            "state", "done", "processed", (json_int_t)rows, "total", (json_int_t)rows,
                            "rowsDropped", (json_int_t)0, "error", "finishedAt",
                            (json_int_t)tsrow_now_ms());
    rc = rec ? rec_put(m, tx, id_out, rec) : tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    json_decref(rec);
    return rc;
}

/* ---- the task's in-memory state ----------------------------------------- */

void tsmig_online_free(tsmig_online *g)
{
    if (!g) return;
    tstbl_discard(g->shadow);
    free(g->map);
    json_decref(g->rec);
    free(g);
}

int tsmig_busy(tstbl_map *m, const tstbl *t)
{
    return tsenv_error(m->env, TS_ERR_DB, "table '%s' is being migrated by task %s; its schema "
                       "cannot change until ts_migration_status reports it done", t->def->name,
                       t->mig ? t->mig->id : "?");
}

int tsmig_running(tstbl_map *m)
{
    if (json_array_size(m->mig_swapped) || json_array_size(m->mig_garbage)) return 1;
    for (size_t i = 0; i < m->n; i++)
        if (m->t[i]->mig) return 1;
    return 0;
}

/* Build the in-memory state of a running task from its record (rec taken). */
static int online_from_rec(tstbl_map *m, json_t *rec, tsmig_online **out)
{
    *out = NULL;
    tsmig_online *g = calloc(1, sizeof *g);
    if (!g) { json_decref(rec); return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory"); }
    g->rec = rec;
    snprintf(g->id, sizeof g->id, "%s", json_string_value(json_object_get(rec, "id")));
    g->lossy = json_is_true(json_object_get(rec, "allowLossy"));
    g->processed = json_integer_value(json_object_get(rec, "processed"));
    g->total = json_integer_value(json_object_get(rec, "total"));
    g->dropped = json_integer_value(json_object_get(rec, "rowsDropped"));
    int rc = tstbl_from_entry(m, json_object_get(rec, "shadow"), &g->shadow);
    json_t *map = json_object_get(rec, "map");
    if (!rc && (!json_is_array(map) || json_array_size(map) != g->shadow->def->ncols))
        rc = tsenv_error(m->env, TS_ERR_CORRUPT, "migration task %s: malformed field map", g->id);
    if (!rc && !(g->map = calloc(json_array_size(map) + 1, sizeof *g->map)))
        rc = tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    for (size_t c = 0; !rc && c < json_array_size(map); c++)
        g->map[c] = (long)json_integer_value(json_array_get(map, c));
    const char *last = json_string_value(json_object_get(rec, "last"));
    if (!rc && last && unhex(last, g->last, sizeof g->last, &g->lastl))
        rc = tsenv_error(m->env, TS_ERR_CORRUPT, "migration task %s: malformed position", g->id);
    if (rc) { tsmig_online_free(g); return rc; }
    *out = g;
    return TS_OK;
}

static int attach_one(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)k; (void)kl;
    tstbl_map *m = ctx;
    json_error_t je;
    json_t *rec = json_loadb(v, vl, 0, &je);
    if (!rec) return tsenv_error(m->env, TS_ERR_CORRUPT, "a migration task is malformed");
    const char *state = json_string_value(json_object_get(rec, "state"));
    if (json_array_size(json_object_get(rec, "garbage")) &&
        json_array_append(m->mig_garbage, json_object_get(rec, "id"))) {
        json_decref(rec);
        return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    }
    if (state && strcmp(state, "swapped") == 0) {
        int rc = json_array_append(m->mig_swapped, json_object_get(rec, "id"));
        json_decref(rec);
        return rc ? tsenv_error(m->env, TS_ERR_NOMEM, "out of memory") : TS_OK;
    }
    if (!state || strcmp(state, "running") != 0) { json_decref(rec); return TS_OK; }
    tstbl *t = tstbl_find(m, json_string_value(json_object_get(rec, "table")));
    if (!t || t->mig) {
        json_decref(rec);
        return tsenv_error(m->env, TS_ERR_CORRUPT, "a running migration task names a missing table");
    }
    tsmig_online *g;
    int rc = online_from_rec(m, rec, &g);
    if (!rc) {
        g->verbatim = tsmig_rows_verbatim(t->def, g->shadow->def, g->map);
        t->mig = g;
    }
    return rc;
}

int tsmig_attach(tstbl_map *m, tstx *tx)
{
    if ((!m->mig_swapped && !(m->mig_swapped = json_array())) ||
        (!m->mig_garbage && !(m->mig_garbage = json_array())))
        return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    json_array_clear(m->mig_swapped);
    json_array_clear(m->mig_garbage);
    uint8_t k[KCAP];
    return tsix_each_prefix(m->sys->catalog, tx, k, tssys_key(k, "migtask", NULL), attach_one, m);
}

/* ---- start ----------------------------------------------------------------- */

int tsmig_task_start(tstbl_map *m, tstx *tx, tstbl *old, tsd_table *nd, const long *map,
                     int lossy, json_t *entry, char *id_out, size_t id_cap)
{
    ts_env *env = m->env;
    if (old->mig) { tsd_table_free(nd); return tsmig_busy(m, old); }
    int64_t total = 0;
    size_t ncols = nd->ncols;
    int rc = tsmig_table_rows(m, tx, old, &total);
    tstbl *sh = NULL;
    if (!rc) rc = tstbl_build(m, tx, nd, 0, &sh); /* a number of its own, for its counts */
    else tsd_table_free(nd);
    json_t *jmap = json_array(), *rec = NULL;
    for (size_t c = 0; jmap && c < ncols; c++) json_array_append_new(jmap, json_integer(map[c]));
    if (!rc) rc = next_id(m, tx, id_out, id_cap);
    if (!rc) {
        rec = json_pack("{s:s, s:s, s:s, s:o, s:O, s:b, s:n, s:I, s:I, s:I, s:n, s:I}", "id", id_out,
                        "table", old->def->name, "state", "running", "shadow", tstbl_entry_json(sh),
                        "map", jmap, "allowLossy", lossy, "last", "processed", (json_int_t)0,
                        "total", (json_int_t)total, "rowsDropped", (json_int_t)0, "error",
                        "startedAt", (json_int_t)tsrow_now_ms());
        if (!rec) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    }
    json_decref(jmap);
    if (!rc) rc = rec_put(m, tx, id_out, rec);
    tsmig_online *g = NULL;
    if (!rc) {
        g = calloc(1, sizeof *g);
        long *mp = calloc(ncols + 1, sizeof *mp);
        if (!g || !mp) {
            free(g);
            free(mp);
            g = NULL;
            rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
        } else {
            memcpy(mp, map, ncols * sizeof *mp);
            snprintf(g->id, sizeof g->id, "%s", id_out);
            g->shadow = sh;
            g->map = mp;
            g->lossy = lossy;
            g->total = total;
            g->verbatim = tsmig_rows_verbatim(old->def, g->shadow->def, mp);
            g->rec = rec;
            rec = NULL;
            sh = NULL;
            old->mig = g;
        }
    }
    m->mig_dirty = 1; /* a rollback reloads the tasks from the catalog */
    json_decref(rec);
    tstbl_discard(sh);
    if (!rc) {
        json_object_set_new(entry, "task", json_string(id_out));
        json_object_set_new(entry, "rows", json_integer(total));
    }
    return rc;
}

/* ---- mirror hooks ------------------------------------------------------------ */

static int full_key(tsw *w, uint64_t space, const uint8_t *pk, size_t pkl, uint8_t *k, size_t *kl)
{
    size_t n = ts_key_int(k, TSROW_KEY_CAP, 0, (int64_t)space);
    if (n + pkl > TSROW_KEY_CAP) return tsenv_error(w->env, TS_ERR_RESOURCE, "primary key too long");
    memcpy(k + n, pk, pkl);
    *kl = n + pkl;
    return TS_OK;
}

int tsmig_mirror_put(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl,
                     const uint8_t *row, size_t len, int64_t expires)
{
    tsmig_online *g = t->mig;
    uint8_t k[TSROW_KEY_CAP];
    size_t kl = 0;
    int rc = full_key(w, space, pk, pkl, k, &kl);
    if (rc) return rc;
    /* behind the walk: stored converted now; ahead: only checked, the walk
     * converts it later */
    int behind = g->lastl && keycmp(k, kl, g->last, g->lastl) <= 0;
    tsmig_fails f = { 0, 0, "" };
    int on = w->undo_on;
    w->undo_on = 0; /* the old table's undo entries replay the mirror */
    rc = tsmig_copy_row(w, t, g->shadow, g->map, g->lossy, g->verbatim, space, row, len, expires,
                        behind, &f);
    w->undo_on = on;
    if (rc || !f.n || g->lossy) return rc;
    return tsenv_error(w->env, f.code, "%s (table '%s' is being migrated by task %s: writes must "
                       "also fit the new schema)", f.msg, t->def->name, g->id);
}

int tsmig_mirror_del(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl)
{
    tsmig_online *g = t->mig;
    uint8_t k[TSROW_KEY_CAP];
    size_t kl = 0;
    int rc = full_key(w, space, pk, pkl, k, &kl);
    if (rc || !g->lastl || keycmp(k, kl, g->last, g->lastl) > 0) return rc;
    int on = w->undo_on;
    w->undo_on = 0;
    rc = tsrow_del(w, g->shadow, space, pk, pkl);
    w->undo_on = on;
    return rc == TS_ERR_NOT_FOUND ? TS_OK : rc; /* a row lossy mode dropped */
}

/* ---- batches, swap and refusal ------------------------------------------------ */

static int save_progress(tstbl_map *m, tstx *tx, tsmig_online *g, const char *state)
{
    json_t *r = g->rec;
    json_t *last = g->lastl ? hex_of(g->last, g->lastl) : json_null();
    int bad = !last;
    bad = bad || json_object_set_new(r, "last", last);
    bad = bad || json_object_set_new(r, "processed", json_integer(g->processed));
    bad = bad || json_object_set_new(r, "total", json_integer(g->total > g->processed ? g->total : g->processed));
    bad = bad || json_object_set_new(r, "rowsDropped", json_integer(g->dropped));
    bad = bad || json_object_set_new(r, "state", json_string(state));
    if (strcmp(state, "running") != 0) {
        bad = bad || json_object_del(r, "shadow") || json_object_del(r, "map") ||
              json_object_del(r, "last");
        bad = bad || json_object_set_new(r, "finishedAt", json_integer(tsrow_now_ms()));
    }
    if (bad) return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    return rec_put(m, tx, g->id, r);
}

/* ---- replaced trees ---------------------------------------------------------
 * tsix_drop frees a whole tree in one transaction: for a table of a million
 * rows that holds the writer lock for seconds.  The trees a task replaces
 * (or its shadow, when it fails) are listed in the task record ("garbage")
 * and emptied a batch at a time by later steps, then dropped. */

static json_t *tree_of(uint64_t root, const char *module, const json_t *opts, int byvalue)
{
    return json_pack("{s:I, s:s, s:O?, s:b}", "root", (json_int_t)root, "module", module, "opts", opts,
                     "byValue", byvalue);
}

static int add_garbage(tstbl_map *m, tsmig_online *g, const tstbl *t)
{
    json_t *gb = json_object_get(g->rec, "garbage");
    if (!gb && (!(gb = json_array()) || json_object_set_new(g->rec, "garbage", gb)))
        return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    int bad = json_array_append_new(gb, tree_of(t->primary_root, TSSYS_INDEX_MODULE, NULL, 0));
    for (size_t i = 0; i < t->def->nindexes && !bad; i++) {
        /* the options the module opens it with (a vector index needs its
         * dimensions, not only its vectorConfig) */
        json_t *opts = NULL;
        int rc = tstbl_index_opts(m, t->def, i, &opts);
        if (rc) return rc;
        bad = json_array_append_new(gb, tree_of(t->roots[i], t->def->indexes[i].module, opts, 1));
        json_decref(opts);
    }
    if (!bad && t->ttl) bad = json_array_append_new(gb, tree_of(t->ttl_root, TSSYS_INDEX_MODULE, NULL, 0));
    if (!bad) bad = json_array_append_new(m->mig_garbage, json_string(g->id));
    return bad ? tsenv_error(m->env, TS_ERR_NOMEM, "out of memory") : TS_OK;
}

#define GARBAGE_CHUNK 256

/* Remove up to budget entries of tree e (*empty: it had no more, and is dropped). */
static int empty_some(tstbl_map *m, tstx *tx, const json_t *e, int64_t budget, int64_t *done, int *empty)
{
    *empty = 0;
    const char *module = json_string_value(json_object_get(e, "module"));
    const json_t *opts = json_object_get(e, "opts");
    if (json_is_null(opts)) opts = NULL;
    tsix *ix;
    int rc = tsix_open(m->env, m->reg, module ? module : "", opts,
                       (uint64_t)json_integer_value(json_object_get(e, "root")), "replaced tree", &ix);
    if (rc == TS_ERR_CONFIG || rc == TS_ERR_PLUGIN || rc == TS_ERR_VALIDATION || rc == TS_ERR_INVALID) {
        /* options the module refuses (a vector index recorded by a build
         * that kept only its vectorConfig): retrying cannot help, so the
         * tree's pages stay allocated and the task moves on */
        tsenv_log(m->env, TS_LOG_WARN, "a replaced %s tree cannot be opened to free it (%s); its "
                  "pages stay in use", module ? module : "?", tsenv_errmsg(m->env));
        tsenv_clear(m->env);
        *empty = 1;
        return TS_OK;
    }
    if (rc) return rc;
    int byvalue = json_is_true(json_object_get(e, "byValue"));
    if (strcmp(module, TSSYS_INDEX_MODULE) != 0) {
        *empty = 1; /* other modules: dropped at once */
        rc = tsix_drop(ix, tx);
        tsix_close(ix);
        return rc;
    }
    uint8_t (*keys)[TSROW_KEY_CAP] = malloc(GARBAGE_CHUNK * sizeof *keys);
    uint8_t (*vals)[TSROW_KEY_CAP] = malloc(GARBAGE_CHUNK * sizeof *vals);
    size_t kl[GARBAGE_CHUNK], vl[GARBAGE_CHUNK];
    if (!keys || !vals) rc = tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    while (!rc && *done < budget && !*empty) {
        size_t n = 0;
        tsix_cur c;
        if ((rc = tsix_cursor(ix, tx, &c))) break;
        for (rc = tsix_first(&c); rc == TS_OK && n < GARBAGE_CHUNK; rc = tsix_next(&c)) {
            const void *k, *v;
            size_t a, b;
            if ((rc = tsix_entry(&c, &k, &a, &v, &b))) break;
            if (a > TSROW_KEY_CAP || (byvalue && b > TSROW_KEY_CAP)) { rc = TS_ERR_CORRUPT; break; }
            memcpy(keys[n], k, a);
            kl[n] = a;
            vl[n] = byvalue ? b : 0;
            if (byvalue) memcpy(vals[n], v, b);
            n++;
        }
        tsix_cursor_close(&c);
        if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
        for (size_t i = 0; i < n && !rc; i++)
            rc = tsix_remove(ix, tx, keys[i], kl[i], byvalue ? vals[i] : NULL, vl[i]);
        *done += (int64_t)n;
        if (!rc && n < GARBAGE_CHUNK) {
            *empty = 1;
            rc = tsix_drop(ix, tx);
        }
    }
    free(keys);
    free(vals);
    tsix_close(ix);
    return rc;
}

/* Free up to budget entries of the first task's replaced trees. */
static int collect_garbage(tstbl_map *m, tstx *tx, int64_t budget)
{
    char id[ID_CAP];
    snprintf(id, sizeof id, "%s", json_string_value(json_array_get(m->mig_garbage, 0)));
    json_t *rec = NULL;
    m->mig_dirty = 1;
    int rc = rec_get(m, tx, id, &rec);
    json_t *gb = json_object_get(rec, "garbage");
    int64_t done = 0;
    while (!rc && done < budget && json_array_size(gb)) {
        int empty = 0;
        rc = empty_some(m, tx, json_array_get(gb, 0), budget, &done, &empty);
        if (!rc && empty) json_array_remove(gb, 0);
    }
    if (!rc && !json_array_size(gb)) {
        json_object_del(rec, "garbage");
        json_array_remove(m->mig_garbage, 0);
    }
    if (!rc) rc = rec_put(m, tx, id, rec);
    json_decref(rec);
    return rc;
}

/* The walk reached the end: the shadow becomes the table.  The task is
 * "swapped" (reported as running) until the next step marks it done, once
 * this commit is published to readers: whoever sees "done" then finds the
 * table under its new schema. */
static int finish(tstbl_map *m, tstx *tx, tstbl *t)
{
    tsmig_online *g = t->mig;
    tstbl *sh = g->shadow;
    /* the shadow's counts become the table's; its generator state stays */
    int rc = tstbl_flush_states(m, tx);
    tstbl_forget_states(m, sh->num);
    tstbl_forget_states(m, t->num);
    if (!rc) rc = tstbl_move_state(m, tx, "rows", sh->num, t->num);
    if (rc) return rc;
    t->mig = NULL;
    g->shadow = NULL;
    sh->num = t->num;
    g->total = g->processed;
    rc = add_garbage(m, g, t);
    if (!rc) rc = save_progress(m, tx, g, "swapped");
    if (!rc && json_array_append_new(m->mig_swapped, json_string(g->id)))
        rc = tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    if (!rc) rc = tstbl_unlink(m, tx, t, 0); /* its trees: garbage */
    if (!rc) rc = tstbl_install(m, tx, sh); /* frees sh on failure */
    else tstbl_discard(sh);
    tsmig_online_free(g);
    return rc;
}

/* A row cannot follow: the task fails and the table stays as it was. */
static int refuse(tstbl_map *m, tstx *tx, tstbl *t, const tsmig_fails *f)
{
    tsmig_online *g = t->mig;
    tstbl *sh = g->shadow;
    tstbl_forget_states(m, sh->num);
    int rc = add_garbage(m, g, sh);
    if (!rc) rc = tstbl_remove_state(m, tx, "rows", sh->num);
    if (rc) return rc;
    char msg[600];
    snprintf(msg, sizeof msg, "migration of table '%s' refused: a row cannot follow the change "
             "(%s); nothing was changed (migration.allowLossy drops such rows)", t->def->name, f->msg);
    json_object_set_new(g->rec, "error", json_pack("{s:i, s:s}", "code", f->code, "message", msg));
    t->mig = NULL;
    rc = save_progress(m, tx, g, "failed");
    tsmig_online_free(g);
    return rc;
}

/* Mark the swapped tasks done. */
static int mark_done(tstbl_map *m, tstx *tx)
{
    int rc = TS_OK;
    size_t i;
    json_t *id;
    m->mig_dirty = 1;
    json_array_foreach(m->mig_swapped, i, id) {
        json_t *rec = NULL;
        rc = rec_get(m, tx, json_string_value(id), &rec);
        if (!rc) rc = json_object_set_new(rec, "state", json_string("done"))
                      ? tsenv_error(m->env, TS_ERR_NOMEM, "out of memory") : TS_OK;
        if (!rc) rc = rec_put(m, tx, json_string_value(id), rec);
        json_decref(rec);
        if (rc) return rc;
    }
    json_array_clear(m->mig_swapped);
    return rc;
}

int tsmig_task_step(tstbl_map *m, tstx *tx, int64_t batch_rows, int *more)
{
    *more = 0;
    if (json_array_size(m->mig_swapped) || json_array_size(m->mig_garbage)) {
        int rc = json_array_size(m->mig_swapped) ? mark_done(m, tx) : collect_garbage(m, tx, batch_rows);
        if (!rc) *more = tsmig_running(m);
        return rc;
    }
    tstbl *t = NULL;
    for (size_t i = 0; i < m->n && !t; i++)
        if (m->t[i]->mig && !m->t[i]->pending) t = m->t[i];
    if (!t) return TS_OK;
    tsmig_online *g = t->mig;
    m->mig_dirty = 1; /* a rollback reloads the position from the catalog */
    tsw w;
    tsw_init(&w, m, tx, 0, 0);
    tsix_cur c;
    int rc = tsix_cursor(t->primary, tx, &c);
    if (rc) return rc;
    int64_t n = 0;
    tsmig_fails f = { 0, 0, "" };
    rc = g->lastl ? tsix_seek(&c, g->last, g->lastl, TS_SEEK_GT) : tsix_first(&c);
    for (; rc == TS_OK && n < batch_rows; rc = tsix_next(&c)) {
        const void *k, *v;
        size_t kl, vl, off = 0;
        if ((rc = tsix_entry(&c, &k, &kl, &v, &vl))) break;
        ts_key_item sp;
        if (ts_key_next(k, kl, &off, &sp) != 1 || kl > sizeof g->last) { rc = TS_ERR_CORRUPT; break; }
        const uint8_t *row = v;
        size_t len = vl;
        int64_t expires = 0;
        if (t->ttl) {
            if (len < 8) { rc = TS_ERR_CORRUPT; break; }
            expires = (int64_t)get64(row);
            row += 8;
            len -= 8;
        }
        int64_t before = f.n;
        rc = tsmig_copy_row(&w, t, g->shadow, g->map, g->lossy, g->verbatim,
                            sp.i < 0 ? 0 : (uint64_t)sp.i, row, len, expires, 1, &f);
        if (rc) break;
        memcpy(g->last, k, kl);
        g->lastl = kl;
        n++;
        if (f.n > before && !g->lossy) break;
    }
    tsix_cursor_close(&c);
    tsw_done(&w);
    int end = rc == TS_ERR_NOT_FOUND;
    if (end) rc = TS_OK;
    if (rc) return rc;
    g->processed += n;
    g->dropped += f.n;
    if (f.n && !g->lossy) rc = refuse(m, tx, t, &f);
    else if (end) rc = finish(m, tx, t);
    else {
        int64_t rows = 0;
        if (!tsmig_table_rows(m, tx, t, &rows)) g->total = rows;
        rc = save_progress(m, tx, g, "running");
    }
    if (!rc) *more = tsmig_running(m);
    return rc;
}

int tsmig_task_status(tstbl_map *m, tstx *tx, const char *id, json_t **out_new)
{
    *out_new = NULL;
    json_t *rec;
    int rc = rec_get(m, tx, id, &rec);
    if (rc == TS_ERR_NOT_FOUND)
        return tsenv_error(m->env, rc, "no migration task '%s'", id);
    if (rc) return rc;
    const char *state = json_string_value(json_object_get(rec, "state"));
    int64_t done = json_integer_value(json_object_get(rec, "processed"));
    int64_t total = json_integer_value(json_object_get(rec, "total"));
    int running = state && (strcmp(state, "running") == 0 || strcmp(state, "swapped") == 0);
    int64_t pct = !running ? 100 : total > 0 ? done * 100 / total : 0;
    if (running && pct > 99) pct = 99;
    if (state && strcmp(state, "failed") == 0) pct = total > 0 ? done * 100 / total : 0;
    json_t *err = json_object_get(rec, "error");
    *out_new = json_pack("{s:O, s:O, s:s, s:I, s:I, s:I, s:O, s:O, s:b}", "id", json_object_get(rec, "id"),
                         "table", json_object_get(rec, "table"), "state", running ? "running" : state ? state : "unknown",
                         "progressPercentage", (json_int_t)pct, "processed", (json_int_t)done,
                         "total", (json_int_t)total, "rowsDropped",
                         json_object_get(rec, "rowsDropped"), "error", err ? err : json_null(),
                         "cleanupPending", json_array_size(json_object_get(rec, "garbage")) > 0);
    json_decref(rec);
    return *out_new ? TS_OK : tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
}
