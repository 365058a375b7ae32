// The eMMC command set as one table (in the manner of QEMU's sd.c): for each command, its
// name, response type, the states that accept it, and how the card treats it. mmc::Card
// dispatches through this table; a command not in it, or received in a state the table does not
// list, sets ILLEGAL_COMMAND and changes nothing. The conformance tests are generated from it.
#pragma once

#include <cstdint>
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

enum CommandFlag : std::uint16_t {
  kNoFlags = 0,
  // arg[31:16] is an RCA; a card whose RCA differs ignores the command (no response, no error)
  kAddressed = 1u << 0,
  // accepted while the card is locked (CMD42 password): classes 0 and 7 and CMD16
  kAllowedWhenLocked = 1u << 1,
  // accepted while PARTITION_ACCESS selects RPMB
  kAllowedInRpmb = 1u << 2,
  // part of an erase sequence (CMD35/36/38): does not reset it
  kEraseSequence = 1u << 3,
  // CMD13: neither resets an erase sequence nor consumes a pending CMD23 count
  kStatusQuery = 1u << 4,
};

struct CommandSpec {
  std::uint8_t index;
  std::string_view name;
  std::uint8_t command_class;  // CCC class (JESD84-B51 Table 39)
  ResponseType response;       // when accepted (addressed commands to another RCA get none)
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
