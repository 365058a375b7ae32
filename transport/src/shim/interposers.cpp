// libemmcsim-mmcioctl.so: the LD_PRELOAD shim that lets unmodified tools (mmc-utils, dd, blkid)
// use the card `emmcsim serve` simulates. docs/shim.md is the user's guide.
//
// open() of /dev/<D>, /dev/<D>boot0, boot1 or rpmb (D = $EMMCSIM_DEVICE, default mmcblk0)
// connects to the daemon ($EMMCSIM_SOCKET) and returns a descriptor of the process's own: an
// unconnected AF_UNIX socket standing in for the device node, so the number is real and unique,
// open(2)'s lowest-free-number rule holds, and anything the shim does not replace (readv, mmap,
// stdio's internal calls) fails on the socket (EINVAL, ENOTCONN, ENODEV) instead of reaching the
// protocol stream. The connection itself stays private to the DeviceFile, so `dd`'s open/dup2/close
// dance cannot close it. A table maps each descriptor to its DeviceFile; dup, dup2, dup3 and
// fcntl(F_DUPFD) share it, close drops it, and every lookup checks that the descriptor is still
// the placeholder (st_dev/st_ino) in case it was closed behind the shim's back and reused.
//
// Every other descriptor and path goes to the next definition (the C library) untouched. Nothing
// here calls an interposed symbol: the shim uses the next definitions and raw system calls.
#undef _FORTIFY_SOURCE  // the fortified inline open() and read() would clash with these definitions

#include <fcntl.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>

#include "descriptor_table.hpp"

// Declared by glibc only under _FORTIFY_SOURCE, or no longer (__fxstat: compatibility symbols
// that binaries built before glibc 2.33 still import).
extern "C" {
int __open_2(const char* path, int flags);
int __open64_2(const char* path, int flags);
int __openat_2(int dirfd, const char* path, int flags);
int __openat64_2(int dirfd, const char* path, int flags);
int __fxstat(int version, int fd, struct stat* st);
int __fxstat64(int version, int fd, struct stat64* st);
int __xstat(int version, const char* path, struct stat* st);
int __xstat64(int version, const char* path, struct stat64* st);
int __lxstat(int version, const char* path, struct stat* st);
int __lxstat64(int version, const char* path, struct stat64* st);
int __fxstatat(int version, int dirfd, const char* path, struct stat* st, int flags);
int __fxstatat64(int version, int dirfd, const char* path, struct stat64* st, int flags);
}

using emmcsim::transport::shim::call_next;
using emmcsim::transport::shim::DeviceFile;
using emmcsim::transport::shim::fcntl_common;
using emmcsim::transport::shim::File;
using emmcsim::transport::shim::file_or_forward;
using emmcsim::transport::shim::fill_statx;
using emmcsim::transport::shim::finish;
using emmcsim::transport::shim::fstat_or_forward;
using emmcsim::transport::shim::lookup;
using emmcsim::transport::shim::missing_symbol;
using emmcsim::transport::shim::mode_argument;
using emmcsim::transport::shim::next_symbol;
using emmcsim::transport::shim::open_or_forward;
using emmcsim::transport::shim::probe_mapped;
using emmcsim::transport::shim::stat_mapped;
using emmcsim::transport::shim::stat_or_forward;
using emmcsim::transport::shim::table;

