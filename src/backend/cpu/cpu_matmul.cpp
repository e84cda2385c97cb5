// matmul: oneDNN for f32/bf16, a plain OpenMP loop for f64 (oneDNN has no f64 on CPU).
// Transposes are read through strides, never copied; batch dims (broadcast) loop over one cached
// 2-d primitive, or fold into its M dim when b is shared by the whole batch.
// matmul_bias_act is the same product with oneDNN's bias and an eltwise post-op (relu, gelu), so
// the output is written once instead of three times; f64 applies them to each row as it is done.
#include <fmt/format.h>

#include "backend/cpu/cpu_activation.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_loops.h"
#include "backend/dispatch.h"

namespace gpuml::cpu {

namespace {

// A matrix of `rows` x `cols` read with (row_stride, col_stride), as oneDNN accepts it: one of
// the two strides must be 1 (row- or column-major with a leading dimension).
struct MatrixView {
  int64_t rows, cols, row_stride, col_stride;
};

// Normalises strides of size-1 dims; false when the layout is not plain (then copy first).
bool make_plain(MatrixView& m) {
  if (m.rows == 1) m.row_stride = m.col_stride == 1 ? m.cols : 1;
  if (m.cols == 1) m.col_stride = m.row_stride == 1 ? m.rows : 1;
  if (m.rows == 1 && m.cols == 1) m.row_stride = 1, m.col_stride = 1;
  bool row_major = m.col_stride == 1 && m.row_stride >= m.cols;
  bool col_major = m.row_stride == 1 && m.col_stride >= m.rows;
  return row_major || col_major;
}

MatrixView matrix_of(const Tensor& t, bool transposed) {
  int nd = t.ndim();
  int64_t r = t.shape()[nd - 2], c = t.shape()[nd - 1];
  int64_t rs = t.strides()[nd - 2], cs = t.strides()[nd - 1];
  if (transposed) return {c, r, cs, rs};
  return {r, c, rs, cs};
}

// What matmul_bias_act adds to the product: a contiguous bias (N,) of the output's dtype, then
// the activation. No bias: a plain matmul.
struct Epilogue {
  const void* bias = nullptr;
  Activation act = Activation::none;
  bool gelu_tanh = false;
};

std::string matmul_key(DType dtype, const MatrixView& a, const MatrixView& b, const Epilogue& ep) {
  return fmt::format("matmul {} {}x{} ({},{}) {}x{} ({},{}) bias {} act {}{}", dtype, a.rows, a.cols, a.row_stride,
                     a.col_stride, b.rows, b.cols, b.row_stride, b.col_stride, ep.bias != nullptr,
                     static_cast<int>(ep.act), ep.gelu_tanh ? " tanh" : "");
}

// Primitive attributes that apply `act` to the output as an eltwise post-op (none: no post-op).
dnnl::primitive_attr activation_attr(Activation act, bool gelu_tanh) {
  dnnl::primitive_attr attr;
  if (act == Activation::none) return attr;
  dnnl::algorithm alg = act == Activation::relu ? dnnl::algorithm::eltwise_relu
                        : gelu_tanh            ? dnnl::algorithm::eltwise_gelu_tanh
                                               : dnnl::algorithm::eltwise_gelu_erf;
  dnnl::post_ops ops;
  ops.append_eltwise(1.f, alg, 0.f, 0.f);
  attr.set_post_ops(ops);
  return attr;
}

// C (M, N) contiguous = A (M, K) * B (K, N) [+ bias, activation], all pointers at element 0.
void dnnl_matmul_2d(DnnlContext& ctx, DType dtype, const MatrixView& a, const MatrixView& b,
                    const void* a_data, const void* b_data, void* c_data, const Epilogue& ep) {
  using dims = dnnl::memory::dims;
  auto dt = dnnl_type(dtype);
  dnnl::memory::desc a_md(dims{a.rows, a.cols}, dt, dims{a.row_stride, a.col_stride});
  dnnl::memory::desc b_md(dims{b.rows, b.cols}, dt, dims{b.row_stride, b.col_stride});
  dnnl::memory::desc c_md(dims{a.rows, b.cols}, dt, dims{b.cols, 1});
  dnnl::memory::desc bias_md(dims{1, b.cols}, dt, dims{b.cols, 1});
  dnnl::primitive p = ctx.primitive(matmul_key(dtype, a, b, ep), [&] {
    dnnl::primitive_attr attr = activation_attr(ep.act, ep.gelu_tanh);
    auto desc = ep.bias ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md) : dnnl::matmul::desc(a_md, b_md, c_md);
    return dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, ctx.engine()));
  });
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, ctx.memory(a_md, a_data)},
                                             {DNNL_ARG_WEIGHTS, ctx.memory(b_md, b_data)},
                                             {DNNL_ARG_DST, ctx.memory(c_md, c_data)}};
  if (ep.bias) args.emplace(DNNL_ARG_BIAS, ctx.memory(bias_md, ep.bias));
  ctx.execute(p, args);
}

// f64: rows of C in parallel, the k loop outside the n loop so the inner loop streams B's rows;
// the epilogue runs on each row while it is still in cache.
void loop_matmul_2d(const MatrixView& a, const MatrixView& b, const double* pa, const double* pb, double* pc,
                    const Epilogue& ep) {
  int64_t m = a.rows, k = a.cols, n = b.cols;
  const double* bias = static_cast<const double*>(ep.bias);
  parallel_for(m, m * k * n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double* c = pc + i * n;
      for (int64_t j = 0; j < n; ++j) c[j] = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        double av = pa[i * a.row_stride + p * a.col_stride];
        const double* brow = pb + p * b.row_stride;
        if (b.col_stride == 1) {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) c[j] += av * brow[j];
        } else {
          for (int64_t j = 0; j < n; ++j) c[j] += av * brow[j * b.col_stride];
        }
      }
      if (bias)
        for (int64_t j = 0; j < n; ++j) c[j] = activation_fn(ep.act, ep.gelu_tanh, c[j] + bias[j]);
    }
  });
}

