/* Shared between the files of the transaction manager only. */
#ifndef TS_TXN_INTERNAL_H
#define TS_TXN_INTERNAL_H

#include <pthread.h>
#include "pager/cache.h"
#include "pager/codec.h"
#include "txn/pager.h"
#include "wal/wal.h"

#define TSTX_IN_MAIN UINT64_MAX

/* The page-version digest (see tspg_digest_key below). */
#define TSPG_META_DIGEST 1u
#define TSPG_DIGEST      16
#define TSPG_DIGEST_KEY  32

typedef struct dpage {        /* a page the write transaction changed */
    uint64_t      pgno;
    uint8_t      *lp;         /* logical image; NULL while spilled */
    uint64_t      spilled;    /* its uncommitted frame when spilled (TSTX_IN_MAIN: new
                                 page spilled to its place in the main file) */
    uint32_t      pins;
    uint64_t      old_lsn;    /* the LSN of the version it replaces (has_old) */
    int           has_old;    /* 0: a page new to the file */
    uint64_t      stamp;      /* tstx.touched at its last use: spill the cold ones */
    struct dpage *next;
} dpage;

struct tspage {
    tstx     *tx;
    tspage   *next_free;      /* in tstx.hfree while unused */
    uint64_t  pgno;
    tscpage  *cp;             /* read: a shared cache image */
    dpage    *d;              /* write: the private copy */
};

struct tstx {
    tspg     *pg;
    int       write;
    uint64_t  mark;           /* last frame of the snapshot */
    /* meta page fields as this transaction sees them */
    uint64_t  page_count, free_head, free_count, seq;
    uint64_t  roots[TSPG_ROOTS];
    uint64_t  sysroots[TSPG_SYSROOTS];
    uint32_t  meta_flags;     /* TSPG_META_DIGEST */
    uint8_t   digest[TSPG_DIGEST]; /* the page-version digest (TSPG_META_DIGEST) */
    int       meta_dirty;
    dpage   **tab;
    size_t    tabcap, n, nlive;
    uint64_t  base_count;     /* page_count at begin: pages from here on are new */
    int       main_spilled;   /* a new page was spilled to the main file */
    uint64_t  first_frame;    /* first log frame this transaction wrote */
    uint64_t *wpgnos;         /* page of each frame written, in order */
    size_t    nw, capw;
    tstx     *rnext, *rprev;  /* active readers */
    uint64_t  touched;        /* pages got, for explain and benchmarks */
    tspage   *hfree;          /* released page handles, reused (no malloc per get) */
    uint64_t  tag;            /* the upper layers' (tstx_set_tag) */
    uint64_t  stamp;          /* upper layers' stamp of the snapshot (tstx_stamp) */
    uint64_t  commit_stamp;   /* write: the stamp this commit publishes, 0: unchanged */
    int       synced_now;     /* the commit frame was written durably (no group sync) */
};

struct tspg {
    ts_env         *env;
    tsstore        *st;
    tsfile          main;
    uint64_t        cold_until;  /* monotonic ns: reads were slow lately, prefetch hints on (atomic) */
    tscodec         codec;
    uint8_t         digest_key[TSPG_DIGEST_KEY]; /* tspg_digest_key of codec */
    tscache        *cache;
    tswal          *wal;
    tspg_opts       o;
    uint32_t        format;    /* the file header's */
    pthread_mutex_t wlock;     /* the one writer */
    int             wwait;     /* threads waiting for wlock (atomic) */
    pthread_mutex_t mu;        /* marks, readers, stats */
    pthread_cond_t  cv;
    uint64_t        committed; /* last commit frame written */
    uint64_t        published; /* last commit frame readers may see */
    /* the upper layers' stamps of `committed` and `published` (under mu):
     * a snapshot and its stamp are taken together */
    uint64_t        stamp_committed, stamp_published;
    uint64_t        synced;    /* last frame known durable */
    int             syncing;
    int             failed;    /* status of a failed fsync: writes refused */
    int             dir_synced; /* the directory was synced since open (under mu) */
    tstx           *readers;
    size_t          nreaders;
    pthread_mutex_t ckpt;
    uint64_t        ckpt_done; /* frames up to here are in the main file */
    uint64_t        lsn;       /* last commit sequence number handed out (under wlock) */
    uint8_t        *scratch;   /* CHUNK page images for the writer (under wlock) */
    tspg_stats      stats;
};

/* The file header (page 0). */
typedef struct tspg_fhdr {
    uint32_t format, page_size, flags, overhead;
    uint8_t  dbid[16];
    uint64_t keyid;
} tspg_fhdr;
#define TSPG_FLAG_ENCRYPTED 1u

int  tspg_read_header(ts_env *env, tsstore *st, const char *name, int *exists, tspg_fhdr *h);
/* page_size bytes of page 0 for h. */
void tspg_header_bytes(const tspg_fhdr *h, uint8_t *buf);
int  tspg_setup_codec(ts_env *env, tscodec *c, const tspg_fhdr *h, tscipher *cipher);
int  tspg_load(tspg *pg, uint64_t pgno, uint64_t mark, tscpage **out);
/* Read version f of page pgno (a log frame, 0: the main file) from storage
 * and decode it into lp (logical bytes), past the cache. */
int  tspg_read_stored(tspg *pg, uint64_t pgno, uint64_t f, uint8_t *lp);
int  tspg_write_frames(tstx *tx, const uint64_t *pgnos, uint8_t *const *imgs, dpage **ds,
                       size_t k, int commit);
/* The meta page's fields (usable bytes d) into / from tx. */
void tspg_meta_parse(tstx *tx, const uint8_t *d);
void tspg_meta_build(const tstx *tx, uint8_t *d);
int  tspg_failed_error(tspg *pg);
/* With pg->mu held: the log is durable up to frame mark, and new readers
 * see every commit up to it (with upper-layer stamp `stamp`). */
void tspg_note_synced(tspg *pg, uint64_t mark, uint64_t stamp);
/* The checkpoint a commit starts once enough log is unchecked-pointed. */
void tspg_checkpoint_auto(tspg *pg);

/* The page-version digest (docs/kernel.md, "Replayed pages"): in the meta
 * page of a database created with it (TSPG_META_DIGEST), the XOR over
 * pages 2 .. page_count - 1 of a keyed 16-byte BLAKE2b of (page number,
 * LSN of its current version), which each commit updates from the old and
 * new LSN of every page it writes and tspg_check recomputes. */
void tspg_digest_key(const tscodec *c, uint8_t key[TSPG_DIGEST_KEY]);
/* acc ^= the term of page pgno at version lsn. */
void tspg_digest_mix(const uint8_t key[TSPG_DIGEST_KEY], uint64_t pgno, uint64_t lsn,
                     uint8_t acc[TSPG_DIGEST]);
/* With the writer lock held: TS_OK, or TS_ERR_RESOURCE (with a message)
 * when the log is at max_log_bytes and, checkpointing again for up to
 * busy_timeout_ms, still is, because a reader's old snapshot keeps it from
 * restarting. */
int  tspg_log_cap_check(tspg *pg);
/* A reset keeps a log file up to this size for reuse (overwriting frames
 * avoids growing the file, so fdatasync need not write its inode). */
#define TSPG_LOG_KEEP (64ull << 20)
static inline int tspg_is_failed(tspg *pg) { return __atomic_load_n(&pg->failed, __ATOMIC_ACQUIRE); }

#endif
