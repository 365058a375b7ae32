// `emmcsim serve --uml-pci-socket` against the real daemon, without a kernel: the test plays
// User-Mode Linux's virtio_uml and virt-pci (VhostUserFrontend in UML order, two queues) and
// checks the PCI function it reaches (the GL9763E's config space and BAR), who owns the card
// (the bridge gets EBUSY while a guest is attached and the card back after), hostile
// virtio-pcidev messages (refused, the daemon and the card unharmed), and the start-up errors.
// e2e.linux boots the real kernel against the same front.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"
#include "emmcsim/transport/time_travel.hpp"
#include "emmcsim/transport/vhost_user_frontend.hpp"
#include "emmcsim/transport/virtio_pcidev.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::e2e {
namespace {

namespace bridge = transport::bridge;
namespace pcidev = transport::virtio_pcidev;
namespace tt = transport::time_travel;
using transport::VhostUserFrontend;
using Bytes = std::vector<std::uint8_t>;

std::uint32_t le32(const Bytes& b, std::size_t at = 0) {
  return b.at(at) | b.at(at + 1) << 8 | b.at(at + 2) << 16 | static_cast<std::uint32_t>(b.at(at + 3)) << 24;
}

// The guest's driver, reduced to what the hostile scenario needs: config and BAR accesses over
// the cmd queue, and polling the controller's status as sdhci.c's interrupt handler reads it.
class GuestRegisters {
 public:
  explicit GuestRegisters(VhostUserFrontend& guest) : guest_(guest) {}
  std::uint32_t read(pcidev::Op op, std::uint64_t offset, std::uint32_t size) {
    pcidev::Access a;
    a.op = op;
    a.addr = offset;
    a.size = size;
    guest_.submit({pcidev::encode_access(a)}, {size}, pcidev::kCommandQueue);
    const VhostUserFrontend::Used used = guest_.wait_used(std::chrono::seconds(10), pcidev::kCommandQueue);
    if (used.length != size) return ~0u;  // what virt-pci gives the driver
    const Bytes b = guest_.written(pcidev::kCommandQueue);
    std::uint32_t v = 0;
    for (std::uint32_t i = 0; i < size; ++i) v |= std::uint32_t{b.at(i)} << (8 * i);
    return v;
  }
  void write(pcidev::Op op, std::uint64_t offset, std::uint32_t size, std::uint32_t value) {
    pcidev::Access a;
    a.op = op;
    a.addr = offset;
    a.size = size;
    for (std::uint32_t i = 0; i < size; ++i) a.data.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    if (op == pcidev::Op::cfg_write) a.data.resize(8);  // virt-pci sends 8 data bytes
    guest_.submit({pcidev::encode_access(a)}, {}, pcidev::kCommandQueue);
    guest_.wait_used(std::chrono::seconds(10), pcidev::kCommandQueue);
  }
  std::uint32_t config(std::uint32_t offset, std::uint32_t size) { return read(pcidev::Op::cfg_read, offset, size); }
  void set_config(std::uint32_t offset, std::uint32_t size, std::uint32_t v) {
    write(pcidev::Op::cfg_write, offset, size, v);
  }
  std::uint32_t bar(std::uint32_t offset, std::uint32_t size) { return read(pcidev::Op::mmio_read, offset, size); }
  void set_bar(std::uint32_t offset, std::uint32_t size, std::uint32_t v) {
    write(pcidev::Op::mmio_write, offset, size, v);
  }

  // Polls NORMAL_INT_STATUS (bounded) until one of `bits` is set; returns the 32-bit status.
  std::uint32_t wait_status(std::uint32_t bits) {
    std::uint32_t status = 0;
    for (int i = 0; i < 5000; ++i) {
      status = bar(0x30, 4);
      if ((status & bits) != 0) return status;
    }
    return status;
  }
  // One command without data: the status it ended with (command complete, or the error bit).
  std::uint32_t command(std::uint8_t index, std::uint32_t argument, std::uint16_t flags) {
    set_bar(0x30, 4, 0xFFFFFFFF);
    set_bar(0x08, 4, argument);
    set_bar(0x0C, 4, std::uint32_t{static_cast<std::uint16_t>(index << 8 | flags)} << 16);
    std::uint32_t status = wait_status(0x8001);                                        // command complete, or an error
    if ((flags & 0x3) == 0x3 && (status & 0x8000) == 0) status = wait_status(0x8002);  // R1b: transfer complete
    return status;
  }

