// THE op table: every op gpuml knows, in one place. Adding an op touches four places:
//   1. a row here;
//   2. its type rule (type_rules.cpp) and gradient rule (grad_rules.cpp), written with other ops;
//   3. a kernel in each backend that supports it (backend/ref always);
//   4. a row in the op test table (tests/op_samples.cpp).
//
// Row: GPUML_OP(name, arity, outputs, kind, differentiable, "attributes it reads")
// arity -1 means variadic (concat). Backward-only ops are `Backward` and not differentiable.
// outputs: how many tensors the op gives (graph/graph.h: a node with k outputs is k consecutive
// value ids; infer_types gives their types; a kernel writes KernelCall::output and extra_outputs).
//
//   OpId id = OpId::matmul;
//   fmt::print("{} takes {} inputs\n", op_info(id).name, op_info(id).arity);
//   op_info(OpId::matmul_bgrad).outputs == 2;   // (weight gradient, bias gradient)
//   op_info(OpId::layer_norm).outputs == 3;     // (y, mean, rstd)
//   op_info(OpId::attention).outputs == 2;      // (o, lse)
//   op_info(OpId::cross_entropy).outputs == 2;  // (loss, lse)
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#define GPUML_OP_TABLE(X)                                                                        \
  /* unary elementwise */                                                                         \
  X(neg, 1, 1, Unary, true, "")                                                                   \
  X(abs, 1, 1, Unary, true, "")                                                                   \
  X(sign, 1, 1, Unary, false, "")                                                                 \
  X(exp, 1, 1, Unary, true, "")                                                                   \
  X(log, 1, 1, Unary, true, "")                                                                   \
  X(sqrt, 1, 1, Unary, true, "")                                                                  \
  X(rsqrt, 1, 1, Unary, true, "")                                                                 \
  X(tanh, 1, 1, Unary, true, "")                                                                  \
  X(sigmoid, 1, 1, Unary, true, "")                                                               \
  X(relu, 1, 1, Unary, true, "")                                                                  \
  X(gelu, 1, 1, Unary, true, "gelu_tanh")                                                         \
  X(cast, 1, 1, Unary, true, "dtype")                                                             \
  X(copy, 1, 1, Unary, true, "")                                                                  \
  /* binary elementwise with NumPy broadcasting */                                                \
  X(add, 2, 1, Binary, true, "")                                                                  \
  X(sub, 2, 1, Binary, true, "")                                                                  \
  X(mul, 2, 1, Binary, true, "")                                                                  \
  X(div, 2, 1, Binary, true, "")                                                                  \
  X(pow, 2, 1, Binary, true, "")                                                                  \
  X(maximum, 2, 1, Binary, true, "")                                                              \
  X(minimum, 2, 1, Binary, true, "")                                                              \
  X(eq, 2, 1, Compare, false, "")                                                                 \
  X(ne, 2, 1, Compare, false, "")                                                                 \
  X(lt, 2, 1, Compare, false, "")                                                                 \
  X(le, 2, 1, Compare, false, "")                                                                 \
  X(gt, 2, 1, Compare, false, "")                                                                 \
  X(ge, 2, 1, Compare, false, "")                                                                 \
  X(where, 3, 1, Ternary, true, "")                                                               \
  /* reductions */                                                                                \
  X(sum, 1, 1, Reduce, true, "axes keepdim")                                                      \
  X(mean, 1, 1, Reduce, true, "axes keepdim")                                                     \
  X(max, 1, 1, Reduce, true, "axes keepdim")                                                      \
  X(argmax, 1, 1, Reduce, false, "axis keepdim")                                                  \
  X(softmax, 1, 1, Softmax, true, "axis")                                                         \
  X(log_softmax, 1, 1, Softmax, true, "axis")                                                     \
  /* matrix and image ops */                                                                      \
  X(matmul, 2, 1, Matmul, true, "trans_a trans_b")                                                \
  /* matmul + bias (N,) + activation in one kernel (a library epilogue); made by the planner */   \
  X(matmul_bias_act, 3, 1, Matmul, false, "trans_a trans_b activation gelu_tanh")                 \
  /* (weight gradient, bias gradient) in one kernel (cuBLASLt BGRAD); made by the planner, and */  \
  /* differentiable so that autodiff through a two-output node is checked like every other rule */ \
  X(matmul_bgrad, 2, 2, Matmul, true, "trans_a trans_b axis")                                     \
  /* a matmul whose product meets relu's or gelu's backward in one kernel (cuBLASLt DRELU/DGELU): */ \
  /* (a, b, aux) -> act'(aux) * (a @ b), aux relu's output or gelu's input; made by the planner */  \
  X(matmul_dact, 3, 1, Matmul, false, "trans_a trans_b activation gelu_tanh")                     \
  X(conv2d, 2, 1, Conv, true, "stride padding dilation groups")                                   \
  /* conv2d + bias (O,) per channel + activation in one kernel (a post-op); made by the planner */ \
  X(conv2d_bias_act, 3, 1, Conv, false, "stride padding dilation groups activation gelu_tanh")    \
  X(conv2d_backward_data, 2, 1, Backward, false, "shape stride padding dilation groups")         \
  X(conv2d_backward_filter, 2, 1, Backward, false, "shape stride padding dilation groups")       \
  X(max_pool2d, 1, 1, Pool, true, "kernel stride padding dilation")                               \
  X(max_pool2d_backward, 2, 1, Backward, false, "kernel stride padding dilation")                  \
  X(avg_pool2d, 1, 1, Pool, true, "kernel stride padding count_include_pad")                      \
  X(avg_pool2d_backward, 1, 1, Backward, false, "shape kernel stride padding count_include_pad")  \
  /* losses and normalisation */                                                                  \
  /* cross_entropy: (loss, lse), lse (N,) each row's log-sum-exp (f32, f64 for f64 logits), kept */ \
  /* for the backward, one pass over the logits: (logits, labels, dloss, lse) -> dlogits */         \
  X(cross_entropy, 2, 2, Loss, true, "ignore_index")                                              \
  X(cross_entropy_backward, 4, 1, Backward, false, "ignore_index")                                \
  /* layer_norm: (y, mean, rstd), the row statistics (x's leading dims; f32, f64 for f64 x) kept */ \
  /* for the backward, which reads them: (x, weight, dy, mean, rstd) -> (dx, dweight, dbias), the  */ \
  /* parameters' gradients summed over rows in the same pass                                       */ \
  X(layer_norm, 3, 3, Norm, true, "axis eps")                                                     \
  X(layer_norm_backward, 5, 3, Backward, false, "axis eps")                                       \
  /* attention(q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, D)) -> (o (B, H, Tq, D), lse (B, H, Tq)): */ \
  /* o = softmax(q k^T * scale) v, scale 0 meaning 1/sqrt(D); lse: each row's log-sum-exp of the        */ \
  /* scaled scores (f32, f64 for f64 q), kept for the backward. causal: query i sees keys               */ \
  /* j <= i + Tk - Tq, aligned bottom-right, so a KV-cache decode step (Tq = 1) sees every key          */ \
  /* (causal needs Tq <= Tk). Dropout (training, p > 0) zeroes probability (b, h, i, j) when Philox     */ \
  /* element ((b H + h) Tq + i) Tk + j of (seed, offset) is < p and scales the rest by 1/(1-p): the     */ \
  /* numbers dropout(softmax(...)) would draw. The backward recomputes the probabilities from lse:      */ \
  /* (q, k, v, o, do, lse) -> (dq, dk, dv). Never materialises the (Tq, Tk) matrix but on ref.          */ \
  X(attention, 3, 2, Attention, true, "causal scale p training seed offset")                      \
  X(attention_backward, 6, 3, Backward, false, "causal scale p training seed offset")             \
  X(batch_norm, 5, 1, Norm, true, "training eps")                                                 \
  X(batch_norm_backward, 3, 1, Backward, false, "eps")                                            \
  X(gelu_backward, 2, 1, Backward, false, "gelu_tanh")                                            \
  X(relu_backward, 2, 1, Backward, false, "")                                                     \
  /* random (Philox 4x32-10, counter based) */                                                    \
  X(dropout, 1, 1, Random, true, "p training seed offset")                                        \
  X(uniform, 0, 1, Random, false, "shape dtype alpha=low beta=high seed offset")                  \
  X(normal, 0, 1, Random, false, "shape dtype alpha=mean beta=std seed offset")                   \
  /* gather / scatter */                                                                          \
  X(embedding, 2, 1, Gather, true, "")                                                            \
  X(embedding_backward, 2, 1, Backward, false, "shape")                                           \
  /* movement: reshape/permute/slice/broadcast_to may run as views without a copy */              \
  X(reshape, 1, 1, Movement, true, "shape")                                                       \
  X(permute, 1, 1, Movement, true, "axes")                                                        \
  X(slice, 1, 1, Movement, true, "axes starts ends steps")                                        \
  X(slice_backward, 1, 1, Backward, false, "shape axes starts ends steps")                        \
  X(broadcast_to, 1, 1, Movement, true, "shape")                                                  \
  X(concat, -1, 1, Movement, true, "axis")                                                        \
  X(pad, 1, 1, Movement, true, "pads value")                                                      \
  /* creation */                                                                                  \
  X(fill, 0, 1, Creation, false, "shape dtype value")                                             \
  X(arange, 0, 1, Creation, false, "shape dtype alpha=start beta=step")                           \
  /* collectives across the processes of a data-parallel job (backend/communicator.h): */          \
  /* all_reduce_sum(x) -> the sum of every rank's x (same shape on every rank), through the */      \
  /* KernelCall's communicator; without one (one process) the identity. Its gradient is the */       \
  /* all_reduce_sum of the incoming gradient. For small tensors (sync BatchNorm's statistics). */    \
  X(all_reduce_sum, 1, 1, Collective, true, "")                                                   \
  /* optimizers: (state (S, P), grad (P,), hyper (3,), decay (P,)) -> new state (S, P); pure. */  \
  /* decay: each element's weight-decay multiplier (1 decays, 0 does not; optim/optimizer.h) */    \
  X(sgd_update, 4, 1, Optimizer, false, "momentum nesterov weight_decay")                         \
  X(adam_update, 4, 1, Optimizer, false, "beta1 beta2 eps weight_decay decoupled_weight_decay")

