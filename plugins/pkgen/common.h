/*
 * common.h - helpers shared by the bundled primary-key generators
 * (sequential, timestampBased, datePrefixed, shortCode): argument and
 * option checks, little-endian state packing, the wall clock, and the
 * logical clock the time-based generators build their keys from.
 *
 * Header-only (static inline) because every generator is its own shared
 * object and plugins link nothing of the kernel.  See docs/pkgen.md.
 */
#ifndef TS_PKGEN_COMMON_H
#define TS_PKGEN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <tostore/pkgen.h>

/* Every state starts with this version byte (the first format of each
 * generator is 1; a later format gets 2 and keeps reading 1). */
#define PK_STATE_V1 1

/* ---- arguments and options ---------------------------------------------- */

/* ts_module_args must reach the opts field we read. */
static inline int pk_args_usable(const ts_module_args *a)
{
    return a && a->struct_size >= offsetof(ts_module_args, opts) + sizeof a->opts && a->host;
}

/* TS_ERR_VALIDATION naming the first key of opts that is not in known
 * (NULL-terminated). */
static inline int pk_only_keys(const ts_module_args *a, const char *who,
                               const char *const *known)
{
    const ts_host *h = a->host;
    const char *key;
    for (size_t i = 0; h->opt_key_at(a->opts, i, &key) == TS_OK; i++) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], key)) k++;
        if (!known[k]) return h->error(a->env, TS_ERR_VALIDATION, "%s: unknown option '%s'", who, key);
    }
    return TS_OK;
}

