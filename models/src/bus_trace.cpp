// BusTraceWriter (see bus_trace.hpp).
#include "emmcsim/models/bus_trace.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <iterator>
#include <ostream>

namespace emmcsim::models {
namespace {

constexpr char kCmd = 'c';
constexpr char kDat = 'd';
constexpr char kBusy = 'b';
constexpr char kIndex = 'i';
constexpr char kArg = 'a';

const char* response_name(mmc::ResponseType type) {
  switch (type) {
    case mmc::ResponseType::none: return "none";
    case mmc::ResponseType::r1: return "r1";
    case mmc::ResponseType::r1b: return "r1b";
    case mmc::ResponseType::r2: return "r2";
    case mmc::ResponseType::r3: return "r3";
  }
  return "?";
}

std::string response_value(const mmc::Response& r) {
  if (r.type == mmc::ResponseType::none) return "";
  if (r.type != mmc::ResponseType::r2) return fmt::format("0x{:08x}", r.value);
  std::string hex;
  for (std::uint8_t b : r.r2) hex += fmt::format("{:02x}", b);
  return hex;
}

bool is_command(const BusPhase& p) { return p.operation == EmmcBusOperation::command; }
bool is_data(const BusPhase& p) {
  return p.operation == EmmcBusOperation::read_data || p.operation == EmmcBusOperation::write_data;
}

// The command's internal work ("sectors_read=8"); empty when it did none.
std::string work_of(const BusPhase& p) {
  if (!is_command(p) || p.outcome.work.empty()) return "";
  return describe_work(p.outcome.work);
}

std::string binary(std::uint64_t value) {
  if (value == 0) return "b0";
  std::string bits;
  for (; value != 0; value >>= 1) bits.insert(bits.begin(), (value & 1) ? '1' : '0');
  return "b" + bits;
}

}  // namespace

BusTraceFormat bus_trace_format_for(const std::string& path) {
  const auto ends_with = [&path](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".vcd")) return BusTraceFormat::vcd;
  if (ends_with(".csv")) return BusTraceFormat::csv;
  return BusTraceFormat::json_lines;
}

const char* bus_trace_format_name(BusTraceFormat format) {
  switch (format) {
    case BusTraceFormat::json_lines: return "JSON lines";
    case BusTraceFormat::csv: return "CSV";
    case BusTraceFormat::vcd: return "VCD";
  }
  return "?";
}

BusTraceWriter::BusTraceWriter(std::ostream& out, BusTraceFormat format) : out_(out), format_(format) {
  if (format_ == BusTraceFormat::csv) {
    out_ << "start_ps,end_ps,operation,mode,clock_hz,index,arg,response_type,response,illegal,block_size,blocks,"
            "busy_until_ps,work,fault\n";
  } else if (format_ == BusTraceFormat::vcd) {
    out_ << "$version emmcsim bus trace $end\n"
            "$timescale 1ps $end\n"
            "$scope module emmc $end\n"
            "$var wire 1 c cmd $end\n"
            "$var wire 1 d dat $end\n"
            "$var wire 1 b busy $end\n"
            "$var reg 6 i index $end\n"
            "$var reg 32 a arg $end\n"
            "$upscope $end\n"
            "$enddefinitions $end\n"
            "#0\n"
            "$dumpvars\n0c\n0d\n0b\nb0 i\nb0 a\n$end\n";
    current_ = {{kCmd, "0"}, {kDat, "0"}, {kBusy, "0"}, {kIndex, "b0"}, {kArg, "b0"}};
    vcd_time_written_ = true;
  }
}

BusTraceWriter::~BusTraceWriter() { finish(); }

void BusTraceWriter::write(const BusPhase& phase) {
  if (finished_) return;
  ++phases_;
  switch (format_) {
    case BusTraceFormat::json_lines: write_json(phase); break;
    case BusTraceFormat::csv: write_csv(phase); break;
    case BusTraceFormat::vcd: write_vcd(phase); break;
  }
}

void BusTraceWriter::finish() {
  if (finished_) return;
  finished_ = true;
  if (format_ == BusTraceFormat::vcd) vcd_flush_until(UINT64_MAX);
  out_.flush();
}

