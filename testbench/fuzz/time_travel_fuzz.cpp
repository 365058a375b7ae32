// libFuzzer target: the time-travel calendar's rules (TimeTravelScheduler) under any sequence of
// guest messages — decoded from the input as a guest's socket would carry them, or refused — and
// of reports from the simulation (rests anywhere, interrupts, notifications). Whatever comes, the
// scheduler never crashes, every ACK echoes the seq of the message it answers, the RUNs it sends
// never go back in time, it never grants a time at or behind its own present, and once it has
// named a breach it serves nothing more.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "emmcsim/transport/time_travel.hpp"
#include "emmcsim/transport/time_travel_calendar.hpp"

namespace tt = emmcsim::transport::time_travel;
using emmcsim::transport::TimeTravelScheduler;

namespace {

struct Simulation : emmcsim::transport::TimeTravelSimulation {
  const TimeTravelScheduler* scheduler = nullptr;
  void hold() override {}
  void advance_to(std::uint64_t until_ns) override {
    if (until_ns <= scheduler->now_ns()) __builtin_trap();  // a grant must lie ahead
  }
  void release() override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Simulation simulation;
  std::vector<tt::Message> sent;
  TimeTravelScheduler scheduler(simulation, TimeTravelScheduler::Options{1'000'000'000},
                                [&sent](const tt::Message& m) { sent.push_back(m); });
  simulation.scheduler = &scheduler;
  std::uint64_t last_run = 0;
  bool failed = false;
  // Each step: one byte of kind, then 16 bytes (a message, or a time for a rest).
  for (std::size_t at = 0; at + 1 + tt::kMessageSize <= size; at += 1 + tt::kMessageSize) {
    const std::uint8_t kind = data[at];
    const std::uint8_t* body = data + at + 1;
    const std::size_t before = sent.size();
    switch (kind % 4) {
      case 0:
      case 1: {
        tt::Message m;
        try {
          m = tt::decode(body, tt::kMessageSize);
        } catch (const tt::ProtocolError&) {
          continue;
        }
        const bool ok = scheduler.receive(m);
        if (failed && ok) __builtin_trap();  // nothing is served after a breach
        if (!ok) {
          if (scheduler.error().empty()) __builtin_trap();  // a breach is named
          failed = true;
        }
        // An ACK the scheduler sent at once echoes this message's seq.
        if (sent.size() > before && sent[before].op == tt::Op::ack && m.op != tt::Op::start &&
            sent[before].seq != m.seq)
          __builtin_trap();
        break;
      }
      case 2: {
        std::uint64_t ns = 0;
        for (int i = 0; i < 8; ++i) ns |= std::uint64_t{body[i]} << (8 * i);
        scheduler.rested(ns);
        break;
      }
      case 3:
        if (body[0] & 1)
          scheduler.interrupt_raised();
        else
          scheduler.notified((body[0] & 2) != 0);
        break;
    }
    for (std::size_t i = before; i < sent.size(); ++i) {
      if (sent[i].op != tt::Op::run) continue;
      if (sent[i].time < last_run || sent[i].time != scheduler.now_ns()) __builtin_trap();
      last_run = sent[i].time;
    }
  }
  return 0;
}
