// Optimizers as graph ops: the whole update of every parameter is one fused op (sgd_update or
// adam_update) on the flattened optimizer state, emitted into the training step's graph.
//
//   OptimizerConfig config;                        // adam, lr 1e-3
//   config.kind = "adamw";
//   validate(config);                              // throws Invalid with a clear message
//   Sym state = g.input("opt_state", {{state_rows(config), P}, DType::f32});
//   Sym hyper = g.input("hyper", {{3}, DType::f32});
//   Sym decay = g.input("decay", {{P}, DType::f32});
//   ...  // params: views of row 0 of state; grads = gradients(g, loss, params)
//   Sym new_state = emit_update(config, state, flat_grad, hyper, decay);
//   feeds["decay"] = decay_mask(config, columns, P);  // once per run
//   feeds["hyper"] = hyper_values(config, lr_at(schedule, config.lr, step, ...), step + 1);
//
// State layout (S, P): row 0 holds every parameter flattened and concatenated (ModelRunner puts
// each at a 256-byte aligned column, with zero gaps between); sgd with momentum
// adds the momentum buffer (row 1), adam/adamw add m and v (rows 1, 2). Rows past 0 start at zero
// (initial_state). The update op is pure: it returns the new state and the caller swaps buffers.
//
// Which parameters decay: the update reads a (P,) multiplier per column, so one fused pass serves
// torch's two parameter groups (weight_decay and 0) without moving any parameter: the state's
// layout, and so every checkpoint, is the same whichever parameters decay. The multipliers are
// the state's dtype (not a bitmask) so that the kernels stay branch-free FMAs and a mask of ones
// reproduces the undivided update bit for bit; the cost is one more read of 4 bytes per
// parameter, against the 28 Adam already moves.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/build.h"

namespace gpuml::optim {

// torch.optim semantics and defaults: sgd = SGD (dampening 0), adam = Adam (L2 weight decay added
// to the gradient), adamw = AdamW (decoupled weight decay).
struct OptimizerConfig {
  std::string kind = "adam";  // sgd | adam | adamw
  double lr = 1e-3;           // base learning rate (a schedule scales it per step)
  double momentum = 0.0;      // sgd only
  bool nesterov = false;      // sgd only, needs momentum > 0
  // Unset: torch's default for the kind, 0 (sgd, adam) or 0.01 (adamw); see weight_decay_of().
  std::optional<double> weight_decay;
  double beta1 = 0.9, beta2 = 0.999;  // adam, adamw
  double eps = 1e-8;                  // adam, adamw
  double clip_grad_norm = 0.0;        // > 0: clip the global gradient L2 norm first; 0 = off
  // Which parameters weight_decay applies to: "all", or "matrices", those of 2 or more dims
  // (Linear and Embedding weights, conv kernels) and not biases or normalisation scales and
  // shifts, as nanoGPT's AdamW groups. See decays().
  std::string weight_decay_params = "all";
};

// The values weight_decay_params takes, in the order messages list them.
const std::vector<std::string>& weight_decay_params_names();
// Throws Invalid naming the value, what is allowed and the nearest name.
void check_weight_decay_params(const std::string& name);

// Whether a trainable parameter of this shape decays under config.weight_decay_params.
bool decays(const OptimizerConfig& config, const Shape& param_shape);

// Where a parameter sits in the state's row: its shape and first column.
struct ParamColumns {
  Shape shape;
  int64_t offset = 0;
};

// The update's decay input, built once per run: 1 over the columns of each parameter that
// decays(), 0 over the others and over the alignment gaps between them. A host (P,) tensor.
Tensor decay_mask(const OptimizerConfig& config, std::span<const ParamColumns> params, int64_t count,
                  DType dtype = DType::f32);

// Throws Invalid naming the field, the value and what is allowed.
void validate(const OptimizerConfig& config);

// The weight decay the update uses: the configured one or the kind's default.
double weight_decay_of(const OptimizerConfig& config);

// Rows of the (S, P) state: 1 (sgd), 2 (sgd with momentum), 3 (adam, adamw).
int64_t state_rows(const OptimizerConfig& config);

// Appends the update to state's graph: optional clipping of flat_grad by its global L2 norm,
// exactly as torch.nn.utils.clip_grad_norm_ (scale = min(1, max_norm / (norm + 1e-6))), then one
// sgd_update / adam_update node. state (S, P), flat_grad (P,), hyper (3,), decay (P,) (each
// column's weight-decay multiplier, decay_mask()) -> new state (S, P). `grad_scale` (1,), when
// given, multiplies flat_grad inside the update (and before clipping's norm), with no pass of its
// own: data parallelism's sum over the ranks times 1 / (their total weight). `whole_grad`, when
// state and flat_grad are a share of the columns (--zero 1), is the whole gradient, whose norm
// clipping takes.
Sym emit_update(const OptimizerConfig& config, Sym state, Sym flat_grad, Sym hyper, Sym decay,
                std::optional<Sym> grad_scale = std::nullopt, std::optional<Sym> whole_grad = std::nullopt);

// The "hyper" feed for optimizer step `step` (1-based, as torch counts): [lr, 1-beta1^step,
// 1-beta2^step] (the bias corrections are 1 for sgd, which ignores them). A host (3,) tensor.
Tensor hyper_values(const OptimizerConfig& config, double lr, int64_t step, DType dtype = DType::f32);

// The state at step 0: row 0 = flat_params (P,), the other rows zero, as torch starts its buffers.
// Host (S, P) tensor of flat_params' dtype (f32 or f64).
Tensor initial_state(const OptimizerConfig& config, const Tensor& flat_params);

// "adamw(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01)", for logs; with
// ", weight_decay_params=matrices" when not every parameter decays.
std::string describe(const OptimizerConfig& config);

}  // namespace gpuml::optim
