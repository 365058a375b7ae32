// A virtual platform's first use of the installed package: an EmmcDevice bound to the platform's
// own host module, whose thread brings the card up and reads EXT_CSD over the timed eMMC bus.
// install_test.sh checks what it prints.
#include <emmcsim/mmc/image.hpp>
#include <emmcsim/models/emmc_bus.hpp>
#include <emmcsim/models/emmc_bus_host.hpp>
#include <emmcsim/models/emmc_device.hpp>

#include <cstdio>
#include <systemc>
#include <vector>

namespace {

struct Platform : sc_core::sc_module {
  emmcsim::models::EmmcBusInitiatorSocket<Platform> emmc;
  Platform(sc_core::sc_module_name name) : sc_module(name), emmc("emmc") {
    SC_HAS_PROCESS(Platform);
    SC_THREAD(boot);
  }
  void boot() {
    emmcsim::models::EmmcBusHost host(emmc, 400'000);
    host.execute({0, 0});
    while (!(host.execute({1, 0x40FF8080}).response.value & (1u << 31))) {
    }
    host.execute({2, 0});
    host.execute({3, 1u << 16});
    host.execute({7, 1u << 16});
    host.execute({8, 0});
    std::vector<std::uint8_t> ext_csd(512);
    host.read_blocks(ext_csd.data(), 512, 1);
    std::printf("ext_csd_rev=%u rpmb_size_mult=%u at %s\n", ext_csd[192], ext_csd[168],
                sc_core::sc_time_stamp().to_string().c_str());
  }
};

}  // namespace

int sc_main(int, char**) {
  const emmcsim::mmc::DeviceConfig config = emmcsim::mmc::default_device_config();
  emmcsim::mmc::MemoryImage image(config);
  emmcsim::models::EmmcDevice card("card", config, image.backend());
  Platform platform("platform");
  platform.emmc.bind(card.bus);
  sc_core::sc_start();
  return 0;
}
