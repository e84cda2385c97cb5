// Executor run options: outputs written into caller buffers, and per-run random offsets.
#include <gtest/gtest.h>

#include <random>

#include "graph/executor.h"

namespace gpuml {
namespace {

Tensor random_tensor(const Shape& shape, std::mt19937_64& rng) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  std::normal_distribution<double> dist;
  for (double& x : v) x = dist(rng);
  return Tensor::from_values(shape, v, DType::f32);
}

TEST(ExecutorOptions, DonatedOutputBufferGetsTheSameNumbersWithoutTheArena) {
  std::mt19937_64 rng(std::random_device{}());
  Graph g;
  Sym x = g.input("x", {{5, 7}, DType::f32});
  Sym w = g.input("w", {{7, 3}, DType::f32});
  Sym y = relu(matmul(x, w));
  Sym s = sum(y);
  Executor ex(plan_graph(g, {y, s}));
  std::map<std::string, Tensor> feeds{{"x", random_tensor({5, 7}, rng)}, {"w", random_tensor({7, 3}, rng)}};
  std::vector<Tensor> plain = ex.run(feeds);
  Tensor buffer = Tensor::empty({5, 3}, DType::f32);
  RunOptions options;
  options.output_buffers[0] = buffer;
  std::vector<Tensor> donated = ex.run(feeds, options);
  EXPECT_EQ(donated[0].raw_data(), buffer.raw_data());  // written in place, not copied out
  EXPECT_EQ(donated[0].to_doubles(), plain[0].to_doubles());
  EXPECT_EQ(donated[1].to_doubles(), plain[1].to_doubles());  // consumers read the buffer
  // The next plain run still works from the arena.
  EXPECT_EQ(ex.run(feeds)[0].to_doubles(), plain[0].to_doubles());
}

TEST(ExecutorOptions, DonatedBufferErrors) {
  Graph g;
  Sym x = g.input("x", {{4}, DType::f32});
  Sym y = exp(x);
  Executor ex(plan_graph(g, {y}));
  Tensor xin = Tensor::from_values({4}, {0.5, 1, 2, 3}, DType::f32);
  RunOptions wrong_shape;
  wrong_shape.output_buffers[0] = Tensor::empty({5}, DType::f32);
  EXPECT_THROW(ex.run({{"x", xin}}, wrong_shape), Error);
  RunOptions aliased;
  aliased.output_buffers[0] = xin;
  EXPECT_THROW(ex.run({{"x", xin}}, aliased), Error);
  RunOptions bad_index;
  bad_index.output_buffers[3] = Tensor::empty({4}, DType::f32);
  EXPECT_THROW(ex.run({{"x", xin}}, bad_index), Error);
}

TEST(ExecutorOptions, RngOffsetShiftsEveryRandomOp) {
  Graph g;
  Sym x = g.input("x", {{64}, DType::f32});
  Sym y = dropout(x, 0.5, /*seed*/ 11, /*offset*/ 0);
  Executor ex(plan_graph(g, {y}));
  std::mt19937_64 rng(std::random_device{}());
  Tensor xin = random_tensor({64}, rng);
  std::vector<double> a = ex.run({{"x", xin}})[0].to_doubles();
  RunOptions shifted;
  shifted.rng_offset = 16;  // 16 Philox blocks = 64 numbers further on
  std::vector<double> b = ex.run({{"x", xin}}, shifted)[0].to_doubles();
  EXPECT_NE(a, b);
  // The same draw as a graph whose dropout starts at offset 16.
  Graph g2;
  Sym x2 = g2.input("x", {{64}, DType::f32});
  Executor ex2(plan_graph(g2, {dropout(x2, 0.5, 11, 16)}));
  EXPECT_EQ(ex2.run({{"x", xin}})[0].to_doubles(), b);
}

}  // namespace
}  // namespace gpuml
