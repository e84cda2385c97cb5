// matmul on cuBLASLt: f32 (tf32 tensor cores when the planner allows it), f64, bf16 and f16 (f32
// accumulation), transposes, and batches as strided batches (a broadcast operand gets stride 0;
// a partially broadcast one is materialised first).
//
// matmul_bias_act (made by the planner from matmul + bias add + relu/gelu) runs as one cuBLASLt
// call with the BIAS, RELU_BIAS or GELU_BIAS epilogue. cuBLASLt's GELU is the tanh form, so the
// erf form takes the BIAS epilogue and one in-place gelu kernel. If cuBLASLt offers no algorithm
// with the epilogue, the plain product is followed by in-place bias-add and activation kernels.
//
// matmul_bgrad (made by the planner from a weight-gradient matmul and its bias-gradient row sum)
// is one cuBLASLt call with the BGRADA or BGRADB epilogue, or its two parts where there is none.
//
// matmul_dact (made by the planner from the gradient g W reaching a relu or gelu and that
// activation's backward) is one cuBLASLt call with the DRELU or DGELU epilogue, or its two parts.
//
// cuBLASLt is column-major; a row-major (M, N) C is a column-major (N, M) C^T = B^T A^T, so the
// operands are passed swapped and nothing is transposed in memory.
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_glue.h"
#include "backend/cuda/drelu_probe.h"
#include "backend/dispatch.h"

