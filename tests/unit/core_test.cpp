// Core types: dtypes and conversions, shapes and broadcasting, views, storage, errors, Philox.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/device.h"
#include "core/error.h"
#include "core/philox.h"
#include "core/tensor.h"

namespace gpuml {
namespace {

TEST(DType, SizesNamesAndParsing) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  EXPECT_EQ(dtype_size(DType::boolean), 1u);
  for (DType d : kAllDTypes) EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
  EXPECT_EQ(dtype_from_name("float32"), DType::f32);
  try {
    dtype_from_name("f8");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::DType);
    EXPECT_NE(std::string(e.what()).find("f8"), std::string::npos);
  }
}

TEST(DType, Promotion) {
  EXPECT_EQ(promote_types(DType::f32, DType::f64), DType::f64);
  EXPECT_EQ(promote_types(DType::i64, DType::f16), DType::f16);
  EXPECT_EQ(promote_types(DType::bf16, DType::f16), DType::f32);
  EXPECT_EQ(promote_types(DType::u8, DType::i32), DType::i32);
  EXPECT_EQ(promote_types(DType::boolean, DType::u8), DType::u8);
}

TEST(DType, Bf16RoundsToNearestEven) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1e4f, 1e4f);
  for (int i = 0; i < 10000; ++i) {
    float f = dist(rng);
    float r = bf16::from_float(f).to_float();
    // The result is one of the two bf16 neighbours, the nearer one.
    EXPECT_LE(std::fabs(r - f), std::ldexp(std::fabs(f), -8)) << f;
  }
  // Exactly halfway between 1.0 and the next bf16 (1 + 2^-7): rounds to even (1.0).
  EXPECT_EQ(bf16::from_float(1.0f + std::ldexp(1.0f, -8)).to_float(), 1.0f);
  EXPECT_EQ(bf16::from_float(1.0f + 3 * std::ldexp(1.0f, -8)).to_float(), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(bf16::from_float(std::numeric_limits<float>::quiet_NaN()).to_float()));
}

TEST(DType, F16RoundTripsEveryHalf) {
  // Every finite half converts to float and back to the same bits.
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    f16 h;
    h.bits = static_cast<uint16_t>(bits);
    float f = h.to_float();
    if (std::isnan(f)) continue;
    EXPECT_EQ(f16::from_float(f).bits, h.bits) << std::hex << bits;
  }
  EXPECT_EQ(f16::from_float(65504.f).to_float(), 65504.f);
  EXPECT_TRUE(std::isinf(f16::from_float(70000.f).to_float()));
  EXPECT_EQ(f16::from_float(std::ldexp(1.0f, -24)).to_float(), std::ldexp(1.0f, -24));  // smallest subnormal
}

TEST(Shape, BroadcastAndErrors) {
  EXPECT_EQ(broadcast_shapes({3, 1}, {4}), (Shape{3, 4}));
  EXPECT_EQ(broadcast_shapes({}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(broadcast_shapes({0, 1}, {1, 5}), (Shape{0, 5}));
  try {
    broadcast_shapes({2, 3}, {4}, "add");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Shape);
    EXPECT_NE(std::string(e.what()).find("(2, 3)"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("add"), std::string::npos);
  }
  EXPECT_THROW(normalize_axis(2, 2, "sum"), Error);
  EXPECT_EQ(normalize_axis(-1, 3, "sum"), 2);
}

// Found by fuzzing IDX (issue 16): dims from a file whose product, or whose strides beside a zero
// dim, pass int64 were signed overflow (UB) instead of an error.
TEST(Shape, ElementCountsAndStridesThatOverflowAreErrors) {
  const int64_t big = int64_t{1} << 40;
  EXPECT_EQ(numel({0, big, big}), 0);
  EXPECT_THROW(numel({big, big}), Error);
  EXPECT_THROW(contiguous_strides({0, big, big}), Error);
  try {
    Tensor::empty({84606976, 0, 123492934656}, DType::u8);  // the IDX fuzzer's dims
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Shape);
    EXPECT_NE(e.message().find("too large"), std::string::npos) << e.message();
  }
  EXPECT_THROW(Tensor::empty({int64_t{1} << 62}, DType::f64), Error);  // 2^65 bytes
  EXPECT_EQ(Tensor::empty({0, big}, DType::f32).numel(), 0);
}

TEST(Tensor, StorageIs64ByteAligned) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n}, DType::u8);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  }
}