 private:
  VhostUserFrontend& guest_;
};

class UmlPciFront : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(emmcsim_binary().empty()) << "EMMCSIM_BIN is not set (CTest sets it)";
    dir_ = scratch_.path();
    daemon_ = std::make_unique<DaemonProcess>(
        emmcsim_binary(),
        std::vector<std::string>{"serve", "--image", dir_ + "/card", "--mmc-socket", dir_ + "/mmc.sock",
                                 "--uml-pci-socket", dir_ + "/pci.sock", "--log-level", "info"},
        dir_ + "/daemon.log");
    daemon_->start();
    client_ = std::make_unique<bridge::BridgeClient>(dir_ + "/mmc.sock");
  }
  void TearDown() override {
    client_.reset();
    if (daemon_ && daemon_->running()) {
      const int status = daemon_->terminate();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_wait_status(status) << "\n"
                                                                 << daemon_->log_tail();
    }
  }

  std::unique_ptr<VhostUserFrontend> connect_guest() {
    VhostUserFrontend::Options options;
    options.order = VhostUserFrontend::Order::uml;
    options.queues = 2;
    options.config_size = 0;
    auto guest = std::make_unique<VhostUserFrontend>(dir_ + "/pci.sock", options);
    guest->start();
    return guest;
  }
  // One access on the cmd queue; the bytes the guest got back (reads) and the used length.
  static Bytes access(VhostUserFrontend& guest, const pcidev::Access& a, std::uint32_t* used_length = nullptr) {
    const std::vector<std::uint32_t> room =
        a.is_read() ? std::vector<std::uint32_t>{a.size} : std::vector<std::uint32_t>{};
    guest.submit({pcidev::encode_access(a)}, room, pcidev::kCommandQueue);
    const VhostUserFrontend::Used used = guest.wait_used(std::chrono::seconds(10), pcidev::kCommandQueue);
    if (used_length != nullptr) *used_length = used.length;
    return a.is_read() ? guest.written(pcidev::kCommandQueue) : Bytes{};
  }
  static pcidev::Access config_read(std::uint32_t offset, std::uint32_t size) {
    pcidev::Access a;
    a.op = pcidev::Op::cfg_read;
    a.addr = offset;
    a.size = size;
    return a;
  }
  static pcidev::Access bar_read(std::uint8_t bar, std::uint64_t offset, std::uint32_t size) {
    pcidev::Access a;
    a.op = pcidev::Op::mmio_read;
    a.bar = bar;
    a.addr = offset;
    a.size = size;
    return a;
  }
  // The bridge's reads fail with EBUSY until the daemon has the card back; bounded.
  bridge::BlockReadReply read_when_back(const bridge::BlockReadRequest& request) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      bridge::BlockReadReply reply = client_->read(request);
      if (reply.status.error != EBUSY || std::chrono::steady_clock::now() > deadline) return reply;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  emmcsim::testing::ScratchDirectory scratch_{"emmcsim-uml-pci"};
  std::string dir_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<bridge::BridgeClient> client_;
};

