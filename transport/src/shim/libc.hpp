// The C library underneath the LD_PRELOAD shim: the next definition of each symbol the shim
// replaces (dlsym(RTLD_NEXT, ...)), for calls on descriptors the shim does not own, and raw system
// calls for the shim's own work, so that nothing the shim does comes back into the shim.
#pragma once

#include <dlfcn.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstring>

namespace emmcsim::transport::shim {

// The definition of `name` that the shim's own definition hides, or nullptr when no later object
// defines it. `version` selects a versioned symbol (dlvsym), for compatibility symbols such as
// __fxstat@GLIBC_2.2.5 that an unversioned dlsym does not find.
template <typename Function>
Function next_symbol(const char* name, const char* version = nullptr) {
  void* address = version == nullptr ? ::dlsym(RTLD_NEXT, name) : ::dlvsym(RTLD_NEXT, name, version);
  Function function = nullptr;
  static_assert(sizeof function == sizeof address, "function and object pointers differ in size");
  std::memcpy(&function, &address, sizeof function);
  return function;
}

// System calls that bypass every interposed symbol. They return the kernel's result: a value
// >= 0, or -errno (errno itself is left alone).
namespace sys {
long close(int fd);
long write(int fd, const void* data, std::size_t size);
long fstat(int fd, struct stat* st);
long unix_socket(bool close_on_exec);  // an unconnected AF_UNIX stream socket
}  // namespace sys

// Writes one line to the process's standard error (fd 2) without going through stdio or the
// shim's write.
void write_stderr_line(const char* text, std::size_t size);

}  // namespace emmcsim::transport::shim
