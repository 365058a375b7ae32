// RPMB core throughput, judged as ratios to bounds measured in the same run (DESIGN.md, "How it is
// tested"): never as absolute times, which say more about the machine than about the code.
//
// Bounds
//   MAC-bound       BM_RawHmacSha256_284: FrameAuthenticator::compute_raw over 284 bytes with a
//                   keyed context reused: the cheapest correct way to MAC one frame.
//   fdatasync-bound BM_Fdatasync_Bound: pwrite of 512 bytes at a fixed offset + fdatasync, on a
//                   file in the same directory (same filesystem) as the file-store images.
//
// Ratios (rates in operations per second of real time, every benchmark uses UseRealTime)
//   read/MAC-bound             authenticated reads of 1 frame per second / MACs per second.
//                              One read = request burst + 1 response frame = 1 MAC. Target >= 0.5.
//   counter/MAC-bound          counter reads per second / MACs per second (1 MAC each). Target >= 0.5.
//   memory-write/(MAC-bound/2) authenticated writes per second over a MemoryStore / (MACs per second
//                              / 2). The device's share of a write is two MACs (verify the request,
//                              sign the result-read response), hence "/2". Each timed iteration ALSO
//                              signs its request on the host side (a third MAC, counted in the
//                              timing, nothing is pre-signed): the ceiling of this ratio is therefore
//                              2/3 ~ 0.67, and the target 0.4 leaves room for frame handling and the
//                              commit. The host does not verify the response MAC (that would be a
//                              fourth); it checks the result code and the counter.
//   synced-write/fdatasync-bound  authenticated writes per second over a FileStore with
//                              Durability::sync_every_commit / fdatasync-bound rate. Target >= 0.8.
//   os-managed write rate      the same write with Durability::os_managed: reported, no target.
//
// The two synced benchmarks run 3 repetitions each and the ratio uses their medians; when either
// varied by more than 20% between repetitions (other processes on the disk) the line is marked NOISY.
//
// After the normal Google Benchmark output a summary table with PASS/BELOW per target is printed;
// EMMCSIM_BENCH_SUMMARY=path also writes it as JSON. The file-store images and the fdatasync file
// live in a fresh directory under $EMMCSIM_BENCH_DIR, else $TMPDIR, else /tmp; it is removed at exit.
// The exit status is 0 whatever the ratios are: this is a measurement, not a test.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/file_store.hpp"
#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/rpmb/store.hpp"
#include "scratch_directory.hpp"

namespace {

namespace rpmb = emmcsim::rpmb;

constexpr std::uint32_t kBenchSizeMult = 1;  // 128 KiB: 512 half-sectors
constexpr std::uint16_t kResultOk = static_cast<std::uint16_t>(rpmb::ResultCode::ok);

rpmb::Key bench_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0xA5 ^ (i * 7));
  return key;
}

// Where the file-store images and the fdatasync file live; empty when it could not be created.
std::string& bench_directory() {
  static std::string directory;
  return directory;
}

// A unique image path per benchmark invocation (Google Benchmark calls each function several times).
std::string next_image_path() {
  static unsigned sequence = 0;
  return fmt::format("{}/rpmb-{}.img", bench_directory(), ++sequence);
}

// Programs the bench key as a host provisions a device: program-key request, then result read.
bool provision(rpmb::Engine& engine) {
  const rpmb::Frame program = rpmb::requests::program_key(bench_key());
  engine.write_request(&program, 1, true);
  const rpmb::Frame result_request = rpmb::requests::result_read();
  engine.write_request(&result_request, 1, false);
  rpmb::Frame response;
  engine.read_response(&response, 1);
  return response.result() == kResultOk && engine.state().key_programmed;
}

// ---- bounds ----------------------------------------------------------------------------------

void BM_RawHmacSha256_284(benchmark::State& state) {
  rpmb::FrameAuthenticator authenticator(bench_key());
  std::array<std::uint8_t, rpmb::kMacInputPerFrame> mac_input{};
  for (std::size_t i = 0; i < mac_input.size(); ++i) mac_input[i] = static_cast<std::uint8_t>(i);
  for (auto _ : state) {
    rpmb::Mac mac = authenticator.compute_raw(mac_input.data(), mac_input.size());
    benchmark::DoNotOptimize(mac);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(rpmb::kMacInputPerFrame));
}