TEST_F(UmlPciFront, SaysWhereAndRunsTheTimedModels) {
  const std::string log = daemon_->log_tail();
  EXPECT_NE(log.find("PCI SD host controller (GL9763E 17a0:e763) for User-Mode Linux on " + dir_ + "/pci.sock"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("virtio_uml.device=" + dir_ + "/pci.sock:1234"), std::string::npos) << log;
  EXPECT_NE(log.find("timed: HS400"), std::string::npos) << "--uml-pci-socket implies --timing approximate\n" << log;
}

TEST_F(UmlPciFront, TheGuestReadsTheControllersIdentityAndHasTheCardUntilItGoes) {
  const std::vector<std::uint8_t> data(4096, 0x5A);
  ASSERT_EQ(client_->write(bridge::BlockWriteRequest{bridge::Node::user, 1 << 20, data}).status.error, 0);
  {
    std::unique_ptr<VhostUserFrontend> guest = connect_guest();
    EXPECT_EQ(le32(access(*guest, config_read(0x00, 4))), 0xE76317A0u) << "vendor 17a0, device e763";
    EXPECT_EQ(le32(access(*guest, config_read(0x08, 4))) >> 8, 0x080501u) << "class: SD host, SDHCI with DMA";
    EXPECT_EQ(access(*guest, config_read(0x34, 1)).at(0), 0x80) << "the MSI capability";
    const Bytes version = access(*guest, bar_read(0, 0xFE, 2));
    EXPECT_EQ(version.at(0), 0x04) << "SDHCI specification version 4.10 (HOST_VERSION's low byte 0x04)";
    EXPECT_EQ(le32(access(*guest, bar_read(0, 0x200, 4))), 0x0510u) << "CQHCI version at 0x200";

    // The card is the guest's now: the bridge is told so, and nothing changes on the card.
    const bridge::BlockReadReply busy = client_->read(bridge::BlockReadRequest{bridge::Node::user, 1 << 20, 4096});
    EXPECT_EQ(busy.status.error, EBUSY) << client_->last_error_message();
    EXPECT_NE(client_->last_error_message().find("User-Mode Linux guest"), std::string::npos)
        << client_->last_error_message();
  }  // the guest goes: its connection closes
  const bridge::BlockReadReply back = read_when_back(bridge::BlockReadRequest{bridge::Node::user, 1 << 20, 4096});
  EXPECT_EQ(back.status.error, 0) << client_->last_error_message();
  EXPECT_EQ(back.data, data) << "the card came back with its data";
  const std::string log = daemon_->log_tail();
  EXPECT_NE(log.find("a User-Mode Linux guest connected"), std::string::npos) << log;
  EXPECT_NE(log.find("the daemon's driver has the card again"), std::string::npos) << log;
}

TEST_F(UmlPciFront, HostileAccessesAreRefusedAndTheNextOneWorks) {
  std::unique_ptr<VhostUserFrontend> guest = connect_guest();
  std::uint32_t used = 99;
  // A short header, an interrupt op on the cmd queue, a config read past 4 KiB, a read without
  // room for its answer: each returned unused.
  const std::vector<std::pair<Bytes, std::vector<std::uint32_t>>> hostile = {
      {Bytes(5, 0x01), {4}},
      {pcidev::encode_access(pcidev::Access{pcidev::Op::msi, 0, 4, 0, {1, 2, 3, 4}}), {}},
      {pcidev::encode_access(config_read(0x1000, 4)), {4}},
      {pcidev::encode_access(config_read(0x00, 4)), {}},
  };
  for (const auto& [readable, writable] : hostile) {
    guest->submit({readable}, writable, pcidev::kCommandQueue);
    EXPECT_EQ(guest->wait_used(std::chrono::seconds(10), pcidev::kCommandQueue).length, 0u);
  }
  // Accesses the function refuses: an unaligned config read, BAR 3, a BAR offset past 4 KiB.
  access(*guest, config_read(0x01, 4), &used);
  EXPECT_EQ(used, 0u) << "unaligned: the guest reads all-ones";
  access(*guest, bar_read(3, 0, 4), &used);
  EXPECT_EQ(used, 0u) << "no BAR 3";
  access(*guest, bar_read(0, 0x1000, 4), &used);
  EXPECT_EQ(used, 0u) << "past the 4 KiB BAR";
  // Still serving, and the daemon still alive.
  EXPECT_EQ(le32(access(*guest, config_read(0x00, 4), &used)), 0xE76317A0u);
  EXPECT_EQ(used, 4u);
  EXPECT_TRUE(daemon_->running());
}

// A guest that programs the controller against the rules: read-only config fields written,
// SDMA to an address outside its memory, a self-linked ADMA2 table, interrupts raised before it
// posted a buffer for them. Each ends as the status the SDHCI specification names or is
// ignored; the daemon keeps serving and the card keeps its data.
TEST_F(UmlPciFront, AGuestThatProgramsTheControllerAgainstTheRulesGetsStatusBitsNotACrash) {
  const std::vector<std::uint8_t> data(4096, 0xA5);
  ASSERT_EQ(client_->write(bridge::BlockWriteRequest{bridge::Node::user, 0, data}).status.error, 0);
  {
    std::unique_ptr<VhostUserFrontend> guest = connect_guest();
    GuestRegisters r(*guest);
    r.set_config(0x00, 4, 0xFFFFFFFF);
    r.set_config(0x08, 4, 0);
    EXPECT_EQ(r.config(0x00, 4), 0xE76317A0u) << "the IDs are read-only";
    EXPECT_EQ(r.config(0x08, 4) >> 8, 0x080501u) << "the class is read-only";
    r.set_config(0x04, 2, 0x0006);   // memory space, bus master
    r.set_config(0x84, 4, 0xA0000);  // the MSI address UML composes, and our data word
    r.set_config(0x8C, 2, 0x0042);
    r.set_config(0x82, 2, 0x0001);  // MSI on
    // Controller up at 400 kHz, as sdhci.c brings it up; every status enabled and signalled.
    r.set_bar(0x2C, 4, 0x01000000);  // software reset for all
    r.set_bar(0x28, 4, 0x00000F00);  // 3.3 V, bus power on: the card is power-cycled
    r.set_bar(0x2C, 4, 0x0000FA01);  // divider 250 (400 kHz), internal clock on
    r.set_bar(0x2C, 4, 0x0000FA05);  // SD clock on
    r.set_bar(0x34, 4, 0xFFFFFFFF);
    r.set_bar(0x38, 4, 0xFFFFFFFF);
    EXPECT_EQ(r.command(0, 0, 0x00) & 0x8001, 0x0001u) << "CMD0";
    std::uint32_t ocr = 0;
    for (int i = 0; i < 100 && (ocr & 0x80000000u) == 0; ++i) {
      r.command(1, 0x40FF8080, 0x02);
      ocr = r.bar(0x10, 4);
    }
    EXPECT_NE(ocr & 0x80000000u, 0u) << "CMD1: the card became ready";
    EXPECT_EQ(r.command(2, 0, 0x09) & 0x8001, 0x0001u) << "CMD2";
    EXPECT_EQ(r.command(3, 0x10000, 0x1A) & 0x8001, 0x0001u) << "CMD3";
    EXPECT_EQ(r.command(7, 0x10000, 0x1B) & 0x8001, 0x0001u) << "CMD7";

    // SDMA into an address outside guest memory: an error, and no data anywhere.
    r.set_bar(0x30, 4, 0xFFFFFFFF);
    r.set_bar(0x00, 4, 0xF0000000);
    r.set_bar(0x04, 4, 0x00017200);  // 512-byte blocks, boundary 512 KiB, one block
    r.set_bar(0x0C, 4, 0x113A0011);  // CMD17, DMA, read
    std::uint32_t status = r.wait_status(0x8002);
    EXPECT_NE(status & 0x8000, 0u) << "SDMA outside guest memory raised an error (status " << std::hex << status << ")";
    r.set_bar(0x2C, 4, 0x0600FA05);  // reset the CMD and DAT lines, as the driver does after errors

    // A self-linked ADMA2 table in guest memory: an ADMA error, not a loop.
    const std::uint64_t table = 0x80000;
    std::uint8_t* d = guest->ram() + table;
    const std::uint64_t table_address = guest->guest_address(table);
    d[0] = 0x31;  // valid, link
    d[1] = 0;
    d[2] = d[3] = 0;
    for (int i = 0; i < 4; ++i) d[4 + i] = static_cast<std::uint8_t>(table_address >> (8 * i));
    r.set_bar(0x30, 4, 0xFFFFFFFF);
    r.set_bar(0x28, 4, 0x00000F10);  // ADMA2, 32-bit
    r.set_bar(0x58, 4, static_cast<std::uint32_t>(table_address));
    r.set_bar(0x04, 4, 0x00010200);
    r.set_bar(0x0C, 4, 0x113A0011);
    status = r.wait_status(0x8002);
    EXPECT_NE(status & (0x0200u << 16), 0u)
        << "a self-linked table is an ADMA error (status " << std::hex << status << ")";
    r.set_bar(0x2C, 4, 0x0600FA05);

    // The interrupts the controller raised waited for buffers; posted now, they are delivered
    // as MSI messages with the data word the guest programmed.
    guest->post_writable(4, pcidev::kInterruptMessageSize, pcidev::kInterruptQueue);
    const VhostUserFrontend::Used irq = guest->wait_used(std::chrono::seconds(10), pcidev::kInterruptQueue);
    EXPECT_EQ(irq.length, pcidev::kInterruptMessageSize);
    const Bytes message = guest->posted_buffer(irq.id, pcidev::kInterruptQueue);
    const auto expected = pcidev::encode_msi(0x42);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), message.begin())) << "an MSI with data 0x42";
  }
  EXPECT_TRUE(daemon_->running());
  const bridge::BlockReadReply back = read_when_back(bridge::BlockReadRequest{bridge::Node::user, 0, 4096});
  EXPECT_EQ(back.status.error, 0) << client_->last_error_message();
  EXPECT_EQ(back.data, data) << "the card is untouched";
}

