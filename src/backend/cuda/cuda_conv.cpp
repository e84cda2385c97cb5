// conv2d forward, backward-data and backward-filter on cuDNN (NCHW). The algorithm of each
// (direction, shapes, dtype, attributes) is found once with cudnnFind*, measured on the real
// shapes, and cached in the backend (--deterministic: see find_algorithm). f32 uses FMA math
// (exact f32, as ref) unless the planner allows TF32 (--precision tf32); bf16/f16 use tensor cores
// with f32 accumulation.
#include <fmt/format.h>

#include <cstdlib>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_glue.h"

namespace gpuml::cuda {

namespace {

#define GPUML_CUDNN_CHECK(expr)                                                                                  \
  do {                                                                                                           \
    cudnnStatus_t gpuml_st_ = (expr);                                                                            \
    GPUML_CHECK_KIND(ErrorKind::Internal, gpuml_st_ == CUDNN_STATUS_SUCCESS, "cuda conv2d: {} failed: {}", #expr, \
                     cudnnGetErrorString(gpuml_st_));                                                            \
  } while (0)

enum class Direction { forward, backward_data, backward_filter };

cudnnDataType_t cudnn_type(DType d) {
  switch (d) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    case DType::f16: return CUDNN_DATA_HALF;
    default: GPUML_FAIL(ErrorKind::Unsupported, "cuda conv2d: dtype {} not supported", d);
  }
}

// Descriptors for one convolution, freed on every path out.
struct ConvDescriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // what the precision asks for; the search may refine it
  ConvDescriptors(const Shape& xs, const Shape& ws, const Shape& ys, const Attrs& a, DType dtype) {
    const cudnnDataType_t t = cudnn_type(dtype);
    GPUML_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    GPUML_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    GPUML_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    GPUML_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    auto dim = [](const Shape& s, int i) { return static_cast<int>(s[static_cast<size_t>(i)]); };
    GPUML_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, t, dim(xs, 0), dim(xs, 1), dim(xs, 2), dim(xs, 3)));
    GPUML_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, t, dim(ys, 0), dim(ys, 1), dim(ys, 2), dim(ys, 3)));
    GPUML_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, t, CUDNN_TENSOR_NCHW, dim(ws, 0), dim(ws, 1), dim(ws, 2), dim(ws, 3)));
    const cudnnDataType_t compute = dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    GPUML_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv, static_cast<int>(a.padding[0]), static_cast<int>(a.padding[1]), static_cast<int>(a.stride[0]),
        static_cast<int>(a.stride[1]), static_cast<int>(a.dilation[0]), static_cast<int>(a.dilation[1]),
        CUDNN_CROSS_CORRELATION, compute));
    GPUML_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, static_cast<int>(a.groups)));
    math = (dtype == DType::bf16 || dtype == DType::f16) ? CUDNN_TENSOR_OP_MATH
                           : (dtype == DType::f32 && a.allow_tf32)            ? CUDNN_DEFAULT_MATH
                                                                              : CUDNN_FMA_MATH;
    GPUML_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
  }
  ~ConvDescriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  ConvDescriptors(const ConvDescriptors&) = delete;
  ConvDescriptors& operator=(const ConvDescriptors&) = delete;
};

std::string cache_key(Direction dir, const Shape& xs, const Shape& ws, const Attrs& a, DType d) {
  return fmt::format("{} {} {} {} s{},{} p{},{} d{},{} g{}{}{}", static_cast<int>(dir), shape_str(xs),
                     shape_str(ws), dtype_name(d), a.stride[0], a.stride[1], a.padding[0], a.padding[1],
                     a.dilation[0], a.dilation[1], a.groups, a.allow_tf32 ? " tf32" : "",
                     a.deterministic ? " deterministic" : "");
}

