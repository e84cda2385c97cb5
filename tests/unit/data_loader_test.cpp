// DataLoader and dataset helpers: each sample once per epoch, seeded and reproducible order,
// prefetch depth never changes batches, drop_last, resume mid-epoch, early destruction,
// normalisation, and the train/validation split.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "core/error.h"
#include "data/batch_allocator.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/permutation.h"

namespace gpuml::data {
namespace {

// n samples of shape (2, 3) u8 with random contents; label i identifies sample i.
InMemoryDataset make_dataset(int64_t n, std::mt19937& rng) {
  Tensor x = Tensor::empty({n, 2, 3}, DType::u8);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<uint8_t>()[i] = static_cast<uint8_t>(rng());
  Tensor y = Tensor::empty({n}, DType::i32);
  for (int64_t i = 0; i < n; ++i) y.data<int32_t>()[i] = static_cast<int32_t>(i);
  return InMemoryDataset(x, y);
}

std::vector<Batch> drain(DataLoader& loader) {
  std::vector<Batch> out;
  while (std::optional<Batch> b = loader.next()) out.push_back(std::move(*b));
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

std::vector<int64_t> labels_of(const std::vector<Batch>& batches) {
  std::vector<int64_t> out;
  for (const Batch& b : batches)
    for (int64_t i = 0; i < b.y.numel(); ++i) out.push_back(b.y.data<int64_t>()[i]);
  return out;
}

class DataLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = std::random_device{}();  // fresh inputs each run; the seed is logged for replay
    rng_.seed(seed_);
    RecordProperty("seed", std::to_string(seed_));
  }
  void TearDown() override {
    if (HasFailure()) ADD_FAILURE() << "inputs came from seed " << seed_;
  }
  uint32_t seed_ = 0;
  std::mt19937 rng_;
};

TEST_F(DataLoaderTest, EverySampleOncePerEpochWithItsOwnFeatures) {
  InMemoryDataset data = make_dataset(37, rng_);
  DataLoaderOptions opt;
  opt.batch_size = 8;
  opt.seed = rng_();
  DataLoader loader(data, opt);
  EXPECT_EQ(loader.batches_per_epoch(), 5);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    loader.start_epoch(epoch);
    std::vector<Batch> batches = drain(loader);
    ASSERT_EQ(batches.size(), 5u);
    EXPECT_EQ(batches.back().x.shape(), (Shape{5, 2, 3}));  // the last partial batch has its own shape
    EXPECT_EQ(batches.front().x.shape(), (Shape{8, 2, 3}));
    std::vector<int64_t> seen = labels_of(batches);
    std::vector<int64_t> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 37; ++i) ASSERT_EQ(sorted[i], i);
    EXPECT_FALSE(std::is_sorted(seen.begin(), seen.end()));
    for (const Batch& b : batches) {
      EXPECT_EQ(b.epoch, epoch);
      EXPECT_EQ(b.x.dtype(), DType::f32);
      for (int64_t r = 0; r < b.y.numel(); ++r) {
        int64_t sample = b.y.data<int64_t>()[r];
        for (int e = 0; e < 6; ++e)
          ASSERT_EQ(b.x.data<float>()[r * 6 + e], static_cast<float>(data.features().data<uint8_t>()[sample * 6 + e]));
      }
    }
    EXPECT_EQ(loader.position(), (LoaderPosition{epoch, 5}));
    EXPECT_FALSE(loader.next().has_value());
  }
}

TEST_F(DataLoaderTest, SeedFixesOrderAndEpochsDiffer) {
  InMemoryDataset data = make_dataset(50, rng_);
  DataLoaderOptions opt;
  opt.batch_size = 7;
  opt.seed = rng_();
  DataLoader a(data, opt), b(data, opt);
  DataLoaderOptions other = opt;
  other.seed = opt.seed + 1;
  DataLoader c(data, other);
  std::vector<int64_t> a0 = labels_of(drain(a)), b0 = labels_of(drain(b)), c0 = labels_of(drain(c));
  EXPECT_EQ(a0, b0);
  EXPECT_NE(a0, c0);
  a.start_epoch(1);
  std::vector<int64_t> a1 = labels_of(drain(a));
  EXPECT_NE(a0, a1);
  a.start_epoch(0);
  EXPECT_EQ(labels_of(drain(a)), a0);  // an epoch's order does not depend on what ran before
  DataLoaderOptions ordered = opt;
  ordered.shuffle = false;
  DataLoader d(data, ordered);
  std::vector<int64_t> d0 = labels_of(drain(d));
  EXPECT_TRUE(std::is_sorted(d0.begin(), d0.end()));
}

