/*
 * ngh_keys.c - the primary keys (the entries' values) of an ngh index:
 * key slots and the packing of integer keys, the key hash that finds the
 * nodes of a key (format 2), the btree map (long keys; every key in format
 * 1), and finding the entries of a (vector, key) for insert and remove.
 * docs/ngh.md, "Primary keys and the key hash".
 */
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "ngh.h"

/* Format 2 keeps each node's key in its slot; the btree map (a btree index
 * of the kernel's bundled `btree` module, rooted in the meta page) keeps
 *   'N' id (u32 big endian)                  -> pk   keys too long for a slot
 *   'F' id                                   -> ""   deleted ids (ngh.c)
 * and format 1 indexes (before the slots) every key, with
 *   'K' hash(vector) (8) hash(pk) (8)       -> id (u32 big endian)
 * to find nodes; they are read and written as they are. */

/* ---- slots and packing ------------------------------------------------------- */

/* Keys made of integer components (what the kernel's vector entries carry:
 * the space and an integer primary key, each TS_KEY_INT and 8 bytes) are
 * kept in a slot packed, each component as the LEB128 varint of its
 * zigzagged value: 18 bytes become 2 to 6.  Returns the packed length, or
 * 0 when key is not such a key or does not fit cap. */
static size_t pk_pack(const uint8_t *key, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (!len || len % 9 || len / 9 > sizeof ((ngh_op *)0)->pkbuf / 9) return 0;
    for (size_t i = 0; i < len; i += 9) {
        if (key[i] != TS_KEY_INT) return 0;
        uint64_t u = 0;
        for (int b = 1; b <= 8; b++) u = u << 8 | key[i + b];
        uint64_t s = u ^ 0x8000000000000000ull;      /* the signed value's bits */
        uint64_t z = (s << 1) ^ (0 - (s >> 63));      /* zigzag */
        do {
            if (n == cap) return 0;
            out[n++] = (uint8_t)((z & 0x7F) | (z > 0x7F ? 0x80 : 0));
            z >>= 7;
        } while (z);
    }
    return n;
}

/* The key pk_pack packed: into buf (room for 64 components); its length,
 * 0 when the bytes are not a packing. */
static size_t pk_unpack(const uint8_t *p, size_t n, uint8_t *buf, size_t cap)
{
    size_t len = 0, i = 0;
    while (i < n) {
        uint64_t z = 0;
        for (int sh = 0;; sh += 7) {
            if (i == n || sh > 63) return 0;
            uint8_t b = p[i++];
            if (sh == 63 && (b & 0x7E)) return 0; /* beyond 64 bits: not a packing */
            z |= (uint64_t)(b & 0x7F) << sh;
            if (!(b & 0x80)) break;
        }
        if (len + 9 > cap) return 0;
        int64_t v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
        uint64_t u = (uint64_t)v ^ 0x8000000000000000ull;
        buf[len] = TS_KEY_INT;
        for (int b = 8; b >= 1; b--, u >>= 8) buf[len + (size_t)b] = (uint8_t)u;
        len += 9;
    }
    return len;
}

/* The primary key of node id (pointers valid until o->bcur moves, the
 * operation relaxes its pins or re-gets the page for writing, or the next
 * pk_of). */
int ngh_pk_of(ngh_op *o, uint32_t id, const void **pk, size_t *pl)
{
    ngh_idx *ix = o->ix;
    int rc;
    if (o->m.pkw) {
        uint8_t *slot;
        if ((rc = ngh_pk_slot(o, id, 0, &slot))) return rc;
        uint8_t lb = slot[NGH_SLOT_KEY - 1];
        if (lb != NGH_PK_IN_MAP) {
            uint32_t n = lb & ~NGH_PK_PACKED;
            if (n > o->m.pkw - NGH_SLOT_KEY) return ngh_corrupt(o, "bad primary-key slot");
            if (!(lb & NGH_PK_PACKED)) {
                *pk = slot + NGH_SLOT_KEY;
                *pl = n;
                return TS_OK;
            }
            *pl = pk_unpack(slot + NGH_SLOT_KEY, n, o->pkbuf, sizeof o->pkbuf);
            *pk = o->pkbuf;
            return *pl ? TS_OK : ngh_corrupt(o, "bad packed primary key");
        }
    }
    if (ngh_snap_pk(o, id, pk, pl)) return TS_OK;
    if (!o->bcur && (rc = ix->btv->cursor_open(ix->bt, o->tx, &o->bcur))) return rc;
    uint8_t k[5];
    ngh_nkey(k, id);
    rc = ix->btv->seek(o->bcur, k, 5, TS_SEEK_EQ);
    if (rc == TS_ERR_NOT_FOUND) return ngh_corrupt(o, "a live node without its primary key");
    const void *ek;
    size_t ekl;
    if (!rc) rc = ix->btv->entry(o->bcur, &ek, &ekl, pk, pl);
    if (!rc) ngh_snap_pk_fill(o, id, pk, pl);
    return rc;
}

