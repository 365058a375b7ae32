// mmc::Card: data phases — opening them (CMD8, CMD14, CMD17/18, CMD19, CMD21, CMD24/25, the
// bytes of register reads), moving their blocks one at a time or in bursts, read-ahead, reliable
// writes, RPMB request and response frames, and ending them (CMD12).
#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>

#include "card_internal.hpp"
#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc {
namespace {

namespace st = status;
namespace ec = ext_csd;

// HS200 tuning block patterns (JESD84-B51 Table 44): 64 bytes on a 4-bit bus, 128 on 8-bit.
constexpr std::uint8_t kTuningPattern4Bit[64] = {
    0xff, 0x0f, 0xff, 0x00, 0xff, 0xcc, 0xc3, 0xcc, 0xc3, 0x3c, 0xcc, 0xff, 0xfe, 0xff, 0xfe, 0xef,
    0xff, 0xdf, 0xff, 0xdd, 0xff, 0xfb, 0xff, 0xfb, 0xbf, 0xff, 0x7f, 0xff, 0x77, 0xf7, 0xbd, 0xef,
    0xff, 0xf0, 0xff, 0xf0, 0x0f, 0xfc, 0xcc, 0x3c, 0xcc, 0x33, 0xcc, 0xcf, 0xff, 0xef, 0xff, 0xee,
    0xff, 0xfd, 0xff, 0xfd, 0xdf, 0xff, 0xbf, 0xff, 0xbb, 0xff, 0xf7, 0xff, 0xf7, 0x7f, 0x7b, 0xde,
};
constexpr std::uint8_t kTuningPattern8Bit[128] = {
    0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff, 0xcc, 0xcc, 0xcc, 0x33, 0xcc, 0xcc, 0xcc, 0x33, 0x33,
    0xcc, 0xcc, 0xcc, 0xff, 0xff, 0xff, 0xee, 0xff, 0xff, 0xff, 0xee, 0xee, 0xff, 0xff, 0xff, 0xdd, 0xff, 0xff, 0xff,
    0xdd, 0xdd, 0xff, 0xff, 0xff, 0xbb, 0xff, 0xff, 0xff, 0xbb, 0xbb, 0xff, 0xff, 0xff, 0x77, 0xff, 0xff, 0xff, 0x77,
    0x77, 0xff, 0x77, 0xbb, 0xdd, 0xee, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff, 0xcc,
    0xcc, 0xcc, 0x33, 0xcc, 0xcc, 0xcc, 0x33, 0x33, 0xcc, 0xcc, 0xcc, 0xff, 0xff, 0xff, 0xee, 0xff, 0xff, 0xff, 0xee,
    0xee, 0xff, 0xff, 0xff, 0xdd, 0xff, 0xff, 0xff, 0xdd, 0xdd, 0xff, 0xff, 0xff, 0xbb, 0xff, 0xff, 0xff, 0xbb, 0xbb,
    0xff, 0xff, 0xff, 0x77, 0xff, 0xff, 0xff, 0x77, 0x77, 0xff, 0x77, 0xbb, 0xdd, 0xee,
};

// Sectors a read transfer fetches from the medium per storage call (64 KiB): one call per
// 512-byte block made file-backed reads syscall-bound (~0.6 us a block); blocks are then handed
// out from the transfer's buffer.
constexpr std::uint32_t kReadAheadSectors = 128;

WorkReport from_engine(const rpmb::EngineWork& e) {
  WorkReport w;
  w.hmac_frames = e.mac_frames;
  w.rpmb_commits = e.commits;
  w.sectors_read = (e.half_sectors_read + 1) / 2;
  w.sectors_programmed = (e.half_sectors_written + 1) / 2;
  return w;
}

}  // namespace

void Card::end_transfer() { transfer_ = Transfer{}; }

DataDirection Card::direction_of(TransferKind kind) {
  switch (kind) {
    case TransferKind::read_sectors:
    case TransferKind::register_read:
    case TransferKind::bus_test_read:
    case TransferKind::rpmb_responses:
    case TransferKind::boot_stream: return DataDirection::to_host;
    case TransferKind::write_sectors:
    case TransferKind::bus_test_write:
    case TransferKind::lock_unlock:
    case TransferKind::rpmb_requests: return DataDirection::to_card;
    case TransferKind::none: break;
  }
  return DataDirection::none;
}

