// ONNX export: the eval-mode forward graph of a model (graph IR, graph/graph.h) written as an
// ONNX model, opset 17, IR version 8, that onnx.checker accepts and ONNX Runtime runs.
//
//   LoadedModel m = load_trained_model("runs/cnn-20261122");
//   export_onnx(m.model, m.checkpoint.model, "cnn.onnx");
//   // inputs:  "x" (batch, 1, 28, 28) f32, batch dynamic
//   // outputs: "logits" (batch, 10), "probabilities" (batch, 10) = Softmax(logits)
//
// How: the model's forward pass is emitted into a Graph in eval mode (BatchNorm uses its running
// statistics, Dropout is the identity and emits nothing) with every parameter a named leaf. Each
// node is then translated: leaves become initializers under their PyTorch state_dict names, ops
// whose inputs are all constant are folded (computed once on the reference backend), and the
// rest map to ONNX operators (matmul + bias -> Gemm, conv2d + bias -> Conv, gelu -> its erf or
// tanh formula since opset 17 has no Gelu, attention -> MatMul, Mul, Add of a causal mask,
// Softmax, MatMul, since opset 17 has no Attention, ...). The graph is built with a probe batch size;
// reshapes that keep the batch axis first write 0 ("copy this dim") so any batch runs. An op with
// no ONNX translation, or a reshape that mixes the batch into other axes, is an error naming it
// (all such ops at once).
#pragma once

#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "nn/model.h"

namespace gpuml::interop {

inline constexpr int64_t kOnnxOpset = 17;
inline constexpr int64_t kOnnxIrVersion = 8;

// The serialized ModelProto. `weights`: every state_dict entry of the model (host tensors).
std::string onnx_model_bytes(const nn::Model& model, const NamedTensors& weights);
// The same, written atomically.
void export_onnx(const nn::Model& model, const NamedTensors& weights, const std::filesystem::path& path);

}  // namespace gpuml::interop