// --time-travel-socket and --time-of-day belong to the PCI front's guest: without it, or on
// another front's path, serve refuses before creating anything.
TEST(UmlPciFrontStartup, NeedsTheTimedModelsAndASocketOfItsOwn) {
  const emmcsim::testing::ScratchDirectory scratch("emmcsim-uml-pci-usage");
  const std::string& dir = scratch.path();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--uml-pci-socket", dir + "/pci.sock", "--timing", "off"}, "--uml-pci-socket serves the timed models"},
      {{"--uml-pci-socket", dir + "/mmc.sock"}, "--uml-pci-socket must be a path of its own"},
      {{"--uml-pci-socket", dir + "/v.sock", "--vhost-user-socket", dir + "/v.sock"}, "must be a path of its own"},
      {{"--time-travel-socket", dir + "/time.sock"}, "--time-travel-socket schedules the clock of the User-Mode Linux"},
      {{"--uml-pci-socket", dir + "/pci.sock", "--time-of-day", "1767225600"},
       "--time-of-day is the time-travel guest's clock at simulated time 0: add --time-travel-socket"},
      {{"--uml-pci-socket", dir + "/pci.sock", "--time-travel-socket", dir + "/pci.sock"},
       "--time-travel-socket must be a path of its own"},
  };
  for (const auto& [extra, message] : cases) {
    std::vector<std::string> args = {"serve", "--image", dir + "/card", "--mmc-socket", dir + "/mmc.sock"};
    args.insert(args.end(), extra.begin(), extra.end());
    DaemonProcess daemon(emmcsim_binary(), args, dir + "/daemon.log");
    EXPECT_THROW(daemon.start(std::chrono::seconds(10)), std::runtime_error) << message;
    EXPECT_NE(daemon.log_tail().find(message), std::string::npos) << daemon.log_tail();
    EXPECT_FALSE(std::filesystem::exists(dir + "/card")) << "the image was created though serve refused to start";
  }
}