/* ---- the key hash (format 2) ----------------------------------------------
 *
 * Which nodes hold a primary key: linear hashing (Litwin) over chains that
 * run through the nodes' key slots.  Bucket b's head is in the hash array;
 * a node's slot holds the next node of its chain.  There are hpp << hlevel
 * buckets plus the hsplit already split; an insert that makes the live
 * nodes outnumber the buckets splits one, so chains stay about one node
 * long and growing never rehashes more than one chain at a time. */

static uint32_t key_hash(const void *pk, size_t pl) { return (uint32_t)(ngh_hash_bytes(pk, pl, 2) >> 32); }

static uint64_t bucket_of(const ngh_meta *m, uint32_t h)
{
    uint64_t n = ngh_hash_base(m), b = h % n;
    return b < m->hsplit ? h % (2 * n) : b;
}

static int head_get(ngh_op *o, uint64_t b, uint32_t *v)
{
    uint8_t *p;
    int rc = ngh_bucket(o, b, 0, &p);
    *v = 0;
    if (!rc && p) memcpy(v, p, 4);
    if (!rc && *v > o->m.count) rc = ngh_corrupt(o, "a key-hash bucket points outside the node array");
    return rc;
}

static int head_set(ngh_op *o, uint64_t b, uint32_t v)
{
    uint8_t *p;
    int rc = ngh_bucket(o, b, 1, &p);
    if (!rc) memcpy(p, &v, 4);
    return rc;
}

/* The next node + 1 of node id's chain. */
static int next_get(ngh_op *o, uint32_t id, uint32_t *v)
{
    uint8_t *slot;
    int rc = ngh_pk_slot(o, id, 0, &slot);
    if (!rc) memcpy(v, slot, 4);
    if (!rc && *v > o->m.count) rc = ngh_corrupt(o, "a key-hash chain leaves the node array");
    return rc;
}

static int next_set(ngh_op *o, uint32_t id, uint32_t v)
{
    uint8_t *slot;
    int rc = ngh_pk_slot(o, id, 1, &slot);
    if (!rc) memcpy(slot, &v, 4);
    return rc;
}

/* Split bucket hsplit: its chain is shared between it and its image. */
static int hash_split(ngh_op *o)
{
    ngh_meta *m = &o->m;
    uint64_t n = ngh_hash_base(m), from = m->hsplit, to = from + n;
    uint32_t cur, lists[2] = { 0, 0 };
    uint8_t *p;
    /* room for the image first: the one step likely to fail (a page
     * allocation) then fails before any link has changed */
    int rc = ngh_bucket(o, to, 1, &p);
    if (!rc) rc = head_get(o, from, &cur);
    for (uint32_t steps = 0; !rc && cur; steps++) {
        uint32_t id = cur - 1, next;
        const void *pk;
        size_t pl;
        if (steps > m->count) return ngh_corrupt(o, "a key-hash chain loops");
        if ((rc = next_get(o, id, &next)) || (rc = ngh_pk_of(o, id, &pk, &pl))) break;
        uint32_t h = key_hash(pk, pl);
        if (h % n != from) return ngh_corrupt(o, "a key in the wrong key-hash bucket");
        int side = h % (2 * n) != from;
        if ((rc = next_set(o, id, lists[side]))) break;
        lists[side] = cur;
        cur = next;
    }
    if (!rc) rc = head_set(o, from, lists[0]);
    if (!rc) rc = head_set(o, to, lists[1]);
    if (rc) return rc;
    if (++m->hsplit == n) {
        m->hlevel++;
        m->hsplit = 0;
    }
    return TS_OK;
}

static int hash_add(ngh_op *o, uint32_t id, uint32_t h)
{
    uint64_t b = bucket_of(&o->m, h);
    uint32_t head;
    int rc = head_get(o, b, &head);
    if (!rc) rc = next_set(o, id, head);
    if (!rc) rc = head_set(o, b, id + 1);
    uint64_t nb = ngh_hash_base(&o->m) + o->m.hsplit;
    if (!rc && o->m.live > nb && o->m.hlevel < 31) rc = hash_split(o);
    return rc;
}

static int hash_unlink(ngh_op *o, uint32_t id, uint32_t h)
{
    uint64_t b = bucket_of(&o->m, h);
    uint32_t cur, prev = 0, next;
    int rc = head_get(o, b, &cur);
    for (uint32_t steps = 0; !rc && cur && cur != id + 1; steps++) {
        if (steps > o->m.count) return ngh_corrupt(o, "a key-hash chain loops");
        prev = cur;
        rc = next_get(o, cur - 1, &cur);
    }
    if (rc) return rc;
    if (!cur) return ngh_corrupt(o, "a live node missing from its key-hash chain");
    if ((rc = next_get(o, id, &next))) return rc;
    return prev ? next_set(o, prev - 1, next) : head_set(o, b, next);
}

/* Packed keys are 2 to 6 bytes: a loop, not a call. */
static inline int same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++) d |= a[i] ^ b[i];
    return !d;
}

