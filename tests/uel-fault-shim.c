/* gst-uel: an LD_PRELOAD shim that injects read and open faults
 * SPDX-License-Identifier: MIT
 *
 * Interposes pread/pread64 (and their _FORTIFY_SOURCE variants), the open
 * family, madvise, pwrite/pwrite64 and fdatasync/fsync, and acts only on
 * the files the test names (see
 * uel-fault-shim.h).  Everything else goes to the next definition, the C
 * library's (or a sanitizer's interceptor, which then calls us).
 *
 * Built without _FILE_OFFSET_BITS=64 so that `pread` and `open` here are
 * the symbols of those names rather than redirections to the 64-bit ones.
 * Plain C and libc only: it runs inside every call of the process,
 * sanitizer runtimes included.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uel-fault-shim.h"

/* the exported controls, and the _FORTIFY_SOURCE entry points that no
 * header declares without it */
void uel_fault_configure (const UelFaultConfig * config);
void uel_fault_get_counters (UelFaultCounters * counters);
ssize_t __pread_chk (int fd, void *buf, size_t count, off_t offset,
    size_t buflen);
ssize_t __pread64_chk (int fd, void *buf, size_t count, off64_t offset,
    size_t buflen);
int __open_2 (const char *path, int flags);
int __open64_2 (const char *path, int flags);

typedef ssize_t (*PreadFunc) (int, void *, size_t, off64_t);
typedef int (*OpenFunc) (const char *, int, ...);
typedef int (*OpenatFunc) (int, const char *, int, ...);
typedef ssize_t (*PreadChkFunc) (int, void *, size_t, off64_t, size_t);
typedef int (*Open2Func) (const char *, int);
typedef ssize_t (*PreadvFunc) (int, const struct iovec *, int, off64_t);

/* the configuration: mode is read without the lock to let untargeted
 * calls through at no cost; the rest is copied under the lock */
static atomic_int cfg_mode = UEL_FAULT_NONE;
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static char cfg_match[PATH_MAX];
static uint64_t cfg_offset;
static uint64_t cfg_end;
static long cfg_remaining;      /* EIO faults left, -1 = unlimited */
static size_t cfg_short_max;

static atomic_ulong n_calls;
static atomic_ulong n_faults;
static atomic_ulong n_toggle;   /* EINTR: odd calls fail */

typedef struct
{
  int mode;
  char match[PATH_MAX];
  uint64_t offset;
  uint64_t end;
  size_t short_max;
} Snapshot;

static void *
next_symbol (const char *name)
{
  void *sym = dlsym (RTLD_NEXT, name);

  if (!sym) {
    static const char msg[] = "uel-fault-shim: no next definition of a "
        "function it wraps\n";
    (void) !write (2, msg, sizeof msg - 1);
    _exit (127);
  }
  return sym;
}

/* resolved once per symbol; racing threads find the same address */
#define REAL(type, name) \
  static _Atomic (type) real_##name; \
  type fn_##name = atomic_load (&real_##name); \
  if (!fn_##name) { \
    fn_##name = (type) next_symbol (#name); \
    atomic_store (&real_##name, fn_##name); \
  }

void
uel_fault_configure (const UelFaultConfig * config)
{
  pthread_mutex_lock (&cfg_lock);
  atomic_store (&cfg_mode, UEL_FAULT_NONE);
  if (config && config->mode != UEL_FAULT_NONE && config->match) {
    snprintf (cfg_match, sizeof cfg_match, "%s", config->match);
    cfg_offset = config->offset;
    cfg_end = config->end;
    cfg_remaining = config->max_faults;
    cfg_short_max = config->short_max;
  }
  atomic_store (&n_calls, 0);
  atomic_store (&n_faults, 0);
  atomic_store (&n_toggle, 0);
  if (config && config->mode != UEL_FAULT_NONE && config->match)
    atomic_store (&cfg_mode, (int) config->mode);
  pthread_mutex_unlock (&cfg_lock);
}

void
uel_fault_get_counters (UelFaultCounters * counters)
{
  counters->calls = atomic_load (&n_calls);
  counters->faults = atomic_load (&n_faults);
}

/* copies the configuration when @modes holds its mode */
static int
snapshot (Snapshot * s, int modes)
{
  int mode = atomic_load (&cfg_mode);

  if (mode == UEL_FAULT_NONE || !(modes & (1 << mode)))
    return 0;
  pthread_mutex_lock (&cfg_lock);
  s->mode = atomic_load (&cfg_mode);
  memcpy (s->match, cfg_match, sizeof s->match);
  s->offset = cfg_offset;
  s->end = cfg_end;
  s->short_max = cfg_short_max;
  pthread_mutex_unlock (&cfg_lock);
  return s->mode != UEL_FAULT_NONE && (modes & (1 << s->mode));
}

static int
fd_matches (int fd, const char *match)
{
  char link[64], target[PATH_MAX];
  ssize_t n;

  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  n = readlink (link, target, sizeof target - 1);
  if (n < 0)
    return 0;
  target[n] = '\0';
  return strstr (target, match) != NULL;
}

/* takes one of the EIO faults left */
static int
take_fault (void)
{
  int ok;

  pthread_mutex_lock (&cfg_lock);
  ok = cfg_remaining != 0;
  if (cfg_remaining > 0)
    cfg_remaining--;
  pthread_mutex_unlock (&cfg_lock);
  return ok;
}

#define READ_MODES ((1 << UEL_FAULT_EIO) | (1 << UEL_FAULT_SHORT) | \
    (1 << UEL_FAULT_EINTR) | (1 << UEL_FAULT_EOF))