Card::Transfer& Card::open_transfer(TransferKind kind, std::uint32_t block_size, std::uint32_t blocks,
                                    CommandOutcome& o) {
  const DataDirection direction = direction_of(kind);
  transfer_ = Transfer{};
  transfer_.kind = kind;
  transfer_.partition = partition_;
  transfer_.block_size = block_size;
  transfer_.blocks_total = blocks;
  o.data = {direction, block_size, blocks};
  state_ = direction == DataDirection::to_host ? CardState::data : CardState::rcv;
  return transfer_;
}

CommandOutcome Card::send_bytes(std::vector<std::uint8_t> bytes, TransferKind kind) {
  CommandOutcome o = r1();
  open_transfer(kind, static_cast<std::uint32_t>(bytes.size()), 1, o).buffer = std::move(bytes);
  return o;
}

CommandOutcome Card::read_block_command(const Command& c) {
  const bool multiple = c.index == cmd::kReadMultipleBlock;
  const auto count = active_block_count_;
  if (partition_ == Partition::rpmb) {
    if (!count) return illegal();  // the RPMB partition moves data only in CMD23-bounded bursts
    CommandOutcome o = r1();
    Transfer& t = open_transfer(TransferKind::rpmb_responses, kSectorSize, count->blocks, o);
    t.frames.resize(count->blocks);
    o.work = from_engine(rpmb_engine_->read_response(t.frames.data(), t.frames.size()));
    return o;
  }
  std::uint32_t error = 0;
  if (!config_.sector_addressing() && block_length_ != kSectorSize) error |= st::kBlockLenError;
  const auto sector = sector_of(c.arg, error);
  const std::uint64_t size = partition_sectors(partition_);
  const std::uint32_t blocks = multiple ? (count ? count->blocks : 0) : 1;
  if (error == 0 && (*sector >= size || *sector + blocks > size)) error |= st::kOutOfRange;
  if (error != 0) return r1(error);

  CommandOutcome o = r1();
  open_transfer(TransferKind::read_sectors, kSectorSize, blocks, o).next_sector = *sector;
  return o;
}

CommandOutcome Card::write_block_command(const Command& c) {
  const bool multiple = c.index == cmd::kWriteMultipleBlock;
  const auto count = active_block_count_;
  if (partition_ == Partition::rpmb) {
    if (!count) return illegal();
    CommandOutcome o = r1();
    open_transfer(TransferKind::rpmb_requests, kSectorSize, count->blocks, o).reliable = count->reliable_write;
    return o;
  }
  std::uint32_t error = 0;
  if (!config_.sector_addressing() && block_length_ != kSectorSize) error |= st::kBlockLenError;
  const auto sector = sector_of(c.arg, error);
  const std::uint64_t size = partition_sectors(partition_);
  const std::uint32_t blocks = multiple ? (count ? count->blocks : 0) : 1;
  const bool reliable = multiple && count && count->reliable_write;
  if (error == 0 && (*sector >= size || *sector + blocks > size)) error |= st::kOutOfRange;
  if (error == 0 && reliable) {
    // Legacy reliable write (WR_REL_PARAM bit 2 clear): one sector, or REL_WR_SEC_C sectors
    // aligned to REL_WR_SEC_C — what Linux's mmc_apply_rel_rw() arranges.
    const std::uint32_t unit = config_.reliable_write_sectors;
    if (blocks != 1 && blocks != unit)
      error |= st::kBlockLenError;
    else if (blocks == unit && *sector % unit != 0)
      error |= st::kAddressMisalign;
  }
  if (error == 0 && (boot_write_protected(partition_) || write_protected(partition_, *sector)))
    error |= st::kWpViolation;
  if (error != 0) return r1(error);

  CommandOutcome o = r1();
  Transfer& t = open_transfer(TransferKind::write_sectors, kSectorSize, blocks, o);
  t.next_sector = *sector;
  t.reliable = reliable;
  t.forced_programming = count && count->forced_programming;
  return o;
}

CommandOutcome Card::send_ext_csd(const Command&) {
  const ExtCsd current = ext_csd();
  return send_bytes({current.begin(), current.end()});
}

CommandOutcome Card::send_tuning_block(const Command&) {
  namespace bw = ec::bus_width;
  const std::uint8_t width = ext_csd_[ec::kBusWidth];
  if (ec::hs_timing::timing_of(ext_csd_[ec::kHsTiming]) != ec::hs_timing::kHs200 ||
      (width != bw::k4Bit && width != bw::k8Bit))
    return illegal();  // tuning exists only in HS200 on a 4- or 8-bit bus
  if (width == bw::k8Bit) return send_bytes({std::begin(kTuningPattern8Bit), std::end(kTuningPattern8Bit)});
  return send_bytes({std::begin(kTuningPattern4Bit), std::end(kTuningPattern4Bit)});
}

