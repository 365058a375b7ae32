// The descriptor table and the shim's non-template helpers (descriptor_table.hpp).
#include "descriptor_table.hpp"

#include <pthread.h>
#include <sys/sysmacros.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace emmcsim::transport::shim {

FdTable& table() {
  static FdTable* const instance = new FdTable;
  return *instance;
}

File lookup(int fd) {
  FdTable& files = table();
  if (files.empty()) return nullptr;
  return files.find(fd);
}

namespace {

// fork(): the table's mutex is held across it, so the child gets it unlocked and consistent;
// the child's files reconnect on their next operation.
void before_fork() { table().mutex().lock(); }
void after_fork_in_parent() { table().mutex().unlock(); }
void after_fork_in_child() {
  table().mutex().unlock();
  DeviceFile::forked();
}

int open_mapped_file(const char* path, bridge::Node node, int flags, int saved) {
  static std::once_flag at_fork;
  std::call_once(at_fork, [] { ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child); });
  // The placeholder first, so that it gets the lowest free number as open(2) promises.
  const long placeholder = sys::unix_socket((flags & O_CLOEXEC) != 0);
  if (placeholder < 0) return finish<int>(placeholder, saved);
  const int fd = static_cast<int>(placeholder);
  struct stat st {};
  if (const long result = sys::fstat(fd, &st); result < 0) {
    sys::close(fd);
    return finish<int>(result, saved);
  }
  int error = 0;
  File file = DeviceFile::open(path, node, flags, error);
  if (file == nullptr) {
    sys::close(fd);
    return finish<int>(-error, saved);
  }
  file->set_identity(st.st_dev, st.st_ino);
  try {
    FdTable& files = table();
    std::lock_guard<std::mutex> lock(files.mutex());
    files.assign_locked(fd, std::move(file));  // a stale entry for a reused number goes
  } catch (const std::bad_alloc&) {
    sys::close(fd);
    return finish<int>(-ENOMEM, saved);
  }
  return finish<int>(fd, saved);
}

}  // namespace

int open_mapped(const char* path, bridge::Node node, int flags) {
  const int saved = errno;
  try {
    return open_mapped_file(path, node, flags, saved);
  } catch (const std::bad_alloc&) {
    return finish<int>(-ENOMEM, saved);
  } catch (...) {
    return finish<int>(-EIO, saved);
  }
}

int fcntl_common(int (*next)(int, int, ...), int fd, int command, void* argument) {
  if (next == nullptr) return missing_symbol();
  if (command == F_DUPFD || command == F_DUPFD_CLOEXEC) {
    return duplicate_shared(fd, [&] { return next(fd, command, argument); });
  }
  if (command == F_GETFL || command == F_SETFL) {
    if (const File file = lookup(fd)) {
      if (command == F_GETFL) return file->status_flags();
      file->set_status_flags(static_cast<int>(reinterpret_cast<std::intptr_t>(argument)));
      return 0;
    }
  }
  return next(fd, command, argument);
}

bool stat_mapped(int dirfd, const char* path, int flags, struct stat* st, long& result) {
  if ((flags & AT_EMPTY_PATH) != 0 && path != nullptr && path[0] == '\0') {
    const File file = lookup(dirfd);
    if (file == nullptr) return false;
    file->stat(*st);
    result = 0;
    return true;
  }
  bridge::Node node;
  if (!map_path(path, node)) return false;
  result = DeviceFile::stat_path(path, node, *st);
  return true;
}

bool stat_mapped(int dirfd, const char* path, int flags, struct stat64* st, long& result) {
  struct stat plain {};
  if (!stat_mapped(dirfd, path, flags, &plain, result)) return false;
  if (result == 0) std::memcpy(st, &plain, sizeof plain);
  return true;
}

void stat_of(const DeviceFile& file, struct stat* st) { file.stat(*st); }
void stat_of(const DeviceFile& file, struct stat64* st) {
  struct stat plain {};
  file.stat(plain);
  std::memcpy(st, &plain, sizeof plain);
}

void fill_statx(const struct stat& st, struct statx& x) {
  std::memset(&x, 0, sizeof x);
  x.stx_mask = STATX_BASIC_STATS;
  x.stx_blksize = static_cast<std::uint32_t>(st.st_blksize);
  x.stx_nlink = static_cast<std::uint32_t>(st.st_nlink);
  x.stx_uid = st.st_uid;
  x.stx_gid = st.st_gid;
  x.stx_mode = static_cast<std::uint16_t>(st.st_mode);
  x.stx_ino = st.st_ino;
  x.stx_size = static_cast<std::uint64_t>(st.st_size);
  x.stx_blocks = static_cast<std::uint64_t>(st.st_blocks);
  x.stx_atime = {st.st_atim.tv_sec, static_cast<std::uint32_t>(st.st_atim.tv_nsec), 0};
  x.stx_mtime = {st.st_mtim.tv_sec, static_cast<std::uint32_t>(st.st_mtim.tv_nsec), 0};
  x.stx_ctime = {st.st_ctim.tv_sec, static_cast<std::uint32_t>(st.st_ctim.tv_nsec), 0};
  x.stx_rdev_major = major(st.st_rdev);
  x.stx_rdev_minor = minor(st.st_rdev);
  x.stx_dev_major = major(st.st_dev);
  x.stx_dev_minor = minor(st.st_dev);
}

bool probe_mapped(const char* path, long& result) {
  bridge::Node node;
  if (!map_path(path, node)) return false;
  struct stat st {};
  result = DeviceFile::stat_path(path, node, st);
  return true;
}

}  // namespace emmcsim::transport::shim
