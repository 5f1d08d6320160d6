#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "base/env.h"
#include "txn/internal.h"
#include "txn/rekey.h"
#include "wal/wal.h"

static int sync_dir(tsstore *st) { return st->vt->sync_dir(st->h); }

static int write_file(tsstore *st, const char *name, const void *buf, size_t n)
{
    tsfile f;
    int rc = tsfile_open(st, name, TS_OPEN_CREATE, &f);
    if (rc) return rc;
    rc = tsfile_truncate(&f, 0);
    if (!rc) rc = tsfile_write(&f, 0, buf, n);
    if (!rc) rc = tsfile_sync(&f, 0);
    int rc2 = tsfile_close(&f);
    return rc ? rc : rc2;
}

/* The log must hold no committed frame: every page is in the main file. */
static int log_is_empty(ts_env *env, tsstore *st, uint32_t page_size, const tscipher *c)
{
    tswal *w;
    uint64_t frames = 0;
    uint8_t mkey[TSWAL_MAC_KEY];
    if (c) tswal_mac_key(c->key, c->key_len, mkey);
    int rc = tswal_open(env, st, page_size, c ? mkey : NULL, &w, &frames);
    sodium_memzero(mkey, sizeof mkey);
    if (rc) return rc;
    tswal_close(w);
    if (frames)
        return tsenv_error(env, TS_ERR_DB, "rekey needs a fully checkpointed log (readers active?)");
    return TS_OK;
}