// Bus test: the host writes a pattern as wide as the bus (CMD19), the card returns it inverted
// (CMD14). The block is 8 bytes on an 8-bit bus, 4 on a 4-bit bus and 1 on a 1-bit bus.
CommandOutcome Card::bus_test_write(const Command&) {
  const std::uint32_t bytes = ec::bus_width::data_lines(ext_csd_[ec::kBusWidth]);
  CommandOutcome o = r1();
  open_transfer(TransferKind::bus_test_write, bytes, 1, o);
  state_ = CardState::btst;
  return o;
}

CommandOutcome Card::bus_test_read(const Command&) {
  std::vector<std::uint8_t> reply = std::move(transfer_.buffer);
  if (reply.empty()) reply.assign(transfer_.block_size == 0 ? 1 : transfer_.block_size, 0);
  for (auto& b : reply) b = static_cast<std::uint8_t>(~b);
  return send_bytes(std::move(reply), TransferKind::bus_test_read);
}

CommandOutcome Card::stop_transmission(const Command&) {
  if (state_ == CardState::data) {
    CommandOutcome o = r1();
    end_transfer();
    state_ = CardState::tran;
    return o;
  }
  // rcv: blocks already accepted stay written, except a reliable write or an RPMB burst, which
  // is all or nothing and is dropped when cut short.
  CommandOutcome o = r1(0, ResponseType::r1b);
  end_transfer();
  enter_busy(o);
  return o;
}

BlockOutcome Card::read_block(std::uint8_t* out, std::size_t size) {
  BlockOutcome b = read_one_block(out, size);
  b.blocks = b.ok ? 1 : 0;
  return b;
}

BlockOutcome Card::read_one_block(std::uint8_t* out, std::size_t size) {
  BlockOutcome b;
  if ((state_ != CardState::data && state_ != CardState::boot) || size != transfer_.block_size || transfer_.failed)
    return b;
  switch (transfer_.kind) {
    case TransferKind::read_sectors:
    case TransferKind::boot_stream: return read_sector_block(out);
    case TransferKind::register_read:
    case TransferKind::bus_test_read:
    case TransferKind::rpmb_responses: {
      const std::size_t offset = static_cast<std::size_t>(transfer_.blocks_done) * transfer_.block_size;
      const std::uint8_t* from = transfer_.kind == TransferKind::rpmb_responses
                                     ? transfer_.frames[transfer_.blocks_done].bytes()
                                     : transfer_.buffer.data() + offset;
      std::memcpy(out, from, size);
      b.ok = true;
      if (++transfer_.blocks_done == transfer_.blocks_total) {
        end_transfer();
        state_ = CardState::tran;
        b.transfer_complete = true;
      }
      return b;
    }
    default: return b;
  }
}

BlockOutcome Card::read_sector_block(std::uint8_t* out) {
  BlockOutcome b;
  const std::uint64_t partition_end = partition_sectors(transfer_.partition);
  if (transfer_.next_sector >= partition_end) {
    // An open-ended read ran past the end: no data; OUT_OF_RANGE goes with the CMD12 response.
    pending_status_ |= st::kOutOfRange;
    transfer_.failed = true;
    return b;
  }
  // Read ahead: when the next sector is not in the buffered run, fetch the next run (up to the count, or to the
  // partition's end for open-ended reads and boot) with one storage call. A block the run does not
  // hold (a run of one, or a run the medium failed to read) is read on its own, so a medium error
  // is still reported at the block it belongs to. No command that writes is accepted while the
  // transfer is open, so the run cannot go stale.
  const auto buffered = static_cast<std::uint64_t>(transfer_.buffer.size() / kSectorSize);
  const bool in_run = transfer_.next_sector >= transfer_.buffer_first_sector &&
                      transfer_.next_sector < transfer_.buffer_first_sector + buffered;
  if (!in_run) {
    transfer_.buffer_first_sector = transfer_.next_sector;
    std::uint64_t run = std::min<std::uint64_t>(kReadAheadSectors, partition_end - transfer_.next_sector);
    if (transfer_.blocks_total != 0) run = std::min<std::uint64_t>(run, transfer_.blocks_total - transfer_.blocks_done);
    if (run > 1) {
      transfer_.buffer.resize(static_cast<std::size_t>(run) * kSectorSize);
      try {
        storage(transfer_.partition)
            ->read(transfer_.next_sector, static_cast<std::uint32_t>(run), transfer_.buffer.data());
      } catch (const StorageError&) {
        transfer_.buffer.clear();
      }
    } else {
      transfer_.buffer.clear();
    }
  }
  const auto offset = static_cast<std::size_t>(transfer_.next_sector - transfer_.buffer_first_sector) * kSectorSize;
  if (transfer_.next_sector >= transfer_.buffer_first_sector && offset + kSectorSize <= transfer_.buffer.size()) {
    // The length is the transfer's (512): a call to the C library's vector copy, where a constant
    // 512 lets the compiler inline `rep movsq`, several times slower on some CPUs.
    std::memcpy(out, transfer_.buffer.data() + offset, transfer_.block_size);
  } else {
    try {
      storage(transfer_.partition)->read(transfer_.next_sector, 1, out);
    } catch (const StorageError&) {
      pending_status_ |= st::kCardEccFailed | st::kError;
      transfer_.failed = true;
      return b;
    }
  }
  b.ok = true;
  b.work.sectors_read = 1;
  ++transfer_.next_sector;
  if (++transfer_.blocks_done == transfer_.blocks_total && transfer_.kind == TransferKind::read_sectors) {
    end_transfer();
    state_ = CardState::tran;
    b.transfer_complete = true;
  }
  return b;
}