TEST_F(DataLoaderTest, PrefetchDepthNeverChangesBatches) {
  InMemoryDataset data = make_dataset(41, rng_);
  DataLoaderOptions opt;
  opt.batch_size = 6;
  opt.seed = rng_();
  opt.normalization = {.scale = 1.0 / 255, .shift = 0.0, .mean = {0.3, 0.6}, .std = {0.2, 0.4}};
  std::vector<std::vector<Batch>> runs;
  for (int depth : {0, 1, 3}) {
    opt.prefetch_depth = depth;
    DataLoader loader(data, opt);
    std::vector<Batch> all;
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      loader.start_epoch(epoch);
      for (Batch& b : drain(loader)) all.push_back(std::move(b));
    }
    runs.push_back(std::move(all));
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t i = 0; i < runs[0].size(); ++i) {
      EXPECT_TRUE(same_bits(runs[r][i].x, runs[0][i].x)) << "run " << r << " batch " << i;
      EXPECT_TRUE(same_bits(runs[r][i].y, runs[0][i].y)) << "run " << r << " batch " << i;
    }
  }
}

TEST_F(DataLoaderTest, DropLastDropsOnlyThePartialBatch) {
  InMemoryDataset data = make_dataset(10, rng_);
  DataLoaderOptions opt;
  opt.batch_size = 4;
  opt.drop_last = true;
  DataLoader loader(data, opt);
  EXPECT_EQ(loader.batches_per_epoch(), 2);
  std::vector<Batch> batches = drain(loader);
  ASSERT_EQ(batches.size(), 2u);
  for (const Batch& b : batches) EXPECT_EQ(b.x.dim(0), 4);
  opt.batch_size = 5;
  DataLoader exact(data, opt);
  EXPECT_EQ(drain(exact).size(), 2u);
}

TEST_F(DataLoaderTest, SeekMidEpochGivesTheRemainingBatches) {
  InMemoryDataset data = make_dataset(45, rng_);
  DataLoaderOptions opt;
  opt.batch_size = 4;
  opt.seed = rng_();
  DataLoader full(data, opt);
  full.start_epoch(3);
  std::vector<Batch> expected = drain(full);
  for (int depth : {0, 2}) {
    opt.prefetch_depth = depth;
    DataLoader resumed(data, opt);
    resumed.next();  // some other position first, so that seek must discard prefetched work
    resumed.seek({3, 7});
    EXPECT_EQ(resumed.position(), (LoaderPosition{3, 7}));
    std::vector<Batch> rest = drain(resumed);
    ASSERT_EQ(rest.size(), expected.size() - 7);
    for (size_t i = 0; i < rest.size(); ++i) {
      EXPECT_EQ(rest[i].index, static_cast<int64_t>(i + 7));
      EXPECT_TRUE(same_bits(rest[i].x, expected[i + 7].x));
      EXPECT_TRUE(same_bits(rest[i].y, expected[i + 7].y));
    }
    Batch direct = resumed.make_batch(3, 9);
    EXPECT_TRUE(same_bits(direct.x, expected[9].x));
  }
  DataLoader loader(data, opt);
  EXPECT_THROW(loader.seek({0, 13}), Error);
}

TEST_F(DataLoaderTest, EarlyDestructionDoesNotHang) {
  InMemoryDataset data = make_dataset(200, rng_);
  for (int depth : {1, 2, 8}) {
    DataLoaderOptions opt;
    opt.batch_size = 3;
    opt.prefetch_depth = depth;
    {
      DataLoader loader(data, opt);
      ASSERT_TRUE(loader.next().has_value());  // the producer is now blocked on a full queue
    }
    { DataLoader never_used(data, opt); }
    {
      DataLoader loader(data, opt);
      loader.next();
      loader.seek({5, 0});
      loader.next();
      loader.seek({6, 10});
    }
  }
}

TEST_F(DataLoaderTest, NormalisationPerChannelAndScalar) {
  InMemoryDataset data = make_dataset(5, rng_);
  DataLoaderOptions opt;
  opt.batch_size = 5;
  opt.shuffle = false;
  opt.normalization = {.scale = 1.0 / 255, .shift = 0.5, .mean = {0.25, 0.75}, .std = {0.5, 2.0}};
  DataLoader loader(data, opt);
  Batch b = *loader.next();
  for (int64_t i = 0; i < 5; ++i)
    for (int c = 0; c < 2; ++c)
      for (int k = 0; k < 3; ++k) {
        double raw = data.features().data<uint8_t>()[i * 6 + c * 3 + k];
        double want = ((raw / 255 + 0.5) - opt.normalization.mean[c]) / opt.normalization.std[c];
        EXPECT_NEAR(b.x.data<float>()[i * 6 + c * 3 + k], want, 1e-6);
      }
  opt.normalization = {.scale = 2.0, .shift = 0.0, .mean = {10.0}, .std = {4.0}};
  DataLoader scalar(data, opt);
  b = *scalar.next();
  EXPECT_NEAR(b.x.data<float>()[7], (2.0 * data.features().data<uint8_t>()[7] - 10.0) / 4.0, 1e-5);
  opt.normalization = {.scale = 1.0, .shift = 0.0, .mean = {0, 0, 0}, .std = {1, 1, 1}};
  EXPECT_THROW(DataLoader(data, opt), Error);  // 3 channel means for samples (2, 3)
  opt.normalization = {.scale = 1.0, .shift = 0.0, .mean = {0}, .std = {0}};
  EXPECT_THROW(DataLoader(data, opt), Error);
}

