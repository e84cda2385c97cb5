// Internal to the ONNX importer (onnx_import.cpp validates and folds, onnx_layers.cpp matches
// layers): a checked view of an ONNX graph.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "interop/onnx_import.h"
#include "interop/onnx_proto_util.h"

namespace gpuml::interop {

struct OnnxGraphView {
  const onnx::GraphProto* graph = nullptr;
  std::string what;                          // the file, for errors
  std::string input;                         // the runtime input's name
  Shape sample_shape;                        // its per-sample dims
  std::string output;                        // the output the model produces
  std::map<std::string, Tensor> constants;   // initializers, Constant nodes, folded constants
  std::vector<int> path;                     // non-constant nodes the output depends on, in order
};

// Turns the data path into layers (model JSON + weights); errors name the node.
ImportedModel layers_from_graph(const OnnxGraphView& view);

}  // namespace gpuml::interop