/* Whether the key slot holds val (packed: val's pk_pack into the slot's
 * room, pn bytes, or pn 0): 1 or 0 in *match.  Each slot is compared as it
 * is stored: a key is packed in its slot exactly when pk_pack packs it
 * into the slot's room, so val is packed once and compared byte for byte,
 * never unpacked (the exact searches of filtered queries look up thousands
 * of keys a query). */
static int slot_match(ngh_op *o, uint32_t id, const uint8_t *slot, const void *val, size_t vlen,
                      const uint8_t *packed, size_t pn, int *match)
{
    size_t room = o->m.pkw - NGH_SLOT_KEY;
    uint8_t lb = slot[NGH_SLOT_KEY - 1];
    *match = 0;
    if (lb == NGH_PK_IN_MAP) {
        /* only keys too long for the slot are in the map */
        const void *pk;
        size_t pl;
        if (!pn && vlen > room) {
            int rc = ngh_pk_of(o, id, &pk, &pl);
            if (rc) return rc;
            *match = pl == vlen && !memcmp(pk, val, vlen);
        }
    } else if ((size_t)(lb & ~NGH_PK_PACKED) > room) {
        return ngh_corrupt(o, "bad primary-key slot");
    } else if (lb & NGH_PK_PACKED) {
        *match = pn && (lb & ~NGH_PK_PACKED) == pn && same_bytes(slot + NGH_SLOT_KEY, packed, pn);
    } else {
        *match = !pn && lb == vlen && (!vlen || !memcmp(slot + NGH_SLOT_KEY, val, vlen));
    }
    return TS_OK;
}

static size_t pack_for_slot(const ngh_meta *m, const void *val, size_t vlen, uint8_t packed[64])
{
    size_t room = m->pkw - NGH_SLOT_KEY;
    return pk_pack(val, vlen, packed, room < 64 ? room : 64);
}

/* The live nodes whose primary key is val: their ids in *ids (grown with
 * the host allocator; the caller frees it). */
static int hash_find(ngh_op *o, const void *val, size_t vlen, uint32_t **ids, uint32_t *n, uint32_t *cap)
{
    uint8_t packed[64];
    size_t pn = pack_for_slot(&o->m, val, vlen, packed);
    uint32_t cur;
    int rc = head_get(o, bucket_of(&o->m, key_hash(val, vlen)), &cur);
    for (uint32_t steps = 0; !rc && cur; steps++) {
        uint32_t id = cur - 1;
        uint8_t *slot;
        int match;
        if (steps > o->m.count) return ngh_corrupt(o, "a key-hash chain loops");
        if ((rc = ngh_pk_slot(o, id, 0, &slot))) return rc;
        memcpy(&cur, slot, 4);
        if (cur > o->m.count) return ngh_corrupt(o, "a key-hash chain leaves the node array");
        if ((rc = slot_match(o, id, slot, val, vlen, packed, pn, &match))) return rc;
        if (!match) continue;
        if (*n == *cap) {
            uint32_t nc = *cap ? 2 * *cap : 16;
            uint32_t *g = o->ix->host->realloc(*ids, (size_t)nc * sizeof *g);
            if (!g) return o->ix->host->error(o->ix->env, TS_ERR_NOMEM, "ngh: out of memory");
            *ids = g;
            *cap = nc;
        }
        (*ids)[(*n)++] = id;
    }
    return rc;
}

/* Tables mostly insert rows in key order (sequential or time-based
 * keys), so a node's id tends to follow its key: from the last key found,
 * a key whose only difference is its last 8 bytes (an integer's) predicts
 * the node that many ids on.  Whether the guess holds is checked like any
 * slot, plus the node being live (a deleted node's slot keeps its key). */
static uint64_t last8(const uint8_t *v, size_t l)
{
    uint64_t u = 0;
    for (size_t b = l - 8; b < l; b++) u = u << 8 | v[b];
    return u;
}

static int guess_id(const ngh_op *o, const uint8_t *v, size_t l, uint32_t *id)
{
    if (!o->hint_len || l != o->hint_len || l < 9 || memcmp(v, o->hint_pre, l - 8)) return 0;
    uint64_t g = (uint64_t)o->hint_id + (last8(v, l) - o->hint_last);   /* modulo 2^64: a signed step */
    if (g >= o->m.count) return 0;
    *id = (uint32_t)g;
    return 1;
}

static void hint_set(ngh_op *o, const uint8_t *v, size_t l, uint32_t id)
{
    if (l < 9 || l - 8 > sizeof o->hint_pre) return;
    memcpy(o->hint_pre, v, l - 8);
    o->hint_last = last8(v, l);
    o->hint_len = (uint32_t)l;
    o->hint_id = id;
}

