// libFuzzer target: models::EmmcDevice on its eMMC bus socket, fed transactions decoded from the
// input — well-formed ones in any order and malformed ones (no extension, zero clock, lengths
// that are not whole blocks, wrong generic-payload commands, byte enables, no data pointer).
//
// The fuzzer calls the socket's b_transport directly with a growing annotated delay (the host's
// local time), without starting the SystemC kernel: EmmcDevice never waits, so one elaboration
// serves every input, each with a fresh device on a RAM image (64 MiB user, sector data sparse).
//
// Input: a sequence of steps until the input ends (at most kMaxSteps), each an op byte:
//   op % 8 = 0  command: index byte (& 63), u32 argument (4 bytes, big-endian); a kIndices entry
//               instead when the index byte has bit 7 set
//   op % 8 = 1  read_data:  block size byte (0x80+: 512, else 1 + byte), block count byte (1..16)
//   op % 8 = 2  write_data: the same, then a fill byte
//   op % 8 = 3  wait_while_busy
//   op % 8 = 4  power_cycle
//   op % 8 = 5  the host waits: a u16 number of microseconds added to its local time
//   op % 8 = 6  set the clock: kClocks[byte % size] (0 Hz included)
//   op % 8 = 7  malformed transaction: kind byte % 6
// Every read past the end of the input yields zeros.
//
// Invariants (__builtin_trap on violation):
//   - a well-formed transaction (non-zero clock, index < 64) gets TLM_OK_RESPONSE; a malformed
//     one an error response, no added delay, and the card's state, partition and busy unchanged;
//   - no transaction adds more than 100,000 bus cycles and an hour of internal time;
//   - when the device says the card is busy, its busy end is not before the transaction's start;
//     after wait_while_busy the card is not busy;
//   - the card's state is always one of the JEDEC states.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <systemc>
#include <vector>

#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/emmc_bus.hpp"
#include "emmcsim/models/emmc_device.hpp"
#include "emmcsim/models/simulated_time.hpp"
#include "fuzz_support.hpp"

