/*
 * posix - the default storage backend: one directory, one file per name,
 * pread/pwrite/fsync on file descriptors.
 *
 * Every file is opened relative to a descriptor of the root directory
 * (openat and friends), so the root is resolved once and a name can never
 * escape it.  The store lock is an OFD lock (or flock where OFD locks are
 * missing) on the file "LOCK" in the root: both belong to the open file
 * description, so they exclude other processes and other stores of the same
 * process alike, and are dropped by the kernel if the process dies.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <tostore/storage.h>

#define LOCK_NAME "LOCK"
#define NO_DFD   (-2)
#define BAD_DFD  (-1)
#define DIRECT_ALIGN 4096u
#define NAME_MAX_BYTES 255

typedef struct pstore {
    const ts_host  *host;
    ts_env         *env;
    char           *root;      /* as given, for messages */
    int             dirfd;
    int             sync;      /* 0 with option sync "none" */
    pthread_mutex_t mu;        /* guards lockfd */
    int             lockfd;    /* -1 when not locked */
} pstore;

typedef struct pfile {
    pstore *st;
    int     fd;
    int     dfd;       /* O_DIRECT | O_DSYNC twin for write_sync (atomic): NO_DFD until
                        * first used, BAD_DFD where the file system refuses it */
    int     readonly;
    char    name[NAME_MAX_BYTES + 1];
} pfile;

/* Thread-safe strerror: the GNU strerror_r returns its message, the XSI
 * one fills buf; _GNU_SOURCE (set by the build) selects the former. */
static const char *errstr(int e, char *buf, size_t n)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, n);
#else
    return strerror_r(e, buf, n) == 0 ? buf : "unknown error";
#endif
}

/* Report errno e of operation op on file name and return the mapped code. */
static int sys_error(pstore *s, int e, const char *op, const char *name)
{
    char buf[128];
    int code = e == ENOENT ? TS_ERR_NOT_FOUND
             : e == EEXIST ? TS_ERR_INVALID
             : e == ENOMEM ? TS_ERR_NOMEM
             : TS_ERR_IO;
    return s->host->error(s->env, code, "posix: %s %s/%s: %s", op, s->root, name,
                          errstr(e, buf, sizeof buf));
}

/* Flat names only: [A-Za-z0-9_.-]{1,255}, not "." or "..", and not the
 * lock file, which belongs to the backend. */
static int check_name(pstore *s, const char *name)
{
    if (!name || !*name)
        return s->host->error(s->env, TS_ERR_INVALID, "posix: empty file name");
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (n >= NAME_MAX_BYTES)
            return s->host->error(s->env, TS_ERR_INVALID, "posix: file name longer than %d bytes",
                                  NAME_MAX_BYTES);
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return s->host->error(s->env, TS_ERR_INVALID,
                                  "posix: invalid file name '%s' (allowed: A-Z a-z 0-9 _ . -)",
                                  name);
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, LOCK_NAME) == 0)
        return s->host->error(s->env, TS_ERR_INVALID, "posix: file name '%s' is reserved", name);
    return TS_OK;
}

static int fsync_retry(int fd, int data_only)
{
    int r;
    do r = data_only ? fdatasync(fd) : fsync(fd);
    while (r != 0 && errno == EINTR);
    return r;
}

/* After creating a directory, make its entry in the parent durable too:
 * otherwise a fresh store could vanish at power loss with everything in it. */
static int sync_parent(const char *path)
{
    char parent[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == path) snprintf(parent, sizeof parent, "/");
    else snprintf(parent, sizeof parent, "%.*s", (int)(slash - path), path);
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = fsync_retry(fd, 0) ? errno : 0;
    close(fd);
    return e;
}

/* mkdir -p; returns 0 or an errno. */
static int mkdir_p(const char *root, int do_sync)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", root) >= (int)sizeof path) return ENAMETOOLONG;
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0777) == 0) {
            int e = do_sync ? sync_parent(path) : 0;
            if (e) return e;
        } else if (errno != EEXIST) {
            return errno;
        }
        *p = c;
        if (!c) return 0;
    }
}

