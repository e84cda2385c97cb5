// Random ops on the Philox stream (core/philox.h), drawing exactly ref's numbers: element i of the
// output is a function of (seed, offset, i) only, so blocks of 4 elements (one Philox block) are
// spread across threads freely. Also embedding (row gather) and its backward (scatter-add).
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loops.h"
#include "core/philox.h"

namespace gpuml::cpu {

namespace {

constexpr std::initializer_list<DType> kFloat{DType::f32, DType::f64, DType::bf16, DType::f16};

// Calls draw(i, block) for every output index i, with block = the Philox block holding i.
template <typename Draw>
void for_each_philox(int64_t n, uint64_t seed, uint64_t offset, Draw&& draw) {
  const int64_t blocks = static_cast<int64_t>(philox_blocks(static_cast<uint64_t>(n)));
  parallel_for(blocks, n * 4, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      PhiloxBlock bits = philox4x32_10(offset + static_cast<uint64_t>(blk), seed);
      for (int64_t lane = 0; lane < 4 && blk * 4 + lane < n; ++lane) draw(blk * 4 + lane, bits, lane);
    }
  });
}

inline float uniform_of(uint32_t bits) { return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f); }

void dropout_kernel(const KernelCall& call) {
  const Attrs& a = call.attrs;
  const Tensor &x = call.inputs[0], &out = call.output;
  if (!a.training || a.p == 0.0) return strided_copy(out, x);
  dispatch_dtype(out.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_floating_point_v<Compute<T>>) {
      const T* px = ptr<const T>(x);
      T* py = ptr<T>(out);
      const double keep_scale = 1.0 - a.p;
      for_each_philox(out.numel(), a.seed, philox_offset(call), [&](int64_t i, const PhiloxBlock& b, int64_t lane) {
        bool keep = static_cast<double>(uniform_of(b.v[lane])) >= a.p;
        py[i] = keep ? from_double<T>(to_double(px[i]) / keep_scale) : from_double<T>(0.0);
      });
    }
  });
}

void uniform_kernel(const KernelCall& call) {
  const Attrs& a = call.attrs;
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    T* py = ptr<T>(call.output);
    for_each_philox(call.output.numel(), a.seed, philox_offset(call), [&](int64_t i, const PhiloxBlock& b, int64_t lane) {
      py[i] = from_double_wrapping<T>(a.alpha + (a.beta - a.alpha) * static_cast<double>(uniform_of(b.v[lane])));
    });
  });
}

void normal_kernel(const KernelCall& call) {
  const Attrs& a = call.attrs;
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    T* py = ptr<T>(call.output);
    const uint64_t offset = philox_offset(call);
    for_each_philox(call.output.numel(), a.seed, offset, [&](int64_t i, const PhiloxBlock&, int64_t) {
      py[i] = from_double_wrapping<T>(a.alpha + a.beta * philox_normal(a.seed, offset, static_cast<uint64_t>(i)));
    });
  });
}

// Indices as int64, each checked against [0, rows) before any parallel loop.
std::vector<int64_t> checked_indices(const Tensor& indices, int64_t rows, const char* op) {
  std::vector<int64_t> out(static_cast<size_t>(indices.numel()));
  dispatch_dtype(indices.dtype(), [&]<typename I>(I) {
    if constexpr (std::is_same_v<I, int32_t> || std::is_same_v<I, int64_t>) {
      const I* p = ptr<const I>(indices);
      for (size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<int64_t>(p[i]);
        GPUML_CHECK(out[i] >= 0 && out[i] < rows, "{}: index {} at position {} is outside [0, {})", op, out[i], i,
                    rows);
      }
    } else {
      GPUML_FAIL(ErrorKind::DType, "{}: indices must be i32 or i64, got {}", op, indices.dtype());
    }
  });
  return out;
}

void embedding_kernel(const KernelCall& call) {  // (weight (V, D), indices (...)) -> (..., D)
  const Tensor &weight = call.inputs[0], &out = call.output;
  std::vector<int64_t> idx = checked_indices(call.inputs[1], weight.shape()[0], "embedding");
  const size_t row_bytes = static_cast<size_t>(weight.shape()[1]) * dtype_size(weight.dtype());
  const char* src = static_cast<const char*>(weight.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  const int64_t n = static_cast<int64_t>(idx.size());
  parallel_for(n, n * static_cast<int64_t>(row_bytes) / 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      if (row_bytes) std::memcpy(dst + i * row_bytes, src + idx[i] * row_bytes, row_bytes);
  });
}

// (indices (...), dy (..., D)) -> dweight (V, D): each thread owns a range of weight rows and
// adds every dy row aimed at it, in index order, so no two threads touch one row.
void embedding_backward_kernel(const KernelCall& call) {
  const Tensor &dy = call.inputs[1], &out = call.output;
  const int64_t rows = out.shape()[0], d = out.shape()[1];
  std::vector<int64_t> idx = checked_indices(call.inputs[0], rows, "embedding_backward");
  dispatch_dtype(out.dtype(), [&]<typename T>(T) {
    {
      // double holds every sum exactly enough for every dtype; bool sums become `!= 0` as in ref.
      using C = double;
      const T* pdy = ptr<const T>(dy);
      T* pw = ptr<T>(out);
      const int64_t n = static_cast<int64_t>(idx.size());
      parallel_for(rows, (rows + n) * d, [&](int64_t begin, int64_t end) {
        std::vector<C> acc(static_cast<size_t>((end - begin) * d), C(0));
        for (int64_t i = 0; i < n; ++i) {
          if (idx[i] < begin || idx[i] >= end) continue;
          C* a = acc.data() + (idx[i] - begin) * d;
          const T* g = pdy + i * d;
#pragma omp simd
          for (int64_t j = 0; j < d; ++j) a[j] += to_double(g[j]);
        }
        for (int64_t k = 0; k < (end - begin) * d; ++k) pw[begin * d + k] = from_double_wrapping<T>(acc[k]);
      });
    }
  });
}

}  // namespace

void register_random_gather_kernels(CpuBackend& backend) {
  // Contiguous inputs: the kernel pairs element i of the input with Philox lane i.
  backend.add_kernel(OpId::dropout, dropout_kernel, kFloat, /*strided_inputs*/ false);
  backend.add_kernel(OpId::uniform, uniform_kernel, kFloat);
  backend.add_kernel(OpId::normal, normal_kernel, kFloat);
  backend.add_kernel(OpId::embedding, embedding_kernel,
                     {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8,
                      DType::boolean},
                     false);
  backend.add_kernel(OpId::embedding_backward, embedding_backward_kernel, {DType::i32, DType::i64}, false);
}

}  // namespace gpuml::cpu
