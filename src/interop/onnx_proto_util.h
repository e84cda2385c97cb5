// Small helpers over the ONNX protobuf classes (Debian's libonnx-dev, onnx/onnx_pb.h) shared by
// the exporter and the importer: gpuml tensors <-> TensorProto, and attribute builders/readers.
// Only interop/*.cpp include this header: the rest of gpuml never sees protobuf types.
//
//   onnx::TensorProto t = tensor_to_proto("fc.weight", weight);      // raw_data, little-endian
//   onnx::NodeProto& n = *graph.add_node();
//   set_ints(n, "pads", {1, 1, 1, 1});
//   Tensor back = tensor_from_proto(t, {model_dir, limits});          // checks sizes first
#pragma once

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gpuml::interop {

// ONNX TensorProto.DataType codes of the gpuml dtypes (0 for none).
int onnx_type_of(DType dtype);
// Throws Unsupported naming the ONNX type for codes gpuml has no dtype for (strings, complex...).
DType dtype_from_onnx(int onnx_type, const std::string& what);

onnx::TensorProto tensor_to_proto(const std::string& name, const Tensor& tensor);

// Where a TensorProto's bytes may come from: external data only from files inside `model_dir`
// (no absolute paths, no "..", no symlink out of it), and no tensor above `max_bytes`.
struct TensorSource {
  std::filesystem::path model_dir;  // empty: external data is refused
  uint64_t max_bytes = uint64_t{4} << 30;
};
// Validates dims (non-negative, product without overflow, <= max_bytes) and the payload size
// against the dims before copying; `what` names the tensor in errors.
Tensor tensor_from_proto(const onnx::TensorProto& proto, const TensorSource& source, const std::string& what);

// Attribute builders.
void set_int(onnx::NodeProto& node, const std::string& name, int64_t value);
void set_float(onnx::NodeProto& node, const std::string& name, float value);
void set_ints(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& values);

// Attribute readers: the attribute's value if present with the right type, else `fallback`;
// present with another type is an error naming the node and attribute.
int64_t attr_int(const onnx::NodeProto& node, const std::string& name, int64_t fallback);
float attr_float(const onnx::NodeProto& node, const std::string& name, float fallback);
std::vector<int64_t> attr_ints(const onnx::NodeProto& node, const std::string& name,
                               const std::vector<int64_t>& fallback);
std::string attr_string(const onnx::NodeProto& node, const std::string& name, const std::string& fallback);
const onnx::AttributeProto* find_attr(const onnx::NodeProto& node, const std::string& name);

// "Conv 'node_3'" for error messages.
std::string node_label(const onnx::NodeProto& node);

}  // namespace gpuml::interop