static ssize_t
faulty_pread (PreadFunc real, int fd, void *buf, size_t count,
    off64_t offset)
{
  Snapshot s;
  uint64_t off = (uint64_t) offset;
  size_t most = count;
  ssize_t r;

  if (offset < 0 || !snapshot (&s, READ_MODES) || !fd_matches (fd, s.match))
    return real (fd, buf, count, offset);
  atomic_fetch_add (&n_calls, 1);

  switch (s.mode) {
    case UEL_FAULT_EIO:
      if (count > 0 && off + count > s.offset
          && (s.end == 0 || off < s.end) && take_fault ()) {
        atomic_fetch_add (&n_faults, 1);
        errno = EIO;
        return -1;
      }
      break;
    case UEL_FAULT_SHORT:
      most = s.short_max ? s.short_max : count / 2;
      if (most == 0)
        most = 1;
      break;
    case UEL_FAULT_EINTR:
      if (atomic_fetch_add (&n_toggle, 1) % 2 == 0) {
        atomic_fetch_add (&n_faults, 1);
        errno = EINTR;
        return -1;
      }
      break;
    case UEL_FAULT_EOF:
      if (count > 0 && off >= s.offset) {
        atomic_fetch_add (&n_faults, 1);
        return 0;
      }
      if (off + count > s.offset)
        most = (size_t) (s.offset - off);
      break;
    default:
      break;
  }
  /* The whole request goes to the system and only the result is cut:
   * an O_DIRECT descriptor refuses a length that is not block-aligned,
   * and the caller may not rely on bytes past what a read returned. */
  r = real (fd, buf, count, offset);
  if (r > 0 && (size_t) r > most) {
    atomic_fetch_add (&n_faults, 1);
    r = (ssize_t) most;
  }
  return r;
}

ssize_t
pread (int fd, void *buf, size_t count, off_t offset)
{
  REAL (PreadFunc, pread);
  return faulty_pread (fn_pread, fd, buf, count, offset);
}

ssize_t
pread64 (int fd, void *buf, size_t count, off64_t offset)
{
  REAL (PreadFunc, pread64);
  return faulty_pread (fn_pread64, fd, buf, count, offset);
}

/* A read into several buffers (the reader's runs of small tensors): while
 * faults are on, it reads the first buffer only, through pread's faults,
 * which is a short read that every caller must take anyway. */
static ssize_t
faulty_preadv (PreadvFunc real, int fd, const struct iovec *iov, int iovcnt,
    off64_t offset)
{
  int i = 0;

  if (atomic_load (&cfg_mode) == UEL_FAULT_NONE)
    return real (fd, iov, iovcnt, offset);
  while (i < iovcnt && iov[i].iov_len == 0)
    i++;
  if (i == iovcnt)
    return 0;
  return pread64 (fd, iov[i].iov_base, iov[i].iov_len, offset);
}

ssize_t
preadv (int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
  REAL (PreadvFunc, preadv);
  return faulty_preadv (fn_preadv, fd, iov, iovcnt, offset);
}

ssize_t
preadv64 (int fd, const struct iovec *iov, int iovcnt, off64_t offset)
{
  REAL (PreadvFunc, preadv64);
  return faulty_preadv (fn_preadv64, fd, iov, iovcnt, offset);
}

/* the checked variants only add a buffer-size check: keep it, then go
 * through the same faults */
ssize_t
__pread_chk (int fd, void *buf, size_t count, off_t offset, size_t buflen)
{
  if (count > buflen) {
    REAL (PreadChkFunc, __pread_chk);
    return fn___pread_chk (fd, buf, count, offset, buflen);
  }
  return pread (fd, buf, count, offset);
}

ssize_t
__pread64_chk (int fd, void *buf, size_t count, off64_t offset,
    size_t buflen)
{
  if (count > buflen) {
    REAL (PreadChkFunc, __pread64_chk);
    return fn___pread64_chk (fd, buf, count, offset, buflen);
  }
  return pread64 (fd, buf, count, offset);
}

/* ------------------------------------------------------------------ */
/* opens */