// The interposers. Each resolves the next definition once, on first use.
extern "C" {

// ---- open --------------------------------------------------------------------------------

int open(const char* path, int flags, ...) {
  static const auto next = next_symbol<int (*)(const char*, int, ...)>("open");
  va_list arguments;
  va_start(arguments, flags);
  const mode_t mode = mode_argument(flags, arguments);
  va_end(arguments);
  return open_or_forward(path, flags, [&] { return call_next(next, path, flags, mode); });
}

int open64(const char* path, int flags, ...) {
  static const auto next = next_symbol<int (*)(const char*, int, ...)>("open64");
  va_list arguments;
  va_start(arguments, flags);
  const mode_t mode = mode_argument(flags, arguments);
  va_end(arguments);
  return open_or_forward(path, flags, [&] { return call_next(next, path, flags, mode); });
}

int openat(int dirfd, const char* path, int flags, ...) {
  static const auto next = next_symbol<int (*)(int, const char*, int, ...)>("openat");
  va_list arguments;
  va_start(arguments, flags);
  const mode_t mode = mode_argument(flags, arguments);
  va_end(arguments);
  return open_or_forward(path, flags, [&] { return call_next(next, dirfd, path, flags, mode); });
}

int openat64(int dirfd, const char* path, int flags, ...) {
  static const auto next = next_symbol<int (*)(int, const char*, int, ...)>("openat64");
  va_list arguments;
  va_start(arguments, flags);
  const mode_t mode = mode_argument(flags, arguments);
  va_end(arguments);
  return open_or_forward(path, flags, [&] { return call_next(next, dirfd, path, flags, mode); });
}

// What open() compiles to under _FORTIFY_SOURCE when the flags need no mode.
int __open_2(const char* path, int flags) {
  static const auto next = next_symbol<int (*)(const char*, int)>("__open_2");
  return open_or_forward(path, flags, [&] { return call_next(next, path, flags); });
}

int __open64_2(const char* path, int flags) {
  static const auto next = next_symbol<int (*)(const char*, int)>("__open64_2");
  return open_or_forward(path, flags, [&] { return call_next(next, path, flags); });
}

int __openat_2(int dirfd, const char* path, int flags) {
  static const auto next = next_symbol<int (*)(int, const char*, int)>("__openat_2");
  return open_or_forward(path, flags, [&] { return call_next(next, dirfd, path, flags); });
}

int __openat64_2(int dirfd, const char* path, int flags) {
  static const auto next = next_symbol<int (*)(int, const char*, int)>("__openat64_2");
  return open_or_forward(path, flags, [&] { return call_next(next, dirfd, path, flags); });
}

// ---- descriptors -------------------------------------------------------------------------

int close(int fd) {
  static const auto next = next_symbol<int (*)(int)>("close");
  if (next == nullptr) return missing_symbol();
  auto& files = table();
  if (files.empty()) return next(fd);
  std::unique_lock<std::mutex> lock(files.mutex());
  if (!files.erase_locked(fd)) {
    lock.unlock();
    return next(fd);
  }
  // Still under the mutex: the number must not be reused before its entry is gone. The file's
  // connection closed with its last descriptor.
  return next(fd);
}

int dup(int fd) noexcept {
  static const auto next = next_symbol<int (*)(int)>("dup");
  if (next == nullptr) return missing_symbol();
  return emmcsim::transport::shim::duplicate_shared(fd, [&] { return next(fd); });
}

int dup2(int fd, int fd2) noexcept {
  static const auto next = next_symbol<int (*)(int, int)>("dup2");
  if (next == nullptr) return missing_symbol();
  return emmcsim::transport::shim::duplicate_shared(fd, [&] { return next(fd, fd2); });
}

int dup3(int fd, int fd2, int flags) noexcept {
  static const auto next = next_symbol<int (*)(int, int, int)>("dup3");
  if (next == nullptr) return missing_symbol();
  return emmcsim::transport::shim::duplicate_shared(fd, [&] { return next(fd, fd2, flags); });
}

int fcntl(int fd, int command, ...) {
  static const auto next = next_symbol<int (*)(int, int, ...)>("fcntl");
  va_list arguments;
  va_start(arguments, command);
  void* argument = va_arg(arguments, void*);
  va_end(arguments);
  return fcntl_common(next, fd, command, argument);
}

int fcntl64(int fd, int command, ...) {
  static const auto next = next_symbol<int (*)(int, int, ...)>("fcntl64");
  va_list arguments;
  va_start(arguments, command);
  void* argument = va_arg(arguments, void*);
  va_end(arguments);
  return fcntl_common(next, fd, command, argument);
}

int close_range(unsigned int first, unsigned int last, int flags) noexcept {
  static const auto next = next_symbol<int (*)(unsigned int, unsigned int, int)>("close_range");
  if (next == nullptr) return missing_symbol();
  auto& files = table();
  if (files.empty() || (static_cast<unsigned>(flags) & CLOSE_RANGE_CLOEXEC) != 0) return next(first, last, flags);
  std::lock_guard<std::mutex> lock(files.mutex());
  const int result = next(first, last, flags);
  if (result == 0) files.erase_range_locked(first, last);
  return result;
}

void closefrom(int lowest) noexcept {
  static const auto next = next_symbol<void (*)(int)>("closefrom");
  if (next == nullptr) return;
  auto& files = table();
  if (files.empty() || lowest < 0) {
    next(lowest);
    return;
  }
  std::lock_guard<std::mutex> lock(files.mutex());
  next(lowest);
  files.erase_range_locked(static_cast<unsigned>(lowest), ~0u);
}

// ---- I/O ---------------------------------------------------------------------------------

ssize_t read(int fd, void* buffer, size_t size) {
  static const auto next = next_symbol<ssize_t (*)(int, void*, size_t)>("read");
  return file_or_forward<ssize_t>(
      fd, [&](DeviceFile& file) { return file.read(buffer, size); }, [&] { return call_next(next, fd, buffer, size); });
}

ssize_t write(int fd, const void* buffer, size_t size) {
  static const auto next = next_symbol<ssize_t (*)(int, const void*, size_t)>("write");
  return file_or_forward<ssize_t>(
      fd, [&](DeviceFile& file) { return file.write(buffer, size); },
      [&] { return call_next(next, fd, buffer, size); });
}

ssize_t pread(int fd, void* buffer, size_t size, off_t offset) {
  static const auto next = next_symbol<ssize_t (*)(int, void*, size_t, off_t)>("pread");
  return file_or_forward<ssize_t>(
      fd, [&](DeviceFile& file) { return file.pread(buffer, size, offset); },
      [&] { return call_next(next, fd, buffer, size, offset); });
}

ssize_t pread64(int fd, void* buffer, size_t size, off64_t offset) {
  static const auto next = next_symbol<ssize_t (*)(int, void*, size_t, off64_t)>("pread64");
  return file_or_forward<ssize_t>(
      fd, [&](DeviceFile& file) { return file.pread(buffer, size, offset); },
      [&] { return call_next(next, fd, buffer, size, offset); });
}

ssize_t pwrite(int fd, const void* buffer, size_t size, off_t offset) {
  static const auto next = next_symbol<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  return file_or_forward<ssize_t>(
      fd, [&](DeviceFile& file) { return file.pwrite(buffer, size, offset); },
      [&] { return call_next(next, fd, buffer, size, offset); });
}

ssize_t pwrite64(int fd, const void* buffer, size_t size, off64_t offset) {
  static const auto next = next_symbol<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
  return file_or_forward<ssize_t>(
      fd, [&](DeviceFile& file) { return file.pwrite(buffer, size, offset); },
      [&] { return call_next(next, fd, buffer, size, offset); });
}

off_t lseek(int fd, off_t offset, int whence) noexcept {
  static const auto next = next_symbol<off_t (*)(int, off_t, int)>("lseek");
  return file_or_forward<off_t>(
      fd, [&](DeviceFile& file) { return file.lseek(offset, whence); },
      [&] { return call_next(next, fd, offset, whence); });
}

off64_t lseek64(int fd, off64_t offset, int whence) noexcept {
  static const auto next = next_symbol<off64_t (*)(int, off64_t, int)>("lseek64");
  return file_or_forward<off64_t>(
      fd, [&](DeviceFile& file) { return file.lseek(offset, whence); },
      [&] { return call_next(next, fd, offset, whence); });
}

int fsync(int fd) {
  static const auto next = next_symbol<int (*)(int)>("fsync");
  return file_or_forward<int>(
      fd, [&](DeviceFile& file) { return file.fsync(); }, [&] { return call_next(next, fd); });
}

int fdatasync(int fd) {
  static const auto next = next_symbol<int (*)(int)>("fdatasync");
  return file_or_forward<int>(
      fd, [&](DeviceFile& file) { return file.fsync(); }, [&] { return call_next(next, fd); });
}

// A block device cannot be truncated.
int ftruncate(int fd, off_t length) noexcept {
  static const auto next = next_symbol<int (*)(int, off_t)>("ftruncate");
  if (lookup(fd) != nullptr) return finish<int>(-EINVAL, errno);
  return next != nullptr ? next(fd, length) : missing_symbol();
}

int ftruncate64(int fd, off64_t length) noexcept {
  static const auto next = next_symbol<int (*)(int, off64_t)>("ftruncate64");
  if (lookup(fd) != nullptr) return finish<int>(-EINVAL, errno);
  return next != nullptr ? next(fd, length) : missing_symbol();
}

// Advice is accepted and ignored (the daemon has no page cache to drop); returns an error number.
int posix_fadvise(int fd, off_t offset, off_t length, int advice) noexcept {
  static const auto next = next_symbol<int (*)(int, off_t, off_t, int)>("posix_fadvise");
  if (lookup(fd) != nullptr)
    return length < 0 || advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE ? EINVAL : 0;
  return next != nullptr ? next(fd, offset, length, advice) : ENOSYS;
}

int posix_fadvise64(int fd, off64_t offset, off64_t length, int advice) noexcept {
  static const auto next = next_symbol<int (*)(int, off64_t, off64_t, int)>("posix_fadvise64");
  if (lookup(fd) != nullptr)
    return length < 0 || advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE ? EINVAL : 0;
  return next != nullptr ? next(fd, offset, length, advice) : ENOSYS;
}

// ---- ioctl and fstat ---------------------------------------------------------------------

int ioctl(int fd, unsigned long request, ...) noexcept {
  static const auto next = next_symbol<int (*)(int, unsigned long, ...)>("ioctl");
  va_list arguments;
  va_start(arguments, request);
  void* argument = va_arg(arguments, void*);
  va_end(arguments);
  if (const File file = lookup(fd)) {
    // The kernel takes the request as 32 bits. The VFS handles these four for every file; the
    // placeholder socket takes them as the node would.
    const auto command = static_cast<unsigned int>(request);
    if (command != FIOCLEX && command != FIONCLEX && command != FIONBIO && command != FIOASYNC) {
      const int saved = errno;
      return finish<int>(file->ioctl(command, argument), saved);
    }
  }
  return next != nullptr ? next(fd, request, argument) : missing_symbol();
}

int fstat(int fd, struct stat* st) noexcept {
  static const auto next = next_symbol<int (*)(int, struct stat*)>("fstat");
  return fstat_or_forward(fd, st, [&] { return call_next(next, fd, st); });
}

int fstat64(int fd, struct stat64* st) noexcept {
  static const auto next = next_symbol<int (*)(int, struct stat64*)>("fstat64");
  return fstat_or_forward(fd, st, [&] { return call_next(next, fd, st); });
}

int __fxstat(int version, int fd, struct stat* st) {
  static const auto next = next_symbol<int (*)(int, int, struct stat*)>("__fxstat", "GLIBC_2.2.5");
  return fstat_or_forward(fd, st, [&] { return next != nullptr ? next(version, fd, st) : fstat(fd, st); });
}

int __fxstat64(int version, int fd, struct stat64* st) {
  static const auto next = next_symbol<int (*)(int, int, struct stat64*)>("__fxstat64", "GLIBC_2.2.5");
  return fstat_or_forward(fd, st, [&] { return next != nullptr ? next(version, fd, st) : fstat64(fd, st); });
}

// ---- stat of a path: tools such as blkid look before they open ---------------------------

int stat(const char* path, struct stat* st) noexcept {
  static const auto next = next_symbol<int (*)(const char*, struct stat*)>("stat");
  return stat_or_forward(AT_FDCWD, path, 0, st, [&] { return call_next(next, path, st); });
}

int stat64(const char* path, struct stat64* st) noexcept {
  static const auto next = next_symbol<int (*)(const char*, struct stat64*)>("stat64");
  return stat_or_forward(AT_FDCWD, path, 0, st, [&] { return call_next(next, path, st); });
}

// A device node is no symbolic link: lstat answers as stat.
int lstat(const char* path, struct stat* st) noexcept {
  static const auto next = next_symbol<int (*)(const char*, struct stat*)>("lstat");
  return stat_or_forward(AT_FDCWD, path, 0, st, [&] { return call_next(next, path, st); });
}

int lstat64(const char* path, struct stat64* st) noexcept {
  static const auto next = next_symbol<int (*)(const char*, struct stat64*)>("lstat64");
  return stat_or_forward(AT_FDCWD, path, 0, st, [&] { return call_next(next, path, st); });
}

int fstatat(int dirfd, const char* path, struct stat* st, int flags) noexcept {
  static const auto next = next_symbol<int (*)(int, const char*, struct stat*, int)>("fstatat");
  return stat_or_forward(dirfd, path, flags, st, [&] { return call_next(next, dirfd, path, st, flags); });
}

int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) noexcept {
  static const auto next = next_symbol<int (*)(int, const char*, struct stat64*, int)>("fstatat64");
  return stat_or_forward(dirfd, path, flags, st, [&] { return call_next(next, dirfd, path, st, flags); });
}