BlockOutcome Card::write_block(const std::uint8_t* in, std::size_t size) {
  BlockOutcome b = write_one_block(in, size);
  b.blocks = b.ok ? 1 : 0;
  return b;
}

BlockOutcome Card::write_one_block(const std::uint8_t* in, std::size_t size) {
  BlockOutcome b;
  if ((state_ != CardState::rcv && state_ != CardState::btst) || size != transfer_.block_size || transfer_.failed)
    return b;
  switch (transfer_.kind) {
    case TransferKind::write_sectors: return write_sector_block(in);
    case TransferKind::bus_test_write:
      // The pattern is kept for CMD14; the card stays in btst.
      transfer_.buffer.assign(in, in + size);
      ++transfer_.blocks_done;
      b.ok = true;
      return b;
    case TransferKind::rpmb_requests:
      transfer_.buffer.insert(transfer_.buffer.end(), in, in + size);
      if (++transfer_.blocks_done < transfer_.blocks_total) {
        b.ok = true;
        return b;
      }
      return finish_rpmb_requests();
    case TransferKind::lock_unlock: {
      transfer_.buffer.assign(in, in + size);
      b.ok = true;
      b.transfer_complete = true;
      finish_lock_unlock(b.work);
      enter_busy(b);
      return b;
    }
    default: return b;
  }
}

BlockOutcome Card::finish_rpmb_requests() {
  BlockOutcome b;
  std::vector<rpmb::Frame> frames(transfer_.blocks_total);
  for (std::size_t i = 0; i < frames.size(); ++i)
    frames[i] = rpmb::Frame::from_bytes(transfer_.buffer.data() + i * rpmb::kFrameSize);
  b.work = from_engine(rpmb_engine_->write_request(frames.data(), frames.size(), transfer_.reliable));
  b.ok = true;
  b.transfer_complete = true;
  end_transfer();
  enter_busy(b);
  return b;
}

BlockOutcome Card::write_sector_block(const std::uint8_t* in) {
  BlockOutcome b;
  const std::uint64_t sector = transfer_.next_sector;
  std::uint32_t error = 0;
  if (sector >= partition_sectors(transfer_.partition))
    error = st::kOutOfRange;
  else if (write_protected(transfer_.partition, sector))
    error = st::kWpViolation;
  if (error != 0) {
    // CRC status "write error"; the host reads the reason with CMD12/CMD13.
    pending_status_ |= error;
    transfer_.failed = true;
    return b;
  }
  ++transfer_.next_sector;
  ++transfer_.blocks_done;
  const bool last = transfer_.blocks_done == transfer_.blocks_total;
  if (transfer_.reliable) {
    // Reliable write: staged, then committed as a whole once the last sector arrived.
    transfer_.buffer.insert(transfer_.buffer.end(), in, in + kSectorSize);
    b.ok = true;
    if (!last) return b;
    if (!commit_staged_write(b.work)) {
      b.ok = false;
      transfer_.failed = true;
      return b;
    }
  } else {
    try {
      storage(transfer_.partition)->write(sector, 1, in);
    } catch (const StorageError&) {
      pending_status_ |= st::kError;
      transfer_.failed = true;
      return b;
    }
    b.ok = true;
    const bool cached = ext_csd_[ec::kCacheCtrl] != 0 && !transfer_.forced_programming;
    if (cached) {
      b.work.sectors_cached = 1;
      ++dirty_cached_sectors_;
    } else {
      b.work.sectors_programmed = 1;
    }
  }
  if (last) complete_write_transfer(b);
  return b;
}