// A file descriptor closed (and its file removed) on scope exit.
class ScratchFile {
 public:
  explicit ScratchFile(std::string path)
      : path_(std::move(path)), fd_(::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) {}
  ~ScratchFile() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(path_.c_str());
    }
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_;
};

void BM_Fdatasync_Bound(benchmark::State& state) {
  if (bench_directory().empty()) {
    state.SkipWithError("no bench directory");
    return;
  }
  ScratchFile file(bench_directory() + "/fdatasync-bound.bin");
  if (file.fd() < 0) {
    state.SkipWithError("cannot create the fdatasync file");
    return;
  }
  // Allocate the block first so each timed fdatasync flushes data only, as a store commit does.
  std::array<std::uint8_t, rpmb::kFrameSize> block{};
  if (::pwrite(file.fd(), block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()) ||
      ::fsync(file.fd()) != 0) {
    state.SkipWithError("cannot prepare the fdatasync file");
    return;
  }
  std::uint8_t generation = 0;
  for (auto _ : state) {
    block[0] = ++generation;
    if (::pwrite(file.fd(), block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()) ||
        ::fdatasync(file.fd()) != 0) {
      state.SkipWithError("pwrite or fdatasync failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---- read-type requests ----------------------------------------------------------------------

// One read-type operation per iteration: a 1-frame request burst, then a 1-frame response.
void run_read_type(benchmark::State& state, const rpmb::Frame& request, std::uint16_t response_type) {
  rpmb::MemoryStore store(kBenchSizeMult);
  rpmb::Engine engine(store);
  if (!provision(engine)) {
    state.SkipWithError("key programming failed");
    return;
  }
  rpmb::Frame response;
  for (auto _ : state) {
    engine.write_request(&request, 1, false);
    engine.read_response(&response, 1);
    benchmark::DoNotOptimize(response);
  }
  if (response.result() != kResultOk || response.type() != response_type) {
    state.SkipWithError("the response reported a failure");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_AuthenticatedRead_1Frame(benchmark::State& state) {
  rpmb::Nonce nonce{};
  nonce.fill(0x3C);
  run_read_type(state, rpmb::requests::authenticated_read(7, nonce),
                static_cast<std::uint16_t>(rpmb::ResponseType::authenticated_read));
}

void BM_CounterRead(benchmark::State& state) {
  rpmb::Nonce nonce{};
  nonce.fill(0xC3);
  run_read_type(state, rpmb::requests::read_counter(nonce),
                static_cast<std::uint16_t>(rpmb::ResponseType::read_counter));
}

// ---- authenticated writes --------------------------------------------------------------------

// One complete single-frame authenticated write per iteration, as a host performs it: sign the
// request under the current counter (host MAC, timed), send it as a reliable write (device MAC:
// verify), send a result-read request and collect the response (device MAC: sign). Nothing is
// pre-computed outside the timed region.
void run_authenticated_writes(benchmark::State& state, rpmb::Store& store) {
  rpmb::Engine engine(store);
  if (!provision(engine)) {
    state.SkipWithError("key programming failed");
    return;
  }
  rpmb::FrameAuthenticator host_authenticator(bench_key());
  const rpmb::Frame result_request = rpmb::requests::result_read();
  const std::uint32_t half_sectors = engine.half_sectors();
  std::uint32_t write_counter = engine.state().write_counter;
  std::uint32_t address = 0;
  rpmb::Frame write_request;
  write_request.set_request(rpmb::RequestType::authenticated_write);
  write_request.set_block_count(1);
  for (std::size_t i = 0; i < rpmb::kHalfSectorSize; ++i) {
    write_request.data()[i] = static_cast<std::uint8_t>(i * 3);
  }
  rpmb::Frame response;
  for (auto _ : state) {
    write_request.set_address(static_cast<std::uint16_t>(address));
    write_request.set_write_counter(write_counter);
    write_request.data()[0] = static_cast<std::uint8_t>(write_counter);
    write_request.set_mac(host_authenticator.compute(&write_request, 1));
    engine.write_request(&write_request, 1, true);
    engine.write_request(&result_request, 1, false);
    engine.read_response(&response, 1);
    if (response.result() != kResultOk || response.write_counter() != write_counter + 1) {
      const std::string reason = "write rejected: " + rpmb::describe_result(response.result());
      state.SkipWithError(reason.c_str());
      break;
    }
    ++write_counter;
    address = (address + 1) % half_sectors;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_AuthenticatedWrite_MemoryStore(benchmark::State& state) {
  rpmb::MemoryStore store(kBenchSizeMult);
  run_authenticated_writes(state, store);
}

void run_file_store_writes(benchmark::State& state, rpmb::Durability durability) {
  if (bench_directory().empty()) {
    state.SkipWithError("no bench directory");
    return;
  }
  const std::string path = next_image_path();
  try {
    std::unique_ptr<rpmb::FileStore> store = rpmb::FileStore::create_at(path, kBenchSizeMult, durability);
    run_authenticated_writes(state, *store);
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
  ::unlink(path.c_str());
}

void BM_AuthenticatedWrite_FileStore_Sync(benchmark::State& state) {
  run_file_store_writes(state, rpmb::Durability::sync_every_commit);
}

void BM_AuthenticatedWrite_FileStore_OsManaged(benchmark::State& state) {
  run_file_store_writes(state, rpmb::Durability::os_managed);
}

BENCHMARK(BM_RawHmacSha256_284)->UseRealTime();
BENCHMARK(BM_AuthenticatedRead_1Frame)->UseRealTime();
BENCHMARK(BM_CounterRead)->UseRealTime();
BENCHMARK(BM_AuthenticatedWrite_MemoryStore)->UseRealTime();
// Disk latency drifts on shared machines: the synced pair reports the median of 3 repetitions.
BENCHMARK(BM_Fdatasync_Bound)->UseRealTime()->Unit(benchmark::kMicrosecond)->Repetitions(3)->ReportAggregatesOnly();
BENCHMARK(BM_AuthenticatedWrite_FileStore_Sync)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(3)
    ->ReportAggregatesOnly();
BENCHMARK(BM_AuthenticatedWrite_FileStore_OsManaged)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---- results and summary ---------------------------------------------------------------------

struct MeasuredRate {
  double items_per_second = 0;
  double real_ns_per_iteration = 0;
  double rate_cv = NAN;  // coefficient of variation over repetitions, when there were repetitions
  bool from_median = false;
};

// Shows the runs with the usual display reporter (so --benchmark_format still works) and keeps
// each benchmark's rate: the median aggregate when repetitions produced one, else the last run.
class RecordingReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit RecordingReporter(benchmark::BenchmarkReporter* display) : display_(display) {}

  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) record(run);
    display_->ReportRuns(runs);
  }

  void Finalize() override { display_->Finalize(); }

  const MeasuredRate* rate_of(const std::string& benchmark_name) const {
    const auto found = rates_.find(benchmark_name);
    return found == rates_.end() ? nullptr : &found->second;
  }

 private:
  void record(const Run& run) {
    if (run.error_occurred) return;
    const auto items = run.counters.find("items_per_second");
    if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "cv") {
      if (items != run.counters.end()) rates_[run.run_name.function_name].rate_cv = items->second.value;
      return;
    }
    const bool is_median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
    if (run.run_type == Run::RT_Aggregate && !is_median) return;
    MeasuredRate& rate = rates_[run.run_name.function_name];
    if (rate.from_median && !is_median) return;
    rate.from_median = is_median;
    const double seconds_per_unit = 1 / benchmark::GetTimeUnitMultiplier(run.time_unit);
    rate.real_ns_per_iteration = run.GetAdjustedRealTime() * seconds_per_unit * 1e9;
    if (items != run.counters.end()) {
      rate.items_per_second = items->second.value;
    } else {
      rate.items_per_second = rate.real_ns_per_iteration > 0 ? 1e9 / rate.real_ns_per_iteration : 0;
    }
  }

  benchmark::BenchmarkReporter* display_;  // owned by Google Benchmark
  std::map<std::string, MeasuredRate> rates_;
};

struct SummaryLine {
  std::string name;  // key in the JSON summary
  std::string description;
  double value = NAN;   // NaN: a benchmark it needs did not run
  double target = NAN;  // NaN: informational, no target
  bool noisy = false;   // its inputs varied by more than kNoisyCv between repetitions

  bool measured() const { return !std::isnan(value); }
  bool has_target() const { return !std::isnan(target); }
  std::string verdict() const {
    if (!measured()) return "SKIPPED";
    if (!has_target()) return "INFO";
    return value >= target ? "PASS" : "BELOW";
  }
};

// Above this coefficient of variation between repetitions a disk-bound ratio says more about other
// processes sharing the disk than about the store: the verdict is flagged, and worth a re-run.
constexpr double kNoisyCv = 0.2;

bool is_noisy(const RecordingReporter& reporter, const std::string& name) {
  const MeasuredRate* rate = reporter.rate_of(name);
  return rate != nullptr && !std::isnan(rate->rate_cv) && rate->rate_cv > kNoisyCv;
}

double rate_or_nan(const RecordingReporter& reporter, const std::string& name) {
  const MeasuredRate* rate = reporter.rate_of(name);
  return rate != nullptr && rate->items_per_second > 0 ? rate->items_per_second : NAN;
}

std::vector<SummaryLine> summarize(const RecordingReporter& reporter) {
  const double mac_rate = rate_or_nan(reporter, "BM_RawHmacSha256_284");
  const double fdatasync_rate = rate_or_nan(reporter, "BM_Fdatasync_Bound");
  const double read_rate = rate_or_nan(reporter, "BM_AuthenticatedRead_1Frame");
  const double counter_rate = rate_or_nan(reporter, "BM_CounterRead");
  const double memory_write_rate = rate_or_nan(reporter, "BM_AuthenticatedWrite_MemoryStore");
  const double synced_write_rate = rate_or_nan(reporter, "BM_AuthenticatedWrite_FileStore_Sync");
  const double os_managed_write_rate = rate_or_nan(reporter, "BM_AuthenticatedWrite_FileStore_OsManaged");
  const bool disk_noisy =
      is_noisy(reporter, "BM_Fdatasync_Bound") || is_noisy(reporter, "BM_AuthenticatedWrite_FileStore_Sync");
  return {
      {"mac_bound_per_s", "bound: HMAC-SHA256 over 284 bytes (MACs/s)", mac_rate, NAN, false},
      {"fdatasync_bound_per_s", "bound: pwrite 512 B + fdatasync (/s)", fdatasync_rate, NAN, disk_noisy},
      {"read_over_mac_bound", "authenticated read 1 frame / MAC-bound", read_rate / mac_rate, 0.5, false},
      {"counter_over_mac_bound", "counter read / MAC-bound", counter_rate / mac_rate, 0.5, false},
      {"memory_write_over_half_mac_bound", "memory-store write / (MAC-bound / 2) [ceiling 0.67]",
       memory_write_rate / (mac_rate / 2), 0.4, false},
      {"synced_write_over_fdatasync_bound", "synced file-store write / fdatasync-bound",
       synced_write_rate / fdatasync_rate, 0.8, disk_noisy},
      {"os_managed_write_per_s", "os-managed file-store write rate (writes/s)", os_managed_write_rate, NAN, false},
  };
}

std::string format_value(double value) {
  if (std::isnan(value)) return "n/a";
  return value >= 100 ? fmt::format("{:.0f}", value) : fmt::format("{:.3f}", value);
}

void print_summary(const std::vector<SummaryLine>& lines) {
  fmt::print(
      "\nRPMB summary (rates and ratios measured in this run; rates in operations per second of "
      "real time)\n");
  fmt::print("{:<56} {:>12} {:>8}  {}\n", "measure", "value", "target", "verdict");
  for (const SummaryLine& line : lines) {
    const std::string target = line.has_target() ? fmt::format(">= {:.2f}", line.target) : "-";
    fmt::print("{:<56} {:>12} {:>8}  {}{}\n", line.description, format_value(line.value), target, line.verdict(),
               line.noisy ? " (NOISY: disk rates varied > 20% between repetitions)" : "");
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
    fmt::print(out, "  \"{}\": {{\"value\": {}, \"target\": {}, \"verdict\": \"{}\", \"noisy\": {}}}{}\n", line.name,
               json_number(line.value), json_number(line.target), line.verdict(), line.noisy,
               i + 1 < lines.size() ? "," : "");
  }
  fmt::print(out, "}}\n");
  if (std::fclose(out) != 0) fmt::print(stderr, "cannot write the summary to {}\n", path);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::unique_ptr<emmcsim::testing::ScratchDirectory> directory =
      emmcsim::testing::make_benchmark_directory("emmcsim-rpmb-bench");
  bench_directory() = directory ? directory->path() : std::string();
  RecordingReporter reporter(benchmark::CreateDefaultDisplayReporter());
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  directory.reset();  // the directory and everything in it

  const std::vector<SummaryLine> summary = summarize(reporter);
  print_summary(summary);
  if (const char* path = std::getenv("EMMCSIM_BENCH_SUMMARY"); path != nullptr && *path != '\0') {
    write_json_summary(summary, path);
  }
  return 0;
}
