// The MMC-ioctl bridge end to end in one process, judged as ratios to a bound measured in the same
// run (DESIGN.md, "How it is tested"): never as absolute times alone.
//
// Set-up (as `emmcsim serve` runs it): a BridgeServer + StrandDevicePort over an mmc::Card, the
// io_context run by 2 threads (the daemon's default --threads), the socket in a fresh temporary
// directory. Two devices, each on its own socket:
//   File    an mmc::Image directory (default configuration: 8 GiB sparse user area, 4 MiB RPMB)
//           with Durability::sync_every_commit — the daemon's default: every authenticated write
//           is on the disk (fdatasync) before its result can be read;
//   Memory  an mmc::MemoryImage of the same configuration: the bridge without the disk.
// The client is the benchmark thread: a BridgeClient, BridgeRpmbChannel and rpmb::Host with the
// key (programmed once at set-up), exactly as a C++ `mmc rpmb` would drive the daemon.
//
// What is measured (UseRealTime; items = round trips; each iteration is timed with steady_clock
// and the counters p50_us / p99_us are the median and 99th percentile of those latencies)
//   BM_Echo_CounterSize, BM_Echo_WriteSize   the bound: a trivial Asio server on another Unix
//          socket in the same process (same 2 threads) that reads a message (header, then
//          payload_length bytes) and answers with fixed bytes; the client sends the same request
//          bytes and reads the same reply bytes as the two bridge benchmarks below (recorded from
//          the real server at set-up), with send/recv as BridgeClient does. Its rate is kept for
//          the ratio counters.
//   BM_RpmbReadCounter_{File,Memory}   rpmb::Host::read_counter: one MMC_IOC_MULTI_CMD of 2
//          (CMD25 with the request frame, CMD18 for the response) = 632 request bytes, 588 reply
//          bytes. The host verifies the response MAC.
//   BM_RpmbWrite1_{File,Memory}   rpmb::Host::write_with_counter of 1 half-sector (256 bytes of
//          data = 1 frame) under the counter the previous write returned: one MMC_IOC_MULTI_CMD of
//          3 (CMD25 reliable write of the signed frame, CMD25 result-read request, CMD18) = 1192
//          request bytes, 608 reply bytes. The host signs the request and verifies the result.
//          (`mmc rpmb write-block` reads the counter first: that is one more counter round trip.)
//   BM_Fdatasync_Bound   pwrite of 512 bytes + fdatasync on a file beside the image (same file
//          system), as rpmb_bench measures it: about what a synced store commit (one journal
//          record) waits for. Informational: the file-image write is also reported as a ratio to
//          it (near 1: the bridge adds little to the disk).
//   ratio_to_echo   round trips per second / the echo's round trips per second for the same bytes
//          (in-run counter: against the echo's latest run).
//
// Each benchmark runs 3 repetitions; the summary takes the medians (and its ratios are median /
// median), so one disturbed repetition on a shared machine does not decide the figure.
//
// After the normal output a summary table is printed; EMMCSIM_BENCH_SUMMARY=path also writes it as
// JSON. The image and sockets live in a fresh directory under $EMMCSIM_BENCH_DIR, else $TMPDIR, else
// /tmp, removed at exit. Exit status 0 whatever the figures: a measurement, not a test.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "emmcsim/transport/bridge_server.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "scratch_directory.hpp"

namespace {

namespace asio = boost::asio;
namespace mmc = emmcsim::mmc;
namespace rpmb = emmcsim::rpmb;
namespace transport = emmcsim::transport;
namespace bridge = emmcsim::transport::bridge;
using stream_protocol = asio::local::stream_protocol;

constexpr unsigned kServerThreads = 2;  // the daemon's default --threads

rpmb::Key bench_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x5A ^ (i * 13));
  return key;
}

std::string& bench_directory() {
  static std::string directory;
  return directory;
}

