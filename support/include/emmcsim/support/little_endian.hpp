// Little-endian integers in byte buffers: the RPMB store's records, the MMC-ioctl bridge's
// messages and vhost-user messages are all laid out this way. Header-only and standard C++ only:
// the bridge protocol, which the LD_PRELOAD shim links into arbitrary processes, uses it too.
//
//   load_le32(p), store_le32(p, v) …  a field at a pointer the caller has checked
//   LittleEndianWriter                 appends fields to a std::vector<std::uint8_t>
//   LittleEndianReader                 reads fields front to back from (pointer, size), never
//                                      past the end
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

namespace emmcsim::support {

namespace little_endian_detail {
template <typename T>
T load(const std::uint8_t* p) {
  T v = 0;
  for (std::size_t i = sizeof(T); i-- > 0;) v = static_cast<T>((v << 8) | p[i]);
  return v;
}
template <typename T>
void store(std::uint8_t* p, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
}  // namespace little_endian_detail

inline std::uint16_t load_le16(const std::uint8_t* p) { return little_endian_detail::load<std::uint16_t>(p); }
inline std::uint32_t load_le32(const std::uint8_t* p) { return little_endian_detail::load<std::uint32_t>(p); }
inline std::uint64_t load_le64(const std::uint8_t* p) { return little_endian_detail::load<std::uint64_t>(p); }
inline void store_le16(std::uint8_t* p, std::uint16_t v) { little_endian_detail::store(p, v); }
inline void store_le32(std::uint8_t* p, std::uint32_t v) { little_endian_detail::store(p, v); }
inline void store_le64(std::uint8_t* p, std::uint64_t v) { little_endian_detail::store(p, v); }

// Appends little-endian fields to a byte vector it does not own.
class LittleEndianWriter {
 public:
  explicit LittleEndianWriter(std::vector<std::uint8_t>& out) : out_(&out) {}

  void u8(std::uint8_t v) { out_->push_back(v); }
  void u16(std::uint16_t v) { put(v); }
  void u32(std::uint32_t v) { put(v); }
  void u64(std::uint64_t v) { put(v); }
  void bytes(const void* data, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    if (size > 0) out_->insert(out_->end(), p, p + size);
  }
  void zeros(std::size_t size) { out_->insert(out_->end(), size, 0); }
  // Bytes in the vector so far (including any it held before this writer).
  std::size_t size() const { return out_->size(); }

 private:
  template <typename T>
  void put(T v) {
    std::uint8_t b[sizeof(T)];
    little_endian_detail::store(b, v);
    out_->insert(out_->end(), b, b + sizeof(T));
  }
  std::vector<std::uint8_t>* out_;
};

// Reads little-endian fields front to back from (data, size). A read that wants more bytes than
// are left never reads past the end. What happens instead is the caller's choice:
//   - without a handler the reader fails softly: ok() turns false for good, that read and every
//     later one return 0 (bytes() returns null, copy_to copies nothing), and the caller checks
//     ok() once at the end;
//   - with a handler, the handler is called with the bytes wanted and the bytes left, and throws
//     the caller's error (if it returns, the reader fails softly as above).
class LittleEndianReader {
 public:
  using OutOfInput = std::function<void(std::size_t wanted, std::size_t left)>;

  LittleEndianReader(const std::uint8_t* data, std::size_t size, OutOfInput on_out_of_input = nullptr)
      : data_(data), size_(size), on_out_of_input_(std::move(on_out_of_input)) {}

  std::uint8_t u8() { return get<std::uint8_t>(); }
  std::uint16_t u16() { return get<std::uint16_t>(); }
  std::uint32_t u32() { return get<std::uint32_t>(); }
  std::uint64_t u64() { return get<std::uint64_t>(); }
  // The next `size` bytes, in place; null when they are not all there.
  const std::uint8_t* bytes(std::size_t size) {
    if (!ok_ || size > remaining()) {
      out_of_input(size);
      return nullptr;
    }
    const std::uint8_t* at = data_ + position_;
    position_ += size;
    return at;
  }
  // Copies the next `size` bytes to `out`; copies nothing when they are not all there.
  void copy_to(void* out, std::size_t size) {
    const std::uint8_t* at = bytes(size);
    if (at != nullptr && size > 0) std::memcpy(out, at, size);
  }
  void skip(std::size_t size) { bytes(size); }

  bool ok() const { return ok_; }
  std::size_t position() const { return position_; }
  std::size_t remaining() const { return size_ - position_; }

 private:
  template <typename T>
  T get() {
    const std::uint8_t* at = bytes(sizeof(T));
    return at == nullptr ? T{0} : little_endian_detail::load<T>(at);
  }
  void out_of_input(std::size_t wanted) {
    const bool first = ok_;
    ok_ = false;
    if (first && on_out_of_input_) on_out_of_input_(wanted, remaining());
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
  bool ok_ = true;
  OutOfInput on_out_of_input_;
};

}  // namespace emmcsim::support