// The first algorithm in cuDNN's ranking that ran, fits its workspace in `budget` bytes and, if
// asked, is deterministic. (The fastest may want gigabytes of workspace, FFT; one that needs
// little is then the better choice under --gpu-memory-limit.)
// Exact f32 (FMA math asked for) never takes an algorithm that ran with tensor-op conversion.
template <typename Perf>
ConvChoice first_usable(const Perf* perf, int found, bool deterministic, size_t budget, cudnnMathType_t wanted) {
  for (int i = 0; i < found; ++i) {
    const bool math_ok = wanted != CUDNN_FMA_MATH || perf[i].mathType == CUDNN_FMA_MATH ||
                         perf[i].mathType == CUDNN_DEFAULT_MATH;
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= budget && math_ok &&
        (!deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
      return {static_cast<int>(perf[i].algo), wanted == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : perf[i].mathType};
  }
  return {};
}

// cuDNN's ranking for one direction: `get` (heuristic, cudnnGet*_v7) when deterministic, else
// `find` (timed, cudnnFind*). Both take the same arguments, which `call` supplies for the
// direction's descriptors; the result is the first usable algorithm.
template <typename Perf, typename Fn, typename Call>
ConvChoice ranked(bool deterministic, size_t budget, cudnnMathType_t wanted, Fn get, Fn find, Call&& call) {
  constexpr int kMax = 16;
  Perf perf[kMax];
  int found = 0;
  GPUML_CUDNN_CHECK(call(deterministic ? get : find, kMax, &found, perf));
  return first_usable(perf, found, deterministic, budget, wanted);
}

// The algorithm for this convolution, chosen once and cached. Normally the fastest, measured on
// the real shapes (cudnnFind*). Under Attrs::deterministic (--deterministic) it is cuDNN's
// heuristic ranking (cudnnGet*_v7) instead, which needs no timing and so picks the same algorithm
// in every run, keeping only algorithms cuDNN marks deterministic (no atomics).
ConvChoice find_algorithm(CudaBackend& gpu, Direction dir, const ConvDescriptors& d, const std::string& key,
                          bool deterministic) {
  std::lock_guard<std::mutex> lock(gpu.mutex());
  auto it = gpu.conv_algorithms().find(key);
  if (it != gpu.conv_algorithms().end()) return it->second;
  GPUML_CHECK_KIND(ErrorKind::Unsupported, !gpu.capturing(),
                   "cuda conv2d: no algorithm chosen yet for {}: cuDNN's search cannot run in a CUDA graph capture", key);
  // cudnnFind* allocates its own buffers with cudaMalloc, outside the pool that keeps freed memory.
  if (!deterministic) gpu.release_cached_memory();
  const size_t budget = gpu.memory_budget() / 2;  // leave room for the step's own tensors
  ConvChoice algo;
  if (dir == Direction::forward)
    algo = ranked<cudnnConvolutionFwdAlgoPerf_t>(
        deterministic, budget, d.math, cudnnGetConvolutionForwardAlgorithm_v7, cudnnFindConvolutionForwardAlgorithm,
        [&](auto fn, int n, int* found, auto* perf) { return fn(gpu.cudnn(), d.x, d.w, d.conv, d.y, n, found, perf); });
  else if (dir == Direction::backward_data)
    algo = ranked<cudnnConvolutionBwdDataAlgoPerf_t>(
        deterministic, budget, d.math, cudnnGetConvolutionBackwardDataAlgorithm_v7, cudnnFindConvolutionBackwardDataAlgorithm,
        [&](auto fn, int n, int* found, auto* perf) { return fn(gpu.cudnn(), d.w, d.y, d.conv, d.x, n, found, perf); });
  else
    algo = ranked<cudnnConvolutionBwdFilterAlgoPerf_t>(
        deterministic, budget, d.math, cudnnGetConvolutionBackwardFilterAlgorithm_v7,
        cudnnFindConvolutionBackwardFilterAlgorithm,
        [&](auto fn, int n, int* found, auto* perf) { return fn(gpu.cudnn(), d.x, d.y, d.conv, d.w, n, found, perf); });
  GPUML_CHECK_KIND(ErrorKind::Unsupported, algo.algo >= 0,
                   "cuda conv2d: cuDNN has no {}algorithm for {} with at most {} MiB of workspace{}",
                   deterministic ? "deterministic " : "", key, budget >> 20,
                   deterministic ? "; run without --deterministic" : "; try a smaller --batch-size");
  gpu.conv_algorithms()[key] = algo;
  return algo;
}

// x (N, C, H, W), w (O, C/groups, kH, kW), y (N, O, OH, OW): the three directions share this.
void run_conv(const KernelCall& c, Direction dir, const Tensor& x, const Tensor& w, const Tensor& y) {
  CudaBackend& gpu = cuda_backend_of(c);
  if (x.numel() == 0 || w.numel() == 0 || y.numel() == 0) {
    GPUML_CUDA_CHECK(cudaMemsetAsync(c.output.raw_data(), 0, c.output.nbytes(), gpu.stream_of(c)), "conv2d");
    return;
  }
  const DType dtype = c.output.dtype();
  ConvDescriptors d(x.shape(), w.shape(), y.shape(), c.attrs, dtype);
  GPUML_CUDNN_CHECK(cudnnSetStream(gpu.cudnn(), gpu.stream_of(c)));
  const ConvChoice choice =
      find_algorithm(gpu, dir, d, cache_key(dir, x.shape(), w.shape(), c.attrs, dtype), c.attrs.deterministic);
  const int algo = choice.algo;
  // The math type the search ran the algorithm with (cuDNN's Find may pick another than asked).
  GPUML_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, static_cast<cudnnMathType_t>(choice.math)));
  const double one_d = 1.0, zero_d = 0.0;
  const float one_f = 1.f, zero_f = 0.f;
  const void* one = dtype == DType::f64 ? static_cast<const void*>(&one_d) : &one_f;
  const void* zero = dtype == DType::f64 ? static_cast<const void*>(&zero_d) : &zero_f;
  size_t ws = 0;
  if (dir == Direction::forward) {
    auto a = static_cast<cudnnConvolutionFwdAlgo_t>(algo);
    GPUML_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(gpu.cudnn(), d.x, d.w, d.conv, d.y, a, &ws));
    void* workspace = gpu.workspace(ws, "conv2d");
    GPUML_CUDNN_CHECK(cudnnConvolutionForward(gpu.cudnn(), one, d.x, x.raw_data(), d.w, w.raw_data(), d.conv, a,
                                              workspace, ws, zero, d.y, y.raw_data()));
  } else if (dir == Direction::backward_data) {
    auto a = static_cast<cudnnConvolutionBwdDataAlgo_t>(algo);
    GPUML_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(gpu.cudnn(), d.w, d.y, d.conv, d.x, a, &ws));
    void* workspace = gpu.workspace(ws, "conv2d_backward_data");
    GPUML_CUDNN_CHECK(cudnnConvolutionBackwardData(gpu.cudnn(), one, d.w, w.raw_data(), d.y, y.raw_data(), d.conv, a,
                                                   workspace, ws, zero, d.x, x.raw_data()));
  } else {
    auto a = static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo);
    GPUML_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(gpu.cudnn(), d.x, d.y, d.conv, d.w, a, &ws));
    void* workspace = gpu.workspace(ws, "conv2d_backward_filter");
    GPUML_CUDNN_CHECK(cudnnConvolutionBackwardFilter(gpu.cudnn(), one, d.x, x.raw_data(), d.y, y.raw_data(), d.conv, a,
                                                     workspace, ws, zero, d.w, w.raw_data()));
  }
}

