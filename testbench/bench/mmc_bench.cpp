// mmc::Card user-area throughput, judged as ratios to a bound measured in the same run (DESIGN.md,
// "How it is tested"): never as absolute times, which say more about the machine than the code.
//
// What is measured (every benchmark uses UseRealTime and reports bytes per second)
//   bound            BM_Memcpy/N: one memcpy of N bytes into a host buffer, the source cycling
//                    through a working set of kWorkingSet bytes, as the card's reads do;
//                    BM_MemcpyBlocks/N: the same bytes as N/512 memcpy calls of 512 bytes. The bound
//                    is the faster of the two.
//   card reads       BM_CardRead_{File,Memory}/N: CMD23 (N/512) + CMD18 + one read_blocks burst,
//                    the start address cycling through the same working set. "File" is an Image
//                    directory (user.img) in a fresh temporary directory; the working set was
//                    written beforehand, so the page cache holds it ("cached reads"). "Memory" is
//                    a MemoryImage.
//                    BM_CardReadBlockByBlock_File/N: the same with N/512 read_block calls (informational).
//   card writes      BM_CardWrite_{File,Memory}/N: CMD23 + CMD25 + one write_blocks burst (and block by
//                    block: BM_CardWriteBlockByBlock_File), cache
//                    off (every block programmed: pwrite to the OS, no fdatasync). Informational.
//   N = 64 KiB and 512 KiB.
//
// Ratios: card MB/s / memcpy MB/s at the same N. Target >= 0.5 for cached file reads; memory reads
// and all writes are reported without a target.
//
// After the normal Google Benchmark output a summary table is printed; EMMCSIM_BENCH_SUMMARY=path
// also writes it as JSON. The image lives in a fresh directory under $EMMCSIM_BENCH_DIR, else
// $TMPDIR, else /tmp; it is removed at exit. The exit status is 0 whatever the ratios are: this is
// a measurement, not a test.

#include <benchmark/benchmark.h>
#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/partition.hpp"
#include "scratch_directory.hpp"

namespace {

namespace mmc = emmcsim::mmc;

constexpr std::size_t kWorkingSet = 8u << 20;  // bytes the reads and the bound cycle through
constexpr std::uint32_t kRca = 1;
constexpr std::uint32_t kHostOcr = 0x40FF8080;
constexpr std::int64_t kSmall = 64 << 10;
constexpr std::int64_t kLarge = 512 << 10;

// An 8 GiB, sector-addressed part (the default configuration), cache off.
mmc::DeviceConfig bench_config() { return mmc::default_device_config(); }

std::string& bench_directory() {
  static std::string directory;
  return directory;
}

void fill_pattern(std::uint8_t* out, std::size_t size, std::uint32_t seed) {
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < size; ++i) {
    x = x * 1103515245u + 12345u;
    out[i] = static_cast<std::uint8_t>(x >> 24);
  }
}

// A card in tran over either backend, its working set written once.
class Device {
 public:
  static std::unique_ptr<Device> file_backed(const std::string& dir) {
    auto device = std::unique_ptr<Device>(new Device);
    device->image_ = mmc::Image::create(dir, bench_config());
    device->card_ = std::make_unique<mmc::Card>(device->image_->config(), device->image_->backend());
    if (!device->prepare()) return nullptr;
    return device;
  }
  static std::unique_ptr<Device> memory_backed() {
    auto device = std::unique_ptr<Device>(new Device);
    device->memory_ = std::make_unique<mmc::MemoryImage>(bench_config());
    device->card_ = std::make_unique<mmc::Card>(device->memory_->config(), device->memory_->backend());
    if (!device->prepare()) return nullptr;
    return device;
  }