/* ---- runs -------------------------------------------------------------------
 *
 * A guess still reads the guessed node's key slot, a cache miss of its own
 * (the record's last line at 128-d float32, or a page of its own),
 * and the exact pass of a filtered search looks up thousands of keys.  A
 * read cache therefore keeps, once its readers have looked up 4 count
 * keys, the runs of live
 * nodes whose keys count up with their ids: a key inside a run is its
 * node, with no slot read.  Made by one pass over the nodes' flags and
 * slots; not kept when the runs average fewer than 16 nodes (keys not
 * inserted in order).  A key outside every run is looked up as before, so
 * a run only ever saves work.
 *
 * Why the runs outlive their generation: made again for every committed
 * state, they were gone after each commit to a table searched with
 * filters, and made again only after another 4 count lookups, by a pass
 * of seconds at 1M nodes, in some reader's call.  When the read cache
 * moves to a later state (ngh_graph.c, snap_advance and snap_inherit) its
 * runs go along: the ids whose deleted flag or key slot a page written
 * since may have changed become stale, and a key whose run points at a
 * stale id is looked up as if no run had it.  Once the keys the runs did
 * not answer (stale, or appended since) pass 4 count + 64, a pass makes
 * the runs again, reading only the stale and appended nodes: the others
 * keep the keys the old runs give them. */
#define NGH_RUNS_MIN_AVG 16

static int run_cmp(const void *a, const void *b)
{
    uint64_t x = ((const ngh_run *)a)->k0, y = ((const ngh_run *)b)->k0;
    return x < y ? -1 : x > y;
}

static int run_cmp_id(const void *a, const void *b)
{
    uint32_t x = ((const ngh_run *)a)->id0, y = ((const ngh_run *)b)->id0;
    return x < y ? -1 : x > y;
}

/* Of runs old, made at an earlier state (NULL: none): the key node id
 * still has by them (1, *k), or 0 when it had none (deleted, a long key,
 * another length or prefix) or the node must be read again (stale, or
 * appended since).  byid: old's runs by first id, *ri a cursor into them
 * (ids asked in increasing order). */
static int runs_known(const ngh_runs *old, const ngh_run *byid, size_t *ri, uint32_t id, uint64_t *k,
                      int *unchanged)
{
    *unchanged = old && id < old->nids && !(old->stale && (old->stale[id >> 3] >> (id & 7) & 1));
    if (!*unchanged) return 0;
    while (*ri < old->n && byid[*ri].id0 + byid[*ri].len <= id) (*ri)++;
    if (*ri == old->n || byid[*ri].id0 > id) return 0;
    *k = byid[*ri].k0 + (id - byid[*ri].id0);
    return 1;
}

/* The runs of o's generation into *out (NULL: none worth keeping).  With
 * old, the runs of an earlier state of this cache: the nodes they vouch
 * for (not stale, below their nids) are not read again, so the pass reads
 * only the pages of nodes written or appended since. */
static int runs_build(ngh_op *o, const ngh_runs *old, ngh_runs **out)
{
    ngh_idx *ix = o->ix;
    uint32_t count = o->m.count, cap = count / NGH_RUNS_MIN_AVG + 1, n = 0;
    uint64_t prev = 0;
    int open = 0, rc = TS_OK;
    *out = NULL;
    ngh_runs *rs = ix->host->alloc(sizeof *rs + (size_t)cap * sizeof(ngh_run));
    ngh_run *byid = old && old->n ? ix->host->alloc((size_t)old->n * sizeof *byid) : NULL;
    if (!rs || (old && old->n && !byid)) {
        ix->host->free(rs);
        ix->host->free(byid);
        return TS_OK;   /* a cache: no memory, no runs */
    }
    rs->plen = 0;
    rs->nids = count;
    rs->stale = NULL;
    rs->older = NULL;
    if (byid) {
        memcpy(byid, old->r, (size_t)old->n * sizeof *byid);
        qsort(byid, old->n, sizeof *byid, run_cmp_id);
        rs->plen = old->plen;
        memcpy(rs->pre, old->pre, sizeof rs->pre);
    }
    size_t ri = 0;
    for (uint32_t id = 0; id < count && !rc; id++) {
        const void *pk;
        size_t pl;
        uint8_t *slot, *rec;
        uint64_t k;
        int unchanged;
        if (runs_known(byid ? old : NULL, byid, &ri, id, &k, &unchanged)) goto have_key;
        if (unchanged) {   /* in no run then, nor now */
            open = 0;
            continue;
        }
        if (id % 64 == 0) ngh_op_relax(o);
        if ((rc = ngh_node(o, id, 0, &rec)) || (rc = ngh_pk_slot(o, id, 0, &slot))) break;
        /* deleted nodes keep their keys in their slots: not in runs (the
         * key may be inserted again at another node); long keys are in the
         * map */
        if ((rec[NR_FLAGS] & NR_DELETED) || slot[NGH_SLOT_KEY - 1] == NGH_PK_IN_MAP) {
            open = 0;
            continue;
        }
        if ((rc = ngh_pk_of(o, id, &pk, &pl))) break;
        if (pl < 8 || pl - 8 > sizeof rs->pre) {
            open = 0;
            continue;
        }
        if (!rs->plen) {
            rs->plen = (uint32_t)pl;
            memcpy(rs->pre, pk, pl - 8);
        }
        if (pl != rs->plen || !same_bytes(pk, rs->pre, pl - 8)) {
            open = 0;
            continue;
        }
        k = last8(pk, pl);
    have_key:
        if (open && k == prev + 1) {
            rs->r[n - 1].len++;
        } else if (n < cap) {
            rs->r[n++] = (ngh_run){ .k0 = k, .id0 = id, .len = 1 };
            open = 1;
        } else {
            n = 0;   /* too many short runs: keys not in insertion order */
            break;
        }
        prev = k;
    }
    ix->host->free(byid);
    if (rc || !n) {
        ix->host->free(rs);
        return rc;
    }
    qsort(rs->r, n, sizeof rs->r[0], run_cmp);
    /* runs can overlap (the same key at two live nodes, which only callers
     * other than the kernel make): the furthest end so far, so that a
     * lookup steps back over runs that end before its key */
    uint64_t end = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t e = rs->r[i].k0 + rs->r[i].len;
        if (e > end) end = e;
        rs->r[i].end = end;
    }
    rs->n = n;
    ngh_runs *fit = ix->host->realloc(rs, sizeof *rs + (size_t)n * sizeof(ngh_run));
    *out = fit ? fit : rs;
    return TS_OK;
}

