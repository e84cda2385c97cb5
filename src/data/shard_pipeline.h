// Internals of data/shard_loader.h: the two background threads of one epoch. The assembler
// thread replays the shuffle up to the first batch (on ids, when resuming), fills the buffer's
// slots from the shards it needs, starts the reader thread at the stream's cursor, and then
// shuffles, decodes and normalises records into batches. The reader reads whole shards into a
// fixed pool of buffers (read_ahead + 1) and checks their checksums. One mutex guards both
// queues; stopping (seek, destruction) wakes every wait and joins both threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "data/shard_loader.h"

namespace gpuml::data {

class ShuffleBuffer;

struct PipelineConfig {
  const ShardDataset* dataset;
  const ShardSplit* split;
  const ShardLoaderOptions* options;
  const ShardMemoryPlan* plan;
  HugeBuffer* shuffle_storage;
};

struct ShardLoader::Pipeline {
  Pipeline(PipelineConfig config, LoaderPosition start);
  ~Pipeline();
  // Blocks until the next batch is ready; rethrows a background error.
  Batch next();

 private:
  struct Stopped {};  // thrown inside the threads to unwind when stop_ is set
  struct FilledShard {
    int64_t position;  // index into order_
    int buffer;
  };

  void assemble();
  void read_shards(int64_t first_position);
  void run_epoch();
  std::vector<int64_t> record_order(int64_t shard) const;
  void replay_to(int64_t records_to_skip, ShuffleBuffer& buffer, int64_t& position, int64_t& record);
  void materialise(ShuffleBuffer& buffer);
  void push_ready(Batch batch);
  FilledShard pop_filled();
  void release_buffer(int buffer);
  void decode_record(const uint8_t* record, float* x, int64_t* y) const;

  PipelineConfig config_;
  LoaderPosition start_;
  std::vector<int64_t> order_;        // shard indices in this epoch's order
  std::vector<int64_t> first_record_; // (shards + 1,) record id of each shard's first record
  SampleNormalizer normalize_;        // field x of a record -> normalised floats, as DataLoader's
  int64_t sample_elems_ = 0;
  size_t x_offset_ = 0, y_offset_ = 0;
  DType y_dtype_ = DType::i64;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::atomic<bool> stop_ = false;  // atomic: replay and materialise poll it without the mutex
  std::deque<Batch> ready_;
  bool assembler_done_ = false;
  std::exception_ptr error_;
  std::vector<HugeBuffer> buffers_;  // read-ahead shards
  std::vector<int> free_buffers_;
  std::deque<FilledShard> filled_;
  std::exception_ptr reader_error_;
  std::thread assembler_, reader_;
};

}  // namespace gpuml::data