  // CMD23 + CMD18 (or CMD25) of `blocks` sectors from `sector`, every block moved: as one burst
  // (read_blocks/write_blocks, how DMA and the daemon move data) or block by block.
  bool read(std::uint32_t sector, std::uint32_t blocks, std::uint8_t* out, bool burst) {
    card_->execute({23, blocks});
    const mmc::CommandOutcome o = card_->execute({18, sector});
    if (o.data.blocks != blocks) return false;
    if (burst) return card_->read_blocks(out, mmc::kSectorSize, blocks).transfer_complete;
    for (std::uint32_t i = 0; i < blocks; ++i)
      if (!card_->read_block(out + std::size_t{i} * mmc::kSectorSize, mmc::kSectorSize).ok) return false;
    return card_->state() == mmc::CardState::tran;
  }
  bool write(std::uint32_t sector, std::uint32_t blocks, const std::uint8_t* in, bool burst) {
    card_->execute({23, blocks});
    const mmc::CommandOutcome o = card_->execute({25, sector});
    if (o.data.blocks != blocks) return false;
    if (burst) return card_->write_blocks(in, mmc::kSectorSize, blocks).transfer_complete;
    for (std::uint32_t i = 0; i < blocks; ++i)
      if (!card_->write_block(in + std::size_t{i} * mmc::kSectorSize, mmc::kSectorSize).ok) return false;
    return card_->state() == mmc::CardState::tran;
  }

 private:
  Device() = default;
  bool prepare() {
    card_->execute({0, 0});
    for (int i = 0; i < 100 && card_->state() != mmc::CardState::ready; ++i) card_->execute({1, kHostOcr});
    card_->execute({2, 0});
    card_->execute({3, kRca << 16});
    card_->execute({7, kRca << 16});
    if (card_->state() != mmc::CardState::tran) return false;
    std::vector<std::uint8_t> data(kLarge);
    for (std::size_t offset = 0; offset < kWorkingSet; offset += data.size()) {
      fill_pattern(data.data(), data.size(), static_cast<std::uint32_t>(offset));
      const auto sector = static_cast<std::uint32_t>(offset / mmc::kSectorSize);
      if (!write(sector, static_cast<std::uint32_t>(data.size() / mmc::kSectorSize), data.data(), true)) return false;
    }
    return true;
  }

  std::unique_ptr<mmc::Image> image_;
  std::unique_ptr<mmc::MemoryImage> memory_;
  std::unique_ptr<mmc::Card> card_;
};

// The two devices, made on first use and destroyed before the directory is removed.
struct Devices {
  std::unique_ptr<Device> file;
  std::unique_ptr<Device> memory;
  std::string file_error;
  bool file_tried = false;
};
Devices& devices() {
  static Devices instance;
  return instance;
}

Device* file_device() {
  Devices& d = devices();
  if (!d.file_tried) {
    d.file_tried = true;
    if (bench_directory().empty()) {
      d.file_error = "no bench directory";
    } else {
      try {
        d.file = Device::file_backed(bench_directory() + "/image");
        if (!d.file) d.file_error = "the file-backed card did not reach tran or refused the working set";
      } catch (const std::exception& error) {
        d.file_error = error.what();
      }
    }
  }
  return d.file.get();
}

Device* memory_device() {
  Devices& d = devices();
  if (!d.memory) d.memory = Device::memory_backed();
  return d.memory.get();
}

// Bytes placed at a chosen offset within a 4 KiB page. Copies whose source and destination sit at
// nearly the same offset within their pages run several times slower on some CPUs (4K aliasing;
// glibc's `rep movsb` path suffers most), and where heap blocks land depends on what ran before, so
// every buffer here is placed explicitly: sources page-aligned, host buffers half a page in.
class PlacedBuffer {
 public:
  static constexpr std::size_t kPage = 4096;
  static constexpr std::size_t kSourceOffset = 0;
  static constexpr std::size_t kHostOffset = kPage / 2;

  PlacedBuffer(std::size_t size, std::size_t page_offset) : storage_(size + kPage) {
    const auto address = reinterpret_cast<std::uintptr_t>(storage_.data());
    const std::size_t shift = (page_offset + kPage - address % kPage) % kPage;
    data_ = storage_.data() + shift;
  }
  std::uint8_t* data() { return data_; }

 private:
  std::vector<std::uint8_t> storage_;
  std::uint8_t* data_;
};