static int parse_opts(const ts_module_args *a, int *sync)
{
    const ts_host *h = a->host;
    const char *key, *v;
    for (size_t i = 0; h->opt_key_at(a->opts, i, &key) == TS_OK; i++)
        if (strcmp(key, "sync") != 0)
            return h->error(a->env, TS_ERR_CONFIG, "posix: unknown option '%s'", key);
    int rc = h->opt_string(a->env, a->opts, "sync", &v);
    if (rc == TS_ERR_NOT_FOUND) return TS_OK;
    if (rc != TS_OK)
        return h->error(a->env, TS_ERR_CONFIG, "posix: option 'sync' must be a string");
    if (strcmp(v, "full") == 0) *sync = 1;
    else if (strcmp(v, "none") == 0) *sync = 0;
    else
        return h->error(a->env, TS_ERR_CONFIG,
                        "posix: option 'sync' is '%s'; expected \"full\" or \"none\"", v);
    return TS_OK;
}

static int p_open(const ts_module_args *a, const char *root, void **out)
{
    const ts_host *h = a->host;
    *out = NULL;
    if (!root || !*root) return h->error(a->env, TS_ERR_INVALID, "posix: empty root path");
    int sync = 1;
    int rc = parse_opts(a, &sync);
    if (rc) return rc;

    char buf[128];
    int e = mkdir_p(root, sync);
    if (e)
        return h->error(a->env, TS_ERR_IO, "posix: cannot create directory %s: %s", root,
                        errstr(e, buf, sizeof buf));
    int dirfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        e = errno;
        return h->error(a->env, e == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO,
                        "posix: cannot open directory %s: %s", root, errstr(e, buf, sizeof buf));
    }
    pstore *s = h->calloc(1, sizeof *s);
    size_t rl = strlen(root);
    char *r = h->alloc(rl + 1);
    if (!s || !r) {
        h->free(s);
        h->free(r);
        close(dirfd);
        return h->error(a->env, TS_ERR_NOMEM, "posix: out of memory");
    }
    memcpy(r, root, rl + 1);
    s->host = h;
    s->env = a->env;
    s->root = r;
    s->dirfd = dirfd;
    s->sync = sync;
    s->lockfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return TS_OK;
}

static int p_close(void *store)
{
    pstore *s = store;
    if (!s) return TS_OK;
    if (s->lockfd >= 0) close(s->lockfd);
    close(s->dirfd);
    pthread_mutex_destroy(&s->mu);
    const ts_host *h = s->host;
    h->free(s->root);
    h->free(s);
    return TS_OK;
}

/* Returns 0, or the errno of the failed attempt. */
static int lock_fd(int fd)
{
#ifdef F_OFD_SETLK
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return 0;
    if (errno != EINVAL) return errno;
    /* EINVAL: a kernel without OFD locks; flock has the same ownership. */
#endif
    int r;
    do r = flock(fd, LOCK_EX | LOCK_NB);
    while (r != 0 && errno == EINTR);
    return r == 0 ? 0 : errno;
}

