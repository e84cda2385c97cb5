// The op harness: every sample of the op test table (tests/op_samples.cpp), in every dtype its type
// rule accepts, on every registered backend but ref, compared with the reference backend on fresh
// random inputs. New backends and new ops are picked up from the registry and the tables; nothing
// here lists either.
//
// Test names read backend_op_label_dtype, e.g. OpHarness/BackendMatchesRef.Run/cpu_matmul_trans_ab_f32.
// Inputs are drawn from a per-run seed (printed on failure): rerun with GPUML_TEST_SEED=<seed> or
// --gtest_random_seed=<seed> to reproduce.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>

#include "backend/dispatch.h"
#include "op_samples.h"

namespace gpuml {
namespace {

using testing::make_sample_inputs;
using testing::op_samples;
using testing::OpSample;
using testing::tolerance_for;
using testing::all_close;

// --- cases ------------------------------------------------------------------------------------

uint64_t run_seed() {
  static const uint64_t seed = []() -> uint64_t {
    if (const char* env = std::getenv("GPUML_TEST_SEED")) return std::stoull(env);
    int flag = GTEST_FLAG_GET(random_seed);
    if (flag != 0) return static_cast<uint64_t>(flag);
    return static_cast<uint64_t>(std::random_device{}());
  }();
  return seed;
}

// A sample with the test's dtype applied: input-less (creation, random) ops take it as their
// output dtype, everything else as the dtype of its data inputs (make_sample_inputs).
OpSample sample_in_dtype(const OpSample& sample, DType dtype) {
  OpSample s = sample;
  if (s.inputs.empty()) s.attrs.dtype = dtype;
  return s;
}

std::vector<TensorType> input_types(const std::vector<Tensor>& inputs) {
  std::vector<TensorType> types;
  for (const Tensor& t : inputs) types.push_back(type_of(t));
  return types;
}

// The type of output 0 of `sample` in `dtype`, or nothing when the type rule rejects that dtype.
std::optional<TensorType> accepted_type(const OpSample& sample, const std::vector<Tensor>& inputs) {
  try {
    return infer_types(sample.op, input_types(inputs), sample.attrs)[0];
  } catch (const Error&) {
    return std::nullopt;
  }
}

// Every output of the op on `backend` (matmul_bgrad has two), as host tensors ref can read.
std::vector<Tensor> outputs_on_ref(Backend& backend, const OpSample& sample, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  for (const Tensor& t : run_op_outputs(backend, sample.op, inputs, sample.attrs))
    out.push_back(to_backend(t, backend_registry().get("ref")));
  return out;
}

std::string sanitized(std::string name) {
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

struct HarnessCase {
  std::string backend;
  size_t sample_index = 0;
  DType dtype = DType::f32;
  std::string name;  // backend_op_label_dtype
};

void PrintTo(const HarnessCase& c, std::ostream* os) { *os << c.name; }

// Every (backend, sample, dtype) the type rule accepts and the backend supports. A dtype that
// changes no input type (an index-only op, say) adds no duplicate case.
std::vector<HarnessCase> cases_for(const std::vector<Backend*>& backends) {
  std::vector<HarnessCase> cases;
  for (Backend* backend : backends) {
    for (size_t i = 0; i < op_samples().size(); ++i) {
      std::set<std::vector<DType>> seen_signatures;
      for (DType dtype : kAllDTypes) {
        OpSample sample = sample_in_dtype(op_samples()[i], dtype);
        std::vector<Tensor> inputs = make_sample_inputs(sample, dtype, 0);
        std::optional<TensorType> out = accepted_type(sample, inputs);
        if (!out) continue;
        std::vector<DType> signature{out->dtype};
        for (const Tensor& t : inputs) signature.push_back(t.dtype());
        if (!seen_signatures.insert(signature).second) continue;
        std::vector<TensorType> types = input_types(inputs);
        if (!backend->supports(OpQuery{sample.op, types, *out, sample.attrs})) continue;
        std::string name = sanitized(fmt::format("{}_{}_{}_{}", backend->name(), op_name(sample.op),
                                                 sample.label, dtype_name(dtype)));
        cases.push_back({std::string(backend->name()), i, dtype, name});
      }
    }
  }
  return cases;
}

std::vector<Backend*> non_ref_backends() {
  std::vector<Backend*> out;
  for (Backend* b : backend_registry().all())
    if (b->name() != "ref") out.push_back(b);
  return out;
}

// --- moving inputs to a backend ---------------------------------------------------------------

// `t` as the backend sees it. Host backends share host memory, so the tensor (a non-contiguous
// view included) is passed as it is; for a device backend the whole underlying storage is copied
// and the same view (shape, strides, offset) rebuilt on it, so strided kernels are exercised too.
Tensor on_backend(const Tensor& t, Backend& backend) {
  if (backend.device() == t.device()) return t;
  const std::shared_ptr<Storage>& host = t.storage();
  std::shared_ptr<Storage> device = Storage::make(backend, host->bytes());
  backend.copy_to_device(device->data(), host->data(), host->bytes());
  backend.synchronize();
  return Tensor(device, t.shape(), t.strides(), t.offset(), t.dtype());
}

// --- comparison -------------------------------------------------------------------------------


// Integer and bool outputs must match exactly (tolerance_for gives 0); random ops draw the same
// Philox numbers everywhere, so they agree to f32 rounding.
double tolerance_of(OpId op, DType out) {
  double tol = tolerance_for(out);
  if (op_info(op).kind == OpKind::Random && out == DType::f32) tol = 1e-6;
  return tol;
}

// --- (a) coverage -----------------------------------------------------------------------------

TEST(OpHarnessCoverage, EveryOpHasASample) {
  std::set<OpId> sampled;
  for (const OpSample& s : op_samples()) sampled.insert(s.op);
  for (OpId op : all_ops()) EXPECT_TRUE(sampled.count(op)) << op_name(op) << " has no row in op_samples()";
}

TEST(OpHarnessCoverage, RefSupportsEveryOp) {
  Backend& ref = backend_registry().get("ref");
  for (OpId op : all_ops())
    EXPECT_FALSE(ref.supported_dtypes(op).empty()) << "ref has no kernel for " << op_name(op);
}

// ref is the fallback for everything: every dtype a type rule accepts must have a ref kernel.
TEST(OpHarnessCoverage, RefSupportsEveryAcceptedDtypeOfEverySample) {
  Backend& ref = backend_registry().get("ref");
  for (const OpSample& base : op_samples())
    for (DType dtype : kAllDTypes) {
      OpSample sample = sample_in_dtype(base, dtype);
      std::vector<Tensor> inputs = make_sample_inputs(sample, dtype, 0);
      std::optional<TensorType> out = accepted_type(sample, inputs);
      if (!out) continue;
      EXPECT_TRUE(ref.supports(sample.op, dispatch_dtype_of(sample.op, input_types(inputs), *out)))
          << op_name(sample.op) << "/" << sample.label << " in " << dtype_name(dtype);
    }
}

// --- (b) every backend against ref ------------------------------------------------------------

class BackendMatchesRef : public ::testing::TestWithParam<HarnessCase> {};

TEST_P(BackendMatchesRef, Run) {
  const HarnessCase& c = GetParam();
  Backend& backend = backend_registry().get(c.backend);
  Backend& ref = backend_registry().get("ref");
  OpSample sample = sample_in_dtype(op_samples()[c.sample_index], c.dtype);
  const uint64_t seed = run_seed() ^ std::hash<std::string>{}(c.name);
  SCOPED_TRACE(fmt::format("seed {} (GPUML_TEST_SEED={})", seed, run_seed()));
  std::vector<Tensor> inputs = make_sample_inputs(sample, c.dtype, seed);

  std::vector<Tensor> device_inputs;
  for (const Tensor& t : inputs) device_inputs.push_back(on_backend(t, backend));
  std::vector<Tensor> want = outputs_on_ref(ref, sample, inputs);
  std::vector<Tensor> got = outputs_on_ref(backend, sample, device_inputs);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(all_close(got[i], want[i], tolerance_of(sample.op, want[i].dtype()))) << "output " << i;
}

INSTANTIATE_TEST_SUITE_P(OpHarness, BackendMatchesRef, ::testing::ValuesIn(cases_for(non_ref_backends())),
                         [](const ::testing::TestParamInfo<HarnessCase>& info) { return info.param.name; });
// With ref as the only backend there is nothing to compare.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackendMatchesRef);

// --- empty tensors on every backend, ref included ---------------------------------------------

bool has_empty_input(const OpSample& s) {
  for (const testing::InputSpec& in : s.inputs)
    if (numel(in.shape) == 0) return true;
  return false;
}

std::vector<HarnessCase> empty_cases() {
  std::vector<HarnessCase> out;
  for (HarnessCase& c : cases_for(backend_registry().all()))
    if (has_empty_input(op_samples()[c.sample_index])) out.push_back(std::move(c));
  return out;
}

class EmptyTensors : public ::testing::TestWithParam<HarnessCase> {};

TEST_P(EmptyTensors, GiveTheInferredShape) {
  const HarnessCase& c = GetParam();
  Backend& backend = backend_registry().get(c.backend);
  OpSample sample = sample_in_dtype(op_samples()[c.sample_index], c.dtype);
  std::vector<Tensor> inputs;
  for (const Tensor& t : make_sample_inputs(sample, c.dtype, run_seed())) inputs.push_back(on_backend(t, backend));
  std::vector<TensorType> expected = infer_types(sample.op, input_types(inputs), sample.attrs);
  std::vector<Tensor> out = outputs_on_ref(backend, sample, inputs);
  // A reduction of an empty axis still has elements: they must agree with ref (sum 0, mean NaN).
  std::vector<Tensor> want =
      outputs_on_ref(backend_registry().get("ref"), sample, make_sample_inputs(sample, c.dtype, run_seed()));
  ASSERT_EQ(out.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(out[i].shape(), expected[i].shape);
    EXPECT_EQ(out[i].dtype(), expected[i].dtype);
    EXPECT_TRUE(all_close(out[i], want[i], tolerance_for(want[i].dtype()))) << "output " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(OpHarness, EmptyTensors, ::testing::ValuesIn(empty_cases()),
                         [](const ::testing::TestParamInfo<HarnessCase>& info) { return info.param.name; });

// --- errors: typed, naming the op and the problem ---------------------------------------------

// Runs `fn` and checks it throws a gpuml::Error of `kind` whose message has every word of `words`.
void expect_error(const std::function<void()>& fn, ErrorKind kind, const std::vector<std::string>& words) {
  try {
    fn();
    ADD_FAILURE() << "expected a " << error_kind_name(kind) << " error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const std::string& w : words) EXPECT_NE(e.message().find(w), std::string::npos) << "'" << w << "' not in: " << e.message();
  }
}

Tensor random_tensor(const Shape& shape, DType dtype) {
  std::mt19937_64 rng(run_seed());
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = std::normal_distribution<double>(0.0, 1.0)(rng);
  return Tensor::from_values(shape, v, dtype);
}

TEST(OpHarnessErrors, ShapeMismatchNamesOpAndShapes) {
  for (Backend* b : backend_registry().all())
    expect_error([&] { run_op(*b, OpId::add, {random_tensor({2, 3}, DType::f32), random_tensor({4}, DType::f32)}); },
                 ErrorKind::Shape, {"add", "(2, 3)", "(4,)"});
}

TEST(OpHarnessErrors, BadAxisNamesOpAndAxis) {
  Attrs a;
  a.axes = {5};
  for (Backend* b : backend_registry().all())
    expect_error([&] { run_op(*b, OpId::sum, {random_tensor({2, 3}, DType::f32)}, a); }, ErrorKind::Shape,
                 {"sum", "axis 5", "2 dims"});
}

TEST(OpHarnessErrors, UnsupportedDtypeNamesOpAndDtype) {
  for (Backend* b : backend_registry().all())
    expect_error([&] { run_op(*b, OpId::exp, {random_tensor({3}, DType::i32)}); }, ErrorKind::DType,
                 {"exp", "i32"});
}

// A backend with no kernels at all: every slot is empty.
class NoKernelsBackend final : public Backend {
 public:
  std::string_view name() const override { return "no_kernels"; }
  std::string description() const override { return "test backend without kernels"; }
  Device device() const override { return {}; }
  void* allocate(size_t bytes) override { return host_allocator().allocate(bytes); }
  void deallocate(void* p, size_t bytes) override { host_allocator().deallocate(p, bytes); }
};

TEST(OpHarnessErrors, EmptySlotIsUnsupportedNamingOpDtypeAndBackend) {
  NoKernelsBackend backend;
  Tensor x = random_tensor({3}, DType::f32);
  Tensor out = Tensor::empty({3}, DType::f32);
  Attrs attrs;
  std::vector<Tensor> inputs{x};
  expect_error([&] { backend.run(OpId::relu, KernelCall{backend, inputs, out, attrs}); }, ErrorKind::Unsupported,
               {"relu", "f32", "no_kernels"});
  expect_error([&] { run_op(backend, OpId::relu, {x}); }, ErrorKind::Unsupported, {"relu"});
}

}  // namespace
}  // namespace gpuml