// An io_context run by kServerThreads threads until stop().
class IoThreads {
 public:
  IoThreads() : work_(asio::make_work_guard(io_)) {}
  ~IoThreads() { stop(); }
  void start() {
    for (unsigned i = 0; i < kServerThreads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  // Runs `f` on an io thread and waits for it.
  template <typename F>
  void run_on_io(F f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  void stop() {
    work_.reset();
    io_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

// The daemon's stack over one card.
class BridgeDaemon {
 public:
  static std::unique_ptr<BridgeDaemon> file_backed(const std::string& image_dir, const std::string& socket) {
    auto d = std::unique_ptr<BridgeDaemon>(new BridgeDaemon);
    mmc::ImageCreateOptions options;
    options.durability = rpmb::Durability::sync_every_commit;
    d->image_ = mmc::Image::create(image_dir, mmc::default_device_config(), options);
    d->card_ = std::make_unique<mmc::Card>(d->image_->config(), d->image_->backend());
    d->start(socket);
    return d;
  }
  static std::unique_ptr<BridgeDaemon> memory_backed(const std::string& socket) {
    auto d = std::unique_ptr<BridgeDaemon>(new BridgeDaemon);
    d->memory_ = std::make_unique<mmc::MemoryImage>(mmc::default_device_config());
    d->card_ = std::make_unique<mmc::Card>(d->memory_->config(), d->memory_->backend());
    d->start(socket);
    return d;
  }
  ~BridgeDaemon() {
    if (server_) io_.run_on_io([this] { server_->stop(); });
    io_.stop();
  }
  const std::string& socket() const { return socket_; }

 private:
  BridgeDaemon() = default;
  void start(const std::string& socket) {
    socket_ = socket;
    bus_ = std::make_unique<mmc::CardHostBus>(*card_);
    port_ = std::make_unique<transport::StrandDevicePort>(io_.io(), *bus_);
    auto log = std::make_shared<spdlog::logger>("bridge-bench", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    log->set_level(spdlog::level::warn);
    server_ = std::make_unique<transport::BridgeServer>(io_.io(), *port_, log, socket);
    server_->start();
    io_.start();
  }

  std::unique_ptr<mmc::Image> image_;
  std::unique_ptr<mmc::MemoryImage> memory_;
  std::unique_ptr<mmc::Card> card_;
  std::unique_ptr<mmc::CardHostBus> bus_;
  IoThreads io_;  // declared before port_ and server_: they are destroyed first, after stop()
  std::unique_ptr<transport::StrandDevicePort> port_;
  std::unique_ptr<transport::BridgeServer> server_;
  std::string socket_;
};

// The bound: reads whole messages (header, then payload_length bytes) and answers each with the
// reply recorded for that payload length.
class EchoServer {
 public:
  EchoServer(const std::string& socket, std::map<std::uint32_t, std::vector<std::uint8_t>> replies)
      : replies_(std::move(replies)), acceptor_(io_.io(), stream_protocol::endpoint(socket)) {
    accept();
    io_.start();
  }
  ~EchoServer() {
    io_.run_on_io([this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
    });
    io_.stop();
  }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(EchoServer& s, stream_protocol::socket sock) : server(s), socket(std::move(sock)) {}
    void read_header() {
      asio::async_read(socket, asio::buffer(header),
                       [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                         if (ec) return;
                         std::uint32_t length = 0;
                         for (int i = 3; i >= 0; --i) length = (length << 8) | self->header[12 + i];
                         const auto found = self->server.replies_.find(length);
                         if (found == self->server.replies_.end()) return;
                         self->reply = &found->second;
                         self->payload.resize(length);
                         asio::async_read(self->socket, asio::buffer(self->payload),
                                          [self](boost::system::error_code ec2, std::size_t) {
                                            if (ec2) return;
                                            asio::async_write(self->socket, asio::buffer(*self->reply),
                                                              [self](boost::system::error_code ec3, std::size_t) {
                                                                if (!ec3) self->read_header();
                                                              });
                                          });
                       });
    }
    EchoServer& server;
    stream_protocol::socket socket;
    std::array<std::uint8_t, bridge::kHeaderSize> header{};
    std::vector<std::uint8_t> payload;
    const std::vector<std::uint8_t>* reply = nullptr;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, stream_protocol::socket socket) {
      if (ec) return;
      std::make_shared<Session>(*this, std::move(socket))->read_header();
      accept();
    });
  }

  std::map<std::uint32_t, std::vector<std::uint8_t>> replies_;
  IoThreads io_;
  stream_protocol::acceptor acceptor_;
};

// A blocking client of raw bytes, with BridgeClient's send/recv pattern.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0)
      throw std::runtime_error("cannot connect to the echo server: " + std::string(std::strerror(errno)));
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Sends the message, reads one reply; false when the connection failed.
  bool round_trip(const std::vector<std::uint8_t>& message, std::vector<std::uint8_t>& reply) {
    if (!send_all(message.data(), message.size())) return false;
    std::uint8_t header[bridge::kHeaderSize];
    if (!receive_all(header, sizeof header)) return false;
    std::uint32_t length = 0;
    for (int i = 3; i >= 0; --i) length = (length << 8) | header[12 + i];
    reply.resize(length);
    return receive_all(reply.data(), reply.size());
  }

 private:
  bool send_all(const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      const ssize_t sent = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent <= 0) return false;
      p += sent;
      n -= static_cast<std::size_t>(sent);
    }
    return true;
  }
  bool receive_all(std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      const ssize_t got = ::recv(fd_, p, n, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }
  int fd_ = -1;
};

// A Host over the bridge with the key, and the counter it last saw.
struct RpmbClient {
  explicit RpmbClient(const std::string& socket) : client(socket), channel(client), host(channel, bench_key()) {}
  bridge::BridgeClient client;
  transport::BridgeRpmbChannel channel;
  rpmb::Host host;
};

enum class Operation { counter, write };

// The messages of one operation as they travel: recorded from the real server at set-up.
struct Exchange {
  std::vector<std::uint8_t> request;
  std::vector<std::uint8_t> reply;
};

struct Setup {
  std::unique_ptr<BridgeDaemon> file;
  std::unique_ptr<BridgeDaemon> memory;
  std::unique_ptr<EchoServer> echo;
  std::map<Operation, Exchange> exchanges;
  std::string error;
};

// Performs `op` once over `client` (a real request; also what the exchange recording runs).
bool perform(RpmbClient& c, Operation op, std::uint16_t address, std::uint32_t& counter, std::uint8_t fill) {
  if (op == Operation::counter) {
    rpmb::Nonce nonce{};
    nonce.fill(fill);
    const rpmb::HostResult r = c.host.read_counter(nonce);
    return r.ok();
  }
  std::array<std::uint8_t, rpmb::kHalfSectorSize> data{};
  data.fill(fill);
  const rpmb::HostResult r = c.host.write_with_counter(address, data.data(), 1, counter);
  if (!r.ok() || r.write_counter != counter + 1) return false;
  counter = r.write_counter;
  return true;
}

// Programs the key on a daemon, records one exchange of each operation (request and reply bytes).
void provision(const std::string& socket, std::map<Operation, Exchange>* record) {
  RpmbClient c(socket);
  const rpmb::HostResult programmed = c.host.program_key(bench_key());
  if (!programmed.ok()) throw std::runtime_error("key programming failed: " + rpmb::describe_result(programmed.result));
  std::uint32_t counter = c.host.read_counter().write_counter;
  if (!perform(c, Operation::write, 0, counter, 1)) throw std::runtime_error("the first authenticated write failed");
  if (record == nullptr) return;
  for (const Operation op : {Operation::counter, Operation::write}) {
    if (!perform(c, op, 1, counter, 2)) throw std::runtime_error("recording an exchange failed");
    Exchange& e = (*record)[op];
    e.request = bridge::encode_request(1, c.channel.last_request());
    // The reply the daemon sent for it: the same request again, answered the same way.
    const bridge::Reply reply = c.client.call(c.channel.last_request());
    e.reply = bridge::encode_reply(1, reply);  // a replayed write is refused: a reply of the same size
  }
}

Setup& setup() {
  static Setup s = [] {
    Setup r;
    if (bench_directory().empty()) {
      r.error = "no bench directory";
      return r;
    }
    try {
      const std::string dir = bench_directory();
      r.file = BridgeDaemon::file_backed(dir + "/image", dir + "/file.sock");
      r.memory = BridgeDaemon::memory_backed(dir + "/memory.sock");
      provision(r.file->socket(), &r.exchanges);
      provision(r.memory->socket(), nullptr);
      std::map<std::uint32_t, std::vector<std::uint8_t>> replies;
      for (const auto& [op, e] : r.exchanges)
        replies[static_cast<std::uint32_t>(e.request.size() - bridge::kHeaderSize)] = e.reply;
      r.echo = std::make_unique<EchoServer>(dir + "/echo.sock", std::move(replies));
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    return r;
  }();
  return s;
}

// ---- latency and ratio bookkeeping -------------------------------------------------------------

class Latencies {
 public:
  explicit Latencies(benchmark::State& state) : state_(state) {
    samples_.reserve(static_cast<std::size_t>(std::min<benchmark::IterationCount>(state.max_iterations, 2'000'000)));
  }
  void add(std::chrono::steady_clock::duration d) {
    samples_.push_back(std::chrono::duration<double, std::micro>(d).count());
  }
  // Sets p50_us / p99_us, items processed; returns round trips per second of the timed loop.
  double finish(std::chrono::steady_clock::duration loop) {
    state_.SetItemsProcessed(static_cast<std::int64_t>(state_.iterations()));
    if (samples_.empty()) return NAN;
    std::sort(samples_.begin(), samples_.end());
    state_.counters["p50_us"] = percentile(0.50);
    state_.counters["p99_us"] = percentile(0.99);
    const double seconds = std::chrono::duration<double>(loop).count();
    return seconds > 0 ? static_cast<double>(samples_.size()) / seconds : NAN;
  }

 private:
  double percentile(double p) const {
    const auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(samples_.size()))) - 1;
    return samples_[std::min(i, samples_.size() - 1)];
  }
  benchmark::State& state_;
  std::vector<double> samples_;
};