// Start sectors cycle through the working set, one transfer after the other.
class Cursor {
 public:
  explicit Cursor(std::size_t transfer_bytes) : step_(transfer_bytes) {}
  std::size_t next() {
    const std::size_t offset = offset_;
    offset_ = (offset_ + step_) % kWorkingSet;
    return offset;
  }

 private:
  std::size_t step_;
  std::size_t offset_ = 0;
};

void set_bytes(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

// ---- bound -----------------------------------------------------------------------------------

void BM_Memcpy(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  PlacedBuffer source(kWorkingSet, PlacedBuffer::kSourceOffset);
  fill_pattern(source.data(), kWorkingSet, 1);
  PlacedBuffer destination(bytes, PlacedBuffer::kHostOffset);
  Cursor cursor(bytes);
  for (auto _ : state) {
    std::memcpy(destination.data(), source.data() + cursor.next(), bytes);
    benchmark::DoNotOptimize(destination.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, bytes);
}

// The same bytes copied 512 at a time, as read_block hands them out. glibc's memcpy picks its
// strategy by size (on some CPUs `rep movsb` for mid sizes is far slower than a vector loop), so the
// bound is whichever of the two copies is faster in this run.
void BM_MemcpyBlocks(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  PlacedBuffer source(kWorkingSet, PlacedBuffer::kSourceOffset);
  fill_pattern(source.data(), kWorkingSet, 1);
  PlacedBuffer destination(bytes, PlacedBuffer::kHostOffset);
  Cursor cursor(bytes);
  for (auto _ : state) {
    const std::uint8_t* from = source.data() + cursor.next();
    for (std::size_t offset = 0; offset < bytes; offset += mmc::kSectorSize)
      std::memcpy(destination.data() + offset, from + offset, mmc::kSectorSize);
    benchmark::DoNotOptimize(destination.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, bytes);
}

// ---- card ------------------------------------------------------------------------------------

void run_reads(benchmark::State& state, Device* device, bool burst = true) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto blocks = static_cast<std::uint32_t>(bytes / mmc::kSectorSize);
  PlacedBuffer destination(bytes, PlacedBuffer::kHostOffset);
  Cursor cursor(bytes);
  for (auto _ : state) {
    const auto sector = static_cast<std::uint32_t>(cursor.next() / mmc::kSectorSize);
    if (!device->read(sector, blocks, destination.data(), burst)) {
      state.SkipWithError("a read transfer failed");
      break;
    }
    benchmark::DoNotOptimize(destination.data());
  }
  set_bytes(state, bytes);
}

void run_writes(benchmark::State& state, Device* device, bool burst = true) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto blocks = static_cast<std::uint32_t>(bytes / mmc::kSectorSize);
  PlacedBuffer source(bytes, PlacedBuffer::kHostOffset);
  fill_pattern(source.data(), bytes, 7);
  Cursor cursor(bytes);
  for (auto _ : state) {
    const auto sector = static_cast<std::uint32_t>(cursor.next() / mmc::kSectorSize);
    if (!device->write(sector, blocks, source.data(), burst)) {
      state.SkipWithError("a write transfer failed");
      break;
    }
  }
  set_bytes(state, bytes);
}

void BM_CardRead_File(benchmark::State& state) {
  Device* device = file_device();
  if (device == nullptr) return state.SkipWithError(devices().file_error.c_str());
  run_reads(state, device);
}

void BM_CardReadBlockByBlock_File(benchmark::State& state) {
  Device* device = file_device();
  if (device == nullptr) return state.SkipWithError(devices().file_error.c_str());
  run_reads(state, device, false);
}

void BM_CardWriteBlockByBlock_File(benchmark::State& state) {
  Device* device = file_device();
  if (device == nullptr) return state.SkipWithError(devices().file_error.c_str());
  run_writes(state, device, false);
}

void BM_CardRead_Memory(benchmark::State& state) {
  Device* device = memory_device();
  if (device == nullptr) return state.SkipWithError("the memory-backed card could not be prepared");
  run_reads(state, device);
}

void BM_CardWrite_File(benchmark::State& state) {
  Device* device = file_device();
  if (device == nullptr) return state.SkipWithError(devices().file_error.c_str());
  run_writes(state, device);
}

void BM_CardWrite_Memory(benchmark::State& state) {
  Device* device = memory_device();
  if (device == nullptr) return state.SkipWithError("the memory-backed card could not be prepared");
  run_writes(state, device);
}

constexpr double kMinTime = 0.2;  // seconds per benchmark: the whole run stays within a few seconds
BENCHMARK(BM_Memcpy)->Arg(kSmall)->Arg(kLarge)->UseRealTime()->MinTime(kMinTime);
BENCHMARK(BM_MemcpyBlocks)->Arg(kSmall)->Arg(kLarge)->UseRealTime()->MinTime(kMinTime);
BENCHMARK(BM_CardRead_File)->Arg(kSmall)->Arg(kLarge)->UseRealTime()->MinTime(kMinTime);
BENCHMARK(BM_CardReadBlockByBlock_File)->Arg(kSmall)->Arg(kLarge)->UseRealTime()->MinTime(kMinTime);
BENCHMARK(BM_CardWriteBlockByBlock_File)->Arg(kSmall)->Arg(kLarge)->UseRealTime()->MinTime(kMinTime);
BENCHMARK(BM_CardRead_Memory)->Arg(kSmall)->Arg(kLarge)->UseRealTime()->MinTime(kMinTime);
BENCHMARK(BM_CardWrite_File)->Arg(kSmall)->Arg(kLarge)->UseRealTime()->MinTime(kMinTime);
BENCHMARK(BM_CardWrite_Memory)->Arg(kSmall)->Arg(kLarge)->UseRealTime()->MinTime(kMinTime);

// ---- results and summary ---------------------------------------------------------------------

// Shows the runs with the usual display reporter (so --benchmark_format still works) and keeps
// each benchmark's rate in bytes per second.
class RecordingReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit RecordingReporter(benchmark::BenchmarkReporter* display) : display_(display) {}

  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) record(run);
    display_->ReportRuns(runs);
  }
  void Finalize() override { display_->Finalize(); }

  // MB/s (10^6 bytes per second), NaN when the benchmark did not run.
  double mb_per_second(const std::string& name) const {
    const auto found = rates_.find(name);
    return found == rates_.end() ? NAN : found->second / 1e6;
  }

 private:
  void record(const Run& run) {
    if (run.error_occurred || run.run_type == Run::RT_Aggregate) return;
    const auto bytes = run.counters.find("bytes_per_second");
    // "BM_CardRead_File/65536": the function and its argument, without the min_time/real_time decoration.
    const std::string name = run.run_name.function_name + "/" + run.run_name.args;
    if (bytes != run.counters.end() && bytes->second.value > 0) rates_[name] = bytes->second.value;
  }

  benchmark::BenchmarkReporter* display_;  // owned by Google Benchmark
  std::map<std::string, double> rates_;
};