// The shared normaliser against the formula in double, for each stored dtype, per channel, from
// an unaligned source (shard records pack fields at any byte offset).
TEST_F(DataLoaderTest, SampleNormalizerMatchesTheFormulaForEveryDType) {
  const Normalization norm{.scale = 0.5, .shift = -1.0, .mean = {0.25, -3.0, 7.0}, .std = {0.5, 2.0, 3.5}};
  const Shape sample{3, 5, 2};
  std::uniform_real_distribution<double> value(-100.0, 100.0);
  for (DType dtype : {DType::u8, DType::i32, DType::i64, DType::f32, DType::f64}) {
    SCOPED_TRACE(fmt::format("{}", dtype));
    const size_t size = dtype_size(dtype);
    std::vector<uint8_t> bytes(1 + 30 * size);  // byte 0 pads: the sample starts unaligned
    std::vector<double> raw(30);
    for (size_t e = 0; e < 30; ++e) {
      dispatch_dtype(dtype, [&]<typename T>(T) {
        T v = static_cast<T>(dtype == DType::u8 ? double(rng_() % 256) : value(rng_));
        raw[e] = to_double(v);
        std::memcpy(bytes.data() + 1 + e * size, &v, size);
      });
    }
    SampleNormalizer normalize(norm, sample, dtype, "test");
    ASSERT_EQ(normalize.sample_elems(), 30);
    std::vector<float> out(30);
    normalize(bytes.data() + 1, out.data());
    for (size_t e = 0; e < 30; ++e) {
      const size_t c = e / 10;
      const float want = static_cast<float>(((raw[e] * norm.scale + norm.shift) - norm.mean[c]) / norm.std[c]);
      EXPECT_NEAR(out[e], want, 1e-5 * std::max(1.0f, std::abs(want))) << "element " << e;
    }
  }
}

// An upstream that counts what it hands out (as the CUDA plugin's pinned allocator would be).
class CountingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    ++allocations;
    live += 1;
    return host_allocator().allocate(bytes);
  }
  void deallocate(void* ptr, size_t bytes) override {
    live -= 1;
    host_allocator().deallocate(ptr, bytes);
  }
  Device device() const override { return {}; }
  int allocations = 0, live = 0;
};

// Batch blocks are recycled by size and come from the pool's upstream; two pools (two trainers)
// never share blocks; a batch that outlives its pool's owner still goes back to the upstream.
TEST(BatchMemory, RecyclesBlocksPerPoolAndOutlivesItsOwner) {
  CountingAllocator pinned, other;
  Tensor survivor;
  {
    std::shared_ptr<BatchMemory> memory = BatchMemory::create(&pinned);
    std::shared_ptr<BatchMemory> second = BatchMemory::create(&other);
    Tensor a = memory->empty({128, 784}, DType::f32);
    const void* first = a.raw_data();
    a = Tensor();
    Tensor b = memory->empty({128, 784}, DType::f32);
    EXPECT_EQ(b.raw_data(), first);  // the freed block, not a new one
    EXPECT_EQ(pinned.allocations, 1);
    Tensor c = memory->empty({7, 784}, DType::f32);  // another size: a new block
    EXPECT_EQ(pinned.allocations, 2);
    Tensor d = second->empty({128, 784}, DType::f32);
    EXPECT_EQ(other.allocations, 1);
    EXPECT_EQ(pinned.allocations, 2);
    d = Tensor();
    EXPECT_EQ(second->cached_bytes(), size_t{128 * 784 * 4});
    EXPECT_EQ(memory->cached_bytes(), 0u);  // second's free block is not memory's
    survivor = c;
  }  // the pools' owners are gone; `survivor` keeps its pool alive
  EXPECT_EQ(other.live, 0);   // second's cached block was released with it
  EXPECT_EQ(pinned.live, 2);  // survivor's block, and b's, cached in the pool survivor keeps alive
  survivor = Tensor();        // the pool's last user: it goes, and both blocks go back
  EXPECT_EQ(pinned.live, 0);
}

