// Adma2Descriptor, Adma2Walker (see adma2.hpp).
#include "emmcsim/models/adma2.hpp"

#include <algorithm>
#include <utility>

namespace emmcsim::models {
namespace {
constexpr std::uint16_t kValid = 1u << 0;
constexpr std::uint16_t kEnd = 1u << 1;
constexpr std::uint16_t kInterrupt = 1u << 2;
constexpr unsigned kActionShift = 4;
}  // namespace

Adma2Descriptor Adma2Descriptor::decode(const std::array<std::uint8_t, kSize>& b) {
  const auto attributes = static_cast<std::uint16_t>(b[0] | (b[1] << 8));
  const auto length = static_cast<std::uint32_t>(b[2] | (b[3] << 8));
  Adma2Descriptor d;
  d.valid = (attributes & kValid) != 0;
  d.end = (attributes & kEnd) != 0;
  d.interrupt = (attributes & kInterrupt) != 0;
  d.action = static_cast<Adma2Action>((attributes >> kActionShift) & 3);
  d.length = length == 0 ? 65536 : length;
  d.address = static_cast<std::uint32_t>(b[4]) | (static_cast<std::uint32_t>(b[5]) << 8) |
              (static_cast<std::uint32_t>(b[6]) << 16) | (static_cast<std::uint32_t>(b[7]) << 24);
  return d;
}

std::array<std::uint8_t, Adma2Descriptor::kSize> Adma2Descriptor::encode() const {
  const auto attributes = static_cast<std::uint16_t>((valid ? kValid : 0) | (end ? kEnd : 0) |
                                                     (interrupt ? kInterrupt : 0) |
                                                     (static_cast<unsigned>(action) << kActionShift));
  const std::uint32_t field = length & 0xFFFF;  // 65536 → 0
  return {static_cast<std::uint8_t>(attributes), static_cast<std::uint8_t>(attributes >> 8),
          static_cast<std::uint8_t>(field),      static_cast<std::uint8_t>(field >> 8),
          static_cast<std::uint8_t>(address),    static_cast<std::uint8_t>(address >> 8),
          static_cast<std::uint8_t>(address >> 16), static_cast<std::uint8_t>(address >> 24)};
}

const char* adma2_error_name(Adma2Error error) {
  switch (error) {
    case Adma2Error::none: return "none";
    case Adma2Error::fetch_failed: return "descriptor fetch failed";
    case Adma2Error::invalid_descriptor: return "descriptor without the valid bit";
    case Adma2Error::length_mismatch: return "descriptor table ended before the data";
    case Adma2Error::too_many_descriptors: return "too many descriptors (a loop?)";
  }
  return "?";
}

Adma2Walker::Adma2Walker(std::uint32_t table_address, ReadMemory read_memory, std::size_t max_fetches)
    : read_memory_(std::move(read_memory)), max_fetches_(max_fetches), descriptor_address_(table_address) {}

Adma2Walker::Step Adma2Walker::fail(Adma2Error error) {
  error_ = error;
  Step step;
  step.error = error;
  return step;
}

Adma2Walker::Step Adma2Walker::next(std::uint32_t max_bytes) {
  if (error_ != Adma2Error::none) return fail(error_);
  while (remaining_ == 0) {
    if (ended_) return fail(Adma2Error::length_mismatch);
    if (fetches_ >= max_fetches_) return fail(Adma2Error::too_many_descriptors);
    ++fetches_;
    std::array<std::uint8_t, Adma2Descriptor::kSize> bytes{};
    if (!read_memory_(descriptor_address_, bytes.data(), bytes.size())) return fail(Adma2Error::fetch_failed);
    const Adma2Descriptor d = Adma2Descriptor::decode(bytes);
    if (!d.valid) return fail(Adma2Error::invalid_descriptor);
    switch (d.action) {
      case Adma2Action::nop:
      case Adma2Action::reserved:
        descriptor_address_ += Adma2Descriptor::kSize;
        break;
      case Adma2Action::transfer:
        descriptor_address_ += Adma2Descriptor::kSize;
        data_address_ = d.address;
        remaining_ = d.length;
        current_interrupt_ = d.interrupt;
        break;
      case Adma2Action::link:
        descriptor_address_ = d.address;
        break;
    }
    if (d.end) ended_ = true;
  }
  Step step;
  step.address = data_address_;
  step.length = std::min(remaining_, std::max<std::uint32_t>(max_bytes, 1));
  data_address_ += step.length;
  remaining_ -= step.length;
  step.interrupt = remaining_ == 0 && current_interrupt_;
  return step;
}

}  // namespace emmcsim::models