struct SummaryLine {
  std::string name;  // key in the JSON summary
  std::string description;
  double value = NAN;
  double target = NAN;  // NaN: informational

  bool measured() const { return !std::isnan(value); }
  bool has_target() const { return !std::isnan(target); }
  std::string verdict() const {
    if (!measured()) return "SKIPPED";
    if (!has_target()) return "INFO";
    return value >= target ? "PASS" : "BELOW";
  }
};

std::vector<SummaryLine> summarize(const RecordingReporter& reporter) {
  std::vector<SummaryLine> lines;
  for (const std::int64_t size : {kSmall, kLarge}) {
    const std::string n = std::to_string(size);
    const std::string k = std::to_string(size >> 10) + "k";
    const std::string kib = std::to_string(size >> 10) + " KiB";
    const double single_copy = reporter.mb_per_second("BM_Memcpy/" + n);
    const double block_copies = reporter.mb_per_second("BM_MemcpyBlocks/" + n);
    const double bound = std::isnan(single_copy) || block_copies > single_copy ? block_copies : single_copy;
    const double file_read = reporter.mb_per_second("BM_CardRead_File/" + n);
    const double memory_read = reporter.mb_per_second("BM_CardRead_Memory/" + n);
    const double file_write = reporter.mb_per_second("BM_CardWrite_File/" + n);
    const double memory_write = reporter.mb_per_second("BM_CardWrite_Memory/" + n);
    const double file_read_blocks = reporter.mb_per_second("BM_CardReadBlockByBlock_File/" + n);
    const double file_write_blocks = reporter.mb_per_second("BM_CardWriteBlockByBlock_File/" + n);
    lines.push_back(
        {"memcpy_" + k + "_mb_per_s", "bound: memcpy " + kib + ", faster of 1 or 512 B copies (MB/s)", bound, NAN});
    lines.push_back(
        {"file_read_" + k + "_mb_per_s", "card read, file image, cached, " + kib + " (MB/s)", file_read, NAN});
    lines.push_back({"file_read_" + k + "_over_memcpy", "card read, file image, cached, " + kib + " / memcpy",
                     file_read / bound, 0.5});
    lines.push_back({"file_read_blocks_" + k + "_over_memcpy",
                     "card read block by block, file image, cached, " + kib + " / memcpy", file_read_blocks / bound,
                     NAN});
    lines.push_back({"memory_read_" + k + "_over_memcpy", "card read, memory image, " + kib + " / memcpy",
                     memory_read / bound, NAN});
    lines.push_back(
        {"file_write_" + k + "_over_memcpy", "card write, file image, " + kib + " / memcpy", file_write / bound, NAN});
    lines.push_back({"file_write_blocks_" + k + "_over_memcpy",
                     "card write block by block, file image, " + kib + " / memcpy", file_write_blocks / bound, NAN});
    lines.push_back({"memory_write_" + k + "_over_memcpy", "card write, memory image, " + kib + " / memcpy",
                     memory_write / bound, NAN});
  }
  return lines;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "n/a";
  return value >= 100 ? fmt::format("{:.0f}", value) : fmt::format("{:.3f}", value);
}