static int p_lock(void *store)
{
    pstore *s = store;
    int rc = TS_OK;
    pthread_mutex_lock(&s->mu);
    if (s->lockfd >= 0) goto out; /* already ours */
    int fd = openat(s->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = sys_error(s, errno, "cannot open lock file", LOCK_NAME);
        goto out;
    }
    int e = lock_fd(fd);
    if (e) {
        close(fd);
        if (e == EAGAIN || e == EACCES || e == EWOULDBLOCK) {
            rc = s->host->error(s->env, TS_ERR_LOCKED,
                                "posix: %s is locked by another process or open handle "
                                "(lock file %s/%s)", s->root, s->root, LOCK_NAME);
        } else {
            rc = sys_error(s, e, "cannot lock", LOCK_NAME);
        }
        goto out;
    }
    s->lockfd = fd;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int p_unlock(void *store)
{
    pstore *s = store;
    pthread_mutex_lock(&s->mu);
    /* Closing the descriptor drops the lock.  The file stays: unlinking it
     * would race with another process that has just opened it. */
    if (s->lockfd >= 0) close(s->lockfd);
    s->lockfd = -1;
    pthread_mutex_unlock(&s->mu);
    return TS_OK;
}

static int p_file_open(void *store, const char *name, unsigned flags, void **out)
{
    pstore *s = store;
    *out = NULL;
    int rc = check_name(s, name);
    if (rc) return rc;
    int of = O_CLOEXEC | ((flags & TS_OPEN_READONLY) ? O_RDONLY : O_RDWR);
    if (flags & TS_OPEN_CREATE) {
        of |= O_CREAT;
        if (flags & TS_OPEN_EXCL) of |= O_EXCL;
    }
    int fd;
    do fd = openat(s->dirfd, name, of, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;
        if (e == EEXIST)
            return s->host->error(s->env, TS_ERR_INVALID, "posix: %s/%s already exists",
                                  s->root, name);
        return sys_error(s, e, "cannot open", name);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return s->host->error(s->env, TS_ERR_INVALID, "posix: %s/%s is not a regular file",
                              s->root, name);
    }
    pfile *f = s->host->calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return s->host->error(s->env, TS_ERR_NOMEM, "posix: out of memory");
    }
    f->st = s;
    f->fd = fd;
    f->dfd = NO_DFD;
    f->readonly = (flags & TS_OPEN_READONLY) != 0;
    snprintf(f->name, sizeof f->name, "%s", name);
    *out = f;
    return TS_OK;
}

static int p_file_close(void *file)
{
    pfile *f = file;
    if (!f) return TS_OK;
    /* close() may report a deferred write error (NFS); surface it. */
    int rc = close(f->fd) == 0 || errno == EINTR ? TS_OK : sys_error(f->st, errno, "close", f->name);
    if (f->dfd >= 0) close(f->dfd);
    f->st->host->free(f);
    return rc;
}

/* pread/pwrite take off_t: refuse ranges it cannot address. */
static int check_range(pfile *f, uint64_t off, size_t n)
{
    if (off > (uint64_t)INT64_MAX || n > (uint64_t)INT64_MAX - off)
        return f->st->host->error(f->st->env, TS_ERR_RANGE,
                                  "posix: %s: offset %llu + %zu out of range", f->name,
                                  (unsigned long long)off, n);
    return TS_OK;
}

static int p_read(void *file, uint64_t off, void *buf, size_t n, size_t *got)
{
    pfile *f = file;
    *got = 0;
    int rc = check_range(f, off, n);
    if (rc) return rc;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return sys_error(f->st, errno, "read", f->name);
        }
        if (r == 0) break; /* end of file */
        done += (size_t)r;
    }
    *got = done;
    return TS_OK;
}

/* Write all n bytes at off, retrying short writes and EINTR: 0, or the
 * errno (ENOSPC for a write that makes no progress), *done the bytes
 * written before it. */
