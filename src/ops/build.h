// Building graphs with functions: the one vocabulary that gradient rules (ops/grad_rules.cpp),
// nn modules and tests use. An Emitter (graph::Graph implements it) records each call as a node.
//
//   Graph g;
//   Sym x = g.input("x", {{128, 784}, DType::f32});
//   Sym w = g.param("w", {{256, 784}, DType::f32});
//   Sym y = relu(matmul(x, w, /*trans_a*/ false, /*trans_b*/ true));
//   Sym loss = mean(y);
#pragma once

#include <memory>
#include <vector>

#include "ops/attrs.h"
#include "ops/op_table.h"
#include "ops/type_rules.h"

namespace gpuml {

// Mixed precision while building, as torch.autocast does it. Under bf16, matmul and conv2d take
// bf16 inputs (f32 inputs are cast; f64 is left alone) and give bf16 outputs, computed with f32 accumulation by
// the kernels; a binary op meeting bf16 and f32 stays bf16, so the activations between layers are
// bf16; sum, mean, softmax, log_softmax, cross_entropy, layer_norm, batch_norm and attention cast bf16 inputs
// to f32 and compute in f32. Casts are ordinary nodes, so their gradients cast back: a parameter
// cast from f32 gets an f32 gradient. Autodiff emits with autocast off, so gradient rules see the
// dtypes the forward graph has.
enum class Autocast { off, bf16 };

class Emitter;

// What a Sym holds instead of a raw Emitter*: the emitter, until it is destroyed (~Emitter sets
// it to nullptr). So a Sym that outlives its graph (a Python object the collector keeps, a
// module's cached value) fails with a clear error instead of reading freed memory. A shared
// handle, not a shared graph: a Sym does not keep a graph alive, it only notices that it died.
// Graph building runs once per plan, so one shared_ptr copy per Sym costs nothing that matters.
struct EmitterHandle {
  Emitter* emitter = nullptr;
};

class Emitter {
 public:
  Emitter() : handle_(std::make_shared<EmitterHandle>(EmitterHandle{this})) {}
  virtual ~Emitter() { handle_->emitter = nullptr; }
  // Syms hold the handle of this object: it stays where it was built.
  Emitter(const Emitter&) = delete;
  Emitter& operator=(const Emitter&) = delete;

  virtual Autocast autocast() const { return Autocast::off; }
  // Adds a node (after checking its type rules) and returns its value id; an op with k outputs
  // gets the ids returned .. returned + k - 1.
  virtual int emit(OpId op, const std::vector<int>& inputs, const Attrs& attrs) = 0;
  virtual const TensorType& type_of(int value) const = 0;
  std::shared_ptr<const EmitterHandle> handle() const { return handle_; }

 private:
  std::shared_ptr<EmitterHandle> handle_;
};

// A symbolic tensor: a value id in an Emitter. Default-constructed, it belongs to no emitter.
class Sym {
 public:
  Sym() = default;
  Sym(Emitter& emitter, int value) : id(value), handle_(emitter.handle()) {}

  int id = -1;
  // The emitter it belongs to; throws Invalid if it has none or it was destroyed.
  Emitter& emitter() const;
  // Whether it is a value of `e` (false for a destroyed emitter's values).
  bool belongs_to(const Emitter& e) const { return handle_ != nullptr && handle_->emitter == &e; }

  const TensorType& type() const { return emitter().type_of(id); }
  const Shape& shape() const { return type().shape; }
  DType dtype() const { return type().dtype; }
  int ndim() const { return static_cast<int>(shape().size()); }

