// ScratchDirectory: a fresh directory for one test's (or benchmark's) files, images and sockets,
// removed with everything in it when the object goes, unless keep() was called. It is made under
// $TMPDIR when that is an absolute path of at most 60 characters, else under /tmp, so a socket
// inside it fits a Unix socket path (107 bytes).
#pragma once

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace emmcsim::testing {

class ScratchDirectory {
 public:
  // `prefix` names the directory ("emmcsim-image" → /tmp/emmcsim-image-Ab12Cd).
  explicit ScratchDirectory(const std::string& prefix = "emmcsim-test") {
    const char* tmp = std::getenv("TMPDIR");
    const std::string base = tmp != nullptr && tmp[0] == '/' && std::strlen(tmp) <= 60 ? tmp : "/tmp";
    std::string pattern = base + (base.back() == '/' ? "" : "/") + prefix + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    path_ = pattern;
  }
  ~ScratchDirectory() {
    if (kept_) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside the directory.
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Leaves the directory and its contents in place (to look at after a failure).
  const std::string& keep() {
    kept_ = true;
    return path_;
  }

 private:
  std::string path_;
  bool kept_ = false;
};

}  // namespace emmcsim::testing
