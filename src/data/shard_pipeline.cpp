#include "data/shard_pipeline.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "core/error.h"
#include "data/batch_allocator.h"
#include "data/permutation.h"
#include "data/shard_shuffle.h"

namespace gpuml::data {

ShardLoader::Pipeline::Pipeline(PipelineConfig config, LoaderPosition start)
    : config_(config), start_(start),
      normalize_(config.options->normalization, config.dataset->manifest().field("x").shape,
                 config.dataset->manifest().field("x").dtype, "ShardLoader") {
  const ShardLoaderOptions& o = *config_.options;
  const ShardManifest& m = config_.dataset->manifest();
  const ShardSplit& split = *config_.split;
  const int64_t shards = static_cast<int64_t>(split.shards.size());
  if (o.shuffle) {
    order_ = philox_permutation(shards, o.seed, static_cast<uint64_t>(start.epoch));
  } else {
    order_.resize(static_cast<size_t>(shards));
    std::iota(order_.begin(), order_.end(), int64_t{0});
  }
  first_record_.push_back(0);
  for (const ShardFile& f : split.shards) first_record_.push_back(first_record_.back() + f.records);

  y_dtype_ = m.field("y").dtype;
  x_offset_ = m.field_offset("x");
  y_offset_ = m.field_offset("y");
  sample_elems_ = normalize_.sample_elems();

  buffers_ = std::vector<HugeBuffer>(static_cast<size_t>(config_.plan->shard_buffers));
  for (int b = 0; b < static_cast<int>(buffers_.size()); ++b) free_buffers_.push_back(b);
  assembler_ = std::thread([this] { assemble(); });
}

ShardLoader::Pipeline::~Pipeline() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (assembler_.joinable()) assembler_.join();
  if (reader_.joinable()) reader_.join();  // started by the assembler, which has finished
}

Batch ShardLoader::Pipeline::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || assembler_done_; });
  if (ready_.empty()) {
    if (error_) std::rethrow_exception(error_);
    GPUML_FAIL(ErrorKind::Internal, "ShardLoader: the epoch ended before its last batch");
  }
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  // Wake the producer only once the queue is half empty. Woken on every batch, it preempted the
  // training thread right here on a 2-core machine (while the other OpenMP thread spun at its
  // barrier): that cost ~65 us a step, counted as data wait with batches ready. See BENCHMARKS.md.
  const bool wake = ready_.size() <= static_cast<size_t>(config_.plan->prefetch_depth) / 2;
  lock.unlock();
  if (wake) changed_.notify_all();
  return batch;
}

void ShardLoader::Pipeline::assemble() {
  try {
    run_epoch();
  } catch (const Stopped&) {
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    assembler_done_ = true;
    stop_ = true;  // the reader has nobody to read for any more
  }
  changed_.notify_all();
}

void ShardLoader::Pipeline::decode_record(const uint8_t* record, float* x, int64_t* y) const {
  normalize_(record + x_offset_, x);
  *y = dispatch_dtype(y_dtype_, [&]<typename T>(T) {
    T v;
    std::memcpy(&v, record + y_offset_, sizeof(T));
    return static_cast<int64_t>(to_double(v));
  });
}

void ShardLoader::Pipeline::push_ready(Batch batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return stop_ || ready_.size() < static_cast<size_t>(config_.plan->prefetch_depth); });
  if (stop_) throw Stopped{};
  ready_.push_back(std::move(batch));
  lock.unlock();
  changed_.notify_all();
}

ShardLoader::Pipeline::FilledShard ShardLoader::Pipeline::pop_filled() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return stop_ || !filled_.empty() || reader_error_; });
  if (stop_) throw Stopped{};
  if (filled_.empty()) std::rethrow_exception(reader_error_);
  FilledShard f = filled_.front();
  filled_.pop_front();
  return f;
}

void ShardLoader::Pipeline::release_buffer(int buffer) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    free_buffers_.push_back(buffer);
  }
  changed_.notify_all();
}

void ShardLoader::Pipeline::read_shards(int64_t first_position) {
  try {
    for (int64_t pos = first_position; pos < static_cast<int64_t>(order_.size()); ++pos) {
      int buffer = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || !free_buffers_.empty(); });
        if (stop_) return;
        buffer = free_buffers_.back();
        free_buffers_.pop_back();
      }
      config_.dataset->read_shard(*config_.split, static_cast<size_t>(order_[static_cast<size_t>(pos)]),
                                  buffers_[static_cast<size_t>(buffer)], config_.plan->direct_io);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        filled_.push_back({pos, buffer});
      }
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    reader_error_ = std::current_exception();
  }
  changed_.notify_all();
}

// The order in which a shard's records enter the shuffle buffer: a Philox permutation of
// (seed, epoch) keyed per shard, so that records stored next to each other do not travel
// together through every epoch (the buffer alone only jitters the stored order). The whole
// shard is in memory when it is consumed, so this costs no I/O.
std::vector<int64_t> ShardLoader::Pipeline::record_order(int64_t shard) const {
  const int64_t n = config_.split->shards[static_cast<size_t>(shard)].records;
  if (!config_.options->shuffle) {
    std::vector<int64_t> identity(static_cast<size_t>(n));
    std::iota(identity.begin(), identity.end(), int64_t{0});
    return identity;
  }
  const uint64_t shard_key = config_.options->seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(shard + 1));
  return philox_permutation(n, shard_key, static_cast<uint64_t>(start_.epoch));
}