size_t ngh_runs_bytes(const ngh_runs *rs)
{
    size_t b = 0;
    for (; rs; rs = rs->older)
        b += sizeof *rs + (size_t)rs->n * sizeof(ngh_run) + (rs->stale ? ((size_t)rs->nids + 7) / 8 : 0);
    return b;
}

void ngh_runs_free(ngh_idx *ix, ngh_runs *rs)
{
    while (rs) {
        ngh_runs *o = rs->older;
        ix->host->free(rs->stale);
        ix->host->free(rs);
        rs = o;
    }
}

ngh_runs *ngh_runs_copy(ngh_idx *ix, const ngh_runs *rs)
{
    size_t b = sizeof *rs + (size_t)rs->n * sizeof(ngh_run), sb = ((size_t)rs->nids + 7) / 8;
    ngh_runs *c = ix->host->alloc(b);
    if (!c) return NULL;
    memcpy(c, rs, b);
    c->older = NULL;
    c->stale = NULL;
    if (rs->stale && !(c->stale = ix->host->alloc(sb))) {
        ix->host->free(c);
        return NULL;
    }
    if (rs->stale) memcpy(c->stale, rs->stale, sb);
    return c;
}

int ngh_runs_stale(ngh_idx *ix, ngh_runs *rs, uint32_t id0, uint32_t n)
{
    if (id0 >= rs->nids) return TS_OK;
    if (n > rs->nids - id0) n = rs->nids - id0;
    if (!rs->stale && !(rs->stale = ix->host->calloc(((size_t)rs->nids + 7) / 8, 1))) return TS_ERR_NOMEM;
    for (uint32_t id = id0; id < id0 + n; id++) rs->stale[id >> 3] |= (uint8_t)(1u << (id & 7));
    return TS_OK;
}

/* Node id of key v by the runs; 0 when no run has it, or when the run's
 * node is stale. */
static int runs_find(const ngh_runs *rs, const uint8_t *v, size_t l, uint32_t *id)
{
    /* a few bytes (the space): inline, not a call per key */
    if (l != rs->plen || !same_bytes(v, rs->pre, l - 8)) return 0;
    uint64_t k = last8(v, l);
    size_t lo = 0, hi = rs->n;
    while (lo < hi) {   /* the last run starting at or below k */
        size_t mid = lo + (hi - lo) / 2;
        if (rs->r[mid].k0 <= k) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i > 0 && rs->r[i - 1].end > k; i--)
        if (k - rs->r[i - 1].k0 < rs->r[i - 1].len) {
            uint32_t g = rs->r[i - 1].id0 + (uint32_t)(k - rs->r[i - 1].k0);
            if (rs->stale && (rs->stale[g >> 3] >> (g & 7) & 1)) return 0;
            *id = g;
            return 1;
        }
    return 0;
}

/* The runs of o's read cache (NULL: none, or not yet), made by the call
 * whose lookups bring the cache's total past 4 count + 64, and made again
 * by the one whose lookups the runs did not answer bring theirs there,
 * once the state has changed since they were made (stale ids, or nodes
 * appended).  The first pass reads every node page (1M nodes: 2.5-3.6 s
 * when most pages must come from the file, against ~0.13 us a lookup), so
 * only a cache that is searched this much pays it, in that one reader's
 * call; a pass that makes them again reads only the nodes written or
 * appended since (runs_build from the old runs).  Other readers go on with
 * the old runs meanwhile.  A cache: a pass that
 * fails (memory, a bad page the lookups themselves may never touch)
 * leaves none, or the old runs. */
