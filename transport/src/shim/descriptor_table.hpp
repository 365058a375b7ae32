// The shim's own state and the helpers every interposer family uses: the table of descriptors
// that stand for simulated device nodes (descriptor_table.cpp), and the forwarding templates that
// make each libc interposer one line of "ours or the next definition's" (interposers.cpp).
// Nothing here calls an interposed symbol: the next definitions (libc.hpp) and raw system calls.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "device_file.hpp"
#include "libc.hpp"

namespace emmcsim::transport::shim {

using File = std::shared_ptr<DeviceFile>;

// Descriptor → open simulated node. Allocated once and never destroyed: close() may run from
// other libraries' destructors at exit. A file may be destroyed with the mutex held: closing its
// connection is one raw close(2), which never comes back here, and keeps errno.
class FdTable {
 public:
  bool empty() const { return count_.load(std::memory_order_acquire) == 0; }
  std::mutex& mutex() { return mutex_; }

  // The file behind `fd` (nullptr when the shim does not own it); takes the mutex.
  File find(int fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    return find_locked(fd);
  }

  // With mutex() held. An entry whose descriptor is no longer its placeholder (closed behind the
  // shim's back, e.g. by fclose of an fdopen'd stream, and reused) is dropped.
  File find_locked(int fd) {
    const auto entry = files_.find(fd);
    if (entry == files_.end()) return nullptr;
    struct stat st {};
    if (sys::fstat(fd, &st) == 0 && entry->second->has_identity(st.st_dev, st.st_ino)) {
      return entry->second;
    }
    erase_locked(fd);
    return nullptr;
  }

  // With mutex() held: `fd` is now `file` (whatever it was before is dropped). May throw
  // std::bad_alloc, leaving `fd` unmapped.
  void assign_locked(int fd, File file) {
    erase_locked(fd);
    files_.try_emplace(fd, std::move(file));
    count_.fetch_add(1, std::memory_order_release);
  }

  // With mutex() held. Returns whether `fd` was mapped.
  bool erase_locked(int fd) {
    const auto entry = files_.find(fd);
    if (entry == files_.end()) return false;
    files_.erase(entry);
    count_.fetch_sub(1, std::memory_order_release);
    return true;
  }

  void erase_range_locked(unsigned first, unsigned last) {
    for (auto entry = files_.begin(); entry != files_.end();) {
      const auto fd = static_cast<unsigned>(entry->first);
      if (fd >= first && fd <= last) {
        entry = files_.erase(entry);
        count_.fetch_sub(1, std::memory_order_release);
      } else {
        ++entry;
      }
    }
  }