namespace gpuml::cuda {

namespace {

constexpr size_t kMatmulWorkspace = size_t{32} << 20;

#define GPUML_CUBLAS_CHECK(expr)                                                                              \
  do {                                                                                                        \
    cublasStatus_t gpuml_st_ = (expr);                                                                        \
    GPUML_CHECK_KIND(ErrorKind::Internal, gpuml_st_ == CUBLAS_STATUS_SUCCESS, "cuda matmul: {} failed: status {}", \
                     #expr, static_cast<int>(gpuml_st_));                                                      \
  } while (0)

// Frees cuBLASLt descriptors on every path out (errors included).
template <typename T, cublasStatus_t (*Destroy)(T)>
struct LtHandle {
  T h = nullptr;
  ~LtHandle() {
    if (h) Destroy(h);
  }
};

struct TypeInfo {
  cudaDataType_t data, scale;
  cublasComputeType_t compute;
};

// allow_tf32 (Attrs, set by the planner for --precision tf32): f32 on TF32 tensor cores.
TypeInfo type_info(DType d, bool tf32) {
  switch (d) {
    case DType::f32: return {CUDA_R_32F, CUDA_R_32F, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F};
    case DType::f64: return {CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F};
    case DType::bf16: return {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F};
    case DType::f16: return {CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F};
    default: GPUML_FAIL(ErrorKind::Unsupported, "cuda matmul: dtype {} not supported", d);
  }
}

// The operand as a (batch, rows, cols) contiguous block and its batch stride: the whole batch,
// one matrix shared by every batch (stride 0), or a broadcast materialised into `holder`.
int64_t batch_stride(const KernelCall& c, const Tensor& t, const Shape& batch, int64_t batch_count, Tensor& holder) {
  const int64_t matrix = t.dim(-2) * t.dim(-1);
  const int64_t own = t.numel() / std::max<int64_t>(matrix, 1);
  if (own == batch_count) {
    holder = t;
    return matrix;
  }
  if (own == 1) {
    holder = t;
    return 0;
  }
  Shape full = batch;
  full.push_back(t.dim(-2));
  full.push_back(t.dim(-1));
  Tensor view = t.broadcast_to(full);
  holder = Tensor::empty(full, t.dtype(), c.backend);
  launch("matmul", [&] {
    launch_strided_copy(static_cast<int>(dtype_size(t.dtype())), view_of(view), view_of(holder),
                        layout_of(full, "matmul"), cuda_backend_of(c).stream_of(c));
  });
  return matrix;
}

// The largest power of two (up to 256) that divides the address. cuBLASLt assumes 256-byte
// aligned operands unless told otherwise; ours may sit at any element offset (parameters are
// slices of one flat buffer, arena values at 64-byte offsets).
uint32_t alignment_of(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

// The cuBLASLt epilogue for matmul_bias_act's activation; the erf gelu is applied afterwards.
cublasLtEpilogue_t epilogue_of(const Attrs& a) {
  if (a.activation == Activation::relu) return CUBLASLT_EPILOGUE_RELU_BIAS;
  if (a.activation == Activation::gelu && a.gelu_tanh) return CUBLASLT_EPILOGUE_GELU_BIAS;
  return CUBLASLT_EPILOGUE_BIAS;
}

// In place on the contiguous output: + bias (broadcast over rows) if `add_bias`, then the
// activation if `activate`.
void bias_and_activation(const KernelCall& c, bool add_bias, bool activate) {
  const Shape& shape = c.output.shape();
  const cudaStream_t stream = cuda_backend_of(c).stream_of(c);
  const ElemType t = elem_type(c.output.dtype());
  const StridedView out = view_of(c.output);
  launch("matmul_bias_act", [&] {
    if (add_bias)
      launch_binary(BinaryOp::add, t, out, view_over(c.inputs[2], shape), c.output.raw_data(),
                    layout_of(shape, "matmul_bias_act"), stream);
    if (activate)
      launch_unary(c.attrs.activation == Activation::relu ? UnaryOp::relu : UnaryOp::gelu, t, out,
                   c.output.raw_data(), layout_of(shape, "matmul_bias_act"), c.attrs.gelu_tanh, stream);
  });
}

// matmul_bgrad's bias gradient: where cuBLASLt writes it, and which operand it sums.
struct BiasGrad {
  void* out;
  int64_t axis;  // 0: our a (cuBLASLt's B, BGRADB); 1: our b (cuBLASLt's A, BGRADA)
};

// matmul_dact's epilogue and what it reads: DGELU gelu's input, DRELU a bit mask of relu's output.
struct DactAux {
  cublasLtEpilogue_t epilogue;
  const void* aux;
  int64_t ld;  // the aux's leading dim: elements (DGELU), bits (DRELU)
};

// matmul, or matmul_bias_act when `fused`, or the product with a BGRAD epilogue when `bgrad` or a
// DRELU/DGELU epilogue when `dact`; false (nothing done) when cuBLASLt has no algorithm with the
// BGRAD/DRELU/DGELU epilogue.
bool run_matmul(const KernelCall& c, bool fused, const BiasGrad* bgrad = nullptr, const DactAux* dact = nullptr) {
  CudaBackend& gpu = cuda_backend_of(c);
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  MatmulDims dims = matmul_dims(a.shape(), b.shape(), c.attrs);
  const int64_t m = dims.m, n = dims.n, k = dims.k;
  const int64_t batch = numel(dims.batch);
  const cudaStream_t stream = gpu.stream_of(c);
  if ((bgrad != nullptr || dact != nullptr) && (k == 0 || c.output.numel() == 0)) return false;
  if (c.output.numel() == 0) return true;
  if (k == 0) {
    GPUML_CUDA_CHECK(cudaMemsetAsync(c.output.raw_data(), 0, c.output.nbytes(), stream), "matmul");
    if (fused) bias_and_activation(c, true, c.attrs.activation != Activation::none);
    return true;
  }
  Tensor a_mem, b_mem;
  const int64_t a_stride = batch_stride(c, a, dims.batch, batch, a_mem);
  const int64_t b_stride = batch_stride(c, b, dims.batch, batch, b_mem);
  const TypeInfo ti = type_info(c.output.dtype(), c.attrs.allow_tf32);

  LtHandle<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy> op;
  GPUML_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op.h, ti.compute, ti.scale));
  // Swapped operands: first = B (column-major n x k, or k x n transposed), second = A.
  cublasOperation_t op_first = c.attrs.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_second = c.attrs.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  GPUML_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
  GPUML_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
  // The bias is per row of the swapped column-major C^T (n x m): per column of the row-major C.
  // Epilogue kernels read the bias in 16-byte vectors: a bias at a smaller alignment takes the
  // in-place kernels after a plain product instead.
  const bool use_epilogue = fused && alignment_of(c.inputs[2].raw_data()) >= 16;
  cublasLtEpilogue_t epilogue = use_epilogue ? epilogue_of(c.attrs) : CUBLASLT_EPILOGUE_DEFAULT;
  if (use_epilogue) {
    const void* bias = c.inputs[2].raw_data();
    GPUML_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    GPUML_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  if (bgrad != nullptr) {  // the sum over k of the summed operand, written beside the product
    epilogue = bgrad->axis == 0 ? CUBLASLT_EPILOGUE_BGRADB : CUBLASLT_EPILOGUE_BGRADA;
    GPUML_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    GPUML_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bgrad->out, sizeof(bgrad->out)));
  }
  if (dact != nullptr) {  // the product times the activation's derivative, read from the aux
    epilogue = dact->epilogue;
    GPUML_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    GPUML_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &dact->aux, sizeof(dact->aux)));
    GPUML_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &dact->ld, sizeof(dact->ld)));
  }

  // Column-major layouts (rows, cols, leading dim) of the swapped problem C^T (n x m) = B^T A^T.
  LtHandle<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy> la, lb, lc;
  const uint64_t first_rows = c.attrs.trans_b ? k : n, first_cols = c.attrs.trans_b ? n : k;
  const uint64_t second_rows = c.attrs.trans_a ? m : k, second_cols = c.attrs.trans_a ? k : m;
  GPUML_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la.h, ti.data, first_rows, first_cols, first_rows));
  GPUML_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb.h, ti.data, second_rows, second_cols, second_rows));
  GPUML_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc.h, ti.data, n, m, n));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    const int64_t c_stride = m * n;
    auto set_batch = [&](cublasLtMatrixLayout_t l, int64_t stride) {
      GPUML_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
      GPUML_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    };
    set_batch(la.h, b_stride);
    set_batch(lb.h, a_stride);
    set_batch(lc.h, c_stride);
  }

  LtHandle<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy> pref;
  GPUML_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.h));
  const size_t ws_bytes = kMatmulWorkspace;
  GPUML_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.h, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                          sizeof(ws_bytes)));
  // The swapped problem: cuBLASLt's A is our b, its B our a, C and D our output.
  const uint32_t align_a = alignment_of(b_mem.raw_data()), align_b = alignment_of(a_mem.raw_data());
  const uint32_t align_c = alignment_of(c.output.raw_data());
  for (auto [attr, value] : {std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a},
                             std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b},
                             std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c},
                             std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c}})
    GPUML_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.h, attr, &value, sizeof(value)));
  // The heuristic's choice, once per key (it costs more host time than the launch itself).
  const MatmulAlgoKey key{m, n, k, batch, a_stride, b_stride, dact != nullptr ? dact->ld : 0,
                          static_cast<int>(c.output.dtype()), static_cast<int>(epilogue), c.attrs.allow_tf32,
                          c.attrs.trans_a, c.attrs.trans_b, align_a, align_b, align_c};
  MatmulAlgoChoice choice;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(gpu.mutex());
    auto it = gpu.matmul_algorithms().find(key);
    if (it != gpu.matmul_algorithms().end()) {
      choice = it->second;
      cached = true;
    }
  }
  if (!cached) {
    cublasLtMatmulHeuristicResult_t heuristic{};
    int found = 0;
    // A status other than success with an epilogue means "not with this epilogue": retry plain.
    cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(gpu.cublaslt(), op.h, la.h, lb.h, lc.h, lc.h, pref.h, 1, &heuristic, &found);
    if (use_epilogue && (st != CUBLAS_STATUS_SUCCESS || found == 0)) {
      const cublasLtEpilogue_t plain = CUBLASLT_EPILOGUE_DEFAULT;
      GPUML_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_EPILOGUE, &plain, sizeof(plain)));
      choice.epilogue_dropped = true;
      st = cublasLtMatmulAlgoGetHeuristic(gpu.cublaslt(), op.h, la.h, lb.h, lc.h, lc.h, pref.h, 1, &heuristic, &found);
    }
    if (bgrad == nullptr && dact == nullptr) GPUML_CUBLAS_CHECK(st);
    choice.found = st == CUBLAS_STATUS_SUCCESS && found > 0;
    if (choice.found) choice.algo = heuristic.algo;
    std::lock_guard<std::mutex> lock(gpu.mutex());
    gpu.matmul_algorithms().emplace(key, choice);
  }
  if ((bgrad != nullptr || dact != nullptr) && !choice.found) return false;
  bool epilogue_done = use_epilogue;
  if (use_epilogue && choice.epilogue_dropped) {
    epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    epilogue_done = false;
    GPUML_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  }
  GPUML_CHECK_KIND(ErrorKind::Unsupported, choice.found, "cuda matmul: cuBLASLt has no algorithm for ({}, {}) x ({}, {}) {}",
                   m, k, k, n, c.output.dtype());
  void* workspace = gpu.workspace(ws_bytes, "matmul");
  const double one_d = 1.0, zero_d = 0.0;
  const float one_f = 1.f, zero_f = 0.f;
  const void* alpha = ti.scale == CUDA_R_64F ? static_cast<const void*>(&one_d) : &one_f;
  const void* beta = ti.scale == CUDA_R_64F ? static_cast<const void*>(&zero_d) : &zero_f;
  GPUML_CUBLAS_CHECK(cublasLtMatmul(gpu.cublaslt(), op.h, alpha, b_mem.raw_data(), la.h, a_mem.raw_data(), lb.h, beta,
                                    c.output.raw_data(), lc.h, c.output.raw_data(), lc.h, &choice.algo, workspace,
                                    ws_bytes, stream));
  if (fused) {
    const bool erf_gelu = c.attrs.activation == Activation::gelu && !c.attrs.gelu_tanh;
    bias_and_activation(c, !epilogue_done, c.attrs.activation != Activation::none && (!epilogue_done || erf_gelu));
  }
  return true;
}

