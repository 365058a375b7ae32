// Brings up a RAM-backed card through the installed headers and libraries and prints what a
// host learns from it; install_test.sh checks the output.
#include <emmcsim/mmc/card.hpp>
#include <emmcsim/mmc/host_sequences.hpp>
#include <emmcsim/mmc/image.hpp>

#include <cstdio>
#include <vector>

int main() {
  using namespace emmcsim::mmc;
  DeviceConfig config = default_device_config();
  MemoryImage image(config);
  Card card(config, image.backend());
  identify_and_select(card);
  CommandOutcome o = card.execute({8, 0});
  std::vector<std::uint8_t> ext_csd(o.data.block_size);
  if (!card.read_block(ext_csd.data(), ext_csd.size()).ok) return 1;
  std::printf("state=%s ext_csd_rev=%u rpmb_size_mult=%u\n", std::string(card_state_name(card.state())).c_str(),
              ext_csd[ext_csd::kExtCsdRev], ext_csd[ext_csd::kRpmbSizeMult]);
  return 0;
}