// Strides of the batch dims of t broadcast to `batch` (0 where broadcast).
Strides batch_strides(const Tensor& t, const Shape& batch) {
  Shape s(t.shape().begin(), t.shape().end() - 2);
  Strides st(t.strides().begin(), t.strides().end() - 2);
  return broadcast_strides(s, st, batch);
}

void run_matmul(const KernelCall& call, const Epilogue& ep) {
  Tensor a = call.inputs[0], b = call.inputs[1];
  const Tensor& out = call.output;
  const Attrs& attrs = call.attrs;
  MatmulDims d = matmul_dims(a.shape(), b.shape(), attrs);
  if (out.numel() == 0) return;
  DType dtype = out.dtype();
  if (d.k == 0) {
    GPUML_CHECK_KIND(ErrorKind::Internal, !ep.bias, "matmul_bias_act: inner dim 0 (the planner never fuses it)");
    fill_value(out, 0.0);
    return;
  }
  MatrixView ma = matrix_of(a, attrs.trans_a), mb = matrix_of(b, attrs.trans_b);
  if (!make_plain(ma)) {
    a = contiguous_copy(a);
    ma = matrix_of(a, attrs.trans_a);
    make_plain(ma);
  }
  if (!make_plain(mb)) {
    b = contiguous_copy(b);
    mb = matrix_of(b, attrs.trans_b);
    make_plain(mb);
  }
  const Shape& batch = d.batch;
  int64_t batch_count = numel(batch);
  Strides a_bs = batch_strides(a, batch), b_bs = batch_strides(b, batch);
  size_t esize = dtype_size(dtype);
  auto run_2d = [&](const MatrixView& va, const char* pa, const char* pb, char* pc) {
    if (dtype == DType::f64) {
      loop_matmul_2d(va, mb, reinterpret_cast<const double*>(pa), reinterpret_cast<const double*>(pb),
                     reinterpret_cast<double*>(pc), ep);
    } else {
      dnnl_matmul_2d(cpu_backend_of(call).dnnl(), dtype, va, mb, pa, pb, pc, ep);
    }
  };
  const char* a0 = static_cast<const char*>(a.raw_data());
  const char* b0 = static_cast<const char*>(b.raw_data());
  char* c0 = static_cast<char*>(out.raw_data());

  // b shared by every batch entry and a's (batch..., M) rows evenly spaced: one (B*M, K) matmul.
  bool b_shared = std::all_of(b_bs.begin(), b_bs.end(), [](int64_t s) { return s == 0; });
  if (batch_count > 1 && b_shared && ma.col_stride == 1) {
    Shape rows_shape = batch;
    rows_shape.push_back(d.m);
    Strides rows_strides = a_bs;
    rows_strides.push_back(ma.row_stride);
    StridedLoop<1> rows = make_strided_loop<1>(rows_shape, {rows_strides});
    if (rows.shape.size() == 1) {
      MatrixView folded{batch_count * d.m, d.k, rows.strides[0][0], 1};
      if (make_plain(folded)) {
        with_dnnl_errors("matmul", [&] { run_2d(folded, a0, b0, c0); });
        return;
      }
    }
  }
  with_dnnl_errors("matmul", [&] {
    std::vector<int64_t> index(batch.size(), 0);
    for (int64_t i = 0; i < batch_count; ++i) {
      int64_t off_a = 0, off_b = 0;
      for (size_t dim = 0; dim < batch.size(); ++dim) {
        off_a += index[dim] * a_bs[dim];
        off_b += index[dim] * b_bs[dim];
      }
      run_2d(ma, a0 + off_a * esize, b0 + off_b * esize, c0 + i * d.m * d.n * esize);
      for (size_t dim = batch.size(); dim-- > 0;) {
        if (++index[dim] < batch[dim]) break;
        index[dim] = 0;
      }
    }
  });
}

void matmul_kernel(const KernelCall& call) { run_matmul(call, {}); }

void matmul_bias_act_kernel(const KernelCall& call) {
  Tensor bias = call.inputs[2].is_contiguous() ? call.inputs[2] : contiguous_copy(call.inputs[2]);
  run_matmul(call, {bias.raw_data(), call.attrs.activation, call.attrs.gelu_tanh});
}

}  // namespace

void register_matmul_kernels(CpuBackend& backend) {
  auto add = [&](OpId op, KernelFn fn) {
    if (backend.dnnl().supports_bf16())
      backend.add_kernel(op, fn, {DType::f32, DType::f64, DType::bf16});
    else
      backend.add_kernel(op, fn, {DType::f32, DType::f64});
  };
  add(OpId::matmul, matmul_kernel);
  add(OpId::matmul_bias_act, matmul_bias_act_kernel);
  // No faster than its parts on a CPU (oneDNN has no bias-gradient post-op), but fused plans then
  // run the same steps as on a GPU, with the same numbers as unfused ones.
  backend.add_kernel(OpId::matmul_bgrad, matmul_bgrad_by_parts, {DType::f32, DType::f64});
  add(OpId::matmul_dact, matmul_dact_by_parts);
}

}  // namespace gpuml::cpu
