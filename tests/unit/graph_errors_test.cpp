#include <gtest/gtest.h>

#include <memory>

#include "graph/autodiff.h"
#include "graph/executor.h"

namespace gpuml {
namespace {

// Runs fn, expecting a gpuml::Error of `kind` whose message contains every one of `words`.
template <typename Fn>
void expect_error(Fn&& fn, ErrorKind kind, std::vector<std::string> words) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const std::string& w : words) EXPECT_NE(e.message().find(w), std::string::npos) << "'" << w << "' not in: " << e.message();
  }
}

TEST(GraphErrors, ShapeMismatchThrowsAtEmitNamingTheOp) {
  Graph g;
  Sym a = g.input("a", {{3, 4}, DType::f32});
  Sym b = g.input("b", {{5}, DType::f32});
  expect_error([&] { add(a, b); }, ErrorKind::Shape, {"add", "(3, 4)", "(5,)"});
  Sym w = g.param("w", {{5, 2}, DType::f32});
  expect_error([&] { matmul(a, w); }, ErrorKind::Shape, {"matmul"});
  EXPECT_EQ(g.size(), 3) << "a failed emit must not add a node";
}

TEST(GraphErrors, DTypeMismatchThrowsAtEmit) {
  Graph g;
  Sym i = g.input("i", {{3}, DType::i64});
  expect_error([&] { exp(i); }, ErrorKind::DType, {"exp"});
}

TEST(GraphErrors, DuplicateLeafNameIsRejected) {
  Graph g;
  g.input("x", {{1}, DType::f32});
  expect_error([&] { g.param("x", {{1}, DType::f32}); }, ErrorKind::Invalid, {"x"});
}

TEST(GraphErrors, LossMustBeScalar) {
  Graph g;
  Sym x = g.input("x", {{3}, DType::f32});
  expect_error([&] { gradients(g, exp(x), {x}); }, ErrorKind::Shape, {"scalar"});
}

// A Sym holds a handle to its graph, not a raw pointer: once the graph is gone, every use of
// the Sym (its type, building on it, planning it) is an Invalid error, not a read of freed memory.
TEST(GraphErrors, SymOutlivingItsGraphIsAClearError) {
  Sym x, y;
  {
    auto g = std::make_unique<Graph>();
    x = g->input("x", {{2, 3}, DType::f32});
    y = relu(x);
    EXPECT_EQ(y.shape(), (Shape{2, 3}));
  }
  const std::vector<std::string> words{"this value's graph no longer exists"};
  expect_error([&] { (void)y.shape(); }, ErrorKind::Invalid, words);
  expect_error([&] { exp(y); }, ErrorKind::Invalid, words);
  expect_error([&] { add(x, y); }, ErrorKind::Invalid, words);
  // A new graph (perhaps at the same address) does not adopt the old values.
  Graph other;
  Sym z = other.input("x", {{2, 3}, DType::f32});
  EXPECT_FALSE(y.belongs_to(other));
  expect_error([&] { plan_graph(other, {y}); }, ErrorKind::Invalid, {"not in this graph"});
  expect_error([&] { add(z, y); }, ErrorKind::Invalid, words);
  EXPECT_EQ(add(z, z).shape(), (Shape{2, 3})) << "the live graph's own values still build";
}

TEST(GraphErrors, DefaultSymBelongsToNoGraph) {
  Sym s;
  expect_error([&] { (void)s.dtype(); }, ErrorKind::Invalid, {"belongs to no graph"});
}

class FeedErrors : public ::testing::Test {
 protected:
  FeedErrors() {
    Sym x = g.input("pixels", {{2, 3}, DType::f32});
    Sym w = g.param("weights", {{3}, DType::f32});
    out = mul(x, w);
  }
  Tensor make(const Shape& s, DType d) {
    std::vector<double> v(static_cast<size_t>(numel(s)), 0.5);
    return Tensor::from_values(s, v, d);
  }
  Graph g;
  Sym out;
};

TEST_F(FeedErrors, MissingFeedNamesTheInput) {
  Executor ex(plan_graph(g, {out}));
  expect_error([&] { ex.run({{"pixels", make({2, 3}, DType::f32)}}); }, ErrorKind::Invalid, {"weights", "(3,)"});
}

TEST_F(FeedErrors, MisShapedFeedNamesTheInput) {
  Executor ex(plan_graph(g, {out}));
  expect_error([&] { ex.run({{"pixels", make({3, 2}, DType::f32)}, {"weights", make({3}, DType::f32)}}); },
               ErrorKind::Shape, {"pixels", "(3, 2)", "(2, 3)"});
}

TEST_F(FeedErrors, WrongDTypeFeedNamesTheInput) {
  Executor ex(plan_graph(g, {out}));
  expect_error([&] { ex.run({{"pixels", make({2, 3}, DType::f64)}, {"weights", make({3}, DType::f32)}}); },
               ErrorKind::DType, {"pixels", "f64", "f32"});
}

TEST_F(FeedErrors, CorrectFeedsRun) {
  Executor ex(plan_graph(g, {out}));
  std::vector<Tensor> y = ex.run({{"pixels", make({2, 3}, DType::f32)}, {"weights", make({3}, DType::f32)}});
  ASSERT_EQ(y[0].shape(), (Shape{2, 3}));
  EXPECT_FLOAT_EQ(static_cast<float>(y[0].item_as_double(5)), 0.25f);
}

}  // namespace
}  // namespace gpuml