static int write_all(int fd, uint64_t off, const void *buf, size_t n, size_t *done)
{
    *done = 0;
    while (*done < n) {
        ssize_t r = pwrite(fd, (const char *)buf + *done, n - *done, (off_t)(off + *done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno;
        if (r == 0) return ENOSPC; /* no progress and no errno: treat as a full disk */
        *done += (size_t)r;
    }
    return 0;
}

static int p_write(void *file, uint64_t off, const void *buf, size_t n)
{
    pfile *f = file;
    if (f->readonly)
        return f->st->host->error(f->st->env, TS_ERR_INVALID,
                                  "posix: %s was opened read-only", f->name);
    int rc = check_range(f, off, n);
    if (rc) return rc;
    size_t done;
    int e = write_all(f->fd, off, buf, n, &done);
    return e ? sys_error(f->st, e, "write", f->name) : TS_OK;
}

static int p_sync(void *file, unsigned flags)
{
    pfile *f = file;
    if (!f->st->sync) return TS_OK;
    if (fsync_retry(f->fd, (flags & TS_SYNC_DATA) != 0) != 0)
        return sys_error(f->st, errno, (flags & TS_SYNC_DATA) ? "fdatasync" : "fsync", f->name);
    return TS_OK;
}

/* The direct descriptor, opened on first use: BAD_DFD where the file
 * system has no O_DIRECT (EINVAL: older tmpfs, some FUSE); -1 without
 * remembering it for other failures (EMFILE, ...), and when the name no
 * longer leads to this handle's file (renamed or replaced since). */
static int direct_fd(pfile *f)
{
    int d = __atomic_load_n(&f->dfd, __ATOMIC_ACQUIRE);
    if (d != NO_DFD) return d;
    int fd;
    do fd = openat(f->st->dirfd, f->name, O_RDWR | O_CLOEXEC | O_DIRECT | O_DSYNC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno != EINVAL) return -1;
    if (fd >= 0) {
        struct stat a, b;
        if (fstat(fd, &a) != 0 || fstat(f->fd, &b) != 0 || a.st_dev != b.st_dev ||
            a.st_ino != b.st_ino) {
            close(fd);
            return -1;
        }
    }
    if (fd < 0) fd = BAD_DFD;
    int expect = NO_DFD;
    if (!__atomic_compare_exchange_n(&f->dfd, &expect, fd, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        if (fd >= 0) close(fd);
        return expect;
    }
    return fd;
}

/* A durable write without fdatasync: one O_DIRECT | O_DSYNC pwrite puts the
 * bytes on stable storage itself (FUA or a cache flush), and skips the page
 * cache and the writeback machinery of fdatasync (a one-frame commit of the
 * log: 1.04-1.15x pwrite + fdatasync here; docs/kernel.md, "Durable
 * commits").  Linux drops cached pages of the range after the write, so
 * buffered reads of the same file stay coherent. */
/* The page cache reads the range ahead while the caller goes on. */
static int p_prefetch(void *file, uint64_t off, uint64_t len)
{
    pfile *f = file;
    int e = posix_fadvise(f->fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
    return e ? TS_ERR_IO : TS_OK;
}

static int p_write_sync(void *file, uint64_t off, const void *buf, size_t n)
{
    pfile *f = file;
    if (f->readonly)
        return f->st->host->error(f->st->env, TS_ERR_INVALID,
                                  "posix: %s was opened read-only", f->name);
    if (off % DIRECT_ALIGN || n % DIRECT_ALIGN || (uintptr_t)buf % DIRECT_ALIGN)
        return f->st->host->error(f->st->env, TS_ERR_INVALID,
                                  "posix: write_sync of %s: offset, size and buffer must be "
                                  "multiples of 4096", f->name);
    int rc = check_range(f, off, n);
    if (rc) return rc;
    if (!f->st->sync) return p_write(file, off, buf, n);
    int fd = direct_fd(f);
    if (fd < 0) return TS_ERR_UNSUPPORTED;
    size_t done;
    int e = write_all(fd, off, buf, n, &done);
    /* nothing written: the device's logical block is larger than 4 KiB, or
     * a copy-on-write file system is full (the caller's plain write then
     * reports that as a write error) */
    if ((e == EINVAL || e == ENOSPC) && done == 0) return TS_ERR_UNSUPPORTED;
    return e ? sys_error(f->st, e, "direct write", f->name) : TS_OK;
}

static int p_size(void *file, uint64_t *out)
{
    pfile *f = file;
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) return sys_error(f->st, errno, "stat", f->name);
    *out = (uint64_t)sb.st_size;
    return TS_OK;
}

static int p_truncate(void *file, uint64_t size)
{
    pfile *f = file;
    if (f->readonly)
        return f->st->host->error(f->st->env, TS_ERR_INVALID,
                                  "posix: %s was opened read-only", f->name);
    int rc = check_range(f, size, 0);
    if (rc) return rc;
    int r;
    do r = ftruncate(f->fd, (off_t)size);
    while (r != 0 && errno == EINTR);
    return r == 0 ? TS_OK : sys_error(f->st, errno, "truncate", f->name);
}

static int p_remove(void *store, const char *name)
{
    pstore *s = store;
    int rc = check_name(s, name);
    if (rc) return rc;
    return unlinkat(s->dirfd, name, 0) == 0 ? TS_OK : sys_error(s, errno, "remove", name);
}

static int p_rename(void *store, const char *from, const char *to)
{
    pstore *s = store;
    int rc = check_name(s, from);
    if (!rc) rc = check_name(s, to);
    if (rc) return rc;
    /* rename(2) replaces an existing target atomically. */
    if (renameat(s->dirfd, from, s->dirfd, to) != 0) {
        int e = errno;
        char buf[128];
        return s->host->error(s->env, e == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO,
                              "posix: rename %s/%s to %s: %s", s->root, from, to,
                              errstr(e, buf, sizeof buf));
    }
    return TS_OK;
}

static int p_exists(void *store, const char *name, int *out)
{
    pstore *s = store;
    *out = 0;
    int rc = check_name(s, name);
    if (rc) return rc;
    struct stat sb;
    if (fstatat(s->dirfd, name, &sb, 0) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return TS_OK;
        return sys_error(s, errno, "stat", name);
    }
    *out = S_ISREG(sb.st_mode); /* consistent with list, which skips the rest */
    return TS_OK;
}

static int p_sync_dir(void *store)
{
    pstore *s = store;
    if (!s->sync) return TS_OK;
    if (fsync_retry(s->dirfd, 0) != 0) return sys_error(s, errno, "fsync directory", ".");
    return TS_OK;
}

static int p_list(void *store, int (*cb)(void *ctx, const char *name), void *ctx)
{
    pstore *s = store;
    /* A descriptor of our own: fdopendir takes ownership of it. */
    int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sys_error(s, errno, "open directory", ".");
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return sys_error(s, e, "open directory", ".");
    }
    int rc = TS_OK;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) rc = sys_error(s, errno, "read directory", ".");
            break;
        }
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcmp(n, LOCK_NAME) == 0) continue;
        int reg = de->d_type == DT_REG;
        if (de->d_type == DT_UNKNOWN) { /* some file systems do not fill d_type */
            struct stat sb;
            reg = fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode);
        }
        if (!reg) continue;
        /* Names the backend would refuse cannot be opened: not ours. */
        int ok = 1;
        for (const char *c = n; *c && ok; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                 (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.';
        if (!ok) continue;
        if ((rc = cb(ctx, n)) != 0) break;
    }
    closedir(d);
    return rc;
}

static const ts_storage_vtab posix_vtab = {
    .struct_size = sizeof(ts_storage_vtab),
    .open = p_open,
    .close = p_close,
    .lock = p_lock,
    .unlock = p_unlock,
    .file_open = p_file_open,
    .file_close = p_file_close,
    .read = p_read,
    .write = p_write,
    .sync = p_sync,
    .size = p_size,
    .truncate = p_truncate,
    .remove = p_remove,
    .rename = p_rename,
    .exists = p_exists,
    .sync_dir = p_sync_dir,
    .list = p_list,
    .control = NULL,
    .write_sync = p_write_sync,
    .prefetch = p_prefetch,
};

static const ts_module posix_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_STORAGE,
    .name = "posix",
    .version = "1.0.0",
    .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_storage_vtab),
    .vtab = &posix_vtab,
};

static const ts_module *const posix_modules[] = { &posix_module, NULL };

static const ts_plugin posix_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "posix",
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = posix_modules,
};

TS_PLUGIN_DEFINE(posix_plugin)