void matmul_kernel(const KernelCall& c) { run_matmul(c, false); }
void matmul_bias_act_kernel(const KernelCall& c) { run_matmul(c, true); }

// matmul_bgrad: the weight gradient (output 0) with cuBLASLt's BGRADA/BGRADB epilogue writing
// the bias gradient (output 1); where cuBLASLt offers no such algorithm (or the bias gradient's
// address is below 16-byte alignment), the matmul and sum kernels as two steps.
void matmul_bgrad_kernel(const KernelCall& c) {
  BiasGrad bgrad{c.extra_outputs[0].raw_data(), c.attrs.axis};
  const bool fused = alignment_of(bgrad.out) >= 16 && run_matmul(c, false, &bgrad);
  if (!fused) matmul_bgrad_by_parts(c);
}

// DRELU with the mask of relu's output y > 0 (launch_relu_mask); false where cuBLASLt has no
// algorithm for it.
bool run_drelu(const KernelCall& c) {
  const MatmulDims d = matmul_dims(c.inputs[0].shape(), c.inputs[1].shape(), c.attrs);
  const int64_t ld_bits = (d.n + 127) / 128 * 128;
  Tensor mask = Tensor::empty({d.m * ld_bits / 8}, DType::u8, c.backend);
  launch("matmul_dact", [&] {
    launch_relu_mask(elem_type(c.inputs[2].dtype()), c.inputs[2].raw_data(), mask.raw_data(), d.m, d.n, ld_bits,
                     cuda_backend_of(c).stream_of(c));
  });
  const DactAux drelu{CUBLASLT_EPILOGUE_DRELU, mask.raw_data(), ld_bits};
  return run_matmul(c, false, nullptr, &drelu);
}