static const ngh_runs *runs_of(ngh_op *o, size_t n)
{
    ngh_snap *sn = o->snap;
    if (!sn) return NULL;
    uint64_t due = 4 * (uint64_t)o->m.count + 64;
    int want = 0;
    ngh_runs *cur = NULL;
    if (atomic_load_explicit(&sn->runs_state, memory_order_acquire) == 2) {
        cur = atomic_load_explicit(&sn->runs, memory_order_acquire);
        if (!cur || (!cur->stale && cur->nids == o->m.count) ||
            atomic_load_explicit(&sn->misses, memory_order_relaxed) < due)
            return cur;
        want = 2;   /* the state moved on, and the runs miss too often: made again */
    } else if (atomic_fetch_add_explicit(&sn->finds, n, memory_order_relaxed) + n < due) {
        /* not yet, or being made again (the old runs stay meanwhile) */
        return atomic_load_explicit(&sn->runs, memory_order_acquire);
    }
    if (!atomic_compare_exchange_strong_explicit(&sn->runs_state, &want, 1, memory_order_acq_rel,
                                                 memory_order_acquire))
        return atomic_load_explicit(&sn->runs, memory_order_acquire);   /* another reader is at it */
    if (want == 2 && (atomic_load_explicit(&sn->runs, memory_order_acquire) != cur ||
                      atomic_load_explicit(&sn->misses, memory_order_relaxed) < due)) {
        /* another reader made them again since this one looked */
        atomic_store_explicit(&sn->runs_state, 2, memory_order_release);
        return atomic_load_explicit(&sn->runs, memory_order_acquire);
    }
    ngh_runs *rs = NULL;
    size_t bytes = 0;
    if (runs_build(o, want == 2 ? cur : NULL, &rs)) rs = NULL;
    if (rs) bytes = ngh_runs_bytes(rs);
    if (rs && atomic_load_explicit(&sn->bytes, memory_order_relaxed) + bytes > o->ix->cache_bytes) {
        o->ix->host->free(rs);   /* the cache's bound (cacheBytes) */
        rs = NULL;
    }
    if (rs) {
        /* readers of this cache may be inside the old runs: kept until the
         * cache is freed or moved */
        rs->older = cur;
        atomic_fetch_add_explicit(&sn->bytes, bytes, memory_order_relaxed);
        atomic_store_explicit(&sn->runs, rs, memory_order_release);
    } else if (cur) {
        /* the keys no longer follow the ids (or no memory): no runs for
         * this cache, the old ones kept aside for readers inside them */
        ngh_runs *t = cur;
        while (t->older) t = t->older;
        t->older = sn->runs_dead;
        sn->runs_dead = cur;
        atomic_store_explicit(&sn->runs, NULL, memory_order_release);
    }
    atomic_store_explicit(&sn->misses, 0, memory_order_relaxed);
    atomic_store_explicit(&sn->runs_state, 2, memory_order_release);
    return rs;
}

/* Looked up one at a time, each key waits on its cache misses in turn (a
 * guessed node's slot, or its bucket, then each slot of its chain).  Here
 * the keys of a batch advance together a step a round, each step's line
 * fetched ahead during the round before, so their misses overlap. */
enum { FIND_BUCKET, FIND_CHAIN, FIND_GUESS };

/* Point *at at val's bucket (NULL: not reached yet) and fetch it ahead. */
static int fetch_bucket(ngh_op *o, const void *val, size_t vlen, uint8_t **at)
{
    int rc = ngh_bucket(o, bucket_of(&o->m, key_hash(val, vlen)), 0, at);
    if (!rc && *at) __builtin_prefetch(*at);
    return rc;
}

/* Point *at at node id's key slot and fetch its key's line ahead. */
static int fetch_slot(ngh_op *o, uint32_t id, uint8_t **at)
{
    int rc = ngh_pk_slot(o, id, 0, at);
    if (!rc) __builtin_prefetch(*at + NGH_SLOT_KEY - 1);
    return rc;
}