static int
refuse_direct (const char *path, int flags)
{
  Snapshot s;

  if (!path || !snapshot (&s, 1 << UEL_FAULT_NODIRECT)
      || !strstr (path, s.match))
    return 0;
  atomic_fetch_add (&n_calls, 1);
  if (!(flags & O_DIRECT))
    return 0;
  atomic_fetch_add (&n_faults, 1);
  errno = EINVAL;
  return 1;
}

static int
needs_mode (int flags)
{
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

#define OPEN_BODY(name) \
  mode_t mode = 0; \
  REAL (OpenFunc, name); \
  if (needs_mode (flags)) { \
    va_list ap; \
    va_start (ap, flags); \
    mode = va_arg (ap, mode_t); \
    va_end (ap); \
  } \
  if (refuse_direct (path, flags)) \
    return -1; \
  return fn_##name (path, flags, mode)

#define OPENAT_BODY(name) \
  mode_t mode = 0; \
  REAL (OpenatFunc, name); \
  if (needs_mode (flags)) { \
    va_list ap; \
    va_start (ap, flags); \
    mode = va_arg (ap, mode_t); \
    va_end (ap); \
  } \
  if (refuse_direct (path, flags)) \
    return -1; \
  return fn_##name (dirfd, path, flags, mode)

int
open (const char *path, int flags, ...)
{
  OPEN_BODY (open);
}

int
open64 (const char *path, int flags, ...)
{
  OPEN_BODY (open64);
}

int
openat (int dirfd, const char *path, int flags, ...)
{
  OPENAT_BODY (openat);
}

int
openat64 (int dirfd, const char *path, int flags, ...)
{
  OPENAT_BODY (openat64);
}

int
__open_2 (const char *path, int flags)
{
  REAL (Open2Func, __open_2);
  if (refuse_direct (path, flags))
    return -1;
  return fn___open_2 (path, flags);
}

int
__open64_2 (const char *path, int flags)
{
  REAL (Open2Func, __open64_2);
  if (refuse_direct (path, flags))
    return -1;
  return fn___open64_2 (path, flags);
}

/* ------------------------------------------------------------------ */
/* memory that the kernel cannot fault in */

typedef int (*MadviseFunc) (void *, size_t, int);

int
madvise (void *addr, size_t len, int advice)
{
  Snapshot s;

  REAL (MadviseFunc, madvise);
  if (advice == MADV_POPULATE_WRITE
      && snapshot (&s, 1 << UEL_FAULT_POPULATE_NOMEM)) {
    atomic_fetch_add (&n_calls, 1);
    if (len >= s.offset) {
      atomic_fetch_add (&n_faults, 1);
      errno = ENOMEM;
      return -1;
    }
  }
  return fn_madvise (addr, len, advice);
}

/* ------------------------------------------------------------------ */
/* a full disk, a failed write-back */

typedef ssize_t (*PwriteFunc) (int, const void *, size_t, off64_t);
typedef int (*SyncFunc) (int);

static ssize_t
full_pwrite (PwriteFunc real, int fd, const void *buf, size_t count,
    off64_t offset)
{
  Snapshot s;
  uint64_t off = (uint64_t) offset;

  if (offset < 0 || !snapshot (&s, 1 << UEL_FAULT_NOSPC)
      || !fd_matches (fd, s.match))
    return real (fd, buf, count, offset);
  atomic_fetch_add (&n_calls, 1);
  if (count > 0 && off >= s.offset) {
    atomic_fetch_add (&n_faults, 1);
    errno = ENOSPC;
    return -1;
  }
  if (off + count > s.offset) {
    atomic_fetch_add (&n_faults, 1);
    count = (size_t) (s.offset - off);
  }
  return real (fd, buf, count, offset);
}

ssize_t
pwrite (int fd, const void *buf, size_t count, off_t offset)
{
  REAL (PwriteFunc, pwrite);
  return full_pwrite (fn_pwrite, fd, buf, count, offset);
}

ssize_t
pwrite64 (int fd, const void *buf, size_t count, off64_t offset)
{
  REAL (PwriteFunc, pwrite64);
  return full_pwrite (fn_pwrite64, fd, buf, count, offset);
}

static int
failed_sync (SyncFunc real, int fd)
{
  Snapshot s;

  if (!snapshot (&s, 1 << UEL_FAULT_SYNC_EIO) || !fd_matches (fd, s.match))
    return real (fd);
  atomic_fetch_add (&n_calls, 1);
  atomic_fetch_add (&n_faults, 1);
  errno = EIO;
  return -1;
}

int
fdatasync (int fd)
{
  REAL (SyncFunc, fdatasync);
  return failed_sync (fn_fdatasync, fd);
}

int
fsync (int fd)
{
  REAL (SyncFunc, fsync);
  return failed_sync (fn_fsync, fd);
}
