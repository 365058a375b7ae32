// A virtual platform running the host software emmcsim ships over the timed model, built against
// the installed package: a host module's thread drives an EmmcDevice through an EmmcBusHost (the
// timed mmc::HostBus) with the Linux-like block driver (probe to HS400, a 4 KiB write and read
// back) and an RPMB host (rpmb::Host over mmc::RpmbBusChannel, sharing the bus with the driver).
// install_test.sh checks what it prints.
#include <emmcsim/mmc/host_sequences.hpp>
#include <emmcsim/mmc/image.hpp>
#include <emmcsim/mmc/linux_block_driver.hpp>
#include <emmcsim/mmc/mmcblk_requests.hpp>
#include <emmcsim/models/emmc_bus_host.hpp>
#include <emmcsim/models/emmc_device.hpp>
#include <emmcsim/rpmb/host.hpp>

#include <cstdint>
#include <cstdio>
#include <systemc>
#include <vector>

namespace {

namespace mmc = emmcsim::mmc;
namespace mmcblk = emmcsim::mmc::mmcblk;
namespace models = emmcsim::models;
namespace rpmb = emmcsim::rpmb;

double us(std::uint64_t ps) { return static_cast<double>(ps) / 1e6; }

struct Host : sc_core::sc_module {
  models::EmmcBusInitiatorSocket<Host> bus;
  const models::EmmcDevice& card;

  Host(sc_core::sc_module_name name, const models::EmmcDevice& device) : sc_module(name), bus("bus"), card(device) {
    SC_HAS_PROCESS(Host);
    SC_THREAD(run);
  }

  void run() {
    models::EmmcBusHost host(bus, mmc::LinuxBlockDriver::kIdentificationClockHz);
    mmc::LinuxBlockDriver driver(host);  // probes the card: 400 kHz up to the fastest mode
    const mmcblk::DescribeReply d = driver.describe();
    std::printf("driver: %s at %u MHz after %.3f us, user %llu MiB, rpmb %llu KiB\n",
                card.bus_mode().describe().c_str(), static_cast<unsigned>(host.clock_hz() / 1'000'000),
                us(*host.simulated_time_ps()), static_cast<unsigned long long>(d.node_size[0] >> 20),
                static_cast<unsigned long long>(d.node_size[3] >> 10));

    std::vector<std::uint8_t> data(4096);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7);
    const mmcblk::BlockWriteReply w = driver.write({mmcblk::Node::user, 1 << 20, data});
    const mmcblk::BlockReadReply r = driver.read({mmcblk::Node::user, 2 << 20, 4096});
    const mmcblk::BlockReadReply back = driver.read({mmcblk::Node::user, 1 << 20, 4096});
    std::printf("driver: 4 KiB written in %.3f us (errno %d), read in %.3f us (errno %d), read back %s\n",
                us(w.status.simulated_ps), w.status.error, us(r.status.simulated_ps), r.status.error,
                back.data == data ? "equal" : "DIFFERENT");

    rpmb::Key key{};
    for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>('a' + i % 26);
    mmc::RpmbBusChannel channel(host, driver.partition_config());
    rpmb::Host rpmb_host(channel, key);
    const bool programmed = rpmb_host.program_key(key).ok();
    const std::vector<std::uint8_t> frame_data(256, 0x5A);
    const std::uint64_t before = *host.simulated_time_ps();
    const bool written = rpmb_host.write(0x10, frame_data.data(), 1).ok();
    const std::uint64_t write_ps = *host.simulated_time_ps() - before;
    const rpmb::HostResult read = rpmb_host.read(0x10, 1);
    const rpmb::HostResult counter = rpmb_host.read_counter(rpmb::Nonce{});
    std::printf("rpmb: key %s, block 0x10 written in %.3f us, read back %s, counter %u\n",
                programmed ? "programmed" : "REFUSED", us(write_ps),
                written && read.ok() && read.data == frame_data ? "verified" : "WRONG", counter.write_counter);
  }
};

}  // namespace

int sc_main(int, char**) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::EmmcDevice card("card", config, image.backend());
  Host host("host", card);
  host.bus.bind(card.bus);
  sc_core::sc_start();
  return 0;
}