int ngh_pk_find_many(ngh_op *o, size_t n, const void *const *vals, const size_t *vlens, uint32_t *ids)
{
    if (!o->m.pkw) return TS_ERR_UNSUPPORTED;
    if (n > NGH_FIND_BATCH) return TS_ERR_INVALID;
    uint8_t *at[NGH_FIND_BATCH], *rec[NGH_FIND_BATCH], packed[NGH_FIND_BATCH][64];
    uint32_t cur[NGH_FIND_BATCH];
    uint8_t pn[NGH_FIND_BATCH], st[NGH_FIND_BATCH], live[NGH_FIND_BATCH];
    size_t nl = 0, last = n;
    const ngh_runs *runs = runs_of(o, n);
    uint32_t missed = 0;
    int rc = TS_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t g;
        ids[i] = NGH_NO_ID;
        if (runs && runs_find(runs, vals[i], vlens[i], &g)) {
            ids[i] = g;   /* a live node of this generation holding the key */
            last = i;
            continue;
        }
        missed += runs != NULL;
        if (guess_id(o, vals[i], vlens[i], &g)) {
            st[i] = FIND_GUESS;
            cur[i] = g + 1;
            if (!(rc = fetch_slot(o, g, &at[i])) && !(rc = ngh_node(o, g, 0, &rec[i])))
                __builtin_prefetch(rec[i] + NR_FLAGS);
        } else {
            st[i] = FIND_BUCKET;
            rc = fetch_bucket(o, vals[i], vlens[i], &at[i]);
        }
        pn[i] = (uint8_t)pack_for_slot(&o->m, vals[i], vlens[i], packed[i]);
        live[nl++] = (uint8_t)i;
    }
    if (missed) atomic_fetch_add_explicit(&o->snap->misses, missed, memory_order_relaxed);
    for (uint32_t round = 0; nl && !rc; round++) {
        if (round > (uint64_t)o->m.count + 2) return ngh_corrupt(o, "a key-hash chain loops");
        size_t keep = 0;
        for (size_t j = 0; j < nl && !rc; j++) {
            size_t i = live[j];
            if (st[i] == FIND_BUCKET) {
                uint32_t head = 0;
                if (at[i]) memcpy(&head, at[i], 4);
                if (head > o->m.count) return ngh_corrupt(o, "a key-hash bucket points outside the node array");
                if (!head) continue;
                st[i] = FIND_CHAIN;
                cur[i] = head;
                rc = fetch_slot(o, head - 1, &at[i]);
                live[keep++] = (uint8_t)i;
                continue;
            }
            uint32_t id = cur[i] - 1, next;
            int match = 0;
            /* a deleted node's key may be gone from the map: not compared */
            if ((st[i] != FIND_GUESS || !(rec[i][NR_FLAGS] & NR_DELETED)) &&
                (rc = slot_match(o, id, at[i], vals[i], vlens[i], packed[i], pn[i], &match)))
                break;
            if (st[i] == FIND_GUESS) {
                if (match) {
                    ids[i] = id;
                    last = i;
                    continue;
                }
                st[i] = FIND_BUCKET;   /* a wrong guess: the key hash after all */
                rc = fetch_bucket(o, vals[i], vlens[i], &at[i]);
                live[keep++] = (uint8_t)i;
                continue;
            }
            memcpy(&next, at[i], 4);
            if (next > o->m.count) return ngh_corrupt(o, "a key-hash chain leaves the node array");
            if (match) {
                ids[i] = id;
                last = i;
            } else if (next) {
                cur[i] = next;
                rc = fetch_slot(o, next - 1, &at[i]);
                live[keep++] = (uint8_t)i;
            }
        }
        nl = keep;
    }
    if (!rc && last < n) hint_set(o, vals[last], vlens[last], ids[last]);
    return rc;
}

/* Record node id's primary key: its slot and the key hash, or (too long
 * for the slot) the map; format 1: the map's 'N' and 'K' entries. */
int ngh_pk_put(ngh_op *o, uint32_t id, const void *key, size_t klen, const void *val, size_t vlen)
{
    ngh_idx *ix = o->ix;
    uint8_t k[17], *slot;
    int rc = TS_OK, in_map = 1;
    if (o->m.pkw) {
        if ((rc = ngh_pk_slot(o, id, 1, &slot))) return rc;
        size_t room = o->m.pkw - NGH_SLOT_KEY;
        memset(slot, 0, o->m.pkw);
        size_t n = pk_pack(val, vlen, slot + NGH_SLOT_KEY, room);
        in_map = !n && vlen > room;
        if (n) slot[NGH_SLOT_KEY - 1] = (uint8_t)(NGH_PK_PACKED | n);
        else if (in_map) slot[NGH_SLOT_KEY - 1] = NGH_PK_IN_MAP;
        else {
            slot[NGH_SLOT_KEY - 1] = (uint8_t)vlen;
            if (vlen) memcpy(slot + NGH_SLOT_KEY, val, vlen);
        }
    }
    if (in_map) rc = ix->btv->insert(ix->bt, o->tx, k, ngh_nkey(k, id), val, vlen, 1);
    if (rc) return rc;
    if (o->m.pkw) return hash_add(o, id, key_hash(val, vlen));
    uint8_t idb[4];
    ngh_be32(idb, id);
    ngh_kkey(k, ngh_hash_bytes(key, klen, 1), ngh_hash_bytes(val, vlen, 2));
    return ix->btv->insert(ix->bt, o->tx, k, 17, idb, 4, 0);
}

/* Forget node id's primary key pk (its vector: key) as remove does: its
 * key-hash link or (format 1) its 'K' entry, and an 'N' entry. */
int ngh_pk_drop(ngh_op *o, uint32_t id, const void *key, const void *pk, size_t pl)
{
    ngh_idx *ix = o->ix;
    uint8_t *slot, k[17], idb[4];
    int rc = TS_OK, in_map = 1;
    if (o->m.pkw && !(rc = ngh_pk_slot(o, id, 0, &slot))) in_map = slot[NGH_SLOT_KEY - 1] == NGH_PK_IN_MAP;
    if (!rc && in_map) rc = ix->btv->remove(ix->bt, o->tx, k, ngh_nkey(k, id), pk, pl);
    if (rc) return rc;
    if (o->m.pkw) return hash_unlink(o, id, key_hash(pk, pl));
    ngh_be32(idb, id);
    ngh_kkey(k, ngh_hash_bytes(key, (size_t)o->m.dim * 4, 1), ngh_hash_bytes(pk, pl, 2));
    return ix->btv->remove(ix->bt, o->tx, k, 17, idb, 4);
}