// cuBLASLt documents DRELU's mask only as bits with a leading dim divisible by 128;
// launch_relu_mask writes our reading of it (bit j + i * ld of row-major (i, j), LSB first).
// Before the first DRELU a small product of integers (exact in f32) runs with the mask and must
// equal the relu_backward of the plain product bit for bit. If it does not, or cuBLASLt has no
// DRELU algorithm here, relu's backward runs as its two parts for the rest of the backend's life
// (CudaBackend::drelu_state).

// Empty where the probe agrees, else why not.
std::string drelu_probe(Backend& gpu) {
  const DreluProbe p = make_drelu_probe();
  const int64_t m = p.m, k = p.k, n = p.n;
  const std::array<Tensor, 3> in{to_backend(Tensor::from_values({m, k}, p.a, DType::f32), gpu),
                                  to_backend(Tensor::from_values({k, n}, p.b, DType::f32), gpu),
                                  to_backend(Tensor::from_values({m, n}, p.y, DType::f32), gpu)};
  Tensor out = Tensor::empty({m, n}, DType::f32, gpu);
  Attrs attrs;
  attrs.activation = Activation::relu;
  if (!run_drelu(KernelCall{gpu, in, out, attrs, nullptr})) return "no DRELU algorithm for the probe";
  gpu.synchronize();
  if (to_backend(out, backend_registry().reference()).to_doubles() != p.want)
    return "its result on a probe differs from a matmul and relu_backward";
  return {};
}