TEST_F(DataLoaderTest, DatasetReshapeAndLabelChecks) {
  InMemoryDataset data = make_dataset(4, rng_);
  InMemoryDataset flat = data.reshape_samples({-1});
  EXPECT_EQ(flat.features().shape(), (Shape{4, 6}));
  EXPECT_EQ(flat.labels().dtype(), DType::i64);
  EXPECT_THROW(data.reshape_samples({4}), Error);
  // Floating labels are kept as f32 values (regression targets; train/task.h decides), integers as
  // i64; booleans and a row count that differs from the features' are refused.
  InMemoryDataset values(data.features(), Tensor::from_values({4}, {0.5, 1, 2, 3}, DType::f64));
  EXPECT_EQ(values.labels().dtype(), DType::f32);
  EXPECT_EQ(values.labels().to_doubles(), (std::vector<double>{0.5, 1, 2, 3}));
  EXPECT_THROW(InMemoryDataset(data.features(), Tensor::from_values({4}, {0, 1, 0, 1}, DType::boolean)), Error);
  EXPECT_THROW(InMemoryDataset(data.features(), Tensor::from_values({3}, {0, 1, 2}, DType::i64)), Error);
}

// Targets of several values per row (token sequences, regression vectors) travel with their rows:
// through subset() and the loader's shuffled batches.
TEST_F(DataLoaderTest, MultiValueLabelsStayWithTheirRows) {
  const int64_t n = 10, t = 3;
  std::vector<double> x(n), y(n * t);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<double>(i);
    for (int64_t j = 0; j < t; ++j) y[i * t + j] = static_cast<double>(100 * i + j);
  }
  InMemoryDataset data(Tensor::from_values({n, 1}, x, DType::f32), Tensor::from_values({n, t}, y, DType::i32));
  EXPECT_EQ(data.label_shape(), (Shape{t}));
  InMemoryDataset picked = data.subset({7, 2});
  EXPECT_EQ(picked.labels().to_doubles(), (std::vector<double>{700, 701, 702, 200, 201, 202}));
  DataLoaderOptions o;
  o.batch_size = 4;
  o.seed = rng_();
  DataLoader loader(data, o);
  loader.start_epoch(1);
  int64_t rows = 0;
  while (std::optional<Batch> b = loader.next()) {
    ASSERT_EQ(b->y.dtype(), DType::i64);
    ASSERT_EQ(b->y.shape(), (Shape{b->x.dim(0), t}));
    for (int64_t r = 0; r < b->x.dim(0); ++r, ++rows) {
      const auto row = static_cast<int64_t>(b->x.data<float>()[r]);
      for (int64_t j = 0; j < t; ++j) EXPECT_EQ(b->y.data<int64_t>()[r * t + j], 100 * row + j);
    }
  }
  EXPECT_EQ(rows, n);
}

TEST_F(DataLoaderTest, TrainValSplitIsSeededDisjointAndComplete) {
  InMemoryDataset data = make_dataset(100, rng_);
  uint64_t seed = rng_();
  TrainValSplit s = split_train_val(data, 0.2, seed);
  EXPECT_EQ(s.train.size(), 80);
  EXPECT_EQ(s.val.size(), 20);
  std::set<int64_t> all;
  for (const InMemoryDataset* part : {&s.train, &s.val}) {
    std::vector<double> ids = part->labels().to_doubles();
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));  // original row order kept
    for (int64_t r = 0; r < part->size(); ++r) {
      int64_t id = part->labels().data<int64_t>()[r];
      all.insert(id);
      for (int e = 0; e < 6; ++e)
        ASSERT_EQ(part->features().data<uint8_t>()[r * 6 + e], data.features().data<uint8_t>()[id * 6 + e]);
    }
  }
  EXPECT_EQ(all.size(), 100u);
  TrainValSplit again = split_train_val(data, 0.2, seed);
  EXPECT_EQ(again.val.labels().to_doubles(), s.val.labels().to_doubles());
  TrainValSplit other = split_train_val(data, 0.2, seed + 1);
  EXPECT_NE(other.val.labels().to_doubles(), s.val.labels().to_doubles());
  EXPECT_THROW(split_train_val(data, 0.0, seed), Error);
  EXPECT_THROW(split_train_val(data, 1.0, seed), Error);
  EXPECT_THROW(split_train_val(make_dataset(1, rng_), 0.5, seed), Error);
}

TEST(DataPermutation, IsAPermutationAndRoughlyUniform) {
  // Position of element 0 over many streams: each of n slots about equally often.
  const int n = 5, trials = 20000;
  std::vector<int> counts(n, 0);
  for (int s = 0; s < trials; ++s) {
    std::vector<int64_t> p = philox_permutation(n, 12345, static_cast<uint64_t>(s));
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i);
    ++counts[std::find(p.begin(), p.end(), 0) - p.begin()];
  }
  for (int c : counts) EXPECT_NEAR(c, trials / n, 300);  // ~5 sigma
  EXPECT_TRUE(philox_permutation(0, 1, 0).empty());
}

}  // namespace
}  // namespace gpuml::data
