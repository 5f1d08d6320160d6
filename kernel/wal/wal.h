/*
 * The write-ahead log: a redo log of page images (storage form, so sealed
 * when encrypted), in the manner of SQLite's WAL.
 *
 *   file   = header(32) frame*
 *   header = "TSWAL001" version page_size salt crc
 *   frame  = magic flags pgno salt chain-crc local-index durable frame-crc
 *            reserved | image(page_size)
 *
 * frame-crc covers the frame alone; chain-crc chains it with the previous
 * frame's (seeded by the salt), so a frame is valid only if every frame
 * before it is; a commit is the frame flagged COMMIT.  Recovery keeps the
 * valid prefix up to its last commit.  `durable` is the last frame known to
 * be on stable storage when the frame was written: if a later, intact frame
 * says a damaged frame had been durable, the damage is corruption, not a
 * torn tail, and recovery refuses (TS_ERR_CORRUPT) rather than silently drop
 * acknowledged commits.  A reset draws a new salt, which invalidates every
 * old frame at once; the new header is synced before any new frame is
 * written, so an old generation can never come back over a newer main file.
 *
 * Frames are numbered absolutely (never reused across resets) so caches and
 * snapshots keyed by frame number never see a recycled number.
 * Writing (write/rewind/reset) needs the caller's writer lock; find/read are
 * safe from any thread.
 */
#ifndef TS_WAL_WAL_H
#define TS_WAL_WAL_H

#include <stddef.h>
#include <stdint.h>
#include "io/store.h"

#define TSWAL_FILE "tostore.wal"
#define TSWAL_FORMAT 1   /* the log header's format number */
#define TSWAL_HDR 32
#define TSWAL_FRAME_HDR 48

typedef struct tswal tswal;

#define TSWAL_MAC_KEY 32

/* Open (or create) the log and recover it: afterwards the index holds every
 * frame up to the last valid commit.  *frames_out: frames recovered.
 * mac_key (NULL: none; an encrypted database passes tswal_mac_key of its
 * data key): every frame header carries a keyed MAC, written and required
 * at recovery, so nobody without the key can mark frames committed,
 * reorder them or move them between generations.  A log of an encrypted
 * database whose frames carry none (an older build's) is TS_ERR_FORMAT. */
int      tswal_open(ts_env *env, tsstore *st, uint32_t page_size, const uint8_t *mac_key,
                    tswal **out, uint64_t *frames_out);
/* The frames' MAC key, derived from an encrypted database's data key. */
void     tswal_mac_key(const uint8_t *data_key, size_t len, uint8_t out[TSWAL_MAC_KEY]);
void     tswal_close(tswal *w);

/* Append n frames at the end; with commit the last one is a commit frame.
 * *first_out receives the absolute number of the first.  With synced (not
 * NULL), a commit whose earlier frames are all durable may be written
 * durably in one step (the backend's write_sync): *synced is then 1 and no
 * tswal_sync is needed; 0 otherwise.  A failure of that write counts as a
 * failed sync (tswal_sync_failed). */
int      tswal_write(tswal *w, const uint64_t *pgnos, uint8_t *const *images, size_t n,
                     int commit, int *synced, uint64_t *first_out);
/* Rewrite uncommitted frame abs (written by this transaction) with a new
 * image of the same page, in place: a page spilled again does not grow the
 * log.  The next commit fixes the chain after it. */
int      tswal_overwrite(tswal *w, uint64_t abs, uint64_t pgno, const uint8_t *image);
/* Drop frames written after the last commit (rollback of spilled pages). */
void     tswal_rewind(tswal *w);
/* Make the log durable; `upto` (absolute) is the last commit frame the
 * caller knows is covered, recorded in later frames' `durable` field. */
int      tswal_sync(tswal *w, int data_only, uint64_t upto);
/* Whether an fsync of the log ever failed (then nothing is trusted). */
int      tswal_sync_failed(tswal *w);
/* Read frame abs's image; TS_ERR_NOT_FOUND when a reset has retired it
 * since it was found (its page is then in the main file). */
/* Hint that frame abs's image will be read soon (the backend's prefetch). */
void     tswal_prefetch(tswal *w, uint64_t abs);
int      tswal_read(tswal *w, uint64_t abs, uint8_t *image);

/* Make frames [first, first+n) findable (the caller publishes snapshots). */
int      tswal_index_add(tswal *w, uint64_t first, const uint64_t *pgnos, size_t n);
/* Latest frame of pgno with number <= mark, or 0. */
uint64_t tswal_find(tswal *w, uint64_t pgno, uint64_t mark);

/* Absolute number of the last committed frame (0: none ever). */
uint64_t tswal_last_commit(tswal *w);
/* Absolute number of the first frame in the current file, minus one. */
uint64_t tswal_base(tswal *w);
uint64_t tswal_size_bytes(tswal *w);

/* For checkpoints: the newest frame of every page among frames (from, to],
 * oldest frame first, as (pgno, abs) pairs in *out (n_out of them; the
 * caller frees *out). */
int      tswal_latest(tswal *w, uint64_t from, uint64_t to, uint64_t (**out)[2], size_t *n_out);
/* Committed frames abs .. abs + n - 1, headers included, with one read into
 * buf (n x (TSWAL_FRAME_HDR + page size) bytes): frame abs + i's image is
 * at buf + i x that + TSWAL_FRAME_HDR.  TS_ERR_NOT_FOUND when abs is
 * checkpointed and gone, TS_ERR_INVALID when the range runs past the
 * indexed frames. */
int      tswal_read_frames(tswal *w, uint64_t abs, size_t n, uint8_t *buf);
/* Start a new, empty log generation (every frame must be checkpointed):
 * new salt, header synced; the file is reused (old frames overwritten)
 * unless it is larger than keep bytes, then truncated. */
int      tswal_reset(tswal *w, uint64_t keep);

#endif