// The echo's rate for each operation's bytes, measured earlier in this run.
std::map<Operation, double>& echo_rates() {
  static std::map<Operation, double> rates;
  return rates;
}

// ---- benchmarks ----------------------------------------------------------------------------------

void run_echo(benchmark::State& state, Operation op) {
  Setup& s = setup();
  if (!s.echo) return state.SkipWithError(s.error.c_str());
  const Exchange& e = s.exchanges.at(op);
  RawClient client(bench_directory() + "/echo.sock");
  std::vector<std::uint8_t> reply;
  Latencies latencies(state);
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!client.round_trip(e.request, reply)) {
      state.SkipWithError("the echo round trip failed");
      break;
    }
    latencies.add(std::chrono::steady_clock::now() - t0);
  }
  const double rate = latencies.finish(std::chrono::steady_clock::now() - start);
  if (reply.size() + bridge::kHeaderSize != e.reply.size()) state.SkipWithError("the echo answered the wrong size");
  echo_rates()[op] = rate;
}

void run_bridge(benchmark::State& state, BridgeDaemon* daemon, Operation op) {
  Setup& s = setup();
  if (daemon == nullptr) return state.SkipWithError(s.error.c_str());
  RpmbClient c(daemon->socket());
  std::uint32_t counter = c.host.read_counter().write_counter;
  std::uint16_t address = 0;
  const std::uint16_t half_sectors = static_cast<std::uint16_t>(mmc::default_device_config().rpmb_size / 256);
  Latencies latencies(state);
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!perform(c, op, address, counter, static_cast<std::uint8_t>(counter))) {
      state.SkipWithError("the RPMB operation failed");
      break;
    }
    latencies.add(std::chrono::steady_clock::now() - t0);
    address = static_cast<std::uint16_t>((address + 1) % half_sectors);
  }
  const double rate = latencies.finish(std::chrono::steady_clock::now() - start);
  const auto echo = echo_rates().find(op);
  if (echo != echo_rates().end() && echo->second > 0) state.counters["ratio_to_echo"] = rate / echo->second;
}

