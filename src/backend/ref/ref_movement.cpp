// Reference movement ops (reshape, permute, slice, broadcast_to, concat, pad), embedding gather /
// scatter-add, and creation (fill, arange). Movement is written as views: the op is the view,
// load() and store() walk it.
#include "backend/ref/ref_kernels.h"
#include "ops/type_rules.h"

namespace gpuml::ref {

namespace {

// The view of `t` that slice(attrs) selects (normalize_slice: python start/end/step per dim).
Tensor sliced_view(const Tensor& t, const Attrs& attrs) {
  SliceDims dims = normalize_slice(t.shape(), attrs);
  Strides strides = t.strides();
  int64_t offset = t.offset();
  for (int d = 0; d < t.ndim(); ++d) {
    offset += dims.start[d] * t.strides()[d];
    strides[d] *= dims.step[d];
  }
  return t.view_as(dims.size, strides, offset);
}

// reshape: the same elements in the same row-major order.
void reshape_kernel(const KernelCall& c) { store(c.output, load(c.inputs[0])); }

void permute_kernel(const KernelCall& c) { store(c.output, load(c.inputs[0].permute(c.attrs.axes))); }

void slice_kernel(const KernelCall& c) { store(c.output, load(sliced_view(c.inputs[0], c.attrs))); }

// slice_backward(dy) -> zeros of attrs.shape with dy written at the sliced positions.
void slice_backward_kernel(const KernelCall& c) {
  store_constant(c.output, 0.0);
  store(sliced_view(c.output, c.attrs), load(c.inputs[0]));
}

void broadcast_to_kernel(const KernelCall& c) {
  store(c.output, load_broadcast(c.inputs[0], c.attrs.shape));
}

// concat(inputs...) along attrs.axis: each input fills its block of the output.
void concat_kernel(const KernelCall& c) {
  const int axis = normalize_axis(c.attrs.axis, c.output.ndim(), "concat");
  int64_t position = 0;
  for (const Tensor& input : c.inputs) {
    const int64_t size = input.dim(axis);
    store(c.output.slice(axis, position, position + size), load(input));
    position += size;
  }
}

// pad(x) with (before, after) per dim: attrs.value around, x inside.
void pad_kernel(const KernelCall& c) {
  store_constant(c.output, c.attrs.value);
  Tensor interior = c.output;
  for (int d = 0; d < c.output.ndim(); ++d) {
    const int64_t before = c.attrs.pads[2 * d];
    interior = interior.slice(d, before, before + c.inputs[0].dim(d));
  }
  store(interior, load(c.inputs[0]));
}

// The indices of an index tensor, each checked to lie in [0, rows).
std::vector<int64_t> checked_indices(const Tensor& indices, int64_t rows, const char* op) {
  std::vector<double> raw = load(indices);
  std::vector<int64_t> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    out[i] = static_cast<int64_t>(raw[i]);
    GPUML_CHECK(out[i] >= 0 && out[i] < rows, "{}: index {} at position {} is outside [0, {})", op,
                out[i], i, rows);
  }
  return out;
}

// embedding(weight (V, D), indices (...)) -> (..., D): row indices[i] of weight.
void embedding_kernel(const KernelCall& c) {
  const int64_t rows = c.inputs[0].dim(0), width = c.inputs[0].dim(1);
  std::vector<double> weight = load(c.inputs[0]);  // (V, D)
  std::vector<int64_t> indices = checked_indices(c.inputs[1], rows, "embedding");
  std::vector<double> out(indices.size() * width);  // (..., D)
  for (size_t i = 0; i < indices.size(); ++i)
    for (int64_t d = 0; d < width; ++d) out[i * width + d] = weight[indices[i] * width + d];
  store(c.output, out);
}

// embedding_backward(indices (...), dy (..., D)) -> dweight (V, D): scatter-add of dy rows;
// repeated indices accumulate.
void embedding_backward_kernel(const KernelCall& c) {
  const int64_t rows = c.attrs.shape[0], width = c.attrs.shape[1];
  std::vector<int64_t> indices = checked_indices(c.inputs[0], rows, "embedding_backward");
  std::vector<double> dy = load(c.inputs[1]);  // (..., D)
  std::vector<double> dweight(static_cast<size_t>(rows * width), 0.0);  // (V, D)
  for (size_t i = 0; i < indices.size(); ++i)
    for (int64_t d = 0; d < width; ++d) dweight[indices[i] * width + d] += dy[i * width + d];
  store(c.output, dweight);
}

void fill_kernel(const KernelCall& c) { store_constant(c.output, c.attrs.value); }

// arange: element i is alpha + i * beta (start, step).
void arange_kernel(const KernelCall& c) {
  std::vector<double> out(static_cast<size_t>(c.output.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = c.attrs.alpha + static_cast<double>(i) * c.attrs.beta;
  store(c.output, out);
}

}  // namespace

std::vector<KernelEntry> movement_kernels() {
  return {
      {OpId::reshape, reshape_kernel, kEveryDType},
      {OpId::permute, permute_kernel, kEveryDType},
      {OpId::slice, slice_kernel, kEveryDType},
      {OpId::slice_backward, slice_backward_kernel, kEveryDType},
      {OpId::broadcast_to, broadcast_to_kernel, kEveryDType},
      {OpId::concat, concat_kernel, kEveryDType},
      {OpId::pad, pad_kernel, kEveryDType},
      {OpId::embedding, embedding_kernel, kEveryDType},
      // Keyed on the indices' dtype; dy (and so the output) may be any dtype.
      {OpId::embedding_backward, embedding_backward_kernel, kIndexDTypes},
      // Creation ops are keyed on the output dtype.
      {OpId::fill, fill_kernel, kEveryDType},
      {OpId::arange, arange_kernel, kEveryDType},
  };
}

}  // namespace gpuml::ref
