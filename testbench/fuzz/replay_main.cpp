// The seed-replay driver of a fuzz target outside libFuzzer (emmcsim_add_fuzzer): feeds the
// target's LLVMFuzzerTestOneInput every file of its corpus directory and every finding filed for
// it, one after another in name order, in one process as libFuzzer does. A crash, a sanitizer
// report or an abort fails the test; so does an empty corpus (a replay that replays nothing).
//
//   NAME_fuzz_seeds CORPUS_DIR [--findings FINDINGS_DIR PREFIX]
//
// FINDINGS_DIR (../shared/fuzz-findings) holds inputs named PREFIX<kind>-<hash>; a missing
// directory is no error (a checkout without ../shared).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> files_in(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().filename().string().rfind(prefix, 0) == 0)
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool replay(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", file.c_str());
    return false;
  }
  const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::printf("replaying %s (%zu bytes)\n", file.c_str(), bytes.size());
  std::fflush(stdout);  // the last name printed is the input that crashed
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && !(argc == 5 && std::string(argv[2]) == "--findings")) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [--findings FINDINGS_DIR PREFIX]\n", argv[0]);
    return 2;
  }
  const std::vector<fs::path> seeds = files_in(argv[1], "");
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: no seeds in %s\n", argv[0], argv[1]);
    return 1;
  }
  const std::vector<fs::path> findings = argc == 5 ? files_in(argv[3], argv[4]) : std::vector<fs::path>{};
  for (const auto& file : seeds)
    if (!replay(file)) return 1;
  for (const auto& file : findings)
    if (!replay(file)) return 1;
  std::printf("%zu seeds and %zu filed findings replayed without a fault\n", seeds.size(), findings.size());
  return 0;
}