void BM_Fdatasync_Bound(benchmark::State& state) {
  if (bench_directory().empty()) return state.SkipWithError("no bench directory");
  const std::string path = bench_directory() + "/fdatasync-bound.bin";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return state.SkipWithError("cannot create the fdatasync file");
  std::array<std::uint8_t, 512> block{};
  // Allocated first, so each timed fdatasync flushes data only, as a store commit does.
  bool ok = ::pwrite(fd, block.data(), block.size(), 0) == static_cast<ssize_t>(block.size()) && ::fsync(fd) == 0;
  Latencies latencies(state);
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (!ok) break;
    const auto t0 = std::chrono::steady_clock::now();
    block[0] = static_cast<std::uint8_t>(block[0] + 1);
    ok = ::pwrite(fd, block.data(), block.size(), 0) == static_cast<ssize_t>(block.size()) && ::fdatasync(fd) == 0;
    latencies.add(std::chrono::steady_clock::now() - t0);
  }
  latencies.finish(std::chrono::steady_clock::now() - start);
  ::close(fd);
  ::unlink(path.c_str());
  if (!ok) state.SkipWithError("pwrite or fdatasync failed");
}

void BM_Echo_CounterSize(benchmark::State& state) { run_echo(state, Operation::counter); }
void BM_Echo_WriteSize(benchmark::State& state) { run_echo(state, Operation::write); }
void BM_RpmbReadCounter_File(benchmark::State& state) { run_bridge(state, setup().file.get(), Operation::counter); }
void BM_RpmbReadCounter_Memory(benchmark::State& state) { run_bridge(state, setup().memory.get(), Operation::counter); }
void BM_RpmbWrite1_File(benchmark::State& state) { run_bridge(state, setup().file.get(), Operation::write); }
void BM_RpmbWrite1_Memory(benchmark::State& state) { run_bridge(state, setup().memory.get(), Operation::write); }

