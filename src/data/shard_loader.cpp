#include "data/shard_loader.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/shard_pipeline.h"

namespace gpuml::data {

uint64_t default_data_memory_limit() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  uint64_t available_kib = 0;
  while (std::getline(meminfo, line))
    if (line.starts_with("MemAvailable:")) std::istringstream(line.substr(13)) >> available_kib;
  uint64_t quarter = available_kib * 1024 / 4;
  return std::clamp<uint64_t>(quarter, uint64_t{64} << 20, uint64_t{16} << 30);
}

ShardLoader::ShardLoader(const std::filesystem::path& dir, ShardLoaderOptions options)
    : dataset_(dir), options_(std::move(options)) {
  const ShardManifest& m = dataset_.manifest();
  split_ = &m.split(options_.split);
  if (!options_.memory) options_.memory = BatchMemory::create();
  GPUML_CHECK(options_.batch_size > 0, "ShardLoader: batch size must be positive, got {}", options_.batch_size);
  options_.part.check(options_.batch_size, "ShardLoader");
  GPUML_CHECK(options_.read_ahead >= 0 && options_.prefetch_depth >= 1,
              "ShardLoader: read_ahead must be >= 0 and prefetch_depth >= 1, got {} and {}", options_.read_ahead,
              options_.prefetch_depth);
  GPUML_CHECK(split_->records > 0, "{}: split '{}' is empty", dir.string(), options_.split);
  const ShardField& y = m.field("y");
  GPUML_CHECK(y.shape.empty() && is_integral(y.dtype), "{}: field y must be an integral scalar (a class id), is {} {}",
              dir.string(), y.dtype, shape_str(y.shape));
  GPUML_CHECK(m.field("x").dtype != DType::boolean, "{}: field x is boolean", dir.string());

  // The budget: read-ahead shards and batches first, the shuffle buffer gets the rest.
  const uint64_t record_bytes = m.record_bytes();
  const uint64_t sample_elems = static_cast<uint64_t>(numel(m.field("x").shape));
  // The global batch's bytes, even for a part of it: the shuffle buffer then gets the capacity one
  // process would, and the record order depends on it (N ranks x B must see 1 x N*B's records).
  const uint64_t one_batch = static_cast<uint64_t>(options_.batch_size) * (sample_elems * 4 + 8);
  plan_.limit = options_.memory_limit > 0 ? options_.memory_limit : default_data_memory_limit();
  plan_.shard_buffers = options_.read_ahead + 1;
  plan_.shard_bytes = static_cast<uint64_t>(plan_.shard_buffers) * split_->max_shard_bytes();
  // Prefetch as deep as asked while batches take at most an eighth of the limit, never below 2.
  const auto fit = static_cast<int64_t>(plan_.limit / 8 / std::max<uint64_t>(one_batch, 1)) - 2;
  plan_.prefetch_depth = static_cast<int>(std::clamp<int64_t>(fit, std::min(options_.prefetch_depth, 2),
                                                              options_.prefetch_depth));
  plan_.batch_buffers = plan_.prefetch_depth + 2;
  plan_.batch_bytes = static_cast<uint64_t>(plan_.batch_buffers) * one_batch;
  const uint64_t fixed = plan_.shard_bytes + plan_.batch_bytes;
  const uint64_t per_slot = record_bytes + 8;
  auto too_small = [&](uint64_t want) {
    GPUML_FAIL(ErrorKind::Invalid,
               "--data-memory-limit {} is too small for {}: read-ahead takes {} ({} shards of up to {}), batches {}, "
               "and the shuffle buffer {}; raise the limit, lower --shuffle-buffer, or re-pack with a smaller "
               "--shard-size",
               format_bytes(plan_.limit), dir.string(), format_bytes(plan_.shard_bytes), plan_.shard_buffers,
               format_bytes(split_->max_shard_bytes()), format_bytes(plan_.batch_bytes), format_bytes(want));
  };
  if (!options_.shuffle) {
    plan_.shuffle_records = 0;
    if (fixed > plan_.limit) too_small(0);
  } else if (options_.shuffle_buffer > 0) {
    plan_.shuffle_records = std::min(options_.shuffle_buffer, split_->records);
    if (fixed + static_cast<uint64_t>(plan_.shuffle_records) * per_slot > plan_.limit)
      too_small(static_cast<uint64_t>(plan_.shuffle_records) * per_slot);
  } else {
    if (fixed + per_slot > plan_.limit) too_small(per_slot);
    plan_.shuffle_records = std::min<int64_t>(static_cast<int64_t>((plan_.limit - fixed) / per_slot), split_->records);
  }
  plan_.shuffle_bytes = static_cast<uint64_t>(plan_.shuffle_records) * per_slot;
  // The shuffle slots are faulted in here, at setup, rather than by the first epoch's records.
  shuffle_storage_.reserve(static_cast<size_t>(plan_.shuffle_records) * record_bytes, /*huge_pages=*/true,
                           /*populate=*/true);
  plan_.direct_io = options_.io == ShardIo::direct ||
                    (options_.io == ShardIo::automatic && split_->records * record_bytes > plan_.limit);
}

ShardLoader::~ShardLoader() { stop(); }

void ShardLoader::stop() { pipeline_.reset(); }

Shape ShardLoader::sample_shape() const { return dataset_.manifest().field("x").shape; }

int64_t ShardLoader::batches_per_epoch() const {
  return options_.part.batches(split_->records, options_.batch_size);
}

void ShardLoader::seek(LoaderPosition position) {
  GPUML_CHECK(position.epoch >= 0 && position.batch >= 0 && position.batch <= batches_per_epoch(),
              "ShardLoader: cannot seek to epoch {} batch {} ({} batches per epoch)", position.epoch, position.batch,
              batches_per_epoch());
  stop();
  position_ = position;
}

std::optional<Batch> ShardLoader::next() {
  if (position_.batch >= batches_per_epoch()) return std::nullopt;
  if (!pipeline_)
    pipeline_ = std::make_unique<Pipeline>(PipelineConfig{&dataset_, split_, &options_, &plan_, &shuffle_storage_},
                                           position_);
  Batch batch = pipeline_->next();  // rethrows a reader or assembler error
  ++position_.batch;
  if (position_.batch == batches_per_epoch()) stop();
  return batch;
}

}  // namespace gpuml::data