/* Integer option `key` in [lo, hi]; *out keeps its default when absent. */
static inline int pk_opt_int(const ts_module_args *a, const char *who, const char *key,
                             int64_t lo, int64_t hi, int64_t *out)
{
    const ts_host *h = a->host;
    int64_t v;
    int rc = h->opt_int(a->env, a->opts, key, &v);
    if (rc == TS_ERR_NOT_FOUND) return TS_OK;
    if (rc) return h->error(a->env, TS_ERR_VALIDATION, "%s: option '%s' must be an integer", who, key);
    if (v < lo || v > hi)
        return h->error(a->env, TS_ERR_VALIDATION, "%s: option '%s' is %lld, must be %lld..%lld",
                        who, key, (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return TS_OK;
}

/* Boolean option `key`; *out keeps its default when absent. */
static inline int pk_opt_bool(const ts_module_args *a, const char *who, const char *key, int *out)
{
    const ts_host *h = a->host;
    int v;
    int rc = h->opt_bool(a->env, a->opts, key, &v);
    if (rc == TS_ERR_NOT_FOUND) return TS_OK;
    if (rc) return h->error(a->env, TS_ERR_VALIDATION, "%s: option '%s' must be true or false", who, key);
    *out = v != 0;
    return TS_OK;
}

/* The node id the time-based generators put in every key (0..1023): the
 * config's top-level nodeId, which the kernel passes as option "nodeId". */
#define PK_NODE_MAX 1023

/* Options of the time-based generators: only nodeId (default 0). */
static inline int pk_node_opts(const ts_module_args *a, const char *who, uint32_t *node)
{
    static const char *const known[] = { "nodeId", NULL };
    int64_t v = 0;
    int rc = pk_only_keys(a, who, known);
    if (!rc) rc = pk_opt_int(a, who, "nodeId", 0, PK_NODE_MAX, &v);
    *node = (uint32_t)v;
    return rc;
}

/* ---- little-endian packing ---------------------------------------------- */

static inline void pk_put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t pk_get_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- wall clock ----------------------------------------------------------- */

/* Milliseconds since 1970-01-01T00:00:00Z (C11 timespec_get: UTC, no
 * time zone involved).  0 if the clock cannot be read. */
static inline int64_t pk_now_ms(void)
{
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the logical clock ------------------------------------------------------
 *
 * A time-based key is made of (t, seq): t a time unit (ms or s), seq a
 * counter within it.  The clock remembers the last pair handed out or
 * observed; every tick returns a pair strictly greater (t first, then seq),
 * whatever the wall clock does:
 *  - the wall clock moved on: (now, 0);
 *  - the same unit, or the wall clock went backwards: (last t, seq + 1);
 *  - seq exhausted: (last t + 1, 0), i.e. the next unit, logically and
 *    without sleeping, so keys may run ahead of the wall clock for a while.
 * The initial pair (0, 0) counts as taken, so it is never handed out.
 * The node id sits below (t, seq) in every key, so the key order of one
 * generator is the (t, seq) order and keys of different nodes never meet. */
typedef struct pk_clock {
    int64_t  t;        /* last unit used, 0..t_max */
    uint32_t seq;      /* last sequence number used in t, 0..seq_max */
    int64_t  t_max;    /* last representable unit */
    uint32_t seq_max;
} pk_clock;

#define PK_CLOCK_STATE_LEN 13 /* version, t (8, LE), seq (4, LE) */

static inline void pk_clock_init(pk_clock *c, int64_t t_max, uint32_t seq_max)
{
    c->t = 0;
    c->seq = 0;
    c->t_max = t_max;
    c->seq_max = seq_max;
}

/* Advance to the next pair, given the wall clock now in the clock's unit.
 * TS_ERR_RANGE (state unchanged) past t_max. */
static inline int pk_clock_tick(pk_clock *c, int64_t now, int64_t *t_out, uint32_t *seq_out)
{
    int64_t t;
    uint32_t seq;
    if (now < 0) now = 0;
    if (now > c->t) {
        t = now;
        seq = 0;
    } else if (c->seq < c->seq_max) {
        t = c->t;
        seq = c->seq + 1;
    } else {
        if (c->t >= c->t_max) return TS_ERR_RANGE;
        t = c->t + 1;
        seq = 0;
    }
    if (t > c->t_max) return TS_ERR_RANGE;
    c->t = *t_out = t;
    c->seq = *seq_out = seq;
    return TS_OK;
}

/* A key (t, seq, any node) was stored: later pairs go above it.  Pairs at
 * or below the last one change nothing (ticks are above them already). */
static inline void pk_clock_observe(pk_clock *c, int64_t t, uint32_t seq)
{
    if (t < 0) return;
    if (t > c->t_max) { /* beyond the clock's range: the next tick fails */
        t = c->t_max;
        seq = c->seq_max;
    }
    if (seq > c->seq_max) seq = c->seq_max;
    if (t > c->t || (t == c->t && seq > c->seq)) {
        c->t = t;
        c->seq = seq;
    }
}

static inline int pk_clock_save(const pk_clock *c, uint8_t *buf, size_t cap, size_t *len_out)
{
    if (!buf || !len_out || cap < PK_CLOCK_STATE_LEN) return TS_ERR_INVALID;
    buf[0] = PK_STATE_V1;
    pk_put_le(buf + 1, (uint64_t)c->t, 8);
    pk_put_le(buf + 9, c->seq, 4);
    *len_out = PK_CLOCK_STATE_LEN;
    return TS_OK;
}

/* Restore the last pair from a saved state; TS_ERR_CORRUPT (with a message)
 * for an unknown version, a wrong length or values out of range. */
static inline int pk_clock_load(pk_clock *c, const ts_module_args *a, const char *who,
                                const uint8_t *st, size_t len)
{
    const ts_host *h = a->host;
    if (len == 0) return TS_OK;
    if (st[0] != PK_STATE_V1)
        return h->error(a->env, TS_ERR_CORRUPT, "%s: unknown state version %u", who, st[0]);
    if (len != PK_CLOCK_STATE_LEN)
        return h->error(a->env, TS_ERR_CORRUPT, "%s: state is %zu bytes, expected %d", who, len,
                        PK_CLOCK_STATE_LEN);
    int64_t t = (int64_t)pk_get_le(st + 1, 8);
    uint64_t seq = pk_get_le(st + 9, 4);
    if (t < 0 || t > c->t_max || seq > c->seq_max)
        return h->error(a->env, TS_ERR_CORRUPT, "%s: state (%lld, %llu) out of range", who,
                        (long long)t, (unsigned long long)seq);
    c->t = t;
    c->seq = (uint32_t)seq;
    return TS_OK;
}

/* ---- the 63-bit time key (timestampBased, shortCode) -------------------------
 *
 *   bit 63: 0 | 62..22: ms since 2020-01-01T00:00:00Z | 21..10: seq | 9..0: node
 *
 * seq sits above the node id (not below it as in Twitter's snowflake), so
 * one generator's keys are ordered by (ms, seq) alone: neither a new nodeId
 * after a restart nor an observed key of another node can put a later key
 * below an earlier one. */
#define PK_TKEY_EPOCH_MS INT64_C(1577836800000)
#define PK_TKEY_SEQ_BITS 12
#define PK_TKEY_NODE_BITS 10
#define PK_TKEY_MS_SHIFT (PK_TKEY_SEQ_BITS + PK_TKEY_NODE_BITS)
#define PK_TKEY_MS_MAX ((INT64_C(1) << (63 - PK_TKEY_MS_SHIFT)) - 1) /* ~2089-09 */
#define PK_TKEY_SEQ_MAX ((1u << PK_TKEY_SEQ_BITS) - 1)

static inline void pk_tkey_clock_init(pk_clock *c)
{
    pk_clock_init(c, PK_TKEY_MS_MAX, PK_TKEY_SEQ_MAX);
}

/* The next time key of node; TS_ERR_RANGE past PK_TKEY_MS_MAX. */
static inline int pk_tkey_next(pk_clock *c, uint32_t node, int64_t *key)
{
    int64_t t;
    uint32_t seq;
    int rc = pk_clock_tick(c, pk_now_ms() - PK_TKEY_EPOCH_MS, &t, &seq);
    if (rc) return rc;
    *key = (int64_t)((uint64_t)t << PK_TKEY_MS_SHIFT | (uint64_t)seq << PK_TKEY_NODE_BITS | node);
    return TS_OK;
}

/* An integer key k was stored: later time keys go above it.  Negative keys
 * are below every time key already. */
static inline void pk_tkey_observe(pk_clock *c, int64_t k)
{
    if (k < 0) return;
    pk_clock_observe(c, k >> PK_TKEY_MS_SHIFT,
                     (uint32_t)((uint64_t)k >> PK_TKEY_NODE_BITS) & PK_TKEY_SEQ_MAX);
}

#endif /* TS_PKGEN_COMMON_H */