// The echo runs first: the bridge benchmarks divide by its rate.
constexpr double kMinTime = 0.5;
constexpr int kRepetitions = 3;
#define BRIDGE_BENCHMARK(f) \
  BENCHMARK(f)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(kMinTime)->Repetitions(kRepetitions)
BRIDGE_BENCHMARK(BM_Echo_CounterSize);
BRIDGE_BENCHMARK(BM_Echo_WriteSize);
BRIDGE_BENCHMARK(BM_Fdatasync_Bound);
BRIDGE_BENCHMARK(BM_RpmbReadCounter_File);
BRIDGE_BENCHMARK(BM_RpmbReadCounter_Memory);
BRIDGE_BENCHMARK(BM_RpmbWrite1_File);
BRIDGE_BENCHMARK(BM_RpmbWrite1_Memory);

// ---- results and summary -------------------------------------------------------------------------

struct Measured {
  double rate = NAN;
  double p50 = NAN;
  double p99 = NAN;
  bool from_median = false;
};

// Shows the runs with the usual display reporter and keeps each benchmark's figures.
class RecordingReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit RecordingReporter(benchmark::BenchmarkReporter* display) : display_(display) {}
  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) record(run);
    display_->ReportRuns(runs);
  }
  void Finalize() override { display_->Finalize(); }
  Measured of(const std::string& name) const {
    const auto found = measured_.find(name);
    return found == measured_.end() ? Measured{} : found->second;
  }

 private:
  static double counter(const Run& run, const char* name) {
    const auto found = run.counters.find(name);
    return found == run.counters.end() ? NAN : found->second.value;
  }
  // The median aggregate when there are repetitions, else the run itself.
  void record(const Run& run) {
    if (run.error_occurred) return;
    const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
    if (run.run_type == Run::RT_Aggregate && !median) return;
    Measured& m = measured_[run.run_name.function_name];
    if (m.from_median && !median) return;
    m = {counter(run, "items_per_second"), counter(run, "p50_us"), counter(run, "p99_us"), median};
  }
  benchmark::BenchmarkReporter* display_;
  std::map<std::string, Measured> measured_;
};

