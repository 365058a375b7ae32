// The command table of mmc::Card: JESD84-B51 §6.10.4 (command classes) and §6.14 (state
// transitions), one row per implemented command.
#include "emmcsim/mmc/command_table.hpp"

#include <algorithm>
#include <iterator>

#include "emmcsim/mmc/card.hpp"

namespace emmcsim::mmc {
namespace {

using S = CardState;
using R = ResponseType;

// States in which a card is addressed (it has an RCA and is not asleep or booting).
constexpr StateSet kAddressedStates{S::stby, S::tran, S::data, S::rcv, S::prg, S::dis, S::btst};

}  // namespace

const CommandTable& command_table() {
  // clang-format off
  static const CommandSpec kTable[] = {
    {0,  "GO_IDLE_STATE",        0, R::none, {S::idle, S::ready, S::ident, S::stby, S::tran, S::data, S::rcv,
                                              S::prg, S::dis, S::btst, S::slp, S::pre_idle, S::boot},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::go_idle_state},
    {1,  "SEND_OP_COND",         0, R::r3,   {S::idle, S::pre_idle}, kAllowedWhenLocked, &Card::send_op_cond},
    {2,  "ALL_SEND_CID",         0, R::r2,   {S::ready}, kAllowedWhenLocked, &Card::all_send_cid},
    {3,  "SET_RELATIVE_ADDR",    0, R::r1,   {S::ident}, kAllowedWhenLocked, &Card::set_relative_addr},
    {4,  "SET_DSR",              0, R::none, {S::stby}, kAllowedWhenLocked, &Card::set_dsr},
    {5,  "SLEEP_AWAKE",          0, R::r1b,  {S::stby, S::slp}, kAddressed | kAllowedWhenLocked, &Card::sleep_awake},
    // CMD6 is class 0 in eMMC (JESD84-B51 Table 39; class 10 is SD's): a locked card takes it.
    {6,  "SWITCH",               0, R::r1b,  {S::tran}, kAllowedWhenLocked | kAllowedInRpmb, &Card::switch_ext_csd},
    {7,  "SELECT_DESELECT_CARD", 0, R::r1b,  {S::stby, S::tran, S::data, S::prg, S::dis},
         kAddressed | kAllowedWhenLocked | kAllowedInRpmb, &Card::select_deselect},
    {8,  "SEND_EXT_CSD",         0, R::r1,   {S::tran}, kAllowedWhenLocked | kAllowedInRpmb, &Card::send_ext_csd},
    {9,  "SEND_CSD",             0, R::r2,   {S::stby}, kAddressed | kAllowedWhenLocked, &Card::send_csd},
    {10, "SEND_CID",             0, R::r2,   {S::stby}, kAddressed | kAllowedWhenLocked, &Card::send_cid},
    {12, "STOP_TRANSMISSION",    0, R::r1b,  {S::data, S::rcv}, kAllowedWhenLocked | kAllowedInRpmb,
         &Card::stop_transmission},
    {13, "SEND_STATUS",          0, R::r1,   kAddressedStates,
         kAddressed | kAllowedWhenLocked | kAllowedInRpmb | kStatusQuery, &Card::send_status},
    {14, "BUS_TEST_R",           0, R::r1,   {S::btst}, kAllowedWhenLocked | kAllowedInRpmb, &Card::bus_test_read},
    {15, "GO_INACTIVE_STATE",    0, R::none, kAddressedStates, kAddressed | kAllowedWhenLocked | kAllowedInRpmb,
         &Card::go_inactive_state},
    {16, "SET_BLOCKLEN",         2, R::r1,   {S::tran}, kAllowedWhenLocked | kAllowedInRpmb, &Card::set_blocklen},
    {17, "READ_SINGLE_BLOCK",    2, R::r1,   {S::tran}, kNoFlags, &Card::read_block_command},
    {18, "READ_MULTIPLE_BLOCK",  2, R::r1,   {S::tran}, kAllowedInRpmb, &Card::read_block_command},
    {19, "BUS_TEST_W",           0, R::r1,   {S::tran}, kAllowedWhenLocked | kAllowedInRpmb, &Card::bus_test_write},
    {21, "SEND_TUNING_BLOCK",    2, R::r1,   {S::tran}, kAllowedInRpmb, &Card::send_tuning_block},
    {23, "SET_BLOCK_COUNT",      2, R::r1,   {S::tran}, kAllowedInRpmb, &Card::set_block_count},
    {24, "WRITE_BLOCK",          4, R::r1,   {S::tran}, kNoFlags, &Card::write_block_command},
    {25, "WRITE_MULTIPLE_BLOCK", 4, R::r1,   {S::tran}, kAllowedInRpmb, &Card::write_block_command},
    {28, "SET_WRITE_PROT",       6, R::r1b,  {S::tran}, kNoFlags, &Card::set_clear_write_prot},
    {29, "CLR_WRITE_PROT",       6, R::r1b,  {S::tran}, kNoFlags, &Card::set_clear_write_prot},
    {30, "SEND_WRITE_PROT",      6, R::r1,   {S::tran}, kNoFlags, &Card::send_write_prot},
    {31, "SEND_WRITE_PROT_TYPE", 6, R::r1,   {S::tran}, kNoFlags, &Card::send_write_prot},
    {35, "ERASE_GROUP_START",    5, R::r1,   {S::tran}, kEraseSequence, &Card::erase_group_address},
    {36, "ERASE_GROUP_END",      5, R::r1,   {S::tran}, kEraseSequence, &Card::erase_group_address},
    {38, "ERASE",                5, R::r1b,  {S::tran}, kEraseSequence, &Card::erase},
    {42, "LOCK_UNLOCK",          7, R::r1,   {S::tran}, kAllowedWhenLocked, &Card::lock_unlock},
  };
  // clang-format on
  static const CommandTable kCommandTable{kTable, kTable + std::size(kTable)};
  return kCommandTable;
}

const CommandSpec* find_command(std::uint8_t index) {
  const CommandTable& table = command_table();
  const CommandSpec* begin = table.begin();
  const CommandSpec* end = table.end();
  const CommandSpec* found =
      std::find_if(begin, end, [index](const CommandSpec& s) { return s.index == index; });
  return found == end ? nullptr : found;
}

}  // namespace emmcsim::mmc
