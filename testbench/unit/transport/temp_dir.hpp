// TempDir: a fresh directory under /tmp for a test's sockets and images, removed afterwards. The
// path is kept short: a Unix socket path must fit in 107 bytes.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace emmcsim::testing {

class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/emmcsim-tt-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~TempDir() {
    const std::string command = "rm -rf '" + path_ + "'";
    if (std::system(command.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace emmcsim::testing