// ---- the time-travel calendar of a live daemon, driven by a guest of our own ------------------

// A raw client of the daemon's time-travel socket (the messages of time_travel.hpp).
class TimeTravelGuest {
 public:
  explicit TimeTravelGuest(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    timeval timeout{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~TimeTravelGuest() { ::close(fd_); }
  bool connected() const { return connected_; }
  // Sends op and returns the calendar's answer to it (an ACK), or nullopt when it closed.
  std::optional<tt::Message> ask(tt::Op op, std::uint64_t time = 0) {
    send(tt::Message{op, ++seq_, time});
    return receive();
  }
  void send(const tt::Message& m) {
    const auto bytes = tt::encode(m);
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  std::optional<tt::Message> receive() {
    std::uint8_t bytes[tt::kMessageSize];
    for (std::size_t got = 0; got < sizeof bytes;) {
      const ssize_t n = ::read(fd_, bytes + got, sizeof bytes - got);
      if (n <= 0) return std::nullopt;
      got += static_cast<std::size_t>(n);
    }
    return tt::decode(bytes, sizeof bytes);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::uint32_t seq_ = 0;
};

TEST(TimeTravelCalendar, OwnsTheGuestsClockAndEndsABreachWithTheCardConsistent) {
  const emmcsim::testing::ScratchDirectory scratch("emmcsim-tt-e2e");
  const std::string& dir = scratch.path();
  DaemonProcess daemon(
      emmcsim_binary(),
      {"serve", "--image", dir + "/card", "--mmc-socket", dir + "/mmc.sock", "--uml-pci-socket", dir + "/pci.sock",
       "--time-travel-socket", dir + "/time.sock", "--time-of-day", "1767225600", "--log-level", "debug"},
      dir + "/daemon.log");
  daemon.start();
  EXPECT_NE(daemon.log_tail().find("time-travel=ext:" + dir + "/time.sock"), std::string::npos) << daemon.log_tail();
  bridge::BridgeClient client(dir + "/mmc.sock");
  const Bytes data(4096, 0xA5);
  ASSERT_EQ(client.write(bridge::BlockWriteRequest{bridge::Node::user, 1 << 20, data}).status.error, 0);
  {
    TimeTravelGuest guest(dir + "/time.sock");
    ASSERT_TRUE(guest.connected());
    ASSERT_TRUE(guest.ask(tt::Op::start, 1)) << "START is answered once the simulation holds";
    const auto tod = guest.ask(tt::Op::get_tod);
    const auto now = guest.ask(tt::Op::get);
    ASSERT_TRUE(tod && now);
    EXPECT_GT(now->time, 0u) << "the guest starts where the daemon's driver left simulated time";
    EXPECT_EQ(tod->time, 1'767'225'600'000'000'000ull + now->time) << "--time-of-day at simulated time 0";
    // The card is kept for the guest: the bridge is told so.
    EXPECT_EQ(client.read(bridge::BlockReadRequest{bridge::Node::user, 1 << 20, 4096}).status.error, EBUSY);
    // One millisecond of the guest's sleep is one millisecond of simulated time.
    ASSERT_TRUE(guest.ask(tt::Op::request, now->time + 1'000'000));
    ASSERT_TRUE(guest.ask(tt::Op::wait));
    const auto run = guest.receive();
    ASSERT_TRUE(run);
    EXPECT_EQ(run->op, tt::Op::run);
    EXPECT_EQ(run->time, now->time + 1'000'000);
    guest.send(tt::Message{tt::Op::ack, run->seq, 0});
    const auto later = guest.ask(tt::Op::get);
    ASSERT_TRUE(later);
    EXPECT_EQ(later->time, now->time + 1'000'000);
    // A REQUEST in the past while waiting: one error line, the connection closed.
    ASSERT_TRUE(guest.ask(tt::Op::request, now->time));
    EXPECT_FALSE(guest.ask(tt::Op::wait).has_value() && guest.receive().has_value()) << "the calendar closes";
  }
  // The simulation runs freely again and the card is back with the daemon's driver, data intact.
  bridge::BlockReadReply back;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    back = client.read(bridge::BlockReadRequest{bridge::Node::user, 1 << 20, 4096});
  } while (back.status.error == EBUSY && std::chrono::steady_clock::now() < deadline &&
           (std::this_thread::sleep_for(std::chrono::milliseconds(10)), true));
  EXPECT_EQ(back.status.error, 0) << client.last_error_message();
  EXPECT_EQ(back.data, data);
  const std::string log = daemon.log_tail();
  EXPECT_NE(log.find("in the past of the simulation"), std::string::npos) << log;
  EXPECT_NE(log.find("the simulation runs freely again"), std::string::npos) << log;
  daemon.terminate();
}

}  // namespace
}  // namespace emmcsim::e2e