 private:
  std::mutex mutex_;
  std::unordered_map<int, File> files_;
  std::atomic<std::size_t> count_{0};
};

// The one table, allocated on first use and never destroyed.
FdTable& table();

// The file behind `fd`, or nullptr; cheap while no simulated node is open.
File lookup(int fd);

// Turns a kernel-style result (>= 0 or -errno) into the C library's (-1 and errno); errno is
// left as the caller had it on success.
template <typename Result>
Result finish(long result, int saved_errno) {
  if (result < 0) {
    errno = static_cast<int>(-result);
    return -1;
  }
  errno = saved_errno;
  return static_cast<Result>(result);
}

inline int missing_symbol() {
  errno = ENOSYS;
  return -1;
}

inline bool needs_mode(int flags) { return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE; }

// open() and its variants on a mapped path: a placeholder descriptor (the lowest free number, as
// open(2) promises) that stands for a new DeviceFile; nothing escapes into the C caller.
int open_mapped(const char* path, bridge::Node node, int flags);

// dup, dup2, dup3, fcntl(F_DUPFD): `duplicate` makes the new descriptor; the new number then
// shares the file of `fd` (and loses whatever file it had).
template <typename Duplicate>
int duplicate_shared(int fd, Duplicate&& duplicate) {
  FdTable& files = table();
  if (files.empty()) return duplicate();
  std::lock_guard<std::mutex> lock(files.mutex());
  int result = duplicate();
  int saved = errno;
  if (result >= 0 && result != fd) {
    File file = files.find_locked(fd);
    files.erase_locked(result);  // the kernel closed what the number was
    if (file != nullptr) {
      try {
        files.assign_locked(result, std::move(file));
      } catch (const std::bad_alloc&) {
        sys::close(result);  // better no descriptor than one that is not the node
        result = -1;
        saved = ENOMEM;
      }
    }
  }
  errno = saved;
  return result;
}

// fcntl and fcntl64: F_DUPFD shares the file, F_GETFL/F_SETFL are the file's flags, the rest
// (F_GETFD, F_SETFD, locks) goes to the placeholder.
int fcntl_common(int (*next)(int, int, ...), int fd, int command, void* argument);

// struct stat64 and struct stat are one layout on 64-bit Linux.
static_assert(sizeof(struct stat64) == sizeof(struct stat), "stat64 differs from stat");

// The stat of what `dirfd` and `path` name when the shim owns it: a mapped descriptor with
// AT_EMPTY_PATH and an empty path, or a mapped path (an absolute one: dirfd does not matter).
// Returns false for everything else, which goes to the C library.
bool stat_mapped(int dirfd, const char* path, int flags, struct stat* st, long& result);
// The same into a struct stat64.
bool stat_mapped(int dirfd, const char* path, int flags, struct stat64* st, long& result);

void stat_of(const DeviceFile& file, struct stat* st);
void stat_of(const DeviceFile& file, struct stat64* st);

// statx's view of a struct stat.
void fill_statx(const struct stat& st, struct statx& x);

// Whether a mapped path exists (the daemon is asked): 0 or -errno. False for other paths.
bool probe_mapped(const char* path, long& result);

// ---- Forwarding: each interposer family is one of these, given how to call the next definition.

// The next definition with the caller's arguments, or ENOSYS when there is none.
template <typename Next, typename... Arguments>
auto call_next(Next next, Arguments... arguments) -> decltype(next(arguments...)) {
  if (next == nullptr) return missing_symbol();
  return next(arguments...);
}

// The mode argument of open(2) and its variants, read only when the flags say there is one.
inline mode_t mode_argument(int flags, va_list arguments) {
  return needs_mode(flags) ? static_cast<mode_t>(va_arg(arguments, mode_t)) : 0;
}

// open, open64, openat, openat64 and the fortified __open*_2: a mapped path opens the simulated
// node (only absolute paths are mapped, so dirfd does not matter); any other goes to `forward`.
template <typename Forward>
int open_or_forward(const char* path, int flags, Forward forward) {
  bridge::Node node;
  if (map_path(path, node)) return open_mapped(path, node, flags);
  return forward();
}

// stat, lstat, fstatat and their 64 and pre-2.33 __x variants, into a struct stat or stat64.
template <typename Stat, typename Forward>
int stat_or_forward(int dirfd, const char* path, int flags, Stat* st, Forward forward) {
  const int saved = errno;
  long result = 0;
  if (stat_mapped(dirfd, path, flags, st, result)) return finish<int>(result, saved);
  return forward();
}

// read, write, pread, pwrite, lseek, fsync and their 64 variants: a descriptor the shim owns is
// served by its file (a kernel-style result turned into the C library's), any other goes on.
template <typename Result, typename Serve, typename Forward>
Result file_or_forward(int fd, Serve serve, Forward forward) {
  if (const File file = lookup(fd)) {
    const int saved = errno;
    return finish<Result>(serve(*file), saved);
  }
  return forward();
}

// fstat, fstat64 and the pre-2.33 __fxstat variants.
template <typename Stat, typename Forward>
int fstat_or_forward(int fd, Stat* st, Forward forward) {
  if (const File file = lookup(fd)) {
    stat_of(*file, st);
    return 0;
  }
  return forward();
}

}  // namespace emmcsim::transport::shim
