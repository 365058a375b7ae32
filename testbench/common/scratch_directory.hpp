// ScratchDirectory: a fresh directory for one test's (or benchmark's) files, images and sockets,
// removed with everything in it when the object goes, unless keep() was called. It is made under
// $TMPDIR when that is an absolute path of at most 60 characters, else under /tmp, so a socket
// inside it fits a Unix socket path (107 bytes).
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace emmcsim::testing {

class ScratchDirectory {
 public:
  // `prefix` names the directory ("emmcsim-image" → /tmp/emmcsim-image-Ab12Cd).
  explicit ScratchDirectory(const std::string& prefix = "emmcsim-test") : ScratchDirectory(prefix, default_base()) {}
  // The same under `base`.
  ScratchDirectory(const std::string& prefix, const std::string& base) {
    std::string pattern = base + (!base.empty() && base.back() == '/' ? "" : "/") + prefix + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    path_ = pattern;
  }

  // $TMPDIR when it is an absolute path of at most 60 characters, else /tmp.
  static std::string default_base() {
    const char* tmp = std::getenv("TMPDIR");
    return tmp != nullptr && tmp[0] == '/' && std::strlen(tmp) <= 60 ? tmp : "/tmp";
  }
  // Where a benchmark program keeps its files: $EMMCSIM_BENCH_DIR when set (a real disk, say, for
  // the fdatasync bounds), else default_base().
  static std::string benchmark_base() {
    const char* bench = std::getenv("EMMCSIM_BENCH_DIR");
    return bench != nullptr && bench[0] != '\0' ? bench : default_base();
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

// For a benchmark program's main(): its directory under ScratchDirectory::benchmark_base(), or
// none when that cannot be made (the reason on stderr; the benchmarks needing files then skip).
inline std::unique_ptr<ScratchDirectory> make_benchmark_directory(const std::string& prefix) {
  try {
    return std::make_unique<ScratchDirectory>(prefix, ScratchDirectory::benchmark_base());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "no bench directory: %s\n", e.what());
    return nullptr;
  }
}

}  // namespace emmcsim::testing