int statx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* x) noexcept {
  static const auto next = next_symbol<int (*)(int, const char*, int, unsigned int, struct statx*)>("statx");
  const int saved = errno;
  long result = 0;
  struct stat plain {};
  if (stat_mapped(dirfd, path, flags, &plain, result)) {
    if (result == 0) fill_statx(plain, *x);
    return finish<int>(result, saved);
  }
  return call_next(next, dirfd, path, flags, mask, x);
}

// The pre-2.33 entry points, for binaries built against an older C library. Without a next
// definition (a newer C library has only the compatibility symbols) they answer as stat does.
int __xstat(int version, const char* path, struct stat* st) {
  static const auto next = next_symbol<int (*)(int, const char*, struct stat*)>("__xstat", "GLIBC_2.2.5");
  return stat_or_forward(AT_FDCWD, path, 0, st,
                         [&] { return next != nullptr ? next(version, path, st) : stat(path, st); });
}

int __xstat64(int version, const char* path, struct stat64* st) {
  static const auto next = next_symbol<int (*)(int, const char*, struct stat64*)>("__xstat64", "GLIBC_2.2.5");
  return stat_or_forward(AT_FDCWD, path, 0, st,
                         [&] { return next != nullptr ? next(version, path, st) : stat64(path, st); });
}