void conv2d_kernel(const KernelCall& c) { run_conv(c, Direction::forward, c.inputs[0], c.inputs[1], c.output); }
// (dy, w) -> dx of attrs.shape
void conv2d_backward_data_kernel(const KernelCall& c) {
  run_conv(c, Direction::backward_data, c.output, c.inputs[1], c.inputs[0]);
}
// (x, dy) -> dw of attrs.shape
void conv2d_backward_filter_kernel(const KernelCall& c) {
  run_conv(c, Direction::backward_filter, c.inputs[0], c.output, c.inputs[1]);
}

}  // namespace

// conv2d_bias_act: the convolution, then one in-place pass adding the channel bias and applying
// the activation (as on CPU), so the sum and the activation get no buffers of their own.
void conv2d_bias_act_kernel(const KernelCall& c) {
  run_conv(c, Direction::forward, c.inputs[0], c.inputs[1], c.output);
  const Shape& y = c.output.shape();
  const int activation = c.attrs.activation == Activation::relu ? 1 : c.attrs.activation == Activation::gelu ? 2 : 0;
  launch("conv2d_bias_act", [&] {
    launch_channel_bias_act(elem_type(c.output.dtype()), c.output.raw_data(), c.inputs[2].raw_data(), y[0], y[1],
                            y[2] * y[3], activation, c.attrs.gelu_tanh, cuda_backend_of(c).stream_of(c));
  });
}

void register_conv_kernels(CudaBackend& b) {
  for (auto [op, fn] : {std::pair{OpId::conv2d, &conv2d_kernel},
                        std::pair{OpId::conv2d_bias_act, &conv2d_bias_act_kernel},
                        std::pair{OpId::conv2d_backward_data, &conv2d_backward_data_kernel},
                        std::pair{OpId::conv2d_backward_filter, &conv2d_backward_filter_kernel}})
    b.add_kernel(op, fn, {DType::f32, DType::f64, DType::bf16, DType::f16}, /*strided_inputs=*/false);
}

}  // namespace gpuml::cuda
