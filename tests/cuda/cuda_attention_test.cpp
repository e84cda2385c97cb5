// The CUDA attention kernels (cuda_attention.cu) against ref at the sizes a GPT runs (label
// `cuda`; skipped without a GPU): sequence lengths past several tiles and not multiples of them,
// head dims 16 to 128, causal and not, a decode step, dropout, f32 and bf16; forward (o, lse) and
// backward (dq, dk, dv). The op samples (CudaOp.MatchesRef/attention*) cover the small odd shapes.
#include <gtest/gtest.h>

#include <random>

#include "backend/dispatch.h"
#include "op_samples.h"
#include "ops/build.h"

namespace gpuml {
namespace {

Backend* cuda_backend() { return backend_registry().find("cuda"); }

Tensor random_tensor(const Shape& shape, std::mt19937_64& rng, DType dtype) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = std::normal_distribution<double>(0.0, 1.0)(rng);
  return Tensor::from_values(shape, v, dtype);
}

TEST(CudaAttention, MatchesRefAtModelSizes) {
  Backend* gpu = cuda_backend();
  if (!gpu) GTEST_SKIP() << "no CUDA backend: " << backend_registry().cuda_status();
  Backend& ref = backend_registry().reference();
  const uint64_t seed = std::random_device{}();
  std::mt19937_64 rng(seed);
  SCOPED_TRACE(fmt::format("seed {}", seed));
  struct Case {
    int64_t b, h, tq, tk, d;
    bool causal;
    double p;
  };
  const Case cases[] = {
      {2, 3, 130, 130, 64, true, 0.0},  {1, 2, 65, 65, 80, false, 0.0}, {1, 2, 200, 200, 128, true, 0.0},
      {2, 2, 1, 150, 64, true, 0.0},    {1, 1, 7, 300, 16, true, 0.0},  {2, 2, 97, 97, 32, true, 0.2},
      {1, 2, 33, 70, 48, false, 0.1},
  };
  for (DType dtype : {DType::f32, DType::bf16})
    for (const Case& c : cases) {
      SCOPED_TRACE(fmt::format("{} B {} H {} Tq {} Tk {} D {} causal {} p {}", dtype, c.b, c.h, c.tq, c.tk, c.d,
                               c.causal, c.p));
      const Attrs a = attention_attrs(c.causal, c.p, 42, 9);
      const Tensor q = random_tensor({c.b, c.h, c.tq, c.d}, rng, dtype);
      const Tensor k = random_tensor({c.b, c.h, c.tk, c.d}, rng, dtype);
      const Tensor v = random_tensor({c.b, c.h, c.tk, c.d}, rng, dtype);
      const Tensor dout = random_tensor({c.b, c.h, c.tq, c.d}, rng, dtype);
      // f32 accumulation of up to 300 terms; bf16 outputs round to 8 bits.
      const double tol = dtype == DType::bf16 ? 3e-2 : 2e-4;
      std::vector<Tensor> want = run_op_outputs(ref, OpId::attention, {q, k, v}, a);
      std::vector<Tensor> got =
          run_op_outputs(*gpu, OpId::attention, {to_backend(q, *gpu), to_backend(k, *gpu), to_backend(v, *gpu)}, a);
      ASSERT_EQ(got.size(), 2u);
      EXPECT_TRUE(testing::all_close(to_backend(got[0], ref), want[0], tol)) << "o";
      EXPECT_TRUE(testing::all_close(to_backend(got[1], ref), want[1], 1e-4)) << "lse";
      const std::vector<Tensor> inputs{q, k, v, want[0], dout, want[1]};
      std::vector<Tensor> device_inputs;
      for (const Tensor& t : inputs) device_inputs.push_back(to_backend(t, *gpu));
      std::vector<Tensor> want_grads = run_op_outputs(ref, OpId::attention_backward, inputs, a);
      std::vector<Tensor> got_grads = run_op_outputs(*gpu, OpId::attention_backward, device_inputs, a);
      const char* names[] = {"dq", "dk", "dv"};
      for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(testing::all_close(to_backend(got_grads[i], ref), want_grads[i], dtype == DType::bf16 ? 5e-2 : 5e-4))
            << names[i];
    }
}

// Head dims past the kernel's 128 are a placement decision (supports() says no), not a failure.
TEST(CudaAttention, HeadDimsOver128AreLeftToTheCpu) {
  Backend* gpu = cuda_backend();
  if (!gpu) GTEST_SKIP() << "no CUDA backend: " << backend_registry().cuda_status();
  auto query = [](int64_t d, DType dtype) {
    const TensorType t{{1, 2, 8, d}, dtype};
    return OpQuery{OpId::attention, {t, t, t}, t, {}};
  };
  EXPECT_TRUE(gpu->supports(query(128, DType::f32)));
  EXPECT_TRUE(gpu->supports(query(64, DType::bf16)));
  EXPECT_FALSE(gpu->supports(query(160, DType::f32)));
  EXPECT_FALSE(gpu->supports(query(64, DType::f64)));
}

}  // namespace
}  // namespace gpuml