TEST(Tensor, ViewsShareStorageWithoutCopies) {
  std::vector<double> v(24);
  for (int i = 0; i < 24; ++i) v[i] = i;
  Tensor x = Tensor::from_values({2, 3, 4}, v, DType::f32);
  Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.storage(), x.storage());
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.item_as_double(1), 4.0);  // p[0,0,1] = x[0,1,0]
  Tensor s = x.slice(2, 1, 4, 2);       // columns 1 and 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.item_as_double(1), 3.0);
  EXPECT_EQ(s.storage(), x.storage());
  Tensor b = Tensor::from_values({3, 1}, {1, 2, 3}, DType::f64).broadcast_to({2, 3, 4});
  EXPECT_EQ(b.strides()[2], 0);
  EXPECT_EQ(b.item_as_double(23), 3.0);
  EXPECT_EQ(x.reshape({6, -1}).shape(), (Shape{6, 4}));
  EXPECT_THROW(p.reshape({24}), Error);  // not a view: needs a copy
  x.data<float>()[5] = 42.f;  // x[0,1,1]: the write shows through the view as p[1,0,1]
  EXPECT_EQ(p.item_as_double(1 * 6 + 0 * 3 + 1), 42.0);
}

TEST(Tensor, TypedAccessChecksDType) {
  Tensor t = Tensor::empty({2}, DType::f64);
  EXPECT_THROW(t.data<float>(), Error);
  EXPECT_NO_THROW(t.data<double>());
}

TEST(Device, Parse) {
  EXPECT_EQ(Device::parse("cpu").str(), "cpu");
  EXPECT_EQ(Device::parse("cuda:1").index, 1);
  EXPECT_THROW(Device::parse("gpu"), Error);
  EXPECT_THROW(Device::parse("cuda:x"), Error);
}

TEST(Error, MessageHasFileLineAndHint) {
  try {
    GPUML_CHECK_KIND(ErrorKind::Unsupported, false, "no kernel for {}", "conv3d");
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("core_test.cpp:"), std::string::npos) << what;
    EXPECT_NE(what.find("no kernel for conv3d"), std::string::npos);
    EXPECT_NE(what.find("hint:"), std::string::npos);
    EXPECT_EQ(e.message(), "no kernel for conv3d");
    return;
  }
  FAIL();
}

// Random123's published known-answer vectors for Philox4x32-10.
TEST(Philox, KnownAnswerVectors) {
  PhiloxBlock zero = philox4x32_10(PhiloxBlock{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  PhiloxBlock ones = philox4x32_10(PhiloxBlock{{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
}

TEST(Philox, StreamsAreCounterBasedAndWellDistributed) {
  // Element i depends only on (seed, offset, i): a shifted offset reads the same numbers.
  EXPECT_EQ(philox_bits(7, 10, 4 * 3 + 1), philox_bits(7, 13, 1));
  EXPECT_NE(philox_bits(7, 10, 0), philox_bits(8, 10, 0));
  const int n = 200000;
  double sum = 0, sum_sq = 0, nsum = 0, nsum_sq = 0;
  for (int i = 0; i < n; ++i) {
    float u = philox_uniform(42, 0, i);
    ASSERT_GE(u, 0.f);
    ASSERT_LT(u, 1.f);
    sum += u;
    sum_sq += u * u;
    double z = philox_normal(42, 0, i);
    nsum += z;
    nsum_sq += z * z;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sum_sq / n - 0.25, 1.0 / 12, 0.003);
  EXPECT_NEAR(nsum / n, 0.0, 0.01);
  EXPECT_NEAR(nsum_sq / n, 1.0, 0.02);
}

}  // namespace
}  // namespace gpuml