int __lxstat(int version, const char* path, struct stat* st) {
  static const auto next = next_symbol<int (*)(int, const char*, struct stat*)>("__lxstat", "GLIBC_2.2.5");
  return stat_or_forward(AT_FDCWD, path, 0, st,
                         [&] { return next != nullptr ? next(version, path, st) : lstat(path, st); });
}

int __lxstat64(int version, const char* path, struct stat64* st) {
  static const auto next = next_symbol<int (*)(int, const char*, struct stat64*)>("__lxstat64", "GLIBC_2.2.5");
  return stat_or_forward(AT_FDCWD, path, 0, st,
                         [&] { return next != nullptr ? next(version, path, st) : lstat64(path, st); });
}

int __fxstatat(int version, int dirfd, const char* path, struct stat* st, int flags) {
  static const auto next = next_symbol<int (*)(int, int, const char*, struct stat*, int)>("__fxstatat", "GLIBC_2.4");
  return stat_or_forward(dirfd, path, flags, st, [&] {
    return next != nullptr ? next(version, dirfd, path, st, flags) : fstatat(dirfd, path, st, flags);
  });
}

int __fxstatat64(int version, int dirfd, const char* path, struct stat64* st, int flags) {
  static const auto next =
      next_symbol<int (*)(int, int, const char*, struct stat64*, int)>("__fxstatat64", "GLIBC_2.4");
  return stat_or_forward(dirfd, path, flags, st, [&] {
    return next != nullptr ? next(version, dirfd, path, st, flags) : fstatat64(dirfd, path, st, flags);
  });
}

