// ONNX import: an ONNX model whose data path is made of layers gpuml has, chained or branched
// (values used by several nodes; Add and Concat of computed values become Add and Concat layers
// with "inputs"), becomes an nn::Model plus its weights, which then predicts, evaluates and
// fine-tunes like any gpuml model.
//
//   ImportedModel m = import_onnx_file("resnetish.onnx");   // throws before anything runs
//   ModelRunner runner(m.model, optimizer, plan, 0);
//   runner.load(m.weights, {});
//
// Accepted: opset 11..18 of the default domain; one runtime input (f32, fixed per-sample dims,
// any batch); the output named "logits" if there is one, else the first output, with a final
// Softmax/LogSoftmax stripped (gpuml's loss and predict apply their own). The data path may use
// Gemm, MatMul(+Add), Conv (2-D, square kernels, symmetric padding), MaxPool, AveragePool, zero Pads,
// BatchNormalization, LayerNormalization, Relu, Tanh, Sigmoid, Gelu (or PyTorch's erf pattern,
// or gpuml's tanh pattern), Flatten, flattening Reshapes, Gather (embedding), Dropout and Identity;
// Constant nodes, initializers, and Reshape/Transpose/Concat/Cast/Identity of constants are
// folded. Layers keep PyTorch names when the initializers have them ("fc1.weight" -> layer "fc1").
//
// The file is hostile until proven otherwise: its size is checked before reading (protobuf's 2 GiB
// limit), tensor dims and byte counts before allocating, every node input must be defined by an
// earlier node, an initializer or the input, and external data must lie inside the model's
// directory (relative path, no "..", no symlink out). All unsupported operator types are listed
// in one error.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "io/safetensors.h"
#include "nn/model.h"

namespace gpuml::interop {

struct ImportLimits {
  uint64_t max_file_bytes = (uint64_t{1} << 31) - 1;  // protobuf's limit for one message
  uint64_t max_tensor_bytes = uint64_t{4} << 30;
  int64_t max_nodes = 100000;
};

struct ImportedModel {
  nn::Model model;
  NamedTensors weights;      // every state_dict entry of `model`
  std::string description;   // "pytorch 1.13.1, opset 17: 7 nodes -> 6 layers"
};

ImportedModel import_onnx_file(const std::filesystem::path& path, const ImportLimits& limits = {});
// `model_dir`: where external data may come from (empty: refuse external data); `what` names the
// source in errors.
ImportedModel import_onnx_bytes(std::string_view bytes, const std::filesystem::path& model_dir,
                                const std::string& what, const ImportLimits& limits = {});

}  // namespace gpuml::interop
