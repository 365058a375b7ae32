// BusTraceWriter: each format's bytes for phases built here by hand.
#include "emmcsim/models/bus_trace.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace emmcsim::models {
namespace {

BusPhase command(Picoseconds start, Picoseconds end, std::uint8_t index, std::uint32_t arg) {
  BusPhase p;
  p.operation = EmmcBusOperation::command;
  p.start_ps = start;
  p.end_ps = end;
  p.mode = BusMode{BusSpeed::high_speed, 8, false};
  p.clock_hz = 52'000'000;
  p.command = {index, arg};
  p.outcome.response.type = mmc::ResponseType::r1;
  p.outcome.response.value = 0x900;
  return p;
}

BusPhase data(EmmcBusOperation op, Picoseconds start, Picoseconds end, std::uint32_t blocks) {
  BusPhase p;
  p.operation = op;
  p.start_ps = start;
  p.end_ps = end;
  p.mode = BusMode{BusSpeed::high_speed, 8, false};
  p.clock_hz = 52'000'000;
  p.block_size = 512;
  p.blocks = blocks;
  return p;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(BusTrace, FormatFollowsTheFileName) {
  EXPECT_EQ(bus_trace_format_for("bus.vcd"), BusTraceFormat::vcd);
  EXPECT_EQ(bus_trace_format_for("/tmp/x.csv"), BusTraceFormat::csv);
  EXPECT_EQ(bus_trace_format_for("bus.jsonl"), BusTraceFormat::json_lines);
  EXPECT_EQ(bus_trace_format_for("vcd"), BusTraceFormat::json_lines);
}

TEST(BusTrace, JsonLinesCarryEachPhasesFields) {
  std::ostringstream out;
  {
    BusTraceWriter trace(out, BusTraceFormat::json_lines);
    BusPhase cmd = command(1000, 3039, 17, 0x40);
    cmd.outcome.work.sectors_read = 1;
    trace.write(cmd);
    BusPhase write = data(EmmcBusOperation::write_data, 3039, 14000, 1);
    write.busy = true;
    write.busy_until_ps = 314000;
    trace.write(write);
    EXPECT_EQ(trace.phases_written(), 2u);
  }
  const std::vector<std::string> l = lines(out.str());
  ASSERT_EQ(l.size(), 2u);
  const nlohmann::json a = nlohmann::json::parse(l[0]);
  EXPECT_EQ(a["start_ps"], 1000);
  EXPECT_EQ(a["end_ps"], 3039);
  EXPECT_EQ(a["operation"], "command");
  EXPECT_EQ(a["mode"], "high speed 8-bit");
  EXPECT_EQ(a["clock_hz"], 52'000'000);
  EXPECT_EQ(a["index"], 17);
  EXPECT_EQ(a["arg"], "0x00000040");
  EXPECT_EQ(a["response_type"], "r1");
  EXPECT_EQ(a["response"], "0x00000900");
  EXPECT_EQ(a["work"], "sectors_read=1");
  EXPECT_FALSE(a.contains("busy_until_ps"));
  const nlohmann::json b = nlohmann::json::parse(l[1]);
  EXPECT_EQ(b["operation"], "write_data");
  EXPECT_EQ(b["blocks"], 1);
  EXPECT_EQ(b["block_size"], 512);
  EXPECT_EQ(b["busy_until_ps"], 314000);
  EXPECT_FALSE(b.contains("index"));
  EXPECT_FALSE(b.contains("work"));
  EXPECT_FALSE(b.contains("fault"));
}

TEST(BusTrace, CsvHasAHeaderAndOneRowOfFifteenFieldsPerPhase) {
  std::ostringstream out;
  BusTraceWriter trace(out, BusTraceFormat::csv);
  trace.write(command(0, 2039, 13, 1u << 16));
  BusPhase read = data(EmmcBusOperation::read_data, 2039, 9000, 4);
  read.fault = "data_crc on block 3 of CMD18 #1";
  trace.write(read);
  trace.finish();
  const std::vector<std::string> l = lines(out.str());
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0].rfind("start_ps,end_ps,operation", 0), 0u);
  for (const std::string& line : l) EXPECT_EQ(std::count(line.begin(), line.end(), ','), 14) << line;
  EXPECT_EQ(l[1], "0,2039,command,high speed 8-bit,52000000,13,0x00010000,r1,0x00000900,0,,,,,");
  EXPECT_EQ(l[2], "2039,9000,read_data,high speed 8-bit,52000000,,,,,,512,4,,,data_crc on block 3 of CMD18 #1");
}

TEST(BusTrace, VcdChangesComeInTimeOrderWithBackToBackPhasesMerged) {
  std::ostringstream out;
  {
    BusTraceWriter trace(out, BusTraceFormat::vcd);
    trace.write(command(100, 1100, 17, 5));
    trace.write(command(1100, 2100, 13, 1u << 16));  // starts as the first ends: cmd stays high
    BusPhase write = data(EmmcBusOperation::write_data, 2100, 3100, 1);
    write.busy = true;
    write.busy_until_ps = 9000;
    trace.write(write);
    BusPhase poll = command(3100, 4100, 13, 1u << 16);  // CMD13 while the card programs
    poll.busy = true;
    poll.busy_until_ps = 9000;
    trace.write(poll);
  }
  const std::string text = out.str();
  const std::string body = text.substr(text.find("$end\n#100"));
  EXPECT_EQ(body,
            "$end\n"
            "#100\nb101 a\n1c\nb10001 i\n"
            "#1100\nb10000000000000000 a\nb1101 i\n"
            "#2100\n0c\n1d\n"
            "#3100\n1b\n1c\n0d\n"
            "#4100\n0c\n"
            "#9000\n0b\n");
  EXPECT_NE(text.find("$timescale 1ps $end"), std::string::npos);
  EXPECT_NE(text.find("$var wire 1 b busy $end"), std::string::npos);
}

TEST(BusTrace, NothingIsWrittenAfterFinish) {
  std::ostringstream out;
  BusTraceWriter trace(out, BusTraceFormat::json_lines);
  trace.finish();
  trace.write(command(0, 1, 0, 0));
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(trace.phases_written(), 0u);
}

}  // namespace
}  // namespace emmcsim::models