std::string format_value(double value, const char* format = "{:.0f}") {
  return std::isnan(value) ? "n/a" : fmt::format(format, value);
}

void print_summary(const RecordingReporter& reporter, const char* json_path) {
  struct Line {
    const char* key;
    const char* benchmark;
    const char* bound;  // the benchmark whose rate the ratio divides by; null: none
    const char* description;
  };
  const Line lines[] = {
      {"echo_counter_size", "BM_Echo_CounterSize", nullptr, "bound: socket echo, 632 B req / 588 B reply"},
      {"echo_write_size", "BM_Echo_WriteSize", nullptr, "bound: socket echo, 1192 B req / 608 B reply"},
      {"fdatasync", "BM_Fdatasync_Bound", nullptr, "bound: pwrite 512 B + fdatasync"},
      {"read_counter_file", "BM_RpmbReadCounter_File", "BM_Echo_CounterSize", "RPMB read-counter, file image / echo"},
      {"read_counter_memory", "BM_RpmbReadCounter_Memory", "BM_Echo_CounterSize",
       "RPMB read-counter, memory image / echo"},
      {"write1_file", "BM_RpmbWrite1_File", "BM_Echo_WriteSize", "RPMB write 1 frame, file image (sync) / echo"},
      {"write1_file_over_fdatasync", "BM_RpmbWrite1_File", "BM_Fdatasync_Bound",
       "RPMB write 1 frame, file image (sync) / fdatasync"},
      {"write1_memory", "BM_RpmbWrite1_Memory", "BM_Echo_WriteSize", "RPMB write 1 frame, memory image / echo"},
  };
  fmt::print("\nMMC-ioctl bridge summary (medians of the repetitions in this run; per second of real time)\n");
  fmt::print("{:<50} {:>9} {:>9} {:>9} {:>7}\n", "measure", "trips/s", "p50 us", "p99 us", "ratio");
  std::FILE* json = json_path != nullptr && *json_path != '\0' ? std::fopen(json_path, "w") : nullptr;
  if (json != nullptr) fmt::print(json, "{{\n");
  for (std::size_t i = 0; i < std::size(lines); ++i) {
    const Measured m = reporter.of(lines[i].benchmark);
    const double ratio = lines[i].bound != nullptr ? m.rate / reporter.of(lines[i].bound).rate : NAN;
    fmt::print("{:<50} {:>9} {:>9} {:>9} {:>7}\n", lines[i].description, format_value(m.rate),
               format_value(m.p50, "{:.1f}"), format_value(m.p99, "{:.1f}"), format_value(ratio, "{:.3f}"));
    if (json != nullptr) {
      auto number = [](double v) { return std::isnan(v) ? std::string("null") : fmt::format("{:.6g}", v); };
      fmt::print(json, "  \"{}\": {{\"per_s\": {}, \"p50_us\": {}, \"p99_us\": {}, \"ratio\": {}}}{}\n", lines[i].key,
                 number(m.rate), number(m.p50), number(m.p99), number(ratio), i + 1 < std::size(lines) ? "," : "");
    }
  }
  if (json != nullptr) {
    fmt::print(json, "}}\n");
    std::fclose(json);
  }
  fmt::print("(bench directory: {})\n", bench_directory().empty() ? "none" : bench_directory());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::unique_ptr<emmcsim::testing::ScratchDirectory> directory =
      emmcsim::testing::make_benchmark_directory("emmcsim-bridge-bench");
  bench_directory() = directory ? directory->path() : std::string();
  RecordingReporter reporter(benchmark::CreateDefaultDisplayReporter());
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  {
    Setup& s = setup();
    if (!s.error.empty()) fmt::print(stderr, "set-up failed: {}\n", s.error);
    s.echo.reset();  // servers down and the image closed before the directory goes
    s.memory.reset();
    s.file.reset();
  }
  directory.reset();  // the directory and everything in it
  print_summary(reporter, std::getenv("EMMCSIM_BENCH_SUMMARY"));
  return 0;
}