namespace {

using emmcsim::models::EmmcBusTransaction;
using emmcsim::models::EmmcDevice;
namespace mmc = emmcsim::mmc;

constexpr std::size_t kMaxSteps = 256;
constexpr std::uint8_t kIndices[] = {0, 1, 2, 3, 6, 7, 8, 12, 13, 17, 18, 23, 24, 25, 35, 36, 38, 5, 21, 19, 14};
constexpr std::uint64_t kClocks[] = {400'000, 26'000'000, 52'000'000, 200'000'000, 0, 1, 400'000'000};
const sc_core::sc_time kHour(3600, sc_core::SC_SEC);

bool valid_state(mmc::CardState s) {
  for (mmc::CardState known : mmc::kAllCardStates)
    if (s == known) return true;
  return false;
}

struct Snapshot {
  mmc::CardState state;
  mmc::Partition partition;
  bool busy;
  explicit Snapshot(const mmc::Card& c) : state(c.state()), partition(c.current_partition()), busy(c.busy()) {}
  bool operator==(const Snapshot& o) const { return state == o.state && partition == o.partition && busy == o.busy; }
};

struct Harness {
  Harness()
      : image(emmcsim::fuzzing::small_device_config()),
        device("card", emmcsim::fuzzing::small_device_config(), image.backend()) {
    sc_core::sc_report_handler::set_actions(EmmcDevice::kMessageType, sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
  }
  // One transaction; returns whether it was answered OK.
  bool send(tlm::tlm_generic_payload& payload) {
    const sc_core::sc_time before = local;
    const mmc::Card& card = device.card();
    const Snapshot snapshot(card);
    device.bus.get_base_export()->b_transport(payload, local);  // the socket's forward interface
    // Bus time: at most 16 blocks of 1-bit data (4114 cycles each) and a command, well under
    // 100,000 cycles; internal time: under an hour.
    const sc_core::sc_time cycles =
        clock == 0 ? sc_core::SC_ZERO_TIME : sc_core::sc_time(1e5 / static_cast<double>(clock), sc_core::SC_SEC);
    if (local < before || local - before > kHour + cycles) __builtin_trap();
    if (!valid_state(card.state())) __builtin_trap();
    if (payload.is_response_ok()) {
      if (const auto until = device.busy_until(); until && *until + kHour < before) __builtin_trap();
      return true;
    }
    if (local != before || !(Snapshot(card) == snapshot)) __builtin_trap();  // a refusal changes nothing
    return false;
  }

  mmc::MemoryImage image;
  EmmcDevice device;
  sc_core::sc_time local = sc_core::SC_ZERO_TIME;
  std::uint64_t clock = 52'000'000;
};

void malformed(Harness& h, std::uint8_t kind, std::vector<std::uint8_t>& buffer) {
  EmmcBusTransaction t;
  tlm::tlm_generic_payload bare;
  tlm::tlm_generic_payload* payload = &t.payload();
  std::uint8_t enables[4] = {0xFF, 0, 0xFF, 0};
  switch (kind % 6) {
    case 0: payload = &bare; break;                   // no extension
    case 1: t.set_command({13, 1u << 16}, 0); break;  // no clock
    case 2:
      t.set_read(buffer.data(), 512, 2, h.clock | 1);
      t.payload().set_data_length(700);  // not whole blocks
      break;
    case 3:
      t.set_write(buffer.data(), 512, 1, h.clock | 1);
      t.payload().set_command(tlm::TLM_READ_COMMAND);  // a write that says read
      break;
    case 4:
      t.set_read(buffer.data(), 512, 1, h.clock | 1);
      t.payload().set_byte_enable_ptr(enables);
      t.payload().set_byte_enable_length(4);
      break;
    default: t.set_read(nullptr, 512, 1, h.clock | 1); break;  // no data pointer
  }
  if (h.send(*payload)) __builtin_trap();
}

}  // namespace

extern "C" int sc_main(int, char**) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  emmcsim::fuzzing::FuzzInput in(data, size);
  Harness h;
  std::vector<std::uint8_t> buffer(16 * 512);
  for (std::size_t step = 0; step < kMaxSteps && !in.done(); ++step) {
    const std::uint8_t op = in.byte();
    switch (op % 8) {
      case 0: {
        const std::uint8_t index_byte = in.byte();
        const std::uint8_t index = (index_byte & 0x80) != 0 ? kIndices[index_byte % sizeof kIndices]
                                                            : static_cast<std::uint8_t>(index_byte & 63);
        EmmcBusTransaction t;
        t.set_command({index, in.u32()}, h.clock);
        if (h.send(t.payload()) != (h.clock != 0)) __builtin_trap();
        break;
      }
      case 1:
      case 2: {
        const std::uint8_t size_byte = in.byte();
        const std::uint32_t block = size_byte >= 0x80 ? 512 : 1u + size_byte;
        const std::uint32_t blocks = 1 + in.byte() % 16;
        buffer.assign(std::size_t{block} * blocks, 0);
        EmmcBusTransaction t;
        if (op % 8 == 1) {
          t.set_read(buffer.data(), block, blocks, h.clock);
        } else {
          const std::uint8_t fill = in.byte();
          for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<std::uint8_t>(fill + i);
          t.set_write(buffer.data(), block, blocks, h.clock);
        }
        if (h.send(t.payload()) != (h.clock != 0)) __builtin_trap();
        break;
      }
      case 3: {
        EmmcBusTransaction t;
        t.set_wait_while_busy(h.clock);
        if (h.send(t.payload()) && h.device.card().busy()) __builtin_trap();
        break;
      }
      case 4: {
        EmmcBusTransaction t;
        t.set_power_cycle();
        if (!h.send(t.payload()) || h.device.card().state() != mmc::CardState::idle) __builtin_trap();
        break;
      }
      case 5: h.local += sc_core::sc_time(static_cast<double>(in.u16()), sc_core::SC_US); break;
      case 6: h.clock = kClocks[in.byte() % (sizeof kClocks / sizeof kClocks[0])]; break;
      default: malformed(h, in.byte(), buffer); break;
    }
  }
  return 0;
}
