// A Keras/torchinfo-style table of a model: one row per layer with its output shape (batch
// included) and parameter count, then totals, parameter memory, forward FLOPs per sample and,
// when the caller has planned a step, its peak memory.
//
//   fmt::print("{}", model_summary(Model::preset("cnn"), /*batch_size*/ 128, plan.peak_bytes()));
//   // Layer (name: type)               Output shape          Params
//   // 0: Conv2d(1 -> 32, 3x3, pad 1)   (128, 32, 28, 28)     320
//   // ...
//   // Total params: 421,642
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "nn/model.h"

namespace gpuml::nn {

std::string model_summary(const Model& model, int64_t batch_size,
                          std::optional<size_t> planned_peak_bytes = {});

// "421,642" and "1.61 MiB" (binary units; plain bytes below 1 KiB).
std::string with_thousands(int64_t n);
std::string human_bytes(size_t bytes);

}  // namespace gpuml::nn