void print_summary(const std::vector<SummaryLine>& lines) {
  fmt::print("\nmmc::Card summary (rates and ratios measured in this run; MB = 10^6 bytes)\n");
  fmt::print("{:<62} {:>10} {:>8}  {}\n", "measure", "value", "target", "verdict");
  for (const SummaryLine& line : lines) {
    const std::string target = line.has_target() ? fmt::format(">= {:.2f}", line.target) : "-";
    fmt::print("{:<62} {:>10} {:>8}  {}\n", line.description, format_value(line.value), target, line.verdict());
  }
  fmt::print("(bench directory: {})\n", bench_directory().empty() ? "none" : bench_directory());
}

std::string json_number(double value) { return std::isnan(value) ? "null" : fmt::format("{:.6g}", value); }

void write_json_summary(const std::vector<SummaryLine>& lines, const char* path) {
  std::FILE* out = std::fopen(path, "w");
  if (out == nullptr) {
    fmt::print(stderr, "cannot write the summary to {}: {}\n", path, std::strerror(errno));
    return;
  }
  fmt::print(out, "{{\n");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const SummaryLine& line = lines[i];
    fmt::print(out, "  \"{}\": {{\"value\": {}, \"target\": {}, \"verdict\": \"{}\"}}{}\n", line.name,
               json_number(line.value), json_number(line.target), line.verdict(), i + 1 < lines.size() ? "," : "");
  }
  fmt::print(out, "}}\n");
  if (std::fclose(out) != 0) fmt::print(stderr, "cannot write the summary to {}\n", path);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::unique_ptr<emmcsim::testing::ScratchDirectory> directory =
      emmcsim::testing::make_benchmark_directory("emmcsim-mmc-bench");
  bench_directory() = directory ? directory->path() : std::string();
  RecordingReporter reporter(benchmark::CreateDefaultDisplayReporter());
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  devices() = Devices{};  // close the image before its directory goes
  directory.reset();      // the directory and everything in it

  const std::vector<SummaryLine> summary = summarize(reporter);
  print_summary(summary);
  if (const char* path = std::getenv("EMMCSIM_BENCH_SUMMARY"); path != nullptr && *path != '\0') {
    write_json_summary(summary, path);
  }
  return 0;
}