// Replays the epoch's shuffle on record ids until `records_to_skip` records have been emitted;
// leaves the cursor at the next stream record (shard position, record within it).
void ShardLoader::Pipeline::replay_to(int64_t records_to_skip, ShuffleBuffer& buffer, int64_t& position,
                                      int64_t& record) {
  int64_t emitted = 0;
  auto count = [&](int64_t, const uint8_t*) { ++emitted; };
  std::vector<int64_t> records_of_shard;  // the current shard's record order
  const ShardSplit& split = *config_.split;
  while (emitted < records_to_skip) {
    if (position < static_cast<int64_t>(order_.size())) {
      int64_t shard = order_[static_cast<size_t>(position)];
      if (record == 0 || records_of_shard.empty()) records_of_shard = record_order(shard);
      buffer.push(first_record_[static_cast<size_t>(shard)] + records_of_shard[static_cast<size_t>(record)], nullptr,
                  count);
      if (++record == split.shards[static_cast<size_t>(shard)].records) {
        ++position;
        record = 0;
      }
    } else {
      buffer.drain_one(count);
    }
    if ((emitted & 0xffff) == 0 && stop_) throw Stopped{};  // a long replay stays interruptible
  }
}

// Fills the slots of a replayed buffer with their records, reading each shard they come from once.
void ShardLoader::Pipeline::materialise(ShuffleBuffer& buffer) {
  std::map<int64_t, std::vector<int64_t>> slots_by_shard;
  for (int64_t s = 0; s < buffer.size(); ++s) {
    int64_t id = buffer.slot_id(s);
    auto it = std::upper_bound(first_record_.begin(), first_record_.end(), id);
    slots_by_shard[static_cast<int64_t>(it - first_record_.begin()) - 1].push_back(s);
  }
  const size_t record_bytes = config_.dataset->manifest().record_bytes();
  HugeBuffer& scratch = buffers_[0];  // the reader has not started: its buffers are free
  for (const auto& [shard, slots] : slots_by_shard) {
    if (stop_) throw Stopped{};
    config_.dataset->read_shard(*config_.split, static_cast<size_t>(shard), scratch, config_.plan->direct_io);
    for (int64_t s : slots) {
      int64_t r = buffer.slot_id(s) - first_record_[static_cast<size_t>(shard)];
      std::memcpy(buffer.slot_data(s), scratch.data() + static_cast<size_t>(r) * record_bytes, record_bytes);
    }
  }
}

void ShardLoader::Pipeline::run_epoch() {
  const ShardLoaderOptions& o = *config_.options;
  const ShardSplit& split = *config_.split;
  const int64_t n = split.records;
  const int64_t batches = (n + o.batch_size - 1) / o.batch_size;  // global batches, a last one too small to split too
  const int64_t kept = o.part.batches(n, o.batch_size);           // those next() returns
  ShuffleBuffer buffer(config_.plan->shuffle_records, config_.dataset->manifest().record_bytes(), o.seed, start_.epoch,
                       *config_.shuffle_storage);
  int64_t position = 0, record = 0;
  if (start_.batch > 0) {
    replay_to(start_.batch * o.batch_size, buffer, position, record);
    materialise(buffer);
  }
  reader_ = std::thread([this, position] { read_shards(position); });

  Shape x_shape = config_.dataset->manifest().field("x").shape;
  // `filled` counts the global batch's rows; this process decodes rows [mine.first, + mine.count).
  int64_t batch_index = start_.batch, filled = 0, global_rows = 0;
  BatchPart::Rows mine;
  Batch current;
  auto emit = [&](int64_t, const uint8_t* bytes) {
    if (filled == 0) {
      global_rows = std::min(o.batch_size, n - batch_index * o.batch_size);
      mine = o.part.rows_of(global_rows);
      Shape shape = x_shape;
      shape.insert(shape.begin(), mine.count);
      if (batch_index < kept)
        current = Batch{o.memory->empty(shape, DType::f32), o.memory->empty({mine.count}, DType::i64), start_.epoch,
                        batch_index};
    }
    const int64_t row = filled - mine.first;
    if (batch_index < kept && row >= 0 && row < mine.count)
      decode_record(bytes, current.x.data<float>() + row * sample_elems_, current.y.data<int64_t>() + row);
    if (++filled == global_rows) {
      if (batch_index < kept) push_ready(std::move(current));
      current = Batch{};
      filled = 0;
      ++batch_index;
    }
  };
  const size_t record_bytes = config_.dataset->manifest().record_bytes();
  for (int64_t pos = position; pos < static_cast<int64_t>(order_.size()); ++pos) {
    FilledShard shard = pop_filled();
    GPUML_CHECK_KIND(ErrorKind::Internal, shard.position == pos, "ShardLoader: shard {} arrived for {}",
                     shard.position, pos);
    int64_t index = order_[static_cast<size_t>(pos)];
    const uint8_t* data = buffers_[static_cast<size_t>(shard.buffer)].data();
    const std::vector<int64_t> records = record_order(index);
    const int64_t count = split.shards[static_cast<size_t>(index)].records;
    for (int64_t i = pos == position ? record : 0; i < count; ++i) {
      // Records are taken in a permuted order: fetch the one after next while this one is copied.
      if (i + 2 < count)
        prefetch_record(data + static_cast<size_t>(records[static_cast<size_t>(i + 2)]) * record_bytes, record_bytes);
      int64_t r = records[static_cast<size_t>(i)];
      buffer.push(first_record_[static_cast<size_t>(index)] + r, data + static_cast<size_t>(r) * record_bytes, emit);
    }
    release_buffer(shard.buffer);
  }
  while (buffer.size() > 0) buffer.drain_one(emit);
  GPUML_CHECK_KIND(ErrorKind::Internal, batch_index == batches && filled == 0,
                   "ShardLoader: epoch ended at batch {} row {} of {} batches", batch_index, filled, batches);
}

}  // namespace gpuml::data
