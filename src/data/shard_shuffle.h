// The shuffle buffer of the streaming loader (as in WebDataset and tf.data): records arrive in
// shard order; once `capacity` are held, each arriving record evicts a uniformly drawn slot
// (that slot's record is emitted) and takes its place; when the stream ends the rest are emitted
// in random order. While it fills, the buffer already emits (as WebDataset's `initial`): past
// kInitialRecords held, every second arriving record also releases a uniformly drawn one, so it
// grows by one record per record emitted. A full-size buffer (gigabytes) would otherwise hold up
// the first batch of every epoch for as long as it takes to read that much from disk.
// Draws come from Philox keyed by (seed, epoch), so an epoch's output order is a pure function of
// (seed, epoch, shard order) and can be replayed on record ids alone, without touching data: that
// is how a resumed loader finds what the buffer held at a given batch.
//
//   ShuffleBuffer buf(capacity, record_bytes, seed, epoch, storage);
//   for (each record id, bytes in stream order) buf.push(id, bytes, emit);   // emit(id, bytes)
//   while (buf.size() > 0) buf.drain_one(emit);
// With bytes == nullptr only ids are tracked (replay); slot_data() is then filled by the caller.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/philox.h"
#include "data/huge_buffer.h"

namespace gpuml::data {

// Asks for a record's cache lines ahead of its use (records are read at random, one at a time).
inline void prefetch_record(const uint8_t* record, size_t bytes) {
  for (size_t line = 0; line < bytes; line += 64) __builtin_prefetch(record + line);
}

class ShuffleBuffer {
 public:
  // `storage` holds the slots' bytes (capacity * record_bytes, grown here if needed) and outlives
  // the buffer, so that an epoch reuses the memory of the one before.
  ShuffleBuffer(int64_t capacity, size_t record_bytes, uint64_t seed, int64_t epoch, HugeBuffer& storage)
      : capacity_(capacity), record_bytes_(record_bytes), seed_(seed),
        // Draw blocks start half-way into the epoch's 2^32-block Philox stream; the first half
        // is the shard-order permutation's (data/permutation.h).
        next_block_((static_cast<uint64_t>(epoch) << 32) + (uint64_t{1} << 31)),
        data_(storage) {
    ids_.resize(static_cast<size_t>(capacity));
    data_.reserve(static_cast<size_t>(capacity) * record_bytes, /*huge_pages=*/true);
  }

  static constexpr int64_t kInitialRecords = 1024;  // held before the first record leaves

  int64_t size() const { return size_; }
  int64_t capacity() const { return capacity_; }
  int64_t slot_id(int64_t slot) const { return ids_[static_cast<size_t>(slot)]; }
  uint8_t* slot_data(int64_t slot) { return data_.data() + static_cast<size_t>(slot) * record_bytes_; }

  // Offers the stream's next record; emits at most one record (none before kInitialRecords).
  template <typename Emit>
  void push(int64_t id, const uint8_t* bytes, Emit&& emit) {
    if (capacity_ == 0) {  // no shuffling: records pass straight through
      emit(id, bytes);
      return;
    }
    if (size_ < capacity_) {
      store(size_++, id, bytes);
      if (size_ > std::min(kInitialRecords, capacity_) && size_ < capacity_ && (++growth_pushes_ & 1) == 0)
        drain_one(emit);
      return;
    }
    int64_t slot = static_cast<int64_t>(draw() % static_cast<uint64_t>(capacity_));
    emit(ids_[static_cast<size_t>(slot)], bytes ? slot_data(slot) : nullptr);
    store(slot, id, bytes);
    if (bytes) prefetch_next_eviction();
  }

  // After the stream ends: emits one held record, chosen uniformly; the last slot fills the gap.
  template <typename Emit>
  void drain_one(Emit&& emit) {
    int64_t slot = static_cast<int64_t>(draw() % static_cast<uint64_t>(size_));
    emit(ids_[static_cast<size_t>(slot)], slot_data(slot));
    --size_;
    if (slot != size_) {
      ids_[static_cast<size_t>(slot)] = ids_[static_cast<size_t>(size_)];
      std::memcpy(slot_data(slot), slot_data(size_), record_bytes_);
    }
  }

 private:
  void store(int64_t slot, int64_t id, const uint8_t* bytes) {
    ids_[static_cast<size_t>(slot)] = id;
    if (bytes) std::memcpy(slot_data(slot), bytes, record_bytes_);
  }
  // Draws are taken one ahead (the sequence is unchanged), so that the slot the next push evicts
  // can be fetched from memory while this record is decoded: a large buffer is a cache miss per
  // record otherwise.
  uint64_t draw() {
    if (drawn_ahead_) {
      drawn_ahead_ = false;
      return ahead_;
    }
    PhiloxBlock b = philox4x32_10(next_block_++, seed_);
    return (static_cast<uint64_t>(b.v[1]) << 32) | b.v[0];
  }
  void prefetch_next_eviction() {
    ahead_ = draw();
    drawn_ahead_ = true;
    prefetch_record(slot_data(static_cast<int64_t>(ahead_ % static_cast<uint64_t>(capacity_))), record_bytes_);
  }

  int64_t capacity_;
  size_t record_bytes_;
  uint64_t seed_;
  uint64_t next_block_;
  int64_t size_ = 0;
  int64_t growth_pushes_ = 0;  // records pushed past kInitialRecords while filling
  uint64_t ahead_ = 0;       // the next draw, when drawn_ahead_
  bool drawn_ahead_ = false;
  std::vector<int64_t> ids_;    // (capacity,) record id per slot
  HugeBuffer& data_;            // (capacity, record_bytes)
};

}  // namespace gpuml::data
