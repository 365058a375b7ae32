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
using T = BusCommandType;
using D = DataDirection;
using A = CommandAddress;

// States in which a card is addressed (it has an RCA and is not asleep or booting).
constexpr StateSet kAddressedStates{S::stby, S::tran, S::data, S::rcv, S::prg, S::dis, S::btst};

}  // namespace

const char* bus_command_type_name(BusCommandType type) {
  switch (type) {
    case BusCommandType::bc: return "bc";
    case BusCommandType::bcr: return "bcr";
    case BusCommandType::ac: return "ac";
    case BusCommandType::adtc: return "adtc";
  }
  return "unknown";
}

const char* command_address_name(CommandAddress address) {
  switch (address) {
    case CommandAddress::none: return "none";
    case CommandAddress::rca: return "rca";
    case CommandAddress::assigned_rca: return "assigned_rca";
    case CommandAddress::data_address: return "data_address";
  }
  return "unknown";
}

const CommandTable& command_table() {
  // Columns: index, name, class, bus command type, response, data, address, accepting states,
  // flags, handler. JEDEC's tables give CMD12 "[31:16] RCA" for HPI only (bit 0); hosts stop a
  // transfer with 0 and this device has no HPI, so its address is none.
  // clang-format off
  static const CommandSpec kTable[] = {
    {0,  "GO_IDLE_STATE",        0, T::bc,   R::none, D::none,    A::none,
         {S::idle, S::ready, S::ident, S::stby, S::tran, S::data, S::rcv, S::prg, S::dis, S::btst, S::slp,
          S::pre_idle, S::boot},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::go_idle_state},
    {1,  "SEND_OP_COND",         0, T::bcr,  R::r3,   D::none,    A::none,         {S::idle, S::pre_idle},
         kAllowedWhenLocked, &Card::send_op_cond},
    {2,  "ALL_SEND_CID",         0, T::bcr,  R::r2,   D::none,    A::none,         {S::ready},
         kAllowedWhenLocked, &Card::all_send_cid},
    {3,  "SET_RELATIVE_ADDR",    0, T::ac,   R::r1,   D::none,    A::assigned_rca, {S::ident},
         kAllowedWhenLocked, &Card::set_relative_addr},
    {4,  "SET_DSR",              0, T::bc,   R::none, D::none,    A::none,         {S::stby},
         kAllowedWhenLocked, &Card::set_dsr},
    {5,  "SLEEP_AWAKE",          0, T::ac,   R::r1b,  D::none,    A::rca,          {S::stby, S::slp},
         kAllowedWhenLocked, &Card::sleep_awake},
    // CMD6 is class 0 in eMMC (JESD84-B51 Table 39; class 10 is SD's): a locked card takes it.
    {6,  "SWITCH",               0, T::ac,   R::r1b,  D::none,    A::none,         {S::tran},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::switch_ext_csd},
    {7,  "SELECT_DESELECT_CARD", 0, T::ac,   R::r1b,  D::none,    A::rca,
         {S::stby, S::tran, S::data, S::prg, S::dis},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::select_deselect},
    {8,  "SEND_EXT_CSD",         0, T::adtc, R::r1,   D::to_host, A::none,         {S::tran},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::send_ext_csd},
    {9,  "SEND_CSD",             0, T::ac,   R::r2,   D::none,    A::rca,          {S::stby},
         kAllowedWhenLocked, &Card::send_csd},
    {10, "SEND_CID",             0, T::ac,   R::r2,   D::none,    A::rca,          {S::stby},
         kAllowedWhenLocked, &Card::send_cid},
    {12, "STOP_TRANSMISSION",    0, T::ac,   R::r1b,  D::none,    A::none,         {S::data, S::rcv},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::stop_transmission},
    {13, "SEND_STATUS",          0, T::ac,   R::r1,   D::none,    A::rca,          kAddressedStates,
         kAllowedWhenLocked | kAllowedInRpmb | kStatusQuery, &Card::send_status},
    {14, "BUS_TEST_R",           0, T::adtc, R::r1,   D::to_host, A::none,         {S::btst},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::bus_test_read},
    {15, "GO_INACTIVE_STATE",    0, T::ac,   R::none, D::none,    A::rca,          kAddressedStates,
         kAllowedWhenLocked | kAllowedInRpmb, &Card::go_inactive_state},
    {16, "SET_BLOCKLEN",         2, T::ac,   R::r1,   D::none,    A::none,         {S::tran},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::set_blocklen},
    {17, "READ_SINGLE_BLOCK",    2, T::adtc, R::r1,   D::to_host, A::data_address, {S::tran},
         kSectorData, &Card::read_block_command},
    {18, "READ_MULTIPLE_BLOCK",  2, T::adtc, R::r1,   D::to_host, A::data_address, {S::tran},
         kAllowedInRpmb | kSectorData, &Card::read_block_command},
    {19, "BUS_TEST_W",           0, T::adtc, R::r1,   D::to_card, A::none,         {S::tran},
         kAllowedWhenLocked | kAllowedInRpmb, &Card::bus_test_write},
    {21, "SEND_TUNING_BLOCK",    2, T::adtc, R::r1,   D::to_host, A::none,         {S::tran},
         kAllowedInRpmb, &Card::send_tuning_block},
    {23, "SET_BLOCK_COUNT",      2, T::ac,   R::r1,   D::none,    A::none,         {S::tran},
         kAllowedInRpmb, &Card::set_block_count},
    {24, "WRITE_BLOCK",          4, T::adtc, R::r1,   D::to_card, A::data_address, {S::tran},
         kSectorData, &Card::write_block_command},
    {25, "WRITE_MULTIPLE_BLOCK", 4, T::adtc, R::r1,   D::to_card, A::data_address, {S::tran},
         kAllowedInRpmb | kSectorData, &Card::write_block_command},
    {28, "SET_WRITE_PROT",       6, T::ac,   R::r1b,  D::none,    A::data_address, {S::tran},
         kNoFlags, &Card::set_clear_write_prot},
    {29, "CLR_WRITE_PROT",       6, T::ac,   R::r1b,  D::none,    A::data_address, {S::tran},
         kNoFlags, &Card::set_clear_write_prot},
    {30, "SEND_WRITE_PROT",      6, T::adtc, R::r1,   D::to_host, A::data_address, {S::tran},
         kNoFlags, &Card::send_write_prot},
    {31, "SEND_WRITE_PROT_TYPE", 6, T::adtc, R::r1,   D::to_host, A::data_address, {S::tran},
         kNoFlags, &Card::send_write_prot},
    {35, "ERASE_GROUP_START",    5, T::ac,   R::r1,   D::none,    A::data_address, {S::tran},
         kEraseSequence, &Card::erase_group_address},
    {36, "ERASE_GROUP_END",      5, T::ac,   R::r1,   D::none,    A::data_address, {S::tran},
         kEraseSequence, &Card::erase_group_address},
    {38, "ERASE",                5, T::ac,   R::r1b,  D::none,    A::none,         {S::tran},
         kEraseSequence, &Card::erase},
    {42, "LOCK_UNLOCK",          7, T::adtc, R::r1,   D::to_card, A::none,         {S::tran},
         kAllowedWhenLocked, &Card::lock_unlock},
  };
  // clang-format on
  static const CommandTable kCommandTable{kTable, kTable + std::size(kTable)};
  return kCommandTable;
}

const CommandSpec* find_command(std::uint8_t index) {
  const CommandTable& table = command_table();
  const CommandSpec* begin = table.begin();
  const CommandSpec* end = table.end();
  const CommandSpec* found = std::find_if(begin, end, [index](const CommandSpec& s) { return s.index == index; });
  return found == end ? nullptr : found;
}

}  // namespace emmcsim::mmc