void Card::complete_write_transfer(BlockOutcome& b) {
  end_transfer();
  b.transfer_complete = true;
  enter_busy(b);
}

std::uint32_t Card::burst_sectors(std::uint32_t wanted) const {
  const bool reading = transfer_.kind == TransferKind::read_sectors && state_ == CardState::data;
  const bool writing = transfer_.kind == TransferKind::write_sectors && state_ == CardState::rcv && !transfer_.reliable;
  if ((!reading && !writing) || transfer_.failed) return 0;
  const std::uint64_t end = partition_sectors(transfer_.partition);
  if (transfer_.next_sector >= end) return 0;
  std::uint64_t n = std::min<std::uint64_t>(wanted, end - transfer_.next_sector);
  if (transfer_.blocks_total != 0) n = std::min<std::uint64_t>(n, transfer_.blocks_total - transfer_.blocks_done);
  if (writing) {
    // Up to the first write-protected group; that block is left to write_block to refuse.
    const std::uint64_t group = wp_group_sectors();
    std::uint64_t allowed = 0;
    while (allowed < n && !write_protected(transfer_.partition, transfer_.next_sector + allowed))
      allowed = std::min(n, (transfer_.next_sector + allowed) / group * group + group - transfer_.next_sector);
    n = allowed;
  }
  return n >= 2 ? static_cast<std::uint32_t>(n) : 0;
}

BlockOutcome Card::read_blocks(std::uint8_t* out, std::size_t size, std::uint32_t count) {
  BlockOutcome total;
  while (total.blocks < count) {
    std::uint8_t* to = out + std::size_t{total.blocks} * size;
    if (const std::uint32_t n = size == kSectorSize ? burst_sectors(count - total.blocks) : 0; n != 0) {
      bool moved = true;
      try {
        storage(transfer_.partition)->read(transfer_.next_sector, n, to);
      } catch (const StorageError&) {
        moved = false;  // block by block below, so the error lands on the block it belongs to
      }
      if (moved) {
        transfer_.next_sector += n;
        transfer_.blocks_done += n;
        total.blocks += n;
        total.work.sectors_read += n;
        if (transfer_.blocks_done == transfer_.blocks_total) {
          end_transfer();
          state_ = CardState::tran;
          total.transfer_complete = true;
          break;
        }
        continue;
      }
    }
    const BlockOutcome b = read_block(to, size);
    if (!b.ok) break;
    ++total.blocks;
    total.work += b.work;
    if (b.transfer_complete) {
      total.transfer_complete = true;
      break;
    }
  }
  total.ok = total.blocks == count;
  return total;
}

BlockOutcome Card::write_blocks(const std::uint8_t* in, std::size_t size, std::uint32_t count) {
  BlockOutcome total;
  while (total.blocks < count) {
    const std::uint8_t* from = in + std::size_t{total.blocks} * size;
    if (const std::uint32_t n = size == kSectorSize ? burst_sectors(count - total.blocks) : 0; n != 0) {
      bool moved = true;
      try {
        storage(transfer_.partition)->write(transfer_.next_sector, n, from);
      } catch (const StorageError&) {
        moved = false;
      }
      if (moved) {
        const bool cached = ext_csd_[ec::kCacheCtrl] != 0 && !transfer_.forced_programming;
        (cached ? total.work.sectors_cached : total.work.sectors_programmed) += n;
        if (cached) dirty_cached_sectors_ += n;
        transfer_.next_sector += n;
        transfer_.blocks_done += n;
        total.blocks += n;
        if (transfer_.blocks_done == transfer_.blocks_total) {
          complete_write_transfer(total);
          break;
        }
        continue;
      }
    }
    const BlockOutcome b = write_block(from, size);
    if (!b.ok) break;
    ++total.blocks;
    total.work += b.work;
    total.busy = total.busy || b.busy;
    if (b.transfer_complete) {
      total.transfer_complete = true;
      break;
    }
  }
  total.ok = total.blocks == count;
  return total;
}

bool Card::commit_staged_write(WorkReport& work) {
  const auto count = static_cast<std::uint32_t>(transfer_.buffer.size() / kSectorSize);
  const std::uint64_t first = transfer_.next_sector - count;
  try {
    BlockStorage* s = storage(transfer_.partition);
    s->write(first, count, transfer_.buffer.data());
    s->flush();
  } catch (const StorageError&) {
    pending_status_ |= st::kError;
    return false;
  }
  work.sectors_programmed += count;
  return true;
}

}  // namespace emmcsim::mmc