static int copy_pages(ts_env *env, tsstore *st, const tspg_fhdr *oh, const tspg_fhdr *nh,
                      tscipher *from, tscipher *to, tsrekey_progress cb, void *ctx)
{
    tscodec oc, nc;
    int rc = tspg_setup_codec(env, &oc, oh, from);
    if (!rc) rc = tspg_setup_codec(env, &nc, nh, to);
    if (rc) return rc;
    uint32_t ps = oh->page_size;
    tsfile in, out;
    if ((rc = tsfile_open(st, TSPG_FILE, TS_OPEN_READONLY, &in))) return rc;
    if ((rc = tsfile_open(st, TSREKEY_DB_FILE, TS_OPEN_CREATE, &out))) { tsfile_close(&in); return rc; }
    uint64_t size = 0;
    uint8_t *raw = malloc(ps), *lp = malloc(ps);
    rc = raw && lp ? tsfile_size(&in, &size) : TS_ERR_NOMEM;
    if (!rc) rc = tsfile_truncate(&out, 0);
    uint64_t npages = size / ps;
    if (!rc) {
        tspg_header_bytes(nh, raw);
        rc = tsfile_write(&out, 0, raw, ps);
    }
    /* The page-version digest is keyed by the data key: under the new one
     * it is computed again as the pages go by, and the meta page (page 1,
     * the first copied) written again at the end with it.  The old one is
     * checked first: re-sealing a replayed page would make it valid. */
    uint8_t dkey[TSPG_DIGEST_KEY], digest[TSPG_DIGEST] = {0};
    uint8_t okey[TSPG_DIGEST_KEY], odigest[TSPG_DIGEST] = {0};
    tspg_digest_key(&nc, dkey);
    tspg_digest_key(&oc, okey);
    uint8_t *meta = NULL;   /* page 1's logical image, when the digest is kept */
    tstx m = {0};           /* its fields */
    uint64_t total = npages; /* pages to copy: page 1's count once it is read */
    /* Pages past the page count are not the database's: a crash may have
     * left them torn (new pages of a big transaction go straight to their
     * place in the main file).  The log is empty, so page 1's count is the
     * whole database; once it is read, the copy stops there. */
    for (uint64_t pgno = 1; pgno < total && !rc; pgno++) {
        if ((rc = tsfile_read(&in, pgno * ps, raw, ps, NULL))) break;
        /* Pages past the last checkpointed ones may be all zero holes. */
        int hole = 1;
        for (uint32_t i = 0; i < ps && hole; i++) hole = raw[i] == 0;
        if (hole && pgno == 1) {
            rc = tsenv_error(env, TS_ERR_CORRUPT, "rekey: page 1 (the meta page) of %s is missing", TSPG_FILE);
            break;
        }
        if (hole && meta) {
            rc = tsenv_error(env, TS_ERR_CORRUPT, "rekey: page %llu of %llu is missing from %s",
                             (unsigned long long)pgno, (unsigned long long)m.page_count, TSPG_FILE);
            break;
        }
        if (!hole) {
            if ((rc = tscodec_decode(&oc, pgno, raw, lp))) {
                tsenv_error(env, rc, "rekey: page %llu fails verification under the old key",
                            (unsigned long long)pgno);
                break;
            }
            if (pgno == 1) {
                tspg_meta_parse(&m, lp + TSPAGE_HDR);
                /* the copy stops at this count: it must be one */
                if (m.page_count < 2) {
                    rc = tsenv_error(env, TS_ERR_CORRUPT, "rekey: the meta page counts %llu pages",
                                     (unsigned long long)m.page_count);
                    break;
                }
                if (m.page_count < total) total = m.page_count;
            }
            if (pgno == 1 && (m.meta_flags & TSPG_META_DIGEST)) {
                if (!(meta = malloc(ps))) { rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory"); break; }
                memcpy(meta, lp, ps);
            } else if (meta) {
                tspg_digest_mix(okey, pgno, tspage_lsn(lp), odigest);
                tspg_digest_mix(dkey, pgno, tspage_lsn(lp), digest);
            }
            rc = tscodec_encode(&nc, pgno, tspage_lsn(lp), lp, raw);
        }
        if (!rc) rc = tsfile_write(&out, pgno * ps, raw, ps);
        if (cb && (pgno % 1024 == 0 || pgno + 1 == total)) cb(ctx, pgno + 1, total);
    }
    if (!rc && !m.page_count) /* a file of its header alone */
        rc = tsenv_error(env, TS_ERR_CORRUPT, "rekey: page 1 (the meta page) of %s is missing", TSPG_FILE);
    if (!rc && meta && npages < m.page_count)
        rc = tsenv_error(env, TS_ERR_CORRUPT, "rekey: %s holds %llu of its %llu pages", TSPG_FILE,
                         (unsigned long long)npages, (unsigned long long)m.page_count);
    if (!rc && meta && memcmp(odigest, m.digest, TSPG_DIGEST) != 0)
        rc = tsenv_error(env, TS_ERR_CORRUPT, "rekey: a page is not the version the database "
                         "expects (an older copy put back, or a lost write); not re-sealing it");
    if (!rc && meta) {
        memcpy(m.digest, digest, TSPG_DIGEST);
        tspg_meta_build(&m, meta + TSPAGE_HDR);
        rc = tscodec_encode(&nc, 1, tspage_lsn(meta), meta, raw);
        if (!rc) rc = tsfile_write(&out, ps, raw, ps);
    }
    free(meta);
    if (!rc) rc = tsfile_sync(&out, 0);
    free(raw);
    free(lp);
    tsfile_close(&in);
    int rc2 = tsfile_close(&out);
    return rc ? rc : rc2;
}

int tsrekey_run(ts_env *env, tsstore *st, tscipher *from, tscipher *to, const uint8_t *ring,
                size_t ring_len, tsrekey_progress cb, void *ctx)
{
    int exists = 0;
    tspg_fhdr oh = {0};
    int rc = tspg_read_header(env, st, TSPG_FILE, &exists, &oh);
    if (!rc && !exists) rc = tsenv_error(env, TS_ERR_NOT_FOUND, "rekey: no database file");
    if (!rc) rc = log_is_empty(env, st, oh.page_size, from);
    if (rc) return rc;
    tspg_fhdr nh = oh;
    nh.flags = to ? (oh.flags | TSPG_FLAG_ENCRYPTED) : (oh.flags & ~TSPG_FLAG_ENCRYPTED);
    nh.keyid = to ? to->keyid : 0;

    rc = copy_pages(env, st, &oh, &nh, from, to, cb, ctx);
    if (!rc && to) rc = write_file(st, TSREKEY_KEY_FILE, ring, ring_len);
    if (!rc) rc = sync_dir(st);
    if (rc) {
        /* the cleanup's own errors (a file not made yet) must not replace why */
        char why[512];
        snprintf(why, sizeof why, "%s", tsenv_errmsg(env));
        st->vt->remove(st->h, TSREKEY_DB_FILE);
        st->vt->remove(st->h, TSREKEY_KEY_FILE);
        if (*why) tsenv_error(env, rc, "%s", why);
        else tsenv_error(env, rc, "rekey failed; the old key stays valid");
        return rc;
    }
    /* Commit point. */
    rc = to ? st->vt->rename(st->h, TSREKEY_KEY_FILE, TSKEY_FILE) : st->vt->remove(st->h, TSKEY_FILE);
    if (rc == TS_ERR_NOT_FOUND && !to) rc = TS_OK;
    if (!rc) rc = sync_dir(st);
    if (!rc) rc = st->vt->rename(st->h, TSREKEY_DB_FILE, TSPG_FILE);
    if (!rc) rc = sync_dir(st);
    if (rc && !*tsenv_errmsg(env))
        tsenv_error(env, rc, "rekey: finishing failed; the next open completes it");
    return rc;
}

int tsrekey_recover(ts_env *env, tsstore *st)
{
    int exists = 0;
    tspg_fhdr nh = {0};
    int rc = st->vt->exists(st->h, TSREKEY_DB_FILE, &exists);
    if (rc || !exists) {
        int kex = 0;
        if (!rc) rc = st->vt->exists(st->h, TSREKEY_KEY_FILE, &kex);
        if (!rc && kex) {
            rc = st->vt->remove(st->h, TSREKEY_KEY_FILE);
            if (!rc) rc = sync_dir(st);
        }
        return rc;
    }
    int valid = tspg_read_header(env, st, TSREKEY_DB_FILE, &exists, &nh) == TS_OK;
    tsenv_clear(env);
    int kpresent = 0;
    uint64_t kid = 0;
    if ((rc = tskey_file_id(st, TSKEY_FILE, &kpresent, &kid))) return rc;
    int committed = valid && (nh.keyid ? kpresent && kid == nh.keyid : !kpresent);
    if (committed) {
        tsenv_log(env, TS_LOG_WARN, "finishing an interrupted rekey");
        rc = st->vt->rename(st->h, TSREKEY_DB_FILE, TSPG_FILE);
    } else {
        tsenv_log(env, TS_LOG_WARN, "rolling back an interrupted rekey");
        rc = st->vt->remove(st->h, TSREKEY_DB_FILE);
        int kex = 0;
        if (!rc) rc = st->vt->exists(st->h, TSREKEY_KEY_FILE, &kex);
        if (!rc && kex) rc = st->vt->remove(st->h, TSREKEY_KEY_FILE);
    }
    if (!rc) rc = sync_dir(st);
    if (rc && !*tsenv_errmsg(env)) tsenv_error(env, rc, "recovering an interrupted rekey");
    return rc;
}