namespace gpuml {

enum class OpKind { Unary, Binary, Compare, Ternary, Reduce, Softmax, Matmul, Conv, Pool, Loss, Norm,
                    Backward, Random, Gather, Movement, Creation, Optimizer, Attention, Collective };

enum class OpId : uint16_t {
#define GPUML_OP_ENUM(name, arity, outputs, kind, diff, attrs) name,
  GPUML_OP_TABLE(GPUML_OP_ENUM)
#undef GPUML_OP_ENUM
};

struct OpInfo {
  std::string_view name;
  int arity;    // -1: variadic
  int outputs;  // tensors it gives, 1 for most ops
  OpKind kind;
  bool differentiable;
  std::string_view attrs;  // which Attrs fields the op reads, for docs and `gpuml info`
};

inline constexpr OpInfo kOpInfos[] = {
#define GPUML_OP_INFO(name, arity, outputs, kind, diff, attrs) {#name, arity, outputs, OpKind::kind, diff, attrs},
    GPUML_OP_TABLE(GPUML_OP_INFO)
#undef GPUML_OP_INFO
};
inline constexpr int kNumOps = static_cast<int>(sizeof(kOpInfos) / sizeof(kOpInfos[0]));

inline const OpInfo& op_info(OpId op) { return kOpInfos[static_cast<int>(op)]; }
inline std::string_view op_name(OpId op) { return op_info(op).name; }
OpId op_from_name(std::string_view name);  // throws Invalid for an unknown name
std::string_view op_kind_name(OpKind kind);

// Whether the op draws from a Philox stream (its row names the attributes `seed offset`: the
// Random ops, and attention's dropout): the executor adds a step's rng offset to attrs.offset of
// exactly these, so that each training step draws new numbers and a backward op the same ones
// as its forward.
constexpr bool draws_philox(OpId op) {
  return kOpInfos[static_cast<int>(op)].attrs.find("seed offset") != std::string_view::npos;
}

// All ops, in table order, for loops over the table (tests, `gpuml info`).
inline constexpr auto all_ops() {
  std::array<OpId, kNumOps> ops{};
  for (int i = 0; i < kNumOps; ++i) ops[i] = static_cast<OpId>(i);
  return ops;
}

}  // namespace gpuml
