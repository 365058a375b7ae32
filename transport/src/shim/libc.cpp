// Raw system calls for the LD_PRELOAD shim (see libc.hpp).
#include "libc.hpp"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace emmcsim::transport::shim {
namespace {

// syscall(2) reports failure through errno; the shim's callers want the kernel's -errno and an
// errno they have not seen change.
long kernel_result(long result, int saved_errno) {
  if (result < 0) {
    result = -errno;
  }
  errno = saved_errno;
  return result;
}

}  // namespace

namespace sys {

long close(int fd) {
  const int saved = errno;
  return kernel_result(::syscall(SYS_close, fd), saved);
}

long write(int fd, const void* data, std::size_t size) {
  const int saved = errno;
  return kernel_result(::syscall(SYS_write, fd, data, size), saved);
}

long fstat(int fd, struct stat* st) {
  const int saved = errno;
  return kernel_result(::syscall(SYS_fstat, fd, st), saved);
}

long unix_socket(bool close_on_exec) {
  const int saved = errno;
  return kernel_result(::syscall(SYS_socket, AF_UNIX, SOCK_STREAM | (close_on_exec ? SOCK_CLOEXEC : 0), 0), saved);
}

}  // namespace sys

void write_stderr_line(const char* text, std::size_t size) {
  while (size > 0) {
    const long written = sys::write(STDERR_FILENO, text, size);
    if (written == -EINTR) continue;
    if (written <= 0) return;
    text += written;
    size -= static_cast<std::size_t>(written);
  }
}

}  // namespace emmcsim::transport::shim