void BusTraceWriter::write_json(const BusPhase& p) {
  nlohmann::ordered_json line;
  line["start_ps"] = p.start_ps;
  line["end_ps"] = p.end_ps;
  line["operation"] = bus_operation_name(p.operation);
  line["mode"] = p.mode.describe();
  line["clock_hz"] = p.clock_hz;
  if (is_command(p)) {
    line["index"] = p.command.index;
    line["arg"] = fmt::format("0x{:08x}", p.command.arg);
    line["response_type"] = response_name(p.outcome.response.type);
    if (p.outcome.response.type != mmc::ResponseType::none) line["response"] = response_value(p.outcome.response);
    if (p.outcome.illegal) line["illegal"] = true;
  }
  if (is_data(p)) {
    line["block_size"] = p.block_size;
    line["blocks"] = p.blocks;
  }
  if (p.busy) line["busy_until_ps"] = p.busy_until_ps;
  const std::string work = work_of(p);
  if (!work.empty()) line["work"] = work;
  if (!p.fault.empty()) line["fault"] = p.fault;
  out_ << line.dump() << '\n';
}

void BusTraceWriter::write_csv(const BusPhase& p) {
  out_ << p.start_ps << ',' << p.end_ps << ',' << bus_operation_name(p.operation) << ',' << p.mode.describe() << ','
       << p.clock_hz << ',';
  if (is_command(p)) {
    out_ << int{p.command.index} << ',' << fmt::format("0x{:08x}", p.command.arg) << ','
         << response_name(p.outcome.response.type) << ',' << response_value(p.outcome.response) << ','
         << (p.outcome.illegal ? "1" : "0") << ',';
  } else {
    out_ << ",,,,,";
  }
  if (is_data(p))
    out_ << p.block_size << ',' << p.blocks << ',';
  else
    out_ << ",,";
  if (p.busy) out_ << p.busy_until_ps;
  // Neither the work ("sectors_read=8 hmac_frames=2") nor a fault's description has a comma.
  out_ << ',' << work_of(p) << ',' << p.fault << '\n';
}

void BusTraceWriter::vcd_at(Picoseconds at, char id, const std::string& value) {
  pending_.emplace(at, VcdChange{id, value});
}

void BusTraceWriter::vcd_flush_until(Picoseconds until) {
  while (!pending_.empty() && pending_.begin()->first <= until) {
    // All changes at one instant; the last one for a signal wins (a command that starts as the
    // previous one ends keeps cmd high).
    const Picoseconds at = pending_.begin()->first;
    std::map<char, std::string> last;
    while (!pending_.empty() && pending_.begin()->first == at) {
      last[pending_.begin()->second.id] = pending_.begin()->second.value;
      pending_.erase(pending_.begin());
    }
    for (const auto& [id, value] : last) {
      std::string& now = current_[id];
      if (now == value) continue;
      now = value;
      if (!vcd_time_written_ || at != vcd_time_) {
        out_ << '#' << at << '\n';
        vcd_time_ = at;
        vcd_time_written_ = true;
      }
      if (value.size() > 1)
        out_ << value << ' ' << id << '\n';
      else
        out_ << value << id << '\n';
    }
  }
}

void BusTraceWriter::write_vcd(const BusPhase& p) {
  // Changes before this phase's start are final: nothing later can start before it does. Those at
  // its start wait, so that a phase starting as another ends is one change, not a glitch.
  if (p.start_ps > 0) vcd_flush_until(p.start_ps - 1);
  if (is_command(p)) {
    vcd_at(p.start_ps, kIndex, binary(p.command.index));
    vcd_at(p.start_ps, kArg, binary(p.command.arg));
    vcd_at(p.start_ps, kCmd, "1");
    vcd_at(p.end_ps, kCmd, "0");
  } else if (is_data(p)) {
    vcd_at(p.start_ps, kDat, "1");
    vcd_at(p.end_ps, kDat, "0");
  }
  if (p.busy && p.busy_until_ps > p.end_ps) {
    // This busy end replaces any later one still held back.
    for (auto it = pending_.upper_bound(p.end_ps); it != pending_.end();)
      it = it->second.id == kBusy ? pending_.erase(it) : std::next(it);
    vcd_at(p.end_ps, kBusy, "1");
    vcd_at(p.busy_until_ps, kBusy, "0");
  }
}

}  // namespace emmcsim::models