// ---- path checks: libblkid canonicalises a name (readlink) and checks it (access) ----------

// A device node is no symbolic link.
ssize_t readlink(const char* path, char* buffer, size_t size) noexcept {
  static const auto next = next_symbol<ssize_t (*)(const char*, char*, size_t)>("readlink");
  const int saved = errno;
  long result = 0;
  if (probe_mapped(path, result)) return finish<ssize_t>(result < 0 ? result : -EINVAL, saved);
  return next != nullptr ? next(path, buffer, size) : missing_symbol();
}

ssize_t readlinkat(int dirfd, const char* path, char* buffer, size_t size) noexcept {
  static const auto next = next_symbol<ssize_t (*)(int, const char*, char*, size_t)>("readlinkat");
  const int saved = errno;
  long result = 0;
  if (probe_mapped(path, result)) return finish<ssize_t>(result < 0 ? result : -EINVAL, saved);
  return next != nullptr ? next(dirfd, path, buffer, size) : missing_symbol();
}

// The node exists when the card has it; access is the daemon socket's to grant.
int access(const char* path, int mode) noexcept {
  static const auto next = next_symbol<int (*)(const char*, int)>("access");
  const int saved = errno;
  long result = 0;
  if (probe_mapped(path, result)) return finish<int>(result, saved);
  return next != nullptr ? next(path, mode) : missing_symbol();
}

int faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
  static const auto next = next_symbol<int (*)(int, const char*, int, int)>("faccessat");
  const int saved = errno;
  long result = 0;
  if (probe_mapped(path, result)) return finish<int>(result, saved);
  return next != nullptr ? next(dirfd, path, mode, flags) : missing_symbol();
}

}  // extern "C"