 private:
  std::shared_ptr<const EmitterHandle> handle_;
};

// Generic emission: the one function every helper below goes through (one-output ops).
Sym emit(OpId op, const std::vector<Sym>& inputs, const Attrs& attrs = {});
// An op with several outputs (op_info(op).outputs): one Sym per output, in order; an Emitter
// gives them consecutive value ids, output 0 being the id emit() returned.
std::vector<Sym> emit_outputs(OpId op, const std::vector<Sym>& inputs, const Attrs& attrs = {});

// Constants.
Sym fill(Emitter& e, const Shape& shape, double value, DType dtype);
Sym scalar_like(Sym like, double value);  // a () tensor of like's dtype
Sym arange(Emitter& e, int64_t n, DType dtype, double start = 0, double step = 1);

// Elementwise.
Sym neg(Sym x);
Sym abs(Sym x);
Sym sign(Sym x);
Sym exp(Sym x);
Sym log(Sym x);
Sym sqrt(Sym x);
Sym rsqrt(Sym x);
Sym tanh(Sym x);
Sym sigmoid(Sym x);
Sym relu(Sym x);
Sym gelu(Sym x, bool tanh_approximation = false);
Sym cast(Sym x, DType dtype);
Sym copy(Sym x);
// Binary ops cast both sides to their promoted dtype first (NumPy rules), so mixed dtypes work.
Sym add(Sym a, Sym b);
Sym sub(Sym a, Sym b);
Sym mul(Sym a, Sym b);
Sym div(Sym a, Sym b);
Sym pow(Sym a, Sym b);
Sym maximum(Sym a, Sym b);
Sym minimum(Sym a, Sym b);
Sym eq(Sym a, Sym b);
Sym ne(Sym a, Sym b);
Sym lt(Sym a, Sym b);
Sym le(Sym a, Sym b);
Sym gt(Sym a, Sym b);
Sym ge(Sym a, Sym b);
Sym where(Sym cond, Sym a, Sym b);
Sym mul_scalar(Sym x, double s);
Sym add_scalar(Sym x, double s);

// Reductions (empty axes = all).
Sym sum(Sym x, std::vector<int64_t> axes = {}, bool keepdim = false);
Sym mean(Sym x, std::vector<int64_t> axes = {}, bool keepdim = false);
Sym max(Sym x, std::vector<int64_t> axes = {}, bool keepdim = false);
Sym argmax(Sym x, int64_t axis = -1, bool keepdim = false);
Sym softmax(Sym x, int64_t axis = -1);
Sym log_softmax(Sym x, int64_t axis = -1);

// Matrix and image ops.
Sym matmul(Sym a, Sym b, bool trans_a = false, bool trans_b = false);
Attrs conv_attrs(int64_t stride = 1, int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
Sym conv2d(Sym x, Sym w, const Attrs& conv);
// Pooling; stride 0 means "same as the kernel", as in PyTorch.
Sym max_pool2d(Sym x, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
Sym avg_pool2d(Sym x, int64_t kernel, int64_t stride = 0, int64_t padding = 0, bool count_include_pad = true);

// Losses, norms, random.
// The loss, output 0 of the cross_entropy node; its output 1 (lse, each row's log-sum-exp) is
// there for the gradient rule (emit_outputs gives both).
Sym cross_entropy(Sym logits, Sym labels, int64_t ignore_index = -100);
// y, output 0 of the layer_norm node; its outputs 1 and 2 (mean, rstd per row) are there for the
// gradient rule (emit_outputs gives all three).
Sym layer_norm(Sym x, Sym weight, Sym bias, int64_t first_axis = -1, double eps = 1e-5);
// Scaled dot-product attention over (B, H, T, D) heads: softmax(q k^T * scale) v, causal or not,
// with dropout p on the probabilities when training (Philox stream (seed, offset), which it
// consumes philox_blocks(B * H * Tq * Tk) blocks of); scale 0 means 1/sqrt(D). Returns o
// (B, H, Tq, D), output 0 of the attention node; output 1, the row log-sum-exp (B, H, Tq), is
// there for the gradient rule (emit_outputs(OpId::attention, {q, k, v}, attention_attrs(...))
// gives both). q, k and v may be views (slices and permutes of a fused qkv projection). Under
// bf16 autocast they are cast to f32, as softmax's input is.
//
//   Sym y = attention(q, k, v, /*causal*/ true);                       // (B, H, T, D)
//   Sym y = attention(q, k, v, true, 0.1, ctx.dropout_seed, offset, ctx.training);
Sym attention(Sym q, Sym k, Sym v, bool causal, double dropout_p = 0.0, uint64_t seed = 0, uint64_t offset = 0,
              bool training = true, double scale = 0.0);
Attrs attention_attrs(bool causal, double dropout_p = 0.0, uint64_t seed = 0, uint64_t offset = 0,
                      bool training = true, double scale = 0.0);
Sym batch_norm(Sym x, Sym weight, Sym bias, Sym running_mean, Sym running_var, bool training,
               double eps = 1e-5);
Sym dropout(Sym x, double p, uint64_t seed, uint64_t offset, bool training = true);
Sym uniform(Emitter& e, const Shape& shape, DType dtype, double low, double high, uint64_t seed, uint64_t offset);
Sym normal(Emitter& e, const Shape& shape, DType dtype, double mean, double stddev, uint64_t seed, uint64_t offset);
Sym embedding(Sym weight, Sym indices);

// Movement.
Sym reshape(Sym x, const Shape& shape);
Sym permute(Sym x, std::vector<int64_t> axes);
Sym transpose(Sym x, int64_t a, int64_t b);
Sym slice(Sym x, int64_t axis, int64_t start, int64_t end, int64_t step = 1);
Sym broadcast_to(Sym x, const Shape& shape);
Sym concat(const std::vector<Sym>& xs, int64_t axis);
Sym pad(Sym x, std::vector<int64_t> pads, double value = 0.0);
Sym flatten(Sym x, int64_t first_axis = 1);  // (N, ...) -> (N, prod(...))

// Collectives. all_reduce_sum: every rank's x summed (RunOptions::collectives names the
// communicator); with one process, x itself. Every rank must run the same collectives in the same
// order: build the same graph on each.
Sym all_reduce_sum(Sym x);

// Sums a gradient of a broadcast result back to `shape` (the input's shape before broadcasting).
Sym reduce_to_shape(Sym g, const Shape& shape);

}  // namespace gpuml