bool drelu_trusted(const KernelCall& c) {
  using DreluState = CudaBackend::DreluState;
  CudaBackend& gpu = cuda_backend_of(c);
  std::atomic<DreluState>& drelu = gpu.drelu_state();
  DreluState state = drelu.load();
  if (state != DreluState::untried) return state == DreluState::trusted;
  // The probe synchronises, which a capture forbids; the eager first run of a plan probes.
  if (gpu.capturing()) return false;
  std::lock_guard lock(gpu.drelu_mutex());
  if (drelu.load() == DreluState::untried) {
    std::string why;
    try {
      why = drelu_probe(c.backend);
    } catch (const Error& e) {
      why = e.what();
    }
    drelu = why.empty() ? DreluState::trusted : DreluState::refused;
    if (!why.empty())
      fmt::print(stderr, "gpuml: not using cuBLASLt's DRELU epilogue ({}); relu's backward runs as two kernels\n",
                 why);
  }
  return drelu.load() == DreluState::trusted;
}

// matmul_dact's shape limit: cuBLASLt's DGELU (the tanh gelu) reads gelu's input with the
// output's row length as its leading dim, which must divide by 8. Registered with the kernel, so
// the planner leaves such a product unfused (a matmul and gelu_backward, the same numbers) as a
// decision the plan shows, and Backend::run refuses such a call instead of falling back here.
// The erf gelu has no epilogue and runs as its two parts at any width.
bool dact_shapes_fit(const OpQuery& q) {
  const bool dgelu = q.attrs.activation == Activation::gelu && q.attrs.gelu_tanh;
  return !dgelu || q.output.shape.empty() || q.output.shape.back() % 8 == 0;
}

// matmul_dact: the product with cuBLASLt's DGELU (tanh gelu; n % 8 == 0 by dact_shapes_fit, and the
// aux, gelu's input, needs 16-byte alignment, which only the run knows) or DRELU epilogue, else its
// two parts (the erf gelu, a misaligned aux, no algorithm, an untrusted mask layout).
void matmul_dact_kernel(const KernelCall& c) {
  const MatmulDims d = matmul_dims(c.inputs[0].shape(), c.inputs[1].shape(), c.attrs);
  const Tensor& aux = c.inputs[2];
  bool fused = false;
  if (c.attrs.activation == Activation::gelu) {
    if (c.attrs.gelu_tanh && alignment_of(aux.raw_data()) >= 16) {
      const DactAux dgelu{CUBLASLT_EPILOGUE_DGELU, aux.raw_data(), d.n};
      fused = run_matmul(c, false, nullptr, &dgelu);
    }
  } else if (drelu_trusted(c)) {
    fused = run_drelu(c);
  }
  if (!fused) matmul_dact_by_parts(c);
}

}  // namespace

void register_matmul_kernels(CudaBackend& b) {
  b.add_kernel(OpId::matmul, matmul_kernel, {DType::f32, DType::f64, DType::bf16, DType::f16}, /*strided_inputs=*/false);
  // cuBLASLt's bias epilogues take f32, bf16 and f16 outputs; f64 stays unfused (the planner
  // fuses only where the backend that runs the matmul also has this kernel).
  b.add_kernel(OpId::matmul_bias_act, matmul_bias_act_kernel, {DType::f32, DType::bf16, DType::f16},
               /*strided_inputs=*/false);
  b.add_kernel(OpId::matmul_bgrad, matmul_bgrad_kernel, {DType::f32, DType::bf16, DType::f16}, /*strided_inputs=*/false);
  b.add_kernel(OpId::matmul_dact, matmul_dact_kernel, {DType::f32, DType::bf16, DType::f16}, /*strided_inputs=*/false);
  b.add_shape_limit(OpId::matmul_dact, dact_shapes_fit);
}

}  // namespace gpuml::cuda
