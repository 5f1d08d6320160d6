/*
 * tostore/status.h - status codes shared by the public API and the plugin ABI.
 *
 * Every fallible function returns one of these as an int.  0 is success,
 * 1 is partial success (batches), negative values are errors.  The values
 * are fixed forever: programs compiled against an older header keep working.
 * Codes -1 .. -99 mirror the original Tostore error set; -100 and below are
 * tostore's own.  Only standard C headers may be included here.
 */
#ifndef TOSTORE_STATUS_H
#define TOSTORE_STATUS_H

#define TS_OK                 0
#define TS_PARTIAL            1    /* some items of a batch failed */

#define TS_ERR_UNKNOWN       (-1)
#define TS_ERR_UNIQUE        (-2)  /* unique constraint violated */
#define TS_ERR_PRIMARY_KEY   (-3)  /* duplicate primary key */
#define TS_ERR_FOREIGN_KEY   (-4)
#define TS_ERR_NOT_NULL      (-5)
#define TS_ERR_VALIDATION    (-6)  /* type, length, range, unknown field, bad name or operator */
#define TS_ERR_NOT_FOUND     (-11)
#define TS_ERR_TABLE_EXISTS  (-12)
#define TS_ERR_FIELD_EXISTS  (-13)
#define TS_ERR_INDEX_EXISTS  (-14)
#define TS_ERR_RESOURCE      (-15) /* a limit was reached (size, count, handles) */
#define TS_ERR_IO            (-90) /* the storage backend failed (EIO, ENOSPC, ...) */
#define TS_ERR_DB            (-91) /* the database is in a state that refuses the call */
#define TS_ERR_TIMEOUT       (-92) /* waited busyTimeoutMs for another writer */

#define TS_ERR_INVALID       (-100) /* invalid argument (NULL where required, bad size, ...) */
#define TS_ERR_CORRUPT       (-101) /* a checksum or structure check failed */
#define TS_ERR_KEY           (-102) /* wrong or missing encryption key */
#define TS_ERR_PLUGIN        (-103) /* a plugin could not be loaded or is incompatible */
#define TS_ERR_CONFIG        (-104) /* malformed or inconsistent configuration */
#define TS_ERR_NOMEM         (-105) /* out of memory */
#define TS_ERR_AUTH          (-106) /* authenticated decryption failed (tampered data or wrong key) */
#define TS_ERR_LOCKED        (-107) /* the database is locked by another process */
#define TS_ERR_FORMAT        (-108) /* unsupported on-disk format version */
#define TS_ERR_INSECURE      (-109) /* an insecure module was selected without allowInsecure */
#define TS_ERR_READONLY      (-110) /* writes stopped (e.g. after a failed fsync): reopen */
#define TS_ERR_UNSUPPORTED   (-111) /* the operation is not offered by this module */
#define TS_ERR_RANGE         (-112) /* a numeric argument is out of its allowed range */

#endif /* TOSTORE_STATUS_H */
