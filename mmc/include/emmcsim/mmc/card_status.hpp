// Card states and the R1 card status register (JESD84-B51 §6.13). Error bits come in two kinds:
// those reported in the response of the command that raised them (JEDEC type "R") and those
// found while a command executes, reported in the next response (type "X"). Bits with clear
// condition "C" clear once a response has carried them; ILLEGAL_COMMAND and COM_CRC_ERROR
// (condition "B") belong to a command that got no response and so appear in the next one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace emmcsim::mmc {

enum class CardState : std::uint8_t {
  idle = 0,
  ready = 1,
  ident = 2,
  stby = 3,
  tran = 4,
  data = 5,
  rcv = 6,
  prg = 7,
  dis = 8,
  btst = 9,
  slp = 10,
  // Not visible in R1 CURRENT_STATE.
  inactive = 16,
  pre_idle = 17,
  boot = 18,
};

constexpr unsigned kCardStateCount = 14;
// Every state, for tables and tests.
constexpr CardState kAllCardStates[kCardStateCount] = {
    CardState::idle, CardState::ready,    CardState::ident,    CardState::stby, CardState::tran,
    CardState::data, CardState::rcv,      CardState::prg,      CardState::dis,  CardState::btst,
    CardState::slp,  CardState::inactive, CardState::pre_idle, CardState::boot};

std::string_view card_state_name(CardState s);

// Card identification mode (JESD84-B51 §6.4): the states before the card has an RCA — idle,
// ready, ident, and pre-idle, where it waits for CMD1 or a boot — in which the bus runs open
// drain at up to 400 kHz. The data transfer states, boot and inactive are not.
constexpr bool in_identification_mode(CardState s) {
  return s == CardState::idle || s == CardState::ready || s == CardState::ident || s == CardState::pre_idle;
}

namespace status {
constexpr std::uint32_t kOutOfRange = 1u << 31;
constexpr std::uint32_t kAddressMisalign = 1u << 30;
constexpr std::uint32_t kBlockLenError = 1u << 29;
constexpr std::uint32_t kEraseSeqError = 1u << 28;
constexpr std::uint32_t kEraseParam = 1u << 27;
constexpr std::uint32_t kWpViolation = 1u << 26;
constexpr std::uint32_t kCardIsLocked = 1u << 25;
constexpr std::uint32_t kLockUnlockFailed = 1u << 24;
constexpr std::uint32_t kComCrcError = 1u << 23;
constexpr std::uint32_t kIllegalCommand = 1u << 22;
constexpr std::uint32_t kCardEccFailed = 1u << 21;
constexpr std::uint32_t kCcError = 1u << 20;
constexpr std::uint32_t kError = 1u << 19;
constexpr std::uint32_t kCidCsdOverwrite = 1u << 16;
constexpr std::uint32_t kWpEraseSkip = 1u << 15;
constexpr std::uint32_t kEraseReset = 1u << 13;
constexpr std::uint32_t kCurrentStateShift = 9;
constexpr std::uint32_t kCurrentStateMask = 0xFu << kCurrentStateShift;
constexpr std::uint32_t kReadyForData = 1u << 8;
constexpr std::uint32_t kSwitchError = 1u << 7;
constexpr std::uint32_t kExceptionEvent = 1u << 6;
constexpr std::uint32_t kAppCmd = 1u << 5;

// Bits that clear once a response has carried them (clear conditions "B" and "C").
constexpr std::uint32_t kClearedOnRead = kOutOfRange | kAddressMisalign | kBlockLenError | kEraseSeqError |
                                         kEraseParam | kWpViolation | kLockUnlockFailed | kComCrcError |
                                         kIllegalCommand | kCardEccFailed | kCcError | kError | kCidCsdOverwrite |
                                         kWpEraseSkip | kEraseReset | kSwitchError | kAppCmd;
// Bits that report a condition of the card (clear condition "A"): CARD_IS_LOCKED,
// READY_FOR_DATA, EXCEPTION_EVENT.
constexpr std::uint32_t kConditionBits = kCardIsLocked | kReadyForData | kExceptionEvent;
// Error bits Linux treats as a failed command (R1_ERROR-style mask).
constexpr std::uint32_t kAnyError = kOutOfRange | kAddressMisalign | kBlockLenError | kEraseSeqError | kEraseParam |
                                    kWpViolation | kLockUnlockFailed | kComCrcError | kIllegalCommand | kCardEccFailed |
                                    kCcError | kError | kCidCsdOverwrite | kSwitchError;

constexpr std::uint32_t current_state(std::uint32_t r1) { return (r1 & kCurrentStateMask) >> kCurrentStateShift; }
}  // namespace status

// "OUT_OF_RANGE | ILLEGAL_COMMAND | state=tran | READY_FOR_DATA" — for messages and test output.
std::string describe_status(std::uint32_t r1);

}  // namespace emmcsim::mmc
