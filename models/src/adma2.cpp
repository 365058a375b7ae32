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

Adma2Descriptor Adma2Descriptor::decode(const std::uint8_t* b, Adma2Format format) {
  const auto attributes = static_cast<std::uint16_t>(b[0] | (b[1] << 8));
  const auto length = static_cast<std::uint32_t>(b[2] | (b[3] << 8));
  Adma2Descriptor d;
  d.valid = (attributes & kValid) != 0;
  d.end = (attributes & kEnd) != 0;
  d.interrupt = (attributes & kInterrupt) != 0;
  d.action = static_cast<Adma2Action>((attributes >> kActionShift) & 3);
  d.length = length == 0 ? 65536 : length;
  const std::size_t address_bytes = format == Adma2Format::bits32 ? 4 : 8;
  for (std::size_t i = 0; i < address_bytes; ++i) d.address |= std::uint64_t{b[4 + i]} << (8 * i);
  return d;
}

void Adma2Descriptor::encode(std::uint8_t* out, Adma2Format format) const {
  const auto attributes =
      static_cast<std::uint16_t>((valid ? kValid : 0) | (end ? kEnd : 0) | (interrupt ? kInterrupt : 0) |
                                 (static_cast<unsigned>(action) << kActionShift));
  const std::uint32_t field = length & 0xFFFF;  // 65536 → 0
  std::fill_n(out, size(format), std::uint8_t{0});
  out[0] = static_cast<std::uint8_t>(attributes);
  out[1] = static_cast<std::uint8_t>(attributes >> 8);
  out[2] = static_cast<std::uint8_t>(field);
  out[3] = static_cast<std::uint8_t>(field >> 8);
  const std::size_t address_bytes = format == Adma2Format::bits32 ? 4 : 8;
  for (std::size_t i = 0; i < address_bytes; ++i) out[4 + i] = static_cast<std::uint8_t>(address >> (8 * i));
}

Adma2Descriptor Adma2Descriptor::decode(const std::array<std::uint8_t, kSize>& b) {
  return decode(b.data(), Adma2Format::bits32);
}

std::array<std::uint8_t, Adma2Descriptor::kSize> Adma2Descriptor::encode() const {
  std::array<std::uint8_t, kSize> bytes{};
  encode(bytes.data(), Adma2Format::bits32);
  return bytes;
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
    : Adma2Walker(table_address, Adma2Format::bits32, std::move(read_memory), max_fetches) {}

Adma2Walker::Adma2Walker(std::uint64_t table_address, Adma2Format format, ReadMemory read_memory,
                         std::size_t max_fetches)
    : read_memory_(std::move(read_memory)),
      max_fetches_(max_fetches),
      format_(format),
      descriptor_address_(format == Adma2Format::bits32 ? table_address & 0xFFFF'FFFFu : table_address) {}

Adma2Walker::Step Adma2Walker::fail(Adma2Error error) {
  error_ = error;
  Step step;
  step.error = error;
  return step;
}

// The descriptor after this one; 32-bit addresses wrap as the register does.
std::uint64_t Adma2Walker::next_descriptor(std::size_t size) const {
  const std::uint64_t next = descriptor_address_ + size;
  return format_ == Adma2Format::bits32 ? next & 0xFFFF'FFFFu : next;
}

Adma2Walker::Step Adma2Walker::next(std::uint32_t max_bytes) {
  if (error_ != Adma2Error::none) return fail(error_);
  while (remaining_ == 0) {
    if (ended_) return fail(Adma2Error::length_mismatch);
    if (fetches_ >= max_fetches_) return fail(Adma2Error::too_many_descriptors);
    ++fetches_;
    std::array<std::uint8_t, Adma2Descriptor::kMaxSize> bytes{};
    const std::size_t size = Adma2Descriptor::size(format_);
    if (!read_memory_(descriptor_address_, bytes.data(), size)) return fail(Adma2Error::fetch_failed);
    const Adma2Descriptor d = Adma2Descriptor::decode(bytes.data(), format_);
    if (!d.valid) return fail(Adma2Error::invalid_descriptor);
    switch (d.action) {
      case Adma2Action::nop:
      case Adma2Action::reserved: descriptor_address_ = next_descriptor(size); break;
      case Adma2Action::transfer:
        descriptor_address_ = next_descriptor(size);
        data_address_ = d.address;
        remaining_ = d.length;
        current_interrupt_ = d.interrupt;
        break;
      case Adma2Action::link: descriptor_address_ = d.address; break;
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
