// The eMMC command set as one table (in the manner of QEMU's sd.c): for each command, its
// name, class, JEDEC's bus command type, response, data direction and address, the states that
// accept it, and how the card treats it. mmc::Card dispatches through this table; a command not
// in it, or received in a state the table does not list, sets ILLEGAL_COMMAND and changes
// nothing. The conformance tests are generated from it, and code that needs to know what a
// command is (a timed model pricing it, a tracer naming it) asks the table rather than testing
// command numbers:
//
//   const CommandSpec* spec = find_command(command.index);
//   if (spec != nullptr && spec->type == BusCommandType::bcr) …   // answered after N_ID
//
// Command indices by name are in protocol.hpp (cmd::kReadMultipleBlock …).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/command.hpp"

namespace emmcsim::mmc {

class Card;

// A set of CardStates as a bit mask.
class StateSet {
 public:
  constexpr StateSet() = default;
  constexpr StateSet(std::initializer_list<CardState> states) {
    for (CardState s : states) bits_ |= bit(s);
  }
  constexpr bool contains(CardState s) const { return (bits_ & bit(s)) != 0; }
  constexpr std::uint32_t bits() const { return bits_; }

 private:
  static constexpr std::uint32_t bit(CardState s) { return 1u << static_cast<unsigned>(s); }
  std::uint32_t bits_ = 0;
};

// JEDEC's bus command types (JESD84-B51 §6.10.1).
enum class BusCommandType : std::uint8_t {
  bc,    // broadcast, no response (CMD0, CMD4)
  bcr,   // broadcast with response: the identification commands CMD1 and CMD2, whose response
         // starts exactly N_ID cycles after the command (every other response after N_CR)
  ac,    // addressed, no data on the DAT lines
  adtc,  // addressed, with a data transfer on the DAT lines
};

// What a command's argument addresses.
enum class CommandAddress : std::uint8_t {
  none,          // nothing: stuff bits or a value (OCR, CMD6 access, block length, CMD23 count …)
  rca,           // arg[31:16] is the RCA of the card meant; a card with another RCA ignores the
                 // command (no response, no error), except CMD7, which then deselects it
  assigned_rca,  // arg[31:16] is the RCA the host gives the card (CMD3)
  data_address,  // arg is a data address: a byte address, or a 512-byte sector in sector mode
                 // (OCR access mode, above 2 GiB)
};

const char* bus_command_type_name(BusCommandType type);    // "bc", "bcr", "ac", "adtc"
const char* command_address_name(CommandAddress address);  // "none", "rca", "assigned_rca", "data_address"

enum CommandFlag : std::uint16_t {
  kNoFlags = 0,
  // accepted while the card is locked (CMD42 password): classes 0 and 7 and CMD16
  kAllowedWhenLocked = 1u << 0,
  // accepted while PARTITION_ACCESS selects RPMB
  kAllowedInRpmb = 1u << 1,
  // part of an erase sequence (CMD35/36/38): does not reset it
  kEraseSequence = 1u << 2,
  // CMD13: neither resets an erase sequence nor consumes a pending CMD23 count
  kStatusQuery = 1u << 3,
  // its data blocks are sectors of the selected partition, from the data address on
  // (CMD17/18/24/25; RPMB frames when the RPMB partition is selected)
  kSectorData = 1u << 4,
};

struct CommandSpec {
  std::uint8_t index;
  std::string_view name;
  std::uint8_t command_class;  // CCC class (JESD84-B51 Table 39)
  BusCommandType type;
  ResponseType response;  // when accepted (addressed commands to another RCA get none)
  // The data phase the command opens when accepted (adtc commands; CMD0's boot initiation
  // streams the boot partition outside the command set and is not counted here).
  DataDirection data;
  CommandAddress address;
  StateSet accepted_in;
  std::uint16_t flags;
  CommandOutcome (Card::*handler)(const Command&);

  bool has(CommandFlag f) const { return (flags & f) != 0; }
};

// Every implemented command, in index order; iterable.
struct CommandTable {
  const CommandSpec* first;
  const CommandSpec* last;
  const CommandSpec* begin() const { return first; }
  const CommandSpec* end() const { return last; }
};
const CommandTable& command_table();

// The entry for CMD`index`, or null when the device does not implement it.
const CommandSpec* find_command(std::uint8_t index);

}  // namespace emmcsim::mmc
