/*
 * hashfn.h - the 64-bit keyed hash of the hash index (private to the plugin).
 *
 * A wyhash-style construction (Wang Yi's wyhash, final version 4, public
 * domain), rewritten here: the input is read as little-endian words, each
 * pair folded with a 64x64->128-bit multiply whose halves are xored ("mum").
 * It passes SMHasher in its original form, is fast on short keys (one or
 * two multiplies up to 16 bytes) and mixes every input bit into the low
 * bits, which linear hashing uses for bucket addressing.
 *
 * The result is part of the on-disk format (stored in every record and
 * deciding which bucket holds it), so it must not change and is computed
 * the same way on every platform: byte loads, explicit little endian, no
 * unaligned access, no compiler-specific integer types unless available.
 *
 * The seed is drawn per index from host->random at create and kept in the
 * meta page, so adversarial keys chosen without it cannot force collisions.
 */
#ifndef TS_HASH_HASHFN_H
#define TS_HASH_HASHFN_H

#include <stddef.h>
#include <stdint.h>

static const uint64_t hx_s0 = 0xa0761d6478bd642full;
static const uint64_t hx_s1 = 0xe7037ed1a0b428dbull;
static const uint64_t hx_s2 = 0x8ebc6af09c88c6e3ull;
static const uint64_t hx_s3 = 0x589965cc75374cc3ull;

static inline uint64_t hx_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint64_t hx_le32(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

/* (*a, *b) = low and high halves of the 128-bit product *a * *b. */
static inline void hx_mum(uint64_t *a, uint64_t *b)
{
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 hx_u128;
    hx_u128 r = (hx_u128)*a * *b;
    *a = (uint64_t)r;
    *b = (uint64_t)(r >> 64);
#else
    uint64_t ha = *a >> 32, hb = *b >> 32, la = (uint32_t)*a, lb = (uint32_t)*b;
    uint64_t rh = ha * hb, rm0 = ha * lb, rm1 = hb * la, rl = la * lb;
    uint64_t t = rl + (rm0 << 32), c = t < rl;
    uint64_t lo = t + (rm1 << 32);
    c += lo < t;
    uint64_t hi = rh + (rm0 >> 32) + (rm1 >> 32) + c;
    *a = lo;
    *b = hi;
#endif
}

static inline uint64_t hx_mix(uint64_t a, uint64_t b)
{
    hx_mum(&a, &b);
    return a ^ b;
}

/* The hash of key[0..len) under seed. */
static inline uint64_t hx_hash(const void *key, size_t len, uint64_t seed)
{
    const uint8_t *p = (const uint8_t *)key;
    uint64_t a, b;
    seed ^= hx_mix(seed ^ hx_s0, hx_s1);
    if (len <= 16) {
        if (len >= 4) {
            size_t q = (len >> 3) << 2; /* 0 for 4..7 bytes, 4 for 8..16 */
            a = hx_le32(p) << 32 | hx_le32(p + q);
            b = hx_le32(p + len - 4) << 32 | hx_le32(p + len - 4 - q);
        } else if (len > 0) {
            a = (uint64_t)p[0] << 16 | (uint64_t)p[len >> 1] << 8 | p[len - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        if (i > 48) {
            uint64_t see1 = seed, see2 = seed;
            do {
                seed = hx_mix(hx_le64(p) ^ hx_s1, hx_le64(p + 8) ^ seed);
                see1 = hx_mix(hx_le64(p + 16) ^ hx_s2, hx_le64(p + 24) ^ see1);
                see2 = hx_mix(hx_le64(p + 32) ^ hx_s3, hx_le64(p + 40) ^ see2);
                p += 48;
                i -= 48;
            } while (i > 48);
            seed ^= see1 ^ see2;
        }
        while (i > 16) {
            seed = hx_mix(hx_le64(p) ^ hx_s1, hx_le64(p + 8) ^ seed);
            i -= 16;
            p += 16;
        }
        a = hx_le64(p + i - 16);
        b = hx_le64(p + i - 8);
    }
    a ^= hx_s1;
    b ^= seed;
    hx_mum(&a, &b);
    return hx_mix(a ^ hx_s0 ^ (uint64_t)len, b ^ hx_s1);
}

#endif