/* Call fn for every live node whose vector equals key (and whose primary
 * key equals val, unless val is NULL); *found counts them.  Ids are taken
 * from the map in batches; after a batch where fn changed the map, the
 * scan starts over (the removed entries are gone by then). */

/* Format 2 without a primary key: the map has no entry by vector, so every
 * node is compared (the kernel always names the key; this serves other
 * callers of the index interface, correctly and slowly). */
static int scan_matches(ngh_op *o, const void *key, ngh_match_fn fn, void *ctx, uint32_t *found)
{
    int rc = TS_OK;
    *found = 0;
    for (uint32_t id = 0; id < o->m.count && !rc; id++) {
        uint8_t *rec;
        int match;
        if (id % 64 == 0) ngh_op_relax(o);
        if ((rc = ngh_node(o, id, 0, &rec)) || (rec[NR_FLAGS] & NR_DELETED)) continue;
        if ((rc = ngh_key_matches(o, id, rec, key, &match)) || !match) continue;
        (*found)++;
        if (fn) rc = fn(o, id, ctx);
    }
    return rc;
}

int ngh_find_matches(ngh_op *o, const void *key, size_t klen, const void *val, size_t vlen,
                        ngh_match_fn fn, void *ctx, uint32_t *found)
{
    ngh_idx *ix = o->ix;
    if (o->m.pkw) {
        if (!val) return scan_matches(o, key, fn, ctx, found);
        /* the key's nodes first, then their vectors (fn may unlink them) */
        uint32_t *ids = NULL, n = 0, cap = 0;
        int rc = hash_find(o, val, vlen, &ids, &n, &cap);
        *found = 0;
        for (uint32_t i = 0; i < n && !rc; i++) {
            uint8_t *rec;
            int match;
            ngh_op_relax(o);
            if ((rc = ngh_node(o, ids[i], 0, &rec))) break;
            if (rec[NR_FLAGS] & NR_DELETED) { rc = ngh_corrupt(o, "a deleted node in a key-hash chain"); break; }
            if ((rc = ngh_key_matches(o, ids[i], rec, key, &match)) || !match) continue;
            (*found)++;
            if (fn) rc = fn(o, ids[i], ctx);
        }
        ix->host->free(ids);
        return rc;
    }
    uint8_t k[17];
    size_t pl = val ? 17 : 9;
    ngh_kkey(k, ngh_hash_bytes(key, klen, 1), val ? ngh_hash_bytes(val, vlen, 2) : 0);
    void *cur;
    int rc = ix->btv->cursor_open(ix->bt, o->tx, &cur);
    if (rc) return rc;
    uint32_t ids[64], n, nonmatch = 0;
    int seek = 1, more = 1;
    *found = 0;
    while (more && !rc) {
        n = 0;
        more = 0;
        if (seek) {
            rc = ix->btv->seek(cur, k, pl, TS_SEEK_GE);
            /* after removals: skip the entries that did not match */
            for (uint32_t i = 0; i < nonmatch && !rc; i++) rc = ix->btv->next(cur);
        } else {
            rc = ix->btv->next(cur);
        }
        while (!rc) {
            const void *ek, *ev;
            size_t ekl, evl;
            if ((rc = ix->btv->entry(cur, &ek, &ekl, &ev, &evl))) break;
            if (ekl < pl || memcmp(ek, k, pl) != 0) break;
            if (evl != 4) { rc = ngh_corrupt(o, "bad primary-key map entry"); break; }
            ids[n++] = ngh_gbe32(ev);
            if (n == 64) { more = 1; break; }
            rc = ix->btv->next(cur);
        }
        if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
        int changed = 0;
        for (uint32_t i = 0; i < n && !rc; i++) {
            uint8_t *rec;
            ngh_op_relax(o);
            int match;
            if ((rc = ngh_node(o, ids[i], 0, &rec))) break;
            if (rec[NR_FLAGS] & NR_DELETED) { rc = ngh_corrupt(o, "a map entry for a deleted node"); break; }
            if ((rc = ngh_key_matches(o, ids[i], rec, key, &match))) break;
            if (match && val) {
                const void *pk;
                size_t pkl;
                if ((rc = ngh_pk_of(o, ids[i], &pk, &pkl))) break;
                match = pkl == vlen && (!vlen || !memcmp(pk, val, vlen));
            }
            if (!match) { nonmatch++; continue; }
            (*found)++;
            if (fn) {
                rc = fn(o, ids[i], ctx);
                changed = 1;
            }
        }
        seek = changed;
    }
    ix->btv->cursor_close(cur);
    return rc;
}

